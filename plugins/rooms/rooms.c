/*
 * rooms: chat-style rooms scoped per tenant, on top of the core's fan-out groups.
 *
 * A room belongs to one tenant and its id is unique within that tenant only; each room owns a
 * core group created for its tenant, so the core itself refuses a connection of another
 * tenant. Membership (roles, bans, mutes, invitations) is per user; presence is per
 * connection. Rooms form trees (max depth 16) where grants and bans flow down. The complete
 * protocol, the permission matrix and the options are in README.md.
 *
 * This file holds the plugin's frame: options, init/start/fini, the CONN_CLOSE hook (a closing
 * connection leaves every room; temporary rooms left empty vanish), the periodic sweep of
 * expired sanctions, and the `rooms` service other plugins (broadcast) use. The protocol is in
 * rooms_proto.c, the model in rooms_room.c, permissions in rooms_acl.c.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/rand.h>

#include "rooms.h"

/*
 * The service vtable's functions get no context argument (wshub_svc_rooms_v1_t), so they reach
 * the plugin through this pointer, set by init and cleared by fini. One instance per process is
 * what the loader allows anyway (plugin names are unique).
 */
static rooms_t *service_instance;

static const wshub_opt_t rooms_options[] = {
    {"max_rooms_per_tenant", WSHUB_OPT_INT, "10000", false,
     "most rooms one tenant may have (room.create answers `limit` beyond)"},
    {"max_members_per_room", WSHUB_OPT_INT, "10000", false,
     "default and upper bound of a room's max_members (users, not connections)"},
    {"max_rooms_per_connection", WSHUB_OPT_INT, "100", false,
     "most rooms one connection may be in at once"},
    {"audit_max_entries", WSHUB_OPT_INT, "1000", false,
     "audit entries kept per room (the oldest are dropped)"},
    {"pbkdf2_iterations", WSHUB_OPT_INT, "100000", false,
     "PBKDF2-HMAC-SHA-256 iterations for room passwords (keep >= 100000 in production)"},
    {"max_message_size", WSHUB_OPT_SIZE, "64KiB", false,
     "largest `data` of room.send, as JSON text"},
    {"filter_max_patterns", WSHUB_OPT_INT, "32", false, "most deny patterns per room"},
    {"filter_max_pattern_length", WSHUB_OPT_INT, "256", false, "longest deny pattern, in bytes"},
    {"password_retry_delay", WSHUB_OPT_DURATION, "1s", false,
     "after a wrong room password, the connection's next attempt waits this long"},
    {"auto_create", WSHUB_OPT_BOOL, "false", false,
     "room.join of a missing room creates it: public, temporary (gone when empty), no owner"},
    {NULL, 0, NULL, false, NULL},
};

/* ------------------------------------------------------------------------------------------ */
/* The `rooms` service                                                                         */
/* ------------------------------------------------------------------------------------------ */

/* Sends `b` to the members of (tenant, room), and its subtree when asked. */
static long svc_send(const char *tenant, const char *room, wshub_buf_t *b, bool subtree)
{
    rooms_t *rs = service_instance;
    rooms_room_t *r;

    if (!rs || !tenant || !room || !b)
        return WSHUB_ERR_INVAL;
    r = rooms_room__find(rs, tenant, room);
    if (!r)
        return WSHUB_ERR_NOTFOUND;
    return (long)rooms_room__send(rs, r, b, NULL, subtree);
}

/* True when this connection has joined `room` of its own tenant (presence, not a role). */
static bool svc_is_member(wshub_conn_t *c, const char *room)
{
    rooms_t *rs = service_instance;
    rooms_room_t *r;

    if (!rs || !c || !room)
        return false;
    r = rooms_room__find(rs, rs->host->conn_tenant(c), room);
    return r && rooms_room__conn_in(rs->host->conn_state(c, rs->self), r);
}

static const wshub_svc_rooms_v1_t rooms_service = {
    .send = svc_send,
    .is_member = svc_is_member,
};

/* ------------------------------------------------------------------------------------------ */
/* Hooks and timers                                                                            */
/* ------------------------------------------------------------------------------------------ */

/*
 * A closing connection leaves every room it is in: the others hear room.left when it was its
 * user's last connection there, and temporary rooms left empty are deleted. The connection is
 * still valid during the hook, and the host frees our slot only after the last hook.
 */
