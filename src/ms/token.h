/* token.h - Microsoft Entra client-credentials tokens: request bodies, response parsing, cache.
 *
 * Endpoints: v2 POST {login}/{tenant}/oauth2/v2.0/token with scope={resource}/.default, and v1
 * POST {login}/{tenant}/oauth2/token with resource={resource}. The client secret is always
 * form-encoded (secrets contain '+', '/' and '='). v2 sends expires_in as a number, v1 as a
 * string: both are accepted. Errors carry the first AADSTS code (error_codes[0]).
 *
 * The cache keys tokens by (tenant, audience) and treats a token as expired TOKEN_REFRESH_MARGIN
 * seconds before expires_in elapses. A struct token_cache belongs to one thread.
 * Access tokens and secrets never reach logs or error messages.
 */
#ifndef MEMSYNC_TOKEN_H
#define MEMSYNC_TOKEN_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"

#define TOKEN_REFRESH_MARGIN 300 /* seconds */
#define TOKEN_MAX_LEN        16384

#define AUDIENCE_GRAPH          "https://graph.microsoft.com"
#define AUDIENCE_PARTNER_CENTER "https://api.partnercenter.microsoft.com"

struct token_result {
    /* success */
    char *access_token; /* malloc'd; wipe with token_result_clear */
    int64_t expires_in; /* seconds */
    /* failure (Entra error body) */
    char *error;             /* OAuth error, e.g. "invalid_client" */
    char *error_description; /* first line only ("AADSTS7000215: ..."), never the secret */
    long aadsts;             /* first of error_codes, 0 when none */
    char trace_id[64];       /* trace_id, correlation_id and timestamp of the error body, for */
    char correlation_id[64]; /* Microsoft support ("" when absent or longer) */
    char timestamp[40];
};

void token_result_clear(struct token_result *r);

/* Builds the token endpoint URL: v2 "{login}/{tenant}/oauth2/v2.0/token", v1 ".../oauth2/token". */
char *token_url(const char *login_base, const char *tenant, int v1);

/* Builds the form body for the client-credentials grant into out. v2 uses scope=AUD/.default,
 * v1 uses resource=AUD. */
int token_form(struct buf *out, const char *client_id, const char *secret, const char *audience,
               int v1);

/* Parses a token endpoint response of the given HTTP status. Returns ERR_OK with access_token set
 * (status 200), ERR_AUTH with error/aadsts set (an Entra error body), or ERR_PARSE. */
int token_parse(const char *body, size_t len, long status, struct token_result *out,
                struct errbuf *eb);

struct token_cache;

struct token_cache *token_cache_new(void);
void token_cache_free(struct token_cache *c); /* wipes every token */
/* Returns a borrowed token valid for at least TOKEN_REFRESH_MARGIN seconds, or NULL (an expired
 * entry is wiped and dropped). The pointer stays valid until that key is next put, dropped or
 * found expired. */
const char *token_cache_get(struct token_cache *c, const char *tenant, const char *audience,
                            int64_t now);
void token_cache_put(struct token_cache *c, const char *tenant, const char *audience,
                     const char *token, int64_t expires_at);
void token_cache_drop(struct token_cache *c, const char *tenant, const char *audience);

#endif
