/*
 * auth_jwt tokens: finding the token in an upgrade request, verifying it, and mapping its
 * claims to an identity.
 *
 * Everything here handles bytes an unauthenticated client chose, so each step refuses early
 * and cheaply: a length cap, a character-set check, a strict base64url decoder, and a strict
 * JSON parse of the header before any key is touched. libjwt 1.10.2 verifies the signature,
 * but it trusts the token's own "alg" header to pick the verification method (an HS256 token
 * checked against an RSA PEM is HMAC'ed with the PEM text as the secret: the classic algorithm
 * confusion), accepts "none", compares HMACs with strcmp, and has no claim validation. So this
 * file decides the algorithm itself (allow-list, and the key family must match), selects the
 * key (by kid for JWKS), checks HMACs in constant time before libjwt sees the token, checks
 * that libjwt agreed on the algorithm, and then validates exp/nbf/iat/iss/aud on its own parse
 * of the (now authenticated) payload.
 */
#include "auth_jwt.h"

#include <ctype.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <json-c/json.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>

/* JSON nesting allowed in a token header and payload (json-c's default is 32). */
#define HEADER_DEPTH  4
#define PAYLOAD_DEPTH 32

static const char *const reason_names[AJWT_N_REASONS] = {
    [AJWT_OK] = "ok",
    [AJWT_MISSING] = "missing",
    [AJWT_MALFORMED] = "malformed",
    [AJWT_BAD_SIGNATURE] = "bad_signature",
    [AJWT_EXPIRED] = "expired",
    [AJWT_NOT_YET_VALID] = "not_yet_valid",
    [AJWT_BAD_CLAIMS] = "bad_claims",
    [AJWT_BAD_ALGORITHM] = "bad_algorithm",
    [AJWT_UNKNOWN_KID] = "unknown_kid",
    [AJWT_INTERNAL] = "internal",
};

/* Bodies of the 401: what a client developer needs, nothing an attacker can use. */
static const char *const reason_texts[AJWT_N_REASONS] = {
    [AJWT_OK] = "ok",
    [AJWT_MISSING] = "authentication required",
    [AJWT_MALFORMED] = "malformed token",
    [AJWT_BAD_SIGNATURE] = "invalid token",
    [AJWT_EXPIRED] = "token expired",
    [AJWT_NOT_YET_VALID] = "token not yet valid",
    [AJWT_BAD_CLAIMS] = "token claims rejected",
    [AJWT_BAD_ALGORITHM] = "token algorithm not accepted",
    [AJWT_UNKNOWN_KID] = "token key unknown",
    [AJWT_INTERNAL] = "server error",
};

const char *auth_jwt_token__reason_name(ajwt_reason_t r)
{
    return (unsigned)r < AJWT_N_REASONS ? reason_names[r] : "malformed";
}

const char *auth_jwt_token__reason_text(ajwt_reason_t r)
{
    return (unsigned)r < AJWT_N_REASONS ? reason_texts[r] : "unauthorized";
}

/* ------------------------------------------------------------------------------------------ */
/* Encodings                                                                                   */
/* ------------------------------------------------------------------------------------------ */

/* Value of a base64url character, or -1. */
static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

/*
 * JWS compact serialization uses base64url without padding (RFC 7515 §2), so padding, the
 * standard alphabet's '+' and '/', whitespace, and a length of 1 mod 4 (which cannot encode
 * whole bytes) are all refused.
 */
int auth_jwt_token__b64url_decode(const char *in, size_t len, unsigned char **out, size_t *out_len)
{
    unsigned char *buf;
    uint32_t acc = 0;
    int bits = 0;
    size_t n = 0;

    *out = NULL;
    *out_len = 0;
    if (len % 4 == 1 || len > SIZE_MAX / 3)
        return -1;
    buf = malloc(len * 3 / 4 + 1);
    if (!buf)
        return -1;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0) {
            free(buf);
            return -1;
        }
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            buf[n++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    buf[n] = '\0';
    *out = buf;
    *out_len = n;
    return 0;
}

