/* httpd.c - libmicrohttpd glue: limits, bodies, per-thread store, security headers. */
#include "httpd.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include <microhttpd.h>

#include "jsonarena.h"
#include "log.h"
#include "mem.h"

/* A connection as the guard sees it (guard_* below): which client it counts for, and the
 * deadline of the phase it is in. */
enum guard_phase { GUARD_HEAD, GUARD_BODY, GUARD_RESPONSE };

struct guard_conn {
    struct guard_conn *prev, *next;
    int fd;
    int loopback; /* the peer is on this host (a proxy): its client is known per request */
    enum guard_phase phase;
    int64_t deadline_ms; /* monotonic; 0 = none (the response, which may stream for long) */
    int killed;
    char key[64]; /* the client address it counts for ("" = none yet) */
};

struct httpd {
    struct MHD_Daemon *d;
    struct httpd_opts o;
    char *db_url;
    uint16_t port;
    _Atomic uint64_t requests, s4xx, s5xx, s429;
    pthread_mutex_t guard_mu;
    pthread_cond_t guard_cv;
    struct guard_conn *conns;
    pthread_t reaper;
    int reaper_started, stopping, guard_mu_ready;
};

/* Per-request state kept between MHD's calls of the access handler. */
struct conn_state {
    struct buf body;
    int too_big;
    int over_limit; /* its client already has HTTPD_PER_IP_LIMIT connections */
};

/* ---- per-thread store ---------------------------------------------------------------------- */

static pthread_key_t store_key;
static pthread_once_t store_once = PTHREAD_ONCE_INIT;

/* Runs as a pool thread ends: its store, and the JSON arena its list answers used. */
static void
store_key_free(void *p)
{
    store_close(p);
    if (jsonarena_release() != ERR_OK)
        log_error("http: a thread ends with JSON values still alive in its arena");
}

static void
store_key_init(void)
{
    ASSERT(pthread_key_create(&store_key, store_key_free) == 0);
}

static struct store *
thread_store(struct httpd *h)
{
    struct store *st;
    struct errbuf eb = {0};

    pthread_once(&store_once, store_key_init);
    st = pthread_getspecific(store_key);
    if (st != NULL)
        return st;
    if (store_open(&st, h->db_url, &eb) != ERR_OK) {
        log_error("http: cannot open the database: %s", eb.msg);
        return NULL;
    }
    if (store_map_reads(st, &eb) != ERR_OK) /* only slower without it */
        log_warn("http: reads will not use a memory map: %s", eb.msg);
    pthread_setspecific(store_key, st);
    return st;
}

/* ---- request accessors --------------------------------------------------------------------- */

const char *
httpd_header(const struct httpd_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *
httpd_arg(const struct httpd_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *
httpd_cookie(const struct httpd_request *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_COOKIE_KIND, name);
}

struct args_walk {
    int (*cb)(void *arg, const char *key, const char *value);
    void *arg;
    int rc;
};

static enum MHD_Result
args_iter(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct args_walk *w = cls;

    (void)kind;
    w->rc = w->cb(w->arg, key, value != NULL ? value : "");
    return w->rc == 0 ? MHD_YES : MHD_NO;
}

int
httpd_args_each(const struct httpd_request *r,
                int (*cb)(void *arg, const char *key, const char *value), void *arg)
{
    struct args_walk w = {cb, arg, 0};

    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, args_iter, &w);
    return w.rc;
}

void
httpd_response_header(struct httpd_response *r, const char *name, const char *value)
{
    if (r->nheaders >= HTTPD_MAX_HEADERS)
        return;
    r->headers[r->nheaders][0] = xstrdup(name);
    r->headers[r->nheaders][1] = xstrdup(value);
    r->nheaders++;
}

void
httpd_stats_get(const struct httpd *h, struct httpd_stats *out)
{
    out->requests = atomic_load(&((struct httpd *)h)->requests);
    out->status_4xx = atomic_load(&((struct httpd *)h)->s4xx);
    out->status_5xx = atomic_load(&((struct httpd *)h)->s5xx);
    out->status_429 = atomic_load(&((struct httpd *)h)->s429);
}

