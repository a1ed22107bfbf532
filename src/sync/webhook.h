/* webhook.h - one signed webhook delivery and the checks every outbound target passes
 * (docs/API.md "Webhooks", docs/SECURITY.md "Outbound requests").
 *
 * Signature: HMAC-SHA256 (libsodium crypto_auth_hmacsha256) keyed with the subscription's secret
 * over "<t>.<body>", where t is the Unix time of sending in decimal; sent as the header
 * "Memsync-Signature: t=<t>,v1=<64 lower-case hex digits>". A receiver recomputes it and refuses
 * a t too far from its clock (replays).
 *
 * Targets: https only, unless the URL's host is listed in policy.http_hosts; no user name or
 * password in the URL. Every address the name resolves to is checked when curl opens the
 * socket (CURLOPT_OPENSOCKETFUNCTION), so a name that resolves to another address at delivery
 * time (DNS rebinding) still cannot reach a refused one: loopback, link-local, private
 * (RFC 1918, unique-local, carrier-grade NAT), unspecified, multicast and broadcast addresses
 * are refused unless policy allows loopback (tests) or private ranges (an admin's setting).
 * IPv4-mapped IPv6 addresses are judged as the IPv4 address they carry.
 *
 * Delivery: POST, no redirect followed (a 3xx is a failed answer), connect and total timeouts,
 * at most WEBHOOK_MAX_RESPONSE bytes of the answer kept (the rest is read and dropped, bounded by
 * the timeout). Threads: any; webhook_deliver blocks for at most policy.timeout_ms. Secrets never
 * reach logs or error messages. Errors: ERR_OK or a negative ERR_* with a sentence in eb; a
 * delivery that got an HTTP answer returns ERR_OK with the status in the result, 2xx is success.
 */
#ifndef MEMSYNC_WEBHOOK_H
#define MEMSYNC_WEBHOOK_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "err.h"

#define WEBHOOK_SIG_MAX       96   /* "t=...,v1=" + 64 hex + NUL */
#define WEBHOOK_SECRET_BYTES  32   /* the secrets memsync makes */
#define WEBHOOK_MAX_RESPONSE  4096 /* bytes of an answer kept for the delivery log */
#define WEBHOOK_MAX_HOSTS     16
#define WEBHOOK_TIMEOUT_MS    10000
#define WEBHOOK_MAX_BODY      (256u * 1024)
#define WEBHOOK_RETRY_FOR_S   86400 /* a delivery is retried for a day after its first try */
#define WEBHOOK_BACKOFF_MAX_S 3600

struct webhook_policy {
    int allow_loopback;                        /* 127.0.0.0/8, ::1 (tests) */
    int allow_private;                         /* RFC 1918, fc00::/7, 100.64.0.0/10, link-local */
    const char *http_hosts[WEBHOOK_MAX_HOSTS]; /* hosts an admin allowed plain http for */
    size_t nhttp_hosts;
    long timeout_ms;     /* total; 0: WEBHOOK_TIMEOUT_MS */
    const char *ca_file; /* extra CA bundle, NULL: the system store */
};

/* The policy of the settings MEMSYNC_WEBHOOK_ALLOW_PRIVATE, MEMSYNC_WEBHOOK_HTTP_HOSTS (split into
 * hosts_buf, which p points into) and the tests' MEMSYNC_WEBHOOK_ALLOW_LOOPBACK; ca_file as
 * given. */
void webhook_policy_from_env(struct webhook_policy *p, char *hosts_buf, size_t hosts_len,
                             const char *ca_file);

/* out = "t=<t>,v1=<hex>" for body signed with secret at time t. */
void webhook_sign(const unsigned char *secret, size_t secret_len, int64_t t, const char *body,
                  size_t body_len, char out[WEBHOOK_SIG_MAX]);
/* ERR_OK when header is a valid signature of body under secret whose t is within tolerance_s of
 * now; ERR_AUTH otherwise (constant-time comparison). */
int webhook_verify(const unsigned char *secret, size_t secret_len, const char *header,
                   const char *body, size_t body_len, int64_t now, int64_t tolerance_s);

/* ERR_OK when url may be a webhook target under p (scheme, host, no credentials); ERR_INVAL
 * with the reason otherwise. The addresses are checked at delivery. */
int webhook_url_check(const struct webhook_policy *p, const char *url, struct errbuf *eb);
/* 1 when a connection to sa may be opened under p. */
int webhook_addr_allowed(const struct webhook_policy *p, const struct sockaddr *sa);

/* Seconds to wait before try number attempt (1 = the first retry): base * 2^(attempt-1), at
 * most WEBHOOK_BACKOFF_MAX_S. */
int64_t webhook_backoff(int attempt, int64_t base_s);

struct webhook_result {
    long status;        /* the HTTP status, 0 when no answer came */
    int64_t latency_ms; /* from the start to the end of the answer (or the failure) */
    char answer[WEBHOOK_MAX_RESPONSE + 1]; /* the answer's first bytes, NUL-terminated */
};

/* POSTs body (JSON) to url with the signature header and "Memsync-Event: event",
 * "Memsync-Delivery: delivery_id". ERR_OK when an HTTP answer came (see res->status);
 * ERR_DENIED when the target or its address is refused (nothing sent), ERR_HTTP / ERR_TIMEOUT
 * for transport failures. */
int webhook_deliver(const struct webhook_policy *p, const char *url, const unsigned char *secret,
                    size_t secret_len, const char *event, const char *delivery_id, const char *body,
                    size_t body_len, struct webhook_result *res, struct errbuf *eb);

/* The same delivery for a caller's curl multi handle (many in flight at once): xfer_new checks
 * and signs as webhook_deliver and prepares the transfer (body copied); add
 * webhook_xfer_handle(x) (a CURL *) to the multi handle; when curl reports it done,
 * webhook_xfer_done(x, the CURLcode, res) gives webhook_deliver's answer. Free after removing
 * the handle from the multi handle; webhook_xfer_free accepts NULL. */
struct webhook_xfer;
int webhook_xfer_new(const struct webhook_policy *p, const char *url, const unsigned char *secret,
                     size_t secret_len, const char *event, const char *delivery_id,
                     const char *body, size_t body_len, struct webhook_xfer **out,
                     struct errbuf *eb);
void *webhook_xfer_handle(struct webhook_xfer *x);
int webhook_xfer_done(struct webhook_xfer *x, int curl_code, struct webhook_result *res,
                      struct errbuf *eb);
void webhook_xfer_free(struct webhook_xfer *x);

#endif
