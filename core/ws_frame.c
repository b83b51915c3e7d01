/*
 * ws_frame: RFC 6455 frame codec.
 *
 * The parser is a loop over two phases, header and payload, that can stop at any byte and
 * resume on the next feed. The common case, a whole single-frame message inside one read, takes
 * a fast path: the header is parsed straight from the caller's buffer, the payload is unmasked in
 * place and handed to on_message without any copy or allocation. Only a message that spans
 * frames or reads is assembled in p->msg, which is freed as soon as the message is delivered.
 *
 * Every protocol check fails as early as the bytes allow: header bits as soon as the first two
 * bytes are in, size limits as soon as the length is known (before any payload is read), and
 * UTF-8 of an uncompressed text message on the first bad byte, even mid-frame.
 */
#include "ws_frame.h"

#include <assert.h>
#include <stdlib.h>
#include <string.h>

#include "ws_deflate.h"

#define FIN_BIT     0x80
#define RSV_MASK    0x70
#define RSV23       0x30
#define MASK_BIT    0x80
#define MSG_MIN_CAP 4096

/* A valid non-NULL pointer for empty payloads, so callbacks never see NULL. */
/* Writable: receivers may NUL-terminate a message in place (it stays 0). */
static uint8_t empty_payload[1];

static inline bool is_control(uint8_t opcode)
{
    return (opcode & 0x08) != 0;
}

void ws_parser__init(ws_parser_t *p, const ws_parser_cfg_t *cfg)
{
    memset(p, 0, sizeof(*p));
    p->cfg = cfg;
    assert(cfg);
    assert(!cfg->pmd || cfg->inflater);
}

void ws_parser__reset(ws_parser_t *p)
{
    const ws_parser_cfg_t *cfg = p->cfg;
    free(p->msg);
    free(p->ctl);
    memset(p, 0, sizeof(*p));
    p->cfg = cfg;
}

/*
 * Unmasking is XOR with a 4-byte key repeated from the frame's first payload byte. The key is
 * rotated by `offset` (bytes of the frame already unmasked by an earlier call) and widened to
 * 8 bytes, then applied a word at a time through memcpy, which compilers turn into plain (often
 * vector) loads and stores without alignment or aliasing assumptions.
 */
void ws_frame__mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset)
{
    uint8_t k[8];
    unsigned o = (unsigned)(offset & 3);
    for (unsigned i = 0; i < 8; i++)
        k[i] = mask[(o + i) & 3];
    uint64_t kw;
    memcpy(&kw, k, 8);
    if (kw == 0)
        return;

    size_t i = 0;
    for (; len - i >= 32; i += 32) {
        uint64_t w[4];
        memcpy(w, data + i, 32);
        w[0] ^= kw;
        w[1] ^= kw;
        w[2] ^= kw;
        w[3] ^= kw;
        memcpy(data + i, w, 32);
    }
    for (; len - i >= 8; i += 8) {
        uint64_t w;
        memcpy(&w, data + i, 8);
        w ^= kw;
        memcpy(data + i, &w, 8);
    }
    /* i is a multiple of 8 here, so byte i uses key byte i % 8. */
    for (; i < len; i++)
        data[i] ^= k[i & 7];
}

/* Writes the length part of a header (after the first byte) and returns the bytes written. */
static size_t put_length(uint8_t *out, uint8_t mask_bit, uint64_t len)
{
    assert(len >> 63 == 0);
    if (len < 126) {
        out[0] = (uint8_t)(mask_bit | len);
        return 1;
    }
    if (len <= 0xffff) {
        out[0] = mask_bit | 126;
        out[1] = (uint8_t)(len >> 8);
        out[2] = (uint8_t)len;
        return 3;
    }
    out[0] = mask_bit | 127;
    for (int i = 0; i < 8; i++)
        out[1 + i] = (uint8_t)(len >> (56 - 8 * i));
    return 9;
}

size_t ws_frame__header(uint8_t out[WS_FRAME_MAX_HEADER], bool fin, uint8_t rsv, uint8_t opcode,
                        uint64_t len)
{
    out[0] = (uint8_t)((fin ? FIN_BIT : 0) | (rsv & RSV_MASK) | (opcode & 0x0f));
    return 1 + put_length(out + 1, 0, len);
}

