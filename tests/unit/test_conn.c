/*
 * Unit tests for core/conn.c against the stub server (tests/support/stub_server.c): the real
 * core on a real event_base, connections over socketpairs, a test-side client codec
 * (tests/support/ws_test_client.c), and the loop driven one non-blocking iteration at a time.
 * Timers are exercised by calling conn__tick with a made-up clock, so nothing sleeps.
 */
#include <check.h>
#include <json-c/json.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "buf.h"
#include "conn.h"
#include "group.h"
#include "hooks.h"
#include "metrics.h"
#include "plugin_host.h"
#include "plugin_loader.h"
#include "router.h"
#include "server.h"
#include "stub_server.h"
#include "ws_test_client.h"

#define YAML_FMT                                                                                   \
    "server:\n"                                                                                    \
    "  listen: 127.0.0.1:0\n"                                                                      \
    "  path: /ws\n"                                                                                \
    "  max_message_size: 1KiB\n"                                                                   \
    "  heartbeat_interval: 1s\n"                                                                   \
    "  connection_timeout: 5s\n"                                                                   \
    "  handshake_timeout: 2s\n"                                                                    \
    "  permessage_deflate: false\n"                                                                \
    "  max_header_size: 2KiB\n"                                                                    \
    "%s"                                                                                           \
    "admin:\n"                                                                                     \
    "  enabled: false\n"                                                                           \
    "log:\n"                                                                                       \
    "  level: err\n"

static const wshub_host_api_t *api;
static struct wshub_plugin g_plain, g_system;

/* What the test hooks saw. */
static struct {
    int n_open, n_close;
    uint16_t close_code;
    char close_reason[128];
    char close_user[64];
    int handler_calls;
    bool after_close_live;
    uint64_t after_close_id;
    int after_close_send_rc;
    int close_hooks_during;
    bool lookup_null_during;
    int outside_auth_rc;
    int bad_ident_rc[4];
} g_ev;

static void start_with(const char *server_extra)
{
    char yaml[2048], err[512];

    snprintf(yaml, sizeof(yaml), YAML_FMT, server_extra);
    ck_assert_msg(stub_server__start(yaml, err, sizeof(err)) == 0, "stub start: %s", err);
    api = plugin_host__api();
    memset(&g_ev, 0, sizeof(g_ev));
    memset(&g_plain, 0, sizeof(g_plain));
    memset(&g_system, 0, sizeof(g_system));
    g_plain.name = "plain";
    g_system.name = "system";
    g_system.desc.flags = WSHUB_PLUGIN_SYSTEM_SCOPE;
    DLIST_INIT(&g_plain.groups);
    DLIST_INIT(&g_plain.timers);
    DLIST_INIT(&g_system.groups);
    DLIST_INIT(&g_system.timers);
}

static void setup(void)
{
    start_with("");
}

static void setup_one_conn(void)
{
    start_with("  max_connections: 1\n");
}

static void setup_per_ip(void)
{
    start_with("  max_connections_per_ip: 1\n");
}

static void setup_slow(void)
{
    start_with("  send_queue_max_bytes: 16KiB\n");
}

static void teardown(void)
{
    group__free_owner(&g_plain);
    group__free_owner(&g_system);
    stub_server__stop();
    ck_assert_uint_eq(buf__live(), 0);
}

/* --- helpers ------------------------------------------------------------------------------- */

static double metric_l(wshub_metric_t *m, const char *label)
{
    const char *labels[1] = {label};
    return metrics__get(m, labels);
}

static json_object *frame_json(const wsc_frame_t *f)
{
    json_object *o;

    ck_assert_uint_eq(f->opcode, 0x1);
    o = json_tokener_parse((const char *)f->data);
    ck_assert_msg(o != NULL, "not JSON: %s", (const char *)f->data);
    return o;
}

