/*
 * hist: a log-linear latency histogram in the spirit of HdrHistogram.
 *
 * Values are unsigned integers (the bench records nanoseconds). Every power of two is split into
 * HIST_SUB linear sub-buckets, so the relative error of any reported value is below 1/HIST_SUB
 * (0.8 %) over the whole range, with a fixed, small footprint and O(1) recording. The struct is
 * plain data, so worker processes can send it to the coordinator through a pipe as bytes.
 */
#ifndef WSHUB_BENCH_HIST_H
#define WSHUB_BENCH_HIST_H

#include <stdint.h>

#define HIST_SUB_BITS 7
#define HIST_SUB      (1u << HIST_SUB_BITS)
/* The largest value kept exactly is 2^(HIST_MAX_MSB + 1) - 1 (about 36 minutes in ns); larger
 * values are clamped into the last bucket (max still records the real value). */
#define HIST_MAX_MSB 41
#define HIST_BUCKETS (HIST_SUB * (HIST_MAX_MSB - HIST_SUB_BITS + 2))

typedef struct hist {
    uint64_t count;
    uint64_t sum;
    uint64_t min;
    uint64_t max;
    uint64_t b[HIST_BUCKETS];
} hist_t;

void hist__init(hist_t *h);
void hist__record(hist_t *h, uint64_t v);
void hist__merge(hist_t *dst, const hist_t *src);
/* The value at quantile q (0..1): the highest value equivalent to the bucket holding that rank,
 * clamped to [min, max]; 0 for an empty histogram. */
uint64_t hist__quantile(const hist_t *h, double q);
double hist__mean(const hist_t *h);
/* Bucket index of a value and the highest value that maps to an index (exposed for tests). */
uint32_t hist__index(uint64_t v);
uint64_t hist__highest(uint32_t idx);

#endif
