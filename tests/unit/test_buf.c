/*
 * Unit tests for core/buf.c: reference counting, the frame header written in front of the
 * payload (parsed back here byte by byte, RFC 6455 §5.2), the cached permessage-deflate variant
 * and the live-buffer counter that the leak checks rely on.
 */
#include "buf.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "ws_deflate.h"
#include "ws_frame.h"

static size_t g_baseline;
static ws_deflate_t *g_d;

static void setup(void)
{
    g_baseline = buf__live();
    g_d = ws_deflate__new(1);
    ck_assert_ptr_nonnull(g_d);
}

static void teardown(void)
{
    ws_deflate__free(g_d);
    g_d = NULL;
    ck_assert_uint_eq(buf__live(), g_baseline);
}

/* A compressible payload: JSON-ish text repeated. */
static char *compressible(size_t len)
{
    static const char pat[] = "{\"type\":\"chat\",\"room\":\"lobby\",\"text\":\"hello\"}";
    char *s = malloc(len + 1);

    for (size_t i = 0; i < len; i++)
        s[i] = pat[i % (sizeof(pat) - 1)];
    s[len] = '\0';
    return s;
}

/* Incompressible bytes from a fixed-seed generator (deflate only adds framing overhead). */
static uint8_t *random_bytes(size_t len)
{
    uint8_t *p = malloc(len);
    uint64_t x = 0x9E3779B97F4A7C15ull;

    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        p[i] = (uint8_t)(x >> 24);
    }
    return p;
}

/* Parses a server frame header; returns the header length, fills the fields. */
static size_t parse_header(const uint8_t *f, size_t flen, uint8_t *b0, uint64_t *len)
{
    size_t h = 2;

    ck_assert_uint_ge(flen, 2);
    *b0 = f[0];
    ck_assert_msg((f[1] & 0x80) == 0, "server frames must not be masked");
    *len = f[1] & 0x7F;
    if (*len == 126) {
        ck_assert_uint_ge(flen, 4);
        *len = ((uint64_t)f[2] << 8) | f[3];
        h = 4;
    } else if (*len == 127) {
        ck_assert_uint_ge(flen, 10);
        *len = 0;
        for (int i = 0; i < 8; i++)
            *len = (*len << 8) | f[2 + i];
        h = 10;
    }
    return h;
}

START_TEST(test_refcount)
{
    wshub_buf_t *b = buf__new(WS_OP_TEXT, "abc", 3);

    ck_assert_uint_eq(buf__live(), g_baseline + 1);
    ck_assert_uint_eq(b->refs, 1);
    ck_assert_ptr_eq(buf__ref(b), b);
    ck_assert_uint_eq(b->refs, 2);
    buf__unref(b);
    ck_assert_uint_eq(b->refs, 1);
    ck_assert_uint_eq(buf__live(), g_baseline + 1);
    buf__unref(b);
    ck_assert_uint_eq(buf__live(), g_baseline);
    buf__unref(NULL); /* no-op */
    ck_assert_uint_eq(buf__live(), g_baseline);
}
END_TEST

static const struct {
    size_t len;
    size_t hdr_len;
    uint8_t len7; /* the 7-bit length field */
} frame_sizes[] = {
    {0, 2, 0},     {1, 2, 1},       {125, 2, 125},    {126, 4, 126},
    {127, 4, 126}, {65535, 4, 126}, {65536, 10, 127}, {70000, 10, 127},
};

START_TEST(test_frame_encoding)
{
    size_t len = frame_sizes[_i].len;
    uint8_t *payload = random_bytes(len + 1);
    uint8_t opcode = (_i % 2) ? WS_OP_BINARY : WS_OP_TEXT;
    wshub_buf_t *b = buf__new(opcode, payload, len);
    size_t flen, h;
    const uint8_t *f = buf__frame(b, &flen);
    uint8_t b0;
    uint64_t plen;

    ck_assert_uint_eq(b->len, len);
    ck_assert_uint_eq(b->hdr_len, frame_sizes[_i].hdr_len);
    ck_assert_uint_eq(flen, frame_sizes[_i].hdr_len + len);
    ck_assert_uint_eq(f[1] & 0x7F, frame_sizes[_i].len7);
    h = parse_header(f, flen, &b0, &plen);
    ck_assert_uint_eq(h, frame_sizes[_i].hdr_len);
    ck_assert_uint_eq(b0, 0x80 | opcode); /* FIN, no RSV */
    ck_assert_uint_eq(plen, len);
    ck_assert(memcmp(f + h, payload, len) == 0);
    ck_assert_ptr_eq(f + h, buf__payload(b));
    ck_assert_uint_eq(buf__payload(b)[len], 0); /* NUL-terminated */
    buf__unref(b);
    free(payload);
}
END_TEST

