/* app.h - the state that `memsync serve` hands to every route: the router (router.h), the REST
 * API (api.h) and the web UI (ui.h) all take it, so it sits below them.
 *
 * Ownership: `memsync serve` (src/cli) fills it before the server starts and frees its members
 * after the server stopped. Threads: read-only while requests run (HTTP pool threads), except
 * through the scheduler's and the caches' own locking.
 */
#ifndef MEMSYNC_APP_H
#define MEMSYNC_APP_H

#include <stdint.h>

#include "config.h"
#include "vault.h"

/* The UI's session cookie; the API accepts it too (with the CSRF token on writes). */
#define APP_SESSION_COOKIE "memsync_session"

struct scheduler;
struct pagecache;
struct rowcache;
struct httpd;
struct ratelimit;

struct api_app {
    const struct config *cfg;
    struct vault *vault; /* shared read-only */
    struct scheduler *sched;
    struct httpd *httpd; /* for request counters */
    int64_t started_at;
    int validate_sample;      /* customer tenants tried when saving; 0 = default */
    struct pagecache *pages;  /* rendered hardware list answers; NULL = off (api_cache_mb 0) */
    struct rowcache *rows;    /* rendered hardware row bodies; NULL = off (api_row_cache_mb 0) */
    struct ratelimit *limits; /* requests per API key; NULL = no limit (api_rate_per_minute 0) */
};

#endif
