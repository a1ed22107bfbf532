/* scheduler.c - the sync worker thread of `memsync serve`. */
#include "scheduler.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "store.h"
#include "sync.h"

#define TICK_S       5    /* how often due syncs are looked for */
#define SEARCH_BATCH 2000 /* assets per search-index transaction (~0.2 s of the write lock) */

struct job {
    int64_t account_id;
    int64_t integration_id;
    int full;
    /* scheduler_request_tenant: this tenant only ("" = every tenant) */
    char tenant_id[64], name[256], domain[256];
    int64_t run_id; /* > 0: started by scheduler_request_run, finished by run_job */
};

struct scheduler {
    const struct config *cfg;
    const struct vault *vault;
    int periodic;
    pthread_t thread;
    int started;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    int stopping;
    struct job queue[SCHEDULER_QUEUE_MAX];
    int nqueue;
    int64_t running; /* integration id, 0 when idle */
    struct scheduler_stats stats;
    /* The unfinished tenants of the run being synced (sync_opts.on_progress). */
    int64_t live_run;
    struct scheduler_live *live;
    size_t nlive;
    int live_listed;
};

static int
enqueue_locked(struct scheduler *s, const struct job *j, struct errbuf *eb)
{
    if (s->running == j->integration_id)
        return err_set(eb, ERR_EXISTS, "a sync of this integration is already running");
    for (int i = 0; i < s->nqueue; i++)
        if (s->queue[i].integration_id == j->integration_id)
            return err_set(eb, ERR_EXISTS, "a sync of this integration is already queued");
    if (s->nqueue >= SCHEDULER_QUEUE_MAX)
        return err_set(eb, ERR_TOOBIG, "too many syncs are queued; try again later");
    s->queue[s->nqueue++] = *j;
    pthread_cond_signal(&s->cv);
    return ERR_OK;
}

int
scheduler_request(struct scheduler *s, int64_t account_id, int64_t integration_id, int full,
                  struct errbuf *eb)
{
    struct job j = {.account_id = account_id, .integration_id = integration_id, .full = full};
    int rc;

    pthread_mutex_lock(&s->mu);
    rc = enqueue_locked(s, &j, eb);
    pthread_mutex_unlock(&s->mu);
    return rc;
}

/* ERR_EXISTS / ERR_TOOBIG as enqueue_locked would answer, without queueing. */
static int
can_enqueue_locked(struct scheduler *s, int64_t integration_id, struct errbuf *eb)
{
    if (s->running == integration_id)
        return err_set(eb, ERR_EXISTS, "a sync of this integration is already running");
    for (int i = 0; i < s->nqueue; i++)
        if (s->queue[i].integration_id == integration_id)
            return err_set(eb, ERR_EXISTS, "a sync of this integration is already queued");
    if (s->nqueue >= SCHEDULER_QUEUE_MAX)
        return err_set(eb, ERR_TOOBIG, "too many syncs are queued; try again later");
    return ERR_OK;
}

/* Starts j's run in st and queues j; the run is finished as failed when j cannot be queued. */
static int
start_and_enqueue(struct scheduler *s, struct store *st, struct job *j, int64_t *run_id,
                  struct errbuf *eb)
{
    struct errbuf feb = {0};
    int rc;

    pthread_mutex_lock(&s->mu);
    rc = can_enqueue_locked(s, j->integration_id, eb);
    pthread_mutex_unlock(&s->mu);
    if (rc != ERR_OK)
        return rc;
    rc = store_run_start(st, j->integration_id, j->full ? "full" : "incremental", clock_now(),
                         &j->run_id, eb);
    if (rc != ERR_OK)
        return rc;
    pthread_mutex_lock(&s->mu);
    rc = enqueue_locked(s, j, eb);
    pthread_mutex_unlock(&s->mu);
    if (rc != ERR_OK) {
        /* Another request queued the integration in between: this run never starts. */
        if (store_run_finish(st, j->run_id, "failed", eb->msg, clock_now(), &feb) != ERR_OK)
            log_warn("cannot finish sync run run=%" PRId64 ": %s", j->run_id, feb.msg);
        return rc;
    }
    *run_id = j->run_id;
    return ERR_OK;
}

