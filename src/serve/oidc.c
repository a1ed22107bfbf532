/* oidc.c - OpenID Connect sign-in with Microsoft Entra ID: see oidc.h. */
#include "oidc.h"

#include <ctype.h>
#include <jose/jose.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "http.h"
#include "log.h"
#include "mem.h"

#define PART_MAX (OIDC_TOKEN_MAX)

const char *
oidc_fail_name(enum oidc_fail f)
{
    switch (f) {
    case OIDC_OK:
        return "ok";
    case OIDC_MALFORMED:
        return "malformed";
    case OIDC_ALG:
        return "algorithm";
    case OIDC_KID:
        return "key";
    case OIDC_SIGNATURE:
        return "signature";
    case OIDC_ISSUER:
        return "issuer";
    case OIDC_AUDIENCE:
        return "audience";
    case OIDC_EXPIRED:
        return "expired";
    case OIDC_NOT_YET:
        return "not-yet-valid";
    case OIDC_NONCE:
        return "nonce";
    case OIDC_TENANT:
        return "tenant";
    case OIDC_CLAIMS:
        return "claims";
    }
    return "unknown";
}

static void
free_list(char **v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i]);
    free(v);
}

void
oidc_claims_clear(struct oidc_claims *c)
{
    if (c == NULL)
        return;
    free_list(c->groups, c->ngroups);
    free_list(c->roles, c->nroles);
    memset(c, 0, sizeof *c);
}

/* 1 when s[0..n) is base64url text (no padding). */
static int
is_b64url(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];

        if (!isalnum(ch) && ch != '-' && ch != '_')
            return 0;
    }
    return 1;
}

/* Decodes base64url s[0..n) and parses it as a JSON object (NULL when it is not one). */
static json_t *
b64_json(const char *s, size_t n)
{
    unsigned char *bin;
    size_t len = 0;
    json_t *j = NULL;

    if (n == 0 || n > PART_MAX)
        return NULL;
    bin = xmalloc(n);
    if (sodium_base642bin(bin, n, s, n, NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) == 0)
        j = json_loadb((const char *)bin, len, JSON_REJECT_DUPLICATES, NULL);
    free(bin);
    if (j != NULL && !json_is_object(j)) {
        json_decref(j);
        j = NULL;
    }
    return j;
}

static int
fail(enum oidc_fail f, enum oidc_fail *why, struct errbuf *eb, const char *msg)
{
    *why = f;
    return err_set(eb, ERR_AUTH, "%s", msg);
}

/* The RSA signing key named kid in jwks, as a copy pinned to RS256; NULL when none. */
static json_t *
key_of(const json_t *jwks, const char *kid)
{
    const json_t *keys = json_object_get(jwks, "keys");
    size_t i;
    json_t *k;

    if (!json_is_array(keys))
        return NULL;
    json_array_foreach(keys, i, k)
    {
        const char *id = json_string_value(json_object_get(k, "kid"));
        const char *kty = json_string_value(json_object_get(k, "kty"));
        const char *use = json_string_value(json_object_get(k, "use"));
        const char *alg = json_string_value(json_object_get(k, "alg"));
        json_t *pin;

        if (id == NULL || strcmp(id, kid) != 0 || kty == NULL || strcmp(kty, "RSA") != 0)
            continue;
        if ((use != NULL && strcmp(use, "sig") != 0) || (alg != NULL && strcmp(alg, "RS256") != 0))
            continue;
        if (!json_is_string(json_object_get(k, "n")) || !json_is_string(json_object_get(k, "e")))
            continue;
        /* Only the public members, and alg pinned: libjose then refuses any other algorithm. */
        pin = json_pack("{s:s, s:O, s:O, s:s}", "kty", "RSA", "n", json_object_get(k, "n"), "e",
                        json_object_get(k, "e"), "alg", "RS256");
        return pin;
    }
    return NULL;
}

static void
jose_quiet(void *misc, const char *file, int line, uint64_t err, const char *fmt, va_list ap)
{
    (void)misc;
    (void)file;
    (void)line;
    (void)err;
    (void)fmt;
    (void)ap;
}

