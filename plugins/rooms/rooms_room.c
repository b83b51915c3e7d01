/*
 * rooms_room: the model. Tenants own rooms; rooms own per-user records (grants, sanctions,
 * presence) and an audit ring; connections own a small list of the rooms they joined.
 *
 * Ownership and the two-way links: a room's user record lists the connection records
 * (rooms_cstate_t) of that user's connections present in the room, and each connection record
 * lists the rooms it is in. Both sides are updated together by presence_add/presence_remove, and
 * deleting a room walks its records to unlink it from every connection first, so no pointer to a
 * freed room survives. Connection records are plugin memory (a tiny host-owned slot points at
 * them), linked in a list on the plugin so fini frees them even for connections still open.
 *
 * Temporary rooms are deleted when they have no member and no child room; the check runs after
 * every departure and cascades to temporary ancestors left empty. It never runs in the middle
 * of a walk over rooms (see reap_subtree), so no walk meets a freed room.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "rooms.h"

/* ------------------------------------------------------------------------------------------ */
/* Tenants and lookup                                                                          */
/* ------------------------------------------------------------------------------------------ */

rooms_tenant_t *rooms_room__tenant(rooms_t *rs, const char *tenant, bool create)
{
    rooms_tenant_t *t = rooms_map__get(&rs->tenants, tenant);

    if (t || !create)
        return t;
    t = calloc(1, sizeof(*t));
    if (!t)
        return NULL;
    t->name = strdup(tenant);
    rooms_map__init(&t->rooms);
    if (!t->name || rooms_map__put(&rs->tenants, t->name, t) != WSHUB_OK) {
        free(t->name);
        free(t);
        return NULL;
    }
    return t;
}

rooms_room_t *rooms_room__find(rooms_t *rs, const char *tenant, const char *id)
{
    rooms_tenant_t *t = rooms_map__get(&rs->tenants, tenant);
    return t ? rooms_map__get(&t->rooms, id) : NULL;
}

/* A tenant without rooms is forgotten, so idle tenants cost nothing. */
static void tenant_maybe_free(rooms_t *rs, rooms_tenant_t *t)
{
    if (t->rooms.n)
        return;
    rooms_map__del(&rs->tenants, t->name);
    rooms_map__free(&t->rooms);
    free(t->name);
    free(t);
}

static void update_gauge(rooms_t *rs)
{
    if (rs->m_rooms)
        rs->host->metric_set(rs->m_rooms, NULL, (double)rs->n_rooms);
}

/*
 * Creates an empty room in tenant t under `parent` (or a root). The room gets its own core
 * group, scoped to the tenant, so the core itself refuses any connection of another tenant.
 * On failure nothing is left behind (an empty tenant created by the caller is freed).
 */
int rooms_room__create(rooms_t *rs, rooms_tenant_t *t, const char *id, rooms_room_t *parent,
                       rooms_room_t **out)
{
    rooms_room_t *r = calloc(1, sizeof(*r));
    int rc = WSHUB_ERR_NOMEM;

    *out = NULL;
    if (!r)
        goto fail;
    r->tenant = t;
    r->id = strdup(id);
    r->name = strdup(id);
    r->description = strdup("");
    if (!r->id || !r->name || !r->description)
        goto fail;
    if (parent && parent->n_children == parent->cap_children) {
        uint32_t cap = parent->cap_children ? parent->cap_children * 2 : 4;
        rooms_room_t **v = realloc(parent->children, cap * sizeof(*v));
        if (!v)
            goto fail;
        parent->children = v;
        parent->cap_children = cap;
    }
    r->group = rs->host->group_new(rs->self, t->name);
    if (!r->group) {
        rc = WSHUB_ERR;
        goto fail;
    }
    rooms_map__init(&r->users);
    rc = rooms_map__put(&t->rooms, r->id, r);
    if (rc != WSHUB_OK)
        goto fail;
    r->parent = parent;
    r->depth = parent ? parent->depth + 1 : 1;
    if (parent)
        parent->children[parent->n_children++] = r;
    r->max_members = rs->max_members_per_room;
    r->created_ms = rs->host->now_ms();
    r->next_msg_id = 1;
    rs->n_rooms++;
    update_gauge(rs);
    *out = r;
    return WSHUB_OK;
fail:
    if (r) {
        if (r->group)
            rs->host->group_free(r->group);
        free(r->id);
        free(r->name);
        free(r->description);
        free(r);
    }
    tenant_maybe_free(rs, t);
    return rc;
}

