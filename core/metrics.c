/*
 * metrics: a Prometheus registry rendered in the text exposition format 0.0.4.
 *
 * A family (struct wshub_metric) owns a chained hash table of series keyed by the label values
 * joined with their NUL terminators ("GET\0200\0"), so a lookup hashes the caller's values in
 * place without allocating. Every series is its own allocation, which keeps the pointer returned
 * by metrics__value_ptr stable while the table grows: rehashing moves chain links, never series.
 * Rendering sorts the series by that key, which is the lexicographic order of the value tuples
 * because NUL sorts before every other byte.
 */
#include "metrics.h"

#include <event2/buffer.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "utf8.h"

#define MAX_LABELS    8
#define MAX_SERIES    100000 /* per family, so a label fed from client data cannot eat memory */
#define INITIAL_SLOTS 8      /* hash slots; always a power of two */
#define NUM_LEN       32     /* longest formatted number is "-1.2345678901234567e+308" */
#define FNV_BASIS     0xcbf29ce484222325u
#define FNV_PRIME     0x100000001b3u

static const double default_buckets[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                         0.1,    0.25,  0.5,    1,     2.5,  5,     10};

struct series {
    struct series *next; /* hash chain */
    uint64_t hash;
    size_t key_len;
    char *key;         /* the label values, each NUL-terminated, stored after counts[] */
    double value;      /* counter or gauge value; histogram sum */
    uint64_t count;    /* histogram: number of observations */
    uint64_t counts[]; /* histogram: observations per bucket (not cumulative) */
};

struct wshub_metric {
    struct wshub_metric *next; /* registration order */
    void *owner;
    wshub_metric_kind_t kind;
    char *name;
    char *help;
    size_t n_labels;
    char *label_names[MAX_LABELS];
    size_t n_bounds; /* histogram upper bounds, without the implied +Inf */
    double *bounds;
    char *le_text; /* n_bounds formatted bounds, NUM_LEN bytes each */
    struct series **slots;
    size_t n_slots;
    size_t n_series;
};

struct metrics {
    struct wshub_metric *head;
    struct wshub_metric **tail;
};

metrics_t *metrics__new(void)
{
    metrics_t *reg = calloc(1, sizeof(*reg));
    if (reg)
        reg->tail = &reg->head;
    return reg;
}

static void family_free(struct wshub_metric *m)
{
    for (size_t i = 0; i < m->n_slots; i++) {
        struct series *s = m->slots[i];
        while (s) {
            struct series *next = s->next;
            free(s);
            s = next;
        }
    }
    free(m->slots);
    for (size_t i = 0; i < m->n_labels; i++)
        free(m->label_names[i]);
    free(m->le_text);
    free(m->bounds);
    free(m->help);
    free(m->name);
    free(m);
}

void metrics__free(metrics_t *reg)
{
    if (!reg)
        return;
    while (reg->head) {
        struct wshub_metric *m = reg->head;
        reg->head = m->next;
        family_free(m);
    }
    free(reg);
}

/*
 * Formats v as the Prometheus client libraries do (Go's strconv.FormatFloat(v, 'g', -1, 64)):
 * the shortest decimal that parses back to v, in exponent form only when the decimal exponent
 * is below -4 or at least 6 ("0.0005", "2.5", "10", "1e+06"). Bucket bounds must match what
 * other exporters emit, or dashboards aggregating `le` across services break. With `integers`,
 * whole numbers below 2^63 are written as plain integers ("1000000"), which reads better for
 * counters and still parses back exactly.
 */
