/*
 * plugin_loader: see plugin_loader.h.
 *
 * Validation happens on data only: the frozen 16-byte header of `wshub_plugin_entry` is read and
 * checked (magic, ABI major equal, minor <= ours, size) before any plugin function is called,
 * and only the bytes the plugin's struct_size covers are copied (the rest stays zero), so an
 * older plugin's shorter descriptor reads as "absent" for fields appended since.
 */
#include "plugin_loader.h"

#include <dlfcn.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "group.h"
#include "hooks.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "plugin_host.h"
#include "router.h"
#include "server.h"
#include "strmap.h"
#include "timer.h"
#include "wshub_build.h"

/* Size of the descriptor in ABI 1.0: the smallest a plugin of major 1 may export. */
#define DESC_SIZE_1_0 (offsetof(wshub_plugin_desc_t, fini) + sizeof(void (*)(void)))
#define MAX_PLUGINS   64

static wshub_plugin_t *g_plugins[MAX_PLUGINS]; /* in init (dependency) order */
static size_t g_n;
static size_t g_state_size;
static strmap_t g_services;

typedef struct service {
    wshub_plugin_t *owner;
    uint32_t version;
    const void *vtable;
} service_t;

size_t plugin_loader__count(void)
{
    return g_n;
}

wshub_plugin_t *plugin_loader__at(size_t i)
{
    return i < g_n ? g_plugins[i] : NULL;
}

size_t plugin_loader__state_size(void)
{
    return g_state_size;
}

bool plugin_loader__in_init(const wshub_plugin_t *p)
{
    return p && p->phase == PLUGIN_INIT;
}

static bool listed(const char *const *list, const char *name)
{
    for (size_t i = 0; list && list[i]; i++)
        if (strcmp(list[i], name) == 0)
            return true;
    return false;
}

int plugin_loader__service_put(wshub_plugin_t *p, const char *name, uint32_t ver,
                               const void *vtable)
{
    service_t *s;

    if (!plugin_loader__in_init(p))
        return WSHUB_ERR_STATE;
    if (!name || !*name || !vtable)
        return WSHUB_ERR_INVAL;
    if (!listed(p->desc.provides, name)) {
        log__write(WSHUB_LOG_ERR, "core",
                   "plugin %s: service_put('%s') but the descriptor's provides does not list it",
                   p->name, name);
        return WSHUB_ERR_INVAL;
    }
    if (strmap__get(&g_services, name))
        return WSHUB_ERR_EXISTS;
    s = mem__alloc(sizeof(*s));
    *s = (service_t){p, ver, vtable};
    strmap__put(&g_services, name, s);
    return WSHUB_OK;
}

const void *plugin_loader__service_get(const char *name, uint32_t min_ver)
{
    service_t *s = name ? strmap__get(&g_services, name) : NULL;

    return s && s->version >= min_ver ? s->vtable : NULL;
}

struct svc_sweep {
    wshub_plugin_t *owner;
    char *keys[64];
    size_t n;
};

static int collect_services(void *ud, const char *key, void *val)
{
    struct svc_sweep *s = ud;
    if ((!s->owner || ((service_t *)val)->owner == s->owner) && s->n < 64)
        s->keys[s->n++] = mem__strdup(key);
    return 0;
}

static void services_remove(wshub_plugin_t *owner)
{
    struct svc_sweep s = {owner, {0}, 0};

    strmap__each(&g_services, collect_services, &s);
    for (size_t i = 0; i < s.n; i++) {
        free(strmap__del(&g_services, s.keys[i]));
        free(s.keys[i]);
    }
}

/* Everything a plugin registered goes when it goes. */
static void remove_registrations(wshub_plugin_t *p)
{
    hooks__remove_owner(p);
    router__remove_owner(p);
    services_remove(p);
    timer__free_owner(p);
    group__free_owner(p);
    metrics__remove_owner(g_srv.metrics, p);
}

static void plugin_free(wshub_plugin_t *p)
{
    if (p->handle)
        dlclose(p->handle);
    free(p->name);
    free(p->path);
    free(p);
}

static bool file_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode);
}

