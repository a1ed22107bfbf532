#include "http.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <sys/stat.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "mem.h"

#define HTTP_CONNECT_TIMEOUT_MS 15000L
#define HTTP_LOW_SPEED_TIME_S   60L
#define HTTP_CTYPE_MAX          256
#define HTTP_PRESIZE_MAX        (8u << 20) /* Content-Length pre-sizes bodies up to this */
#define HTTP_ERRMSG_MAX         384
#define HTTP_ID_MAX             128 /* request-id, MS-RequestId, Date ... (longer: ignored) */
#define HTTP_WWW_AUTH_MAX       512

struct xfer {
    struct http *h;
    CURL *easy;
    struct curl_slist *headers;
    struct buf body;
    size_t max_body;
    long timeout_ms;
    int toobig;
    int to_file; /* a 200/206 body goes to fd */
    int fd;
    int file_started; /* the first byte of a file body arrived (status checked) */
    int range_bad;    /* a 206 did not continue the file */
    int io_failed;    /* writing the file failed (io_errno says why) */
    int io_errno;
    int64_t file_len;   /* bytes in the file */
    int64_t range_from; /* Content-Range's first byte, -1 when none */
    double retry_after;
    char *content_type;
    char request_id[HTTP_ID_MAX];        /* Graph request-id or Partner Center MS-RequestId */
    char client_request_id[HTTP_ID_MAX]; /* client-request-id or MS-CorrelationId echoed */
    char date[HTTP_ID_MAX];
    char www_authenticate[HTTP_WWW_AUTH_MAX];
    char where[300];    /* "host:port" for messages */
    char redacted[512]; /* URL without its query, for logs */
    int64_t start_ms;
    http_done_cb *cb;
    void *arg;
    char curl_err[CURL_ERROR_SIZE];
    struct xfer *prev, *next;
};

struct timer {
    int64_t due;
    uint64_t seq;
    http_timer_cb *cb;
    void *arg;
};

struct http {
    CURLM *multi;
    char *ca_file;
    char *user_agent;
    struct xfer *xfers;
    int nxfers;
    struct timer *timers; /* min-heap on (due, seq) */
    size_t ntimers, captimers;
    uint64_t seq;
};

/* ---- timers (binary min-heap) ------------------------------------------------------------- */

static int
timer_less(const struct timer *a, const struct timer *b)
{
    return a->due < b->due || (a->due == b->due && a->seq < b->seq);
}

static void
timer_swap(struct timer *a, struct timer *b)
{
    struct timer t = *a;

    *a = *b;
    *b = t;
}

void
http_timer(struct http *h, int64_t delay_ms, http_timer_cb *cb, void *arg)
{
    size_t i;

    if (delay_ms < 0)
        delay_ms = 0;
    h->timers = mem_grow(h->timers, &h->captimers, h->ntimers + 1, sizeof *h->timers);
    i = h->ntimers++;
    h->timers[i] = (struct timer){clock_mono_ms() + delay_ms, h->seq++, cb, arg};
    while (i > 0 && timer_less(&h->timers[i], &h->timers[(i - 1) / 2])) {
        timer_swap(&h->timers[i], &h->timers[(i - 1) / 2]);
        i = (i - 1) / 2;
    }
}

static struct timer
timer_pop(struct http *h)
{
    struct timer top = h->timers[0];
    size_t i = 0;

    h->timers[0] = h->timers[--h->ntimers];
    for (;;) {
        size_t l = 2 * i + 1, r = l + 1, m = i;

        if (l < h->ntimers && timer_less(&h->timers[l], &h->timers[m]))
            m = l;
        if (r < h->ntimers && timer_less(&h->timers[r], &h->timers[m]))
            m = r;
        if (m == i)
            break;
        timer_swap(&h->timers[i], &h->timers[m]);
        i = m;
    }
    return top;
}

/* Fires due timers. Timers added by callbacks wait for the next round, so a callback that
 * re-arms itself with delay 0 cannot starve the transfers. */
