/*
 * wsc: minimal RFC 6455 client codec (see wsc.h).
 */
#include "wsc.h"

#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char ws_guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

void wsc__key_b64(const uint8_t raw[16], char out[25])
{
    EVP_EncodeBlock((unsigned char *)out, raw, 16);
    out[24] = '\0';
}

void wsc__accept(const char *key_b64, char out[29])
{
    unsigned char buf[64];
    unsigned char md[SHA_DIGEST_LENGTH];
    size_t klen = strnlen(key_b64, 24);

    memcpy(buf, key_b64, klen);
    memcpy(buf + klen, ws_guid, sizeof(ws_guid) - 1);
    SHA1(buf, klen + sizeof(ws_guid) - 1, md);
    EVP_EncodeBlock((unsigned char *)out, md, SHA_DIGEST_LENGTH);
    out[28] = '\0';
}

int wsc__request(char *dst, size_t cap, const char *host_hdr, const char *path, const char *key_b64,
                 const char *const *extra_headers, size_t n_extra)
{
    size_t off = 0;
    int n = snprintf(dst, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: %s\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n",
                     path, host_hdr, key_b64);
    if (n < 0 || (size_t)n >= cap)
        return -1;
    off = (size_t)n;
    for (size_t i = 0; i < n_extra; i++) {
        n = snprintf(dst + off, cap - off, "%s\r\n", extra_headers[i]);
        if (n < 0 || (size_t)n >= cap - off)
            return -1;
        off += (size_t)n;
    }
    if (cap - off < 3)
        return -1;
    memcpy(dst + off, "\r\n", 3);
    return (int)(off + 2);
}

/* Trims optional whitespace (SP / HTAB) from both ends of [*s, *e). */
static void trim_ows(const char **s, const char **e)
{
    while (*s < *e && (**s == ' ' || **s == '\t'))
        (*s)++;
    while (*e > *s && ((*e)[-1] == ' ' || (*e)[-1] == '\t'))
        (*e)--;
}

/* True if [s, e) equals lit, ignoring ASCII case. */
static bool span_ieq(const char *s, const char *e, const char *lit)
{
    size_t n = strlen(lit);
    return (size_t)(e - s) == n && strncasecmp(s, lit, n) == 0;
}

/* True if the comma-separated list [s, e) holds the token tok (ASCII case-insensitive). */
static bool list_has_token(const char *s, const char *e, const char *tok)
{
    while (s < e) {
        const char *c = memchr(s, ',', (size_t)(e - s));
        const char *te = c ? c : e;
        const char *ts = s;
        trim_ows(&ts, &te);
        if (span_ieq(ts, te, tok))
            return true;
        s = c ? c + 1 : e;
    }
    return false;
}

/*
 * The head is checked as RFC 6455 §4.1 asks of a client: status 101, "Upgrade: websocket",
 * a Connection list holding "upgrade", and the Accept value derived from our key. We offer no
 * extension, so a Sec-WebSocket-Extensions answer is a failure (we could not decode, e.g.,
 * compressed frames). Header lines are parsed within the head only; bare LF line ends are not
 * accepted, as HTTP/1.1 requires CRLF.
 */
int wsc__response(const char *buf, size_t len, const char *key_b64, int *status)
{
    const char *end = NULL;
    size_t lim = len < WSC_MAX_HEAD ? len : WSC_MAX_HEAD;

    *status = 0;
    for (size_t i = 0; i + 3 < lim; i++) {
        if (buf[i] == '\r' && buf[i + 1] == '\n' && buf[i + 2] == '\r' && buf[i + 3] == '\n') {
            end = buf + i + 2; /* end of the last header line, including its CRLF */
            break;
        }
    }
    if (!end)
        return len >= WSC_MAX_HEAD ? WSC_ERR_HEAD_BIG : 0;

    /* Status line: HTTP/1.x SP 3DIGIT [SP reason] CRLF */
    const char *line_end = memchr(buf, '\r', (size_t)(end - buf));
    if (!line_end || line_end[1] != '\n' || line_end - buf < 12 || memcmp(buf, "HTTP/1.", 7) != 0 ||
        buf[8] != ' ')
        return WSC_ERR_HANDSHAKE;
    for (int i = 9; i < 12; i++) {
        if (buf[i] < '0' || buf[i] > '9')
            return WSC_ERR_HANDSHAKE;
    }
    if (line_end - buf > 12 && buf[12] != ' ')
        return WSC_ERR_HANDSHAKE;
    *status = (buf[9] - '0') * 100 + (buf[10] - '0') * 10 + (buf[11] - '0');
    if (*status != 101)
        return WSC_ERR_STATUS;

    char want[29];
    bool got_upgrade = false, got_connection = false, got_accept = false;
    wsc__accept(key_b64, want);

    const char *p = line_end + 2;
    while (p < end) {
        const char *le = memchr(p, '\r', (size_t)(end - p));
        if (!le || le[1] != '\n')
            return WSC_ERR_HANDSHAKE;
        const char *colon = memchr(p, ':', (size_t)(le - p));
        if (!colon || colon == p)
            return WSC_ERR_HANDSHAKE;
        const char *ns = p, *ne = colon, *vs = colon + 1, *ve = le;
        trim_ows(&vs, &ve);
        if (span_ieq(ns, ne, "upgrade")) {
            got_upgrade = span_ieq(vs, ve, "websocket");
        } else if (span_ieq(ns, ne, "connection")) {
            got_connection = list_has_token(vs, ve, "upgrade");
        } else if (span_ieq(ns, ne, "sec-websocket-accept")) {
            if (got_accept)
                return WSC_ERR_HANDSHAKE; /* a repeated Accept is ambiguous */
            got_accept = (size_t)(ve - vs) == 28 && memcmp(vs, want, 28) == 0;
            if (!got_accept)
                return WSC_ERR_HANDSHAKE;
        } else if (span_ieq(ns, ne, "sec-websocket-extensions")) {
            if (ve > vs)
                return WSC_ERR_HANDSHAKE;
        }
        p = le + 2;
    }
    if (!got_upgrade || !got_connection || !got_accept)
        return WSC_ERR_HANDSHAKE;
    return (int)(end - buf) + 2;
}

