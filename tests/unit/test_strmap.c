/*
 * Unit tests for core/strmap.c. Besides the API contract, they reach into the public struct to
 * check the table invariants: power-of-two capacity, load <= 3/4, count matches the occupied
 * slots, and every key is reachable from its home slot without crossing an empty slot (the
 * property backward-shift deletion must preserve). Long random operation sequences over small
 * key spaces (so probe chains wrap around the table end) are compared against an array model.
 */
#include "strmap.h"

#include <check.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_KEYS 300

static int values[MODEL_KEYS];

static void key_of(char *out, size_t cap, int i)
{
    snprintf(out, cap, "k%d/%x", i, (unsigned)(i * 2654435761u));
}

/* Checks capacity, load, count and probe-chain integrity of every occupied slot. */
static void check_shape(const strmap_t *m)
{
    size_t occupied = 0;

    if (m->cap == 0) {
        ck_assert_uint_eq(m->count, 0);
        return;
    }
    ck_assert_uint_eq(m->cap & (m->cap - 1), 0);
    ck_assert_uint_le(m->count * 4, m->cap * 3);
    for (size_t i = 0; i < m->cap; i++) {
        const strmap_slot_t *s = &m->slots[i];
        if (!s->key)
            continue;
        occupied++;
        /* From the home slot to i, no slot may be empty. */
        for (size_t j = s->hash & (m->cap - 1); j != i; j = (j + 1) & (m->cap - 1))
            ck_assert_msg(m->slots[j].key != NULL, "key %s unreachable: hole at %zu", s->key, j);
        ck_assert_ptr_eq(strmap__get(m, s->key), s->val);
    }
    ck_assert_uint_eq(occupied, m->count);
}

START_TEST(test_empty)
{
    strmap_t m;

    strmap__init(&m);
    ck_assert_ptr_null(strmap__get(&m, "a"));
    ck_assert_ptr_null(strmap__getn(&m, "abc", 2));
    ck_assert_ptr_null(strmap__del(&m, "a"));
    ck_assert_ptr_null(strmap__key(&m, "a"));
    ck_assert_int_eq(strmap__each(&m, NULL, NULL), 0); /* never calls cb */
    check_shape(&m);
    strmap__free(&m);
    strmap__free(&m);
    ck_assert_uint_eq(m.cap, 0);
}
END_TEST

START_TEST(test_put_get_del_many)
{
    strmap_t m;
    char k[64];

    strmap__init(&m);
    for (int i = 0; i < MODEL_KEYS; i++) {
        key_of(k, sizeof(k), i);
        ck_assert_int_eq(strmap__put(&m, k, &values[i]), 0);
    }
    ck_assert_uint_eq(m.count, MODEL_KEYS);
    check_shape(&m);
    for (int i = 0; i < MODEL_KEYS; i++) {
        key_of(k, sizeof(k), i);
        ck_assert_ptr_eq(strmap__get(&m, k), &values[i]);
        /* Duplicates are refused and keep the old value. */
        ck_assert_int_eq(strmap__put(&m, k, &values[0]), -5);
        ck_assert_ptr_eq(strmap__get(&m, k), &values[i]);
    }
    ck_assert_ptr_null(strmap__get(&m, "absent"));
    for (int i = 0; i < MODEL_KEYS; i += 2) {
        key_of(k, sizeof(k), i);
        ck_assert_ptr_eq(strmap__del(&m, k), &values[i]);
        ck_assert_ptr_null(strmap__del(&m, k));
    }
    check_shape(&m);
    for (int i = 0; i < MODEL_KEYS; i++) {
        key_of(k, sizeof(k), i);
        if (i % 2)
            ck_assert_ptr_eq(strmap__get(&m, k), &values[i]);
        else
            ck_assert_ptr_null(strmap__get(&m, k));
    }
    ck_assert_uint_eq(m.count, MODEL_KEYS / 2);
    strmap__free(&m);
}
END_TEST

START_TEST(test_keys_are_copied)
{
    strmap_t m;
    char k[16] = "room.join";
    const char *stored;
    int v;

    strmap__init(&m);
    ck_assert_int_eq(strmap__put(&m, k, &v), 0);
    stored = strmap__key(&m, "room.join");
    ck_assert_ptr_nonnull(stored);
    ck_assert_ptr_ne(stored, k);
    ck_assert_str_eq(stored, "room.join");
    memcpy(k, "XXXX", 4);
    ck_assert_ptr_eq(strmap__get(&m, "room.join"), &v);
    ck_assert_ptr_null(strmap__get(&m, k));
    strmap__free(&m);
}
END_TEST

START_TEST(test_getn_and_empty_key)
{
    strmap_t m;
    int a, b;

    strmap__init(&m);
    ck_assert_int_eq(strmap__put(&m, "abc", &a), 0);
    ck_assert_int_eq(strmap__put(&m, "", &b), 0);
    ck_assert_ptr_eq(strmap__getn(&m, "abcdef", 3), &a);
    ck_assert_ptr_null(strmap__getn(&m, "abcdef", 2)); /* "ab" */
    ck_assert_ptr_null(strmap__getn(&m, "abcdef", 4)); /* "abcd" */
    ck_assert_ptr_eq(strmap__getn(&m, "xyz", 0), &b);
    ck_assert_ptr_eq(strmap__get(&m, ""), &b);
    ck_assert_ptr_eq(strmap__del(&m, ""), &b);
    ck_assert_ptr_null(strmap__get(&m, ""));
    ck_assert_ptr_eq(strmap__get(&m, "abc"), &a);
    strmap__free(&m);
}
END_TEST

