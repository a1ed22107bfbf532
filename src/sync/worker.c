/* worker.c - leases sync jobs from the database and runs them with the sync engine. */
#include "worker.h"

#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "mem.h"
#include "sync.h"

static volatile sig_atomic_t worker_stop;
static volatile sig_atomic_t worker_key_reload;

void
worker_request_key_reload(void)
{
    worker_key_reload = 1;
}

void
worker_request_stop(void)
{
    worker_stop = 1;
    sync_request_stop();
}

struct lease_keeper {
    struct store *st;
    struct sync_job *jobs; /* the jobs whose leases it renews */
    unsigned char *lost;   /* per job: another worker has it now */
    size_t n, nrun;        /* jobs[0..nrun) are being synced; the rest only held */
    const char *name;
    int lease_s;
    int64_t last_ms;
};

/* Engine tick: renews every lease together; the sync stops when it holds none of its jobs any
 * more (another worker has them). */
static int
keep_lease(void *arg)
{
    struct lease_keeper *k = arg;
    struct errbuf eb = {0};
    int64_t now = clock_mono_ms();
    size_t held = 0;
    int failed = 0;

    if (worker_stop)
        return 1;
    if (now - k->last_ms < (int64_t)k->lease_s * 1000 / 3)
        return 0;
    for (size_t i = 0; i < k->n; i++) {
        int rc;

        if (k->lost[i])
            continue;
        rc = store_job_renew(k->st, &k->jobs[i], k->name, k->lease_s, &eb);
        if (rc == ERR_NOTFOUND) {
            log_warn("sync job lost job=%" PRId64 ": %s", k->jobs[i].id, eb.msg);
            k->lost[i] = 1;
        } else if (rc != ERR_OK) {
            log_warn("cannot renew the lease job=%" PRId64 ": %s; retrying", k->jobs[i].id, eb.msg);
            failed = 1;
        }
        held += i < k->nrun && !k->lost[i];
    }
    if (!failed)
        k->last_ms = now;
    if (held == 0) {
        log_warn("every sync job of this worker was lost; stopping their sync");
        return 1;
    }
    return 0;
}

/* Runs one leased job; returns a store error that should end the loop, else ERR_OK. */
static int
run_job(struct store *st, const struct worker_opts *o, const char *name, struct sync_job *j,
        struct worker_stats *stats)
{
    struct integration in = {0};
    struct sync_creds creds = {0};
    struct sync_opts so = {0};
    struct sync_summary sum = {0};
    struct lease_keeper keeper = {0};
    struct customer *found = NULL;
    size_t nfound = 0;
    struct errbuf eb = {0}, seb = {0};
    const char *what = j->cust.tenant_id != NULL ? j->cust.tenant_id : "(discovery)";
    int rc, src = ERR_OK, ok = 1;

    log_info("sync job leased job=%" PRId64 " run=%" PRId64 " integration=%" PRId64
             " tenant=%s attempt=%d",
             j->id, j->run_id, j->integration_id, what, j->attempts);
    if (worker_key_reload) {
        worker_key_reload = 0;
        if (vault_reload(o->vault, &eb) != ERR_OK)
            log_warn("cannot read the master key file again: %s; keeping the key in use", eb.msg);
        err_clear(&eb);
    }
    rc = store_integration_get(st, j->account_id, j->integration_id, &in, &eb);
    if (rc == ERR_OK)
        rc = sync_creds_unseal(&creds, o->vault, &in, &eb);
    if (rc != ERR_OK)
        goto done;
    so.cfg = o->cfg;
    so.incremental = !j->full;
    so.software = o->software;
    so.run_id = j->run_id;
    if (j->cust.tenant_id == NULL) {
        rc = sync_discover(st, &in, &creds, &so, &found, &nfound, &eb);
        if (rc == ERR_OK && !worker_stop) {
            src = store_job_expand(st, j, name, found, nfound, clock_now(), &seb);
            if (src == ERR_OK)
                log_info("customers queued run=%" PRId64 " tenants=%zu", j->run_id, nfound);
            goto out;
        }
        goto done;
    }
    {
        unsigned char lost = 0;

        keeper.st = st;
        keeper.jobs = j;
        keeper.lost = &lost;
        keeper.n = keeper.nrun = 1;
        keeper.name = name;
        keeper.lease_s = o->lease_s;
        keeper.last_ms = clock_mono_ms();
        so.tenants = &j->cust;
        so.ntenants = 1;
        so.parallel = 1;
        so.tick = keep_lease;
        so.tick_arg = &keeper;
        rc = sync_run(st, &in, &creds, &so, &sum, &eb);
        if (lost)
            goto out; /* another worker owns the job now */
    }
    if (rc == ERR_OK && sum.interrupted)
        rc = err_set(&eb, ERR_INTERRUPTED, "stopped");
done:
    if (rc == ERR_INTERRUPTED || worker_stop) {
        src = store_job_release(st, j, name, &seb);
        if (src == ERR_OK)
            log_info("sync job given back job=%" PRId64 " tenant=%s", j->id, what);
        goto out;
    }
    if (rc != ERR_OK) {
        ok = 0;
        log_warn("sync job failed job=%" PRId64 " run=%" PRId64 " tenant=%s: %s", j->id, j->run_id,
                 what, eb.msg);
    }
    src = store_job_finish(st, j, name, ok, ok ? NULL : eb.msg, clock_now(), &seb);
    if (src == ERR_OK) {
        stats->jobs++;
        stats->failed += !ok;
    }
out:
    if (src == ERR_NOTFOUND) {
        log_warn("sync job result dropped job=%" PRId64 ": %s", j->id, seb.msg);
        src = ERR_OK;
    } else if (src != ERR_OK) {
        log_error("cannot record the sync job job=%" PRId64 ": %s", j->id, seb.msg);
    }
    customers_free(found, nfound);
    sync_creds_wipe(&creds);
    integration_clear(&in);
    return src;
}

