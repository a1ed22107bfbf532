/* pg_jobs.c - PostgreSQL: sync runs and the jobs of `memsync worker` (pg_int.h). */
#include "pg_int.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "mem.h"

/* ---- sync runs --------------------------------------------------------------------------- */

int
pg_run_start(struct store *base, int64_t integration_id, const char *kind, int64_t now,
             int64_t *run_id, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int own, rc;

    rc = pg_wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, integration_id);
    pg_p_text(&p, kind);
    pg_p_i64(&p, now);
    r = pg_q(
        g,
        "INSERT INTO sync_run (account_id, integration_id, kind, started_at, status) SELECT "
        "account_id, id, $2::text, $3::bigint, 'running' FROM integration WHERE id = $1::bigint "
        "RETURNING id",
        &p, eb, "starting the sync run", &rc);
    if (r != NULL && PQntuples(r) == 1)
        *run_id = pg_r_i64(r, 0, 0, 0);
    else if (r != NULL)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", integration_id);
    PQclear(r);
    return pg_wend(g, own, rc, eb);
}

int
pg_run_tenant(struct store *base, int64_t run_id, const struct tenant_result *t, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int own, rc;

    rc = pg_wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, run_id);
    pg_p_text(&p, t->tenant_id);
    pg_p_text(&p, t->client_name);
    pg_p_text(&p, t->status);
    pg_p_text(&p, t->error_code);
    pg_p_text(&p, t->message);
    pg_p_text(&p, t->remedy);
    pg_p_i64(&p, t->counts.created);
    pg_p_i64(&p, t->counts.updated);
    pg_p_i64(&p, t->counts.unchanged);
    pg_p_i64(&p, t->counts.retired);
    pg_p_i64(&p, t->counts.revived);
    pg_p_i64(&p, t->counts.installs_added);
    pg_p_i64(&p, t->counts.installs_removed);
    pg_p_i64(&p, t->devices);
    pg_p_i64(&p, t->requests);
    pg_p_i64(&p, t->throttled);
    pg_p_i64(&p, t->duration_ms);
    pg_p_text(&p, t->request_id);
    pg_p_text(&p, t->response_date);
    rc = pg_q_done(g,
                   "INSERT INTO sync_tenant_result (run_id, tenant_id, client_name, status, "
                   "error_code, error_message, error_remedy, created, updated, unchanged, retired, "
                   "revived, installs_added, installs_removed, devices, requests, throttled, "
                   "duration_ms, error_request_id, error_date) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                   "$8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
                   &p, eb, "recording the tenant result", NULL);
    if (rc == ERR_NOTFOUND)
        rc = err_set(eb, ERR_NOTFOUND, "sync run %" PRId64 " does not exist", run_id);
    return pg_wend(g, own, rc, eb);
}

int
pg_run_finish(struct store *base, int64_t run_id, const char *status, const char *message,
              int64_t now, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t changed = 0;
    int own, rc;

    rc = pg_wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    pg_p_text(&p, status);
    pg_p_i64(&p, now);
    pg_p_i64(&p, run_id);
    pg_p_text(&p, message);
    rc = pg_q_done(
        g,
        "UPDATE sync_run SET status = $1, finished_at = $2, error_message = $4 WHERE id = "
        "$3",
        &p, eb, "finishing the sync run", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "sync run %" PRId64 " does not exist", run_id);
    return pg_wend(g, own, rc, eb);
}
/* ---- sync jobs (memsync worker) ---------------------------------------------------------- */

/* Leases use the database's clock, the one clock every worker on every machine shares. */
#define DB_NOW "extract(epoch from clock_timestamp())::bigint"

static void
r_job(const PGresult *r, int row, struct sync_job *j)
{
    j->id = pg_r_i64(r, row, 0, 0);
    j->run_id = pg_r_i64(r, row, 1, 0);
    j->account_id = pg_r_i64(r, row, 2, 0);
    j->integration_id = pg_r_i64(r, row, 3, 0);
    j->full = strcmp(PQgetvalue(r, row, 4), "full") == 0;
    j->attempts = (int)pg_r_i64(r, row, 5, 0);
    j->cust.tenant_id = pg_r_dup(r, row, 6);
    j->cust.name = pg_r_dup(r, row, 7);
    j->cust.domain = pg_r_dup(r, row, 8);
    j->cust.relationship = pg_r_dup(r, row, 9);
    j->cust.associated_partner_id = pg_r_dup(r, row, 10);
}

/* Finishes the run when none of its jobs is pending. The caller has already changed its own
 * job; locking the run row afterwards (same order everywhere: job, then run) makes the last of
 * two concurrent finishers see the other's committed job. */
