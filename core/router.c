/*
 * router: see router.h.
 *
 * The envelope is parsed once with a json-c tokener reused for the whole loop. The handler gets
 * the message text, the type, and the id re-serialised as JSON text, so it can answer with the
 * same id without knowing whether the client sent a number or a string.
 */
#include "router.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include "conn.h"
#include "hooks.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "plugin_host.h"
#include "server.h"
#include "strbuf.h"
#include "strmap.h"
#include "ws_frame.h"

#define MAX_TYPE_LEN 64
#define MAX_ID_LEN   128

typedef struct route {
    wshub_plugin_t *owner;
    wshub_msg_cb cb;
    void *ud;
} route_t;

static strmap_t g_routes; /* type -> route_t */
static strmap_t g_paths;  /* path -> struct route_path */
static struct json_tokener *g_tok;

/* Types the core answers itself; plugins cannot take them. */
static const char *const core_types[] = {"ping", "welcome", "ack", "error", "pong", NULL};

static bool valid_type(const char *type)
{
    size_t n = strlen(type);

    if (n == 0 || n > MAX_TYPE_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!(isalnum((unsigned char)type[i]) || strchr("._-:/", type[i])))
            return false;
    return true;
}

int router__route_add(wshub_plugin_t *owner, const char *type, wshub_msg_cb cb, void *ud)
{
    route_t *r;

    if (!type || !cb || !valid_type(type))
        return WSHUB_ERR_INVAL;
    for (int i = 0; core_types[i]; i++)
        if (strcmp(type, core_types[i]) == 0)
            return WSHUB_ERR_EXISTS;
    if (strmap__get(&g_routes, type))
        return WSHUB_ERR_EXISTS;
    r = mem__alloc(sizeof(*r));
    *r = (route_t){owner, cb, ud};
    strmap__put(&g_routes, type, r);
    return WSHUB_OK;
}

int router__path_add(wshub_plugin_t *owner, const char *path, wshub_msg_cb cb, void *ud)
{
    struct route_path *p;

    if (!path || path[0] != '/' || !cb || strlen(path) > 255 || strchr(path, '?'))
        return WSHUB_ERR_INVAL;
    if (strmap__get(&g_paths, path) || (g_srv.cfg && strcmp(path, g_srv.cfg->server.path) == 0))
        return WSHUB_ERR_EXISTS;
    p = mem__alloc(sizeof(*p));
    p->path = mem__strdup(path);
    p->owner = owner;
    p->cb = cb;
    p->ud = ud;
    strmap__put(&g_paths, path, p);
    return WSHUB_OK;
}

struct owner_sweep {
    wshub_plugin_t *owner;
    strmap_t *map;
    char *keys[256];
    size_t n;
};

static int collect_owned(void *ud, const char *key, void *val)
{
    struct owner_sweep *s = ud;
    /* route_t and struct route_path both start with... no: compare explicitly per map. */
    wshub_plugin_t *owner =
        s->map == &g_routes ? ((route_t *)val)->owner : ((struct route_path *)val)->owner;
    if ((owner == s->owner || !s->owner) && s->n < 256)
        s->keys[s->n++] = mem__strdup(key);
    return 0;
}

/* Removes every entry of `map` owned by owner (NULL: all), in batches of 256. */
static void sweep(strmap_t *map, wshub_plugin_t *owner)
{
    for (;;) {
        struct owner_sweep s = {owner, map, {0}, 0};
        strmap__each(map, collect_owned, &s);
        for (size_t i = 0; i < s.n; i++) {
            void *v = strmap__del(map, s.keys[i]);
            if (map == &g_paths)
                free(((struct route_path *)v)->path);
            free(v);
            free(s.keys[i]);
        }
        if (s.n < 256)
            break;
    }
}

void router__remove_owner(wshub_plugin_t *owner)
{
    sweep(&g_routes, owner);
    sweep(&g_paths, owner);
}

void router__clear(void)
{
    sweep(&g_routes, NULL);
    sweep(&g_paths, NULL);
    strmap__free(&g_routes);
    strmap__free(&g_paths);
    if (g_tok)
        json_tokener_free(g_tok);
    g_tok = NULL;
}

const struct route_path *router__path(const char *path)
{
    return strmap__get(&g_paths, path);
}

/* ------------------------------------------------------------------------------------------ */
/* Replies                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static int send_strbuf(wshub_conn_t *c, strbuf_t *b)
{
    int rc = conn__send_data(c, WS_OP_TEXT, b->s, b->len);
    strbuf__free(b);
    return rc;
}

/* Appends the members of a JSON object text (without its braces) after a comma. */
static void splice_fields(strbuf_t *b, const char *fields_json)
{
    const char *s, *e;

    if (!fields_json)
        return;
    s = fields_json;
    while (*s && isspace((unsigned char)*s))
        s++;
    if (*s != '{')
        return;
    s++;
    e = s + strlen(s);
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    if (e > s && e[-1] == '}')
        e--;
    while (e > s && isspace((unsigned char)e[-1]))
        e--;
    while (s < e && isspace((unsigned char)*s))
        s++;
    if (e > s) {
        strbuf__add(b, ",", 1);
        strbuf__add(b, s, (size_t)(e - s));
    }
}

