/*
 * test_fake_host: the fake host that plugin tests rely on behaves like the real host: loader
 * checks, registration only in init, hook order and chain results, envelope errors and reply
 * texts, tenant scope, groups, buffer leak detection, timers on the fake clock, post() from
 * another thread, metrics, stop/stopped, welcome fields, per-connection state, config access.
 *
 * The plugin under test is a "probe" defined here: its init runs a test-chosen setup function
 * and keeps host/self in globals so each test can call slots directly.
 */
#include <check.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <wshub/sdk.h>

#include "fake_host.h"

/* ---- the probe plugin ---- */

static const wshub_host_api_t *H;
static wshub_plugin_t *P;
static const wshub_cfg_t *C;     /* the config node init received */
static int (*probe_setup)(void); /* runs inside init */
static int probe_stop_rc;        /* what stop() returns */
static int probe_fini_calls;
static char probe_trace[256]; /* hook/handler call order */

static void trace(const char *s)
{
    size_t n = strlen(probe_trace);
    snprintf(probe_trace + n, sizeof(probe_trace) - n, "%s%s", n ? "," : "", s);
}

static const wshub_opt_t probe_options[] = {
    {"name", WSHUB_OPT_STRING, "probe", false, "a string"},
    {"interval", WSHUB_OPT_DURATION, "30s", false, "a duration"},
    {"limit", WSHUB_OPT_SIZE, NULL, false, "a size"},
    {"enabled", WSHUB_OPT_BOOL, "yes", false, "a boolean"},
    {"items", WSHUB_OPT_LIST, NULL, false, "a list"},
    {NULL, 0, NULL, false, NULL},
};

static int probe_init(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                      void **state)
{
    H = host;
    P = self;
    C = cfg;
    *state = &probe_fini_calls; /* any non-NULL state: fini must run after a failed init */
    return probe_setup ? probe_setup() : WSHUB_OK;
}

static int probe_stop(wshub_plugin_t *self, void *state)
{
    (void)self, (void)state;
    return probe_stop_rc;
}

static void probe_fini(wshub_plugin_t *self, void *state)
{
    (void)self, (void)state;
    probe_fini_calls++;
}

#define PROBE_HDR                                                                                  \
    {                                                                                              \
        WSHUB_PLUGIN_MAGIC, WSHUB_SDK_ABI_MAJOR, WSHUB_SDK_ABI_MINOR,                              \
            (uint32_t)sizeof(wshub_plugin_desc_t), 0                                               \
    }

static const char *const probe_provides[] = {"svc", NULL};

static const wshub_plugin_desc_t probe = {
    .hdr = PROBE_HDR,
    .name = "probe",
    .options = probe_options,
    .provides = probe_provides,
    .conn_state_size = 16,
    .init = probe_init,
    .stop = probe_stop,
    .fini = probe_fini,
};
static const wshub_plugin_desc_t probe_system = {
    .hdr = PROBE_HDR,
    .name = "probe_sys",
    .flags = WSHUB_PLUGIN_SYSTEM_SCOPE,
    .init = probe_init,
    .fini = probe_fini,
};

static void reset(void)
{
    H = NULL;
    P = NULL;
    C = NULL;
    probe_setup = NULL;
    probe_stop_rc = WSHUB_OK;
    probe_fini_calls = 0;
    probe_trace[0] = '\0';
}

static void load_probe(const wshub_plugin_desc_t *d, int (*setup)(void))
{
    probe_setup = setup;
    ck_assert_int_eq(fake_host__load(d, NULL), WSHUB_OK);
    ck_assert_ptr_nonnull(H);
}

static void teardown(void)
{
    fake_host__unload();
}

/* ---- the table ---- */

START_TEST(test_fake_fills_every_slot)
{
    const wshub_host_api_t *api = fake_host__api();
    size_t first = offsetof(wshub_host_api_t, log);
    size_t n = (sizeof(*api) - first) / sizeof(void (*)(void));

    ck_assert_uint_eq(api->abi_major, WSHUB_SDK_ABI_MAJOR);
    ck_assert_uint_eq(api->abi_minor, WSHUB_SDK_ABI_MINOR);
    ck_assert_uint_eq(api->struct_size, sizeof(*api));
    for (size_t i = 0; i < n; i++) {
        void (*slot)(void);
        memcpy(&slot, (const char *)api + first + i * sizeof(slot), sizeof(slot));
        ck_assert_msg(slot != NULL, "host slot %zu is NULL", i);
    }
}
END_TEST

/* ---- loader checks ---- */

static int never_init(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                      void **state)
{
    (void)self, (void)host, (void)cfg, (void)state;
    ck_abort_msg("init must not run for a refused descriptor");
    return WSHUB_ERR;
}

static const struct {
    wshub_plugin_desc_t desc;
    const char *log;
} refused[] = {
    {{.hdr = {0x12345678u, 1, 0, sizeof(wshub_plugin_desc_t), 0}, .name = "m", .init = never_init},
     "ERR plugin ?: <fake>: bad magic 0x12345678 (not a wshub plugin)"},
    {{.hdr = {WSHUB_PLUGIN_MAGIC, WSHUB_SDK_ABI_MAJOR + 1, 0, sizeof(wshub_plugin_desc_t), 0},
      .name = "m",
      .init = never_init},
     "built for SDK ABI 2.0, this server has 1.0"},
    {{.hdr = {WSHUB_PLUGIN_MAGIC, WSHUB_SDK_ABI_MAJOR, WSHUB_SDK_ABI_MINOR + 1,
              sizeof(wshub_plugin_desc_t), 0},
      .name = "m",
      .init = never_init},
     "built for SDK ABI 1.1, this server has 1.0"},
    {{.hdr = PROBE_HDR, .name = "no_init"}, "ERR plugin no_init: descriptor has no init function"},
    {{.hdr = PROBE_HDR, .name = "Bad-Name", .init = never_init},
     "is plugin 'Bad-Name': a name must match [a-z0-9_]{1,63}"},
    {{.hdr = {WSHUB_PLUGIN_MAGIC, 1, 0, 16, 0}, .name = "m", .init = never_init},
     "descriptor size 16 is smaller than ABI 1.0's 120"},
};

START_TEST(test_fake_refuses_bad_descriptors)
{
    ck_assert_int_eq(fake_host__load(&refused[_i].desc, NULL), WSHUB_ERR_INVAL);
    ck_assert_msg(fake_host__log_contains(refused[_i].log), "missing log: %s", refused[_i].log);
    ck_assert_str_ne(fake_host__last_error(), "");
}
END_TEST

static int setup_fails(void)
{
    ck_assert_int_eq(H->hook_add(P, WSHUB_EV_TICK, 0, NULL, NULL), WSHUB_ERR_INVAL);
    H->set_error(P, "boom: %d", 42);
    return WSHUB_ERR_LIMIT;
}

START_TEST(test_fake_init_failure_cleans_up)
{
    probe_setup = setup_fails;
    ck_assert_int_eq(fake_host__load(&probe, NULL), WSHUB_ERR_LIMIT);
    ck_assert_str_eq(fake_host__last_error(), "boom: 42");
    ck_assert(fake_host__log_contains("ERR plugin probe: init failed: boom: 42"));
    /* As in the real loader: a failed init is not followed by fini, even with a state set. */
    ck_assert_int_eq(probe_fini_calls, 0);
    fake_host__unload();
    ck_assert_int_eq(probe_fini_calls, 0);
}
END_TEST

