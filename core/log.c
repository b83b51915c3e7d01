/*
 * log: see log.h. Thread-safe: the only shared state is the level (an int read racily by design:
 * a torn read is impossible for an aligned int and a stale level is harmless) and the capture
 * hook, which tests set before starting threads.
 */
#include "log.h"

#include <stdio.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

static int g_level = WSHUB_LOG_INFO;
static void (*g_capture)(void *ud, int level, const char *line);
static void *g_capture_ud;

static const char *const level_names[] = {"ERR", "WARN", "NOTICE", "INFO", "DEBUG"};

void log__set_level(int level)
{
    g_level = level;
}

int log__level(void)
{
    return g_level;
}

void log__set_capture(void (*cb)(void *ud, int level, const char *line), void *ud)
{
    g_capture = cb;
    g_capture_ud = ud;
}

/*
 * Formats one line into a stack buffer and writes it at once. Messages longer than the buffer
 * are truncated with "..." rather than split, so a line is always whole.
 */
void log__vwrite(int level, const char *component, const char *fmt, va_list ap)
{
    char line[2048];
    struct timeval tv;
    struct tm tm;
    size_t n, head;
    int rc;

    if (level > g_level && !g_capture)
        return;
    if (level < WSHUB_LOG_ERR)
        level = WSHUB_LOG_ERR;
    if (level > WSHUB_LOG_DEBUG)
        level = WSHUB_LOG_DEBUG;
    gettimeofday(&tv, NULL);
    gmtime_r(&tv.tv_sec, &tm);
    n = strftime(line, sizeof(line), "%Y-%m-%dT%H:%M:%S", &tm);
    rc = snprintf(line + n, sizeof(line) - n, ".%03dZ %-6s [%s] ", (int)(tv.tv_usec / 1000),
                  level_names[level], component);
    if (rc < 0)
        return;
    n += (size_t)rc < sizeof(line) - n ? (size_t)rc : sizeof(line) - n - 1;
    head = n;
    rc = vsnprintf(line + n, sizeof(line) - n - 1, fmt, ap);
    if (rc < 0)
        return;
    if ((size_t)rc >= sizeof(line) - n - 1) {
        n = sizeof(line) - 5;
        memcpy(line + n, "...", 3);
        n += 3;
    } else {
        n += (size_t)rc;
    }
    /* A message never spans lines: a newline in a plugin's text would forge a log line. */
    for (size_t i = head; i < n; i++)
        if (line[i] == '\n' || line[i] == '\r')
            line[i] = ' ';
    line[n++] = '\n';
    line[n] = '\0';
    if (g_capture) {
        char cap[2100];
        snprintf(cap, sizeof(cap), "%s [%s] %.*s", level_names[level], component,
                 (int)(n - head - 1), line + head);
        g_capture(g_capture_ud, level, cap);
    }
    if (level <= g_level) {
        ssize_t w = write(STDERR_FILENO, line, n);
        (void)w;
    }
}

void log__write(int level, const char *component, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    log__vwrite(level, component, fmt, ap);
    va_end(ap);
}

/* libevent severities: _EVENT_LOG_DEBUG 0, MSG 1, WARN 2, ERR 3. Must not call libevent. */
static void on_libevent_log(int severity, const char *msg)
{
    static const int map[] = {WSHUB_LOG_DEBUG, WSHUB_LOG_INFO, WSHUB_LOG_WARN, WSHUB_LOG_ERR};
    int level = severity >= 0 && severity <= 3 ? map[severity] : WSHUB_LOG_WARN;

    log__write(level, "libevent", "%s", msg);
}

void log__hook_libevent(void)
{
    event_set_log_callback(on_libevent_log);
}
