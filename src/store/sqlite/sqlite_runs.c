/* sqlite_runs.c - SQLite: sync runs (sqlite_int.h). */
#include "sqlite_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "clock.h"
#include "hash.h"
#include "log.h"
#include "mem.h"
#include "serialset.h"

/* ---- sync runs --------------------------------------------------------------------------- */

int
sq_run_start(struct store *base, int64_t integration_id, const char *kind, int64_t now,
             int64_t *run_id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int own, rc, src;

    rc = sq_wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = sq_prep(s, S_RUN_START,
                 "INSERT INTO sync_run (account_id, integration_id, kind, started_at, status) "
                 "SELECT account_id, id, ?2, ?3, 'running' FROM integration WHERE id = ?1 "
                 "RETURNING id",
                 &st, eb);
    if (rc != ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, integration_id);
    sq_bind_text(st, 2, kind);
    sqlite3_bind_int64(st, 3, now);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *run_id = sqlite3_column_int64(st, 0);
    else if (src == SQLITE_DONE)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", integration_id);
    else
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "starting the sync run");
    sq_done(st);
out:
    return sq_wend(s, own, rc, eb);
}

int
sq_run_tenant(struct store *base, int64_t run_id, const struct tenant_result *r, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int own, rc, src;

    /* Between a sync's tenants foreign keys may be off (fk_settle): the run is looked up here,
     * under the write lock, instead of switching them on and back for every tenant. */
    s->fk_keep = 1;
    rc = sq_wbegin(s, &own, eb);
    s->fk_keep = 0;
    if (rc != ERR_OK)
        return rc;
    rc = sq_prep(s, S_RUN_EXISTS, "SELECT 1 FROM sync_run WHERE id = ?1", &st, eb);
    if (rc != ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, run_id);
    src = sqlite3_step(st);
    if (src == SQLITE_DONE)
        rc = err_set(eb, ERR_NOTFOUND, "sync run %" PRId64 " does not exist", run_id);
    else if (src != SQLITE_ROW)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "looking up the sync run");
    sq_done(st);
    if (rc != ERR_OK)
        goto out;
    rc = sq_prep(
        s, S_RUN_TENANT,
        "INSERT INTO sync_tenant_result (run_id, tenant_id, client_name, status, "
        "error_code, error_message, error_remedy, created, updated, unchanged, retired, "
        "revived, installs_added, installs_removed, devices, requests, throttled, "
        "duration_ms, error_request_id, error_date) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
        "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
        &st, eb);
    if (rc != ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, run_id);
    sq_bind_text(st, 2, r->tenant_id);
    sq_bind_text(st, 3, r->client_name);
    sq_bind_text(st, 4, r->status);
    sq_bind_text(st, 5, r->error_code);
    sq_bind_text(st, 6, r->message);
    sq_bind_text(st, 7, r->remedy);
    sqlite3_bind_int64(st, 8, r->counts.created);
    sqlite3_bind_int64(st, 9, r->counts.updated);
    sqlite3_bind_int64(st, 10, r->counts.unchanged);
    sqlite3_bind_int64(st, 11, r->counts.retired);
    sqlite3_bind_int64(st, 12, r->counts.revived);
    sqlite3_bind_int64(st, 13, r->counts.installs_added);
    sqlite3_bind_int64(st, 14, r->counts.installs_removed);
    sqlite3_bind_int64(st, 15, r->devices);
    sqlite3_bind_int64(st, 16, r->requests);
    sqlite3_bind_int64(st, 17, r->throttled);
    sqlite3_bind_int64(st, 18, r->duration_ms);
    sq_bind_text(st, 19, r->request_id);
    sq_bind_text(st, 20, r->response_date);
    rc = sq_step_done(s, st, eb, "recording the tenant result");
    if (rc == ERR_NOTFOUND)
        rc = err_set(eb, ERR_NOTFOUND, "sync run %" PRId64 " does not exist", run_id);
out:
    return sq_wend(s, own, rc, eb);
}

int
sq_run_finish(struct store *base, int64_t run_id, const char *status, const char *message,
              int64_t now, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int own, rc;

    rc = sq_wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = sq_prep(
        s, S_RUN_FINISH,
        "UPDATE sync_run SET status = ?1, finished_at = ?2, error_message = ?4 WHERE id = ?3", &st,
        eb);
    if (rc != ERR_OK)
        goto out;
    sq_bind_text(st, 1, status);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, run_id);
    sq_bind_text(st, 4, message);
    rc = sq_step_done(s, st, eb, "finishing the sync run");
    if (rc == ERR_OK && sqlite3_changes(s->db) == 0)
        rc = err_set(eb, ERR_NOTFOUND, "sync run %" PRId64 " does not exist", run_id);
out:
    return sq_wend(s, own, rc, eb);
}