static void fmt_num(char *buf, double v, bool integers)
{
    if (isnan(v)) {
        snprintf(buf, NUM_LEN, "NaN");
        return;
    }
    if (isinf(v)) {
        snprintf(buf, NUM_LEN, "%s", v > 0 ? "+Inf" : "-Inf");
        return;
    }
    if (integers && v == trunc(v) && fabs(v) < 9.2e18) {
        snprintf(buf, NUM_LEN, "%" PRId64, (int64_t)v);
        return;
    }
    /* A decimal of at most 15 digits survives a trip through a double (DBL_DIG), so if 15
     * digits round-trip, trimming their trailing zeros gives the shortest form; else 16 or 17. */
    char e[NUM_LEN];
    int prec = 15;
    for (; prec < 17; prec++) {
        snprintf(e, sizeof(e), "%.*e", prec - 1, v);
        if (strtod(e, NULL) == v)
            break;
    }
    if (prec == 17)
        snprintf(e, sizeof(e), "%.16e", v);
    const char *x = strchr(e, 'e');
    int exp = atoi(x + 1);
    int nd = 0, last = 1;
    for (const char *p = e; p < x; p++) {
        if (*p >= '0' && *p <= '9') {
            nd++;
            if (*p != '0')
                last = nd;
        }
    }
    if (exp < -4 || exp >= 6)
        snprintf(buf, NUM_LEN, "%.*e", last - 1, v);
    else
        snprintf(buf, NUM_LEN, "%.*f", last - 1 - exp > 0 ? last - 1 - exp : 0, v);
}

/* Metric names allow [a-zA-Z_:][a-zA-Z0-9_:]*, label names the same without the colon. */
static bool valid_name(const char *s, bool colon)
{
    if (!s || !*s)
        return false;
    for (size_t i = 0; s[i]; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (colon && c == ':') ||
              (i > 0 && c >= '0' && c <= '9')))
            return false;
    }
    return true;
}

/*
 * Checks a definition against the data model before anything is allocated. Label names that
 * start with "__" are reserved by Prometheus, "le" would clash with the bucket label, and a
 * repeated label name would render an unparseable series.
 */
static bool valid_def(const metrics_t *reg, const wshub_metric_def_t *def)
{
    if (!def || !valid_name(def->name, true))
        return false;
    if (def->kind != WSHUB_METRIC_COUNTER && def->kind != WSHUB_METRIC_GAUGE &&
        def->kind != WSHUB_METRIC_HISTOGRAM)
        return false;
    if (def->n_labels > MAX_LABELS || (def->n_labels > 0 && !def->label_names))
        return false;
    for (size_t i = 0; i < def->n_labels; i++) {
        const char *l = def->label_names[i];
        if (!valid_name(l, false) || strncmp(l, "__", 2) == 0)
            return false;
        if (def->kind == WSHUB_METRIC_HISTOGRAM && strcmp(l, "le") == 0)
            return false;
        for (size_t j = 0; j < i; j++)
            if (strcmp(l, def->label_names[j]) == 0)
                return false;
    }
    if (def->kind == WSHUB_METRIC_HISTOGRAM && def->buckets) {
        if (def->n_buckets == 0)
            return false;
        for (size_t i = 0; i < def->n_buckets; i++)
            if (isnan(def->buckets[i]) || (i > 0 && !(def->buckets[i] > def->buckets[i - 1])))
                return false;
    }
    for (const struct wshub_metric *m = reg->head; m; m = m->next)
        if (strcmp(m->name, def->name) == 0)
            return false;
    return true;
}

static const char *label_at(const char *const *labels, size_t i)
{
    return labels && labels[i] ? labels[i] : "";
}

/* FNV-1a over the values including their terminators, i.e. over the key a series stores. */
static uint64_t hash_labels(const struct wshub_metric *m, const char *const *labels,
                            size_t *key_len)
{
    uint64_t h = FNV_BASIS;
    size_t len = 0;
    for (size_t i = 0; i < m->n_labels; i++) {
        const unsigned char *v = (const unsigned char *)label_at(labels, i);
        for (; *v; v++, len++)
            h = (h ^ *v) * FNV_PRIME;
        h *= FNV_PRIME;
        len++;
    }
    *key_len = len;
    return h;
}

/* Compares a stored key with the caller's values; key_len is already known to be equal, which
 * bounds every memcmp below inside the stored key. */
