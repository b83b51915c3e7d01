/*
 * test_sdk_abi: freezes the binary interface of include/wshub/sdk.h.
 *
 * A plugin built against SDK 1.0 keeps working with every later 1.x server only if nothing it
 * can see moves: the descriptor header, the descriptor fields, every slot of the host table,
 * the event payload structs and every enum value. This test compares offsetof() of each of them
 * with literals written down when the layout was frozen (x86_64 / LP64 values), so a slot that is
 * moved, removed or inserted in the middle fails here instead of crashing plugins in the field.
 *
 * Appending a slot is the only allowed change: add it at the end of the struct in sdk.h, bump
 * WSHUB_SDK_ABI_MINOR, log it in sdk/ABI.md, and append one line to the table below. The
 * coverage test fails until the table lists every member, so the append cannot be forgotten.
 */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <wshub/sdk.h>

/* One frozen member: where it is now (offset, size) and where it was frozen (frozen). */
typedef struct abi_field {
    const char *type;
    const char *field;
    size_t offset;
    size_t size;
    size_t frozen;
} abi_field_t;

/* clang-format off: the tables read one member per line, like the structs in sdk.h. */
#define F(t, f, off)                                                                               \
    {                                                                                              \
#t, #f, offsetof(t, f), sizeof(((t *)0)->f), (off)                                         \
    }

/* The frozen header: the host reads these 16 bytes before anything else, in every major. */
static const abi_field_t header_fields[] = {
    F(wshub_plugin_header_t, magic, 0),     F(wshub_plugin_header_t, abi_major, 4),
    F(wshub_plugin_header_t, abi_minor, 6), F(wshub_plugin_header_t, struct_size, 8),
    F(wshub_plugin_header_t, reserved, 12),
};

/* The descriptor (ABI 1.0). */
static const abi_field_t desc_fields[] = {
    F(wshub_plugin_desc_t, hdr, 0),       F(wshub_plugin_desc_t, name, 16),
    F(wshub_plugin_desc_t, version, 24),  F(wshub_plugin_desc_t, description, 32),
    F(wshub_plugin_desc_t, requires, 40), F(wshub_plugin_desc_t, provides, 48),
    F(wshub_plugin_desc_t, options, 56),  F(wshub_plugin_desc_t, conn_state_size, 64),
    F(wshub_plugin_desc_t, flags, 72),    F(wshub_plugin_desc_t, init, 80),
    F(wshub_plugin_desc_t, start, 88),    F(wshub_plugin_desc_t, reload, 96),
    F(wshub_plugin_desc_t, stop, 104),    F(wshub_plugin_desc_t, fini, 112),
};

