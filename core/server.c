/*
 * server: see server.h.
 *
 * Start-up: metrics -> plugins loaded and initialised (registration) -> listener bound -> admin
 * bound -> port file -> plugins started -> ready. Shutdown (SIGTERM/SIGINT): not ready, stop
 * accepting, close every connection 1001 with a reconnect hint, stop plugins (reverse order; they
 * may finish asynchronously), then exit when every socket is gone and every plugin stopped, or
 * at shutdown_timeout. A second signal exits at once.
 */
#include "server.h"

#include <errno.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "admin.h"
#include "buf.h"
#include "conn.h"
#include "hooks.h"
#include "log.h"
#include "mem.h"
#include "plugin_loader.h"
#include "router.h"
#include "timer.h"
#include "wshub_build.h"

#define READ_BUF_SIZE        (64 * 1024)
#define MAX_RETAINED_CONFIGS 64

server_t g_srv;
static config_t *g_retained[MAX_RETAINED_CONFIGS]; /* configs replaced by SIGHUP */
static size_t g_n_retained;

uint64_t server__update_now(void)
{
    struct timeval tv;

    gettimeofday(&tv, NULL);
    g_srv.now_ms = (uint64_t)tv.tv_sec * 1000 + (uint64_t)tv.tv_usec / 1000;
    return g_srv.now_ms;
}

uint64_t server__now_ms(void)
{
    return g_srv.now_ms ? g_srv.now_ms : server__update_now();
}

static void on_eoi(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    g_srv.eoi_pending = false;
    conn__end_of_iteration();
}

/*
 * The end-of-iteration event is activated (not scheduled): libevent runs it after the callbacks
 * already active in this iteration, at the same priority, so every message produced while
 * handling this batch of readiness events is flushed with one writev per connection.
 */
void server__want_eoi(void)
{
    if (g_srv.eoi_pending || !g_srv.eoi_ev)
        return;
    g_srv.eoi_pending = true;
    event_active(g_srv.eoi_ev, EV_TIMEOUT, 0);
}

static void register_core_metrics(void)
{
    static const char *const reason_l[] = {"reason"};
    static const char *const code_l[] = {"code"};
    static const char *const plugin_l[] = {"plugin", "version"};
    metrics_t *r = g_srv.metrics;
#define SIMPLE(field, kind, name, help)                                                            \
    do {                                                                                           \
        wshub_metric_def_t d = {kind, name, help, NULL, 0, NULL, 0};                               \
        g_srv.m.field = metrics__value_ptr(metrics__new_family(r, &d, NULL));                      \
    } while (0)
#define LABELED(field, name, help, labels, n)                                                      \
    do {                                                                                           \
        wshub_metric_def_t d = {WSHUB_METRIC_COUNTER, name, help, labels, n, NULL, 0};             \
        g_srv.m.field = metrics__new_family(r, &d, NULL);                                          \
    } while (0)

    SIMPLE(connections, WSHUB_METRIC_GAUGE, "wshub_connections", "Open WebSocket connections.");
    SIMPLE(sockets, WSHUB_METRIC_GAUGE, "wshub_sockets",
           "Sockets held, including handshaking and closing connections.");
    SIMPLE(accepted, WSHUB_METRIC_COUNTER, "wshub_connections_accepted_total",
           "WebSocket upgrades completed.");
    SIMPLE(closed, WSHUB_METRIC_COUNTER, "wshub_connections_closed_total",
           "Open connections closed.");
    SIMPLE(msgs_in, WSHUB_METRIC_COUNTER, "wshub_messages_in_total", "Messages received.");
    SIMPLE(msgs_out, WSHUB_METRIC_COUNTER, "wshub_messages_out_total",
           "Messages queued to connections (one per recipient).");
    SIMPLE(bytes_in, WSHUB_METRIC_COUNTER, "wshub_bytes_in_total", "Bytes read from sockets.");
    SIMPLE(bytes_out, WSHUB_METRIC_COUNTER, "wshub_bytes_out_total", "Bytes written to sockets.");
    SIMPLE(slow_consumers, WSHUB_METRIC_COUNTER, "wshub_slow_consumer_closes_total",
           "Connections closed because their send queue exceeded send_queue_max_bytes.");
    LABELED(handshake_failures, "wshub_handshake_failures_total",
            "Upgrade requests refused, by reason.", reason_l, 1);
    LABELED(protocol_errors, "wshub_protocol_errors_total",
            "Connections failed for a WebSocket protocol violation, by close code.", code_l, 1);
    LABELED(closes, "wshub_closes_total", "Connections closed, by close code.", code_l, 1);
    LABELED(errors_sent, "wshub_errors_sent_total", "Error replies sent, by error code.", code_l,
            1);
    if (g_srv.cfg->metrics.tenant_labels) {
        static const char *const tenant_l[] = {"tenant"};
        wshub_metric_def_t d = {WSHUB_METRIC_GAUGE,
                                "wshub_tenant_connections",
                                "Open connections per tenant (metrics.tenant_labels).",
                                tenant_l,
                                1,
                                NULL,
                                0};
        g_srv.m.tenant_conns = metrics__new_family(r, &d, NULL);
    }
    {
        wshub_metric_def_t d = {WSHUB_METRIC_GAUGE,
                                "wshub_plugin_info",
                                "Loaded plugins (value 1).",
                                plugin_l,
                                2,
                                NULL,
                                0};
        g_srv.m.plugins = metrics__new_family(r, &d, NULL);
    }
#undef SIMPLE
#undef LABELED
}