/* Deletes every key of a full table in several orders; after each delete all survivors must
 * still be reachable (a wrong shift strands keys behind a hole). */
START_TEST(test_delete_orders)
{
    strmap_t m;
    char k[64];
    int order[MODEL_KEYS];
    int n = 40 + _i * 37;
    uint32_t x = 0xC0FFEEu + (uint32_t)_i;

    strmap__init(&m);
    for (int i = 0; i < n; i++) {
        key_of(k, sizeof(k), i);
        ck_assert_int_eq(strmap__put(&m, k, &values[i]), 0);
        order[i] = i;
    }
    /* Fisher-Yates with a fixed-seed xorshift. */
    for (int i = n - 1; i > 0; i--) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        int j = (int)(x % (uint32_t)(i + 1));
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
    for (int d = 0; d < n; d++) {
        key_of(k, sizeof(k), order[d]);
        ck_assert_ptr_eq(strmap__del(&m, k), &values[order[d]]);
        check_shape(&m);
        for (int r = d + 1; r < n; r++) {
            key_of(k, sizeof(k), order[r]);
            ck_assert_ptr_eq(strmap__get(&m, k), &values[order[r]]);
        }
    }
    ck_assert_uint_eq(m.count, 0);
    for (size_t i = 0; i < m.cap; i++)
        ck_assert_ptr_null(m.slots[i].key);
    strmap__free(&m);
}
END_TEST

/* Random put/del/get against a model; small key spaces keep the table small and the probe
 * chains long and wrapping. */
START_TEST(test_random_vs_model)
{
    static const int spaces[] = {8, 24, 64, 300};
    int space = spaces[_i];
    bool present[MODEL_KEYS] = {false};
    size_t n_present = 0;
    strmap_t m;
    char k[64];
    uint32_t x = 0x2545F491u * (uint32_t)(_i + 1);

    strmap__init(&m);
    for (int step = 0; step < 6000; step++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        int i = (int)(x % (uint32_t)space);
        int op = (int)((x >> 16) % 3);
        key_of(k, sizeof(k), i);
        if (op == 0) {
            ck_assert_int_eq(strmap__put(&m, k, &values[i]), present[i] ? -5 : 0);
            if (!present[i])
                n_present++;
            present[i] = true;
        } else if (op == 1) {
            void *v = strmap__del(&m, k);
            ck_assert_ptr_eq(v, present[i] ? &values[i] : NULL);
            if (present[i])
                n_present--;
            present[i] = false;
        } else {
            ck_assert_ptr_eq(strmap__get(&m, k), present[i] ? &values[i] : NULL);
        }
        ck_assert_uint_eq(m.count, n_present);
        if (step % 50 == 0)
            check_shape(&m);
    }
    check_shape(&m);
    for (int i = 0; i < space; i++) {
        key_of(k, sizeof(k), i);
        ck_assert_ptr_eq(strmap__get(&m, k), present[i] ? &values[i] : NULL);
    }
    strmap__free(&m);
}
END_TEST

struct visit {
    int seen[MODEL_KEYS];
    int calls;
    int stop_after;
};

static int count_cb(void *ud, const char *key, void *val)
{
    struct visit *v = ud;
    int idx = (int)((int *)val - values);

    ck_assert_int_ge(idx, 0);
    ck_assert_int_lt(idx, MODEL_KEYS);
    char k[64];
    key_of(k, sizeof(k), idx);
    ck_assert_str_eq(key, k);
    v->seen[idx]++;
    v->calls++;
    return v->stop_after && v->calls == v->stop_after ? 42 : 0;
}

START_TEST(test_each)
{
    strmap_t m;
    char k[64];
    struct visit v;

    strmap__init(&m);
    for (int i = 0; i < 100; i++) {
        key_of(k, sizeof(k), i);
        strmap__put(&m, k, &values[i]);
    }
    memset(&v, 0, sizeof(v));
    ck_assert_int_eq(strmap__each(&m, count_cb, &v), 0);
    ck_assert_int_eq(v.calls, 100);
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(v.seen[i], 1);
    memset(&v, 0, sizeof(v));
    v.stop_after = 7;
    ck_assert_int_eq(strmap__each(&m, count_cb, &v), 42);
    ck_assert_int_eq(v.calls, 7);
    strmap__free(&m);
}
END_TEST

static void add_case(Suite *s, const char *name, const TTest *t, int loops)
{
    TCase *tc = tcase_create(name);

    if (loops)
        tcase_add_loop_test(tc, t, 0, loops);
    else
        tcase_add_test(tc, t);
    suite_add_tcase(s, tc);
}

Suite *strmap_suite(void);

Suite *strmap_suite(void)
{
    Suite *s = suite_create("strmap");

    add_case(s, "empty", test_empty, 0);
    add_case(s, "put_get_del_many", test_put_get_del_many, 0);
    add_case(s, "keys_copied", test_keys_are_copied, 0);
    add_case(s, "getn_empty_key", test_getn_and_empty_key, 0);
    add_case(s, "delete_orders", test_delete_orders, 7);
    add_case(s, "random_vs_model", test_random_vs_model, 4);
    add_case(s, "each", test_each, 0);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(strmap_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
