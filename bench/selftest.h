/*
 * selftest: `wshub-bench --self-test` checks the bench's own codec, scanner, templates and
 * histogram (the parts whose bugs would silently skew measurements), without a server.
 */
#ifndef WSHUB_BENCH_SELFTEST_H
#define WSHUB_BENCH_SELFTEST_H

/* Runs every check, prints failures and "self-test: N passed, M failed". Returns 0 or 1. */
int selftest__run(void);

#endif
