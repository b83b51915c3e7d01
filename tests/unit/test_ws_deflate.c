/*
 * Unit tests for core/ws_deflate.c: per-message compression without context takeover, bounded
 * decompression, and Sec-WebSocket-Extensions negotiation (RFC 7692).
 *
 * The compressor's output is checked independently with a plain zlib raw inflater using the
 * negotiated window, so a stream that only our own inflater (window 15) could read is caught.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "ws_deflate.h"
#include "ws_frame.h"

/* Inflates raw deflate data (plus the 00 00 ff ff tail) with zlib directly, window `wbits`. */
static int zlib_inflate(int wbits, const uint8_t *in, size_t in_len, uint8_t *out, size_t cap,
                        size_t *out_len)
{
    z_stream z;
    memset(&z, 0, sizeof(z));
    if (inflateInit2(&z, -wbits) != Z_OK)
        return -1;
    uint8_t *buf = malloc(in_len + 4);
    ck_assert_ptr_nonnull(buf);
    memcpy(buf, in, in_len);
    memcpy(buf + in_len, "\x00\x00\xff\xff", 4);
    z.next_in = buf;
    z.avail_in = (uInt)(in_len + 4);
    z.next_out = out;
    z.avail_out = (uInt)cap;
    int ret = inflate(&z, Z_SYNC_FLUSH);
    *out_len = cap - z.avail_out;
    int rc = (ret == Z_OK || ret == Z_STREAM_END) && z.avail_in == 0 ? 0 : -1;
    inflateEnd(&z);
    free(buf);
    return rc;
}

static uint8_t *make_data(size_t n, int kind)
{
    uint8_t *b = malloc(n ? n : 1);
    ck_assert_ptr_nonnull(b);
    uint32_t seed = 7;
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1103515245u + 12345u;
        switch (kind) {
        case 0:
            b[i] = 0;
            break;
        case 1:
            b[i] = (uint8_t)("{\"type\":\"message\",\"body\":\"hello world\"}, "[i % 41]);
            break;
        default:
            b[i] = (uint8_t)(seed >> 16);
        }
    }
    return b;
}

START_TEST(test_deflate_round_trip_all_windows)
{
    static const size_t sizes[] = {0, 1, 100, 4096, 70000, 300000};
    ws_deflate_t *d = ws_deflate__new(1);
    ck_assert_ptr_nonnull(d);
    for (int wbits = 9; wbits <= 15; wbits++) {
        for (size_t si = 0; si < sizeof(sizes) / sizeof(sizes[0]); si++) {
            for (int kind = 0; kind < 3; kind++) {
                size_t n = sizes[si];
                uint8_t *in = make_data(n, kind);
                uint8_t *c, *out;
                size_t clen, olen;
                ck_assert_int_eq(ws_deflate__compress(d, wbits, in, n, &c, &clen), 0);
                ck_assert_ptr_nonnull(c);
                /* The trailing empty stored block is stripped (§7.2.1). */
                ck_assert(clen < 4 || memcmp(c + clen - 4, "\x00\x00\xff\xff", 4) != 0);
                ck_assert_int_eq(ws_deflate__decompress(d, c, clen, 0, &out, &olen), 0);
                ck_assert_uint_eq(olen, n);
                ck_assert(n == 0 || memcmp(out, in, n) == 0);
                free(out);
                /* A peer with exactly the negotiated window can inflate it. */
                uint8_t *check = malloc(n + 1);
                ck_assert_ptr_nonnull(check);
                ck_assert_int_eq(zlib_inflate(wbits, c, clen, check, n + 1, &olen), 0);
                ck_assert_uint_eq(olen, n);
                ck_assert(n == 0 || memcmp(check, in, n) == 0);
                free(check);
                free(c);
                free(in);
            }
        }
    }
    ws_deflate__free(d);
}
END_TEST

