/*
 * msg: templates and the timestamp scanner (see msg.h).
 */
#include "msg.h"

#include <stdio.h>
#include <string.h>

enum { SCAN_SEARCH, SCAN_BLANK, SCAN_DIGITS, SCAN_DONE };

/* Appends one segment; -1 when the table is full. */
static int add_seg(msg_tmpl_t *t, uint8_t kind, size_t off, size_t len)
{
    if (t->n_seg == MSG_MAX_SEG)
        return -1;
    t->seg[t->n_seg].kind = kind;
    t->seg[t->n_seg].off = (uint32_t)off;
    t->seg[t->n_seg].len = (uint32_t)len;
    t->n_seg++;
    if (kind == MSG_SEG_TEXT)
        t->fixed_len += len;
    if (kind == MSG_SEG_TS || kind == MSG_SEG_TS16)
        t->has_ts = true;
    return 0;
}

int msg__tmpl_parse(msg_tmpl_t *t, const char *s)
{
    static const struct {
        const char *name;
        uint8_t kind;
    } ph[] = {{"%TS%", MSG_SEG_TS},
              {"%TS16%", MSG_SEG_TS16},
              {"%SEQ%", MSG_SEG_SEQ},
              {"%PAD%", MSG_SEG_PAD}};
    size_t len = strlen(s), lit = 0, i = 0;

    memset(t, 0, sizeof(*t));
    t->text = s;
    if (len > UINT32_MAX)
        return -1;
    while (i < len) {
        size_t k;
        for (k = 0; k < sizeof(ph) / sizeof(ph[0]); k++) {
            size_t pl = strlen(ph[k].name);
            if (len - i >= pl && memcmp(s + i, ph[k].name, pl) == 0)
                break;
        }
        if (k == sizeof(ph) / sizeof(ph[0])) {
            i++;
            continue;
        }
        if (i > lit && add_seg(t, MSG_SEG_TEXT, lit, i - lit) < 0)
            return -1;
        if (add_seg(t, ph[k].kind, 0, 0) < 0)
            return -1;
        i += strlen(ph[k].name);
        lit = i;
    }
    if (len > lit && add_seg(t, MSG_SEG_TEXT, lit, len - lit) < 0)
        return -1;
    return 0;
}

size_t msg__tmpl_max_len(const msg_tmpl_t *t, size_t size)
{
    size_t n = t->fixed_len + t->n_seg * 20;
    return n > size ? n : size;
}

/*
 * Numbers are formatted first so that the padding can make the whole message exactly `size`
 * bytes; only the first %PAD% receives padding.
 */
size_t msg__tmpl_expand(const msg_tmpl_t *t, char *dst, size_t cap, uint64_t ts, uint64_t seq,
                        size_t size)
{
    char tsb[24], ts16b[24], seqb[24];
    int tsl = snprintf(tsb, sizeof(tsb), "%llu", (unsigned long long)ts);
    int ts16l = snprintf(ts16b, sizeof(ts16b), "%016llu", (unsigned long long)ts);
    int seql = snprintf(seqb, sizeof(seqb), "%llu", (unsigned long long)seq);
    size_t base = t->fixed_len, off = 0;
    bool padded = false;

    for (size_t i = 0; i < t->n_seg; i++) {
        if (t->seg[i].kind == MSG_SEG_TS)
            base += (size_t)tsl;
        else if (t->seg[i].kind == MSG_SEG_TS16)
            base += (size_t)ts16l;
        else if (t->seg[i].kind == MSG_SEG_SEQ)
            base += (size_t)seql;
    }
    for (size_t i = 0; i < t->n_seg; i++) {
        const msg_seg_t *s = &t->seg[i];
        const char *src = NULL;
        size_t n = 0;
        switch (s->kind) {
        case MSG_SEG_TEXT:
            src = t->text + s->off;
            n = s->len;
            break;
        case MSG_SEG_TS:
            src = tsb;
            n = (size_t)tsl;
            break;
        case MSG_SEG_TS16:
            src = ts16b;
            n = (size_t)ts16l;
            break;
        case MSG_SEG_SEQ:
            src = seqb;
            n = (size_t)seql;
            break;
        default:
            n = (!padded && size > base) ? size - base : 0;
            padded = true;
            if (n > cap - off)
                return 0;
            memset(dst + off, 'x', n);
            off += n;
            continue;
        }
        if (n > cap - off)
            return 0;
        memcpy(dst + off, src, n);
        off += n;
    }
    return off;
}

