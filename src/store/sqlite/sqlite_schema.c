/* sqlite_schema.c - the SQLite schema, its migrations and the file checks done before opening
 * (sqlite_int.h). */
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

/* ---- schema ------------------------------------------------------------------------------ */

static const char schema_v1_head[] =
    "CREATE TABLE account ("
    " id INTEGER PRIMARY KEY,"
    " name TEXT NOT NULL UNIQUE,"
    " created_at INTEGER NOT NULL) STRICT;"
    "CREATE TABLE integration ("
    " id INTEGER PRIMARY KEY,"
    " account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " name TEXT NOT NULL,"
    " partner_tenant_id TEXT NOT NULL,"
    " partner_app_id TEXT NOT NULL,"
    " sync_app_id TEXT NOT NULL,"
    " partner_secret_sealed TEXT,"
    " sync_secret_sealed TEXT,"
    " partner_secret_hint TEXT,"
    " sync_secret_hint TEXT,"
    " partner_secret_expires INTEGER,"
    " sync_secret_expires INTEGER,"
    " tenant_source TEXT NOT NULL DEFAULT 'partner_center'"
    "  CHECK (tenant_source IN ('partner_center', 'contracts', 'gdap')),"
    " sync_interval INTEGER NOT NULL DEFAULT 21600,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " UNIQUE (account_id, name)) STRICT;"
    "CREATE TABLE client ("
    " id INTEGER PRIMARY KEY,"
    " account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " integration_id INTEGER NOT NULL REFERENCES integration(id) ON DELETE CASCADE,"
    " tenant_id TEXT NOT NULL,"
    " name TEXT,"
    " default_domain TEXT,"
    " source TEXT NOT NULL DEFAULT 'partner_center',"
    " included INTEGER NOT NULL DEFAULT 1,"
    " name_override TEXT,"
    " status TEXT NOT NULL DEFAULT 'never' CHECK (status IN ('ok', 'error', 'never')),"
    " error_code TEXT,"
    " error_message TEXT,"
    " error_remedy TEXT,"
    " last_sync_at INTEGER,"
    " device_count INTEGER NOT NULL DEFAULT 0,"
    " software_count INTEGER NOT NULL DEFAULT 0,"
    " sync_gen INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " UNIQUE (integration_id, tenant_id)) STRICT;"
    "CREATE INDEX client_account ON client(account_id);"
    "CREATE TABLE hardware_asset ("
    " id INTEGER PRIMARY KEY,"
    " account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " client_id INTEGER NOT NULL REFERENCES client(id) ON DELETE CASCADE,"
    " integration_id INTEGER NOT NULL REFERENCES integration(id) ON DELETE CASCADE,"
    " tenant_id TEXT NOT NULL,"
    " intune_device_id TEXT NOT NULL,";

