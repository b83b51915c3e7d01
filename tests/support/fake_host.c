/*
 * fake_host: a recording wshub_host_api_t for unit tests of plugins (see fake_host.h).
 *
 * The fake behaves like the real host wherever a plugin can observe it: the same registration
 * rules (only during init, one owner per type, core types and the JSON path reserved), the same
 * hook chain semantics as core/hooks.c, the same envelope parsing and the same reply texts as
 * core/router.c (welcome, ack, error, pong, bad_json, unknown_type, unsupported), the same
 * tenant scoping as the real plugin_host (NULL tenant only with WSHUB_PLUGIN_SYSTEM_SCOPE, a
 * connection of another tenant is never returned, a group never takes a connection of another
 * tenant), and the real config module for options, defaults and accessors.
 *
 * What differs, on purpose:
 * - there is no socket and no loop iteration: messages sent to a connection are recorded in its
 *   outbox as strings, conn_close() only marks the connection, and CONN_CLOSE runs when the test
 *   calls fake_host__conn_drop();
 * - time is a fake clock that only fake_host__advance() moves; timers and posted callbacks run
 *   there, in due order, with now_ms() reading each timer's due time while it runs;
 * - a dropped connection's fake_conn_t stays allocated (for inspection) until unload;
 * - the fake keeps one plugin. Buffers still referenced at unload are a plugin leak and are
 *   logged at ERR ("fake_host: N buffer(s) leaked"); the log survives unload so a test can
 *   assert on it.
 *
 * Everything runs on the test's thread, except post() and log(), which lock (any thread).
 */
#include "fake_host.h"

#include <assert.h>
#include <ctype.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <json-c/json.h>

#include "config.h"
#include "mem.h"
#include "plugin_host.h"
#include "router.h"
#include "strbuf.h"
#include "ws_handshake.h"
#include "ws_frame.h"

#define FAKE_JSON_PATH        "/ws"  /* server.path default: the JSON protocol path */
#define FAKE_HEARTBEAT_MS     25000u /* server.heartbeat_interval default, shown in the welcome */
#define FAKE_EPOCH_MS         1700000000000ull
#define FAKE_MAX_TYPE_LEN     64  /* core/router.c MAX_TYPE_LEN */
#define FAKE_MAX_ID_LEN       128 /* core/router.c MAX_ID_LEN */
#define FAKE_MAX_PATH_LEN     255
#define FAKE_MAX_ROLES_API    64  /* the SDK's limit for conn_set_identity */
#define FAKE_MAX_IDENT_LEN    256 /* core/plugin_host.c MAX_IDENT_LEN */
#define FAKE_MAX_METADATA_LEN 16384
#define FAKE_MAX_LABELS       8
#define FAKE_N_EVENTS         7      /* highest wshub_event_t + 1 */
#define FAKE_STOP_BUDGET_MS   10000u /* server.shutdown_timeout default */

enum fake_phase {
    PH_NONE = 0, /* nothing loaded */
    PH_INIT,     /* inside init(): registration allowed */
    PH_READY,    /* init succeeded */
    PH_STARTED,  /* start() succeeded */
    PH_STOPPING, /* inside stop() or waiting for stopped() */
    PH_FINI,     /* fini() called or being called: posts refused */
};

struct wshub_plugin {
    wshub_plugin_desc_t desc; /* zero-extended copy, as the real loader makes */
    void *state;
    int phase;
    bool stopped_called;
};

struct wshub_conn {
    fake_conn_t pub; /* what the test sees */
    bool dropped;    /* CONN_CLOSE ran: the id no longer resolves */
    uint64_t last_seen_ms;
    const wshub_header_t *headers; /* during the AUTH chain only (subprotocol offers) */
    size_t n_headers;
};

struct wshub_buf {
    unsigned refs;
    bool is_binary;
    size_t len;
    struct wshub_buf *prev, *next; /* live list, for the leak check */
    char data[];                   /* len bytes + NUL */
};

struct wshub_group {
    char *tenant; /* NULL: cross-tenant (system scope) */
    struct wshub_conn **members;
    size_t n, cap;
    struct wshub_group *prev, *next;
};

struct wshub_timer {
    uint64_t due_ms, interval_ms;
    bool repeat;
    bool running, deleted;
    uint64_t seq; /* creation order: ties of due time fire in creation order */
    wshub_timer_cb cb;
    void *ud;
    struct wshub_timer *prev, *next;
};

typedef struct series {
    char **labels;
    double value;   /* counter/gauge value */
    uint64_t count; /* histogram observations */
    double sum;
} series_t;

struct wshub_metric {
    wshub_metric_kind_t kind;
    char *name;
    size_t n_labels;
    series_t *series;
    size_t n_series;
};

typedef struct hook {
    int prio;
    wshub_hook_cb cb;
    void *ud;
} hook_t;

typedef struct route {
    char *key;
    wshub_msg_cb cb;
    void *ud;
} route_t;

typedef struct service {
    char *name;
    uint32_t version;
    const void *vtable;
} service_t;

typedef struct post_item {
    void (*cb)(void *ud);
    void *ud;
    struct post_item *next;
} post_item_t;

/* Everything the fake holds. Logs and last_error survive unload; the rest is per load. */
static struct {
    struct wshub_plugin plugin;
    struct wshub_cfg *cfg;
    uint64_t now_ms;
    uint64_t next_conn_id;
    uint64_t timer_seq;

    struct wshub_conn **conns;
    size_t n_conns;

    struct {
        hook_t *v;
        size_t n;
    } hooks[FAKE_N_EVENTS];

    route_t *routes;
    size_t n_routes;
    route_t *paths;
    size_t n_paths;
    service_t *services;
    size_t n_services;
    wshub_metric_t **metrics;
    size_t n_metrics;

    struct wshub_buf *bufs;
    size_t n_bufs;
    struct wshub_group *groups;
    struct wshub_timer *timers;

    strbuf_t *welcome; /* the welcome being built, during the WELCOME hooks */
    struct event_base *base;

    pthread_mutex_t lock; /* logs, last_error, post queue */
    post_item_t *post_head, *post_tail;
    bool post_open;
    char **logs;
    size_t n_logs, cap_logs;
    char last_error[512];
} F = {.lock = PTHREAD_MUTEX_INITIALIZER, .next_conn_id = 1};

static void h_conn_close(wshub_conn_t *c, uint16_t code, const char *reason);

/* ------------------------------------------------------------------------------------------ */
/* Helpers                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static struct wshub_conn *conn_of(fake_conn_t *c)
{
    return (struct wshub_conn *)(void *)c; /* pub is the first member */
}

static const char *level_name(int level)
{
    switch (level) {
    case WSHUB_LOG_ERR:
        return "ERR";
    case WSHUB_LOG_WARN:
        return "WARN";
    case WSHUB_LOG_NOTICE:
        return "NOTICE";
    case WSHUB_LOG_INFO:
        return "INFO";
    default:
        return level < WSHUB_LOG_ERR ? "ERR" : "DEBUG";
    }
}

/* Formats into a new heap string (vasprintf without its failure mode). */
static char *vformat(const char *fmt, va_list ap)
{
    strbuf_t b;
    char *s;

    strbuf__init(&b);
    strbuf__vprintf(&b, fmt ? fmt : "", ap);
    s = mem__strndup(b.s, b.len);
    strbuf__free(&b);
    return s;
}

/* Records one log line "LEVEL message"; any thread. WSHUB_FAKE_HOST_LOG=1 echoes to stderr. */
static void record_log(int level, const char *msg)
{
    strbuf_t b;

    strbuf__init(&b);
    strbuf__printf(&b, "%s %s", level_name(level), msg);
    pthread_mutex_lock(&F.lock);
    if (F.n_logs == F.cap_logs) {
        F.cap_logs = F.cap_logs ? F.cap_logs * 2 : 64;
        F.logs = mem__realloc(F.logs, F.cap_logs * sizeof(char *));
    }
    F.logs[F.n_logs++] = mem__strndup(b.s, b.len);
    pthread_mutex_unlock(&F.lock);
    if (getenv("WSHUB_FAKE_HOST_LOG"))
        fprintf(stderr, "fake_host: %s\n", b.s);
    strbuf__free(&b);
}

static void fake_log(int level, const char *fmt, ...) WSHUB_PRINTF(2, 3);

/* The fake's own lines (loader refusals, misuse, leaks), in the same log as the plugin's. */
static void fake_log(int level, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = vformat(fmt, ap);
    va_end(ap);
    record_log(level, msg);
    free(msg);
}

static void set_last_error(const char *msg)
{
    pthread_mutex_lock(&F.lock);
    snprintf(F.last_error, sizeof(F.last_error), "%s", msg);
    pthread_mutex_unlock(&F.lock);
}

static bool is_self(const wshub_plugin_t *self)
{
    return self == &F.plugin && F.plugin.phase != PH_NONE;
}

static bool has_system_scope(void)
{
    return (F.plugin.desc.flags & WSHUB_PLUGIN_SYSTEM_SCOPE) != 0;
}

/*
 * Registration is allowed only inside init(); anything else is WSHUB_ERR_STATE, logged at ERR
 * with the real host's text ("plugin NAME: hook_add called outside init (WSHUB_ERR_STATE)").
 */
static int registration_check(const wshub_plugin_t *self, const char *what)
{
    if (self != &F.plugin)
        return WSHUB_ERR_INVAL;
    if (F.plugin.phase == PH_INIT)
        return WSHUB_OK;
    fake_log(WSHUB_LOG_ERR, "plugin %s: %s called outside init (WSHUB_ERR_STATE)",
             F.plugin.desc.name ? F.plugin.desc.name : "?", what);
    return WSHUB_ERR_STATE;
}

static bool listed(const char *const *list, const char *name)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strcmp(list[i], name) == 0)
            return true;
    return false;
}

/* A live connection: known, not dropped, not closing. */
static bool conn_live(const struct wshub_conn *c)
{
    return c && !c->dropped && !c->pub.closed;
}

