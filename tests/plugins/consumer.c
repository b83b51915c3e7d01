/*
 * Loader fixture: requires "greeter" and calls it during init, which only works when the loader
 * ordered the provider first. Logs "consumer: greeter says: hello from provider" (NOTICE); fails
 * init with "greeter v1 not available" otherwise. Also checks that asking for a version newer
 * than offered returns NULL.
 */
#include <wshub/sdk.h>

#include "greeter.h"

static const char *const consumer_requires[] = {GREETER_SERVICE, NULL};

static int consumer_init(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                         void **state)
{
    const greeter_v1_t *g = host->service_get(self, GREETER_SERVICE, 1);

    (void)cfg, (void)state;
    if (!g) {
        host->set_error(self, "greeter v1 not available");
        return WSHUB_ERR_NOTFOUND;
    }
    if (host->service_get(self, GREETER_SERVICE, 2) != NULL) {
        host->set_error(self, "service_get returned greeter v1 for a v2 request");
        return WSHUB_ERR;
    }
    host->log(self, WSHUB_LOG_NOTICE, "consumer: greeter says: %s", g->greet("consumer"));
    return WSHUB_OK;
}

WSHUB_PLUGIN(.name = "consumer", .version = "1.0", .requires = consumer_requires,
             .init = consumer_init);
