/* webhook.c - signed webhook deliveries and their target checks (webhook.h). */
#include "webhook.h"

#include <arpa/inet.h>
#include <curl/curl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "clock.h"
#include "config.h"
#include "log.h"

/* ---- signature ----------------------------------------------------------------------- */

static void
mac_hex(const unsigned char *secret, size_t secret_len, int64_t t, const char *body,
        size_t body_len, char hex[2 * crypto_auth_hmacsha256_BYTES + 1])
{
    crypto_auth_hmacsha256_state st;
    unsigned char mac[crypto_auth_hmacsha256_BYTES];
    char ts[24];
    int n = snprintf(ts, sizeof ts, "%" PRId64 ".", t);

    crypto_auth_hmacsha256_init(&st, secret, secret_len);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)ts, (unsigned long long)n);
    crypto_auth_hmacsha256_update(&st, (const unsigned char *)body, (unsigned long long)body_len);
    crypto_auth_hmacsha256_final(&st, mac);
    sodium_bin2hex(hex, 2 * crypto_auth_hmacsha256_BYTES + 1, mac, sizeof mac);
    sodium_memzero(&st, sizeof st);
}

void
webhook_sign(const unsigned char *secret, size_t secret_len, int64_t t, const char *body,
             size_t body_len, char out[WEBHOOK_SIG_MAX])
{
    char hex[2 * crypto_auth_hmacsha256_BYTES + 1];

    mac_hex(secret, secret_len, t, body, body_len, hex);
    snprintf(out, WEBHOOK_SIG_MAX, "t=%" PRId64 ",v1=%s", t, hex);
}

int
webhook_verify(const unsigned char *secret, size_t secret_len, const char *header, const char *body,
               size_t body_len, int64_t now, int64_t tolerance_s)
{
    char hex[2 * crypto_auth_hmacsha256_BYTES + 1];
    const char *v1;
    char *end = NULL;
    long long t;

    if (header == NULL || strncmp(header, "t=", 2) != 0)
        return ERR_AUTH;
    t = strtoll(header + 2, &end, 10);
    if (end == header + 2 || strncmp(end, ",v1=", 4) != 0)
        return ERR_AUTH;
    v1 = end + 4;
    if (strlen(v1) != 2 * crypto_auth_hmacsha256_BYTES)
        return ERR_AUTH;
    if ((int64_t)t > now + tolerance_s || (int64_t)t < now - tolerance_s)
        return ERR_AUTH;
    mac_hex(secret, secret_len, (int64_t)t, body, body_len, hex);
    if (sodium_memcmp(hex, v1, 2 * crypto_auth_hmacsha256_BYTES) != 0)
        return ERR_AUTH;
    return ERR_OK;
}

/* ---- targets --------------------------------------------------------------------------- */

static int
v4_allowed(const struct webhook_policy *p, uint32_t a)
{
    unsigned b0 = a >> 24, b1 = (a >> 16) & 0xff;

    if (b0 == 0 || b0 >= 224) /* "this network", multicast, reserved, broadcast */
        return 0;
    if (b0 == 127)
        return p->allow_loopback;
    if (b0 == 10 || (b0 == 172 && (b1 & 0xf0) == 16) || (b0 == 192 && b1 == 168) ||
        (b0 == 100 && (b1 & 0xc0) == 64) || (b0 == 169 && b1 == 254))
        return p->allow_private;
    return 1;
}

int
webhook_addr_allowed(const struct webhook_policy *p, const struct sockaddr *sa)
{
    if (sa == NULL)
        return 0;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)(const void *)sa;

        return v4_allowed(p, ntohl(in->sin_addr.s_addr));
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)(const void *)sa;
        const unsigned char *b = in6->sin6_addr.s6_addr;
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        static const unsigned char nat64[12] = {0, 0x64, 0xff, 0x9b, 0, 0, 0, 0, 0, 0, 0, 0};
        static const unsigned char zero[15] = {0};
        uint32_t v4 = (uint32_t)b[12] << 24 | (uint32_t)b[13] << 16 | (uint32_t)b[14] << 8 | b[15];

        if (memcmp(b, mapped, 12) == 0 || memcmp(b, nat64, 12) == 0)
            return v4_allowed(p, v4);
        if (memcmp(b, zero, 15) == 0) /* :: and ::1 */
            return b[15] == 1 ? p->allow_loopback : 0;
        if (memcmp(b, zero, 12) == 0) /* IPv4-compatible (deprecated) */
            return 0;
        if (b[0] == 0xff) /* multicast */
            return 0;
        if ((b[0] & 0xfe) == 0xfc || (b[0] == 0xfe && (b[1] & 0xc0) == 0x80))
            return p->allow_private; /* unique-local, link-local */
        return 1;
    }
    return 0;
}

