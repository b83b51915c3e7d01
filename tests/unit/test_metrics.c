/*
 * Unit tests for core/metrics.c: exact Prometheus text output, escaping, definition checks,
 * owner removal, stable value pointers, and counter/gauge/histogram semantics.
 */
#include <check.h>
#include <event2/buffer.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static metrics_t *reg;

static void setup(void)
{
    reg = metrics__new();
    ck_assert_ptr_nonnull(reg);
}

static void teardown(void)
{
    metrics__free(reg);
    reg = NULL;
}

/* Renders the fixture registry into a NUL-terminated string the caller frees. */
static char *render(void)
{
    struct evbuffer *b = evbuffer_new();
    ck_assert_ptr_nonnull(b);
    metrics__render(reg, b);
    size_t n = evbuffer_get_length(b);
    char *s = malloc(n + 1);
    ck_assert_ptr_nonnull(s);
    ck_assert_int_eq(evbuffer_remove(b, s, n), (int)n);
    s[n] = '\0';
    evbuffer_free(b);
    return s;
}

static void assert_render(const char *expected)
{
    char *got = render();
    ck_assert_str_eq(got, expected);
    free(got);
}

static wshub_metric_t *family(wshub_metric_kind_t kind, const char *name, const char *help,
                              const char *const *labels, size_t n_labels)
{
    wshub_metric_def_t def = {
        .kind = kind, .name = name, .help = help, .label_names = labels, .n_labels = n_labels};
    wshub_metric_t *m = metrics__new_family(reg, &def, NULL);
    ck_assert_ptr_nonnull(m);
    return m;
}

/* ---- rendering ----------------------------------------------------------------------------- */

START_TEST(test_render_registry_exact_text)
{
    static const char *const method_code[] = {"method", "code"};
    static const char *const route[] = {"route"};
    static const char *const x[] = {"x"};
    static const double bounds[] = {0.25, 1, 10};

    wshub_metric_t *req =
        family(WSHUB_METRIC_COUNTER, "http_requests_total", "Requests.", method_code, 2);
    metrics__add(req, (const char *[]){"POST", "500"}, 1);
    metrics__add(req, (const char *[]){"GET", "200"}, 3);
    metrics__add(req, (const char *[]){"GET", "404"}, 1);
    metrics__add(req, (const char *[]){"GET", "200"}, 2);
    wshub_metric_t *conns =
        family(WSHUB_METRIC_GAUGE, "wshub_connections", "Open connections.", NULL, 0);
    metrics__set(conns, NULL, 42);
    family(WSHUB_METRIC_COUNTER, "wshub_frames_total", "Frames.", NULL, 0);
    wshub_metric_def_t hdef = {.kind = WSHUB_METRIC_HISTOGRAM,
                               .name = "req_seconds",
                               .help = "Latency.",
                               .label_names = route,
                               .n_labels = 1,
                               .buckets = bounds,
                               .n_buckets = 3};
    wshub_metric_t *h = metrics__new_family(reg, &hdef, NULL);
    ck_assert_ptr_nonnull(h);
    metrics__observe(h, (const char *[]){"b"}, 1);
    metrics__observe(h, (const char *[]){"a"}, 0.125);
    metrics__observe(h, (const char *[]){"a"}, 0.5);
    metrics__observe(h, (const char *[]){"a"}, 20);
    family(WSHUB_METRIC_GAUGE, "wshub_empty", "Nothing yet.", x, 1);

    assert_render("# HELP http_requests_total Requests.\n"
                  "# TYPE http_requests_total counter\n"
                  "http_requests_total{method=\"GET\",code=\"200\"} 5\n"
                  "http_requests_total{method=\"GET\",code=\"404\"} 1\n"
                  "http_requests_total{method=\"POST\",code=\"500\"} 1\n"
                  "# HELP wshub_connections Open connections.\n"
                  "# TYPE wshub_connections gauge\n"
                  "wshub_connections 42\n"
                  "# HELP wshub_frames_total Frames.\n"
                  "# TYPE wshub_frames_total counter\n"
                  "wshub_frames_total 0\n"
                  "# HELP req_seconds Latency.\n"
                  "# TYPE req_seconds histogram\n"
                  "req_seconds_bucket{route=\"a\",le=\"0.25\"} 1\n"
                  "req_seconds_bucket{route=\"a\",le=\"1\"} 2\n"
                  "req_seconds_bucket{route=\"a\",le=\"10\"} 2\n"
                  "req_seconds_bucket{route=\"a\",le=\"+Inf\"} 3\n"
                  "req_seconds_sum{route=\"a\"} 20.625\n"
                  "req_seconds_count{route=\"a\"} 3\n"
                  "req_seconds_bucket{route=\"b\",le=\"0.25\"} 0\n"
                  "req_seconds_bucket{route=\"b\",le=\"1\"} 1\n"
                  "req_seconds_bucket{route=\"b\",le=\"10\"} 1\n"
                  "req_seconds_bucket{route=\"b\",le=\"+Inf\"} 1\n"
                  "req_seconds_sum{route=\"b\"} 1\n"
                  "req_seconds_count{route=\"b\"} 1\n"
                  "# HELP wshub_empty Nothing yet.\n"
                  "# TYPE wshub_empty gauge\n");
}
END_TEST

