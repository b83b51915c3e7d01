/*
 * test_hello: the SDK template plugin (sdk/template/hello.c) against the fake host, so the code
 * plugin authors copy keeps working: option default and override, the hello route's ack, the
 * per-connection counter, escaping of the user id, the CONN_OPEN hook and the metric.
 */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include <wshub/sdk.h>

#include "fake_host.h"

extern const wshub_plugin_desc_t wshub_plugin_entry;

static void teardown(void)
{
    fake_host__unload();
    ck_assert(!fake_host__log_contains("leaked"));
}

static fake_conn_t *open_conn(const char *tenant, const char *user)
{
    fake_conn_t *c = fake_host__conn_new(tenant, user, NULL);
    ck_assert_ptr_nonnull(c);
    ck_assert_int_eq(fake_host__fire_open(c), WSHUB_OK);
    fake_host__conn_clear_out(c); /* drop the welcome */
    return c;
}

START_TEST(test_hello_default_greeting)
{
    fake_conn_t *c;

    ck_assert_int_eq(fake_host__load(&wshub_plugin_entry, NULL), WSHUB_OK);
    ck_assert(fake_host__has_route("hello"));
    c = open_conn("acme", "alice");
    ck_assert_int_eq(fake_host__deliver(c, "{\"type\":\"hello\",\"id\":1}"), WSHUB_OK);
    ck_assert_str_eq(fake_host__last_out(c),
                     "{\"type\":\"ack\",\"id\":1,\"greeting\":\"Hello, alice!\",\"count\":1}");
    ck_assert_double_eq(fake_host__metric("hello_greetings_total", NULL), 1);
}
END_TEST

START_TEST(test_hello_configured_greeting)
{
    fake_conn_t *c;

    ck_assert_int_eq(fake_host__load(&wshub_plugin_entry, "greeting: Bonjour\n"), WSHUB_OK);
    ck_assert(fake_host__log_contains("INFO greeting with \"Bonjour\""));
    c = open_conn(NULL, NULL);
    ck_assert_int_eq(fake_host__deliver(c, "{\"type\":\"hello\",\"id\":\"x\"}"), WSHUB_OK);
    ck_assert_str_eq(fake_host__last_out(c), "{\"type\":\"ack\",\"id\":\"x\",\"greeting\":"
                                             "\"Bonjour, anonymous!\",\"count\":1}");
}
END_TEST

START_TEST(test_hello_unknown_option_refused)
{
    ck_assert_int_eq(fake_host__load(&wshub_plugin_entry, "greting: Hi\n"), WSHUB_ERR_INVAL);
    ck_assert_ptr_nonnull(strstr(fake_host__last_error(), "did you mean 'greeting'"));
}
END_TEST

/* The count is per connection: state lives in conn_state, not in a global. */
START_TEST(test_hello_counts_per_connection)
{
    fake_conn_t *a, *b;

    ck_assert_int_eq(fake_host__load(&wshub_plugin_entry, NULL), WSHUB_OK);
    a = open_conn("acme", "alice");
    b = open_conn("acme", "bob");
    ck_assert_int_eq(fake_host__deliver(a, "{\"type\":\"hello\"}"), WSHUB_OK);
    ck_assert_int_eq(fake_host__deliver(a, "{\"type\":\"hello\"}"), WSHUB_OK);
    ck_assert_int_eq(fake_host__deliver(b, "{\"type\":\"hello\"}"), WSHUB_OK);
    ck_assert_str_eq(fake_host__last_out(a),
                     "{\"type\":\"ack\",\"greeting\":\"Hello, alice!\",\"count\":2}");
    ck_assert_str_eq(fake_host__last_out(b),
                     "{\"type\":\"ack\",\"greeting\":\"Hello, bob!\",\"count\":1}");
    ck_assert_double_eq(fake_host__metric("hello_greetings_total", NULL), 3);
}
END_TEST

/* The CONN_OPEN hook stamps the connection's state with the fake clock. */
START_TEST(test_hello_open_hook_fills_state)
{
    fake_conn_t *c;
    uint64_t opened;

    ck_assert_int_eq(fake_host__load(&wshub_plugin_entry, NULL), WSHUB_OK);
    fake_host__advance(1234);
    c = open_conn(NULL, "carol");
    ck_assert_ptr_nonnull(c->state);
    memcpy(&opened, c->state, sizeof(opened)); /* hello_conn_t starts with opened_ms */
    ck_assert_uint_eq(opened, fake_host__now());
}
END_TEST

/* User ids come from tokens: quotes, backslashes and control characters must be escaped. */
START_TEST(test_hello_escapes_user)
{
    fake_conn_t *c;

    ck_assert_int_eq(fake_host__load(&wshub_plugin_entry, NULL), WSHUB_OK);
    c = open_conn("acme", "a\"b\\c\n");
    ck_assert_int_eq(fake_host__deliver(c, "{\"type\":\"hello\",\"id\":2}"), WSHUB_OK);
    ck_assert_str_eq(fake_host__last_out(c), "{\"type\":\"ack\",\"id\":2,\"greeting\":"
                                             "\"Hello, a\\\"b\\\\c\\u000a!\",\"count\":1}");
    ck_assert(!fake_host__log_contains("is not a JSON"));
}
END_TEST

Suite *hello_suite(void);

Suite *hello_suite(void)
{
    Suite *s = suite_create("hello");
    TCase *tc;

    tc = tcase_create("options");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_hello_default_greeting);
    tcase_add_test(tc, test_hello_configured_greeting);
    tcase_add_test(tc, test_hello_unknown_option_refused);
    suite_add_tcase(s, tc);

    tc = tcase_create("state");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_hello_counts_per_connection);
    tcase_add_test(tc, test_hello_open_hook_fills_state);
    suite_add_tcase(s, tc);

    tc = tcase_create("escaping");
    tcase_add_checked_fixture(tc, NULL, teardown);
    tcase_add_test(tc, test_hello_escapes_user);
    suite_add_tcase(s, tc);

    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(hello_suite());
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE;
}
