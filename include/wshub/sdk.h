/**
 * @file wshub/sdk.h
 * @brief The wshub plugin SDK: the one header a plugin includes.
 *
 * A plugin is a shared object that exports exactly one data symbol, `wshub_plugin_entry`, a
 * wshub_plugin_desc_t declared with WSHUB_PLUGIN(). The server validates the descriptor's frozen
 * header (magic, ABI major/minor, struct size) before it runs any plugin code, then calls
 * `init` with the host API table (wshub_host_api_t), through which the plugin registers hooks,
 * message routes, paths, services, metrics and timers.
 *
 * ABI rules (see sdk/ABI.md for the log):
 * - WSHUB_SDK_ABI_MAJOR changes only for incompatible changes; the server refuses other majors.
 * - WSHUB_SDK_ABI_MINOR grows when something is appended; the server accepts a plugin whose minor
 *   is <= its own. Structs and the host table only ever grow at the end; enums keep their values.
 * - Only C standard headers here: no libevent, json-c, libyaml or nats types cross the boundary.
 *
 * Ownership tags on every pointer: [borrowed] = valid for the duration of the call (or as
 * stated), never freed by the receiver; [owned: release with X] = the receiver must call X.
 * Nothing is ever freed across the boundary with free().
 *
 * Threads: every host function is called on the loop thread ("called on: loop thread"), except
 * wshub_host_api_t::post, which may be called from any thread.
 */
#ifndef WSHUB_SDK_H
#define WSHUB_SDK_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/** Incompatible-change counter: the server refuses plugins built for another major. */
#define WSHUB_SDK_ABI_MAJOR 1
/** Append counter: the server accepts plugins whose minor is <= its own. */
#define WSHUB_SDK_ABI_MINOR 0
/** First field of every descriptor: "WSFP". */
#define WSHUB_PLUGIN_MAGIC 0x57534650u
/** Name of the one data symbol a plugin exports. */
#define WSHUB_PLUGIN_SYMBOL "wshub_plugin_entry"

#if defined(__GNUC__) || defined(__clang__)
/** Marks the exported descriptor visible even under -fvisibility=hidden. */
#define WSHUB_EXPORT __attribute__((visibility("default")))
/** printf-style format checking of host functions. */
#define WSHUB_PRINTF(fmt, args) __attribute__((format(printf, fmt, args)))
#else
#define WSHUB_EXPORT
#define WSHUB_PRINTF(fmt, args)
#endif

/* ------------------------------------------------------------------------------------------ */
/* Opaque handles                                                                              */
/* ------------------------------------------------------------------------------------------ */

/** A loaded plugin instance; passed back to every host function that acts for a plugin. */
typedef struct wshub_plugin wshub_plugin_t;
/** A connection. Valid during the callback that delivered it; keep its id to use it later. */
typedef struct wshub_conn wshub_conn_t;
/** A fan-out set of connections of one tenant: one buffer sent to all members. */
typedef struct wshub_group wshub_group_t;
/** An immutable, reference-counted payload (one WebSocket message). */
typedef struct wshub_buf wshub_buf_t;
/** A read-only node of the YAML configuration (mapping, sequence or scalar). */
typedef struct wshub_cfg wshub_cfg_t;
/** A one-shot or repeating timer on the loop. */
typedef struct wshub_timer wshub_timer_t;
/** A Prometheus metric family (counter, gauge or histogram) with fixed label names. */
typedef struct wshub_metric wshub_metric_t;

/* ------------------------------------------------------------------------------------------ */
/* Return codes                                                                                */
/* ------------------------------------------------------------------------------------------ */

/** Results: 0 is success, > 0 a non-error outcome, < 0 an error (libuv style). */
enum wshub_rc {
    WSHUB_OK = 0,            /**< success / accepted */
    WSHUB_DEFER = 1,         /**< hook chain: no opinion, ask the next hook */
    WSHUB_PENDING = 2,       /**< stop(): finishing asynchronously, call host->stopped() */
    WSHUB_ERR = -1,          /**< generic failure */
    WSHUB_ERR_NOMEM = -2,    /**< out of memory (plugin-side allocation) */
    WSHUB_ERR_INVAL = -3,    /**< invalid argument or message */
    WSHUB_ERR_NOTFOUND = -4, /**< no such object */
    WSHUB_ERR_EXISTS = -5,   /**< already exists / already registered */
    WSHUB_ERR_DENIED = -6,   /**< refused by policy */
    WSHUB_ERR_STATE = -7,    /**< not allowed now (e.g. registration outside init) */
    WSHUB_ERR_IO = -8,       /**< I/O failure */
    WSHUB_ERR_LIMIT = -9,    /**< a configured limit was reached */
};

