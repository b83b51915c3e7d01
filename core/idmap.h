/*
 * idmap: an open-addressing hash map from uint64_t ids to pointers, used for the connection table
 * (conn id -> conn). Linear probing with backward-shift deletion, so there are no tombstones and
 * lookups stay short however many connections come and go. Key 0 marks an empty slot and is
 * never a valid key (ids start at 1). The struct is public so it can be embedded; treat the
 * fields as read-only outside idmap.c.
 */
#ifndef WSHUB_IDMAP_H
#define WSHUB_IDMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct idmap {
    uint64_t *keys; /* cap slots; 0 = empty */
    void **vals;    /* cap slots, parallel to keys */
    size_t cap;     /* 0 or a power of two */
    size_t count;   /* occupied slots */
} idmap_t;

/* Initialises an empty map; no allocation happens until the first put. */
void idmap__init(idmap_t *m);

/* Frees the slot arrays (not the values) and leaves the map empty and reusable. */
void idmap__free(idmap_t *m);

/*
 * Inserts key -> val. Returns 0, -5 (WSHUB_ERR_EXISTS) when key is already present (the map is
 * unchanged), or -3 (WSHUB_ERR_INVAL) for key 0 or a NULL val (NULL is reserved for "absent").
 * Out of memory aborts, per the core's allocation policy.
 */
int idmap__put(idmap_t *m, uint64_t key, void *val);

/* The value for key, or NULL when absent. */
void *idmap__get(const idmap_t *m, uint64_t key);

/* Removes key; returns the removed value, or NULL when it was absent. */
void *idmap__del(idmap_t *m, uint64_t key);

size_t idmap__count(const idmap_t *m);

/*
 * Calls cb for every entry in unspecified order until cb returns non-zero. cb must not modify
 * the map (no put or del, not even of the current key).
 */
void idmap__each(const idmap_t *m, int (*cb)(void *ud, uint64_t key, void *val), void *ud);

#endif
