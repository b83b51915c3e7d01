/*
 * ws_handshake: the server side of the RFC 6455 opening handshake (§4.2). Everything here is
 * pure: bytes in, a parsed request or response bytes out, no I/O and no global state. The HTTP
 * grammar itself is left to libhttp-parser; this file only collects what the parser reports,
 * applies the few rules the parser is lenient about, and checks the WebSocket-specific headers.
 */
#include "ws_handshake.h"

#include <assert.h>
#include <ctype.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <http_parser.h>
#include <openssl/evp.h>
#include <openssl/sha.h>

/* RFC 6455 §1.3: the GUID appended to the client's key before hashing. */
static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/* More header lines than this is not a browser or a WebSocket library: refuse the request. */
#define MAX_HEADERS 100

/* http_parser_parse_url() reports offsets as uint16_t, so longer URLs cannot be split by it. */
#define MAX_ABSOLUTE_URL 0xffffu

enum { ERR_BAD_REQUEST = -400, ERR_NOMEM = -2 };

/* One raw header line as the parser reported it: spans pointing into the caller's head. */
struct raw_header {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

/* State shared by the parser callbacks while one head is parsed. */
struct parse_ctx {
    const char *url;
    size_t url_len;
    struct raw_header hdr[MAX_HEADERS];
    size_t n_hdr;
    bool last_was_value;
    bool headers_done;
    unsigned n_messages;
};

/*
 * The request target. The parser may deliver it in several pieces when its input is split; we
 * always pass the whole head at once, so pieces are contiguous in memory and extending the span
 * is exact. A non-contiguous piece cannot happen with one buffer and is treated as an error
 * rather than silently joined.
 */
static int on_url(http_parser *p, const char *at, size_t len)
{
    struct parse_ctx *ctx = p->data;

    if (ctx->url == NULL) {
        ctx->url = at;
        ctx->url_len = len;
        return 0;
    }
    if (at != ctx->url + ctx->url_len)
        return 1;
    ctx->url_len += len;
    return 0;
}

/*
 * A header name (or a piece of one). A name following a value starts a new header; a name
 * following a name continues it, which is only valid when the pieces are adjacent. Counting here
 * bounds the work done for hostile heads with thousands of tiny header lines.
 */
static int on_header_field(http_parser *p, const char *at, size_t len)
{
    struct parse_ctx *ctx = p->data;

    if (ctx->n_hdr > 0 && !ctx->last_was_value) {
        struct raw_header *h = &ctx->hdr[ctx->n_hdr - 1];

        if (at != h->name + h->name_len)
            return 1;
        h->name_len += len;
        return 0;
    }
    if (ctx->n_hdr == MAX_HEADERS)
        return 1;
    ctx->hdr[ctx->n_hdr++] = (struct raw_header){.name = at, .name_len = len};
    ctx->last_was_value = false;
    return 0;
}

/*
 * A header value (or a piece of one). http-parser reports an obsolete line folding
 * ("X: a\r\n  b") as a second, non-adjacent value piece; RFC 7230 §3.2.4 lets a server reject
 * obs-fold with 400, which is what the adjacency check does.
 */
static int on_header_value(http_parser *p, const char *at, size_t len)
{
    struct parse_ctx *ctx = p->data;
    struct raw_header *h;

    if (ctx->n_hdr == 0)
        return 1;
    h = &ctx->hdr[ctx->n_hdr - 1];
    if (ctx->last_was_value) {
        if (at != h->value + h->value_len)
            return 1;
        h->value_len += len;
        return 0;
    }
    h->value = at;
    h->value_len = len;
    ctx->last_was_value = true;
    return 0;
}

/* Bytes after the head would be parsed as a second request: allow exactly one message. */
static int on_message_begin(http_parser *p)
{
    struct parse_ctx *ctx = p->data;

    return ++ctx->n_messages > 1;
}

static int on_headers_complete(http_parser *p)
{
    struct parse_ctx *ctx = p->data;

    ctx->headers_done = true;
    return 0;
}

static const http_parser_settings parser_settings = {
    .on_message_begin = on_message_begin,
    .on_url = on_url,
    .on_header_field = on_header_field,
    .on_header_value = on_header_value,
    .on_headers_complete = on_headers_complete,
};

static bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/* Trims optional whitespace (SP / HTAB) from both ends of the span ptr[0..*len). */
static const char *trim_span(const char *ptr, size_t *len)
{
    size_t n = *len;

    while (n > 0 && is_ows(*ptr)) {
        ptr++;
        n--;
    }
    while (n > 0 && is_ows(ptr[n - 1]))
        n--;
    *len = n;
    return ptr;
}

long ws_handshake__head_len(const char *buf, size_t len, size_t max_head_bytes)
{
    size_t limit = len < max_head_bytes ? len : max_head_bytes;
    const char *end;

    if (limit > (size_t)LONG_MAX)
        limit = (size_t)LONG_MAX;
    end = limit >= 4 ? memmem(buf, limit, "\r\n\r\n", 4) : NULL;
    if (end != NULL)
        return (long)(end - buf) + 4;
    /* No terminator within the window: more data can only help while the window is not full. */
    return len >= max_head_bytes ? -431 : 0;
}

/* Absolute-form targets are accepted for the schemes a WebSocket client could have meant. */
static bool is_known_scheme(const char *scheme, size_t len)
{
    static const char *const schemes[] = {"http", "https", "ws", "wss"};

    for (size_t i = 0; i < sizeof(schemes) / sizeof(schemes[0]); i++)
        if (len == strlen(schemes[i]) && strncasecmp(scheme, schemes[i], len) == 0)
            return true;
    return false;
}

/*
 * Splits the request target into path and query spans. Origin-form ("/p?q") is split by hand
 * since it is a plain substring search; absolute-form ("http://host/p?q", RFC 7230 §5.3.2) goes
 * through http_parser_parse_url(). Fragments are not part of any request-target form and RFC
 * 6455 §3 forbids them in WebSocket URIs, so they are rejected; so are the asterisk and
 * authority forms, which cannot name a WebSocket resource.
 */
static int split_target(const char *url, size_t url_len, const char **path, size_t *path_len,
                        const char **query, size_t *query_len)
{
    struct http_parser_url u;
    const char *q;

    *query = NULL;
    *query_len = 0;
    if (url == NULL || url_len == 0 || memchr(url, '#', url_len) != NULL)
        return ERR_BAD_REQUEST;
    if (url[0] == '/') {
        q = memchr(url, '?', url_len);
        *path = url;
        *path_len = q != NULL ? (size_t)(q - url) : url_len;
        if (q != NULL) {
            *query = q + 1;
            *query_len = url_len - *path_len - 1;
        }
        return 0;
    }
    if (url_len > MAX_ABSOLUTE_URL)
        return ERR_BAD_REQUEST;
    http_parser_url_init(&u);
    if (http_parser_parse_url(url, url_len, 0, &u) != 0)
        return ERR_BAD_REQUEST;
    if (!(u.field_set & (1u << UF_SCHEMA)) || !(u.field_set & (1u << UF_HOST)) ||
        !is_known_scheme(url + u.field_data[UF_SCHEMA].off, u.field_data[UF_SCHEMA].len))
        return ERR_BAD_REQUEST;
    if (u.field_set & (1u << UF_PATH)) {
        *path = url + u.field_data[UF_PATH].off;
        *path_len = u.field_data[UF_PATH].len;
    } else {
        *path = "/";
        *path_len = 1;
    }
    if (u.field_set & (1u << UF_QUERY)) {
        *query = url + u.field_data[UF_QUERY].off;
        *query_len = u.field_data[UF_QUERY].len;
    } else if (url[url_len - 1] == '?') {
        /* "http://h/p?" has an empty query, for which http-parser sets no UF_QUERY. */
        *query = url + url_len;
    }
    return 0;
}

/* Copies len bytes to the cursor, NUL-terminates, optionally lower-cases; returns the copy. */
static char *arena_put(char **cursor, const char *src, size_t len, bool lower)
{
    char *dst = *cursor;

    for (size_t i = 0; i < len; i++)
        dst[i] = lower ? (char)tolower((unsigned char)src[i]) : src[i];
    dst[len] = '\0';
    *cursor = dst + len + 1;
    return dst;
}

static bool same_name(const struct raw_header *a, const struct raw_header *b)
{
    return a->name_len == b->name_len && strncasecmp(a->name, b->name, a->name_len) == 0;
}

/*
 * Copies the parsed spans into one exactly-sized arena: method, path, query, then per distinct
 * header (case-insensitively, in order of first appearance) the lower-cased name and the trimmed
 * values of all its lines joined with ", ". Sizing first and copying second means no pointer
 * into the arena ever moves. At most MAX_HEADERS lines make the quadratic grouping cheap.
 */
static int build_request(ws_request_t *req, const http_parser *parser, struct parse_ctx *ctx,
                         const char *path, size_t path_len, const char *query, size_t query_len)
{
    const char *method = http_method_str((enum http_method)parser->method);
    size_t method_len = strlen(method);
    size_t need = method_len + 1 + path_len + 1 + (query != NULL ? query_len + 1 : 0);
    size_t n_distinct = 0;
    char *cur;

    for (size_t i = 0; i < ctx->n_hdr; i++) {
        struct raw_header *h = &ctx->hdr[i];
        bool first = true;

        h->value = trim_span(h->value != NULL ? h->value : "", &h->value_len);
        for (size_t j = 0; j < i && first; j++)
            first = !same_name(&ctx->hdr[j], h);
        if (first) {
            n_distinct++;
            need += h->name_len + 1 + h->value_len + 1;
        } else {
            need += 2 + h->value_len;
        }
    }

    req->arena = malloc(need);
    if (req->arena == NULL)
        return ERR_NOMEM;
    req->arena_cap = need;
    if (n_distinct > 0) {
        req->headers = calloc(n_distinct, sizeof(*req->headers));
        if (req->headers == NULL)
            return ERR_NOMEM;
    }

    cur = req->arena;
    req->method = arena_put(&cur, method, method_len, false);
    req->path = arena_put(&cur, path, path_len, false);
    req->query = query != NULL ? arena_put(&cur, query, query_len, false) : NULL;
    for (size_t i = 0; i < ctx->n_hdr; i++) {
        const struct raw_header *h = &ctx->hdr[i];
        ws_header_t *out;
        bool first = true;

        for (size_t j = 0; j < i && first; j++)
            first = !same_name(&ctx->hdr[j], h);
        if (!first)
            continue;
        out = &req->headers[req->n_headers++];
        out->name = arena_put(&cur, h->name, h->name_len, true);
        out->value = cur;
        memcpy(cur, h->value, h->value_len);
        cur += h->value_len;
        for (size_t j = i + 1; j < ctx->n_hdr; j++) {
            if (!same_name(&ctx->hdr[j], h))
                continue;
            memcpy(cur, ", ", 2);
            memcpy(cur + 2, ctx->hdr[j].value, ctx->hdr[j].value_len);
            cur += 2 + ctx->hdr[j].value_len;
        }
        *cur++ = '\0';
    }
    req->arena_len = (size_t)(cur - req->arena);
    assert(req->arena_len == req->arena_cap);
    assert(req->n_headers == n_distinct);
    return 0;
}

/*
 * Parses one complete head. Besides http-parser's own checks this rejects what the parser lets
 * through but a server must not accept: NUL bytes, trailing bytes after the head, whitespace in
 * or around a header name (RFC 7230 §3.2.4, including a first header line that starts with
 * whitespace), obs-fold, more than MAX_HEADERS lines, and request targets that are not a path.
 */
int ws_handshake__parse(ws_request_t *req, const char *head, size_t len)
{
    struct parse_ctx *ctx;
    http_parser parser;
    const char *path = NULL, *query = NULL;
    size_t path_len = 0, query_len = 0, parsed;
    int rc = ERR_BAD_REQUEST;

    memset(req, 0, sizeof(*req));
    if (head == NULL || len < 4 || memchr(head, '\0', len) != NULL)
        return ERR_BAD_REQUEST;
    if (memmem(head, len, "\r\n\r\n", 4) != head + len - 4)
        return ERR_BAD_REQUEST;

    /* The context holds MAX_HEADERS spans (a few KiB): keep it off the loop thread's stack. */
    ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        return ERR_NOMEM;
    http_parser_init(&parser, HTTP_REQUEST);
    parser.data = ctx;
    parsed = http_parser_execute(&parser, &parser_settings, head, len);
    if (HTTP_PARSER_ERRNO(&parser) != HPE_OK || parsed != len || !ctx->headers_done)
        goto out;
    for (size_t i = 0; i < ctx->n_hdr; i++) {
        const struct raw_header *h = &ctx->hdr[i];

        if (h->name_len == 0 || memchr(h->name, ' ', h->name_len) != NULL ||
            memchr(h->name, '\t', h->name_len) != NULL)
            goto out;
    }
    rc = split_target(ctx->url, ctx->url_len, &path, &path_len, &query, &query_len);
    if (rc != 0)
        goto out;
    req->http_major = parser.http_major;
    req->http_minor = parser.http_minor;
    rc = build_request(req, &parser, ctx, path, path_len, query, query_len);
out:
    free(ctx);
    if (rc != 0)
        ws_request__free(req);
    return rc;
}

void ws_request__free(ws_request_t *req)
{
    if (req == NULL)
        return;
    free(req->headers);
    free(req->arena);
    memset(req, 0, sizeof(*req));
}

const char *ws_request__header(const ws_request_t *req, const char *name)
{
    for (size_t i = 0; i < req->n_headers; i++)
        if (strcasecmp(req->headers[i].name, name) == 0)
            return req->headers[i].value;
    return NULL;
}

int ws_handshake__each_token(const char *value, int (*cb)(void *ud, const char *tok, size_t len),
                             void *ud)
{
    const char *p = value;

    if (value == NULL)
        return 0;
    while (*p != '\0') {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);
        const char *tok = trim_span(p, &len);
        int rc;

        if (len > 0) {
            rc = cb(ud, tok, len);
            if (rc != 0)
                return rc;
        }
        if (comma == NULL)
            break;
        p = comma + 1;
    }
    return 0;
}

