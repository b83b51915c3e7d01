/*
 * Unit tests for core/ws_handshake.c: head delimiting, parsing, validation against RFC 6455
 * §4.2.1, the accept key, token lists, and the responses (which are parsed back with
 * http-parser so the test does not just compare against the format string it was written from).
 */
#include "ws_handshake.h"

#include <check.h>
#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define KEY "dGhlIHNhbXBsZSBub25jZQ=="

/* A request every check accepts; tests derive malformed variants from it. */
#define GOOD_REQUEST                                                                               \
    "GET /chat?room=1 HTTP/1.1\r\n"                                                                \
    "Host: server.example.com\r\n"                                                                 \
    "Upgrade: websocket\r\n"                                                                       \
    "Connection: Upgrade\r\n"                                                                      \
    "Sec-WebSocket-Key: " KEY "\r\n"                                                               \
    "Origin: http://example.com\r\n"                                                               \
    "Sec-WebSocket-Protocol: chat, superchat\r\n"                                                  \
    "Sec-WebSocket-Version: 13\r\n"                                                                \
    "\r\n"

static bool starts_with(const char *s, const char *prefix)
{
    return strncmp(s, prefix, strlen(prefix)) == 0;
}

/* Parses a NUL-terminated request, failing the test when parse's result differs from want. */
static void parse_ok(ws_request_t *req, const char *text)
{
    int rc = ws_handshake__parse(req, text, strlen(text));

    ck_assert_msg(rc == 0, "parse failed (%d) for:\n%s", rc, text);
}

/* ---------------------------------------------------------------- accept key */