/* The wire text of an ack: {"type":"ack","id":<id>, ...fields}. */
void router__format_ack(strbuf_t *b, const char *id_json, const char *fields_json)
{
    strbuf__adds(b, "{\"type\":\"ack\"");
    if (id_json) {
        strbuf__adds(b, ",\"id\":");
        strbuf__adds(b, id_json);
    }
    splice_fields(b, fields_json);
    strbuf__add(b, "}", 1);
}

/* The wire text of an error: {"type":"error","id":<id>,"code":...,"message":...}. */
void router__format_error(strbuf_t *b, const char *id_json, const char *code, const char *fmt,
                          va_list ap)
{
    strbuf_t msg;

    strbuf__init(&msg);
    strbuf__vprintf(&msg, fmt ? fmt : "", ap);
    strbuf__adds(b, "{\"type\":\"error\"");
    if (id_json) {
        strbuf__adds(b, ",\"id\":");
        strbuf__adds(b, id_json);
    }
    strbuf__adds(b, ",\"code\":");
    strbuf__json_str(b, code, strlen(code));
    strbuf__adds(b, ",\"message\":");
    strbuf__json_str(b, msg.s, msg.len);
    strbuf__add(b, "}", 1);
    strbuf__free(&msg);
}

int router__send_ack(wshub_conn_t *c, const char *id_json, const char *fields_json)
{
    strbuf_t b;

    /* Raw paths have no envelope: a JSON reply there would be noise in the client's stream. */
    if (!(c->flags & CONN_F_JSON))
        return WSHUB_ERR_STATE;
    strbuf__init(&b);
    router__format_ack(&b, id_json, fields_json);
    return send_strbuf(c, &b);
}

int router__send_errorv(wshub_conn_t *c, const char *id_json, const char *code, const char *fmt,
                        va_list ap)
{
    strbuf_t b;
    const char *labels[1] = {code};

    if (!(c->flags & CONN_F_JSON))
        return WSHUB_ERR_STATE;
    strbuf__init(&b);
    router__format_error(&b, id_json, code, fmt, ap);
    metrics__add(g_srv.m.errors_sent, labels, 1);
    return send_strbuf(c, &b);
}

int router__send_error(wshub_conn_t *c, const char *id_json, const char *code, const char *fmt, ...)
{
    va_list ap;
    int rc;

    va_start(ap, fmt);
    rc = router__send_errorv(c, id_json, code, fmt, ap);
    va_end(ap);
    return rc;
}

void router__send_welcome(wshub_conn_t *c)
{
    strbuf_t b;

    strbuf__init(&b);
    strbuf__printf(&b,
                   "{\"type\":\"welcome\",\"connection_id\":%" PRIu64 ",\"server_time\":%" PRIu64
                   ",\"heartbeat\":%" PRIu64 ",\"protocol\":\"wshub.v1\",\"tenant_id\":",
                   c->id, server__now_ms(), g_srv.cfg->server.heartbeat_interval_ms);
    strbuf__json_str(&b, c->tenant->name, strlen(c->tenant->name));
    strbuf__adds(&b, ",\"user_id\":");
    if (c->user)
        strbuf__json_str(&b, c->user->name, strlen(c->user->name));
    else
        strbuf__adds(&b, "\"\"");
    if (hooks__any(WSHUB_EV_WELCOME)) {
        wshub_ev_welcome_t ev = {c, &b};
        hooks__run_all(WSHUB_EV_WELCOME, &ev);
    }
    strbuf__add(&b, "}", 1);
    send_strbuf(c, &b);
}

int router__welcome_add(wshub_ev_welcome_t *ev, const char *key, const char *json)
{
    strbuf_t *b;

    if (!ev || !ev->priv || !key || !json || !*json)
        return WSHUB_ERR_INVAL;
    b = ev->priv;
    strbuf__add(b, ",", 1);
    strbuf__json_str(b, key, strlen(key));
    strbuf__add(b, ":", 1);
    strbuf__adds(b, json);
    return WSHUB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Dispatch                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static int run_handler(wshub_conn_t *c, const wshub_msg_t *m, wshub_msg_cb cb, void *ud)
{
    int rc;

    if (hooks__any(WSHUB_EV_MESSAGE_IN)) {
        wshub_ev_message_t ev = {c, m, NULL};
        if (hooks__run_message(&ev) < 0) {
            if (ev.error_code && (c->flags & CONN_F_JSON) && conn__is_live(c))
                router__send_error(c, m->id, ev.error_code, "message refused");
            return WSHUB_ERR_DENIED;
        }
        if (!conn__is_live(c))
            return WSHUB_ERR_STATE;
    }
    rc = cb(c, m, ud);
    if (rc < 0 && (c->flags & CONN_F_JSON) && conn__is_live(c))
        router__send_error(c, m->id, plugin_host__rc_code(rc), "%s", m->type ? m->type : "");
    return rc;
}

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
    strbuf__printf(&b, ",\"server_time\":%" PRIu64 "}", server__now_ms());
    return send_strbuf(c, &b);
}

