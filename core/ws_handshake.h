/*
 * ws_handshake: the HTTP/1.1 Upgrade (RFC 6455 §4.2), pure: a complete request head in, a
 * parsed and validated request out, response bytes out. Parsing uses libhttp-parser.
 */
#ifndef WSHUB_WS_HANDSHAKE_H
#define WSHUB_WS_HANDSHAKE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ws_header {
    char *name;  /* lower-cased */
    char *value; /* leading/trailing whitespace trimmed; repeated headers joined with ", " */
} ws_header_t;

typedef struct ws_request {
    char *method;
    char *path;  /* percent-decoding NOT applied; without the query */
    char *query; /* the text after '?', or NULL */
    ws_header_t *headers;
    size_t n_headers;
    int http_major, http_minor;
    /* Owned storage behind the pointers above (one allocation arena). */
    char *arena;
    size_t arena_len, arena_cap;
} ws_request_t;

/*
 * Finds the end of the request head ("\r\n\r\n") in buf. Returns the head's length including the
 * terminator, 0 when not yet complete, or -431 when no terminator is within max_head_bytes.
 */
long ws_handshake__head_len(const char *buf, size_t len, size_t max_head_bytes);

/*
 * Parses a complete request head (as delimited by ws_handshake__head_len). Returns 0 or -400
 * when it is not valid HTTP/1.1. Free with ws_request__free even on failure.
 */
int ws_handshake__parse(ws_request_t *req, const char *head, size_t len);
void ws_request__free(ws_request_t *req);

/* Header lookup by name (case-insensitive); NULL when absent. */
const char *ws_request__header(const ws_request_t *req, const char *name);

/* True when the comma-separated header value contains `token` (case-insensitive). */
bool ws_handshake__has_token(const char *value, const char *token);

/*
 * Validates an Upgrade request (§4.2.1): method GET, HTTP >= 1.1, Host present, Upgrade contains
 * "websocket", Connection contains "upgrade", Sec-WebSocket-Key decodes to 16 bytes,
 * Sec-WebSocket-Version is 13. Returns 0, or the HTTP status to answer: 400 (malformed),
 * 405 (not GET), 426 (other version: answer with Sec-WebSocket-Version: 13).
 * On failure *why is set to a short static reason ("bad_key", "bad_version", ...), which is also
 * the label of the handshake-failure metric.
 */
int ws_handshake__validate(const ws_request_t *req, const char **why);

/* Sec-WebSocket-Accept for a key: base64(SHA-1(key + GUID)); out gets 28 chars + NUL. */
void ws_handshake__accept(const char *key, char out[29]);

/*
 * Writes the 101 response into out (cap bytes). `protocol` and `extensions` are optional (NULL):
 * the values for Sec-WebSocket-Protocol and Sec-WebSocket-Extensions. Returns the length, or 0
 * when cap is too small.
 */
size_t ws_handshake__response_101(char *out, size_t cap, const char *accept, const char *protocol,
                                  const char *extensions);

/*
 * Writes an error response: status line with the standard reason phrase, Content-Type
 * text/plain, Content-Length, Connection: close, the `extra_headers` (each line ending in
 * "\r\n", may be NULL), and body `body` + "\n". Returns the length (0 when cap is too small).
 */
size_t ws_handshake__response_error(char *out, size_t cap, int status, const char *body,
                                    const char *extra_headers);

/* Standard reason phrase for a status (400 -> "Bad Request"...), "Error" when unknown. */
const char *ws_handshake__status_text(int status);

/*
 * Splits a Sec-WebSocket-Protocol value into its comma-separated tokens: calls cb for each
 * trimmed token (not NUL-terminated: ptr + len) until cb returns non-zero; returns that value.
 */
int ws_handshake__each_token(const char *value, int (*cb)(void *ud, const char *tok, size_t len),
                             void *ud);

#endif
