/*
 * rooms: the plugin's internal declarations, shared by its source files only.
 *
 * The plugin is split into parts that each own one concern:
 *   rooms.c        descriptor, options, init/start/fini, the CONN_CLOSE hook, the `rooms` service
 *   rooms_map.c    a string-keyed hash map with a secret seed (SipHash-2-4) for hostile keys
 *   rooms_acl.c    roles, the permission matrix, role and ban resolution along the hierarchy
 *   rooms_room.c   the model: tenants, rooms, per-user records, presence, audit, password,
 *                  message filter, deletion and the expiry sweep
 *   rooms_proto.c  the JSON protocol: request parsing and validation, acks, errors and events
 *
 * Nothing here is part of the SDK. Functions shared between the parts are named
 * `rooms_<part>__<verb>` and are not exported: the plugin is linked with hidden visibility, so
 * the descriptor `wshub_plugin_entry` stays its only exported symbol.
 */
#ifndef WSHUB_PLUGIN_ROOMS_H
#define WSHUB_PLUGIN_ROOMS_H

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <wshub/sdk.h>

/* Fixed limits of the protocol (not configurable: they bound memory per request). */
#define ROOMS_MAX_ID_LEN       128       /* room ids and user ids in requests, in bytes */
#define ROOMS_MAX_NAME_LEN     128       /* display name, in bytes */
#define ROOMS_MAX_DESC_LEN     1024      /* description, in bytes */
#define ROOMS_MAX_REASON_LEN   512       /* kick/ban reason, in bytes */
#define ROOMS_MAX_PASSWORD_LEN 256       /* password, in bytes */
#define ROOMS_MAX_DEPTH        16        /* rooms on the path from a root to a room, inclusive */
#define ROOMS_MAX_DURATION_S   315360000 /* ten years: the longest ban or mute */
#define ROOMS_MAX_SLOW_MODE_S  86400     /* one day */
#define ROOMS_SALT_LEN         16
#define ROOMS_HASH_LEN         32  /* PBKDF2-HMAC-SHA-256 output */
#define ROOMS_TOKEN_LEN        16  /* invite token bytes (32 hex characters on the wire) */
#define ROOMS_LIST_DEFAULT     100 /* room.list and room.audit page size when not given */
#define ROOMS_LIST_MAX         1000
#define ROOMS_SWEEP_MS         60000u /* expired bans/mutes and idle records are swept this often */

/* ------------------------------------------------------------------------------------------ */
/* Hash map (rooms_map.c)                                                                      */
/* ------------------------------------------------------------------------------------------ */

/* One slot: `key` is borrowed from the value (it lives as long as the entry), NULL when free. */
typedef struct rooms_slot_entry {
    const char *key;
    void *val;
    uint64_t hash;
} rooms_map_slot_t;

/* Open addressing with linear probing and backward-shift deletion; capacity a power of two. */
typedef struct rooms_map {
    rooms_map_slot_t *slots;
    size_t cap; /* 0 until the first insertion */
    size_t n;
} rooms_map_t;

/* Sets the process-wide secret seed of the hash (called once from init with random bytes). */
void rooms_map__seed(const unsigned char key[16]);
void rooms_map__init(rooms_map_t *m);
/* Frees the slot array only; the values belong to the caller. */
void rooms_map__free(rooms_map_t *m);
void *rooms_map__get(const rooms_map_t *m, const char *key);
/* Inserts; `key` must stay valid while the entry exists. @return WSHUB_OK, WSHUB_ERR_EXISTS,
 * WSHUB_ERR_NOMEM. */
int rooms_map__put(rooms_map_t *m, const char *key, void *val);
/* Removes and returns the value, or NULL when absent. */
void *rooms_map__del(rooms_map_t *m, const char *key);
/* Iteration: `*it` starts at 0; returns the next value or NULL at the end. The map must not be
 * modified while iterating (collect, then delete). */
void *rooms_map__next(const rooms_map_t *m, size_t *it);

/* ------------------------------------------------------------------------------------------ */
/* The model                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* Roles, in rank order: an actor may act only on targets of a strictly lower rank. */
typedef enum rooms_role {
    ROOMS_ROLE_NONE = 0, /* no role: an outsider (not a member, no grant) */
    ROOMS_ROLE_MEMBER = 1,
    ROOMS_ROLE_MODERATOR = 2,
    ROOMS_ROLE_ADMIN = 3,
    ROOMS_ROLE_OWNER = 4,
} rooms_role_t;

