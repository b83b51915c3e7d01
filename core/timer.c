/*
 * timer: plugin timers (libevent timer events owned by the plugin, freed at unload) and post():
 * a mutex-protected queue drained by an event that other threads activate. libevent is made
 * thread-aware (evthread_use_pthreads) before the base exists, so event_active() from a nats.c
 * thread wakes the loop safely.
 */
#include "timer.h"

#include <pthread.h>
#include <stdlib.h>

#include <event2/event.h>

#include "dlist.h"
#include "mem.h"
#include "plugin_loader.h"
#include "server.h"

struct wshub_timer {
    struct event *ev;
    wshub_plugin_t *owner;
    wshub_timer_cb cb;
    void *ud;
    bool repeat;
    bool in_cb, deleted;
    dlist_t link;
};

static void timer_free(wshub_timer_t *t)
{
    event_free(t->ev);
    if (dlist__linked(&t->link))
        dlist__remove(&t->link);
    free(t);
}

static void on_timer(evutil_socket_t fd, short what, void *arg)
{
    wshub_timer_t *t = arg;

    (void)fd;
    (void)what;
    server__update_now();
    t->in_cb = true;
    t->cb(t->ud);
    t->in_cb = false;
    if (t->deleted || !t->repeat)
        timer_free(t);
    server__want_eoi();
}

wshub_timer_t *timer__add(wshub_plugin_t *owner, uint64_t ms, bool repeat, wshub_timer_cb cb,
                          void *ud)
{
    wshub_timer_t *t;
    struct timeval tv;

    if (!cb || (repeat && ms == 0) || ms > 86400000ull * 365)
        return NULL;
    t = mem__calloc(1, sizeof(*t));
    t->owner = owner;
    t->cb = cb;
    t->ud = ud;
    t->repeat = repeat;
    t->ev = event_new(g_srv.base, -1, repeat ? EV_PERSIST : 0, on_timer, t);
    DLIST_INIT(&t->link);
    if (owner)
        dlist__push(&owner->timers, &t->link);
    tv.tv_sec = (time_t)(ms / 1000);
    tv.tv_usec = (suseconds_t)((ms % 1000) * 1000);
    event_add(t->ev, &tv);
    return t;
}

/*
 * A timer deleted from inside its own callback (directly, or through its owner's unload) is
 * only stopped and unlinked here; on_timer frees it when the callback returns.
 */
void timer__del(wshub_timer_t *t)
{
    if (!t)
        return;
    if (t->in_cb) {
        t->deleted = true;
        event_del(t->ev);
        if (dlist__linked(&t->link))
            dlist__remove(&t->link);
        return;
    }
    timer_free(t);
}

void timer__free_owner(wshub_plugin_t *owner)
{
    while (!DLIST_EMPTY(&owner->timers))
        timer__del(DLIST_ENTRY(owner->timers.next, wshub_timer_t, link));
}

/* ------------------------------------------------------------------------------------------ */

typedef struct post_item {
    void (*cb)(void *);
    void *ud;
    struct post_item *next;
} post_item_t;

static pthread_mutex_t g_post_mu = PTHREAD_MUTEX_INITIALIZER;
static post_item_t *g_post_head, *g_post_tail;
static struct event *g_post_ev;
static bool g_post_closed;

static void run_posted(void)
{
    post_item_t *list;

    pthread_mutex_lock(&g_post_mu);
    list = g_post_head;
    g_post_head = g_post_tail = NULL;
    pthread_mutex_unlock(&g_post_mu);
    while (list) {
        post_item_t *n = list->next;
        list->cb(list->ud);
        free(list);
        list = n;
    }
}

static void on_post(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    server__update_now();
    run_posted();
    server__want_eoi();
}

int timer__init_post(void)
{
    g_post_closed = false;
    g_post_ev = event_new(g_srv.base, -1, 0, on_post, NULL);
    return g_post_ev ? 0 : -1;
}

int timer__post(wshub_plugin_t *owner, void (*cb)(void *), void *ud)
{
    post_item_t *it;

    (void)owner;
    if (!cb)
        return WSHUB_ERR_INVAL;
    it = malloc(sizeof(*it));
    if (!it)
        return WSHUB_ERR_NOMEM;
    it->cb = cb;
    it->ud = ud;
    it->next = NULL;
    pthread_mutex_lock(&g_post_mu);
    if (g_post_closed || !g_post_ev) {
        pthread_mutex_unlock(&g_post_mu);
        free(it);
        return WSHUB_ERR_STATE;
    }
    if (g_post_tail)
        g_post_tail->next = it;
    else
        g_post_head = it;
    g_post_tail = it;
    event_active(g_post_ev, EV_READ, 0);
    pthread_mutex_unlock(&g_post_mu);
    return WSHUB_OK;
}

void timer__close_post(void)
{
    run_posted();
    pthread_mutex_lock(&g_post_mu);
    g_post_closed = true;
    pthread_mutex_unlock(&g_post_mu);
    run_posted();
    if (g_post_ev)
        event_free(g_post_ev);
    g_post_ev = NULL;
}