static void
timers_run(struct http *h)
{
    uint64_t limit = h->seq;
    int64_t now = clock_mono_ms();

    while (h->ntimers > 0 && h->timers[0].due <= now && h->timers[0].seq < limit) {
        struct timer t = timer_pop(h);

        t.cb(t.arg);
    }
}

/* ---- Retry-After ------------------------------------------------------------------------- */

double
http_parse_retry_after(const char *value)
{
    const char *p = value;
    double secs = 0, scale = 0.1;
    int digits = 0;
    size_t n;

    if (value == NULL)
        return -1;
    while (*p == ' ' || *p == '\t')
        p++;
    n = strlen(p);
    while (n > 0 && isspace((unsigned char)p[n - 1]))
        n--;
    if (n == 0)
        return -1;
    if (isdigit((unsigned char)*p)) {
        /* Decimal seconds, parsed by hand: no locale, no exponent, no sign. */
        size_t i = 0;

        for (; i < n && isdigit((unsigned char)p[i]); i++, digits++) {
            if (secs < 1e9)
                secs = secs * 10 + (p[i] - '0');
        }
        if (i < n && p[i] == '.') {
            for (i++; i < n && isdigit((unsigned char)p[i]); i++, scale /= 10)
                secs += (p[i] - '0') * scale;
        }
        return i == n && digits > 0 ? secs : -1;
    }
    if (isalpha((unsigned char)*p)) {
        char date[64];
        time_t t;

        if (n >= sizeof date)
            return -1;
        memcpy(date, p, n);
        date[n] = '\0';
        t = curl_getdate(date, NULL);
        if (t == (time_t)-1)
            return -1;
        secs = difftime(t, time(NULL));
        return secs > 0 ? secs : 0;
    }
    return -1;
}

/* ---- UTF-8 byte-order mark ------------------------------------------------------------------ */

void
http_body_skip_bom(const char **body, size_t *len)
{
    const unsigned char *b = (const unsigned char *)*body;
    size_t i = 3;

    if (*len < 4 || b[0] != 0xEF || b[1] != 0xBB || b[2] != 0xBF)
        return;
    while (i < *len && (b[i] == ' ' || b[i] == '\t' || b[i] == '\r' || b[i] == '\n'))
        i++;
    if (i == *len || (b[i] != '{' && b[i] != '['))
        return; /* not JSON after the mark: leave the bytes as they came */
    *body += 3;
    *len -= 3;
}

/* ---- transfers ---------------------------------------------------------------------------- */

/* A 200/206 body chunk of a to_file request: appended to the file. */
static size_t
body_to_file(struct xfer *x, const char *ptr, size_t n, long status)
{
    size_t off = 0;

    if (!x->file_started) {
        x->file_started = 1;
        if (status == 200 && x->file_len > 0) { /* the server sent it all again: start over */
            if (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0) {
                x->io_failed = 1;
                x->io_errno = errno;
                return 0;
            }
            x->file_len = 0;
        } else if (status == 206 && x->range_from != x->file_len) {
            x->range_bad = 1;
            return 0;
        }
    }
    if ((uint64_t)x->file_len + n > x->max_body) {
        x->toobig = 1;
        return 0;
    }
    while (off < n) {
        ssize_t w = write(x->fd, ptr + off, n - off);

        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            x->io_failed = 1;
            x->io_errno = w < 0 ? errno : ENOSPC;
            return 0;
        }
        off += (size_t)w;
    }
    x->file_len += (int64_t)n;
    return n;
}

static size_t
on_body(char *ptr, size_t size, size_t nmemb, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nmemb;

    if (x->to_file) {
        long status = 0;

        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &status);
        if (status == 200 || status == 206)
            return body_to_file(x, ptr, n, status);
    }
    if (buf_add(&x->body, ptr, n) != ERR_OK) {
        x->toobig = 1;
        return 0; /* libcurl stops with CURLE_WRITE_ERROR */
    }
    return n;
}

/* Keeps a header value for support (request ids, date): printable ASCII only, and only when it
 * fits; anything else is dropped rather than cut, so a kept id is always the whole id. */