int
scheduler_request_tenant(struct scheduler *s, struct store *st, int64_t account_id,
                         int64_t integration_id, const char *tenant_id, const char *name,
                         const char *domain, int64_t *run_id, struct errbuf *eb)
{
    struct job j = {.account_id = account_id, .integration_id = integration_id, .full = 1};
    int rc;

    *run_id = 0;
    if (tenant_id == NULL || strlen(tenant_id) >= sizeof j.tenant_id)
        return err_set(eb, ERR_INVAL, "not a tenant id");
    if (strcmp(s->cfg->sync_runner, "workers") == 0) {
        struct customer c = {
            .tenant_id = (char *)tenant_id, .name = (char *)name, .domain = (char *)domain};

        rc = store_job_enqueue_tenant(st, integration_id, &c, clock_now(), run_id, eb);
        if (rc == ERR_OK)
            log_info("tenant sync queued for workers integration=%" PRId64 " run=%" PRId64
                     " tenant=%s",
                     integration_id, *run_id, tenant_id);
        return rc;
    }
    snprintf(j.tenant_id, sizeof j.tenant_id, "%s", tenant_id);
    snprintf(j.name, sizeof j.name, "%s", name != NULL ? name : "");
    snprintf(j.domain, sizeof j.domain, "%s", domain != NULL ? domain : "");
    return start_and_enqueue(s, st, &j, run_id, eb);
}

static int
run_id_cb(void *arg, const struct store_cell *c, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(c[i].name, "id") == 0)
            *(int64_t *)arg = c[i].i;
    return 0;
}

/* The integration's newest run still running (a run queued for workers), or 0. */
static int64_t
running_run(struct store *st, int64_t account_id, int64_t integration_id)
{
    char idtxt[32];
    struct store_filter f[2] = {{"integration_id", "eq", idtxt}, {"status", "eq", "running"}};
    struct list_query q = {0};
    struct errbuf eb = {0};
    int64_t id = 0;

    snprintf(idtxt, sizeof idtxt, "%" PRId64, integration_id);
    q.entity = "sync_runs";
    q.account_id = account_id;
    q.filters = f;
    q.nfilters = 2;
    q.limit = 1;
    if (store_list_each(st, &q, run_id_cb, &id, &eb) != ERR_OK)
        return 0;
    return id;
}

int
scheduler_request_run(struct scheduler *s, struct store *st, int64_t account_id,
                      int64_t integration_id, int full, int64_t *run_id, struct errbuf *eb)
{
    struct job j = {.account_id = account_id, .integration_id = integration_id, .full = full};
    int rc;

    *run_id = 0;
    if (strcmp(s->cfg->sync_runner, "workers") == 0) {
        /* The database queue starts the run; `memsync worker` processes sync it. */
        rc = store_job_enqueue(st, integration_id, full, clock_now(), run_id, eb);
        if (rc == ERR_OK)
            log_info("sync queued for workers integration=%" PRId64 " run=%" PRId64 " kind=%s",
                     integration_id, *run_id, full ? "full" : "incremental");
        /* A run of this integration still waits for workers: that run is the answer (the
         * database queue keeps one per integration). */
        if (rc == ERR_EXISTS && (*run_id = running_run(st, account_id, integration_id)) > 0) {
            log_info("sync already queued for workers integration=%" PRId64 " run=%" PRId64,
                     integration_id, *run_id);
            return ERR_OK;
        }
        return rc;
    }
    return start_and_enqueue(s, st, &j, run_id, eb);
}

struct job_walk {
    struct scheduler_live *v;
    size_t n, cap;
    int discovery; /* the discovery job is unfinished: customers still being listed */
};

static int
job_live_cb(void *arg, const char *tenant_id, const char *name, int leased, int64_t elapsed_s)
{
    struct job_walk *w = arg;
    struct scheduler_live *l;

    if (tenant_id == NULL) {
        w->discovery = 1;
        return 0;
    }
    if (w->n >= SCHEDULER_LIVE_MAX)
        return 0;
    w->v = mem_grow(w->v, &w->cap, w->n + 1, sizeof *w->v);
    l = &w->v[w->n++];
    memset(l, 0, sizeof *l);
    snprintf(l->tenant_id, sizeof l->tenant_id, "%s", tenant_id);
    snprintf(l->name, sizeof l->name, "%s", name != NULL ? name : "");
    l->running = leased;
    l->elapsed_ms = leased ? elapsed_s * 1000 : 0;
    return 0;
}

