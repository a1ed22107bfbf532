/* sim.c - `memsync sim`: Entra token endpoints, Partner Center customers and the Graph/Intune
 * routes memsync uses, served by libmicrohttpd from a generated world (simworld.h).
 *
 * Threads: MHD's internal epoll thread pool runs the handlers; a delay thread resumes
 * connections suspended for injected latency; the main thread waits for SIGTERM/SIGINT.
 * World data is guarded by world->lock (rwlock); faults, statistics and throttling counters by
 * `g.mu`.
 */
#include "sim.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sodium.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#include "buf.h"
#include "clock.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "mem.h"
#include "simsrv.h"
#include "simworld.h"

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

static const char *const route_names[R_COUNT] = {
    "token_v2",       "token_v1",      "openid",
    "customers",      "customer",      "organization",
    "managedDevices", "managedDevice", "deviceDetectedApps",
    "detectedApps",   "detectedApp",   "detectedAppDevices",
    "batch",          "exportJobs",    "download",
    "control",        "other",         "managedDeviceOverview",
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

static uint64_t
str_hash(const char *a, const char *b)
{
    uint64_t h = UINT64_C(1469598103934665603);

    for (; *a; a++)
        h = (h ^ (unsigned char)*a) * UINT64_C(1099511628211);
    h = (h ^ '|') * UINT64_C(1099511628211);
    for (; b && *b; b++)
        h = (h ^ (unsigned char)*b) * UINT64_C(1099511628211);
    return h;
}

static void
sidx_put(struct sidx *x, uint64_t h, size_t pos)
{
    size_t j = (size_t)h & (x->cap - 1);

    while (x->slot[j])
        j = (j + 1) & (x->cap - 1);
    x->slot[j] = pos + 1;
}

/* Makes room for n entries; rehashes with hash_of(i) when the table grows. */
static void
sidx_reserve(struct sidx *x, size_t n, uint64_t (*hash_of)(size_t))
{
    if (n * 2 < x->cap)
        return;
    free(x->slot);
    x->cap = x->cap ? x->cap * 2 : 256;
    while (n * 2 >= x->cap)
        x->cap *= 2;
    x->slot = xcalloc(x->cap, sizeof(*x->slot));
    for (size_t i = 0; i + 1 < n; i++)
        sidx_put(x, hash_of(i), i);
}

static void
sidx_clear(struct sidx *x)
{
    if (x->slot)
        memset(x->slot, 0, x->cap * sizeof(*x->slot));
}

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

static struct {
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
} g;

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

/* --- small helpers ------------------------------------------------------------------------- */

/* Query arguments of the $batch inner request being served on this thread. */
static __thread json_t *inner_args;
/* Set while an inner request of a $batch is served: faults on the route "batch_item" apply
 * (each item has its own status, e.g. a 401 in a 200 batch: Microsoft Graph "JSON batching"). */
static __thread int in_batch_item;

/* Query argument lookup; inside $batch (c == NULL) it reads the inner request's query. */
static const char *
arg_lookup(struct MHD_Connection *c, const char *k)
{
    if (c == NULL)
        return inner_args ? json_string_value(json_object_get(inner_args, k)) : NULL;
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
}

static void
rand_guid(char out[37])
{
    /* request ids need uniqueness, not secrecy: a per-thread generator seeded once avoids a
     * getrandom() call per response */
    static __thread uint64_t st;
    unsigned char r[16];

    if (st == 0)
        randombytes_buf(&st, sizeof st);
    uint64_t a = simw_rand(&st), b = simw_rand(&st);
    memcpy(r, &a, 8);
    memcpy(r + 8, &b, 8);
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
}

static struct resp *
resp_new(int status, const char *ctype)
{
    struct resp *r = xcalloc(1, sizeof(*r));

    r->status = status;
    r->ctype = ctype;
    return r;
}

static void
resp_free(struct resp *r)
{
    if (r == NULL)
        return;
    free(r->body);
    for (int i = 0; i < r->nhdrs; i++)
        free(r->hdrs[i].value);
    free(r);
}

static void
resp_hdr(struct resp *r, const char *name, const char *value)
{
    if (r->nhdrs < (int)(sizeof r->hdrs / sizeof r->hdrs[0])) {
        r->hdrs[r->nhdrs].name = name;
        r->hdrs[r->nhdrs].value = xstrdup(value);
        r->nhdrs++;
    }
}

static void
resp_json(struct resp *r, json_t *j)
{
    free(r->body);
    r->body = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (r->body == NULL)
        r->body = xstrdup("{}");
    r->len = strlen(r->body);
    json_decref(j);
}

static void
resp_buf(struct resp *r, struct buf *b)
{
    free(r->body);
    r->body = buf_detach(b, &r->len);
}

static const char *GRAPH_CT =
    "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;"
    "charset=utf-8";
static const char *JSON_CT = "application/json; charset=utf-8";

static void
graph_date(char *out, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
}

static struct resp *
graph_error(int status, const char *code, const char *message)
{
    struct resp *r = resp_new(status, JSON_CT);
    char rid[37], date[32];

    rand_guid(rid);
    graph_date(date, sizeof date);
    resp_json(r, json_pack("{s:{s:s, s:s, s:{s:s, s:s, s:s}}}", "error", "code", code, "message",
                           message, "innerError", "date", date, "request-id", rid,
                           "client-request-id", rid));
    resp_hdr(r, "request-id", rid);
    return r;
}

static struct resp *
graph_429(double retry_after)
{
    struct resp *r = resp_new(429, JSON_CT);
    char rid[37], date[32], ra[32];

    rand_guid(rid);
    graph_date(date, sizeof date);
    resp_json(r, json_pack("{s:{s:s, s:{s:s, s:s, s:s, s:s, s:s}, s:s}}", "error", "code",
                           "TooManyRequests", "innerError", "code", "429", "date", date, "message",
                           "Please retry after", "request-id", rid, "status", "429", "message",
                           "Please retry again later."));
    if (retry_after >= 0) {
        snprintf(ra, sizeof ra, "%.3f", retry_after);
        resp_hdr(r, "Retry-After", ra);
    }
    resp_hdr(r, "request-id", rid);
    return r;
}

static struct resp *
pc_error(int status, const char *code, const char *desc)
{
    struct resp *r = resp_new(status, JSON_CT);

    resp_json(r, json_pack("{s:s, s:s, s:[], s:s}", "code", code, "description", desc, "data",
                           "source", "PartnerFD"));
    return r;
}

static struct resp *
pc_429(int seconds)
{
    struct resp *r = resp_new(429, JSON_CT);
    char msg[96], ra[16];

    snprintf(msg, sizeof msg, "Rate limit is exceeded. Try again in %d seconds.", seconds);
    resp_json(r, json_pack("{s:i, s:s}", "statusCode", 429, "message", msg));
    snprintf(ra, sizeof ra, "%d", seconds);
    resp_hdr(r, "Retry-After", ra);
    return r;
}

/* --- statistics, faults, throttling (all under g.mu) --------------------------------------- */

static uint64_t
stat_hash_of(size_t i)
{
    return str_hash(g.stats[i].route, g.stats[i].tenant);
}

static uint64_t
win_hash_of(size_t i)
{
    return str_hash(g.wins[i].key, NULL);
}

static void
stat_count(enum route rt, const char *tenant, int throttled)
{
    const char *rn = route_names[rt];

    if (tenant == NULL || *tenant == '\0')
        tenant = "-";
    pthread_mutex_lock(&g.mu);
    g.total_requests++;
    g.throttled += throttled != 0;
    uint64_t h = str_hash(rn, tenant);
    size_t i = g.nstats;
    for (size_t j = g.stat_idx.cap ? (size_t)h & (g.stat_idx.cap - 1) : 0;
         g.stat_idx.cap && g.stat_idx.slot[j]; j = (j + 1) & (g.stat_idx.cap - 1)) {
        size_t p = g.stat_idx.slot[j] - 1;
        if (strcmp(g.stats[p].route, rn) == 0 && strcmp(g.stats[p].tenant, tenant) == 0) {
            i = p;
            break;
        }
    }
    if (i == g.nstats) {
        if (g.nstats == g.capstats) {
            g.capstats = g.capstats ? g.capstats * 2 : 64;
            g.stats = xrealloc(g.stats, g.capstats * sizeof(*g.stats));
        }
        memset(&g.stats[i], 0, sizeof g.stats[i]);
        snprintf(g.stats[i].route, sizeof g.stats[i].route, "%s", rn);
        snprintf(g.stats[i].tenant, sizeof g.stats[i].tenant, "%s", tenant);
        g.nstats++;
        sidx_reserve(&g.stat_idx, g.nstats, stat_hash_of);
        sidx_put(&g.stat_idx, h, i);
    }
    g.stats[i].count++;
    pthread_mutex_unlock(&g.mu);
}

static void
reqlog_copy(char *dst, size_t cap, struct MHD_Connection *c, const char *name)
{
    const char *v = c != NULL ? MHD_lookup_connection_value(c, MHD_HEADER_KIND, name) : NULL;

    snprintf(dst, cap, "%s", v != NULL && strlen(v) < cap ? v : v != NULL ? "(too long)" : "");
}

/* Empties the log and turns it on or off. Caller holds g.mu. */
static void
reqlog_clear(int on)
{
    g.reqlog_seq = 0;
    g.reqlog_t0 = clock_mono_ms();
    g.reqlog_off = !on;
}

/* Records one answered request, with the support headers it carried so tests can check that a
 * client sends them (and reuses MS-RequestId on a retry, as Partner Center asks). `c` is NULL for
 * a $batch item: its headers are the batch's. */
static void
reqlog_add(struct MHD_Connection *c, enum route rt, const char *tenant, const char *method,
           const struct resp *r)
{
    struct reqlog_ent e;

    memset(&e, 0, sizeof e);
    e.route = (unsigned char)rt;
    snprintf(e.tenant, sizeof e.tenant, "%s", tenant != NULL ? tenant : "-");
    snprintf(e.method, sizeof e.method, "%s", method != NULL ? method : "");
    e.status = r->status;
    e.batch_item = c == NULL;
    for (int i = 0; i < r->nhdrs; i++)
        e.retry_after |= strcmp(r->hdrs[i].name, "Retry-After") == 0;
    reqlog_copy(e.client_request_id, sizeof e.client_request_id, c, "client-request-id");
    reqlog_copy(e.ms_request_id, sizeof e.ms_request_id, c, "MS-RequestId");
    reqlog_copy(e.ms_correlation_id, sizeof e.ms_correlation_id, c, "MS-CorrelationId");
    reqlog_copy(e.ms_contract_version, sizeof e.ms_contract_version, c, "MS-Contract-Version");
    pthread_mutex_lock(&g.mu);
    if (!g.reqlog_off) {
        if (g.reqlog == NULL) {
            g.reqlog = xcalloc(SIM_REQLOG_MAX, sizeof *g.reqlog);
            if (g.reqlog_seq == 0)
                g.reqlog_t0 = clock_mono_ms();
        }
        e.ms = clock_mono_ms() - g.reqlog_t0;
        e.seq = ++g.reqlog_seq;
        g.reqlog[(e.seq - 1) % SIM_REQLOG_MAX] = e;
    }
    pthread_mutex_unlock(&g.mu);
}

static json_t *
reqlog_json(void)
{
    json_t *a = json_array(), *o;
    uint64_t first;

    pthread_mutex_lock(&g.mu);
    first = g.reqlog_seq > SIM_REQLOG_MAX ? g.reqlog_seq - SIM_REQLOG_MAX : 0;
    for (uint64_t s = first; g.reqlog != NULL && s < g.reqlog_seq; s++) {
        const struct reqlog_ent *e = &g.reqlog[s % SIM_REQLOG_MAX];

        json_array_append_new(
            a,
            json_pack("{s:I, s:I, s:s, s:s, s:s, s:i, s:b, s:b, s:s, s:s, s:s, s:s}", "seq",
                      (json_int_t)e->seq, "ms", (json_int_t)e->ms, "route", route_names[e->route],
                      "tenant", e->tenant, "method", e->method, "status", e->status, "retry_after",
                      e->retry_after, "batch_item", e->batch_item, "client_request_id",
                      e->client_request_id, "ms_request_id", e->ms_request_id, "ms_correlation_id",
                      e->ms_correlation_id, "ms_contract_version", e->ms_contract_version));
    }
    o = json_pack("{s:b, s:I, s:o}", "enabled", !g.reqlog_off, "dropped", (json_int_t)first,
                  "requests", a);
    pthread_mutex_unlock(&g.mu);
    return o;
}

/* Finds and consumes a matching fault; copies it to *out. Returns 1 when one applies. */
static int
fault_take(enum route rt, const char *tenant, int page, struct simw_fault *out)
{
    struct simworld *w = g.w;
    int hit = 0;

    pthread_mutex_lock(&g.mu);
    for (size_t i = 0; i < w->nfaults; i++) {
        struct simw_fault *f = &w->faults[i];
        if (f->remaining == 0)
            continue;
        if (strcmp(f->route, "*") != 0 && strcmp(f->route, route_names[rt]) != 0 &&
            !(in_batch_item && strcmp(f->route, "batch_item") == 0))
            continue;
        if (strcmp(f->tenant, "*") != 0 && (tenant == NULL || strcasecmp(f->tenant, tenant) != 0))
            continue;
        if (f->page > 0 && f->page != page)
            continue;
        if (f->until_ms > 0 && clock_mono_ms() >= f->until_ms)
            continue;
        /* A share of the matching requests, drawn in arrival order from the fault's seeded
         * generator: Intune's 429s without Retry-After come at a rate (MSEndpointMgr "A
         * beginners guide to Microsoft Graph API rate limiting in Intune"). */
        if (f->rate > 0 && (double)simw_rand_range(&f->rng, 1000000) >= f->rate * 1000000.0)
            continue;
        if (f->remaining > 0)
            f->remaining--;
        *out = *f;
        hit = 1;
        break;
    }
    pthread_mutex_unlock(&g.mu);
    return hit;
}

/* Fixed-window counter; returns seconds to wait (> 0) when over the limit, else 0. */
enum throttle_kind { TH_INTUNE, TH_GLOBAL, TH_PC, TH_DAPPS, TH_TENANT };

/* `others`: requests other apps make at the start of each window (TH_TENANT only). */
static double
throttle_hit(const char *key, enum throttle_kind kind, long others)
{
    int64_t now = clock_mono_ms();
    double wait = 0;
    size_t i;
    long limit, window_ms;

    pthread_mutex_lock(&g.mu);
    limit = kind == TH_INTUNE   ? g.intune_limit
            : kind == TH_GLOBAL ? g.global_limit
            : kind == TH_DAPPS  ? g.dapps_limit
            : kind == TH_TENANT ? g.tenant_limit
                                : g.pc_limit;
    window_ms = kind == TH_INTUNE || kind == TH_DAPPS || kind == TH_TENANT ? g.intune_window_ms
                : kind == TH_GLOBAL                                        ? g.global_window_ms
                                                                           : g.pc_window_ms;
    if (!g.throttle || limit <= 0) {
        pthread_mutex_unlock(&g.mu);
        return 0;
    }
    uint64_t h = str_hash(key, NULL);
    i = g.nwins;
    for (size_t j = g.win_idx.cap ? (size_t)h & (g.win_idx.cap - 1) : 0;
         g.win_idx.cap && g.win_idx.slot[j]; j = (j + 1) & (g.win_idx.cap - 1)) {
        size_t p = g.win_idx.slot[j] - 1;
        if (strcmp(g.wins[p].key, key) == 0) {
            i = p;
            break;
        }
    }
    if (i == g.nwins) {
        if (g.nwins == g.capwins) {
            g.capwins = g.capwins ? g.capwins * 2 : 64;
            g.wins = xrealloc(g.wins, g.capwins * sizeof(*g.wins));
        }
        memset(&g.wins[i], 0, sizeof g.wins[i]);
        snprintf(g.wins[i].key, sizeof g.wins[i].key, "%s", key);
        g.wins[i].start_ms = now;
        g.wins[i].count = kind == TH_TENANT ? others : 0;
        g.nwins++;
        sidx_reserve(&g.win_idx, g.nwins, win_hash_of);
        sidx_put(&g.win_idx, h, i);
    }
    struct throttle_win *tw = &g.wins[i];
    if (now - tw->start_ms >= window_ms) {
        tw->start_ms = now;
        tw->count = kind == TH_TENANT ? others : 0; /* the tenant's other apps */
    }
    /* usage keeps accruing while throttled, as Microsoft documents */
    tw->count++;
    if (tw->count > limit) {
        wait = (double)(tw->start_ms + window_ms - now) / 1000.0;
        if (wait < 0.001)
            wait = 0.001;
    }
    pthread_mutex_unlock(&g.mu);
    return wait;
}

/* --- sending ------------------------------------------------------------------------------- */

struct slow_src {
    char *body;
    size_t len;
    size_t limit; /* bytes to send before failing (drop) */
    int slow;
    long rate_bps; /* bytes per second, 0 = no limit */
};

static ssize_t
slow_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct slow_src *s = cls;
    size_t n;

    if (pos >= s->limit)
        return s->limit < s->len ? MHD_CONTENT_READER_END_WITH_ERROR
                                 : MHD_CONTENT_READER_END_OF_STREAM;
    n = s->limit - (size_t)pos;
    if (s->slow) {
        if (n > 256)
            n = 256;
        usleep(100 * 1000);
    }
    if (n > max)
        n = max;
    if (s->rate_bps > 0) { /* at most a tenth of a second's worth, then its time */
        size_t step = s->rate_bps >= 10 ? (size_t)s->rate_bps / 10 : 1;

        if (n > step)
            n = step;
        usleep((useconds_t)((uint64_t)n * 1000000u / (uint64_t)s->rate_bps));
    }
    memcpy(buf, s->body + pos, n);
    return (ssize_t)n;
}

static void
slow_free(void *cls)
{
    struct slow_src *s = cls;

    free(s->body);
    free(s);
}

static enum MHD_Result
queue_resp(struct MHD_Connection *c, struct resp *r)
{
    struct MHD_Response *mr;
    enum MHD_Result ret;

    if (r->mode == SIMW_FAULT_DROP || r->mode == SIMW_FAULT_SLOW || r->rate_bps > 0 ||
        r->drop_at > 0) {
        struct slow_src *s = xcalloc(1, sizeof(*s));
        s->body = r->body;
        s->len = r->len;
        s->limit = r->mode == SIMW_FAULT_DROP ? r->len / 2 : r->len;
        if (r->drop_at > 0 && r->drop_at < s->limit)
            s->limit = r->drop_at;
        s->slow = r->mode == SIMW_FAULT_SLOW;
        s->rate_bps = r->rate_bps;
        r->body = NULL;
        mr = MHD_create_response_from_callback(s->len, s->rate_bps > 0 ? 65536 : 1024, slow_reader,
                                               s, slow_free);
    } else {
        size_t len = r->len;
        if (r->mode == SIMW_FAULT_BOM && r->body != NULL) {
            char *b = xmalloc(r->len + 3);
            memcpy(b, "\xEF\xBB\xBF", 3);
            memcpy(b + 3, r->body, r->len);
            free(r->body);
            r->body = b;
            r->len += 3;
            len = r->len;
        }
        if (r->mode == SIMW_FAULT_TRUNCATE)
            len = r->len / 2;
        mr = MHD_create_response_from_buffer(len, r->body ? r->body : (char *)"",
                                             r->body ? MHD_RESPMEM_MUST_FREE
                                                     : MHD_RESPMEM_PERSISTENT);
        r->body = NULL;
    }
    if (mr == NULL) {
        resp_free(r);
        return MHD_NO;
    }
    if (r->ctype)
        MHD_add_response_header(mr, "Content-Type", r->ctype);
    for (int i = 0; i < r->nhdrs; i++)
        MHD_add_response_header(mr, r->hdrs[i].name, r->hdrs[i].value);
    MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
    if (r->mode == SIMW_FAULT_DROP || r->drop_at > 0)
        MHD_add_response_header(mr, "Connection", "close");
    ret = MHD_queue_response(c, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    resp_free(r);
    return ret;
}

static void *
delay_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g.dmu);
    while (!g.stopping) {
        int64_t now = clock_mono_ms(), next = now + 1000;
        struct req **pp = &g.delayed;
        while (*pp) {
            struct req *q = *pp;
            if (q->due_ms <= now) {
                *pp = q->next_delayed;
                q->next_delayed = NULL;
                MHD_resume_connection(q->conn);
                continue;
            }
            if (q->due_ms < next)
                next = q->due_ms;
            pp = &q->next_delayed;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t wait = next - now;
        ts.tv_sec += (time_t)(wait / 1000);
        ts.tv_nsec += (long)(wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g.dcv, &g.dmu, &ts);
    }
    /* resume everything so MHD can shut down */
    while (g.delayed) {
        struct req *q = g.delayed;
        g.delayed = q->next_delayed;
        MHD_resume_connection(q->conn);
    }
    pthread_mutex_unlock(&g.dmu);
    return NULL;
}

static enum MHD_Result
send_resp(struct MHD_Connection *c, struct req *q, struct resp *r)
{
    int delay = r->delay_ms + __atomic_load_n(&g.latency_ms, __ATOMIC_RELAXED);

    q->done = 1;
    if (delay > 0) {
        pthread_mutex_lock(&g.dmu);
        /* once stopping, nothing is suspended any more: MHD must not stop with suspended
         * connections */
        if (!g.stopping) {
            q->pending = r;
            q->conn = c;
            q->due_ms = clock_mono_ms() + delay;
            MHD_suspend_connection(c);
            q->next_delayed = g.delayed;
            g.delayed = q;
            pthread_cond_signal(&g.dcv);
            pthread_mutex_unlock(&g.dmu);
            return MHD_YES;
        }
        pthread_mutex_unlock(&g.dmu);
    }
    return queue_resp(c, r);
}

/* Applies an injected fault to the response about to be built. Returns a replacement response
 * (error kinds) or NULL and sets mode/delay on *mode_out. */
static struct resp *
fault_apply(const struct simw_fault *f, int graph, enum simw_fault_kind *mode, int *delay)
{
    switch (f->kind) {
    case SIMW_FAULT_STATUS: {
        int st = f->status ? f->status : 500;
        const char *code = f->code[0]  ? f->code
                           : st == 503 ? "ServiceUnavailable"
                           : st == 403 ? "Forbidden"
                           : st == 401 ? "InvalidAuthenticationToken"
                           : st == 404 ? "ResourceNotFound"
                           : st == 400 ? "BadRequest"
                                       : "InternalServerError";
        const char *msg = f->message[0] ? f->message : "An internal server error occurred.";
        struct resp *r = graph ? graph_error(st, code, msg) : pc_error(st, code, msg);
        if (st == 503 && f->retry_after >= 0) {
            char ra[32];
            snprintf(ra, sizeof ra, "%g", f->retry_after);
            resp_hdr(r, "Retry-After", ra);
        }
        if (f->bom)
            r->mode = SIMW_FAULT_BOM;
        return r;
    }
    case SIMW_FAULT_429:
        if (graph) {
            struct resp *r = graph_429(f->retry_after);
            if (f->bom)
                r->mode = SIMW_FAULT_BOM;
            return r;
        }
        {
            struct resp *r = pc_429(f->retry_after < 0 ? 1 : (int)(f->retry_after + 0.999));
            if (f->retry_after < 0) {
                free(r->hdrs[0].value);
                r->nhdrs = 0;
            }
            if (f->bom)
                r->mode = SIMW_FAULT_BOM;
            return r;
        }
    case SIMW_FAULT_BOM:
        /* Partner Center answers (and Graph error bodies) that start with a UTF-8 byte-order
         * mark: Azure/msrest-for-python #144; microsoftgraph/microsoft-graph-docs #679;
         * Azure/azure-sdk-for-js #6780. */
        *mode = f->kind;
        return NULL;
    case SIMW_FAULT_LATENCY:
        *delay = f->latency_ms;
        return NULL;
    case SIMW_FAULT_DROP:
    case SIMW_FAULT_TRUNCATE:
    case SIMW_FAULT_SLOW:
        *mode = f->kind;
        return NULL;
    case SIMW_FAULT_SHORT:
    case SIMW_FAULT_RENAME: /* listing faults: graph_request applies them */
    case SIMW_FAULT_NONE:
        break;
    }
    return NULL;
}

