/* pg_conn.c - the PostgreSQL backend's connection: parameters and results, statement helpers,
 * device columns, open, close, transactions and the ops table (pg_int.h). */
#include "pg_int.h"

#include "reconcile.h"

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

/* A statement failed inside the transaction: only ROLLBACK is accepted now. */
static int
in_failed_tx(struct pg *g)
{
    return PQtransactionStatus(g->conn) == PQTRANS_INERROR;
}

/* ---- parameters and results ---------------------------------------------------------------- */

void
pg_p_text(struct params *p, const char *s)
{
    ASSERT(p->n < PARAMS_MAX);
    p->v[p->n++] = s;
}

void
pg_p_i64(struct params *p, int64_t v)
{
    ASSERT(p->n < PARAMS_MAX);
    snprintf(p->num[p->n], sizeof p->num[0], "%" PRId64, v);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

void
pg_p_ts(struct params *p, int64_t v)
{
    if (v == TS_NULL)
        pg_p_text(p, NULL);
    else
        pg_p_i64(p, v);
}

int64_t
pg_r_i64(const PGresult *r, int row, int col, int64_t if_null)
{
    const char *s;
    char *end = NULL;
    long long v;

    if (PQgetisnull(r, row, col))
        return if_null;
    s = PQgetvalue(r, row, col);
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0')
        return if_null;
    return (int64_t)v;
}

char *
pg_r_dup(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    return xstrdup(PQgetvalue(r, row, col));
}

const char *
pg_r_str(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    return PQgetvalue(r, row, col);
}

static int
pg_err(struct pg *g, const PGresult *r, struct errbuf *eb, const char *what)
{
    const char *state = r != NULL ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : NULL;
    const char *msg = r != NULL ? PQresultErrorField(r, PG_DIAG_MESSAGE_PRIMARY) : NULL;

    if (msg == NULL)
        msg = PQerrorMessage(g->conn);
    if (state != NULL) {
        if (strcmp(state, "23505") == 0)
            return err_set(eb, ERR_EXISTS, "%s: already exists", what);
        if (strcmp(state, "23503") == 0)
            return err_set(eb, ERR_NOTFOUND, "%s: refers to something that does not exist", what);
        if (strcmp(state, "53100") == 0)
            return err_set(eb, ERR_IO, "%s: the disk of %s is full", what, g->label);
        if (strcmp(state, "42501") == 0)
            return err_set(eb, ERR_DENIED, "%s: permission denied on %s", what, g->label);
    }
    return err_set(eb, ERR_DB, "%s: %s: %.300s", what, g->label, msg);
}

/* Server-side prepared statement for a hot-path SQL text; NULL when it cannot be prepared (the
 * caller then sends the text). Keyed by the text's address, so only texts that live as long as
 * the connection (literals, the generated device SQL) may be cached. */
static const char *
prepared(struct pg *g, const char *sql, int nparams)
{
    PGresult *r;
    int i;

    for (i = 0; i < g->nprep; i++)
        if (g->prep_sql[i] == sql)
            return g->prep_name[i];
    if (g->nprep == PREP_MAX)
        return NULL;
    snprintf(g->prep_name[i], sizeof g->prep_name[i], "memsync_%d", i);
    r = PQprepare(g->conn, g->prep_name[i], sql, nparams, NULL);
    if (r == NULL || PQresultStatus(r) != PGRES_COMMAND_OK) {
        PQclear(r);
        return NULL;
    }
    PQclear(r);
    g->prep_sql[i] = sql;
    g->nprep++;
    return g->prep_name[i];
}

int
pg_pipe_sync(struct pg *g, struct errbuf *eb)
{
    int rc = ERR_OK, n = g->npipe;
    PGresult *r;

    if (PQpipelineStatus(g->conn) == PQ_PIPELINE_OFF)
        return ERR_OK;
    g->npipe = 0;
    if (!PQpipelineSync(g->conn))
        rc = err_set(eb, ERR_DB, "sending to %s: %.300s", g->label, PQerrorMessage(g->conn));
    for (int k = 0; k < n && rc == ERR_OK; k++) {
        ExecStatusType s;

        if ((r = PQgetResult(g->conn)) == NULL) {
            rc = err_set(eb, ERR_DB, "%s: %s: %.300s", g->pipe_what[k], g->label,
                         PQerrorMessage(g->conn));
            break;
        }
        s = PQresultStatus(r);
        /* After a failure, the rest of the queue is skipped (PIPELINE_ABORTED). */
        if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK && s != PGRES_PIPELINE_ABORTED)
            rc = pg_err(g, r, eb, g->pipe_what[k]);
        if (rc == ERR_OK && s != PGRES_PIPELINE_ABORTED && g->pipe_changed[k] != NULL) {
            const char *t = PQcmdTuples(r);
            *g->pipe_changed[k] = t[0] != '\0' ? strtoll(t, NULL, 10) : 0;
        }
        if (rc == ERR_OK && s == PGRES_TUPLES_OK && g->pipe_res[k] != NULL) {
            *g->pipe_res[k] = r;
            r = NULL;
        }
        PQclear(r);
        while ((r = PQgetResult(g->conn)) != NULL) /* the statement's end */
            PQclear(r);
    }
    /* The rest up to the sync point; a broken connection ends it with NULL. */
    while ((r = PQgetResult(g->conn)) != NULL) {
        ExecStatusType s = PQresultStatus(r);

        PQclear(r);
        if (s == PGRES_PIPELINE_SYNC)
            break;
    }
    if (!PQexitPipelineMode(g->conn) && rc == ERR_OK)
        rc = err_set(eb, ERR_DB, "%s: cannot leave pipeline mode: %.300s", g->label,
                     PQerrorMessage(g->conn));
    return rc;
}