/* Runs jobs[0..nrun) (tenant jobs of one run) on one engine, their tenants in parallel, and
 * renews the leases of jobs[0..n) meanwhile (the rest is held for the next round). Returns a
 * store error that should end the loop, else ERR_OK. */
static int
run_batch(struct store *st, const struct worker_opts *o, const char *name, struct sync_job *jobs,
          size_t nrun, size_t n, struct worker_stats *stats)
{
    struct integration in = {0};
    struct sync_creds creds = {0};
    struct sync_opts so = {0};
    struct sync_summary sum = {0};
    struct lease_keeper keeper = {0};
    struct customer *tenants = xcalloc(nrun, sizeof *tenants);
    unsigned char *lost = xcalloc(n, 1);
    struct errbuf eb = {0}, seb = {0};
    int rc, src = ERR_OK;

    for (size_t i = 0; i < nrun; i++) {
        tenants[i] = jobs[i].cust; /* borrowed: the jobs own the strings */
        log_info("sync job leased job=%" PRId64 " run=%" PRId64 " integration=%" PRId64
                 " tenant=%s attempt=%d",
                 jobs[i].id, jobs[i].run_id, jobs[i].integration_id, jobs[i].cust.tenant_id,
                 jobs[i].attempts);
    }
    if (worker_key_reload) {
        worker_key_reload = 0;
        if (vault_reload(o->vault, &eb) != ERR_OK)
            log_warn("cannot read the master key file again: %s; keeping the key in use", eb.msg);
        err_clear(&eb);
    }
    rc = store_integration_get(st, jobs[0].account_id, jobs[0].integration_id, &in, &eb);
    if (rc == ERR_OK)
        rc = sync_creds_unseal(&creds, o->vault, &in, &eb);
    if (rc == ERR_OK) {
        so.cfg = o->cfg;
        so.incremental = !jobs[0].full;
        so.software = o->software;
        so.run_id = jobs[0].run_id;
        keeper.st = st;
        keeper.jobs = jobs;
        keeper.lost = lost;
        keeper.n = n;
        keeper.nrun = nrun;
        keeper.name = name;
        keeper.lease_s = o->lease_s;
        keeper.last_ms = clock_mono_ms();
        so.tenants = tenants;
        so.ntenants = nrun;
        so.parallel = (int)nrun;
        so.tick = keep_lease;
        so.tick_arg = &keeper;
        rc = sync_run(st, &in, &creds, &so, &sum, &eb);
        if (rc == ERR_OK && sum.interrupted)
            rc = err_set(&eb, ERR_INTERRUPTED, "stopped");
    }
    for (size_t i = 0; i < nrun; i++) {
        int ok = rc == ERR_OK;

        if (lost[i])
            continue; /* another worker owns the job now */
        if (rc == ERR_INTERRUPTED || worker_stop) {
            src = store_job_release(st, &jobs[i], name, &seb);
            if (src == ERR_OK)
                log_info("sync job given back job=%" PRId64 " tenant=%s", jobs[i].id,
                         jobs[i].cust.tenant_id);
        } else {
            if (!ok)
                log_warn("sync job failed job=%" PRId64 " run=%" PRId64 " tenant=%s: %s",
                         jobs[i].id, jobs[i].run_id, jobs[i].cust.tenant_id, eb.msg);
            src = store_job_finish(st, &jobs[i], name, ok, ok ? NULL : eb.msg, clock_now(), &seb);
            if (src == ERR_OK) {
                stats->jobs++;
                stats->failed += !ok;
            }
        }
        if (src == ERR_NOTFOUND) {
            log_warn("sync job result dropped job=%" PRId64 ": %s", jobs[i].id, seb.msg);
            src = ERR_OK;
        } else if (src != ERR_OK) {
            log_error("cannot record the sync job job=%" PRId64 ": %s", jobs[i].id, seb.msg);
            break;
        }
    }
    /* A held job another worker took meanwhile is not run again here. */
    for (size_t i = nrun; i < n; i++)
        if (lost[i])
            jobs[i].id = 0;
    free(tenants);
    free(lost);
    sync_creds_wipe(&creds);
    integration_clear(&in);
    return src;
}

