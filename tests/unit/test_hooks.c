/*
 * Unit tests for core/hooks.c: chain order (ascending priority, ties in registration order),
 * argument checks, the decision semantics of the AUTH chain (first non-DEFER result wins, all
 * DEFER accepts) and of the MESSAGE_IN chain (stops at the first negative result), notification
 * chains running every hook, and removal by owner.
 */
#include "hooks.h"

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "plugin_loader.h"

#define MAX_CALLS 64

static struct wshub_plugin g_p1, g_p2;

typedef struct probe {
    int id;
    int rc;
} probe_t;

static int g_calls[MAX_CALLS];
static int g_n_calls;
static void *g_last_data;
static wshub_event_t g_last_ev;

static int record(wshub_event_t ev, void *data, void *ud)
{
    const probe_t *p = ud;

    ck_assert_int_lt(g_n_calls, MAX_CALLS);
    g_calls[g_n_calls++] = p->id;
    g_last_data = data;
    g_last_ev = ev;
    return p->rc;
}

static void setup(void)
{
    hooks__clear();
    g_n_calls = 0;
    g_last_data = NULL;
    g_last_ev = 0;
}

static void teardown(void)
{
    hooks__clear();
}

static void assert_calls(const int *expect, int n)
{
    ck_assert_int_eq(g_n_calls, n);
    for (int i = 0; i < n; i++)
        ck_assert_msg(g_calls[i] == expect[i], "call %d: hook %d, expected %d", i, g_calls[i],
                      expect[i]);
}

START_TEST(test_add_rejects_bad_arguments)
{
    static probe_t p = {1, 0};

    ck_assert_int_eq(hooks__add(&g_p1, 0, 0, record, &p), WSHUB_ERR_INVAL);
    ck_assert_int_eq(hooks__add(&g_p1, (wshub_event_t)-1, 0, record, &p), WSHUB_ERR_INVAL);
    ck_assert_int_eq(hooks__add(&g_p1, (wshub_event_t)7, 0, record, &p), WSHUB_ERR_INVAL);
    ck_assert_int_eq(hooks__add(&g_p1, (wshub_event_t)1000, 0, record, &p), WSHUB_ERR_INVAL);
    ck_assert_int_eq(hooks__add(&g_p1, WSHUB_EV_TICK, 0, NULL, &p), WSHUB_ERR_INVAL);
    for (int ev = -1; ev < 10; ev++)
        ck_assert(!hooks__any((wshub_event_t)ev));
    ck_assert_int_eq(hooks__add(&g_p1, WSHUB_EV_WELCOME, 0, record, &p), WSHUB_OK);
    ck_assert(hooks__any(WSHUB_EV_WELCOME));
    ck_assert(!hooks__any(WSHUB_EV_TICK));
}
END_TEST

START_TEST(test_priority_order_and_ties)
{
    static probe_t p[] = {{1, 0}, {2, 0}, {3, 0}, {4, 0}, {5, 0}, {6, 0}, {7, 0}};
    static const int prio[] = {10, -5, 0, 10, 3, -5, 0};
    static const int expect[] = {2, 6, 3, 7, 5, 1, 4};
    int payload = 0;

    for (int i = 0; i < 7; i++)
        ck_assert_int_eq(hooks__add(i % 2 ? &g_p1 : &g_p2, WSHUB_EV_TICK, prio[i], record, &p[i]),
                         WSHUB_OK);
    hooks__run_all(WSHUB_EV_TICK, &payload);
    assert_calls(expect, 7);
    ck_assert_ptr_eq(g_last_data, &payload);
    ck_assert_int_eq(g_last_ev, WSHUB_EV_TICK);
}
END_TEST

START_TEST(test_extreme_priorities)
{
    static probe_t p[] = {{1, 0}, {2, 0}, {3, 0}};
    static const int expect[] = {2, 3, 1};

    hooks__add(&g_p1, WSHUB_EV_CONN_OPEN, INT32_MAX, record, &p[0]);
    hooks__add(&g_p1, WSHUB_EV_CONN_OPEN, INT32_MIN, record, &p[1]);
    hooks__add(&g_p1, WSHUB_EV_CONN_OPEN, 0, record, &p[2]);
    hooks__run_all(WSHUB_EV_CONN_OPEN, NULL);
    assert_calls(expect, 3);
}
END_TEST

