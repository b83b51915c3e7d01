/*
 * auth_jwt: the plugin's private header, shared by its parts (never installed, never included
 * by anything outside plugins/auth_jwt/).
 *
 *   auth_jwt.c         descriptor, options, hooks (AUTH, CONN_OPEN, CONN_CLOSE, TICK), the
 *                      auth.refresh route, the expiry heap, metrics
 *   auth_jwt_conf.c    configuration: options, HMAC secret, PEM public key, JWKS -> PEM
 *   auth_jwt_token.c   finding the token in the upgrade request, verifying it, mapping claims
 *
 * The cross-part functions below are not static (they live in different files) but the plugin
 * is built with hidden visibility, so its only exported symbol is still wshub_plugin_entry.
 */
#ifndef WSHUB_AUTH_JWT_H
#define WSHUB_AUTH_JWT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jwt.h>
#include <wshub/sdk.h>

/* A token longer than this is refused as malformed before any decoding. */
#define AJWT_MAX_TOKEN_LEN 8192u
/* Longest accepted `kid`, claim value used as an identity, and metadata object. */
#define AJWT_MAX_KID_LEN   256u
#define AJWT_MAX_IDENT_LEN 255u
#define AJWT_MAX_META_LEN  16384u
/* The host refuses more roles than this (sdk.h, conn_set_identity). */
#define AJWT_MAX_ROLES 64u
/* The longest accepted leeway: a larger one would make `exp` meaningless. */
#define AJWT_MAX_LEEWAY_MS (3600u * 1000u)

/* Why a token was refused; the names are the `reason` label of wshub_auth_failures_total. */
typedef enum ajwt_reason {
    AJWT_OK = 0,
    AJWT_MISSING,
    AJWT_MALFORMED,
    AJWT_BAD_SIGNATURE,
    AJWT_EXPIRED,
    AJWT_NOT_YET_VALID,
    AJWT_BAD_CLAIMS,
    AJWT_BAD_ALGORITHM,
    AJWT_UNKNOWN_KID,
    AJWT_INTERNAL, /* out of memory: not the client's fault (HTTP 500) */
    AJWT_N_REASONS
} ajwt_reason_t;

/* Key families: which key type verifies which `alg`. */
typedef enum ajwt_family {
    AJWT_FAM_NONE = 0,
    AJWT_FAM_HMAC,
    AJWT_FAM_RSA,
    AJWT_FAM_EC256, /* P-256, ES256 */
    AJWT_FAM_EC384, /* P-384, ES384 */
    AJWT_FAM_EC521, /* P-521, ES512 */
} ajwt_family_t;

/* One public key, normalised to a SubjectPublicKeyInfo PEM for jwt_decode(). */
typedef struct ajwt_key {
    char *kid; /* NULL for public_key_file (and JWKS entries without one) */
    ajwt_family_t family;
    jwt_alg_t alg; /* the JWK's "alg", or JWT_ALG_NONE: any alg of the family */
    bool from_jwks;
    int bits;
    char *pem; /* NUL-terminated */
    size_t pem_len;
} ajwt_key_t;

/* The validated configuration. Immutable once built; reload builds a new one and swaps. */
typedef struct ajwt_conf {
    bool require_auth;
    bool dev_path_identity;
    uint32_t algs;         /* bit (1u << jwt_alg_t) per allowed algorithm */
    unsigned char *secret; /* HMAC secret (NULL when no HS* algorithm is allowed) */
    size_t secret_len;
    ajwt_key_t *keys; /* public_key_file first (if any), then the JWKS keys */
    size_t n_keys;
    size_t n_jwks;  /* how many of keys came from jwks_file */
    char *issuer;   /* NULL: not checked */
    char *audience; /* NULL: not checked */
    int64_t leeway_ms;
    char *tenant_claim, *user_claim;
    char *roles_claim, *metadata_claim; /* "" disables the claim */
    char *dev_path_prefix;
} ajwt_conf_t;

/* The identity a verified token carries. */
typedef struct ajwt_ident {
    char *tenant; /* NULL when the claim is absent */
    char *user;   /* "" when the claim is absent */
    char **roles;
    size_t n_roles;
    char *metadata; /* JSON object text, or NULL */
    bool has_exp;
    int64_t exp_ms; /* valid when has_exp */
} ajwt_ident_t;

/* Where the token of an upgrade request was found. */
typedef enum ajwt_source {
    AJWT_SRC_NONE = 0,
    AJWT_SRC_HEADER,
    AJWT_SRC_QUERY,
    AJWT_SRC_SUBPROTOCOL,
} ajwt_source_t;

typedef struct ajwt_found {
    ajwt_source_t source;
    char *token; /* heap copy (percent-decoded for the query), or NULL */
    size_t token_len;
    char *subprotocol; /* with AJWT_SRC_SUBPROTOCOL: the offered protocol to answer, or NULL */
} ajwt_found_t;

/* --- auth_jwt_conf.c --- */

/* Builds a configuration from the plugin's `config:` node. On failure calls host->set_error
 * (naming the option) and returns a negative wshub_rc; *out is set only on success. */
int auth_jwt_conf__load(wshub_plugin_t *self, const wshub_host_api_t *host, const wshub_cfg_t *cfg,
                        ajwt_conf_t **out);
/* Frees a configuration (wiping the secret). NULL is a no-op. */
void auth_jwt_conf__free(ajwt_conf_t *conf);
/* The family that verifies `alg`, AJWT_FAM_NONE for none/unknown. */
ajwt_family_t auth_jwt_conf__family(jwt_alg_t alg);

/* --- auth_jwt_token.c --- */

/* The label text of a reason ("bad_signature"). */
const char *auth_jwt_token__reason_name(ajwt_reason_t r);
/* The short, static HTTP body text of a refusal (never token details). */
const char *auth_jwt_token__reason_text(ajwt_reason_t r);
/*
 * Finds the token in the upgrade request: `Authorization: Bearer`, then the `token` query
 * parameter (percent-decoded), then a `bearer.<jwt>` Sec-WebSocket-Protocol entry.
 * @return AJWT_OK (out->source says whether one was found), AJWT_MALFORMED (bad encoding,
 *         empty or oversized token), or AJWT_INTERNAL on allocation failure. Release with
 *         auth_jwt_token__found_free.
 */
ajwt_reason_t auth_jwt_token__extract(const wshub_ev_auth_t *ev, ajwt_found_t *out);
void auth_jwt_token__found_free(ajwt_found_t *f);
/*
 * Verifies `token` (len bytes, not necessarily NUL-terminated) against `conf` at `now_ms`:
 * structure, header, algorithm allow-list and key type, key selection by kid, signature
 * (libjwt), exp/nbf/iat with leeway, iss, aud, and the claims mapping. On AJWT_OK *out holds
 * the identity (release with auth_jwt_token__ident_free); otherwise *out is empty.
 */
ajwt_reason_t auth_jwt_token__verify(const ajwt_conf_t *conf, const char *token, size_t len,
                                     int64_t now_ms, ajwt_ident_t *out);
void auth_jwt_token__ident_free(ajwt_ident_t *id);
/*
 * Strict base64url (RFC 4648 §5, no padding, no whitespace) of `len` bytes of `in`.
 * @return 0 and a malloc'd *out of *out_len bytes (plus a NUL after them), or -1.
 */
int auth_jwt_token__b64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len);
/*
 * Development identity from the request path `<prefix>/<tenant>/<user>` (segments
 * percent-decoded). @return true and heap copies in *tenant and *user when the path has that shape.
 */
bool auth_jwt_token__dev_path(const char *prefix, const char *path, char **tenant, char **user);

#endif
