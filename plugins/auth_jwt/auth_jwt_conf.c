/*
 * auth_jwt configuration: turns the validated `config:` node into an immutable ajwt_conf_t.
 *
 * The loader has already checked every option's type and inserted the defaults, so this file
 * checks meaning: the algorithm allow-list (never `none`), that every allowed algorithm has a
 * key that can verify it, the HMAC secret (exactly one of secret, secret_file, secret_env), the
 * PEM public key, and the JWKS file. JWKS keys are rebuilt with OpenSSL 3 from their public
 * numbers (RSA n/e, EC x/y) and written as SubjectPublicKeyInfo PEM, because libjwt 1.10.2
 * verifies only with a PEM and has no JWKS support of its own.
 *
 * Every error names its option (and where it is in the YAML) through host->set_error, and
 * every path out frees what it built; reload uses the same function, so a bad new file keeps
 * the old configuration.
 */
#include "auth_jwt.h"

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <json-c/json.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

/* Files an operator points us at; anything larger is a mistake. */
#define MAX_SECRET_FILE (64u * 1024u)
#define MAX_KEY_FILE    (256u * 1024u)
#define MAX_JWKS_FILE   (1024u * 1024u)
#define MAX_JWKS_KEYS   256u
/* RSA keys outside this range are refused: too weak, or too slow to verify per upgrade. */
#define MIN_RSA_BITS 2048
#define MAX_RSA_BITS 8192
/* RFC 7518 §3.2: an HMAC key at least as long as the hash output (32 bytes for HS256). */
#define MIN_SECRET_LEN 32u

/* Everything the loading functions need to report an error. */
typedef struct conf_ctx {
    wshub_plugin_t *self;
    const wshub_host_api_t *host;
    const wshub_cfg_t *cfg;
} conf_ctx_t;

static const struct {
    const char *name;
    jwt_alg_t alg;
} alg_names[] = {
    {"HS256", JWT_ALG_HS256}, {"HS384", JWT_ALG_HS384}, {"HS512", JWT_ALG_HS512},
    {"RS256", JWT_ALG_RS256}, {"RS384", JWT_ALG_RS384}, {"RS512", JWT_ALG_RS512},
    {"ES256", JWT_ALG_ES256}, {"ES384", JWT_ALG_ES384}, {"ES512", JWT_ALG_ES512},
};

ajwt_family_t auth_jwt_conf__family(jwt_alg_t alg)
{
    switch (alg) {
    case JWT_ALG_HS256:
    case JWT_ALG_HS384:
    case JWT_ALG_HS512:
        return AJWT_FAM_HMAC;
    case JWT_ALG_RS256:
    case JWT_ALG_RS384:
    case JWT_ALG_RS512:
        return AJWT_FAM_RSA;
    case JWT_ALG_ES256:
        return AJWT_FAM_EC256;
    case JWT_ALG_ES384:
        return AJWT_FAM_EC384;
    case JWT_ALG_ES512:
        return AJWT_FAM_EC521;
    default:
        return AJWT_FAM_NONE;
    }
}

/* The allow-list name of an algorithm (for messages). */
static const char *alg_name(jwt_alg_t alg)
{
    for (size_t i = 0; i < sizeof(alg_names) / sizeof(alg_names[0]); i++)
        if (alg_names[i].alg == alg)
            return alg_names[i].name;
    return "?";
}

/* Human name of a key family, used in "no key for ..." messages. */
static const char *family_name(ajwt_family_t f)
{
    switch (f) {
    case AJWT_FAM_HMAC:
        return "HMAC secret";
    case AJWT_FAM_RSA:
        return "RSA key";
    case AJWT_FAM_EC256:
        return "EC P-256 key";
    case AJWT_FAM_EC384:
        return "EC P-384 key";
    case AJWT_FAM_EC521:
        return "EC P-521 key";
    default:
        return "key";
    }
}

/*
 * Reports a configuration error for option `opt`: "<file:line:col>: option <opt>: <text>". The
 * location is the option's node when present, else the plugin's config node. Always returns
 * WSHUB_ERR_INVAL so callers can `return conf_fail(...)`.
 */
static int conf_fail(const conf_ctx_t *cx, const char *opt, const char *fmt, ...)
    WSHUB_PRINTF(3, 4);
static int conf_fail(const conf_ctx_t *cx, const char *opt, const char *fmt, ...)
{
    const wshub_cfg_t *node = cx->host->cfg_get(cx->cfg, opt);
    char text[400];
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    cx->host->set_error(cx->self, "%s: option %s: %s", cx->host->cfg_where(node ? node : cx->cfg),
                        opt, text);
    return WSHUB_ERR_INVAL;
}