static bool key_equals(const struct series *s, const struct wshub_metric *m,
                       const char *const *labels)
{
    const char *k = s->key;
    for (size_t i = 0; i < m->n_labels; i++) {
        const char *v = label_at(labels, i);
        size_t n = strlen(v) + 1;
        if (memcmp(k, v, n) != 0)
            return false;
        k += n;
    }
    return true;
}

/* Doubles the slot array. Series stay where they are; if the allocation fails the old table
 * keeps working with longer chains. */
static void grow(struct wshub_metric *m)
{
    size_t n = m->n_slots * 2;
    struct series **slots = calloc(n, sizeof(*slots));
    if (!slots)
        return;
    for (size_t i = 0; i < m->n_slots; i++) {
        struct series *s = m->slots[i];
        while (s) {
            struct series *next = s->next;
            s->next = slots[s->hash & (n - 1)];
            slots[s->hash & (n - 1)] = s;
            s = next;
        }
    }
    free(m->slots);
    m->slots = slots;
    m->n_slots = n;
}

/*
 * Finds the series for a label tuple, creating it when `create` is set. Returns NULL when it is
 * absent and not created: out of memory, or the family already holds MAX_SERIES series (updates
 * to new tuples are then dropped rather than letting label cardinality exhaust memory).
 */
static struct series *series_get(struct wshub_metric *m, const char *const *labels, bool create)
{
    size_t key_len;
    uint64_t h = hash_labels(m, labels, &key_len);
    struct series *s;
    for (s = m->slots[h & (m->n_slots - 1)]; s; s = s->next)
        if (s->hash == h && s->key_len == key_len && key_equals(s, m, labels))
            return s;
    if (!create || m->n_series >= MAX_SERIES)
        return NULL;
    s = calloc(1, sizeof(*s) + m->n_bounds * sizeof(uint64_t) + key_len);
    if (!s)
        return NULL;
    s->hash = h;
    s->key_len = key_len;
    s->key = (char *)(s->counts + m->n_bounds);
    char *k = s->key;
    for (size_t i = 0; i < m->n_labels; i++) {
        const char *v = label_at(labels, i);
        size_t n = strlen(v) + 1;
        memcpy(k, v, n);
        k += n;
    }
    if (m->n_series >= m->n_slots)
        grow(m);
    s->next = m->slots[h & (m->n_slots - 1)];
    m->slots[h & (m->n_slots - 1)] = s;
    m->n_series++;
    return s;
}

/*
 * Copies the definition. Histogram bounds are formatted once here rather than per series at
 * every scrape; a trailing +Inf bound is dropped because the +Inf bucket is always rendered.
 * Label-less families get their single series now, so they render as 0 from the first scrape
 * and metrics__value_ptr never has to allocate.
 */
wshub_metric_t *metrics__new_family(metrics_t *reg, const wshub_metric_def_t *def, void *owner)
{
    if (!reg || !valid_def(reg, def))
        return NULL;
    struct wshub_metric *m = calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    m->owner = owner;
    m->kind = def->kind;
    m->n_labels = def->n_labels;
    m->name = strdup(def->name);
    m->help = strdup(def->help ? def->help : "");
    if (!m->name || !m->help)
        goto fail;
    for (size_t i = 0; i < m->n_labels; i++)
        if (!(m->label_names[i] = strdup(def->label_names[i])))
            goto fail;
    if (m->kind == WSHUB_METRIC_HISTOGRAM) {
        const double *b = def->buckets ? def->buckets : default_buckets;
        size_t n = def->buckets ? def->n_buckets : sizeof(default_buckets) / sizeof(*b);
        if (isinf(b[n - 1]) && b[n - 1] > 0)
            n--;
        m->bounds = calloc(n ? n : 1, sizeof(double));
        m->le_text = calloc(n ? n : 1, NUM_LEN);
        if (!m->bounds || !m->le_text)
            goto fail;
        for (size_t i = 0; i < n; i++) {
            m->bounds[i] = b[i];
            fmt_num(m->le_text + i * NUM_LEN, b[i], false);
        }
        m->n_bounds = n;
    }
    if (!(m->slots = calloc(INITIAL_SLOTS, sizeof(*m->slots))))
        goto fail;
    m->n_slots = INITIAL_SLOTS;
    if (m->n_labels == 0 && !series_get(m, NULL, true))
        goto fail;
    *reg->tail = m;
    reg->tail = &m->next;
    return m;
fail:
    family_free(m);
    return NULL;
}

