/* sync.c - the sync engine: one thread, one HTTP event loop, a state machine per tenant.
 *
 * Request flow per tenant: token (sync app, tenant, Graph) -> /organization -> managedDevices
 * pages -> reconcile. Every request goes through call_submit()/call_on_resp(): pacing (sliding
 * windows per tenant and global), the bearer token, retries with Retry-After or exponential
 * backoff with jitter, and one token refresh on a Graph 401. A 429 cuts the tenant's pace; one
 * without Retry-After holds the tenant for Intune's whole window (tenant_throttled()).
 */
#include "sync.h"

#include <inttypes.h>
#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "clock.h"
#include "cloud.h"
#include "graph.h"
#include "guid.h"
#include "hash.h"
#include "http.h"
#include "jsonarena.h"
#include "log.h"
#include "mem.h"
#include "pacer.h"
#include "partner.h"
#include "remedy.h"
#include "report.h"
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
/* Tenants with at least this many devices, or installs to write, commit alone (tenant_reconcile).
 */
#define BATCH_MAX_DEVICES  500
#define BATCH_MAX_INSTALLS 2000
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

static volatile sig_atomic_t stop_requested;

void
sync_request_stop(void)
{
    stop_requested = 1;
}

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

enum tenant_state { TS_QUEUED, TS_RUNNING, TS_DONE };

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
    char apps_problem[256];
    uint32_t *devmap; /* intune id -> device index + 1, open addressing */
    size_t devmap_mask;
    char *export_id; /* AppInvRawData export job in progress */
    int64_t export_waited_ms;
    int export_delay_ms;
    int export_cols[6];
    int export_fd;         /* the downloaded report, an unlinked temporary file; -1 = none */
    int export_posts;      /* export jobs asked for in this sync */
    int64_t export_posted; /* when the last one was asked for (clock_now) */

    /* throttling (tenant_throttled) and $batch item 401s (batch_item_unauthorized) */
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

    /* reconciled in the open batch, not yet committed: org is kept for the record */
    int in_batch;
    struct reconcile_counts counts;
    size_t nsynced;
    int64_t took_ms;
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
    /* Group commit: tenants reconciled within batch_ms (sync_commit_ms) share one transaction
     * (store_batch_begin); it bounds how long the write lock is held between tenants and what
     * a crash can take back. */
    int batch_ms;
    int batch_open;
    int64_t batch_started_ms;
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

static void call_submit(struct call *c);
static void appcat_clear(struct appcat *c);
static void tenant_start(struct tenant *t);
static void tenant_fail(struct tenant *t, const struct remedy *r);
static void start_tenants(struct engine *eng);

static void
call_free(struct call *c)
{
    if (c == NULL)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->eng->live = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c->url);
    if (c->body != NULL) {
        sodium_memzero(c->body, c->body_len);
        free(c->body);
    }
    free(c->extra_header);
    free(c->token_tenant);
    free(c->items);
    call_free(c->then);
    free(c);
}

static struct call *
call_new(struct engine *eng, struct tenant *t, enum call_kind kind, char *url, call_done_fn *done)
{
    struct call *c = xcalloc(1, sizeof *c);

    c->eng = eng;
    c->t = t;
    c->kind = kind;
    c->url = url;
    c->done = done;
    c->units = 1;
    c->next = eng->live;
    if (eng->live != NULL)
        eng->live->prev = c;
    eng->live = c;
    return c;
}

static void
retry_timer(void *arg)
{
    call_submit(arg);
}

static int64_t
backoff_ms(int attempt)
{
    int64_t d = BACKOFF_BASE_MS;

    for (int i = 1; i < attempt && d < BACKOFF_CAP_MS; i++)
        d *= 2;
    if (d > BACKOFF_CAP_MS)
        d = BACKOFF_CAP_MS;
    /* Jitter in [d/2, d) spreads the retries of many tenants apart. */
    return d / 2 + (int64_t)randombytes_uniform((uint32_t)(d / 2 > 0 ? d / 2 : 1));
}

