/*
 * conn: see conn.h.
 *
 * Life of a connection:
 *   accept -> CONN_HANDSHAKE (read the request head into c->hs, bounded, with a deadline)
 *          -> upgrade: validate, route the path, origin, limits, AUTH hooks, 101
 *          -> CONN_OPEN: frames parsed by ws_parser; messages to the router; output queued
 *          -> close requested (conn__close: by a plugin, the peer's close frame, a protocol
 *             error, a timeout, a slow consumer, EOF): at the end of the loop iteration the
 *             CONN_CLOSE hooks run, the conn leaves every table and group, plugin state is freed
 *             and our close frame is queued
 *          -> CONN_CLOSING: the queue drains, then shutdown(SHUT_WR) and a bounded wait for the
 *             peer's EOF (lingering close, so the peer reads our close frame instead of an RST)
 *          -> freed at the end of an iteration.
 *
 * Output: frames are queued by reference (out_item_t: a buffer and an offset) and the queue is
 * flushed once per loop iteration with writev, so several messages for one connection produced
 * in one iteration leave in one system call. A connection whose queue exceeds
 * send_queue_max_bytes is a slow consumer: its unsent frames are dropped and it is closed 1008.
 */
#include "conn.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <event2/event.h>

#include "buf.h"
#include "group.h"
#include "hooks.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "plugin_loader.h"
#include "router.h"
#include "server.h"
#include "ws_deflate.h"
#include "ws_handshake.h"

#define LINGER_MS       2000 /* wait for the peer's close/EOF after our close frame */
#define MAX_IOV         1024 /* IOV_MAX: a backlog leaves in as few system calls as possible */
#define READS_PER_EVENT 4    /* fairness: at most this many full reads per readiness event */

static void on_readable(wshub_conn_t *c);
static void on_writable(wshub_conn_t *c);
static void flush(wshub_conn_t *c);

static int on_ws_message(void *ud, int opcode, const uint8_t *data, size_t len);
static int on_ws_control(void *ud, int opcode, const uint8_t *data, size_t len, uint16_t code);
static int on_ws_oversize(void *ud, int opcode, uint64_t len);
static const ws_parser_cb_t parser_cb = {on_ws_message, on_ws_control, on_ws_oversize};

/* ------------------------------------------------------------------------------------------ */
/* Table                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/*
 * Connection sockets live in the core's own epoll set, which is itself one fd watched by the
 * libevent loop (timers, signals, listeners, admin HTTP and plugins' libevent users stay on
 * libevent). A connection then costs an epoll registration and no libevent `struct event`
 * (128 bytes) nor its per-fd map entry, and one epoll_wait serves a whole batch of sockets.
 */
#define EPOLL_BATCH 256

