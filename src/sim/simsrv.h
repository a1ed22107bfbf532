/* simsrv.h - internals shared by the simulator's modules. Not a public interface.
 *
 * sim.c: the server core (listener, dispatch, sending, argv, start and stop) and the response
 * helpers; sim_entra.c: token endpoints and bearer checks; sim_partner.c: Partner Center;
 * sim_graph.c: Graph routes, $batch, Intune throttles; sim_export.c: report exports and
 * downloads; sim_control.c: the /_sim/ control API, statistics, request log, scenarios;
 * sim_fault.c: injected faults and throttling windows; simtok.c: tokens and opaque paging tokens.
 *
 * Threads and locks: MHD's handler threads serve requests; a delay thread resumes connections
 * suspended for injected latency; the main thread builds the world and `g` before the server
 * starts and frees them after it stops. World data is guarded by g.w->lock (rwlock); faults,
 * statistics, throttling windows, the request log and export jobs by g.mu; the delay queue by
 * g.dmu. Other fields of `g` are set before serving or by control ops (under g.mu where handler
 * threads read them while serving). A `struct resp` belongs to the thread building it until
 * send_resp() in sim.c takes it. simtok functions are pure (they use the process-wide key set once
 * by simtok_init before the server starts).
 *
 * Errors: handlers return a response (an error envelope of the service on failure), never NULL
 * unless stated; allocation failure aborts (mem.h).
 */
#ifndef MEMSYNC_SIMSRV_H
#define MEMSYNC_SIMSRV_H

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "err.h"
#include "simworld.h"

#define SIMTOK_FIELD_MAX 160

struct simtok_claims {
    char tid[64];
    char appid[64];
    char aud[SIMTOK_FIELD_MAX];
    int64_t exp;
};

/* Picks a fresh random signing key. Call once before serving. */
void simtok_init(void);

/* Issues an access token (JWT-shaped, HMAC-SHA256 signed) for tenant/app/audience, valid
 * `lifetime` seconds from `now`. Returns a heap string (caller frees). */
char *simtok_issue(const char *tid, const char *appid, const char *aud, int64_t now,
                   int64_t lifetime);

/* Verifies signature and expiry. Returns ERR_OK, ERR_AUTH (bad/forged) or ERR_TIMEOUT
 * (expired). */
int simtok_verify(const char *token, int64_t now, struct simtok_claims *out);

/* Opaque, MAC-protected encoding of a few integers (paging tokens). `kind` separates the
 * uses. Returns a heap string of base64url text. */
char *simtok_seal_ints(const char *kind, const int64_t *v, int n);
/* Reverse of simtok_seal_ints; ERR_PARSE when forged or malformed. */
int simtok_open_ints(const char *kind, const char *text, int64_t *v, int n);

/* Decodes application/x-www-form-urlencoded text in place ('+' => space, %XX). Returns
 * ERR_PARSE on a bad escape. */
int simtok_form_decode(char *s);

/* Standard base64 decode into out (NUL-terminated); ERR_PARSE on bad input. */
int simtok_b64_decode(const char *in, char *out, size_t outlen);

/* --- server state ---------------------------------------------------------------------------- */

#define SIM_BODY_MAX    (10u * 1024 * 1024)
#define SIM_URL_MAX     (64u * 1024)
#define SIM_PAGE_MAX    (256u * 1024 * 1024)
#define SIM_TOKEN_LIFE  3599
#define SIM_GRAPH_AUD   "https://graph.microsoft.com"
#define SIM_PC_AUD      "https://api.partnercenter.microsoft.com"
#define SIM_DEV_PAGE    1000
#define SIM_PC_PAGE_DEF 200
#define SIM_PC_PAGE_MAX 500
#define SIM_BATCH_MAX   20
#define SIM_REQLOG_MAX  65536 /* requests kept for GET /_sim/requests (a ring, ~14 MiB) */
/* Intune's resource app id, in the realm of its WWW-Authenticate */
#define SIM_INTUNE_REALM "0000000a-0000-0000-c000-000000000000"

#define SIM_GRAPH_CT                                                                               \
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"        \
    "charset=utf-8"
#define SIM_JSON_CT "application/json; charset=utf-8"

/* Routes, for statistics, faults and throttling. */
enum route {
    R_TOKEN_V2,
    R_TOKEN_V1,
    R_OPENID,
    R_CUSTOMERS,
    R_CUSTOMER,
    R_ORGANIZATION,
    R_DEVICES,
    R_DEVICE,
    R_DEVICE_APPS,
    R_APPS,
    R_APP,
    R_APP_DEVICES,
    R_BATCH,
    R_EXPORT,
    R_DOWNLOAD,
    R_CONTROL,
    R_OTHER,
    R_OVERVIEW,
    R_COUNT
};

