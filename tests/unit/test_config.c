/*
 * Unit tests for core/config.c: the scalar parsers, the YAML tree (marks, syntax errors,
 * duplicate keys, aliases), the core schema (one row per error message, with file:line:col),
 * environment overrides, plugin entries and path resolution, plugin option checking with
 * default insertion, the node accessors, and the shipped etc/wshub.yaml and test data files.
 */
#include "config.h"

#include <check.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "wshub_build.h"

static char err[1024];

/* Loads a YAML string under the file name "t.yaml" without environment. */
static int load(config_t *cfg, const char *yaml)
{
    return config__load_string(cfg, "t.yaml", yaml, strlen(yaml), NULL, err, sizeof(err));
}

static int load_env(config_t *cfg, const char *yaml, char *const *env)
{
    return config__load_string(cfg, "t.yaml", yaml, strlen(yaml), env, err, sizeof(err));
}

static bool is_zeroed(const config_t *cfg)
{
    static const config_t zero;
    return memcmp(cfg, &zero, sizeof(zero)) == 0;
}

static const char *source_root(void)
{
    const char *r = getenv("WSHUB_SOURCE_ROOT");
    return r && *r ? r : WSHUB_SOURCE_ROOT;
}

/* Asserts every field equals the documented default (plugins and tenants not included). */
static void assert_core_defaults(const config_t *cfg)
{
    ck_assert_str_eq(cfg->server.listen_host, "0.0.0.0");
    ck_assert_uint_eq(cfg->server.listen_port, 8080);
    ck_assert_str_eq(cfg->server.path, "/ws");
    ck_assert_uint_eq(cfg->server.max_connections, 100000);
    ck_assert_uint_eq(cfg->server.max_message_size, 1048576);
    ck_assert_uint_eq(cfg->server.heartbeat_interval_ms, 25000);
    ck_assert_uint_eq(cfg->server.connection_timeout_ms, 60000);
    ck_assert_uint_eq(cfg->server.handshake_timeout_ms, 10000);
    ck_assert_uint_eq(cfg->server.send_queue_max_bytes, 8 * 1048576);
    ck_assert_uint_eq(cfg->server.n_cors_origins, 0);
    ck_assert(cfg->server.permessage_deflate);
    ck_assert_uint_eq(cfg->server.deflate_min_size, 256);
    ck_assert_uint_eq(cfg->server.shutdown_timeout_ms, 10000);
    ck_assert_uint_eq(cfg->server.max_header_size, 8192);
    ck_assert(!cfg->server.reuse_port);
    ck_assert_uint_eq(cfg->server.max_connections_per_ip, 0);
    ck_assert_int_eq(cfg->server.backlog, 1024);
    ck_assert(cfg->admin.enabled);
    ck_assert_str_eq(cfg->admin.listen_host, "127.0.0.1");
    ck_assert_uint_eq(cfg->admin.listen_port, 9090);
    ck_assert_int_eq(cfg->log.level, WSHUB_LOG_INFO);
    ck_assert(cfg->metrics.tenant_labels);
    ck_assert_ptr_null(cfg->plugin_dir);
}

/* ------------------------------------------------------------------------------------------ */
/* Scalar parsers                                                                              */
/* ------------------------------------------------------------------------------------------ */

static const struct {
    const char *in;
    int rc;
    int64_t out;
} int_rows[] = {
    {"0", 0, 0},
    {"-5", 0, -5},
    {"+7", 0, 7},
    {"010", 0, 10},
    {"9223372036854775807", 0, INT64_MAX},
    {"-9223372036854775808", 0, INT64_MIN},
    {"9223372036854775808", -1, 0},
    {"-9223372036854775809", -1, 0},
    {"", -1, 0},
    {"-", -1, 0},
    {"1a", -1, 0},
    {" 1", -1, 0},
    {"1 ", -1, 0},
    {"0x10", -1, 0},
    {"1.0", -1, 0},
    {"1_000", -1, 0},
};

START_TEST(test_parse_int_table)
{
    int64_t v = 12345;
    ck_assert_msg(config__parse_int(int_rows[_i].in, &v) == int_rows[_i].rc, "input '%s'",
                  int_rows[_i].in);
    if (int_rows[_i].rc == 0)
        ck_assert_int_eq(v, int_rows[_i].out);
    else
        ck_assert_int_eq(v, 12345); /* untouched on failure */
}
END_TEST

static const struct {
    const char *in;
    int rc;
    uint64_t out;
} dur_rows[] = {
    {"1500", 0, 1500},
    {"0", 0, 0},
    {"250ms", 0, 250},
    {"30s", 0, 30000},
    {"5m", 0, 300000},
    {"2h", 0, 7200000},
    {"18446744073709551615", 0, UINT64_MAX},
    {"18446744073709551615s", -1, 0},
    {"18446744073709551616", -1, 0},
    {"1.5s", -1, 0},
    {"5 s", -1, 0},
    {"s", -1, 0},
    {"5S", -1, 0},
    {"5Ms", -1, 0},
    {"-1s", -1, 0},
    {"5d", -1, 0},
    {"", -1, 0},
    {"5sec", -1, 0},
};

START_TEST(test_parse_duration_table)
{
    uint64_t v = 777;
    ck_assert_msg(config__parse_duration_ms(dur_rows[_i].in, &v) == dur_rows[_i].rc, "input '%s'",
                  dur_rows[_i].in);
    if (dur_rows[_i].rc == 0)
        ck_assert_uint_eq(v, dur_rows[_i].out);
}
END_TEST

static const struct {
    const char *in;
    int rc;
    uint64_t out;
} size_rows[] = {
    {"1024", 0, 1024},
    {"0", 0, 0},
    {"10B", 0, 10},
    {"10KB", 0, 10000},
    {"1MB", 0, 1000000},
    {"2GB", 0, 2000000000},
    {"64KiB", 0, 65536},
    {"1MiB", 0, 1048576},
    {"1GiB", 0, 1073741824},
    {"17179869183GiB", 0, 17179869183ull * 1073741824ull},
    {"17179869184GiB", -1, 0},
    {"10kb", -1, 0},
    {"10Kib", -1, 0},
    {"10kB", -1, 0},
    {"1 KiB", -1, 0},
    {"KiB", -1, 0},
    {"1.5MiB", -1, 0},
    {"-1", -1, 0},
    {"1TiB", -1, 0},
    {"", -1, 0},
};

START_TEST(test_parse_size_table)
{
    uint64_t v = 777;
    ck_assert_msg(config__parse_size(size_rows[_i].in, &v) == size_rows[_i].rc, "input '%s'",
                  size_rows[_i].in);
    if (size_rows[_i].rc == 0)
        ck_assert_uint_eq(v, size_rows[_i].out);
}
END_TEST

static const struct {
    const char *in;
    int rc;
    bool out;
} bool_rows[] = {
    {"true", 0, true}, {"True", 0, true},   {"TRUE", 0, true},   {"yes", 0, true},
    {"on", 0, true},   {"false", 0, false}, {"False", 0, false}, {"no", 0, false},
    {"off", 0, false}, {"Off", 0, false},   {"1", -1, false},    {"0", -1, false},
    {"", -1, false},   {"tru", -1, false},  {"y", -1, false},    {"true ", -1, false},
};

START_TEST(test_parse_bool_table)
{
    bool v = !bool_rows[_i].out;
    ck_assert_msg(config__parse_bool(bool_rows[_i].in, &v) == bool_rows[_i].rc, "input '%s'",
                  bool_rows[_i].in);
    if (bool_rows[_i].rc == 0)
        ck_assert(v == bool_rows[_i].out);
}
END_TEST

static const struct {
    const char *in;
    int rc;
    const char *host;
    uint16_t port;
} listen_rows[] = {
    {"0.0.0.0:8080", 0, "0.0.0.0", 8080},
    {"127.0.0.1:0", 0, "127.0.0.1", 0},
    {"localhost:65535", 0, "localhost", 65535},
    {"[::]:8080", 0, "::", 8080},
    {"[::1]:0", 0, "::1", 0},
    {"[fe80::1%eth0]:80", 0, "fe80::1%eth0", 80},
    {"my-host.example_1:443", 0, "my-host.example_1", 443},
    {"8080", -1, NULL, 0},
    {":8080", -1, NULL, 0},
    {"host:", -1, NULL, 0},
    {"host:65536", -1, NULL, 0},
    {"host:123456", -1, NULL, 0},
    {"host:-1", -1, NULL, 0},
    {"host:8x", -1, NULL, 0},
    {"::1:80", -1, NULL, 0},
    {"[::1]80", -1, NULL, 0},
    {"[::1]", -1, NULL, 0},
    {"[::1", -1, NULL, 0},
    {"[]:80", -1, NULL, 0},
    {"[zz]:80", -1, NULL, 0},
    {"[1.2.3.4]:80", -1, NULL, 0},
    {"a b:80", -1, NULL, 0},
    {"", -1, NULL, 0},
};

