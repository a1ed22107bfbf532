/* sim_oidc.c - the simulator's sign-in for people (OpenID Connect, authorization code flow with
 * PKCE) in the partner's tenant, for memsync's single sign-on (docs/SIMULATOR.md "Sign-in"):
 *   GET  /login/{tenant}/discovery/v2.0/keys       the key set (RS256, kid)
 *   GET  /login/{tenant}/oauth2/v2.0/authorize     a page listing the users to pick, or with
 *                                                  login_hint a redirect with code and state
 *   POST /login/{tenant}/oauth2/v2.0/token         grant_type=authorization_code
 *   GET|POST /_sim/oidc                            the app, users, key rotation, next-token faults
 * The discovery document is sim_entra.c's. The RSA key is made at start (libjose); codes live
 * SIM_OIDC_CODE_TTL seconds and are used once. State is guarded by its own mutex.
 */
#include <jansson.h>
#include <jose/jose.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "clock.h"
#include "mem.h"
#include "simsrv.h"

#define SIM_OIDC_CODES    128
#define SIM_OIDC_CODE_TTL 300
#define SIM_OIDC_USERS    32
#define SIM_OIDC_ID_LIFE  3600

struct code {
    char code[48];
    char redirect_uri[512];
    char nonce[256];
    char challenge[128];
    int user;
    int64_t expires;
    int used;
};

static struct {
    pthread_mutex_t mu;
    char client_id[37];
    char secret[48];
    json_t *key, *old_key; /* private JWKs with kid; old_key NULL when removed */
    int key_serial;
    json_t *users;         /* [{oid, preferred_username, name, groups?, roles?}] */
    json_t *redirect_uris; /* [] = any loopback URI */
    char fault[32];
    struct code codes[SIM_OIDC_CODES];
    long issued;
} o = {.mu = PTHREAD_MUTEX_INITIALIZER};

static json_t *
new_key(void)
{
    json_t *k = json_pack("{s:s}", "alg", "RS256");
    char kid[48];

    if (!jose_jwk_gen(NULL, k))
        ASSERT(!"jose_jwk_gen failed");
    snprintf(kid, sizeof kid, "sim-key-%d", ++o.key_serial);
    json_object_set_new(k, "kid", json_string(kid));
    json_object_set_new(k, "use", json_string("sig"));
    return k;
}

static json_t *
default_users(const char *domain)
{
    char a[160], v[160], r[160], x[160];

    snprintf(a, sizeof a, "ada.admin@%s", domain);
    snprintf(v, sizeof v, "victor.viewer@%s", domain);
    snprintf(r, sizeof r, "rita.roles@%s", domain);
    snprintf(x, sizeof x, "otto.outsider@%s", domain);
    return json_pack(
        "[{s:s, s:s, s:s, s:[s]}, {s:s, s:s, s:s, s:[s]}, {s:s, s:s, s:s, s:[s]},"
        " {s:s, s:s, s:s}]",
        "oid", "0a0a0a0a-1111-4111-8111-000000000001", "preferred_username", a, "name", "Ada Admin",
        "groups", SIM_OIDC_ADMIN_GROUP, "oid", "0a0a0a0a-1111-4111-8111-000000000002",
        "preferred_username", v, "name", "Victor Viewer", "groups", SIM_OIDC_VIEWER_GROUP, "oid",
        "0a0a0a0a-1111-4111-8111-000000000003", "preferred_username", r, "name", "Rita Roles",
        "roles", "memsync.admin", "oid", "0a0a0a0a-1111-4111-8111-000000000004",
        "preferred_username", x, "name", "Otto Outsider");
}

