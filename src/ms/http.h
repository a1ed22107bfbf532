/* http.h - asynchronous HTTPS client on libcurl's multi interface, with timers.
 *
 * One struct http is an event loop owned by one thread: every function here must be called from
 * that thread, except http_wakeup(). Requests run concurrently (connection reuse, HTTP/2 where
 * the server offers it); each completes exactly once through its callback, called from
 * http_run(). If http_submit() fails, the callback never fires.
 *
 * Safety rules applied to every request:
 *   - TLS is always verified (extra CA file from opts.ca_file); plain http:// is refused unless
 *     the host is a loopback address (127.0.0.0/8, ::1, localhost: the simulator and tests);
 *   - no redirects are followed; a bearer token goes only to the URL given;
 *   - the response body is capped (req.max_body, default HTTP_DEFAULT_MAX_BODY) and every
 *     request has a total timeout (req.timeout_ms, default HTTP_DEFAULT_TIMEOUT_MS);
 *   - Retry-After is parsed from the header as decimal seconds (curl 7.88 truncates "2.128");
 *   - one leading UTF-8 byte-order mark before a JSON body is dropped (http_body_skip_bom):
 *     Partner Center and Graph error bodies sometimes start with one and JSON parsers refuse it;
 *   - Microsoft's ids for support (request-id / MS-RequestId, client-request-id /
 *     MS-CorrelationId), the Date and WWW-Authenticate headers reach the callback.
 *   - a request with to_file streams a 200 or 206 body into sink_fd instead of memory (bounded by
 *     max_body for the whole file): a 206 must start (Content-Range) where the file ends, else
 *     the transfer fails; a 200 empties the file first. Other statuses go to memory as usual.
 * Secrets in request bodies and Authorization headers are never logged.
 *
 * The process must ignore SIGPIPE itself (CURLOPT_NOSIGNAL is set on every transfer); main()
 * should call curl_global_init() before starting threads (http_new() also calls it; refcounted).
 * Errors: a URL that is not https:// (or http:// to loopback), or a header containing CR/LF, is
 * refused by http_submit() with ERR_INVAL. Transport failures reach the callback as ERR_HTTP,
 * ERR_TIMEOUT or ERR_TOOBIG with one sentence naming host:port, never the query string
 * ("cannot connect to 127.0.0.1:9 (Connection refused); check the URL setting ...").
 * Callbacks may submit requests and arm timers; they must not call http_free().
 */
#ifndef MEMSYNC_HTTP_H
#define MEMSYNC_HTTP_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define HTTP_DEFAULT_MAX_BODY   (64u * 1024 * 1024)
#define HTTP_DEFAULT_TIMEOUT_MS 120000
#define HTTP_MAX_HEADERS        8

struct http;

struct http_opts {
    const char *ca_file;      /* extra CA bundle (MEMSYNC_CA_FILE), or NULL for the system store */
    int max_connections;      /* total connection cap; 0 = 64 */
    int max_host_connections; /* per host; 0 = 16 */
    const char *user_agent;   /* NULL = "memsync/VERSION" */
};

struct http_req {
    const char *method; /* "GET" (default when NULL) or "POST" */
    const char *url;
    const char *headers[HTTP_MAX_HEADERS]; /* "Name: value", NULL-terminated or full */
    const char *body; /* copied by http_submit; may hold secrets (never logged) */
    size_t body_len;
    size_t max_body; /* response cap; 0 = default */
    long timeout_ms; /* 0 = default */
    int to_file;     /* stream a 200/206 body into sink_fd (see above); no compression asked */
    int sink_fd;
    long low_speed_bps; /* fail when slower than this over low_speed_s; 0 = 1 byte/s over 60 s */
    long low_speed_s;
};

struct http_resp {
    int err;            /* ERR_OK when an HTTP status arrived; ERR_HTTP, ERR_TIMEOUT, ERR_TOOBIG */
    const char *errmsg; /* transport error text when err != ERR_OK ("" otherwise) */
    long status;        /* HTTP status, 0 when none */
    const char *body;   /* NUL-terminated; valid only during the callback */
    size_t body_len;
    double retry_after;       /* seconds from Retry-After, -1 when absent or unparsable */
    const char *content_type; /* may be NULL */
    int64_t elapsed_ms;
    /* From the answer's headers, "" when absent (NULL in responses made up by callers): Graph's
     * request-id or Partner Center's MS-RequestId, the echoed client-request-id or
     * MS-CorrelationId, Date, and WWW-Authenticate (Intune names its realm there). Printable ASCII,
     * whole values only. */
    const char *request_id;
    const char *client_request_id;
    const char *date;
    const char *www_authenticate;
    int64_t file_bytes; /* to_file: the file's size after the transfer (also after a failure) */
};

typedef void http_done_cb(void *arg, const struct http_resp *resp);
typedef void http_timer_cb(void *arg);

int http_new(struct http **out, const struct http_opts *opts, struct errbuf *eb);
void http_free(struct http *h); /* cancels pending requests without calling callbacks */

/* Starts a request. req and everything it points to are copied. */
int http_submit(struct http *h, const struct http_req *req, http_done_cb *cb, void *arg,
                struct errbuf *eb);

/* Calls cb(arg) from http_run() once delay_ms has passed. */
void http_timer(struct http *h, int64_t delay_ms, http_timer_cb *cb, void *arg);

/* Runs one round of the loop: transfers, completions, due timers; waits at most max_wait_ms for
 * activity. Returns the number of requests plus timers still pending. */
int http_run(struct http *h, int max_wait_ms);

/* Number of requests and timers still pending. */
int http_pending(const struct http *h);

/* Wakes a thread blocked in http_run(). Safe from any thread. */
void http_wakeup(struct http *h);

/* Parses a Retry-After value: decimal seconds ("2.128", "57") or an HTTP date. Returns seconds
 * (>= 0) or -1 when unparsable. */
double http_parse_retry_after(const char *value);

/* Drops one leading UTF-8 byte-order mark (EF BB BF) when JSON ('{' or '[' after optional
 * whitespace) follows it; leaves any other body alone. Applied to every response body. */
void http_body_skip_bom(const char **body, size_t *len);

/* Synchronous helper for simple callers (CLI checks, tests): runs one request to completion.
 * On success *status and *body (malloc'd, NUL-terminated, caller frees) are set. */
int http_fetch(const struct http_opts *opts, const struct http_req *req, long *status, char **body,
               size_t *body_len, double *retry_after, struct errbuf *eb);

#endif