/* Out of memory while loading: reported like any other load failure. */
static int conf_nomem(const conf_ctx_t *cx)
{
    cx->host->set_error(cx->self, "out of memory while loading the configuration");
    return WSHUB_ERR_NOMEM;
}

/*
 * Reads a whole (small) file. Refuses anything that is not a regular file or is larger than
 * `max` bytes, so a typo pointing at /dev/zero or a log file fails fast. The buffer gets a NUL
 * after the data. @return 0, or an errno value (EFBIG when too large, EINVAL when not a file).
 */
static int read_file(const char *path, size_t max, char **out, size_t *out_len)
{
    struct stat st;
    FILE *f;
    char *buf;
    size_t n;
    int err;

    *out = NULL;
    *out_len = 0;
    f = fopen(path, "rb");
    if (!f)
        return errno ? errno : EIO;
    if (fstat(fileno(f), &st) != 0) {
        err = errno ? errno : EIO;
        fclose(f);
        return err;
    }
    if (!S_ISREG(st.st_mode)) {
        fclose(f);
        return EINVAL;
    }
    if (st.st_size < 0 || (uint64_t)st.st_size > max) {
        fclose(f);
        return EFBIG;
    }
    buf = malloc((size_t)st.st_size + 1);
    if (!buf) {
        fclose(f);
        return ENOMEM;
    }
    n = fread(buf, 1, (size_t)st.st_size, f);
    err = ferror(f) ? EIO : 0;
    fclose(f);
    if (err) {
        free(buf);
        return err;
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

/* Text of a read_file error. */
static const char *read_error(int err)
{
    switch (err) {
    case EFBIG:
        return "file too large";
    case EINVAL:
        return "not a regular file";
    default:
        return strerror(err);
    }
}

static char *dup_str(const char *s)
{
    size_t n = strlen(s);
    char *p = malloc(n + 1);

    if (p)
        memcpy(p, s, n + 1);
    return p;
}

static void key_clear(ajwt_key_t *k)
{
    free(k->kid);
    free(k->pem);
    memset(k, 0, sizeof(*k));
}

void auth_jwt_conf__free(ajwt_conf_t *conf)
{
    if (!conf)
        return;
    if (conf->secret) {
        OPENSSL_cleanse(conf->secret, conf->secret_len);
        free(conf->secret);
    }
    for (size_t i = 0; i < conf->n_keys; i++)
        key_clear(&conf->keys[i]);
    free(conf->keys);
    free(conf->issuer);
    free(conf->audience);
    free(conf->tenant_claim);
    free(conf->user_claim);
    free(conf->roles_claim);
    free(conf->metadata_claim);
    free(conf->dev_path_prefix);
    free(conf);
}

/* ------------------------------------------------------------------------------------------ */
/* Algorithms and the HMAC secret                                                              */
/* ------------------------------------------------------------------------------------------ */

/*
 * The allow-list. `none` is refused outright (an unsigned token would be accepted from anyone),
 * and so is any name libjwt cannot verify; names are case-sensitive as in RFC 7518.
 */
static int load_algorithms(const conf_ctx_t *cx, ajwt_conf_t *conf)
{
    const wshub_host_api_t *host = cx->host;
    const wshub_cfg_t *list = host->cfg_get(cx->cfg, "algorithms");
    size_t n = list ? host->cfg_len(list) : 0;

    if (!list || host->cfg_kind(list) != WSHUB_CFG_LIST || n == 0)
        return conf_fail(cx, "algorithms", "must list at least one algorithm (e.g. [HS256])");
    for (size_t i = 0; i < n; i++) {
        const char *s = host->cfg_scalar(host->cfg_at(list, i));
        bool known = false;

        if (!s)
            return conf_fail(cx, "algorithms", "item %zu is not a string", i);
        if (strcasecmp(s, "none") == 0)
            return conf_fail(cx, "algorithms",
                             "'none' is never accepted: unsigned tokens could be forged by "
                             "anyone");
        for (size_t k = 0; k < sizeof(alg_names) / sizeof(alg_names[0]); k++) {
            if (strcmp(s, alg_names[k].name) == 0) {
                conf->algs |= 1u << alg_names[k].alg;
                known = true;
            }
        }
        if (!known)
            return conf_fail(cx, "algorithms",
                             "unsupported algorithm '%.40s' (supported: HS256, HS384, HS512, "
                             "RS256, RS384, RS512, ES256, ES384, ES512)",
                             s);
    }
    return WSHUB_OK;
}

static bool allows_family(const ajwt_conf_t *conf, ajwt_family_t fam)
{
    for (int a = JWT_ALG_HS256; a < JWT_ALG_TERM; a++)
        if ((conf->algs & (1u << a)) && auth_jwt_conf__family((jwt_alg_t)a) == fam)
            return true;
    return false;
}

/* Drops trailing whitespace and newlines (an editor's final newline is not part of a secret). */
static size_t trim_right(const char *s, size_t n)
{
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    return n;
}

/*
 * The HMAC secret, from exactly one of `secret`, `secret_file` or `secret_env`. It is needed
 * only when an HS* algorithm is allowed; given without one it is ignored with a warning. A
 * secret shorter than the hash output is accepted with a loud warning: RFC 7518 requires 32
 * bytes for HS256, and short secrets can be brute-forced offline from any token.
 */
static int load_secret(const conf_ctx_t *cx, ajwt_conf_t *conf)
{
    const wshub_host_api_t *host = cx->host;
    wshub_plugin_t *self = cx->self;
    const char *secret = host->cfg_str(cx->cfg, "secret", NULL);
    const char *file = host->cfg_str(cx->cfg, "secret_file", NULL);
    const char *env = host->cfg_str(cx->cfg, "secret_env", NULL);
    int given = (secret != NULL) + (file != NULL) + (env != NULL);
    const char *opt = secret ? "secret" : file ? "secret_file" : "secret_env";
    char *data = NULL;
    size_t len = 0;

    if (!allows_family(conf, AJWT_FAM_HMAC)) {
        if (given)
            WSHUB_LOG(WSHUB_LOG_WARN, "option %s is ignored: no HS* algorithm in algorithms", opt);
        return WSHUB_OK;
    }
    if (given == 0)
        return conf_fail(cx, "secret",
                         "an HS* algorithm is allowed but no HMAC secret is set (set one of "
                         "secret, secret_file or secret_env)");
    if (given > 1)
        return conf_fail(cx, opt, "set only one of secret, secret_file and secret_env");

    if (secret) {
        len = strlen(secret);
        data = malloc(len + 1);
        if (!data)
            return conf_nomem(cx);
        memcpy(data, secret, len + 1);
    } else if (file) {
        struct stat st;
        int err = read_file(file, MAX_SECRET_FILE, &data, &len);
        if (err)
            return conf_fail(cx, "secret_file", "cannot read '%s': %s", file, read_error(err));
        len = trim_right(data, len);
        if (stat(file, &st) == 0 && (st.st_mode & S_IROTH))
            WSHUB_LOG(WSHUB_LOG_WARN, "secret_file '%s' is readable by every user: chmod o-r",
                      file);
    } else {
        const char *v = *env ? getenv(env) : NULL;
        if (!*env)
            return conf_fail(cx, "secret_env", "the variable name is empty");
        if (!v)
            return conf_fail(cx, "secret_env", "environment variable %s is not set", env);
        len = strlen(v);
        data = malloc(len + 1);
        if (!data)
            return conf_nomem(cx);
        memcpy(data, v, len + 1);
    }
    if (len == 0) {
        OPENSSL_cleanse(data, strlen(data));
        free(data);
        return conf_fail(cx, opt, "the HMAC secret is empty");
    }
    if (len < MIN_SECRET_LEN)
        WSHUB_LOG(WSHUB_LOG_WARN,
                  "the HMAC secret is only %zu bytes: use at least %u random bytes (RFC 7518 "
                  "3.2), short secrets can be guessed offline from any token",
                  len, MIN_SECRET_LEN);
    conf->secret = (unsigned char *)data;
    conf->secret_len = len;
    return WSHUB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Public keys                                                                                 */
/* ------------------------------------------------------------------------------------------ */

/*
 * Classifies a public key: RSA within the accepted sizes, or EC on P-256/P-384/P-521.
 * @return the family, or AJWT_FAM_NONE with a reason in *why.
 */
static ajwt_family_t pkey_family(EVP_PKEY *pkey, int *bits, const char **why)
{
    char group[64];

    *bits = EVP_PKEY_get_bits(pkey);
    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_RSA:
        if (*bits < MIN_RSA_BITS) {
            *why = "RSA keys shorter than 2048 bits are refused";
            return AJWT_FAM_NONE;
        }
        if (*bits > MAX_RSA_BITS) {
            *why = "RSA keys longer than 8192 bits are refused";
            return AJWT_FAM_NONE;
        }
        return AJWT_FAM_RSA;
    case EVP_PKEY_EC:
        if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                           NULL) != 1) {
            *why = "EC key without a named curve";
            return AJWT_FAM_NONE;
        }
        if (strcmp(group, "prime256v1") == 0 || strcmp(group, "P-256") == 0)
            return AJWT_FAM_EC256;
        if (strcmp(group, "secp384r1") == 0 || strcmp(group, "P-384") == 0)
            return AJWT_FAM_EC384;
        if (strcmp(group, "secp521r1") == 0 || strcmp(group, "P-521") == 0)
            return AJWT_FAM_EC521;
        *why = "EC curve other than P-256, P-384 or P-521";
        return AJWT_FAM_NONE;
    default:
        *why = "neither an RSA nor an EC key";
        return AJWT_FAM_NONE;
    }
}

