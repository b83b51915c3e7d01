/*
 * 02-echo: the echo plugin and the JSON endpoint of a real wshubd, seen by an independent
 * WebSocket implementation (the libwebsockets 4.1 client API).
 *
 *   02-echo WSHUBD PLUGIN_DIR
 *
 * main() writes a temporary config (echo plugin on /echo, both listeners on 127.0.0.1:0),
 * starts wshubd with --port-file, waits for the file with a bounded poll, runs the suite, then
 * stops the server with SIGTERM (SIGKILL at the bound) and checks that it exited 0. The server
 * also gets PR_SET_PDEATHSIG, so it cannot outlive this process.
 *
 * Every test builds its own lws context and connections ("sessions"), each following a script:
 * message k is sent (in one frame or in given fragments) once the session has received k + skip
 * messages (skip = 1 on /ws, for the welcome), so each echo is matched to the message it
 * answers. The service loop is bounded by a deadline. The client never offers
 * permessage-deflate: lws 4.1.6 mishandles uncompressed frames from a server that negotiated it.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE /* prctl, mkdtemp */
#endif
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <json-c/json.h>
#include <libwebsockets.h>

#define MIB                  (1024u * 1024u)
#define MAX_FRAGS            4
#define SCENARIO_DEADLINE_MS 90000
#define START_DEADLINE_MS    10000
#define STOP_DEADLINE_MS     15000
#define N_CONC_CONNS         20
#define N_CONC_MSGS          100

static const char *g_wshubd;
static const char *g_plugin_dir;
static char g_tmpdir[64];
static pid_t g_server_pid = -1;
static int g_port;

/* ------------------------------------------------------------------------------------------ */
/* Payloads and clock                                                                          */
/* ------------------------------------------------------------------------------------------ */

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

static void sleep_ms(unsigned ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};

    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/*
 * Deterministic payloads: text is printable ASCII (valid UTF-8 whatever the size) that differs
 * with the seed, binary covers every byte value. A wrong offset or a mixed-up message shows as
 * a mismatch, which constant fill would hide.
 */
static unsigned char *make_payload(size_t len, bool binary, uint32_t seed)
{
    unsigned char *p = malloc(len ? len : 1);
    uint32_t x = seed * 2654435761u + 1u;

    ck_assert_ptr_nonnull(p);
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        p[i] = binary ? (unsigned char)x : (unsigned char)(' ' + x % 95u);
    }
    return p;
}

/* ------------------------------------------------------------------------------------------ */
/* Sessions                                                                                    */
/* ------------------------------------------------------------------------------------------ */

typedef struct out_msg {
    const unsigned char *data;
    size_t len;
    bool binary;
    int n_frags; /* 0 or 1: one frame; else the sizes below, summing to len */
    size_t frag_len[MAX_FRAGS];
} out_msg_t;

typedef struct in_msg {
    unsigned char *data;
    size_t len;
    bool binary;
} in_msg_t;

typedef struct session {
    const char *path;
    struct lws *wsi;
    /* script */
    const out_msg_t *msgs;
    size_t n_msgs;
    size_t skip; /* messages received before the first echo (the welcome on /ws) */
    size_t next; /* next message to send */
    int frag;    /* next fragment of msgs[next] */
    size_t frag_off;
    bool compare; /* received[skip + k] must equal msgs[k] */
    /* reception */
    unsigned char *rx;
    size_t rx_len, rx_cap;
    bool rx_binary, rx_open;
    in_msg_t *in; /* every complete message, in order */
    size_t n_in, in_cap;
    size_t n_matched;
    /* outcome */
    bool established, closed, done;
    char err[256];
} session_t;