int
webhook_url_check(const struct webhook_policy *p, const char *url, struct errbuf *eb)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *user = NULL, *pass = NULL;
    int rc = ERR_OK, http_ok = 0;

    if (u == NULL)
        return err_set(eb, ERR_NOMEM, "out of memory");
    if (url == NULL || strlen(url) > 2048 || curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || host[0] == '\0') {
        rc = err_set(eb, ERR_INVAL, "the webhook URL is not a valid absolute URL");
        goto out;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_PASSWORD, &pass, 0) == CURLUE_OK) {
        rc = err_set(eb, ERR_INVAL, "the webhook URL must not hold a user name or password");
        goto out;
    }
    for (size_t i = 0; i < p->nhttp_hosts && i < WEBHOOK_MAX_HOSTS; i++)
        if (p->http_hosts[i] != NULL && strcasecmp(p->http_hosts[i], host) == 0)
            http_ok = 1;
    if (strcasecmp(scheme, "https") != 0 && !(http_ok && strcasecmp(scheme, "http") == 0)) {
        rc = err_set(eb, ERR_INVAL,
                     "the webhook URL must use https (an admin can allow http for a host with "
                     "the setting webhook_http_hosts)");
        goto out;
    }
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(pass);
    curl_url_cleanup(u);
    return rc;
}

void
webhook_policy_from_env(struct webhook_policy *p, char *hosts_buf, size_t hosts_len,
                        const char *ca_file)
{
    const char *hosts = config_env("MEMSYNC_WEBHOOK_HTTP_HOSTS");
    char *s, *comma;

    memset(p, 0, sizeof *p);
    p->allow_private = config_env("MEMSYNC_WEBHOOK_ALLOW_PRIVATE") != NULL;
    p->allow_loopback = config_env("MEMSYNC_WEBHOOK_ALLOW_LOOPBACK") != NULL;
    p->ca_file = ca_file;
    if (hosts == NULL || hosts_len == 0)
        return;
    snprintf(hosts_buf, hosts_len, "%s", hosts);
    for (s = hosts_buf; s != NULL && *s != '\0' && p->nhttp_hosts < WEBHOOK_MAX_HOSTS; s = comma) {
        comma = strchr(s, ',');
        if (comma != NULL)
            *comma++ = '\0';
        while (*s == ' ')
            s++;
        if (*s != '\0')
            p->http_hosts[p->nhttp_hosts++] = s;
    }
}

int64_t
webhook_backoff(int attempt, int64_t base_s)
{
    int64_t d = base_s < 1 ? 1 : base_s;

    for (int i = 1; i < attempt && d < WEBHOOK_BACKOFF_MAX_S; i++)
        d *= 2;
    return d > WEBHOOK_BACKOFF_MAX_S ? WEBHOOK_BACKOFF_MAX_S : d;
}

/* ---- delivery -------------------------------------------------------------------------- */

struct webhook_xfer {
    const struct webhook_policy *p;
    CURL *c;
    struct curl_slist *h;
    long timeout;
    int64_t t0;
    size_t got;
    int refused; /* an address was refused at connect time */
    struct webhook_result res;
};

static curl_socket_t
open_socket(void *arg, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct webhook_xfer *x = arg;

    if (purpose != CURLSOCKTYPE_IPCXN || !webhook_addr_allowed(x->p, &a->addr)) {
        x->refused = 1;
        return CURL_SOCKET_BAD;
    }
    return socket(a->family, a->socktype, a->protocol);
}

static size_t
write_cb(char *data, size_t size, size_t n, void *arg)
{
    struct webhook_xfer *x = arg;
    size_t len = size * n, keep = 0;

    if (x->got < WEBHOOK_MAX_RESPONSE) {
        keep = WEBHOOK_MAX_RESPONSE - x->got;
        if (keep > len)
            keep = len;
        memcpy(x->res.answer + x->got, data, keep);
        x->got += keep;
        x->res.answer[x->got] = '\0';
    }
    return len; /* the rest is dropped; the total timeout bounds it */
}

void
webhook_xfer_free(struct webhook_xfer *x)
{
    if (x == NULL)
        return;
    curl_slist_free_all(x->h);
    if (x->c != NULL)
        curl_easy_cleanup(x->c);
    free(x);
}

