/*
 * rooms_proto: the room.* protocol. Each handler parses the request (json-c), validates every
 * field before changing anything, checks the permission matrix, acts on the model, then answers
 * `ack` with the request's id or `error` with a precise code. Handlers always answer themselves
 * and return WSHUB_OK, so the host never has to guess a code from a return value.
 *
 * Events go to a room through its core group: the event is serialised once into one buffer
 * that every member connection shares (group_send), and a subtree send hands the same buffer to
 * each child room's group. Events addressed to particular connections (room.kicked,
 * room.banned, room.invited) are sent to those connections only.
 *
 * Every event carries "type" and "room"; see README.md for the complete protocol.
 */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>

#include "rooms.h"

#define JSON_FLAGS     (JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE)
#define JSON_MAX_DEPTH 64

/* One request being handled. */
typedef struct req {
    rooms_t *rs;
    const wshub_host_api_t *host;
    wshub_conn_t *c;
    const wshub_msg_t *msg;
    struct json_object *root; /* the parsed request (owned) */
    const char *tenant;       /* [borrowed from the host] */
    const char *user;         /* [borrowed from the host] "" when anonymous */
    rooms_slot_t *slot;
} req_t;

/* ------------------------------------------------------------------------------------------ */
/* Replies                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static int fail(req_t *q, const char *code, const char *fmt, ...) WSHUB_PRINTF(3, 4);

/* Answers `error` with `code` and returns WSHUB_OK (the request was handled). */
static int fail(req_t *q, const char *code, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    q->host->send_error(q->c, q->msg->id, code, "%s", text);
    return WSHUB_OK;
}

static int refuse(req_t *q, const char *fmt, ...) WSHUB_PRINTF(2, 3);

/* Answers `error` with code `invalid` and returns -1: the result of a refused field. */
static int refuse(req_t *q, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    q->host->send_error(q->c, q->msg->id, "invalid", "%s", text);
    return -1;
}

/* The same, for validators that answer with a bool. */
static bool refused(req_t *q, const char *fmt, ...) WSHUB_PRINTF(2, 3);
static bool refused(req_t *q, const char *fmt, ...)
{
    char text[512];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    q->host->send_error(q->c, q->msg->id, "invalid", "%s", text);
    return false;
}

/* Answers `ack` with the members of `fields` (consumed). A NULL object means allocation failed
 * somewhere while building it: answered `internal`. */
static int ack(req_t *q, struct json_object *fields)
{
    const char *text;

    if (!fields)
        return fail(q, "internal", "out of memory");
    text = json_object_to_json_string_ext(fields, JSON_FLAGS);
    if (!text) {
        json_object_put(fields);
        return fail(q, "internal", "out of memory");
    }
    q->host->send_ack(q->c, q->msg->id, text);
    json_object_put(fields);
    return WSHUB_OK;
}

/* Small builders that tolerate a NULL object (allocation failure propagates to ack()). */
static void put_str(struct json_object *o, const char *k, const char *v)
{
    if (o)
        json_object_object_add(o, k, v ? json_object_new_string(v) : json_object_new_null());
}

static void put_u64(struct json_object *o, const char *k, uint64_t v)
{
    if (o)
        json_object_object_add(o, k, json_object_new_uint64(v));
}

static void put_bool(struct json_object *o, const char *k, bool v)
{
    if (o)
        json_object_object_add(o, k, json_object_new_boolean(v));
}

static void put_obj(struct json_object *o, const char *k, struct json_object *v)
{
    if (o)
        json_object_object_add(o, k, v ? v : json_object_new_null());
    else
        json_object_put(v);
}

/* A new event object with its "type" and "room". */
static struct json_object *event_new(const char *type, const rooms_room_t *room)
{
    struct json_object *o = json_object_new_object();

    put_str(o, "type", type);
    put_str(o, "room", room->id);
    return o;
}

size_t rooms_proto__send_text(rooms_t *rs, rooms_room_t *room, const char *text,
                              const wshub_conn_t *except)
{
    wshub_buf_t *b = rs->host->buf_new(text, strlen(text));
    size_t n;

    if (!b)
        return 0;
    n = rs->host->group_send(room->group, b, except);
    rs->host->buf_unref(b);
    return n;
}

/* Serialises an event once and sends it to the room's members; consumes `ev`. */
static void emit(rooms_t *rs, rooms_room_t *room, struct json_object *ev,
                 const wshub_conn_t *except)
{
    const char *text = ev ? json_object_to_json_string_ext(ev, JSON_FLAGS) : NULL;

    if (text)
        rooms_proto__send_text(rs, room, text, except);
    else
        rs->host->log(rs->self, WSHUB_LOG_WARN, "room %s/%s: event not sent (out of memory)",
                      room->tenant->name, room->id);
    json_object_put(ev);
}

void rooms_proto__deleted(rooms_t *rs, rooms_room_t *room, const char *by)
{
    struct json_object *ev = event_new("room.deleted", room);

    put_str(ev, "by", by);
    emit(rs, room, ev, NULL);
}

/* room.left to the remaining members, when it was the user's last connection in the room. */
void rooms_proto__left(rooms_t *rs, rooms_room_t *room, rooms_user_t *u, rooms_cstate_t *cs,
                       wshub_conn_t *c, const char *reason)
{
    struct json_object *ev;

    if (!rooms_room__presence_remove(rs, room, u, cs, c))
        return;
    ev = event_new("room.left", room);
    put_str(ev, "user_id", u->user);
    put_str(ev, "reason", reason);
    put_u64(ev, "ts", rs->host->now_ms());
    emit(rs, room, ev, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* Request fields                                                                              */
/* ------------------------------------------------------------------------------------------ */

/* Parses the whole message text; the router has checked it is a JSON object with a type, but
 * the plugin does not rely on that. */
static struct json_object *parse(const wshub_msg_t *msg)
{
    struct json_tokener *tok;
    struct json_object *o;

    if (!msg->data || msg->len > (size_t)INT32_MAX)
        return NULL;
    tok = json_tokener_new_ex(JSON_MAX_DEPTH);
    if (!tok)
        return NULL;
    o = json_tokener_parse_ex(tok, msg->data, (int)msg->len);
    if (o && (json_tokener_get_error(tok) != json_tokener_success ||
              !json_object_is_type(o, json_type_object))) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

/* The member `key` of `obj`, NULL when absent or JSON null. */
static struct json_object *field(struct json_object *obj, const char *key)
{
    struct json_object *v = NULL;

    if (!json_object_object_get_ex(obj, key, &v) || json_object_is_type(v, json_type_null))
        return NULL;
    return v;
}

/* Ids and names: no control characters (they end up in logs and UIs). */
static bool printable(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] == 0x7f)
            return false;
    return true;
}

enum { F_OPTIONAL = 0, F_REQUIRED = 1 };
enum { F_ANY = 0, F_PRINTABLE = 1 };

/*
 * A string member. @return true when acceptable: present and valid (*out, *out_len set) or
 * absent and optional (*out NULL); false when refused (the `invalid` error is already sent).
 * Embedded NULs are refused everywhere: the value becomes a C string.
 */
static bool get_str(req_t *q, struct json_object *obj, const char *key, int required, size_t min,
                    size_t max, int chars, const char **out, size_t *out_len)
{
    struct json_object *v = field(obj, key);
    const char *s;
    size_t len;

    *out = NULL;
    if (out_len)
        *out_len = 0;
    if (!v) {
        if (required)
            return refused(q, "missing field \"%s\"", key);
        return true;
    }
    if (!json_object_is_type(v, json_type_string))
        return refused(q, "\"%s\" must be a string", key);
    s = json_object_get_string(v);
    len = (size_t)json_object_get_string_len(v);
    if (memchr(s, '\0', len))
        return refused(q, "\"%s\" must not contain NUL characters", key);
    if (len < min || len > max)
        return refused(q, "\"%s\" must be %zu to %zu bytes long, got %zu", key, min, max, len);
    if (chars == F_PRINTABLE && !printable(s, len))
        return refused(q, "\"%s\" must not contain control characters", key);
    *out = s;
    if (out_len)
        *out_len = len;
    return true;
}

/* An integer member in [min, max]. @return 1 present and valid, 0 absent and optional, -1
 * refused (answered). */
static int get_int(req_t *q, struct json_object *obj, const char *key, int required, int64_t min,
                   int64_t max, int64_t *out)
{
    struct json_object *v = field(obj, key);
    int64_t n;

    if (!v) {
        if (required)
            return refuse(q, "missing field \"%s\"", key);
        return 0;
    }
    if (!json_object_is_type(v, json_type_int))
        return refuse(q, "\"%s\" must be an integer", key);
    n = json_object_get_int64(v);
    if (n < min || n > max)
        return refuse(q, "\"%s\" must be between %" PRId64 " and %" PRId64, key, min, max);
    *out = n;
    return 1;
}

/* A boolean member; *out unchanged when absent. @return false when refused (answered). */
static bool get_bool(req_t *q, struct json_object *obj, const char *key, bool *out)
{
    struct json_object *v = field(obj, key);

    if (!v)
        return true;
    if (!json_object_is_type(v, json_type_boolean))
        return refused(q, "\"%s\" must be true or false", key);
    *out = json_object_get_boolean(v);
    return true;
}

/* The "room" member (required) and the room itself in the caller's tenant. NULL: answered. */
static rooms_room_t *need_room(req_t *q, const char **id)
{
    rooms_room_t *room;

    if (!get_str(q, q->root, "room", F_REQUIRED, 1, ROOMS_MAX_ID_LEN, F_PRINTABLE, id, NULL))
        return NULL;
    room = rooms_room__find(q->rs, q->tenant, *id);
    if (!room)
        fail(q, "not_found", "no room \"%s\"", *id);
    return room;
}

/* A target "user" member: anonymous ("") allowed only where it makes sense (sanctions). */
static bool need_user(req_t *q, bool allow_anonymous, const char **user)
{
    return get_str(q, q->root, "user", F_REQUIRED, allow_anonymous ? 0 : 1, ROOMS_MAX_ID_LEN,
                   F_PRINTABLE, user, NULL);
}

/*
 * The matrix check for the actor on `room`. @return true when allowed; otherwise the error
 * (`banned` or `forbidden`, naming the action and the role it needs) is sent.
 */
static bool need(req_t *q, rooms_room_t *room, rooms_action_t a, rooms_role_t *role_out)
{
    bool banned;
    rooms_role_t role = rooms_acl__actor_role(q->rs, q->c, room, &banned);

    if (role_out)
        *role_out = role;
    if (banned) {
        fail(q, "banned", "you are banned from room \"%s\"", room->id);
        return false;
    }
    if (!rooms_acl__allowed(role, a)) {
        fail(q, "forbidden", "%s on room \"%s\" is not allowed for role %s",
             rooms_acl__action_name(a), room->id, rooms_acl__role_name(role));
        return false;
    }
    return true;
}

/* Actors act only on targets of a strictly lower role. */
static bool need_lower(req_t *q, rooms_room_t *room, rooms_role_t actor, const char *target)
{
    rooms_role_t t = rooms_acl__target_role(q->rs, room, target);

    if (t < actor)
        return true;
    fail(q, "forbidden", "user \"%s\" has role %s, not lower than yours (%s)", target,
         rooms_acl__role_name(t), rooms_acl__role_name(actor));
    return false;
}

/* ------------------------------------------------------------------------------------------ */
/* Room descriptions                                                                           */
/* ------------------------------------------------------------------------------------------ */

static const char *const access_names[] = {"public", "private", "protected"};
static const char *const lifetime_names[] = {"normal", "temporary", "persistent"};

static int parse_name(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++)
        if (strcmp(s, names[i]) == 0)
            return i;
    return -1;
}

