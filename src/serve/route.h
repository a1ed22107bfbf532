/* route.h - one route of `memsync serve`: the entry of the route table that the REST API
 * (api_routes) and the web UI (ui_routes) hand to the router (router.h), and what a handler is
 * given. Types only.
 *
 * A route says, besides its method, path and handler, who may call it (role), whether it
 * changes state (writes) and whether it is API or UI. The router checks all of that in one
 * place before the handler runs: a handler never checks sign-in, CSRF or roles itself. Every
 * route but those with role AUTH_NONE needs a caller; every writing route needs the session's
 * CSRF token when the caller is a session (an API key is not sent by browsers on its own).
 *
 * Patterns: "/api/v1/integrations/{id}/sync" - fixed segments and {name} parameters, each a
 * positive decimal integer (at most ROUTE_MAX_PARAMS per route). "GET" routes answer HEAD too.
 */
#ifndef MEMSYNC_ROUTE_H
#define MEMSYNC_ROUTE_H

#include <stdint.h>

#include "auth.h"
#include "httpd.h"

#define ROUTE_MAX_PARAMS 2

/* API: an API key or a session; JSON errors (401 with WWW-Authenticate). UI: a session only;
 * HTML errors, a sign-in redirect for a caller without one, and writes only from our origin. */
enum route_kind { ROUTE_API, ROUTE_UI };

/* What a handler gets; all borrowed for the call. */
struct route_call {
    void *app; /* struct api_app (app.h) */
    struct httpd_request *req;
    struct httpd_response *resp;
    const struct auth_principal *p; /* zeroed for a route with role AUTH_NONE */
    int64_t id[ROUTE_MAX_PARAMS];   /* the path's parameters, in order */
};

typedef void route_handler(const struct route_call *c);

struct route {
    const char *method;  /* "GET", "POST", "PATCH", ... */
    const char *pattern; /* see above */
    route_handler *handler;
    enum auth_role role; /* AUTH_NONE: anyone; AUTH_READ: any caller; AUTH_ADMIN */
    int writes;          /* 1: changes state (every method but GET must say so) */
    enum route_kind kind;
    const char *denied; /* the role refusal's text; NULL: the kind's own */
};

/* Why the router refused a request; the kind's refuse function (api_refuse, ui_refuse) renders
 * it. */
enum route_refusal {
    ROUTE_UNAUTHENTICATED, /* code and msg: the authentication error */
    ROUTE_CROSS_SITE,      /* a UI write from another origin */
    ROUTE_CSRF,            /* a session's write without its CSRF token */
    ROUTE_FORBIDDEN,       /* the caller's role is below the route's; msg: route's denied */
    ROUTE_NOT_FOUND,       /* no route has this path */
    ROUTE_BAD_METHOD,      /* routes have this path, not this method; allow lists theirs */
    ROUTE_THROTTLED,       /* the API key is over its rate (ratelimit.h); retry_after_s */
};

struct route_denial {
    enum route_refusal why;
    int code;          /* ERR_* (ROUTE_UNAUTHENTICATED) */
    const char *msg;   /* NULL: the kind's own text */
    const char *allow; /* ROUTE_BAD_METHOD: "GET, POST" */
    int retry_after_s; /* ROUTE_THROTTLED */
};

typedef void route_refuse(void *app, struct httpd_request *req, struct httpd_response *resp,
                          const struct auth_principal *p, const struct route_denial *d);

#endif
