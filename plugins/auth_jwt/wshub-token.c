/*
 * wshub-token: prints an HS256 JWT for the auth_jwt plugin, for development and tests.
 *
 *     wshub-token --secret S --tenant acme --user alice [--roles admin,dev] [--ttl 3600]
 *                 [--issuer I] [--audience A] [--meta '{"plan":"pro"}']
 *
 * The claims follow the plugin's defaults: tenant_id, sub, roles (array), meta (object), iat,
 * exp (omitted with --ttl 0), iss and aud when given. --tenant-claim/--user-claim/--roles-claim/
 * --meta-claim match a server configured with other claim names. --secret-file and
 * --secret-env keep the secret out of the shell history and the process list.
 *
 * Production tokens come from your identity provider; this tool exists so that a developer can
 * connect to a local server in one command.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <json-c/json.h>
#include <jwt.h>

#define MAX_SECRET_FILE (64 * 1024)
#define MAX_TTL_S       (10LL * 365 * 24 * 3600)

static void usage(FILE *f)
{
    fputs("usage: wshub-token (--secret S | --secret-file F | --secret-env VAR)\n"
          "                   --tenant T --user U [--roles a,b] [--ttl SECONDS]\n"
          "                   [--issuer I] [--audience A] [--meta JSON]\n"
          "                   [--tenant-claim C] [--user-claim C] [--roles-claim C]\n"
          "                   [--meta-claim C]\n"
          "Prints an HS256 JWT for the auth_jwt plugin. --ttl 0 omits exp (default 3600).\n",
          f);
}

/* Reads the secret file (a trailing newline is not part of the secret, as in the plugin). */
static char *read_secret_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    size_t n;

    if (!f) {
        fprintf(stderr, "wshub-token: cannot read %s: %s\n", path, strerror(errno));
        return NULL;
    }
    buf = malloc(MAX_SECRET_FILE + 1);
    if (!buf) {
        fclose(f);
        return NULL;
    }
    n = fread(buf, 1, MAX_SECRET_FILE + 1, f);
    fclose(f);
    if (n > MAX_SECRET_FILE) {
        fprintf(stderr, "wshub-token: %s is larger than %d bytes\n", path, MAX_SECRET_FILE);
        free(buf);
        return NULL;
    }
    while (n > 0 &&
           (buf[n - 1] == '\n' || buf[n - 1] == '\r' || buf[n - 1] == ' ' || buf[n - 1] == '\t'))
        n--;
    buf[n] = '\0';
    return buf;
}

/* Adds the comma-separated roles as a JSON array of non-empty strings. */
static void add_roles(json_object *claims, const char *name, const char *list)
{
    json_object *arr = json_object_new_array();
    const char *p = list;

    while (*p) {
        const char *end = strchr(p, ',');
        size_t n = end ? (size_t)(end - p) : strlen(p);
        if (n > 0)
            json_object_array_add(arr, json_object_new_string_len(p, (int)n));
        p += n;
        if (*p == ',')
            p++;
    }
    json_object_object_add(claims, name, arr);
}