static int
job_run_maybe_finish(struct pg *g, int64_t run_id, int64_t now, struct errbuf *eb)
{
    struct params p = {0};
    PGresult *r;
    const char *status;
    int rc;

    pg_p_i64(&p, run_id);
    rc = pg_q_done(g, "SELECT id FROM sync_run WHERE id = $1 FOR UPDATE", &p, eb,
                   "locking the sync run", NULL);
    if (rc != ERR_OK)
        return rc;
    r = pg_q(g,
             "SELECT count(*) FILTER (WHERE state IN ('queued', 'leased')), "
             "count(*) FILTER (WHERE state = 'failed' AND tenant_id IS NULL), "
             "count(*) FILTER (WHERE state = 'failed'), "
             /* a tenant given back by a stopping worker and synced later counts as synced */
             "(SELECT count(*) FROM sync_tenant_result r WHERE r.run_id = $1 AND r.status = "
             "'error' AND NOT EXISTS (SELECT 1 FROM sync_tenant_result o WHERE o.run_id = $1 AND "
             "o.tenant_id = r.tenant_id AND o.id > r.id)), "
             "(SELECT message FROM sync_job WHERE run_id = $1 AND tenant_id IS NULL AND state = "
             "'failed' LIMIT 1) "
             "FROM sync_job WHERE run_id = $1",
             &p, eb, "counting the run's jobs", &rc);
    if (r == NULL)
        return rc;
    if (pg_r_i64(r, 0, 0, 1) > 0) {
        PQclear(r);
        return ERR_OK;
    }
    status = pg_r_i64(r, 0, 1, 0) > 0                               ? "failed"
             : pg_r_i64(r, 0, 2, 0) > 0 || pg_r_i64(r, 0, 3, 0) > 0 ? "partial"
                                                                    : "ok";
    p.n = 0;
    pg_p_text(&p, status);
    pg_p_i64(&p, now);
    pg_p_i64(&p, run_id);
    pg_p_text(&p, pg_r_str(r, 0, 4)); /* why discovery failed, NULL otherwise */
    rc = pg_q_done(
        g,
        "UPDATE sync_run SET status = $1, finished_at = $2, error_message = $4 WHERE id = "
        "$3 AND status = 'running'",
        &p, eb, "finishing the sync run", NULL);
    PQclear(r);
    if (rc == ERR_OK)
        log_info("queued sync finished run=%" PRId64 " status=%s", run_id, status);
    return rc;
}

int
pg_job_enqueue(struct store *base, int64_t integration_id, int full, const struct customer *tenant,
               int64_t now, int64_t *run_id, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r = NULL;
    int64_t account = 0, pending = 0;
    int own, rc;

    rc = pg_wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, integration_id);
    /* The integration's row lock serialises enqueues of one integration across servers. */
    r = pg_q(g, "SELECT account_id FROM integration WHERE id = $1 FOR UPDATE", &p, eb,
             "queueing a sync", &rc);
    if (r == NULL)
        goto out;
    if (PQntuples(r) != 1) {
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", integration_id);
        goto out;
    }
    account = pg_r_i64(r, 0, 0, 0);
    PQclear(r);
    r = pg_q(g,
             "SELECT run_id FROM sync_job WHERE integration_id = $1 AND state IN ('queued', "
             "'leased') LIMIT 1",
             &p, eb, "queueing a sync", &rc);
    if (r == NULL)
        goto out;
    if (PQntuples(r) > 0) {
        pending = pg_r_i64(r, 0, 0, 0);
        rc = err_set(eb, ERR_EXISTS,
                     "a queued sync of integration %" PRId64 " (run %" PRId64
                     ") is not finished yet; its workers are still at it",
                     integration_id, pending);
        goto out;
    }
    PQclear(r);
    p.n = 0;
    pg_p_i64(&p, account);
    pg_p_i64(&p, integration_id);
    pg_p_text(&p, full ? "full" : "incremental");
    pg_p_i64(&p, now);
    r = pg_q(g,
             "INSERT INTO sync_run (account_id, integration_id, kind, started_at, status) VALUES "
             "($1, $2, $3, $4, 'running') RETURNING id",
             &p, eb, "starting the sync run", &rc);
    if (r == NULL)
        goto out;
    *run_id = pg_r_i64(r, 0, 0, 0);
    p.n = 0;
    pg_p_i64(&p, *run_id);
    pg_p_i64(&p, account);
    pg_p_i64(&p, integration_id);
    pg_p_text(&p, full ? "full" : "incremental");
    pg_p_i64(&p, now);
    /* One tenant: its job straight away, no discovery (tenant_id NULL: the discovery job). */
    pg_p_text(&p, tenant != NULL ? tenant->tenant_id : NULL);
    pg_p_text(&p, tenant != NULL ? tenant->name : NULL);
    pg_p_text(&p, tenant != NULL ? tenant->domain : NULL);
    pg_p_text(&p, tenant != NULL ? tenant->relationship : NULL);
    pg_p_text(&p, tenant != NULL ? tenant->associated_partner_id : NULL);
    rc = pg_q_done(
        g,
        "INSERT INTO sync_job (run_id, account_id, integration_id, kind, created_at, "
        "tenant_id, tenant_name, tenant_domain, relationship, associated_partner_id) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
        &p, eb, tenant != NULL ? "queueing the tenant's job" : "queueing the discovery job", NULL);