static void sess_fail(session_t *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Records the first error of a session; later ones are usually consequences of it. */
static void sess_fail(session_t *s, const char *fmt, ...)
{
    va_list ap;

    if (s->err[0])
        return;
    va_start(ap, fmt);
    vsnprintf(s->err, sizeof(s->err), fmt, ap);
    va_end(ap);
}

static size_t expected_in(const session_t *s)
{
    return s->skip + s->n_msgs;
}

static void rx_append(session_t *s, const void *data, size_t len)
{
    if (s->rx_len + len > s->rx_cap) {
        size_t cap = s->rx_cap ? s->rx_cap : 4096;
        while (cap < s->rx_len + len)
            cap *= 2;
        s->rx = realloc(s->rx, cap);
        ck_assert_ptr_nonnull(s->rx);
        s->rx_cap = cap;
    }
    if (len)
        memcpy(s->rx + s->rx_len, data, len);
    s->rx_len += len;
}

/*
 * A complete message: stored, and in echo mode compared with the message it answers. Receiving
 * it may allow the next send, so writability is requested.
 */
static void message_done(session_t *s)
{
    in_msg_t *m;

    if (s->n_in == s->in_cap) {
        s->in_cap = s->in_cap ? s->in_cap * 2 : 8;
        s->in = realloc(s->in, s->in_cap * sizeof(*s->in));
        ck_assert_ptr_nonnull(s->in);
    }
    m = &s->in[s->n_in++];
    m->len = s->rx_len;
    m->binary = s->rx_binary;
    m->data = malloc(s->rx_len + 1);
    ck_assert_ptr_nonnull(m->data);
    if (s->rx_len)
        memcpy(m->data, s->rx, s->rx_len);
    m->data[s->rx_len] = '\0';
    s->rx_len = 0;
    s->rx_open = false;

    if (s->compare && s->n_in > s->skip) {
        size_t k = s->n_in - s->skip - 1;
        if (k >= s->n_msgs) {
            sess_fail(s, "%s: unexpected message %zu (%zu bytes)", s->path, s->n_in, m->len);
        } else if (m->binary != s->msgs[k].binary) {
            sess_fail(s, "%s: echo %zu is %s, sent %s", s->path, k, m->binary ? "binary" : "text",
                      s->msgs[k].binary ? "binary" : "text");
        } else if (m->len != s->msgs[k].len) {
            sess_fail(s, "%s: echo %zu has %zu bytes, sent %zu", s->path, k, m->len,
                      s->msgs[k].len);
        } else if (m->len && memcmp(m->data, s->msgs[k].data, m->len) != 0) {
            size_t i = 0;
            while (m->data[i] == s->msgs[k].data[i])
                i++;
            sess_fail(s, "%s: echo %zu (%zu bytes) differs at byte %zu", s->path, k, m->len, i);
        } else {
            s->n_matched++;
        }
    }
    if (s->n_in >= expected_in(s))
        s->done = true;
    lws_callback_on_writable(s->wsi);
}

/*
 * Sends the next fragment of the current message, if the script allows a send now. lws_write
 * needs LWS_PRE writable bytes before the payload, so each fragment is copied into a buffer of
 * its own; lws keeps what the socket did not take and asks for writability again before we
 * may write more, so one fragment per WRITEABLE callback.
 */
static int on_writeable(session_t *s)
{
    const out_msg_t *m;
    int nf, flags, n;
    size_t fl;
    unsigned char *buf;

    if (s->done) {
        lws_close_reason(s->wsi, LWS_CLOSE_STATUS_NORMAL, (unsigned char *)"done", 4);
        return -1;
    }
    if (s->next >= s->n_msgs || s->n_in < s->next + s->skip)
        return 0;
    m = &s->msgs[s->next];
    nf = m->n_frags > 1 ? m->n_frags : 1;
    fl = nf == 1 ? m->len : m->frag_len[s->frag];
    ck_assert_uint_le(s->frag_off + fl, m->len);
    if (s->frag == 0)
        flags = m->binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT;
    else
        flags = LWS_WRITE_CONTINUATION;
    if (s->frag < nf - 1)
        flags |= LWS_WRITE_NO_FIN;
    buf = malloc(LWS_PRE + fl + 1);
    ck_assert_ptr_nonnull(buf);
    if (fl)
        memcpy(buf + LWS_PRE, m->data + s->frag_off, fl);
    n = lws_write(s->wsi, buf + LWS_PRE, fl, (enum lws_write_protocol)flags);
    free(buf);
    if (n < 0 || (size_t)n < fl) {
        sess_fail(s, "%s: lws_write of %zu bytes returned %d", s->path, fl, n);
        return -1;
    }
    s->frag_off += fl;
    if (++s->frag == nf) {
        s->next++;
        s->frag = 0;
        s->frag_off = 0;
    }
    /* More fragments, or the next message when no echo is awaited (never in these tests). */
    lws_callback_on_writable(s->wsi);
    return 0;
}

static int proto_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                    size_t len)
{
    session_t *s = (session_t *)user;

    /* Context-level callbacks (protocol init and the like) carry no session. */
    if (!s)
        return 0;
    switch (reason) {
    case LWS_CALLBACK_CLIENT_CONNECTION_ERROR:
        sess_fail(s, "%s: connection error: %s", s->path, in ? (const char *)in : "(no detail)");
        s->closed = true;
        s->wsi = NULL;
        break;
    case LWS_CALLBACK_CLIENT_ESTABLISHED:
        s->established = true;
        lws_callback_on_writable(wsi);
        break;
    case LWS_CALLBACK_CLIENT_RECEIVE:
        if (lws_is_first_fragment(wsi)) {
            if (s->rx_open)
                sess_fail(s, "%s: new message before the previous one ended", s->path);
            s->rx_len = 0;
            s->rx_open = true;
            s->rx_binary = lws_frame_is_binary(wsi) != 0;
        } else if (!s->rx_open) {
            sess_fail(s, "%s: continuation without a first fragment", s->path);
            s->rx_open = true;
        }
        rx_append(s, in, len);
        if (lws_is_final_fragment(wsi))
            message_done(s);
        break;
    case LWS_CALLBACK_CLIENT_WRITEABLE:
        return on_writeable(s);
    case LWS_CALLBACK_WS_PEER_INITIATED_CLOSE:
        if (!s->done)
            sess_fail(s, "%s: server closed the connection after %zu of %zu messages", s->path,
                      s->n_in, expected_in(s));
        break;
    case LWS_CALLBACK_CLIENT_CLOSED:
        if (!s->done)
            sess_fail(s, "%s: closed after %zu of %zu messages", s->path, s->n_in, expected_in(s));
        s->closed = true;
        s->wsi = NULL;
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols protocols[] = {
    {"wshub-test", proto_cb, 0, 65536, 0, NULL, 0}, {NULL, NULL, 0, 0, 0, NULL, 0}, /* terminator */
};

/*
 * Connects every session, services the context until all of them are closed or the deadline
 * passes, then destroys the context. Returns false at the deadline.
 */
static bool run_sessions(session_t *ss, size_t n, uint64_t deadline_ms)
{
    struct lws_context_creation_info info;
    struct lws_context *ctx;
    uint64_t end = now_ms() + deadline_ms;
    bool all_closed = false;

    memset(&info, 0, sizeof(info));
    info.port = CONTEXT_PORT_NO_LISTEN;
    info.protocols = protocols;
    info.gid = -1;
    info.uid = -1;
    info.extensions = NULL; /* no permessage-deflate: see the comment at the top */
    ctx = lws_create_context(&info);
    ck_assert_msg(ctx != NULL, "lws_create_context failed");

    for (size_t i = 0; i < n; i++) {
        struct lws_client_connect_info ci;
        memset(&ci, 0, sizeof(ci));
        ci.context = ctx;
        ci.address = "127.0.0.1";
        ci.port = g_port;
        ci.path = ss[i].path;
        ci.host = "127.0.0.1";
        ci.origin = NULL;
        ci.protocol = NULL; /* no Sec-WebSocket-Protocol */
        ci.local_protocol_name = protocols[0].name;
        ci.userdata = &ss[i];
        ci.pwsi = &ss[i].wsi;
        if (!lws_client_connect_via_info(&ci) && !ss[i].closed) {
            sess_fail(&ss[i], "%s: lws_client_connect_via_info failed", ss[i].path);
            ss[i].closed = true;
        }
    }
    while (now_ms() < end) {
        all_closed = true;
        for (size_t i = 0; i < n; i++)
            if (!ss[i].closed)
                all_closed = false;
        if (all_closed)
            break;
        if (lws_service(ctx, 0) < 0)
            break;
    }
    lws_context_destroy(ctx);
    return all_closed;
}

static void session_init(session_t *s, const char *path, const out_msg_t *msgs, size_t n,
                         size_t skip, bool compare)
{
    memset(s, 0, sizeof(*s));
    s->path = path;
    s->msgs = msgs;
    s->n_msgs = n;
    s->skip = skip;
    s->compare = compare;
}

static void session_free(session_t *s)
{
    for (size_t i = 0; i < s->n_in; i++)
        free(s->in[i].data);
    free(s->in);
    free(s->rx);
    s->in = NULL;
    s->rx = NULL;
}

/* The common end of every echo test: on time, no error, every message echoed back. */
static void assert_echoed(session_t *s, size_t n, bool on_time)
{
    ck_assert_msg(on_time, "sessions still open at the %d ms deadline", SCENARIO_DEADLINE_MS);
    for (size_t i = 0; i < n; i++) {
        ck_assert_msg(s[i].err[0] == '\0', "session %zu: %s", i, s[i].err);
        ck_assert_msg(s[i].established, "session %zu never connected", i);
        ck_assert_msg(s[i].n_matched == s[i].n_msgs, "session %zu: %zu of %zu echoes matched", i,
                      s[i].n_matched, s[i].n_msgs);
    }
}

/* ------------------------------------------------------------------------------------------ */
/* Tests                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static const size_t k_sizes[] = {0, 1, 125, 126, 65535, 65536, MIB};
#define N_SIZES (sizeof(k_sizes) / sizeof(k_sizes[0]))

/* Text at the frame length encoding boundaries (7-bit, 16-bit, 64-bit) and at 1 MiB. */
START_TEST(test_echo_text_sizes)
{
    out_msg_t msgs[N_SIZES];
    session_t s;

    for (size_t i = 0; i < N_SIZES; i++)
        msgs[i] = (out_msg_t){
            make_payload(k_sizes[i], false, (uint32_t)i + 1), k_sizes[i], false, 0, {0}};
    session_init(&s, "/echo", msgs, N_SIZES, 0, true);
    assert_echoed(&s, 1, run_sessions(&s, 1, SCENARIO_DEADLINE_MS));
    for (size_t i = 0; i < N_SIZES; i++)
        ck_assert(!s.in[i].binary);
    session_free(&s);
    for (size_t i = 0; i < N_SIZES; i++)
        free((void *)msgs[i].data);
}
END_TEST

/* Binary with every byte value (NULs included), same sizes; binary must stay binary. */
START_TEST(test_echo_binary)
{
    out_msg_t msgs[N_SIZES + 1];
    session_t s;

    for (size_t i = 0; i < N_SIZES; i++)
        msgs[i] = (out_msg_t){
            make_payload(k_sizes[i], true, (uint32_t)i + 100), k_sizes[i], true, 0, {0}};
    /* Text after binary: the kind is per message. */
    msgs[N_SIZES] = (out_msg_t){make_payload(300, false, 7), 300, false, 0, {0}};
    session_init(&s, "/echo", msgs, N_SIZES + 1, 0, true);
    assert_echoed(&s, 1, run_sessions(&s, 1, SCENARIO_DEADLINE_MS));
    for (size_t i = 0; i < N_SIZES; i++)
        ck_assert_msg(s.in[i].binary, "echo %zu is not binary", i);
    ck_assert(!s.in[N_SIZES].binary);
    session_free(&s);
    for (size_t i = 0; i <= N_SIZES; i++)
        free((void *)msgs[i].data);
}
END_TEST

/*
 * Messages in 3 fragments (first frame with FIN clear, then continuations): text, text with a
 * multi-byte UTF-8 character split across fragments, binary with an empty middle fragment,
 * and a 1 MiB message in uneven fragments. The echo is one whole message each.
 */
START_TEST(test_echo_fragments)
{
    static const unsigned char utf8[] = "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80 end";
    unsigned char *bin = make_payload(5000, true, 42);
    unsigned char *big = make_payload(MIB, false, 43);
    unsigned char *txt = make_payload(3000, false, 44);
    size_t ulen = sizeof(utf8) - 1;
    out_msg_t msgs[4] = {
        {txt, 3000, false, 3, {1000, 1000, 1000, 0}},
        /* "é" split after its first byte, "😀" after its second. */
        {utf8, ulen, false, 3, {4, 10, ulen - 14, 0}},
        {bin, 5000, true, 3, {1, 0, 4999, 0}},
        {big, MIB, false, 3, {70000, 1, MIB - 70001, 0}},
    };
    session_t s;

    session_init(&s, "/echo", msgs, 4, 0, true);
    assert_echoed(&s, 1, run_sessions(&s, 1, SCENARIO_DEADLINE_MS));
    ck_assert(!s.in[0].binary && !s.in[1].binary && s.in[2].binary && !s.in[3].binary);
    session_free(&s);
    free(bin);
    free(big);
    free(txt);
}
END_TEST

static struct json_object *parse_obj(const in_msg_t *m)
{
    struct json_object *o;

    ck_assert_msg(!m->binary, "binary message on /ws");
    o = json_tokener_parse((const char *)m->data);
    ck_assert_msg(o && json_object_is_type(o, json_type_object), "not a JSON object: %.200s",
                  (const char *)m->data);
    return o;
}

static const char *str_field(struct json_object *o, const char *k)
{
    struct json_object *v;

    if (!json_object_object_get_ex(o, k, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* The JSON endpoint: the welcome arrives first, pings are answered with the request's id. */
START_TEST(test_json_welcome_ping)
{
    static const char ping_num[] = "{\"type\":\"ping\",\"id\":42}";
    static const char ping_str[] = "{\"type\":\"ping\",\"id\":\"req-7\"}";
    static const char unknown[] = "{\"type\":\"nope\",\"id\":3}";
    out_msg_t msgs[3] = {
        {(const unsigned char *)ping_num, sizeof(ping_num) - 1, false, 0, {0}},
        {(const unsigned char *)ping_str, sizeof(ping_str) - 1, false, 0, {0}},
        {(const unsigned char *)unknown, sizeof(unknown) - 1, false, 0, {0}},
    };
    struct json_object *o, *v;
    session_t s;

    session_init(&s, "/ws", msgs, 3, 1, false);
    ck_assert_msg(run_sessions(&s, 1, SCENARIO_DEADLINE_MS), "deadline");
    ck_assert_msg(s.err[0] == '\0', "%s", s.err);
    ck_assert_uint_eq(s.n_in, 4);

    o = parse_obj(&s.in[0]);
    ck_assert_str_eq(str_field(o, "type"), "welcome");
    ck_assert_str_eq(str_field(o, "protocol"), "wshub.v1");
    ck_assert_str_eq(str_field(o, "tenant_id"), "public");
    ck_assert_str_eq(str_field(o, "user_id"), "");
    ck_assert(json_object_object_get_ex(o, "connection_id", &v) &&
              json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0);
    ck_assert(json_object_object_get_ex(o, "server_time", &v) &&
              json_object_is_type(v, json_type_int) && json_object_get_int64(v) > 0);
    ck_assert(json_object_object_get_ex(o, "heartbeat", &v) &&
              json_object_is_type(v, json_type_int));
    json_object_put(o);

    o = parse_obj(&s.in[1]);
    ck_assert_str_eq(str_field(o, "type"), "pong");
    ck_assert(json_object_object_get_ex(o, "id", &v) && json_object_is_type(v, json_type_int) &&
              json_object_get_int(v) == 42);
    ck_assert(json_object_object_get_ex(o, "server_time", &v) &&
              json_object_is_type(v, json_type_int));
    json_object_put(o);

    o = parse_obj(&s.in[2]);
    ck_assert_str_eq(str_field(o, "type"), "pong");
    ck_assert_str_eq(str_field(o, "id"), "req-7");
    json_object_put(o);

    o = parse_obj(&s.in[3]);
    ck_assert_str_eq(str_field(o, "type"), "error");
    ck_assert_str_eq(str_field(o, "code"), "unknown_type");
    ck_assert(json_object_object_get_ex(o, "id", &v) && json_object_get_int(v) == 3);
    json_object_put(o);
    session_free(&s);
}
END_TEST

/*
 * N_CONC_CONNS connections in one context, each echoing N_CONC_MSGS distinct messages of
 * varying size and kind (some fragmented), interleaved by the service loop: replies must not
 * cross connections or reorder.
 */
START_TEST(test_concurrent_echo)
{
    static session_t ss[N_CONC_CONNS];
    static out_msg_t msgs[N_CONC_CONNS][N_CONC_MSGS];

    for (int c = 0; c < N_CONC_CONNS; c++) {
        for (int m = 0; m < N_CONC_MSGS; m++) {
            size_t len = 1 + (size_t)((c * 7919 + m * 104729) % 3000);
            bool binary = (m % 3) == 2;
            out_msg_t *o = &msgs[c][m];
            *o = (out_msg_t){
                make_payload(len, binary, (uint32_t)(c * 1000 + m + 1)), len, binary, 0, {0}};
            if (m % 10 == 9 && len >= 3) {
                o->n_frags = 3;
                o->frag_len[0] = len / 3;
                o->frag_len[1] = len / 3;
                o->frag_len[2] = len - 2 * (len / 3);
            }
        }
        session_init(&ss[c], "/echo", msgs[c], N_CONC_MSGS, 0, true);
    }
    assert_echoed(ss, N_CONC_CONNS, run_sessions(ss, N_CONC_CONNS, SCENARIO_DEADLINE_MS));
    for (int c = 0; c < N_CONC_CONNS; c++) {
        ck_assert_uint_eq(ss[c].n_in, N_CONC_MSGS);
        session_free(&ss[c]);
        for (int m = 0; m < N_CONC_MSGS; m++)
            free((void *)msgs[c][m].data);
    }
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* The server                                                                                  */
/* ------------------------------------------------------------------------------------------ */

static void path_in_tmp(char *out, size_t n, const char *name)
{
    snprintf(out, n, "%s/%s", g_tmpdir, name);
}

static void print_server_log(void)
{
    char path[128], line[512];
    FILE *f;

    path_in_tmp(path, sizeof(path), "stderr.log");
    f = fopen(path, "r");
    if (!f)
        return;
    fprintf(stderr, "--- wshubd log ---\n");
    while (fgets(line, sizeof(line), f))
        fputs(line, stderr);
    fclose(f);
}

/* Parses "server HOST:PORT" from the port file; returns the port or -1. */
static int read_port_file(const char *path)
{
    char line[256];
    int port = -1;
    FILE *f = fopen(path, "r");

    if (!f)
        return -1;
    while (fgets(line, sizeof(line), f)) {
        char *colon;
        if (strncmp(line, "server ", 7) != 0)
            continue;
        colon = strrchr(line, ':');
        if (colon) {
            long p = strtol(colon + 1, NULL, 10);
            if (p > 0 && p < 65536)
                port = (int)p;
        }
    }
    fclose(f);
    return port;
}

/*
 * Writes the config, forks wshubd and waits (bounded) for its port file. The child asks for
 * SIGKILL when this process dies, so an aborted test run leaves no server behind.
 */
static int start_server(void)
{
    char cfg[128], ports[128], logp[128];
    uint64_t end;
    FILE *f;
    pid_t pid;

    snprintf(g_tmpdir, sizeof(g_tmpdir), "/tmp/wshub-lws-XXXXXX");
    if (!mkdtemp(g_tmpdir)) {
        perror("mkdtemp");
        return -1;
    }
    path_in_tmp(cfg, sizeof(cfg), "config.yaml");
    path_in_tmp(ports, sizeof(ports), "ports");
    path_in_tmp(logp, sizeof(logp), "stderr.log");
    f = fopen(cfg, "w");
    if (!f) {
        perror(cfg);
        return -1;
    }
    fprintf(f,
            "server:\n"
            "  listen: 127.0.0.1:0\n"
            "  max_message_size: 1MiB\n"
            "  send_queue_max_bytes: 16MiB\n"
            "admin:\n"
            "  listen: 127.0.0.1:0\n"
            "log:\n"
            "  level: notice\n"
            "plugin_dir: \"%s\"\n"
            "plugins:\n"
            "  - name: echo\n"
            "    config:\n"
            "      path: /echo\n",
            g_plugin_dir);
    if (fclose(f) != 0) {
        perror(cfg);
        return -1;
    }

    pid = fork();
    if (pid < 0) {
        perror("fork");
        return -1;
    }
    if (pid == 0) {
        int fd = open(logp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        unsetenv("WSHUB_PLUGIN_DIR");
        execl(g_wshubd, "wshubd", "-c", cfg, "--port-file", ports, (char *)NULL);
        _exit(127);
    }
    g_server_pid = pid;
    end = now_ms() + START_DEADLINE_MS;
    while (now_ms() < end) {
        int st;
        if (waitpid(pid, &st, WNOHANG) == pid) {
            fprintf(stderr, "wshubd exited (status 0x%x) before writing its port file\n", st);
            g_server_pid = -1;
            print_server_log();
            return -1;
        }
        if (access(ports, F_OK) == 0) {
            g_port = read_port_file(ports);
            if (g_port > 0)
                return 0;
        }
        sleep_ms(20);
    }
    fprintf(stderr, "wshubd wrote no port file within %d ms\n", START_DEADLINE_MS);
    print_server_log();
    return -1;
}

/* SIGTERM, bounded wait, SIGKILL. Returns the exit status, or -1 if it had to be killed. */
static int stop_server(void)
{
    uint64_t end;
    int st = 0;

    if (g_server_pid <= 0)
        return -1;
    kill(g_server_pid, SIGTERM);
    end = now_ms() + STOP_DEADLINE_MS;
    while (now_ms() < end) {
        pid_t r = waitpid(g_server_pid, &st, WNOHANG);
        if (r == g_server_pid) {
            g_server_pid = -1;
            return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
        }
        if (r < 0 && errno != EINTR)
            break;
        sleep_ms(20);
    }
    kill(g_server_pid, SIGKILL);
    waitpid(g_server_pid, &st, 0);
    g_server_pid = -1;
    return -1;
}

static void remove_tmpdir(void)
{
    static const char *const names[] = {"config.yaml", "ports", "stderr.log"};
    char p[128];

    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        path_in_tmp(p, sizeof(p), names[i]);
        unlink(p);
    }
    rmdir(g_tmpdir);
}

static Suite *lws_echo_suite(void)
{
    Suite *s = suite_create("integration-lws-echo");
    struct {
        const char *name;
        const TTest *t;
    } cases[] = {
        {"echo_text_sizes", test_echo_text_sizes}, {"echo_binary", test_echo_binary},
        {"echo_fragments", test_echo_fragments},   {"json_welcome_ping", test_json_welcome_ping},
        {"concurrent_echo", test_concurrent_echo},
    };

    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_set_timeout(tc, 180);
        tcase_add_test(tc, cases[i].t);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(int argc, char **argv)
{
    SRunner *sr;
    int failed, rc;

    if (argc != 3) {
        fprintf(stderr, "usage: %s WSHUBD PLUGIN_DIR\n", argv[0]);
        return EXIT_FAILURE;
    }
    g_wshubd = argv[1];
    g_plugin_dir = argv[2];
    signal(SIGPIPE, SIG_IGN);
    lws_set_log_level(LLL_ERR, NULL);
    if (start_server() != 0) {
        stop_server();
        remove_tmpdir();
        return EXIT_FAILURE;
    }
    sr = srunner_create(lws_echo_suite());
    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    rc = stop_server();
    if (rc != 0) {
        fprintf(stderr, "wshubd did not exit 0 after SIGTERM (%d)\n", rc);
        print_server_log();
        failed++;
    } else if (failed) {
        print_server_log();
    }
    remove_tmpdir();
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