static const char schema_v1_tail[] =
    " serial_key TEXT,"
    " first_synced_at INTEGER NOT NULL,"
    " last_synced_at INTEGER NOT NULL,"
    " retired_at INTEGER,"
    " last_seen_gen INTEGER NOT NULL,"
    " UNIQUE (integration_id, tenant_id, intune_device_id)) STRICT;"
    "CREATE INDEX hardware_asset_client ON hardware_asset(client_id, retired_at);"
    "CREATE INDEX hardware_asset_serial ON hardware_asset(serial_key, account_id);"
    "CREATE INDEX hardware_asset_account ON hardware_asset(account_id, id);"
    "CREATE TABLE asset_change ("
    " id INTEGER PRIMARY KEY,"
    " account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " asset_id INTEGER NOT NULL REFERENCES hardware_asset(id) ON DELETE CASCADE,"
    " at INTEGER NOT NULL,"
    " field TEXT NOT NULL,"
    " old_value TEXT,"
    " new_value TEXT) STRICT;"
    "CREATE INDEX asset_change_asset ON asset_change(asset_id, at);"
    /* Key parts are '' rather than NULL so the UNIQUE constraint holds. */
    "CREATE TABLE software_title ("
    " id INTEGER PRIMARY KEY,"
    " account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " client_id INTEGER NOT NULL REFERENCES client(id) ON DELETE CASCADE,"
    " name TEXT NOT NULL,"
    " version TEXT NOT NULL DEFAULT '',"
    " publisher TEXT NOT NULL DEFAULT '',"
    " platform TEXT NOT NULL DEFAULT '',"
    " size_bytes INTEGER,"
    " UNIQUE (client_id, name, version, publisher, platform)) STRICT;"
    "CREATE TABLE software_install ("
    " id INTEGER PRIMARY KEY,"
    " account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " asset_id INTEGER NOT NULL REFERENCES hardware_asset(id) ON DELETE CASCADE,"
    " title_id INTEGER NOT NULL REFERENCES software_title(id) ON DELETE CASCADE,"
    " first_seen_at INTEGER NOT NULL,"
    " last_seen_at INTEGER NOT NULL,"
    " removed_at INTEGER,"
    " last_seen_gen INTEGER NOT NULL,"
    " UNIQUE (asset_id, title_id)) STRICT;"
    "CREATE INDEX software_install_title ON software_install(title_id);"
    "CREATE TABLE sync_run ("
    " id INTEGER PRIMARY KEY,"
    " account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " integration_id INTEGER NOT NULL REFERENCES integration(id) ON DELETE CASCADE,"
    " kind TEXT NOT NULL CHECK (kind IN ('full', 'incremental')),"
    " started_at INTEGER NOT NULL,"
    " finished_at INTEGER,"
    " status TEXT NOT NULL"
    "  CHECK (status IN ('running', 'ok', 'partial', 'failed', 'interrupted'))) STRICT;"
    "CREATE INDEX sync_run_integration ON sync_run(integration_id, id);"
    "CREATE TABLE sync_tenant_result ("
    " id INTEGER PRIMARY KEY,"
    " run_id INTEGER NOT NULL REFERENCES sync_run(id) ON DELETE CASCADE,"
    " tenant_id TEXT NOT NULL,"
    " client_name TEXT,"
    " status TEXT NOT NULL CHECK (status IN ('ok', 'error')),"
    " error_code TEXT,"
    " error_message TEXT,"
    " error_remedy TEXT,"
    " created INTEGER NOT NULL, updated INTEGER NOT NULL, unchanged INTEGER NOT NULL,"
    " retired INTEGER NOT NULL, revived INTEGER NOT NULL,"
    " installs_added INTEGER NOT NULL, installs_removed INTEGER NOT NULL,"
    " devices INTEGER NOT NULL, requests INTEGER NOT NULL, throttled INTEGER NOT NULL,"
    " duration_ms INTEGER NOT NULL) STRICT;"
    "CREATE INDEX sync_tenant_result_run ON sync_tenant_result(run_id);";

/* Migration 2: sign-in and API access (users, sessions, API keys) and list indexes. */
static const char schema_v2[] =
    "CREATE TABLE app_user ("
    " id INTEGER PRIMARY KEY,"
    " account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " name TEXT NOT NULL UNIQUE,"
    " role TEXT NOT NULL CHECK (role IN ('admin', 'viewer')),"
    " password_hash TEXT NOT NULL,"
    " created_at INTEGER NOT NULL) STRICT;"
    "CREATE TABLE user_session ("
    " id INTEGER PRIMARY KEY,"
    " token_hash TEXT NOT NULL UNIQUE,"
    " user_id INTEGER NOT NULL REFERENCES app_user(id) ON DELETE CASCADE,"
    " created_at INTEGER NOT NULL,"
    " expires_at INTEGER NOT NULL) STRICT;"
    "CREATE TABLE api_key ("
    " id INTEGER PRIMARY KEY,"
    " account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " name TEXT NOT NULL,"
    " scope TEXT NOT NULL CHECK (scope IN ('read', 'admin')),"
    " key_hash TEXT NOT NULL UNIQUE,"
    " prefix TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " last_used_at INTEGER,"
    " revoked_at INTEGER) STRICT;"
    "CREATE INDEX software_title_account ON software_title(account_id, name);"
    /* The filters and sorts people use most on the hardware list. */
    "CREATE INDEX hardware_asset_os ON hardware_asset(account_id, os_name, retired_at);"
    "CREATE INDEX hardware_asset_checkin ON hardware_asset(account_id, retired_at, "
    "last_check_in_at, id);"
    "CREATE INDEX hardware_asset_name ON hardware_asset(account_id, retired_at, name, id);"
    "CREATE INDEX sync_run_account ON sync_run(account_id, id);";

/* Migration 4: the data version behind the count cache, indexes for one client's list sorted
 * by check-in or name (replacing hardware_asset_client, their prefix), and the trigram index
 * behind free-text search. */