/* --- Entra tokens -------------------------------------------------------------------------- */

static struct resp *aad_error(int status, const char *error, long code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static struct resp *
aad_error(int status, const char *error, long code, const char *fmt, ...)
{
    struct resp *r = resp_new(status, JSON_CT);
    char trace[37], corr[37], ts[32], msg[768], desc[1024], uri[96];
    va_list ap;
    time_t t = time(NULL);
    struct tm tm;

    rand_guid(trace);
    rand_guid(corr);
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%SZ", &tm);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(desc, sizeof desc,
             "AADSTS%ld: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", code, msg,
             trace, corr, ts);
    snprintf(uri, sizeof uri, "https://login.microsoftonline.com/error?code=%ld", code);
    resp_json(r, json_pack("{s:s, s:s, s:[I], s:s, s:s, s:s, s:s}", "error", error,
                           "error_description", desc, "error_codes", (json_int_t)code, "timestamp",
                           ts, "trace_id", trace, "correlation_id", corr, "error_uri", uri));
    resp_hdr(r, "Cache-Control", "no-store, no-cache");
    return r;
}

struct form {
    char *kv[16][2];
    int n;
};

static void
form_parse(char *body, struct form *f)
{
    char *save = NULL;

    f->n = 0;
    for (char *p = body; p && *p && f->n < 16; p = save) {
        char *amp = strchr(p, '&');
        save = amp ? amp + 1 : NULL;
        if (amp)
            *amp = '\0';
        char *eq = strchr(p, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        if (simtok_form_decode(p) != ERR_OK || simtok_form_decode(eq + 1) != ERR_OK)
            continue;
        f->kv[f->n][0] = p;
        f->kv[f->n][1] = eq + 1;
        f->n++;
    }
}

static const char *
form_get(const struct form *f, const char *k)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->kv[i][0], k) == 0)
            return f->kv[i][1];
    return NULL;
}

/* Normalises a resource / scope into an audience: "https://graph.microsoft.com/.default" and
 * "https://graph.microsoft.com/" both become SIM_GRAPH_AUD. NULL when unknown. */
/* Graph's audience in each national cloud (learn.microsoft.com/graph/deployments), and
 * 21Vianet's Partner Center (partner-center-rest-urls). */
static const struct {
    const char *aud, *cloud;
} national_aud[] = {
    {"https://graph.microsoft.us", "usgov"},
    {"https://dod-graph.microsoft.us", "usgovdod"},
    {"https://microsoftgraph.chinacloudapi.cn", "china"},
    {"https://partner.partnercenterapi.microsoftonline.cn", "china"},
};

static const char *
audience_of(const char *v, int v2, const char **cloud)
{
    char tmp[256];
    size_t n;

    if (v == NULL)
        return NULL;
    snprintf(tmp, sizeof tmp, "%s", v);
    n = strlen(tmp);
    if (v2) {
        if (n < 9 || strcmp(tmp + n - 9, "/.default") != 0)
            return NULL;
        tmp[n - 9] = '\0';
    } else if (n > 0 && tmp[n - 1] == '/') {
        tmp[n - 1] = '\0';
    }
    *cloud = "";
    for (size_t i = 0; i < sizeof national_aud / sizeof national_aud[0]; i++) {
        if (strcasecmp(tmp, national_aud[i].aud) == 0) {
            *cloud = national_aud[i].cloud;
            return strstr(national_aud[i].aud, "partner") != NULL ? SIM_PC_AUD : SIM_GRAPH_AUD;
        }
    }
    if (strcasecmp(tmp, SIM_GRAPH_AUD) == 0 ||
        strcasecmp(tmp, "00000003-0000-0000-c000-000000000000") == 0)
        return SIM_GRAPH_AUD;
    if (strcasecmp(tmp, SIM_PC_AUD) == 0 ||
        strcasecmp(tmp, "fa3d9a0c-3fb0-42cc-9193-47c7ecd2edbd") == 0)
        return SIM_PC_AUD;
    return NULL;
}

static struct resp *
handle_token(struct MHD_Connection *c, const char *tenant_in, int v2, struct req *q,
             const char **tenant_out)
{
    struct simworld *w = g.w;
    struct form f;
    const char *grant, *client_id, *secret, *scope, *aud, *aud_cloud = "";
    char basic_id[256] = "", basic_secret[512] = "", tidbuf[40];
    int partner_tenant = 0, is_partner_app, is_sync_app, chk;
    struct simtenant *t = NULL;
    struct resp *r = NULL;
    int64_t now = clock_now();
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");

    form_parse(q->body.data ? q->body.data : (char *)"", &f);
    grant = form_get(&f, "grant_type");
    client_id = form_get(&f, "client_id");
    secret = form_get(&f, "client_secret");
    scope = form_get(&f, v2 ? "scope" : "resource");

    if (auth && strncasecmp(auth, "Basic ", 6) == 0) {
        char dec[800];
        if (simtok_b64_decode(auth + 6, dec, sizeof dec) == ERR_OK) {
            char *colon = strchr(dec, ':');
            if (colon) {
                *colon = '\0';
                snprintf(basic_id, sizeof basic_id, "%s", dec);
                snprintf(basic_secret, sizeof basic_secret, "%s", colon + 1);
                if (client_id == NULL)
                    client_id = basic_id;
                if (secret == NULL)
                    secret = basic_secret;
            }
        }
    }

    pthread_rwlock_rdlock(&w->lock);
    if (strcasecmp(tenant_in, "common") == 0 || strcasecmp(tenant_in, "consumers") == 0 ||
        strcasecmp(tenant_in, "organizations") == 0) {
        r = aad_error(400, "invalid_request", 9001023,
                      "The grant type isn't supported over the /common or /consumers endpoints. "
                      "Please use the /organizations or tenant-specific endpoint.");
        goto out;
    }
    if (strcasecmp(tenant_in, w->partner_tenant_id) == 0 ||
        strcasecmp(tenant_in, w->partner_domain) == 0) {
        partner_tenant = 1;
        snprintf(tidbuf, sizeof tidbuf, "%s", w->partner_tenant_id);
    } else {
        t = simw_tenant_by_id(w, tenant_in);
        if (t == NULL || !t->exists) {
            r = aad_error(400, "invalid_tenant", 90002,
                          "Tenant '%.64s' not found. Check to make sure you have the correct "
                          "tenant ID and are signing into the correct cloud. Check with your "
                          "subscription administrator, this may happen if there are no active "
                          "subscriptions for the tenant.",
                          tenant_in);
            goto out;
        }
        snprintf(tidbuf, sizeof tidbuf, "%s", t->id);
    }
    *tenant_out = partner_tenant ? w->partner_tenant_id : t->id;
    if (grant == NULL) {
        r = aad_error(400, "invalid_request", 900144,
                      "The request body must contain the following parameter: 'grant_type'.");
        goto out;
    }
    if (strcmp(grant, "client_credentials") != 0) {
        r = aad_error(400, "unsupported_grant_type", 70003,
                      "The app requested an unsupported grant type '%.32s'.", grant);
        goto out;
    }
    if (client_id == NULL || *client_id == '\0') {
        r = aad_error(400, "invalid_request", 900144,
                      "The request body must contain the following parameter: 'client_id'.");
        goto out;
    }
    is_partner_app = strcasecmp(client_id, w->partner_app.id) == 0;
    is_sync_app = strcasecmp(client_id, w->sync_app.id) == 0;
    if ((!is_partner_app && !is_sync_app) || (is_partner_app && !partner_tenant) ||
        (is_sync_app && !partner_tenant && !t->consented)) {
        r = aad_error(400, "unauthorized_client", 700016,
                      "Application with identifier '%.64s' was not found in the directory "
                      "'%s'. This can happen if the application has not been installed by the "
                      "administrator of the tenant or consented to by any user in the tenant. "
                      "You may have sent your authentication request to the wrong tenant.",
                      client_id, partner_tenant ? w->partner_name : t->name);
        goto out;
    }
    if (scope == NULL) {
        r = v2 ? aad_error(400, "invalid_request", 900144,
                           "The request body must contain the following parameter: 'scope'.")
               : aad_error(400, "invalid_request", 900144,
                           "The request body must contain the following parameter: "
                           "'resource'.");
        goto out;
    }
    if (secret == NULL || *secret == '\0') {
        r = aad_error(401, "invalid_client", 7000218,
                      "The request body must contain the following parameter: "
                      "'client_assertion' or 'client_secret'.");
        goto out;
    }
    chk = simw_secret_check(is_partner_app ? &w->partner_app : &w->sync_app, secret, now);
    if (chk == 0 && secret == basic_secret) {
        /* HTTP Basic credentials are form-encoded before base64 (RFC 6749 2.3.1) */
        char dec[512];
        snprintf(dec, sizeof dec, "%s", basic_secret);
        if (simtok_form_decode(dec) == ERR_OK)
            chk = simw_secret_check(is_partner_app ? &w->partner_app : &w->sync_app, dec, now);
    }
    if (chk == 0) {
        r = aad_error(401, "invalid_client", 7000215,
                      "Invalid client secret provided. Ensure the secret being sent in the "
                      "request is the client secret value, not the client secret ID, for a "
                      "secret added to app '%s'.",
                      is_partner_app ? w->partner_app.id : w->sync_app.id);
        goto out;
    }
    if (chk < 0) {
        r = aad_error(401, "invalid_client", 7000222,
                      "The provided client secret keys for app '%s' are expired. Visit the "
                      "Azure portal to create new keys for your app: "
                      "https://aka.ms/NewClientSecret, or consider using certificate "
                      "credentials for added security: https://aka.ms/certCreds.",
                      is_partner_app ? w->partner_app.id : w->sync_app.id);
        goto out;
    }
    aud = audience_of(scope, v2, &aud_cloud);
    if (aud == NULL || (is_partner_app && strcmp(aud, SIM_PC_AUD) != 0) ||
        (is_sync_app && strcmp(aud, SIM_GRAPH_AUD) != 0)) {
        if (v2)
            r = aad_error(400, "invalid_scope", 70011,
                          "The provided request must include a 'scope' input parameter. The "
                          "provided value for the input parameter 'scope' is not valid. The "
                          "scope %.128s is not valid.",
                          scope);
        else
            r = aad_error(400, "invalid_resource", 500011,
                          "The resource principal named %.128s was not found in the tenant "
                          "named %s. This can happen if the application has not been installed "
                          "by the administrator of the tenant or consented to by any user in "
                          "the tenant. You might have sent your authentication request to the "
                          "wrong tenant.",
                          scope, partner_tenant ? w->partner_name : t->name);
        goto out;
    }
    if (!partner_tenant && strcmp(aud, SIM_GRAPH_AUD) == 0 && strcmp(aud_cloud, t->cloud) != 0) {
        /* set_tenant cloud: the tenant lives in another cloud than the audience asked for */
        r = aad_error(400, "invalid_request", 900382,
                      "Confidential Client is not supported in Cross Cloud request.");
        goto out;
    }
    {
        char *tok = simtok_issue(tidbuf, client_id, aud, now, SIM_TOKEN_LIFE);
        r = resp_new(200, JSON_CT);
        if (v2) {
            resp_json(r, json_pack("{s:s, s:i, s:i, s:s}", "token_type", "Bearer", "expires_in",
                                   SIM_TOKEN_LIFE, "ext_expires_in", SIM_TOKEN_LIFE, "access_token",
                                   tok));
        } else {
            char ein[16], eon[24], nbf[24];
            snprintf(ein, sizeof ein, "%d", SIM_TOKEN_LIFE);
            snprintf(eon, sizeof eon, "%lld", (long long)(now + SIM_TOKEN_LIFE));
            snprintf(nbf, sizeof nbf, "%lld", (long long)now);
            resp_json(r, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "token_type", "Bearer",
                                   "expires_in", ein, "ext_expires_in", ein, "expires_on", eon,
                                   "not_before", nbf, "resource", scope, "access_token", tok));
        }
        resp_hdr(r, "Cache-Control", "no-store, no-cache");
        free(tok);
    }
out:
    pthread_rwlock_unlock(&w->lock);
    return r;
}

/* An injected Entra error: the `error` string and default status follow the code. */
static struct resp *
aad_fault(long code, int status, const char *message)
{
    const char *error = "invalid_request";
    int st = 400;

    switch (code) {
    case 7000215:
    case 7000222:
    case 7000218:
        error = "invalid_client";
        st = 401;
        break;
    case 700016:
        error = "unauthorized_client";
        break;
    case 90002:
        error = "invalid_tenant";
        break;
    case 70011:
        error = "invalid_scope";
        break;
    case 53003:
        error = "access_denied";
        break;
    case 7000112:
    case 70001:
        error = "unauthorized_client";
        break;
    case 7000229: /* no service principal in the app's home tenant (Azure/azure-sdk-for-net #46762)
                   */
        error = "invalid_client";
        break;
    case 500011: /* resource principal not found in the tenant */
        error = "invalid_resource";
        break;
    default:
        break;
    }
    return aad_error(status ? status : st, error, code, "%s",
                     message && message[0] ? message : "Injected error.");
}

static struct resp *
handle_openid(const char *tenant)
{
    struct resp *r;
    char base[256], tok[300], iss[300], auth[300], jwks[300];

    pthread_rwlock_rdlock(&g.w->lock);
    int known =
        strcasecmp(tenant, g.w->partner_tenant_id) == 0 || simw_tenant_by_id(g.w, tenant) != NULL;
    pthread_rwlock_unlock(&g.w->lock);
    if (!known)
        return aad_error(400, "invalid_tenant", 90002,
                         "Tenant '%.64s' not found. Check to make sure you have the correct "
                         "tenant ID and are signing into the correct cloud.",
                         tenant);
    snprintf(base, sizeof base, "%s/login/%s", g.base, tenant);
    snprintf(tok, sizeof tok, "%s/oauth2/v2.0/token", base);
    snprintf(auth, sizeof auth, "%s/oauth2/v2.0/authorize", base);
    snprintf(iss, sizeof iss, "%s/login/%s/v2.0", g.base, tenant);
    snprintf(jwks, sizeof jwks, "%s/login/%s/discovery/v2.0/keys", g.base, tenant);
    r = resp_new(200, JSON_CT);
    resp_json(r,
              json_pack("{s:s, s:[s,s,s], s:s, s:[s], s:[s,s,s], s:s, s:[s], s:s, s:s, s:[s]}",
                        "token_endpoint", tok, "token_endpoint_auth_methods_supported",
                        "client_secret_post", "private_key_jwt", "client_secret_basic", "jwks_uri",
                        jwks, "response_modes_supported", "query", "subject_types_supported",
                        "pairwise", "public", "x", "issuer", iss, "grant_types_supported",
                        "client_credentials", "authorization_endpoint", auth, "tenant_region_scope",
                        "NA", "id_token_signing_alg_values_supported", "RS256"));
    return r;
}

/* --- bearer checks -------------------------------------------------------------------------- */

/* Checks the bearer token for audience `aud`; on success fills *cl. Otherwise returns the
 * error response of that service. */
static struct resp *
bearer_check(struct MHD_Connection *c, const char *aud, struct simtok_claims *cl)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    int graph = strcmp(aud, SIM_GRAPH_AUD) == 0;
    const char *why = NULL;
    int rc;

    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 || auth[7] == '\0') {
        why = "Access token is empty.";
    } else {
        /* one verified token per thread: clients reuse theirs for many requests */
        static __thread char last_tok[4200];
        static __thread struct simtok_claims last_cl;
        int64_t now = clock_now();
        size_t tl = strlen(auth + 7);
        if (tl < sizeof last_tok && last_cl.exp > now && memcmp(last_tok, auth + 7, tl + 1) == 0) {
            *cl = last_cl;
            rc = ERR_OK;
        } else {
            rc = simtok_verify(auth + 7, now, cl);
            if (rc == ERR_OK && tl < sizeof last_tok) {
                memcpy(last_tok, auth + 7, tl + 1);
                last_cl = *cl;
            }
        }
        if (rc == ERR_TIMEOUT)
            why = "Lifetime validation failed, the token is expired.";
        else if (rc != ERR_OK)
            why = "IDX14100: JWT is not well formed, there are no dots (.).";
        else if (strcmp(cl->aud, aud) != 0)
            why = "Access token validation failure. Invalid audience.";
    }
    if (why == NULL)
        return NULL;
    if (graph) {
        struct resp *r = graph_error(401, "InvalidAuthenticationToken", why);
        resp_hdr(r, "WWW-Authenticate",
                 "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/"
                 "oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"");
        return r;
    }
    struct resp *r = pc_error(401, "401", why);
    resp_hdr(r, "WWW-Authenticate", "OAuth realm=urn:cpsvc:cpid:memsync-sim");
    return r;
}

/* --- Partner Center ------------------------------------------------------------------------- */

static json_t *
pc_link(const char *uri)
{
    return json_pack("{s:s, s:s, s:[]}", "uri", uri, "method", "GET", "headers");
}

static json_t *
pc_customer_json(const struct simtenant *t, int full)
{
    char self[96], prof[128];
    json_t *cp, *cust;

    snprintf(self, sizeof self, "/customers/%s", t->id);
    snprintf(prof, sizeof prof, "/customers/%s/profiles/company", t->id);
    cp = json_pack("{s:s, s:s, s:s, s:{s:o}, s:{s:s}}", "tenantId", t->id, "domain",
                   t->initial_domain, "companyName", t->name, "links", "self", pc_link(prof),
                   "attributes", "objectType", "CustomerCompanyProfile");
    if (full) {
        /* address and email only come with a single-customer GET */
        json_object_set_new(cp, "address",
                            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "country", t->country,
                                      "region", "wa", "city", "Redmond", "addressLine1",
                                      "1 Main St", "postalCode", "98052", "phoneNumber",
                                      "4255550100"));
        json_object_set_new(cp, "email", json_string("admin@example.com"));
        /* keep links and attributes last, as Partner Center writes them */
        json_t *l = json_incref(json_object_get(cp, "links"));
        json_t *a = json_incref(json_object_get(cp, "attributes"));
        json_object_del(cp, "links");
        json_object_del(cp, "attributes");
        json_object_set_new(cp, "links", l);
        json_object_set_new(cp, "attributes", a);
    }
    cust = json_pack("{s:s, s:s, s:o}", "id", t->id, "commerceId", t->commerce_id, "companyProfile",
                     cp);
    if (full) {
        char bp[128];
        snprintf(bp, sizeof bp, "/customers/%s/profiles/billing", t->id);
        json_object_set_new(
            cust, "billingProfile",
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s, "
                      "s:s, s:s}, s:{s:o}, s:{s:s, s:s}}",
                      "id", t->commerce_id, "firstName", "Admin", "lastName", "Contact", "email",
                      "admin@example.com", "culture", "en-US", "language", "en", "companyName",
                      t->name, "defaultAddress", "country", t->country, "city", "Redmond", "state",
                      "WA", "addressLine1", "1 Main St", "postalCode", "98052", "firstName",
                      "Admin", "lastName", "Contact", "phoneNumber", "4255550100", "links", "self",
                      pc_link(bp), "attributes", "etag", "-4242348048554929329", "objectType",
                      "CustomerBillingProfile"));
    }
    json_object_set_new(cust, "relationshipToPartner", json_string("reseller"));
    if (full) {
        json_object_set_new(cust, "allowDelegatedAccess", json_boolean(1));
        json_object_set_new(cust, "customDomains",
                            json_pack("[s,s]", t->initial_domain, t->domain));
    }
    if (t->associated_partner[0])
        json_object_set_new(cust, "associatedPartnerId", json_string(t->associated_partner));
    json_object_set_new(cust, "links", json_pack("{s:o}", "self", pc_link(self)));
    json_object_set_new(cust, "attributes", json_pack("{s:s}", "objectType", "Customer"));
    return cust;
}

static struct resp *
pc_auth(struct MHD_Connection *c, struct simtok_claims *cl)
{
    struct resp *r = bearer_check(c, SIM_PC_AUD, cl);

    if (r)
        return r;
    if (strcasecmp(cl->tid, g.w->partner_tenant_id) != 0 ||
        strcasecmp(cl->appid, g.w->partner_app.id) != 0) {
        r = pc_error(403, "600001", "The partner tenant is not authorized for this resource.");
        return r;
    }
    return NULL;
}

static struct resp *
handle_customers(struct MHD_Connection *c, const char *rest)
{
    struct simworld *w = g.w;
    struct simtok_claims cl;
    struct resp *r = pc_auth(c, &cl);
    const char *size_s = arg_lookup(c, "size");
    const char *seek = arg_lookup(c, "seekOperation");
    const char *filter = arg_lookup(c, "filter");
    long size = SIM_PC_PAGE_DEF;
    int64_t off = 0;
    char ffield[32] = "", fvalue[256] = "";

    if (r)
        return r;
    if (filter) {
        /* {"Field":"CompanyName"|"Domain","Value":"...","Operator":"starts_with"} */
        json_t *fj = json_loads(filter, JSON_REJECT_DUPLICATES, NULL);
        const char *fd = json_string_value(json_object_get(fj, "Field"));
        const char *fv = json_string_value(json_object_get(fj, "Value"));
        const char *fo = json_string_value(json_object_get(fj, "Operator"));
        int ok = fd && fv && fo && strcmp(fo, "starts_with") == 0 && strlen(fv) < sizeof fvalue;
        if (ok) {
            snprintf(ffield, sizeof ffield, "%.31s", fd);
            snprintf(fvalue, sizeof fvalue, "%s", fv);
        }
        json_decref(fj);
        if (!ok)
            return pc_error(400, "400", "The filter is invalid.");
        if (strcmp(ffield, "IndirectReseller") == 0 ||
            strcmp(ffield, "IndirectCloudSolutionProvider") == 0)
            return pc_error(403, "403",
                            "This operation requires App+User credentials; app-only access is "
                            "not supported.");
        if (strcmp(ffield, "CompanyName") != 0 && strcmp(ffield, "Domain") != 0)
            return pc_error(400, "400", "The filter field is not supported.");
    }
    if (rest[0] == '/' && rest[1]) {
        /* GET /v1/customers/{id} */
        pthread_rwlock_rdlock(&w->lock);
        struct simtenant *t = simw_tenant_by_id(w, rest + 1);
        if (t && strcasecmp(t->id, rest + 1) == 0) {
            r = resp_new(200, JSON_CT);
            resp_json(r, pc_customer_json(t, 1));
        } else {
            r = pc_error(404, "2000", "Customer not found.");
        }
        pthread_rwlock_unlock(&w->lock);
        return r;
    }
    if (size_s) {
        char *end;
        size = strtol(size_s, &end, 10);
        if (*size_s == '\0' || *end != '\0' || size < 0)
            return pc_error(400, "400", "The size parameter is invalid.");
        if (size == 0)
            size = SIM_PC_PAGE_DEF;
        if (size > SIM_PC_PAGE_MAX)
            size = SIM_PC_PAGE_MAX;
    }
    if (seek) {
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "MS-ContinuationToken");
        int64_t v[1];
        if (strcasecmp(seek, "Next") != 0)
            return pc_error(400, "400", "Unsupported seek operation.");
        if (ct == NULL)
            return pc_error(400, "400",
                            "The continuation token header MS-ContinuationToken is required for "
                            "seek operations.");
        if (simtok_open_ints("pcct", ct, v, 1) != ERR_OK || v[0] < 0)
            return pc_error(400, "400", "The continuation token is invalid.");
        off = v[0];
    }
    json_t *items = json_array();
    size_t n = 0, end = (size_t)off + (size_t)size;
    pthread_rwlock_rdlock(&w->lock);
    /* n counts matching customers; items are those in [off, end) of the matching ones */
    for (size_t i = 0; i < w->ntenants; i++) {
        struct simtenant *t = w->tenants[i];
        if (ffield[0] && strncasecmp(strcmp(ffield, "Domain") == 0 ? t->initial_domain : t->name,
                                     fvalue, strlen(fvalue)) != 0)
            continue;
        if (n >= (size_t)off && n < end)
            json_array_append_new(items, pc_customer_json(t, 0));
        n++;
    }
    pthread_rwlock_unlock(&w->lock);
    if (end > n)
        end = n;
    struct buf fq;
    buf_init(&fq, 4096);
    if (filter) {
        (void)buf_addstr(&fq, "&filter=");
        (void)buf_add_urlenc(&fq, filter);
    }
    char self[4200];
    snprintf(self, sizeof self, "/v1/customers?size=%ld%s", size, buf_cstr(&fq));
    json_t *links = json_pack("{s:o}", "self", pc_link(self));
    if (end < n) {
        int64_t v[1] = {(int64_t)end};
        char *tok = simtok_seal_ints("pcct", v, 1);
        char next[4300];
        snprintf(next, sizeof next, "/v1/customers?size=%ld%s&seekOperation=Next", size,
                 buf_cstr(&fq));
        json_object_set_new(links, "next",
                            json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "uri", next, "method", "GET",
                                      "headers", "key", "MS-ContinuationToken", "value", tok));
        free(tok);
    }
    buf_free(&fq);
    r = resp_new(200, JSON_CT);
    resp_json(r, json_pack("{s:I, s:o, s:o, s:{s:s}}", "totalCount",
                           (json_int_t)json_array_size(items), "items", items, "links", links,
                           "attributes", "objectType", "Collection"));
    return r;
}