static int pipe_send(struct pg *g, const char *sql, const struct params *p, const char *what,
                     PGresult **res, int64_t *changed, int cache, struct errbuf *eb);

int
pg_pipe_send(struct pg *g, const char *sql, const struct params *p, const char *what,
             struct errbuf *eb)
{
    return pipe_send(g, sql, p, what, NULL, NULL, 1, eb);
}

int
pg_pipe_send_r(struct pg *g, const char *sql, const struct params *p, const char *what,
               PGresult **res, int64_t *changed, struct errbuf *eb)
{
    return pipe_send(g, sql, p, what, res, changed, 0, eb);
}

/* cache: a server-side prepared statement (per-row statements); without, the planner plans
 * each execution for its values and the tables as they are now (a generic plan made while
 * the tables were small would stay a sequential scan). */
static int
pipe_send(struct pg *g, const char *sql, const struct params *p, const char *what, PGresult **res,
          int64_t *changed, int cache, struct errbuf *eb)
{
    static const struct params none;
    const char *name;
    int rc, ok;

    if (g->npipe == PIPE_MAX && (rc = pg_pipe_sync(g, eb)) != ERR_OK)
        return rc;
    if (p == NULL)
        p = &none;
    /* Statements are prepared outside the pipeline, once per connection. */
    if (PQpipelineStatus(g->conn) == PQ_PIPELINE_OFF) {
        name = cache && !in_failed_tx(g) && p->n > 0 ? prepared(g, sql, p->n) : NULL;
        if (!PQenterPipelineMode(g->conn))
            return err_set(eb, ERR_DB, "%s: cannot enter pipeline mode: %.300s", g->label,
                           PQerrorMessage(g->conn));
    } else {
        name = NULL;
        for (int i = 0; i < g->nprep && name == NULL; i++)
            if (g->prep_sql[i] == sql)
                name = g->prep_name[i];
        if (name == NULL && cache && g->nprep < PREP_MAX && p->n > 0) {
            if ((rc = pg_pipe_sync(g, eb)) != ERR_OK)
                return rc;
            return pipe_send(g, sql, p, what, res, changed, cache, eb);
        }
    }
    ok = name != NULL ? PQsendQueryPrepared(g->conn, name, p->n, p->v, NULL, NULL, 0)
                      : PQsendQueryParams(g->conn, sql, p->n, NULL, p->v, NULL, NULL, 0);
    if (!ok)
        return err_set(eb, ERR_DB, "%s: %s: %.300s", what, g->label, PQerrorMessage(g->conn));
    g->pipe_res[g->npipe] = res;
    g->pipe_changed[g->npipe] = changed;
    g->pipe_what[g->npipe++] = what;
    return ERR_OK;
}

