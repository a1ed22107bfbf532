/* sync.c - the sync engine: one thread, one HTTP event loop, a state machine per tenant.
 *
 * Request flow per tenant: token (sync app, tenant, Graph) -> /organization -> managedDevices
 * pages -> reconcile. Every request goes through sync_call_submit()/call_on_resp(): pacing (sliding
 * windows per tenant and global), the bearer token, retries with Retry-After or exponential
 * backoff with jitter, and one token refresh on a Graph 401. A 429 cuts the tenant's pace; one
 * without Retry-After holds the tenant for Intune's whole window (sync_tenant_throttled()).
 *
 * A tenant whose data is collected goes whole to the database writer thread (sync_writer.c),
 * which reconciles it on its own connection while this loop goes on; the result comes back
 * through the writer's result list (writer_poll). The queue is bounded: a finished tenant that
 * does not fit keeps its slot (TS_READY), so no new tenant starts until the writer catches up.
 *
 * This file keeps the engine: tenant lifecycle, listings, reconcile hand-off, customers, key
 * expiry, engine_run and the public API. The calls live in sync_calls.c, the per-device phases
 * and app catalogue in sync_appcat.c, the report export in sync_export.c, the writer in
 * sync_writer.c; sync_int.h holds what they share.
 */
#include "sync.h"

#include <inttypes.h>
#include <jansson.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "clock.h"
#include "cloud.h"
#include "graph.h"
#include "guid.h"
#include "http.h"
#include "jsonarena.h"
#include "log.h"
#include "mem.h"
#include "pacer.h"
#include "partner.h"
#include "remedy.h"
#include "sync_int.h"
#include "token.h"

atomic_int sync_stop_requested;
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "sync_stop_requested is set from a signal handler");

void
sync_request_stop(void)
{
    sync_stop_requested = 1;
}

static void tenant_start(struct tenant *t);
static void start_tenants(struct engine *eng);

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
    free(t->throttles);
    free(t->pending);
    t->dapps = NULL;
    t->fetched = t->tries = t->throttles = NULL;
    t->pending = NULL;
    sync_appcat_clear(&t->cat);
    XFREE(t->devmap);
    XFREE(t->export_id);
    sync_export_file_close(t);
    XFREE(t->warn);
    t->nwarn = 0;
    t->ndevs = t->capdevs = 0;
    pacer_free(&t->pacer); /* org stays until the writer's result: its name is logged */
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

/* A copy of t's identity and bookkeeping for a writer job. */
static struct wjob *
tenant_job(struct tenant *t, enum wjob_kind kind)
{
    struct wjob *j = xcalloc(1, sizeof *j);
    const char *name = t->org.name != NULL ? t->org.name : t->cust.name;
    const char *domain = t->org.default_domain != NULL ? t->org.default_domain : t->cust.domain;

    j->kind = kind;
    j->tenant = (size_t)(t - t->eng->tenants);
    j->tenant_id = xstrdup(t->cust.tenant_id);
    j->name = name != NULL ? xstrdup(name) : NULL;
    j->domain = domain != NULL ? xstrdup(domain) : NULL;
    j->requests = t->requests;
    j->throttled = t->throttled;
    j->started_ms = t->started_ms;
    j->devices = (int64_t)t->ndevs;
    return j;
}

/* t leaves its engine slot: its job is the writer's now. */
static void
tenant_handed(struct tenant *t, struct wjob *j)
{
    struct engine *eng = t->eng;

    if (t->state == TS_READY)
        eng->nready--;
    t->state = TS_WRITING;
    eng->inflight--;
    eng->writing++;
    tenant_clear(t);
    sync_writer_submit(eng->writer, j);
}

void
sync_tenant_fail(struct tenant *t, const struct remedy *r)
{
    struct wjob *j;

    if (t->state != TS_RUNNING)
        return;
    t->failed = 1;
    t->rem = *r;
    j = tenant_job(t, WJOB_FAIL);
    j->rem = *r;
    tenant_handed(t, j);
    progress_draw(t->eng, 0);
    start_tenants(t->eng);
}