/* <dir>/<name>.so, or the build tree's <dir>/<name>/<name>.so. */
static char *resolve_path(const config_t *cfg, const config_plugin_t *e)
{
    const char *dirs[3];
    size_t nd = 0;
    char buf[4096];

    if (e->path)
        return mem__strdup(e->path);
    if (cfg->plugin_dir)
        dirs[nd++] = cfg->plugin_dir;
    else {
        dirs[nd++] = WSHUB_PLUGIN_DIR_INSTALLED;
        dirs[nd++] = WSHUB_PLUGIN_DIR_BUILD;
    }
    for (size_t i = 0; i < nd; i++) {
        snprintf(buf, sizeof(buf), "%s/%s.so", dirs[i], e->name);
        if (file_exists(buf))
            return mem__strdup(buf);
        snprintf(buf, sizeof(buf), "%s/%s/%s.so", dirs[i], e->name, e->name);
        if (file_exists(buf))
            return mem__strdup(buf);
    }
    snprintf(buf, sizeof(buf), "%s/%s.so", dirs[0], e->name);
    return mem__strdup(buf);
}

static bool valid_name(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > 63)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/*
 * Opens and validates one plugin. Returns the plugin, or NULL after logging why. No plugin code
 * runs here: dlopen with RTLD_NOW resolves symbols, and a plugin built with -z defs has no
 * constructors of ours to run (a constructor in a plugin is its own business).
 */
static wshub_plugin_t *open_plugin(const config_t *cfg, const config_plugin_t *e)
{
    char *path = resolve_path(cfg, e);
    void *h;
    const wshub_plugin_header_t *hdr;
    const void *sym;
    wshub_plugin_t *p;
    size_t copy;

    dlerror();
    h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!h) {
        const char *err = dlerror();
        log_err("plugin %s: cannot load %s: %s", e->name, path, err ? err : "unknown error");
        free(path);
        return NULL;
    }
    sym = dlsym(h, WSHUB_PLUGIN_SYMBOL);
    if (!sym) {
        log_err("plugin %s: %s does not export " WSHUB_PLUGIN_SYMBOL " (not a wshub plugin)",
                e->name, path);
        goto fail;
    }
    hdr = sym;
    if (hdr->magic != WSHUB_PLUGIN_MAGIC) {
        log_err("plugin %s: %s: bad magic 0x%08x (not a wshub plugin)", e->name, path, hdr->magic);
        goto fail;
    }
    if (hdr->abi_major != WSHUB_SDK_ABI_MAJOR || hdr->abi_minor > WSHUB_SDK_ABI_MINOR) {
        log_err("plugin %s: built for SDK ABI %u.%u, this server has %u.%u", e->name,
                hdr->abi_major, hdr->abi_minor, WSHUB_SDK_ABI_MAJOR, WSHUB_SDK_ABI_MINOR);
        goto fail;
    }
    if (hdr->struct_size < DESC_SIZE_1_0) {
        log_err("plugin %s: %s: descriptor size %u is smaller than ABI %u.0's %zu", e->name, path,
                hdr->struct_size, WSHUB_SDK_ABI_MAJOR, (size_t)DESC_SIZE_1_0);
        goto fail;
    }
    p = mem__calloc(1, sizeof(*p));
    copy = hdr->struct_size < sizeof(p->desc) ? hdr->struct_size : sizeof(p->desc);
    memcpy(&p->desc, sym, copy);
    p->handle = h;
    p->path = path;
    p->name = mem__strdup(e->name);
    p->cfg = e;
    p->optional = e->optional;
    DLIST_INIT(&p->groups);
    DLIST_INIT(&p->timers);
    if (!p->desc.init) {
        log_err("plugin %s: descriptor has no init function", e->name);
        plugin_free(p);
        return NULL;
    }
    if (!valid_name(p->desc.name) || strcmp(p->desc.name, e->name) != 0) {
        log_err("plugin %s: %s is plugin '%s', not '%s'", e->name, path,
                p->desc.name ? p->desc.name : "(null)", e->name);
        plugin_free(p);
        return NULL;
    }
    return p;

fail:
    dlclose(h);
    free(path);
    return NULL;
}

/* Finds the plugin (among `cand`) that provides `svc`; NULL when none. */
static wshub_plugin_t *provider_of(wshub_plugin_t **cand, size_t n, const char *svc)
{
    for (size_t i = 0; i < n; i++)
        if (cand[i] && listed(cand[i]->desc.provides, svc))
            return cand[i];
    return NULL;
}