static struct json_object *filter_json(const rooms_room_t *room)
{
    struct json_object *f = json_object_new_object(), *pats = json_object_new_array();

    for (uint32_t i = 0; pats && i < room->n_deny; i++)
        json_object_array_add(pats, json_object_new_string(room->deny_src[i]));
    put_u64(f, "max_length", room->filter_max_length);
    put_obj(f, "deny_patterns", pats);
    return f;
}

/* What room.create, room.update and room.list tell about a room. */
static struct json_object *room_json(rooms_t *rs, const rooms_room_t *room)
{
    struct json_object *o = json_object_new_object();

    put_str(o, "room", room->id);
    put_str(o, "name", room->name);
    put_str(o, "description", room->description);
    put_str(o, "room_type",
            room->lifetime != ROOMS_LIFE_NORMAL ? lifetime_names[room->lifetime]
                                                : access_names[room->access]);
    put_str(o, "access", access_names[room->access]);
    put_str(o, "lifetime", lifetime_names[room->lifetime]);
    put_str(o, "parent", room->parent ? room->parent->id : NULL);
    put_u64(o, "max_members", room->max_members);
    put_u64(o, "member_count", room->n_members);
    put_u64(o, "child_count", room->n_children);
    put_str(o, "created_by", room->created_by);
    put_u64(o, "created_at", room->created_ms);
    put_obj(o, "filter", filter_json(room));
    put_u64(o, "slow_mode", room->slow_mode_s);
    if (room->lifetime == ROOMS_LIFE_PERSISTENT)
        put_bool(o, "persisted", rs->persistence);
    return o;
}

static int cmp_user(const void *a, const void *b)
{
    return strcmp((*(rooms_user_t *const *)a)->user, (*(rooms_user_t *const *)b)->user);
}

/* The present members, sorted by user id: user_id, role, connections, joined_at. */
static struct json_object *members_json(rooms_t *rs, rooms_room_t *room)
{
    struct json_object *arr = json_object_new_array();
    rooms_user_t **v, *u;
    size_t n = 0, it = 0;

    if (!arr)
        return NULL;
    v = malloc((room->users.n ? room->users.n : 1) * sizeof(*v));
    if (!v) {
        json_object_put(arr);
        return NULL;
    }
    while ((u = rooms_map__next(&room->users, &it)))
        if (u->n_conns)
            v[n++] = u;
    qsort(v, n, sizeof(*v), cmp_user);
    for (size_t i = 0; i < n; i++) {
        struct json_object *m = json_object_new_object();
        rooms_role_t role = rooms_acl__resolve(rs, room, v[i]->user, NULL);
        put_str(m, "user_id", v[i]->user);
        put_str(m, "role", rooms_acl__role_name(role ? role : ROOMS_ROLE_MEMBER));
        put_u64(m, "connections", v[i]->n_conns);
        put_u64(m, "joined_at", v[i]->joined_ms);
        if (!m || json_object_array_add(arr, m) != 0) {
            json_object_put(m);
            json_object_put(arr);
            free(v);
            return NULL;
        }
    }
    free(v);
    return arr;
}

/* ------------------------------------------------------------------------------------------ */
/* Joining                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/*
 * Adds the requesting connection to the room (checks done by the caller), tells the others
 * room.joined when the user was not present yet, and answers with the member list. `extra`
 * (consumed) holds the ack's other fields.
 */
static int join_and_ack(req_t *q, rooms_room_t *room, const char *id, struct json_object *extra)
{
    rooms_t *rs = q->rs;
    bool first;
    bool banned;
    rooms_role_t role;
    int rc = rooms_room__presence_add(rs, room, q->c, q->slot, q->user, &first);

    if (rc != WSHUB_OK) {
        json_object_put(extra);
        if (rc == WSHUB_ERR_LIMIT)
            return fail(q, "limit", "this connection is already in %" PRIu32 " rooms",
                        rs->max_rooms_per_connection);
        return fail(q, "internal", "cannot join room \"%s\": %s", id, rs->host->strerror(rc));
    }
    role = rooms_acl__actor_role(rs, q->c, room, &banned);
    if (first) {
        struct json_object *ev = event_new("room.joined", room);
        put_str(ev, "user_id", q->user);
        put_str(ev, "role", rooms_acl__role_name(role));
        put_u64(ev, "ts", rs->host->now_ms());
        emit(rs, room, ev, q->c);
    }
    if (!extra)
        extra = json_object_new_object();
    else if (json_object_object_get_ex(extra, "member_count", NULL))
        put_u64(extra, "member_count", room->n_members); /* room.create: now with the creator */
    put_str(extra, "room", id);
    put_str(extra, "role", rooms_acl__role_name(role));
    put_u64(extra, "count", room->n_members);
    put_obj(extra, "members", members_json(rs, room));
    return ack(q, extra);
}

/* Invite tokens travel as 32 lowercase hex characters. */
static void hex_encode(const unsigned char *in, size_t n, char *out)
{
    static const char digits[] = "0123456789abcdef";

    for (size_t i = 0; i < n; i++) {
        out[2 * i] = digits[in[i] >> 4];
        out[2 * i + 1] = digits[in[i] & 15];
    }
    out[2 * n] = '\0';
}

