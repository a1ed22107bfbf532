/* sync_int.h - the sync engine's inside: what sync.c, sync_calls.c, sync_appcat.c,
 * sync_export.c and sync_writer.c share, and nothing else may use (scripts/layers.py refuses an
 * include from outside src/sync/).
 *
 * Two threads per sync run (sync_run; sync_discover has only the first):
 *   - the engine thread, running engine_run: the HTTP event loop and everything in struct engine
 *     and struct tenant. Every function here runs on it, except the writer's own thread below.
 *     It reads the store (eng->st) but never writes it while the writer runs.
 *   - the writer thread (sync_writer.c), with its own store connection: every write of the run
 *     between store_run_start and store_run_finish (reconciles, group commit, failures, tenant
 *     results, key expiry). It touches only struct writer's queue fields under writer.mu and
 *     the jobs it was given.
 * A tenant's collected data (devices, app catalogue, install lists, warnings) moves into a
 * struct wjob at hand-off (sync_writer_submit) and the engine never touches it again; what comes
 * back (struct wresult) is copied results only. A call is owned by the engine's live list from
 * sync_call_new until sync_call_free; its done callback frees it. Errors are told through the
 * tenant (sync_tenant_fail, struct remedy), not returned.
 */
#ifndef MEMSYNC_SYNC_INT_H
#define MEMSYNC_SYNC_INT_H

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "graph.h"
#include "http.h"
#include "pacer.h"
#include "partner.h"
#include "remedy.h"
#include "sync.h"
#include "token.h"

#define DEFAULT_ATTEMPTS     6
#define BACKOFF_BASE_MS      500
#define BACKOFF_CAP_MS       30000
#define RETRY_AFTER_MAX_MS   (15 * 60 * 1000)
#define THROTTLE_BUDGET_MS   (10 * 60 * 1000)
#define INTUNE_TENANT_WINDOW 20000
#define INTUNE_GLOBAL_WINDOW 10000
#define PC_WINDOW            60000
#define MAX_CUSTOMER_PAGES   1000
#define MAX_DEVICE_PAGES     10000
#define PROGRESS_INTERVAL_MS 200
/* Tenants with at least this many devices, or installs to write, commit alone
 * (sync_tenant_reconcile).
 */
#define BATCH_MAX_DEVICES  500
#define BATCH_MAX_INSTALLS 2000
/* A group commit holds at most this many tenants (besides sync_commit_ms). */
#define BATCH_MAX_TENANTS 64
/* Finished tenants waiting for the writer with their data: at most this many, and this many
 * devices together (one bigger tenant is taken alone). A tenant that does not fit waits in its
 * engine slot, so no new tenant starts meanwhile (backpressure). */
#define WRITER_QUEUE_MAX     4
#define WRITER_QUEUE_DEVICES 20000
/* Warnings a tenant's client row keeps (the first one's code is shown). */
#define TENANT_WARN_MAX 4
/* Big responses in flight at once (device pages and $batch answers are up to a few MB each):
 * bounds memory however many tenants run, and is far above what Intune's pacing lets through. */
#define BULK_MAX 12
/* Stay a little under Microsoft's published limits: their clocks and ours differ. */
#define PACING_SHARE_PCT 95
/* A 429 never cuts a tenant's pace below one full $batch per window. */
#define PACE_FLOOR 20
/* Backoff added to Intune's window after windows in a row that ended in a 429 without
 * Retry-After: 1 s doubling, capped. */
#define WINDOW_BACKOFF_BASE_MS 1000
#define WINDOW_BACKOFF_CAP_MS  60000
/* A $batch item may be throttled without Retry-After this often (each costs at least one 20 s
 * window: the 10-minute wait budget). */
#define ITEM_THROTTLES_MAX 30
/* Report downloads (hundreds of MB from Azure Blob Storage): minutes, not the API's 120 s; a
 * stalled transfer (under 1 KiB/s for 2 minutes) is cut and resumed with Range. */
#define EXPORT_DOWNLOAD_TIMEOUT_MS (60L * 60 * 1000)
#define EXPORT_LOW_SPEED_BPS       1024L
#define EXPORT_LOW_SPEED_S         120L

/* Set by sync_request_stop (a signal handler may call it): the run winds down. */
/* Set by a signal handler or another thread (the scheduler's stop): lock-free, so both are
 * safe. */
