/*
 * Compiled (not run) by the sdk-header-pedantic test with -std=c11 -Wpedantic -Werror: sdk.h and
 * the macros a plugin uses (WSHUB_PLUGIN, WSHUB_LOG) must be clean ISO C11, so no plugin's
 * warning settings can reject the header.
 */
#include <wshub/sdk.h>

static const wshub_opt_t pedantic_options[] = {
    {"key", WSHUB_OPT_STRING, "value", false, "help"},
    {NULL, 0, NULL, false, NULL},
};

static int pedantic_init(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                         void **state)
{
    (void)cfg;
    *state = NULL;
    WSHUB_LOG(WSHUB_LOG_INFO, "%s", host->cfg_str(cfg, "key", "value"));
    return WSHUB_OK;
}

WSHUB_PLUGIN(.name = "pedantic", .version = "1.0", .options = pedantic_options,
             .init = pedantic_init);