static const char schema_v4_head[] =
    "CREATE TABLE data_version ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " v INTEGER NOT NULL) STRICT;"
    /* A random start: a database recreated at the same path never repeats a version. */
    "INSERT INTO data_version (id, v) VALUES (1, (random() >> 12) & 0x7FFFFFFFFFFF);"
    /* Every reconcile ends by updating its client row, so these cover asset changes too. */
    "CREATE TRIGGER client_version_ins AFTER INSERT ON client"
    " BEGIN UPDATE data_version SET v = v + 1 WHERE id = 1; END;"
    "CREATE TRIGGER client_version_upd AFTER UPDATE ON client"
    " BEGIN UPDATE data_version SET v = v + 1 WHERE id = 1; END;"
    "CREATE TRIGGER client_version_del AFTER DELETE ON client"
    " BEGIN UPDATE data_version SET v = v + 1 WHERE id = 1; END;"
    "CREATE TRIGGER integration_version_ins AFTER INSERT ON integration"
    " BEGIN UPDATE data_version SET v = v + 1 WHERE id = 1; END;"
    "CREATE TRIGGER integration_version_upd AFTER UPDATE ON integration"
    " BEGIN UPDATE data_version SET v = v + 1 WHERE id = 1; END;"
    "CREATE TRIGGER integration_version_del AFTER DELETE ON integration"
    " BEGIN UPDATE data_version SET v = v + 1 WHERE id = 1; END;"
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
    "last_check_in_at);"
    "CREATE INDEX hardware_asset_client_name ON hardware_asset(client_id, retired_at, name);";

/* Migration 5: software_install without its own rowid, keyed by (asset_id, title_id) (its unique
 * key until now). An install is written into one b-tree fewer (the unique index was a second
 * copy of the row's key), and the sync never needed the install's id. Its foreign keys are
 * checked at COMMIT: together with INSERT OR ROLLBACK that spares a multi-row INSERT the
 * statement journal (a copy of every page it touches, kept to undo the statement alone). */
static const char schema_v5[] =
    "CREATE TABLE software_install_v5 ("
    " account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE"
    "  DEFERRABLE INITIALLY DEFERRED,"
    " asset_id INTEGER NOT NULL REFERENCES hardware_asset(id) ON DELETE CASCADE"
    "  DEFERRABLE INITIALLY DEFERRED,"
    " title_id INTEGER NOT NULL REFERENCES software_title(id) ON DELETE CASCADE"
    "  DEFERRABLE INITIALLY DEFERRED,"
    " first_seen_at INTEGER NOT NULL,"
    " last_seen_at INTEGER NOT NULL,"
    " removed_at INTEGER,"
    " last_seen_gen INTEGER NOT NULL,"
    " PRIMARY KEY (asset_id, title_id)) STRICT, WITHOUT ROWID;"
    "INSERT INTO software_install_v5 (account_id, asset_id, title_id, first_seen_at, "
    "last_seen_at, removed_at, last_seen_gen) SELECT account_id, asset_id, title_id, "
    "first_seen_at, last_seen_at, removed_at, last_seen_gen FROM software_install;"
    "DROP TABLE software_install;"
    "ALTER TABLE software_install_v5 RENAME TO software_install;"
    "CREATE INDEX software_install_title ON software_install(title_id);";

/* Migration 6: software_title.device_count, kept by the reconcile as installs and devices
 * change (reconcile.c's title deltas), instead of an index of software_install by title. Keeping
 * that index cost the sync about a fifth of its CPU per install: each install went to a random
 * leaf of it. A title's devices are now found from its client's devices (whose installs are
 * keyed by device). Without the index a title's foreign key would scan every install when a
 * title is deleted, so it goes too: titles are deleted only with their client, whose devices
 * take their installs with them. */
