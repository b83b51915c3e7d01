#include "buf.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "ws_deflate.h"

static size_t g_live;

wshub_buf_t *buf__new(uint8_t opcode, const void *data, size_t len)
{
    /* A length that would overflow the size computation is an impossible allocation: the
     * allocator's out-of-memory path (log and abort) handles it like any other. */
    size_t size = len > SIZE_MAX - sizeof(wshub_buf_t) - WS_FRAME_MAX_HEADER - 1
                      ? SIZE_MAX
                      : sizeof(wshub_buf_t) + WS_FRAME_MAX_HEADER + len + 1;
    wshub_buf_t *b = mem__alloc(size);
    uint8_t hdr[WS_FRAME_MAX_HEADER];

    b->refs = 1;
    b->opcode = opcode;
    b->rsv = 0;
    b->deflate_tried = false;
    b->len = len;
    b->deflated = NULL;
    b->hdr_len = (uint8_t)ws_frame__header(hdr, true, 0, opcode, len);
    memcpy(b->data + WS_FRAME_MAX_HEADER - b->hdr_len, hdr, b->hdr_len);
    if (data && len)
        memcpy(b->data + WS_FRAME_MAX_HEADER, data, len);
    b->data[WS_FRAME_MAX_HEADER + len] = '\0';
    g_live++;
    return b;
}

wshub_buf_t *buf__ref(wshub_buf_t *b)
{
    b->refs++;
    return b;
}

void buf__unref(wshub_buf_t *b)
{
    if (!b || --b->refs > 0)
        return;
    if (b->deflated)
        buf__unref(b->deflated);
    g_live--;
    free(b);
}

size_t buf__live(void)
{
    return g_live;
}

/* Builds a compressed (RSV1) variant, or NULL when zlib fails or the result is not smaller. */
static wshub_buf_t *compress_variant(wshub_buf_t *b, struct ws_deflate *d, int window_bits)
{
    uint8_t *out = NULL;
    size_t out_len = 0;
    wshub_buf_t *z;
    uint8_t hdr[WS_FRAME_MAX_HEADER];

    if (ws_deflate__compress(d, window_bits, buf__payload(b), b->len, &out, &out_len) != 0)
        return NULL;
    if (out_len >= b->len) {
        free(out);
        return NULL;
    }
    z = buf__new(b->opcode, out, out_len);
    free(out);
    z->rsv = WS_RSV1;
    /* Rewrite the header with RSV1 set (same length: the payload length is unchanged). */
    ws_frame__header(hdr, true, WS_RSV1, b->opcode, out_len);
    memcpy(z->data + WS_FRAME_MAX_HEADER - z->hdr_len, hdr, z->hdr_len);
    return z;
}

wshub_buf_t *buf__for_deflate(wshub_buf_t *b, struct ws_deflate *d, int window_bits,
                              size_t min_size)
{
    if (b->rsv || b->len < min_size || b->len == 0 || (b->opcode & 0x8))
        return buf__ref(b);
    if (window_bits != 15) {
        wshub_buf_t *z = compress_variant(b, d, window_bits);
        return z ? z : buf__ref(b);
    }
    if (!b->deflate_tried) {
        b->deflate_tried = true;
        b->deflated = compress_variant(b, d, 15);
    }
    return buf__ref(b->deflated ? b->deflated : b);
}
