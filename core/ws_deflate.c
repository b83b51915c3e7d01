/*
 * ws_deflate: permessage-deflate (RFC 7692) with no context takeover.
 *
 * Because both directions are negotiated without context takeover, no message depends on the
 * previous one, and one set of zlib streams per loop serves every connection: each message starts
 * with deflateReset()/inflateReset(). Deflate streams are created lazily per window size (a
 * client may ask for server_max_window_bits=10; zlib fixes the window at deflateInit2 time), and
 * one raw inflate stream with the maximum window of 2^15 decodes any smaller window.
 *
 * zlib refuses windowBits 8 for raw deflate (it would silently use 9, which a peer that asked
 * for 8 must not receive), so an offer with server_max_window_bits=8 is declined and the next
 * offer is tried (RFC 7692 §7.1.2.1 allows declining).
 */
#include "ws_deflate.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <zlib.h>

#include "ws_frame.h"

#define WBITS_MIN  9
#define WBITS_MAX  15
#define ZCHUNK_MAX (1u << 30) /* largest avail_in/avail_out handed to zlib in one call */

struct ws_deflate {
    int level;
    bool def_ready[WBITS_MAX + 1];
    z_stream def[WBITS_MAX + 1]; /* index = window bits, created on first use */
    bool inf_ready;
    z_stream inf;
};

static const uint8_t sync_tail[4] = {0x00, 0x00, 0xff, 0xff};

ws_deflate_t *ws_deflate__new(int level)
{
    ws_deflate_t *d = calloc(1, sizeof(*d));
    if (!d)
        return NULL;
    if (level < Z_DEFAULT_COMPRESSION || level > Z_BEST_COMPRESSION)
        level = 1;
    d->level = level;
    if (inflateInit2(&d->inf, -WBITS_MAX) != Z_OK) {
        free(d);
        return NULL;
    }
    d->inf_ready = true;
    return d;
}

void ws_deflate__free(ws_deflate_t *d)
{
    if (!d)
        return;
    for (int w = 0; w <= WBITS_MAX; w++)
        if (d->def_ready[w])
            deflateEnd(&d->def[w]);
    if (d->inf_ready)
        inflateEnd(&d->inf);
    free(d);
}

/* Returns the deflate stream for `window_bits`, creating it on first use, reset for a new
 * message; NULL when zlib cannot allocate it. memLevel 8 is zlib's default (about 2^(w+2) +
 * 2^(memLevel+9) bytes per stream, 256 KiB at w = 15). */
static z_stream *deflate_stream(ws_deflate_t *d, int window_bits)
{
    z_stream *z = &d->def[window_bits];
    if (!d->def_ready[window_bits]) {
        memset(z, 0, sizeof(*z));
        if (deflateInit2(z, d->level, Z_DEFLATED, -window_bits, 8, Z_DEFAULT_STRATEGY) != Z_OK)
            return NULL;
        d->def_ready[window_bits] = true;
    } else if (deflateReset(z) != Z_OK) {
        return NULL;
    }
    return z;
}

/* Grows *buf to at least `need` bytes (geometrically); false on overflow or allocation failure. */
static bool grow(uint8_t **buf, size_t *cap, size_t need, size_t limit)
{
    size_t n = *cap ? *cap : 256;
    while (n < need) {
        if (n > SIZE_MAX / 2) {
            n = need;
            break;
        }
        n *= 2;
    }
    if (limit && n > limit)
        n = limit;
    if (n < need)
        return false;
    uint8_t *nb = realloc(*buf, n);
    if (!nb)
        return false;
    *buf = nb;
    *cap = n;
    return true;
}

/*
 * Z_SYNC_FLUSH ends the output on a byte boundary with an empty stored block (00 00 ff ff),
 * which RFC 7692 §7.2.1 says to drop; the receiver appends it again. Output goes straight into
 * a buffer sized by deflateBound, which is enough in practice, and grows if zlib needs more.
 */