START_TEST(test_render_sorts_by_label_tuple)
{
    static const char *const xy[] = {"x", "y"};
    wshub_metric_t *m = family(WSHUB_METRIC_GAUGE, "g", "h", xy, 2);
    metrics__set(m, (const char *[]){"ab", ""}, 3);
    metrics__set(m, (const char *[]){"a", "b"}, 2);
    metrics__set(m, (const char *[]){"b", "a"}, 4);
    metrics__set(m, (const char *[]){"a", ""}, 1);
    assert_render("# HELP g h\n# TYPE g gauge\n"
                  "g{x=\"a\",y=\"\"} 1\n"
                  "g{x=\"a\",y=\"b\"} 2\n"
                  "g{x=\"ab\",y=\"\"} 3\n"
                  "g{x=\"b\",y=\"a\"} 4\n");
}
END_TEST

static const struct {
    double v;
    const char *text;
} value_cases[] = {
    {0, "0"},
    {42, "42"},
    {-7, "-7"},
    {1e6, "1000000"},
    {0.1, "0.1"},
    {-2.5, "-2.5"},
    {0.1 + 0.2, "0.30000000000000004"},
    {1e-7, "1e-07"},
    {123456.5, "123456.5"},
    {1234567.5, "1.2345675e+06"},
    {1e20, "1e+20"},
    {NAN, "NaN"},
    {INFINITY, "+Inf"},
    {-INFINITY, "-Inf"},
};

START_TEST(test_render_number_format)
{
    wshub_metric_t *g = family(WSHUB_METRIC_GAUGE, "g", "x", NULL, 0);
    metrics__set(g, NULL, value_cases[_i].v);
    char expected[128];
    snprintf(expected, sizeof(expected), "# HELP g x\n# TYPE g gauge\ng %s\n",
             value_cases[_i].text);
    assert_render(expected);
}
END_TEST

START_TEST(test_render_le_like_client_libraries)
{
    static const double bounds[] = {-1, 1e-05, 0.0001, 100, 123456.789, 1e6, 2.5e6, INFINITY};
    wshub_metric_def_t def = {.kind = WSHUB_METRIC_HISTOGRAM,
                              .name = "h",
                              .help = "x",
                              .buckets = bounds,
                              .n_buckets = 8};
    ck_assert_ptr_nonnull(metrics__new_family(reg, &def, NULL));
    assert_render("# HELP h x\n# TYPE h histogram\n"
                  "h_bucket{le=\"-1\"} 0\n"
                  "h_bucket{le=\"1e-05\"} 0\n"
                  "h_bucket{le=\"0.0001\"} 0\n"
                  "h_bucket{le=\"100\"} 0\n"
                  "h_bucket{le=\"123456.789\"} 0\n"
                  "h_bucket{le=\"1e+06\"} 0\n"
                  "h_bucket{le=\"2.5e+06\"} 0\n"
                  "h_bucket{le=\"+Inf\"} 0\n"
                  "h_sum 0\nh_count 0\n");
}
END_TEST