/** Log levels for wshub_host_api_t::log. */
enum wshub_log_level {
    WSHUB_LOG_ERR = 0,
    WSHUB_LOG_WARN = 1,
    WSHUB_LOG_NOTICE = 2,
    WSHUB_LOG_INFO = 3,
    WSHUB_LOG_DEBUG = 4,
};

/* ------------------------------------------------------------------------------------------ */
/* Configuration options a plugin declares                                                     */
/* ------------------------------------------------------------------------------------------ */

/** Type of a declared option; the loader checks the YAML against it before init. */
typedef enum wshub_opt_type {
    WSHUB_OPT_STRING = 1,   /**< scalar string */
    WSHUB_OPT_INT = 2,      /**< integer (int64) */
    WSHUB_OPT_BOOL = 3,     /**< true/false/yes/no/on/off */
    WSHUB_OPT_DURATION = 4, /**< integer milliseconds, or "250ms", "30s", "5m", "2h" */
    WSHUB_OPT_SIZE = 5,     /**< integer bytes, or "64KiB", "1MiB", "1GiB", "10KB" */
    WSHUB_OPT_LIST = 6,     /**< sequence of scalars */
    WSHUB_OPT_MAP = 7,      /**< mapping, free-form: validated by the plugin itself */
    WSHUB_OPT_ANY = 8,      /**< any node, validated by the plugin itself */
} wshub_opt_type_t;

/** One declared option. An array of these ends with an entry whose key is NULL. */
typedef struct wshub_opt {
    const char *key;       /**< [borrowed, static] option name under the plugin's `config:` */
    wshub_opt_type_t type; /**< expected type */
    const char *def;       /**< [borrowed, static] default as YAML scalar text, or NULL */
    bool required;         /**< missing -> configuration error */
    const char *help;      /**< [borrowed, static] one line shown by `wshubd --plugin-help` */
} wshub_opt_t;

/* ------------------------------------------------------------------------------------------ */
/* Events and their payloads (pointers inside are borrowed for the duration of the hook)       */
/* ------------------------------------------------------------------------------------------ */

/** Events a plugin can hook. Values are frozen; new events are appended. */
typedef enum wshub_event {
    WSHUB_EV_CONN_OPEN = 1,  /**< wshub_ev_conn_t*: after the 101, before the welcome */
    WSHUB_EV_AUTH = 2,       /**< wshub_ev_auth_t*: upgrade request, before the 101 */
    WSHUB_EV_MESSAGE_IN = 3, /**< wshub_ev_message_t*: every message before routing */
    WSHUB_EV_CONN_CLOSE = 4, /**< wshub_ev_close_t*: connection still valid during the call */
    WSHUB_EV_TICK = 5,       /**< wshub_ev_tick_t*: once per second */
    WSHUB_EV_WELCOME = 6,    /**< wshub_ev_welcome_t*: add fields to the welcome message */
} wshub_event_t;

/** A request header, as received. */
typedef struct wshub_header {
    const char *name;  /**< [borrowed] lower-cased */
    const char *value; /**< [borrowed] trimmed */
} wshub_header_t;

/** Payload of WSHUB_EV_CONN_OPEN. */
typedef struct wshub_ev_conn {
    wshub_conn_t *conn; /**< [borrowed] */
} wshub_ev_conn_t;

/**
 * Payload of WSHUB_EV_AUTH: the upgrade request. Hooks run in priority order; each returns
 * WSHUB_OK (accept, stop the chain), WSHUB_DEFER (no opinion) or WSHUB_ERR_DENIED (refuse, stop
 * the chain; set `status` and `reason`). When every hook defers the connection is accepted.
 * Only during this event may a plugin call conn_set_identity and conn_set_subprotocol.
 */
