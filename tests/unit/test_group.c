/*
 * Unit tests for core/group.c against the stub server: membership in both directions (the
 * group's member array and each connection's membership list with back-indexes), checked after
 * every step of random add/remove sequences against a model; fan-out of one shared buffer;
 * closing members leaving every group; freeing groups and an owner's groups.
 */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conn.h"
#include "group.h"
#include "plugin_loader.h"
#include "server.h"
#include "stub_server.h"
#include "ws_test_client.h"

#define N_CONNS  8
#define N_GROUPS 5

static const char yaml[] = "server:\n"
                           "  listen: 127.0.0.1:0\n"
                           "  permessage_deflate: false\n"
                           "admin:\n"
                           "  enabled: false\n"
                           "log:\n"
                           "  level: err\n";

static struct wshub_plugin g_owner, g_other;
static wsc_t g_cl[N_CONNS];
static wshub_conn_t *g_c[N_CONNS];
static uint64_t g_id[N_CONNS];

static void setup(void)
{
    char err[512];

    ck_assert_msg(stub_server__start(yaml, err, sizeof(err)) == 0, "%s", err);
    memset(&g_owner, 0, sizeof(g_owner));
    memset(&g_other, 0, sizeof(g_other));
    g_owner.name = "owner";
    g_other.name = "other";
    DLIST_INIT(&g_owner.groups);
    DLIST_INIT(&g_owner.timers);
    DLIST_INIT(&g_other.groups);
    DLIST_INIT(&g_other.timers);
    for (int i = 0; i < N_CONNS; i++) {
        wsc_frame_t f;
        ck_assert_int_eq(stub_server__open(&g_cl[i], "/ws", NULL, &g_id[i], NULL, 0), 101);
        ck_assert_int_eq(stub_server__recv(&g_cl[i], &f, STUB_MAX_ITER), 1); /* welcome */
        wsc_frame__free(&f);
        g_c[i] = conn__by_id(g_id[i]);
        ck_assert_ptr_nonnull(g_c[i]);
    }
}

static void teardown(void)
{
    group__free_owner(&g_owner);
    group__free_owner(&g_other);
    for (int i = 0; i < N_CONNS; i++)
        wsc__free(&g_cl[i]);
    stub_server__stop();
    ck_assert_uint_eq(buf__live(), 0);
}

/* Both directions agree: every member's entry points back at its slot, every membership entry
 * is found in its group at its index, and there are no duplicates. */
static void check_group(const wshub_group_t *g)
{
    ck_assert_uint_le(g->n, g->cap);
    for (uint32_t i = 0; i < g->n; i++) {
        const wshub_conn_t *c = g->members[i];
        int found = 0;
        for (uint16_t k = 0; k < c->n_memberships; k++) {
            if (c->memberships[k].g == g) {
                found++;
                ck_assert_uint_eq(c->memberships[k].idx, i);
            }
        }
        ck_assert_int_eq(found, 1);
        for (uint32_t j = i + 1; j < g->n; j++)
            ck_assert_ptr_ne(g->members[j], c);
    }
}

static void check_conn(const wshub_conn_t *c)
{
    ck_assert_uint_le(c->n_memberships, c->cap_memberships);
    if (c->n_memberships == 0)
        ck_assert_ptr_null(c->memberships);
    for (uint16_t k = 0; k < c->n_memberships; k++) {
        const struct group_member *m = &c->memberships[k];
        ck_assert_uint_lt(m->idx, m->g->n);
        ck_assert_ptr_eq(m->g->members[m->idx], c);
    }
}