START_TEST(test_render_default_buckets)
{
    family(WSHUB_METRIC_HISTOGRAM, "h", "x", NULL, 0);
    assert_render("# HELP h x\n# TYPE h histogram\n"
                  "h_bucket{le=\"0.0005\"} 0\n"
                  "h_bucket{le=\"0.001\"} 0\n"
                  "h_bucket{le=\"0.0025\"} 0\n"
                  "h_bucket{le=\"0.005\"} 0\n"
                  "h_bucket{le=\"0.01\"} 0\n"
                  "h_bucket{le=\"0.025\"} 0\n"
                  "h_bucket{le=\"0.05\"} 0\n"
                  "h_bucket{le=\"0.1\"} 0\n"
                  "h_bucket{le=\"0.25\"} 0\n"
                  "h_bucket{le=\"0.5\"} 0\n"
                  "h_bucket{le=\"1\"} 0\n"
                  "h_bucket{le=\"2.5\"} 0\n"
                  "h_bucket{le=\"5\"} 0\n"
                  "h_bucket{le=\"10\"} 0\n"
                  "h_bucket{le=\"+Inf\"} 0\n"
                  "h_sum 0\nh_count 0\n");
}
END_TEST

/* ---- escaping ------------------------------------------------------------------------------ */

static const struct {
    const char *in;
    const char *out;
} label_cases[] = {
    {"plain", "plain"},
    {"a\\b", "a\\\\b"},
    {"say \"hi\"", "say \\\"hi\\\""},
    {"two\nlines", "two\\nlines"},
    {"\\\"\n", "\\\\\\\"\\n"},
    {"caf\xC3\xA9 \xE2\x82\xAC", "caf\xC3\xA9 \xE2\x82\xAC"},
    {"bad\xFF", "bad\xEF\xBF\xBD"},
    {"\xC0\xAF", "\xEF\xBF\xBD\xEF\xBF\xBD"},
    {"cut\xE2\x82", "cut\xEF\xBF\xBD"},
    {"cut\xE2\x82q", "cut\xEF\xBF\xBDq"},
    {"cut\xE2\n", "cut\xEF\xBF\xBD\\n"},
    {"\xED\xA0\x80", "\xEF\xBF\xBD\xEF\xBF\xBD\xEF\xBF\xBD"},
    {"", ""},
};

START_TEST(test_escape_label_values)
{
    static const char *const v[] = {"v"};
    wshub_metric_t *m = family(WSHUB_METRIC_COUNTER, "c", "h", v, 1);
    metrics__add(m, &label_cases[_i].in, 1);
    char expected[256];
    snprintf(expected, sizeof(expected), "# HELP c h\n# TYPE c counter\nc{v=\"%s\"} 1\n",
             label_cases[_i].out);
    assert_render(expected);
}
END_TEST

START_TEST(test_escape_help)
{
    family(WSHUB_METRIC_GAUGE, "g", "back\\slash \"quoted\"\nsecond line", NULL, 0);
    family(WSHUB_METRIC_GAUGE, "e", NULL, NULL, 0);
    assert_render("# HELP g back\\\\slash \"quoted\"\\nsecond line\n# TYPE g gauge\ng 0\n"
                  "# HELP e \n# TYPE e gauge\ne 0\n");
}
END_TEST

START_TEST(test_null_label_value_is_empty)
{
    static const char *const ab[] = {"a", "b"};
    wshub_metric_t *m = family(WSHUB_METRIC_COUNTER, "c", "h", ab, 2);
    metrics__add(m, NULL, 1);
    metrics__add(m, (const char *[]){NULL, ""}, 2);
    metrics__add(m, (const char *[]){"", NULL}, 4);
    ck_assert_double_eq(metrics__get(m, (const char *[]){"", ""}), 7);
    assert_render("# HELP c h\n# TYPE c counter\nc{a=\"\",b=\"\"} 7\n");
}
END_TEST

/* ---- definitions --------------------------------------------------------------------------- */