typedef struct wshub_ev_auth {
    wshub_conn_t *conn;            /**< [borrowed] not yet upgraded */
    const char *path;              /**< [borrowed] request path without query */
    const char *query;             /**< [borrowed] text after '?', or NULL */
    const wshub_header_t *headers; /**< [borrowed] n_headers entries */
    size_t n_headers;
    const char *remote_addr; /**< [borrowed] "1.2.3.4" or "::1" */
    int status;              /**< out: HTTP status when denying (default 403) */
    const char *reason;      /**< out: [borrowed, must be static] short body text */
} wshub_ev_auth_t;

/** A message from a client. */
typedef struct wshub_msg {
    const char *type; /**< [borrowed] envelope "type" (JSON paths), NULL on raw paths */
    const char *id;   /**< [borrowed] envelope "id" as raw JSON text (e.g. "7", "\"a\""), or NULL */
    const char *data; /**< [borrowed] the whole message as received (NUL-terminated) */
    size_t len;       /**< message length in bytes (without the terminating NUL) */
    bool is_binary;   /**< binary frame (raw paths only: JSON paths refuse binary) */
} wshub_msg_t;

/** Payload of WSHUB_EV_MESSAGE_IN. Returning WSHUB_ERR_DENIED drops the message. */
typedef struct wshub_ev_message {
    wshub_conn_t *conn;     /**< [borrowed] */
    const wshub_msg_t *msg; /**< [borrowed] */
    const char *error_code; /**< out: when denying, the error code to answer ("rate_limited"),
                                 or NULL to drop silently */
} wshub_ev_message_t;

/** Payload of WSHUB_EV_CONN_CLOSE. */
typedef struct wshub_ev_close {
    wshub_conn_t *conn; /**< [borrowed] still valid, removed from every group after the hooks */
    uint16_t code;      /**< close code (1006 when the TCP connection dropped) */
    const char *reason; /**< [borrowed] close reason, may be "" */
} wshub_ev_close_t;

/** Payload of WSHUB_EV_TICK. */
typedef struct wshub_ev_tick {
    uint64_t now_ms; /**< wall clock, milliseconds since the epoch */
} wshub_ev_tick_t;

/**
 * Payload of WSHUB_EV_WELCOME: each hook may append fields to the welcome message with
 * host->welcome_add(ev, key, json).
 */
typedef struct wshub_ev_welcome {
    wshub_conn_t *conn; /**< [borrowed] */
    void *priv;         /**< host-private: pass the event back to welcome_add */
} wshub_ev_welcome_t;

/** Hook callback. `data` is the event's payload struct. @return see each event. */
typedef int (*wshub_hook_cb)(wshub_event_t ev, void *data, void *ud);

/**
 * Message handler for a routed type (route_add) or a raw path (path_add).
 * @return WSHUB_OK when handled (the plugin replied or chose not to), or a negative code: the
 *         host then answers `error` with a code derived from it (ERR_DENIED -> "forbidden",
 *         ERR_INVAL -> "invalid", ERR_NOTFOUND -> "not_found", ERR_EXISTS -> "exists",
 *         ERR_LIMIT -> "rate_limited", other -> "internal"). On a raw path nothing is sent
 *         for a negative return (there is no envelope to answer in).
 */
typedef int (*wshub_msg_cb)(wshub_conn_t *conn, const wshub_msg_t *msg, void *ud);

/** Timer callback (loop thread). */
typedef void (*wshub_timer_cb)(void *ud);

/** Iteration callback: return 0 to continue, non-zero to stop. */
typedef int (*wshub_conn_iter_cb)(wshub_conn_t *conn, void *ud);

/* ------------------------------------------------------------------------------------------ */
/* Metrics                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/** Metric kinds. */
typedef enum wshub_metric_kind {
    WSHUB_METRIC_COUNTER = 1,
    WSHUB_METRIC_GAUGE = 2,
    WSHUB_METRIC_HISTOGRAM = 3,
} wshub_metric_kind_t;

/** Definition passed to metric_new; copied by the host. */
typedef struct wshub_metric_def {
    wshub_metric_kind_t kind;
    const char *name;               /**< [borrowed] e.g. "wshub_auth_failures_total" */
    const char *help;               /**< [borrowed] */
    const char *const *label_names; /**< [borrowed] n_labels names, or NULL */
    size_t n_labels;                /**< at most 8 */
    const double *buckets;          /**< [borrowed] histogram upper bounds, ascending; NULL =
                                         default buckets (0.0005 .. 10 seconds) */
    size_t n_buckets;
} wshub_metric_def_t;