static int match_token(void *ud, const char *tok, size_t len)
{
    const char *want = ud;

    return strlen(want) == len && strncasecmp(tok, want, len) == 0;
}

bool ws_handshake__has_token(const char *value, const char *token)
{
    return ws_handshake__each_token(value, match_token, (void *)(uintptr_t)token) != 0;
}

static bool is_base64_char(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' ||
           c == '/';
}

/*
 * §4.2.1 item 5: the key must be base64 of exactly 16 bytes, i.e. 22 alphabet characters and
 * "==". EVP_DecodeBlock() alone is not enough: it skips surrounding whitespace and reports 18
 * bytes for any 24-character input because it counts the padding, so the shape is checked first.
 */
static bool key_is_valid(const char *key)
{
    unsigned char raw[18];

    if (key == NULL || strlen(key) != 24 || key[22] != '=' || key[23] != '=')
        return false;
    for (size_t i = 0; i < 22; i++)
        if (!is_base64_char(key[i]))
            return false;
    return EVP_DecodeBlock(raw, (const unsigned char *)key, 24) == 18;
}

/*
 * A message body on an Upgrade request would be read as WebSocket frames once the connection
 * switches protocols, so a request that announces one is refused.
 */
static bool announces_body(const ws_request_t *req)
{
    const char *cl = ws_request__header(req, "content-length");

    if (ws_request__header(req, "transfer-encoding") != NULL)
        return true;
    return cl != NULL && strcmp(cl, "0") != 0;
}

