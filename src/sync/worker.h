/* worker.h - `memsync worker`: runs queued syncs from a shared PostgreSQL database
 * (docs/DEPLOY.md "Workers"). Run any number of worker processes on any machines against the same
 * database and the same master key file.
 *
 * Each worker leases up to `concurrency` tenant jobs of one run (store_job_lease), syncs their
 * tenants together on one engine, renews every lease together every third of its length while
 * the engine works, and completes each; a new batch is leased when the batch is done (a
 * discovery job runs alone): a discovery job lists the integration's
 * customers and queues one job per tenant; a tenant job syncs that one tenant into the shared
 * run. A worker that dies loses nothing: a tenant is reconciled in one transaction or not at
 * all, and the lapsed lease lets another worker take the job. worker_request_stop() (signals)
 * stops the tenant in progress, which keeps its previous data, and gives the job back.
 *
 * Threads: worker_run() runs on the calling thread and owns the store handle it is given.
 * Errors: ERR_UNSUPPORTED on a database without sync jobs (SQLite); other store errors end the
 * loop with the message in eb. Failures of a job (a tenant, a customer listing) are recorded in
 * the run, logged, and do not end the loop.
 */
#ifndef MEMSYNC_WORKER_H
#define MEMSYNC_WORKER_H

#include "config.h"
#include "err.h"
#include "store.h"
#include "vault.h"

#define WORKER_LEASE_DEFAULT_S 120
#define WORKER_POLL_DEFAULT_S  5
#define WORKER_CONCURRENCY_MAX 256

struct worker_opts {
    const struct config *cfg;
    const struct vault *vault;
    int lease_s;  /* 0 = WORKER_LEASE_DEFAULT_S */
    int poll_s;   /* idle wait between looks at the queue; 0 = WORKER_POLL_DEFAULT_S */
    int once;     /* return once the queue is empty: no job waiting, none held by a worker */
    int software; /* also sync detected apps (what `memsync serve` does) */
    /* tenant jobs leased and synced together on one engine; 0 = cfg->sync_parallel */
    int concurrency;
};

struct worker_stats {
    int jobs;   /* completed, discovery included */
    int failed; /* jobs that failed (a failed tenant inside a done job is not counted) */
};

int worker_run(struct store *st, const struct worker_opts *o, struct worker_stats *stats,
               struct errbuf *eb);

/* Async-signal-safe: finish nothing new, give the current job back, return. */
void worker_request_stop(void);
/* Async-signal-safe (SIGHUP): read the master key file again before the next job. */
void worker_request_key_reload(void);

#endif
