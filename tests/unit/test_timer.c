/*
 * Unit tests for core/timer.c against the stub server's event_base: argument checks, one-shot
 * and repeating timers, deletion before firing and from inside the timer's own callback (ASan
 * catches a use after free), removal of an owner's timers, and post(): FIFO order, callbacks on
 * the loop thread even when posted from another thread, and the queue closing at shutdown.
 *
 * Timers need time to pass: the tests wait with EVLOOP_ONCE (which blocks in the backend until
 * the next timer is due, a millisecond or so) rather than sleeping, and assert on counts and
 * order only, never on durations.
 */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "buf.h"
#include "conn.h"
#include "plugin_loader.h"
#include "server.h"
#include "stub_server.h"
#include "timer.h"

static const char yaml[] = "server:\n"
                           "  listen: 127.0.0.1:0\n"
                           "  permessage_deflate: false\n"
                           "admin:\n"
                           "  enabled: false\n"
                           "log:\n"
                           "  level: err\n";

static struct wshub_plugin g_owner, g_other;

typedef struct tstate {
    int calls;
    int del_at; /* delete itself on this call (0: never) */
    wshub_timer_t *self;
} tstate_t;

static void setup(void)
{
    char err[512];

    ck_assert_msg(stub_server__start(yaml, err, sizeof(err)) == 0, "%s", err);
    memset(&g_owner, 0, sizeof(g_owner));
    memset(&g_other, 0, sizeof(g_other));
    DLIST_INIT(&g_owner.groups);
    DLIST_INIT(&g_owner.timers);
    DLIST_INIT(&g_other.groups);
    DLIST_INIT(&g_other.timers);
}

static void teardown(void)
{
    timer__free_owner(&g_owner);
    timer__free_owner(&g_other);
    stub_server__stop();
    ck_assert_uint_eq(buf__live(), 0);
}

static void on_tick(void *ud)
{
    tstate_t *t = ud;

    t->calls++;
    if (t->del_at && t->calls == t->del_at)
        timer__del(t->self);
}

/* Waits (in the backend, not sleeping) until `*flag` is set, at most `max` loop passes. */
static bool wait_for(const int *flag, int max)
{
    for (int i = 0; i < max && !*flag; i++)
        event_base_loop(g_srv.base, EVLOOP_ONCE);
    return *flag != 0;
}

/* A one-shot sentinel that fires after `ms`: everything due before it has fired by then. */
static void wait_ms(uint64_t ms)
{
    tstate_t s = {0, 0, NULL};

    ck_assert_ptr_nonnull(timer__add(NULL, ms, false, on_tick, &s));
    ck_assert(wait_for(&s.calls, 10000));
}

START_TEST(test_bad_arguments)
{
    tstate_t s = {0, 0, NULL};

    ck_assert_ptr_null(timer__add(&g_owner, 10, false, NULL, &s));
    ck_assert_ptr_null(timer__add(&g_owner, 0, true, on_tick, &s));
    ck_assert_ptr_null(timer__add(&g_owner, 86400000ull * 365 + 1, false, on_tick, &s));
    ck_assert(DLIST_EMPTY(&g_owner.timers));
    timer__del(NULL);
}
END_TEST

START_TEST(test_one_shot)
{
    tstate_t s = {0, 0, NULL};

    s.self = timer__add(&g_owner, 0, false, on_tick, &s);
    ck_assert_ptr_nonnull(s.self);
    ck_assert(!DLIST_EMPTY(&g_owner.timers));
    ck_assert(wait_for(&s.calls, 100));
    ck_assert_int_eq(s.calls, 1);
    /* Freed after firing: off the owner's list. */
    ck_assert(DLIST_EMPTY(&g_owner.timers));
    wait_ms(2);
    ck_assert_int_eq(s.calls, 1);
}
END_TEST

START_TEST(test_repeat_then_delete)
{
    tstate_t s = {0, 0, NULL};
    int seen;

    s.self = timer__add(&g_owner, 1, true, on_tick, &s);
    for (int i = 0; i < 10000 && s.calls < 3; i++)
        event_base_loop(g_srv.base, EVLOOP_ONCE);
    ck_assert_int_ge(s.calls, 3);
    timer__del(s.self);
    ck_assert(DLIST_EMPTY(&g_owner.timers));
    seen = s.calls;
    wait_ms(5);
    ck_assert_int_eq(s.calls, seen);
}
END_TEST

START_TEST(test_delete_inside_callback)
{
    tstate_t rep = {0, 2, NULL}, once = {0, 1, NULL};

    rep.self = timer__add(&g_owner, 1, true, on_tick, &rep);
    once.self = timer__add(&g_owner, 0, false, on_tick, &once);
    for (int i = 0; i < 10000 && rep.calls < 2; i++)
        event_base_loop(g_srv.base, EVLOOP_ONCE);
    ck_assert_int_eq(rep.calls, 2);
    ck_assert_int_eq(once.calls, 1);
    ck_assert(DLIST_EMPTY(&g_owner.timers));
    wait_ms(5);
    ck_assert_int_eq(rep.calls, 2);
    ck_assert_int_eq(once.calls, 1);
}
END_TEST

START_TEST(test_delete_before_firing)
{
    tstate_t s = {0, 0, NULL};

    s.self = timer__add(&g_owner, 0, false, on_tick, &s);
    timer__del(s.self);
    wait_ms(2);
    ck_assert_int_eq(s.calls, 0);
}
END_TEST