void metrics__remove_owner(metrics_t *reg, void *owner)
{
    if (!reg)
        return;
    struct wshub_metric **pp = &reg->head;
    while (*pp) {
        struct wshub_metric *m = *pp;
        if (m->owner == owner) {
            *pp = m->next;
            family_free(m);
        } else {
            pp = &m->next;
        }
    }
    reg->tail = pp;
}

void metrics__add(wshub_metric_t *m, const char *const *labels, double v)
{
    if (!m || m->kind == WSHUB_METRIC_HISTOGRAM || (m->kind == WSHUB_METRIC_COUNTER && !(v >= 0)))
        return;
    struct series *s = series_get(m, labels, true);
    if (s)
        s->value += v;
}

void metrics__set(wshub_metric_t *m, const char *const *labels, double v)
{
    if (!m || m->kind != WSHUB_METRIC_GAUGE)
        return;
    struct series *s = series_get(m, labels, true);
    if (s)
        s->value = v;
}

/*
 * Records one observation in the first bucket whose bound is >= v (a value equal to a bound
 * belongs to that bucket, as `le` says). NaN is ignored: it would turn the sum into NaN forever.
 */
void metrics__observe(wshub_metric_t *m, const char *const *labels, double v)
{
    if (!m || m->kind != WSHUB_METRIC_HISTOGRAM || isnan(v))
        return;
    struct series *s = series_get(m, labels, true);
    if (!s)
        return;
    size_t lo = 0, hi = m->n_bounds;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v <= m->bounds[mid])
            hi = mid;
        else
            lo = mid + 1;
    }
    if (lo < m->n_bounds)
        s->counts[lo]++;
    s->count++;
    s->value += v;
}

double *metrics__value_ptr(wshub_metric_t *m)
{
    if (!m || m->n_labels != 0 || m->kind == WSHUB_METRIC_HISTOGRAM)
        return NULL;
    struct series *s = series_get(m, NULL, true);
    return s ? &s->value : NULL;
}

double metrics__get(wshub_metric_t *m, const char *const *labels)
{
    if (!m)
        return 0;
    struct series *s = series_get(m, labels, false);
    if (!s)
        return 0;
    return m->kind == WSHUB_METRIC_HISTOGRAM ? (double)s->count : s->value;
}

/*
 * Appends s escaped for a label value (`quote`: backslash, double quote, newline) or for a HELP
 * text (backslash, newline). Bytes that are not well-formed UTF-8 become U+FFFD: a label value
 * taken from client data must not make the whole scrape unparseable.
 */
static void put_escaped(struct evbuffer *out, const char *str, bool quote)
{
    static const char replacement[] = "\xEF\xBF\xBD";
    const unsigned char *p = (const unsigned char *)str;
    size_t i = 0, run = 0, seq = 0; /* run: start of the bytes still to copy; seq: of a char */
    utf8_state_t st = UTF8_ACCEPT;
    while (p[i]) {
        if (st == UTF8_ACCEPT) {
            const char *esc = p[i] == '\\'           ? "\\\\"
                              : p[i] == '\n'         ? "\\n"
                              : p[i] == '"' && quote ? "\\\""
                                                     : NULL;
            seq = i;
            if (esc) {
                evbuffer_add(out, p + run, i - run);
                evbuffer_add(out, esc, 2);
                run = ++i;
                continue;
            }
        }
        if (utf8__feed(&st, p + i, 1)) {
            i++;
            continue;
        }
        /* A bad lead byte is skipped; a byte that broke a sequence starts the next one. */
        evbuffer_add(out, p + run, seq - run);
        evbuffer_add(out, replacement, 3);
        st = UTF8_ACCEPT;
        if (i == seq)
            i++;
        run = i;
    }
    if (st != UTF8_ACCEPT) {
        evbuffer_add(out, p + run, seq - run);
        evbuffer_add(out, replacement, 3);
    } else {
        evbuffer_add(out, p + run, i - run);
    }
}

