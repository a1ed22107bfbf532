/* test_router.c - the router of `memsync serve`: patterns and their parameters, 404 and 405
 * with Allow, sign-in, the UI's same-origin rule, CSRF and roles checked in one place in their
 * order, a malformed table refused; and a walk of the real table: every writing route needs a
 * caller with a role and, from a session, the session's CSRF token. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "api.h"
#include "auth.h"
#include "buf.h"
#include "httpd.h"
#include "router.h"

#define TOKEN "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
#define WRONG "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"

static void
h_list(const struct route_call *c)
{
    (void)c;
}
static void
h_create(const struct route_call *c)
{
    (void)c;
}
static void
h_one(const struct route_call *c)
{
    (void)c;
}
static void
h_part(const struct route_call *c)
{
    (void)c;
}
static void
h_public(const struct route_call *c)
{
    (void)c;
}
static void
h_form(const struct route_call *c)
{
    (void)c;
}

static const struct route table[] = {
    {"GET", "/api/things", h_list, AUTH_READ, 0, ROUTE_API, NULL},
    {"POST", "/api/things", h_create, AUTH_ADMIN, 1, ROUTE_API, "admins only"},
    {"GET", "/api/things/{id}", h_one, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/api/things/{id}/parts/{part}", h_part, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/healthz", h_public, AUTH_NONE, 0, ROUTE_API, NULL},
    {"GET", "/page", h_list, AUTH_READ, 0, ROUTE_UI, NULL},
    {"POST", "/page", h_form, AUTH_READ, 1, ROUTE_UI, NULL},
};

/* Callers: API keys "admin-key" and "read-key"; sessions "s-admin" and "s-viewer", whose CSRF
 * token is TOKEN. */
static int
fake_auth(void *ctx, const char *key, const char *session, struct auth_principal *p,
          struct errbuf *eb)
{
    int *calls = ctx;

    (*calls)++;
    memset(p, 0, sizeof *p);
    p->account_id = 7;
    if (key != NULL && strcmp(key, "admin-key") == 0) {
        p->key_id = 1;
        p->role = AUTH_ADMIN;
    } else if (key != NULL && strcmp(key, "read-key") == 0) {
        p->key_id = 2;
        p->role = AUTH_READ;
    } else if (key == NULL && session != NULL &&
               (strcmp(session, "s-admin") == 0 || strcmp(session, "s-viewer") == 0)) {
        p->user_id = session[2] == 'a' ? 1 : 2;
        p->role = session[2] == 'a' ? AUTH_ADMIN : AUTH_READ;
        snprintf(p->csrf, sizeof p->csrf, "%s", TOKEN);
    } else {
        memset(p, 0, sizeof *p);
        return err_set(eb, ERR_AUTH, "who are you");
    }
    return ERR_OK;
}

static struct router *
test_router(void)
{
    struct router *r = NULL;
    struct errbuf eb = {0};

    assert_int_equal(router_new(&r, NULL, &eb), ERR_OK);
    assert_int_equal(router_add(r, table, sizeof table / sizeof table[0], &eb), ERR_OK);
    return r;
}

static void
decide(const struct router *r, const struct router_req *rq, struct router_decision *d)
{
    int calls = 0;

    router_decide(r, rq, fake_auth, &calls, d);
}

static struct router_req
req(const char *method, const char *path, const char *key, const char *session)
{
    struct router_req rq = {0};

    rq.method = method;
    rq.path = path;
    rq.api_key = key;
    rq.session = session;
    return rq;
}

