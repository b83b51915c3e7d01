/*
 * auth_jwt: identity at the WebSocket upgrade from a JSON Web Token.
 *
 * At WSHUB_EV_AUTH the plugin finds the token (Authorization: Bearer, the `token` query
 * parameter, or a `bearer.<jwt>` Sec-WebSocket-Protocol entry), verifies it (see
 * auth_jwt_token.c) and gives the connection its immutable identity: tenant, user, roles and
 * metadata from the configured claims. A refused upgrade is answered 401 with a short reason
 * and counted in wshub_auth_failures_total{reason}.
 *
 * A token expires while its connection is open, so the plugin keeps each connection's expiry
 * and closes it (error `token_expired`, close code 4001) once exp + leeway has passed, unless
 * the client sent a fresh token with `auth.refresh` first. Expiries live in a min-heap keyed by
 * time, so the once-per-second tick looks only at the connections that are due instead of
 * scanning all of them. The heap entries point at the connections' plugin state (host-owned,
 * valid from CONN_OPEN until after CONN_CLOSE): entries are added at CONN_OPEN and removed at
 * CONN_CLOSE, never earlier or later, so the pointers are always live. A connection refused
 * after the AUTH chain (tenant limit, origin) never reaches CONN_OPEN and is never in the heap.
 *
 * The plugin is reloadable: SIGHUP re-reads the options, the secret and the key files (JWKS
 * rotation); a bad new configuration keeps the old one. Identities of open connections never
 * change; a new leeway applies to their expiry at once.
 *
 * Tokens are never logged, at any level.
 */
#include "auth_jwt.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

/* At most this many expired connections are closed per tick; the rest wait for the next one,
 * so a mass expiry cannot stall the loop for long. */
#define EXPIRE_BUDGET_PER_TICK 4096u
/* The close code of a connection whose token expired (plugin range, docs/protocol.md §5). */
#define CLOSE_TOKEN_EXPIRED 4001

/* Per-connection state flags. */
enum {
    CF_AUTHED = 1u << 0,  /* identity came from a token this plugin verified */
    CF_HAS_EXP = 1u << 1, /* exp_ms is meaningful */
    CF_IN_HEAP = 1u << 2, /* heap_idx is meaningful */
};

/* The plugin's conn_state_size bytes (zeroed by the host). */
typedef struct ajwt_conn {
    int64_t exp_ms;
    size_t heap_idx;
    uint32_t flags;
} ajwt_conn_t;

/* One expiry: the connection's id and tenant (lookups are tenant-scoped) and its state. */
typedef struct heap_ent {
    int64_t exp_ms;
    uint64_t id;
    ajwt_conn_t *st;
    char *tenant;
} heap_ent_t;

typedef struct ajwt {
    const wshub_host_api_t *host;
    wshub_plugin_t *self;
    ajwt_conf_t *conf;
    heap_ent_t *heap;
    size_t n_heap, cap_heap;
    wshub_metric_t *m_failures; /* wshub_auth_failures_total{reason} */
    wshub_metric_t *m_success;  /* wshub_auth_success_total{source} */
    wshub_metric_t *m_refresh;  /* wshub_auth_refresh_total{result} */
    wshub_metric_t *m_expired;  /* wshub_auth_expired_total */
} ajwt_t;

