/*
 * Loader fixture: dup_a.so and dup_b.so both declare the name "dup". Loading both (under two
 * YAML entries) must fail on the second with "plugin dup: duplicate plugin name (already loaded
 * from .../dup_a.so)".
 */
#include <wshub/sdk.h>

static int dup_init(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                    void **state)
{
    (void)cfg, (void)state;
    host->log(self, WSHUB_LOG_NOTICE, "dup_b: init");
    return WSHUB_OK;
}

WSHUB_PLUGIN(.name = "dup", .version = "1.0", .init = dup_init);
