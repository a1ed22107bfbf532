/* sync_writer.c - the sync's database writer: one thread with its own store connection that
 * reconciles the tenants the engine finished and records every result, so the engine's HTTP
 * loop never waits on the database (docs/ARCHITECTURE.md "The sync engine").
 *
 * The engine hands over whole jobs (sync_writer_submit) and takes results back
 * (sync_writer_results); both lists are guarded by writer.mu, and a result wakes the engine's
 * loop (http_wakeup). Everything else here runs on the writer thread alone: its store
 * connection, the open group commit and the jobs it holds.
 *
 * Per tenant one reconcile transaction, as before: on SQLite the tenants reconciled within
 * sync_commit_ms (at most BATCH_MAX_TENANTS) are savepoints of one transaction; a failure is
 * recorded only after the open batch committed, and a batch that cannot commit turns each of
 * its tenants into a failure that keeps its previous data. A tenant's result is sent only once
 * its data is committed.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "jsonarena.h"
#include "log.h"
#include "mem.h"
#include "sync_int.h"

void
sync_wjob_free(struct wjob *j)
{
    if (j == NULL)
        return;
    for (size_t i = 0; i < j->ndevs; i++)
        device_clear(&j->devs[i]);
    free(j->devs);
    if (j->dapps != NULL)
        for (size_t i = 0; i < j->ndevs; i++)
            free(j->dapps[i].idx);
    free(j->dapps);
    free(j->fetched);
    sync_appcat_clear(&j->cat);
    free(j->warn);
    free(j->tenant_id);
    free(j->name);
    free(j->domain);
    free(j->sealed);
    free(j->hint);
    free(j);
}

/* ---- results ------------------------------------------------------------------------------- */

static void
result_send(struct writer *w, struct wresult *r)
{
    pthread_mutex_lock(&w->mu);
    r->next = NULL;
    if (w->done_tail != NULL)
        w->done_tail->next = r;
    else
        w->done_head = r;
    w->done_tail = r;
    pthread_mutex_unlock(&w->mu);
    http_wakeup(w->wake);
}

/* The run's record of one tenant (joins the open batch, as every write of this connection). */
static void
record_result(struct writer *w, const struct wjob *j, const struct wresult *r)
{
    struct tenant_result tr = {0};
    struct errbuf eb = {0};

    tr.tenant_id = j->tenant_id;
    tr.client_name = j->name;
    tr.status = r->failed ? "error" : "ok";
    if (r->failed) {
        tr.error_code = r->rem.id;
        tr.message = r->rem.message;
        tr.remedy = r->rem.action;
        tr.request_id = r->rem.request_id[0] != '\0' ? r->rem.request_id : NULL;
        tr.response_date = r->rem.date[0] != '\0' ? r->rem.date : NULL;
    }
    tr.counts = r->counts;
    tr.devices = j->devices;
    tr.requests = j->requests;
    tr.throttled = j->throttled;
    tr.duration_ms = r->took_ms;
    if (store_run_tenant(w->st, w->run_id, &tr, &eb) != ERR_OK)
        log_error("cannot record tenant result tenant=%s: %s", j->tenant_id, eb.msg);
}

/* Records j's failure (its client row and its result), outside any batch. */
static void
record_failure(struct writer *w, const struct wjob *j, struct wresult *r)
{
    struct errbuf eb = {0};
    struct client_info ci = {0};

    r->failed = 1;
    memset(&r->counts, 0, sizeof r->counts);
    r->nsynced = 0;
    ci.tenant_id = j->tenant_id;
    ci.name = j->name;
    ci.default_domain = j->domain;
    ci.source = w->source;
    ci.error_request_id = r->rem.request_id[0] != '\0' ? r->rem.request_id : NULL;
    ci.error_date = r->rem.date[0] != '\0' ? r->rem.date : NULL;
    /* An interrupted tenant keeps its previous status: nothing is known to be wrong with it. */
    if (r->rem.code != REMEDY_INTERRUPTED &&
        store_client_fail(w->st, w->account_id, w->integration_id, &ci, r->rem.id, r->rem.message,
                          r->rem.action, &eb) != ERR_OK)
        log_error("cannot record client failure tenant=%s: %s", j->tenant_id, eb.msg);
    record_result(w, j, r);
}