extern atomic_int sync_stop_requested;

/* ---- engine state -------------------------------------------------------------------------- */

/* CALL_BLOB: a pre-signed download URL (report exports); it never carries a bearer token. */
enum call_kind { CALL_TOKEN, CALL_GRAPH, CALL_PC, CALL_BLOB };

struct engine;
struct tenant;
struct call;

/* Called once per call with the final response (2xx, a non-retryable status, or the last
 * failure once the retry budget is spent). The callee frees the call. */
typedef void call_done_fn(struct call *c, const struct http_resp *r);

struct call {
    struct engine *eng;
    struct tenant *t; /* NULL for partner-level calls */
    enum call_kind kind;
    char *url;
    char *body; /* token calls: the form, holding a secret; wiped on free */
    size_t body_len;
    char *extra_header; /* e.g. "MS-ContinuationToken: ..." */
    char *token_tenant; /* whose bearer token to attach (Graph and PC calls) */
    const char *audience;
    const char *client_id; /* token calls and refreshes */
    const char *secret;
    int units;     /* Intune requests this call counts as ($batch: one per item) */
    size_t dev;    /* device index of per-device calls */
    int page;      /* detected-apps pages: which page of this device this is */
    size_t *items; /* $batch: the device index of each item, n_items long */
    int n_items;
    int attempt;
    int refreshed; /* a 401 already led to one token refresh */
    /* Partner Center MS-RequestId: one per call, the same on its retries */
    char request_guid[37];
    int64_t waited_ms;
    int64_t sent_ms;   /* when it was last handed to HTTP (monotonic) */
    struct call *then; /* token calls: the call to submit once the token is cached */
    call_done_fn *done;
    struct call *prev, *next; /* the engine's list of live calls */
    size_t max_body;          /* response cap; 0 = the HTTP default */
    int bulk;                 /* a big response (device page, $batch): gated, see BULK_MAX */
    int holds_gate;
    struct call *qnext;     /* the engine's queue of bulk calls waiting for the gate */
    int sink_fd;            /* CALL_BLOB: the file the body streams to (resumed with Range) */
    int no_transport_retry; /* a POST that creates something: after a transport failure the
                               caller looks before it asks again */
    int optional;           /* a partner-level call the run does not depend on (key expiry):
                               when its token fails, it fails alone */
    int partner_app;        /* key expiry: the Partner App's key (else the Sync App's) */
};

/* TS_READY: collected, waiting for room in the writer's queue (still holds its engine slot);
 * TS_WRITING: handed to the writer, its result not back yet. */
enum tenant_state { TS_QUEUED, TS_RUNNING, TS_READY, TS_WRITING, TS_DONE };

enum phase { PHASE_NONE, PHASE_DETAIL, PHASE_APPS };

/* A tenant's detected apps, interned by their Graph id (a device list holds indexes). */
struct appcat {
    struct detected_app *apps;
    size_t n, cap;
    uint32_t *slots; /* open addressing: index + 1, 0 = empty */
    size_t nslots;
};

struct devapps {
    uint32_t *idx;
    uint32_t n, cap;
};

struct tenant {
    struct engine *eng;
    struct customer cust; /* from the customer listing; owns its strings */
    enum tenant_state state;
    struct graph_org org;
    struct device *devs;
    size_t ndevs, capdevs;
    int pages;
    int64_t started_ms;
    int64_t requests;
    int64_t throttled;
    struct pacer pacer;
    int failed;
    struct remedy rem;

    /* per-device phases (software, hardware detail) */
    struct appcat cat;
    struct devapps *dapps;  /* ndevs long */
    unsigned char *fetched; /* 1 when this device's apps were read in this sync */
    unsigned char *tries;
    unsigned char *throttles; /* per device: its items' 429s without Retry-After */
    size_t *pending;
    size_t npending;
    int phase;
    int busy; /* batches, page calls and retry timers in flight */
    int apps_failed;
    char sync_apps_problem[256];
    uint32_t *devmap; /* intune id -> device index + 1, open addressing */
    size_t devmap_mask;
    char *export_id; /* AppInvRawData export job in progress */
    int64_t export_waited_ms;
    int export_delay_ms;
    int export_cols[6];
    int export_fd;         /* the downloaded report, an unlinked temporary file; -1 = none */
    int export_posts;      /* export jobs asked for in this sync */
    int64_t export_posted; /* when the last one was asked for (clock_now) */