/* --- Graph ---------------------------------------------------------------------------------- */

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

/* Intune's 401 UnknownError for an authorization or licence failure: the message nests the
 * service's own error ({"ErrorCode":"Forbidden", ...}) and WWW-Authenticate names Intune's
 * realm. Sources: microsoftgraph/microsoft-graph-explorer-v4 #706;
 * microsoftgraph/microsoft-graph-docs-contrib #4528; AzureAD/microsoft-authentication-library-
 * for-js #7007, #7011 (Microsoft365DSC treats it as "tenant not registered for Intune"). */
static struct resp *
intune_401(void)
{
    char op[37], act[37], msg[512];
    json_t *hh, *inner, *outer;
    char *hs, *is, *os;
    struct resp *r;

    rand_guid(op);
    rand_guid(act);
    snprintf(msg, sizeof msg,
             "An error has occurred - Operation ID (for customer support): %s - Activity ID: %s - "
             "Url: https://fef.msua06.manage.microsoft.com/DeviceFE/StatelessDeviceFEService/"
             "deviceManagement/managedDevices?api-version=2024-09-10",
             op, act);
    hh = json_pack("{s:s}", "WWW-Authenticate",
                   "Bearer realm=\"urn:intune:service," SIM_INTUNE_REALM "\"");
    hs = json_dumps(hh, JSON_COMPACT);
    inner = json_pack("{s:i, s:s, s:s, s:n, s:s, s:s}", "_version", 3, "Message", msg,
                      "CustomApiErrorPhrase", "", "RetryAfter", "ErrorSourceService", "",
                      "HttpHeaders", hs);
    is = json_dumps(inner, JSON_INDENT(2));
    outer = json_pack("{s:s, s:s, s:n, s:n, s:n, s:[]}", "ErrorCode", "Forbidden", "Message", is,
                      "Target", "Details", "InnerError", "InstanceAnnotations");
    os = json_dumps(outer, JSON_COMPACT);
    r = graph_error(401, "UnknownError", os);
    resp_hdr(r, "WWW-Authenticate", "Bearer realm=\"urn:intune:service," SIM_INTUNE_REALM "\"");
    free(hs);
    free(is);
    free(os);
    json_decref(hh);
    json_decref(inner);
    json_decref(outer);
    return r;
}

static struct resp *
graph_intune_gate(struct gctx *x)
{
    if (x->t && x->t->intune_401 && (!x->t->intune_licensed || !x->t->permission))
        return intune_401();
    if (x->t && !x->t->intune_licensed)
        return graph_error(400, "BadRequest", "Request not applicable to target tenant.");
    if (x->t && !x->t->permission) {
        char op[37], act[37], msg[512];
        rand_guid(op);
        rand_guid(act);
        snprintf(msg, sizeof msg,
                 "Application is not authorized to perform this operation - Operation ID (for "
                 "customer support): %s - Activity ID: %s - Url: "
                 "https://fef.msua06.manage.microsoft.com/DeviceFE/StatelessDeviceFEService/"
                 "deviceManagement/managedDevices?api-version=2024-09-10 - "
                 "CustomApiErrorPhrase: ",
                 op, act);
        return graph_error(403, "Forbidden", msg);
    }
    return NULL;
}

static struct resp *
graph_organization(struct gctx *x)
{
    struct simworld *w = g.w;
    const char *id = x->partner ? w->partner_tenant_id : x->t->id;
    const char *name = x->partner ? w->partner_name : x->t->name;
    const char *initial = x->partner ? w->partner_domain : x->t->initial_domain;
    const char *dflt = x->partner ? w->partner_domain : x->t->domain;
    char ctx[256];
    json_t *plans = json_array();

    json_array_append_new(plans, json_pack("{s:s, s:s, s:s, s:s}", "assignedDateTime",
                                           "2024-01-15T10:00:00Z", "capabilityStatus", "Enabled",
                                           "service", "exchange", "servicePlanId",
                                           "efb87545-963c-4e0d-99df-69c6916d9eb0"));
    if (x->partner || x->t->intune_licensed) {
        json_array_append_new(plans, json_pack("{s:s, s:s, s:s, s:s}", "assignedDateTime",
                                               "2024-01-15T10:00:00Z", "capabilityStatus",
                                               "Enabled", "service", "SCO", "servicePlanId",
                                               "c1ec4a95-1f05-45b3-a911-aa3fa01094f5"));
    }
    json_t *domains = json_array();
    json_array_append_new(domains, json_pack("{s:s, s:b, s:b, s:s, s:s}", "capabilities",
                                             "Email, OfficeCommunicationsOnline", "isDefault",
                                             strcmp(dflt, initial) == 0, "isInitial", 1, "name",
                                             initial, "type", "Managed"));
    if (strcmp(dflt, initial) != 0)
        json_array_append_new(domains,
                              json_pack("{s:s, s:b, s:b, s:s, s:s}", "capabilities",
                                        "Email, OfficeCommunicationsOnline", "isDefault", 1,
                                        "isInitial", 0, "name", dflt, "type", "Managed"));
    json_t *org = json_pack(
        "{s:s, s:n, s:[s], s:s, s:n, s:s, s:s, s:s, s:s, s:n, s:s, s:s, s:s, s:n, s:o, s:o, "
        "s:[], s:[s]}",
        "id", id, "deletedDateTime", "businessPhones", "+1 425 555 0100", "city", "Redmond",
        "country", "countryLetterCode", x->partner ? "US" : x->t->country, "createdDateTime",
        "2019-03-14T09:21:07Z", "displayName", name, "postalCode", "98052", "preferredLanguage",
        "state", "WA", "street", "1 Main Street", "tenantType", "AAD", "onPremisesSyncEnabled",
        "assignedPlans", plans, "verifiedDomains", domains, "provisionedPlans",
        "technicalNotificationMails", "admin@example.com");
    snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#organization", g.base, x->ver);
    struct resp *r = resp_new(200, GRAPH_CT);
    resp_json(r, json_pack("{s:s, s:[o]}", "@odata.context", ctx, "value", org));
    return r;
}

/* Splits a $select into trimmed names and hands each to take(); a name take() refuses (-1) is
 * Graph's 400 naming it and type. NULL response on success. */
static struct resp *
select_each(const char *sel, const char *type, int (*take)(void *arg, const char *name), void *arg)
{
    char tmp[4096], *save = NULL;

    if (sel == NULL)
        return NULL;
    if (strlen(sel) >= sizeof tmp)
        return graph_error(400, "BadRequest", "The $select query option is too long.");
    snprintf(tmp, sizeof tmp, "%s", sel);
    for (char *p = strtok_r(tmp, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        while (*p == ' ')
            p++;
        char *e = p + strlen(p);
        while (e > p && e[-1] == ' ')
            *--e = '\0';
        if (*p == '\0')
            continue;
        if (take(arg, p) < 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "Could not find a property named '%.200s' on type '%s'.", p,
                     type);
            return graph_error(400, "BadRequest", msg);
        }
    }
    return NULL;
}

struct dev_select {
    uint64_t *mask;
    int *any;
    int beta;
};

static int
dev_select_take(void *arg, const char *name)
{
    struct dev_select *d = arg;
    int i = simw_prop_index(name);

    if (i < 0 && d->beta && simw_beta_index(name) >= 0) {
        d->mask[1] |= UINT64_C(1) << simw_beta_index(name);
        *d->any = 1;
        return 0;
    }
    if (i < 0)
        return -1;
    d->mask[i / 64] |= UINT64_C(1) << (i % 64);
    *d->any = 1;
    return 0;
}

/* Parses $select into a property bitmask. Returns NULL response on success. */
static struct resp *
parse_select(const char *sel, uint64_t mask[2], int *any, int beta, const char *type)
{
    struct dev_select d = {mask, any, beta};

    mask[0] = mask[1] = 0;
    *any = 0;
    return select_each(sel, type, dev_select_take, &d);
}

static void
context_url(struct buf *b, struct gctx *x, const char *what, const char *sel)
{
    (void)buf_printf(b, "%s/graph/%s/$metadata#%s", g.base, x->ver, what);
    if (sel && *sel)
        (void)buf_printf(b, "(%s)", sel);
}

/* A small $filter for managedDevices: clauses joined by "and", each `prop op literal`
 * (eq ne gt ge lt le) or `startswith(prop,'x')`; what third-party Intune code uses. */
enum fop { F_EQ, F_NE, F_GT, F_GE, F_LT, F_LE, F_SW };

struct fclause {
    int prop;
    enum fop op;
    int isnull;
    char str[256];
    int64_t num;
};

#define FILTER_MAX 8

static int
filter_literal(const char **pp, struct fclause *fc)
{
    const char *p = *pp;
    size_t n = 0;

    while (*p == ' ')
        p++;
    if (*p == '\'') {
        for (p++; *p; p++) {
            if (*p == '\'') {
                if (p[1] == '\'') {
                    p++;
                } else {
                    break;
                }
            }
            if (n + 1 >= sizeof fc->str)
                return ERR_PARSE;
            fc->str[n++] = *p;
        }
        if (*p != '\'')
            return ERR_PARSE;
        fc->str[n] = '\0';
        *pp = p + 1;
        return ERR_OK;
    }
    while (*p && *p != ' ' && *p != ')' && n + 1 < sizeof fc->str)
        fc->str[n++] = *p++;
    fc->str[n] = '\0';
    if (n == 0)
        return ERR_PARSE;
    if (strcmp(fc->str, "null") == 0)
        fc->isnull = 1;
    *pp = p;
    return ERR_OK;
}

static struct resp *
filter_parse(const char *f, struct fclause *cl, int *n)
{
    const char *p = f;

    *n = 0;
    if (f == NULL)
        return NULL;
    while (*p) {
        struct fclause *fc;
        char name[64];
        size_t k = 0;
        if (*n == FILTER_MAX)
            return graph_error(400, "BadRequest", "Too many clauses in $filter.");
        fc = &cl[(*n)++];
        memset(fc, 0, sizeof(*fc));
        while (*p == ' ')
            p++;
        if (strncasecmp(p, "startswith(", 11) == 0) {
            p += 11;
            while (*p && *p != ',' && k + 1 < sizeof name)
                name[k++] = *p++;
            name[k] = '\0';
            if (*p != ',')
                goto bad;
            p++;
            fc->op = F_SW;
            if (filter_literal(&p, fc) != ERR_OK || *p != ')')
                goto bad;
            p++;
        } else {
            static const char *const ops[] = {"eq", "ne", "gt", "ge", "lt", "le"};
            while (*p && *p != ' ' && k + 1 < sizeof name)
                name[k++] = *p++;
            name[k] = '\0';
            while (*p == ' ')
                p++;
            int op = -1;
            for (int i = 0; i < 6; i++)
                if (strncasecmp(p, ops[i], 2) == 0 && p[2] == ' ')
                    op = i;
            if (op < 0)
                goto bad;
            fc->op = (enum fop)op;
            p += 3;
            if (filter_literal(&p, fc) != ERR_OK)
                goto bad;
        }
        fc->prop = simw_prop_index(name);
        if (fc->prop < 0) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "Could not find a property named '%.64s' on type "
                     "'microsoft.graph.managedDevice'.",
                     name);
            return graph_error(400, "BadRequest", msg);
        }
        enum simw_kind kd = simw_props[fc->prop].kind;
        if (kd == SIMW_DATE && !fc->isnull) {
            if (clock_parse(fc->str, &fc->num) != ERR_OK)
                goto bad;
        } else if (kd == SIMW_INT64 && !fc->isnull) {
            char *end;
            fc->num = strtoll(fc->str, &end, 10);
            if (*end)
                goto bad;
        } else if ((kd == SIMW_BOOL || kd == SIMW_BOOLNULL) && !fc->isnull) {
            if (strcmp(fc->str, "true") != 0 && strcmp(fc->str, "false") != 0)
                goto bad;
            fc->num = strcmp(fc->str, "true") == 0;
        } else if (kd == SIMW_NULLOBJ || kd == SIMW_EMPTYARR) {
            goto bad;
        }
        if (fc->op == F_SW && kd != SIMW_STR)
            goto bad;
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        if (strncasecmp(p, "and ", 4) != 0)
            goto bad;
        p += 4;
    }
    return NULL;
bad:
    return graph_error(400, "BadRequest", "Invalid filter clause");
}

static int
cmp_op(int c, enum fop op)
{
    switch (op) {
    case F_EQ:
        return c == 0;
    case F_NE:
        return c != 0;
    case F_GT:
        return c > 0;
    case F_GE:
        return c >= 0;
    case F_LT:
        return c < 0;
    case F_LE:
        return c <= 0;
    case F_SW:
        break;
    }
    return 0;
}

static int
filter_match(const struct simdev *d, const struct fclause *cl, int n)
{
    for (int i = 0; i < n; i++) {
        const struct fclause *fc = &cl[i];
        int p = fc->prop, c;
        switch (simw_props[p].kind) {
        case SIMW_STR: {
            const char *v = d->str[p];
            if (fc->isnull) {
                c = v == NULL ? 0 : 1;
            } else if (v == NULL) {
                return 0;
            } else if (fc->op == F_SW) {
                if (strncasecmp(v, fc->str, strlen(fc->str)) != 0)
                    return 0;
                continue;
            } else {
                c = strcasecmp(v, fc->str);
            }
            break;
        }
        case SIMW_BOOLNULL:
        case SIMW_BOOL:
        case SIMW_INT64:
        case SIMW_DATE:
            if (fc->isnull) {
                c = 1;
                break;
            }
            c = d->num[p] < fc->num ? -1 : d->num[p] > fc->num ? 1 : 0;
            break;
        default:
            return 0;
        }
        if (!cmp_op(c, fc->op))
            return 0;
    }
    return 1;
}

static struct resp *
graph_devices(struct gctx *x, int *page_out)
{
    struct MHD_Connection *c = x->c;
    const char *top_s = arg_lookup(c, "$top");
    const char *sel = arg_lookup(c, "$select");
    const char *skip = arg_lookup(c, "$skiptoken");
    const char *filter = arg_lookup(c, "$filter");
    const char *count = arg_lookup(c, "$count");
    uint64_t mask[2];
    int any, nf = 0;
    long top = SIM_DEV_PAGE;
    int64_t after = 0, page = 1;
    struct resp *r;
    struct buf b;
    struct fclause fcl[FILTER_MAX];

    r = parse_select(sel, mask, &any, x->beta, "microsoft.graph.managedDevice");
    if (r)
        return r;
    r = filter_parse(filter, fcl, &nf);
    if (r)
        return r;
    if (top_s) {
        char *end;
        top = strtol(top_s, &end, 10);
        if (*top_s == '\0' || *end != '\0' || top < 0)
            return graph_error(400, "BadRequest", "Invalid value for $top query option.");
        if (top == 0 || top > SIM_DEV_PAGE)
            top = SIM_DEV_PAGE;
    }
    if (skip) {
        int64_t v[2];
        if (simtok_open_ints("mdsk", skip, v, 2) != ERR_OK)
            return graph_error(400, "BadRequest", "The $skiptoken is invalid.");
        after = v[0];
        page = v[1];
    }
    *page_out = (int)page;
    buf_init(&b, SIM_PAGE_MAX);
    (void)buf_addstr(&b, "{\"@odata.context\":\"");
    context_url(&b, x, "deviceManagement/managedDevices", sel);
    (void)buf_addc(&b, '"');
    if (x->t && count && strcmp(count, "true") == 0 && skip == NULL) {
        size_t total = 0;
        pthread_rwlock_rdlock(&g.w->lock);
        for (size_t i = 0; i < x->t->ndev; i++)
            total += filter_match(x->t->devs[i], fcl, nf);
        pthread_rwlock_unlock(&g.w->lock);
        (void)buf_printf(&b, ",\"@odata.count\":%zu", total);
    }
    size_t mark = b.len;
    (void)buf_addstr(&b, ",\"value\":[");
    if (x->t) {
        pthread_rwlock_rdlock(&g.w->lock);
        struct simtenant *t = x->t;
        size_t i = simw_device_after(t, (uint64_t)after), n = 0;
        uint64_t last = 0;
        if (x->short_keep >= 0 && x->short_keep < top)
            top = x->short_keep;
        for (; i < t->ndev && n < (size_t)top; i++) {
            if (nf && !filter_match(t->devs[i], fcl, nf))
                continue;
            if (x->skip_seq != 0 && t->devs[i]->seq == x->skip_seq)
                continue;
            if (n++)
                (void)buf_addc(&b, ',');
            if (simw_render_device(t->devs[i], any ? mask : NULL, 0, x->beta, &b) != ERR_OK)
                break;
            last = t->devs[i]->seq;
        }
        while (nf && i < t->ndev && !filter_match(t->devs[i], fcl, nf))
            i++;
        /* microsoftgraph/microsoft-graph-docs #21659, msgraph-sdk-powershell #1819: an
         * unfiltered listing that ends early, without @odata.nextLink (the short fault). */
        int more = i < t->ndev && x->short_keep < 0;
        pthread_rwlock_unlock(&g.w->lock);
        (void)buf_addc(&b, ']');
        if (more) {
            int64_t v[2] = {(int64_t)last, page + 1};
            char *tok = simtok_seal_ints("mdsk", v, 2);
            struct buf nl;
            buf_init(&nl, 16384);
            (void)buf_printf(&nl, "%s/graph/%s/deviceManagement/managedDevices?", g.base, x->ver);
            if (sel) {
                (void)buf_addstr(&nl, "$select=");
                (void)buf_add_urlenc(&nl, sel);
                (void)buf_addc(&nl, '&');
            }
            if (filter) {
                (void)buf_addstr(&nl, "$filter=");
                (void)buf_add_urlenc(&nl, filter);
                (void)buf_addc(&nl, '&');
            }
            if (top_s)
                (void)buf_printf(&nl, "$top=%ld&", top);
            (void)buf_printf(&nl, "$skiptoken=%s", tok);
            /* nextLink goes before value, as Graph writes it */
            struct buf out;
            buf_init(&out, SIM_PAGE_MAX);
            (void)buf_add(&out, b.data, mark);
            (void)buf_addstr(&out, ",\"@odata.nextLink\":");
            (void)simw_json_str(&out, buf_cstr(&nl));
            (void)buf_add(&out, b.data + mark, b.len - mark);
            buf_free(&b);
            b = out;
            buf_free(&nl);
            free(tok);
        }
    } else {
        (void)buf_addc(&b, ']');
    }
    if (buf_addc(&b, '}') != ERR_OK) {
        buf_free(&b);
        return graph_error(500, "InternalServerError", "Page too large.");
    }
    r = resp_new(200, GRAPH_CT);
    resp_buf(r, &b);
    return r;
}

static struct resp *
graph_device(struct gctx *x, const char *id)
{
    const char *sel = arg_lookup(x->c, "$select");
    uint64_t mask[2];
    int any;
    struct resp *r = parse_select(sel, mask, &any, x->beta, "microsoft.graph.managedDevice");
    struct buf b;

    if (r)
        return r;
    long pos = x->t ? simw_device_pos(x->t, id) : -1;
    if (pos < 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "Resource not found for the segment 'managedDevices'.");
        return graph_error(404, "ResourceNotFound", msg);
    }
    buf_init(&b, SIM_PAGE_MAX);
    (void)buf_addstr(&b, "{\"@odata.context\":\"");
    context_url(&b, x, "deviceManagement/managedDevices", sel);
    (void)buf_addstr(&b, "/$entity\",");
    struct buf dev;
    buf_init(&dev, SIM_PAGE_MAX);
    /* only a beta GET that names the fields in $select gets the per-device values */
    (void)simw_render_device(x->t->devs[pos], any ? mask : NULL, x->beta && any, x->beta, &dev);
    (void)buf_add(&b, dev.data + 1, dev.len - 1);
    buf_free(&dev);
    r = resp_new(200, GRAPH_CT);
    resp_buf(r, &b);
    return r;
}

/* microsoft.graph.detectedApp's properties, in the order Graph writes them. */
static const char *const app_props[] = {"id",          "displayName", "version", "sizeInByte",
                                        "deviceCount", "publisher",   "platform"};
#define APP_ALL ((1u << (sizeof app_props / sizeof app_props[0])) - 1)

static int
app_select_take(void *arg, const char *name)
{
    unsigned *mask = arg;

    for (size_t i = 0; i < sizeof app_props / sizeof app_props[0]; i++) {
        if (strcasecmp(name, app_props[i]) == 0) {
            *mask |= 1u << i;
            return 0;
        }
    }
    return -1;
}

/* $select on detectedApps: a mask of app_props (all of them without one). OData names
 * compare case-insensitively, as Graph's do. NULL response on success. */
static struct resp *
parse_app_select(const char *sel, unsigned *mask)
{
    struct resp *r;

    *mask = 0;
    r = select_each(sel, "microsoft.graph.detectedApp", app_select_take, mask);
    if (*mask == 0)
        *mask = APP_ALL;
    return r;
}

/* One detectedApp with the properties in mask. */
static json_t *
app_json(const struct simapp *a, unsigned mask)
{
    json_t *o = json_object();

    if (mask & 1u)
        json_object_set_new(o, "id", json_string(a->id));
    if (mask & 2u)
        json_object_set_new(o, "displayName", json_string(a->name));
    if (mask & 4u)
        json_object_set_new(o, "version", json_string(a->version));
    if (mask & 8u)
        json_object_set_new(o, "sizeInByte", json_integer((json_int_t)a->size));
    if (mask & 16u)
        json_object_set_new(o, "deviceCount", json_integer(a->device_count));
    if (mask & 32u)
        json_object_set_new(o, "publisher", a->publisher ? json_string(a->publisher) : json_null());
    if (mask & 64u)
        json_object_set_new(o, "platform", json_string(a->platform));
    return o;
}

