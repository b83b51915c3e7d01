/*
 * plugin_host: the one wshub_host_api_t instance. Each slot is a thin adapter to a core module;
 * the adapters enforce what the ABI promises (registration only in init, tenant scope, identity
 * only during AUTH) so the modules below can stay simple.
 */
#include "plugin_host.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "buf.h"
#include "config.h"
#include "conn.h"
#include "group.h"
#include "hooks.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "plugin_loader.h"
#include "router.h"
#include "server.h"
#include "timer.h"
#include "ws_frame.h"

#define MAX_ROLES        64
#define MAX_IDENT_LEN    256
#define MAX_METADATA_LEN 16384

const char *plugin_host__rc_code(int rc)
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

/* --- logging and errors --------------------------------------------------------------------- */

static void h_log(wshub_plugin_t *self, int level, const char *fmt, ...)
{
    char comp[80];
    va_list ap;

    snprintf(comp, sizeof(comp), "plugin:%s", self ? self->name : "?");
    va_start(ap, fmt);
    log__vwrite(level, comp, fmt, ap);
    va_end(ap);
}

static void h_set_error(wshub_plugin_t *self, const char *fmt, ...)
{
    va_list ap;

    if (!self)
        return;
    va_start(ap, fmt);
    vsnprintf(self->error, sizeof(self->error), fmt, ap);
    va_end(ap);
}

const char *plugin_host__strerror(int rc)
{
    switch (rc) {
    case WSHUB_OK:
        return "WSHUB_OK";
    case WSHUB_DEFER:
        return "WSHUB_DEFER";
    case WSHUB_PENDING:
        return "WSHUB_PENDING";
    case WSHUB_ERR:
        return "WSHUB_ERR (failure)";
    case WSHUB_ERR_NOMEM:
        return "WSHUB_ERR_NOMEM (out of memory)";
    case WSHUB_ERR_INVAL:
        return "WSHUB_ERR_INVAL (invalid argument)";
    case WSHUB_ERR_NOTFOUND:
        return "WSHUB_ERR_NOTFOUND (not found)";
    case WSHUB_ERR_EXISTS:
        return "WSHUB_ERR_EXISTS (already exists)";
    case WSHUB_ERR_DENIED:
        return "WSHUB_ERR_DENIED (denied)";
    case WSHUB_ERR_STATE:
        return "WSHUB_ERR_STATE (not allowed now)";
    case WSHUB_ERR_IO:
        return "WSHUB_ERR_IO (I/O error)";
    case WSHUB_ERR_LIMIT:
        return "WSHUB_ERR_LIMIT (limit reached)";
    default:
        return "unknown error";
    }
}

/* --- registration --------------------------------------------------------------------------- */

static int outside_init(wshub_plugin_t *self, const char *what)
{
    log__write(WSHUB_LOG_ERR, "core", "plugin %s: %s called outside init (WSHUB_ERR_STATE)",
               self ? self->name : "?", what);
    return WSHUB_ERR_STATE;
}

static int h_hook_add(wshub_plugin_t *self, wshub_event_t ev, int prio, wshub_hook_cb cb, void *ud)
{
    if (!plugin_loader__in_init(self))
        return outside_init(self, "hook_add");
    return hooks__add(self, ev, prio, cb, ud);
}

static int h_route_add(wshub_plugin_t *self, const char *type, wshub_msg_cb cb, void *ud)
{
    if (!plugin_loader__in_init(self))
        return outside_init(self, "route_add");
    return router__route_add(self, type, cb, ud);
}

static int h_path_add(wshub_plugin_t *self, const char *path, wshub_msg_cb cb, void *ud)
{
    if (!plugin_loader__in_init(self))
        return outside_init(self, "path_add");
    return router__path_add(self, path, cb, ud);
}

static int h_service_put(wshub_plugin_t *self, const char *name, uint32_t ver, const void *vt)
{
    if (!plugin_loader__in_init(self))
        return outside_init(self, "service_put");
    return plugin_loader__service_put(self, name, ver, vt);
}

static const void *h_service_get(wshub_plugin_t *self, const char *name, uint32_t min_ver)
{
    (void)self;
    return plugin_loader__service_get(name, min_ver);
}

/* --- configuration -------------------------------------------------------------------------- */

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
    return node && node->kind != WSHUB_CFG_SCALAR && i < node->n ? node->items[i] : NULL;
}

