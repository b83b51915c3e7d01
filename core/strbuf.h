/* strbuf: a growable byte string for building protocol messages (header-only). */
#ifndef WSHUB_STRBUF_H
#define WSHUB_STRBUF_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

typedef struct strbuf {
    char *s;
    size_t len, cap;
    char inline_buf[256];
} strbuf_t;

static inline void strbuf__init(strbuf_t *b)
{
    b->s = b->inline_buf;
    b->len = 0;
    b->cap = sizeof(b->inline_buf);
    b->s[0] = '\0';
}

static inline void strbuf__free(strbuf_t *b)
{
    if (b->s != b->inline_buf)
        free(b->s);
    strbuf__init(b);
}

static inline void strbuf__reserve(strbuf_t *b, size_t extra)
{
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return;
    size_t cap = b->cap * 2;
    while (cap < need)
        cap *= 2;
    if (b->s == b->inline_buf) {
        char *n = mem__alloc(cap);
        memcpy(n, b->s, b->len + 1);
        b->s = n;
    } else {
        b->s = mem__realloc(b->s, cap);
    }
    b->cap = cap;
}

static inline void strbuf__add(strbuf_t *b, const char *s, size_t n)
{
    strbuf__reserve(b, n);
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = '\0';
}

static inline void strbuf__adds(strbuf_t *b, const char *s)
{
    strbuf__add(b, s, strlen(s));
}

static inline void strbuf__vprintf(strbuf_t *b, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    if ((size_t)n >= b->cap - b->len) {
        strbuf__reserve(b, (size_t)n);
        vsnprintf(b->s + b->len, b->cap - b->len, fmt, ap);
    }
    b->len += (size_t)n;
}

__attribute__((format(printf, 2, 3))) static inline void strbuf__printf(strbuf_t *b,
                                                                        const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    strbuf__vprintf(b, fmt, ap);
    va_end(ap);
}

/* Appends s as a JSON string literal, quotes included. Invalid UTF-8 is passed through (the
 * callers pass UTF-8 they validated or produced). */
static inline void strbuf__json_str(strbuf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    strbuf__reserve(b, n + 2);
    b->s[b->len++] = '"';
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        char esc = 0;
        switch (ch) {
        case '"':
            esc = '"';
            break;
        case '\\':
            esc = '\\';
            break;
        case '\n':
            esc = 'n';
            break;
        case '\r':
            esc = 'r';
            break;
        case '\t':
            esc = 't';
            break;
        case '\b':
            esc = 'b';
            break;
        case '\f':
            esc = 'f';
            break;
        default:
            break;
        }
        if (esc) {
            strbuf__reserve(b, 2);
            b->s[b->len++] = '\\';
            b->s[b->len++] = esc;
        } else if (ch < 0x20) {
            strbuf__reserve(b, 6);
            memcpy(b->s + b->len, "\\u00", 4);
            b->s[b->len + 4] = hex[ch >> 4];
            b->s[b->len + 5] = hex[ch & 15];
            b->len += 6;
        } else {
            strbuf__reserve(b, 1);
            b->s[b->len++] = (char)ch;
        }
    }
    strbuf__reserve(b, 1);
    b->s[b->len++] = '"';
    b->s[b->len] = '\0';
}

#endif
