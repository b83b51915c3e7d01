/*
 * fake_host: a recording implementation of wshub_host_api_t for unit-testing a plugin without a
 * server. Link a plugin's sources with fake_host.c, call fake_host__load(&wshub_plugin_entry,
 * yaml) and then fire the hooks, routes and paths it registered; inspect what it sent, closed,
 * logged and registered.
 *
 * Connections are fake: fake_host__conn_new() creates one with an identity; everything the
 * plugin sends to it is recorded in its outbox (one string per message).
 */
#ifndef WSHUB_FAKE_HOST_H
#define WSHUB_FAKE_HOST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wshub/sdk.h>

#define FAKE_MAX_OUT 256

typedef struct fake_conn {
    uint64_t id;
    char tenant[64], user[64], path[128], remote[64], subprotocol[64];
    char *roles[16];
    size_t n_roles;
    char *metadata; /* JSON text, "{}" by default */
    bool closed;    /* conn_close was called */
    uint16_t close_code;
    char close_reason[128];
    char *out[FAKE_MAX_OUT]; /* messages sent to this connection, in order (NUL-terminated) */
    bool out_binary[FAKE_MAX_OUT];
    size_t n_out;
    void *state;  /* the plugin's conn_state_size bytes */
    bool in_auth; /* identity may be set */
    uint64_t created_ms;
} fake_conn_t;

/*
 * Loads the plugin: checks the descriptor header like the real loader, parses `yaml_config` (a
 * YAML mapping text for the plugin's `config:`, NULL = empty) with the real config module,
 * validates it against the declared options (inserting defaults) and calls init().
 * Returns init's result, or WSHUB_ERR_INVAL when the header or config is refused (the reason is in
 * fake_host__last_error()).
 */
int fake_host__load(const wshub_plugin_desc_t *desc, const char *yaml_config);
/* Calls start(). */
int fake_host__start(void);
/* Calls stop() and fini(), frees every fake object; the fake can be loaded again afterwards. */
void fake_host__unload(void);

const wshub_host_api_t *fake_host__api(void);
wshub_plugin_t *fake_host__plugin(void);
const char *fake_host__last_error(void); /* set_error text or loader refusal, "" if none */

/* Connections. tenant/user may be NULL (anonymous: tenant "public", user ""). */
fake_conn_t *fake_host__conn_new(const char *tenant, const char *user, const char *path);
/* The wshub_conn_t handle of a fake connection (what hooks/routes receive). */
wshub_conn_t *fake_host__handle(fake_conn_t *c);
/* Runs the WSHUB_EV_CONN_CLOSE hooks and forgets the connection (its id no longer resolves). */
void fake_host__conn_drop(fake_conn_t *c, uint16_t code);
void fake_host__conn_clear_out(fake_conn_t *c);
/* The last message sent to c, or NULL. */
const char *fake_host__last_out(const fake_conn_t *c);

/* Fire events through the registered hook chains (priority order). Return the chain result. */
int fake_host__fire_auth(fake_conn_t *c, const char *path, const char *query,
                         const wshub_header_t *headers, size_t n_headers, int *status,
                         const char **reason);
int fake_host__fire_open(fake_conn_t *c);
int fake_host__fire_tick(uint64_t now_ms);
/* Delivers a client text message like the core would: MESSAGE_IN hooks, then the route for its
 * JSON "type" (the fake parses the envelope with json-c), or the raw path handler when c's path
 * is a registered raw path. Replies that the host would make on a negative return are recorded
 * in c's outbox like the real core ({"type":"error",...}). Returns the handler's result, or
 * WSHUB_ERR_NOTFOUND when nothing handles it (an `unknown_type` error is recorded). */
int fake_host__deliver(fake_conn_t *c, const char *text);
int fake_host__deliver_binary(fake_conn_t *c, const void *data, size_t len);

/* Runs posted callbacks and due timers (the fake clock is advanced by `ms` first). */
void fake_host__advance(uint64_t ms);
uint64_t fake_host__now(void);

/* Registrations seen. */
bool fake_host__has_route(const char *type);
bool fake_host__has_path(const char *path);
const void *fake_host__service(const char *name, uint32_t min_version);
/* Log lines recorded ("LEVEL message"), oldest first. */
size_t fake_host__n_logs(void);
const char *fake_host__log_at(size_t i);
bool fake_host__log_contains(const char *needle);
/* Metric values recorded via the metric_* slots (counter/gauge value, histogram count). */
double fake_host__metric(const char *name, const char *const *labels);

#endif