    /* throttling (sync_tenant_throttled) and $batch item 401s (batch_item_unauthorized) */
    int64_t hold_until;     /* monotonic ms: no Intune call before this */
    int64_t last_cut_ms;    /* when a 429 last cut the pace (once per window) */
    int throttle_streak;    /* holds in a row, for the backoff after the window */
    struct call *auth_wait; /* items waiting for the token refresh their 401s started */
    int item_refreshed;     /* item 401s already led to the tenant's one token refresh */
    int64_t refreshed_ms;   /* when that refresh finished */

    /* What the client row's warning says after this sync (tenant_warn), and Microsoft's count
     * of the tenant's devices (managedDeviceOverview; -1 unknown). */
    struct remedy *warn;
    int nwarn;
    int64_t overview_count;

    /* set from the writer's result */
    struct reconcile_counts counts;
    size_t nsynced;
    int64_t took_ms;
};

/* ---- the database writer (sync_writer.c) --------------------------------------------------- */

enum wjob_kind {
    WJOB_RECONCILE, /* a tenant's collected data: one reconcile, its result recorded */
    WJOB_FAIL,      /* a failed or interrupted tenant: its client row and result */
    WJOB_EXPIRY,    /* store_integration_set_expiry (a key's date from Microsoft) */
    WJOB_EXPIRED    /* store_integration_set_secret (Microsoft says the key expired) */
};

/* One piece of work for the writer; every pointer is owned by the job. */
struct wjob {
    enum wjob_kind kind;
    size_t tenant; /* index in eng->tenants (WJOB_RECONCILE, WJOB_FAIL) */
    char *tenant_id, *name, *domain;
    int64_t requests, throttled, started_ms, devices;
    /* WJOB_RECONCILE: moved from struct tenant */
    struct device *devs;
    size_t ndevs;
    struct appcat cat;
    struct devapps *dapps;  /* ndevs long, or NULL */
    unsigned char *fetched; /* ndevs long, or NULL */
    struct remedy *warn;    /* TENANT_WARN_MAX long, or NULL */
    int nwarn;
    int complete;      /* the listing is complete: devices may be marked and retired */
    int apps_complete; /* installs not seen may be marked removed */
    /* WJOB_FAIL */
    struct remedy rem;
    /* WJOB_EXPIRY, WJOB_EXPIRED */
    int partner;
    int64_t expires;
    char *sealed, *hint;
    struct wjob *next;
};

/* What the writer tells the engine about one tenant, once its data is committed or its failure
 * recorded. */
struct wresult {
    size_t tenant;
    int failed;
    struct remedy rem; /* failed */
    struct reconcile_counts counts;
    size_t nsynced;
    int64_t took_ms;
    struct wresult *next;
};

struct writer {
    /* the writer thread's own (after sync_writer_start, until sync_writer_stop) */
    struct store *st;
    int batch_open;
    int64_t batch_started_ms;
    struct wresult *batch_head, *batch_tail; /* results waiting for the batch's commit */
    int batch_n;
    /* copied at start: read-only while the thread runs */
    int64_t account_id, integration_id, run_id;
    char *source;
    int batch_ms;
    struct retire_policy policy;
    int guard_pct, guard_min, confirm_retire;
    struct http *wake; /* http_wakeup() after each result */
    pthread_t thread;
    int started;
    /* shared, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct wjob *q_head, *q_tail;
    size_t q_jobs;    /* reconcile jobs whose data the writer has not released */
    size_t q_devices; /* their devices */
    struct wresult *done_head, *done_tail;
    int closing;
};

struct engine {
    struct store *st;
    const struct integration *in;
    const struct sync_creds *creds;
    const struct sync_opts *opts;
    const struct config *cfg;  /* the settings with the integration's cloud applied (cloud.h) */
    const struct cloud *cloud; /* its token audiences */
    struct config *cloud_cfg;
    struct http *http;
    struct token_cache *tokens;
    struct pacer global;
    struct pacer pc;
    int tenant_limit;
    int max_attempts;
    int64_t run_id;
    int64_t started_ms;

