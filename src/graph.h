/* graph.h - Microsoft Graph responses: collection pages, organization, detected apps, $batch,
 * and the error envelope; plus URL rules for paging.
 *
 * JSON is parsed with jansson, duplicates rejected, depth-limited by jansson (2048); Int64
 * members must be JSON integers (a real like 3.0 is refused). Bodies larger than the caller's
 * cap never get here (http.h caps them). Pure functions; thread-safe. Results own their memory.
 * Parsed trees (graph_page.root, graph_batch.root) live in the thread's jsonarena: clear them on
 * the thread that parsed them, and keep nothing borrowed from them past the clear.
 */
#ifndef MEMSYNC_GRAPH_H
#define MEMSYNC_GRAPH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "err.h"

#define GRAPH_DEVICE_PAGE_SIZE 1000

/* The managedDevice members memsync keeps, for $select. */
extern const char GRAPH_DEVICE_SELECT[];

/* A parsed collection page: `value` array (borrowed from root) and the next link. */
struct graph_page {
    json_t *root;    /* owned */
    json_t *value;   /* borrowed from root: a JSON array */
    char *next_link; /* @odata.nextLink or NULL */
};

void graph_page_clear(struct graph_page *p);
int graph_page_parse(const char *body, size_t len, struct graph_page *out, struct errbuf *eb);

/* Parses a managedDevices page into devices (appended to *devs / *n, growing the array). */
int graph_devices_parse(const char *body, size_t len, struct device **devs, size_t *n, size_t *cap,
                        char **next_link, struct errbuf *eb);

/* GET /organization: name and default domain (verifiedDomains[isDefault]) of the first item. */
struct graph_org {
    char *id;
    char *name;
    char *default_domain;
};
void graph_org_clear(struct graph_org *o);
/* Accepts the collection form and a top-level entity. Default domain: the verifiedDomains entry
 * with isDefault, else the one with isInitial, else NULL. */
int graph_org_parse(const char *body, size_t len, struct graph_org *out, struct errbuf *eb);

/* A detected application (detectedApp). */
struct detected_app {
    char *id;
    char *name;
    char *version;
    char *publisher;
    char *platform;
    int64_t size_bytes; /* -1 when absent */
};
void detected_app_clear(struct detected_app *a);
/* Appends a page of detectedApps; also accepts the docs' single-GET {"value": {...}} form. On
 * failure the arrays are left as they were before the call (same for graph_devices_parse). */
int graph_apps_parse(const char *body, size_t len, struct detected_app **apps, size_t *n,
                     size_t *cap, char **next_link, struct errbuf *eb);
/* The same from an already parsed page (e.g. the body of a $batch item). */
int graph_apps_from_json(const json_t *page, struct detected_app **apps, size_t *n, size_t *cap,
                         char **next_link, struct errbuf *eb);

/* JSON batching: POST {graph}/{version}/$batch with at most GRAPH_BATCH_MAX GET requests. Each
 * item has its own status and Retry-After (throttled items are retried, not the batch). */
#define GRAPH_BATCH_MAX 20

struct graph_batch_item {
    const char *id; /* borrowed from the batch root */
    long status;
    double retry_after; /* seconds, -1 when absent */
    const json_t *body; /* borrowed; may be NULL */
};

struct graph_batch {
    json_t *root; /* owned */
    struct graph_batch_item *items;
    size_t n;
};

int graph_batch_parse(const char *body, size_t len, struct graph_batch *out, struct errbuf *eb);
void graph_batch_clear(struct graph_batch *b);
/* Builds the request body {"requests":[{"id","method":"GET","url"}...]}; malloc'd text. URLs are
 * relative to the version root, e.g. "/deviceManagement/managedDevices/ID/detectedApps". */
char *graph_batch_body(const char *const *ids, const char *const *urls, size_t n);

/* The Graph error envelope {"error":{"code","message","innerError"|"innererror":{...}}}. */
struct graph_error {
    char code[128];
    char message[512];
    char inner_code[128];
    char request_id[64];
};
/* Returns ERR_OK when the body is a Graph error envelope. */
int graph_error_parse(const char *body, size_t len, struct graph_error *out);

/* Builds "{graph}/v1.0/deviceManagement/managedDevices?$select=...&$top=N". */
char *graph_devices_url(const char *graph_base, const char *version, int top);

/* 1 when next_link has the same scheme, host and port as graph_base (a bearer token may follow
 * it); 0 otherwise. Host compared case-insensitively, default ports filled in; userinfo ("@"),
 * backslashes, percent signs, spaces and control characters in the authority are refused. */
int graph_link_allowed(const char *graph_base, const char *next_link);

#endif
