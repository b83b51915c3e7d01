/*
 * Unit tests for core/router.c against the stub server: the envelope errors (a table of
 * malformed messages, each followed by a ping proving the connection survived), registration
 * rules for routes and raw paths, dispatch (handler arguments, MESSAGE_IN denial, negative
 * handler results mapped to error codes), and the protocol replies (ack field splicing,
 * error message escaping, welcome fields).
 */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conn.h"
#include "hooks.h"
#include "plugin_host.h"
#include "plugin_loader.h"
#include "router.h"
#include "server.h"
#include "stub_server.h"
#include "ws_test_client.h"

static const char yaml[] = "server:\n"
                           "  listen: 127.0.0.1:0\n"
                           "  path: /ws\n"
                           "  permessage_deflate: false\n"
                           "admin:\n"
                           "  enabled: false\n"
                           "log:\n"
                           "  level: err\n";

static const wshub_host_api_t *api;
static struct wshub_plugin g_p1, g_p2;
static wsc_t g_cl;
static wshub_conn_t *g_c;

/* What the test handler saw, and what it returns. */
static struct {
    int calls;
    int rc;
    char type[128];
    char id[160];
    bool had_id;
    char *data;
    size_t len;
    bool is_binary;
    bool nul_terminated;
    int hook_calls;
    const char *hook_error_code;
    int hook_rc;
} g_h;

static void open_client(void)
{
    wsc_frame_t f;
    uint64_t id;

    ck_assert_int_eq(stub_server__open(&g_cl, "/ws", NULL, &id, NULL, 0), 101);
    ck_assert_int_eq(stub_server__recv(&g_cl, &f, STUB_MAX_ITER), 1); /* welcome */
    wsc_frame__free(&f);
    g_c = conn__by_id(id);
    ck_assert_ptr_nonnull(g_c);
}

static void setup(void)
{
    char err[512];

    ck_assert_msg(stub_server__start(yaml, err, sizeof(err)) == 0, "%s", err);
    api = plugin_host__api();
    memset(&g_h, 0, sizeof(g_h));
    memset(&g_p1, 0, sizeof(g_p1));
    memset(&g_p2, 0, sizeof(g_p2));
    g_p1.name = "p1";
    g_p2.name = "p2";
    DLIST_INIT(&g_p1.groups);
    DLIST_INIT(&g_p1.timers);
    DLIST_INIT(&g_p2.groups);
    DLIST_INIT(&g_p2.timers);
    open_client();
}

static void teardown(void)
{
    wsc__free(&g_cl);
    stub_server__stop();
    free(g_h.data);
    ck_assert_uint_eq(buf__live(), 0);
}

/* --- helpers ------------------------------------------------------------------------------- */

static json_object *recv_json(void)
{
    wsc_frame_t f;
    json_object *o;

    ck_assert_int_eq(stub_server__recv(&g_cl, &f, STUB_MAX_ITER), 1);
    ck_assert_uint_eq(f.opcode, 0x1);
    o = json_tokener_parse((const char *)f.data);
    ck_assert_msg(o && json_object_is_type(o, json_type_object), "not a JSON object: %s",
                  (const char *)f.data);
    wsc_frame__free(&f);
    return o;
}