/*
 * Orders plugins so that providers come before the plugins that require their services (Kahn's
 * algorithm; among ready plugins the config order wins). Returns 0, or 2 after logging a missing
 * service (fatal unless the requiring plugin is optional: then it is dropped) or a cycle.
 */
static int order_plugins(wshub_plugin_t **cand, size_t n)
{
    bool done[MAX_PLUGINS] = {false};
    size_t placed = 0;

    /* Missing services first: they make a plugin unloadable. Dropping one can make another's
     * requirement missing, so repeat until stable. */
    for (bool changed = true; changed;) {
        changed = false;
        for (size_t i = 0; i < n; i++) {
            const char *const *req = cand[i] ? cand[i]->desc.requires : NULL;
            for (size_t k = 0; req && req[k]; k++) {
                if (provider_of(cand, n, req[k]))
                    continue;
                log_err("plugin %s: requires service '%s', which no plugin provides", cand[i]->name,
                        req[k]);
                if (!cand[i]->optional)
                    return 2;
                log_warn("plugin %s: optional, continuing without it", cand[i]->name);
                plugin_free(cand[i]);
                cand[i] = NULL;
                changed = true;
                break;
            }
        }
    }
    for (size_t i = 0; i < n; i++)
        if (!cand[i])
            done[i] = true;
    while (true) {
        bool progress = false;
        for (size_t i = 0; i < n; i++) {
            bool ready = !done[i];
            const char *const *req = ready ? cand[i]->desc.requires : NULL;
            for (size_t k = 0; ready && req && req[k]; k++) {
                wshub_plugin_t *pv = provider_of(cand, n, req[k]);
                for (size_t j = 0; j < n; j++)
                    if (cand[j] == pv && !done[j] && j != i)
                        ready = false;
                if (pv == cand[i])
                    ready = true; /* a plugin requiring its own service is odd but not a cycle */
            }
            if (ready) {
                g_plugins[placed++] = cand[i];
                done[i] = true;
                progress = true;
                break; /* restart: the earliest ready plugin in config order goes next */
            }
        }
        if (!progress)
            break;
    }
    for (size_t i = 0; i < n; i++) {
        if (!done[i]) {
            /* Walk the requirement chain from i until a plugin repeats: that is the cycle. */
            char msg[512] = "";
            size_t len = 0, cur = i;
            bool seen[MAX_PLUGINS] = {false};
            size_t start = i;
            while (!seen[cur]) {
                seen[cur] = true;
                const char *const *req = cand[cur]->desc.requires;
                size_t next = cur;
                for (size_t k = 0; req && req[k]; k++) {
                    wshub_plugin_t *pv = provider_of(cand, n, req[k]);
                    for (size_t j = 0; j < n; j++)
                        if (cand[j] == pv && !done[j] && j != cur)
                            next = j;
                    if (next != cur)
                        break;
                }
                if (next == cur)
                    break;
                cur = next;
            }
            start = cur;
            cur = start;
            do {
                len += (size_t)snprintf(msg + len, sizeof(msg) - len, "%s -> ", cand[cur]->name);
                const char *const *req = cand[cur]->desc.requires;
                size_t next = cur;
                for (size_t k = 0; req && req[k] && next == cur; k++) {
                    wshub_plugin_t *pv = provider_of(cand, n, req[k]);
                    for (size_t j = 0; j < n; j++)
                        if (cand[j] == pv && !done[j] && j != cur)
                            next = j;
                }
                cur = next;
            } while (cur != start && len < sizeof(msg) - 70);
            snprintf(msg + len, sizeof(msg) - len, "%s", cand[start]->name);
            log_err("plugins: dependency cycle: %s", msg);
            for (size_t j = 0; j < placed; j++)
                g_plugins[j] = NULL;
            return 2;
        }
    }
    g_n = placed;
    return 0;
}

/*
 * Opens every configured plugin, validates descriptors and config options, and orders them.
 * On success g_plugins[0..g_n) holds them in init order. Returns 0 or 2 (logged).
 */
