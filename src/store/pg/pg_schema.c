/* pg_schema.c - the PostgreSQL schema and its migrations (pg_int.h). */
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
/* Migration 15: the change feed (docs/STORE.md "Change feed"). Rows are inserted with seq NULL
 * and numbered at commit by a deferred trigger, under the data_version row's lock, which the
 * transaction holds until its commit is visible: a transaction that commits later numbers its
 * rows later, so a reader never sees a seq while a lower one is still to come. The trigger's
 * first call numbers every row of the transaction (in insertion order); the others find theirs
 * numbered. */
static const char schema_v15[] =
    "CREATE TABLE change_event ("
    " id " PK ","
    " seq BIGINT UNIQUE,"
    " account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " client_id BIGINT REFERENCES client(id) ON DELETE CASCADE,"
    " asset_id BIGINT,"
    " title_id BIGINT,"
    " at BIGINT NOT NULL,"
    " kind TEXT NOT NULL,"
    " field TEXT,"
    " old_value TEXT,"
    " new_value TEXT);"
    "CREATE INDEX change_event_account ON change_event(account_id, seq);"
    "CREATE INDEX change_event_client ON change_event(client_id, seq);"
    "CREATE INDEX change_event_unnumbered ON change_event(id) WHERE seq IS NULL;"
    "ALTER TABLE data_version ADD COLUMN change_seq BIGINT NOT NULL DEFAULT 0;"
    "CREATE FUNCTION memsync_change_seq() RETURNS trigger LANGUAGE plpgsql AS $f$"
    " DECLARE n BIGINT; s BIGINT;"
    " BEGIN"
    "  PERFORM 1 FROM change_event WHERE id = NEW.id AND seq IS NULL;"
    "  IF NOT FOUND THEN RETURN NULL; END IF;"
    "  SELECT count(*) INTO n FROM change_event WHERE seq IS NULL;"
    "  UPDATE data_version SET change_seq = change_seq + n WHERE id = 1"
    "   RETURNING change_seq - n INTO s;"
    "  UPDATE change_event e SET seq = s + p.r FROM (SELECT id, row_number() OVER (ORDER BY id)"
    "   AS r FROM change_event WHERE seq IS NULL) p WHERE e.id = p.id;"
    "  RETURN NULL;"
    " END $f$;"
    "CREATE CONSTRAINT TRIGGER change_event_number AFTER INSERT ON change_event"
    " DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION memsync_change_seq();"
    "ALTER TABLE hardware_asset ADD COLUMN updated_at BIGINT;"
    "UPDATE hardware_asset h SET updated_at = GREATEST(first_synced_at, COALESCE(retired_at, 0), "
    "COALESCE((SELECT max(at) FROM asset_change c WHERE c.asset_id = h.id AND c.field NOT IN "
    "('last_check_in_at', 'storage_free_bytes')), 0));"
    "CREATE TABLE webhook ("
    " id " PK ","
    " account_id BIGINT NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " url TEXT NOT NULL,"
    " events TEXT NOT NULL,"
    " secret_sealed TEXT NOT NULL,"
    " created_at BIGINT NOT NULL,"
    " paused_at BIGINT,"
    " paused_reason TEXT);"
    "CREATE INDEX webhook_account ON webhook(account_id);"
    "CREATE TABLE webhook_delivery ("
    " id " PK ","
    " webhook_id BIGINT NOT NULL REFERENCES webhook(id) ON DELETE CASCADE,"
    " event TEXT NOT NULL,"
    " body TEXT NOT NULL,"
    " state TEXT NOT NULL DEFAULT 'queued',"
    " attempts BIGINT NOT NULL DEFAULT 0,"
    " created_at BIGINT NOT NULL,"
    " next_at BIGINT NOT NULL,"
    " last_at BIGINT,"
    " last_status BIGINT,"
    " last_latency_ms BIGINT,"
    " last_error TEXT);"
    "CREATE INDEX webhook_delivery_due ON webhook_delivery(state, next_at);"
    "CREATE INDEX webhook_delivery_hook ON webhook_delivery(webhook_id, id);"
    "CREATE TABLE webhook_position ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " change_seq BIGINT NOT NULL,"
    " run_id BIGINT NOT NULL);"
    "INSERT INTO webhook_position VALUES (1, COALESCE((SELECT max(seq) FROM change_event), 0), "
    "COALESCE((SELECT max(id) FROM sync_run), 0));";

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
int
pg_read_identity(struct pg *g, int64_t *app, int64_t *ver, int64_t *tables, struct errbuf *eb)
{
    PGresult *r;
    int rc;

    *app = *ver = -1;
    r = pg_q(g,
             "SELECT (SELECT count(*) FROM pg_catalog.pg_tables WHERE schemaname = "
             "current_schema()), to_regclass('memsync_meta') IS NOT NULL",
             NULL, eb, "reading the database catalog", &rc);
    if (r == NULL)
        return rc;
    *tables = pg_r_i64(r, 0, 0, 0);
    if (strcmp(PQgetvalue(r, 0, 1), "t") != 0) {
        PQclear(r);
        return ERR_OK;
    }
    PQclear(r);
    r = pg_q(g,
             "SELECT (SELECT value FROM memsync_meta WHERE key = 'application_id'), "
             "(SELECT value FROM memsync_meta WHERE key = 'schema_version')",
             NULL, eb, "reading the schema version", &rc);
    if (r == NULL)
        return rc;
    *app = pg_r_i64(r, 0, 0, 0);
    *ver = pg_r_i64(r, 0, 1, 0);
    PQclear(r);
    return ERR_OK;
}

