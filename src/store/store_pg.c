/* store_pg.c - the PostgreSQL backend of store.h (libpq, parameterised SQL only).
 *
 * Same schema and rules as the SQLite backend (docs/STORE.md). The schema identity lives in a
 * memsync_meta table (application_id, schema_version) instead of SQLite's header pragmas;
 * migrations run in one transaction under an advisory lock. Messages name the database by
 * host and name, never by URL (it may carry a password).
 */
#include "store.h"

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

#define SQL_MAX    (256 * 1024)
#define PARAMS_MAX 64
#define PREP_MAX   16

struct pg {
    struct store base;
    PGconn *conn;
    char *label;                  /* "database NAME on HOST" for messages */
    struct store_device_sql dsql; /* generated from device_fields (store.c) */
    int rec_active;
    int rec_failed; /* a device or install step failed: commit must not happen */
    int64_t rec_account, rec_integration, rec_client, rec_gen, rec_now;
    char *rec_tenant;
    struct reconcile_counts rec_counts;
    /* hot-path prepared statements */
    const char *prep_sql[PREP_MAX];
    char prep_name[PREP_MAX][16];
    int nprep;
};

struct params {
    const char *v[PARAMS_MAX];
    char num[PARAMS_MAX][24];
    int n;
};

/* A statement failed inside the transaction: only ROLLBACK is accepted now. */
static int
in_failed_tx(struct pg *g)
{
    return PQtransactionStatus(g->conn) == PQTRANS_INERROR;
}

static const char *const integ_cols =
    "id, account_id, name, partner_tenant_id, partner_app_id, sync_app_id, "
    "partner_secret_sealed, sync_secret_sealed, partner_secret_hint, sync_secret_hint, "
    "partner_secret_expires, sync_secret_expires, tenant_source, sync_interval, created_at, "
    "updated_at, cloud, partner_secret_expiry_source, sync_secret_expiry_source";

/* ---- parameters and results ---------------------------------------------------------------- */

static void
p_text(struct params *p, const char *s)
{
    ASSERT(p->n < PARAMS_MAX);
    p->v[p->n++] = s;
}

static void
p_i64(struct params *p, int64_t v)
{
    ASSERT(p->n < PARAMS_MAX);
    snprintf(p->num[p->n], sizeof p->num[0], "%" PRId64, v);
    p->v[p->n] = p->num[p->n];
    p->n++;
}

static void
p_ts(struct params *p, int64_t v)
{
    if (v == TS_NULL)
        p_text(p, NULL);
    else
        p_i64(p, v);
}

static int64_t
r_i64(const PGresult *r, int row, int col, int64_t if_null)
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

static char *
r_dup(const PGresult *r, int row, int col)
{
    if (PQgetisnull(r, row, col))
        return NULL;
    return xstrdup(PQgetvalue(r, row, col));
}

static const char *
r_str(const PGresult *r, int row, int col)
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