/* ------------------------------------------------------------------------------------------ */
/* User records                                                                                */
/* ------------------------------------------------------------------------------------------ */

rooms_user_t *rooms_room__user(rooms_room_t *room, const char *user)
{
    return rooms_map__get(&room->users, user);
}

rooms_user_t *rooms_room__user_get(rooms_room_t *room, const char *user)
{
    rooms_user_t *u = rooms_map__get(&room->users, user);

    if (u)
        return u;
    u = calloc(1, sizeof(*u));
    if (!u)
        return NULL;
    u->user = strdup(user);
    if (!u->user || rooms_map__put(&room->users, u->user, u) != WSHUB_OK) {
        free(u->user);
        free(u);
        return NULL;
    }
    return u;
}

static void user_free(rooms_user_t *u)
{
    free(u->user);
    free(u->ban_reason);
    free(u->conns);
    free(u);
}

void rooms_room__user_expire(rooms_user_t *u, uint64_t now_ms)
{
    if (u->banned && u->ban_until_ms && u->ban_until_ms <= now_ms) {
        u->banned = false;
        u->ban_until_ms = 0;
        free(u->ban_reason);
        u->ban_reason = NULL;
    }
    if (u->mute_until_ms && u->mute_until_ms <= now_ms)
        u->mute_until_ms = 0;
}

/* True when the record still matters: a grant, a sanction, an invitation, presence, or a slow
 * mode window that has not ended (forgetting it would let a user dodge slow mode by leaving). */
static bool user_idle(const rooms_room_t *room, const rooms_user_t *u, uint64_t now_ms)
{
    uint64_t slow_ms = (uint64_t)room->slow_mode_s * 1000u;

    if (u->role != ROOMS_ROLE_NONE || u->banned || u->mute_until_ms || u->invited || u->admitted ||
        u->n_conns)
        return false;
    return !(slow_ms && u->last_send_ms && now_ms < u->last_send_ms + slow_ms);
}

void rooms_room__user_gc(rooms_room_t *room, rooms_user_t *u, uint64_t now_ms)
{
    rooms_room__user_expire(u, now_ms);
    if (!user_idle(room, u, now_ms))
        return;
    rooms_map__del(&room->users, u->user);
    user_free(u);
}

/* ------------------------------------------------------------------------------------------ */
/* Presence                                                                                    */
/* ------------------------------------------------------------------------------------------ */

bool rooms_room__conn_in(const rooms_slot_t *slot, const rooms_room_t *room)
{
    const rooms_cstate_t *cs = slot ? slot->cs : NULL;

    if (!cs)
        return false;
    for (uint32_t i = 0; i < cs->n; i++)
        if (cs->rooms[i] == room)
            return true;
    return false;
}

/* Grows an array of pointers to hold one more (cap doubles, starting at `first`). */
static int reserve(void ***v, uint32_t n, uint32_t *cap, uint32_t first)
{
    void **nv;
    uint32_t ncap;

    if (n < *cap)
        return WSHUB_OK;
    ncap = *cap ? *cap * 2 : first;
    if (ncap < *cap)
        return WSHUB_ERR_NOMEM;
    nv = realloc(*v, (size_t)ncap * sizeof(void *));
    if (!nv)
        return WSHUB_ERR_NOMEM;
    *v = nv;
    *cap = ncap;
    return WSHUB_OK;
}

/*
 * Adds connection c to the room: its user's record (created if needed), its connection record
 * (created at its first room), and the room's group. Space is reserved on both sides before
 * anything changes, so a failure leaves the model exactly as it was (except an empty record,
 * which gc removes).
 */