static int on_conn_close(wshub_event_t ev, void *data, void *ud)
{
    rooms_t *rs = ud;
    const wshub_ev_close_t *e = data;
    rooms_slot_t *slot;
    rooms_cstate_t *cs;
    const char *user;

    (void)ev;
    slot = rs->host->conn_state(e->conn, rs->self);
    if (!slot || !slot->cs)
        return WSHUB_OK;
    cs = slot->cs;
    user = rs->host->conn_user(e->conn);
    while (cs->n) {
        rooms_room_t *room = cs->rooms[cs->n - 1];
        rooms_user_t *u = rooms_room__user(room, user);
        if (!u) {
            /* Cannot happen (presence always has a record); never loop forever on it. */
            rs->host->log(rs->self, WSHUB_LOG_ERR, "room %s/%s: no record for a present user",
                          room->tenant->name, room->id);
            cs->n--;
            continue;
        }
        rooms_proto__left(rs, room, u, cs, e->conn, "disconnect");
        rooms_room__user_gc(room, u, rs->host->now_ms());
        rooms_room__reap(rs, room);
    }
    rooms_room__cstate_release(rs, cs);
    return WSHUB_OK;
}

static void on_sweep(void *ud)
{
    rooms_room__sweep(ud);
}

/* ------------------------------------------------------------------------------------------ */
/* Lifecycle                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* Reads an integer option and checks its range; the text names the option and where it is. */
static int read_opt(rooms_t *rs, const wshub_cfg_t *cfg, const char *key, int64_t def, int64_t min,
                    int64_t max, int64_t *out)
{
    if (rs->host->cfg_int(cfg, key, def, out) != WSHUB_OK || *out < min || *out > max) {
        rs->host->set_error(rs->self,
                            "%s: option %s must be an integer from %" PRId64 " to %" PRId64,
                            rs->host->cfg_where(rs->host->cfg_get(cfg, key)), key, min, max);
        return WSHUB_ERR_INVAL;
    }
    return WSHUB_OK;
}

static int read_options(rooms_t *rs, const wshub_cfg_t *cfg)
{
    int64_t v[9];
    int rc = WSHUB_OK;

    if ((rc = read_opt(rs, cfg, "max_rooms_per_tenant", 10000, 1, 10000000, &v[0])) ||
        (rc = read_opt(rs, cfg, "max_members_per_room", 10000, 1, 10000000, &v[1])) ||
        (rc = read_opt(rs, cfg, "max_rooms_per_connection", 100, 1, 100000, &v[2])) ||
        (rc = read_opt(rs, cfg, "audit_max_entries", 1000, 1, 1000000, &v[3])) ||
        (rc = read_opt(rs, cfg, "pbkdf2_iterations", 100000, 1, 100000000, &v[4])) ||
        (rc = read_opt(rs, cfg, "max_message_size", 65536, 1, 1 << 30, &v[5])) ||
        (rc = read_opt(rs, cfg, "filter_max_patterns", 32, 0, 1024, &v[6])) ||
        (rc = read_opt(rs, cfg, "filter_max_pattern_length", 256, 1, 4096, &v[7])) ||
        (rc = read_opt(rs, cfg, "password_retry_delay", 1000, 0, 3600000, &v[8])))
        return rc;
    rs->max_rooms_per_tenant = (uint32_t)v[0];
    rs->max_members_per_room = (uint32_t)v[1];
    rs->max_rooms_per_connection = (uint32_t)v[2];
    rs->audit_max_entries = (uint32_t)v[3];
    rs->pbkdf2_iterations = (uint32_t)v[4];
    rs->max_message_size = (uint32_t)v[5];
    rs->filter_max_patterns = (uint32_t)v[6];
    rs->filter_max_pattern_length = (uint32_t)v[7];
    rs->password_retry_delay_ms = (uint64_t)v[8];
    rs->auto_create = rs->host->cfg_bool(cfg, "auto_create", false);
    return WSHUB_OK;
}

static void rooms_fini(wshub_plugin_t *self, void *state)
{
    rooms_t *rs = state;

    (void)self;
    if (!rs)
        return;
    if (service_instance == rs)
        service_instance = NULL;
    rs->host->timer_del(rs->sweep);
    rooms_room__free_all(rs);
    free(rs);
}