struct hdr {
    const char *name;
    char *value;
};

/* A response being prepared; sent by send_resp() with any fault applied. */
struct resp {
    int status;
    char *body;
    size_t len;
    const char *ctype;
    struct hdr hdrs[8];
    int nhdrs;
    enum simw_fault_kind mode; /* DROP / TRUNCATE / SLOW or NONE */
    int delay_ms;
    long rate_bps;  /* send at most this many bytes per second (0 = no limit) */
    size_t drop_at; /* close the connection after this many body bytes (0 = never) */
};

struct req {
    struct buf body;
    int toobig;
    int done; /* response already queued or pending */
    struct resp *pending;
    int64_t due_ms;
    struct MHD_Connection *conn;
    struct req *next_delayed;
};

struct throttle_win {
    char key[112];
    int64_t start_ms;
    long count;
};

/* Open-addressing index from a hashed string key to a position in an array; slots hold
 * position + 1 (0 = empty). Used under g.mu for statistics and throttling windows. */
struct sidx {
    size_t *slot;
    size_t cap; /* power of two */
};

struct stat_ent {
    char route[24];
    char tenant[40];
    long count;
};

/* One answered request (a $batch item too) as /_sim/requests shows it: when, where, what it got
 * (Retry-After or not, for the throttling tests) and the support ids Microsoft asks clients to
 * send (client-request-id, MS-RequestId, MS-CorrelationId, MS-Contract-Version). */
struct reqlog_ent {
    uint64_t seq;
    int64_t ms; /* since the log was last cleared */
    int status;
    unsigned char route;
    unsigned char retry_after; /* the answer carried Retry-After */
    unsigned char batch_item;  /* an inner request of a $batch */
    char tenant[40];
    char method[8];
    char client_request_id[40];
    char ms_request_id[40];
    char ms_correlation_id[40];
    char ms_contract_version[16];
};

/* The simulator's state, one per process: `g`. See the opening comment for its locks. */
struct sim_state {
    struct simworld *w;
    struct MHD_Daemon *d;
    char base[128]; /* http://127.0.0.1:PORT */
    int tls;
    int latency_ms;
    int throttle;
    long intune_limit, intune_window_ms;
    long global_limit, global_window_ms;
    long pc_limit, pc_window_ms;
    /* Beta per-device detectedApps throttles below the published 2000 per 20 s and answers 429
     * without Retry-After (Microsoft Q&A 5784629; MSEndpointMgr "A beginners guide to
     * Microsoft Graph API rate limiting in Intune"): its own limit per tenant per Intune
     * window, 0 = off. */
    long dapps_limit;
    /* The tenant's 4000 Intune requests per 20 s are shared by all its apps (Microsoft's Graph
     * throttling limits, Intune section): other_apps phantom requests start each tenant
     * window, 0 = off (no tenant-wide window at all). */
    long tenant_limit, other_apps;
    pthread_mutex_t mu;
    struct throttle_win *wins;
    size_t capwins;
    struct sidx win_idx;
    size_t nwins;
    struct stat_ent *stats;
    size_t capstats;
    struct sidx stat_idx;
    size_t nstats;
    long total_requests, throttled;
    /* request log (GET /_sim/requests): SIM_REQLOG_MAX entries, a ring, allocated on the first
     * request; the `request_log` op turns it off or clears it; under mu */
    struct reqlog_ent *reqlog;
    uint64_t reqlog_seq; /* entries written since cleared */
    int64_t reqlog_t0;
    int reqlog_off;
    /* delay queue */
    pthread_mutex_t dmu;
    pthread_cond_t dcv;
    struct req *delayed;
    int stopping;
    pthread_t dthread;
    /* export jobs */
    struct export_job *jobs;
    /* Report export behaviours of the real cloud (set_export, scenario "export"), off by
     * default. Sources: memdocs reports-export-graph-available-reports (AppInvRawData, the
     * localizationType default adding *_loc columns, SAS URLs on *.blob.core.windows.net);
     * third-party runbooks planning ~800 MB for ~8 M app records. */
    struct {
        long pad_rows;       /* extra AppInvRawData rows (devices no longer in the tenant) */
        long bytes_per_s;    /* download rate limit */
        long drop_after;     /* the next download closes its connection after this many bytes */
        int zip64;           /* write zips with zip64 records */
        int localized_codes; /* codes in the columns unless localizationType asks for names */
        char url_host[128];  /* a completed job's url is on this host instead of the sim's */
    } exp;
    long download_ranges; /* downloads that asked for a byte range */
    /* set_partner application_read: false: the Sync App lacks the optional Application.Read.All
     * in the partner tenant, so GET /applications answers 403 (Graph permissions reference,
     * application-get; notes §10). Off by default: the apps can be read. */
    int no_app_read;
};