int rooms_room__presence_add(rooms_t *rs, rooms_room_t *room, wshub_conn_t *c, rooms_slot_t *slot,
                             const char *user, bool *first)
{
    rooms_cstate_t *cs = slot->cs;
    rooms_user_t *u;
    int rc;

    *first = false;
    if (cs && cs->n >= rs->max_rooms_per_connection)
        return WSHUB_ERR_LIMIT;
    if (!cs) {
        cs = calloc(1, sizeof(*cs));
        if (!cs)
            return WSHUB_ERR_NOMEM;
        cs->slot = slot;
        cs->conn_id = rs->host->conn_id(c);
        cs->next = rs->cstates;
        if (rs->cstates)
            rs->cstates->prev = cs;
        rs->cstates = cs;
        slot->cs = cs;
    }
    u = rooms_room__user_get(room, user);
    if (!u) {
        rc = WSHUB_ERR_NOMEM;
        goto fail;
    }
    rc = reserve((void ***)&cs->rooms, cs->n, &cs->cap, 4);
    if (rc == WSHUB_OK)
        rc = reserve((void ***)&u->conns, u->n_conns, &u->cap_conns, 2);
    if (rc == WSHUB_OK)
        rc = rs->host->group_add(room->group, c);
    if (rc != WSHUB_OK)
        goto fail;
    cs->rooms[cs->n++] = room;
    u->conns[u->n_conns++] = cs;
    if (u->n_conns == 1) {
        u->joined_ms = rs->host->now_ms();
        room->n_members++;
        *first = true;
    }
    return WSHUB_OK;
fail:
    if (u)
        rooms_room__user_gc(room, u, rs->host->now_ms());
    rooms_room__cstate_release(rs, cs);
    return rc;
}

bool rooms_room__presence_remove(rooms_t *rs, rooms_room_t *room, rooms_user_t *u,
                                 rooms_cstate_t *cs, wshub_conn_t *c)
{
    for (uint32_t i = 0; i < u->n_conns; i++) {
        if (u->conns[i] == cs) {
            u->conns[i] = u->conns[--u->n_conns];
            break;
        }
    }
    for (uint32_t i = 0; i < cs->n; i++) {
        if (cs->rooms[i] == room) {
            cs->rooms[i] = cs->rooms[--cs->n];
            break;
        }
    }
    if (c)
        rs->host->group_remove(room->group, c);
    if (u->n_conns == 0) {
        room->n_members--;
        return true;
    }
    return false;
}

/* Frees a connection record that holds no room (the host slot forgets it too). */
void rooms_room__cstate_release(rooms_t *rs, rooms_cstate_t *cs)
{
    if (!cs || cs->n)
        return;
    if (cs->prev)
        cs->prev->next = cs->next;
    else
        rs->cstates = cs->next;
    if (cs->next)
        cs->next->prev = cs->prev;
    if (cs->slot)
        cs->slot->cs = NULL;
    free(cs->rooms);
    free(cs);
}

/* ------------------------------------------------------------------------------------------ */
/* Deletion                                                                                    */
/* ------------------------------------------------------------------------------------------ */

static void audit_free(rooms_room_t *room)
{
    for (uint32_t i = 0; i < room->audit_n; i++) {
        rooms_audit_t *a = &room->audit[(room->audit_head + i) % room->audit_cap];
        free(a->actor);
        free(a->target);
        free(a->reason);
    }
    free(room->audit);
}

/* Frees the room's own memory (records, filter, audit, group); links are handled by callers. */
static void room_free_memory(rooms_t *rs, rooms_room_t *room)
{
    size_t it = 0;
    rooms_user_t *u;

    while ((u = rooms_map__next(&room->users, &it)))
        user_free(u);
    rooms_map__free(&room->users);
    if (room->group)
        rs->host->group_free(room->group);
    rooms_room__free_filter(room->deny, room->deny_src, room->n_deny);
    audit_free(room);
    OPENSSL_cleanse(room->pw_hash, sizeof(room->pw_hash));
    free(room->children);
    free(room->id);
    free(room->name);
    free(room->description);
    free(room->created_by);
    free(room);
}

/*
 * Unlinks one childless room from everything that points at it (connections present, its
 * parent, its tenant) and frees it. The group is freed without touching its members: they are
 * not closed, they only stop receiving this room's messages.
 */
static void room_destroy(rooms_t *rs, rooms_room_t *room)
{
    rooms_tenant_t *t = room->tenant;
    size_t it = 0;
    rooms_user_t *u;

    while ((u = rooms_map__next(&room->users, &it))) {
        for (uint32_t i = 0; i < u->n_conns; i++) {
            rooms_cstate_t *cs = u->conns[i];
            for (uint32_t k = 0; k < cs->n; k++) {
                if (cs->rooms[k] == room) {
                    cs->rooms[k] = cs->rooms[--cs->n];
                    break;
                }
            }
            rooms_room__cstate_release(rs, cs);
        }
        u->n_conns = 0;
    }
    if (room->parent) {
        rooms_room_t *p = room->parent;
        for (uint32_t i = 0; i < p->n_children; i++) {
            if (p->children[i] == room) {
                memmove(&p->children[i], &p->children[i + 1],
                        (p->n_children - i - 1) * sizeof(*p->children));
                p->n_children--;
                break;
            }
        }
    }
    rooms_map__del(&t->rooms, room->id);
    rs->n_rooms--;
    update_gauge(rs);
    room_free_memory(rs, room);
    tenant_maybe_free(rs, t);
}

