/*
 * Unit tests for core/idmap.c. Besides the API contract, they reach into the public struct to
 * check the table invariants (power-of-two capacity, load <= 3/4, no tombstones after deletes)
 * and compare long random operation sequences against a plain array model.
 */
#include "idmap.h"

#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#define MODEL_KEYS 512

/* Distinct, stable addresses to store as values. */
static int slots[MODEL_KEYS + 1];

static void *val_for(uint64_t key)
{
    return &slots[key % (MODEL_KEYS + 1)];
}

static void check_shape(const idmap_t *m)
{
    size_t occupied = 0;

    ck_assert_uint_eq(m->cap & (m->cap - 1), 0);
    ck_assert(m->cap == 0 || m->cap >= 16);
    ck_assert_uint_le(m->count * 4, m->cap * 3);
    for (size_t i = 0; i < m->cap; i++) {
        if (m->keys[i] != 0) {
            occupied++;
            ck_assert_ptr_nonnull(m->vals[i]);
        } else {
            ck_assert_ptr_null(m->vals[i]);
        }
    }
    ck_assert_uint_eq(occupied, m->count);
    ck_assert_uint_eq(idmap__count(m), m->count);
}

START_TEST(test_empty_map)
{
    idmap_t m;

    idmap__init(&m);
    ck_assert_uint_eq(idmap__count(&m), 0);
    ck_assert_ptr_null(idmap__get(&m, 1));
    ck_assert_ptr_null(idmap__del(&m, 1));
    ck_assert_ptr_null(m.keys);
    idmap__free(&m);
    idmap__free(&m);
    ck_assert_uint_eq(m.cap, 0);
}
END_TEST

START_TEST(test_put_get_del)
{
    idmap_t m;
    int a, b;

    idmap__init(&m);
    ck_assert_int_eq(idmap__put(&m, 7, &a), 0);
    ck_assert_int_eq(idmap__put(&m, 8, &b), 0);
    ck_assert_uint_eq(idmap__count(&m), 2);
    ck_assert_ptr_eq(idmap__get(&m, 7), &a);
    ck_assert_ptr_eq(idmap__get(&m, 8), &b);
    ck_assert_ptr_null(idmap__get(&m, 9));
    ck_assert_ptr_eq(idmap__del(&m, 7), &a);
    ck_assert_ptr_null(idmap__del(&m, 7));
    ck_assert_ptr_null(idmap__get(&m, 7));
    ck_assert_ptr_eq(idmap__get(&m, 8), &b);
    ck_assert_uint_eq(idmap__count(&m), 1);
    ck_assert_int_eq(idmap__put(&m, UINT64_MAX, &a), 0);
    ck_assert_ptr_eq(idmap__get(&m, UINT64_MAX), &a);
    check_shape(&m);
    idmap__free(&m);
}
END_TEST

START_TEST(test_put_existing_and_invalid)
{
    idmap_t m;
    int a, b;

    idmap__init(&m);
    ck_assert_int_eq(idmap__put(&m, 42, &a), 0);
    ck_assert_int_eq(idmap__put(&m, 42, &b), -5);
    ck_assert_ptr_eq(idmap__get(&m, 42), &a);
    ck_assert_uint_eq(idmap__count(&m), 1);
    ck_assert_int_eq(idmap__put(&m, 0, &a), -3);
    ck_assert_int_eq(idmap__put(&m, 43, NULL), -3);
    ck_assert_ptr_null(idmap__get(&m, 0));
    ck_assert_ptr_null(idmap__del(&m, 0));
    ck_assert_uint_eq(idmap__count(&m), 1);
    idmap__free(&m);
}
END_TEST

/* Sequential ids (the connection table's real pattern) across many doublings. */
START_TEST(test_growth_sequential_ids)
{
    idmap_t m;
    size_t last_cap = 0;
    int grew = 0;

    idmap__init(&m);
    for (uint64_t k = 1; k <= 20000; k++) {
        ck_assert_int_eq(idmap__put(&m, k, val_for(k)), 0);
        if (m.cap != last_cap) {
            grew++;
            last_cap = m.cap;
        }
    }
    check_shape(&m);
    ck_assert_uint_eq(idmap__count(&m), 20000);
    ck_assert_int_ge(grew, 10);
    for (uint64_t k = 1; k <= 20000; k++)
        ck_assert_ptr_eq(idmap__get(&m, k), val_for(k));
    ck_assert_ptr_null(idmap__get(&m, 20001));
    idmap__free(&m);
}
END_TEST

/*
 * Deleting from a table filled to its 3/4 limit: every entry sits in a probe run, so each
 * single deletion exercises the backward shift, including runs that wrap past the last slot.
 * Many different key sets vary where the runs fall.
 */
START_TEST(test_delete_each_from_full_table)
{
    for (uint64_t base = 1; base < 4000; base += 12) {
        idmap_t m;

        idmap__init(&m);
        for (uint64_t k = base; k < base + 12; k++)
            ck_assert_int_eq(idmap__put(&m, k, val_for(k)), 0);
        ck_assert_uint_eq(m.cap, 16);
        for (uint64_t victim = base; victim < base + 12; victim++) {
            ck_assert_ptr_eq(idmap__del(&m, victim), val_for(victim));
            check_shape(&m);
            for (uint64_t k = base; k < base + 12; k++)
                ck_assert_ptr_eq(idmap__get(&m, k), (k == victim ? NULL : val_for(k)));
            ck_assert_int_eq(idmap__put(&m, victim, val_for(victim)), 0);
        }
        ck_assert_uint_eq(m.cap, 16);
        idmap__free(&m);
    }
}
END_TEST