START_TEST(test_fake_config_defaults_and_accessors)
{
    const wshub_cfg_t *items;
    int64_t v;

    ck_assert_int_eq(fake_host__load(&probe, "limit: 1MiB\nitems: [a, b]\nenabled: off\n"),
                     WSHUB_OK);
    ck_assert_ptr_nonnull(C);
    ck_assert_int_eq(H->cfg_kind(C), WSHUB_CFG_MAP);
    /* Defaults were inserted by the config module: */
    ck_assert_str_eq(H->cfg_str(C, "name", "x"), "probe");
    ck_assert_str_eq(H->cfg_where(H->cfg_get(C, "name")), "<default>");
    ck_assert_int_eq(H->cfg_int(C, "interval", 0, &v), WSHUB_OK);
    ck_assert_int_eq(v, 30000);
    /* Configured values: */
    ck_assert_int_eq(H->cfg_int(C, "limit", 0, &v), WSHUB_OK);
    ck_assert_int_eq(v, 1048576);
    ck_assert(!H->cfg_bool(C, "enabled", true));
    ck_assert_str_eq(H->cfg_where(H->cfg_get(C, "limit")), "<test>:1:8");
    items = H->cfg_get(C, "items");
    ck_assert_int_eq(H->cfg_kind(items), WSHUB_CFG_LIST);
    ck_assert_uint_eq(H->cfg_len(items), 2);
    ck_assert_str_eq(H->cfg_scalar(H->cfg_at(items, 1)), "b");
    ck_assert_ptr_null(H->cfg_at(items, 2));
    ck_assert_ptr_null(H->cfg_key_at(items, 0));
    ck_assert_ptr_null(H->cfg_scalar(items));
    ck_assert_str_eq(H->cfg_key_at(C, 0), "limit");
    /* Absent keys fall back; a non-number is INVAL. */
    ck_assert_str_eq(H->cfg_str(C, "nope", "dflt"), "dflt");
    ck_assert_int_eq(H->cfg_int(C, "nope", 7, &v), WSHUB_OK);
    ck_assert_int_eq(v, 7);
    ck_assert_int_eq(H->cfg_int(C, "name", 7, &v), WSHUB_ERR_INVAL);
}
END_TEST

START_TEST(test_fake_config_errors)
{
    ck_assert_int_eq(fake_host__load(&probe, "interval: soon\n"), WSHUB_ERR_INVAL);
    ck_assert_ptr_nonnull(strstr(fake_host__last_error(), "<test>:1:11: plugin probe: option "
                                                          "interval"));
    ck_assert_ptr_null(H); /* init never ran */
    ck_assert_int_eq(fake_host__load(&probe, "a: [\n"), WSHUB_ERR_INVAL);
    ck_assert_ptr_nonnull(strstr(fake_host__last_error(), "<test>:"));
}
END_TEST

/* ---- registration ---- */

static int dummy_hook(wshub_event_t ev, void *data, void *ud)
{
    (void)ev, (void)data, (void)ud;
    return WSHUB_OK;
}

static int dummy_msg(wshub_conn_t *c, const wshub_msg_t *m, void *ud)
{
    (void)c, (void)m, (void)ud;
    return WSHUB_OK;
}

static int setup_routes_raw_only(void)
{
    return H->path_add(P, "/raw", dummy_msg, NULL);
}

static const wshub_metric_def_t counter_def = {
    WSHUB_METRIC_COUNTER, "probe_total", "help", NULL, 0, NULL, 0};
static const int svc_vtable = 1;