static void on_accept(struct evconnlistener *l, evutil_socket_t fd, struct sockaddr *sa, int salen,
                      void *arg)
{
    (void)l;
    (void)arg;
    server__update_now();
    conn__accept(fd, sa, salen);
    server__want_eoi();
}

static void reenable_listener(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    if (g_srv.listener && !g_srv.draining)
        evconnlistener_enable(arg);
}

/* Too many open files and friends: stop accepting for a moment instead of spinning. */
static void on_accept_error_safe(struct evconnlistener *l, void *arg)
{
    int err = EVUTIL_SOCKET_ERROR();
    struct timeval tv = {0, 100000};

    (void)arg;
    log_warn("accept: %s", evutil_socket_error_to_string(err));
    if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM) {
        evconnlistener_disable(l);
        event_base_once(g_srv.base, -1, EV_TIMEOUT, reenable_listener, l, &tv);
    }
}

static int bind_listener(void)
{
    const config_t *cfg = g_srv.cfg;
    struct addrinfo hints, *res = NULL;
    char port[8];
    unsigned flags = LEV_OPT_REUSEABLE | LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof(ss);
    int rc;

    memset(&hints, 0, sizeof(hints));
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    snprintf(port, sizeof(port), "%u", cfg->server.listen_port);
    rc = getaddrinfo(cfg->server.listen_host, port, &hints, &res);
    if (rc != 0) {
        log_err("server.listen %s:%u: %s", cfg->server.listen_host, cfg->server.listen_port,
                gai_strerror(rc));
        return -1;
    }
    if (cfg->server.reuse_port)
        flags |= LEV_OPT_REUSEABLE_PORT;
    g_srv.listener =
        evconnlistener_new_bind(g_srv.base, on_accept, NULL, flags, cfg->server.backlog,
                                res->ai_addr, (int)res->ai_addrlen);
    freeaddrinfo(res);
    if (!g_srv.listener) {
        log_err("cannot listen on %s:%u: %s", cfg->server.listen_host, cfg->server.listen_port,
                strerror(errno));
        return -1;
    }
    evconnlistener_set_error_cb(g_srv.listener, on_accept_error_safe);
    getsockname(evconnlistener_get_fd(g_srv.listener), (struct sockaddr *)&ss, &sl);
    if (ss.ss_family == AF_INET6) {
        char a[INET6_ADDRSTRLEN];
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
        snprintf(g_srv.listen_addr, sizeof(g_srv.listen_addr), "[%s]:%u", a, ntohs(s6->sin6_port));
    } else {
        char a[INET_ADDRSTRLEN];
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, a, sizeof(a));
        snprintf(g_srv.listen_addr, sizeof(g_srv.listen_addr), "%s:%u", a, ntohs(s4->sin_port));
    }
    log_notice("listening on ws://%s%s", g_srv.listen_addr, cfg->server.path);
    return 0;
}

/* The port file is written whole (temp + rename) so a reader never sees half of it. */
static int write_port_file(const char *path, const char *admin_addr)
{
    char tmp[4096];
    FILE *f;

    snprintf(tmp, sizeof(tmp), "%s.tmp.%d", path, (int)getpid());
    f = fopen(tmp, "w");
    if (!f) {
        log_err("--port-file %s: %s", path, strerror(errno));
        return -1;
    }
    fprintf(f, "server %s\n", g_srv.listen_addr);
    if (admin_addr[0])
        fprintf(f, "admin %s\n", admin_addr);
    if (fclose(f) != 0 || rename(tmp, path) != 0) {
        log_err("--port-file %s: %s", path, strerror(errno));
        unlink(tmp);
        return -1;
    }
    return 0;
}

static void check_drained(void)
{
    if (!g_srv.draining)
        return;
    if (g_srv.n_sockets == 0 && plugin_loader__all_stopped()) {
        log_notice("drained: exiting");
        event_base_loopexit(g_srv.base, NULL);
        return;
    }
    if (server__now_ms() >= g_srv.drain_deadline_ms) {
        log_warn("shutdown_timeout reached with %zu sockets open%s: exiting", g_srv.n_sockets,
                 plugin_loader__all_stopped() ? "" : " and plugins still stopping");
        event_base_loopexit(g_srv.base, NULL);
    }
}