static const char *jstr(json_object *o, const char *key)
{
    json_object *v;

    if (!json_object_object_get_ex(o, key, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

static int64_t jint(json_object *o, const char *key)
{
    json_object *v;

    ck_assert_msg(json_object_object_get_ex(o, key, &v), "no %s", key);
    return json_object_get_int64(v);
}

/* Receives one frame, asserting it is an unmasked final frame. */
static void recv_frame(wsc_t *cl, wsc_frame_t *f)
{
    ck_assert_int_eq(stub_server__recv(cl, f, STUB_MAX_ITER), 1);
    ck_assert(!f->masked);
    ck_assert(f->fin);
    ck_assert_uint_eq(f->rsv, 0);
}

/* Receives one JSON text frame and checks its "type". */
static json_object *recv_json(wsc_t *cl, const char *type)
{
    wsc_frame_t f;
    json_object *o;

    recv_frame(cl, &f);
    o = frame_json(&f);
    ck_assert_msg(jstr(o, "type") && strcmp(jstr(o, "type"), type) == 0, "expected %s, got %s",
                  type, (const char *)f.data);
    wsc_frame__free(&f);
    return o;
}

static void expect_close(wsc_t *cl, uint16_t code, const char *reason)
{
    wsc_frame_t f;

    recv_frame(cl, &f);
    ck_assert_msg(f.opcode == 0x8, "expected close, got opcode %u: %s", f.opcode,
                  (const char *)f.data);
    ck_assert_uint_eq(f.close_code, code);
    if (reason)
        ck_assert_str_eq(f.close_reason, reason);
    wsc_frame__free(&f);
}

/* Opens a JSON-path connection and consumes the welcome. */
static wshub_conn_t *open_json(wsc_t *cl, const char *path, uint64_t *id)
{
    char head[2048];
    uint64_t cid;
    json_object *w;
    wshub_conn_t *c;

    ck_assert_int_eq(stub_server__open(cl, path, NULL, &cid, head, sizeof(head)), 101);
    w = recv_json(cl, "welcome");
    ck_assert_int_eq(jint(w, "connection_id"), (int64_t)cid);
    json_object_put(w);
    c = conn__by_id(cid);
    ck_assert_ptr_nonnull(c);
    if (id)
        *id = cid;
    return c;
}

static bool no_sockets(void *ud)
{
    (void)ud;
    return conn__n_sockets() == 0;
}

/* The client closes its socket; the server must then release everything. */
static void close_client_and_drain(wsc_t *cl)
{
    wsc__free(cl);
    ck_assert(stub_server__run_until(no_sockets, NULL, STUB_MAX_ITER));
}

/* No frame arrives within a few iterations. */
static void expect_silence(wsc_t *cl)
{
    for (int i = 0; i < 5; i++)
        stub_server__step();
    wsc__read(cl);
    ck_assert_uint_eq(wsc__pending(cl), 0);
}

static int hook_open(wshub_event_t ev, void *data, void *ud)
{
    (void)ev;
    (void)data;
    (void)ud;
    g_ev.n_open++;
    return WSHUB_OK;
}

static int hook_close(wshub_event_t ev, void *data, void *ud)
{
    wshub_ev_close_t *e = data;

    (void)ev;
    (void)ud;
    g_ev.n_close++;
    g_ev.close_code = e->code;
    snprintf(g_ev.close_reason, sizeof(g_ev.close_reason), "%s", e->reason);
    snprintf(g_ev.close_user, sizeof(g_ev.close_user), "%s", api->conn_user(e->conn));
    /* Closing again from the CONN_CLOSE hook changes nothing. */
    api->conn_close(e->conn, 4002, "from close hook");
    return WSHUB_OK;
}

static void add_lifecycle_hooks(void)
{
    ck_assert_int_eq(hooks__add(&g_plain, WSHUB_EV_CONN_OPEN, 0, hook_open, NULL), WSHUB_OK);
    ck_assert_int_eq(hooks__add(&g_plain, WSHUB_EV_CONN_CLOSE, 0, hook_close, NULL), WSHUB_OK);
}

/* --- handshake ----------------------------------------------------------------------------- */

START_TEST(test_handshake_success)
{
    wsc_t cl;
    char head[2048], v[128];
    uint64_t id;
    wshub_conn_t *c;

    add_lifecycle_hooks();
    ck_assert_int_eq(stub_server__open(&cl, "/ws", NULL, &id, head, sizeof(head)), 101);
    ck_assert(wsc__http_header(head, "Sec-WebSocket-Accept", v, sizeof(v)));
    ck_assert_str_eq(v, WSC_SAMPLE_ACCEPT);
    ck_assert(wsc__http_header(head, "Upgrade", v, sizeof(v)));
    ck_assert_str_eq(v, "websocket");
    ck_assert(!wsc__http_header(head, "Sec-WebSocket-Extensions", v, sizeof(v)));
    c = conn__by_id(id);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->state, CONN_OPEN);
    ck_assert(conn__is_live(c));
    ck_assert_str_eq(api->conn_remote_addr(c), "127.0.0.1");
    ck_assert_str_eq(api->conn_path(c), "/ws");
    ck_assert_str_eq(api->conn_tenant(c), "public");
    ck_assert_int_eq(g_ev.n_open, 1);
    ck_assert_double_eq(*g_srv.m.accepted, 1);
    ck_assert_double_eq(*g_srv.m.connections, 1);
    ck_assert_uint_eq(conn__n_sockets(), 1);
    close_client_and_drain(&cl);
    ck_assert_int_eq(g_ev.n_close, 1);
    ck_assert_uint_eq(g_ev.close_code, 1006);
    ck_assert_double_eq(*g_srv.m.connections, 0);
    ck_assert_double_eq(*g_srv.m.closed, 1);
}
END_TEST

START_TEST(test_handshake_split_across_reads)
{
    wsc_t cl;
    char req[1024];
    size_t n;
    int status = 0;
    uint64_t id = stub_server__connect(&cl);

    ck_assert_uint_ne(id, 0);
    n = wsc__format_request(req, sizeof(req), "/ws", NULL, NULL);
    for (size_t i = 0; i < n; i++) {
        ck_assert_int_eq(wsc__send_raw(&cl, req + i, 1), 0);
        stub_server__step();
    }
    for (int i = 0; i < 5 && wsc__take_http(&cl, &status, NULL, 0) == 0; i++) {
        stub_server__step();
        wsc__read(&cl);
    }
    ck_assert_int_eq(status, 101);
    ck_assert_ptr_nonnull(conn__by_id(id));
    wsc__free(&cl);
}
END_TEST

START_TEST(test_frames_in_same_segment_as_request)
{
    wsc_t cl;
    char req[1024];
    uint8_t *frame;
    size_t n, fl;
    int status = 0;
    json_object *o;

    ck_assert_uint_ne(stub_server__connect(&cl), 0);
    n = wsc__format_request(req, sizeof(req), "/ws", NULL, NULL);
    fl = wsc__encode(&cl, 0x81, true, "{\"type\":\"ping\",\"id\":5}", 22, &frame);
    ck_assert_uint_lt(n + fl, sizeof(req));
    memcpy(req + n, frame, fl);
    free(frame);
    ck_assert_int_eq(wsc__send_raw(&cl, req, n + fl), 0);
    for (int i = 0; i < 5 && wsc__take_http(&cl, &status, NULL, 0) == 0; i++) {
        stub_server__step();
        wsc__read(&cl);
    }
    ck_assert_int_eq(status, 101);
    json_object_put(recv_json(&cl, "welcome"));
    o = recv_json(&cl, "pong");
    ck_assert_int_eq(jint(o, "id"), 5);
    json_object_put(o);
    wsc__free(&cl);
}
END_TEST

static const struct {
    const char *name;
    const char *request; /* NULL: built from path */
    const char *path;
    int status;
    const char *why;
} hs_errors[] = {
    {"garbage", "GARBAGE\r\n\r\n", NULL, 400, "bad_request"},
    {"no_key",
     "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Version: 13\r\n\r\n",
     NULL, 400, "bad_key"},
    {"http10",
     "GET /ws HTTP/1.0\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " WSC_SAMPLE_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
     NULL, 400, "bad_http_version"},
    {"post",
     "POST /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " WSC_SAMPLE_KEY "\r\nSec-WebSocket-Version: 13\r\n\r\n",
     NULL, 405, "bad_method"},
    {"version8",
     "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
     "Sec-WebSocket-Key: " WSC_SAMPLE_KEY "\r\nSec-WebSocket-Version: 8\r\n\r\n",
     NULL, 426, "bad_version"},
    {"no_path", NULL, "/nope", 404, "no_path"},
    {"ws_prefix_only", NULL, "/wsx", 404, "no_path"},
    {"too_large", NULL, NULL, 431, "header_too_large"},
};

START_TEST(test_handshake_errors)
{
    wsc_t cl;
    char req[4096], head[2048], v[64];
    size_t n;
    int status = 0;
    uint64_t id = stub_server__connect(&cl);

    add_lifecycle_hooks();
    ck_assert_uint_ne(id, 0);
    if (hs_errors[_i].request) {
        n = strlen(hs_errors[_i].request);
        memcpy(req, hs_errors[_i].request, n);
    } else if (hs_errors[_i].path) {
        n = wsc__format_request(req, sizeof(req), hs_errors[_i].path, NULL, NULL);
    } else {
        char pad[3001];
        memset(pad, 'a', 3000);
        pad[3000] = '\0';
        n = (size_t)snprintf(req, sizeof(req), "GET /ws HTTP/1.1\r\nX-Pad: %s\r\n\r\n", pad);
    }
    ck_assert_int_eq(wsc__send_raw(&cl, req, n), 0);
    for (int i = 0; i < 10 && wsc__take_http(&cl, &status, head, sizeof(head)) == 0; i++) {
        stub_server__step();
        wsc__read(&cl);
    }
    ck_assert_msg(status == hs_errors[_i].status, "%s: status %d", hs_errors[_i].name, status);
    if (status == 426) {
        ck_assert(wsc__http_header(head, "Sec-WebSocket-Version", v, sizeof(v)));
        ck_assert_str_eq(v, "13");
    }
    ck_assert(strstr(head, "Sec-WebSocket-Accept") == NULL);
    ck_assert_double_eq(metric_l(g_srv.m.handshake_failures, hs_errors[_i].why), 1);
    ck_assert_ptr_null(conn__by_id(id));
    /* The server closes its side once the response is out. */
    ck_assert(stub_server__wait_eof(&cl, STUB_MAX_ITER));
    ck_assert_int_eq(g_ev.n_open, 0);
    close_client_and_drain(&cl);
    ck_assert_int_eq(g_ev.n_close, 0);
    ck_assert_double_eq(*g_srv.m.accepted, 0);
}
END_TEST

START_TEST(test_handshake_503_at_max_connections)
{
    wsc_t a, b, c;
    char head[2048];

    ck_assert_int_eq(stub_server__open(&a, "/ws", NULL, NULL, head, sizeof(head)), 101);
    ck_assert_int_eq(stub_server__open(&b, "/ws", NULL, NULL, head, sizeof(head)), 503);
    ck_assert_double_eq(metric_l(g_srv.m.handshake_failures, "max_connections"), 1);
    ck_assert(stub_server__wait_eof(&b, STUB_MAX_ITER));
    wsc__free(&b);
    /* Once the first leaves, there is room again. */
    close_client_and_drain(&a);
    ck_assert_int_eq(stub_server__open(&c, "/ws", NULL, NULL, head, sizeof(head)), 101);
    wsc__free(&c);
}
END_TEST

START_TEST(test_handshake_503_per_ip)
{
    wsc_t a, b, c;
    char head[2048];

    ck_assert_int_eq(stub_server__open(&a, "/ws", NULL, NULL, head, sizeof(head)), 101);
    ck_assert_int_eq(stub_server__open(&b, "/ws", NULL, NULL, head, sizeof(head)), 503);
    ck_assert_double_eq(metric_l(g_srv.m.handshake_failures, "ip_limit"), 1);
    wsc__free(&b);
    close_client_and_drain(&a);
    ck_assert_ptr_null(strmap__get(&g_srv.ips, "127.0.0.1"));
    ck_assert_int_eq(stub_server__open(&c, "/ws", NULL, NULL, head, sizeof(head)), 101);
    wsc__free(&c);
}
END_TEST

START_TEST(test_handshake_timeout)
{
    wsc_t cl;
    static const char partial[] = "GET /ws HTTP/1.1\r\nHost: x\r\n";
    uint64_t id = stub_server__connect(&cl);
    wshub_conn_t *c;
    uint64_t deadline;

    ck_assert_int_eq(wsc__send_raw(&cl, partial, sizeof(partial) - 1), 0);
    stub_server__step();
    c = stub_server__conn(id);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->state, CONN_HANDSHAKE);
    deadline = c->deadline_ms;
    ck_assert_uint_eq(deadline, c->created_ms + 2000);
    conn__tick(deadline - 1);
    stub_server__step();
    ck_assert_ptr_eq(stub_server__conn(id), c);
    conn__tick(deadline);
    stub_server__step();
    ck_assert_ptr_null(stub_server__conn(id));
    ck_assert_uint_eq(conn__n_sockets(), 0);
    ck_assert_double_eq(metric_l(g_srv.m.handshake_failures, "timeout"), 1);
    ck_assert(stub_server__wait_eof(&cl, STUB_MAX_ITER));
    ck_assert_uint_eq(wsc__pending(&cl), 0); /* no response: just closed */
    wsc__free(&cl);
}
END_TEST

/* --- open connections ---------------------------------------------------------------------- */

START_TEST(test_welcome_on_json_path)
{
    wsc_t cl;
    uint64_t id;
    json_object *w;

    ck_assert_int_eq(stub_server__open(&cl, "/ws/acme/room", NULL, &id, NULL, 0), 101);
    w = recv_json(&cl, "welcome");
    ck_assert_int_eq(jint(w, "connection_id"), (int64_t)id);
    ck_assert_int_eq(jint(w, "heartbeat"), 1000);
    ck_assert_str_eq(jstr(w, "protocol"), "wshub.v1");
    ck_assert_str_eq(jstr(w, "tenant_id"), "public");
    ck_assert_str_eq(jstr(w, "user_id"), "");
    ck_assert_int_gt(jint(w, "server_time"), 0);
    json_object_put(w);
    ck_assert_str_eq(api->conn_path(conn__by_id(id)), "/ws/acme/room");
    expect_silence(&cl);
    wsc__free(&cl);
}
END_TEST

START_TEST(test_ping_pong)
{
    wsc_t cl;
    wsc_frame_t f;

    open_json(&cl, "/ws", NULL);
    ck_assert_int_eq(wsc__send_frame(&cl, 0x9, "abc", 3), 0);
    recv_frame(&cl, &f);
    ck_assert_uint_eq(f.opcode, 0xA);
    ck_assert_uint_eq(f.len, 3);
    ck_assert(memcmp(f.data, "abc", 3) == 0);
    wsc_frame__free(&f);
    /* An empty ping gets an empty pong; unsolicited pongs are ignored. */
    ck_assert_int_eq(wsc__send_frame(&cl, 0xA, "x", 1), 0);
    ck_assert_int_eq(wsc__send_frame(&cl, 0x9, NULL, 0), 0);
    recv_frame(&cl, &f);
    ck_assert_uint_eq(f.opcode, 0xA);
    ck_assert_uint_eq(f.len, 0);
    wsc_frame__free(&f);
    expect_silence(&cl);
    wsc__free(&cl);
}
END_TEST

static const struct {
    uint16_t code;
    const char *reason;
} client_closes[] = {{1000, "bye"}, {0, NULL}, {4321, "custom"}, {1001, ""}};

START_TEST(test_client_close_echoed)
{
    wsc_t cl;
    wsc_frame_t f;
    uint16_t code = client_closes[_i].code;

    add_lifecycle_hooks();
    open_json(&cl, "/ws", NULL);
    ck_assert_int_eq(wsc__send_close(&cl, code, client_closes[_i].reason), 0);
    recv_frame(&cl, &f);
    ck_assert_uint_eq(f.opcode, 0x8);
    if (code == 0) {
        ck_assert_uint_eq(f.len, 0); /* an empty close is answered empty */
    } else {
        ck_assert_uint_eq(f.close_code, code);
        ck_assert_str_eq(f.close_reason, client_closes[_i].reason);
    }
    wsc_frame__free(&f);
    ck_assert(stub_server__wait_eof(&cl, STUB_MAX_ITER));
    ck_assert_uint_eq(wsc__pending(&cl), 0);
    ck_assert_int_eq(g_ev.n_close, 1);
    ck_assert_uint_eq(g_ev.close_code, code ? code : 1005);
    close_client_and_drain(&cl);
    ck_assert_int_eq(g_ev.n_close, 1);
}
END_TEST

/* Protocol violations: each is followed, in the same write, by a valid ping envelope that must
 * not be processed. */
static const struct {
    const char *name;
    uint8_t b0;
    bool masked;
    const char *payload;
    size_t len;
    uint16_t code;
} violations[] = {
    {"unmasked", 0x81, false, "{}", 2, 1002},
    {"reserved_opcode", 0x83, true, "x", 1, 1002},
    {"reserved_control_opcode", 0x8B, true, "", 0, 1002},
    {"rsv1_without_pmd", 0xC1, true, "x", 1, 1002},
    {"rsv2", 0xA1, true, "x", 1, 1002},
    {"fragmented_ping", 0x09, true, "x", 1, 1002},
    {"orphan_continuation", 0x80, true, "x", 1, 1002},
    {"long_ping", 0x89, true,
     "0123456789012345678901234567890123456789012345678901234567890123456789012345678901234"
     "56789012345678901234567890123456789012345",
     126, 1002},
    {"close_one_byte", 0x88, true, "\x03", 1, 1002},
    {"close_code_1005", 0x88, true, "\x03\xed", 2, 1002},
    {"close_code_999", 0x88, true, "\x03\xe7", 2, 1002},
    {"bad_utf8", 0x81, true, "\xc3\x28", 2, 1007},
    {"overlong_utf8", 0x81, true, "\xc0\xaf", 2, 1007},
    {"surrogate_utf8", 0x81, true, "\xed\xa0\x80", 3, 1007},
    {"close_reason_bad_utf8", 0x88, true, "\x03\xe8\xff", 3, 1007},
};

START_TEST(test_protocol_violation)
{
    wsc_t cl;
    wsc_frame_t f;
    uint8_t *a, *b, buf[512];
    size_t al, bl;
    char label[8];

    add_lifecycle_hooks();
    open_json(&cl, "/ws", NULL);
    al = wsc__encode(&cl, violations[_i].b0, violations[_i].masked, violations[_i].payload,
                     violations[_i].len, &a);
    bl = wsc__encode(&cl, 0x81, true, "{\"type\":\"ping\"}", 15, &b);
    ck_assert_uint_le(al + bl, sizeof(buf));
    memcpy(buf, a, al);
    memcpy(buf + al, b, bl);
    free(a);
    free(b);
    ck_assert_int_eq(wsc__send_raw(&cl, buf, al + bl), 0);
    expect_close(&cl, violations[_i].code, NULL);
    ck_assert(stub_server__wait_eof(&cl, STUB_MAX_ITER));
    /* Nothing after the close: the ping was never processed. */
    ck_assert_int_eq(wsc__take_frame(&cl, &f), 0);
    snprintf(label, sizeof(label), "%u", violations[_i].code);
    ck_assert_double_eq(metric_l(g_srv.m.protocol_errors, label), 1);
    ck_assert_double_eq(*g_srv.m.msgs_in, 0);
    ck_assert_int_eq(g_ev.n_close, 1);
    ck_assert_uint_eq(g_ev.close_code, violations[_i].code);
    close_client_and_drain(&cl);
}
END_TEST

START_TEST(test_oversize_json_keeps_connection)
{
    wsc_t cl;
    char big[2001];
    json_object *o;

    memset(big, 'a', 2000);
    big[2000] = '\0';
    open_json(&cl, "/ws", NULL);
    ck_assert_int_eq(wsc__send_frame(&cl, 0x1, big, 2000), 0);
    ck_assert_int_eq(wsc__send_text(&cl, "{\"type\":\"ping\",\"id\":\"after\"}"), 0);
    o = recv_json(&cl, "error");
    ck_assert_str_eq(jstr(o, "code"), "too_large");
    json_object_put(o);
    o = recv_json(&cl, "pong");
    ck_assert_str_eq(jstr(o, "id"), "after");
    json_object_put(o);
    /* Fragmented: the total counts, not each fragment. */
    ck_assert_int_eq(wsc__send_frame_ex(&cl, 0x01, true, big, 600), 0);
    ck_assert_int_eq(wsc__send_frame_ex(&cl, 0x80, true, big, 600), 0);
    o = recv_json(&cl, "error");
    ck_assert_str_eq(jstr(o, "code"), "too_large");
    json_object_put(o);
    ck_assert(conn__is_live(conn__by_id(g_srv.next_id)));
    wsc__free(&cl);
}
END_TEST

START_TEST(test_oversize_json_beyond_discard_limit)
{
    wsc_t cl;
    size_t n = 17 * 1024;
    char *big = malloc(n);

    memset(big, 'a', n);
    open_json(&cl, "/ws", NULL);
    ck_assert_int_eq(wsc__send_frame(&cl, 0x1, big, n), 0);
    expect_close(&cl, 1009, NULL);
    free(big);
    wsc__free(&cl);
}
END_TEST

static int echo_cb(wshub_conn_t *c, const wshub_msg_t *m, void *ud)
{
    (void)ud;
    ck_assert_ptr_null(m->type);
    ck_assert_ptr_null(m->id);
    ck_assert_uint_eq(m->data[m->len], '\0');
    return conn__send_data(c, m->is_binary ? WS_OP_BINARY : WS_OP_TEXT, m->data, m->len);
}

START_TEST(test_raw_path_echo_and_oversize)
{
    wsc_t cl;
    wsc_frame_t f;
    char big[2000];
    uint8_t bin[3] = {0, 1, 2};

    memset(big, 'b', sizeof(big));
    ck_assert_int_eq(router__path_add(&g_plain, "/raw", echo_cb, NULL), WSHUB_OK);
    ck_assert_int_eq(stub_server__open(&cl, "/raw", NULL, NULL, NULL, 0), 101);
    ck_assert_int_eq(wsc__send_text(&cl, "not json"), 0);
    recv_frame(&cl, &f); /* no welcome on raw paths: the first frame is the echo */
    ck_assert_uint_eq(f.opcode, 0x1);
    ck_assert_str_eq((const char *)f.data, "not json");
    wsc_frame__free(&f);
    ck_assert_int_eq(wsc__send_frame(&cl, 0x2, bin, 3), 0);
    recv_frame(&cl, &f);
    ck_assert_uint_eq(f.opcode, 0x2);
    ck_assert_uint_eq(f.len, 3);
    ck_assert(memcmp(f.data, bin, 3) == 0);
    wsc_frame__free(&f);
    ck_assert_int_eq(wsc__send_frame(&cl, 0x2, big, sizeof(big)), 0);
    expect_close(&cl, 1009, NULL);
    ck_assert(stub_server__wait_eof(&cl, STUB_MAX_ITER));
    ck_assert_double_eq(metric_l(g_srv.m.protocol_errors, "1009"), 1);
    close_client_and_drain(&cl);
}
END_TEST

/* --- output -------------------------------------------------------------------------------- */

START_TEST(test_slow_consumer)
{
    wsc_t cl;
    wsc_frame_t f;
    uint64_t id;
    wshub_conn_t *c;
    char payload[1000];
    int small = 4096, rc = WSHUB_OK, queued = 0, received = 0;

    memset(payload, 'q', sizeof(payload));
    c = open_json(&cl, "/ws", &id);
    ck_assert_int_eq(setsockopt(c->fd, SOL_SOCKET, SO_SNDBUF, &small, sizeof(small)), 0);
    /* The client does not read: the socket fills, then the queue. */
    for (int i = 0; i < 200 && rc == WSHUB_OK; i++) {
        rc = conn__send_data(c, WS_OP_TEXT, payload, sizeof(payload));
        if (rc == WSHUB_OK)
            queued++;
        stub_server__step();
    }
    ck_assert_int_eq(rc, WSHUB_ERR_LIMIT);
    ck_assert_int_gt(queued, 10);
    ck_assert_double_eq(*g_srv.m.slow_consumers, 1);
    ck_assert_int_eq(conn__send_data(c, WS_OP_TEXT, "x", 1), WSHUB_ERR_STATE);
    ck_assert_ptr_null(api->conn_lookup(&g_system, NULL, id));
    ck_assert_uint_le(c->oq_bytes, 16 * 1024);
    /* Now the client reads: intact frames, then the close, then EOF. */
    for (;;) {
        recv_frame(&cl, &f);
        if (f.opcode != 0x1)
            break;
        ck_assert_uint_eq(f.len, sizeof(payload));
        ck_assert(memcmp(f.data, payload, sizeof(payload)) == 0);
        received++;
        wsc_frame__free(&f);
    }
    ck_assert_uint_eq(f.opcode, 0x8);
    ck_assert_uint_eq(f.close_code, 1008);
    ck_assert_str_eq(f.close_reason, "slow consumer");
    wsc_frame__free(&f);
    ck_assert_int_le(received, queued);
    ck_assert_int_gt(received, 0);
    ck_assert(stub_server__wait_eof(&cl, STUB_MAX_ITER));
    close_client_and_drain(&cl);
    ck_assert_double_eq(*g_srv.m.slow_consumers, 1);
}
END_TEST

START_TEST(test_one_writev_per_iteration)
{
    wsc_t cl;
    wsc_frame_t f;
    uint64_t id;
    wshub_conn_t *c;
    uint8_t *one, buf[256];
    size_t n, pos = 0;
    int frames = 0;

    ck_assert_int_eq(stub_server__open_type(&cl, SOCK_SEQPACKET, "/ws", NULL, &id, NULL, 0), 101);
    /* The 101 and the welcome were produced in one iteration: one record held both. */
    ck_assert_int_eq(wsc__take_frame(&cl, &f), 1);
    wsc_frame__free(&f);
    ck_assert_uint_eq(wsc__pending(&cl), 0);
    c = conn__by_id(id);

    for (int i = 0; i < 5; i++) {
        char msg[16];
        snprintf(msg, sizeof(msg), "m%d", i);
        ck_assert_int_eq(conn__send_data(c, WS_OP_TEXT, msg, strlen(msg)), WSHUB_OK);
    }
    ck_assert_uint_eq(wsc__read_once(&cl, 65536), 0); /* nothing before the iteration ends */
    stub_server__step();
    ck_assert_uint_gt(wsc__read_once(&cl, 65536), 0);
    ck_assert_uint_eq(wsc__read_once(&cl, 65536), 0); /* ...and it was one record */
    while (wsc__take_frame(&cl, &f) == 1) {
        char want[16];
        snprintf(want, sizeof(want), "m%d", frames);
        ck_assert_str_eq((const char *)f.data, want);
        frames++;
        wsc_frame__free(&f);
    }
    ck_assert_int_eq(frames, 5);

    /* Three requests in one read produce three replies in one write. */
    for (int i = 0; i < 3; i++) {
        char env[64];
        int el = snprintf(env, sizeof(env), "{\"type\":\"ping\",\"id\":%d}", i);
        n = wsc__encode(&cl, 0x81, true, env, (size_t)el, &one);
        memcpy(buf + pos, one, n);
        pos += n;
        free(one);
    }
    ck_assert_int_eq(wsc__send_raw(&cl, buf, pos), 0);
    stub_server__step();
    ck_assert_uint_gt(wsc__read_once(&cl, 65536), 0);
    ck_assert_uint_eq(wsc__read_once(&cl, 65536), 0);
    frames = 0;
    while (wsc__take_frame(&cl, &f) == 1) {
        json_object *o = frame_json(&f);
        ck_assert_str_eq(jstr(o, "type"), "pong");
        ck_assert_int_eq(jint(o, "id"), frames);
        json_object_put(o);
        frames++;
        wsc_frame__free(&f);
    }
    ck_assert_int_eq(frames, 3);
    wsc__free(&cl);
}
END_TEST

/* --- timers -------------------------------------------------------------------------------- */

START_TEST(test_heartbeat_and_timeout)
{
    wsc_t cl;
    wsc_frame_t f;
    uint64_t id, base;
    wshub_conn_t *c;

    add_lifecycle_hooks();
    c = open_json(&cl, "/ws", &id);
    base = c->last_seen_ms;
    conn__tick(base + 999);
    expect_silence(&cl);
    conn__tick(base + 1000);
    recv_frame(&cl, &f);
    ck_assert_uint_eq(f.opcode, 0x9);
    ck_assert_uint_eq(f.len, 0);
    wsc_frame__free(&f);
    /* One ping per interval, not one per tick. */
    conn__tick(base + 1500);
    expect_silence(&cl);
    conn__tick(base + 2000);
    recv_frame(&cl, &f);
    ck_assert_uint_eq(f.opcode, 0x9);
    wsc_frame__free(&f);
    ck_assert(conn__is_live(c));
    conn__tick(base + 5000);
    ck_assert(!conn__is_live(c));
    expect_close(&cl, 1001, "timeout");
    ck_assert_uint_eq(g_ev.close_code, 1001);
    ck_assert_str_eq(g_ev.close_reason, "timeout");
    ck_assert(stub_server__wait_eof(&cl, STUB_MAX_ITER));
    close_client_and_drain(&cl);
}
END_TEST

/* The wall clock may step backwards (NTP): idle time is then 0, not a huge unsigned value. */
START_TEST(test_clock_going_backwards)
{
    wsc_t cl;
    wsc_frame_t f;
    wshub_conn_t *c;
    uint64_t base;

    c = open_json(&cl, "/ws", NULL);
    base = c->last_seen_ms;
    conn__tick(base - 1000);
    expect_silence(&cl);
    ck_assert(conn__is_live(c));
    /* A ping was just sent "in the future": no new one until the interval has passed. */
    conn__tick(base + 3000);
    recv_frame(&cl, &f);
    ck_assert_uint_eq(f.opcode, 0x9);
    wsc_frame__free(&f);
    conn__tick(base + 1500);
    expect_silence(&cl);
    ck_assert(conn__is_live(c));
    wsc__free(&cl);
}
END_TEST

START_TEST(test_traffic_defers_heartbeat)
{
    wsc_t cl;
    wshub_conn_t *c;
    json_object *o;

    c = open_json(&cl, "/ws", NULL);
    c->last_seen_ms -= 10000; /* pretend the connection has been idle */
    ck_assert_int_eq(wsc__send_text(&cl, "{\"type\":\"ping\"}"), 0);
    o = recv_json(&cl, "pong");
    json_object_put(o);
    /* The message refreshed last_seen: a tick at "now" neither pings nor closes. */
    conn__tick(server__now_ms());
    expect_silence(&cl);
    ck_assert(conn__is_live(c));
    wsc__free(&cl);
}
END_TEST

START_TEST(test_closing_linger_deadline)
{
    wsc_t cl;
    uint64_t id;
    wshub_conn_t *c;

    c = open_json(&cl, "/ws", &id);
    conn__close(c, 1000, "done");
    stub_server__step();
    expect_close(&cl, 1000, "done");
    /* The client never answers nor closes: the linger deadline frees the socket. */
    c = stub_server__conn(id);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(c->state, CONN_CLOSING);
    conn__tick(c->deadline_ms - 1);
    stub_server__step();
    ck_assert_ptr_nonnull(stub_server__conn(id));
    conn__tick(c->deadline_ms);
    stub_server__step();
    ck_assert_ptr_null(stub_server__conn(id));
    ck_assert_uint_eq(conn__n_sockets(), 0);
    wsc__free(&cl);
}
END_TEST

/* --- deferred close ------------------------------------------------------------------------ */

static int close_in_handler(wshub_conn_t *c, const wshub_msg_t *m, void *ud)
{
    uint64_t id = api->conn_id(c);

    (void)m;
    (void)ud;
    g_ev.handler_calls++;
    api->conn_close(c, 4000, "bye");
    /* Still valid: readable, but no longer live or findable. */
    g_ev.after_close_live = conn__is_live(c);
    g_ev.after_close_id = api->conn_id(c);
    g_ev.after_close_send_rc = api->conn_send_text(c, "late", 4);
    g_ev.close_hooks_during = g_ev.n_close;
    g_ev.lookup_null_during =
        api->conn_lookup(&g_system, NULL, id) == NULL && conn__by_id(id) == NULL;
    api->conn_close(c, 4001, "second close is ignored");
    return WSHUB_OK;
}

START_TEST(test_deferred_close_in_handler)
{
    wsc_t cl;
    uint64_t id;
    wshub_conn_t *c;

    add_lifecycle_hooks();
    ck_assert_int_eq(router__route_add(&g_plain, "t.close", close_in_handler, NULL), WSHUB_OK);
    c = open_json(&cl, "/ws", &id);
    ck_assert_ptr_eq(api->conn_lookup(&g_system, NULL, id), c);
    ck_assert_int_eq(wsc__send_text(&cl, "{\"type\":\"t.close\"}"), 0);
    expect_close(&cl, 4000, "bye");
    ck_assert_int_eq(g_ev.handler_calls, 1);
    ck_assert(!g_ev.after_close_live);
    ck_assert_uint_eq(g_ev.after_close_id, id);
    ck_assert_int_eq(g_ev.after_close_send_rc, WSHUB_ERR_STATE);
    ck_assert_int_eq(g_ev.close_hooks_during, 0);
    ck_assert(g_ev.lookup_null_during);
    ck_assert_int_eq(g_ev.n_close, 1);
    ck_assert_uint_eq(g_ev.close_code, 4000);
    ck_assert_str_eq(g_ev.close_reason, "bye");
    /* The client completes the close handshake; hooks do not run again. */
    ck_assert_int_eq(wsc__send_close(&cl, 4000, "bye"), 0);
    ck_assert(stub_server__wait_eof(&cl, STUB_MAX_ITER));
    close_client_and_drain(&cl);
    ck_assert_int_eq(g_ev.n_close, 1);
}
END_TEST

static int hook_close_on_message(wshub_event_t ev, void *data, void *ud)
{
    wshub_ev_message_t *m = data;

    (void)ev;
    (void)ud;
    if (m->msg->type && strcmp(m->msg->type, "t.hookclose") == 0) {
        api->conn_close(m->conn, 4100, "hook");
        g_ev.after_close_live = conn__is_live(m->conn);
        g_ev.after_close_id = api->conn_id(m->conn);
    }
    return WSHUB_OK;
}

static int count_handler(wshub_conn_t *c, const wshub_msg_t *m, void *ud)
{
    (void)c;
    (void)m;
    (void)ud;
    g_ev.handler_calls++;
    return WSHUB_OK;
}

START_TEST(test_deferred_close_in_hook)
{
    wsc_t cl;
    uint64_t id;

    add_lifecycle_hooks();
    ck_assert_int_eq(hooks__add(&g_plain, WSHUB_EV_MESSAGE_IN, 0, hook_close_on_message, NULL),
                     WSHUB_OK);
    ck_assert_int_eq(router__route_add(&g_plain, "t.hookclose", count_handler, NULL), WSHUB_OK);
    open_json(&cl, "/ws", &id);
    /* Two messages in one write: the second is not processed after the close. */
    ck_assert_int_eq(wsc__send_text(&cl, "{\"type\":\"t.hookclose\"}"), 0);
    ck_assert_int_eq(wsc__send_text(&cl, "{\"type\":\"ping\"}"), 0);
    expect_close(&cl, 4100, "hook");
    ck_assert_int_eq(g_ev.handler_calls, 0);
    ck_assert(!g_ev.after_close_live);
    ck_assert_uint_eq(g_ev.after_close_id, id);
    ck_assert_int_eq(g_ev.n_close, 1);
    wsc__free(&cl);
}
END_TEST

START_TEST(test_close_before_iteration_end_then_eof)
{
    wsc_t cl;
    wshub_conn_t *c;

    add_lifecycle_hooks();
    c = open_json(&cl, "/ws", NULL);
    conn__close(c, 1000, "x");
    /* The peer vanishes before the close is processed. */
    wsc__free(&cl);
    ck_assert(stub_server__run_until(no_sockets, NULL, STUB_MAX_ITER));
    ck_assert_int_eq(g_ev.n_close, 1);
    ck_assert_uint_eq(g_ev.close_code, 1000);
}
END_TEST

/* --- identity and tenant scope ------------------------------------------------------------- */

/* AUTH hook: the query is "t=<tenant>&u=<user>", or "deny", or "bad". */
static int auth_from_query(wshub_event_t ev, void *data, void *ud)
{
    wshub_ev_auth_t *a = data;
    char tenant[64], user[64];
    static const char *const roles[] = {"admin", "dev"};

    (void)ev;
    (void)ud;
    if (!a->query)
        return WSHUB_DEFER;
    if (strcmp(a->query, "deny") == 0) {
        a->status = 401;
        a->reason = "no token";
        return WSHUB_ERR_DENIED;
    }
    if (strcmp(a->query, "bad") == 0) {
        g_ev.bad_ident_rc[0] = api->conn_set_identity(a->conn, "", "u", NULL, 0, NULL);
        g_ev.bad_ident_rc[1] = api->conn_set_identity(a->conn, "t", "u", NULL, 0, "[1]");
        g_ev.bad_ident_rc[2] = api->conn_set_identity(a->conn, "t\n", "u", NULL, 0, NULL);
        g_ev.bad_ident_rc[3] = api->conn_set_identity(a->conn, "t", "u", roles, 65, NULL);
        return WSHUB_DEFER;
    }
    if (sscanf(a->query, "t=%63[^&]&u=%63s", tenant, user) != 2)
        return WSHUB_DEFER;
    ck_assert_int_eq(api->conn_set_identity(a->conn, tenant, user, roles, 2, "{\"plan\":\"pro\"}"),
                     WSHUB_OK);
    return WSHUB_OK;
}

struct collect {
    wshub_conn_t *seen[8];
    int n;
};

static int collect_cb(wshub_conn_t *c, void *ud)
{
    struct collect *col = ud;

    ck_assert_int_lt(col->n, 8);
    col->seen[col->n++] = c;
    return 0;
}

static bool collected(const struct collect *col, const wshub_conn_t *c)
{
    for (int i = 0; i < col->n; i++)
        if (col->seen[i] == c)
            return true;
    return false;
}

START_TEST(test_tenant_scope)
{
    wsc_t ca, cg, cp;
    uint64_t ia, ig, ip;
    wshub_conn_t *a, *g, *p;
    struct collect col;
    wshub_group_t *grp, *sys_grp;
    json_object *w;

    ck_assert_int_eq(hooks__add(&g_plain, WSHUB_EV_AUTH, 0, auth_from_query, NULL), WSHUB_OK);
    ck_assert_int_eq(stub_server__open(&ca, "/ws?t=acme&u=alice", NULL, &ia, NULL, 0), 101);
    w = recv_json(&ca, "welcome");
    ck_assert_str_eq(jstr(w, "tenant_id"), "acme");
    ck_assert_str_eq(jstr(w, "user_id"), "alice");
    json_object_put(w);
    ck_assert_int_eq(stub_server__open(&cg, "/ws?t=globex&u=alice", NULL, &ig, NULL, 0), 101);
    ck_assert_int_eq(stub_server__open(&cp, "/ws", NULL, &ip, NULL, 0), 101);
    a = conn__by_id(ia);
    g = conn__by_id(ig);
    p = conn__by_id(ip);
    ck_assert_str_eq(api->conn_tenant(a), "acme");
    ck_assert_str_eq(api->conn_user(g), "alice");
    ck_assert_str_eq(api->conn_tenant(g), "globex");
    ck_assert_str_eq(api->conn_tenant(p), "public");
    ck_assert_str_eq(api->conn_user(p), "");
    ck_assert_uint_eq(api->conn_n_roles(a), 2);
    ck_assert_str_eq(api->conn_role(a, 1), "dev");
    ck_assert_ptr_null(api->conn_role(a, 2));
    ck_assert_str_eq(api->conn_metadata(a), "{\"plan\":\"pro\"}");
    ck_assert_str_eq(api->conn_metadata(p), "{}");

    /* Identity is immutable after AUTH. */
    ck_assert_int_eq(api->conn_set_identity(a, "globex", "mallory", NULL, 0, NULL),
                     WSHUB_ERR_STATE);
    ck_assert_int_eq(api->conn_set_subprotocol(a, "x"), WSHUB_ERR_STATE);
    ck_assert_str_eq(api->conn_tenant(a), "acme");

    /* Lookups. */
    ck_assert_ptr_eq(api->conn_lookup(&g_plain, "acme", ia), a);
    ck_assert_ptr_null(api->conn_lookup(&g_plain, "acme", ig));
    ck_assert_ptr_null(api->conn_lookup(&g_plain, "globex", ia));
    ck_assert_ptr_null(api->conn_lookup(&g_plain, NULL, ia));
    ck_assert_ptr_eq(api->conn_lookup(&g_system, NULL, ig), g);
    ck_assert_ptr_null(api->conn_lookup(&g_plain, "acme", 999999));

    /* Same user id in two tenants: each_user stays in its tenant. */
    memset(&col, 0, sizeof(col));
    ck_assert_int_eq(api->conn_each_user(&g_plain, "acme", "alice", collect_cb, &col), WSHUB_OK);
    ck_assert_int_eq(col.n, 1);
    ck_assert_ptr_eq(col.seen[0], a);
    memset(&col, 0, sizeof(col));
    ck_assert_int_eq(api->conn_each_user(&g_plain, NULL, "alice", collect_cb, &col),
                     WSHUB_ERR_DENIED);
    ck_assert_int_eq(col.n, 0);
    ck_assert_int_eq(api->conn_each_user(&g_system, NULL, "alice", collect_cb, &col), WSHUB_OK);
    ck_assert_int_eq(col.n, 2);
    ck_assert(collected(&col, a) && collected(&col, g));
    memset(&col, 0, sizeof(col));
    ck_assert_int_eq(api->conn_each_user(&g_plain, "initech", "alice", collect_cb, &col), 0);
    ck_assert_int_eq(col.n, 0);

    /* each. */
    memset(&col, 0, sizeof(col));
    ck_assert_int_eq(api->conn_each(&g_plain, "globex", collect_cb, &col), WSHUB_OK);
    ck_assert_int_eq(col.n, 1);
    ck_assert_ptr_eq(col.seen[0], g);
    memset(&col, 0, sizeof(col));
    ck_assert_int_eq(api->conn_each(&g_plain, NULL, collect_cb, &col), WSHUB_ERR_DENIED);
    ck_assert_int_eq(col.n, 0);
    ck_assert_int_eq(api->conn_each(&g_system, NULL, collect_cb, &col), WSHUB_OK);
    ck_assert_int_eq(col.n, 3);

    /* Groups. */
    ck_assert_ptr_null(api->group_new(&g_plain, NULL));
    ck_assert_ptr_null(api->group_new(&g_plain, ""));
    grp = api->group_new(&g_plain, "acme");
    ck_assert_ptr_nonnull(grp);
    ck_assert_int_eq(api->group_add(grp, g), WSHUB_ERR_DENIED);
    ck_assert_int_eq(api->group_add(grp, p), WSHUB_ERR_DENIED);
    ck_assert_int_eq(api->group_add(grp, a), WSHUB_OK);
    ck_assert_uint_eq(api->group_size(grp), 1);
    sys_grp = api->group_new(&g_system, NULL);
    ck_assert_ptr_nonnull(sys_grp);
    ck_assert_int_eq(api->group_add(sys_grp, a), WSHUB_OK);
    ck_assert_int_eq(api->group_add(sys_grp, g), WSHUB_OK);
    ck_assert_int_eq(api->group_add(sys_grp, p), WSHUB_OK);

    /* A closing connection is neither found nor addable. */
    api->conn_close(a, 1000, NULL);
    ck_assert_ptr_null(api->conn_lookup(&g_plain, "acme", ia));
    ck_assert_int_eq(api->group_add(api->group_new(&g_plain, "acme"), a), WSHUB_ERR_STATE);
    memset(&col, 0, sizeof(col));
    ck_assert_int_eq(api->conn_each_user(&g_plain, "acme", "alice", collect_cb, &col), 0);
    ck_assert_int_eq(col.n, 0);
    stub_server__step();
    ck_assert_uint_eq(api->group_size(grp), 0);
    ck_assert_uint_eq(api->group_size(sys_grp), 2);
    /* The tenant index forgot acme's only user; globex's alice is untouched. */
    ck_assert_ptr_null(conn__tenant("acme"));
    ck_assert_ptr_nonnull(conn__tenant("globex"));
    ck_assert_ptr_eq(api->conn_lookup(&g_plain, "globex", ig), g);
    wsc__free(&ca);
    wsc__free(&cg);
    wsc__free(&cp);
}
END_TEST

START_TEST(test_auth_denied_and_bad_identity)
{
    wsc_t a, b;
    char head[2048];

    add_lifecycle_hooks();
    ck_assert_int_eq(hooks__add(&g_plain, WSHUB_EV_AUTH, 0, auth_from_query, NULL), WSHUB_OK);
    ck_assert_int_eq(stub_server__open(&a, "/ws?deny", NULL, NULL, head, sizeof(head)), 401);
    wsc__read(&a);
    ck_assert_uint_ge(wsc__pending(&a), 8);
    ck_assert(memcmp(a.in, "no token", 8) == 0); /* the hook's reason is the body */
    ck_assert_double_eq(metric_l(g_srv.m.handshake_failures, "unauthorized"), 1);
    ck_assert(stub_server__wait_eof(&a, STUB_MAX_ITER));
    close_client_and_drain(&a);
    ck_assert_int_eq(g_ev.n_open, 0);
    ck_assert_int_eq(g_ev.n_close, 0);
    ck_assert_ptr_null(conn__tenant("public"));

    /* Invalid identities are refused; the chain then defers and the client is anonymous. */
    ck_assert_int_eq(stub_server__open(&b, "/ws?bad", NULL, NULL, head, sizeof(head)), 101);
    for (int i = 0; i < 4; i++)
        ck_assert_int_eq(g_ev.bad_ident_rc[i], WSHUB_ERR_INVAL);
    ck_assert_str_eq(api->conn_tenant(conn__by_id(g_srv.next_id)), "public");
    wsc__free(&b);
}
END_TEST

START_TEST(test_set_identity_outside_auth)
{
    wsc_t cl;
    wshub_conn_t *c = open_json(&cl, "/ws", NULL);

    ck_assert_int_eq(api->conn_set_identity(c, "acme", "bob", NULL, 0, NULL), WSHUB_ERR_STATE);
    ck_assert_str_eq(api->conn_tenant(c), "public");
    ck_assert_str_eq(api->conn_user(c), "");
    wsc__free(&cl);
}
END_TEST

static int send_to_cb(wshub_conn_t *c, void *ud)
{
    (void)ud;
    api->conn_send_text(c, "bye", 3);
    return 0;
}

/* A CONN_CLOSE hook telling every other connection (as a presence plugin would). */
static int hook_close_broadcast(wshub_event_t ev, void *data, void *ud)
{
    (void)ev;
    (void)data;
    (void)ud;
    api->conn_each(&g_system, NULL, send_to_cb, NULL);
    return WSHUB_OK;
}

START_TEST(test_shutdown_runs_close_hooks)
{
    wsc_t a, b, c;

    add_lifecycle_hooks();
    ck_assert_int_eq(hooks__add(&g_plain, WSHUB_EV_CONN_CLOSE, 1, hook_close_broadcast, NULL),
                     WSHUB_OK);
    open_json(&a, "/ws", NULL);
    open_json(&b, "/ws", NULL);
    open_json(&c, "/ws", NULL);
    conn__shutdown();
    /* Connections being freed are not live: nothing was queued to them (a queued send would
     * leave a freed connection on the flush list). */
    ck_assert_ptr_null(g_srv.dirty_head);
    ck_assert_int_eq(g_ev.n_close, 3);
    ck_assert_uint_eq(conn__n_sockets(), 0);
    ck_assert_double_eq(*g_srv.m.connections, 0);
    conn__init(); /* teardown shuts down again */
    wsc__free(&a);
    wsc__free(&b);
    wsc__free(&c);
}
END_TEST

static void add(Suite *s, const char *name, const TTest *t, void (*fixture)(void), int loops)
{
    TCase *tc = tcase_create(name);

    tcase_add_checked_fixture(tc, fixture, teardown);
    if (loops)
        tcase_add_loop_test(tc, t, 0, loops);
    else
        tcase_add_test(tc, t);
    suite_add_tcase(s, tc);
}

#define N(a) ((int)(sizeof(a) / sizeof((a)[0])))

Suite *conn_suite(void);

Suite *conn_suite(void)
{
    Suite *s = suite_create("conn");

    add(s, "handshake_success", test_handshake_success, setup, 0);
    add(s, "handshake_split", test_handshake_split_across_reads, setup, 0);
    add(s, "handshake_with_frames", test_frames_in_same_segment_as_request, setup, 0);
    add(s, "handshake_errors", test_handshake_errors, setup, N(hs_errors));
    add(s, "handshake_503_max", test_handshake_503_at_max_connections, setup_one_conn, 0);
    add(s, "handshake_503_ip", test_handshake_503_per_ip, setup_per_ip, 0);
    add(s, "handshake_timeout", test_handshake_timeout, setup, 0);
    add(s, "welcome", test_welcome_on_json_path, setup, 0);
    add(s, "ping_pong", test_ping_pong, setup, 0);
    add(s, "client_close", test_client_close_echoed, setup, N(client_closes));
    add(s, "protocol_violation", test_protocol_violation, setup, N(violations));
    add(s, "oversize_json", test_oversize_json_keeps_connection, setup, 0);
    add(s, "oversize_json_discard_limit", test_oversize_json_beyond_discard_limit, setup, 0);
    add(s, "raw_path", test_raw_path_echo_and_oversize, setup, 0);
    add(s, "slow_consumer", test_slow_consumer, setup_slow, 0);
    add(s, "one_writev", test_one_writev_per_iteration, setup, 0);
    add(s, "heartbeat", test_heartbeat_and_timeout, setup, 0);
    add(s, "clock_backwards", test_clock_going_backwards, setup, 0);
    add(s, "traffic_defers_heartbeat", test_traffic_defers_heartbeat, setup, 0);
    add(s, "linger_deadline", test_closing_linger_deadline, setup, 0);
    add(s, "deferred_close_handler", test_deferred_close_in_handler, setup, 0);
    add(s, "deferred_close_hook", test_deferred_close_in_hook, setup, 0);
    add(s, "close_then_eof", test_close_before_iteration_end_then_eof, setup, 0);
    add(s, "tenant_scope", test_tenant_scope, setup, 0);
    add(s, "auth_denied", test_auth_denied_and_bad_identity, setup, 0);
    add(s, "identity_outside_auth", test_set_identity_outside_auth, setup, 0);
    add(s, "shutdown_close_hooks", test_shutdown_runs_close_hooks, setup, 0);
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(conn_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
