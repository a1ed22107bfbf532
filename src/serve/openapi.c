/* openapi.c - the /openapi.json document, generated from one route table. */
#include "openapi.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"

const struct openapi_route openapi_routes[] = {
    {"/healthz", "GET", "Liveness and database check (no authentication)", 0, 0, 0, NULL},
    {"/metrics", "GET", "Prometheus metrics of the caller's account", 0, 0, 0, "text/plain"},
    {"/openapi.json", "GET", "This document", 0, 0, 0, NULL},
    {"/api/v1/me", "GET", "The caller: name, role and account", 0, 0, 0, NULL},
    {"/api/v1/clients", "GET", "Customer tenants with sync status and counts", 1, 0, 0, NULL},
    {"/api/v1/clients/{id}", "GET", "One customer tenant", 0, 0, 0, NULL},
    {"/api/v1/clients.csv", "GET", "All clients as CSV (streamed)", 0, 0, 0, "text/csv"},
    {"/api/v1/assets/hardware", "GET", "Hardware assets across all clients", 1, 0, 0, NULL},
    {"/api/v1/assets/hardware/{id}", "GET",
     "One hardware asset with its installed software and change history", 0, 0, 0, NULL},
    {"/api/v1/assets/hardware.csv", "GET", "Hardware assets as CSV (streamed; filters apply)", 0, 0,
     0, "text/csv"},
    {"/api/v1/assets/software", "GET", "Software titles per client with device counts", 1, 0, 0,
     NULL},
    {"/api/v1/assets/software/{id}", "GET", "One software title", 0, 0, 0, NULL},
    {"/api/v1/assets/software/{id}/devices", "GET", "Devices that have a software title", 1, 0, 0,
     NULL},
    {"/api/v1/assets/software.csv", "GET", "Software titles as CSV (streamed)", 0, 0, 0,
     "text/csv"},
    {"/api/v1/integrations", "GET", "Integrations (keys shown only as hint and expiry)", 0, 0, 0,
     NULL},
    {"/api/v1/integrations", "POST",
     "Create an integration from the five values; validates with Microsoft first (422 with the "
     "per-check results when a check fails), then starts a full sync",
     0, 1, 1, NULL},
    {"/api/v1/integrations/{id}", "GET", "One integration with its sync state", 0, 0, 0, NULL},
    {"/api/v1/integrations/{id}", "PATCH", "Change name, sync interval or key expiry dates", 0, 1,
     1, NULL},
    {"/api/v1/integrations/{id}/rotate-secret", "POST",
     "Replace a key: {which: partner|sync, secret, expires_at}; validated before it is swapped in",
     0, 1, 1, NULL},
    {"/api/v1/integrations/{id}/sync", "POST",
     "Sync now (?kind=full|incremental); 409 when one "
     "is already queued or running",
     0, 0, 1, NULL},
    {"/api/v1/sync-runs", "GET", "Sync runs, newest first", 1, 0, 0, NULL},
    {"/api/v1/insights", "GET",
     "Lifecycle insight per client with active devices (memsync insights): devices, stale "
     "(?stale_days=N, default 30), unsupported_os, no_serial, duplicate_serial, encrypted_pct, "
     "compliant_pct, oldest_enrolment_days; every client in one answer",
     0, 0, 0, NULL},
    {"/api/v1/sync-runs/{id}", "GET", "One sync run with per-tenant results and remedies", 0, 0, 0,
     NULL},
    {"/api/v1/changes", "GET",
     "Change feed: what changed since ?cursor= (next_cursor of the previous page; \"now\" for "
     "the newest position), in commit order; ?limit=1..500, ?client=ID, ?kind=asset.created,..",
     0, 0, 0, NULL},
    {"/api/v1/webhooks", "GET", "Webhook subscriptions (admins; secrets never shown)", 0, 0, 1,
     NULL},
    {"/api/v1/webhooks", "POST",
     "Subscribe: {url, events[]}; answers the signing secret once (docs/API.md \"Webhooks\")", 0, 1,
     1, NULL},
    {"/api/v1/webhooks/{id}", "DELETE", "Remove a subscription and its delivery log", 0, 0, 1,
     NULL},
    {"/api/v1/webhooks/{id}/resume", "POST", "Resume a paused subscription", 0, 0, 1, NULL},
    {"/api/v1/webhooks/{id}/deliveries", "GET",
     "The subscription's newest deliveries: state, attempts, response status, latency, error", 0, 0,
     1, NULL},
};
const size_t openapi_route_count = sizeof openapi_routes / sizeof openapi_routes[0];

static pthread_once_t doc_once = PTHREAD_ONCE_INIT;
static char *doc;

static json_t *
param(const char *name, const char *in, const char *type, const char *desc, int required)
{
    return json_pack("{s:s, s:s, s:b, s:s, s:{s:s}}", "name", name, "in", in, "required", required,
                     "description", desc, "schema", "type", type);
}

static json_t *
error_response(const char *desc)
{
    return json_pack("{s:s, s:{s:{s:{s:s}}}}", "description", desc, "content", "application/json",
                     "schema", "$ref", "#/components/schemas/Errors");
}