static int hex_value(unsigned char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (unsigned char)tolower(c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/*
 * Percent-decodes `len` bytes (a query value when `plus_is_space`, a path segment otherwise).
 * A broken escape, a decoded NUL, or a result over `max` bytes is refused.
 * @return a malloc'd NUL-terminated string, or NULL (then *bad says whether the input was bad
 *         rather than memory short).
 */
static char *percent_decode(const char *s, size_t len, bool plus_is_space, size_t max, bool *bad)
{
    char *out;
    size_t n = 0;

    *bad = true;
    if (len > 3 * max)
        return NULL;
    out = malloc(len + 1);
    if (!out) {
        *bad = false;
        return NULL;
    }
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '%') {
            int hi, lo;
            if (len - i < 3)
                goto bad_input;
            hi = hex_value((unsigned char)s[i + 1]);
            lo = hex_value((unsigned char)s[i + 2]);
            if (hi < 0 || lo < 0)
                goto bad_input;
            c = (unsigned char)(hi << 4 | lo);
            i += 2;
        } else if (c == '+' && plus_is_space) {
            c = ' ';
        }
        if (c == '\0')
            goto bad_input;
        out[n++] = (char)c;
    }
    if (n > max)
        goto bad_input;
    out[n] = '\0';
    return out;
bad_input:
    free(out);
    return NULL;
}

/* ------------------------------------------------------------------------------------------ */
/* Finding the token                                                                           */
/* ------------------------------------------------------------------------------------------ */

void auth_jwt_token__found_free(ajwt_found_t *f)
{
    if (!f)
        return;
    if (f->token) {
        OPENSSL_cleanse(f->token, f->token_len);
        free(f->token);
    }
    free(f->subprotocol);
    memset(f, 0, sizeof(*f));
}

static char *dup_n(const char *s, size_t n)
{
    char *p = malloc(n + 1);

    if (p) {
        memcpy(p, s, n);
        p[n] = '\0';
    }
    return p;
}

/* `Authorization: Bearer <token>` (RFC 6750 §2.1); other schemes are not ours and ignored. */
static ajwt_reason_t from_authorization(const char *v, ajwt_found_t *out)
{
    size_t n;

    if (strncasecmp(v, "bearer", 6) != 0 || (v[6] != ' ' && v[6] != '\t'))
        return AJWT_OK;
    v += 6;
    while (*v == ' ' || *v == '\t')
        v++;
    n = strlen(v);
    while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
        n--;
    if (n == 0 || n > AJWT_MAX_TOKEN_LEN)
        return AJWT_MALFORMED;
    out->token = dup_n(v, n);
    if (!out->token)
        return AJWT_INTERNAL;
    out->token_len = n;
    out->source = AJWT_SRC_HEADER;
    return AJWT_OK;
}

/* The first `token=` parameter of the query string, percent-decoded. */
static ajwt_reason_t from_query(const char *q, ajwt_found_t *out)
{
    while (q && *q) {
        const char *end = strchr(q, '&');
        size_t n = end ? (size_t)(end - q) : strlen(q);

        if (n >= 5 && memcmp(q, "token", 5) == 0 && (n == 5 || q[5] == '=')) {
            bool bad;
            size_t vlen = n > 5 ? n - 6 : 0;
            if (vlen == 0)
                return AJWT_MALFORMED;
            out->token = percent_decode(q + 6, vlen, true, AJWT_MAX_TOKEN_LEN, &bad);
            if (!out->token)
                return bad ? AJWT_MALFORMED : AJWT_INTERNAL;
            out->token_len = strlen(out->token);
            if (out->token_len == 0)
                return AJWT_MALFORMED;
            out->source = AJWT_SRC_QUERY;
            return AJWT_OK;
        }
        q = end ? end + 1 : NULL;
    }
    return AJWT_OK;
}

static bool is_wshub_protocol(const char *s, size_t n)
{
    return (n == 8 && memcmp(s, "wshub.v1", 8) == 0) ||
           (n == 14 && memcmp(s, "wshub.v1.batch", 14) == 0);
}