static int open_all(config_t *cfg)
{
    wshub_plugin_t *cand[MAX_PLUGINS] = {NULL};
    size_t n = 0;
    char err[1024];
    int rc = 0;

    strmap__init(&g_services);
    g_n = 0;
    if (cfg->n_plugins > MAX_PLUGINS) {
        log_err("plugins: at most %d plugins, %zu configured", MAX_PLUGINS, cfg->n_plugins);
        return 2;
    }
    for (size_t i = 0; i < cfg->n_plugins; i++) {
        const config_plugin_t *e = &cfg->plugins[i];
        wshub_plugin_t *p = open_plugin(cfg, e);
        if (!p) {
            if (e->optional) {
                log_warn("plugin %s: optional, continuing without it", e->name);
                continue;
            }
            rc = 2;
            goto fail;
        }
        for (size_t j = 0; j < n; j++) {
            if (strcmp(cand[j]->desc.name, p->desc.name) == 0) {
                log_err("plugin %s: duplicate plugin name (already loaded from %s)", p->name,
                        cand[j]->path);
                plugin_free(p);
                rc = 2;
                goto fail;
            }
        }
        if (config__check_options(e->config, e->name, p->desc.options, err, sizeof(err)) != 0) {
            log_err("%s", err);
            plugin_free(p);
            rc = 2;
            goto fail;
        }
        p->order = (unsigned)i;
        cand[n++] = p;
    }
    rc = order_plugins(cand, n);
    if (rc) {
        for (size_t i = 0; i < n; i++)
            if (cand[i])
                plugin_free(cand[i]);
        strmap__free(&g_services);
        return rc;
    }
    return 0;

fail:
    for (size_t i = 0; i < n; i++)
        plugin_free(cand[i]);
    strmap__free(&g_services);
    return rc;
}

int plugin_loader__check_all(config_t *cfg)
{
    int rc = open_all(cfg);

    for (size_t i = 0; i < g_n; i++)
        plugin_free(g_plugins[i]);
    g_n = 0;
    strmap__free(&g_services);
    return rc;
}

static const char *opt_type_name(wshub_opt_type_t t)
{
    static const char *const names[] = {"?",    "string", "int", "bool", "duration",
                                        "size", "list",   "map", "any"};
    return (int)t > 0 && (int)t <= 8 ? names[t] : "?";
}

static void print_list(FILE *out, const char *what, const char *const *list)
{
    if (!list || !list[0])
        return;
    fprintf(out, "  %s:", what);
    for (size_t i = 0; list[i]; i++)
        fprintf(out, " %s", list[i]);
    fprintf(out, "\n");
}

int plugin_loader__describe_all(config_t *cfg, FILE *out)
{
    int rc = open_all(cfg);

    for (size_t i = 0; i < g_n; i++) {
        const wshub_plugin_desc_t *d = &g_plugins[i]->desc;
        fprintf(out, "%s %s (SDK ABI %u.%u) %s\n", d->name, d->version ? d->version : "",
                d->hdr.abi_major, d->hdr.abi_minor, g_plugins[i]->path);
        if (d->description)
            fprintf(out, "  %s\n", d->description);
        print_list(out, "requires", d->requires);
        print_list(out, "provides", d->provides);
        for (const wshub_opt_t *o = d->options; o && o->key; o++)
            fprintf(out, "  %-24s %-8s %s%s%s%s  %s\n", o->key, opt_type_name(o->type),
                    o->required ? "required" : "", o->def ? "default " : "", o->def ? o->def : "",
                    "", o->help ? o->help : "");
        fprintf(out, "\n");
    }
    for (size_t i = 0; i < g_n; i++)
        plugin_free(g_plugins[i]);
    g_n = 0;
    strmap__free(&g_services);
    return rc;
}