/* Collection of detected apps (all of the tenant, or one device's). */
static struct resp *
graph_apps(struct gctx *x, const struct simdev *only, const char *ctxwhat)
{
    const char *top_s = arg_lookup(x->c, "$top");
    const char *skip = arg_lookup(x->c, "$skiptoken");
    long top = 1000;
    int64_t off = 0;
    json_t *arr = json_array(), *root;
    char ctx[512];
    struct simtenant *t = x->t;
    size_t total, i, n = 0;
    const char *sel = arg_lookup(x->c, "$select");
    unsigned mask;
    struct resp *bad = parse_app_select(sel, &mask);
    char *selq = NULL;

    if (bad != NULL) {
        json_decref(arr);
        return bad;
    }
    if (top_s) {
        char *end;
        top = strtol(top_s, &end, 10);
        if (*top_s == '\0' || *end != '\0' || top < 0) {
            json_decref(arr);
            return graph_error(400, "BadRequest", "Invalid value for $top query option.");
        }
        if (top == 0 || top > 1000)
            top = 1000;
    } else if (only == NULL) {
        top = 1000;
    }
    if (skip) {
        int64_t v[1];
        if (simtok_open_ints("dask", skip, v, 1) != ERR_OK || v[0] < 0) {
            json_decref(arr);
            return graph_error(400, "BadRequest", "The $skiptoken is invalid.");
        }
        off = v[0];
    }
    total = t == NULL ? 0 : only ? only->napps : t->napps;
    for (i = (size_t)off; t && i < total && n < (size_t)top; i++) {
        const struct simapp *a = only ? &t->apps[only->apps[i]] : &t->apps[i];
        if (!only && a->device_count == 0)
            continue;
        json_array_append_new(arr, app_json(a, mask));
        n++;
    }
    /* The next link keeps the query's $select, as Graph's do. */
    if (sel != NULL) {
        struct buf q;

        buf_init(&q, 128);
        for (size_t k = 0; k < sizeof app_props / sizeof app_props[0]; k++)
            if (mask & (1u << k))
                (void)buf_printf(&q, "%s%s", q.len ? "," : "$select=", app_props[k]);
        (void)buf_addstr(&q, "&");
        selq = xstrdup(buf_cstr(&q));
        buf_free(&q);
    } else {
        selq = xstrdup("");
    }
    snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#%s", g.base, x->ver, ctxwhat);
    root = json_pack("{s:s}", "@odata.context", ctx);
    if (i < total) {
        int64_t v[1] = {(int64_t)i};
        char *tok = simtok_seal_ints("dask", v, 1);
        char *url = xasprintf("%s/graph/%s/%s?%s%s%s%s$skiptoken=%s", g.base, x->ver,
                              "deviceManagement/detectedApps", selq, top_s ? "$top=" : "",
                              top_s ? top_s : "", top_s ? "&" : "", tok);
        if (only) {
            free(url);
            url = xasprintf("%s/graph/%s/deviceManagement/managedDevices/%s/detectedApps?%s%s%s%s"
                            "$skiptoken=%s",
                            g.base, x->ver, only->str[0], selq, top_s ? "$top=" : "",
                            top_s ? top_s : "", top_s ? "&" : "", tok);
        }
        json_object_set_new(root, "@odata.nextLink", json_string(url));
        free(url);
        free(tok);
    }
    free(selq);
    json_object_set_new(root, "value", arr);
    struct resp *r = resp_new(200, GRAPH_CT);
    resp_json(r, root);
    return r;
}

static struct resp *
graph_app_devices(struct gctx *x, const char *appid)
{
    const char *top_s = arg_lookup(x->c, "$top");
    const char *skip = arg_lookup(x->c, "$skiptoken");
    const char *sel = arg_lookup(x->c, "$select");
    struct simtenant *t = x->t;
    long pos = t ? simw_app_pos(t, appid) : -1;
    long top = SIM_DEV_PAGE;
    int64_t off = 0;
    uint64_t mask[2];
    int any;
    struct resp *r;
    struct buf b;

    if (pos < 0)
        return graph_error(404, "ResourceNotFound",
                           "Resource not found for the segment 'detectedApps'.");
    r = parse_select(sel, mask, &any, 0, "microsoft.graph.managedDevice");
    if (r)
        return r;
    if (top_s) {
        char *end;
        top = strtol(top_s, &end, 10);
        if (*top_s == '\0' || *end != '\0' || top < 0)
            return graph_error(400, "BadRequest", "Invalid value for $top query option.");
        if (top == 0 || top > SIM_DEV_PAGE)
            top = SIM_DEV_PAGE;
    }
    if (skip) {
        int64_t v[1];
        if (simtok_open_ints("adsk", skip, v, 1) != ERR_OK || v[0] < 0)
            return graph_error(400, "BadRequest", "The $skiptoken is invalid.");
        off = v[0];
    }
    buf_init(&b, SIM_PAGE_MAX);
    (void)buf_addstr(&b, "{\"@odata.context\":\"");
    context_url(&b, x, "deviceManagement/detectedApps('x')/managedDevices", sel);
    (void)buf_addstr(&b, "\",\"value\":[");
    size_t i, n = 0;
    for (i = (size_t)off; i < t->ndev && n < (size_t)top; i++) {
        const struct simdev *d = t->devs[i];
        int has = 0;
        for (size_t k = 0; k < d->napps; k++)
            if (d->apps[k] == (uint32_t)pos) {
                has = 1;
                break;
            }
        if (!has)
            continue;
        if (n++)
            (void)buf_addc(&b, ',');
        (void)simw_render_device(d, any ? mask : NULL, 0, 0, &b);
    }
    (void)buf_addc(&b, ']');
    if (i < t->ndev && n == (size_t)top) {
        int64_t v[1] = {(int64_t)i};
        char *tok = simtok_seal_ints("adsk", v, 1);
        (void)buf_printf(&b,
                         ",\"@odata.nextLink\":\"%s/graph/%s/deviceManagement/detectedApps/%s/"
                         "managedDevices?%s%s%s$skiptoken=%s\"",
                         g.base, x->ver, t->apps[pos].id, top_s ? "$top=" : "", top_s ? top_s : "",
                         top_s ? "&" : "", tok);
        free(tok);
    }
    (void)buf_addc(&b, '}');
    r = resp_new(200, GRAPH_CT);
    resp_buf(r, &b);
    return r;
}

/* Extracts an id from "/{id}" or "('{id}')" at s into out; returns the rest of the path. */
static const char *
path_key(const char *s, char *out, size_t outlen)
{
    size_t n = 0;

    out[0] = '\0';
    if (s[0] == '(' && s[1] == '\'') {
        const char *e = strstr(s + 2, "')");
        if (e == NULL)
            return NULL;
        n = (size_t)(e - s - 2);
        if (n >= outlen)
            return NULL;
        memcpy(out, s + 2, n);
        out[n] = '\0';
        return e + 2;
    }
    if (s[0] == '/' && s[1]) {
        const char *e = strchr(s + 1, '/');
        n = e ? (size_t)(e - s - 1) : strlen(s + 1);
        if (n >= outlen)
            return NULL;
        memcpy(out, s + 1, n);
        out[n] = '\0';
        return s + 1 + n;
    }
    return NULL;
}

struct resp *sim_export_route(struct gctx *x, const char *method, const char *rest,
                              const char *body, size_t bodylen, enum route *rt);
struct resp *sim_batch(struct gctx *x, const char *body, size_t len);

static json_t *
password_json(const struct simw_secret *sec, int with_text)
{
    char st[32], en[32], hint[4];

    clock_fmt(sec->start, st, sizeof st);
    clock_fmt(sec->expires, en, sizeof en);
    snprintf(hint, sizeof hint, "%.3s", sec->value);
    return json_pack("{s:n, s:s, s:s, s:s, s:o, s:s, s:s}", "customKeyIdentifier", "endDateTime",
                     en, "keyId", sec->key_id, "startDateTime", st, "secretText",
                     with_text ? json_string(sec->value) : json_null(), "hint", hint, "displayName",
                     "memsync");
}

static json_t *
application_json(struct gctx *x, const struct simw_app *a, const char *name)
{
    char ctx[256];
    json_t *pw = json_array();

    snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#applications/$entity", g.base, x->ver);
    for (int i = 0; i < a->nsecrets; i++)
        json_array_append_new(pw, password_json(&a->secrets[i], 0));
    return json_pack(
        "{s:s, s:s, s:n, s:n, s:s, s:n, s:[], s:s, s:n, s:s, s:n, s:n, s:n, s:[], s:s, s:s, s:[], "
        "s:n, s:{s:i, s:n, s:[], s:[], s:[]}, s:[], s:{s:[]}, s:{s:n, s:n, s:n, s:n, s:n}, s:[], "
        "s:{s:[], s:s}, s:o, s:[], s:{s:[], s:n, s:n, s:{s:b, s:b}}}",
        "@odata.context", ctx, "id", a->object_id, "deletedDateTime", "isFallbackPublicClient",
        "appId", a->id, "applicationTemplateId", "identifierUris", "createdDateTime",
        "2025-01-10T09:00:00Z", "disabledByMicrosoftStatus", "displayName", name,
        "isDeviceOnlyAuthSupported", "groupMembershipClaims", "optionalClaims", "addIns",
        "publisherDomain", g.w->partner_domain, "signInAudience", "AzureADMultipleOrgs", "tags",
        "tokenEncryptionKeyId", "api", "requestedAccessTokenVersion", 2, "acceptMappedClaims",
        "knownClientApplications", "oauth2PermissionScopes", "preAuthorizedApplications",
        "appRoles", "publicClient", "redirectUris", "info", "termsOfServiceUrl", "supportUrl",
        "privacyStatementUrl", "marketingUrl", "logoUrl", "keyCredentials",
        "parentalControlSettings", "countriesBlockedForMinors", "legalAgeGroupRule", "Allow",
        "passwordCredentials", pw, "requiredResourceAccess", "web", "redirectUris", "homePageUrl",
        "logoutUrl", "implicitGrantSettings", "enableIdTokenIssuance", 0,
        "enableAccessTokenIssuance", 0);
}

/* Partner-side directory routes: contracts, GDAP customers and relationships, tenant
 * information, and the two applications (for secret expiry and rotation). Caller holds the
 * world lock for writing. */
static struct resp *
graph_directory(struct gctx *x, const char *method, const char *path, const char *body,
                size_t bodylen)
{
    struct simworld *w = g.w;
    char ctx[256];
    struct resp *r;
    json_t *arr;

    if (strcmp(method, "GET") == 0 && strcmp(path, "/contracts") == 0) {
        arr = json_array();
        for (size_t i = 0; x->partner && i < w->ntenants; i++) {
            struct simtenant *t = w->tenants[i];
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s}", "contractType",
                                                 "ResellerPartner", "customerId", t->id,
                                                 "defaultDomainName", t->initial_domain,
                                                 "displayName", t->name, "id", t->commerce_id));
        }
        snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#contracts", g.base, x->ver);
        r = resp_new(200, GRAPH_CT);
        resp_json(r, json_pack("{s:s, s:o}", "@odata.context", ctx, "value", arr));
        return r;
    }
    if (strcmp(method, "GET") == 0 && strncmp(path, "/contracts/", 11) == 0) {
        for (size_t i = 0; x->partner && i < w->ntenants; i++) {
            struct simtenant *t = w->tenants[i];
            if (strcasecmp(t->commerce_id, path + 11) == 0) {
                snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#contracts/$entity", g.base,
                         x->ver);
                r = resp_new(200, GRAPH_CT);
                resp_json(r, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "@odata.context", ctx,
                                       "contractType", "ResellerPartner", "customerId", t->id,
                                       "defaultDomainName", t->initial_domain, "displayName",
                                       t->name, "id", t->commerce_id));
                return r;
            }
        }
        return graph_error(404, "Request_ResourceNotFound",
                           "Resource not found for the segment 'contracts'.");
    }
    if (strcmp(method, "GET") == 0 &&
        (strcmp(path, "/tenantRelationships/delegatedAdminCustomers") == 0 ||
         strcmp(path, "/tenantRelationships/delegatedAdminRelationships") == 0)) {
        int rel = strcmp(path, "/tenantRelationships/delegatedAdminRelationships") == 0;
        arr = json_array();
        for (size_t i = 0; x->partner && i < w->ntenants; i++) {
            struct simtenant *t = w->tenants[i];
            if (rel) {
                char id[80];
                snprintf(id, sizeof id, "%s-%s", t->commerce_id, w->partner_tenant_id);
                json_array_append_new(
                    arr, json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:{s:[{s:s}]}, s:s, s:s, s:s, "
                                   "s:s, s:s}",
                                   "id", id, "displayName", "memsync GDAP", "duration", "P730D",
                                   "customer", "tenantId", t->id, "displayName", t->name,
                                   "accessDetails", "unifiedRoles", "roleDefinitionId",
                                   "62e90394-69f5-4237-9190-012177145e10", "status",
                                   t->consented ? "active" : "terminated", "createdDateTime",
                                   "2025-01-10T09:00:00Z", "lastModifiedDateTime",
                                   "2025-01-10T09:05:00Z", "activatedDateTime",
                                   "2025-01-10T09:05:00Z", "endDateTime", "2027-01-10T09:00:00Z"));
            } else {
                json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "id", t->id, "tenantId",
                                                     t->id, "displayName", t->name));
            }
        }
        snprintf(ctx, sizeof ctx, "%s/graph/%s/tenantRelationships/$metadata#%s", g.base, x->ver,
                 rel ? "delegatedAdminRelationships" : "delegatedAdminCustomers");
        r = resp_new(200, GRAPH_CT);
        resp_json(r, json_pack("{s:s, s:o}", "@odata.context", ctx, "value", arr));
        return r;
    }
    if (strcmp(method, "GET") == 0 &&
        strncmp(path, "/tenantRelationships/findTenantInformationByTenantId(tenantId='", 63) == 0) {
        char id[64];
        const char *s = path + 63, *e = strchr(s, '\'');
        size_t n = e ? (size_t)(e - s) : 0;
        struct simtenant *t = NULL;
        if (n > 0 && n < sizeof id) {
            memcpy(id, s, n);
            id[n] = '\0';
            t = simw_tenant_by_id(w, id);
        }
        if (t == NULL || !t->exists)
            return graph_error(404, "Request_ResourceNotFound", "Tenant not found.");
        snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#microsoft.graph.tenantInformation", g.base,
                 x->ver);
        r = resp_new(200, GRAPH_CT);
        resp_json(r, json_pack("{s:s, s:s, s:n, s:s, s:s}", "@odata.context", ctx, "tenantId",
                               t->id, "federationBrandName", "displayName", t->name,
                               "defaultDomainName", t->initial_domain));
        return r;
    }
    if (strncmp(path, "/applications", 13) == 0) {
        char key[64];
        const char *rest = path + 13;
        struct simw_app *a = NULL;
        if (strncmp(rest, "(appId='", 8) == 0) {
            const char *e = strchr(rest + 8, '\'');
            size_t n = e ? (size_t)(e - rest - 8) : 0;
            if (n == 0 || n >= sizeof key || e[1] != ')')
                return graph_error(400, "BadRequest", "Bad request path.");
            memcpy(key, rest + 8, n);
            key[n] = '\0';
            rest = e + 2;
            a = strcasecmp(key, w->sync_app.id) == 0      ? &w->sync_app
                : strcasecmp(key, w->partner_app.id) == 0 ? &w->partner_app
                                                          : NULL;
        } else if ((rest = path_key(rest, key, sizeof key)) != NULL) {
            a = strcasecmp(key, w->sync_app.object_id) == 0      ? &w->sync_app
                : strcasecmp(key, w->partner_app.object_id) == 0 ? &w->partner_app
                                                                 : NULL;
        }
        if (a == NULL || !x->partner)
            return graph_error(404, "Request_ResourceNotFound",
                               "Resource not found for the segment 'applications'.");
        if (strcmp(method, "GET") == 0 && __atomic_load_n(&g.no_app_read, __ATOMIC_RELAXED))
            return graph_error(403, "Authorization_RequestDenied",
                               "Insufficient privileges to complete the operation.");
        if (strcmp(method, "GET") == 0 && *rest == '\0') {
            r = resp_new(200, GRAPH_CT);
            resp_json(
                r, application_json(x, a, a == &w->sync_app ? "memsync sync" : "memsync partner"));
            return r;
        }
        if (strcmp(method, "POST") == 0 && strcmp(rest, "/addPassword") == 0) {
            const char *s = simw_secret_add(w, a, clock_now() + 2 * 365 * 86400);
            (void)s;
            a->secrets[a->nsecrets - 1].start = clock_now();
            r = resp_new(200, GRAPH_CT);
            json_t *o = password_json(&a->secrets[a->nsecrets - 1], 1);
            json_t *in = json_loadb(body ? body : "", bodylen, 0, NULL);
            const char *dn = json_string_value(
                json_object_get(json_object_get(in, "passwordCredential"), "displayName"));
            if (dn)
                json_object_set_new(o, "displayName", json_string(dn));
            json_decref(in);
            snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#microsoft.graph.passwordCredential",
                     g.base, x->ver);
            json_object_set_new(o, "@odata.context", json_string(ctx));
            resp_json(r, o);
            return r;
        }
        if (strcmp(method, "POST") == 0 && strcmp(rest, "/removePassword") == 0) {
            json_t *in = json_loadb(body ? body : "", bodylen, 0, NULL);
            const char *kid = json_string_value(json_object_get(in, "keyId"));
            int found = 0;
            for (int i = 0; kid && i < a->nsecrets; i++) {
                if (strcasecmp(a->secrets[i].key_id, kid) == 0) {
                    free(a->secrets[i].value);
                    memmove(&a->secrets[i], &a->secrets[i + 1],
                            (size_t)(a->nsecrets - i - 1) * sizeof(a->secrets[0]));
                    a->nsecrets--;
                    found = 1;
                    break;
                }
            }
            json_decref(in);
            if (!found)
                return graph_error(400, "BadRequest", "No password credential with that keyId.");
            r = resp_new(204, NULL);
            return r;
        }
        return graph_error(405, "Request_BadRequest",
                           "Specified HTTP method is not allowed for the request target.");
    }
    return graph_error(400, "BadRequest", "Resource not found for the segment.");
}

/* GET deviceManagement/managedDeviceOverview (v1.0 and beta): the singleton entity at the top
 * level with its context, as Graph answers a single entity. Counts come from the world:
 * enrolledDeviceCount is every device the unfiltered listing should return. */
static struct resp *
graph_overview(struct gctx *x)
{
    size_t n = 0, win = 0, ios = 0, mac = 0, android = 0, other = 0;
    int os = simw_prop_index("operatingSystem");
    char ctx[256];
    struct resp *r;

    if (x->t != NULL) {
        pthread_rwlock_rdlock(&g.w->lock);
        n = x->t->ndev;
        for (size_t i = 0; i < n; i++) {
            const char *v = os > 0 ? x->t->devs[i]->str[os] : NULL;

            if (v == NULL)
                other++;
            else if (strcasecmp(v, "Windows") == 0)
                win++;
            else if (strcasecmp(v, "iOS") == 0 || strcasecmp(v, "iPadOS") == 0)
                ios++;
            else if (strcasecmp(v, "macOS") == 0)
                mac++;
            else if (strcasecmp(v, "Android") == 0)
                android++;
            else
                other++;
        }
        pthread_rwlock_unlock(&g.w->lock);
    }
    snprintf(ctx, sizeof ctx,
             "%s/graph/%s/$metadata#deviceManagement/managedDeviceOverview/$entity", g.base,
             x->ver);
    r = resp_new(200, GRAPH_CT);
    resp_json(
        r,
        json_pack(
            "{s:s, s:s, s:s, s:I, s:I, s:i, s:{s:s, s:I, s:I, s:I, s:i, s:I, s:I, s:i, s:i, s:i, "
            "s:i, s:i, s:i}, s:{s:s, s:i, s:i, s:i, s:i, s:i}}",
            "@odata.context", ctx, "@odata.type", "#microsoft.graph.managedDeviceOverview", "id",
            "4a6c4fb5-3f36-4c51-9a2a-0c6e5b1f0d2e", "enrolledDeviceCount", (json_int_t)n,
            "mdmEnrolledCount", (json_int_t)n, "dualEnrolledDeviceCount", 0,
            "deviceOperatingSystemSummary", "@odata.type",
            "microsoft.graph.deviceOperatingSystemSummary", "androidCount", (json_int_t)android,
            "iosCount", (json_int_t)ios, "macOSCount", (json_int_t)mac, "windowsMobileCount", 0,
            "windowsCount", (json_int_t)win, "unknownCount", (json_int_t)other,
            "androidDedicatedCount", 0, "androidDeviceAdminCount", 0, "androidFullyManagedCount", 0,
            "androidWorkProfileCount", 0, "androidCorporateWorkProfileCount", 0,
            "configMgrDeviceCount", 0, "deviceExchangeAccessStateSummary", "@odata.type",
            "microsoft.graph.deviceExchangeAccessStateSummary", "allowedDeviceCount", 0,
            "blockedDeviceCount", 0, "quarantinedDeviceCount", 0, "unknownDeviceCount", 0,
            "unavailableDeviceCount", 0));
    return r;
}

/* Dispatches one Graph request (also used by $batch). `path` starts after /graph/{ver}. */
static struct resp *
graph_dispatch(struct gctx *x, const char *method, const char *path, const char *body,
               size_t bodylen, enum route *rt, int *page)
{
    char key[128];
    const char *rest;

    *rt = R_OTHER;
    *page = 0;
    if (strcmp(path, "/organization") == 0) {
        *rt = R_ORGANIZATION;
        if (strcmp(method, "GET") != 0)
            return graph_error(405, "Request_BadRequest",
                               "Specified HTTP method is not allowed for the request target.");
        if (x->t != NULL && x->t->org_denied) /* set_tenant org_readable: false */
            return graph_error(403, "Authorization_RequestDenied",
                               "Insufficient privileges to complete the operation.");
        return graph_organization(x);
    }
    if (strcmp(path, "/deviceManagement/managedDeviceOverview") == 0) {
        *rt = R_OVERVIEW;
        struct resp *gate = graph_intune_gate(x);
        if (gate)
            return gate;
        if (strcmp(method, "GET") != 0)
            return graph_error(405, "BadRequest", "Method not allowed.");
        return graph_overview(x);
    }
    if (strcmp(path, "/$batch") == 0) {
        *rt = R_BATCH;
        if (inner_args != NULL)
            return graph_error(400, "BadRequest", "Nested batch requests are not supported.");
        if (strcmp(method, "POST") != 0)
            return graph_error(405, "BadRequest", "Method not allowed.");
        return sim_batch(x, body, bodylen);
    }
    if (strncmp(path, "/deviceManagement/reports/exportJobs", 36) == 0) {
        *rt = R_EXPORT;
        struct resp *gate = graph_intune_gate(x);
        if (gate)
            return gate;
        return sim_export_route(x, method, path + 36, body, bodylen, rt);
    }
    if (strncmp(path, "/deviceManagement/managedDevices", 32) == 0) {
        rest = path + 32;
        *rt = *rest ? R_DEVICE : R_DEVICES;
        struct resp *gate = graph_intune_gate(x);
        if (gate)
            return gate;
        if (strcmp(method, "GET") != 0)
            return graph_error(405, "BadRequest", "Method not allowed.");
        if (*rest == '\0')
            return graph_devices(x, page);
        rest = path_key(rest, key, sizeof key);
        if (rest == NULL)
            return graph_error(400, "BadRequest", "Bad request path.");
        pthread_rwlock_rdlock(&g.w->lock);
        struct resp *r;
        if (*rest == '\0') {
            r = graph_device(x, key);
        } else if (strcmp(rest, "/detectedApps") == 0) {
            *rt = R_DEVICE_APPS;
            long pos = x->t ? simw_device_pos(x->t, key) : -1;
            if (!x->beta)
                r = graph_error(400, "BadRequest",
                                "Resource not found for the segment 'detectedApps'.");
            else if (pos < 0)
                r = graph_error(404, "ResourceNotFound",
                                "Resource not found for the segment 'managedDevices'.");
            else
                r = graph_apps(x, x->t->devs[pos],
                               "deviceManagement/managedDevices('x')/"
                               "detectedApps");
        } else {
            r = graph_error(400, "BadRequest", "Resource not found for the segment.");
        }
        pthread_rwlock_unlock(&g.w->lock);
        return r;
    }
    if (strncmp(path, "/deviceManagement/detectedApps", 30) == 0) {
        rest = path + 30;
        *rt = *rest ? R_APP : R_APPS;
        struct resp *gate = graph_intune_gate(x);
        if (gate)
            return gate;
        if (strcmp(method, "GET") != 0)
            return graph_error(405, "BadRequest", "Method not allowed.");
        pthread_rwlock_rdlock(&g.w->lock);
        struct resp *r;
        if (*rest == '\0') {
            r = graph_apps(x, NULL, "deviceManagement/detectedApps");
        } else if ((rest = path_key(rest, key, sizeof key)) == NULL) {
            r = graph_error(400, "BadRequest", "Bad request path.");
        } else if (*rest == '\0') {
            long pos = x->t ? simw_app_pos(x->t, key) : -1;
            if (pos < 0) {
                r = graph_error(404, "ResourceNotFound",
                                "Resource not found for the segment 'detectedApps'.");
            } else {
                const struct simapp *a = &x->t->apps[pos];
                char ctx[256];
                unsigned mask;
                json_t *o;

                r = parse_app_select(arg_lookup(x->c, "$select"), &mask);
                if (r == NULL) {
                    snprintf(ctx, sizeof ctx,
                             "%s/graph/%s/$metadata#deviceManagement/detectedApps/"
                             "$entity",
                             g.base, x->ver);
                    o = json_pack("{s:s}", "@odata.context", ctx);
                    json_object_update_new(o, app_json(a, mask));
                    r = resp_new(200, GRAPH_CT);
                    resp_json(r, o);
                }
            }
        } else if (strcmp(rest, "/managedDevices") == 0) {
            *rt = R_APP_DEVICES;
            r = graph_app_devices(x, key);
        } else {
            r = graph_error(400, "BadRequest", "Resource not found for the segment.");
        }
        pthread_rwlock_unlock(&g.w->lock);
        return r;
    }
    if (strncmp(path, "/contracts", 10) == 0 || strncmp(path, "/tenantRelationships/", 21) == 0 ||
        strncmp(path, "/applications", 13) == 0) {
        struct resp *r;
        pthread_rwlock_wrlock(&g.w->lock);
        r = graph_directory(x, method, path, body, bodylen);
        pthread_rwlock_unlock(&g.w->lock);
        return r;
    }
    return graph_error(400, "BadRequest", "Resource not found for the segment.");
}