int
webhook_xfer_new(const struct webhook_policy *p, const char *url, const unsigned char *secret,
                 size_t secret_len, const char *event, const char *delivery_id, const char *body,
                 size_t body_len, struct webhook_xfer **out, struct errbuf *eb)
{
    struct webhook_xfer *x = NULL;
    char sig[WEBHOOK_SIG_MAX], line[256];
    int rc = ERR_OK;

    *out = NULL;
    {
        struct errbuf why = {0};

        if (webhook_url_check(p, url, &why) != ERR_OK)
            return err_set(eb, ERR_DENIED, "%s", why.msg);
    }
    if (body_len > WEBHOOK_MAX_BODY)
        return err_set(eb, ERR_TOOBIG, "the webhook body is %zu bytes", body_len);
    for (const char *s = event; s != NULL && *s != '\0'; s++)
        if (*s == '\r' || *s == '\n')
            return err_set(eb, ERR_INVAL, "bad event name");
    x = calloc(1, sizeof *x);
    if (x == NULL || (x->c = curl_easy_init()) == NULL) {
        rc = err_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    x->p = p;
    x->timeout = p->timeout_ms > 0 ? p->timeout_ms : WEBHOOK_TIMEOUT_MS;
    webhook_sign(secret, secret_len, clock_now(), body, body_len, sig);
    x->h = curl_slist_append(x->h, "Content-Type: application/json");
    snprintf(line, sizeof line, "Memsync-Signature: %s", sig);
    x->h = curl_slist_append(x->h, line);
    snprintf(line, sizeof line, "Memsync-Event: %.64s", event);
    x->h = curl_slist_append(x->h, line);
    snprintf(line, sizeof line, "Memsync-Delivery: %.64s", delivery_id);
    x->h = curl_slist_append(x->h, line);
    x->h = curl_slist_append(x->h, "Expect:");
    curl_easy_setopt(x->c, CURLOPT_URL, url);
    curl_easy_setopt(x->c, CURLOPT_HTTPHEADER, x->h);
    curl_easy_setopt(x->c, CURLOPT_POST, 1L);
    curl_easy_setopt(x->c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    curl_easy_setopt(x->c, CURLOPT_COPYPOSTFIELDS, body); /* the caller's body may go */
    curl_easy_setopt(x->c, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(x->c, CURLOPT_FOLLOWLOCATION, 0L);
    curl_easy_setopt(x->c, CURLOPT_PROXY, ""); /* the address checked is the target's own */
    curl_easy_setopt(x->c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->c, CURLOPT_TIMEOUT_MS, x->timeout);
    curl_easy_setopt(x->c, CURLOPT_CONNECTTIMEOUT_MS, x->timeout < 5000 ? x->timeout : 5000L);
    curl_easy_setopt(x->c, CURLOPT_OPENSOCKETFUNCTION, open_socket);
    curl_easy_setopt(x->c, CURLOPT_OPENSOCKETDATA, x);
    curl_easy_setopt(x->c, CURLOPT_WRITEFUNCTION, write_cb);
    curl_easy_setopt(x->c, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->c, CURLOPT_USERAGENT, "memsync-webhook");
    curl_easy_setopt(x->c, CURLOPT_PRIVATE, x);
    if (p->ca_file != NULL && p->ca_file[0] != '\0')
        curl_easy_setopt(x->c, CURLOPT_CAINFO, p->ca_file);
    if (x->h == NULL) {
        rc = err_set(eb, ERR_NOMEM, "out of memory");
        goto out;
    }
    x->t0 = clock_mono_ms();
    *out = x;
    x = NULL;
out:
    webhook_xfer_free(x);
    return rc;
}

void *
webhook_xfer_handle(struct webhook_xfer *x)
{
    return x->c;
}

int
webhook_xfer_done(struct webhook_xfer *x, int curl_code, struct webhook_result *res,
                  struct errbuf *eb)
{
    CURLcode cc = (CURLcode)curl_code;
    int rc = ERR_OK;

    x->res.latency_ms = clock_mono_ms() - x->t0;
    if (cc == CURLE_OK) {
        curl_easy_getinfo(x->c, CURLINFO_RESPONSE_CODE, &x->res.status);
    } else if (x->refused) {
        rc = err_set(eb, ERR_DENIED,
                     "the webhook's host resolves to an address memsync does not send to "
                     "(loopback, link-local or private; see webhook_allow_private)");
    } else if (cc == CURLE_OPERATION_TIMEDOUT) {
        rc =
            err_set(eb, ERR_TIMEOUT, "the webhook target did not answer within %ld ms", x->timeout);
    } else {
        rc = err_set(eb, ERR_HTTP, "the webhook delivery failed: %s", curl_easy_strerror(cc));
    }
    memcpy(res, &x->res, sizeof *res);
    return rc;
}

int
webhook_deliver(const struct webhook_policy *p, const char *url, const unsigned char *secret,
                size_t secret_len, const char *event, const char *delivery_id, const char *body,
                size_t body_len, struct webhook_result *res, struct errbuf *eb)
{
    struct webhook_xfer *x = NULL;
    int rc;

    memset(res, 0, sizeof *res);
    rc = webhook_xfer_new(p, url, secret, secret_len, event, delivery_id, body, body_len, &x, eb);
    if (rc == ERR_OK)
        rc = webhook_xfer_done(x, (int)curl_easy_perform(x->c), res, eb);
    webhook_xfer_free(x);
    return rc;
}