/* Every slot of the host table (ABI 1.0), in declaration order. */
static const abi_field_t host_fields[] = {
    F(wshub_host_api_t, abi_major, 0),
    F(wshub_host_api_t, abi_minor, 2),
    F(wshub_host_api_t, struct_size, 4),
    F(wshub_host_api_t, log, 8),
    F(wshub_host_api_t, set_error, 16),
    F(wshub_host_api_t, strerror, 24),
    F(wshub_host_api_t, hook_add, 32),
    F(wshub_host_api_t, route_add, 40),
    F(wshub_host_api_t, path_add, 48),
    F(wshub_host_api_t, service_put, 56),
    F(wshub_host_api_t, service_get, 64),
    F(wshub_host_api_t, cfg_get, 72),
    F(wshub_host_api_t, cfg_kind, 80),
    F(wshub_host_api_t, cfg_scalar, 88),
    F(wshub_host_api_t, cfg_len, 96),
    F(wshub_host_api_t, cfg_at, 104),
    F(wshub_host_api_t, cfg_key_at, 112),
    F(wshub_host_api_t, cfg_where, 120),
    F(wshub_host_api_t, cfg_str, 128),
    F(wshub_host_api_t, cfg_int, 136),
    F(wshub_host_api_t, cfg_bool, 144),
    F(wshub_host_api_t, conn_id, 152),
    F(wshub_host_api_t, conn_lookup, 160),
    F(wshub_host_api_t, conn_each_user, 168),
    F(wshub_host_api_t, conn_each, 176),
    F(wshub_host_api_t, conn_tenant, 184),
    F(wshub_host_api_t, conn_user, 192),
    F(wshub_host_api_t, conn_n_roles, 200),
    F(wshub_host_api_t, conn_role, 208),
    F(wshub_host_api_t, conn_metadata, 216),
    F(wshub_host_api_t, conn_remote_addr, 224),
    F(wshub_host_api_t, conn_path, 232),
    F(wshub_host_api_t, conn_subprotocol, 240),
    F(wshub_host_api_t, conn_created_ms, 248),
    F(wshub_host_api_t, conn_last_seen_ms, 256),
    F(wshub_host_api_t, conn_set_identity, 264),
    F(wshub_host_api_t, conn_set_subprotocol, 272),
    F(wshub_host_api_t, conn_state, 280),
    F(wshub_host_api_t, conn_send, 288),
    F(wshub_host_api_t, conn_send_text, 296),
    F(wshub_host_api_t, conn_close, 304),
    F(wshub_host_api_t, send_ack, 312),
    F(wshub_host_api_t, send_error, 320),
    F(wshub_host_api_t, welcome_add, 328),
    F(wshub_host_api_t, buf_new, 336),
    F(wshub_host_api_t, buf_new_binary, 344),
    F(wshub_host_api_t, buf_ref, 352),
    F(wshub_host_api_t, buf_unref, 360),
    F(wshub_host_api_t, buf_data, 368),
    F(wshub_host_api_t, group_new, 376),
    F(wshub_host_api_t, group_free, 384),
    F(wshub_host_api_t, group_add, 392),
    F(wshub_host_api_t, group_remove, 400),
    F(wshub_host_api_t, group_has, 408),
    F(wshub_host_api_t, group_size, 416),
    F(wshub_host_api_t, group_send, 424),
    F(wshub_host_api_t, group_each, 432),
    F(wshub_host_api_t, timer_add, 440),
    F(wshub_host_api_t, timer_del, 448),
    F(wshub_host_api_t, post, 456),
    F(wshub_host_api_t, loop_native, 464),
    F(wshub_host_api_t, stopped, 472),
    F(wshub_host_api_t, now_ms, 480),
    F(wshub_host_api_t, metric_new, 488),
    F(wshub_host_api_t, metric_add, 496),
    F(wshub_host_api_t, metric_set, 504),
    F(wshub_host_api_t, metric_observe, 512),
};

/* Structs the plugin reads or fills in (ABI 1.0); they too only grow at the end. */
static const abi_field_t opt_fields[] = {
    F(wshub_opt_t, key, 0),       F(wshub_opt_t, type, 8),  F(wshub_opt_t, def, 16),
    F(wshub_opt_t, required, 24), F(wshub_opt_t, help, 32),
};
static const abi_field_t header_kv_fields[] = {
    F(wshub_header_t, name, 0),
    F(wshub_header_t, value, 8),
};
static const abi_field_t ev_conn_fields[] = {
    F(wshub_ev_conn_t, conn, 0),
};
static const abi_field_t ev_auth_fields[] = {
    F(wshub_ev_auth_t, conn, 0),       F(wshub_ev_auth_t, path, 8),
    F(wshub_ev_auth_t, query, 16),     F(wshub_ev_auth_t, headers, 24),
    F(wshub_ev_auth_t, n_headers, 32), F(wshub_ev_auth_t, remote_addr, 40),
    F(wshub_ev_auth_t, status, 48),    F(wshub_ev_auth_t, reason, 56),
};
static const abi_field_t msg_fields[] = {
    F(wshub_msg_t, type, 0), F(wshub_msg_t, id, 8),         F(wshub_msg_t, data, 16),
    F(wshub_msg_t, len, 24), F(wshub_msg_t, is_binary, 32),
};
static const abi_field_t ev_message_fields[] = {
    F(wshub_ev_message_t, conn, 0),
    F(wshub_ev_message_t, msg, 8),
    F(wshub_ev_message_t, error_code, 16),
};
static const abi_field_t ev_close_fields[] = {
    F(wshub_ev_close_t, conn, 0),
    F(wshub_ev_close_t, code, 8),
    F(wshub_ev_close_t, reason, 16),
};
static const abi_field_t ev_tick_fields[] = {
    F(wshub_ev_tick_t, now_ms, 0),
};
static const abi_field_t ev_welcome_fields[] = {
    F(wshub_ev_welcome_t, conn, 0),
    F(wshub_ev_welcome_t, priv, 8),
};
static const abi_field_t metric_def_fields[] = {
    F(wshub_metric_def_t, kind, 0),       F(wshub_metric_def_t, name, 8),
    F(wshub_metric_def_t, help, 16),      F(wshub_metric_def_t, label_names, 24),
    F(wshub_metric_def_t, n_labels, 32),  F(wshub_metric_def_t, buckets, 40),
    F(wshub_metric_def_t, n_buckets, 48),
};
static const abi_field_t svc_rooms_v1_fields[] = {
    F(wshub_svc_rooms_v1_t, send, 0),
    F(wshub_svc_rooms_v1_t, is_member, 8),
};

