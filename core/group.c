/* group: see group.h. */
#include "group.h"

#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "conn.h"
#include "mem.h"
#include "plugin_loader.h"

wshub_group_t *group__new(wshub_plugin_t *owner, const char *tenant)
{
    wshub_group_t *g = mem__calloc(1, sizeof(*g));

    g->owner = owner;
    g->tenant = tenant ? mem__strdup(tenant) : NULL;
    DLIST_INIT(&g->link);
    if (owner)
        dlist__push(&owner->groups, &g->link);
    return g;
}

/* Finds the membership entry of g in c's list. Connections belong to few groups each. */
static struct group_member *find_member(const wshub_conn_t *c, const wshub_group_t *g)
{
    for (uint16_t i = 0; i < c->n_memberships; i++)
        if (c->memberships[i].g == g)
            return &c->memberships[i];
    return NULL;
}

/* Removes the member at idx: the last member moves into its slot and its back-index follows. */
static void remove_at(wshub_group_t *g, uint32_t idx)
{
    wshub_conn_t *last = g->members[--g->n];

    if (idx != g->n) {
        g->members[idx] = last;
        find_member(last, g)->idx = idx;
    }
}

/* Drops the membership entry of g from c's list (swap with the last entry). */
static void drop_membership(wshub_conn_t *c, struct group_member *m)
{
    *m = c->memberships[--c->n_memberships];
    if (c->n_memberships == 0) {
        free(c->memberships);
        c->memberships = NULL;
        c->cap_memberships = 0;
    }
}

void group__free(wshub_group_t *g)
{
    if (!g)
        return;
    for (uint32_t i = 0; i < g->n; i++) {
        wshub_conn_t *c = g->members[i];
        drop_membership(c, find_member(c, g));
    }
    if (dlist__linked(&g->link))
        dlist__remove(&g->link);
    free(g->members);
    free(g->tenant);
    free(g);
}

int group__add(wshub_group_t *g, wshub_conn_t *c)
{
    /* Tenants are compared by name: tenant objects live only while they have connections. */
    if (g->tenant && (!c->tenant || strcmp(c->tenant->name, g->tenant) != 0))
        return WSHUB_ERR_DENIED;
    if (!conn__is_live(c))
        return WSHUB_ERR_STATE;
    if (find_member(c, g))
        return WSHUB_ERR_EXISTS;
    if (c->n_memberships == UINT16_MAX)
        return WSHUB_ERR_LIMIT;
    if (g->n == g->cap) {
        g->cap = g->cap ? g->cap * 2 : 8;
        g->members = mem__realloc(g->members, g->cap * sizeof(*g->members));
    }
    if (c->n_memberships == c->cap_memberships) {
        /* The capacity is a uint16_t: doubling 32768 would wrap to 0, so it saturates at
         * UINT16_MAX (n_memberships stops below that, see the limit check above). */
        if (!c->cap_memberships)
            c->cap_memberships = 2;
        else if (c->cap_memberships > UINT16_MAX / 2)
            c->cap_memberships = UINT16_MAX;
        else
            c->cap_memberships = (uint16_t)(c->cap_memberships * 2);
        c->memberships = mem__realloc(c->memberships, c->cap_memberships * sizeof(*c->memberships));
    }
    c->memberships[c->n_memberships++] = (struct group_member){g, g->n};
    g->members[g->n++] = c;
    return WSHUB_OK;
}

int group__remove(wshub_group_t *g, wshub_conn_t *c)
{
    struct group_member *m = find_member(c, g);
    uint32_t idx;

    if (!m)
        return WSHUB_ERR_NOTFOUND;
    idx = m->idx;
    drop_membership(c, m);
    remove_at(g, idx);
    return WSHUB_OK;
}

bool group__has(const wshub_group_t *g, const wshub_conn_t *c)
{
    return find_member(c, g) != NULL;
}

/*
 * Queues b for every member. conn__send takes a reference per recipient (and picks the
 * compressed variant, made once, for permessage-deflate connections); nothing is copied.
 * A member that turns out to be a slow consumer starts closing, but stays in the array until its
 * close is processed at the end of the iteration, so iterating by index stays valid.
 */
size_t group__send(wshub_group_t *g, wshub_buf_t *b, const wshub_conn_t *except)
{
    size_t sent = 0;

    for (uint32_t i = 0; i < g->n; i++) {
        wshub_conn_t *c = g->members[i];
        if (c != except && conn__send(c, b) == WSHUB_OK)
            sent++;
    }
    return sent;
}

int group__each(const wshub_group_t *g, wshub_conn_iter_cb cb, void *ud)
{
    for (uint32_t i = 0; i < g->n; i++) {
        int rc = cb(g->members[i], ud);
        if (rc)
            return rc;
    }
    return 0;
}

void group__leave_all(wshub_conn_t *c)
{
    while (c->n_memberships) {
        struct group_member m = c->memberships[c->n_memberships - 1];
        drop_membership(c, &c->memberships[c->n_memberships - 1]);
        remove_at(m.g, m.idx);
    }
}

void group__free_owner(wshub_plugin_t *owner)
{
    while (!DLIST_EMPTY(&owner->groups))
        group__free(DLIST_ENTRY(owner->groups.next, wshub_group_t, link));
}
