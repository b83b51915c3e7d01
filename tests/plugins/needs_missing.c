/*
 * Loader fixture: requires the service "nope", which no plugin provides. Expected:
 * "plugin needs_missing: requires service 'nope', which no plugin provides", and init never runs.
 */
#include <wshub/sdk.h>

static const char *const needs_requires[] = {"nope", NULL};

static int needs_init(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                      void **state)
{
    (void)cfg, (void)state;
    host->set_error(self, "needs_missing: init must never run");
    return WSHUB_ERR;
}

WSHUB_PLUGIN(.name = "needs_missing", .version = "1.0", .requires = needs_requires,
             .init = needs_init);