static const char *h_cfg_key_at(const wshub_cfg_t *node, size_t i)
{
    return node && node->kind == WSHUB_CFG_MAP && i < node->n ? node->keys[i] : NULL;
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

/* --- connections ---------------------------------------------------------------------------- */

static uint64_t h_conn_id(const wshub_conn_t *c)
{
    return c ? c->id : 0;
}

static bool system_scope(const wshub_plugin_t *self)
{
    return self && (self->desc.flags & WSHUB_PLUGIN_SYSTEM_SCOPE);
}

/* A connection is visible to a caller acting for `tenant` only when it is in that tenant. */
static wshub_conn_t *h_conn_lookup(wshub_plugin_t *self, const char *tenant, uint64_t id)
{
    wshub_conn_t *c = conn__by_id(id);

    if (!c || !conn__is_live(c))
        return NULL;
    if (!tenant)
        return system_scope(self) ? c : NULL;
    return strcmp(c->tenant->name, tenant) == 0 ? c : NULL;
}

/* Iterates a dlist of connections safely against the callback closing its own connection
 * (closing is deferred, so the list does not change under us). */
static int h_conn_each_user(wshub_plugin_t *self, const char *tenant, const char *user,
                            wshub_conn_iter_cb cb, void *ud)
{
    if (!user || !cb)
        return WSHUB_ERR_INVAL;
    if (!tenant) {
        if (!system_scope(self))
            return WSHUB_ERR_DENIED;
        /* Every tenant: walk all connections (rare, system plugins only). */
        for (dlist_t *it = g_srv.all.next; it != &g_srv.all; it = it->next) {
            wshub_conn_t *c = DLIST_ENTRY(it, wshub_conn_t, link_all);
            if (conn__is_live(c) && c->user && strcmp(c->user->name, user) == 0) {
                int rc = cb(c, ud);
                if (rc)
                    return rc;
            }
        }
        return WSHUB_OK;
    }
    tenant_t *t = conn__tenant(tenant);
    user_t *u = t ? strmap__get(&t->users, user) : NULL;
    if (!u)
        return WSHUB_OK;
    for (dlist_t *it = u->conns.next; it != &u->conns; it = it->next) {
        wshub_conn_t *c = DLIST_ENTRY(it, wshub_conn_t, link_user);
        if (conn__is_live(c)) {
            int rc = cb(c, ud);
            if (rc)
                return rc;
        }
    }
    return WSHUB_OK;
}

static int h_conn_each(wshub_plugin_t *self, const char *tenant, wshub_conn_iter_cb cb, void *ud)
{
    if (!cb)
        return WSHUB_ERR_INVAL;
    if (!tenant) {
        if (!system_scope(self))
            return WSHUB_ERR_DENIED;
        for (dlist_t *it = g_srv.all.next; it != &g_srv.all; it = it->next) {
            wshub_conn_t *c = DLIST_ENTRY(it, wshub_conn_t, link_all);
            if (conn__is_live(c)) {
                int rc = cb(c, ud);
                if (rc)
                    return rc;
            }
        }
        return WSHUB_OK;
    }
    tenant_t *t = conn__tenant(tenant);
    if (!t)
        return WSHUB_OK;
    for (dlist_t *it = t->conns.next; it != &t->conns; it = it->next) {
        wshub_conn_t *c = DLIST_ENTRY(it, wshub_conn_t, link_tenant);
        if (conn__is_live(c)) {
            int rc = cb(c, ud);
            if (rc)
                return rc;
        }
    }
    return WSHUB_OK;
}

/* During AUTH the tenant is not attached yet: c->tenant is set by set_identity. */
static const char *h_conn_tenant(const wshub_conn_t *c)
{
    return c->tenant ? c->tenant->name : "public";
}

static const char *h_conn_user(const wshub_conn_t *c)
{
    return c->user ? c->user->name : "";
}

static size_t h_conn_n_roles(const wshub_conn_t *c)
{
    return c->n_roles;
}

static const char *h_conn_role(const wshub_conn_t *c, size_t i)
{
    return i < c->n_roles ? c->roles[i] : NULL;
}

static const char *h_conn_metadata(const wshub_conn_t *c)
{
    return c->metadata ? c->metadata : "{}";
}

static const char *h_conn_remote_addr(const wshub_conn_t *c)
{
    return conn__remote((wshub_conn_t *)c);
}

static const char *h_conn_path(const wshub_conn_t *c)
{
    if (c->path)
        return c->path;
    return c->raw ? c->raw->path : g_srv.cfg->server.path;
}

static const char *h_conn_subprotocol(const wshub_conn_t *c)
{
    return c->subprotocol;
}

static uint64_t h_conn_created_ms(const wshub_conn_t *c)
{
    return c->created_ms;
}

static uint64_t h_conn_last_seen_ms(const wshub_conn_t *c)
{
    return c->last_seen_ms;
}

static bool valid_ident(const char *s, bool allow_empty)
{
    size_t n = s ? strlen(s) : 0;

    if (!s || (!allow_empty && n == 0) || n > MAX_IDENT_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/*
 * Identity: the tenant is attached right away (so limits can be checked after the AUTH chain);
 * the user is a placeholder carrying the name until the connection opens and joins the tenant's
 * user index (conn.c attach_identity).
 */
static int h_conn_set_identity(wshub_conn_t *c, const char *tenant, const char *user,
                               const char *const *roles, size_t n_roles, const char *metadata_json)
{
    if (!(c->flags & CONN_F_AUTH))
        return WSHUB_ERR_STATE;
    if (!valid_ident(tenant, false) || !valid_ident(user ? user : "", true) ||
        n_roles > MAX_ROLES || (n_roles && !roles))
        return WSHUB_ERR_INVAL;
    for (size_t i = 0; i < n_roles; i++)
        if (!valid_ident(roles[i], false))
            return WSHUB_ERR_INVAL;
    if (metadata_json) {
        struct json_object *o;
        if (strlen(metadata_json) > MAX_METADATA_LEN)
            return WSHUB_ERR_INVAL;
        o = json_tokener_parse(metadata_json);
        bool ok = o && json_object_is_type(o, json_type_object);
        json_object_put(o);
        if (!ok)
            return WSHUB_ERR_INVAL;
    }
    /* Replace any earlier identity set in this same AUTH chain. */
    if (c->user) {
        free(c->user->name);
        free(c->user);
        c->user = NULL;
    }
    for (uint16_t i = 0; i < c->n_roles; i++)
        free(c->roles[i]);
    free(c->roles);
    c->roles = NULL;
    c->n_roles = 0;
    free(c->metadata);
    c->metadata = NULL;

    if (c->tenant && strcmp(c->tenant->name, tenant) != 0) {
        tenant_t *old = c->tenant;
        c->tenant = NULL;
        conn__tenant_release(old);
    }
    if (!c->tenant)
        c->tenant = conn__tenant_get(tenant);
    if (user && *user) {
        user_t *u = mem__calloc(1, sizeof(*u));
        u->name = mem__strdup(user);
        c->user = u;
    }
    if (n_roles) {
        c->roles = mem__alloc(n_roles * sizeof(char *));
        for (size_t i = 0; i < n_roles; i++)
            c->roles[i] = mem__strdup(roles[i]);
        c->n_roles = (uint16_t)n_roles;
    }
    if (metadata_json)
        c->metadata = mem__strdup(metadata_json);
    return WSHUB_OK;
}

static int h_conn_set_subprotocol(wshub_conn_t *c, const char *protocol)
{
    if (!(c->flags & CONN_F_AUTH))
        return WSHUB_ERR_STATE;
    if (!protocol || !*protocol || strlen(protocol) > 128 || strpbrk(protocol, " ,;\r\n\t\"") ||
        !conn__protocol_offered(c, protocol))
        return WSHUB_ERR_INVAL;
    free(c->subprotocol);
    c->subprotocol = mem__strdup(protocol);
    return WSHUB_OK;
}

static void *h_conn_state(wshub_conn_t *c, wshub_plugin_t *self)
{
    if (!c || !self || !self->desc.conn_state_size || !c->pstate)
        return NULL;
    return (char *)c->pstate + self->state_off;
}

static int h_conn_send(wshub_conn_t *c, wshub_buf_t *b)
{
    if (!c || !b)
        return WSHUB_ERR_INVAL;
    return conn__send(c, b);
}

static int h_conn_send_text(wshub_conn_t *c, const char *data, size_t len)
{
    if (!c || (!data && len))
        return WSHUB_ERR_INVAL;
    return conn__send_data(c, WS_OP_TEXT, data, len);
}

static void h_conn_close(wshub_conn_t *c, uint16_t code, const char *reason)
{
    /* Codes a server may send: 1000-1003, 1007-1014, 3000-4999. */
    if (!ws_frame__close_code_valid(code))
        code = WS_CLOSE_POLICY;
    conn__close(c, code, reason);
}

/* --- protocol helpers ----------------------------------------------------------------------- */

static int h_send_ack(wshub_conn_t *c, const char *id_json, const char *fields_json)
{
    return router__send_ack(c, id_json, fields_json);
}

static int h_send_error(wshub_conn_t *c, const char *id_json, const char *code, const char *fmt,
                        ...)
{
    va_list ap;
    int rc;

    if (!code)
        return WSHUB_ERR_INVAL;
    va_start(ap, fmt);
    rc = router__send_errorv(c, id_json, code, fmt, ap);
    va_end(ap);
    return rc;
}

static int h_welcome_add(wshub_ev_welcome_t *ev, const char *key, const char *json)
{
    return router__welcome_add(ev, key, json);
}

/* --- buffers -------------------------------------------------------------------------------- */

static wshub_buf_t *h_buf_new(const void *data, size_t len)
{
    return buf__new(WS_OP_TEXT, data, len);
}

static wshub_buf_t *h_buf_new_binary(const void *data, size_t len)
{
    return buf__new(WS_OP_BINARY, data, len);
}

static wshub_buf_t *h_buf_ref(wshub_buf_t *b)
{
    return b ? buf__ref(b) : NULL;
}

static void h_buf_unref(wshub_buf_t *b)
{
    buf__unref(b);
}

static const void *h_buf_data(const wshub_buf_t *b, size_t *len)
{
    if (len)
        *len = b->len;
    return b->data + WS_FRAME_MAX_HEADER;
}

/* --- groups --------------------------------------------------------------------------------- */

static wshub_group_t *h_group_new(wshub_plugin_t *self, const char *tenant)
{
    if (!tenant)
        return system_scope(self) ? group__new(self, NULL) : NULL;
    if (!*tenant)
        return NULL;
    return group__new(self, tenant);
}

static void h_group_free(wshub_group_t *g)
{
    group__free(g);
}

static int h_group_add(wshub_group_t *g, wshub_conn_t *c)
{
    if (!g || !c)
        return WSHUB_ERR_INVAL;
    return group__add(g, c);
}

static int h_group_remove(wshub_group_t *g, wshub_conn_t *c)
{
    if (!g || !c)
        return WSHUB_ERR_INVAL;
    return group__remove(g, c);
}

static bool h_group_has(const wshub_group_t *g, const wshub_conn_t *c)
{
    return g && c && group__has(g, c);
}

static size_t h_group_size(const wshub_group_t *g)
{
    return g ? g->n : 0;
}

static size_t h_group_send(wshub_group_t *g, wshub_buf_t *b, const wshub_conn_t *except)
{
    return g && b ? group__send(g, b, except) : 0;
}

static int h_group_each(const wshub_group_t *g, wshub_conn_iter_cb cb, void *ud)
{
    return g && cb ? group__each(g, cb, ud) : WSHUB_ERR_INVAL;
}

/* --- timers and loop ------------------------------------------------------------------------ */

static wshub_timer_t *h_timer_add(wshub_plugin_t *self, uint64_t ms, bool repeat, wshub_timer_cb cb,
                                  void *ud)
{
    return timer__add(self, ms, repeat, cb, ud);
}

static void h_timer_del(wshub_timer_t *t)
{
    timer__del(t);
}

static int h_post(wshub_plugin_t *self, void (*cb)(void *), void *ud)
{
    return timer__post(self, cb, ud);
}

static void *h_loop_native(wshub_plugin_t *self)
{
    (void)self;
    return g_srv.base;
}

static void h_stopped(wshub_plugin_t *self)
{
    if (self && self->phase == PLUGIN_STOPPING)
        self->phase = PLUGIN_STOPPED;
}

static uint64_t h_now_ms(void)
{
    return server__now_ms();
}

/* --- metrics -------------------------------------------------------------------------------- */

static wshub_metric_t *h_metric_new(wshub_plugin_t *self, const wshub_metric_def_t *def)
{
    if (!plugin_loader__in_init(self)) {
        outside_init(self, "metric_new");
        return NULL;
    }
    if (!def)
        return NULL;
    return metrics__new_family(g_srv.metrics, def, self);
}

static void h_metric_add(wshub_metric_t *m, const char *const *labels, double v)
{
    if (m)
        metrics__add(m, labels, v);
}

static void h_metric_set(wshub_metric_t *m, const char *const *labels, double v)
{
    if (m)
        metrics__set(m, labels, v);
}

static void h_metric_observe(wshub_metric_t *m, const char *const *labels, double v)
{
    if (m)
        metrics__observe(m, labels, v);
}

static const wshub_host_api_t g_api = {
    .abi_major = WSHUB_SDK_ABI_MAJOR,
    .abi_minor = WSHUB_SDK_ABI_MINOR,
    .struct_size = sizeof(wshub_host_api_t),
    .log = h_log,
    .set_error = h_set_error,
    .strerror = plugin_host__strerror,
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

const wshub_host_api_t *plugin_host__api(void)
{
    return &g_api;
}