/* A run queued for workers: its unfinished jobs in the database. */
static int
live_from_jobs(struct store *st, int64_t run_id, struct scheduler_live **out, size_t *n,
               int *listed)
{
    struct job_walk w = {0};
    struct errbuf eb = {0};
    size_t jobs = 0;

    if (store_job_unfinished(st, run_id, SCHEDULER_LIVE_MAX + 1, job_live_cb, &w, &jobs, &eb) !=
            ERR_OK ||
        jobs == 0) {
        if (eb.code != ERR_OK && eb.code != ERR_UNSUPPORTED)
            log_warn("cannot read the jobs of run=%" PRId64 ": %s", run_id, eb.msg);
        free(w.v);
        return 0;
    }
    *listed = !w.discovery;
    *out = w.v; /* NULL when no tenant job is left */
    *n = w.n;
    return 1;
}

int
scheduler_live_get(struct scheduler *s, struct store *st, int64_t run_id,
                   struct scheduler_live **out, size_t *n, int *listed)
{
    int found = 0;

    *out = NULL;
    *n = 0;
    *listed = 0;
    if (run_id <= 0)
        return 0;
    if (s != NULL) {
        pthread_mutex_lock(&s->mu);
        if (s->live_run == run_id) {
            found = 1;
            *listed = s->live_listed;
            if (s->nlive > 0) {
                *out = xmalloc(s->nlive * sizeof **out);
                memcpy(*out, s->live, s->nlive * sizeof **out);
                *n = s->nlive;
            }
        }
        pthread_mutex_unlock(&s->mu);
    }
    if (!found && st != NULL)
        found = live_from_jobs(st, run_id, out, n, listed);
    return found;
}

/* sync_opts.on_progress: keeps a copy for scheduler_live_get. */
static void
live_cb(void *arg, const struct sync_tenant_live *v, size_t n, int listed)
{
    struct scheduler *s = arg;
    struct scheduler_live *copy = NULL;

    if (n > SCHEDULER_LIVE_MAX)
        n = SCHEDULER_LIVE_MAX;
    if (n > 0)
        copy = xcalloc(n, sizeof *copy);
    for (size_t i = 0; i < n; i++) {
        snprintf(copy[i].tenant_id, sizeof copy[i].tenant_id, "%s",
                 v[i].tenant_id != NULL ? v[i].tenant_id : "");
        snprintf(copy[i].name, sizeof copy[i].name, "%s", v[i].name != NULL ? v[i].name : "");
        copy[i].running = v[i].running;
        copy[i].elapsed_ms = v[i].elapsed_ms;
    }
    pthread_mutex_lock(&s->mu);
    free(s->live);
    s->live = copy;
    s->nlive = n;
    s->live_listed = listed;
    pthread_mutex_unlock(&s->mu);
}

const char *
scheduler_state(struct scheduler *s, int64_t integration_id)
{
    const char *st = "idle";

    if (s == NULL)
        return st;
    pthread_mutex_lock(&s->mu);
    if (s->running == integration_id) {
        st = "running";
    } else {
        for (int i = 0; i < s->nqueue; i++)
            if (s->queue[i].integration_id == integration_id)
                st = "queued";
    }
    pthread_mutex_unlock(&s->mu);
    return st;
}

void
scheduler_stats_get(struct scheduler *s, struct scheduler_stats *out)
{
    pthread_mutex_lock(&s->mu);
    *out = s->stats;
    pthread_mutex_unlock(&s->mu);
}

/* sync_runner = workers: the run goes to the database's queue for `memsync worker`. */
static int
queue_job(struct store *st, const struct job *j)
{
    struct errbuf eb = {0};
    int64_t run = 0;

    if (store_job_enqueue(st, j->integration_id, j->full, clock_now(), &run, &eb) != ERR_OK) {
        if (eb.code == ERR_EXISTS)
            log_info("sync not queued integration=%" PRId64 ": %s", j->integration_id, eb.msg);
        else
            log_warn("cannot queue a sync integration=%" PRId64 ": %s", j->integration_id, eb.msg);
        return eb.code;
    }
    log_info("sync queued for workers integration=%" PRId64 " run=%" PRId64 " kind=%s",
             j->integration_id, run, j->full ? "full" : "incremental");
    return ERR_OK;
}