START_TEST(test_accept_rfc6455_example)
{
    char out[29];

    ws_handshake__accept(KEY, out);
    ck_assert_str_eq(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ws_handshake__accept("x3JJHMbDL1EzLkh9GBhXDw==", out);
    ck_assert_str_eq(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk=");
}
END_TEST

/* Keys longer than the stack fast path take the incremental EVP path; both must agree. */
START_TEST(test_accept_long_key_matches_reference)
{
    char key[201], out[29];
    unsigned char digest[SHA_DIGEST_LENGTH], want[29];
    char *cat;
    const char *guid = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

    memset(key, 'k', sizeof(key) - 1);
    key[sizeof(key) - 1] = '\0';
    cat = malloc(strlen(key) + strlen(guid) + 1);
    ck_assert_ptr_nonnull(cat);
    strcpy(cat, key);
    strcat(cat, guid);
    SHA1((const unsigned char *)cat, strlen(cat), digest);
    EVP_EncodeBlock(want, digest, SHA_DIGEST_LENGTH);
    free(cat);

    ws_handshake__accept(key, out);
    ck_assert_uint_eq(strlen(out), 28);
    ck_assert_str_eq(out, (const char *)want);
}
END_TEST

/* ---------------------------------------------------------------- head_len */

START_TEST(test_head_len_complete_and_partial)
{
    const char *req = GOOD_REQUEST;
    size_t len = strlen(req);

    ck_assert_int_eq(ws_handshake__head_len(req, len, 8192), (long)len);
    /* Every strict prefix is incomplete, including ones ending inside the terminator. */
    for (size_t i = 0; i < len; i++)
        ck_assert_msg(ws_handshake__head_len(req, i, 8192) == 0, "prefix %zu", i);
}
END_TEST

START_TEST(test_head_len_ignores_bytes_after_head)
{
    char buf[512];
    size_t head = strlen(GOOD_REQUEST);

    snprintf(buf, sizeof(buf), "%s\x81\x85\r\n\r\nmore", GOOD_REQUEST);
    ck_assert_int_eq(ws_handshake__head_len(buf, strlen(buf), 8192), (long)head);
}
END_TEST

START_TEST(test_head_len_oversize)
{
    const char *req = GOOD_REQUEST;
    size_t len = strlen(req);

    /* The terminator's last byte must lie within max_head_bytes. */
    ck_assert_int_eq(ws_handshake__head_len(req, len, len), (long)len);
    ck_assert_int_eq(ws_handshake__head_len(req, len, len - 1), -431);
    ck_assert_int_eq(ws_handshake__head_len(req, len, 10), -431);
    /* Incomplete but below the limit: wait; at the limit without a terminator: refuse. */
    ck_assert_int_eq(ws_handshake__head_len("GET / HTTP/1.1\r\n", 16, 17), 0);
    ck_assert_int_eq(ws_handshake__head_len("GET / HTTP/1.1\r\n", 16, 16), -431);
    ck_assert_int_eq(ws_handshake__head_len("", 0, 16), 0);
    /* Bare LF endings are not a terminator. */
    ck_assert_int_eq(ws_handshake__head_len("GET / HTTP/1.1\n\n", 16, 100), 0);
}
END_TEST

/* ---------------------------------------------------------------- parse */

START_TEST(test_parse_good_request)
{
    ws_request_t req;

    parse_ok(&req, GOOD_REQUEST);
    ck_assert_str_eq(req.method, "GET");
    ck_assert_str_eq(req.path, "/chat");
    ck_assert_str_eq(req.query, "room=1");
    ck_assert_int_eq(req.http_major, 1);
    ck_assert_int_eq(req.http_minor, 1);
    ck_assert_uint_eq(req.n_headers, 7);
    ck_assert_str_eq(req.headers[0].name, "host");
    ck_assert_str_eq(req.headers[0].value, "server.example.com");
    ck_assert_str_eq(req.headers[6].name, "sec-websocket-version");
    ck_assert_str_eq(ws_request__header(&req, "sec-websocket-key"), KEY);
    ck_assert_ptr_null(ws_request__header(&req, "cookie"));
    ck_assert_uint_le(req.arena_len, req.arena_cap);
    ws_request__free(&req);
    ck_assert_ptr_null(req.arena);
    ck_assert_ptr_null(req.headers);
    ws_request__free(&req); /* idempotent */
}
END_TEST

START_TEST(test_parse_header_case_and_trim)
{
    ws_request_t req;

    parse_ok(&req, "GET / HTTP/1.1\r\n"
                   "HOST:h\r\n"
                   "X-MiXeD-Case: \t  spaced value \t \r\n"
                   "X-Empty:\r\n"
                   "X-Blank:    \r\n"
                   "\r\n");
    ck_assert_str_eq(req.headers[0].name, "host");
    ck_assert_str_eq(req.headers[1].name, "x-mixed-case");
    ck_assert_str_eq(ws_request__header(&req, "Host"), "h");
    ck_assert_str_eq(ws_request__header(&req, "x-MIXED-case"), "spaced value");
    ck_assert_str_eq(ws_request__header(&req, "X-EMPTY"), "");
    ck_assert_str_eq(ws_request__header(&req, "x-blank"), "");
    ck_assert_ptr_null(ws_request__header(&req, "x-mixed"));
    ws_request__free(&req);
}
END_TEST

START_TEST(test_parse_repeated_headers_joined)
{
    ws_request_t req;

    parse_ok(&req, "GET / HTTP/1.1\r\n"
                   "Sec-WebSocket-Protocol: a\r\n"
                   "Host: h\r\n"
                   "sec-websocket-protocol:  b , c \r\n"
                   "SEC-WEBSOCKET-PROTOCOL: d\r\n"
                   "\r\n");
    ck_assert_uint_eq(req.n_headers, 2);
    /* Joined in order, under the first occurrence's position. */
    ck_assert_str_eq(req.headers[0].name, "sec-websocket-protocol");
    ck_assert_str_eq(req.headers[0].value, "a, b , c, d");
    ck_assert_str_eq(req.headers[1].name, "host");
    ws_request__free(&req);
}
END_TEST

static const struct target_case {
    const char *target;
    const char *path;
    const char *query; /* NULL: absent */
} target_cases[] = {
    {"/", "/", NULL},
    {"/chat", "/chat", NULL},
    {"/a/b?x=1&y=2", "/a/b", "x=1&y=2"},
    {"/a?", "/a", ""},
    {"/?q", "/", "q"},
    {"/p%20q?a?b", "/p%20q", "a?b"},
    {"//double", "//double", NULL},
    {"http://host/p?q", "/p", "q"},
    {"ws://host:8080/room?id=3", "/room", "id=3"},
    {"WSS://host", "/", NULL},
    {"https://h?", "/", ""},
    {"http://h?x", "/", "x"},
};

START_TEST(test_parse_target_split)
{
    const struct target_case *c = &target_cases[_i];
    char buf[256];
    ws_request_t req;

    snprintf(buf, sizeof(buf), "GET %s HTTP/1.1\r\nHost: h\r\n\r\n", c->target);
    parse_ok(&req, buf);
    ck_assert_str_eq(req.path, c->path);
    if (c->query == NULL)
        ck_assert_ptr_null(req.query);
    else
        ck_assert_pstr_eq(req.query, c->query);
    ws_request__free(&req);
}
END_TEST

static const char *const malformed_heads[] = {
    "GARBAGE\r\n\r\n",
    "GET\r\n\r\n",
    "FOO / HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET / HTTP/1.1\r\nHost h\r\n\r\n",
    "GET / HTTP/1.1\r\nHost : h\r\n\r\n",               /* whitespace before the colon */
    "GET / HTTP/1.1\r\n Host: h\r\n\r\n",               /* first header line folded */
    "GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n  b\r\n\r\n", /* obs-fold */
    "GET / HTTP/1.1\r\nHo\x01st: h\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\x7f\r\n\r\n",
    "GET / HTTP/1.1\r\nHost: h\r\n",                           /* no terminator */
    "GET / HTTP/1.1\r\nHost: h\r\n\r\nGET / HTTP/1.1\r\n\r\n", /* bytes after the head */
    "GET * HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET /p#frag HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET http://h/p#f HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET ftp://h/p HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET http:/p HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET h:80 HTTP/1.1\r\nHost: h\r\n\r\n",
    "GET / HTTPS/1.1\r\nHost: h\r\n\r\n",
    "GET / HTTP/x.1\r\nHost: h\r\n\r\n",
    "GET / HTTP/1.1\rHost: h\r\n\r\n",
    "\r\n\r\n",
    "",
};

START_TEST(test_parse_rejects_malformed)
{
    const char *head = malformed_heads[_i];
    ws_request_t req;
    int rc = ws_handshake__parse(&req, head, strlen(head));

    ck_assert_msg(rc == -400, "case %d: want -400, got %d", _i, rc);
    ck_assert_ptr_null(req.arena);
    ck_assert_ptr_null(req.headers);
    ws_request__free(&req);
}
END_TEST

START_TEST(test_parse_rejects_nul_byte)
{
    static const char head[] = "GET / HTTP/1.1\r\nHost: a\0b\r\n\r\n";
    ws_request_t req;

    ck_assert_int_eq(ws_handshake__parse(&req, head, sizeof(head) - 1), -400);
    ws_request__free(&req);
}
END_TEST

/* Builds a request with n "X-<i>: v" header lines. */
static char *request_with_headers(int n)
{
    size_t cap = 64 + (size_t)n * 16;
    char *buf = malloc(cap);
    size_t off;

    ck_assert_ptr_nonnull(buf);
    off = (size_t)snprintf(buf, cap, "GET / HTTP/1.1\r\n");
    for (int i = 0; i < n; i++)
        off += (size_t)snprintf(buf + off, cap - off, "X-%d: v\r\n", i);
    snprintf(buf + off, cap - off, "\r\n");
    return buf;
}

START_TEST(test_parse_header_count_limit)
{
    ws_request_t req;
    char *ok = request_with_headers(100), *bad = request_with_headers(101);

    ck_assert_int_eq(ws_handshake__parse(&req, ok, strlen(ok)), 0);
    ck_assert_uint_eq(req.n_headers, 100);
    ck_assert_str_eq(ws_request__header(&req, "x-99"), "v");
    ws_request__free(&req);
    ck_assert_int_eq(ws_handshake__parse(&req, bad, strlen(bad)), -400);
    ws_request__free(&req);
    free(ok);
    free(bad);
}
END_TEST

/*
 * Deterministic mutations of a valid request (byte replacements and truncations) must never
 * crash or leak whatever parse and validate decide; ASan/UBSan make this test meaningful.
 */
START_TEST(test_parse_survives_mutations)
{
    const char *base = GOOD_REQUEST;
    size_t len = strlen(base);
    static const char bytes[] = {'\0', '\r', '\n', ' ',    ':',    ',', '?',
                                 '#',  '/',  '\t', '\x80', '\xff', 'A', '='};
    char *buf = malloc(len);
    uint32_t seed = 12345;
    int parsed = 0;

    ck_assert_ptr_nonnull(buf);
    for (int iter = 0; iter < 3000; iter++) {
        ws_request_t req;
        const char *why = NULL;
        size_t n = len;
        long head;

        memcpy(buf, base, len);
        for (int k = 0; k < 1 + iter % 3; k++) {
            seed = seed * 1103515245u + 12345u;
            buf[(seed >> 8) % len] = bytes[(seed >> 20) % sizeof(bytes)];
        }
        if (iter % 7 == 0)
            n = (seed >> 4) % len;
        head = ws_handshake__head_len(buf, n, 4096);
        ck_assert(head >= 0 && (size_t)head <= n);
        if (head == 0)
            continue;
        if (ws_handshake__parse(&req, buf, (size_t)head) == 0) {
            int status = ws_handshake__validate(&req, &why);

            ck_assert(status == 0 || status == 400 || status == 405 || status == 426);
            ck_assert(status == 0 ? why == NULL : why != NULL);
            parsed++;
        }
        ws_request__free(&req);
    }
    free(buf);
    ck_assert_int_gt(parsed, 0);
}
END_TEST

/* ---------------------------------------------------------------- validate */

static const struct validate_case {
    const char *head;
    int status;
    const char *why; /* NULL when status is 0 */
} validate_cases[] = {
    {GOOD_REQUEST, 0, NULL},
    {"GET / HTTP/1.1\r\nhost: h\r\nupgrade: WebSocket\r\nconnection: keep-alive, UPGRADE\r\n"
     "sec-websocket-key: " KEY "\r\nsec-websocket-version: 13\r\n\r\n",
     0, NULL},
    {"GET ws://h/x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\nContent-Length: 0\r\n\r\n",
     0, NULL},
    {"POST / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
     405, "bad_method"},
    {"HEAD / HTTP/1.1\r\nHost: h\r\n\r\n", 405, "bad_method"},
    {"GET / HTTP/1.0\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400, "bad_http_version"},
    {"GET / HTTP/0.9\r\n\r\n", 400, "bad_http_version"},
    {"GET / HTTP/1.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400, "no_host"},
    {"GET / HTTP/1.1\r\nHost:\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400, "no_host"},
    {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400, "bad_host"},
    {"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400, "no_upgrade"},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocketx\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400, "no_upgrade"},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: h2c\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400, "no_upgrade"},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400, "no_connection_upgrade"},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: keep-alive, upgrades\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400, "no_connection_upgrade"},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " KEY "\r\n\r\n",
     400, "no_version"},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 8\r\n\r\n",
     426, "bad_version"},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13, 8\r\n\r\n",
     426, "bad_version"},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 013\r\n\r\n",
     426, "bad_version"},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version:\r\n\r\n",
     426, "bad_version"},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n",
     400, "bad_key"},
    /* 15 bytes: 20 characters + "=" */
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAA\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400, "bad_key"},
    /* 18 bytes: 24 characters, no padding */
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAAA\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400, "bad_key"},
    /* 17 bytes: 24 characters, one "=" */
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: AAAAAAAAAAAAAAAAAAAAAAA=\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400, "bad_key"},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25j*Q==\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400, "bad_key"},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: dGhlIHNhbXBs ZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n",
     400, "bad_key"},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Key: " KEY "\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n",
     400, "bad_key"},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\nContent-Length: 5\r\n\r\n",
     400, "has_body"},
    {"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " KEY "\r\nSec-WebSocket-Version: 13\r\n"
     "Transfer-Encoding: chunked\r\n\r\n",
     400, "has_body"},
};

