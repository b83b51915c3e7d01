/*
 * hist: log-linear histogram (see hist.h).
 *
 * Index layout: values below 2 * HIST_SUB map to themselves (exact). A larger value with its most
 * significant bit at position msb keeps its top HIST_SUB_BITS + 1 bits: with e = msb - SUB_BITS
 * and m = v >> e (so HIST_SUB <= m < 2 * HIST_SUB) the index is HIST_SUB * e + m, which continues
 * exactly where the linear range stops and gives every power of two HIST_SUB buckets.
 */
#include "hist.h"

#include <string.h>

void hist__init(hist_t *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

uint32_t hist__index(uint64_t v)
{
    const uint64_t top = (UINT64_C(2) << HIST_MAX_MSB) - 1;

    if (v > top)
        v = top;
    if (v < 2 * HIST_SUB)
        return (uint32_t)v;
    int msb = 63 - __builtin_clzll(v);
    int e = msb - HIST_SUB_BITS;
    return (uint32_t)(HIST_SUB * (uint32_t)e + (uint32_t)(v >> e));
}

uint64_t hist__highest(uint32_t idx)
{
    if (idx < 2 * HIST_SUB)
        return idx;
    uint32_t e = (idx >> HIST_SUB_BITS) - 1;
    uint64_t m = idx - HIST_SUB * e;
    return ((m + 1) << e) - 1;
}

void hist__record(hist_t *h, uint64_t v)
{
    h->b[hist__index(v)]++;
    h->count++;
    h->sum += v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void hist__merge(hist_t *dst, const hist_t *src)
{
    if (!src->count)
        return;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++)
        dst->b[i] += src->b[i];
    dst->count += src->count;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

/*
 * The rank is ceil(q * count), at least 1, so p50 of {1, 2} is 1 and p100 is the largest value;
 * reporting the bucket's highest equivalent value (as HdrHistogram does) errs on the pessimistic
 * side, and the clamp keeps it from exceeding the true maximum.
 */
uint64_t hist__quantile(const hist_t *h, double q)
{
    if (!h->count)
        return 0;
    if (q < 0)
        q = 0;
    if (q > 1)
        q = 1;
    double r = q * (double)h->count;
    uint64_t rank = (uint64_t)r;
    if ((double)rank < r)
        rank++;
    if (rank < 1)
        rank = 1;
    uint64_t acc = 0;
    for (uint32_t i = 0; i < HIST_BUCKETS; i++) {
        acc += h->b[i];
        if (acc >= rank) {
            uint64_t v = hist__highest(i);
            if (v > h->max)
                v = h->max;
            if (v < h->min)
                v = h->min;
            return v;
        }
    }
    return h->max;
}

double hist__mean(const hist_t *h)
{
    return h->count ? (double)h->sum / (double)h->count : 0.0;
}