START_TEST(test_run_all_ignores_results)
{
    static probe_t p[] = {{1, WSHUB_ERR_DENIED}, {2, WSHUB_ERR}, {3, WSHUB_OK}};
    static const int expect[] = {1, 2, 3};

    for (int i = 0; i < 3; i++)
        hooks__add(&g_p1, WSHUB_EV_CONN_CLOSE, i, record, &p[i]);
    hooks__run_all(WSHUB_EV_CONN_CLOSE, NULL);
    assert_calls(expect, 3);
}
END_TEST

START_TEST(test_run_all_empty_chain)
{
    hooks__run_all(WSHUB_EV_TICK, NULL);
    ck_assert_int_eq(g_n_calls, 0);
}
END_TEST

/* AUTH: a table of chains (results in priority order), the decision, and how many hooks ran. */
static const struct {
    int rcs[4];
    int n;
    int result;
    int ran;
} auth_cases[] = {
    {{0}, 0, WSHUB_OK, 0},           /* no hooks */
    {{WSHUB_DEFER}, 1, WSHUB_OK, 1}, /* all defer */
    {{WSHUB_DEFER, WSHUB_DEFER, WSHUB_DEFER}, 3, WSHUB_OK, 3},
    {{WSHUB_OK, WSHUB_ERR_DENIED}, 2, WSHUB_OK, 1}, /* OK stops */
    {{WSHUB_DEFER, WSHUB_OK, WSHUB_ERR_DENIED}, 3, WSHUB_OK, 2},
    {{WSHUB_DEFER, WSHUB_ERR_DENIED, WSHUB_OK}, 3, WSHUB_ERR_DENIED, 2}, /* denial stops */
    {{WSHUB_ERR_DENIED, WSHUB_OK}, 2, WSHUB_ERR_DENIED, 1},
    {{WSHUB_DEFER, WSHUB_ERR_INVAL, WSHUB_OK}, 3, WSHUB_ERR_INVAL, 2}, /* any error */
    {{WSHUB_PENDING, WSHUB_ERR_DENIED}, 2, WSHUB_OK, 1},               /* >0 non-DEFER */
    {{WSHUB_DEFER, WSHUB_DEFER, WSHUB_DEFER, WSHUB_ERR_DENIED}, 4, WSHUB_ERR_DENIED, 4},
};

START_TEST(test_auth_chain)
{
    probe_t p[4];
    wshub_ev_auth_t ev;

    memset(&ev, 0, sizeof(ev));
    for (int i = 0; i < auth_cases[_i].n; i++) {
        p[i] = (probe_t){i + 1, auth_cases[_i].rcs[i]};
        /* Registered in reverse so the order comes from the priorities. */
    }
    for (int i = auth_cases[_i].n - 1; i >= 0; i--)
        ck_assert_int_eq(hooks__add(&g_p1, WSHUB_EV_AUTH, i * 10, record, &p[i]), WSHUB_OK);
    ck_assert_int_eq(hooks__run_auth(&ev), auth_cases[_i].result);
    ck_assert_int_eq(g_n_calls, auth_cases[_i].ran);
    for (int i = 0; i < g_n_calls; i++)
        ck_assert_int_eq(g_calls[i], i + 1);
    if (g_n_calls) {
        ck_assert_ptr_eq(g_last_data, &ev);
        ck_assert_int_eq(g_last_ev, WSHUB_EV_AUTH);
    }
}
END_TEST

static const struct {
    int rcs[4];
    int n;
    int result;
    int ran;
} msg_cases[] = {
    {{0}, 0, WSHUB_OK, 0},
    {{WSHUB_OK, WSHUB_OK, WSHUB_OK}, 3, WSHUB_OK, 3}, /* OK does not stop the chain */
    {{WSHUB_DEFER, WSHUB_OK}, 2, WSHUB_OK, 2},
    {{WSHUB_OK, WSHUB_DEFER, WSHUB_ERR_DENIED, WSHUB_OK}, 4, WSHUB_ERR_DENIED, 3},
    {{WSHUB_ERR_DENIED, WSHUB_OK}, 2, WSHUB_ERR_DENIED, 1},
    {{WSHUB_OK, WSHUB_ERR_LIMIT, WSHUB_ERR_DENIED}, 3, WSHUB_ERR_LIMIT, 2},
    {{WSHUB_PENDING, WSHUB_OK}, 2, WSHUB_OK, 2},
};

START_TEST(test_message_chain)
{
    probe_t p[4];
    wshub_ev_message_t ev;

    memset(&ev, 0, sizeof(ev));
    for (int i = 0; i < msg_cases[_i].n; i++)
        p[i] = (probe_t){i + 1, msg_cases[_i].rcs[i]};
    for (int i = msg_cases[_i].n - 1; i >= 0; i--)
        ck_assert_int_eq(hooks__add(&g_p2, WSHUB_EV_MESSAGE_IN, i - 2, record, &p[i]), WSHUB_OK);
    ck_assert_int_eq(hooks__run_message(&ev), msg_cases[_i].result);
    ck_assert_int_eq(g_n_calls, msg_cases[_i].ran);
    for (int i = 0; i < g_n_calls; i++)
        ck_assert_int_eq(g_calls[i], i + 1);
}
END_TEST