static const wshub_opt_t ajwt_options[] = {
    {"require_auth", WSHUB_OPT_BOOL, "true", false,
     "refuse upgrades without a token (false: anonymous connections in tenant 'public')"},
    {"algorithms", WSHUB_OPT_LIST, "[HS256]", false,
     "accepted token algorithms: HS256/384/512, RS256/384/512, ES256/384/512 (never none)"},
    {"secret", WSHUB_OPT_STRING, NULL, false,
     "HMAC secret for HS* (prefer secret_file or secret_env)"},
    {"secret_file", WSHUB_OPT_STRING, NULL, false,
     "file holding the HMAC secret (trailing newline ignored)"},
    {"secret_env", WSHUB_OPT_STRING, NULL, false,
     "name of the environment variable holding the HMAC secret"},
    {"public_key_file", WSHUB_OPT_STRING, NULL, false,
     "PEM public key or certificate for RS*/ES* tokens"},
    {"jwks_file", WSHUB_OPT_STRING, NULL, false,
     "JSON Web Key Set file (RSA/EC keys chosen by kid); re-read on SIGHUP"},
    {"issuer", WSHUB_OPT_STRING, NULL, false, "required value of the iss claim (unset: any)"},
    {"audience", WSHUB_OPT_STRING, NULL, false,
     "value the aud claim must contain (unset: not checked)"},
    {"leeway", WSHUB_OPT_DURATION, "0s", false,
     "clock skew allowed on exp, nbf and iat (at most 1h)"},
    {"tenant_claim", WSHUB_OPT_STRING, "tenant_id", false, "claim holding the tenant id"},
    {"user_claim", WSHUB_OPT_STRING, "sub", false, "claim holding the user id"},
    {"roles_claim", WSHUB_OPT_STRING, "roles", false,
     "claim holding the roles: array of strings or space/comma separated string (\"\": off)"},
    {"metadata_claim", WSHUB_OPT_STRING, "meta", false,
     "claim holding the connection metadata, a JSON object (\"\": off)"},
    {"dev_path_identity", WSHUB_OPT_BOOL, "false", false,
     "INSECURE, development only: without a token, identity from <dev_path_prefix>/<tenant>/"
     "<user>; needs require_auth: false"},
    {"dev_path_prefix", WSHUB_OPT_STRING, "/ws", false,
     "path prefix for dev_path_identity (the server's JSON path)"},
    {NULL, 0, NULL, false, NULL},
};

static const char *const failure_labels[] = {"reason"};
static const char *const success_labels[] = {"source"};
static const char *const refresh_labels[] = {"result"};

/* ------------------------------------------------------------------------------------------ */
/* The expiry heap                                                                             */
/* ------------------------------------------------------------------------------------------ */

/* Places an entry at index i and tells its connection where it is. */
static void heap_place(ajwt_t *a, size_t i, heap_ent_t e)
{
    a->heap[i] = e;
    e.st->heap_idx = i;
}

static void heap_sift_up(ajwt_t *a, size_t i)
{
    heap_ent_t e = a->heap[i];

    while (i > 0) {
        size_t p = (i - 1) / 2;
        if (a->heap[p].exp_ms <= e.exp_ms)
            break;
        heap_place(a, i, a->heap[p]);
        i = p;
    }
    heap_place(a, i, e);
}

static void heap_sift_down(ajwt_t *a, size_t i)
{
    heap_ent_t e = a->heap[i];

    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= a->n_heap)
            break;
        if (c + 1 < a->n_heap && a->heap[c + 1].exp_ms < a->heap[c].exp_ms)
            c++;
        if (a->heap[c].exp_ms >= e.exp_ms)
            break;
        heap_place(a, i, a->heap[c]);
        i = c;
    }
    heap_place(a, i, e);
}

/* Restores the order around index i after its key changed (either direction). */
static void heap_fix(ajwt_t *a, size_t i)
{
    if (i > 0 && a->heap[i].exp_ms < a->heap[(i - 1) / 2].exp_ms)
        heap_sift_up(a, i);
    else
        heap_sift_down(a, i);
}

/* Adds a connection's expiry; the heap takes `tenant` (malloc'd). @return false when out of
 * memory (then the caller still owns tenant). */
static bool heap_push(ajwt_t *a, ajwt_conn_t *st, uint64_t id, int64_t exp_ms, char *tenant)
{
    if (a->n_heap == a->cap_heap) {
        size_t cap = a->cap_heap ? a->cap_heap * 2 : 64;
        heap_ent_t *v = realloc(a->heap, cap * sizeof(*v));
        if (!v)
            return false;
        a->heap = v;
        a->cap_heap = cap;
    }
    a->heap[a->n_heap] = (heap_ent_t){exp_ms, id, st, tenant};
    st->flags |= CF_IN_HEAP;
    heap_sift_up(a, a->n_heap++);
    return true;
}

/*
 * Removes entry i and returns its tenant to the caller (to free, or to use for a lookup first).
 * Shrinks the array after a mass disconnect so its memory follows the number of connections.
 */
