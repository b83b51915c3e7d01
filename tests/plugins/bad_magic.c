/*
 * Loader fixture: a descriptor with the wrong magic, written by hand (WSHUB_PLUGIN would fill in
 * the right one). Expected: "plugin NAME: PATH: bad magic 0xdeadbeef (not a wshub plugin)", and
 * init never runs.
 */
#include <wshub/sdk.h>

static int bad_magic_init(wshub_plugin_t *self, const wshub_host_api_t *host,
                          const wshub_cfg_t *cfg, void **state)
{
    (void)cfg, (void)state;
    host->set_error(self, "bad_magic: init must never run");
    return WSHUB_ERR;
}

WSHUB_EXPORT const wshub_plugin_desc_t wshub_plugin_entry = {
    .hdr = {0xdeadbeefu, WSHUB_SDK_ABI_MAJOR, WSHUB_SDK_ABI_MINOR,
            (uint32_t)sizeof(wshub_plugin_desc_t), 0},
    .name = "bad_magic",
    .version = "1.0",
    .init = bad_magic_init,
};