static void on_epoll(evutil_socket_t fd, short what, void *arg)
{
    struct epoll_event evs[EPOLL_BATCH];
    int n;

    (void)fd;
    (void)what;
    (void)arg;
    n = epoll_wait(g_srv.epfd, evs, EPOLL_BATCH, 0);
    if (n <= 0)
        return;
    server__update_now();
    for (int i = 0; i < n; i++) {
        wshub_conn_t *c = evs[i].data.ptr;
        /* A connection freed earlier in this batch is still allocated (freeing is deferred to
         * the end of the iteration) and marked: skip it. */
        if (c->flags & CONN_F_FREE)
            continue;
        if ((evs[i].events & EPOLLOUT) && (c->flags & CONN_F_WANT_WRITE))
            on_writable(c);
        if ((evs[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) && !(c->flags & CONN_F_FREE) &&
            !(c->flags & CONN_F_NOREAD))
            on_readable(c);
    }
    /* A full batch leaves the epoll fd readable: libevent calls again next iteration, after
     * the other events, which keeps listeners and timers fair. */
    server__want_eoi();
}

static void epoll_set(wshub_conn_t *c, int op, uint32_t events)
{
    struct epoll_event ev;

    memset(&ev, 0, sizeof(ev));
    ev.events = events;
    ev.data.ptr = c;
    if (epoll_ctl(g_srv.epfd, op, c->fd, &ev) != 0 && op != EPOLL_CTL_DEL)
        log_warn("connection %llu: epoll_ctl: %s", (unsigned long long)c->id, strerror(errno));
}

void conn__init(void)
{
    idmap__init(&g_srv.by_id);
    DLIST_INIT(&g_srv.all);
    strmap__init(&g_srv.tenants);
    strmap__init(&g_srv.ips);
    if (g_srv.epoll_ev)
        return; /* re-initialising the tables (tests): the epoll set stays */
    g_srv.epfd = epoll_create1(EPOLL_CLOEXEC);
    if (g_srv.epfd < 0) {
        log_err("epoll_create1: %s", strerror(errno));
        abort();
    }
    g_srv.epoll_ev = event_new(g_srv.base, g_srv.epfd, EV_READ | EV_PERSIST, on_epoll, NULL);
    event_add(g_srv.epoll_ev, NULL);
}

wshub_conn_t *conn__by_id(uint64_t id)
{
    return idmap__get(&g_srv.by_id, id);
}

size_t conn__n_sockets(void)
{
    return g_srv.n_sockets;
}

/* A connection scheduled for freeing (conn__shutdown frees open ones directly) is not live
 * either: CONN_CLOSE hooks run from free_conn must not queue output to it or to its peers
 * being freed in the same pass, which would leave freed connections on the flush list. */
bool conn__is_live(const wshub_conn_t *c)
{
    return c->state == CONN_OPEN && !(c->flags & (CONN_F_CLOSE_REQ | CONN_F_FREE));
}

/* Finds or creates a tenant; limits and origins come from the `tenants:` config section. */
static tenant_t *tenant_get(const char *name, bool create)
{
    tenant_t *t = strmap__get(&g_srv.tenants, name);
    const config_t *cfg = g_srv.cfg;

    if (t || !create)
        return t;
    t = mem__calloc(1, sizeof(*t));
    t->name = mem__strdup(name);
    DLIST_INIT(&t->conns);
    strmap__init(&t->users);
    for (size_t i = 0; cfg && i < cfg->n_tenants; i++) {
        if (strcmp(cfg->tenants[i].name, name) == 0) {
            t->max_conns = cfg->tenants[i].max_connections;
            t->origins = cfg->tenants[i].cors_origins;
            t->n_origins = cfg->tenants[i].n_cors_origins;
        }
    }
    strmap__put(&g_srv.tenants, name, t);
    return t;
}

tenant_t *conn__tenant(const char *name)
{
    return tenant_get(name, false);
}

tenant_t *conn__tenant_get(const char *name)
{
    return tenant_get(name, true);
}

/* Tenants with no connections are freed, so an attacker cycling tenant ids holds no memory. */
void conn__tenant_release(tenant_t *t)
{
    if (t->n_conns || !DLIST_EMPTY(&t->conns))
        return;
    strmap__del(&g_srv.tenants, t->name);
    strmap__free(&t->users);
    free(t->name);
    free(t);
}

/* wshub_tenant_connections{tenant}: the registry caps the number of series per family, so a
 * flood of tenant ids cannot grow it without bound; operators turn it off with
 * metrics.tenant_labels: false where tenants are many. */
static void tenant_gauge(const tenant_t *t)
{
    const char *labels[1] = {t->name};

    if (g_srv.m.tenant_conns)
        metrics__set(g_srv.m.tenant_conns, labels, (double)t->n_conns);
}

static void attach_identity(wshub_conn_t *c)
{
    tenant_t *t = c->tenant;
    const char *uname = c->user ? c->user->name : NULL;
    user_t *u = NULL;

    /* c->user is a placeholder holding the name until the tenant is known (see set_identity). */
    if (c->user) {
        u = strmap__get(&t->users, uname);
        if (!u) {
            u = mem__calloc(1, sizeof(*u));
            u->name = c->user->name;
            u->tenant = t;
            DLIST_INIT(&u->conns);
            strmap__put(&t->users, u->name, u);
        } else {
            free(c->user->name);
        }
        free(c->user);
        c->user = u;
        dlist__push(&u->conns, &c->link_user);
        u->n_conns++;
    }
    dlist__push(&t->conns, &c->link_tenant);
    t->n_conns++;
    tenant_gauge(t);
}

static void detach_identity(wshub_conn_t *c)
{
    tenant_t *t = c->tenant;
    user_t *u = c->user;

    if (!t)
        return;
    if (u && !dlist__linked(&c->link_user)) {
        /* A placeholder from set_identity: the connection never opened. */
        free(u->name);
        free(u);
        c->user = NULL;
    } else if (u) {
        dlist__remove(&c->link_user);
        if (--u->n_conns == 0) {
            strmap__del(&t->users, u->name);
            free(u->name);
            free(u);
        }
        c->user = NULL;
    }
    if (dlist__linked(&c->link_tenant)) {
        dlist__remove(&c->link_tenant);
        t->n_conns--;
        tenant_gauge(t);
    }
    c->tenant = NULL;
    conn__tenant_release(t);
}

/* ------------------------------------------------------------------------------------------ */
/* Accept                                                                                      */
/* ------------------------------------------------------------------------------------------ */

void conn__accept(int fd, const struct sockaddr *sa, int salen)
{
    wshub_conn_t *c;
    int one = 1;

    if (g_srv.draining) {
        close(fd);
        return;
    }
    c = mem__calloc(1, sizeof(*c));
    c->fd = fd;
    c->id = ++g_srv.next_id;
    c->created_ms = c->last_seen_ms = server__now_ms();
    c->deadline_ms = c->created_ms + g_srv.cfg->server.handshake_timeout_ms;
    DLIST_INIT(&c->link_tenant);
    DLIST_INIT(&c->link_user);
    if (sa->sa_family == AF_INET && salen >= (int)sizeof(struct sockaddr_in)) {
        memcpy(c->addr, &((const struct sockaddr_in *)sa)->sin_addr, 4);
        c->addr_family = AF_INET;
    } else if (sa->sa_family == AF_INET6 && salen >= (int)sizeof(struct sockaddr_in6)) {
        memcpy(c->addr, &((const struct sockaddr_in6 *)sa)->sin6_addr, 16);
        c->addr_family = AF_INET6;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    epoll_set(c, EPOLL_CTL_ADD, EPOLLIN);
    dlist__push(&g_srv.all, &c->link_all);
    g_srv.n_sockets++;
    *g_srv.m.sockets = (double)g_srv.n_sockets;
}

/* Formats the peer address into tmp (INET6_ADDRSTRLEN bytes) without allocating. */
static const char *remote_fmt(const wshub_conn_t *c, char *tmp)
{
    if (c->addr_family == AF_INET6) {
        /* v4-mapped addresses read as plain IPv4, so per-IP limits count one host once. */
        static const uint8_t mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        if (memcmp(c->addr, mapped, 12) == 0)
            inet_ntop(AF_INET, c->addr + 12, tmp, INET6_ADDRSTRLEN);
        else
            inet_ntop(AF_INET6, c->addr, tmp, INET6_ADDRSTRLEN);
    } else if (c->addr_family == AF_INET) {
        inet_ntop(AF_INET, c->addr, tmp, INET6_ADDRSTRLEN);
    } else {
        strcpy(tmp, "unknown");
    }
    return tmp;
}

/* The persistent copy is made only when a plugin asks for it after the upgrade. */
const char *conn__remote(wshub_conn_t *c)
{
    char tmp[INET6_ADDRSTRLEN];

    if (!c->remote)
        c->remote = mem__strdup(remote_fmt(c, tmp));
    return c->remote;
}

/* ------------------------------------------------------------------------------------------ */
/* Output queue                                                                                */
/* ------------------------------------------------------------------------------------------ */

static void mark_dirty(wshub_conn_t *c)
{
    if (c->flags & (CONN_F_DIRTY | CONN_F_WANT_WRITE))
        return;
    c->flags |= CONN_F_DIRTY;
    /* FIFO: connections are flushed in the order they were given work (a group's member
     * order), so the first recipients of a fan-out are written first. */
    c->next_dirty = NULL;
    if (g_srv.dirty_tail)
        g_srv.dirty_tail->next_dirty = c;
    else
        g_srv.dirty_head = c;
    g_srv.dirty_tail = c;
    server__want_eoi();
}

/* Appends b (a new reference is taken) to the ring. */
static void oq_push(wshub_conn_t *c, wshub_buf_t *b)
{
    size_t flen;

    if (c->oq_n == c->oq_cap) {
        uint32_t ncap = c->oq_cap ? c->oq_cap * 2 : 4;
        out_item_t *n = mem__alloc(ncap * sizeof(*n));
        for (uint32_t i = 0; i < c->oq_n; i++)
            n[i] = c->oq[(c->oq_head + i) % c->oq_cap];
        free(c->oq);
        c->oq = n;
        c->oq_cap = ncap;
        c->oq_head = 0;
    }
    c->oq[(c->oq_head + c->oq_n) % c->oq_cap] = (out_item_t){buf__ref(b), 0};
    c->oq_n++;
    buf__frame(b, &flen);
    c->oq_bytes += flen;
}

/* Drops queued frames that have not started to go out (slow consumer, fatal close). */
static void oq_drop_unsent(wshub_conn_t *c)
{
    uint32_t keep = (c->oq_n && c->oq[c->oq_head].off > 0) ? 1 : 0;

    for (uint32_t i = keep; i < c->oq_n; i++) {
        out_item_t *it = &c->oq[(c->oq_head + i) % c->oq_cap];
        size_t flen;
        buf__frame(it->b, &flen);
        c->oq_bytes -= flen;
        buf__unref(it->b);
    }
    c->oq_n = keep;
}

static void oq_free(wshub_conn_t *c)
{
    for (uint32_t i = 0; i < c->oq_n; i++)
        buf__unref(c->oq[(c->oq_head + i) % c->oq_cap].b);
    free(c->oq);
    c->oq = NULL;
    c->oq_n = c->oq_cap = c->oq_head = 0;
    c->oq_bytes = 0;
}

/* Queues a frame whatever the state (control frames while closing). */
static void queue_frame(wshub_conn_t *c, wshub_buf_t *b)
{
    oq_push(c, b);
    mark_dirty(c);
}

static void queue_control(wshub_conn_t *c, uint8_t opcode, const void *data, size_t len)
{
    wshub_buf_t *b = buf__new(opcode, data, len);
    queue_frame(c, b);
    buf__unref(b);
}

int conn__send(wshub_conn_t *c, wshub_buf_t *b)
{
    wshub_buf_t *out;
    size_t flen;

    if (!conn__is_live(c))
        return WSHUB_ERR_STATE;
    out = c->pmd_window ? buf__for_deflate(b, g_srv.deflate, c->pmd_window,
                                           g_srv.cfg->server.deflate_min_size)
                        : buf__ref(b);
    buf__frame(out, &flen);
    if (c->oq_bytes + flen > g_srv.cfg->server.send_queue_max_bytes) {
        buf__unref(out);
        (*g_srv.m.slow_consumers)++;
        log_info("connection %llu: slow consumer (%zu bytes queued), closing",
                 (unsigned long long)c->id, c->oq_bytes);
        oq_drop_unsent(c);
        conn__close(c, WS_CLOSE_POLICY, "slow consumer");
        return WSHUB_ERR_LIMIT;
    }
    oq_push(c, out);
    buf__unref(out);
    (*g_srv.m.msgs_out)++;
    mark_dirty(c);
    return WSHUB_OK;
}

int conn__send_data(wshub_conn_t *c, uint8_t opcode, const void *data, size_t len)
{
    wshub_buf_t *b;
    int rc;

    if (!conn__is_live(c))
        return WSHUB_ERR_STATE;
    b = buf__new(opcode, data, len);
    rc = conn__send(c, b);
    buf__unref(b);
    return rc;
}

/* Raw bytes (the HTTP response) are written at once when nothing is queued (the usual case:
 * no allocation on the upgrade path); what the socket does not take goes through the same
 * queue as a frame with no header. */
static void queue_raw(wshub_conn_t *c, const char *data, size_t len)
{
    wshub_buf_t *b;

    if (c->oq_n == 0 && !(c->flags & CONN_F_WANT_WRITE)) {
        ssize_t w;
        do
            w = write(c->fd, data, len);
        while (w < 0 && errno == EINTR);
        if (w > 0) {
            *g_srv.m.bytes_out += (double)w;
            data += w;
            len -= (size_t)w;
        }
        if (len == 0) {
            /* Nothing queued: a pending close still needs its drained() step. */
            mark_dirty(c);
            return;
        }
    }
    b = buf__new(0, data, len);

    b->hdr_len = 0;
    queue_frame(c, b);
    buf__unref(b);
}

/* ------------------------------------------------------------------------------------------ */
/* Closing and freeing                                                                         */
/* ------------------------------------------------------------------------------------------ */

static void schedule_free(wshub_conn_t *c)
{
    if (c->flags & CONN_F_FREE)
        return;
    c->flags |= CONN_F_FREE;
    epoll_set(c, EPOLL_CTL_DEL, 0);
    /* Its own list: a connection can be dirty and freed in the same iteration. */
    c->next_close = g_srv.free_head;
    g_srv.free_head = c;
    server__want_eoi();
}

void conn__close(wshub_conn_t *c, uint16_t code, const char *reason)
{
    if (c->flags & (CONN_F_CLOSE_REQ | CONN_F_FREE) || c->state == CONN_CLOSING)
        return;
    if (c->state == CONN_HANDSHAKE) {
        schedule_free(c);
        return;
    }
    c->flags |= CONN_F_CLOSE_REQ;
    c->close_code = code;
    free(c->close_reason);
    c->close_reason = mem__strdup(reason ? reason : "");
    /* Leave the id table now: conn_lookup must not find a connection that is closing. */
    idmap__del(&g_srv.by_id, c->id);
    c->next_close = g_srv.close_head;
    g_srv.close_head = c;
    server__want_eoi();
}

/* A fatal close: our close frame (if any) goes out, then the socket, without waiting. */
static void fail(wshub_conn_t *c, uint16_t code, const char *reason)
{
    c->flags |= CONN_F_KILL;
    conn__close(c, code, reason);
}

/* The socket is gone (EOF, reset): no close frame can be sent. */
static void lost(wshub_conn_t *c)
{
    if (c->state == CONN_OPEN && !(c->flags & CONN_F_CLOSE_REQ)) {
        oq_drop_unsent(c);
        c->flags |= CONN_F_KILL | CONN_F_PEER_CLOSED | CONN_F_CLOSE_SENT;
        conn__close(c, WS_CLOSE_ABNORMAL, "connection lost");
        /* Nothing more can be read or written. */
        c->flags |= CONN_F_NOREAD;
        c->flags &= ~CONN_F_WANT_WRITE;
        epoll_set(c, EPOLL_CTL_DEL, 0);
        return;
    }
    schedule_free(c);
}

/* Plugin-visible teardown of an open connection: hooks, tables, groups, state. */
static void run_close(wshub_conn_t *c)
{
    char code_label[12];
    const char *labels[1] = {code_label};

    if (c->flags & CONN_F_OPENED) {
        wshub_ev_close_t ev = {c, c->close_code, c->close_reason ? c->close_reason : ""};
        hooks__run_all(WSHUB_EV_CONN_CLOSE, &ev);
        c->flags &= ~CONN_F_OPENED;
        (*g_srv.m.closed)++;
        snprintf(code_label, sizeof(code_label), "%u", c->close_code);
        metrics__add(g_srv.m.closes, labels, 1);
    }
    group__leave_all(c);
    if (c->flags & CONN_F_COUNTED) {
        c->flags &= ~CONN_F_COUNTED;
        g_srv.n_open--;
        *g_srv.m.connections = (double)g_srv.n_open;
        if (g_srv.cfg->server.max_connections_per_ip) {
            char tmp[INET6_ADDRSTRLEN];
            const char *ip = remote_fmt(c, tmp);
            uintptr_t n = (uintptr_t)strmap__get(&g_srv.ips, ip);
            if (n <= 1)
                strmap__del(&g_srv.ips, ip);
            else {
                strmap__del(&g_srv.ips, ip);
                strmap__put(&g_srv.ips, ip, (void *)(n - 1));
            }
        }
    }
    detach_identity(c);
    free(c->pstate);
    c->pstate = NULL;
}

/* Processes one close request: teardown, then our close frame, then the lingering close. */
static void process_close(wshub_conn_t *c)
{
    uint16_t code = c->close_code;

    /* CLOSE_REQ stays set while the CONN_CLOSE hooks run: the connection is not live for them,
     * and a conn_close from a hook is a no-op instead of replacing the reason of the close
     * frame and queueing the connection for a second close. */
    run_close(c);
    c->flags &= ~CONN_F_CLOSE_REQ;
    c->state = CONN_CLOSING;
    c->deadline_ms = server__now_ms() + LINGER_MS;
    if (!(c->flags & CONN_F_CLOSE_SENT)) {
        uint8_t payload[125];
        size_t plen = 0;
        /* 1005/1006 never go on the wire: an empty close frame answers a close without code. */
        if (code != WS_CLOSE_NO_STATUS && code != WS_CLOSE_ABNORMAL)
            plen = ws_frame__close_payload(payload, code, c->close_reason);
        c->flags |= CONN_F_CLOSE_SENT;
        queue_control(c, WS_OP_CLOSE, payload, plen);
    } else if (c->oq_n == 0) {
        /* Nothing to send (connection lost): free now. */
        schedule_free(c);
    }
}

static void free_conn(wshub_conn_t *c)
{
    if (c->flags & (CONN_F_OPENED | CONN_F_COUNTED) || c->tenant || c->pstate)
        run_close(c);
    if (c->state == CONN_OPEN)
        idmap__del(&g_srv.by_id, c->id);
    dlist__remove(&c->link_all);
    g_srv.n_sockets--;
    *g_srv.m.sockets = (double)g_srv.n_sockets;
    /* Closing the fd removes it from the epoll set. */
    close(c->fd);
    oq_free(c);
    ws_parser__reset(&c->parser);
    for (uint16_t i = 0; i < c->n_roles; i++)
        free(c->roles[i]);
    free(c->roles);
    free(c->metadata);
    free(c->subprotocol);
    free(c->path);
    free(c->remote);
    free(c->close_reason); /* or the handshake buffer: they share storage */
    free(c->memberships);
    free(c);
}

void conn__end_of_iteration(void)
{
    /* Closes can trigger sends (hooks notify others) and sends can trigger closes (slow
     * consumers): loop until quiet, bounded since each pass only handles new requests. */
    for (int pass = 0; pass < 16; pass++) {
        wshub_conn_t *c;
        bool work = false;

        while ((c = g_srv.close_head)) {
            g_srv.close_head = c->next_close;
            c->next_close = NULL;
            work = true;
            if (c->flags & CONN_F_FREE)
                continue;
            process_close(c);
        }
        while ((c = g_srv.dirty_head)) {
            g_srv.dirty_head = c->next_dirty;
            if (!g_srv.dirty_head)
                g_srv.dirty_tail = NULL;
            c->flags &= ~CONN_F_DIRTY;
            work = true;
            if (!(c->flags & (CONN_F_FREE | CONN_F_WANT_WRITE)))
                flush(c);
        }
        if (!work)
            break;
    }
    wshub_conn_t *c;
    while ((c = g_srv.free_head)) {
        g_srv.free_head = c->next_close;
        free_conn(c);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Writing                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* Write interest is registered only while the kernel's buffer is full (most writes complete
 * at once), so a connection that keeps up costs no epoll_ctl per message. */
static void want_write(wshub_conn_t *c, bool on)
{
    if (on == !!(c->flags & CONN_F_WANT_WRITE) || (c->flags & (CONN_F_FREE | CONN_F_NOREAD)))
        return;
    if (on)
        c->flags |= CONN_F_WANT_WRITE;
    else
        c->flags &= ~CONN_F_WANT_WRITE;
    epoll_set(c, EPOLL_CTL_MOD, on ? EPOLLIN | EPOLLOUT : EPOLLIN);
}

/* The queue drained: finish a close that was waiting for it. */
static void drained(wshub_conn_t *c)
{
    free(c->oq);
    c->oq = NULL;
    c->oq_cap = c->oq_head = 0;
    /* Our close frame (or HTTP error) is out: the server closes TCP first (RFC 6455 §7.1.1).
     * Half close, then keep reading until EOF or the linger deadline, so the peer reads our
     * close frame rather than a reset caused by its unread input. */
    if (c->state == CONN_CLOSING && (c->flags & CONN_F_CLOSE_SENT))
        shutdown(c->fd, SHUT_WR);
}

/*
 * Writes as much of the queue as the socket takes, up to MAX_IOV frames per writev. Partial
 * writes leave the offset in the head item and arm the write event.
 */
static void flush(wshub_conn_t *c)
{
    struct iovec iov[MAX_IOV];

    while (c->oq_n) {
        int n = 0;
        ssize_t w;

        for (uint32_t i = 0; i < c->oq_n && n < MAX_IOV; i++) {
            out_item_t *it = &c->oq[(c->oq_head + i) % c->oq_cap];
            size_t flen;
            const uint8_t *f = buf__frame(it->b, &flen);
            iov[n].iov_base = (void *)(f + it->off);
            iov[n].iov_len = flen - it->off;
            n++;
        }
        w = writev(c->fd, iov, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK) {
                want_write(c, true);
                return;
            }
            want_write(c, false);
            oq_free(c);
            lost(c);
            return;
        }
        *g_srv.m.bytes_out += (double)w;
        c->oq_bytes -= (size_t)w;
        while (w > 0) {
            out_item_t *it = &c->oq[c->oq_head];
            size_t flen;
            buf__frame(it->b, &flen);
            size_t left = flen - it->off;
            if ((size_t)w < left) {
                it->off += (uint32_t)w;
                w = 0;
                break;
            }
            w -= (ssize_t)left;
            buf__unref(it->b);
            c->oq_head = (c->oq_head + 1) % c->oq_cap;
            c->oq_n--;
        }
        if (c->oq_n) {
            /* The kernel took less than offered: it is full, wait for writability. */
            want_write(c, true);
            return;
        }
    }
    want_write(c, false);
    drained(c);
}

static void on_writable(wshub_conn_t *c)
{
    flush(c);
}

/* ------------------------------------------------------------------------------------------ */
/* Upgrade                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* Answers the handshake with an HTTP error and closes after the response is written. */
static void http_fail(wshub_conn_t *c, int status, const char *why, const char *body,
                      const char *extra)
{
    char resp[1024];
    const char *labels[1] = {why};
    size_t n = ws_handshake__response_error(resp, sizeof(resp), status, body ? body : why, extra);

    metrics__add(g_srv.m.handshake_failures, labels, 1);
    log_debug("connection %llu: handshake refused: %d %s", (unsigned long long)c->id, status, why);
    if (n)
        queue_raw(c, resp, n);
    c->state = CONN_CLOSING;
    c->flags |= CONN_F_CLOSE_SENT | CONN_F_KILL;
    c->deadline_ms = server__now_ms() + LINGER_MS;
    free(c->pstate);
    c->pstate = NULL;
}

static bool origin_allowed(char *const *list, size_t n, const char *origin)
{
    if (!n || !origin)
        return true;
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i], "*") == 0 || strcasecmp(list[i], origin) == 0)
            return true;
    return false;
}

