/*
 * msg: the message-level helpers of the bench: command-line message templates and the
 * streaming scan for the send timestamp in received messages.
 *
 * Templates are plain text with placeholders, so the same scenario drives servers with
 * different protocols (wshub JSON, socket.io, NATS over WebSocket):
 *   %TS%   the send time, CLOCK_MONOTONIC in microseconds (comparable on one host only)
 *   %TS16% the same, zero-padded to 16 digits: a fixed length, for protocols whose framing
 *          announces the payload size (NATS `PUB subject 40`)
 *   %SEQ%  a sequence number (0, 1, 2, ... per publisher)
 *   %PAD%  'x' characters so that the message is --size bytes long (none if already longer)
 * Anything else, including an unknown %WORD%, is copied verbatim.
 *
 * The scanner looks for the first occurrence of a key (default "ts":) in a message that
 * arrives in arbitrary chunks, skips blanks and reads the decimal integer that follows. If the
 * key is followed by something else, the search goes on after it. It keeps 16 bytes of state
 * per connection and never buffers the message. The scan can also run over a byte stream and
 * report every occurrence (servers that pack several deliveries into one message: NATS).
 *
 * Reply rules ("IN=>OUT") answer an incoming message that is exactly IN with the fixed OUT, for
 * keep-alives that live in the data messages of a protocol (socket.io's "2" -> "3", NATS's
 * "PING\r\n" -> "PONG\r\n"). They are matched while the message streams in, with one bit of
 * state per rule.
 */
#ifndef WSHUB_BENCH_MSG_H
#define WSHUB_BENCH_MSG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MSG_MAX_SEG 32
#define MSG_MAX_KEY 63

enum { MSG_SEG_TEXT, MSG_SEG_TS, MSG_SEG_TS16, MSG_SEG_SEQ, MSG_SEG_PAD };

typedef struct msg_seg {
    uint8_t kind;
    uint32_t off; /* text segments: offset and length in tmpl->text */
    uint32_t len;
} msg_seg_t;

typedef struct msg_tmpl {
    const char *text; /* borrowed: the command-line string */
    size_t n_seg;
    msg_seg_t seg[MSG_MAX_SEG];
    size_t fixed_len; /* bytes of the literal text */
    bool has_ts;      /* %TS% or %TS16% */
} msg_tmpl_t;

/* Splits s into segments. Returns 0, or -1 if it has more than MSG_MAX_SEG segments. */
int msg__tmpl_parse(msg_tmpl_t *t, const char *s);
/* Expands the template into dst. Returns the length, or 0 if it does not fit in cap. */
size_t msg__tmpl_expand(const msg_tmpl_t *t, char *dst, size_t cap, uint64_t ts, uint64_t seq,
                        size_t size);
/* The expanded length without padding and with 20-digit numbers: an upper bound for buffers. */
size_t msg__tmpl_max_len(const msg_tmpl_t *t, size_t size);

typedef struct msg_key {
    uint8_t len;
    char key[MSG_MAX_KEY + 1];
    uint8_t fail[MSG_MAX_KEY]; /* KMP failure function */
} msg_key_t;

/* Prepares the key (1..MSG_MAX_KEY bytes). Returns 0 or -1. */
int msg__key_init(msg_key_t *k, const char *key);

typedef struct msg_scan {
    uint64_t val;
    uint8_t match; /* key bytes matched so far */
    uint8_t state;
    uint8_t ndig;
} msg_scan_t;

void msg__scan_reset(msg_scan_t *s);
/*
 * Feeds n bytes. Returns how many were consumed: all of them, or fewer when a number was
 * completed by the byte at the returned offset (that byte is not consumed: it may start the next
 * key). Once a number is complete, further bytes are not looked at until msg__scan_take().
 */
size_t msg__scan_feed(msg_scan_t *s, const msg_key_t *k, const uint8_t *p, size_t n);
/* At the end of a message: true and *val if a number followed the key. */
bool msg__scan_result(const msg_scan_t *s, uint64_t *val);
/*
 * Stream mode: true and *val when a number is complete (a non-digit followed it); the scan
 * then searches for the next occurrence. A number still running at the end of the input stays
 * pending, since the next bytes may continue it.
 */
bool msg__scan_take(msg_scan_t *s, uint64_t *val);

#define MSG_MAX_REPLY 8

typedef struct msg_reply {
    const char *in; /* borrowed: points into the command-line string */
    size_t in_len;
    const char *out;
    size_t out_len;
} msg_reply_t;

/* Parses "IN=>OUT" (split at the first "=>"; IN must not be empty, OUT may be). 0 or -1. */
int msg__reply_parse(msg_reply_t *r, const char *spec);
/*
 * Streaming match: `miss` has bit i set once rule i can no longer match the message whose
 * bytes [off, off + n) are p. Start every message with miss = 0. Returns the new mask.
 */
uint8_t msg__reply_feed(const msg_reply_t *rules, size_t n_rules, uint8_t miss, uint64_t off,
                        const uint8_t *p, size_t n);
/* At the end of a message of len bytes: the index of the rule it matches exactly, or -1. */
int msg__reply_match(const msg_reply_t *rules, size_t n_rules, uint8_t miss, uint64_t len);

#endif