START_TEST(test_validate_table)
{
    const struct validate_case *c = &validate_cases[_i];
    ws_request_t req;
    const char *why = "unset";
    int status;

    parse_ok(&req, c->head);
    status = ws_handshake__validate(&req, &why);
    ck_assert_msg(status == c->status, "case %d: want %d, got %d (%s)", _i, c->status, status,
                  why != NULL ? why : "NULL");
    if (c->why == NULL)
        ck_assert_ptr_null(why);
    else
        ck_assert_pstr_eq(why, c->why);
    ws_request__free(&req);
}
END_TEST

START_TEST(test_validate_unparsed_request)
{
    ws_request_t req;
    const char *why = NULL;

    ck_assert_int_eq(ws_handshake__parse(&req, "bad\r\n\r\n", 7), -400);
    ck_assert_int_eq(ws_handshake__validate(&req, &why), 400);
    ck_assert_str_eq(why, "bad_request");
    ws_request__free(&req);
}
END_TEST

/* ---------------------------------------------------------------- tokens */

static const struct token_case {
    const char *value;
    const char *token;
    bool want;
} token_cases[] = {
    {"websocket", "websocket", true},
    {"WebSocket", "websocket", true},
    {"keep-alive, Upgrade", "upgrade", true},
    {"keep-alive,Upgrade", "upgrade", true},
    {" \tupgrade\t ,x", "upgrade", true},
    {",,upgrade,,", "upgrade", true},
    {"upgraded", "upgrade", false},
    {"up grade", "upgrade", false},
    {"keep-alive", "upgrade", false},
    {"", "upgrade", false},
    {", ,", "upgrade", false},
    {NULL, "upgrade", false},
};