START_TEST(test_free_owner)
{
    tstate_t a = {0, 0, NULL}, b = {0, 0, NULL}, c = {0, 0, NULL};

    timer__add(&g_owner, 0, false, on_tick, &a);
    timer__add(&g_owner, 1, true, on_tick, &b);
    timer__add(&g_other, 0, false, on_tick, &c);
    timer__free_owner(&g_owner);
    ck_assert(DLIST_EMPTY(&g_owner.timers));
    ck_assert(!DLIST_EMPTY(&g_other.timers));
    wait_ms(3);
    ck_assert_int_eq(a.calls, 0);
    ck_assert_int_eq(b.calls, 0);
    ck_assert_int_eq(c.calls, 1);
}
END_TEST

/* A timer's output leaves in the same iteration (the callback arms the end-of-iteration work). */
struct send_ctx {
    uint64_t id;
    int fired;
};

static void send_from_timer(void *ud)
{
    struct send_ctx *s = ud;

    s->fired++;
    conn__send_data(conn__by_id(s->id), WS_OP_TEXT, "tick", 4);
}

START_TEST(test_timer_output_flushed)
{
    wsc_t cl;
    wsc_frame_t f;
    struct send_ctx s = {0, 0};

    ck_assert_int_eq(stub_server__open(&cl, "/ws", NULL, &s.id, NULL, 0), 101);
    ck_assert_int_eq(stub_server__recv(&cl, &f, STUB_MAX_ITER), 1); /* welcome */
    wsc_frame__free(&f);
    timer__add(&g_owner, 0, false, send_from_timer, &s);
    ck_assert(wait_for(&s.fired, 100));
    wsc__read(&cl);
    ck_assert_int_eq(wsc__take_frame(&cl, &f), 1);
    ck_assert_str_eq((const char *)f.data, "tick");
    wsc_frame__free(&f);
    wsc__free(&cl);
}
END_TEST

/* --- post ---------------------------------------------------------------------------------- */

#define N_POSTS 200

static struct {
    int order[N_POSTS];
    int n;
    pthread_t loop_thread;
    bool wrong_thread;
} g_post;

static int g_slot_ids[N_POSTS];

static void on_posted(void *ud)
{
    ck_assert_int_lt(g_post.n, N_POSTS);
    g_post.order[g_post.n++] = *(int *)ud;
    if (!pthread_equal(pthread_self(), g_post.loop_thread))
        g_post.wrong_thread = true;
}

static void *poster(void *arg)
{
    (void)arg;
    for (int i = 0; i < N_POSTS; i++)
        if (timer__post(&g_owner, on_posted, &g_slot_ids[i]) != WSHUB_OK)
            return (void *)1;
    return NULL;
}

static bool all_posted(void *ud)
{
    (void)ud;
    return g_post.n == N_POSTS;
}

START_TEST(test_post_from_thread)
{
    pthread_t th;
    void *ret = (void *)1;

    memset(&g_post, 0, sizeof(g_post));
    g_post.loop_thread = pthread_self();
    for (int i = 0; i < N_POSTS; i++)
        g_slot_ids[i] = i;
    ck_assert_int_eq(pthread_create(&th, NULL, poster, NULL), 0);
    ck_assert_int_eq(pthread_join(th, &ret), 0);
    ck_assert_ptr_null(ret);
    ck_assert_int_eq(g_post.n, 0); /* nothing runs until the loop does */
    ck_assert(stub_server__run_until(all_posted, NULL, 50));
    for (int i = 0; i < N_POSTS; i++)
        ck_assert_int_eq(g_post.order[i], i);
    ck_assert(!g_post.wrong_thread);
}
END_TEST

START_TEST(test_post_close)
{
    memset(&g_post, 0, sizeof(g_post));
    g_post.loop_thread = pthread_self();
    for (int i = 0; i < 3; i++) {
        g_slot_ids[i] = i;
        ck_assert_int_eq(timer__post(&g_owner, on_posted, &g_slot_ids[i]), WSHUB_OK);
    }
    ck_assert_int_eq(timer__post(&g_owner, NULL, NULL), WSHUB_ERR_INVAL);
    /* Closing runs what is queued, then refuses. */
    timer__close_post();
    ck_assert_int_eq(g_post.n, 3);
    ck_assert_int_eq(timer__post(&g_owner, on_posted, &g_slot_ids[0]), WSHUB_ERR_STATE);
    stub_server__step();
    ck_assert_int_eq(g_post.n, 3);
}
END_TEST

static void add(Suite *s, const char *name, const TTest *t)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, t);
    suite_add_tcase(s, tc);
}

Suite *timer_suite(void);

Suite *timer_suite(void)
{
    Suite *s = suite_create("timer");

    add(s, "bad_arguments", test_bad_arguments);
    add(s, "one_shot", test_one_shot);
    add(s, "repeat_delete", test_repeat_then_delete);
    add(s, "delete_inside_callback", test_delete_inside_callback);
    add(s, "delete_before_firing", test_delete_before_firing);
    add(s, "free_owner", test_free_owner);
    add(s, "output_flushed", test_timer_output_flushed);
    add(s, "post_from_thread", test_post_from_thread);
    add(s, "post_close", test_post_close);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(timer_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