/* ------------------------------------------------------------------------------------------ */
/* The host API table                                                                          */
/* ------------------------------------------------------------------------------------------ */

/** Kinds of configuration node. */
typedef enum wshub_cfg_kind {
    WSHUB_CFG_SCALAR = 1,
    WSHUB_CFG_LIST = 2,
    WSHUB_CFG_MAP = 3,
} wshub_cfg_kind_t;

/**
 * The host functions, one const instance per process, handed to init(). Append-only: a slot's
 * offset never changes (a unit test freezes them). A plugin built against minor N may use every
 * slot that exists in N; check `abi_minor` before using slots added later than the plugin's
 * minimum supported host.
 */
typedef struct wshub_host_api {
    uint16_t abi_major;   /**< the server's WSHUB_SDK_ABI_MAJOR */
    uint16_t abi_minor;   /**< the server's WSHUB_SDK_ABI_MINOR */
    uint32_t struct_size; /**< sizeof(wshub_host_api_t) in the server */

    /* --- logging and errors (ABI 1.0) --- */

    /** Logs a line prefixed with `plugin:<name>`. Never log tokens or payloads above DEBUG.
     *  @param self [borrowed] called on: loop thread, or any thread (it is thread-safe). */
    void (*log)(wshub_plugin_t *self, int level, const char *fmt, ...) WSHUB_PRINTF(3, 4);
    /** Sets the error text the host logs when init/start/reload fails. Called on: loop thread. */
    void (*set_error)(wshub_plugin_t *self, const char *fmt, ...) WSHUB_PRINTF(2, 3);
    /** @return [borrowed, static] text of a wshub_rc code. */
    const char *(*strerror)(int rc);

    /* --- registration: allowed only during init(), else WSHUB_ERR_STATE (ABI 1.0) --- */

    /** Adds a hook; lower `prio` runs first (ties: plugin load order). The host removes every
     *  hook of a plugin when it unloads. @return WSHUB_OK, WSHUB_ERR_INVAL, WSHUB_ERR_STATE. */
    int (*hook_add)(wshub_plugin_t *self, wshub_event_t ev, int prio, wshub_hook_cb cb, void *ud);
    /** Routes the envelope type `type` on JSON paths to `cb`. One owner per type.
     *  @param type [borrowed] copied. @return WSHUB_OK, WSHUB_ERR_EXISTS (owned by another
     *  plugin, or a core type), WSHUB_ERR_STATE, WSHUB_ERR_INVAL. */
    int (*route_add)(wshub_plugin_t *self, const char *type, wshub_msg_cb cb, void *ud);
    /** Serves a raw WebSocket path (no JSON envelope, no welcome): every text and binary message
     *  on `path` goes to `cb`. @param path [borrowed] copied, must start with '/'.
     *  @return WSHUB_OK, WSHUB_ERR_EXISTS, WSHUB_ERR_STATE, WSHUB_ERR_INVAL. */
    int (*path_add)(wshub_plugin_t *self, const char *path, wshub_msg_cb cb, void *ud);
    /** Offers a named, versioned service table to other plugins.
     *  @param name [borrowed] copied. @param vtable [borrowed] must outlive the plugin (static).
     *  The name must be listed in the descriptor's `provides` (else WSHUB_ERR_INVAL): that is
     *  how the loader orders providers before the plugins that require them.
     *  @return WSHUB_OK, WSHUB_ERR_EXISTS, WSHUB_ERR_STATE, WSHUB_ERR_INVAL. */
    int (*service_put)(wshub_plugin_t *self, const char *name, uint32_t version,
                       const void *vtable);
    /** Looks up a service offered by a plugin loaded earlier (list it in `requires` to be
     *  ordered after its provider). @return [borrowed, valid until the provider unloads] the
     *  vtable, or NULL when absent or its version < min_version. Callable any time on the loop. */
    const void *(*service_get)(wshub_plugin_t *self, const char *name, uint32_t min_version);

    /* --- configuration (the plugin's `config:` node, validated against its options) --- */

    /** @return [borrowed, valid until reload/fini] child `key` of a map node, or NULL. */
    const wshub_cfg_t *(*cfg_get)(const wshub_cfg_t *node, const char *key);
    /** @return the node's kind. */
    wshub_cfg_kind_t (*cfg_kind)(const wshub_cfg_t *node);
    /** @return [borrowed] a scalar's text, or NULL for lists/maps. */
    const char *(*cfg_scalar)(const wshub_cfg_t *node);
    /** @return number of items of a list or entries of a map; 0 for scalars. */
    size_t (*cfg_len)(const wshub_cfg_t *node);
    /** @return [borrowed] item i of a list or value i of a map; NULL when out of range. */
    const wshub_cfg_t *(*cfg_at)(const wshub_cfg_t *node, size_t i);
    /** @return [borrowed] key i of a map; NULL otherwise. */
    const char *(*cfg_key_at)(const wshub_cfg_t *node, size_t i);
    /** @return [borrowed] "file:line:col" of the node, for error messages. */
    const char *(*cfg_where)(const wshub_cfg_t *node);
    /** Scalar `key` of a map as a string; `def` when absent. @return [borrowed] */
    const char *(*cfg_str)(const wshub_cfg_t *node, const char *key, const char *def);
    /** Integer `key`; duration and size suffixes are accepted ("30s" -> 30000 ms, "1MiB" ->
     *  1048576 bytes; plain integers as they are). @return WSHUB_OK (also when absent: *out = def),
     *  WSHUB_ERR_INVAL when present but not a number (the loader already refused those for
     *  declared options). */
    int (*cfg_int)(const wshub_cfg_t *node, const char *key, int64_t def, int64_t *out);
    /** Boolean `key`; `def` when absent or not a boolean. */
    bool (*cfg_bool)(const wshub_cfg_t *node, const char *key, bool def);

    /* --- connections --- */

    /** @return the connection's id (unique per server process, never reused, starts at 1). */
    uint64_t (*conn_id)(const wshub_conn_t *c);
    /** Finds a live connection by id within `tenant`. @param tenant [borrowed] the tenant the
     *  caller acts for; NULL means any tenant and is allowed only for plugins declared with
     *  WSHUB_PLUGIN_SYSTEM_SCOPE. @return [borrowed, valid until the current callback returns]
     *  the connection, or NULL when closed, unknown, or in another tenant. */
    wshub_conn_t *(*conn_lookup)(wshub_plugin_t *self, const char *tenant, uint64_t id);
    /** Calls `cb` for each open connection of `user` in `tenant` (NULL tenant: system scope
     *  only). @return WSHUB_OK, WSHUB_ERR_DENIED (NULL tenant without system scope), or the
     *  callback's non-zero value. The callback must not close connections other than its own. */
    int (*conn_each_user)(wshub_plugin_t *self, const char *tenant, const char *user,
                          wshub_conn_iter_cb cb, void *ud);
    /** Calls `cb` for each open connection of `tenant` (NULL: all tenants, system scope only). */
    int (*conn_each)(wshub_plugin_t *self, const char *tenant, wshub_conn_iter_cb cb, void *ud);
    /** @return [borrowed, valid while the conn is] tenant id; "public" when anonymous. */
    const char *(*conn_tenant)(const wshub_conn_t *c);
    /** @return [borrowed] user id; "" when anonymous. */
    const char *(*conn_user)(const wshub_conn_t *c);
    /** @return number of roles. */
    size_t (*conn_n_roles)(const wshub_conn_t *c);
    /** @return [borrowed] role i, NULL when out of range. */
    const char *(*conn_role)(const wshub_conn_t *c, size_t i);
    /** @return [borrowed] metadata as JSON object text ("{}" when none). */
    const char *(*conn_metadata)(const wshub_conn_t *c);
    /** @return [borrowed] remote address text ("127.0.0.1"). */
    const char *(*conn_remote_addr)(const wshub_conn_t *c);
    /** @return [borrowed] request path. */
    const char *(*conn_path)(const wshub_conn_t *c);
    /** @return [borrowed] negotiated subprotocol, or NULL. */
    const char *(*conn_subprotocol)(const wshub_conn_t *c);
    /** @return creation time, ms since the epoch. */
    uint64_t (*conn_created_ms)(const wshub_conn_t *c);
    /** @return last time a frame arrived, ms since the epoch. */
    uint64_t (*conn_last_seen_ms)(const wshub_conn_t *c);
    /**
     * Sets the identity; allowed only during WSHUB_EV_AUTH (else WSHUB_ERR_STATE): identity is
     * immutable afterwards. All strings are copied. Limits: tenant (non-empty), user and each
     * role at most 256 bytes without control characters; at most 64 roles; metadata a JSON
     * object of at most 16 KiB. @param metadata_json [borrowed] JSON object text or NULL.
     * @return WSHUB_OK, WSHUB_ERR_STATE, WSHUB_ERR_INVAL (a limit above).
     */
    int (*conn_set_identity)(wshub_conn_t *c, const char *tenant, const char *user,
                             const char *const *roles, size_t n_roles, const char *metadata_json);
    /** Selects the subprotocol answered in the 101; only during WSHUB_EV_AUTH. The value must
     *  be one the client offered. @return WSHUB_OK, WSHUB_ERR_STATE, WSHUB_ERR_INVAL. */
    int (*conn_set_subprotocol)(wshub_conn_t *c, const char *protocol);
    /** @return [owned by the host, valid while the conn is] the plugin's zeroed
     *  `conn_state_size` bytes for this connection (NULL when the size is 0). Allocated before
     *  WSHUB_EV_AUTH, freed after the last WSHUB_EV_CONN_CLOSE hook. An upgrade refused after
     *  the AUTH chain (limits, origin) never opens, so no CONN_CLOSE runs for it: keep nothing
     *  that needs freeing in this state before WSHUB_EV_CONN_OPEN. */
    void *(*conn_state)(wshub_conn_t *c, wshub_plugin_t *self);
    /** Queues a message. @param b [borrowed] the host takes its own reference.
     *  @return WSHUB_OK, WSHUB_ERR_STATE (closing), WSHUB_ERR_LIMIT (the send queue overflowed:
     *  the connection is being closed as a slow consumer). */
    int (*conn_send)(wshub_conn_t *c, wshub_buf_t *b);
    /** Copies and queues a text message (convenience). Same results as conn_send. */
    int (*conn_send_text)(wshub_conn_t *c, const char *data, size_t len);
    /** Closes with `code` and `reason` (reason truncated to 123 bytes). Deferred: the conn stays
     *  valid until the current callback returns; WSHUB_EV_CONN_CLOSE runs later. */
    void (*conn_close)(wshub_conn_t *c, uint16_t code, const char *reason);

    /* --- protocol helpers (JSON paths only: on raw paths they send nothing and return
     *     WSHUB_ERR_STATE) --- */

    /** Sends {"type":"ack","id":<id>, ...fields}. @param id_json [borrowed] raw JSON id or NULL
     *  (then no id). @param fields_json [borrowed] a JSON object whose members are added, or NULL.
     *  @return as conn_send. */
    int (*send_ack)(wshub_conn_t *c, const char *id_json, const char *fields_json);
    /** Sends {"type":"error","id":<id>,"code":code,"message":...}. @return as conn_send. */
    int (*send_error)(wshub_conn_t *c, const char *id_json, const char *code, const char *fmt, ...)
        WSHUB_PRINTF(4, 5);
    /** Adds `"key": json` to a welcome message; only inside a WSHUB_EV_WELCOME hook, with the
     *  event it received. @param json [borrowed] valid JSON value text (not checked).
     *  @return WSHUB_OK, WSHUB_ERR_INVAL (NULL/empty argument or no welcome in progress). */
    int (*welcome_add)(wshub_ev_welcome_t *ev, const char *key, const char *json);

    /* --- buffers --- */

    /** New text message buffer; copies `data`. @return [owned: release with buf_unref] */
    wshub_buf_t *(*buf_new)(const void *data, size_t len);
    /** New binary message buffer; copies `data`. @return [owned: release with buf_unref] */
    wshub_buf_t *(*buf_new_binary)(const void *data, size_t len);
    /** Adds a reference. @return b */
    wshub_buf_t *(*buf_ref)(wshub_buf_t *b);
    /** Drops a reference; the last one frees the buffer. NULL is a no-op. */
    void (*buf_unref)(wshub_buf_t *b);
    /** @return [borrowed, valid while referenced] the payload; *len set when len != NULL. */
    const void *(*buf_data)(const wshub_buf_t *b, size_t *len);

    /* --- groups: fan-out sets of one tenant --- */

    /** New empty group of `tenant` (NULL: cross-tenant, system scope only).
     *  @return [owned: release with group_free] or NULL when denied. */
    wshub_group_t *(*group_new)(wshub_plugin_t *self, const char *tenant);
    /** Releases the group (members are not closed). */
    void (*group_free)(wshub_group_t *g);
    /** Adds a connection. @return WSHUB_OK, WSHUB_ERR_EXISTS, WSHUB_ERR_DENIED (other tenant),
     *  WSHUB_ERR_STATE (connection closing). A closing connection leaves every group itself. */
    int (*group_add)(wshub_group_t *g, wshub_conn_t *c);
    /** Removes a connection. @return WSHUB_OK, WSHUB_ERR_NOTFOUND. */
    int (*group_remove)(wshub_group_t *g, wshub_conn_t *c);
    /** True when c is a member. */
    bool (*group_has)(const wshub_group_t *g, const wshub_conn_t *c);
    /** Number of members. */
    size_t (*group_size)(const wshub_group_t *g);
    /** Sends `b` to every member except `except` (may be NULL); the frame is encoded once and
     *  shared by reference. @param b [borrowed] @return number of connections queued. */
    size_t (*group_send)(wshub_group_t *g, wshub_buf_t *b, const wshub_conn_t *except);
    /** Calls cb for each member (the callback must not add/remove members). */
    int (*group_each)(const wshub_group_t *g, wshub_conn_iter_cb cb, void *ud);

    /* --- timers and the loop --- */

    /** Starts a timer after `ms` milliseconds, repeating every `ms` when `repeat`.
     *  @return [owned: release with timer_del] or NULL on bad arguments. A plugin's timers are
     *  deleted by the host when it unloads. */
    wshub_timer_t *(*timer_add)(wshub_plugin_t *self, uint64_t ms, bool repeat, wshub_timer_cb cb,
                                void *ud);
    /** Stops and frees a timer (safe inside its own callback). NULL is a no-op. */
    void (*timer_del)(wshub_timer_t *t);
    /** Runs cb(ud) on the loop thread soon. Called on: ANY thread (the only such slot).
     *  @return WSHUB_OK, WSHUB_ERR_STATE when the server is shutting down (cb not called). */
    int (*post)(wshub_plugin_t *self, void (*cb)(void *ud), void *ud);
    /** @return [borrowed] the loop's `struct event_base *` (libevent 2.1), for libraries with a
     *  libevent adapter (nats.c). Escape hatch: no other libevent object crosses the ABI. */
    void *(*loop_native)(wshub_plugin_t *self);
    /** Completes a stop() that returned WSHUB_PENDING. */
    void (*stopped)(wshub_plugin_t *self);
    /** @return wall clock in ms since the epoch (cached per loop iteration). */
    uint64_t (*now_ms)(void);

    /* --- metrics --- */

    /** Registers a metric family (name must be unique, [a-zA-Z_:][a-zA-Z0-9_:]*); only in init.
     *  @return [owned by the host until the plugin unloads] or NULL (bad def, duplicate name). */
    wshub_metric_t *(*metric_new)(wshub_plugin_t *self, const wshub_metric_def_t *def);
    /** Counter/gauge: adds v (counters: v >= 0). @param labels [borrowed] n_labels values. */
    void (*metric_add)(wshub_metric_t *m, const char *const *labels, double v);
    /** Gauge: sets v. */
    void (*metric_set)(wshub_metric_t *m, const char *const *labels, double v);
    /** Histogram: records an observation. */
    void (*metric_observe)(wshub_metric_t *m, const char *const *labels, double v);

    /* Append new slots below this line only, with a "since ABI 1.N" comment. */
} wshub_host_api_t;

