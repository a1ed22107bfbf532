/* router.c - the route table of `memsync serve` and its one set of checks (router.h). */
#include "router.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "api.h"
#include "api_changes.h"
#include "api_webhooks.h"
#include "app.h"
#include "clock.h"
#include "mem.h"
#include "metrics.h"
#include "ratelimit.h"
#include "ui.h"

struct router {
    void *app;
    struct route routes[ROUTER_MAX_ROUTES];
    size_t n;
};

int
router_new(struct router **out, void *app, struct errbuf *eb)
{
    (void)eb;
    *out = xcalloc(1, sizeof **out);
    (*out)->app = app;
    return ERR_OK;
}

void
router_free(struct router *r)
{
    free(r);
}

static int
is_read(const char *method)
{
    return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0;
}

/* Splits a path into its segments (empty ones, from "//" or a trailing "/", are skipped).
 * Returns the count, or -1 when there are too many or one is too long. */
static int
split(const char *path, char segs[ROUTER_MAX_SEGS][ROUTER_SEG_MAX])
{
    int n = 0;
    const char *p = path;

    while (*p == '/')
        p++;
    while (*p != '\0') {
        const char *e = strchr(p, '/');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);

        if (n >= ROUTER_MAX_SEGS || len >= ROUTER_SEG_MAX)
            return -1;
        memcpy(segs[n], p, len);
        segs[n][len] = '\0';
        n++;
        p += len;
        while (*p == '/')
            p++;
    }
    return n;
}

static int
is_param(const char *seg)
{
    size_t n = strlen(seg);

    return n >= 3 && seg[0] == '{' && seg[n - 1] == '}';
}

/* A positive decimal integer of at most 18 digits (no sign, no spaces). */
static int
param_value(const char *s, int64_t *out)
{
    int64_t v = 0;
    size_t n = 0;

    for (; s[n] != '\0'; n++) {
        if (s[n] < '0' || s[n] > '9' || n >= 18)
            return 0;
        v = v * 10 + (s[n] - '0');
    }
    if (n == 0 || v <= 0)
        return 0;
    *out = v;
    return 1;
}

int
router_add(struct router *r, const struct route *routes, size_t n, struct errbuf *eb)
{
    for (size_t i = 0; i < n; i++) {
        const struct route *rt = &routes[i];
        char segs[ROUTER_MAX_SEGS][ROUTER_SEG_MAX];
        int nseg, nparam = 0;

        if (r->n >= ROUTER_MAX_ROUTES)
            return err_set(eb, ERR_TOOBIG, "more than %d routes", ROUTER_MAX_ROUTES);
        if (rt->method == NULL || rt->pattern == NULL || rt->pattern[0] != '/' ||
            rt->handler == NULL || (nseg = split(rt->pattern, segs)) < 0)
            return err_set(eb, ERR_INVAL, "route %zu: malformed", i);
        for (int k = 0; k < nseg; k++)
            nparam += is_param(segs[k]);
        if (nparam > ROUTE_MAX_PARAMS)
            return err_set(eb, ERR_INVAL, "%s: more than %d parameters", rt->pattern,
                           ROUTE_MAX_PARAMS);
        /* The checks key on writes: a changing method must say so. */
        if (!is_read(rt->method) && !rt->writes)
            return err_set(eb, ERR_INVAL, "%s %s changes state but is not marked writes",
                           rt->method, rt->pattern);
        /* Only the UI's sign-in and its steps may write without a caller (no session yet). */
        if (rt->writes && rt->role == AUTH_NONE &&
            (rt->kind != ROUTE_UI ||
             (strcmp(rt->pattern, "/login") != 0 && strncmp(rt->pattern, "/login/", 7) != 0)))
            return err_set(eb, ERR_INVAL, "%s %s writes but needs no caller", rt->method,
                           rt->pattern);
        r->routes[r->n++] = *rt;
    }
    return ERR_OK;
}

int
router_create(struct router **out, void *app, struct errbuf *eb)
{
    const struct route *t;
    size_t n;
    int rc;

    *out = NULL;
    if ((rc = router_new(out, app, eb)) != ERR_OK)
        return rc;
    t = api_routes(&n);
    if ((rc = router_add(*out, t, n, eb)) != ERR_OK)
        goto fail;
    t = ui_routes(&n);
    if ((rc = router_add(*out, t, n, eb)) != ERR_OK)
        goto fail;
    t = api_changes_routes(&n);
    if ((rc = router_add(*out, t, n, eb)) != ERR_OK)
        goto fail;
    t = api_webhooks_routes(&n);
    if ((rc = router_add(*out, t, n, eb)) != ERR_OK)
        goto fail;
    return ERR_OK;
fail:
    router_free(*out);
    *out = NULL;
    return rc;
}