/* Receives the next frame as raw text (caller frees). */
static char *recv_text(void)
{
    wsc_frame_t f;
    char *s;

    ck_assert_int_eq(stub_server__recv(&g_cl, &f, STUB_MAX_ITER), 1);
    ck_assert_uint_eq(f.opcode, 0x1);
    s = (char *)f.data;
    f.data = NULL;
    wsc_frame__free(&f);
    return s;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* The "id" member equals the JSON text `id_json` (NULL: no "id" member at all). */
static void assert_id(json_object *o, const char *id_json)
{
    json_object *v, *want;

    if (!id_json) {
        ck_assert_msg(!json_object_object_get_ex(o, "id", &v), "unexpected id in %s",
                      json_object_to_json_string(o));
        return;
    }
    ck_assert_msg(json_object_object_get_ex(o, "id", &v), "no id in %s",
                  json_object_to_json_string(o));
    want = json_tokener_parse(id_json);
    ck_assert_msg(json_object_equal(v, want), "id %s, expected %s", json_object_to_json_string(v),
                  id_json);
    json_object_put(want);
}

static void assert_error(json_object *o, const char *code, const char *id_json)
{
    ck_assert_str_eq(jstr(o, "type"), "error");
    ck_assert_msg(jstr(o, "code") && strcmp(jstr(o, "code"), code) == 0, "code %s, expected %s",
                  jstr(o, "code"), code);
    ck_assert_ptr_nonnull(jstr(o, "message"));
    assert_id(o, id_json);
}

static void expect_silence(void)
{
    for (int i = 0; i < 5; i++)
        stub_server__step();
    wsc__read(&g_cl);
    ck_assert_uint_eq(wsc__pending(&g_cl), 0);
}

/* The connection still answers a ping envelope. */
static void assert_alive(void)
{
    json_object *o;

    ck_assert_int_eq(wsc__send_text(&g_cl, "{\"type\":\"ping\",\"id\":\"alive\"}"), 0);
    o = recv_json();
    ck_assert_str_eq(jstr(o, "type"), "pong");
    ck_assert_str_eq(jstr(o, "id"), "alive");
    json_object_put(o);
    ck_assert(conn__is_live(g_c));
}

static int handler(wshub_conn_t *c, const wshub_msg_t *m, void *ud)
{
    (void)ud;
    ck_assert_ptr_eq(c, g_c);
    g_h.calls++;
    snprintf(g_h.type, sizeof(g_h.type), "%s", m->type ? m->type : "(null)");
    g_h.had_id = m->id != NULL;
    snprintf(g_h.id, sizeof(g_h.id), "%s", m->id ? m->id : "");
    free(g_h.data);
    g_h.data = malloc(m->len + 1);
    memcpy(g_h.data, m->data, m->len);
    g_h.data[m->len] = '\0';
    g_h.len = m->len;
    g_h.is_binary = m->is_binary;
    g_h.nul_terminated = m->data[m->len] == '\0';
    return g_h.rc;
}

/* --- envelope errors ----------------------------------------------------------------------- */

#define LONG_ID                                                                                    \
    "\"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa" \
    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\""
#define DEEP_40 "[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]]"

static const struct {
    const char *name;
    const char *msg;
    size_t len; /* 0: strlen(msg) */
    bool binary;
    const char *code;
    const char *id_json; /* expected "id" of the error, NULL: none */
} envelope_errors[] = {
    {"not_json", "hello", 0, false, "bad_json", NULL},
    {"empty", "", 0, false, "bad_json", NULL},
    {"whitespace_only", "  \n ", 0, false, "bad_json", NULL},
    {"truncated", "{\"type\":\"ping\"", 0, false, "bad_json", NULL},
    {"trailing_garbage", "{\"type\":\"ping\"} x", 0, false, "bad_json", NULL},
    {"two_objects", "{\"type\":\"ping\"}{}", 0, false, "bad_json", NULL},
    {"embedded_nul", "{\"type\":\"ping\"}\0x", 17, false, "bad_json", NULL},
    {"array", "[{\"type\":\"ping\"}]", 0, false, "bad_json", NULL},
    {"string", "\"ping\"", 0, false, "bad_json", NULL},
    {"number", "42", 0, false, "bad_json", NULL},
    {"literal", "true", 0, false, "bad_json", NULL},
    {"null", "null", 0, false, "bad_json", NULL},
    {"no_type", "{\"id\":1}", 0, false, "bad_json", "1"},
    {"numeric_type", "{\"type\":5,\"id\":\"a\"}", 0, false, "bad_json", "\"a\""},
    {"null_type", "{\"type\":null}", 0, false, "bad_json", NULL},
    {"object_type", "{\"type\":{\"x\":1}}", 0, false, "bad_json", NULL},
    {"object_id", "{\"type\":\"ping\",\"id\":{}}", 0, false, "bad_json", NULL},
    {"array_id", "{\"type\":\"ping\",\"id\":[1]}", 0, false, "bad_json", NULL},
    {"bool_id", "{\"type\":\"ping\",\"id\":true}", 0, false, "bad_json", NULL},
    {"null_id", "{\"type\":\"ping\",\"id\":null}", 0, false, "bad_json", NULL},
    {"long_id", "{\"type\":\"ping\",\"id\":" LONG_ID "}", 0, false, "bad_json", NULL},
    {"too_deep", "{\"type\":\"ping\",\"x\":" DEEP_40 "}", 0, false, "bad_json", NULL},
    {"unknown_type", "{\"type\":\"nope\",\"id\":9}", 0, false, "unknown_type", "9"},
    {"unknown_type_str_id", "{\"id\":\"q\\\"x\",\"type\":\"nope\"}", 0, false, "unknown_type",
     "\"q\\\"x\""},
    {"unknown_type_double_id", "{\"type\":\"no.pe\",\"id\":1.5}", 0, false, "unknown_type", "1.5"},
    {"unknown_type_no_id", "{\"type\":\"Ping\"}", 0, false, "unknown_type", NULL},
    {"binary", "{\"type\":\"ping\"}", 0, true, "unsupported", NULL},
};

START_TEST(test_envelope_error)
{
    size_t len =
        envelope_errors[_i].len ? envelope_errors[_i].len : strlen(envelope_errors[_i].msg);
    json_object *o;

    ck_assert_int_eq(router__route_add(&g_p1, "t.any", handler, NULL), WSHUB_OK);
    ck_assert_int_eq(wsc__send_frame(&g_cl, envelope_errors[_i].binary ? 0x2 : 0x1,
                                     envelope_errors[_i].msg, len),
                     0);
    o = recv_json();
    assert_error(o, envelope_errors[_i].code, envelope_errors[_i].id_json);
    json_object_put(o);
    expect_silence();
    assert_alive();
    ck_assert_int_eq(g_h.calls, 0);
}
END_TEST

static const char *const accepted_envelopes[] = {
    "{\"type\":\"ping\"}",
    " \t\r\n{\"type\":\"ping\"}",
    "{\"type\":\"ping\"} \n\t\r ",
    "{ \"type\" : \"ping\" , \"data\" : {\"a\":[1,2,{\"b\":null}]} }",
    "{\"type\":\"ping\",\"id\":-7}",
    "{\"type\":\"ping\",\"id\":\"\"}",
};

START_TEST(test_envelope_accepted)
{
    json_object *o;

    ck_assert_int_eq(wsc__send_text(&g_cl, accepted_envelopes[_i]), 0);
    o = recv_json();
    ck_assert_str_eq(jstr(o, "type"), "pong");
    json_object_put(o);
}
END_TEST

START_TEST(test_unknown_type_echo_is_cut)
{
    char msg[256], want[128];
    json_object *o;
    const char *m;

    /* 63 ASCII bytes, then "é" straddling the 64-byte cut: the cut backs off to byte 63. */
    memset(want, 'a', 63);
    want[63] = '\0';
    snprintf(msg, sizeof(msg), "{\"type\":\"%s\xc3\xa9tail-tail-tail\"}", want);
    ck_assert_int_eq(wsc__send_text(&g_cl, msg), 0);
    o = recv_json();
    assert_error(o, "unknown_type", NULL);
    m = jstr(o, "message");
    ck_assert_msg(strstr(m, want) != NULL, "message %s", m);
    ck_assert_msg(strstr(m, "tail") == NULL && strstr(m, "\xc3") == NULL, "not cut: %s", m);
    json_object_put(o);
}
END_TEST

/* --- registration -------------------------------------------------------------------------- */

#define NAME_64 "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"

static const struct {
    const char *type;
    int rc;
} route_rules[] = {
    {"ping", WSHUB_ERR_EXISTS},
    {"pong", WSHUB_ERR_EXISTS},
    {"welcome", WSHUB_ERR_EXISTS},
    {"ack", WSHUB_ERR_EXISTS},
    {"error", WSHUB_ERR_EXISTS},
    {"", WSHUB_ERR_INVAL},
    {"has space", WSHUB_ERR_INVAL},
    {"quote\"", WSHUB_ERR_INVAL},
    {"new\nline", WSHUB_ERR_INVAL},
    {"caf\xc3\xa9", WSHUB_ERR_INVAL},
    {NAME_64 "a", WSHUB_ERR_INVAL},
    {"a", WSHUB_OK},
    {NAME_64, WSHUB_OK},
    {"room.join", WSHUB_OK},
    {"x-y_z:w/v.9", WSHUB_OK},
    {"PING", WSHUB_OK},
};

START_TEST(test_route_add_rules)
{
    ck_assert_int_eq(router__route_add(&g_p1, route_rules[_i].type, handler, NULL),
                     route_rules[_i].rc);
    if (route_rules[_i].rc == WSHUB_OK) {
        /* One owner per type. */
        ck_assert_int_eq(router__route_add(&g_p2, route_rules[_i].type, handler, NULL),
                         WSHUB_ERR_EXISTS);
        ck_assert_int_eq(router__route_add(&g_p1, route_rules[_i].type, handler, NULL),
                         WSHUB_ERR_EXISTS);
    }
}
END_TEST

START_TEST(test_route_add_null_arguments)
{
    ck_assert_int_eq(router__route_add(&g_p1, NULL, handler, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(router__route_add(&g_p1, "t.x", NULL, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(router__route_add(&g_p1, "t.x", handler, NULL), WSHUB_OK);
}
END_TEST

START_TEST(test_path_add_rules)
{
    char long_path[300];

    long_path[0] = '/';
    memset(long_path + 1, 'p', 255);
    long_path[256] = '\0';
    ck_assert_int_eq(router__path_add(&g_p1, NULL, handler, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(router__path_add(&g_p1, "/raw", NULL, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(router__path_add(&g_p1, "raw", handler, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(router__path_add(&g_p1, "", handler, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(router__path_add(&g_p1, "/raw?x=1", handler, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(router__path_add(&g_p1, long_path, handler, NULL), WSHUB_ERR_INVAL);
    long_path[255] = '\0'; /* 255 bytes: the limit */
    ck_assert_int_eq(router__path_add(&g_p1, long_path, handler, NULL), WSHUB_OK);
    ck_assert_int_eq(router__path_add(&g_p1, "/ws", handler, NULL), WSHUB_ERR_EXISTS);
    ck_assert_int_eq(router__path_add(&g_p1, "/raw", handler, NULL), WSHUB_OK);
    ck_assert_int_eq(router__path_add(&g_p2, "/raw", handler, NULL), WSHUB_ERR_EXISTS);
    ck_assert_ptr_nonnull(router__path("/raw"));
    ck_assert_ptr_eq(router__path("/raw")->owner, &g_p1);
    ck_assert_ptr_null(router__path("/raw/"));
    ck_assert_ptr_null(router__path("/ws"));
}
END_TEST

START_TEST(test_remove_owner)
{
    json_object *o;

    ck_assert_int_eq(router__route_add(&g_p1, "t.one", handler, NULL), WSHUB_OK);
    ck_assert_int_eq(router__route_add(&g_p2, "t.two", handler, NULL), WSHUB_OK);
    ck_assert_int_eq(router__path_add(&g_p1, "/one", handler, NULL), WSHUB_OK);
    ck_assert_int_eq(router__path_add(&g_p2, "/two", handler, NULL), WSHUB_OK);
    router__remove_owner(&g_p1);
    ck_assert_ptr_null(router__path("/one"));
    ck_assert_ptr_nonnull(router__path("/two"));
    ck_assert_int_eq(wsc__send_text(&g_cl, "{\"type\":\"t.one\"}"), 0);
    o = recv_json();
    assert_error(o, "unknown_type", NULL);
    json_object_put(o);
    ck_assert_int_eq(wsc__send_text(&g_cl, "{\"type\":\"t.two\"}"), 0);
    expect_silence();
    ck_assert_int_eq(g_h.calls, 1);
    /* The type is free again. */
    ck_assert_int_eq(router__route_add(&g_p2, "t.one", handler, NULL), WSHUB_OK);
}
END_TEST

START_TEST(test_remove_owner_many)
{
    char name[32];

    /* More than one sweep batch (256). */
    for (int i = 0; i < 600; i++) {
        snprintf(name, sizeof(name), "t.%d", i);
        ck_assert_int_eq(router__route_add(i % 3 ? &g_p1 : &g_p2, name, handler, NULL), WSHUB_OK);
    }
    router__remove_owner(&g_p1);
    for (int i = 0; i < 600; i++) {
        snprintf(name, sizeof(name), "t.%d", i);
        ck_assert_int_eq(router__route_add(&g_p1, name, handler, NULL),
                         i % 3 ? WSHUB_OK : WSHUB_ERR_EXISTS);
    }
}
END_TEST

/* --- dispatch ------------------------------------------------------------------------------ */

START_TEST(test_handler_arguments)
{
    static const char msg[] = "{\"type\":\"t.echo\",\"id\":\"abc\",\"data\":{\"k\":[1,2]}}";

    ck_assert_int_eq(router__route_add(&g_p1, "t.echo", handler, NULL), WSHUB_OK);
    ck_assert_int_eq(wsc__send_text(&g_cl, msg), 0);
    expect_silence(); /* WSHUB_OK and no reply of its own: nothing is sent */
    ck_assert_int_eq(g_h.calls, 1);
    ck_assert_str_eq(g_h.type, "t.echo");
    ck_assert(g_h.had_id);
    ck_assert_str_eq(g_h.id, "\"abc\"");
    ck_assert_uint_eq(g_h.len, strlen(msg));
    ck_assert_str_eq(g_h.data, msg);
    ck_assert(g_h.nul_terminated);
    ck_assert(!g_h.is_binary);
    ck_assert_int_eq(wsc__send_text(&g_cl, "{\"type\":\"t.echo\",\"id\":12}"), 0);
    expect_silence();
    ck_assert_str_eq(g_h.id, "12");
    ck_assert_int_eq(wsc__send_text(&g_cl, "{\"type\":\"t.echo\"}"), 0);
    expect_silence();
    ck_assert(!g_h.had_id);
    ck_assert_int_eq(g_h.calls, 3);
}
END_TEST

static const struct {
    int rc;
    const char *code;
} rc_codes[] = {
    {WSHUB_ERR_DENIED, "forbidden"},
    {WSHUB_ERR_INVAL, "invalid"},
    {WSHUB_ERR_NOTFOUND, "not_found"},
    {WSHUB_ERR_EXISTS, "exists"},
    {WSHUB_ERR_LIMIT, "rate_limited"},
    {WSHUB_ERR, "internal"},
    {WSHUB_ERR_STATE, "internal"},
    {WSHUB_ERR_NOMEM, "internal"},
    {-1000, "internal"},
};

START_TEST(test_handler_error_mapped)
{
    json_object *o;

    g_h.rc = rc_codes[_i].rc;
    ck_assert_int_eq(router__route_add(&g_p1, "t.fail", handler, NULL), WSHUB_OK);
    ck_assert_int_eq(wsc__send_text(&g_cl, "{\"type\":\"t.fail\",\"id\":\"r1\"}"), 0);
    o = recv_json();
    assert_error(o, rc_codes[_i].code, "\"r1\"");
    json_object_put(o);
    expect_silence();
    ck_assert_int_eq(g_h.calls, 1);
}
END_TEST

START_TEST(test_handler_positive_results_are_silent)
{
    ck_assert_int_eq(router__route_add(&g_p1, "t.ok", handler, NULL), WSHUB_OK);
    g_h.rc = WSHUB_DEFER;
    ck_assert_int_eq(wsc__send_text(&g_cl, "{\"type\":\"t.ok\"}"), 0);
    expect_silence();
    g_h.rc = WSHUB_PENDING;
    ck_assert_int_eq(wsc__send_text(&g_cl, "{\"type\":\"t.ok\"}"), 0);
    expect_silence();
    ck_assert_int_eq(g_h.calls, 2);
}
END_TEST

static int close_then_fail(wshub_conn_t *c, const wshub_msg_t *m, void *ud)
{
    (void)m;
    (void)ud;
    g_h.calls++;
    api->conn_close(c, 4000, "gone");
    return WSHUB_ERR_DENIED;
}

START_TEST(test_handler_error_after_close_not_sent)
{
    wsc_frame_t f;

    ck_assert_int_eq(router__route_add(&g_p1, "t.cf", close_then_fail, NULL), WSHUB_OK);
    ck_assert_int_eq(wsc__send_text(&g_cl, "{\"type\":\"t.cf\"}"), 0);
    ck_assert_int_eq(stub_server__recv(&g_cl, &f, STUB_MAX_ITER), 1);
    ck_assert_uint_eq(f.opcode, 0x8); /* straight to the close, no error frame */
    ck_assert_uint_eq(f.close_code, 4000);
    wsc_frame__free(&f);
}
END_TEST

static int deny_hook(wshub_event_t ev, void *data, void *ud)
{
    wshub_ev_message_t *m = data;

    (void)ev;
    (void)ud;
    g_h.hook_calls++;
    ck_assert_ptr_eq(m->conn, g_c);
    ck_assert_ptr_null(m->error_code);
    if (m->msg->type && strcmp(m->msg->type, "ping") == 0)
        return WSHUB_OK;
    m->error_code = g_h.hook_error_code;
    return g_h.hook_rc;
}

START_TEST(test_message_hook_denial)
{
    json_object *o;

    ck_assert_int_eq(router__route_add(&g_p1, "t.guarded", handler, NULL), WSHUB_OK);
    ck_assert_int_eq(hooks__add(&g_p2, WSHUB_EV_MESSAGE_IN, 0, deny_hook, NULL), WSHUB_OK);

    /* Denied with an error code: the error goes out with the message's id. */
    g_h.hook_rc = WSHUB_ERR_DENIED;
    g_h.hook_error_code = "rate_limited";
    ck_assert_int_eq(wsc__send_text(&g_cl, "{\"type\":\"t.guarded\",\"id\":3}"), 0);
    o = recv_json();
    assert_error(o, "rate_limited", "3");
    json_object_put(o);
    expect_silence();
    ck_assert_int_eq(g_h.calls, 0);

    /* Denied silently. */
    g_h.hook_error_code = NULL;
    ck_assert_int_eq(wsc__send_text(&g_cl, "{\"type\":\"t.guarded\",\"id\":4}"), 0);
    expect_silence();
    ck_assert_int_eq(g_h.calls, 0);

    /* Let through: the route runs. */
    g_h.hook_rc = WSHUB_OK;
    ck_assert_int_eq(wsc__send_text(&g_cl, "{\"type\":\"t.guarded\"}"), 0);
    expect_silence();
    ck_assert_int_eq(g_h.calls, 1);
    assert_alive();
    ck_assert_int_eq(g_h.hook_calls, 4);
}
END_TEST

static int raw_handler(wshub_conn_t *c, const wshub_msg_t *m, void *ud)
{
    (void)ud;
    g_h.calls++;
    g_h.is_binary = m->is_binary;
    ck_assert_ptr_null(m->type);
    ck_assert_ptr_null(m->id);
    return conn__send_data(c, WS_OP_TEXT, m->data, m->len) == WSHUB_OK ? g_h.rc : WSHUB_ERR;
}

START_TEST(test_raw_path_dispatch)
{
    wsc_t raw;
    wsc_frame_t f;

    ck_assert_int_eq(router__path_add(&g_p1, "/raw", raw_handler, NULL), WSHUB_OK);
    ck_assert_int_eq(stub_server__open(&raw, "/raw", NULL, NULL, NULL, 0), 101);
    /* Binary is fine on raw paths; a failing raw handler gets no JSON error. */
    g_h.rc = WSHUB_ERR_DENIED;
    ck_assert_int_eq(wsc__send_frame(&raw, 0x2, "{\"type\":\"x\"}", 12), 0);
    ck_assert_int_eq(stub_server__recv(&raw, &f, STUB_MAX_ITER), 1);
    ck_assert_str_eq((const char *)f.data, "{\"type\":\"x\"}");
    wsc_frame__free(&f);
    ck_assert(g_h.is_binary);
    for (int i = 0; i < 5; i++)
        stub_server__step();
    wsc__read(&raw);
    ck_assert_uint_eq(wsc__pending(&raw), 0);
    ck_assert_int_eq(g_h.calls, 1);
    wsc__free(&raw);
}
END_TEST

/* --- replies ------------------------------------------------------------------------------- */

static const struct {
    const char *id;
    const char *fields;
    const char *expect; /* exact text */
} acks[] = {
    {"7", NULL, "{\"type\":\"ack\",\"id\":7}"},
    {"7", "{}", "{\"type\":\"ack\",\"id\":7}"},
    {"7", "  {  }  ", "{\"type\":\"ack\",\"id\":7}"},
    {"7", "\n{\n}\n", "{\"type\":\"ack\",\"id\":7}"},
    {"7", "{\"a\":1}", "{\"type\":\"ack\",\"id\":7,\"a\":1}"},
    {"7", " {\"a\":1} ", "{\"type\":\"ack\",\"id\":7,\"a\":1}"},
    {"7", "{ \"a\":1 }", "{\"type\":\"ack\",\"id\":7,\"a\":1}"},
    {"7", "\t{\r\n \"a\" : 1 ,\"b\":[1, 2]\n}\r\n", NULL},
    {"\"x\"", "{\"room\":\"lobby\"}", "{\"type\":\"ack\",\"id\":\"x\",\"room\":\"lobby\"}"},
    {NULL, "{\"a\":true}", "{\"type\":\"ack\",\"a\":true}"},
    {NULL, NULL, "{\"type\":\"ack\"}"},
    {"1", "[1,2]", "{\"type\":\"ack\",\"id\":1}"},
    {"1", "not json", "{\"type\":\"ack\",\"id\":1}"},
    {"1", "", "{\"type\":\"ack\",\"id\":1}"},
};

START_TEST(test_ack_splicing)
{
    char *text;
    json_object *o, *v;

    ck_assert_int_eq(api->send_ack(g_c, acks[_i].id, acks[_i].fields), WSHUB_OK);
    text = recv_text();
    if (acks[_i].expect)
        ck_assert_str_eq(text, acks[_i].expect);
    o = json_tokener_parse(text);
    ck_assert_msg(o != NULL, "ack is not JSON: %s", text);
    ck_assert_str_eq(jstr(o, "type"), "ack");
    assert_id(o, acks[_i].id);
    if (!acks[_i].expect) {
        ck_assert(json_object_object_get_ex(o, "a", &v));
        ck_assert_int_eq(json_object_get_int(v), 1);
        ck_assert(json_object_object_get_ex(o, "b", &v));
        ck_assert_int_eq(json_object_array_length(v), 2);
    }
    json_object_put(o);
    free(text);
}
END_TEST

static const char *const error_texts[] = {
    "plain",
    "he said \"hi\"",
    "back\\slash",
    "line\nbreak\r\ttab",
    "ctrl \x01\x02\x1f end",
    "\b\f",
    "utf-8 \xc3\xa9 \xe2\x82\xac",
    "",
};

START_TEST(test_error_escaping)
{
    json_object *o;
    char *text;

    ck_assert_int_eq(api->send_error(g_c, "\"e\"", "co\"de", "%s", error_texts[_i]), WSHUB_OK);
    text = recv_text();
    for (const char *p = text; *p; p++)
        ck_assert_msg((unsigned char)*p >= 0x20, "raw control byte in %s", text);
    o = json_tokener_parse(text);
    ck_assert_msg(o != NULL, "error is not JSON: %s", text);
    ck_assert_str_eq(jstr(o, "type"), "error");
    ck_assert_str_eq(jstr(o, "code"), "co\"de");
    ck_assert_str_eq(jstr(o, "message"), error_texts[_i]);
    assert_id(o, "\"e\"");
    json_object_put(o);
    free(text);
}
END_TEST

START_TEST(test_error_formatting)
{
    json_object *o;

    ck_assert_int_eq(router__send_error(g_c, NULL, "invalid", "bad %s #%d", "room", 42), WSHUB_OK);
    o = recv_json();
    assert_error(o, "invalid", NULL);
    ck_assert_str_eq(jstr(o, "message"), "bad room #42");
    json_object_put(o);
    ck_assert_int_eq(api->send_error(g_c, NULL, NULL, "x"), WSHUB_ERR_INVAL);
    /* A closing connection takes no replies. */
    conn__close(g_c, 1000, NULL);
    ck_assert_int_eq(api->send_ack(g_c, "1", NULL), WSHUB_ERR_STATE);
    ck_assert_int_eq(api->send_error(g_c, "1", "x", "y"), WSHUB_ERR_STATE);
}
END_TEST

static int welcome_hook(wshub_event_t ev, void *data, void *ud)
{
    wshub_ev_welcome_t *w = data;

    (void)ev;
    (void)ud;
    ck_assert_int_eq(api->welcome_add(w, "motd", "\"hi \\\"there\\\"\""), WSHUB_OK);
    ck_assert_int_eq(api->welcome_add(w, "limits", "{\"rate\":10}"), WSHUB_OK);
    ck_assert_int_eq(api->welcome_add(w, "k\"q", "1"), WSHUB_OK);
    ck_assert_int_eq(api->welcome_add(w, "empty", ""), WSHUB_ERR_INVAL);
    ck_assert_int_eq(api->welcome_add(w, NULL, "1"), WSHUB_ERR_INVAL);
    ck_assert_int_eq(api->welcome_add(w, "x", NULL), WSHUB_ERR_INVAL);
    return WSHUB_OK;
}

START_TEST(test_welcome_fields)
{
    wsc_t cl2;
    wsc_frame_t f;
    json_object *o, *v;

    ck_assert_int_eq(hooks__add(&g_p1, WSHUB_EV_WELCOME, 0, welcome_hook, NULL), WSHUB_OK);
    ck_assert_int_eq(api->welcome_add(NULL, "a", "1"), WSHUB_ERR_INVAL);
    ck_assert_int_eq(stub_server__open(&cl2, "/ws", NULL, NULL, NULL, 0), 101);
    ck_assert_int_eq(stub_server__recv(&cl2, &f, STUB_MAX_ITER), 1);
    o = json_tokener_parse((const char *)f.data);
    ck_assert_msg(o != NULL, "welcome is not JSON: %s", (const char *)f.data);
    ck_assert_str_eq(jstr(o, "type"), "welcome");
    ck_assert_str_eq(jstr(o, "motd"), "hi \"there\"");
    ck_assert(json_object_object_get_ex(o, "limits", &v));
    ck_assert(json_object_object_get_ex(v, "rate", &v));
    ck_assert_int_eq(json_object_get_int(v), 10);
    ck_assert(json_object_object_get_ex(o, "k\"q", &v));
    ck_assert(!json_object_object_get_ex(o, "empty", &v));
    ck_assert(!json_object_object_get_ex(o, "x", &v));
    json_object_put(o);
    wsc_frame__free(&f);
    wsc__free(&cl2);
}
END_TEST

START_TEST(test_ping_echoes_id)
{
    static const char *const ids[] = {"1", "\"abc\"", "-2.5", "\"\\u00e9\\n\"", "0"};
    char msg[128];
    json_object *o;

    for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
        snprintf(msg, sizeof(msg), "{\"id\":%s,\"type\":\"ping\"}", ids[i]);
        ck_assert_int_eq(wsc__send_text(&g_cl, msg), 0);
        o = recv_json();
        ck_assert_str_eq(jstr(o, "type"), "pong");
        assert_id(o, ids[i]);
        json_object_put(o);
    }
}
END_TEST

static void add(Suite *s, const char *name, const TTest *t, int loops)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, setup, teardown);
    if (loops)
        tcase_add_loop_test(tc, t, 0, loops);
    else
        tcase_add_test(tc, t);
    suite_add_tcase(s, tc);
}

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

Suite *router_suite(void);

Suite *router_suite(void)
{
    Suite *s = suite_create("router");

    add(s, "envelope_error", test_envelope_error, N(envelope_errors));
    add(s, "envelope_accepted", test_envelope_accepted, N(accepted_envelopes));
    add(s, "unknown_type_cut", test_unknown_type_echo_is_cut, 0);
    add(s, "route_add_rules", test_route_add_rules, N(route_rules));
    add(s, "route_add_null", test_route_add_null_arguments, 0);
    add(s, "path_add_rules", test_path_add_rules, 0);
    add(s, "remove_owner", test_remove_owner, 0);
    add(s, "remove_owner_many", test_remove_owner_many, 0);
    add(s, "handler_arguments", test_handler_arguments, 0);
    add(s, "handler_error_mapped", test_handler_error_mapped, N(rc_codes));
    add(s, "handler_positive", test_handler_positive_results_are_silent, 0);
    add(s, "handler_close_then_fail", test_handler_error_after_close_not_sent, 0);
    add(s, "message_hook_denial", test_message_hook_denial, 0);
    add(s, "raw_path", test_raw_path_dispatch, 0);
    add(s, "ack_splicing", test_ack_splicing, N(acks));
    add(s, "error_escaping", test_error_escaping, N(error_texts));
    add(s, "error_formatting", test_error_formatting, 0);
    add(s, "welcome_fields", test_welcome_fields, 0);
    add(s, "ping_id", test_ping_echoes_id, 0);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(router_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