static void
header_keep(char *dst, size_t cap, const char *v, const char *end)
{
    size_t n = (size_t)(end - v);

    if (n >= cap)
        return;
    for (size_t i = 0; i < n; i++)
        if (v[i] < 0x20 || v[i] > 0x7e)
            return;
    memcpy(dst, v, n);
    dst[n] = '\0';
}

static size_t
on_header(char *ptr, size_t size, size_t nitems, void *arg)
{
    struct xfer *x = arg;
    size_t n = size * nitems, name_len;
    const char *colon, *v, *end = ptr + n;

    /* A new status line (after 100 Continue, say) starts a new header block. */
    if (n >= 5 && strncmp(ptr, "HTTP/", 5) == 0) {
        x->retry_after = -1;
        x->range_from = -1;
        XFREE(x->content_type);
        x->request_id[0] = x->client_request_id[0] = x->date[0] = x->www_authenticate[0] = '\0';
        return n;
    }
    colon = memchr(ptr, ':', n);
    if (colon == NULL)
        return n;
    name_len = (size_t)(colon - ptr);
    v = colon + 1;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && isspace((unsigned char)end[-1]))
        end--;
    if (name_len == 11 && strncasecmp(ptr, "Retry-After", 11) == 0) {
        char val[64];
        size_t vl = (size_t)(end - v);

        if (vl < sizeof val) {
            memcpy(val, v, vl);
            val[vl] = '\0';
            x->retry_after = http_parse_retry_after(val);
        }
    } else if ((name_len == 10 && strncasecmp(ptr, "request-id", 10) == 0) ||
               (name_len == 12 && strncasecmp(ptr, "MS-RequestId", 12) == 0)) {
        header_keep(x->request_id, sizeof x->request_id, v, end);
    } else if ((name_len == 17 && strncasecmp(ptr, "client-request-id", 17) == 0) ||
               (name_len == 16 && strncasecmp(ptr, "MS-CorrelationId", 16) == 0)) {
        header_keep(x->client_request_id, sizeof x->client_request_id, v, end);
    } else if (name_len == 4 && strncasecmp(ptr, "Date", 4) == 0) {
        header_keep(x->date, sizeof x->date, v, end);
    } else if (name_len == 16 && strncasecmp(ptr, "WWW-Authenticate", 16) == 0) {
        header_keep(x->www_authenticate, sizeof x->www_authenticate, v, end);
    } else if (name_len == 13 && strncasecmp(ptr, "Content-Range", 13) == 0) {
        /* "bytes FIRST-LAST/TOTAL": only FIRST matters (where the part goes). */
        char val[64];
        size_t vl = (size_t)(end - v);
        long long first;
        char *e;

        if (vl > 6 && vl < sizeof val && strncasecmp(v, "bytes ", 6) == 0 && v[6] >= '0' &&
            v[6] <= '9') {
            memcpy(val, v, vl);
            val[vl] = '\0';
            errno = 0;
            first = strtoll(val + 6, &e, 10);
            if (errno == 0 && *e == '-' && first >= 0)
                x->range_from = first;
        }
    } else if (name_len == 12 && strncasecmp(ptr, "Content-Type", 12) == 0) {
        free(x->content_type);
        x->content_type =
            xstrndup(v, (size_t)(end - v) < HTTP_CTYPE_MAX ? (size_t)(end - v) : HTTP_CTYPE_MAX);
    } else if (name_len == 14 && strncasecmp(ptr, "Content-Length", 14) == 0 && x->body.len == 0) {
        /* Size the body once instead of doubling it up to a $batch answer's few hundred KB.
         * Only a hint: the body's own maximum still decides, and a lying length costs at most
         * HTTP_PRESIZE_MAX of address space. */
        char val[24];
        size_t vl = (size_t)(end - v);
        unsigned long long cl;
        char *e;

        if (vl > 0 && vl < sizeof val && v[0] >= '0' && v[0] <= '9') {
            memcpy(val, v, vl);
            val[vl] = '\0';
            cl = strtoull(val, &e, 10);
            if (*e == '\0' && cl > 0 && cl <= HTTP_PRESIZE_MAX)
                (void)buf_reserve(&x->body, (size_t)cl);
        }
    }
    return n;
}

