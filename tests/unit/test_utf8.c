/*
 * Unit tests for core/utf8.c: the incremental UTF-8 validator.
 *
 * The vectors follow the Autobahn|Testsuite section 6 (itself based on Markus Kuhn's UTF-8
 * stress test): boundary code points, overlong forms, UTF-16 surrogates, code points above
 * U+10FFFF and truncated sequences. Each vector also records the index of the first byte at
 * which a fail-fast validator must reject, and an exhaustive comparison against a plain
 * reference decoder covers every 1-, 2- and 3-byte sequence and every 4-byte sequence that
 * starts with a 4-byte lead.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

typedef struct utf8_vec {
    const char *name;
    const char *bytes;
    size_t len;
    bool valid;  /* complete and valid */
    int fail_at; /* index of the byte at which feeding rejects, -1 = never rejects */
} utf8_vec_t;

/* clang-format off */
#define V(name, lit, valid, fail_at) {name, lit, sizeof(lit) - 1, valid, fail_at}

static const utf8_vec_t vectors[] = {
    /* valid */
    V("empty", "", true, -1),
    V("ascii", "Hello-2-World", true, -1),
    V("kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", true, -1),
    V("U+0000", "\x00", true, -1),
    V("U+007F", "\x7f", true, -1),
    V("U+0080", "\xc2\x80", true, -1),
    V("U+07FF", "\xdf\xbf", true, -1),
    V("U+0800", "\xe0\xa0\x80", true, -1),
    V("U+D7FF", "\xed\x9f\xbf", true, -1),
    V("U+E000", "\xee\x80\x80", true, -1),
    V("U+FFFD", "\xef\xbf\xbd", true, -1),
    V("U+FFFE noncharacter", "\xef\xbf\xbe", true, -1),
    V("U+FFFF noncharacter", "\xef\xbf\xbf", true, -1),
    V("U+10000", "\xf0\x90\x80\x80", true, -1),
    V("U+10FFFF", "\xf4\x8f\xbf\xbf", true, -1),
    V("U+1F600 emoji", "\xf0\x9f\x98\x80", true, -1),
    V("mixed", "a\xc3\xa9z\xe2\x82\xac!\xf0\x9d\x84\x9e.", true, -1),
    /* unexpected continuation bytes */
    V("lone 80", "\x80", false, 0),
    V("lone BF", "\xbf", false, 0),
    V("ascii then 80", "abc\x80", false, 3),
    V("two continuations", "\xc2\x80\x80", false, 2),
    /* lead bytes followed by a non-continuation */
    V("C2 then ascii", "\xc2\x41", false, 1),
    V("E1 80 then ascii", "\xe1\x80\x41", false, 2),
    V("F1 80 80 then ascii", "\xf1\x80\x80\x41", false, 3),
    V("lead then lead", "\xc2\xc2\x80", false, 1),
    /* overlong forms */
    V("overlong / C0 AF", "\xc0\xaf", false, 0),
    V("overlong / E0 80 AF", "\xe0\x80\xaf", false, 1),
    V("overlong / F0 80 80 AF", "\xf0\x80\x80\xaf", false, 1),
    V("overlong max C1 BF", "\xc1\xbf", false, 0),
    V("overlong max E0 9F BF", "\xe0\x9f\xbf", false, 1),
    V("overlong max F0 8F BF BF", "\xf0\x8f\xbf\xbf", false, 1),
    V("overlong NUL C0 80", "\xc0\x80", false, 0),
    V("overlong NUL E0 80 80", "\xe0\x80\x80", false, 1),
    V("5-byte F8", "\xf8\x88\x80\x80\x80", false, 0),
    V("6-byte FC", "\xfc\x84\x80\x80\x80\x80", false, 0),
    /* surrogates */
    V("U+D800", "\xed\xa0\x80", false, 1),
    V("U+DB7F", "\xed\xad\xbf", false, 1),
    V("U+DC00", "\xed\xb0\x80", false, 1),
    V("U+DFFF", "\xed\xbf\xbf", false, 1),
    V("surrogate pair", "\xed\xa0\x80\xed\xb0\x80", false, 1),
    V("valid then surrogate", "ok \xed\xa0\x80", false, 4),
    /* beyond U+10FFFF */
    V("U+110000", "\xf4\x90\x80\x80", false, 1),
    V("F4 BF", "\xf4\xbf\xbf\xbf", false, 1),
    V("F5", "\xf5\x80\x80\x80", false, 0),
    V("F7 BF", "\xf7\xbf\xbf\xbf", false, 0),
    V("FE", "\xfe", false, 0),
    V("FF", "\xff", false, 0),
    /* truncated at the end: never rejected while feeding, invalid as a whole */
    V("truncated C2", "\xc2", false, -1),
    V("truncated E0 A0", "\xe0\xa0", false, -1),
    V("truncated ED 9F", "\xed\x9f", false, -1),
    V("truncated F0 90 80", "\xf0\x90\x80", false, -1),
    V("truncated F4 8F BF", "\xf4\x8f\xbf", false, -1),
    V("ascii then truncated", "abcdefghijklmnop\xe2\x82", false, -1),
};
/* clang-format on */