int ws_handshake__validate(const ws_request_t *req, const char **why)
{
    const char *reason = NULL, *host, *version;
    int status = 0;

    if (req->method == NULL) {
        status = 400;
        reason = "bad_request";
    } else if (strcmp(req->method, "GET") != 0) {
        status = 405;
        reason = "bad_method";
    } else if (req->http_major < 1 || (req->http_major == 1 && req->http_minor < 1)) {
        status = 400;
        reason = "bad_http_version";
    } else if ((host = ws_request__header(req, "host")) == NULL || host[0] == '\0') {
        status = 400;
        reason = "no_host";
    } else if (strchr(host, ',') != NULL) {
        /* Repeated Host lines were joined with ", "; RFC 7230 §5.4 demands a 400 for them. */
        status = 400;
        reason = "bad_host";
    } else if (!ws_handshake__has_token(ws_request__header(req, "upgrade"), "websocket")) {
        status = 400;
        reason = "no_upgrade";
    } else if (!ws_handshake__has_token(ws_request__header(req, "connection"), "upgrade")) {
        status = 400;
        reason = "no_connection_upgrade";
    } else if ((version = ws_request__header(req, "sec-websocket-version")) == NULL) {
        status = 400;
        reason = "no_version";
    } else if (strcmp(version, "13") != 0) {
        status = 426;
        reason = "bad_version";
    } else if (!key_is_valid(ws_request__header(req, "sec-websocket-key"))) {
        status = 400;
        reason = "bad_key";
    } else if (announces_body(req)) {
        status = 400;
        reason = "has_body";
    }
    if (why != NULL)
        *why = reason;
    return status;
}

