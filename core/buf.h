/*
 * buf: wshub_buf_t, an immutable refcounted WebSocket message. The frame header is written in
 * front of the payload at creation, so the encoded frame is one contiguous block that any number
 * of connections queue by reference (encode once, share, never copy per recipient). For
 * permessage-deflate connections a compressed variant is made once, on first need, and cached.
 */
#ifndef WSHUB_BUF_H
#define WSHUB_BUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wshub/sdk.h>

#include "ws_frame.h"

struct ws_deflate;

struct wshub_buf {
    uint32_t refs;
    uint8_t opcode;     /* WS_OP_TEXT, WS_OP_BINARY or a control opcode */
    uint8_t hdr_len;    /* frame header bytes just before payload */
    uint8_t rsv;        /* 0 or WS_RSV1 (a compressed variant) */
    bool deflate_tried; /* compressed variant attempted (deflated may still be NULL: no gain) */
    size_t len;         /* payload length */
    struct wshub_buf *deflated; /* owned compressed variant, or NULL */
    uint8_t data[];             /* WS_FRAME_MAX_HEADER bytes of room, payload, NUL */
};

/* Payload pointer (NUL-terminated). */
static inline uint8_t *buf__payload(wshub_buf_t *b)
{
    return b->data + WS_FRAME_MAX_HEADER;
}

/* The encoded frame (header + payload). */
static inline const uint8_t *buf__frame(const wshub_buf_t *b, size_t *len)
{
    *len = b->hdr_len + b->len;
    return b->data + WS_FRAME_MAX_HEADER - b->hdr_len;
}

/* A message of `len` bytes copied from data (data may be NULL: payload left uninitialised for
 * the caller to fill before sharing). Refcount 1. */
wshub_buf_t *buf__new(uint8_t opcode, const void *data, size_t len);
wshub_buf_t *buf__ref(wshub_buf_t *b);
void buf__unref(wshub_buf_t *b);

/*
 * The buffer to queue for a permessage-deflate connection: the cached compressed variant (made
 * now when absent) when the payload is at least `min_size` and compression saves bytes, else b
 * itself. `window_bits` is the connection's server_max_window_bits: only 15 is cached; other
 * values compress into a new buffer. Returns a NEW reference in every case (caller unrefs).
 */
wshub_buf_t *buf__for_deflate(wshub_buf_t *b, struct ws_deflate *d, int window_bits,
                              size_t min_size);

/* Number of live buffers (tests/leak checks). */
size_t buf__live(void);

#endif