#define N_VECTORS (sizeof(vectors) / sizeof(vectors[0]))

/* A straightforward decoder used as the reference for the DFA. */
static bool ref_valid(const uint8_t *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        uint32_t cp;
        size_t k;
        if (c < 0x80) {
            i++;
            continue;
        } else if ((c & 0xe0) == 0xc0) {
            cp = c & 0x1f;
            k = 1;
        } else if ((c & 0xf0) == 0xe0) {
            cp = c & 0x0f;
            k = 2;
        } else if ((c & 0xf8) == 0xf0) {
            cp = c & 0x07;
            k = 3;
        } else {
            return false;
        }
        if (n - i - 1 < k)
            return false;
        for (size_t j = 1; j <= k; j++) {
            if ((s[i + j] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + j] & 0x3f);
        }
        uint32_t min = k == 1 ? 0x80 : k == 2 ? 0x800 : 0x10000;
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += k + 1;
    }
    return true;
}

START_TEST(test_utf8_vectors_whole)
{
    const utf8_vec_t *v = &vectors[_i];
    ck_assert_msg(utf8__valid((const uint8_t *)v->bytes, v->len) == v->valid, "%s", v->name);
    ck_assert_msg(ref_valid((const uint8_t *)v->bytes, v->len) == v->valid, "ref %s", v->name);
}
END_TEST

/* Fed one byte at a time, the validator must reject exactly at the first impossible byte. */
START_TEST(test_utf8_vectors_fail_fast)
{
    const utf8_vec_t *v = &vectors[_i];
    utf8_state_t st = UTF8_ACCEPT;
    int failed_at = -1;
    for (size_t i = 0; i < v->len; i++) {
        if (!utf8__feed(&st, (const uint8_t *)v->bytes + i, 1)) {
            failed_at = (int)i;
            break;
        }
    }
    ck_assert_msg(failed_at == v->fail_at, "%s: failed at %d, expected %d", v->name, failed_at,
                  v->fail_at);
    if (failed_at >= 0)
        ck_assert_uint_eq(st, UTF8_REJECT);
    else
        ck_assert_msg((st == UTF8_ACCEPT) == v->valid, "%s: end state", v->name);
}
END_TEST

/* Every two-way split gives the same verdict as the whole buffer. */
START_TEST(test_utf8_vectors_split)
{
    const utf8_vec_t *v = &vectors[_i];
    for (size_t cut = 0; cut <= v->len; cut++) {
        utf8_state_t st = UTF8_ACCEPT;
        bool ok = utf8__feed(&st, (const uint8_t *)v->bytes, cut) &&
                  utf8__feed(&st, (const uint8_t *)v->bytes + cut, v->len - cut);
        ck_assert_msg((ok && st == UTF8_ACCEPT) == v->valid, "%s cut %zu", v->name, cut);
    }
}
END_TEST

/* Vectors embedded in long ASCII runs at every alignment exercise the word-at-a-time path. */
START_TEST(test_utf8_embedded_in_ascii)
{
    const utf8_vec_t *v = &vectors[_i];
    uint8_t buf[128];
    for (size_t pre = 0; pre < 40; pre++) {
        for (size_t post = 0; post < 24; post += 7) {
            size_t n = pre + v->len + post;
            memset(buf, 'x', pre);
            memcpy(buf + pre, v->bytes, v->len);
            memset(buf + pre + v->len, 'y', post);
            /* A truncated vector followed by ASCII is invalid too (ASCII is not a
             * continuation byte), so the verdict is the vector's own. */
            bool expect = v->valid;
            ck_assert_msg(utf8__valid(buf, n) == expect, "%s pre %zu post %zu", v->name, pre, post);
            ck_assert(ref_valid(buf, n) == expect);
        }
    }
}
END_TEST

START_TEST(test_utf8_rejected_state_is_sticky)
{
    utf8_state_t st = UTF8_ACCEPT;
    ck_assert(!utf8__feed(&st, (const uint8_t *)"\xff", 1));
    ck_assert_uint_eq(st, UTF8_REJECT);
    ck_assert(!utf8__feed(&st, (const uint8_t *)"abc", 3));
    ck_assert(!utf8__feed(&st, (const uint8_t *)"", 0));
    ck_assert_uint_eq(st, UTF8_REJECT);
    /* A corrupt state value is treated as rejected, never as an index out of the table. */
    st = 1000;
    ck_assert(!utf8__feed(&st, (const uint8_t *)"a", 1));
}
END_TEST