static int
verify_sig(const char *token, size_t h_len, size_t p_len, const json_t *key)
{
    jose_cfg_t *cfg = jose_cfg();
    json_t *jws;
    int ok;

    if (cfg == NULL)
        return 0;
    jose_cfg_set_err_func(cfg, jose_quiet, NULL);
    jws = json_pack("{s:s%, s:s%, s:s}", "protected", token, h_len, "payload", token + h_len + 1,
                    p_len, "signature", token + h_len + 1 + p_len + 1);
    ok = jws != NULL && jose_jws_ver(cfg, jws, NULL, key, false);
    json_decref(jws);
    jose_cfg_decref(cfg);
    return ok;
}

/* Copies a string claim into out[outsz]; 0 when absent (leaves ""), -1 when not a string or
 * too long. */
static int
claim_str(const json_t *c, const char *name, char *out, size_t outsz)
{
    const json_t *v = json_object_get(c, name);
    const char *s;

    out[0] = '\0';
    if (v == NULL)
        return 0;
    s = json_string_value(v);
    if (s == NULL || strlen(s) >= outsz)
        return -1;
    memcpy(out, s, strlen(s) + 1);
    return 1;
}

/* A string array claim, bounded: -1 when not an array of short strings. */
static int
claim_list(const json_t *c, const char *name, char ***out, size_t *n)
{
    const json_t *v = json_object_get(c, name);
    size_t i;
    json_t *e;

    if (v == NULL)
        return 0;
    if (!json_is_array(v) || json_array_size(v) > OIDC_CLAIMS_MAX)
        return -1;
    *out = xcalloc(json_array_size(v) + 1, sizeof **out);
    json_array_foreach(v, i, e)
    {
        const char *s = json_string_value(e);

        if (s == NULL || strlen(s) >= OIDC_VALUE_MAX)
            return -1;
        (*out)[(*n)++] = xstrdup(s);
    }
    return 1;
}

/* A NumericDate claim; -1 when absent or not a number. */
static int
claim_time(const json_t *c, const char *name, int64_t *out)
{
    const json_t *v = json_object_get(c, name);

    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v) && json_real_value(v) > -1e15 && json_real_value(v) < 1e15) {
        *out = (int64_t)json_real_value(v);
        return 0;
    }
    return -1;
}

static int
aud_ok(const json_t *aud, const char *client_id)
{
    if (json_is_string(aud))
        return strcmp(json_string_value(aud), client_id) == 0;
    /* One audience only: a token also meant for another app is not this app's. */
    return json_is_array(aud) && json_array_size(aud) == 1 &&
           json_is_string(json_array_get(aud, 0)) &&
           strcmp(json_string_value(json_array_get(aud, 0)), client_id) == 0;
}

int
oidc_validate(const char *token, const json_t *jwks, const struct oidc_expect *x,
              struct oidc_claims *out, enum oidc_fail *why, struct errbuf *eb)
{
    const char *d1, *d2;
    size_t len, h_len, p_len, s_len;
    json_t *hdr = NULL, *cl = NULL, *key = NULL;
    const char *alg, *kid, *s;
    int64_t exp = 0, nbf = 0, iat = 0, skew = x->skew < 0 ? OIDC_SKEW : x->skew;
    int rc = ERR_OK;