static void
build(void)
{
    json_t *paths = json_object(), *root;

    for (size_t i = 0; i < openapi_route_count; i++) {
        const struct openapi_route *r = &openapi_routes[i];
        json_t *item = json_object_get(paths, r->path), *op, *params = json_array(), *resps;
        char method[8];
        size_t k;

        if (item == NULL) {
            item = json_object();
            json_object_set_new(paths, r->path, item);
        }
        for (k = 0; r->method[k] != '\0' && k < sizeof method - 1; k++)
            method[k] = (char)(r->method[k] - 'A' + 'a');
        method[k] = '\0';
        if (strstr(r->path, "{id}") != NULL)
            json_array_append_new(params, param("id", "path", "integer", "memsync id", 1));
        if (r->list) {
            json_array_append_new(
                params, param("page_size", "query", "integer", "1 to 200, default 50", 0));
            json_array_append_new(
                params, param("cursor", "query", "string",
                              "next_cursor of the previous page, unchanged and with the same "
                              "sort (opaque; another sort or an edited cursor is a 400)",
                              0));
            json_array_append_new(
                params, param("sort", "query", "string",
                              "+field,-field (dotted field names); nulls last both ways, then "
                              "id",
                              0));
            json_array_append_new(params,
                                  param("search", "query", "string", "free text, substring", 0));
            json_array_append_new(
                params, json_pack("{s:s, s:s, s:s, s:{s:s, s:{s:s}}, s:s}", "name", "filter", "in",
                                  "query", "style", "deepObject", "schema", "type", "object",
                                  "additionalProperties", "type", "string", "description",
                                  "filter[field]=op:value with op eq, in (comma list), lt, lte, "
                                  "gt, gte, like (substring, case-insensitive); quote values with "
                                  "commas, colons or spaces"));
        }
        {
            const char *ok = "200";
            size_t pl = strlen(r->path);

            if (strcmp(r->method, "POST") == 0 && pl > 5 && strcmp(r->path + pl - 5, "/sync") == 0)
                ok = "202";
            else if (strcmp(r->method, "POST") == 0 && strcmp(r->path, "/api/v1/integrations") == 0)
                ok = "201";
            resps = json_pack("{s:{s:s}, s:o, s:o}", ok, "description", "success", "401",
                              error_response("no or invalid x-api-key / session"), "404",
                              error_response("not found in the caller's account"));
        }
        if (strcmp(r->path, "/api/v1/insights") == 0)
            json_array_append_new(
                params, param("stale_days", "query", "integer",
                              "a device is stale after this many days without a check-in (1 to "
                              "3650, default 30)",
                              0));
        if (strcmp(r->path, "/api/v1/assets/hardware") == 0) {
            json_object_set_new(resps, "304",
                                json_pack("{s:s}", "description",
                                          "not modified: If-None-Match named the answer's "
                                          "current ETag (no body)"));
            json_array_append_new(params,
                                  json_pack("{s:s, s:s, s:{s:s}, s:s}", "name", "If-None-Match",
                                            "in", "header", "schema", "type", "string",
                                            "description", "an ETag of an earlier answer"));
        }
        if (r->admin)
            json_object_set_new(resps, "403", error_response("the caller is not an admin"));
        if (r->body)
            json_object_set_new(resps, "422",
                                error_response("validation with Microsoft failed (details in "
                                               "validation)"));
        op = json_pack("{s:s, s:o, s:o}", "summary", r->summary, "parameters", params, "responses",
                       resps);
        if (r->list)
            json_object_set_new(op, "x-list-response",
                                json_string("{data: [...], total_count, next_cursor}"));
        if (r->body)
            json_object_set_new(op, "requestBody",
                                json_pack("{s:b, s:{s:{s:{s:s}}}}", "required", 1, "content",
                                          "application/json", "schema", "type", "object"));
        if (strcmp(r->path, "/healthz") == 0)
            json_object_set_new(op, "security", json_array());
        json_object_set_new(item, method, op);
    }
    root = json_pack(
        "{s:s, s:{s:s, s:s, s:s}, s:[{s:s}], s:o, s:{s:{s:{s:s, s:s, s:s}, s:{s:s, s:s, s:s}}, "
        "s:{s:{s:s, s:{s:{s:s, s:{s:s, s:{s:{s:s}, s:{s:s}, s:{s:s}}}}}}}}, s:[{s:[]}, {s:[]}]}",
        "openapi", "3.0.3", "info", "title", "memsync API", "version", "1", "description",
        "Device and software inventory across Microsoft 365 customer tenants.", "servers", "url",
        "/", "paths", paths, "components", "securitySchemes", "apiKey", "type", "apiKey", "in",
        "header", "name", "x-api-key", "session", "type", "apiKey", "in", "cookie", "name",
        "memsync_session", "schemas", "Errors", "type", "object", "properties", "errors", "type",
        "array", "items", "type", "object", "properties", "code", "type", "string", "title", "type",
        "string", "detail", "type", "string", "security", "apiKey", "session");
    ASSERT(root != NULL);
    doc = json_dumps(root, JSON_INDENT(1));
    ASSERT(doc != NULL);
    json_decref(root);
}

const char *
openapi_document(void)
{
    pthread_once(&doc_once, build);
    return doc;
}
