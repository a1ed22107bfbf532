/* oidc.h - single sign-on with Microsoft Entra ID (OpenID Connect, authorization code flow
 * with PKCE; docs/SECURITY.md "Single sign-on"): the provider's discovery document and signing
 * keys (fetched, cached, refetched once for an unknown key id), the validation of an ID token,
 * the code exchange, the mapping of group / app-role claims to memsync roles and the pending
 * sign-ins between the redirect to Microsoft and its answer.
 *
 * ID tokens: compact JWS, at most OIDC_TOKEN_MAX bytes. The header's alg must be exactly RS256
 * (none, HS*, PS*, ES* ... are refused before any key is touched) and its kid must name an RSA
 * key of the tenant's key set; the signature is checked by libjose against that key pinned to
 * RS256. Then iss (the discovery document's issuer), aud (the app's client id), exp and nbf
 * (OIDC_SKEW seconds of clock skew), nonce (the one this sign-in sent) and tid (the configured
 * tenant) must all hold. oidc_validate is pure (the key set and the clock are arguments): unit
 * tests and the fuzz target call it directly.
 *
 * Provider cache: one entry per (login URL, tenant), OIDC_CACHE_MAX entries, each valid
 * OIDC_CACHE_TTL seconds; documents are fetched with libcurl (http.h: TLS verified, no
 * redirects) capped at OIDC_DOC_MAX bytes and OIDC_FETCH_TIMEOUT_MS. A token whose kid is not in
 * the cached keys makes oidc_keys_refresh fetch the key set again, at most once per
 * OIDC_REFETCH_MIN seconds per entry (rotated keys are picked up; a flood of made-up kids is
 * not a flood of fetches).
 *
 * Pending sign-ins: process memory only, OIDC_PENDING_MAX of them, each OIDC_PENDING_TTL
 * seconds and used once: a random cookie value names the state, nonce and PKCE verifier. A
 * restart drops them (the user starts again).
 *
 * Threads: every function may be called from any thread (the cache and the pending table are
 * locked). Errors: ERR_AUTH with an oidc_fail reason for a refused token, ERR_HTTP / ERR_TIMEOUT
 * / ERR_TOOBIG / ERR_PARSE for a provider that cannot be read, ERR_INVAL for a bad setting.
 * Tokens, codes, verifiers and secrets are never logged nor put in an error message.
 */
#ifndef MEMSYNC_OIDC_H
#define MEMSYNC_OIDC_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define OIDC_TOKEN_MAX        (16 * 1024)  /* an ID token, bytes */
#define OIDC_DOC_MAX          (256 * 1024) /* a discovery document, key set or token answer */
#define OIDC_FETCH_TIMEOUT_MS 10000
#define OIDC_CACHE_MAX        16
#define OIDC_CACHE_TTL        3600
#define OIDC_REFETCH_MIN      60
#define OIDC_SKEW             120 /* seconds of clock skew allowed for exp and nbf */
#define OIDC_PENDING_MAX      256
#define OIDC_PENDING_TTL      600
#define OIDC_CLAIMS_MAX       256 /* groups or roles read from one token */
#define OIDC_VALUE_MAX        256 /* one claim's text */
#define OIDC_MAP_MAX          32  /* entries of a role mapping */
#define OIDC_NEXT_MAX         1025
#define OIDC_RANDOM_LEN       43 /* state, nonce, verifier: 32 random bytes, base64url */
#define OIDC_COOKIE           "memsync_sso"

/* Why a token was refused. */
enum oidc_fail {
    OIDC_OK = 0,
    OIDC_MALFORMED, /* not a compact JWS with JSON header and claims */
    OIDC_ALG,       /* alg is not RS256 */
    OIDC_KID,       /* no key of the tenant's set has this kid */
    OIDC_SIGNATURE, /* the signature does not verify */
    OIDC_ISSUER,
    OIDC_AUDIENCE,
    OIDC_EXPIRED,
    OIDC_NOT_YET, /* nbf or iat in the future */
    OIDC_NONCE,
    OIDC_TENANT,
    OIDC_CLAIMS, /* oid missing or a claim of the wrong type or size */
};
/* A short name of f ("audience", "signature", ...), for logs and tests. */
const char *oidc_fail_name(enum oidc_fail f);

/* What the token must say. skew < 0: OIDC_SKEW. */
struct oidc_expect {
    const char *issuer;
    const char *client_id;
    const char *tenant;
    const char *nonce;
    int64_t now;
    int skew;
};

/* What memsync reads from a valid token. groups_overage: Entra left the groups out (too many)
 * and pointed to Graph instead; a mapping by group then cannot match. */
