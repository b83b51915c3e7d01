/*
 * idmap: linear-probing hash map, uint64_t -> void *. Connection ids are sequential, so the
 * hash must scatter neighbouring keys: a plain "key & mask" would fill one run of slots and make
 * every probe walk it. The splitmix64 finaliser does that for a few multiplications.
 */
#include "idmap.h"

#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDMAP_MIN_CAP 16

enum { ERR_INVAL = -3, ERR_EXISTS = -5 };

/* splitmix64's output mixer (Steele, Lea, Flood 2014): a bijection with full avalanche. */
static uint64_t mix64(uint64_t x)
{
    x ^= x >> 30;
    x *= UINT64_C(0xbf58476d1ce4e5b9);
    x ^= x >> 27;
    x *= UINT64_C(0x94d049bb133111eb);
    x ^= x >> 31;
    return x;
}

static size_t home_slot(const idmap_t *m, uint64_t key)
{
    return (size_t)mix64(key) & (m->cap - 1);
}

/*
 * The one place idmap allocates. The core's policy on out-of-memory is log and abort (callers of
 * the connection table cannot do anything sensible without it), so this never returns NULL.
 */
static void *xcalloc(size_t n, size_t size)
{
    void *p = calloc(n, size);

    if (p == NULL) {
        fprintf(stderr, "wshub: idmap: out of memory allocating %zu x %zu bytes\n", n, size);
        abort();
    }
    return p;
}

/* Returns the slot holding key, or the empty slot where the probe for it ended. */
static size_t find_slot(const idmap_t *m, uint64_t key)
{
    size_t mask = m->cap - 1, i = home_slot(m, key);

    while (m->keys[i] != 0 && m->keys[i] != key)
        i = (i + 1) & mask;
    return i;
}

/*
 * Doubles the table (or creates the first one) and reinserts every entry. Capacities are powers
 * of two so the slot is a mask, and the load stays at most 3/4 so probes stay short and an
 * empty slot always exists to end them.
 */
static void grow(idmap_t *m)
{
    size_t old_cap = m->cap, new_cap = old_cap == 0 ? IDMAP_MIN_CAP : old_cap * 2;
    uint64_t *old_keys = m->keys;
    void **old_vals = m->vals;

    if (new_cap < old_cap || new_cap > SIZE_MAX / sizeof(uint64_t)) {
        fprintf(stderr, "wshub: idmap: table size overflow at %zu slots\n", old_cap);
        abort();
    }
    m->keys = xcalloc(new_cap, sizeof(*m->keys));
    m->vals = xcalloc(new_cap, sizeof(*m->vals));
    m->cap = new_cap;
    for (size_t i = 0; i < old_cap; i++) {
        size_t j;

        if (old_keys[i] == 0)
            continue;
        j = find_slot(m, old_keys[i]);
        m->keys[j] = old_keys[i];
        m->vals[j] = old_vals[i];
    }
    free(old_keys);
    free(old_vals);
}

void idmap__init(idmap_t *m)
{
    memset(m, 0, sizeof(*m));
}

void idmap__free(idmap_t *m)
{
    free(m->keys);
    free(m->vals);
    idmap__init(m);
}

int idmap__put(idmap_t *m, uint64_t key, void *val)
{
    size_t i;

    if (key == 0 || val == NULL)
        return ERR_INVAL;
    if (m->cap > 0 && m->keys[find_slot(m, key)] == key)
        return ERR_EXISTS;
    /* Grow before inserting so count + 1 <= 3/4 cap holds after the insert. */
    if ((m->count + 1) * 4 > m->cap * 3)
        grow(m);
    i = find_slot(m, key);
    assert(m->keys[i] == 0);
    m->keys[i] = key;
    m->vals[i] = val;
    m->count++;
    return 0;
}

void *idmap__get(const idmap_t *m, uint64_t key)
{
    size_t i;

    if (key == 0 || m->cap == 0)
        return NULL;
    i = find_slot(m, key);
    return m->keys[i] == key ? m->vals[i] : NULL;
}

/*
 * Backward-shift deletion: after emptying slot `hole`, walk the run that follows it and move
 * back every entry whose home slot does not lie cyclically in (hole, j], i.e. every entry whose
 * probe sequence passed through the hole. The run then has no gap that would hide an entry from
 * find_slot(), with no tombstones to skip or purge later.
 */
void *idmap__del(idmap_t *m, uint64_t key)
{
    size_t mask, hole, j;
    void *val;

    if (key == 0 || m->cap == 0)
        return NULL;
    hole = find_slot(m, key);
    if (m->keys[hole] != key)
        return NULL;
    val = m->vals[hole];
    mask = m->cap - 1;
    j = hole;
    for (;;) {
        size_t home;

        j = (j + 1) & mask;
        if (m->keys[j] == 0)
            break;
        home = home_slot(m, m->keys[j]);
        if (((j - home) & mask) >= ((j - hole) & mask)) {
            m->keys[hole] = m->keys[j];
            m->vals[hole] = m->vals[j];
            hole = j;
        }
    }
    m->keys[hole] = 0;
    m->vals[hole] = NULL;
    m->count--;
    return val;
}

size_t idmap__count(const idmap_t *m)
{
    return m->count;
}

void idmap__each(const idmap_t *m, int (*cb)(void *ud, uint64_t key, void *val), void *ud)
{
    for (size_t i = 0; i < m->cap; i++)
        if (m->keys[i] != 0 && cb(ud, m->keys[i], m->vals[i]) != 0)
            return;
}
