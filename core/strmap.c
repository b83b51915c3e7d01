#include "strmap.h"

#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* FNV-1a, then a final mix so linear probing sees well-spread low bits. */
static uint64_t hash_str(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++) {
        h ^= (unsigned char)s[i];
        h *= 0x100000001b3ull;
    }
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return h;
}

void strmap__init(strmap_t *m)
{
    m->slots = NULL;
    m->cap = m->count = 0;
}

void strmap__free(strmap_t *m)
{
    for (size_t i = 0; i < m->cap; i++)
        free(m->slots[i].key);
    free(m->slots);
    strmap__init(m);
}

static strmap_slot_t *find(const strmap_t *m, const char *key, size_t len, uint64_t h)
{
    if (!m->cap)
        return NULL;
    for (size_t i = h & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
        strmap_slot_t *s = &m->slots[i];
        if (!s->key)
            return NULL;
        if (s->hash == h && strncmp(s->key, key, len) == 0 && s->key[len] == '\0')
            return s;
    }
}

void *strmap__getn(const strmap_t *m, const char *key, size_t len)
{
    strmap_slot_t *s = find(m, key, len, hash_str(key, len));
    return s ? s->val : NULL;
}

void *strmap__get(const strmap_t *m, const char *key)
{
    return strmap__getn(m, key, strlen(key));
}

const char *strmap__key(const strmap_t *m, const char *key)
{
    size_t len = strlen(key);
    strmap_slot_t *s = find(m, key, len, hash_str(key, len));
    return s ? s->key : NULL;
}

static void insert_slot(strmap_t *m, strmap_slot_t src)
{
    size_t i = src.hash & (m->cap - 1);
    while (m->slots[i].key)
        i = (i + 1) & (m->cap - 1);
    m->slots[i] = src;
}

static void grow(strmap_t *m)
{
    strmap_t old = *m;
    m->cap = old.cap ? old.cap * 2 : 8;
    m->slots = mem__calloc(m->cap, sizeof(*m->slots));
    for (size_t i = 0; i < old.cap; i++)
        if (old.slots[i].key)
            insert_slot(m, old.slots[i]);
    free(old.slots);
}

int strmap__put(strmap_t *m, const char *key, void *val)
{
    size_t len = strlen(key);
    uint64_t h = hash_str(key, len);
    strmap_slot_t s;

    if (find(m, key, len, h))
        return -5;
    if ((m->count + 1) * 4 > m->cap * 3)
        grow(m);
    s.key = mem__strndup(key, len);
    s.hash = h;
    s.val = val;
    insert_slot(m, s);
    m->count++;
    return 0;
}

/* Backward-shift deletion keeps probe chains intact without tombstones. */
void *strmap__del(strmap_t *m, const char *key)
{
    size_t len = strlen(key);
    strmap_slot_t *s = find(m, key, len, hash_str(key, len));
    void *val;
    size_t i, j;

    if (!s)
        return NULL;
    val = s->val;
    free(s->key);
    i = (size_t)(s - m->slots);
    j = i;
    for (;;) {
        j = (j + 1) & (m->cap - 1);
        if (!m->slots[j].key)
            break;
        size_t home = m->slots[j].hash & (m->cap - 1);
        /* Move j back to i when its home is not cyclically within (i, j]. */
        if ((j > i && (home <= i || home > j)) || (j < i && (home <= i && home > j))) {
            m->slots[i] = m->slots[j];
            i = j;
        }
    }
    m->slots[i].key = NULL;
    m->slots[i].val = NULL;
    m->count--;
    return val;
}

int strmap__each(const strmap_t *m, int (*cb)(void *ud, const char *key, void *val), void *ud)
{
    for (size_t i = 0; i < m->cap; i++) {
        if (m->slots[i].key) {
            int rc = cb(ud, m->slots[i].key, m->slots[i].val);
            if (rc)
                return rc;
        }
    }
    return 0;
}