START_TEST(test_add_remove_has)
{
    wshub_group_t *g = group__new(&g_owner, "public");

    ck_assert_ptr_eq(g->owner, &g_owner);
    ck_assert_str_eq(g->tenant, "public");
    ck_assert(!group__has(g, g_c[0]));
    ck_assert_int_eq(group__add(g, g_c[0]), WSHUB_OK);
    ck_assert_int_eq(group__add(g, g_c[1]), WSHUB_OK);
    ck_assert_int_eq(group__add(g, g_c[0]), WSHUB_ERR_EXISTS);
    ck_assert(group__has(g, g_c[0]));
    ck_assert(group__has(g, g_c[1]));
    ck_assert(!group__has(g, g_c[2]));
    ck_assert_uint_eq(g->n, 2);
    ck_assert_int_eq(group__remove(g, g_c[2]), WSHUB_ERR_NOTFOUND);
    ck_assert_int_eq(group__remove(g, g_c[0]), WSHUB_OK);
    ck_assert_int_eq(group__remove(g, g_c[0]), WSHUB_ERR_NOTFOUND);
    ck_assert(!group__has(g, g_c[0]));
    ck_assert_uint_eq(g->n, 1);
    ck_assert_ptr_eq(g->members[0], g_c[1]);
    ck_assert_uint_eq(g_c[0]->n_memberships, 0);
    ck_assert_ptr_null(g_c[0]->memberships);
    check_group(g);
    check_conn(g_c[1]);
    group__free(g);
    ck_assert_uint_eq(g_c[1]->n_memberships, 0);
    ck_assert(DLIST_EMPTY(&g_owner.groups));
    group__free(NULL);
}
END_TEST

START_TEST(test_tenant_rules)
{
    wshub_group_t *other = group__new(&g_owner, "acme");
    wshub_group_t *cross = group__new(&g_owner, NULL);

    /* The stub's connections are anonymous: tenant "public". */
    ck_assert_int_eq(group__add(other, g_c[0]), WSHUB_ERR_DENIED);
    ck_assert_uint_eq(other->n, 0);
    ck_assert_uint_eq(g_c[0]->n_memberships, 0);
    ck_assert_int_eq(group__add(cross, g_c[0]), WSHUB_OK);
    ck_assert_ptr_null(cross->tenant);
    /* A closing connection cannot join. */
    conn__close(g_c[1], 1000, NULL);
    ck_assert_int_eq(group__add(cross, g_c[1]), WSHUB_ERR_STATE);
    ck_assert_uint_eq(cross->n, 1);
}
END_TEST

/* Random add/remove over several groups with every invariant checked after each step. */
START_TEST(test_random_membership)
{
    wshub_group_t *g[N_GROUPS];
    bool in[N_GROUPS][N_CONNS];
    uint32_t x = 0x1234567u + (uint32_t)_i * 7919u;

    memset(in, 0, sizeof(in));
    for (int k = 0; k < N_GROUPS; k++)
        g[k] = group__new(k % 2 ? &g_owner : &g_other, k == 4 ? NULL : "public");
    for (int step = 0; step < 1200; step++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        int k = (int)(x % N_GROUPS), i = (int)((x >> 8) % N_CONNS);
        bool wrong = ((x >> 20) & 7) == 0; /* sometimes the operation that must fail */
        if (in[k][i] != wrong) {
            ck_assert_int_eq(group__remove(g[k], g_c[i]), wrong ? WSHUB_ERR_NOTFOUND : WSHUB_OK);
            in[k][i] = false;
        } else {
            ck_assert_int_eq(group__add(g[k], g_c[i]), wrong ? WSHUB_ERR_EXISTS : WSHUB_OK);
            in[k][i] = true;
        }
        for (int kk = 0; kk < N_GROUPS; kk++) {
            uint32_t n = 0;
            for (int ii = 0; ii < N_CONNS; ii++) {
                ck_assert(group__has(g[kk], g_c[ii]) == in[kk][ii]);
                n += in[kk][ii];
            }
            ck_assert_uint_eq(g[kk]->n, n);
            check_group(g[kk]);
        }
        for (int ii = 0; ii < N_CONNS; ii++) {
            uint16_t n = 0;
            for (int kk = 0; kk < N_GROUPS; kk++)
                n += in[kk][ii];
            ck_assert_uint_eq(g_c[ii]->n_memberships, n);
            check_conn(g_c[ii]);
        }
    }
    /* Freeing a group with members fixes the members' lists. */
    group__free(g[0]);
    for (int ii = 0; ii < N_CONNS; ii++)
        check_conn(g_c[ii]);
}
END_TEST

