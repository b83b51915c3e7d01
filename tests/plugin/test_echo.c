/*
 * test_echo: the echo plugin (plugins/echo/echo.c, compiled into this executable) against the
 * fake host: path registration, text and binary echo byte for byte, option validation, the
 * message counter, and no leaked buffers.
 */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <wshub/sdk.h>

#include "fake_host.h"

extern const wshub_plugin_desc_t wshub_plugin_entry;

static const char *const text_label[] = {"text"};
static const char *const binary_label[] = {"binary"};

static void setup_default(void)
{
    ck_assert_int_eq(fake_host__load(&wshub_plugin_entry, NULL), WSHUB_OK);
}

static void teardown(void)
{
    fake_host__unload();
    ck_assert_msg(!fake_host__log_contains("leaked"), "the plugin leaked a buffer");
}

/* ---- registration ---- */

START_TEST(test_echo_registers_default_path)
{
    ck_assert(fake_host__has_path("/echo"));
    ck_assert(!fake_host__has_route("echo"));
    ck_assert(fake_host__log_contains("INFO echoing on /echo"));
}
END_TEST

START_TEST(test_echo_registers_configured_path)
{
    ck_assert_int_eq(fake_host__load(&wshub_plugin_entry, "path: /conformance\n"), WSHUB_OK);
    ck_assert(fake_host__has_path("/conformance"));
    ck_assert(!fake_host__has_path("/echo"));
}
END_TEST

START_TEST(test_echo_refuses_unknown_option)
{
    ck_assert_int_eq(fake_host__load(&wshub_plugin_entry, "path: /e\nbogus: 1\n"), WSHUB_ERR_INVAL);
    /* The config module's message: where, which plugin, which option, and the valid ones. */
    ck_assert_ptr_nonnull(strstr(fake_host__last_error(), "<test>:2:1"));
    ck_assert_ptr_nonnull(strstr(fake_host__last_error(), "plugin echo"));
    ck_assert_ptr_nonnull(strstr(fake_host__last_error(), "bogus"));
    ck_assert_ptr_nonnull(strstr(fake_host__last_error(), "unknown option"));
    ck_assert_ptr_nonnull(strstr(fake_host__last_error(), "valid options: path"));
    ck_assert(!fake_host__has_path("/e"));
}
END_TEST

START_TEST(test_echo_refuses_wrong_option_type)
{
    ck_assert_int_eq(fake_host__load(&wshub_plugin_entry, "path: [a, b]\n"), WSHUB_ERR_INVAL);
    ck_assert_ptr_nonnull(strstr(fake_host__last_error(), "option path"));
}
END_TEST

/* Paths the host refuses make init fail with the reason from set_error. */
static const struct {
    const char *yaml;
    int rc;
    const char *why;
} bad_paths[] = {
    {"path: echo\n", WSHUB_ERR_INVAL, "cannot serve 'echo': a path starts with '/'"},
    {"path: /ws\n", WSHUB_ERR_EXISTS, "cannot serve '/ws': the path is already served"},
    {"path: \"/a?b\"\n", WSHUB_ERR_INVAL, "cannot serve '/a?b'"},
};

START_TEST(test_echo_init_fails_on_unusable_path)
{
    ck_assert_int_eq(fake_host__load(&wshub_plugin_entry, bad_paths[_i].yaml), bad_paths[_i].rc);
    ck_assert_ptr_nonnull(strstr(fake_host__last_error(), bad_paths[_i].why));
    ck_assert_ptr_nonnull(strstr(fake_host__last_error(), "<test>:1:7: option path"));
    ck_assert(fake_host__log_contains("plugin echo: init failed"));
}
END_TEST

/* ---- echo ---- */

/* Text messages come back unchanged, whatever they look like (never parsed as JSON). */
static const char *const texts[] = {
    "hello",
    "",
    "{\"type\":\"ping\",\"id\":1}",
    "not json {",
    "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", /* "κόσμε" */
    "  spaces and\nnewlines\t ",
};