/* The Sec-WebSocket-Protocol offer of the request whose AUTH hooks are running. */
static const char *g_auth_protocols;

struct offer_find {
    const char *want;
    size_t len;
};

static int match_offer(void *ud, const char *tok, size_t len)
{
    const struct offer_find *f = ud;
    return len == f->len && memcmp(tok, f->want, len) == 0;
}

bool conn__protocol_offered(const wshub_conn_t *c, const char *protocol)
{
    struct offer_find f = {protocol, strlen(protocol)};

    if (!(c->flags & CONN_F_AUTH) || !g_auth_protocols)
        return false;
    return ws_handshake__each_token(g_auth_protocols, match_offer, &f) == 1;
}

struct proto_pick {
    const char *chosen;
    size_t len;
};

/* Default subprotocol choice: the first wshub protocol the client offered. */
static int pick_wshub_proto(void *ud, const char *tok, size_t len)
{
    struct proto_pick *pp = ud;

    if ((len == 8 && memcmp(tok, "wshub.v1", 8) == 0) ||
        (len == 14 && memcmp(tok, "wshub.v1.batch", 14) == 0)) {
        pp->chosen = tok;
        pp->len = len;
        return 1;
    }
    return 0;
}

/*
 * Validates the request and switches protocols. Returns true when the connection is now open
 * (the caller then feeds any bytes that followed the request head).
 */