typedef enum rooms_access {
    ROOMS_ACCESS_PUBLIC = 0,
    ROOMS_ACCESS_PRIVATE = 1,
    ROOMS_ACCESS_PROTECTED = 2,
} rooms_access_t;

typedef enum rooms_lifetime {
    ROOMS_LIFE_NORMAL = 0,     /* lives until deleted (or the process ends) */
    ROOMS_LIFE_TEMPORARY = 1,  /* deleted when its last member leaves (and it has no children) */
    ROOMS_LIFE_PERSISTENT = 2, /* saved through the `store` service when one is loaded */
} rooms_lifetime_t;

/* Actions of the permission matrix (rooms_acl.c). */
typedef enum rooms_action {
    ROOMS_ACT_SEND = 0,
    ROOMS_ACT_SEND_SUBTREE,
    ROOMS_ACT_LEAVE,
    ROOMS_ACT_MEMBERS,
    ROOMS_ACT_KICK,
    ROOMS_ACT_BAN,
    ROOMS_ACT_UNBAN,
    ROOMS_ACT_MUTE,
    ROOMS_ACT_DELETE_MESSAGE,
    ROOMS_ACT_AUDIT,
    ROOMS_ACT_INVITE,
    ROOMS_ACT_UPDATE,
    ROOMS_ACT_SET_ROLE,
    ROOMS_ACT_CREATE_CHILD,
    ROOMS_ACT_DELETE,
    ROOMS_ACT_COUNT_,
} rooms_action_t;

typedef struct rooms_room rooms_room_t;
typedef struct rooms_tenant rooms_tenant_t;
typedef struct rooms_cstate rooms_cstate_t;

/* The host-owned per-connection bytes (conn_state_size): deliberately tiny. */
typedef struct rooms_slot {
    rooms_cstate_t *cs;   /* plugin-owned, allocated at the first join; NULL otherwise */
    uint64_t pw_retry_ms; /* no password check before this time (after a wrong one) */
} rooms_slot_t;

/* Plugin-owned per-connection record: the rooms this connection has joined. */
struct rooms_cstate {
    rooms_cstate_t *prev, *next; /* in rooms_t.cstates, so fini can free every one */
    rooms_slot_t *slot;          /* back to the host bytes (valid while this record exists) */
    uint64_t conn_id;
    uint32_t n, cap; /* n <= max_rooms_per_connection */
    rooms_room_t **rooms;
};

/* What a room knows about one user: grants, sanctions and presence. Removed when empty. */
typedef struct rooms_user {
    char *user;   /* the map key */
    uint8_t role; /* explicit role set on this room (ROOMS_ROLE_NONE: none) */
    bool banned;
    bool invited;           /* an invitation is pending (token below) */
    bool admitted;          /* joined once through invite/password: may rejoin */
    uint64_t ban_until_ms;  /* 0: permanent */
    char *ban_reason;       /* NULL when none */
    uint64_t mute_until_ms; /* 0: not muted */
    uint64_t last_send_ms;  /* slow mode */
    uint64_t joined_ms;     /* when n_conns went from 0 to 1 */
    unsigned char token[ROOMS_TOKEN_LEN];
    uint32_t n_conns, cap_conns; /* this user's connections present in the room */
    rooms_cstate_t **conns;
} rooms_user_t;

/* One audit entry. */
typedef struct rooms_audit {
    char *actor, *target, *reason; /* reason may be NULL */
    const char *action;            /* static string */
    uint64_t ts_ms;
} rooms_audit_t;

struct rooms_room {
    rooms_tenant_t *tenant;
    char *id, *name, *description, *created_by;
    uint8_t access, lifetime;
    uint32_t depth; /* 1 for a root */
    rooms_room_t *parent;
    rooms_room_t **children;
    uint32_t n_children, cap_children;
    uint32_t max_members;
    uint64_t created_ms;
    /* protected rooms: PBKDF2-HMAC-SHA-256 of the password */
    bool has_password;
    uint32_t pw_iterations;
    unsigned char salt[ROOMS_SALT_LEN];
    unsigned char pw_hash[ROOMS_HASH_LEN];
    /* message filter */
    uint32_t filter_max_length; /* bytes; 0: none */
    uint32_t n_deny;
    regex_t *deny;
    char **deny_src;
    uint32_t slow_mode_s; /* 0: off */
    /* people */
    rooms_map_t users;    /* user id -> rooms_user_t */
    uint32_t n_members;   /* users with n_conns > 0 */
    wshub_group_t *group; /* every present connection */
    uint64_t next_msg_id;
    /* audit ring: newest at (head + n - 1) % cap */
    rooms_audit_t *audit;
    uint32_t audit_cap, audit_n, audit_head;
};