size_t ws_frame__client_header(uint8_t out[WS_FRAME_MAX_HEADER], bool fin, uint8_t rsv,
                               uint8_t opcode, uint64_t len, const uint8_t mask[4])
{
    out[0] = (uint8_t)((fin ? FIN_BIT : 0) | (rsv & RSV_MASK) | (opcode & 0x0f));
    size_t n = 1 + put_length(out + 1, MASK_BIT, len);
    memcpy(out + n, mask, 4);
    return n + 4;
}

/*
 * RFC 6455 §7.4: 1000-1003 and 1007-1011 are defined, 1012-1014 were registered later (IANA)
 * and are accepted as Autobahn expects; 1004, 1005, 1006 and 1015 are reserved or must never
 * be sent; 3000-3999 are registered for libraries and 4000-4999 are private use.
 */
bool ws_frame__close_code_valid(uint16_t code)
{
    if (code >= 1000 && code <= 1003)
        return true;
    if (code >= 1007 && code <= 1014)
        return true;
    return code >= 3000 && code <= 4999;
}

/*
 * The reason is cut at 123 bytes and then backed up to a character boundary, so the payload is
 * valid UTF-8 whenever the reason was (a lead byte is never separated from its continuations).
 */
size_t ws_frame__close_payload(uint8_t out[125], uint16_t code, const char *reason)
{
    out[0] = (uint8_t)(code >> 8);
    out[1] = (uint8_t)code;
    if (!reason)
        return 2;
    size_t n = strnlen(reason, 124);
    if (n > 123) {
        n = 123;
        /* If the byte after the cut is a continuation byte, the cut splits a character. */
        while (n > 0 && ((uint8_t)reason[n] & 0xc0) == 0x80)
            n--;
    }
    memcpy(out + 2, reason, n);
    return 2 + n;
}

/* ---- parser --------------------------------------------------------------------------- */

/* Header size implied by the second header byte. */
static inline size_t header_size(uint8_t b1)
{
    uint8_t l = b1 & 0x7f;
    return 2 + ((b1 & MASK_BIT) ? 4 : 0) + (l == 126 ? 2 : l == 127 ? 8 : 0);
}

/*
 * Checks what the first two header bytes alone decide, so that garbage is rejected before the
 * rest of the header (or any payload) is waited for.
 */
static int check_start(const ws_parser_t *p, uint8_t b0, uint8_t b1)
{
    const ws_parser_cfg_t *cfg = p->cfg;
    if (b0 & RSV23)
        return -WS_CLOSE_PROTOCOL;
    if (cfg->require_mask && !(b1 & MASK_BIT))
        return -WS_CLOSE_PROTOCOL;
    switch (b0 & 0x0f) {
    case WS_OP_CONT:
        /* RSV1 marks a whole message; only its first frame carries it (RFC 7692 §6.1). */
        if (!p->msg_op || (b0 & WS_RSV1))
            return -WS_CLOSE_PROTOCOL;
        return 0;
    case WS_OP_TEXT:
    case WS_OP_BINARY:
        if (p->msg_op)
            return -WS_CLOSE_PROTOCOL;
        if ((b0 & WS_RSV1) && !(cfg->pmd && cfg->inflater))
            return -WS_CLOSE_PROTOCOL;
        return 0;
    case WS_OP_CLOSE:
    case WS_OP_PING:
    case WS_OP_PONG:
        if (!(b0 & FIN_BIT) || (b0 & WS_RSV1) || (b1 & 0x7f) > 125)
            return -WS_CLOSE_PROTOCOL;
        return 0;
    default:
        return -WS_CLOSE_PROTOCOL;
    }
}

/* The most bytes a message may occupy on the wire (before inflation). */
static size_t wire_limit(const ws_parser_t *p, bool compressed)
{
    size_t max = p->cfg->max_message_size;
    if (!max)
        return SIZE_MAX;
    if (!compressed)
        return max;
    /* Deflate expands incompressible data by a few bytes per 16 KiB block; be generous and
     * let the inflated-size check be the exact one. */
    size_t slack = max / 8 + 1024;
    return max > SIZE_MAX - slack ? SIZE_MAX : max + slack;
}

/*
 * Decodes a complete header `h` (check_start has passed) and enters the payload phase. The
 * message-size limit is enforced here, from the announced length, before any payload is read.
 */