/*
 * Reads the options, seeds the hash maps with a secret (room and user ids are chosen by
 * clients), registers the routes, the CONN_CLOSE hook, the `rooms` service, two metrics and the
 * sweep timer. On failure the loader undoes our registrations; whether it then calls fini is
 * not something to rely on (core/plugin_loader.c does not), so init frees its own state and
 * leaves *state NULL, which makes a fini call harmless too.
 */
static int rooms_init(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                      void **state)
{
    static const wshub_metric_def_t rooms_def = {
        .kind = WSHUB_METRIC_GAUGE,
        .name = "wshub_rooms_active",
        .help = "Rooms that exist now, all tenants.",
    };
    static const wshub_metric_def_t messages_def = {
        .kind = WSHUB_METRIC_COUNTER,
        .name = "wshub_rooms_messages_total",
        .help = "Messages sent to rooms with room.send.",
    };
    unsigned char seed[16];
    rooms_t *rs;
    int rc;

    *state = NULL;
    rs = calloc(1, sizeof(*rs));
    if (!rs) {
        host->set_error(self, "out of memory");
        return WSHUB_ERR_NOMEM;
    }
    rs->host = host;
    rs->self = self;
    rooms_map__init(&rs->tenants);
    if ((rc = read_options(rs, cfg)) != WSHUB_OK)
        goto fail;
    if (RAND_bytes(seed, sizeof(seed)) != 1) {
        host->set_error(self, "OpenSSL RAND_bytes failed: cannot seed the room tables");
        rc = WSHUB_ERR;
        goto fail;
    }
    rooms_map__seed(seed);
    if ((rc = rooms_proto__register(rs)) != WSHUB_OK)
        goto fail;
    if ((rc = host->hook_add(self, WSHUB_EV_CONN_CLOSE, 0, on_conn_close, rs)) != WSHUB_OK) {
        host->set_error(self, "cannot hook connection close: %s", host->strerror(rc));
        goto fail;
    }
    if ((rc = host->service_put(self, WSHUB_SVC_ROOMS, 1, &rooms_service)) != WSHUB_OK) {
        host->set_error(self, "cannot offer the rooms service: %s", host->strerror(rc));
        goto fail;
    }
    rs->m_rooms = host->metric_new(self, &rooms_def);
    rs->m_messages = host->metric_new(self, &messages_def);
    rs->sweep = host->timer_add(self, ROOMS_SWEEP_MS, true, on_sweep, rs);
    if (!rs->m_rooms || !rs->m_messages || !rs->sweep) {
        host->set_error(self, "cannot register the rooms metrics or the sweep timer");
        rc = WSHUB_ERR;
        goto fail;
    }
    if (rs->pbkdf2_iterations < 100000)
        WSHUB_LOG(WSHUB_LOG_WARN,
                  "pbkdf2_iterations is %" PRIu32 ": room passwords are weakly "
                  "protected below 100000",
                  rs->pbkdf2_iterations);
    service_instance = rs;
    *state = rs;
    return WSHUB_OK;
fail:
    rooms_fini(self, rs);
    return rc;
}

/*
 * Looks for a `store` service. None exists yet, and sdk.h defines no store vtable, so
 * persistent rooms live as long as the process; README.md describes the vtable this plugin
 * will use once one does.
 */
static int rooms_start(wshub_plugin_t *self, void *state)
{
    rooms_t *rs = state;
    const wshub_host_api_t *host = rs->host;

    if (!host->service_get(self, "store", 1))
        WSHUB_LOG(WSHUB_LOG_NOTICE, "no store service loaded: persistence is unavailable, "
                                    "persistent rooms live as long as the process");
    else
        WSHUB_LOG(WSHUB_LOG_NOTICE,
                  "a store service is loaded, but this rooms build has no "
                  "store interface: persistence is unavailable, persistent rooms live as long "
                  "as the process");
    rs->persistence = false;
    return WSHUB_OK;
}

static const char *const rooms_provides[] = {WSHUB_SVC_ROOMS, NULL};

WSHUB_PLUGIN(.name = "rooms", .version = "1.0.0",
             .description = "Rooms per tenant: access types, hierarchy, roles, moderation, "
                            "presence",
             .provides = rooms_provides, .options = rooms_options,
             .conn_state_size = sizeof(rooms_slot_t), .init = rooms_init, .start = rooms_start,
             .fini = rooms_fini);
