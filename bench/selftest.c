/*
 * selftest: built-in checks (see selftest.h). Table-driven where the input is malformed; the
 * streaming parsers are fed every split of their input, since "a message split across reads"
 * and "several messages in one read" are exactly what a load generator must get right.
 */
#include "selftest.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hist.h"
#include "msg.h"
#include "wsc.h"

static int n_pass, n_fail;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (cond) {                                                                                \
            n_pass++;                                                                              \
        } else {                                                                                   \
            n_fail++;                                                                              \
            printf("FAIL %s:%d: ", __func__, __LINE__);                                            \
            printf(__VA_ARGS__);                                                                   \
            printf("\n");                                                                          \
        }                                                                                          \
    } while (0)

/* ---- histogram ---------------------------------------------------------------------------- */

static void test_hist_index(void)
{
    uint32_t prev = 0;
    bool mono = true, covers = true, precise = true;
    for (uint64_t v = 0; v < (UINT64_C(1) << 40); v = v < 4096 ? v + 1 : v + v / 97) {
        uint32_t i = hist__index(v);
        uint64_t hi = hist__highest(i);
        if (i < prev)
            mono = false;
        prev = i;
        if (hi < v || i >= HIST_BUCKETS)
            covers = false;
        if (v >= 256 && (double)(hi - v) / (double)v > 1.0 / HIST_SUB)
            precise = false;
    }
    CHECK(mono, "index not monotonic");
    CHECK(covers, "highest(index(v)) < v or index out of range");
    CHECK(precise, "relative error above 1/%u", HIST_SUB);
    CHECK(hist__index(UINT64_MAX) == HIST_BUCKETS - 1, "huge value not clamped to last bucket");
    for (uint32_t i = 1; i < HIST_BUCKETS; i++) {
        if (hist__highest(i) <= hist__highest(i - 1)) {
            CHECK(0, "bucket %u does not grow", i);
            return;
        }
    }
    CHECK(1, "buckets grow");
}

static void test_hist_quantiles(void)
{
    static hist_t h, h2;
    hist__init(&h);
    CHECK(hist__quantile(&h, 0.5) == 0, "empty histogram p50 != 0");
    for (uint64_t v = 1; v <= 100000; v++)
        hist__record(&h, v);
    uint64_t p50 = hist__quantile(&h, 0.5), p99 = hist__quantile(&h, 0.99);
    CHECK(p50 >= 50000 && p50 <= 50000 * 1.01, "p50 %llu", (unsigned long long)p50);
    CHECK(p99 >= 99000 && p99 <= 99000 * 1.01, "p99 %llu", (unsigned long long)p99);
    CHECK(hist__quantile(&h, 1.0) == 100000, "p100 != max");
    CHECK(hist__quantile(&h, 0.0) == 1, "p0 != min");
    CHECK(h.count == 100000 && h.min == 1 && h.max == 100000, "count/min/max");
    hist__init(&h2);
    hist__record(&h2, 7);
    hist__record(&h2, 7);
    CHECK(hist__quantile(&h2, 0.999) == 7, "single value quantile");
    hist__merge(&h2, &h);
    CHECK(h2.count == 100002 && h2.min == 1 && h2.max == 100000, "merge");
}

/* ---- frames ------------------------------------------------------------------------------- */

static void test_frame_encode(void)
{
    static uint8_t payload[70000], out[70100];
    const size_t lens[] = {0, 1, 125, 126, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof(payload); i++)
        payload[i] = (uint8_t)(i * 7);
    for (size_t k = 0; k < sizeof(lens) / sizeof(lens[0]); k++) {
        size_t len = lens[k];
        size_t n = wsc__frame(out, sizeof(out), WSC_OP_BINARY, payload, len, 0x5a1b2c3dU);
        size_t h = len < 126 ? 6 : len <= 65535 ? 8 : 14;
        CHECK(n == h + len, "len %zu: frame size %zu", len, n);
        CHECK(out[0] == 0x82 && (out[1] & 0x80), "len %zu: FIN/opcode/mask bit", len);
        uint64_t got = out[1] & 0x7F;
        if (got == 126)
            got = ((uint64_t)out[2] << 8) | out[3];
        else if (got == 127)
            for (int i = 0, s = 56; i < 8; i++, s -= 8)
                got = (i ? got : 0) | ((uint64_t)out[2 + i] << s);
        CHECK(got == len, "len %zu: encoded length %llu", len, (unsigned long long)got);
        wsc__mask(out + h, len, 0x5a1b2c3dU);
        CHECK(memcmp(out + h, payload, len) == 0, "len %zu: unmasked payload differs", len);
    }
    CHECK(wsc__frame(out, 10, WSC_OP_TEXT, payload, 5, 1) == 0, "too small buffer accepted");
}