static const char schema_v6[] =
    "ALTER TABLE software_title ADD COLUMN device_count INTEGER NOT NULL DEFAULT 0;"
    "UPDATE software_title SET device_count = (SELECT count(*) FROM software_install i "
    "JOIN hardware_asset h ON h.id = i.asset_id WHERE i.title_id = software_title.id "
    "AND i.removed_at IS NULL AND h.retired_at IS NULL);"
    "CREATE TABLE software_install_v6 ("
    " account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE"
    "  DEFERRABLE INITIALLY DEFERRED,"
    " asset_id INTEGER NOT NULL REFERENCES hardware_asset(id) ON DELETE CASCADE"
    "  DEFERRABLE INITIALLY DEFERRED,"
    " title_id INTEGER NOT NULL,"
    " first_seen_at INTEGER NOT NULL,"
    " last_seen_at INTEGER NOT NULL,"
    " removed_at INTEGER,"
    " last_seen_gen INTEGER NOT NULL,"
    " PRIMARY KEY (asset_id, title_id)) STRICT, WITHOUT ROWID;"
    "INSERT INTO software_install_v6 (account_id, asset_id, title_id, first_seen_at, "
    "last_seen_at, removed_at, last_seen_gen) SELECT account_id, asset_id, title_id, "
    "first_seen_at, last_seen_at, removed_at, last_seen_gen FROM software_install "
    "ORDER BY asset_id, title_id;"
    "DROP TABLE software_install;"
    "ALTER TABLE software_install_v6 RENAME TO software_install;";

/* Migration 7: the account-wide list indexes also hold the client (and the id-ordered one the
 * retirement and compliance), so that a list page whose filters and sort they cover reads no
 * table row: its rows' rendered JSON comes from serve's row cache (sq_assets_part's lazy
 * rows). The OS index compares without case, as an OS eq filter does (sq_ieq), so that filter
 * (and its count) uses it. Not the name after it: a sync's inserts would land at random places
 * in it instead of at the end of their client's run, 2 us more CPU per device. */
static const char schema_v7[] =
    "DROP INDEX hardware_asset_os;"
    "CREATE INDEX hardware_asset_os ON hardware_asset(account_id, os_name COLLATE NOCASE, "
    "retired_at, client_id);"
    "DROP INDEX hardware_asset_checkin;"
    "CREATE INDEX hardware_asset_checkin ON hardware_asset(account_id, retired_at, "
    "last_check_in_at, id, os_name, client_id);"
    "DROP INDEX hardware_asset_name;"
    "CREATE INDEX hardware_asset_name ON hardware_asset(account_id, retired_at, name, id, "
    "os_name, client_id);"
    "DROP INDEX hardware_asset_account;"
    "CREATE INDEX hardware_asset_account ON hardware_asset(account_id, id, retired_at, "
    "compliance_state, client_id);";

/* Migration 8: the list of one OS sorted by name, as one index walk (sq_assets_each: os_walk),
 * without costing the sync: the index holds only rows the search indexer has reached
 * (search_indexed set by store_search_index, between syncs), so a sync's inserts skip it. Rows
 * it lacks exist only until the indexer's next pass; a list then walks the name index as
 * before. Changed rows already in it are kept current by their UPDATE, as in every index. The
 * trailing search_indexed makes the walk covering (SQLite reads the partial index's own term
 * from the row otherwise). */
/* Migration 11: the integration's cloud (cloud.h) and where each secret's expiry came from
 * (NULL: entered). Values are checked in store.c. */
static const char schema_v11[] =
    "ALTER TABLE integration ADD COLUMN cloud TEXT NOT NULL DEFAULT 'global';"
    "ALTER TABLE integration ADD COLUMN partner_secret_expiry_source TEXT;"
    "ALTER TABLE integration ADD COLUMN sync_secret_expiry_source TEXT;";

/* Migration 12: API keys expire (NULL: never, as every key made before). */
static const char schema_v12[] = "ALTER TABLE api_key ADD COLUMN expires_at INTEGER;";

/* Migration 13: a second factor for local users (TOTP secret sealed with the vault, when it was
 * confirmed, the last step used: a code is accepted once, also across restarts), their single-use
 * recovery codes (hashed), and the account's rule that every local user needs one. */
static const char schema_v13[] =
    "ALTER TABLE app_user ADD COLUMN totp_secret_sealed TEXT;"
    "ALTER TABLE app_user ADD COLUMN totp_enrolled_at INTEGER;"
    "ALTER TABLE app_user ADD COLUMN totp_last_step INTEGER;"
    "ALTER TABLE account ADD COLUMN require_totp INTEGER NOT NULL DEFAULT 0;"
    "CREATE TABLE user_recovery_code ("
    " id INTEGER PRIMARY KEY,"
    " user_id INTEGER NOT NULL REFERENCES app_user(id) ON DELETE CASCADE,"
    " code_hash TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " used_at INTEGER) STRICT;"
    "CREATE INDEX user_recovery_code_user ON user_recovery_code(user_id);";