START_TEST(test_null_data_is_filled_later)
{
    wshub_buf_t *b = buf__new(WS_OP_TEXT, NULL, 5);
    size_t flen;
    const uint8_t *f;

    memcpy(buf__payload(b), "hello", 5);
    f = buf__frame(b, &flen);
    ck_assert_uint_eq(flen, 7);
    ck_assert_uint_eq(f[0], 0x81);
    ck_assert_uint_eq(f[1], 5);
    ck_assert(memcmp(f + 2, "hello", 5) == 0);
    ck_assert_uint_eq(buf__payload(b)[5], 0);
    buf__unref(b);
}
END_TEST

START_TEST(test_control_frame)
{
    wshub_buf_t *b = buf__new(WS_OP_PING, "p", 1);
    size_t flen;
    const uint8_t *f = buf__frame(b, &flen);

    ck_assert_uint_eq(flen, 3);
    ck_assert_uint_eq(f[0], 0x89);
    ck_assert_uint_eq(f[1], 1);
    ck_assert_uint_eq(f[2], 'p');
    buf__unref(b);
}
END_TEST

/* Inflates a compressed variant's payload back. */
static void assert_inflates_to(wshub_buf_t *z, const void *orig, size_t orig_len)
{
    uint8_t *out = NULL;
    size_t out_len = 0;

    ck_assert_int_eq(ws_deflate__decompress(g_d, buf__payload(z), z->len, 0, &out, &out_len), 0);
    ck_assert_uint_eq(out_len, orig_len);
    ck_assert(memcmp(out, orig, orig_len) == 0);
    free(out);
}

START_TEST(test_deflate_cached)
{
    char *text = compressible(4000);
    wshub_buf_t *b = buf__new(WS_OP_TEXT, text, 4000);
    wshub_buf_t *z1, *z2;
    size_t flen, h;
    const uint8_t *f;
    uint8_t b0;
    uint64_t plen;

    z1 = buf__for_deflate(b, g_d, 15, 256);
    ck_assert_ptr_ne(z1, b);
    ck_assert_ptr_eq(b->deflated, z1);
    ck_assert(b->deflate_tried);
    ck_assert_uint_eq(z1->rsv, WS_RSV1);
    ck_assert_uint_lt(z1->len, b->len);
    ck_assert_uint_eq(z1->refs, 2); /* b's cache + ours */
    f = buf__frame(z1, &flen);
    h = parse_header(f, flen, &b0, &plen);
    ck_assert_uint_eq(b0, 0x80 | WS_RSV1 | WS_OP_TEXT);
    ck_assert_uint_eq(plen, z1->len);
    ck_assert_uint_eq(h + plen, flen);
    assert_inflates_to(z1, text, 4000);

    z2 = buf__for_deflate(b, g_d, 15, 256);
    ck_assert_ptr_eq(z2, z1); /* compressed once, shared */
    ck_assert_uint_eq(z1->refs, 3);
    ck_assert_uint_eq(buf__live(), g_baseline + 2);

    /* The original may go first: the variant lives while referenced. */
    buf__unref(b);
    ck_assert_uint_eq(z1->refs, 2);
    buf__unref(z2);
    assert_inflates_to(z1, text, 4000);
    buf__unref(z1);
    free(text);
}
END_TEST

START_TEST(test_deflate_of_variant_is_itself)
{
    char *text = compressible(1000);
    wshub_buf_t *b = buf__new(WS_OP_TEXT, text, 1000);
    wshub_buf_t *z = buf__for_deflate(b, g_d, 15, 0);
    wshub_buf_t *zz = buf__for_deflate(z, g_d, 15, 0);

    ck_assert_ptr_ne(z, b);
    ck_assert_ptr_eq(zz, z);
    ck_assert_ptr_null(z->deflated);
    buf__unref(zz);
    buf__unref(z);
    buf__unref(b);
    free(text);
}
END_TEST

START_TEST(test_deflate_under_min_size)
{
    char *text = compressible(255);
    wshub_buf_t *b = buf__new(WS_OP_TEXT, text, 255);
    wshub_buf_t *r = buf__for_deflate(b, g_d, 15, 256);

    ck_assert_ptr_eq(r, b);
    ck_assert_uint_eq(b->refs, 2);
    ck_assert(!b->deflate_tried);
    ck_assert_ptr_null(b->deflated);
    buf__unref(r);
    /* At exactly min_size it is compressed. */
    wshub_buf_t *b2 = buf__new(WS_OP_TEXT, text, 255);
    wshub_buf_t *z = buf__for_deflate(b2, g_d, 15, 255);
    ck_assert_ptr_ne(z, b2);
    buf__unref(z);
    buf__unref(b2);
    buf__unref(b);
    free(text);
}
END_TEST