static void
httpd_count_status(struct httpd *h, int status)
{
    atomic_fetch_add(&h->requests, 1);
    if (status == 429)
        atomic_fetch_add(&h->s429, 1);
    if (status >= 400 && status < 500)
        atomic_fetch_add(&h->s4xx, 1);
    else if (status >= 500)
        atomic_fetch_add(&h->s5xx, 1);
}

/* ---- responses ----------------------------------------------------------------------------- */

static void
response_clear(struct httpd_response *r)
{
    buf_free(&r->body);
    for (int i = 0; i < r->nheaders; i++) {
        free(r->headers[i][0]);
        free(r->headers[i][1]);
    }
    r->nheaders = 0;
    if (r->reader_free != NULL && r->reader_cls != NULL)
        r->reader_free(r->reader_cls);
    r->reader_cls = NULL;
    if (r->ext_free != NULL)
        r->ext_free(r->ext_cls);
    r->ext_free = NULL;
    r->ext = NULL;
}

static ssize_t
reader_tramp(void *cls, uint64_t pos, char *out, size_t max)
{
    struct httpd_response *r = cls;
    ssize_t n;

    (void)pos;
    n = r->reader(r->reader_cls, out, max);
    if (n == 0)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return n;
}

static void
reader_done(void *cls)
{
    struct httpd_response *r = cls;

    response_clear(r);
    free(r);
}

static void
security_headers(struct MHD_Response *mr, int html)
{
    MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(mr, "Referrer-Policy", "same-origin");
    MHD_add_response_header(mr, "X-Frame-Options", "DENY");
    MHD_add_response_header(mr, "Cache-Control", "no-store");
    MHD_add_response_header(mr, "Cross-Origin-Opener-Policy", "same-origin");
    MHD_add_response_header(mr, "Content-Security-Policy",
                            html ? "default-src 'none'; script-src 'self'; style-src 'self'; "
                                   "img-src 'self' data:; connect-src 'self'; form-action 'self'; "
                                   "base-uri 'none'; frame-ancestors 'none'"
                                 : "default-src 'none'; frame-ancestors 'none'");
}

static enum MHD_Result
send_response(struct httpd *h, struct MHD_Connection *c, struct httpd_response *r)
{
    struct MHD_Response *mr;
    enum MHD_Result ok;
    int status = r->status ? r->status : 200;

    if (r->reader != NULL) {
        struct httpd_response *owned = xmalloc(sizeof *owned);

        memcpy(owned, r, sizeof *owned);
        memset(r, 0, sizeof *r);
        mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 32 * 1024, reader_tramp, owned,
                                               reader_done);
        if (mr == NULL) {
            reader_done(owned);
            return MHD_NO;
        }
        r = owned;
    } else if (r->ext != NULL) {
        void (*fr)(void *) = r->ext_free;

        r->ext_free = NULL; /* MHD's now */
        mr = MHD_create_response_from_buffer_with_free_callback_cls(r->ext_len, (void *)r->ext, fr,
                                                                    r->ext_cls);
        if (mr == NULL) {
            if (fr != NULL)
                fr(r->ext_cls);
            response_clear(r);
            return MHD_NO;
        }
    } else {
        size_t len = 0;
        char *data = buf_detach(&r->body, &len);

        mr = MHD_create_response_from_buffer(len, data, MHD_RESPMEM_MUST_FREE);
        if (mr == NULL) {
            free(data);
            return MHD_NO;
        }
    }
    security_headers(mr, r->html);
    MHD_add_response_header(mr, "Content-Type",
                            r->content_type != NULL ? r->content_type : "application/json");
    for (int i = 0; i < r->nheaders; i++)
        MHD_add_response_header(mr, r->headers[i][0], r->headers[i][1]);
    if (r == NULL || r->reader == NULL)
        response_clear(r);
    httpd_count_status(h, status);
    ok = MHD_queue_response(c, (unsigned)status, mr);
    MHD_destroy_response(mr);
    return ok;
}

/* A handler's body that failed to build (a poisoned buffer: too large, or a bad format) is
 * never sent as it is: the answer becomes a 500 and the cause is logged, once, here. */
