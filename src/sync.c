/* sync.c - the sync engine: one thread, one HTTP event loop, a state machine per tenant.
 *
 * Request flow per tenant: token (sync app, tenant, Graph) -> /organization -> managedDevices
 * pages -> reconcile. Every request goes through call_submit()/call_on_resp(): pacing (sliding
 * windows per tenant and global), the bearer token, retries with Retry-After or exponential
 * backoff with jitter, and one token refresh on a Graph 401.
 */
#include "sync.h"

#include <inttypes.h>
#include <jansson.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sodium.h>

#include "buf.h"
#include "clock.h"
#include "graph.h"
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
    int64_t waited_ms;
    struct call *then; /* token calls: the call to submit once the token is cached */
    call_done_fn *done;
    struct call *prev, *next; /* the engine's list of live calls */
    size_t max_body;          /* response cap; 0 = the HTTP default */
    int bulk;                 /* a big response (device page, $batch): gated, see BULK_MAX */
    int holds_gate;
    struct call *qnext; /* the engine's queue of bulk calls waiting for the gate */
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
    const struct config *cfg;
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
    int is_partner = c->audience == NULL || strcmp(c->audience, AUDIENCE_PARTNER_CENTER) == 0;
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
        } else {
            remedy_set(&rem, r->status >= 500 ? REMEDY_SERVICE_ERROR : REMEDY_BAD_RESPONSE, &ctx,
                       eb.msg);
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
    if ((r->err != ERR_OK && r->err != ERR_TOOBIG) ||
        (r->err == ERR_OK && status_retryable(r->status))) {
        if (r->err == ERR_OK && r->retry_after >= 0) {
            delay = (int64_t)(r->retry_after * 1000.0);
            if (delay > RETRY_AFTER_MAX_MS)
                delay = RETRY_AFTER_MAX_MS;
            /* A little jitter so tenants throttled together do not return together. */
            delay += (int64_t)randombytes_uniform(250);
        } else {
            delay = backoff_ms(c->attempt);
        }
        if (c->attempt < eng->max_attempts && c->waited_ms + delay <= THROTTLE_BUDGET_MS) {
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

static void
call_submit(struct call *c)
{
    struct engine *eng = c->eng;
    struct http_req req = {0};
    struct errbuf eb = {0};
    char *auth = NULL;
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
        /* A pre-signed URL on another host: no Authorization header, ever. */
    } else if (c->kind == CALL_TOKEN) {
        req.method = "POST";
        req.body = c->body;
        req.body_len = c->body_len;
        req.headers[nh++] = "Content-Type: application/x-www-form-urlencoded";
        req.headers[nh++] = "Accept: application/json";
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
    }
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
    c->audience = AUDIENCE_GRAPH;
    c->client_id = eng->creds->sync_app_id;
    c->secret = eng->creds->sync_secret;
    return c;
}

/* Maps a final non-2xx or transport failure of a Graph call to a remedy. */
static void
graph_failure(struct tenant *t, const struct http_resp *r, struct remedy *rem)
{
    struct remedy_ctx ctx = {0};
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
        return;
    }
    if (graph_error_parse(r->body, r->body_len, &ge) == ERR_OK)
        remedy_from_graph(rem, &ctx, r->status, ge.code, ge.message);
    else
        remedy_from_graph(rem, &ctx, r->status, NULL, NULL);
}

/* ---- tenant flow --------------------------------------------------------------------------- */

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
    free(t->pending);
    t->dapps = NULL;
    t->fetched = t->tries = NULL;
    t->pending = NULL;
    appcat_clear(&t->cat);
    XFREE(t->devmap);
    XFREE(t->export_id);
    XFREE(t->warn);
    t->nwarn = 0;
    t->ndevs = t->capdevs = 0;
    if (!t->in_batch)
        graph_org_clear(&t->org);
    pacer_free(&t->pacer);
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
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

/* Logged once the tenant's data is committed. */
static void
tenant_log_synced(const struct tenant *t)
{
    const char *name = t->org.name != NULL ? t->org.name : t->cust.name;

    if (t->eng->opts->progress)
        return;
    log_info("tenant synced tenant=%s name=\"%s\" devices=%zu created=%lld updated=%lld "
             "retired=%lld requests=%lld throttled=%lld ms=%lld",
             t->cust.tenant_id, name != NULL ? name : "", t->nsynced, (long long)t->counts.created,
             (long long)t->counts.updated, (long long)t->counts.retired, (long long)t->requests,
             (long long)t->throttled, (long long)t->took_ms);
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
    if (t->failed) {
        log_warn("tenant failed tenant=%s name=\"%s\" code=%s requests=%lld: %s %s",
                 t->cust.tenant_id, name != NULL ? name : "", t->rem.id, (long long)t->requests,
                 t->rem.message, t->rem.action);
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
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 64;
        c->apps = xrealloc(c->apps, c->cap * sizeof *c->apps);
    }
    i = appcat_slot(c, a->id, len);
    c->apps[c->n] = *a;
    memset(a, 0, sizeof *a);
    c->slots[i] = (uint32_t)c->n + 1;
    return (uint32_t)c->n++;
}

static void
devapps_add(struct devapps *d, uint32_t idx)
{
    for (uint32_t i = 0; i < d->n; i++)
        if (d->idx[i] == idx)
            return;
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 16;
        d->idx = xrealloc(d->idx, d->cap * sizeof *d->idx);
    }
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

static void
batch_done(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    struct engine *eng = t->eng;
    struct graph_batch b = {0};
    struct errbuf eb = {0};
    struct call *retry = NULL;
    double retry_after = -1;

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
        } else if ((status_retryable(it->status)) && t->tries[dev] + 1 < eng->max_attempts) {
            /* Throttled or failing items go into a new batch after their Retry-After. */
            t->tries[dev]++;
            if (it->status == 429) {
                eng->sum.throttled++;
                t->throttled++;
            }
            if (retry == NULL) {
                retry = call_new(eng, t, CALL_GRAPH, NULL, NULL);
                retry->items = xcalloc(GRAPH_BATCH_MAX, sizeof *retry->items);
            }
            retry->items[retry->n_items++] = dev;
            if (it->retry_after > retry_after)
                retry_after = it->retry_after;
        } else if (it->status == 404) {
            /* The device left Intune since the listing: it has no apps to read. */
            if (t->phase == PHASE_APPS)
                t->fetched[dev] = 1;
        } else if (t->phase == PHASE_APPS) {
            apps_problem(t, "reading detected apps failed", it->status);
        }
    }
    if (retry != NULL) {
        int64_t delay = retry_after >= 0 ? (int64_t)(retry_after * 1000.0) : backoff_ms(2);

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
        t->pending = xcalloc(t->ndevs, sizeof *t->pending);
    }
    devmap_build(t);
    t->phase = PHASE_NONE;
    phase_next(t);
}