static void
test_patterns_and_parameters(void **state)
{
    struct router *r = test_router();
    struct router_decision d;
    struct router_req rq;

    (void)state;
    rq = req("GET", "/api/things/42", "read-key", NULL);
    decide(r, &rq, &d);
    assert_false(d.denied);
    assert_ptr_equal(d.route->handler, h_one);
    assert_int_equal(d.id[0], 42);
    rq = req("GET", "/api/things/42/parts/7", "read-key", NULL);
    decide(r, &rq, &d);
    assert_false(d.denied);
    assert_ptr_equal(d.route->handler, h_part);
    assert_int_equal(d.id[0], 42);
    assert_int_equal(d.id[1], 7);
    rq = req("HEAD", "//api/things/", "read-key", NULL); /* HEAD is GET; empty segments skipped */
    decide(r, &rq, &d);
    assert_false(d.denied);
    assert_ptr_equal(d.route->handler, h_list);
    /* A parameter is a positive decimal integer. */
    static const char *const bad[] = {"/api/things/abc",     "/api/things/0",
                                      "/api/things/-1",      "/api/things/+1",
                                      "/api/things/1x",      "/api/things/1234567890123456789",
                                      "/api/things/1/parts", "/api/things/1/2/3"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        rq = req("GET", bad[i], "read-key", NULL);
        decide(r, &rq, &d);
        assert_true(d.denied);
        assert_int_equal(d.denial.why, ROUTE_NOT_FOUND);
        assert_null(d.route);
    }
    router_free(r);
}

static void
test_method_mismatch_is_405_with_allow(void **state)
{
    struct router *r = test_router();
    struct router_decision d;
    struct router_req rq = req("DELETE", "/api/things", "admin-key", NULL);
    struct httpd_response resp;

    (void)state;
    decide(r, &rq, &d);
    assert_true(d.denied);
    assert_int_equal(d.denial.why, ROUTE_BAD_METHOD);
    assert_string_equal(d.denial.allow, "GET, POST");
    /* As the API answers it. */
    memset(&resp, 0, sizeof resp);
    buf_init(&resp.body, 1 << 16);
    api_refuse(NULL, NULL, &resp, &d.p, &d.denial);
    assert_int_equal(resp.status, 405);
    assert_int_equal(resp.nheaders, 1);
    assert_string_equal(resp.headers[0][0], "Allow");
    assert_string_equal(resp.headers[0][1], "GET, POST");
    free(resp.headers[0][0]);
    free(resp.headers[0][1]);
    buf_free(&resp.body);
    /* Without a caller the path's existence is not told: 401 first. */
    rq = req("DELETE", "/api/things", NULL, NULL);
    decide(r, &rq, &d);
    assert_int_equal(d.denial.why, ROUTE_UNAUTHENTICATED);
    router_free(r);
}

static void
test_sign_in(void **state)
{
    struct router *r = test_router();
    struct router_decision d;
    struct router_req rq;
    int calls = 0;

    (void)state;
    rq = req("GET", "/api/things", NULL, NULL);
    decide(r, &rq, &d);
    assert_int_equal(d.denial.why, ROUTE_UNAUTHENTICATED);
    assert_int_equal(d.denial.code, ERR_AUTH);
    rq = req("GET", "/api/nothing", NULL, NULL); /* unknown path: still 401 first */
    decide(r, &rq, &d);
    assert_int_equal(d.denial.why, ROUTE_UNAUTHENTICATED);
    rq = req("GET", "/api/nothing", "read-key", NULL);
    decide(r, &rq, &d);
    assert_int_equal(d.denial.why, ROUTE_NOT_FOUND);
    /* A public route asks nobody. */
    rq = req("GET", "/healthz", NULL, NULL);
    router_decide(r, &rq, fake_auth, &calls, &d);
    assert_false(d.denied);
    assert_int_equal(calls, 0);
    assert_int_equal(d.p.account_id, 0);
    /* The UI takes sessions, not keys. */
    rq = req("GET", "/page", "admin-key", NULL);
    decide(r, &rq, &d);
    assert_int_equal(d.denial.why, ROUTE_UNAUTHENTICATED);
    assert_int_equal(d.kind, ROUTE_UI);
    rq = req("GET", "/page", NULL, "s-viewer");
    decide(r, &rq, &d);
    assert_false(d.denied);
    router_free(r);
}