int msg__key_init(msg_key_t *k, const char *key)
{
    size_t n = strlen(key);

    memset(k, 0, sizeof(*k));
    if (n == 0 || n > MSG_MAX_KEY)
        return -1;
    memcpy(k->key, key, n);
    k->len = (uint8_t)n;
    /* Standard KMP failure function: fail[i] is the length of the longest proper prefix of
     * key[0..i] that is also its suffix, so a mismatch never re-reads input. */
    k->fail[0] = 0;
    for (size_t i = 1, m = 0; i < n; i++) {
        while (m > 0 && key[i] != key[m])
            m = k->fail[m - 1];
        if (key[i] == key[m])
            m++;
        k->fail[i] = (uint8_t)m;
    }
    return 0;
}

void msg__scan_reset(msg_scan_t *s)
{
    memset(s, 0, sizeof(*s));
}

/*
 * One pass of the key automaton (KMP, so a mismatch never re-reads input), then blanks, then
 * digits. The byte that ends a number is left unconsumed, so that in stream mode it can begin
 * the next occurrence of the key.
 */
size_t msg__scan_feed(msg_scan_t *s, const msg_key_t *k, const uint8_t *p, size_t n)
{
    if (s->state == SCAN_DONE)
        return 0;
    for (size_t i = 0; i < n; i++) {
        uint8_t c = p[i];
        if (s->state == SCAN_SEARCH) {
            /* Fast path: without a partial match, skip to the key's first byte. */
            if (s->match == 0) {
                const uint8_t *q = memchr(p + i, (unsigned char)k->key[0], n - i);
                if (!q)
                    return n;
                i = (size_t)(q - p);
                c = *q;
            }
            while (s->match > 0 && c != (uint8_t)k->key[s->match])
                s->match = k->fail[s->match - 1];
            if (c == (uint8_t)k->key[s->match])
                s->match++;
            if (s->match == k->len) {
                /* Keep the overlap, so that if no number follows, an occurrence that overlaps
                 * this one (key "abab" in "ababab1") is still found. */
                s->match = k->fail[k->len - 1];
                s->state = SCAN_BLANK;
            }
        } else if (c >= '0' && c <= '9') {
            if (s->ndig == 19) {
                /* Too long for a timestamp: not ours; search on. */
                s->state = SCAN_SEARCH;
                s->match = 0;
                s->ndig = 0;
                s->val = 0;
                continue;
            }
            s->state = SCAN_DIGITS;
            s->val = s->val * 10 + (uint64_t)(c - '0');
            s->ndig++;
        } else if (s->state == SCAN_BLANK && (c == ' ' || c == '\t')) {
            s->match = 0; /* blanks end any overlap (keys do not end in blanks) */
            continue;
        } else if (s->state == SCAN_DIGITS) {
            s->state = SCAN_DONE;
            return i;
        } else {
            /* The key was followed by something other than a number: search on from here,
             * this byte included (it may start the key). */
            s->state = SCAN_SEARCH;
            i--; /* unsigned wrap-around is defined; the loop's i++ restores it */
        }
    }
    return n;
}

bool msg__scan_result(const msg_scan_t *s, uint64_t *val)
{
    if (s->state == SCAN_DONE || (s->state == SCAN_DIGITS && s->ndig > 0)) {
        *val = s->val;
        return true;
    }
    return false;
}

bool msg__scan_take(msg_scan_t *s, uint64_t *val)
{
    if (s->state != SCAN_DONE)
        return false;
    *val = s->val;
    msg__scan_reset(s);
    return true;
}

int msg__reply_parse(msg_reply_t *r, const char *spec)
{
    const char *arrow = strstr(spec, "=>");

    memset(r, 0, sizeof(*r));
    if (!arrow || arrow == spec)
        return -1;
    r->in = spec;
    r->in_len = (size_t)(arrow - spec);
    r->out = arrow + 2;
    r->out_len = strlen(r->out);
    return 0;
}

uint8_t msg__reply_feed(const msg_reply_t *rules, size_t n_rules, uint8_t miss, uint64_t off,
                        const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n_rules && i < MSG_MAX_REPLY; i++) {
        uint8_t bit = (uint8_t)(1u << i);
        if (miss & bit)
            continue;
        const msg_reply_t *r = &rules[i];
        if (off > r->in_len || n > r->in_len - off || memcmp(r->in + off, p, n) != 0)
            miss |= bit;
    }
    return miss;
}

int msg__reply_match(const msg_reply_t *rules, size_t n_rules, uint8_t miss, uint64_t len)
{
    for (size_t i = 0; i < n_rules && i < MSG_MAX_REPLY; i++) {
        if (!(miss & (1u << i)) && rules[i].in_len == len)
            return (int)i;
    }
    return -1;
}