    memset(out, 0, sizeof *out);
    *why = OIDC_OK;
    len = token != NULL ? strnlen(token, OIDC_TOKEN_MAX + 1) : 0;
    if (len == 0 || len > OIDC_TOKEN_MAX)
        return fail(OIDC_MALFORMED, why, eb, "the ID token is missing or too long");
    d1 = memchr(token, '.', len);
    d2 = d1 != NULL ? memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - token)) : NULL;
    if (d1 == NULL || d2 == NULL || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - token)) != NULL)
        return fail(OIDC_MALFORMED, why, eb, "the ID token is not a signed JWT (three parts)");
    h_len = (size_t)(d1 - token);
    p_len = (size_t)(d2 - d1 - 1);
    s_len = len - h_len - p_len - 2;
    if (h_len == 0 || p_len == 0 || !is_b64url(token, h_len) || !is_b64url(d1 + 1, p_len) ||
        !is_b64url(d2 + 1, s_len))
        return fail(OIDC_MALFORMED, why, eb, "the ID token is not base64url text");
    if ((hdr = b64_json(token, h_len)) == NULL) {
        rc = fail(OIDC_MALFORMED, why, eb, "the ID token's header is not JSON");
        goto out;
    }
    alg = json_string_value(json_object_get(hdr, "alg"));
    if (alg == NULL || strcmp(alg, "RS256") != 0) {
        rc = fail(OIDC_ALG, why, eb, "the ID token is not signed with RS256");
        goto out;
    }
    if (json_object_get(hdr, "crit") != NULL) {
        rc = fail(OIDC_MALFORMED, why, eb, "the ID token's header has critical extensions");
        goto out;
    }
    kid = json_string_value(json_object_get(hdr, "kid"));
    if (kid == NULL || (key = key_of(jwks, kid)) == NULL) {
        rc = fail(OIDC_KID, why, eb,
                  "the ID token is signed with a key the tenant does not publish");
        goto out;
    }
    if (s_len == 0 || !verify_sig(token, h_len, p_len, key)) {
        rc = fail(OIDC_SIGNATURE, why, eb, "the ID token's signature does not verify");
        goto out;
    }
    if ((cl = b64_json(d1 + 1, p_len)) == NULL) {
        rc = fail(OIDC_MALFORMED, why, eb, "the ID token's claims are not JSON");
        goto out;
    }
    s = json_string_value(json_object_get(cl, "iss"));
    if (s == NULL || x->issuer == NULL || strcmp(s, x->issuer) != 0) {
        rc = fail(OIDC_ISSUER, why, eb, "the ID token comes from another issuer");
        goto out;
    }
    if (x->client_id == NULL || !aud_ok(json_object_get(cl, "aud"), x->client_id)) {
        rc = fail(OIDC_AUDIENCE, why, eb, "the ID token was issued for another application");
        goto out;
    }
    if (claim_time(cl, "exp", &exp) != 0 || x->now > exp + skew) {
        rc = fail(OIDC_EXPIRED, why, eb, "the ID token has expired");
        goto out;
    }
    if ((json_object_get(cl, "nbf") != NULL &&
         (claim_time(cl, "nbf", &nbf) != 0 || nbf > x->now + skew)) ||
        (json_object_get(cl, "iat") != NULL &&
         (claim_time(cl, "iat", &iat) != 0 || iat > x->now + skew))) {
        rc = fail(OIDC_NOT_YET, why, eb, "the ID token is not valid yet");
        goto out;
    }
    s = json_string_value(json_object_get(cl, "nonce"));
    if (s == NULL || x->nonce == NULL || x->nonce[0] == '\0' || strlen(s) != strlen(x->nonce) ||
        sodium_memcmp(s, x->nonce, strlen(s)) != 0) {
        rc = fail(OIDC_NONCE, why, eb, "the ID token belongs to another sign-in (nonce)");
        goto out;
    }
    s = json_string_value(json_object_get(cl, "tid"));
    if (s == NULL || x->tenant == NULL || strcasecmp(s, x->tenant) != 0) {
        rc = fail(OIDC_TENANT, why, eb, "the ID token comes from another tenant");
        goto out;
    }
    if (claim_str(cl, "oid", out->oid, sizeof out->oid) != 1 || out->oid[0] == '\0' ||
        claim_str(cl, "tid", out->tid, sizeof out->tid) != 1 ||
        claim_str(cl, "preferred_username", out->username, sizeof out->username) < 0 ||
        claim_str(cl, "name", out->name, sizeof out->name) < 0 ||
        claim_list(cl, "groups", &out->groups, &out->ngroups) < 0 ||
        claim_list(cl, "roles", &out->roles, &out->nroles) < 0) {
        rc = fail(OIDC_CLAIMS, why, eb,
                  "the ID token lacks the user's object id or has a bad claim");
        goto out;
    }
    /* Entra's group overage: "_claim_names": {"groups": "src1"} instead of the groups. */
    out->groups_overage = json_object_get(json_object_get(cl, "_claim_names"), "groups") != NULL ||
                          json_is_true(json_object_get(cl, "hasgroups"));
    out->exp = exp;