static int begin_frame(ws_parser_t *p, const uint8_t *h)
{
    uint8_t b0 = h[0], b1 = h[1];
    uint8_t op = b0 & 0x0f;
    size_t off = 2;
    uint64_t plen = b1 & 0x7f;
    if (plen == 126) {
        plen = (uint64_t)h[2] << 8 | h[3];
        off = 4;
    } else if (plen == 127) {
        plen = 0;
        for (int i = 0; i < 8; i++)
            plen = plen << 8 | h[2 + i];
        off = 10;
        if (plen >> 63)
            return -WS_CLOSE_PROTOCOL;
    }
    if (b1 & MASK_BIT)
        memcpy(p->mask, h + off, 4);
    else
        memset(p->mask, 0, 4);

    if (!is_control(op)) {
        bool compressed = op == WS_OP_CONT ? p->compressed : (b0 & WS_RSV1) != 0;
        size_t before = op == WS_OP_CONT ? p->msg_len : 0;
        size_t limit = wire_limit(p, compressed);
        uint64_t dlim = p->cfg->discard_limit;
        if (op == WS_OP_CONT && p->discarding) {
            if (plen > dlim - p->discard_len)
                return -WS_CLOSE_TOO_BIG;
        } else if (before > limit || plen > (uint64_t)(limit - before)) {
            if (!dlim || before > dlim || plen > dlim - before)
                return -WS_CLOSE_TOO_BIG;
            /* Too big but within the discard limit: drop what was assembled, skip the rest. */
            free(p->msg);
            p->msg = NULL;
            p->msg_len = p->msg_cap = 0;
            p->discarding = true;
            p->discard_len = before;
        }
        if (op != WS_OP_CONT) {
            p->msg_op = op;
            p->compressed = compressed;
            p->utf8 = UTF8_ACCEPT;
        }
    }
    p->opcode = op;
    p->fin = (b0 & FIN_BIT) != 0;
    p->remaining = plen;
    p->frame_off = 0;
    p->ctl_len = 0;
    p->in_frame = true;
    return 0;
}

/* Ends the message in progress without freeing anything it may still point to. */
static void clear_message(ws_parser_t *p)
{
    p->msg = NULL;
    p->msg_len = 0;
    p->msg_cap = 0;
    p->msg_op = 0;
    p->compressed = false;
    p->utf8 = UTF8_ACCEPT;
}

/*
 * Makes room for `add` more message bytes. Growth is geometric from 4 KiB, but never beyond the
 * wire limit nor, for a FIN frame, beyond the now-known final size, so a message split across
 * reads usually ends in an exactly sized buffer. The announced length is not trusted for an
 * up-front allocation: a peer could announce a large frame and never send it.
 */
static int msg_reserve(ws_parser_t *p, size_t add)
{
    size_t need = p->msg_len + add; /* cannot overflow: begin_frame bounded msg_len + plen */
    if (need <= p->msg_cap)
        return 0;
    size_t cap = p->msg_cap ? p->msg_cap : MSG_MIN_CAP;
    while (cap < need)
        cap = cap > SIZE_MAX / 2 ? need : cap * 2;
    if (p->fin) {
        size_t final_len = p->msg_len + (size_t)p->remaining;
        if (cap > final_len)
            cap = final_len;
    }
    size_t limit = wire_limit(p, p->compressed);
    if (cap > limit)
        cap = limit;
    if (cap < need)
        cap = need;
    /* One spare byte: receivers may NUL-terminate the message in place. */
    uint8_t *nb = realloc(p->msg, cap + 1);
    if (!nb)
        return -WS_CLOSE_INTERNAL;
    p->msg = nb;
    p->msg_cap = cap;
    return 0;
}

/* Validates a complete control frame payload; for CLOSE also extracts the code. */
static int check_control(uint8_t op, const uint8_t *data, size_t len, uint16_t *code)
{
    *code = 0;
    if (op != WS_OP_CLOSE)
        return 0;
    if (len == 0) {
        *code = WS_CLOSE_NO_STATUS;
        return 0;
    }
    if (len == 1)
        return -WS_CLOSE_PROTOCOL;
    *code = (uint16_t)(data[0] << 8 | data[1]);
    if (!ws_frame__close_code_valid(*code))
        return -WS_CLOSE_PROTOCOL;
    if (!utf8__valid(data + 2, len - 2))
        return -WS_CLOSE_BAD_DATA;
    return 0;
}