static char *heap_remove(ajwt_t *a, size_t i)
{
    heap_ent_t e = a->heap[i];

    e.st->flags &= ~(uint32_t)CF_IN_HEAP;
    a->n_heap--;
    if (i < a->n_heap) {
        heap_place(a, i, a->heap[a->n_heap]);
        heap_fix(a, i);
    }
    if (a->cap_heap > 256 && a->n_heap < a->cap_heap / 4) {
        heap_ent_t *v = realloc(a->heap, (a->cap_heap / 2) * sizeof(*v));
        if (v) {
            a->heap = v;
            a->cap_heap /= 2;
        }
    }
    return e.tenant;
}

/*
 * Sets or clears the tracked expiry of an open connection (after a refresh). A new entry needs
 * the tenant for the later lookup. @return false when out of memory.
 */
static bool track_expiry(ajwt_t *a, wshub_conn_t *c, ajwt_conn_t *st, bool has_exp, int64_t exp_ms)
{
    const wshub_host_api_t *host = a->host;

    if (!has_exp) {
        if (st->flags & CF_IN_HEAP)
            free(heap_remove(a, st->heap_idx));
        st->flags &= ~(uint32_t)CF_HAS_EXP;
        st->exp_ms = 0;
        return true;
    }
    st->flags |= CF_HAS_EXP;
    st->exp_ms = exp_ms;
    if (st->flags & CF_IN_HEAP) {
        a->heap[st->heap_idx].exp_ms = exp_ms;
        heap_fix(a, st->heap_idx);
        return true;
    }
    {
        const char *t = host->conn_tenant(c);
        size_t n = strlen(t);
        char *tenant = malloc(n + 1);
        if (!tenant)
            return false;
        memcpy(tenant, t, n + 1);
        if (!heap_push(a, st, host->conn_id(c), exp_ms, tenant)) {
            free(tenant);
            return false;
        }
    }
    return true;
}

/* ------------------------------------------------------------------------------------------ */
/* Hooks                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static const char *source_name(ajwt_source_t s)
{
    switch (s) {
    case AJWT_SRC_HEADER:
        return "header";
    case AJWT_SRC_QUERY:
        return "query";
    case AJWT_SRC_SUBPROTOCOL:
        return "subprotocol";
    default:
        return "none";
    }
}

/* Refuses the upgrade: 401 (500 for our own failure), a static body, the metric, a DEBUG line. */
static int deny(ajwt_t *a, wshub_ev_auth_t *ev, ajwt_reason_t r, ajwt_source_t src)
{
    const wshub_host_api_t *host = a->host;
    wshub_plugin_t *self = a->self;
    const char *labels[1] = {auth_jwt_token__reason_name(r)};

    ev->status = r == AJWT_INTERNAL ? 500 : 401;
    ev->reason = auth_jwt_token__reason_text(r);
    host->metric_add(a->m_failures, labels, 1);
    WSHUB_LOG(WSHUB_LOG_DEBUG, "upgrade from %s refused: %s (token from %s)",
              ev->remote_addr ? ev->remote_addr : "?", labels[0], source_name(src));
    return WSHUB_ERR_DENIED;
}

static void count_success(ajwt_t *a, const char *source)
{
    const char *labels[1] = {source};

    a->host->metric_add(a->m_success, labels, 1);
}

/*
 * No token: refused with require_auth; otherwise the development path identity when enabled,
 * else no opinion (WSHUB_DEFER) so that the connection stays anonymous (tenant "public", user
 * "") unless a later auth hook decides otherwise.
 */
static int auth_without_token(ajwt_t *a, wshub_ev_auth_t *ev)
{
    const wshub_host_api_t *host = a->host;
    wshub_plugin_t *self = a->self;
    const ajwt_conf_t *conf = a->conf;
    char *tenant = NULL, *user = NULL;
    int rc;

    if (conf->require_auth)
        return deny(a, ev, AJWT_MISSING, AJWT_SRC_NONE);
    if (conf->dev_path_identity &&
        auth_jwt_token__dev_path(conf->dev_path_prefix, ev->path, &tenant, &user)) {
        rc = host->conn_set_identity(ev->conn, tenant, user, NULL, 0, NULL);
        WSHUB_LOG(rc == WSHUB_OK ? WSHUB_LOG_DEBUG : WSHUB_LOG_INFO,
                  "dev_path_identity: %s/%s from the path: %s", tenant, user,
                  rc == WSHUB_OK ? "accepted (INSECURE)" : host->strerror(rc));
        free(tenant);
        free(user);
        if (rc != WSHUB_OK)
            return deny(a, ev, AJWT_BAD_CLAIMS, AJWT_SRC_NONE);
        count_success(a, "dev_path");
        return WSHUB_OK;
    }
    count_success(a, "anonymous");
    return WSHUB_DEFER;
}