void
sim_oidc_init(void)
{
    unsigned char s[30];

    sim_rand_guid(o.client_id);
    randombytes_buf(s, sizeof s);
    sodium_bin2base64(o.secret, sizeof o.secret, s, sizeof s,
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    o.key = new_key();
    o.redirect_uris = json_array();
}

const char *
sim_oidc_client_id(void)
{
    return o.client_id;
}

const char *
sim_oidc_client_secret(void)
{
    return o.secret;
}

/* The users, made on first use from the world's partner domain (o.mu held). */
static json_t *
users_locked(void)
{
    if (o.users == NULL) {
        pthread_rwlock_rdlock(&g.w->lock);
        o.users = default_users(g.w->partner_domain);
        pthread_rwlock_unlock(&g.w->lock);
    }
    return o.users;
}

static int
partner_tenant(const char *tenant)
{
    int ok;

    pthread_rwlock_rdlock(&g.w->lock);
    ok = strcasecmp(tenant, g.w->partner_tenant_id) == 0 ||
         strcasecmp(tenant, g.w->partner_domain) == 0;
    pthread_rwlock_unlock(&g.w->lock);
    return ok;
}

static struct resp *
oauth_error(int status, const char *error, long code, const char *msg)
{
    struct resp *r = sim_resp_new(status, SIM_JSON_CT);
    char desc[512];

    snprintf(desc, sizeof desc, "AADSTS%ld: %s", code, msg);
    sim_resp_json(r, json_pack("{s:s, s:s, s:[I]}", "error", error, "error_description", desc,
                               "error_codes", (json_int_t)code));
    sim_resp_hdr(r, "Cache-Control", "no-store, no-cache");
    return r;
}

static void
html_esc(struct buf *b, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        switch (*s) {
        case '<':
            buf_addstr(b, "&lt;");
            break;
        case '>':
            buf_addstr(b, "&gt;");
            break;
        case '&':
            buf_addstr(b, "&amp;");
            break;
        case '"':
            buf_addstr(b, "&quot;");
            break;
        default:
            buf_add(b, s, 1);
        }
    }
}

static struct resp *
html_page(int status, const char *title, const char *text, const char *extra_html)
{
    struct resp *r = sim_resp_new(status, "text/html; charset=utf-8");
    struct buf b;

    buf_init(&b, 256 * 1024);
    buf_addstr(&b, "<!doctype html><html><head><meta charset=\"utf-8\"><title>");
    html_esc(&b, title);
    buf_addstr(&b, "</title></head><body><h1>");
    html_esc(&b, title);
    buf_addstr(&b, "</h1><p>");
    html_esc(&b, text);
    buf_addstr(&b, "</p>");
    if (extra_html != NULL)
        buf_addstr(&b, extra_html);
    buf_addstr(&b, "</body></html>");
    sim_resp_buf(r, &b);
    return r;
}

static int
loopback_uri(const char *u)
{
    static const char *const ok[] = {"http://127.0.0.1:",  "http://127.0.0.1/",
                                     "http://localhost:",  "http://localhost/",
                                     "https://127.0.0.1:", "https://localhost:"};

    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strncmp(u, ok[i], strlen(ok[i])) == 0)
            return 1;
    return 0;
}

/* o.mu held. */
static int
redirect_ok(const char *u)
{
    size_t i;
    json_t *v;

    if (json_array_size(o.redirect_uris) == 0)
        return loopback_uri(u);
    json_array_foreach(o.redirect_uris, i, v) if (strcmp(json_string_value(v), u) == 0) return 1;
    return 0;
}

static const char *const authorize_args[] = {
    "client_id",     "response_type",  "redirect_uri",          "scope", "state", "nonce",
    "response_mode", "code_challenge", "code_challenge_method",
};

