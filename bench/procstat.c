/*
 * procstat: /proc readers (see procstat.h).
 */
#include "procstat.h"

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <unistd.h>

/* Reads a small /proc file into buf (NUL-terminated). Returns its length or -1. */
static ssize_t read_small(const char *path, char *buf, size_t cap)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    size_t off = 0;

    if (fd < 0)
        return -1;
    while (off + 1 < cap) {
        ssize_t n = read(fd, buf + off, cap - 1 - off);
        if (n < 0) {
            close(fd);
            return -1;
        }
        if (n == 0)
            break;
        off += (size_t)n;
    }
    close(fd);
    buf[off] = '\0';
    return (ssize_t)off;
}

/* One "Key:   N kB" line of /proc/<pid>/status, in KiB, or -1. */
static int64_t status_kb(pid_t pid, const char *key)
{
    char path[64], buf[4096], want[32];

    snprintf(path, sizeof(path), "/proc/%d/status", (int)pid);
    snprintf(want, sizeof(want), "\n%s:", key);
    if (read_small(path, buf, sizeof(buf)) < 0)
        return -1;
    const char *p = strstr(buf, want);
    if (!p)
        return -1;
    p += strlen(want);
    char *end;
    long long v = strtoll(p, &end, 10);
    if (end == p || v < 0)
        return -1;
    return (int64_t)v;
}

int64_t procstat__rss_kb(pid_t pid)
{
    return status_kb(pid, "VmRSS");
}

int64_t procstat__anon_kb(pid_t pid)
{
    return status_kb(pid, "RssAnon");
}

/*
 * The command name (field 2) is in parentheses and may itself contain spaces and ')', so the
 * fields are counted from the last ')'. utime and stime are fields 14 and 15, in clock ticks.
 */
int64_t procstat__cpu_us(pid_t pid)
{
    char path[64], buf[2048];

    snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
    if (read_small(path, buf, sizeof(buf)) < 0)
        return -1;
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    unsigned long long ut = 0, st = 0;
    /* After ')': state(3) ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt
     * utime(14) stime(15). */
    if (sscanf(p, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    long hz = sysconf(_SC_CLK_TCK);
    if (hz <= 0)
        hz = 100;
    return (int64_t)((ut + st) * 1000000ULL / (unsigned long long)hz);
}

uint64_t procstat__self_cpu_us(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0)
        return 0;
    return (uint64_t)ru.ru_utime.tv_sec * 1000000u + (uint64_t)ru.ru_utime.tv_usec +
           (uint64_t)ru.ru_stime.tv_sec * 1000000u + (uint64_t)ru.ru_stime.tv_usec;
}

uint64_t procstat__self_maxrss_kb(void)
{
    struct rusage ru;

    if (getrusage(RUSAGE_SELF, &ru) != 0 || ru.ru_maxrss < 0)
        return 0;
    return (uint64_t)ru.ru_maxrss;
}