START_TEST(test_has_token_table)
{
    const struct token_case *c = &token_cases[_i];

    ck_assert_msg(ws_handshake__has_token(c->value, c->token) == c->want, "case %d", _i);
}
END_TEST

struct collect {
    char out[256];
    int n;
    int stop_at; /* return non-zero on this call (1-based), 0: never */
};

static int collect_cb(void *ud, const char *tok, size_t len)
{
    struct collect *c = ud;

    size_t used = strlen(c->out);

    c->n++;
    snprintf(c->out + used, sizeof(c->out) - used, "[%.*s]", (int)len, tok);
    return c->n == c->stop_at ? 40 + c->n : 0;
}

START_TEST(test_each_token_splits_and_trims)
{
    struct collect c = {.stop_at = 0};

    ck_assert_int_eq(ws_handshake__each_token(" chat ,\tsuper chat\t,, ,v2.json", collect_cb, &c),
                     0);
    ck_assert_str_eq(c.out, "[chat][super chat][v2.json]");
    ck_assert_int_eq(c.n, 3);
}
END_TEST

START_TEST(test_each_token_stops_on_nonzero)
{
    struct collect c = {.stop_at = 2};

    ck_assert_int_eq(ws_handshake__each_token("a,b,c", collect_cb, &c), 42);
    ck_assert_str_eq(c.out, "[a][b]");
    memset(&c, 0, sizeof(c));
    ck_assert_int_eq(ws_handshake__each_token(NULL, collect_cb, &c), 0);
    ck_assert_int_eq(ws_handshake__each_token("", collect_cb, &c), 0);
    ck_assert_int_eq(c.n, 0);
}
END_TEST

