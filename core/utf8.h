/*
 * utf8: incremental UTF-8 validation (RFC 3629: no overlongs, no surrogates, <= U+10FFFF), so a
 * text message split across frames and reads fails at the first bad byte (fail fast).
 */
#ifndef WSHUB_UTF8_H
#define WSHUB_UTF8_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef uint32_t utf8_state_t; /* 0 = at a character boundary (accept state) */

#define UTF8_ACCEPT 0u
#define UTF8_REJECT 1u

/* Advances `*state` over `len` bytes. Returns false as soon as the bytes cannot be (the start
 * of) valid UTF-8; `*state` is then UTF8_REJECT. A complete valid text ends in UTF8_ACCEPT. */
bool utf8__feed(utf8_state_t *state, const uint8_t *data, size_t len);

/* Whole-buffer check: true when `data` is complete, valid UTF-8. */
bool utf8__valid(const uint8_t *data, size_t len);

#endif