/* Writes one sample line: name+suffix, the family's labels plus an optional le, the value. */
static void put_sample(struct evbuffer *out, const struct wshub_metric *m, const struct series *s,
                       const char *suffix, const char *le, const char *value)
{
    evbuffer_add_printf(out, "%s%s", m->name, suffix);
    if (m->n_labels > 0 || le) {
        const char *k = s->key;
        evbuffer_add(out, "{", 1);
        for (size_t i = 0; i < m->n_labels; i++) {
            evbuffer_add_printf(out, "%s%s=\"", i ? "," : "", m->label_names[i]);
            put_escaped(out, k, true);
            evbuffer_add(out, "\"", 1);
            k += strlen(k) + 1;
        }
        if (le)
            evbuffer_add_printf(out, "%sle=\"%s\"", m->n_labels ? "," : "", le);
        evbuffer_add(out, "}", 1);
    }
    evbuffer_add_printf(out, " %s\n", value);
}

static void put_series(struct evbuffer *out, const struct wshub_metric *m, const struct series *s)
{
    char num[NUM_LEN];
    if (m->kind != WSHUB_METRIC_HISTOGRAM) {
        fmt_num(num, s->value, true);
        put_sample(out, m, s, "", NULL, num);
        return;
    }
    uint64_t cumulative = 0;
    for (size_t i = 0; i < m->n_bounds; i++) {
        cumulative += s->counts[i];
        snprintf(num, sizeof(num), "%" PRIu64, cumulative);
        put_sample(out, m, s, "_bucket", m->le_text + i * NUM_LEN, num);
    }
    snprintf(num, sizeof(num), "%" PRIu64, s->count);
    put_sample(out, m, s, "_bucket", "+Inf", num);
    fmt_num(num, s->value, true);
    put_sample(out, m, s, "_sum", NULL, num);
    snprintf(num, sizeof(num), "%" PRIu64, s->count);
    put_sample(out, m, s, "_count", NULL, num);
}

static int cmp_series(const void *a, const void *b)
{
    const struct series *x = *(const struct series *const *)a;
    const struct series *y = *(const struct series *const *)b;
    int c = memcmp(x->key, y->key, x->key_len < y->key_len ? x->key_len : y->key_len);
    if (c)
        return c;
    return (x->key_len > y->key_len) - (x->key_len < y->key_len);
}

/*
 * Renders every family in registration order with its series sorted by label values, so scrapes
 * are stable and diffable. Should the sort array not be allocatable, the series are still
 * rendered, in hash order: a complete unsorted scrape beats a missing one.
 */
void metrics__render(metrics_t *reg, struct evbuffer *out)
{
    static const char *const kind_names[] = {"", "counter", "gauge", "histogram"};
    if (!reg || !out)
        return;
    for (const struct wshub_metric *m = reg->head; m; m = m->next) {
        evbuffer_add_printf(out, "# HELP %s ", m->name);
        put_escaped(out, m->help, false);
        evbuffer_add_printf(out, "\n# TYPE %s %s\n", m->name, kind_names[m->kind]);
        struct series **all = m->n_series ? malloc(m->n_series * sizeof(*all)) : NULL;
        size_t n = 0;
        for (size_t i = 0; i < m->n_slots; i++) {
            for (struct series *s = m->slots[i]; s; s = s->next) {
                if (all)
                    all[n++] = s;
                else
                    put_series(out, m, s);
            }
        }
        if (!all)
            continue;
        qsort(all, n, sizeof(*all), cmp_series);
        for (size_t i = 0; i < n; i++)
            put_series(out, m, all[i]);
        free(all);
    }
}
