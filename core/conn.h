/*
 * conn: one WebSocket connection: socket I/O through the core's epoll set nested in the libevent
 * loop (an idle connection owns its struct, its parser state and nothing else on the heap), the
 * upgrade, frame handling, the outbound queue (frames queued by reference, flushed once per loop
 * iteration with writev), heartbeats, deferred close/free; and the connection table (by id, by
 * tenant, by (tenant, user)).
 */
#ifndef WSHUB_CONN_H
#define WSHUB_CONN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wshub/sdk.h>

struct sockaddr;

#include "dlist.h"
#include "strmap.h"
#include "ws_frame.h"

struct route_path;
struct group_member;

enum conn_state {
    CONN_HANDSHAKE = 0, /* reading the request head */
    CONN_OPEN = 1,      /* upgraded */
    CONN_CLOSING = 2,   /* close decided: hooks done, draining our close frame, awaiting EOF */
};

enum conn_flag {
    CONN_F_DIRTY = 1u << 0,       /* on the flush list */
    CONN_F_CLOSE_REQ = 1u << 1,   /* on the close list (conn_close called, not yet processed) */
    CONN_F_AUTH = 1u << 2,        /* inside the AUTH hooks: identity may be set */
    CONN_F_JSON = 1u << 3,        /* on the JSON protocol path */
    CONN_F_COUNTED = 1u << 4,     /* counted in tenant/ip/open gauges */
    CONN_F_CLOSE_SENT = 1u << 5,  /* our close frame is queued */
    CONN_F_PEER_CLOSED = 1u << 6, /* the peer's close frame was received */
    CONN_F_WANT_WRITE = 1u << 7,  /* write event armed */
    CONN_F_KILL = 1u << 8,        /* close the socket after the queue drains (no EOF wait) */
    CONN_F_OPENED = 1u << 9,      /* CONN_OPEN hooks ran: CONN_CLOSE hooks are due */
    CONN_F_FREE = 1u << 10,       /* on the free list */
    CONN_F_BATCH = 1u << 11,      /* negotiated "wshub.v1.batch": events may share a frame */
    CONN_F_NOREAD = 1u << 12,     /* the socket is dead: out of the epoll set, nothing to read */
};

typedef struct tenant {
    char *name;
    uint32_t n_conns;
    uint32_t max_conns; /* 0 = unlimited */
    dlist_t conns;      /* open connections of the tenant */
    strmap_t users;     /* user id -> struct user */
    char **origins;     /* per-tenant allow-list (borrowed from config), or NULL */
    size_t n_origins;
} tenant_t;

typedef struct user {
    char *name;
    tenant_t *tenant;
    dlist_t conns;
    uint32_t n_conns;
} user_t;

typedef struct out_item {
    wshub_buf_t *b;
    uint32_t off; /* bytes of the frame already written */
} out_item_t;

/* Field order packs the struct without holes (368 bytes): it is the per-connection cost. */
struct wshub_conn {
    uint64_t id;
    int fd;
    uint8_t state;
    uint8_t pmd_window; /* 0: no permessage-deflate; else server_max_window_bits */
    uint16_t flags;
    uint16_t close_code; /* code reported to CONN_CLOSE hooks */
    uint16_t n_memberships, cap_memberships;
    uint16_t n_roles;
    uint32_t oq_head, oq_n, oq_cap;
    uint32_t hs_len; /* bytes in hs */
    size_t oq_bytes;
    ws_parser_t parser;
    out_item_t *oq;
    union {
        char *hs;           /* CONN_HANDSHAKE: request head being read, when split */
        char *close_reason; /* after: reason for CONN_CLOSE hooks and the close frame */
    };
    tenant_t *tenant;
    user_t *user;
    char **roles;
    char *metadata; /* NULL = "{}" */
    char *subprotocol;
    char *path;                   /* request path; NULL when server.path or raw->path exactly */
    char *remote;                 /* textual address, made on first request */
    const struct route_path *raw; /* raw path handler, NULL on JSON paths */
    void *pstate;                 /* plugins' per-connection state block */
    struct group_member *memberships;
    dlist_t link_all, link_tenant, link_user;
    struct wshub_conn *next_dirty, *next_close;
    uint64_t created_ms, last_seen_ms;
    union {
        uint64_t deadline_ms; /* CONN_HANDSHAKE, CONN_CLOSING: when to give up */
        uint64_t ping_ms;     /* CONN_OPEN: when the last heartbeat ping went out */
    };
    uint8_t addr[16];
    uint8_t addr_family;
};

/* Accepts a new socket (non-blocking). Refuses (closes) when the process is draining. */
void conn__accept(int fd, const struct sockaddr *sa, int salen);

/* Queues a frame by reference (pmd variant chosen here). Returns WSHUB_OK, WSHUB_ERR_STATE,
 * WSHUB_ERR_LIMIT (slow consumer: close started). */
int conn__send(wshub_conn_t *c, wshub_buf_t *b);
/* Copies and queues a text/binary message. */
int conn__send_data(wshub_conn_t *c, uint8_t opcode, const void *data, size_t len);

/* Deferred close (the conn_close slot): hooks and teardown run at the end of the iteration. */
void conn__close(wshub_conn_t *c, uint16_t code, const char *reason);

/* True while the connection can be used by plugins (open, not closing). */
bool conn__is_live(const wshub_conn_t *c);

/* Runs the end-of-iteration work: close requests, flushes, frees. */
void conn__end_of_iteration(void);

/* Once a second: handshake deadlines, heartbeats, idle timeouts, closing timeouts. */
void conn__tick(uint64_t now_ms);

/* Begins closing every connection with 1001 (drain). */
void conn__close_all(uint16_t code, const char *reason);

/* Lookups (tenant scope is enforced by the caller, plugin_host). */
wshub_conn_t *conn__by_id(uint64_t id);
tenant_t *conn__tenant(const char *name);
/* Finds or creates a tenant (created with its configured limits). */
tenant_t *conn__tenant_get(const char *name);
/* Frees a tenant that has no connections left. */
void conn__tenant_release(tenant_t *t);
const char *conn__remote(wshub_conn_t *c);
/* During the AUTH hooks: whether the client offered `protocol` in Sec-WebSocket-Protocol. */
bool conn__protocol_offered(const wshub_conn_t *c, const char *protocol);
/* Number of connections in any state (sockets held). */
size_t conn__n_sockets(void);

void conn__init(void);
void conn__shutdown(void); /* frees every connection immediately (exit path) */

#endif
