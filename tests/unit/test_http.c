/* test_http.c - the libcurl engine against a tiny libmicrohttpd server on 127.0.0.1 port 0. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <arpa/inet.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <cmocka.h>

#include "clock.h"
#include "fixture.h"
#include "graph.h"
#include "http.h"
#include "partner.h"
#include "token.h"

static struct MHD_Daemon *daemon_;
static uint16_t port_;
static const char *bom_body_; /* what /bom serves after the byte-order mark(s) */
static size_t bom_len_;

static enum MHD_Result
queue(struct MHD_Connection *c, unsigned status, const char *body, size_t len,
      const char *retry_after)
{
    struct MHD_Response *r =
        MHD_create_response_from_buffer(len, (void *)(uintptr_t)body, MHD_RESPMEM_MUST_COPY);
    enum MHD_Result rc;

    MHD_add_response_header(r, "Content-Type", "application/json");
    if (retry_after != NULL)
        MHD_add_response_header(r, "Retry-After", retry_after);
    rc = MHD_queue_response(c, status, r);
    MHD_destroy_response(r);
    return rc;
}

#define BLOB_LEN 5000

static const char *
blob_(void)
{
    static char b[BLOB_LEN];

    for (int i = 0; i < BLOB_LEN; i++)
        b[i] = (char)('a' + (i * 7) % 26);
    return b;
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
        const char *version, const char *upload, size_t *upload_len, void **ctx)
{
    static int marker;

    (void)cls;
    (void)version;
    (void)upload;
    if (*ctx == NULL) {
        *ctx = &marker;
        return MHD_YES;
    }
    if (*upload_len != 0) {
        *upload_len = 0; /* bodies are accepted and ignored */
        return MHD_YES;
    }
    if (strcmp(url, "/echo") == 0) {
        const char *i = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "i");
        char body[64];
        int n = snprintf(body, sizeof body, "{\"i\":\"%s\",\"m\":\"%s\"}", i ? i : "", method);

        return queue(c, 200, body, (size_t)n, NULL);
    }
    if (strcmp(url, "/big") == 0) {
        static char big[200000];

        memset(big, 'x', sizeof big);
        return queue(c, 200, big, sizeof big, NULL);
    }
    if (strcmp(url, "/slow") == 0) {
        struct timespec ts = {1, 500000000};

        nanosleep(&ts, NULL);
        return queue(c, 200, "{}", 2, NULL);
    }
    if (strcmp(url, "/bom") == 0 || strcmp(url, "/bom2") == 0) {
        /* A UTF-8 byte-order mark (two for /bom2) before the body, and the ids Microsoft's
         * answers carry. */
        size_t marks = url[4] == '2' ? 2 : 1, n = 3 * marks + bom_len_;
        char *b = malloc(n);
        struct MHD_Response *r;
        enum MHD_Result rc;

        if (b == NULL)
            return MHD_NO;
        memcpy(b, "\xEF\xBB\xBF\xEF\xBB\xBF", 3 * marks);
        memcpy(b + 3 * marks, bom_body_, bom_len_);
        r = MHD_create_response_from_buffer(n, b, MHD_RESPMEM_MUST_FREE);
        MHD_add_response_header(r, "Content-Type", "application/json");
        MHD_add_response_header(r, "request-id", "5b0a1c3e-0000-4000-8000-000000000001");
        MHD_add_response_header(r, "client-request-id", "5b0a1c3e-0000-4000-8000-000000000002");
        MHD_add_response_header(r, "WWW-Authenticate",
                                "Bearer realm=\"urn:intune:service,0000000a\"");
        rc = MHD_queue_response(c, 401, r);
        MHD_destroy_response(r);
        return rc;
    }
    if (strcmp(url, "/throttled") == 0) {
        static const char body[] = "{\"error\":{\"code\":\"TooManyRequests\"}}";

        return queue(c, 429, body, sizeof body - 1, "2.128");
    }
    if (strcmp(url, "/blob") == 0) {
        /* A blob served with byte ranges: ?range=ignore answers 200 whole, ?range=wrong a 206
         * one byte later than asked. */
        const char *range = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
        const char *how = MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, "range");
        long from = range != NULL ? strtol(range + 6, NULL, 10) : 0;
        struct MHD_Response *r;
        enum MHD_Result rc;
        char cr[64];

        if (from == 0 || (how != NULL && strcmp(how, "ignore") == 0))
            return queue(c, 200, blob_(), BLOB_LEN, NULL);
        if (how != NULL && strcmp(how, "wrong") == 0)
            from++;
        r = MHD_create_response_from_buffer(
            BLOB_LEN - (size_t)from, (void *)(uintptr_t)(blob_() + from), MHD_RESPMEM_MUST_COPY);
        snprintf(cr, sizeof cr, "bytes %ld-%d/%d", from, BLOB_LEN - 1, BLOB_LEN);
        MHD_add_response_header(r, "Content-Range", cr);
        rc = MHD_queue_response(c, 206, r);
        MHD_destroy_response(r);
        return rc;
    }
    return queue(c, 404, "{}", 2, NULL);
}

