/* hooks: see hooks.h. Chains are small sorted arrays: registration is rare, dispatch hot. */
#include "hooks.h"

#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "plugin_loader.h"

#define N_EVENTS 7 /* highest event value + 1 */

typedef struct hook {
    int prio;
    unsigned seq;
    wshub_plugin_t *owner;
    wshub_hook_cb cb;
    void *ud;
} hook_t;

static struct {
    hook_t *v;
    size_t n;
} g_chains[N_EVENTS];
static unsigned g_seq;

int hooks__add(wshub_plugin_t *owner, wshub_event_t ev, int prio, wshub_hook_cb cb, void *ud)
{
    size_t i;

    if ((int)ev <= 0 || (int)ev >= N_EVENTS || !cb)
        return WSHUB_ERR_INVAL;
    g_chains[ev].v = mem__realloc(g_chains[ev].v, (g_chains[ev].n + 1) * sizeof(hook_t));
    /* Insert after every hook with prio <= this one: ties keep registration order. */
    for (i = g_chains[ev].n; i > 0 && g_chains[ev].v[i - 1].prio > prio; i--)
        g_chains[ev].v[i] = g_chains[ev].v[i - 1];
    g_chains[ev].v[i] = (hook_t){prio, g_seq++, owner, cb, ud};
    g_chains[ev].n++;
    return WSHUB_OK;
}

void hooks__remove_owner(wshub_plugin_t *owner)
{
    for (int ev = 0; ev < N_EVENTS; ev++) {
        size_t w = 0;
        for (size_t r = 0; r < g_chains[ev].n; r++)
            if (g_chains[ev].v[r].owner != owner)
                g_chains[ev].v[w++] = g_chains[ev].v[r];
        g_chains[ev].n = w;
    }
}

void hooks__clear(void)
{
    for (int ev = 0; ev < N_EVENTS; ev++) {
        free(g_chains[ev].v);
        g_chains[ev].v = NULL;
        g_chains[ev].n = 0;
    }
}

bool hooks__any(wshub_event_t ev)
{
    return (int)ev > 0 && (int)ev < N_EVENTS && g_chains[ev].n > 0;
}

/* Hooks may not register hooks (registration only happens in init), so the chain cannot move
 * under us while it runs. */
void hooks__run_all(wshub_event_t ev, void *data)
{
    for (size_t i = 0; i < g_chains[ev].n; i++)
        g_chains[ev].v[i].cb(ev, data, g_chains[ev].v[i].ud);
}

int hooks__run_auth(wshub_ev_auth_t *ev)
{
    for (size_t i = 0; i < g_chains[WSHUB_EV_AUTH].n; i++) {
        hook_t *h = &g_chains[WSHUB_EV_AUTH].v[i];
        int rc = h->cb(WSHUB_EV_AUTH, ev, h->ud);
        if (rc == WSHUB_DEFER)
            continue;
        return rc < 0 ? rc : WSHUB_OK;
    }
    return WSHUB_OK;
}

int hooks__run_message(wshub_ev_message_t *ev)
{
    for (size_t i = 0; i < g_chains[WSHUB_EV_MESSAGE_IN].n; i++) {
        hook_t *h = &g_chains[WSHUB_EV_MESSAGE_IN].v[i];
        int rc = h->cb(WSHUB_EV_MESSAGE_IN, ev, h->ud);
        if (rc < 0)
            return rc;
    }
    return WSHUB_OK;
}