int main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"secret", required_argument, NULL, 's'},
        {"secret-file", required_argument, NULL, 'f'},
        {"secret-env", required_argument, NULL, 'e'},
        {"tenant", required_argument, NULL, 't'},
        {"user", required_argument, NULL, 'u'},
        {"roles", required_argument, NULL, 'r'},
        {"ttl", required_argument, NULL, 'l'},
        {"issuer", required_argument, NULL, 'i'},
        {"audience", required_argument, NULL, 'a'},
        {"meta", required_argument, NULL, 'm'},
        {"tenant-claim", required_argument, NULL, 'T'},
        {"user-claim", required_argument, NULL, 'U'},
        {"roles-claim", required_argument, NULL, 'R'},
        {"meta-claim", required_argument, NULL, 'M'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    const char *secret_arg = NULL, *secret_file = NULL, *secret_env = NULL;
    const char *tenant = NULL, *user = NULL, *roles = NULL, *issuer = NULL, *audience = NULL;
    const char *meta = NULL;
    const char *tenant_claim = "tenant_id", *user_claim = "sub", *roles_claim = "roles";
    const char *meta_claim = "meta";
    long long ttl = 3600;
    char *secret = NULL, *end, *token = NULL;
    json_object *claims = NULL;
    jwt_t *jwt = NULL;
    time_t now = time(NULL);
    int opt, n_secrets, rc = 1;

    while ((opt = getopt_long(argc, argv, "h", longopts, NULL)) != -1) {
        switch (opt) {
        case 's':
            secret_arg = optarg;
            break;
        case 'f':
            secret_file = optarg;
            break;
        case 'e':
            secret_env = optarg;
            break;
        case 't':
            tenant = optarg;
            break;
        case 'u':
            user = optarg;
            break;
        case 'r':
            roles = optarg;
            break;
        case 'i':
            issuer = optarg;
            break;
        case 'a':
            audience = optarg;
            break;
        case 'm':
            meta = optarg;
            break;
        case 'T':
            tenant_claim = optarg;
            break;
        case 'U':
            user_claim = optarg;
            break;
        case 'R':
            roles_claim = optarg;
            break;
        case 'M':
            meta_claim = optarg;
            break;
        case 'l':
            errno = 0;
            ttl = strtoll(optarg, &end, 10);
            if (errno || *end || end == optarg || ttl < 0 || ttl > MAX_TTL_S) {
                fprintf(stderr, "wshub-token: --ttl must be 0..%lld seconds\n", MAX_TTL_S);
                return 2;
            }
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    n_secrets = (secret_arg != NULL) + (secret_file != NULL) + (secret_env != NULL);
    if (optind != argc || n_secrets != 1 || !tenant || !*tenant || !user) {
        if (n_secrets > 1)
            fputs("wshub-token: give only one of --secret, --secret-file, --secret-env\n", stderr);
        usage(stderr);
        return 2;
    }
    if (secret_arg) {
        secret = strdup(secret_arg);
    } else if (secret_file) {
        secret = read_secret_file(secret_file);
    } else {
        const char *v = getenv(secret_env);
        if (!v) {
            fprintf(stderr, "wshub-token: environment variable %s is not set\n", secret_env);
            return 1;
        }
        secret = strdup(v);
    }
    if (!secret)
        goto out;
    if (!*secret) {
        fputs("wshub-token: the secret is empty\n", stderr);
        goto out;
    }
    if (strlen(secret) < 32)
        fputs("wshub-token: warning: the secret is shorter than 32 bytes (RFC 7518 3.2)\n", stderr);

    claims = json_object_new_object();
    json_object_object_add(claims, tenant_claim, json_object_new_string(tenant));
    json_object_object_add(claims, user_claim, json_object_new_string(user));
    if (roles)
        add_roles(claims, roles_claim, roles);
    if (meta) {
        json_object *m = json_tokener_parse(meta);
        if (!m || !json_object_is_type(m, json_type_object)) {
            json_object_put(m);
            fputs("wshub-token: --meta must be a JSON object\n", stderr);
            rc = 2;
            goto out;
        }
        json_object_object_add(claims, meta_claim, m);
    }
    if (issuer)
        json_object_object_add(claims, "iss", json_object_new_string(issuer));
    if (audience)
        json_object_object_add(claims, "aud", json_object_new_string(audience));
    json_object_object_add(claims, "iat", json_object_new_int64((int64_t)now));
    if (ttl > 0)
        json_object_object_add(claims, "exp", json_object_new_int64((int64_t)now + ttl));

    if (jwt_new(&jwt) != 0 ||
        jwt_add_grants_json(jwt, json_object_to_json_string_ext(claims, JSON_C_TO_STRING_PLAIN)) !=
            0 ||
        jwt_set_alg(jwt, JWT_ALG_HS256, (const unsigned char *)secret, (int)strlen(secret)) != 0) {
        fputs("wshub-token: cannot build the token\n", stderr);
        goto out;
    }
    token = jwt_encode_str(jwt);
    if (!token) {
        fputs("wshub-token: cannot sign the token\n", stderr);
        goto out;
    }
    printf("%s\n", token);
    rc = 0;
out:
    free(token);
    jwt_free(jwt);
    json_object_put(claims);
    if (secret) {
        memset(secret, 0, strlen(secret));
        free(secret);
    }
    return rc;
}