int rooms_room__subtree(rooms_room_t *room, rooms_room_t ***out, size_t *n_out)
{
    size_t n = 0, cap = 8;
    rooms_room_t **v = malloc(cap * sizeof(*v));

    *out = NULL;
    *n_out = 0;
    if (!v)
        return WSHUB_ERR_NOMEM;
    v[n++] = room;
    /* Breadth-first over the array itself: each room's children are appended after it, so
     * every room comes after its parent (what reverse-order freeing needs). */
    for (size_t i = 0; i < n; i++) {
        rooms_room_t *r = v[i];
        if (n + r->n_children > cap) {
            size_t ncap = cap;
            rooms_room_t **nv;
            while (ncap < n + r->n_children)
                ncap *= 2;
            nv = realloc(v, ncap * sizeof(*v));
            if (!nv) {
                free(v);
                return WSHUB_ERR_NOMEM;
            }
            v = nv;
            cap = ncap;
        }
        for (uint32_t k = 0; k < r->n_children; k++)
            v[n++] = r->children[k];
    }
    *out = v;
    *n_out = n;
    return WSHUB_OK;
}

/*
 * Deletes the subtree: first every member of every room hears room.deleted (while all groups
 * still exist), then the rooms are destroyed children first. Without memory for the walk the
 * subtree is destroyed recursively (depth <= 16) without events, which is still correct.
 */
static size_t delete_recursive(rooms_t *rs, rooms_room_t *room)
{
    size_t n = 0;

    while (room->n_children)
        n += delete_recursive(rs, room->children[room->n_children - 1]);
    room_destroy(rs, room);
    return n + 1;
}

size_t rooms_room__delete(rooms_t *rs, rooms_room_t *room, const char *by)
{
    rooms_room_t **v;
    size_t n;

    if (rooms_room__subtree(room, &v, &n) != WSHUB_OK)
        return delete_recursive(rs, room);
    if (by)
        for (size_t i = 0; i < n; i++)
            rooms_proto__deleted(rs, v[i], by);
    for (size_t i = n; i > 0; i--)
        room_destroy(rs, v[i - 1]);
    free(v);
    return n;
}

static bool vanishes(const rooms_room_t *room)
{
    return room->lifetime == ROOMS_LIFE_TEMPORARY && room->n_members == 0 && room->n_children == 0;
}

void rooms_room__reap(rooms_t *rs, rooms_room_t *room)
{
    while (room && vanishes(room)) {
        rooms_room_t *parent = room->parent;
        room_destroy(rs, room);
        room = parent;
    }
}

/* Returns true when `room` itself was destroyed. Children are visited last-first because
 * destroying one shifts the later ones down. */
static bool reap_down(rooms_t *rs, rooms_room_t *room)
{
    for (uint32_t i = room->n_children; i > 0; i--)
        reap_down(rs, room->children[i - 1]);
    if (!vanishes(room))
        return false;
    room_destroy(rs, room);
    return true;
}

void rooms_room__reap_subtree(rooms_t *rs, rooms_room_t *room)
{
    rooms_room_t *parent = room->parent;

    if (reap_down(rs, room))
        rooms_room__reap(rs, parent);
}

/* ------------------------------------------------------------------------------------------ */
/* Fan-out                                                                                     */
/* ------------------------------------------------------------------------------------------ */

/* Hands the same buffer to every child room's group, depth first (depth <= 16). */
static size_t send_children(rooms_t *rs, rooms_room_t *room, wshub_buf_t *b,
                            const wshub_conn_t *except)
{
    size_t n = 0;

    for (uint32_t i = 0; i < room->n_children; i++) {
        n += rs->host->group_send(room->children[i]->group, b, except);
        n += send_children(rs, room->children[i], b, except);
    }
    return n;
}

size_t rooms_room__send(rooms_t *rs, rooms_room_t *room, wshub_buf_t *b, const wshub_conn_t *except,
                        bool subtree)
{
    size_t n = rs->host->group_send(room->group, b, except);

    if (subtree)
        n += send_children(rs, room, b, except);
    return n;
}