static PGresult *
pg_run(struct pg *g, const char *sql, const struct params *p, int cache, struct errbuf *eb,
       const char *what, int *rc)
{
    const char *name;

    if (g->npipe > 0 || PQpipelineStatus(g->conn) != PQ_PIPELINE_OFF) {
        *rc = pg_pipe_sync(g, eb);
        if (*rc != ERR_OK)
            return NULL;
    }
    name = cache && p != NULL && !in_failed_tx(g) ? prepared(g, sql, p->n) : NULL;
    /* Parameterless statements (schema, BEGIN/COMMIT) may hold several commands. */
    PGresult *r = name != NULL ? PQexecPrepared(g->conn, name, p->n, p->v, NULL, NULL, 0)
                  : p == NULL  ? PQexec(g->conn, sql)
                               : PQexecParams(g->conn, sql, p->n, NULL, p->v, NULL, NULL, 0);
    ExecStatusType s = r != NULL ? PQresultStatus(r) : PGRES_FATAL_ERROR;

    if (s == PGRES_COMMAND_OK || s == PGRES_TUPLES_OK) {
        *rc = ERR_OK;
        return r;
    }
    *rc = pg_err(g, r, eb, what);
    PQclear(r);
    return NULL;
}

/* Runs sql with p; returns the result (caller PQclear()s) or NULL with the error in eb. */
PGresult *
pg_q(struct pg *g, const char *sql, const struct params *p, struct errbuf *eb, const char *what,
     int *rc)
{
    return pg_run(g, sql, p, 0, eb, what, rc);
}

PGresult *
pg_q_row(struct pg *g, const char *sql, const struct params *p, const char *missing,
         struct errbuf *eb, const char *what, int *rc)
{
    PGresult *r = pg_run(g, sql, p, 0, eb, what, rc);

    if (r == NULL || PQntuples(r) == 1)
        return r;
    PQclear(r);
    *rc = missing != NULL ? err_set(eb, ERR_NOTFOUND, "%s", missing) : ERR_NOTFOUND;
    return NULL;
}

void
pg_copy_user(const PGresult *r, struct user_row *out)
{
    out->id = pg_r_i64(r, 0, 0, 0);
    out->account_id = pg_r_i64(r, 0, 1, 0);
    out->name = pg_r_dup(r, 0, 2);
    out->role = pg_r_dup(r, 0, 3);
    out->password_hash = pg_r_dup(r, 0, 4);
    out->created_at = pg_r_i64(r, 0, 5, 0);
}

/* Same for hot-path SQL whose text lives as long as the connection. */
PGresult *
pg_qc(struct pg *g, const char *sql, const struct params *p, struct errbuf *eb, const char *what,
      int *rc)
{
    return pg_run(g, sql, p, 1, eb, what, rc);
}

static int
q_exec(struct pg *g, const char *sql, const struct params *p, int cache, struct errbuf *eb,
       const char *what, int64_t *changed)
{
    int rc;
    PGresult *r = pg_run(g, sql, p, cache, eb, what, &rc);

    if (r != NULL && changed != NULL) {
        const char *t = PQcmdTuples(r);
        *changed = t[0] != '\0' ? strtoll(t, NULL, 10) : 0;
    }
    PQclear(r);
    return rc;
}

int
pg_q_done(struct pg *g, const char *sql, const struct params *p, struct errbuf *eb,
          const char *what, int64_t *changed)
{
    return q_exec(g, sql, p, 0, eb, what, changed);
}

int
pg_q_done_c(struct pg *g, const char *sql, const struct params *p, struct errbuf *eb,
            const char *what, int64_t *changed)
{
    return q_exec(g, sql, p, 1, eb, what, changed);
}