/* ------------------------------------------------------------------------------------------ */
/* The plugin descriptor                                                                       */
/* ------------------------------------------------------------------------------------------ */

/** Frozen forever: the host reads these 16 bytes before anything else. */
typedef struct wshub_plugin_header {
    uint32_t magic;       /**< WSHUB_PLUGIN_MAGIC */
    uint16_t abi_major;   /**< WSHUB_SDK_ABI_MAJOR the plugin was built with */
    uint16_t abi_minor;   /**< WSHUB_SDK_ABI_MINOR the plugin was built with */
    uint32_t struct_size; /**< sizeof(wshub_plugin_desc_t) the plugin was built with */
    uint32_t reserved;    /**< 0 */
} wshub_plugin_header_t;

/** Plugin flags. */
enum wshub_plugin_flags {
    WSHUB_PLUGIN_SYSTEM_SCOPE = 1u << 0, /**< may look up/iterate across tenants (logged) */
    WSHUB_PLUGIN_RELOADABLE = 1u << 1,   /**< reload() can apply a new config on SIGHUP */
};

/**
 * The descriptor a plugin exports (use WSHUB_PLUGIN). Lifecycle, in load order: init (the only
 * phase in which registration works) -> start (listeners are bound) -> [reload]* -> stop (reverse
 * order; may return WSHUB_PENDING and call host->stopped later) -> fini (reverse order).
 */