/*
 * A `bearer.<jwt>` entry of Sec-WebSocket-Protocol, the one place a browser's WebSocket API
 * can carry a credential without the URL. The 101 must then name one of the protocols the
 * client offered, and it must never be the token (it would be echoed back in clear and logged
 * by proxies), so we pick the client's first wshub protocol, else its first other entry.
 */
static ajwt_reason_t from_subprotocol(const wshub_ev_auth_t *ev, ajwt_found_t *out)
{
    const char *tok = NULL, *pick = NULL, *first_other = NULL;
    size_t tok_len = 0, pick_len = 0, first_other_len = 0;

    for (size_t h = 0; h < ev->n_headers; h++) {
        const char *v = ev->headers[h].value;
        if (!ev->headers[h].name || !v ||
            strcasecmp(ev->headers[h].name, "sec-websocket-protocol") != 0)
            continue;
        while (*v) {
            const char *start, *end;
            size_t n;
            while (*v == ' ' || *v == '\t' || *v == ',')
                v++;
            start = v;
            while (*v && *v != ',')
                v++;
            end = v;
            while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
                end--;
            n = (size_t)(end - start);
            if (n == 0)
                continue;
            if (n >= 7 && strncasecmp(start, "bearer.", 7) == 0) {
                if (!tok) {
                    tok = start + 7;
                    tok_len = n - 7;
                }
            } else if (!pick && is_wshub_protocol(start, n)) {
                pick = start;
                pick_len = n;
            } else if (!first_other) {
                first_other = start;
                first_other_len = n;
            }
        }
    }
    if (!tok)
        return AJWT_OK;
    if (tok_len == 0 || tok_len > AJWT_MAX_TOKEN_LEN)
        return AJWT_MALFORMED;
    if (!pick) {
        pick = first_other;
        pick_len = first_other_len;
    }
    out->token = dup_n(tok, tok_len);
    if (!out->token)
        return AJWT_INTERNAL;
    out->token_len = tok_len;
    out->source = AJWT_SRC_SUBPROTOCOL;
    if (pick && !(out->subprotocol = dup_n(pick, pick_len)))
        return AJWT_INTERNAL;
    return AJWT_OK;
}

ajwt_reason_t auth_jwt_token__extract(const wshub_ev_auth_t *ev, ajwt_found_t *out)
{
    ajwt_reason_t r = AJWT_OK;

    memset(out, 0, sizeof(*out));
    for (size_t h = 0; h < ev->n_headers && out->source == AJWT_SRC_NONE; h++) {
        if (ev->headers[h].name && ev->headers[h].value &&
            strcasecmp(ev->headers[h].name, "authorization") == 0) {
            r = from_authorization(ev->headers[h].value, out);
            if (r != AJWT_OK)
                break;
        }
    }
    if (r == AJWT_OK && out->source == AJWT_SRC_NONE)
        r = from_query(ev->query, out);
    if (r == AJWT_OK && out->source == AJWT_SRC_NONE)
        r = from_subprotocol(ev, out);
    if (r != AJWT_OK)
        auth_jwt_token__found_free(out);
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Claims                                                                                      */
/* ------------------------------------------------------------------------------------------ */

void auth_jwt_token__ident_free(ajwt_ident_t *id)
{
    if (!id)
        return;
    free(id->tenant);
    free(id->user);
    for (size_t i = 0; i < id->n_roles; i++)
        free(id->roles[i]);
    free(id->roles);
    free(id->metadata);
    memset(id, 0, sizeof(*id));
}

/* An identity string: at most 255 bytes, no control characters (the host's rule). */
static bool ident_ok(const char *s, size_t n, bool may_be_empty)
{
    if ((n == 0 && !may_be_empty) || n > AJWT_MAX_IDENT_LEN)
        return false;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || s[i] == 0x7f)
            return false;
    return true;
}

/*
 * Parses `len` bytes as one JSON object, strictly (RFC 8259, valid UTF-8, nothing after it
 * but whitespace), with a nesting limit. @return the object or NULL.
 */
static struct json_object *parse_object(const unsigned char *data, size_t len, int depth)
{
    struct json_tokener *tok;
    struct json_object *o;
    size_t end;