out:
    if (rc != ERR_OK)
        oidc_claims_clear(out);
    json_decref(hdr);
    json_decref(cl);
    json_decref(key);
    return rc;
}

/* ---- provider cache ---------------------------------------------------------------------- */

struct entry {
    char *login_url, *tenant;
    struct oidc_provider p;
    int64_t fetched_at; /* discovery document */
    int64_t refetch_at; /* last key refetch for an unknown kid */
    uint64_t used;
};

static pthread_mutex_t cache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct entry cache[OIDC_CACHE_MAX];
static uint64_t cache_tick;

void
oidc_provider_clear(struct oidc_provider *p)
{
    if (p == NULL)
        return;
    free(p->issuer);
    free(p->authorize_url);
    free(p->token_url);
    free(p->jwks_url);
    json_decref(p->jwks);
    memset(p, 0, sizeof *p);
}

static void
provider_copy(const struct oidc_provider *from, struct oidc_provider *to)
{
    to->issuer = xstrdup(from->issuer);
    to->authorize_url = xstrdup(from->authorize_url);
    to->token_url = xstrdup(from->token_url);
    to->jwks_url = xstrdup(from->jwks_url);
    to->jwks = json_deep_copy(from->jwks);
    to->keys_at = from->keys_at;
}

static void
entry_clear(struct entry *e)
{
    free(e->login_url);
    free(e->tenant);
    oidc_provider_clear(&e->p);
    memset(e, 0, sizeof *e);
}

void
oidc_cache_reset(void)
{
    pthread_mutex_lock(&cache_mu);
    for (size_t i = 0; i < OIDC_CACHE_MAX; i++)
        entry_clear(&cache[i]);
    pthread_mutex_unlock(&cache_mu);
}

/* GETs url as a JSON object, bounded. */
static int
fetch_json(const char *url, const char *ca_file, const char *what, json_t **out, struct errbuf *eb)
{
    struct http_opts ho = {0};
    struct http_req rq = {0};
    long status = 0;
    char *body = NULL;
    size_t n = 0;
    int rc;

    *out = NULL;
    ho.ca_file = ca_file != NULL && ca_file[0] != '\0' ? ca_file : NULL;
    rq.method = "GET";
    rq.url = url;
    rq.headers[0] = "Accept: application/json";
    rq.max_body = OIDC_DOC_MAX;
    rq.timeout_ms = OIDC_FETCH_TIMEOUT_MS;
    rc = http_fetch(&ho, &rq, &status, &body, &n, NULL, eb);
    if (rc != ERR_OK)
        return err_prefix(eb, rc, "reading the %s", what);
    if (status != 200) {
        rc = err_set(eb, ERR_HTTP, "reading the %s: HTTP %ld", what, status);
        goto out;
    }
    *out = json_loadb(body, n, 0, NULL);
    if (!json_is_object(*out)) {
        json_decref(*out);
        *out = NULL;
        rc = err_set(eb, ERR_PARSE, "the %s is not a JSON object", what);
    }
out:
    free(body);
    return rc;
}

static int
fetch_keys(const char *jwks_url, const char *ca_file, json_t **out, struct errbuf *eb)
{
    int rc = fetch_json(jwks_url, ca_file, "tenant's signing keys", out, eb);

    if (rc == ERR_OK && !json_is_array(json_object_get(*out, "keys"))) {
        json_decref(*out);
        *out = NULL;
        rc = err_set(eb, ERR_PARSE, "the tenant's signing keys have no \"keys\" list");
    }
    return rc;
}

/* Fetches discovery then keys into p. */
static int
fetch_provider(const char *login_url, const char *tenant, const char *ca_file, int64_t now,
               struct oidc_provider *p, struct errbuf *eb)
{
    struct buf url;
    json_t *doc = NULL;
    const char *iss, *az, *tok, *jw;
    int rc;

