/*
 * wshubd: command line, signals, wiring. No logic lives here.
 *
 *   wshubd [-c FILE] [--port-file PATH]     serve (default config: etc/wshub.yaml when it
 *                                           exists, else the embedded default)
 *   wshubd --check-config [FILE]            validate the config and every plugin's options
 *   wshubd --plugin-help [FILE]             describe the configured plugins' options
 *   wshubd --version                        wshub version and SDK ABI
 *
 * Exit codes: 0 clean shutdown, 1 runtime failure, 2 configuration or usage error.
 */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <event2/thread.h>

#include <wshub/sdk.h>

#include "config.h"
#include "log.h"
#include "plugin_loader.h"
#include "server.h"
#include "wshub_build.h"

extern char **environ;
extern const char wshub_default_config[];
extern const unsigned long wshub_default_config_len;

#define DEFAULT_CONFIG "etc/wshub.yaml"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: wshubd [-c FILE] [--port-file PATH]\n"
            "       wshubd --check-config [FILE]\n"
            "       wshubd --plugin-help [FILE]\n"
            "       wshubd --version\n"
            "\n"
            "  -c, --config FILE     YAML configuration (default: " DEFAULT_CONFIG " if present,\n"
            "                        else the embedded single-node default)\n"
            "      --check-config    validate the configuration and plugin options, then exit\n"
            "                        (0 valid, 2 invalid)\n"
            "      --plugin-help     list the configured plugins and their options\n"
            "      --port-file PATH  write '<name> <host>:<port>' per bound listener (server,\n"
            "                        admin) once listening\n"
            "  -v, --version         print the version and the SDK ABI\n"
            "  -h, --help            this text\n"
            "\n"
            "Environment: WSHUB_<SECTION>_<KEY> overrides a config key (e.g.\n"
            "WSHUB_SERVER_MAX_CONNECTIONS=50000), WSHUB_PLUGIN_DIR overrides plugin_dir.\n");
}

static bool file_exists(const char *p)
{
    struct stat st;
    return stat(p, &st) == 0;
}

static int load_config(config_t *cfg, const char *path)
{
    char err[1024];
    int rc;

    if (path)
        rc = config__load_file(cfg, path, environ, err, sizeof(err));
    else
        rc = config__load_string(cfg, "<embedded>", wshub_default_config, wshub_default_config_len,
                                 environ, err, sizeof(err));
    if (rc != 0) {
        fprintf(stderr, "wshubd: %s\n", err);
        return 2;
    }
    return 0;
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"config", required_argument, NULL, 'c'},
        {"check-config", no_argument, NULL, 'C'},
        {"plugin-help", no_argument, NULL, 'P'},
        {"port-file", required_argument, NULL, 'p'},
        {"version", no_argument, NULL, 'v'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *config_path = NULL, *port_file = NULL;
    bool check = false, describe = false;
    config_t cfg;
    int c, rc;

    while ((c = getopt_long(argc, argv, "c:vh", opts, NULL)) != -1) {
        switch (c) {
        case 'c':
            config_path = optarg;
            break;
        case 'C':
            check = true;
            break;
        case 'P':
            describe = true;
            break;
        case 'p':
            port_file = optarg;
            break;
        case 'v':
            printf("wshubd %s (SDK ABI %d.%d)\n", WSHUB_VERSION, WSHUB_SDK_ABI_MAJOR,
                   WSHUB_SDK_ABI_MINOR);
            return 0;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    /* --check-config FILE: the file may follow as a plain argument. */
    if ((check || describe) && optind < argc && !config_path)
        config_path = argv[optind++];
    if (optind < argc) {
        fprintf(stderr, "wshubd: unexpected argument '%s'\n", argv[optind]);
        usage(stderr);
        return 2;
    }
    if (!config_path && file_exists(DEFAULT_CONFIG))
        config_path = DEFAULT_CONFIG;

    memset(&cfg, 0, sizeof(cfg));
    rc = load_config(&cfg, config_path);
    if (rc)
        return rc;
    log__set_level(cfg.log.level);
    log__hook_libevent();

    if (describe) {
        rc = plugin_loader__describe_all(&cfg, stdout);
        config__free(&cfg);
        return rc ? 2 : 0;
    }
    if (check) {
        /* Plugins are opened and their options checked, but no plugin code runs. */
        rc = plugin_loader__check_all(&cfg);
        if (rc == 0)
            printf("%s: configuration OK (%zu plugins)\n", cfg.file, cfg.n_plugins);
        config__free(&cfg);
        return rc ? 2 : 0;
    }

    /* nats.c's libevent adapter activates events from its own threads. */
    if (evthread_use_pthreads() != 0) {
        fprintf(stderr, "wshubd: evthread_use_pthreads failed\n");
        return 1;
    }
    signal(SIGPIPE, SIG_IGN);
    rc = server__run(&cfg, port_file);
    config__free(&cfg);
    return rc;
}