    if (len == 0 || len > AJWT_MAX_TOKEN_LEN || memchr(data, '\0', len))
        return NULL;
    tok = json_tokener_new_ex(depth);
    if (!tok)
        return NULL;
    json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
    o = json_tokener_parse_ex(tok, (const char *)data, (int)len);
    end = json_tokener_get_parse_end(tok);
    if (o && json_tokener_get_error(tok) == json_tokener_success) {
        while (end < len &&
               (data[end] == ' ' || data[end] == '\t' || data[end] == '\n' || data[end] == '\r'))
            end++;
    }
    if (!o || json_tokener_get_error(tok) != json_tokener_success || end != len ||
        !json_object_is_type(o, json_type_object)) {
        json_object_put(o);
        o = NULL;
    }
    json_tokener_free(tok);
    return o;
}

/* Decodes a base64url segment holding a JSON object. */
static struct json_object *decode_object(const char *seg, size_t len, int depth)
{
    unsigned char *raw;
    size_t raw_len;
    struct json_object *o;

    if (auth_jwt_token__b64url_decode(seg, len, &raw, &raw_len) != 0)
        return NULL;
    o = parse_object(raw, raw_len, depth);
    free(raw);
    return o;
}

/* Member `name` unless absent or JSON null. */
static struct json_object *member(struct json_object *o, const char *name)
{
    struct json_object *v = NULL;

    if (!json_object_object_get_ex(o, name, &v))
        return NULL;
    return v;
}

/* Seconds are clamped so that converting to milliseconds and adding a leeway cannot overflow. */
#define MAX_NUMERIC_DATE_S (INT64_MAX / 4000)

/*
 * A NumericDate claim (RFC 7519 §2: seconds, possibly fractional) in milliseconds.
 * @return 0 absent, 1 present (*ms set), -1 present but not a finite number.
 */
static int numeric_date(struct json_object *payload, const char *name, int64_t *ms)
{
    struct json_object *v = member(payload, name);

    if (!v)
        return 0;
    if (json_object_is_type(v, json_type_int)) {
        int64_t s = json_object_get_int64(v);
        if (s > MAX_NUMERIC_DATE_S)
            s = MAX_NUMERIC_DATE_S;
        if (s < -MAX_NUMERIC_DATE_S)
            s = -MAX_NUMERIC_DATE_S;
        *ms = s * 1000;
        return 1;
    }
    if (json_object_is_type(v, json_type_double)) {
        double d = json_object_get_double(v);
        if (!isfinite(d))
            return -1;
        if (d > (double)MAX_NUMERIC_DATE_S)
            d = (double)MAX_NUMERIC_DATE_S;
        if (d < -(double)MAX_NUMERIC_DATE_S)
            d = -(double)MAX_NUMERIC_DATE_S;
        *ms = (int64_t)floor(d * 1000.0);
        return 1;
    }
    return -1;
}

/* exp, nbf and iat against now, each with the leeway. */
static ajwt_reason_t check_times(const ajwt_conf_t *conf, struct json_object *payload,
                                 int64_t now_ms, ajwt_ident_t *out)
{
    int64_t exp = 0, nbf = 0, iat = 0;
    int has_exp = numeric_date(payload, "exp", &exp);
    int has_nbf = numeric_date(payload, "nbf", &nbf);
    int has_iat = numeric_date(payload, "iat", &iat);

    if (has_exp < 0 || has_nbf < 0 || has_iat < 0)
        return AJWT_BAD_CLAIMS;
    if (has_exp && now_ms >= exp + conf->leeway_ms)
        return AJWT_EXPIRED;
    if (has_nbf && now_ms + conf->leeway_ms < nbf)
        return AJWT_NOT_YET_VALID;
    if (has_iat && iat > now_ms + conf->leeway_ms)
        return AJWT_NOT_YET_VALID;
    out->has_exp = has_exp > 0;
    out->exp_ms = has_exp ? exp : 0;
    return AJWT_OK;
}

