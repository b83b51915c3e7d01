/*
 * group: the core's fan-out primitive. A group is a set of connections of one tenant; a send
 * queues one shared, already-encoded buffer to every member (by reference: the frame is never
 * copied per recipient). Membership is indexed both ways (group -> members array, conn ->
 * memberships array with positions), so add, remove and a closing connection leaving all its
 * groups are O(1) per membership.
 */
#ifndef WSHUB_GROUP_H
#define WSHUB_GROUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wshub/sdk.h>

#include "dlist.h"

struct group_member {
    wshub_group_t *g;
    uint32_t idx; /* position of the conn in g->members */
};

struct wshub_group {
    wshub_plugin_t *owner; /* NULL for core-owned groups */
    char *tenant;          /* tenant name; NULL: cross-tenant (system scope) */
    wshub_conn_t **members;
    uint32_t n, cap;
    dlist_t link; /* in the owner's list, so unload frees leftovers */
};

/* `tenant` is copied; NULL makes a cross-tenant group. */
wshub_group_t *group__new(wshub_plugin_t *owner, const char *tenant);
void group__free(wshub_group_t *g);
int group__add(wshub_group_t *g, wshub_conn_t *c);
int group__remove(wshub_group_t *g, wshub_conn_t *c);
bool group__has(const wshub_group_t *g, const wshub_conn_t *c);
size_t group__send(wshub_group_t *g, wshub_buf_t *b, const wshub_conn_t *except);
int group__each(const wshub_group_t *g, wshub_conn_iter_cb cb, void *ud);
/* Removes c from every group (a closing connection). */
void group__leave_all(wshub_conn_t *c);
/* Frees every group `owner` still holds (plugin unload). */
void group__free_owner(wshub_plugin_t *owner);

#endif
