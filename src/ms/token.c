#include "token.h"

#include <errno.h>
#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

static void
wipe_free(char *s)
{
    if (s == NULL)
        return;
    sodium_memzero(s, strlen(s));
    free(s);
}

void
token_result_clear(struct token_result *r)
{
    if (r == NULL)
        return;
    wipe_free(r->access_token);
    free(r->error);
    free(r->error_description);
    memset(r, 0, sizeof *r);
}

static size_t
trimmed_len(const char *s)
{
    size_t n = strlen(s);

    while (n > 0 && s[n - 1] == '/')
        n--;
    return n;
}

char *
token_url(const char *login_base, const char *tenant, int v1)
{
    struct buf b;

    if (login_base == NULL || tenant == NULL || *tenant == '\0')
        return NULL;
    buf_init(&b, 4096);
    /* The tenant is encoded so that it can only ever be one path segment. */
    if (buf_add(&b, login_base, trimmed_len(login_base)) != ERR_OK || buf_addc(&b, '/') != ERR_OK ||
        buf_add_urlenc(&b, tenant) != ERR_OK ||
        buf_addstr(&b, v1 ? "/oauth2/token" : "/oauth2/v2.0/token") != ERR_OK) {
        buf_free(&b);
        return NULL;
    }
    return buf_detach(&b, NULL);
}

int
token_form(struct buf *out, const char *client_id, const char *secret, const char *audience, int v1)
{
    struct buf aud;
    int rc;

    if (client_id == NULL || secret == NULL || audience == NULL)
        return ERR_INVAL;
    buf_init(&aud, 4096);
    rc = buf_add(&aud, audience, trimmed_len(audience));
    if (rc == ERR_OK && !v1)
        rc = buf_addstr(&aud, "/.default");
    if (rc == ERR_OK)
        rc = buf_addstr(out, "grant_type=client_credentials&client_id=");
    if (rc == ERR_OK)
        rc = buf_add_urlenc(out, client_id);
    if (rc == ERR_OK)
        rc = buf_addstr(out, "&client_secret=");
    if (rc == ERR_OK)
        rc = buf_add_urlenc(out, secret);
    if (rc == ERR_OK)
        rc = buf_addstr(out, v1 ? "&resource=" : "&scope=");
    if (rc == ERR_OK)
        rc = buf_add_urlenc(out, buf_cstr(&aud));
    buf_free(&aud);
    return rc;
}

/* expires_in is a number on v2 and a string ("3599") on v1. */
static int
parse_expires_in(const json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        char *end = NULL;
        long long n;

        if (*s < '0' || *s > '9')
            return -1;
        errno = 0;
        n = strtoll(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0')
            return -1;
        *out = (int64_t)n;
    } else {
        return -1;
    }
    return *out > 0 && *out <= 10 * 365 * 86400LL ? 0 : -1;
}

static long
aadsts_from_description(const char *d)
{
    const char *p = d != NULL ? strstr(d, "AADSTS") : NULL;
    long v = 0;

    if (p == NULL)
        return 0;
    for (p += 6; *p >= '0' && *p <= '9' && v < 100000000; p++)
        v = v * 10 + (*p - '0');
    return v;
}