/* iss must equal the configured issuer; aud (string or array) must contain the audience. */
static ajwt_reason_t check_iss_aud(const ajwt_conf_t *conf, struct json_object *payload)
{
    struct json_object *v;

    if (conf->issuer) {
        v = member(payload, "iss");
        if (!v || !json_object_is_type(v, json_type_string) ||
            strcmp(json_object_get_string(v), conf->issuer) != 0)
            return AJWT_BAD_CLAIMS;
    }
    if (conf->audience) {
        bool found = false;
        v = member(payload, "aud");
        if (v && json_object_is_type(v, json_type_string)) {
            found = strcmp(json_object_get_string(v), conf->audience) == 0;
        } else if (v && json_object_is_type(v, json_type_array)) {
            size_t n = json_object_array_length(v);
            for (size_t i = 0; i < n && !found; i++) {
                struct json_object *a = json_object_array_get_idx(v, i);
                found = json_object_is_type(a, json_type_string) &&
                        strcmp(json_object_get_string(a), conf->audience) == 0;
            }
        }
        if (!found)
            return AJWT_BAD_CLAIMS;
    }
    return AJWT_OK;
}

/*
 * A tenant or user claim: a string, or an integer written in decimal (some issuers use numeric
 * user ids). @return 0 absent (or null), 1 set, -1 of another type or not a valid identity.
 */
static int ident_claim(struct json_object *payload, const char *name, bool may_be_empty, char **out)
{
    struct json_object *v = member(payload, name);
    char num[24];
    const char *s;
    size_t n;

    *out = NULL;
    if (!v)
        return 0;
    if (json_object_is_type(v, json_type_string)) {
        s = json_object_get_string(v);
        n = (size_t)json_object_get_string_len(v);
    } else if (json_object_is_type(v, json_type_int)) {
        snprintf(num, sizeof(num), "%lld", (long long)json_object_get_int64(v));
        s = num;
        n = strlen(num);
    } else {
        return -1;
    }
    if (strlen(s) != n || !ident_ok(s, n, may_be_empty))
        return -1;
    *out = dup_n(s, n);
    return *out ? 1 : -1;
}

/* Appends one role (validated) to the identity. */
static bool add_role(ajwt_ident_t *id, const char *s, size_t n)
{
    char **v;

    if (n == 0)
        return true; /* "a,,b" and "a  b": empty items are separators, not roles */
    if (id->n_roles >= AJWT_MAX_ROLES || !ident_ok(s, n, false))
        return false;
    v = realloc(id->roles, (id->n_roles + 1) * sizeof(*v));
    if (!v)
        return false;
    id->roles = v;
    if (!(id->roles[id->n_roles] = dup_n(s, n)))
        return false;
    id->n_roles++;
    return true;
}

/* Roles: an array of strings, or one string separated by spaces and/or commas (OAuth scope). */
static bool roles_claim(struct json_object *payload, const char *name, ajwt_ident_t *id)
{
    struct json_object *v;

    if (!*name || !(v = member(payload, name)))
        return true;
    if (json_object_is_type(v, json_type_array)) {
        size_t n = json_object_array_length(v);
        for (size_t i = 0; i < n; i++) {
            struct json_object *r = json_object_array_get_idx(v, i);
            const char *s;
            size_t len;
            if (!json_object_is_type(r, json_type_string))
                return false;
            s = json_object_get_string(r);
            len = (size_t)json_object_get_string_len(r);
            if (len == 0 || strlen(s) != len || !add_role(id, s, len))
                return false;
        }
        return true;
    }
    if (json_object_is_type(v, json_type_string)) {
        const char *s = json_object_get_string(v);
        size_t len = (size_t)json_object_get_string_len(v);
        size_t start = 0;
        if (strlen(s) != len)
            return false;
        for (size_t i = 0; i <= len; i++) {
            if (i == len || s[i] == ' ' || s[i] == ',') {
                if (!add_role(id, s + start, i - start))
                    return false;
                start = i + 1;
            }
        }
        return true;
    }
    return false;
}