out:
    PQclear(r);
    return pg_wend(g, own, rc, eb);
}

/* Fails jobs whose workers died STORE_JOB_ATTEMPTS times, recording why for their tenants. */
static int
job_abandon_lapsed(struct pg *g, int64_t now, struct errbuf *eb)
{
    struct params p = {0};
    PGresult *r;
    int rc;

    pg_p_i64(&p, now);
    pg_p_i64(&p, STORE_JOB_ATTEMPTS);
    r = pg_q(g,
             "UPDATE sync_job SET state = 'failed', finished_at = $1, message = 'every worker that "
             "took this job stopped before finishing it' WHERE state = 'leased' AND "
             "lease_expires_at < " DB_NOW " AND attempts >= $2 "
             "RETURNING run_id, tenant_id, tenant_name",
             &p, eb, "failing abandoned sync jobs", &rc);
    if (r == NULL)
        return rc;
    for (int i = 0; rc == ERR_OK && i < PQntuples(r); i++) {
        struct tenant_result tr = {0};
        int64_t run = pg_r_i64(r, i, 0, 0);

        log_warn("sync job abandoned run=%" PRId64 " tenant=%s attempts=%d", run,
                 pg_r_str(r, i, 1) != NULL ? pg_r_str(r, i, 1) : "(discovery)", STORE_JOB_ATTEMPTS);
        if (pg_r_str(r, i, 1) != NULL) {
            tr.tenant_id = pg_r_str(r, i, 1);
            tr.client_name = pg_r_str(r, i, 2);
            tr.status = "error";
            tr.error_code = "worker_lost";
            tr.message = "The workers that took this tenant's sync stopped before finishing it "
                         "(each lease lapsed); its previous data is kept.";
            tr.remedy = "Check the `memsync worker` logs and the machines' memory for crashes; "
                        "the next sync retries the tenant.";
            rc = pg_run_tenant(&g->base, run, &tr, eb);
        }
        if (rc == ERR_OK)
            rc = job_run_maybe_finish(g, run, now, eb);
    }
    PQclear(r);
    return rc;
}

int
pg_job_lease(struct store *base, const char *worker, int lease_s, int64_t now, struct sync_job *out,
             int64_t *busy, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r = NULL;
    int own, rc, found = 0;

    rc = pg_wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = job_abandon_lapsed(g, now, eb);
    if (rc != ERR_OK)
        goto out;
    pg_p_text(&p, worker);
    pg_p_i64(&p, lease_s);
    pg_p_i64(&p, STORE_JOB_ATTEMPTS);
    r = pg_q(g,
             "UPDATE sync_job SET state = 'leased', attempts = attempts + 1, lease_owner = $1, "
             "lease_expires_at = " DB_NOW " + $2, leased_at = " DB_NOW
             " WHERE id = (SELECT id FROM sync_job WHERE state = "
             "'queued' OR (state = 'leased' AND lease_expires_at < " DB_NOW " AND attempts < $3) "
             "ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED) RETURNING id, run_id, account_id, "
             "integration_id, kind, attempts, tenant_id, tenant_name, tenant_domain, relationship, "
             "associated_partner_id",
             &p, eb, "leasing a sync job", &rc);
    if (r != NULL && PQntuples(r) == 1) {
        r_job(r, 0, out);
        found = 1;
    } else if (r != NULL) {
        PQclear(r);
        r = pg_q(g, "SELECT count(*) FROM sync_job WHERE state = 'leased'", NULL, eb,
                 "counting leased sync jobs", &rc);
        if (r != NULL)
            *busy = pg_r_i64(r, 0, 0, 0);
    }
out:
    PQclear(r);
    rc = pg_wend(g, own, rc, eb);
    if (rc != ERR_OK)
        sync_job_clear(out);
    else if (!found)
        rc = err_set(eb, ERR_NOTFOUND, "no sync job is waiting");
    return rc;
}

static int
lease_lost(const struct sync_job *j, struct errbuf *eb)
{
    return err_set(eb, ERR_NOTFOUND,
                   "the lease of sync job %" PRId64 " lapsed and another worker took it", j->id);
}

