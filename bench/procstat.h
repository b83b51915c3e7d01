/*
 * procstat: what the bench reads about the server under test from /proc (Linux).
 */
#ifndef WSHUB_BENCH_PROCSTAT_H
#define WSHUB_BENCH_PROCSTAT_H

#include <stdint.h>
#include <sys/types.h>

/* VmRSS of pid in KiB (from /proc/<pid>/status), or -1. */
int64_t procstat__rss_kb(pid_t pid);
/* RssAnon of pid in KiB: the process's own heap and stacks, without the file-backed pages (code
 * of the server and its libraries) that a first run through new code paths touches once. */
int64_t procstat__anon_kb(pid_t pid);
/* utime + stime of pid (all threads) in microseconds (from /proc/<pid>/stat), or -1. */
int64_t procstat__cpu_us(pid_t pid);
/* user + system CPU of the calling process in microseconds (getrusage). */
uint64_t procstat__self_cpu_us(void);
/* Peak resident set size of the calling process in KiB (getrusage ru_maxrss). */
uint64_t procstat__self_maxrss_kb(void);

#endif