/* ------------------------------------------------------------------------------------------ */
/* Audit                                                                                       */
/* ------------------------------------------------------------------------------------------ */

/*
 * Appends an entry; when the ring is full the oldest entry is replaced. The array grows in
 * steps up to audit_max_entries, so a quiet room does not pay for a full log. An entry that
 * cannot be stored for lack of memory is logged instead of lost silently.
 */
void rooms_room__audit(rooms_t *rs, rooms_room_t *room, const char *actor, const char *action,
                       const char *target, const char *reason)
{
    rooms_audit_t e = {strdup(actor ? actor : ""), strdup(target ? target : ""),
                       reason ? strdup(reason) : NULL, action, rs->host->now_ms()};
    uint32_t max = rs->audit_max_entries;

    if (!e.actor || !e.target || (reason && !e.reason) || max == 0)
        goto drop;
    if (room->audit_n == room->audit_cap && room->audit_cap < max) {
        uint32_t cap = room->audit_cap ? room->audit_cap * 2 : 16;
        rooms_audit_t *v;
        if (cap > max || cap < room->audit_cap)
            cap = max;
        v = realloc(room->audit, (size_t)cap * sizeof(*v));
        if (!v)
            goto drop;
        room->audit = v;
        room->audit_cap = cap;
    }
    if (room->audit_n < room->audit_cap) {
        /* Not full yet: the ring has not wrapped, head is 0. */
        room->audit[room->audit_n++] = e;
        return;
    }
    {
        rooms_audit_t *old = &room->audit[room->audit_head];
        free(old->actor);
        free(old->target);
        free(old->reason);
        *old = e;
        room->audit_head = (room->audit_head + 1) % room->audit_cap;
    }
    return;
drop:
    rs->host->log(rs->self, WSHUB_LOG_WARN, "audit entry %s on room %s/%s not stored", action,
                  room->tenant->name, room->id);
    free(e.actor);
    free(e.target);
    free(e.reason);
}

/* ------------------------------------------------------------------------------------------ */
/* Password                                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* A fresh random salt for every password, PBKDF2-HMAC-SHA-256 with the configured iterations
 * (kept per room, so changing the option does not break existing rooms). Never stored clear. */
int rooms_room__set_password(rooms_t *rs, rooms_room_t *room, const char *pw, size_t len)
{
    unsigned char salt[ROOMS_SALT_LEN], hash[ROOMS_HASH_LEN];

    if (len > ROOMS_MAX_PASSWORD_LEN || RAND_bytes(salt, sizeof(salt)) != 1 ||
        PKCS5_PBKDF2_HMAC(pw, (int)len, salt, sizeof(salt), (int)rs->pbkdf2_iterations,
                          EVP_sha256(), sizeof(hash), hash) != 1)
        return WSHUB_ERR;
    memcpy(room->salt, salt, sizeof(salt));
    memcpy(room->pw_hash, hash, sizeof(hash));
    OPENSSL_cleanse(hash, sizeof(hash));
    room->pw_iterations = rs->pbkdf2_iterations;
    room->has_password = true;
    return WSHUB_OK;
}

bool rooms_room__check_password(const rooms_room_t *room, const char *pw, size_t len)
{
    unsigned char hash[ROOMS_HASH_LEN];
    bool ok;

    if (!room->has_password || len > ROOMS_MAX_PASSWORD_LEN ||
        PKCS5_PBKDF2_HMAC(pw, (int)len, room->salt, sizeof(room->salt), (int)room->pw_iterations,
                          EVP_sha256(), sizeof(hash), hash) != 1)
        return false;
    ok = CRYPTO_memcmp(hash, room->pw_hash, sizeof(hash)) == 0;
    OPENSSL_cleanse(hash, sizeof(hash));
    return ok;
}

/* ------------------------------------------------------------------------------------------ */
/* Message filter                                                                              */
/* ------------------------------------------------------------------------------------------ */

void rooms_room__free_filter(regex_t *re, char **src, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        if (re)
            regfree(&re[i]);
        if (src)
            free(src[i]);
    }
    free(re);
    free(src);
}

/* A backreference (\1..\9) makes glibc's matcher backtrack exponentially: refused, since the
 * text to match is chosen by any member. */
