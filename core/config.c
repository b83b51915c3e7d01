/*
 * config: the YAML configuration. The text is turned into a tree of wshub_cfg nodes with libyaml's
 * event API (every node remembers "file:line:col"), the core sections are checked against the
 * tables below (unknown keys, wrong types and out-of-range values are errors that name the place),
 * and finally WSHUB_<SECTION>_<KEY> environment variables override single keys. Plugin `config:`
 * maps stay in the tree; config__check_options() checks them against a plugin's declared options
 * when the plugin is loaded.
 *
 * Allocation failures abort (STYLE 1.8: core allocation wrappers log and abort), so every other
 * failure is a message in the caller's err buffer, and every error path frees what it built.
 */
#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <yaml.h>

#define WHERE_LEN sizeof(((struct wshub_cfg *)0)->where)

/* A config file is written by an operator; anything this large is a mistake (or /dev/zero). */
#define MAX_FILE_SIZE (8u * 1024u * 1024u)
/* Bounds on the tree so that a hostile or broken file cannot exhaust the stack or the heap. */
#define MAX_DEPTH 64
#define MAX_NODES 1000000u
/* Values quoted back in messages are cut to this many bytes. */
#define MAX_QUOTED 64
/* Plugin names are used in file names, metric labels and log prefixes. */
#define MAX_PLUGIN_NAME 63
#define MAX_TENANT_NAME 255

#define KIB 1024ull
#define MIB (1024ull * KIB)
#define GIB (1024ull * MIB)

/* ------------------------------------------------------------------------------------------ */
/* Small helpers                                                                               */
/* ------------------------------------------------------------------------------------------ */

/* Out of memory is not a configuration error: report it and stop, as the core's wrappers do. */
static void oom(void)
{
    fputs("wshub: config: out of memory\n", stderr);
    abort();
}

static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom();
    return p;
}

static void *xreallocarray(void *p, size_t n, size_t size)
{
    if (size && n > SIZE_MAX / size)
        oom();
    size_t bytes = n * size;
    p = realloc(p, bytes ? bytes : 1);
    if (!p)
        oom();
    return p;
}

static char *xstrndup(const char *s, size_t len)
{
    char *p = malloc(len + 1);
    if (!p)
        oom();
    memcpy(p, s, len);
    p[len] = '\0';
    return p;
}

static char *xstrdup(const char *s)
{
    return xstrndup(s, strlen(s));
}

/* Writes a message into the caller's buffer; tolerates a NULL or empty buffer. */
WSHUB_PRINTF(3, 4)
static void set_err(char *err, size_t err_len, const char *fmt, ...)
{
    va_list ap;
    if (!err || err_len == 0)
        return;
    va_start(ap, fmt);
    vsnprintf(err, err_len, fmt, ap);
    va_end(ap);
}

/*
 * Formats "name:line:col" into a where[] buffer. When the name is too long the start of it is
 * replaced by "..." rather than the end, because line and column are the useful part.
 */
static void make_where(char *out, size_t out_len, const char *name, size_t line, size_t col)
{
    char tail[48];
    int tl = snprintf(tail, sizeof(tail), ":%zu:%zu", line, col);
    size_t nl = strlen(name);
    if (tl < 0 || (size_t)tl + 4 >= out_len) {
        snprintf(out, out_len, "%s", tail);
        return;
    }
    size_t room = out_len - 1 - (size_t)tl;
    if (nl <= room) {
        snprintf(out, out_len, "%s%s", name, tail);
        return;
    }
    const char *p = name + nl - (room - 3);
    while ((unsigned char)*p >= 0x80 && (unsigned char)*p < 0xc0)
        p++; /* do not start in the middle of a UTF-8 sequence */
    snprintf(out, out_len, "...%s%s", p, tail);
}

/*
 * Copies a value for quoting in a message: at most MAX_QUOTED bytes (cut on a UTF-8 boundary,
 * marked with "..."), control characters replaced by '?' so a value cannot forge log lines.
 */
static void quote_value(char *out, size_t out_len, const char *s)
{
    size_t len = strlen(s), n = len, o = 0;
    bool cut = false;
    if (n > MAX_QUOTED) {
        n = MAX_QUOTED;
        while (n > 0 && (unsigned char)s[n] >= 0x80 && (unsigned char)s[n] < 0xc0)
            n--;
        cut = true;
    }
    for (size_t i = 0; i < n && o + 1 < out_len; i++) {
        unsigned char c = (unsigned char)s[i];
        out[o++] = (c < 0x20 || c == 0x7f) ? '?' : (char)c;
    }
    if (cut)
        for (int i = 0; i < 3 && o + 1 < out_len; i++)
            out[o++] = '.';
    out[o] = '\0';
}

/* Levenshtein distance, capped: returns a large value for long inputs (no suggestion then). */
static size_t edit_distance(const char *a, const char *b)
{
    enum { MAXL = 64 };
    size_t la = strlen(a), lb = strlen(b);
    size_t prev[MAXL + 1], cur[MAXL + 1];
    if (la > MAXL || lb > MAXL)
        return SIZE_MAX;
    for (size_t j = 0; j <= lb; j++)
        prev[j] = j;
    for (size_t i = 1; i <= la; i++) {
        cur[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t del = prev[j] + 1, ins = cur[j - 1] + 1;
            size_t sub = prev[j - 1] + (a[i - 1] != b[j - 1]);
            size_t m = del < ins ? del : ins;
            cur[j] = m < sub ? m : sub;
        }
        memcpy(prev, cur, (lb + 1) * sizeof(prev[0]));
    }
    return prev[lb];
}

/* The closest candidate within edit distance 2, or NULL. Ties go to the earlier candidate. */
static const char *suggest(const char *key, const char *const *names, size_t n)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(key, names[i]);
        if (d < best_d) {
            best_d = d;
            best = names[i];
        }
    }
    return best;
}

/* Formats " (did you mean 'x'?)" or "" into out. */
static void did_you_mean(char *out, size_t out_len, const char *key, const char *const *names,
                         size_t n)
{
    const char *s = suggest(key, names, n);
    if (s)
        snprintf(out, out_len, " (did you mean '%s'?)", s);
    else if (out_len)
        out[0] = '\0';
}

/* ------------------------------------------------------------------------------------------ */
/* Scalar parsers                                                                              */
/* ------------------------------------------------------------------------------------------ */

enum { PARSE_OK = 0, PARSE_SYNTAX = -1, PARSE_RANGE = -2 };

/* Unsigned decimal digits only; PARSE_RANGE when the value does not fit in 64 bits. */
static int parse_digits(const char *s, size_t len, uint64_t *out)
{
    uint64_t v = 0;
    if (len == 0)
        return PARSE_SYNTAX;
    for (size_t i = 0; i < len; i++) /* "999...9x" is a syntax error, not an overflow */
        if (s[i] < '0' || s[i] > '9')
            return PARSE_SYNTAX;
    for (size_t i = 0; i < len; i++) {
        unsigned d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return PARSE_RANGE;
        v = v * 10 + d;
    }
    *out = v;
    return PARSE_OK;
}

static size_t count_digits(const char *s)
{
    size_t n = 0;
    while (s[n] >= '0' && s[n] <= '9')
        n++;
    return n;
}

/* "[+-]digits" into an int64_t. */
static int parse_int_detail(const char *s, int64_t *out)
{
    bool neg = false;
    uint64_t v;
    if (!s)
        return PARSE_SYNTAX;
    if (*s == '+' || *s == '-')
        neg = *s++ == '-';
    int rc = parse_digits(s, strlen(s), &v);
    if (rc != PARSE_OK)
        return rc;
    if (neg) {
        if (v > (uint64_t)INT64_MAX + 1)
            return PARSE_RANGE;
        *out = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
    } else {
        if (v > (uint64_t)INT64_MAX)
            return PARSE_RANGE;
        *out = (int64_t)v;
    }
    return PARSE_OK;
}

/* A number followed by one of the suffixes in the table; the bare number uses unit `plain`. */
struct unit {
    const char *suffix;
    uint64_t mult;
};

static int parse_with_units(const char *s, const struct unit *units, size_t n_units, uint64_t *out)
{
    uint64_t v;
    if (!s)
        return PARSE_SYNTAX;
    size_t nd = count_digits(s);
    if (nd == 0)
        return PARSE_SYNTAX;
    const char *suffix = s + nd;
    for (size_t i = 0; i < n_units; i++) {
        if (strcmp(suffix, units[i].suffix) != 0)
            continue;
        int rc = parse_digits(s, nd, &v);
        if (rc != PARSE_OK)
            return rc;
        if (units[i].mult && v > UINT64_MAX / units[i].mult)
            return PARSE_RANGE;
        *out = v * units[i].mult;
        return PARSE_OK;
    }
    return PARSE_SYNTAX;
}