void
httpd_response_check(struct httpd_response *r, const char *method, const char *path)
{
    int err = buf_error(&r->body), html = r->html;

    if (err == ERR_OK || r->reader != NULL || r->ext != NULL)
        return;
    log_error("http: the response could not be built method=%s route=%s status=%d error=\"%s\"",
              method, path, r->status ? r->status : 200, err_str(err));
    response_clear(r);
    buf_init(&r->body, HTTPD_RESP_MAX);
    r->status = 500;
    r->html = html;
    if (html) {
        r->content_type = "text/html; charset=utf-8";
        buf_addstr(&r->body, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                             "<title>Error · memsync</title></head><body><main><h1>Something "
                             "went wrong</h1><p>This page could not be built; the cause is in "
                             "the server's log.</p><p><a href=\"/\">Overview</a></p></main>"
                             "</body></html>");
    } else {
        r->content_type = "application/json";
        buf_addstr(&r->body, "{\"errors\":[{\"code\":\"internal\",\"title\":\"Internal "
                             "error\",\"detail\":\"The response could not be built.\"}]}");
    }
}

static enum MHD_Result
send_plain(struct httpd *h, struct MHD_Connection *c, int status, const char *json)
{
    struct httpd_response r;

    memset(&r, 0, sizeof r);
    buf_init(&r.body, HTTPD_RESP_MAX);
    buf_addstr(&r.body, json);
    r.status = status;
    return send_response(h, c, &r);
}

/* ---- connection guard ------------------------------------------------------------------------
 * libmicrohttpd's idle timeout restarts on every byte, so a client trickling a byte every few
 * seconds kept a connection for ever, and its per-address limit counts the peer, which behind
 * nginx is 127.0.0.1 for everyone. The guard tracks each connection: the request head must be in
 * within HTTPD_HEAD_TIMEOUT_S (of the accept, or of the previous response plus the idle timeout),
 * head and body within HTTPD_REQUEST_TIMEOUT_S; a reaper thread shuts down the socket of a
 * connection past its deadline (MHD then closes it). Connections count per client address: the
 * peer's, or for a peer on loopback (the proxy) X-Real-IP of the request in progress. */

static int64_t
mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int
peer_ip(const struct sockaddr *sa, char *out, size_t outlen, int *loopback)
{
    snprintf(out, outlen, "?");
    *loopback = 0;
    if (sa == NULL)
        return -1;
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *a = (const struct sockaddr_in *)(const void *)sa;
        inet_ntop(AF_INET, &a->sin_addr, out, (socklen_t)outlen);
        *loopback = (ntohl(a->sin_addr.s_addr) >> 24) == 127;
        return 0;
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *a = (const struct sockaddr_in6 *)(const void *)sa;
        inet_ntop(AF_INET6, &a->sin6_addr, out, (socklen_t)outlen);
        *loopback = IN6_IS_ADDR_LOOPBACK(&a->sin6_addr);
        return 0;
    }
    return -1;
}

/* Connections counting for key, other than self. Caller holds guard_mu. */
static int
guard_count(const struct httpd *h, const char *key, const struct guard_conn *self)
{
    int n = 0;

    for (const struct guard_conn *g = h->conns; g != NULL; g = g->next)
        if (g != self && g->key[0] != '\0' && strcmp(g->key, key) == 0)
            n++;
    return n;
}

/* MHD's accept policy: a peer not on loopback may hold HTTPD_PER_IP_LIMIT connections. */
static enum MHD_Result
guard_accept(void *cls, const struct sockaddr *addr, socklen_t addrlen)
{
    struct httpd *h = cls;
    char ip[64];
    int loopback, ok = 1;

    (void)addrlen;
    if (peer_ip(addr, ip, sizeof ip, &loopback) != 0 || loopback)
        return MHD_YES;
    pthread_mutex_lock(&h->guard_mu);
    ok = guard_count(h, ip, NULL) < HTTPD_PER_IP_LIMIT;
    pthread_mutex_unlock(&h->guard_mu);
    return ok ? MHD_YES : MHD_NO;
}

static void
guard_notify(void *cls, struct MHD_Connection *c, void **socket_context,
             enum MHD_ConnectionNotificationCode toe)
{
    struct httpd *h = cls;
    struct guard_conn *g = *socket_context;