const struct route *
router_routes(const struct router *r, size_t *n)
{
    *n = r->n;
    return r->routes;
}

/* 1 when the path's segments fit the pattern; the parameters go to id. */
static int
path_match(const char *pattern, char segs[ROUTER_MAX_SEGS][ROUTER_SEG_MAX], int nseg,
           int64_t id[ROUTE_MAX_PARAMS])
{
    char pat[ROUTER_MAX_SEGS][ROUTER_SEG_MAX];
    int npat = split(pattern, pat), k = 0;

    if (npat != nseg)
        return 0;
    for (int i = 0; i < nseg; i++) {
        if (is_param(pat[i])) {
            if (!param_value(segs[i], &id[k]))
                return 0;
            k++;
        } else if (strcmp(pat[i], segs[i]) != 0) {
            return 0;
        }
    }
    return 1;
}

static int
method_match(const char *route_method, const char *method)
{
    return strcmp(route_method, method) == 0 ||
           (strcmp(route_method, "GET") == 0 && strcmp(method, "HEAD") == 0);
}

static enum route_kind
kind_of_path(const char *path)
{
    return strncmp(path, "/api/", 5) == 0 || strcmp(path, "/healthz") == 0 ||
                   strcmp(path, "/metrics") == 0 || strcmp(path, "/openapi.json") == 0
               ? ROUTE_API
               : ROUTE_UI;
}

/* 1 unless the browser says the request came from another origin: an Origin header (or,
 * without one, a Referer) whose host is not this request's Host. */
static int
same_origin(const char *origin, const char *host)
{
    const char *p;
    size_t hl;

    if (origin == NULL)
        return 1;
    if (host == NULL || strcmp(origin, "null") == 0)
        return 0;
    p = strstr(origin, "://");
    if (p == NULL)
        return 0;
    p += 3;
    hl = strlen(host);
    return strncasecmp(p, host, hl) == 0 && (p[hl] == '\0' || p[hl] == '/');
}

static void
deny(struct router_decision *d, enum route_refusal why, const char *msg)
{
    d->denied = 1;
    d->denial.why = why;
    d->denial.msg = msg;
}

/* 1 when a session's write carries the session's CSRF token. */
static int
csrf_ok(const struct router_decision *d, const struct router_req *rq)
{
    char *form;
    int ok;

    if (d->kind == ROUTE_API)
        return auth_csrf_ok(&d->p, rq->csrf_header);
    form = ui_form_value(rq->body != NULL ? rq->body : "", "csrf");
    ok = auth_csrf_ok(&d->p, form);
    free(form);
    return ok;
}

void
router_decide(const struct router *r, const struct router_req *rq, router_auth_fn *auth, void *ctx,
              struct router_decision *d)
{
    char segs[ROUTER_MAX_SEGS][ROUTER_SEG_MAX];
    int nseg = split(rq->path, segs), any = 0, rc;
    size_t alen = 0;