static void on_drain_timer(evutil_socket_t fd, short what, void *arg)
{
    (void)fd;
    (void)what;
    (void)arg;
    server__update_now();
    conn__tick(g_srv.now_ms);
    server__want_eoi();
    check_drained();
}

void server__begin_shutdown(const char *why)
{
    struct timeval tv = {0, 50000};

    if (g_srv.draining)
        return;
    log_notice("shutting down (%s): draining %zu connections, up to %llu ms", why, g_srv.n_open,
               (unsigned long long)g_srv.cfg->server.shutdown_timeout_ms);
    g_srv.draining = true;
    g_srv.ready = false;
    server__update_now();
    g_srv.drain_deadline_ms = g_srv.now_ms + g_srv.cfg->server.shutdown_timeout_ms;
    if (g_srv.listener) {
        evconnlistener_free(g_srv.listener);
        g_srv.listener = NULL;
    }
    conn__close_all(WS_CLOSE_GOING_AWAY, "server shutting down; reconnect");
    conn__end_of_iteration();
    plugin_loader__stop_all();
    g_srv.drain_ev = event_new(g_srv.base, -1, EV_PERSIST, on_drain_timer, NULL);
    event_add(g_srv.drain_ev, &tv);
    check_drained();
}

static void reload(void)
{
    config_t *nc;
    char err[1024];
    extern char **environ;

    if (!g_srv.cfg->file || strcmp(g_srv.cfg->file, "<embedded>") == 0) {
        log_warn("SIGHUP: running on the embedded config; nothing to reload");
        return;
    }
    if (g_n_retained == MAX_RETAINED_CONFIGS) {
        log_err("SIGHUP: too many reloads in this process; restart to reload again");
        return;
    }
    nc = mem__calloc(1, sizeof(*nc));
    if (config__load_file(nc, g_srv.cfg->file, environ, err, sizeof(err)) != 0) {
        log_err("SIGHUP: %s (keeping the running configuration)", err);
        config__free(nc);
        free(nc);
        return;
    }
    log_notice("SIGHUP: reloading %s", nc->file);
    log__set_level(nc->log.level);
    plugin_loader__reload_all(nc);
    /* Core settings other than log.level need a restart; plugins that did not reload keep
     * pointers into the old tree, so it is retained. */
    g_retained[g_n_retained++] = nc;
}

static void on_signal(evutil_socket_t sig, short what, void *arg)
{
    (void)what;
    (void)arg;
    server__update_now();
    if (sig == SIGHUP) {
        reload();
        return;
    }
    if (g_srv.draining) {
        log_warn("second signal: exiting now");
        event_base_loopexit(g_srv.base, NULL);
        return;
    }
    server__begin_shutdown(sig == SIGINT ? "SIGINT" : "SIGTERM");
}

/*
 * The connection scan (heartbeats, timeouts) runs at a quarter of the shortest configured
 * interval, between 10 ms and 1 s, so short test settings behave; plugins' TICK hooks run once
 * per second whatever the scan rate.
 */
static uint64_t tick_interval_ms(const config_t *cfg)
{
    uint64_t m = cfg->server.heartbeat_interval_ms;

    if (cfg->server.connection_timeout_ms < m)
        m = cfg->server.connection_timeout_ms;
    if (cfg->server.handshake_timeout_ms < m)
        m = cfg->server.handshake_timeout_ms;
    m /= 4;
    return m < 10 ? 10 : m > 1000 ? 1000 : m;
}

static void on_tick(evutil_socket_t fd, short what, void *arg)
{
    static uint64_t last_plugin_tick;
    wshub_ev_tick_t ev;

    (void)fd;
    (void)what;
    (void)arg;
    ev.now_ms = server__update_now();
    conn__tick(ev.now_ms);
    if (ev.now_ms - last_plugin_tick >= 1000) {
        last_plugin_tick = ev.now_ms;
        if (hooks__any(WSHUB_EV_TICK))
            hooks__run_all(WSHUB_EV_TICK, &ev);
    }
    server__want_eoi();
}

static void init_parser_cfgs(void)
{
    for (int json = 0; json < 2; json++) {
        for (int pmd = 0; pmd < 2; pmd++) {
            ws_parser_cfg_t *p = &g_srv.pcfg[json][pmd];
            p->max_message_size = g_srv.cfg->server.max_message_size;
            p->require_mask = true;
            p->pmd = pmd != 0;
            p->inflater = g_srv.deflate;
            /* The JSON path answers an oversize message with `too_large` and keeps the
             * connection, up to 16 times the limit; raw paths close with 1009. */
            p->discard_limit = json ? (uint64_t)p->max_message_size * 16 : 0;
        }
    }
}

