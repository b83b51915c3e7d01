/*
 * worker: one load-generating process. It owns an epoll loop and a fixed array of connection
 * slots, runs its share of the scenario through the phases connect -> wait for the
 * coordinator's go -> warmup + measured window -> close, and writes its bench_result_t to the
 * coordinator's pipe.
 */
#ifndef WSHUB_BENCH_WORKER_H
#define WSHUB_BENCH_WORKER_H

#include "bench.h"

/* Runs the worker to completion. Returns the process exit code (0, or 1 on a setup error). */
int worker__run(const bench_cfg_t *cfg, const bench_share_t *sh);

#endif
