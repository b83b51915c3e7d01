/*
 * ws_frame: the RFC 6455 frame codec, pure (bytes in, callbacks out, no I/O, no libevent).
 *
 * The parser is incremental: feed it whatever the socket returned, in any split, and it calls
 * back once per complete message (fragments reassembled, payload unmasked, permessage-deflate
 * inflated, UTF-8 of text validated) and once per control frame. It keeps at most a 14-byte
 * header stash and, only while a message is incomplete, a heap buffer holding that message.
 * An idle connection's parser costs sizeof(ws_parser_t) and nothing else.
 */
#ifndef WSHUB_WS_FRAME_H
#define WSHUB_WS_FRAME_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "utf8.h"

struct ws_deflate;

enum ws_opcode {
    WS_OP_CONT = 0x0,
    WS_OP_TEXT = 0x1,
    WS_OP_BINARY = 0x2,
    WS_OP_CLOSE = 0x8,
    WS_OP_PING = 0x9,
    WS_OP_PONG = 0xA,
};

/* Close codes the server uses (RFC 6455 §7.4.1). */
enum ws_close_code {
    WS_CLOSE_NORMAL = 1000,
    WS_CLOSE_GOING_AWAY = 1001,
    WS_CLOSE_PROTOCOL = 1002,
    WS_CLOSE_UNSUPPORTED = 1003,
    WS_CLOSE_NO_STATUS = 1005, /* never sent on the wire */
    WS_CLOSE_ABNORMAL = 1006,  /* never sent on the wire */
    WS_CLOSE_BAD_DATA = 1007,
    WS_CLOSE_POLICY = 1008,
    WS_CLOSE_TOO_BIG = 1009,
    WS_CLOSE_INTERNAL = 1011,
    WS_CLOSE_RESTART = 1012,
    WS_CLOSE_TRY_AGAIN = 1013,
};

#define WS_RSV1             0x40 /* permessage-deflate "compressed" bit, in the first header byte */
#define WS_FRAME_MAX_HEADER 14

typedef struct ws_parser_cfg {
    /* After reassembly and inflation; 0 = unlimited. A compressed message's wire size may exceed
     * it by max/8 + 1 KiB (incompressible data grows slightly); its inflated size may not. */
    size_t max_message_size;
    bool require_mask;           /* true for a server parsing client frames; when false, masked
                                  * and unmasked frames are both accepted (and unmasked) */
    bool pmd;                    /* permessage-deflate negotiated: RSV1 allowed on first frame */
    struct ws_deflate *inflater; /* required when pmd; shared per loop (no context takeover) */
    /* > 0: a data message over max_message_size whose wire size stays within discard_limit is
     * skipped without buffering (and without UTF-8 validation) and reported to on_oversize
     * instead of failing with 1009, so the JSON path can answer `too_large` and keep the
     * connection. A compressed message that inflates beyond max_message_size is reported the
     * same way. 0 = every oversize message fails with 1009. */
    uint64_t discard_limit;
} ws_parser_cfg_t;

/*
 * Callbacks. `data` is borrowed until the callback returns; it may point into the buffer given
 * to ws_parser__feed (unmasked in place) or into the parser's own message buffer. For
 * on_message, data[len] is writable (a spare byte, or the next byte of the fed buffer, which
 * must therefore have one writable byte after its `len`): receivers may NUL-terminate in place
 * if they restore the byte.
 * A callback returns 0 to continue, or any non-zero value to stop feeding: ws_parser__feed then
 * returns that value with *consumed telling how far it got.
 */
typedef struct ws_parser_cb {
    /* A complete data message: opcode WS_OP_TEXT (valid UTF-8) or WS_OP_BINARY. */
    int (*on_message)(void *ud, int opcode, const uint8_t *data, size_t len);
    /* A control frame: WS_OP_PING, WS_OP_PONG (payload <= 125) or WS_OP_CLOSE, whose payload
     * has been validated (empty, or a valid close code + UTF-8 reason). For CLOSE, `data`/`len`
     * is the whole payload (the 2-byte code followed by the reason, ready to echo) and `code` is
     * the received code, or WS_CLOSE_NO_STATUS when the payload is empty. For PING/PONG `code`
     * is 0. */
    int (*on_control)(void *ud, int opcode, const uint8_t *data, size_t len, uint16_t code);
    /* A data message skipped for its size (see ws_parser_cfg_t.discard_limit); `len` is its
     * wire length, or max_message_size + 1 when only its inflated size was too big. May be
     * NULL. */
    int (*on_oversize)(void *ud, int opcode, uint64_t len);
} ws_parser_cb_t;