static const char *const nine[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i"};
static const char *const null_name[] = {NULL};
static const char *const digit_name[] = {"1a"};
static const char *const colon_name[] = {"a:b"};
static const char *const dash_name[] = {"a-b"};
static const char *const reserved_name[] = {"__x"};
static const char *const le_name[] = {"le"};
static const char *const dup_names[] = {"a", "b", "a"};
static const double equal_bounds[] = {1, 1};
static const double desc_bounds[] = {2, 1};
static const double nan_bounds[] = {NAN};
static const double later_nan_bounds[] = {1, NAN, 3};

#define C WSHUB_METRIC_COUNTER
#define H WSHUB_METRIC_HISTOGRAM
static const struct {
    const char *what;
    wshub_metric_def_t def;
} invalid_defs[] = {
    {"NULL name", {C, NULL, "h", NULL, 0, NULL, 0}},
    {"empty name", {C, "", "h", NULL, 0, NULL, 0}},
    {"leading digit", {C, "1abc", "h", NULL, 0, NULL, 0}},
    {"dash in name", {C, "a-b", "h", NULL, 0, NULL, 0}},
    {"space in name", {C, "a b", "h", NULL, 0, NULL, 0}},
    {"non-ASCII name", {C, "caf\xC3\xA9", "h", NULL, 0, NULL, 0}},
    {"kind 0", {(wshub_metric_kind_t)0, "k", "h", NULL, 0, NULL, 0}},
    {"kind 4", {(wshub_metric_kind_t)4, "k", "h", NULL, 0, NULL, 0}},
    {"9 labels", {C, "k", "h", nine, 9, NULL, 0}},
    {"labels NULL with n_labels", {C, "k", "h", NULL, 1, NULL, 0}},
    {"NULL label name", {C, "k", "h", null_name, 1, NULL, 0}},
    {"label leading digit", {C, "k", "h", digit_name, 1, NULL, 0}},
    {"colon in label", {C, "k", "h", colon_name, 1, NULL, 0}},
    {"dash in label", {C, "k", "h", dash_name, 1, NULL, 0}},
    {"reserved __ label", {C, "k", "h", reserved_name, 1, NULL, 0}},
    {"le on histogram", {H, "k", "h", le_name, 1, NULL, 0}},
    {"duplicate label", {C, "k", "h", dup_names, 3, NULL, 0}},
    {"equal bounds", {H, "k", "h", NULL, 0, equal_bounds, 2}},
    {"descending bounds", {H, "k", "h", NULL, 0, desc_bounds, 2}},
    {"NaN bound", {H, "k", "h", NULL, 0, nan_bounds, 1}},
    {"NaN later bound", {H, "k", "h", NULL, 0, later_nan_bounds, 3}},
    {"buckets with n_buckets 0", {H, "k", "h", NULL, 0, desc_bounds, 0}},
};
#undef C
#undef H

START_TEST(test_invalid_definition_refused)
{
    wshub_metric_t *m = metrics__new_family(reg, &invalid_defs[_i].def, NULL);
    if (m)
        ck_abort_msg("accepted: %s", invalid_defs[_i].what);
    assert_render("");
}
END_TEST

START_TEST(test_duplicate_name_refused)
{
    family(WSHUB_METRIC_COUNTER, "dup", "h", NULL, 0);
    wshub_metric_def_t def = {.kind = WSHUB_METRIC_GAUGE, .name = "dup", .help = "other"};
    ck_assert_ptr_null(metrics__new_family(reg, &def, (void *)&def));
    ck_assert_ptr_null(metrics__new_family(NULL, &def, NULL));
    ck_assert_ptr_null(metrics__new_family(reg, NULL, NULL));
    assert_render("# HELP dup h\n# TYPE dup counter\ndup 0\n");
}
END_TEST

START_TEST(test_valid_edge_definitions_accepted)
{
    static const char *const le[] = {"le"};
    static const double inf_only[] = {INFINITY};
    family(WSHUB_METRIC_COUNTER, "ns:sub_total", "h", le, 1);
    family(WSHUB_METRIC_GAUGE, "_g0", "h", nine, 8);
    wshub_metric_def_t def = {.kind = WSHUB_METRIC_HISTOGRAM,
                              .name = "h",
                              .help = "x",
                              .buckets = inf_only,
                              .n_buckets = 1};
    wshub_metric_t *h = metrics__new_family(reg, &def, NULL);
    ck_assert_ptr_nonnull(h);
    metrics__observe(h, NULL, 3);
    char *out = render();
    ck_assert_ptr_nonnull(strstr(out, "# TYPE h histogram\nh_bucket{le=\"+Inf\"} 1\n"
                                      "h_sum 3\nh_count 1\n"));
    free(out);
}
END_TEST

/* ---- owners -------------------------------------------------------------------------------- */

static void owned(const char *name, void *owner)
{
    wshub_metric_def_t def = {.kind = WSHUB_METRIC_COUNTER, .name = name, .help = "h"};
    ck_assert_ptr_nonnull(metrics__new_family(reg, &def, owner));
}

START_TEST(test_remove_owner)
{
    int a, b;
    owned("core1", NULL);
    owned("a1", &a);
    owned("b1", &b);
    owned("a2", &a);
    owned("core2", NULL);
    metrics__remove_owner(reg, &a);
    assert_render("# HELP core1 h\n# TYPE core1 counter\ncore1 0\n"
                  "# HELP b1 h\n# TYPE b1 counter\nb1 0\n"
                  "# HELP core2 h\n# TYPE core2 counter\ncore2 0\n");
    owned("a2", &b); /* the name is free again, and appends after the last family */
    metrics__remove_owner(reg, NULL);
    assert_render("# HELP b1 h\n# TYPE b1 counter\nb1 0\n"
                  "# HELP a2 h\n# TYPE a2 counter\na2 0\n");
    metrics__remove_owner(reg, &b);
    assert_render("");
    owned("last", &a);
    assert_render("# HELP last h\n# TYPE last counter\nlast 0\n");
}
END_TEST

/* ---- value pointers and lookup --------------------------------------------------------------- */

START_TEST(test_value_ptr_stable_across_inserts)
{
    static const char *const id[] = {"id"};
    wshub_metric_t *c = family(WSHUB_METRIC_COUNTER, "ctr_total", "h", NULL, 0);
    double *p = metrics__value_ptr(c);
    ck_assert_ptr_nonnull(p);
    *p += 1;
    wshub_metric_t *many = family(WSHUB_METRIC_COUNTER, "many_total", "h", id, 1);
    char buf[32];
    const char *labels[1] = {buf};
    for (int i = 0; i < 10000; i++) {
        snprintf(buf, sizeof(buf), "s%d", i);
        metrics__add(many, labels, i + 1);
    }
    for (int i = 0; i < 64; i++) {
        snprintf(buf, sizeof(buf), "extra%d", i);
        family(WSHUB_METRIC_GAUGE, buf, "h", NULL, 0);
    }
    ck_assert_ptr_eq(metrics__value_ptr(c), p);
    *p += 1;
    ck_assert_double_eq(metrics__get(c, NULL), 2);
    for (int i = 0; i < 10000; i++) {
        snprintf(buf, sizeof(buf), "s%d", i);
        ck_assert_double_eq(metrics__get(many, labels), i + 1);
    }
    ck_assert_double_eq(metrics__get(many, (const char *[]){"s10000"}), 0);
    char *out = render();
    ck_assert_ptr_nonnull(strstr(out, "\nctr_total 2\n"));
    ck_assert_ptr_nonnull(strstr(out, "\nmany_total{id=\"s9999\"} 10000\n"));
    free(out);
}
END_TEST

START_TEST(test_value_ptr_null_cases)
{
    static const char *const l[] = {"l"};
    ck_assert_ptr_null(metrics__value_ptr(NULL));
    ck_assert_ptr_null(metrics__value_ptr(family(WSHUB_METRIC_COUNTER, "c", "h", l, 1)));
    ck_assert_ptr_null(metrics__value_ptr(family(WSHUB_METRIC_HISTOGRAM, "h", "h", NULL, 0)));
    double *g = metrics__value_ptr(family(WSHUB_METRIC_GAUGE, "g", "h", NULL, 0));
    ck_assert_ptr_nonnull(g);
    *g = -3;
    assert_render("# HELP c h\n# TYPE c counter\n"
                  "# HELP h h\n# TYPE h histogram\nh_bucket{le=\"0.0005\"} 0\n"
                  "h_bucket{le=\"0.001\"} 0\nh_bucket{le=\"0.0025\"} 0\nh_bucket{le=\"0.005\"} 0\n"
                  "h_bucket{le=\"0.01\"} 0\nh_bucket{le=\"0.025\"} 0\nh_bucket{le=\"0.05\"} 0\n"
                  "h_bucket{le=\"0.1\"} 0\nh_bucket{le=\"0.25\"} 0\nh_bucket{le=\"0.5\"} 0\n"
                  "h_bucket{le=\"1\"} 0\nh_bucket{le=\"2.5\"} 0\nh_bucket{le=\"5\"} 0\n"
                  "h_bucket{le=\"10\"} 0\nh_bucket{le=\"+Inf\"} 0\nh_sum 0\nh_count 0\n"
                  "# HELP g h\n# TYPE g gauge\ng -3\n");
}
END_TEST

START_TEST(test_series_limit_per_family)
{
    static const char *const id[] = {"id"};
    wshub_metric_t *m = family(WSHUB_METRIC_COUNTER, "c", "h", id, 1);
    char buf[32];
    const char *labels[1] = {buf};
    for (int i = 0; i < 100000; i++) { /* MAX_SERIES in metrics.c */
        snprintf(buf, sizeof(buf), "%d", i);
        metrics__add(m, labels, 1);
    }
    ck_assert_double_eq(metrics__get(m, (const char *[]){"99999"}), 1);
    metrics__add(m, (const char *[]){"over"}, 1);
    ck_assert_double_eq(metrics__get(m, (const char *[]){"over"}), 0);
    metrics__add(m, (const char *[]){"0"}, 1);
    ck_assert_double_eq(metrics__get(m, (const char *[]){"0"}), 2);
}
END_TEST

/* ---- counters, gauges, histograms ------------------------------------------------------------ */

START_TEST(test_counter_ignores_negative_and_foreign_ops)
{
    wshub_metric_t *c = family(WSHUB_METRIC_COUNTER, "c_total", "h", NULL, 0);
    metrics__add(c, NULL, 0.5);
    metrics__add(c, NULL, -1);
    metrics__add(c, NULL, NAN);
    metrics__add(c, NULL, 2);
    metrics__set(c, NULL, 100);
    metrics__observe(c, NULL, 100);
    ck_assert_double_eq(metrics__get(c, NULL), 2.5);
    metrics__add(NULL, NULL, 1);
    metrics__set(NULL, NULL, 1);
    metrics__observe(NULL, NULL, 1);
    ck_assert_double_eq(metrics__get(NULL, NULL), 0);
    assert_render("# HELP c_total h\n# TYPE c_total counter\nc_total 2.5\n");
}
END_TEST

START_TEST(test_gauge_set_and_add)
{
    static const char *const k[] = {"k"};
    wshub_metric_t *g = family(WSHUB_METRIC_GAUGE, "g", "h", k, 1);
    const char *x[] = {"x"};
    metrics__set(g, x, 5);
    metrics__add(g, x, -7);
    ck_assert_double_eq(metrics__get(g, x), -2);
    metrics__set(g, x, 1.5);
    metrics__add(g, x, 0.25);
    metrics__observe(g, x, 1000);
    ck_assert_double_eq(metrics__get(g, x), 1.75);
    metrics__add(g, (const char *[]){"y"}, -1);
    ck_assert_double_eq(metrics__get(g, (const char *[]){"z"}), 0);
    assert_render("# HELP g h\n# TYPE g gauge\ng{k=\"x\"} 1.75\ng{k=\"y\"} -1\n");
}
END_TEST

START_TEST(test_histogram_bucket_edges)
{
    static const double bounds[] = {1, 2, 5};
    wshub_metric_def_t def = {.kind = WSHUB_METRIC_HISTOGRAM,
                              .name = "h",
                              .help = "x",
                              .buckets = bounds,
                              .n_buckets = 3};
    wshub_metric_t *h = metrics__new_family(reg, &def, NULL);
    ck_assert_ptr_nonnull(h);
    static const double obs[] = {1, 2, 5, 6, 0, -3, 1.5};
    for (size_t i = 0; i < sizeof(obs) / sizeof(obs[0]); i++)
        metrics__observe(h, NULL, obs[i]);
    metrics__observe(h, NULL, NAN);
    metrics__add(h, NULL, 1);
    metrics__set(h, NULL, 1);
    ck_assert_double_eq(metrics__get(h, NULL), 7);
    assert_render("# HELP h x\n# TYPE h histogram\n"
                  "h_bucket{le=\"1\"} 3\n"
                  "h_bucket{le=\"2\"} 5\n"
                  "h_bucket{le=\"5\"} 6\n"
                  "h_bucket{le=\"+Inf\"} 7\n"
                  "h_sum 12.5\n"
                  "h_count 7\n");
}
END_TEST

START_TEST(test_histogram_just_above_bound)
{
    static const double bounds[] = {1, 2};
    wshub_metric_def_t def = {.kind = WSHUB_METRIC_HISTOGRAM,
                              .name = "h",
                              .help = "x",
                              .buckets = bounds,
                              .n_buckets = 2};
    wshub_metric_t *h = metrics__new_family(reg, &def, NULL);
    ck_assert_ptr_nonnull(h);
    metrics__observe(h, NULL, nextafter(1, 2));
    metrics__observe(h, NULL, nextafter(2, 3));
    metrics__observe(h, NULL, -INFINITY);
    char *out = render();
    ck_assert_ptr_nonnull(strstr(out, "h_bucket{le=\"1\"} 1\nh_bucket{le=\"2\"} 2\n"
                                      "h_bucket{le=\"+Inf\"} 3\nh_sum -Inf\nh_count 3\n"));
    free(out);
}
END_TEST

Suite *metrics_suite(void);

Suite *metrics_suite(void)
{
    Suite *s = suite_create("metrics");
    struct {
        const char *name;
        const TTest *test;
        int n; /* 0: a plain test, else a loop over [0, n) */
    } cases[] = {
        {"render", test_render_registry_exact_text, 0},
        {"render_sort", test_render_sorts_by_label_tuple, 0},
        {"number_format", test_render_number_format,
         (int)(sizeof(value_cases) / sizeof(value_cases[0]))},
        {"le_format", test_render_le_like_client_libraries, 0},
        {"default_buckets", test_render_default_buckets, 0},
        {"escape_labels", test_escape_label_values,
         (int)(sizeof(label_cases) / sizeof(label_cases[0]))},
        {"escape_help", test_escape_help, 0},
        {"null_labels", test_null_label_value_is_empty, 0},
        {"invalid_defs", test_invalid_definition_refused,
         (int)(sizeof(invalid_defs) / sizeof(invalid_defs[0]))},
        {"duplicate_name", test_duplicate_name_refused, 0},
        {"valid_edges", test_valid_edge_definitions_accepted, 0},
        {"remove_owner", test_remove_owner, 0},
        {"value_ptr_stable", test_value_ptr_stable_across_inserts, 0},
        {"value_ptr_null", test_value_ptr_null_cases, 0},
        {"series_limit", test_series_limit_per_family, 0},
        {"counter", test_counter_ignores_negative_and_foreign_ops, 0},
        {"gauge", test_gauge_set_and_add, 0},
        {"histogram_edges", test_histogram_bucket_edges, 0},
        {"histogram_above_bound", test_histogram_just_above_bound, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        TCase *tc = tcase_create(cases[i].name);
        tcase_add_checked_fixture(tc, setup, teardown);
        if (cases[i].n)
            tcase_add_loop_test(tc, cases[i].test, 0, cases[i].n);
        else
            tcase_add_test(tc, cases[i].test);
        suite_add_tcase(s, tc);
    }
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(metrics_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