    buf_init(&url, 4096);
    buf_printf(&url, "%s/%s/v2.0/.well-known/openid-configuration", login_url, tenant);
    rc = fetch_json(buf_cstr(&url), ca_file, "tenant's OpenID configuration", &doc, eb);
    if (rc != ERR_OK)
        goto out;
    iss = json_string_value(json_object_get(doc, "issuer"));
    az = json_string_value(json_object_get(doc, "authorization_endpoint"));
    tok = json_string_value(json_object_get(doc, "token_endpoint"));
    jw = json_string_value(json_object_get(doc, "jwks_uri"));
    if (iss == NULL || az == NULL || tok == NULL || jw == NULL) {
        rc = err_set(eb, ERR_PARSE,
                     "the tenant's OpenID configuration lacks issuer, endpoints or jwks_uri");
        goto out;
    }
    p->issuer = xstrdup(iss);
    p->authorize_url = xstrdup(az);
    p->token_url = xstrdup(tok);
    p->jwks_url = xstrdup(jw);
    rc = fetch_keys(p->jwks_url, ca_file, &p->jwks, eb);
    p->keys_at = now;
out:
    if (rc != ERR_OK)
        oidc_provider_clear(p);
    json_decref(doc);
    buf_free(&url);
    return rc;
}

static struct entry *
find_entry(const char *login_url, const char *tenant)
{
    for (size_t i = 0; i < OIDC_CACHE_MAX; i++)
        if (cache[i].login_url != NULL && strcmp(cache[i].login_url, login_url) == 0 &&
            strcasecmp(cache[i].tenant, tenant) == 0)
            return &cache[i];
    return NULL;
}

int
oidc_provider_get(const char *login_url, const char *tenant, const char *ca_file, int64_t now,
                  struct oidc_provider *out, struct errbuf *eb)
{
    struct oidc_provider fresh = {0};
    struct entry *e;
    int rc;

    memset(out, 0, sizeof *out);
    pthread_mutex_lock(&cache_mu);
    e = find_entry(login_url, tenant);
    if (e != NULL && now - e->fetched_at < OIDC_CACHE_TTL && now >= e->fetched_at) {
        e->used = ++cache_tick;
        provider_copy(&e->p, out);
        pthread_mutex_unlock(&cache_mu);
        return ERR_OK;
    }
    pthread_mutex_unlock(&cache_mu);
    /* Fetched outside the lock: a slow provider does not hold up other accounts. */
    if ((rc = fetch_provider(login_url, tenant, ca_file, now, &fresh, eb)) != ERR_OK)
        return rc;
    pthread_mutex_lock(&cache_mu);
    if ((e = find_entry(login_url, tenant)) == NULL) {
        e = &cache[0];
        for (size_t i = 0; i < OIDC_CACHE_MAX; i++) {
            if (cache[i].login_url == NULL) {
                e = &cache[i];
                break;
            }
            if (cache[i].used < e->used)
                e = &cache[i];
        }
        entry_clear(e);
        e->login_url = xstrdup(login_url);
        e->tenant = xstrdup(tenant);
    }
    oidc_provider_clear(&e->p);
    e->p = fresh;
    e->fetched_at = now;
    e->used = ++cache_tick;
    provider_copy(&e->p, out);
    pthread_mutex_unlock(&cache_mu);
    log_info("sso provider fetched tenant=%s", tenant);
    return ERR_OK;
}

int
oidc_keys_refresh(const char *login_url, const char *tenant, const char *ca_file, int64_t now,
                  struct oidc_provider *out, struct errbuf *eb)
{
    struct entry *e;
    char *jwks_url = NULL;
    json_t *keys = NULL;
    int rc;