static int
setup(void **state)
{
    struct sockaddr_in sa;
    const union MHD_DaemonInfo *info;

    (void)state;
    signal(SIGPIPE, SIG_IGN);
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    daemon_ =
        MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION, 0, NULL,
                         NULL, handler, NULL, MHD_OPTION_SOCK_ADDR, &sa, MHD_OPTION_END);
    if (daemon_ == NULL)
        return -1;
    info = MHD_get_daemon_info(daemon_, MHD_DAEMON_INFO_BIND_PORT);
    if (info == NULL || info->port == 0)
        return -1;
    port_ = info->port;
    return 0;
}

static int
teardown(void **state)
{
    (void)state;
    MHD_stop_daemon(daemon_);
    return 0;
}

struct result {
    int calls;
    int err;
    long status;
    char body[256];
    char errmsg[512];
    double retry_after;
    char ctype[64];
};

static void
on_done(void *arg, const struct http_resp *r)
{
    struct result *res = arg;

    res->calls++;
    res->err = r->err;
    res->status = r->status;
    res->retry_after = r->retry_after;
    snprintf(res->body, sizeof res->body, "%.*s", (int)r->body_len, r->body);
    snprintf(res->errmsg, sizeof res->errmsg, "%s", r->errmsg);
    snprintf(res->ctype, sizeof res->ctype, "%s", r->content_type ? r->content_type : "");
}

static void
run_all(struct http *h)
{
    int64_t deadline = clock_mono_ms() + 20000;

    while (http_run(h, 200) > 0)
        assert_true(clock_mono_ms() < deadline);
}

static void
test_concurrent(void **state)
{
    enum { N = 12 };
    struct http_opts opts = {.max_host_connections = 4};
    struct result res[N];
    char urls[N][128];
    struct http *h = NULL;
    struct errbuf eb;

    (void)state;
    memset(res, 0, sizeof res);
    assert_int_equal(http_new(&h, &opts, &eb), ERR_OK);
    for (int i = 0; i < N; i++) {
        struct http_req req = {.url = urls[i]};

        snprintf(urls[i], sizeof urls[i], "http://127.0.0.1:%u/echo?i=%d", port_, i);
        if (i % 3 == 0) {
            req.method = "POST";
            req.body = "a=1";
            req.body_len = 3;
            req.headers[0] = "Content-Type: application/x-www-form-urlencoded";
        }
        assert_int_equal(http_submit(h, &req, on_done, &res[i], &eb), ERR_OK);
    }
    memset(urls, 0, sizeof urls); /* the request was copied */
    assert_int_equal(http_pending(h), N);
    run_all(h);
    for (int i = 0; i < N; i++) {
        char want[64];

        snprintf(want, sizeof want, "{\"i\":\"%d\",\"m\":\"%s\"}", i, i % 3 == 0 ? "POST" : "GET");
        assert_int_equal(res[i].calls, 1);
        assert_int_equal(res[i].err, ERR_OK);
        assert_int_equal(res[i].status, 200);
        assert_string_equal(res[i].body, want);
        assert_string_equal(res[i].ctype, "application/json");
        assert_true(res[i].retry_after < 0);
    }
    http_free(h);
}