START_TEST(test_send_shared_buffer)
{
    wshub_group_t *g = group__new(&g_owner, "public");
    wshub_buf_t *b = buf__new(WS_OP_TEXT, "fan-out", 7);
    size_t sent;

    for (int i = 0; i < N_CONNS; i++)
        ck_assert_int_eq(group__add(g, g_c[i]), WSHUB_OK);
    sent = group__send(g, b, g_c[3]);
    ck_assert_uint_eq(sent, N_CONNS - 1);
    /* One reference per recipient, and each queue holds that very buffer. */
    ck_assert_uint_eq(b->refs, 1 + (N_CONNS - 1));
    ck_assert_uint_eq(buf__live(), 1);
    for (int i = 0; i < N_CONNS; i++) {
        if (i == 3) {
            ck_assert_uint_eq(g_c[i]->oq_n, 0);
            continue;
        }
        ck_assert_uint_eq(g_c[i]->oq_n, 1);
        ck_assert_ptr_eq(g_c[i]->oq[g_c[i]->oq_head].b, b);
    }
    stub_server__step();
    /* Flushed: the queues let go of it. */
    ck_assert_uint_eq(b->refs, 1);
    for (int i = 0; i < N_CONNS; i++) {
        wsc_frame_t f;
        wsc__read(&g_cl[i]);
        if (i == 3) {
            ck_assert_uint_eq(wsc__pending(&g_cl[i]), 0);
            continue;
        }
        ck_assert_int_eq(wsc__take_frame(&g_cl[i], &f), 1);
        ck_assert_uint_eq(f.opcode, 0x1);
        ck_assert_str_eq((const char *)f.data, "fan-out");
        wsc_frame__free(&f);
        ck_assert_uint_eq(wsc__pending(&g_cl[i]), 0); /* exactly once */
    }
    /* NULL except: everyone; an empty group: no one. */
    ck_assert_uint_eq(group__send(g, b, NULL), N_CONNS);
    stub_server__step();
    buf__unref(b);
    group__free(g);
    g = group__new(&g_owner, "public");
    b = buf__new(WS_OP_TEXT, "x", 1);
    ck_assert_uint_eq(group__send(g, b, NULL), 0);
    ck_assert_uint_eq(b->refs, 1);
    buf__unref(b);
}
END_TEST

START_TEST(test_send_skips_closing_member)
{
    wshub_group_t *g = group__new(&g_owner, "public");
    wshub_buf_t *b = buf__new(WS_OP_TEXT, "y", 1);

    for (int i = 0; i < 4; i++)
        group__add(g, g_c[i]);
    conn__close(g_c[2], 1000, NULL);
    /* Still in the array until the close is processed, but not sent to. */
    ck_assert_uint_eq(g->n, 4);
    ck_assert_uint_eq(group__send(g, b, NULL), 3);
    ck_assert_uint_eq(b->refs, 4);
    stub_server__step();
    ck_assert_uint_eq(g->n, 3);
    ck_assert(!group__has(g, g_c[2]));
    check_group(g);
    buf__unref(b);
}
END_TEST

START_TEST(test_closing_member_leaves_every_group)
{
    wshub_group_t *g[N_GROUPS];
    wshub_conn_t *leaving = g_c[2];

    for (int k = 0; k < N_GROUPS; k++) {
        g[k] = group__new(&g_owner, "public");
        for (int i = 0; i < N_CONNS; i++)
            ck_assert_int_eq(group__add(g[k], g_c[(i + k) % N_CONNS]), WSHUB_OK);
    }
    ck_assert_uint_eq(leaving->n_memberships, N_GROUPS);
    conn__close(leaving, 1000, "bye");
    stub_server__step();
    for (int k = 0; k < N_GROUPS; k++) {
        ck_assert_uint_eq(g[k]->n, N_CONNS - 1);
        for (uint32_t i = 0; i < g[k]->n; i++)
            ck_assert_ptr_ne(g[k]->members[i], leaving);
        check_group(g[k]);
    }
    ck_assert_uint_eq(leaving->n_memberships, 0);
    ck_assert_ptr_null(leaving->memberships);
    for (int i = 0; i < N_CONNS; i++)
        check_conn(g_c[i]);

    /* The same when the socket is lost. */
    wsc__free(&g_cl[5]);
    wsc__init(&g_cl[5], -1);
    for (int i = 0; i < 10; i++)
        stub_server__step();
    ck_assert_ptr_null(conn__by_id(g_id[5]));
    for (int k = 0; k < N_GROUPS; k++) {
        ck_assert_uint_eq(g[k]->n, N_CONNS - 2);
        check_group(g[k]);
    }
}
END_TEST