/* The writer's word on one tenant: its data is committed, or its failure recorded. */
static void
tenant_result(struct engine *eng, const struct wresult *r)
{
    struct tenant *t = &eng->tenants[r->tenant];
    const char *name = t->org.name != NULL ? t->org.name : t->cust.name;

    eng->writing--;
    t->state = TS_DONE;
    t->took_ms = r->took_ms;
    if (r->failed) {
        t->failed = 1;
        t->rem = r->rem;
        if (r->rem.code == REMEDY_INTERRUPTED)
            eng->sum.tenants_interrupted++;
        else
            eng->sum.tenants_failed++;
        if (eng->opts->progress)
            progress_tenant(t, name);
        log_warn("tenant failed run=%lld tenant=%s name=\"%s\" code=%s requests=%lld "
                 "request_id=%s date=\"%s\": %s %s",
                 (long long)eng->run_id, t->cust.tenant_id, name != NULL ? name : "", t->rem.id,
                 (long long)t->requests, t->rem.request_id[0] != '\0' ? t->rem.request_id : "-",
                 t->rem.date, t->rem.message, t->rem.action);
    } else {
        eng->sum.tenants_ok++;
        eng->sum.devices += (int64_t)r->nsynced;
        eng->sum.created += r->counts.created;
        eng->sum.updated += r->counts.updated;
        eng->sum.unchanged += r->counts.unchanged;
        eng->sum.retired += r->counts.retired;
        eng->sum.installs += r->counts.installs_added;
        t->counts = r->counts;
        t->nsynced = r->nsynced;
        if (t->apps_failed)
            log_warn("software inventory incomplete tenant=%s: %s; installs were kept as they "
                     "were",
                     t->cust.tenant_id, t->sync_apps_problem);
        tenant_log_synced(t);
    }
    graph_org_clear(&t->org);
}

/* Adds a warning for t's client row (kept only when t reconciles; the first TENANT_WARN_MAX
 * count, the first is the code shown). */
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

/* Hands the finished tenants to the writer, in order, while its queue has room. */
static void
writer_pump(struct engine *eng)
{
    for (size_t i = 0; eng->nready > 0 && i < eng->ntenants; i++) {
        struct tenant *t = &eng->tenants[i];
        struct wjob *j;

        if (t->state != TS_READY)
            continue;
        if (!sync_writer_room(eng->writer, t->ndevs))
            break;
        j = tenant_job(t, WJOB_RECONCILE);
        /* A listing shorter than Microsoft's count is not taken as proof that devices left. */
        j->complete = !listing_short(t);
        j->apps_complete = !t->apps_failed;
        j->devs = t->devs;
        j->ndevs = t->ndevs;
        j->cat = t->cat;
        j->dapps = t->dapps;
        j->fetched = t->fetched;
        j->warn = t->warn;
        j->nwarn = t->nwarn;
        t->devs = NULL;
        t->ndevs = t->capdevs = 0;
        memset(&t->cat, 0, sizeof t->cat);
        t->dapps = NULL;
        t->fetched = NULL;
        t->warn = NULL;
        t->nwarn = 0;
        tenant_handed(t, j);
    }
    start_tenants(eng);
}

/* Takes the writer's results. */
static void
writer_poll(struct engine *eng)
{
    struct wresult *r = sync_writer_results(eng->writer), *next;

    for (; r != NULL; r = next) {
        next = r->next;
        tenant_result(eng, r);
        free(r);
        progress_draw(eng, 0);
    }
    writer_pump(eng);
}

/* Collected: t waits for the writer, holding its slot. */
void
sync_tenant_reconcile(struct tenant *t)
{
    t->state = TS_READY;
    t->eng->nready++;
    writer_pump(t->eng);
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
    size_t k = sync_devmap_find(u->t, intune_id);

    if (k != SIZE_MAX && !retired && u->t->devs[k].last_check_in_at != TS_NULL &&
        u->t->devs[k].last_check_in_at == last_check_in_at)
        u->skip[k] = 1;
    return 0;
}

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
        sync_export_start(t);
        return;
    }
    sync_phase_pump(t);
}