/*
 * WSHUB_EV_AUTH: find, verify, set the identity (and the subprotocol when the token came in
 * one), and remember the expiry in the connection's state for CONN_OPEN to track.
 */
static int on_auth(ajwt_t *a, wshub_ev_auth_t *ev)
{
    const wshub_host_api_t *host = a->host;
    wshub_plugin_t *self = a->self;
    ajwt_conn_t *st = host->conn_state(ev->conn, self);
    ajwt_found_t found;
    ajwt_ident_t id;
    ajwt_reason_t r;
    int rc;

    if (!st)
        return deny(a, ev, AJWT_INTERNAL, AJWT_SRC_NONE);
    r = auth_jwt_token__extract(ev, &found);
    if (r != AJWT_OK)
        return deny(a, ev, r, AJWT_SRC_NONE);
    if (found.source == AJWT_SRC_NONE)
        return auth_without_token(a, ev);

    r = auth_jwt_token__verify(a->conf, found.token, found.token_len, (int64_t)host->now_ms(), &id);
    if (r != AJWT_OK) {
        rc = deny(a, ev, r, found.source);
        auth_jwt_token__found_free(&found);
        return rc;
    }
    rc = host->conn_set_identity(ev->conn, id.tenant ? id.tenant : "public", id.user,
                                 (const char *const *)id.roles, id.n_roles, id.metadata);
    if (rc != WSHUB_OK) {
        WSHUB_LOG(WSHUB_LOG_DEBUG, "the host refused the token's identity: %s", host->strerror(rc));
        rc = deny(a, ev, AJWT_BAD_CLAIMS, found.source);
        goto out;
    }
    if (found.source == AJWT_SRC_SUBPROTOCOL) {
        if (!found.subprotocol)
            WSHUB_LOG(WSHUB_LOG_DEBUG,
                      "the client offered only the bearer subprotocol: no "
                      "subprotocol is answered, which browsers treat as a failed handshake");
        else if ((rc = host->conn_set_subprotocol(ev->conn, found.subprotocol)) != WSHUB_OK)
            WSHUB_LOG(WSHUB_LOG_DEBUG, "cannot answer subprotocol '%.64s': %s", found.subprotocol,
                      host->strerror(rc));
    }
    st->flags = CF_AUTHED | (id.has_exp ? CF_HAS_EXP : 0u);
    st->exp_ms = id.has_exp ? id.exp_ms : 0;
    count_success(a, source_name(found.source));
    rc = WSHUB_OK;
out:
    auth_jwt_token__ident_free(&id);
    auth_jwt_token__found_free(&found);
    return rc;
}

/* WSHUB_EV_CONN_OPEN: from now on CONN_CLOSE is guaranteed, so the expiry can be tracked. */
static void on_open(ajwt_t *a, wshub_ev_conn_t *ev)
{
    const wshub_host_api_t *host = a->host;
    wshub_plugin_t *self = a->self;
    ajwt_conn_t *st = host->conn_state(ev->conn, self);

    if (!st || !(st->flags & CF_HAS_EXP) || (st->flags & CF_IN_HEAP))
        return;
    if (!track_expiry(a, ev->conn, st, true, st->exp_ms)) {
        /* Without tracking the token would never expire: fail closed. */
        WSHUB_LOG(WSHUB_LOG_ERR,
                  "out of memory tracking a token expiry: closing connection %" PRIu64,
                  host->conn_id(ev->conn));
        host->conn_close(ev->conn, 1011, "internal error");
    }
}

/* WSHUB_EV_CONN_CLOSE: the entry must go before the host frees the state it points at. */
static void on_close(ajwt_t *a, wshub_ev_close_t *ev)
{
    ajwt_conn_t *st = a->host->conn_state(ev->conn, a->self);

    if (st && (st->flags & CF_IN_HEAP))
        free(heap_remove(a, st->heap_idx));
}