/*
 * Parses a complete JSON text (trailing whitespace allowed); NULL when it is not JSON. json-c
 * cannot know that a top-level number or literal ("2", "true") has ended until it sees another
 * byte: with `finish` the fake feeds it a NUL, so such values parse. Envelopes are parsed
 * without it, exactly like core/router.c (which reports a bare `2` as "not valid JSON").
 */
static struct json_object *parse_json(const char *s, size_t len, bool finish)
{
    struct json_tokener *tok;
    struct json_object *o;
    size_t end;

    if (!s || len > (size_t)INT32_MAX - 1)
        return NULL;
    tok = json_tokener_new_ex(64);
    if (!tok)
        return NULL;
    o = json_tokener_parse_ex(tok, s, (int)len);
    end = json_tokener_get_parse_end(tok);
    if (!o && finish && json_tokener_get_error(tok) == json_tokener_continue) {
        o = json_tokener_parse_ex(tok, "", 1);
        end = len; /* the first call consumed everything */
    }
    if (o && json_tokener_get_error(tok) != json_tokener_success) {
        json_object_put(o);
        o = NULL;
    }
    for (size_t i = end; o && i < len; i++) {
        if (!isspace((unsigned char)s[i])) {
            json_object_put(o);
            o = NULL;
        }
    }
    json_tokener_free(tok);
    return o;
}

/* ------------------------------------------------------------------------------------------ */
/* Outbox                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/*
 * Queues a message to c: the fake's version of the send queue. A full outbox behaves like the
 * real send queue overflowing: WSHUB_ERR_LIMIT and the connection is closed as a slow consumer.
 */
static int outbox_push(struct wshub_conn *c, const void *data, size_t len, bool is_binary)
{
    char *copy;

    if (!c || !conn_live(c))
        return WSHUB_ERR_STATE;
    if (c->pub.n_out >= FAKE_MAX_OUT) {
        fake_log(WSHUB_LOG_WARN,
                 "fake_host: conn %" PRIu64 ": outbox full (%d messages): "
                 "closed as a slow consumer",
                 c->pub.id, FAKE_MAX_OUT);
        h_conn_close(c, 1008, "slow consumer");
        return WSHUB_ERR_LIMIT;
    }
    copy = mem__alloc(len + 1);
    if (len)
        memcpy(copy, data, len);
    copy[len] = '\0';
    c->pub.out[c->pub.n_out] = copy;
    c->pub.out_binary[c->pub.n_out] = is_binary;
    c->pub.n_out++;
    return WSHUB_OK;
}

static int outbox_push_strbuf(struct wshub_conn *c, strbuf_t *b)
{
    int rc = outbox_push(c, b->s, b->len, false);
    strbuf__free(b);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* Slots: logging and errors                                                                   */
/* ------------------------------------------------------------------------------------------ */

static void h_log(wshub_plugin_t *self, int level, const char *fmt, ...) WSHUB_PRINTF(3, 4);
static void h_log(wshub_plugin_t *self, int level, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    (void)self;
    va_start(ap, fmt);
    msg = vformat(fmt, ap);
    va_end(ap);
    record_log(level, msg);
    free(msg);
}

static void h_set_error(wshub_plugin_t *self, const char *fmt, ...) WSHUB_PRINTF(2, 3);
static void h_set_error(wshub_plugin_t *self, const char *fmt, ...)
{
    va_list ap;
    char *msg;

    (void)self;
    va_start(ap, fmt);
    msg = vformat(fmt, ap);
    va_end(ap);
    set_last_error(msg);
    free(msg);
}

/* The core's own texts: the code's name, then what it means. */
static const char *h_strerror(int rc)
{
    return plugin_host__strerror(rc);
}

/* The protocol error code for a handler's negative result (as plugin_host__rc_code). */
static const char *rc_code(int rc)
{
    switch (rc) {
    case WSHUB_ERR_DENIED:
        return "forbidden";
    case WSHUB_ERR_INVAL:
        return "invalid";
    case WSHUB_ERR_NOTFOUND:
        return "not_found";
    case WSHUB_ERR_EXISTS:
        return "exists";
    case WSHUB_ERR_LIMIT:
        return "rate_limited";
    default:
        return "internal";
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Slots: registration                                                                         */
/* ------------------------------------------------------------------------------------------ */

static int h_hook_add(wshub_plugin_t *self, wshub_event_t ev, int prio, wshub_hook_cb cb, void *ud)
{
    int rc = registration_check(self, "hook_add");
    size_t i;

    if (rc != WSHUB_OK)
        return rc;
    if ((int)ev <= 0 || (int)ev >= FAKE_N_EVENTS || !cb)
        return WSHUB_ERR_INVAL;
    F.hooks[ev].v = mem__realloc(F.hooks[ev].v, (F.hooks[ev].n + 1) * sizeof(hook_t));
    /* Insert after every hook with prio <= this one: ties keep registration order. */
    for (i = F.hooks[ev].n; i > 0 && F.hooks[ev].v[i - 1].prio > prio; i--)
        F.hooks[ev].v[i] = F.hooks[ev].v[i - 1];
    F.hooks[ev].v[i] = (hook_t){prio, cb, ud};
    F.hooks[ev].n++;
    return WSHUB_OK;
}

static const route_t *route_find(const route_t *v, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v[i].key, key) == 0)
            return &v[i];
    return NULL;
}

static void route_push(route_t **v, size_t *n, const char *key, wshub_msg_cb cb, void *ud)
{
    *v = mem__realloc(*v, (*n + 1) * sizeof(route_t));
    (*v)[*n] = (route_t){mem__strdup(key), cb, ud};
    (*n)++;
}

/* Same rules as core/router.c: [A-Za-z0-9._-:/]{1,64}. */
static bool valid_type(const char *type)
{
    size_t n = strlen(type);

    if (n == 0 || n > FAKE_MAX_TYPE_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)type[i]) || strchr("._-:/", type[i])))
            return false;
    return true;
}

static int h_route_add(wshub_plugin_t *self, const char *type, wshub_msg_cb cb, void *ud)
{
    static const char *const core_types[] = {"ping", "welcome", "ack", "error", "pong", NULL};
    int rc = registration_check(self, "route_add");

    if (rc != WSHUB_OK)
        return rc;
    if (!type || !cb || !valid_type(type))
        return WSHUB_ERR_INVAL;
    for (size_t i = 0; core_types[i]; i++)
        if (strcmp(type, core_types[i]) == 0)
            return WSHUB_ERR_EXISTS;
    if (route_find(F.routes, F.n_routes, type))
        return WSHUB_ERR_EXISTS;
    route_push(&F.routes, &F.n_routes, type, cb, ud);
    return WSHUB_OK;
}

static int h_path_add(wshub_plugin_t *self, const char *path, wshub_msg_cb cb, void *ud)
{
    int rc = registration_check(self, "path_add");

    if (rc != WSHUB_OK)
        return rc;
    if (!path || path[0] != '/' || !cb || strlen(path) > FAKE_MAX_PATH_LEN || strchr(path, '?'))
        return WSHUB_ERR_INVAL;
    if (strcmp(path, FAKE_JSON_PATH) == 0 || route_find(F.paths, F.n_paths, path))
        return WSHUB_ERR_EXISTS;
    route_push(&F.paths, &F.n_paths, path, cb, ud);
    return WSHUB_OK;
}

static const service_t *service_find(const char *name)
{
    for (size_t i = 0; i < F.n_services; i++)
        if (strcmp(F.services[i].name, name) == 0)
            return &F.services[i];
    return NULL;
}

static int h_service_put(wshub_plugin_t *self, const char *name, uint32_t version,
                         const void *vtable)
{
    int rc = registration_check(self, "service_put");

    if (rc != WSHUB_OK)
        return rc;
    if (!name || !*name || !vtable)
        return WSHUB_ERR_INVAL;
    /* Only services the descriptor declares: the loader orders plugins by provides/requires. */
    if (!listed(F.plugin.desc.provides, name)) {
        fake_log(WSHUB_LOG_ERR,
                 "plugin %s: service_put('%s') but the descriptor's provides does "
                 "not list it",
                 F.plugin.desc.name, name);
        return WSHUB_ERR_INVAL;
    }
    if (service_find(name))
        return WSHUB_ERR_EXISTS;
    F.services = mem__realloc(F.services, (F.n_services + 1) * sizeof(service_t));
    F.services[F.n_services++] = (service_t){mem__strdup(name), version, vtable};
    return WSHUB_OK;
}

