/* test_api_reply.c - the API's one error table: each store error's status, code and headers, and
 * a refused sync's full queue. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_reply.h"
#include "buf.h"
#include "log.h"

static void
resp_init(struct httpd_response *r)
{
    memset(r, 0, sizeof *r);
    buf_init(&r->body, 256);
}

static void
resp_free(struct httpd_response *r)
{
    for (int i = 0; i < r->nheaders; i++) {
        free(r->headers[i][0]);
        free(r->headers[i][1]);
    }
    buf_free(&r->body);
}

static const char *
header(const struct httpd_response *r, const char *name)
{
    for (int i = 0; i < r->nheaders; i++)
        if (strcmp(r->headers[i][0], name) == 0)
            return r->headers[i][1];
    return NULL;
}

/* The answer to code (sync: as a sync route answers): status, the envelope's code, Retry-After. */
static void
check(int code, int sync, int status, const char *ecode, const char *retry)
{
    struct httpd_response r;
    struct errbuf eb = {0};
    char want[64];

    resp_init(&r);
    err_set(&eb, code, "the detail");
    if (sync)
        api_reply_sync_err(&r, code, &eb);
    else
        api_reply_err(&r, code, &eb);
    assert_int_equal(r.status, status);
    snprintf(want, sizeof want, "\"code\":\"%s\"", ecode);
    assert_non_null(strstr(buf_cstr(&r.body), want));
    if (retry != NULL)
        assert_string_equal(header(&r, "Retry-After") != NULL ? header(&r, "Retry-After") : "",
                            retry);
    else
        assert_null(header(&r, "Retry-After"));
    resp_free(&r);
}

static void
test_table(void **state)
{
    (void)state;
    check(ERR_NOTFOUND, 0, 404, "not_found", NULL);
    check(ERR_INVAL, 0, 400, "invalid_request", NULL);
    check(ERR_EXISTS, 0, 409, "conflict", NULL);
    /* a value over its limit, never the rate limit's 429 */
    check(ERR_TOOBIG, 0, 413, "payload_too_large", NULL);
    check(ERR_THROTTLED, 0, 429, "too_many_requests", NULL);
    check(ERR_UNSUPPORTED, 0, 501, "not_implemented", NULL);
    check(ERR_TIMEOUT, 0, 503, "busy", "5");
    check(ERR_DB, 0, 500, "internal", NULL);
}

static void
test_sync_queue_full(void **state)
{
    (void)state;
    check(ERR_TOOBIG, 1, 503, "busy", "30");
    check(ERR_EXISTS, 1, 409, "conflict", NULL);
    check(ERR_UNSUPPORTED, 1, 501, "not_implemented", NULL);
}

/* The detail of a 500 is not the store's message (it may name a file). */
static void
test_internal_hides_detail(void **state)
{
    struct httpd_response r;
    struct errbuf eb = {0};

    (void)state;
    resp_init(&r);
    err_set(&eb, ERR_DB, "/var/lib/memsync/memsync.db: disk I/O error");
    api_reply_err(&r, ERR_DB, &eb);
    assert_null(strstr(buf_cstr(&r.body), "memsync.db"));
    resp_free(&r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_sync_queue_full),
        cmocka_unit_test(test_internal_hides_detail),
    };

    log_configure(LOG_ERROR, 0);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