static const struct unit duration_units[] = {
    {"", 1}, {"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000},
};

static const struct unit size_units[] = {
    {"", 1},      {"B", 1},     {"KB", 1000}, {"MB", 1000000}, {"GB", 1000000000},
    {"KiB", KIB}, {"MiB", MIB}, {"GiB", GIB},
};

static int parse_duration_detail(const char *s, uint64_t *out)
{
    return parse_with_units(s, duration_units, sizeof(duration_units) / sizeof(duration_units[0]),
                            out);
}

static int parse_size_detail(const char *s, uint64_t *out)
{
    return parse_with_units(s, size_units, sizeof(size_units) / sizeof(size_units[0]), out);
}

int config__parse_bool(const char *s, bool *out)
{
    static const char *const yes[] = {"true", "yes", "on"};
    static const char *const no[] = {"false", "no", "off"};
    if (!s)
        return -1;
    for (size_t i = 0; i < 3; i++) {
        if (strcasecmp(s, yes[i]) == 0) {
            *out = true;
            return 0;
        }
        if (strcasecmp(s, no[i]) == 0) {
            *out = false;
            return 0;
        }
    }
    return -1;
}

int config__parse_int(const char *s, int64_t *out)
{
    return parse_int_detail(s, out) == PARSE_OK ? 0 : -1;
}

int config__parse_duration_ms(const char *s, uint64_t *out)
{
    return parse_duration_detail(s, out) == PARSE_OK ? 0 : -1;
}

int config__parse_size(const char *s, uint64_t *out)
{
    return parse_size_detail(s, out) == PARSE_OK ? 0 : -1;
}

/* Host names: letters, digits, '.', '-', '_' (the last for container names), at most 253. */
static bool is_hostname(const char *s, size_t len)
{
    if (len == 0 || len > 253)
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '.' || c == '-' || c == '_'))
            return false;
    }
    return true;
}

/* An IPv6 literal as found between brackets, with an optional "%zone" (interface name). */
static bool is_ipv6(const char *s, size_t len)
{
    char buf[INET6_ADDRSTRLEN + 1];
    unsigned char addr[16];
    const char *pct = memchr(s, '%', len);
    size_t alen = pct ? (size_t)(pct - s) : len;
    if (alen == 0 || alen >= sizeof(buf))
        return false;
    if (pct) {
        size_t zlen = len - alen - 1;
        if (zlen == 0 || zlen > 15)
            return false;
        for (size_t i = 0; i < zlen; i++) {
            char c = pct[1 + i];
            if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_'))
                return false;
        }
    }
    memcpy(buf, s, alen);
    buf[alen] = '\0';
    return inet_pton(AF_INET6, buf, addr) == 1;
}

/*
 * "host:port" with host a name or IPv4 address, or "[v6]:port". The brackets are removed from the
 * host handed back (getaddrinfo wants the bare address). Port 0 asks the kernel for any port.
 */
int config__parse_listen(const char *s, char **host, uint16_t *port)
{
    const char *h, *colon;
    size_t hlen;
    uint64_t p;
    if (!s || !host || !port)
        return -1;
    if (s[0] == '[') {
        const char *close = strchr(s, ']');
        if (!close || close[1] != ':')
            return -1;
        h = s + 1;
        hlen = (size_t)(close - h);
        if (!is_ipv6(h, hlen))
            return -1;
        colon = close + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon)
            return -1;
        h = s;
        hlen = (size_t)(colon - s);
        if (!is_hostname(h, hlen)) /* also refuses an unbracketed IPv6 address */
            return -1;
    }
    const char *ps = colon + 1;
    size_t plen = strlen(ps);
    if (plen == 0 || plen > 5 || parse_digits(ps, plen, &p) != PARSE_OK || p > 65535)
        return -1;
    *host = xstrndup(h, hlen);
    *port = (uint16_t)p;
    return 0;
}

int config__parse_log_level(const char *s, int *out)
{
    static const struct {
        const char *name;
        int level;
    } levels[] = {
        {"err", WSHUB_LOG_ERR},      {"error", WSHUB_LOG_ERR},     {"warn", WSHUB_LOG_WARN},
        {"warning", WSHUB_LOG_WARN}, {"notice", WSHUB_LOG_NOTICE}, {"info", WSHUB_LOG_INFO},
        {"debug", WSHUB_LOG_DEBUG},
    };
    if (!s)
        return -1;
    for (size_t i = 0; i < sizeof(levels) / sizeof(levels[0]); i++) {
        if (strcasecmp(s, levels[i].name) == 0) {
            *out = levels[i].level;
            return 0;
        }
    }
    return -1;
}

/* ------------------------------------------------------------------------------------------ */
/* Nodes                                                                                       */
/* ------------------------------------------------------------------------------------------ */

static struct wshub_cfg *node_new(wshub_cfg_kind_t kind, const char *where)
{
    struct wshub_cfg *n = xcalloc(1, sizeof(*n));
    n->kind = kind;
    snprintf(n->where, sizeof(n->where), "%s", where);
    return n;
}

static struct wshub_cfg *scalar_new(const char *text, const char *where)
{
    struct wshub_cfg *n = node_new(WSHUB_CFG_SCALAR, where);
    n->scalar = xstrdup(text);
    return n;
}

void config__node_free(struct wshub_cfg *node)
{
    if (!node)
        return;
    for (size_t i = 0; i < node->n; i++) {
        if (node->items)
            config__node_free(node->items[i]);
        if (node->keys)
            free(node->keys[i]);
    }
    free(node->items);
    free(node->keys);
    free(node->key_where);
    free(node->scalar);
    free(node);
}

struct wshub_cfg *config__empty_map(void)
{
    return node_new(WSHUB_CFG_MAP, "<none>");
}

/* Appends an entry to a map (keeps the key position for messages). Takes ownership of value. */
static void map_append(struct wshub_cfg *map, const char *key, struct wshub_cfg *value,
                       const char *key_where)
{
    map->items = xreallocarray(map->items, map->n + 1, sizeof(*map->items));
    map->keys = xreallocarray(map->keys, map->n + 1, sizeof(*map->keys));
    bool had_where = map->key_where != NULL;
    map->key_where = xreallocarray(map->key_where, map->n + 1, sizeof(*map->key_where));
    if (!had_where) /* a map built by hand: its earlier keys are placed at their values */
        for (size_t i = 0; i < map->n; i++)
            snprintf(map->key_where[i], sizeof(map->key_where[i]), "%s", map->items[i]->where);
    map->items[map->n] = value;
    map->keys[map->n] = xstrdup(key);
    snprintf(map->key_where[map->n], sizeof(map->key_where[0]), "%s", key_where);
    map->n++;
}

/* Where a map's i-th key was written; the value's place when the map was built without keys'. */
static const char *key_where_at(const struct wshub_cfg *map, size_t i)
{
    return map->key_where ? map->key_where[i] : map->items[i]->where;
}

/* Replaces the value of entry i of a map, freeing the old one. */
static void map_replace(struct wshub_cfg *map, size_t i, struct wshub_cfg *value)
{
    config__node_free(map->items[i]);
    map->items[i] = value;
}

static bool is_null(const struct wshub_cfg *n)
{
    return n && n->kind == WSHUB_CFG_SCALAR && n->is_null;
}

/* For "got ...": the quoted text of a scalar, or what kind of node it is. */
static void describe(char *out, size_t out_len, const struct wshub_cfg *n)
{
    char q[MAX_QUOTED * 2];
    if (!n || is_null(n)) {
        snprintf(out, out_len, "null");
    } else if (n->kind == WSHUB_CFG_MAP) {
        snprintf(out, out_len, "a mapping");
    } else if (n->kind == WSHUB_CFG_LIST) {
        snprintf(out, out_len, "a list");
    } else {
        quote_value(q, sizeof(q), n->scalar ? n->scalar : "");
        snprintf(out, out_len, "'%s'", q);
    }
}

const struct wshub_cfg *config__get(const struct wshub_cfg *node, const char *key)
{
    if (!node || node->kind != WSHUB_CFG_MAP || !node->keys || !key)
        return NULL;
    for (size_t i = 0; i < node->n; i++)
        if (strcmp(node->keys[i], key) == 0)
            return node->items[i];
    return NULL;
}

/* A null value means "not set" for every accessor, so `key: ~` and no key behave alike. */
const char *config__str(const struct wshub_cfg *node, const char *key, const char *def)
{
    const struct wshub_cfg *c = config__get(node, key);
    if (!c || c->kind != WSHUB_CFG_SCALAR || c->is_null || !c->scalar)
        return def;
    return c->scalar;
}

/* Integers, durations (in ms) and sizes (in bytes) all read as int64. */
static int scalar_to_int(const char *s, int64_t *out)
{
    uint64_t u;
    if (parse_int_detail(s, out) == PARSE_OK)
        return 0;
    if ((parse_duration_detail(s, &u) == PARSE_OK || parse_size_detail(s, &u) == PARSE_OK) &&
        u <= (uint64_t)INT64_MAX) {
        *out = (int64_t)u;
        return 0;
    }
    return -1;
}