int ws_deflate__compress(ws_deflate_t *d, int window_bits, const uint8_t *in, size_t in_len,
                         uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!d || window_bits < WBITS_MIN || window_bits > WBITS_MAX || (!in && in_len))
        return -1;
    z_stream *z = deflate_stream(d, window_bits);
    if (!z)
        return -1;

    size_t cap = 0, used = 0, in_pos = 0;
    uint8_t *buf = NULL;
    uLong bound = deflateBound(z, in_len > ULONG_MAX - 64 ? ULONG_MAX - 64 : (uLong)in_len);
    if (!grow(&buf, &cap, (size_t)bound + 16, 0))
        return -1;

    for (;;) {
        if (used == cap && !grow(&buf, &cap, cap + 1, 0))
            goto fail;
        size_t in_chunk = in_len - in_pos < ZCHUNK_MAX ? in_len - in_pos : ZCHUNK_MAX;
        size_t out_chunk = cap - used < ZCHUNK_MAX ? cap - used : ZCHUNK_MAX;
        z->next_in = in_chunk ? (Bytef *)(uintptr_t)(in + in_pos) : (Bytef *)(uintptr_t)sync_tail;
        z->avail_in = (uInt)in_chunk;
        z->next_out = buf + used;
        z->avail_out = (uInt)out_chunk;
        bool last = in_pos + in_chunk == in_len;
        int ret = deflate(z, last ? Z_SYNC_FLUSH : Z_NO_FLUSH);
        if (ret != Z_OK && ret != Z_BUF_ERROR)
            goto fail;
        in_pos += in_chunk - z->avail_in;
        used += out_chunk - z->avail_out;
        /* Done when all input is in and zlib stopped with output space to spare: the flush is
         * then complete (deflate only returns with avail_out > 0 once it has nothing left). */
        if (last && z->avail_in == 0 && z->avail_out > 0)
            break;
    }
    if (used < sizeof(sync_tail) || memcmp(buf + used - 4, sync_tail, 4) != 0)
        goto fail;
    used -= 4;
    /* deflateBound is sized for incompressible input; give back the unused tail when it is
     * large, since the result may be kept (e.g. queued to many connections). */
    if (cap - used > 4096 && cap / 2 > used) {
        uint8_t *nb = realloc(buf, used ? used : 1);
        if (nb)
            buf = nb;
    }
    *out = buf;
    *out_len = used;
    return 0;
fail:
    free(buf);
    return -1;
}

/*
 * Inflates the message followed by the 00 00 ff ff tail that the sender stripped. The output
 * buffer never grows beyond max_len + 1 bytes, so producing that extra byte proves the message
 * is too big and a decompression bomb costs at most max_len + 1 bytes of memory and the CPU to
 * produce them.
 */
int ws_deflate__decompress(ws_deflate_t *d, const uint8_t *in, size_t in_len, size_t max_len,
                           uint8_t **out, size_t *out_len)
{
    *out = NULL;
    *out_len = 0;
    if (!d || !d->inf_ready || (!in && in_len))
        return -WS_CLOSE_INTERNAL;
    z_stream *z = &d->inf;
    if (inflateReset(z) != Z_OK)
        return -WS_CLOSE_INTERNAL;

    size_t limit = (max_len && max_len < SIZE_MAX) ? max_len + 1 : 0;
    size_t cap = 0, used = 0, in_pos = 0;
    uint8_t *buf = NULL;
    bool tail_fed = false;
    int rc;

    /* Deflate rarely compresses below 1/4; start there and double. */
    size_t first = in_len < (SIZE_MAX - 256) / 4 ? in_len * 4 + 256 : SIZE_MAX;
    if (!grow(&buf, &cap, limit && first > limit ? limit : first, limit))
        return -WS_CLOSE_INTERNAL;

    z->next_in = (Bytef *)(uintptr_t)in;
    z->avail_in = 0;
    for (;;) {
        if (z->avail_in == 0) {
            if (in_pos < in_len) {
                size_t n = in_len - in_pos < ZCHUNK_MAX ? in_len - in_pos : ZCHUNK_MAX;
                z->next_in = (Bytef *)(uintptr_t)(in + in_pos);
                z->avail_in = (uInt)n;
                in_pos += n;
            } else if (!tail_fed) {
                z->next_in = (Bytef *)(uintptr_t)sync_tail;
                z->avail_in = sizeof(sync_tail);
                tail_fed = true;
            }
        }
        if (used == cap) {
            if (limit && cap >= limit) {
                rc = -WS_CLOSE_TOO_BIG;
                goto fail;
            }
            if (!grow(&buf, &cap, cap + 1, limit)) {
                rc = -WS_CLOSE_INTERNAL;
                goto fail;
            }
        }
        size_t out_chunk = cap - used < ZCHUNK_MAX ? cap - used : ZCHUNK_MAX;
        z->next_out = buf + used;
        z->avail_out = (uInt)out_chunk;
        int ret = inflate(z, Z_SYNC_FLUSH);
        used += out_chunk - z->avail_out;
        if (limit && used >= limit) {
            rc = -WS_CLOSE_TOO_BIG;
            goto fail;
        }
        if (ret == Z_STREAM_END) {
            /* A final block (BFINAL) ends the message. RFC 7692 §7.2.3.4 has the sender append
             * an empty non-final block header after it, so trailing bytes are ignored, as
             * zlib-based peers do. */
            break;
        }
        if (ret == Z_MEM_ERROR) {
            rc = -WS_CLOSE_INTERNAL;
            goto fail;
        }
        if (ret != Z_OK && ret != Z_BUF_ERROR) {
            rc = -WS_CLOSE_BAD_DATA;
            goto fail;
        }
        bool input_done = tail_fed && z->avail_in == 0;
        if (input_done && z->avail_out > 0)
            break;
        if (ret == Z_BUF_ERROR && z->avail_out > 0 && z->avail_in > 0) {
            /* No progress despite input and space: cannot happen with a sane zlib. */
            rc = -WS_CLOSE_BAD_DATA;
            goto fail;
        }
    }
    /* Callers get one spare byte after the message (the router NUL-terminates in place). */
    if (used == cap) {
        uint8_t *nb = realloc(buf, used + 1);
        if (!nb) {
            rc = -WS_CLOSE_INTERNAL;
            goto fail;
        }
        buf = nb;
    }
    *out = buf;
    *out_len = used;
    return 0;
fail:
    free(buf);
    return rc;
}