/* ---- detected apps from the AppInvRawData report export ------------------------------------ */

#define EXPORT_MAX_WAIT_MS (30 * 60 * 1000)
#define EXPORT_MAX_ZIP     (512u * 1024 * 1024)
#define EXPORT_MAX_CSV     (4096u * 1024 * 1024 - 1)

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
    phase_pump(t);
}

static void
export_start(struct tenant *t)
{
    struct engine *eng = t->eng;
    json_t *sel = json_array(), *body;
    struct call *c;

    for (size_t i = 0; i < 6; i++)
        json_array_append_new(sel, json_string(export_columns[i]));
    body =
        json_pack("{s:s, s:s, s:o}", "reportName", "AppInvRawData", "format", "csv", "select", sel);
    c = graph_call_new(
        t, xasprintf("%s/beta/deviceManagement/reports/exportJobs", eng->cfg->graph_url),
        export_created);
    c->body = json_dumps(body, JSON_COMPACT);
    c->body_len = strlen(c->body);
    json_decref(body);
    t->busy++;
    t->export_waited_ms = 0;
    t->export_delay_ms = 1000;
    call_submit(c);
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
        struct call *d = call_new(t->eng, t, CALL_BLOB, xstrdup(url), export_downloaded);

        d->max_body = EXPORT_MAX_ZIP;
        d->bulk = 1;
        t->busy++;
        call_submit(d);
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
    if (r->err != ERR_OK || r->status != 200) {
        export_fallback(t, "the export could not be downloaded", r->status);
        return;
    }
    rc = report_zip_csv((const unsigned char *)r->body, r->body_len, EXPORT_MAX_CSV, export_row, t,
                        &eb);
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
    pacer_init(&t->pacer, eng->tenant_limit * PACING_SHARE_PCT / 100, INTUNE_TENANT_WINDOW);
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

/* ---- customer listing ---------------------------------------------------------------------- */

static void customers_done(struct call *c, const struct http_resp *r);

static void
customers_request(struct engine *eng, char *url, const char *continuation)
{
    struct call *c;

    if (strcmp(eng->in->tenant_source, "partner_center") == 0) {
        c = call_new(eng, NULL, CALL_PC, url, customers_done);
        c->audience = AUDIENCE_PARTNER_CENTER;
        c->client_id = eng->creds->partner_app_id;
        c->secret = eng->creds->partner_secret;
    } else {
        /* Graph /contracts or GDAP customers, read with the sync app in the partner tenant. */
        c = call_new(eng, NULL, CALL_GRAPH, url, customers_done);
        c->audience = AUDIENCE_GRAPH;
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
    if (eng->ntenants == eng->captenants) {
        eng->captenants = eng->captenants ? eng->captenants * 2 : 64;
        eng->tenants = xrealloc(eng->tenants, eng->captenants * sizeof *eng->tenants);
    }
    t = &eng->tenants[eng->ntenants++];
    memset(t, 0, sizeof *t);
    t->eng = eng;
    t->cust = *cu;
    memset(cu, 0, sizeof *cu);
    t->state = TS_QUEUED;
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

        partner_error_parse(r->body, r->body_len, msg, sizeof msg);
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
    eng->cfg = opts->cfg;
    eng->parallel = opts->parallel > 0 ? opts->parallel : eng->cfg->sync_parallel;
    eng->batch_ms = eng->cfg->sync_commit_ms;
    if (eng->parallel < 1)
        eng->parallel = 1;
    eng->max_attempts = opts->max_attempts > 0 ? opts->max_attempts : DEFAULT_ATTEMPTS;
    eng->export_min_devices = opts->export_min_devices > 0 ? opts->export_min_devices : 2000;
    eng->tenant_limit = opts->intune_tenant_limit > 0 ? opts->intune_tenant_limit : 2000;
    eng->started_ms = clock_mono_ms();
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