typedef struct wshub_plugin_desc {
    wshub_plugin_header_t hdr;
    const char *name;            /**< [static] unique, [a-z0-9_]+ */
    const char *version;         /**< [static] the plugin's own version */
    const char *description;     /**< [static] one line */
    const char *const *requires; /**< [static] NULL-terminated names of services this
                                      plugin needs; it is initialised after their
                                      providers. NULL = none */
    const char *const *provides; /**< [static] NULL-terminated names of the services it
                                      offers with service_put (only these). NULL = none */
    const wshub_opt_t *options;  /**< [static] ends with {NULL}, or NULL */
    size_t conn_state_size;      /**< bytes of per-connection state (0: none) */
    uint32_t flags;              /**< wshub_plugin_flags */
    /** Called once. @param host [borrowed, valid until fini returns] keep it.
     *  @param cfg [borrowed, valid until the next reload or fini] the `config:` node (an empty
     *  map when absent). @param state out: the plugin's own pointer, passed to the others.
     *  @return WSHUB_OK, or an error after host->set_error(). When init fails, fini is NOT
     *  called and everything the plugin registered is removed: release what init allocated
     *  before returning the error. */
    int (*init)(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                void **state);
    /** Listeners are bound. May be NULL. @return WSHUB_OK or an error (set_error). */
    int (*start)(wshub_plugin_t *self, void *state);
    /** New config on SIGHUP (only with WSHUB_PLUGIN_RELOADABLE). May be NULL. An error keeps
     *  the old config. */
    int (*reload)(wshub_plugin_t *self, void *state, const wshub_cfg_t *cfg);
    /** Shutdown begins; connections are already closing. May be NULL.
     *  @return WSHUB_OK or WSHUB_PENDING (then call host->stopped(self) when done). */
    int (*stop)(wshub_plugin_t *self, void *state);
    /** Release everything. May be NULL. */
    void (*fini)(wshub_plugin_t *self, void *state);
} wshub_plugin_desc_t;