static void
xfer_free(struct xfer *x)
{
    if (x == NULL)
        return;
    if (x->easy != NULL) {
        if (x->h != NULL)
            curl_multi_remove_handle(x->h->multi, x->easy);
        curl_easy_cleanup(x->easy);
    }
    curl_slist_free_all(x->headers);
    buf_free(&x->body);
    free(x->content_type);
    free(x);
}

static void
xfer_unlink(struct http *h, struct xfer *x)
{
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        h->xfers = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    h->nxfers--;
}

static int
is_loopback(const char *host)
{
    struct in_addr a4;
    char tmp[64];
    size_t n = strlen(host);

    if (strcasecmp(host, "localhost") == 0)
        return 1;
    if (inet_pton(AF_INET, host, &a4) == 1)
        return (ntohl(a4.s_addr) >> 24) == 127;
    /* curl reports IPv6 hosts with brackets. */
    if (n >= 2 && n < sizeof tmp && host[0] == '[' && host[n - 1] == ']') {
        struct in6_addr a6;

        memcpy(tmp, host + 1, n - 2);
        tmp[n - 2] = '\0';
        return inet_pton(AF_INET6, tmp, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
    }
    return 0;
}

/* Checks scheme and host; fills "host:port" for messages. */
static int
check_url(const char *url, char *where, size_t wlen, int *plain, struct errbuf *eb)
{
    CURLU *u = curl_url();
    char *scheme = NULL, *host = NULL, *port = NULL;
    char red[512];
    int rc;

    log_redact_url(url, red, sizeof red);
    if (u == NULL)
        return err_set(eb, ERR_NOMEM, "out of memory parsing a URL");
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
        curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
        rc = err_set(eb, ERR_INVAL, "invalid URL %s; check the URL setting", red);
        goto out;
    }
    if (curl_url_get(u, CURLUPART_PORT, &port, CURLU_DEFAULT_PORT) != CURLUE_OK)
        port = NULL;
    snprintf(where, wlen, "%s:%s", host, port != NULL ? port : "?");
    if (strcasecmp(scheme, "https") == 0) {
        *plain = 0;
    } else if (strcasecmp(scheme, "http") == 0 && is_loopback(host)) {
        *plain = 1;
    } else if (strcasecmp(scheme, "http") == 0) {
        rc = err_set(eb, ERR_INVAL,
                     "refusing plain http:// to %s: only https:// is allowed (http:// only on "
                     "loopback); check the URL setting",
                     host);
        goto out;
    } else {
        rc = err_set(eb, ERR_INVAL, "unsupported URL scheme in %s; use https://", red);
        goto out;
    }
    rc = ERR_OK;
out:
    curl_free(scheme);
    curl_free(host);
    curl_free(port);
    curl_url_cleanup(u);
    return rc;
}

static int
header_ok(const char *h)
{
    return strchr(h, '\r') == NULL && strchr(h, '\n') == NULL && strchr(h, ':') != NULL;
}

int
http_submit(struct http *h, const struct http_req *req, http_done_cb *cb, void *arg,
            struct errbuf *eb)
{
    struct xfer *x = NULL;
    const char *method = req->method != NULL ? req->method : "GET";
    int plain = 0, rc;
    CURLcode cc = CURLE_OK;