static void
run_job(struct scheduler *s, struct store *st, const struct job *j)
{
    struct integration in = {0};
    struct errbuf eb = {0};
    struct sync_creds creds = {0};
    struct sync_opts so = {0};
    struct sync_summary sum = {0};
    struct customer cust = {0};
    int64_t t0 = clock_mono_ms();
    int rc;

    if ((rc = store_integration_get(st, j->account_id, j->integration_id, &in, &eb)) != ERR_OK ||
        (rc = sync_creds_unseal(&creds, s->vault, &in, &eb)) != ERR_OK)
        goto out;
    so.cfg = s->cfg;
    so.incremental = !j->full;
    so.software = 1;
    if (j->tenant_id[0] != '\0') {
        /* One client: its tenant as the customer list (names as stored; the sync reads the
         * tenant's own /organization anyway). */
        cust.tenant_id = (char *)j->tenant_id;
        cust.name = j->name[0] != '\0' ? (char *)j->name : NULL;
        cust.domain = j->domain[0] != '\0' ? (char *)j->domain : NULL;
        so.tenants = &cust;
        so.ntenants = 1;
    }
    so.run_id = j->run_id;
    so.finish_run = j->run_id > 0;
    so.on_progress = live_cb;
    so.progress_arg = s;
    log_info("sync starting integration=%" PRId64 " kind=%s", in.id,
             j->full ? "full" : "incremental");
    pthread_mutex_lock(&s->mu);
    s->live_run = j->run_id;
    s->live_listed = 0;
    pthread_mutex_unlock(&s->mu);
    rc = sync_run(st, &in, &creds, &so, &sum, &eb);
    pthread_mutex_lock(&s->mu);
    s->live_run = 0;
    XFREE(s->live);
    s->nlive = 0;
    pthread_mutex_unlock(&s->mu);
    if (rc == ERR_OK)
        log_info("sync finished integration=%" PRId64 " tenants=%d failed=%d devices=%" PRId64
                 " ms=%" PRId64,
                 in.id, sum.tenants_total, sum.tenants_failed, sum.devices, sum.duration_ms);
out:
    if (rc != ERR_OK)
        log_warn("sync could not run integration=%" PRId64 ": %s", j->integration_id, eb.msg);
    if (rc != ERR_OK && j->run_id > 0) {
        /* A run started for the caller never stays "running": say why it did not sync. */
        struct errbuf feb = {0};

        if (store_run_finish(st, j->run_id, "failed", eb.msg, clock_now(), &feb) != ERR_OK)
            log_warn("cannot finish sync run run=%" PRId64 ": %s", j->run_id, feb.msg);
    }
    pthread_mutex_lock(&s->mu);
    s->stats.runs++;
    if (rc != ERR_OK || sum.tenants_failed > 0)
        s->stats.failed++;
    s->stats.last_duration_s = (double)(clock_mono_ms() - t0) / 1000.0;
    s->stats.total_duration_s += s->stats.last_duration_s;
    metrics_sync_observe(j->full, s->stats.last_duration_s);
    s->stats.microsoft_requests += sum.requests > 0 ? (uint64_t)sum.requests : 0;
    s->stats.microsoft_throttled += sum.throttled > 0 ? (uint64_t)sum.throttled : 0;
    pthread_mutex_unlock(&s->mu);
    sync_creds_wipe(&creds);
    integration_clear(&in);
}

struct due_walk {
    struct scheduler *s;
    int64_t now;
};

/* Row of "scheduler_integrations": id, account_id, sync_interval, last_started_at. */
static int
due_cb(void *arg, const struct store_cell *c, size_t n)
{
    struct due_walk *w = arg;
    struct job j = {0};
    int64_t interval, last;

    if (n < 4)
        return 0;
    j.integration_id = c[0].i;
    j.account_id = c[1].i;
    interval = c[2].i > 0 ? c[2].i : 6 * 3600;
    last = c[3].kind == SC_NULL ? TS_NULL : c[3].i;
    /* Never synced: a full sync; otherwise incremental when the interval has passed. */
    j.full = last == TS_NULL;
    if (last != TS_NULL && w->now - last < interval)
        return 0;
    enqueue_locked(w->s, &j, NULL);
    return 0;
}