int config__int(const struct wshub_cfg *node, const char *key, int64_t def, int64_t *out)
{
    const struct wshub_cfg *c = config__get(node, key);
    int64_t v;
    if (!out)
        return WSHUB_ERR_INVAL;
    *out = def;
    if (!c || is_null(c))
        return WSHUB_OK;
    if (c->kind != WSHUB_CFG_SCALAR || !c->scalar || scalar_to_int(c->scalar, &v) != 0)
        return WSHUB_ERR_INVAL;
    *out = v;
    return WSHUB_OK;
}

bool config__bool(const struct wshub_cfg *node, const char *key, bool def)
{
    const struct wshub_cfg *c = config__get(node, key);
    bool v;
    if (!c || c->kind != WSHUB_CFG_SCALAR || c->is_null || config__parse_bool(c->scalar, &v) != 0)
        return def;
    return v;
}

/* ------------------------------------------------------------------------------------------ */
/* YAML text -> node tree                                                                      */
/* ------------------------------------------------------------------------------------------ */

struct tree {
    yaml_parser_t parser;
    const char *name;
    const unsigned char *input;
    size_t input_len;
    size_t n_nodes;
    char *err;
    size_t err_len;
};

static void mark_where(const struct tree *t, yaml_mark_t m, char *out, size_t out_len)
{
    make_where(out, out_len, t->name, m.line + 1, m.column + 1);
}

/*
 * Turns the parser's own error into "file:line:col: problem (context)". Reader errors (bad
 * UTF-8, control characters) carry a byte offset instead of a mark, so line and column are
 * counted from the input here.
 */
static int yaml_fail(struct tree *t)
{
    yaml_parser_t *p = &t->parser;
    char where[WHERE_LEN];
    const char *problem = p->problem ? p->problem : "invalid YAML";
    switch (p->error) {
    case YAML_MEMORY_ERROR:
        set_err(t->err, t->err_len, "%s: out of memory while parsing", t->name);
        return -1;
    case YAML_READER_ERROR: {
        size_t line = 1, col = 1, end = p->problem_offset;
        if (end > t->input_len)
            end = t->input_len;
        for (size_t i = 0; i < end; i++) {
            if (t->input[i] == '\n') {
                line++;
                col = 1;
            } else if ((t->input[i] & 0xc0) != 0x80) {
                col++;
            }
        }
        make_where(where, sizeof(where), t->name, line, col);
        if (p->problem_value != -1)
            set_err(t->err, t->err_len, "%s: %s (0x%X)", where, problem,
                    (unsigned)p->problem_value);
        else
            set_err(t->err, t->err_len, "%s: %s", where, problem);
        return -1;
    }
    default:
        break;
    }
    mark_where(t, p->problem_mark, where, sizeof(where));
    if (p->context)
        set_err(t->err, t->err_len, "%s: %s (%s)", where, problem, p->context);
    else
        set_err(t->err, t->err_len, "%s: %s", where, problem);
    return -1;
}

static int next_event(struct tree *t, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&t->parser, ev))
        return yaml_fail(t);
    return 0;
}

WSHUB_PRINTF(3, 4)
static int tree_fail(struct tree *t, yaml_mark_t m, const char *fmt, ...)
{
    char where[WHERE_LEN], msg[512];
    va_list ap;
    mark_where(t, m, where, sizeof(where));
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    set_err(t->err, t->err_len, "%s: %s", where, msg);
    return -1;
}

/* Plain ~, null, Null, NULL and the empty plain scalar are YAML's null. */
static bool plain_is_null(const char *s, size_t len)
{
    return len == 0 || strcmp(s, "~") == 0 || strcmp(s, "null") == 0 || strcmp(s, "Null") == 0 ||
           strcmp(s, "NULL") == 0;
}

/* Scalar text as a C string; a NUL inside (a "\0" escape) would silently cut it, so refuse. */
static int scalar_text(struct tree *t, const yaml_event_t *ev, char **out)
{
    const char *v = (const char *)ev->data.scalar.value;
    size_t len = ev->data.scalar.length;
    if (memchr(v, '\0', len))
        return tree_fail(t, ev->start_mark, "NUL character in a scalar is not allowed");
    *out = xstrndup(v, len);
    return 0;
}

struct key_ref {
    const char *key;
    size_t idx;
};

static int key_ref_cmp(const void *a, const void *b)
{
    const struct key_ref *x = a, *y = b;
    int c = strcmp(x->key, y->key);
    if (c)
        return c;
    return x->idx < y->idx ? -1 : x->idx > y->idx;
}

/*
 * Finds the first key (in document order) that repeats an earlier key of the same mapping.
 * Sorting keeps this O(n log n), so a mapping with many keys cannot stall the loader.
 */
static int check_duplicates(struct tree *t, const struct wshub_cfg *map)
{
    struct key_ref *refs;
    size_t dup = SIZE_MAX, first = 0;
    if (map->n < 2)
        return 0;
    refs = xcalloc(map->n, sizeof(*refs));
    for (size_t i = 0; i < map->n; i++)
        refs[i] = (struct key_ref){map->keys[i], i};
    qsort(refs, map->n, sizeof(*refs), key_ref_cmp);
    for (size_t i = 0; i < map->n;) {
        size_t j = i + 1;
        while (j < map->n && strcmp(refs[j].key, refs[i].key) == 0)
            j++;
        if (j - i > 1 && refs[i + 1].idx < dup) {
            dup = refs[i + 1].idx;
            first = refs[i].idx;
        }
        i = j;
    }
    free(refs);
    if (dup == SIZE_MAX)
        return 0;
    char q[MAX_QUOTED * 2];
    quote_value(q, sizeof(q), map->keys[dup]);
    set_err(t->err, t->err_len, "%s: duplicate key '%s' (first at %s)", map->key_where[dup], q,
            map->key_where[first]);
    return -1;
}

static int build_node(struct tree *t, yaml_event_t *ev, int depth, struct wshub_cfg **out);

static int build_sequence(struct tree *t, struct wshub_cfg *node, int depth)
{
    size_t cap = 0;
    for (;;) {
        yaml_event_t ev;
        struct wshub_cfg *child;
        if (next_event(t, &ev) != 0)
            return -1;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        if (build_node(t, &ev, depth + 1, &child) != 0)
            return -1;
        if (node->n == cap) {
            cap = cap ? cap * 2 : 4;
            node->items = xreallocarray(node->items, cap, sizeof(*node->items));
        }
        node->items[node->n++] = child;
    }
}

static int build_mapping(struct tree *t, struct wshub_cfg *node, int depth)
{
    size_t cap = 0;
    for (;;) {
        yaml_event_t kev, vev;
        char *key = NULL;
        char kwhere[WHERE_LEN];
        struct wshub_cfg *child;
        if (next_event(t, &kev) != 0)
            return -1;
        if (kev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&kev);
            return check_duplicates(t, node);
        }
        if (kev.type != YAML_SCALAR_EVENT) {
            int rc = tree_fail(t, kev.start_mark, "%s",
                               kev.type == YAML_ALIAS_EVENT ? "aliases are not supported"
                                                            : "mapping keys must be scalars");
            yaml_event_delete(&kev);
            return rc;
        }
        mark_where(t, kev.start_mark, kwhere, sizeof(kwhere));
        int rc = scalar_text(t, &kev, &key);
        yaml_event_delete(&kev);
        if (rc != 0)
            return -1;
        if (next_event(t, &vev) != 0 || build_node(t, &vev, depth + 1, &child) != 0) {
            free(key);
            return -1;
        }
        if (node->n == cap) {
            cap = cap ? cap * 2 : 4;
            node->items = xreallocarray(node->items, cap, sizeof(*node->items));
            node->keys = xreallocarray(node->keys, cap, sizeof(*node->keys));
            node->key_where = xreallocarray(node->key_where, cap, sizeof(*node->key_where));
        }
        node->items[node->n] = child;
        node->keys[node->n] = key;
        memcpy(node->key_where[node->n], kwhere, sizeof(kwhere));
        node->n++;
    }
}

/*
 * Builds the node that starts with event `ev` (consumed here, whatever happens), reading the
 * following events for collections. Anchors and tags are ignored; aliases are refused because
 * they would turn the tree into a graph (and "billion laughs" expansions).
 */