static bool upgrade(wshub_conn_t *c, const char *head, size_t head_len)
{
    const config_t *cfg = g_srv.cfg;
    ws_request_t req;
    const char *why = NULL;
    const struct route_path *raw = NULL;
    ws_pmd_params_t pmd = {0};
    char ext[160] = "";
    char accept[29];
    char resp[1024];
    wshub_header_t hdrs[100];
    wshub_ev_auth_t ev;
    const char *origin, *protos;
    char remote[INET6_ADDRSTRLEN];
    size_t n;
    int status, rc;
    bool is_json;

    memset(&req, 0, sizeof(req));
    if (ws_handshake__parse(&req, head, head_len) != 0) {
        http_fail(c, 400, "bad_request", "malformed HTTP request", NULL);
        goto out_fail;
    }
    status = ws_handshake__validate(&req, &why);
    if (status) {
        http_fail(c, status, why, why, status == 426 ? "Sec-WebSocket-Version: 13\r\n" : NULL);
        goto out_fail;
    }
    /* The JSON path also serves its sub-paths (/ws/acme/alice) for plugins that read them. */
    {
        size_t plen = strlen(cfg->server.path);
        is_json = strncmp(req.path, cfg->server.path, plen) == 0 &&
                  (req.path[plen] == '\0' || (req.path[plen] == '/' && plen > 1));
    }
    if (is_json && (raw = router__path(req.path)))
        is_json = false;
    if (!is_json && !(raw = router__path(req.path))) {
        http_fail(c, 404, "no_path", "no WebSocket endpoint at this path", NULL);
        goto out_fail;
    }
    origin = ws_request__header(&req, "origin");
    if (!origin_allowed(cfg->server.cors_origins, cfg->server.n_cors_origins, origin)) {
        http_fail(c, 403, "origin", "origin not allowed", NULL);
        goto out_fail;
    }
    if (g_srv.n_open >= cfg->server.max_connections) {
        http_fail(c, 503, "max_connections", "server at max_connections", NULL);
        goto out_fail;
    }
    if (cfg->server.max_connections_per_ip &&
        (uintptr_t)strmap__get(&g_srv.ips, remote_fmt(c, remote)) >=
            cfg->server.max_connections_per_ip) {
        http_fail(c, 503, "ip_limit", "too many connections from this address", NULL);
        goto out_fail;
    }
    /* The common case (exactly the JSON path or a raw path) shares the configured string. */
    if (!raw && strcmp(req.path, cfg->server.path) != 0)
        c->path = mem__strdup(req.path);
    c->raw = raw;
    if (is_json)
        c->flags |= CONN_F_JSON;

    /* Plugins' per-connection state exists from the AUTH hooks on. */
    n = plugin_loader__state_size();
    if (n)
        c->pstate = mem__calloc(1, n);

    memset(&ev, 0, sizeof(ev));
    ev.conn = c;
    ev.path = req.path;
    ev.query = req.query;
    for (size_t i = 0; i < req.n_headers && i < 100; i++) {
        hdrs[i].name = req.headers[i].name;
        hdrs[i].value = req.headers[i].value;
    }
    ev.headers = hdrs;
    ev.n_headers = req.n_headers < 100 ? req.n_headers : 100;
    ev.remote_addr = remote_fmt(c, remote);
    ev.status = 403;
    g_auth_protocols = ws_request__header(&req, "sec-websocket-protocol");
    c->flags |= CONN_F_AUTH;
    rc = hooks__run_auth(&ev);
    c->flags &= ~CONN_F_AUTH;
    g_auth_protocols = NULL;
    if (c->flags & CONN_F_FREE)
        goto out_fail_ident; /* a hook dropped the connection */
    if (rc < 0) {
        int st = ev.status >= 400 && ev.status <= 599 ? ev.status : 403;
        http_fail(c, st,
                  st == 401   ? "unauthorized"
                  : st == 503 ? "limit"
                              : "forbidden",
                  ev.reason ? ev.reason : ws_handshake__status_text(st), NULL);
        goto out_fail_ident;
    }
    if (!c->tenant)
        c->tenant = tenant_get("public", true);
    if (c->tenant->max_conns && c->tenant->n_conns >= c->tenant->max_conns) {
        http_fail(c, 503, "tenant_limit", "tenant at max_connections", NULL);
        goto out_fail_ident;
    }
    if (c->tenant->n_origins && !origin_allowed(c->tenant->origins, c->tenant->n_origins, origin)) {
        http_fail(c, 403, "origin", "origin not allowed", NULL);
        goto out_fail_ident;
    }
    protos = ws_request__header(&req, "sec-websocket-protocol");
    if (!c->subprotocol && protos && is_json) {
        struct proto_pick pp = {NULL, 0};
        ws_handshake__each_token(protos, pick_wshub_proto, &pp);
        if (pp.chosen)
            c->subprotocol = mem__strndup(pp.chosen, pp.len);
    }
    if (c->subprotocol && strcmp(c->subprotocol, "wshub.v1.batch") == 0)
        c->flags |= CONN_F_BATCH;
    if (cfg->server.permessage_deflate) {
        const char *exts = ws_request__header(&req, "sec-websocket-extensions");
        if (exts && ws_deflate__negotiate(exts, &pmd, ext, sizeof(ext)) == 1)
            c->pmd_window = pmd.server_max_window_bits ? pmd.server_max_window_bits : 15;
    }
    ws_handshake__accept(ws_request__header(&req, "sec-websocket-key"), accept);
    n = ws_handshake__response_101(resp, sizeof(resp), accept, c->subprotocol,
                                   c->pmd_window ? ext : NULL);
    ws_request__free(&req);
    queue_raw(c, resp, n);

    /* Open: counted, findable, parsing frames. */
    c->state = CONN_OPEN;
    c->last_seen_ms = server__now_ms();
    c->ping_ms = 0; /* shares storage with the handshake deadline */
    ws_parser__init(&c->parser, &g_srv.pcfg[is_json][c->pmd_window ? 1 : 0]);
    attach_identity(c);
    idmap__put(&g_srv.by_id, c->id, c);
    c->flags |= CONN_F_COUNTED;
    g_srv.n_open++;
    *g_srv.m.connections = (double)g_srv.n_open;
    (*g_srv.m.accepted)++;
    if (cfg->server.max_connections_per_ip) {
        const char *ip = remote_fmt(c, remote);
        uintptr_t cnt = (uintptr_t)strmap__del(&g_srv.ips, ip);
        strmap__put(&g_srv.ips, ip, (void *)(cnt + 1));
    }
    c->flags |= CONN_F_OPENED;
    {
        wshub_ev_conn_t oev = {c};
        hooks__run_all(WSHUB_EV_CONN_OPEN, &oev);
    }
    if (is_json && conn__is_live(c))
        router__send_welcome(c);
    return conn__is_live(c);

out_fail_ident:
    detach_identity(c);
out_fail:
    ws_request__free(&req);
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* Reading                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static int on_ws_message(void *ud, int opcode, const uint8_t *data, size_t len)
{
    wshub_conn_t *c = ud;

    if (!conn__is_live(c))
        return 1;
    (*g_srv.m.msgs_in)++;
    /* The parser hands out writable memory with a spare byte after the message (see
     * ws_frame.h), so the router can NUL-terminate in place. */
    router__on_message(c, opcode, (uint8_t *)data, len);
    return conn__is_live(c) ? 0 : 1;
}

/* JSON path only (raw paths have no discard limit): answer too_large, keep the connection. */
static int on_ws_oversize(void *ud, int opcode, uint64_t len)
{
    wshub_conn_t *c = ud;

    (void)opcode;
    if (!conn__is_live(c))
        return 1;
    router__on_oversize(c, (size_t)len);
    return conn__is_live(c) ? 0 : 1;
}

static int on_ws_control(void *ud, int opcode, const uint8_t *data, size_t len, uint16_t code)
{
    wshub_conn_t *c = ud;

    switch (opcode) {
    case WS_OP_PING:
        if (c->state == CONN_OPEN && !(c->flags & CONN_F_CLOSE_REQ))
            queue_control(c, WS_OP_PONG, data, len);
        return 0;
    case WS_OP_PONG:
        return 0;
    case WS_OP_CLOSE:
        c->flags |= CONN_F_PEER_CLOSED;
        if (c->state == CONN_OPEN && !(c->flags & CONN_F_CLOSE_REQ)) {
            /* Echo the peer's code (RFC 6455 §5.5.1); an empty close is answered empty. */
            char reason[124];
            size_t rlen = len > 2 ? len - 2 : 0;
            if (rlen >= sizeof(reason))
                rlen = sizeof(reason) - 1;
            memcpy(reason, data + (len > 2 ? 2 : 0), rlen);
            reason[rlen] = '\0';
            conn__close(c, code, reason);
        } else if (c->state == CONN_CLOSING && c->oq_n == 0) {
            schedule_free(c);
        }
        return 1;
    default:
        return 0;
    }
}

static void protocol_error(wshub_conn_t *c, int code)
{
    char label[12];
    const char *labels[1] = {label};
    const char *reason = code == WS_CLOSE_BAD_DATA  ? "invalid UTF-8 or compressed data"
                         : code == WS_CLOSE_TOO_BIG ? "message too big"
                                                    : "protocol error";

    snprintf(label, sizeof(label), "%d", code);
    metrics__add(g_srv.m.protocol_errors, labels, 1);
    log_debug("connection %llu: %s (%d)", (unsigned long long)c->id, reason, code);
    fail(c, (uint16_t)code, reason);
}

/* Feeds bytes to the frame parser of an open connection. */
static void feed(wshub_conn_t *c, uint8_t *data, size_t len)
{
    size_t used = 0;
    int rc;

    if (c->flags & CONN_F_PEER_CLOSED)
        return;
    rc = ws_parser__feed(&c->parser, data, len, &used, &parser_cb, c);
    if (rc < 0)
        protocol_error(c, -rc);
}

/* Accumulates the request head; upgrades when complete. */
static void handshake_input(wshub_conn_t *c, uint8_t *data, size_t len)
{
    size_t max = g_srv.cfg->server.max_header_size;
    long head;

    /* Usual case: the whole request head in one read. Parse it where it is (the shared read
     * buffer, which has a spare byte), without copying it to the heap. */
    if (!c->hs) {
        head = ws_handshake__head_len((const char *)data, len, max);
        if (head > 0) {
            if (upgrade(c, (const char *)data, (size_t)head) && len > (size_t)head)
                feed(c, data + head, len - (size_t)head);
            return;
        }
        if (head < 0) {
            http_fail(c, 431, "header_too_large", "request header too large", NULL);
            return;
        }
    }

    if (c->hs_len + len > max + 4096) {
        /* Far past the limit: no need to keep reading it. */
        len = max + 4096 - c->hs_len;
    }
    c->hs = mem__realloc(c->hs, c->hs_len + len + 1);
    memcpy(c->hs + c->hs_len, data, len);
    c->hs_len += (uint32_t)len;
    c->hs[c->hs_len] = '\0';
    head = ws_handshake__head_len(c->hs, c->hs_len, max);
    if (head == 0)
        return;
    if (head < 0) {
        http_fail(c, 431, "header_too_large", "request header too large", NULL);
        free(c->hs);
        c->hs = NULL;
        return;
    }
    {
        char *hs = c->hs;
        size_t total = c->hs_len;
        c->hs = NULL;
        c->hs_len = 0;
        if (upgrade(c, hs, (size_t)head) && total > (size_t)head)
            feed(c, (uint8_t *)hs + head, total - (size_t)head);
        free(hs);
    }
}

static void on_readable(wshub_conn_t *c)
{
    for (int i = 0; i < READS_PER_EVENT; i++) {
        ssize_t n = read(c->fd, g_srv.rbuf, g_srv.rbuf_cap);
        if (n > 0) {
            *g_srv.m.bytes_in += (double)n;
            c->last_seen_ms = g_srv.now_ms;
            if (c->state == CONN_HANDSHAKE)
                handshake_input(c, g_srv.rbuf, (size_t)n);
            else if (c->state == CONN_OPEN && !(c->flags & CONN_F_CLOSE_REQ))
                feed(c, g_srv.rbuf, (size_t)n);
            else if (c->state == CONN_CLOSING && !(c->flags & CONN_F_PEER_CLOSED) &&
                     !(c->flags & CONN_F_KILL))
                /* Waiting for the peer's close frame: parse, ignoring data messages. */
                feed(c, g_srv.rbuf, (size_t)n);
            if ((size_t)n < g_srv.rbuf_cap || c->flags & (CONN_F_FREE | CONN_F_CLOSE_REQ))
                break;
        } else if (n == 0) {
            lost(c);
            break;
        } else {
            if (errno == EINTR)
                continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK)
                lost(c);
            break;
        }
    }
    server__want_eoi();
}