static void
test_body_cap(void **state)
{
    struct result res = {0};
    struct http *h = NULL;
    char url[128];
    struct http_req req = {.url = url, .max_body = 1000};

    (void)state;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/big", port_);
    assert_int_equal(http_new(&h, NULL, NULL), ERR_OK);
    assert_int_equal(http_submit(h, &req, on_done, &res, NULL), ERR_OK);
    run_all(h);
    assert_int_equal(res.calls, 1);
    assert_int_equal(res.err, ERR_TOOBIG);
    assert_non_null(strstr(res.errmsg, "127.0.0.1"));
    assert_non_null(strstr(res.errmsg, "1000 bytes"));
    http_free(h);
}

static void
test_timeout(void **state)
{
    struct result res = {0};
    struct http *h = NULL;
    char url[128];
    struct http_req req = {.url = url, .timeout_ms = 300};
    int64_t t0 = clock_mono_ms();

    (void)state;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/slow?secret=hunter2", port_);
    assert_int_equal(http_new(&h, NULL, NULL), ERR_OK);
    assert_int_equal(http_submit(h, &req, on_done, &res, NULL), ERR_OK);
    run_all(h);
    assert_int_equal(res.calls, 1);
    assert_int_equal(res.err, ERR_TIMEOUT);
    assert_true(clock_mono_ms() - t0 < 1400);
    assert_non_null(strstr(res.errmsg, "timed out"));
    assert_null(strstr(res.errmsg, "hunter2"));
    http_free(h);
}

static void
test_retry_after(void **state)
{
    long status = 0;
    char *body = NULL;
    size_t len = 0;
    double ra = 0;
    char url[128];
    struct http_req req = {.url = url};
    struct errbuf eb;

    (void)state;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/throttled", port_);
    assert_int_equal(http_fetch(NULL, &req, &status, &body, &len, &ra, &eb), ERR_OK);
    assert_int_equal(status, 429);
    assert_true(ra > 2.1279 && ra < 2.1281);
    assert_non_null(strstr(body, "TooManyRequests"));
    assert_int_equal(len, strlen(body));
    free(body);

    assert_true(http_parse_retry_after("2.128") > 2.1279 &&
                http_parse_retry_after("2.128") < 2.1281);
    assert_true(http_parse_retry_after(" 57 ") == 57.0);
    assert_true(http_parse_retry_after("0") == 0.0);
    assert_true(http_parse_retry_after("0.5") == 0.5);
    assert_true(http_parse_retry_after("") < 0);
    assert_true(http_parse_retry_after("-1") < 0);
    assert_true(http_parse_retry_after("2.1.2") < 0);
    assert_true(http_parse_retry_after("1e3") < 0);
    assert_true(http_parse_retry_after("soon") < 0);
    assert_true(http_parse_retry_after(NULL) < 0);
    /* an HTTP date in the past means "now" */
    assert_true(http_parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0.0);
    {
        char future[64];
        time_t t = time(NULL) + 120;
        struct tm tm;
        double v;

        gmtime_r(&t, &tm);
        strftime(future, sizeof future, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        v = http_parse_retry_after(future);
        assert_true(v > 100 && v <= 121);
    }
}

static void
test_refused(void **state)
{
    struct sockaddr_in sa;
    socklen_t sl = sizeof sa;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    char url[128];
    struct http_req req = {.url = url};
    struct errbuf eb;
    long status = 0;
    char *body = NULL;

    (void)state;
    /* find a free loopback port, then close it so nobody listens there */
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &sl), 0);
    close(fd);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/x?token=abc", ntohs(sa.sin_port));
    assert_int_equal(http_fetch(NULL, &req, &status, &body, NULL, NULL, &eb), ERR_HTTP);
    assert_null(body);
    assert_non_null(strstr(eb.msg, "cannot connect to 127.0.0.1:"));
    assert_non_null(strstr(eb.msg, "Connection refused"));
    assert_non_null(strstr(eb.msg, "check the URL setting"));
    assert_null(strstr(eb.msg, "token=abc"));
}