static int
status_retryable(long status)
{
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

/* Backoff after Intune's window for the streak-th hold in a row: jitter up to 1 s for the
 * first, then 1-2 s, 2-4 s, ... up to 30-60 s. */
static int64_t
window_backoff_ms(int streak)
{
    int64_t d = WINDOW_BACKOFF_BASE_MS;

    for (int i = 1; i < streak && d < WINDOW_BACKOFF_CAP_MS; i++)
        d *= 2;
    if (d > WINDOW_BACKOFF_CAP_MS)
        d = WINDOW_BACKOFF_CAP_MS;
    if (streak <= 1)
        return (int64_t)randombytes_uniform((uint32_t)d);
    return d / 2 + (int64_t)randombytes_uniform((uint32_t)(d / 2));
}

/* Tenant t's Intune answered 429 now (retry_after < 0: without the header). Cuts the tenant's
 * pace, once per window. With Retry-After the tenant pauses that long; without it, Intune's
 * window (20 s, whose start we cannot see) must pass: the first such 429 since the last hold
 * ended holds every call of the tenant for a whole window from now, plus a backoff that grows
 * with each hold in a row; later 429s of calls already in flight join that hold. Returns the
 * milliseconds until the tenant may send again. */
static int64_t
tenant_throttled(struct tenant *t, double retry_after)
{
    int64_t now = clock_mono_ms();
    int64_t wait;

    if (t->last_cut_ms == 0 || now - t->last_cut_ms >= INTUNE_TENANT_WINDOW) {
        int pace = pacer_cut(&t->pacer, PACE_FLOOR, now);

        t->last_cut_ms = now;
        log_info("throttled tenant=%s pace=%d retry_after=%s", t->cust.tenant_id, pace,
                 retry_after >= 0 ? "yes" : "no");
    }
    if (retry_after >= 0) {
        wait = (int64_t)(retry_after * 1000.0);
        if (wait > RETRY_AFTER_MAX_MS)
            wait = RETRY_AFTER_MAX_MS;
        pacer_hold(&t->pacer, now + wait);
        return wait;
    }
    if (now >= t->hold_until) {
        /* A hold that starts within a window of the last one's end continues the streak. */
        if (t->hold_until != 0 && now - t->hold_until < INTUNE_TENANT_WINDOW)
            t->throttle_streak++;
        else
            t->throttle_streak = 1;
        t->hold_until = now + INTUNE_TENANT_WINDOW + window_backoff_ms(t->throttle_streak);
        pacer_hold(&t->pacer, t->hold_until);
        log_info("throttled without Retry-After tenant=%s hold_ms=%lld streak=%d",
                 t->cust.tenant_id, (long long)(t->hold_until - now), t->throttle_streak);
    }
    return t->hold_until - now;
}

static void
count_request(struct call *c, const struct http_resp *r)
{
    c->eng->sum.requests += c->units;
    if (c->t != NULL)
        c->t->requests += c->units;
    if (r->status == 429) {
        c->eng->sum.throttled++;
        if (c->t != NULL)
            c->t->throttled++;
    }
}

/* Microsoft's ids of an answer (headers first, then what the body said) onto a remedy. */
static void
note_resp_ids(struct remedy *rem, const struct http_resp *r, const char *body_id,
              const char *body_date)
{
    remedy_note_ids(rem, r->request_id, body_id, r->date, body_date);
}

/* ---- tokens -------------------------------------------------------------------------------- */

static void token_done(struct call *c, const struct http_resp *r);

/* A call that gets a token for (tenant, audience) and then submits `then`. */
static struct call *
token_call_new(struct engine *eng, struct tenant *t, const char *tenant_id, const char *client_id,
               const char *secret, const char *audience, struct call *then)
{
    struct buf form;
    struct call *c =
        call_new(eng, t, CALL_TOKEN, token_url(eng->cfg->login_url, tenant_id, 0), token_done);

    buf_init(&form, 16384);
    if (token_form(&form, client_id, secret, audience, 0) != ERR_OK)
        log_error("token form too large tenant=%s", tenant_id);
    c->body = buf_detach(&form, &c->body_len);
    c->token_tenant = xstrdup(tenant_id);
    c->audience = audience;
    c->client_id = client_id;
    c->secret = secret;
    c->then = then;
    return c;
}

static void
fail_call_chain(struct call *c, const struct remedy *rem)
{
    struct engine *eng = c->eng;

    if (c->then != NULL && c->then->optional) {
        struct call *next = c->then;
        struct http_resp r = {.err = ERR_AUTH, .errmsg = rem->message, .retry_after = -1};

        c->then = NULL;
        next->done(next, &r);
        return;
    }
    if (c->t != NULL) {
        tenant_fail(c->t, rem);
    } else {
        eng->fatal = 1;
        err_set(&eng->fatal_eb, ERR_AUTH, "%s %s", rem->message, rem->action);
        eng->listing_done = 1;
    }
}

/* Microsoft says the key expired (AADSTS7000222) although our date was later: correct the
 * stored date to now, once per run, so status, the API and the UI show "expired". */
static int64_t
note_expired(struct engine *eng, int is_partner)
{
    const struct integration *in = eng->in;
    struct errbuf eb = {0};
    int64_t now = clock_now();

    if (!eng->expiry_fixed[is_partner]) {
        eng->expiry_fixed[is_partner] = 1;
        if (store_integration_set_secret(
                eng->st, in->id, is_partner ? "partner" : "sync",
                is_partner ? in->partner_secret_sealed : in->sync_secret_sealed,
                is_partner ? in->partner_secret_hint : in->sync_secret_hint, now, &eb) != ERR_OK)
            log_error("cannot record the key's expiry integration=%lld: %s", (long long)in->id,
                      eb.msg);
        else
            log_warn("secret expired integration=%lld app=%s: Microsoft refused it with "
                     "AADSTS7000222; its expiry date was corrected to today",
                     (long long)in->id, is_partner ? "partner" : "sync");
    }
    return now;
}

static void
token_done(struct call *c, const struct http_resp *r)
{
    struct engine *eng = c->eng;
    struct token_result tr = {0};
    struct errbuf eb = {0};
    struct remedy rem;
    struct remedy_ctx ctx = {0};
    int is_partner = c->audience == NULL || strcmp(c->audience, eng->cloud->pc_audience) == 0;
    char expired_on[16] = "";

    ctx.tenant_id = c->token_tenant;
    ctx.app_id = c->client_id;
    ctx.app_label = is_partner ? "Partner App" : "Sync App";
    ctx.login_base = eng->cfg->login_url;
    if (r->err != ERR_OK) {
        remedy_set(&rem, r->err == ERR_INTERRUPTED ? REMEDY_INTERRUPTED : REMEDY_NETWORK, &ctx,
                   r->errmsg);
        goto fail;
    }
    if (token_parse(r->body, r->body_len, r->status, &tr, &eb) != ERR_OK) {
        if (tr.aadsts != 0 || tr.error != NULL) {
            int64_t exp =
                is_partner ? eng->in->partner_secret_expires : eng->in->sync_secret_expires;

            if (tr.aadsts == 7000222 && (exp == TS_NULL || exp > clock_now()))
                exp = note_expired(eng, is_partner);
            if (exp != TS_NULL) {
                clock_fmt(exp, expired_on, sizeof expired_on);
                expired_on[10] = '\0';
                ctx.expired_on = expired_on;
            }
            remedy_from_entra(&rem, &ctx, tr.aadsts, tr.error, r->status);
            if (c->t != NULL && c->t->cust.associated_partner_id != NULL &&
                (tr.aadsts == 700016 || tr.aadsts == 90002))
                remedy_set(&rem, REMEDY_INDIRECT_RESELLER, &ctx, NULL);
            /* Entra's trace_id is its request id (x-ms-request-id carries the same). */
            remedy_note_ids(&rem, tr.trace_id, tr.correlation_id, r->date, tr.timestamp);
        } else {
            remedy_set(&rem, r->status >= 500 ? REMEDY_SERVICE_ERROR : REMEDY_BAD_RESPONSE, &ctx,
                       eb.msg);
            note_resp_ids(&rem, r, NULL, NULL);
        }
        token_result_clear(&tr);
        goto fail;
    }
    token_cache_put(eng->tokens, c->token_tenant, c->audience, tr.access_token,
                    clock_now() + tr.expires_in);
    token_result_clear(&tr);
    if (c->then != NULL) {
        struct call *next = c->then;

        c->then = NULL;
        call_free(c);
        call_submit(next);
        return;
    }
    call_free(c);
    return;
fail:
    fail_call_chain(c, &rem);
    call_free(c);
}

/* ---- the request path ---------------------------------------------------------------------- */

/* Gives the call's bulk slot back and lets the longest-waiting bulk call go. */
static void
gate_release(struct call *c)
{
    struct engine *eng = c->eng;
    struct call *next;

    if (!c->holds_gate)
        return;
    c->holds_gate = 0;
    eng->bulk_inflight--;
    if ((next = eng->bulk_head) != NULL) {
        eng->bulk_head = next->qnext;
        if (eng->bulk_head == NULL)
            eng->bulk_tail = NULL;
        /* Through a zero-delay timer: submitting from inside a completion would nest. */
        http_timer(eng->http, 0, retry_timer, next);
    }
}

static void
call_on_resp(void *arg, const struct http_resp *r)
{
    struct call *c = arg;
    struct engine *eng = c->eng;
    int64_t delay;

    count_request(c, r);
    c->attempt++;
    gate_release(c);
    if (stop_requested) {
        struct http_resp ir = {.err = ERR_INTERRUPTED, .errmsg = "interrupted", .retry_after = -1};
        c->done(c, &ir);
        return;
    }
    /* A Graph or PC 401 may mean our cached token went stale: refresh once. */
    if (r->err == ERR_OK && r->status == 401 && c->kind != CALL_TOKEN && !c->refreshed &&
        c->client_id != NULL) {
        struct call *tc;

        c->refreshed = 1;
        token_cache_drop(eng->tokens, c->token_tenant, c->audience);
        tc = token_call_new(eng, c->t, c->token_tenant, c->client_id, c->secret, c->audience, c);
        call_submit(tc);
        return;
    }
    if ((r->err != ERR_OK && r->err != ERR_TOOBIG && !c->no_transport_retry) ||
        (r->err == ERR_OK && status_retryable(r->status))) {
        int counted = 1; /* the retry uses up one of the call's attempts */

        if (r->err == ERR_OK && r->status == 429 && c->t != NULL && c->kind == CALL_GRAPH) {
            /* The tenant's window: only the wait budget bounds a 429 without Retry-After. */
            delay = tenant_throttled(c->t, r->retry_after) + (int64_t)randombytes_uniform(250);
            if (r->retry_after < 0) {
                counted = 0;
                c->attempt--;
            }
        } else if (r->err == ERR_OK && r->retry_after >= 0) {
            delay = (int64_t)(r->retry_after * 1000.0);
            if (delay > RETRY_AFTER_MAX_MS)
                delay = RETRY_AFTER_MAX_MS;
            /* A little jitter so tenants throttled together do not return together. */
            delay += (int64_t)randombytes_uniform(250);
        } else {
            delay = backoff_ms(c->attempt);
        }
        if ((!counted || c->attempt < eng->max_attempts) &&
            c->waited_ms + delay <= THROTTLE_BUDGET_MS) {
            char safe[256];

            log_redact_url(c->url, safe, sizeof safe);
            log_debug("retry url=%s status=%ld attempt=%d delay_ms=%lld", safe, r->status,
                      c->attempt, (long long)delay);
            c->waited_ms += delay;
            http_timer(eng->http, delay, retry_timer, c);
            return;
        }
    }
    c->done(c, r);
}

/* The ids Microsoft support asks for: client-request-id (a fresh GUID per request) to Entra and
 * Graph; MS-RequestId (one per call, the same on its retries), MS-CorrelationId (one per run) and
 * MS-Contract-Version to Partner Center. ids holds the header texts; returns the new count. */
static int
support_headers(struct call *c, struct http_req *req, int nh, char ids[3][96])
{
    char g[37];

    if (c->kind == CALL_PC) {
        if (c->request_guid[0] == '\0')
            guid_random(c->request_guid);
        snprintf(ids[0], sizeof ids[0], "MS-RequestId: %s", c->request_guid);
        snprintf(ids[1], sizeof ids[1], "MS-CorrelationId: %s", c->eng->correlation_id);
        req->headers[nh++] = ids[0];
        req->headers[nh++] = ids[1];
        req->headers[nh++] = "MS-Contract-Version: v1";
    } else {
        guid_random(g);
        snprintf(ids[0], sizeof ids[0], "client-request-id: %s", g);
        req->headers[nh++] = ids[0];
    }
    return nh;
}

static void
call_submit(struct call *c)
{
    struct engine *eng = c->eng;
    struct http_req req = {0};
    struct errbuf eb = {0};
    char *auth = NULL;
    char ids[3][96];
    char range[64];
    int64_t now = clock_mono_ms();
    int64_t wait = 0;
    int nh = 0;
    int rc;

    if (stop_requested) {
        struct http_resp r = {.err = ERR_INTERRUPTED, .errmsg = "interrupted", .retry_after = -1};
        c->done(c, &r);
        return;
    }
    if (c->kind == CALL_GRAPH) {
        int64_t w1 = c->t != NULL ? pacer_wait(&c->t->pacer, c->units, now) : 0;
        int64_t w2 = pacer_wait(&eng->global, c->units, now);

        wait = w1 > w2 ? w1 : w2;
    } else if (c->kind == CALL_PC) {
        wait = pacer_wait(&eng->pc, 1, now);
    }
    if (wait > 0) {
        http_timer(eng->http, wait, retry_timer, c);
        return;
    }
    if (c->bulk && !c->holds_gate) {
        if (eng->bulk_inflight >= BULK_MAX) {
            c->qnext = NULL;
            if (eng->bulk_tail != NULL)
                eng->bulk_tail->qnext = c;
            else
                eng->bulk_head = c;
            eng->bulk_tail = c;
            return;
        }
        eng->bulk_inflight++;
        c->holds_gate = 1;
    }
    if (c->kind == CALL_GRAPH) {
        if (c->t != NULL)
            pacer_note(&c->t->pacer, c->units, now);
        pacer_note(&eng->global, c->units, now);
    } else if (c->kind == CALL_PC) {
        pacer_note(&eng->pc, 1, now);
    }

    req.url = c->url;
    req.max_body = c->max_body;
    if (c->body != NULL && c->kind == CALL_GRAPH) {
        req.method = "POST";
        req.body = c->body;
        req.body_len = c->body_len;
        req.headers[nh++] = "Content-Type: application/json";
    }
    if (c->kind == CALL_BLOB) {
        /* A pre-signed URL on another host: no Authorization header, ever. The body streams to
         * a file; a retry asks only for the bytes not yet on disk. */
        struct stat sb;

        req.to_file = 1;
        req.sink_fd = c->sink_fd;
        req.timeout_ms = EXPORT_DOWNLOAD_TIMEOUT_MS;
        req.low_speed_bps = EXPORT_LOW_SPEED_BPS;
        req.low_speed_s = EXPORT_LOW_SPEED_S;
        if (fstat(c->sink_fd, &sb) == 0 && sb.st_size > 0) {
            snprintf(range, sizeof range, "Range: bytes=%lld-", (long long)sb.st_size);
            req.headers[nh++] = range;
        }
    } else if (c->kind == CALL_TOKEN) {
        req.method = "POST";
        req.body = c->body;
        req.body_len = c->body_len;
        req.headers[nh++] = "Content-Type: application/x-www-form-urlencoded";
        req.headers[nh++] = "Accept: application/json";
        nh = support_headers(c, &req, nh, ids);
    } else {
        const char *tok = token_cache_get(eng->tokens, c->token_tenant, c->audience, clock_now());

        if (tok == NULL) {
            /* Expired while the call waited: get a new one first. */
            struct call *tc =
                token_call_new(eng, c->t, c->token_tenant, c->client_id, c->secret, c->audience, c);
            call_submit(tc);
            return;
        }
        auth = xasprintf("Authorization: Bearer %s", tok);
        req.headers[nh++] = auth;
        req.headers[nh++] = "Accept: application/json";
        if (c->extra_header != NULL)
            req.headers[nh++] = c->extra_header;
        nh = support_headers(c, &req, nh, ids);
    }
    c->sent_ms = now;
    rc = http_submit(eng->http, &req, call_on_resp, c, &eb);
    if (auth != NULL) {
        sodium_memzero(auth, strlen(auth));
        free(auth);
    }
    if (rc != ERR_OK) {
        struct http_resp r = {.err = rc, .errmsg = eb.msg, .retry_after = -1};

        gate_release(c);
        c->done(c, &r);
    }
}

/* A Graph call for tenant t with the sync app's token. */
static struct call *
graph_call_new(struct tenant *t, char *url, call_done_fn *done)
{
    struct engine *eng = t->eng;
    struct call *c = call_new(eng, t, CALL_GRAPH, url, done);

    c->token_tenant = xstrdup(t->cust.tenant_id);
    c->audience = eng->cloud->graph_audience;
    c->client_id = eng->creds->sync_app_id;
    c->secret = eng->creds->sync_secret;
    return c;
}

/* Maps a final non-2xx or transport failure of a Graph call to a remedy. */
static void
graph_failure(struct tenant *t, const struct http_resp *r, struct remedy *rem)
{
    struct remedy_ctx ctx = {0};
    struct remedy_graph_error rg = {0};
    struct graph_error ge;

    ctx.tenant_id = t->cust.tenant_id;
    ctx.app_id = t->eng->creds->sync_app_id;
    ctx.app_label = "Sync App";
    ctx.login_base = t->eng->cfg->login_url;
    if (r->err == ERR_INTERRUPTED) {
        remedy_set(rem, REMEDY_INTERRUPTED, &ctx, NULL);
        return;
    }
    if (r->err != ERR_OK) {
        remedy_set(rem, r->err == ERR_TOOBIG ? REMEDY_BAD_RESPONSE : REMEDY_NETWORK, &ctx,
                   r->errmsg);
        return;
    }
    if (r->status == 429) {
        remedy_set(rem, REMEDY_THROTTLED, &ctx, NULL);
        note_resp_ids(rem, r, NULL, NULL);
        return;
    }
    rg.status = r->status;
    rg.www_authenticate = r->www_authenticate;
    if (graph_error_parse(r->body, r->body_len, &ge) == ERR_OK) {
        rg.code = ge.code;
        rg.message = ge.message;
        rg.not_applicable = ge.not_applicable;
        rg.nested_forbidden = ge.nested_forbidden;
    } else {
        memset(&ge, 0, sizeof ge);
    }
    /* /organization's assignedPlans tell a missing licence from a missing permission. */
    ctx.intune_plan = (enum remedy_intune_plan)t->org.intune_plan;
    remedy_from_graph_error(rem, &ctx, &rg);
    note_resp_ids(rem, r, ge.request_id, ge.date);
}

/* ---- tenant flow --------------------------------------------------------------------------- */

/* Closes the tenant's downloaded report (unlinked when made: closing frees its space). */
static void
export_file_close(struct tenant *t)
{
    if (t->export_fd > 0)
        close(t->export_fd);
    t->export_fd = -1;
}

static void
tenant_clear(struct tenant *t)
{
    for (size_t i = 0; i < t->ndevs; i++)
        device_clear(&t->devs[i]);
    free(t->devs);
    t->devs = NULL;
    if (t->dapps != NULL)
        for (size_t i = 0; i < t->ndevs; i++)
            free(t->dapps[i].idx);
    free(t->dapps);
    free(t->fetched);
    free(t->tries);
    free(t->throttles);
    free(t->pending);
    t->dapps = NULL;
    t->fetched = t->tries = t->throttles = NULL;
    t->pending = NULL;
    appcat_clear(&t->cat);
    XFREE(t->devmap);
    XFREE(t->export_id);
    export_file_close(t);
    XFREE(t->warn);
    t->nwarn = 0;
    t->ndevs = t->capdevs = 0;
    if (!t->in_batch)
        graph_org_clear(&t->org);
    pacer_free(&t->pacer);
}

static void progress_draw(struct engine *eng, int final);

/* Elapsed time and, once a tenant is done, an estimate of what is left (by tenants done). */
static void
progress_times(const struct engine *eng, int64_t now, int done, int total)
{
    int64_t el = (now - eng->started_ms) / 1000;

    fprintf(stderr, "%lld:%02lld", (long long)(el / 60), (long long)(el % 60));
    if (done > 0 && total > done) {
        int64_t left = el * (total - done) / done;

        fprintf(stderr, "  ~%lld:%02lld left", (long long)(left / 60), (long long)(left % 60));
    }
    fputs("\x1b[K", stderr);
}

/* On a terminal: one line per finished tenant above the progress bar (ok, or failed with what
 * to do). Names are printed without control characters. */
static void
progress_tenant(const struct tenant *t, const char *name)
{
    fputs("\r\x1b[K", stderr);
    fputs(t->failed ? "  failed  " : "  ok      ", stderr);
    for (const char *p = name != NULL && name[0] != '\0' ? name : t->cust.tenant_id; *p != '\0';
         p++)
        fputc((unsigned char)*p < 0x20 || *p == 0x7f ? ' ' : *p, stderr);
    if (t->failed)
        fprintf(stderr, " (%s): %s %s\n", t->cust.tenant_id, t->rem.message, t->rem.action);
    else
        fprintf(stderr, "  %zu devices  %.1f s\n", t->nsynced, (double)t->took_ms / 1000.0);
    progress_draw(t->eng, 2);
}

static void
progress_draw(struct engine *eng, int final)
{
    int64_t now = clock_mono_ms();
    int done = eng->sum.tenants_ok + eng->sum.tenants_failed;
    int total = eng->listing_done ? (int)eng->ntenants : 0;
    char bar[31];
    int filled;

    if (!eng->opts->progress || (!final && now - eng->last_progress_ms < PROGRESS_INTERVAL_MS))
        return;
    eng->last_progress_ms = now;
    filled = total > 0 ? done * 30 / total : 0;
    for (int i = 0; i < 30; i++)
        bar[i] = i < filled ? '#' : '-';
    bar[30] = '\0';
    fprintf(stderr, "\r[%s] %d/%d tenants  %lld devices  %lld requests  %lld throttled  ", bar,
            done, total, (long long)eng->sum.devices, (long long)eng->sum.requests,
            (long long)eng->sum.throttled);
    progress_times(eng, now, done, total);
    if (final == 1)
        fputc('\n', stderr);
    fflush(stderr);
}

/* Logged once the tenant's data is committed. */
static void
tenant_log_synced(const struct tenant *t)
{
    const char *name = t->org.name != NULL ? t->org.name : t->cust.name;

    if (t->eng->opts->progress) {
        progress_tenant(t, name);
        return;
    }
    log_info("tenant synced run=%lld tenant=%s name=\"%s\" devices=%zu created=%lld "
             "updated=%lld retired=%lld requests=%lld throttled=%lld ms=%lld",
             (long long)t->eng->run_id, t->cust.tenant_id, name != NULL ? name : "", t->nsynced,
             (long long)t->counts.created, (long long)t->counts.updated,
             (long long)t->counts.retired, (long long)t->requests, (long long)t->throttled,
             (long long)t->took_ms);
}

static void
tenant_record(struct tenant *t, const struct reconcile_counts *counts)
{
    struct engine *eng = t->eng;
    struct tenant_result tr = {0};
    struct errbuf eb = {0};
    const char *name = t->org.name != NULL ? t->org.name : t->cust.name;

    tr.tenant_id = t->cust.tenant_id;
    tr.client_name = name;
    tr.status = t->failed ? "error" : "ok";
    if (t->failed) {
        tr.error_code = t->rem.id;
        tr.message = t->rem.message;
        tr.remedy = t->rem.action;
        tr.request_id = t->rem.request_id[0] != '\0' ? t->rem.request_id : NULL;
        tr.response_date = t->rem.date[0] != '\0' ? t->rem.date : NULL;
    }
    if (counts != NULL)
        tr.counts = *counts;
    tr.devices = (int64_t)(t->ndevs > t->nsynced ? t->ndevs : t->nsynced);
    tr.requests = t->requests;
    tr.throttled = t->throttled;
    tr.duration_ms = t->took_ms > 0 ? t->took_ms : clock_mono_ms() - t->started_ms;
    if (store_run_tenant(eng->st, eng->run_id, &tr, &eb) != ERR_OK)
        log_error("cannot record tenant result tenant=%s: %s", t->cust.tenant_id, eb.msg);
    if (!t->failed && t->apps_failed)
        log_warn("software inventory incomplete tenant=%s: %s; installs were kept as they were",
                 t->cust.tenant_id, t->apps_problem);
    if (t->failed && eng->opts->progress)
        progress_tenant(t, name);
    if (t->failed) {
        log_warn("tenant failed run=%lld tenant=%s name=\"%s\" code=%s requests=%lld "
                 "request_id=%s date=\"%s\": %s %s",
                 (long long)eng->run_id, t->cust.tenant_id, name != NULL ? name : "", t->rem.id,
                 (long long)t->requests, t->rem.request_id[0] != '\0' ? t->rem.request_id : "-",
                 t->rem.date, t->rem.message, t->rem.action);
    } else if (!t->in_batch) {
        tenant_log_synced(t);
    }
}

static void
tenant_done(struct tenant *t)
{
    struct engine *eng = t->eng;

    t->state = TS_DONE;
    eng->inflight--;
    tenant_clear(t);
    progress_draw(eng, 0);
    start_tenants(eng);
}

/* Records t's failure (its client row and its result), outside any batch. */
static void
tenant_fail_record(struct tenant *t, const struct remedy *r)
{
    struct engine *eng = t->eng;
    struct errbuf eb = {0};
    struct client_info ci = {0};

    t->failed = 1;
    t->rem = *r;
    if (r->code == REMEDY_INTERRUPTED)
        eng->sum.tenants_interrupted++;
    else
        eng->sum.tenants_failed++;
    ci.tenant_id = t->cust.tenant_id;
    ci.name = t->org.name != NULL ? t->org.name : t->cust.name;
    ci.default_domain = t->org.default_domain != NULL ? t->org.default_domain : t->cust.domain;
    ci.source = eng->in->tenant_source;
    ci.error_request_id = r->request_id[0] != '\0' ? r->request_id : NULL;
    ci.error_date = r->date[0] != '\0' ? r->date : NULL;
    /* An interrupted tenant keeps its previous status: nothing is known to be wrong with it. */
    if (r->code != REMEDY_INTERRUPTED &&
        store_client_fail(eng->st, eng->in->account_id, eng->in->id, &ci, r->id, r->message,
                          r->action, &eb) != ERR_OK)
        log_error("cannot record client failure tenant=%s: %s", t->cust.tenant_id, eb.msg);
    tenant_record(t, NULL);
}

/* Commits the open batch. If that fails, its tenants' data is gone and each becomes a failed
 * tenant that keeps its previous data, as if its own transaction had failed. */
static void
batch_flush(struct engine *eng)
{
    struct errbuf eb = {0};
    struct remedy rem;
    struct remedy_ctx ctx = {0};
    int rc;

    if (!eng->batch_open)
        return;
    eng->batch_open = 0;
    rc = store_batch_commit(eng->st, &eb);
    if (rc != ERR_OK)
        log_error("cannot commit synced tenants: %s", eb.msg);
    for (size_t i = 0; i < eng->ntenants; i++) {
        struct tenant *t = &eng->tenants[i];

        if (!t->in_batch)
            continue;
        t->in_batch = 0;
        if (rc == ERR_OK) {
            tenant_log_synced(t);
        } else {
            eng->sum.tenants_ok--;
            eng->sum.devices -= (int64_t)t->nsynced;
            eng->sum.created -= t->counts.created;
            eng->sum.updated -= t->counts.updated;
            eng->sum.unchanged -= t->counts.unchanged;
            eng->sum.retired -= t->counts.retired;
            eng->sum.installs -= t->counts.installs_added;
            memset(&t->counts, 0, sizeof t->counts);
            ctx.tenant_id = t->cust.tenant_id;
            remedy_set(&rem, REMEDY_STORE, &ctx, eb.msg);
            tenant_fail_record(t, &rem);
        }
        graph_org_clear(&t->org);
    }
}

static void
batch_due(struct engine *eng)
{
    if (eng->batch_open && clock_mono_ms() - eng->batch_started_ms >= eng->batch_ms)
        batch_flush(eng);
}

/* How long the event loop may wait before the open batch is due. */
static int
batch_wait_ms(const struct engine *eng)
{
    int64_t left;

    if (!eng->batch_open)
        return PROGRESS_INTERVAL_MS;
    left = eng->batch_started_ms + eng->batch_ms - clock_mono_ms();
    return left <= 0 ? 0 : left < PROGRESS_INTERVAL_MS ? (int)left : PROGRESS_INTERVAL_MS;
}

static void
tenant_fail(struct tenant *t, const struct remedy *r)
{
    if (t->state != TS_RUNNING)
        return;
    /* The batch is committed first: a failure is recorded on its own, so a batch that cannot
     * commit never takes a recorded failure back with it. */
    batch_flush(t->eng);
    tenant_fail_record(t, r);
    tenant_done(t);
}

/* Install rows the tenant's reconcile may write: the apps of the devices read in this sync. */
static size_t
tenant_installs(const struct tenant *t)
{
    size_t n = 0;

    if (t->fetched == NULL)
        return 0;
    for (size_t i = 0; i < t->ndevs; i++)
        if (t->fetched[i])
            n += t->dapps[i].n;
    return n;
}

/* Adds a warning for t's client row (kept only when t reconciles; the first TENANT_WARN_MAX
 * count, the first is the code shown). */
#define TENANT_WARN_MAX 4

static void
tenant_warn(struct tenant *t, const struct remedy *r)
{
    if (t->nwarn >= TENANT_WARN_MAX)
        return;
    if (t->warn == NULL)
        t->warn = xcalloc(TENANT_WARN_MAX, sizeof *t->warn);
    t->warn[t->nwarn++] = *r;
    log_warn("tenant warning tenant=%s code=%s", t->cust.tenant_id, r->id);
}

/* Whether the listing is shorter than Microsoft's own count of the tenant's devices, beyond a
 * device or 1 % deleted between the count and the listing; warns when it is. */
static int
listing_short(struct tenant *t)
{
    struct remedy rem;
    struct remedy_ctx ctx = {0};
    char detail[96];
    int64_t slack;

    if (t->overview_count < 0)
        return 0;
    slack = t->overview_count / 100 > 1 ? t->overview_count / 100 : 1;
    if ((int64_t)t->ndevs + slack >= t->overview_count)
        return 0;
    snprintf(detail, sizeof detail, "%zu listed, %" PRId64 " counted", t->ndevs, t->overview_count);
    ctx.tenant_id = t->cust.tenant_id;
    remedy_set(&rem, REMEDY_LISTING_SHORT, &ctx, detail);
    tenant_warn(t, &rem);
    return 1;
}

/* The retirement policy of t's commit: the settings, and the mass-retirement guard, which holds
 * back every retirement (and warns) when more than retire_guard_pct % of the tenant's active
 * devices and at least retire_guard_min of them would go at once, unless the run confirms. */
static int
tenant_retire_policy(struct tenant *t, struct errbuf *eb)
{
    const struct engine *eng = t->eng;
    const struct config *cfg = eng->cfg;
    struct retire_policy p = {0};
    int64_t would = 0, active = 0;
    int rc;

    p.after_syncs = cfg->retire_after_syncs > 0 ? cfg->retire_after_syncs : 1;
    p.after_s = (int64_t)cfg->retire_after_hours * 3600;
    rc = store_reconcile_policy(eng->st, &p, eb);
    if (rc != ERR_OK || cfg->retire_guard_pct <= 0)
        return rc;
    rc = store_reconcile_retire_preview(eng->st, &would, &active, eb);
    if (rc != ERR_OK)
        return rc;
    if (would > 0 && would >= cfg->retire_guard_min &&
        would * 100 > active * (int64_t)cfg->retire_guard_pct) {
        struct remedy rem;
        struct remedy_ctx ctx = {0};
        char detail[160];

        if (eng->opts->confirm_retire) {
            log_info("retiring past the guard (confirmed) tenant=%s devices=%" PRId64
                     " active=%" PRId64,
                     t->cust.tenant_id, would, active);
            return ERR_OK;
        }
        snprintf(detail, sizeof detail, "%" PRId64 " of its %" PRId64 " devices, more than %d %%",
                 would, active, cfg->retire_guard_pct);
        ctx.tenant_id = t->cust.tenant_id;
        remedy_set(&rem, REMEDY_RETIRE_HELD, &ctx, detail);
        tenant_warn(t, &rem);
        p.hold = 1;
        rc = store_reconcile_policy(eng->st, &p, eb);
    }
    return rc;
}

/* Hands t's warnings to the store: the first one's code, every message and action. */
static int
tenant_warnings_store(struct tenant *t, struct errbuf *eb)
{
    struct buf msg, act;
    int rc;

    if (t->nwarn == 0)
        return store_reconcile_warning(t->eng->st, NULL, NULL, NULL, eb);
    buf_init(&msg, 4096);
    buf_init(&act, 4096);
    for (int i = 0; i < t->nwarn; i++) {
        buf_printf(&msg, "%s%s", i ? " " : "", t->warn[i].message);
        buf_printf(&act, "%s%s", i ? " " : "", t->warn[i].action);
    }
    rc = store_reconcile_warning(t->eng->st, t->warn[0].id, buf_cstr(&msg), buf_cstr(&act), eb);
    buf_free(&msg);
    buf_free(&act);
    return rc;
}

static void
tenant_reconcile(struct tenant *t)
{
    struct engine *eng = t->eng;
    struct errbuf eb = {0};
    struct client_info ci = {0};
    struct reconcile_counts counts = {0};
    struct remedy rem;
    struct remedy_ctx ctx = {0};
    int rc, complete;

    ci.tenant_id = t->cust.tenant_id;
    ci.name = t->org.name != NULL ? t->org.name : t->cust.name;
    ci.default_domain = t->org.default_domain != NULL ? t->org.default_domain : t->cust.domain;
    ci.source = eng->in->tenant_source;
    if (t->ndevs >= BATCH_MAX_DEVICES || tenant_installs(t) >= BATCH_MAX_INSTALLS) {
        /* A big tenant commits alone: inside a batch its savepoint would copy every page it
         * touches once more, and its own commit is large enough to amortise. */
        batch_flush(eng);
    } else if (!eng->batch_open && eng->batch_ms > 0) {
        /* Without a batch (PostgreSQL, or the lock not obtained) the tenant commits alone. */
        if (store_batch_begin(eng->st, &eb) == 1) {
            eng->batch_open = 1;
            eng->batch_started_ms = clock_mono_ms();
        }
        memset(&eb, 0, sizeof eb);
    }
    rc = store_reconcile_begin(eng->st, eng->in->account_id, eng->in->id, &ci, clock_now(), &eb);
    for (size_t i = 0; rc == ERR_OK && i < t->ndevs; i++) {
        rc = store_reconcile_device(eng->st, &t->devs[i], &eb);
        /* Only devices whose apps were read have their install set replaced. */
        if (rc == ERR_OK && t->fetched != NULL && t->fetched[i]) {
            const struct devapps *da = &t->dapps[i];
            struct app_ref *refs = xcalloc(da->n ? da->n : 1, sizeof *refs);

            for (uint32_t k = 0; k < da->n; k++) {
                const struct detected_app *a = &t->cat.apps[da->idx[k]];

                refs[k].name = a->name != NULL ? a->name : "(unnamed)";
                refs[k].version = a->version;
                refs[k].publisher = a->publisher;
                refs[k].platform = a->platform;
                refs[k].size_bytes = a->size_bytes;
            }
            rc = store_reconcile_installs(eng->st, t->devs[i].intune_id, refs, da->n, &eb);
            free(refs);
        }
    }
    /* A listing shorter than Microsoft's count is not taken as proof that devices left. */
    complete = !listing_short(t);
    if (rc == ERR_OK && complete)
        rc = tenant_retire_policy(t, &eb);
    if (rc == ERR_OK)
        rc = tenant_warnings_store(t, &eb);
    if (rc == ERR_OK)
        rc = store_reconcile_commit(eng->st, complete, !t->apps_failed, &counts, &eb);
    if (rc != ERR_OK) {
        store_reconcile_rollback(eng->st);
        ctx.tenant_id = t->cust.tenant_id;
        remedy_set(&rem, REMEDY_STORE, &ctx, eb.msg);
        tenant_fail(t, &rem);
        return;
    }
    eng->sum.tenants_ok++;
    eng->sum.devices += (int64_t)t->ndevs;
    eng->sum.created += counts.created;
    eng->sum.updated += counts.updated;
    eng->sum.unchanged += counts.unchanged;
    eng->sum.retired += counts.retired;
    eng->sum.installs += counts.installs_added;
    t->counts = counts;
    t->nsynced = t->ndevs;
    t->took_ms = clock_mono_ms() - t->started_ms;
    t->in_batch = eng->batch_open;
    tenant_record(t, &counts);
    tenant_done(t);
    batch_due(eng);
}

/* ---- per-device phases: hardware detail and detected apps ---------------------------------- */

#define MAX_TENANT_BATCHES 4
#define MAX_APP_PAGES      50

static uint64_t
str_hash_ci(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        h = (h ^ (c >= 'A' && c <= 'Z' ? c + 32u : c)) * 1099511628211ULL;
    }
    return h;
}