static int build_node(struct tree *t, yaml_event_t *ev, int depth, struct wshub_cfg **out)
{
    char where[WHERE_LEN];
    struct wshub_cfg *node = NULL;
    int rc = 0;
    *out = NULL;
    mark_where(t, ev->start_mark, where, sizeof(where));
    if (depth > MAX_DEPTH) {
        rc = tree_fail(t, ev->start_mark, "nesting deeper than %d levels", MAX_DEPTH);
        yaml_event_delete(ev);
        return rc;
    }
    if (++t->n_nodes > MAX_NODES) {
        rc = tree_fail(t, ev->start_mark, "more than %u nodes", MAX_NODES);
        yaml_event_delete(ev);
        return rc;
    }
    switch (ev->type) {
    case YAML_ALIAS_EVENT:
        rc = tree_fail(t, ev->start_mark, "aliases are not supported");
        yaml_event_delete(ev);
        return rc;
    case YAML_SCALAR_EVENT: {
        char *text = NULL;
        if (scalar_text(t, ev, &text) != 0) {
            yaml_event_delete(ev);
            return -1;
        }
        node = node_new(WSHUB_CFG_SCALAR, where);
        node->scalar = text;
        /* Only a plain scalar can be null; any other style (quoted, block) is a string. */
        node->is_quoted = ev->data.scalar.style != YAML_PLAIN_SCALAR_STYLE;
        node->is_null = !node->is_quoted && plain_is_null(text, ev->data.scalar.length);
        yaml_event_delete(ev);
        break;
    }
    case YAML_SEQUENCE_START_EVENT:
        yaml_event_delete(ev);
        node = node_new(WSHUB_CFG_LIST, where);
        rc = build_sequence(t, node, depth);
        break;
    case YAML_MAPPING_START_EVENT:
        yaml_event_delete(ev);
        node = node_new(WSHUB_CFG_MAP, where);
        rc = build_mapping(t, node, depth);
        break;
    default:
        rc = tree_fail(t, ev->start_mark, "unexpected YAML event %d", (int)ev->type);
        yaml_event_delete(ev);
        return rc;
    }
    if (rc != 0) {
        config__node_free(node);
        return -1;
    }
    *out = node;
    return 0;
}

/*
 * Parses one YAML document into a tree. An empty stream gives *out == NULL. More than one
 * document is refused: a second document would be silently ignored otherwise.
 */
int config__parse_tree(const char *name, const char *yaml, size_t len, struct wshub_cfg **out,
                       char *err, size_t err_len)
{
    struct tree t = {.name = name ? name : "<string>",
                     .input = (const unsigned char *)(yaml ? yaml : ""),
                     .input_len = yaml ? len : 0,
                     .err = err,
                     .err_len = err_len};
    struct wshub_cfg *root = NULL;
    yaml_event_t ev;
    int rc = -1;

    *out = NULL;
    set_err(err, err_len, "%s", "");
    if (!yaml_parser_initialize(&t.parser))
        oom();
    yaml_parser_set_input_string(&t.parser, t.input, t.input_len);

    if (next_event(&t, &ev) != 0)
        goto done;
    yaml_event_delete(&ev); /* STREAM_START */
    if (next_event(&t, &ev) != 0)
        goto done;
    if (ev.type == YAML_STREAM_END_EVENT) {
        yaml_event_delete(&ev);
        rc = 0;
        goto done;
    }
    yaml_event_delete(&ev); /* DOCUMENT_START */
    if (next_event(&t, &ev) != 0 || build_node(&t, &ev, 0, &root) != 0)
        goto done;
    if (next_event(&t, &ev) != 0)
        goto done;
    yaml_event_delete(&ev); /* DOCUMENT_END */
    if (next_event(&t, &ev) != 0)
        goto done;
    if (ev.type != YAML_STREAM_END_EVENT) {
        tree_fail(&t, ev.start_mark, "multiple documents are not supported");
        yaml_event_delete(&ev);
        goto done;
    }
    yaml_event_delete(&ev);
    *out = root;
    root = NULL;
    rc = 0;
done:
    config__node_free(root);
    yaml_parser_delete(&t.parser);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* The core schema                                                                             */
/* ------------------------------------------------------------------------------------------ */

enum ftype {
    FT_LISTEN,   /* char *host at off, uint16_t port at off2 */
    FT_URLPATH,  /* char *, starts with '/' */
    FT_DIR,      /* char *, a file system path (resolved against the config file's directory) */
    FT_U32,      /* uint32_t in [min, max] */
    FT_INT,      /* int in [min, max] */
    FT_SIZE,     /* size_t bytes in [min, max] */
    FT_DURATION, /* uint64_t ms in [min, max] */
    FT_BOOL,     /* bool */
    FT_STRLIST,  /* char ** at off, size_t count at off2 */
    FT_LOGLEVEL, /* int WSHUB_LOG_* */
};

struct field {
    const char *key;
    enum ftype type;
    size_t off, off2;
    uint64_t min, max;
    const char *range; /* for messages: "between 1 and 10000000" */
};

struct section {
    const char *name; /* YAML key and env infix (upper-cased) */
    const struct field *fields;
    size_t n_fields;
};

#define CFG_OFF(m) offsetof(config_t, m)

static const struct field server_fields[] = {
    {"listen", FT_LISTEN, CFG_OFF(server.listen_host), CFG_OFF(server.listen_port), 0, 0, NULL},
    {"path", FT_URLPATH, CFG_OFF(server.path), 0, 0, 0, NULL},
    {"max_connections", FT_U32, CFG_OFF(server.max_connections), 0, 1, 10000000,
     "between 1 and 10000000"},
    {"max_message_size", FT_SIZE, CFG_OFF(server.max_message_size), 0, 125, GIB,
     "between 125 bytes and 1GiB"},
    {"heartbeat_interval", FT_DURATION, CFG_OFF(server.heartbeat_interval_ms), 0, 100, 3600000,
     "between 100ms and 1h"},
    {"connection_timeout", FT_DURATION, CFG_OFF(server.connection_timeout_ms), 0, 100, 86400000,
     "between 100ms and 24h"},
    {"handshake_timeout", FT_DURATION, CFG_OFF(server.handshake_timeout_ms), 0, 100, 300000,
     "between 100ms and 5m"},
    {"send_queue_max_bytes", FT_SIZE, CFG_OFF(server.send_queue_max_bytes), 0, KIB, GIB,
     "between 1KiB and 1GiB"},
    {"cors_origins", FT_STRLIST, CFG_OFF(server.cors_origins), CFG_OFF(server.n_cors_origins), 0, 0,
     NULL},
    {"permessage_deflate", FT_BOOL, CFG_OFF(server.permessage_deflate), 0, 0, 0, NULL},
    {"deflate_min_size", FT_SIZE, CFG_OFF(server.deflate_min_size), 0, 0, GIB,
     "between 0 and 1GiB"},
    {"shutdown_timeout", FT_DURATION, CFG_OFF(server.shutdown_timeout_ms), 0, 0, 3600000,
     "between 0 and 1h"},
    {"max_header_size", FT_SIZE, CFG_OFF(server.max_header_size), 0, KIB, MIB,
     "between 1KiB and 1MiB"},
    {"reuse_port", FT_BOOL, CFG_OFF(server.reuse_port), 0, 0, 0, NULL},
    {"max_connections_per_ip", FT_U32, CFG_OFF(server.max_connections_per_ip), 0, 0, 10000000,
     "between 0 and 10000000"},
    {"backlog", FT_INT, CFG_OFF(server.backlog), 0, 1, 65535, "between 1 and 65535"},
};

static const struct field admin_fields[] = {
    {"enabled", FT_BOOL, CFG_OFF(admin.enabled), 0, 0, 0, NULL},
    {"listen", FT_LISTEN, CFG_OFF(admin.listen_host), CFG_OFF(admin.listen_port), 0, 0, NULL},
};

static const struct field log_fields[] = {
    {"level", FT_LOGLEVEL, CFG_OFF(log.level), 0, 0, 0, NULL},
};

static const struct field metrics_fields[] = {
    {"tenant_labels", FT_BOOL, CFG_OFF(metrics.tenant_labels), 0, 0, 0, NULL},
};

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

static const struct section sections[] = {
    {"server", server_fields, N_OF(server_fields)},
    {"admin", admin_fields, N_OF(admin_fields)},
    {"log", log_fields, N_OF(log_fields)},
    {"metrics", metrics_fields, N_OF(metrics_fields)},
};

static const struct field plugin_dir_field = {"plugin_dir", FT_DIR, CFG_OFF(plugin_dir), 0, 0, 0,
                                              NULL};

static const struct field tenant_fields[] = {
    {"max_connections", FT_U32, offsetof(config_tenant_t, max_connections), 0, 0, 10000000,
     "between 0 and 10000000"},
    {"cors_origins", FT_STRLIST, offsetof(config_tenant_t, cors_origins),
     offsetof(config_tenant_t, n_cors_origins), 0, 0, NULL},
};

static const char *const top_keys[] = {"server",     "admin",   "log",    "metrics",
                                       "plugin_dir", "plugins", "tenants"};
static const char *const plugin_keys[] = {"name", "path", "optional", "config"};

/* The state of one load: where messages go and how relative paths are resolved. */
struct load {
    config_t *cfg;
    const char *dir; /* directory of the config file, or NULL: keep relative paths as written */
    char *err;
    size_t err_len;
};

WSHUB_PRINTF(3, 4)
static int load_fail(struct load *ld, const char *where, const char *fmt, ...)
{
    char msg[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    set_err(ld->err, ld->err_len, "%s: %s", where, msg);
    return -1;
}

/* Joins a relative path to the config file's directory; absolute paths are kept. */
static char *resolve_path(const char *dir, const char *path)
{
    if (!dir || path[0] == '/')
        return xstrdup(path);
    size_t dl = strlen(dir), pl = strlen(path);
    char *out = xcalloc(dl + pl + 2, 1);
    memcpy(out, dir, dl);
    size_t o = dl;
    if (o == 0 || out[o - 1] != '/')
        out[o++] = '/';
    memcpy(out + o, path, pl + 1);
    return out;
}

static bool has_space_or_control(const char *s)
{
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c <= 0x20 || c == 0x7f)
            return true;
    }
    return false;
}