    struct tenant *tenants;
    size_t ntenants, captenants;
    int pc_pages;
    int listing_done;
    int fatal; /* the customer list could not be read: the run cannot continue */
    struct errbuf fatal_eb;

    size_t next_tenant;
    int inflight;
    int parallel;

    struct sync_summary sum;
    int64_t last_progress_ms;
    struct writer *writer;  /* NULL for sync_discover */
    int writing;            /* tenants handed to the writer, result not back yet */
    int nready;             /* tenants in TS_READY */
    int waiting;            /* a timer keeps the loop waiting for the writer */
    struct call *live;      /* every call not yet freed, so an interrupted run frees them all */
    int expiry_fixed[2];    /* [is_partner]: the expiry date was corrected in this run */
    int export_min_devices; /* tenants needing apps for at least this many use the export */
    int bulk_inflight;
    struct call *bulk_head, *bulk_tail; /* FIFO of bulk calls waiting for the gate */
    char **excluded;                    /* tenant ids the MSP excluded from this integration */
    size_t nexcluded;
    int nskipped;
    int discover_only; /* sync_discover(): list the customers, start no tenant */
    /* MS-CorrelationId of this run's Partner Center requests */
    char correlation_id[37];
};

/* ---- calls (sync_calls.c) ------------------------------------------------------------------ */

void sync_call_free(struct call *c);
struct call *sync_call_new(struct engine *eng, struct tenant *t, enum call_kind kind, char *url,
                           call_done_fn *done);
void sync_retry_timer(void *arg);
int64_t sync_backoff_ms(int attempt);
int sync_status_retryable(long status);
int64_t sync_tenant_throttled(struct tenant *t, double retry_after);
void sync_note_resp_ids(struct remedy *rem, const struct http_resp *r, const char *body_id,
                        const char *body_date);
struct call *sync_token_call_new(struct engine *eng, struct tenant *t, const char *tenant_id,
                                 const char *client_id, const char *secret, const char *audience,
                                 struct call *then);
void sync_token_done(struct call *c, const struct http_resp *r);
void sync_call_submit(struct call *c);
struct call *sync_graph_call_new(struct tenant *t, char *url, call_done_fn *done);
void sync_graph_failure(struct tenant *t, const struct http_resp *r, struct remedy *rem);

/* ---- per-device phases and the app catalogue (sync_appcat.c) ------------------------------- */

void sync_appcat_clear(struct appcat *c);
uint32_t sync_appcat_find(const struct appcat *c, const char *id, size_t len);
uint32_t sync_appcat_intern(struct appcat *c, struct detected_app *a);
void sync_devapps_add(struct devapps *d, uint32_t idx);
void sync_apps_problem(struct tenant *t, const char *what, long status);
void sync_phase_pump(struct tenant *t);
size_t sync_devmap_find(const struct tenant *t, const char *intune_id);
void sync_devmap_build(struct tenant *t);

/* ---- the report export (sync_export.c) ----------------------------------------------------- */

void sync_export_file_close(struct tenant *t);
void sync_export_start(struct tenant *t);

/* ---- the database writer (sync_writer.c) --------------------------------------------------- */

/* Opens the writer's own connection to eng->st's database and starts its thread. */
int sync_writer_start(struct engine *eng, struct errbuf *eb);
/* Whether a tenant of ndevs devices fits in the queue now. */
int sync_writer_room(struct writer *w, size_t ndevs);
/* Hands j over (never refused: the engine checks sync_writer_room for reconciles; failures and
 * key dates are small and bounded by the tenants in flight). */
void sync_writer_submit(struct writer *w, struct wjob *j);
/* Takes every result the writer has sent; the caller frees each with free(). */
struct wresult *sync_writer_results(struct writer *w);
/* Lets the writer finish the queue, commit and stop; joins it and closes its connection. The
 * results not yet taken stay for sync_writer_results; sync_writer_free releases the rest. */
void sync_writer_stop(struct writer *w);
void sync_writer_free(struct writer *w);
void sync_wjob_free(struct wjob *j);

/* ---- tenant flow (sync.c) ------------------------------------------------------------------ */

void sync_tenant_fail(struct tenant *t, const struct remedy *r);
void sync_tenant_reconcile(struct tenant *t);
void sync_phase_next(struct tenant *t);

#endif