    if (toe == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ca =
            MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        char ip[64];

        g = xcalloc(1, sizeof *g);
        g->fd = fd != NULL ? fd->connect_fd : -1;
        peer_ip(ca != NULL ? ca->client_addr : NULL, ip, sizeof ip, &g->loopback);
        if (!g->loopback)
            snprintf(g->key, sizeof g->key, "%s", ip);
        g->phase = GUARD_HEAD;
        g->deadline_ms = mono_ms() + HTTPD_HEAD_TIMEOUT_S * 1000;
        pthread_mutex_lock(&h->guard_mu);
        g->next = h->conns;
        if (h->conns != NULL)
            h->conns->prev = g;
        h->conns = g;
        pthread_mutex_unlock(&h->guard_mu);
        *socket_context = g;
        return;
    }
    if (g == NULL)
        return;
    pthread_mutex_lock(&h->guard_mu);
    if (g->prev != NULL)
        g->prev->next = g->next;
    else
        h->conns = g->next;
    if (g->next != NULL)
        g->next->prev = g->prev;
    pthread_mutex_unlock(&h->guard_mu);
    free(g);
    *socket_context = NULL;
}

static struct guard_conn *
guard_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);

    return ci != NULL ? ci->socket_context : NULL;
}

/* The head is in: the request counts for client ip. 0 when that client is over its limit. */
static int
guard_request(struct httpd *h, struct MHD_Connection *c, const char *ip)
{
    struct guard_conn *g = guard_of(c);
    int ok = 1;

    if (g == NULL)
        return 1;
    pthread_mutex_lock(&h->guard_mu);
    g->phase = GUARD_BODY;
    g->deadline_ms = mono_ms() + HTTPD_REQUEST_TIMEOUT_S * 1000;
    if (g->loopback) {
        snprintf(g->key, sizeof g->key, "%s", ip);
        ok = guard_count(h, g->key, g) < HTTPD_PER_IP_LIMIT;
    }
    pthread_mutex_unlock(&h->guard_mu);
    return ok;
}

static void
guard_phase(struct httpd *h, struct MHD_Connection *c, enum guard_phase phase)
{
    struct guard_conn *g = guard_of(c);

    if (g == NULL)
        return;
    pthread_mutex_lock(&h->guard_mu);
    g->phase = phase;
    if (phase == GUARD_RESPONSE) {
        g->deadline_ms = 0;
    } else {
        /* Waiting for the next request on a kept-alive connection. */
        g->deadline_ms = mono_ms() + (HTTPD_TIMEOUT_S + HTTPD_HEAD_TIMEOUT_S) * 1000;
        if (g->loopback)
            g->key[0] = '\0';
    }
    pthread_mutex_unlock(&h->guard_mu);
}

static void *
guard_reaper(void *arg)
{
    struct httpd *h = arg;

    pthread_mutex_lock(&h->guard_mu);
    while (!h->stopping) {
        struct timespec until;
        int64_t now = mono_ms();

        for (struct guard_conn *g = h->conns; g != NULL; g = g->next) {
            if (g->killed || g->deadline_ms == 0 || now < g->deadline_ms || g->fd < 0)
                continue;
            /* The socket stays open until MHD closes it (after guard_notify unlinks it). */
            shutdown(g->fd, SHUT_RDWR);
            g->killed = 1;
            log_info("http: connection closed: request %s not in within its deadline client=%s",
                     g->phase == GUARD_HEAD ? "head" : "body", g->key[0] ? g->key : "loopback");
        }
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_nsec += 250 * 1000000L;
        if (until.tv_nsec >= 1000000000L) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&h->guard_cv, &h->guard_mu, &until);
    }
    pthread_mutex_unlock(&h->guard_mu);
    return NULL;
}

/* ---- access handler ------------------------------------------------------------------------ */