/*
 * base64(SHA-1(key || GUID)). Every valid key is 24 characters, so the concatenation fits a
 * small stack buffer and the one-shot SHA1() suffices; longer input (only reachable when the
 * caller skipped validation) is hashed incrementally through EVP. If EVP cannot even allocate
 * its context, out becomes "" so the client fails the handshake instead of the server aborting.
 */
void ws_handshake__accept(const char *key, char out[29])
{
    unsigned char digest[SHA_DIGEST_LENGTH];
    size_t key_len = strlen(key);
    char buf[64 + sizeof(ws_guid)];

    if (key_len <= 64) {
        memcpy(buf, key, key_len);
        memcpy(buf + key_len, ws_guid, sizeof(ws_guid) - 1);
        SHA1((const unsigned char *)buf, key_len + sizeof(ws_guid) - 1, digest);
    } else {
        EVP_MD_CTX *md = EVP_MD_CTX_new();
        unsigned int md_len = 0;
        bool ok = md != NULL && EVP_DigestInit_ex(md, EVP_sha1(), NULL) == 1 &&
                  EVP_DigestUpdate(md, key, key_len) == 1 &&
                  EVP_DigestUpdate(md, ws_guid, sizeof(ws_guid) - 1) == 1 &&
                  EVP_DigestFinal_ex(md, digest, &md_len) == 1 && md_len == sizeof(digest);

        EVP_MD_CTX_free(md);
        if (!ok) {
            out[0] = '\0';
            return;
        }
    }
    /* 20 bytes encode to 28 characters; EVP_EncodeBlock() writes them plus a NUL. */
    EVP_EncodeBlock((unsigned char *)out, digest, (int)sizeof(digest));
}