/* ---------------------------------------------------------------- responses */

/* A response parsed back with http-parser. */
struct parsed_response {
    int status;
    char names[8][64];
    char values[8][128];
    int n;
    char body[256];
    size_t body_len;
    bool complete;
    bool in_value;
};

static int resp_field(http_parser *p, const char *at, size_t len)
{
    struct parsed_response *r = p->data;

    ck_assert_int_lt(r->n, 8);
    ck_assert_uint_lt(len, 64);
    memcpy(r->names[r->n], at, len);
    r->names[r->n][len] = '\0';
    r->in_value = true;
    return 0;
}

static int resp_value(http_parser *p, const char *at, size_t len)
{
    struct parsed_response *r = p->data;

    ck_assert(r->in_value);
    ck_assert_uint_lt(len, 128);
    memcpy(r->values[r->n], at, len);
    r->values[r->n][len] = '\0';
    r->n++;
    r->in_value = false;
    return 0;
}

static int resp_body(http_parser *p, const char *at, size_t len)
{
    struct parsed_response *r = p->data;

    ck_assert_uint_lt(r->body_len + len, sizeof(r->body));
    memcpy(r->body + r->body_len, at, len);
    r->body_len += len;
    return 0;
}

static int resp_headers_done(http_parser *p)
{
    struct parsed_response *r = p->data;

    r->status = (int)p->status_code;
    r->complete = true;
    return 0;
}