/*
 * Inflates (when compressed) and validates a complete message, then delivers it. `buf` points
 * into the caller's buffer or into a p->msg already detached from the parser; `to_free` is that
 * detached buffer (or NULL), released here on every path. Nothing of the parser is touched, so
 * the callback may end the parser's life. *failed tells a violation (before any callback) from
 * a callback's own non-zero result.
 */
static int deliver_message(const ws_parser_cfg_t *cfg, uint8_t op, bool compressed,
                           utf8_state_t utf8, const uint8_t *buf, size_t len, uint8_t *to_free,
                           const ws_parser_cb_t *cb, void *ud, bool *failed)
{
    uint8_t *out = NULL;
    const uint8_t *data = buf;
    size_t data_len = len;
    int rc;

    *failed = true;
    if (compressed) {
        rc =
            ws_deflate__decompress(cfg->inflater, buf, len, cfg->max_message_size, &out, &data_len);
        free(to_free);
        to_free = NULL;
        if (rc == -WS_CLOSE_TOO_BIG && cfg->discard_limit) {
            /* Inflated beyond the limit: report it like a skipped message. */
            *failed = false;
            return cb->on_oversize ? cb->on_oversize(ud, op, (uint64_t)cfg->max_message_size + 1)
                                   : 0;
        }
        if (rc < 0)
            return rc;
        data = out;
        if (op == WS_OP_TEXT && !utf8__valid(data, data_len)) {
            free(out);
            return -WS_CLOSE_BAD_DATA;
        }
    } else if (op == WS_OP_TEXT && utf8 != UTF8_ACCEPT) {
        free(to_free);
        return -WS_CLOSE_BAD_DATA;
    }
    *failed = false;
    rc = 0;
    if (cb->on_message)
        rc = cb->on_message(ud, op, data ? data : empty_payload, data_len);
    free(out);
    free(to_free);
    return rc;
}