static bool has_backreference(const char *p, size_t len)
{
    for (size_t i = 0; i + 1 < len; i++) {
        if (p[i] == '\\') {
            if (p[i + 1] >= '1' && p[i + 1] <= '9')
                return true;
            i++; /* skip the escaped character */
        }
    }
    return false;
}

/*
 * Compiles every pattern (POSIX extended, no sub-match reporting) into new arrays; on any
 * error nothing is returned and `err` names the pattern. The caller has already checked count
 * and lengths against the configured caps.
 */
int rooms_room__compile_filter(const char *const *src, const size_t *lens, size_t n,
                               regex_t **out_re, char ***out_src, char *err, size_t err_len)
{
    regex_t *re = NULL;
    char **copy = NULL;
    size_t done = 0;

    *out_re = NULL;
    *out_src = NULL;
    if (n == 0)
        return WSHUB_OK;
    re = calloc(n, sizeof(*re));
    copy = calloc(n, sizeof(*copy));
    if (!re || !copy) {
        snprintf(err, err_len, "out of memory");
        goto fail;
    }
    for (; done < n; done++) {
        int rc;
        if (has_backreference(src[done], lens[done])) {
            snprintf(err, err_len, "filter.deny_patterns[%zu]: backreferences are not allowed",
                     done);
            goto fail;
        }
        rc = regcomp(&re[done], src[done], REG_EXTENDED | REG_NOSUB);
        if (rc != 0) {
            char why[128];
            regerror(rc, &re[done], why, sizeof(why));
            regfree(&re[done]);
            snprintf(err, err_len, "filter.deny_patterns[%zu]: %s", done, why);
            goto fail;
        }
        copy[done] = strdup(src[done]);
        if (!copy[done]) {
            regfree(&re[done]);
            snprintf(err, err_len, "out of memory");
            goto fail;
        }
    }
    *out_re = re;
    *out_src = copy;
    return WSHUB_OK;
fail:
    rooms_room__free_filter(re, copy, (uint32_t)done);
    return WSHUB_ERR_INVAL;
}

const char *rooms_room__filter(const rooms_room_t *room, const char *text, size_t len)
{
    if (room->filter_max_length && len > room->filter_max_length)
        return "the message is longer than the room allows";
    for (uint32_t i = 0; i < room->n_deny; i++)
        if (regexec(&room->deny[i], text, 0, NULL, 0) == 0)
            return "the message matches a pattern the room denies";
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Sweep and teardown                                                                          */
/* ------------------------------------------------------------------------------------------ */

/*
 * Lifts expired bans and mutes and frees records that no longer carry anything, in every room.
 * Records are collected first because the map cannot change while it is walked.
 */
static void sweep_room(rooms_t *rs, rooms_room_t *room, uint64_t now)
{
    rooms_user_t **idle = NULL;
    size_t n = 0, it = 0;
    rooms_user_t *u;

    if (!room->users.n)
        return;
    idle = malloc(room->users.n * sizeof(*idle));
    if (!idle)
        return; /* try again at the next sweep */
    while ((u = rooms_map__next(&room->users, &it))) {
        rooms_room__user_expire(u, now);
        if (user_idle(room, u, now))
            idle[n++] = u;
    }
    for (size_t i = 0; i < n; i++) {
        rooms_map__del(&room->users, idle[i]->user);
        user_free(idle[i]);
    }
    free(idle);
}

void rooms_room__sweep(rooms_t *rs)
{
    uint64_t now = rs->host->now_ms();
    size_t it = 0;
    rooms_tenant_t *t;

    while ((t = rooms_map__next(&rs->tenants, &it))) {
        size_t jt = 0;
        rooms_room_t *r;
        while ((r = rooms_map__next(&t->rooms, &jt)))
            sweep_room(rs, r, now);
    }
}

void rooms_room__free_all(rooms_t *rs)
{
    size_t it = 0;
    rooms_tenant_t *t;

    while (rs->cstates) {
        rooms_cstate_t *cs = rs->cstates;
        rs->cstates = cs->next;
        if (cs->slot)
            cs->slot->cs = NULL;
        free(cs->rooms);
        free(cs);
    }
    while ((t = rooms_map__next(&rs->tenants, &it))) {
        size_t jt = 0;
        rooms_room_t *r;
        while ((r = rooms_map__next(&t->rooms, &jt)))
            room_free_memory(rs, r);
        rooms_map__free(&t->rooms);
        free(t->name);
        free(t);
    }
    rooms_map__free(&rs->tenants);
    rs->n_rooms = 0;
}