static void
test_plain_http_refused(void **state)
{
    static const char *const refused[] = {
        "http://example.com/v1.0/x", "http://10.0.0.1/", "http://128.0.0.1/",
        "ftp://127.0.0.1/",          "http://[::2]/",    "not a url"};
    static const char *const allowed[] = {"http://127.0.0.1:1/", "http://127.1.2.3:1/",
                                          "http://localhost:1/", "http://[::1]:1/",
                                          "https://example.invalid/"};
    struct http *h = NULL;
    struct errbuf eb;
    int calls = 0;

    (void)state;
    assert_int_equal(http_new(&h, NULL, NULL), ERR_OK);
    for (size_t i = 0; i < sizeof refused / sizeof refused[0]; i++) {
        struct http_req req = {.url = refused[i]};

        err_clear(&eb);
        if (http_submit(h, &req, (http_done_cb *)(void (*)(void))abort, NULL, &eb) == ERR_OK)
            fail_msg("%s was accepted", refused[i]);
        assert_true(eb.msg[0] != '\0');
    }
    {
        struct http_req req = {.url = refused[0]};

        http_submit(h, &req, (http_done_cb *)(void (*)(void))abort, NULL, &eb);
        assert_non_null(strstr(eb.msg, "example.com"));
        assert_non_null(strstr(eb.msg, "https://"));
    }
    assert_int_equal(http_pending(h), 0);
    /* loopback plain http and any https are accepted (they fail later, at connect) */
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        struct http_req req = {.url = allowed[i], .timeout_ms = 3000};
        struct result *r = calloc(1, sizeof *r);

        assert_int_equal(http_submit(h, &req, on_done, r, &eb), ERR_OK);
        run_all(h);
        assert_int_equal(r->calls, 1);
        /* Not refused by policy; whether a connection succeeds depends on the machine. */
        assert_int_not_equal(r->err, ERR_INVAL);
        calls++;
        free(r);
    }
    assert_int_equal(calls, 5);
    {
        struct http_req req = {.url = "http://127.0.0.1:1/", .headers = {"X: a\r\nEvil: b"}};

        assert_int_equal(http_submit(h, &req, on_done, NULL, &eb), ERR_INVAL);
    }
    http_free(h);
}

static int order[8];
static int norder;

static void
on_timer(void *arg)
{
    order[norder++] = (int)(intptr_t)arg;
}

static void
test_timers(void **state)
{
    struct http *h = NULL;
    int64_t t0;

    (void)state;
    norder = 0;
    assert_int_equal(http_new(&h, NULL, NULL), ERR_OK);
    t0 = clock_mono_ms();
    http_timer(h, 60, on_timer, (void *)(intptr_t)3);
    http_timer(h, 20, on_timer, (void *)(intptr_t)1);
    http_timer(h, 40, on_timer, (void *)(intptr_t)2);
    http_timer(h, 0, on_timer, (void *)(intptr_t)0);
    http_timer(h, 40, on_timer, (void *)(intptr_t)4); /* same due time: submission order */
    assert_int_equal(http_pending(h), 5);
    while (http_run(h, 1000) > 0)
        ;
    assert_int_equal(norder, 5);
    assert_int_equal(order[0], 0);
    assert_int_equal(order[1], 1);
    assert_int_equal(order[2], 2);
    assert_int_equal(order[3], 4);
    assert_int_equal(order[4], 3);
    /* the loop slept until the timers were due instead of spinning past them */
    assert_true(clock_mono_ms() - t0 >= 60);
    assert_true(clock_mono_ms() - t0 < 1000);
    /* pending timers are dropped without firing */
    http_timer(h, 100000, on_timer, (void *)(intptr_t)9);
    http_free(h);
    assert_int_equal(norder, 5);
}

static void
test_free_cancels(void **state)
{
    struct http *h = NULL;
    char url[128];
    struct http_req req = {.url = url};
    struct result res = {0};

    (void)state;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/echo?i=1", port_);
    assert_int_equal(http_new(&h, NULL, NULL), ERR_OK);
    assert_int_equal(http_submit(h, &req, on_done, &res, NULL), ERR_OK);
    http_wakeup(h);
    http_free(h);
    assert_int_equal(res.calls, 0);
    http_free(NULL);
}
/* A body streamed to a file: whole, resumed with Range (206 appends), restarted when the server
 * ignores the range (200 empties the file first), refused when the part does not continue it. */