/* A value parsed for a field, before it is stored. */
union fval {
    uint64_t u;
    int64_t i;
    bool b;
    char *str;
    struct {
        char *host;
        uint16_t port;
    } listen;
};

/*
 * Parses the text of a scalar field. On failure the problem ("expected an integer, got 'abc'")
 * is written to prob. Strings are allocated into v; the caller stores or frees them.
 */
static int field_parse(const struct field *f, const char *text, const char *dir, union fval *v,
                       char *prob, size_t prob_len)
{
    char q[MAX_QUOTED * 2];
    int rc;
    quote_value(q, sizeof(q), text);
    switch (f->type) {
    case FT_LISTEN:
        if (config__parse_listen(text, &v->listen.host, &v->listen.port) != 0) {
            snprintf(prob, prob_len,
                     "expected host:port (e.g. 0.0.0.0:8080 or [::1]:8080), got '%s'", q);
            return -1;
        }
        return 0;
    case FT_URLPATH:
        if (text[0] != '/' || strlen(text) > 1024 || has_space_or_control(text) ||
            strpbrk(text, "?#")) {
            snprintf(prob, prob_len, "expected a URL path starting with '/', got '%s'", q);
            return -1;
        }
        v->str = xstrdup(text);
        return 0;
    case FT_DIR:
        if (text[0] == '\0') {
            snprintf(prob, prob_len, "expected a non-empty path");
            return -1;
        }
        v->str = resolve_path(dir, text);
        return 0;
    case FT_U32:
    case FT_INT:
        rc = parse_int_detail(text, &v->i);
        if (rc == PARSE_SYNTAX) {
            snprintf(prob, prob_len, "expected an integer, got '%s'", q);
            return -1;
        }
        if (rc == PARSE_RANGE || v->i < (int64_t)f->min || v->i > (int64_t)f->max) {
            snprintf(prob, prob_len, "must be %s, got '%s'", f->range, q);
            return -1;
        }
        return 0;
    case FT_SIZE:
        rc = parse_size_detail(text, &v->u);
        if (rc == PARSE_SYNTAX) {
            snprintf(prob, prob_len,
                     "expected a size (bytes, or with B, KB, MB, GB, KiB, MiB, GiB), got '%s'", q);
            return -1;
        }
        if (rc == PARSE_RANGE || v->u < f->min || v->u > f->max) {
            snprintf(prob, prob_len, "must be %s, got '%s'", f->range, q);
            return -1;
        }
        return 0;
    case FT_DURATION:
        rc = parse_duration_detail(text, &v->u);
        if (rc == PARSE_SYNTAX) {
            snprintf(prob, prob_len,
                     "expected a duration (milliseconds, or with ms, s, m, h), got '%s'", q);
            return -1;
        }
        if (rc == PARSE_RANGE || v->u < f->min || v->u > f->max) {
            snprintf(prob, prob_len, "must be %s, got '%s'", f->range, q);
            return -1;
        }
        return 0;
    case FT_BOOL:
        if (config__parse_bool(text, &v->b) != 0) {
            snprintf(prob, prob_len, "expected a boolean (true or false), got '%s'", q);
            return -1;
        }
        return 0;
    case FT_LOGLEVEL: {
        int level;
        if (config__parse_log_level(text, &level) != 0) {
            snprintf(prob, prob_len,
                     "expected a log level (err, warn, notice, info, debug), got '%s'", q);
            return -1;
        }
        v->i = level;
        return 0;
    }
    case FT_STRLIST:
        break;
    }
    snprintf(prob, prob_len, "internal error: field type %d", (int)f->type);
    return -1;
}

/* Stores a parsed value into the struct at `base`, releasing the value it replaces. */
static void field_store(void *base, const struct field *f, union fval *v)
{
    char *p = (char *)base + f->off;
    switch (f->type) {
    case FT_LISTEN:
        free(*(char **)p);
        *(char **)p = v->listen.host;
        *(uint16_t *)((char *)base + f->off2) = v->listen.port;
        break;
    case FT_URLPATH:
    case FT_DIR:
        free(*(char **)p);
        *(char **)p = v->str;
        break;
    case FT_U32:
        *(uint32_t *)p = (uint32_t)v->i;
        break;
    case FT_INT:
        *(int *)p = (int)v->i;
        break;
    case FT_SIZE:
        *(size_t *)p = (size_t)v->u;
        break;
    case FT_DURATION:
        *(uint64_t *)p = v->u;
        break;
    case FT_BOOL:
        *(bool *)p = v->b;
        break;
    case FT_LOGLEVEL:
        *(int *)p = (int)v->i;
        break;
    case FT_STRLIST:
        break;
    }
}

static void strlist_free(char **list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(list[i]);
    free(list);
}

static void strlist_store(void *base, const struct field *f, char **list, size_t n)
{
    char ***lp = (char ***)((char *)base + f->off);
    size_t *np = (size_t *)((char *)base + f->off2);
    strlist_free(*lp, *np);
    *lp = list;
    *np = n;
}

/* An origin is one token: "*", "https://app.example.com", a wildcard host pattern. */
static bool origin_ok(const char *s)
{
    return s[0] != '\0' && strlen(s) <= 1024 && !has_space_or_control(s);
}

/* Sets one field from a YAML node; `label` is "server.max_connections" for messages. */
static int field_from_node(struct load *ld, void *base, const struct field *f,
                           const struct wshub_cfg *node, const char *label)
{
    char prob[512], got[MAX_QUOTED * 2 + 8];
    union fval v;

    if (is_null(node))
        return 0; /* `key:` or `key: ~` keeps the default */
    if (f->type == FT_STRLIST) {
        if (node->kind != WSHUB_CFG_LIST) {
            describe(got, sizeof(got), node);
            return load_fail(ld, node->where, "%s: expected a list of strings, got %s", label, got);
        }
        char **list = xcalloc(node->n, sizeof(*list));
        for (size_t i = 0; i < node->n; i++) {
            const struct wshub_cfg *it = node->items[i];
            if (it->kind != WSHUB_CFG_SCALAR || it->is_null || !origin_ok(it->scalar)) {
                describe(got, sizeof(got), it);
                strlist_free(list, i);
                return load_fail(ld, it->where,
                                 "%s[%zu]: expected an origin (a string without spaces), got %s",
                                 label, i, got);
            }
            list[i] = xstrdup(it->scalar);
        }
        strlist_store(base, f, list, node->n);
        return 0;
    }
    if (node->kind != WSHUB_CFG_SCALAR) {
        describe(got, sizeof(got), node);
        return load_fail(ld, node->where, "%s: expected a scalar value, got %s", label, got);
    }
    if (field_parse(f, node->scalar, ld->dir, &v, prob, sizeof(prob)) != 0)
        return load_fail(ld, node->where, "%s: %s", label, prob);
    field_store(base, f, &v);
    return 0;
}

static const struct field *find_field(const struct field *fields, size_t n, const char *key)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(fields[i].key, key) == 0)
            return &fields[i];
    return NULL;
}

static int unknown_key(struct load *ld, const char *where, const char *key, const char *in,
                       const struct field *fields, size_t n)
{
    const char *names[32];
    char q[MAX_QUOTED * 2], hint[96];
    size_t m = n < N_OF(names) ? n : N_OF(names);
    for (size_t i = 0; i < m; i++)
        names[i] = fields[i].key;
    quote_value(q, sizeof(q), key);
    did_you_mean(hint, sizeof(hint), key, names, m);
    return load_fail(ld, where, "unknown key '%s' in '%s'%s", q, in, hint);
}

/*
 * Checks a mapping against a field table (a core section or one tenant): every key must be a
 * known field, and each value is parsed into the struct at `base`. `label` names the mapping in
 * messages ("server", "tenants.acme").
 */
static int check_fields(struct load *ld, void *base, const struct field *fields, size_t n,
                        const struct wshub_cfg *map, const char *label)
{
    char got[MAX_QUOTED * 2 + 8], full[384];
    if (is_null(map))
        return 0;
    if (map->kind != WSHUB_CFG_MAP) {
        describe(got, sizeof(got), map);
        return load_fail(ld, map->where, "%s: expected a mapping, got %s", label, got);
    }
    for (size_t i = 0; i < map->n; i++) {
        const struct field *f = find_field(fields, n, map->keys[i]);
        if (!f)
            return unknown_key(ld, key_where_at(map, i), map->keys[i], label, fields, n);
        snprintf(full, sizeof(full), "%s.%s", label, f->key);
        if (field_from_node(ld, base, f, map->items[i], full) != 0)
            return -1;
    }
    return 0;
}