    pthread_mutex_lock(&cache_mu);
    e = find_entry(login_url, tenant);
    if (e == NULL) {
        pthread_mutex_unlock(&cache_mu);
        return oidc_provider_get(login_url, tenant, ca_file, now, out, eb);
    }
    if (e->refetch_at != 0 && now - e->refetch_at < OIDC_REFETCH_MIN && now >= e->refetch_at) {
        pthread_mutex_unlock(&cache_mu);
        return err_set(eb, ERR_THROTTLED, "the tenant's signing keys were read again just now");
    }
    e->refetch_at = now;
    jwks_url = xstrdup(e->p.jwks_url);
    pthread_mutex_unlock(&cache_mu);
    rc = fetch_keys(jwks_url, ca_file, &keys, eb);
    free(jwks_url);
    if (rc != ERR_OK)
        return rc;
    pthread_mutex_lock(&cache_mu);
    if ((e = find_entry(login_url, tenant)) != NULL) {
        json_decref(e->p.jwks);
        e->p.jwks = keys;
        e->p.keys_at = now;
        keys = NULL;
        memset(out, 0, sizeof *out);
        provider_copy(&e->p, out);
    } else {
        rc = err_set(eb, ERR_NOTFOUND, "the tenant's provider left the cache; try again");
    }
    pthread_mutex_unlock(&cache_mu);
    json_decref(keys);
    if (rc == ERR_OK)
        log_info("sso signing keys read again tenant=%s", tenant);
    return rc;
}

/* ---- code exchange ----------------------------------------------------------------------- */

static void
form_add(struct buf *b, const char *k, const char *v)
{
    if (b->len > 0)
        buf_addstr(b, "&");
    buf_addstr(b, k);
    buf_addstr(b, "=");
    buf_add_urlenc(b, v);
}

/* Keeps printable ASCII of s, at most n characters: Entra's description goes into a page. */
static void
clean_copy(char *out, size_t outsz, const char *s)
{
    size_t j = 0;

    for (size_t i = 0; s != NULL && s[i] != '\0' && s[i] != '\r' && s[i] != '\n' && j + 1 < outsz;
         i++)
        if ((unsigned char)s[i] >= 0x20 && (unsigned char)s[i] < 0x7f)
            out[j++] = s[i];
    out[j] = '\0';
}

int
oidc_exchange_code(const char *token_url, const char *ca_file, const char *client_id,
                   const char *secret, const char *code, const char *verifier,
                   const char *redirect_uri, char **id_token, struct errbuf *eb)
{
    struct http_opts ho = {0};
    struct http_req rq = {0};
    struct buf form;
    long status = 0;
    char *body = NULL;
    size_t n = 0;
    json_t *j = NULL;
    const char *tok;
    int rc;

    *id_token = NULL;
    buf_init(&form, 64 * 1024);
    form_add(&form, "grant_type", "authorization_code");
    form_add(&form, "client_id", client_id);
    form_add(&form, "client_secret", secret);
    form_add(&form, "code", code);
    form_add(&form, "redirect_uri", redirect_uri);
    form_add(&form, "code_verifier", verifier);
    form_add(&form, "scope", "openid profile");
    ho.ca_file = ca_file != NULL && ca_file[0] != '\0' ? ca_file : NULL;
    rq.method = "POST";
    rq.url = token_url;
    rq.headers[0] = "Content-Type: application/x-www-form-urlencoded";
    rq.headers[1] = "Accept: application/json";
    rq.body = form.data;
    rq.body_len = form.len;
    rq.max_body = OIDC_DOC_MAX;
    rq.timeout_ms = OIDC_FETCH_TIMEOUT_MS;
    rc = http_fetch(&ho, &rq, &status, &body, &n, NULL, eb);
    sodium_memzero(form.data, form.len);
    if (rc != ERR_OK) {
        rc = err_prefix(eb, rc, "redeeming the sign-in code");
        goto out;
    }
    j = json_loadb(body, n, 0, NULL);
    if (status != 200) {
        const char *e = json_string_value(json_object_get(j, "error"));
        const char *d = json_string_value(json_object_get(j, "error_description"));
        char ce[64], cd[200];

        clean_copy(ce, sizeof ce, e != NULL ? e : "unknown");
        clean_copy(cd, sizeof cd, d != NULL ? d : "");
        rc = err_set(eb, status >= 500 ? ERR_HTTP : ERR_AUTH,
                     "Microsoft refused the sign-in code (HTTP %ld, %s%s%s)", status, ce,
                     cd[0] != '\0' ? ": " : "", cd);
        goto out;
    }
    tok = json_string_value(json_object_get(j, "id_token"));
    if (tok == NULL || strlen(tok) > OIDC_TOKEN_MAX) {
        rc =
            err_set(eb, ERR_PARSE, "Microsoft's answer to the sign-in code has no usable ID token");
        goto out;
    }
    *id_token = xstrdup(tok);
out:
    if (body != NULL) {
        sodium_memzero(body, n);
        free(body);
    }
    json_decref(j);
    buf_free(&form);
    return rc;
}