/* Migration 14: single sign-on with Microsoft Entra ID. The account's sign-in app (tenant, app
 * id, redirect URI, client secret sealed with the vault for ("account_sso", account id,
 * "client_secret"), role mapping, when a sign-in last worked), its switch for password sign-in,
 * and the Entra identity (tenant id, object id) of users made by a sign-in, unique per account. */
static const char schema_v14[] =
    "CREATE TABLE account_sso ("
    " account_id INTEGER PRIMARY KEY REFERENCES account(id) ON DELETE CASCADE,"
    " tenant_id TEXT NOT NULL,"
    " client_id TEXT NOT NULL,"
    " redirect_uri TEXT NOT NULL,"
    " secret_sealed TEXT NOT NULL,"
    " secret_hint TEXT,"
    " role_map TEXT NOT NULL,"
    " worked_at INTEGER,"
    " updated_at INTEGER NOT NULL) STRICT;"
    "ALTER TABLE account ADD COLUMN local_signin INTEGER NOT NULL DEFAULT 1;"
    "ALTER TABLE app_user ADD COLUMN sso_tid TEXT;"
    "ALTER TABLE app_user ADD COLUMN sso_oid TEXT;"
    "CREATE UNIQUE INDEX app_user_sso ON app_user(account_id, sso_tid, sso_oid) WHERE sso_oid IS "
    "NOT NULL;";
/* Migration 15: the change feed (docs/STORE.md "Change feed"). AUTOINCREMENT: a seq is never
 * handed out twice, even after the newest rows went with their client. updated_at of the
 * existing assets: their newest reported change, else their first sync. */
static const char schema_v15[] =
    "CREATE TABLE change_event ("
    " seq INTEGER PRIMARY KEY AUTOINCREMENT,"
    " account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " client_id INTEGER REFERENCES client(id) ON DELETE CASCADE,"
    " asset_id INTEGER,"
    " title_id INTEGER,"
    " at INTEGER NOT NULL,"
    " kind TEXT NOT NULL,"
    " field TEXT,"
    " old_value TEXT,"
    " new_value TEXT) STRICT;"
    "CREATE INDEX change_event_account ON change_event(account_id, seq);"
    "CREATE INDEX change_event_client ON change_event(client_id, seq);"
    "ALTER TABLE hardware_asset ADD COLUMN updated_at INTEGER;"
    "UPDATE hardware_asset SET updated_at = max(first_synced_at, COALESCE(retired_at, 0), "
    "COALESCE((SELECT max(at) FROM asset_change c WHERE c.asset_id = hardware_asset.id AND "
    "c.field NOT IN ('last_check_in_at', 'storage_free_bytes')), 0));"
    /* Webhooks: subscriptions, their delivery queue and log, and how far the dispatcher read. */
    "CREATE TABLE webhook ("
    " id INTEGER PRIMARY KEY,"
    " account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
    " url TEXT NOT NULL,"
    " events TEXT NOT NULL,"
    " secret_sealed TEXT NOT NULL,"
    " created_at INTEGER NOT NULL,"
    " paused_at INTEGER,"
    " paused_reason TEXT) STRICT;"
    "CREATE INDEX webhook_account ON webhook(account_id);"
    "CREATE TABLE webhook_delivery ("
    " id INTEGER PRIMARY KEY,"
    " webhook_id INTEGER NOT NULL REFERENCES webhook(id) ON DELETE CASCADE,"
    " event TEXT NOT NULL,"
    " body TEXT NOT NULL,"
    " state TEXT NOT NULL DEFAULT 'queued',"
    " attempts INTEGER NOT NULL DEFAULT 0,"
    " created_at INTEGER NOT NULL,"
    " next_at INTEGER NOT NULL,"
    " last_at INTEGER,"
    " last_status INTEGER,"
    " last_latency_ms INTEGER,"
    " last_error TEXT) STRICT;"
    "CREATE INDEX webhook_delivery_due ON webhook_delivery(state, next_at);"
    "CREATE INDEX webhook_delivery_hook ON webhook_delivery(webhook_id, id);"
    "CREATE TABLE webhook_position ("
    " id INTEGER PRIMARY KEY CHECK (id = 1),"
    " change_seq INTEGER NOT NULL,"
    " run_id INTEGER NOT NULL) STRICT;"
    "INSERT INTO webhook_position VALUES (1, COALESCE((SELECT max(seq) FROM change_event), 0), "
    "COALESCE((SELECT max(id) FROM sync_run), 0));";
