/*
 * Unit tests for core/ws_frame.c: the incremental RFC 6455 parser and the frame encoders.
 *
 * Client frames are built with ws_frame__client_header + ws_frame__mask, fed to a server-side
 * parser in various splits (all at once, every two-way split, byte by byte, pseudo-random
 * chunks), and the callbacks are recorded so that the splits can be compared with each other
 * and with the expected events. Every fed chunk is a separately allocated copy of exactly its
 * size, so ASan catches any read past what was fed.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"
#include "ws_deflate.h"
#include "ws_frame.h"

#define FIN  0x80
#define RSV1 0x40
#define RSV2 0x20
#define RSV3 0x10

/* ---- recording callbacks ---------------------------------------------------------------- */

typedef struct ev {
    char kind; /* 'M' message, 'C' control */
    int opcode;
    uint16_t code;
    size_t len;
    uint8_t *data;
    const uint8_t *ptr; /* pointer the callback received */
    uint64_t skipped;   /* 'O' events: the length of the skipped message */
} ev_t;

#define MAX_EVENTS 64

typedef struct rec {
    ev_t ev[MAX_EVENTS];
    size_t n;
    size_t stop_at; /* 1-based event number whose callback returns stop_rc; 0 = never */
    int stop_rc;
} rec_t;

static int record(rec_t *r, char kind, int opcode, const uint8_t *data, size_t len, uint16_t code)
{
    ck_assert_uint_lt(r->n, MAX_EVENTS);
    ck_assert_ptr_nonnull(data);
    ev_t *e = &r->ev[r->n++];
    e->kind = kind;
    e->opcode = opcode;
    e->code = code;
    e->len = len;
    e->ptr = data;
    e->data = malloc(len ? len : 1);
    ck_assert_ptr_nonnull(e->data);
    memcpy(e->data, data, len);
    return r->n == r->stop_at ? r->stop_rc : 0;
}

static int on_message(void *ud, int opcode, const uint8_t *data, size_t len)
{
    return record(ud, 'M', opcode, data, len, 0);
}

static int on_control(void *ud, int opcode, const uint8_t *data, size_t len, uint16_t code)
{
    return record(ud, 'C', opcode, data, len, code);
}

/* Skipped oversize messages are recorded as kind 'O' with their length and no payload. */
static int on_oversize(void *ud, int opcode, uint64_t len)
{
    static const uint8_t none[1];
    rec_t *r = ud;
    int rc = record(r, 'O', opcode, none, 0, 0);
    r->ev[r->n - 1].skipped = len;
    return rc;
}

static const ws_parser_cb_t callbacks = {on_message, on_control, on_oversize};

static void rec_free(rec_t *r)
{
    for (size_t i = 0; i < r->n; i++)
        free(r->ev[i].data);
    memset(r, 0, sizeof(*r));
}

static void assert_same_events(const rec_t *a, const rec_t *b, const char *what)
{
    ck_assert_msg(a->n == b->n, "%s: %zu events vs %zu", what, a->n, b->n);
    for (size_t i = 0; i < a->n; i++) {
        const ev_t *x = &a->ev[i], *y = &b->ev[i];
        ck_assert_msg(x->kind == y->kind && x->opcode == y->opcode && x->code == y->code &&
                          x->len == y->len && x->skipped == y->skipped &&
                          memcmp(x->data, y->data, x->len) == 0,
                      "%s: event %zu differs", what, i);
    }
}

static void assert_event(const rec_t *r, size_t i, char kind, int opcode, const void *data,
                         size_t len, uint16_t code)
{
    ck_assert_msg(i < r->n, "event %zu missing (have %zu)", i, r->n);
    const ev_t *e = &r->ev[i];
    ck_assert_msg(e->kind == kind, "event %zu kind %c", i, e->kind);
    ck_assert_int_eq(e->opcode, opcode);
    ck_assert_uint_eq(e->len, len);
    ck_assert_uint_eq(e->code, code);
    ck_assert_msg(memcmp(e->data, data, len) == 0, "event %zu payload", i);
}

/* ---- building client frames ------------------------------------------------------------- */

typedef struct wire {
    uint8_t *b;
    size_t len, cap;
    unsigned n_frames;
} wire_t;

static void wire_put(wire_t *w, const void *d, size_t n)
{
    if (w->len + n > w->cap) {
        size_t cap = w->cap ? w->cap : 256;
        while (cap < w->len + n)
            cap *= 2;
        w->b = realloc(w->b, cap);
        ck_assert_ptr_nonnull(w->b);
        w->cap = cap;
    }
    if (n)
        memcpy(w->b + w->len, d, n);
    w->len += n;
}

/* Appends a frame; b0 carries FIN, RSV and opcode. Returns the payload's offset in the wire. */
static size_t wire_frame_ex(wire_t *w, uint8_t b0, const void *payload, size_t len, bool masked)
{
    uint8_t h[WS_FRAME_MAX_HEADER];
    /* A different key per frame, so a wrong mask phase cannot go unnoticed. */
    uint8_t key[4] = {(uint8_t)(0x37 + w->n_frames * 11), 0xfa, (uint8_t)(0x21 ^ w->n_frames),
                      0x3d};
    w->n_frames++;
    size_t hn = masked ? ws_frame__client_header(h, b0 & FIN, b0 & 0x70, b0 & 0x0f, len, key)
                       : ws_frame__header(h, b0 & FIN, b0 & 0x70, b0 & 0x0f, len);
    wire_put(w, h, hn);
    size_t off = w->len;
    wire_put(w, payload, len);
    if (masked)
        ws_frame__mask(w->b + off, len, key, 0);
    return off;
}

static size_t wire_frame(wire_t *w, uint8_t b0, const void *payload, size_t len)
{
    return wire_frame_ex(w, b0, payload, len, true);
}

#define WF(w, b0, lit) wire_frame(w, b0, lit, sizeof(lit) - 1)

static void wire_free(wire_t *w)
{
    free(w->b);
    memset(w, 0, sizeof(*w));
}

/* ---- feeding ---------------------------------------------------------------------------- */

static ws_parser_cfg_t server_cfg(size_t max)
{
    ws_parser_cfg_t c = {.max_message_size = max, .require_mask = true};
    return c;
}

/*
 * Feeds `w` in pieces ending at the given cut points (ascending, each < w->len), then the rest.
 * Each piece is copied into its own exact-size allocation. Returns the first non-zero result,
 * with *fail_off the wire offset just past the piece that produced it.
 */
static int feed_cuts(ws_parser_t *p, const wire_t *w, const size_t *cuts, size_t n_cuts, rec_t *r,
                     size_t *fail_off)
{
    size_t start = 0;
    for (size_t i = 0; i <= n_cuts; i++) {
        size_t end = i < n_cuts ? cuts[i] : w->len;
        size_t n = end - start;
        uint8_t *piece = malloc(n ? n : 1);
        ck_assert_ptr_nonnull(piece);
        memcpy(piece, w->b + start, n);
        size_t consumed = 12345;
        int rc = ws_parser__feed(p, piece, n, &consumed, &callbacks, r);
        free(piece);
        if (rc) {
            if (fail_off)
                *fail_off = end;
            return rc;
        }
        ck_assert_uint_eq(consumed, n);
        start = end;
    }
    return 0;
}

static int feed_all(const ws_parser_cfg_t *cfg, const wire_t *w, rec_t *r)
{
    ws_parser_t p;
    ws_parser__init(&p, cfg);
    int rc = feed_cuts(&p, w, NULL, 0, r, NULL);
    if (rc == 0 && p.msg_op == 0) {
        ck_assert_ptr_null(p.msg); /* nothing is retained between messages */
        ck_assert_uint_eq(p.msg_cap, 0);
    }
    ws_parser__reset(&p);
    return rc;
}

static int feed_bytewise(const ws_parser_cfg_t *cfg, const wire_t *w, rec_t *r, size_t *fail_off)
{
    ws_parser_t p;
    ws_parser__init(&p, cfg);
    size_t *cuts = malloc((w->len ? w->len : 1) * sizeof(size_t));
    ck_assert_ptr_nonnull(cuts);
    for (size_t i = 1; i < w->len; i++)
        cuts[i - 1] = i;
    int rc = feed_cuts(&p, w, cuts, w->len ? w->len - 1 : 0, r, fail_off);
    free(cuts);
    ws_parser__reset(&p);
    return rc;
}

