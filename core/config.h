/*
 * config: the YAML configuration (libyaml). The file is loaded into a tree of wshub_cfg nodes that
 * remember their file:line:col, then the core sections are checked against a schema (an unknown
 * key or a wrong type is an error naming file:line:col), then WSHUB_<SECTION>_<KEY> environment
 * overrides are applied. Plugin `config:` nodes are checked against each plugin's declared
 * options by config__check_options() when the plugin is loaded.
 */
#ifndef WSHUB_CONFIG_H
#define WSHUB_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wshub/sdk.h>

/* A node of the YAML tree. Plugins see it as the opaque wshub_cfg_t. */
struct wshub_cfg {
    wshub_cfg_kind_t kind;
    char *scalar;             /* WSHUB_CFG_SCALAR: the text ("" for an empty/null scalar) */
    bool is_null;             /* the scalar was ~, null or empty (plain style) */
    bool is_quoted;           /* the scalar was quoted (never a number/bool/null) */
    size_t n;                 /* LIST: items; MAP: entries */
    struct wshub_cfg **items; /* LIST items / MAP values */
    char **keys;              /* MAP keys (n entries), NULL for LIST */
    char where[96];           /* "file:line:col" (1-based), for messages */
    char (*key_where)[96];    /* MAP: where each key was written (n entries); may be NULL for
                                 maps built by hand, then messages use the value's place */
};

typedef struct config_plugin {
    char *name;               /* required, [a-z0-9_]+ */
    char *path;               /* NULL: <plugin_dir>/<name>.so */
    bool optional;            /* a load failure is logged, not fatal */
    struct wshub_cfg *config; /* the `config:` node; an empty MAP when absent (never NULL) */
    char where[96];           /* where the entry starts */
} config_plugin_t;

typedef struct config_tenant {
    char *name;
    uint32_t max_connections; /* 0 = unlimited */
    char **cors_origins;      /* per-tenant origin allow-list (empty = server-wide list) */
    size_t n_cors_origins;
} config_tenant_t;

typedef struct config {
    char *file; /* the path loaded, or "<embedded>" */
    struct {
        char *listen_host;              /* default "0.0.0.0" */
        uint16_t listen_port;           /* default 8080; 0 = any */
        char *path;                     /* default "/ws" */
        uint32_t max_connections;       /* default 100000 */
        size_t max_message_size;        /* default 1 MiB */
        uint64_t heartbeat_interval_ms; /* default 25000 */
        uint64_t connection_timeout_ms; /* default 60000 */
        uint64_t handshake_timeout_ms;  /* default 10000 */
        size_t send_queue_max_bytes;    /* default 8 MiB */
        char **cors_origins;            /* empty = allow all */
        size_t n_cors_origins;
        bool permessage_deflate;         /* default true */
        size_t deflate_min_size;         /* default 256: smaller messages are sent uncompressed */
        uint64_t shutdown_timeout_ms;    /* default 10000 */
        size_t max_header_size;          /* default 8 KiB: request head limit */
        bool reuse_port;                 /* default false: SO_REUSEPORT, one instance per core */
        uint32_t max_connections_per_ip; /* default 0 = unlimited */
        int backlog;                     /* default 1024 */
    } server;
    struct {
        bool enabled;         /* default true */
        char *listen_host;    /* default "127.0.0.1" */
        uint16_t listen_port; /* default 9090 */
    } admin;
    struct {
        int level; /* WSHUB_LOG_*; default INFO; YAML: err|warn|notice|info|debug */
    } log;
    struct {
        bool tenant_labels; /* default true: metrics carry a tenant label where allowed */
    } metrics;
    char *plugin_dir; /* default: the installed plugin dir, else build tree */
    config_plugin_t *plugins;
    size_t n_plugins;
    config_tenant_t *tenants; /* `tenants:` section: per-tenant limits */
    size_t n_tenants;
    struct wshub_cfg *root; /* the whole tree */
} config_t;

/*
 * Loads and checks a file. Returns 0, or -1 with a message "file:line:col: what is wrong" in err
 * (always NUL-terminated). On failure *cfg is left freed (safe to config__free again).
 * Environment overrides (`env` is an environ-style NULL-terminated array, normally `environ`;
 * NULL = none) are applied after the file; a bad value gives "env WSHUB_X_Y: what is wrong".
 */
int config__load_file(config_t *cfg, const char *path, char *const *env, char *err, size_t err_len);

/* Same, from a string (the embedded default); `name` is used as the file name in messages. */
int config__load_string(config_t *cfg, const char *name, const char *yaml, size_t len,
                        char *const *env, char *err, size_t err_len);

/* Same, from the default config compiled into the binary (etc/wshub.yaml), named "<embedded>";
 * relative paths in it stay relative to the working directory. */
int config__load_default(config_t *cfg, char *const *env, char *err, size_t err_len);

/* etc/wshub.yaml, embedded by scripts/embed.py (NUL-terminated; _len excludes the NUL). */
extern const char wshub_default_config[];
extern const unsigned long wshub_default_config_len;

void config__free(config_t *cfg);

/*
 * Parses one YAML document into a node tree without any schema (used for option defaults, and
 * by tests and tools that need a tree). *out is NULL for an empty document; otherwise free it
 * with config__node_free. Same syntax rules and messages as the loaders: duplicate keys,
 * non-scalar keys, aliases and multiple documents are errors. Returns 0 or -1 (message in err).
 */
int config__parse_tree(const char *name, const char *yaml, size_t len, struct wshub_cfg **out,
                       char *err, size_t err_len);

/*
 * Checks a plugin's `config:` node (a MAP) against its declared options (ends with key == NULL):
 * unknown key, wrong type, missing required option -> -1 and "file:line:col: plugin NAME:
 * option KEY: what is wrong" in err (an unknown key message lists the valid keys). Options that
 * are absent and have a default are inserted into the tree as scalar nodes whose `where` is
 * "<default>", so plugins read defaults through the same accessors. `opts` may be NULL (then
 * any key is unknown).
 */
int config__check_options(struct wshub_cfg *node, const char *plugin, const wshub_opt_t *opts,
                          char *err, size_t err_len);

/* Parsers shared with env overrides and plugin accessors. All return 0 or -1. */
int config__parse_bool(const char *s, bool *out);
int config__parse_int(const char *s, int64_t *out);
int config__parse_duration_ms(const char *s, uint64_t *out); /* "250ms" "30s" "5m" "2h" "1500" */
int config__parse_size(const char *s, uint64_t *out);        /* "1024" "64KiB" "1MiB" "10KB" */
int config__parse_listen(const char *s, char **host, uint16_t *port); /* "host:port", "[::1]:0" */
int config__parse_log_level(const char *s, int *out);

/* Node accessors (they implement the cfg_* host slots). NULL-safe: a NULL node has no children. */
const struct wshub_cfg *config__get(const struct wshub_cfg *node, const char *key);
const char *config__str(const struct wshub_cfg *node, const char *key, const char *def);
/* Integer with duration/size suffix support ("30s" -> 30000, "1MiB" -> 1048576, "12" -> 12). */
int config__int(const struct wshub_cfg *node, const char *key, int64_t def, int64_t *out);
bool config__bool(const struct wshub_cfg *node, const char *key, bool def);

/* An empty MAP node (for plugins without `config:`); owned by the caller, free with
 * config__node_free. */
struct wshub_cfg *config__empty_map(void);
void config__node_free(struct wshub_cfg *node);

#endif
