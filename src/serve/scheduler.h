/* scheduler.h - runs syncs for `memsync serve`: a full sync when an integration is saved, an
 * incremental sync every integration's sync_interval, and "sync now" on request.
 *
 * One worker thread with its own store connection runs the syncs, one at a time, so an
 * integration never has two syncs at once; requests for an integration that is already queued
 * or running are refused with ERR_EXISTS. Due syncs are found from the last run's start time in
 * the database, so a restart keeps the schedule. scheduler_stop() asks a running sync to stop
 * (its tenants keep their data) and joins the thread.
 *
 * Threads: every function except start/stop may be called from any thread (one mutex).
 */
#ifndef MEMSYNC_SCHEDULER_H
#define MEMSYNC_SCHEDULER_H

#include <stdint.h>

#include "config.h"
#include "err.h"
#include "store.h"
#include "vault.h"

#define SCHEDULER_QUEUE_MAX 64

struct scheduler;

/* periodic: 0 disables the interval syncs (only saves and requests run). */
int scheduler_start(struct scheduler **out, const struct config *cfg, const struct vault *v,
                    int periodic, struct errbuf *eb);
void scheduler_stop(struct scheduler *s); /* NULL-safe */

/* Queues a sync. ERR_EXISTS when this integration is already queued or running, ERR_TOOBIG
 * when the queue is full. */
int scheduler_request(struct scheduler *s, int64_t account_id, int64_t integration_id, int full,
                      struct errbuf *eb);

/* Queues a full sync of one tenant of the integration (a client page's "Sync now"): its customer
 * list is that tenant alone (name and domain as stored, may be NULL). Its run starts at once in
 * st, as scheduler_request_run's: *run_id. With sync_runner = workers the run and that tenant's
 * job go to the database queue (store_job_enqueue_tenant). ERR_EXISTS and ERR_TOOBIG as
 * scheduler_request (workers: a queued run of the integration is not finished), or the
 * store's. */
int scheduler_request_tenant(struct scheduler *s, struct store *st, int64_t account_id,
                             int64_t integration_id, const char *tenant_id, const char *name,
                             const char *domain, int64_t *run_id, struct errbuf *eb);
/* Queues a sync as scheduler_request does, and starts its run at once in st (the caller's
 * connection) so that the caller can answer the run's id: *run_id. The run shows as running
 * while it waits in the queue; the scheduler's thread syncs into it and finishes it (also when
 * the sync cannot start). With sync_runner = workers the run is the database queue's
 * (store_job_enqueue), and while a run of the integration still waits for workers that run is
 * the answer. Errors as scheduler_request, or the store's. */
int scheduler_request_run(struct scheduler *s, struct store *st, int64_t account_id,
                          int64_t integration_id, int full, int64_t *run_id, struct errbuf *eb);

/* The tenants of run_id that have not finished (pending or running), copied: *out is malloc'd
 * (free it), NULL when n is 0. From this scheduler when it is syncing run_id; otherwise, with st,
 * from the jobs of a run queued for `memsync worker` (store_job_unfinished: queued jobs are
 * pending, leased ones running). Returns 1 when either knows the run, 0 otherwise (its finished
 * tenants are all there is). listed: 0 while the customer list is still being read. At most
 * SCHEDULER_LIVE_MAX tenants. s may be NULL. */
#define SCHEDULER_LIVE_MAX 100000
struct scheduler_live {
    char tenant_id[40];
    char name[128];
    int running;
    int64_t elapsed_ms;
};
int scheduler_live_get(struct scheduler *s, struct store *st, int64_t run_id,
                       struct scheduler_live **out, size_t *n, int *listed);

/* "running", "queued" or "idle". */
const char *scheduler_state(struct scheduler *s, int64_t integration_id);

/* Totals since start, for /metrics. */
struct scheduler_stats {
    uint64_t runs;
    uint64_t failed;
    double last_duration_s;
    double total_duration_s;
    /* Requests this process's syncs sent to Microsoft (a $batch counts its parts), and the
     * throttled (429) answers among them. */
    uint64_t microsoft_requests;
    uint64_t microsoft_throttled;
};
void scheduler_stats_get(struct scheduler *s, struct scheduler_stats *out);

#endif
