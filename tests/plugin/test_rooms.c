/*
 * test_rooms: the rooms plugin (plugins/rooms/rooms*.c, compiled into this executable) against the
 * fake host. Every request goes through fake_host__deliver like a client message; replies and
 * events are read back from the fake connections' outboxes and parsed with json-c.
 *
 * Requests are written with single quotes for readability; call() turns them into double
 * quotes and adds a fresh numeric "id", then returns the ack/error carrying that id.
 */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <json-c/json.h>

#include <wshub/sdk.h>

#include "fake_host.h"

extern const wshub_plugin_desc_t wshub_plugin_entry;

#define BASE_CFG "pbkdf2_iterations: 1000\n"

/* Parsed replies and events are kept until teardown, so tests can hold on to them freely. */
static struct json_object *kept[4096];
static size_t n_kept;
static int next_id = 1;

static struct json_object *hold(struct json_object *o)
{
    if (o && n_kept < sizeof(kept) / sizeof(kept[0]))
        kept[n_kept++] = o;
    else
        json_object_put(o);
    return o;
}

static void release_kept(void)
{
    for (size_t i = 0; i < n_kept; i++)
        json_object_put(kept[i]);
    n_kept = 0;
}

static void load(const char *cfg)
{
    ck_assert_int_eq(fake_host__load(&wshub_plugin_entry, cfg), WSHUB_OK);
    ck_assert_int_eq(fake_host__start(), WSHUB_OK);
}

static void setup(void)
{
    load(BASE_CFG);
}

/* No buffer leaked, and no reply the fake found malformed (it logs those at ERR). */
static void teardown(void)
{
    release_kept();
    fake_host__unload();
    for (size_t i = 0; i < fake_host__n_logs(); i++)
        ck_assert_msg(strncmp(fake_host__log_at(i), "ERR fake_host", 13) != 0, "%s",
                      fake_host__log_at(i));
    ck_assert_msg(!fake_host__log_contains("leaked"), "the plugin leaked a buffer");
}

static fake_conn_t *conn(const char *tenant, const char *user)
{
    fake_conn_t *c = fake_host__conn_new(tenant, user, NULL);
    ck_assert_ptr_nonnull(c);
    return c;
}

/* A connection whose token carries the tenant-admin role. */
static fake_conn_t *admin_conn(const char *tenant, const char *user)
{
    fake_conn_t *c = conn(tenant, user);
    c->roles[c->n_roles++] = strdup("admin");
    return c;
}