extern struct sim_state g;

/* A report export job; g.jobs lists them, under g.mu. */
struct export_job {
    char id[96];
    char tenant[40];
    char report[40];
    char localization[48];
    json_t *select;
    char *filter;
    int polls;
    unsigned char *zip;
    size_t ziplen;
    int64_t requested;
    long pad_rows; /* the CSV's padding rows (g.exp.pad_rows when it was built) */
    int codes;     /* localizable columns hold codes (g.exp.localized_codes, default type) */
    struct export_job *next;
};

/* Which limits sim_throttle_hit applies (g.*_limit, g.*_window_ms). */
enum throttle_kind { TH_INTUNE, TH_GLOBAL, TH_PC, TH_DAPPS, TH_TENANT };

/* One Graph request (a $batch item too) being served, on its handler thread. */
struct gctx {
    struct MHD_Connection *c;
    int beta;
    struct simtok_claims cl;
    int partner; /* token tenant is the partner tenant */
    struct simtenant *t;
    char ver[8];
    /* managedDevices listing faults of this request: short_keep >= 0 ends the listing after
     * that many devices (no nextLink); skip_seq > 0 leaves out that device (renamed). */
    int short_keep;
    uint64_t skip_seq;
};

/* Route names for statistics, the request log and fault matching, by enum route. */
extern const char *const sim_route_names[R_COUNT];
/* Set by $batch (sim_graph.c) on the handler thread while it serves one inner request of a $batch:
 * that request's query arguments (sim_arg_lookup reads them) and whether faults on "batch_item"
 * apply. */
extern __thread json_t *sim_inner_args;
extern __thread int sim_in_batch_item;

/* --- sim.c: small helpers and response envelopes (any thread) -------------------------------- */

/* The open-addressing index (struct sidx); the caller holds the lock of the array it indexes. */
uint64_t sim_str_hash(const char *a, const char *b);
void sim_sidx_put(struct sidx *x, uint64_t h, size_t pos);
/* Makes room for n entries; rehashes with hash_of(i) when the table grows. */
void sim_sidx_reserve(struct sidx *x, size_t n, uint64_t (*hash_of)(size_t));
void sim_sidx_clear(struct sidx *x);

/* Query argument lookup; inside $batch (c == NULL) it reads the inner request's query. */
const char *sim_arg_lookup(struct MHD_Connection *c, const char *k);
/* A random version-4 GUID for request ids (unique, not secret). */
void sim_rand_guid(char out[37]);

/* A response owns its body and header values; sim_resp_free accepts NULL. sim_resp_hdr keeps at
 * most 8 headers (more are dropped); sim_resp_json takes the reference to j; sim_resp_buf takes
 * b's contents. */
struct resp *sim_resp_new(int status, const char *ctype);
void sim_resp_free(struct resp *r);
void sim_resp_hdr(struct resp *r, const char *name, const char *value);
void sim_resp_json(struct resp *r, json_t *j);
void sim_resp_buf(struct resp *r, struct buf *b);

/* Error envelopes as Graph and Partner Center write them; sim_graph_429 leaves Retry-After out
 * when retry_after is negative. */
struct resp *sim_graph_error(int status, const char *code, const char *message);
struct resp *sim_graph_429(double retry_after);
struct resp *sim_pc_error(int status, const char *code, const char *desc);
struct resp *sim_pc_429(int seconds);

/* --- sim_fault.c: injected faults and throttling windows (take g.mu themselves) -------------- */

/* Finds and consumes a fault matching route, tenant and page; copies it to *out. Returns 1 when
 * one applies. */
int sim_fault_take(enum route rt, const char *tenant, int page, struct simw_fault *out);
/* Counts one request in the fixed window of `key`; returns the seconds to wait (> 0) when over
 * the limit, else 0. `others`: requests other apps make at the start of each window
 * (TH_TENANT only). */
double sim_throttle_hit(const char *key, enum throttle_kind kind, long others);
/* Applies a taken fault: returns a replacement response (error kinds, as Graph when `graph`,
 * else as Partner Center) or NULL and sets *mode / *delay for the response to be built. */
struct resp *sim_fault_apply(const struct simw_fault *f, int graph, enum simw_fault_kind *mode,
                             int *delay);