void wsc__mask(uint8_t *p, size_t len, uint32_t mask)
{
    uint8_t k[4];
    uint64_t k8;
    size_t i = 0;

    memcpy(k, &mask, 4);
    memcpy(&k8, k, 4);
    memcpy((uint8_t *)&k8 + 4, k, 4);
    for (; i + 8 <= len; i += 8) {
        uint64_t w;
        memcpy(&w, p + i, 8);
        w ^= k8;
        memcpy(p + i, &w, 8);
    }
    for (; i < len; i++)
        p[i] ^= k[i & 3];
}

size_t wsc__frame(uint8_t *dst, size_t cap, int opcode, const void *payload, size_t len,
                  uint32_t mask)
{
    size_t h = 2;

    if (len < 126)
        h += 0;
    else if (len <= 0xFFFF)
        h += 2;
    else
        h += 8;
    if (cap < h + 4 || cap - h - 4 < len)
        return 0;
    dst[0] = (uint8_t)(0x80 | (opcode & 0x0F));
    if (len < 126) {
        dst[1] = (uint8_t)(0x80 | len);
    } else if (len <= 0xFFFF) {
        dst[1] = 0x80 | 126;
        dst[2] = (uint8_t)(len >> 8);
        dst[3] = (uint8_t)len;
    } else {
        dst[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            dst[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    memcpy(dst + h, &mask, 4);
    h += 4;
    if (len)
        memcpy(dst + h, payload, len);
    wsc__mask(dst + h, len, mask);
    return h + len;
}

/* Finishes the current data frame: a final frame completes its message. */
static int end_frame(wsc_rd_t *rd, const wsc_cb_t *cb, void *ud)
{
    rd->in_payload = 0;
    if (rd->fin) {
        int op = rd->msg_op;
        rd->msg_op = 0;
        if (cb->on_message(ud, op))
            return WSC_ERR_STOP;
    }
    return 0;
}

/*
 * Data payloads are streamed to on_data as they arrive, so a connection needs no message
 * buffer whatever the message size; only a frame header or a control frame (bounded by
 * WSC_MAX_PENDING) is ever left for the caller to keep. Every rule a client must enforce on
 * server frames is checked: no mask, no RSV bit (no extension was negotiated), known opcodes,
 * control frames final and short, continuation only inside a message, no new message inside
 * one, minimal length encodings and a 63-bit length.
 */
ssize_t wsc__read(wsc_rd_t *rd, const uint8_t *p, size_t len, const wsc_cb_t *cb, void *ud)
{
    size_t off = 0;

    while (off < len) {
        if (rd->in_payload) {
            size_t n = len - off;
            if ((uint64_t)n > rd->remaining)
                n = (size_t)rd->remaining;
            if (n && cb->on_data(ud, p + off, n))
                return WSC_ERR_STOP;
            off += n;
            rd->remaining -= n;
            if (rd->remaining == 0 && end_frame(rd, cb, ud))
                return WSC_ERR_STOP;
            continue;
        }
        size_t avail = len - off;
        if (avail < 2)
            break;
        uint8_t b0 = p[off], b1 = p[off + 1];
        if ((b0 & 0x70) || (b1 & 0x80))
            return WSC_ERR_PROTO;
        int op = b0 & 0x0F;
        bool fin = (b0 & 0x80) != 0;
        uint64_t plen = b1 & 0x7F;
        size_t hlen = 2;
        if (plen == 126)
            hlen += 2;
        else if (plen == 127)
            hlen += 8;
        if (avail < hlen)
            break;
        if (plen == 126) {
            plen = ((uint64_t)p[off + 2] << 8) | p[off + 3];
            if (plen < 126)
                return WSC_ERR_PROTO;
        } else if (plen == 127) {
            plen = 0;
            for (int i = 0; i < 8; i++)
                plen = (plen << 8) | p[off + 2 + i];
            if (plen >> 63 || plen <= 0xFFFF)
                return WSC_ERR_PROTO;
        }
        if (op >= 0x8) {
            if ((op != WSC_OP_CLOSE && op != WSC_OP_PING && op != WSC_OP_PONG) || !fin ||
                plen > WSC_MAX_CONTROL)
                return WSC_ERR_PROTO;
            if (op == WSC_OP_CLOSE && plen == 1)
                return WSC_ERR_PROTO;
            if (avail - hlen < plen)
                break;
            if (cb->on_control(ud, op, p + off + hlen, (size_t)plen))
                return WSC_ERR_STOP;
            off += hlen + (size_t)plen;
            continue;
        }
        if (op == WSC_OP_CONT) {
            if (!rd->msg_op)
                return WSC_ERR_PROTO;
        } else if (op == WSC_OP_TEXT || op == WSC_OP_BINARY) {
            if (rd->msg_op)
                return WSC_ERR_PROTO;
            rd->msg_op = (uint8_t)op;
        } else {
            return WSC_ERR_PROTO;
        }
        rd->fin = fin;
        rd->remaining = plen;
        rd->in_payload = 1;
        off += hlen;
        if (plen == 0 && end_frame(rd, cb, ud))
            return WSC_ERR_STOP;
    }
    return (ssize_t)off;
}
