/*
 * admin: the operator's HTTP endpoint on its own listener (libevent evhttp; plain HTTP/1.1 is all
 * Prometheus and load balancers need). /health is 200 while the process runs its loop; /ready is
 * 200 once plugins started and listeners are bound, 503 while starting or draining; /metrics is
 * the Prometheus text exposition of the core's and the plugins' metrics.
 */
#include "admin.h"

#include <stdio.h>
#include <string.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <event2/buffer.h>
#include <event2/http.h>
#include <event2/keyvalq_struct.h>

#include "conn.h"
#include "log.h"
#include "metrics.h"
#include "server.h"

static struct evhttp *g_http;

static void reply_text(struct evhttp_request *req, int code, const char *reason, const char *body)
{
    struct evbuffer *out = evbuffer_new();

    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; charset=utf-8");
    evbuffer_add_printf(out, "%s\n", body);
    evhttp_send_reply(req, code, reason, out);
    evbuffer_free(out);
}

static void on_health(struct evhttp_request *req, void *arg)
{
    (void)arg;
    reply_text(req, 200, "OK", "ok");
}

static void on_ready(struct evhttp_request *req, void *arg)
{
    (void)arg;
    if (g_srv.ready && !g_srv.draining)
        reply_text(req, 200, "OK", "ready");
    else
        reply_text(req, 503, "Service Unavailable", g_srv.draining ? "draining" : "starting");
}

static void on_metrics(struct evhttp_request *req, void *arg)
{
    struct evbuffer *out = evbuffer_new();

    (void)arg;
    server__update_now();
    metrics__render(g_srv.metrics, out);
    evhttp_add_header(evhttp_request_get_output_headers(req), "Content-Type",
                      "text/plain; version=0.0.4; charset=utf-8");
    evhttp_send_reply(req, 200, "OK", out);
    evbuffer_free(out);
}

static void on_other(struct evhttp_request *req, void *arg)
{
    (void)arg;
    reply_text(req, 404, "Not Found", "not found: try /health, /ready or /metrics");
}

int admin__start(char *bound, unsigned long bound_len)
{
    const config_t *cfg = g_srv.cfg;
    struct evhttp_bound_socket *bs;
    struct sockaddr_storage ss;
    ev_socklen_t sl = sizeof(ss);
    char host[64];

    if (!cfg->admin.enabled)
        return 0;
    g_http = evhttp_new(g_srv.base);
    evhttp_set_allowed_methods(g_http, EVHTTP_REQ_GET | EVHTTP_REQ_HEAD);
    evhttp_set_max_headers_size(g_http, 16384);
    evhttp_set_max_body_size(g_http, 0);
    evhttp_set_timeout(g_http, 30);
    evhttp_set_cb(g_http, "/health", on_health, NULL);
    evhttp_set_cb(g_http, "/healthz", on_health, NULL);
    evhttp_set_cb(g_http, "/ready", on_ready, NULL);
    evhttp_set_cb(g_http, "/readyz", on_ready, NULL);
    evhttp_set_cb(g_http, "/metrics", on_metrics, NULL);
    evhttp_set_gencb(g_http, on_other, NULL);
    bs = evhttp_bind_socket_with_handle(g_http, cfg->admin.listen_host, cfg->admin.listen_port);
    if (!bs) {
        log_err("admin: cannot listen on %s:%u", cfg->admin.listen_host, cfg->admin.listen_port);
        evhttp_free(g_http);
        g_http = NULL;
        return -1;
    }
    getsockname(evhttp_bound_socket_get_fd(bs), (struct sockaddr *)&ss, &sl);
    if (ss.ss_family == AF_INET6) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        char a[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &s6->sin6_addr, a, sizeof(a));
        snprintf(host, sizeof(host), "[%s]", a);
        snprintf(bound, bound_len, "%s:%u", host, ntohs(s6->sin6_port));
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &s4->sin_addr, host, sizeof(host));
        snprintf(bound, bound_len, "%s:%u", host, ntohs(s4->sin_port));
    }
    log_info("admin listening on http://%s (/health /ready /metrics)", bound);
    return 0;
}

void admin__stop(void)
{
    if (g_http)
        evhttp_free(g_http);
    g_http = NULL;
}
