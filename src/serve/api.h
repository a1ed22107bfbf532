/* api.h - the REST API under /api/v1 (docs/API.md), /healthz, /metrics and /openapi.json: its
 * routes (api_routes), which the router (router.h) serves, and how a refusal looks (api_refuse).
 *
 * Auth, checked by the router from the route table before a handler runs: an `x-api-key` header
 * or the UI's session cookie on every route but /healthz. A session caller must send the
 * session's CSRF token in X-CSRF-Token on every writing route. Roles: admin (or an API key with
 * scope admin) may change integrations; viewer / read keys only read. Every query is limited to
 * the caller's account. A path no route has is 404, a known path with another method 405 (Allow
 * lists the methods).
 * Lists: page_size 1..200 (default 50), opaque cursor, filter[field]=op:value, sort=+f,-f,
 * search=; at most API_MAX_QUERY_PARAMS parameters, and page_size, cursor, search and sort at most
 * once each (else 400); response {"data": [...], "total_count": N, "next_cursor": ...|null}.
 * Errors:
 * {"errors": [{"code", "title", "detail"}]} with the matching HTTP status. Secrets never appear in
 * a response: an integration shows only each key's hint and expiry.
 *
 * Threads: the handlers run on HTTP pool threads; struct api_app (app.h) is read-only after start
 * except through the scheduler's and the caches' own locking.
 */
#ifndef MEMSYNC_API_H
#define MEMSYNC_API_H

#include <jansson.h>
#include <stdint.h>

#include "api_reply.h"
#include "app.h"
#include "auth.h"
#include "buf.h"
#include "config.h"
#include "httpd.h"
#include "route.h"
#include "store.h"
#include "validate.h"
#include "vault.h"

#define API_PAGE_DEFAULT     50
#define API_PAGE_MAX         200
#define API_MAX_QUERY_PARAMS 64 /* a list request with more answers 400 */

/* The API's routes (a static table of n entries) for router_add. */
const struct route *api_routes(size_t *n);
/* Renders a refusal of the router as the API's JSON error (401 with WWW-Authenticate, 403,
 * 404, 405 with Allow). */
void api_refuse(void *app, struct httpd_request *req, struct httpd_response *resp,
                const struct auth_principal *p, const struct route_denial *d);

/* JSON view of an integration (no secrets; hints, expiry, days left, sync state). */
json_t *api_integration_json(struct api_app *app, const struct integration *in);

/* Parses and validates a list's query parameters exactly as a list request does (entity: a
 * store list entity such as "hardware"); kv holds npairs (key, value) pairs as kv[2i], kv[2i+1]
 * (a NULL value reads as ""). Returns ERR_OK or ERR_INVAL with the 400 answer's detail in eb;
 * keeps nothing. For the fuzzer (fuzz/list_params_fuzzer.c); requests use the same parser. */
int api_list_params_check(const char *entity, const char *const *kv, size_t npairs,
                          struct errbuf *eb);

#endif