int ws_parser__feed(ws_parser_t *p, uint8_t *data, size_t len, size_t *consumed,
                    const ws_parser_cb_t *cb, void *ud)
{
    size_t pos = 0;
    int rc;

    if (p->error) {
        *consumed = 0;
        return p->error;
    }
    for (;;) {
        /* ---- header phase ---- */
        if (!p->in_frame) {
            if (pos == len)
                break;
            const uint8_t *h;
            size_t avail = len - pos;
            if (p->hdr_len == 0 && avail >= 2 && avail >= header_size(data[pos + 1])) {
                rc = check_start(p, data[pos], data[pos + 1]);
                if (rc)
                    goto fail;
                h = data + pos;
                pos += header_size(data[pos + 1]);
            } else {
                while (p->hdr_len < 2 && pos < len)
                    p->hdr[p->hdr_len++] = data[pos++];
                if (p->hdr_len < 2)
                    break;
                rc = check_start(p, p->hdr[0], p->hdr[1]);
                if (rc)
                    goto fail;
                size_t need = header_size(p->hdr[1]);
                size_t take = need - p->hdr_len;
                if (take > len - pos)
                    take = len - pos;
                memcpy(p->hdr + p->hdr_len, data + pos, take);
                p->hdr_len = (uint8_t)(p->hdr_len + take);
                pos += take;
                if (p->hdr_len < need)
                    break;
                h = p->hdr;
                p->hdr_len = 0;
            }
            rc = begin_frame(p, h);
            if (rc)
                goto fail;
        } else if (pos == len) {
            break; /* mid-payload: remaining > 0, wait for more bytes */
        }

        /* ---- payload phase (also entered for empty payloads) ---- */
        uint8_t *chunk = data + pos;
        size_t n = len - pos;
        if (p->remaining < n)
            n = (size_t)p->remaining;
        uint8_t op = p->opcode;

        if (is_control(op)) {
            const uint8_t *payload;
            size_t plen;
            uint8_t *heap = NULL; /* a split control payload, detached before the callback */
            if (p->ctl_len == 0 && n == p->remaining) {
                /* Whole control payload in this buffer: unmask in place, no copy. */
                ws_frame__mask(chunk, n, p->mask, 0);
                payload = n ? chunk : empty_payload;
                plen = n;
            } else {
                ws_frame__mask(chunk, n, p->mask, p->frame_off);
                /* Rare (a control frame split across reads): its 125-byte buffer lives on the
                 * heap only meanwhile, so an idle parser does not carry it. */
                if (!p->ctl && !(p->ctl = malloc(125))) {
                    rc = -WS_CLOSE_INTERNAL;
                    goto fail;
                }
                memcpy(p->ctl + p->ctl_len, chunk, n);
                p->ctl_len = (uint8_t)(p->ctl_len + n);
                p->frame_off += n;
                p->remaining -= n;
                pos += n;
                if (p->remaining)
                    continue;
                payload = heap = p->ctl;
                p->ctl = NULL;
                plen = p->ctl_len;
                n = 0;
            }
            pos += n;
            uint16_t code;
            rc = check_control(op, payload, plen, &code);
            if (rc) {
                free(heap);
                goto fail;
            }
            p->in_frame = false;
            p->remaining = 0;
            p->ctl_len = 0;
            if (cb->on_control) {
                *consumed = pos;
                rc = cb->on_control(ud, op, payload, plen, code);
                free(heap);
                if (rc)
                    return rc; /* p may be gone (e.g. freed after a CLOSE): do not touch it */
            } else {
                free(heap);
            }
            continue;
        }

        if (p->discarding) {
            /* Oversize message: count and skip, no unmasking, no validation, no buffering. */
            pos += n;
            p->remaining -= n;
            p->frame_off += n;
            p->discard_len += n;
            if (p->remaining)
                continue;
            p->in_frame = false;
            if (!p->fin)
                continue;
            uint8_t dop = p->msg_op;
            uint64_t total = p->discard_len;
            p->discarding = false;
            p->discard_len = 0;
            clear_message(p);
            *consumed = pos;
            if (cb->on_oversize) {
                rc = cb->on_oversize(ud, dop, total);
                if (rc)
                    return rc;
            }
            continue;
        }

        bool failed;
        if (op != WS_OP_CONT && p->fin && p->frame_off == 0 && n == p->remaining) {
            /* Fast path: a whole single-frame message in this buffer. */
            uint8_t msg_op = p->msg_op;
            bool compressed = p->compressed;
            ws_frame__mask(chunk, n, p->mask, 0);
            pos += n;
            p->in_frame = false;
            p->remaining = 0;
            clear_message(p);
            utf8_state_t st = UTF8_ACCEPT;
            if (msg_op == WS_OP_TEXT && !compressed && !utf8__feed(&st, chunk, n)) {
                rc = -WS_CLOSE_BAD_DATA;
                goto fail;
            }
            *consumed = pos;
            rc = deliver_message(p->cfg, msg_op, compressed, st, chunk, n, NULL, cb, ud, &failed);
            if (rc && failed)
                goto fail;
            if (rc)
                return rc;
            continue;
        }

        /* Assembly path: unmask, validate what we have (fail fast), append. */
        ws_frame__mask(chunk, n, p->mask, p->frame_off);
        if (p->msg_op == WS_OP_TEXT && !p->compressed && !utf8__feed(&p->utf8, chunk, n)) {
            pos += n;
            rc = -WS_CLOSE_BAD_DATA;
            goto fail;
        }
        if (n) {
            rc = msg_reserve(p, n);
            if (rc)
                goto fail;
            memcpy(p->msg + p->msg_len, chunk, n);
            p->msg_len += n;
        }
        pos += n;
        p->frame_off += n;
        p->remaining -= n;
        if (p->remaining)
            continue;
        p->in_frame = false;
        if (!p->fin)
            continue;

        /* Message complete: detach it from the parser, then deliver. */
        uint8_t msg_op = p->msg_op;
        bool compressed = p->compressed;
        utf8_state_t st = p->utf8;
        uint8_t *buf = p->msg;
        size_t blen = p->msg_len;
        clear_message(p);
        *consumed = pos;
        rc = deliver_message(p->cfg, msg_op, compressed, st, buf ? buf : empty_payload, blen, buf,
                             cb, ud, &failed);
        if (rc && failed)
            goto fail;
        if (rc)
            return rc;
    }
    *consumed = pos;
    return 0;
fail:
    p->error = rc;
    *consumed = pos;
    return rc;
}
