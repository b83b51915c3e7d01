/*
 * ws_test_client: see ws_test_client.h. Deliberately naive and independent of core/ws_frame.c:
 * the encoder and decoder here follow RFC 6455 §5.2 directly, byte by byte.
 */
#include "ws_test_client.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

void wsc__init(wsc_t *c, int fd)
{
    int fl = fcntl(fd, F_GETFL);

    memset(c, 0, sizeof(*c));
    c->fd = fd;
    c->mask_seed = 0x12345678u;
    if (fl >= 0)
        fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

void wsc__close_fd(wsc_t *c)
{
    if (c->fd >= 0)
        close(c->fd);
    c->fd = -1;
}

void wsc__free(wsc_t *c)
{
    wsc__close_fd(c);
    free(c->in);
    c->in = NULL;
    c->in_len = c->in_cap = 0;
}

void wsc__shutdown_wr(wsc_t *c)
{
    if (c->fd >= 0)
        shutdown(c->fd, SHUT_WR);
}

int wsc__send_raw(wsc_t *c, const void *data, size_t len)
{
    const uint8_t *p = data;

    while (len > 0) {
        ssize_t n = write(c->fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

size_t wsc__format_request(char *out, size_t cap, const char *path, const char *key,
                           const char *extra_headers)
{
    int n = snprintf(out, cap,
                     "GET %s HTTP/1.1\r\n"
                     "Host: localhost\r\n"
                     "Upgrade: websocket\r\n"
                     "Connection: Upgrade\r\n"
                     "Sec-WebSocket-Key: %s\r\n"
                     "Sec-WebSocket-Version: 13\r\n"
                     "%s"
                     "\r\n",
                     path, key ? key : WSC_SAMPLE_KEY, extra_headers ? extra_headers : "");

    return n > 0 && (size_t)n < cap ? (size_t)n : 0;
}

int wsc__send_request(wsc_t *c, const char *path, const char *extra_headers)
{
    char req[4096];
    size_t n = wsc__format_request(req, sizeof(req), path, NULL, extra_headers);

    return n ? wsc__send_raw(c, req, n) : -1;
}

/* xorshift32: deterministic, never-zero masking keys (a zero key would hide unmasking bugs). */
static uint32_t next_mask(wsc_t *c)
{
    uint32_t x = c->mask_seed;

    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    c->mask_seed = x;
    return x | 0x01010101u;
}

size_t wsc__encode(wsc_t *c, uint8_t first_byte, bool masked, const void *data, size_t len,
                   uint8_t **out)
{
    uint8_t hdr[14];
    size_t h = 0;
    uint8_t *buf;
    uint32_t m = next_mask(c);
    uint8_t key[4] = {(uint8_t)(m >> 24), (uint8_t)(m >> 16), (uint8_t)(m >> 8), (uint8_t)m};

    hdr[h++] = first_byte;
    if (len < 126) {
        hdr[h++] = (uint8_t)((masked ? 0x80 : 0) | len);
    } else if (len <= 0xFFFF) {
        hdr[h++] = (uint8_t)((masked ? 0x80 : 0) | 126);
        hdr[h++] = (uint8_t)(len >> 8);
        hdr[h++] = (uint8_t)len;
    } else {
        hdr[h++] = (uint8_t)((masked ? 0x80 : 0) | 127);
        for (int i = 7; i >= 0; i--)
            hdr[h++] = (uint8_t)((uint64_t)len >> (8 * i));
    }
    if (masked) {
        memcpy(hdr + h, key, 4);
        h += 4;
    }
    buf = malloc(h + len + 1);
    if (!buf)
        return 0;
    memcpy(buf, hdr, h);
    if (len)
        memcpy(buf + h, data, len);
    if (masked)
        for (size_t i = 0; i < len; i++)
            buf[h + i] ^= key[i % 4];
    *out = buf;
    return h + len;
}

int wsc__send_frame_ex(wsc_t *c, uint8_t first_byte, bool masked, const void *data, size_t len)
{
    uint8_t *buf = NULL;
    size_t n = wsc__encode(c, first_byte, masked, data, len, &buf);
    int rc;

    if (!buf)
        return -1;
    rc = wsc__send_raw(c, buf, n);
    free(buf);
    return rc;
}

int wsc__send_frame(wsc_t *c, uint8_t opcode, const void *data, size_t len)
{
    return wsc__send_frame_ex(c, (uint8_t)(0x80 | (opcode & 0x0F)), true, data, len);
}

int wsc__send_text(wsc_t *c, const char *text)
{
    return wsc__send_frame(c, 0x1, text, strlen(text));
}

int wsc__send_close(wsc_t *c, uint16_t code, const char *reason)
{
    uint8_t p[125];
    size_t n = 0;

    if (code) {
        size_t rl = reason ? strlen(reason) : 0;
        if (rl > 123)
            rl = 123;
        p[0] = (uint8_t)(code >> 8);
        p[1] = (uint8_t)code;
        if (rl)
            memcpy(p + 2, reason, rl);
        n = 2 + rl;
    }
    return wsc__send_frame(c, 0x8, p, n);
}

static void reserve(wsc_t *c, size_t extra)
{
    if (c->in_len + extra <= c->in_cap)
        return;
    size_t cap = c->in_cap ? c->in_cap : 4096;
    while (cap < c->in_len + extra)
        cap *= 2;
    uint8_t *n = realloc(c->in, cap);
    if (!n)
        abort(); /* test support: out of memory is not a test outcome */
    c->in = n;
    c->in_cap = cap;
}

size_t wsc__read_once(wsc_t *c, size_t max)
{
    ssize_t n;

    if (c->fd < 0 || max == 0)
        return 0;
    reserve(c, max + 1);
    do {
        n = read(c->fd, c->in + c->in_len, max);
    } while (n < 0 && errno == EINTR);
    if (n == 0) {
        c->eof = true;
        return 0;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EWOULDBLOCK)
            c->error = true;
        return 0;
    }
    c->in_len += (size_t)n;
    return (size_t)n;
}

size_t wsc__read(wsc_t *c)
{
    size_t total = 0, n;

    while ((n = wsc__read_once(c, 65536)) > 0)
        total += n;
    return total;
}

size_t wsc__pending(const wsc_t *c)
{
    return c->in_len;
}

static void consume(wsc_t *c, size_t n)
{
    memmove(c->in, c->in + n, c->in_len - n);
    c->in_len -= n;
}

int wsc__take_http(wsc_t *c, int *status, char *head, size_t head_cap)
{
    size_t end = 0;
    int st = 0;

    for (size_t i = 0; i + 3 < c->in_len; i++) {
        if (memcmp(c->in + i, "\r\n\r\n", 4) == 0) {
            end = i + 4;
            break;
        }
    }
    if (!end)
        return 0;
    if (end < 12 || memcmp(c->in, "HTTP/1.1 ", 9) != 0)
        return -1;
    for (int i = 9; i < 12; i++) {
        if (!isdigit(c->in[i]))
            return -1;
        st = st * 10 + (c->in[i] - '0');
    }
    *status = st;
    if (head && head_cap) {
        size_t n = end < head_cap - 1 ? end : head_cap - 1;
        memcpy(head, c->in, n);
        head[n] = '\0';
    }
    consume(c, end);
    return 1;
}

bool wsc__http_header(const char *head, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    const char *line = strstr(head, "\r\n");

    while (line && line[2] != '\r' && line[2] != '\0') {
        const char *s = line + 2;
        const char *e = strstr(s, "\r\n");
        if (!e)
            return false;
        if ((size_t)(e - s) > nl && s[nl] == ':' && strncasecmp(s, name, nl) == 0) {
            const char *v = s + nl + 1;
            while (v < e && (*v == ' ' || *v == '\t'))
                v++;
            size_t vl = (size_t)(e - v);
            if (vl >= cap)
                vl = cap - 1;
            memcpy(out, v, vl);
            out[vl] = '\0';
            return true;
        }
        line = e;
    }
    return false;
}

int wsc__take_frame(wsc_t *c, wsc_frame_t *f)
{
    size_t h = 2;
    uint64_t len;
    uint8_t key[4] = {0, 0, 0, 0};

    memset(f, 0, sizeof(*f));
    if (c->in_len < 2)
        return 0;
    len = c->in[1] & 0x7F;
    if (len == 126) {
        if (c->in_len < 4)
            return 0;
        len = ((uint64_t)c->in[2] << 8) | c->in[3];
        h = 4;
    } else if (len == 127) {
        if (c->in_len < 10)
            return 0;
        len = 0;
        for (int i = 0; i < 8; i++)
            len = (len << 8) | c->in[2 + i];
        if (len >> 63)
            return -1;
        h = 10;
    }
    f->masked = (c->in[1] & 0x80) != 0;
    if (f->masked) {
        if (c->in_len < h + 4)
            return 0;
        memcpy(key, c->in + h, 4);
        h += 4;
    }
    if (c->in_len - h < len)
        return 0;
    f->fin = (c->in[0] & 0x80) != 0;
    f->rsv = c->in[0] & 0x70;
    f->opcode = c->in[0] & 0x0F;
    f->len = (size_t)len;
    f->data = malloc(f->len + 1);
    if (!f->data)
        abort();
    memcpy(f->data, c->in + h, f->len);
    if (f->masked)
        for (size_t i = 0; i < f->len; i++)
            f->data[i] ^= key[i % 4];
    f->data[f->len] = '\0';
    if (f->opcode == 0x8) {
        size_t rl = f->len >= 2 ? f->len - 2 : 0;
        if (f->len >= 2)
            f->close_code = (uint16_t)((f->data[0] << 8) | f->data[1]);
        f->close_reason = malloc(rl + 1);
        if (!f->close_reason)
            abort();
        memcpy(f->close_reason, f->data + (f->len >= 2 ? 2 : 0), rl);
        f->close_reason[rl] = '\0';
    }
    consume(c, h + f->len);
    return 1;
}

void wsc_frame__free(wsc_frame_t *f)
{
    free(f->data);
    free(f->close_reason);
    f->data = NULL;
    f->close_reason = NULL;
}