/* RFC 7692 §7.2.3.6: an empty message may be sent as the single byte 0x00. */
START_TEST(test_deflate_empty_message)
{
    ws_deflate_t *d = ws_deflate__new(1);
    ck_assert_ptr_nonnull(d);
    uint8_t *c, *out;
    size_t clen, olen;
    ck_assert_int_eq(ws_deflate__compress(d, 15, NULL, 0, &c, &clen), 0);
    ck_assert_uint_eq(clen, 1);
    ck_assert_uint_eq(c[0], 0x00);
    free(c);
    ck_assert_int_eq(ws_deflate__decompress(d, (const uint8_t *)"\x00", 1, 0, &out, &olen), 0);
    ck_assert_uint_eq(olen, 0);
    free(out);
    ck_assert_int_eq(ws_deflate__decompress(d, NULL, 0, 0, &out, &olen), 0);
    ck_assert_uint_eq(olen, 0);
    free(out);
    ws_deflate__free(d);
}
END_TEST

/* The RFC 7692 §7.2.3.1 example: "Hello" compressed is f2 48 cd c9 c9 07 00. */
START_TEST(test_deflate_rfc_example)
{
    ws_deflate_t *d = ws_deflate__new(1);
    ck_assert_ptr_nonnull(d);
    uint8_t *out;
    size_t olen;
    ck_assert_int_eq(ws_deflate__decompress(d, (const uint8_t *)"\xf2\x48\xcd\xc9\xc9\x07\x00", 7,
                                            0, &out, &olen),
                     0);
    ck_assert_uint_eq(olen, 5);
    ck_assert_mem_eq(out, "Hello", 5);
    free(out);
    /* §7.2.3.3: the same with a stored (uncompressed) block. */
    ck_assert_int_eq(ws_deflate__decompress(d, (const uint8_t *)"\x00\x05\x00\xfa\xffHello\x00", 11,
                                            0, &out, &olen),
                     0);
    ck_assert_uint_eq(olen, 5);
    ck_assert_mem_eq(out, "Hello", 5);
    free(out);
    /* §7.2.3.4: a final block (BFINAL) followed by an empty non-final block header. */
    ck_assert_int_eq(ws_deflate__decompress(d,
                                            (const uint8_t *)"\xf3\x48\xcd\xc9\xc9\x07\x00"
                                                             "\x00",
                                            8, 0, &out, &olen),
                     0);
    ck_assert_uint_eq(olen, 5);
    ck_assert_mem_eq(out, "Hello", 5);
    free(out);
    /* Without the extra byte, and with bytes after the final block (ignored, as zlib-based
     * peers do). */
    ck_assert_int_eq(ws_deflate__decompress(d,
                                            (const uint8_t *)"\xf3\x48\xcd\xc9\xc9\x07\x00"
                                                             "garbage",
                                            14, 0, &out, &olen),
                     0);
    ck_assert_uint_eq(olen, 5);
    ck_assert_mem_eq(out, "Hello", 5);
    free(out);
    /* The stream is reset for the next message after a final block. */
    ck_assert_int_eq(ws_deflate__decompress(d, (const uint8_t *)"\xf2\x48\xcd\xc9\xc9\x07\x00", 7,
                                            0, &out, &olen),
                     0);
    ck_assert_mem_eq(out, "Hello", 5);
    free(out);
    ws_deflate__free(d);
}
END_TEST

/* No context takeover: every message decodes on its own, in any order. */
START_TEST(test_deflate_messages_are_independent)
{
    ws_deflate_t *d = ws_deflate__new(1);
    ck_assert_ptr_nonnull(d);
    const char *a = "the same words again and again and again";
    uint8_t *ca, *cb, *out;
    size_t la, lb, olen;
    ck_assert_int_eq(ws_deflate__compress(d, 15, (const uint8_t *)a, strlen(a), &ca, &la), 0);
    ck_assert_int_eq(ws_deflate__compress(d, 15, (const uint8_t *)a, strlen(a), &cb, &lb), 0);
    /* With context takeover the second copy would be a back-reference into the first. */
    ck_assert_uint_eq(la, lb);
    ck_assert_mem_eq(ca, cb, la);
    ck_assert_int_eq(ws_deflate__decompress(d, cb, lb, 0, &out, &olen), 0);
    ck_assert_uint_eq(olen, strlen(a));
    free(out);
    ck_assert_int_eq(ws_deflate__decompress(d, ca, la, 0, &out, &olen), 0);
    ck_assert_mem_eq(out, a, olen);
    free(out);
    free(ca);
    free(cb);
    ws_deflate__free(d);
}
END_TEST