/* A failed commit's tenants become failures; their records need what identified them. */
struct batched {
    struct wresult r;
    struct wjob id; /* identity and bookkeeping only: no data */
};

/* Commits the open batch and sends its results. If the commit fails, its tenants' data is gone
 * and each becomes a failed tenant that keeps its previous data, as if its own transaction had
 * failed. */
static void
batch_flush(struct writer *w)
{
    struct errbuf eb = {0};
    struct wresult *r, *next;
    int rc;

    if (!w->batch_open)
        return;
    w->batch_open = 0;
    rc = store_batch_commit(w->st, &eb);
    if (rc != ERR_OK)
        log_error("cannot commit synced tenants: %s", eb.msg);
    for (r = w->batch_head; r != NULL; r = next) {
        struct batched *b = (struct batched *)(void *)r; /* r is b's first member */
        struct wresult *out = xmalloc(sizeof *out);

        next = r->next;
        *out = b->r;
        if (rc != ERR_OK) {
            struct remedy_ctx ctx = {0};

            ctx.tenant_id = b->id.tenant_id;
            remedy_set(&out->rem, REMEDY_STORE, &ctx, eb.msg);
            record_failure(w, &b->id, out);
        }
        free(b->id.tenant_id);
        free(b->id.name);
        free(b->id.domain);
        free(b);
        result_send(w, out);
    }
    w->batch_head = w->batch_tail = NULL;
    w->batch_n = 0;
}

static void
batch_due(struct writer *w)
{
    if (w->batch_open &&
        (clock_mono_ms() - w->batch_started_ms >= w->batch_ms || w->batch_n >= BATCH_MAX_TENANTS))
        batch_flush(w);
}

/* ---- one tenant ---------------------------------------------------------------------------- */

static size_t
job_installs(const struct wjob *j)
{
    size_t n = 0;

    if (j->fetched == NULL)
        return 0;
    for (size_t i = 0; i < j->ndevs; i++)
        if (j->fetched[i])
            n += j->dapps[i].n;
    return n;
}

static void
job_warn(struct wjob *j, const struct remedy *r)
{
    if (j->nwarn >= TENANT_WARN_MAX)
        return;
    if (j->warn == NULL)
        j->warn = xcalloc(TENANT_WARN_MAX, sizeof *j->warn);
    j->warn[j->nwarn++] = *r;
    log_warn("tenant warning tenant=%s code=%s", j->tenant_id, r->id);
}

/* The retirement policy of j's commit: the settings, and the mass-retirement guard, which holds
 * back every retirement (and warns) when more than retire_guard_pct % of the tenant's active
 * devices and at least retire_guard_min of them would go at once, unless the run confirms. */
static int
retire_policy(struct writer *w, struct wjob *j, struct errbuf *eb)
{
    struct retire_policy p = w->policy;
    int64_t would = 0, active = 0;
    int rc;

    rc = store_reconcile_policy(w->st, &p, eb);
    if (rc != ERR_OK || w->guard_pct <= 0)
        return rc;
    rc = store_reconcile_retire_preview(w->st, &would, &active, eb);
    if (rc != ERR_OK)
        return rc;
    if (would > 0 && would >= w->guard_min && would * 100 > active * (int64_t)w->guard_pct) {
        struct remedy rem;
        struct remedy_ctx ctx = {0};
        char detail[160];

        if (w->confirm_retire) {
            log_info("retiring past the guard (confirmed) tenant=%s devices=%" PRId64
                     " active=%" PRId64,
                     j->tenant_id, would, active);
            return ERR_OK;
        }
        snprintf(detail, sizeof detail, "%" PRId64 " of its %" PRId64 " devices, more than %d %%",
                 would, active, w->guard_pct);
        ctx.tenant_id = j->tenant_id;
        remedy_set(&rem, REMEDY_RETIRE_HELD, &ctx, detail);
        job_warn(j, &rem);
        p.hold = 1;
        rc = store_reconcile_policy(w->st, &p, eb);
    }
    return rc;
}