/* Writes `pkey` as a SubjectPublicKeyInfo PEM ("-----BEGIN PUBLIC KEY-----") into k->pem. */
static int pkey_to_pem(EVP_PKEY *pkey, ajwt_key_t *k)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data = NULL;
    long n;
    int rc = WSHUB_ERR;

    if (!bio)
        return WSHUB_ERR_NOMEM;
    if (PEM_write_bio_PUBKEY(bio, pkey) != 1)
        goto out;
    n = BIO_get_mem_data(bio, &data);
    if (n <= 0 || !data)
        goto out;
    k->pem = malloc((size_t)n + 1);
    if (!k->pem) {
        rc = WSHUB_ERR_NOMEM;
        goto out;
    }
    memcpy(k->pem, data, (size_t)n);
    k->pem[n] = '\0';
    k->pem_len = (size_t)n;
    rc = WSHUB_OK;
out:
    BIO_free(bio);
    return rc;
}

/* Appends a key to conf->keys (taking over its strings). */
static int push_key(ajwt_conf_t *conf, ajwt_key_t *k)
{
    ajwt_key_t *v = realloc(conf->keys, (conf->n_keys + 1) * sizeof(*v));

    if (!v)
        return WSHUB_ERR_NOMEM;
    conf->keys = v;
    conf->keys[conf->n_keys++] = *k;
    memset(k, 0, sizeof(*k));
    return WSHUB_OK;
}