static bool hex_decode(const char *s, size_t len, unsigned char *out, size_t n)
{
    if (len != 2 * n)
        return false;
    for (size_t i = 0; i < 2 * n; i++) {
        int v;
        char ch = s[i];
        if (ch >= '0' && ch <= '9')
            v = ch - '0';
        else if (ch >= 'a' && ch <= 'f')
            v = ch - 'a' + 10;
        else if (ch >= 'A' && ch <= 'F')
            v = ch - 'A' + 10;
        else
            return false;
        if (i % 2 == 0)
            out[i / 2] = (unsigned char)(v << 4);
        else
            out[i / 2] |= (unsigned char)v;
    }
    return true;
}

/* Does `token` match the user's pending invitation (constant-time comparison)? */
static bool invite_ok(const rooms_user_t *u, const char *token, size_t len)
{
    unsigned char raw[ROOMS_TOKEN_LEN];

    if (!u || !u->invited || !hex_decode(token, len, raw, sizeof(raw)))
        return false;
    return CRYPTO_memcmp(raw, u->token, sizeof(raw)) == 0;
}

/*
 * room.join {room, password?, invite?}. Order: the cheap refusals first (already joined,
 * banned, full, connection limit), then access, so neither a password hash is computed nor an
 * invitation consumed for a join that would fail anyway.
 */
/*
 * With `auto_create`, a join of a missing room creates it the way Socket.IO rooms behave:
 * public, temporary (deleted with its last member) and without an owner, so joining first
 * grants no privilege. The tenant's room limit still applies. @return the room, or NULL after
 * answering the error.
 */
static rooms_room_t *auto_create_room(req_t *q, const char *id)
{
    rooms_t *rs = q->rs;
    rooms_tenant_t *tenant = rooms_room__tenant(rs, q->tenant, false);
    rooms_room_t *room;

    if (tenant && tenant->rooms.n >= rs->max_rooms_per_tenant) {
        fail(q, "limit", "the tenant has %" PRIu32 " rooms, the most allowed",
             rs->max_rooms_per_tenant);
        return NULL;
    }
    /* Refused before creating: a room nobody could join would linger empty. */
    if (q->slot->cs && q->slot->cs->n >= rs->max_rooms_per_connection) {
        fail(q, "limit", "this connection is already in %" PRIu32 " rooms",
             rs->max_rooms_per_connection);
        return NULL;
    }
    if ((!tenant && !(tenant = rooms_room__tenant(rs, q->tenant, true))) ||
        rooms_room__create(rs, tenant, id, NULL, &room) != WSHUB_OK) {
        fail(q, "internal", "cannot create room \"%s\"", id);
        return NULL;
    }
    room->access = ROOMS_ACCESS_PUBLIC;
    room->lifetime = ROOMS_LIFE_TEMPORARY;
    room->max_members = rs->max_members_per_room;
    if (!(room->created_by = strdup(q->user))) {
        rooms_room__delete(rs, room, NULL);
        fail(q, "internal", "out of memory");
        return NULL;
    }
    rooms_room__audit(rs, room, q->user, "auto_create", id, NULL);
    return room;
}

static int on_join(req_t *q)
{
    rooms_t *rs = q->rs;
    const char *id, *pw, *token;
    size_t pw_len, token_len;
    rooms_room_t *room;
    rooms_user_t *u;
    rooms_role_t role;
    bool banned, admitted = false;
    uint64_t now = rs->host->now_ms();

    if (!get_str(q, q->root, "room", F_REQUIRED, 1, ROOMS_MAX_ID_LEN, F_PRINTABLE, &id, NULL))
        return WSHUB_OK;
    room = rooms_room__find(rs, q->tenant, id);
    if (!room && !rs->auto_create)
        return fail(q, "not_found", "no room \"%s\"", id);
    if (!room && !(room = auto_create_room(q, id)))
        return WSHUB_OK;
    if (!get_str(q, q->root, "password", F_OPTIONAL, 1, ROOMS_MAX_PASSWORD_LEN, F_ANY, &pw,
                 &pw_len) ||
        !get_str(q, q->root, "invite", F_OPTIONAL, 1, 2 * ROOMS_TOKEN_LEN, F_PRINTABLE, &token,
                 &token_len))
        return WSHUB_OK;
    if (rooms_room__conn_in(q->slot, room))
        return fail(q, "exists", "already in room \"%s\"", id);
    role = rooms_acl__actor_role(rs, q->c, room, &banned);
    if (banned) {
        rooms_user_t *b;
        rooms_acl__resolve(rs, room, q->user, &b);
        if (b && b->ban_until_ms)
            return fail(q, "banned", "banned from room \"%s\" for %" PRIu64 " more seconds", id,
                        (b->ban_until_ms - now + 999) / 1000);
        return fail(q, "banned", "banned from room \"%s\"", id);
    }
    u = rooms_room__user(room, q->user);
    if ((!u || !u->n_conns) && room->n_members >= room->max_members)
        return fail(q, "full", "room \"%s\" is full (%" PRIu32 " members)", id, room->max_members);
    if (q->slot->cs && q->slot->cs->n >= rs->max_rooms_per_connection)
        return fail(q, "limit", "this connection is already in %" PRIu32 " rooms",
                    rs->max_rooms_per_connection);

    /* Access: a role (own, inherited or tenant admin) or an earlier admission lets one in. */
    if (role == ROOMS_ROLE_NONE && !(u && u->admitted) && room->access != ROOMS_ACCESS_PUBLIC) {
        if (token) {
            if (!invite_ok(u, token, token_len))
                return fail(q, "forbidden", "the invitation is not valid for you");
        } else if (room->access == ROOMS_ACCESS_PRIVATE) {
            if (!u || !u->invited)
                return fail(q, "forbidden", "room \"%s\" is private: an invitation is needed", id);
        } else {
            if (!pw)
                return fail(q, "bad_password", "room \"%s\" needs a password", id);
            if (now < q->slot->pw_retry_ms)
                return fail(q, "rate_limited", "wait %" PRIu64 " ms before trying again",
                            q->slot->pw_retry_ms - now);
            if (!rooms_room__check_password(room, pw, pw_len)) {
                q->slot->pw_retry_ms = now + rs->password_retry_delay_ms;
                return fail(q, "bad_password", "wrong password for room \"%s\"", id);
            }
        }
        admitted = true;
    }
    if (admitted) {
        /* The invitation is used up; the user may come back without one until kicked. */
        u = rooms_room__user_get(room, q->user);
        if (!u)
            return fail(q, "internal", "out of memory");
        u->invited = false;
        OPENSSL_cleanse(u->token, sizeof(u->token));
        u->admitted = true;
    }
    return join_and_ack(q, room, id, NULL);
}

/* ------------------------------------------------------------------------------------------ */
/* room.create                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/*
 * room.create {room, room_type, name?, description?, parent?, max_members?, password?, access?,
 * lifetime?, join?}. `room_type` is one of the five names; `access` and `lifetime` combine
 * them (a contradiction such as room_type "private" with access "public" is refused).
 */