/**
 * Declares the plugin's descriptor. The ABI numbers are taken where the macro is used, e.g.:
 *
 *     WSHUB_PLUGIN(.name = "hello", .version = "1.0", .init = hello_init);
 */
#define WSHUB_PLUGIN(...)                                                                          \
    WSHUB_EXPORT const wshub_plugin_desc_t wshub_plugin_entry = {                                  \
        .hdr = {WSHUB_PLUGIN_MAGIC, WSHUB_SDK_ABI_MAJOR, WSHUB_SDK_ABI_MINOR,                      \
                (uint32_t)sizeof(wshub_plugin_desc_t), 0},                                         \
        __VA_ARGS__}

/** Logging helpers; `host` and `self` must be in scope under these names. */
#define WSHUB_LOG(lvl, ...)                                                                        \
    do {                                                                                           \
        host->log(self, (lvl), __VA_ARGS__);                                                       \
    } while (0)

/* ------------------------------------------------------------------------------------------ */
/* Well-known service tables (offered by built-in plugins; a new version is a new struct)      */
/* ------------------------------------------------------------------------------------------ */

/** Name of the rooms service (plugin `rooms`). */
#define WSHUB_SVC_ROOMS "rooms"

/** Version 1 of the rooms service. All calls: loop thread. */
typedef struct wshub_svc_rooms_v1 {
    /** Sends `b` to the members of (tenant, room), and its subtree when `subtree`.
     *  @return number of connections queued, or a negative wshub_rc (ERR_NOTFOUND). */
    long (*send)(const char *tenant, const char *room, wshub_buf_t *b, bool subtree);
    /** @return true when connection `c` itself has joined (its tenant's) `room` (presence is
     *  per connection; roles and bans are per user). */
    bool (*is_member)(wshub_conn_t *c, const char *room);
} wshub_svc_rooms_v1_t;

#ifdef __cplusplus
}
#endif

#endif /* WSHUB_SDK_H */
