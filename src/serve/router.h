/* router.h - the request router of `memsync serve`: owns the route table (route.h) that the
 * REST API and the web UI register, and is the one place where sign-in, CSRF tokens, roles and
 * the UI's same-origin rule are checked, for every route (as redis checks its command table).
 *
 * For each request, in order: the route is found by path and method (GET answers HEAD); a UI
 * write whose Origin (or Referer) names another host is refused; a route with role AUTH_NONE
 * runs now; otherwise the caller is authenticated (API: x-api-key header, then the session
 * cookie; UI: the session cookie only) and refused when unknown; a path no route has is 404, a
 * path with other methods only is 405 with Allow; a session's write without the session's CSRF
 * token (API: X-CSRF-Token header; UI: the form's csrf field) is refused; a caller whose role is
 * below the route's is refused; then the handler runs. A UI caller signed in with a session meets
 * ui_gate (ui.h, the second factor's gate) before its route or refusal. Refusals are rendered by
 * the route's kind (api_refuse: JSON; ui_refuse: HTML). A path that matches no route is API when
 * it starts with /api/ or is /healthz, /metrics or /openapi.json, else UI.
 *
 * Ownership: the router keeps a copy of the table (the routes' strings are borrowed, static);
 * app is borrowed. Threads: built before the server starts, then read-only; router_handle runs
 * on HTTP pool threads concurrently. Limits: ROUTER_MAX_ROUTES routes, ROUTER_MAX_SEGS path
 * segments of at most ROUTER_SEG_MAX bytes (longer paths are 404).
 * Errors: router_add returns ERR_INVAL for a malformed route (bad pattern, a non-GET route not
 * marked writes, a writing route any caller may use outside the UI's sign-in and its /login/
 * steps) and ERR_TOOBIG past ROUTER_MAX_ROUTES.
 */
#ifndef MEMSYNC_ROUTER_H
#define MEMSYNC_ROUTER_H

#include <stddef.h>

#include "err.h"
#include "httpd.h"
#include "route.h"

#define ROUTER_MAX_ROUTES 128
#define ROUTER_MAX_SEGS   8
#define ROUTER_SEG_MAX    80

struct router;

/* A router with no routes (tests); app is handed to every handler. */
int router_new(struct router **out, void *app, struct errbuf *eb);
/* The router of `memsync serve`: the API's routes and the UI's. */
int router_create(struct router **out, void *app, struct errbuf *eb);
void router_free(struct router *r); /* NULL-safe */
int router_add(struct router *r, const struct route *routes, size_t n, struct errbuf *eb);
/* The table, for walking it (n routes). */
const struct route *router_routes(const struct router *r, size_t *n);

/* A request as the router sees it (borrowed). router_handle reads it from the HTTP request;
 * tests fill it themselves. */
struct router_req {
    const char *method;
    const char *path;
    const char *api_key;     /* x-api-key header */
    const char *session;     /* the session cookie */
    const char *csrf_header; /* X-CSRF-Token header */
    const char *body;        /* the form (UI writes carry csrf=...) */
    const char *origin;      /* Origin header, else Referer */
    const char *host;        /* Host header */
};

/* Resolves a caller: key first, then session; ERR_AUTH when neither is known. */
typedef int router_auth_fn(void *ctx, const char *api_key, const char *session,
                           struct auth_principal *p, struct errbuf *eb);

/* The router's decision on one request. */
struct router_decision {
    const struct route *route; /* the matched route (NULL when none) */
    enum route_kind kind;
    int denied; /* 1: refused, see denial */
    struct route_denial denial;
    struct auth_principal p; /* the caller (zeroed when none was needed or known) */
    int64_t id[ROUTE_MAX_PARAMS];
    char allow[64];   /* for ROUTE_BAD_METHOD */
    struct errbuf eb; /* the authentication error's text */
};

/* Every check above, without running anything. auth resolves callers (ctx is its own). */
void router_decide(const struct router *r, const struct router_req *rq, router_auth_fn *auth,
                   void *ctx, struct router_decision *d);

/* The httpd_handler of `memsync serve` (arg: the struct router). Also counts the answer for
 * /metrics. */
void router_handle(void *arg, struct httpd_request *req, struct httpd_response *resp);

#endif