static PGresult *
run(struct pg *g, const char *sql, const struct params *p, int cache, struct errbuf *eb,
    const char *what, int *rc)
{
    const char *name = cache && p != NULL && !in_failed_tx(g) ? prepared(g, sql, p->n) : NULL;
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
static PGresult *
q(struct pg *g, const char *sql, const struct params *p, struct errbuf *eb, const char *what,
  int *rc)
{
    return run(g, sql, p, 0, eb, what, rc);
}

/* Same for hot-path SQL whose text lives as long as the connection. */
static PGresult *
qc(struct pg *g, const char *sql, const struct params *p, struct errbuf *eb, const char *what,
   int *rc)
{
    return run(g, sql, p, 1, eb, what, rc);
}

static int
q_exec(struct pg *g, const char *sql, const struct params *p, int cache, struct errbuf *eb,
       const char *what, int64_t *changed)
{
    int rc;
    PGresult *r = run(g, sql, p, cache, eb, what, &rc);

    if (r != NULL && changed != NULL) {
        const char *t = PQcmdTuples(r);
        *changed = t[0] != '\0' ? strtoll(t, NULL, 10) : 0;
    }
    PQclear(r);
    return rc;
}

static int
q_done(struct pg *g, const char *sql, const struct params *p, struct errbuf *eb, const char *what,
       int64_t *changed)
{
    return q_exec(g, sql, p, 0, eb, what, changed);
}

static int
q_done_c(struct pg *g, const char *sql, const struct params *p, struct errbuf *eb, const char *what,
         int64_t *changed)
{
    return q_exec(g, sql, p, 1, eb, what, changed);
}

static int
in_tx(struct pg *g)
{
    PGTransactionStatusType t = PQtransactionStatus(g->conn);

    return t == PQTRANS_INTRANS || t == PQTRANS_INERROR || t == PQTRANS_ACTIVE;
}

static int
wbegin(struct pg *g, int *own, struct errbuf *eb)
{
    *own = 0;
    if (in_tx(g))
        return ERR_OK;
    if (q_done(g, "BEGIN", NULL, eb, "starting a write", NULL) != ERR_OK)
        return eb != NULL ? eb->code : ERR_DB;
    *own = 1;
    return ERR_OK;
}

static void
rollback(struct pg *g)
{
    if (in_tx(g))
        PQclear(PQexec(g->conn, "ROLLBACK"));
}

static int
wend(struct pg *g, int own, int rc, struct errbuf *eb)
{
    if (!own)
        return rc;
    if (rc == ERR_OK) {
        rc = q_done(g, "COMMIT", NULL, eb, "committing", NULL);
        if (rc == ERR_OK)
            return rc;
    }
    rollback(g);
    return rc;
}

/* ---- device columns ---------------------------------------------------------------------- */

static void
p_device(struct params *p, const struct device *d)
{
    for (size_t i = 0; i < device_field_count; i++) {
        const struct device_field *f = &device_fields[i];
        const void *v = (const char *)d + f->offset;

        switch (f->kind) {
        case DF_STR:
            p_text(p, *(char *const *)v);
            break;
        case DF_INT64:
            if (*(const int64_t *)v < 0)
                p_text(p, NULL);
            else
                p_i64(p, *(const int64_t *)v);
            break;
        case DF_BOOL:
            if (*(const int *)v < 0)
                p_text(p, NULL);
            else
                p_i64(p, *(const int *)v != 0);
            break;
        case DF_TS:
            p_ts(p, *(const int64_t *)v);
            break;
        case DF_TYPE:
            p_text(p, device_type_name(*(const enum device_type *)v));
            break;
        }
    }
}

static void
r_device(const PGresult *r, int row, int first, struct device *d)
{
    device_init(d);
    for (size_t i = 0; i < device_field_count; i++) {
        const struct device_field *f = &device_fields[i];
        void *v = (char *)d + f->offset;
        int c = first + (int)i;

        switch (f->kind) {
        case DF_STR:
            *(char **)v = r_dup(r, row, c);
            break;
        case DF_INT64:
            *(int64_t *)v = r_i64(r, row, c, -1);
            break;
        case DF_BOOL:
            *(int *)v = (int)r_i64(r, row, c, -1);
            break;
        case DF_TS:
            *(int64_t *)v = r_i64(r, row, c, TS_NULL);
            break;
        case DF_TYPE: {
            enum device_type t = DEVICE_UNKNOWN;
            const char *s = r_str(r, row, c);
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

/* ---- schema ------------------------------------------------------------------------------ */

#define PK "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"

static const char schema_v1_head[] =
    "CREATE TABLE account ("
    " id " PK ","
    " name TEXT NOT NULL UNIQUE,"
    " created_at BIGINT NOT NULL);"
    "CREATE TABLE integration ("
    " id " PK ","
    " account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " name TEXT NOT NULL,"
    " partner_tenant_id TEXT NOT NULL,"
    " partner_app_id TEXT NOT NULL,"
    " sync_app_id TEXT NOT NULL,"
    " partner_secret_sealed TEXT,"
    " sync_secret_sealed TEXT,"
    " partner_secret_hint TEXT,"
    " sync_secret_hint TEXT,"
    " partner_secret_expires BIGINT,"
    " sync_secret_expires BIGINT,"
    " tenant_source TEXT NOT NULL DEFAULT 'partner_center'"
    "  CHECK (tenant_source IN ('partner_center', 'contracts', 'gdap')),"
    " sync_interval BIGINT NOT NULL DEFAULT 21600,"
    " created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL,"
    " UNIQUE (account_id, name));"
    "CREATE TABLE client ("
    " id " PK ","
    " account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " integration_id BIGINT NOT NULL REFERENCES integration(id) ON DELETE CASCADE,"
    " tenant_id TEXT NOT NULL,"
    " name TEXT,"
    " default_domain TEXT,"
    " source TEXT NOT NULL DEFAULT 'partner_center',"
    " included SMALLINT NOT NULL DEFAULT 1,"
    " name_override TEXT,"
    " status TEXT NOT NULL DEFAULT 'never' CHECK (status IN ('ok', 'error', 'never')),"
    " error_code TEXT,"
    " error_message TEXT,"
    " error_remedy TEXT,"
    " last_sync_at BIGINT,"
    " device_count BIGINT NOT NULL DEFAULT 0,"
    " software_count BIGINT NOT NULL DEFAULT 0,"
    " sync_gen BIGINT NOT NULL DEFAULT 0,"
    " created_at BIGINT NOT NULL,"
    " updated_at BIGINT NOT NULL,"
    " UNIQUE (integration_id, tenant_id));"
    "CREATE INDEX client_account ON client(account_id);"
    "CREATE TABLE hardware_asset ("
    " id " PK ","
    " account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " client_id BIGINT NOT NULL REFERENCES client(id) ON DELETE CASCADE,"
    " integration_id BIGINT NOT NULL REFERENCES integration(id) ON DELETE CASCADE,"
    " tenant_id TEXT NOT NULL,"
    " intune_device_id TEXT NOT NULL,";

static const char schema_v1_tail[] =
    " serial_key TEXT,"
    " first_synced_at BIGINT NOT NULL,"
    " last_synced_at BIGINT NOT NULL,"
    " retired_at BIGINT,"
    " last_seen_gen BIGINT NOT NULL,"
    " UNIQUE (integration_id, tenant_id, intune_device_id));"
    "CREATE INDEX hardware_asset_client ON hardware_asset(client_id, retired_at);"
    "CREATE INDEX hardware_asset_serial ON hardware_asset(serial_key, account_id);"
    "CREATE INDEX hardware_asset_account ON hardware_asset(account_id, id);"
    "CREATE TABLE asset_change ("
    " id " PK ","
    " account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " asset_id BIGINT NOT NULL REFERENCES hardware_asset(id) ON DELETE CASCADE,"
    " at BIGINT NOT NULL,"
    " field TEXT NOT NULL,"
    " old_value TEXT,"
    " new_value TEXT);"
    "CREATE INDEX asset_change_asset ON asset_change(asset_id, at);"
    "CREATE TABLE software_title ("
    " id " PK ","
    " account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " client_id BIGINT NOT NULL REFERENCES client(id) ON DELETE CASCADE,"
    " name TEXT NOT NULL,"
    " version TEXT NOT NULL DEFAULT '',"
    " publisher TEXT NOT NULL DEFAULT '',"
    " platform TEXT NOT NULL DEFAULT '',"
    " size_bytes BIGINT,"
    " UNIQUE (client_id, name, version, publisher, platform));"
    "CREATE TABLE software_install ("
    " id " PK ","
    " account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " asset_id BIGINT NOT NULL REFERENCES hardware_asset(id) ON DELETE CASCADE,"
    " title_id BIGINT NOT NULL REFERENCES software_title(id) ON DELETE CASCADE,"
    " first_seen_at BIGINT NOT NULL,"
    " last_seen_at BIGINT NOT NULL,"
    " removed_at BIGINT,"
    " last_seen_gen BIGINT NOT NULL,"
    " UNIQUE (asset_id, title_id));"
    "CREATE INDEX software_install_title ON software_install(title_id);"
    "CREATE TABLE sync_run ("
    " id " PK ","
    " account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " integration_id BIGINT NOT NULL REFERENCES integration(id) ON DELETE CASCADE,"
    " kind TEXT NOT NULL CHECK (kind IN ('full', 'incremental')),"
    " started_at BIGINT NOT NULL,"
    " finished_at BIGINT,"
    " status TEXT NOT NULL"
    "  CHECK (status IN ('running', 'ok', 'partial', 'failed', 'interrupted')));"
    "CREATE INDEX sync_run_integration ON sync_run(integration_id, id);"
    "CREATE TABLE sync_tenant_result ("
    " id " PK ","
    " run_id BIGINT NOT NULL REFERENCES sync_run(id) ON DELETE CASCADE,"
    " tenant_id TEXT NOT NULL,"
    " client_name TEXT,"
    " status TEXT NOT NULL CHECK (status IN ('ok', 'error')),"
    " error_code TEXT,"
    " error_message TEXT,"
    " error_remedy TEXT,"
    " created BIGINT NOT NULL, updated BIGINT NOT NULL, unchanged BIGINT NOT NULL,"
    " retired BIGINT NOT NULL, revived BIGINT NOT NULL,"
    " installs_added BIGINT NOT NULL, installs_removed BIGINT NOT NULL,"
    " devices BIGINT NOT NULL, requests BIGINT NOT NULL, throttled BIGINT NOT NULL,"
    " duration_ms BIGINT NOT NULL);"
    "CREATE INDEX sync_tenant_result_run ON sync_tenant_result(run_id);";

/* Migration 2: sign-in and API access (users, sessions, API keys) and list indexes. */
static const char schema_v2[] =
    "CREATE TABLE app_user ("
    " id " PK ","
    " account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " name TEXT NOT NULL UNIQUE,"
    " role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),"
    " password_hash TEXT NOT NULL,"
    " created_at BIGINT NOT NULL);"
    "CREATE TABLE user_session ("
    " id " PK ","
    " token_hash TEXT NOT NULL UNIQUE,"
    " user_id BIGINT NOT NULL REFERENCES app_user(id) ON DELETE CASCADE,"
    " created_at BIGINT NOT NULL,"
    " expires_at BIGINT NOT NULL);"
    "CREATE TABLE api_key ("
    " id " PK ","
    " account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " name TEXT NOT NULL,"
    " scope TEXT NOT NULL CHECK (scope IN ('read', 'admin')),"
    " key_hash TEXT NOT NULL UNIQUE,"
    " prefix TEXT NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " last_used_at BIGINT,"
    " revoked_at BIGINT);"
    "CREATE INDEX software_title_account ON software_title(account_id, name);"
    "CREATE INDEX sync_run_account ON sync_run(account_id, id);"
    "CREATE INDEX hardware_asset_os ON hardware_asset(account_id, os_name, retired_at);"
    "CREATE INDEX hardware_asset_checkin ON hardware_asset(account_id, retired_at, "
    "last_check_in_at, id);"
    "CREATE INDEX hardware_asset_name ON hardware_asset(account_id, retired_at, name, id);";

/* Migration 3: sync jobs that `memsync worker` processes lease (docs/DEPLOY.md "Workers"). */
#define SCHEMA_JOBS 3
static const char schema_jobs[] =
    "CREATE TABLE sync_job ("
    " id " PK ","
    " run_id BIGINT NOT NULL REFERENCES sync_run(id) ON DELETE CASCADE,"
    " account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " integration_id BIGINT NOT NULL REFERENCES integration(id) ON DELETE CASCADE,"
    " kind TEXT NOT NULL CHECK (kind IN ('full', 'incremental')),"
    " tenant_id TEXT,"
    " tenant_name TEXT,"
    " tenant_domain TEXT,"
    " relationship TEXT,"
    " associated_partner_id TEXT,"
    " state TEXT NOT NULL DEFAULT 'queued' CHECK (state IN ('queued', 'leased', 'done', "
    "'failed')),"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " lease_owner TEXT,"
    " lease_expires_at BIGINT,"
    " message TEXT,"
    " created_at BIGINT NOT NULL,"
    " finished_at BIGINT);"
    "CREATE INDEX sync_job_pending ON sync_job(id) WHERE state IN ('queued', 'leased');"
    "CREATE INDEX sync_job_run ON sync_job(run_id);"
    "CREATE INDEX sync_job_integration ON sync_job(integration_id) WHERE state IN ('queued', "
    "'leased');";
/* Migration 4: the data version behind the count cache, bumped at commit (a deferred trigger,
 * so concurrent tenant transactions hold its row lock only while committing), and indexes for
 * one client's list sorted by check-in or name, replacing hardware_asset_client (their prefix). */
static const char schema_v4[] =
    "ALTER TABLE sync_run ADD COLUMN error_message TEXT;"
    "CREATE TABLE data_version ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " v BIGINT NOT NULL);"
    /* A random start: a database recreated at the same URL never repeats a version. */
    "INSERT INTO data_version (id, v) VALUES (1, floor(random() * 70368744177664)::bigint);"
    "CREATE FUNCTION memsync_data_changed() RETURNS trigger LANGUAGE plpgsql AS "
    "'BEGIN UPDATE data_version SET v = v + 1 WHERE id = 1; RETURN NULL; END';"
    "CREATE CONSTRAINT TRIGGER client_version AFTER INSERT OR UPDATE OR DELETE ON client"
    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION memsync_data_changed();"
    "CREATE CONSTRAINT TRIGGER integration_version AFTER INSERT OR UPDATE OR DELETE"
    " ON integration DEFERRABLE INITIALLY DEFERRED FOR EACH ROW"
    " EXECUTE FUNCTION memsync_data_changed();"
    /* The OS after the unique id changes no order but lets an OS filter skip rows from the
     * index alone, before reading them. */
    "DROP INDEX hardware_asset_checkin;"
    "CREATE INDEX hardware_asset_checkin ON hardware_asset(account_id, retired_at, "
    "last_check_in_at, id, os_name);"
    "DROP INDEX hardware_asset_name;"
    "CREATE INDEX hardware_asset_name ON hardware_asset(account_id, retired_at, name, id, "
    "os_name);"
    "DROP INDEX hardware_asset_client;"
    "CREATE INDEX hardware_asset_client_checkin ON hardware_asset(client_id, retired_at, "
    "last_check_in_at, id);"
    "CREATE INDEX hardware_asset_client_name ON hardware_asset(client_id, retired_at, name, id);";

static char *
schema_v1(void)
{
    struct buf b;
    static const char *const types[] = {
        [DF_STR] = "TEXT",  [DF_INT64] = "BIGINT", [DF_BOOL] = "SMALLINT",
        [DF_TS] = "BIGINT", [DF_TYPE] = "TEXT",
    };

    buf_init(&b, SQL_MAX);
    ASSERT(buf_addstr(&b, schema_v1_head) == ERR_OK);
    for (size_t i = 0; i < device_field_count; i++)
        ASSERT(buf_printf(&b, " %s %s,", device_fields[i].name, types[device_fields[i].kind]) ==
               ERR_OK);
    ASSERT(buf_addstr(&b, schema_v1_tail) == ERR_OK);
    return buf_detach(&b, NULL);
}

/* Reads the schema identity: *app and *ver are -1 when memsync_meta is absent. */
static int
read_identity(struct pg *g, int64_t *app, int64_t *ver, int64_t *tables, struct errbuf *eb)
{
    PGresult *r;
    int rc;

    *app = *ver = -1;
    r = q(g,
          "SELECT (SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = "
          "current_schema()), to_regclass('memsync_meta') IS NOT NULL",
          NULL, eb, "reading the database catalog", &rc);
    if (r == NULL)
        return rc;
    *tables = r_i64(r, 0, 0, 0);
    if (strcmp(PQgetvalue(r, 0, 1), "t") != 0) {
        PQclear(r);
        return ERR_OK;
    }
    PQclear(r);
    r = q(g,
          "SELECT (SELECT value FROM memsync_meta WHERE key = 'application_id'), "
          "(SELECT value FROM memsync_meta WHERE key = 'schema_version')",
          NULL, eb, "reading the schema version", &rc);
    if (r == NULL)
        return rc;
    *app = r_i64(r, 0, 0, 0);
    *ver = r_i64(r, 0, 1, 0);
    PQclear(r);
    return ERR_OK;
}

/* Migration 5: software_install keyed by (asset_id, title_id), its unique key until now, without
 * the id column nothing used: an install is written into one index fewer. */
static const char schema_v5[] =
    "ALTER TABLE software_install DROP COLUMN id;"
    "ALTER TABLE software_install DROP CONSTRAINT software_install_asset_id_title_id_key;"
    "ALTER TABLE software_install ADD PRIMARY KEY (asset_id, title_id);";

/* Migration 9: the retirement policy's marks and the client's warning (store_sqlite.c's
 * schema_v9). */
static const char schema_v9[] =
    "ALTER TABLE hardware_asset ADD COLUMN missing_since BIGINT;"
    "ALTER TABLE hardware_asset ADD COLUMN missing_syncs INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX hardware_asset_missing ON hardware_asset(client_id) "
    "WHERE missing_since IS NOT NULL AND retired_at IS NULL;"
    "ALTER TABLE client ADD COLUMN warning_code TEXT;"
    "ALTER TABLE client ADD COLUMN warning_message TEXT;"
    "ALTER TABLE client ADD COLUMN warning_remedy TEXT;";

/* Migration 6: software_title.device_count, recounted at each tenant commit that changed an
 * install or a device's retirement (the API's software lists read it instead of counting). */
static const char schema_v6[] =
    "ALTER TABLE software_title ADD COLUMN device_count BIGINT NOT NULL DEFAULT 0;"
    "UPDATE software_title t SET device_count = x.n FROM (SELECT i.title_id, count(*) AS n "
    "FROM software_install i JOIN hardware_asset h ON h.id = i.asset_id "
    "WHERE i.removed_at IS NULL AND h.retired_at IS NULL GROUP BY i.title_id) x "
    "WHERE x.title_id = t.id;";

/* Migration 10: Microsoft's request id and date of a tenant's failure, for its support. */
static const char schema_v10[] =
    "ALTER TABLE client ADD COLUMN error_request_id TEXT, ADD COLUMN error_date TEXT;"
    "ALTER TABLE sync_tenant_result ADD COLUMN error_request_id TEXT, "
    "ADD COLUMN error_date TEXT;";

static int
migrate(struct pg *g, struct errbuf *eb)
{
    struct params p = {0};
    int64_t app, ver, tables;
    char *sql = NULL;
    int rc;

    rc = q_done(g, "BEGIN", NULL, eb, "starting the schema migration", NULL);
    if (rc != ERR_OK)
        return rc;
    p_i64(&p, STORE_APPLICATION_ID);
    rc = q_done(g, "SELECT pg_advisory_xact_lock($1)", &p, eb, "locking the schema", NULL);
    if (rc == ERR_OK)
        rc = read_identity(g, &app, &ver, &tables, eb);
    if (rc != ERR_OK || ver == STORE_SCHEMA_VERSION)
        goto out;
    if (ver < 1) {
        sql = schema_v1();
        rc = q_done(g, sql, NULL, eb, "creating the schema", NULL);
        if (rc == ERR_OK)
            rc =
                q_done(g, "CREATE TABLE memsync_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)",
                       NULL, eb, "creating the schema", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 2) {
        rc = q_done(g, schema_v2, NULL, eb, "adding users, sessions and API keys", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < SCHEMA_JOBS) {
        rc = q_done(g, schema_jobs, NULL, eb, "adding sync jobs", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 4) {
        rc = q_done(g, schema_v4, NULL, eb, "adding the data version and list indexes", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 5) {
        rc = q_done(g, schema_v5, NULL, eb, "keying software_install by asset and title", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 6) {
        rc = q_done(g, schema_v6, NULL, eb, "counting devices per software title", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    /* Migrations 7 and 8 (the client in SQLite's list indexes, for its lazy list rows; its
     * index of each OS's devices by name, fed by the search indexer) change nothing here. */
    if (ver < 9) {
        rc = q_done(g, schema_v9, NULL, eb, "adding missing marks and client warnings", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 10) {
        rc = q_done(g, schema_v10, NULL, eb, "adding Microsoft's request ids to failures", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    /* Migration 11: the integration's cloud and where each secret's expiry came from. */
    if (ver < 11) {
        rc = q_done(g,
                    "ALTER TABLE integration ADD COLUMN cloud TEXT NOT NULL DEFAULT 'global';"
                    "ALTER TABLE integration ADD COLUMN partner_secret_expiry_source TEXT;"
                    "ALTER TABLE integration ADD COLUMN sync_secret_expiry_source TEXT",
                    NULL, eb, "adding the integration's cloud and expiry sources", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    /* Migration 12: API keys expire (NULL: never, as every key made before). */
    if (ver < 12) {
        rc = q_done(g, "ALTER TABLE api_key ADD COLUMN expires_at BIGINT", NULL, eb,
                    "adding API key expiry", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    /* Migration 13: the second factor of local users (store_sqlite.c's schema_v13). */
    if (ver < 13) {
        rc = q_done(g,
                    "ALTER TABLE app_user ADD COLUMN totp_secret_sealed TEXT,"
                    " ADD COLUMN totp_enrolled_at BIGINT, ADD COLUMN totp_last_step BIGINT;"
                    "ALTER TABLE account ADD COLUMN require_totp SMALLINT NOT NULL DEFAULT 0;"
                    "CREATE TABLE user_recovery_code ("
                    " id " PK ","
                    " user_id BIGINT NOT NULL REFERENCES app_user(id) ON DELETE CASCADE,"
                    " code_hash TEXT NOT NULL,"
                    " created_at BIGINT NOT NULL,"
                    " used_at BIGINT);"
                    "CREATE INDEX user_recovery_code_user ON user_recovery_code(user_id)",
                    NULL, eb, "adding the second factor of local users", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    p.n = 0;
    p_i64(&p, STORE_APPLICATION_ID);
    p_i64(&p, STORE_SCHEMA_VERSION);
    rc = q_done(g,
                "INSERT INTO memsync_meta (key, value) VALUES ('application_id', $1), "
                "('schema_version', $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                &p, eb, "recording the schema version", NULL);
    if (rc == ERR_OK)
        log_info("database migrated backend=postgresql from=%" PRId64 " to=%d", ver < 0 ? 0 : ver,
                 STORE_SCHEMA_VERSION);
out:
    free(sql);
    if (rc == ERR_OK)
        rc = q_done(g, "COMMIT", NULL, eb, "committing the schema migration", NULL);
    if (rc != ERR_OK)
        rollback(g);
    return rc;
}

/* ---- open / close / transactions -------------------------------------------------------- */

static const struct store_ops pg_ops;

static void
pg_close(struct store *base)
{
    struct pg *g = (struct pg *)base;

    if (g->conn != NULL)
        rollback(g);
    PQfinish(g->conn);
    free(g->label);
    store_device_sql_free(&g->dsql);
    free(g->rec_tenant);
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
    rc = read_identity(g, &app, &ver, &tables, eb);
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
    rc = migrate(g, eb);
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

    if (in_tx(g))
        return err_set(eb, ERR_INVAL, "a transaction is already open");
    return q_done(g, "BEGIN", NULL, eb, "starting a transaction", NULL);
}

static int
pg_tx_commit(struct store *base, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    int rc;

    if (!in_tx(g))
        return err_set(eb, ERR_INVAL, "no transaction is open");
    rc = q_done(g, "COMMIT", NULL, eb, "committing", NULL);
    if (rc != ERR_OK)
        rollback(g);
    return rc;
}

static void
pg_tx_rollback(struct store *base)
{
    rollback((struct pg *)base);
}

/* ---- accounts and integrations ---------------------------------------------------------- */

static int
pg_account_ensure(struct store *base, const char *name, int64_t *id, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int own, rc;

    rc = wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    p_text(&p, name);
    p_i64(&p, clock_now());
    rc = q_done(g,
                "INSERT INTO account (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO "
                "NOTHING",
                &p, eb, "creating the account", NULL);
    if (rc == ERR_OK) {
        p.n = 1;
        r = q(g, "SELECT id FROM account WHERE name = $1", &p, eb, "reading the account", &rc);
        if (r != NULL && PQntuples(r) == 1)
            *id = r_i64(r, 0, 0, 0);
        else if (r != NULL)
            rc = err_set(eb, ERR_DB, "account \"%s\" vanished", name);
        PQclear(r);
    }
    return wend(g, own, rc, eb);
}

static void
r_integration(const PGresult *r, int row, struct integration *in)
{
    memset(in, 0, sizeof *in);
    in->id = r_i64(r, row, 0, 0);
    in->account_id = r_i64(r, row, 1, 0);
    in->name = r_dup(r, row, 2);
    in->partner_tenant_id = r_dup(r, row, 3);
    in->partner_app_id = r_dup(r, row, 4);
    in->sync_app_id = r_dup(r, row, 5);
    in->partner_secret_sealed = r_dup(r, row, 6);
    in->sync_secret_sealed = r_dup(r, row, 7);
    in->partner_secret_hint = r_dup(r, row, 8);
    in->sync_secret_hint = r_dup(r, row, 9);
    in->partner_secret_expires = r_i64(r, row, 10, TS_NULL);
    in->sync_secret_expires = r_i64(r, row, 11, TS_NULL);
    in->tenant_source = r_dup(r, row, 12);
    in->sync_interval = r_i64(r, row, 13, 0);
    in->created_at = r_i64(r, row, 14, 0);
    in->updated_at = r_i64(r, row, 15, 0);
    in->cloud = r_dup(r, row, 16);
    in->partner_secret_expiry_source = r_dup(r, row, 17);
    in->sync_secret_expiry_source = r_dup(r, row, 18);
}

static int
pg_integration_insert(struct store *base, struct integration *in, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t now = clock_now();
    PGresult *r;
    int own, rc;

    rc = wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    p_i64(&p, in->account_id);
    p_text(&p, in->name);
    p_text(&p, in->partner_tenant_id);
    p_text(&p, in->partner_app_id);
    p_text(&p, in->sync_app_id);
    p_text(&p, in->partner_secret_sealed);
    p_text(&p, in->sync_secret_sealed);
    p_text(&p, in->partner_secret_hint);
    p_text(&p, in->sync_secret_hint);
    p_ts(&p, in->partner_secret_expires);
    p_ts(&p, in->sync_secret_expires);
    p_text(&p, in->tenant_source != NULL ? in->tenant_source : "partner_center");
    p_i64(&p, in->sync_interval > 0 ? in->sync_interval : 21600);
    p_i64(&p, now);
    p_text(&p, in->cloud != NULL ? in->cloud : "global");
    r = q(g,
          "INSERT INTO integration (account_id, name, partner_tenant_id, partner_app_id, "
          "sync_app_id, partner_secret_sealed, sync_secret_sealed, partner_secret_hint, "
          "sync_secret_hint, partner_secret_expires, sync_secret_expires, tenant_source, "
          "sync_interval, created_at, updated_at, cloud) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
          "$9, $10, $11, $12, $13, $14, $14, $15) RETURNING id",
          &p, eb, "saving the integration", &rc);
    if (r != NULL) {
        in->id = r_i64(r, 0, 0, 0);
        in->created_at = in->updated_at = now;
        if (in->sync_interval <= 0)
            in->sync_interval = 21600;
    } else if (rc == ERR_EXISTS) {
        rc = err_set(eb, ERR_EXISTS, "an integration named \"%s\" already exists", in->name);
    } else if (rc == ERR_NOTFOUND) {
        rc = err_set(eb, ERR_NOTFOUND, "account %" PRId64 " does not exist", in->account_id);
    }
    PQclear(r);
    return wend(g, own, rc, eb);
}

static int
pg_integration_get(struct store *base, int64_t account_id, int64_t id, struct integration *out,
                   struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    char sql[512];
    PGresult *r;
    int rc;

    snprintf(sql, sizeof sql, "SELECT %s FROM integration WHERE account_id = $1 AND id = $2",
             integ_cols);
    p_i64(&p, account_id);
    p_i64(&p, id);
    r = q(g, sql, &p, eb, "reading the integration", &rc);
    if (r != NULL && PQntuples(r) == 1)
        r_integration(r, 0, out);
    else if (r != NULL)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
    PQclear(r);
    return rc;
}

static int
pg_integration_list(struct store *base, int64_t account_id, struct integration **out, size_t *n,
                    struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    char sql[512];
    PGresult *r;
    int rc;

    *out = NULL;
    *n = 0;
    snprintf(sql, sizeof sql, "SELECT %s FROM integration WHERE account_id = $1 ORDER BY id",
             integ_cols);
    p_i64(&p, account_id);
    r = q(g, sql, &p, eb, "listing integrations", &rc);
    if (r == NULL)
        return rc;
    if (PQntuples(r) > 0) {
        *out = xcalloc((size_t)PQntuples(r), sizeof **out);
        for (int i = 0; i < PQntuples(r); i++)
            r_integration(r, i, &(*out)[i]);
        *n = (size_t)PQntuples(r);
    }
    PQclear(r);
    return ERR_OK;
}

static int
pg_integration_set_expiry(struct store *base, int64_t id, const char *which, int64_t expires,
                          const char *source, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t changed = 0;
    int own, rc;

    rc = wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    p_ts(&p, expires);
    p_text(&p, source);
    p_i64(&p, clock_now());
    p_i64(&p, id);
    rc = q_done(g,
                strcmp(which, "partner") == 0
                    ? "UPDATE integration SET partner_secret_expires = $1, "
                      "partner_secret_expiry_source = $2, updated_at = $3 WHERE id = $4"
                    : "UPDATE integration SET sync_secret_expires = $1, "
                      "sync_secret_expiry_source = $2, updated_at = $3 WHERE id = $4",
                &p, eb, "saving the secret's expiry", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
    return wend(g, own, rc, eb);
}

static int
pg_integration_set_secret(struct store *base, int64_t id, const char *which, const char *sealed,
                          const char *hint, int64_t expires, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t changed = 0;
    int own, rc;

    rc = wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    p_text(&p, sealed);
    p_text(&p, hint);
    p_ts(&p, expires);
    p_i64(&p, clock_now());
    p_i64(&p, id);
    rc = q_done(g,
                strcmp(which, "partner") == 0
                    ? "UPDATE integration SET partner_secret_sealed = $1, partner_secret_hint = "
                      "$2, partner_secret_expires = $3, partner_secret_expiry_source = NULL, "
                      "updated_at = $4 WHERE id = $5"
                    : "UPDATE integration SET sync_secret_sealed = $1, sync_secret_hint = $2, "
                      "sync_secret_expires = $3, sync_secret_expiry_source = NULL, updated_at = "
                      "$4 WHERE id = $5",
                &p, eb, "saving the secret", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
    return wend(g, own, rc, eb);
}

static int
pg_integration_delete(struct store *base, int64_t account_id, int64_t id, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t changed = 0;
    int own, rc;

    rc = wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    p_i64(&p, account_id);
    p_i64(&p, id);
    rc = q_done(g, "DELETE FROM integration WHERE account_id = $1 AND id = $2", &p, eb,
                "deleting the integration", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
    return wend(g, own, rc, eb);
}

/* ---- clients ----------------------------------------------------------------------------- */

static int
pg_clients_each(struct store *base, int64_t account_id,
                int (*cb)(void *arg, const struct client_row *c), void *arg, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    struct client_row c;
    PGresult *r;
    int rc;

    p_i64(&p, account_id);
    r = q(g,
          "SELECT id, integration_id, tenant_id, COALESCE(name_override, name), default_domain, "
          "source, included, status, error_code, error_message, error_remedy, last_sync_at, "
          "device_count, software_count, error_request_id, error_date, warning_code, "
          "warning_message, warning_remedy FROM client WHERE account_id = $1 "
          "ORDER BY lower(COALESCE(name_override, name, tenant_id)), id",
          &p, eb, "listing clients", &rc);
    if (r == NULL)
        return rc;
    for (int i = 0; rc == ERR_OK && i < PQntuples(r); i++) {
        c.id = r_i64(r, i, 0, 0);
        c.integration_id = r_i64(r, i, 1, 0);
        c.tenant_id = r_dup(r, i, 2);
        c.name = r_dup(r, i, 3);
        c.default_domain = r_dup(r, i, 4);
        c.source = r_dup(r, i, 5);
        c.included = (int)r_i64(r, i, 6, 1);
        c.status = r_dup(r, i, 7);
        c.error_code = r_dup(r, i, 8);
        c.error_message = r_dup(r, i, 9);
        c.error_remedy = r_dup(r, i, 10);
        c.last_sync_at = r_i64(r, i, 11, TS_NULL);
        c.device_count = r_i64(r, i, 12, 0);
        c.software_count = r_i64(r, i, 13, 0);
        c.error_request_id = r_dup(r, i, 14);
        c.error_date = r_dup(r, i, 15);
        c.warning_code = r_dup(r, i, 16);
        c.warning_message = r_dup(r, i, 17);
        c.warning_remedy = r_dup(r, i, 18);
        rc = cb(arg, &c);
        client_row_clear(&c);
    }
    PQclear(r);
    return rc;
}

static int
check_integration(struct pg *g, int64_t account_id, int64_t integration_id, struct errbuf *eb)
{
    struct params p = {0};
    PGresult *r;
    int rc;

    p_i64(&p, integration_id);
    p_i64(&p, account_id);
    r = q(g, "SELECT 1 FROM integration WHERE id = $1 AND account_id = $2", &p, eb,
          "reading the integration", &rc);
    if (r != NULL && PQntuples(r) == 0)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", integration_id);
    PQclear(r);
    return rc;
}

static int
pg_client_fail(struct store *base, int64_t account_id, int64_t integration_id,
               const struct client_info *ci, const char *code, const char *message,
               const char *remedy, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int own, rc;

    rc = wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = check_integration(g, account_id, integration_id, eb);
    if (rc != ERR_OK)
        goto out;
    p_i64(&p, account_id);
    p_i64(&p, integration_id);
    p_text(&p, ci->tenant_id);
    p_text(&p, ci->name);
    p_text(&p, ci->default_domain);
    p_text(&p, ci->source);
    p_text(&p, code);
    p_text(&p, message);
    p_text(&p, remedy);
    p_i64(&p, clock_now());
    p_text(&p, ci->error_request_id);
    p_text(&p, ci->error_date);
    rc = q_done(g,
                "INSERT INTO client (account_id, integration_id, tenant_id, name, default_domain, "
                "source, status, error_code, error_message, error_remedy, error_request_id, "
                "error_date, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, "
                "COALESCE($6, 'partner_center'), 'error', $7, $8, $9, $11, $12, $10, $10) "
                "ON CONFLICT (integration_id, tenant_id) DO "
                "UPDATE SET name = COALESCE(excluded.name, client.name), "
                "default_domain = COALESCE(excluded.default_domain, client.default_domain), "
                "source = COALESCE($6, client.source), status = 'error', "
                "error_code = excluded.error_code, error_message = excluded.error_message, "
                "error_remedy = excluded.error_remedy, "
                "error_request_id = excluded.error_request_id, error_date = excluded.error_date, "
                "updated_at = excluded.updated_at",
                &p, eb, "recording the tenant failure", NULL);
out:
    return wend(g, own, rc, eb);
}

static int
pg_client_update(struct store *base, int64_t account_id, const char *client, int included,
                 const char *name_override, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int64_t id = 0;
    int own, rc;

    rc = wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    p_i64(&p, account_id);
    p_text(&p, client);
    r = q(g,
          "SELECT id FROM client WHERE account_id = $1 AND (CAST(id AS TEXT) = $2 OR "
          "tenant_id = $2 OR COALESCE(name_override, name) = $2) LIMIT 2",
          &p, eb, "finding the client", &rc);
    if (r != NULL) {
        if (PQntuples(r) == 0)
            rc = err_set(eb, ERR_NOTFOUND, "no client \"%s\"", client);
        else if (PQntuples(r) > 1)
            rc =
                err_set(eb, ERR_INVAL, "\"%s\" matches several clients; use the tenant id", client);
        else
            id = r_i64(r, 0, 0, 0);
    }
    PQclear(r);
    if (rc != ERR_OK)
        goto out;
    p.n = 0;
    p_i64(&p, included);
    p_text(&p, name_override);
    p_i64(&p, clock_now());
    p_i64(&p, id);
    rc = q_done(g,
                "UPDATE client SET included = CASE WHEN $1::smallint < 0 THEN included ELSE "
                "$1::smallint END, name_override = CASE WHEN $2::text IS NULL THEN name_override "
                "ELSE NULLIF($2::text, '') END, updated_at = $3 WHERE id = $4",
                &p, eb, "updating the client", NULL);
out:
    return wend(g, own, rc, eb);
}

/* ---- reconcile --------------------------------------------------------------------------- */

static void
rec_reset(struct pg *g)
{
    g->rec_active = 0;
    g->rec_failed = 0;
    XFREE(g->rec_tenant);
    memset(&g->rec_counts, 0, sizeof g->rec_counts);
}

static int
pg_reconcile_begin(struct store *base, int64_t account_id, int64_t integration_id,
                   const struct client_info *ci, int64_t now, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r = NULL;
    int rc;

    if (g->rec_active || in_tx(g))
        return err_set(eb, ERR_INVAL, "a transaction is already open on this store");
    rc = q_done(g, "BEGIN", NULL, eb, "starting the tenant's transaction", NULL);
    if (rc != ERR_OK)
        return rc;
    rc = check_integration(g, account_id, integration_id, eb);
    if (rc != ERR_OK)
        goto out;
    p_i64(&p, account_id);
    p_i64(&p, integration_id);
    p_text(&p, ci->tenant_id);
    p_text(&p, ci->name);
    p_text(&p, ci->default_domain);
    p_text(&p, ci->source);
    p_i64(&p, now);
    /* The upsert locks the client row, so two syncs of one tenant serialise here. */
    r = q(g,
          "INSERT INTO client (account_id, integration_id, tenant_id, name, default_domain, "
          "source, sync_gen, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, "
          "COALESCE($6, 'partner_center'), 1, $7, $7) ON CONFLICT (integration_id, tenant_id) "
          "DO UPDATE SET name = COALESCE(excluded.name, client.name), "
          "default_domain = COALESCE(excluded.default_domain, client.default_domain), "
          "source = COALESCE($6, client.source), sync_gen = client.sync_gen + 1, "
          "updated_at = excluded.updated_at RETURNING id, sync_gen",
          &p, eb, "saving the client", &rc);
    if (r != NULL) {
        g->rec_client = r_i64(r, 0, 0, 0);
        g->rec_gen = r_i64(r, 0, 1, 0);
    }
    PQclear(r);
out:
    if (rc != ERR_OK) {
        rollback(g);
        return rc;
    }
    rec_reset(g);
    g->rec_active = 1;
    g->rec_account = account_id;
    g->rec_integration = integration_id;
    g->rec_now = now;
    g->rec_tenant = xstrdup(ci->tenant_id);
    return ERR_OK;
}

struct change_ctx {
    struct pg *g;
    int64_t asset_id;
    struct errbuf *eb;
};

static int
record_change(void *arg, const char *field, const char *oldv, const char *newv)
{
    struct change_ctx *cx = arg;
    struct params p = {0};

    p_i64(&p, cx->g->rec_account);
    p_i64(&p, cx->asset_id);
    p_i64(&p, cx->g->rec_now);
    p_text(&p, field);
    p_text(&p, oldv);
    p_text(&p, newv);
    return q_done_c(cx->g,
                    "INSERT INTO asset_change (account_id, asset_id, at, field, old_value, "
                    "new_value) VALUES ($1, $2, $3, $4, $5, $6)",
                    &p, cx->eb, "recording the asset history", NULL);
}

static int
need_rec(struct pg *g, struct errbuf *eb)
{
    if (!g->rec_active)
        return err_set(eb, ERR_INVAL, "no tenant reconcile is in progress");
    return ERR_OK;
}

static int
pg_reconcile_device_step(struct store *base, const struct device *d, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    struct device old;
    PGresult *r;
    char *key = NULL;
    int64_t id = 0, retired = TS_NULL;
    int found = 0, rc;

    device_init(&old);
    rc = need_rec(g, eb);
    if (rc != ERR_OK)
        return rc;
    p_i64(&p, g->rec_integration);
    p_text(&p, g->rec_tenant);
    p_text(&p, d->intune_id);
    r = qc(g, g->dsql.find, &p, eb, "looking up the device", &rc);
    if (r == NULL)
        goto out;
    if (PQntuples(r) == 1) {
        found = 1;
        id = r_i64(r, 0, 0, 0);
        retired = r_i64(r, 0, 1, TS_NULL);
        r_device(r, 0, 2, &old);
        old.intune_id = xstrdup(d->intune_id);
    }
    PQclear(r);
    key = store_serial_key(d->serial);
    p.n = 0;
    if (!found) {
        p_i64(&p, g->rec_account);
        p_i64(&p, g->rec_client);
        p_i64(&p, g->rec_integration);
        p_text(&p, g->rec_tenant);
        p_text(&p, d->intune_id);
        p_device(&p, d);
        p_text(&p, key);
        p_i64(&p, g->rec_now);
        p_i64(&p, g->rec_gen);
        rc = q_done_c(g, g->dsql.ins, &p, eb, "saving a new device", NULL);
        if (rc == ERR_OK)
            g->rec_counts.created++;
        goto out;
    }
    if (retired == TS_NULL && device_equal(&old, d) &&
        store_device_diff(&old, d, NULL, NULL) == 0) {
        p_i64(&p, g->rec_now);
        p_i64(&p, g->rec_gen);
        p_i64(&p, id);
        rc = q_done_c(
            g, "UPDATE hardware_asset SET last_synced_at = $1, last_seen_gen = $2 WHERE id = $3",
            &p, eb, "touching a device", NULL);
        if (rc == ERR_OK)
            g->rec_counts.unchanged++;
        goto out;
    }
    p_device(&p, d);
    p_text(&p, key);
    p_i64(&p, g->rec_now);
    p_i64(&p, g->rec_gen);
    p_i64(&p, g->rec_client);
    p_i64(&p, id);
    rc = q_done_c(g, g->dsql.upd, &p, eb, "updating a device", NULL);
    if (rc != ERR_OK)
        goto out;
    {
        struct change_ctx cx = {g, id, eb};
        int n = store_device_diff(&old, d, record_change, &cx);
        if (n < 0) {
            rc = n;
            goto out;
        }
    }
    g->rec_counts.updated++;
    if (retired != TS_NULL)
        g->rec_counts.revived++;
out:
    free(key);
    device_clear(&old);
    return rc;
}

static int
upsert_install(struct pg *g, int64_t asset_id, const struct app_ref *a, struct errbuf *eb)
{
    struct params p = {0};
    PGresult *r;
    int64_t title = 0, removed = TS_NULL;
    int rc, found = 0;

    p_i64(&p, g->rec_account);
    p_i64(&p, g->rec_client);
    p_text(&p, a->name);
    p_text(&p, a->version != NULL ? a->version : "");
    p_text(&p, a->publisher != NULL ? a->publisher : "");
    p_text(&p, a->platform != NULL ? a->platform : "");
    if (a->size_bytes < 0)
        p_text(&p, NULL);
    else
        p_i64(&p, a->size_bytes);
    r = qc(g,
           "INSERT INTO software_title (account_id, client_id, name, version, publisher, platform, "
           "size_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (client_id, name, "
           "version, publisher, platform) DO UPDATE SET size_bytes = "
           "COALESCE(excluded.size_bytes, software_title.size_bytes) RETURNING id",
           &p, eb, "saving a software title", &rc);
    if (r == NULL)
        return rc;
    title = r_i64(r, 0, 0, 0);
    PQclear(r);

    p.n = 0;
    p_i64(&p, asset_id);
    p_i64(&p, title);
    r = qc(g, "SELECT removed_at FROM software_install WHERE asset_id = $1 AND title_id = $2", &p,
           eb, "looking up an install", &rc);
    if (r == NULL)
        return rc;
    if (PQntuples(r) == 1) {
        found = 1;
        removed = r_i64(r, 0, 0, TS_NULL);
    }
    PQclear(r);
    p.n = 0;
    if (!found) {
        p_i64(&p, g->rec_account);
        p_i64(&p, asset_id);
        p_i64(&p, title);
        p_i64(&p, g->rec_now);
        p_i64(&p, g->rec_gen);
        rc =
            q_done_c(g,
                     "INSERT INTO software_install (account_id, asset_id, title_id, first_seen_at, "
                     "last_seen_at, removed_at, last_seen_gen) VALUES ($1, $2, $3, $4, $4, NULL, "
                     "$5)",
                     &p, eb, "saving an install", NULL);
        if (rc == ERR_OK)
            g->rec_counts.installs_added++;
        return rc;
    }
    p_i64(&p, g->rec_now);
    p_i64(&p, g->rec_gen);
    p_i64(&p, asset_id);
    p_i64(&p, title);
    rc = q_done_c(g,
                  "UPDATE software_install SET last_seen_at = $1, last_seen_gen = $2, removed_at = "
                  "NULL WHERE asset_id = $3 AND title_id = $4",
                  &p, eb, "updating an install", NULL);
    if (rc == ERR_OK && removed != TS_NULL)
        g->rec_counts.installs_added++;
    return rc;
}

static int
pg_reconcile_installs_step(struct store *base, const char *intune_device_id,
                           const struct app_ref *apps, size_t n, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int64_t asset_id = 0;
    int rc;

    rc = need_rec(g, eb);
    if (rc != ERR_OK)
        return rc;
    p_i64(&p, g->rec_integration);
    p_text(&p, g->rec_tenant);
    p_text(&p, intune_device_id);
    r = q(g,
          "SELECT id FROM hardware_asset WHERE integration_id = $1 AND tenant_id = $2 AND "
          "intune_device_id = $3",
          &p, eb, "looking up the device", &rc);
    if (r != NULL && PQntuples(r) == 1)
        asset_id = r_i64(r, 0, 0, 0);
    else if (r != NULL)
        rc = err_set(eb, ERR_NOTFOUND, "device %s is not known in tenant %s", intune_device_id,
                     g->rec_tenant);
    PQclear(r);
    for (size_t i = 0; rc == ERR_OK && i < n; i++)
        rc = upsert_install(g, asset_id, &apps[i], eb);
    if (rc == ERR_OK) {
        /* This device's set is replaced: what it no longer reports is removed (kept). */
        struct params pr = {0};
        int64_t removed = 0;

        p_i64(&pr, g->rec_now);
        p_i64(&pr, asset_id);
        p_i64(&pr, g->rec_gen);
        rc = q_done(g,
                    "UPDATE software_install SET removed_at = $1, last_seen_at = $1 WHERE "
                    "asset_id = $2 AND removed_at IS NULL AND last_seen_gen < $3",
                    &pr, eb, "marking removed software", &removed);
        g->rec_counts.installs_removed += removed;
    }
    return rc;
}

static int
pg_reconcile_commit(struct store *base, int listing_complete, int installs_complete,
                    struct reconcile_counts *counts, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0}, pm = {0};
    int rc;

    rc = need_rec(g, eb);
    if (rc != ERR_OK)
        return rc;
    if (g->rec_failed) {
        rc = err_set(eb, ERR_INVAL, "tenant %s: an earlier step failed, so nothing is committed",
                     g->rec_tenant);
        goto out;
    }
    p_i64(&p, g->rec_now);
    p_i64(&p, g->rec_client);
    p_i64(&p, g->rec_gen);
    /* Seen again: no longer missing (not a change anyone needs in the history). */
    p_i64(&pm, g->rec_client);
    p_i64(&pm, g->rec_gen);
    rc = q_done(g,
                "UPDATE hardware_asset SET missing_since = NULL, missing_syncs = 0 "
                "WHERE client_id = $1 AND missing_since IS NOT NULL AND retired_at IS NULL "
                "AND last_seen_gen = $2",
                &pm, eb, "clearing missing marks", NULL);
    if (rc != ERR_OK)
        goto out;
    if (listing_complete) {
        rc = q_done(g,
                    "UPDATE hardware_asset SET missing_since = COALESCE(missing_since, $1), "
                    "missing_syncs = missing_syncs + 1 WHERE client_id = $2 AND "
                    "retired_at IS NULL AND last_seen_gen < $3",
                    &p, eb, "marking missing devices", &g->rec_counts.missing);
        if (rc != ERR_OK)
            goto out;
    }
    if (listing_complete && !base->rec_policy.hold) {
        struct params pr = {0};

        p_i64(&pr, g->rec_now);
        p_i64(&pr, g->rec_client);
        p_i64(&pr, g->rec_gen);
        p_i64(&pr, base->rec_policy.after_syncs);
        p_i64(&pr, g->rec_now - base->rec_policy.after_s);
        rc = q_done(g,
                    "UPDATE hardware_asset SET retired_at = $1 WHERE client_id = $2 AND "
                    "missing_since IS NOT NULL AND retired_at IS NULL AND last_seen_gen < $3 "
                    "AND missing_syncs >= $4 AND missing_since <= $5",
                    &pr, eb, "retiring missing devices", &g->rec_counts.retired);
        if (rc != ERR_OK)
            goto out;
    }
    /* Installs were replaced device by device in pg_reconcile_installs. */
    (void)installs_complete;
    if (g->rec_counts.installs_added > 0 || g->rec_counts.installs_removed > 0 ||
        g->rec_counts.retired > 0 || g->rec_counts.revived > 0) {
        struct params pc = {0};

        p_i64(&pc, g->rec_client);
        rc = q_done(g,
                    "UPDATE software_title t SET device_count = x.n FROM (SELECT t2.id, "
                    "count(h.id) AS n FROM software_title t2 LEFT JOIN software_install i "
                    "ON i.title_id = t2.id AND i.removed_at IS NULL LEFT JOIN hardware_asset h "
                    "ON h.id = i.asset_id AND h.retired_at IS NULL WHERE t2.client_id = $1 "
                    "GROUP BY t2.id) x WHERE t.id = x.id AND t.device_count <> x.n",
                    &pc, eb, "counting devices per software title", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    p.n = 2;
    p_text(&p, base->rec_warn_code);
    p_text(&p, base->rec_warn_message);
    p_text(&p, base->rec_warn_remedy);
    rc = q_done(g,
                "UPDATE client SET status = 'ok', error_code = NULL, error_message = NULL, "
                "error_remedy = NULL, error_request_id = NULL, error_date = NULL, "
                "last_sync_at = $1, updated_at = $1, "
                "device_count = (SELECT count(*) FROM hardware_asset WHERE client_id = $2 AND "
                "retired_at IS NULL), software_count = (SELECT count(*) FROM software_title "
                "WHERE client_id = $2 AND device_count > 0), warning_code = $3, "
                "warning_message = $4, warning_remedy = $5 "
                "WHERE id = $2",
                &p, eb, "updating the client", NULL);
    if (rc == ERR_OK)
        rc = q_done(g, "COMMIT", NULL, eb, "committing the tenant", NULL);
out:
    if (rc != ERR_OK)
        rollback(g);
    else if (counts != NULL)
        *counts = g->rec_counts;
    rec_reset(g);
    return rc;
}

static int
pg_retire_preview(struct store *base, int64_t *would_retire, int64_t *active, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc = need_rec(g, eb);

    if (rc != ERR_OK)
        return rc;
    p_i64(&p, g->rec_client);
    p_i64(&p, g->rec_gen);
    /* As on SQLite: unless one listing without waiting is the policy, only marked devices
     * can retire. */
    if (base->rec_policy.after_syncs <= 1 && base->rec_policy.after_s <= 0) {
        r = q(g,
              "SELECT count(*), count(*) FILTER (WHERE last_seen_gen < $2) FROM hardware_asset "
              "WHERE client_id = $1 AND retired_at IS NULL",
              &p, eb, "counting devices to retire", &rc);
    } else {
        p_i64(&p, base->rec_policy.after_syncs);
        p_i64(&p, g->rec_now);
        p_i64(&p, base->rec_policy.after_s);
        r = q(g,
              "SELECT (SELECT count(*) FROM hardware_asset WHERE client_id = $1 AND retired_at "
              "IS NULL), (SELECT count(*) FROM hardware_asset WHERE client_id = $1 AND "
              "missing_since IS NOT NULL AND retired_at IS NULL AND last_seen_gen < $2 AND "
              "missing_syncs + 1 >= $3 AND missing_since <= $4::bigint - $5::bigint)",
              &p, eb, "counting devices to retire", &rc);
    }
    if (r == NULL)
        return rc;
    *active = r_i64(r, 0, 0, 0);
    *would_retire = r_i64(r, 0, 1, 0);
    PQclear(r);
    return ERR_OK;
}

static void
pg_reconcile_rollback(struct store *base)
{
    struct pg *g = (struct pg *)base;

    rollback(g);
    rec_reset(g);
}

/* ---- asset reads ------------------------------------------------------------------------- */

static void
pg_dparam(struct buf *sql, int n)
{
    buf_printf(sql, "$%d", n);
}

static void
pg_dcontains(struct buf *sql, const char *expr, int n)
{
    buf_printf(sql, "strpos(lower(COALESCE(CAST(%s AS TEXT), '')), lower($%d::text)) > 0", expr, n);
}

static void
pg_dieq(struct buf *sql, const char *expr, int n)
{
    buf_printf(sql, "lower(%s) = lower($%d::text)", expr, n);
}

/* Parameters as $N; list statements are renumbered afterwards (pg_numbered). */
static const struct store_dialect pg_dialect = {pg_dparam, pg_dcontains, pg_dieq, "LIMIT ALL", 1};

/* Moves the builder's values into p (as text); ERR_INVAL past what one statement takes. */
static int
pg_take_binds(struct params *p, const struct store_binds *b, struct errbuf *eb)
{
    if (p->n + b->n > PARAMS_MAX)
        return err_set(eb, ERR_INVAL, "too many filter values (at most %d)", PARAMS_MAX - p->n);
    for (int i = 0; i < b->n; i++) {
        if (b->v[i].kind == SC_INT)
            p_i64(p, b->v[i].i);
        else
            p_text(p, b->v[i].s);
    }
    return ERR_OK;
}

static int
asset_where(struct pg *g, struct buf *b, struct params *p, const struct asset_query *q_, int paging,
            struct store_binds *sb, struct errbuf *eb)
{
    int rc;

    buf_addstr(b, " FROM hardware_asset h JOIN client c ON c.id = h.client_id "
                  "WHERE h.account_id = $1");
    p_i64(p, q_->account_id);
    if (!q_->include_retired)
        buf_addstr(b, " AND h.retired_at IS NULL");
    if (q_->client != NULL) {
        p_text(p, q_->client);
        buf_printf(b,
                   " AND (CAST(c.id AS TEXT) = $%d OR c.tenant_id = $%d OR "
                   "COALESCE(c.name_override, c.name) = $%d)",
                   p->n, p->n, p->n);
    }
    if (q_->search != NULL && q_->search[0] != '\0') {
        const char *cols[] = {g->dsql.col_name, g->dsql.col_serial, g->dsql.col_upn,
                              g->dsql.col_user, g->dsql.col_model};
        int first = 1;
        p_text(p, q_->search);
        buf_addstr(b, " AND (");
        for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
            if (cols[i] == NULL)
                continue;
            buf_printf(b, "%sstrpos(lower(COALESCE(h.%s, '')), lower($%d::text)) > 0",
                       first ? "" : " OR ", cols[i], p->n);
            first = 0;
        }
        if (first)
            buf_addstr(b, "false");
        buf_addstr(b, ")");
    }
    if (paging && q_->after_id > 0) {
        p_i64(p, q_->after_id);
        buf_printf(b, " AND h.id > $%d", p->n);
    }
    if (q_->nfilters == 0)
        return ERR_OK;
    /* API filters: the shared builder numbers its parameters after ours; p points into sb,
     * which the caller frees after the query. */
    sb->first = p->n + 1;
    rc = store_sql_filters(&pg_dialect, store_list_entity("hardware"), q_->filters, q_->nfilters, b,
                           sb, eb);
    if (rc == ERR_OK)
        rc = pg_take_binds(p, sb, eb);
    return rc;
}

struct pg_part {
    struct pg *g;
    const struct asset_query *q;
    int (*cb)(void *arg, const struct asset *a);
    void *arg;
    struct errbuf *eb;
};

static int
pg_assets_part(void *ctx, int part, int count, int64_t offset, int limit, int64_t *rows)
{
    struct pg_part *x = ctx;
    struct pg *g = x->g;
    const struct asset_query *qa = x->q;
    struct params p = {0};
    struct buf sql;
    struct asset a;
    PGresult *r = NULL;
    int rc = ERR_OK, first_sort;
    struct store_binds *sb = xcalloc(1, sizeof *sb);
    struct store_binds *tb = xcalloc(1, sizeof *tb);

    *rows = 0;
    buf_init(&sql, SQL_MAX);
    if (count) {
        buf_addstr(&sql, "SELECT count(*)");
    } else {
        buf_addstr(&sql, STORE_HW_LIST_HEAD);
        buf_addstr(&sql, g->dsql.cols_h);
        buf_addstr(&sql, ", h.missing_since");
        /* The sort values last, for the caller's cursor. */
        rc = store_list_sort_values(&sql, "hardware", qa->sorts, qa->nsorts, x->eb);
        if (rc != ERR_OK)
            goto out;
    }
    rc = asset_where(g, &sql, &p, qa, 1, sb, x->eb);
    if (rc != ERR_OK)
        goto out;
    tb->first = p.n + 1;
    rc = store_sql_asset_tail(&pg_dialect, qa, part, count, offset, limit, &sql, tb, x->eb);
    if (rc == ERR_OK)
        rc = pg_take_binds(&p, tb, x->eb);
    if (rc != ERR_OK)
        goto out;
    r = q(g, buf_cstr(&sql), &p, x->eb, count ? "counting assets" : "listing assets", &rc);
    if (r == NULL)
        goto out;
    if (count) {
        *rows = r_i64(r, 0, 0, 0);
        goto out;
    }
    first_sort = PQnfields(r) - (int)qa->nsorts;
    for (int i = 0; rc == ERR_OK && i < PQntuples(r); i++) {
        memset(&a, 0, sizeof a);
        a.id = r_i64(r, i, 0, 0);
        a.client_id = r_i64(r, i, 1, 0);
        a.client_name = r_str(r, i, 2);
        a.client_tenant_id = r_str(r, i, 3);
        a.integration_id = r_i64(r, i, 4, 0);
        a.first_synced_at = r_i64(r, i, 6, TS_NULL);
        a.last_synced_at = r_i64(r, i, 7, TS_NULL);
        a.retired_at = r_i64(r, i, 8, TS_NULL);
        a.serial_duplicate = r_i64(r, i, 9, 0) != 0;
        r_device(r, i, 10, &a.dev);
        a.missing_since = r_i64(r, i, 10 + (int)device_field_count, TS_NULL);
        a.dev.intune_id = r_dup(r, i, 5);
        for (size_t k = 0; k < qa->nsorts; k++) {
            int c = first_sort + (int)k;
            const struct store_list_field *f =
                store_list_field(store_list_entity("hardware"), qa->sorts[k].field);
            struct store_cell *v = &a.sort_vals[k];

            v->name = qa->sorts[k].field;
            if (PQgetisnull(r, i, c)) {
                v->kind = SC_NULL;
            } else if (f->kind == SC_TEXT) {
                v->kind = SC_TEXT;
                v->s = PQgetvalue(r, i, c);
            } else {
                v->kind = SC_INT;
                v->i = r_i64(r, i, c, 0);
            }
        }
        a.nsort_vals = qa->nsorts;
        (*rows)++;
        rc = x->cb(x->arg, &a);
        device_clear(&a.dev);
    }
out:
    if (r != NULL)
        PQclear(r);
    buf_free(&sql);
    store_binds_free(sb);
    store_binds_free(tb);
    free(sb);
    free(tb);
    return rc;
}

static int
pg_assets_each(struct store *base, const struct asset_query *qa,
               int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb)
{
    struct pg_part x = {(struct pg *)base, qa, cb, arg, eb};

    return store_assets_parts(qa, pg_assets_part, &x);
}

static int64_t
pg_assets_count(struct store *base, const struct asset_query *qa, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    struct buf sql;
    PGresult *r;
    int64_t n;
    int rc;

    struct store_binds *sb = xcalloc(1, sizeof *sb);

    buf_init(&sql, SQL_MAX);
    if (qa->nfilters == 0 && (qa->search == NULL || qa->search[0] == '\0') && qa->client == NULL &&
        !qa->include_retired) {
        /* Every active device of the account: the clients keep that count (reconcile). */
        buf_addstr(&sql, "SELECT COALESCE(sum(device_count), 0) FROM client WHERE account_id = $1");
        p_i64(&p, qa->account_id);
        rc = ERR_OK;
    } else {
        buf_addstr(&sql, "SELECT count(*)");
        rc = asset_where(g, &sql, &p, qa, 0, sb, eb);
    }
    r = rc == ERR_OK ? q(g, buf_cstr(&sql), &p, eb, "counting assets", &rc) : NULL;
    buf_free(&sql);
    store_binds_free(sb);
    free(sb);
    if (r == NULL)
        return rc;
    n = r_i64(r, 0, 0, 0);
    PQclear(r);
    return n;
}

static int
pg_asset_get(struct store *base, int64_t account_id, int64_t id,
             int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb)
{
    struct asset_query q = {0};
    struct store_filter f = {"id", "eq", NULL};
    char idtxt[32];
    int rc;

    snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
    f.value = idtxt;
    q.account_id = account_id;
    q.include_retired = 1;
    q.filters = &f;
    q.nfilters = 1;
    q.limit = 1;
    if (pg_assets_count(base, &q, eb) <= 0)
        return err_set(eb, ERR_NOTFOUND, "hardware asset %" PRId64 " does not exist", id);
    rc = pg_assets_each(base, &q, cb, arg, eb);
    return rc;
}

static int
pg_device_checkins(struct store *base, int64_t integration_id, const char *tenant_id,
                   int (*cb)(void *arg, const char *intune_id, int64_t last_check_in_at,
                             int retired),
                   void *arg, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc = ERR_OK;

    p_i64(&p, integration_id);
    p_text(&p, tenant_id);
    r = q(g,
          "SELECT intune_device_id, last_check_in_at, (retired_at IS NOT NULL)::int "
          "FROM hardware_asset WHERE integration_id = $1 AND tenant_id = $2",
          &p, eb, "reading device check-ins", &rc);
    if (r == NULL)
        return rc;
    for (int i = 0; rc == ERR_OK && i < PQntuples(r); i++)
        rc = cb(arg, r_str(r, i, 0), r_i64(r, i, 1, TS_NULL), (int)r_i64(r, i, 2, 0));
    PQclear(r);
    return rc;
}

/* ---- software and history ---------------------------------------------------------------- */

static const char *
empty_null(const char *s)
{
    return s == NULL || s[0] == '\0' ? NULL : s;
}

static int
pg_software_each(struct store *base, const struct software_query *qs,
                 int (*cb)(void *arg, const struct software_row *r), void *arg, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    struct software_row r;
    struct buf sql;
    PGresult *res;
    int rc;

    buf_init(&sql, SQL_MAX);
    buf_addstr(&sql,
               "SELECT t.id, t.client_id, COALESCE(c.name_override, c.name), c.tenant_id, t.name, "
               "t.version, t.publisher, t.platform, t.size_bytes, t.device_count "
               "FROM software_title t JOIN client c ON c.id = t.client_id "
               "WHERE t.account_id = $1 AND t.device_count > 0");
    p_i64(&p, qs->account_id);
    if (qs->client != NULL) {
        p_text(&p, qs->client);
        buf_printf(&sql,
                   " AND (CAST(c.id AS TEXT) = $%d OR c.tenant_id = $%d OR "
                   "COALESCE(c.name_override, c.name) = $%d)",
                   p.n, p.n, p.n);
    }
    if (qs->search != NULL && qs->search[0] != '\0') {
        p_text(&p, qs->search);
        buf_printf(&sql,
                   " AND (strpos(lower(t.name), lower($%d::text)) > 0 OR "
                   "strpos(lower(t.publisher), lower($%d::text)) > 0)",
                   p.n, p.n);
    }
    if (qs->after_id > 0) {
        p_i64(&p, qs->after_id);
        buf_printf(&sql, " AND t.id > $%d", p.n);
    }
    buf_addstr(&sql, " ORDER BY t.id");
    if (qs->limit > 0)
        buf_printf(&sql, " LIMIT %d", qs->limit);
    res = q(g, buf_cstr(&sql), &p, eb, "listing software", &rc);
    buf_free(&sql);
    if (res == NULL)
        return rc;
    for (int i = 0; rc == ERR_OK && i < PQntuples(res); i++) {
        r.id = r_i64(res, i, 0, 0);
        r.client_id = r_i64(res, i, 1, 0);
        r.client_name = r_str(res, i, 2);
        r.client_tenant_id = r_str(res, i, 3);
        r.name = r_str(res, i, 4);
        r.version = empty_null(r_str(res, i, 5));
        r.publisher = empty_null(r_str(res, i, 6));
        r.platform = empty_null(r_str(res, i, 7));
        r.size_bytes = r_i64(res, i, 8, -1);
        r.device_count = r_i64(res, i, 9, 0);
        rc = cb(arg, &r);
    }
    PQclear(res);
    return rc;
}

static int
pg_asset_changes_each(struct store *base, int64_t account_id, int64_t asset_id,
                      int (*cb)(void *arg, const struct asset_change_row *c), void *arg,
                      struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    struct asset_change_row c;
    PGresult *res;
    int rc;

    p_i64(&p, asset_id);
    p_i64(&p, account_id);
    res = q(g, "SELECT 1 FROM hardware_asset WHERE id = $1 AND account_id = $2", &p, eb,
            "reading the asset", &rc);
    if (res == NULL)
        return rc;
    if (PQntuples(res) == 0)
        rc = err_set(eb, ERR_NOTFOUND, "asset %" PRId64 " does not exist", asset_id);
    PQclear(res);
    if (rc != ERR_OK)
        return rc;
    p.n = 1;
    res = q(g,
            "SELECT id, at, field, old_value, new_value FROM asset_change WHERE asset_id = $1 "
            "ORDER BY at, id",
            &p, eb, "reading the asset history", &rc);
    if (res == NULL)
        return rc;
    for (int i = 0; rc == ERR_OK && i < PQntuples(res); i++) {
        c.id = r_i64(res, i, 0, 0);
        c.asset_id = asset_id;
        c.at = r_i64(res, i, 1, 0);
        c.field = r_str(res, i, 2);
        c.old_value = r_str(res, i, 3);
        c.new_value = r_str(res, i, 4);
        rc = cb(arg, &c);
    }
    PQclear(res);
    return rc;
}

/* ---- sync runs --------------------------------------------------------------------------- */

static int
pg_run_start(struct store *base, int64_t integration_id, const char *kind, int64_t now,
             int64_t *run_id, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int own, rc;

    rc = wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    p_i64(&p, integration_id);
    p_text(&p, kind);
    p_i64(&p, now);
    r = q(g,
          "INSERT INTO sync_run (account_id, integration_id, kind, started_at, status) SELECT "
          "account_id, id, $2::text, $3::bigint, 'running' FROM integration WHERE id = $1::bigint "
          "RETURNING id",
          &p, eb, "starting the sync run", &rc);
    if (r != NULL && PQntuples(r) == 1)
        *run_id = r_i64(r, 0, 0, 0);
    else if (r != NULL)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", integration_id);
    PQclear(r);
    return wend(g, own, rc, eb);
}

static int
pg_run_tenant(struct store *base, int64_t run_id, const struct tenant_result *t, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int own, rc;

    rc = wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    p_i64(&p, run_id);
    p_text(&p, t->tenant_id);
    p_text(&p, t->client_name);
    p_text(&p, t->status);
    p_text(&p, t->error_code);
    p_text(&p, t->message);
    p_text(&p, t->remedy);
    p_i64(&p, t->counts.created);
    p_i64(&p, t->counts.updated);
    p_i64(&p, t->counts.unchanged);
    p_i64(&p, t->counts.retired);
    p_i64(&p, t->counts.revived);
    p_i64(&p, t->counts.installs_added);
    p_i64(&p, t->counts.installs_removed);
    p_i64(&p, t->devices);
    p_i64(&p, t->requests);
    p_i64(&p, t->throttled);
    p_i64(&p, t->duration_ms);
    p_text(&p, t->request_id);
    p_text(&p, t->response_date);
    rc = q_done(g,
                "INSERT INTO sync_tenant_result (run_id, tenant_id, client_name, status, "
                "error_code, error_message, error_remedy, created, updated, unchanged, retired, "
                "revived, installs_added, installs_removed, devices, requests, throttled, "
                "duration_ms, error_request_id, error_date) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                "$8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20)",
                &p, eb, "recording the tenant result", NULL);
    if (rc == ERR_NOTFOUND)
        rc = err_set(eb, ERR_NOTFOUND, "sync run %" PRId64 " does not exist", run_id);
    return wend(g, own, rc, eb);
}

static int
pg_run_finish(struct store *base, int64_t run_id, const char *status, const char *message,
              int64_t now, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t changed = 0;
    int own, rc;

    rc = wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    p_text(&p, status);
    p_i64(&p, now);
    p_i64(&p, run_id);
    p_text(&p, message);
    rc = q_done(g,
                "UPDATE sync_run SET status = $1, finished_at = $2, error_message = $4 WHERE id = "
                "$3",
                &p, eb, "finishing the sync run", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "sync run %" PRId64 " does not exist", run_id);
    return wend(g, own, rc, eb);
}

static int
pg_reconcile_device(struct store *base, const struct device *d, struct errbuf *eb)
{
    struct pg *x = (struct pg *)base;
    int rc = pg_reconcile_device_step(base, d, eb);

    if (rc != ERR_OK && x->rec_active)
        x->rec_failed = 1;
    return rc;
}

static int
pg_reconcile_installs(struct store *base, const char *intune_device_id, const struct app_ref *apps,
                      size_t n, struct errbuf *eb)
{
    struct pg *x = (struct pg *)base;
    int rc = pg_reconcile_installs_step(base, intune_device_id, apps, n, eb);

    if (rc != ERR_OK && x->rec_active)
        x->rec_failed = 1;
    return rc;
}

/* ---- web: users, sessions, API keys ----------------------------------------------------- */

/* Runs one write (own transaction unless one is open); ERR_NOTFOUND when it changed no row
 * and must_change is set. */
static int
pg_write(struct pg *g, const char *sql, const struct params *p, int must_change, struct errbuf *eb,
         const char *what)
{
    int64_t changed = 0;
    int own, rc = wbegin(g, &own, eb);

    if (rc != ERR_OK)
        return rc;
    rc = q_done(g, sql, p, eb, what, &changed);
    if (rc == ERR_OK && must_change && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "%s: no such row", what);
    return wend(g, own, rc, eb);
}

static int
pg_user_insert(struct store *base, int64_t account_id, const char *name, const char *role,
               const char *password_hash, int64_t *id, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int own, rc = wbegin(g, &own, eb);

    if (rc != ERR_OK)
        return rc;
    p_i64(&p, account_id);
    p_text(&p, name);
    p_text(&p, role);
    p_text(&p, password_hash);
    p_i64(&p, clock_now());
    r = q(g,
          "INSERT INTO app_user (account_id, name, role, password_hash, created_at) VALUES ($1, "
          "$2, $3, $4, $5) RETURNING id",
          &p, eb, "adding the user", &rc);
    if (r != NULL)
        *id = r_i64(r, 0, 0, 0);
    PQclear(r);
    rc = wend(g, own, rc, eb);
    if (rc == ERR_EXISTS)
        return err_set(eb, ERR_EXISTS, "a user named %s already exists", name);
    return rc;
}

static int
pg_read_user(PGresult *r, struct user_row *out, struct errbuf *eb, const char *what)
{
    if (PQntuples(r) != 1)
        return err_set(eb, ERR_NOTFOUND, "%s: not found", what);
    out->id = r_i64(r, 0, 0, 0);
    out->account_id = r_i64(r, 0, 1, 0);
    out->name = r_dup(r, 0, 2);
    out->role = r_dup(r, 0, 3);
    out->password_hash = r_dup(r, 0, 4);
    out->created_at = r_i64(r, 0, 5, 0);
    return ERR_OK;
}

static int
pg_user_get(struct store *base, const char *name, struct user_row *out, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc;

    p_text(&p, name);
    r = q(g,
          "SELECT id, account_id, name, role, password_hash, created_at FROM app_user WHERE "
          "name = $1",
          &p, eb, "reading the user", &rc);
    if (r == NULL)
        return rc;
    rc = pg_read_user(r, out, eb, "user");
    PQclear(r);
    return rc;
}

static int
pg_user_set_password(struct store *base, int64_t id, const char *password_hash, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int rc;

    p_i64(&p, id);
    p_text(&p, password_hash);
    rc = pg_write(g, "UPDATE app_user SET password_hash = $2 WHERE id = $1", &p, 1, eb,
                  "changing the password");
    if (rc == ERR_OK) {
        /* A new password ends every session of the user. */
        p.n = 1;
        rc = pg_write(g, "DELETE FROM user_session WHERE user_id = $1", &p, 0, eb,
                      "ending sessions");
    }
    return rc;
}

static int
pg_user_delete(struct store *base, int64_t id, struct errbuf *eb)
{
    struct params p = {0};

    p_i64(&p, id);
    return pg_write((struct pg *)base, "DELETE FROM app_user WHERE id = $1", &p, 1, eb,
                    "removing the user");
}

static int64_t
pg_user_count(struct store *base, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    PGresult *r;
    int64_t n;
    int rc;

    r = q(g, "SELECT count(*) FROM app_user", NULL, eb, "counting users", &rc);
    if (r == NULL)
        return rc;
    n = r_i64(r, 0, 0, 0);
    PQclear(r);
    return n;
}

static int
pg_data_version(struct store *base, int64_t *out, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc;

    r = qc(g, "SELECT v FROM data_version WHERE id = 1", &p, eb, "reading the data version", &rc);
    if (r == NULL)
        return rc;
    if (PQntuples(r) == 1)
        *out = r_i64(r, 0, 0, 0);
    else
        rc = err_set(eb, ERR_DB, "the data version row is missing");
    PQclear(r);
    return rc;
}

static int
pg_session_insert(struct store *base, const char *token_hash, int64_t user_id, int64_t expires_at,
                  struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t now = clock_now();
    int rc;

    p_text(&p, token_hash);
    p_i64(&p, user_id);
    p_i64(&p, now);
    p_i64(&p, expires_at);
    rc = pg_write(g,
                  "INSERT INTO user_session (token_hash, user_id, created_at, expires_at) VALUES "
                  "($1, $2, $3, $4)",
                  &p, 0, eb, "starting the session");
    if (rc == ERR_OK) {
        p.n = 0;
        p_i64(&p, now);
        pg_write(g, "DELETE FROM user_session WHERE expires_at < $1", &p, 0, NULL,
                 "pruning sessions");
    }
    return rc;
}

static int
pg_session_user(struct store *base, const char *token_hash, int64_t now, struct user_row *out,
                struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc;

    p_text(&p, token_hash);
    p_i64(&p, now);
    r = q(g,
          "SELECT u.id, u.account_id, u.name, u.role, u.password_hash, u.created_at FROM "
          "user_session x JOIN app_user u ON u.id = x.user_id WHERE x.token_hash = $1 AND "
          "x.expires_at > $2",
          &p, eb, "reading the session", &rc);
    if (r == NULL)
        return rc;
    rc = pg_read_user(r, out, eb, "session");
    PQclear(r);
    return rc;
}

static int
pg_session_delete(struct store *base, const char *token_hash, struct errbuf *eb)
{
    struct params p = {0};

    p_text(&p, token_hash);
    return pg_write((struct pg *)base, "DELETE FROM user_session WHERE token_hash = $1", &p, 0, eb,
                    "signing out");
}

static int
pg_apikey_insert(struct store *base, int64_t account_id, const char *name, const char *scope,
                 const char *key_hash, const char *prefix, int64_t expires_at, int64_t *id,
                 struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int own, rc = wbegin(g, &own, eb);

    if (rc != ERR_OK)
        return rc;
    p_i64(&p, account_id);
    p_text(&p, name);
    p_text(&p, scope);
    p_text(&p, key_hash);
    p_text(&p, prefix);
    p_i64(&p, clock_now());
    p_ts(&p, expires_at);
    r = q(g,
          "INSERT INTO api_key (account_id, name, scope, key_hash, prefix, created_at, expires_at) "
          "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
          &p, eb, "creating the API key", &rc);
    if (r != NULL)
        *id = r_i64(r, 0, 0, 0);
    PQclear(r);
    return wend(g, own, rc, eb);
}

static int
pg_apikey_touch(struct store *base, int64_t id, int64_t now, struct errbuf *eb)
{
    struct params p = {0};

    p_i64(&p, id);
    p_i64(&p, now);
    return pg_write((struct pg *)base,
                    "UPDATE api_key SET last_used_at = $2 WHERE id = $1 AND "
                    "(last_used_at IS NULL OR last_used_at <= $2 - 60)",
                    &p, 0, eb, "recording the API key's use");
}

static int
pg_apikey_find(struct store *base, const char *key_hash, int64_t *account_id, int64_t *id,
               char **scope, int64_t *expires_at, int64_t *last_used_at, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc;

    p_text(&p, key_hash);
    r = q(g,
          "SELECT account_id, id, scope, expires_at, last_used_at FROM api_key WHERE key_hash = "
          "$1 AND revoked_at IS NULL",
          &p, eb, "reading the API key", &rc);
    if (r == NULL)
        return rc;
    if (PQntuples(r) == 1) {
        *account_id = r_i64(r, 0, 0, 0);
        *id = r_i64(r, 0, 1, 0);
        *scope = r_dup(r, 0, 2);
        *expires_at = r_i64(r, 0, 3, TS_NULL);
        *last_used_at = r_i64(r, 0, 4, TS_NULL);
    } else {
        rc = err_set(eb, ERR_NOTFOUND, "unknown API key");
    }
    PQclear(r);
    return rc;
}

static int
pg_apikey_revoke(struct store *base, int64_t account_id, int64_t id, struct errbuf *eb)
{
    struct params p = {0};
    int rc;

    p_i64(&p, account_id);
    p_i64(&p, id);
    p_i64(&p, clock_now());
    rc = pg_write((struct pg *)base,
                  "UPDATE api_key SET revoked_at = $3 WHERE account_id = $1 AND id = $2 AND "
                  "revoked_at IS NULL",
                  &p, 1, eb, "revoking the API key");
    if (rc == ERR_NOTFOUND)
        return err_set(eb, ERR_NOTFOUND, "API key %" PRId64 " does not exist or is revoked", id);
    return rc;
}

static int
pg_integration_update(struct store *base, int64_t account_id, int64_t id, const char *name,
                      int64_t sync_interval, int64_t partner_expires, int64_t sync_expires,
                      struct errbuf *eb)
{
    struct params p = {0};
    int rc;

    p_i64(&p, account_id);
    p_i64(&p, id);
    p_text(&p, name);
    if (sync_interval > 0)
        p_i64(&p, sync_interval);
    else
        p_text(&p, NULL);
    if (partner_expires != 0 && partner_expires != TS_NULL)
        p_i64(&p, partner_expires);
    else
        p_text(&p, NULL);
    if (sync_expires != 0 && sync_expires != TS_NULL)
        p_i64(&p, sync_expires);
    else
        p_text(&p, NULL);
    p_i64(&p, clock_now());
    rc = pg_write((struct pg *)base,
                  "UPDATE integration SET name = COALESCE($3, name), sync_interval = "
                  "COALESCE($4::bigint, sync_interval), partner_secret_expires = "
                  "COALESCE($5::bigint, partner_secret_expires), sync_secret_expires = "
                  "COALESCE($6::bigint, sync_secret_expires), updated_at = $7, "
                  "partner_secret_expiry_source = CASE WHEN $5::bigint IS NULL THEN "
                  "partner_secret_expiry_source END, sync_secret_expiry_source = CASE WHEN "
                  "$6::bigint IS NULL THEN sync_secret_expiry_source END WHERE account_id = "
                  "$1 AND id = $2",
                  &p, 1, eb, "updating the integration");
    if (rc == ERR_NOTFOUND)
        return err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
    return rc;
}

/* ---- generic lists (SQL from store.c's shared builder) --------------------------------- */

/* PostgreSQL wants every parameter up to the highest one used; the shared builder leaves gaps
 * ($4 is never used by a list, $2 only with a parent). Renumbers $N in order of first use and
 * fills p from vals[N]. */
static int
pg_numbered(const char *sql, const char *const *vals, int nvals, struct params *p, struct buf *out,
            struct errbuf *eb)
{
    int map[PARAMS_MAX + 8];

    memset(map, 0, sizeof map);
    for (const char *t = sql; *t != '\0'; t++) {
        if (*t == '$' && t[1] >= '0' && t[1] <= '9') {
            int n = 0;

            while (t[1] >= '0' && t[1] <= '9') {
                n = n * 10 + (t[1] - '0');
                t++;
            }
            if (n <= 0 || n >= nvals || n >= (int)(sizeof map / sizeof map[0]))
                return err_set(eb, ERR_INVAL, "too many filter values");
            if (map[n] == 0) {
                if (p->n >= PARAMS_MAX)
                    return err_set(eb, ERR_INVAL, "too many filter values");
                p_text(p, vals[n]);
                map[n] = p->n;
            }
            buf_printf(out, "$%d", map[n]);
        } else {
            buf_addc(out, *t);
        }
    }
    return ERR_OK;
}

static PGresult *
pg_list_run(struct pg *g, const struct list_query *lq, int count, struct errbuf *eb, int *rc)
{
    struct store_binds *b = xcalloc(1, sizeof *b);
    const char *vals[PARAMS_MAX + 8];
    char num[PARAMS_MAX + 8][24];
    struct params p = {0};
    struct buf sql, out;
    PGresult *r = NULL;
    int nvals = 5;

    memset(vals, 0, sizeof vals);
    buf_init(&sql, SQL_MAX);
    buf_init(&out, SQL_MAX);
    *rc = store_sql_list(&pg_dialect, lq, count, &sql, b, eb);
    if (*rc != ERR_OK)
        goto out;
    snprintf(num[1], sizeof num[1], "%" PRId64, lq->account_id);
    snprintf(num[2], sizeof num[2], "%" PRId64, lq->parent_id);
    vals[1] = num[1];
    vals[2] = num[2];
    vals[3] = lq->search;
    if (b->n > PARAMS_MAX) {
        *rc = err_set(eb, ERR_INVAL, "too many filter values");
        goto out;
    }
    for (int i = 0; i < b->n; i++, nvals++) {
        if (b->v[i].kind == SC_INT) {
            snprintf(num[nvals], sizeof num[nvals], "%" PRId64, b->v[i].i);
            vals[nvals] = num[nvals];
        } else {
            vals[nvals] = b->v[i].s;
        }
    }
    *rc = pg_numbered(buf_cstr(&sql), vals, nvals, &p, &out, eb);
    if (*rc == ERR_OK)
        r = q(g, buf_cstr(&out), &p, eb, "listing", rc);
out:
    store_binds_free(b);
    free(b);
    buf_free(&sql);
    buf_free(&out);
    return r;
}

static int
pg_list_each(struct store *base, const struct list_query *ql,
             int (*cb)(void *arg, const struct store_cell *cells, size_t n), void *arg,
             struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    const struct store_list_entity *e = store_list_entity(ql->entity);
    struct store_cell cells[64];
    PGresult *r;
    size_t n = 0;
    int rc;

    r = pg_list_run(g, ql, 0, eb, &rc);
    if (r == NULL)
        return rc;
    for (const struct store_list_field *f = e->fields; f->name != NULL && n < 64; f++)
        n++;
    for (int row = 0; rc == ERR_OK && row < PQntuples(r); row++) {
        for (size_t i = 0; i < n; i++) {
            const struct store_list_field *f = &e->fields[i];
            int isnull = PQgetisnull(r, row, (int)i);

            cells[i].name = f->name;
            cells[i].kind = isnull ? SC_NULL : f->kind;
            cells[i].i = isnull || f->kind == SC_TEXT ? 0 : r_i64(r, row, (int)i, 0);
            cells[i].s = isnull || f->kind != SC_TEXT ? NULL : r_str(r, row, (int)i);
        }
        rc = cb(arg, cells, n);
    }
    PQclear(r);
    return rc;
}

static int64_t
pg_list_count(struct store *base, const struct list_query *ql, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    PGresult *r;
    int64_t n;
    int rc;

    r = pg_list_run(g, ql, 1, eb, &rc);
    if (r == NULL)
        return rc;
    n = r_i64(r, 0, 0, 0);
    PQclear(r);
    return n;
}

/* ---- sync jobs (memsync worker) ---------------------------------------------------------- */

/* Leases use the database's clock, the one clock every worker on every machine shares. */
#define DB_NOW "extract(epoch from clock_timestamp())::bigint"

static void
r_job(const PGresult *r, int row, struct sync_job *j)
{
    j->id = r_i64(r, row, 0, 0);
    j->run_id = r_i64(r, row, 1, 0);
    j->account_id = r_i64(r, row, 2, 0);
    j->integration_id = r_i64(r, row, 3, 0);
    j->full = strcmp(PQgetvalue(r, row, 4), "full") == 0;
    j->attempts = (int)r_i64(r, row, 5, 0);
    j->cust.tenant_id = r_dup(r, row, 6);
    j->cust.name = r_dup(r, row, 7);
    j->cust.domain = r_dup(r, row, 8);
    j->cust.relationship = r_dup(r, row, 9);
    j->cust.associated_partner_id = r_dup(r, row, 10);
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

    p_i64(&p, run_id);
    rc = q_done(g, "SELECT id FROM sync_run WHERE id = $1 FOR UPDATE", &p, eb,
                "locking the sync run", NULL);
    if (rc != ERR_OK)
        return rc;
    r = q(g,
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
    if (r_i64(r, 0, 0, 1) > 0) {
        PQclear(r);
        return ERR_OK;
    }
    status = r_i64(r, 0, 1, 0) > 0                            ? "failed"
             : r_i64(r, 0, 2, 0) > 0 || r_i64(r, 0, 3, 0) > 0 ? "partial"
                                                              : "ok";
    p.n = 0;
    p_text(&p, status);
    p_i64(&p, now);
    p_i64(&p, run_id);
    p_text(&p, r_str(r, 0, 4)); /* why discovery failed, NULL otherwise */
    rc = q_done(g,
                "UPDATE sync_run SET status = $1, finished_at = $2, error_message = $4 WHERE id = "
                "$3 AND status = 'running'",
                &p, eb, "finishing the sync run", NULL);
    PQclear(r);
    if (rc == ERR_OK)
        log_info("queued sync finished run=%" PRId64 " status=%s", run_id, status);
    return rc;
}

static int
pg_job_enqueue(struct store *base, int64_t integration_id, int full, int64_t now, int64_t *run_id,
               struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r = NULL;
    int64_t account = 0, pending = 0;
    int own, rc;

    rc = wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    p_i64(&p, integration_id);
    /* The integration's row lock serialises enqueues of one integration across servers. */
    r = q(g, "SELECT account_id FROM integration WHERE id = $1 FOR UPDATE", &p, eb,
          "queueing a sync", &rc);
    if (r == NULL)
        goto out;
    if (PQntuples(r) != 1) {
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", integration_id);
        goto out;
    }
    account = r_i64(r, 0, 0, 0);
    PQclear(r);
    r = q(g,
          "SELECT run_id FROM sync_job WHERE integration_id = $1 AND state IN ('queued', "
          "'leased') LIMIT 1",
          &p, eb, "queueing a sync", &rc);
    if (r == NULL)
        goto out;
    if (PQntuples(r) > 0) {
        pending = r_i64(r, 0, 0, 0);
        rc = err_set(eb, ERR_EXISTS,
                     "a queued sync of integration %" PRId64 " (run %" PRId64
                     ") is not finished yet; its workers are still at it",
                     integration_id, pending);
        goto out;
    }
    PQclear(r);
    p.n = 0;
    p_i64(&p, account);
    p_i64(&p, integration_id);
    p_text(&p, full ? "full" : "incremental");
    p_i64(&p, now);
    r = q(g,
          "INSERT INTO sync_run (account_id, integration_id, kind, started_at, status) VALUES "
          "($1, $2, $3, $4, 'running') RETURNING id",
          &p, eb, "starting the sync run", &rc);
    if (r == NULL)
        goto out;
    *run_id = r_i64(r, 0, 0, 0);
    p.n = 0;
    p_i64(&p, *run_id);
    p_i64(&p, account);
    p_i64(&p, integration_id);
    p_text(&p, full ? "full" : "incremental");
    p_i64(&p, now);
    rc = q_done(g,
                "INSERT INTO sync_job (run_id, account_id, integration_id, kind, created_at) "
                "VALUES ($1, $2, $3, $4, $5)",
                &p, eb, "queueing the discovery job", NULL);
out:
    PQclear(r);
    return wend(g, own, rc, eb);
}

/* Fails jobs whose workers died STORE_JOB_ATTEMPTS times, recording why for their tenants. */
static int
job_abandon_lapsed(struct pg *g, int64_t now, struct errbuf *eb)
{
    struct params p = {0};
    PGresult *r;
    int rc;

    p_i64(&p, now);
    p_i64(&p, STORE_JOB_ATTEMPTS);
    r = q(g,
          "UPDATE sync_job SET state = 'failed', finished_at = $1, message = 'every worker that "
          "took this job stopped before finishing it' WHERE state = 'leased' AND "
          "lease_expires_at < " DB_NOW " AND attempts >= $2 "
          "RETURNING run_id, tenant_id, tenant_name",
          &p, eb, "failing abandoned sync jobs", &rc);
    if (r == NULL)
        return rc;
    for (int i = 0; rc == ERR_OK && i < PQntuples(r); i++) {
        struct tenant_result tr = {0};
        int64_t run = r_i64(r, i, 0, 0);

        log_warn("sync job abandoned run=%" PRId64 " tenant=%s attempts=%d", run,
                 r_str(r, i, 1) != NULL ? r_str(r, i, 1) : "(discovery)", STORE_JOB_ATTEMPTS);
        if (r_str(r, i, 1) != NULL) {
            tr.tenant_id = r_str(r, i, 1);
            tr.client_name = r_str(r, i, 2);
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

static int
pg_job_lease(struct store *base, const char *worker, int lease_s, int64_t now, struct sync_job *out,
             int64_t *busy, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r = NULL;
    int own, rc, found = 0;

    rc = wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = job_abandon_lapsed(g, now, eb);
    if (rc != ERR_OK)
        goto out;
    p_text(&p, worker);
    p_i64(&p, lease_s);
    p_i64(&p, STORE_JOB_ATTEMPTS);
    r = q(g,
          "UPDATE sync_job SET state = 'leased', attempts = attempts + 1, lease_owner = $1, "
          "lease_expires_at = " DB_NOW " + $2 WHERE id = (SELECT id FROM sync_job WHERE state = "
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
        r = q(g, "SELECT count(*) FROM sync_job WHERE state = 'leased'", NULL, eb,
              "counting leased sync jobs", &rc);
        if (r != NULL)
            *busy = r_i64(r, 0, 0, 0);
    }
out:
    PQclear(r);
    rc = wend(g, own, rc, eb);
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

    p_i64(&p, j->id);
    p_text(&p, worker);
    p_text(&p, state);
    p_i64(&p, now);
    p_text(&p, message);
    rc = q_done(g,
                "UPDATE sync_job SET state = $3, finished_at = $4, message = $5 WHERE id = $1 "
                "AND state = 'leased' AND lease_owner = $2",
                &p, eb, "completing the sync job", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = lease_lost(j, eb);
    return rc;
}

static int
pg_job_renew(struct store *base, const struct sync_job *j, const char *worker, int lease_s,
             struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t changed = 0;
    int rc;

    p_i64(&p, j->id);
    p_text(&p, worker);
    p_i64(&p, lease_s);
    rc = q_done(g,
                "UPDATE sync_job SET lease_expires_at = " DB_NOW " + $3 WHERE id = $1 AND state = "
                "'leased' AND lease_owner = $2",
                &p, eb, "renewing the job lease", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = lease_lost(j, eb);
    return rc;
}

static int
pg_job_expand(struct store *base, const struct sync_job *j, const char *worker,
              const struct customer *c, size_t n, int64_t now, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    int own, rc;

    rc = wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = job_set_state(g, j, worker, "done", NULL, now, eb);
    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        struct params p = {0};

        if (c[i].tenant_id == NULL)
            continue;
        p_i64(&p, j->run_id);
        p_i64(&p, j->account_id);
        p_i64(&p, j->integration_id);
        p_text(&p, j->full ? "full" : "incremental");
        p_text(&p, c[i].tenant_id);
        p_text(&p, c[i].name);
        p_text(&p, c[i].domain);
        p_text(&p, c[i].relationship);
        p_text(&p, c[i].associated_partner_id);
        p_i64(&p, now);
        rc = q_done_c(g,
                      "INSERT INTO sync_job (run_id, account_id, integration_id, kind, tenant_id, "
                      "tenant_name, tenant_domain, relationship, associated_partner_id, "
                      "created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                      &p, eb, "queueing a tenant job", NULL);
    }
    if (rc == ERR_OK)
        rc = job_run_maybe_finish(g, j->run_id, now, eb);
    return wend(g, own, rc, eb);
}

static int
pg_job_finish(struct store *base, const struct sync_job *j, const char *worker, int ok,
              const char *message, int64_t now, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    int own, rc;

    rc = wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = job_set_state(g, j, worker, ok ? "done" : "failed", message, now, eb);
    if (rc == ERR_OK)
        rc = job_run_maybe_finish(g, j->run_id, now, eb);
    return wend(g, own, rc, eb);
}

static int
pg_job_release(struct store *base, const struct sync_job *j, const char *worker, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};

    p_i64(&p, j->id);
    p_text(&p, worker);
    return q_done(g,
                  "UPDATE sync_job SET state = 'queued', attempts = GREATEST(attempts - 1, 0), "
                  "lease_owner = NULL, lease_expires_at = NULL WHERE id = $1 AND state = "
                  "'leased' AND lease_owner = $2",
                  &p, eb, "giving the sync job back", NULL);
}

/* ---- second factor (migration 13) ------------------------------------------------------- */

/* ERR_EXISTS-like err_if_there (msg) when the user is there, else ERR_NOTFOUND. */
static int
pg_totp_why_not(struct pg *g, int64_t user_id, int err_if_there, const char *msg, struct errbuf *eb)
{
    struct params p = {0};
    PGresult *r;
    int rc, there;

    p_i64(&p, user_id);
    r = q(g, "SELECT 1 FROM app_user WHERE id = $1", &p, eb, "reading the user", &rc);
    if (r == NULL)
        return rc;
    there = PQntuples(r) == 1;
    PQclear(r);
    return there ? err_set(eb, err_if_there, "%s", msg)
                 : err_set(eb, ERR_NOTFOUND, "there is no such user");
}

static int
pg_totp_get(struct store *base, int64_t user_id, struct user_totp *out, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc;

    p_i64(&p, user_id);
    r = q(g,
          "SELECT u.id, u.account_id, u.totp_secret_sealed, u.totp_enrolled_at, u.totp_last_step, "
          "a.require_totp FROM app_user u JOIN account a ON a.id = u.account_id WHERE u.id = $1",
          &p, eb, "reading the user's second factor", &rc);
    if (r == NULL)
        return rc;
    if (PQntuples(r) != 1) {
        PQclear(r);
        return err_set(eb, ERR_NOTFOUND, "there is no such user");
    }
    out->user_id = r_i64(r, 0, 0, 0);
    out->account_id = r_i64(r, 0, 1, 0);
    out->secret_sealed = r_dup(r, 0, 2);
    out->enrolled_at = r_i64(r, 0, 3, TS_NULL);
    out->last_step = r_i64(r, 0, 4, -1);
    out->require = r_i64(r, 0, 5, 0) != 0;
    PQclear(r);
    r = q(g,
          "SELECT id, code_hash FROM user_recovery_code WHERE user_id = $1 AND used_at IS NULL "
          "ORDER BY id LIMIT 16",
          &p, eb, "reading the recovery codes", &rc);
    if (r == NULL)
        return rc;
    for (int i = 0; i < PQntuples(r) && out->ncodes < STORE_RECOVERY_MAX; i++) {
        out->code_id[out->ncodes] = r_i64(r, i, 0, 0);
        out->code_hash[out->ncodes] = r_dup(r, i, 1);
        out->ncodes++;
    }
    PQclear(r);
    return ERR_OK;
}

static int
pg_totp_begin(struct store *base, int64_t user_id, const char *sealed, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t n = 0;
    int own, rc = wbegin(g, &own, eb);

    if (rc != ERR_OK)
        return rc;
    p_i64(&p, user_id);
    p_text(&p, sealed);
    rc = q_done(g,
                "UPDATE app_user SET totp_secret_sealed = $2, totp_enrolled_at = NULL, "
                "totp_last_step = NULL WHERE id = $1 AND totp_enrolled_at IS NULL",
                &p, eb, "starting the second factor's enrolment", &n);
    if (rc == ERR_OK && n == 0)
        rc = pg_totp_why_not(g, user_id, ERR_EXISTS,
                             "the second factor is already set up; turn it off first", eb);
    p.n = 1;
    if (rc == ERR_OK)
        rc = q_done(g, "DELETE FROM user_recovery_code WHERE user_id = $1", &p, eb,
                    "removing the recovery codes", NULL);
    return wend(g, own, rc, eb);
}

static int
pg_totp_enrol(struct store *base, int64_t user_id, int64_t step, int64_t now,
              const char *const *hashes, size_t n, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t changed = 0;
    int own, rc = wbegin(g, &own, eb);

    if (rc != ERR_OK)
        return rc;
    p_i64(&p, user_id);
    p_i64(&p, now);
    p_i64(&p, step);
    rc = q_done(g,
                "UPDATE app_user SET totp_enrolled_at = $2, totp_last_step = $3 WHERE id = $1 AND "
                "totp_secret_sealed IS NOT NULL AND totp_enrolled_at IS NULL",
                &p, eb, "confirming the second factor", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "no second factor is being set up; start again");
    p.n = 1;
    if (rc == ERR_OK)
        rc = q_done(g, "DELETE FROM user_recovery_code WHERE user_id = $1", &p, eb,
                    "removing the recovery codes", NULL);
    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        p.n = 1;
        p_text(&p, hashes[i]);
        p_i64(&p, now);
        rc = q_done(g,
                    "INSERT INTO user_recovery_code (user_id, code_hash, created_at) VALUES ($1, "
                    "$2, $3)",
                    &p, eb, "storing the recovery codes", NULL);
    }
    return wend(g, own, rc, eb);
}

static int
pg_totp_use_step(struct store *base, int64_t user_id, int64_t step, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t changed = 0;
    int rc;

    p_i64(&p, user_id);
    p_i64(&p, step);
    rc = q_done(g,
                "UPDATE app_user SET totp_last_step = $2 WHERE id = $1 AND totp_enrolled_at IS NOT "
                "NULL AND (totp_last_step IS NULL OR totp_last_step < $2)",
                &p, eb, "recording the code's use", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_AUTH, "this code was already used");
    return rc;
}

static int
pg_totp_recovery_use(struct store *base, int64_t user_id, int64_t code_id, int64_t now,
                     struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t changed = 0;
    int rc;

    p_i64(&p, user_id);
    p_i64(&p, code_id);
    p_i64(&p, now);
    rc = q_done(g,
                "UPDATE user_recovery_code SET used_at = $3 WHERE id = $2 AND user_id = $1 AND "
                "used_at IS NULL",
                &p, eb, "using a recovery code", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "this recovery code was already used");
    return rc;
}

static int
pg_totp_clear(struct store *base, int64_t user_id, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t n = 0;
    int own, rc = wbegin(g, &own, eb);

    if (rc != ERR_OK)
        return rc;
    p_i64(&p, user_id);
    rc = q_done(g,
                "UPDATE app_user SET totp_secret_sealed = NULL, totp_enrolled_at = NULL, "
                "totp_last_step = NULL WHERE id = $1",
                &p, eb, "turning the second factor off", &n);
    if (rc == ERR_OK && n == 0)
        rc = err_set(eb, ERR_NOTFOUND, "there is no such user");
    if (rc == ERR_OK)
        rc = q_done(g, "DELETE FROM user_recovery_code WHERE user_id = $1", &p, eb,
                    "removing the recovery codes", NULL);
    return wend(g, own, rc, eb);
}

static int
pg_totp_secrets_each(struct store *base, int (*cb)(void *arg, int64_t user_id, const char *sealed),
                     void *arg, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    PGresult *r;
    int rc;

    r = q(g,
          "SELECT id, totp_secret_sealed FROM app_user WHERE totp_secret_sealed IS NOT NULL "
          "ORDER BY id",
          NULL, eb, "reading the second factors", &rc);
    if (r == NULL)
        return rc;
    for (int i = 0; rc == ERR_OK && i < PQntuples(r); i++)
        rc = cb(arg, r_i64(r, i, 0, 0), r_str(r, i, 1));
    PQclear(r);
    return rc;
}

static int
pg_totp_set_sealed(struct store *base, int64_t user_id, const char *sealed, struct errbuf *eb)
{
    struct params p = {0};

    p_i64(&p, user_id);
    p_text(&p, sealed);
    return pg_write((struct pg *)base,
                    "UPDATE app_user SET totp_secret_sealed = $2 WHERE id = $1 AND "
                    "totp_secret_sealed IS NOT NULL",
                    &p, 1, eb, "re-sealing the second factor");
}

static int
pg_account_require_totp(struct store *base, int64_t account_id, int on, struct errbuf *eb)
{
    struct params p = {0};

    p_i64(&p, account_id);
    p_i64(&p, on ? 1 : 0);
    return pg_write((struct pg *)base, "UPDATE account SET require_totp = $2 WHERE id = $1", &p, 1,
                    eb, "changing the account's second factor rule");
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
    .reconcile_begin = pg_reconcile_begin,
    .reconcile_device = pg_reconcile_device,
    .reconcile_installs = pg_reconcile_installs,
    .reconcile_commit = pg_reconcile_commit,
    .retire_preview = pg_retire_preview,
    .reconcile_rollback = pg_reconcile_rollback,
    .assets_each = pg_assets_each,
    .assets_count = pg_assets_count,
    .device_checkins = pg_device_checkins,
    .software_each = pg_software_each,
    .asset_changes_each = pg_asset_changes_each,
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
};