static int on_create(req_t *q)
{
    rooms_t *rs = q->rs;
    const char *id, *type, *access_s, *life_s, *name, *desc, *parent_id, *pw;
    size_t pw_len;
    int64_t max_members = rs->max_members_per_room;
    bool join = true;
    int access = ROOMS_ACCESS_PUBLIC, life = ROOMS_LIFE_NORMAL, t;
    rooms_room_t *parent = NULL, *room;
    rooms_tenant_t *tenant;
    rooms_user_t *owner;
    struct json_object *extra;
    int rc;

    if (!get_str(q, q->root, "room", F_REQUIRED, 1, ROOMS_MAX_ID_LEN, F_PRINTABLE, &id, NULL) ||
        !get_str(q, q->root, "room_type", F_REQUIRED, 1, 32, F_PRINTABLE, &type, NULL) ||
        !get_str(q, q->root, "access", F_OPTIONAL, 1, 32, F_PRINTABLE, &access_s, NULL) ||
        !get_str(q, q->root, "lifetime", F_OPTIONAL, 1, 32, F_PRINTABLE, &life_s, NULL) ||
        !get_str(q, q->root, "name", F_OPTIONAL, 1, ROOMS_MAX_NAME_LEN, F_PRINTABLE, &name, NULL) ||
        !get_str(q, q->root, "description", F_OPTIONAL, 0, ROOMS_MAX_DESC_LEN, F_ANY, &desc,
                 NULL) ||
        !get_str(q, q->root, "parent", F_OPTIONAL, 1, ROOMS_MAX_ID_LEN, F_PRINTABLE, &parent_id,
                 NULL) ||
        !get_str(q, q->root, "password", F_OPTIONAL, 1, ROOMS_MAX_PASSWORD_LEN, F_ANY, &pw,
                 &pw_len) ||
        get_int(q, q->root, "max_members", F_OPTIONAL, 1, rs->max_members_per_room, &max_members) <
            0 ||
        !get_bool(q, q->root, "join", &join))
        return WSHUB_OK;

    if ((t = parse_name(type, access_names, 3)) >= 0) {
        access = t;
        if (access_s && strcmp(access_s, type) != 0)
            return fail(q, "invalid", "room_type \"%s\" contradicts access \"%s\"", type, access_s);
        if (life_s && (life = parse_name(life_s, lifetime_names, 3)) < 0)
            return fail(q, "invalid", "\"lifetime\" must be normal, temporary or persistent");
    } else if ((t = parse_name(type, lifetime_names, 3)) >= 1) {
        life = t;
        if (life_s && strcmp(life_s, type) != 0)
            return fail(q, "invalid", "room_type \"%s\" contradicts lifetime \"%s\"", type, life_s);
        if (access_s && (access = parse_name(access_s, access_names, 3)) < 0)
            return fail(q, "invalid", "\"access\" must be public, private or protected");
    } else {
        return fail(q, "invalid",
                    "\"room_type\" must be public, private, protected, temporary "
                    "or persistent");
    }
    if (access == ROOMS_ACCESS_PROTECTED && !pw)
        return fail(q, "invalid", "a protected room needs a \"password\"");
    if (access != ROOMS_ACCESS_PROTECTED && pw)
        return fail(q, "invalid", "\"password\" is only for protected rooms");
    if (life == ROOMS_LIFE_TEMPORARY && !join)
        return fail(q, "invalid", "a temporary room is deleted when empty: \"join\" must be true");
    if (!*q->user)
        return fail(q, "forbidden", "anonymous connections cannot create rooms");

    if (rooms_room__find(rs, q->tenant, id))
        return fail(q, "exists", "room \"%s\" exists", id);
    if (parent_id) {
        parent = rooms_room__find(rs, q->tenant, parent_id);
        if (!parent)
            return fail(q, "not_found", "no room \"%s\"", parent_id);
        if (!need(q, parent, ROOMS_ACT_CREATE_CHILD, NULL))
            return WSHUB_OK;
        if (parent->depth + 1 > ROOMS_MAX_DEPTH)
            return fail(q, "invalid", "rooms nest at most %d deep", ROOMS_MAX_DEPTH);
    }
    tenant = rooms_room__tenant(rs, q->tenant, false);
    if (tenant && tenant->rooms.n >= rs->max_rooms_per_tenant)
        return fail(q, "limit", "the tenant has %" PRIu32 " rooms, the most allowed",
                    rs->max_rooms_per_tenant);
    if (join && q->slot->cs && q->slot->cs->n >= rs->max_rooms_per_connection)
        return fail(q, "limit", "this connection is already in %" PRIu32 " rooms",
                    rs->max_rooms_per_connection);
    if (!tenant && !(tenant = rooms_room__tenant(rs, q->tenant, true)))
        return fail(q, "internal", "out of memory");

    rc = rooms_room__create(rs, tenant, id, parent, &room);
    if (rc != WSHUB_OK)
        return fail(q, "internal", "cannot create room \"%s\": %s", id, rs->host->strerror(rc));
    room->access = (uint8_t)access;
    room->lifetime = (uint8_t)life;
    room->max_members = (uint32_t)max_members;
    room->created_by = strdup(q->user);
    owner = rooms_room__user_get(room, q->user);
    if (!room->created_by || !owner || (name && (free(room->name), !(room->name = strdup(name)))) ||
        (desc && (free(room->description), !(room->description = strdup(desc)))) ||
        (pw && rooms_room__set_password(rs, room, pw, pw_len) != WSHUB_OK)) {
        rooms_room__delete(rs, room, NULL);
        return fail(q, "internal", "cannot create room \"%s\"", id);
    }
    owner->role = ROOMS_ROLE_OWNER;
    rooms_room__audit(rs, room, q->user, "create", id, NULL);
    rs->host->log(rs->self, WSHUB_LOG_INFO, "room %s/%s created by %s (%s, %s)", q->tenant, id,
                  q->user, access_names[access], lifetime_names[life]);

    extra = room_json(rs, room);
    put_bool(extra, "joined", join);
    if (!join) {
        put_str(extra, "role", rooms_acl__role_name(ROOMS_ROLE_OWNER));
        return ack(q, extra);
    }
    return join_and_ack(q, room, id, extra);
}

/* ------------------------------------------------------------------------------------------ */
/* room.leave, room.members, room.list                                                         */
/* ------------------------------------------------------------------------------------------ */

static int on_leave(req_t *q)
{
    rooms_t *rs = q->rs;
    const char *id;
    rooms_room_t *room;
    rooms_cstate_t *cs = q->slot->cs;
    rooms_user_t *u;
    struct json_object *fields;

    if (!(room = need_room(q, &id)))
        return WSHUB_OK;
    u = rooms_room__user(room, q->user);
    if (!cs || !u || !rooms_room__conn_in(q->slot, room))
        return fail(q, "not_found", "not in room \"%s\"", id);
    rooms_proto__left(rs, room, u, cs, q->c, "leave");
    rooms_room__cstate_release(rs, cs);
    rooms_room__user_gc(room, u, rs->host->now_ms());
    fields = json_object_new_object();
    put_str(fields, "room", id);
    ack(q, fields);
    rooms_room__reap(rs, room);
    return WSHUB_OK;
}

/* Members of a public room are visible to anyone in the tenant (anyone may join it anyway);
 * otherwise the matrix's `members` row applies. */
static int on_members(req_t *q)
{
    const char *id;
    rooms_room_t *room;
    struct json_object *fields;
    bool banned;

    if (!(room = need_room(q, &id)))
        return WSHUB_OK;
    if (room->access == ROOMS_ACCESS_PUBLIC) {
        rooms_acl__actor_role(q->rs, q->c, room, &banned);
        if (banned)
            return fail(q, "banned", "you are banned from room \"%s\"", id);
    } else if (!need(q, room, ROOMS_ACT_MEMBERS, NULL)) {
        return WSHUB_OK;
    }
    fields = json_object_new_object();
    put_str(fields, "room", id);
    put_u64(fields, "count", room->n_members);
    put_obj(fields, "members", members_json(q->rs, room));
    return ack(q, fields);
}

/* Private rooms are listed only to those who could enter them: a role (own, inherited, tenant
 * admin), presence, or a pending invitation. */
static bool visible(req_t *q, rooms_room_t *room)
{
    rooms_user_t *u;
    bool banned;

    if (room->access != ROOMS_ACCESS_PRIVATE)
        return true;
    if (rooms_acl__actor_role(q->rs, q->c, room, &banned) != ROOMS_ROLE_NONE)
        return true;
    u = rooms_room__user(room, q->user);
    return !banned && u && (u->invited || u->admitted);
}

static int cmp_room(const void *a, const void *b)
{
    return strcmp((*(rooms_room_t *const *)a)->id, (*(rooms_room_t *const *)b)->id);
}

/* room.list {parent?, after?, limit?}: rooms sorted by id, `limit` per page; `next` is the
 * `after` of the next page when there is one. */