static const char *str(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int64_t num(struct json_object *o, const char *key)
{
    struct json_object *v;
    if (!o || !json_object_object_get_ex(o, key, &v))
        return -1;
    return json_object_get_int64(v);
}

static struct json_object *member(struct json_object *o, const char *key)
{
    struct json_object *v = NULL;
    if (o)
        json_object_object_get_ex(o, key, &v);
    return v;
}

/* Sends one request; returns the ack or error carrying its id (never NULL). */
static struct json_object *vcall(fake_conn_t *c, const char *fmt, va_list ap)
{
    char text[16384];
    struct json_object *req;
    size_t before;
    int id = next_id++;

    vsnprintf(text, sizeof(text), fmt, ap);
    for (char *p = text; *p; p++)
        if (*p == '\'')
            *p = '"';
    req = json_tokener_parse(text);
    ck_assert_msg(req != NULL, "bad test JSON: %s", text);
    json_object_object_add(req, "id", json_object_new_int(id));
    if (c->n_out > FAKE_MAX_OUT - 40)
        fake_host__conn_clear_out(c);
    before = c->n_out;
    fake_host__deliver(c, json_object_to_json_string_ext(req, JSON_C_TO_STRING_PLAIN));
    json_object_put(req);
    for (size_t i = before; i < c->n_out; i++) {
        struct json_object *m = json_tokener_parse(c->out[i]);
        const char *type = str(m, "type");
        if (type && (!strcmp(type, "ack") || !strcmp(type, "error")) && num(m, "id") == id)
            return hold(m);
        json_object_put(m);
    }
    ck_abort_msg("no reply to %s", text);
    return NULL;
}

static struct json_object *call(fake_conn_t *c, const char *fmt, ...)
{
    struct json_object *r;
    va_list ap;
    va_start(ap, fmt);
    r = vcall(c, fmt, ap);
    va_end(ap);
    return r;
}

static struct json_object *ok(fake_conn_t *c, const char *fmt, ...)
{
    struct json_object *r;
    va_list ap;
    va_start(ap, fmt);
    r = vcall(c, fmt, ap);
    va_end(ap);
    ck_assert_msg(!strcmp(str(r, "type"), "ack"), "expected ack, got %s",
                  json_object_to_json_string(r));
    return r;
}

static struct json_object *err(fake_conn_t *c, const char *code, const char *fmt, ...)
{
    struct json_object *r;
    va_list ap;
    va_start(ap, fmt);
    r = vcall(c, fmt, ap);
    va_end(ap);
    ck_assert_msg(!strcmp(str(r, "type"), "error") && !strcmp(str(r, "code"), code),
                  "expected error %s, got %s", code, json_object_to_json_string(r));
    return r;
}

/* Messages of `type` in c's outbox (since its last clear). */
static size_t count_type(const fake_conn_t *c, const char *type)
{
    size_t n = 0;
    for (size_t i = 0; i < c->n_out; i++) {
        struct json_object *m = json_tokener_parse(c->out[i]);
        const char *t = str(m, "type");
        if (t && !strcmp(t, type))
            n++;
        json_object_put(m);
    }
    return n;
}

/* The last message of `type` in c's outbox, or NULL. */
static struct json_object *last_type(const fake_conn_t *c, const char *type)
{
    for (size_t i = c->n_out; i > 0; i--) {
        struct json_object *m = json_tokener_parse(c->out[i - 1]);
        const char *t = str(m, "type");
        if (t && !strcmp(t, type))
            return hold(m);
        json_object_put(m);
    }
    return NULL;
}

/* The entry of `user` in a members array, or NULL. */
static struct json_object *find_member(struct json_object *arr, const char *user)
{
    for (size_t i = 0; arr && i < json_object_array_length(arr); i++) {
        struct json_object *m = json_object_array_get_idx(arr, i);
        if (!strcmp(str(m, "user_id"), user))
            return m;
    }
    return NULL;
}

static bool room_exists(fake_conn_t *c, const char *room)
{
    struct json_object *r = call(c, "{'type':'room.members','room':'%s'}", room);
    return !strcmp(str(r, "type"), "ack") ||
           (str(r, "code") && strcmp(str(r, "code"), "not_found") != 0);
}

/* ------------------------------------------------------------------------------------------ */
/* Registration                                                                                */
/* ------------------------------------------------------------------------------------------ */

START_TEST(test_registers_routes_service_and_notice)
{
    static const char *const types[] = {
        "room.create",  "room.join",   "room.leave",  "room.send",
        "room.members", "room.list",   "room.invite", "room.kick",
        "room.ban",     "room.unban",  "room.mute",   "room.set_role",
        "room.update",  "room.delete", "room.audit",  "room.delete_message"};
    const wshub_svc_rooms_v1_t *svc = fake_host__service(WSHUB_SVC_ROOMS, 1);

    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
        ck_assert_msg(fake_host__has_route(types[i]), "%s not routed", types[i]);
    ck_assert_ptr_nonnull(svc);
    ck_assert_ptr_nonnull(svc->send);
    ck_assert_ptr_nonnull(svc->is_member);
    ck_assert(fake_host__log_contains("NOTICE no store service loaded: persistence is "
                                      "unavailable"));
    ck_assert(fake_host__log_contains("WARN pbkdf2_iterations is 1000"));
    ck_assert_str_eq(wshub_plugin_entry.provides[0], "rooms");
    ck_assert_ptr_null(wshub_plugin_entry.provides[1]);
}
END_TEST

START_TEST(test_refuses_out_of_range_option)
{
    ck_assert_int_ne(fake_host__load(&wshub_plugin_entry, "max_rooms_per_connection: 0\n"),
                     WSHUB_OK);
    ck_assert_ptr_nonnull(strstr(fake_host__last_error(), "max_rooms_per_connection"));
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Permission matrix: every role x every action                                                */
/* ------------------------------------------------------------------------------------------ */

enum { R_OWNER, R_ADMIN, R_MODERATOR, R_MEMBER, R_OUTSIDER, R_TENANT_ADMIN, N_ROLES };
static const char *const role_label[N_ROLES] = {"owner",  "admin",    "moderator",
                                                "member", "outsider", "tenant-admin"};

static const struct {
    const char *action;
    const char *request; /* %s: the room */
    bool allowed[N_ROLES];
} matrix[] = {
    /*                                                   owner  admin  mod    member out    tadm */
    {"send", "{'type':'room.send','room':'r','data':'hi'}", {1, 1, 1, 1, 0, 1}},
    {"send_subtree",
     "{'type':'room.send','room':'r','data':'hi','include_children':true}",
     {1, 1, 1, 0, 0, 1}},
    {"members", "{'type':'room.members','room':'r'}", {1, 1, 1, 1, 0, 1}},
    {"kick", "{'type':'room.kick','room':'r','user':'victim'}", {1, 1, 1, 0, 0, 1}},
    {"ban", "{'type':'room.ban','room':'r','user':'stranger','duration':60}", {1, 1, 1, 0, 0, 1}},
    {"unban", "{'type':'room.unban','room':'r','user':'banned_one'}", {1, 1, 1, 0, 0, 1}},
    {"mute", "{'type':'room.mute','room':'r','user':'stranger','duration':60}", {1, 1, 1, 0, 0, 1}},
    {"delete_message",
     "{'type':'room.delete_message','room':'r','message_id':1}",
     {1, 1, 1, 0, 0, 1}},
    {"audit", "{'type':'room.audit','room':'r'}", {1, 1, 1, 0, 0, 1}},
    {"invite", "{'type':'room.invite','room':'r','user':'newbie'}", {1, 1, 0, 0, 0, 1}},
    {"update", "{'type':'room.update','room':'r','slow_mode':5}", {1, 1, 0, 0, 0, 1}},
    {"set_role",
     "{'type':'room.set_role','room':'r','user':'victim','role':'moderator'}",
     {1, 1, 0, 0, 0, 1}},
    {"create_child",
     "{'type':'room.create','room':'kid','room_type':'public','parent':'r'}",
     {1, 1, 0, 0, 0, 1}},
    {"delete", "{'type':'room.delete','room':'r'}", {1, 0, 0, 0, 0, 1}},
};
#define N_ACTIONS (sizeof(matrix) / sizeof(matrix[0]))

/*
 * The world of one matrix cell: a private room `r` created by `boss` (owner, present), a
 * present member `victim`, a ban on `banned_one`, one message sent; the actor holds the role
 * under test and is present unless it is an outsider. Targets are chosen so that the target
 * rule (strictly lower role) never decides: a refusal must come from the matrix itself (its
 * message says so), except a send by an outsider, refused because it has not joined.
 */
static fake_conn_t *matrix_world(int role)
{
    fake_conn_t *boss = conn("acme", "boss"), *victim = conn("acme", "victim"), *actor;

    ok(boss, "{'type':'room.create','room':'r','room_type':'private'}");
    ok(boss, "{'type':'room.invite','room':'r','user':'victim'}");
    ok(victim, "{'type':'room.join','room':'r'}");
    ok(boss, "{'type':'room.ban','room':'r','user':'banned_one'}");
    ok(boss, "{'type':'room.send','room':'r','data':'first'}");
    switch (role) {
    case R_OWNER:
        return boss;
    case R_ADMIN:
    case R_MODERATOR:
    case R_MEMBER:
        actor = conn("acme", "actor");
        ok(boss, "{'type':'room.set_role','room':'r','user':'actor','role':'%s'}",
           role == R_ADMIN       ? "admin"
           : role == R_MODERATOR ? "moderator"
                                 : "member");
        ok(actor, "{'type':'room.join','room':'r'}");
        return actor;
    case R_TENANT_ADMIN:
        actor = admin_conn("acme", "actor");
        ok(actor, "{'type':'room.join','room':'r'}");
        return actor;
    default:
        return conn("acme", "actor");
    }
}

START_TEST(test_permission_matrix)
{
    size_t action = (size_t)_i / N_ROLES;
    int role = _i % N_ROLES;
    fake_conn_t *actor = matrix_world(role);
    struct json_object *r = call(actor, matrix[action].request, "");
    bool allowed = matrix[action].allowed[role];

    if (allowed)
        ck_assert_msg(!strcmp(str(r, "type"), "ack"), "%s by %s: expected ack, got %s",
                      matrix[action].action, role_label[role], json_object_to_json_string(r));
    else
        ck_assert_msg(str(r, "code") && !strcmp(str(r, "code"), "forbidden") &&
                          (strstr(str(r, "message"), "is not allowed for role") ||
                           strstr(str(r, "message"), "before sending")),
                      "%s by %s: expected forbidden by the matrix, got %s", matrix[action].action,
                      role_label[role], json_object_to_json_string(r));
}
END_TEST

/* Actors act only on targets of a strictly lower role. */
START_TEST(test_targets_must_rank_lower)
{
    fake_conn_t *boss = conn("acme", "boss"), *mod = conn("acme", "mod"),
                *mod2 = conn("acme", "mod2"), *adm = conn("acme", "adm");

    ok(boss, "{'type':'room.create','room':'r','room_type':'public'}");
    ok(boss, "{'type':'room.set_role','room':'r','user':'mod','role':'moderator'}");
    ok(boss, "{'type':'room.set_role','room':'r','user':'mod2','role':'moderator'}");
    ok(boss, "{'type':'room.set_role','room':'r','user':'adm','role':'admin'}");
    ok(mod, "{'type':'room.join','room':'r'}");
    ok(mod2, "{'type':'room.join','room':'r'}");
    ok(adm, "{'type':'room.join','room':'r'}");
    err(mod, "forbidden", "{'type':'room.kick','room':'r','user':'mod2'}");
    err(mod, "forbidden", "{'type':'room.ban','room':'r','user':'adm'}");
    err(mod, "forbidden", "{'type':'room.mute','room':'r','user':'boss','duration':5}");
    err(adm, "forbidden", "{'type':'room.kick','room':'r','user':'boss'}");
    /* An admin gives roles below admin only, and cannot touch another admin. */
    err(adm, "forbidden", "{'type':'room.set_role','room':'r','user':'mod','role':'admin'}");
    err(adm, "forbidden", "{'type':'room.set_role','room':'r','user':'mod','role':'owner'}");
    ok(adm, "{'type':'room.set_role','room':'r','user':'mod','role':'member'}");
    ok(adm, "{'type':'room.kick','room':'r','user':'mod2'}");
    /* Nobody acts on a tenant admin, whatever its room role. */
    {
        fake_conn_t *tad = admin_conn("acme", "tad");
        ok(tad, "{'type':'room.join','room':'r'}");
        err(boss, "forbidden", "{'type':'room.kick','room':'r','user':'tad'}");
        ok(tad, "{'type':'room.kick','room':'r','user':'adm'}");
    }
}
END_TEST

/* set_role owner transfers: the old owner becomes admin, and can no longer delete. */
START_TEST(test_owner_transfer)
{
    fake_conn_t *boss = conn("acme", "boss"), *al = conn("acme", "al");
    struct json_object *r, *ev;

    ok(boss, "{'type':'room.create','room':'r','room_type':'public'}");
    ok(al, "{'type':'room.join','room':'r'}");
    fake_host__conn_clear_out(al);
    r = ok(boss, "{'type':'room.set_role','room':'r','user':'al','role':'owner'}");
    ck_assert_str_eq(str(r, "role"), "owner");
    ck_assert_uint_eq(count_type(al, "room.role_changed"), 2);
    ev = last_type(al, "room.role_changed");
    ck_assert_str_eq(str(ev, "user_id"), "al");
    ck_assert_str_eq(str(ev, "role"), "owner");
    ck_assert_str_eq(str(ev, "previous"), "member");
    r = ok(al, "{'type':'room.members','room':'r'}");
    ck_assert_str_eq(str(find_member(member(r, "members"), "boss"), "role"), "admin");
    err(boss, "forbidden", "{'type':'room.delete','room':'r'}");
    ok(al, "{'type':'room.kick','room':'r','user':'boss'}");
    ok(al, "{'type':'room.delete','room':'r'}");
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Tenants                                                                                     */
/* ------------------------------------------------------------------------------------------ */

START_TEST(test_tenant_isolation)
{
    fake_conn_t *a1 = conn("A", "alice"), *a2 = conn("A", "sam"), *b1 = conn("B", "bob"),
                *b2 = conn("B", "sam");
    const wshub_svc_rooms_v1_t *svc = fake_host__service(WSHUB_SVC_ROOMS, 1);
    struct json_object *r, *list;
    wshub_buf_t *buf;

    ok(a1, "{'type':'room.create','room':'lobby','room_type':'public'}");
    ok(b1, "{'type':'room.create','room':'lobby','room_type':'public'}");
    ok(a2, "{'type':'room.join','room':'lobby'}");
    ok(b2, "{'type':'room.join','room':'lobby'}");
    fake_host__conn_clear_out(a2);
    fake_host__conn_clear_out(b2);

    ok(a1, "{'type':'room.send','room':'lobby','data':'for A'}");
    ck_assert_uint_eq(count_type(a2, "room.message"), 1);
    ck_assert_uint_eq(count_type(b2, "room.message"), 0);
    ck_assert_uint_eq(count_type(b1, "room.message"), 0);

    /* Same user id in both tenants: each room sees its own tenant's connection only. */
    r = ok(b1, "{'type':'room.members','room':'lobby'}");
    ck_assert_int_eq(num(r, "count"), 2);
    ck_assert_ptr_null(find_member(member(r, "members"), "alice"));
    ck_assert_int_eq(num(find_member(member(r, "members"), "sam"), "connections"), 1);
    ck_assert_ptr_nonnull(find_member(member(r, "members"), "bob"));

    /* Moderation never crosses: B's owner cannot reach A's users, and a tenant admin of B
     * named like a user of A gives that user no rank in A. */
    err(b1, "not_found", "{'type':'room.kick','room':'lobby','user':'alice'}");
    admin_conn("B", "sam");
    ok(a1, "{'type':'room.mute','room':'lobby','user':'sam','duration':5}");
    list = member(ok(b1, "{'type':'room.list'}"), "rooms");
    ck_assert_uint_eq(json_object_array_length(list), 1);

    /* The service is tenant-scoped too. */
    buf = fake_host__api()->buf_new("x", 1);
    fake_host__conn_clear_out(a2);
    fake_host__conn_clear_out(b2);
    ck_assert_int_eq(svc->send("B", "lobby", buf, false), 2);
    ck_assert_uint_eq(a2->n_out, 0);
    ck_assert_uint_eq(b2->n_out, 1);
    ck_assert_int_eq(svc->send("C", "lobby", buf, false), WSHUB_ERR_NOTFOUND);
    fake_host__api()->buf_unref(buf);
    ck_assert(svc->is_member(fake_host__handle(a2), "lobby"));
    ck_assert(!svc->is_member(fake_host__handle(b1), "nope"));

    /* Deleting B's lobby leaves A's alone. */
    ok(b1, "{'type':'room.delete','room':'lobby'}");
    ck_assert(room_exists(a1, "lobby"));
    ck_assert(!room_exists(b1, "lobby"));
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Moderation                                                                                  */
/* ------------------------------------------------------------------------------------------ */

START_TEST(test_ban_with_expiry)
{
    fake_conn_t *boss = conn("acme", "boss"), *v1 = conn("acme", "v"), *v2 = conn("acme", "v");
    struct json_object *r, *ev;

    ok(boss, "{'type':'room.create','room':'r','room_type':'public'}");
    ok(v1, "{'type':'room.join','room':'r'}");
    ok(v2, "{'type':'room.join','room':'r'}");
    fake_host__conn_clear_out(boss);
    r = ok(boss, "{'type':'room.ban','room':'r','user':'v','duration':60,'reason':'spam'}");
    ck_assert_int_eq(num(r, "connections"), 2);
    ck_assert_int_eq(num(r, "until"), (int64_t)fake_host__now() + 60000);
    ev = last_type(v1, "room.banned");
    ck_assert_ptr_nonnull(ev);
    ck_assert_str_eq(str(ev, "reason"), "spam");
    ck_assert_str_eq(str(ev, "room"), "r");
    ck_assert_uint_eq(count_type(v2, "room.banned"), 1);
    ck_assert_str_eq(str(last_type(boss, "room.left"), "reason"), "banned");

    /* Removed: no more messages; cannot come back before the ban ends. */
    fake_host__conn_clear_out(v1);
    ok(boss, "{'type':'room.send','room':'r','data':'x'}");
    ck_assert_uint_eq(count_type(v1, "room.message"), 0);
    err(v1, "banned", "{'type':'room.join','room':'r'}");
    fake_host__advance(59000);
    err(v1, "banned", "{'type':'room.join','room':'r'}");
    fake_host__advance(1000);
    ok(v1, "{'type':'room.join','room':'r'}");

    /* Permanent ban until unbanned. */
    ok(boss, "{'type':'room.ban','room':'r','user':'v'}");
    fake_host__advance(3600u * 1000u);
    err(v1, "banned", "{'type':'room.join','room':'r'}");
    ok(boss, "{'type':'room.unban','room':'r','user':'v'}");
    err(boss, "not_found", "{'type':'room.unban','room':'r','user':'v'}");
    ok(v1, "{'type':'room.join','room':'r'}");
}
END_TEST

START_TEST(test_mute)
{
    fake_conn_t *boss = conn("acme", "boss"), *m = conn("acme", "m");

    ok(boss, "{'type':'room.create','room':'r','room_type':'public'}");
    ok(m, "{'type':'room.join','room':'r'}");
    ok(boss, "{'type':'room.mute','room':'r','user':'m','duration':30}");
    err(m, "muted", "{'type':'room.send','room':'r','data':'hello'}");
    fake_host__advance(30000);
    ok(m, "{'type':'room.send','room':'r','data':'hello'}");
    ok(boss, "{'type':'room.mute','room':'r','user':'m','duration':3600}");
    err(m, "muted", "{'type':'room.send','room':'r','data':'hello'}");
    ok(boss, "{'type':'room.mute','room':'r','user':'m','duration':0}");
    ok(m, "{'type':'room.send','room':'r','data':'hello'}");
    err(boss, "invalid", "{'type':'room.mute','room':'r','user':'m'}");
}
END_TEST

START_TEST(test_filter_length_and_patterns)
{
    fake_conn_t *boss = conn("acme", "boss"), *m = conn("acme", "m");
    struct json_object *r;

    ok(boss, "{'type':'room.create','room':'r','room_type':'public'}");
    ok(m, "{'type':'room.join','room':'r'}");
    r = ok(boss, "{'type':'room.update','room':'r','filter':{'max_length':5}}");
    ck_assert_int_eq(num(member(r, "filter"), "max_length"), 5);
    ok(m, "{'type':'room.send','room':'r','data':'12345'}");
    err(m, "filtered", "{'type':'room.send','room':'r','data':'123456'}");

    ok(boss, "{'type':'room.update','room':'r','filter':{'max_length':0,"
             "'deny_patterns':['bad(word)?','^spam$']}}");
    err(m, "filtered", "{'type':'room.send','room':'r','data':'a badword here'}");
    err(m, "filtered", "{'type':'room.send','room':'r','data':'spam'}");
    ok(m, "{'type':'room.send','room':'r','data':'spam and eggs'}");
    ok(m, "{'type':'room.send','room':'r','data':'good'}");
    /* Non-string data is filtered on its JSON text. */
    err(m, "filtered", "{'type':'room.send','room':'r','data':{'text':'so bad'}}");

    /* Bad patterns change nothing. */
    err(boss, "invalid", "{'type':'room.update','room':'r','filter':{'deny_patterns':['(']}}");
    err(boss, "invalid",
        "{'type':'room.update','room':'r','filter':{'deny_patterns':['(a)\\\\1']}}");
    err(boss, "invalid", "{'type':'room.update','room':'r','filter':{'deny_patterns':[7]}}");
    err(m, "filtered", "{'type':'room.send','room':'r','data':'bad'}");
    /* An empty list clears the patterns. */
    ok(boss, "{'type':'room.update','room':'r','filter':{'deny_patterns':[]}}");
    ok(m, "{'type':'room.send','room':'r','data':'bad'}");
}
END_TEST

START_TEST(test_filter_pattern_caps)
{
    fake_conn_t *boss;
    char pats[512] = "", long_pat[64];

    load(BASE_CFG "filter_max_patterns: 3\nfilter_max_pattern_length: 10\n");
    boss = conn("acme", "boss");
    ok(boss, "{'type':'room.create','room':'r','room_type':'public'}");
    for (int i = 0; i < 4; i++)
        snprintf(pats + strlen(pats), sizeof(pats) - strlen(pats), "%s'p%d'", i ? "," : "", i);
    err(boss, "invalid", "{'type':'room.update','room':'r','filter':{'deny_patterns':[%s]}}", pats);
    memset(long_pat, 'x', 11);
    long_pat[11] = '\0';
    err(boss, "invalid", "{'type':'room.update','room':'r','filter':{'deny_patterns':['%s']}}",
        long_pat);
    long_pat[10] = '\0';
    ok(boss, "{'type':'room.update','room':'r','filter':{'deny_patterns':['%s']}}", long_pat);
}
END_TEST

START_TEST(test_slow_mode)
{
    fake_conn_t *boss = conn("acme", "boss"), *m = conn("acme", "m"), *mod = conn("acme", "mod");

    ok(boss, "{'type':'room.create','room':'r','room_type':'public'}");
    ok(boss, "{'type':'room.set_role','room':'r','user':'mod','role':'moderator'}");
    ok(m, "{'type':'room.join','room':'r'}");
    ok(mod, "{'type':'room.join','room':'r'}");
    ok(boss, "{'type':'room.update','room':'r','slow_mode':10}");
    ok(m, "{'type':'room.send','room':'r','data':'one'}");
    err(m, "slow_mode", "{'type':'room.send','room':'r','data':'two'}");
    fake_host__advance(9999);
    err(m, "slow_mode", "{'type':'room.send','room':'r','data':'two'}");
    /* Leaving and coming back does not reset the window. */
    ok(m, "{'type':'room.leave','room':'r'}");
    ok(m, "{'type':'room.join','room':'r'}");
    err(m, "slow_mode", "{'type':'room.send','room':'r','data':'two'}");
    fake_host__advance(1);
    ok(m, "{'type':'room.send','room':'r','data':'two'}");
    /* Moderators are exempt. */
    ok(mod, "{'type':'room.send','room':'r','data':'a'}");
    ok(mod, "{'type':'room.send','room':'r','data':'b'}");
}
END_TEST

START_TEST(test_kick_removes)
{
    fake_conn_t *boss = conn("acme", "boss"), *k1 = conn("acme", "k"), *k2 = conn("acme", "k"),
                *other = conn("acme", "other");
    struct json_object *r, *ev;

    ok(boss, "{'type':'room.create','room':'r','room_type':'public'}");
    ok(k1, "{'type':'room.join','room':'r'}");
    ok(k2, "{'type':'room.join','room':'r'}");
    ok(other, "{'type':'room.join','room':'r'}");
    fake_host__conn_clear_out(other);
    r = ok(boss, "{'type':'room.kick','room':'r','user':'k','reason':'rude'}");
    ck_assert_int_eq(num(r, "connections"), 2);
    ev = last_type(k1, "room.kicked");
    ck_assert_str_eq(str(ev, "reason"), "rude");
    ck_assert_str_eq(str(ev, "by"), "boss");
    ck_assert_uint_eq(count_type(k2, "room.kicked"), 1);
    ck_assert_str_eq(str(last_type(other, "room.left"), "reason"), "kicked");
    r = ok(boss, "{'type':'room.members','room':'r'}");
    ck_assert_ptr_null(find_member(member(r, "members"), "k"));
    fake_host__conn_clear_out(k1);
    ok(other, "{'type':'room.send','room':'r','data':'bye'}");
    ck_assert_uint_eq(count_type(k1, "room.message"), 0);
    err(k1, "forbidden", "{'type':'room.send','room':'r','data':'x'}");
    err(boss, "not_found", "{'type':'room.kick','room':'r','user':'k'}");
    /* A public room can be rejoined after a kick. */
    ok(k1, "{'type':'room.join','room':'r'}");
}
END_TEST

START_TEST(test_audit_newest_first)
{
    fake_conn_t *boss = conn("acme", "boss"), *v = conn("acme", "v");
    struct json_object *entries;

    ok(boss, "{'type':'room.create','room':'r','room_type':'public'}");
    ok(v, "{'type':'room.join','room':'r'}");
    ok(boss, "{'type':'room.mute','room':'r','user':'v','duration':5}");
    fake_host__advance(1000);
    ok(boss, "{'type':'room.kick','room':'r','user':'v','reason':'r1'}");
    fake_host__advance(1000);
    ok(boss, "{'type':'room.ban','room':'r','user':'v','reason':'r2'}");
    entries = member(ok(boss, "{'type':'room.audit','room':'r'}"), "entries");
    ck_assert_uint_eq(json_object_array_length(entries), 4);
    ck_assert_str_eq(str(json_object_array_get_idx(entries, 0), "action"), "ban");
    ck_assert_str_eq(str(json_object_array_get_idx(entries, 0), "reason"), "r2");
    ck_assert_str_eq(str(json_object_array_get_idx(entries, 0), "actor"), "boss");
    ck_assert_str_eq(str(json_object_array_get_idx(entries, 0), "target"), "v");
    ck_assert_str_eq(str(json_object_array_get_idx(entries, 1), "action"), "kick");
    ck_assert_str_eq(str(json_object_array_get_idx(entries, 2), "action"), "mute");
    ck_assert_str_eq(str(json_object_array_get_idx(entries, 3), "action"), "create");
    ck_assert_int_gt(num(json_object_array_get_idx(entries, 0), "ts"),
                     num(json_object_array_get_idx(entries, 1), "ts"));
    entries = member(ok(boss, "{'type':'room.audit','room':'r','limit':2}"), "entries");
    ck_assert_uint_eq(json_object_array_length(entries), 2);
    ck_assert_str_eq(str(json_object_array_get_idx(entries, 1), "action"), "kick");
}
END_TEST

START_TEST(test_audit_is_capped)
{
    fake_conn_t *boss;
    struct json_object *r, *entries;

    load(BASE_CFG "audit_max_entries: 3\n");
    boss = conn("acme", "boss");
    ok(boss, "{'type':'room.create','room':'r','room_type':'public'}");
    for (int i = 0; i < 5; i++)
        ok(boss, "{'type':'room.mute','room':'r','user':'u%d','duration':5}", i);
    r = ok(boss, "{'type':'room.audit','room':'r','limit':3}");
    entries = member(r, "entries");
    ck_assert_int_eq(num(r, "total"), 3);
    ck_assert_uint_eq(json_object_array_length(entries), 3);
    ck_assert_str_eq(str(json_object_array_get_idx(entries, 0), "target"), "u4");
    ck_assert_str_eq(str(json_object_array_get_idx(entries, 2), "target"), "u2");
    err(boss, "invalid", "{'type':'room.audit','room':'r','limit':4}");
}
END_TEST

START_TEST(test_delete_message)
{
    fake_conn_t *boss = conn("acme", "boss"), *m = conn("acme", "m");
    struct json_object *r;

    ok(boss, "{'type':'room.create','room':'r','room_type':'public'}");
    ok(m, "{'type':'room.join','room':'r'}");
    r = ok(m, "{'type':'room.send','room':'r','data':'oops'}");
    ck_assert_int_eq(num(r, "message_id"), 1);
    ck_assert_int_eq(num(last_type(boss, "room.message"), "message_id"), 1);
    ok(boss, "{'type':'room.delete_message','room':'r','message_id':1}");
    ck_assert_int_eq(num(last_type(m, "room.message_deleted"), "message_id"), 1);
    err(boss, "not_found", "{'type':'room.delete_message','room':'r','message_id':2}");
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Access types and lifetimes                                                                  */
/* ------------------------------------------------------------------------------------------ */

/* auto_create: a join of a missing room makes a public, temporary room without an owner. */
START_TEST(test_auto_create_on_join)
{
    fake_conn_t *a, *b;
    struct json_object *r;

    fake_host__unload();
    load(BASE_CFG "auto_create: true\nmax_rooms_per_tenant: 1\n");
    a = conn("acme", "a");
    b = conn(NULL, NULL); /* anonymous connections may auto-create too */
    r = ok(a, "{'type':'room.join','room':'lobby'}");
    ck_assert_str_eq(str(r, "room"), "lobby");
    ck_assert(room_exists(a, "lobby"));
    /* Joining first grants no privilege: the creator is a plain member. */
    err(a, "forbidden", "{'type':'room.update','room':'lobby','slow_mode':5}");
    /* The tenant limit applies to auto-created rooms. */
    err(a, "limit", "{'type':'room.join','room':'second'}");
    ck_assert(!room_exists(a, "second"));
    /* Temporary: gone with its last member. */
    ok(a, "{'type':'room.leave','room':'lobby'}");
    ck_assert(!room_exists(a, "lobby"));
    ok(b, "{'type':'room.join','room':'open'}");
    fake_host__conn_drop(b, 1000);
    /* Without the option a missing room is not_found (the default config). */
    fake_host__unload();
    load(BASE_CFG);
    a = conn("acme", "a");
    err(a, "not_found", "{'type':'room.join','room':'lobby'}");
}
END_TEST

START_TEST(test_temporary_room_disappears)
{
    fake_conn_t *a = conn("acme", "a"), *b = conn("acme", "b");
    struct json_object *r;

    r = ok(a, "{'type':'room.create','room':'tmp','room_type':'temporary'}");
    ck_assert_str_eq(str(r, "lifetime"), "temporary");
    ck_assert_str_eq(str(r, "access"), "public");
    ok(b, "{'type':'room.join','room':'tmp'}");
    ok(a, "{'type':'room.leave','room':'tmp'}");
    ck_assert(room_exists(a, "tmp"));
    ok(b, "{'type':'room.leave','room':'tmp'}");
    ck_assert(!room_exists(a, "tmp"));
    err(a, "not_found", "{'type':'room.join','room':'tmp'}");
    ck_assert_uint_eq(json_object_array_length(member(ok(a, "{'type':'room.list'}"), "rooms")), 0);

    /* Also when the last member's connection closes. */
    ok(a, "{'type':'room.create','room':'tmp2','room_type':'temporary'}");
    fake_host__conn_drop(a, 1006);
    ck_assert(!room_exists(b, "tmp2"));

    /* A temporary room with a child stays while the child exists, even when empty. */
    ok(b, "{'type':'room.create','room':'tp','room_type':'temporary'}");
    ok(b, "{'type':'room.create','room':'tc','room_type':'public','parent':'tp','join':false}");
    ok(b, "{'type':'room.leave','room':'tp'}");
    ck_assert(room_exists(b, "tp"));
    ok(admin_conn("acme", "tad"), "{'type':'room.delete','room':'tc'}");
    ck_assert(!room_exists(b, "tp"));

    /* A temporary room cannot be created empty; a normal one can. */
    err(b, "invalid", "{'type':'room.create','room':'t3','room_type':'temporary','join':false}");
    ok(b, "{'type':'room.create','room':'n','room_type':'public','join':false}");
    ck_assert(room_exists(b, "n"));
}
END_TEST

START_TEST(test_persistent_room_lives_without_store)
{
    fake_conn_t *a = conn("acme", "a");
    struct json_object *r;

    r = ok(a, "{'type':'room.create','room':'p','room_type':'persistent','access':'protected',"
              "'password':'pw'}");
    ck_assert_str_eq(str(r, "lifetime"), "persistent");
    ck_assert_str_eq(str(r, "access"), "protected");
    ck_assert(!json_object_get_boolean(member(r, "persisted")));
    ok(a, "{'type':'room.leave','room':'p'}");
    ck_assert(room_exists(a, "p"));
    /* Contradictory combinations are refused. */
    err(a, "invalid", "{'type':'room.create','room':'q','room_type':'private','access':'public'}");
    err(a, "invalid",
        "{'type':'room.create','room':'q','room_type':'temporary','lifetime':'persistent'}");
    r = ok(a, "{'type':'room.create','room':'q','room_type':'private','lifetime':'temporary'}");
    ck_assert_str_eq(str(r, "access"), "private");
    ck_assert_str_eq(str(r, "lifetime"), "temporary");
}
END_TEST

START_TEST(test_private_room_needs_invite)
{
    fake_conn_t *boss = conn("acme", "boss"), *al = conn("acme", "al"), *eve = conn("acme", "eve");
    struct json_object *r, *rooms;
    const char *token;
    char tok[64];

    ok(boss, "{'type':'room.create','room':'secret','room_type':'private'}");
    err(al, "forbidden", "{'type':'room.join','room':'secret'}");
    /* A record without an invitation (here: a mute) does not open the door either. */
    ok(boss, "{'type':'room.mute','room':'secret','user':'al','duration':5}");
    err(al, "forbidden", "{'type':'room.join','room':'secret'}");
    rooms = member(ok(al, "{'type':'room.list'}"), "rooms");
    ck_assert_uint_eq(json_object_array_length(rooms), 0);

    r = ok(boss, "{'type':'room.invite','room':'secret','user':'al'}");
    token = str(r, "invite");
    ck_assert_ptr_nonnull(token);
    ck_assert_uint_eq(strlen(token), 32);
    snprintf(tok, sizeof(tok), "%s", token);
    ck_assert_uint_eq(count_type(al, "room.invited"), 1);
    rooms = member(ok(al, "{'type':'room.list'}"), "rooms");
    ck_assert_uint_eq(json_object_array_length(rooms), 1);

    /* The token is al's only. */
    err(eve, "forbidden", "{'type':'room.join','room':'secret','invite':'%s'}", tok);
    err(al, "forbidden",
        "{'type':'room.join','room':'secret','invite':'00000000000000000000000000000000'}");
    ok(al, "{'type':'room.join','room':'secret','invite':'%s'}", tok);
    /* Admitted: may come back; once kicked, the used token is worth nothing. */
    ok(al, "{'type':'room.leave','room':'secret'}");
    ok(al, "{'type':'room.join','room':'secret'}");
    ok(boss, "{'type':'room.kick','room':'secret','user':'al'}");
    err(al, "forbidden", "{'type':'room.join','room':'secret','invite':'%s'}", tok);
    err(al, "forbidden", "{'type':'room.join','room':'secret'}");
    /* Only owner/admin invite. */
    err(al, "forbidden", "{'type':'room.invite','room':'secret','user':'eve'}");
}
END_TEST

START_TEST(test_protected_room_password)
{
    fake_conn_t *boss = conn("acme", "boss"), *al = conn("acme", "al"), *bo = conn("acme", "bo");
    struct json_object *r;
    char tok[64];

    r = ok(boss, "{'type':'room.create','room':'vault','room_type':'protected',"
                 "'password':'s3cret pass'}");
    ck_assert_ptr_null(strstr(json_object_to_json_string(r), "s3cret"));
    err(al, "bad_password", "{'type':'room.join','room':'vault'}");
    err(al, "bad_password", "{'type':'room.join','room':'vault','password':'wrong'}");
    /* Right after a wrong password the connection must wait. */
    err(al, "rate_limited", "{'type':'room.join','room':'vault','password':'s3cret pass'}");
    fake_host__advance(1000);
    r = ok(al, "{'type':'room.join','room':'vault','password':'s3cret pass'}");
    ck_assert_str_eq(str(r, "role"), "member");
    /* Protected rooms are listed, without the password. */
    r = ok(bo, "{'type':'room.list'}");
    ck_assert_uint_eq(json_object_array_length(member(r, "rooms")), 1);
    ck_assert_ptr_null(strstr(json_object_to_json_string(r), "s3cret"));

    /* Or with an invitation instead of the password. */
    r = ok(boss, "{'type':'room.invite','room':'vault','user':'bo'}");
    snprintf(tok, sizeof(tok), "%s", str(r, "invite"));
    err(bo, "bad_password", "{'type':'room.join','room':'vault'}");
    ok(bo, "{'type':'room.join','room':'vault','invite':'%s'}", tok);

    /* A new password revokes earlier admissions. */
    ok(boss, "{'type':'room.update','room':'vault','password':'new one'}");
    ok(al, "{'type':'room.leave','room':'vault'}");
    err(al, "bad_password", "{'type':'room.join','room':'vault','password':'s3cret pass'}");
    fake_host__advance(1000);
    ok(al, "{'type':'room.join','room':'vault','password':'new one'}");
    err(boss, "invalid", "{'type':'room.create','room':'x','room_type':'protected'}");
    err(boss, "invalid", "{'type':'room.create','room':'x','room_type':'public','password':'p'}");
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Hierarchy                                                                                   */
/* ------------------------------------------------------------------------------------------ */

START_TEST(test_subtree_send)
{
    fake_conn_t *boss = conn("acme", "boss"), *pm = conn("acme", "pm"), *cm = conn("acme", "cm"),
                *gm = conn("acme", "gm"), *sib = conn("acme", "sib");
    struct json_object *r, *ev;
    const wshub_svc_rooms_v1_t *svc = fake_host__service(WSHUB_SVC_ROOMS, 1);
    wshub_buf_t *buf;

    ok(boss, "{'type':'room.create','room':'p','room_type':'public'}");
    ok(boss, "{'type':'room.create','room':'c','room_type':'public','parent':'p','join':false}");
    ok(boss, "{'type':'room.create','room':'g','room_type':'public','parent':'c','join':false}");
    ok(boss, "{'type':'room.create','room':'s','room_type':'public','join':false}");
    ok(pm, "{'type':'room.join','room':'p'}");
    ok(cm, "{'type':'room.join','room':'c'}");
    ok(gm, "{'type':'room.join','room':'g'}");
    ok(sib, "{'type':'room.join','room':'s'}");

    r = ok(boss, "{'type':'room.send','room':'p','data':{'n':1},'include_children':true}");
    ck_assert_int_eq(num(r, "delivered"), 3);
    ev = last_type(gm, "room.message");
    ck_assert_ptr_nonnull(ev);
    ck_assert_str_eq(str(ev, "room"), "p");
    ck_assert_str_eq(str(member(ev, "from"), "user_id"), "boss");
    ck_assert_int_eq(num(member(ev, "data"), "n"), 1);
    ck_assert_uint_eq(count_type(cm, "room.message"), 1);
    ck_assert_uint_eq(count_type(pm, "room.message"), 1);
    ck_assert_uint_eq(count_type(sib, "room.message"), 0);

    /* Without include_children only p hears it. */
    r = ok(boss, "{'type':'room.send','room':'p','data':2}");
    ck_assert_int_eq(num(r, "delivered"), 1);
    ck_assert_uint_eq(count_type(cm, "room.message"), 1);

    /* The service's subtree send too. */
    buf = fake_host__api()->buf_new("{}", 2);
    ck_assert_int_eq(svc->send("acme", "c", buf, true), 2);
    fake_host__api()->buf_unref(buf);

    /* A subtree send is a moderator's tool. */
    ok(pm, "{'type':'room.send','room':'p','data':1}");
    err(pm, "forbidden", "{'type':'room.send','room':'p','data':1,'include_children':true}");
}
END_TEST

START_TEST(test_role_inherited_and_overridden)
{
    fake_conn_t *boss = conn("acme", "boss"), *al = conn("acme", "al"), *v = conn("acme", "v");
    struct json_object *r;

    ok(boss, "{'type':'room.create','room':'p','room_type':'public'}");
    ok(boss, "{'type':'room.create','room':'c','room_type':'public','parent':'p'}");
    ok(boss, "{'type':'room.set_role','room':'p','user':'al','role':'admin'}");
    ok(al, "{'type':'room.join','room':'c'}");
    ok(v, "{'type':'room.join','room':'c'}");
    r = ok(al, "{'type':'room.members','room':'c'}");
    ck_assert_str_eq(str(find_member(member(r, "members"), "al"), "role"), "admin");
    ok(al, "{'type':'room.mute','room':'c','user':'v','duration':10}");
    /* An admin of the parent may add children to it. */
    ok(al, "{'type':'room.create','room':'c2','room_type':'public','parent':'p','join':false}");

    /* A role set on the child wins over the parent's. */
    ok(boss, "{'type':'room.set_role','room':'c','user':'al','role':'member'}");
    err(al, "forbidden", "{'type':'room.mute','room':'c','user':'v','duration':10}");
    ok(v, "{'type':'room.join','room':'p'}");
    ok(al, "{'type':'room.join','room':'p'}");
    ok(al, "{'type':'room.mute','room':'p','user':'v','duration':10}");
    /* `none` drops the child's own role: the parent's applies again. */
    ok(boss, "{'type':'room.set_role','room':'c','user':'al','role':'none'}");
    ok(al, "{'type':'room.kick','room':'c','user':'v'}");
}
END_TEST

START_TEST(test_ban_inherited_and_overridden)
{
    fake_conn_t *boss = conn("acme", "boss"), *v = conn("acme", "v"), *w = conn("acme", "w");

    ok(boss, "{'type':'room.create','room':'p','room_type':'public'}");
    ok(boss, "{'type':'room.create','room':'c','room_type':'public','parent':'p'}");
    ok(boss, "{'type':'room.create','room':'d','room_type':'public','parent':'p'}");
    ok(v, "{'type':'room.join','room':'c'}");
    ok(w, "{'type':'room.join','room':'d'}");
    ok(boss, "{'type':'room.set_role','room':'d','user':'w','role':'member'}");
    /* A ban on the parent removes the user from the subtree... */
    ok(boss, "{'type':'room.ban','room':'p','user':'v'}");
    ck_assert_uint_eq(count_type(v, "room.banned"), 1);
    err(v, "banned", "{'type':'room.join','room':'c'}");
    /* ...except where a role of its own on the child wins. */
    ok(boss, "{'type':'room.ban','room':'p','user':'w'}");
    ck_assert_uint_eq(count_type(w, "room.banned"), 0);
    ok(w, "{'type':'room.send','room':'d','data':'still here'}");
    err(w, "banned", "{'type':'room.join','room':'p'}");
}
END_TEST

START_TEST(test_depth_limit)
{
    fake_conn_t *boss = conn("acme", "boss");

    ok(boss, "{'type':'room.create','room':'l1','room_type':'public','join':false}");
    for (int i = 2; i <= 16; i++)
        ok(boss,
           "{'type':'room.create','room':'l%d','room_type':'public','parent':'l%d',"
           "'join':false}",
           i, i - 1);
    err(boss, "invalid",
        "{'type':'room.create','room':'l17','room_type':'public',"
        "'parent':'l16','join':false}");
    err(boss, "not_found",
        "{'type':'room.create','room':'x','room_type':'public',"
        "'parent':'nope'}");
}
END_TEST

START_TEST(test_delete_subtree)
{
    fake_conn_t *boss = conn("acme", "boss"), *cm = conn("acme", "cm");
    struct json_object *r;

    ok(boss, "{'type':'room.create','room':'p','room_type':'public'}");
    ok(boss, "{'type':'room.create','room':'c','room_type':'public','parent':'p','join':false}");
    ok(cm, "{'type':'room.join','room':'c'}");
    r = ok(boss, "{'type':'room.delete','room':'p'}");
    ck_assert_int_eq(num(r, "deleted"), 2);
    ck_assert_str_eq(str(last_type(cm, "room.deleted"), "room"), "c");
    ck_assert_uint_eq(count_type(boss, "room.deleted"), 1);
    ck_assert(!room_exists(boss, "c"));
    /* The connections' records no longer point at the deleted rooms. */
    ok(cm, "{'type':'room.create','room':'c','room_type':'public'}");
    fake_host__conn_drop(cm, 1000);
    fake_host__conn_drop(boss, 1000);
}
END_TEST

START_TEST(test_list_pages)
{
    fake_conn_t *boss = conn("acme", "boss");
    struct json_object *r, *rooms;

    for (int i = 0; i < 5; i++)
        ok(boss, "{'type':'room.create','room':'room%d','room_type':'public','join':false}", i);
    ok(boss, "{'type':'room.create','room':'kid','room_type':'public','parent':'room0',"
             "'join':false}");
    r = ok(boss, "{'type':'room.list','limit':2}");
    rooms = member(r, "rooms");
    ck_assert_uint_eq(json_object_array_length(rooms), 2);
    ck_assert_str_eq(str(json_object_array_get_idx(rooms, 0), "room"), "room0");
    ck_assert_str_eq(str(r, "next"), "room1");
    r = ok(boss, "{'type':'room.list','limit':2,'after':'room3'}");
    rooms = member(r, "rooms");
    ck_assert_uint_eq(json_object_array_length(rooms), 1);
    ck_assert_str_eq(str(json_object_array_get_idx(rooms, 0), "room"), "room4");
    ck_assert_ptr_null(str(r, "next"));
    rooms = member(ok(boss, "{'type':'room.list','parent':'room0'}"), "rooms");
    ck_assert_uint_eq(json_object_array_length(rooms), 1);
    ck_assert_str_eq(str(json_object_array_get_idx(rooms, 0), "room"), "kid");
    ck_assert_str_eq(str(json_object_array_get_idx(rooms, 0), "parent"), "room0");
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Presence and limits                                                                         */
/* ------------------------------------------------------------------------------------------ */

START_TEST(test_presence_two_connections)
{
    fake_conn_t *boss = conn("acme", "boss"), *a1 = conn("acme", "al"), *a2 = conn("acme", "al");
    struct json_object *r, *ev;

    ok(boss, "{'type':'room.create','room':'r','room_type':'public'}");
    r = ok(a1, "{'type':'room.join','room':'r'}");
    ck_assert_int_eq(num(r, "count"), 2);
    ck_assert_ptr_nonnull(find_member(member(r, "members"), "boss"));
    r = ok(a2, "{'type':'room.join','room':'r'}");
    ck_assert_int_eq(num(r, "count"), 2);
    ck_assert_int_eq(num(find_member(member(r, "members"), "al"), "connections"), 2);
    ck_assert_uint_eq(count_type(boss, "room.joined"), 1);
    ev = last_type(boss, "room.joined");
    ck_assert_str_eq(str(ev, "user_id"), "al");
    ck_assert_str_eq(str(ev, "room"), "r");
    ck_assert_uint_eq(count_type(a1, "room.joined"), 0);
    err(a2, "exists", "{'type':'room.join','room':'r'}");

    /* A message reaches both of al's connections except the sender's own. */
    ok(boss, "{'type':'room.send','room':'r','data':'hi'}");
    ck_assert_uint_eq(count_type(a1, "room.message"), 1);
    ck_assert_uint_eq(count_type(a2, "room.message"), 1);
    ck_assert_uint_eq(count_type(boss, "room.message"), 0);

    ok(a1, "{'type':'room.leave','room':'r'}");
    ck_assert_uint_eq(count_type(boss, "room.left"), 0);
    r = ok(boss, "{'type':'room.members','room':'r'}");
    ck_assert_int_eq(num(find_member(member(r, "members"), "al"), "connections"), 1);
    err(a1, "not_found", "{'type':'room.leave','room':'r'}");
    fake_host__conn_drop(a2, 1001);
    ck_assert_uint_eq(count_type(boss, "room.left"), 1);
    ck_assert_str_eq(str(last_type(boss, "room.left"), "reason"), "disconnect");
    r = ok(boss, "{'type':'room.members','room':'r'}");
    ck_assert_int_eq(num(r, "count"), 1);
}
END_TEST

START_TEST(test_max_members_full)
{
    fake_conn_t *boss = conn("acme", "boss"), *a = conn("acme", "a"), *a2 = conn("acme", "a"),
                *b = conn("acme", "b");

    ok(boss, "{'type':'room.create','room':'r','room_type':'public','max_members':2}");
    ok(a, "{'type':'room.join','room':'r'}");
    err(b, "full", "{'type':'room.join','room':'r'}");
    /* Members count users: a's second connection still fits. */
    ok(a2, "{'type':'room.join','room':'r'}");
    ok(a, "{'type':'room.leave','room':'r'}");
    err(b, "full", "{'type':'room.join','room':'r'}");
    ok(a2, "{'type':'room.leave','room':'r'}");
    ok(b, "{'type':'room.join','room':'r'}");
    err(boss, "invalid",
        "{'type':'room.create','room':'big','room_type':'public',"
        "'max_members':10001}");
}
END_TEST

START_TEST(test_connection_and_tenant_limits)
{
    fake_conn_t *a, *b;

    load(BASE_CFG "max_rooms_per_connection: 2\nmax_rooms_per_tenant: 3\n");
    a = conn("acme", "a");
    b = conn("acme", "b");
    ok(a, "{'type':'room.create','room':'r1','room_type':'public'}");
    ok(a, "{'type':'room.create','room':'r2','room_type':'public'}");
    err(a, "limit", "{'type':'room.create','room':'r3','room_type':'public'}");
    ok(a, "{'type':'room.create','room':'r3','room_type':'public','join':false}");
    err(a, "limit", "{'type':'room.join','room':'r3'}");
    err(b, "limit", "{'type':'room.create','room':'r4','room_type':'public'}");
    /* Another tenant has its own budget. */
    ok(conn("other", "c"), "{'type':'room.create','room':'r4','room_type':'public'}");
    ok(a, "{'type':'room.leave','room':'r1'}");
    ok(a, "{'type':'room.join','room':'r3'}");
}
END_TEST

START_TEST(test_anonymous_connections)
{
    fake_conn_t *boss = conn("public", "boss"), *anon = conn(NULL, NULL);

    err(anon, "forbidden", "{'type':'room.create','room':'x','room_type':'public'}");
    ok(boss, "{'type':'room.create','room':'lobby','room_type':'public'}");
    ok(anon, "{'type':'room.join','room':'lobby'}");
    ok(anon, "{'type':'room.send','room':'lobby','data':'hi'}");
    ck_assert_str_eq(str(member(last_type(boss, "room.message"), "from"), "user_id"), "");
    ok(boss, "{'type':'room.kick','room':'lobby','user':''}");
    ck_assert_uint_eq(count_type(anon, "room.kicked"), 1);
}
END_TEST

START_TEST(test_message_size_and_exists)
{
    fake_conn_t *a;
    char big[200];

    load(BASE_CFG "max_message_size: 100\n");
    a = conn("acme", "a");
    ok(a, "{'type':'room.create','room':'r','room_type':'public'}");
    err(a, "exists", "{'type':'room.create','room':'r','room_type':'public'}");
    memset(big, 'x', 120);
    big[120] = '\0';
    err(a, "too_large", "{'type':'room.send','room':'r','data':'%s'}", big);
    big[98] = '\0'; /* 98 bytes + 2 quotes = 100 bytes of JSON */
    ok(a, "{'type':'room.send','room':'r','data':'%s'}", big);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Invalid input                                                                               */
/* ------------------------------------------------------------------------------------------ */

static char long_id[200];

static const char *const invalid_requests[] = {
    "{'type':'room.join'}",
    "{'type':'room.join','room':7}",
    "{'type':'room.join','room':''}",
    "{'type':'room.join','room':'%s'}", /* 129 bytes */
    "{'type':'room.join','room':'a\\u0001b'}",
    "{'type':'room.join','room':'a\\u0000b'}",
    "{'type':'room.join','room':'r','password':5}",
    "{'type':'room.create','room':'n','room_type':'bogus'}",
    "{'type':'room.create','room':'n'}",
    "{'type':'room.create','room':'n','room_type':'public','max_members':0}",
    "{'type':'room.create','room':'n','room_type':'public','max_members':'5'}",
    "{'type':'room.create','room':'n','room_type':'public','max_members':2.5}",
    "{'type':'room.create','room':'n','room_type':'public','join':'yes'}",
    "{'type':'room.create','room':'n','room_type':'public','access':'open'}",
    "{'type':'room.create','room':'n','room_type':'public','name':'%s'}",
    "{'type':'room.create','room':'%s','room_type':'public'}",
    "{'type':'room.send','room':'r'}",
    "{'type':'room.send','room':'r','data':'x','include_children':1}",
    "{'type':'room.ban','room':'r','user':'u','duration':-1}",
    "{'type':'room.ban','room':'r','user':'u','duration':0}",
    "{'type':'room.ban','room':'r','user':'u','duration':'1h'}",
    "{'type':'room.ban','room':'r'}",
    "{'type':'room.kick','room':'r','user':['u']}",
    "{'type':'room.mute','room':'r','user':'u','duration':315360001}",
    "{'type':'room.set_role','room':'r','user':'u','role':'god'}",
    "{'type':'room.set_role','room':'r','user':'','role':'member'}",
    "{'type':'room.invite','room':'r'}",
    "{'type':'room.update','room':'r'}",
    "{'type':'room.update','room':'r','filter':'none'}",
    "{'type':'room.update','room':'r','filter':{'deny_patterns':'x'}}",
    "{'type':'room.update','room':'r','filter':{'deny_patterns':['[']}}",
    "{'type':'room.update','room':'r','slow_mode':-5}",
    "{'type':'room.update','room':'r','max_members':0}",
    "{'type':'room.update','room':'r','password':'p'}",
    "{'type':'room.audit','room':'r','limit':0}",
    "{'type':'room.list','limit':1001}",
    "{'type':'room.delete_message','room':'r','message_id':0}",
    "{'type':'room.delete_message','room':'r'}",
};

START_TEST(test_invalid_input)
{
    fake_conn_t *a = conn("acme", "a");
    struct json_object *r;

    memset(long_id, 'x', 129);
    long_id[129] = '\0';
    ok(a, "{'type':'room.create','room':'r','room_type':'public'}");
    r = call(a, invalid_requests[_i], long_id);
    ck_assert_msg(!strcmp(str(r, "type"), "error") && !strcmp(str(r, "code"), "invalid"),
                  "request %d: %s answered %s", _i, invalid_requests[_i],
                  json_object_to_json_string(r));
    /* The room is intact after every refusal. */
    ck_assert(room_exists(a, "r"));
}
END_TEST

START_TEST(test_longest_id_accepted)
{
    fake_conn_t *a = conn("acme", "a");

    memset(long_id, 'y', 128);
    long_id[128] = '\0';
    ok(a, "{'type':'room.create','room':'%s','room_type':'public'}", long_id);
    ok(a, "{'type':'room.send','room':'%s','data':'x'}", long_id);
    err(a, "not_found", "{'type':'room.join','room':'nope'}");
}
END_TEST

/* ------------------------------------------------------------------------------------------ */

static Suite *rooms_suite(void)
{
    Suite *s = suite_create("rooms");
    struct {
        const char *name;
        const TTest *test;
        int loop_end;
    } cases[] = {
        {"registration", test_registers_routes_service_and_notice, 0},
        {"options", test_refuses_out_of_range_option, 0},
        {"permission_matrix", test_permission_matrix, (int)(N_ACTIONS * N_ROLES)},
        {"target_rank", test_targets_must_rank_lower, 0},
        {"owner_transfer", test_owner_transfer, 0},
        {"tenant_isolation", test_tenant_isolation, 0},
        {"ban_expiry", test_ban_with_expiry, 0},
        {"mute", test_mute, 0},
        {"filter", test_filter_length_and_patterns, 0},
        {"filter_caps", test_filter_pattern_caps, 0},
        {"slow_mode", test_slow_mode, 0},
        {"kick", test_kick_removes, 0},
        {"audit", test_audit_newest_first, 0},
        {"audit_cap", test_audit_is_capped, 0},
        {"delete_message", test_delete_message, 0},
        {"temporary", test_temporary_room_disappears, 0},
        {"auto_create", test_auto_create_on_join, 0},
        {"persistent", test_persistent_room_lives_without_store, 0},
        {"private", test_private_room_needs_invite, 0},
        {"protected", test_protected_room_password, 0},
        {"subtree_send", test_subtree_send, 0},
        {"role_inheritance", test_role_inherited_and_overridden, 0},
        {"ban_inheritance", test_ban_inherited_and_overridden, 0},
        {"depth", test_depth_limit, 0},
        {"delete", test_delete_subtree, 0},
        {"list", test_list_pages, 0},
        {"presence", test_presence_two_connections, 0},
        {"full", test_max_members_full, 0},
        {"limits", test_connection_and_tenant_limits, 0},
        {"anonymous", test_anonymous_connections, 0},
        {"size_exists", test_message_size_and_exists, 0},
        {"invalid", test_invalid_input,
         (int)(sizeof(invalid_requests) / sizeof(invalid_requests[0]))},
        {"longest_id", test_longest_id_accepted, 0},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        if (cases[i].loop_end)
            tcase_add_loop_test(tc, cases[i].test, 0, cases[i].loop_end);
        else
            tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(rooms_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