/* Resolves the token's tenant for Graph. Returns an error response or NULL. */
static struct resp *
graph_auth(struct MHD_Connection *c, struct gctx *x)
{
    struct resp *r = bearer_check(c, SIM_GRAPH_AUD, &x->cl);

    if (r)
        return r;
    if (strcasecmp(x->cl.appid, g.w->sync_app.id) != 0)
        return graph_error(403, "Authorization_RequestDenied",
                           "Insufficient privileges to complete the operation.");
    if (strcasecmp(x->cl.tid, g.w->partner_tenant_id) == 0) {
        x->partner = 1;
        return NULL;
    }
    pthread_rwlock_rdlock(&g.w->lock);
    x->t = simw_tenant_by_id(g.w, x->cl.tid);
    pthread_rwlock_unlock(&g.w->lock);
    if (x->t == NULL)
        return graph_error(401, "InvalidAuthenticationToken",
                           "Access token validation failure. Invalid tenant.");
    return NULL;
}

static int
is_intune_route(enum route rt)
{
    return rt == R_DEVICES || rt == R_DEVICE || rt == R_DEVICE_APPS || rt == R_APPS ||
           rt == R_APP || rt == R_APP_DEVICES || rt == R_EXPORT || rt == R_OVERVIEW;
}

/* Intune and global Graph throttles for one (inner) request; returns a 429 or NULL. */
static struct resp *
graph_throttle(struct gctx *x, enum route rt)
{
    char key[112];
    double wait;

    snprintf(key, sizeof key, "global|%s", x->cl.appid);
    wait = throttle_hit(key, TH_GLOBAL, 0);
    if (wait <= 0 && is_intune_route(rt)) {
        snprintf(key, sizeof key, "intune|%s|%s", x->cl.appid, x->cl.tid);
        wait = throttle_hit(key, TH_INTUNE, 0);
    }
    long others = x->t != NULL && x->t->other_apps >= 0 ? x->t->other_apps : g.other_apps;

    if (wait <= 0 && is_intune_route(rt) && others > 0) {
        snprintf(key, sizeof key, "tenant|%s", x->cl.tid);
        wait = throttle_hit(key, TH_TENANT, others);
    }
    if (wait <= 0 && rt == R_DEVICE_APPS && g.dapps_limit > 0) {
        snprintf(key, sizeof key, "dapps|%s|%s", x->cl.appid, x->cl.tid);
        if (throttle_hit(key, TH_DAPPS, 0) > 0)
            return graph_429(-1); /* no Retry-After: Microsoft Q&A 5784629 */
    }
    return wait > 0 ? graph_429(wait) : NULL;
}

static void
graph_headers(struct MHD_Connection *c, struct resp *r)
{
    const char *crid =
        c ? MHD_lookup_connection_value(c, MHD_HEADER_KIND, "client-request-id") : NULL;
    char rid[37];
    int have = 0;

    for (int i = 0; i < r->nhdrs; i++)
        if (strcmp(r->hdrs[i].name, "request-id") == 0)
            have = 1;
    if (!have) {
        rand_guid(rid);
        resp_hdr(r, "request-id", rid);
    }
    if (crid && strlen(crid) < 128)
        resp_hdr(r, "client-request-id", crid);
    if (r->status < 300)
        resp_hdr(r, "OData-Version", "4.0");
    resp_hdr(r, "Cache-Control", "no-cache");
}

/* Route of a Graph path (after /graph/{version}), for throttles, faults and statistics. */
static enum route
graph_classify(const char *path)
{
    if (strcmp(path, "/organization") == 0)
        return R_ORGANIZATION;
    if (strncmp(path, "/deviceManagement/managedDevices", 32) == 0)
        return path[32] == '\0'                     ? R_DEVICES
               : strstr(path + 32, "/detectedApps") ? R_DEVICE_APPS
                                                    : R_DEVICE;
    if (strncmp(path, "/deviceManagement/detectedApps", 30) == 0)
        return path[30] == '\0'                       ? R_APPS
               : strstr(path + 30, "/managedDevices") ? R_APP_DEVICES
                                                      : R_APP;
    if (strncmp(path, "/deviceManagement/reports/exportJobs", 36) == 0)
        return R_EXPORT;
    if (strcmp(path, "/$batch") == 0)
        return R_BATCH;
    if (strcmp(path, "/deviceManagement/managedDeviceOverview") == 0)
        return R_OVERVIEW;
    return R_OTHER;
}

/* The rename_during_listing fault: Graph pages managedDevices with a keyset skiptoken on
 * (LastDeviceName, LastDeviceId) (see the cloudpc fixture's nextLink), so a device renamed to
 * a name before the cursor while the pages are read is in no page. The simulator's cursor is
 * the device's sequence, so the device about to be listed first on this page is renamed (to
 * sort first) and left out of this page. */
static void
listing_rename(struct gctx *x)
{
    const char *skip = arg_lookup(x->c, "$skiptoken");
    int name = simw_prop_index("deviceName");
    int64_t v[2] = {0, 1};
    size_t i;

    if (x->t == NULL || name <= 0 || (skip && simtok_open_ints("mdsk", skip, v, 2) != ERR_OK))
        return;
    pthread_rwlock_wrlock(&g.w->lock);
    i = simw_device_after(x->t, (uint64_t)v[0]);
    if (i < x->t->ndev) {
        struct simdev *d = x->t->devs[i];
        char *renamed = xasprintf("0-%s", d->str[name] != NULL ? d->str[name] : "device");

        simw_dev_set_str(d, name, renamed);
        free(renamed);
        x->skip_seq = d->seq;
    }
    pthread_rwlock_unlock(&g.w->lock);
}

/* Runs the full pipeline of one Graph request (auth, throttle, fault, route). */
static struct resp *
graph_request(struct gctx *x, struct MHD_Connection *c, const char *method, const char *path,
              const char *body, size_t len, int apply_faults)
{
    enum route rt = R_OTHER;
    int page = 0;
    struct resp *r = NULL;
    struct simw_fault f;
    enum simw_fault_kind mode = SIMW_FAULT_NONE;
    int delay = 0;

    rt = graph_classify(path);
    if (rt != R_BATCH) {
        r = graph_throttle(x, rt);
        if (r)
            return r;
    }
    if (rt == R_DEVICES) {
        /* the page number is only known from the skiptoken */
        const char *skip = arg_lookup(c, "$skiptoken");
        int64_t v[2];
        page = 1;
        if (skip && simtok_open_ints("mdsk", skip, v, 2) == ERR_OK)
            page = (int)v[1];
    }
    x->short_keep = -1;
    x->skip_seq = 0;
    if (apply_faults && fault_take(rt, x->partner ? g.w->partner_tenant_id : x->t->id, page, &f)) {
        r = fault_apply(&f, 1, &mode, &delay);
        if (r)
            return r;
        if (rt == R_DEVICES && f.kind == SIMW_FAULT_SHORT)
            x->short_keep = f.keep > 0 ? f.keep : 0;
        else if (rt == R_DEVICES && f.kind == SIMW_FAULT_RENAME)
            listing_rename(x);
    }
    r = graph_dispatch(x, method, path, body, len, &rt, &page);
    r->mode = mode;
    r->delay_ms = delay;
    return r;
}

/* --- $batch --------------------------------------------------------------------------------- */

struct resp *
sim_batch(struct gctx *x, const char *body, size_t len)
{
    json_t *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, NULL);
    json_t *reqs = root ? json_object_get(root, "requests") : NULL;
    json_t *out = NULL;
    size_t i;
    json_t *it;

    if (!json_is_array(reqs)) {
        json_decref(root);
        return graph_error(400, "BadRequest", "Invalid batch payload format.");
    }
    if (json_array_size(reqs) > SIM_BATCH_MAX) {
        json_decref(root);
        return graph_error(400, "BadRequest",
                           "The number of batch requests exceeds the maximum of 20.");
    }
    out = json_array();
    json_array_foreach(reqs, i, it)
    {
        const char *id = json_string_value(json_object_get(it, "id"));
        const char *method = json_string_value(json_object_get(it, "method"));
        const char *url = json_string_value(json_object_get(it, "url"));
        int dup = 0;
        for (size_t k = 0; id && k < i; k++)
            dup |= strcasecmp(
                       id, json_string_value(json_object_get(json_array_get(reqs, k), "id"))) == 0;
        if (id == NULL || method == NULL || url == NULL || dup ||
            (json_object_get(it, "body") && !json_is_object(json_object_get(it, "headers")))) {
            json_decref(out);
            json_decref(root);
            return graph_error(400, "BadRequest",
                               dup ? "Batch request ids must be unique."
                                   : "Batch request items need id, method and url (and headers "
                                     "when a body is sent).");
        }
    }
    /* inner requests read their own query, never the outer one */
    struct gctx inner = *x;
    inner.c = NULL;
    json_t *statuses = json_object();
    json_array_foreach(reqs, i, it)
    {
        const char *id = json_string_value(json_object_get(it, "id"));
        const char *method = json_string_value(json_object_get(it, "method"));
        const char *url = json_string_value(json_object_get(it, "url"));
        json_t *deps = json_object_get(it, "dependsOn"), *dv;
        char path[4096], *q, *ibody = NULL;
        json_t *args = json_object();
        struct resp *r = NULL;
        json_t *hdrs = json_object(), *ib;
        size_t di;
        int failed_dep = 0;

        /* a prerequisite that failed (or has not run) fails its dependants with 424 */
        json_array_foreach(deps, di, dv)
        {
            json_t *stv =
                json_string_value(dv) ? json_object_get(statuses, json_string_value(dv)) : NULL;
            if (stv == NULL || json_integer_value(stv) >= 400)
                failed_dep = 1;
        }
        if (failed_dep) {
            r = graph_error(424, "FailedDependency",
                            "The request was not run because a request it depends on failed.");
        } else if (strlen(url) + 2 > sizeof path) {
            r = graph_error(400, "BadRequest", "The request URL is too long.");
        } else {
            snprintf(path, sizeof path, "%s%s", url[0] == '/' ? "" : "/", url);
            q = strchr(path, '?');
            if (q) {
                *q++ = '\0';
                char *save = NULL;
                for (char *p = strtok_r(q, "&", &save); p; p = strtok_r(NULL, "&", &save)) {
                    char *eq = strchr(p, '=');
                    if (eq) {
                        *eq = '\0';
                        (void)simtok_form_decode(eq + 1);
                    }
                    (void)simtok_form_decode(p);
                    json_object_set_new(args, p, json_string(eq ? eq + 1 : ""));
                }
            }
            if (json_object_get(it, "body"))
                ibody = json_dumps(json_object_get(it, "body"), JSON_COMPACT);
            inner_args = args;
            in_batch_item = 1;
            r = graph_request(&inner, NULL, method, path, ibody, ibody ? strlen(ibody) : 0, 1);
            in_batch_item = 0;
            inner_args = NULL;
            free(ibody);
            stat_count(graph_classify(path), x->partner ? g.w->partner_tenant_id : x->t->id,
                       r->status == 429);
            reqlog_add(NULL, graph_classify(path), x->partner ? g.w->partner_tenant_id : x->t->id,
                       method, r);
        }
        json_decref(args);
        graph_headers(NULL, r);
        json_object_set_new(statuses, id, json_integer(r->status));
        for (int h = 0; h < r->nhdrs; h++)
            json_object_set_new(hdrs, r->hdrs[h].name, json_string(r->hdrs[h].value));
        if (r->ctype)
            json_object_set_new(hdrs, "Content-Type", json_string(r->ctype));
        ib = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
        json_t *item = json_pack("{s:s, s:i, s:o}", "id", id, "status", r->status, "headers", hdrs);
        if (ib)
            json_object_set_new(item, "body", ib);
        json_array_append_new(out, item);
        resp_free(r);
    }
    json_decref(statuses);
    json_decref(root);
    struct resp *r = resp_new(200, GRAPH_CT);
    resp_json(r, json_pack("{s:o}", "responses", out));
    return r;
}

/* --- export jobs ---------------------------------------------------------------------------- */

/* Export jobs of the Intune reports API: a job completes on the second poll and its `url`
 * serves a zip holding one CSV (deflate via zlib; the zip container is written here). */

struct colmap {
    const char *col;
    const char *prop; /* managedDevice property, or NULL for computed columns */
};

static const struct colmap inv_cols[] = {
    {"DeviceId", "id"},
    {"DeviceName", "deviceName"},
    {"CreatedDate", "enrolledDateTime"},
    {"LastContact", "lastSyncDateTime"},
    {"ReferenceId", "azureADDeviceId"},
    {"OSVersion", "osVersion"},
    {"OS", "operatingSystem"},
    {"DeviceType", "operatingSystem"},
    {"SerialNumber", "serialNumber"},
    {"Manufacturer", "manufacturer"},
    {"Model", "model"},
    {"IMEI", "imei"},
    {"MEID", "meid"},
    {"WifiMacAddress", "wiFiMacAddress"},
    {"EthernetMAC", "ethernetMacAddress"},
    {"StorageTotal", "totalStorageSpaceInBytes"},
    {"StorageFree", "freeStorageSpaceInBytes"},
    {"UPN", "userPrincipalName"},
    {"UserEmail", "emailAddress"},
    {"UserName", "userDisplayName"},
    {"PrimaryUser", "userId"},
    {"CompliantState", "complianceState"},
    {"ComplianceState", "complianceState"},
    {"ManagementAgent", "managementAgent"},
    {"OwnerType", "managedDeviceOwnerType"},
    {"ManagementState", "managementState"},
    {"IsSupervised", "isSupervised"},
    {"IsEncrypted", "isEncrypted"},
    {"PhoneNumber", "phoneNumber"},
    {"ICCID", "iccid"},
    {"EnrollmentType", "deviceEnrollmentType"},
    {"CertExpirationDate", "managementCertificateExpirationDate"},
    {"JailBroken", "jailBroken"},
    {"CategoryName", "deviceCategoryDisplayName"},
    {"ProcessorArchitecture", NULL},
    {"SkuFamily", NULL},
    {"JoinType", NULL},
};

static const char *const app_cols[] = {
    "ApplicationKey",
    "ApplicationName",
    "ApplicationPublisher",
    "ApplicationShortVersion",
    "ApplicationVersion",
    "DeviceId",
    "DeviceName",
    "OSDescription",
    "OSVersion",
    "Platform",
    "UserId",
    "EmailAddress",
    "UserName",
};

static const char *const inv_default[] = {
    "DeviceId",  "DeviceName",  "SerialNumber", "Manufacturer", "Model",
    "OSVersion", "LastContact", "UPN",          "StorageTotal", "StorageFree"};

static void
csv_field(struct buf *b, const char *s, int first)
{
    if (!first)
        (void)buf_addc(b, ',');
    (void)buf_addc(b, '"');
    for (const char *p = s ? s : ""; *p; p++) {
        if (*p == '"')
            (void)buf_addc(b, '"');
        (void)buf_addc(b, *p);
    }
    (void)buf_addc(b, '"');
}

static void
report_date(int64_t t, char *out, size_t n)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (t == TS_NULL) {
        snprintf(out, n, "%s", "");
        return;
    }
    gmtime_r(&tt, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%S.0000000", &tm);
}

static void
inv_value(const struct simdev *d, const char *col, const char *prop, char *out, size_t n)
{
    int p = prop ? simw_prop_index(prop) : -1;

    out[0] = '\0';
    if (p < 0) {
        if (strcmp(col, "ProcessorArchitecture") == 0)
            snprintf(out, n, "%s",
                     d->arch && strcmp(d->arch, "arm64") == 0 ? "12"
                     : d->arch && strcmp(d->arch, "x64") == 0 ? "9"
                                                              : "0");
        else if (strcmp(col, "JoinType") == 0)
            snprintf(out, n, "%s", "Azure AD joined");
        else if (strcmp(col, "SkuFamily") == 0)
            snprintf(out, n, "%s", "Enterprise");
        return;
    }
    switch (simw_props[p].kind) {
    case SIMW_STR:
        snprintf(out, n, "%s", d->str[p] ? d->str[p] : "");
        break;
    case SIMW_BOOL:
    case SIMW_BOOLNULL:
        snprintf(out, n, "%s", d->num[p] > 0 ? "True" : "False");
        break;
    case SIMW_INT64:
        /* storage columns are reported in MB */
        snprintf(out, n, "%lld", (long long)(d->num[p] / 1048576));
        break;
    case SIMW_DATE:
        report_date(d->num[p], out, n);
        break;
    default:
        break;
    }
}

static void
put16(struct buf *b, unsigned v)
{
    unsigned char x[2] = {(unsigned char)(v & 0xff), (unsigned char)((v >> 8) & 0xff)};
    (void)buf_add(b, x, 2);
}

static void
put32(struct buf *b, unsigned long v)
{
    unsigned char x[4] = {(unsigned char)(v & 0xff), (unsigned char)((v >> 8) & 0xff),
                          (unsigned char)((v >> 16) & 0xff), (unsigned char)((v >> 24) & 0xff)};
    (void)buf_add(b, x, 4);
}

static void
put64(struct buf *b, uint64_t v)
{
    put32(b, (unsigned long)(v & 0xffffffffu));
    put32(b, (unsigned long)(v >> 32));
}

/* The same archive as zip_one writes, in zip64 form, as writers of large reports make it:
 * 0xFFFFFFFF sizes and offset with the values in 0x0001 extra fields, and a zip64 end record
 * with its locator. */
static void
zip64_container(const char *name, size_t nlen, unsigned long crc, const unsigned char *comp,
                size_t clen, size_t len, struct buf *out)
{
    size_t cd, cdlen, z64;

    put32(out, 0x04034b50);
    put16(out, 45);
    put16(out, 0x0800);
    put16(out, 8);
    put16(out, 0);
    put16(out, 0x21);
    put32(out, crc);
    put32(out, 0xFFFFFFFFul);
    put32(out, 0xFFFFFFFFul);
    put16(out, (unsigned)nlen);
    put16(out, 20);
    (void)buf_add(out, name, nlen);
    put16(out, 1);
    put16(out, 16);
    put64(out, len);
    put64(out, clen);
    (void)buf_add(out, comp, clen);
    cd = out->len;
    put32(out, 0x02014b50);
    put16(out, 45);
    put16(out, 45);
    put16(out, 0x0800);
    put16(out, 8);
    put16(out, 0);
    put16(out, 0x21);
    put32(out, crc);
    put32(out, 0xFFFFFFFFul);
    put32(out, 0xFFFFFFFFul);
    put16(out, (unsigned)nlen);
    put16(out, 28);
    put16(out, 0);
    put16(out, 0);
    put16(out, 0);
    put32(out, 0);
    put32(out, 0xFFFFFFFFul);
    (void)buf_add(out, name, nlen);
    put16(out, 1);
    put16(out, 24);
    put64(out, len);
    put64(out, clen);
    put64(out, 0);
    cdlen = out->len - cd;
    z64 = out->len;
    put32(out, 0x06064b50);
    put64(out, 44);
    put16(out, 45);
    put16(out, 45);
    put32(out, 0);
    put32(out, 0);
    put64(out, 1);
    put64(out, 1);
    put64(out, cdlen);
    put64(out, cd);
    put32(out, 0x07064b50);
    put32(out, 0);
    put64(out, z64);
    put32(out, 1);
    put32(out, 0x06054b50);
    put16(out, 0xFFFF);
    put16(out, 0xFFFF);
    put16(out, 0xFFFF);
    put16(out, 0xFFFF);
    put32(out, 0xFFFFFFFFul);
    put32(out, 0xFFFFFFFFul);
    put16(out, 0);
}

/* One-file zip (method 8, raw deflate). Returns ERR_OK and the archive in *out. */
static int
zip_one(const char *name, const char *data, size_t len, struct buf *out, int zip64)
{
    z_stream zs;
    unsigned long crc = crc32(0L, (const Bytef *)data, (uInt)len);
    uLong bound;
    unsigned char *comp;
    size_t clen;
    size_t nlen = strlen(name);

    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return ERR_NOMEM;
    bound = deflateBound(&zs, (uLong)len);
    comp = xmalloc(bound);
    zs.next_in = (Bytef *)(uintptr_t)data;
    zs.avail_in = (uInt)len;
    zs.next_out = comp;
    zs.avail_out = (uInt)bound;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
        deflateEnd(&zs);
        free(comp);
        return ERR_IO;
    }
    clen = zs.total_out;
    deflateEnd(&zs);
    if (zip64) {
        zip64_container(name, nlen, crc, comp, clen, len, out);
        free(comp);
        return ERR_OK;
    }
    /* local file header */
    put32(out, 0x04034b50);
    put16(out, 20);
    put16(out, 0x0800); /* UTF-8 names */
    put16(out, 8);
    put16(out, 0);
    put16(out, 0x21); /* 1980-01-01 */
    put32(out, crc);
    put32(out, (unsigned long)clen);
    put32(out, (unsigned long)len);
    put16(out, (unsigned)nlen);
    put16(out, 0);
    (void)buf_add(out, name, nlen);
    (void)buf_add(out, comp, clen);
    size_t cd = out->len;
    put32(out, 0x02014b50);
    put16(out, 20);
    put16(out, 20);
    put16(out, 0x0800);
    put16(out, 8);
    put16(out, 0);
    put16(out, 0x21);
    put32(out, crc);
    put32(out, (unsigned long)clen);
    put32(out, (unsigned long)len);
    put16(out, (unsigned)nlen);
    put16(out, 0);
    put16(out, 0);
    put16(out, 0);
    put16(out, 0);
    put32(out, 0);
    put32(out, 0);
    (void)buf_add(out, name, nlen);
    size_t cdlen = out->len - cd;
    put32(out, 0x06054b50);
    put16(out, 0);
    put16(out, 0);
    put16(out, 1);
    put16(out, 1);
    put32(out, (unsigned long)cdlen);
    put32(out, (unsigned long)cd);
    put16(out, 0);
    free(comp);
    return ERR_OK;
}

/* A localizable value as the default localizationType leaves it: a number standing for the name
 * (the name goes to Platform_loc). The numbers are the simulator's own. */
static const char *
platform_code(const char *platform)
{
    static const char *const names[] = {
        "windows",  "macOS", "ios", "androidWorkProfile", "androidDeviceAdministrator",
        "chromeOS", "linux"};
    static const char *const codes[] = {"1", "2", "3", "4", "5", "6", "7"};

    for (size_t i = 0; platform != NULL && i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(platform, names[i]) == 0)
            return codes[i];
    return "0";
}