/*
 * public_key_file: a PEM "PUBLIC KEY" (SubjectPublicKeyInfo) or a "CERTIFICATE" whose key is
 * used. A private key is refused: the server only ever needs the public half. The key is
 * re-encoded as a PUBLIC KEY PEM, which is what libjwt reads.
 */
static int load_public_key_file(const conf_ctx_t *cx, ajwt_conf_t *conf)
{
    const char *path = cx->host->cfg_str(cx->cfg, "public_key_file", NULL);
    ajwt_key_t k = {0};
    EVP_PKEY *pkey = NULL;
    X509 *cert = NULL;
    BIO *bio = NULL;
    const char *why = NULL;
    char *data = NULL;
    size_t len;
    int err, rc;

    if (!path)
        return WSHUB_OK;
    if (!*path)
        return conf_fail(cx, "public_key_file", "the path is empty");
    err = read_file(path, MAX_KEY_FILE, &data, &len);
    if (err)
        return conf_fail(cx, "public_key_file", "cannot read '%s': %s", path, read_error(err));
    bio = BIO_new_mem_buf(data, (int)len);
    if (!bio) {
        free(data);
        return conf_nomem(cx);
    }
    pkey = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (!pkey) {
        (void)BIO_reset(bio);
        cert = PEM_read_bio_X509(bio, NULL, NULL, NULL);
        if (cert) {
            pkey = X509_get_pubkey(cert);
            X509_free(cert);
        }
    }
    BIO_free(bio);
    if (!pkey) {
        bool is_private = strstr(data, "PRIVATE KEY-----") != NULL;
        OPENSSL_cleanse(data, len);
        free(data);
        return conf_fail(cx, "public_key_file", "'%s' %s", path,
                         is_private ? "holds a private key: give the server only the public key "
                                      "(openssl pkey -pubout)"
                                    : "is not a PEM public key or certificate");
    }
    free(data);
    k.family = pkey_family(pkey, &k.bits, &why);
    if (k.family == AJWT_FAM_NONE) {
        EVP_PKEY_free(pkey);
        return conf_fail(cx, "public_key_file", "'%s': %s", path, why);
    }
    k.alg = JWT_ALG_NONE;
    rc = pkey_to_pem(pkey, &k);
    EVP_PKEY_free(pkey);
    if (rc == WSHUB_OK)
        rc = push_key(conf, &k);
    if (rc != WSHUB_OK) {
        key_clear(&k);
        return rc == WSHUB_ERR_NOMEM ? conf_nomem(cx)
                                     : conf_fail(cx, "public_key_file",
                                                 "'%s': cannot encode "
                                                 "the key",
                                                 path);
    }
    return WSHUB_OK;
}

/* A string member of a JWK, or NULL when absent or not a string. */
static const char *jwk_str(struct json_object *jwk, const char *name)
{
    struct json_object *v;

    if (!json_object_object_get_ex(jwk, name, &v) || !json_object_is_type(v, json_type_string))
        return NULL;
    return json_object_get_string(v);
}

