/*
 * ws_deflate: permessage-deflate (RFC 7692) compression with no context takeover in either
 * direction. The server always answers with `server_no_context_takeover` and
 * `client_no_context_takeover` (both allowed in a response even when not offered, §7.1.1), so
 * every message is compressed/decompressed independently and the zlib state lives once per loop,
 * not once per connection: a broadcast is compressed once for all recipients.
 */
#ifndef WSHUB_WS_DEFLATE_H
#define WSHUB_WS_DEFLATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ws_deflate ws_deflate_t;

/* Negotiated parameters of one connection. */
typedef struct ws_pmd_params {
    bool enabled;
    uint8_t server_max_window_bits; /* 9..15 (zlib cannot do 8 for raw deflate; see .c) */
    uint8_t client_max_window_bits; /* 8..15, what the client promised to use */
} ws_pmd_params_t;

/* One per loop. `level` is the zlib level (1 = fast, the default used by the server). */
ws_deflate_t *ws_deflate__new(int level);
void ws_deflate__free(ws_deflate_t *d);

/*
 * Compresses one message (raw deflate, window `window_bits`, with the trailing 00 00 ff ff removed
 * as §7.2.1 requires). On success returns 0 and a malloc'd buffer in *out (caller frees) of
 * *out_len bytes. Returns -1 on a zlib failure.
 */
int ws_deflate__compress(ws_deflate_t *d, int window_bits, const uint8_t *in, size_t in_len,
                         uint8_t **out, size_t *out_len);

/*
 * Decompresses one message (appends 00 00 ff ff, §7.2.2). Stops with -WS_CLOSE_TOO_BIG (-1009)
 * as soon as the output would exceed `max_len` (0 = unlimited): a decompression bomb costs at
 * most max_len + 1 bytes. Returns -1007 on corrupt data, -1011 (WS_CLOSE_INTERNAL) when memory
 * runs out, 0 on success with a malloc'd *out (never NULL, even for an empty message). Bytes
 * after a final (BFINAL) block are ignored, as in RFC 7692 §7.2.3.4.
 */
int ws_deflate__decompress(ws_deflate_t *d, const uint8_t *in, size_t in_len, size_t max_len,
                           uint8_t **out, size_t *out_len);

/*
 * Parses a Sec-WebSocket-Extensions request header value (several offers, comma-separated, each
 * with ;-separated parameters, possibly quoted) and picks the first acceptable
 * `permessage-deflate` offer (RFC 7692 §5, §7.1). Offers with unknown or duplicate parameters
 * or bad values are skipped (declined), not errors. On acceptance fills *out, writes the
 * response header value (e.g. "permessage-deflate; server_no_context_takeover;
 * client_no_context_takeover") into resp (NUL-terminated) and returns 1; returns 0 when no offer
 * is acceptable (resp is then ""). Offers with server_max_window_bits=8 are declined (see .c).
 * 128 bytes of resp always suffice; if resp_cap is too small for the response, returns 0.
 * Extension and parameter names are compared case-insensitively.
 */
int ws_deflate__negotiate(const char *header, ws_pmd_params_t *out, char *resp, size_t resp_cap);

#endif