/* ---- Sec-WebSocket-Extensions negotiation ------------------------------------------------ */

enum {
    P_SERVER_NCT = 1u << 0,
    P_CLIENT_NCT = 1u << 1,
    P_SERVER_MWB = 1u << 2,
    P_CLIENT_MWB = 1u << 3,
};

/* An offer's parameters as parsed; client_mwb 0 = parameter absent or given without value. */
typedef struct pmd_offer {
    unsigned seen;
    bool ok;
    int server_mwb;
    int client_mwb;
} pmd_offer_t;

static bool is_tchar(unsigned char c)
{
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9'))
        return true;
    return c != 0 && strchr("!#$%&'*+-.^_`|~", c) != NULL;
}

static const char *skip_ows(const char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    return s;
}

/* Reads a token at *s; returns its length (0 when there is none) and advances *s. */
static size_t read_token(const char **s)
{
    const char *p = *s;
    while (is_tchar((unsigned char)*p))
        p++;
    size_t n = (size_t)(p - *s);
    *s = p;
    return n;
}

/*
 * Reads a parameter value: a token or a quoted-string (RFC 7230 §3.2.6, quoted-pair unescaped).
 * The unescaped value is copied into val (truncated to val_cap - 1; a truncated value is longer
 * than any value we accept, which *val_len reports). Returns false on a syntax error.
 */
static bool read_value(const char **s, char *val, size_t val_cap, size_t *val_len)
{
    const char *p = *s;
    size_t n = 0;
    if (*p == '"') {
        p++;
        for (;;) {
            unsigned char c = (unsigned char)*p;
            if (c == '"') {
                p++;
                break;
            }
            if (c == '\\') {
                p++;
                c = (unsigned char)*p;
                if (c == 0 || c == '\r' || c == '\n' || c >= 0x7f)
                    return false;
            } else if (c == 0 || (c < 0x20 && c != '\t') || c >= 0x7f) {
                return false;
            }
            if (n + 1 < val_cap)
                val[n] = (char)c;
            n++;
            p++;
        }
    } else {
        const char *start = p;
        size_t tn = read_token(&p);
        if (tn == 0)
            return false;
        for (size_t i = 0; i < tn; i++) {
            if (n + 1 < val_cap)
                val[n] = start[i];
            n++;
        }
    }
    val[n + 1 < val_cap ? n : val_cap - 1] = '\0';
    *val_len = n;
    *s = p;
    return true;
}

/* A window-bits value: a decimal 8..15 without leading zeroes (RFC 7692 §7.1.2). */
static int parse_wbits(const char *v, size_t len)
{
    if (len == 1 && v[0] >= '8' && v[0] <= '9')
        return v[0] - '0';
    if (len == 2 && v[0] == '1' && v[1] >= '0' && v[1] <= '5')
        return 10 + (v[1] - '0');
    return -1;
}