START_TEST(test_utf8_long_ascii_and_multibyte)
{
    size_t n = 4096;
    uint8_t *buf = malloc(n);
    ck_assert_ptr_nonnull(buf);
    for (size_t i = 0; i < n; i++)
        buf[i] = (uint8_t)(32 + i % 90);
    ck_assert(utf8__valid(buf, n));
    /* A single bad byte anywhere in the ASCII run is found. */
    for (size_t i = 0; i < n; i += 61) {
        uint8_t saved = buf[i];
        buf[i] = 0x80;
        ck_assert_msg(!utf8__valid(buf, n), "bad byte at %zu", i);
        buf[i] = saved;
    }
    /* Long CJK text (3-byte sequences back to back). */
    for (size_t i = 0; i + 3 <= n; i += 3) {
        buf[i] = 0xe4;
        buf[i + 1] = 0xb8;
        buf[i + 2] = 0x80 + (uint8_t)(i % 64);
    }
    ck_assert(utf8__valid(buf, n - n % 3));
    ck_assert(!utf8__valid(buf, n - n % 3 - 1));
    free(buf);
}
END_TEST

/* All sequences of up to 3 bytes (and a 4th byte for the 3-byte-lead plane) against the
 * reference decoder. */
START_TEST(test_utf8_exhaustive_short)
{
    uint8_t b[4];
    for (unsigned a = 0; a < 256; a++) {
        b[0] = (uint8_t)a;
        ck_assert_msg(utf8__valid(b, 1) == ref_valid(b, 1), "%02x", a);
        for (unsigned c = 0; c < 256; c++) {
            b[1] = (uint8_t)c;
            ck_assert_msg(utf8__valid(b, 2) == ref_valid(b, 2), "%02x %02x", a, c);
            if (a < 0xc0)
                continue; /* starts with ASCII or a continuation: covered by shorter cases */
            for (unsigned d = 0; d < 256; d++) {
                b[2] = (uint8_t)d;
                bool got = utf8__valid(b, 3), want = ref_valid(b, 3);
                if (got != want)
                    ck_abort_msg("%02x %02x %02x: got %d", a, c, d, got);
            }
        }
    }
}
END_TEST

START_TEST(test_utf8_exhaustive_four_byte)
{
    uint8_t b[4];
    for (unsigned a = 0xf0; a <= 0xf7; a++) {
        b[0] = (uint8_t)a;
        for (unsigned c = 0x70; c < 0xd0; c++) {
            b[1] = (uint8_t)c;
            for (unsigned d = 0x70; d < 0xd0; d++) {
                b[2] = (uint8_t)d;
                for (unsigned e = 0x70; e < 0xd0; e++) {
                    b[3] = (uint8_t)e;
                    bool got = utf8__valid(b, 4), want = ref_valid(b, 4);
                    if (got != want)
                        ck_abort_msg("%02x %02x %02x %02x: got %d", a, c, d, e, got);
                }
            }
        }
    }
}
END_TEST

Suite *utf8_suite(void);

Suite *utf8_suite(void)
{
    Suite *s = suite_create("utf8");
    TCase *tc;

    tc = tcase_create("vectors_whole");
    tcase_add_loop_test(tc, test_utf8_vectors_whole, 0, (int)N_VECTORS);
    suite_add_tcase(s, tc);

    tc = tcase_create("vectors_fail_fast");
    tcase_add_loop_test(tc, test_utf8_vectors_fail_fast, 0, (int)N_VECTORS);
    suite_add_tcase(s, tc);

    tc = tcase_create("vectors_split");
    tcase_add_loop_test(tc, test_utf8_vectors_split, 0, (int)N_VECTORS);
    suite_add_tcase(s, tc);

    tc = tcase_create("embedded_in_ascii");
    tcase_add_loop_test(tc, test_utf8_embedded_in_ascii, 0, (int)N_VECTORS);
    suite_add_tcase(s, tc);

    tc = tcase_create("sticky_reject");
    tcase_add_test(tc, test_utf8_rejected_state_is_sticky);
    suite_add_tcase(s, tc);

    tc = tcase_create("long_buffers");
    tcase_add_test(tc, test_utf8_long_ascii_and_multibyte);
    suite_add_tcase(s, tc);

    tc = tcase_create("exhaustive");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, test_utf8_exhaustive_short);
    tcase_add_test(tc, test_utf8_exhaustive_four_byte);
    suite_add_tcase(s, tc);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(utf8_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