struct rooms_tenant {
    char *name;
    rooms_map_t rooms; /* room id -> rooms_room_t */
};

/* The plugin instance. */
typedef struct rooms {
    const wshub_host_api_t *host;
    wshub_plugin_t *self;
    /* options */
    uint32_t max_rooms_per_tenant;
    uint32_t max_members_per_room;
    uint32_t max_rooms_per_connection;
    uint32_t audit_max_entries;
    uint32_t pbkdf2_iterations;
    uint32_t max_message_size;
    uint32_t filter_max_patterns;
    uint32_t filter_max_pattern_length;
    uint64_t password_retry_delay_ms;
    bool auto_create; /* room.join of a missing room creates it (public, temporary) */
    /* state */
    rooms_map_t tenants; /* tenant id -> rooms_tenant_t */
    rooms_cstate_t *cstates;
    size_t n_rooms;
    wshub_timer_t *sweep;
    bool persistence; /* persistent rooms are saved (needs a `store`; see README) */
    wshub_metric_t *m_rooms, *m_messages;
} rooms_t;

/* ------------------------------------------------------------------------------------------ */
/* Roles and permissions (rooms_acl.c)                                                         */
/* ------------------------------------------------------------------------------------------ */

const char *rooms_acl__role_name(rooms_role_t r);
/* Parses "owner", "admin", "moderator", "member" (and "none" when allow_none). @return the role
 * or -1. */
int rooms_acl__role_parse(const char *s, bool allow_none);
const char *rooms_acl__action_name(rooms_action_t a);
/* The permission matrix: may a holder of `role` perform `a`? */
bool rooms_acl__allowed(rooms_role_t role, rooms_action_t a);
/* Does the connection's token carry the tenant-admin role ("admin")? */
bool rooms_acl__is_tenant_admin(const rooms_t *rs, const wshub_conn_t *c);
/*
 * Resolves `user` on `room` along the hierarchy: the nearest explicit role (child wins), and
 * whether the nearest room with a grant or a ban for the user bans it. Expired bans are lifted
 * on the way. @param ban out: the ban's record when banned, else NULL (may be NULL).
 */
rooms_role_t rooms_acl__resolve(rooms_t *rs, rooms_room_t *room, const char *user,
                                rooms_user_t **ban);
/* The effective role of connection `c` on `room`: owner for tenant admins, else the resolved
 * role, else member when the user is present. *banned is set when a ban applies. */
rooms_role_t rooms_acl__actor_role(rooms_t *rs, wshub_conn_t *c, rooms_room_t *room, bool *banned);
/* The effective role of `user` (a target) on `room`, including the tenant-admin token role of
 * any of its live connections. Bans are ignored. */
rooms_role_t rooms_acl__target_role(rooms_t *rs, rooms_room_t *room, const char *user);

/* ------------------------------------------------------------------------------------------ */
/* The model (rooms_room.c)                                                                    */
/* ------------------------------------------------------------------------------------------ */

rooms_tenant_t *rooms_room__tenant(rooms_t *rs, const char *tenant, bool create);
rooms_room_t *rooms_room__find(rooms_t *rs, const char *tenant, const char *id);
/* Creates a room (no members); the creator gets no role here (the caller grants it).
 * @return WSHUB_OK, WSHUB_ERR_NOMEM, WSHUB_ERR (group refused). */
int rooms_room__create(rooms_t *rs, rooms_tenant_t *t, const char *id, rooms_room_t *parent,
                       rooms_room_t **out);
/* Deletes `room` and its whole subtree, telling the members of each (room.deleted) when `by`
 * is not NULL. @return the number of rooms deleted. */
size_t rooms_room__delete(rooms_t *rs, rooms_room_t *room, const char *by);
/* Deletes `room` when it is temporary, has no member and no child, then its ancestors under
 * the same rule. */
void rooms_room__reap(rooms_t *rs, rooms_room_t *room);
/* Post-order over the subtree of `room`: deletes temporary empty leaves, then cascades upward
 * from `room`. `room` may be freed. */