/* clang-format on */

/* A frozen struct: its table and its current size (for the coverage check). */
typedef struct abi_struct {
    const char *name;
    const abi_field_t *fields;
    size_t n_fields;
    size_t size;
} abi_struct_t;

/* clang-format off */
#define S(t, tbl) {#t, tbl, sizeof(tbl) / sizeof(tbl[0]), sizeof(t)}

static const abi_struct_t structs[] = {
    S(wshub_plugin_header_t, header_fields),
    S(wshub_plugin_desc_t, desc_fields),
    S(wshub_host_api_t, host_fields),
    S(wshub_opt_t, opt_fields),
    S(wshub_header_t, header_kv_fields),
    S(wshub_ev_conn_t, ev_conn_fields),
    S(wshub_ev_auth_t, ev_auth_fields),
    S(wshub_msg_t, msg_fields),
    S(wshub_ev_message_t, ev_message_fields),
    S(wshub_ev_close_t, ev_close_fields),
    S(wshub_ev_tick_t, ev_tick_fields),
    S(wshub_ev_welcome_t, ev_welcome_fields),
    S(wshub_metric_def_t, metric_def_fields),
    S(wshub_svc_rooms_v1_t, svc_rooms_v1_fields),
};
/* clang-format on */
#define N_STRUCTS (sizeof(structs) / sizeof(structs[0]))

/* The literals are LP64 offsets (x86_64, aarch64); other data models only get the order checks. */
#if UINTPTR_MAX == UINT64_MAX && SIZE_MAX == UINT64_MAX
#define ABI_LITERALS_APPLY 1
#else
#define ABI_LITERALS_APPLY 0
#endif

/* Checks every member of one struct against its frozen offset. */
static void check_struct_offsets(const abi_struct_t *s)
{
    for (size_t i = 0; i < s->n_fields; i++) {
        const abi_field_t *f = &s->fields[i];
        if (ABI_LITERALS_APPLY) {
            ck_assert_msg(f->offset == f->frozen, "%s.%s moved: offset %zu, frozen at %zu", f->type,
                          f->field, f->offset, f->frozen);
        }
    }
}

START_TEST(test_abi_header_is_frozen)
{
    check_struct_offsets(&structs[0]);
    /* The header is frozen in every major, not only in 1.x: its size never changes. */
    ck_assert_uint_eq(sizeof(wshub_plugin_header_t), 16);
    ck_assert_uint_eq(offsetof(wshub_plugin_desc_t, hdr), 0);
}
END_TEST

START_TEST(test_abi_descriptor_offsets)
{
    check_struct_offsets(&structs[1]);
}
END_TEST

START_TEST(test_abi_host_slot_offsets)
{
    check_struct_offsets(&structs[2]);
    /* Every slot after the version fields is one function pointer wide and in table order. */
    for (size_t i = 3; i < structs[2].n_fields; i++) {
        ck_assert_msg(host_fields[i].size == sizeof(void (*)(void)),
                      "host slot %s is not a function pointer", host_fields[i].field);
    }
}
END_TEST

