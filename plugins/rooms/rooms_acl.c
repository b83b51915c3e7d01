/*
 * rooms_acl: roles, the permission matrix, and how a user's role and bans are resolved along
 * the room hierarchy.
 *
 * The matrix is data (one row per action: the lowest role allowed), so the README table, the
 * checks in rooms_proto.c and the table-driven test all describe the same thing. On top of the
 * matrix, actions that aim at another user (kick, ban, unban, mute, set_role) also require the
 * target's role to be strictly lower than the actor's; rooms_proto.c checks that.
 *
 * Resolution: grants and bans set on a room apply to its whole subtree unless a room nearer to
 * the one asked about says otherwise. Walking from the room up to its root, the first room that
 * has a role or a ban for the user decides whether a ban applies (a ban there wins over a role
 * there; a role on a child wins over a ban on a parent), and the first room with a role gives
 * the role. A connection whose token carries the role `admin` is a tenant admin: it counts as
 * owner of every room of its tenant and no ban applies to it.
 */
#include <string.h>

#include "rooms.h"

static const char *const role_names[] = {"none", "member", "moderator", "admin", "owner"};

/* The lowest role that may perform each action (index: rooms_action_t). */
static const struct {
    const char *name;
    rooms_role_t min;
} matrix[ROOMS_ACT_COUNT_] = {
    [ROOMS_ACT_SEND] = {"send", ROOMS_ROLE_MEMBER},
    [ROOMS_ACT_SEND_SUBTREE] = {"send_subtree", ROOMS_ROLE_MODERATOR},
    [ROOMS_ACT_LEAVE] = {"leave", ROOMS_ROLE_MEMBER},
    [ROOMS_ACT_MEMBERS] = {"members", ROOMS_ROLE_MEMBER},
    [ROOMS_ACT_KICK] = {"kick", ROOMS_ROLE_MODERATOR},
    [ROOMS_ACT_BAN] = {"ban", ROOMS_ROLE_MODERATOR},
    [ROOMS_ACT_UNBAN] = {"unban", ROOMS_ROLE_MODERATOR},
    [ROOMS_ACT_MUTE] = {"mute", ROOMS_ROLE_MODERATOR},
    [ROOMS_ACT_DELETE_MESSAGE] = {"delete_message", ROOMS_ROLE_MODERATOR},
    [ROOMS_ACT_AUDIT] = {"audit", ROOMS_ROLE_MODERATOR},
    [ROOMS_ACT_INVITE] = {"invite", ROOMS_ROLE_ADMIN},
    [ROOMS_ACT_UPDATE] = {"update", ROOMS_ROLE_ADMIN},
    [ROOMS_ACT_SET_ROLE] = {"set_role", ROOMS_ROLE_ADMIN},
    [ROOMS_ACT_CREATE_CHILD] = {"create_child", ROOMS_ROLE_ADMIN},
    [ROOMS_ACT_DELETE] = {"delete", ROOMS_ROLE_OWNER},
};

const char *rooms_acl__role_name(rooms_role_t r)
{
    return (unsigned)r <= ROOMS_ROLE_OWNER ? role_names[r] : "none";
}

int rooms_acl__role_parse(const char *s, bool allow_none)
{
    for (int r = allow_none ? ROOMS_ROLE_NONE : ROOMS_ROLE_MEMBER; r <= ROOMS_ROLE_OWNER; r++)
        if (strcmp(s, role_names[r]) == 0)
            return r;
    return -1;
}

const char *rooms_acl__action_name(rooms_action_t a)
{
    return (unsigned)a < ROOMS_ACT_COUNT_ ? matrix[a].name : "?";
}

bool rooms_acl__allowed(rooms_role_t role, rooms_action_t a)
{
    if ((unsigned)a >= ROOMS_ACT_COUNT_ || role == ROOMS_ROLE_NONE)
        return false;
    return role >= matrix[a].min;
}

bool rooms_acl__is_tenant_admin(const rooms_t *rs, const wshub_conn_t *c)
{
    size_t n = rs->host->conn_n_roles(c);

    for (size_t i = 0; i < n; i++) {
        const char *r = rs->host->conn_role(c, i);
        if (r && strcmp(r, "admin") == 0)
            return true;
    }
    return false;
}

/* Walks from `room` to its root; see the file comment for the rule. */
rooms_role_t rooms_acl__resolve(rooms_t *rs, rooms_room_t *room, const char *user,
                                rooms_user_t **ban)
{
    uint64_t now = rs->host->now_ms();
    rooms_role_t role = ROOMS_ROLE_NONE;
    bool ban_decided = false;
    unsigned guard = 0;

    if (ban)
        *ban = NULL;
    for (rooms_room_t *r = room; r && guard <= ROOMS_MAX_DEPTH; r = r->parent, guard++) {
        rooms_user_t *u = rooms_room__user(r, user);
        if (!u)
            continue;
        rooms_room__user_expire(u, now);
        if (!ban_decided && (u->banned || u->role != ROOMS_ROLE_NONE)) {
            ban_decided = true;
            if (u->banned && ban)
                *ban = u;
        }
        if (role == ROOMS_ROLE_NONE && u->role != ROOMS_ROLE_NONE)
            role = u->role;
        if (ban_decided && role != ROOMS_ROLE_NONE)
            break;
    }
    return role;
}

/* Present in the room: at least one of the user's connections has joined it. */
static bool present(rooms_room_t *room, const char *user)
{
    rooms_user_t *u = rooms_room__user(room, user);
    return u && u->n_conns > 0;
}

rooms_role_t rooms_acl__actor_role(rooms_t *rs, wshub_conn_t *c, rooms_room_t *room, bool *banned)
{
    const char *user = rs->host->conn_user(c);
    rooms_user_t *ban;
    rooms_role_t role;

    *banned = false;
    if (rooms_acl__is_tenant_admin(rs, c))
        return ROOMS_ROLE_OWNER;
    role = rooms_acl__resolve(rs, room, user, &ban);
    if (ban) {
        *banned = true;
        return ROOMS_ROLE_NONE;
    }
    if (role == ROOMS_ROLE_NONE && present(room, user))
        role = ROOMS_ROLE_MEMBER;
    return role;
}

typedef struct admin_probe {
    const rooms_t *rs;
    bool found;
} admin_probe_t;

static int probe_admin(wshub_conn_t *c, void *ud)
{
    admin_probe_t *p = ud;

    if (rooms_acl__is_tenant_admin(p->rs, c)) {
        p->found = true;
        return 1; /* stop */
    }
    return 0;
}

rooms_role_t rooms_acl__target_role(rooms_t *rs, rooms_room_t *room, const char *user)
{
    admin_probe_t probe = {rs, false};
    rooms_role_t role;

    /* An anonymous "user" is every anonymous connection; none of them carries a token. */
    if (*user)
        rs->host->conn_each_user(rs->self, room->tenant->name, user, probe_admin, &probe);
    if (probe.found)
        return ROOMS_ROLE_OWNER;
    role = rooms_acl__resolve(rs, room, user, NULL);
    if (role == ROOMS_ROLE_NONE && present(room, user))
        role = ROOMS_ROLE_MEMBER;
    return role;
}
