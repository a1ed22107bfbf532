/* ui_runs.h - what a sync run shows while it runs: the tenants not finished yet (pending, or
 * running with how long so far) beside the finished ones of the run's tenant results, and the
 * "Sync now" button that is disabled while the integration has a sync queued or running.
 *
 * The live tenants come from the scheduler of this process, or for a run queued for `memsync
 * worker` processes from its jobs in the database (scheduler_live_get).
 *
 * Escaping: HTML goes through env->esc (ui.c's ui_esc), so that this module needs no header of
 * ui.c. Threads: HTTP pool threads; no state of its own.
 */
#ifndef MEMSYNC_UI_RUNS_H
#define MEMSYNC_UI_RUNS_H

#include <jansson.h>
#include <stdint.h>

#include "buf.h"
#include "scheduler.h"

struct ui_runs_env {
    void (*esc)(struct buf *b, const char *s);
};

/* A duration as people say it: "850 ms", "12.4 s", "3 min 05 s", "1 h 02 min". */
void ui_runs_duration(char *out, size_t n, int64_t ms);

/* The live tenants of run_id as JSON for GET /api/v1/sync-runs/{id}: an array of {tenant_id,
 * name, status ("pending" | "running"), elapsed_ms}, or NULL when neither this process nor
 * workers are syncing it (st: the caller's connection, for the jobs). *listed: 0 while the customer
 * list is being read. */
json_t *ui_runs_live_json(struct scheduler *s, struct store *st, int64_t run_id, int *listed);

/* The run page's tenant table (id "run-tenants"): the pending and running tenants first (rows
 * with data-state="pending" | "running" and their time so far), then the finished ones
 * (finished: the "sync_tenant_results" rows) with their duration. Cells carry data-label for the
 * narrow layout. running: the run's status is "running". */
void ui_runs_tenants(struct buf *b, struct scheduler *s, struct store *st, int64_t run_id,
                     int running, const json_t *finished, const struct ui_runs_env *env);

/* The "Sync now" form of an integration: a disabled button naming the state while a sync is
 * queued or running (state: scheduler_state), a submit button otherwise. csrf: the session's
 * form token. */
void ui_runs_sync_button(struct buf *b, int64_t integration_id, const char *state,
                         const char *csrf);

#endif