int
pg_in_tx(struct pg *g)
{
    PGTransactionStatusType t = PQtransactionStatus(g->conn);

    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

int
pg_wbegin(struct pg *g, int *own, struct errbuf *eb)
{
    *own = 0;
    if (pg_in_tx(g))
        return ERR_OK;
    if (pg_q_done(g, "BEGIN", NULL, eb, "starting a write", NULL) != ERR_OK)
        return eb != NULL ? eb->code : ERR_DB;
    *own = 1;
    return ERR_OK;
}

void
pg_rollback(struct pg *g)
{
    (void)pg_pipe_sync(g, NULL);
    if (pg_in_tx(g))
        PQclear(PQexec(g->conn, "ROLLBACK"));
}

int
pg_wend(struct pg *g, int own, int rc, struct errbuf *eb)
{
    if (!own)
        return rc;
    if (rc == ERR_OK) {
        rc = pg_q_done(g, "COMMIT", NULL, eb, "committing", NULL);
        if (rc == ERR_OK)
            return rc;
    }
    pg_rollback(g);
    return rc;
}

/* ---- device columns ---------------------------------------------------------------------- */

void
pg_p_device(struct params *p, const struct device *d)
{
    for (size_t i = 0; i < device_field_count; i++) {
        const struct device_field *f = &device_fields[i];
        const void *v = (const char *)d + f->offset;

        switch (f->kind) {
        case DF_STR:
            pg_p_text(p, *(char *const *)v);
            break;
        case DF_INT64:
            if (*(const int64_t *)v < 0)
                pg_p_text(p, NULL);
            else
                pg_p_i64(p, *(const int64_t *)v);
            break;
        case DF_BOOL:
            if (*(const int *)v < 0)
                pg_p_text(p, NULL);
            else
                pg_p_i64(p, *(const int *)v != 0);
            break;
        case DF_TS:
            pg_p_ts(p, *(const int64_t *)v);
            break;
        case DF_TYPE:
            pg_p_text(p, device_type_name(*(const enum device_type *)v));
            break;
        }
    }
}

void
pg_r_device(const PGresult *r, int row, int first, struct device *d)
{
    device_init(d);
    for (size_t i = 0; i < device_field_count; i++) {
        const struct device_field *f = &device_fields[i];
        void *v = (char *)d + f->offset;
        int c = first + (int)i;

        switch (f->kind) {
        case DF_STR:
            *(char **)v = pg_r_dup(r, row, c);
            break;
        case DF_INT64:
            *(int64_t *)v = pg_r_i64(r, row, c, -1);
            break;
        case DF_BOOL:
            *(int *)v = (int)pg_r_i64(r, row, c, -1);
            break;
        case DF_TS:
            *(int64_t *)v = pg_r_i64(r, row, c, TS_NULL);
            break;
        case DF_TYPE: {
            enum device_type t = DEVICE_UNKNOWN;
            const char *s = pg_r_str(r, row, c);
            if (s != NULL && device_type_parse(s, &t) != 0)
                t = DEVICE_UNKNOWN;
            *(enum device_type *)v = t;
            break;
        }
        }
    }
}

static int
build_device_sql(struct pg *g, struct errbuf *eb)
{
    if (device_field_count + 10 > PARAMS_MAX)
        return err_set(eb, ERR_INVAL, "too many device fields for the PostgreSQL backend");
    return store_device_sql_build(&g->dsql, '$', " FOR UPDATE", eb);
}

/* ---- open / close / transactions -------------------------------------------------------- */

static const struct store_ops pg_ops;

static void
pg_close(struct store *base)
{
    struct pg *g = (struct pg *)base;

    if (g->conn != NULL)
        pg_rollback(g);
    reconcile_reset(base); /* while the connection is there: its reset reads the pipeline */
    PQfinish(g->conn);
    g->conn = NULL;
    free(g->label);
    store_device_sql_free(&g->dsql);
    free(g->rec_devs_sql);
    free(g);
}

int
store_pg_open(struct store **out, const char *url, struct errbuf *eb)
{
    struct pg *g = NULL;
    int64_t app, ver, tables;
    int rc;

    *out = NULL;
    g = xcalloc(1, sizeof *g);
    g->base.ops = &pg_ops;
    rc = build_device_sql(g, eb);
    if (rc != ERR_OK)
        goto out;
    g->conn = PQconnectdb(url);
    if (g->conn == NULL || PQstatus(g->conn) != CONNECTION_OK) {
        const char *m = g->conn != NULL ? PQerrorMessage(g->conn) : "out of memory";
        size_t n = strcspn(m, "\n");
        rc = err_set(eb, ERR_DB, "cannot connect to PostgreSQL: %.*s; check the --db URL",
                     (int)(n > 300 ? 300 : n), m);
        goto out;
    }
    g->label = xasprintf("PostgreSQL database %s on %s", PQdb(g->conn),
                         PQhost(g->conn) != NULL ? PQhost(g->conn) : "localhost");
    PQclear(PQexec(g->conn, "SET client_min_messages = warning"));
    rc = pg_read_identity(g, &app, &ver, &tables, eb);
    if (rc != ERR_OK)
        goto out;
    if ((ver < 0 && tables > 0) || (ver >= 0 && app != STORE_APPLICATION_ID)) {
        rc = err_set(eb, ERR_DB,
                     "%s has tables but is not a memsync database; point --db at an empty "
                     "database (nothing was changed)",
                     g->label);
        goto out;
    }
    if (ver > STORE_SCHEMA_VERSION) {
        rc = err_set(eb, ERR_DB,
                     "%s was written by a newer memsync (schema %" PRId64
                     ", this build knows up to %d); upgrade memsync to use it (nothing was "
                     "changed)",
                     g->label, ver, STORE_SCHEMA_VERSION);
        goto out;
    }
    rc = pg_migrate(g, eb);
    if (rc != ERR_OK)
        goto out;
    *out = &g->base;
    g = NULL;
out:
    if (g != NULL)
        pg_close(&g->base);
    return rc;
}

static int
pg_tx_begin(struct store *base, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;

    if (pg_in_tx(g))
        return err_set(eb, ERR_INVAL, "a transaction is already open");
    return pg_q_done(g, "BEGIN", NULL, eb, "starting a transaction", NULL);
}

static int
pg_tx_commit(struct store *base, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    int rc;

    if (!pg_in_tx(g))
        return err_set(eb, ERR_INVAL, "no transaction is open");
    rc = pg_q_done(g, "COMMIT", NULL, eb, "committing", NULL);
    if (rc != ERR_OK)
        pg_rollback(g);
    return rc;
}

static void
pg_tx_rollback(struct store *base)
{
    pg_rollback((struct pg *)base);
}

static const struct store_ops pg_ops = {
    .name = "postgresql",
    .close = pg_close,
    .tx_begin = pg_tx_begin,
    .tx_commit = pg_tx_commit,
    .tx_rollback = pg_tx_rollback,
    .account_ensure = pg_account_ensure,
    .integration_insert = pg_integration_insert,
    .integration_get = pg_integration_get,
    .integration_list = pg_integration_list,
    .integration_set_secret = pg_integration_set_secret,
    .integration_set_expiry = pg_integration_set_expiry,
    .integration_delete = pg_integration_delete,
    .clients_each = pg_clients_each,
    .client_fail = pg_client_fail,
    .client_update = pg_client_update,
    .rec = &pg_reconcile_ops,
    .reconcile_begin = reconcile_begin,
    .reconcile_device = reconcile_device,
    .reconcile_installs = reconcile_installs,
    .reconcile_commit = reconcile_commit,
    .retire_preview = pg_retire_preview,
    .reconcile_rollback = reconcile_rollback,
    .assets_each = pg_assets_each,
    .assets_count = pg_assets_count,
    .device_checkins = pg_device_checkins,
    .software_each = pg_software_each,
    .asset_changes_each = pg_asset_changes_each,
    .changes_each = pg_changes_each,
    .sql_exec = pg_sql_exec,
    .sql_query = pg_sql_query,
    .run_start = pg_run_start,
    .run_tenant = pg_run_tenant,
    .run_finish = pg_run_finish,
    .user_insert = pg_user_insert,
    .user_get = pg_user_get,
    .user_set_password = pg_user_set_password,
    .user_delete = pg_user_delete,
    .user_count = pg_user_count,
    .session_insert = pg_session_insert,
    .session_user = pg_session_user,
    .session_delete = pg_session_delete,
    .apikey_insert = pg_apikey_insert,
    .apikey_find = pg_apikey_find,
    .apikey_touch = pg_apikey_touch,
    .pref_get = pg_pref_get,
    .pref_set = pg_pref_set,
    .apikey_revoke = pg_apikey_revoke,
    .integration_update = pg_integration_update,
    .list_each = pg_list_each,
    .list_count = pg_list_count,
    .asset_get = pg_asset_get,
    .job_enqueue = pg_job_enqueue,
    .job_lease = pg_job_lease,
    .job_renew = pg_job_renew,
    .job_expand = pg_job_expand,
    .job_finish = pg_job_finish,
    .job_release = pg_job_release,
    .job_unfinished = pg_job_unfinished,
    .data_version = pg_data_version,
    .totp_get = pg_totp_get,
    .totp_begin = pg_totp_begin,
    .totp_enrol = pg_totp_enrol,
    .totp_use_step = pg_totp_use_step,
    .totp_recovery_use = pg_totp_recovery_use,
    .totp_clear = pg_totp_clear,
    .totp_secrets_each = pg_totp_secrets_each,
    .totp_set_sealed = pg_totp_set_sealed,
    .account_require_totp = pg_account_require_totp,
    .sso = &pg_sso_ops,
};
