/* graph.h - Microsoft Graph responses: collection pages, organization, detected apps, $batch,
 * and the error envelope; plus URL rules for paging.
 *
 * Two parsers, one set of guarantees. The sync's hot paths (graph_devices_parse, graph_apps_parse,
 * graph_batch_parse) stream through yajl's callbacks and map as tokens arrive; everything else
 * (graph_page_parse, organization, error envelope) builds a jansson tree. Both refuse, as a parse
 * error of the whole body:
 *   - duplicate members, in every object at every depth. The streaming parsers track the members
 *     they read in a bitmask per object (value, @odata.nextLink, responses, id, status, headers,
 *     body, each managedDevice/detectedApp member, physicalMemoryInBytes, ethernetMacAddress;
 *     Retry-After compared case-insensitively, so "retry-after" next to "Retry-After" is a
 *     duplicate too, which jansson allowed) and every other member name in a per-parse set;
 *   - integers outside int64 and reals that overflow a double, wherever they occur; where an
 *     Int64 or a status is required, a real (3.0, 1e3) is refused, naming the member;
 *   - ill-formed UTF-8 (overlong forms, surrogates, past U+10FFFF), \u0000 and lone surrogate
 *     escapes, raw control characters (also \v and \f between tokens, which yajl skips),
 *     comments, trailing garbage (also a partial token, which yajl 2.1.0 accepts), several
 *     top-level values, a top level that is not an object or array. A raw NUL byte is refused
 *     anywhere (jansson skipped one right after a number);
 *   - nesting deeper than GRAPH_JSON_MAX_DEPTH (jansson: 2048).
 * Type errors name the member ("managedDevice member X is not a string", prefixed "device N of
 * the page"). Error messages never quote the body (yajl's verbose error form is not used). Bodies
 * larger than the caller's cap never get here (http.h caps them far below 2 GB).
 * Pure functions; thread-safe. Results own their memory. Parsed trees (graph_page.root) live in
 * the thread's jsonarena: clear them on the thread that parsed them, and keep nothing borrowed
 * from them past the clear.
 */
#ifndef MEMSYNC_GRAPH_H
#define MEMSYNC_GRAPH_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "device.h"
#include "err.h"

#define GRAPH_DEVICE_PAGE_SIZE 1000
#define GRAPH_JSON_MAX_DEPTH   64

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

/* GET /organization: name and default domain (verifiedDomains[isDefault]) of the first item,
 * and whether assignedPlans hold an Intune plan. */
struct graph_org {
    char *id;
    char *name;
    char *default_domain;
    /* 0: no assignedPlans array; 1: a plan of service "SCO" or naming Intune whose
     * capabilityStatus is Enabled or Warning (grace period); 2: none (remedy_intune_plan). */
    int intune_plan;
};
void graph_org_clear(struct graph_org *o);
/* Accepts the collection form and a top-level entity. Default domain: the verifiedDomains entry
 * with isDefault, else the one with isInitial, else NULL. */
int graph_org_parse(const char *body, size_t len, struct graph_org *out, struct errbuf *eb);
/* deviceManagement/managedDeviceOverview: *enrolled = enrolledDeviceCount (0..INT32_MAX), from
 * the entity at the top level or under "value". ERR_PARSE when absent or not such a number. */
int graph_overview_parse(const char *body, size_t len, int64_t *enrolled, struct errbuf *eb);

/* A detected application (detectedApp). */
struct detected_app {
    char *id;
    char *name;
    char *version;
    char *publisher;
    char *platform;
    int64_t size_bytes; /* -1 when absent */
    uint32_t known;     /* graph_batch_parse_known: the caller's index, when id is NULL */
};
void detected_app_clear(struct detected_app *a);
/* Appends a page of detectedApps; also accepts the docs' single-GET {"value": {...}} form. On
 * failure the arrays are left as they were before the call (same for graph_devices_parse).
 * ERR_PARSE: not JSON under the rules above; ERR_INVAL: JSON, but not a detectedApps page. */
int graph_apps_parse(const char *body, size_t len, struct detected_app **apps, size_t *n,
                     size_t *cap, char **next_link, struct errbuf *eb);