START_TEST(test_remove_owner)
{
    static probe_t p[] = {{1, 0}, {2, 0}, {3, 0}, {4, 0}, {5, WSHUB_DEFER}, {6, WSHUB_DEFER}};
    static const int tick_after[] = {2, 4};
    static const int tick_none[] = {0};
    wshub_ev_auth_t ev;

    memset(&ev, 0, sizeof(ev));
    hooks__add(&g_p1, WSHUB_EV_TICK, 0, record, &p[0]);
    hooks__add(&g_p2, WSHUB_EV_TICK, 1, record, &p[1]);
    hooks__add(&g_p1, WSHUB_EV_TICK, 2, record, &p[2]);
    hooks__add(NULL, WSHUB_EV_TICK, 3, record, &p[3]);
    hooks__add(&g_p1, WSHUB_EV_AUTH, 0, record, &p[4]);
    hooks__add(&g_p2, WSHUB_EV_MESSAGE_IN, 0, record, &p[5]);

    hooks__remove_owner(&g_p1);
    ck_assert(!hooks__any(WSHUB_EV_AUTH));
    ck_assert(hooks__any(WSHUB_EV_MESSAGE_IN));
    hooks__run_all(WSHUB_EV_TICK, NULL);
    assert_calls(tick_after, 2);
    g_n_calls = 0;
    ck_assert_int_eq(hooks__run_auth(&ev), WSHUB_OK);
    ck_assert_int_eq(g_n_calls, 0);

    /* Removing an owner with nothing registered changes nothing. */
    hooks__remove_owner(&g_p1);
    hooks__run_all(WSHUB_EV_TICK, NULL);
    ck_assert_int_eq(g_n_calls, 2);

    hooks__remove_owner(&g_p2);
    hooks__remove_owner(NULL);
    g_n_calls = 0;
    hooks__run_all(WSHUB_EV_TICK, NULL);
    assert_calls(tick_none, 0);
    for (int e = 1; e <= WSHUB_EV_WELCOME; e++)
        ck_assert(!hooks__any((wshub_event_t)e));

    /* The chains are usable again after removal. */
    ck_assert_int_eq(hooks__add(&g_p1, WSHUB_EV_TICK, 0, record, &p[0]), WSHUB_OK);
    hooks__run_all(WSHUB_EV_TICK, NULL);
    ck_assert_int_eq(g_n_calls, 1);
}
END_TEST

START_TEST(test_clear)
{
    static probe_t p = {1, 0};

    for (int e = 1; e <= WSHUB_EV_WELCOME; e++)
        hooks__add(&g_p1, (wshub_event_t)e, 0, record, &p);
    hooks__clear();
    for (int e = 1; e <= WSHUB_EV_WELCOME; e++)
        ck_assert(!hooks__any((wshub_event_t)e));
    hooks__run_all(WSHUB_EV_TICK, NULL);
    ck_assert_int_eq(g_n_calls, 0);
}
END_TEST

static TCase *tcase(Suite *s, const char *name)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, setup, teardown);
    suite_add_tcase(s, tc);
    return tc;
}

Suite *hooks_suite(void);

Suite *hooks_suite(void)
{
    Suite *s = suite_create("hooks");

    tcase_add_test(tcase(s, "add_bad_args"), test_add_rejects_bad_arguments);
    tcase_add_test(tcase(s, "priority_ties"), test_priority_order_and_ties);
    tcase_add_test(tcase(s, "extreme_priorities"), test_extreme_priorities);
    tcase_add_test(tcase(s, "run_all_ignores_results"), test_run_all_ignores_results);
    tcase_add_test(tcase(s, "run_all_empty"), test_run_all_empty_chain);
    tcase_add_loop_test(tcase(s, "auth_chain"), test_auth_chain, 0,
                        (int)(sizeof(auth_cases) / sizeof(auth_cases[0])));
    tcase_add_loop_test(tcase(s, "message_chain"), test_message_chain, 0,
                        (int)(sizeof(msg_cases) / sizeof(msg_cases[0])));
    tcase_add_test(tcase(s, "remove_owner"), test_remove_owner);
    tcase_add_test(tcase(s, "clear"), test_clear);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hooks_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