    memset(d, 0, sizeof *d);
    d->kind = kind_of_path(rq->path);
    for (size_t i = 0; nseg >= 0 && i < r->n; i++) {
        const struct route *rt = &r->routes[i];
        int64_t id[ROUTE_MAX_PARAMS] = {0};

        if (!path_match(rt->pattern, segs, nseg, id))
            continue;
        d->kind = rt->kind;
        if (method_match(rt->method, rq->method)) {
            d->route = rt;
            memcpy(d->id, id, sizeof d->id);
            break;
        }
        /* Allow: every method of this path, once each. */
        if (strstr(d->allow, rt->method) == NULL && alen < sizeof d->allow) {
            int w = snprintf(d->allow + alen, sizeof d->allow - alen, "%s%s", any ? ", " : "",
                             rt->method);

            alen =
                w < 0 || (size_t)w >= sizeof d->allow - alen ? sizeof d->allow : alen + (size_t)w;
        }
        any = 1;
    }
    if (d->kind == ROUTE_UI && !is_read(rq->method) && !same_origin(rq->origin, rq->host)) {
        /* Forms are only ever posted by our own pages (this also covers sign-in, which has no
         * session to carry a CSRF token yet). */
        deny(d, ROUTE_CROSS_SITE, NULL);
        return;
    }
    if (d->route != NULL && d->route->role == AUTH_NONE)
        return;
    /* The UI takes sessions only: a key is for programs, and pages are for people. */
    if (d->kind == ROUTE_API)
        rc = auth(ctx, rq->api_key, rq->session, &d->p, &d->eb);
    else
        rc = auth(ctx, NULL, rq->session, &d->p, &d->eb);
    if (rc == ERR_OK && d->kind == ROUTE_UI && d->p.user_id == 0)
        rc = err_set(&d->eb, ERR_AUTH, "sign in");
    if (rc != ERR_OK) {
        memset(&d->p, 0, sizeof d->p);
        deny(d, ROUTE_UNAUTHENTICATED, d->eb.msg);
        d->denial.code = rc;
        return;
    }
    if (d->route == NULL) {
        if (any) {
            deny(d, ROUTE_BAD_METHOD, NULL);
            d->denial.allow = d->allow;
        } else {
            deny(d, ROUTE_NOT_FOUND, NULL);
        }
        return;
    }
    /* A browser session must prove the request came from our own pages. */
    if (d->route->writes && d->p.key_id == 0 && !csrf_ok(d, rq)) {
        deny(d, ROUTE_CSRF, NULL);
        return;
    }
    if (d->p.role < d->route->role) {
        deny(d, ROUTE_FORBIDDEN, d->route->denied);
        return;
    }
}

/* Callers of `memsync serve`: from this thread's store connection. */
static int
store_auth(void *ctx, const char *api_key, const char *session, struct auth_principal *p,
           struct errbuf *eb)
{
    struct httpd_request *req = ctx;

    memset(p, 0, sizeof *p);
    if (req->st == NULL)
        return err_set(eb, ERR_DB, "the database is not available");
    if (api_key != NULL)
        return auth_apikey(req->st, api_key, p, eb);
    if (session != NULL)
        return auth_session(req->st, session, p, eb);
    return err_set(eb, ERR_AUTH, "send an x-api-key header or sign in");
}

void
router_handle(void *arg, struct httpd_request *req, struct httpd_response *resp)
{
    const struct router *r = arg;
    struct api_app *app = r->app;
    struct router_req rq = {0};
    struct router_decision d;
    struct ratelimit_state rl = {0};
    int limited = 0;

    rq.method = req->method;
    rq.path = req->path;
    rq.api_key = httpd_header(req, "x-api-key");
    rq.session = httpd_cookie(req, APP_SESSION_COOKIE);
    rq.csrf_header = httpd_header(req, "X-CSRF-Token");
    rq.body = req->body;
    rq.origin = httpd_header(req, "Origin");
    if (rq.origin == NULL)
        rq.origin = httpd_header(req, "Referer");
    rq.host = httpd_header(req, "Host");
    router_decide(r, &rq, store_auth, req, &d);
    /* An API key's requests are paced (ratelimit.h), whatever the answer will be. */
    if (app != NULL && app->limits != NULL && d.kind == ROUTE_API && d.p.key_id != 0) {
        limited = 1;
        if (!ratelimit_take(app->limits, d.p.key_id, clock_mono_ms(), &rl) && !d.denied) {
            d.denied = 1;
            d.denial.why = ROUTE_THROTTLED;
            d.denial.msg = NULL;
            d.denial.retry_after_s = rl.retry_after_s;
        }
    }
    if (d.kind == ROUTE_UI && d.p.user_id != 0 && ui_gate(r->app, req, resp, &d.p, d.route)) {
        /* the second factor's gate answered (ui.h) */
    } else if (d.denied) {
        if (d.kind == ROUTE_API)
            api_refuse(r->app, req, resp, &d.p, &d.denial);
        else
            ui_refuse(r->app, req, resp, &d.p, &d.denial);
    } else {
        struct route_call c = {r->app, req, resp, &d.p, {0}};

        memcpy(c.id, d.id, sizeof c.id);
        d.route->handler(&c);
    }
    if (limited) {
        char v[24];

        snprintf(v, sizeof v, "%d", rl.limit);
        httpd_response_header(resp, "RateLimit-Limit", v);
        snprintf(v, sizeof v, "%d", rl.remaining);
        httpd_response_header(resp, "RateLimit-Remaining", v);
        snprintf(v, sizeof v, "%d", rl.reset_s);
        httpd_response_header(resp, "RateLimit-Reset", v);
    }
    httpd_response_check(resp, req->method, req->path); /* so the metric sees the final status */
    metrics_http_observe(req->method, req->path, resp->status);
}