static void
test_body_to_file(void **state)
{
    static const struct {
        const char *query;
        size_t have;  /* bytes already in the file */
        int garbage;  /* those bytes are wrong (a 200 must replace them) */
        int want_err; /* ERR_OK: the file ends up as the blob */
        long want_status;
    } cases[] = {
        {"", 0, 0, ERR_OK, 200},
        {"", 2000, 0, ERR_OK, 206},
        {"?range=ignore", 2000, 1, ERR_OK, 200},
        {"?range=wrong", 2000, 0, ERR_HTTP, 206},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct result res = {0};
        struct http *h = NULL;
        char url[128], path[] = "/tmp/memsync-test-http-XXXXXX", hdr[64];
        char got[BLOB_LEN + 16];
        struct http_req req = {.url = url, .to_file = 1, .max_body = 1 << 20};
        int fd = mkstemp(path);
        ssize_t n;

        assert_true(fd >= 0);
        unlink(path);
        if (cases[i].have > 0) {
            char pre[BLOB_LEN];

            memcpy(pre, blob_(), cases[i].have);
            if (cases[i].garbage)
                memset(pre, '#', cases[i].have);
            assert_int_equal(write(fd, pre, cases[i].have), (ssize_t)cases[i].have);
            snprintf(hdr, sizeof hdr, "Range: bytes=%zu-", cases[i].have);
            req.headers[0] = hdr;
        }
        req.sink_fd = fd;
        snprintf(url, sizeof url, "http://127.0.0.1:%u/blob%s", port_, cases[i].query);
        assert_int_equal(http_new(&h, NULL, NULL), ERR_OK);
        assert_int_equal(http_submit(h, &req, on_done, &res, NULL), ERR_OK);
        run_all(h);
        assert_int_equal(res.calls, 1);
        assert_int_equal(res.err, cases[i].want_err);
        assert_int_equal(res.status, cases[i].want_status);
        n = pread(fd, got, sizeof got, 0);
        if (cases[i].want_err == ERR_OK) {
            assert_int_equal(n, BLOB_LEN);
            assert_memory_equal(got, blob_(), BLOB_LEN);
        } else {
            assert_int_equal(n, (ssize_t)cases[i].have); /* untouched */
            assert_non_null(strstr(res.errmsg, "wrong part"));
        }
        http_free(h);
        close(fd);
    }
}

struct ids {
    int calls;
    char body[64];
    size_t len;
    char request_id[64], client_request_id[64], date[64], www[128];
};

static void
on_ids(void *arg, const struct http_resp *r)
{
    struct ids *res = arg;

    res->calls++;
    res->len = r->body_len;
    snprintf(res->body, sizeof res->body, "%.*s", (int)r->body_len, r->body);
    snprintf(res->request_id, sizeof res->request_id, "%s", r->request_id);
    snprintf(res->client_request_id, sizeof res->client_request_id, "%s", r->client_request_id);
    snprintf(res->date, sizeof res->date, "%s", r->date);
    snprintf(res->www, sizeof res->www, "%s", r->www_authenticate);
}

/* One leading BOM is dropped where every response completes; Microsoft's ids reach the
 * callback. */