/* CSRF and roles: checked by the router for every writing route, CSRF first. */
static void
test_csrf_and_roles(void **state)
{
    struct router *r = test_router();
    struct router_decision d;
    struct router_req rq;

    (void)state;
    /* A session's write without its token, or with another, is refused whatever its role. */
    rq = req("POST", "/api/things", NULL, "s-admin");
    decide(r, &rq, &d);
    assert_int_equal(d.denial.why, ROUTE_CSRF);
    rq.csrf_header = WRONG;
    decide(r, &rq, &d);
    assert_int_equal(d.denial.why, ROUTE_CSRF);
    rq = req("POST", "/api/things", NULL, "s-viewer");
    decide(r, &rq, &d);
    assert_int_equal(d.denial.why, ROUTE_CSRF);
    /* With the token, the role decides. */
    rq.csrf_header = TOKEN;
    decide(r, &rq, &d);
    assert_int_equal(d.denial.why, ROUTE_FORBIDDEN);
    assert_string_equal(d.denial.msg, "admins only");
    rq = req("POST", "/api/things", NULL, "s-admin");
    rq.csrf_header = TOKEN;
    decide(r, &rq, &d);
    assert_false(d.denied);
    assert_ptr_equal(d.route->handler, h_create);
    /* An API key needs no CSRF token (browsers never send it on their own), only the role. */
    rq = req("POST", "/api/things", "read-key", NULL);
    decide(r, &rq, &d);
    assert_int_equal(d.denial.why, ROUTE_FORBIDDEN);
    rq = req("POST", "/api/things", "admin-key", NULL);
    decide(r, &rq, &d);
    assert_false(d.denied);
    /* Reads need no token. */
    rq = req("GET", "/api/things", NULL, "s-viewer");
    decide(r, &rq, &d);
    assert_false(d.denied);
    /* The UI reads the token from the form, and refuses writes from another origin first. */
    rq = req("POST", "/page", NULL, "s-viewer");
    rq.csrf_header = TOKEN; /* the header does not count for a form */
    decide(r, &rq, &d);
    assert_int_equal(d.denial.why, ROUTE_CSRF);
    rq.body = "a=1&csrf=" TOKEN;
    decide(r, &rq, &d);
    assert_false(d.denied);
    rq.origin = "https://evil.example";
    rq.host = "memsync.example";
    decide(r, &rq, &d);
    assert_int_equal(d.denial.why, ROUTE_CROSS_SITE);
    rq.origin = "https://memsync.example/page";
    decide(r, &rq, &d);
    assert_false(d.denied);
    router_free(r);
}

static void
test_malformed_tables_refused(void **state)
{
    static const struct route unmarked[] = {{"POST", "/x", h_form, AUTH_ADMIN, 0, ROUTE_API, NULL}};
    static const struct route open_write[] = {
        {"POST", "/x", h_form, AUTH_NONE, 1, ROUTE_API, NULL}};
    /* A UI write without a caller: the sign-in and its steps under /login/ only. */
    static const struct route open_ui_write[] = {
        {"POST", "/loginx", h_form, AUTH_NONE, 1, ROUTE_UI, NULL}};
    static const struct route sign_in_step[] = {
        {"POST", "/login/totp", h_form, AUTH_NONE, 1, ROUTE_UI, NULL}};
    static const struct route no_slash[] = {{"GET", "x", h_form, AUTH_READ, 0, ROUTE_API, NULL}};
    static const struct route params[] = {
        {"GET", "/{a}/{b}/{c}", h_form, AUTH_READ, 0, ROUTE_API, NULL}};
    struct router *r = NULL;
    struct errbuf eb = {0};
    size_t n;

    (void)state;
    assert_int_equal(router_new(&r, NULL, &eb), ERR_OK);
    assert_int_equal(router_add(r, unmarked, 1, &eb), ERR_INVAL);
    assert_int_equal(router_add(r, open_write, 1, &eb), ERR_INVAL);
    assert_int_equal(router_add(r, open_ui_write, 1, &eb), ERR_INVAL);
    assert_int_equal(router_add(r, no_slash, 1, &eb), ERR_INVAL);
    assert_int_equal(router_add(r, params, 1, &eb), ERR_INVAL);
    router_routes(r, &n);
    assert_int_equal(n, 0);
    assert_int_equal(router_add(r, sign_in_step, 1, &eb), ERR_OK);
    router_routes(r, &n);
    assert_int_equal(n, 1);
    router_free(r);
}