    if (req->url == NULL || cb == NULL)
        return err_set(eb, ERR_INVAL, "http request without URL or callback");
    x = xcalloc(1, sizeof *x);
    if ((rc = check_url(req->url, x->where, sizeof x->where, &plain, eb)) != ERR_OK)
        goto out;
    log_redact_url(req->url, x->redacted, sizeof x->redacted);
    x->max_body = req->max_body ? req->max_body : HTTP_DEFAULT_MAX_BODY;
    x->timeout_ms = req->timeout_ms > 0 ? req->timeout_ms : HTTP_DEFAULT_TIMEOUT_MS;
    x->retry_after = -1;
    x->range_from = -1;
    x->cb = cb;
    x->arg = arg;
    if (req->to_file) {
        struct stat sb;

        if (fstat(req->sink_fd, &sb) != 0 || lseek(req->sink_fd, 0, SEEK_END) < 0) {
            rc = err_set(eb, ERR_IO, "cannot use the download file for %s: %s", x->redacted,
                         err_strerror(errno));
            goto out;
        }
        x->to_file = 1;
        x->fd = req->sink_fd;
        x->file_len = (int64_t)sb.st_size;
    }
    buf_init(&x->body, x->to_file ? HTTP_DEFAULT_MAX_BODY : x->max_body);
    for (int i = 0; i < HTTP_MAX_HEADERS && req->headers[i] != NULL; i++) {
        struct curl_slist *l;

        if (!header_ok(req->headers[i])) {
            rc = err_set(eb, ERR_INVAL, "invalid request header for %s", x->redacted);
            goto out;
        }
        if ((l = curl_slist_append(x->headers, req->headers[i])) == NULL) {
            rc = err_set(eb, ERR_NOMEM, "out of memory building request headers");
            goto out;
        }
        x->headers = l;
    }
    if ((x->easy = curl_easy_init()) == NULL) {
        rc = err_set(eb, ERR_NOMEM, "cannot create a transfer handle");
        goto out;
    }
#define SET(opt, val)                                                                              \
    do {                                                                                           \
        if (cc == CURLE_OK)                                                                        \
            cc = curl_easy_setopt(x->easy, opt, val);                                              \
    } while (0)
    SET(CURLOPT_URL, req->url);
    SET(CURLOPT_PROTOCOLS_STR, plain ? "http,https" : "https");
    SET(CURLOPT_REDIR_PROTOCOLS_STR, "https");
    SET(CURLOPT_FOLLOWLOCATION, 0L);
    SET(CURLOPT_NOSIGNAL, 1L);
    SET(CURLOPT_CONNECTTIMEOUT_MS,
        x->timeout_ms < HTTP_CONNECT_TIMEOUT_MS ? x->timeout_ms : HTTP_CONNECT_TIMEOUT_MS);
    SET(CURLOPT_TIMEOUT_MS, x->timeout_ms);
    SET(CURLOPT_LOW_SPEED_LIMIT, req->low_speed_bps > 0 ? req->low_speed_bps : 1L);
    SET(CURLOPT_LOW_SPEED_TIME, req->low_speed_s > 0 ? req->low_speed_s : HTTP_LOW_SPEED_TIME_S);
    SET(CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)x->max_body);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, x);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, x);
    if (!x->to_file) /* a file body may be resumed by byte offset: ask for it as stored */
        SET(CURLOPT_ACCEPT_ENCODING, "");
    SET(CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    SET(CURLOPT_SSL_VERIFYPEER, 1L);
    SET(CURLOPT_SSL_VERIFYHOST, 2L);
    SET(CURLOPT_PRIVATE, x);
    SET(CURLOPT_ERRORBUFFER, x->curl_err);
    SET(CURLOPT_USERAGENT, h->user_agent);
    if (h->ca_file != NULL)
        SET(CURLOPT_CAINFO, h->ca_file);
    if (x->headers != NULL)
        SET(CURLOPT_HTTPHEADER, x->headers);
    if (strcmp(method, "POST") == 0) {
        SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body_len);
        SET(CURLOPT_COPYPOSTFIELDS, req->body != NULL ? req->body : "");
    } else if (strcmp(method, "GET") != 0) {
        SET(CURLOPT_CUSTOMREQUEST, method);
    }
#undef SET
    if (cc != CURLE_OK) {
        rc = err_set(eb, ERR_INVAL, "cannot set up the request to %s: %s", x->where,
                     curl_easy_strerror(cc));
        goto out;
    }
    if (curl_multi_add_handle(h->multi, x->easy) != CURLM_OK) {
        rc = err_set(eb, ERR_HTTP, "cannot start the request to %s", x->where);
        goto out;
    }
    x->h = h;
    x->start_ms = clock_mono_ms();
    x->next = h->xfers;
    if (h->xfers != NULL)
        h->xfers->prev = x;
    h->xfers = x;
    h->nxfers++;
    log_debug("http start method=%s url=%s", method, x->redacted);
    x = NULL;
    rc = ERR_OK;
out:
    xfer_free(x);
    return rc;
}