START_TEST(test_parse_listen_table)
{
    char *host = NULL;
    uint16_t port = 1;
    ck_assert_msg(config__parse_listen(listen_rows[_i].in, &host, &port) == listen_rows[_i].rc,
                  "input '%s'", listen_rows[_i].in);
    if (listen_rows[_i].rc == 0) {
        ck_assert_str_eq(host, listen_rows[_i].host);
        ck_assert_uint_eq(port, listen_rows[_i].port);
    } else {
        ck_assert_ptr_null(host);
    }
    free(host);
}
END_TEST

static const struct {
    const char *in;
    int rc;
    int out;
} level_rows[] = {
    {"err", 0, WSHUB_LOG_ERR},
    {"error", 0, WSHUB_LOG_ERR},
    {"warn", 0, WSHUB_LOG_WARN},
    {"warning", 0, WSHUB_LOG_WARN},
    {"notice", 0, WSHUB_LOG_NOTICE},
    {"info", 0, WSHUB_LOG_INFO},
    {"debug", 0, WSHUB_LOG_DEBUG},
    {"DEBUG", 0, WSHUB_LOG_DEBUG},
    {"verbose", -1, 0},
    {"", -1, 0},
    {"info ", -1, 0},
};

START_TEST(test_parse_log_level_table)
{
    int v = -1;
    ck_assert_msg(config__parse_log_level(level_rows[_i].in, &v) == level_rows[_i].rc, "input '%s'",
                  level_rows[_i].in);
    if (level_rows[_i].rc == 0)
        ck_assert_int_eq(v, level_rows[_i].out);
}
END_TEST