START_TEST(test_deflate_bad_arguments_and_data)
{
    ws_deflate_t *d = ws_deflate__new(1);
    ck_assert_ptr_nonnull(d);
    uint8_t *out = (uint8_t *)1;
    size_t olen = 99;
    ck_assert_int_eq(ws_deflate__compress(d, 8, (const uint8_t *)"x", 1, &out, &olen), -1);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(ws_deflate__compress(d, 16, (const uint8_t *)"x", 1, &out, &olen), -1);
    static const struct {
        const char *in;
        size_t len;
    } bad[] = {
        {"\xff\xff\xff\xff", 4},     /* reserved block type */
        {"\x07", 1},                 /* BTYPE 11 */
        {"\x00\x05\x00\x00\x00", 5}, /* stored block with LEN/NLEN mismatch */
        {"\xfc\xff\xff\xff\xff", 5}, /* dynamic block with impossible code lengths */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = ws_deflate__decompress(d, (const uint8_t *)bad[i].in, bad[i].len, 0, &out, &olen);
        ck_assert_msg(rc == -WS_CLOSE_BAD_DATA, "bad[%zu]: %d", i, rc);
        ck_assert_ptr_null(out);
    }
    /* The stream is usable again after an error. */
    ck_assert_int_eq(ws_deflate__decompress(d, (const uint8_t *)"\xf2\x48\xcd\xc9\xc9\x07\x00", 7,
                                            0, &out, &olen),
                     0);
    free(out);
    ws_deflate__free(d);
    ws_deflate__free(NULL);
}
END_TEST

START_TEST(test_deflate_max_len)
{
    ws_deflate_t *d = ws_deflate__new(1);
    ck_assert_ptr_nonnull(d);
    size_t n = 100000;
    uint8_t *in = make_data(n, 1);
    uint8_t *c, *out;
    size_t clen, olen;
    ck_assert_int_eq(ws_deflate__compress(d, 15, in, n, &c, &clen), 0);
    ck_assert_int_eq(ws_deflate__decompress(d, c, clen, n, &out, &olen), 0);
    ck_assert_uint_eq(olen, n);
    free(out);
    out = (uint8_t *)1;
    ck_assert_int_eq(ws_deflate__decompress(d, c, clen, n - 1, &out, &olen), -WS_CLOSE_TOO_BIG);
    ck_assert_ptr_null(out);
    ck_assert_int_eq(ws_deflate__decompress(d, c, clen, 1, &out, &olen), -WS_CLOSE_TOO_BIG);
    free(c);
    free(in);
    ws_deflate__free(d);
}
END_TEST

/* 10 MB of zeros compress to a few KB; with max 1 MB inflation stops at 1 MB + 1 byte. */
START_TEST(test_deflate_bomb_capped)
{
    ws_deflate_t *d = ws_deflate__new(9);
    ck_assert_ptr_nonnull(d);
    size_t n = 10u << 20;
    uint8_t *zeros = calloc(1, n);
    ck_assert_ptr_nonnull(zeros);
    uint8_t *c, *out;
    size_t clen, olen;
    ck_assert_int_eq(ws_deflate__compress(d, 15, zeros, n, &c, &clen), 0);
    ck_assert_uint_lt(clen, 64 * 1024);
    ck_assert_int_eq(ws_deflate__decompress(d, c, clen, 1u << 20, &out, &olen), -WS_CLOSE_TOO_BIG);
    ck_assert_ptr_null(out);
    /* Unlimited, it inflates fully. */
    ck_assert_int_eq(ws_deflate__decompress(d, c, clen, 0, &out, &olen), 0);
    ck_assert_uint_eq(olen, n);
    ck_assert(memcmp(out, zeros, n) == 0);
    free(out);
    free(c);
    free(zeros);
    ws_deflate__free(d);
}
END_TEST

/* ---- negotiation ------------------------------------------------------------------------ */

#define BASE "permessage-deflate; server_no_context_takeover; client_no_context_takeover"

typedef struct nego_row {
    const char *header;
    int rc;
    const char *resp; /* when rc == 1 */
    uint8_t smwb, cmwb;
} nego_row_t;