/* The client: the peer, or X-Real-IP when the peer is a proxy on loopback. */
static void
client_ip(struct MHD_Connection *c, char *out, size_t outlen, int *loopback)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(c, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

    peer_ip(ci != NULL ? ci->client_addr : NULL, out, outlen, loopback);
    if (*loopback) {
        const char *real = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Real-IP");

        if (real != NULL && real[0] != '\0' && strlen(real) < outlen &&
            strspn(real, "0123456789abcdefABCDEF.:") == strlen(real))
            snprintf(out, outlen, "%s", real);
    }
}

static enum MHD_Result
on_request(void *cls, struct MHD_Connection *c, const char *url, const char *method,
           const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    struct httpd *h = cls;
    struct conn_state *cs = *con_cls;
    struct httpd_request req;
    struct httpd_response resp;
    const char *proto;
    int loopback;

    (void)version;
    if (cs == NULL) {
        const char *cl = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Content-Length");
        char ip[64];

        cs = xcalloc(1, sizeof *cs);
        buf_init(&cs->body, HTTPD_BODY_MAX);
        *con_cls = cs;
        if (cl != NULL && strtoull(cl, NULL, 10) > HTTPD_BODY_MAX)
            cs->too_big = 1;
        client_ip(c, ip, sizeof ip, &loopback);
        cs->over_limit = !guard_request(h, c, ip);
        return MHD_YES;
    }
    if (*upload_size > 0) {
        if (!cs->too_big && buf_add(&cs->body, upload, *upload_size) != ERR_OK)
            cs->too_big = 1;
        *upload_size = 0;
        return MHD_YES;
    }
    guard_phase(h, c, GUARD_RESPONSE);
    if (cs->over_limit)
        return send_plain(h, c, 429,
                          "{\"errors\":[{\"code\":\"too_many_connections\",\"title\":\"Too many "
                          "connections\",\"detail\":\"This client address has too many open "
                          "connections.\"}]}");
    if (cs->too_big)
        return send_plain(h, c, 413,
                          "{\"errors\":[{\"code\":\"payload_too_large\",\"title\":\"Request body "
                          "too large\",\"detail\":\"The body is larger than 64 KiB.\"}]}");

    memset(&req, 0, sizeof req);
    memset(&resp, 0, sizeof resp);
    req.method = method;
    req.path = url;
    req.body = buf_cstr(&cs->body);
    req.body_len = cs->body.len;
    req.conn = c;
    client_ip(c, req.ip, sizeof req.ip, &loopback);
    /* Only a proxy on this host may say the client used TLS. */
    proto = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "X-Forwarded-Proto");
    req.https = loopback && proto != NULL && strcmp(proto, "https") == 0;
    req.st = thread_store(h);
    buf_init(&resp.body, HTTPD_RESP_MAX);
    resp.status = 200;
    h->o.handler(h->o.app, &req, &resp);
    httpd_response_check(&resp, method, url);
    return send_response(h, c, &resp);
}

static void
on_completed(void *cls, struct MHD_Connection *c, void **con_cls,
             enum MHD_RequestTerminationCode toe)
{
    struct conn_state *cs = *con_cls;

    (void)toe;
    guard_phase(cls, c, GUARD_HEAD);
    if (cs == NULL)
        return;
    buf_free(&cs->body);
    free(cs);
    *con_cls = NULL;
}

/* libmicrohttpd's printf-style log callback: its format comes from the library. */
static void __attribute__((format(printf, 2, 0))) mhd_log(void *cls, const char *fmt, va_list ap)
{
    char msg[512];

    (void)cls;
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_warn("http: %s", msg);
}

/* ---- start / stop -------------------------------------------------------------------------- */