static void
find_due(struct scheduler *s, struct store *st)
{
    struct list_query q = {0};
    struct due_walk w = {s, clock_now()};
    struct errbuf eb = {0};

    q.entity = "scheduler_integrations";
    pthread_mutex_lock(&s->mu);
    if (store_list_each(st, &q, due_cb, &w, &eb) != ERR_OK)
        log_warn("scheduler: cannot read the integrations: %s", eb.msg);
    pthread_mutex_unlock(&s->mu);
}

/* Feeds new assets to the free-text search index between syncs, a batch at a time, until it is
 * up to date or a sync is waiting. */
static void
index_search(struct scheduler *s, struct store *st)
{
    for (;;) {
        struct errbuf eb = {0};
        int64_t n = 0;
        int idle;

        pthread_mutex_lock(&s->mu);
        idle = !s->stopping && s->nqueue == 0;
        pthread_mutex_unlock(&s->mu);
        if (!idle)
            return;
        if (store_search_index(st, SEARCH_BATCH, &n, &eb) != ERR_OK) {
            log_warn("scheduler: cannot update the search index: %s", eb.msg);
            return;
        }
        if (n == 0)
            return;
        log_debug("search index updated rows=%" PRId64, n);
    }
}

static void *
worker(void *arg)
{
    struct scheduler *s = arg;
    struct store *st = NULL;
    struct errbuf eb = {0};
    int64_t next_scan = 0;

    if (store_open(&st, s->cfg->db, &eb) != ERR_OK) {
        log_error("scheduler: cannot open the database: %s", eb.msg);
        return NULL;
    }
    for (;;) {
        struct job j;
        int have = 0;

        if (s->periodic && clock_mono_ms() >= next_scan) {
            find_due(s, st);
            next_scan = clock_mono_ms() + TICK_S * 1000;
        }
        pthread_mutex_lock(&s->mu);
        while (!s->stopping && s->nqueue == 0) {
            struct timespec ts;

            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_sec += TICK_S;
            if (pthread_cond_timedwait(&s->cv, &s->mu, &ts) != 0)
                break; /* look for due syncs and index work */
        }
        if (s->stopping) {
            pthread_mutex_unlock(&s->mu);
            break;
        }
        if (s->nqueue > 0) {
            j = s->queue[0];
            memmove(&s->queue[0], &s->queue[1], (size_t)(s->nqueue - 1) * sizeof s->queue[0]);
            s->nqueue--;
            s->running = j.integration_id;
            have = 1;
        }
        pthread_mutex_unlock(&s->mu);
        if (!have)
            index_search(s, st);
        if (have && strcmp(s->cfg->sync_runner, "workers") == 0) {
            queue_job(st, &j);
            pthread_mutex_lock(&s->mu);
            s->running = 0;
            pthread_mutex_unlock(&s->mu);
        } else if (have) {
            run_job(s, st, &j);
            pthread_mutex_lock(&s->mu);
            s->running = 0;
            pthread_mutex_unlock(&s->mu);
        }
    }
    /* Runs started for a caller and still queued: they will not sync in this process. */
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->nqueue; i++) {
        struct errbuf feb = {0};

        if (s->queue[i].run_id > 0 &&
            store_run_finish(st, s->queue[i].run_id, "interrupted",
                             "memsync serve stopped before this sync started", clock_now(),
                             &feb) != ERR_OK)
            log_warn("cannot finish sync run run=%" PRId64 ": %s", s->queue[i].run_id, feb.msg);
    }
    s->nqueue = 0;
    pthread_mutex_unlock(&s->mu);
    store_close(st);
    return NULL;
}

int
scheduler_start(struct scheduler **out, const struct config *cfg, const struct vault *v,
                int periodic, struct errbuf *eb)
{
    struct scheduler *s = xcalloc(1, sizeof *s);

    *out = NULL;
    s->cfg = cfg;
    s->vault = v;
    s->periodic = periodic;
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    if (pthread_create(&s->thread, NULL, worker, s) != 0) {
        pthread_mutex_destroy(&s->mu);
        pthread_cond_destroy(&s->cv);
        free(s);
        return err_set(eb, ERR_NOMEM, "cannot start the sync thread");
    }
    s->started = 1;
    *out = s;
    return ERR_OK;
}

void
scheduler_stop(struct scheduler *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&s->mu);
    s->stopping = 1;
    if (s->running != 0)
        sync_request_stop();
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    if (s->started)
        pthread_join(s->thread, NULL);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s->live);
    free(s);
}