static void
appcat_clear(struct appcat *c)
{
    for (size_t i = 0; i < c->n; i++)
        detected_app_clear(&c->apps[i]);
    free(c->apps);
    free(c->slots);
    memset(c, 0, sizeof *c);
}

/* The slot of the app with Graph id id[0..len), or the empty slot where it belongs. */
static size_t
appcat_slot(const struct appcat *c, const char *id, size_t len)
{
    size_t mask = c->nslots - 1, i;

    for (i = hash_bytes(id, len) & mask; c->slots[i] != 0; i = (i + 1) & mask) {
        const char *have = c->apps[c->slots[i] - 1].id;
        if (strncmp(have, id, len) == 0 && have[len] == '\0')
            break;
    }
    return i;
}

/* The catalogue index of the app with Graph id id[0..len) (need not be NUL-terminated), or
 * UINT32_MAX. A parser can look the id up before copying the app's strings: nearly every
 * detected app of a tenant is one it has already seen on another device. */
static uint32_t
appcat_find(const struct appcat *c, const char *id, size_t len)
{
    size_t i;

    if (c->n == 0)
        return UINT32_MAX;
    i = appcat_slot(c, id, len);
    return c->slots[i] != 0 ? c->slots[i] - 1 : UINT32_MAX;
}

static uint32_t
app_find(void *arg, const char *id, size_t len)
{
    return appcat_find(arg, id, len);
}

