/*
 * Loader fixture: provides the "greeter" service, version 1. Listed AFTER consumer in the test
 * YAML: the loader must still init it first because consumer requires "greeter".
 */
#include <wshub/sdk.h>

#include "greeter.h"

static const char *provider_greet(const char *who)
{
    (void)who;
    return "hello from provider";
}

static const greeter_v1_t provider_vtable = {provider_greet};
static const char *const provider_provides[] = {GREETER_SERVICE, NULL};

static int provider_init(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                         void **state)
{
    int rc;

    (void)cfg, (void)state;
    rc = host->service_put(self, GREETER_SERVICE, 1, &provider_vtable);
    if (rc != WSHUB_OK) {
        host->set_error(self, "cannot offer %s", GREETER_SERVICE);
        return rc;
    }
    host->log(self, WSHUB_LOG_NOTICE, "provider: greeter v1 offered");
    return WSHUB_OK;
}

WSHUB_PLUGIN(.name = "provider", .version = "1.0", .provides = provider_provides,
             .init = provider_init);
