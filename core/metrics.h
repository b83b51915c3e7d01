/*
 * metrics: a Prometheus registry (text exposition format 0.0.4). Families of counters, gauges and
 * histograms with fixed label names; each distinct label-value tuple is a series. Everything runs
 * on the loop thread, so there is no locking. The core's own metrics and the plugins' (through
 * the metric_* host slots) live in the same registry; /metrics renders it.
 */
#ifndef WSHUB_METRICS_H
#define WSHUB_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include <wshub/sdk.h>

struct evbuffer;

typedef struct metrics metrics_t;

metrics_t *metrics__new(void);
/* Frees every family. */
void metrics__free(metrics_t *reg);

/*
 * Registers a family. The definition is copied. `owner` is an opaque tag (the plugin, or NULL
 * for the core) so metrics__remove_owner can drop a plugin's families when it unloads.
 * Returns NULL when the name is invalid ([a-zA-Z_:][a-zA-Z0-9_:]*), already registered,
 * n_labels > 8, a label name is invalid or reserved ("le" for histograms), or buckets are not
 * strictly ascending.
 */
wshub_metric_t *metrics__new_family(metrics_t *reg, const wshub_metric_def_t *def, void *owner);
void metrics__remove_owner(metrics_t *reg, void *owner);

/* Series updates. `labels` holds the family's n_labels values (NULL when n_labels == 0); a
 * NULL value counts as "". Mismatched kinds are ignored (a counter cannot be set). Counters
 * ignore negative v. */
void metrics__add(wshub_metric_t *m, const char *const *labels, double v);
void metrics__set(wshub_metric_t *m, const char *const *labels, double v);
void metrics__observe(wshub_metric_t *m, const char *const *labels, double v);

/* Fast path for label-less core counters/gauges: a direct pointer to the value of the single
 * series (created on first use). Callers do `*p += 1`. Never NULL for a valid family with
 * n_labels == 0; NULL otherwise. */
double *metrics__value_ptr(wshub_metric_t *m);

/* Reads a series' value (counter/gauge) or a histogram's count; 0 when absent. For tests. */
double metrics__get(wshub_metric_t *m, const char *const *labels);

/* Renders every family in registration order: "# HELP", "# TYPE", series sorted by labels;
 * label values escaped (\\, \", \n); histograms with cumulative _bucket{le=...}, +Inf, _sum,
 * _count. Numbers: integers without a fraction, others with %.17g. */
void metrics__render(metrics_t *reg, struct evbuffer *out);

#endif