/* Takes ownership of *a (cleared on return) and returns its index in the catalogue. An app
 * without id is one graph_batch_parse_known found there already. */
static uint32_t
appcat_intern(struct appcat *c, struct detected_app *a)
{
    size_t i, len;
    uint32_t known;

    if (a->id == NULL)
        return a->known;
    len = strlen(a->id);
    known = appcat_find(c, a->id, len);

    if (known != UINT32_MAX) {
        detected_app_clear(a);
        return known;
    }
    if (c->n * 2 >= c->nslots) {
        size_t ns = c->nslots ? c->nslots * 2 : 256;
        uint32_t *slots = xcalloc(ns, sizeof *slots);

        for (size_t k = 0; k < c->n; k++) {
            i = hash_bytes(c->apps[k].id, strlen(c->apps[k].id)) & (ns - 1);
            while (slots[i] != 0)
                i = (i + 1) & (ns - 1);
            slots[i] = (uint32_t)k + 1;
        }
        free(c->slots);
        c->slots = slots;
        c->nslots = ns;
    }
    c->apps = mem_grow(c->apps, &c->cap, c->n + 1, sizeof *c->apps);
    i = appcat_slot(c, a->id, len);
    c->apps[c->n] = *a;
    memset(a, 0, sizeof *a);
    c->slots[i] = (uint32_t)c->n + 1;
    return (uint32_t)c->n++;
}

static void
devapps_add(struct devapps *d, uint32_t idx)
{
    size_t cap = d->cap; /* 32-bit counts keep the per-device list small */

    for (uint32_t i = 0; i < d->n; i++)
        if (d->idx[i] == idx)
            return;
    d->idx = mem_grow(d->idx, &cap, (size_t)d->n + 1, sizeof *d->idx);
    d->cap = (uint32_t)cap;
    d->idx[d->n++] = idx;
}

static void tenant_reconcile(struct tenant *t);
static void phase_next(struct tenant *t);
static void phase_pump(struct tenant *t);

static void
apps_problem(struct tenant *t, const char *what, long status)
{
    if (!t->apps_failed)
        snprintf(t->apps_problem, sizeof t->apps_problem, "%s (HTTP %ld)", what, status);
    t->apps_failed = 1;
}

/* Adds one parsed detectedApps page to device dev, taking the apps; rc/eb say whether the body
 * was understood. */
static void
apps_page(struct tenant *t, size_t dev, int rc, const struct errbuf *eb, struct detected_app *apps,
          size_t n)
{
    if (rc != ERR_OK) {
        apps_problem(t, "a detected-apps page was not understood", 200);
        log_warn("detected apps not understood tenant=%s: %s", t->cust.tenant_id, eb->msg);
        return;
    }
    for (size_t i = 0; i < n; i++)
        devapps_add(&t->dapps[dev], appcat_intern(&t->cat, &apps[i]));
}

static void
detail_item(struct tenant *t, size_t dev, const struct graph_batch_item *it)
{
    struct device *d = &t->devs[dev];

    if (it->memory > 0)
        d->memory = it->memory;
    if (it->ethernet_mac != NULL)
        device_set_str(d, &d->ethernet_mac, it->ethernet_mac, strlen(it->ethernet_mac));
}

static void app_page_done(struct call *c, const struct http_resp *r);

static void
app_page_request(struct tenant *t, size_t dev, char *url, int page)
{
    struct call *c = graph_call_new(t, url, app_page_done);

    c->dev = dev;
    c->page = page;
    t->busy++;
    call_submit(c);
}

static void
app_page_done(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    size_t dev = c->dev;
    struct detected_app *apps = NULL;
    size_t n = 0, cap = 0;
    char *next = NULL;
    struct errbuf eb = {0};
    int rc = ERR_PARSE;

    t->busy--;
    if (t->state != TS_RUNNING) { /* the tenant failed meanwhile */
        call_free(c);
        return;
    }
    if (r->err == ERR_OK && r->status == 200)
        rc = graph_apps_parse(r->body, r->body_len, &apps, &n, &cap, &next, &eb);
    if (rc == ERR_PARSE) { /* a failed request, or a body that is not JSON */
        apps_problem(t, "a detected-apps page failed", r->status);
        t->fetched[dev] = 0;
    } else {
        apps_page(t, dev, rc, &eb, apps, n);
    }
    if (next != NULL) {
        if (graph_link_allowed(t->eng->cfg->graph_url, next) && c->page < MAX_APP_PAGES) {
            app_page_request(t, dev, next, c->page + 1);
            next = NULL;
        } else {
            apps_problem(
                t, "a detected-apps next link was not followed (another host, or over 50 pages)",
                200);
            t->fetched[dev] = 0;
        }
    }
    free(next);
    free(apps);
    call_free(c);
    phase_pump(t);
}

static void
requeue_timer(void *arg)
{
    struct call *c = arg; /* a holder call carrying the items to requeue */
    struct tenant *t = c->t;

    if (t->state != TS_RUNNING) {
        t->busy--;
        call_free(c);
        return;
    }
    for (int i = 0; i < c->n_items; i++)
        t->pending[t->npending++] = c->items[i];
    t->busy--;
    call_free(c);
    phase_pump(t);
}

/* The token refresh started by $batch item 401s finished (or failed the tenant): the items
 * waiting for it go again. */
static void
batch_token_done(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    struct call *w = c->then;

    c->then = NULL;
    if (t->auth_wait == w)
        t->auth_wait = NULL;
    t->refreshed_ms = clock_mono_ms();
    token_done(c, r); /* caches the new token, or fails the tenant */
    http_timer(t->eng->http, 0, requeue_timer, w);
}

/* A $batch item of call c answered 401: the token may have gone stale under the batch, as for
 * a whole-response 401. The first such item refreshes the tenant's token once; items of
 * batches sent before that refresh finished go again with the new token. An item of a batch
 * sent afterwards is a real refusal (returns 0); else dev is requeued (returns 1). */
static int
batch_item_unauthorized(struct tenant *t, const struct call *c, size_t dev)
{
    struct engine *eng = t->eng;

    if (t->auth_wait == NULL) {
        struct call *tc;

        if (t->item_refreshed) {
            if (c->sent_ms >= t->refreshed_ms)
                return 0;
            t->pending[t->npending++] = dev;
            return 1;
        }
        t->item_refreshed = 1;
        t->auth_wait = call_new(eng, t, CALL_GRAPH, NULL, NULL);
        t->busy++;
        log_info("batch item unauthorized tenant=%s: refreshing the token once", t->cust.tenant_id);
        tc = token_call_new(eng, t, c->token_tenant, c->client_id, c->secret, c->audience,
                            t->auth_wait);
        tc->done = batch_token_done;
        /* Through a zero-delay timer: batch_done is still reading the tenant's state. */
        http_timer(eng->http, 0, retry_timer, tc);
    }
    t->auth_wait->items = xrealloc(t->auth_wait->items, (size_t)(t->auth_wait->n_items + 1) *
                                                            sizeof *t->auth_wait->items);
    t->auth_wait->items[t->auth_wait->n_items++] = dev;
    return 1;
}