/* Turns a libcurl failure into one sentence naming the host, never the query string. */
static int
transport_error(struct xfer *x, CURLcode cc, char *msg, size_t len)
{
    long os_errno = 0;
    const char *detail = x->curl_err[0] != '\0' ? x->curl_err : curl_easy_strerror(cc);

    if (x->range_bad) {
        snprintf(msg, len, "%s answered a resumed download with the wrong part", x->where);
        return ERR_HTTP;
    }
    if (x->io_failed) {
        snprintf(msg, len, "cannot write the download from %s to disk (%s)", x->where,
                 err_strerror(x->io_errno));
        return ERR_IO;
    }
    if (x->toobig || cc == CURLE_FILESIZE_EXCEEDED) {
        snprintf(msg, len, "the response from %s is larger than %zu bytes", x->where, x->max_body);
        return ERR_TOOBIG;
    }
    switch (cc) {
    case CURLE_OPERATION_TIMEDOUT:
        snprintf(msg, len,
                 "the request to %s timed out after %ld ms; check that the service is "
                 "reachable",
                 x->where, x->timeout_ms);
        return ERR_TIMEOUT;
    case CURLE_COULDNT_CONNECT:
        curl_easy_getinfo(x->easy, CURLINFO_OS_ERRNO, &os_errno);
        snprintf(msg, len,
                 "cannot connect to %s (%s); check the URL setting and that the service is "
                 "reachable",
                 x->where, os_errno != 0 ? err_strerror((int)os_errno) : detail);
        return ERR_HTTP;
    case CURLE_COULDNT_RESOLVE_HOST:
        snprintf(msg, len, "cannot resolve the host of %s; check the URL setting and DNS",
                 x->where);
        return ERR_HTTP;
    case CURLE_PEER_FAILED_VERIFICATION:
    case CURLE_SSL_CONNECT_ERROR:
    case CURLE_SSL_CACERT_BADFILE:
    case CURLE_SSL_CERTPROBLEM:
        snprintf(msg, len,
                 "TLS with %s failed (%s); check the URL and, for a private CA, the CA file "
                 "setting",
                 x->where, detail);
        return ERR_HTTP;
    default:
        snprintf(msg, len, "the request to %s failed (%s)", x->where, detail);
        return ERR_HTTP;
    }
}

static void
xfer_done(struct http *h, struct xfer *x, CURLcode cc)
{
    struct http_resp r = {0};
    char msg[HTTP_ERRMSG_MAX] = "";

    xfer_unlink(h, x);
    r.retry_after = x->retry_after;
    r.content_type = x->content_type;
    r.request_id = x->request_id;
    r.client_request_id = x->client_request_id;
    r.date = x->date;
    r.www_authenticate = x->www_authenticate;
    r.elapsed_ms = clock_mono_ms() - x->start_ms;
    r.file_bytes = x->to_file ? x->file_len : 0;
    r.errmsg = msg;
    curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &r.status);
    if (cc == CURLE_OK) {
        r.err = ERR_OK;
        r.body = buf_cstr(&x->body);
        r.body_len = x->body.len;
        /* The one place a leading BOM is dropped, for every parser after it. */
        http_body_skip_bom(&r.body, &r.body_len);
        log_debug("http done url=%s status=%ld bytes=%zu ms=%lld", x->redacted, r.status,
                  r.body_len, (long long)r.elapsed_ms);
    } else {
        r.err = transport_error(x, cc, msg, sizeof msg);
        r.body = "";
        r.body_len = 0;
        log_debug("http failed url=%s error=%s", x->redacted, msg);
    }
    x->cb(x->arg, &r);
    xfer_free(x);
}

static void
drain(struct http *h)
{
    CURLMsg *m;
    int left, running;

    curl_multi_perform(h->multi, &running);
    while ((m = curl_multi_info_read(h->multi, &left)) != NULL) {
        struct xfer *x = NULL;

        if (m->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, (char **)&x);
        if (x != NULL)
            xfer_done(h, x, m->data.result);
    }
}