static int on_list(req_t *q)
{
    rooms_t *rs = q->rs;
    const char *parent_id, *after;
    int64_t limit = ROOMS_LIST_DEFAULT;
    rooms_room_t *parent = NULL, **v = NULL, *r;
    rooms_tenant_t *t;
    struct json_object *fields, *arr;
    size_t n = 0, it = 0, start = 0, shown = 0;

    if (!get_str(q, q->root, "parent", F_OPTIONAL, 1, ROOMS_MAX_ID_LEN, F_PRINTABLE, &parent_id,
                 NULL) ||
        !get_str(q, q->root, "after", F_OPTIONAL, 1, ROOMS_MAX_ID_LEN, F_PRINTABLE, &after, NULL) ||
        get_int(q, q->root, "limit", F_OPTIONAL, 1, ROOMS_LIST_MAX, &limit) < 0)
        return WSHUB_OK;
    t = rooms_room__tenant(rs, q->tenant, false);
    if (parent_id) {
        parent = t ? rooms_map__get(&t->rooms, parent_id) : NULL;
        if (!parent || !visible(q, parent))
            return fail(q, "not_found", "no room \"%s\"", parent_id);
    }
    if (t && t->rooms.n) {
        v = malloc(t->rooms.n * sizeof(*v));
        if (!v)
            return fail(q, "internal", "out of memory");
        if (parent) {
            for (uint32_t i = 0; i < parent->n_children; i++)
                if (visible(q, parent->children[i]))
                    v[n++] = parent->children[i];
        } else {
            while ((r = rooms_map__next(&t->rooms, &it)))
                if (!r->parent && visible(q, r))
                    v[n++] = r;
        }
        qsort(v, n, sizeof(*v), cmp_room);
    }
    if (after)
        while (start < n && strcmp(v[start]->id, after) <= 0)
            start++;
    fields = json_object_new_object();
    arr = json_object_new_array();
    for (size_t i = start; arr && i < n && shown < (size_t)limit; i++, shown++) {
        struct json_object *o = room_json(rs, v[i]);
        put_bool(o, "joined", rooms_room__conn_in(q->slot, v[i]));
        if (!o || json_object_array_add(arr, o) != 0) {
            json_object_put(o);
            json_object_put(arr);
            arr = NULL;
        }
    }
    put_str(fields, "parent", parent_id);
    if (!arr) {
        json_object_put(fields);
        fields = NULL;
    } else {
        put_obj(fields, "rooms", arr);
        if (start + shown < n)
            put_str(fields, "next", v[start + shown - 1]->id);
    }
    free(v);
    return ack(q, fields);
}

/* ------------------------------------------------------------------------------------------ */
/* room.send, room.delete_message                                                              */
/* ------------------------------------------------------------------------------------------ */

/*
 * room.send {room, data, include_children?}. Checks in order: presence, matrix, mute, size,
 * filter, slow mode (moderators and above are exempt); then one event, one buffer, one
 * group_send per room. The sending connection does not get its own message back: its ack
 * carries the message id and timestamp.
 */
static int on_send(req_t *q)
{
    rooms_t *rs = q->rs;
    const char *id, *text, *ftext;
    size_t len, flen;
    struct json_object *data, *ev, *from, *fields;
    rooms_room_t *room;
    rooms_user_t *u;
    rooms_role_t role;
    bool subtree = false;
    uint64_t now = rs->host->now_ms(), msg_id;
    const char *why;
    wshub_buf_t *b;
    size_t n;

    if (!(room = need_room(q, &id)) || !get_bool(q, q->root, "include_children", &subtree))
        return WSHUB_OK;
    if (!json_object_object_get_ex(q->root, "data", &data))
        return fail(q, "invalid", "missing field \"data\"");
    if (!rooms_room__conn_in(q->slot, room))
        return fail(q, "forbidden", "join room \"%s\" before sending to it", id);
    if (!need(q, room, subtree ? ROOMS_ACT_SEND_SUBTREE : ROOMS_ACT_SEND, &role))
        return WSHUB_OK;
    u = rooms_room__user(room, q->user);
    if (!u)
        return fail(q, "internal", "membership record missing");
    rooms_room__user_expire(u, now);
    if (u->mute_until_ms)
        return fail(q, "muted", "muted in room \"%s\" for %" PRIu64 " more seconds", id,
                    (u->mute_until_ms - now + 999) / 1000);
    text = json_object_to_json_string_ext(data, JSON_FLAGS);
    if (!text)
        return fail(q, "internal", "out of memory");
    len = strlen(text);
    if (len > rs->max_message_size)
        return fail(q, "too_large", "\"data\" is %zu bytes, the most is %" PRIu32, len,
                    rs->max_message_size);
    /* The filter reads a string's own text, any other value as its JSON text. */
    ftext = text;
    flen = len;
    if (json_object_is_type(data, json_type_string)) {
        ftext = json_object_get_string(data);
        flen = (size_t)json_object_get_string_len(data);
        if (memchr(ftext, '\0', flen))
            return fail(q, "invalid", "\"data\" must not contain NUL characters");
    }
    if ((why = rooms_room__filter(room, ftext, flen)))
        return fail(q, "filtered", "%s", why);
    if (room->slow_mode_s && role < ROOMS_ROLE_MODERATOR && u->last_send_ms &&
        now < u->last_send_ms + (uint64_t)room->slow_mode_s * 1000u)
        return fail(q, "slow_mode", "slow mode: wait %" PRIu64 " ms",
                    u->last_send_ms + (uint64_t)room->slow_mode_s * 1000u - now);
    u->last_send_ms = now;
    msg_id = room->next_msg_id++;

    ev = event_new("room.message", room);
    from = json_object_new_object();
    put_u64(ev, "message_id", msg_id);
    put_str(from, "user_id", q->user);
    put_u64(from, "connection_id", rs->host->conn_id(q->c));
    put_obj(ev, "from", from);
    if (ev)
        json_object_object_add(ev, "data", json_object_get(data));
    put_u64(ev, "ts", now);
    text = ev ? json_object_to_json_string_ext(ev, JSON_FLAGS) : NULL;
    b = text ? rs->host->buf_new(text, strlen(text)) : NULL;
    json_object_put(ev);
    if (!b)
        return fail(q, "internal", "out of memory");
    n = rooms_room__send(rs, room, b, q->c, subtree);
    rs->host->buf_unref(b);
    if (rs->m_messages)
        rs->host->metric_add(rs->m_messages, NULL, 1);

    fields = json_object_new_object();
    put_str(fields, "room", id);
    put_u64(fields, "message_id", msg_id);
    put_u64(fields, "ts", now);
    put_u64(fields, "delivered", n);
    return ack(q, fields);
}

/* room.delete_message {room, message_id}: there is no message store here, so deleting means
 * telling the members (room.message_deleted) to drop it, and recording who did. */
static int on_delete_message(req_t *q)
{
    const char *id;
    rooms_room_t *room;
    int64_t mid;
    char target[32];
    struct json_object *ev, *fields;

    if (!(room = need_room(q, &id)) ||
        get_int(q, q->root, "message_id", F_REQUIRED, 1, INT64_MAX, &mid) < 0 ||
        !need(q, room, ROOMS_ACT_DELETE_MESSAGE, NULL))
        return WSHUB_OK;
    if ((uint64_t)mid >= room->next_msg_id)
        return fail(q, "not_found", "no message %" PRId64 " in room \"%s\"", mid, id);
    snprintf(target, sizeof(target), "%" PRId64, mid);
    rooms_room__audit(q->rs, room, q->user, "delete_message", target, NULL);
    ev = event_new("room.message_deleted", room);
    put_u64(ev, "message_id", (uint64_t)mid);
    put_str(ev, "by", q->user);
    emit(q->rs, room, ev, NULL);
    fields = json_object_new_object();
    put_str(fields, "room", id);
    put_u64(fields, "message_id", (uint64_t)mid);
    return ack(q, fields);
}

/* ------------------------------------------------------------------------------------------ */
/* Moderation: invite, kick, ban, unban, mute                                                  */
/* ------------------------------------------------------------------------------------------ */

/* A text for particular connections (conn_each_user / eviction). */
typedef struct notify {
    const wshub_host_api_t *host;
    const char *text;
    size_t len;
} notify_t;

static int notify_conn(wshub_conn_t *c, void *ud)
{
    const notify_t *n = ud;

    n->host->conn_send_text(c, n->text, n->len);
    return 0;
}

/*
 * Removes every connection of `u` from `room`: each first gets `personal` (room.kicked or
 * room.banned) when given, then leaves; the others hear room.left with `reason` once. The
 * connection records are released as they empty. @return the connections removed.
 */
static uint32_t evict(rooms_t *rs, rooms_room_t *room, rooms_user_t *u, const char *personal,
                      const char *reason)
{
    uint32_t n = 0;

    while (u->n_conns) {
        rooms_cstate_t *cs = u->conns[u->n_conns - 1];
        wshub_conn_t *c = rs->host->conn_lookup(rs->self, room->tenant->name, cs->conn_id);
        if (c && personal)
            rs->host->conn_send_text(c, personal, strlen(personal));
        rooms_proto__left(rs, room, u, cs, c, reason);
        rooms_room__cstate_release(rs, cs);
        n++;
    }
    return n;
}

