/*
 * Loader fixture: built for SDK ABI major 2 (an incompatible future SDK). Expected:
 * "plugin NAME: built for SDK ABI 2.0, this server has 1.0", and init never runs.
 */
#include <wshub/sdk.h>

#undef WSHUB_SDK_ABI_MAJOR
#define WSHUB_SDK_ABI_MAJOR 2

static int abi_major2_init(wshub_plugin_t *self, const wshub_host_api_t *host,
                           const wshub_cfg_t *cfg, void **state)
{
    (void)cfg, (void)state;
    host->set_error(self, "abi_major2: init must never run");
    return WSHUB_ERR;
}

WSHUB_PLUGIN(.name = "abi_major2", .version = "1.0", .init = abi_major2_init);