START_TEST(test_echo_text_verbatim)
{
    fake_conn_t *c = fake_host__conn_new(NULL, NULL, "/echo");
    ck_assert_int_eq(fake_host__fire_open(c), WSHUB_OK);
    ck_assert_uint_eq(c->n_out, 0); /* a raw path has no welcome */
    ck_assert_int_eq(fake_host__deliver(c, texts[_i]), WSHUB_OK);
    ck_assert_uint_eq(c->n_out, 1);
    ck_assert_str_eq(c->out[0], texts[_i]);
    ck_assert(!c->out_binary[0]);
    ck_assert_double_eq(fake_host__metric("wshub_echo_messages_total", text_label), 1);
    ck_assert_double_eq(fake_host__metric("wshub_echo_messages_total", binary_label), 0);
}
END_TEST

START_TEST(test_echo_large_text)
{
    size_t n = 64 * 1024;
    char *big = malloc(n + 1);
    fake_conn_t *c = fake_host__conn_new(NULL, NULL, "/echo");
    ck_assert_ptr_nonnull(big);
    for (size_t i = 0; i < n; i++)
        big[i] = (char)('a' + i % 26);
    big[n] = '\0';
    ck_assert_int_eq(fake_host__deliver(c, big), WSHUB_OK);
    ck_assert_uint_eq(c->n_out, 1);
    ck_assert_uint_eq(strlen(c->out[0]), n);
    ck_assert_int_eq(memcmp(c->out[0], big, n), 0);
    free(big);
}
END_TEST

START_TEST(test_echo_binary_stays_binary)
{
    static const unsigned char payload[] = {0x00, 0xff, 0x10, 0x00, 'a', 0x80, 0x7f, 0x00};
    fake_conn_t *c = fake_host__conn_new(NULL, NULL, "/echo");
    ck_assert_int_eq(fake_host__deliver_binary(c, payload, sizeof(payload)), WSHUB_OK);
    ck_assert_uint_eq(c->n_out, 1);
    ck_assert(c->out_binary[0]);
    ck_assert_int_eq(memcmp(c->out[0], payload, sizeof(payload)), 0);
    ck_assert_double_eq(fake_host__metric("wshub_echo_messages_total", binary_label), 1);
    ck_assert_double_eq(fake_host__metric("wshub_echo_messages_total", text_label), 0);
}
END_TEST

START_TEST(test_echo_empty_binary)
{
    fake_conn_t *c = fake_host__conn_new(NULL, NULL, "/echo");
    ck_assert_int_eq(fake_host__deliver_binary(c, "", 0), WSHUB_OK);
    ck_assert_uint_eq(c->n_out, 1);
    ck_assert(c->out_binary[0]);
    ck_assert_str_eq(c->out[0], "");
}
END_TEST

/* Replies go to the sender only, in order, and the counter counts each message. */
START_TEST(test_echo_counts_and_isolates_connections)
{
    fake_conn_t *a = fake_host__conn_new("t1", "alice", "/echo");
    fake_conn_t *b = fake_host__conn_new("t2", "bob", "/echo");
    ck_assert_int_eq(fake_host__deliver(a, "one"), WSHUB_OK);
    ck_assert_int_eq(fake_host__deliver(b, "two"), WSHUB_OK);
    ck_assert_int_eq(fake_host__deliver_binary(a, "\x01\x02", 2), WSHUB_OK);
    ck_assert_int_eq(fake_host__deliver(a, "three"), WSHUB_OK);
    ck_assert_uint_eq(a->n_out, 3);
    ck_assert_str_eq(a->out[0], "one");
    ck_assert(a->out_binary[1]);
    ck_assert_str_eq(a->out[2], "three");
    ck_assert_uint_eq(b->n_out, 1);
    ck_assert_str_eq(b->out[0], "two");
    ck_assert_double_eq(fake_host__metric("wshub_echo_messages_total", text_label), 3);
    ck_assert_double_eq(fake_host__metric("wshub_echo_messages_total", binary_label), 1);
}
END_TEST