static int
parse_listen(const char *listen, struct sockaddr_storage *ss, socklen_t *len, struct errbuf *eb)
{
    char host[256];
    const char *colon = strrchr(listen, ':');
    char *end;
    long port;

    memset(ss, 0, sizeof *ss);
    if (colon == NULL || (size_t)(colon - listen) >= sizeof host)
        return err_set(eb, ERR_INVAL, "listen address '%s' is not HOST:PORT", listen);
    memcpy(host, listen, (size_t)(colon - listen));
    host[colon - listen] = '\0';
    errno = 0;
    port = strtol(colon + 1, &end, 10);
    if (errno != 0 || end == colon + 1 || *end != '\0' || port < 0 || port > 65535)
        return err_set(eb, ERR_INVAL, "listen address '%s': bad port", listen);
    if (host[0] == '[' && host[strlen(host) - 1] == ']') {
        struct sockaddr_in6 *a = (struct sockaddr_in6 *)ss;

        host[strlen(host) - 1] = '\0';
        a->sin6_family = AF_INET6;
        a->sin6_port = htons((uint16_t)port);
        if (inet_pton(AF_INET6, host + 1, &a->sin6_addr) != 1)
            return err_set(eb, ERR_INVAL, "listen address '%s': bad IPv6 address", listen);
        *len = sizeof *a;
        return ERR_OK;
    }
    {
        struct sockaddr_in *a = (struct sockaddr_in *)ss;

        a->sin_family = AF_INET;
        a->sin_port = htons((uint16_t)port);
        if (strcmp(host, "localhost") == 0)
            snprintf(host, sizeof host, "127.0.0.1");
        if (inet_pton(AF_INET, host, &a->sin_addr) != 1)
            return err_set(eb, ERR_INVAL,
                           "listen address '%s': use an IPv4 address like 127.0.0.1 or [::1]",
                           listen);
        *len = sizeof *a;
    }
    return ERR_OK;
}

int
httpd_start(struct httpd **out, const struct httpd_opts *o, struct errbuf *eb)
{
    struct httpd *h = NULL;
    struct sockaddr_storage ss;
    socklen_t sslen = 0;
    const union MHD_DaemonInfo *di;
    unsigned flags;
    int rc;

    *out = NULL;
    rc = parse_listen(o->listen, &ss, &sslen, eb);
    if (rc != ERR_OK)
        return rc;
    h = xcalloc(1, sizeof *h);
    h->o = *o;
    h->db_url = xstrdup(o->db_url);
    flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG;
    if (ss.ss_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    pthread_mutex_init(&h->guard_mu, NULL);
    pthread_cond_init(&h->guard_cv, NULL);
    h->guard_mu_ready = 1;
    /* Per-address limits are the guard's (behind a proxy the client is only known per request). */
    h->d = MHD_start_daemon(
        flags, 0, guard_accept, h, on_request, h, MHD_OPTION_EXTERNAL_LOGGER, mhd_log, h,
        MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss, MHD_OPTION_THREAD_POOL_SIZE,
        (unsigned)HTTPD_THREADS, MHD_OPTION_CONNECTION_LIMIT, (unsigned)HTTPD_CONN_LIMIT,
        MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTPD_TIMEOUT_S,
        MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(128 * 1024), MHD_OPTION_STRICT_FOR_CLIENT,
        (int)1, MHD_OPTION_NOTIFY_COMPLETED, on_completed, h, MHD_OPTION_NOTIFY_CONNECTION,
        guard_notify, h, MHD_OPTION_END);
    if (h->d == NULL) {
        rc = err_set(eb, ERR_IO,
                     "cannot listen on %s (in use, or not an address of this host); pick another "
                     "with --listen",
                     o->listen);
        goto out;
    }
    di = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = di != NULL ? di->port : 0;
    if (pthread_create(&h->reaper, NULL, guard_reaper, h) != 0) {
        rc = err_set(eb, ERR_IO, "cannot start the HTTP connection guard");
        goto out;
    }
    h->reaper_started = 1;
    *out = h;
    h = NULL;
out:
    httpd_stop(h);
    return rc;
}

uint16_t
httpd_port(const struct httpd *h)
{
    return h->port;
}

void
httpd_stop(struct httpd *h)
{
    if (h == NULL)
        return;
    if (h->reaper_started) {
        pthread_mutex_lock(&h->guard_mu);
        h->stopping = 1;
        pthread_cond_signal(&h->guard_cv);
        pthread_mutex_unlock(&h->guard_mu);
        pthread_join(h->reaper, NULL);
    }
    if (h->d != NULL)
        MHD_stop_daemon(h->d);
    if (h->guard_mu_ready) {
        pthread_mutex_destroy(&h->guard_mu);
        pthread_cond_destroy(&h->guard_cv);
    }
    free(h->db_url);
    free(h);
}