static struct resp *
authorize(struct MHD_Connection *c, const char *tenant)
{
    const char *client_id = sim_arg_lookup(c, "client_id");
    const char *redirect = sim_arg_lookup(c, "redirect_uri");
    const char *rtype = sim_arg_lookup(c, "response_type");
    const char *state = sim_arg_lookup(c, "state");
    const char *nonce = sim_arg_lookup(c, "nonce");
    const char *chal = sim_arg_lookup(c, "code_challenge");
    const char *method = sim_arg_lookup(c, "code_challenge_method");
    const char *hint = sim_arg_lookup(c, "login_hint");
    struct resp *r = NULL;
    struct buf b;
    json_t *users, *u;
    size_t i;
    int pick = -1;

    buf_init(&b, 256 * 1024);
    if (!partner_tenant(tenant))
        return html_page(400, "Sign in",
                         "AADSTS90002: this simulator signs people in to the "
                         "partner's tenant only.",
                         NULL);
    pthread_mutex_lock(&o.mu);
    if (client_id == NULL || strcasecmp(client_id, o.client_id) != 0) {
        r = html_page(400, "Sign in",
                      "AADSTS700016: Application with this identifier was not found in the "
                      "directory.",
                      NULL);
        goto out;
    }
    if (redirect == NULL || strlen(redirect) >= sizeof o.codes[0].redirect_uri ||
        !redirect_ok(redirect)) {
        r = html_page(400, "Sign in",
                      "AADSTS50011: The redirect URI specified in the request does not match the "
                      "redirect URIs configured for the application.",
                      NULL);
        goto out;
    }
    if (rtype == NULL || strcmp(rtype, "code") != 0 || nonce == NULL ||
        strlen(nonce) >= sizeof o.codes[0].nonce || chal == NULL ||
        strlen(chal) >= sizeof o.codes[0].challenge || method == NULL ||
        strcmp(method, "S256") != 0) {
        r = html_page(400, "Sign in",
                      "AADSTS900144: response_type=code, a nonce and an S256 code_challenge are "
                      "required.",
                      NULL);
        goto out;
    }
    users = users_locked();
    if (hint == NULL) {
        /* A page listing the users: each link is this request again with login_hint. */
        buf_addstr(&b, "<ul>");
        json_array_foreach(users, i, u)
        {
            const char *upn = json_string_value(json_object_get(u, "preferred_username"));

            buf_addstr(&b, "<li><a href=\"?");
            for (size_t k = 0; k < sizeof authorize_args / sizeof authorize_args[0]; k++) {
                const char *v = sim_arg_lookup(c, authorize_args[k]);

                if (v == NULL)
                    continue;
                buf_printf(&b, "%s=", authorize_args[k]);
                buf_add_urlenc(&b, v);
                buf_addstr(&b, "&amp;");
            }
            buf_addstr(&b, "login_hint=");
            buf_add_urlenc(&b, upn);
            buf_addstr(&b, "\">");
            html_esc(&b, json_string_value(json_object_get(u, "name")));
            buf_addstr(&b, " (");
            html_esc(&b, upn);
            buf_addstr(&b, ")</a></li>");
        }
        buf_addstr(&b, "</ul>");
        r = html_page(200, "Pick an account", "Sign in to the memsync simulator as:", buf_cstr(&b));
        goto out;
    }
    json_array_foreach(users, i, u)
    {
        if (strcasecmp(json_string_value(json_object_get(u, "preferred_username")), hint) == 0)
            pick = (int)i;
    }
    if (pick < 0) {
        r = html_page(400, "Sign in",
                      "AADSTS50034: The user account does not exist in this directory.", NULL);
        goto out;
    }
    {
        struct code *slot = &o.codes[0];
        int64_t now = clock_now();
        unsigned char raw[32];

        for (i = 0; i < SIM_OIDC_CODES; i++) {
            if (o.codes[i].code[0] == '\0' || o.codes[i].used || o.codes[i].expires < now) {
                slot = &o.codes[i];
                break;
            }
            if (o.codes[i].expires < slot->expires)
                slot = &o.codes[i];
        }
        memset(slot, 0, sizeof *slot);
        randombytes_buf(raw, sizeof raw);
        sodium_bin2base64(slot->code, sizeof slot->code, raw, sizeof raw,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
        snprintf(slot->redirect_uri, sizeof slot->redirect_uri, "%s", redirect);
        snprintf(slot->nonce, sizeof slot->nonce, "%s", nonce);
        snprintf(slot->challenge, sizeof slot->challenge, "%s", chal);
        slot->user = pick;
        slot->expires = now + SIM_OIDC_CODE_TTL;
        buf_addstr(&b, redirect);
        buf_addstr(&b, strchr(redirect, '?') != NULL ? "&code=" : "?code=");
        buf_addstr(&b, slot->code);
        if (state != NULL) {
            buf_addstr(&b, "&state=");
            buf_add_urlenc(&b, state);
        }
        r = sim_resp_new(302, "text/html; charset=utf-8");
        sim_resp_hdr(r, "Location", buf_cstr(&b));
        sim_resp_hdr(r, "Cache-Control", "no-store");
    }
out:
    pthread_mutex_unlock(&o.mu);
    buf_free(&b);
    return r;
}

/* application/x-www-form-urlencoded value of k in body (decoded copy), or NULL. */
static char *
form_value(const char *body, const char *k)
{
    size_t kl = strlen(k);

    for (const char *p = body; p != NULL && *p != '\0';) {
        const char *amp = strchr(p, '&');
        size_t n = amp != NULL ? (size_t)(amp - p) : strlen(p);

        if (n > kl && strncmp(p, k, kl) == 0 && p[kl] == '=') {
            char *v = xmalloc(n - kl);

            memcpy(v, p + kl + 1, n - kl - 1);
            v[n - kl - 1] = '\0';
            if (simtok_form_decode(v) != ERR_OK) {
                free(v);
                return NULL;
            }
            return v;
        }
        p = amp != NULL ? amp + 1 : NULL;
    }
    return NULL;
}

static char *
b64url(const void *p, size_t n)
{
    size_t len = sodium_base64_encoded_len(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *s = xmalloc(len);

    sodium_bin2base64(s, len, p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return s;
}

/* The compact JWS of claims signed with key under header hdr (o.mu held). */
static char *
sign_compact(json_t *hdr, json_t *claims, const json_t *key)
{
    char *payload_json = json_dumps(claims, JSON_COMPACT);
    char *payload = b64url(payload_json, strlen(payload_json));
    json_t *jws = json_pack("{s:s}", "payload", payload);
    json_t *sig = json_pack("{s:O}", "protected", hdr);
    struct buf b;
    char *out;

    buf_init(&b, 64 * 1024);
    if (!jose_jws_sig(NULL, jws, sig, key))
        ASSERT(!"jose_jws_sig failed");
    buf_printf(&b, "%s.%s.%s", json_string_value(json_object_get(jws, "protected")), payload,
               json_string_value(json_object_get(jws, "signature")));
    out = xstrdup(buf_cstr(&b));
    buf_free(&b);
    json_decref(jws);
    json_decref(sig);
    free(payload);
    free(payload_json);
    return out;
}

/* The ID token for user u with the pending fault applied (o.mu held; the fault is used up). */
static char *
id_token(const char *tenant, const json_t *u, const char *nonce)
{
    char iss[300], tid[40], *tok, *dot;
    int64_t now = clock_now();
    const char *f = o.fault;
    json_t *claims, *hdr;

    pthread_rwlock_rdlock(&g.w->lock);
    snprintf(tid, sizeof tid, "%s", g.w->partner_tenant_id);
    pthread_rwlock_unlock(&g.w->lock);
    snprintf(iss, sizeof iss, "%s/login/%s/v2.0", g.base, tenant);
    claims = json_pack("{s:s, s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:s}", "ver", "2.0",
                       "iss", iss, "aud", o.client_id, "tid", tid, "iat", (json_int_t)now, "nbf",
                       (json_int_t)now, "exp", (json_int_t)(now + SIM_OIDC_ID_LIFE), "nonce", nonce,
                       "oid", json_string_value(json_object_get(u, "oid")), "sub",
                       json_string_value(json_object_get(u, "oid")), "preferred_username",
                       json_string_value(json_object_get(u, "preferred_username")), "name",
                       json_string_value(json_object_get(u, "name")));
    if (json_object_get(u, "groups") != NULL)
        json_object_set(claims, "groups", json_object_get(u, "groups"));
    if (json_object_get(u, "roles") != NULL)
        json_object_set(claims, "roles", json_object_get(u, "roles"));
    hdr = json_pack("{s:s, s:s, s:O}", "typ", "JWT", "alg", "RS256", "kid",
                    json_object_get(o.key, "kid"));
    if (strcmp(f, "wrong_aud") == 0)
        json_object_set_new(claims, "aud", json_string("00000000-0000-0000-0000-00000000a0d0"));
    else if (strcmp(f, "wrong_tid") == 0)
        json_object_set_new(claims, "tid", json_string("99999999-9999-4999-8999-999999999999"));
    else if (strcmp(f, "wrong_iss") == 0)
        json_object_set_new(claims, "iss",
                            json_string("https://sts.example.invalid/other-tenant/v2.0"));
    else if (strcmp(f, "wrong_nonce") == 0)
        json_object_set_new(claims, "nonce", json_string("not-the-nonce-memsync-sent"));
    else if (strcmp(f, "expired") == 0) {
        json_object_set_new(claims, "iat", json_integer(now - 7200));
        json_object_set_new(claims, "nbf", json_integer(now - 7200));
        json_object_set_new(claims, "exp", json_integer(now - 3600));
    }
    if (strcmp(f, "unknown_kid") == 0) {
        json_t *other = new_key();

        json_object_set(hdr, "kid", json_object_get(other, "kid"));
        tok = sign_compact(hdr, claims, other);
        json_decref(other);
    } else if (strcmp(f, "alg_none") == 0 || strcmp(f, "alg_hs256") == 0) {
        json_t *oct = json_pack("{s:s}", "alg", "HS256");

        json_object_set_new(hdr, "alg", json_string(strcmp(f, "alg_none") == 0 ? "none" : "HS256"));
        if (strcmp(f, "alg_none") == 0) {
            char *hj = json_dumps(hdr, JSON_COMPACT), *cj = json_dumps(claims, JSON_COMPACT);
            char *h64 = b64url(hj, strlen(hj)), *c64 = b64url(cj, strlen(cj));
            struct buf b;

            buf_init(&b, 64 * 1024);
            buf_printf(&b, "%s.%s.", h64, c64);
            tok = xstrdup(buf_cstr(&b));
            buf_free(&b);
            free(hj);
            free(cj);
            free(h64);
            free(c64);
        } else {
            jose_jwk_gen(NULL, oct);
            tok = sign_compact(hdr, claims, oct);
        }
        json_decref(oct);
    } else {
        tok = sign_compact(hdr, claims, o.key);
    }
    if (strcmp(f, "bad_signature") == 0 && (dot = strrchr(tok, '.')) != NULL && dot[1] != '\0') {
        /* Flip a bit in the middle of the signature: still base64url, no longer valid. */
        char *p = dot + 1 + strlen(dot + 1) / 2;

        *p = *p == 'A' ? 'B' : 'A';
    }
    o.fault[0] = '\0';
    o.issued++;
    json_decref(claims);
    json_decref(hdr);
    return tok;
}

static struct resp *
token(struct req *q, const char *tenant)
{
    const char *body = q->body.data != NULL ? q->body.data : "";
    char *client_id = form_value(body, "client_id"), *secret = form_value(body, "client_secret");
    char *code = form_value(body, "code"), *redirect = form_value(body, "redirect_uri");
    char *verifier = form_value(body, "code_verifier");
    char chal[64];
    struct code *cd = NULL;
    struct resp *r = NULL;
    int64_t now = clock_now();

    pthread_mutex_lock(&o.mu);
    if (!partner_tenant(tenant)) {
        r = oauth_error(400, "invalid_request", 90002, "Tenant not found.");
        goto out;
    }
    if (client_id == NULL || strcasecmp(client_id, o.client_id) != 0) {
        r = oauth_error(400, "unauthorized_client", 700016,
                        "Application with identifier was not found in the directory.");
        goto out;
    }
    if (secret == NULL || strlen(secret) != strlen(o.secret) ||
        sodium_memcmp(secret, o.secret, strlen(o.secret)) != 0) {
        r = oauth_error(401, "invalid_client", 7000215, "Invalid client secret provided.");
        goto out;
    }
    for (size_t i = 0; code != NULL && i < SIM_OIDC_CODES; i++)
        if (o.codes[i].code[0] != '\0' && strcmp(o.codes[i].code, code) == 0)
            cd = &o.codes[i];
    if (cd == NULL || cd->used || cd->expires < now) {
        if (cd != NULL)
            cd->used = 1;
        r = oauth_error(400, "invalid_grant", 70008,
                        "The provided authorization code or refresh token has expired or was "
                        "already redeemed.");
        goto out;
    }
    cd->used = 1;
    if (redirect == NULL || strcmp(redirect, cd->redirect_uri) != 0) {
        r = oauth_error(400, "invalid_grant", 50148,
                        "The redirect_uri does not match the one of the authorization request.");
        goto out;
    }
    if (verifier == NULL) {
        r = oauth_error(400, "invalid_request", 50148, "The code_verifier is missing.");
        goto out;
    }
    {
        unsigned char h[crypto_hash_sha256_BYTES];

        crypto_hash_sha256(h, (const unsigned char *)verifier, strlen(verifier));
        sodium_bin2base64(chal, sizeof chal, h, sizeof h, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    }
    if (strcmp(chal, cd->challenge) != 0) {
        r = oauth_error(400, "invalid_grant", 501481,
                        "The Code_Verifier does not match the code_challenge supplied in the "
                        "authorization request.");
        goto out;
    }
    {
        json_t *u = json_array_get(users_locked(), (size_t)cd->user);
        char *idt = u != NULL ? id_token(tenant, u, cd->nonce) : NULL;
        char tid[40];

        if (idt == NULL) {
            r = oauth_error(400, "invalid_grant", 50034, "The user account no longer exists.");
            goto out;
        }
        pthread_rwlock_rdlock(&g.w->lock);
        snprintf(tid, sizeof tid, "%s", g.w->partner_tenant_id);
        pthread_rwlock_unlock(&g.w->lock);
        char *at = simtok_issue(tid, o.client_id, SIM_GRAPH_AUD, now, SIM_TOKEN_LIFE);
        r = sim_resp_new(200, SIM_JSON_CT);
        sim_resp_json(r,
                      json_pack("{s:s, s:s, s:i, s:i, s:s, s:s}", "token_type", "Bearer", "scope",
                                "openid profile", "expires_in", SIM_TOKEN_LIFE, "ext_expires_in",
                                SIM_TOKEN_LIFE, "access_token", at, "id_token", idt));
        sim_resp_hdr(r, "Cache-Control", "no-store, no-cache");
        free(at);
        free(idt);
    }
out:
    pthread_mutex_unlock(&o.mu);
    free(client_id);
    if (secret != NULL)
        sodium_memzero(secret, strlen(secret));
    free(secret);
    free(code);
    free(redirect);
    free(verifier);
    return r;
}

static struct resp *
keys(const char *tenant)
{
    json_t *arr = json_array(), *ks[2];
    struct resp *r;

    if (!partner_tenant(tenant))
        return oauth_error(400, "invalid_tenant", 90002, "Tenant not found.");
    pthread_mutex_lock(&o.mu);
    ks[0] = o.key;
    ks[1] = o.old_key;
    for (int i = 0; i < 2; i++) {
        json_t *pub;

        if (ks[i] == NULL)
            continue;
        pub = json_deep_copy(ks[i]);
        jose_jwk_pub(NULL, pub);
        json_array_append_new(arr, pub);
    }
    pthread_mutex_unlock(&o.mu);
    r = sim_resp_new(200, SIM_JSON_CT);
    sim_resp_json(r, json_pack("{s:o}", "keys", arr));
    return r;
}

struct resp *
sim_oidc_route(struct MHD_Connection *c, struct req *q, const char *method, const char *tenant,
               const char *rest)
{
    if (strcmp(rest, "/discovery/v2.0/keys") == 0 && strcmp(method, "GET") == 0)
        return keys(tenant);
    if (strcmp(rest, "/oauth2/v2.0/authorize") == 0 && strcmp(method, "GET") == 0)
        return authorize(c, tenant);
    if (strcmp(rest, "/oauth2/v2.0/token") == 0 && strcmp(method, "POST") == 0 &&
        q->body.data != NULL && strstr(q->body.data, "grant_type=authorization_code") != NULL)
        return token(q, tenant);
    return NULL;
}

static const char *const faults[] = {"wrong_aud",   "wrong_tid",     "wrong_iss",
                                     "wrong_nonce", "bad_signature", "expired",
                                     "alg_none",    "alg_hs256",     "unknown_kid"};

static json_t *
state_json(void)
{
    json_t *kids = json_array();

    json_array_append(kids, json_object_get(o.key, "kid"));
    if (o.old_key != NULL)
        json_array_append(kids, json_object_get(o.old_key, "kid"));
    return json_pack("{s:b, s:s, s:s, s:O, s:O, s:o, s:s, s:I, s:s, s:s}", "ok", 1, "client_id",
                     o.client_id, "client_secret", o.secret, "users", users_locked(),
                     "redirect_uris", o.redirect_uris, "kids", kids, "next_fault", o.fault,
                     "ids_issued", (json_int_t)o.issued, "admin_group", SIM_OIDC_ADMIN_GROUP,
                     "viewer_group", SIM_OIDC_VIEWER_GROUP);
}

static const char *
control_set(json_t *in)
{
    json_t *v;

    if ((v = json_object_get(in, "next_fault")) != NULL) {
        const char *f = json_string_value(v);
        int ok = f != NULL && f[0] == '\0';

        for (size_t i = 0; f != NULL && i < sizeof faults / sizeof faults[0]; i++)
            ok |= strcmp(f, faults[i]) == 0;
        if (!ok)
            return "next_fault: wrong_aud, wrong_tid, wrong_iss, wrong_nonce, bad_signature, "
                   "expired, alg_none, alg_hs256, unknown_kid or \"\"";
        snprintf(o.fault, sizeof o.fault, "%s", f);
    }
    if ((v = json_object_get(in, "users")) != NULL) {
        size_t i;
        json_t *u;

        if (!json_is_array(v) || json_array_size(v) > SIM_OIDC_USERS)
            return "users: a list of at most 32 objects";
        json_array_foreach(v, i, u)
        {
            if (!json_is_string(json_object_get(u, "oid")) ||
                !json_is_string(json_object_get(u, "preferred_username")) ||
                !json_is_string(json_object_get(u, "name")))
                return "users: each needs oid, preferred_username and name";
        }
        json_decref(o.users);
        o.users = json_deep_copy(v);
    }
    if ((v = json_object_get(in, "redirect_uris")) != NULL) {
        if (!json_is_array(v))
            return "redirect_uris: a list of URIs";
        json_decref(o.redirect_uris);
        o.redirect_uris = json_deep_copy(v);
    }
    if (json_is_true(json_object_get(in, "rotate"))) {
        json_decref(o.old_key);
        o.old_key = json_is_false(json_object_get(in, "keep_old")) ? NULL : o.key;
        if (o.old_key == NULL)
            json_decref(o.key);
        o.key = new_key();
    }
    if (json_is_true(json_object_get(in, "drop_old")) && o.old_key != NULL) {
        json_decref(o.old_key);
        o.old_key = NULL;
    }
    return NULL;
}

struct resp *
sim_oidc_control(const char *method, const char *body, size_t len)
{
    struct resp *r;
    const char *err = NULL;
    json_t *in = NULL;

    if (strcmp(method, "POST") == 0) {
        in = json_loadb(body != NULL ? body : "", len, JSON_REJECT_DUPLICATES, NULL);
        if (!json_is_object(in))
            err = "the body must be a JSON object";
    } else if (strcmp(method, "GET") != 0) {
        err = "GET or POST";
    }
    pthread_mutex_lock(&o.mu);
    if (err == NULL && in != NULL)
        err = control_set(in);
    if (err != NULL) {
        r = sim_resp_new(400, SIM_JSON_CT);
        sim_resp_json(r, json_pack("{s:b, s:s}", "ok", 0, "error", err));
    } else {
        r = sim_resp_new(200, SIM_JSON_CT);
        sim_resp_json(r, state_json());
    }
    pthread_mutex_unlock(&o.mu);
    json_decref(in);
    return r;
}