/* ------------------------------------------------------------------------------------------ */
/* Timers and drain                                                                            */
/* ------------------------------------------------------------------------------------------ */

void conn__tick(uint64_t now)
{
    const config_t *cfg = g_srv.cfg;
    dlist_t *it, *next;

    for (it = g_srv.all.next; it != &g_srv.all; it = next) {
        wshub_conn_t *c = DLIST_ENTRY(it, wshub_conn_t, link_all);
        next = it->next;
        if (c->flags & CONN_F_FREE)
            continue;
        switch (c->state) {
        case CONN_HANDSHAKE:
            if (now >= c->deadline_ms) {
                const char *labels[1] = {"timeout"};
                metrics__add(g_srv.m.handshake_failures, labels, 1);
                schedule_free(c);
            }
            break;
        case CONN_OPEN: {
            /* The wall clock can step backwards: a stamp in the future means "just now", not
             * an unsigned wrap that would time out every connection at once. */
            uint64_t idle = now > c->last_seen_ms ? now - c->last_seen_ms : 0;
            uint64_t since_ping = now > c->ping_ms ? now - c->ping_ms : 0;
            if (c->flags & CONN_F_CLOSE_REQ)
                break;
            if (idle >= cfg->server.connection_timeout_ms) {
                conn__close(c, WS_CLOSE_GOING_AWAY, "timeout");
            } else if (idle >= cfg->server.heartbeat_interval_ms &&
                       since_ping >= cfg->server.heartbeat_interval_ms) {
                c->ping_ms = now;
                queue_control(c, WS_OP_PING, NULL, 0);
            }
            break;
        }
        case CONN_CLOSING:
            if (now >= c->deadline_ms)
                schedule_free(c);
            break;
        }
    }
}

void conn__close_all(uint16_t code, const char *reason)
{
    dlist_t *it, *next;

    for (it = g_srv.all.next; it != &g_srv.all; it = next) {
        wshub_conn_t *c = DLIST_ENTRY(it, wshub_conn_t, link_all);
        next = it->next;
        if (c->state == CONN_HANDSHAKE)
            schedule_free(c);
        else if (c->state == CONN_OPEN)
            conn__close(c, code, reason);
    }
}

void conn__shutdown(void)
{
    dlist_t *it, *next;

    conn__end_of_iteration();
    for (it = g_srv.all.next; it != &g_srv.all; it = next) {
        wshub_conn_t *c = DLIST_ENTRY(it, wshub_conn_t, link_all);
        next = it->next;
        if (!(c->flags & CONN_F_FREE))
            schedule_free(c);
    }
    conn__end_of_iteration();
    idmap__free(&g_srv.by_id);
    strmap__free(&g_srv.ips);
    strmap__free(&g_srv.tenants);
}
