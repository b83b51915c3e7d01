/*
 * strmap: string -> pointer hash map (open addressing, linear probing, backward-shift delete).
 * Keys are copied and owned by the map. Used for routes, paths, services, tenants, users.
 */
#ifndef WSHUB_STRMAP_H
#define WSHUB_STRMAP_H

#include <stddef.h>
#include <stdint.h>

typedef struct strmap_slot {
    char *key; /* NULL = empty */
    uint64_t hash;
    void *val;
} strmap_slot_t;

typedef struct strmap {
    strmap_slot_t *slots;
    size_t cap, count;
} strmap_t;

void strmap__init(strmap_t *m);
/* Frees the map's storage and keys (not the values). */
void strmap__free(strmap_t *m);
void *strmap__get(const strmap_t *m, const char *key);
void *strmap__getn(const strmap_t *m, const char *key, size_t len);
/* Returns 0, or -5 (WSHUB_ERR_EXISTS) when the key is present (value unchanged). */
int strmap__put(strmap_t *m, const char *key, void *val);
/* Removes the key; returns its value or NULL. */
void *strmap__del(strmap_t *m, const char *key);
/* Calls cb for each entry until it returns non-zero (returned). cb must not modify the map. */
int strmap__each(const strmap_t *m, int (*cb)(void *ud, const char *key, void *val), void *ud);
/* The map's copy of `key`, stable while the entry exists; NULL when absent. */
const char *strmap__key(const strmap_t *m, const char *key);

#endif