/* ---- PKCE and the authorize URL ---------------------------------------------------------- */

void
oidc_random(char *out)
{
    unsigned char r[32];

    randombytes_buf(r, sizeof r);
    sodium_bin2base64(out, OIDC_RANDOM_LEN + 1, r, sizeof r,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(r, sizeof r);
}

void
oidc_pkce_challenge(const char *verifier, char *out)
{
    unsigned char h[crypto_hash_sha256_BYTES];

    crypto_hash_sha256(h, (const unsigned char *)verifier, strlen(verifier));
    sodium_bin2base64(out, OIDC_RANDOM_LEN + 1, h, sizeof h,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
}

char *
oidc_authorize_url(const char *authorize_url, const char *client_id, const char *redirect_uri,
                   const char *state, const char *nonce, const char *challenge)
{
    struct buf b;
    char *s;

    buf_init(&b, 16 * 1024);
    buf_addstr(&b, authorize_url);
    buf_addstr(&b, strchr(authorize_url, '?') != NULL ? "&" : "?");
    buf_addstr(&b, "client_id=");
    buf_add_urlenc(&b, client_id);
    buf_addstr(&b, "&response_type=code&response_mode=query&scope=openid%20profile&redirect_uri=");
    buf_add_urlenc(&b, redirect_uri);
    buf_addstr(&b, "&state=");
    buf_add_urlenc(&b, state);
    buf_addstr(&b, "&nonce=");
    buf_add_urlenc(&b, nonce);
    buf_addstr(&b, "&code_challenge=");
    buf_add_urlenc(&b, challenge);
    buf_addstr(&b, "&code_challenge_method=S256");
    s = xstrdup(buf_cstr(&b));
    buf_free(&b);
    return s;
}

/* ---- role mapping ------------------------------------------------------------------------ */

/* Splits the next line of *p into value and role; 0 at the end, 1 for a line, -1 malformed. */
static int
map_next(const char **p, char *value, size_t vsz, char *role, size_t rsz)
{
    const char *s = *p, *eol, *eq;
    size_t vl, rl;

    while (*s == '\n' || *s == '\r' || *s == ' ' || *s == ',')
        s++;
    if (*s == '\0')
        return 0;
    eol = s + strcspn(s, "\n,");
    *p = eol;
    eq = memchr(s, '=', (size_t)(eol - s));
    if (eq == NULL)
        return -1;
    vl = (size_t)(eq - s);
    rl = (size_t)(eol - eq - 1);
    while (rl > 0 && (eq[rl] == '\r' || eq[rl] == ' '))
        rl--;
    if (vl == 0 || vl >= vsz || rl == 0 || rl >= rsz)
        return -1;
    memcpy(value, s, vl);
    value[vl] = '\0';
    memcpy(role, eq + 1, rl);
    role[rl] = '\0';
    for (size_t i = 0; i < vl; i++) {
        unsigned char ch = (unsigned char)value[i];

        if (!isalnum(ch) && strchr("._:-", ch) == NULL)
            return -1;
    }
    return strcmp(role, "admin") == 0 || strcmp(role, "viewer") == 0 ? 1 : -1;
}

int
oidc_map_check(const char *map, struct errbuf *eb)
{
    const char *p = map;
    char v[129], r[16];
    int n = 0, k;

    if (map == NULL)
        return err_set(eb, ERR_INVAL, "the role mapping is empty");
    while ((k = map_next(&p, v, sizeof v, r, sizeof r)) != 0) {
        n++;
        if (k < 0)
            return err_set(eb, ERR_INVAL,
                           "role mapping entry %d is not VALUE=admin or VALUE=viewer (VALUE: a "
                           "group object id or an app role, 1 to 128 of A-Z a-z 0-9 . _ : -)",
                           n);
        if (n > OIDC_MAP_MAX)
            return err_set(eb, ERR_INVAL, "the role mapping has more than %d entries",
                           OIDC_MAP_MAX);
    }
    if (n == 0)
        return err_set(eb, ERR_INVAL, "the role mapping is empty: nobody could sign in");
    return ERR_OK;
}

static int
has_value(char *const *v, size_t n, const char *want)
{
    for (size_t i = 0; i < n; i++)
        if (strcasecmp(v[i], want) == 0)
            return 1;
    return 0;
}

const char *
oidc_map_role(const char *map, const struct oidc_claims *c)
{
    const char *p = map, *best = NULL;
    char v[129], r[16];
    int k, n = 0;

    if (map == NULL)
        return NULL;
    while ((k = map_next(&p, v, sizeof v, r, sizeof r)) != 0 && n++ < OIDC_MAP_MAX) {
        if (k < 0)
            continue;
        if (!has_value(c->groups, c->ngroups, v) && !has_value(c->roles, c->nroles, v))
            continue;
        if (strcmp(r, "admin") == 0)
            return "admin";
        best = "viewer";
    }
    return best;
}

/* ---- pending sign-ins -------------------------------------------------------------------- */

struct pend {
    char cookie[OIDC_RANDOM_LEN + 1];
    struct oidc_pending p;
};

static pthread_mutex_t pend_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pend pend[OIDC_PENDING_MAX];

void
oidc_pending_reset(void)
{
    pthread_mutex_lock(&pend_mu);
    sodium_memzero(pend, sizeof pend);
    pthread_mutex_unlock(&pend_mu);
}

int
oidc_pending_start(int64_t account_id, const char *next, int64_t now, struct oidc_pending *p,
                   char *cookie_out, struct errbuf *eb)
{
    struct pend *slot = NULL;

    memset(p, 0, sizeof *p);
    p->account_id = account_id;
    oidc_random(p->state);
    oidc_random(p->nonce);
    oidc_random(p->verifier);
    snprintf(p->next, sizeof p->next, "%s", next != NULL ? next : "/assets");
    p->deadline = now + OIDC_PENDING_TTL;
    oidc_random(cookie_out);
    pthread_mutex_lock(&pend_mu);
    for (size_t i = 0; i < OIDC_PENDING_MAX; i++) {
        if (pend[i].cookie[0] == '\0' || pend[i].p.deadline < now) {
            slot = &pend[i];
            break;
        }
    }
    if (slot != NULL) {
        memcpy(slot->cookie, cookie_out, OIDC_RANDOM_LEN + 1);
        slot->p = *p;
    }
    pthread_mutex_unlock(&pend_mu);
    if (slot == NULL) {
        sodium_memzero(p, sizeof *p);
        cookie_out[0] = '\0';
        return err_set(eb, ERR_THROTTLED, "too many sign-ins are under way; try again in a minute");
    }
    return ERR_OK;
}

int
oidc_pending_take(const char *cookie, int64_t now, struct oidc_pending *p, struct errbuf *eb)
{
    int rc = ERR_AUTH;

    memset(p, 0, sizeof *p);
    if (cookie == NULL || strlen(cookie) != OIDC_RANDOM_LEN)
        return err_set(eb, ERR_AUTH, "no sign-in was started in this browser");
    pthread_mutex_lock(&pend_mu);
    for (size_t i = 0; i < OIDC_PENDING_MAX; i++) {
        if (pend[i].cookie[0] == '\0' ||
            sodium_memcmp(pend[i].cookie, cookie, OIDC_RANDOM_LEN) != 0)
            continue;
        if (pend[i].p.deadline >= now) {
            *p = pend[i].p;
            rc = ERR_OK;
        }
        sodium_memzero(&pend[i], sizeof pend[i]);
        break;
    }
    pthread_mutex_unlock(&pend_mu);
    if (rc != ERR_OK)
        return err_set(eb, ERR_AUTH, "the sign-in expired or was already used");
    return ERR_OK;
}