void
sync_phase_next(struct tenant *t)
{
    const struct sync_opts *o = t->eng->opts;

    if (sync_stop_requested) {
        struct http_resp r = {.err = ERR_INTERRUPTED, .errmsg = "interrupted", .retry_after = -1};
        struct remedy rem;

        sync_graph_failure(t, &r, &rem);
        sync_tenant_fail(t, &rem);
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
    sync_tenant_reconcile(t);
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
    sync_devmap_build(t);
    t->phase = PHASE_NONE;
    sync_phase_next(t);
}

static void devices_done(struct call *c, const struct http_resp *r);

static void
devices_request(struct tenant *t, char *url)
{
    struct call *c = sync_graph_call_new(t, url, devices_done);

    c->bulk = 1;
    sync_call_submit(c);
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
        sync_graph_failure(t, r, &rem);
        goto fail;
    }
    if (graph_devices_parse(r->body, r->body_len, &t->devs, &t->ndevs, &t->capdevs, &next, &eb) !=
        ERR_OK) {
        remedy_set(&rem, REMEDY_BAD_RESPONSE, &ctx, eb.msg);
        sync_note_resp_ids(&rem, r, NULL, NULL);
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
        sync_call_free(c);
        devices_request(t, next);
        return;
    }
    sync_call_free(c);
    tenant_after_listing(t);
    return;
fail:
    sync_call_free(c);
    sync_tenant_fail(t, &rem);
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
        sync_call_free(c);
        overview_request(t);
        return;
    }
    if (r->err != ERR_OK || r->status != 200) {
        sync_graph_failure(t, r, &rem);
        sync_call_free(c);
        sync_tenant_fail(t, &rem);
        return;
    }
    if (graph_org_parse(r->body, r->body_len, &t->org, &eb) != ERR_OK) {
        remedy_set(&rem, REMEDY_BAD_RESPONSE, &ctx, eb.msg);
        sync_call_free(c);
        sync_tenant_fail(t, &rem);
        return;
    }
    sync_call_free(c);
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
    sync_call_free(c);
    devices_request(t, graph_devices_url(t->eng->cfg->graph_url, "v1.0", GRAPH_DEVICE_PAGE_SIZE));
}

static void
overview_request(struct tenant *t)
{
    char *url = xasprintf("%s/v1.0/deviceManagement/managedDeviceOverview", t->eng->cfg->graph_url);

    sync_call_submit(sync_graph_call_new(t, url, overview_done));
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
    /* sync_call_submit fetches the token first when none is cached. */
    sync_call_submit(sync_graph_call_new(t, url, org_done));
}