/* Records what the reader reports. */
typedef struct rec {
    char log[4096];
    size_t off;
    uint64_t data;
} rec_t;

static int r_data(void *ud, const uint8_t *p, size_t n)
{
    rec_t *r = ud;
    (void)p;
    r->data += n;
    return 0;
}

static int r_msg(void *ud, int op)
{
    rec_t *r = ud;
    r->off += (size_t)snprintf(r->log + r->off, sizeof(r->log) - r->off, "M%d:%llu ", op,
                               (unsigned long long)r->data);
    r->data = 0;
    return 0;
}

static int r_ctl(void *ud, int op, const uint8_t *p, size_t n)
{
    rec_t *r = ud;
    r->off += (size_t)snprintf(r->log + r->off, sizeof(r->log) - r->off, "C%d:%.*s ", op, (int)n,
                               (const char *)p);
    return 0;
}

static const wsc_cb_t rec_cb = {r_data, r_msg, r_ctl};

/* Appends an unmasked server frame. */
static size_t put_frame(uint8_t *dst, int b0, const void *p, size_t len)
{
    size_t h = 2;
    dst[0] = (uint8_t)b0;
    if (len < 126) {
        dst[1] = (uint8_t)len;
    } else if (len <= 65535) {
        dst[1] = 126;
        dst[2] = (uint8_t)(len >> 8);
        dst[3] = (uint8_t)len;
        h = 4;
    } else {
        dst[1] = 127;
        for (int i = 0; i < 8; i++)
            dst[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
        h = 10;
    }
    if (p)
        memcpy(dst + h, p, len);
    else
        memset(dst + h, 'z', len);
    return h + len;
}

/*
 * Feeds buf in chunks of `chunk` bytes the way the worker does: the unconsumed tail is kept
 * and presented again in front of the next chunk. Returns the final result (< 0 on error).
 */
static ssize_t feed(const uint8_t *buf, size_t len, size_t chunk, rec_t *r)
{
    static uint8_t tmp[WSC_MAX_PENDING + 200000];
    size_t keep = 0, off = 0;
    wsc_rd_t rd;
    memset(&rd, 0, sizeof(rd));
    memset(r, 0, sizeof(*r));
    while (off < len) {
        size_t n = len - off < chunk ? len - off : chunk;
        memcpy(tmp + keep, buf + off, n);
        off += n;
        ssize_t c = wsc__read(&rd, tmp, keep + n, &rec_cb, r);
        if (c < 0)
            return c;
        if ((size_t)c > keep + n || keep + n - (size_t)c > WSC_MAX_PENDING)
            return -100;
        keep = keep + n - (size_t)c;
        memmove(tmp, tmp + c, keep);
    }
    return keep ? -101 : 0;
}

static void test_reader_splits(void)
{
    static uint8_t s[100000];
    size_t n = 0;
    /* "hello" in three fragments with a ping between them, a 300-byte binary message, a pong,
     * an empty text message, a 70000-byte text message and a close. */
    n += put_frame(s + n, 0x01, "he", 2);
    n += put_frame(s + n, 0x89, "pi", 2);
    n += put_frame(s + n, 0x00, "ll", 2);
    n += put_frame(s + n, 0x80, "o", 1);
    n += put_frame(s + n, 0x82, NULL, 300);
    n += put_frame(s + n, 0x8A, "po", 2);
    n += put_frame(s + n, 0x81, "", 0);
    size_t small = n; /* the frames before the big message */
    n += put_frame(s + n, 0x81, NULL, 70000);
    n += put_frame(s + n, 0x88, "\x03\xe8", 2);
    const char *want = "C9:pi M1:5 M2:300 C10:po M1:0 M1:70000 C8:\x03\xe8 ";
    rec_t r;
    const size_t chunks[] = {1, 2, 3, 5, 7, 13, 64, 1000, 4096, 65536, 100000};
    for (size_t k = 0; k < sizeof(chunks) / sizeof(chunks[0]); k++) {
        ssize_t rc = feed(s, n, chunks[k], &r);
        CHECK(rc == 0 && strcmp(r.log, want) == 0, "chunk %zu: rc %zd log '%s'", chunks[k], rc,
              r.log);
    }
    /* Every split point of the small-frame prefix (two reads). */
    bool ok = true;
    for (size_t cut = 1; cut < small; cut++) {
        ssize_t rc1;
        rec_t r2;
        static uint8_t tmp[1000];
        wsc_rd_t rd;
        memset(&rd, 0, sizeof(rd));
        memset(&r2, 0, sizeof(r2));
        rc1 = wsc__read(&rd, s, cut, &rec_cb, &r2);
        if (rc1 < 0) {
            ok = false;
            break;
        }
        size_t keep = cut - (size_t)rc1;
        memcpy(tmp, s + rc1, keep + (small - cut));
        ssize_t rc2 = wsc__read(&rd, tmp, keep + (small - cut), &rec_cb, &r2);
        if (rc2 != (ssize_t)(keep + small - cut) ||
            strcmp(r2.log, "C9:pi M1:5 M2:300 C10:po M1:0 ") != 0) {
            ok = false;
            printf("cut %zu: '%s'\n", cut, r2.log);
            break;
        }
    }
    CHECK(ok, "some split point of the small frames failed");
}

static void test_reader_rejects(void)
{
    static const struct {
        const char *name;
        uint8_t bytes[16];
        size_t len;
    } bad[] = {
        {"masked server frame", {0x81, 0x81, 1, 2, 3, 4, 'a'}, 7},
        {"rsv1", {0xC1, 0x01, 'a'}, 3},
        {"rsv3", {0x91, 0x01, 'a'}, 3},
        {"opcode 3", {0x83, 0x00}, 2},
        {"opcode 0xB", {0x8B, 0x00}, 2},
        {"fragmented ping", {0x09, 0x00}, 2},
        {"control len 126", {0x89, 126, 0, 126}, 4},
        {"continuation first", {0x80, 0x01, 'a'}, 3},
        {"text inside message", {0x01, 0x01, 'a', 0x81, 0x01, 'b'}, 6},
        {"non-minimal 16-bit len", {0x81, 126, 0, 5}, 4},
        {"non-minimal 64-bit len", {0x82, 127, 0, 0, 0, 0, 0, 0, 0xFF, 0xFF}, 10},
        {"64-bit len msb", {0x82, 127, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10},
        {"close len 1", {0x88, 0x01, 0x03}, 3},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        rec_t r;
        wsc_rd_t rd;
        memset(&rd, 0, sizeof(rd));
        memset(&r, 0, sizeof(r));
        ssize_t rc = wsc__read(&rd, bad[i].bytes, bad[i].len, &rec_cb, &r);
        CHECK(rc == WSC_ERR_PROTO, "%s: rc %zd", bad[i].name, rc);
    }
    /* Incomplete input is not an error: nothing consumed. */
    uint8_t part[] = {0x82, 127, 0, 0};
    rec_t r;
    wsc_rd_t rd;
    memset(&rd, 0, sizeof(rd));
    CHECK(wsc__read(&rd, part, sizeof(part), &rec_cb, &r) == 0, "partial 64-bit header");
}

/* ---- handshake ---------------------------------------------------------------------------- */

static void test_handshake(void)
{
    char acc[29], key[25], req[512];
    const uint8_t raw[16] = "the sample nonce";
    wsc__key_b64(raw, key);
    CHECK(strcmp(key, "dGhlIHNhbXBsZSBub25jZQ==") == 0, "key %s", key);
    wsc__accept(key, acc);
    CHECK(strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0, "RFC 6455 example accept %s", acc);

    const char *hdrs[] = {"Origin: http://x"};
    int n = wsc__request(req, sizeof(req), "h:1", "/ws?a=b", key, hdrs, 1);
    CHECK(n > 0 && strstr(req, "GET /ws?a=b HTTP/1.1\r\n") && strstr(req, "Host: h:1\r\n") &&
              strstr(req, "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n") &&
              strstr(req, "Sec-WebSocket-Version: 13\r\n") &&
              strstr(req, "\r\nOrigin: http://x\r\n\r\n") && (size_t)n == strlen(req),
          "request '%s'", req);
    CHECK(wsc__request(req, 40, "h", "/", key, NULL, 0) < 0, "short buffer accepted");

    const char *good = "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\n"
                       "Connection: keep-alive, Upgrade\r\n"
                       "Sec-WebSocket-Accept:  s3pPLMBiTxaQ9kYGzzhZRbK+xOo= \r\n\r\n\x81\x02hi";
    size_t glen = strlen(good);
    int st;
    int r = wsc__response(good, glen, key, &st);
    CHECK(r == (int)glen - 4 && st == 101, "good response: %d (status %d)", r, st);
    bool ok = true;
    for (size_t cut = 0; cut < glen - 4; cut++) {
        if (wsc__response(good, cut, key, &st) != 0)
            ok = false;
    }
    CHECK(ok, "a truncated response was not 'need more'");

    static const struct {
        const char *name;
        const char *text;
        int want;
    } bad[] = {
        {"503", "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n\r\n", WSC_ERR_STATUS},
        {"200", "HTTP/1.1 200 OK\r\n\r\n", WSC_ERR_STATUS},
        {"wrong accept",
         "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: AAAAAAAAAAAAAAAAAAAAAAAAAAA=\r\n\r\n",
         WSC_ERR_HANDSHAKE},
        {"no upgrade",
         "HTTP/1.1 101 S\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         WSC_ERR_HANDSHAKE},
        {"no connection",
         "HTTP/1.1 101 S\r\nUpgrade: websocket\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n",
         WSC_ERR_HANDSHAKE},
        {"no accept", "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n",
         WSC_ERR_HANDSHAKE},
        {"extension",
         "HTTP/1.1 101 S\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
         "Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n"
         "Sec-WebSocket-Extensions: permessage-deflate\r\n\r\n",
         WSC_ERR_HANDSHAKE},
        {"garbage status", "HTTP/1.1 1O1 S\r\n\r\n", WSC_ERR_HANDSHAKE},
        {"not http", "SSH-2.0-OpenSSH\r\n\r\n", WSC_ERR_HANDSHAKE},
        {"header without colon", "HTTP/1.1 101 S\r\nUpgrade websocket\r\n\r\n", WSC_ERR_HANDSHAKE},
        {"bare CR", "HTTP/1.1 101 S\r\nUpgrade: web\rsocket\r\n\r\n", WSC_ERR_HANDSHAKE},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        r = wsc__response(bad[i].text, strlen(bad[i].text), key, &st);
        CHECK(r == bad[i].want, "%s: got %d want %d", bad[i].name, r, bad[i].want);
    }
    r = wsc__response("HTTP/1.1 503 Busy\r\n\r\n", 21, key, &st);
    CHECK(st == 503, "status not reported: %d", st);
    static char big[WSC_MAX_HEAD + 10];
    memset(big, 'a', sizeof(big));
    CHECK(wsc__response(big, sizeof(big), key, &st) == WSC_ERR_HEAD_BIG, "oversized head");
}

/* ---- templates and the timestamp scan ----------------------------------------------------- */

static void test_template(void)
{
    msg_tmpl_t t;
    char out[256];
    CHECK(msg__tmpl_parse(&t, "{\"ts\":%TS%,\"seq\":%SEQ%,\"p\":\"%PAD%\",\"x\":\"%FOO%\"}") == 0,
          "parse");
    CHECK(t.has_ts, "has_ts");
    size_t n = msg__tmpl_expand(&t, out, sizeof(out), 123456, 7, 80);
    out[n] = '\0';
    CHECK(n == 80 && strncmp(out, "{\"ts\":123456,\"seq\":7,\"p\":\"xxx", 29) == 0 &&
              strstr(out, "\"x\":\"%FOO%\"}"),
          "expand '%s' (%zu)", out, n);
    n = msg__tmpl_expand(&t, out, sizeof(out), 1, 2, 0);
    out[n] = '\0';
    CHECK(strcmp(out, "{\"ts\":1,\"seq\":2,\"p\":\"\",\"x\":\"%FOO%\"}") == 0, "no pad '%s'", out);
    CHECK(msg__tmpl_expand(&t, out, 10, 1, 2, 0) == 0, "overflow not reported");
    CHECK(msg__tmpl_max_len(&t, 0) >= 40 && msg__tmpl_max_len(&t, 500) == 500, "max_len");
    CHECK(msg__tmpl_parse(&t, "%TS%%TS%%TS%%TS%%TS%%TS%%TS%%TS%%TS%%TS%%TS%%TS%%TS%%TS%%TS%"
                              "%TS%%TS%%TS%%TS%%TS%%TS%%TS%%TS%%TS%%TS%%TS%%TS%%TS%%TS%%TS%"
                              "%TS%%TS%%TS%") < 0,
          "too many segments accepted");
    CHECK(msg__tmpl_parse(&t, "plain") == 0 && !t.has_ts, "plain template");
    /* %TS16%: fixed length whatever the value, so a NATS PUB byte count stays right. */
    CHECK(msg__tmpl_parse(&t, "PUB s 24\r\n{\"bts\":%TS16%}\r\n") == 0 && t.has_ts, "ts16 parse");
    n = msg__tmpl_expand(&t, out, sizeof(out), 42, 0, 0);
    out[n] = '\0';
    CHECK(strcmp(out, "PUB s 24\r\n{\"bts\":0000000000000042}\r\n") == 0, "ts16 '%s'", out);
    size_t n2 = msg__tmpl_expand(&t, out, sizeof(out), 9876543210123456ull, 0, 0);
    CHECK(n2 == n, "ts16 length changed with the value: %zu vs %zu", n2, n);
}

/* Scans text split at `cut` (two chunks) and returns whether a number was found. */
static bool scan2(const msg_key_t *k, const char *text, size_t cut, uint64_t *v)
{
    msg_scan_t s;
    size_t len = strlen(text);
    msg__scan_reset(&s);
    msg__scan_feed(&s, k, (const uint8_t *)text, cut);
    msg__scan_feed(&s, k, (const uint8_t *)text + cut, len - cut);
    return msg__scan_result(&s, v);
}

static void test_scan(void)
{
    msg_key_t k;
    static const struct {
        const char *key;
        const char *text;
        bool found;
        uint64_t val;
    } cases[] = {
        {"\"ts\":", "{\"type\":\"x\",\"ts\":1700000000123456,\"seq\":3}", true, 1700000000123456},
        {"\"ts\":", "{\"ts\": \t42}", true, 42},
        {"\"ts\":", "{\"ts\":\"2024\",\"data\":{\"ts\":77}}", true, 77},
        {"\"ts\":", "{\"t\":1,\"tss\":5}", false, 0},
        {"\"ts\":", "\"ts\":99", true, 99},
        {"\"ts\":", "\"ts\":", false, 0},
        {"\"ts\":", "\"ts\":12345678901234567890123,\"ts\":5", true, 5},
        {"aab", "aaab7", true, 7},
        {"abab", "ababab12", true, 12},
        {"abab", "abaabab 12", true, 12},
        {"\"bench_ts\":", "{\"ts\":1,\"data\":{\"bench_ts\":31}}", true, 31},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK(msg__key_init(&k, cases[i].key) == 0, "key init");
        size_t len = strlen(cases[i].text);
        bool ok = true;
        for (size_t cut = 0; cut <= len; cut++) {
            uint64_t v = 0;
            bool f = scan2(&k, cases[i].text, cut, &v);
            if (f != cases[i].found || (f && v != cases[i].val)) {
                ok = false;
                printf("case %zu cut %zu: found %d val %llu\n", i, cut, f, (unsigned long long)v);
                break;
            }
        }
        CHECK(ok, "scan case %zu ('%s')", i, cases[i].text);
    }
    CHECK(msg__key_init(&k, "") < 0, "empty key accepted");
}

/*
 * Stream mode (--multi): feeds text in two chunks split at `cut` and collects every number
 * taken, the way the worker does. Returns how many were found (at most max).
 */
static size_t scan_stream2(const msg_key_t *k, const char *text, size_t cut, uint64_t *v,
                           size_t max)
{
    msg_scan_t s;
    size_t found = 0, len = strlen(text);
    msg__scan_reset(&s);
    for (int part = 0; part < 2; part++) {
        const uint8_t *p = (const uint8_t *)text + (part ? cut : 0);
        size_t n = part ? len - cut : cut;
        while (n > 0) {
            uint64_t val;
            size_t used = msg__scan_feed(&s, k, p, n);
            bool got = msg__scan_take(&s, &val);
            if (got && found < max)
                v[found++] = val;
            if (used == 0 && !got)
                return 1000; /* no progress: a bug */
            p += used;
            n -= used;
        }
    }
    return found;
}

static void test_scan_stream(void)
{
    msg_key_t k;
    static const struct {
        const char *key;
        const char *text;
        size_t n;
        uint64_t val[3];
    } cases[] = {
        /* Two NATS MSGs in one WebSocket message, zero-padded timestamps. */
        {"\"bts\":",
         "MSG bench 1 24\r\n{\"bts\":0000000000000123}\r\nMSG bench 1 24\r\n"
         "{\"bts\":0000000000000456}\r\n",
         2,
         {123, 456}},
        /* The byte that ends a number starts the next key. */
        {"ab:", "ab:12ab:34ab:5x", 3, {12, 34, 5}},
        /* A key not followed by a number is skipped; the next one counts. */
        {"\"bts\":", "{\"bts\":\"x\"}{\"bts\":7}", 1, {7}},
        /* A number at the very end of the input is still pending (it may go on). */
        {"\"bts\":", "{\"bts\":1}{\"bts\":22", 1, {1}},
        {"\"bts\":", "no key here", 0, {0}},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        CHECK(msg__key_init(&k, cases[i].key) == 0, "key init");
        size_t len = strlen(cases[i].text);
        bool ok = true;
        for (size_t cut = 0; cut <= len && ok; cut++) {
            uint64_t v[4] = {0};
            size_t f = scan_stream2(&k, cases[i].text, cut, v, 4);
            if (f != cases[i].n)
                ok = false;
            for (size_t j = 0; ok && j < f; j++)
                ok = v[j] == cases[i].val[j];
            if (!ok)
                printf("stream case %zu cut %zu: %zu found\n", i, cut, f);
        }
        CHECK(ok, "stream case %zu ('%s')", i, cases[i].text);
    }
    /* The pending number completes with the next bytes. */
    msg_scan_t s;
    uint64_t v = 0;
    CHECK(msg__key_init(&k, "\"bts\":") == 0, "key init");
    msg__scan_reset(&s);
    CHECK(msg__scan_feed(&s, &k, (const uint8_t *)"\"bts\":12", 8) == 8 && !msg__scan_take(&s, &v),
          "number taken before it ended");
    CHECK(msg__scan_feed(&s, &k, (const uint8_t *)"3}", 2) == 1 && msg__scan_take(&s, &v) &&
              v == 123,
          "continued number: %llu", (unsigned long long)v);
}

/* ---- reply rules -------------------------------------------------------------------------- */

static void test_reply(void)
{
    msg_reply_t r[3];
    CHECK(msg__reply_parse(&r[0], "2=>3") == 0 && r[0].in_len == 1 && r[0].in[0] == '2' &&
              r[0].out_len == 1 && r[0].out[0] == '3',
          "parse 2=>3");
    CHECK(msg__reply_parse(&r[1], "PING\r\n=>PONG\r\n") == 0 && r[1].in_len == 6 &&
              r[1].out_len == 6 && memcmp(r[1].out, "PONG\r\n", 6) == 0,
          "parse PING");
    CHECK(msg__reply_parse(&r[2], "a=>b=>c") == 0 && r[2].in_len == 1 && r[2].out_len == 4,
          "split at the first arrow");
    static const struct {
        const char *spec;
        int ok;
    } specs[] = {{"=>x", 0}, {"abc", 0}, {"", 0}, {"=>", 0}, {"a=>", 1}, {"a=b>c", 0}};
    for (size_t i = 0; i < sizeof(specs) / sizeof(specs[0]); i++) {
        msg_reply_t t;
        CHECK((msg__reply_parse(&t, specs[i].spec) == 0) == specs[i].ok, "spec '%s'",
              specs[i].spec);
    }
    /* Streaming match over every split of each message into two chunks. */
    static const struct {
        const char *msg;
        int want;
    } msgs[] = {{"2", 0},  {"22", -1},        {"PING\r\n", 1}, {"PIN", -1},
                {"3", -1}, {"PING\r\nx", -1}, {"a", 2},        {"", -1}};
    for (size_t i = 0; i < sizeof(msgs) / sizeof(msgs[0]); i++) {
        size_t len = strlen(msgs[i].msg);
        bool ok = true;
        for (size_t cut = 0; cut <= len; cut++) {
            const uint8_t *p = (const uint8_t *)msgs[i].msg;
            uint8_t miss = msg__reply_feed(r, 3, 0, 0, p, cut);
            miss = msg__reply_feed(r, 3, miss, cut, p + cut, len - cut);
            if (msg__reply_match(r, 3, miss, len) != msgs[i].want)
                ok = false;
        }
        CHECK(ok, "reply match '%s'", msgs[i].msg);
    }
}

int selftest__run(void)
{
    test_hist_index();
    test_hist_quantiles();
    test_frame_encode();
    test_reader_splits();
    test_reader_rejects();
    test_handshake();
    test_template();
    test_scan();
    test_scan_stream();
    test_reply();
    printf("self-test: %d passed, %d failed\n", n_pass, n_fail);
    return n_fail ? 1 : 0;
}