/* Builds the CSV of a job (caller holds the world read lock). */
static void
export_csv(struct export_job *j, struct simtenant *t, struct buf *csv)
{
    int apps = strcmp(j->report, "AppInvRawData") == 0;
    size_t ncols = json_array_size(j->select);
    char v[512];

    int loc_col = 0; /* the default localizationType appends Platform_loc to a coded Platform */

    for (size_t i = 0; i < ncols; i++) {
        const char *col = json_string_value(json_array_get(j->select, i));

        csv_field(csv, col, i == 0);
        loc_col |= apps && j->codes && strcmp(col, "Platform") == 0;
    }
    if (loc_col)
        csv_field(csv, "Platform_loc", 0);
    (void)buf_addstr(csv, "\r\n");
    for (size_t di = 0; t && di < t->ndev; di++) {
        const struct simdev *d = t->devs[di];
        size_t rows = apps ? d->napps : 1;
        for (size_t a = 0; a < rows; a++) {
            const struct simapp *ap = apps ? &t->apps[d->apps[a]] : NULL;
            for (size_t i = 0; i < ncols; i++) {
                const char *col = json_string_value(json_array_get(j->select, i));
                v[0] = '\0';
                if (apps) {
                    int ui = simw_prop_index("userId"), ei = simw_prop_index("emailAddress"),
                        ni = simw_prop_index("userDisplayName");
                    const char *s = "";
                    if (strcmp(col, "ApplicationKey") == 0)
                        s = ap->id;
                    else if (strcmp(col, "ApplicationName") == 0)
                        s = ap->name;
                    else if (strcmp(col, "ApplicationPublisher") == 0)
                        s = ap->publisher ? ap->publisher : "";
                    else if (strcmp(col, "ApplicationVersion") == 0 ||
                             strcmp(col, "ApplicationShortVersion") == 0)
                        s = ap->version;
                    else if (strcmp(col, "DeviceId") == 0)
                        s = d->str[0];
                    else if (strcmp(col, "DeviceName") == 0)
                        s = d->str[simw_prop_index("deviceName")];
                    else if (strcmp(col, "OSDescription") == 0)
                        s = d->str[simw_prop_index("operatingSystem")];
                    else if (strcmp(col, "OSVersion") == 0)
                        s = d->str[simw_prop_index("osVersion")];
                    else if (strcmp(col, "Platform") == 0)
                        s = j->codes ? platform_code(ap->platform) : ap->platform;
                    else if (strcmp(col, "UserId") == 0)
                        s = d->str[ui];
                    else if (strcmp(col, "EmailAddress") == 0)
                        s = d->str[ei];
                    else if (strcmp(col, "UserName") == 0)
                        s = d->str[ni];
                    snprintf(v, sizeof v, "%s", s ? s : "");
                } else {
                    for (size_t k = 0; k < sizeof inv_cols / sizeof inv_cols[0]; k++)
                        if (strcasecmp(inv_cols[k].col, col) == 0) {
                            inv_value(d, inv_cols[k].col, inv_cols[k].prop, v, sizeof v);
                            break;
                        }
                    /* the report has the real Ethernet MAC, unlike the Graph list */
                    if (strcasecmp(col, "EthernetMAC") == 0) {
                        int p = simw_prop_index("ethernetMacAddress");
                        snprintf(v, sizeof v, "%s", d->str[p] ? d->str[p] : "");
                    }
                }
                csv_field(csv, v, i == 0);
            }
            if (loc_col)
                csv_field(csv, ap->platform, 0);
            (void)buf_addstr(csv, "\r\n");
        }
    }
    /* Padding: app rows of devices that left the tenant, as a large report holds many. */
    for (long p = 0; apps && p < j->pad_rows; p++) {
        char dev[40];

        snprintf(dev, sizeof dev, "00000000-0000-4000-8000-%012ld", p / 8);
        for (size_t i = 0; i < ncols; i++) {
            const char *col = json_string_value(json_array_get(j->select, i));

            if (strcmp(col, "DeviceId") == 0)
                snprintf(v, sizeof v, "%s", dev);
            else if (strcmp(col, "ApplicationKey") == 0)
                snprintf(v, sizeof v, "%064ld", p % 997);
            else if (strcmp(col, "ApplicationName") == 0)
                snprintf(v, sizeof v, "Line-of-business app %ld", p % 997);
            else if (strcmp(col, "ApplicationVersion") == 0)
                snprintf(v, sizeof v, "1.%ld.%ld", p % 13, p % 7);
            else if (strcmp(col, "Platform") == 0)
                snprintf(v, sizeof v, "%s", j->codes ? platform_code("windows") : "windows");
            else
                v[0] = '\0';
            csv_field(csv, v, i == 0);
        }
        if (loc_col)
            csv_field(csv, "windows", 0);
        (void)buf_addstr(csv, "\r\n");
    }
}

static json_t *
export_json(struct gctx *x, struct export_job *j, const char *status)
{
    char ctx[256], req[32], exp[32], url[512];
    json_t *o;

    snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#deviceManagement/reports/exportJobs/$entity",
             g.base, x->ver);
    clock_fmt(j->requested, req, sizeof req);
    o = json_pack("{s:s, s:s, s:s, s:o, s:s, s:O, s:s, s:n, s:s}", "@odata.context", ctx, "id",
                  j->id, "reportName", j->report, "filter",
                  j->filter ? json_string(j->filter) : json_string(""), "localizationType",
                  j->localization, "select", j->select, "format", "csv", "snapshotId", "status",
                  status);
    if (strcmp(status, "completed") == 0) {
        unsigned char sig[8];
        char hex[17];
        randombytes_buf(sig, sizeof sig);
        sodium_bin2hex(hex, sizeof hex, sig, sizeof sig);
        if (g.exp.url_host[0] != '\0') /* set_export url_host: a host memsync must refuse */
            snprintf(url, sizeof url, "https://%s/download/%s.zip?sv=2019-02-02&sr=b&sp=r&sig=%s",
                     g.exp.url_host, j->id, hex);
        else
            snprintf(url, sizeof url, "%s/download/%s.zip?sv=2019-02-02&sr=b&sp=r&sig=%s", g.base,
                     j->id, hex);
        json_object_set_new(o, "url", json_string(url));
        clock_fmt(clock_now() + 6 * 3600, exp, sizeof exp);
    } else {
        json_object_set_new(o, "url", json_null());
        snprintf(exp, sizeof exp, "%s", "0001-01-01T00:00:00Z");
    }
    json_object_set_new(o, "requestDateTime", json_string(req));
    json_object_set_new(o, "expirationDateTime", json_string(exp));
    return o;
}

struct resp *
sim_export_route(struct gctx *x, const char *method, const char *rest, const char *body,
                 size_t bodylen, enum route *rt)
{
    char key[128];
    const char *tid = x->partner ? g.w->partner_tenant_id : x->t->id;
    struct resp *r;

    *rt = R_EXPORT;
    if (*rest == '\0' && strcmp(method, "GET") == 0) {
        /* The tenant's jobs, newest first (a client checks here before it asks again). */
        json_t *arr = json_array();
        char ctx[256];

        pthread_mutex_lock(&g.mu);
        for (struct export_job *j = g.jobs; j; j = j->next)
            if (strcasecmp(j->tenant, tid) == 0) {
                json_t *o = export_json(x, j,
                                        j->zip          ? "completed"
                                        : j->polls >= 1 ? "inProgress"
                                                        : "notStarted");
                json_object_del(o, "@odata.context");
                json_array_append_new(arr, o);
            }
        pthread_mutex_unlock(&g.mu);
        snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#deviceManagement/reports/exportJobs",
                 g.base, x->ver);
        r = resp_new(200, GRAPH_CT);
        resp_json(r, json_pack("{s:s, s:o}", "@odata.context", ctx, "value", arr));
        return r;
    }
    if (*rest == '\0') {
        json_t *in, *sel;
        const char *report;
        if (strcmp(method, "POST") != 0)
            return graph_error(405, "BadRequest", "Method not allowed.");
        in = json_loadb(body ? body : "", bodylen, JSON_REJECT_DUPLICATES, NULL);
        report = in ? json_string_value(json_object_get(in, "reportName")) : NULL;
        if (report == NULL ||
            (strcmp(report, "DevicesWithInventory") != 0 && strcmp(report, "AppInvRawData") != 0 &&
             strcmp(report, "Devices") != 0)) {
            json_decref(in);
            return graph_error(400, "BadRequest", "Invalid or unsupported reportName.");
        }
        sel = json_object_get(in, "select");
        json_t *cols = json_array();
        int apps = strcmp(report, "AppInvRawData") == 0;
        if (json_is_array(sel) && json_array_size(sel) > 0) {
            size_t i;
            json_t *v;
            json_array_foreach(sel, i, v)
            {
                const char *c = json_string_value(v);
                int ok = 0;
                if (c && apps) {
                    for (size_t k = 0; k < sizeof app_cols / sizeof app_cols[0]; k++)
                        ok |= strcmp(app_cols[k], c) == 0;
                } else if (c) {
                    for (size_t k = 0; k < sizeof inv_cols / sizeof inv_cols[0]; k++)
                        ok |= strcasecmp(inv_cols[k].col, c) == 0;
                }
                if (!ok) {
                    char msg[256];
                    snprintf(msg, sizeof msg, "Invalid select column '%.100s' for report %s.",
                             c ? c : "?", report);
                    json_decref(cols);
                    json_decref(in);
                    return graph_error(400, "BadRequest", msg);
                }
                json_array_append_new(cols, json_string(c));
            }
        } else if (apps) {
            for (size_t k = 0; k < sizeof app_cols / sizeof app_cols[0]; k++)
                json_array_append_new(cols, json_string(app_cols[k]));
        } else {
            for (size_t k = 0; k < sizeof inv_default / sizeof inv_default[0]; k++)
                json_array_append_new(cols, json_string(inv_default[k]));
        }
        struct export_job *j = xcalloc(1, sizeof(*j));
        char guid[37];
        rand_guid(guid);
        snprintf(j->id, sizeof j->id, "%s_%s", report, guid);
        snprintf(j->tenant, sizeof j->tenant, "%s", tid);
        snprintf(j->report, sizeof j->report, "%s", report);
        j->select = cols;
        j->filter = xstrdup(json_string_value(json_object_get(in, "filter")));
        {
            const char *lt = json_string_value(json_object_get(in, "localizationType"));
            snprintf(j->localization, sizeof j->localization, "%s",
                     lt && strlen(lt) < sizeof j->localization
                         ? lt
                         : "LocalizedValuesAsAdditionalColumn");
        }
        j->requested = clock_now();
        json_decref(in);
        r = resp_new(201, GRAPH_CT);
        resp_json(r, export_json(x, j, "notStarted"));
        pthread_mutex_lock(&g.mu);
        /* keep at most 256 jobs: drop the oldest */
        size_t n = 0;
        struct export_job **pp = &g.jobs;
        while (*pp && n < 255) {
            pp = &(*pp)->next;
            n++;
        }
        while (*pp) {
            struct export_job *old = *pp;
            *pp = old->next;
            json_decref(old->select);
            free(old->filter);
            free(old->zip);
            free(old);
        }
        j->next = g.jobs;
        g.jobs = j;
        pthread_mutex_unlock(&g.mu);
        return r;
    }
    if (path_key(rest, key, sizeof key) == NULL || strcmp(method, "GET") != 0)
        return graph_error(400, "BadRequest", "Bad request path.");
    pthread_mutex_lock(&g.mu);
    struct export_job *j;
    for (j = g.jobs; j; j = j->next)
        if (strcmp(j->id, key) == 0 && strcasecmp(j->tenant, tid) == 0)
            break;
    if (j == NULL) {
        pthread_mutex_unlock(&g.mu);
        return graph_error(404, "ResourceNotFound", "The export job was not found.");
    }
    j->polls++;
    const char *status = j->polls >= 2 ? "completed" : "inProgress";
    if (j->polls >= 2 && j->zip == NULL) {
        /* build the CSV without holding g.mu (lock order: world lock, then g.mu) */
        struct export_job tmp;
        struct buf csv, zip;
        char name[128];
        int zip64 = g.exp.zip64;
        memset(&tmp, 0, sizeof tmp);
        snprintf(tmp.localization, sizeof tmp.localization, "%s", j->localization);
        tmp.pad_rows = g.exp.pad_rows;
        tmp.codes =
            g.exp.localized_codes && strcasecmp(j->localization, "replaceLocalizableValues") != 0;
        snprintf(tmp.id, sizeof tmp.id, "%s", j->id);
        snprintf(tmp.report, sizeof tmp.report, "%s", j->report);
        tmp.select = json_deep_copy(j->select);
        pthread_mutex_unlock(&g.mu);
        buf_init(&csv, SIM_PAGE_MAX);
        buf_init(&zip, SIM_PAGE_MAX);
        pthread_rwlock_rdlock(&g.w->lock);
        export_csv(&tmp, x->t, &csv);
        pthread_rwlock_unlock(&g.w->lock);
        snprintf(name, sizeof name, "%s.csv", tmp.id);
        (void)zip_one(name, buf_cstr(&csv), csv.len, &zip, zip64);
        buf_free(&csv);
        json_decref(tmp.select);
        pthread_mutex_lock(&g.mu);
        for (j = g.jobs; j; j = j->next)
            if (strcmp(j->id, tmp.id) == 0)
                break;
        if (j == NULL) {
            pthread_mutex_unlock(&g.mu);
            buf_free(&zip);
            return graph_error(404, "ResourceNotFound", "The export job was not found.");
        }
        if (j->zip == NULL && zip.len > 0)
            j->zip = (unsigned char *)buf_detach(&zip, &j->ziplen);
        buf_free(&zip);
    }
    r = resp_new(200, GRAPH_CT);
    resp_json(r, export_json(x, j, status));
    pthread_mutex_unlock(&g.mu);
    return r;
}

/* The first byte of a "Range: bytes=N-" request, 0 without one, -1 for a form not served. */
static long long
range_start(struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    char *end = NULL;
    long long v;

    if (h == NULL)
        return 0;
    if (strncmp(h, "bytes=", 6) != 0 || h[6] < '0' || h[6] > '9')
        return -1;
    errno = 0;
    v = strtoll(h + 6, &end, 10);
    return errno == 0 && end != NULL && *end == '-' && end[1] == '\0' ? v : -1;
}

/* The blob of a completed job, as Azure Blob Storage serves it: Accept-Ranges, 206 for an open
 * byte range. With set_export: bytes_per_s paces it, drop_after cuts the next one short. */
static struct resp *
export_download(struct MHD_Connection *c, const char *rest)
{
    char id[128];
    const char *dot = strstr(rest, ".zip");
    size_t n = dot ? (size_t)(dot - rest) : 0;
    long long from = range_start(c);
    struct resp *r = NULL;

    if (n == 0 || n >= sizeof id)
        return graph_error(404, "BlobNotFound", "The specified blob does not exist.");
    memcpy(id, rest, n);
    id[n] = '\0';
    pthread_mutex_lock(&g.mu);
    for (struct export_job *j = g.jobs; j; j = j->next) {
        if (strcmp(j->id, id) == 0 && j->zip) {
            if (from < 0 || (size_t)from >= j->ziplen) {
                char cr[64];

                r = graph_error(416, "InvalidRange", "The range specified is invalid.");
                snprintf(cr, sizeof cr, "bytes */%zu", j->ziplen);
                resp_hdr(r, "Content-Range", cr);
                break;
            }
            r = resp_new(from > 0 ? 206 : 200, "application/octet-stream");
            r->len = j->ziplen - (size_t)from;
            r->body = xmalloc(r->len);
            memcpy(r->body, j->zip + from, r->len);
            resp_hdr(r, "Accept-Ranges", "bytes");
            if (from > 0) {
                char cr[96];

                snprintf(cr, sizeof cr, "bytes %lld-%zu/%zu", from, j->ziplen - 1, j->ziplen);
                resp_hdr(r, "Content-Range", cr);
                g.download_ranges++;
            }
            r->rate_bps = g.exp.bytes_per_s;
            if (g.exp.drop_after > 0) { /* once */
                r->drop_at = (size_t)g.exp.drop_after;
                g.exp.drop_after = 0;
            }
            break;
        }
    }
    pthread_mutex_unlock(&g.mu);
    return r ? r : graph_error(404, "BlobNotFound", "The specified blob does not exist.");
}

/* set_export (control op) and the scenario's "export" member. */
static int
set_export(json_t *o, char *err, size_t errlen)
{
    json_t *v;

    if ((v = json_object_get(o, "pad_rows")) && json_is_integer(v)) {
        if (json_integer_value(v) < 0 || json_integer_value(v) > 20000000) {
            snprintf(err, errlen, "pad_rows must be 0..20000000");
            return ERR_INVAL;
        }
        g.exp.pad_rows = (long)json_integer_value(v);
    }
    if ((v = json_object_get(o, "bytes_per_s")) && json_is_integer(v))
        g.exp.bytes_per_s = json_integer_value(v) > 0 ? (long)json_integer_value(v) : 0;
    if ((v = json_object_get(o, "drop_after")) && json_is_integer(v))
        g.exp.drop_after = json_integer_value(v) > 0 ? (long)json_integer_value(v) : 0;
    if ((v = json_object_get(o, "zip64")) && json_is_boolean(v))
        g.exp.zip64 = json_is_true(v);
    if ((v = json_object_get(o, "localized_codes")) && json_is_boolean(v))
        g.exp.localized_codes = json_is_true(v);
    if ((v = json_object_get(o, "url_host")) && (json_is_string(v) || json_is_null(v)))
        snprintf(g.exp.url_host, sizeof g.exp.url_host, "%s",
                 json_is_string(v) ? json_string_value(v) : "");
    return ERR_OK;
}

/* --- control API ---------------------------------------------------------------------------- */

/* Control API for tests: GET /_sim/world, GET /_sim/stats, POST /_sim/control. */

static struct simtenant *
ctl_tenant(json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        return i >= 0 && (size_t)i < g.w->ntenants ? g.w->tenants[i] : NULL;
    }
    return simw_tenant_by_id(g.w, json_string_value(v));
}

static enum simw_fault_kind
fault_kind_parse(const char *s)
{
    if (s == NULL)
        return SIMW_FAULT_NONE;
    if (strcmp(s, "status") == 0 || strcmp(s, "error") == 0)
        return SIMW_FAULT_STATUS;
    if (strcmp(s, "drop") == 0)
        return SIMW_FAULT_DROP;
    if (strcmp(s, "truncate") == 0)
        return SIMW_FAULT_TRUNCATE;
    if (strcmp(s, "latency") == 0)
        return SIMW_FAULT_LATENCY;
    if (strcmp(s, "429") == 0 || strcmp(s, "throttle") == 0)
        return SIMW_FAULT_429;
    if (strcmp(s, "slow") == 0)
        return SIMW_FAULT_SLOW;
    if (strcmp(s, "bom") == 0)
        return SIMW_FAULT_BOM;
    if (strcmp(s, "short") == 0)
        return SIMW_FAULT_SHORT;
    if (strcmp(s, "rename") == 0 || strcmp(s, "rename_during_listing") == 0)
        return SIMW_FAULT_RENAME;
    return SIMW_FAULT_NONE;
}

/* Adds a fault from its JSON description (control op or scenario). Caller holds g.mu. */
static int
fault_add(json_t *o, char *err, size_t errlen)
{
    struct simw_fault f;
    json_t *tv = json_object_get(o, "tenant");
    const char *route = json_string_value(json_object_get(o, "route"));
    json_t *ra = json_object_get(o, "retry_after");
    json_t *cnt = json_object_get(o, "count");

    memset(&f, 0, sizeof f);
    f.kind = fault_kind_parse(json_string_value(json_object_get(o, "kind")));
    if (f.kind == SIMW_FAULT_NONE) {
        snprintf(err, errlen,
                 "unknown fault kind (status, drop, truncate, latency, 429, slow, bom, short, "
                 "rename)");
        return ERR_INVAL;
    }
    if (tv == NULL || (json_is_string(tv) && strcmp(json_string_value(tv), "*") == 0)) {
        snprintf(f.tenant, sizeof f.tenant, "*");
    } else {
        struct simtenant *t = ctl_tenant(tv);
        if (t == NULL && json_is_string(tv) &&
            strcasecmp(json_string_value(tv), g.w->partner_tenant_id) == 0) {
            snprintf(f.tenant, sizeof f.tenant, "%s", g.w->partner_tenant_id);
        } else if (t == NULL) {
            snprintf(err, errlen, "unknown tenant");
            return ERR_NOTFOUND;
        } else {
            snprintf(f.tenant, sizeof f.tenant, "%s", t->id);
        }
    }
    snprintf(f.route, sizeof f.route, "%s", route ? route : "*");
    if (route && strcmp(route, "*") != 0 && strcmp(route, "batch_item") != 0) {
        int ok = 0;
        for (int i = 0; i < R_COUNT; i++)
            ok |= strcmp(route_names[i], route) == 0;
        if (!ok) {
            snprintf(err, errlen, "unknown route '%.40s'", route);
            return ERR_INVAL;
        }
    }
    f.page = (int)json_integer_value(json_object_get(o, "page"));
    f.status = (int)json_integer_value(json_object_get(o, "status"));
    f.latency_ms = (int)json_integer_value(json_object_get(o, "latency_ms"));
    f.keep = (int)json_integer_value(json_object_get(o, "keep"));
    f.retry_after = json_is_number(ra) ? json_number_value(ra) : json_is_null(ra) ? -1 : 2.128;
    f.remaining = json_is_integer(cnt) ? (int)json_integer_value(cnt) : -1;
    f.bom = json_is_true(json_object_get(o, "bom"));
    if (f.remaining == 0)
        f.remaining = -1;
    if (json_integer_value(json_object_get(o, "for_ms")) > 0)
        f.until_ms = clock_mono_ms() + (int64_t)json_integer_value(json_object_get(o, "for_ms"));
    if (json_object_get(o, "rate") != NULL) {
        json_t *rv = json_object_get(o, "rate");

        if (!json_is_number(rv) || json_number_value(rv) <= 0 || json_number_value(rv) > 1) {
            snprintf(err, errlen, "rate must be a number above 0 and at most 1");
            return ERR_INVAL;
        }
        f.rate = json_number_value(rv) < 1 ? json_number_value(rv) : 0;
        uint64_t st = g.w->seed ^ ((uint64_t)(g.w->nfaults + 1) << 32);

        f.rng = simw_rand(&st); /* a stream of its own per fault */
    }
    snprintf(f.code, sizeof f.code, "%s",
             json_string_value(json_object_get(o, "code"))
                 ? json_string_value(json_object_get(o, "code"))
                 : "");
    snprintf(f.message, sizeof f.message, "%s",
             json_string_value(json_object_get(o, "message"))
                 ? json_string_value(json_object_get(o, "message"))
                 : "");
    g.w->faults = xrealloc(g.w->faults, (g.w->nfaults + 1) * sizeof(*g.w->faults));
    g.w->faults[g.w->nfaults++] = f;
    return ERR_OK;
}

static struct simw_app *
ctl_app(json_t *o)
{
    const char *a = json_string_value(json_object_get(o, "app"));
    return a && strcmp(a, "partner") == 0 ? &g.w->partner_app : &g.w->sync_app;
}