/* ---- RFC 6455 §5.7 examples ------------------------------------------------------------- */

START_TEST(test_frame_rfc_examples)
{
    ws_parser_cfg_t client = {.require_mask = false};
    ws_parser_cfg_t server = server_cfg(0);
    static const struct {
        const char *bytes;
        size_t len;
        bool masked;
        char kind;
        int opcode;
        const char *payload;
    } ex[] = {
        {"\x81\x05\x48\x65\x6c\x6c\x6f", 7, false, 'M', WS_OP_TEXT, "Hello"},
        {"\x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11, true, 'M', WS_OP_TEXT, "Hello"},
        {"\x01\x03\x48\x65\x6c\x80\x02\x6c\x6f", 9, false, 'M', WS_OP_TEXT, "Hello"},
        {"\x89\x05\x48\x65\x6c\x6c\x6f", 7, false, 'C', WS_OP_PING, "Hello"},
        {"\x8a\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58", 11, true, 'C', WS_OP_PONG, "Hello"},
    };
    for (size_t i = 0; i < sizeof(ex) / sizeof(ex[0]); i++) {
        wire_t w = {0};
        wire_put(&w, ex[i].bytes, ex[i].len);
        rec_t r = {0};
        ck_assert_int_eq(feed_all(&client, &w, &r), 0);
        assert_event(&r, 0, ex[i].kind, ex[i].opcode, ex[i].payload, 5, 0);
        ck_assert_uint_eq(r.n, 1);
        rec_free(&r);
        /* A server accepts only the masked ones. */
        int rc = feed_all(&server, &w, &r);
        ck_assert_int_eq(rc, ex[i].masked ? 0 : -WS_CLOSE_PROTOCOL);
        rec_free(&r);
        wire_free(&w);
    }

    /* 256 bytes and 64 KiB unmasked binary frames use the 16- and 64-bit lengths. */
    for (size_t n = 256; n <= 65536; n += 65536 - 256) {
        wire_t w = {0};
        wire_put(&w, n == 256 ? "\x82\x7e\x01\x00" : "\x82\x7f\0\0\0\0\0\x01\0\0",
                 n == 256 ? 4 : 10);
        uint8_t *payload = calloc(1, n);
        ck_assert_ptr_nonnull(payload);
        wire_put(&w, payload, n);
        rec_t r = {0};
        ck_assert_int_eq(feed_all(&client, &w, &r), 0);
        assert_event(&r, 0, 'M', WS_OP_BINARY, payload, n, 0);
        free(payload);
        rec_free(&r);
        wire_free(&w);
    }
}
END_TEST

/* ---- zero copy -------------------------------------------------------------------------- */

START_TEST(test_frame_single_frame_message_is_zero_copy)
{
    ws_parser_cfg_t cfg = server_cfg(0);
    wire_t w = {0};
    size_t text_off = WF(&w, FIN | WS_OP_TEXT, "zero-copy text");
    size_t ping_off = WF(&w, FIN | WS_OP_PING, "ping");
    size_t bin_off = WF(&w, FIN | WS_OP_BINARY, "\x01\x02\x03");
    ws_parser_t p;
    ws_parser__init(&p, &cfg);
    rec_t r = {0};
    size_t consumed;
    ck_assert_int_eq(ws_parser__feed(&p, w.b, w.len, &consumed, &callbacks, &r), 0);
    ck_assert_uint_eq(consumed, w.len);
    ck_assert_uint_eq(r.n, 3);
    /* The callbacks got pointers into the fed buffer, unmasked in place. */
    ck_assert_ptr_eq(r.ev[0].ptr, w.b + text_off);
    ck_assert_ptr_eq(r.ev[1].ptr, w.b + ping_off);
    ck_assert_ptr_eq(r.ev[2].ptr, w.b + bin_off);
    ck_assert_mem_eq(w.b + text_off, "zero-copy text", 14);
    ck_assert_ptr_null(p.msg);
    ws_parser__reset(&p);
    rec_free(&r);
    wire_free(&w);
}
END_TEST

/* A message split across reads is assembled, and the buffer is released after delivery. */
START_TEST(test_frame_split_message_releases_buffer)
{
    ws_parser_cfg_t cfg = server_cfg(0);
    size_t n = 5000;
    uint8_t *payload = malloc(n);
    ck_assert_ptr_nonnull(payload);
    for (size_t i = 0; i < n; i++)
        payload[i] = (uint8_t)(i * 7);
    wire_t w = {0};
    wire_frame(&w, FIN | WS_OP_BINARY, payload, n);
    ws_parser_t p;
    ws_parser__init(&p, &cfg);
    rec_t r = {0};
    size_t consumed;
    uint8_t *copy = malloc(w.len);
    ck_assert_ptr_nonnull(copy);
    memcpy(copy, w.b, w.len);
    ck_assert_int_eq(ws_parser__feed(&p, copy, w.len - 1, &consumed, &callbacks, &r), 0);
    ck_assert_uint_eq(r.n, 0);
    ck_assert_ptr_nonnull(p.msg);
    ck_assert_uint_le(p.msg_cap, n); /* never more than the final size of a FIN frame */
    ck_assert_int_eq(ws_parser__feed(&p, copy + w.len - 1, 1, &consumed, &callbacks, &r), 0);
    assert_event(&r, 0, 'M', WS_OP_BINARY, payload, n, 0);
    ck_assert_ptr_null(p.msg);
    ck_assert_uint_eq(p.msg_cap, 0);
    ws_parser__reset(&p);
    free(copy);
    free(payload);
    rec_free(&r);
    wire_free(&w);
}
END_TEST

/* ---- malformed input -------------------------------------------------------------------- */

typedef struct fspec {
    uint8_t b0;
    bool unmasked;
    const char *p;
    size_t len;
} fspec_t;

/* clang-format off */
#define F(b0, lit) {b0, false, lit, sizeof(lit) - 1}
#define FU(b0, lit) {b0, true, lit, sizeof(lit) - 1}

typedef struct bad_row {
    const char *name;
    bool pmd;
    fspec_t f[3];
    int n_frames;
    int expect;
    size_t n_events; /* callbacks that legitimately happen before the violation */
} bad_row_t;

#define A10 "aaaaaaaaaa"
static const char a126[] = A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 A10 "aaaaaa";
_Static_assert(sizeof(a126) == 127, "126 bytes and a NUL");

#define P1002 (-WS_CLOSE_PROTOCOL)
#define P1007 (-WS_CLOSE_BAD_DATA)

static const bad_row_t bad_rows[] = {
    {"unmasked text", false, {FU(FIN | WS_OP_TEXT, "hi")}, 1, P1002, 0},
    {"unmasked ping", false, {FU(FIN | WS_OP_PING, "")}, 1, P1002, 0},
    {"rsv1 without pmd", false, {F(FIN | RSV1 | WS_OP_TEXT, "hi")}, 1, P1002, 0},
    {"rsv2", false, {F(FIN | RSV2 | WS_OP_TEXT, "hi")}, 1, P1002, 0},
    {"rsv3", false, {F(FIN | RSV3 | WS_OP_BINARY, "hi")}, 1, P1002, 0},
    {"rsv2 with pmd", true, {F(FIN | RSV2 | WS_OP_TEXT, "hi")}, 1, P1002, 0},
    {"rsv2 on ping", false, {F(FIN | RSV2 | WS_OP_PING, "")}, 1, P1002, 0},
    {"rsv3 on close", false, {F(FIN | RSV3 | WS_OP_CLOSE, "")}, 1, P1002, 0},
    {"opcode 3", false, {F(FIN | 0x3, "x")}, 1, P1002, 0},
    {"opcode 4", false, {F(FIN | 0x4, "x")}, 1, P1002, 0},
    {"opcode 5", false, {F(FIN | 0x5, "x")}, 1, P1002, 0},
    {"opcode 6", false, {F(FIN | 0x6, "x")}, 1, P1002, 0},
    {"opcode 7", false, {F(FIN | 0x7, "")}, 1, P1002, 0},
    {"opcode B", false, {F(FIN | 0xB, "x")}, 1, P1002, 0},
    {"opcode C", false, {F(FIN | 0xC, "x")}, 1, P1002, 0},
    {"opcode D", false, {F(FIN | 0xD, "x")}, 1, P1002, 0},
    {"opcode E", false, {F(FIN | 0xE, "x")}, 1, P1002, 0},
    {"opcode F", false, {F(FIN | 0xF, "")}, 1, P1002, 0},
    {"reserved opcode inside fragments", false,
     {F(WS_OP_TEXT, "a"), F(FIN | 0xB, "x"), F(FIN, "b")}, 3, P1002, 0},
    {"ping without fin", false, {F(WS_OP_PING, "")}, 1, P1002, 0},
    {"pong without fin", false, {F(WS_OP_PONG, "x")}, 1, P1002, 0},
    {"close without fin", false, {F(WS_OP_CLOSE, "")}, 1, P1002, 0},
    {"ping of 126 bytes", false, {{FIN | WS_OP_PING, false, a126, 126}}, 1, P1002, 0},
    {"rsv1 on ping with pmd", true, {F(FIN | RSV1 | WS_OP_PING, "")}, 1, P1002, 0},
    {"rsv1 on cont with pmd", true, {F(RSV1 | WS_OP_TEXT, "\x00"), F(FIN | RSV1, "")}, 2, P1002,
     0},
    {"close length 1", false, {F(FIN | WS_OP_CLOSE, "\x03")}, 1, P1002, 0},
    {"close code 0", false, {F(FIN | WS_OP_CLOSE, "\x00\x00")}, 1, P1002, 0},
    {"close code 999", false, {F(FIN | WS_OP_CLOSE, "\x03\xe7")}, 1, P1002, 0},
    {"close code 1004", false, {F(FIN | WS_OP_CLOSE, "\x03\xec")}, 1, P1002, 0},
    {"close code 1005", false, {F(FIN | WS_OP_CLOSE, "\x03\xed")}, 1, P1002, 0},
    {"close code 1006", false, {F(FIN | WS_OP_CLOSE, "\x03\xee")}, 1, P1002, 0},
    {"close code 1015", false, {F(FIN | WS_OP_CLOSE, "\x03\xf7")}, 1, P1002, 0},
    {"close code 1016", false, {F(FIN | WS_OP_CLOSE, "\x03\xf8")}, 1, P1002, 0},
    {"close code 1100", false, {F(FIN | WS_OP_CLOSE, "\x04\x4c")}, 1, P1002, 0},
    {"close code 2000", false, {F(FIN | WS_OP_CLOSE, "\x07\xd0")}, 1, P1002, 0},
    {"close code 2999", false, {F(FIN | WS_OP_CLOSE, "\x0b\xb7")}, 1, P1002, 0},
    {"close code 5000", false, {F(FIN | WS_OP_CLOSE, "\x13\x88")}, 1, P1002, 0},
    {"close code 65535", false, {F(FIN | WS_OP_CLOSE, "\xff\xff" "reason")}, 1, P1002, 0},
    {"close reason invalid utf8", false, {F(FIN | WS_OP_CLOSE, "\x03\xe8" "ok\xff")}, 1, P1007,
     0},
    {"close reason truncated utf8", false, {F(FIN | WS_OP_CLOSE, "\x03\xe8\xc3")}, 1, P1007, 0},
    {"cont without message", false, {F(FIN | WS_OP_CONT, "x")}, 1, P1002, 0},
    {"non-fin cont without message", false, {F(WS_OP_CONT, "x")}, 1, P1002, 0},
    {"text during fragmented text", false, {F(WS_OP_TEXT, "a"), F(FIN | WS_OP_TEXT, "b")}, 2,
     P1002, 0},
    {"binary during fragmented text", false, {F(WS_OP_TEXT, "a"), F(FIN | WS_OP_BINARY, "b")},
     2, P1002, 0},
    {"cont after complete message", false, {F(FIN | WS_OP_TEXT, "ok"), F(FIN, "x")}, 2, P1002, 1},
    {"invalid utf8 text", false, {F(FIN | WS_OP_TEXT, "a\xff")}, 1, P1007, 0},
    {"truncated utf8 text", false, {F(FIN | WS_OP_TEXT, "a\xc3")}, 1, P1007, 0},
    {"surrogate split across fragments", false, {F(WS_OP_TEXT, "a\xed"), F(FIN, "\xa0\x80")}, 2,
     P1007, 0},
    {"truncated at end of fragmented text", false, {F(WS_OP_TEXT, "ab"), F(FIN, "\xe2\x82")}, 2,
     P1007, 0},
    {"ping then rsv2", false, {F(FIN | WS_OP_PING, "p"), F(FIN | RSV2 | WS_OP_TEXT, "x")}, 2,
     P1002, 1},
};
/* clang-format on */

#define N_BAD (sizeof(bad_rows) / sizeof(bad_rows[0]))

static void build_row(const bad_row_t *row, wire_t *w)
{
    for (int i = 0; i < row->n_frames; i++)
        wire_frame_ex(w, row->f[i].b0, row->f[i].p, row->f[i].len, !row->f[i].unmasked);
}

START_TEST(test_frame_malformed_table)
{
    const bad_row_t *row = &bad_rows[_i];
    ws_deflate_t *d = ws_deflate__new(1);
    ck_assert_ptr_nonnull(d);
    ws_parser_cfg_t cfg = server_cfg(0);
    cfg.pmd = row->pmd;
    cfg.inflater = d;
    wire_t w = {0};
    build_row(row, &w);

    rec_t r1 = {0}, r2 = {0};
    int rc = feed_all(&cfg, &w, &r1);
    ck_assert_msg(rc == row->expect, "%s: all at once: %d, expected %d", row->name, rc,
                  row->expect);
    ck_assert_msg(r1.n == row->n_events, "%s: %zu events", row->name, r1.n);
    rc = feed_bytewise(&cfg, &w, &r2, NULL);
    ck_assert_msg(rc == row->expect, "%s: bytewise: %d, expected %d", row->name, rc, row->expect);
    assert_same_events(&r1, &r2, row->name);
    rec_free(&r1);
    rec_free(&r2);
    wire_free(&w);
    ws_deflate__free(d);
}
END_TEST

/* After a violation the parser keeps reporting it and calls nothing. */
START_TEST(test_frame_error_is_sticky)
{
    ws_parser_cfg_t cfg = server_cfg(0);
    ws_parser_t p;
    ws_parser__init(&p, &cfg);
    wire_t w = {0};
    WF(&w, FIN | 0x3, "x");
    size_t bad_len = w.len;
    WF(&w, FIN | WS_OP_TEXT, "fine");
    rec_t r = {0};
    size_t consumed;
    ck_assert_int_eq(ws_parser__feed(&p, w.b, w.len, &consumed, &callbacks, &r), P1002);
    ck_assert_uint_le(consumed, bad_len);
    ck_assert_int_eq(ws_parser__feed(&p, w.b + bad_len, w.len - bad_len, &consumed, &callbacks, &r),
                     P1002);
    ck_assert_uint_eq(consumed, 0);
    ck_assert_uint_eq(r.n, 0);
    /* reset makes the parser usable again */
    ws_parser__reset(&p);
    ck_assert_int_eq(ws_parser__feed(&p, w.b + bad_len, w.len - bad_len, &consumed, &callbacks, &r),
                     0);
    assert_event(&r, 0, 'M', WS_OP_TEXT, "fine", 4, 0);
    ws_parser__reset(&p);
    rec_free(&r);
    wire_free(&w);
}
END_TEST

/* Header bits are checked as soon as the first two bytes are in. */
START_TEST(test_frame_fails_on_first_two_bytes)
{
    ws_parser_cfg_t cfg = server_cfg(0);
    static const uint8_t starts[][2] = {
        {0x83, 0x80}, {0xA1, 0x80}, {0x09, 0x80}, {0x89, 0xFE}, {0x80, 0x80}, {0x81, 0x05},
    };
    for (size_t i = 0; i < sizeof(starts) / sizeof(starts[0]); i++) {
        ws_parser_t p;
        ws_parser__init(&p, &cfg);
        uint8_t b[2] = {starts[i][0], starts[i][1]};
        size_t consumed;
        rec_t r = {0};
        ck_assert_int_eq(ws_parser__feed(&p, b, 1, &consumed, &callbacks, &r), 0);
        ck_assert_int_eq(ws_parser__feed(&p, b + 1, 1, &consumed, &callbacks, &r), P1002);
        ws_parser__reset(&p);
    }
}
END_TEST

/* ---- split points ----------------------------------------------------------------------- */

static uint8_t bin300[300];

static void build_sequence(wire_t *w)
{
    for (size_t i = 0; i < sizeof(bin300); i++)
        bin300[i] = (uint8_t)(255 - i);
    WF(w, FIN | WS_OP_TEXT, "Hello");
    WF(w, WS_OP_BINARY, "bin-1");
    WF(w, FIN | WS_OP_PING, "ping!");
    WF(w, WS_OP_CONT, "bin-2");
    WF(w, FIN | WS_OP_PONG, "");
    WF(w, FIN | WS_OP_CONT, "bin-3");
    WF(w, WS_OP_TEXT, "\xce\xba\xe1");
    WF(w, WS_OP_CONT, "\xbd");
    WF(w, FIN | WS_OP_CONT, "\xb9\xcf\x83");
    WF(w, FIN | WS_OP_TEXT, "");
    wire_frame(w, FIN | WS_OP_BINARY, bin300, sizeof(bin300));
    WF(w, WS_OP_TEXT, "");
    WF(w, FIN | WS_OP_CONT, "");
    WF(w, FIN | WS_OP_CLOSE,
       "\x03\xe8"
       "bye");
}

static void check_sequence_events(const rec_t *r)
{
    ck_assert_uint_eq(r->n, 9);
    assert_event(r, 0, 'M', WS_OP_TEXT, "Hello", 5, 0);
    assert_event(r, 1, 'C', WS_OP_PING, "ping!", 5, 0);
    assert_event(r, 2, 'C', WS_OP_PONG, "", 0, 0);
    assert_event(r, 3, 'M', WS_OP_BINARY, "bin-1bin-2bin-3", 15, 0);
    assert_event(r, 4, 'M', WS_OP_TEXT, "\xce\xba\xe1\xbd\xb9\xcf\x83", 7, 0);
    assert_event(r, 5, 'M', WS_OP_TEXT, "", 0, 0);
    assert_event(r, 6, 'M', WS_OP_BINARY, bin300, sizeof(bin300), 0);
    assert_event(r, 7, 'M', WS_OP_TEXT, "", 0, 0);
    assert_event(r, 8, 'C', WS_OP_CLOSE,
                 "\x03\xe8"
                 "bye",
                 5, 1000);
}

START_TEST(test_frame_every_split_point)
{
    ws_parser_cfg_t cfg = server_cfg(0);
    wire_t w = {0};
    build_sequence(&w);
    rec_t whole = {0};
    ck_assert_int_eq(feed_all(&cfg, &w, &whole), 0);
    check_sequence_events(&whole);

    for (size_t cut = 1; cut < w.len; cut++) {
        ws_parser_t p;
        ws_parser__init(&p, &cfg);
        rec_t r = {0};
        ck_assert_int_eq(feed_cuts(&p, &w, &cut, 1, &r, NULL), 0);
        assert_same_events(&whole, &r, "two-way split");
        ck_assert_ptr_null(p.msg);
        ws_parser__reset(&p);
        rec_free(&r);
    }
    /* Every pair of cut points, over the first frames (covers split headers on both sides). */
    for (size_t a = 1; a < 60; a++) {
        for (size_t b = a + 1; b < 64; b++) {
            ws_parser_t p;
            ws_parser__init(&p, &cfg);
            size_t cuts[2] = {a, b};
            rec_t r = {0};
            ck_assert_int_eq(feed_cuts(&p, &w, cuts, 2, &r, NULL), 0);
            assert_same_events(&whole, &r, "three-way split");
            ws_parser__reset(&p);
            rec_free(&r);
        }
    }
    rec_t bytes = {0};
    ck_assert_int_eq(feed_bytewise(&cfg, &w, &bytes, NULL), 0);
    assert_same_events(&whole, &bytes, "byte by byte");
    rec_free(&bytes);
    rec_free(&whole);
    wire_free(&w);
}
END_TEST

START_TEST(test_frame_random_chunks)
{
    ws_parser_cfg_t cfg = server_cfg(0);
    wire_t w = {0};
    build_sequence(&w);
    rec_t whole = {0};
    ck_assert_int_eq(feed_all(&cfg, &w, &whole), 0);
    uint32_t seed = 12345;
    for (int round = 0; round < 200; round++) {
        size_t cuts[64], n = 0, pos = 0;
        for (;;) {
            seed = seed * 1103515245u + 12345u;
            pos += 1 + (seed >> 16) % 40;
            if (pos >= w.len || n == 64)
                break;
            cuts[n++] = pos;
        }
        ws_parser_t p;
        ws_parser__init(&p, &cfg);
        rec_t r = {0};
        ck_assert_int_eq(feed_cuts(&p, &w, cuts, n, &r, NULL), 0);
        assert_same_events(&whole, &r, "random chunks");
        ws_parser__reset(&p);
        rec_free(&r);
    }
    rec_free(&whole);
    wire_free(&w);
}
END_TEST

/* ---- UTF-8 fail fast -------------------------------------------------------------------- */

START_TEST(test_frame_fragmented_text_fails_at_bad_byte)
{
    ws_parser_cfg_t cfg = server_cfg(0);
    wire_t w = {0};
    WF(&w, WS_OP_TEXT, "\xce\xba\xe1\xbd\xb9");
    size_t off = WF(&w, WS_OP_CONT, "\xcf\x83hello\xf4\x90\x80\x80more");
    WF(&w, FIN | WS_OP_CONT, "end");
    size_t bad = off + 8; /* the 0x90 after 0xf4: above U+10FFFF */
    rec_t r = {0};
    size_t fail_off = 0;
    ck_assert_int_eq(feed_bytewise(&cfg, &w, &r, &fail_off), P1007);
    ck_assert_uint_eq(fail_off, bad + 1); /* the call that fed byte `bad` failed */
    ck_assert_uint_eq(r.n, 0);
    rec_free(&r);

    /* The second frame is cut right after the bad byte: the rest never needs to arrive. */
    ws_parser_t p;
    ws_parser__init(&p, &cfg);
    size_t cut = bad + 1;
    wire_t head = {0};
    wire_put(&head, w.b, cut);
    ck_assert_int_eq(feed_cuts(&p, &head, NULL, 0, &r, NULL), P1007);
    ws_parser__reset(&p);
    wire_free(&head);
    wire_free(&w);
}
END_TEST

/* Autobahn 6.4.3/6.4.4: one text frame whose payload trickles in; it must fail on the chunk
 * that holds the invalid byte, before the frame is complete. */
START_TEST(test_frame_single_frame_text_fails_before_complete)
{
    static const char payload[] = "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5"
                                  "\xf4\x90\x80\x80\x65\x64\x69\x74\x65\x64";
    ws_parser_cfg_t cfg = server_cfg(0);
    wire_t w = {0};
    size_t off = wire_frame(&w, FIN | WS_OP_TEXT, payload, sizeof(payload) - 1);
    size_t bad = off + 12;
    for (size_t first = 1; first <= bad; first++) {
        ws_parser_t p;
        ws_parser__init(&p, &cfg);
        size_t cuts[1] = {first};
        wire_t head = {0};
        wire_put(&head, w.b, bad + 1);
        rec_t r = {0};
        size_t fail_off = 0;
        ck_assert_int_eq(feed_cuts(&p, &head, cuts, 1, &r, &fail_off), P1007);
        ck_assert_uint_eq(fail_off, bad + 1);
        ws_parser__reset(&p);
        wire_free(&head);
    }
    wire_free(&w);
}
END_TEST

/* A character split across fragments and across reads is still valid. */
START_TEST(test_frame_multibyte_split_across_fragments)
{
    ws_parser_cfg_t cfg = server_cfg(0);
    wire_t w = {0};
    WF(&w, WS_OP_TEXT, "\xf0");
    WF(&w, WS_OP_CONT, "\x9f");
    WF(&w, WS_OP_CONT, "\x98");
    WF(&w, FIN | WS_OP_CONT, "\x80!");
    rec_t a = {0}, b = {0};
    ck_assert_int_eq(feed_all(&cfg, &w, &a), 0);
    assert_event(&a, 0, 'M', WS_OP_TEXT, "\xf0\x9f\x98\x80!", 5, 0);
    ck_assert_int_eq(feed_bytewise(&cfg, &w, &b, NULL), 0);
    assert_same_events(&a, &b, "bytewise");
    rec_free(&a);
    rec_free(&b);
    wire_free(&w);
}
END_TEST

/* ---- control frames interleaved --------------------------------------------------------- */

START_TEST(test_frame_interleaved_control)
{
    ws_parser_cfg_t cfg = server_cfg(0);
    wire_t w = {0};
    WF(&w, WS_OP_TEXT, "frag1 ");
    WF(&w, FIN | WS_OP_PING, "p1");
    WF(&w, WS_OP_CONT, "frag2 ");
    WF(&w, FIN | WS_OP_PING, "p2");
    WF(&w, FIN | WS_OP_PONG, "p3");
    WF(&w, FIN | WS_OP_CONT, "frag3");
    WF(&w, WS_OP_BINARY, "x");
    WF(&w, FIN | WS_OP_CLOSE, "\x03\xe9");
    rec_t r = {0};
    ck_assert_int_eq(feed_all(&cfg, &w, &r), 0);
    ck_assert_uint_eq(r.n, 5);
    assert_event(&r, 0, 'C', WS_OP_PING, "p1", 2, 0);
    assert_event(&r, 1, 'C', WS_OP_PING, "p2", 2, 0);
    assert_event(&r, 2, 'C', WS_OP_PONG, "p3", 2, 0);
    assert_event(&r, 3, 'M', WS_OP_TEXT, "frag1 frag2 frag3", 17, 0);
    /* A close in the middle of a fragmented message is delivered at once. */
    assert_event(&r, 4, 'C', WS_OP_CLOSE, "\x03\xe9", 2, 1001);
    rec_t b = {0};
    ck_assert_int_eq(feed_bytewise(&cfg, &w, &b, NULL), 0);
    assert_same_events(&r, &b, "bytewise");
    rec_free(&r);
    rec_free(&b);
    wire_free(&w);
}
END_TEST

START_TEST(test_frame_close_payloads)
{
    ws_parser_cfg_t cfg = server_cfg(0);
    static const struct {
        const char *p;
        size_t len;
        uint16_t code;
    } ok[] = {
        {"", 0, WS_CLOSE_NO_STATUS}, {"\x03\xe8", 2, 1000},
        {"\x03\xeb", 2, 1003},       {"\x03\xef", 2, 1007},
        {"\x03\xf3", 2, 1011},       {"\x03\xf4", 2, 1012},
        {"\x03\xf6", 2, 1014},       {"\x0b\xb8", 2, 3000},
        {"\x0f\x9f", 2, 3999},       {"\x0f\xa0", 2, 4000},
        {"\x13\x87", 2, 4999},       {"\x03\xe8\xce\xba\xe1\xbd\xb9", 7, 1000},
    };
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        wire_t w = {0};
        wire_frame(&w, FIN | WS_OP_CLOSE, ok[i].p, ok[i].len);
        rec_t r = {0};
        ck_assert_int_eq(feed_all(&cfg, &w, &r), 0);
        assert_event(&r, 0, 'C', WS_OP_CLOSE, ok[i].p, ok[i].len, ok[i].code);
        rec_free(&r);
        wire_free(&w);
    }
    /* A 125-byte close payload split across reads goes through the control buffer. */
    uint8_t big[125];
    big[0] = 0x03;
    big[1] = 0xe8;
    memset(big + 2, 'r', sizeof(big) - 2);
    wire_t w = {0};
    wire_frame(&w, FIN | WS_OP_CLOSE, big, sizeof(big));
    rec_t a = {0};
    ck_assert_int_eq(feed_bytewise(&cfg, &w, &a, NULL), 0);
    assert_event(&a, 0, 'C', WS_OP_CLOSE, big, sizeof(big), 1000);
    rec_free(&a);
    wire_free(&w);
}
END_TEST