/* Metadata: a JSON object, kept as compact JSON text. */
static bool metadata_claim(struct json_object *payload, const char *name, ajwt_ident_t *id)
{
    struct json_object *v;
    const char *s;
    size_t n;

    if (!*name || !(v = member(payload, name)))
        return true;
    if (!json_object_is_type(v, json_type_object))
        return false;
    s = json_object_to_json_string_ext(v, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE);
    if (!s)
        return false;
    n = strlen(s);
    if (n > AJWT_MAX_META_LEN)
        return false;
    id->metadata = dup_n(s, n);
    return id->metadata != NULL;
}

/* The identity mapping: tenant, user, roles and metadata from the configured claims. */
static ajwt_reason_t map_identity(const ajwt_conf_t *conf, struct json_object *payload,
                                  ajwt_ident_t *id)
{
    int t = ident_claim(payload, conf->tenant_claim, false, &id->tenant);
    int u = ident_claim(payload, conf->user_claim, true, &id->user);

    if (t < 0 || u < 0 || (t == 0 && conf->require_auth))
        return AJWT_BAD_CLAIMS;
    if (!id->user && !(id->user = dup_n("", 0)))
        return AJWT_BAD_CLAIMS;
    if (!roles_claim(payload, conf->roles_claim, id) ||
        !metadata_claim(payload, conf->metadata_claim, id))
        return AJWT_BAD_CLAIMS;
    return AJWT_OK;
}

/* ------------------------------------------------------------------------------------------ */
/* Verification                                                                                */
/* ------------------------------------------------------------------------------------------ */

/* The algorithm named exactly as RFC 7518 spells it; JWT_ALG_INVAL otherwise (also "none"). */
static jwt_alg_t exact_alg(const char *s)
{
    static const char *const names[] = {
        [JWT_ALG_HS256] = "HS256", [JWT_ALG_HS384] = "HS384", [JWT_ALG_HS512] = "HS512",
        [JWT_ALG_RS256] = "RS256", [JWT_ALG_RS384] = "RS384", [JWT_ALG_RS512] = "RS512",
        [JWT_ALG_ES256] = "ES256", [JWT_ALG_ES384] = "ES384", [JWT_ALG_ES512] = "ES512",
    };

    for (int a = JWT_ALG_HS256; a < JWT_ALG_TERM; a++)
        if (names[a] && strcmp(s, names[a]) == 0)
            return (jwt_alg_t)a;
    return JWT_ALG_INVAL;
}

/*
 * Picks the key for a token of algorithm `alg` carrying `kid` (may be NULL):
 *   - HS*: the HMAC secret (a kid is ignored);
 *   - with a JWKS and a kid: that key, which must fit the algorithm; an unknown kid is
 *     refused rather than tried against other keys;
 *   - otherwise (no kid, or no JWKS): the one configured key that fits the algorithm; none is
 *     bad_algorithm, several (a JWKS in rotation and a token without kid) is unknown_kid.
 */
static ajwt_reason_t select_key(const ajwt_conf_t *conf, jwt_alg_t alg, const char *kid,
                                const unsigned char **key, size_t *key_len)
{
    ajwt_family_t fam = auth_jwt_conf__family(alg);
    const ajwt_key_t *found = NULL;
    size_t n_fit = 0;

    if (fam == AJWT_FAM_HMAC) {
        if (!conf->secret)
            return AJWT_BAD_ALGORITHM;
        *key = conf->secret;
        *key_len = conf->secret_len;
        return AJWT_OK;
    }
    if (kid && conf->n_jwks) {
        for (size_t i = 0; i < conf->n_keys && !found; i++)
            if (conf->keys[i].from_jwks && conf->keys[i].kid && strcmp(conf->keys[i].kid, kid) == 0)
                found = &conf->keys[i];
        if (!found)
            return AJWT_UNKNOWN_KID;
        if (found->family != fam || (found->alg != JWT_ALG_NONE && found->alg != alg))
            return AJWT_BAD_ALGORITHM;
    } else {
        for (size_t i = 0; i < conf->n_keys; i++) {
            const ajwt_key_t *k = &conf->keys[i];
            if (k->family == fam && (k->alg == JWT_ALG_NONE || k->alg == alg)) {
                found = k;
                n_fit++;
            }
        }
        if (n_fit == 0)
            return AJWT_BAD_ALGORITHM;
        if (n_fit > 1)
            return AJWT_UNKNOWN_KID;
    }
    *key = (const unsigned char *)found->pem;
    *key_len = found->pem_len;
    return AJWT_OK;
}