static void
batch_done(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    struct engine *eng = t->eng;
    struct graph_batch b = {0};
    struct errbuf eb = {0};
    struct call *retry = NULL;
    int64_t delay = -1;

    t->busy--;
    if (t->state != TS_RUNNING) {
        call_free(c);
        return;
    }
    if (r->err != ERR_OK || r->status != 200 ||
        (t->phase == PHASE_DETAIL
             ? graph_batch_parse(r->body, r->body_len, GRAPH_BATCH_DETAIL, &b, &eb)
             : graph_batch_parse_known(r->body, r->body_len, app_find, &t->cat, &b, &eb)) !=
            ERR_OK) {
        if (t->phase == PHASE_APPS)
            apps_problem(t, "a $batch of detected-apps requests failed", r->status);
        for (int i = 0; i < c->n_items && t->phase == PHASE_APPS; i++)
            t->fetched[c->items[i]] = 0;
        goto out;
    }
    for (size_t i = 0; i < b.n; i++) {
        struct graph_batch_item *it = &b.items[i];
        char *end;
        long k = strtol(it->id, &end, 10);
        size_t dev;

        if (*end != '\0' || k < 0 || k >= c->n_items)
            continue;
        dev = c->items[k];
        if (it->status == 429) {
            eng->sum.throttled++;
            t->throttled++;
        }
        if (it->status == 200 && it->has_body) {
            if (t->phase == PHASE_DETAIL) {
                detail_item(t, dev, it);
            } else {
                char *next = it->next_link;

                apps_page(t, dev, it->apps_rc, &it->apps_eb, it->apps, it->napps);
                it->napps = 0; /* interned or cleared */
                it->next_link = NULL;
                t->fetched[dev] = 1;
                if (next != NULL) {
                    if (graph_link_allowed(eng->cfg->graph_url, next))
                        app_page_request(t, dev, next, 2);
                    else
                        free(next);
                }
            }
        } else if ((it->status == 429 && it->retry_after < 0 &&
                    t->throttles[dev] < ITEM_THROTTLES_MAX) ||
                   (status_retryable(it->status) && t->tries[dev] + 1 < eng->max_attempts)) {
            /* Throttled or failing items go into a new batch after their Retry-After, or
             * Intune's window (tenant_throttled), or a backoff. */
            int64_t d;

            if (it->status == 429 && it->retry_after < 0) {
                t->throttles[dev]++;
                d = tenant_throttled(t, -1);
            } else {
                t->tries[dev]++;
                d = it->status == 429      ? tenant_throttled(t, it->retry_after)
                    : it->retry_after >= 0 ? (int64_t)(it->retry_after * 1000.0)
                                           : backoff_ms(t->tries[dev] + 1);
            }
            if (retry == NULL) {
                retry = call_new(eng, t, CALL_GRAPH, NULL, NULL);
                retry->items = xcalloc(GRAPH_BATCH_MAX, sizeof *retry->items);
            }
            retry->items[retry->n_items++] = dev;
            if (d > delay)
                delay = d;
        } else if (it->status == 401 && batch_item_unauthorized(t, c, dev)) {
            /* requeued after a token refresh */
        } else if (it->status == 404) {
            /* The device left Intune since the listing: it has no apps to read. */
            if (t->phase == PHASE_APPS)
                t->fetched[dev] = 1;
        } else if (t->phase == PHASE_APPS) {
            apps_problem(t, "reading detected apps failed", it->status);
        }
    }
    if (retry != NULL) {
        if (delay > RETRY_AFTER_MAX_MS)
            delay = RETRY_AFTER_MAX_MS;
        t->busy++;
        http_timer(eng->http, delay + (int64_t)randombytes_uniform(250), requeue_timer, retry);
    }
out:
    graph_batch_clear(&b);
    call_free(c);
    phase_pump(t);
}

static void
phase_pump(struct tenant *t)
{
    struct engine *eng = t->eng;

    if (t->state != TS_RUNNING)
        return;
    while (!stop_requested && t->busy < MAX_TENANT_BATCHES && t->npending > 0) {
        const char *ids[GRAPH_BATCH_MAX], *urls[GRAPH_BATCH_MAX];
        char idbuf[GRAPH_BATCH_MAX][16];
        char *urlbuf[GRAPH_BATCH_MAX];
        struct call *c;
        int n = 0;

        c = graph_call_new(t, xasprintf("%s/beta/$batch", eng->cfg->graph_url), batch_done);
        c->bulk = 1;
        c->items = xcalloc(GRAPH_BATCH_MAX, sizeof *c->items);
        while (n < GRAPH_BATCH_MAX && t->npending > 0) {
            size_t dev = t->pending[--t->npending];

            c->items[n] = dev;
            snprintf(idbuf[n], sizeof idbuf[n], "%d", n);
            ids[n] = idbuf[n];
            if (t->phase == PHASE_DETAIL)
                urlbuf[n] = xasprintf("/deviceManagement/managedDevices/%s?$select=id,"
                                      "hardwareInformation,physicalMemoryInBytes,"
                                      "ethernetMacAddress",
                                      t->devs[dev].intune_id);
            else
                urlbuf[n] = xasprintf("/deviceManagement/managedDevices/%s/detectedApps"
                                      "?$select=id,displayName,version,publisher,platform,"
                                      "sizeInByte",
                                      t->devs[dev].intune_id);
            urls[n] = urlbuf[n];
            n++;
        }
        c->n_items = n;
        c->units = n;
        c->body = graph_batch_body(ids, urls, (size_t)n);
        c->body_len = strlen(c->body);
        for (int i = 0; i < n; i++)
            free(urlbuf[i]);
        t->busy++;
        call_submit(c);
        if (t->state != TS_RUNNING)
            return;
    }
    if (t->busy == 0 && (t->npending == 0 || stop_requested))
        phase_next(t);
}

/* Index of the tenant's device with this Intune id (any case), or SIZE_MAX. */
static size_t
devmap_find(const struct tenant *t, const char *intune_id)
{
    if (t->devmap == NULL)
        return SIZE_MAX;
    for (size_t i = str_hash_ci(intune_id) & t->devmap_mask; t->devmap[i] != 0;
         i = (i + 1) & t->devmap_mask) {
        size_t k = t->devmap[i] - 1;

        if (strcasecmp(t->devs[k].intune_id, intune_id) == 0)
            return k;
    }
    return SIZE_MAX;
}

static void
devmap_build(struct tenant *t)
{
    size_t ns = 16;

    while (ns < t->ndevs * 2)
        ns *= 2;
    t->devmap = xcalloc(ns, sizeof *t->devmap);
    t->devmap_mask = ns - 1;
    for (size_t i = 0; i < t->ndevs; i++) {
        size_t k = str_hash_ci(t->devs[i].intune_id) & t->devmap_mask;

        while (t->devmap[k] != 0)
            k = (k + 1) & t->devmap_mask;
        t->devmap[k] = (uint32_t)i + 1;
    }
}

/* Devices whose lastSyncDateTime did not move since the stored copy: no new apps to read. */
struct unchanged_ctx {
    struct tenant *t;
    unsigned char *skip;
};

static int
unchanged_cb(void *arg, const char *intune_id, int64_t last_check_in_at, int retired)
{
    struct unchanged_ctx *u = arg;
    size_t k = devmap_find(u->t, intune_id);

    if (k != SIZE_MAX && !retired && u->t->devs[k].last_check_in_at != TS_NULL &&
        u->t->devs[k].last_check_in_at == last_check_in_at)
        u->skip[k] = 1;
    return 0;
}

static void export_start(struct tenant *t);

static void
phase_start(struct tenant *t, enum phase ph)
{
    struct engine *eng = t->eng;

    t->phase = ph;
    t->npending = 0;
    memset(t->tries, 0, t->ndevs);
    memset(t->throttles, 0, t->ndevs);
    if (ph == PHASE_APPS && eng->opts->incremental) {
        struct unchanged_ctx u = {t, xcalloc(t->ndevs ? t->ndevs : 1, 1)};
        struct errbuf eb = {0};

        if (store_device_checkins(eng->st, eng->in->id, t->cust.tenant_id, unchanged_cb, &u, &eb) !=
            ERR_OK)
            memset(u.skip, 0, t->ndevs);
        for (size_t i = 0; i < t->ndevs; i++)
            if (!u.skip[i])
                t->pending[t->npending++] = i;
        free(u.skip);
    } else {
        for (size_t i = 0; i < t->ndevs; i++)
            t->pending[t->npending++] = i;
    }
    /* Many devices: one report export costs a handful of requests instead of one per device
     * (beyond one Intune window, per-device reads need a further 20 s per 2000 devices). */
    if (ph == PHASE_APPS && t->npending >= (size_t)eng->export_min_devices) {
        export_start(t);
        return;
    }
    phase_pump(t);
}

static void
phase_next(struct tenant *t)
{
    const struct sync_opts *o = t->eng->opts;

    if (stop_requested) {
        struct http_resp r = {.err = ERR_INTERRUPTED, .errmsg = "interrupted", .retry_after = -1};
        struct remedy rem;

        graph_failure(t, &r, &rem);
        tenant_fail(t, &rem);
        return;
    }
    if (t->phase == PHASE_NONE && o->hardware_detail && t->ndevs > 0) {
        phase_start(t, PHASE_DETAIL);
        return;
    }
    if (t->phase != PHASE_APPS && o->software && t->ndevs > 0) {
        phase_start(t, PHASE_APPS);
        return;
    }
    tenant_reconcile(t);
}

static void
tenant_after_listing(struct tenant *t)
{
    if (t->ndevs > 0) {
        t->dapps = xcalloc(t->ndevs, sizeof *t->dapps);
        t->fetched = xcalloc(t->ndevs, 1);
        t->tries = xcalloc(t->ndevs, 1);
        t->throttles = xcalloc(t->ndevs, 1);
        t->pending = xcalloc(t->ndevs, sizeof *t->pending);
    }
    devmap_build(t);
    t->phase = PHASE_NONE;
    phase_next(t);
}

/* ---- detected apps from the AppInvRawData report export ------------------------------------ */

#define EXPORT_MAX_WAIT_MS (30 * 60 * 1000)
/* The zip lives in a temporary file, mapped while it is read: these bound disk, not memory. */
#define EXPORT_MAX_ZIP ((size_t)4 << 30)
#define EXPORT_MAX_CSV ((size_t)32 << 30)
/* Jobs Microsoft made for our POST may carry a requestDateTime a little before our clock. */
#define EXPORT_CLOCK_SLACK_S 300

static const char *const export_columns[6] = {
    "ApplicationKey",     "ApplicationName", "ApplicationPublisher",
    "ApplicationVersion", "DeviceId",        "Platform"};

static void export_created(struct call *c, const struct http_resp *r);
static void export_polled(struct call *c, const struct http_resp *r);
static void export_downloaded(struct call *c, const struct http_resp *r);

/* The export did not work out: read the apps device by device instead. */
static void
export_fallback(struct tenant *t, const char *why, long status)
{
    log_info("report export not used tenant=%s status=%ld: %s; reading apps per device",
             t->cust.tenant_id, status, why);
    XFREE(t->export_id);
    export_file_close(t);
    phase_pump(t);
}

/* A temporary file for the report in $TMPDIR (else /tmp), mode 0600, unlinked at once: it
 * disappears with its descriptor on every path, a crash included. -1 when none can be made. */