/* ---- lengths ---------------------------------------------------------------------------- */

START_TEST(test_frame_length_encodings)
{
    ws_parser_cfg_t cfg = server_cfg(0);
    static const size_t sizes[] = {0, 1, 125, 126, 127, 65535, 65536, 70000};
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
        size_t n = sizes[i];
        uint8_t *payload = malloc(n ? n : 1);
        ck_assert_ptr_nonnull(payload);
        for (size_t j = 0; j < n; j++)
            payload[j] = (uint8_t)(j ^ (j >> 8));
        wire_t w = {0};
        wire_frame(&w, FIN | WS_OP_BINARY, payload, n);
        size_t hlen = w.len - n;
        ck_assert_uint_eq(hlen, n < 126 ? 6 : n <= 65535 ? 8 : 14);
        rec_t a = {0};
        ck_assert_int_eq(feed_all(&cfg, &w, &a), 0);
        assert_event(&a, 0, 'M', WS_OP_BINARY, payload, n, 0);
        /* Chunked in 1000-byte reads. */
        size_t cuts[128], n_cuts = 0;
        for (size_t c = 1000; c < w.len && n_cuts < 128; c += 1000)
            cuts[n_cuts++] = c;
        ws_parser_t p;
        ws_parser__init(&p, &cfg);
        rec_t b = {0};
        ck_assert_int_eq(feed_cuts(&p, &w, cuts, n_cuts, &b, NULL), 0);
        assert_same_events(&a, &b, "chunked");
        ws_parser__reset(&p);
        rec_free(&a);
        rec_free(&b);
        wire_free(&w);
        free(payload);
    }
}
END_TEST