/* Migration 5: software_install keyed by (asset_id, title_id), its unique key until now, without
 * the id column nothing used: an install is written into one index fewer. */
static const char schema_v5[] =
    "ALTER TABLE software_install DROP COLUMN id;"
    "ALTER TABLE software_install DROP CONSTRAINT software_install_asset_id_title_id_key;"
    "ALTER TABLE software_install ADD PRIMARY KEY (asset_id, title_id);";

/* Migration 9: the retirement policy's marks and the client's warning (sqlite_schema.c's
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

int
pg_migrate(struct pg *g, struct errbuf *eb)
{
    struct params p = {0};
    int64_t app, ver, tables;
    char *sql = NULL;
    int rc;

    rc = pg_q_done(g, "BEGIN", NULL, eb, "starting the schema migration", NULL);
    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, STORE_APPLICATION_ID);
    rc = pg_q_done(g, "SELECT pg_advisory_xact_lock($1)", &p, eb, "locking the schema", NULL);
    if (rc == ERR_OK)
        rc = pg_read_identity(g, &app, &ver, &tables, eb);
    if (rc != ERR_OK || ver == STORE_SCHEMA_VERSION)
        goto out;
    if (ver < 1) {
        sql = schema_v1();
        rc = pg_q_done(g, sql, NULL, eb, "creating the schema", NULL);
        if (rc == ERR_OK)
            rc = pg_q_done(
                g, "CREATE TABLE memsync_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)", NULL,
                eb, "creating the schema", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 2) {
        rc = pg_q_done(g, schema_v2, NULL, eb, "adding users, sessions and API keys", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < SCHEMA_JOBS) {
        rc = pg_q_done(g, schema_jobs, NULL, eb, "adding sync jobs", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 4) {
        rc = pg_q_done(g, schema_v4, NULL, eb, "adding the data version and list indexes", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 5) {
        rc = pg_q_done(g, schema_v5, NULL, eb, "keying software_install by asset and title", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 6) {
        rc = pg_q_done(g, schema_v6, NULL, eb, "counting devices per software title", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    /* Migrations 7 and 8 (the client in SQLite's list indexes, for its lazy list rows; its
     * index of each OS's devices by name, fed by the search indexer) change nothing here. */
    if (ver < 9) {
        rc = pg_q_done(g, schema_v9, NULL, eb, "adding missing marks and client warnings", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 10) {
        rc = pg_q_done(g, schema_v10, NULL, eb, "adding Microsoft's request ids to failures", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    /* Migration 11: the integration's cloud and where each secret's expiry came from. */
    if (ver < 11) {
        rc = pg_q_done(g,
                       "ALTER TABLE integration ADD COLUMN cloud TEXT NOT NULL DEFAULT 'global';"
                       "ALTER TABLE integration ADD COLUMN partner_secret_expiry_source TEXT;"
                       "ALTER TABLE integration ADD COLUMN sync_secret_expiry_source TEXT",
                       NULL, eb, "adding the integration's cloud and expiry sources", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    /* Migration 12: API keys expire (NULL: never, as every key made before). */
    if (ver < 12) {
        rc = pg_q_done(g, "ALTER TABLE api_key ADD COLUMN expires_at BIGINT", NULL, eb,
                       "adding API key expiry", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    /* Migration 13: the second factor of local users (sqlite_schema.c's schema_v13). */
    if (ver < 13) {
        rc = pg_q_done(g,
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
    /* Migration 14: single sign-on (sqlite_schema.c's schema_v14). */
    if (ver < 14) {
        rc = pg_q_done(g,
                       "CREATE TABLE account_sso ("
                       " account_id BIGINT PRIMARY KEY REFERENCES account(id) ON DELETE CASCADE,"
                       " tenant_id TEXT NOT NULL,"
                       " client_id TEXT NOT NULL,"
                       " redirect_uri TEXT NOT NULL,"
                       " secret_sealed TEXT NOT NULL,"
                       " secret_hint TEXT,"
                       " role_map TEXT NOT NULL,"
                       " worked_at BIGINT,"
                       " updated_at BIGINT NOT NULL);"
                       "ALTER TABLE account ADD COLUMN local_signin SMALLINT NOT NULL DEFAULT 1;"
                       "ALTER TABLE app_user ADD COLUMN sso_tid TEXT, ADD COLUMN sso_oid TEXT;"
                       "CREATE UNIQUE INDEX app_user_sso ON app_user(account_id, sso_tid, sso_oid)"
                       " WHERE sso_oid IS NOT NULL",
                       NULL, eb, "adding single sign-on", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 15) {
        rc = pg_q_done(g, schema_v15, NULL, eb, "adding the change feed", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 16) {
        rc = pg_q_done(g,
                       "CREATE TABLE user_pref ("
                       " user_id BIGINT NOT NULL REFERENCES app_user(id) ON DELETE CASCADE,"
                       " key TEXT NOT NULL,"
                       " value TEXT NOT NULL,"
                       " updated_at BIGINT NOT NULL,"
                       " PRIMARY KEY (user_id, key));"
                       "CREATE INDEX sync_tenant_result_tenant ON "
                       "sync_tenant_result(tenant_id, run_id)",
                       NULL, eb, "adding per-user preferences", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 17) {
        rc = pg_q_done(g,
                       "ALTER TABLE webhook ADD COLUMN from_seq BIGINT NOT NULL DEFAULT 0,"
                       " ADD COLUMN from_run BIGINT NOT NULL DEFAULT 0",
                       NULL, eb, "adding the webhooks' starting points", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 18) {
        rc = pg_q_done(g, "ALTER TABLE sync_job ADD COLUMN leased_at BIGINT", NULL, eb,
                       "adding when a sync job was leased", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 19) {
        rc = pg_q_done(g,
                       "ALTER TABLE webhook ADD COLUMN failing_since BIGINT;"
                       "CREATE INDEX webhook_delivery_queued ON webhook_delivery(webhook_id, id) "
                       "WHERE state = 'queued';"
                       "CREATE TABLE webhook_expiry_sent ("
                       " integration_id BIGINT NOT NULL REFERENCES integration(id) ON DELETE "
                       "CASCADE,"
                       " which TEXT NOT NULL,"
                       " level TEXT NOT NULL,"
                       " expires_at BIGINT NOT NULL,"
                       " sent_at BIGINT NOT NULL,"
                       " PRIMARY KEY (integration_id, which, level, expires_at))",
                       NULL, eb, "adding webhook failing times and expiry warnings", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    p.n = 0;
    pg_p_i64(&p, STORE_APPLICATION_ID);
    pg_p_i64(&p, STORE_SCHEMA_VERSION);
    rc = pg_q_done(g,
                   "INSERT INTO memsync_meta (key, value) VALUES ('application_id', $1), "
                   "('schema_version', $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                   &p, eb, "recording the schema version", NULL);
    if (rc == ERR_OK)
        log_info("database migrated backend=postgresql from=%" PRId64 " to=%d", ver < 0 ? 0 : ver,
                 STORE_SCHEMA_VERSION);
out:
    free(sql);
    if (rc == ERR_OK)
        rc = pg_q_done(g, "COMMIT", NULL, eb, "committing the schema migration", NULL);
    if (rc != ERR_OK)
        pg_rollback(g);
    return rc;
}