/*
 * HMAC check in constant time over "header.payload". libjwt compares base64 texts with strcmp,
 * which leaks how much of a forged signature is right; checking here first means libjwt only
 * ever sees tokens whose signature is already known to be correct.
 */
static bool hmac_ok(jwt_alg_t alg, const unsigned char *key, size_t key_len,
                    const char *signed_part, size_t signed_len, const unsigned char *sig,
                    size_t sig_len)
{
    const EVP_MD *md = alg == JWT_ALG_HS512   ? EVP_sha512()
                       : alg == JWT_ALG_HS384 ? EVP_sha384()
                                              : EVP_sha256();
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned int mac_len = 0;
    bool ok;

    if (!HMAC(md, key, (int)key_len, (const unsigned char *)signed_part, signed_len, mac, &mac_len))
        return false;
    ok = sig_len == mac_len && CRYPTO_memcmp(mac, sig, mac_len) == 0;
    OPENSSL_cleanse(mac, sizeof(mac));
    return ok;
}

/* The header: alg (required), typ (JWT if present), kid (string), no crit extensions. */
static ajwt_reason_t check_header(const ajwt_conf_t *conf, struct json_object *hdr, jwt_alg_t *alg,
                                  const char **kid)
{
    struct json_object *v;
    const char *s;

    if (!json_object_object_get_ex(hdr, "alg", &v) || !json_object_is_type(v, json_type_string))
        return AJWT_MALFORMED;
    *alg = exact_alg(json_object_get_string(v));
    if (*alg == JWT_ALG_INVAL || !(conf->algs & (1u << *alg)))
        return AJWT_BAD_ALGORITHM;
    /* RFC 7515 §4.1.11: extensions listed in crit must be understood; we implement none. */
    if (json_object_object_get_ex(hdr, "crit", &v))
        return AJWT_MALFORMED;
    /* libjwt refuses any typ but JWT; say so as malformed rather than as a bad signature. */
    if (json_object_object_get_ex(hdr, "typ", &v) &&
        (!json_object_is_type(v, json_type_string) ||
         strcasecmp(json_object_get_string(v), "JWT") != 0))
        return AJWT_MALFORMED;
    *kid = NULL;
    if (json_object_object_get_ex(hdr, "kid", &v)) {
        if (!json_object_is_type(v, json_type_string))
            return AJWT_MALFORMED;
        s = json_object_get_string(v);
        if (!*s || strlen(s) > AJWT_MAX_KID_LEN)
            return AJWT_MALFORMED;
        *kid = s;
    }
    return AJWT_OK;
}

/* Splits "h.p.s" after checking the length and the alphabet. */
static bool split_token(const char *t, size_t len, size_t *dot1, size_t *dot2)
{
    size_t dots = 0;

    if (len == 0 || len > AJWT_MAX_TOKEN_LEN)
        return false;
    for (size_t i = 0; i < len; i++) {
        if (t[i] == '.') {
            if (dots == 0)
                *dot1 = i;
            else if (dots == 1)
                *dot2 = i;
            if (++dots > 2)
                return false;
        } else if (b64url_value((unsigned char)t[i]) < 0) {
            return false;
        }
    }
    return dots == 2 && *dot1 > 0 && *dot2 > *dot1 + 1;
}

/* libjwt's own verification, with the key we chose; it must agree on the algorithm. */
static ajwt_reason_t libjwt_verify(const char *token, size_t len, jwt_alg_t alg,
                                   const unsigned char *key, size_t key_len)
{
    char *copy = dup_n(token, len);
    jwt_t *jwt = NULL;
    ajwt_reason_t r = AJWT_BAD_SIGNATURE;

    if (!copy)
        return AJWT_BAD_SIGNATURE;
    if (key_len > 0 && key_len < (size_t)INT32_MAX &&
        jwt_decode(&jwt, copy, key, (int)key_len) == 0 && jwt)
        r = jwt_get_alg(jwt) == alg ? AJWT_OK : AJWT_BAD_ALGORITHM;
    jwt_free(jwt);
    /* A failed verification leaves entries in this thread's OpenSSL error queue: drop them so
     * they are not mistaken later for errors of an unrelated call. */
    ERR_clear_error();
    OPENSSL_cleanse(copy, len);
    free(copy);
    return r;
}

