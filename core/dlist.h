/* dlist: intrusive circular doubly linked list (the Linux/nginx idiom). */
#ifndef WSHUB_DLIST_H
#define WSHUB_DLIST_H

#include <stddef.h>

typedef struct dlist {
    struct dlist *prev, *next;
} dlist_t;

#define DLIST_INIT(h)                ((h)->prev = (h)->next = (h))
#define DLIST_EMPTY(h)               ((h)->next == (h))
#define DLIST_ENTRY(p, type, member) ((type *)((char *)(p)-offsetof(type, member)))

static inline void dlist__push(dlist_t *head, dlist_t *n)
{
    n->prev = head->prev;
    n->next = head;
    head->prev->next = n;
    head->prev = n;
}

static inline void dlist__remove(dlist_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    n->prev = n->next = n;
}

static inline int dlist__linked(const dlist_t *n)
{
    return n->next != n && n->next != NULL;
}

#endif