/* Plugin names end up in file names, log prefixes and metric labels: keep them tame. */
static bool plugin_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_PLUGIN_NAME)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_'))
            return false;
    return true;
}

/*
 * Reads one `plugins:` entry. The entry's `config:` becomes an empty mapping when it is absent
 * or null (inserted into the tree, so the tree owns every plugin's config node).
 */
static int check_plugin(struct load *ld, struct wshub_cfg *entry, size_t idx, config_plugin_t *pl)
{
    char label[48], got[MAX_QUOTED * 2 + 8];
    const struct wshub_cfg *name_node = NULL;
    snprintf(label, sizeof(label), "plugins[%zu]", idx);
    snprintf(pl->where, sizeof(pl->where), "%s", entry->where);
    if (entry->kind != WSHUB_CFG_MAP) {
        describe(got, sizeof(got), entry);
        return load_fail(ld, entry->where, "%s: expected a mapping with at least 'name', got %s",
                         label, got);
    }
    for (size_t i = 0; i < entry->n; i++) {
        const char *key = entry->keys[i];
        struct wshub_cfg *val = entry->items[i];
        if (strcmp(key, "name") == 0) {
            name_node = val;
            if (val->kind != WSHUB_CFG_SCALAR || val->is_null || !plugin_name_ok(val->scalar)) {
                describe(got, sizeof(got), val);
                return load_fail(ld, val->where,
                                 "%s.name: expected a plugin name ([a-z0-9_]+, at most %d "
                                 "characters), got %s",
                                 label, MAX_PLUGIN_NAME, got);
            }
            pl->name = xstrdup(val->scalar);
        } else if (strcmp(key, "path") == 0) {
            if (is_null(val))
                continue;
            if (val->kind != WSHUB_CFG_SCALAR || val->scalar[0] == '\0') {
                describe(got, sizeof(got), val);
                return load_fail(ld, val->where, "%s.path: expected a file path, got %s", label,
                                 got);
            }
            pl->path = resolve_path(ld->dir, val->scalar);
        } else if (strcmp(key, "optional") == 0) {
            if (is_null(val))
                continue;
            if (val->kind != WSHUB_CFG_SCALAR ||
                config__parse_bool(val->scalar, &pl->optional) != 0) {
                describe(got, sizeof(got), val);
                return load_fail(ld, val->where,
                                 "%s.optional: expected a boolean (true or false), got %s", label,
                                 got);
            }
        } else if (strcmp(key, "config") == 0) {
            if (is_null(val)) {
                struct wshub_cfg *m = node_new(WSHUB_CFG_MAP, val->where);
                map_replace(entry, i, m);
                val = m;
            } else if (val->kind != WSHUB_CFG_MAP) {
                describe(got, sizeof(got), val);
                return load_fail(ld, val->where, "%s.config: expected a mapping, got %s", label,
                                 got);
            }
            pl->config = val;
        } else {
            char q[MAX_QUOTED * 2], hint[96];
            quote_value(q, sizeof(q), key);
            did_you_mean(hint, sizeof(hint), key, plugin_keys, N_OF(plugin_keys));
            return load_fail(ld, key_where_at(entry, i), "unknown key '%s' in '%s'%s", q, label,
                             hint);
        }
    }
    if (!name_node)
        return load_fail(ld, entry->where, "%s: missing required key 'name'", label);
    if (!pl->config) {
        struct wshub_cfg *m = node_new(WSHUB_CFG_MAP, entry->where);
        map_append(entry, "config", m, entry->where);
        pl->config = m;
    }
    return 0;
}

static int check_plugins(struct load *ld, struct wshub_cfg *list)
{
    config_t *cfg = ld->cfg;
    char got[MAX_QUOTED * 2 + 8];
    if (is_null(list))
        return 0;
    if (list->kind != WSHUB_CFG_LIST) {
        describe(got, sizeof(got), list);
        return load_fail(ld, list->where, "plugins: expected a list, got %s", got);
    }
    cfg->plugins = xcalloc(list->n, sizeof(*cfg->plugins));
    for (size_t i = 0; i < list->n; i++) {
        config_plugin_t *pl = &cfg->plugins[cfg->n_plugins++];
        if (check_plugin(ld, list->items[i], i, pl) != 0)
            return -1;
        for (size_t j = 0; j < i; j++) {
            if (strcmp(cfg->plugins[j].name, pl->name) == 0) {
                const char *w1 = config__get(list->items[j], "name")->where;
                const char *w2 = config__get(list->items[i], "name")->where;
                return load_fail(ld, w2, "duplicate plugin '%s' (first at %s)", pl->name, w1);
            }
        }
    }
    return 0;
}

static bool tenant_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > MAX_TENANT_NAME)
        return false;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c == 0x7f)
            return false;
    }
    return true;
}

static int check_tenants(struct load *ld, const struct wshub_cfg *map)
{
    config_t *cfg = ld->cfg;
    char got[MAX_QUOTED * 2 + 8], label[MAX_QUOTED * 2 + 16];
    if (is_null(map))
        return 0;
    if (map->kind != WSHUB_CFG_MAP) {
        describe(got, sizeof(got), map);
        return load_fail(ld, map->where, "tenants: expected a mapping of tenant names, got %s",
                         got);
    }
    cfg->tenants = xcalloc(map->n, sizeof(*cfg->tenants));
    for (size_t i = 0; i < map->n; i++) {
        config_tenant_t *t = &cfg->tenants[cfg->n_tenants++];
        char q[MAX_QUOTED * 2];
        quote_value(q, sizeof(q), map->keys[i]);
        if (!tenant_name_ok(map->keys[i]))
            return load_fail(ld, key_where_at(map, i),
                             "tenants: invalid tenant name '%s' (1 to %d printable characters)", q,
                             MAX_TENANT_NAME);
        t->name = xstrdup(map->keys[i]);
        snprintf(label, sizeof(label), "tenants.%s", q);
        if (check_fields(ld, t, tenant_fields, N_OF(tenant_fields), map->items[i], label) != 0)
            return -1;
    }
    return 0;
}

