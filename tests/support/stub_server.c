/* stub_server: see stub_server.h. */
#include "stub_server.h"

#include <arpa/inet.h>
#include <signal.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/thread.h>

#include "hooks.h"
#include "log.h"
#include "router.h"

static config_t g_cfg;
static bool g_started;

int stub_server__start(const char *yaml, char *err, size_t err_len)
{
    static bool once;

    /* As wshubd's main does: a write to a closed peer is an error return, not a signal, and
     * libevent is thread-aware so post() may be called from other threads. */
    if (!once) {
        signal(SIGPIPE, SIG_IGN);
        if (evthread_use_pthreads() != 0) {
            snprintf(err, err_len, "evthread_use_pthreads failed");
            return -1;
        }
        once = true;
    }
    memset(&g_cfg, 0, sizeof(g_cfg));
    if (config__load_string(&g_cfg, "stub.yaml", yaml, strlen(yaml), NULL, err, err_len) != 0)
        return -1;
    log__set_level(g_cfg.log.level);
    if (server__init_core(&g_cfg) != 0) {
        snprintf(err, err_len, "server__init_core failed");
        config__free(&g_cfg);
        return -1;
    }
    g_started = true;
    return 0;
}

/* Same order as server__run's exit path: connections (their CONN_CLOSE hooks still see the
 * hooks), then registrations, then the core. */
void stub_server__stop(void)
{
    if (!g_started)
        return;
    conn__shutdown();
    router__clear();
    hooks__clear();
    server__fini_core();
    config__free(&g_cfg);
    g_started = false;
}

config_t *stub_server__cfg(void)
{
    return &g_cfg;
}

void stub_server__step(void)
{
    event_base_loop(g_srv.base, EVLOOP_NONBLOCK);
}

bool stub_server__run_until(bool (*cond)(void *ud), void *ud, int max_iter)
{
    for (int i = 0; i < max_iter; i++) {
        if (cond(ud))
            return true;
        stub_server__step();
    }
    return cond(ud);
}

uint64_t stub_server__connect(wsc_t *cl)
{
    return stub_server__connect_type(cl, SOCK_STREAM);
}

uint64_t stub_server__connect_type(wsc_t *cl, int type)
{
    int sv[2];
    struct sockaddr_in sin;
    uint64_t before = g_srv.next_id;

    if (socketpair(AF_UNIX, type | SOCK_NONBLOCK | SOCK_CLOEXEC, 0, sv) != 0) {
        memset(cl, 0, sizeof(*cl));
        cl->fd = -1;
        return 0;
    }
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons(40000);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    server__update_now();
    conn__accept(sv[0], (const struct sockaddr *)&sin, (int)sizeof(sin));
    server__want_eoi();
    wsc__init(cl, sv[1]);
    return g_srv.next_id != before ? g_srv.next_id : 0;
}

wshub_conn_t *stub_server__conn(uint64_t id)
{
    for (dlist_t *it = g_srv.all.next; it != &g_srv.all; it = it->next) {
        wshub_conn_t *c = DLIST_ENTRY(it, wshub_conn_t, link_all);
        if (c->id == id && !(c->flags & CONN_F_FREE))
            return c;
    }
    return NULL;
}

struct http_wait {
    wsc_t *cl;
    int rc, status;
    char *head;
    size_t head_cap;
};

static bool http_arrived(void *ud)
{
    struct http_wait *w = ud;

    wsc__read(w->cl);
    w->rc = wsc__take_http(w->cl, &w->status, w->head, w->head_cap);
    return w->rc != 0 || w->cl->eof || w->cl->error;
}

int stub_server__open(wsc_t *cl, const char *path, const char *extra_headers, uint64_t *id,
                      char *head, size_t head_cap)
{
    return stub_server__open_type(cl, SOCK_STREAM, path, extra_headers, id, head, head_cap);
}

int stub_server__open_type(wsc_t *cl, int type, const char *path, const char *extra_headers,
                           uint64_t *id, char *head, size_t head_cap)
{
    struct http_wait w = {cl, 0, 0, head, head_cap};
    uint64_t cid = stub_server__connect_type(cl, type);

    if (id)
        *id = cid;
    if (!cid || wsc__send_request(cl, path, extra_headers) != 0)
        return -1;
    if (!stub_server__run_until(http_arrived, &w, STUB_MAX_ITER) || w.rc != 1)
        return -1;
    return w.status;
}

struct frame_wait {
    wsc_t *cl;
    wsc_frame_t *f;
    int rc;
};

static bool frame_arrived(void *ud)
{
    struct frame_wait *w = ud;

    wsc__read(w->cl);
    w->rc = wsc__take_frame(w->cl, w->f);
    return w->rc != 0 || w->cl->eof || w->cl->error;
}

int stub_server__recv(wsc_t *cl, wsc_frame_t *f, int max_iter)
{
    struct frame_wait w = {cl, f, 0};

    stub_server__run_until(frame_arrived, &w, max_iter);
    return w.rc;
}

static bool eof_seen(void *ud)
{
    wsc_t *cl = ud;

    wsc__read(cl);
    return cl->eof || cl->error;
}

bool stub_server__wait_eof(wsc_t *cl, int max_iter)
{
    return stub_server__run_until(eof_seen, cl, max_iter);
}