static int setup_register_rules(void)
{
    ck_assert_int_eq(H->route_add(P, "room.join", dummy_msg, NULL), WSHUB_OK);
    ck_assert_int_eq(H->route_add(P, "room.join", dummy_msg, NULL), WSHUB_ERR_EXISTS);
    ck_assert_int_eq(H->route_add(P, "ping", dummy_msg, NULL), WSHUB_ERR_EXISTS);
    ck_assert_int_eq(H->route_add(P, "ack", dummy_msg, NULL), WSHUB_ERR_EXISTS);
    ck_assert_int_eq(H->route_add(P, "bad type", dummy_msg, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(H->route_add(P, "", dummy_msg, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(H->route_add(P, "x", NULL, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(H->path_add(P, "/raw", dummy_msg, NULL), WSHUB_OK);
    ck_assert_int_eq(H->path_add(P, "/raw", dummy_msg, NULL), WSHUB_ERR_EXISTS);
    ck_assert_int_eq(H->path_add(P, "/ws", dummy_msg, NULL), WSHUB_ERR_EXISTS);
    ck_assert_int_eq(H->path_add(P, "raw", dummy_msg, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(H->path_add(P, "/a?b", dummy_msg, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(H->hook_add(P, (wshub_event_t)0, 0, dummy_hook, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(H->hook_add(P, (wshub_event_t)7, 0, dummy_hook, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(H->service_put(P, "svc", 2, &svc_vtable), WSHUB_OK);
    ck_assert_int_eq(H->service_put(P, "svc", 3, &svc_vtable), WSHUB_ERR_EXISTS);
    ck_assert_int_eq(H->service_put(P, "undeclared", 1, &svc_vtable), WSHUB_ERR_INVAL);
    ck_assert_ptr_nonnull(H->metric_new(P, &counter_def));
    ck_assert_ptr_null(H->metric_new(P, &counter_def)); /* duplicate name */
    return WSHUB_OK;
}

START_TEST(test_fake_registration_rules)
{
    load_probe(&probe, setup_register_rules);
    ck_assert(fake_host__has_route("room.join"));
    ck_assert(fake_host__has_path("/raw"));
    ck_assert_ptr_eq(fake_host__service("svc", 2), &svc_vtable);
    ck_assert_ptr_null(fake_host__service("svc", 3));
    ck_assert_ptr_eq(H->service_get(P, "svc", 1), &svc_vtable);
    ck_assert_ptr_null(H->service_get(P, "svc", 3));
    ck_assert_ptr_null(H->service_get(P, "other", 0));
    ck_assert(fake_host__log_contains("ERR plugin probe: service_put('undeclared') but the "
                                      "descriptor's provides does not list it"));
}
END_TEST

START_TEST(test_fake_registration_only_in_init)
{
    load_probe(&probe, NULL);
    ck_assert_int_eq(H->hook_add(P, WSHUB_EV_TICK, 0, dummy_hook, NULL), WSHUB_ERR_STATE);
    ck_assert_int_eq(H->route_add(P, "late", dummy_msg, NULL), WSHUB_ERR_STATE);
    ck_assert_int_eq(H->path_add(P, "/late", dummy_msg, NULL), WSHUB_ERR_STATE);
    ck_assert_int_eq(H->service_put(P, "late", 1, &svc_vtable), WSHUB_ERR_STATE);
    ck_assert_ptr_null(H->metric_new(P, &counter_def));
    ck_assert_int_eq(fake_host__start(), WSHUB_OK);
    ck_assert_int_eq(H->hook_add(P, WSHUB_EV_TICK, 0, dummy_hook, NULL), WSHUB_ERR_STATE);
    ck_assert(!fake_host__has_route("late"));
    ck_assert(fake_host__log_contains("ERR plugin probe: hook_add called outside init "
                                      "(WSHUB_ERR_STATE)"));
    ck_assert(fake_host__log_contains("ERR plugin probe: metric_new called outside init"));
}
END_TEST

/* ---- hooks ---- */

static int hook_a(wshub_event_t ev, void *data, void *ud)
{
    (void)ev, (void)data;
    trace(ud);
    return WSHUB_OK;
}

static int setup_prio(void)
{
    ck_assert_int_eq(H->hook_add(P, WSHUB_EV_CONN_OPEN, 10, hook_a, "10a"), WSHUB_OK);
    ck_assert_int_eq(H->hook_add(P, WSHUB_EV_CONN_OPEN, -5, hook_a, "-5"), WSHUB_OK);
    ck_assert_int_eq(H->hook_add(P, WSHUB_EV_CONN_OPEN, 10, hook_a, "10b"), WSHUB_OK);
    ck_assert_int_eq(H->hook_add(P, WSHUB_EV_CONN_OPEN, 0, hook_a, "0"), WSHUB_OK);
    ck_assert_int_eq(H->hook_add(P, WSHUB_EV_TICK, 0, hook_a, "tick"), WSHUB_OK);
    return WSHUB_OK;
}

START_TEST(test_fake_hooks_run_in_priority_order)
{
    fake_conn_t *c;

    load_probe(&probe, setup_prio);
    c = fake_host__conn_new(NULL, NULL, NULL);
    ck_assert_int_eq(fake_host__fire_open(c), WSHUB_OK);
    ck_assert_str_eq(probe_trace, "-5,0,10a,10b");
    ck_assert_int_eq(fake_host__fire_tick(5), WSHUB_OK);
    ck_assert_str_eq(probe_trace, "-5,0,10a,10b,tick");
}
END_TEST

/* AUTH chains: each hook's result by name (d=DEFER, o=OK, x=DENIED), expected chain result. */
static int auth_hook(wshub_event_t ev, void *data, void *ud)
{
    wshub_ev_auth_t *a = data;
    const char *what = ud;

    (void)ev;
    trace(what);
    if (what[0] == 'd')
        return WSHUB_DEFER;
    if (what[0] == 'o') {
        const char *roles[] = {"admin", "member"};
        ck_assert_int_eq(
            H->conn_set_identity(a->conn, "acme", "alice", roles, 2, "{\"plan\":\"pro\"}"),
            WSHUB_OK);
        return WSHUB_OK;
    }
    a->status = 401;
    a->reason = "no token";
    return WSHUB_ERR_DENIED;
}

static const char *auth_chain;

static int setup_auth(void)
{
    static const char *const names[] = {"d1", "o2", "x3", "d4", "o5", "x6"};
    for (const char *p = auth_chain; *p; p++)
        ck_assert_int_eq(H->hook_add(P, WSHUB_EV_AUTH, (int)(p - auth_chain), auth_hook,
                                     (void *)names[*p - '1']),
                         WSHUB_OK);
    return WSHUB_OK;
}

static const struct {
    const char *chain; /* indexes into names[] */
    int rc;
    int status;
    const char *trace;
} auth_cases[] = {
    {"", WSHUB_OK, 101, ""},
    {"14", WSHUB_OK, 101, "d1,d4"},
    {"12", WSHUB_OK, 101, "d1,o2"},
    {"1236", WSHUB_OK, 101, "d1,o2"},
    {"132", WSHUB_ERR_DENIED, 401, "d1,x3"},
    {"3", WSHUB_ERR_DENIED, 401, "x3"},
};

START_TEST(test_fake_auth_chain)
{
    fake_conn_t *c;
    int status = 0;
    const char *reason = NULL;

    auth_chain = auth_cases[_i].chain;
    load_probe(&probe, setup_auth);
    c = fake_host__conn_new(NULL, NULL, NULL);
    ck_assert_int_eq(fake_host__fire_auth(c, "/ws", "token=x", NULL, 0, &status, &reason),
                     auth_cases[_i].rc);
    ck_assert_int_eq(status, auth_cases[_i].status);
    ck_assert_str_eq(probe_trace, auth_cases[_i].trace);
    if (auth_cases[_i].rc < 0) {
        ck_assert_str_eq(reason, "no token");
    }
    if (strstr(auth_cases[_i].trace, "o")) {
        ck_assert_str_eq(c->tenant, "acme");
        ck_assert_str_eq(H->conn_user(fake_host__handle(c)), "alice");
        ck_assert_uint_eq(H->conn_n_roles(fake_host__handle(c)), 2);
        ck_assert_str_eq(H->conn_role(fake_host__handle(c), 1), "member");
        ck_assert_ptr_null(H->conn_role(fake_host__handle(c), 2));
        ck_assert_str_eq(H->conn_metadata(fake_host__handle(c)), "{\"plan\":\"pro\"}");
    } else {
        ck_assert_str_eq(c->tenant, "public");
    }
    /* Outside AUTH, identity is immutable. */
    ck_assert_int_eq(H->conn_set_identity(fake_host__handle(c), "t", "u", NULL, 0, NULL),
                     WSHUB_ERR_STATE);
}
END_TEST

static int identity_hook(wshub_event_t ev, void *data, void *ud)
{
    wshub_ev_auth_t *a = data;
    const char *many[65];

    (void)ev, (void)ud;
    for (size_t i = 0; i < 65; i++)
        many[i] = "r";
    ck_assert_int_eq(H->conn_set_identity(a->conn, "", "u", NULL, 0, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(H->conn_set_identity(a->conn, NULL, "u", NULL, 0, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(H->conn_set_identity(a->conn, "t", "u", NULL, 0, "[1]"), WSHUB_ERR_INVAL);
    ck_assert_int_eq(H->conn_set_identity(a->conn, "t", "u", NULL, 0, "{bad"), WSHUB_ERR_INVAL);
    ck_assert_int_eq(H->conn_set_identity(a->conn, "t", "u", many, 65, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(H->conn_set_identity(a->conn, "t", "u", NULL, 1, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(H->conn_set_identity(a->conn, "t", "u\n", NULL, 0, NULL), WSHUB_ERR_INVAL);
    ck_assert_int_eq(H->conn_set_subprotocol(a->conn, "x y"), WSHUB_ERR_INVAL);
    ck_assert_int_eq(H->conn_set_subprotocol(a->conn, "wshub.v2"), WSHUB_ERR_INVAL);
    ck_assert_int_eq(H->conn_set_subprotocol(a->conn, "wshub.v1"), WSHUB_OK);
    ck_assert_int_eq(H->conn_set_identity(a->conn, "t", NULL, NULL, 0, NULL), WSHUB_OK);
    return WSHUB_DEFER;
}

static int setup_identity(void)
{
    return H->hook_add(P, WSHUB_EV_AUTH, 0, identity_hook, NULL);
}

START_TEST(test_fake_identity_validation)
{
    static const wshub_header_t hdrs[] = {{"sec-websocket-protocol", "chat, wshub.v1 ,x"}};
    fake_conn_t *c;

    load_probe(&probe, setup_identity);
    c = fake_host__conn_new(NULL, NULL, NULL);
    ck_assert_int_eq(fake_host__fire_auth(c, NULL, NULL, hdrs, 1, NULL, NULL), WSHUB_OK);
    ck_assert_str_eq(c->tenant, "t");
    ck_assert_str_eq(c->user, "");
    ck_assert_str_eq(H->conn_subprotocol(fake_host__handle(c)), "wshub.v1");
    ck_assert_int_eq(H->conn_set_subprotocol(fake_host__handle(c), "x"), WSHUB_ERR_STATE);
}
END_TEST

static int deny_bad_status(wshub_event_t ev, void *data, void *ud)
{
    wshub_ev_auth_t *a = data;

    (void)ev, (void)ud;
    a->status = 200; /* not an error status: the core answers 403 */
    return WSHUB_ERR_DENIED;
}

static int setup_deny_bad_status(void)
{
    return H->hook_add(P, WSHUB_EV_AUTH, 0, deny_bad_status, NULL);
}

START_TEST(test_fake_auth_denial_status_clamped)
{
    fake_conn_t *c;
    int status = 0;
    const char *reason = NULL;

    load_probe(&probe, setup_deny_bad_status);
    c = fake_host__conn_new(NULL, NULL, NULL);
    ck_assert_int_eq(fake_host__fire_auth(c, NULL, NULL, NULL, 0, &status, &reason),
                     WSHUB_ERR_DENIED);
    ck_assert_int_eq(status, 403);
    ck_assert_ptr_nonnull(reason);
    ck_assert_str_ne(reason, "");
}
END_TEST

/* With no hook choosing, the JSON path answers the first wshub.* protocol the client offered. */
START_TEST(test_fake_auth_default_subprotocol)
{
    static const wshub_header_t offer[] = {{"sec-websocket-protocol", "chat, wshub.v1.batch, "
                                                                      "wshub.v1"}};
    fake_conn_t *c, *r;

    load_probe(&probe, setup_routes_raw_only);
    c = fake_host__conn_new(NULL, NULL, NULL);
    ck_assert_int_eq(fake_host__fire_auth(c, NULL, NULL, offer, 1, NULL, NULL), WSHUB_OK);
    ck_assert_str_eq(c->subprotocol, "wshub.v1.batch");
    r = fake_host__conn_new(NULL, NULL, "/raw");
    ck_assert_int_eq(fake_host__fire_auth(r, NULL, NULL, offer, 1, NULL, NULL), WSHUB_OK);
    ck_assert_str_eq(r->subprotocol, ""); /* raw paths: only a plugin chooses */
}
END_TEST

/* ---- messages and replies ---- */

static int msg_result;

static int echo_route(wshub_conn_t *c, const wshub_msg_t *m, void *ud)
{
    (void)ud;
    trace(m->type ? m->type : "raw");
    if (msg_result == WSHUB_OK)
        ck_assert_int_eq(H->send_ack(c, m->id, "{ \"got\" : 1 }"), WSHUB_OK);
    return msg_result;
}

static int limiter(wshub_event_t ev, void *data, void *ud)
{
    wshub_ev_message_t *m = data;

    (void)ev, (void)ud;
    trace("in");
    if (m->msg->type && strcmp(m->msg->type, "spam") == 0) {
        m->error_code = "rate_limited";
        return WSHUB_ERR_DENIED;
    }
    if (m->msg->type && strcmp(m->msg->type, "drop") == 0)
        return WSHUB_ERR_DENIED;
    return WSHUB_OK;
}

static int setup_routes(void)
{
    ck_assert_int_eq(H->route_add(P, "do", echo_route, NULL), WSHUB_OK);
    ck_assert_int_eq(H->route_add(P, "spam", echo_route, NULL), WSHUB_OK);
    ck_assert_int_eq(H->route_add(P, "drop", echo_route, NULL), WSHUB_OK);
    ck_assert_int_eq(H->path_add(P, "/raw", echo_route, NULL), WSHUB_OK);
    ck_assert_int_eq(H->hook_add(P, WSHUB_EV_MESSAGE_IN, 0, limiter, NULL), WSHUB_OK);
    return WSHUB_OK;
}

static const struct {
    int rc;
    const char *reply;
} handler_errors[] = {
    /* The members are spliced as text, exactly like core/router.c (inner spacing kept). */
    {WSHUB_OK, "{\"type\":\"ack\",\"id\":9,\"got\" : 1}"},
    {WSHUB_ERR_DENIED, "{\"type\":\"error\",\"id\":9,\"code\":\"forbidden\",\"message\":\"do\"}"},
    {WSHUB_ERR_INVAL, "{\"type\":\"error\",\"id\":9,\"code\":\"invalid\",\"message\":\"do\"}"},
    {WSHUB_ERR_NOTFOUND, "{\"type\":\"error\",\"id\":9,\"code\":\"not_found\",\"message\":\"do\"}"},
    {WSHUB_ERR_EXISTS, "{\"type\":\"error\",\"id\":9,\"code\":\"exists\",\"message\":\"do\"}"},
    {WSHUB_ERR_LIMIT, "{\"type\":\"error\",\"id\":9,\"code\":\"rate_limited\",\"message\":\"do\"}"},
    {WSHUB_ERR, "{\"type\":\"error\",\"id\":9,\"code\":\"internal\",\"message\":\"do\"}"},
    {WSHUB_ERR_IO, "{\"type\":\"error\",\"id\":9,\"code\":\"internal\",\"message\":\"do\"}"},
};

START_TEST(test_fake_handler_result_replies)
{
    fake_conn_t *c;

    load_probe(&probe, setup_routes);
    c = fake_host__conn_new(NULL, NULL, NULL);
    msg_result = handler_errors[_i].rc;
    ck_assert_int_eq(fake_host__deliver(c, "{\"type\":\"do\",\"id\":9}"), handler_errors[_i].rc);
    ck_assert_uint_eq(c->n_out, 1);
    ck_assert_str_eq(c->out[0], handler_errors[_i].reply);
    ck_assert_str_eq(probe_trace, "in,do");
}
END_TEST

/* Envelopes the core refuses before any hook or handler runs; replies are the router's texts. */
static const struct {
    const char *in;
    const char *reply;
} bad_envelopes[] = {
    {"not json", "{\"type\":\"error\",\"code\":\"bad_json\",\"message\":\"message is not valid "
                 "JSON\"}"},
    {"{\"type\":\"do\"} x", "{\"type\":\"error\",\"code\":\"bad_json\",\"message\":\"message is "
                            "not valid JSON\"}"},
    {"[1,2]", "{\"type\":\"error\",\"code\":\"bad_json\",\"message\":\"message must be a JSON "
              "object\"}"},
    {"{\"id\":[1]}", "{\"type\":\"error\",\"code\":\"bad_json\",\"message\":\"\\\"id\\\" must be "
                     "a string or a number\"}"},
    {"{\"id\":5}", "{\"type\":\"error\",\"id\":5,\"code\":\"bad_json\",\"message\":\"message has "
                   "no string \\\"type\\\"\"}"},
    {"{\"type\":3,\"id\":\"a\"}", "{\"type\":\"error\",\"id\":\"a\",\"code\":\"bad_json\","
                                  "\"message\":\"message has no string \\\"type\\\"\"}"},
    {"{\"type\":\"nope\",\"id\":1.5}", "{\"type\":\"error\",\"id\":1.5,\"code\":\"unknown_type\","
                                       "\"message\":\"unknown message type \\\"nope\\\"\"}"},
};

START_TEST(test_fake_bad_envelopes)
{
    fake_conn_t *c;

    load_probe(&probe, setup_routes);
    c = fake_host__conn_new(NULL, NULL, NULL);
    ck_assert_int_lt(fake_host__deliver(c, bad_envelopes[_i].in), 0);
    ck_assert_uint_eq(c->n_out, 1);
    ck_assert_str_eq(c->out[0], bad_envelopes[_i].reply);
    ck_assert_str_eq(probe_trace, "");
}
END_TEST

START_TEST(test_fake_message_hooks_and_core_types)
{
    fake_conn_t *c, *r;

    load_probe(&probe, setup_routes);
    c = fake_host__conn_new(NULL, NULL, NULL);
    msg_result = WSHUB_OK;
    /* A denial with an error code answers; without one the message is dropped silently. */
    ck_assert_int_eq(fake_host__deliver(c, "{\"type\":\"spam\",\"id\":\"s\"}"), WSHUB_ERR_DENIED);
    ck_assert_str_eq(fake_host__last_out(c), "{\"type\":\"error\",\"id\":\"s\",\"code\":"
                                             "\"rate_limited\",\"message\":\"message refused\"}");
    ck_assert_int_eq(fake_host__deliver(c, "{\"type\":\"drop\"}"), WSHUB_ERR_DENIED);
    ck_assert_uint_eq(c->n_out, 1);
    ck_assert_str_eq(probe_trace, "in,in");
    /* ping is the core's. */
    ck_assert_int_eq(fake_host__deliver(c, "{\"type\":\"ping\",\"id\":\"p/1\"}"), WSHUB_OK);
    ck_assert_str_eq(fake_host__last_out(c),
                     "{\"type\":\"pong\",\"id\":\"p/1\",\"server_time\":1700000000000}");
    /* Binary is refused on the JSON path. */
    ck_assert_int_eq(fake_host__deliver_binary(c, "\x01", 1), WSHUB_ERR_INVAL);
    ck_assert_str_eq(fake_host__last_out(c), "{\"type\":\"error\",\"code\":\"unsupported\","
                                             "\"message\":\"binary messages are not accepted "
                                             "here\"}");
    /* Raw path: no envelope, MESSAGE_IN still runs, a negative result sends nothing. */
    r = fake_host__conn_new(NULL, NULL, "/raw");
    msg_result = WSHUB_ERR_INVAL;
    ck_assert_int_eq(fake_host__deliver(r, "not json"), WSHUB_ERR_INVAL);
    ck_assert_uint_eq(r->n_out, 0);
    ck_assert_str_eq(probe_trace, "in,in,in,in,raw");
    /* Closed connections receive nothing more. */
    H->conn_close(fake_host__handle(c), 4000, "bye");
    ck_assert_int_eq(fake_host__deliver(c, "{\"type\":\"do\"}"), WSHUB_ERR_STATE);
    ck_assert_int_eq(H->send_ack(fake_host__handle(c), NULL, NULL), WSHUB_ERR_STATE);
    ck_assert(c->closed);
    ck_assert_uint_eq(c->close_code, 4000);
    ck_assert_str_eq(c->close_reason, "bye");
}
END_TEST

START_TEST(test_fake_ack_and_error_texts)
{
    fake_conn_t *c;
    wshub_conn_t *h;

    load_probe(&probe, NULL);
    c = fake_host__conn_new(NULL, NULL, NULL);
    h = fake_host__handle(c);
    ck_assert_int_eq(H->send_ack(h, "7", "{\"room\":\"x\"}"), WSHUB_OK);
    ck_assert_str_eq(fake_host__last_out(c), "{\"type\":\"ack\",\"id\":7,\"room\":\"x\"}");
    ck_assert_int_eq(H->send_ack(h, NULL, NULL), WSHUB_OK);
    ck_assert_str_eq(fake_host__last_out(c), "{\"type\":\"ack\"}");
    ck_assert_int_eq(H->send_ack(h, "\"a\"", " { } "), WSHUB_OK);
    ck_assert_str_eq(fake_host__last_out(c), "{\"type\":\"ack\",\"id\":\"a\"}");
    ck_assert_int_eq(H->send_ack(h, NULL, "{\"n\":1,\"m\":[2]}"), WSHUB_OK);
    ck_assert_str_eq(fake_host__last_out(c), "{\"type\":\"ack\",\"n\":1,\"m\":[2]}");
    ck_assert_int_eq(H->send_error(h, "7", "forbidden", "not a \"member\" of %s\n\t\x01", "r"),
                     WSHUB_OK);
    ck_assert_str_eq(fake_host__last_out(c),
                     "{\"type\":\"error\",\"id\":7,\"code\":\"forbidden\",\"message\":"
                     "\"not a \\\"member\\\" of r\\n\\t\\u0001\"}");
    ck_assert_int_eq(H->send_error(h, NULL, "x", "%s", ""), WSHUB_OK);
    ck_assert_str_eq(fake_host__last_out(c),
                     "{\"type\":\"error\",\"code\":\"x\",\"message\":\"\"}");
    ck_assert(!fake_host__log_contains("is not a JSON"));
    /* Malformed arguments are sent as the core would, but logged for the test to see. */
    ck_assert_int_eq(H->send_ack(h, NULL, "[1]"), WSHUB_OK);
    ck_assert(fake_host__log_contains("ERR fake_host: send_ack: fields_json is not a JSON object"));
}
END_TEST

/* ---- tenant scope ---- */

static int count_cb(wshub_conn_t *c, void *ud)
{
    (void)c;
    (*(int *)ud)++;
    return 0;
}

static int stop_cb(wshub_conn_t *c, void *ud)
{
    (void)c, (void)ud;
    return 42;
}

START_TEST(test_fake_tenant_scope)
{
    fake_conn_t *a1, *a2, *b1;
    int n = 0;

    load_probe(&probe, NULL);
    a1 = fake_host__conn_new("a", "u1", NULL);
    a2 = fake_host__conn_new("a", "u2", NULL);
    b1 = fake_host__conn_new("b", "u1", NULL);
    ck_assert_ptr_eq(H->conn_lookup(P, "a", a1->id), fake_host__handle(a1));
    ck_assert_ptr_null(H->conn_lookup(P, "b", a1->id));  /* another tenant: never returned */
    ck_assert_ptr_null(H->conn_lookup(P, NULL, a1->id)); /* NULL tenant: system scope only */
    ck_assert_ptr_null(H->conn_lookup(P, "a", 999999));
    ck_assert_int_eq(H->conn_each(P, "a", count_cb, &n), WSHUB_OK);
    ck_assert_int_eq(n, 2);
    n = 0;
    ck_assert_int_eq(H->conn_each_user(P, "a", "u1", count_cb, &n), WSHUB_OK);
    ck_assert_int_eq(n, 1);
    ck_assert_int_eq(H->conn_each(P, NULL, count_cb, &n), WSHUB_ERR_DENIED);
    ck_assert_int_eq(H->conn_each_user(P, NULL, "u1", count_cb, &n), WSHUB_ERR_DENIED);
    ck_assert_int_eq(H->conn_each(P, "b", stop_cb, NULL), 42);
    ck_assert_ptr_null(H->group_new(P, NULL));
    /* Dropped and closing connections no longer resolve. */
    fake_host__conn_drop(a2, 1000);
    ck_assert_ptr_null(H->conn_lookup(P, "a", a2->id));
    H->conn_close(fake_host__handle(b1), 1000, "");
    ck_assert_ptr_null(H->conn_lookup(P, "b", b1->id));
}
END_TEST

START_TEST(test_fake_system_scope)
{
    fake_conn_t *a1, *b1;
    wshub_group_t *g;
    int n = 0;

    load_probe(&probe_system, NULL);
    ck_assert(fake_host__log_contains("NOTICE plugin probe_sys: declares system scope"));
    a1 = fake_host__conn_new("a", "u", NULL);
    b1 = fake_host__conn_new("b", "u", NULL);
    ck_assert_ptr_eq(H->conn_lookup(P, NULL, b1->id), fake_host__handle(b1));
    ck_assert_int_eq(H->conn_each_user(P, NULL, "u", count_cb, &n), WSHUB_OK);
    ck_assert_int_eq(n, 2);
    g = H->group_new(P, NULL);
    ck_assert_ptr_nonnull(g);
    ck_assert_int_eq(H->group_add(g, fake_host__handle(a1)), WSHUB_OK);
    ck_assert_int_eq(H->group_add(g, fake_host__handle(b1)), WSHUB_OK);
    H->group_free(g);
}
END_TEST

/* ---- groups and buffers ---- */

START_TEST(test_fake_groups)
{
    fake_conn_t *a1, *a2, *a3, *b1;
    wshub_group_t *g;
    wshub_buf_t *b;

    load_probe(&probe, NULL);
    a1 = fake_host__conn_new("a", "1", NULL);
    a2 = fake_host__conn_new("a", "2", NULL);
    a3 = fake_host__conn_new("a", "3", NULL);
    b1 = fake_host__conn_new("b", "1", NULL);
    g = H->group_new(P, "a");
    ck_assert_int_eq(H->group_add(g, fake_host__handle(a1)), WSHUB_OK);
    ck_assert_int_eq(H->group_add(g, fake_host__handle(a2)), WSHUB_OK);
    ck_assert_int_eq(H->group_add(g, fake_host__handle(a3)), WSHUB_OK);
    ck_assert_int_eq(H->group_add(g, fake_host__handle(a1)), WSHUB_ERR_EXISTS);
    ck_assert_int_eq(H->group_add(g, fake_host__handle(b1)), WSHUB_ERR_DENIED);
    ck_assert_uint_eq(H->group_size(g), 3);
    ck_assert(!H->group_has(g, fake_host__handle(b1)));
    b = H->buf_new("hi", 2);
    ck_assert_uint_eq(H->group_send(g, b, fake_host__handle(a2)), 2);
    H->buf_unref(b);
    ck_assert_str_eq(fake_host__last_out(a1), "hi");
    ck_assert_uint_eq(a2->n_out, 0);
    ck_assert_uint_eq(b1->n_out, 0);
    /* A closing member is not sent to; a dropped one has left the group. */
    H->conn_close(fake_host__handle(a3), 1000, NULL);
    ck_assert_int_eq(H->group_add(g, fake_host__handle(a3)), WSHUB_ERR_STATE);
    fake_host__conn_drop(a1, 1006);
    ck_assert_uint_eq(H->group_size(g), 2);
    b = H->buf_new_binary("\0\1", 2);
    ck_assert_uint_eq(H->group_send(g, b, NULL), 1);
    H->buf_unref(b);
    ck_assert(a2->out_binary[0]);
    ck_assert_int_eq(H->group_remove(g, fake_host__handle(a2)), WSHUB_OK);
    ck_assert_int_eq(H->group_remove(g, fake_host__handle(a2)), WSHUB_ERR_NOTFOUND);
    H->group_free(g);
}
END_TEST

START_TEST(test_fake_buffer_leak_is_logged)
{
    wshub_buf_t *b, *kept;
    size_t len = 0;

    load_probe(&probe, NULL);
    b = H->buf_new("abc", 3);
    ck_assert_str_eq(H->buf_data(b, &len), "abc");
    ck_assert_uint_eq(len, 3);
    ck_assert_ptr_eq(H->buf_ref(b), b);
    H->buf_unref(b);
    H->buf_unref(b);
    kept = H->buf_new("leak", 4);
    ck_assert_ptr_nonnull(kept);
    fake_host__unload();
    ck_assert(fake_host__log_contains("ERR fake_host: 1 buffer(s) leaked"));
}
END_TEST

START_TEST(test_fake_no_leak_no_log)
{
    load_probe(&probe, NULL);
    H->buf_unref(H->buf_new("x", 1));
    fake_host__unload();
    ck_assert(!fake_host__log_contains("leaked"));
}
END_TEST

/* ---- timers, post, stop ---- */

static wshub_timer_t *self_del_timer;
static uint64_t fired_at[32];
static int n_fired;

static void on_timer(void *ud)
{
    (void)ud;
    if (n_fired < 32)
        fired_at[n_fired++] = H->now_ms();
}

static void on_self_del(void *ud)
{
    on_timer(ud);
    H->timer_del(self_del_timer);
}

START_TEST(test_fake_timers)
{
    uint64_t t0;
    wshub_timer_t *t;

    n_fired = 0;
    load_probe(&probe, NULL);
    t0 = fake_host__now();
    ck_assert_ptr_null(H->timer_add(P, 0, true, on_timer, NULL));
    ck_assert_ptr_null(H->timer_add(P, 5, false, NULL, NULL));
    t = H->timer_add(P, 100, true, on_timer, NULL);
    ck_assert_ptr_nonnull(H->timer_add(P, 250, false, on_timer, NULL));
    fake_host__advance(99);
    ck_assert_int_eq(n_fired, 0);
    fake_host__advance(301); /* t0+400 */
    ck_assert_int_eq(n_fired, 5);
    ck_assert_uint_eq(fired_at[0], t0 + 100);
    ck_assert_uint_eq(fired_at[1], t0 + 200);
    ck_assert_uint_eq(fired_at[2], t0 + 250);
    ck_assert_uint_eq(fired_at[3], t0 + 300);
    ck_assert_uint_eq(fired_at[4], t0 + 400);
    ck_assert_uint_eq(fake_host__now(), t0 + 400);
    H->timer_del(t);
    fake_host__advance(1000);
    ck_assert_int_eq(n_fired, 5);
    self_del_timer = H->timer_add(P, 10, true, on_self_del, NULL);
    fake_host__advance(100);
    ck_assert_int_eq(n_fired, 6);
}
END_TEST

static int posted;

static void on_post(void *ud)
{
    (void)ud;
    posted++;
}

static void *poster(void *arg)
{
    (void)arg;
    for (int i = 0; i < 100; i++)
        ck_assert_int_eq(H->post(P, on_post, NULL), WSHUB_OK);
    return NULL;
}

START_TEST(test_fake_post_from_threads)
{
    pthread_t th[2];

    posted = 0;
    load_probe(&probe, NULL);
    for (int i = 0; i < 2; i++)
        ck_assert_int_eq(pthread_create(&th[i], NULL, poster, NULL), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    ck_assert_int_eq(posted, 0); /* only the loop runs them */
    fake_host__advance(0);
    ck_assert_int_eq(posted, 200);
    ck_assert_int_eq(H->post(P, NULL, NULL), WSHUB_ERR_INVAL);
    fake_host__unload();
    ck_assert_int_eq(H->post(P, on_post, NULL), WSHUB_ERR_STATE);
}
END_TEST

static void finish_stop(void *ud)
{
    (void)ud;
    H->stopped(P);
}

START_TEST(test_fake_stop_pending)
{
    load_probe(&probe, NULL);
    ck_assert_int_eq(fake_host__start(), WSHUB_OK);
    ck_assert_ptr_nonnull(H->timer_add(P, 500, false, finish_stop, NULL));
    probe_stop_rc = WSHUB_PENDING;
    fake_host__unload();
    ck_assert_int_eq(probe_fini_calls, 1);
    ck_assert(!fake_host__log_contains("stopped() was not called"));

    load_probe(&probe, NULL);
    probe_stop_rc = WSHUB_PENDING; /* and never calls stopped() */
    fake_host__unload();
    ck_assert_int_eq(probe_fini_calls, 2);
    ck_assert(fake_host__log_contains("ERR plugin probe: stop() returned WSHUB_PENDING but "
                                      "stopped() was not called"));
}
END_TEST

/* ---- metrics ---- */

static wshub_metric_t *m_counter, *m_gauge, *m_hist;

static int setup_metrics(void)
{
    static const char *const labels[] = {"tenant", "kind"};
    static const double buckets[] = {0.1, 1};
    static const double bad_buckets[] = {1, 1};
    static const char *const le[] = {"le"};
    wshub_metric_def_t d = {WSHUB_METRIC_COUNTER, "probe_msgs_total", "h", labels, 2, NULL, 0};

    m_counter = H->metric_new(P, &d);
    d = (wshub_metric_def_t){WSHUB_METRIC_GAUGE, "probe_open", "h", NULL, 0, NULL, 0};
    m_gauge = H->metric_new(P, &d);
    d = (wshub_metric_def_t){WSHUB_METRIC_HISTOGRAM, "probe_seconds", "h", NULL, 0, buckets, 2};
    m_hist = H->metric_new(P, &d);
    d = (wshub_metric_def_t){WSHUB_METRIC_HISTOGRAM, "probe_bad", "h", NULL, 0, bad_buckets, 2};
    ck_assert_ptr_null(H->metric_new(P, &d));
    d = (wshub_metric_def_t){WSHUB_METRIC_HISTOGRAM, "probe_le", "h", le, 1, NULL, 0};
    ck_assert_ptr_null(H->metric_new(P, &d));
    d = (wshub_metric_def_t){WSHUB_METRIC_GAUGE, "9bad", "h", NULL, 0, NULL, 0};
    ck_assert_ptr_null(H->metric_new(P, &d));
    return m_counter && m_gauge && m_hist ? WSHUB_OK : WSHUB_ERR;
}

START_TEST(test_fake_metrics)
{
    static const char *const a_text[] = {"a", "text"};
    static const char *const b_text[] = {"b", "text"};

    load_probe(&probe, setup_metrics);
    H->metric_add(m_counter, a_text, 1);
    H->metric_add(m_counter, a_text, 2);
    H->metric_add(m_counter, b_text, 1);
    H->metric_add(m_counter, a_text, -1); /* ignored, logged */
    H->metric_add(m_gauge, NULL, 5);
    H->metric_add(m_gauge, NULL, -2);
    H->metric_set(m_counter, a_text, 100); /* wrong kind: ignored, logged */
    H->metric_observe(m_hist, NULL, 0.5);
    H->metric_observe(m_hist, NULL, 3);
    ck_assert_double_eq(fake_host__metric("probe_msgs_total", a_text), 3);
    ck_assert_double_eq(fake_host__metric("probe_msgs_total", b_text), 1);
    ck_assert_double_eq(fake_host__metric("probe_open", NULL), 3);
    ck_assert_double_eq(fake_host__metric("probe_seconds", NULL), 2);
    ck_assert(fake_host__log_contains("metric_add of -1 to counter probe_msgs_total"));
    ck_assert(fake_host__log_contains("metric_set on metric probe_msgs_total of the wrong kind"));
    H->metric_set(m_gauge, NULL, 0.25);
    ck_assert_double_eq(fake_host__metric("probe_open", NULL), 0.25);
    ck_assert(isnan(fake_host__metric("probe_nope", NULL)));
}
END_TEST

/* ---- welcome and per-connection state ---- */

static int welcome_hook(wshub_event_t ev, void *data, void *ud)
{
    (void)ev, (void)ud;
    ck_assert_int_eq(H->welcome_add(data, "resume_token", "\"abc\""), WSHUB_OK);
    ck_assert_int_eq(H->welcome_add(data, "limits", "{\"rate\":5}"), WSHUB_OK);
    return WSHUB_OK;
}

static int state_open(wshub_event_t ev, void *data, void *ud)
{
    wshub_ev_conn_t *e = data;
    unsigned char *st = H->conn_state(e->conn, P);

    (void)ev, (void)ud;
    for (int i = 0; i < 16; i++)
        ck_assert_uint_eq(st[i], 0);
    st[0] = 0xAB;
    return WSHUB_OK;
}

static int state_close(wshub_event_t ev, void *data, void *ud)
{
    wshub_ev_close_t *e = data;
    unsigned char *st = H->conn_state(e->conn, P);

    (void)ev, (void)ud;
    ck_assert_uint_eq(st[0], 0xAB); /* still valid during CONN_CLOSE */
    ck_assert_uint_eq(e->code, 1001);
    trace("close");
    return WSHUB_OK;
}

static int setup_welcome(void)
{
    ck_assert_int_eq(H->hook_add(P, WSHUB_EV_WELCOME, 0, welcome_hook, NULL), WSHUB_OK);
    ck_assert_int_eq(H->hook_add(P, WSHUB_EV_CONN_OPEN, 0, state_open, NULL), WSHUB_OK);
    ck_assert_int_eq(H->hook_add(P, WSHUB_EV_CONN_CLOSE, 0, state_close, NULL), WSHUB_OK);
    ck_assert_int_eq(H->path_add(P, "/raw", dummy_msg, NULL), WSHUB_OK);
    return WSHUB_OK;
}

START_TEST(test_fake_welcome_and_state)
{
    fake_conn_t *c, *r;
    int not_a_welcome = 0;
    wshub_ev_welcome_t stray = {NULL, &not_a_welcome};
    char expect[512];

    load_probe(&probe, setup_welcome);
    c = fake_host__conn_new("acme", "al\"ice", NULL);
    ck_assert_int_eq(fake_host__fire_open(c), WSHUB_OK);
    snprintf(expect, sizeof(expect),
             "{\"type\":\"welcome\",\"connection_id\":%llu,\"server_time\":1700000000000,"
             "\"heartbeat\":25000,\"protocol\":\"wshub.v1\",\"tenant_id\":\"acme\","
             "\"user_id\":\"al\\\"ice\",\"resume_token\":\"abc\",\"limits\":{\"rate\":5}}",
             (unsigned long long)c->id);
    ck_assert_uint_eq(c->n_out, 1);
    ck_assert_str_eq(c->out[0], expect);
    ck_assert_int_eq(H->welcome_add(&stray, "k", "1"), WSHUB_ERR_STATE);
    /* Raw paths get no welcome. */
    r = fake_host__conn_new(NULL, NULL, "/raw");
    ck_assert_int_eq(fake_host__fire_open(r), WSHUB_OK);
    ck_assert_uint_eq(r->n_out, 0);
    /* State lives until after CONN_CLOSE. */
    fake_host__conn_drop(c, 1001);
    ck_assert_str_eq(probe_trace, "close");
    ck_assert_ptr_null(c->state);
    fake_host__conn_drop(c, 1001); /* twice: no second CONN_CLOSE */
    ck_assert_str_eq(probe_trace, "close");
}
END_TEST

START_TEST(test_fake_conn_getters)
{
    fake_conn_t *c;
    wshub_conn_t *h;

    load_probe(&probe, NULL);
    fake_host__advance(10);
    c = fake_host__conn_new(NULL, NULL, "/p");
    h = fake_host__handle(c);
    ck_assert_uint_eq(H->conn_id(h), c->id);
    ck_assert_uint_ge(c->id, 1);
    ck_assert_str_eq(H->conn_tenant(h), "public");
    ck_assert_str_eq(H->conn_user(h), "");
    ck_assert_str_eq(H->conn_path(h), "/p");
    ck_assert_str_eq(H->conn_remote_addr(h), "127.0.0.1");
    ck_assert_str_eq(H->conn_metadata(h), "{}");
    ck_assert_ptr_null(H->conn_subprotocol(h));
    ck_assert_uint_eq(H->conn_created_ms(h), fake_host__now());
    fake_host__advance(5);
    fake_host__deliver(c, "x");
    ck_assert_uint_eq(H->conn_last_seen_ms(h), fake_host__now());
    ck_assert_ptr_nonnull(H->loop_native(P));
    ck_assert_str_eq(H->strerror(WSHUB_ERR_STATE), "WSHUB_ERR_STATE (not allowed now)");
    /* A close code a server may not send becomes 1008. */
    H->conn_close(h, 1005, "x");
    ck_assert_uint_eq(c->close_code, 1008);
    /* Ids are never reused. */
    ck_assert_uint_gt(fake_host__conn_new(NULL, NULL, NULL)->id, c->id);
}
END_TEST

START_TEST(test_fake_outbox_overflow)
{
    fake_conn_t *c;

    load_probe(&probe, NULL);
    c = fake_host__conn_new(NULL, NULL, NULL);
    for (int i = 0; i < FAKE_MAX_OUT; i++)
        ck_assert_int_eq(H->conn_send_text(fake_host__handle(c), "m", 1), WSHUB_OK);
    ck_assert_int_eq(H->conn_send_text(fake_host__handle(c), "m", 1), WSHUB_ERR_LIMIT);
    ck_assert(c->closed);
    ck_assert_uint_eq(c->close_code, 1008);
    fake_host__conn_clear_out(c);
    ck_assert_uint_eq(c->n_out, 0);
    ck_assert_ptr_null(fake_host__last_out(c));
}
END_TEST

Suite *fake_host_suite(void);

Suite *fake_host_suite(void)
{
    Suite *s = suite_create("fake_host");
    TCase *tc;

    tc = tcase_create("table");
    tcase_add_test(tc, test_fake_fills_every_slot);
    suite_add_tcase(s, tc);

    tc = tcase_create("loader");
    tcase_add_checked_fixture(tc, reset, teardown);
    tcase_add_loop_test(tc, test_fake_refuses_bad_descriptors, 0,
                        (int)(sizeof(refused) / sizeof(refused[0])));
    tcase_add_test(tc, test_fake_init_failure_cleans_up);
    suite_add_tcase(s, tc);

    tc = tcase_create("config");
    tcase_add_checked_fixture(tc, reset, teardown);
    tcase_add_test(tc, test_fake_config_defaults_and_accessors);
    tcase_add_test(tc, test_fake_config_errors);
    suite_add_tcase(s, tc);

    tc = tcase_create("registration");
    tcase_add_checked_fixture(tc, reset, teardown);
    tcase_add_test(tc, test_fake_registration_rules);
    tcase_add_test(tc, test_fake_registration_only_in_init);
    suite_add_tcase(s, tc);

    tc = tcase_create("hooks");
    tcase_add_checked_fixture(tc, reset, teardown);
    tcase_add_test(tc, test_fake_hooks_run_in_priority_order);
    tcase_add_loop_test(tc, test_fake_auth_chain, 0,
                        (int)(sizeof(auth_cases) / sizeof(auth_cases[0])));
    tcase_add_test(tc, test_fake_identity_validation);
    tcase_add_test(tc, test_fake_auth_denial_status_clamped);
    tcase_add_test(tc, test_fake_auth_default_subprotocol);
    suite_add_tcase(s, tc);

    tc = tcase_create("messages");
    tcase_add_checked_fixture(tc, reset, teardown);
    tcase_add_loop_test(tc, test_fake_handler_result_replies, 0,
                        (int)(sizeof(handler_errors) / sizeof(handler_errors[0])));
    tcase_add_loop_test(tc, test_fake_bad_envelopes, 0,
                        (int)(sizeof(bad_envelopes) / sizeof(bad_envelopes[0])));
    tcase_add_test(tc, test_fake_message_hooks_and_core_types);
    tcase_add_test(tc, test_fake_ack_and_error_texts);
    suite_add_tcase(s, tc);

    tc = tcase_create("scope");
    tcase_add_checked_fixture(tc, reset, teardown);
    tcase_add_test(tc, test_fake_tenant_scope);
    tcase_add_test(tc, test_fake_system_scope);
    suite_add_tcase(s, tc);

    tc = tcase_create("groups_buffers");
    tcase_add_checked_fixture(tc, reset, teardown);
    tcase_add_test(tc, test_fake_groups);
    tcase_add_test(tc, test_fake_buffer_leak_is_logged);
    tcase_add_test(tc, test_fake_no_leak_no_log);
    tcase_add_test(tc, test_fake_outbox_overflow);
    suite_add_tcase(s, tc);

    tc = tcase_create("loop");
    tcase_add_checked_fixture(tc, reset, teardown);
    tcase_add_test(tc, test_fake_timers);
    tcase_add_test(tc, test_fake_post_from_threads);
    tcase_add_test(tc, test_fake_stop_pending);
    suite_add_tcase(s, tc);

    tc = tcase_create("metrics");
    tcase_add_checked_fixture(tc, reset, teardown);
    tcase_add_test(tc, test_fake_metrics);
    suite_add_tcase(s, tc);

    tc = tcase_create("connections");
    tcase_add_checked_fixture(tc, reset, teardown);
    tcase_add_test(tc, test_fake_welcome_and_state);
    tcase_add_test(tc, test_fake_conn_getters);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(fake_host_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