static int
export_file_open(struct tenant *t)
{
    const char *dir = config_env("TMPDIR");
    char path[4096];
    int fd;

    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    if ((size_t)snprintf(path, sizeof path, "%s/memsync-export-XXXXXX", dir) >= sizeof path)
        return -1;
    if ((fd = mkstemp(path)) < 0) {
        log_warn("cannot make a temporary file for the report tenant=%s dir=%s: %s",
                 t->cust.tenant_id, dir, err_strerror(errno));
        return -1;
    }
    (void)unlink(path);
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

static void
export_start(struct tenant *t)
{
    struct engine *eng = t->eng;
    json_t *sel = json_array(), *body;
    struct call *c;

    for (size_t i = 0; i < 6; i++)
        json_array_append_new(sel, json_string(export_columns[i]));
    /* replaceLocalizableValues: names, not codes, in the columns (the default keeps codes and
     * adds *_loc columns), so Platform reads as detectedApp's platform does. */
    body = json_pack("{s:s, s:s, s:s, s:o}", "reportName", "AppInvRawData", "format", "csv",
                     "localizationType", "replaceLocalizableValues", "select", sel);
    c = graph_call_new(
        t, xasprintf("%s/beta/deviceManagement/reports/exportJobs", eng->cfg->graph_url),
        export_created);
    c->body = json_dumps(body, JSON_COMPACT);
    c->body_len = strlen(c->body);
    c->no_transport_retry = 1;
    json_decref(body);
    t->busy++;
    t->export_waited_ms = 0;
    t->export_delay_ms = 1000;
    t->export_posts++;
    t->export_posted = clock_now();
    call_submit(c);
}

static void export_listed(struct call *c, const struct http_resp *r);
static void export_schedule_poll(struct tenant *t);

/* The POST failed after it may have reached Microsoft (a timeout, a dropped connection): a job
 * may exist. List the tenant's jobs and take ours rather than start a second export. */
static void
export_look_for_job(struct tenant *t)
{
    struct call *c = graph_call_new(
        t, xasprintf("%s/beta/deviceManagement/reports/exportJobs", t->eng->cfg->graph_url),
        export_listed);

    t->busy++;
    call_submit(c);
}

static void
export_listed(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    json_t *root = NULL, *v, *best = NULL;
    int64_t best_at = TS_NULL;
    size_t i;

    t->busy--;
    if (t->state != TS_RUNNING) {
        call_free(c);
        return;
    }
    call_free(c);
    if (r->err != ERR_OK || r->status != 200 ||
        (root = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
        !json_is_array(json_object_get(root, "value"))) {
        json_decref(root);
        export_fallback(t, "the export job's creation failed and the jobs could not be listed",
                        r->status);
        return;
    }
    /* Ours: AppInvRawData, not failed, asked for no earlier than our POST (less clock slack). */
    json_array_foreach(json_object_get(root, "value"), i, v)
    {
        const char *id = json_string_value(json_object_get(v, "id"));
        const char *rep = json_string_value(json_object_get(v, "reportName"));
        const char *st = json_string_value(json_object_get(v, "status"));
        const char *at = json_string_value(json_object_get(v, "requestDateTime"));
        int64_t when;

        if (id == NULL || id[0] == '\0' || rep == NULL || strcmp(rep, "AppInvRawData") != 0 ||
            (st != NULL && strcmp(st, "failed") == 0) || at == NULL ||
            clock_parse(at, &when) != ERR_OK || when < t->export_posted - EXPORT_CLOCK_SLACK_S)
            continue;
        if (best == NULL || when > best_at) {
            best = v;
            best_at = when;
        }
    }
    if (best != NULL) {
        t->export_id = xstrdup(json_string_value(json_object_get(best, "id")));
        log_info("report export job found after an interrupted request tenant=%s",
                 t->cust.tenant_id);
        json_decref(root);
        export_schedule_poll(t);
        return;
    }
    json_decref(root);
    if (t->export_posts < 2) { /* none made: asking again cannot double it */
        export_start(t);
        return;
    }
    export_fallback(t, "the export job could not be created", 0);
}

static void
export_poll_timer(void *arg)
{
    struct tenant *t = arg;
    char *url;

    t->busy--;
    if (t->state != TS_RUNNING)
        return;
    url = xasprintf("%s/beta/deviceManagement/reports/exportJobs('%s')", t->eng->cfg->graph_url,
                    t->export_id);
    t->busy++;
    call_submit(graph_call_new(t, url, export_polled));
}

static void
export_schedule_poll(struct tenant *t)
{
    if (t->export_waited_ms >= EXPORT_MAX_WAIT_MS) {
        export_fallback(t, "the export job did not finish within 30 minutes", 0);
        return;
    }
    t->busy++;
    http_timer(t->eng->http, t->export_delay_ms, export_poll_timer, t);
    t->export_waited_ms += t->export_delay_ms;
    if (t->export_delay_ms < 30000)
        t->export_delay_ms *= 2;
}

/* id, status and url of an export job; the docs' {"value": {...}} wrapper is accepted. */
static json_t *
export_job_json(const struct http_resp *r)
{
    json_t *root = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, NULL);

    if (root != NULL && json_is_object(json_object_get(root, "value"))) {
        json_t *v = json_incref(json_object_get(root, "value"));

        json_decref(root);
        root = v;
    }
    if (root != NULL && !json_is_string(json_object_get(root, "id"))) {
        json_decref(root);
        root = NULL;
    }
    return root;
}

static void
export_created(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    json_t *job = NULL;

    t->busy--;
    if (t->state != TS_RUNNING) {
        call_free(c);
        return;
    }
    if (r->err != ERR_OK && r->err != ERR_INTERRUPTED) {
        call_free(c);
        export_look_for_job(t);
        return;
    }
    if (r->err != ERR_OK || (r->status != 201 && r->status != 200) ||
        (job = export_job_json(r)) == NULL) {
        call_free(c);
        export_fallback(t, "the export job could not be created", r->status);
        return;
    }
    t->export_id = xstrdup(json_string_value(json_object_get(job, "id")));
    json_decref(job);
    call_free(c);
    export_schedule_poll(t);
}

static void
export_polled(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    json_t *job = NULL;
    const char *status, *url;

    t->busy--;
    if (t->state != TS_RUNNING) {
        call_free(c);
        return;
    }
    call_free(c);
    if (r->err != ERR_OK || r->status != 200 || (job = export_job_json(r)) == NULL) {
        export_fallback(t, "the export job could not be read", r->status);
        return;
    }
    status = json_string_value(json_object_get(job, "status"));
    url = json_string_value(json_object_get(job, "url"));
    if (status != NULL && strcmp(status, "completed") == 0 && url != NULL && url[0] != '\0') {
        struct call *d;

        if (!graph_blob_url_allowed(t->eng->cfg->graph_url, url)) {
            export_fallback(t,
                            "the export's download URL is not on an Azure Blob Storage host or "
                            "the Graph host; it was not fetched",
                            200);
        } else if ((t->export_fd = export_file_open(t)) < 0) {
            export_fallback(t, "no temporary file for the report", 200);
        } else {
            d = call_new(t->eng, t, CALL_BLOB, xstrdup(url), export_downloaded);
            d->max_body = EXPORT_MAX_ZIP;
            d->sink_fd = t->export_fd;
            d->bulk = 1;
            t->busy++;
            call_submit(d);
        }
    } else if (status != NULL && strcmp(status, "failed") == 0) {
        export_fallback(t, "Microsoft reports the export job failed", 200);
    } else {
        export_schedule_poll(t);
    }
    json_decref(job);
}

/* Normalises the report's Platform to detectedApp's platform spelling where they match. */
static const char *
export_platform(const char *p)
{
    static const char *const known[] = {
        "unknown",
        "windows",
        "windowsMobile",
        "windowsHolographic",
        "ios",
        "macOS",
        "chromeOS",
        "androidOSP",
        "androidDeviceAdministrator",
        "androidWorkProfile",
        "androidDedicatedAndFullyManaged",
    };

    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcasecmp(p, known[i]) == 0)
            return known[i];
    return p;
}

static int
export_row(void *arg, size_t row, const char *const *cells, size_t ncells)
{
    struct tenant *t = arg;
    struct detected_app a = {0};
    size_t dev;
    const char *v[6];
    uint32_t known;

    if (row == 0) {
        for (size_t k = 0; k < 6; k++) {
            t->export_cols[k] = -1;
            for (size_t i = 0; i < ncells; i++)
                if (strcasecmp(cells[i], export_columns[k]) == 0)
                    t->export_cols[k] = (int)i;
        }
        /* Key, name and device are needed; the rest may be missing. */
        return t->export_cols[0] < 0 || t->export_cols[1] < 0 || t->export_cols[4] < 0 ? ERR_PARSE
                                                                                       : ERR_OK;
    }
    for (size_t k = 0; k < 6; k++)
        v[k] = t->export_cols[k] >= 0 && (size_t)t->export_cols[k] < ncells
                   ? cells[t->export_cols[k]]
                   : "";
    dev = devmap_find(t, v[4]);
    if (dev == SIZE_MAX || v[0][0] == '\0')
        return ERR_OK; /* a device that left Intune after the listing, or a blank row */
    if ((known = appcat_find(&t->cat, v[0], strlen(v[0]))) != UINT32_MAX) {
        devapps_add(&t->dapps[dev], known); /* copy only apps new to the tenant */
        return ERR_OK;
    }
    a.id = xstrdup(v[0]);
    a.name = v[1][0] ? xstrdup(v[1]) : NULL;
    a.publisher = v[2][0] ? xstrdup(v[2]) : NULL;
    a.version = v[3][0] ? xstrdup(v[3]) : NULL;
    a.platform = v[5][0] ? xstrdup(export_platform(v[5])) : NULL;
    a.size_bytes = -1;
    devapps_add(&t->dapps[dev], appcat_intern(&t->cat, &a));
    return ERR_OK;
}

/* Reads the downloaded zip from its file, mapped: the page cache holds it, not the heap. */
static int
export_read_file(struct tenant *t, struct errbuf *eb)
{
    struct stat sb;
    void *map;
    int rc;

    if (fstat(t->export_fd, &sb) != 0)
        return err_set(eb, ERR_IO, "cannot read the downloaded report: %s", err_strerror(errno));
    if (sb.st_size <= 0)
        return err_set(eb, ERR_PARSE, "the downloaded report is empty");
    map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, t->export_fd, 0);
    if (map == MAP_FAILED)
        return err_set(eb, ERR_IO, "cannot map the downloaded report: %s", err_strerror(errno));
    rc = report_zip_csv(map, (size_t)sb.st_size, EXPORT_MAX_CSV, export_row, t, eb);
    munmap(map, (size_t)sb.st_size);
    return rc;
}

static void
export_downloaded(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    struct errbuf eb = {0};
    int rc;

    t->busy--;
    if (t->state != TS_RUNNING) {
        call_free(c);
        return;
    }
    call_free(c);
    if (r->err != ERR_OK || (r->status != 200 && r->status != 206)) {
        export_fallback(t, r->err != ERR_OK ? r->errmsg : "the export could not be downloaded",
                        r->status);
        return;
    }
    log_debug("report downloaded tenant=%s bytes=%lld", t->cust.tenant_id,
              (long long)r->file_bytes);
    rc = export_read_file(t, &eb);
    export_file_close(t);
    if (rc != ERR_OK) {
        /* Apps read so far may be partial: drop them all and read per device. */
        for (size_t i = 0; i < t->ndevs; i++)
            t->dapps[i].n = 0;
        export_fallback(t, eb.msg, 200);
        return;
    }
    /* The report covers every device: the pending ones now have their (possibly empty) sets. */
    for (size_t i = 0; i < t->npending; i++)
        t->fetched[t->pending[i]] = 1;
    t->npending = 0;
    XFREE(t->export_id);
    log_debug("apps from report export tenant=%s apps=%zu", t->cust.tenant_id, t->cat.n);
    phase_pump(t);
}

static void devices_done(struct call *c, const struct http_resp *r);

static void
devices_request(struct tenant *t, char *url)
{
    struct call *c = graph_call_new(t, url, devices_done);

    c->bulk = 1;
    call_submit(c);
}

static void
devices_done(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    struct errbuf eb = {0};
    struct remedy rem;
    struct remedy_ctx ctx = {0};
    char *next = NULL;

    ctx.tenant_id = t->cust.tenant_id;
    if (r->err != ERR_OK || r->status != 200) {
        graph_failure(t, r, &rem);
        goto fail;
    }
    if (graph_devices_parse(r->body, r->body_len, &t->devs, &t->ndevs, &t->capdevs, &next, &eb) !=
        ERR_OK) {
        remedy_set(&rem, REMEDY_BAD_RESPONSE, &ctx, eb.msg);
        note_resp_ids(&rem, r, NULL, NULL);
        goto fail;
    }
    t->pages++;
    if (next != NULL) {
        if (!graph_link_allowed(t->eng->cfg->graph_url, next)) {
            remedy_set(&rem, REMEDY_BAD_RESPONSE, &ctx,
                       "the next-page link points to another host; the token was not sent");
            free(next);
            goto fail;
        }
        if (t->pages >= MAX_DEVICE_PAGES) {
            remedy_set(&rem, REMEDY_BAD_RESPONSE, &ctx, "too many device pages");
            free(next);
            goto fail;
        }
        call_free(c);
        devices_request(t, next);
        return;
    }
    call_free(c);
    tenant_after_listing(t);
    return;
fail:
    call_free(c);
    tenant_fail(t, &rem);
}

static void overview_request(struct tenant *t);