/* clang-format off */
static const nego_row_t nego_rows[] = {
    {"permessage-deflate", 1, BASE, 15, 15},
    {"PerMessage-Deflate", 1, BASE, 15, 15},
    {"permessage-deflate; client_max_window_bits", 1, BASE, 15, 15},
    {"permessage-deflate; client_max_window_bits=10", 1, BASE "; client_max_window_bits=10", 15,
     10},
    {"permessage-deflate; client_max_window_bits=8", 1, BASE "; client_max_window_bits=8", 15, 8},
    {"permessage-deflate; server_max_window_bits=10", 1, BASE "; server_max_window_bits=10", 10,
     15},
    {"permessage-deflate; server_max_window_bits=9", 1, BASE "; server_max_window_bits=9", 9, 15},
    {"permessage-deflate; server_max_window_bits=15; client_max_window_bits=15", 1,
     BASE "; server_max_window_bits=15; client_max_window_bits=15", 15, 15},
    {"permessage-deflate; server_no_context_takeover", 1, BASE, 15, 15},
    {"permessage-deflate; client_no_context_takeover", 1, BASE, 15, 15},
    {"permessage-deflate; server_no_context_takeover; client_no_context_takeover", 1, BASE, 15,
     15},
    {"permessage-deflate; server_max_window_bits=\"12\"", 1, BASE "; server_max_window_bits=12",
     12, 15},
    {"permessage-deflate; client_max_window_bits=\"9\"", 1, BASE "; client_max_window_bits=9", 15,
     9},
    {"permessage-deflate; client_max_window_bits=\"1\\1\"", 1,
     BASE "; client_max_window_bits=11", 15, 11},
    {"  permessage-deflate ;  server_max_window_bits = 11 ;client_no_context_takeover  ", 1,
     BASE "; server_max_window_bits=11", 11, 15},
    {"permessage-deflate\t;\tclient_max_window_bits", 1, BASE, 15, 15},
    /* Declined offers and fallbacks to a later one. */
    {"", 0, NULL, 0, 0},
    {"x-webkit-deflate-frame", 0, NULL, 0, 0},
    {"x-webkit-deflate-frame, permessage-deflate; client_max_window_bits", 1, BASE, 15, 15},
    {"permessage-deflate; server_max_window_bits=8", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=8, permessage-deflate", 1, BASE, 15, 15},
    {"permessage-deflate; server_max_window_bits=8, "
     "permessage-deflate; server_max_window_bits=9",
     1, BASE "; server_max_window_bits=9", 9, 15},
    {"permessage-deflate; server_max_window_bits", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=16", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=7", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=08", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=010", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=abc", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=\"\"", 0, NULL, 0, 0},
    {"permessage-deflate; client_max_window_bits=16", 0, NULL, 0, 0},
    {"permessage-deflate; client_max_window_bits=7", 0, NULL, 0, 0},
    {"permessage-deflate; server_no_context_takeover=1", 0, NULL, 0, 0},
    {"permessage-deflate; client_no_context_takeover=\"\"", 0, NULL, 0, 0},
    {"permessage-deflate; foo", 0, NULL, 0, 0},
    {"permessage-deflate; foo=1, permessage-deflate", 1, BASE, 15, 15},
    {"permessage-deflate; server_no_context_takeover; server_no_context_takeover", 0, NULL, 0, 0},
    {"permessage-deflate; client_max_window_bits; client_max_window_bits=10", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=10; server_max_window_bits=10", 0, NULL, 0, 0},
    /* Syntax errors decline the offer; the parser resynchronises at the next comma. */
    {"permessage-deflate;", 0, NULL, 0, 0},
    {"permessage-deflate; =x, permessage-deflate", 1, BASE, 15, 15},
    {"permessage-deflate; a=\"x,y\", permessage-deflate; client_max_window_bits=12", 1,
     BASE "; client_max_window_bits=12", 15, 12},
    {"permessage-deflate; server_max_window_bits=\"10", 0, NULL, 0, 0},
    {"permessage-deflate client_max_window_bits", 0, NULL, 0, 0},
    {"permessage-deflate; server_max_window_bits=1 0", 0, NULL, 0, 0},
    {",, ,permessage-deflate,", 1, BASE, 15, 15},
    {"permessage-deflate\xc3\xa9", 0, NULL, 0, 0},
    {"permessage-deflatex", 0, NULL, 0, 0},
    {"deflate-stream, permessage-deflate", 1, BASE, 15, 15},
};
/* clang-format on */

#define N_NEGO (sizeof(nego_rows) / sizeof(nego_rows[0]))

START_TEST(test_deflate_negotiate_table)
{
    const nego_row_t *row = &nego_rows[_i];
    ws_pmd_params_t params;
    char resp[256];
    memset(&params, 0xaa, sizeof(params));
    int rc = ws_deflate__negotiate(row->header, &params, resp, sizeof(resp));
    ck_assert_msg(rc == row->rc, "'%s': rc %d, expected %d", row->header, rc, row->rc);
    if (rc == 1) {
        ck_assert_msg(strcmp(resp, row->resp) == 0, "'%s': response '%s'", row->header, resp);
        ck_assert(params.enabled);
        ck_assert_uint_eq(params.server_max_window_bits, row->smwb);
        ck_assert_uint_eq(params.client_max_window_bits, row->cmwb);
    } else {
        ck_assert(!params.enabled);
        ck_assert_str_eq(resp, "");
    }
}
END_TEST

START_TEST(test_deflate_negotiate_small_buffer)
{
    ws_pmd_params_t params;
    char resp[256];
    const char *h = "permessage-deflate; server_max_window_bits=10";
    ck_assert_int_eq(ws_deflate__negotiate(h, &params, resp, sizeof(resp)), 1);
    size_t need = strlen(resp) + 1;
    ck_assert_int_eq(ws_deflate__negotiate(h, &params, resp, need), 1);
    ck_assert_int_eq(ws_deflate__negotiate(h, &params, resp, need - 1), 0);
    ck_assert(!params.enabled);
    ck_assert_str_eq(resp, "");
    ck_assert_int_eq(ws_deflate__negotiate(NULL, &params, resp, sizeof(resp)), 0);
}
END_TEST

/* A negotiated window is usable by the compressor as is. */
START_TEST(test_deflate_negotiated_window_compresses)
{
    ws_pmd_params_t params;
    char resp[256];
    for (int w = 9; w <= 15; w++) {
        char h[96];
        snprintf(h, sizeof(h), "permessage-deflate; server_max_window_bits=%d", w);
        ck_assert_int_eq(ws_deflate__negotiate(h, &params, resp, sizeof(resp)), 1);
        ws_deflate_t *d = ws_deflate__new(1);
        ck_assert_ptr_nonnull(d);
        uint8_t *in = make_data(50000, 1), *c, check[50001];
        size_t clen, olen;
        ck_assert_int_eq(
            ws_deflate__compress(d, params.server_max_window_bits, in, 50000, &c, &clen), 0);
        ck_assert_int_eq(zlib_inflate(w, c, clen, check, sizeof(check), &olen), 0);
        ck_assert_uint_eq(olen, 50000);
        ck_assert(memcmp(check, in, olen) == 0);
        free(c);
        free(in);
        ws_deflate__free(d);
    }
}
END_TEST

Suite *ws_deflate_suite(void);

Suite *ws_deflate_suite(void)
{
    Suite *s = suite_create("ws_deflate");
    struct {
        const char *name;
        const TTest *test;
    } cases[] = {
        {"round_trip", test_deflate_round_trip_all_windows},
        {"empty_message", test_deflate_empty_message},
        {"rfc_example", test_deflate_rfc_example},
        {"independent_messages", test_deflate_messages_are_independent},
        {"bad_input", test_deflate_bad_arguments_and_data},
        {"max_len", test_deflate_max_len},
        {"bomb", test_deflate_bomb_capped},
        {"negotiate_small_buffer", test_deflate_negotiate_small_buffer},
        {"negotiated_window", test_deflate_negotiated_window_compresses},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 60);
        tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    TCase *tc = tcase_create("negotiate");
    tcase_add_loop_test(tc, test_deflate_negotiate_table, 0, (int)N_NEGO);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(ws_deflate_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