static void
set_tenant_flags(struct simtenant *t, json_t *o)
{
    json_t *v;

    if ((v = json_object_get(o, "consented")) && json_is_boolean(v))
        t->consented = json_is_true(v);
    if ((v = json_object_get(o, "intune_licensed")) && json_is_boolean(v))
        t->intune_licensed = json_is_true(v);
    if ((v = json_object_get(o, "permission")) && json_is_boolean(v))
        t->permission = json_is_true(v);
    if ((v = json_object_get(o, "exists")) && json_is_boolean(v))
        t->exists = json_is_true(v);
    if ((v = json_object_get(o, "intune_401")) && json_is_boolean(v))
        t->intune_401 = json_is_true(v);
    if ((v = json_object_get(o, "indirect_reseller")) && json_is_boolean(v)) {
        if (json_is_true(v)) {
            uint64_t st = g.w->seed ^ (uint64_t)t->index;
            simw_guid(&st, t->associated_partner);
        } else {
            t->associated_partner[0] = '\0';
        }
    }
    if ((v = json_object_get(o, "associated_partner_id")) && json_is_string(v))
        snprintf(t->associated_partner, sizeof t->associated_partner, "%s", json_string_value(v));
    if ((v = json_object_get(o, "cloud")) && json_is_string(v)) {
        const char *c = json_string_value(v);

        if (strcmp(c, "usgov") == 0 || strcmp(c, "usgovdod") == 0 || strcmp(c, "china") == 0)
            snprintf(t->cloud, sizeof t->cloud, "%s", c);
        else
            t->cloud[0] = '\0';
    }
    /* Graph permissions reference: an admin consent covers only the application roles the app
     * had when it was granted, so tenants consented before Organization.Read.All was added
     * answer /organization with 403 Authorization_RequestDenied. */
    if ((v = json_object_get(o, "org_readable")) && json_is_boolean(v))
        t->org_denied = !json_is_true(v);
    if ((v = json_object_get(o, "other_apps")) && (json_is_integer(v) || json_is_null(v)))
        t->other_apps = json_is_null(v) ? -1 : (long)json_integer_value(v);
}

static int
set_throttle(json_t *o)
{
    json_t *v;

    if ((v = json_object_get(o, "enabled")) && json_is_boolean(v))
        g.throttle = json_is_true(v);
    if ((v = json_object_get(o, "intune_limit")) && json_is_integer(v))
        g.intune_limit = (long)json_integer_value(v);
    if ((v = json_object_get(o, "intune_window_ms")) && json_is_integer(v))
        g.intune_window_ms = (long)json_integer_value(v);
    if ((v = json_object_get(o, "global_limit")) && json_is_integer(v))
        g.global_limit = (long)json_integer_value(v);
    if ((v = json_object_get(o, "global_window_ms")) && json_is_integer(v))
        g.global_window_ms = (long)json_integer_value(v);
    if ((v = json_object_get(o, "pc_limit")) && json_is_integer(v))
        g.pc_limit = (long)json_integer_value(v);
    if ((v = json_object_get(o, "pc_window_ms")) && json_is_integer(v))
        g.pc_window_ms = (long)json_integer_value(v);
    if ((v = json_object_get(o, "detected_apps_limit")) && json_is_integer(v))
        g.dapps_limit = (long)json_integer_value(v);
    if ((v = json_object_get(o, "tenant_limit")) && json_is_integer(v))
        g.tenant_limit = (long)json_integer_value(v);
    if ((v = json_object_get(o, "other_apps")) && json_is_integer(v))
        g.other_apps = (long)json_integer_value(v);
    if (g.tenant_limit <= 0)
        g.tenant_limit = 4000;
    if (g.intune_window_ms <= 0)
        g.intune_window_ms = 20000;
    if (g.global_window_ms <= 0)
        g.global_window_ms = 10000;
    if (g.pc_window_ms <= 0)
        g.pc_window_ms = 60000;
    g.nwins = 0; /* new limits start fresh windows */
    sidx_clear(&g.win_idx);
    return ERR_OK;
}

/* Runs one control op; fills *res with its result members. */
static int
control_op(json_t *o, json_t *res, char *err, size_t errlen)
{
    const char *op = json_string_value(json_object_get(o, "op"));
    struct simworld *w = g.w;
    struct simtenant *t = NULL;
    int rc = ERR_OK;

    if (op == NULL) {
        snprintf(err, errlen, "missing op");
        return ERR_INVAL;
    }
    if (strcmp(op, "fault") == 0) {
        pthread_rwlock_rdlock(&w->lock);
        pthread_mutex_lock(&g.mu);
        rc = fault_add(o, err, errlen);
        pthread_mutex_unlock(&g.mu);
        pthread_rwlock_unlock(&w->lock);
        return rc;
    }
    if (strcmp(op, "clear_faults") == 0) {
        pthread_mutex_lock(&g.mu);
        w->nfaults = 0;
        pthread_mutex_unlock(&g.mu);
        return ERR_OK;
    }
    if (strcmp(op, "set_throttle") == 0) {
        pthread_mutex_lock(&g.mu);
        rc = set_throttle(o);
        pthread_mutex_unlock(&g.mu);
        return rc;
    }
    if (strcmp(op, "request_log") == 0) {
        pthread_mutex_lock(&g.mu);
        reqlog_clear(json_is_true(json_object_get(o, "enabled")));
        pthread_mutex_unlock(&g.mu);
        return ERR_OK;
    }
    if (strcmp(op, "reset_stats") == 0) {
        pthread_mutex_lock(&g.mu);
        g.nstats = 0;
        sidx_clear(&g.stat_idx);
        g.total_requests = 0;
        g.throttled = 0;
        reqlog_clear(!g.reqlog_off);
        g.download_ranges = 0;
        pthread_mutex_unlock(&g.mu);
        return ERR_OK;
    }
    if (strcmp(op, "set_partner") == 0) {
        json_t *v = json_object_get(o, "application_read");

        if (json_is_boolean(v))
            __atomic_store_n(&g.no_app_read, !json_is_true(v), __ATOMIC_RELAXED);
        return ERR_OK;
    }
    if (strcmp(op, "set_export") == 0) {
        pthread_mutex_lock(&g.mu);
        rc = set_export(o, err, errlen);
        pthread_mutex_unlock(&g.mu);
        return rc;
    }
    if (strcmp(op, "set_latency") == 0) {
        __atomic_store_n(&g.latency_ms, (int)json_integer_value(json_object_get(o, "ms")),
                         __ATOMIC_RELAXED);
        return ERR_OK;
    }
    pthread_rwlock_wrlock(&w->lock);
    if (json_object_get(o, "tenant")) {
        t = ctl_tenant(json_object_get(o, "tenant"));
        if (t == NULL) {
            snprintf(err, errlen, "unknown tenant");
            rc = ERR_NOTFOUND;
            goto out;
        }
    }
    if (strcmp(op, "add_tenant") == 0) {
        const char *name = json_string_value(json_object_get(o, "name"));
        t = simw_add_tenant(w, name, (int)json_integer_value(json_object_get(o, "devices")));
        set_tenant_flags(t, o);
        json_object_set_new(res, "tenant", json_string(t->id));
    } else if (t == NULL && (strcmp(op, "add_devices") == 0 || strcmp(op, "remove_devices") == 0 ||
                             strcmp(op, "modify_device") == 0 || strcmp(op, "set_tenant") == 0 ||
                             strcmp(op, "revoke_consent") == 0)) {
        snprintf(err, errlen, "op %s needs a tenant", op);
        rc = ERR_INVAL;
    } else if (strcmp(op, "add_devices") == 0) {
        json_int_t n = json_integer_value(json_object_get(o, "count"));
        size_t before = t->ndev;
        if (n < 0 || n > 1000000) {
            snprintf(err, errlen, "count out of range");
            rc = ERR_INVAL;
            goto out;
        }
        simw_add_devices(w, t, (int)n);
        json_t *ids = json_array();
        for (size_t i = before; i < t->ndev; i++)
            json_array_append_new(ids, json_string(t->devs[i]->str[0]));
        json_object_set_new(res, "ids", ids);
    } else if (strcmp(op, "remove_devices") == 0) {
        json_t *ids = json_object_get(o, "ids"), *v;
        json_int_t last = json_integer_value(json_object_get(o, "last"));
        json_t *removed = json_array();
        size_t i;
        if (json_is_array(ids)) {
            json_array_foreach(ids, i, v)
            {
                long pos = json_is_string(v) ? simw_device_pos(t, json_string_value(v)) : -1;
                if (pos >= 0) {
                    json_array_append_new(removed, json_string(t->devs[pos]->str[0]));
                    simw_remove_device(t, (size_t)pos);
                }
            }
        }
        while (last-- > 0 && t->ndev > 0) {
            json_array_append_new(removed, json_string(t->devs[t->ndev - 1]->str[0]));
            simw_remove_device(t, t->ndev - 1);
        }
        json_object_set_new(res, "removed", removed);
    } else if (strcmp(op, "modify_device") == 0) {
        const char *id = json_string_value(json_object_get(o, "id"));
        long pos = id ? simw_device_pos(t, id) : -1;
        json_t *set = json_object_get(o, "set"), *v;
        const char *k;
        if (pos < 0) {
            snprintf(err, errlen, "unknown device");
            rc = ERR_NOTFOUND;
            goto out;
        }
        struct simdev *d = t->devs[pos];
        json_object_foreach(set, k, v)
        {
            int p = simw_prop_index(k);
            if (p <= 0) {
                snprintf(err, errlen, "cannot set property '%.60s'", k);
                rc = ERR_INVAL;
                goto out;
            }
            switch (simw_props[p].kind) {
            case SIMW_STR:
                simw_dev_set_str(d, p, json_string_value(v));
                break;
            case SIMW_BOOL:
            case SIMW_BOOLNULL:
                d->num[p] = json_is_null(v) ? -1 : json_is_true(v);
                break;
            case SIMW_INT64:
                d->num[p] = json_integer_value(v);
                break;
            case SIMW_DATE: {
                int64_t ts;
                if (!json_is_string(v) || clock_parse(json_string_value(v), &ts) != ERR_OK) {
                    snprintf(err, errlen, "bad date for '%.60s'", k);
                    rc = ERR_INVAL;
                    goto out;
                }
                d->num[p] = ts;
                break;
            }
            default:
                break;
            }
        }
        if (json_is_true(json_object_get(o, "touch"))) {
            /* forward to now, and never before the generated world's own "now" */
            int64_t now = clock_now();
            d->num[simw_prop_index("lastSyncDateTime")] =
                now > w->epoch + 3600 ? now : w->epoch + 3600;
        }
    } else if (strcmp(op, "set_tenant") == 0) {
        set_tenant_flags(t, o);
    } else if (strcmp(op, "revoke_consent") == 0) {
        t->consented = 0;
    } else if (strcmp(op, "expire_secret") == 0) {
        struct simw_app *a = ctl_app(o);
        const char *which = json_string_value(json_object_get(o, "which"));
        int64_t when = clock_now() - 60;
        if (json_is_string(json_object_get(o, "expires")))
            (void)clock_parse(json_string_value(json_object_get(o, "expires")), &when);
        for (int i = 0; i < a->nsecrets; i++)
            if (which == NULL || strcmp(which, "all") == 0 ||
                (strcmp(which, "old") == 0 ? i < a->nsecrets - 1 : i == a->nsecrets - 1))
                a->secrets[i].expires = when;
    } else if (strcmp(op, "add_secret") == 0 || strcmp(op, "rotate_secret") == 0) {
        struct simw_app *a = ctl_app(o);
        int64_t exp = clock_now() + 180 * 86400;
        const char *s = simw_secret_add(w, a, exp);
        json_object_set_new(res, "secret", json_string(s));
        if (strcmp(op, "rotate_secret") == 0) {
            /* the old secrets stop working at once */
            for (int i = 0; i < a->nsecrets - 1; i++)
                free(a->secrets[i].value);
            a->secrets[0] = a->secrets[a->nsecrets - 1];
            a->nsecrets = 1;
        }
    } else if (strcmp(op, "set_apps") == 0) {
        json_int_t k = json_integer_value(json_object_get(o, "apps_per_device"));
        if (k < 0 || k > 60) {
            snprintf(err, errlen, "apps_per_device must be 0..60");
            rc = ERR_INVAL;
            goto out;
        }
        w->apps_per_device = (int)k;
        for (size_t i = 0; i < w->ntenants; i++)
            if (t == NULL || w->tenants[i] == t)
                simw_assign_apps(w, w->tenants[i], (int)k);
    } else {
        snprintf(err, errlen, "unknown op '%.40s'", op);
        rc = ERR_INVAL;
    }
out:
    pthread_rwlock_unlock(&w->lock);
    return rc;
}

static json_t *
world_json(void)
{
    struct simworld *w = g.w;
    json_t *ts = json_array();

    pthread_rwlock_rdlock(&w->lock);
    for (size_t i = 0; i < w->ntenants; i++) {
        struct simtenant *t = w->tenants[i];
        size_t napps = 0;
        for (size_t a = 0; a < t->napps; a++)
            napps += t->apps[a].device_count > 0;
        json_array_append_new(
            ts,
            json_pack(
                "{s:i, s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:b, s:b, s:b, s:s?, s:b, s:s, s:b, s:o}",
                "index", t->index, "id", t->id, "name", t->name, "domain", t->domain,
                "initial_domain", t->initial_domain, "devices", (json_int_t)t->ndev, "apps",
                (json_int_t)napps, "consented", t->consented, "intune_licensed", t->intune_licensed,
                "permission", t->permission, "exists", t->exists, "associated_partner_id",
                t->associated_partner[0] ? t->associated_partner : NULL, "intune_401",
                t->intune_401, "cloud", t->cloud[0] ? t->cloud : "global", "org_readable",
                !t->org_denied, "other_apps",
                t->other_apps >= 0 ? json_integer(t->other_apps) : json_null()));
    }
    json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:i, s:o}", "seed", (json_int_t)w->seed,
                          "partner_tenant_id", w->partner_tenant_id, "partner_app_id",
                          w->partner_app.id, "sync_app_id", w->sync_app.id, "base_url", g.base,
                          "apps_per_device", w->apps_per_device, "tenants", ts);
    pthread_rwlock_unlock(&w->lock);
    return o;
}

static json_t *
stats_json(void)
{
    json_t *routes = json_object();

    pthread_mutex_lock(&g.mu);
    for (size_t i = 0; i < g.nstats; i++) {
        json_t *r = json_object_get(routes, g.stats[i].route);
        if (r == NULL) {
            r = json_object();
            json_object_set_new(routes, g.stats[i].route, r);
        }
        json_object_set_new(r, g.stats[i].tenant, json_integer(g.stats[i].count));
    }
    json_t *o = json_pack("{s:I, s:I, s:o, s:I}", "total", (json_int_t)g.total_requests,
                          "throttled", (json_int_t)g.throttled, "requests", routes,
                          "download_ranges", (json_int_t)g.download_ranges);
    pthread_mutex_unlock(&g.mu);
    return o;
}

static struct resp *
control_route(struct MHD_Connection *c, const char *method, const char *rest, const char *body,
              size_t len)
{
    struct resp *r;

    (void)c;
    if (strcmp(rest, "world") == 0 && strcmp(method, "GET") == 0) {
        r = resp_new(200, JSON_CT);
        resp_json(r, world_json());
        return r;
    }
    if (strcmp(rest, "requests") == 0 && strcmp(method, "GET") == 0) {
        r = resp_new(200, JSON_CT);
        resp_json(r, reqlog_json());
        return r;
    }
    if (strcmp(rest, "stats") == 0 && strcmp(method, "GET") == 0) {
        r = resp_new(200, JSON_CT);
        resp_json(r, stats_json());
        return r;
    }
    if (strcmp(rest, "control") == 0 && strcmp(method, "POST") == 0) {
        json_error_t je;
        json_t *in = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
        json_t *ops, *results = json_array(), *it;
        size_t i;
        char err[256] = "";
        if (in == NULL) {
            json_decref(results);
            r = resp_new(400, JSON_CT);
            resp_json(r, json_pack("{s:b, s:s}", "ok", 0, "error", je.text));
            return r;
        }
        ops = json_is_array(in) ? json_incref(in) : json_pack("[O]", in);
        json_array_foreach(ops, i, it)
        {
            json_t *res = json_object();
            if (!json_is_object(it) || control_op(it, res, err, sizeof err) != ERR_OK) {
                json_decref(res);
                json_decref(results);
                json_decref(ops);
                json_decref(in);
                r = resp_new(400, JSON_CT);
                resp_json(r, json_pack("{s:b, s:s, s:I}", "ok", 0, "error", err[0] ? err : "bad op",
                                       "index", (json_int_t)i));
                return r;
            }
            json_array_append_new(results, res);
        }
        json_decref(ops);
        json_decref(in);
        r = resp_new(200, JSON_CT);
        resp_json(r, json_pack("{s:b, s:o}", "ok", 1, "results", results));
        return r;
    }
    r = resp_new(404, JSON_CT);
    resp_json(r, json_pack("{s:b, s:s}", "ok", 0, "error", "no such control route"));
    return r;
}

/* --- dispatch ------------------------------------------------------------------------------- */

static void
request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                  enum MHD_RequestTerminationCode toe)
{
    struct req *q = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (q == NULL)
        return;
    buf_free(&q->body);
    resp_free(q->pending);
    free(q);
    *con_cls = NULL;
}

static enum MHD_Result
arg_len_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    size_t *n = cls;

    (void)kind;
    *n += strlen(key) + (value ? strlen(value) : 0) + 2;
    return MHD_YES;
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
        const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct req *q = *con_cls;
    struct resp *r = NULL;
    enum route rt = R_OTHER;
    const char *tenant = NULL;
    char tbuf[40] = "";

    (void)cls;
    (void)version;
    if (q == NULL) {
        q = xcalloc(1, sizeof(*q));
        buf_init(&q->body, SIM_BODY_MAX);
        *con_cls = q;
        return MHD_YES;
    }
    if (q->pending) {
        /* resumed after an injected delay */
        struct resp *p = q->pending;
        q->pending = NULL;
        return queue_resp(c, p);
    }
    if (*upload_data_size > 0) {
        if (!q->toobig && buf_add(&q->body, upload_data, *upload_data_size) != ERR_OK) {
            q->toobig = 1;
            buf_free(&q->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (q->done)
        return MHD_YES;
    size_t qlen = 0;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, arg_len_cb, &qlen);
    if (strlen(url) + qlen > SIM_URL_MAX) {
        r = graph_error(414, "BadRequest", "The request URL is too long.");
        goto send;
    }
    if (q->toobig) {
        r = graph_error(413, "RequestEntityTooLarge", "The request body is too large.");
        goto send;
    }
    if (strncmp(url, "/login/", 7) == 0) {
        char ten[256];
        const char *s = url + 7, *e = strchr(s, '/');
        size_t n = e ? (size_t)(e - s) : strlen(s);
        if (n == 0 || n >= sizeof ten) {
            r = aad_error(400, "invalid_request", 90002, "Tenant not found.");
            goto send;
        }
        memcpy(ten, s, n);
        ten[n] = '\0';
        e = s + n;
        if (strcmp(e, "/oauth2/v2.0/token") == 0 || strcmp(e, "/oauth2/token") == 0) {
            int v2 = strcmp(e, "/oauth2/v2.0/token") == 0;
            struct simw_fault f;
            enum simw_fault_kind mode = SIMW_FAULT_NONE;
            int delay = 0;
            rt = v2 ? R_TOKEN_V2 : R_TOKEN_V1;
            if (strcmp(method, "POST") != 0) {
                r = aad_error(405, "invalid_request", 900561,
                              "The endpoint only accepts POST requests. Received a %.8s "
                              "request.",
                              method);
                goto send;
            }
            pthread_rwlock_rdlock(&g.w->lock);
            struct simtenant *tt = simw_tenant_by_id(g.w, ten);
            snprintf(tbuf, sizeof tbuf, "%s", tt ? tt->id : ten);
            pthread_rwlock_unlock(&g.w->lock);
            tenant = tbuf;
            if (fault_take(rt, tenant, 0, &f)) {
                if (f.kind == SIMW_FAULT_STATUS && f.code[0] && strncmp(f.code, "AADSTS", 6) == 0) {
                    r = aad_fault(strtol(f.code + 6, NULL, 10), f.status, f.message);
                    if (f.bom)
                        r->mode = SIMW_FAULT_BOM;
                    goto send;
                }
                r = fault_apply(&f, 0, &mode, &delay);
                if (r)
                    goto send;
            }
            const char *tout = NULL;
            r = handle_token(c, ten, v2, q, &tout);
            r->mode = mode;
            r->delay_ms = delay;
        } else if (strcmp(e, "/v2.0/.well-known/openid-configuration") == 0) {
            rt = R_OPENID;
            r = handle_openid(ten);
        } else {
            r = aad_error(404, "invalid_request", 900561, "The endpoint was not found.");
        }
        goto send;
    }
    if (strncmp(url, "/pc/v1/customers", 16) == 0) {
        struct simw_fault f;
        enum simw_fault_kind mode = SIMW_FAULT_NONE;
        int delay = 0;
        rt = url[16] ? R_CUSTOMER : R_CUSTOMERS;
        tenant = g.w->partner_tenant_id;
        if (strcmp(method, "GET") != 0) {
            r = pc_error(405, "405", "Method not allowed.");
            goto send;
        }
        double wait = throttle_hit("pc|customers", TH_PC, 0);
        if (wait > 0) {
            r = pc_429((int)(wait + 0.999));
            goto send;
        }
        if (fault_take(rt, tenant, 0, &f)) {
            r = fault_apply(&f, 0, &mode, &delay);
            if (r)
                goto send;
        }
        r = handle_customers(c, url + 16);
        r->mode = mode;
        r->delay_ms = delay;
        {
            const char *rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "MS-RequestId");
            const char *cid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "MS-CorrelationId");
            char g1[37];
            rand_guid(g1);
            resp_hdr(r, "MS-RequestId", rid && strlen(rid) < 64 ? rid : g1);
            resp_hdr(r, "MS-CorrelationId", cid && strlen(cid) < 64 ? cid : g1);
            resp_hdr(r, "MS-CV", "memsync-sim.0");
        }
        goto send;
    }
    if (strncmp(url, "/graph/v1.0/", 12) == 0 || strncmp(url, "/graph/beta/", 12) == 0) {
        struct gctx x;
        memset(&x, 0, sizeof x);
        x.c = c;
        x.beta = url[7] == 'b';
        snprintf(x.ver, sizeof x.ver, "%s", x.beta ? "beta" : "v1.0");
        rt = graph_classify(url + 11);
        r = graph_auth(c, &x);
        if (r == NULL) {
            tenant = x.partner ? g.w->partner_tenant_id : x.t->id;
            r = graph_request(&x, c, method, url + 11, q->body.data, q->body.len, 1);
        }
        graph_headers(c, r);
        goto send;
    }
    if (strncmp(url, "/_sim/", 6) == 0) {
        rt = R_CONTROL;
        r = control_route(c, method, url + 6, q->body.data, q->body.len);
        goto send;
    }
    if (strncmp(url, "/download/", 10) == 0) {
        rt = R_DOWNLOAD;
        r = export_download(c, url + 10);
        goto send;
    }
    if (strncmp(url, "/pc/", 4) == 0)
        r = pc_error(404, "404", "The requested resource was not found.");
    else
        r = graph_error(404, "NotFound", "No such route in the memsync simulator.");
send:
    if (rt != R_CONTROL) {
        stat_count(rt, tenant, r->status == 429);
        reqlog_add(c, rt, tenant, method, r);
    }
    if (log_enabled(LOG_DEBUG)) {
        /* the path only: queries may carry skiptokens, never secrets, but keep lines short */
        char red[512];
        log_redact_url(url, red, sizeof red);
        log_debug("sim request method=%s path=%s status=%d route=%s tenant=%s", method, red,
                  r->status, route_names[rt], tenant ? tenant : "-");
    }
    return send_resp(c, q, r);
}

/* --- startup -------------------------------------------------------------------------------- */

static int
write_env_file(const char *path, const char *ca_file)
{
    struct simworld *w = g.w;
    char tmp[4096];
    FILE *f;
    int fd;

    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return ERR_IO;
    f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return ERR_IO;
    }
    fprintf(f, "MEMSYNC_LOGIN_URL='%s/login'\n", g.base);
    fprintf(f, "MEMSYNC_GRAPH_URL='%s/graph'\n", g.base);
    fprintf(f, "MEMSYNC_PARTNER_CENTER_URL='%s/pc'\n", g.base);
    if (ca_file)
        fprintf(f, "MEMSYNC_CA_FILE='%s'\n", ca_file);
    fprintf(f, "MEMSYNC_SIM_PARTNER_TENANT_ID='%s'\n", w->partner_tenant_id);
    fprintf(f, "MEMSYNC_SIM_PARTNER_APP_ID='%s'\n", w->partner_app.id);
    fprintf(f, "MEMSYNC_SIM_PARTNER_APP_SECRET='%s'\n",
            w->partner_app.secrets[w->partner_app.nsecrets - 1].value);
    fprintf(f, "MEMSYNC_SIM_SYNC_APP_ID='%s'\n", w->sync_app.id);
    fprintf(f, "MEMSYNC_SIM_SYNC_APP_SECRET='%s'\n",
            w->sync_app.secrets[w->sync_app.nsecrets - 1].value);
    if (fflush(f) != 0 || fsync(fd) != 0) {
        fclose(f);
        unlink(tmp);
        return ERR_IO;
    }
    fclose(f);
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return ERR_IO;
    }
    return ERR_OK;
}