/* --- sim_entra.c: token endpoints (handler threads; read g.w under its lock) ----------------- */

/* /login/{tenant}/oauth2[/v2.0]/token and .../v2.0/.well-known/openid-configuration; `path`
 * follows "/login/". Sets *rt, and tenant[tenantlen] once the tenant is known. */
struct resp *sim_entra_route(struct MHD_Connection *c, struct req *q, const char *method,
                             const char *path, enum route *rt, char *tenant, size_t tenantlen);
/* Checks the bearer token for audience `aud`; on success fills *cl and returns NULL, otherwise
 * returns the error response of that service. */
struct resp *sim_bearer_check(struct MHD_Connection *c, const char *aud, struct simtok_claims *cl);

/* sim_oidc.c: people signing in to the partner's tenant (OpenID Connect). sim_oidc_init makes the
 * sign-in app and its RSA key (call once before serving); sim_oidc_route answers the key set,
 * authorize and authorization_code token requests under /login/{tenant} (rest: the path after
 * the tenant), NULL for any other; sim_oidc_control serves /_sim/oidc. */
#define SIM_OIDC_ADMIN_GROUP  "5a1f0000-aaaa-4aaa-8aaa-00000000ad01"
#define SIM_OIDC_VIEWER_GROUP "5a1f0000-aaaa-4aaa-8aaa-00000000ee02"
void sim_oidc_init(void);
const char *sim_oidc_client_id(void);
const char *sim_oidc_client_secret(void);
struct resp *sim_oidc_route(struct MHD_Connection *c, struct req *q, const char *method,
                            const char *tenant, const char *rest);
struct resp *sim_oidc_control(const char *method, const char *body, size_t len);

/* --- sim_partner.c: Partner Center (handler threads) ----------------------------------------- */

/* /pc/v1/customers[/...]; `path` follows "/pc/v1/customers". Sets *rt. */
struct resp *sim_partner_route(struct MHD_Connection *c, const char *method, const char *path,
                               enum route *rt);

/* --- sim_graph.c: Graph (handler threads) ---------------------------------------------------- */

/* Extracts an id from "/{id}" or "('{id}')" at s into out; returns the rest of the path. */
const char *sim_path_key(const char *s, char *out, size_t outlen);
/* /graph/{v1.0,beta}/...; `path` follows "/graph/". Sets *rt, and *tenant once the token is
 * checked (a pointer into the world, valid while it lives). */
struct resp *sim_graph_route(struct MHD_Connection *c, const char *method, const char *path,
                             const char *body, size_t len, enum route *rt, const char **tenant);

/* --- sim_export.c: report exports (handler threads; jobs under g.mu) ------------------------- */

/* .../deviceManagement/reports/exportJobs[...]; `rest` is the path after "exportJobs". Sets *rt
 * to R_EXPORT. */
struct resp *sim_export_route(struct gctx *x, const char *method, const char *rest,
                              const char *body, size_t bodylen, enum route *rt);
/* GET /download/{jobid}.zip: the blob of a completed job. */
struct resp *sim_export_download(struct MHD_Connection *c, const char *rest);
/* The set_export control op and the scenario's "export" member; ERR_INVAL with err filled. */
int sim_set_export(json_t *o, char *err, size_t errlen);

/* --- sim_control.c: statistics, request log, /_sim/ routes, scenarios ------------------------ */

/* Count and log one answered request (take g.mu themselves). sim_reqlog_add's `c` is NULL for a
 * $batch item: its headers are the batch's. */
void sim_stat_count(enum route rt, const char *tenant, int throttled);
void sim_reqlog_add(struct MHD_Connection *c, enum route rt, const char *tenant, const char *method,
                    const struct resp *r);
/* Scenario members, applied by the main thread before serving or by control ops: a fault from its
 * JSON description (ERR_* with err filled; while serving the caller holds g.mu), a tenant's
 * flags, the throttling limits (returns ERR_OK). */
int sim_fault_add(json_t *o, char *err, size_t errlen);
void sim_set_tenant_flags(struct simtenant *t, json_t *o);
int sim_set_throttle(json_t *o);
/* GET /_sim/world, /_sim/stats, /_sim/requests and POST /_sim/control; `rest` follows "/_sim/". */
struct resp *sim_control_route(struct MHD_Connection *c, const char *method, const char *rest,
                               const char *body, size_t len);
/* A built-in scenario by name or a scenario file; NULL with eb set on failure. */
json_t *sim_load_scenario(const char *arg, struct errbuf *eb);

#endif