/* Loop test over the remaining structs (payloads, options, metric definitions, services). */
START_TEST(test_abi_payload_offsets)
{
    check_struct_offsets(&structs[3 + (size_t)_i]);
}
END_TEST

/*
 * Every struct's table must list every member, in order, without overlaps: a member appended to
 * sdk.h but not to the table leaves a gap at the end larger than the trailing padding and fails
 * here, and so does a member inserted in the middle (the following offsets no longer match).
 */
START_TEST(test_abi_tables_cover_every_member)
{
    const abi_struct_t *s = &structs[_i];
    size_t end = 0;
    for (size_t i = 0; i < s->n_fields; i++) {
        const abi_field_t *f = &s->fields[i];
        ck_assert_msg(f->offset >= end, "%s.%s overlaps or is out of order", s->name, f->field);
        end = f->offset + f->size;
    }
    /* Trailing padding is always smaller than the largest alignment (8 on LP64). */
    ck_assert_msg(s->size >= end && s->size - end < _Alignof(max_align_t) && s->size - end < 8,
                  "%s has %zu bytes after its last listed member: a member was added without "
                  "adding it to the frozen table (and to sdk/ABI.md)",
                  s->name, s->size - end);
}
END_TEST

/* A frozen enum value: name, current value, value frozen in 1.0. */
typedef struct abi_const {
    const char *name;
    long long value;
    long long frozen;
} abi_const_t;

/* clang-format off */
#define C(name, v) {#name, (long long)(name), (v)}

static const abi_const_t consts[] = {
    C(WSHUB_OK, 0), C(WSHUB_DEFER, 1), C(WSHUB_PENDING, 2), C(WSHUB_ERR, -1),
    C(WSHUB_ERR_NOMEM, -2), C(WSHUB_ERR_INVAL, -3), C(WSHUB_ERR_NOTFOUND, -4),
    C(WSHUB_ERR_EXISTS, -5), C(WSHUB_ERR_DENIED, -6), C(WSHUB_ERR_STATE, -7),
    C(WSHUB_ERR_IO, -8), C(WSHUB_ERR_LIMIT, -9),
    C(WSHUB_LOG_ERR, 0), C(WSHUB_LOG_WARN, 1), C(WSHUB_LOG_NOTICE, 2), C(WSHUB_LOG_INFO, 3),
    C(WSHUB_LOG_DEBUG, 4),
    C(WSHUB_OPT_STRING, 1), C(WSHUB_OPT_INT, 2), C(WSHUB_OPT_BOOL, 3), C(WSHUB_OPT_DURATION, 4),
    C(WSHUB_OPT_SIZE, 5), C(WSHUB_OPT_LIST, 6), C(WSHUB_OPT_MAP, 7), C(WSHUB_OPT_ANY, 8),
    C(WSHUB_EV_CONN_OPEN, 1), C(WSHUB_EV_AUTH, 2), C(WSHUB_EV_MESSAGE_IN, 3),
    C(WSHUB_EV_CONN_CLOSE, 4), C(WSHUB_EV_TICK, 5), C(WSHUB_EV_WELCOME, 6),
    C(WSHUB_METRIC_COUNTER, 1), C(WSHUB_METRIC_GAUGE, 2), C(WSHUB_METRIC_HISTOGRAM, 3),
    C(WSHUB_CFG_SCALAR, 1), C(WSHUB_CFG_LIST, 2), C(WSHUB_CFG_MAP, 3),
    C(WSHUB_PLUGIN_SYSTEM_SCOPE, 1), C(WSHUB_PLUGIN_RELOADABLE, 2),
    C(WSHUB_PLUGIN_MAGIC, 0x57534650LL),
    C(WSHUB_SDK_ABI_MAJOR, 1),
};
/* clang-format on */
#define N_CONSTS (sizeof(consts) / sizeof(consts[0]))

START_TEST(test_abi_constant_values)
{
    const abi_const_t *c = &consts[_i];
    ck_assert_msg(c->value == c->frozen, "%s is %lld, frozen at %lld", c->name, c->value,
                  c->frozen);
}
END_TEST