START_TEST(test_delete_all_leaves_no_tombstones)
{
    idmap_t m;
    size_t cap;

    idmap__init(&m);
    for (uint64_t k = 1; k <= 1000; k++)
        ck_assert_int_eq(idmap__put(&m, k * 7919, val_for(k)), 0);
    cap = m.cap;
    for (uint64_t k = 1000; k >= 1; k--)
        ck_assert_ptr_eq(idmap__del(&m, k * 7919), val_for(k));
    ck_assert_uint_eq(idmap__count(&m), 0);
    ck_assert_uint_eq(m.cap, cap); /* no shrinking */
    for (size_t i = 0; i < m.cap; i++)
        ck_assert_msg(m.keys[i] == 0, "slot %zu not empty", i);
    ck_assert_int_eq(idmap__put(&m, 5, val_for(5)), 0);
    ck_assert_ptr_eq(idmap__get(&m, 5), val_for(5));
    idmap__free(&m);
}
END_TEST

/* Random put/get/del over a small key space, checked against an array model after every op. */
START_TEST(test_random_ops_match_model)
{
    idmap_t m;
    bool present[MODEL_KEYS + 1] = {false};
    size_t n_present = 0;
    uint64_t rng = 0x9e3779b97f4a7c15u;

    idmap__init(&m);
    for (int op = 0; op < 40000; op++) {
        uint64_t key;
        int kind;

        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        key = 1 + (rng >> 11) % MODEL_KEYS;
        kind = (int)((rng >> 3) % 3);
        if (kind == 0) {
            int rc = idmap__put(&m, key, val_for(key));

            ck_assert_int_eq(rc, (present[key] ? -5 : 0));
            if (!present[key])
                n_present++;
            present[key] = true;
        } else if (kind == 1) {
            ck_assert_ptr_eq(idmap__del(&m, key), (present[key] ? val_for(key) : NULL));
            if (present[key])
                n_present--;
            present[key] = false;
        } else {
            ck_assert_ptr_eq(idmap__get(&m, key), (present[key] ? val_for(key) : NULL));
        }
        ck_assert_uint_eq(idmap__count(&m), n_present);
    }
    check_shape(&m);
    for (uint64_t k = 1; k <= MODEL_KEYS; k++)
        ck_assert_ptr_eq(idmap__get(&m, k), (present[k] ? val_for(k) : NULL));
    idmap__free(&m);
}
END_TEST

struct visit {
    unsigned seen[64];
    int calls;
    int stop_after; /* 0: never */
};

static int visit_cb(void *ud, uint64_t key, void *val)
{
    struct visit *v = ud;

    ck_assert_uint_lt(key, 64);
    ck_assert_ptr_eq(val, val_for(key));
    v->seen[key]++;
    v->calls++;
    return v->calls == v->stop_after;
}

START_TEST(test_each_visits_all)
{
    idmap_t m;
    struct visit v = {.stop_after = 0};

    idmap__init(&m);
    idmap__each(&m, visit_cb, &v);
    ck_assert_int_eq(v.calls, 0);
    for (uint64_t k = 1; k < 64; k += 2)
        ck_assert_int_eq(idmap__put(&m, k, val_for(k)), 0);
    idmap__del(&m, 9);
    idmap__each(&m, visit_cb, &v);
    ck_assert_int_eq(v.calls, 31);
    for (uint64_t k = 0; k < 64; k++)
        ck_assert_uint_eq(v.seen[k], (k % 2 == 1 && k != 9) ? 1u : 0u);
    idmap__free(&m);
}
END_TEST

START_TEST(test_each_stops_on_nonzero)
{
    idmap_t m;
    struct visit v = {.stop_after = 3};

    idmap__init(&m);
    for (uint64_t k = 1; k < 20; k++)
        ck_assert_int_eq(idmap__put(&m, k, val_for(k)), 0);
    idmap__each(&m, visit_cb, &v);
    ck_assert_int_eq(v.calls, 3);
    idmap__free(&m);
}
END_TEST

/* The map is embeddable: a zeroed struct (static or calloc'd) is a valid empty map. */
START_TEST(test_zeroed_struct_is_empty_map)
{
    idmap_t m;
    int a;

    memset(&m, 0, sizeof(m));
    ck_assert_ptr_null(idmap__get(&m, 3));
    ck_assert_int_eq(idmap__put(&m, 3, &a), 0);
    ck_assert_ptr_eq(idmap__get(&m, 3), &a);
    idmap__free(&m);
}
END_TEST

static void add_case(Suite *s, const char *name, const TTest *t)
{
    TCase *tc = tcase_create(name);

    tcase_add_test(tc, t);
    suite_add_tcase(s, tc);
}

Suite *idmap_suite(void);

Suite *idmap_suite(void)
{
    Suite *s = suite_create("idmap");

    add_case(s, "empty", test_empty_map);
    add_case(s, "put_get_del", test_put_get_del);
    add_case(s, "put_existing_invalid", test_put_existing_and_invalid);
    add_case(s, "growth", test_growth_sequential_ids);
    add_case(s, "delete_from_full", test_delete_each_from_full_table);
    add_case(s, "no_tombstones", test_delete_all_leaves_no_tombstones);
    add_case(s, "random_vs_model", test_random_ops_match_model);
    add_case(s, "each_all", test_each_visits_all);
    add_case(s, "each_stop", test_each_stops_on_nonzero);
    add_case(s, "zeroed_struct", test_zeroed_struct_is_empty_map);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(idmap_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
