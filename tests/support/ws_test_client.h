/*
 * ws_test_client: a tiny WebSocket client codec for unit tests, written independently of the
 * server's ws_frame/ws_handshake so that tests do not check the codec against itself. It works
 * on one non-blocking socket (normally one end of a socketpair whose other end the server
 * accepted): requests and masked frames go out, the response head and unmasked frames are
 * parsed from whatever has been read. It never blocks and never touches libevent, so a test
 * drives the server loop itself between calls.
 */
#ifndef WSHUB_WS_TEST_CLIENT_H
#define WSHUB_WS_TEST_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* The RFC 6455 §1.3 example key and its accept value. */
#define WSC_SAMPLE_KEY    "dGhlIHNhbXBsZSBub25jZQ=="
#define WSC_SAMPLE_ACCEPT "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="

typedef struct wsc_frame {
    bool fin;
    uint8_t rsv; /* the three RSV bits, in place (0x70 mask of the first byte) */
    uint8_t opcode;
    bool masked;   /* a server must never mask: tests assert this is false */
    uint8_t *data; /* owned copy of the payload, NUL-terminated; free with wsc_frame__free */
    size_t len;
    uint16_t close_code; /* CLOSE with a payload: the code; else 0 */
    char *close_reason;  /* CLOSE: the reason (owned, NUL-terminated), "" when none */
} wsc_frame_t;

typedef struct wsc {
    int fd;
    uint8_t *in; /* bytes read and not yet consumed */
    size_t in_len, in_cap;
    bool eof;           /* read returned 0 */
    bool error;         /* read failed with something else than EAGAIN (ECONNRESET, ...) */
    uint32_t mask_seed; /* deterministic masking keys */
} wsc_t;

/* Takes ownership of fd (made non-blocking). */
void wsc__init(wsc_t *c, int fd);
/* Closes the socket (if still open) and frees the buffer. */
void wsc__free(wsc_t *c);
/* Closes the socket only (the peer then reads EOF). */
void wsc__close_fd(wsc_t *c);
/* Half-closes our direction (shutdown SHUT_WR). */
void wsc__shutdown_wr(wsc_t *c);

/* Writes all of data. Returns 0, or -1 when the socket does not take everything right now. */
int wsc__send_raw(wsc_t *c, const void *data, size_t len);

/* Formats an upgrade request for `path` with `key` (WSC_SAMPLE_KEY when NULL) and optional extra
 * header lines (each ending in "\r\n"). Returns the length, or 0 when cap is too small. */
size_t wsc__format_request(char *out, size_t cap, const char *path, const char *key,
                           const char *extra_headers);
/* Formats and sends it. */
int wsc__send_request(wsc_t *c, const char *path, const char *extra_headers);

/* Encodes a frame: first byte = fin | rsv | opcode as given, masked with a fresh key when
 * `masked`. Returns the encoded length (header + payload); *out is malloc'd (caller frees). */
size_t wsc__encode(wsc_t *c, uint8_t first_byte, bool masked, const void *data, size_t len,
                   uint8_t **out);
/* Sends one masked frame (fin, no RSV). */
int wsc__send_frame(wsc_t *c, uint8_t opcode, const void *data, size_t len);
/* Sends a frame with an explicit first byte and masking (for protocol violations). */
int wsc__send_frame_ex(wsc_t *c, uint8_t first_byte, bool masked, const void *data, size_t len);
int wsc__send_text(wsc_t *c, const char *text);
/* Sends a close frame: code 0 = empty payload. */
int wsc__send_close(wsc_t *c, uint16_t code, const char *reason);

/* Reads what is available (non-blocking, until EAGAIN or EOF). Returns bytes read this call
 * (0 when nothing); sets eof/error. */
size_t wsc__read(wsc_t *c);
/* One read(2) call of at most `max` bytes (to observe how bytes were grouped). Returns the count,
 * 0 on EOF or when nothing is available. */
size_t wsc__read_once(wsc_t *c, size_t max);

/*
 * Parses the HTTP response head at the start of the input buffer. Returns 1 and consumes it
 * (status in *status, the head text copied into head/head_cap when not NULL), 0 when incomplete,
 * -1 when malformed.
 */
int wsc__take_http(wsc_t *c, int *status, char *head, size_t head_cap);
/* Value of header `name` (case-insensitive) in a response head; copies it into out. Returns
 * true when found. */
bool wsc__http_header(const char *head, const char *name, char *out, size_t cap);

/* Parses one frame from the input buffer. Returns 1 (frame filled and consumed), 0 when
 * incomplete, -1 when malformed (reserved length encoding). */
int wsc__take_frame(wsc_t *c, wsc_frame_t *f);
void wsc_frame__free(wsc_frame_t *f);

/* Bytes currently buffered and not consumed. */
size_t wsc__pending(const wsc_t *c);

#endif
