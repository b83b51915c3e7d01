/* timer: plugin timers and the thread-safe post() queue. */
#ifndef WSHUB_TIMER_H
#define WSHUB_TIMER_H

#include <stdbool.h>
#include <stdint.h>

#include <wshub/sdk.h>

wshub_timer_t *timer__add(wshub_plugin_t *owner, uint64_t ms, bool repeat, wshub_timer_cb cb,
                          void *ud);
void timer__del(wshub_timer_t *t);
void timer__free_owner(wshub_plugin_t *owner);

/* post(): any thread. */
int timer__post(wshub_plugin_t *owner, void (*cb)(void *), void *ud);
int timer__init_post(void);
/* Runs what is queued (loop thread) and refuses further posts. */
void timer__close_post(void);

#endif
