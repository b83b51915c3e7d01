/*
 * utf8: incremental UTF-8 validation with a byte-class DFA.
 *
 * Every byte is mapped to one of 12 classes, and a 9-state automaton encodes exactly the
 * well-formed sequences of RFC 3629, Table 3-7 of the Unicode standard: no overlong forms (C0, C1,
 * E0 80..9F, F0 80..8F), no UTF-16 surrogates (ED A0..BF), nothing above U+10FFFF (F4 90..BF,
 * F5..FF). Because the automaton rejects a byte as soon as no valid continuation exists, a text
 * message fails on its first bad byte even when the rest has not arrived yet (Autobahn 6.4.x).
 *
 * The state between calls is a single small integer, so a text message split across frames and
 * reads costs 4 bytes of parser state. Runs of ASCII, the common case for JSON, are skipped 16 or
 * 8 bytes at a time while the automaton is at a character boundary.
 */
#include "utf8.h"

#include <string.h>

/* Byte classes. */
enum {
    C_ASCII = 0,  /* 00..7F */
    C_80_8F = 1,  /* continuation, low */
    C_90_9F = 2,  /* continuation, middle */
    C_A0_BF = 3,  /* continuation, high */
    C_BAD = 4,    /* C0, C1 (overlong 2-byte leads), F5..FF (beyond U+10FFFF) */
    C_LEAD2 = 5,  /* C2..DF */
    C_E0 = 6,     /* 3-byte lead whose second byte must be A0..BF (no overlongs) */
    C_LEAD3 = 7,  /* E1..EC, EE..EF */
    C_ED = 8,     /* 3-byte lead whose second byte must be 80..9F (no surrogates) */
    C_F0 = 9,     /* 4-byte lead whose second byte must be 90..BF (no overlongs) */
    C_LEAD4 = 10, /* F1..F3 */
    C_F4 = 11,    /* 4-byte lead whose second byte must be 80..8F (<= U+10FFFF) */
};

/* States; ACCEPT and REJECT match the public UTF8_ACCEPT / UTF8_REJECT values. */
enum {
    S_ACC = UTF8_ACCEPT,
    S_REJ = UTF8_REJECT,
    S_T1 = 2, /* one continuation byte (80..BF) missing */
    S_T2 = 3, /* two missing */
    S_T3 = 4, /* three missing */
    S_E0 = 5, /* after E0: A0..BF then one more */
    S_ED = 6, /* after ED: 80..9F then one more */
    S_F0 = 7, /* after F0: 90..BF then two more */
    S_F4 = 8, /* after F4: 80..8F then two more */
    S_COUNT = 9,
};

/* clang-format off */
static const uint8_t byte_class[256] = {
    /* 00..7F */
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    /* 80..8F */
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    /* 90..9F */
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    /* A0..BF */
    3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3, 3,
    /* C0..DF */
    4, 4, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
    /* E0..EF */
    6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 7,
    /* F0..FF */
    9, 10, 10, 10, 11, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
};

/* transition[state * 16 + class]; rows padded to 16 so the index is a shift. */
#define R S_REJ
static const uint8_t transition[S_COUNT * 16] = {
    /*         ASCII  80-8F 90-9F A0-BF BAD  LEAD2 E0    LEAD3 ED    F0    LEAD4 F4 */
    /* ACC */ S_ACC, R,    R,    R,    R,   S_T1, S_E0, S_T2, S_ED, S_F0, S_T3, S_F4, R, R, R, R,
    /* REJ */ R,     R,    R,    R,    R,   R,    R,    R,    R,    R,    R,    R,    R, R, R, R,
    /* T1  */ R,     S_ACC, S_ACC, S_ACC, R, R,   R,    R,    R,    R,    R,    R,    R, R, R, R,
    /* T2  */ R,     S_T1, S_T1, S_T1, R,   R,    R,    R,    R,    R,    R,    R,    R, R, R, R,
    /* T3  */ R,     S_T2, S_T2, S_T2, R,   R,    R,    R,    R,    R,    R,    R,    R, R, R, R,
    /* E0  */ R,     R,    R,    S_T1, R,   R,    R,    R,    R,    R,    R,    R,    R, R, R, R,
    /* ED  */ R,     S_T1, S_T1, R,    R,   R,    R,    R,    R,    R,    R,    R,    R, R, R, R,
    /* F0  */ R,     R,    S_T2, S_T2, R,   R,    R,    R,    R,    R,    R,    R,    R, R, R, R,
    /* F4  */ R,     S_T2, R,    R,    R,   R,    R,    R,    R,    R,    R,    R,    R, R, R, R,
};
#undef R
/* clang-format on */

#define HIGH_BITS 0x8080808080808080ull

/*
 * The loop alternates between two modes. At a character boundary it skips whole 8-byte words
 * that contain only ASCII (memcpy loads: no alignment or aliasing assumptions); otherwise it
 * runs the automaton one byte at a time, inline, until the next boundary. A state that arrives
 * already rejected stays rejected, so callers may keep feeding without re-checking.
 */
bool utf8__feed(utf8_state_t *state, const uint8_t *data, size_t len)
{
    uint32_t s = *state;
    size_t i = 0;

    if (s >= S_COUNT || s == S_REJ) {
        *state = S_REJ;
        return false;
    }
    while (i < len) {
        if (s == S_ACC) {
            while (len - i >= 16) {
                uint64_t a, b;
                memcpy(&a, data + i, 8);
                memcpy(&b, data + i + 8, 8);
                if ((a | b) & HIGH_BITS)
                    break;
                i += 16;
            }
            if (len - i >= 8) {
                uint64_t a;
                memcpy(&a, data + i, 8);
                if (!(a & HIGH_BITS))
                    i += 8;
            }
            /* Consume the ASCII prefix before the first high byte without a table lookup. */
            while (i < len && data[i] < 0x80)
                i++;
            if (i == len)
                break;
        }
        s = transition[(s << 4) | byte_class[data[i]]];
        i++;
        if (s == S_REJ) {
            *state = S_REJ;
            return false;
        }
    }
    *state = s;
    return true;
}

bool utf8__valid(const uint8_t *data, size_t len)
{
    utf8_state_t s = UTF8_ACCEPT;
    return utf8__feed(&s, data, len) && s == UTF8_ACCEPT;
}