/* Hands j's warnings to the store: the first one's code, every message and action. */
static int
warnings_store(struct writer *w, const struct wjob *j, struct errbuf *eb)
{
    struct buf msg, act;
    int rc;

    if (j->nwarn == 0)
        return store_reconcile_warning(w->st, NULL, NULL, NULL, eb);
    buf_init(&msg, 4096);
    buf_init(&act, 4096);
    for (int i = 0; i < j->nwarn; i++) {
        buf_printf(&msg, "%s%s", i ? " " : "", j->warn[i].message);
        buf_printf(&act, "%s%s", i ? " " : "", j->warn[i].action);
    }
    rc = store_reconcile_warning(w->st, j->warn[0].id, buf_cstr(&msg), buf_cstr(&act), eb);
    buf_free(&msg);
    buf_free(&act);
    return rc;
}

static int
reconcile_rows(struct writer *w, struct wjob *j, struct reconcile_counts *counts, struct errbuf *eb)
{
    struct client_info ci = {0};
    int rc;

    ci.tenant_id = j->tenant_id;
    ci.name = j->name;
    ci.default_domain = j->domain;
    ci.source = w->source;
    rc = store_reconcile_begin(w->st, w->account_id, w->integration_id, &ci, clock_now(), eb);
    for (size_t i = 0; rc == ERR_OK && i < j->ndevs; i++) {
        rc = store_reconcile_device(w->st, &j->devs[i], eb);
        /* Only devices whose apps were read have their install set replaced. */
        if (rc == ERR_OK && j->fetched != NULL && j->fetched[i]) {
            const struct devapps *da = &j->dapps[i];
            struct app_ref *refs = xcalloc(da->n ? da->n : 1, sizeof *refs);

            for (uint32_t k = 0; k < da->n; k++) {
                const struct detected_app *a = &j->cat.apps[da->idx[k]];

                refs[k].name = a->name != NULL ? a->name : "(unnamed)";
                refs[k].version = a->version;
                refs[k].publisher = a->publisher;
                refs[k].platform = a->platform;
                refs[k].size_bytes = a->size_bytes;
            }
            rc = store_reconcile_installs(w->st, j->devs[i].intune_id, refs, da->n, eb);
            free(refs);
        }
    }
    if (rc == ERR_OK && j->complete)
        rc = retire_policy(w, j, eb);
    if (rc == ERR_OK)
        rc = warnings_store(w, j, eb);
    if (rc == ERR_OK)
        rc = store_reconcile_commit(w->st, j->complete, j->apps_complete, counts, eb);
    return rc;
}