static void
test_bom_and_ids(void **state)
{
    struct http *h = NULL;
    struct ids res = {0};
    char url[128];
    struct http_req req = {.url = url};
    const char *b;
    size_t n;

    (void)state;
    bom_body_ = "{\"a\":1}";
    bom_len_ = strlen(bom_body_);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/bom", port_);
    assert_int_equal(http_new(&h, NULL, NULL), ERR_OK);
    assert_int_equal(http_submit(h, &req, on_ids, &res, NULL), ERR_OK);
    run_all(h);
    assert_int_equal(res.calls, 1);
    assert_string_equal(res.body, "{\"a\":1}");
    assert_int_equal(res.len, 7);
    assert_string_equal(res.request_id, "5b0a1c3e-0000-4000-8000-000000000001");
    assert_string_equal(res.client_request_id, "5b0a1c3e-0000-4000-8000-000000000002");
    assert_non_null(strstr(res.date, " GMT"));
    assert_string_equal(res.www, "Bearer realm=\"urn:intune:service,0000000a\"");
    /* one mark only: after two the body is not JSON, so it is left as it came (and the
     * parser refuses it) */
    memset(&res, 0, sizeof res);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/bom2", port_);
    assert_int_equal(http_submit(h, &req, on_ids, &res, NULL), ERR_OK);
    run_all(h);
    assert_int_equal(res.len, 13);
    assert_memory_equal(res.body, "\xEF\xBB\xBF\xEF\xBB\xBF{", 7);
    /* no header: "" */
    memset(&res, 0, sizeof res);
    snprintf(url, sizeof url, "http://127.0.0.1:%u/echo?i=2", port_);
    assert_int_equal(http_submit(h, &req, on_ids, &res, NULL), ERR_OK);
    run_all(h);
    assert_string_equal(res.request_id, "");
    assert_string_equal(res.www, "");
    http_free(h);

    /* the helper itself: JSON after the mark (whitespace allowed), nothing else */
    b = "\xEF\xBB\xBF [1]";
    n = strlen(b);
    http_body_skip_bom(&b, &n);
    assert_string_equal(b, " [1]");
    assert_int_equal(n, 4);
    b = "\xEF\xBB\xBFPK\x03\x04";
    n = strlen(b);
    http_body_skip_bom(&b, &n);
    assert_int_equal(n, 7); /* not JSON (a zip, say): left as it came */
    b = "\xEF\xBB\xBF";
    n = 3;
    http_body_skip_bom(&b, &n);
    assert_int_equal(n, 3);
    b = "{}";
    n = 2;
    http_body_skip_bom(&b, &n);
    assert_string_equal(b, "{}");
}

/* Every parser path reads a BOM'd answer as it reads the plain one: the token endpoint, Partner
 * Center's customer list, a Graph device page (yajl stream), a $batch answer (yajl stream) and
 * the Graph error envelope. */
static void
test_bom_each_parser(void **state)
{
    static const char *const names[] = {
        "aad-v2-token-client-credentials.success.response.json",
        "pc-v1-customers-list.response.json",
        "graph-v1.0-managedDevices-list.response.json",
        "graph-v1.0-batch.response.json",
        "graph-error-example.response.json",
    };
    char url[128];
    struct http_req req = {.url = url};

    (void)state;
    snprintf(url, sizeof url, "http://127.0.0.1:%u/bom", port_);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        size_t flen, len = 0;
        char *fx = fixture(names[i], &flen), *body = NULL;
        long status = 0;
        struct errbuf eb = {0};

        bom_body_ = fx;
        bom_len_ = flen;
        assert_int_equal(http_fetch(NULL, &req, &status, &body, &len, NULL, &eb), ERR_OK);
        assert_int_equal(len, flen);
        switch (i) {
        case 0: {
            struct token_result tr;

            assert_int_equal(token_parse(body, len, 200, &tr, &eb), ERR_OK);
            token_result_clear(&tr);
            break;
        }
        case 1: {
            struct customer_page p = {0};

            assert_int_equal(partner_customers_parse(body, len, &p, &eb), ERR_OK);
            assert_true(p.count > 0);
            customer_page_clear(&p);
            break;
        }
        case 2: {
            struct device *devs = NULL;
            size_t nd = 0, cap = 0;
            char *next = NULL;

            assert_int_equal(graph_devices_parse(body, len, &devs, &nd, &cap, &next, &eb), ERR_OK);
            assert_true(nd > 0);
            for (size_t k = 0; k < nd; k++)
                device_clear(&devs[k]);
            free(devs);
            free(next);
            break;
        }
        case 3: {
            struct graph_batch gb = {0};

            assert_int_equal(graph_batch_parse(body, len, GRAPH_BATCH_APPS, &gb, &eb), ERR_OK);
            assert_true(gb.n > 0);
            graph_batch_clear(&gb);
            break;
        }
        default: {
            struct graph_error ge;

            assert_int_equal(graph_error_parse(body, len, &ge), ERR_OK);
            assert_true(ge.code[0] != '\0');
            break;
        }
        }
        free(body);
        free(fx);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent),   cmocka_unit_test(test_body_cap),
        cmocka_unit_test(test_timeout),      cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_refused),      cmocka_unit_test(test_plain_http_refused),
        cmocka_unit_test(test_timers),       cmocka_unit_test(test_free_cancels),
        cmocka_unit_test(test_bom_and_ids),  cmocka_unit_test(test_bom_each_parser),
        cmocka_unit_test(test_body_to_file),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
