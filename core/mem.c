#include "mem.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* Writes without allocating (stdio may allocate) and aborts. */
static void oom(size_t n)
{
    char msg[96];
    int len = snprintf(msg, sizeof(msg), "wshub: out of memory allocating %zu bytes\n", n);
    if (len > 0) {
        ssize_t w = write(STDERR_FILENO, msg, (size_t)len);
        (void)w;
    }
    abort();
}

void *mem__alloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p)
        oom(n);
    return p;
}

void *mem__calloc(size_t n, size_t size)
{
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p)
        oom(n * size);
    return p;
}

void *mem__realloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q)
        oom(n);
    return q;
}

char *mem__strdup(const char *s)
{
    return mem__strndup(s, strlen(s));
}

char *mem__strndup(const char *s, size_t n)
{
    char *p = mem__alloc(n + 1);
    memcpy(p, s, n);
    p[n] = '\0';
    return p;
}
