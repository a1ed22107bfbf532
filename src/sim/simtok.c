/* simtok.c - the simulator's access tokens and opaque paging tokens. */
#include "simsrv.h"

#include <jansson.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"

static unsigned char tok_key[crypto_auth_hmacsha256_KEYBYTES];

void
simtok_init(void)
{
    if (sodium_init() < 0)
        ASSERT(!"sodium_init failed");
    randombytes_buf(tok_key, sizeof tok_key);
}

static char *
b64url(const void *p, size_t n)
{
    size_t len = sodium_base64_encoded_len(n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *s = xmalloc(len);

    sodium_bin2base64(s, len, p, n, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return s;
}

static void
mac(const char *data, size_t n, unsigned char out[crypto_auth_hmacsha256_BYTES])
{
    crypto_auth_hmacsha256(out, (const unsigned char *)data, n, tok_key);
}

char *
simtok_issue(const char *tid, const char *appid, const char *aud, int64_t now, int64_t lifetime)
{
    static const char hdr[] = "{\"typ\":\"JWT\",\"alg\":\"HS256\",\"kid\":\"memsync-sim\"}";
    json_t *p = json_pack("{s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s}", "aud", aud, "iss",
                          "https://sts.windows.net/", "iat", (json_int_t)now, "nbf",
                          (json_int_t)now, "exp", (json_int_t)(now + lifetime), "appid", appid,
                          "tid", tid, "idtyp", "app", "ver", "1.0");
    char *pj = json_dumps(p, JSON_COMPACT);
    char *h64 = b64url(hdr, strlen(hdr));
    char *p64 = b64url(pj, strlen(pj));
    char *signing = xasprintf("%s.%s", h64, p64);
    unsigned char sig[crypto_auth_hmacsha256_BYTES];
    char *s64, *out;

    mac(signing, strlen(signing), sig);
    s64 = b64url(sig, sizeof sig);
    out = xasprintf("%s.%s", signing, s64);
    free(s64);
    free(signing);
    free(p64);
    free(h64);
    free(pj);
    json_decref(p);
    return out;
}

int
simtok_verify(const char *token, int64_t now, struct simtok_claims *out)
{
    const char *dot1, *dot2;
    unsigned char sig[crypto_auth_hmacsha256_BYTES], want[crypto_auth_hmacsha256_BYTES];
    char payload[1024];
    size_t plen = 0, slen = 0;
    json_t *j = NULL;
    const char *tid = NULL, *appid = NULL, *aud = NULL;
    json_int_t exp = 0;
    int rc = ERR_AUTH;

    memset(out, 0, sizeof(*out));
    if (token == NULL || strlen(token) > 4096)
        return ERR_AUTH;
    dot1 = strchr(token, '.');
    dot2 = dot1 ? strchr(dot1 + 1, '.') : NULL;
    if (dot1 == NULL || dot2 == NULL || strchr(dot2 + 1, '.') != NULL)
        return ERR_AUTH;
    if (sodium_base642bin(sig, sizeof sig, dot2 + 1, strlen(dot2 + 1), NULL, &slen, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        slen != sizeof sig)
        return ERR_AUTH;
    mac(token, (size_t)(dot2 - token), want);
    if (sodium_memcmp(sig, want, sizeof sig) != 0)
        return ERR_AUTH;
    if (sodium_base642bin((unsigned char *)payload, sizeof payload - 1, dot1 + 1,
                          (size_t)(dot2 - dot1 - 1), NULL, &plen, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        return ERR_AUTH;
    payload[plen] = '\0';
    j = json_loadb(payload, plen, 0, NULL);
    if (j == NULL || json_unpack(j, "{s:s, s:s, s:s, s:I}", "tid", &tid, "appid", &appid, "aud",
                                 &aud, "exp", &exp) != 0)
        goto out;
    snprintf(out->tid, sizeof out->tid, "%s", tid);
    snprintf(out->appid, sizeof out->appid, "%s", appid);
    snprintf(out->aud, sizeof out->aud, "%s", aud);
    out->exp = exp;
    rc = exp <= now ? ERR_TIMEOUT : ERR_OK;
out:
    json_decref(j);
    return rc;
}

char *
simtok_seal_ints(const char *kind, const int64_t *v, int n)
{
    struct buf b;
    unsigned char m[crypto_auth_hmacsha256_BYTES];
    char *out;

    buf_init(&b, 4096);
    (void)buf_printf(&b, "%s", kind);
    for (int i = 0; i < n; i++)
        (void)buf_printf(&b, ":%lld", (long long)v[i]);
    mac(b.data, b.len, m);
    /* 12 MAC bytes are plenty to catch tampering in a simulator */
    (void)buf_add(&b, "|", 1);
    (void)buf_add(&b, m, 12);
    out = b64url(b.data, b.len);
    buf_free(&b);
    return out;
}

int
simtok_open_ints(const char *kind, const char *text, int64_t *v, int n)
{
    unsigned char raw[512], m[crypto_auth_hmacsha256_BYTES];
    size_t len = 0;
    char *bar, *p, *end;
    size_t klen = strlen(kind);

    if (text == NULL ||
        sodium_base642bin(raw, sizeof raw - 1, text, strlen(text), NULL, &len, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
        len < 13)
        return ERR_PARSE;
    bar = (char *)raw + len - 13;
    if (*bar != '|')
        return ERR_PARSE;
    mac((const char *)raw, (size_t)(bar - (char *)raw), m);
    if (sodium_memcmp(m, bar + 1, 12) != 0)
        return ERR_PARSE;
    *bar = '\0';
    if (strncmp((char *)raw, kind, klen) != 0)
        return ERR_PARSE;
    p = (char *)raw + klen;
    for (int i = 0; i < n; i++) {
        if (*p != ':')
            return ERR_PARSE;
        v[i] = strtoll(p + 1, &end, 10);
        if (end == p + 1)
            return ERR_PARSE;
        p = end;
    }
    return *p == '\0' ? ERR_OK : ERR_PARSE;
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

int
simtok_form_decode(char *s)
{
    char *w = s;

    for (char *r = s; *r; r++) {
        if (*r == '+') {
            *w++ = ' ';
        } else if (*r == '%') {
            int hi = hexval(r[1]), lo = hi >= 0 ? hexval(r[2]) : -1;
            if (hi < 0 || lo < 0)
                return ERR_PARSE;
            *w++ = (char)(hi * 16 + lo);
            r += 2;
        } else {
            *w++ = *r;
        }
    }
    *w = '\0';
    return ERR_OK;
}

int
simtok_b64_decode(const char *in, char *out, size_t outlen)
{
    size_t len = 0;

    if (outlen == 0 || sodium_base642bin((unsigned char *)out, outlen - 1, in, strlen(in), " \t",
                                         &len, NULL, sodium_base64_VARIANT_ORIGINAL) != 0)
        return ERR_PARSE;
    out[len] = '\0';
    return ERR_OK;
}
