/*
 * Loader fixture: init registers a hook, then fails with set_error. Expected:
 * "plugin init_fails: init failed: boom: 42", the hook removed again, and fini NOT called (the
 * loader does not call fini after a failed init): the NOTICE "fini after failed init" this
 * fixture's fini would log must not appear.
 */
#include <wshub/sdk.h>

static const wshub_host_api_t *g_host;
static int g_state;

static int init_fails_hook(wshub_event_t ev, void *data, void *ud)
{
    (void)ev, (void)data, (void)ud;
    return WSHUB_OK;
}

static int init_fails_init(wshub_plugin_t *self, const wshub_host_api_t *host,
                           const wshub_cfg_t *cfg, void **state)
{
    (void)cfg;
    g_host = host;
    *state = &g_state;
    host->hook_add(self, WSHUB_EV_CONN_OPEN, 0, init_fails_hook, NULL);
    host->set_error(self, "boom: %d", 42);
    return WSHUB_ERR;
}

static void init_fails_fini(wshub_plugin_t *self, void *state)
{
    if (g_host && state == &g_state)
        g_host->log(self, WSHUB_LOG_NOTICE, "fini after failed init");
}

WSHUB_PLUGIN(.name = "init_fails", .version = "1.0", .init = init_fails_init,
             .fini = init_fails_fini);