static const char schema_v16[] =
    "CREATE TABLE user_pref ("
    " user_id INTEGER NOT NULL REFERENCES app_user(id) ON DELETE CASCADE,"
    " key TEXT NOT NULL,"
    " value TEXT NOT NULL,"
    " updated_at INTEGER NOT NULL,"
    " PRIMARY KEY (user_id, key)) STRICT;"
    "CREATE INDEX sync_tenant_result_tenant ON sync_tenant_result(tenant_id, run_id);";
static const char schema_v17[] =
    "ALTER TABLE webhook ADD COLUMN from_seq INTEGER NOT NULL DEFAULT 0;"
    "ALTER TABLE webhook ADD COLUMN from_run INTEGER NOT NULL DEFAULT 0;";
/* Migration 19: when a subscription's failing began, each queued
 * delivery's head-of-queue lookup, and the secret-expiry warnings already sent. */
static const char schema_v19[] =
    "ALTER TABLE webhook ADD COLUMN failing_since INTEGER;"
    "CREATE INDEX webhook_delivery_queued ON webhook_delivery(webhook_id, id) WHERE state = "
    "'queued';"
    "CREATE TABLE webhook_expiry_sent ("
    " integration_id INTEGER NOT NULL REFERENCES integration(id) ON DELETE CASCADE,"
    " which TEXT NOT NULL,"
    " level TEXT NOT NULL,"
    " expires_at INTEGER NOT NULL,"
    " sent_at INTEGER NOT NULL,"
    " PRIMARY KEY (integration_id, which, level, expires_at)) STRICT;";

static const char schema_v8[] =
    "CREATE INDEX hardware_asset_os_name ON hardware_asset(account_id, os_name COLLATE NOCASE, "
    "retired_at, name, id, client_id, search_indexed) WHERE search_indexed IS NOT NULL;";

/* Migration 9: the retirement policy's marks (a device is retired only after it was missing
 * from several complete listings over some time: store_reconcile_commit) and the client's
 * warning (a successful sync that has something to say). The partial index finds a client's
 * marked active devices, which are few, without walking its others (a retired device keeps its
 * missing_since and leaves the index). */
static const char schema_v9[] =
    "ALTER TABLE hardware_asset ADD COLUMN missing_since INTEGER;"
    "ALTER TABLE hardware_asset ADD COLUMN missing_syncs INTEGER NOT NULL DEFAULT 0;"
    "CREATE INDEX hardware_asset_missing ON hardware_asset(client_id) "
    "WHERE missing_since IS NOT NULL AND retired_at IS NULL;"
    "ALTER TABLE client ADD COLUMN warning_code TEXT;"
    "ALTER TABLE client ADD COLUMN warning_message TEXT;"
    "ALTER TABLE client ADD COLUMN warning_remedy TEXT;";
/* Migration 10: Microsoft's request id and date of a tenant's failure, for its support. */
static const char schema_v10[] = "ALTER TABLE client ADD COLUMN error_request_id TEXT;"
                                 "ALTER TABLE client ADD COLUMN error_date TEXT;"
                                 "ALTER TABLE sync_tenant_result ADD COLUMN error_request_id TEXT;"
                                 "ALTER TABLE sync_tenant_result ADD COLUMN error_date TEXT;";

/* The search columns of hardware_asset (device_fields names), "" when one does not exist. */
void
sq_search_cols(const struct sq *s, const char *pre, struct buf *b)
{
    const char *cols[] = {s->dsql.col_name, s->dsql.col_serial, s->dsql.col_upn, s->dsql.col_user,
                          s->dsql.col_model};
    int first = 1;

    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        if (cols[i] == NULL)
            continue;
        buf_printf(b, "%s%s%s", first ? "" : ", ", pre, cols[i]);
        first = 0;
    }
}

/* hardware_search: an external-content FTS5 index (trigram, rowids only) over the search
 * columns. The sync does not feed it: a new asset has search_indexed NULL and is found by a
 * scan of those rows (a partial index) until store_search_index() adds it, off the sync's path
 * (serve's scheduler between syncs). Triggers keep indexed rows current. */
