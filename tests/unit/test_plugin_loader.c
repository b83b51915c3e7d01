/*
 * Loader tests: the real wshubd loads the fixtures of tests/plugins/ (built into
 * WSHUB_TEST_PLUGIN_DIR) and each refusal must produce its exact log line and exit code; the
 * accepted cases must start, serve and shut down cleanly. The loader runs in its own process, as
 * in production, so a fixture that misbehaves cannot take the test runner down with it.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define WSHUBD_PATH WSHUB_BUILD_ROOT "/core/wshubd"
#define FIXTURES    WSHUB_TEST_PLUGIN_DIR

typedef struct run {
    int exit_code; /* -1: killed by the test */
    char log[65536];
    size_t log_len;
} run_t;

static char g_dir[256];

static void setup(void)
{
    snprintf(g_dir, sizeof(g_dir), "/tmp/wshub-loader-XXXXXX");
    ck_assert_ptr_nonnull(mkdtemp(g_dir));
}

static void teardown(void)
{
    char cmd[300];
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", g_dir);
    ck_assert_int_eq(system(cmd), 0);
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Reads whatever the child wrote to its stderr pipe within `ms`. */
static void drain(int fd, run_t *r, int ms)
{
    struct pollfd pfd = {fd, POLLIN, 0};
    while (poll(&pfd, 1, ms) > 0) {
        ssize_t n = read(fd, r->log + r->log_len, sizeof(r->log) - 1 - r->log_len);
        if (n <= 0)
            break;
        r->log_len += (size_t)n;
        r->log[r->log_len] = '\0';
        ms = 0;
    }
}

/*
 * Runs wshubd on `plugins_yaml` (the `plugins:` list). When the server comes up (port file),
 * it is stopped with SIGTERM; a server that exits on its own (a refusal) is just waited for.
 * Everything is bounded: a server still running after 10 s is killed.
 */
static void run_wshubd(const char *plugins_yaml, run_t *r)
{
    char cfg[512], port[512];
    int pipefd[2];
    pid_t pid;
    FILE *f;
    uint64_t deadline;
    bool signalled = false;
    int status;

    memset(r, 0, sizeof(*r));
    snprintf(cfg, sizeof(cfg), "%s/wshub.yaml", g_dir);
    snprintf(port, sizeof(port), "%s/ports", g_dir);
    unlink(port);
    f = fopen(cfg, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f,
            "server:\n  listen: 127.0.0.1:0\n  shutdown_timeout: 2s\nadmin:\n  listen: "
            "127.0.0.1:0\nplugin_dir: %s\nplugins:\n%s",
            FIXTURES, plugins_yaml);
    fclose(f);
    ck_assert_int_eq(pipe(pipefd), 0);
    pid = fork();
    ck_assert_int_ge(pid, 0);
    if (pid == 0) {
        dup2(pipefd[1], STDERR_FILENO);
        close(pipefd[0]);
        close(pipefd[1]);
        execl(WSHUBD_PATH, "wshubd", "-c", cfg, "--port-file", port, (char *)NULL);
        _exit(127);
    }
    close(pipefd[1]);
    deadline = now_ms() + 10000;
    for (;;) {
        pid_t w = waitpid(pid, &status, WNOHANG);
        if (w == pid)
            break;
        drain(pipefd[0], r, 20);
        if (!signalled && access(port, F_OK) == 0) {
            kill(pid, SIGTERM);
            signalled = true;
        }
        if (now_ms() > deadline) {
            kill(pid, SIGKILL);
            waitpid(pid, &status, 0);
            drain(pipefd[0], r, 0);
            close(pipefd[0]);
            r->exit_code = -1;
            return;
        }
    }
    drain(pipefd[0], r, 100);
    close(pipefd[0]);
    r->exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

#define ASSERT_LOG(r, needle)                                                                      \
    ck_assert_msg(strstr((r)->log, needle), "log lacks \"%s\":\n%s", needle, (r)->log)

/* One refusal per row: the plugin entry, the exact log text, the exit code. */
static const struct refusal {
    const char *name;
    const char *entry;
    const char *line;
} refusals[] = {
    {"bad_magic", "  - name: bad_magic\n",
     "ERR    [core] plugin bad_magic: " FIXTURES "/bad_magic.so: bad magic 0x"},
    {"abi_major2", "  - name: abi_major2\n",
     "ERR    [core] plugin abi_major2: built for SDK ABI 2.0, this server has 1.0"},
    {"newer_minor", "  - name: newer_minor\n",
     "ERR    [core] plugin newer_minor: built for SDK ABI 1.1, this server has 1.0"},
    {"no_init", "  - name: no_init\n",
     "ERR    [core] plugin no_init: descriptor has no init function"},
    {"init_fails", "  - name: init_fails\n",
     "ERR    [core] plugin init_fails: init failed: boom: 42"},
    {"no_symbol", "  - name: no_symbol\n",
     "ERR    [core] plugin no_symbol: " FIXTURES
     "/no_symbol.so does not export wshub_plugin_entry (not a wshub plugin)"},
    {"missing_file", "  - name: nothere\n", "ERR    [core] plugin nothere: cannot load "},
    {"name_mismatch", "  - name: dup_a\n",
     "ERR    [core] plugin dup_a: " FIXTURES "/dup_a.so is plugin 'dup', not 'dup_a'"},
    {"needs_missing", "  - name: needs_missing\n",
     "ERR    [core] plugin needs_missing: requires service 'nope', which no plugin provides"},
    {"cycle", "  - name: cycle_a\n  - name: cycle_b\n",
     "ERR    [core] plugins: dependency cycle: cycle_a -> cycle_b -> cycle_a"},
    {"bad_option", "  - name: counter\n    config: {nope: 1}\n", "plugin counter: option"},
};

START_TEST(test_loader_refuses)
{
    const struct refusal *t = &refusals[_i];
    run_t r;

    run_wshubd(t->entry, &r);
    ck_assert_msg(r.exit_code == 2, "%s: exit %d, log:\n%s", t->name, r.exit_code, r.log);
    ASSERT_LOG(&r, t->line);
    /* Nothing was served: no listener line. */
    ck_assert_msg(!strstr(r.log, "listening on ws://"), "%s started serving", t->name);
}
END_TEST

START_TEST(test_loader_duplicate_name_in_config)
{
    run_t r;

    run_wshubd("  - name: dup\n    path: " FIXTURES "/dup_a.so\n  - name: dup\n    path: " FIXTURES
               "/dup_b.so\n",
               &r);
    ck_assert_int_eq(r.exit_code, 2);
    ASSERT_LOG(&r, "duplicate plugin 'dup'");
}
END_TEST

START_TEST(test_loader_optional_missing_continues)
{
    run_t r;

    run_wshubd("  - name: nothere\n    optional: true\n  - name: counter\n", &r);
    ck_assert_msg(r.exit_code == 0, "exit %d, log:\n%s", r.exit_code, r.log);
    ASSERT_LOG(&r, "plugin nothere: cannot load ");
    ASSERT_LOG(&r, "plugin nothere: optional, continuing without it");
    ASSERT_LOG(&r, "plugin counter 1.0 loaded from");
    ASSERT_LOG(&r, "ready: 1 plugins");
}
END_TEST

START_TEST(test_loader_optional_init_failure_continues)
{
    run_t r;

    run_wshubd("  - name: init_fails\n    optional: true\n", &r);
    ck_assert_msg(r.exit_code == 0, "exit %d, log:\n%s", r.exit_code, r.log);
    ASSERT_LOG(&r, "plugin init_fails: init failed: boom: 42");
    ASSERT_LOG(&r, "ready: 0 plugins");
}
END_TEST

START_TEST(test_loader_orders_by_services)
{
    run_t r;
    const char *consumer, *provider;

    /* consumer is listed first but requires provider's service: provider is initialised
     * first, and consumer's init (which calls the service) succeeds. */
    run_wshubd("  - name: consumer\n  - name: provider\n", &r);
    ck_assert_msg(r.exit_code == 0, "exit %d, log:\n%s", r.exit_code, r.log);
    provider = strstr(r.log, "plugin provider 1.0 loaded");
    consumer = strstr(r.log, "plugin consumer 1.0 loaded");
    ck_assert_ptr_nonnull(provider);
    ck_assert_ptr_nonnull(consumer);
    ck_assert_msg(provider < consumer, "provider not initialised first:\n%s", r.log);
}
END_TEST

START_TEST(test_loader_registration_outside_init)
{
    run_t r;

    run_wshubd("  - name: late_register\n", &r);
    ck_assert_msg(r.exit_code == 0, "exit %d, log:\n%s", r.exit_code, r.log);
    ASSERT_LOG(&r, "ERR    [core] plugin late_register: hook_add called outside init "
                   "(WSHUB_ERR_STATE)");
    ASSERT_LOG(&r, "[plugin:late_register] late hook_add: WSHUB_ERR_STATE");
}
END_TEST

START_TEST(test_loader_check_config_does_not_run_plugins)
{
    char cmd[1024];
    char cfg[300];
    FILE *f;
    int rc;

    /* init_fails would fail if its init ran: --check-config must not run plugin code. */
    snprintf(cfg, sizeof(cfg), "%s/check.yaml", g_dir);
    f = fopen(cfg, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "plugin_dir: %s\nplugins:\n  - name: init_fails\n  - name: provider\n", FIXTURES);
    fclose(f);
    snprintf(cmd, sizeof(cmd), "'%s' --check-config '%s' >/dev/null 2>&1", WSHUBD_PATH, cfg);
    rc = system(cmd);
    ck_assert_int_eq(WEXITSTATUS(rc), 0);
    /* ...but a refusal found from the descriptor alone is reported. */
    f = fopen(cfg, "w");
    ck_assert_ptr_nonnull(f);
    fprintf(f, "plugin_dir: %s\nplugins:\n  - name: abi_major2\n", FIXTURES);
    fclose(f);
    rc = system(cmd);
    ck_assert_int_eq(WEXITSTATUS(rc), 2);
}
END_TEST

static Suite *plugin_loader_suite(void)
{
    Suite *s = suite_create("plugin_loader");
    TCase *tc;

    tc = tcase_create("refusals");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 30);
    tcase_add_loop_test(tc, test_loader_refuses, 0, (int)(sizeof(refusals) / sizeof(refusals[0])));
    suite_add_tcase(s, tc);
#define TC(name, fn)                                                                               \
    tc = tcase_create(name);                                                                       \
    tcase_add_checked_fixture(tc, setup, teardown);                                                \
    tcase_set_timeout(tc, 30);                                                                     \
    tcase_add_test(tc, fn);                                                                        \
    suite_add_tcase(s, tc)
    TC("duplicate_name", test_loader_duplicate_name_in_config);
    TC("optional_missing", test_loader_optional_missing_continues);
    TC("optional_init_failure", test_loader_optional_init_failure_continues);
    TC("dependency_order", test_loader_orders_by_services);
    TC("registration_outside_init", test_loader_registration_outside_init);
    TC("check_config", test_loader_check_config_does_not_run_plugins);
#undef TC
    return s;
}

int main(void)
{
    SRunner *sr = srunner_create(plugin_loader_suite());
    int failed;

    srunner_run_all(sr, CK_NORMAL);
    failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