START_TEST(test_deflate_no_gain)
{
    uint8_t *bytes = random_bytes(2000);
    wshub_buf_t *b = buf__new(WS_OP_BINARY, bytes, 2000);
    wshub_buf_t *r1 = buf__for_deflate(b, g_d, 15, 0);
    wshub_buf_t *r2;

    ck_assert_ptr_eq(r1, b);
    ck_assert(b->deflate_tried);
    ck_assert_ptr_null(b->deflated);
    ck_assert_uint_eq(buf__live(), g_baseline + 1); /* the failed attempt left nothing */
    r2 = buf__for_deflate(b, g_d, 15, 0);
    ck_assert_ptr_eq(r2, b);
    ck_assert_uint_eq(b->refs, 3);
    buf__unref(r1);
    buf__unref(r2);
    buf__unref(b);
    free(bytes);
}
END_TEST

START_TEST(test_deflate_small_window_uncached)
{
    char *text = compressible(3000);
    wshub_buf_t *b = buf__new(WS_OP_TEXT, text, 3000);
    wshub_buf_t *z1 = buf__for_deflate(b, g_d, 9, 0);
    wshub_buf_t *z2 = buf__for_deflate(b, g_d, 9, 0);

    ck_assert_ptr_ne(z1, b);
    ck_assert_ptr_ne(z2, b);
    ck_assert_ptr_ne(z1, z2); /* a fresh buffer each time */
    ck_assert_ptr_null(b->deflated);
    ck_assert(!b->deflate_tried);
    ck_assert_uint_eq(z1->refs, 1);
    ck_assert_uint_eq(z1->rsv, WS_RSV1);
    assert_inflates_to(z1, text, 3000);
    assert_inflates_to(z2, text, 3000);
    ck_assert_uint_eq(buf__live(), g_baseline + 3);
    buf__unref(z1);
    buf__unref(z2);
    /* The 15-bit variant is still made and cached independently. */
    wshub_buf_t *z3 = buf__for_deflate(b, g_d, 15, 0);
    ck_assert_ptr_eq(b->deflated, z3);
    buf__unref(z3);
    buf__unref(b);
    free(text);
}
END_TEST

START_TEST(test_deflate_skips_control_and_empty)
{
    char *text = compressible(100);
    wshub_buf_t *ping = buf__new(WS_OP_PING, text, 100);
    wshub_buf_t *empty = buf__new(WS_OP_TEXT, "", 0);
    wshub_buf_t *r1 = buf__for_deflate(ping, g_d, 15, 0);
    wshub_buf_t *r2 = buf__for_deflate(empty, g_d, 15, 0);

    ck_assert_ptr_eq(r1, ping);
    ck_assert_ptr_eq(r2, empty);
    ck_assert(!ping->deflate_tried);
    buf__unref(r1);
    buf__unref(r2);
    buf__unref(ping);
    buf__unref(empty);
    free(text);
}
END_TEST

START_TEST(test_live_counter_many)
{
    wshub_buf_t *v[100];
    char *text = compressible(600);

    for (int i = 0; i < 100; i++) {
        v[i] = buf__new(WS_OP_TEXT, text, 600);
        if (i % 3 == 0)
            buf__unref(buf__for_deflate(v[i], g_d, 15, 0));
    }
    ck_assert_uint_eq(buf__live(), g_baseline + 100 + 34);
    for (int i = 0; i < 100; i++)
        buf__unref(v[i]);
    ck_assert_uint_eq(buf__live(), g_baseline);
    free(text);
}
END_TEST

static TCase *tcase(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, setup, teardown);
    suite_add_tcase(s, tc);
    return tc;
}

Suite *buf_suite(void);

Suite *buf_suite(void)
{
    Suite *s = suite_create("buf");

    tcase_add_test(tcase(s, "refcount"), test_refcount);
    tcase_add_loop_test(tcase(s, "frame_encoding"), test_frame_encoding, 0,
                        (int)(sizeof(frame_sizes) / sizeof(frame_sizes[0])));
    tcase_add_test(tcase(s, "null_data"), test_null_data_is_filled_later);
    tcase_add_test(tcase(s, "control_frame"), test_control_frame);
    tcase_add_test(tcase(s, "deflate_cached"), test_deflate_cached);
    tcase_add_test(tcase(s, "deflate_variant_itself"), test_deflate_of_variant_is_itself);
    tcase_add_test(tcase(s, "deflate_min_size"), test_deflate_under_min_size);
    tcase_add_test(tcase(s, "deflate_no_gain"), test_deflate_no_gain);
    tcase_add_test(tcase(s, "deflate_window_uncached"), test_deflate_small_window_uncached);
    tcase_add_test(tcase(s, "deflate_control_empty"), test_deflate_skips_control_and_empty);
    tcase_add_test(tcase(s, "live_counter"), test_live_counter_many);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(buf_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
