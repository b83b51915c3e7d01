/*
 * hello: a complete, minimal wshub plugin. Copy this directory to start your own.
 *
 * What it shows, top to bottom:
 *   - a declared option (`greeting`), validated and defaulted by the server before init runs;
 *   - per-connection state (struct hello_conn): the host allocates conn_state_size zeroed bytes
 *     for every connection and frees them after the last CONN_CLOSE hook;
 *   - a CONN_OPEN hook that fills that state;
 *   - a message route: a client sends {"type":"hello","id":1} and gets
 *         {"type":"ack","id":1,"greeting":"Hello, alice!","count":1}
 *     (`count` is how many times this connection said hello);
 *   - a Prometheus counter, hello_greetings_total;
 *   - init/fini ownership: what init allocates is freed by fini, or by init itself when it fails
 *     (the loader does not call fini after a failed init).
 *
 * Build it out of tree with nothing but the SDK's pkg-config file (see Makefile / meson.build):
 *     cc -std=c11 -fPIC -shared -Wl,-z,defs $(pkg-config --cflags wshub-sdk) -o hello.so hello.c
 * and list it in the server's YAML:
 *     plugins:
 *       - name: hello
 *         path: /path/to/hello.so
 *         config:
 *           greeting: Bonjour
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wshub/sdk.h>

/* The plugin's own state: one per load, passed to every callback as `ud` or `state`. */
typedef struct hello {
    const wshub_host_api_t *host; /* valid until fini returns */
    wshub_plugin_t *self;
    const char *greeting;      /* borrowed from the config node: valid until fini */
    wshub_metric_t *greetings; /* owned by the host */
} hello_t;

/* Per-connection state. The host owns the memory; we only ever get a pointer to it. */
typedef struct hello_conn {
    uint64_t opened_ms; /* when CONN_OPEN ran */
    uint32_t n_hellos;  /* hellos answered on this connection */
} hello_conn_t;

static const wshub_opt_t hello_options[] = {
    {"greeting", WSHUB_OPT_STRING, "Hello", false, "word the server greets with"},
    {NULL, 0, NULL, false, NULL},
};

/*
 * Writes `s` JSON-escaped (without quotes) at `out` and returns the bytes written. Identity
 * strings come from tokens and configuration, so they are escaped, never pasted. The caller
 * makes room for the worst case: 6 bytes ("\u00XX") per input byte.
 */
static size_t json_escape(char *out, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    char *p = out;

    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        if (ch == '"' || ch == '\\') {
            *p++ = '\\';
            *p++ = (char)ch;
        } else if (ch < 0x20) {
            memcpy(p, "\\u00", 4);
            p[4] = hex[ch >> 4];
            p[5] = hex[ch & 15];
            p += 6;
        } else {
            *p++ = (char)ch;
        }
    }
    return (size_t)(p - out);
}

/* CONN_OPEN: every hook runs; the return value is ignored. The state is already zeroed. */
static int hello_on_open(wshub_event_t ev, void *data, void *ud)
{
    hello_t *h = ud;
    wshub_ev_conn_t *e = data;
    hello_conn_t *hc = h->host->conn_state(e->conn, h->self);

    (void)ev;
    hc->opened_ms = h->host->now_ms();
    return WSHUB_OK;
}

/*
 * The "hello" route: answers {"type":"ack","id":<the client's id>,"greeting":"...","count":N}.
 * send_ack adds "type" and "id" and copies our fields, so the buffer is freed right after. A
 * negative return would make the host answer an `error` for us.
 */
static int hello_on_hello(wshub_conn_t *conn, const wshub_msg_t *msg, void *ud)
{
    hello_t *h = ud;
    hello_conn_t *hc = h->host->conn_state(conn, h->self);
    const char *user = h->host->conn_user(conn);
    size_t cap;
    char *fields, *p;

    if (!*user)
        user = "anonymous";
    cap = 6 * (strlen(h->greeting) + strlen(user)) + 64;
    fields = malloc(cap);
    if (!fields)
        return WSHUB_ERR_NOMEM;

    hc->n_hellos++;
    p = fields;
    memcpy(p, "{\"greeting\":\"", 13);
    p += 13;
    p += json_escape(p, h->greeting);
    memcpy(p, ", ", 2);
    p += 2;
    p += json_escape(p, user);
    snprintf(p, cap - (size_t)(p - fields), "!\",\"count\":%" PRIu32 "}", hc->n_hellos);

    /* A failed send means the connection is closing: nobody to answer, not an error. */
    if (h->host->send_ack(conn, msg->id, fields) == WSHUB_OK)
        h->host->metric_add(h->greetings, NULL, 1);
    free(fields);
    return WSHUB_OK;
}

static void hello_fini(wshub_plugin_t *self, void *state)
{
    (void)self;
    free(state);
}

/*
 * Registration happens here and only here. When init fails, the loader removes whatever we
 * registered but does NOT call fini, so init frees its own allocations on the way out.
 */
static int hello_init(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                      void **state)
{
    static const wshub_metric_def_t greetings_def = {
        .kind = WSHUB_METRIC_COUNTER,
        .name = "hello_greetings_total",
        .help = "Hello messages answered.",
    };
    hello_t *h;
    int rc;

    h = calloc(1, sizeof(*h));
    if (!h) {
        host->set_error(self, "out of memory");
        return WSHUB_ERR_NOMEM;
    }
    h->host = host;
    h->self = self;
    h->greeting = host->cfg_str(cfg, "greeting", "Hello");

    h->greetings = host->metric_new(self, &greetings_def);
    if (!h->greetings) {
        host->set_error(self, "cannot register metric %s", greetings_def.name);
        rc = WSHUB_ERR;
        goto fail;
    }
    rc = host->hook_add(self, WSHUB_EV_CONN_OPEN, 0, hello_on_open, h);
    if (rc != WSHUB_OK) {
        host->set_error(self, "hook_add(CONN_OPEN): %s", host->strerror(rc));
        goto fail;
    }
    rc = host->route_add(self, "hello", hello_on_hello, h);
    if (rc != WSHUB_OK) {
        host->set_error(self, "route_add(\"hello\"): %s", host->strerror(rc));
        goto fail;
    }
    WSHUB_LOG(WSHUB_LOG_INFO, "greeting with \"%s\"", h->greeting);
    *state = h;
    return WSHUB_OK;

fail:
    free(h);
    return rc;
}

WSHUB_PLUGIN(.name = "hello", .version = "1.0.0",
             .description = "Answers {\"type\":\"hello\"} with a greeting (SDK template)",
             .options = hello_options, .conn_state_size = sizeof(hello_conn_t), .init = hello_init,
             .fini = hello_fini);