/* The personal notice of a sanction, serialised (owned by the returned object). */
static struct json_object *sanction_event(const char *type, const rooms_room_t *room,
                                          const char *by, const char *reason, uint64_t until)
{
    struct json_object *ev = event_new(type, room);

    put_str(ev, "by", by);
    put_str(ev, "reason", reason);
    if (until)
        put_u64(ev, "until", until);
    else if (strcmp(type, "room.banned") == 0)
        put_str(ev, "until", NULL);
    return ev;
}

/* room.invite {room, user}: owner/admin; the token in the ack is usable once, by that user. */
static int on_invite(req_t *q)
{
    rooms_t *rs = q->rs;
    const char *id, *target;
    rooms_room_t *room;
    rooms_user_t *u, *ban;
    unsigned char token[ROOMS_TOKEN_LEN];
    char hex[2 * ROOMS_TOKEN_LEN + 1];
    struct json_object *fields, *ev;

    if (!(room = need_room(q, &id)) || !need_user(q, false, &target) ||
        !need(q, room, ROOMS_ACT_INVITE, NULL))
        return WSHUB_OK;
    rooms_acl__resolve(rs, room, target, &ban);
    if (ban)
        return fail(q, "banned", "user \"%s\" is banned from room \"%s\"", target, id);
    if (RAND_bytes(token, sizeof(token)) != 1)
        return fail(q, "internal", "no random bytes for the invitation");
    u = rooms_room__user_get(room, target);
    if (!u)
        return fail(q, "internal", "out of memory");
    memcpy(u->token, token, sizeof(token));
    u->invited = true;
    hex_encode(token, sizeof(token), hex);
    OPENSSL_cleanse(token, sizeof(token));
    rooms_room__audit(rs, room, q->user, "invite", target, NULL);

    ev = event_new("room.invited", room);
    put_str(ev, "by", q->user);
    if (ev) {
        notify_t n = {rs->host, json_object_to_json_string_ext(ev, JSON_FLAGS), 0};
        if (n.text) {
            n.len = strlen(n.text);
            rs->host->conn_each_user(rs->self, q->tenant, target, notify_conn, &n);
        }
        json_object_put(ev);
    }
    fields = json_object_new_object();
    put_str(fields, "room", id);
    put_str(fields, "user", target);
    put_str(fields, "invite", hex);
    OPENSSL_cleanse(hex, sizeof(hex));
    return ack(q, fields);
}

/* room.kick {room, user, reason?}: the user's connections get room.kicked and are removed; an
 * invitation or earlier admission is revoked (they may rejoin only what anyone may join). */
static int on_kick(req_t *q)
{
    rooms_t *rs = q->rs;
    const char *id, *target, *reason;
    rooms_room_t *room;
    rooms_user_t *u;
    rooms_role_t role;
    struct json_object *ev, *fields;
    const char *text;
    uint32_t n;

    if (!(room = need_room(q, &id)) || !need_user(q, true, &target) ||
        !get_str(q, q->root, "reason", F_OPTIONAL, 0, ROOMS_MAX_REASON_LEN, F_ANY, &reason, NULL) ||
        !need(q, room, ROOMS_ACT_KICK, &role) || !need_lower(q, room, role, target))
        return WSHUB_OK;
    u = rooms_room__user(room, target);
    if (!u || !u->n_conns)
        return fail(q, "not_found", "user \"%s\" is not in room \"%s\"", target, id);
    ev = sanction_event("room.kicked", room, q->user, reason, 0);
    text = ev ? json_object_to_json_string_ext(ev, JSON_FLAGS) : NULL;
    n = evict(rs, room, u, text, "kicked");
    json_object_put(ev);
    u->invited = false;
    u->admitted = false;
    rooms_room__audit(rs, room, q->user, "kick", target, reason);
    rooms_room__user_gc(room, u, rs->host->now_ms());
    fields = json_object_new_object();
    put_str(fields, "room", id);
    put_str(fields, "user", target);
    put_u64(fields, "connections", n);
    ack(q, fields);
    rooms_room__reap(rs, room);
    return WSHUB_OK;
}

/*
 * room.ban {room, user, duration?, reason?}: records the ban (permanent without `duration`),
 * revokes invitation and admission, and removes the user from the room and from every room of
 * its subtree where the ban now applies (a child where the user holds a role of its own is
 * left alone: the child's role wins).
 */
static int on_ban(req_t *q)
{
    rooms_t *rs = q->rs;
    const char *id, *target, *reason;
    int64_t duration = 0;
    rooms_room_t *room, **sub = NULL;
    size_t n_sub = 0;
    rooms_user_t *u;
    rooms_role_t role;
    uint64_t now = rs->host->now_ms(), until;
    char *reason_copy = NULL;
    struct json_object *fields;
    uint32_t removed = 0;

    if (!(room = need_room(q, &id)) || !need_user(q, true, &target) ||
        get_int(q, q->root, "duration", F_OPTIONAL, 1, ROOMS_MAX_DURATION_S, &duration) < 0 ||
        !get_str(q, q->root, "reason", F_OPTIONAL, 0, ROOMS_MAX_REASON_LEN, F_ANY, &reason, NULL) ||
        !need(q, room, ROOMS_ACT_BAN, &role) || !need_lower(q, room, role, target))
        return WSHUB_OK;
    until = duration ? now + (uint64_t)duration * 1000u : 0;
    if ((reason && !(reason_copy = strdup(reason))) ||
        rooms_room__subtree(room, &sub, &n_sub) != WSHUB_OK ||
        !(u = rooms_room__user_get(room, target))) {
        free(reason_copy);
        free(sub);
        return fail(q, "internal", "out of memory");
    }
    u->banned = true;
    u->ban_until_ms = until;
    free(u->ban_reason);
    u->ban_reason = reason_copy;
    u->invited = false;
    u->admitted = false;
    OPENSSL_cleanse(u->token, sizeof(u->token));
    for (size_t i = 0; i < n_sub; i++) {
        rooms_user_t *su = rooms_room__user(sub[i], target), *ban;
        struct json_object *ev;
        if (!su || !su->n_conns)
            continue;
        rooms_acl__resolve(rs, sub[i], target, &ban);
        if (!ban)
            continue;
        ev = sanction_event("room.banned", sub[i], q->user, reason, until);
        removed += evict(rs, sub[i], su, ev ? json_object_to_json_string_ext(ev, JSON_FLAGS) : NULL,
                         "banned");
        json_object_put(ev);
        if (su != u)
            rooms_room__user_gc(sub[i], su, now);
    }
    free(sub);
    rooms_room__audit(rs, room, q->user, "ban", target, reason);
    fields = json_object_new_object();
    put_str(fields, "room", id);
    put_str(fields, "user", target);
    if (until)
        put_u64(fields, "until", until);
    else
        put_str(fields, "until", NULL);
    put_u64(fields, "connections", removed);
    ack(q, fields);
    rooms_room__reap_subtree(rs, room);
    return WSHUB_OK;
}

/* room.unban {room, user}: lifts a ban set on this room (an inherited one is lifted where it
 * was set). */
static int on_unban(req_t *q)
{
    rooms_t *rs = q->rs;
    const char *id, *target;
    rooms_room_t *room;
    rooms_user_t *u;
    rooms_role_t role;
    struct json_object *fields;

    if (!(room = need_room(q, &id)) || !need_user(q, true, &target) ||
        !need(q, room, ROOMS_ACT_UNBAN, &role))
        return WSHUB_OK;
    u = rooms_room__user(room, target);
    if (u)
        rooms_room__user_expire(u, rs->host->now_ms());
    if (!u || !u->banned)
        return fail(q, "not_found", "user \"%s\" is not banned in room \"%s\"", target, id);
    if (!need_lower(q, room, role, target))
        return WSHUB_OK;
    u->banned = false;
    u->ban_until_ms = 0;
    free(u->ban_reason);
    u->ban_reason = NULL;
    rooms_room__audit(rs, room, q->user, "unban", target, NULL);
    rooms_room__user_gc(room, u, rs->host->now_ms());
    fields = json_object_new_object();
    put_str(fields, "room", id);
    put_str(fields, "user", target);
    return ack(q, fields);
}

