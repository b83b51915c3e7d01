/*
 * echo: sends every message received on one raw WebSocket path back to its sender, unchanged.
 *
 * It is the endpoint the RFC 6455 conformance suite (Autobahn's fuzzingclient) talks to, so the
 * reply must be byte-for-byte the message received and of the same kind: a text message comes
 * back as text, a binary message as binary. Everything the protocol requires around it
 * (fragmentation, UTF-8 validation of text, control frames, close handshake, permessage-deflate)
 * is done by the core before the message reaches us and after we queue the reply.
 *
 * It is also the smallest complete plugin, so it is written as the example to copy:
 *   - one exported symbol, the descriptor (WSHUB_PLUGIN at the end); everything else is static;
 *   - declared options, which the server validates (and fills with defaults) before init runs;
 *   - registration only inside init (path_add, metric_new), reporting failures with set_error;
 *   - the plugin's own state allocated in init and released in fini (or by init itself when it
 *     fails: the loader does not call fini after a failed init); no globals.
 *
 * Configuration:
 *
 *     plugins:
 *       - name: echo
 *         config:
 *           path: /echo      # raw WebSocket path to serve (default /echo)
 */
#include <stdlib.h>

#include <wshub/sdk.h>

/* Everything the plugin needs at run time; one instance per load, passed as `ud`/`state`. */
typedef struct echo {
    const wshub_host_api_t *host; /* valid until fini returns */
    wshub_plugin_t *self;         /* our handle, for host calls that act for the plugin */
    wshub_metric_t *messages;     /* wshub_echo_messages_total{kind} */
} echo_t;

/* The declared options. The loader refuses unknown keys and wrong types with file:line:col, and
 * inserts the default for an absent key, so init can read `path` without a fallback of its own. */
static const wshub_opt_t echo_options[] = {
    {"path", WSHUB_OPT_STRING, "/echo", false, "raw WebSocket path to echo on (starts with '/')"},
    {NULL, 0, NULL, false, NULL},
};

/* The metric's one label: what kind of message was echoed. */
static const char *const echo_label_names[] = {"kind"};

/*
 * Called for every complete message on our path (the loop thread). `msg->data` is borrowed for
 * the duration of the call, so the reply is a copy:
 *   - text goes back with conn_send_text, which copies the bytes into a text message;
 *   - binary must stay binary, and there is no "send binary bytes" slot, so we make a binary
 *     buffer (one reference, ours), let conn_send take its own reference, and drop ours.
 * A failed send means the connection is closing (WSHUB_ERR_STATE) or was just closed as a slow
 * consumer (WSHUB_ERR_LIMIT); there is nobody to tell on a raw path, so the message simply is
 * not counted. We return WSHUB_OK in every case: a raw path has no error envelope to answer with.
 */
static int echo_on_message(wshub_conn_t *conn, const wshub_msg_t *msg, void *ud)
{
    echo_t *e = ud;
    const char *labels[1];
    int rc;

    if (msg->is_binary) {
        wshub_buf_t *b = e->host->buf_new_binary(msg->data, msg->len);
        if (!b)
            return WSHUB_OK;
        rc = e->host->conn_send(conn, b);
        e->host->buf_unref(b);
        labels[0] = "binary";
    } else {
        rc = e->host->conn_send_text(conn, msg->data, msg->len);
        labels[0] = "text";
    }
    if (rc == WSHUB_OK)
        e->host->metric_add(e->messages, labels, 1);
    return WSHUB_OK;
}

/* Releases the state (the host drops our path and metric itself). */
static void echo_fini(wshub_plugin_t *self, void *state)
{
    (void)self;
    free(state);
}

/*
 * Reads the (validated) options, registers the metric and the path. On failure set_error tells
 * the operator why, and init frees its state itself: after a failed init the loader removes what
 * we registered but does not call fini.
 */
static int echo_init(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                     void **state)
{
    static const wshub_metric_def_t messages_def = {
        .kind = WSHUB_METRIC_COUNTER,
        .name = "wshub_echo_messages_total",
        .help = "Messages echoed back to their sender, by kind (text or binary).",
        .label_names = echo_label_names,
        .n_labels = 1,
    };
    const char *path = host->cfg_str(cfg, "path", "/echo");
    echo_t *e;
    int rc;

    e = calloc(1, sizeof(*e));
    if (!e) {
        host->set_error(self, "out of memory");
        return WSHUB_ERR_NOMEM;
    }
    e->host = host;
    e->self = self;

    e->messages = host->metric_new(self, &messages_def);
    if (!e->messages) {
        host->set_error(self, "cannot register metric %s", messages_def.name);
        rc = WSHUB_ERR;
        goto fail;
    }
    rc = host->path_add(self, path, echo_on_message, e);
    if (rc != WSHUB_OK) {
        /* Say what to change, and where (the option's file:line:col, or "<default>"). */
        host->set_error(self, "%s: option path: cannot serve '%s': %s",
                        host->cfg_where(host->cfg_get(cfg, "path")), path,
                        rc == WSHUB_ERR_EXISTS ? "the path is already served (another plugin, "
                                                 "or the server's JSON path)"
                                               : "a path starts with '/' and has no '?'");
        goto fail;
    }
    WSHUB_LOG(WSHUB_LOG_INFO, "echoing on %s", path);
    *state = e;
    return WSHUB_OK;

fail:
    free(e);
    return rc;
}

WSHUB_PLUGIN(.name = "echo", .version = "1.0.0",
             .description = "Echoes every text and binary message on a raw WebSocket path",
             .options = echo_options, .init = echo_init, .fini = echo_fini);