static void
job_reconcile(struct writer *w, struct wjob *j)
{
    struct errbuf eb = {0};
    struct wresult *r = xcalloc(1, sizeof *r);
    int rc;

    r->tenant = j->tenant;
    if (j->ndevs >= BATCH_MAX_DEVICES || job_installs(j) >= BATCH_MAX_INSTALLS) {
        /* A big tenant commits alone: inside a batch its savepoint would copy every page it
         * touches once more, and its own commit is large enough to amortise. */
        batch_flush(w);
    } else if (!w->batch_open && w->batch_ms > 0) {
        /* Without a batch (PostgreSQL, or the lock not obtained) the tenant commits alone. */
        if (store_batch_begin(w->st, &eb) == 1) {
            w->batch_open = 1;
            w->batch_started_ms = clock_mono_ms();
        }
        memset(&eb, 0, sizeof eb);
    }
    rc = reconcile_rows(w, j, &r->counts, &eb);
    r->took_ms = clock_mono_ms() - j->started_ms;
    if (rc != ERR_OK) {
        struct remedy_ctx ctx = {0};

        store_reconcile_rollback(w->st);
        ctx.tenant_id = j->tenant_id;
        remedy_set(&r->rem, REMEDY_STORE, &ctx, eb.msg);
        /* The batch is committed first: a failure is recorded on its own, so a batch that
         * cannot commit never takes a recorded failure back with it. */
        batch_flush(w);
        record_failure(w, j, r);
        result_send(w, r);
        return;
    }
    r->nsynced = j->ndevs;
    record_result(w, j, r);
    if (w->batch_open) {
        struct batched *b = xcalloc(1, sizeof *b);

        b->r = *r;
        b->r.next = NULL;
        b->id.tenant_id = j->tenant_id;
        b->id.name = j->name;
        b->id.domain = j->domain;
        b->id.requests = j->requests;
        b->id.throttled = j->throttled;
        b->id.started_ms = j->started_ms;
        b->id.devices = j->devices;
        j->tenant_id = j->name = j->domain = NULL;
        free(r);
        if (w->batch_tail != NULL)
            w->batch_tail->next = &b->r;
        else
            w->batch_head = &b->r;
        w->batch_tail = &b->r;
        w->batch_n++;
        return;
    }
    result_send(w, r);
}

static void
job_fail(struct writer *w, struct wjob *j)
{
    struct wresult *r = xcalloc(1, sizeof *r);

    r->tenant = j->tenant;
    r->rem = j->rem;
    r->took_ms = clock_mono_ms() - j->started_ms;
    batch_flush(w);
    record_failure(w, j, r);
    result_send(w, r);
}

static void
job_key(struct writer *w, struct wjob *j)
{
    const char *label = j->partner ? "partner" : "sync";
    struct errbuf eb = {0};
    char date[32];

    if (j->kind == WJOB_EXPIRY) {
        if (store_integration_set_expiry(w->st, w->integration_id, label, j->expires, "microsoft",
                                         &eb) != ERR_OK) {
            log_error("cannot record the key's expiry integration=%" PRId64 ": %s",
                      w->integration_id, eb.msg);
            return;
        }
        clock_fmt(j->expires, date, sizeof date);
        log_info("key expiry taken from Microsoft integration=%" PRId64 " app=%s expires=%s",
                 w->integration_id, label, date);
        return;
    }
    if (store_integration_set_secret(w->st, w->integration_id, label, j->sealed, j->hint,
                                     j->expires, &eb) != ERR_OK)
        log_error("cannot record the key's expiry integration=%" PRId64 ": %s", w->integration_id,
                  eb.msg);
    else
        log_warn("secret expired integration=%" PRId64 " app=%s: Microsoft refused it with "
                 "AADSTS7000222; its expiry date was corrected to today",
                 w->integration_id, label);
}

/* ---- the thread ---------------------------------------------------------------------------- */

static void *
writer_main(void *arg)
{
    struct writer *w = arg;

    pthread_mutex_lock(&w->mu);
    for (;;) {
        struct wjob *j;
        size_t ndevs;
        int counted;

        while (w->q_head == NULL && !w->closing) {
            if (w->batch_open) {
                int64_t left = w->batch_started_ms + w->batch_ms - clock_mono_ms();
                struct timespec ts;

                if (left <= 0) {
                    pthread_mutex_unlock(&w->mu);
                    batch_flush(w);
                    pthread_mutex_lock(&w->mu);
                    continue;
                }
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_sec += left / 1000;
                ts.tv_nsec += (long)(left % 1000) * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&w->cv, &w->mu, &ts);
            } else {
                pthread_cond_wait(&w->cv, &w->mu);
            }
        }
        if ((j = w->q_head) == NULL)
            break; /* closing, queue empty */
        w->q_head = j->next;
        if (w->q_head == NULL)
            w->q_tail = NULL;
        pthread_mutex_unlock(&w->mu);

        counted = j->kind == WJOB_RECONCILE;
        ndevs = j->ndevs;
        if (j->kind == WJOB_RECONCILE)
            job_reconcile(w, j);
        else if (j->kind == WJOB_FAIL)
            job_fail(w, j);
        else
            job_key(w, j);
        sync_wjob_free(j);
        batch_due(w);

        pthread_mutex_lock(&w->mu);
        if (counted) {
            /* the tenant's data is released: room for the next one */
            w->q_jobs--;
            w->q_devices -= ndevs;
            http_wakeup(w->wake);
        }
    }
    pthread_mutex_unlock(&w->mu);
    batch_flush(w);
    jsonarena_release();
    return NULL;
}