static void parse_response(struct parsed_response *r, const char *buf, size_t len)
{
    http_parser p;
    http_parser_settings s;
    size_t n;

    memset(r, 0, sizeof(*r));
    http_parser_settings_init(&s);
    s.on_header_field = resp_field;
    s.on_header_value = resp_value;
    s.on_body = resp_body;
    s.on_headers_complete = resp_headers_done;
    http_parser_init(&p, HTTP_RESPONSE);
    p.data = r;
    n = http_parser_execute(&p, &s, buf, len);
    ck_assert_msg(HTTP_PARSER_ERRNO(&p) == HPE_OK, "response does not parse: %s",
                  http_errno_name(HTTP_PARSER_ERRNO(&p)));
    ck_assert_uint_eq(n, len);
    ck_assert(r->complete);
}

static const char *resp_header(const struct parsed_response *r, const char *name)
{
    for (int i = 0; i < r->n; i++)
        if (strcasecmp(r->names[i], name) == 0)
            return r->values[i];
    return NULL;
}

START_TEST(test_response_101_minimal)
{
    char out[512];
    size_t len =
        ws_handshake__response_101(out, sizeof(out), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", NULL, NULL);
    struct parsed_response r;

    ck_assert_uint_gt(len, 0);
    ck_assert_uint_eq(len, strlen(out));
    ck_assert_str_eq(out, "HTTP/1.1 101 Switching Protocols\r\n"
                          "Upgrade: websocket\r\n"
                          "Connection: Upgrade\r\n"
                          "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
                          "\r\n");
    parse_response(&r, out, len);
    ck_assert_int_eq(r.status, 101);
    ck_assert_int_eq(r.n, 3);
    ck_assert_ptr_null(resp_header(&r, "Sec-WebSocket-Protocol"));
    /* An empty protocol/extension string means "none", not an empty header. */
    ck_assert_uint_eq(ws_handshake__response_101(out, sizeof(out), "x", "", ""),
                      strlen("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                             "Connection: Upgrade\r\nSec-WebSocket-Accept: x\r\n\r\n"));
}
END_TEST

START_TEST(test_response_101_with_protocol_and_extensions)
{
    char out[512], accept[29];
    size_t len;
    struct parsed_response r;

    ws_handshake__accept(KEY, accept);
    len = ws_handshake__response_101(out, sizeof(out), accept, "chat",
                                     "permessage-deflate; server_no_context_takeover");
    ck_assert_uint_gt(len, 0);
    parse_response(&r, out, len);
    ck_assert_int_eq(r.status, 101);
    ck_assert_int_eq(r.n, 5);
    ck_assert_str_eq(resp_header(&r, "upgrade"), "websocket");
    ck_assert_str_eq(resp_header(&r, "connection"), "Upgrade");
    ck_assert_str_eq(resp_header(&r, "sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ck_assert_str_eq(resp_header(&r, "sec-websocket-protocol"), "chat");
    ck_assert_str_eq(resp_header(&r, "sec-websocket-extensions"),
                     "permessage-deflate; server_no_context_takeover");
}
END_TEST

START_TEST(test_response_101_small_cap_and_injection)
{
    char out[512];
    size_t full = ws_handshake__response_101(out, sizeof(out), "abc", "chat", NULL);

    ck_assert_uint_gt(full, 0);
    /* The NUL needs room too: cap == length fails, cap == length + 1 succeeds. */
    for (size_t cap = 0; cap <= full; cap++)
        ck_assert_msg(ws_handshake__response_101(out, cap, "abc", "chat", NULL) == 0, "cap %zu",
                      cap);
    ck_assert_uint_eq(ws_handshake__response_101(out, full + 1, "abc", "chat", NULL), full);
    ck_assert_uint_eq(ws_handshake__response_101(out, sizeof(out), "abc", "chat\r\nX: y", NULL), 0);
    ck_assert_uint_eq(ws_handshake__response_101(out, sizeof(out), "abc", NULL, "a\nb"), 0);
    ck_assert_uint_eq(ws_handshake__response_101(out, sizeof(out), "a\rb", NULL, NULL), 0);
}
END_TEST

START_TEST(test_response_error_parses_back)
{
    char out[512];
    size_t len = ws_handshake__response_error(out, sizeof(out), 400, "bad_key", NULL);
    struct parsed_response r;

    ck_assert_uint_gt(len, 0);
    ck_assert_uint_eq(len, strlen(out));
    ck_assert(starts_with(out, "HTTP/1.1 400 Bad Request\r\n"));
    parse_response(&r, out, len);
    ck_assert_int_eq(r.status, 400);
    ck_assert_str_eq(resp_header(&r, "content-type"), "text/plain");
    ck_assert_str_eq(resp_header(&r, "content-length"), "8");
    ck_assert_str_eq(resp_header(&r, "connection"), "close");
    ck_assert_uint_eq(r.body_len, 8);
    ck_assert(memcmp(r.body, "bad_key\n", 8) == 0);
    /* The body is the last thing: nothing trails the declared Content-Length. */
    ck_assert_str_eq(out + len - 8, "bad_key\n");
}
END_TEST

START_TEST(test_response_error_426_extra_headers)
{
    char out[512];
    size_t len = ws_handshake__response_error(out, sizeof(out), 426, "bad_version",
                                              "Sec-WebSocket-Version: 13\r\nX-A: b\r\n");
    struct parsed_response r;

    ck_assert_uint_gt(len, 0);
    parse_response(&r, out, len);
    ck_assert_int_eq(r.status, 426);
    ck_assert(starts_with(out, "HTTP/1.1 426 Upgrade Required\r\n"));
    ck_assert_str_eq(resp_header(&r, "sec-websocket-version"), "13");
    ck_assert_str_eq(resp_header(&r, "x-a"), "b");
    ck_assert_str_eq(resp_header(&r, "content-length"), "12");
    ck_assert_uint_eq(r.body_len, 12);
}
END_TEST

START_TEST(test_response_error_rejects_bad_input)
{
    char out[512];
    size_t full = ws_handshake__response_error(out, sizeof(out), 503, NULL, NULL);
    static const char *const bad_extra[] = {
        "X: y",          "X: y\n",    "X: y\r",     "\r\n",      "X: y\r\n\r\n",
        "X: y\r\n\r\nZ", "X:\ry\r\n", "\nX: y\r\n", "X: y\r\nZ",
    };
    struct parsed_response r;

    ck_assert_uint_gt(full, 0);
    parse_response(&r, out, full);
    ck_assert_uint_eq(r.body_len, strlen("Service Unavailable\n"));
    for (size_t cap = 0; cap <= full; cap++)
        ck_assert_uint_eq(ws_handshake__response_error(out, cap, 503, NULL, NULL), 0);
    ck_assert_uint_eq(ws_handshake__response_error(out, full + 1, 503, NULL, NULL), full);
    for (size_t i = 0; i < sizeof(bad_extra) / sizeof(bad_extra[0]); i++)
        ck_assert_msg(ws_handshake__response_error(out, sizeof(out), 400, "x", bad_extra[i]) == 0,
                      "extra %zu accepted", i);
    ck_assert_uint_eq(ws_handshake__response_error(out, sizeof(out), 99, "x", NULL), 0);
    ck_assert_uint_eq(ws_handshake__response_error(out, sizeof(out), 1000, "x", NULL), 0);
    ck_assert_uint_gt(ws_handshake__response_error(out, sizeof(out), 599, "x", ""), 0);
    ck_assert(starts_with(out, "HTTP/1.1 599 Error\r\n"));
}
END_TEST

START_TEST(test_status_text)
{
    ck_assert_str_eq(ws_handshake__status_text(101), "Switching Protocols");
    ck_assert_str_eq(ws_handshake__status_text(400), "Bad Request");
    ck_assert_str_eq(ws_handshake__status_text(403), "Forbidden");
    ck_assert_str_eq(ws_handshake__status_text(405), "Method Not Allowed");
    ck_assert_str_eq(ws_handshake__status_text(426), "Upgrade Required");
    ck_assert_str_eq(ws_handshake__status_text(429), "Too Many Requests");
    ck_assert_str_eq(ws_handshake__status_text(431), "Request Header Fields Too Large");
    ck_assert_str_eq(ws_handshake__status_text(503), "Service Unavailable");
    ck_assert_str_eq(ws_handshake__status_text(299), "Error");
    ck_assert_str_eq(ws_handshake__status_text(-1), "Error");
}
END_TEST

/* End to end: the response to the RFC's sample request carries the RFC's accept value. */
START_TEST(test_end_to_end_sample_request)
{
    ws_request_t req;
    const char *why = NULL;
    char accept[29], out[512];
    size_t len;
    struct parsed_response r;
    long head = ws_handshake__head_len(GOOD_REQUEST, strlen(GOOD_REQUEST), 8192);

    ck_assert_int_gt(head, 0);
    ck_assert_int_eq(ws_handshake__parse(&req, GOOD_REQUEST, (size_t)head), 0);
    ck_assert_int_eq(ws_handshake__validate(&req, &why), 0);
    ws_handshake__accept(ws_request__header(&req, "sec-websocket-key"), accept);
    len = ws_handshake__response_101(out, sizeof(out), accept, "chat", NULL);
    parse_response(&r, out, len);
    ck_assert_str_eq(resp_header(&r, "sec-websocket-accept"), "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");
    ws_request__free(&req);
}
END_TEST

#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static void add_case(Suite *s, const char *name, const TTest *t)
{
    TCase *tc = tcase_create(name);

    tcase_add_test(tc, t);
    suite_add_tcase(s, tc);
}

static void add_loop_case(Suite *s, const char *name, const TTest *t, int n)
{
    TCase *tc = tcase_create(name);

    tcase_add_loop_test(tc, t, 0, n);
    suite_add_tcase(s, tc);
}

Suite *ws_handshake_suite(void);

Suite *ws_handshake_suite(void)
{
    Suite *s = suite_create("ws_handshake");

    add_case(s, "accept_rfc6455_example", test_accept_rfc6455_example);
    add_case(s, "accept_long_key", test_accept_long_key_matches_reference);
    add_case(s, "head_len_partial", test_head_len_complete_and_partial);
    add_case(s, "head_len_trailing", test_head_len_ignores_bytes_after_head);
    add_case(s, "head_len_oversize", test_head_len_oversize);
    add_case(s, "parse_good", test_parse_good_request);
    add_case(s, "parse_case_trim", test_parse_header_case_and_trim);
    add_case(s, "parse_repeated", test_parse_repeated_headers_joined);
    add_loop_case(s, "parse_target_split", test_parse_target_split, N_OF(target_cases));
    add_loop_case(s, "parse_malformed", test_parse_rejects_malformed, N_OF(malformed_heads));
    add_case(s, "parse_nul", test_parse_rejects_nul_byte);
    add_case(s, "parse_header_limit", test_parse_header_count_limit);
    add_case(s, "parse_mutations", test_parse_survives_mutations);
    add_loop_case(s, "validate_table", test_validate_table, N_OF(validate_cases));
    add_case(s, "validate_unparsed", test_validate_unparsed_request);
    add_loop_case(s, "has_token", test_has_token_table, N_OF(token_cases));
    add_case(s, "each_token_split", test_each_token_splits_and_trims);
    add_case(s, "each_token_stop", test_each_token_stops_on_nonzero);
    add_case(s, "response_101_minimal", test_response_101_minimal);
    add_case(s, "response_101_full", test_response_101_with_protocol_and_extensions);
    add_case(s, "response_101_guard", test_response_101_small_cap_and_injection);
    add_case(s, "response_error", test_response_error_parses_back);
    add_case(s, "response_error_426", test_response_error_426_extra_headers);
    add_case(s, "response_error_guard", test_response_error_rejects_bad_input);
    add_case(s, "status_text", test_status_text);
    add_case(s, "end_to_end", test_end_to_end_sample_request);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ws_handshake_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