/*
 * The loop-independent core: everything a connection needs (base, metrics, read buffer, deflate
 * state, parser configurations, connection table, end-of-iteration event, post queue), without
 * listeners, admin, signals or plugins. server__run builds on it; unit tests use it alone to
 * drive connections over socketpairs.
 */
int server__init_core(config_t *cfg)
{
    memset(&g_srv, 0, sizeof(g_srv));
    g_srv.cfg = cfg;
    g_srv.base = event_base_new();
    if (!g_srv.base) {
        log_err("event_base_new failed");
        return -1;
    }
    server__update_now();
    g_srv.metrics = metrics__new();
    register_core_metrics();
    g_srv.rbuf_cap = READ_BUF_SIZE;
    g_srv.rbuf = mem__alloc(READ_BUF_SIZE + 1); /* +1: the router NUL-terminates in place */
    g_srv.deflate = ws_deflate__new(1);
    init_parser_cfgs();
    conn__init();
    g_srv.eoi_ev = event_new(g_srv.base, -1, 0, on_eoi, NULL);
    timer__init_post();
    return 0;
}

/* Frees what server__init_core made. Connections, routes and hooks must be gone already. */
void server__fini_core(void)
{
    /* The epoll fd may be 0 when stdin is closed (CI): its event tells that it exists. */
    if (g_srv.epoll_ev) {
        event_free(g_srv.epoll_ev);
        close(g_srv.epfd);
    }
    g_srv.epoll_ev = NULL;
    g_srv.epfd = -1;
    if (g_srv.eoi_ev)
        event_free(g_srv.eoi_ev);
    g_srv.eoi_ev = NULL;
    timer__close_post();
    ws_deflate__free(g_srv.deflate);
    g_srv.deflate = NULL;
    metrics__free(g_srv.metrics);
    g_srv.metrics = NULL;
    free(g_srv.rbuf);
    g_srv.rbuf = NULL;
    if (g_srv.base)
        event_base_free(g_srv.base);
    g_srv.base = NULL;
}

int server__run(config_t *cfg, const char *port_file)
{
    char admin_addr[80] = "";
    int rc = 1;
    int sigs[4] = {SIGTERM, SIGINT, SIGHUP, 0};

    if (server__init_core(cfg) != 0)
        return 1;
    g_srv.port_file = port_file;
    log_info("wshub %s (SDK ABI %d.%d), libevent %s, backend %s", WSHUB_VERSION,
             WSHUB_SDK_ABI_MAJOR, WSHUB_SDK_ABI_MINOR, event_get_version(),
             event_base_get_method(g_srv.base));

    rc = plugin_loader__load_all(cfg);
    if (rc)
        goto out;
    rc = 1;
    if (bind_listener() != 0)
        goto out_plugins;
    if (admin__start(admin_addr, sizeof(admin_addr)) != 0)
        goto out_plugins;
    if (port_file && write_port_file(port_file, admin_addr) != 0)
        goto out_plugins;
    for (int i = 0; sigs[i]; i++) {
        g_srv.sig_ev[i] = evsignal_new(g_srv.base, sigs[i], on_signal, NULL);
        event_add(g_srv.sig_ev[i], NULL);
    }
    {
        uint64_t ms = tick_interval_ms(cfg);
        struct timeval tick = {(time_t)(ms / 1000), (suseconds_t)((ms % 1000) * 1000)};
        g_srv.tick_ev = event_new(g_srv.base, -1, EV_PERSIST, on_tick, NULL);
        event_add(g_srv.tick_ev, &tick);
    }
    if (plugin_loader__start_all() != 0) {
        rc = 1;
        goto out_plugins;
    }
    g_srv.ready = true;
    log_notice("ready: %zu plugins, max_connections %u", plugin_loader__count(),
               cfg->server.max_connections);
    event_base_dispatch(g_srv.base);
    rc = 0;

out_plugins:
    if (!g_srv.draining)
        plugin_loader__stop_all();
    conn__shutdown();
    timer__close_post();
    plugin_loader__fini_all();
out:
    router__clear();
    hooks__clear();
    admin__stop();
    if (g_srv.listener)
        evconnlistener_free(g_srv.listener);
    for (int i = 0; i < 4; i++)
        if (g_srv.sig_ev[i])
            event_free(g_srv.sig_ev[i]);
    if (g_srv.tick_ev)
        event_free(g_srv.tick_ev);
    if (g_srv.drain_ev)
        event_free(g_srv.drain_ev);
    server__fini_core();
    for (size_t i = 0; i < g_n_retained; i++) {
        config__free(g_retained[i]);
        free(g_retained[i]);
    }
    g_n_retained = 0;
    if (port_file && rc == 0)
        unlink(port_file);
    return rc;
}