/* ---- the engine's side --------------------------------------------------------------------- */

int
sync_writer_start(struct engine *eng, struct errbuf *eb)
{
    struct writer *w = xcalloc(1, sizeof *w);
    const struct config *cfg = eng->cfg;
    int rc;

    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    eng->writer = w;
    if ((rc = store_open_peer(eng->st, &w->st, eb)) != ERR_OK)
        return rc;
    w->account_id = eng->in->account_id;
    w->integration_id = eng->in->id;
    w->run_id = eng->run_id;
    w->source = xstrdup(eng->in->tenant_source != NULL ? eng->in->tenant_source : "");
    w->batch_ms = cfg->sync_commit_ms;
    w->policy.after_syncs = cfg->retire_after_syncs > 0 ? cfg->retire_after_syncs : 1;
    w->policy.after_s = (int64_t)cfg->retire_after_hours * 3600;
    w->guard_pct = cfg->retire_guard_pct;
    w->guard_min = cfg->retire_guard_min;
    w->confirm_retire = eng->opts->confirm_retire;
    w->wake = eng->http;
    if (pthread_create(&w->thread, NULL, writer_main, w) != 0)
        return err_set(eb, ERR_NOMEM, "cannot start the database writer thread");
    w->started = 1;
    return ERR_OK;
}

int
sync_writer_room(struct writer *w, size_t ndevs)
{
    int room;

    pthread_mutex_lock(&w->mu);
    room = w->q_jobs == 0 ||
           (w->q_jobs < WRITER_QUEUE_MAX && w->q_devices + ndevs <= WRITER_QUEUE_DEVICES);
    pthread_mutex_unlock(&w->mu);
    return room;
}

void
sync_writer_submit(struct writer *w, struct wjob *j)
{
    j->next = NULL;
    pthread_mutex_lock(&w->mu);
    if (j->kind == WJOB_RECONCILE) {
        w->q_jobs++;
        w->q_devices += j->ndevs;
    }
    if (w->q_tail != NULL)
        w->q_tail->next = j;
    else
        w->q_head = j;
    w->q_tail = j;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

struct wresult *
sync_writer_results(struct writer *w)
{
    struct wresult *r;

    pthread_mutex_lock(&w->mu);
    r = w->done_head;
    w->done_head = w->done_tail = NULL;
    pthread_mutex_unlock(&w->mu);
    return r;
}

void
sync_writer_stop(struct writer *w)
{
    if (w == NULL || !w->started)
        return;
    pthread_mutex_lock(&w->mu);
    w->closing = 1;
    pthread_cond_signal(&w->cv);
    pthread_mutex_unlock(&w->mu);
    pthread_join(w->thread, NULL);
    w->started = 0;
}

void
sync_writer_free(struct writer *w)
{
    struct wjob *j;
    struct wresult *r;

    if (w == NULL)
        return;
    sync_writer_stop(w);
    while ((j = w->q_head) != NULL) {
        w->q_head = j->next;
        sync_wjob_free(j);
    }
    while ((r = w->done_head) != NULL) {
        w->done_head = r->next;
        free(r);
    }
    store_close(w->st);
    free(w->source);
    pthread_cond_destroy(&w->cv);
    pthread_mutex_destroy(&w->mu);
    free(w);
}