START_TEST(test_abi_symbol_and_minor)
{
    ck_assert_str_eq(WSHUB_PLUGIN_SYMBOL, "wshub_plugin_entry");
    /* The magic spells "WSFP" when read as a big-endian word. */
    ck_assert_uint_eq((WSHUB_PLUGIN_MAGIC >> 24) & 0xff, 'W');
    ck_assert_uint_eq((WSHUB_PLUGIN_MAGIC >> 16) & 0xff, 'S');
    ck_assert_uint_eq((WSHUB_PLUGIN_MAGIC >> 8) & 0xff, 'F');
    ck_assert_uint_eq(WSHUB_PLUGIN_MAGIC & 0xff, 'P');
    /* A minor bump must come with new rows in these tables and an entry in sdk/ABI.md: the
     * newest frozen minor is 0. Raise this together with the tables. */
    ck_assert_int_eq(WSHUB_SDK_ABI_MINOR, 0);
}
END_TEST

/* The descriptor WSHUB_PLUGIN() produces, inspected like the loader does. */
static int macro_init(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                      void **state)
{
    (void)self, (void)host, (void)cfg, (void)state;
    return WSHUB_OK;
}

WSHUB_PLUGIN(.name = "abi_macro", .version = "1.2.3", .init = macro_init, .conn_state_size = 24,
             .flags = WSHUB_PLUGIN_RELOADABLE);

START_TEST(test_abi_plugin_macro_fills_header)
{
    const wshub_plugin_desc_t *d = &wshub_plugin_entry;
    ck_assert_uint_eq(d->hdr.magic, WSHUB_PLUGIN_MAGIC);
    ck_assert_uint_eq(d->hdr.abi_major, WSHUB_SDK_ABI_MAJOR);
    ck_assert_uint_eq(d->hdr.abi_minor, WSHUB_SDK_ABI_MINOR);
    ck_assert_uint_eq(d->hdr.struct_size, sizeof(wshub_plugin_desc_t));
    ck_assert_uint_eq(d->hdr.reserved, 0);
    ck_assert_str_eq(d->name, "abi_macro");
    ck_assert_ptr_eq(d->init, macro_init);
    ck_assert_uint_eq(d->conn_state_size, 24);
    ck_assert_uint_eq(d->flags, WSHUB_PLUGIN_RELOADABLE);
    /* Members the plugin did not name are zero: the loader relies on NULL optional callbacks. */
    ck_assert_ptr_null(d->requires);
    ck_assert_ptr_null(d->options);
    ck_assert_ptr_null(d->start);
    ck_assert_ptr_null(d->fini);
}
END_TEST

Suite *sdk_abi_suite(void);

Suite *sdk_abi_suite(void)
{
    Suite *s = suite_create("sdk_abi");
    TCase *tc;

    tc = tcase_create("header");
    tcase_add_test(tc, test_abi_header_is_frozen);
    suite_add_tcase(s, tc);

    tc = tcase_create("descriptor");
    tcase_add_test(tc, test_abi_descriptor_offsets);
    suite_add_tcase(s, tc);

    tc = tcase_create("host_table");
    tcase_add_test(tc, test_abi_host_slot_offsets);
    suite_add_tcase(s, tc);

    tc = tcase_create("payloads");
    tcase_add_loop_test(tc, test_abi_payload_offsets, 0, (int)(N_STRUCTS - 3));
    suite_add_tcase(s, tc);

    tc = tcase_create("coverage");
    tcase_add_loop_test(tc, test_abi_tables_cover_every_member, 0, (int)N_STRUCTS);
    suite_add_tcase(s, tc);

    tc = tcase_create("constants");
    tcase_add_loop_test(tc, test_abi_constant_values, 0, (int)N_CONSTS);
    tcase_add_test(tc, test_abi_symbol_and_minor);
    suite_add_tcase(s, tc);

    tc = tcase_create("macro");
    tcase_add_test(tc, test_abi_plugin_macro_fills_header);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(sdk_abi_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
