/*
 * Loader fixture: cycle_a provides "svc_a" and requires "svc_b"; cycle_b provides "svc_b" and
 * requires "svc_a" (declared in the descriptors, so the loader sees the cycle before any init).
 * Expected: "plugins: dependency cycle: cycle_a -> cycle_b -> cycle_a" (the rotation follows the
 * YAML order), and no init runs.
 */
#include <wshub/sdk.h>

static const char *const cycle_requires[] = {"svc_b", NULL};
static const char *const cycle_provides[] = {"svc_a", NULL};
static const int cycle_vtable = 1;

static int cycle_init(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                      void **state)
{
    (void)cfg, (void)state;
    host->service_put(self, "svc_a", 1, &cycle_vtable);
    host->set_error(self, "cycle_a: init must never run");
    return WSHUB_ERR;
}

WSHUB_PLUGIN(.name = "cycle_a", .version = "1.0", .requires = cycle_requires,
             .provides = cycle_provides, .init = cycle_init);