ajwt_reason_t auth_jwt_token__verify(const ajwt_conf_t *conf, const char *token, size_t len,
                                     int64_t now_ms, ajwt_ident_t *out)
{
    struct json_object *hdr = NULL, *payload = NULL;
    unsigned char *sig = NULL;
    const unsigned char *key = NULL;
    size_t dot1 = 0, dot2 = 0, sig_len = 0, key_len = 0;
    const char *kid = NULL;
    jwt_alg_t alg = JWT_ALG_INVAL;
    ajwt_reason_t r;

    memset(out, 0, sizeof(*out));
    if (!token || !split_token(token, len, &dot1, &dot2))
        return AJWT_MALFORMED;
    hdr = decode_object(token, dot1, HEADER_DEPTH);
    if (!hdr)
        return AJWT_MALFORMED;
    r = check_header(conf, hdr, &alg, &kid);
    if (r != AJWT_OK)
        goto out;
    /* An unsigned token ("h.p.") is refused above by its alg; any other needs a signature. */
    if (dot2 + 1 == len ||
        auth_jwt_token__b64url_decode(token + dot2 + 1, len - dot2 - 1, &sig, &sig_len) != 0) {
        r = AJWT_MALFORMED;
        goto out;
    }
    payload = decode_object(token + dot1 + 1, dot2 - dot1 - 1, PAYLOAD_DEPTH);
    if (!payload) {
        r = AJWT_MALFORMED;
        goto out;
    }
    r = select_key(conf, alg, kid, &key, &key_len);
    if (r != AJWT_OK)
        goto out;
    if (auth_jwt_conf__family(alg) == AJWT_FAM_HMAC &&
        !hmac_ok(alg, key, key_len, token, dot2, sig, sig_len)) {
        r = AJWT_BAD_SIGNATURE;
        goto out;
    }
    r = libjwt_verify(token, len, alg, key, key_len);
    if (r != AJWT_OK)
        goto out;
    /* The payload is authenticated from here on. */
    r = check_times(conf, payload, now_ms, out);
    if (r == AJWT_OK)
        r = check_iss_aud(conf, payload);
    if (r == AJWT_OK)
        r = map_identity(conf, payload, out);
out:
    if (r != AJWT_OK)
        auth_jwt_token__ident_free(out);
    json_object_put(hdr);
    json_object_put(payload);
    free(sig);
    return r;
}

/* ------------------------------------------------------------------------------------------ */
/* Development identity from the path                                                          */
/* ------------------------------------------------------------------------------------------ */

/* One decoded path segment that can be an identity (no '/', no control characters). */
static char *path_segment(const char *s, size_t n)
{
    bool bad;
    char *out;

    if (n == 0)
        return NULL;
    out = percent_decode(s, n, false, AJWT_MAX_IDENT_LEN, &bad);
    if (!out)
        return NULL;
    if (!*out || strchr(out, '/') || !ident_ok(out, strlen(out), false)) {
        free(out);
        return NULL;
    }
    return out;
}

bool auth_jwt_token__dev_path(const char *prefix, const char *path, char **tenant, char **user)
{
    size_t plen = strlen(prefix);
    const char *t, *slash;

    *tenant = *user = NULL;
    if (!path || strncmp(path, prefix, plen) != 0 || path[plen] != '/')
        return false;
    t = path + plen + 1;
    slash = strchr(t, '/');
    if (!slash || strchr(slash + 1, '/'))
        return false;
    *tenant = path_segment(t, (size_t)(slash - t));
    *user = path_segment(slash + 1, strlen(slash + 1));
    if (!*tenant || !*user) {
        free(*tenant);
        free(*user);
        *tenant = *user = NULL;
        return false;
    }
    return true;
}