/* room.mute {room, user, duration}: no sending for `duration` seconds; 0 lifts a mute. */
static int on_mute(req_t *q)
{
    rooms_t *rs = q->rs;
    const char *id, *target;
    int64_t duration;
    rooms_room_t *room;
    rooms_user_t *u;
    rooms_role_t role;
    uint64_t now = rs->host->now_ms(), until;
    struct json_object *fields;

    if (!(room = need_room(q, &id)) || !need_user(q, true, &target) ||
        get_int(q, q->root, "duration", F_REQUIRED, 0, ROOMS_MAX_DURATION_S, &duration) < 0 ||
        !need(q, room, ROOMS_ACT_MUTE, &role) || !need_lower(q, room, role, target))
        return WSHUB_OK;
    u = rooms_room__user_get(room, target);
    if (!u)
        return fail(q, "internal", "out of memory");
    until = duration ? now + (uint64_t)duration * 1000u : 0;
    u->mute_until_ms = until;
    rooms_room__audit(rs, room, q->user, duration ? "mute" : "unmute", target, NULL);
    rooms_room__user_gc(room, u, now);
    fields = json_object_new_object();
    put_str(fields, "room", id);
    put_str(fields, "user", target);
    if (until)
        put_u64(fields, "until", until);
    else
        put_str(fields, "until", NULL);
    return ack(q, fields);
}

/* ------------------------------------------------------------------------------------------ */
/* Roles                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static void role_changed(rooms_t *rs, rooms_room_t *room, const char *user, rooms_role_t role,
                         rooms_role_t previous, const char *by)
{
    struct json_object *ev = event_new("room.role_changed", room);

    put_str(ev, "user_id", user);
    put_str(ev, "role", rooms_acl__role_name(role));
    put_str(ev, "previous", rooms_acl__role_name(previous));
    put_str(ev, "by", by);
    emit(rs, room, ev, NULL);
}

/*
 * room.set_role {room, user, role}: role is owner, admin, moderator, member or none (none
 * removes the role set on this room, so the parent's applies again). The new role must be
 * below the actor's, except `owner`, which an owner gives away: every explicit owner of this
 * room becomes admin.
 */
static int on_set_role(req_t *q)
{
    rooms_t *rs = q->rs;
    const char *id, *target, *role_s;
    rooms_room_t *room;
    rooms_user_t *u, *x;
    rooms_role_t actor, previous, now_role;
    int want;
    size_t it = 0;
    struct json_object *fields;

    if (!(room = need_room(q, &id)) || !need_user(q, false, &target) ||
        !get_str(q, q->root, "role", F_REQUIRED, 1, 32, F_PRINTABLE, &role_s, NULL))
        return WSHUB_OK;
    want = rooms_acl__role_parse(role_s, true);
    if (want < 0)
        return fail(q, "invalid", "\"role\" must be owner, admin, moderator, member or none");
    if (!need(q, room, ROOMS_ACT_SET_ROLE, &actor) || !need_lower(q, room, actor, target))
        return WSHUB_OK;
    if (want == ROOMS_ROLE_OWNER ? actor != ROOMS_ROLE_OWNER : (rooms_role_t)want >= actor)
        return fail(q, "forbidden", "role %s cannot give role %s", rooms_acl__role_name(actor),
                    role_s);
    previous = rooms_acl__target_role(rs, room, target);
    u = rooms_room__user_get(room, target);
    if (!u)
        return fail(q, "internal", "out of memory");
    if (want == ROOMS_ROLE_OWNER) {
        /* Transfer: demote the explicit owners first (normally exactly one: the creator). */
        while ((x = rooms_map__next(&room->users, &it))) {
            if (x != u && x->role == ROOMS_ROLE_OWNER) {
                x->role = ROOMS_ROLE_ADMIN;
                role_changed(rs, room, x->user, ROOMS_ROLE_ADMIN, ROOMS_ROLE_OWNER, q->user);
            }
        }
    }
    u->role = (uint8_t)want;
    now_role = rooms_acl__target_role(rs, room, target);
    rooms_room__audit(rs, room, q->user, want == ROOMS_ROLE_OWNER ? "transfer" : "set_role", target,
                      role_s);
    role_changed(rs, room, target, now_role, previous, q->user);
    rooms_room__user_gc(room, u, rs->host->now_ms());
    fields = json_object_new_object();
    put_str(fields, "room", id);
    put_str(fields, "user", target);
    put_str(fields, "role", rooms_acl__role_name(now_role));
    return ack(q, fields);
}

/* ------------------------------------------------------------------------------------------ */
/* room.update, room.delete, room.audit                                                        */
/* ------------------------------------------------------------------------------------------ */

/* The settings part of a room description (room.updated). */
static struct json_object *settings_json(const rooms_room_t *room)
{
    struct json_object *o = json_object_new_object();

    put_str(o, "name", room->name);
    put_str(o, "description", room->description);
    put_u64(o, "max_members", room->max_members);
    put_obj(o, "filter", filter_json(room));
    put_u64(o, "slow_mode", room->slow_mode_s);
    return o;
}

/* Reads filter.deny_patterns into arrays borrowed from the request. -1: answered. */
static int get_patterns(req_t *q, struct json_object *arr, const char ***src, size_t **lens,
                        size_t *n)
{
    rooms_t *rs = q->rs;
    size_t count;

    if (!json_object_is_type(arr, json_type_array))
        return refuse(q, "\"filter.deny_patterns\" must be an array of strings");
    count = json_object_array_length(arr);
    if (count > rs->filter_max_patterns)
        return refuse(q, "at most %" PRIu32 " deny patterns, got %zu", rs->filter_max_patterns,
                      count);
    *n = count;
    *src = calloc(count ? count : 1, sizeof(**src));
    *lens = calloc(count ? count : 1, sizeof(**lens));
    if (!*src || !*lens) {
        fail(q, "internal", "out of memory");
        return -1;
    }
    for (size_t i = 0; i < count; i++) {
        struct json_object *p = json_object_array_get_idx(arr, i);
        const char *s;
        size_t len;
        if (!json_object_is_type(p, json_type_string))
            return refuse(q, "filter.deny_patterns[%zu] must be a string", i);
        s = json_object_get_string(p);
        len = (size_t)json_object_get_string_len(p);
        if (len == 0 || len > rs->filter_max_pattern_length || memchr(s, '\0', len))
            return refuse(q, "filter.deny_patterns[%zu] must be 1 to %" PRIu32 " bytes without NUL",
                          i, rs->filter_max_pattern_length);
        (*src)[i] = s;
        (*lens)[i] = len;
    }
    return 1;
}

/*
 * room.update {room, name?, description?, max_members?, filter?: {max_length?,
 * deny_patterns?}, slow_mode?, password?}: everything is validated, compiled and copied first;
 * only then is the room changed, so a refused update changes nothing. A new password revokes
 * earlier admissions (those who knew the old one must use the new one next time).
 */
