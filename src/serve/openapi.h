/* openapi.h - the OpenAPI 3.1 description of the REST API, served at /openapi.json.
 *
 * The document's source is the JSON fragments in src/serve/openapi/ (one per area, merged by
 * scripts/gen-openapi.py into openapi_doc.inc and compiled in). At first use it is parsed and
 * completed from the code's own tables, so these cannot drift from what the server does: each
 * operation marked "x-memsync-list": "ENTITY" (or "ENTITY:csv" for an export) gets the list
 * parameters, its filter and sort fields taken from store_list_entity(ENTITY); every operation
 * gets a "default" error response, and every authenticated one its 401 and 429 answers and the
 * RateLimit-* headers on its 2xx answers.
 * tests/unit/test_openapi.c checks the result against the router's table (every API route has
 * an operation with an operationId and a typed 2xx answer, and nothing more).
 *
 * Adding a route: register it in api.c (or its own module), describe it in its area's fragment
 * (paths and the schemas it uses), run scripts/gen-openapi.py.
 *
 * Threads: built once (pthread_once), then read-only; the returned string is never freed.
 * A document that does not parse is a build mistake: the process aborts (ASSERT).
 */
#ifndef MEMSYNC_OPENAPI_H
#define MEMSYNC_OPENAPI_H

/* The document; page_default_rows and page_max_rows are the lists' page_size default and
 * maximum (api.h's API_PAGE_DEFAULT, API_PAGE_MAX; the first call's are kept). */
const char *openapi_document(int page_default_rows, int page_max_rows);

#endif