/*
 * WSHUB_EV_TICK: closes the connections whose token expired (exp + leeway <= now) without a
 * refresh. Only due entries are visited: O(k log n) for k expiries among n connections.
 */
static void on_tick(ajwt_t *a, const wshub_ev_tick_t *ev)
{
    const wshub_host_api_t *host = a->host;
    wshub_plugin_t *self = a->self;
    int64_t now = ev->now_ms > (uint64_t)INT64_MAX / 2 ? INT64_MAX / 2 : (int64_t)ev->now_ms;
    int64_t leeway = a->conf->leeway_ms;

    for (unsigned budget = EXPIRE_BUDGET_PER_TICK;
         budget > 0 && a->n_heap > 0 && a->heap[0].exp_ms + leeway <= now; budget--) {
        uint64_t id = a->heap[0].id;
        ajwt_conn_t *st = a->heap[0].st;
        char *tenant = heap_remove(a, 0);
        wshub_conn_t *c = host->conn_lookup(self, tenant, id);

        st->flags &= ~(uint32_t)CF_HAS_EXP;
        if (c) {
            host->send_error(c, NULL, "token_expired",
                             "the token expired; reconnect with a new token, or send "
                             "auth.refresh before it expires");
            host->conn_close(c, CLOSE_TOKEN_EXPIRED, "token expired");
            host->metric_add(a->m_expired, NULL, 1);
            WSHUB_LOG(WSHUB_LOG_DEBUG, "connection %" PRIu64 " closed: token expired", id);
        }
        free(tenant);
    }
}

/* The one hook callback: dispatches by event. */
static int on_event(wshub_event_t ev, void *data, void *ud)
{
    ajwt_t *a = ud;

    switch (ev) {
    case WSHUB_EV_AUTH:
        return on_auth(a, data);
    case WSHUB_EV_CONN_OPEN:
        on_open(a, data);
        return WSHUB_OK;
    case WSHUB_EV_CONN_CLOSE:
        on_close(a, data);
        return WSHUB_OK;
    case WSHUB_EV_TICK:
        on_tick(a, data);
        return WSHUB_OK;
    default:
        return WSHUB_DEFER;
    }
}

/* ------------------------------------------------------------------------------------------ */
/* auth.refresh                                                                                */
/* ------------------------------------------------------------------------------------------ */

static void count_refresh(ajwt_t *a, const char *result)
{
    const char *labels[1] = {result};

    a->host->metric_add(a->m_refresh, labels, 1);
}

/*
 * The "token" string of {"type":"auth.refresh","id":..,"token":"..."}, copied.
 * @return the copy (length in *len) or NULL when the message has none.
 */
static char *refresh_token(const wshub_msg_t *msg, size_t *len)
{
    struct json_tokener *tok = json_tokener_new_ex(8);
    struct json_object *o = NULL, *t;
    char *copy = NULL;

    if (!tok)
        return NULL;
    if (msg->len <= (size_t)INT32_MAX)
        o = json_tokener_parse_ex(tok, msg->data, (int)msg->len);
    if (o && json_object_is_type(o, json_type_object) &&
        json_object_object_get_ex(o, "token", &t) && json_object_is_type(t, json_type_string)) {
        *len = (size_t)json_object_get_string_len(t);
        copy = malloc(*len + 1);
        if (copy)
            memcpy(copy, json_object_get_string(t), *len + 1);
    }
    json_object_put(o);
    json_tokener_free(tok);
    return copy;
}

/*
 * auth.refresh: a new token for the same tenant and user extends (or removes) the connection's
 * expiry. Identity is immutable after the upgrade, so roles and metadata of the new token are
 * not applied (a role change needs a reconnect), and a token of another tenant or user is
 * refused with `forbidden`. Every failure is answered and leaves the connection open: the old
 * token keeps running until its own expiry.
 */
