/* api.h - the REST API under /api/v1 (docs/API.md), /healthz, /metrics, /openapi.json, and
 * the request router of `memsync serve` (everything else goes to the web UI, ui.h).
 *
 * Auth: an `x-api-key` header or the UI's session cookie on every route but /healthz (and the
 * UI's sign-in page). A session caller must send the session's CSRF token in X-CSRF-Token on
 * every state-changing request. Roles: admin (or an API key with scope admin) may change
 * integrations; viewer / read keys only read. Every query is limited to the caller's account.
 * Lists: page_size 1..200 (default 50), opaque cursor, filter[field]=op:value, sort=+f,-f,
 * search=; at most API_MAX_QUERY_PARAMS parameters, and page_size, cursor, search and sort at most
 * once each (else 400); response {"data": [...], "total_count": N, "next_cursor": ...|null}.
 * Errors:
 * {"errors": [{"code", "title", "detail"}]} with the matching HTTP status. Secrets never appear in
 * a response: an integration shows only each key's hint and expiry.
 *
 * Threads: api_handle runs on HTTP pool threads; struct api_app is read-only after start
 * except through the scheduler's own locking.
 */
#ifndef MEMSYNC_API_H
#define MEMSYNC_API_H

#include <jansson.h>
#include <stdint.h>

#include "auth.h"
#include "buf.h"
#include "config.h"
#include "httpd.h"
#include "store.h"
#include "validate.h"
#include "vault.h"

#define API_PAGE_DEFAULT     50
#define API_PAGE_MAX         200
#define API_MAX_QUERY_PARAMS 64 /* a list request with more answers 400 */
#define API_SESSION_COOKIE   "memsync_session"

struct scheduler;
struct pagecache;
struct rowcache;

struct api_app {
    const struct config *cfg;
    struct vault *vault; /* shared read-only */
    struct scheduler *sched;
    struct httpd *httpd; /* for request counters */
    int64_t started_at;
    int validate_sample;     /* customer tenants tried when saving; 0 = default */
    struct pagecache *pages; /* rendered hardware list answers; NULL = off (api_cache_mb 0) */
    struct rowcache *rows;   /* rendered hardware row bodies; NULL = off (api_row_cache_mb 0) */
};

/* The router (an httpd_handler). */
void api_handle(void *app, struct httpd_request *req, struct httpd_response *resp);

/* Who the request is from (API key first, then session cookie). ERR_AUTH when neither. */
int api_authenticate(struct httpd_request *req, struct auth_principal *p, struct errbuf *eb);

/* JSON view of an integration (no secrets; hints, expiry, days left, sync state). */
json_t *api_integration_json(struct api_app *app, const struct integration *in);
/* Nested JSON object from a store row ("a.b" names become nested objects). */
json_t *api_cells_json(const struct store_cell *cells, size_t n);

/* Parses and validates a list's query parameters exactly as a list request does (entity: a
 * store list entity such as "hardware"); kv holds npairs (key, value) pairs as kv[2i], kv[2i+1]
 * (a NULL value reads as ""). Returns ERR_OK or ERR_INVAL with the 400 answer's detail in eb;
 * keeps nothing. For the fuzzer (fuzz/list_params_fuzzer.c); requests use the same parser. */
int api_list_params_check(const char *entity, const char *const *kv, size_t npairs,
                          struct errbuf *eb);

/* `memsync serve [--listen HOST:PORT] [--url-file FILE] [--no-schedule]`: starts the scheduler
 * and the HTTP server and runs until SIGINT/SIGTERM. cx is the command line's context (cli.c),
 * whose first member is the loaded struct config. On first run (no user at all) it creates the
 * user "admin" and prints its one-time password on stdout, never to the log. With --url-file,
 * the base URL ("http://127.0.0.1:PORT") is written there once the server listens. */
struct ctx;
int api_cmd_serve(struct ctx *cx, int argc, char **argv);

#endif
