/*
 * Loader fixture: built for a newer minor than the server's (it may use host slots the server
 * does not have). Expected: "plugin NAME: built for SDK ABI 1.1, this server has 1.0", and init
 * never runs. The descriptor is written by hand because the minor is the header's plus one.
 */
#include <wshub/sdk.h>

static int newer_minor_init(wshub_plugin_t *self, const wshub_host_api_t *host,
                            const wshub_cfg_t *cfg, void **state)
{
    (void)cfg, (void)state;
    host->set_error(self, "newer_minor: init must never run");
    return WSHUB_ERR;
}

WSHUB_EXPORT const wshub_plugin_desc_t wshub_plugin_entry = {
    .hdr = {WSHUB_PLUGIN_MAGIC, WSHUB_SDK_ABI_MAJOR, WSHUB_SDK_ABI_MINOR + 1,
            (uint32_t)sizeof(wshub_plugin_desc_t), 0},
    .name = "newer_minor",
    .version = "1.0",
    .init = newer_minor_init,
};