static int on_refresh(wshub_conn_t *c, const wshub_msg_t *msg, void *ud)
{
    ajwt_t *a = ud;
    const wshub_host_api_t *host = a->host;
    wshub_plugin_t *self = a->self;
    ajwt_conn_t *st = host->conn_state(c, self);
    ajwt_ident_t id;
    ajwt_reason_t r;
    char *token;
    size_t len = 0;
    char fields[64];

    if (!st || !(st->flags & CF_AUTHED)) {
        count_refresh(a, "forbidden");
        host->send_error(c, msg->id, "forbidden",
                         "this connection was not authenticated with a token");
        return WSHUB_OK;
    }
    token = refresh_token(msg, &len);
    if (!token) {
        count_refresh(a, "invalid");
        host->send_error(c, msg->id, "invalid", "auth.refresh needs a string \"token\"");
        return WSHUB_OK;
    }
    r = auth_jwt_token__verify(a->conf, token, len, (int64_t)host->now_ms(), &id);
    free(token);
    if (r != AJWT_OK) {
        count_refresh(a, auth_jwt_token__reason_name(r));
        host->send_error(c, msg->id, "unauthorized", "token rejected: %s",
                         auth_jwt_token__reason_name(r));
        return WSHUB_OK;
    }
    if (strcmp(id.tenant ? id.tenant : "public", host->conn_tenant(c)) != 0 ||
        strcmp(id.user, host->conn_user(c)) != 0) {
        auth_jwt_token__ident_free(&id);
        count_refresh(a, "forbidden");
        host->send_error(c, msg->id, "forbidden",
                         "the token is for another tenant or user than this connection");
        return WSHUB_OK;
    }
    if (!track_expiry(a, c, st, id.has_exp, id.exp_ms)) {
        auth_jwt_token__ident_free(&id);
        WSHUB_LOG(WSHUB_LOG_ERR, "out of memory tracking a token expiry");
        count_refresh(a, "internal");
        return WSHUB_ERR_NOMEM;
    }
    if (id.has_exp)
        snprintf(fields, sizeof(fields), "{\"expires_at\":%" PRId64 "}", id.exp_ms);
    else
        snprintf(fields, sizeof(fields), "{\"expires_at\":null}");
    auth_jwt_token__ident_free(&id);
    count_refresh(a, "ok");
    host->send_ack(c, msg->id, fields);
    return WSHUB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Lifecycle                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* Start-up and reload lines: what is accepted, and loud warnings for insecure settings. */
static void log_config(ajwt_t *a, const char *what)
{
    const wshub_host_api_t *host = a->host;
    wshub_plugin_t *self = a->self;
    const ajwt_conf_t *conf = a->conf;
    char algs[96] = "";
    size_t o = 0;

    for (int alg = JWT_ALG_HS256; alg < JWT_ALG_TERM; alg++) {
        if (conf->algs & (1u << alg)) {
            int w = snprintf(algs + o, sizeof(algs) - o, "%s%s", o ? "," : "",
                             jwt_alg_str((jwt_alg_t)alg));
            if (w > 0 && (size_t)w < sizeof(algs) - o)
                o += (size_t)w;
        }
    }
    WSHUB_LOG(WSHUB_LOG_INFO,
              "%s: algorithms %s, %zu public key(s) (%zu from jwks_file), "
              "require_auth %s, leeway %" PRId64 " ms",
              what, algs, conf->n_keys, conf->n_jwks, conf->require_auth ? "true" : "false",
              conf->leeway_ms);
    if (!conf->require_auth)
        WSHUB_LOG(WSHUB_LOG_WARN, "require_auth is false: upgrades without a token are "
                                  "accepted as anonymous (tenant 'public')");
    if (conf->dev_path_identity)
        WSHUB_LOG(WSHUB_LOG_WARN,
                  "INSECURE: dev_path_identity is on: any client can claim any "
                  "tenant and user with %s/<tenant>/<user>; never use this in production",
                  conf->dev_path_prefix[0] ? conf->dev_path_prefix : "");
}

static void ajwt_fini(wshub_plugin_t *self, void *state)
{
    ajwt_t *a = state;

    (void)self;
    if (!a)
        return;
    /* Only our own strings: the states the entries point at belong to the host. */
    for (size_t i = 0; i < a->n_heap; i++)
        free(a->heap[i].tenant);
    free(a->heap);
    auth_jwt_conf__free(a->conf);
    free(a);
}

/* SIGHUP: a complete new configuration (keys re-read), or the old one stays. */
static int ajwt_reload(wshub_plugin_t *self, void *state, const wshub_cfg_t *cfg)
{
    ajwt_t *a = state;
    ajwt_conf_t *conf = NULL;
    int rc = auth_jwt_conf__load(self, a->host, cfg, &conf);

    if (rc != WSHUB_OK)
        return rc;
    auth_jwt_conf__free(a->conf);
    a->conf = conf;
    log_config(a, "reloaded");
    return WSHUB_OK;
}

/*
 * Loads the configuration (keys included), registers the metrics, the four hooks and the
 * auth.refresh route. Any failure is reported with set_error and everything init allocated is
 * released here, since the host does not call fini after a failed init.
 */
static int ajwt_init(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                     void **state)
{
    static const wshub_metric_def_t failures_def = {
        .kind = WSHUB_METRIC_COUNTER,
        .name = "wshub_auth_failures_total",
        .help = "Upgrades refused by auth_jwt, by reason.",
        .label_names = failure_labels,
        .n_labels = 1,
    };
    static const wshub_metric_def_t success_def = {
        .kind = WSHUB_METRIC_COUNTER,
        .name = "wshub_auth_success_total",
        .help = "Upgrades accepted by auth_jwt, by where the token was (or anonymous).",
        .label_names = success_labels,
        .n_labels = 1,
    };
    static const wshub_metric_def_t refresh_def = {
        .kind = WSHUB_METRIC_COUNTER,
        .name = "wshub_auth_refresh_total",
        .help = "auth.refresh requests, by result.",
        .label_names = refresh_labels,
        .n_labels = 1,
    };
    static const wshub_metric_def_t expired_def = {
        .kind = WSHUB_METRIC_COUNTER,
        .name = "wshub_auth_expired_total",
        .help = "Connections closed (4001) because their token expired without a refresh.",
    };
    static const wshub_event_t events[] = {WSHUB_EV_AUTH, WSHUB_EV_CONN_OPEN, WSHUB_EV_CONN_CLOSE,
                                           WSHUB_EV_TICK};
    ajwt_t *a;
    int rc;

    a = calloc(1, sizeof(*a));
    if (!a) {
        host->set_error(self, "out of memory");
        return WSHUB_ERR_NOMEM;
    }
    a->host = host;
    a->self = self;

    rc = auth_jwt_conf__load(self, host, cfg, &a->conf);
    if (rc != WSHUB_OK)
        goto fail;

    a->m_failures = host->metric_new(self, &failures_def);
    a->m_success = host->metric_new(self, &success_def);
    a->m_refresh = host->metric_new(self, &refresh_def);
    a->m_expired = host->metric_new(self, &expired_def);
    if (!a->m_failures || !a->m_success || !a->m_refresh || !a->m_expired) {
        host->set_error(self, "cannot register the wshub_auth_* metrics (already registered?)");
        rc = WSHUB_ERR;
        goto fail;
    }
    /* Every reason is exported from the start, so rate() works before the first failure. */
    for (int r = AJWT_MISSING; r < AJWT_N_REASONS; r++) {
        const char *labels[1] = {auth_jwt_token__reason_name((ajwt_reason_t)r)};
        host->metric_add(a->m_failures, labels, 0);
    }

    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
        rc = host->hook_add(self, events[i], 0, on_event, a);
        if (rc != WSHUB_OK) {
            host->set_error(self, "cannot add hook for event %d", (int)events[i]);
            goto fail;
        }
    }
    rc = host->route_add(self, "auth.refresh", on_refresh, a);
    if (rc != WSHUB_OK) {
        host->set_error(self, "cannot route auth.refresh: %s",
                        rc == WSHUB_ERR_EXISTS ? "another plugin already handles it"
                                               : host->strerror(rc));
        goto fail;
    }
    log_config(a, "started");
    *state = a;
    return WSHUB_OK;
fail:
    /* The host does not call fini after a failed init (and drops our registrations itself). */
    ajwt_fini(self, a);
    return rc;
}

WSHUB_PLUGIN(.name = "auth_jwt", .version = "1.0.0",
             .description = "JWT authentication at the upgrade: tenant, user, roles, metadata; "
                            "expiry and auth.refresh",
             .options = ajwt_options, .conn_state_size = sizeof(ajwt_conn_t),
             .flags = WSHUB_PLUGIN_RELOADABLE, .init = ajwt_init, .reload = ajwt_reload,
             .fini = ajwt_fini);