/* A base64url member of a JWK, decoded. @return 0, or -1 when absent or not base64url. */
static int jwk_bytes(struct json_object *jwk, const char *name, unsigned char **out,
                     size_t *out_len)
{
    const char *s = jwk_str(jwk, name);

    *out = NULL;
    *out_len = 0;
    if (!s)
        return -1;
    return auth_jwt_token__b64url_decode(s, strlen(s), out, out_len);
}

/* Builds an EVP_PKEY of `type` ("RSA" or "EC") from public parameters and checks it. */
static EVP_PKEY *pkey_from_params(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = NULL, *check = NULL;
    EVP_PKEY *pkey = NULL;

    if (!params)
        return NULL;
    ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    if (!ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        goto fail;
    /* fromdata does not check that an EC point is on the curve: ask for it. */
    check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL);
    if (!check || EVP_PKEY_public_check(check) != 1)
        goto fail;
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
fail:
    EVP_PKEY_free(pkey);
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return NULL;
}

/* RSA public key from a JWK's n and e. @return the key or NULL with *why set. */
static EVP_PKEY *jwk_rsa(struct json_object *jwk, const char **why)
{
    unsigned char *n = NULL, *e = NULL;
    size_t n_len, e_len;
    BIGNUM *bn_n = NULL, *bn_e = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;

    if (jwk_bytes(jwk, "n", &n, &n_len) != 0 || jwk_bytes(jwk, "e", &e, &e_len) != 0 ||
        n_len == 0 || e_len == 0 || e_len > 8) {
        *why = "RSA key without valid base64url \"n\" and \"e\"";
        goto out;
    }
    /* Refused before the key is built: checking a huge modulus is slow. */
    if (n_len > MAX_RSA_BITS / 8 + 1) {
        *why = "RSA keys longer than 8192 bits are refused";
        goto out;
    }
    bn_n = BN_bin2bn(n, (int)n_len, NULL);
    bn_e = BN_bin2bn(e, (int)e_len, NULL);
    bld = OSSL_PARAM_BLD_new();
    if (!bn_n || !bn_e || !bld || !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, bn_n) ||
        !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, bn_e)) {
        *why = "cannot build the RSA key (out of memory)";
        goto out;
    }
    pkey = pkey_from_params("RSA", bld);
    if (!pkey)
        *why = "invalid RSA public key";
out:
    OSSL_PARAM_BLD_free(bld);
    BN_free(bn_n);
    BN_free(bn_e);
    free(n);
    free(e);
    return pkey;
}

/* EC public key from a JWK's crv, x and y (uncompressed point 04||x||y). */
static EVP_PKEY *jwk_ec(struct json_object *jwk, const char **why)
{
    static const struct {
        const char *crv, *group;
        size_t len;
    } curves[] = {
        {"P-256", "prime256v1", 32},
        {"P-384", "secp384r1", 48},
        {"P-521", "secp521r1", 66},
    };
    const char *crv = jwk_str(jwk, "crv");
    unsigned char *x = NULL, *y = NULL, *pt = NULL;
    size_t x_len, y_len, clen = 0;
    const char *group = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    EVP_PKEY *pkey = NULL;

    for (size_t i = 0; crv && i < sizeof(curves) / sizeof(curves[0]); i++) {
        if (strcmp(crv, curves[i].crv) == 0) {
            group = curves[i].group;
            clen = curves[i].len;
        }
    }
    if (!group) {
        *why = "EC key with a \"crv\" other than P-256, P-384 or P-521";
        return NULL;
    }
    if (jwk_bytes(jwk, "x", &x, &x_len) != 0 || jwk_bytes(jwk, "y", &y, &y_len) != 0 ||
        x_len != clen || y_len != clen) {
        *why = "EC key without valid base64url \"x\" and \"y\" of the curve's size";
        goto out;
    }
    pt = malloc(1 + 2 * clen);
    bld = OSSL_PARAM_BLD_new();
    if (!pt || !bld) {
        *why = "cannot build the EC key (out of memory)";
        goto out;
    }
    pt[0] = 0x04;
    memcpy(pt + 1, x, clen);
    memcpy(pt + 1 + clen, y, clen);
    if (!OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, group, 0) ||
        !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, 1 + 2 * clen)) {
        *why = "cannot build the EC key (out of memory)";
        goto out;
    }
    pkey = pkey_from_params("EC", bld);
    if (!pkey)
        *why = "invalid EC public key (not a point on the curve)";
out:
    OSSL_PARAM_BLD_free(bld);
    free(pt);
    free(x);
    free(y);
    return pkey;
}