/* Receivers accept non-minimal length encodings (RFC 6455 only obliges senders). */
START_TEST(test_frame_non_minimal_lengths)
{
    ws_parser_cfg_t cfg = server_cfg(0);
    static const uint8_t frames[][20] = {
        {0x81, 0xfe, 0x00, 0x05, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'},
        {0x81, 0xff, 0, 0, 0, 0, 0, 0, 0x00, 0x05, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o'},
    };
    static const size_t lens[] = {13, 19};
    for (size_t i = 0; i < 2; i++) {
        wire_t w = {0};
        wire_put(&w, frames[i], lens[i]);
        rec_t r = {0};
        ck_assert_int_eq(feed_all(&cfg, &w, &r), 0);
        assert_event(&r, 0, 'M', WS_OP_TEXT, "hello", 5, 0);
        rec_free(&r);
        wire_free(&w);
    }
}
END_TEST

START_TEST(test_frame_64bit_length_msb_rejected)
{
    ws_parser_cfg_t cfg = server_cfg(0);
    uint8_t h[14] = {0x82, 0xff, 0x80, 0, 0, 0, 0, 0, 0, 0x01, 1, 2, 3, 4};
    wire_t w = {0};
    wire_put(&w, h, sizeof(h));
    rec_t r = {0};
    ck_assert_int_eq(feed_all(&cfg, &w, &r), P1002);
    size_t fail_off;
    ck_assert_int_eq(feed_bytewise(&cfg, &w, &r, &fail_off), P1002);
    ck_assert_uint_eq(fail_off, sizeof(h)); /* decided once the header is complete */
    /* The largest legal length is accepted (and then waited for) when there is no limit. */
    h[2] = 0x7f;
    wire_t w2 = {0};
    wire_put(&w2, h, sizeof(h));
    ck_assert_int_eq(feed_all(&cfg, &w2, &r), 0);
    ck_assert_uint_eq(r.n, 0);
    wire_free(&w);
    wire_free(&w2);
}
END_TEST

/* ---- max_message_size ------------------------------------------------------------------- */

START_TEST(test_frame_max_message_size)
{
    ws_parser_cfg_t cfg = server_cfg(1000);
    uint8_t buf[1200];
    memset(buf, 'm', sizeof(buf));

    /* Exactly the limit passes, single frame and fragmented. */
    wire_t w = {0};
    wire_frame(&w, FIN | WS_OP_TEXT, buf, 1000);
    wire_frame(&w, WS_OP_BINARY, buf, 600);
    WF(&w, FIN | WS_OP_PING, "control frames do not count");
    wire_frame(&w, FIN | WS_OP_CONT, buf, 400);
    rec_t r = {0};
    ck_assert_int_eq(feed_all(&cfg, &w, &r), 0);
    ck_assert_uint_eq(r.n, 3);
    ck_assert_uint_eq(r.ev[0].len, 1000);
    ck_assert_uint_eq(r.ev[2].len, 1000);
    rec_free(&r);
    wire_free(&w);

    /* One byte over: rejected as soon as the header is in, before any payload. */
    wire_frame(&w, FIN | WS_OP_BINARY, buf, 1001);
    ws_parser_t p;
    ws_parser__init(&p, &cfg);
    size_t consumed;
    ck_assert_int_eq(ws_parser__feed(&p, w.b, 8, &consumed, &callbacks, &r), -WS_CLOSE_TOO_BIG);
    ws_parser__reset(&p);
    wire_free(&w);

    /* Fragmented: the second header pushes it over. */
    wire_frame(&w, WS_OP_TEXT, buf, 600);
    size_t second = w.len;
    wire_frame(&w, FIN | WS_OP_CONT, buf, 401);
    size_t fail_off;
    ck_assert_int_eq(feed_bytewise(&cfg, &w, &r, &fail_off), -WS_CLOSE_TOO_BIG);
    ck_assert_uint_eq(fail_off, second + 8);
    ck_assert_uint_eq(r.n, 0);
    wire_free(&w);

    /* A huge 64-bit length fails immediately, too. */
    uint8_t h[14] = {0x82, 0xff, 0x00, 0x00, 0x10, 0, 0, 0, 0, 0, 1, 2, 3, 4};
    wire_put(&w, h, sizeof(h));
    ck_assert_int_eq(feed_all(&cfg, &w, &r), -WS_CLOSE_TOO_BIG);
    wire_free(&w);
}
END_TEST

/* ---- discard mode (JSON path: answer too_large, keep the connection) ---------------------- */

START_TEST(test_frame_discard_oversize)
{
    ws_parser_cfg_t cfg = server_cfg(1000);
    uint8_t buf[5000];
    memset(buf, 'x', sizeof(buf));
    cfg.discard_limit = 4000;

    /* Oversize single frame and fragmented message are skipped and reported, and the message
     * after them is delivered normally (also fed byte by byte). */
    wire_t w = {0};
    wire_frame(&w, FIN | WS_OP_TEXT, buf, 1500);
    wire_frame(&w, WS_OP_TEXT, buf, 800);
    WF(&w, FIN | WS_OP_PING, "in between");
    wire_frame(&w, WS_OP_CONT, buf, 800);
    wire_frame(&w, FIN | WS_OP_CONT, buf, 10);
    WF(&w, FIN | WS_OP_TEXT, "after");
    rec_t r = {0};
    ck_assert_int_eq(feed_all(&cfg, &w, &r), 0);
    ck_assert_uint_eq(r.n, 4);
    ck_assert_int_eq(r.ev[0].kind, 'O');
    ck_assert_uint_eq(r.ev[0].skipped, 1500);
    ck_assert_int_eq(r.ev[1].kind, 'C');
    ck_assert_int_eq(r.ev[2].kind, 'O');
    ck_assert_uint_eq(r.ev[2].skipped, 1610);
    assert_event(&r, 3, 'M', WS_OP_TEXT, "after", 5, 0);
    rec_t rb = {0};
    size_t off;
    ck_assert_int_eq(feed_bytewise(&cfg, &w, &rb, &off), 0);
    assert_same_events(&r, &rb, "discard bytewise");
    rec_free(&r);
    rec_free(&rb);
    wire_free(&w);

    /* Invalid UTF-8 inside a skipped message is not checked: it is never delivered. */
    memset(buf, 0xff, 1200);
    wire_frame(&w, FIN | WS_OP_TEXT, buf, 1200);
    ck_assert_int_eq(feed_all(&cfg, &w, &r), 0);
    ck_assert_uint_eq(r.n, 1);
    ck_assert_int_eq(r.ev[0].kind, 'O');
    rec_free(&r);
    wire_free(&w);

    /* Beyond the discard limit the connection fails with 1009 as before. */
    wire_frame(&w, FIN | WS_OP_BINARY, buf, 4001);
    ck_assert_int_eq(feed_all(&cfg, &w, &r), -WS_CLOSE_TOO_BIG);
    rec_free(&r);
    wire_free(&w);
    wire_frame(&w, WS_OP_BINARY, buf, 2000);
    wire_frame(&w, FIN | WS_OP_CONT, buf, 2001);
    ck_assert_int_eq(feed_all(&cfg, &w, &r), -WS_CLOSE_TOO_BIG);
    rec_free(&r);
    wire_free(&w);
}
END_TEST

/* ---- callbacks that stop the feed ------------------------------------------------------- */

START_TEST(test_frame_callback_stop_and_resume)
{
    ws_parser_cfg_t cfg = server_cfg(0);
    wire_t w = {0};
    WF(&w, FIN | WS_OP_TEXT, "one");
    size_t end1 = w.len;
    WF(&w, FIN | WS_OP_PING, "p");
    size_t end2 = w.len;
    WF(&w, WS_OP_TEXT, "tw");
    WF(&w, FIN | WS_OP_CONT, "o");
    size_t end3 = w.len;
    WF(&w, FIN | WS_OP_CLOSE, "\x03\xe8");
    size_t end4 = w.len;
    const size_t ends[] = {end1, end2, end3, end4};

    rec_t whole = {0};
    ck_assert_int_eq(feed_all(&cfg, &w, &whole), 0);
    ck_assert_uint_eq(whole.n, 4);

    for (size_t stop = 1; stop <= 4; stop++) {
        ws_parser_t p;
        ws_parser__init(&p, &cfg);
        rec_t r = {.stop_at = stop, .stop_rc = 42};
        uint8_t *copy = malloc(w.len);
        ck_assert_ptr_nonnull(copy);
        memcpy(copy, w.b, w.len);
        size_t consumed = 0;
        ck_assert_int_eq(ws_parser__feed(&p, copy, w.len, &consumed, &callbacks, &r), 42);
        /* The frame whose callback stopped the feed counts as consumed. */
        ck_assert_uint_eq(consumed, ends[stop - 1]);
        ck_assert_uint_eq(r.n, stop);
        size_t rest;
        ck_assert_int_eq(
            ws_parser__feed(&p, copy + consumed, w.len - consumed, &rest, &callbacks, &r), 0);
        ck_assert_uint_eq(rest, w.len - consumed);
        assert_same_events(&whole, &r, "resumed");
        ws_parser__reset(&p);
        rec_free(&r);
        free(copy);
    }
    rec_free(&whole);
    wire_free(&w);
}
END_TEST

/* A callback may stop the feed and the caller may drop the parser right away. */
START_TEST(test_frame_stop_on_close_then_free)
{
    ws_parser_cfg_t cfg = server_cfg(0);
    wire_t w = {0};
    WF(&w, WS_OP_TEXT, "partial");
    WF(&w, FIN | WS_OP_CLOSE, "\x03\xe8");
    WF(&w, FIN | WS_OP_CONT, " never read");
    ws_parser_t *p = malloc(sizeof(*p));
    ck_assert_ptr_nonnull(p);
    ws_parser__init(p, &cfg);
    rec_t r = {.stop_at = 1, .stop_rc = 1};
    size_t consumed;
    ck_assert_int_eq(ws_parser__feed(p, w.b, w.len, &consumed, &callbacks, &r), 1);
    assert_event(&r, 0, 'C', WS_OP_CLOSE, "\x03\xe8", 2, 1000);
    ck_assert_ptr_nonnull(p->msg); /* the partial message is still held ... */
    ws_parser__reset(p);           /* ... and released here (ASan checks the leak) */
    free(p);
    rec_free(&r);
    wire_free(&w);
}
END_TEST

/* ---- permessage-deflate ----------------------------------------------------------------- */

static void compress_or_die(ws_deflate_t *d, const void *in, size_t len, uint8_t **out,
                            size_t *out_len)
{
    ck_assert_int_eq(ws_deflate__compress(d, 15, in, len, out, out_len), 0);
}

START_TEST(test_frame_compressed_round_trip)
{
    ws_deflate_t *d = ws_deflate__new(1);
    ck_assert_ptr_nonnull(d);
    ws_parser_cfg_t cfg = server_cfg(0);
    cfg.pmd = true;
    cfg.inflater = d;

    static const char text[] = "{\"type\":\"chat\",\"text\":\"h\xc3\xa9llo h\xc3\xa9llo "
                               "h\xc3\xa9llo h\xc3\xa9llo h\xc3\xa9llo\"}";
    size_t tlen = sizeof(text) - 1;
    size_t blen = 20000;
    uint8_t *bin = malloc(blen);
    ck_assert_ptr_nonnull(bin);
    uint32_t seed = 99;
    for (size_t i = 0; i < blen; i++) {
        seed = seed * 1103515245u + 12345u;
        bin[i] = (uint8_t)(seed >> 16); /* incompressible */
    }
    uint8_t *ct, *cb, *ce;
    size_t ct_len, cb_len, ce_len;
    compress_or_die(d, text, tlen, &ct, &ct_len);
    compress_or_die(d, bin, blen, &cb, &cb_len);
    compress_or_die(d, "", 0, &ce, &ce_len);
    ck_assert_uint_lt(ct_len, tlen);

    wire_t w = {0};
    wire_frame(&w, FIN | RSV1 | WS_OP_TEXT, ct, ct_len);
    /* The same text fragmented in three frames, RSV1 only on the first, a ping in between. */
    size_t a = ct_len / 3, b = 2 * ct_len / 3;
    wire_frame(&w, RSV1 | WS_OP_TEXT, ct, a);
    WF(&w, FIN | WS_OP_PING, "mid");
    wire_frame(&w, WS_OP_CONT, ct + a, b - a);
    wire_frame(&w, FIN | WS_OP_CONT, ct + b, ct_len - b);
    wire_frame(&w, FIN | RSV1 | WS_OP_BINARY, cb, cb_len);
    WF(&w, FIN | WS_OP_TEXT, "plain after compressed");
    wire_frame(&w, FIN | RSV1 | WS_OP_TEXT, ce, ce_len);
    wire_frame(&w, FIN | RSV1 | WS_OP_BINARY, "", 0); /* only the implied 00 00 ff ff */

    rec_t r = {0};
    ck_assert_int_eq(feed_all(&cfg, &w, &r), 0);
    ck_assert_uint_eq(r.n, 7);
    assert_event(&r, 0, 'M', WS_OP_TEXT, text, tlen, 0);
    assert_event(&r, 1, 'C', WS_OP_PING, "mid", 3, 0);
    assert_event(&r, 2, 'M', WS_OP_TEXT, text, tlen, 0);
    assert_event(&r, 3, 'M', WS_OP_BINARY, bin, blen, 0);
    assert_event(&r, 4, 'M', WS_OP_TEXT, "plain after compressed", 22, 0);
    assert_event(&r, 5, 'M', WS_OP_TEXT, "", 0, 0);
    assert_event(&r, 6, 'M', WS_OP_BINARY, "", 0, 0);

    rec_t r2 = {0};
    ck_assert_int_eq(feed_bytewise(&cfg, &w, &r2, NULL), 0);
    assert_same_events(&r, &r2, "bytewise");

    rec_free(&r);
    rec_free(&r2);
    wire_free(&w);
    free(ct);
    free(cb);
    free(ce);
    free(bin);
    ws_deflate__free(d);
}
END_TEST

START_TEST(test_frame_compressed_bad_data)
{
    ws_deflate_t *d = ws_deflate__new(1);
    ck_assert_ptr_nonnull(d);
    ws_parser_cfg_t cfg = server_cfg(0);
    cfg.pmd = true;
    cfg.inflater = d;
    /* Invalid UTF-8 only visible after inflating. */
    uint8_t *c;
    size_t clen;
    compress_or_die(d, "bad \xed\xa0\x80 text", 12, &c, &clen);
    wire_t w = {0};
    wire_frame(&w, FIN | RSV1 | WS_OP_TEXT, c, clen);
    rec_t r = {0};
    ck_assert_int_eq(feed_all(&cfg, &w, &r), P1007);
    ck_assert_int_eq(feed_bytewise(&cfg, &w, &r, NULL), P1007);
    wire_free(&w);
    /* The same bytes as binary are fine. */
    wire_frame(&w, FIN | RSV1 | WS_OP_BINARY, c, clen);
    ck_assert_int_eq(feed_all(&cfg, &w, &r), 0);
    assert_event(&r, 0, 'M', WS_OP_BINARY, "bad \xed\xa0\x80 text", 12, 0);
    wire_free(&w);
    /* Corrupt deflate data (reserved block type 11). */
    WF(&w, FIN | RSV1 | WS_OP_BINARY, "\xff\xff\xff\xff");
    ck_assert_int_eq(feed_all(&cfg, &w, &r), P1007);
    wire_free(&w);
    rec_free(&r);
    free(c);
    ws_deflate__free(d);
}
END_TEST

START_TEST(test_frame_decompression_bomb)
{
    ws_deflate_t *d = ws_deflate__new(1);
    ck_assert_ptr_nonnull(d);
    ws_parser_cfg_t cfg = server_cfg(1u << 20);
    cfg.pmd = true;
    cfg.inflater = d;
    size_t n = 10u << 20;
    uint8_t *zeros = calloc(1, n);
    ck_assert_ptr_nonnull(zeros);
    uint8_t *c;
    size_t clen;
    compress_or_die(d, zeros, n, &c, &clen);
    ck_assert_uint_lt(clen, 1u << 20); /* small on the wire ... */
    wire_t w = {0};
    wire_frame(&w, FIN | RSV1 | WS_OP_BINARY, c, clen);
    rec_t r = {0};
    ck_assert_int_eq(feed_all(&cfg, &w, &r), -WS_CLOSE_TOO_BIG); /* ... too big inflated */
    ck_assert_uint_eq(r.n, 0);
    wire_free(&w);
    free(c);

    /* Exactly the limit inflated passes; one byte more does not, also when fragmented. */
    for (size_t extra = 0; extra <= 1; extra++) {
        compress_or_die(d, zeros, (1u << 20) + extra, &c, &clen);
        wire_frame(&w, RSV1 | WS_OP_BINARY, c, clen / 2);
        wire_frame(&w, FIN | WS_OP_CONT, c + clen / 2, clen - clen / 2);
        int rc = feed_all(&cfg, &w, &r);
        ck_assert_int_eq(rc, extra ? -WS_CLOSE_TOO_BIG : 0);
        wire_free(&w);
        free(c);
    }
    ck_assert_uint_eq(r.n, 1);
    ck_assert_uint_eq(r.ev[0].len, 1u << 20);
    rec_free(&r);
    free(zeros);
    ws_deflate__free(d);
}
END_TEST

/* ---- masking and encoders --------------------------------------------------------------- */

START_TEST(test_frame_mask_matches_naive)
{
    const uint8_t key[4] = {0x12, 0x9a, 0xfe, 0x01};
    uint8_t src[200], buf[216], want[200];
    for (size_t i = 0; i < sizeof(src); i++)
        src[i] = (uint8_t)(i * 31 + 7);
    for (size_t align = 0; align < 8; align++) {
        for (uint64_t off = 0; off < 9; off++) {
            for (size_t len = 0; len <= sizeof(src); len += (len < 40 ? 1 : 13)) {
                uint8_t *p = buf + align;
                memcpy(p, src, len);
                for (size_t i = 0; i < len; i++)
                    want[i] = src[i] ^ key[(off + i) % 4];
                ws_frame__mask(p, len, key, off);
                ck_assert_msg(memcmp(p, want, len) == 0, "align %zu off %u len %zu", align,
                              (unsigned)off, len);
            }
        }
    }
    /* Masking in two pieces at any split equals masking at once. */
    for (size_t cut = 0; cut <= 100; cut++) {
        memcpy(buf, src, 100);
        ws_frame__mask(buf, cut, key, 0);
        ws_frame__mask(buf + cut, 100 - cut, key, cut);
        for (size_t i = 0; i < 100; i++)
            ck_assert_uint_eq(buf[i], src[i] ^ key[i % 4]);
    }
}
END_TEST

START_TEST(test_frame_header_encoding)
{
    static const struct {
        uint64_t len;
        size_t size;
        const char *bytes;
    } rows[] = {
        {0, 2, "\x82\x00"},
        {125, 2, "\x82\x7d"},
        {126, 4, "\x82\x7e\x00\x7e"},
        {65535, 4, "\x82\x7e\xff\xff"},
        {65536, 10, "\x82\x7f\x00\x00\x00\x00\x00\x01\x00\x00"},
        {0x123456789aull, 10, "\x82\x7f\x00\x00\x00\x12\x34\x56\x78\x9a"},
    };
    uint8_t h[WS_FRAME_MAX_HEADER];
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        ck_assert_uint_eq(ws_frame__header(h, true, 0, WS_OP_BINARY, rows[i].len), rows[i].size);
        ck_assert_mem_eq(h, rows[i].bytes, rows[i].size);
        const uint8_t key[4] = {1, 2, 3, 4};
        size_t n = ws_frame__client_header(h, true, 0, WS_OP_BINARY, rows[i].len, key);
        ck_assert_uint_eq(n, rows[i].size + 4);
        ck_assert_uint_eq(h[1], (uint8_t)rows[i].bytes[1] | 0x80);
        ck_assert_mem_eq(h + 2, rows[i].bytes + 2, rows[i].size - 2);
        ck_assert_mem_eq(h + rows[i].size, key, 4);
    }
    ck_assert_uint_eq(ws_frame__header(h, false, WS_RSV1, WS_OP_TEXT, 3), 2);
    ck_assert_uint_eq(h[0], 0x41);
    ck_assert_uint_eq(ws_frame__header(h, true, WS_RSV1, WS_OP_CLOSE, 3), 2);
    ck_assert_uint_eq(h[0], 0xc8);

    /* Server frames parse back with a client-side parser. */
    ws_parser_cfg_t client = {.require_mask = false};
    static const size_t lens[] = {0, 5, 126, 65536};
    for (size_t i = 0; i < 4; i++) {
        wire_t w = {0};
        uint8_t *payload = calloc(1, lens[i] + 1);
        ck_assert_ptr_nonnull(payload);
        wire_put(&w, h, ws_frame__header(h, true, 0, WS_OP_TEXT, lens[i]));
        wire_put(&w, payload, lens[i]);
        rec_t r = {0};
        ck_assert_int_eq(feed_all(&client, &w, &r), 0);
        assert_event(&r, 0, 'M', WS_OP_TEXT, payload, lens[i], 0);
        rec_free(&r);
        wire_free(&w);
        free(payload);
    }
}
END_TEST

START_TEST(test_frame_close_code_valid)
{
    static const uint16_t valid[] = {1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010,
                                     1011, 1012, 1013, 1014, 3000, 3999, 4000, 4999};
    static const uint16_t invalid[] = {0,    1,    999,  1004, 1005, 1006, 1015,
                                       1016, 1100, 2000, 2999, 5000, 65535};
    for (size_t i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        ck_assert_msg(ws_frame__close_code_valid(valid[i]), "%u", valid[i]);
    for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++)
        ck_assert_msg(!ws_frame__close_code_valid(invalid[i]), "%u", invalid[i]);
}
END_TEST

START_TEST(test_frame_close_payload)
{
    uint8_t out[125];
    ck_assert_uint_eq(ws_frame__close_payload(out, 1000, NULL), 2);
    ck_assert_mem_eq(out, "\x03\xe8", 2);
    ck_assert_uint_eq(ws_frame__close_payload(out, 1009, "too big"), 9);
    ck_assert_mem_eq(out, "\x03\xf1too big", 9);

    char reason[300];
    memset(reason, 'a', 200);
    reason[200] = '\0';
    ck_assert_uint_eq(ws_frame__close_payload(out, 1001, reason), 125);

    /* A 2-, 3- and 4-byte character straddling the 123-byte cut is dropped entirely. */
    static const struct {
        const char *ch;
        size_t prefix;
        size_t want;
    } rows[] = {
        {"\xc3\xa9", 122, 2 + 122},         {"\xc3\xa9", 121, 2 + 123},
        {"\xe2\x82\xac", 121, 2 + 121},     {"\xe2\x82\xac", 120, 2 + 123},
        {"\xf0\x9f\x98\x80", 120, 2 + 120}, {"\xf0\x9f\x98\x80", 119, 2 + 123},
        {"\xf0\x9f\x98\x80", 122, 2 + 122},
    };
    for (size_t i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
        memset(reason, 'a', rows[i].prefix);
        strcpy(reason + rows[i].prefix, rows[i].ch);
        strcat(reason, "tail-tail");
        size_t n = ws_frame__close_payload(out, 1000, reason);
        ck_assert_msg(n == rows[i].want, "row %zu: %zu", i, n);
        ck_assert(utf8__valid(out + 2, n - 2));
        ck_assert_mem_eq(out + 2, reason, n - 2);
    }
}
END_TEST

Suite *ws_frame_suite(void);

Suite *ws_frame_suite(void)
{
    Suite *s = suite_create("ws_frame");
    struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"rfc_examples", test_frame_rfc_examples},
        {"zero_copy", test_frame_single_frame_message_is_zero_copy},
        {"split_releases_buffer", test_frame_split_message_releases_buffer},
        {"error_sticky", test_frame_error_is_sticky},
        {"fail_on_two_bytes", test_frame_fails_on_first_two_bytes},
        {"every_split_point", test_frame_every_split_point},
        {"random_chunks", test_frame_random_chunks},
        {"utf8_fragmented_fail_fast", test_frame_fragmented_text_fails_at_bad_byte},
        {"utf8_single_frame_fail_fast", test_frame_single_frame_text_fails_before_complete},
        {"utf8_multibyte_across_fragments", test_frame_multibyte_split_across_fragments},
        {"interleaved_control", test_frame_interleaved_control},
        {"close_payloads", test_frame_close_payloads},
        {"length_encodings", test_frame_length_encodings},
        {"non_minimal_lengths", test_frame_non_minimal_lengths},
        {"length_msb", test_frame_64bit_length_msb_rejected},
        {"max_message_size", test_frame_max_message_size},
        {"discard_oversize", test_frame_discard_oversize},
        {"callback_stop", test_frame_callback_stop_and_resume},
        {"stop_on_close_then_free", test_frame_stop_on_close_then_free},
        {"compressed_round_trip", test_frame_compressed_round_trip},
        {"compressed_bad_data", test_frame_compressed_bad_data},
        {"decompression_bomb", test_frame_decompression_bomb},
        {"mask", test_frame_mask_matches_naive},
        {"header_encoding", test_frame_header_encoding},
        {"close_code_valid", test_frame_close_code_valid},
        {"close_payload", test_frame_close_payload},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    TCase *tc = tcase_create("malformed");
    tcase_add_loop_test(tc, test_frame_malformed_table, 0, (int)N_BAD);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ws_frame_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