/* Applies one parameter to the offer; an unknown, duplicate or malformed one declines it. */
static void apply_param(pmd_offer_t *o, const char *name, size_t name_len, bool has_value,
                        const char *val, size_t val_len)
{
    static const struct {
        const char *name;
        unsigned bit;
    } known[] = {
        {"server_no_context_takeover", P_SERVER_NCT},
        {"client_no_context_takeover", P_CLIENT_NCT},
        {"server_max_window_bits", P_SERVER_MWB},
        {"client_max_window_bits", P_CLIENT_MWB},
    };
    unsigned bit = 0;
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strlen(known[i].name) == name_len && strncasecmp(known[i].name, name, name_len) == 0)
            bit = known[i].bit;
    }
    if (!bit || (o->seen & bit)) {
        o->ok = false;
        return;
    }
    o->seen |= bit;
    switch (bit) {
    case P_SERVER_NCT:
    case P_CLIENT_NCT:
        if (has_value)
            o->ok = false;
        break;
    case P_SERVER_MWB:
        o->server_mwb = has_value ? parse_wbits(val, val_len) : -1;
        /* 8 is valid in the offer, but raw zlib cannot honour it: decline. */
        if (o->server_mwb < WBITS_MIN)
            o->ok = false;
        break;
    case P_CLIENT_MWB:
        if (has_value) {
            o->client_mwb = parse_wbits(val, val_len);
            if (o->client_mwb < 0)
                o->ok = false;
        }
        break;
    default:
        o->ok = false;
    }
}

/* Skips to just past the next comma outside a quoted-string (or to the end) after an error. */
static const char *skip_offer(const char *s)
{
    bool quoted = false;
    for (; *s; s++) {
        if (quoted) {
            if (*s == '\\' && s[1])
                s++;
            else if (*s == '"')
                quoted = false;
        } else if (*s == '"') {
            quoted = true;
        } else if (*s == ',') {
            return s + 1;
        }
    }
    return s;
}

/*
 * Parses one offer starting at *s (after any leading whitespace or empty list elements) and
 * leaves *s after its terminating comma. Returns true when it is a permessage-deflate offer
 * that we accept; *o holds its parameters. A syntax error declines the offer and resynchronises
 * at the next top-level comma, so one malformed element does not hide later valid ones.
 */
static bool parse_offer(const char **s, pmd_offer_t *o)
{
    const char *p = *s;
    memset(o, 0, sizeof(*o));
    o->ok = true;

    const char *name = p;
    size_t name_len = read_token(&p);
    if (name_len == 0)
        goto syntax;
    if (!(name_len == 18 && strncasecmp(name, "permessage-deflate", 18) == 0))
        o->ok = false;
    for (;;) {
        p = skip_ows(p);
        if (*p == ',' || *p == '\0') {
            if (*p == ',')
                p++;
            *s = p;
            return o->ok;
        }
        if (*p != ';')
            goto syntax;
        p = skip_ows(p + 1);
        const char *pname = p;
        size_t pname_len = read_token(&p);
        if (pname_len == 0)
            goto syntax;
        p = skip_ows(p);
        char val[16];
        size_t val_len = 0;
        bool has_value = false;
        if (*p == '=') {
            p = skip_ows(p + 1);
            if (!read_value(&p, val, sizeof(val), &val_len))
                goto syntax;
            has_value = true;
        } else {
            val[0] = '\0';
        }
        if (o->ok)
            apply_param(o, pname, pname_len, has_value, val, val_len);
    }
syntax:
    *s = skip_offer(p);
    return false;
}

int ws_deflate__negotiate(const char *header, ws_pmd_params_t *out, char *resp, size_t resp_cap)
{
    memset(out, 0, sizeof(*out));
    if (resp && resp_cap)
        resp[0] = '\0';
    if (!header || !resp)
        return 0;
    const char *s = header;
    for (;;) {
        /* Empty list elements (",,") are allowed by the #rule and ignored. */
        while (*s == ' ' || *s == '\t' || *s == ',')
            s++;
        if (*s == '\0')
            return 0;
        pmd_offer_t o;
        if (!parse_offer(&s, &o))
            continue;

        char extra[64] = "";
        int n = 0;
        if (o.seen & P_SERVER_MWB)
            n += snprintf(extra + n, sizeof(extra) - (size_t)n, "; server_max_window_bits=%d",
                          o.server_mwb);
        if (o.client_mwb > 0)
            snprintf(extra + n, sizeof(extra) - (size_t)n, "; client_max_window_bits=%d",
                     o.client_mwb);
        int w = snprintf(resp, resp_cap,
                         "permessage-deflate; server_no_context_takeover; "
                         "client_no_context_takeover%s",
                         extra);
        if (w < 0 || (size_t)w >= resp_cap) {
            /* The caller's buffer cannot hold a response: answer without the extension. */
            if (resp_cap)
                resp[0] = '\0';
            return 0;
        }
        out->enabled = true;
        out->server_max_window_bits = (uint8_t)((o.seen & P_SERVER_MWB) ? o.server_mwb : 15);
        out->client_max_window_bits = (uint8_t)(o.client_mwb > 0 ? o.client_mwb : 15);
        return 1;
    }
}