/*
 * One JWK of the set. Keys marked for another use ("use" other than "sig") and key types we do
 * not verify with (oct, OKP, ...) are skipped with a log line; a malformed RSA/EC key is an
 * error, because silently dropping the key an issuer is about to use would lock users out at
 * the next rotation without anyone noticing. @return WSHUB_OK (added or skipped) or an error.
 */
static int load_jwk(const conf_ctx_t *cx, ajwt_conf_t *conf, struct json_object *jwk, size_t idx,
                    const char *path)
{
    const wshub_host_api_t *host = cx->host;
    wshub_plugin_t *self = cx->self;
    const char *kty, *use, *alg, *kid, *why = NULL;
    struct json_object *v;
    ajwt_key_t k = {0};
    EVP_PKEY *pkey;
    int rc;

    if (!json_object_is_type(jwk, json_type_object))
        return conf_fail(cx, "jwks_file", "'%s': keys[%zu] is not an object", path, idx);
    kty = jwk_str(jwk, "kty");
    use = jwk_str(jwk, "use");
    alg = jwk_str(jwk, "alg");
    if (json_object_object_get_ex(jwk, "kid", &v) && !json_object_is_type(v, json_type_string))
        return conf_fail(cx, "jwks_file", "'%s': keys[%zu]: \"kid\" is not a string", path, idx);
    kid = jwk_str(jwk, "kid");
    if (kid && (!*kid || strlen(kid) > AJWT_MAX_KID_LEN))
        return conf_fail(cx, "jwks_file",
                         "'%s': keys[%zu]: \"kid\" is empty or longer than %u "
                         "bytes",
                         path, idx, AJWT_MAX_KID_LEN);
    if (!kty)
        return conf_fail(cx, "jwks_file", "'%s': keys[%zu] has no \"kty\"", path, idx);
    if (use && strcmp(use, "sig") != 0) {
        WSHUB_LOG(WSHUB_LOG_INFO, "jwks_file: keys[%zu] skipped: \"use\" is not \"sig\"", idx);
        return WSHUB_OK;
    }
    if (strcmp(kty, "RSA") != 0 && strcmp(kty, "EC") != 0) {
        WSHUB_LOG(WSHUB_LOG_INFO,
                  "jwks_file: keys[%zu] skipped: key type '%.16s' is not used "
                  "for verification (RSA and EC are)",
                  idx, kty);
        return WSHUB_OK;
    }
    if (json_object_object_get_ex(jwk, "d", &v))
        WSHUB_LOG(WSHUB_LOG_WARN,
                  "jwks_file: keys[%zu] contains private key material (\"d\"): "
                  "only the public part is used; keep private keys off the server",
                  idx);
    k.alg = JWT_ALG_NONE;
    if (alg) {
        k.alg = jwt_str_alg(alg);
        if (k.alg == JWT_ALG_INVAL || k.alg == JWT_ALG_NONE)
            return conf_fail(cx, "jwks_file", "'%s': keys[%zu]: unsupported \"alg\" '%.16s'", path,
                             idx, alg);
    }
    pkey = strcmp(kty, "RSA") == 0 ? jwk_rsa(jwk, &why) : jwk_ec(jwk, &why);
    if (!pkey)
        return conf_fail(cx, "jwks_file", "'%s': keys[%zu]: %s", path, idx, why);
    k.family = pkey_family(pkey, &k.bits, &why);
    if (k.family == AJWT_FAM_NONE) {
        EVP_PKEY_free(pkey);
        return conf_fail(cx, "jwks_file", "'%s': keys[%zu]: %s", path, idx, why);
    }
    if (k.alg != JWT_ALG_NONE && auth_jwt_conf__family(k.alg) != k.family) {
        EVP_PKEY_free(pkey);
        return conf_fail(cx, "jwks_file", "'%s': keys[%zu]: \"alg\" %s does not fit a %s", path,
                         idx, alg_name(k.alg), family_name(k.family));
    }
    for (size_t i = 0; kid && i < conf->n_keys; i++) {
        if (conf->keys[i].kid && strcmp(conf->keys[i].kid, kid) == 0) {
            EVP_PKEY_free(pkey);
            return conf_fail(cx, "jwks_file", "'%s': keys[%zu]: duplicate \"kid\" '%.64s'", path,
                             idx, kid);
        }
    }
    k.from_jwks = true;
    rc = pkey_to_pem(pkey, &k);
    EVP_PKEY_free(pkey);
    if (rc == WSHUB_OK && kid && !(k.kid = dup_str(kid)))
        rc = WSHUB_ERR_NOMEM;
    if (rc == WSHUB_OK)
        rc = push_key(conf, &k);
    if (rc != WSHUB_OK) {
        key_clear(&k);
        return rc == WSHUB_ERR_NOMEM ? conf_nomem(cx)
                                     : conf_fail(cx, "jwks_file",
                                                 "'%s': keys[%zu]: cannot "
                                                 "encode the key",
                                                 path, idx);
    }
    conf->n_jwks++;
    return WSHUB_OK;
}