/* The path of a route, its parameters filled in. */
static void
concrete(const char *pattern, char *out, size_t max)
{
    size_t o = 0;

    for (const char *p = pattern; *p != '\0' && o + 2 < max; p++) {
        if (*p == '{') {
            out[o++] = '1';
            while (*p != '}' && *p != '\0')
                p++;
        } else {
            out[o++] = *p;
        }
    }
    out[o] = '\0';
}

/* Every writing route of `memsync serve`: refused to a session without the CSRF token, and
 * to a caller below its role; and every route but the public few needs a caller. */
static void
test_table_walk(void **state)
{
    static const char *const public[] = {
        "/healthz",    "/openapi.json",     "/static/app.css", "/static/app.js",    "/login",
        "/login/totp", "/login/totp/enrol", "/auth/sso",       "/auth/sso/callback"};
    struct router *r = NULL;
    struct errbuf eb = {0};
    const struct route *t;
    size_t n, writes = 0;

    (void)state;
    assert_int_equal(router_create(&r, NULL, &eb), ERR_OK);
    t = router_routes(r, &n);
    assert_true(n > 30);
    for (size_t i = 0; i < n; i++) {
        char path[160];
        struct router_decision d;
        struct router_req rq;
        int is_public = 0;

        for (size_t k = 0; k < sizeof public / sizeof public[0]; k++)
            is_public |= strcmp(t[i].pattern, public[k]) == 0;
        if (t[i].role == AUTH_NONE) {
            assert_true(is_public);
            continue;
        }
        concrete(t[i].pattern, path, sizeof path);
        /* No caller: refused. */
        rq = req(t[i].method, path, NULL, NULL);
        rq.host = "h";
        decide(r, &rq, &d);
        assert_true(d.denied);
        assert_int_equal(d.denial.why, ROUTE_UNAUTHENTICATED);
        if (strcmp(t[i].method, "GET") != 0)
            assert_true(t[i].writes);
        if (!t[i].writes)
            continue;
        writes++;
        /* An admin's session without the token: refused, before the handler. */
        rq = req(t[i].method, path, NULL, "s-admin");
        decide(r, &rq, &d);
        assert_true(d.denied);
        assert_int_equal(d.denial.why, ROUTE_CSRF);
        /* With the token, a viewer is refused where the route wants an admin. */
        rq = req(t[i].method, path, NULL, "s-viewer");
        rq.csrf_header = TOKEN;
        rq.body = "csrf=" TOKEN;
        decide(r, &rq, &d);
        if (t[i].role == AUTH_ADMIN) {
            assert_true(d.denied);
            assert_int_equal(d.denial.why, ROUTE_FORBIDDEN);
        } else {
            assert_false(d.denied);
        }
        rq.session = "s-admin";
        decide(r, &rq, &d);
        assert_false(d.denied);
        assert_ptr_equal(d.route, &t[i]);
    }
    assert_true(writes >= 10);
    router_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_patterns_and_parameters),
        cmocka_unit_test(test_method_mismatch_is_405_with_allow),
        cmocka_unit_test(test_sign_in),
        cmocka_unit_test(test_csrf_and_roles),
        cmocka_unit_test(test_malformed_tables_refused),
        cmocka_unit_test(test_table_walk),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