static const void *h_service_get(wshub_plugin_t *self, const char *name, uint32_t min_version)
{
    const service_t *s;

    (void)self;
    if (!name)
        return NULL;
    s = service_find(name);
    return s && s->version >= min_version ? s->vtable : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Slots: configuration (the real config module's accessors)                                   */
/* ------------------------------------------------------------------------------------------ */

static const wshub_cfg_t *h_cfg_get(const wshub_cfg_t *node, const char *key)
{
    return config__get(node, key);
}

static wshub_cfg_kind_t h_cfg_kind(const wshub_cfg_t *node)
{
    return node ? node->kind : WSHUB_CFG_SCALAR;
}

static const char *h_cfg_scalar(const wshub_cfg_t *node)
{
    return node && node->kind == WSHUB_CFG_SCALAR ? node->scalar : NULL;
}

static size_t h_cfg_len(const wshub_cfg_t *node)
{
    return node && node->kind != WSHUB_CFG_SCALAR ? node->n : 0;
}

static const wshub_cfg_t *h_cfg_at(const wshub_cfg_t *node, size_t i)
{
    if (!node || node->kind == WSHUB_CFG_SCALAR || i >= node->n)
        return NULL;
    return node->items[i];
}

static const char *h_cfg_key_at(const wshub_cfg_t *node, size_t i)
{
    if (!node || node->kind != WSHUB_CFG_MAP || !node->keys || i >= node->n)
        return NULL;
    return node->keys[i];
}

static const char *h_cfg_where(const wshub_cfg_t *node)
{
    return node ? node->where : "<none>";
}

static const char *h_cfg_str(const wshub_cfg_t *node, const char *key, const char *def)
{
    return config__str(node, key, def);
}

static int h_cfg_int(const wshub_cfg_t *node, const char *key, int64_t def, int64_t *out)
{
    return config__int(node, key, def, out);
}

static bool h_cfg_bool(const wshub_cfg_t *node, const char *key, bool def)
{
    return config__bool(node, key, def);
}

/* ------------------------------------------------------------------------------------------ */
/* Slots: connections                                                                          */
/* ------------------------------------------------------------------------------------------ */

static uint64_t h_conn_id(const wshub_conn_t *c)
{
    return c ? c->pub.id : 0;
}

/*
 * The scope rule of the real host: a NULL tenant means "every tenant" and is refused unless the
 * plugin declared WSHUB_PLUGIN_SYSTEM_SCOPE (the loader logs that declaration once, at init).
 */
static bool scope_ok(const char *tenant)
{
    return tenant || has_system_scope();
}

static wshub_conn_t *h_conn_lookup(wshub_plugin_t *self, const char *tenant, uint64_t id)
{
    if (!is_self(self) || !scope_ok(tenant))
        return NULL;
    for (size_t i = 0; i < F.n_conns; i++) {
        struct wshub_conn *c = F.conns[i];
        if (c->pub.id != id)
            continue;
        if (!conn_live(c) || (tenant && strcmp(c->pub.tenant, tenant) != 0))
            return NULL;
        return c;
    }
    return NULL;
}

/* Shared walk of conn_each and conn_each_user: live conns of tenant (NULL: all), of user. */
static int each_conn(wshub_plugin_t *self, const char *tenant, const char *user,
                     wshub_conn_iter_cb cb, void *ud)
{
    if (!is_self(self) || !cb)
        return WSHUB_ERR_INVAL;
    if (!scope_ok(tenant))
        return WSHUB_ERR_DENIED;
    /* Index walk: the callback cannot add connections, and closing only marks them. */
    for (size_t i = 0; i < F.n_conns; i++) {
        struct wshub_conn *c = F.conns[i];
        int r;
        if (!conn_live(c) || (tenant && strcmp(c->pub.tenant, tenant) != 0) ||
            (user && strcmp(c->pub.user, user) != 0))
            continue;
        r = cb(c, ud);
        if (r != 0)
            return r;
    }
    return WSHUB_OK;
}

static int h_conn_each_user(wshub_plugin_t *self, const char *tenant, const char *user,
                            wshub_conn_iter_cb cb, void *ud)
{
    if (!user)
        return WSHUB_ERR_INVAL;
    return each_conn(self, tenant, user, cb, ud);
}

static int h_conn_each(wshub_plugin_t *self, const char *tenant, wshub_conn_iter_cb cb, void *ud)
{
    return each_conn(self, tenant, NULL, cb, ud);
}

static const char *h_conn_tenant(const wshub_conn_t *c)
{
    return c ? c->pub.tenant : "";
}

static const char *h_conn_user(const wshub_conn_t *c)
{
    return c ? c->pub.user : "";
}

static size_t h_conn_n_roles(const wshub_conn_t *c)
{
    return c ? c->pub.n_roles : 0;
}

static const char *h_conn_role(const wshub_conn_t *c, size_t i)
{
    return c && i < c->pub.n_roles ? c->pub.roles[i] : NULL;
}

static const char *h_conn_metadata(const wshub_conn_t *c)
{
    return c && c->pub.metadata ? c->pub.metadata : "{}";
}

static const char *h_conn_remote_addr(const wshub_conn_t *c)
{
    return c ? c->pub.remote : "";
}

static const char *h_conn_path(const wshub_conn_t *c)
{
    return c ? c->pub.path : "";
}

static const char *h_conn_subprotocol(const wshub_conn_t *c)
{
    return c && c->pub.subprotocol[0] ? c->pub.subprotocol : NULL;
}

static uint64_t h_conn_created_ms(const wshub_conn_t *c)
{
    return c ? c->pub.created_ms : 0;
}

static uint64_t h_conn_last_seen_ms(const wshub_conn_t *c)
{
    return c ? c->last_seen_ms : 0;
}

/* Copies s into a fixed field of the fake; a value the fake cannot hold is reported, never cut. */
static bool fits(const char *s, size_t cap, const char *what)
{
    if (strlen(s) < cap)
        return true;
    fake_log(WSHUB_LOG_ERR, "fake_host: %s longer than %zu bytes is not supported by the fake",
             what, cap - 1);
    return false;
}

/* Copies s into a fixed field after fits() accepted it (memcpy: no truncation is possible). */
static void set_field(char *dst, size_t cap, const char *s)
{
    size_t n = strlen(s);

    assert(n < cap);
    memcpy(dst, s, n + 1);
}

static void free_roles(fake_conn_t *c)
{
    for (size_t i = 0; i < c->n_roles; i++)
        free(c->roles[i]);
    c->n_roles = 0;
}

/* Tenant, user and role names as the real host accepts them: <= 256 bytes, no control bytes. */
static bool valid_ident(const char *s, bool allow_empty)
{
    size_t n = s ? strlen(s) : 0;

    if (!s || (!allow_empty && n == 0) || n > FAKE_MAX_IDENT_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/*
 * Identity is set during AUTH (a later call in the same chain replaces an earlier one) and
 * validated as the real host does: tenant non-empty, names without control bytes and at most
 * 256 bytes, metadata a JSON object of at most 16 KiB, at most 64 roles. The fake holds at most
 * 16 roles and 63-byte tenant/user names; beyond that it answers WSHUB_ERR_LIMIT and logs why, so
 * a test never silently sees a cut value.
 */
static int h_conn_set_identity(wshub_conn_t *c, const char *tenant, const char *user,
                               const char *const *roles, size_t n_roles, const char *metadata_json)
{
    size_t max_roles = sizeof(c->pub.roles) / sizeof(c->pub.roles[0]);
    char *meta = NULL;

    if (!c || c->dropped || !c->pub.in_auth)
        return WSHUB_ERR_STATE;
    if (!user)
        user = "";
    if (!valid_ident(tenant, false) || !valid_ident(user, true) || n_roles > FAKE_MAX_ROLES_API ||
        (n_roles && !roles))
        return WSHUB_ERR_INVAL;
    for (size_t i = 0; i < n_roles; i++)
        if (!valid_ident(roles[i], false))
            return WSHUB_ERR_INVAL;
    if (metadata_json) {
        size_t n = strlen(metadata_json);
        struct json_object *o =
            n <= FAKE_MAX_METADATA_LEN ? parse_json(metadata_json, n, true) : NULL;
        bool ok = o && json_object_is_type(o, json_type_object);
        json_object_put(o);
        if (!ok)
            return WSHUB_ERR_INVAL;
    }
    if (!fits(tenant, sizeof(c->pub.tenant), "tenant") || !fits(user, sizeof(c->pub.user), "user"))
        return WSHUB_ERR_LIMIT;
    if (n_roles > max_roles) {
        fake_log(WSHUB_LOG_ERR, "fake_host: more than %zu roles are not supported by the fake",
                 max_roles);
        return WSHUB_ERR_LIMIT;
    }
    meta = mem__strdup(metadata_json ? metadata_json : "{}");
    set_field(c->pub.tenant, sizeof(c->pub.tenant), tenant);
    set_field(c->pub.user, sizeof(c->pub.user), user);
    free_roles(&c->pub);
    for (size_t i = 0; i < n_roles; i++)
        c->pub.roles[i] = mem__strdup(roles[i]);
    c->pub.n_roles = n_roles;
    free(c->pub.metadata);
    c->pub.metadata = meta;
    return WSHUB_OK;
}

/* True when the client offered `protocol` in a Sec-WebSocket-Protocol header (comma list). */
static bool subprotocol_offered(const struct wshub_conn *c, const char *protocol)
{
    size_t plen = strlen(protocol);

    for (size_t i = 0; i < c->n_headers; i++) {
        const char *v = c->headers[i].value;
        if (!c->headers[i].name || !v || strcasecmp(c->headers[i].name, "sec-websocket-protocol"))
            continue;
        while (*v) {
            const char *start, *end;
            while (*v == ' ' || *v == '\t' || *v == ',')
                v++;
            start = v;
            while (*v && *v != ',')
                v++;
            end = v;
            while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            if ((size_t)(end - start) == plen && memcmp(start, protocol, plen) == 0)
                return true;
        }
    }
    return false;
}

/*
 * The real host checks the token's characters; the fake also holds the plugin to the SDK's rule
 * that the value be one the client offered (answering another one fails the client's handshake).
 */
static int h_conn_set_subprotocol(wshub_conn_t *c, const char *protocol)
{
    if (!c || c->dropped || !c->pub.in_auth)
        return WSHUB_ERR_STATE;
    if (!protocol || !*protocol || strlen(protocol) > 128 || strpbrk(protocol, " ,;\r\n\t\"") ||
        !subprotocol_offered(c, protocol))
        return WSHUB_ERR_INVAL;
    if (!fits(protocol, sizeof(c->pub.subprotocol), "subprotocol"))
        return WSHUB_ERR_LIMIT;
    set_field(c->pub.subprotocol, sizeof(c->pub.subprotocol), protocol);
    return WSHUB_OK;
}

static void *h_conn_state(wshub_conn_t *c, wshub_plugin_t *self)
{
    if (!c || !is_self(self))
        return NULL;
    return c->pub.state;
}

static int h_conn_send(wshub_conn_t *c, wshub_buf_t *b)
{
    if (!c || !b)
        return WSHUB_ERR_INVAL;
    return outbox_push(c, b->data, b->len, b->is_binary);
}

static int h_conn_send_text(wshub_conn_t *c, const char *data, size_t len)
{
    if (!c || (!data && len))
        return WSHUB_ERR_INVAL;
    return outbox_push(c, data, len, false);
}

/*
 * Deferred close: only marks the connection (the first close wins, like the real one). A code a
 * server may not send (RFC 6455 7.4) becomes 1008, as in the real host.
 */
static void h_conn_close(wshub_conn_t *c, uint16_t code, const char *reason)
{
    size_t n;

    if (!c || c->dropped || c->pub.closed)
        return;
    if (!ws_frame__close_code_valid(code))
        code = 1008;
    c->pub.closed = true;
    c->pub.close_code = code;
    reason = reason ? reason : "";
    n = strlen(reason);
    if (n > 123) {
        n = 123;
        while (n > 0 && ((unsigned char)reason[n] & 0xC0) == 0x80)
            n--; /* never cut inside a UTF-8 sequence */
    }
    memcpy(c->pub.close_reason, reason, n);
    c->pub.close_reason[n] = '\0';
}

/* ------------------------------------------------------------------------------------------ */
/* Slots: protocol helpers (the exact texts of core/router.c)                                  */
/* ------------------------------------------------------------------------------------------ */

/*
 * The real host splices id_json and fields_json as text without checking them; the fake sends
 * the same bytes but also logs an ERR when they are not valid JSON, so a plugin test catches a
 * malformed reply that a client would choke on.
 */
static void check_json_arg(const char *slot, const char *what, const char *text, bool object)
{
    struct json_object *o;
    bool ok;

    if (!text)
        return;
    o = parse_json(text, strlen(text), true);
    ok = o && (!object || json_object_is_type(o, json_type_object));
    json_object_put(o);
    if (!ok)
        fake_log(WSHUB_LOG_ERR, "fake_host: %s: %s is not %s: %s", slot, what,
                 object ? "a JSON object" : "a JSON value", text);
}

static const route_t *raw_path_of(const struct wshub_conn *c);

static int h_send_ack(wshub_conn_t *c, const char *id_json, const char *fields_json)
{
    strbuf_t b;

    /* Like the core: protocol replies exist only on JSON paths. */
    if (raw_path_of(c))
        return WSHUB_ERR_STATE;
    check_json_arg("send_ack", "id_json", id_json, false);
    check_json_arg("send_ack", "fields_json", fields_json, true);
    strbuf__init(&b);
    router__format_ack(&b, id_json, fields_json);
    return outbox_push_strbuf(c, &b);
}

static int send_errorv(struct wshub_conn *c, const char *id_json, const char *code, const char *fmt,
                       va_list ap) WSHUB_PRINTF(4, 0);
static int send_errorv(struct wshub_conn *c, const char *id_json, const char *code, const char *fmt,
                       va_list ap)
{
    strbuf_t b;

    if (raw_path_of(c))
        return WSHUB_ERR_STATE;
    check_json_arg("send_error", "id_json", id_json, false);
    strbuf__init(&b);
    router__format_error(&b, id_json, code, fmt, ap);
    return outbox_push_strbuf(c, &b);
}

static int send_error(struct wshub_conn *c, const char *id_json, const char *code, const char *fmt,
                      ...) WSHUB_PRINTF(4, 5);
static int send_error(struct wshub_conn *c, const char *id_json, const char *code, const char *fmt,
                      ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = send_errorv(c, id_json, code, fmt, ap);
    va_end(ap);
    return rc;
}

static int h_send_error(wshub_conn_t *c, const char *id_json, const char *code, const char *fmt,
                        ...) WSHUB_PRINTF(4, 5);
static int h_send_error(wshub_conn_t *c, const char *id_json, const char *code, const char *fmt,
                        ...)
{
    va_list ap;
    int rc;

    if (!c || !code)
        return WSHUB_ERR_INVAL;
    va_start(ap, fmt);
    rc = send_errorv(c, id_json, code, fmt, ap);
    va_end(ap);
    return rc;
}

static int h_welcome_add(wshub_ev_welcome_t *ev, const char *key, const char *json)
{
    if (!ev || !ev->priv || !key || !json || !*json)
        return WSHUB_ERR_INVAL;
    if (!F.welcome || ev->priv != F.welcome)
        return WSHUB_ERR_STATE;
    check_json_arg("welcome_add", "json", json, false);
    strbuf__add(F.welcome, ",", 1);
    strbuf__json_str(F.welcome, key, strlen(key));
    strbuf__add(F.welcome, ":", 1);
    strbuf__adds(F.welcome, json);
    return WSHUB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Slots: buffers                                                                              */
/* ------------------------------------------------------------------------------------------ */

static wshub_buf_t *buf_make(const void *data, size_t len, bool is_binary)
{
    struct wshub_buf *b;

    if ((!data && len) || len > SIZE_MAX - sizeof(*b) - 1)
        return NULL;
    b = mem__alloc(sizeof(*b) + len + 1);
    b->refs = 1;
    b->is_binary = is_binary;
    b->len = len;
    if (len)
        memcpy(b->data, data, len);
    b->data[len] = '\0';
    b->prev = NULL;
    b->next = F.bufs;
    if (F.bufs)
        F.bufs->prev = b;
    F.bufs = b;
    F.n_bufs++;
    return b;
}

static wshub_buf_t *h_buf_new(const void *data, size_t len)
{
    return buf_make(data, len, false);
}

static wshub_buf_t *h_buf_new_binary(const void *data, size_t len)
{
    return buf_make(data, len, true);
}

static wshub_buf_t *h_buf_ref(wshub_buf_t *b)
{
    if (b)
        b->refs++;
    return b;
}

static void buf_free(struct wshub_buf *b)
{
    if (b->prev)
        b->prev->next = b->next;
    else
        F.bufs = b->next;
    if (b->next)
        b->next->prev = b->prev;
    F.n_bufs--;
    free(b);
}

static void h_buf_unref(wshub_buf_t *b)
{
    if (!b)
        return;
    if (b->refs == 0) {
        fake_log(WSHUB_LOG_ERR, "fake_host: buf_unref on a buffer with no reference left");
        return;
    }
    if (--b->refs == 0)
        buf_free(b);
}

static const void *h_buf_data(const wshub_buf_t *b, size_t *len)
{
    if (len)
        *len = b ? b->len : 0;
    return b ? b->data : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Slots: groups                                                                               */
/* ------------------------------------------------------------------------------------------ */

static wshub_group_t *h_group_new(wshub_plugin_t *self, const char *tenant)
{
    struct wshub_group *g;

    if (!is_self(self) || (tenant && !*tenant) || !scope_ok(tenant))
        return NULL;
    g = mem__calloc(1, sizeof(*g));
    g->tenant = tenant ? mem__strdup(tenant) : NULL;
    g->next = F.groups;
    if (F.groups)
        F.groups->prev = g;
    F.groups = g;
    return g;
}

static void group_release(struct wshub_group *g)
{
    if (g->prev)
        g->prev->next = g->next;
    else
        F.groups = g->next;
    if (g->next)
        g->next->prev = g->prev;
    free(g->members);
    free(g->tenant);
    free(g);
}

static void h_group_free(wshub_group_t *g)
{
    if (g)
        group_release(g);
}

static size_t member_index(const wshub_group_t *g, const wshub_conn_t *c)
{
    for (size_t i = 0; i < g->n; i++)
        if (g->members[i] == c)
            return i;
    return SIZE_MAX;
}

static int h_group_add(wshub_group_t *g, wshub_conn_t *c)
{
    if (!g || !c)
        return WSHUB_ERR_INVAL;
    /* The order of core/group.c: tenant first, then liveness, then membership. */
    if (g->tenant && strcmp(g->tenant, c->pub.tenant) != 0)
        return WSHUB_ERR_DENIED;
    if (!conn_live(c))
        return WSHUB_ERR_STATE;
    if (member_index(g, c) != SIZE_MAX)
        return WSHUB_ERR_EXISTS;
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 8;
        g->members = mem__realloc(g->members, g->cap * sizeof(*g->members));
    }
    g->members[g->n++] = c;
    return WSHUB_OK;
}

static int h_group_remove(wshub_group_t *g, wshub_conn_t *c)
{
    size_t i;

    if (!g || !c)
        return WSHUB_ERR_INVAL;
    i = member_index(g, c);
    if (i == SIZE_MAX)
        return WSHUB_ERR_NOTFOUND;
    /* Keep the order: tests read outboxes in the order members were added. */
    memmove(&g->members[i], &g->members[i + 1], (g->n - i - 1) * sizeof(*g->members));
    g->n--;
    return WSHUB_OK;
}

static bool h_group_has(const wshub_group_t *g, const wshub_conn_t *c)
{
    return g && c && member_index(g, c) != SIZE_MAX;
}

static size_t h_group_size(const wshub_group_t *g)
{
    return g ? g->n : 0;
}

static size_t h_group_send(wshub_group_t *g, wshub_buf_t *b, const wshub_conn_t *except)
{
    size_t sent = 0;

    if (!g || !b)
        return 0;
    /* A member closed as a slow consumer stays a member until dropped: n cannot change here. */
    for (size_t i = 0; i < g->n; i++)
        if (g->members[i] != except && h_conn_send(g->members[i], b) == WSHUB_OK)
            sent++;
    return sent;
}

static int h_group_each(const wshub_group_t *g, wshub_conn_iter_cb cb, void *ud)
{
    if (!g || !cb)
        return WSHUB_ERR_INVAL;
    for (size_t i = 0; i < g->n; i++) {
        int r = cb(g->members[i], ud);
        if (r != 0)
            return r;
    }
    return WSHUB_OK;
}

/* A dropped connection leaves every group (the real host does it after the CONN_CLOSE hooks). */
static void groups_leave_all(struct wshub_conn *c)
{
    for (struct wshub_group *g = F.groups; g; g = g->next)
        h_group_remove(g, c);
}

/* ------------------------------------------------------------------------------------------ */
/* Slots: timers and the loop                                                                  */
/* ------------------------------------------------------------------------------------------ */

static wshub_timer_t *h_timer_add(wshub_plugin_t *self, uint64_t ms, bool repeat, wshub_timer_cb cb,
                                  void *ud)
{
    struct wshub_timer *t;

    /* As core/timer.c: a repeating 0 ms timer would spin the loop; more than a year is a bug. */
    if (!is_self(self) || !cb || (repeat && ms == 0) || ms > 86400000ull * 365)
        return NULL;
    t = mem__calloc(1, sizeof(*t));
    t->due_ms = F.now_ms + ms;
    t->interval_ms = ms;
    t->repeat = repeat;
    t->seq = F.timer_seq++;
    t->cb = cb;
    t->ud = ud;
    t->next = F.timers;
    if (F.timers)
        F.timers->prev = t;
    F.timers = t;
    return t;
}

static void timer_unlink_free(struct wshub_timer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        F.timers = t->next;
    if (t->next)
        t->next->prev = t->prev;
    free(t);
}

/* Safe inside the timer's own callback: it is then freed when the callback returns. */
static void h_timer_del(wshub_timer_t *t)
{
    if (!t)
        return;
    if (t->running)
        t->deleted = true;
    else
        timer_unlink_free(t);
}

static int h_post(wshub_plugin_t *self, void (*cb)(void *ud), void *ud)
{
    post_item_t *p;
    int rc = WSHUB_OK;

    (void)self;
    if (!cb)
        return WSHUB_ERR_INVAL;
    p = mem__alloc(sizeof(*p));
    *p = (post_item_t){cb, ud, NULL};
    pthread_mutex_lock(&F.lock);
    if (!F.post_open) {
        rc = WSHUB_ERR_STATE;
    } else {
        if (F.post_tail)
            F.post_tail->next = p;
        else
            F.post_head = p;
        F.post_tail = p;
        p = NULL;
    }
    pthread_mutex_unlock(&F.lock);
    free(p);
    return rc;
}

/* A real event_base, created on first use; fake_host__advance() runs it without blocking. */
static void *h_loop_native(wshub_plugin_t *self)
{
    if (!is_self(self))
        return NULL;
    if (!F.base)
        F.base = event_base_new();
    return F.base;
}

static void h_stopped(wshub_plugin_t *self)
{
    if (self == &F.plugin && F.plugin.phase == PH_STOPPING)
        F.plugin.stopped_called = true;
}

static uint64_t h_now_ms(void)
{
    return F.now_ms;
}

/* ------------------------------------------------------------------------------------------ */
/* Slots: metrics                                                                              */
/* ------------------------------------------------------------------------------------------ */

static bool metric_name_ok(const char *s, bool allow_colon)
{
    if (!s || !*s || isdigit((unsigned char)s[0]))
        return false;
    for (; *s; s++)
        if (!(isalnum((unsigned char)*s) || *s == '_' || (allow_colon && *s == ':')))
            return false;
    return true;
}

static wshub_metric_t *metric_find(const char *name)
{
    for (size_t i = 0; i < F.n_metrics; i++)
        if (strcmp(F.metrics[i]->name, name) == 0)
            return F.metrics[i];
    return NULL;
}

/* Validates the definition like core/metrics.c: name, labels, reserved "le", ascending buckets. */
static wshub_metric_t *h_metric_new(wshub_plugin_t *self, const wshub_metric_def_t *def)
{
    wshub_metric_t *m;

    if (registration_check(self, "metric_new") != WSHUB_OK)
        return NULL;
    if (!def || def->kind < WSHUB_METRIC_COUNTER || def->kind > WSHUB_METRIC_HISTOGRAM ||
        !metric_name_ok(def->name, true) || def->n_labels > FAKE_MAX_LABELS ||
        (def->n_labels && !def->label_names) || metric_find(def->name))
        goto refused;
    for (size_t i = 0; i < def->n_labels; i++) {
        if (!metric_name_ok(def->label_names[i], false) ||
            (def->kind == WSHUB_METRIC_HISTOGRAM && strcmp(def->label_names[i], "le") == 0))
            goto refused;
        for (size_t k = 0; k < i; k++)
            if (strcmp(def->label_names[i], def->label_names[k]) == 0)
                goto refused;
    }
    if (def->kind == WSHUB_METRIC_HISTOGRAM && def->buckets) {
        for (size_t i = 1; i < def->n_buckets; i++)
            if (!(def->buckets[i] > def->buckets[i - 1]))
                goto refused;
    }
    m = mem__calloc(1, sizeof(*m));
    m->kind = def->kind;
    m->name = mem__strdup(def->name);
    m->n_labels = def->n_labels;
    F.metrics = mem__realloc(F.metrics, (F.n_metrics + 1) * sizeof(*F.metrics));
    F.metrics[F.n_metrics++] = m;
    return m;
refused:
    fake_log(WSHUB_LOG_WARN,
             "fake_host: metric_new(%s) refused: invalid definition or duplicate "
             "name",
             def && def->name ? def->name : "NULL");
    return NULL;
}

/* The series of `labels` (NULL values read as ""), created when `create`. */
static series_t *series_get(wshub_metric_t *m, const char *const *labels, bool create)
{
    series_t *s;

    for (size_t i = 0; i < m->n_series; i++) {
        bool same = true;
        for (size_t k = 0; k < m->n_labels && same; k++) {
            const char *v = labels && labels[k] ? labels[k] : "";
            same = strcmp(m->series[i].labels[k], v) == 0;
        }
        if (same)
            return &m->series[i];
    }
    if (!create)
        return NULL;
    m->series = mem__realloc(m->series, (m->n_series + 1) * sizeof(series_t));
    s = &m->series[m->n_series++];
    memset(s, 0, sizeof(*s));
    s->labels = mem__calloc(m->n_labels ? m->n_labels : 1, sizeof(char *));
    for (size_t k = 0; k < m->n_labels; k++)
        s->labels[k] = mem__strdup(labels && labels[k] ? labels[k] : "");
    return s;
}

/* A kind mismatch or a missing label array is ignored by the real registry; the fake logs it. */
static bool metric_use_ok(const wshub_metric_t *m, const char *const *labels, wshub_metric_kind_t a,
                          wshub_metric_kind_t b, const char *slot)
{
    if (!m)
        return false;
    if (m->kind != a && m->kind != b) {
        fake_log(WSHUB_LOG_ERR, "fake_host: %s on metric %s of the wrong kind (ignored)", slot,
                 m->name);
        return false;
    }
    if (m->n_labels && !labels) {
        fake_log(WSHUB_LOG_ERR, "fake_host: %s on metric %s without its %zu label value(s)", slot,
                 m->name, m->n_labels);
        return false;
    }
    return true;
}

static void h_metric_add(wshub_metric_t *m, const char *const *labels, double v)
{
    if (!metric_use_ok(m, labels, WSHUB_METRIC_COUNTER, WSHUB_METRIC_GAUGE, "metric_add"))
        return;
    if (m->kind == WSHUB_METRIC_COUNTER && !(v >= 0)) {
        fake_log(WSHUB_LOG_ERR, "fake_host: metric_add of %g to counter %s (ignored)", v, m->name);
        return;
    }
    series_get(m, labels, true)->value += v;
}

static void h_metric_set(wshub_metric_t *m, const char *const *labels, double v)
{
    if (!metric_use_ok(m, labels, WSHUB_METRIC_GAUGE, WSHUB_METRIC_GAUGE, "metric_set"))
        return;
    series_get(m, labels, true)->value = v;
}

static void h_metric_observe(wshub_metric_t *m, const char *const *labels, double v)
{
    series_t *s;

    if (!metric_use_ok(m, labels, WSHUB_METRIC_HISTOGRAM, WSHUB_METRIC_HISTOGRAM, "metric_observe"))
        return;
    s = series_get(m, labels, true);
    s->count++;
    s->sum += v;
}

/* ------------------------------------------------------------------------------------------ */
/* The table: every slot filled                                                                */
/* ------------------------------------------------------------------------------------------ */

static const wshub_host_api_t fake_api = {
    .abi_major = WSHUB_SDK_ABI_MAJOR,
    .abi_minor = WSHUB_SDK_ABI_MINOR,
    .struct_size = (uint32_t)sizeof(wshub_host_api_t),
    .log = h_log,
    .set_error = h_set_error,
    .strerror = h_strerror,
    .hook_add = h_hook_add,
    .route_add = h_route_add,
    .path_add = h_path_add,
    .service_put = h_service_put,
    .service_get = h_service_get,
    .cfg_get = h_cfg_get,
    .cfg_kind = h_cfg_kind,
    .cfg_scalar = h_cfg_scalar,
    .cfg_len = h_cfg_len,
    .cfg_at = h_cfg_at,
    .cfg_key_at = h_cfg_key_at,
    .cfg_where = h_cfg_where,
    .cfg_str = h_cfg_str,
    .cfg_int = h_cfg_int,
    .cfg_bool = h_cfg_bool,
    .conn_id = h_conn_id,
    .conn_lookup = h_conn_lookup,
    .conn_each_user = h_conn_each_user,
    .conn_each = h_conn_each,
    .conn_tenant = h_conn_tenant,
    .conn_user = h_conn_user,
    .conn_n_roles = h_conn_n_roles,
    .conn_role = h_conn_role,
    .conn_metadata = h_conn_metadata,
    .conn_remote_addr = h_conn_remote_addr,
    .conn_path = h_conn_path,
    .conn_subprotocol = h_conn_subprotocol,
    .conn_created_ms = h_conn_created_ms,
    .conn_last_seen_ms = h_conn_last_seen_ms,
    .conn_set_identity = h_conn_set_identity,
    .conn_set_subprotocol = h_conn_set_subprotocol,
    .conn_state = h_conn_state,
    .conn_send = h_conn_send,
    .conn_send_text = h_conn_send_text,
    .conn_close = h_conn_close,
    .send_ack = h_send_ack,
    .send_error = h_send_error,
    .welcome_add = h_welcome_add,
    .buf_new = h_buf_new,
    .buf_new_binary = h_buf_new_binary,
    .buf_ref = h_buf_ref,
    .buf_unref = h_buf_unref,
    .buf_data = h_buf_data,
    .group_new = h_group_new,
    .group_free = h_group_free,
    .group_add = h_group_add,
    .group_remove = h_group_remove,
    .group_has = h_group_has,
    .group_size = h_group_size,
    .group_send = h_group_send,
    .group_each = h_group_each,
    .timer_add = h_timer_add,
    .timer_del = h_timer_del,
    .post = h_post,
    .loop_native = h_loop_native,
    .stopped = h_stopped,
    .now_ms = h_now_ms,
    .metric_new = h_metric_new,
    .metric_add = h_metric_add,
    .metric_set = h_metric_set,
    .metric_observe = h_metric_observe,
};

const wshub_host_api_t *fake_host__api(void)
{
    return &fake_api;
}

wshub_plugin_t *fake_host__plugin(void)
{
    return &F.plugin;
}

const char *fake_host__last_error(void)
{
    return F.last_error;
}

/* ------------------------------------------------------------------------------------------ */
/* Load and unload                                                                             */
/* ------------------------------------------------------------------------------------------ */

static void clear_logs(void)
{
    pthread_mutex_lock(&F.lock);
    for (size_t i = 0; i < F.n_logs; i++)
        free(F.logs[i]);
    free(F.logs);
    F.logs = NULL;
    F.n_logs = F.cap_logs = 0;
    F.last_error[0] = '\0';
    pthread_mutex_unlock(&F.lock);
}

/* Drops every posted callback without running it; returns how many there were. */
static size_t drop_posts(void)
{
    size_t n = 0;

    pthread_mutex_lock(&F.lock);
    while (F.post_head) {
        post_item_t *p = F.post_head;
        F.post_head = p->next;
        free(p);
        n++;
    }
    F.post_tail = NULL;
    pthread_mutex_unlock(&F.lock);
    return n;
}

static void free_conn(struct wshub_conn *c)
{
    for (size_t i = 0; i < c->pub.n_out; i++)
        free(c->pub.out[i]);
    free_roles(&c->pub);
    free(c->pub.metadata);
    free(c->pub.state);
    free(c);
}

static void free_metric(wshub_metric_t *m)
{
    for (size_t i = 0; i < m->n_series; i++) {
        for (size_t k = 0; k < m->n_labels; k++)
            free(m->series[i].labels[k]);
        free(m->series[i].labels);
    }
    free(m->series);
    free(m->name);
    free(m);
}

/*
 * Forgets everything the plugin registered or created, as the real host does when a plugin
 * unloads (hooks, routes, paths, services, metrics, timers, groups). Buffers still referenced
 * are the plugin's leak: logged at ERR, then freed.
 */
static void release_registrations(void)
{
    for (int ev = 0; ev < FAKE_N_EVENTS; ev++) {
        free(F.hooks[ev].v);
        F.hooks[ev].v = NULL;
        F.hooks[ev].n = 0;
    }
    for (size_t i = 0; i < F.n_routes; i++)
        free(F.routes[i].key);
    free(F.routes);
    F.routes = NULL;
    F.n_routes = 0;
    for (size_t i = 0; i < F.n_paths; i++)
        free(F.paths[i].key);
    free(F.paths);
    F.paths = NULL;
    F.n_paths = 0;
    for (size_t i = 0; i < F.n_services; i++)
        free(F.services[i].name);
    free(F.services);
    F.services = NULL;
    F.n_services = 0;
    for (size_t i = 0; i < F.n_metrics; i++)
        free_metric(F.metrics[i]);
    free(F.metrics);
    F.metrics = NULL;
    F.n_metrics = 0;
    while (F.timers)
        timer_unlink_free(F.timers);
    while (F.groups)
        group_release(F.groups);
    if (F.n_bufs) {
        fake_log(WSHUB_LOG_ERR,
                 "fake_host: %zu buffer(s) leaked (a buf_new/buf_ref without its "
                 "buf_unref)",
                 F.n_bufs);
        while (F.bufs)
            buf_free(F.bufs);
    }
}

static void release_all(void)
{
    release_registrations();
    for (size_t i = 0; i < F.n_conns; i++)
        free_conn(F.conns[i]);
    free(F.conns);
    F.conns = NULL;
    F.n_conns = 0;
    config__node_free(F.cfg);
    F.cfg = NULL;
    if (F.base) {
        event_base_free(F.base);
        F.base = NULL;
    }
    drop_posts();
    memset(&F.plugin, 0, sizeof(F.plugin));
}

/* [a-z0-9_]{1,63}, as the real loader requires. */
static bool plugin_name_ok(const char *s)
{
    size_t n = s ? strlen(s) : 0;

    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

static int refuse(const char *fmt, ...) WSHUB_PRINTF(1, 2);

/* A load refusal: logged at ERR like the real loader, kept as the last error. */
static int refuse(const char *fmt, ...)
{
    va_list ap;
    char *msg;

    va_start(ap, fmt);
    msg = vformat(fmt, ap);
    va_end(ap);
    record_log(WSHUB_LOG_ERR, msg);
    set_last_error(msg);
    free(msg);
    memset(&F.plugin, 0, sizeof(F.plugin));
    return WSHUB_ERR_INVAL;
}

/* The descriptor size of ABI 1.0: the smallest a major-1 plugin may export. */
#define FAKE_DESC_SIZE_1_0 (offsetof(wshub_plugin_desc_t, fini) + sizeof(void (*)(void)))

/*
 * Validates the descriptor as the real loader does before running any plugin code (the same
 * checks and log texts, with "?" for the YAML name and "<fake>" for the path), parses and checks
 * the options with the real config module, then runs init(). A failed init (< 0) is handled as
 * in core/plugin_loader.c: logged, registrations undone, and fini() NOT called, so a plugin must
 * release what it allocated before returning an error from init.
 */
int fake_host__load(const wshub_plugin_desc_t *desc, const char *yaml_config)
{
    char err[1024];
    struct wshub_cfg *root = NULL;
    size_t copy;
    int rc;

    if (F.plugin.phase != PH_NONE || F.n_conns)
        fake_host__unload();
    release_all();
    clear_logs();
    F.now_ms = FAKE_EPOCH_MS;

    if (!desc)
        return refuse("plugin ?: no descriptor");
    if (desc->hdr.magic != WSHUB_PLUGIN_MAGIC)
        return refuse("plugin ?: <fake>: bad magic 0x%08x (not a wshub plugin)",
                      (unsigned)desc->hdr.magic);
    if (desc->hdr.abi_major != WSHUB_SDK_ABI_MAJOR || desc->hdr.abi_minor > WSHUB_SDK_ABI_MINOR)
        return refuse("plugin ?: built for SDK ABI %u.%u, this server has %u.%u",
                      (unsigned)desc->hdr.abi_major, (unsigned)desc->hdr.abi_minor,
                      (unsigned)WSHUB_SDK_ABI_MAJOR, (unsigned)WSHUB_SDK_ABI_MINOR);
    if (desc->hdr.struct_size < FAKE_DESC_SIZE_1_0)
        return refuse("plugin ?: <fake>: descriptor size %u is smaller than ABI %u.0's %zu",
                      (unsigned)desc->hdr.struct_size, (unsigned)WSHUB_SDK_ABI_MAJOR,
                      (size_t)FAKE_DESC_SIZE_1_0);
    /* Copy what the plugin was built with into a zeroed struct: unknown members stay 0. */
    copy = desc->hdr.struct_size < sizeof(*desc) ? desc->hdr.struct_size : sizeof(*desc);
    memset(&F.plugin, 0, sizeof(F.plugin));
    memcpy(&F.plugin.desc, desc, copy);
    if (!F.plugin.desc.init)
        return refuse("plugin %s: descriptor has no init function",
                      plugin_name_ok(F.plugin.desc.name) ? F.plugin.desc.name : "?");
    if (!plugin_name_ok(F.plugin.desc.name))
        return refuse("plugin ?: <fake> is plugin '%s': a name must match [a-z0-9_]{1,63}",
                      F.plugin.desc.name ? F.plugin.desc.name : "(null)");

    if (yaml_config &&
        config__parse_tree("<test>", yaml_config, strlen(yaml_config), &root, err, sizeof(err)))
        return refuse("%s", err);
    if (!root)
        root = config__empty_map();
    if (config__check_options(root, F.plugin.desc.name, F.plugin.desc.options, err, sizeof(err)) !=
        0) {
        config__node_free(root);
        return refuse("%s", err);
    }
    F.cfg = root;

    if (F.plugin.desc.flags & WSHUB_PLUGIN_SYSTEM_SCOPE)
        fake_log(WSHUB_LOG_NOTICE,
                 "plugin %s: declares system scope: it may reach connections "
                 "of every tenant",
                 F.plugin.desc.name);
    pthread_mutex_lock(&F.lock);
    F.post_open = true;
    F.last_error[0] = '\0';
    pthread_mutex_unlock(&F.lock);
    F.plugin.phase = PH_INIT;
    rc = F.plugin.desc.init(&F.plugin, &fake_api, F.cfg, &F.plugin.state);
    if (rc >= 0) {
        F.plugin.phase = PH_READY;
        fake_log(WSHUB_LOG_INFO, "plugin %s %s loaded from <fake>", F.plugin.desc.name,
                 F.plugin.desc.version ? F.plugin.desc.version : "");
        return WSHUB_OK;
    }
    if (F.last_error[0] == '\0')
        set_last_error(h_strerror(rc));
    fake_log(WSHUB_LOG_ERR, "plugin %s: init failed: %s", F.plugin.desc.name, F.last_error);
    release_all();
    return rc;
}

/* Calls start(); a negative result is logged like the real loader's "start failed". */
int fake_host__start(void)
{
    int rc = WSHUB_OK;

    if (F.plugin.phase != PH_READY)
        return WSHUB_ERR_STATE;
    pthread_mutex_lock(&F.lock);
    F.last_error[0] = '\0';
    pthread_mutex_unlock(&F.lock);
    if (F.plugin.desc.start)
        rc = F.plugin.desc.start(&F.plugin, F.plugin.state);
    if (rc < 0) {
        if (F.last_error[0] == '\0')
            set_last_error(h_strerror(rc));
        fake_log(WSHUB_LOG_ERR, "plugin %s: start failed: %s", F.plugin.desc.name, F.last_error);
        return rc;
    }
    F.plugin.phase = PH_STARTED;
    return WSHUB_OK;
}

/*
 * stop() (waiting, on the fake clock, up to the default shutdown_timeout for host->stopped()
 * when it returned WSHUB_PENDING), then fini(), then every fake object is freed. Logs and the
 * last error are kept until the next load.
 */
void fake_host__unload(void)
{
    size_t n;

    if (F.plugin.phase == PH_READY || F.plugin.phase == PH_STARTED) {
        int rc = WSHUB_OK;
        F.plugin.phase = PH_STOPPING;
        if (F.plugin.desc.stop)
            rc = F.plugin.desc.stop(&F.plugin, F.plugin.state);
        if (rc == WSHUB_PENDING) {
            for (uint64_t waited = 0; !F.plugin.stopped_called && waited < FAKE_STOP_BUDGET_MS;
                 waited += 10)
                fake_host__advance(10);
            if (!F.plugin.stopped_called)
                fake_log(WSHUB_LOG_ERR,
                         "plugin %s: stop() returned WSHUB_PENDING but "
                         "stopped() was not called within %u ms",
                         F.plugin.desc.name, FAKE_STOP_BUDGET_MS);
        }
        fake_host__advance(0); /* what stop() posted runs before fini, as on the real loop */
    }
    if (F.plugin.phase == PH_STOPPING) {
        F.plugin.phase = PH_FINI;
        pthread_mutex_lock(&F.lock);
        F.post_open = false;
        pthread_mutex_unlock(&F.lock);
        if (F.plugin.desc.fini)
            F.plugin.desc.fini(&F.plugin, F.plugin.state);
    }
    n = drop_posts();
    if (n)
        fake_log(WSHUB_LOG_WARN, "fake_host: %zu posted callback(s) never ran", n);
    release_all();
}

/* ------------------------------------------------------------------------------------------ */
/* Connections                                                                                 */
/* ------------------------------------------------------------------------------------------ */

fake_conn_t *fake_host__conn_new(const char *tenant, const char *user, const char *path)
{
    struct wshub_conn *c;

    tenant = tenant && *tenant ? tenant : "public";
    user = user ? user : "";
    path = path ? path : FAKE_JSON_PATH;
    if (!fits(tenant, sizeof(c->pub.tenant), "tenant") ||
        !fits(user, sizeof(c->pub.user), "user") || !fits(path, sizeof(c->pub.path), "path"))
        return NULL;
    c = mem__calloc(1, sizeof(*c));
    c->pub.id = F.next_conn_id++;
    set_field(c->pub.tenant, sizeof(c->pub.tenant), tenant);
    set_field(c->pub.user, sizeof(c->pub.user), user);
    set_field(c->pub.path, sizeof(c->pub.path), path);
    set_field(c->pub.remote, sizeof(c->pub.remote), "127.0.0.1");
    c->pub.metadata = mem__strdup("{}");
    c->pub.created_ms = F.now_ms;
    c->last_seen_ms = F.now_ms;
    if (F.plugin.desc.conn_state_size)
        c->pub.state = mem__calloc(1, F.plugin.desc.conn_state_size);
    F.conns = mem__realloc(F.conns, (F.n_conns + 1) * sizeof(*F.conns));
    F.conns[F.n_conns++] = c;
    return &c->pub;
}

wshub_conn_t *fake_host__handle(fake_conn_t *c)
{
    return c ? conn_of(c) : NULL;
}

/* CONN_CLOSE hooks (every hook runs), then the connection leaves its groups and its state. */
void fake_host__conn_drop(fake_conn_t *fc, uint16_t code)
{
    struct wshub_conn *c = conn_of(fc);
    wshub_ev_close_t ev;

    if (!fc || c->dropped)
        return;
    ev = (wshub_ev_close_t){c, code, fc->closed ? fc->close_reason : ""};
    for (size_t i = 0; i < F.hooks[WSHUB_EV_CONN_CLOSE].n; i++) {
        hook_t *h = &F.hooks[WSHUB_EV_CONN_CLOSE].v[i];
        h->cb(WSHUB_EV_CONN_CLOSE, &ev, h->ud);
    }
    groups_leave_all(c);
    c->dropped = true;
    free(fc->state);
    fc->state = NULL;
}

void fake_host__conn_clear_out(fake_conn_t *c)
{
    if (!c)
        return;
    for (size_t i = 0; i < c->n_out; i++) {
        free(c->out[i]);
        c->out[i] = NULL;
    }
    c->n_out = 0;
}

const char *fake_host__last_out(const fake_conn_t *c)
{
    return c && c->n_out ? c->out[c->n_out - 1] : NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Events                                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* The core's default subprotocol on the JSON path: the first wshub protocol the client offered. */
static int pick_wshub_proto(void *ud, const char *tok, size_t len)
{
    char *out = ud;

    if ((len == 8 && memcmp(tok, "wshub.v1", 8) == 0) ||
        (len == 14 && memcmp(tok, "wshub.v1.batch", 14) == 0)) {
        memcpy(out, tok, len);
        out[len] = '\0';
        return 1;
    }
    return 0;
}

/*
 * The AUTH chain as core/conn.c runs it: the first hook that does not defer decides (OK
 * accepts, < 0 denies), all deferring accepts. A denial's status is the hook's when it is
 * 400..599, else 403, and its reason defaults to the status text. On acceptance on the JSON
 * path, when no hook chose a subprotocol, the first offered wshub.* protocol is selected.
 */
int fake_host__fire_auth(fake_conn_t *fc, const char *path, const char *query,
                         const wshub_header_t *headers, size_t n_headers, int *status,
                         const char **reason)
{
    struct wshub_conn *c = conn_of(fc);
    wshub_ev_auth_t ev;
    int rc = WSHUB_OK;

    if (!fc || c->dropped)
        return WSHUB_ERR_STATE;
    if (path) {
        if (!fits(path, sizeof(fc->path), "path"))
            return WSHUB_ERR_LIMIT;
        set_field(fc->path, sizeof(fc->path), path);
    }
    ev = (wshub_ev_auth_t){c,          fc->path, query, headers, headers ? n_headers : 0,
                           fc->remote, 403,      NULL};
    c->headers = ev.headers;
    c->n_headers = ev.n_headers;
    fc->in_auth = true;
    for (size_t i = 0; i < F.hooks[WSHUB_EV_AUTH].n; i++) {
        hook_t *h = &F.hooks[WSHUB_EV_AUTH].v[i];
        int r = h->cb(WSHUB_EV_AUTH, &ev, h->ud);
        if (r == WSHUB_DEFER)
            continue;
        rc = r < 0 ? r : WSHUB_OK;
        break;
    }
    fc->in_auth = false;
    if (rc == WSHUB_OK && !fc->subprotocol[0] && !raw_path_of(c)) {
        for (size_t i = 0; i < c->n_headers; i++)
            if (c->headers[i].name && c->headers[i].value &&
                strcasecmp(c->headers[i].name, "sec-websocket-protocol") == 0 &&
                ws_handshake__each_token(c->headers[i].value, pick_wshub_proto, fc->subprotocol) >
                    0)
                break;
    }
    c->headers = NULL;
    c->n_headers = 0;
    if (rc == WSHUB_OK) {
        if (status)
            *status = 101;
        if (reason)
            *reason = NULL;
    } else {
        int st = ev.status >= 400 && ev.status <= 599 ? ev.status : 403;
        if (status)
            *status = st;
        if (reason)
            *reason = ev.reason ? ev.reason : ws_handshake__status_text(st);
    }
    return rc;
}

static const route_t *raw_path_of(const struct wshub_conn *c)
{
    return route_find(F.paths, F.n_paths, c->pub.path);
}

/* The welcome of core/router.c, with the WELCOME hooks' fields appended. */
static void send_welcome(struct wshub_conn *c)
{
    strbuf_t b;
    wshub_ev_welcome_t ev;

    strbuf__init(&b);
    strbuf__printf(&b,
                   "{\"type\":\"welcome\",\"connection_id\":%" PRIu64 ",\"server_time\":%" PRIu64
                   ",\"heartbeat\":%u,\"protocol\":\"wshub.v1\",\"tenant_id\":",
                   c->pub.id, F.now_ms, FAKE_HEARTBEAT_MS);
    strbuf__json_str(&b, c->pub.tenant, strlen(c->pub.tenant));
    strbuf__adds(&b, ",\"user_id\":");
    strbuf__json_str(&b, c->pub.user, strlen(c->pub.user));
    ev = (wshub_ev_welcome_t){c, &b};
    F.welcome = &b;
    for (size_t i = 0; i < F.hooks[WSHUB_EV_WELCOME].n; i++) {
        hook_t *h = &F.hooks[WSHUB_EV_WELCOME].v[i];
        h->cb(WSHUB_EV_WELCOME, &ev, h->ud);
    }
    F.welcome = NULL;
    strbuf__add(&b, "}", 1);
    outbox_push_strbuf(c, &b);
}

/*
 * CONN_OPEN hooks (every hook runs, results ignored), then on the JSON path the welcome message
 * built by the WELCOME hooks is recorded in the outbox, as the real core sends it. Raw paths get
 * no welcome.
 */
int fake_host__fire_open(fake_conn_t *fc)
{
    struct wshub_conn *c = conn_of(fc);
    wshub_ev_conn_t ev;

    if (!fc || c->dropped)
        return WSHUB_ERR_STATE;
    ev = (wshub_ev_conn_t){c};
    for (size_t i = 0; i < F.hooks[WSHUB_EV_CONN_OPEN].n; i++) {
        hook_t *h = &F.hooks[WSHUB_EV_CONN_OPEN].v[i];
        h->cb(WSHUB_EV_CONN_OPEN, &ev, h->ud);
    }
    if (!raw_path_of(c) && conn_live(c))
        send_welcome(c);
    return WSHUB_OK;
}

int fake_host__fire_tick(uint64_t now_ms)
{
    wshub_ev_tick_t ev = {now_ms};

    for (size_t i = 0; i < F.hooks[WSHUB_EV_TICK].n; i++) {
        hook_t *h = &F.hooks[WSHUB_EV_TICK].v[i];
        h->cb(WSHUB_EV_TICK, &ev, h->ud);
    }
    return WSHUB_OK;
}

/*
 * MESSAGE_IN hooks, then the handler; the replies of core/router.c's run_handler: a hook's
 * denial with an error_code answers `error` ("message refused") on JSON paths, a handler's
 * negative result answers `error` with the mapped code and the type as message.
 */
static int run_handler(struct wshub_conn *c, const wshub_msg_t *m, wshub_msg_cb cb, void *ud,
                       bool json)
{
    wshub_ev_message_t ev = {c, m, NULL};
    int rc;

    for (size_t i = 0; i < F.hooks[WSHUB_EV_MESSAGE_IN].n; i++) {
        hook_t *h = &F.hooks[WSHUB_EV_MESSAGE_IN].v[i];
        rc = h->cb(WSHUB_EV_MESSAGE_IN, &ev, h->ud);
        if (rc < 0) {
            if (ev.error_code && json && conn_live(c))
                send_error(c, m->id, ev.error_code, "message refused");
            return WSHUB_ERR_DENIED;
        }
    }
    if (!conn_live(c))
        return WSHUB_ERR_STATE;
    rc = cb(c, m, ud);
    if (rc < 0 && json && conn_live(c))
        send_error(c, m->id, rc_code(rc), "%s", m->type ? m->type : "");
    return rc;
}

/* The core's own `ping` handler. */
static int core_ping(wshub_conn_t *c, const wshub_msg_t *m, void *ud)
{
    strbuf_t b;

    (void)ud;
    strbuf__init(&b);
    strbuf__adds(&b, "{\"type\":\"pong\"");
    if (m->id) {
        strbuf__adds(&b, ",\"id\":");
        strbuf__adds(&b, m->id);
    }
    strbuf__printf(&b, ",\"server_time\":%" PRIu64 "}", F.now_ms);
    return outbox_push_strbuf(c, &b);
}

/* The envelope parse of core/router.c: same checks, same error codes and texts. */
static int deliver_json(struct wshub_conn *c, const char *data, size_t len)
{
    struct json_object *env, *jtype, *jid;
    const char *type, *id = NULL;
    const route_t *r;
    wshub_msg_t m;
    int rc;

    env = parse_json(data, len, false);
    if (!env) {
        send_error(c, NULL, "bad_json", "message is not valid JSON");
        return WSHUB_ERR_INVAL;
    }
    if (!json_object_is_type(env, json_type_object)) {
        json_object_put(env);
        send_error(c, NULL, "bad_json", "message must be a JSON object");
        return WSHUB_ERR_INVAL;
    }
    if (json_object_object_get_ex(env, "id", &jid) && jid) {
        enum json_type t = json_object_get_type(jid);
        if (t != json_type_string && t != json_type_int && t != json_type_double) {
            json_object_put(env);
            send_error(c, NULL, "bad_json", "\"id\" must be a string or a number");
            return WSHUB_ERR_INVAL;
        }
        id = json_object_to_json_string_ext(jid, JSON_C_TO_STRING_PLAIN |
                                                     JSON_C_TO_STRING_NOSLASHESCAPE);
        if (strlen(id) > FAKE_MAX_ID_LEN) {
            json_object_put(env);
            send_error(c, NULL, "bad_json", "\"id\" is longer than %d bytes", FAKE_MAX_ID_LEN);
            return WSHUB_ERR_INVAL;
        }
    }
    if (!json_object_object_get_ex(env, "type", &jtype) ||
        !json_object_is_type(jtype, json_type_string)) {
        send_error(c, id, "bad_json", "message has no string \"type\"");
        json_object_put(env);
        return WSHUB_ERR_INVAL;
    }
    type = json_object_get_string(jtype);
    m = (wshub_msg_t){type, id, data, len, false};
    if (strcmp(type, "ping") == 0) {
        rc = run_handler(c, &m, core_ping, NULL, true);
    } else if ((r = route_find(F.routes, F.n_routes, type))) {
        rc = run_handler(c, &m, r->cb, r->ud, true);
    } else {
        char shown[FAKE_MAX_TYPE_LEN + 1];
        size_t n = strlen(type);
        if (n > FAKE_MAX_TYPE_LEN) {
            n = FAKE_MAX_TYPE_LEN;
            while (n > 0 && ((unsigned char)type[n] & 0xC0) == 0x80)
                n--;
        }
        memcpy(shown, type, n);
        shown[n] = '\0';
        send_error(c, id, "unknown_type", "unknown message type \"%s\"", shown);
        rc = WSHUB_ERR_NOTFOUND;
    }
    json_object_put(env);
    return rc;
}

/*
 * One client message. The handler gets its own NUL-terminated heap copy, freed when it returns,
 * so a plugin that keeps the borrowed pointer is caught by ASan instead of reading test data.
 */
static int deliver(fake_conn_t *fc, const void *data, size_t len, bool is_binary)
{
    struct wshub_conn *c = conn_of(fc);
    const route_t *raw;
    char *copy;
    int rc;

    if (!fc || !conn_live(c))
        return WSHUB_ERR_STATE;
    if (!data && len)
        return WSHUB_ERR_INVAL;
    c->last_seen_ms = F.now_ms;
    copy = mem__alloc(len + 1);
    if (len)
        memcpy(copy, data, len);
    copy[len] = '\0';
    raw = raw_path_of(c);
    if (raw) {
        wshub_msg_t m = {NULL, NULL, copy, len, is_binary};
        rc = run_handler(c, &m, raw->cb, raw->ud, false);
    } else if (is_binary) {
        send_error(c, NULL, "unsupported", "binary messages are not accepted here");
        rc = WSHUB_ERR_INVAL;
    } else {
        rc = deliver_json(c, copy, len);
    }
    free(copy);
    return rc;
}

int fake_host__deliver(fake_conn_t *c, const char *text)
{
    return deliver(c, text, text ? strlen(text) : 0, false);
}

int fake_host__deliver_binary(fake_conn_t *c, const void *data, size_t len)
{
    return deliver(c, data, len, true);
}

/* ------------------------------------------------------------------------------------------ */
/* The fake loop                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* Runs every posted callback, including those posted by the callbacks themselves. */
static void run_posts(void)
{
    for (;;) {
        post_item_t *p;
        pthread_mutex_lock(&F.lock);
        p = F.post_head;
        if (p) {
            F.post_head = p->next;
            if (!F.post_head)
                F.post_tail = NULL;
        }
        pthread_mutex_unlock(&F.lock);
        if (!p)
            return;
        p->cb(p->ud);
        free(p);
    }
}

/* The next timer due at or before `limit`: earliest due time, then creation order. */
static struct wshub_timer *next_due(uint64_t limit)
{
    struct wshub_timer *best = NULL;

    for (struct wshub_timer *t = F.timers; t; t = t->next)
        if (t->due_ms <= limit && (!best || t->due_ms < best->due_ms ||
                                   (t->due_ms == best->due_ms && t->seq < best->seq)))
            best = t;
    return best;
}

/*
 * Moves the fake clock forward by `ms`, firing due timers in order with the clock at each
 * timer's due time (a 100 ms repeating timer fires 10 times in advance(1000)), running posted
 * callbacks before and after each timer, and the native event_base (if a plugin asked for it)
 * without blocking.
 */
void fake_host__advance(uint64_t ms)
{
    uint64_t target = ms > UINT64_MAX - F.now_ms ? UINT64_MAX : F.now_ms + ms;
    struct wshub_timer *t;

    run_posts();
    while ((t = next_due(target))) {
        if (t->due_ms > F.now_ms)
            F.now_ms = t->due_ms;
        t->running = true;
        t->cb(t->ud);
        t->running = false;
        if (t->deleted || !t->repeat)
            timer_unlink_free(t);
        else
            t->due_ms += t->interval_ms;
        run_posts();
    }
    F.now_ms = target;
    if (F.base)
        event_base_loop(F.base, EVLOOP_NONBLOCK);
    run_posts();
}

uint64_t fake_host__now(void)
{
    return F.now_ms;
}

/* ------------------------------------------------------------------------------------------ */
/* Inspection                                                                                  */
/* ------------------------------------------------------------------------------------------ */

bool fake_host__has_route(const char *type)
{
    return type && route_find(F.routes, F.n_routes, type) != NULL;
}

bool fake_host__has_path(const char *path)
{
    return path && route_find(F.paths, F.n_paths, path) != NULL;
}

const void *fake_host__service(const char *name, uint32_t min_version)
{
    const service_t *s = name ? service_find(name) : NULL;
    return s && s->version >= min_version ? s->vtable : NULL;
}

size_t fake_host__n_logs(void)
{
    size_t n;

    pthread_mutex_lock(&F.lock);
    n = F.n_logs;
    pthread_mutex_unlock(&F.lock);
    return n;
}

const char *fake_host__log_at(size_t i)
{
    const char *s;

    pthread_mutex_lock(&F.lock);
    s = i < F.n_logs ? F.logs[i] : NULL;
    pthread_mutex_unlock(&F.lock);
    return s;
}

bool fake_host__log_contains(const char *needle)
{
    bool found = false;

    if (!needle)
        return false;
    pthread_mutex_lock(&F.lock);
    for (size_t i = 0; i < F.n_logs && !found; i++)
        found = strstr(F.logs[i], needle) != NULL;
    pthread_mutex_unlock(&F.lock);
    return found;
}

/* NAN for a metric the plugin never registered (a typo in a test fails loudly); 0 for a
 * registered metric whose series was never touched. */
double fake_host__metric(const char *name, const char *const *labels)
{
    wshub_metric_t *m = name ? metric_find(name) : NULL;
    series_t *s;

    if (!m)
        return NAN;
    s = series_get(m, labels, false);
    if (!s)
        return 0;
    return m->kind == WSHUB_METRIC_HISTOGRAM ? (double)s->count : s->value;
}
