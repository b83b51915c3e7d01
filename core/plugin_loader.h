/*
 * plugin_loader: dlopen, validation of the descriptor before any plugin code runs, dependency
 * order by services, the lifecycle (init -> start -> reload -> stop -> fini) and cleanup of
 * everything a plugin registered.
 */
#ifndef WSHUB_PLUGIN_LOADER_H
#define WSHUB_PLUGIN_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <wshub/sdk.h>

#include "config.h"
#include "dlist.h"

enum plugin_phase {
    PLUGIN_LOADED = 0, /* descriptor validated, init not yet called */
    PLUGIN_INIT = 1,   /* inside init(): registration allowed */
    PLUGIN_READY = 2,  /* init succeeded */
    PLUGIN_STARTED = 3,
    PLUGIN_STOPPING = 4, /* stop() returned PENDING */
    PLUGIN_STOPPED = 5,
};

struct wshub_plugin {
    char *name;
    char *path;
    void *handle;               /* dlopen handle (NULL for built-in/test plugins) */
    wshub_plugin_desc_t desc;   /* copy, zero-extended beyond the plugin's struct_size */
    const config_plugin_t *cfg; /* borrowed from the config */
    void *state;                /* from init */
    size_t state_off;           /* offset of its conn_state in a connection's block */
    int phase;
    unsigned order; /* load position */
    bool optional;
    char error[512]; /* set_error text */
    dlist_t groups;  /* groups it owns */
    dlist_t timers;  /* timers it owns */
};

/* Loads, orders and inits every plugin in the config. Returns 0, or 2 on a fatal error (the
 * message already logged). */
int plugin_loader__load_all(config_t *cfg);
/* --check-config: opens and validates every plugin (descriptor, options, order) without
 * running plugin code. Returns 0 or 2. */
int plugin_loader__check_all(config_t *cfg);
/* --plugin-help: prints each configured plugin's descriptor and options. Returns 0 or 2. */
int plugin_loader__describe_all(config_t *cfg, FILE *out);
int plugin_loader__start_all(void);
/* Calls stop() in reverse order; returns true when every plugin has stopped (none PENDING). */
bool plugin_loader__stop_all(void);
bool plugin_loader__all_stopped(void);
/* Calls fini() in reverse order, removes registrations, dlcloses. */
void plugin_loader__fini_all(void);
/* SIGHUP: reload() of reloadable plugins with their new config nodes (by name). */
void plugin_loader__reload_all(config_t *newcfg);

size_t plugin_loader__count(void);
wshub_plugin_t *plugin_loader__at(size_t i);
/* Total bytes of per-connection plugin state. */
size_t plugin_loader__state_size(void);
/* Whether registration is allowed now for p (inside its init). */
bool plugin_loader__in_init(const wshub_plugin_t *p);
/* Service registry. */
int plugin_loader__service_put(wshub_plugin_t *p, const char *name, uint32_t ver,
                               const void *vtable);
const void *plugin_loader__service_get(const char *name, uint32_t min_ver);

#endif