int
http_run(struct http *h, int max_wait_ms)
{
    int timeout = max_wait_ms < 0 ? 0 : max_wait_ms;

    drain(h);
    timers_run(h);
    if (http_pending(h) == 0)
        return 0; /* nothing left to wait for: do not sleep out the timeout */
    if (h->ntimers > 0) {
        int64_t until = h->timers[0].due - clock_mono_ms();

        if (until < timeout)
            timeout = until < 0 ? 0 : (int)until;
    }
    if (timeout > 0 || h->nxfers > 0)
        curl_multi_poll(h->multi, NULL, 0, timeout, NULL);
    drain(h);
    timers_run(h);
    return http_pending(h);
}

int
http_pending(const struct http *h)
{
    return h->nxfers + (int)h->ntimers;
}

void
http_wakeup(struct http *h)
{
    curl_multi_wakeup(h->multi);
}

int
http_new(struct http **out, const struct http_opts *opts, struct errbuf *eb)
{
    static const struct http_opts defaults = {0};
    struct http *h = NULL;

    *out = NULL;
    if (opts == NULL)
        opts = &defaults;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return err_set(eb, ERR_HTTP, "cannot initialise libcurl");
    h = xcalloc(1, sizeof *h);
    if ((h->multi = curl_multi_init()) == NULL) {
        free(h);
        curl_global_cleanup();
        return err_set(eb, ERR_NOMEM, "cannot create the HTTP engine");
    }
    h->ca_file = opts->ca_file != NULL && *opts->ca_file != '\0' ? xstrdup(opts->ca_file) : NULL;
    h->user_agent =
        opts->user_agent != NULL ? xstrdup(opts->user_agent) : xstrdup("memsync/" MEMSYNC_VERSION);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS,
                      (long)(opts->max_connections > 0 ? opts->max_connections : 64));
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS,
                      (long)(opts->max_host_connections > 0 ? opts->max_host_connections : 16));
    curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    *out = h;
    return ERR_OK;
}

void
http_free(struct http *h)
{
    struct xfer *x, *next;

    if (h == NULL)
        return;
    for (x = h->xfers; x != NULL; x = next) {
        next = x->next;
        xfer_free(x);
    }
    curl_multi_cleanup(h->multi);
    free(h->timers);
    free(h->ca_file);
    free(h->user_agent);
    free(h);
    curl_global_cleanup();
}

/* ---- one-shot helper ------------------------------------------------------------------------ */

struct fetch_state {
    int done;
    int err;
    long status;
    char *body;
    size_t body_len;
    double retry_after;
    char msg[HTTP_ERRMSG_MAX];
};

static void
fetch_done(void *arg, const struct http_resp *r)
{
    struct fetch_state *st = arg;

    st->done = 1;
    st->err = r->err;
    st->status = r->status;
    st->retry_after = r->retry_after;
    snprintf(st->msg, sizeof st->msg, "%s", r->errmsg);
    if (r->err == ERR_OK) {
        st->body = xmalloc(r->body_len + 1);
        memcpy(st->body, r->body, r->body_len);
        st->body[r->body_len] = '\0';
        st->body_len = r->body_len;
    }
}

int
http_fetch(const struct http_opts *opts, const struct http_req *req, long *status, char **body,
           size_t *body_len, double *retry_after, struct errbuf *eb)
{
    struct fetch_state st = {0};
    struct http *h = NULL;
    int rc;

    st.retry_after = -1;
    if (body != NULL)
        *body = NULL;
    if ((rc = http_new(&h, opts, eb)) != ERR_OK)
        return rc;
    if ((rc = http_submit(h, req, fetch_done, &st, eb)) != ERR_OK)
        goto out;
    while (!st.done)
        http_run(h, 1000);
    if (st.err != ERR_OK) {
        rc = err_set(eb, st.err, "%s", st.msg);
        goto out;
    }
    if (status != NULL)
        *status = st.status;
    if (body_len != NULL)
        *body_len = st.body_len;
    if (retry_after != NULL)
        *retry_after = st.retry_after;
    if (body != NULL) {
        *body = st.body;
        st.body = NULL;
    }
    rc = ERR_OK;
out:
    free(st.body);
    http_free(h);
    return rc;
}