START_TEST(test_parsers_reject_null)
{
    int64_t i;
    uint64_t u;
    bool b;
    int l;
    char *h = NULL;
    uint16_t p;
    ck_assert_int_eq(config__parse_int(NULL, &i), -1);
    ck_assert_int_eq(config__parse_duration_ms(NULL, &u), -1);
    ck_assert_int_eq(config__parse_size(NULL, &u), -1);
    ck_assert_int_eq(config__parse_bool(NULL, &b), -1);
    ck_assert_int_eq(config__parse_log_level(NULL, &l), -1);
    ck_assert_int_eq(config__parse_listen(NULL, &h, &p), -1);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Defaults and the shipped files                                                              */
/* ------------------------------------------------------------------------------------------ */

START_TEST(test_empty_file_gives_defaults)
{
    static const char *const empties[] = {"", "# only a comment\n", "---\n", "~\n", "\n\n"};
    for (size_t i = 0; i < sizeof(empties) / sizeof(empties[0]); i++) {
        config_t cfg;
        ck_assert_msg(load(&cfg, empties[i]) == 0, "'%s': %s", empties[i], err);
        ck_assert_str_eq(err, "");
        assert_core_defaults(&cfg);
        ck_assert_str_eq(cfg.file, "t.yaml");
        ck_assert_uint_eq(cfg.n_plugins, 0);
        ck_assert_uint_eq(cfg.n_tenants, 0);
        ck_assert_ptr_nonnull(cfg.root);
        ck_assert_int_eq(cfg.root->kind, WSHUB_CFG_MAP);
        ck_assert_uint_eq(cfg.root->n, 0);
        config__free(&cfg);
        ck_assert(is_zeroed(&cfg));
    }
}
END_TEST

START_TEST(test_null_values_keep_defaults)
{
    config_t cfg;
    ck_assert_msg(load(&cfg, "server:\n  max_connections:\n  listen: ~\nadmin:\nlog: null\n"
                             "metrics: ~\nplugin_dir:\nplugins:\ntenants: ~\n") == 0,
                  "%s", err);
    assert_core_defaults(&cfg);
    ck_assert_uint_eq(cfg.n_plugins, 0);
    config__free(&cfg);
}
END_TEST

/* Compares two configs field by field (used for the shipped default against built-ins). */
static void assert_same_core(const config_t *a, const config_t *b)
{
    ck_assert_str_eq(a->server.listen_host, b->server.listen_host);
    ck_assert_uint_eq(a->server.listen_port, b->server.listen_port);
    ck_assert_str_eq(a->server.path, b->server.path);
    ck_assert_uint_eq(a->server.max_connections, b->server.max_connections);
    ck_assert_uint_eq(a->server.max_message_size, b->server.max_message_size);
    ck_assert_uint_eq(a->server.heartbeat_interval_ms, b->server.heartbeat_interval_ms);
    ck_assert_uint_eq(a->server.connection_timeout_ms, b->server.connection_timeout_ms);
    ck_assert_uint_eq(a->server.handshake_timeout_ms, b->server.handshake_timeout_ms);
    ck_assert_uint_eq(a->server.send_queue_max_bytes, b->server.send_queue_max_bytes);
    ck_assert_uint_eq(a->server.n_cors_origins, b->server.n_cors_origins);
    ck_assert(a->server.permessage_deflate == b->server.permessage_deflate);
    ck_assert_uint_eq(a->server.deflate_min_size, b->server.deflate_min_size);
    ck_assert_uint_eq(a->server.shutdown_timeout_ms, b->server.shutdown_timeout_ms);
    ck_assert_uint_eq(a->server.max_header_size, b->server.max_header_size);
    ck_assert(a->server.reuse_port == b->server.reuse_port);
    ck_assert_uint_eq(a->server.max_connections_per_ip, b->server.max_connections_per_ip);
    ck_assert_int_eq(a->server.backlog, b->server.backlog);
    ck_assert(a->admin.enabled == b->admin.enabled);
    ck_assert_str_eq(a->admin.listen_host, b->admin.listen_host);
    ck_assert_uint_eq(a->admin.listen_port, b->admin.listen_port);
    ck_assert_int_eq(a->log.level, b->log.level);
    ck_assert(a->metrics.tenant_labels == b->metrics.tenant_labels);
    ck_assert_ptr_null(a->plugin_dir);
    ck_assert_ptr_null(b->plugin_dir);
}

static void assert_echo_only(const config_t *cfg)
{
    ck_assert_uint_eq(cfg->n_plugins, 1);
    ck_assert_str_eq(cfg->plugins[0].name, "echo");
    ck_assert_ptr_null(cfg->plugins[0].path);
    ck_assert(!cfg->plugins[0].optional);
    ck_assert_str_eq(config__str(cfg->plugins[0].config, "path", "?"), "/echo");
    ck_assert_uint_eq(cfg->plugins[0].config->n, 1);
    ck_assert_uint_eq(cfg->n_tenants, 0);
}

START_TEST(test_shipped_default_yaml_loads)
{
    char path[PATH_MAX];
    config_t file, empty;
    snprintf(path, sizeof(path), "%s/etc/wshub.yaml", source_root());
    ck_assert_msg(config__load_file(&file, path, NULL, err, sizeof(err)) == 0, "%s", err);
    ck_assert_int_eq(load(&empty, ""), 0);
    /* The documented values must be the built-in defaults, key for key. */
    assert_same_core(&file, &empty);
    assert_core_defaults(&file);
    assert_echo_only(&file);
    ck_assert_str_eq(file.file, path);
    config__free(&file);
    config__free(&empty);
}
END_TEST

START_TEST(test_embedded_default_matches_file)
{
    config_t cfg;
    ck_assert_msg(config__load_default(&cfg, NULL, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(cfg.file, "<embedded>");
    assert_core_defaults(&cfg);
    assert_echo_only(&cfg);
    ck_assert_uint_eq(strlen(wshub_default_config), wshub_default_config_len);
    ck_assert_ptr_nonnull(strstr(wshub_default_config, "max_connections_per_ip"));
    config__free(&cfg);
}
END_TEST

START_TEST(test_embedded_default_takes_env)
{
    char *env[] = {"WSHUB_SERVER_LISTEN=127.0.0.1:0", "WSHUB_ADMIN_LISTEN=127.0.0.1:0", NULL};
    config_t cfg;
    ck_assert_msg(config__load_default(&cfg, env, err, sizeof(err)) == 0, "%s", err);
    ck_assert_str_eq(cfg.server.listen_host, "127.0.0.1");
    ck_assert_uint_eq(cfg.server.listen_port, 0);
    ck_assert_uint_eq(cfg.admin.listen_port, 0);
    config__free(&cfg);
}
END_TEST

START_TEST(test_integration_data_files)
{
    char path[PATH_MAX], want[PATH_MAX + 128];
    config_t cfg;

    snprintf(path, sizeof(path), "%s/tests/integration/data/valid.yaml", source_root());
    ck_assert_msg(config__load_file(&cfg, path, NULL, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(cfg.server.listen_port, 0);
    ck_assert_uint_eq(cfg.server.max_message_size, 65536);
    ck_assert_uint_eq(cfg.server.n_cors_origins, 2);
    ck_assert_int_eq(cfg.log.level, WSHUB_LOG_DEBUG);
    ck_assert(!cfg.metrics.tenant_labels);
    ck_assert_uint_eq(cfg.n_plugins, 1);
    ck_assert_uint_eq(cfg.n_tenants, 2);
    config__free(&cfg);

    snprintf(path, sizeof(path), "%s/tests/integration/data/typo.yaml", source_root());
    ck_assert_int_eq(config__load_file(&cfg, path, NULL, err, sizeof(err)), -1);
    snprintf(want, sizeof(want),
             "%s:4:3: unknown key 'max_conections' in 'server' (did you mean "
             "'max_connections'?)",
             path);
    ck_assert_str_eq(err, want);
    ck_assert(is_zeroed(&cfg));

    snprintf(path, sizeof(path), "%s/tests/integration/data/badtype.yaml", source_root());
    ck_assert_int_eq(config__load_file(&cfg, path, NULL, err, sizeof(err)), -1);
    snprintf(want, sizeof(want), "%s:4:20: server.max_connections: expected an integer, got 'lots'",
             path);
    ck_assert_str_eq(err, want);
}
END_TEST

START_TEST(test_every_key_is_read)
{
    static const char yaml[] = "server:\n"
                               "  listen: '[::1]:9000'\n"
                               "  path: /socket\n"
                               "  max_connections: 50\n"
                               "  max_message_size: 64KiB\n"
                               "  heartbeat_interval: 1500\n"
                               "  connection_timeout: 2m\n"
                               "  handshake_timeout: 3s\n"
                               "  send_queue_max_bytes: 2MB\n"
                               "  cors_origins: [https://a.example, '*']\n"
                               "  permessage_deflate: off\n"
                               "  deflate_min_size: 0\n"
                               "  shutdown_timeout: 0\n"
                               "  max_header_size: 1MiB\n"
                               "  reuse_port: yes\n"
                               "  max_connections_per_ip: 7\n"
                               "  backlog: 65535\n"
                               "admin:\n"
                               "  enabled: false\n"
                               "  listen: localhost:1\n"
                               "log:\n"
                               "  level: warn\n"
                               "metrics:\n"
                               "  tenant_labels: False\n"
                               "plugin_dir: /opt/wshub/plugins\n"
                               "tenants:\n"
                               "  acme:\n"
                               "    max_connections: 10\n"
                               "    cors_origins: [https://acme.example]\n"
                               "  beta:\n"
                               "  'gamma co': {max_connections: 0}\n";
    config_t cfg;
    ck_assert_msg(load(&cfg, yaml) == 0, "%s", err);
    ck_assert_str_eq(cfg.server.listen_host, "::1");
    ck_assert_uint_eq(cfg.server.listen_port, 9000);
    ck_assert_str_eq(cfg.server.path, "/socket");
    ck_assert_uint_eq(cfg.server.max_connections, 50);
    ck_assert_uint_eq(cfg.server.max_message_size, 65536);
    ck_assert_uint_eq(cfg.server.heartbeat_interval_ms, 1500);
    ck_assert_uint_eq(cfg.server.connection_timeout_ms, 120000);
    ck_assert_uint_eq(cfg.server.handshake_timeout_ms, 3000);
    ck_assert_uint_eq(cfg.server.send_queue_max_bytes, 2000000);
    ck_assert_uint_eq(cfg.server.n_cors_origins, 2);
    ck_assert_str_eq(cfg.server.cors_origins[0], "https://a.example");
    ck_assert_str_eq(cfg.server.cors_origins[1], "*");
    ck_assert(!cfg.server.permessage_deflate);
    ck_assert_uint_eq(cfg.server.deflate_min_size, 0);
    ck_assert_uint_eq(cfg.server.shutdown_timeout_ms, 0);
    ck_assert_uint_eq(cfg.server.max_header_size, 1048576);
    ck_assert(cfg.server.reuse_port);
    ck_assert_uint_eq(cfg.server.max_connections_per_ip, 7);
    ck_assert_int_eq(cfg.server.backlog, 65535);
    ck_assert(!cfg.admin.enabled);
    ck_assert_str_eq(cfg.admin.listen_host, "localhost");
    ck_assert_uint_eq(cfg.admin.listen_port, 1);
    ck_assert_int_eq(cfg.log.level, WSHUB_LOG_WARN);
    ck_assert(!cfg.metrics.tenant_labels);
    ck_assert_str_eq(cfg.plugin_dir, "/opt/wshub/plugins");
    ck_assert_uint_eq(cfg.n_tenants, 3);
    ck_assert_str_eq(cfg.tenants[0].name, "acme");
    ck_assert_uint_eq(cfg.tenants[0].max_connections, 10);
    ck_assert_uint_eq(cfg.tenants[0].n_cors_origins, 1);
    ck_assert_str_eq(cfg.tenants[0].cors_origins[0], "https://acme.example");
    ck_assert_str_eq(cfg.tenants[1].name, "beta");
    ck_assert_uint_eq(cfg.tenants[1].max_connections, 0);
    ck_assert_uint_eq(cfg.tenants[1].n_cors_origins, 0);
    ck_assert_str_eq(cfg.tenants[2].name, "gamma co");
    config__free(&cfg);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* The tree: marks and syntax                                                                  */
/* ------------------------------------------------------------------------------------------ */

START_TEST(test_tree_records_marks_and_styles)
{
    static const char yaml[] = "a:\n  b: 'x'\n  c: [1, ~, \"\"]\n  d:\n  e: |\n    text\n";
    struct wshub_cfg *root;
    ck_assert_int_eq(config__parse_tree("m.yaml", yaml, strlen(yaml), &root, err, sizeof(err)), 0);
    ck_assert_ptr_nonnull(root);
    ck_assert_str_eq(root->where, "m.yaml:1:1");
    const struct wshub_cfg *a = config__get(root, "a");
    ck_assert_str_eq(a->where, "m.yaml:2:3");
    ck_assert_str_eq(a->key_where[1], "m.yaml:3:3");
    const struct wshub_cfg *b = config__get(a, "b");
    ck_assert_str_eq(b->where, "m.yaml:2:6");
    ck_assert(b->is_quoted && !b->is_null);
    const struct wshub_cfg *c = config__get(a, "c");
    ck_assert_int_eq(c->kind, WSHUB_CFG_LIST);
    ck_assert_uint_eq(c->n, 3);
    ck_assert_str_eq(c->items[1]->where, "m.yaml:3:10");
    ck_assert(c->items[1]->is_null);
    ck_assert(!c->items[2]->is_null && c->items[2]->is_quoted); /* "" is a string */
    ck_assert_str_eq(c->items[2]->scalar, "");
    const struct wshub_cfg *d = config__get(a, "d");
    ck_assert(d->is_null);
    ck_assert_str_eq(d->scalar, "");
    const struct wshub_cfg *e = config__get(a, "e");
    ck_assert_str_eq(e->scalar, "text\n");
    ck_assert(e->is_quoted);
    config__node_free(root);
}
END_TEST

START_TEST(test_long_file_name_keeps_line_and_column)
{
    char name[300];
    config_t cfg;
    memset(name, 'x', sizeof(name) - 1);
    name[sizeof(name) - 1] = '\0';
    ck_assert_int_eq(config__load_string(&cfg, name, "a: 1\n", 5, NULL, err, sizeof(err)), -1);
    ck_assert_str_eq(err + strlen(err) - strlen(":1:1: unknown top-level key 'a'"),
                     ":1:1: unknown top-level key 'a'");
    ck_assert(strncmp(err, "...xxx", 6) == 0);
}
END_TEST

static const struct {
    const char *yaml;
    const char *msg;
} syntax_rows[] = {
    {"server:\n  listen: [1, 2\n",
     "t.yaml:3:1: did not find expected ',' or ']' (while parsing a flow sequence)"},
    {"a: b: c\n", "t.yaml:1:5: mapping values are not allowed in this context"},
    {"server:\n\tlisten: x\n",
     "t.yaml:2:1: found character that cannot start any token (while scanning for the next "
     "token)"},
    {"a: 'unterminated\n",
     "t.yaml:2:1: found unexpected end of stream (while scanning a quoted scalar)"},
    {"a: 1\n b: 2\n", "t.yaml:2:3: mapping values are not allowed in this context"},
    {"a: 1\nb: \xff\n", "t.yaml:2:4: invalid leading UTF-8 octet (0xFF)"},
    {"a: 1\nb: x\x01y\n", "t.yaml:2:5: control characters are not allowed (0x1)"},
    {"server:\n  backlog: 1\n  backlog: 2\n",
     "t.yaml:3:3: duplicate key 'backlog' (first at t.yaml:2:3)"},
    {"log: {}\nserver: {}\nlog: {}\nlog: {}\n",
     "t.yaml:3:1: duplicate key 'log' (first at t.yaml:1:1)"},
    {"plugins:\n  - name: a\n    config: {x: 1, y: 2, x: 3}\n",
     "t.yaml:3:26: duplicate key 'x' (first at t.yaml:3:14)"},
    {"a: &x 1\nb: *x\n", "t.yaml:2:4: aliases are not supported"},
    {"*x : 1\n", "t.yaml:1:1: aliases are not supported"},
    {"? [a]\n: 1\n", "t.yaml:1:3: mapping keys must be scalars"},
    {"{a: 1}: 2\n", "t.yaml:1:1: mapping keys must be scalars"},
    {"a: 1\n---\nb: 2\n", "t.yaml:2:1: multiple documents are not supported"},
    {"--- 1\n--- 2\n", "t.yaml:2:1: multiple documents are not supported"},
    {"a: \"x\\0y\"\n", "t.yaml:1:4: NUL character in a scalar is not allowed"},
    {"\"k\\0\": 1\n", "t.yaml:1:1: NUL character in a scalar is not allowed"},
};

START_TEST(test_syntax_errors)
{
    config_t cfg;
    ck_assert_int_eq(load(&cfg, syntax_rows[_i].yaml), -1);
    ck_assert_str_eq(err, syntax_rows[_i].msg);
    ck_assert(is_zeroed(&cfg));
    config__free(&cfg); /* freeing again after a failure is safe */
}
END_TEST

START_TEST(test_nesting_depth_is_bounded)
{
    char yaml[256];
    config_t cfg;
    size_t n = 70, o = 0;
    o += (size_t)snprintf(yaml, sizeof(yaml), "a: ");
    for (size_t i = 0; i < n; i++)
        yaml[o++] = '[';
    for (size_t i = 0; i < n; i++)
        yaml[o++] = ']';
    yaml[o++] = '\n';
    yaml[o] = '\0';
    ck_assert_int_eq(load(&cfg, yaml), -1);
    /* The root map is depth 0, "a"'s list depth 1: the 65th '[' (column 68) is too deep. */
    ck_assert_str_eq(err, "t.yaml:1:68: nesting deeper than 64 levels");
}
END_TEST

START_TEST(test_many_keys_duplicate_found)
{
    /* 5000 distinct keys plus one repeat at the end: the sort-based check must find it. */
    size_t cap = 5001 * 16, o = 0;
    char *yaml = malloc(cap);
    struct wshub_cfg *root;
    ck_assert_ptr_nonnull(yaml);
    for (int i = 0; i < 5000; i++)
        o += (size_t)snprintf(yaml + o, cap - o, "k%d: %d\n", i, i);
    o += (size_t)snprintf(yaml + o, cap - o, "k17: x\n");
    ck_assert_int_eq(config__parse_tree("big", yaml, o, &root, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "big:5001:1: duplicate key 'k17' (first at big:18:1)");
    ck_assert_ptr_null(root);
    free(yaml);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Schema errors: one row per message                                                          */
/* ------------------------------------------------------------------------------------------ */

static const struct {
    const char *yaml;
    const char *msg;
} schema_rows[] = {
    {"server:\n  max_conections: 5\n",
     "t.yaml:2:3: unknown key 'max_conections' in 'server' (did you mean 'max_connections'?)"},
    {"server:\n  max_connections: abc\n",
     "t.yaml:2:20: server.max_connections: expected an integer, got 'abc'"},
    {"server:\n  max_connections: 0\n",
     "t.yaml:2:20: server.max_connections: must be between 1 and 10000000, got '0'"},
    {"server:\n  max_connections: 99999999999999999999999\n",
     "t.yaml:2:20: server.max_connections: must be between 1 and 10000000, got "
     "'99999999999999999999999'"},
    {"server:\n  max_connections: [1]\n",
     "t.yaml:2:20: server.max_connections: expected a scalar value, got a list"},
    {"server:\n  max_message_size: 100\n",
     "t.yaml:2:21: server.max_message_size: must be between 125 bytes and 1GiB, got '100'"},
    {"server:\n  max_message_size: 2GiB\n",
     "t.yaml:2:21: server.max_message_size: must be between 125 bytes and 1GiB, got '2GiB'"},
    {"server:\n  max_message_size: 99999999999GiB\n",
     "t.yaml:2:21: server.max_message_size: must be between 125 bytes and 1GiB, got "
     "'99999999999GiB'"},
    {"server:\n  max_message_size: 10kb\n",
     "t.yaml:2:21: server.max_message_size: expected a size (bytes, or with B, KB, MB, GB, KiB, "
     "MiB, GiB), got '10kb'"},
    {"server:\n  heartbeat_interval: 50ms\n",
     "t.yaml:2:23: server.heartbeat_interval: must be between 100ms and 1h, got '50ms'"},
    {"server:\n  heartbeat_interval: 1.5s\n",
     "t.yaml:2:23: server.heartbeat_interval: expected a duration (milliseconds, or with ms, s, "
     "m, h), got '1.5s'"},
    {"server:\n  connection_timeout: 25h\n",
     "t.yaml:2:23: server.connection_timeout: must be between 100ms and 24h, got '25h'"},
    {"server:\n  handshake_timeout: 10m\n",
     "t.yaml:2:22: server.handshake_timeout: must be between 100ms and 5m, got '10m'"},
    {"server:\n  send_queue_max_bytes: 1000\n",
     "t.yaml:2:25: server.send_queue_max_bytes: must be between 1KiB and 1GiB, got '1000'"},
    {"server:\n  deflate_min_size: 2GB\n",
     "t.yaml:2:21: server.deflate_min_size: must be between 0 and 1GiB, got '2GB'"},
    {"server:\n  shutdown_timeout: 2h\n",
     "t.yaml:2:21: server.shutdown_timeout: must be between 0 and 1h, got '2h'"},
    {"server:\n  max_header_size: 2MiB\n",
     "t.yaml:2:20: server.max_header_size: must be between 1KiB and 1MiB, got '2MiB'"},
    {"server:\n  max_connections_per_ip: -1\n",
     "t.yaml:2:27: server.max_connections_per_ip: must be between 0 and 10000000, got '-1'"},
    {"server:\n  backlog: 70000\n",
     "t.yaml:2:12: server.backlog: must be between 1 and 65535, got '70000'"},
    {"server:\n  listen: 8080\n",
     "t.yaml:2:11: server.listen: expected host:port (e.g. 0.0.0.0:8080 or [::1]:8080), got "
     "'8080'"},
    {"server:\n  listen: '::1:80'\n",
     "t.yaml:2:11: server.listen: expected host:port (e.g. 0.0.0.0:8080 or [::1]:8080), got "
     "'::1:80'"},
    {"server:\n  path: ws\n",
     "t.yaml:2:9: server.path: expected a URL path starting with '/', got 'ws'"},
    {"server:\n  path: /a b\n",
     "t.yaml:2:9: server.path: expected a URL path starting with '/', got '/a b'"},
    {"server:\n  permessage_deflate: maybe\n",
     "t.yaml:2:23: server.permessage_deflate: expected a boolean (true or false), got 'maybe'"},
    {"server:\n  reuse_port: {a: 1}\n",
     "t.yaml:2:15: server.reuse_port: expected a scalar value, got a mapping"},
    {"server:\n  cors_origins: https://a\n",
     "t.yaml:2:17: server.cors_origins: expected a list of strings, got 'https://a'"},
    {"server:\n  cors_origins: [a, {x: 1}]\n",
     "t.yaml:2:21: server.cors_origins[1]: expected an origin (a string without spaces), got a "
     "mapping"},
    {"server:\n  cors_origins: [a, ~]\n",
     "t.yaml:2:21: server.cors_origins[1]: expected an origin (a string without spaces), got "
     "null"},
    {"server:\n  cors_origins: ['a b']\n",
     "t.yaml:2:18: server.cors_origins[0]: expected an origin (a string without spaces), got "
     "'a b'"},
    {"server: [1, 2]\n", "t.yaml:1:9: server: expected a mapping, got a list"},
    {"admin:\n  enabled: 2\n",
     "t.yaml:2:12: admin.enabled: expected a boolean (true or false), got '2'"},
    {"admin:\n  listn: 1.2.3.4:5\n",
     "t.yaml:2:3: unknown key 'listn' in 'admin' (did you mean 'listen'?)"},
    {"admin:\n  listen: 1.2.3.4:99999\n",
     "t.yaml:2:11: admin.listen: expected host:port (e.g. 0.0.0.0:8080 or [::1]:8080), got "
     "'1.2.3.4:99999'"},
    {"log:\n  level: verbose\n",
     "t.yaml:2:10: log.level: expected a log level (err, warn, notice, info, debug), got "
     "'verbose'"},
    {"log: debug\n", "t.yaml:1:6: log: expected a mapping, got 'debug'"},
    {"metrics:\n  tenant_label: true\n",
     "t.yaml:2:3: unknown key 'tenant_label' in 'metrics' (did you mean 'tenant_labels'?)"},
    {"sever:\n  listen: 1.2.3.4:5\n",
     "t.yaml:1:1: unknown top-level key 'sever' (did you mean 'server'?)"},
    {"foo: 1\n", "t.yaml:1:1: unknown top-level key 'foo' (did you mean 'log'?)"},
    {"zzzzzz: 1\n", "t.yaml:1:1: unknown top-level key 'zzzzzz'"},
    {"- a\n- b\n", "t.yaml:1:1: the top level must be a mapping, got a list"},
    {"hello\n", "t.yaml:1:1: the top level must be a mapping, got 'hello'"},
    {"plugin_dir: ''\n", "t.yaml:1:13: plugin_dir: expected a non-empty path"},
    {"plugin_dir: [a]\n", "t.yaml:1:13: plugin_dir: expected a scalar value, got a list"},
    {"plugins: {a: 1}\n", "t.yaml:1:10: plugins: expected a list, got a mapping"},
    {"plugins:\n  - echo\n",
     "t.yaml:2:5: plugins[0]: expected a mapping with at least 'name', got 'echo'"},
    {"plugins:\n  - path: /x.so\n", "t.yaml:2:5: plugins[0]: missing required key 'name'"},
    {"plugins:\n  - name: echo\n  - {}\n", "t.yaml:3:5: plugins[1]: missing required key 'name'"},
    {"plugins:\n  - name: Echo\n",
     "t.yaml:2:11: plugins[0].name: expected a plugin name ([a-z0-9_]+, at most 63 characters), "
     "got 'Echo'"},
    {"plugins:\n  - name: "
     "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
     "t.yaml:2:11: plugins[0].name: expected a plugin name ([a-z0-9_]+, at most 63 characters), "
     "got 'aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa'"},
    {"plugins:\n  - name: ~\n",
     "t.yaml:2:11: plugins[0].name: expected a plugin name ([a-z0-9_]+, at most 63 characters), "
     "got null"},
    {"plugins:\n  - name: echo\n    confg: {}\n",
     "t.yaml:3:5: unknown key 'confg' in 'plugins[0]' (did you mean 'config'?)"},
    {"plugins:\n  - name: echo\n    config: [1]\n",
     "t.yaml:3:13: plugins[0].config: expected a mapping, got a list"},
    {"plugins:\n  - name: echo\n    optional: sure\n",
     "t.yaml:3:15: plugins[0].optional: expected a boolean (true or false), got 'sure'"},
    {"plugins:\n  - name: echo\n    path: ''\n",
     "t.yaml:3:11: plugins[0].path: expected a file path, got ''"},
    {"plugins:\n  - name: echo\n  - name: rooms\n  - name: echo\n",
     "t.yaml:4:11: duplicate plugin 'echo' (first at t.yaml:2:11)"},
    {"tenants: [a]\n", "t.yaml:1:10: tenants: expected a mapping of tenant names, got a list"},
    {"tenants:\n  acme:\n    max_conns: 5\n",
     "t.yaml:3:5: unknown key 'max_conns' in 'tenants.acme'"},
    {"tenants:\n  acme:\n    max_connection: 5\n",
     "t.yaml:3:5: unknown key 'max_connection' in 'tenants.acme' (did you mean "
     "'max_connections'?)"},
    {"tenants:\n  acme:\n    max_connections: -1\n",
     "t.yaml:3:22: tenants.acme.max_connections: must be between 0 and 10000000, got '-1'"},
    {"tenants:\n  acme: 5\n", "t.yaml:2:9: tenants.acme: expected a mapping, got '5'"},
    {"tenants:\n  '': {}\n",
     "t.yaml:2:3: tenants: invalid tenant name '' (1 to 255 printable characters)"},
    {"server:\n  path: \"/a\\nb\"\n",
     "t.yaml:2:9: server.path: expected a URL path starting with '/', got '/a?b'"},
};

START_TEST(test_schema_errors)
{
    config_t cfg;
    ck_assert_int_eq(load(&cfg, schema_rows[_i].yaml), -1);
    ck_assert_str_eq(err, schema_rows[_i].msg);
    ck_assert(is_zeroed(&cfg));
}
END_TEST

START_TEST(test_long_value_is_cut_in_message)
{
    char yaml[512];
    config_t cfg;
    memset(yaml, 0, sizeof(yaml));
    strcpy(yaml, "server:\n  backlog: ");
    memset(yaml + strlen(yaml), '9', 200);
    strcat(yaml, "x\n");
    ck_assert_int_eq(load(&cfg, yaml), -1);
    ck_assert_str_eq(err, "t.yaml:2:12: server.backlog: expected an integer, got "
                          "'9999999999999999999999999999999999999999999999999999999999999999...'");
}
END_TEST

START_TEST(test_err_buffer_small_or_null)
{
    config_t cfg;
    char small[8];
    ck_assert_int_eq(config__load_string(&cfg, "t.yaml", "foo: 1", 6, NULL, small, sizeof(small)),
                     -1);
    ck_assert_str_eq(small, "t.yaml:");
    ck_assert_int_eq(config__load_string(&cfg, "t.yaml", "foo: 1", 6, NULL, NULL, 0), -1);
    ck_assert(is_zeroed(&cfg));
}
END_TEST

START_TEST(test_missing_file)
{
    config_t cfg;
    ck_assert_int_eq(config__load_file(&cfg, "/nonexistent/wshub.yaml", NULL, err, sizeof(err)),
                     -1);
    ck_assert_str_eq(err, "/nonexistent/wshub.yaml: cannot open: No such file or directory");
    ck_assert(is_zeroed(&cfg));
    config__free(&cfg);
}
END_TEST

START_TEST(test_directory_is_not_a_file)
{
    config_t cfg;
    ck_assert_int_eq(config__load_file(&cfg, "/", NULL, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "/: cannot read: Is a directory");
    ck_assert(is_zeroed(&cfg));
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Environment                                                                                 */
/* ------------------------------------------------------------------------------------------ */

START_TEST(test_env_overrides)
{
    char *env[] = {"PATH=/usr/bin",
                   "WSHUB_SERVER_MAX_CONNECTIONS=50000",
                   "WSHUB_SERVER_LISTEN=127.0.0.1:0",
                   "WSHUB_ADMIN_LISTEN=[::1]:9999",
                   "WSHUB_ADMIN_ENABLED=no",
                   "WSHUB_LOG_LEVEL=debug",
                   "WSHUB_SERVER_PERMESSAGE_DEFLATE=false",
                   "WSHUB_SERVER_CORS_ORIGINS= https://a.example , ,https://b.example,",
                   "WSHUB_SERVER_HEARTBEAT_INTERVAL=5s",
                   "WSHUB_SERVER_MAX_MESSAGE_SIZE=64KiB",
                   "WSHUB_METRICS_TENANT_LABELS=off",
                   "WSHUB_PLUGIN_DIR=build/plugins",
                   "WSHUB_SOURCE_ROOT=/somewhere",
                   "WSHUB_NO_DLCLOSE=1",
                   "WSHUB_TENANTS_ACME=1",
                   "WSHUB_SERVERX=1",
                   "WSHUB_NOEQUALS",
                   NULL};
    config_t cfg;
    ck_assert_msg(load_env(&cfg,
                           "server:\n  max_connections: 10\n  cors_origins: [x]\n"
                           "plugin_dir: /etc/x\n",
                           env) == 0,
                  "%s", err);
    ck_assert_uint_eq(cfg.server.max_connections, 50000);
    ck_assert_str_eq(cfg.server.listen_host, "127.0.0.1");
    ck_assert_uint_eq(cfg.server.listen_port, 0);
    ck_assert_str_eq(cfg.admin.listen_host, "::1");
    ck_assert_uint_eq(cfg.admin.listen_port, 9999);
    ck_assert(!cfg.admin.enabled);
    ck_assert_int_eq(cfg.log.level, WSHUB_LOG_DEBUG);
    ck_assert(!cfg.server.permessage_deflate);
    ck_assert_uint_eq(cfg.server.n_cors_origins, 2);
    ck_assert_str_eq(cfg.server.cors_origins[0], "https://a.example");
    ck_assert_str_eq(cfg.server.cors_origins[1], "https://b.example");
    ck_assert_uint_eq(cfg.server.heartbeat_interval_ms, 5000);
    ck_assert_uint_eq(cfg.server.max_message_size, 65536);
    ck_assert(!cfg.metrics.tenant_labels);
    /* From the environment, a relative directory stays relative to the working directory. */
    ck_assert_str_eq(cfg.plugin_dir, "build/plugins");
    /* Untouched keys keep their defaults. */
    ck_assert_uint_eq(cfg.server.backlog, 1024);
    config__free(&cfg);
}
END_TEST

START_TEST(test_env_empty_list_clears)
{
    char *env[] = {"WSHUB_SERVER_CORS_ORIGINS=", NULL};
    config_t cfg;
    ck_assert_msg(load_env(&cfg, "server:\n  cors_origins: [a, b]\n", env) == 0, "%s", err);
    ck_assert_uint_eq(cfg.server.n_cors_origins, 0);
    config__free(&cfg);
}
END_TEST

START_TEST(test_env_last_wins)
{
    char *env[] = {"WSHUB_SERVER_BACKLOG=5", "WSHUB_SERVER_BACKLOG=6", NULL};
    config_t cfg;
    ck_assert_msg(load_env(&cfg, "", env) == 0, "%s", err);
    ck_assert_int_eq(cfg.server.backlog, 6);
    config__free(&cfg);
}
END_TEST

static const struct {
    const char *var;
    const char *msg;
} env_rows[] = {
    {"WSHUB_SERVER_MAX_CONNECTIONS=abc",
     "env WSHUB_SERVER_MAX_CONNECTIONS: expected an integer, got 'abc'"},
    {"WSHUB_SERVER_MAX_CONNECTIONS=",
     "env WSHUB_SERVER_MAX_CONNECTIONS: expected an integer, got ''"},
    {"WSHUB_SERVER_MAX_CONNECTIONS=0",
     "env WSHUB_SERVER_MAX_CONNECTIONS: must be between 1 and 10000000, got '0'"},
    {"WSHUB_SERVER_MAX_CONECTIONS=5",
     "env WSHUB_SERVER_MAX_CONECTIONS: unknown key 'max_conections' in 'server' (did you mean "
     "'max_connections'?)"},
    {"WSHUB_SERVER_=5", "env WSHUB_SERVER_: unknown key '' in 'server'"},
    {"WSHUB_LOG_LEVL=debug",
     "env WSHUB_LOG_LEVL: unknown key 'levl' in 'log' (did you mean 'level'?)"},
    {"WSHUB_LOG_LEVEL=loud",
     "env WSHUB_LOG_LEVEL: expected a log level (err, warn, notice, info, debug), got 'loud'"},
    {"WSHUB_ADMIN_LISTEN=nope",
     "env WSHUB_ADMIN_LISTEN: expected host:port (e.g. 0.0.0.0:8080 or [::1]:8080), got 'nope'"},
    {"WSHUB_ADMIN_PORT=1", "env WSHUB_ADMIN_PORT: unknown key 'port' in 'admin'"},
    {"WSHUB_METRICS_TENANT_LABEL=1",
     "env WSHUB_METRICS_TENANT_LABEL: unknown key 'tenant_label' in 'metrics' (did you mean "
     "'tenant_labels'?)"},
    {"WSHUB_SERVER_PERMESSAGE_DEFLATE=1",
     "env WSHUB_SERVER_PERMESSAGE_DEFLATE: expected a boolean (true or false), got '1'"},
    {"WSHUB_SERVER_HEARTBEAT_INTERVAL=5 s",
     "env WSHUB_SERVER_HEARTBEAT_INTERVAL: expected a duration (milliseconds, or with ms, s, m, "
     "h), got '5 s'"},
    {"WSHUB_SERVER_CORS_ORIGINS=a,b c",
     "env WSHUB_SERVER_CORS_ORIGINS: expected an origin (a string without spaces), got 'b c'"},
    {"WSHUB_SERVER_PATH=ws",
     "env WSHUB_SERVER_PATH: expected a URL path starting with '/', got 'ws'"},
    {"WSHUB_PLUGIN_DIR=", "env WSHUB_PLUGIN_DIR: expected a non-empty path"},
};

START_TEST(test_env_errors)
{
    char *env[] = {"WSHUB_SERVER_BACKLOG=5", (char *)env_rows[_i].var, NULL};
    config_t cfg;
    ck_assert_int_eq(load_env(&cfg, "server:\n  backlog: 7\n", env), -1);
    ck_assert_str_eq(err, env_rows[_i].msg);
    ck_assert(is_zeroed(&cfg));
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Plugins                                                                                     */
/* ------------------------------------------------------------------------------------------ */

START_TEST(test_plugin_entries)
{
    static const char yaml[] = "plugins:\n"
                               "  - name: echo\n"
                               "    config:\n"
                               "      path: /echo\n"
                               "  - name: auth_jwt\n"
                               "    optional: true\n"
                               "    config: ~\n"
                               "  - {name: rooms2, path: rooms.so}\n";
    config_t cfg;
    ck_assert_msg(load(&cfg, yaml) == 0, "%s", err);
    ck_assert_uint_eq(cfg.n_plugins, 3);
    ck_assert_str_eq(cfg.plugins[0].name, "echo");
    ck_assert_str_eq(cfg.plugins[0].where, "t.yaml:2:5");
    ck_assert(!cfg.plugins[0].optional);
    ck_assert_str_eq(config__str(cfg.plugins[0].config, "path", NULL), "/echo");
    ck_assert_str_eq(cfg.plugins[1].name, "auth_jwt");
    ck_assert(cfg.plugins[1].optional);
    /* `config: ~` and no `config:` both become an empty mapping owned by the tree. */
    ck_assert_int_eq(cfg.plugins[1].config->kind, WSHUB_CFG_MAP);
    ck_assert_uint_eq(cfg.plugins[1].config->n, 0);
    ck_assert_str_eq(cfg.plugins[1].config->where, "t.yaml:7:13");
    ck_assert_int_eq(cfg.plugins[2].config->kind, WSHUB_CFG_MAP);
    ck_assert_uint_eq(cfg.plugins[2].config->n, 0);
    ck_assert_str_eq(cfg.plugins[2].config->where, "t.yaml:8:5");
    ck_assert_ptr_eq(cfg.plugins[2].config, config__get(cfg.root->items[0]->items[2], "config"));
    /* Loaded from a string (the embedded default), relative paths stay relative to the CWD. */
    ck_assert_str_eq(cfg.plugins[2].path, "rooms.so");
    ck_assert_ptr_null(cfg.plugins[0].path);
    config__free(&cfg);
}
END_TEST

/* A scratch directory with a config file in a subdirectory, removed by the fixture. */
static char tmpdir[PATH_MAX];
static char cfgpath[PATH_MAX + 32];

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    ck_assert_ptr_nonnull(f);
    ck_assert_int_eq(fputs(text, f) >= 0, 1);
    ck_assert_int_eq(fclose(f), 0);
}

static void tmp_setup(void)
{
    char sub[PATH_MAX + 8];
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/wshub-test-config-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(tmpdir));
    snprintf(sub, sizeof(sub), "%s/sub", tmpdir);
    ck_assert_int_eq(mkdir(sub, 0700), 0);
    snprintf(cfgpath, sizeof(cfgpath), "%s/sub/w.yaml", tmpdir);
    write_file(cfgpath, "plugin_dir: plugins\n"
                        "plugins:\n"
                        "  - name: a\n"
                        "    path: a.so\n"
                        "  - name: b\n"
                        "    path: /abs/b.so\n"
                        "  - name: c\n"
                        "  - name: d\n"
                        "    path: ../lib/d.so\n");
}

static void tmp_teardown(void)
{
    char sub[PATH_MAX + 8];
    unlink(cfgpath);
    snprintf(sub, sizeof(sub), "%s/sub", tmpdir);
    rmdir(sub);
    rmdir(tmpdir);
}

START_TEST(test_plugin_paths_relative_to_config_file)
{
    char want[PATH_MAX + 64];
    config_t cfg;
    ck_assert_msg(config__load_file(&cfg, cfgpath, NULL, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(cfg.n_plugins, 4);
    snprintf(want, sizeof(want), "%s/sub/a.so", tmpdir);
    ck_assert_str_eq(cfg.plugins[0].path, want);
    ck_assert_str_eq(cfg.plugins[1].path, "/abs/b.so");
    ck_assert_ptr_null(cfg.plugins[2].path);
    snprintf(want, sizeof(want), "%s/sub/../lib/d.so", tmpdir);
    ck_assert_str_eq(cfg.plugins[3].path, want);
    snprintf(want, sizeof(want), "%s/sub/plugins", tmpdir);
    ck_assert_str_eq(cfg.plugin_dir, want);
    config__free(&cfg);
}
END_TEST

START_TEST(test_plugin_paths_with_relative_config_path)
{
    char old[PATH_MAX], cwd[PATH_MAX], want[PATH_MAX + 64];
    config_t cfg;
    int rc;
    ck_assert_ptr_nonnull(getcwd(old, sizeof(old)));
    ck_assert_int_eq(chdir(tmpdir), 0);
    ck_assert_ptr_nonnull(getcwd(cwd, sizeof(cwd)));
    rc = config__load_file(&cfg, "sub/w.yaml", NULL, err, sizeof(err));
    ck_assert_int_eq(chdir(old), 0);
    ck_assert_msg(rc == 0, "%s", err);
    /* The directory is made absolute, so a later chdir() does not break plugin paths. */
    snprintf(want, sizeof(want), "%s/sub/a.so", cwd);
    ck_assert_str_eq(cfg.plugins[0].path, want);
    ck_assert_str_eq(cfg.file, "sub/w.yaml");
    config__free(&cfg);

    ck_assert_int_eq(chdir(cwd), 0);
    ck_assert_int_eq(chdir("sub"), 0);
    rc = config__load_file(&cfg, "w.yaml", NULL, err, sizeof(err));
    ck_assert_int_eq(chdir(old), 0);
    ck_assert_msg(rc == 0, "%s", err);
    ck_assert_str_eq(cfg.plugins[0].path, want);
    config__free(&cfg);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Plugin options                                                                              */
/* ------------------------------------------------------------------------------------------ */

static const wshub_opt_t opts[] = {
    {"path", WSHUB_OPT_STRING, "/echo", false, "the path"},
    {"max_size", WSHUB_OPT_SIZE, "64KiB", false, "largest message"},
    {"timeout", WSHUB_OPT_DURATION, "30s", false, "a timeout"},
    {"count", WSHUB_OPT_INT, NULL, false, "a count"},
    {"enabled", WSHUB_OPT_BOOL, "true", false, "a switch"},
    {"tags", WSHUB_OPT_LIST, "[a, b]", false, "some tags"},
    {"extra", WSHUB_OPT_MAP, NULL, false, "free-form"},
    {"anything", WSHUB_OPT_ANY, NULL, false, "anything"},
    {"secret", WSHUB_OPT_STRING, NULL, true, "required"},
    {NULL, 0, NULL, false, NULL},
};

/* Parses yaml as a plugin's config map and checks it against opts. */
static int check_yaml(const char *yaml, const wshub_opt_t *o, struct wshub_cfg **out)
{
    char perr[256];
    ck_assert_int_eq(config__parse_tree("t.yaml", yaml, strlen(yaml), out, perr, sizeof(perr)), 0);
    if (!*out)
        *out = config__empty_map();
    return config__check_options(*out, "echo", o, err, sizeof(err));
}

START_TEST(test_options_defaults_inserted)
{
    struct wshub_cfg *n;
    int64_t v;
    ck_assert_msg(check_yaml("secret: s3\ncount: 5\npath:\n", opts, &n) == 0, "%s", err);
    ck_assert_str_eq(config__str(n, "secret", NULL), "s3");
    /* `path:` (null) took the default in place. */
    ck_assert_str_eq(config__str(n, "path", NULL), "/echo");
    ck_assert_str_eq(config__get(n, "path")->where, "<default>");
    ck_assert_int_eq(config__int(n, "max_size", 0, &v), WSHUB_OK);
    ck_assert_int_eq(v, 65536);
    ck_assert_str_eq(config__get(n, "max_size")->where, "<default>");
    ck_assert_int_eq(config__int(n, "timeout", 0, &v), WSHUB_OK);
    ck_assert_int_eq(v, 30000);
    ck_assert_int_eq(config__int(n, "count", 0, &v), WSHUB_OK);
    ck_assert_int_eq(v, 5);
    ck_assert(config__bool(n, "enabled", false));
    const struct wshub_cfg *tags = config__get(n, "tags");
    ck_assert_int_eq(tags->kind, WSHUB_CFG_LIST);
    ck_assert_uint_eq(tags->n, 2);
    ck_assert_str_eq(tags->items[1]->scalar, "b");
    ck_assert_str_eq(tags->where, "<default>");
    ck_assert_str_eq(tags->items[0]->where, "<default>");
    /* No default: stays absent. */
    ck_assert_ptr_null(config__get(n, "extra"));
    ck_assert_ptr_null(config__get(n, "anything"));
    /* Checking again (reload of the same tree) changes nothing. */
    size_t before = n->n;
    ck_assert_int_eq(config__check_options(n, "echo", opts, err, sizeof(err)), 0);
    ck_assert_uint_eq(n->n, before);
    config__node_free(n);
}
END_TEST

START_TEST(test_options_into_empty_map)
{
    static const wshub_opt_t o[] = {
        {"m", WSHUB_OPT_MAP, "{x: 1}", false, NULL},
        {"l", WSHUB_OPT_LIST, "", false, NULL},
        {"a", WSHUB_OPT_ANY, "hello", false, NULL},
        {"s", WSHUB_OPT_SIZE, "1MiB", false, NULL},
        {NULL, 0, NULL, false, NULL},
    };
    struct wshub_cfg *n = config__empty_map();
    int64_t v;
    ck_assert_msg(config__check_options(n, "p", o, err, sizeof(err)) == 0, "%s", err);
    ck_assert_uint_eq(n->n, 4);
    ck_assert_int_eq(config__get(n, "m")->kind, WSHUB_CFG_MAP);
    ck_assert_str_eq(config__str(config__get(n, "m"), "x", NULL), "1");
    ck_assert_str_eq(config__get(n, "m")->key_where[0], "<default>");
    ck_assert_int_eq(config__get(n, "l")->kind, WSHUB_CFG_LIST);
    ck_assert_uint_eq(config__get(n, "l")->n, 0);
    ck_assert_str_eq(config__str(n, "a", NULL), "hello");
    ck_assert_int_eq(config__int(n, "s", 0, &v), WSHUB_OK);
    ck_assert_int_eq(v, 1048576);
    config__node_free(n);
}
END_TEST

START_TEST(test_options_from_loaded_config)
{
    config_t cfg;
    ck_assert_int_eq(load(&cfg, "plugins:\n  - name: echo\n    config:\n      secret: x\n"), 0);
    ck_assert_msg(config__check_options(cfg.plugins[0].config, "echo", opts, err, sizeof(err)) == 0,
                  "%s", err);
    ck_assert_str_eq(config__str(cfg.plugins[0].config, "path", NULL), "/echo");
    config__free(&cfg); /* the inserted defaults are freed with the tree */
}
END_TEST

static const struct {
    const char *yaml;
    const char *msg;
} opt_rows[] = {
    {"secret: s\npth: /x\n",
     "t.yaml:2:1: plugin echo: option pth: unknown option (did you mean 'path'? valid options: "
     "path, max_size, timeout, count, enabled, tags, extra, anything, secret)"},
    {"secret: s\nzzzzzz: 1\n",
     "t.yaml:2:1: plugin echo: option zzzzzz: unknown option (valid options: path, max_size, "
     "timeout, count, enabled, tags, extra, anything, secret)"},
    {"secret: s\ncount: abc\n",
     "t.yaml:2:8: plugin echo: option count: expected an integer, got 'abc'"},
    {"secret: s\ncount: 5s\n",
     "t.yaml:2:8: plugin echo: option count: expected an integer, got '5s'"},
    {"secret: s\nenabled: maybe\n",
     "t.yaml:2:10: plugin echo: option enabled: expected a boolean (true or false), got 'maybe'"},
    {"secret: s\ntimeout: 5x\n",
     "t.yaml:2:10: plugin echo: option timeout: expected a duration (milliseconds, or with ms, "
     "s, m, h), got '5x'"},
    {"secret: s\nmax_size: 1 MiB\n",
     "t.yaml:2:11: plugin echo: option max_size: expected a size (bytes, or with B, KB, MB, GB, "
     "KiB, MiB, GiB), got '1 MiB'"},
    {"secret: s\nmax_size: 9999999999GiB\n",
     "t.yaml:2:11: plugin echo: option max_size: expected a size (bytes, or with B, KB, MB, GB, "
     "KiB, MiB, GiB), got '9999999999GiB'"},
    {"secret: s\ntags: {a: 1}\n",
     "t.yaml:2:7: plugin echo: option tags: expected a list, got a mapping"},
    {"secret: s\ntags: [a, [b]]\n",
     "t.yaml:2:11: plugin echo: option tags: item 1: expected a scalar, got a list"},
    {"secret: s\nextra: [1]\n",
     "t.yaml:2:8: plugin echo: option extra: expected a mapping, got a list"},
    {"secret: s\npath: [1]\n", "t.yaml:2:7: plugin echo: option path: expected a string, got a "
                               "list"},
    {"count: 1\n", "t.yaml:1:1: plugin echo: option secret: required option is missing"},
    {"count: 1\nsecret: ~\n", "t.yaml:2:9: plugin echo: option secret: required option is missing"},
    {"[1, 2]\n", "t.yaml:1:1: plugin echo: config must be a mapping"},
};

START_TEST(test_options_errors)
{
    struct wshub_cfg *n;
    ck_assert_int_eq(check_yaml(opt_rows[_i].yaml, opts, &n), -1);
    ck_assert_str_eq(err, opt_rows[_i].msg);
    config__node_free(n);
}
END_TEST

START_TEST(test_options_none_declared)
{
    struct wshub_cfg *n;
    ck_assert_int_eq(check_yaml("a: 1\n", NULL, &n), -1);
    ck_assert_str_eq(err, "t.yaml:1:1: plugin echo: option a: unknown option (plugin echo takes "
                          "no options)");
    config__node_free(n);
    ck_assert_int_eq(check_yaml("", NULL, &n), 0);
    config__node_free(n);
    ck_assert_int_eq(config__check_options(NULL, "echo", opts, err, sizeof(err)), -1);
    ck_assert_str_eq(err, "<none>: plugin echo: config must be a mapping");
}
END_TEST

START_TEST(test_options_invalid_default_is_reported)
{
    static const wshub_opt_t bad[] = {
        {"n", WSHUB_OPT_INT, "ten", false, NULL},
        {NULL, 0, NULL, false, NULL},
    };
    static const wshub_opt_t bad_list[] = {
        {"l", WSHUB_OPT_LIST, "[a", false, NULL},
        {NULL, 0, NULL, false, NULL},
    };
    struct wshub_cfg *n;
    ck_assert_int_eq(check_yaml("{}", bad, &n), -1);
    ck_assert_str_eq(err, "t.yaml:1:1: plugin echo: option n: the plugin's default 'ten' is "
                          "invalid: expected an integer, got 'ten'");
    config__node_free(n);
    ck_assert_int_eq(check_yaml("{}", bad_list, &n), -1);
    ck_assert_str_eq(err, "t.yaml:1:1: plugin echo: option l: invalid default (<default>:2:1: "
                          "did not find expected ',' or ']' (while parsing a flow sequence))");
    config__node_free(n);
}
END_TEST

/* ------------------------------------------------------------------------------------------ */
/* Accessors                                                                                   */
/* ------------------------------------------------------------------------------------------ */

START_TEST(test_accessors)
{
    static const char yaml[] = "d: 30s\nsz: 1MiB\ni: 12\nneg: -5\nbad: abc\nnul: ~\n"
                               "b: yes\nnb: maybe\ns: text\nl: [1]\nhuge: 9999999999999999999\n";
    struct wshub_cfg *n;
    int64_t v;
    ck_assert_int_eq(config__parse_tree("t", yaml, strlen(yaml), &n, err, sizeof(err)), 0);
    ck_assert_int_eq(config__int(n, "d", 0, &v), WSHUB_OK);
    ck_assert_int_eq(v, 30000);
    ck_assert_int_eq(config__int(n, "sz", 0, &v), WSHUB_OK);
    ck_assert_int_eq(v, 1048576);
    ck_assert_int_eq(config__int(n, "i", 0, &v), WSHUB_OK);
    ck_assert_int_eq(v, 12);
    ck_assert_int_eq(config__int(n, "neg", 0, &v), WSHUB_OK);
    ck_assert_int_eq(v, -5);
    ck_assert_int_eq(config__int(n, "bad", 7, &v), WSHUB_ERR_INVAL);
    ck_assert_int_eq(v, 7);
    ck_assert_int_eq(config__int(n, "l", 7, &v), WSHUB_ERR_INVAL);
    ck_assert_int_eq(config__int(n, "huge", 7, &v), WSHUB_ERR_INVAL);
    ck_assert_int_eq(config__int(n, "nul", 8, &v), WSHUB_OK);
    ck_assert_int_eq(v, 8);
    ck_assert_int_eq(config__int(n, "absent", 9, &v), WSHUB_OK);
    ck_assert_int_eq(v, 9);
    ck_assert(config__bool(n, "b", false));
    ck_assert(config__bool(n, "nb", true));
    ck_assert(!config__bool(n, "nb", false));
    ck_assert(config__bool(n, "absent", true));
    ck_assert_str_eq(config__str(n, "s", "def"), "text");
    ck_assert_str_eq(config__str(n, "nul", "def"), "def");
    ck_assert_str_eq(config__str(n, "l", "def"), "def");
    ck_assert_str_eq(config__str(n, "absent", "def"), "def");
    ck_assert_ptr_null(config__get(n, "absent"));
    ck_assert_ptr_null(config__get(config__get(n, "s"), "x")); /* not a map */
    ck_assert_ptr_null(config__get(n, NULL));
    config__node_free(n);

    /* NULL nodes have no children. */
    ck_assert_ptr_null(config__get(NULL, "x"));
    ck_assert_str_eq(config__str(NULL, "x", "d"), "d");
    ck_assert_int_eq(config__int(NULL, "x", 3, &v), WSHUB_OK);
    ck_assert_int_eq(v, 3);
    ck_assert(config__bool(NULL, "x", true));
    config__node_free(NULL);
}
END_TEST

START_TEST(test_parse_tree_empty_and_errors)
{
    struct wshub_cfg *n = (struct wshub_cfg *)1;
    ck_assert_int_eq(config__parse_tree("e", "", 0, &n, err, sizeof(err)), 0);
    ck_assert_ptr_null(n);
    ck_assert_int_eq(config__parse_tree("e", "a: [", 4, &n, err, sizeof(err)), -1);
    ck_assert_ptr_null(n);
    /* libyaml ends an unterminated last line before reporting the end of the stream. */
    ck_assert_str_eq(err, "e:2:1: did not find expected node content (while parsing a flow node)");
}
END_TEST

/* ------------------------------------------------------------------------------------------ */

Suite *config_suite(void);

Suite *config_suite(void)
{
    Suite *s = suite_create("config");
    TCase *tc;

#define LOOP(name, fn, rows)                                                                       \
    do {                                                                                           \
        tc = tcase_create(name);                                                                   \
        tcase_add_loop_test(tc, fn, 0, (int)(sizeof(rows) / sizeof((rows)[0])));                   \
        suite_add_tcase(s, tc);                                                                    \
    } while (0)
#define ONE(name, fn)                                                                              \
    do {                                                                                           \
        tc = tcase_create(name);                                                                   \
        tcase_add_test(tc, fn);                                                                    \
        suite_add_tcase(s, tc);                                                                    \
    } while (0)

    LOOP("parse_int", test_parse_int_table, int_rows);
    LOOP("parse_duration", test_parse_duration_table, dur_rows);
    LOOP("parse_size", test_parse_size_table, size_rows);
    LOOP("parse_bool", test_parse_bool_table, bool_rows);
    LOOP("parse_listen", test_parse_listen_table, listen_rows);
    LOOP("parse_log_level", test_parse_log_level_table, level_rows);
    ONE("parsers_null", test_parsers_reject_null);
    ONE("defaults", test_empty_file_gives_defaults);
    ONE("null_values", test_null_values_keep_defaults);
    ONE("shipped_default", test_shipped_default_yaml_loads);
    ONE("embedded_default", test_embedded_default_matches_file);
    ONE("embedded_env", test_embedded_default_takes_env);
    ONE("integration_data", test_integration_data_files);
    ONE("every_key", test_every_key_is_read);
    ONE("tree_marks", test_tree_records_marks_and_styles);
    ONE("long_name", test_long_file_name_keeps_line_and_column);
    LOOP("syntax_errors", test_syntax_errors, syntax_rows);
    ONE("depth", test_nesting_depth_is_bounded);
    ONE("many_keys", test_many_keys_duplicate_found);
    LOOP("schema_errors", test_schema_errors, schema_rows);
    ONE("long_value", test_long_value_is_cut_in_message);
    ONE("err_buffer", test_err_buffer_small_or_null);
    ONE("missing_file", test_missing_file);
    ONE("directory", test_directory_is_not_a_file);
    ONE("env_overrides", test_env_overrides);
    ONE("env_empty_list", test_env_empty_list_clears);
    ONE("env_last_wins", test_env_last_wins);
    LOOP("env_errors", test_env_errors, env_rows);
    ONE("plugin_entries", test_plugin_entries);
    tc = tcase_create("plugin_paths");
    tcase_add_checked_fixture(tc, tmp_setup, tmp_teardown);
    tcase_add_test(tc, test_plugin_paths_relative_to_config_file);
    tcase_add_test(tc, test_plugin_paths_with_relative_config_path);
    suite_add_tcase(s, tc);
    ONE("options_defaults", test_options_defaults_inserted);
    ONE("options_empty_map", test_options_into_empty_map);
    ONE("options_loaded", test_options_from_loaded_config);
    LOOP("options_errors", test_options_errors, opt_rows);
    ONE("options_none", test_options_none_declared);
    ONE("options_bad_default", test_options_invalid_default_is_reported);
    ONE("accessors", test_accessors);
    ONE("parse_tree", test_parse_tree_empty_and_errors);
#undef LOOP
#undef ONE
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(config_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
