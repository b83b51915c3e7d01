/*
 * wsc: the bench's own minimal RFC 6455 client codec. Pure: bytes in, bytes out, no sockets.
 *
 * Deliberately independent of the core's ws_frame/ws_handshake: a load generator that shares the
 * server's codec would share its bugs, and the same client drives other servers too.
 *
 * What it covers is what a client needs: the Upgrade request and the check of the 101 answer
 * (status, Upgrade, Connection, Sec-WebSocket-Accept = base64(SHA-1(key + GUID)), no extension
 * we did not offer); masked client frames; a streaming reader of unmasked server frames that
 * reassembles fragmented messages without buffering their payload, and hands control frames
 * (which are at most 125 bytes) over whole.
 */
#ifndef WSHUB_BENCH_WSC_H
#define WSHUB_BENCH_WSC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

enum {
    WSC_OP_CONT = 0x0,
    WSC_OP_TEXT = 0x1,
    WSC_OP_BINARY = 0x2,
    WSC_OP_CLOSE = 0x8,
    WSC_OP_PING = 0x9,
    WSC_OP_PONG = 0xA,
};

/* Errors (negative). */
enum {
    WSC_ERR_PROTO = -1,     /* a frame breaks RFC 6455 for a server-to-client frame */
    WSC_ERR_HEAD_BIG = -2,  /* the HTTP response head is longer than WSC_MAX_HEAD */
    WSC_ERR_STATUS = -3,    /* not a 101 (the status is reported separately) */
    WSC_ERR_HANDSHAKE = -4, /* 101 but a missing/wrong Upgrade, Connection or Accept header */
    WSC_ERR_STOP = -5,      /* a callback asked to stop (the connection is gone) */
};

#define WSC_MAX_HEAD       8192 /* longest HTTP response head accepted */
#define WSC_MAX_FRAME_HEAD 14   /* 2 + 8 (length) + 4 (mask) */
#define WSC_MAX_CONTROL    125
/* Longest unconsumed tail wsc__read can leave: a header plus a whole control payload. */
#define WSC_MAX_PENDING (WSC_MAX_FRAME_HEAD + WSC_MAX_CONTROL)

/* 16 random bytes -> the 24-character Sec-WebSocket-Key (NUL-terminated). */
void wsc__key_b64(const uint8_t raw[16], char out[25]);
/* The Sec-WebSocket-Accept value the server must send for key (28 characters + NUL). */
void wsc__accept(const char *key_b64, char out[29]);

/*
 * Writes the Upgrade request into dst. extra_headers are complete "Name: value" lines without
 * CRLF (may be NULL when n_extra is 0). Returns the length, or -1 if it does not fit.
 */
int wsc__request(char *dst, size_t cap, const char *host_hdr, const char *path, const char *key_b64,
                 const char *const *extra_headers, size_t n_extra);

/*
 * Checks an HTTP response head at the start of buf. Returns 0 when the head is not complete
 * yet, the length of the head (including the blank line; frame bytes may follow) when it is a
 * valid 101 for key_b64, or a WSC_ERR_*. *status receives the status code (0 if unparsable).
 */
int wsc__response(const char *buf, size_t len, const char *key_b64, int *status);

/*
 * Writes a whole masked frame (FIN set) carrying payload into dst. Returns its length, or 0 if
 * cap is too small (cap >= len + WSC_MAX_FRAME_HEAD always suffices).
 */
size_t wsc__frame(uint8_t *dst, size_t cap, int opcode, const void *payload, size_t len,
                  uint32_t mask);
/* XORs p with the 4-byte mask, starting at mask position 0. */
void wsc__mask(uint8_t *p, size_t len, uint32_t mask);

/* Callbacks of the reader. Each returns 0 to go on, or non-zero to stop reading at once. */
typedef struct wsc_cb {
    /* A chunk of the payload of the current data message (any fragment). */
    int (*on_data)(void *ud, const uint8_t *p, size_t n);
    /* The data message is complete; opcode is WSC_OP_TEXT or WSC_OP_BINARY. */
    int (*on_message)(void *ud, int opcode);
    /* A whole control frame. */
    int (*on_control)(void *ud, int opcode, const uint8_t *p, size_t n);
} wsc_cb_t;

/* The state of one connection's reader between reads: 16 bytes, zero-initialised. */
typedef struct wsc_rd {
    uint64_t remaining; /* payload bytes still to come in the current data frame */
    uint8_t in_payload; /* inside a data frame's payload */
    uint8_t fin;        /* the current data frame is the last of its message */
    uint8_t msg_op;     /* TEXT/BINARY while a message is in progress, else 0 */
    uint8_t pad;
} wsc_rd_t;

/*
 * Consumes frames from p. Returns the number of bytes consumed: when it is less than len, the
 * tail (at most WSC_MAX_PENDING bytes) is an incomplete header or control frame that must be
 * presented again, prefixed to the next bytes. Returns WSC_ERR_PROTO on a protocol violation
 * and WSC_ERR_STOP when a callback stopped it.
 */
ssize_t wsc__read(wsc_rd_t *rd, const uint8_t *p, size_t len, const wsc_cb_t *cb, void *ud);

#endif
