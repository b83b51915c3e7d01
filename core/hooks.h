/*
 * hooks: per-event chains of plugin callbacks, sorted by priority (ties: registration order).
 */
#ifndef WSHUB_HOOKS_H
#define WSHUB_HOOKS_H

#include <stdbool.h>

#include <wshub/sdk.h>

int hooks__add(wshub_plugin_t *owner, wshub_event_t ev, int prio, wshub_hook_cb cb, void *ud);
/* Removes every hook of owner. */
void hooks__remove_owner(wshub_plugin_t *owner);
bool hooks__any(wshub_event_t ev);
/* CONN_OPEN, CONN_CLOSE, TICK, WELCOME: runs every hook; results are ignored. */
void hooks__run_all(wshub_event_t ev, void *data);
/* AUTH: first hook returning non-DEFER decides (OK accepts, < 0 denies); all DEFER: WSHUB_OK. */
int hooks__run_auth(wshub_ev_auth_t *ev);
/* MESSAGE_IN: runs until a hook returns < 0 (the message is dropped); else WSHUB_OK. */
int hooks__run_message(wshub_ev_message_t *ev);
void hooks__clear(void);

#endif