static char *
schema_v4(const struct sq *s)
{
    const char *cols[] = {s->dsql.col_name, s->dsql.col_serial, s->dsql.col_upn, s->dsql.col_user,
                          s->dsql.col_model};
    struct buf b;
    int first = 1;

    buf_init(&b, SQL_MAX);
    ASSERT(buf_addstr(&b, schema_v4_head) == ERR_OK);
    buf_addstr(&b, "ALTER TABLE sync_run ADD COLUMN error_message TEXT;"
                   "ALTER TABLE hardware_asset ADD COLUMN search_indexed INTEGER;"
                   "CREATE INDEX hardware_asset_unindexed ON hardware_asset(id) WHERE "
                   "search_indexed IS NULL;"
                   "CREATE VIRTUAL TABLE hardware_search USING fts5(");
    sq_search_cols(s, "", &b);
    buf_addstr(&b, ", content='hardware_asset', content_rowid='id', tokenize='trigram', "
                   "detail='none');"
                   "CREATE TRIGGER hardware_search_del AFTER DELETE ON hardware_asset WHEN "
                   "old.search_indexed IS NOT NULL BEGIN "
                   "INSERT INTO hardware_search (hardware_search, rowid, ");
    sq_search_cols(s, "", &b);
    buf_addstr(&b, ") VALUES ('delete', old.id, ");
    sq_search_cols(s, "old.", &b);
    buf_addstr(&b, "); END;"
                   "CREATE TRIGGER hardware_search_upd AFTER UPDATE OF ");
    sq_search_cols(s, "", &b);
    buf_addstr(&b, " ON hardware_asset WHEN old.search_indexed IS NOT NULL AND (");
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        if (cols[i] == NULL)
            continue;
        buf_printf(&b, "%sold.%s IS NOT new.%s", first ? "" : " OR ", cols[i], cols[i]);
        first = 0;
    }
    buf_addstr(&b, ") BEGIN INSERT INTO hardware_search (hardware_search, rowid, ");
    sq_search_cols(s, "", &b);
    buf_addstr(&b, ") VALUES ('delete', old.id, ");
    sq_search_cols(s, "old.", &b);
    buf_addstr(&b, "); INSERT INTO hardware_search (rowid, ");
    sq_search_cols(s, "", &b);
    buf_addstr(&b, ") VALUES (new.id, ");
    sq_search_cols(s, "new.", &b);
    ASSERT(buf_addstr(&b, "); END;") == ERR_OK);
    return buf_detach(&b, NULL);
}

static char *
schema_v1(void)
{
    struct buf b;
    static const char *const types[] = {
        [DF_STR] = "TEXT",   [DF_INT64] = "INTEGER", [DF_BOOL] = "INTEGER",
        [DF_TS] = "INTEGER", [DF_TYPE] = "TEXT",
    };

    buf_init(&b, SQL_MAX);
    ASSERT(buf_addstr(&b, schema_v1_head) == ERR_OK);
    for (size_t i = 0; i < device_field_count; i++)
        ASSERT(buf_printf(&b, " %s %s,", device_fields[i].name, types[device_fields[i].kind]) ==
               ERR_OK);
    ASSERT(buf_addstr(&b, schema_v1_tail) == ERR_OK);
    return buf_detach(&b, NULL);
}

int
sq_pragma_int(struct sq *s, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sq_prep_once(s, sql, -1, &st, NULL);

    if (rc == SQLITE_OK) {
        rc = sqlite3_step(st);
        if (rc == SQLITE_ROW) {
            *out = sqlite3_column_int64(st, 0);
            rc = SQLITE_OK;
        }
    }
    if (rc != SQLITE_OK)
        rc = sqlite3_extended_errcode(s->db);
    sqlite3_finalize(st);
    return rc;
}

int
sq_not_sqlite(const char *path, struct errbuf *eb)
{
    return err_set(eb, ERR_DB,
                   "%s is not a SQLite database, so it cannot be memsync's database; pass another "
                   "path with --db (the file was left untouched)",
                   path);
}

