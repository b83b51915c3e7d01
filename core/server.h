/*
 * server: the process-wide state of one instance (one process = one libevent loop), the
 * listeners, the start-up and shutdown sequence, signals, the once-a-second tick, and the
 * end-of-iteration event that flushes output and runs deferred closes.
 */
#ifndef WSHUB_SERVER_H
#define WSHUB_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wshub/sdk.h>

#include "config.h"
#include "dlist.h"
#include "idmap.h"
#include "metrics.h"
#include "strmap.h"
#include "ws_deflate.h"
#include "ws_frame.h"

struct event_base;
struct event;
struct evconnlistener;

typedef struct core_metrics {
    double *connections; /* gauge: open connections */
    double *accepted;    /* counter: upgrades completed */
    double *closed;      /* counter: open connections closed */
    double *msgs_in, *msgs_out, *bytes_in, *bytes_out;
    double *slow_consumers;             /* counter: closes for send queue overflow */
    double *sockets;                    /* gauge: sockets held (incl. handshaking, closing) */
    wshub_metric_t *handshake_failures; /* counter{reason} */
    wshub_metric_t *protocol_errors;    /* counter{code} */
    wshub_metric_t *closes;             /* counter{code} */
    wshub_metric_t *plugins;            /* gauge{plugin,version} */
    wshub_metric_t *errors_sent;        /* counter{code} */
    wshub_metric_t *tenant_conns;       /* gauge{tenant}, when metrics.tenant_labels */
} core_metrics_t;

typedef struct server {
    struct event_base *base;
    config_t *cfg;
    ws_deflate_t *deflate;
    uint8_t *rbuf; /* shared read buffer, one per loop */
    size_t rbuf_cap;
    ws_parser_cfg_t pcfg[2][2]; /* [json][pmd] */
    uint64_t next_id;
    idmap_t by_id; /* live (open, not closing) connections by id */
    dlist_t all;   /* every connection holding a socket */
    strmap_t tenants;
    strmap_t ips;  /* remote ip -> count (only with max_connections_per_ip) */
    size_t n_open; /* open connections counted against max_connections */
    size_t n_sockets;
    wshub_conn_t *dirty_head, *dirty_tail, *close_head, *free_head;
    struct event *eoi_ev;   /* end-of-iteration work */
    int epfd;               /* connection sockets' epoll set (see conn.c) */
    struct event *epoll_ev; /* the epoll fd's readiness on the libevent loop */
    bool eoi_pending;
    struct evconnlistener *listener;
    struct event *tick_ev;
    struct event *sig_ev[4];
    struct event *drain_ev;
    bool draining, ready, stopping;
    uint64_t drain_deadline_ms;
    uint64_t now_ms;
    metrics_t *metrics;
    core_metrics_t m;
    const char *port_file;
    char listen_addr[80]; /* "host:port" actually bound */
    int exit_code;
} server_t;

extern server_t g_srv;

/* Cached wall clock (ms since epoch), refreshed each loop iteration and tick. */
uint64_t server__now_ms(void);
/* Refreshes the cached clock now. */
uint64_t server__update_now(void);
/* Arms the end-of-iteration event (idempotent). */
void server__want_eoi(void);

/* Initialises g_srv for `cfg` (borrowed, must outlive the core): event base, core metrics, read
 * buffer, deflate state, parser configurations, connection table, end-of-iteration event and
 * the post queue; no listeners, admin, signals or plugins. Returns 0, or -1 (logged). */
int server__init_core(config_t *cfg);
/* Frees what server__init_core made; call after conn__shutdown, router__clear, hooks__clear. */
void server__fini_core(void);

/* Runs the server from a loaded config until shutdown; returns the exit code. */
int server__run(config_t *cfg, const char *port_file);

/* Starts a graceful drain (as on SIGTERM). */
void server__begin_shutdown(const char *why);

#endif