/* Marks worker's leased job state; ERR_NOTFOUND when the lease is no longer worker's. */
static int
job_set_state(struct pg *g, const struct sync_job *j, const char *worker, const char *state,
              const char *message, int64_t now, struct errbuf *eb)
{
    struct params p = {0};
    int64_t changed = 0;
    int rc;

    pg_p_i64(&p, j->id);
    pg_p_text(&p, worker);
    pg_p_text(&p, state);
    pg_p_i64(&p, now);
    pg_p_text(&p, message);
    rc = pg_q_done(g,
                   "UPDATE sync_job SET state = $3, finished_at = $4, message = $5 WHERE id = $1 "
                   "AND state = 'leased' AND lease_owner = $2",
                   &p, eb, "completing the sync job", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = lease_lost(j, eb);
    return rc;
}

int
pg_job_renew(struct store *base, const struct sync_job *j, const char *worker, int lease_s,
             struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t changed = 0;
    int rc;

    pg_p_i64(&p, j->id);
    pg_p_text(&p, worker);
    pg_p_i64(&p, lease_s);
    rc = pg_q_done(g,
                   "UPDATE sync_job SET lease_expires_at = " DB_NOW
                   " + $3 WHERE id = $1 AND state = "
                   "'leased' AND lease_owner = $2",
                   &p, eb, "renewing the job lease", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = lease_lost(j, eb);
    return rc;
}

int
pg_job_expand(struct store *base, const struct sync_job *j, const char *worker,
              const struct customer *c, size_t n, int64_t now, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    int own, rc;

    rc = pg_wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = job_set_state(g, j, worker, "done", NULL, now, eb);
    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        struct params p = {0};

        if (c[i].tenant_id == NULL)
            continue;
        pg_p_i64(&p, j->run_id);
        pg_p_i64(&p, j->account_id);
        pg_p_i64(&p, j->integration_id);
        pg_p_text(&p, j->full ? "full" : "incremental");
        pg_p_text(&p, c[i].tenant_id);
        pg_p_text(&p, c[i].name);
        pg_p_text(&p, c[i].domain);
        pg_p_text(&p, c[i].relationship);
        pg_p_text(&p, c[i].associated_partner_id);
        pg_p_i64(&p, now);
        rc = pg_q_done_c(
            g,
            "INSERT INTO sync_job (run_id, account_id, integration_id, kind, tenant_id, "
            "tenant_name, tenant_domain, relationship, associated_partner_id, "
            "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
            &p, eb, "queueing a tenant job", NULL);
    }
    if (rc == ERR_OK)
        rc = job_run_maybe_finish(g, j->run_id, now, eb);
    return pg_wend(g, own, rc, eb);
}

int
pg_job_finish(struct store *base, const struct sync_job *j, const char *worker, int ok,
              const char *message, int64_t now, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    int own, rc;

    rc = pg_wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = job_set_state(g, j, worker, ok ? "done" : "failed", message, now, eb);
    if (rc == ERR_OK)
        rc = job_run_maybe_finish(g, j->run_id, now, eb);
    return pg_wend(g, own, rc, eb);
}

int
pg_job_release(struct store *base, const struct sync_job *j, const char *worker, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};

    pg_p_i64(&p, j->id);
    pg_p_text(&p, worker);
    return pg_q_done(g,
                     "UPDATE sync_job SET state = 'queued', attempts = GREATEST(attempts - 1, 0), "
                     "lease_owner = NULL, lease_expires_at = NULL WHERE id = $1 AND state = "
                     "'leased' AND lease_owner = $2",
                     &p, eb, "giving the sync job back", NULL);
}

int
pg_job_unfinished(struct store *base, int64_t run_id, size_t max,
                  int (*cb)(void *arg, const char *tenant_id, const char *name, int leased,
                            int64_t elapsed_s),
                  void *arg, size_t *n, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc = ERR_OK, rows;

    *n = 0;
    pg_p_i64(&p, run_id);
    pg_p_i64(&p, (int64_t)max);
    r = pg_q(g,
             "SELECT tenant_id, tenant_name, state = 'leased', " DB_NOW
             " - COALESCE(leased_at, " DB_NOW
             ") FROM sync_job WHERE run_id = $1 AND state IN ('queued', 'leased') ORDER BY id "
             "LIMIT $2",
             &p, eb, "reading the run's unfinished jobs", &rc);
    if (r == NULL)
        return rc;
    rows = PQntuples(r);
    for (int i = 0; i < rows && rc == ERR_OK; i++) {
        int64_t el = pg_r_i64(r, i, 3, 0);

        rc = cb(arg, pg_r_str(r, i, 0), pg_r_str(r, i, 1), PQgetvalue(r, i, 2)[0] == 't',
                el > 0 ? el : 0);
    }
    *n = (size_t)rows;
    PQclear(r);
    return rc;
}