static void
org_done(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    struct errbuf eb = {0};
    struct remedy rem;
    struct remedy_ctx ctx = {0};

    ctx.tenant_id = t->cust.tenant_id;
    if (r->err == ERR_OK && r->status == 403) {
        /* Optional: consents granted before the app had Organization.Read.All answer 403
         * Authorization_RequestDenied. Partner Center's (or the contract's) name and domain
         * stand in, and the client row's warning says what to consent. */
        ctx.app_id = t->eng->creds->sync_app_id;
        ctx.app_label = "Sync App";
        ctx.login_base = t->eng->cfg->login_url;
        remedy_set(&rem, REMEDY_ORG_UNREADABLE, &ctx, NULL);
        tenant_warn(t, &rem);
        call_free(c);
        overview_request(t);
        return;
    }
    if (r->err != ERR_OK || r->status != 200) {
        graph_failure(t, r, &rem);
        call_free(c);
        tenant_fail(t, &rem);
        return;
    }
    if (graph_org_parse(r->body, r->body_len, &t->org, &eb) != ERR_OK) {
        remedy_set(&rem, REMEDY_BAD_RESPONSE, &ctx, eb.msg);
        call_free(c);
        tenant_fail(t, &rem);
        return;
    }
    call_free(c);
    overview_request(t);
}

/* Microsoft's count of the tenant's devices, read before the listing so that devices enrolled
 * meanwhile only make the listing longer; without it (any failure) the listing is trusted as
 * before and the retirement policy alone protects the devices. */
static void
overview_done(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    struct errbuf eb = {0};

    t->overview_count = -1;
    if (r->err != ERR_OK || r->status != 200)
        log_info("no device count tenant=%s status=%ld", t->cust.tenant_id, r->status);
    else if (graph_overview_parse(r->body, r->body_len, &t->overview_count, &eb) != ERR_OK)
        log_info("no device count tenant=%s: %s", t->cust.tenant_id, eb.msg);
    call_free(c);
    devices_request(t, graph_devices_url(t->eng->cfg->graph_url, "v1.0", GRAPH_DEVICE_PAGE_SIZE));
}

static void
overview_request(struct tenant *t)
{
    char *url = xasprintf("%s/v1.0/deviceManagement/managedDeviceOverview", t->eng->cfg->graph_url);

    call_submit(graph_call_new(t, url, overview_done));
}

static void
tenant_start(struct tenant *t)
{
    struct engine *eng = t->eng;
    char *url = xasprintf("%s/v1.0/organization", eng->cfg->graph_url);

    t->state = TS_RUNNING;
    t->started_ms = clock_mono_ms();
    t->overview_count = -1;
    pacer_init(&t->pacer, eng->tenant_limit, INTUNE_TENANT_WINDOW);
    eng->inflight++;
    /* call_submit fetches the token first when none is cached. */
    call_submit(graph_call_new(t, url, org_done));
}

static void
start_tenants(struct engine *eng)
{
    while (!stop_requested && !eng->discover_only && eng->listing_done && !eng->fatal &&
           eng->inflight < eng->parallel && eng->next_tenant < eng->ntenants)
        tenant_start(&eng->tenants[eng->next_tenant++]);
}

/* ---- key expiry from Microsoft ------------------------------------------------------------- */

/* With Application.Read.All in the partner tenant the Sync App may read both apps'
 * passwordCredentials (notes §10): each key's endDateTime then replaces the entered date, and
 * the integration says where its date came from. Without it (403) the entered date stays. */
static void expiry_done(struct call *c, const struct http_resp *r);

static void
expiry_request(struct engine *eng, int partner_app)
{
    const struct integration *in = eng->in;
    const char *app = partner_app ? in->partner_app_id : in->sync_app_id;
    struct call *c;

    if (app == NULL || in->partner_tenant_id == NULL || eng->creds->sync_secret == NULL)
        return;
    c = call_new(eng, NULL, CALL_GRAPH,
                 xasprintf("%s/v1.0/applications(appId='%s')?$select=appId,passwordCredentials",
                           eng->cfg->graph_url, app),
                 expiry_done);
    c->token_tenant = xstrdup(in->partner_tenant_id);
    c->audience = eng->cloud->graph_audience;
    c->client_id = eng->creds->sync_app_id;
    c->secret = eng->creds->sync_secret;
    c->optional = 1;
    c->partner_app = partner_app;
    call_submit(c);
}

/* The endDateTime of the credential whose hint is the stored key's first three characters (the
 * latest of several), or of the latest one when no hint is stored; TS_NULL when none fits. */
static int64_t
expiry_pick(json_t *creds, const char *hint)
{
    int64_t best = TS_NULL, matched = TS_NULL;
    size_t i;
    json_t *v;

    json_array_foreach(creds, i, v)
    {
        const char *end = json_string_value(json_object_get(v, "endDateTime"));
        const char *h = json_string_value(json_object_get(v, "hint"));
        int64_t t;

        if (end == NULL || clock_parse(end, &t) != ERR_OK)
            continue;
        if (best == TS_NULL || t > best)
            best = t;
        if (hint != NULL && h != NULL && strlen(hint) >= 3 && strncmp(h, hint, 3) == 0 &&
            (matched == TS_NULL || t > matched))
            matched = t;
    }
    return hint != NULL && strlen(hint) >= 3 ? matched : best;
}

