/* httpd.h - the embedded HTTP server of `memsync serve` (libmicrohttpd).
 *
 * One internal polling thread per pool thread (epoll), HTTPD_THREADS threads, connection and
 * per-address limits, idle timeouts and a per-connection memory limit. A request head must be in
 * within HTTPD_HEAD_TIMEOUT_S and head plus body within HTTPD_REQUEST_TIMEOUT_S, however slowly
 * the bytes trickle (a guard thread closes the connection). The per-address limit counts the
 * client: behind a proxy on loopback, X-Real-IP of the request in progress. Request bodies are read
 * into a bounded buffer (HTTPD_BODY_MAX; 413 past it); MHD's post processor is not used. Every
 * response carries X-Content-Type-Options, Referrer-Policy, X-Frame-Options and a
 * Content-Security-Policy with frame-ancestors 'none' (a stricter one for HTML).
 *
 * The handler of `memsync serve` is router_handle (router.h): httpd knows no routes, users or
 * roles.
 * Threads: the handler runs on a pool thread; several requests run at once on different
 * threads. Each pool thread opens its own store connection on first use (req->st) and closes it
 * when the thread ends. A handler must not block for long (no sync runs inside it).
 * Ownership: the request and everything it points to are borrowed for the handler call; the
 * handler fills the response (body buffer or a streaming reader) which httpd then owns.
 */
#ifndef MEMSYNC_HTTPD_H
#define MEMSYNC_HTTPD_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "buf.h"
#include "err.h"
#include "store.h"

#define HTTPD_THREADS           4
#define HTTPD_BODY_MAX          (64 * 1024)
#define HTTPD_RESP_MAX          (16 * 1024 * 1024)
#define HTTPD_CONN_LIMIT        256
#define HTTPD_PER_IP_LIMIT      64
#define HTTPD_TIMEOUT_S         30
#define HTTPD_HEAD_TIMEOUT_S    10 /* the whole request head, however slowly it trickles in */
#define HTTPD_REQUEST_TIMEOUT_S 60 /* head and body */
#define HTTPD_MAX_HEADERS       12

struct httpd;
struct MHD_Connection;

struct httpd_request {
    const char *method;
    const char *path; /* without the query string */
    const char *body; /* NUL-terminated, may be "" */
    size_t body_len;
    char ip[64];      /* the peer, or X-Real-IP when the peer is a proxy on loopback */
    int https;        /* the client came through a TLS proxy on loopback (X-Forwarded-Proto) */
    struct store *st; /* this thread's connection; NULL when the database cannot be opened */
    struct MHD_Connection *conn;
};

/* Streaming body: called until it returns 0 (end) or -1 (abort). */
typedef ssize_t httpd_reader(void *cls, char *buf, size_t max);

struct httpd_response {
    int status;
    const char *content_type; /* static string */
    int html;                 /* the UI's Content-Security-Policy */
    struct buf body;
    char *headers[HTTPD_MAX_HEADERS][2];
    int nheaders;
    httpd_reader *reader;
    void (*reader_free)(void *cls);
    void *reader_cls;
    /* A body owned elsewhere (a cached answer), sent instead of `body`: httpd calls
     * ext_free(ext_cls) exactly once, when MHD no longer needs it (or the answer is dropped). */
    const char *ext;
    size_t ext_len;
    void (*ext_free)(void *cls);
    void *ext_cls;
};

typedef void httpd_handler(void *app, struct httpd_request *req, struct httpd_response *resp);

struct httpd_opts {
    const char *listen; /* "HOST:PORT" (IPv4 or [IPv6]); port 0 picks a free one */
    const char *db_url; /* for the per-thread store connections */
    httpd_handler *handler;
    void *app;
};

int httpd_start(struct httpd **out, const struct httpd_opts *o, struct errbuf *eb);
uint16_t httpd_port(const struct httpd *h);
void httpd_stop(struct httpd *h); /* NULL-safe; waits for the pool threads */

/* Request accessors (borrowed; NULL when absent). */
const char *httpd_header(const struct httpd_request *r, const char *name);
const char *httpd_arg(const struct httpd_request *r, const char *name);
const char *httpd_cookie(const struct httpd_request *r, const char *name);
/* Calls cb for each query argument in order; stops at a non-zero return. */
int httpd_args_each(const struct httpd_request *r,
                    int (*cb)(void *arg, const char *key, const char *value), void *arg);

/* Adds a response header (copied). Silently ignored past HTTPD_MAX_HEADERS. */
void httpd_response_header(struct httpd_response *r, const char *name, const char *value);
/* A body whose building failed (buf.h's sticky error) becomes a 500 with a short error page or
 * JSON, and the cause is logged with method and path. httpd calls it before sending; a handler
 * wrapper may call it earlier to see the final status. Idempotent. */
void httpd_response_check(struct httpd_response *r, const char *method, const char *path);

/* Counters for /metrics. */
struct httpd_stats {
    uint64_t requests;
    uint64_t status_4xx;
    uint64_t status_5xx;
    uint64_t status_429;
};
void httpd_stats_get(const struct httpd *h, struct httpd_stats *out);

#endif