void rooms_room__reap_subtree(rooms_t *rs, rooms_room_t *room);

rooms_user_t *rooms_room__user(rooms_room_t *room, const char *user);
rooms_user_t *rooms_room__user_get(rooms_room_t *room, const char *user); /* creates; NULL: OOM */
/* Lifts expired ban and mute of a record. */
void rooms_room__user_expire(rooms_user_t *u, uint64_t now_ms);
/* Frees the record when it carries nothing any more. */
void rooms_room__user_gc(rooms_room_t *room, rooms_user_t *u, uint64_t now_ms);

bool rooms_room__conn_in(const rooms_slot_t *slot, const rooms_room_t *room);
/* Adds connection c (user `user`) to the room's presence. @return WSHUB_OK, WSHUB_ERR_LIMIT
 * (connection in too many rooms), WSHUB_ERR_NOMEM, or the group's error. *first is set when the
 * user was not present before. */
int rooms_room__presence_add(rooms_t *rs, rooms_room_t *room, wshub_conn_t *c, rooms_slot_t *slot,
                             const char *user, bool *first);
/* Removes one connection (by its cstate) from the room. `c` may be NULL (closed already).
 * @return true when it was the user's last connection in the room. */
bool rooms_room__presence_remove(rooms_t *rs, rooms_room_t *room, rooms_user_t *u,
                                 rooms_cstate_t *cs, wshub_conn_t *c);
/* Frees the cstate when it holds no room any more. */
void rooms_room__cstate_release(rooms_t *rs, rooms_cstate_t *cs);

void rooms_room__audit(rooms_t *rs, rooms_room_t *room, const char *actor, const char *action,
                       const char *target, const char *reason);

/* Password: derives a salted PBKDF2 hash into the room. @return WSHUB_OK or WSHUB_ERR. */
int rooms_room__set_password(rooms_t *rs, rooms_room_t *room, const char *pw, size_t len);
bool rooms_room__check_password(const rooms_room_t *room, const char *pw, size_t len);

/* Compiles deny patterns into fresh arrays. @return WSHUB_OK or WSHUB_ERR_INVAL with `err`
 * naming the pattern (and regerror's text). */
int rooms_room__compile_filter(const char *const *src, const size_t *lens, size_t n,
                               regex_t **out_re, char ***out_src, char *err, size_t err_len);
void rooms_room__free_filter(regex_t *re, char **src, uint32_t n);
/* @return NULL when the text passes, else a static description of the rule that refused it. */
const char *rooms_room__filter(const rooms_room_t *room, const char *text, size_t len);

/* The periodic sweep: lifts expired bans and mutes, frees idle records. */
void rooms_room__sweep(rooms_t *rs);
/* Frees everything (fini). */
void rooms_room__free_all(rooms_t *rs);
/* Sends `b` (one buffer, shared) to the room's group, and to every descendant's group when
 * `subtree`. A connection in several of those rooms gets one copy per room.
 * @return connections queued. */
size_t rooms_room__send(rooms_t *rs, rooms_room_t *room, wshub_buf_t *b, const wshub_conn_t *except,
                        bool subtree);
/* Appends every room of the subtree of `room` (pre-order, `room` first) to a new array.
 * @return WSHUB_OK or WSHUB_ERR_NOMEM. */
int rooms_room__subtree(rooms_room_t *room, rooms_room_t ***out, size_t *n_out);

/* ------------------------------------------------------------------------------------------ */
/* Protocol (rooms_proto.c)                                                                    */
/* ------------------------------------------------------------------------------------------ */

/* Registers every room.* route. @return WSHUB_OK or the failing route_add's error. */
int rooms_proto__register(rooms_t *rs);
/* Sends a prepared event text to the members of a room (one buffer, one group_send). */
size_t rooms_proto__send_text(rooms_t *rs, rooms_room_t *room, const char *text,
                              const wshub_conn_t *except);
/* Tells the members of `room` it is deleted (room.deleted, by `by`). */
void rooms_proto__deleted(rooms_t *rs, rooms_room_t *room, const char *by);
/* Connection `cs` (user `user`) left `room` for `reason`: presence bookkeeping, room.left to the
 * others when it was the user's last connection. Does not reap. */
void rooms_proto__left(rooms_t *rs, rooms_room_t *room, rooms_user_t *u, rooms_cstate_t *cs,
                       wshub_conn_t *c, const char *reason);

#endif
