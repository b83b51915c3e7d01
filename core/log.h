/*
 * log: the one log sink. Lines go to stderr as
 *   2026-11-27T06:30:00.123Z ERR    [core] message
 * built in a local buffer and written with one write(2), so lines from other threads (nats.c
 * callbacks logging through the host) never interleave. libevent's own messages are routed here.
 */
#ifndef WSHUB_LOG_H
#define WSHUB_LOG_H

#include <stdarg.h>

#include <wshub/sdk.h>

void log__set_level(int level);
int log__level(void);
/* Routes libevent's internal log messages into the sink (event_set_log_callback). */
void log__hook_libevent(void);

/* `component` is "core", "plugin:<name>", "admin"... */
void log__write(int level, const char *component, const char *fmt, ...) WSHUB_PRINTF(3, 4);
void log__vwrite(int level, const char *component, const char *fmt, va_list ap) WSHUB_PRINTF(3, 0);

/* Optional capture for tests: every line (without timestamp: "ERR [core] msg") is also passed
 * to cb. NULL to stop. */
void log__set_capture(void (*cb)(void *ud, int level, const char *line), void *ud);

#define log_err(...)    log__write(WSHUB_LOG_ERR, "core", __VA_ARGS__)
#define log_warn(...)   log__write(WSHUB_LOG_WARN, "core", __VA_ARGS__)
#define log_notice(...) log__write(WSHUB_LOG_NOTICE, "core", __VA_ARGS__)
#define log_info(...)   log__write(WSHUB_LOG_INFO, "core", __VA_ARGS__)
#define log_debug(...)                                                                             \
    do {                                                                                           \
        if (log__level() >= WSHUB_LOG_DEBUG)                                                       \
            log__write(WSHUB_LOG_DEBUG, "core", __VA_ARGS__);                                      \
    } while (0)

#endif
