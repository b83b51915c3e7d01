/*
 * Loader fixture: registration outside init must be refused. init succeeds and keeps host/self;
 * start() then tries hook_add, route_add, path_add, service_put and metric_new. Expected log
 * line (NOTICE): "late hook_add: <strerror(WSHUB_ERR_STATE)> (-7)"; start fails (set_error) if
 * any of them was accepted.
 */
#include <stddef.h>

#include <wshub/sdk.h>

static const wshub_host_api_t *g_host;
static wshub_plugin_t *g_self;
static const int g_vtable = 1;

static int late_hook(wshub_event_t ev, void *data, void *ud)
{
    (void)ev, (void)data, (void)ud;
    return WSHUB_OK;
}

static int late_msg(wshub_conn_t *c, const wshub_msg_t *m, void *ud)
{
    (void)c, (void)m, (void)ud;
    return WSHUB_OK;
}

static int late_init(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                     void **state)
{
    (void)cfg, (void)state;
    g_host = host;
    g_self = self;
    return WSHUB_OK;
}

static int late_start(wshub_plugin_t *self, void *state)
{
    static const wshub_metric_def_t def = {
        WSHUB_METRIC_COUNTER, "late_register_total", "never", NULL, 0, NULL, 0};
    int rc = g_host->hook_add(g_self, WSHUB_EV_TICK, 0, late_hook, NULL);

    (void)state;
    g_host->log(self, WSHUB_LOG_NOTICE, "late hook_add: %s (%d)", g_host->strerror(rc), rc);
    if (rc != WSHUB_ERR_STATE ||
        g_host->route_add(self, "late", late_msg, NULL) != WSHUB_ERR_STATE ||
        g_host->path_add(self, "/late", late_msg, NULL) != WSHUB_ERR_STATE ||
        g_host->service_put(self, "late", 1, &g_vtable) != WSHUB_ERR_STATE ||
        g_host->metric_new(self, &def) != NULL) {
        g_host->set_error(self, "registration after init was accepted");
        return WSHUB_ERR;
    }
    return WSHUB_OK;
}

WSHUB_PLUGIN(.name = "late_register", .version = "1.0", .init = late_init, .start = late_start);