static void
expiry_done(struct call *c, const struct http_resp *r)
{
    struct engine *eng = c->eng;
    const struct integration *in = eng->in;
    int partner = c->partner_app;
    const char *label = partner ? "partner" : "sync";
    const char *hint = partner ? in->partner_secret_hint : in->sync_secret_hint;
    const char *src = partner ? in->partner_secret_expiry_source : in->sync_secret_expiry_source;
    int64_t have = partner ? in->partner_secret_expires : in->sync_secret_expires, got;
    json_t *root = NULL, *creds;
    struct errbuf eb = {0};
    char date[32];

    if (r->err != ERR_OK) {
        log_info("key expiry not read from Microsoft integration=%lld app=%s: %s; the entered "
                 "date stays",
                 (long long)in->id, label, r->errmsg);
        goto out;
    }
    if (r->status != 200 ||
        (root = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
        !json_is_array(creds = json_object_get(root, "passwordCredentials"))) {
        log_info("key expiry not read from Microsoft integration=%lld app=%s status=%ld: %s; "
                 "the entered date stays",
                 (long long)in->id, label, r->status,
                 r->status == 403 ? "the Sync App needs Application.Read.All in the partner "
                                    "tenant for that"
                                  : "the application could not be read");
        goto out;
    }
    if ((got = expiry_pick(creds, hint)) == TS_NULL) {
        log_warn("key expiry not read from Microsoft integration=%lld app=%s: no key of the app "
                 "starts like the stored one; the entered date stays",
                 (long long)in->id, label);
        goto out;
    }
    if (got == have && src != NULL && strcmp(src, "microsoft") == 0)
        goto out;
    if (store_integration_set_expiry(eng->st, in->id, label, got, "microsoft", &eb) != ERR_OK) {
        log_error("cannot record the key's expiry integration=%lld: %s", (long long)in->id, eb.msg);
        goto out;
    }
    clock_fmt(got, date, sizeof date);
    log_info("key expiry taken from Microsoft integration=%lld app=%s expires=%s",
             (long long)in->id, label, date);
out:
    json_decref(root);
    call_free(c);
}

/* ---- customer listing ---------------------------------------------------------------------- */

static void customers_done(struct call *c, const struct http_resp *r);

static void
customers_request(struct engine *eng, char *url, const char *continuation)
{
    struct call *c;

    if (strcmp(eng->in->tenant_source, "partner_center") == 0) {
        c = call_new(eng, NULL, CALL_PC, url, customers_done);
        c->audience = eng->cloud->pc_audience;
        c->client_id = eng->creds->partner_app_id;
        c->secret = eng->creds->partner_secret;
    } else {
        /* Graph /contracts or GDAP customers, read with the sync app in the partner tenant. */
        c = call_new(eng, NULL, CALL_GRAPH, url, customers_done);
        c->audience = eng->cloud->graph_audience;
        c->client_id = eng->creds->sync_app_id;
        c->secret = eng->creds->sync_secret;
    }
    c->token_tenant = xstrdup(eng->creds->partner_tenant_id);
    if (continuation != NULL)
        c->extra_header = xasprintf("MS-ContinuationToken: %s", continuation);
    call_submit(c);
}

/* The first page of the integration's customer source. */
static char *
customers_first_url(struct engine *eng)
{
    if (strcmp(eng->in->tenant_source, "contracts") == 0)
        return xasprintf("%s/v1.0/contracts", eng->cfg->graph_url);
    if (strcmp(eng->in->tenant_source, "gdap") == 0)
        return xasprintf("%s/v1.0/tenantRelationships/delegatedAdminCustomers",
                         eng->cfg->graph_url);
    return partner_customers_url(eng->cfg->partner_center_url, PARTNER_PAGE_SIZE);
}

static void
listing_fail(struct engine *eng, const char *what, const char *detail)
{
    const char *src = strcmp(eng->in->tenant_source, "contracts") == 0 ? "Graph /contracts"
                      : strcmp(eng->in->tenant_source, "gdap") == 0
                          ? "Graph GDAP delegatedAdminCustomers"
                          : "Partner Center";

    eng->fatal = 1;
    eng->listing_done = 1;
    err_set(&eng->fatal_eb, ERR_HTTP, "cannot list the partner's customers from %s: %s%s%s", src,
            what, detail != NULL && detail[0] ? ": " : "", detail != NULL ? detail : "");
}

static void
add_tenant(struct engine *eng, struct customer *cu)
{
    struct tenant *t;

    /* The same tenant listed twice (paging overlap) is synced once. */
    for (size_t i = 0; i < eng->ntenants; i++)
        if (strcasecmp(eng->tenants[i].cust.tenant_id, cu->tenant_id) == 0)
            return;
    for (size_t i = 0; i < eng->nexcluded; i++) {
        if (strcasecmp(eng->excluded[i], cu->tenant_id) == 0) {
            eng->nskipped++;
            return;
        }
    }
    eng->tenants =
        mem_grow(eng->tenants, &eng->captenants, eng->ntenants + 1, sizeof *eng->tenants);
    t = &eng->tenants[eng->ntenants++];
    memset(t, 0, sizeof *t);
    t->eng = eng;
    t->cust = *cu;
    memset(cu, 0, sizeof *cu);
    t->state = TS_QUEUED;
    t->export_fd = -1;
}

static void
customers_done(struct call *c, const struct http_resp *r)
{
    struct engine *eng = c->eng;
    struct customer_page page = {0};
    struct errbuf eb = {0};

    if (r->err == ERR_INTERRUPTED) {
        eng->listing_done = 1;
        goto out;
    }
    if (r->err != ERR_OK) {
        listing_fail(eng, "the request failed", r->errmsg);
        goto out;
    }
    if (r->status != 200) {
        char msg[512] = "";
        size_t ml;

        partner_error_parse(r->body, r->body_len, msg, sizeof msg);
        ml = strlen(msg);
        /* Microsoft's ids for its support travel with the run's message. */
        if (r->request_id != NULL && r->request_id[0] != '\0')
            snprintf(msg + ml, sizeof msg - ml, "%s(request-id %s%s%s)", ml > 0 ? " " : "",
                     r->request_id, r->date != NULL && r->date[0] != '\0' ? ", date " : "",
                     r->date != NULL ? r->date : "");
        if ((r->status == 401 || r->status == 403) && c->kind == CALL_PC)
            listing_fail(eng,
                         "Partner Center refused the Partner App's token; check that the app is "
                         "registered in Partner Center > Account settings > App management",
                         msg);
        else if (r->status == 401 || r->status == 403)
            listing_fail(eng,
                         "Microsoft Graph refused the Sync App in the partner tenant; it needs "
                         "Directory.Read.All (contracts) or DelegatedAdminRelationship.Read.All "
                         "(GDAP) with admin consent there",
                         msg);
        else if (r->status == 429)
            listing_fail(eng, "throttled by Partner Center beyond the retry budget", msg);
        else {
            char what[64];

            snprintf(what, sizeof what, "HTTP %ld", r->status);
            listing_fail(eng, what, msg);
        }
        goto out;
    }
    if ((c->kind == CALL_PC ? partner_customers_parse(r->body, r->body_len, &page, &eb)
         : strcmp(eng->in->tenant_source, "contracts") == 0
             ? partner_contracts_parse(r->body, r->body_len, &page, &eb)
             : partner_gdap_customers_parse(r->body, r->body_len, &page, &eb)) != ERR_OK) {
        listing_fail(eng, "the response was not understood", eb.msg);
        goto out;
    }
    for (size_t i = 0; i < page.count; i++)
        if (page.items[i].tenant_id != NULL)
            add_tenant(eng, &page.items[i]);
    eng->pc_pages++;
    if (page.next_uri != NULL && eng->pc_pages < MAX_CUSTOMER_PAGES) {
        if (c->kind == CALL_PC) {
            char *next = partner_next_url(eng->cfg->partner_center_url, page.next_uri);

            if (next == NULL) {
                listing_fail(eng, "the next-page link points elsewhere", NULL);
                goto out;
            }
            customers_request(eng, next, page.next_continuation);
        } else if (graph_link_allowed(eng->cfg->graph_url, page.next_uri)) {
            customers_request(eng, xstrdup(page.next_uri), NULL);
        } else {
            listing_fail(eng, "the next-page link points to another host", NULL);
            goto out;
        }
    } else {
        eng->listing_done = 1;
        eng->sum.tenants_total = (int)eng->ntenants;
        log_info("customers listed source=%s tenants=%zu excluded=%d pages=%d",
                 eng->in->tenant_source, eng->ntenants, eng->nskipped, eng->pc_pages);
        start_tenants(eng);
    }
out:
    customer_page_clear(&page);
    call_free(c);
}

/* ---- entry --------------------------------------------------------------------------------- */

static int
excluded_cb(void *arg, const struct client_row *c)
{
    struct engine *eng = arg;

    if (c->integration_id == eng->in->id && !c->included) {
        eng->excluded = xrealloc(eng->excluded, (eng->nexcluded + 1) * sizeof *eng->excluded);
        eng->excluded[eng->nexcluded++] = xstrdup(c->tenant_id);
    }
    return 0;
}

static int
load_excluded(struct engine *eng, struct errbuf *eb)
{
    return store_clients_each(eng->st, eng->in->account_id, excluded_cb, eng, eb);
}

static void
add_given_tenants(struct engine *eng)
{
    for (size_t i = 0; i < eng->opts->ntenants; i++) {
        const struct customer *g = &eng->opts->tenants[i];
        struct customer cu = {0};

        if (g->tenant_id == NULL)
            continue;
        cu.tenant_id = xstrdup(g->tenant_id);
        cu.name = g->name != NULL ? xstrdup(g->name) : NULL;
        cu.domain = g->domain != NULL ? xstrdup(g->domain) : NULL;
        cu.relationship = g->relationship != NULL ? xstrdup(g->relationship) : NULL;
        cu.associated_partner_id =
            g->associated_partner_id != NULL ? xstrdup(g->associated_partner_id) : NULL;
        add_tenant(eng, &cu);
        customer_clear(&cu); /* add_tenant took the strings, or skipped the tenant */
    }
    eng->listing_done = 1;
    eng->sum.tenants_total = (int)eng->ntenants;
    start_tenants(eng);
}

/* Runs the engine; with discover_only the customers stay in eng->tenants for the caller. */
static int
engine_run(struct engine *eng, struct store *st, const struct integration *in,
           const struct sync_creds *creds, const struct sync_opts *opts, struct sync_summary *out,
           struct errbuf *eb)
{
    struct http_opts hopts = {0};
    const char *run_status;
    int64_t next_tick;
    int rc;

    memset(out, 0, sizeof *out);
    stop_requested = 0;
    eng->st = st;
    eng->in = in;
    eng->creds = creds;
    eng->opts = opts;
    if ((eng->cloud = cloud_find(in->cloud)) == NULL) {
        log_warn("unknown cloud integration=%lld cloud=%s; using global", (long long)in->id,
                 in->cloud);
        eng->cloud = cloud_find(NULL);
    }
    eng->cloud_cfg = xmalloc(sizeof *eng->cloud_cfg);
    *eng->cloud_cfg = *opts->cfg;
    cloud_apply(eng->cloud, eng->cloud_cfg);
    eng->cfg = eng->cloud_cfg;
    eng->parallel = opts->parallel > 0 ? opts->parallel : eng->cfg->sync_parallel;
    eng->batch_ms = eng->cfg->sync_commit_ms;
    if (eng->parallel < 1)
        eng->parallel = 1;
    eng->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : DEFAULT_ATTEMPTS;
    /* The tenant's pace: an explicit limit (Microsoft's, shared below), else the configured
     * budget, conservative because the tenant's 4000 per 20 s are shared with its other apps. */
    eng->tenant_limit = opts->intune_tenant_limit > 0
                            ? opts->intune_tenant_limit * PACING_SHARE_PCT / 100
                        : eng->cfg->intune_tenant_budget > 0 ? eng->cfg->intune_tenant_budget
                                                             : 1000;
    /* Automatic strategy: the export once per-device reads would not fit one window of the
     * tenant's pace (at 1000 per 20 s, 1000 devices read one by one wait a second window). */
    eng->export_min_devices =
        opts->export_min_devices > 0 ? opts->export_min_devices : eng->tenant_limit;
    eng->started_ms = clock_mono_ms();
    guid_random(eng->correlation_id);
    pacer_init(&eng->global,
               (opts->intune_global_limit > 0 ? opts->intune_global_limit : 130000) *
                   PACING_SHARE_PCT / 100,
               INTUNE_GLOBAL_WINDOW);
    pacer_init(&eng->pc, (opts->pc_limit > 0 ? opts->pc_limit : 500) * PACING_SHARE_PCT / 100,
               PC_WINDOW);
    hopts.ca_file = eng->cfg->ca_file[0] != '\0' ? eng->cfg->ca_file : NULL;
    hopts.max_host_connections = eng->parallel < 8 ? 8 : eng->parallel;
    hopts.max_connections = hopts.max_host_connections * 3;
    if ((rc = http_new(&eng->http, &hopts, eb)) != ERR_OK)
        goto out;
    eng->tokens = token_cache_new();
    if (eng->discover_only || opts->run_id > 0)
        eng->run_id = opts->run_id;
    else if ((rc = store_run_start(st, in->id, opts->incremental ? "incremental" : "full",
                                   clock_now(), &eng->run_id, eb)) != ERR_OK)
        goto out;
    out->run_id = eng->run_id;

    if ((rc = load_excluded(eng, eb)) != ERR_OK)
        goto out;
    if (opts->progress)
        log_progress_line(1);
    if (opts->tenants != NULL && !eng->discover_only)
        add_given_tenants(eng);
    else
        customers_request(eng, customers_first_url(eng), NULL);
    if (!eng->discover_only) {
        expiry_request(eng, 0);
        expiry_request(eng, 1);
    }
    next_tick = clock_mono_ms() + 1000;
    while (http_pending(eng->http) > 0) {
        http_run(eng->http, batch_wait_ms(eng));
        batch_due(eng);
        progress_draw(eng, 0);
        if (opts->tick != NULL && !eng->discover_only && clock_mono_ms() >= next_tick) {
            batch_flush(eng); /* tick runs with no store transaction open */
            if (opts->tick(opts->tick_arg) != 0)
                stop_requested = 1;
            next_tick = clock_mono_ms() + 1000;
        }
        if (stop_requested && eng->inflight == 0)
            break;
    }
    batch_flush(eng);
    progress_draw(eng, 1);
    log_progress_line(0);

    eng->sum.duration_ms = clock_mono_ms() - eng->started_ms;
    eng->sum.interrupted = stop_requested != 0;
    if (eng->fatal) {
        run_status = "failed";
        rc = err_set(eb, eng->fatal_eb.code ? eng->fatal_eb.code : ERR_HTTP, "%s",
                     eng->fatal_eb.msg);
    } else if (stop_requested) {
        run_status = "interrupted";
        rc = ERR_OK;
    } else {
        run_status = eng->sum.tenants_failed > 0 ? "partial" : "ok";
        rc = ERR_OK;
    }
    eng->sum.run_id = eng->run_id;
    *out = eng->sum;
    if (eng->discover_only)
        goto out;
    if (opts->run_id <= 0) {
        struct errbuf feb = {0};
        const char *why = NULL;

        if (eng->fatal)
            why = eng->fatal_eb.msg;
        else if (stop_requested)
            why = "stopped before every tenant was synced; tenants not finished keep their "
                  "previous data";

        if (store_run_finish(st, eng->run_id, run_status, why, clock_now(), &feb) != ERR_OK)
            log_error("cannot finish sync run run=%lld: %s", (long long)eng->run_id, feb.msg);
    }
    log_info("sync finished run=%lld status=%s tenants=%d ok=%d failed=%d devices=%lld "
             "requests=%lld throttled=%lld ms=%lld",
             (long long)eng->run_id, run_status, eng->sum.tenants_total, eng->sum.tenants_ok,
             eng->sum.tenants_failed, (long long)eng->sum.devices, (long long)eng->sum.requests,
             (long long)eng->sum.throttled, (long long)eng->sum.duration_ms);
out:
    batch_flush(eng);
    http_free(eng->http);
    /* Calls still live after an interruption: every chained call is in the list itself. */
    for (struct call *c = eng->live; c != NULL; c = c->next)
        c->then = NULL;
    while (eng->live != NULL)
        call_free(eng->live);
    token_cache_free(eng->tokens);
    for (size_t i = 0; i < eng->ntenants; i++)
        tenant_clear(&eng->tenants[i]);
    for (size_t i = 0; i < eng->nexcluded; i++)
        free(eng->excluded[i]);
    free(eng->excluded);
    pacer_free(&eng->global);
    pacer_free(&eng->pc);
    eng->cfg = opts->cfg;
    XFREE(eng->cloud_cfg);
    jsonarena_release(); /* a scheduler or worker thread keeps no parse memory between runs */
    return rc;
}

static void
engine_free_tenants(struct engine *eng)
{
    for (size_t i = 0; i < eng->ntenants; i++)
        customer_clear(&eng->tenants[i].cust);
    free(eng->tenants);
    eng->tenants = NULL;
    eng->ntenants = 0;
}

int
sync_creds_unseal(struct sync_creds *c, const struct vault *v, const struct integration *in,
                  struct errbuf *eb)
{
    char *psec = NULL, *ssec = NULL;
    int rc;

    memset(c, 0, sizeof *c);
    if ((rc = vault_unseal(v, "integration", in->id, "partner_app_secret",
                           in->partner_secret_sealed, &psec, eb)) != ERR_OK ||
        (rc = vault_unseal(v, "integration", in->id, "sync_app_secret", in->sync_secret_sealed,
                           &ssec, eb)) != ERR_OK) {
        vault_wipe(psec);
        return rc;
    }
    c->partner_tenant_id = in->partner_tenant_id;
    c->partner_app_id = in->partner_app_id;
    c->partner_secret = psec;
    c->sync_app_id = in->sync_app_id;
    c->sync_secret = ssec;
    return ERR_OK;
}

void
sync_creds_wipe(struct sync_creds *c)
{
    /* The secrets were allocated by sync_creds_unseal; the fields are const for the engine. */
    vault_wipe((char *)(uintptr_t)c->partner_secret);
    vault_wipe((char *)(uintptr_t)c->sync_secret);
    memset(c, 0, sizeof *c);
}

int
sync_run(struct store *st, const struct integration *in, const struct sync_creds *creds,
         const struct sync_opts *opts, struct sync_summary *out, struct errbuf *eb)
{
    struct engine eng;
    int rc;

    memset(&eng, 0, sizeof eng);
    rc = engine_run(&eng, st, in, creds, opts, out, eb);
    engine_free_tenants(&eng);
    return rc;
}

int
sync_discover(struct store *st, const struct integration *in, const struct sync_creds *creds,
              const struct sync_opts *opts, struct customer **out, size_t *n, struct errbuf *eb)
{
    struct engine eng;
    struct sync_summary sum;
    int rc;

    *out = NULL;
    *n = 0;
    memset(&eng, 0, sizeof eng);
    eng.discover_only = 1;
    rc = engine_run(&eng, st, in, creds, opts, &sum, eb);
    if (rc == ERR_OK && sum.interrupted)
        rc = err_set(eb, ERR_INTERRUPTED, "the customer listing was interrupted");
    if (rc == ERR_OK && eng.ntenants > 0) {
        *out = xcalloc(eng.ntenants, sizeof **out);
        for (size_t i = 0; i < eng.ntenants; i++) {
            (*out)[i] = eng.tenants[i].cust;
            memset(&eng.tenants[i].cust, 0, sizeof eng.tenants[i].cust);
        }
        *n = eng.ntenants;
    }
    engine_free_tenants(&eng);
    return rc;
}