int plugin_loader__load_all(config_t *cfg)
{
    int rc = open_all(cfg);

    if (rc)
        return rc;

    /* Per-connection state blocks: each plugin gets a 16-byte aligned slice. */
    g_state_size = 0;
    for (size_t i = 0; i < g_n; i++) {
        g_plugins[i]->state_off = g_state_size;
        g_state_size += (g_plugins[i]->desc.conn_state_size + 15) & ~(size_t)15;
    }

    for (size_t i = 0; i < g_n; i++) {
        wshub_plugin_t *p = g_plugins[i];
        int irc;
        if (p->desc.flags & WSHUB_PLUGIN_SYSTEM_SCOPE)
            log_notice("plugin %s: declares system scope: it may reach connections of every "
                       "tenant",
                       p->name);
        p->phase = PLUGIN_INIT;
        p->error[0] = '\0';
        irc = p->desc.init(p, plugin_host__api(), p->cfg->config, &p->state);
        if (irc < 0) {
            log_err("plugin %s: init failed: %s", p->name,
                    p->error[0] ? p->error : plugin_host__api()->strerror(irc));
            remove_registrations(p);
            p->phase = PLUGIN_LOADED;
            if (!p->optional) {
                /* fini the ones already initialised, in reverse. */
                for (size_t j = i; j-- > 0;) {
                    if (g_plugins[j]->desc.fini)
                        g_plugins[j]->desc.fini(g_plugins[j], g_plugins[j]->state);
                    remove_registrations(g_plugins[j]);
                }
                for (size_t j = 0; j < g_n; j++)
                    plugin_free(g_plugins[j]);
                g_n = 0;
                strmap__free(&g_services);
                return 2;
            }
            log_warn("plugin %s: optional, continuing without it", p->name);
            plugin_free(p);
            memmove(&g_plugins[i], &g_plugins[i + 1], (g_n - i - 1) * sizeof(g_plugins[0]));
            g_n--;
            i--;
            continue;
        }
        p->phase = PLUGIN_READY;
        {
            const char *labels[2] = {p->name, p->desc.version ? p->desc.version : ""};
            metrics__set(g_srv.m.plugins, labels, 1);
        }
        log_info("plugin %s %s loaded from %s", p->name, p->desc.version ? p->desc.version : "",
                 p->path);
    }
    return 0;
}

int plugin_loader__start_all(void)
{
    for (size_t i = 0; i < g_n; i++) {
        wshub_plugin_t *p = g_plugins[i];
        if (p->desc.start) {
            int rc;
            p->error[0] = '\0';
            rc = p->desc.start(p, p->state);
            if (rc < 0) {
                log_err("plugin %s: start failed: %s", p->name,
                        p->error[0] ? p->error : plugin_host__api()->strerror(rc));
                return 1;
            }
        }
        p->phase = PLUGIN_STARTED;
    }
    return 0;
}

bool plugin_loader__stop_all(void)
{
    for (size_t i = g_n; i-- > 0;) {
        wshub_plugin_t *p = g_plugins[i];
        if (p->phase >= PLUGIN_STOPPING)
            continue;
        if (p->desc.stop && p->phase >= PLUGIN_READY) {
            p->phase = PLUGIN_STOPPING;
            if (p->desc.stop(p, p->state) == WSHUB_PENDING)
                continue;
        }
        p->phase = PLUGIN_STOPPED;
    }
    return plugin_loader__all_stopped();
}

bool plugin_loader__all_stopped(void)
{
    for (size_t i = 0; i < g_n; i++)
        if (g_plugins[i]->phase == PLUGIN_STOPPING)
            return false;
    return true;
}

void plugin_loader__fini_all(void)
{
    for (size_t i = g_n; i-- > 0;) {
        wshub_plugin_t *p = g_plugins[i];
        if (p->desc.fini && p->phase >= PLUGIN_READY)
            p->desc.fini(p, p->state);
        remove_registrations(p);
    }
    for (size_t i = g_n; i-- > 0;)
        plugin_free(g_plugins[i]);
    g_n = 0;
    g_state_size = 0;
    strmap__free(&g_services);
}

void plugin_loader__reload_all(config_t *newcfg)
{
    for (size_t i = 0; i < g_n; i++) {
        wshub_plugin_t *p = g_plugins[i];
        const config_plugin_t *e = NULL;
        char err[1024];
        for (size_t j = 0; j < newcfg->n_plugins; j++)
            if (strcmp(newcfg->plugins[j].name, p->name) == 0)
                e = &newcfg->plugins[j];
        if (!e) {
            log_warn("plugin %s: not in the new config; plugins are not unloaded on reload",
                     p->name);
            continue;
        }
        if (!(p->desc.flags & WSHUB_PLUGIN_RELOADABLE) || !p->desc.reload) {
            log_info("plugin %s: not reloadable, keeps its configuration", p->name);
            continue;
        }
        if (config__check_options(e->config, e->name, p->desc.options, err, sizeof(err)) != 0) {
            log_err("reload: %s (plugin %s keeps its configuration)", err, p->name);
            continue;
        }
        p->error[0] = '\0';
        if (p->desc.reload(p, p->state, e->config) < 0) {
            log_err("plugin %s: reload failed: %s (keeps its configuration)", p->name,
                    p->error[0] ? p->error : "error");
            continue;
        }
        p->cfg = e;
        log_info("plugin %s: configuration reloaded", p->name);
    }
}