static int check_root(struct load *ld, struct wshub_cfg *root)
{
    config_t *cfg = ld->cfg;
    char got[MAX_QUOTED * 2 + 8];
    if (root->kind != WSHUB_CFG_MAP) {
        describe(got, sizeof(got), root);
        return load_fail(ld, root->where, "the top level must be a mapping, got %s", got);
    }
    for (size_t i = 0; i < root->n; i++) {
        const char *key = root->keys[i];
        struct wshub_cfg *val = root->items[i];
        const struct section *sec = NULL;
        int rc;
        for (size_t s = 0; s < N_OF(sections); s++)
            if (strcmp(sections[s].name, key) == 0)
                sec = &sections[s];
        if (sec) {
            rc = check_fields(ld, cfg, sec->fields, sec->n_fields, val, sec->name);
        } else if (strcmp(key, "plugin_dir") == 0) {
            rc = field_from_node(ld, cfg, &plugin_dir_field, val, "plugin_dir");
        } else if (strcmp(key, "plugins") == 0) {
            rc = check_plugins(ld, val);
        } else if (strcmp(key, "tenants") == 0) {
            rc = check_tenants(ld, val);
        } else {
            char q[MAX_QUOTED * 2], hint[96];
            quote_value(q, sizeof(q), key);
            did_you_mean(hint, sizeof(hint), key, top_keys, N_OF(top_keys));
            return load_fail(ld, key_where_at(root, i), "unknown top-level key '%s'%s", q, hint);
        }
        if (rc != 0)
            return -1;
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Environment overrides                                                                       */
/* ------------------------------------------------------------------------------------------ */

/* "a, b,c" -> {"a", "b", "c"}; empty items are skipped so "" is the empty list. */
static int env_strlist(struct load *ld, void *base, const struct field *f, const char *value,
                       const char *env_name)
{
    size_t cap = 1;
    for (const char *p = value; *p; p++)
        cap += *p == ',';
    char **list = xcalloc(cap, sizeof(*list));
    size_t n = 0;
    const char *p = value;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        while (len && (*p == ' ' || *p == '\t')) {
            p++;
            len--;
        }
        while (len && (p[len - 1] == ' ' || p[len - 1] == '\t'))
            len--;
        if (len) {
            char *item = xstrndup(p, len);
            if (!origin_ok(item)) {
                char q[MAX_QUOTED * 2];
                quote_value(q, sizeof(q), item);
                free(item);
                strlist_free(list, n);
                set_err(ld->err, ld->err_len,
                        "env %s: expected an origin (a string without spaces), got '%s'", env_name,
                        q);
                return -1;
            }
            list[n++] = item;
        }
        if (!end)
            break;
        p = end + 1;
    }
    strlist_store(base, f, list, n);
    return 0;
}

static int env_field(struct load *ld, const struct field *f, const char *value,
                     const char *env_name)
{
    char prob[512];
    union fval v;
    if (f->type == FT_STRLIST)
        return env_strlist(ld, ld->cfg, f, value, env_name);
    /* Env values are relative to the working directory, like any other command-line path. */
    if (field_parse(f, value, NULL, &v, prob, sizeof(prob)) != 0) {
        set_err(ld->err, ld->err_len, "env %s: %s", env_name, prob);
        return -1;
    }
    field_store(ld->cfg, f, &v);
    return 0;
}

/*
 * Applies WSHUB_<SECTION>_<KEY>=value from an environ-style array, in array order. Other
 * WSHUB_* names are left alone (tools share the prefix), but an unknown key under a core
 * section's prefix is a typo and an error.
 */
static int apply_env(struct load *ld, char *const *env)
{
    if (!env)
        return 0;
    for (size_t e = 0; env[e]; e++) {
        const char *entry = env[e];
        const char *eq = strchr(entry, '=');
        char name[256], key[256];
        if (strncmp(entry, "WSHUB_", 6) != 0 || !eq || (size_t)(eq - entry) >= sizeof(name))
            continue;
        memcpy(name, entry, (size_t)(eq - entry));
        name[eq - entry] = '\0';
        const char *value = eq + 1;
        if (strcmp(name, "WSHUB_PLUGIN_DIR") == 0) {
            if (env_field(ld, &plugin_dir_field, value, name) != 0)
                return -1;
            continue;
        }
        for (size_t s = 0; s < N_OF(sections); s++) {
            const struct section *sec = &sections[s];
            size_t sl = strlen(sec->name), i;
            bool match = true;
            for (i = 0; i < sl && match; i++)
                if (name[6 + i] != (char)(sec->name[i] - 'a' + 'A'))
                    match = false;
            if (!match || name[6 + sl] != '_')
                continue;
            const char *rest = name + 6 + sl + 1;
            for (i = 0; rest[i]; i++)
                key[i] = (rest[i] >= 'A' && rest[i] <= 'Z') ? (char)(rest[i] - 'A' + 'a') : rest[i];
            key[i] = '\0';
            const struct field *f = find_field(sec->fields, sec->n_fields, key);
            if (!f) {
                const char *names[32];
                char q[MAX_QUOTED * 2], hint[96];
                for (i = 0; i < sec->n_fields && i < N_OF(names); i++)
                    names[i] = sec->fields[i].key;
                quote_value(q, sizeof(q), key);
                did_you_mean(hint, sizeof(hint), key, names, i);
                set_err(ld->err, ld->err_len, "env %s: unknown key '%s' in '%s'%s", name, q,
                        sec->name, hint);
                return -1;
            }
            if (env_field(ld, f, value, name) != 0)
                return -1;
            break;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------------------------------ */
/* Loading                                                                                     */
/* ------------------------------------------------------------------------------------------ */

static void set_defaults(config_t *cfg)
{
    cfg->server.listen_host = xstrdup("0.0.0.0");
    cfg->server.listen_port = 8080;
    cfg->server.path = xstrdup("/ws");
    cfg->server.max_connections = 100000;
    cfg->server.max_message_size = 1 * MIB;
    cfg->server.heartbeat_interval_ms = 25000;
    cfg->server.connection_timeout_ms = 60000;
    cfg->server.handshake_timeout_ms = 10000;
    cfg->server.send_queue_max_bytes = 8 * MIB;
    cfg->server.permessage_deflate = true;
    cfg->server.deflate_min_size = 256;
    cfg->server.shutdown_timeout_ms = 10000;
    cfg->server.max_header_size = 8 * KIB;
    cfg->server.reuse_port = false;
    cfg->server.max_connections_per_ip = 0;
    cfg->server.backlog = 1024;
    cfg->admin.enabled = true;
    cfg->admin.listen_host = xstrdup("127.0.0.1");
    cfg->admin.listen_port = 9090;
    cfg->log.level = WSHUB_LOG_INFO;
    cfg->metrics.tenant_labels = true;
}

/* The shared tail of both loaders: tree, schema, env. `dir` may be NULL. */
static int load_text(config_t *cfg, const char *name, const char *dir, const char *yaml, size_t len,
                     char *const *env, char *err, size_t err_len)
{
    struct load ld = {.cfg = cfg, .dir = dir, .err = err, .err_len = err_len};
    struct wshub_cfg *root = NULL;

    memset(cfg, 0, sizeof(*cfg));
    set_err(err, err_len, "%s", "");
    cfg->file = xstrdup(name);
    set_defaults(cfg);
    if (config__parse_tree(name, yaml, len, &root, err, err_len) != 0)
        goto fail;
    if (!root || is_null(root)) {
        char where[WHERE_LEN];
        config__node_free(root);
        make_where(where, sizeof(where), name, 1, 1);
        root = node_new(WSHUB_CFG_MAP, where);
    }
    cfg->root = root;
    if (check_root(&ld, root) != 0 || apply_env(&ld, env) != 0)
        goto fail;
    return 0;
fail:
    config__free(cfg);
    return -1;
}

int config__load_string(config_t *cfg, const char *name, const char *yaml, size_t len,
                        char *const *env, char *err, size_t err_len)
{
    if (!cfg) {
        set_err(err, err_len, "config: no config struct");
        return -1;
    }
    return load_text(cfg, name ? name : "<string>", NULL, yaml, len, env, err, err_len);
}

int config__load_default(config_t *cfg, char *const *env, char *err, size_t err_len)
{
    return config__load_string(cfg, "<embedded>", wshub_default_config,
                               (size_t)wshub_default_config_len, env, err, err_len);
}

/*
 * The absolute directory of a config file, so that relative plugin paths keep working after
 * the daemon changes directory. Falls back to the path's own directory if getcwd fails.
 */
static char *config_dir(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir = slash ? xstrndup(path, slash == path ? 1 : (size_t)(slash - path)) : xstrdup("");
    if (dir[0] == '/')
        return dir;
    char cwd[PATH_MAX];
    if (!getcwd(cwd, sizeof(cwd))) {
        if (dir[0])
            return dir;
        free(dir);
        return xstrdup(".");
    }
    char *abs = dir[0] ? resolve_path(cwd, dir) : xstrdup(cwd);
    free(dir);
    return abs;
}

/* Reads a whole file (up to MAX_FILE_SIZE) into a NUL-terminated buffer. */
static int read_file(const char *path, char **out, size_t *out_len, char *err, size_t err_len)
{
    FILE *f = fopen(path, "rb");
    size_t cap = 4096, len = 0;
    char *buf;
    if (!f) {
        set_err(err, err_len, "%s: cannot open: %s", path, strerror(errno));
        return -1;
    }
    buf = xcalloc(cap, 1);
    for (;;) {
        if (len + 1 >= cap) {
            if (cap > MAX_FILE_SIZE) {
                set_err(err, err_len, "%s: file is larger than %u bytes", path, MAX_FILE_SIZE);
                goto fail;
            }
            cap *= 2;
            buf = xreallocarray(buf, cap, 1);
        }
        size_t got = fread(buf + len, 1, cap - len - 1, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                set_err(err, err_len, "%s: cannot read: %s", path, strerror(errno));
                goto fail;
            }
            break;
        }
    }
    if (len > MAX_FILE_SIZE) {
        set_err(err, err_len, "%s: file is larger than %u bytes", path, MAX_FILE_SIZE);
        goto fail;
    }
    fclose(f);
    buf[len] = '\0';
    *out = buf;
    *out_len = len;
    return 0;
fail:
    fclose(f);
    free(buf);
    return -1;
}

int config__load_file(config_t *cfg, const char *path, char *const *env, char *err, size_t err_len)
{
    char *text, *dir;
    size_t len;
    int rc;
    if (!cfg || !path) {
        set_err(err, err_len, "config: no file given");
        if (cfg)
            memset(cfg, 0, sizeof(*cfg));
        return -1;
    }
    if (read_file(path, &text, &len, err, err_len) != 0) {
        memset(cfg, 0, sizeof(*cfg));
        return -1;
    }
    dir = config_dir(path);
    rc = load_text(cfg, path, dir, text, len, env, err, err_len);
    free(dir);
    free(text);
    return rc;
}

void config__free(config_t *cfg)
{
    if (!cfg)
        return;
    free(cfg->file);
    free(cfg->server.listen_host);
    free(cfg->server.path);
    strlist_free(cfg->server.cors_origins, cfg->server.n_cors_origins);
    free(cfg->admin.listen_host);
    free(cfg->plugin_dir);
    for (size_t i = 0; i < cfg->n_plugins; i++) {
        free(cfg->plugins[i].name);
        free(cfg->plugins[i].path);
    }
    free(cfg->plugins);
    for (size_t i = 0; i < cfg->n_tenants; i++) {
        free(cfg->tenants[i].name);
        strlist_free(cfg->tenants[i].cors_origins, cfg->tenants[i].n_cors_origins);
    }
    free(cfg->tenants);
    config__node_free(cfg->root);
    memset(cfg, 0, sizeof(*cfg));
}

/* ------------------------------------------------------------------------------------------ */
/* Plugin options                                                                              */
/* ------------------------------------------------------------------------------------------ */

/*
 * Checks one option value against its declared type. Returns 0, or -1 with the problem text
 * (and the node it is about, which may be a list item) for the caller's message.
 */
static int check_opt_value(const wshub_opt_t *o, const struct wshub_cfg *v, char *prob,
                           size_t prob_len, const struct wshub_cfg **at)
{
    char got[MAX_QUOTED * 2 + 8];
    uint64_t u;
    int64_t i;
    bool b;
    const char *want = NULL;
    *at = v;
    describe(got, sizeof(got), v);
    switch (o->type) {
    case WSHUB_OPT_STRING:
        if (v->kind != WSHUB_CFG_SCALAR)
            want = "a string";
        break;
    case WSHUB_OPT_INT:
        if (v->kind != WSHUB_CFG_SCALAR || parse_int_detail(v->scalar, &i) != PARSE_OK)
            want = "an integer";
        break;
    case WSHUB_OPT_BOOL:
        if (v->kind != WSHUB_CFG_SCALAR || config__parse_bool(v->scalar, &b) != 0)
            want = "a boolean (true or false)";
        break;
    case WSHUB_OPT_DURATION:
        if (v->kind != WSHUB_CFG_SCALAR || parse_duration_detail(v->scalar, &u) != PARSE_OK ||
            u > (uint64_t)INT64_MAX)
            want = "a duration (milliseconds, or with ms, s, m, h)";
        break;
    case WSHUB_OPT_SIZE:
        if (v->kind != WSHUB_CFG_SCALAR || parse_size_detail(v->scalar, &u) != PARSE_OK ||
            u > (uint64_t)INT64_MAX)
            want = "a size (bytes, or with B, KB, MB, GB, KiB, MiB, GiB)";
        break;
    case WSHUB_OPT_LIST:
        if (v->kind != WSHUB_CFG_LIST) {
            want = "a list";
            break;
        }
        for (size_t k = 0; k < v->n; k++) {
            if (v->items[k]->kind != WSHUB_CFG_SCALAR) {
                *at = v->items[k];
                describe(got, sizeof(got), v->items[k]);
                snprintf(prob, prob_len, "item %zu: expected a scalar, got %s", k, got);
                return -1;
            }
        }
        break;
    case WSHUB_OPT_MAP:
        if (v->kind != WSHUB_CFG_MAP)
            want = "a mapping";
        break;
    case WSHUB_OPT_ANY:
        break;
    default:
        snprintf(prob, prob_len, "the plugin declares an unknown option type %d", (int)o->type);
        return -1;
    }
    if (want) {
        snprintf(prob, prob_len, "expected %s, got %s", want, got);
        return -1;
    }
    return 0;
}

/* Marks a whole subtree as coming from a declared default. */
static void set_where_default(struct wshub_cfg *n)
{
    snprintf(n->where, sizeof(n->where), "<default>");
    for (size_t i = 0; i < n->n; i++) {
        set_where_default(n->items[i]);
        if (n->key_where)
            snprintf(n->key_where[i], sizeof(n->key_where[i]), "<default>");
    }
}

/*
 * Builds the node for an option's default. Scalar types take the text as it is; LIST, MAP and
 * ANY defaults are YAML ("[a, b]", "{}"), so a plugin can declare structured defaults. The
 * default is checked like a configured value: a bad one is the plugin's bug, reported as such.
 */
static int default_node(const wshub_opt_t *o, struct wshub_cfg **out, char *prob, size_t prob_len)
{
    struct wshub_cfg *n = NULL;
    const struct wshub_cfg *at;
    char perr[256], sub[256];
    *out = NULL;
    if (o->type == WSHUB_OPT_LIST || o->type == WSHUB_OPT_MAP || o->type == WSHUB_OPT_ANY) {
        if (config__parse_tree("<default>", o->def, strlen(o->def), &n, perr, sizeof(perr)) != 0) {
            snprintf(prob, prob_len, "invalid default (%s)", perr);
            return -1;
        }
        if (!n || (is_null(n) && o->type != WSHUB_OPT_ANY)) {
            config__node_free(n);
            n = node_new(o->type == WSHUB_OPT_MAP    ? WSHUB_CFG_MAP
                         : o->type == WSHUB_OPT_LIST ? WSHUB_CFG_LIST
                                                     : WSHUB_CFG_SCALAR,
                         "<default>");
            if (n->kind == WSHUB_CFG_SCALAR) {
                n->scalar = xstrdup("");
                n->is_null = true;
            }
        }
        set_where_default(n);
    } else {
        n = scalar_new(o->def, "<default>");
    }
    if (check_opt_value(o, n, sub, sizeof(sub), &at) != 0) {
        char q[MAX_QUOTED * 2];
        quote_value(q, sizeof(q), o->def);
        snprintf(prob, prob_len, "the plugin's default '%s' is invalid: %s", q, sub);
        config__node_free(n);
        return -1;
    }
    *out = n;
    return 0;
}

/* Lists the declared option names into buf ("a, b, c"), cut with "..." when too long. */
static void list_options(char *buf, size_t len, const wshub_opt_t *opts)
{
    size_t o = 0;
    buf[0] = '\0';
    for (size_t i = 0; opts && opts[i].key; i++) {
        int w = snprintf(buf + o, len - o, "%s%s", i ? ", " : "", opts[i].key);
        if (w < 0 || (size_t)w >= len - o) {
            if (len > 4)
                memcpy(buf + len - 4, "...", 4);
            return;
        }
        o += (size_t)w;
    }
}

int config__check_options(struct wshub_cfg *node, const char *plugin, const wshub_opt_t *opts,
                          char *err, size_t err_len)
{
    char prob[512], q[MAX_QUOTED * 2];
    const char *pname = plugin ? plugin : "?";
    set_err(err, err_len, "%s", "");
    if (!node || node->kind != WSHUB_CFG_MAP) {
        set_err(err, err_len, "%s: plugin %s: config must be a mapping",
                node ? node->where : "<none>", pname);
        return -1;
    }
    /* Every configured key must be a declared option of the right type. */
    for (size_t i = 0; i < node->n; i++) {
        const char *key = node->keys[i];
        const wshub_opt_t *o = NULL;
        size_t n_opts = 0;
        for (size_t k = 0; opts && opts[k].key; k++, n_opts++)
            if (!o && strcmp(opts[k].key, key) == 0)
                o = &opts[k];
        quote_value(q, sizeof(q), key);
        if (!o) {
            char valid[256], hint[96];
            const char *names[64];
            size_t m = 0;
            for (; m < n_opts && m < N_OF(names); m++)
                names[m] = opts[m].key;
            if (n_opts == 0) {
                set_err(err, err_len,
                        "%s: plugin %s: option %s: unknown option (plugin %s "
                        "takes no options)",
                        key_where_at(node, i), pname, q, pname);
                return -1;
            }
            list_options(valid, sizeof(valid), opts);
            const char *s = suggest(key, names, m);
            if (s)
                snprintf(hint, sizeof(hint), "did you mean '%s'? ", s);
            else
                hint[0] = '\0';
            set_err(err, err_len,
                    "%s: plugin %s: option %s: unknown option (%svalid options: "
                    "%s)",
                    key_where_at(node, i), pname, q, hint, valid);
            return -1;
        }
        if (is_null(node->items[i]))
            continue; /* handled with the absent options below */
        const struct wshub_cfg *at;
        if (check_opt_value(o, node->items[i], prob, sizeof(prob), &at) != 0) {
            set_err(err, err_len, "%s: plugin %s: option %s: %s", at->where, pname, q, prob);
            return -1;
        }
    }
    /* Absent (or null) options take their default, or are an error when required. */
    for (size_t k = 0; opts && opts[k].key; k++) {
        const wshub_opt_t *o = &opts[k];
        size_t idx = SIZE_MAX;
        for (size_t i = 0; i < node->n; i++)
            if (strcmp(node->keys[i], o->key) == 0)
                idx = i;
        if (idx != SIZE_MAX && !is_null(node->items[idx]))
            continue;
        quote_value(q, sizeof(q), o->key);
        if (o->def) {
            struct wshub_cfg *d;
            if (default_node(o, &d, prob, sizeof(prob)) != 0) {
                set_err(err, err_len, "%s: plugin %s: option %s: %s", node->where, pname, q, prob);
                return -1;
            }
            if (idx != SIZE_MAX)
                map_replace(node, idx, d);
            else
                map_append(node, o->key, d, "<default>");
        } else if (o->required) {
            set_err(err, err_len, "%s: plugin %s: option %s: required option is missing",
                    idx != SIZE_MAX ? node->items[idx]->where : node->where, pname, q);
            return -1;
        }
    }
    return 0;
}