/*
 * jwks_file: a JSON Web Key Set ({"keys": [...]}, RFC 7517) read from disk; the server never
 * fetches keys over the network (or from a token's jku/x5u headers). Reloaded on SIGHUP, which
 * is how keys are rotated: publish the new key next to the old one, reload, start signing with
 * the new kid, and drop the old key after the longest token lifetime.
 */
static int load_jwks_file(const conf_ctx_t *cx, ajwt_conf_t *conf)
{
    const wshub_host_api_t *host = cx->host;
    wshub_plugin_t *self = cx->self;
    const char *path = host->cfg_str(cx->cfg, "jwks_file", NULL);
    struct json_tokener *tok = NULL;
    struct json_object *root = NULL, *keys;
    char *data = NULL;
    size_t len, n, without_kid = 0;
    int err, rc = WSHUB_OK;

    if (!path)
        return WSHUB_OK;
    if (!*path)
        return conf_fail(cx, "jwks_file", "the path is empty");
    err = read_file(path, MAX_JWKS_FILE, &data, &len);
    if (err)
        return conf_fail(cx, "jwks_file", "cannot read '%s': %s", path, read_error(err));
    tok = json_tokener_new_ex(16);
    if (!tok) {
        free(data);
        return conf_nomem(cx);
    }
    root = json_tokener_parse_ex(tok, data, (int)len);
    if (!root || json_tokener_get_error(tok) != json_tokener_success ||
        !json_object_is_type(root, json_type_object)) {
        rc = conf_fail(cx, "jwks_file", "'%s' is not a JSON object", path);
        goto out;
    }
    if (!json_object_object_get_ex(root, "keys", &keys) ||
        !json_object_is_type(keys, json_type_array)) {
        rc = conf_fail(cx, "jwks_file", "'%s' has no \"keys\" array", path);
        goto out;
    }
    n = json_object_array_length(keys);
    if (n > MAX_JWKS_KEYS) {
        rc = conf_fail(cx, "jwks_file", "'%s' has %zu keys (at most %u)", path, n, MAX_JWKS_KEYS);
        goto out;
    }
    for (size_t i = 0; i < n && rc == WSHUB_OK; i++)
        rc = load_jwk(cx, conf, json_object_array_get_idx(keys, i), i, path);
    if (rc != WSHUB_OK)
        goto out;
    if (conf->n_jwks == 0) {
        rc = conf_fail(cx, "jwks_file", "'%s' has no usable RSA or EC signature key", path);
        goto out;
    }
    for (size_t i = 0; i < conf->n_keys; i++)
        if (conf->keys[i].from_jwks && !conf->keys[i].kid)
            without_kid++;
    if (without_kid && conf->n_jwks > 1)
        WSHUB_LOG(WSHUB_LOG_WARN,
                  "jwks_file: %zu of %zu keys have no \"kid\": tokens are "
                  "matched to keys by kid, so give every key one",
                  without_kid, conf->n_jwks);
out:
    json_object_put(root);
    json_tokener_free(tok);
    free(data);
    return rc;
}

/*
 * Every allowed algorithm must have something that can verify it; otherwise every token of that
 * algorithm would be refused, which is a configuration mistake better reported at start-up.
 */