/* A message that cannot be sent (the connection overflowed and is closing) is not counted. */
START_TEST(test_echo_failed_send_not_counted)
{
    fake_conn_t *c = fake_host__conn_new(NULL, NULL, "/echo");
    for (int i = 0; i < FAKE_MAX_OUT; i++)
        ck_assert_int_eq(fake_host__deliver(c, "x"), WSHUB_OK);
    ck_assert(!c->closed);
    /* The next reply overflows the send queue: the host closes the connection. */
    ck_assert_int_eq(fake_host__deliver(c, "overflow"), WSHUB_OK);
    ck_assert(c->closed);
    ck_assert_uint_eq(c->n_out, FAKE_MAX_OUT);
    ck_assert_double_eq(fake_host__metric("wshub_echo_messages_total", text_label), FAKE_MAX_OUT);
}
END_TEST

/* Only our path is echoed: the JSON path still answers with the core's unknown_type error. */
START_TEST(test_echo_not_on_json_path)
{
    fake_conn_t *c = fake_host__conn_new(NULL, NULL, NULL);
    ck_assert_int_eq(fake_host__deliver(c, "{\"type\":\"hello\",\"id\":3}"), WSHUB_ERR_NOTFOUND);
    ck_assert_str_eq(fake_host__last_out(c),
                     "{\"type\":\"error\",\"id\":3,\"code\":\"unknown_type\","
                     "\"message\":\"unknown message type \\\"hello\\\"\"}");
    ck_assert_double_eq(fake_host__metric("wshub_echo_messages_total", text_label), 0);
}
END_TEST

START_TEST(test_echo_metric_registered)
{
    ck_assert(!isnan(fake_host__metric("wshub_echo_messages_total", text_label)));
    ck_assert(isnan(fake_host__metric("wshub_echo_nonexistent_total", NULL)));
}
END_TEST

Suite *echo_suite(void);

Suite *echo_suite(void)
{
    Suite *s = suite_create("echo");
    TCase *tc;

    tc = tcase_create("registration");
    tcase_add_checked_fixture(tc, setup_default, teardown);
    tcase_add_test(tc, test_echo_registers_default_path);
    tcase_add_test(tc, test_echo_metric_registered);
    suite_add_tcase(s, tc);

    tc = tcase_create("options");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_echo_registers_configured_path);
    tcase_add_test(tc, test_echo_refuses_unknown_option);
    tcase_add_test(tc, test_echo_refuses_wrong_option_type);
    tcase_add_loop_test(tc, test_echo_init_fails_on_unusable_path, 0,
                        (int)(sizeof(bad_paths) / sizeof(bad_paths[0])));
    suite_add_tcase(s, tc);

    tc = tcase_create("text");
    tcase_add_checked_fixture(tc, setup_default, teardown);
    tcase_add_loop_test(tc, test_echo_text_verbatim, 0, (int)(sizeof(texts) / sizeof(texts[0])));
    tcase_add_test(tc, test_echo_large_text);
    suite_add_tcase(s, tc);

    tc = tcase_create("binary");
    tcase_add_checked_fixture(tc, setup_default, teardown);
    tcase_add_test(tc, test_echo_binary_stays_binary);
    tcase_add_test(tc, test_echo_empty_binary);
    suite_add_tcase(s, tc);

    tc = tcase_create("metrics");
    tcase_add_checked_fixture(tc, setup_default, teardown);
    tcase_add_test(tc, test_echo_counts_and_isolates_connections);
    tcase_add_test(tc, test_echo_failed_send_not_counted);
    suite_add_tcase(s, tc);

    tc = tcase_create("paths");
    tcase_add_checked_fixture(tc, setup_default, teardown);
    tcase_add_test(tc, test_echo_not_on_json_path);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(echo_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