struct oidc_claims {
    char oid[64];
    char tid[64];
    char username[OIDC_VALUE_MAX]; /* preferred_username, or "" */
    char name[OIDC_VALUE_MAX];
    char **groups;
    size_t ngroups;
    char **roles;
    size_t nroles;
    int groups_overage;
    int64_t exp;
};
void oidc_claims_clear(struct oidc_claims *c);

/* Validates token against jwks ({"keys":[...]}) and x. ERR_OK fills out; ERR_AUTH sets *why
 * (never OIDC_OK) and a sentence in eb. */
int oidc_validate(const char *token, const json_t *jwks, const struct oidc_expect *x,
                  struct oidc_claims *out, enum oidc_fail *why, struct errbuf *eb);

/* ---- provider ---------------------------------------------------------------------------- */

/* A copy of a cache entry: the caller owns it (oidc_provider_clear). */
struct oidc_provider {
    char *issuer;
    char *authorize_url;
    char *token_url;
    char *jwks_url;
    json_t *jwks;
    int64_t keys_at; /* when the key set was fetched */
};
void oidc_provider_clear(struct oidc_provider *p);

/* The provider of tenant under login_url (MEMSYNC_LOGIN_URL or the account's cloud): cached, or
 * fetched (discovery document then key set). ca_file: an extra CA bundle or NULL / "". */
int oidc_provider_get(const char *login_url, const char *tenant, const char *ca_file, int64_t now,
                      struct oidc_provider *out, struct errbuf *eb);
/* Fetches the key set of the entry again (a token named an unknown kid) unless it was fetched
 * less than OIDC_REFETCH_MIN seconds ago (ERR_THROTTLED); out gets the new copy. */
int oidc_keys_refresh(const char *login_url, const char *tenant, const char *ca_file, int64_t now,
                      struct oidc_provider *out, struct errbuf *eb);
void oidc_cache_reset(void); /* tests */

/* Exchanges an authorization code at token_url (client secret and PKCE verifier) for the ID
 * token (*id_token malloc'd). An answer of Entra's error form becomes ERR_AUTH with its error
 * and AADSTS code, never the secret. */
int oidc_exchange_code(const char *token_url, const char *ca_file, const char *client_id,
                       const char *secret, const char *code, const char *verifier,
                       const char *redirect_uri, char **id_token, struct errbuf *eb);

/* ---- PKCE, random values, the authorize URL --------------------------------------------- */

/* OIDC_RANDOM_LEN characters of base64url from 32 random bytes (out: OIDC_RANDOM_LEN + 1). */
void oidc_random(char *out);
/* The S256 challenge of verifier: base64url(SHA-256(verifier)), 43 characters (out: 44). */
void oidc_pkce_challenge(const char *verifier, char *out);
/* The authorize URL (malloc'd) for client_id, redirect_uri, state, nonce and challenge. */
char *oidc_authorize_url(const char *authorize_url, const char *client_id, const char *redirect_uri,
                         const char *state, const char *nonce, const char *challenge);

/* ---- role mapping ------------------------------------------------------------------------ */

/* A mapping is lines "VALUE=ROLE": VALUE a group object id or an app-role value (1 to 128 of
 * [A-Za-z0-9._:-]), ROLE admin or viewer, at most OIDC_MAP_MAX lines. ERR_INVAL with the
 * offending line's number when not. */
int oidc_map_check(const char *map, struct errbuf *eb);
/* The role c gets under map: "admin" when any admin value is among its groups or roles, else
 * "viewer" when a viewer value is, else NULL (the user is not let in). Values compare
 * case-insensitively. */
const char *oidc_map_role(const char *map, const struct oidc_claims *c);

/* ---- pending sign-ins -------------------------------------------------------------------- */

struct oidc_pending {
    int64_t account_id;
    char state[OIDC_RANDOM_LEN + 1];
    char nonce[OIDC_RANDOM_LEN + 1];
    char verifier[OIDC_RANDOM_LEN + 1];
    char next[OIDC_NEXT_MAX];
    int64_t deadline;
};
/* Starts one for account_id returning to next: fills p (new state, nonce and verifier) and
 * cookie_out (OIDC_RANDOM_LEN + 1). ERR_THROTTLED when the table is full of live ones. */
int oidc_pending_start(int64_t account_id, const char *next, int64_t now, struct oidc_pending *p,
                       char *cookie_out, struct errbuf *eb);
/* Takes (removes) the pending sign-in named cookie into p. ERR_AUTH when unknown or expired. */
int oidc_pending_take(const char *cookie, int64_t now, struct oidc_pending *p, struct errbuf *eb);
void oidc_pending_reset(void); /* tests */

#endif