static void on_json(wshub_conn_t *c, uint8_t *data, size_t len)
{
    struct json_object *env, *jtype, *jid;
    const char *type, *id = NULL;
    route_t *r;
    wshub_msg_t m;

    if (!g_tok)
        g_tok = json_tokener_new_ex(32);
    json_tokener_reset(g_tok);
    /* data[len] is the NUL the caller wrote: passing it lets json-c finish a top-level number
     * or literal ("2", "true"), which it otherwise waits to see the end of. */
    env = json_tokener_parse_ex(g_tok, (const char *)data, (int)len + 1);
    if (!env || json_tokener_get_error(g_tok) != json_tokener_success ||
        json_tokener_get_parse_end(g_tok) < len) {
        /* Trailing whitespace after a complete value is fine; anything else is not. */
        size_t end = env ? json_tokener_get_parse_end(g_tok) : 0;
        bool ok = env != NULL;
        for (size_t i = end; ok && i < len; i++)
            if (!isspace(data[i]))
                ok = false;
        if (!ok) {
            json_object_put(env);
            router__send_error(c, NULL, "bad_json", "message is not valid JSON");
            return;
        }
    }
    if (!json_object_is_type(env, json_type_object)) {
        json_object_put(env);
        router__send_error(c, NULL, "bad_json", "message must be a JSON object");
        return;
    }
    /* A present "id" must be a string or a number; null (jid == NULL) is not. */
    if (json_object_object_get_ex(env, "id", &jid)) {
        enum json_type t = json_object_get_type(jid);
        if (t != json_type_string && t != json_type_int && t != json_type_double) {
            json_object_put(env);
            router__send_error(c, NULL, "bad_json", "\"id\" must be a string or a number");
            return;
        }
        id = json_object_to_json_string_ext(jid, JSON_C_TO_STRING_PLAIN |
                                                     JSON_C_TO_STRING_NOSLASHESCAPE);
        if (strlen(id) > MAX_ID_LEN) {
            json_object_put(env);
            router__send_error(c, NULL, "bad_json", "\"id\" is longer than %d bytes", MAX_ID_LEN);
            return;
        }
    }
    if (!json_object_object_get_ex(env, "type", &jtype) ||
        !json_object_is_type(jtype, json_type_string)) {
        router__send_error(c, id, "bad_json", "message has no string \"type\"");
        json_object_put(env);
        return;
    }
    type = json_object_get_string(jtype);
    m = (wshub_msg_t){type, id, (const char *)data, len, false};
    if (strcmp(type, "ping") == 0) {
        run_handler(c, &m, core_ping, NULL);
    } else if ((r = strmap__get(&g_routes, type))) {
        run_handler(c, &m, r->cb, r->ud);
    } else {
        char shown[MAX_TYPE_LEN + 1];
        size_t n = strlen(type);
        /* Echo at most 64 bytes of the unknown type, cut on a character boundary. */
        if (n > MAX_TYPE_LEN) {
            n = MAX_TYPE_LEN;
            while (n > 0 && ((unsigned char)type[n] & 0xC0) == 0x80)
                n--;
        }
        memcpy(shown, type, n);
        shown[n] = '\0';
        router__send_error(c, id, "unknown_type", "unknown message type \"%s\"", shown);
    }
    json_object_put(env);
}

void router__on_message(wshub_conn_t *c, int opcode, uint8_t *data, size_t len)
{
    uint8_t saved = data[len];

    /* Handlers get NUL-terminated text; the byte after the message is ours to borrow. */
    data[len] = '\0';
    if (c->raw) {
        wshub_msg_t m = {NULL, NULL, (const char *)data, len, opcode == WS_OP_BINARY};
        run_handler(c, &m, c->raw->cb, c->raw->ud);
    } else if (opcode == WS_OP_BINARY) {
        router__send_error(c, NULL, "unsupported", "binary messages are not accepted here");
    } else {
        on_json(c, data, len);
    }
    data[len] = saved;
}

void router__on_oversize(wshub_conn_t *c, size_t len)
{
    router__send_error(c, NULL, "too_large", "message of %zu bytes exceeds max_message_size %zu",
                       len, g_srv.cfg->server.max_message_size);
}