/* Copies a short printable string member whole, or leaves dst empty. */
static void
keep_str(char *dst, size_t cap, const json_t *v)
{
    const char *s = json_string_value(v);
    size_t n = json_string_length(v);

    if (s == NULL || n >= cap)
        return;
    for (size_t i = 0; i < n; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
            return;
    memcpy(dst, s, n);
    dst[n] = '\0';
}

int
token_parse(const char *body, size_t len, long status, struct token_result *out, struct errbuf *eb)
{
    json_t *root = NULL;
    const json_t *tok, *err, *codes;
    json_error_t jerr;
    int rc;

    memset(out, 0, sizeof *out);
    if (body == NULL || len == 0) {
        rc =
            err_set(eb, ERR_PARSE, "the sign-in service sent an empty response (HTTP %ld)", status);
        goto out;
    }
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!json_is_object(root)) {
        rc = err_set(eb, ERR_PARSE,
                     "the sign-in service sent a response that is not JSON (HTTP %ld)", status);
        goto out;
    }
    err = json_object_get(root, "error");
    if (json_is_string(err)) {
        const json_t *desc = json_object_get(root, "error_description");

        out->error = xstrdup(json_string_value(err));
        if (json_is_string(desc))
            out->error_description =
                xstrndup(json_string_value(desc), strcspn(json_string_value(desc), "\r\n"));
        codes = json_object_get(root, "error_codes");
        if (json_is_integer(json_array_get(codes, 0)))
            out->aadsts = (long)json_integer_value(json_array_get(codes, 0));
        else
            out->aadsts = aadsts_from_description(out->error_description);
        keep_str(out->trace_id, sizeof out->trace_id, json_object_get(root, "trace_id"));
        keep_str(out->correlation_id, sizeof out->correlation_id,
                 json_object_get(root, "correlation_id"));
        keep_str(out->timestamp, sizeof out->timestamp, json_object_get(root, "timestamp"));
        rc = err_set(eb, ERR_AUTH, "sign-in refused (HTTP %ld): %s", status,
                     out->error_description != NULL ? out->error_description : out->error);
        goto out;
    }
    if (status < 200 || status > 299) {
        rc = err_set(eb, ERR_PARSE, "the sign-in service answered HTTP %ld without an error body",
                     status);
        goto out;
    }
    tok = json_object_get(root, "access_token");
    if (!json_is_string(tok) || json_string_length(tok) == 0) {
        rc = err_set(eb, ERR_PARSE, "the sign-in response has no access_token");
        goto out;
    }
    if (json_string_length(tok) > TOKEN_MAX_LEN) {
        rc = err_set(eb, ERR_TOOBIG, "the access token is longer than %d bytes", TOKEN_MAX_LEN);
        goto out;
    }
    if (parse_expires_in(json_object_get(root, "expires_in"), &out->expires_in) != 0) {
        rc = err_set(eb, ERR_PARSE, "the sign-in response has no valid expires_in");
        goto out;
    }
    out->access_token = xstrndup(json_string_value(tok), json_string_length(tok));
    rc = ERR_OK;
out:
    if (root != NULL) {
        /* jansson keeps its own copy of the token; wipe it before the tree is freed. */
        tok = json_object_get(root, "access_token");
        if (json_is_string(tok))
            sodium_memzero((char *)json_string_value(tok), json_string_length(tok));
        json_decref(root);
    }
    if (rc != ERR_OK) {
        wipe_free(out->access_token);
        out->access_token = NULL;
        out->expires_in = 0;
    }
    return rc;
}

struct token_entry {
    char *tenant;
    char *audience;
    char *token;
    int64_t expires_at;
    struct token_entry *next;
};

struct token_cache {
    struct token_entry *head;
};

struct token_cache *
token_cache_new(void)
{
    return xcalloc(1, sizeof(struct token_cache));
}

static void
entry_free(struct token_entry *e)
{
    free(e->tenant);
    free(e->audience);
    wipe_free(e->token);
    free(e);
}

void
token_cache_free(struct token_cache *c)
{
    struct token_entry *e, *next;

    if (c == NULL)
        return;
    for (e = c->head; e != NULL; e = next) {
        next = e->next;
        entry_free(e);
    }
    free(c);
}

static struct token_entry **
find(struct token_cache *c, const char *tenant, const char *audience)
{
    struct token_entry **pp;

    for (pp = &c->head; *pp != NULL; pp = &(*pp)->next) {
        if (strcmp((*pp)->tenant, tenant) == 0 && strcmp((*pp)->audience, audience) == 0)
            return pp;
    }
    return pp;
}

const char *
token_cache_get(struct token_cache *c, const char *tenant, const char *audience, int64_t now)
{
    struct token_entry **pp, *e;

    if (c == NULL || tenant == NULL || audience == NULL)
        return NULL;
    pp = find(c, tenant, audience);
    e = *pp;
    if (e == NULL)
        return NULL;
    if (e->expires_at - now >= TOKEN_REFRESH_MARGIN)
        return e->token;
    *pp = e->next;
    entry_free(e);
    return NULL;
}

void
token_cache_put(struct token_cache *c, const char *tenant, const char *audience, const char *token,
                int64_t expires_at)
{
    struct token_entry **pp, *e;

    if (c == NULL || tenant == NULL || audience == NULL || token == NULL)
        return;
    pp = find(c, tenant, audience);
    if ((e = *pp) != NULL) {
        wipe_free(e->token);
    } else {
        e = xcalloc(1, sizeof *e);
        e->tenant = xstrdup(tenant);
        e->audience = xstrdup(audience);
        *pp = e;
    }
    e->token = xstrdup(token);
    e->expires_at = expires_at;
}

void
token_cache_drop(struct token_cache *c, const char *tenant, const char *audience)
{
    struct token_entry **pp, *e;

    if (c == NULL || tenant == NULL || audience == NULL)
        return;
    pp = find(c, tenant, audience);
    if ((e = *pp) == NULL)
        return;
    *pp = e->next;
    entry_free(e);
}