typedef struct ws_parser {
    /* Private: everything below is parser state; zero-initialise with ws_parser__init. */
    const ws_parser_cfg_t *cfg; /* borrowed, outlives the parser */
    uint8_t hdr[WS_FRAME_MAX_HEADER];
    uint8_t hdr_len;    /* header bytes stashed so far */
    uint8_t opcode;     /* opcode of the current frame */
    uint8_t msg_op;     /* opcode of the message in progress (TEXT/BINARY), 0 when none */
    bool fin;           /* FIN of the current frame */
    bool in_frame;      /* header complete, payload pending */
    bool compressed;    /* message in progress has RSV1 */
    uint8_t mask[4];    /* current frame's masking key */
    uint64_t remaining; /* payload bytes still to read in the current frame */
    uint64_t frame_off; /* payload bytes read so far in the current frame (mask phase) */
    utf8_state_t utf8;  /* incremental validation of an uncompressed text message */
    int error;          /* the negative result once a violation was reported (sticky) */
    uint8_t *msg;       /* heap: the message (or control frame) being assembled, or NULL */
    size_t msg_len, msg_cap;
    uint8_t *ctl;         /* heap (125 bytes): a control frame's payload split across reads */
    uint64_t discard_len; /* wire bytes of an oversize message skipped so far */
    uint8_t ctl_len;
    bool discarding; /* the message in progress is oversize and being skipped */
} ws_parser_t;

void ws_parser__init(ws_parser_t *p, const ws_parser_cfg_t *cfg);
/* Frees the message buffer, if any; the parser can be re-initialised afterwards. */
void ws_parser__reset(ws_parser_t *p);

/*
 * Feeds `len` bytes (writable: unmasked in place). Returns:
 *   0                  everything consumed (*consumed == len);
 *   > 0                a callback's non-zero return value; *consumed = bytes used so far;
 *   -WS_CLOSE_PROTOCOL (-1002), -WS_CLOSE_BAD_DATA (-1007, invalid UTF-8 or bad inflate data),
 *   -WS_CLOSE_TOO_BIG (-1009)   a violation: the caller closes the connection with that code;
 *   -WS_CLOSE_INTERNAL (-1011)  out of memory while assembling or inflating a message.
 * After a negative return the parser must not be fed again (it keeps returning that value).
 * The parser's state is complete before each callback runs, so after a callback stops the feed
 * the caller may resume with the bytes from *consumed on, or free the parser; a callback that
 * returns 0 must not reset or free the parser. A callback may also return a negative value; it
 * is passed through like a positive one.
 */
int ws_parser__feed(ws_parser_t *p, uint8_t *data, size_t len, size_t *consumed,
                    const ws_parser_cb_t *cb, void *ud);

/* Writes a server (unmasked) frame header for a payload of `len` bytes; returns its size (2..10).
 * `rsv` is 0 or WS_RSV1. */
size_t ws_frame__header(uint8_t out[WS_FRAME_MAX_HEADER], bool fin, uint8_t rsv, uint8_t opcode,
                        uint64_t len);

/* Writes a masked client frame header (for tests and the bench client); returns its size. */
size_t ws_frame__client_header(uint8_t out[WS_FRAME_MAX_HEADER], bool fin, uint8_t rsv,
                               uint8_t opcode, uint64_t len, const uint8_t mask[4]);

/* XORs `len` bytes with the mask starting at mask position `offset % 4` (word at a time). */
void ws_frame__mask(uint8_t *data, size_t len, const uint8_t mask[4], uint64_t offset);

/* True when `code` may appear in a close frame received from a peer (RFC 6455 §7.4). */
bool ws_frame__close_code_valid(uint16_t code);

/* Builds a close payload (2-byte code + reason truncated to fit 123 bytes on a UTF-8 boundary);
 * returns its length. */
size_t ws_frame__close_payload(uint8_t out[125], uint16_t code, const char *reason);

#endif
