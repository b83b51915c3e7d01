/*
 * rooms_map: the plugin's own string-keyed hash map (a plugin cannot use the core's).
 *
 * Keys are chosen by clients (room ids, user ids), so a fixed hash function would let one
 * client make every key collide and turn each lookup into a scan. The hash is SipHash-2-4 with
 * a 128-bit secret drawn from OpenSSL's RAND_bytes at init, as Redis and Python do for their
 * dictionaries. The table is open addressing with linear probing (cache friendly, one
 * allocation) and backward-shift deletion (no tombstones, so lookups never degrade after many
 * deletions). It grows at 3/4 load and never shrinks below its first size.
 */
#include <stdlib.h>
#include <string.h>

#include "rooms.h"

#define MAP_MIN_CAP 8u

static uint64_t sip_k0 = 0x736f6d6570736575ull, sip_k1 = 0x646f72616e646f6dull;

static uint64_t rotl(uint64_t x, int b)
{
    return (x << b) | (x >> (64 - b));
}

static uint64_t load64_le(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

void rooms_map__seed(const unsigned char key[16])
{
    sip_k0 = load64_le(key);
    sip_k1 = load64_le(key + 8);
}

#define SIPROUND                                                                                   \
    do {                                                                                           \
        v0 += v1;                                                                                  \
        v1 = rotl(v1, 13);                                                                         \
        v1 ^= v0;                                                                                  \
        v0 = rotl(v0, 32);                                                                         \
        v2 += v3;                                                                                  \
        v3 = rotl(v3, 16);                                                                         \
        v3 ^= v2;                                                                                  \
        v0 += v3;                                                                                  \
        v3 = rotl(v3, 21);                                                                         \
        v3 ^= v0;                                                                                  \
        v2 += v1;                                                                                  \
        v1 = rotl(v1, 17);                                                                         \
        v1 ^= v2;                                                                                  \
        v2 = rotl(v2, 32);                                                                         \
    } while (0)

/* SipHash-2-4 of a byte string (the reference algorithm, little-endian word loads). */
static uint64_t siphash(const unsigned char *in, size_t len)
{
    uint64_t v0 = 0x736f6d6570736575ull ^ sip_k0;
    uint64_t v1 = 0x646f72616e646f6dull ^ sip_k1;
    uint64_t v2 = 0x6c7967656e657261ull ^ sip_k0;
    uint64_t v3 = 0x7465646279746573ull ^ sip_k1;
    uint64_t b = (uint64_t)len << 56;
    size_t full = len - (len % 8);
    uint64_t m;

    for (size_t i = 0; i < full; i += 8) {
        m = load64_le(in + i);
        v3 ^= m;
        SIPROUND;
        SIPROUND;
        v0 ^= m;
    }
    for (size_t i = 0; i < len % 8; i++)
        b |= (uint64_t)in[full + i] << (8 * i);
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

static uint64_t hash_str(const char *s)
{
    return siphash((const unsigned char *)s, strlen(s));
}

void rooms_map__init(rooms_map_t *m)
{
    m->slots = NULL;
    m->cap = 0;
    m->n = 0;
}

void rooms_map__free(rooms_map_t *m)
{
    free(m->slots);
    rooms_map__init(m);
}

/* The slot holding `key`, or the free slot where it would go. Requires cap > 0. */
static size_t find_slot(const rooms_map_t *m, const char *key, uint64_t h)
{
    size_t mask = m->cap - 1;
    size_t i = (size_t)h & mask;

    while (m->slots[i].key) {
        if (m->slots[i].hash == h && strcmp(m->slots[i].key, key) == 0)
            return i;
        i = (i + 1) & mask;
    }
    return i;
}

void *rooms_map__get(const rooms_map_t *m, const char *key)
{
    size_t i;

    if (!m->cap || !key)
        return NULL;
    i = find_slot(m, key, hash_str(key));
    return m->slots[i].key ? m->slots[i].val : NULL;
}

/* Rehashes into a table of `cap` slots (a power of two larger than n / 0.75). */
static int grow(rooms_map_t *m, size_t cap)
{
    rooms_map_slot_t *old = m->slots, *slots;
    size_t old_cap = m->cap;

    slots = calloc(cap, sizeof(*slots));
    if (!slots)
        return WSHUB_ERR_NOMEM;
    m->slots = slots;
    m->cap = cap;
    for (size_t i = 0; i < old_cap; i++) {
        if (old[i].key) {
            size_t j = (size_t)old[i].hash & (cap - 1);
            while (slots[j].key)
                j = (j + 1) & (cap - 1);
            slots[j] = old[i];
        }
    }
    free(old);
    return WSHUB_OK;
}

int rooms_map__put(rooms_map_t *m, const char *key, void *val)
{
    uint64_t h;
    size_t i;

    if (!key)
        return WSHUB_ERR_INVAL;
    if ((m->n + 1) * 4 > m->cap * 3) {
        size_t cap = m->cap ? m->cap * 2 : MAP_MIN_CAP;
        if (cap < m->cap || grow(m, cap) != WSHUB_OK)
            return WSHUB_ERR_NOMEM;
    }
    h = hash_str(key);
    i = find_slot(m, key, h);
    if (m->slots[i].key)
        return WSHUB_ERR_EXISTS;
    m->slots[i] = (rooms_map_slot_t){key, val, h};
    m->n++;
    return WSHUB_OK;
}

/*
 * Backward-shift deletion: after emptying slot i, every following entry of the same probe run
 * that could live at i (its home is not cyclically in (i, j]) moves back, so a lookup never
 * meets a hole inside a run.
 */
void *rooms_map__del(rooms_map_t *m, const char *key)
{
    size_t mask, i, j;
    void *val;

    if (!m->cap || !key)
        return NULL;
    mask = m->cap - 1;
    i = find_slot(m, key, hash_str(key));
    if (!m->slots[i].key)
        return NULL;
    val = m->slots[i].val;
    m->slots[i].key = NULL;
    m->n--;
    j = i;
    for (;;) {
        size_t home;
        j = (j + 1) & mask;
        if (!m->slots[j].key)
            break;
        home = (size_t)m->slots[j].hash & mask;
        /* Entry j may move to i unless its home lies cyclically in (i, j]. */
        if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
            continue;
        m->slots[i] = m->slots[j];
        m->slots[j].key = NULL;
        i = j;
    }
    return val;
}

void *rooms_map__next(const rooms_map_t *m, size_t *it)
{
    while (*it < m->cap) {
        size_t i = (*it)++;
        if (m->slots[i].key)
            return m->slots[i].val;
    }
    return NULL;
}