/* The membership list grows past 32768 entries (its capacity is a uint16_t: doubling 32768
 * must not wrap to 0). */
START_TEST(test_many_memberships)
{
    enum { N = 32770 };
    wshub_group_t **g = malloc(N * sizeof(*g));
    wshub_conn_t *c = g_c[0];

    for (int k = 0; k < N; k++) {
        g[k] = group__new(&g_owner, "public");
        ck_assert_int_eq(group__add(g[k], c), WSHUB_OK);
    }
    ck_assert_uint_eq(c->n_memberships, N);
    ck_assert_uint_ge(c->cap_memberships, N);
    for (int k = 0; k < N; k += 997) {
        ck_assert(group__has(g[k], c));
        check_group(g[k]);
    }
    ck_assert(group__has(g[N - 1], c));
    check_conn(c);
    conn__close(c, 1000, NULL);
    stub_server__step();
    for (int k = 0; k < N; k++)
        ck_assert_uint_eq(g[k]->n, 0);
    free(g);
}
END_TEST

struct each_ctx {
    int calls, stop_at;
};

static int each_cb(wshub_conn_t *c, void *ud)
{
    struct each_ctx *e = ud;

    ck_assert_ptr_nonnull(c);
    e->calls++;
    return e->calls == e->stop_at ? 7 : 0;
}

START_TEST(test_each)
{
    wshub_group_t *g = group__new(&g_owner, "public");
    struct each_ctx e = {0, 0};

    for (int i = 0; i < N_CONNS; i++)
        group__add(g, g_c[i]);
    ck_assert_int_eq(group__each(g, each_cb, &e), 0);
    ck_assert_int_eq(e.calls, N_CONNS);
    e = (struct each_ctx){0, 3};
    ck_assert_int_eq(group__each(g, each_cb, &e), 7);
    ck_assert_int_eq(e.calls, 3);
}
END_TEST

START_TEST(test_free_owner)
{
    wshub_group_t *a = group__new(&g_owner, "public");
    wshub_group_t *b = group__new(&g_owner, NULL);
    wshub_group_t *c = group__new(&g_other, "public");
    wshub_group_t *core = group__new(NULL, "public");

    group__new(&g_owner, "public"); /* an empty one */
    for (int i = 0; i < N_CONNS; i++) {
        group__add(a, g_c[i]);
        group__add(c, g_c[i]);
        group__add(core, g_c[i]);
        if (i % 2)
            group__add(b, g_c[i]);
    }
    group__free_owner(&g_owner);
    ck_assert(DLIST_EMPTY(&g_owner.groups));
    for (int i = 0; i < N_CONNS; i++) {
        ck_assert_uint_eq(g_c[i]->n_memberships, 2);
        ck_assert(group__has(c, g_c[i]));
        ck_assert(group__has(core, g_c[i]));
        check_conn(g_c[i]);
    }
    check_group(c);
    check_group(core);
    ck_assert(!DLIST_EMPTY(&g_other.groups));
    group__free(core); /* core-owned groups are on no list */
    group__free_owner(&g_other);
    for (int i = 0; i < N_CONNS; i++) {
        ck_assert_uint_eq(g_c[i]->n_memberships, 0);
        ck_assert_ptr_null(g_c[i]->memberships);
    }
}
END_TEST

static void add(Suite *s, const char *name, const TTest *t, int loops)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, setup, teardown);
    if (loops)
        tcase_add_loop_test(tc, t, 0, loops);
    else
        tcase_add_test(tc, t);
    suite_add_tcase(s, tc);
}

Suite *group_suite(void);

Suite *group_suite(void)
{
    Suite *s = suite_create("group");

    add(s, "add_remove_has", test_add_remove_has, 0);
    add(s, "tenant_rules", test_tenant_rules, 0);
    add(s, "random_membership", test_random_membership, 3);
    add(s, "send_shared_buffer", test_send_shared_buffer, 0);
    add(s, "send_skips_closing", test_send_skips_closing_member, 0);
    add(s, "closing_leaves_all", test_closing_member_leaves_every_group, 0);
    add(s, "many_memberships", test_many_memberships, 0);
    add(s, "each", test_each, 0);
    add(s, "free_owner", test_free_owner, 0);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(group_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