static void
start_tenants(struct engine *eng)
{
    while (!sync_stop_requested && !eng->discover_only && eng->listing_done && !eng->fatal &&
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
    c = sync_call_new(
        eng, NULL, CALL_GRAPH,
        xasprintf("%s/v1.0/applications(appId='%s')?$select=appId,passwordCredentials",
                  eng->cfg->graph_url, app),
        expiry_done);
    c->token_tenant = xstrdup(in->partner_tenant_id);
    c->audience = eng->cloud->graph_audience;
    c->client_id = eng->creds->sync_app_id;
    c->secret = eng->creds->sync_secret;
    c->optional = 1;
    c->partner_app = partner_app;
    sync_call_submit(c);
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
    struct wjob *j;

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
    j = xcalloc(1, sizeof *j);
    j->kind = WJOB_EXPIRY;
    j->partner = partner;
    j->expires = got;
    sync_writer_submit(eng->writer, j); /* it logs the date it stored */
out:
    json_decref(root);
    sync_call_free(c);
}

/* ---- customer listing ---------------------------------------------------------------------- */

static void customers_done(struct call *c, const struct http_resp *r);

static void
customers_request(struct engine *eng, char *url, const char *continuation)
{
    struct call *c;

    if (strcmp(eng->in->tenant_source, "partner_center") == 0) {
        c = sync_call_new(eng, NULL, CALL_PC, url, customers_done);
        c->audience = eng->cloud->pc_audience;
        c->client_id = eng->creds->partner_app_id;
        c->secret = eng->creds->partner_secret;
    } else {
        /* Graph /contracts or GDAP customers, read with the sync app in the partner tenant. */
        c = sync_call_new(eng, NULL, CALL_GRAPH, url, customers_done);
        c->audience = eng->cloud->graph_audience;
        c->client_id = eng->creds->sync_app_id;
        c->secret = eng->creds->sync_secret;
    }
    c->token_tenant = xstrdup(eng->creds->partner_tenant_id);
    if (continuation != NULL)
        c->extra_header = xasprintf("MS-ContinuationToken: %s", continuation);
    sync_call_submit(c);
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
    sync_call_free(c);
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

static void
writer_wait_done(void *arg)
{
    struct engine *eng = arg;

    eng->waiting = 0;
}

/* Tells opts->on_progress which tenants have not finished: pending ones wait for a slot. */
static void
report_live(struct engine *eng)
{
    struct sync_tenant_live *v = xcalloc(eng->ntenants > 0 ? eng->ntenants : 1, sizeof *v);
    int64_t now = clock_mono_ms();
    size_t n = 0;

    for (size_t i = 0; i < eng->ntenants; i++) {
        const struct tenant *t = &eng->tenants[i];

        if (t->state == TS_DONE)
            continue;
        v[n].tenant_id = t->cust.tenant_id;
        v[n].name = t->org.name != NULL ? t->org.name : t->cust.name;
        v[n].running = t->state != TS_QUEUED; /* collecting, or being written */
        v[n].elapsed_ms = t->state != TS_QUEUED ? now - t->started_ms : 0;
        n++;
    }
    eng->opts->on_progress(eng->opts->progress_arg, v, n, eng->listing_done);
    free(v);
}

/* Runs the engine; with discover_only the customers stay in eng->tenants for the caller. */
static int
engine_run(struct engine *eng, struct store *st, const struct integration *in,
           const struct sync_creds *creds, const struct sync_opts *opts, struct sync_summary *out,
           struct errbuf *eb)
{
    struct http_opts hopts = {0};
    const char *run_status;
    int64_t next_tick, next_live;
    int rc;

    memset(out, 0, sizeof *out);
    sync_stop_requested = 0;
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
    /* The writer's connection first: a run that cannot write is not started. */
    if (!eng->discover_only && (rc = sync_writer_start(eng, eb)) != ERR_OK)
        goto out;
    if (eng->discover_only || opts->run_id > 0)
        eng->run_id = opts->run_id;
    else if ((rc = store_run_start(st, in->id, opts->incremental ? "incremental" : "full",
                                   clock_now(), &eng->run_id, eb)) != ERR_OK)
        goto out;
    if (eng->writer != NULL)
        eng->writer->run_id = eng->run_id; /* read by the writer after the first hand-off */
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
    next_live = clock_mono_ms();
    while (http_pending(eng->http) > 0 || eng->writing > 0 || eng->nready > 0) {
        /* Waiting for the writer alone: a timer keeps http_run waiting (http_wakeup ends it). */
        if ((eng->writing > 0 || eng->nready > 0) && !eng->waiting) {
            eng->waiting = 1;
            http_timer(eng->http, PROGRESS_INTERVAL_MS, writer_wait_done, eng);
        }
        http_run(eng->http, PROGRESS_INTERVAL_MS);
        if (eng->writer != NULL)
            writer_poll(eng);
        progress_draw(eng, 0);
        if (opts->tick != NULL && !eng->discover_only && clock_mono_ms() >= next_tick) {
            /* this connection never holds a transaction: the writer has its own */
            if (opts->tick(opts->tick_arg) != 0)
                sync_stop_requested = 1;
            next_tick = clock_mono_ms() + 1000;
        }
        if (opts->on_progress != NULL && !eng->discover_only && clock_mono_ms() >= next_live) {
            report_live(eng);
            next_live = clock_mono_ms() + 1000;
        }
        if (sync_stop_requested && eng->inflight == 0 && eng->writing == 0)
            break;
    }
    if (eng->writer != NULL) {
        sync_writer_stop(eng->writer); /* commits what it holds */
        writer_poll(eng);
    }
    if (opts->on_progress != NULL && !eng->discover_only)
        report_live(eng);
    progress_draw(eng, 1);
    log_progress_line(0);

    eng->sum.duration_ms = clock_mono_ms() - eng->started_ms;
    eng->sum.interrupted = sync_stop_requested != 0;
    if (eng->fatal) {
        run_status = "failed";
        rc = err_set(eb, eng->fatal_eb.code ? eng->fatal_eb.code : ERR_HTTP, "%s",
                     eng->fatal_eb.msg);
    } else if (sync_stop_requested) {
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
    if (opts->run_id <= 0 || opts->finish_run) {
        struct errbuf feb = {0};
        const char *why = NULL;

        if (eng->fatal)
            why = eng->fatal_eb.msg;
        else if (sync_stop_requested)
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
    sync_writer_free(eng->writer); /* before the loop it wakes is freed */
    eng->writer = NULL;
    http_free(eng->http);
    /* Calls still live after an interruption: every chained call is in the list itself. */
    for (struct call *c = eng->live; c != NULL; c = c->next)
        c->then = NULL;
    while (eng->live != NULL)
        sync_call_free(eng->live);
    token_cache_free(eng->tokens);
    for (size_t i = 0; i < eng->ntenants; i++) {
        tenant_clear(&eng->tenants[i]);
        graph_org_clear(&eng->tenants[i].org);
    }
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