/* JSON batching: POST {graph}/{version}/$batch with at most GRAPH_BATCH_MAX GET requests. Each
 * item has its own status and Retry-After (throttled items are retried, not the batch). Every
 * item's body is read as the kind of answer asked for; use it only when status is 200. */
#define GRAPH_BATCH_MAX 20

enum graph_batch_kind {
    GRAPH_BATCH_APPS,   /* bodies are detectedApps pages */
    GRAPH_BATCH_DETAIL, /* bodies are managedDevice entities (top level or {"value": {...}}) */
};

struct graph_batch_item {
    char *id; /* any string, maybe "" */
    long status;
    double retry_after; /* seconds, -1 when absent; header name case-insensitive */
    int has_body;       /* "body" was a JSON object */
    /* GRAPH_BATCH_APPS: what graph_apps_parse would make of the body. Take apps / next_link
     * by setting them NULL (napps 0); graph_batch_clear frees what is left. */
    int apps_rc; /* ERR_OK, or ERR_PARSE with apps_eb saying why */
    struct errbuf apps_eb;
    struct detected_app *apps;
    size_t napps, capapps;
    char *next_link;
    /* GRAPH_BATCH_DETAIL */
    int64_t memory;     /* physicalMemoryInBytes when a positive integer, else -1 */
    char *ethernet_mac; /* ethernetMacAddress when a non-empty string, else NULL */
};

struct graph_batch {
    struct graph_batch_item *items;
    size_t n;
};

/* ERR_PARSE when the body is not JSON, has no "responses" array, holds more than
 * GRAPH_BATCH_MAX items or an item lacks a string id or an integer status. */
int graph_batch_parse(const char *body, size_t len, enum graph_batch_kind kind,
                      struct graph_batch *out, struct errbuf *eb);

/* Looks a detectedApp id (id[0..len), not NUL-terminated) up in the caller's catalogue: its index,
 * or UINT32_MAX when unknown. */
typedef uint32_t graph_app_find_fn(void *arg, const char *id, size_t len);

/* graph_batch_parse for GRAPH_BATCH_APPS, except that an app find() knows is not copied: it is
 * added with every string NULL and known = find's index (after the same checks). Most apps of a
 * tenant are on many devices, so this saves copying them per device. */
int graph_batch_parse_known(const char *body, size_t len, graph_app_find_fn *find, void *find_arg,
                            struct graph_batch *out, struct errbuf *eb);
void graph_batch_clear(struct graph_batch *b);
/* Builds the request body {"requests":[{"id","method":"GET","url"}...]}; malloc'd text. URLs are
 * relative to the version root, e.g. "/deviceManagement/managedDevices/ID/detectedApps". */
char *graph_batch_body(const char *const *ids, const char *const *urls, size_t n);

/* The Graph error envelope {"error":{"code","message","innerError"|"innererror":{...}}}. */
struct graph_error {
    char code[128];
    char message[512]; /* cut at 511 bytes; the two flags are read from the whole message */
    char inner_code[128];
    char request_id[64];
    char date[40];        /* innerError.date */
    int not_applicable;   /* "Request not applicable to target tenant." (Intune: no licence) */
    int nested_forbidden; /* the message nests "ErrorCode":"Forbidden" (Intune's 401) */
};
/* Returns ERR_OK when the body is a Graph error envelope. */
int graph_error_parse(const char *body, size_t len, struct graph_error *out);

/* Builds "{graph}/v1.0/deviceManagement/managedDevices?$select=...&$top=N". */
char *graph_devices_url(const char *graph_base, const char *version, int top);

/* 1 when next_link has the same scheme, host and port as graph_base (a bearer token may follow
 * it); 0 otherwise. Host compared case-insensitively, default ports filled in; userinfo ("@"),
 * backslashes, percent signs, spaces and control characters in the authority are refused. */
int graph_link_allowed(const char *graph_base, const char *next_link);

/* 1 when a report export's download URL may be fetched: https on port 443 to one storage
 * account of Azure Blob Storage (<account>.blob.core.windows.net, .blob.core.usgovcloudapi.net,
 * .blob.core.chinacloudapi.cn; the account name letters and digits only), or graph_base's own
 * origin (graph_link_allowed: the simulator). No bearer token is sent to either. */
int graph_blob_url_allowed(const char *graph_base, const char *url);

#endif
