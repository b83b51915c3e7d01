/*
 * Loader fixture: counts connection events into wshub_test_events_total{event="open|close|
 * message"}, so loader and integration tests can check that hooks of a loaded .so run and that
 * its metric shows up on /metrics. MESSAGE_IN defers (never decides), so routing is unaffected.
 */
#include <stdlib.h>

#include <wshub/sdk.h>

typedef struct counter {
    const wshub_host_api_t *host;
    wshub_metric_t *events;
} counter_t;

static const char *const counter_label_names[] = {"event"};

static int counter_hook(wshub_event_t ev, void *data, void *ud)
{
    counter_t *c = ud;
    const char *label[1];

    (void)data;
    switch (ev) {
    case WSHUB_EV_CONN_OPEN:
        label[0] = "open";
        break;
    case WSHUB_EV_CONN_CLOSE:
        label[0] = "close";
        break;
    case WSHUB_EV_MESSAGE_IN:
        label[0] = "message";
        break;
    default:
        return WSHUB_DEFER;
    }
    c->host->metric_add(c->events, label, 1);
    return ev == WSHUB_EV_MESSAGE_IN ? WSHUB_DEFER : WSHUB_OK;
}

static int counter_init(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                        void **state)
{
    static const wshub_metric_def_t def = {WSHUB_METRIC_COUNTER,
                                           "wshub_test_events_total",
                                           "Connection events seen by the counter fixture.",
                                           counter_label_names,
                                           1,
                                           NULL,
                                           0};
    static const wshub_event_t events[] = {WSHUB_EV_CONN_OPEN, WSHUB_EV_CONN_CLOSE,
                                           WSHUB_EV_MESSAGE_IN};
    counter_t *c = calloc(1, sizeof(*c));

    (void)cfg;
    if (!c) {
        host->set_error(self, "out of memory");
        return WSHUB_ERR_NOMEM;
    }
    *state = c;
    c->host = host;
    c->events = host->metric_new(self, &def);
    if (!c->events) {
        host->set_error(self, "cannot register %s", def.name);
        return WSHUB_ERR;
    }
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); i++) {
        int rc = host->hook_add(self, events[i], 0, counter_hook, c);
        if (rc != WSHUB_OK) {
            host->set_error(self, "hook_add: %s", host->strerror(rc));
            return rc;
        }
    }
    return WSHUB_OK;
}

static void counter_fini(wshub_plugin_t *self, void *state)
{
    (void)self;
    free(state);
}

WSHUB_PLUGIN(.name = "counter", .version = "1.0", .init = counter_init, .fini = counter_fini);