static int check_keys_cover_algorithms(const conf_ctx_t *cx, const ajwt_conf_t *conf)
{
    for (int a = JWT_ALG_HS256; a < JWT_ALG_TERM; a++) {
        ajwt_family_t fam = auth_jwt_conf__family((jwt_alg_t)a);
        bool found = false;

        if (!(conf->algs & (1u << a)))
            continue;
        if (fam == AJWT_FAM_HMAC)
            found = conf->secret != NULL;
        for (size_t i = 0; !found && i < conf->n_keys; i++)
            found = conf->keys[i].family == fam &&
                    (conf->keys[i].alg == JWT_ALG_NONE || conf->keys[i].alg == (jwt_alg_t)a);
        if (!found)
            return conf_fail(cx, "algorithms",
                             "%s is allowed but no %s can verify it (set public_key_file or "
                             "jwks_file, or remove %s)",
                             alg_name((jwt_alg_t)a), family_name(fam), alg_name((jwt_alg_t)a));
    }
    return WSHUB_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Claims and the rest                                                                         */
/* ------------------------------------------------------------------------------------------ */

/* A claim-name option: copied; empty refused unless `may_be_empty` (which disables it). */
static int load_claim_name(const conf_ctx_t *cx, const char *opt, const char *def,
                           bool may_be_empty, char **out)
{
    const char *s = cx->host->cfg_str(cx->cfg, opt, def);

    if (!*s && !may_be_empty)
        return conf_fail(cx, opt, "must not be empty");
    if (strlen(s) > 128)
        return conf_fail(cx, opt, "claim names are at most 128 bytes");
    *out = dup_str(s);
    return *out ? WSHUB_OK : conf_nomem(cx);
}

/* An optional string option copied, NULL when absent; empty is refused. */
static int load_opt_string(const conf_ctx_t *cx, const char *opt, char **out)
{
    const char *s = cx->host->cfg_str(cx->cfg, opt, NULL);

    *out = NULL;
    if (!s)
        return WSHUB_OK;
    if (!*s)
        return conf_fail(cx, opt, "must not be empty (remove the option to skip the check)");
    *out = dup_str(s);
    return *out ? WSHUB_OK : conf_nomem(cx);
}

/* The development identity from the path: only without require_auth, and loudly. */
static int load_dev_path(const conf_ctx_t *cx, ajwt_conf_t *conf)
{
    const char *prefix = cx->host->cfg_str(cx->cfg, "dev_path_prefix", "/ws");
    size_t n = strlen(prefix);

    conf->dev_path_identity = cx->host->cfg_bool(cx->cfg, "dev_path_identity", false);
    if (conf->dev_path_identity && conf->require_auth)
        return conf_fail(cx, "dev_path_identity",
                         "needs require_auth: false (it trusts an identity the client chooses)");
    if (n == 0 || prefix[0] != '/')
        return conf_fail(cx, "dev_path_prefix", "must start with '/'");
    while (n > 1 && prefix[n - 1] == '/')
        n--;
    if (n == 1)
        n = 0; /* "/": the identity is the whole path, /<tenant>/<user> */
    conf->dev_path_prefix = malloc(n + 1);
    if (!conf->dev_path_prefix)
        return conf_nomem(cx);
    memcpy(conf->dev_path_prefix, prefix, n);
    conf->dev_path_prefix[n] = '\0';
    return WSHUB_OK;
}

int auth_jwt_conf__load(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                        ajwt_conf_t **out)
{
    conf_ctx_t cx = {self, host, cfg};
    ajwt_conf_t *conf;
    int64_t leeway = 0;
    int rc;

    conf = calloc(1, sizeof(*conf));
    if (!conf)
        return conf_nomem(&cx);
    conf->require_auth = host->cfg_bool(cfg, "require_auth", true);

    if (host->cfg_int(cfg, "leeway", 0, &leeway) != WSHUB_OK || leeway < 0 ||
        leeway > (int64_t)AJWT_MAX_LEEWAY_MS) {
        rc = conf_fail(&cx, "leeway", "must be a duration between 0s and 1h");
        goto fail;
    }
    conf->leeway_ms = leeway;

    if ((rc = load_algorithms(&cx, conf)) != WSHUB_OK ||
        (rc = load_secret(&cx, conf)) != WSHUB_OK ||
        (rc = load_public_key_file(&cx, conf)) != WSHUB_OK ||
        (rc = load_jwks_file(&cx, conf)) != WSHUB_OK ||
        (rc = check_keys_cover_algorithms(&cx, conf)) != WSHUB_OK)
        goto fail;
    if (conf->n_keys && !allows_family(conf, AJWT_FAM_RSA) &&
        !allows_family(conf, AJWT_FAM_EC256) && !allows_family(conf, AJWT_FAM_EC384) &&
        !allows_family(conf, AJWT_FAM_EC521))
        WSHUB_LOG(WSHUB_LOG_WARN, "public_key_file/jwks_file are loaded but algorithms allows no "
                                  "RS* or ES* algorithm: the keys are unused");
    if ((rc = load_opt_string(&cx, "issuer", &conf->issuer)) != WSHUB_OK ||
        (rc = load_opt_string(&cx, "audience", &conf->audience)) != WSHUB_OK ||
        (rc = load_claim_name(&cx, "tenant_claim", "tenant_id", false, &conf->tenant_claim)) ||
        (rc = load_claim_name(&cx, "user_claim", "sub", false, &conf->user_claim)) ||
        (rc = load_claim_name(&cx, "roles_claim", "roles", true, &conf->roles_claim)) ||
        (rc = load_claim_name(&cx, "metadata_claim", "meta", true, &conf->metadata_claim)) ||
        (rc = load_dev_path(&cx, conf)) != WSHUB_OK)
        goto fail;
    *out = conf;
    ERR_clear_error(); /* what the PEM and certificate attempts left behind */
    return WSHUB_OK;
fail:
    auth_jwt_conf__free(conf);
    ERR_clear_error();
    return rc;
}