/* Same run, same integration, same kind: may share an engine. */
static int
same_batch(const struct sync_job *a, const struct sync_job *b)
{
    return b->cust.tenant_id != NULL && a->run_id == b->run_id &&
           a->integration_id == b->integration_id && a->full == b->full &&
           a->account_id == b->account_id;
}

static void
idle_wait(int seconds)
{
    for (int i = 0; i < seconds * 10 && !worker_stop; i++) {
        struct timespec ts = {0, 100 * 1000 * 1000};

        nanosleep(&ts, NULL);
    }
}

int
worker_run(struct store *st, const struct worker_opts *o_, struct worker_stats *stats,
           struct errbuf *eb)
{
    struct worker_opts o = *o_;
    char host[128] = "";
    char name[192];
    struct sync_job *jobs = NULL, held = {0};
    int rc = ERR_OK;

    memset(stats, 0, sizeof *stats);
    if (o.lease_s <= 0)
        o.lease_s = WORKER_LEASE_DEFAULT_S;
    if (o.poll_s <= 0)
        o.poll_s = WORKER_POLL_DEFAULT_S;
    if (gethostname(host, sizeof host - 1) != 0)
        snprintf(host, sizeof host, "unknown");
    /* Unique per process start: a restarted worker never mistakes an old lease for its own. */
    snprintf(name, sizeof name, "%s:%ld:%" PRId64, host, (long)getpid(), clock_mono_ms());
    if (o.concurrency <= 0)
        o.concurrency = o.cfg != NULL && o.cfg->sync_parallel > 0 ? o.cfg->sync_parallel : 1;
    if (o.concurrency > WORKER_CONCURRENCY_MAX)
        o.concurrency = WORKER_CONCURRENCY_MAX;
    jobs = xcalloc((size_t)o.concurrency + 1, sizeof *jobs);
    log_info("worker started name=%s lease_s=%d concurrency=%d", name, o.lease_s, o.concurrency);
    while (!worker_stop) {
        int64_t busy = 0;
        size_t n = 0, nrun;

        if (held.id != 0) {
            jobs[n++] = held;
            memset(&held, 0, sizeof held);
        } else {
            rc = store_job_lease(st, name, o.lease_s, clock_now(), &jobs[0], &busy, eb);
            if (rc == ERR_NOTFOUND) {
                rc = ERR_OK;
                /* Jobs held by others may still queue tenants, or lapse and need a taker. */
                if (o.once && busy == 0)
                    break;
                idle_wait(o.poll_s);
                continue;
            }
            if (rc == ERR_UNSUPPORTED)
                break;
            if (rc != ERR_OK) {
                /* The database may be restarting: wait and try again rather than exit. */
                log_warn("cannot lease a sync job: %s; retrying in %d s", eb->msg, o.poll_s);
                rc = ERR_OK;
                idle_wait(o.poll_s);
                continue;
            }
            n = 1;
        }
        if (jobs[0].cust.tenant_id == NULL || o.concurrency == 1) {
            rc = run_job(st, &o, name, &jobs[0], stats);
            sync_job_clear(&jobs[0]);
        } else {
            /* More tenants of the same run, up to the concurrency; a job that belongs to
             * another run is held (its lease renewed) and runs next. */
            while (n < (size_t)o.concurrency && !worker_stop) {
                struct errbuf leb = {0};
                int64_t b2 = 0;

                if (store_job_lease(st, name, o.lease_s, clock_now(), &jobs[n], &b2, &leb) !=
                    ERR_OK)
                    break;
                if (!same_batch(&jobs[0], &jobs[n])) {
                    n++;
                    break;
                }
                n++;
            }
            nrun = same_batch(&jobs[0], &jobs[n - 1]) ? n : n - 1;
            rc = run_batch(st, &o, name, jobs, nrun, n, stats);
            for (size_t i = 0; i < nrun; i++)
                sync_job_clear(&jobs[i]);
            if (nrun < n) {
                if (jobs[nrun].id != 0)
                    held = jobs[nrun];
                else
                    sync_job_clear(&jobs[nrun]);
            }
            memset(jobs, 0, ((size_t)o.concurrency + 1) * sizeof *jobs);
        }
        if (rc != ERR_OK) {
            log_warn("worker: the database refused a job result; retrying in %d s", o.poll_s);
            rc = ERR_OK;
            idle_wait(o.poll_s);
        }
    }
    sync_job_clear(&held);
    free(jobs);
    log_info("worker stopped name=%s jobs=%d failed=%d", name, stats->jobs, stats->failed);
    return rc;
}