static int on_update(req_t *q)
{
    rooms_t *rs = q->rs;
    const char *id, *name, *desc, *pw, **pat_src = NULL;
    size_t pw_len, *pat_len = NULL, n_pat = 0, it = 0;
    int64_t max_members = 0, slow = 0, max_length = 0;
    int has_max = 0, has_slow = 0, has_len = 0, has_pats = 0;
    struct json_object *filter, *pats = NULL, *fields, *ev, *changed;
    rooms_room_t *room;
    regex_t *re = NULL;
    char **re_src = NULL, *name_copy = NULL, *desc_copy = NULL, err[256], reason[128] = "";
    rooms_user_t *u;

    if (!(room = need_room(q, &id)) || !need(q, room, ROOMS_ACT_UPDATE, NULL))
        return WSHUB_OK;
    if (!get_str(q, q->root, "name", F_OPTIONAL, 1, ROOMS_MAX_NAME_LEN, F_PRINTABLE, &name, NULL) ||
        !get_str(q, q->root, "description", F_OPTIONAL, 0, ROOMS_MAX_DESC_LEN, F_ANY, &desc,
                 NULL) ||
        !get_str(q, q->root, "password", F_OPTIONAL, 1, ROOMS_MAX_PASSWORD_LEN, F_ANY, &pw,
                 &pw_len) ||
        (has_max = get_int(q, q->root, "max_members", F_OPTIONAL, 1, rs->max_members_per_room,
                           &max_members)) < 0 ||
        (has_slow = get_int(q, q->root, "slow_mode", F_OPTIONAL, 0, ROOMS_MAX_SLOW_MODE_S, &slow)) <
            0)
        return WSHUB_OK;
    filter = field(q->root, "filter");
    if (filter) {
        if (!json_object_is_type(filter, json_type_object))
            return fail(q, "invalid", "\"filter\" must be an object");
        if ((has_len = get_int(q, filter, "max_length", F_OPTIONAL, 0, rs->max_message_size,
                               &max_length)) < 0)
            return WSHUB_OK;
        pats = field(filter, "deny_patterns");
        if (pats && (has_pats = get_patterns(q, pats, &pat_src, &pat_len, &n_pat)) < 0)
            goto done;
    }
    if (!name && !desc && !pw && !has_max && !has_slow && !has_len && !has_pats) {
        fail(q, "invalid", "nothing to update");
        goto done;
    }
    if (pw && room->access != ROOMS_ACCESS_PROTECTED) {
        fail(q, "invalid", "\"password\" is only for protected rooms");
        goto done;
    }
    if (has_pats && rooms_room__compile_filter(pat_src, pat_len, n_pat, &re, &re_src, err,
                                               sizeof(err)) != WSHUB_OK) {
        fail(q, "invalid", "%s", err);
        goto done;
    }
    if ((name && !(name_copy = strdup(name))) || (desc && !(desc_copy = strdup(desc))) ||
        (pw && rooms_room__set_password(rs, room, pw, pw_len) != WSHUB_OK)) {
        fail(q, "internal", "cannot update room \"%s\"", id);
        rooms_room__free_filter(re, re_src, (uint32_t)n_pat);
        free(name_copy);
        free(desc_copy);
        goto done;
    }

    changed = json_object_new_array();
#define CHANGED(f)                                                                                 \
    do {                                                                                           \
        if (changed)                                                                               \
            json_object_array_add(changed, json_object_new_string(f));                             \
        if (strlen(reason) + strlen(f) + 2 < sizeof(reason)) {                                     \
            if (reason[0])                                                                         \
                strcat(reason, ",");                                                               \
            strcat(reason, f);                                                                     \
        }                                                                                          \
    } while (0)
    if (name_copy) {
        free(room->name);
        room->name = name_copy;
        CHANGED("name");
    }
    if (desc_copy) {
        free(room->description);
        room->description = desc_copy;
        CHANGED("description");
    }
    if (has_max) {
        room->max_members = (uint32_t)max_members;
        CHANGED("max_members");
    }
    if (has_slow) {
        room->slow_mode_s = (uint32_t)slow;
        CHANGED("slow_mode");
    }
    if (has_len) {
        room->filter_max_length = (uint32_t)max_length;
        CHANGED("filter.max_length");
    }
    if (has_pats) {
        rooms_room__free_filter(room->deny, room->deny_src, room->n_deny);
        room->deny = re;
        room->deny_src = re_src;
        room->n_deny = (uint32_t)n_pat;
        CHANGED("filter.deny_patterns");
    }
    if (pw) {
        while ((u = rooms_map__next(&room->users, &it)))
            u->admitted = false;
        CHANGED("password");
    }
#undef CHANGED
    rooms_room__audit(rs, room, q->user, "update", id, reason);
    ev = event_new("room.updated", room);
    put_str(ev, "by", q->user);
    put_obj(ev, "changed", json_object_get(changed));
    put_obj(ev, "settings", settings_json(room));
    emit(rs, room, ev, NULL);
    fields = room_json(rs, room);
    put_obj(fields, "changed", changed);
    ack(q, fields);
done:
    free(pat_src);
    free(pat_len);
    return WSHUB_OK;
}

/* room.delete {room}: owner only; the room and its whole subtree go, every member of each is
 * told (room.deleted) and leaves. */
static int on_delete(req_t *q)
{
    rooms_t *rs = q->rs;
    const char *id;
    rooms_room_t *room, *parent;
    struct json_object *fields;
    size_t n;

    if (!(room = need_room(q, &id)) || !need(q, room, ROOMS_ACT_DELETE, NULL))
        return WSHUB_OK;
    parent = room->parent;
    n = rooms_room__delete(rs, room, q->user);
    rs->host->log(rs->self, WSHUB_LOG_INFO, "room %s/%s deleted by %s (%zu room(s))", q->tenant, id,
                  q->user, n);
    fields = json_object_new_object();
    put_str(fields, "room", id);
    put_u64(fields, "deleted", n);
    ack(q, fields);
    /* A temporary parent left without members and children goes too. */
    if (parent)
        rooms_room__reap(rs, parent);
    return WSHUB_OK;
}

/* room.audit {room, limit?}: the newest entries first. */
static int on_audit(req_t *q)
{
    rooms_t *rs = q->rs;
    const char *id;
    rooms_room_t *room;
    int64_t limit =
        ROOMS_LIST_DEFAULT < rs->audit_max_entries ? ROOMS_LIST_DEFAULT : rs->audit_max_entries;
    struct json_object *fields, *arr;

    if (!(room = need_room(q, &id)) ||
        get_int(q, q->root, "limit", F_OPTIONAL, 1, rs->audit_max_entries, &limit) < 0 ||
        !need(q, room, ROOMS_ACT_AUDIT, NULL))
        return WSHUB_OK;
    fields = json_object_new_object();
    arr = json_object_new_array();
    for (uint32_t k = 0; arr && k < room->audit_n && k < (uint64_t)limit; k++) {
        const rooms_audit_t *a =
            &room->audit[(room->audit_head + room->audit_n - 1 - k) % room->audit_cap];
        struct json_object *e = json_object_new_object();
        put_str(e, "actor", a->actor);
        put_str(e, "action", a->action);
        put_str(e, "target", a->target);
        put_str(e, "reason", a->reason);
        put_u64(e, "ts", a->ts_ms);
        if (!e || json_object_array_add(arr, e) != 0) {
            json_object_put(e);
            json_object_put(arr);
            arr = NULL;
        }
    }
    if (!arr) {
        json_object_put(fields);
        return ack(q, NULL);
    }
    put_str(fields, "room", id);
    put_u64(fields, "total", room->audit_n);
    put_obj(fields, "entries", arr);
    return ack(q, fields);
}

/* ------------------------------------------------------------------------------------------ */
/* Routing                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static const struct {
    const char *type;
    int (*fn)(req_t *q);
} routes[] = {
    {"room.create", on_create},   {"room.join", on_join},
    {"room.leave", on_leave},     {"room.send", on_send},
    {"room.members", on_members}, {"room.list", on_list},
    {"room.invite", on_invite},   {"room.kick", on_kick},
    {"room.ban", on_ban},         {"room.unban", on_unban},
    {"room.mute", on_mute},       {"room.set_role", on_set_role},
    {"room.update", on_update},   {"room.delete", on_delete},
    {"room.audit", on_audit},     {"room.delete_message", on_delete_message},
};

/*
 * The one route callback for every room.* type (`ud` is the plugin); the handler is found by
 * the envelope type. It parses the request once, hands it to the handler, which always
 * answers, and frees it.
 */
static int on_route(wshub_conn_t *c, const wshub_msg_t *msg, void *ud)
{
    rooms_t *rs = ud;
    req_t q = {rs, rs->host, c, msg, NULL, NULL, NULL, NULL};
    int (*fn)(req_t *) = NULL;

    for (size_t i = 0; msg->type && i < sizeof(routes) / sizeof(routes[0]); i++)
        if (strcmp(msg->type, routes[i].type) == 0)
            fn = routes[i].fn;
    if (!fn)
        return WSHUB_ERR_NOTFOUND;
    q.tenant = rs->host->conn_tenant(c);
    q.user = rs->host->conn_user(c);
    q.slot = rs->host->conn_state(c, rs->self);
    if (!q.slot || !q.tenant || !q.user)
        return fail(&q, "internal", "no connection state");
    q.root = parse(msg);
    if (!q.root)
        return fail(&q, "invalid", "the request must be a JSON object");
    fn(&q);
    json_object_put(q.root);
    return WSHUB_OK;
}

int rooms_proto__register(rooms_t *rs)
{
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
        int rc = rs->host->route_add(rs->self, routes[i].type, on_route, rs);
        if (rc != WSHUB_OK) {
            rs->host->set_error(rs->self, "cannot route %s: %s", routes[i].type,
                                rs->host->strerror(rc));
            return rc;
        }
    }
    return WSHUB_OK;
}