/* Refuses files that are not SQLite, before SQLite gets a chance to touch them. */
int
sq_check_header(const char *path, struct errbuf *eb)
{
    static const char magic[16] = "SQLite format 3";
    char head[16];
    struct stat sb;
    FILE *fp = NULL;
    size_t got;

    if (strcmp(path, ":memory:") == 0)
        return ERR_OK;
    if (stat(path, &sb) != 0) {
        if (errno == ENOENT)
            return ERR_OK;
        return err_set(eb, ERR_IO, "cannot access database %s: %s", path, err_strerror(errno));
    }
    if (S_ISDIR(sb.st_mode))
        return err_set(eb, ERR_IO, "database path %s is a directory; pass a file path with --db",
                       path);
    if (sb.st_size == 0)
        return ERR_OK;
    fp = fopen(path, "rb");
    if (fp == NULL)
        return err_set(eb, ERR_IO, "cannot read database %s: %s", path, err_strerror(errno));
    got = fread(head, 1, sizeof head, fp);
    fclose(fp);
    if (got != sizeof head || memcmp(head, magic, sizeof magic) != 0)
        return sq_not_sqlite(path, eb);
    return ERR_OK;
}

int
sq_migrate(struct sq *s, struct errbuf *eb)
{
    int64_t ver = 0;
    char *sql = NULL;
    char pr[128];
    int rc;

    rc = sq_exec_sql(s, "BEGIN IMMEDIATE", eb, "starting the schema migration");
    if (rc != ERR_OK)
        return rc;
    /* Re-read inside the lock: another process may have migrated meanwhile. */
    if (sq_pragma_int(s, "PRAGMA user_version", &ver) != SQLITE_OK) {
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the schema version");
        goto out;
    }
    if (ver == STORE_SCHEMA_VERSION)
        goto out;
    if (ver < 1) {
        sql = schema_v1();
        rc = sq_exec_sql(s, sql, eb, "creating the schema");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 2) {
        rc = sq_exec_sql(s, schema_v2, eb, "adding users, sessions and API keys");
        if (rc != ERR_OK)
            goto out;
    }
    /* Migration 3 (sync jobs for `memsync worker`) is PostgreSQL-only: nothing to add here. */
    if (ver < 4) {
        free(sql);
        sql = schema_v4(s);
        rc = sq_exec_sql(s, sql, eb, "adding the data version, list indexes and the search index");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 5) {
        rc = sq_exec_sql(s, schema_v5, eb, "rebuilding software_install without a rowid");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 6) {
        rc = sq_exec_sql(s, schema_v6, eb, "counting devices per software title");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 7) {
        rc = sq_exec_sql(s, schema_v7, eb, "adding the client to the list indexes");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 8) {
        rc = sq_exec_sql(s, schema_v8, eb, "adding the index of each OS's devices by name");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 9) {
        rc = sq_exec_sql(s, schema_v9, eb, "adding missing marks and client warnings");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 10) {
        rc = sq_exec_sql(s, schema_v10, eb, "adding Microsoft's request ids to failures");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 11) {
        rc = sq_exec_sql(s, schema_v11, eb, "adding the integration's cloud and expiry sources");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 12) {
        rc = sq_exec_sql(s, schema_v12, eb, "adding API key expiry");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 13) {
        rc = sq_exec_sql(s, schema_v13, eb, "adding the second factor of local users");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 14) {
        rc = sq_exec_sql(s, schema_v14, eb, "adding single sign-on");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 15) {
        rc = sq_exec_sql(s, schema_v15, eb, "adding the change feed");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 16) {
        rc = sq_exec_sql(s, schema_v16, eb, "adding per-user preferences");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 17) {
        rc = sq_exec_sql(s, schema_v17, eb, "adding the webhooks' starting points");
        if (rc != ERR_OK)
            goto out;
    }
    /* Schema 18 changes sync_job, which only PostgreSQL has: nothing to do here. */
    if (ver < 19) {
        rc = sq_exec_sql(s, schema_v19, eb, "adding webhook failing times and expiry warnings");
        if (rc != ERR_OK)
            goto out;
    }
    snprintf(pr, sizeof pr, "PRAGMA application_id = %d; PRAGMA user_version = %d",
             STORE_APPLICATION_ID, STORE_SCHEMA_VERSION);
    rc = sq_exec_sql(s, pr, eb, "recording the schema version");
    if (rc == ERR_OK)
        log_info("database migrated path=%s from=%" PRId64 " to=%d", s->path, ver,
                 STORE_SCHEMA_VERSION);
out:
    free(sql);
    if (rc == ERR_OK)
        rc = sq_exec_sql(s, "COMMIT", eb, "committing the schema migration");
    if (rc != ERR_OK) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return err_prefix(eb, rc, "database %s", s->path);
    }
    return ERR_OK;
}