/* --- scenarios ------------------------------------------------------------------------------ */

/* Built-in scenarios, generated rather than stored so they stay in step with the code. */
static json_t *
builtin_scenario(const char *name)
{
    if (strcmp(name, "demo") == 0) {
        return json_pack("{s:I, s:[{s:i},{s:i},{s:i},{s:i},{s:i}], s:i}", "seed", (json_int_t)1,
                         "tenants", "devices", 12, "devices", 40, "devices", 7, "devices", 150,
                         "devices", 25, "apps_per_device", 15);
    }
    if (strcmp(name, "faults") == 0) {
        json_t *ts = json_array(), *fs = json_array();
        for (int i = 0; i < 20; i++)
            json_array_append_new(ts, json_pack("{s:i}", "devices", 30));
        json_object_set_new(json_array_get(ts, 6), "consented", json_false());
        json_object_set_new(json_array_get(ts, 7), "exists", json_false());
        json_object_set_new(json_array_get(ts, 8), "intune_licensed", json_false());
        json_object_set_new(json_array_get(ts, 9), "permission", json_false());
        json_object_set_new(json_array_get(ts, 10), "indirect_reseller", json_true());
        /* A reseller's customer has not consented the MSP's sync app: 700016 there. */
        json_object_set_new(json_array_get(ts, 10), "consented", json_false());
        json_array_append_new(fs, json_pack("{s:i, s:s, s:s, s:f}", "tenant", 11, "route",
                                            "managedDevices", "kind", "429", "retry_after", 1.5));
        json_array_append_new(fs,
                              json_pack("{s:i, s:s, s:s, s:i, s:i}", "tenant", 12, "route",
                                        "managedDevices", "kind", "drop", "page", 1, "count", 2));
        json_array_append_new(fs, json_pack("{s:i, s:s, s:s, s:i, s:n}", "tenant", 13, "route",
                                            "managedDevices", "kind", "status", "status", 503,
                                            "retry_after"));
        json_array_append_new(fs, json_pack("{s:i, s:s, s:s}", "tenant", 14, "route",
                                            "managedDevices", "kind", "truncate"));
        json_array_append_new(fs, json_pack("{s:i, s:s, s:s, s:i}", "tenant", 15, "route",
                                            "organization", "kind", "status", "status", 500));
        json_array_append_new(fs, json_pack("{s:i, s:s, s:s, s:i}", "tenant", 16, "route", "*",
                                            "kind", "latency", "latency_ms", 1500));
        json_array_append_new(fs, json_pack("{s:i, s:s, s:s, s:i}", "tenant", 17, "route",
                                            "managedDevices", "kind", "status", "status", 401));
        /* One 429 without Retry-After: memsync waits out Intune's 20 s window for it. */
        json_array_append_new(fs, json_pack("{s:i, s:s, s:s, s:n, s:i}", "tenant", 18, "route",
                                            "managedDevices", "kind", "429", "retry_after", "count",
                                            1));
        json_array_append_new(fs, json_pack("{s:i, s:s, s:s, s:i}", "tenant", 19, "route",
                                            "managedDevices", "kind", "status", "status", 500));
        return json_pack("{s:I, s:o, s:i, s:o}", "seed", (json_int_t)7, "tenants", ts,
                         "apps_per_device", 10, "faults", fs);
    }
    if (strcmp(name, "msp-reference") == 0) {
        /* 200 tenants, 40,000 devices, Zipf-like sizes: a few with thousands, many small */
        json_t *ts = json_array();
        double h = 0;
        int sum = 0, sizes[200];
        for (int i = 0; i < 200; i++)
            h += 1.0 / (i + 1);
        for (int i = 0; i < 200; i++) {
            sizes[i] = (int)(40000.0 / h / (i + 1));
            if (sizes[i] < 1)
                sizes[i] = 1;
            sum += sizes[i];
        }
        sizes[0] += 40000 - sum;
        for (int i = 0; i < 200; i++)
            json_array_append_new(ts, json_pack("{s:i}", "devices", sizes[(i * 37) % 200]));
        return json_pack("{s:I, s:o, s:i}", "seed", (json_int_t)42, "tenants", ts,
                         "apps_per_device", 50);
    }
    return NULL;
}

static json_t *
load_scenario(const char *arg, struct errbuf *eb)
{
    json_error_t je;
    json_t *j = builtin_scenario(arg);

    if (j)
        return j;
    j = json_load_file(arg, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        char alt[512];
        /* a bare name may also refer to scenarios/NAME.json */
        snprintf(alt, sizeof alt, "scenarios/%s.json", arg);
        j = json_load_file(alt, JSON_REJECT_DUPLICATES, NULL);
    }
    if (j == NULL) {
        err_set(eb, ERR_PARSE, "scenario %s: %s (line %d)", arg, je.text, je.line);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        err_set(eb, ERR_PARSE, "scenario %s: the top level must be an object", arg);
        return NULL;
    }
    {
        static const char *const known[] = {
            "seed",   "devices", "apps_per_device", "latency_ms", "tenants", "throttle",
            "faults", "secrets", "description",     "export",     "partner"};
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            int ok = 0;
            for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
                ok |= strcmp(k, known[i]) == 0;
            if (!ok)
                log_warn("sim scenario member ignored name=%s", k);
        }
    }
    return j;
}

struct simopts {
    const char *listen;
    const char *env_file;
    const char *scenario;
    int tenants, devices, apps;
    uint64_t seed;
    int latency_ms;
    int tls;
    int throttle;
    int threads;
    long intune_limit, intune_window_ms, global_limit, global_window_ms, pc_limit, pc_window_ms;
    int set_seed, set_tenants, set_devices, set_apps;
};

static int
build_world(struct simopts *o, json_t *sc, struct errbuf *eb)
{
    struct simw_opts wo = {o->seed, 0, o->devices, o->apps};
    json_t *v, *tl;

    if (sc) {
        if (!o->set_seed && json_is_integer(json_object_get(sc, "seed")))
            wo.seed = (uint64_t)json_integer_value(json_object_get(sc, "seed"));
        if (!o->set_devices && json_is_integer(json_object_get(sc, "devices")))
            wo.devices = (int)json_integer_value(json_object_get(sc, "devices"));
        if (!o->set_apps && json_is_integer(json_object_get(sc, "apps_per_device")))
            wo.apps_per_device = (int)json_integer_value(json_object_get(sc, "apps_per_device"));
        if (json_is_integer(json_object_get(sc, "latency_ms")) && o->latency_ms == 0)
            o->latency_ms = (int)json_integer_value(json_object_get(sc, "latency_ms"));
    }
    if (wo.devices < 0 || wo.devices > 1000000 || wo.apps_per_device < 0 || wo.apps_per_device > 60)
        return err_set(eb, ERR_USAGE, "devices must be 0..1000000 and apps-per-device 0..60");
    g.w = simw_new(&wo);
    tl = sc ? json_object_get(sc, "tenants") : NULL;
    if (o->set_tenants || tl == NULL) {
        int n = o->set_tenants || !json_is_integer(tl) ? o->tenants : (int)json_integer_value(tl);
        for (int i = 0; i < n; i++)
            simw_add_tenant(g.w, NULL, wo.devices);
    } else if (json_is_integer(tl)) {
        for (json_int_t i = 0; i < json_integer_value(tl) && i < 100000; i++)
            simw_add_tenant(g.w, NULL, wo.devices);
    } else if (json_is_array(tl)) {
        size_t i;
        json_array_foreach(tl, i, v)
        {
            json_t *dv = json_object_get(v, "devices");
            int nd = json_is_integer(dv) ? (int)json_integer_value(dv) : wo.devices;
            if (nd < 0 || nd > 1000000)
                return err_set(eb, ERR_PARSE, "scenario tenant %zu: devices out of range", i);
            struct simtenant *t =
                simw_add_tenant(g.w, json_string_value(json_object_get(v, "name")), nd);
            set_tenant_flags(t, v);
        }
    } else {
        return err_set(eb, ERR_PARSE, "scenario: tenants must be a number or an array");
    }
    if (sc && json_is_object(json_object_get(sc, "throttle")))
        set_throttle(json_object_get(sc, "throttle"));
    if (sc && json_is_array(json_object_get(sc, "faults"))) {
        size_t i;
        char err[256];
        json_array_foreach(json_object_get(sc, "faults"), i, v)
        {
            if (fault_add(v, err, sizeof err) != ERR_OK)
                return err_set(eb, ERR_PARSE, "scenario fault %zu: %s", i, err);
        }
    }
    if (sc && json_is_boolean(json_object_get(json_object_get(sc, "partner"), "application_read")))
        g.no_app_read =
            !json_is_true(json_object_get(json_object_get(sc, "partner"), "application_read"));
    if (sc && json_is_object(json_object_get(sc, "export"))) {
        char err[256];
        if (set_export(json_object_get(sc, "export"), err, sizeof err) != ERR_OK)
            return err_set(eb, ERR_PARSE, "scenario export: %s", err);
    }
    if (sc && json_is_object(json_object_get(sc, "secrets"))) {
        json_t *s = json_object_get(sc, "secrets");
        if (json_is_true(json_object_get(s, "sync_expired")))
            g.w->sync_app.secrets[0].expires = clock_now() - 86400;
        if (json_is_true(json_object_get(s, "partner_expired")))
            g.w->partner_app.secrets[0].expires = clock_now() - 86400;
    }
    return ERR_OK;
}

/* --- TLS: a throwaway CA and server certificate made with the openssl CLI ------------------ */

static int
run_argv(char *const argv[])
{
    pid_t pid = fork();
    int st = 0;

    if (pid < 0)
        return ERR_IO;
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return ERR_IO;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? ERR_OK : ERR_IO;
}

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct buf b;
    char tmp[4096];
    size_t n;

    if (f == NULL)
        return NULL;
    buf_init(&b, 1 << 20);
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (buf_add(&b, tmp, n) != ERR_OK)
            break;
    fclose(f);
    return buf_detach(&b, &n);
}

static int
make_certs(const char *dir, char **key_pem, char **cert_pem, char *ca_path, size_t ca_len,
           struct errbuf *eb)
{
    char cakey[1024], cacrt[1024], key[1024], csr[1024], crt[1024], ext[1024];
    FILE *f;

    snprintf(cakey, sizeof cakey, "%s/sim-ca.key", dir);
    snprintf(cacrt, sizeof cacrt, "%s/sim-ca.pem", dir);
    snprintf(key, sizeof key, "%s/sim-server.key", dir);
    snprintf(csr, sizeof csr, "%s/sim-server.csr", dir);
    snprintf(crt, sizeof crt, "%s/sim-server.pem", dir);
    snprintf(ext, sizeof ext, "%s/sim-server.ext", dir);
    f = fopen(ext, "w");
    if (f == NULL)
        return err_set(eb, ERR_IO, "cannot write %s", ext);
    fprintf(f, "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
               "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n");
    fclose(f);
    char *a1[] = {"openssl",
                  "req",
                  "-x509",
                  "-newkey",
                  "ec",
                  "-pkeyopt",
                  "ec_paramgen_curve:prime256v1",
                  "-nodes",
                  "-keyout",
                  cakey,
                  "-out",
                  cacrt,
                  "-days",
                  "30",
                  "-subj",
                  "/CN=memsync sim CA",
                  NULL};
    char *a2[] = {
        "openssl",       "req",     "-newkey", "ec",   "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes",        "-keyout", key,       "-out", csr,        "-subj",
        "/CN=127.0.0.1", NULL};
    char *a3[] = {
        "openssl",         "x509", "-req", "-in",   csr,  "-CA",      cacrt, "-CAkey", cakey,
        "-CAcreateserial", "-out", crt,    "-days", "30", "-extfile", ext,   NULL};
    if (run_argv(a1) != ERR_OK || run_argv(a2) != ERR_OK || run_argv(a3) != ERR_OK)
        return err_set(eb, ERR_IO, "openssl could not create the simulator's certificates");
    *key_pem = slurp(key);
    *cert_pem = slurp(crt);
    if (*key_pem == NULL || *cert_pem == NULL)
        return err_set(eb, ERR_IO, "cannot read the generated certificates");
    snprintf(ca_path, ca_len, "%s", cacrt);
    /* only the CA certificate stays on disk; the keys live in memory */
    unlink(cakey);
    unlink(key);
    unlink(csr);
    unlink(crt);
    unlink(ext);
    {
        char srl[1040];
        snprintf(srl, sizeof srl, "%s/sim-ca.srl", dir);
        unlink(srl);
    }
    return ERR_OK;
}

/* --- main ----------------------------------------------------------------------------------- */

static void
usage(FILE *stream)
{
    fprintf(stream,
            "usage: memsync sim [--listen ADDR:PORT] [--env-file FILE] [--tenants N] "
            "[--devices M]\n"
            "                   [--apps-per-device K] [--seed S] [--latency-ms L] [--tls]\n"
            "                   [--scenario FILE|demo|faults|msp-reference] [--no-throttle]\n"
            "                   [--intune-limit N] [--intune-window-ms MS] [--global-limit N]\n"
            "                   [--global-window-ms MS] [--pc-limit N] [--pc-window-ms MS]\n"
            "                   [--threads N]\n");
}

static int
parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0')
        return ERR_USAGE;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end != '\0' || v < lo || v > hi)
        return ERR_USAGE;
    *out = (long)v;
    return ERR_OK;
}

static int
parse_opts(int argc, char **argv, struct simopts *o)
{
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        long n = 0;
        int rc = ERR_OK, takes = 1;
        if (strcmp(a, "--listen") == 0)
            o->listen = v;
        else if (strcmp(a, "--env-file") == 0)
            o->env_file = v;
        else if (strcmp(a, "--scenario") == 0)
            o->scenario = v;
        else if (strcmp(a, "--tenants") == 0) {
            rc = parse_long(v, 0, 100000, &n);
            o->tenants = (int)n;
            o->set_tenants = 1;
        } else if (strcmp(a, "--devices") == 0) {
            rc = parse_long(v, 0, 1000000, &n);
            o->devices = (int)n;
            o->set_devices = 1;
        } else if (strcmp(a, "--apps-per-device") == 0) {
            rc = parse_long(v, 0, 60, &n);
            o->apps = (int)n;
            o->set_apps = 1;
        } else if (strcmp(a, "--seed") == 0) {
            rc = parse_long(v, 0, 0x7fffffffffffffffL, &n);
            o->seed = (uint64_t)n;
            o->set_seed = 1;
        } else if (strcmp(a, "--latency-ms") == 0) {
            rc = parse_long(v, 0, 600000, &n);
            o->latency_ms = (int)n;
        } else if (strcmp(a, "--threads") == 0) {
            rc = parse_long(v, 1, 64, &n);
            o->threads = (int)n;
        } else if (strcmp(a, "--intune-limit") == 0)
            rc = parse_long(v, 1, 100000000, &o->intune_limit);
        else if (strcmp(a, "--intune-window-ms") == 0)
            rc = parse_long(v, 1, 3600000, &o->intune_window_ms);
        else if (strcmp(a, "--global-limit") == 0)
            rc = parse_long(v, 1, 100000000, &o->global_limit);
        else if (strcmp(a, "--global-window-ms") == 0)
            rc = parse_long(v, 1, 3600000, &o->global_window_ms);
        else if (strcmp(a, "--pc-limit") == 0)
            rc = parse_long(v, 1, 100000000, &o->pc_limit);
        else if (strcmp(a, "--pc-window-ms") == 0)
            rc = parse_long(v, 1, 3600000, &o->pc_window_ms);
        else if (strcmp(a, "--tls") == 0) {
            o->tls = 1;
            takes = 0;
        } else if (strcmp(a, "--no-throttle") == 0) {
            o->throttle = 0;
            takes = 0;
        } else if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            usage(stdout);
            return 1;
        } else {
            fprintf(stderr, "memsync sim: unknown option %s\n", a);
            usage(stderr);
            return ERR_USAGE;
        }
        if (takes && v == NULL) {
            fprintf(stderr, "memsync sim: %s needs a value\n", a);
            return ERR_USAGE;
        }
        if (rc != ERR_OK) {
            fprintf(stderr, "memsync sim: bad value for %s\n", a);
            return ERR_USAGE;
        }
        i += takes;
    }
    return ERR_OK;
}

int
sim_main(int argc, char **argv)
{
    struct simopts o;
    struct errbuf eb;
    json_t *sc = NULL;
    struct sockaddr_in sa;
    char host[64] = "127.0.0.1", ca_path[1024] = "";
    char *key_pem = NULL, *cert_pem = NULL;
    long port = 0;
    sigset_t set;
    int sig, rc = 1, lfd = -1;
    const char *ll = config_env("MEMSYNC_LOG_LEVEL");

    memset(&o, 0, sizeof o);
    memset(&eb, 0, sizeof eb);
    o.listen = "127.0.0.1:0";
    o.seed = 1;
    o.tenants = 3;
    o.devices = 25;
    o.apps = 5;
    o.throttle = 1;
    o.threads = 4;
    o.intune_limit = 2000;
    o.intune_window_ms = 20000;
    o.global_limit = 130000;
    o.global_window_ms = 10000;
    o.pc_limit = 500;
    o.pc_window_ms = 60000;
    if (ll) {
        enum log_level lv;
        const char *lf = config_env("MEMSYNC_LOG_FORMAT");
        if (log_level_parse(ll, &lv) == ERR_OK)
            log_configure(lv, lf && strcmp(lf, "json") == 0);
    }
    int prc = parse_opts(argc, argv, &o);
    if (prc == 1)
        return 0;
    if (prc != ERR_OK)
        return 2;
    {
        const char *colon = strrchr(o.listen, ':');
        size_t hl = colon ? (size_t)(colon - o.listen) : 0;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        if (colon == NULL || hl >= sizeof host ||
            parse_long(colon + 1, 0, 65535, &port) != ERR_OK) {
            fprintf(stderr, "memsync sim: --listen wants ADDR:PORT\n");
            return 2;
        }
        memcpy(host, o.listen, hl);
        host[hl] = '\0';
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
            fprintf(stderr, "memsync sim: --listen address must be an IPv4 address\n");
            return 2;
        }
        sa.sin_port = htons((uint16_t)port);
    }
    simtok_init();
    pthread_mutex_init(&g.mu, NULL);
    pthread_mutex_init(&g.dmu, NULL);
    pthread_cond_init(&g.dcv, NULL);
    g.throttle = o.throttle;
    g.intune_limit = o.intune_limit;
    g.intune_window_ms = o.intune_window_ms;
    g.global_limit = o.global_limit;
    g.global_window_ms = o.global_window_ms;
    g.pc_limit = o.pc_limit;
    g.pc_window_ms = o.pc_window_ms;
    g.tenant_limit = 4000;
    if (o.scenario) {
        sc = load_scenario(o.scenario, &eb);
        if (sc == NULL) {
            fprintf(stderr, "memsync sim: %s\n", eb.msg);
            return 2;
        }
    }
    if (build_world(&o, sc, &eb) != ERR_OK) {
        fprintf(stderr, "memsync sim: %s\n", eb.msg);
        goto out;
    }
    if (!o.throttle)
        g.throttle = 0;
    g.latency_ms = o.latency_ms;
    g.tls = o.tls;
    if (o.tls) {
        char dir[1024];
        if (o.env_file) {
            const char *slash = strrchr(o.env_file, '/');
            if (slash)
                snprintf(dir, sizeof dir, "%.*s", (int)(slash - o.env_file), o.env_file);
            else
                snprintf(dir, sizeof dir, ".");
        } else {
            snprintf(dir, sizeof dir, "/tmp/memsync-sim-%ld", (long)getpid());
            mkdir(dir, 0700);
        }
        {
            /* The env file is read from anywhere: MEMSYNC_CA_FILE must be absolute. */
            char *abs = realpath(dir, NULL);

            if (abs != NULL) {
                snprintf(dir, sizeof dir, "%s", abs);
                free(abs);
            }
        }
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
            fprintf(stderr, "memsync sim: this libmicrohttpd has no TLS support\n");
            goto out;
        }
        if (make_certs(dir, &key_pem, &cert_pem, ca_path, sizeof ca_path, &eb) != ERR_OK) {
            fprintf(stderr, "memsync sim: %s\n", eb.msg);
            goto out;
        }
    }

    /* signals are taken by sigwait on this thread; every other thread inherits the mask */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_create(&g.dthread, NULL, delay_main, NULL);

    /* bind first, so the base URL is known before any request can arrive */
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    {
        int one = 1;
        socklen_t sl = sizeof sa;
        if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
            bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 512) != 0 ||
            getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
            fprintf(stderr, "memsync sim: cannot listen on %s: %s\n", o.listen,
                    err_strerror(errno));
            goto stop;
        }
        snprintf(g.base, sizeof g.base, "%s://%s:%u", o.tls ? "https" : "http",
                 strcmp(host, "0.0.0.0") == 0 ? "127.0.0.1" : host, (unsigned)ntohs(sa.sin_port));
    }

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (o.tls)
        flags |= MHD_USE_TLS;
    if (o.tls)
        g.d = MHD_start_daemon(
            flags, (uint16_t)port, NULL, NULL, handler, NULL, MHD_OPTION_LISTEN_SOCKET, lfd,
            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o.threads, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)2048, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
            request_completed, NULL, MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_HTTPS_MEM_KEY,
            key_pem, MHD_OPTION_HTTPS_MEM_CERT, cert_pem, MHD_OPTION_END);
    else
        g.d = MHD_start_daemon(
            flags, (uint16_t)port, NULL, NULL, handler, NULL, MHD_OPTION_LISTEN_SOCKET, lfd,
            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o.threads, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)2048, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
            request_completed, NULL, MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_END);
    if (g.d == NULL) {
        fprintf(stderr, "memsync sim: cannot listen on %s\n", o.listen);
        goto stop;
    }
    lfd = -1; /* MHD owns and closes it now */
    if (o.env_file && write_env_file(o.env_file, o.tls ? ca_path : NULL) != ERR_OK) {
        fprintf(stderr, "memsync sim: cannot write %s\n", o.env_file);
        goto stop;
    }
    pthread_rwlock_rdlock(&g.w->lock);
    size_t ndev = 0;
    for (size_t i = 0; i < g.w->ntenants; i++)
        ndev += g.w->tenants[i]->ndev;
    log_info("sim ready url=%s tenants=%zu devices=%zu seed=%llu", g.base, g.w->ntenants, ndev,
             (unsigned long long)g.w->seed);
    pthread_rwlock_unlock(&g.w->lock);
    if (sigwait(&set, &sig) == 0)
        log_info("sim stopping signal=%d", sig);
    rc = 0;
stop:
    pthread_mutex_lock(&g.dmu);
    g.stopping = 1;
    pthread_cond_signal(&g.dcv);
    pthread_mutex_unlock(&g.dmu);
    pthread_join(g.dthread, NULL);
    if (g.d)
        MHD_stop_daemon(g.d);
    if (lfd >= 0)
        close(lfd);
out:
    json_decref(sc);
    while (g.jobs) {
        struct export_job *j = g.jobs;
        g.jobs = j->next;
        json_decref(j->select);
        free(j->filter);
        free(j->zip);
        free(j);
    }
    free(g.stats);
    free(g.reqlog);
    free(g.wins);
    free(g.stat_idx.slot);
    free(g.win_idx.slot);
    simw_free(g.w);
    g.w = NULL;
    free(key_pem);
    free(cert_pem);
    return rc;
}