/* A header value we emit must not be able to end its line early and inject more headers. */
static bool is_header_safe(const char *s)
{
    return s != NULL && strpbrk(s, "\r\n") == NULL;
}

size_t ws_handshake__response_101(char *out, size_t cap, const char *accept, const char *protocol,
                                  const char *extensions)
{
    bool has_proto = protocol != NULL && protocol[0] != '\0';
    bool has_ext = extensions != NULL && extensions[0] != '\0';
    int n;

    if (!is_header_safe(accept) || (has_proto && !is_header_safe(protocol)) ||
        (has_ext && !is_header_safe(extensions)))
        return 0;
    n = snprintf(out, cap,
                 "HTTP/1.1 101 Switching Protocols\r\n"
                 "Upgrade: websocket\r\n"
                 "Connection: Upgrade\r\n"
                 "Sec-WebSocket-Accept: %s\r\n"
                 "%s%s%s"
                 "%s%s%s"
                 "\r\n",
                 accept, has_proto ? "Sec-WebSocket-Protocol: " : "", has_proto ? protocol : "",
                 has_proto ? "\r\n" : "", has_ext ? "Sec-WebSocket-Extensions: " : "",
                 has_ext ? extensions : "", has_ext ? "\r\n" : "");
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}

/*
 * The caller's extra header block must be whole "Name: value\r\n" lines: every CR followed by
 * LF, every LF preceded by CR, no empty line (which would end the head early), and a final CRLF.
 */
static bool extra_headers_ok(const char *h)
{
    size_t len = strlen(h);

    if (len == 0)
        return true;
    if (len < 2 || h[len - 2] != '\r' || h[len - 1] != '\n' || h[0] == '\r')
        return false;
    for (size_t i = 0; i < len; i++) {
        if (h[i] == '\r' && h[i + 1] != '\n')
            return false;
        if (h[i] == '\n' && (i == 0 || h[i - 1] != '\r'))
            return false;
        if (h[i] == '\n' && h[i + 1] == '\r')
            return false;
    }
    return true;
}

size_t ws_handshake__response_error(char *out, size_t cap, int status, const char *body,
                                    const char *extra_headers)
{
    int n;

    if (status < 100 || status > 999)
        return 0;
    if (body == NULL)
        body = ws_handshake__status_text(status);
    if (extra_headers == NULL)
        extra_headers = "";
    if (!extra_headers_ok(extra_headers))
        return 0;
    n = snprintf(out, cap,
                 "HTTP/1.1 %d %s\r\n"
                 "Content-Type: text/plain\r\n"
                 "Content-Length: %zu\r\n"
                 "Connection: close\r\n"
                 "%s"
                 "\r\n"
                 "%s\n",
                 status, ws_handshake__status_text(status), strlen(body) + 1, extra_headers, body);
    if (n < 0 || (size_t)n >= cap)
        return 0;
    return (size_t)n;
}

/* The reason phrases come from http-parser's own status table, so the two never disagree. */
const char *ws_handshake__status_text(int status)
{
    switch (status) {
#define XX(num, name, string)                                                                      \
    case num:                                                                                      \
        return #string;
        HTTP_STATUS_MAP(XX)
#undef XX
    default:
        return "Error";
    }
}
