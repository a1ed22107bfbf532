/* store_sqlite.c - the SQLite backend of store.h.
 *
 * One connection per struct store. Every write runs inside BEGIN IMMEDIATE (so a writer waits
 * for the lock under busy_timeout instead of failing on upgrade). Hot statements are prepared
 * once (persistent) and reset after each use so no read transaction stays open. The device
 * columns of hardware_asset are generated from device_fields, so adding a device field is one
 * line in device.c plus a migration here.
 */
#include "serialset.h"
#include "store.h"

#include <errno.h>
#include <pthread.h>
#include <inttypes.h>
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

#define SQL_MAX (256 * 1024)

enum stmt_id {
    S_ACCOUNT_INS,
    S_ACCOUNT_GET,
    S_INTEG_INS,
    S_INTEG_GET,
    S_INTEG_LIST,
    S_INTEG_SECRET_P,
    S_INTEG_SECRET_S,
    S_INTEG_EXPIRY_P,
    S_INTEG_EXPIRY_S,
    S_INTEG_DEL,
    S_INTEG_OWNED,
    S_CLIENT_FAIL,
    S_CLIENT_BEGIN,
    S_ASSET_FIND,
    S_ASSET_ANY,
    S_ASSET_INS,
    S_ASSET_UPD,
    S_ASSET_TOUCH,
    S_CHANGE_INS,
    S_ASSET_ID,
    S_TITLE_UPSERT,
    S_TITLE_INS,
    S_INST_FIND,
    S_INST_INS, /* followed by INST_BATCH_LOG more: 2, 4, ... rows */
    S_INST_INS_2,
    S_INST_INS_4,
    S_INST_INS_8,
    S_INST_INS_16,
    S_INST_INS_32,
    S_INST_UPD,
    S_INST_REMOVE,
    S_RETIRE,
    S_ASSET_TITLES,
    S_TITLE_COUNT,
    S_CLIENT_OK,
    S_RUN_START,
    S_RUN_TENANT,
    S_RUN_EXISTS,
    S_RUN_FINISH,
    S_DATA_VERSION,
    S_SERIAL_SHARED,
    S_SERIAL_DUP,
    S_UNINDEXED,
    S_ASSET_DEV,
    S_ASSET_DEV_BATCH,
    S_MISSING_CLEAR,
    S_MISSING_MARK,
    S_RETIRE_PREVIEW,
    S_RETIRE_PREVIEW_ALL,
    S_COUNT
};

/* Per-request statements (generated list SQL, lookups) kept prepared, keyed by their text. */
#define STMT_CACHE 24

struct sq {
    struct store base;
    int counted; /* holds a reference in open_paths */
    sqlite3 *db;
    char *path;
    sqlite3_stmt *stmt[S_COUNT];
    /* Generated from device_fields at open. */
    struct store_device_sql dsql; /* generated from device_fields (store.c) */
    /* The tenant being reconciled. */
    int rec_active;
    /* PRAGMA foreign_keys is OFF (see fk_settle); fk_keep: the caller wants it to stay so. */
    int fk_off, fk_keep;
    int rec_tuned;  /* the sync's cache and checkpoint settings are applied */
    int batch;      /* store_batch_begin's transaction is open: tenants are savepoints in it */
    int rec_sp;     /* the tenant's savepoint is open inside the batch */
    int rec_failed; /* a device or install step failed: commit must not happen */
    int64_t rec_account, rec_integration, rec_client, rec_gen, rec_now;
    char *rec_tenant;
    struct reconcile_counts rec_counts;
    /* Title ids seen in this tenant transaction: one statement per title, not per install. */
    char **title_keys;
    int64_t *title_ids;
    uint32_t *title_slots; /* open addressing: index + 1, 0 = empty */
    size_t ntitles, captitles, ntitle_slots;
    /* The device reconcile_device handled last, so its installs need no lookup. */
    int64_t rec_asset_id;
    int rec_asset_new;    /* rec_asset_id was inserted just now: it has no installs yet */
    int rec_fresh;        /* the tenant had no assets at begin: devices are inserted unlooked-up */
    int rec_asset_active; /* rec_asset_id is not retired: its installs count for their titles */
    char *rec_asset_intune;
    /* How this reconcile moves each title's device_count (open addressing on the title id,
     * 0 = empty), written at its commit: counted as installs change, not recounted. */
    struct title_delta {
        int64_t id;
        int64_t d;
    } * tdelta;
    size_t ntdelta, ntdelta_slots;
    struct {
        char *sql;
        sqlite3_stmt *st;
        uint64_t used; /* tick of the last use, for eviction */
        int busy;      /* handed out and not yet released */
    } cache[STMT_CACHE];
    uint64_t tick;
    char *title_key; /* scratch for title_id's lookup key, kept between calls */
    size_t title_key_cap;
};

static const char *const integ_cols =
    "id, account_id, name, partner_tenant_id, partner_app_id, sync_app_id, "
    "partner_secret_sealed, sync_secret_sealed, partner_secret_hint, sync_secret_hint, "
    "partner_secret_expires, sync_secret_expires, tenant_source, sync_interval, created_at, "
    "updated_at, cloud, partner_secret_expiry_source, sync_secret_expiry_source";

/* ---- errors and statement helpers ------------------------------------------------------- */

static int
db_err(struct sq *s, int src, struct errbuf *eb, const char *what)
{
    int code = ERR_DB;

    switch (src) {
    case SQLITE_CONSTRAINT_UNIQUE:
    case SQLITE_CONSTRAINT_PRIMARYKEY:
        return err_set(eb, ERR_EXISTS, "%s: already exists", what);
    case SQLITE_CONSTRAINT_FOREIGNKEY:
        return err_set(eb, ERR_NOTFOUND, "%s: refers to something that does not exist", what);
    case SQLITE_BUSY:
    case SQLITE_BUSY_SNAPSHOT:
    case SQLITE_LOCKED:
        return err_set(eb, ERR_DB,
                       "%s: database %s is locked by another process; try again when it is done",
                       what, s->path);
    case SQLITE_FULL:
        return err_set(eb, ERR_IO, "%s: the disk holding %s is full", what, s->path);
    case SQLITE_READONLY:
        return err_set(eb, ERR_DENIED, "%s: database %s is read-only", what, s->path);
    default:
        break;
    }
    return err_set(eb, code, "%s: database error: %s", what, sqlite3_errmsg(s->db));
}

/* Foreign keys stay off from one tenant's transaction to the next: switching them expires
 * every prepared statement, and re-preparing the reconcile's statements twice per tenant cost
 * about 1M instructions. Any other SQL outside a transaction switches them back on first, so
 * only reconcile and run_tenant (which check their references themselves) run without. */
static void
fk_settle(struct sq *s)
{
    if (s->fk_off && !s->fk_keep && sqlite3_get_autocommit(s->db) &&
        sqlite3_exec(s->db, "PRAGMA foreign_keys = ON", NULL, NULL, NULL) == SQLITE_OK)
        s->fk_off = 0;
}

/* sqlite3_prepare_v2 for statements prepared per use. */
static int
prep_once(struct sq *s, const char *sql, int len, sqlite3_stmt **st, const char **tail)
{
    fk_settle(s);
    return sqlite3_prepare_v2(s->db, sql, len, st, tail);
}

static int
exec_sql(struct sq *s, const char *sql, struct errbuf *eb, const char *what)
{
    int rc;

    fk_settle(s);
    rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

    if (rc != SQLITE_OK)
        return db_err(s, sqlite3_extended_errcode(s->db), eb, what);
    return ERR_OK;
}

static int
prep(struct sq *s, enum stmt_id id, const char *sql, sqlite3_stmt **out, struct errbuf *eb)
{
    fk_settle(s);
    if (s->stmt[id] == NULL) {
        int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[id], NULL);
        if (rc != SQLITE_OK) {
            s->stmt[id] = NULL;
            return db_err(s, rc, eb, "preparing a statement");
        }
    }
    *out = s->stmt[id];
    return ERR_OK;
}

/* A prepared statement for sql from the connection's cache (or a new one, cached when a slot
 * is free or idle). Give it back with release(). A statement already handed out is never
 * handed out twice: nested use of the same text gets its own. */
static int
cached(struct sq *s, const char *sql, sqlite3_stmt **out, struct errbuf *eb)
{
    int victim = -1, src;

    *out = NULL;
    fk_settle(s);
    s->tick++;
    for (int i = 0; i < STMT_CACHE; i++) {
        if (s->cache[i].sql != NULL && !s->cache[i].busy && strcmp(s->cache[i].sql, sql) == 0) {
            s->cache[i].busy = 1;
            s->cache[i].used = s->tick;
            *out = s->cache[i].st;
            return ERR_OK;
        }
        if (!s->cache[i].busy && (victim < 0 || s->cache[i].used < s->cache[victim].used))
            victim = i;
    }
    src = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, out, NULL);
    if (src != SQLITE_OK) {
        *out = NULL;
        return db_err(s, sqlite3_extended_errcode(s->db), eb, "preparing a statement");
    }
    if (victim >= 0) {
        sqlite3_finalize(s->cache[victim].st);
        free(s->cache[victim].sql);
        s->cache[victim].sql = xstrdup(sql);
        s->cache[victim].st = *out;
        s->cache[victim].busy = 1;
        s->cache[victim].used = s->tick;
    }
    return ERR_OK;
}

/* Resets a statement from cached() (NULL-safe); one that found no slot is finalized. */
static void
release(struct sq *s, sqlite3_stmt *st)
{
    if (st == NULL)
        return;
    for (int i = 0; i < STMT_CACHE; i++) {
        if (s->cache[i].st == st) {
            sqlite3_reset(st);
            sqlite3_clear_bindings(st);
            s->cache[i].busy = 0;
            return;
        }
    }
    sqlite3_finalize(st);
}

static void
done(sqlite3_stmt *st)
{
    if (st == NULL)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Steps a statement that returns no row (or whose rows are ignored) and resets it. */
static int
step_done(struct sq *s, sqlite3_stmt *st, struct errbuf *eb, const char *what)
{
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ;
    if (rc != SQLITE_DONE)
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, what);
    else
        rc = ERR_OK;
    done(st);
    return rc;
}

static void
bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v == NULL)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

static void
bind_ts(sqlite3_stmt *st, int i, int64_t v)
{
    if (v == TS_NULL)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, v);
}

static char *
col_dup(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return NULL;
    return xstrdup((const char *)sqlite3_column_text(st, i));
}

static int64_t
col_ts(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return TS_NULL;
    return sqlite3_column_int64(st, i);
}

/* Opens a write transaction unless one is already open (explicit or reconcile). */
static int
wbegin(struct sq *s, int *own, struct errbuf *eb)
{
    *own = 0;
    if (!sqlite3_get_autocommit(s->db))
        return ERR_OK;
    if (exec_sql(s, "BEGIN IMMEDIATE", eb, "starting a write") != ERR_OK)
        return eb != NULL ? eb->code : ERR_DB;
    *own = 1;
    return ERR_OK;
}

static int
wend(struct sq *s, int own, int rc, struct errbuf *eb)
{
    if (!own)
        return rc;
    if (rc == ERR_OK) {
        rc = exec_sql(s, "COMMIT", eb, "committing");
        if (rc == ERR_OK)
            return rc;
    }
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ---- device columns ---------------------------------------------------------------------- */

static void *
field_ptr(struct device *d, const struct device_field *f)
{
    return (char *)d + f->offset;
}

static void
bind_device(sqlite3_stmt *st, int first, const struct device *d)
{
    for (size_t i = 0; i < device_field_count; i++) {
        const struct device_field *f = &device_fields[i];
        const void *p = (const char *)d + f->offset;
        int idx = first + (int)i;

        switch (f->kind) {
        case DF_STR:
            /* No copy: every caller steps and clears the bindings while d is alive. */
            if (*(char *const *)p == NULL)
                sqlite3_bind_null(st, idx);
            else
                sqlite3_bind_text(st, idx, *(char *const *)p, -1, SQLITE_STATIC);
            break;
        case DF_INT64:
            if (*(const int64_t *)p < 0)
                sqlite3_bind_null(st, idx);
            else
                sqlite3_bind_int64(st, idx, *(const int64_t *)p);
            break;
        case DF_BOOL:
            if (*(const int *)p < 0)
                sqlite3_bind_null(st, idx);
            else
                sqlite3_bind_int(st, idx, *(const int *)p != 0);
            break;
        case DF_TS:
            bind_ts(st, idx, *(const int64_t *)p);
            break;
        case DF_TYPE:
            sqlite3_bind_text(st, idx, device_type_name(*(const enum device_type *)p), -1,
                              SQLITE_STATIC);
            break;
        }
    }
}

static void
read_device(sqlite3_stmt *st, int first, struct device *d)
{
    device_init(d);
    for (size_t i = 0; i < device_field_count; i++) {
        const struct device_field *f = &device_fields[i];
        void *p = field_ptr(d, f);
        int c = first + (int)i;
        int isnull = sqlite3_column_type(st, c) == SQLITE_NULL;

        switch (f->kind) {
        case DF_STR:
            *(char **)p = col_dup(st, c);
            break;
        case DF_INT64:
            *(int64_t *)p = isnull ? -1 : sqlite3_column_int64(st, c);
            break;
        case DF_BOOL:
            *(int *)p = isnull ? -1 : sqlite3_column_int(st, c) != 0;
            break;
        case DF_TS:
            *(int64_t *)p = isnull ? TS_NULL : sqlite3_column_int64(st, c);
            break;
        case DF_TYPE: {
            enum device_type t = DEVICE_UNKNOWN;
            if (!isnull && device_type_parse((const char *)sqlite3_column_text(st, c), &t) != 0)
                t = DEVICE_UNKNOWN;
            *(enum device_type *)p = t;
            break;
        }
        }
    }
}

/* Checks device field names are plain identifiers that do not collide with our own columns,
 * then builds the generated SQL. */
static int
build_device_sql(struct sq *s, struct errbuf *eb)
{
    return store_device_sql_build(&s->dsql, '?', "", eb);
}

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
 * change (tdelta_*), instead of an index of software_install by title. Keeping
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
static void
search_cols(const struct sq *s, const char *pre, struct buf *b)
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
    search_cols(s, "", &b);
    buf_addstr(&b, ", content='hardware_asset', content_rowid='id', tokenize='trigram', "
                   "detail='none');"
                   "CREATE TRIGGER hardware_search_del AFTER DELETE ON hardware_asset WHEN "
                   "old.search_indexed IS NOT NULL BEGIN "
                   "INSERT INTO hardware_search (hardware_search, rowid, ");
    search_cols(s, "", &b);
    buf_addstr(&b, ") VALUES ('delete', old.id, ");
    search_cols(s, "old.", &b);
    buf_addstr(&b, "); END;"
                   "CREATE TRIGGER hardware_search_upd AFTER UPDATE OF ");
    search_cols(s, "", &b);
    buf_addstr(&b, " ON hardware_asset WHEN old.search_indexed IS NOT NULL AND (");
    for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
        if (cols[i] == NULL)
            continue;
        buf_printf(&b, "%sold.%s IS NOT new.%s", first ? "" : " OR ", cols[i], cols[i]);
        first = 0;
    }
    buf_addstr(&b, ") BEGIN INSERT INTO hardware_search (hardware_search, rowid, ");
    search_cols(s, "", &b);
    buf_addstr(&b, ") VALUES ('delete', old.id, ");
    search_cols(s, "old.", &b);
    buf_addstr(&b, "); INSERT INTO hardware_search (rowid, ");
    search_cols(s, "", &b);
    buf_addstr(&b, ") VALUES (new.id, ");
    search_cols(s, "new.", &b);
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

static int
pragma_int(struct sq *s, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = prep_once(s, sql, -1, &st, NULL);

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

static int
not_sqlite(const char *path, struct errbuf *eb)
{
    return err_set(eb, ERR_DB,
                   "%s is not a SQLite database, so it cannot be memsync's database; pass another "
                   "path with --db (the file was left untouched)",
                   path);
}

/* Refuses files that are not SQLite, before SQLite gets a chance to touch them. */
static int
check_header(const char *path, struct errbuf *eb)
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
        return err_set(eb, ERR_IO, "cannot access database %s: %s", path, strerror(errno));
    }
    if (S_ISDIR(sb.st_mode))
        return err_set(eb, ERR_IO, "database path %s is a directory; pass a file path with --db",
                       path);
    if (sb.st_size == 0)
        return ERR_OK;
    fp = fopen(path, "rb");
    if (fp == NULL)
        return err_set(eb, ERR_IO, "cannot read database %s: %s", path, strerror(errno));
    got = fread(head, 1, sizeof head, fp);
    fclose(fp);
    if (got != sizeof head || memcmp(head, magic, sizeof magic) != 0)
        return not_sqlite(path, eb);
    return ERR_OK;
}

/* Paths this process has open, with connection counts (see store_sqlite_open). */
#define OPEN_PATHS_MAX 32
static pthread_mutex_t open_mu = PTHREAD_MUTEX_INITIALIZER;
static struct {
    char *path;
    int refs;
} open_paths[OPEN_PATHS_MAX];

static int
open_refs(const char *path)
{
    for (int i = 0; i < OPEN_PATHS_MAX; i++)
        if (open_paths[i].path != NULL && strcmp(open_paths[i].path, path) == 0)
            return open_paths[i].refs;
    return 0;
}

static void
open_ref(const char *path, int delta)
{
    int free_slot = -1;

    for (int i = 0; i < OPEN_PATHS_MAX; i++) {
        if (open_paths[i].path != NULL && strcmp(open_paths[i].path, path) == 0) {
            open_paths[i].refs += delta;
            if (open_paths[i].refs <= 0) {
                free(open_paths[i].path);
                open_paths[i].path = NULL;
                open_paths[i].refs = 0;
            }
            return;
        }
        if (open_paths[i].path == NULL && free_slot < 0)
            free_slot = i;
    }
    /* A full table only means later opens of other files re-read their header. */
    if (delta > 0 && free_slot >= 0) {
        open_paths[free_slot].path = xstrdup(path);
        open_paths[free_slot].refs = delta;
    }
}

static int
migrate(struct sq *s, struct errbuf *eb)
{
    int64_t ver = 0;
    char *sql = NULL;
    char pr[128];
    int rc;

    rc = exec_sql(s, "BEGIN IMMEDIATE", eb, "starting the schema migration");
    if (rc != ERR_OK)
        return rc;
    /* Re-read inside the lock: another process may have migrated meanwhile. */
    if (pragma_int(s, "PRAGMA user_version", &ver) != SQLITE_OK) {
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the schema version");
        goto out;
    }
    if (ver == STORE_SCHEMA_VERSION)
        goto out;
    if (ver < 1) {
        sql = schema_v1();
        rc = exec_sql(s, sql, eb, "creating the schema");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 2) {
        rc = exec_sql(s, schema_v2, eb, "adding users, sessions and API keys");
        if (rc != ERR_OK)
            goto out;
    }
    /* Migration 3 (sync jobs for `memsync worker`) is PostgreSQL-only: nothing to add here. */
    if (ver < 4) {
        free(sql);
        sql = schema_v4(s);
        rc = exec_sql(s, sql, eb, "adding the data version, list indexes and the search index");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 5) {
        rc = exec_sql(s, schema_v5, eb, "rebuilding software_install without a rowid");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 6) {
        rc = exec_sql(s, schema_v6, eb, "counting devices per software title");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 7) {
        rc = exec_sql(s, schema_v7, eb, "adding the client to the list indexes");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 8) {
        rc = exec_sql(s, schema_v8, eb, "adding the index of each OS's devices by name");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 9) {
        rc = exec_sql(s, schema_v9, eb, "adding missing marks and client warnings");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 10) {
        rc = exec_sql(s, schema_v10, eb, "adding Microsoft's request ids to failures");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 11) {
        rc = exec_sql(s, schema_v11, eb, "adding the integration's cloud and expiry sources");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 12) {
        rc = exec_sql(s, schema_v12, eb, "adding API key expiry");
        if (rc != ERR_OK)
            goto out;
    }
    if (ver < 13) {
        rc = exec_sql(s, schema_v13, eb, "adding the second factor of local users");
        if (rc != ERR_OK)
            goto out;
    }
    snprintf(pr, sizeof pr, "PRAGMA application_id = %d; PRAGMA user_version = %d",
             STORE_APPLICATION_ID, STORE_SCHEMA_VERSION);
    rc = exec_sql(s, pr, eb, "recording the schema version");
    if (rc == ERR_OK)
        log_info("database migrated path=%s from=%" PRId64 " to=%d", s->path, ver,
                 STORE_SCHEMA_VERSION);
out:
    free(sql);
    if (rc == ERR_OK)
        rc = exec_sql(s, "COMMIT", eb, "committing the schema migration");
    if (rc != ERR_OK) {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        return err_prefix(eb, rc, "database %s", s->path);
    }
    return ERR_OK;
}

/* ---- open / close / transactions -------------------------------------------------------- */

static const struct store_ops sqlite_ops;

static void
sq_close(struct store *base)
{
    struct sq *s = (struct sq *)base;

    if (s->db != NULL && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    if (s->counted) {
        pthread_mutex_lock(&open_mu);
        open_ref(s->path, -1);
        pthread_mutex_unlock(&open_mu);
    }
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(s->stmt[i]);
    for (int i = 0; i < STMT_CACHE; i++) {
        sqlite3_finalize(s->cache[i].st);
        free(s->cache[i].sql);
    }
    sqlite3_close(s->db);
    free(s->path);
    store_device_sql_free(&s->dsql);
    free(s->rec_tenant);
    free(s->title_key);
    free(s);
}

void
store_sqlite_global_init(void)
{
    /* No allocation statistics: nothing reads them, and keeping them took a global mutex and
     * bookkeeping on every SQLite allocation (about 5 % of a sync's instructions). */
    sqlite3_config(SQLITE_CONFIG_MEMSTATUS, 0);
}

int
store_sqlite_open(struct store **out, const char *path, struct errbuf *eb)
{
    struct sq *s = NULL;
    int64_t app = 0, ver = 0, tables = 0;
    int rc;

    *out = NULL;
    /* close() of any descriptor on the file drops every POSIX lock this process holds on it,
     * including those of open connections: read the header only when none is open. */
    pthread_mutex_lock(&open_mu);
    rc = open_refs(path) > 0 ? ERR_OK : check_header(path, eb);
    if (rc == ERR_OK)
        open_ref(path, 1);
    pthread_mutex_unlock(&open_mu);
    if (rc != ERR_OK)
        return rc;
    s = xcalloc(1, sizeof *s);
    s->counted = 1;
    s->base.ops = &sqlite_ops;
    s->path = xstrdup(path);
    rc = build_device_sql(s, eb);
    if (rc != ERR_OK)
        goto out;
    if (sqlite3_open_v2(path, &s->db,
                        SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = err_set(eb, ERR_DB,
                     "cannot open database %s: %s; check that its directory exists and is writable "
                     "(--db or MEMSYNC_DB)",
                     path, s->db != NULL ? sqlite3_errmsg(s->db) : "out of memory");
        goto out;
    }
    sqlite3_extended_result_codes(s->db, 1);
    sqlite3_busy_timeout(s->db, 5000);
    /* Identify the file before anything writes to it. */
    if (pragma_int(s, "PRAGMA application_id", &app) != SQLITE_OK ||
        pragma_int(s, "PRAGMA user_version", &ver) != SQLITE_OK ||
        pragma_int(s, "SELECT count(*) FROM sqlite_schema", &tables) != SQLITE_OK) {
        int ec = sqlite3_extended_errcode(s->db);
        if ((ec & 0xff) == SQLITE_NOTADB || (ec & 0xff) == SQLITE_CORRUPT)
            rc = not_sqlite(path, eb);
        else
            rc = db_err(s, ec, eb, "reading the database header");
        goto out;
    }
    if (app != STORE_APPLICATION_ID && (tables > 0 || app != 0)) {
        rc = err_set(eb, ERR_DB,
                     "%s is a SQLite database but not a memsync database; pass another path "
                     "with --db (the file was left untouched)",
                     path);
        goto out;
    }
    if (app == STORE_APPLICATION_ID && ver > STORE_SCHEMA_VERSION) {
        rc = err_set(eb, ERR_DB,
                     "%s was written by a newer memsync (schema %" PRId64
                     ", this build knows up to %d); upgrade memsync to use it (the file was left "
                     "untouched)",
                     path, ver, STORE_SCHEMA_VERSION);
        goto out;
    }
    rc = exec_sql(s, "PRAGMA journal_mode = WAL", eb, "enabling WAL");
    if (rc == ERR_OK)
        rc = exec_sql(s, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", eb,
                      "configuring the connection");
    if (rc != ERR_OK) {
        err_prefix(eb, rc, "database %s", path);
        goto out;
    }
    rc = migrate(s, eb);
    if (rc != ERR_OK)
        goto out;
    *out = &s->base;
    s = NULL;
out:
    if (s != NULL)
        sq_close(&s->base);
    return rc;
}

static int
sq_tx_begin(struct store *base, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;

    if (!sqlite3_get_autocommit(s->db))
        return err_set(eb, ERR_INVAL, "a transaction is already open");
    return exec_sql(s, "BEGIN IMMEDIATE", eb, "starting a transaction");
}

static int
sq_tx_commit(struct store *base, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    int rc;

    if (sqlite3_get_autocommit(s->db))
        return err_set(eb, ERR_INVAL, "no transaction is open");
    rc = exec_sql(s, "COMMIT", eb, "committing");
    if (rc != ERR_OK)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

static void
sq_tx_rollback(struct store *base)
{
    struct sq *s = (struct sq *)base;

    if (!sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
}

/* ---- accounts and integrations ---------------------------------------------------------- */

static int
sq_account_ensure(struct store *base, const char *name, int64_t *id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int own, rc;

    rc = wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = prep(s, S_ACCOUNT_INS,
              "INSERT INTO account (name, created_at) VALUES (?1, ?2) "
              "ON CONFLICT (name) DO NOTHING",
              &st, eb);
    if (rc != ERR_OK)
        goto out;
    bind_text(st, 1, name);
    sqlite3_bind_int64(st, 2, clock_now());
    rc = step_done(s, st, eb, "creating the account");
    if (rc != ERR_OK)
        goto out;
    rc = prep(s, S_ACCOUNT_GET, "SELECT id FROM account WHERE name = ?1", &st, eb);
    if (rc != ERR_OK)
        goto out;
    bind_text(st, 1, name);
    if (sqlite3_step(st) == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    else
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the account");
    done(st);
out:
    return wend(s, own, rc, eb);
}

static void
read_integration(sqlite3_stmt *st, struct integration *in)
{
    memset(in, 0, sizeof *in);
    in->id = sqlite3_column_int64(st, 0);
    in->account_id = sqlite3_column_int64(st, 1);
    in->name = col_dup(st, 2);
    in->partner_tenant_id = col_dup(st, 3);
    in->partner_app_id = col_dup(st, 4);
    in->sync_app_id = col_dup(st, 5);
    in->partner_secret_sealed = col_dup(st, 6);
    in->sync_secret_sealed = col_dup(st, 7);
    in->partner_secret_hint = col_dup(st, 8);
    in->sync_secret_hint = col_dup(st, 9);
    in->partner_secret_expires = col_ts(st, 10);
    in->sync_secret_expires = col_ts(st, 11);
    in->tenant_source = col_dup(st, 12);
    in->sync_interval = sqlite3_column_int64(st, 13);
    in->created_at = sqlite3_column_int64(st, 14);
    in->updated_at = sqlite3_column_int64(st, 15);
    in->cloud = col_dup(st, 16);
    in->partner_secret_expiry_source = col_dup(st, 17);
    in->sync_secret_expiry_source = col_dup(st, 18);
}

static int
sq_integration_insert(struct store *base, struct integration *in, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t now = clock_now();
    int own, rc, src;

    rc = wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = prep(s, S_INTEG_INS,
              "INSERT INTO integration (account_id, name, partner_tenant_id, partner_app_id, "
              "sync_app_id, partner_secret_sealed, sync_secret_sealed, partner_secret_hint, "
              "sync_secret_hint, partner_secret_expires, sync_secret_expires, tenant_source, "
              "sync_interval, created_at, updated_at, cloud) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
              "?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, ?15) RETURNING id",
              &st, eb);
    if (rc != ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, in->account_id);
    bind_text(st, 2, in->name);
    bind_text(st, 3, in->partner_tenant_id);
    bind_text(st, 4, in->partner_app_id);
    bind_text(st, 5, in->sync_app_id);
    bind_text(st, 6, in->partner_secret_sealed);
    bind_text(st, 7, in->sync_secret_sealed);
    bind_text(st, 8, in->partner_secret_hint);
    bind_text(st, 9, in->sync_secret_hint);
    bind_ts(st, 10, in->partner_secret_expires);
    bind_ts(st, 11, in->sync_secret_expires);
    bind_text(st, 12, in->tenant_source != NULL ? in->tenant_source : "partner_center");
    sqlite3_bind_int64(st, 13, in->sync_interval > 0 ? in->sync_interval : 21600);
    sqlite3_bind_int64(st, 14, now);
    bind_text(st, 15, in->cloud != NULL ? in->cloud : "global");
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        in->id = sqlite3_column_int64(st, 0);
        in->created_at = in->updated_at = now;
        if (in->sync_interval <= 0)
            in->sync_interval = 21600;
    } else {
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "saving the integration");
        if (rc == ERR_EXISTS)
            rc = err_set(eb, ERR_EXISTS, "an integration named \"%s\" already exists", in->name);
        else if (rc == ERR_NOTFOUND)
            rc = err_set(eb, ERR_NOTFOUND, "account %" PRId64 " does not exist", in->account_id);
    }
    done(st);
out:
    return wend(s, own, rc, eb);
}

static int
sq_integration_get(struct store *base, int64_t account_id, int64_t id, struct integration *out,
                   struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    char sql[512];
    int rc, src;

    snprintf(sql, sizeof sql, "SELECT %s FROM integration WHERE account_id = ?1 AND id = ?2",
             integ_cols);
    rc = prep(s, S_INTEG_GET, sql, &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, account_id);
    sqlite3_bind_int64(st, 2, id);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        read_integration(st, out);
    else if (src == SQLITE_DONE)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
    else
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the integration");
    done(st);
    return rc;
}

static int
sq_integration_list(struct store *base, int64_t account_id, struct integration **out, size_t *n,
                    struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    struct integration *arr = NULL;
    size_t len = 0, cap = 0;
    char sql[512];
    int rc, src;

    *out = NULL;
    *n = 0;
    snprintf(sql, sizeof sql, "SELECT %s FROM integration WHERE account_id = ?1 ORDER BY id",
             integ_cols);
    rc = prep(s, S_INTEG_LIST, sql, &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, account_id);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 8;
            arr = xrealloc(arr, cap * sizeof *arr);
        }
        read_integration(st, &arr[len++]);
    }
    if (src != SQLITE_DONE) {
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "listing integrations");
        for (size_t i = 0; i < len; i++)
            integration_clear(&arr[i]);
        XFREE(arr);
        len = 0;
    }
    done(st);
    *out = arr;
    *n = len;
    return rc;
}

static int
sq_integration_set_expiry(struct store *base, int64_t id, const char *which, int64_t expires,
                          const char *source, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int own, rc;

    rc = wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = prep(s, strcmp(which, "partner") == 0 ? S_INTEG_EXPIRY_P : S_INTEG_EXPIRY_S,
              strcmp(which, "partner") == 0
                  ? "UPDATE integration SET partner_secret_expires = ?1, "
                    "partner_secret_expiry_source = ?2, updated_at = ?3 WHERE id = ?4"
                  : "UPDATE integration SET sync_secret_expires = ?1, "
                    "sync_secret_expiry_source = ?2, updated_at = ?3 WHERE id = ?4",
              &st, eb);
    if (rc != ERR_OK)
        goto out;
    bind_ts(st, 1, expires);
    bind_text(st, 2, source);
    sqlite3_bind_int64(st, 3, clock_now());
    sqlite3_bind_int64(st, 4, id);
    rc = step_done(s, st, eb, "saving the secret's expiry");
    if (rc == ERR_OK && sqlite3_changes(s->db) == 0)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
out:
    return wend(s, own, rc, eb);
}

static int
sq_integration_set_secret(struct store *base, int64_t id, const char *which, const char *sealed,
                          const char *hint, int64_t expires, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int partner = strcmp(which, "partner") == 0;
    int own, rc;

    rc = wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    if (partner)
        rc = prep(s, S_INTEG_SECRET_P,
                  "UPDATE integration SET partner_secret_sealed = ?1, partner_secret_hint = ?2, "
                  "partner_secret_expires = ?3, partner_secret_expiry_source = NULL, "
                  "updated_at = ?4 WHERE id = ?5",
                  &st, eb);
    else
        rc = prep(s, S_INTEG_SECRET_S,
                  "UPDATE integration SET sync_secret_sealed = ?1, sync_secret_hint = ?2, "
                  "sync_secret_expires = ?3, sync_secret_expiry_source = NULL, updated_at = ?4 "
                  "WHERE id = ?5",
                  &st, eb);
    if (rc != ERR_OK)
        goto out;
    bind_text(st, 1, sealed);
    bind_text(st, 2, hint);
    bind_ts(st, 3, expires);
    sqlite3_bind_int64(st, 4, clock_now());
    sqlite3_bind_int64(st, 5, id);
    rc = step_done(s, st, eb, "saving the secret");
    if (rc == ERR_OK && sqlite3_changes(s->db) == 0)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
out:
    return wend(s, own, rc, eb);
}

static int
sq_integration_delete(struct store *base, int64_t account_id, int64_t id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int own, rc;

    rc = wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = prep(s, S_INTEG_DEL, "DELETE FROM integration WHERE account_id = ?1 AND id = ?2", &st, eb);
    if (rc != ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, account_id);
    sqlite3_bind_int64(st, 2, id);
    rc = step_done(s, st, eb, "deleting the integration");
    if (rc == ERR_OK && sqlite3_changes(s->db) == 0)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
out:
    return wend(s, own, rc, eb);
}

/* ---- clients ----------------------------------------------------------------------------- */

static int
sq_clients_each(struct store *base, int64_t account_id,
                int (*cb)(void *arg, const struct client_row *c), void *arg, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    struct client_row c;
    int rc = ERR_OK, src;

    /* Not cached: the callback may use the store while we iterate. */
    src = prep_once(
        s,
        "SELECT id, integration_id, tenant_id, COALESCE(name_override, name), default_domain, "
        "source, included, status, error_code, error_message, error_remedy, last_sync_at, "
        "device_count, software_count, error_request_id, error_date, warning_code, "
        "warning_message, warning_remedy FROM client WHERE account_id = ?1 "
        "ORDER BY lower(COALESCE(name_override, name, tenant_id)), id",
        -1, &st, NULL);
    if (src != SQLITE_OK)
        return db_err(s, src, eb, "listing clients");
    sqlite3_bind_int64(st, 1, account_id);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        c.id = sqlite3_column_int64(st, 0);
        c.integration_id = sqlite3_column_int64(st, 1);
        c.tenant_id = col_dup(st, 2);
        c.name = col_dup(st, 3);
        c.default_domain = col_dup(st, 4);
        c.source = col_dup(st, 5);
        c.included = sqlite3_column_int(st, 6);
        c.status = col_dup(st, 7);
        c.error_code = col_dup(st, 8);
        c.error_message = col_dup(st, 9);
        c.error_remedy = col_dup(st, 10);
        c.last_sync_at = col_ts(st, 11);
        c.device_count = sqlite3_column_int64(st, 12);
        c.software_count = sqlite3_column_int64(st, 13);
        c.error_request_id = col_dup(st, 14);
        c.error_date = col_dup(st, 15);
        c.warning_code = col_dup(st, 16);
        c.warning_message = col_dup(st, 17);
        c.warning_remedy = col_dup(st, 18);
        rc = cb(arg, &c);
        client_row_clear(&c);
        if (rc != 0)
            break;
    }
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "listing clients");
    sqlite3_finalize(st);
    return rc;
}

static int
check_integration(struct sq *s, int64_t account_id, int64_t integration_id, struct errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int rc, src;

    rc = prep(s, S_INTEG_OWNED, "SELECT 1 FROM integration WHERE id = ?1 AND account_id = ?2", &st,
              eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, integration_id);
    sqlite3_bind_int64(st, 2, account_id);
    src = sqlite3_step(st);
    if (src == SQLITE_DONE)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", integration_id);
    else if (src != SQLITE_ROW)
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the integration");
    done(st);
    return rc;
}

static int
sq_client_fail(struct store *base, int64_t account_id, int64_t integration_id,
               const struct client_info *ci, const char *code, const char *message,
               const char *remedy, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int own, rc;

    rc = wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = check_integration(s, account_id, integration_id, eb);
    if (rc != ERR_OK)
        goto out;
    rc = prep(s, S_CLIENT_FAIL,
              "INSERT INTO client (account_id, integration_id, tenant_id, name, default_domain, "
              "source, status, error_code, error_message, error_remedy, error_request_id, "
              "error_date, created_at, updated_at) "
              "VALUES (?1, ?2, ?3, ?4, ?5, COALESCE(?6, 'partner_center'), 'error', ?7, ?8, ?9, "
              "?11, ?12, ?10, ?10) ON CONFLICT (integration_id, tenant_id) DO UPDATE SET "
              "name = COALESCE(excluded.name, client.name), "
              "default_domain = COALESCE(excluded.default_domain, client.default_domain), "
              "source = COALESCE(?6, client.source), status = 'error', "
              "error_code = excluded.error_code, error_message = excluded.error_message, "
              "error_remedy = excluded.error_remedy, "
              "error_request_id = excluded.error_request_id, error_date = excluded.error_date, "
              "updated_at = excluded.updated_at",
              &st, eb);
    if (rc != ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, account_id);
    sqlite3_bind_int64(st, 2, integration_id);
    bind_text(st, 3, ci->tenant_id);
    bind_text(st, 4, ci->name);
    bind_text(st, 5, ci->default_domain);
    bind_text(st, 6, ci->source);
    bind_text(st, 7, code);
    bind_text(st, 8, message);
    bind_text(st, 9, remedy);
    sqlite3_bind_int64(st, 10, clock_now());
    bind_text(st, 11, ci->error_request_id);
    bind_text(st, 12, ci->error_date);
    rc = step_done(s, st, eb, "recording the tenant failure");
out:
    return wend(s, own, rc, eb);
}

static int
sq_client_update(struct store *base, int64_t account_id, const char *client, int included,
                 const char *name_override, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t id = 0;
    int own, rc, src, matches = 0;

    rc = wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    src = prep_once(s,
                    "SELECT id FROM client WHERE account_id = ?1 AND "
                    "(CAST(id AS TEXT) = ?2 OR tenant_id = ?2 OR "
                    "COALESCE(name_override, name) = ?2) LIMIT 2",
                    -1, &st, NULL);
    if (src != SQLITE_OK) {
        rc = db_err(s, src, eb, "finding the client");
        goto out;
    }
    sqlite3_bind_int64(st, 1, account_id);
    bind_text(st, 2, client);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        id = sqlite3_column_int64(st, 0);
        matches++;
    }
    if (src != SQLITE_DONE)
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "finding the client");
    else if (matches == 0)
        rc = err_set(eb, ERR_NOTFOUND, "no client \"%s\"", client);
    else if (matches > 1)
        rc = err_set(eb, ERR_INVAL, "\"%s\" matches several clients; use the tenant id", client);
    sqlite3_finalize(st);
    st = NULL;
    if (rc != ERR_OK)
        goto out;
    src = prep_once(s,
                    "UPDATE client SET included = CASE WHEN ?1 < 0 THEN included "
                    "ELSE ?1 END, name_override = CASE WHEN ?2 IS NULL THEN "
                    "name_override ELSE NULLIF(?2, '') END, updated_at = ?3 "
                    "WHERE id = ?4",
                    -1, &st, NULL);
    if (src != SQLITE_OK) {
        rc = db_err(s, src, eb, "updating the client");
        goto out;
    }
    sqlite3_bind_int(st, 1, included);
    bind_text(st, 2, name_override);
    sqlite3_bind_int64(st, 3, clock_now());
    sqlite3_bind_int64(st, 4, id);
    rc = step_done(s, st, eb, "updating the client");
    sqlite3_finalize(st);
out:
    return wend(s, own, rc, eb);
}

/* ---- reconcile --------------------------------------------------------------------------- */

static void
rec_reset(struct sq *s)
{
    s->rec_active = 0;
    s->rec_failed = 0;
    XFREE(s->rec_tenant);
    for (size_t i = 0; i < s->ntitles; i++)
        free(s->title_keys[i]);
    XFREE(s->title_keys);
    XFREE(s->title_ids);
    XFREE(s->title_slots);
    s->ntitles = s->captitles = s->ntitle_slots = 0;
    XFREE(s->rec_asset_intune);
    s->rec_fresh = 0;
    s->rec_asset_id = 0;
    s->rec_asset_new = 0;
    s->rec_asset_active = 0;
    XFREE(s->tdelta);
    s->ntdelta = s->ntdelta_slots = 0;
    memset(&s->rec_counts, 0, sizeof s->rec_counts);
}

/* Undoes the tenant's work: its savepoint inside a batch, else its transaction. */
static void
rec_undo(struct sq *s)
{
    if (sqlite3_get_autocommit(s->db)) {
        /* nothing left to undo (SQLite ends the transaction on some errors) */
    } else if (s->rec_sp) {
        sqlite3_exec(s->db, "ROLLBACK TO tenant; RELEASE tenant", NULL, NULL, NULL);
    } else {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
    s->rec_sp = 0;
}

/* Before a sync's first write transaction on this connection: the sync's cache and checkpoint
 * settings, and foreign keys off. Leaves fk_keep set: the caller clears it once its
 * transaction is open (fk_settle would switch them back on before the BEGIN). */
static int
sync_conn_setup(struct sq *s, struct errbuf *eb)
{
    int rc = ERR_OK;

    if (!s->rec_tuned) {
        /* Only a connection that syncs: an 8 MiB page cache instead of 2 (the tenant's index
         * pages stay in memory instead of being read back), fewer checkpoints (each one
         * fdatasyncs), temporary b-trees in memory. Peak RSS of the reference MSP's full sync
         * stays under 50 MiB. */
        rc = exec_sql(s,
                      "PRAGMA cache_size = -8192; PRAGMA wal_autocheckpoint = 10000; "
                      "PRAGMA temp_store = MEMORY",
                      eb, "configuring the connection for a sync");
        if (rc != ERR_OK)
            return rc;
        s->rec_tuned = 1;
    }
    /* Foreign keys are not checked inside the tenant's transaction (PRAGMA foreign_keys is a
     * no-op inside one, so it is switched here, and back by fk_settle). What it writes refers
     * only to rows it has read or written itself under its write lock: the integration and its
     * account (check_integration), the client (upserted below), assets and titles (inserted or
     * looked up by id in the transaction), and it deletes nothing, so no cascade is missed.
     * Checking cost three parent lookups per install and per device. */
    s->fk_keep = 1;
    if (!s->fk_off) {
        rc = exec_sql(s, "PRAGMA foreign_keys = OFF", eb, "configuring the tenant's transaction");
        if (rc == ERR_OK)
            s->fk_off = 1;
    }
    if (rc != ERR_OK)
        s->fk_keep = 0;
    return rc;
}

static int
sq_reconcile_begin(struct store *base, int64_t account_id, int64_t integration_id,
                   const struct client_info *ci, int64_t now, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc, src, fresh = 0;

    if (s->batch && sqlite3_get_autocommit(s->db))
        return err_set(eb, ERR_DB,
                       "the sync's transaction was ended by an earlier error; "
                       "store_batch_commit reports it");
    if (s->rec_active || (!s->batch && !sqlite3_get_autocommit(s->db)))
        return err_set(eb, ERR_INVAL, "a transaction is already open on this store");
    if (s->batch) {
        rc = exec_sql(s, "SAVEPOINT tenant", eb, "starting the tenant's transaction");
        if (rc != ERR_OK)
            return rc;
        s->rec_sp = 1;
        goto started;
    }
    rc = sync_conn_setup(s, eb);
    if (rc != ERR_OK)
        return rc;
    rc = exec_sql(s, "BEGIN IMMEDIATE", eb, "starting the tenant's transaction");
    s->fk_keep = 0;
    if (rc != ERR_OK)
        return rc;
started:
    rc = check_integration(s, account_id, integration_id, eb);
    if (rc != ERR_OK)
        goto out;
    /* The generation grows past the data version, which every client write bumps: a client
     * id reused after a deletion never sees a generation its predecessor had, so (client,
     * generation) names the state of its assets for good (the list rows' dev_stamp). */
    rc = prep(s, S_CLIENT_BEGIN,
              "INSERT INTO client (account_id, integration_id, tenant_id, name, default_domain, "
              "source, sync_gen, created_at, updated_at) "
              "VALUES (?1, ?2, ?3, ?4, ?5, COALESCE(?6, 'partner_center'), "
              "(SELECT v FROM data_version WHERE id = 1) + 1, ?7, ?7) "
              "ON CONFLICT (integration_id, tenant_id) DO UPDATE SET "
              "name = COALESCE(excluded.name, client.name), "
              "default_domain = COALESCE(excluded.default_domain, client.default_domain), "
              "source = COALESCE(?6, client.source), "
              "sync_gen = max(client.sync_gen, (SELECT v FROM data_version WHERE id = 1)) + 1, "
              "updated_at = excluded.updated_at RETURNING id, sync_gen",
              &st, eb);
    if (rc != ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, account_id);
    sqlite3_bind_int64(st, 2, integration_id);
    bind_text(st, 3, ci->tenant_id);
    bind_text(st, 4, ci->name);
    bind_text(st, 5, ci->default_domain);
    bind_text(st, 6, ci->source);
    sqlite3_bind_int64(st, 7, now);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        s->rec_client = sqlite3_column_int64(st, 0);
        s->rec_gen = sqlite3_column_int64(st, 1);
    } else {
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "saving the client");
    }
    done(st);
    if (rc != ERR_OK)
        goto out;
    /* A tenant's first sync: no device can be found, so none is looked up. */
    rc = prep(s, S_ASSET_ANY,
              "SELECT EXISTS (SELECT 1 FROM hardware_asset WHERE integration_id = ?1 AND "
              "tenant_id = ?2)",
              &st, eb);
    if (rc != ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, integration_id);
    bind_text(st, 2, ci->tenant_id);
    if (sqlite3_step(st) == SQLITE_ROW)
        fresh = sqlite3_column_int(st, 0) == 0;
    else
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "looking up the tenant's devices");
    done(st);
out:
    if (rc != ERR_OK) {
        rec_undo(s);
        return rc;
    }
    rec_reset(s);
    s->rec_active = 1;
    s->rec_fresh = fresh;
    s->rec_account = account_id;
    s->rec_integration = integration_id;
    s->rec_now = now;
    s->rec_tenant = xstrdup(ci->tenant_id);
    return ERR_OK;
}

struct change_ctx {
    struct sq *s;
    int64_t asset_id;
    struct errbuf *eb;
};

static int
record_change(void *arg, const char *field, const char *oldv, const char *newv)
{
    struct change_ctx *cx = arg;
    struct sq *s = cx->s;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = prep(s, S_CHANGE_INS,
              "INSERT INTO asset_change (account_id, asset_id, at, field, old_value, new_value) "
              "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
              &st, cx->eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, s->rec_account);
    sqlite3_bind_int64(st, 2, cx->asset_id);
    sqlite3_bind_int64(st, 3, s->rec_now);
    bind_text(st, 4, field);
    bind_text(st, 5, oldv);
    bind_text(st, 6, newv);
    return step_done(s, st, cx->eb, "recording the asset history");
}

static int
need_rec(struct sq *s, struct errbuf *eb)
{
    if (!s->rec_active)
        return err_set(eb, ERR_INVAL, "no tenant reconcile is in progress");
    return ERR_OK;
}

/* Before a reconcile write: SQLite ends the whole transaction on some errors (a full disk, an
 * OR ROLLBACK conflict). Writing on would autocommit, so a failed or ended one takes none. */
static int
need_rec_tx(struct sq *s, struct errbuf *eb)
{
    int rc = need_rec(s, eb);

    if (rc != ERR_OK)
        return rc;
    if (s->rec_failed)
        return err_set(eb, ERR_INVAL, "tenant %s: an earlier step failed", s->rec_tenant);
    if (sqlite3_get_autocommit(s->db))
        return err_set(eb, ERR_DB, "tenant %s: the database ended the transaction", s->rec_tenant);
    return ERR_OK;
}

static int
insert_device(struct sq *s, const struct device *d, const char *key, struct errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int n = (int)device_field_count;
    int rc = prep(s, S_ASSET_INS, s->dsql.ins, &st, eb);

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, s->rec_account);
    sqlite3_bind_int64(st, 2, s->rec_client);
    sqlite3_bind_int64(st, 3, s->rec_integration);
    bind_text(st, 4, s->rec_tenant);
    bind_text(st, 5, d->intune_id);
    bind_device(st, 6, d);
    bind_text(st, 6 + n, key);
    sqlite3_bind_int64(st, 7 + n, s->rec_now);
    sqlite3_bind_int64(st, 8 + n, s->rec_gen);
    rc = step_done(s, st, eb, "saving a new device");
    if (rc == ERR_OK)
        s->rec_counts.created++;
    return rc;
}

static inline size_t
tdelta_slot(int64_t title, size_t mask)
{
    return (size_t)(((uint64_t)title * 0x9E3779B97F4A7C15ULL) >> 32) & mask;
}

static void
tdelta_add(struct sq *s, int64_t title, int64_t d)
{
    size_t mask, i;

    if ((s->ntdelta + 1) * 2 > s->ntdelta_slots) {
        struct title_delta *old = s->tdelta;
        size_t nold = s->ntdelta_slots, ns = nold ? nold * 2 : 256;

        s->tdelta = xcalloc(ns, sizeof *s->tdelta);
        s->ntdelta_slots = ns;
        for (size_t k = 0; k < nold; k++) {
            if (old[k].id == 0)
                continue;
            for (i = tdelta_slot(old[k].id, ns - 1); s->tdelta[i].id != 0; i = (i + 1) & (ns - 1))
                ;
            s->tdelta[i] = old[k];
        }
        free(old);
    }
    mask = s->ntdelta_slots - 1;
    for (i = tdelta_slot(title, mask); s->tdelta[i].id != 0 && s->tdelta[i].id != title;
         i = (i + 1) & mask)
        ;
    if (s->tdelta[i].id == 0) {
        s->tdelta[i].id = title;
        s->ntdelta++;
    }
    s->tdelta[i].d += d;
}

/* Adds d to the count of every title the asset has an active install of (it is revived: +1, or
 * retired: -1). */
static int
tdelta_asset(struct sq *s, int64_t asset_id, int64_t d, struct errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int rc, src;

    rc = prep(s, S_ASSET_TITLES,
              "SELECT title_id FROM software_install WHERE asset_id = ?1 AND removed_at IS NULL",
              &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, asset_id);
    while ((src = sqlite3_step(st)) == SQLITE_ROW)
        tdelta_add(s, sqlite3_column_int64(st, 0), d);
    if (src != SQLITE_DONE)
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "reading a device's installs");
    done(st);
    return rc;
}

static int
tdelta_apply(struct sq *s, struct errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int rc = ERR_OK;

    for (size_t k = 0; rc == ERR_OK && k < s->ntdelta_slots; k++) {
        if (s->tdelta[k].id == 0 || s->tdelta[k].d == 0)
            continue;
        rc = prep(s, S_TITLE_COUNT,
                  "UPDATE software_title SET device_count = device_count + ?2 WHERE id = ?1", &st,
                  eb);
        if (rc != ERR_OK)
            break;
        sqlite3_bind_int64(st, 1, s->tdelta[k].id);
        sqlite3_bind_int64(st, 2, s->tdelta[k].d);
        rc = step_done(s, st, eb, "counting a title's devices");
    }
    return rc;
}

static int
sq_reconcile_device_step(struct store *base, const struct device *d, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    struct device old;
    char *key = NULL;
    int64_t id = 0, retired = TS_NULL;
    int found = 0, rc, src;
    int n = (int)device_field_count;

    device_init(&old);
    rc = need_rec_tx(s, eb);
    if (rc != ERR_OK)
        return rc;
    key = store_serial_key(d->serial);
    if (s->rec_fresh) {
        rc = insert_device(s, d, key, eb);
        if (rc == ERR_OK) {
            id = sqlite3_last_insert_rowid(s->db);
            found = -1; /* new: see rec_asset_new */
            goto out;
        }
        if (rc != ERR_EXISTS)
            goto out;
        /* Listed twice: the single-row INSERT was refused before writing; update it. */
        rc = ERR_OK;
    }
    rc = prep(s, S_ASSET_FIND, s->dsql.find, &st, eb);
    if (rc != ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, s->rec_integration);
    bind_text(st, 2, s->rec_tenant);
    bind_text(st, 3, d->intune_id);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        found = 1;
        id = sqlite3_column_int64(st, 0);
        retired = col_ts(st, 1);
        read_device(st, 2, &old);
        old.intune_id = xstrdup(d->intune_id);
    } else if (src != SQLITE_DONE) {
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "looking up the device");
    }
    done(st);
    if (rc != ERR_OK)
        goto out;

    if (!found) {
        rc = insert_device(s, d, key, eb);
        id = sqlite3_last_insert_rowid(s->db);
        found = -1; /* new: see rec_asset_new */
        goto out;
    }
    if (retired == TS_NULL && device_equal(&old, d) &&
        store_device_diff(&old, d, NULL, NULL) == 0) {
        rc = prep(s, S_ASSET_TOUCH,
                  "UPDATE hardware_asset SET last_synced_at = ?1, last_seen_gen = ?2 WHERE id = ?3",
                  &st, eb);
        if (rc != ERR_OK)
            goto out;
        sqlite3_bind_int64(st, 1, s->rec_now);
        sqlite3_bind_int64(st, 2, s->rec_gen);
        sqlite3_bind_int64(st, 3, id);
        rc = step_done(s, st, eb, "touching a device");
        if (rc == ERR_OK)
            s->rec_counts.unchanged++;
        goto out;
    }
    rc = prep(s, S_ASSET_UPD, s->dsql.upd, &st, eb);
    if (rc != ERR_OK)
        goto out;
    bind_device(st, 1, d);
    bind_text(st, n + 1, key);
    sqlite3_bind_int64(st, n + 2, s->rec_now);
    sqlite3_bind_int64(st, n + 3, s->rec_gen);
    sqlite3_bind_int64(st, n + 4, s->rec_client);
    sqlite3_bind_int64(st, n + 5, id);
    rc = step_done(s, st, eb, "updating a device");
    if (rc != ERR_OK)
        goto out;
    {
        struct change_ctx cx = {s, id, eb};
        int r = store_device_diff(&old, d, record_change, &cx);
        if (r < 0) {
            rc = r;
            goto out;
        }
    }
    s->rec_counts.updated++;
    if (retired != TS_NULL) {
        s->rec_counts.revived++;
        rc = tdelta_asset(s, id, 1, eb);
    }
out:
    if (rc == ERR_OK) {
        free(s->rec_asset_intune);
        s->rec_asset_intune = xstrdup(d->intune_id);
        s->rec_asset_id = id;
        s->rec_asset_new = found < 0;
        s->rec_asset_active = 1;
    }
    free(key);
    device_clear(&old);
    return rc;
}

/* The title's id, from this transaction's map or one upsert. */
/* name US version US publisher US platform, in s->title_key (no allocation once it is big
 * enough: most installs are of a title the map already holds). */
static const char *
title_key(struct sq *s, const struct app_ref *a, size_t *keylen)
{
    const char *parts[4] = {a->name, a->version ? a->version : "", a->publisher ? a->publisher : "",
                            a->platform ? a->platform : ""};
    size_t len[4], need = 0, off = 0;

    for (int k = 0; k < 4; k++)
        need += (len[k] = strlen(parts[k])) + 1;
    if (need > s->title_key_cap) {
        s->title_key_cap = need * 2;
        s->title_key = xrealloc(s->title_key, s->title_key_cap);
    }
    for (int k = 0; k < 4; k++) {
        memcpy(s->title_key + off, parts[k], len[k]);
        off += len[k];
        s->title_key[off++] = k < 3 ? '\x1f' : '\0';
    }
    *keylen = off - 1;
    return s->title_key;
}

static void
bind_title(const struct sq *s, sqlite3_stmt *st, const struct app_ref *a)
{
    sqlite3_bind_int64(st, 1, s->rec_account);
    sqlite3_bind_int64(st, 2, s->rec_client);
    bind_text(st, 3, a->name);
    bind_text(st, 4, a->version != NULL ? a->version : "");
    bind_text(st, 5, a->publisher != NULL ? a->publisher : "");
    bind_text(st, 6, a->platform != NULL ? a->platform : "");
    if (a->size_bytes < 0)
        sqlite3_bind_null(st, 7);
    else
        sqlite3_bind_int64(st, 7, a->size_bytes);
}

static int
title_id(struct sq *s, const struct app_ref *a, int64_t *out, struct errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    size_t keylen;
    const char *lookup = title_key(s, a, &keylen);
    uint64_t h = hash_bytes(lookup, keylen);
    char *key;
    size_t mask, i;
    int rc, src;

    if (s->ntitle_slots > 0) {
        mask = s->ntitle_slots - 1;
        for (i = h & mask; s->title_slots[i] != 0; i = (i + 1) & mask) {
            if (strcmp(s->title_keys[s->title_slots[i] - 1], lookup) == 0) {
                *out = s->title_ids[s->title_slots[i] - 1];
                return ERR_OK;
            }
        }
    }
    key = xstrdup(lookup);
    rc = ERR_EXISTS;
    if (s->rec_fresh) {
        /* A tenant's first sync has no titles yet: a plain INSERT, without the upsert's
         * conflict branch and RETURNING table (four fifths of its cost). */
        rc = prep(s, S_TITLE_INS,
                  "INSERT INTO software_title (account_id, client_id, name, version, publisher, "
                  "platform, size_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                  &st, eb);
        if (rc == ERR_OK) {
            bind_title(s, st, a);
            src = sqlite3_step(st);
            if (src == SQLITE_DONE)
                *out = sqlite3_last_insert_rowid(s->db);
            else if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE)
                rc = ERR_EXISTS; /* there after all: the upsert below finds it */
            else
                rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "saving a software title");
            done(st);
        }
    }
    if (rc == ERR_EXISTS) {
        rc = prep(s, S_TITLE_UPSERT,
                  "INSERT INTO software_title (account_id, client_id, name, version, publisher, "
                  "platform, size_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                  "ON CONFLICT (client_id, name, version, publisher, platform) DO UPDATE SET "
                  "size_bytes = COALESCE(excluded.size_bytes, software_title.size_bytes) "
                  "RETURNING id",
                  &st, eb);
        if (rc == ERR_OK) {
            bind_title(s, st, a);
            src = sqlite3_step(st);
            if (src == SQLITE_ROW)
                *out = sqlite3_column_int64(st, 0);
            else
                rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "saving a software title");
            done(st);
        }
    }
    if (rc != ERR_OK) {
        free(key);
        return rc;
    }
    if ((s->ntitles + 1) * 2 > s->ntitle_slots) {
        size_t ns = s->ntitle_slots ? s->ntitle_slots * 2 : 1024;

        free(s->title_slots);
        s->title_slots = xcalloc(ns, sizeof *s->title_slots);
        s->ntitle_slots = ns;
        for (size_t k = 0; k < s->ntitles; k++) {
            for (i = hash_bytes(s->title_keys[k], strlen(s->title_keys[k])) & (ns - 1);
                 s->title_slots[i] != 0; i = (i + 1) & (ns - 1))
                ;
            s->title_slots[i] = (uint32_t)k + 1;
        }
    }
    if (s->ntitles == s->captitles) {
        s->captitles = s->captitles ? s->captitles * 2 : 256;
        s->title_keys = xrealloc(s->title_keys, s->captitles * sizeof *s->title_keys);
        s->title_ids = xrealloc(s->title_ids, s->captitles * sizeof *s->title_ids);
    }
    mask = s->ntitle_slots - 1;
    for (i = h & mask; s->title_slots[i] != 0; i = (i + 1) & mask)
        ;
    s->title_keys[s->ntitles] = key;
    s->title_ids[s->ntitles] = *out;
    s->title_slots[i] = (uint32_t)++s->ntitles;
    return ERR_OK;
}

/* INSERT statements for 1, 2, 4, ... 32 installs of one asset (S_INST_INS + k holds 2^k rows). */
#define INST_BATCH_LOG 5
_Static_assert(S_INST_INS_32 == S_INST_INS + INST_BATCH_LOG, "one statement per batch size");

/* New installs of one asset, as few INSERTs as the binary decomposition of n allows (a device's
 * 26 new installs are 3 statements, not a 16-row one and 10 single rows): the statement
 * overhead (bind, step, halt, reset) is paid per statement, not per row. */
static int
insert_installs(struct sq *s, int64_t asset_id, const int64_t *titles, size_t n, struct errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    size_t i = 0;
    int rc = ERR_OK;

    for (int k = INST_BATCH_LOG; rc == ERR_OK && k >= 0; k--) {
        size_t rows = (size_t)1 << k;

        while (rc == ERR_OK && n - i >= rows) {
            if (s->stmt[S_INST_INS + k] == NULL) {
                struct buf b;

                buf_init(&b, 4096);
                /* OR ROLLBACK: a violation (impossible: only titles the asset lacks come
                 * here) ends the transaction (with a batch, every tenant in it, which the sync
                 * then reports failed) instead of needing a statement journal. */
                buf_addstr(&b, "INSERT OR ROLLBACK INTO software_install (account_id, asset_id, "
                               "title_id, first_seen_at, last_seen_at, removed_at, last_seen_gen) "
                               "VALUES ");
                for (size_t r = 0; r < rows; r++)
                    buf_printf(&b, "%s(?1, ?2, ?%zu, ?3, ?3, NULL, ?4)", r ? ", " : "", r + 5);
                rc = prep(s, S_INST_INS + k, buf_cstr(&b), &st, eb);
                buf_free(&b);
                if (rc != ERR_OK)
                    break;
            }
            st = s->stmt[S_INST_INS + k];
            sqlite3_bind_int64(st, 1, s->rec_account);
            sqlite3_bind_int64(st, 2, asset_id);
            sqlite3_bind_int64(st, 3, s->rec_now);
            sqlite3_bind_int64(st, 4, s->rec_gen);
            for (size_t r = 0; r < rows; r++)
                sqlite3_bind_int64(st, (int)r + 5, titles[i + r]);
            rc = step_done(s, st, eb, rows > 1 ? "saving installs" : "saving an install");
            i += rows;
        }
    }
    return rc;
}

static int
cmp_i64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;

    return (x > y) - (x < y);
}

struct inst {
    int64_t title;
    int removed;
    int seen;
};

/* A 256-bit filter over the titles in a device's install set: a title whose bit is clear is not
 * in the set, so most lookups skip the scan (a device's set is built while it is searched). */
static inline unsigned
inst_bit(int64_t title)
{
    return (unsigned)(((uint64_t)title * 0x9E3779B97F4A7C15ULL) >> 56);
}

/* Replaces one device's install set: new titles are inserted, removed ones that came back are
 * revived, and active ones no longer reported get removed_at. Unchanged installs are not
 * written at all, which keeps a repeated sync cheap (their effective last_seen_at is the
 * asset's last_synced_at). */
static int
sq_reconcile_installs_step(struct store *base, const char *intune_device_id,
                           const struct app_ref *apps, size_t n, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    struct inst *have = NULL;
    int64_t *fresh = NULL; /* titles to insert */
    size_t nhave = 0, caphave = 0, nnew = 0, capnew = 0;
    int64_t asset_id = 0;
    uint64_t filter[4] = {0};
    int is_new = 0, active = 1, rc, src;

    rc = need_rec_tx(s, eb);
    if (rc != ERR_OK)
        return rc;
    if (s->rec_asset_intune != NULL && strcmp(s->rec_asset_intune, intune_device_id) == 0) {
        asset_id = s->rec_asset_id;
        is_new = s->rec_asset_new;
        active = s->rec_asset_active;
        s->rec_asset_new = 0; /* a second call for the same device looks its installs up */
    } else {
        rc = prep(s, S_ASSET_ID,
                  "SELECT id, retired_at IS NULL FROM hardware_asset WHERE integration_id = ?1 "
                  "AND tenant_id = ?2 AND intune_device_id = ?3",
                  &st, eb);
        if (rc != ERR_OK)
            return rc;
        sqlite3_bind_int64(st, 1, s->rec_integration);
        bind_text(st, 2, s->rec_tenant);
        bind_text(st, 3, intune_device_id);
        src = sqlite3_step(st);
        if (src == SQLITE_ROW) {
            asset_id = sqlite3_column_int64(st, 0);
            active = sqlite3_column_int(st, 1);
        } else if (src == SQLITE_DONE)
            rc = err_set(eb, ERR_NOTFOUND, "device %s is not known in tenant %s", intune_device_id,
                         s->rec_tenant);
        else
            rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "looking up the device");
        done(st);
        if (rc != ERR_OK)
            return rc;
    }
    /* A device inserted by this reconcile has no installs to look up. */
    rc = is_new ? ERR_OK
                : prep(s, S_INST_FIND,
                       "SELECT title_id, removed_at IS NOT NULL FROM software_install "
                       "WHERE asset_id = ?1",
                       &st, eb);
    if (rc != ERR_OK)
        return rc;
    if (!is_new)
        sqlite3_bind_int64(st, 1, asset_id);
    while (!is_new && (src = sqlite3_step(st)) == SQLITE_ROW) {
        if (nhave == caphave) {
            caphave = caphave ? caphave * 2 : 64;
            have = xrealloc(have, caphave * sizeof *have);
        }
        have[nhave].title = sqlite3_column_int64(st, 0);
        have[nhave].removed = sqlite3_column_int(st, 1);
        have[nhave].seen = 0;
        filter[inst_bit(have[nhave].title) >> 6] |= UINT64_C(1)
                                                    << (inst_bit(have[nhave].title) & 63);
        nhave++;
    }
    if (!is_new && src != SQLITE_DONE)
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "reading a device's installs");
    if (!is_new)
        done(st);

    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        int64_t title = 0;
        size_t k;
        unsigned bit;

        if ((rc = title_id(s, &apps[i], &title, eb)) != ERR_OK)
            break;
        bit = inst_bit(title);
        k = nhave;
        if (filter[bit >> 6] & (UINT64_C(1) << (bit & 63)))
            for (k = 0; k < nhave && have[k].title != title; k++)
                ;
        if (k < nhave && have[k].seen)
            continue; /* the same title twice on one device */
        if (k < nhave && !have[k].removed) {
            have[k].seen = 1;
            continue;
        }
        if (k < nhave) {
            rc = prep(s, S_INST_UPD,
                      "UPDATE software_install SET removed_at = NULL, last_seen_at = ?1, "
                      "last_seen_gen = ?2 WHERE asset_id = ?3 AND title_id = ?4",
                      &st, eb);
            if (rc != ERR_OK)
                break;
            sqlite3_bind_int64(st, 1, s->rec_now);
            sqlite3_bind_int64(st, 2, s->rec_gen);
            sqlite3_bind_int64(st, 3, asset_id);
            sqlite3_bind_int64(st, 4, title);
            rc = step_done(s, st, eb, "reviving an install");
            have[k].seen = 1;
            if (rc == ERR_OK && active)
                tdelta_add(s, title, 1);
        } else {
            /* Inserted below, several rows per statement. */
            if (nhave == caphave) {
                caphave = caphave ? caphave * 2 : 64;
                have = xrealloc(have, caphave * sizeof *have);
            }
            have[nhave].title = title;
            have[nhave].removed = 0;
            have[nhave].seen = 1;
            filter[bit >> 6] |= UINT64_C(1) << (bit & 63);
            nhave++;
            if (nnew == capnew) {
                capnew = capnew ? capnew * 2 : 64;
                fresh = xrealloc(fresh, capnew * sizeof *fresh);
            }
            fresh[nnew++] = title;
            continue;
        }
        if (rc == ERR_OK)
            s->rec_counts.installs_added++;
    }
    if (rc == ERR_OK && nnew > 0) {
        /* In key order: a new device's installs then go to the end of the table's b-tree, where
         * SQLite appends without descending from the root. */
        qsort(fresh, nnew, sizeof *fresh, cmp_i64);
        rc = insert_installs(s, asset_id, fresh, nnew, eb);
        if (rc == ERR_OK)
            s->rec_counts.installs_added += (int)nnew;
        for (size_t k = 0; rc == ERR_OK && active && k < nnew; k++)
            tdelta_add(s, fresh[k], 1);
    }
    for (size_t k = 0; rc == ERR_OK && k < nhave; k++) {
        if (have[k].seen || have[k].removed)
            continue;
        rc = prep(s, S_INST_REMOVE,
                  "UPDATE software_install SET removed_at = ?1, last_seen_at = ?1 "
                  "WHERE asset_id = ?2 AND title_id = ?3",
                  &st, eb);
        if (rc != ERR_OK)
            break;
        sqlite3_bind_int64(st, 1, s->rec_now);
        sqlite3_bind_int64(st, 2, asset_id);
        sqlite3_bind_int64(st, 3, have[k].title);
        rc = step_done(s, st, eb, "marking a removed install");
        if (rc == ERR_OK)
            s->rec_counts.installs_removed++;
        if (rc == ERR_OK && active)
            tdelta_add(s, have[k].title, -1);
    }
    free(have);
    free(fresh);
    return rc;
}

static int
sq_reconcile_commit(struct store *base, int listing_complete, int installs_complete,
                    struct reconcile_counts *counts, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc, src;

    rc = need_rec(s, eb);
    if (rc != ERR_OK)
        return rc;
    if (s->rec_failed) {
        rc = err_set(eb, ERR_INVAL, "tenant %s: an earlier step failed, so nothing is committed",
                     s->rec_tenant);
        goto out;
    }
    /* Retiring outside the tenant's transaction would retire every device. */
    if (sqlite3_get_autocommit(s->db)) {
        rc = err_set(eb, ERR_DB,
                     "tenant %s: the database ended the transaction, so nothing is "
                     "committed",
                     s->rec_tenant);
        goto out;
    }
    /* Seen again: no longer missing (not a change anyone needs in the history). */
    rc = prep(s, S_MISSING_CLEAR,
              "UPDATE hardware_asset INDEXED BY hardware_asset_missing SET missing_since = NULL, "
              "missing_syncs = 0 WHERE client_id = ?1 AND missing_since IS NOT NULL AND "
              "retired_at IS NULL AND last_seen_gen = ?2",
              &st, eb);
    if (rc != ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, s->rec_client);
    sqlite3_bind_int64(st, 2, s->rec_gen);
    rc = step_done(s, st, eb, "clearing missing marks");
    if (rc != ERR_OK)
        goto out;
    if (listing_complete) {
        rc = prep(s, S_MISSING_MARK,
                  "UPDATE hardware_asset SET missing_since = COALESCE(missing_since, ?1), "
                  "missing_syncs = missing_syncs + 1 WHERE client_id = ?2 "
                  "AND retired_at IS NULL AND last_seen_gen < ?3",
                  &st, eb);
        if (rc != ERR_OK)
            goto out;
        sqlite3_bind_int64(st, 1, s->rec_now);
        sqlite3_bind_int64(st, 2, s->rec_client);
        sqlite3_bind_int64(st, 3, s->rec_gen);
        rc = step_done(s, st, eb, "marking missing devices");
        if (rc != ERR_OK)
            goto out;
        s->rec_counts.missing = sqlite3_changes(s->db);
    }
    if (listing_complete && !base->rec_policy.hold) {
        int64_t *gone = NULL;
        size_t ngone = 0, capgone = 0;

        /* Every candidate was marked just now or before: only marked devices are read. */
        rc = prep(s, S_RETIRE,
                  "UPDATE hardware_asset INDEXED BY hardware_asset_missing SET retired_at = ?1 "
                  "WHERE client_id = ?2 AND missing_since IS NOT NULL AND retired_at IS NULL "
                  "AND last_seen_gen < ?3 AND missing_syncs >= ?4 AND missing_since <= ?5 "
                  "RETURNING id",
                  &st, eb);
        if (rc != ERR_OK)
            goto out;
        sqlite3_bind_int64(st, 1, s->rec_now);
        sqlite3_bind_int64(st, 2, s->rec_client);
        sqlite3_bind_int64(st, 3, s->rec_gen);
        sqlite3_bind_int64(st, 4, base->rec_policy.after_syncs);
        sqlite3_bind_int64(st, 5, s->rec_now - base->rec_policy.after_s);
        while ((src = sqlite3_step(st)) == SQLITE_ROW) {
            if (ngone == capgone) {
                capgone = capgone ? capgone * 2 : 64;
                gone = xrealloc(gone, capgone * sizeof *gone);
            }
            gone[ngone++] = sqlite3_column_int64(st, 0);
        }
        if (src != SQLITE_DONE)
            rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "retiring missing devices");
        done(st);
        s->rec_counts.retired = (int64_t)ngone;
        /* Their installs stop counting for their titles. */
        for (size_t k = 0; rc == ERR_OK && k < ngone; k++)
            rc = tdelta_asset(s, gone[k], -1, eb);
        free(gone);
        if (rc != ERR_OK)
            goto out;
    }
    /* Installs were replaced device by device in store_reconcile_installs. */
    (void)installs_complete;
    rc = tdelta_apply(s, eb);
    if (rc != ERR_OK)
        goto out;
    rc = prep(s, S_CLIENT_OK,
              "UPDATE client SET status = 'ok', error_code = NULL, error_message = NULL, "
              "error_remedy = NULL, error_request_id = NULL, error_date = NULL, "
              "last_sync_at = ?2, updated_at = ?2, "
              "device_count = (SELECT count(*) FROM hardware_asset "
              " WHERE client_id = ?1 AND retired_at IS NULL), "
              "software_count = (SELECT count(*) FROM software_title "
              " WHERE client_id = ?1 AND device_count > 0), "
              "warning_code = ?3, warning_message = ?4, warning_remedy = ?5 "
              "WHERE id = ?1",
              &st, eb);
    if (rc != ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, s->rec_client);
    sqlite3_bind_int64(st, 2, s->rec_now);
    bind_text(st, 3, base->rec_warn_code);
    bind_text(st, 4, base->rec_warn_message);
    bind_text(st, 5, base->rec_warn_remedy);
    rc = step_done(s, st, eb, "updating the client");
    if (rc != ERR_OK)
        goto out;
    if (s->rec_sp) {
        rc = exec_sql(s, "RELEASE tenant", eb, "committing the tenant");
        if (rc == ERR_OK)
            s->rec_sp = 0;
    } else {
        rc = exec_sql(s, "COMMIT", eb, "committing the tenant");
    }
out:
    if (rc != ERR_OK)
        rec_undo(s);
    else if (counts != NULL)
        *counts = s->rec_counts;
    rec_reset(s);
    return rc;
}

static int
sq_retire_preview(struct store *base, int64_t *would_retire, int64_t *active, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = need_rec_tx(s, eb);

    if (rc != ERR_OK)
        return rc;
    /* Once the marks advance, a device can retire only if it is marked already, unless one
     * listing without waiting is the policy: otherwise only the client's few marked devices
     * (hardware_asset_missing) are read, and the active ones are counted from an index. */
    if (base->rec_policy.after_syncs <= 1 && base->rec_policy.after_s <= 0)
        rc = prep(s, S_RETIRE_PREVIEW_ALL,
                  "SELECT count(*), COALESCE(sum(last_seen_gen < ?2), 0) FROM hardware_asset "
                  "WHERE client_id = ?1 AND retired_at IS NULL",
                  &st, eb);
    else
        rc = prep(s, S_RETIRE_PREVIEW,
                  "SELECT (SELECT count(*) FROM hardware_asset WHERE client_id = ?1 AND "
                  "retired_at IS NULL), (SELECT count(*) FROM hardware_asset INDEXED BY "
                  "hardware_asset_missing WHERE client_id = ?1 AND missing_since IS NOT NULL "
                  "AND retired_at IS NULL AND last_seen_gen < ?2 AND missing_syncs + 1 >= ?3 "
                  "AND missing_since <= ?4 - ?5)",
                  &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, s->rec_client);
    sqlite3_bind_int64(st, 2, s->rec_gen);
    if (!(base->rec_policy.after_syncs <= 1 && base->rec_policy.after_s <= 0)) {
        sqlite3_bind_int64(st, 3, base->rec_policy.after_syncs);
        sqlite3_bind_int64(st, 4, s->rec_now);
        sqlite3_bind_int64(st, 5, base->rec_policy.after_s);
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        *active = sqlite3_column_int64(st, 0);
        *would_retire = sqlite3_column_int64(st, 1);
    } else {
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "counting devices to retire");
    }
    done(st);
    return rc;
}

static void
sq_reconcile_rollback(struct store *base)
{
    struct sq *s = (struct sq *)base;

    if (s->rec_sp || !s->batch)
        rec_undo(s);
    rec_reset(s);
}

static int
sq_batch_begin(struct store *base, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    int rc;

    if (s->batch || s->rec_active || !sqlite3_get_autocommit(s->db))
        return err_set(eb, ERR_INVAL, "a transaction is already open on this store");
    rc = sync_conn_setup(s, eb);
    if (rc != ERR_OK)
        return rc;
    rc = exec_sql(s, "BEGIN IMMEDIATE", eb, "starting the sync's transaction");
    s->fk_keep = 0;
    if (rc == ERR_OK)
        s->batch = 1;
    return rc;
}

static int
sq_batch_commit(struct store *base, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    int rc;

    if (!s->batch)
        return ERR_OK;
    s->batch = 0;
    if (s->rec_active) { /* a caller's bug: keep nothing rather than half a tenant */
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        s->rec_sp = 0;
        rec_reset(s);
        return err_set(eb, ERR_INVAL, "a tenant's transaction was still open in the batch");
    }
    if (sqlite3_get_autocommit(s->db))
        return err_set(eb, ERR_DB,
                       "the database ended the transaction after an error, so the tenants "
                       "saved since the last commit were not");
    rc = exec_sql(s, "COMMIT", eb, "committing the synced tenants");
    if (rc != ERR_OK)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ---- web: users, sessions, API keys ----------------------------------------------------- */

/* Prepares sql (not cached: these run rarely or are per-request). */
static int
once(struct sq *s, const char *sql, sqlite3_stmt **st, struct errbuf *eb, const char *what)
{
    int src = prep_once(s, sql, -1, st, NULL);

    if (src != SQLITE_OK) {
        *st = NULL;
        return db_err(s, sqlite3_extended_errcode(s->db), eb, what);
    }
    return ERR_OK;
}

/* Steps a write statement in its own transaction unless one is open, then finalizes it. */
static int
once_write(struct sq *s, sqlite3_stmt *st, int64_t *rowid, struct errbuf *eb, const char *what)
{
    int own, rc, src;

    rc = wbegin(s, &own, eb);
    if (rc != ERR_OK) {
        sqlite3_finalize(st);
        return rc;
    }
    src = sqlite3_step(st);
    if (src == SQLITE_ROW || src == SQLITE_DONE) {
        if (rowid != NULL)
            *rowid = sqlite3_last_insert_rowid(s->db);
        if (sqlite3_changes(s->db) == 0 && rowid == NULL)
            rc = err_set(eb, ERR_NOTFOUND, "%s: no such row", what);
    } else {
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, what);
    }
    sqlite3_finalize(st);
    return wend(s, own, rc, eb);
}

static int
sq_user_insert(struct store *base, int64_t account_id, const char *name, const char *role,
               const char *password_hash, int64_t *id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s,
                  "INSERT INTO app_user (account_id, name, role, password_hash, created_at) "
                  "VALUES (?1, ?2, ?3, ?4, ?5)",
                  &st, eb, "adding the user");

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, account_id);
    bind_text(st, 2, name);
    bind_text(st, 3, role);
    bind_text(st, 4, password_hash);
    sqlite3_bind_int64(st, 5, clock_now());
    rc = once_write(s, st, id, eb, "adding the user");
    if (rc == ERR_EXISTS)
        return err_set(eb, ERR_EXISTS, "a user named %s already exists", name);
    return rc;
}

static int
read_user(struct sq *s, sqlite3_stmt *st, struct user_row *out, struct errbuf *eb, const char *what)
{
    int src = sqlite3_step(st);

    if (src == SQLITE_ROW) {
        out->id = sqlite3_column_int64(st, 0);
        out->account_id = sqlite3_column_int64(st, 1);
        out->name = col_dup(st, 2);
        out->role = col_dup(st, 3);
        out->password_hash = col_dup(st, 4);
        out->created_at = sqlite3_column_int64(st, 5);
        return ERR_OK;
    }
    if (src == SQLITE_DONE)
        return err_set(eb, ERR_NOTFOUND, "%s: not found", what);
    return db_err(s, sqlite3_extended_errcode(s->db), eb, what);
}

static int
sq_user_get(struct store *base, const char *name, struct user_row *out, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s,
                  "SELECT id, account_id, name, role, password_hash, created_at FROM app_user "
                  "WHERE name = ?1",
                  &st, eb, "reading the user");

    if (rc != ERR_OK)
        return rc;
    bind_text(st, 1, name);
    rc = read_user(s, st, out, eb, "user");
    sqlite3_finalize(st);
    return rc;
}

static int
sq_user_set_password(struct store *base, int64_t id, const char *password_hash, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s, "UPDATE app_user SET password_hash = ?2 WHERE id = ?1", &st, eb,
                  "changing the password");

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    bind_text(st, 2, password_hash);
    rc = once_write(s, st, NULL, eb, "changing the password");
    if (rc == ERR_OK) {
        /* A new password ends every session of the user. */
        if (once(s, "DELETE FROM user_session WHERE user_id = ?1", &st, eb, "ending sessions") ==
            ERR_OK) {
            sqlite3_bind_int64(st, 1, id);
            sqlite3_step(st);
            sqlite3_finalize(st);
        }
    }
    return rc;
}

static int
sq_user_delete(struct store *base, int64_t id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s, "DELETE FROM app_user WHERE id = ?1", &st, eb, "removing the user");

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    return once_write(s, st, NULL, eb, "removing the user");
}

static int64_t
sq_user_count(struct store *base, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    int64_t n = 0;

    if (pragma_int(s, "SELECT count(*) FROM app_user", &n) != SQLITE_OK)
        return db_err(s, sqlite3_extended_errcode(s->db), eb, "counting users");
    return n;
}

static int
sq_session_insert(struct store *base, const char *token_hash, int64_t user_id, int64_t expires_at,
                  struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t now = clock_now();
    int rc = once(s,
                  "INSERT INTO user_session (token_hash, user_id, created_at, expires_at) "
                  "VALUES (?1, ?2, ?3, ?4)",
                  &st, eb, "starting the session");

    if (rc != ERR_OK)
        return rc;
    bind_text(st, 1, token_hash);
    sqlite3_bind_int64(st, 2, user_id);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_int64(st, 4, expires_at);
    rc = once_write(s, st, NULL, eb, "starting the session");
    /* Expired sessions go away as new ones start. */
    if (rc == ERR_OK && once(s, "DELETE FROM user_session WHERE expires_at < ?1", &st, NULL,
                             "pruning sessions") == ERR_OK) {
        sqlite3_bind_int64(st, 1, now);
        once_write(s, st, NULL, NULL, "pruning sessions");
    }
    return rc;
}

static int
sq_session_user(struct store *base, const char *token_hash, int64_t now, struct user_row *out,
                struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = cached(s,
                    "SELECT u.id, u.account_id, u.name, u.role, u.password_hash, u.created_at "
                    "FROM user_session x JOIN app_user u ON u.id = x.user_id "
                    "WHERE x.token_hash = ?1 AND x.expires_at > ?2",
                    &st, eb);

    if (rc != ERR_OK)
        return rc;
    bind_text(st, 1, token_hash);
    sqlite3_bind_int64(st, 2, now);
    rc = read_user(s, st, out, eb, "session");
    release(s, st);
    return rc;
}

static int
sq_session_delete(struct store *base, const char *token_hash, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s, "DELETE FROM user_session WHERE token_hash = ?1", &st, eb, "signing out");

    if (rc != ERR_OK)
        return rc;
    bind_text(st, 1, token_hash);
    rc = once_write(s, st, NULL, eb, "signing out");
    return rc == ERR_NOTFOUND ? ERR_OK : rc;
}

static int
sq_apikey_insert(struct store *base, int64_t account_id, const char *name, const char *scope,
                 const char *key_hash, const char *prefix, int64_t expires_at, int64_t *id,
                 struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s,
                  "INSERT INTO api_key (account_id, name, scope, key_hash, prefix, created_at, "
                  "expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                  &st, eb, "creating the API key");

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, account_id);
    bind_text(st, 2, name);
    bind_text(st, 3, scope);
    bind_text(st, 4, key_hash);
    bind_text(st, 5, prefix);
    sqlite3_bind_int64(st, 6, clock_now());
    bind_ts(st, 7, expires_at);
    return once_write(s, st, id, eb, "creating the API key");
}

static int
sq_apikey_touch(struct store *base, int64_t id, int64_t now, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t unused = 0;
    int rc = once(s,
                  "UPDATE api_key SET last_used_at = ?2 WHERE id = ?1 AND "
                  "(last_used_at IS NULL OR last_used_at <= ?2 - 60)",
                  &st, eb, "recording the API key's use");

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    return once_write(s, st, &unused, eb, "recording the API key's use");
}

static int
sq_apikey_find(struct store *base, const char *key_hash, int64_t *account_id, int64_t *id,
               char **scope, int64_t *expires_at, int64_t *last_used_at, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = cached(s,
                    "SELECT account_id, id, scope, expires_at, last_used_at FROM api_key WHERE "
                    "key_hash = ?1 AND revoked_at IS NULL",
                    &st, eb);
    int src;

    if (rc != ERR_OK)
        return rc;
    bind_text(st, 1, key_hash);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *account_id = sqlite3_column_int64(st, 0);
        *id = sqlite3_column_int64(st, 1);
        *scope = col_dup(st, 2);
        *expires_at = col_ts(st, 3);
        *last_used_at = col_ts(st, 4);
    } else if (src == SQLITE_DONE) {
        rc = err_set(eb, ERR_NOTFOUND, "unknown API key");
    } else {
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the API key");
    }
    release(s, st);
    return rc;
}

static int
sq_apikey_revoke(struct store *base, int64_t account_id, int64_t id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s,
                  "UPDATE api_key SET revoked_at = ?3 WHERE account_id = ?1 AND id = ?2 AND "
                  "revoked_at IS NULL",
                  &st, eb, "revoking the API key");

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, account_id);
    sqlite3_bind_int64(st, 2, id);
    sqlite3_bind_int64(st, 3, clock_now());
    rc = once_write(s, st, NULL, eb, "revoking the API key");
    if (rc == ERR_NOTFOUND)
        return err_set(eb, ERR_NOTFOUND, "API key %" PRId64 " does not exist or is revoked", id);
    return rc;
}

static int
sq_integration_update(struct store *base, int64_t account_id, int64_t id, const char *name,
                      int64_t sync_interval, int64_t partner_expires, int64_t sync_expires,
                      struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s,
                  "UPDATE integration SET name = COALESCE(?3, name), "
                  "sync_interval = COALESCE(?4, sync_interval), "
                  "partner_secret_expires = COALESCE(?5, partner_secret_expires), "
                  "sync_secret_expires = COALESCE(?6, sync_secret_expires), updated_at = ?7, "
                  "partner_secret_expiry_source = CASE WHEN ?5 IS NULL THEN "
                  "partner_secret_expiry_source END, "
                  "sync_secret_expiry_source = CASE WHEN ?6 IS NULL THEN "
                  "sync_secret_expiry_source END "
                  "WHERE account_id = ?1 AND id = ?2",
                  &st, eb, "updating the integration");

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, account_id);
    sqlite3_bind_int64(st, 2, id);
    bind_text(st, 3, name);
    if (sync_interval > 0)
        sqlite3_bind_int64(st, 4, sync_interval);
    if (partner_expires != 0 && partner_expires != TS_NULL)
        sqlite3_bind_int64(st, 5, partner_expires);
    if (sync_expires != 0 && sync_expires != TS_NULL)
        sqlite3_bind_int64(st, 6, sync_expires);
    sqlite3_bind_int64(st, 7, clock_now());
    rc = once_write(s, st, NULL, eb, "updating the integration");
    if (rc == ERR_NOTFOUND)
        return err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
    return rc;
}

/* ---- generic lists (SQL from store.c's shared builder) --------------------------------- */

static void
sq_param(struct buf *sql, int n)
{
    buf_printf(sql, "?%d", n);
}

static void
sq_contains(struct buf *sql, const char *expr, int n)
{
    buf_printf(sql, "instr(lower(COALESCE(CAST(%s AS TEXT), '')), lower(?%d)) > 0", expr, n);
}

static void
sq_ieq(struct buf *sql, const char *expr, int n)
{
    buf_printf(sql, "%s = ?%d COLLATE NOCASE", expr, n);
}

static const struct store_dialect sq_dialect = {sq_param, sq_contains, sq_ieq, "LIMIT -1", 0};

static void
lbinds_apply(sqlite3_stmt *st, const struct store_binds *b)
{
    for (int i = 0; i < b->n; i++) {
        if (b->v[i].kind == SC_INT)
            sqlite3_bind_int64(st, b->first + i, b->v[i].i);
        else
            bind_text(st, b->first + i, b->v[i].s);
    }
}

static int
sq_list_prepare(struct sq *s, const struct list_query *q, int count, sqlite3_stmt **st,
                struct store_binds *b, const struct store_list_entity **ent, struct errbuf *eb)
{
    const struct store_list_entity *e = store_list_entity(q->entity);
    struct buf sql;
    int rc;

    *st = NULL;
    if (e == NULL || e->from == NULL)
        return err_set(eb, ERR_INVAL, "unknown list '%s'", q->entity ? q->entity : "");
    *ent = e;
    buf_init(&sql, SQL_MAX);
    b->first = 5;
    rc = store_sql_list(&sq_dialect, q, count, &sql, b, eb);
    if (rc == ERR_OK)
        rc = cached(s, buf_cstr(&sql), st, eb);
    buf_free(&sql);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(*st, 1, q->account_id);
    if (strstr(e->from, "?2") != NULL)
        sqlite3_bind_int64(*st, 2, q->parent_id);
    if (q->search != NULL && q->search[0] != '\0')
        bind_text(*st, 3, q->search);
    lbinds_apply(*st, b);
    return ERR_OK;
}

static int
sq_list_each(struct store *base, const struct list_query *q,
             int (*cb)(void *arg, const struct store_cell *cells, size_t n), void *arg,
             struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    struct store_binds *b = xcalloc(1, sizeof *b);
    struct store_cell cells[64];
    const struct store_list_entity *e = NULL;
    sqlite3_stmt *st = NULL;
    int rc, src = SQLITE_DONE;
    size_t n = 0;

    rc = sq_list_prepare(s, q, 0, &st, b, &e, eb);
    if (rc != ERR_OK)
        goto out;
    for (const struct store_list_field *f = e->fields; f->name != NULL && n < 64; f++)
        n++;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        for (size_t i = 0; i < n; i++) {
            const struct store_list_field *f = &e->fields[i];
            int isnull = sqlite3_column_type(st, (int)i) == SQLITE_NULL;

            cells[i].name = f->name;
            cells[i].kind = isnull ? SC_NULL : f->kind;
            cells[i].i = isnull ? 0 : sqlite3_column_int64(st, (int)i);
            cells[i].s =
                isnull || f->kind != SC_TEXT ? NULL : (const char *)sqlite3_column_text(st, (int)i);
        }
        rc = cb(arg, cells, n);
        if (rc != 0)
            break;
    }
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "listing");
out:
    release(s, st);
    store_binds_free(b);
    free(b);
    return rc;
}

static int64_t
sq_list_count(struct store *base, const struct list_query *q, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    struct store_binds *b = xcalloc(1, sizeof *b);
    const struct store_list_entity *e = NULL;
    sqlite3_stmt *st = NULL;
    int64_t n;

    n = sq_list_prepare(s, q, 1, &st, b, &e, eb);
    if (n == ERR_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        else
            n = db_err(s, sqlite3_extended_errcode(s->db), eb, "counting");
    }
    release(s, st);
    store_binds_free(b);
    free(b);
    return n;
}

/* ---- asset reads ------------------------------------------------------------------------- */

/* Appends the WHERE clause of q; parameters: ?1 account, ?2 client, ?3 search, ?4 after_id. */
static int
asset_where(struct sq *s, struct buf *b, const struct asset_query *q, int paging, int count,
            int stream, int lean, int os_walk, struct store_binds *lb, struct errbuf *eb)
{
    int join = q->client != NULL || !count, by_client = 0;
    char *match = NULL;

    lb->first = 5;

    /* A count needs the client row only to filter on it. */
    for (size_t i = 0; i < q->nfilters; i++) {
        const char *f = q->filters[i].field, *op = q->filters[i].op;

        if (strncmp(f, "client.", 7) == 0 && strcmp(f, "client.id") != 0)
            join = 1;
        if (strcmp(f, "client.id") == 0 && (op == NULL || strcmp(op, "eq") == 0))
            by_client = 1;
    }
    if (q->search != NULL && q->search[0] != '\0' && lb->n < (int)(sizeof lb->v / sizeof lb->v[0]))
        match = store_trigram_query(q->search);
    stream = stream && match != NULL && paging && !count;
    if (stream) {
        /* The search index's matches in rowid order drive the walk (CROSS JOIN keeps them
         * outside): a page in id order stops after its rows instead of collecting every
         * candidate first. Only while every asset is indexed (sq_assets_each checks). */
        lb->v[lb->n].kind = SC_TEXT;
        lb->v[lb->n].s = match;
        lb->n++;
        buf_printf(b,
                   " FROM hardware_search s CROSS JOIN hardware_asset h ON h.id = s.rowid%s "
                   "WHERE s.hardware_search MATCH ?%d AND +h.account_id = ?1",
                   join ? " JOIN client c ON c.id = h.client_id" : "", lb->first + lb->n - 1);
    } else {
        buf_addstr(b, join ? " FROM hardware_asset h JOIN client c ON c.id = h.client_id"
                           : " FROM hardware_asset h");
        /* One client: its index is the narrow one, but without statistics SQLite may prefer
         * an account index; the unary + keeps the account check out of index selection.
         * Search candidates likewise: an account index walk would probe a million rows
         * against them. */
        if (lean && by_client && match == NULL)
            /* The client's account is the asset's: the list reads only its index then
             * (covering: sq_assets_part's lean columns). */
            buf_addstr(b, " WHERE c.account_id = ?1");
        else
            buf_addstr(b, by_client || match != NULL ? " WHERE +h.account_id = ?1"
                                                     : " WHERE h.account_id = ?1");
    }
    if (!q->include_retired)
        buf_addstr(b, match != NULL ? " AND +h.retired_at IS NULL" : " AND h.retired_at IS NULL");
    if (os_walk) /* true of every row in this snapshot: it names hardware_asset_os_name */
        buf_addstr(b, " AND h.search_indexed IS NOT NULL");
    if (q->client != NULL)
        buf_addstr(b, " AND (CAST(c.id AS TEXT) = ?2 OR c.tenant_id = ?2 "
                      "OR COALESCE(c.name_override, c.name) = ?2)");
    if (q->search != NULL && q->search[0] != '\0') {
        const char *cols[] = {s->dsql.col_name, s->dsql.col_serial, s->dsql.col_upn,
                              s->dsql.col_user, s->dsql.col_model};
        int first = 1;

        /* Rows holding every trigram of the text (a superset) and rows not indexed yet, then
         * the exact test. */
        if (match != NULL && !stream) {
            lb->v[lb->n].kind = SC_TEXT;
            lb->v[lb->n].s = match;
            lb->n++;
            buf_printf(b,
                       " AND h.id IN (SELECT rowid FROM hardware_search WHERE hardware_search "
                       "MATCH ?%d UNION ALL SELECT id FROM hardware_asset WHERE search_indexed "
                       "IS NULL)",
                       lb->first + lb->n - 1);
        }
        buf_addstr(b, " AND (");
        for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
            if (cols[i] == NULL)
                continue;
            buf_printf(b, "%sinstr(lower(COALESCE(h.%s, '')), lower(?3)) > 0", first ? "" : " OR ",
                       cols[i]);
            first = 0;
        }
        if (first)
            buf_addstr(b, "0");
        buf_addstr(b, ")");
    }
    if (paging && q->after_id > 0)
        buf_addstr(b, stream ? " AND s.rowid > ?4" : " AND h.id > ?4");
    return store_sql_filters(&sq_dialect, store_list_entity("hardware"), q->filters, q->nfilters, b,
                             lb, eb);
}

static void
asset_bind(sqlite3_stmt *st, const struct asset_query *q, const struct store_binds *lb)
{
    lbinds_apply(st, lb);
    sqlite3_bind_int64(st, 1, q->account_id);
    if (q->client != NULL)
        bind_text(st, 2, q->client);
    if (q->search != NULL)
        bind_text(st, 3, q->search);
    sqlite3_bind_int64(st, 4, q->after_id);
}

/* Column c's integer, or null_value for SQL NULL: the type is asked only when the value is 0
 * (NULL reads as 0), one call per column for most rows. */
static inline int64_t
col_int_or(sqlite3_stmt *st, int c, int64_t null_value)
{
    int64_t v = sqlite3_column_int64(st, c);

    if (v == 0 && sqlite3_column_type(st, c) == SQLITE_NULL)
        return null_value;
    return v;
}

/* The last type text parsed on a list page and its value: a page has a few distinct types. */
struct type_memo {
    char text[16];
    enum device_type type;
};

/* read_device for list rows: the strings point into the statement's row (valid until the next
 * step), so a page of 200 rows makes no copies. Never device_clear the result. */
static void
read_device_view(sqlite3_stmt *st, int first, struct device *d, struct type_memo *tm)
{
    device_init(d);
    for (size_t i = 0; i < device_field_count; i++) {
        const struct device_field *f = &device_fields[i];
        void *p = field_ptr(d, f);
        int c = first + (int)i;

        switch (f->kind) {
        case DF_STR: /* NULL for SQL NULL */
            *(const char **)p = (const char *)sqlite3_column_text(st, c);
            break;
        case DF_INT64:
            *(int64_t *)p = col_int_or(st, c, -1);
            break;
        case DF_BOOL:
            *(int *)p = sqlite3_column_int(st, c) != 0              ? 1
                        : sqlite3_column_type(st, c) == SQLITE_NULL ? -1
                                                                    : 0;
            break;
        case DF_TS:
            *(int64_t *)p = col_int_or(st, c, TS_NULL);
            break;
        case DF_TYPE: {
            const char *t = (const char *)sqlite3_column_text(st, c);
            enum device_type ty = DEVICE_UNKNOWN;
            size_t n;

            if (t != NULL && strcmp(t, tm->text) == 0) {
                ty = tm->type;
            } else if (t != NULL) {
                if (device_type_parse(t, &ty) != 0)
                    ty = DEVICE_UNKNOWN;
                if ((n = strlen(t)) < sizeof tm->text) {
                    memcpy(tm->text, t, n + 1);
                    tm->type = ty;
                }
            }
            *(enum device_type *)p = ty;
            break;
        }
        }
    }
}

/* The list query's column holding expr when it is one of the device columns (cols_h, from
 * column 10), else -1. */
static int
hw_device_column(const char *expr)
{
    if (strncmp(expr, "h.", 2) != 0)
        return -1;
    for (size_t i = 0; i < device_field_count; i++)
        if (strcmp(expr + 2, device_fields[i].name) == 0)
            return 10 + (int)i;
    return -1;
}

struct sq_part {
    struct sq *s;
    const struct asset_query *q;
    int (*cb)(void *arg, const struct asset *a);
    void *arg;
    struct errbuf *eb;
    /* The account's shared serials at data version set_version, or NULL: the list then asks
     * SQLite for the duplicate flag. With a set, column 9 is the serial key and only members
     * are probed (dup_probe). */
    struct serialset *set;
    int64_t set_version;
    /* A search page in id order walks the search index's matches (asset_where). */
    int stream;
    /* A list of one OS sorted by name walks hardware_asset_os_name (schema_v8). */
    int os_walk;
    /* Lazy rows (asset_query.lazy_dev): the row being handed out (id, tenant), the serial
     * set its duplicate flag is read from (NULL: probe), the statement lazy_load stepped for
     * it (reset once the callback returns) and its type memo. batch_st reads the page's rows
     * the caller does not hold ahead, in page order: its current row is batch_id's (0: none
     * left). */
    int64_t cur_id;
    const char *cur_tenant;
    const struct serialset *cur_set;
    sqlite3_stmt *dev_st;
    sqlite3_stmt *batch_st;
    int64_t batch_id;
    struct type_memo dev_tm;
    uint64_t db_tag;
};

static int sq_data_version(struct store *base, int64_t *out, struct errbuf *eb);

#define DUP_SET_MIN_ROWS 32

/* Ends a read transaction this module began; never leaves it open for the connection's next
 * writes. */
static void
read_end(struct sq *s)
{
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK &&
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
        log_warn("store: a read transaction could not be ended: %s", sqlite3_errmsg(s->db));
}

/* The serial keys two or more of the account's assets hold, at the data version this read
 * sees (*version), or NULL when it is not this thread's turn to build them and no set of the
 * current version exists. Best effort: a failure only means the list probes every row. */
static struct serialset *
dup_set(struct sq *s, int64_t account_id, int64_t *version)
{
    struct serialset *set = NULL, *ns = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v, t0;
    int build = 0, own = 0, src, ok = 0;

    if (s->base.cache_id == NULL || sq_data_version(&s->base, &v, NULL) != ERR_OK)
        return NULL;
    set = serialset_acquire(s->base.cache_id, account_id, v, clock_mono_ms(), &build);
    *version = v;
    if (!build)
        return set;
    t0 = clock_mono_ms();
    /* The version and the keys from one snapshot. */
    own = sqlite3_get_autocommit(s->db) && exec_sql(s, "BEGIN", NULL, "") == ERR_OK;
    if (sq_data_version(&s->base, &v, NULL) != ERR_OK ||
        prep(s, S_SERIAL_SHARED,
             "SELECT serial_key FROM hardware_asset INDEXED BY hardware_asset_serial "
             "WHERE serial_key IS NOT NULL AND account_id = ?1 GROUP BY serial_key "
             "HAVING count(*) > 1",
             &st, NULL) != ERR_OK)
        goto out;
    ns = serialset_new();
    sqlite3_bind_int64(st, 1, account_id);
    while ((src = sqlite3_step(st)) == SQLITE_ROW)
        if (serialset_add(ns, (const char *)sqlite3_column_text(st, 0),
                          (size_t)sqlite3_column_bytes(st, 0)) != ERR_OK)
            break;
    ok = src == SQLITE_DONE;
out:
    done(st);
    if (own)
        read_end(s);
    if (!ok) {
        serialset_release(ns);
        ns = NULL;
    }
    *version = v;
    return serialset_publish(s->base.cache_id, account_id, v, ns, t0, clock_mono_ms());
}

/* Whether an active asset of another tenant holds key (the row's own id and tenant excluded):
 * STORE_HW_LIST_DUP for one row. */
static int
dup_probe(struct sq *s, int64_t account_id, int64_t id, const char *tenant, const char *key)
{
    sqlite3_stmt *st = NULL;
    int dup = 0;

    if (prep(s, S_SERIAL_DUP,
             "SELECT 1 FROM hardware_asset o WHERE o.serial_key = ?1 AND o.account_id = ?2 "
             "AND o.id <> ?3 AND o.tenant_id <> ?4 AND o.retired_at IS NULL LIMIT 1",
             &st, NULL) != ERR_OK)
        return 0;
    bind_text(st, 1, key);
    sqlite3_bind_int64(st, 2, account_id);
    sqlite3_bind_int64(st, 3, id);
    bind_text(st, 4, tenant);
    dup = sqlite3_step(st) == SQLITE_ROW;
    done(st);
    return dup;
}

/* The duplicate flag of the row being handed out, whose serial key is key[0..len). */
static int
row_dup(struct sq_part *x, const char *key, size_t len)
{
    return key != NULL && (x->cur_set == NULL || serialset_has(x->cur_set, key, len)) &&
           dup_probe(x->s, x->q->account_id, x->cur_id, x->cur_tenant, key);
}

/* The columns of a lazy row's rest (S_ASSET_DEV, S_ASSET_DEV_BATCH): id first. */
#define LAZY_DEV_COLS                                                                              \
    "SELECT h.id, h.integration_id, h.intune_device_id, h.first_synced_at, h.last_synced_at, "     \
    "h.retired_at, h.serial_key, h.missing_since, %s FROM "

/* asset.dev_load of a lazy row: the rest of it in the list's snapshot (sq_assets_each holds
 * it), from the rows read ahead when it is there, else read by id. */
static int
lazy_load(void *ctx, struct asset *a, const char **serial_key)
{
    struct sq_part *x = ctx;
    struct sq *s = x->s;
    sqlite3_stmt *st;
    int rc;

    if (x->batch_id != 0 && x->batch_id == x->cur_id) {
        st = x->batch_st;
    } else {
        if (x->dev_st == NULL) {
            char *sql = xasprintf(LAZY_DEV_COLS "hardware_asset h WHERE h.id = ?1", s->dsql.cols_h);

            rc = prep(s, S_ASSET_DEV, sql, &x->dev_st, x->eb);
            free(sql);
            if (rc != ERR_OK)
                return rc;
        }
        st = x->dev_st;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, x->cur_id);
        if (sqlite3_step(st) != SQLITE_ROW)
            return db_err(s, sqlite3_extended_errcode(s->db), x->eb, "reading a device");
    }
    a->integration_id = sqlite3_column_int64(st, 1);
    a->first_synced_at = col_int_or(st, 3, TS_NULL);
    a->last_synced_at = col_int_or(st, 4, TS_NULL);
    a->retired_at = col_int_or(st, 5, TS_NULL);
    *serial_key = (const char *)sqlite3_column_text(st, 6);
    a->serial_duplicate = row_dup(x, *serial_key, (size_t)sqlite3_column_bytes(st, 6));
    a->missing_since = col_int_or(st, 7, TS_NULL);
    read_device_view(st, 8, &a->dev, &x->dev_tm);
    a->dev.intune_id = (char *)sqlite3_column_text(st, 2);
    return ERR_OK;
}

/* asset.dup of a lazy row. */
static int
lazy_dup(void *ctx, const char *serial_key)
{
    return row_dup(ctx, serial_key, serial_key != NULL ? strlen(serial_key) : 0);
}

/* asset.dev_stamp of a lazy row: the database, the client and its sync generation, which the
 * transaction of every write of the client's assets bumps (sq_reconcile_begin) and which a
 * client id reused after a deletion never repeats (a new client starts past the data
 * version). Never 0. */
static uint64_t
lazy_stamp(uint64_t db_tag, int64_t client_id, int64_t gen)
{
    int64_t v[2] = {client_id, gen};
    uint64_t h = hash_bytes(v, sizeof v) ^ db_tag;

    return h != 0 ? h : 1;
}

/* The serial set that serves the snapshot being read: x->set only if it was built there, else
 * NULL (every member of the page is then probed). */
static const struct serialset *
snapshot_set(struct sq_part *x)
{
    int64_t seen = 0;

    if (x->set == NULL || sq_data_version(&x->s->base, &seen, NULL) != ERR_OK ||
        seen != x->set_version)
        return NULL;
    return x->set;
}

/* Lazy pages are collected whole first: at most this many rows, their strings in an arena. */
#define LAZY_MAX_ROWS  5000
#define LAZY_ARENA_MAX (8 * 1024 * 1024)

/* A collected row of a lazy page (its id and stamp in arrays of their own, for lazy_held);
 * strings are offsets into the page's arena (SIZE_MAX: NULL). */
struct lazy_row {
    int64_t client_id;
    size_t name, tenant;
    struct {
        enum store_cell_kind kind;
        int64_t i;
        size_t s;
    } sort[STORE_LIST_MAX_SORTS];
};

static int
arena_add(struct buf *a, sqlite3_stmt *st, int c, size_t *off)
{
    const unsigned char *p = sqlite3_column_text(st, c);
    size_t n;

    *off = SIZE_MAX;
    if (p == NULL)
        return ERR_OK;
    n = (size_t)sqlite3_column_bytes(st, c);
    if (buf_reserve(a, n + 1) != ERR_OK)
        return ERR_TOOBIG;
    memcpy(a->data + a->len, p, n + 1); /* with SQLite's terminator */
    *off = a->len;
    a->len += n + 1;
    return ERR_OK;
}

/* Appends ",id" (just "id" first) to a JSON array of ids, without printf: a page can ask for
 * hundreds. */
static int
ids_add(struct buf *b, int64_t id, int first)
{
    char t[24], *e = t + sizeof t, *p = e;
    uint64_t u = id < 0 ? 0 : (uint64_t)id; /* ids are positive */

    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (!first)
        *--p = ',';
    return buf_add(b, p, (size_t)(e - p));
}

static const char *
arena_str(const struct buf *a, size_t off)
{
    return off == SIZE_MAX ? NULL : a->data + off;
}

/* The rows of a lazy page (st: the list statement, stepped here). They are collected first, so
 * that the rest of those the caller does not hold (asset_query.lazy_held) is read by one
 * statement, in page order, beside the callbacks: a row read by id costs a statement reset,
 * which frees every column buffer (about a third of a row's cost). */
static int
lazy_page(struct sq_part *x, sqlite3_stmt *st, int limit, const int *sort_col, int64_t *rows)
{
    struct sq *s = x->s;
    const struct asset_query *q = x->q;
    struct lazy_row *r = xmalloc((size_t)limit * sizeof *r);
    int64_t *rid = xmalloc((size_t)limit * sizeof *rid);
    uint64_t *rstamp = xmalloc((size_t)limit * sizeof *rstamp);
    unsigned char *held = xcalloc((size_t)limit, 1);
    const struct serialset *set = NULL;
    sqlite3_stmt *bst = NULL;
    struct buf arena, ids;
    size_t n = 0, want = 0;
    int rc = ERR_OK, src = SQLITE_DONE;

    buf_init(&arena, LAZY_ARENA_MAX);
    buf_init(&ids, LAZY_ARENA_MAX);
    buf_reserve(&arena, (size_t)limit * 64);
    buf_addc(&ids, '[');
    while (n < (size_t)limit && (src = sqlite3_step(st)) == SQLITE_ROW) {
        struct lazy_row *w = &r[n];

        rid[n] = sqlite3_column_int64(st, 0);
        w->client_id = sqlite3_column_int64(st, 1);
        if (n > 0 && w->client_id == r[n - 1].client_id) { /* one snapshot: the same client */
            rstamp[n] = rstamp[n - 1];
            w->name = r[n - 1].name;
            w->tenant = r[n - 1].tenant;
        } else {
            rstamp[n] = lazy_stamp(x->db_tag, w->client_id, sqlite3_column_int64(st, 4));
            rc = arena_add(&arena, st, 2, &w->name);
            if (rc == ERR_OK)
                rc = arena_add(&arena, st, 3, &w->tenant);
        }
        for (size_t i = 0; i < q->nsorts && rc == ERR_OK; i++) {
            int c = sort_col[i], t = sqlite3_column_type(st, c);

            w->sort[i].kind = t == SQLITE_NULL ? SC_NULL : t == SQLITE_TEXT ? SC_TEXT : SC_INT;
            if (w->sort[i].kind == SC_TEXT)
                rc = arena_add(&arena, st, c, &w->sort[i].s);
            else if (w->sort[i].kind == SC_INT)
                w->sort[i].i = sqlite3_column_int64(st, c);
        }
        if (rc != ERR_OK)
            break;
        n++;
    }
    if (rc == ERR_OK && src != SQLITE_ROW && src != SQLITE_DONE) {
        rc = db_err(s, sqlite3_extended_errcode(s->db), x->eb, "listing assets");
        goto out;
    }
    if (rc == ERR_OK && n > 0 && q->lazy_held != NULL)
        q->lazy_held(q->lazy_held_arg, rid, rstamp, n, held);
    for (size_t k = 0; k < n && rc == ERR_OK; k++)
        if (!held[k])
            rc = ids_add(&ids, rid[k], want++ == 0);
    if (rc != ERR_OK) {
        rc = err_set(x->eb, ERR_TOOBIG, "a list page's rows are too large; ask for fewer");
        goto out;
    }
    if (n > 0)
        set = snapshot_set(x);
    if (want > 0 && buf_addc(&ids, ']') == ERR_OK) {
        char *sql = xasprintf(LAZY_DEV_COLS "json_each(?1) j CROSS JOIN hardware_asset h "
                                            "ON h.id = j.value",
                              s->dsql.cols_h);

        rc = prep(s, S_ASSET_DEV_BATCH, sql, &bst, x->eb);
        free(sql);
        if (rc != ERR_OK)
            goto out;
        sqlite3_bind_text(bst, 1, ids.data, (int)ids.len, SQLITE_STATIC);
        x->batch_st = bst;
        x->batch_id = sqlite3_step(bst) == SQLITE_ROW ? sqlite3_column_int64(bst, 0) : 0;
    }
    for (size_t k = 0; k < n && rc == ERR_OK; k++) {
        const struct lazy_row *w = &r[k];
        struct asset a;

        memset(&a, 0, sizeof a);
        a.id = rid[k];
        a.client_id = w->client_id;
        a.client_name = arena_str(&arena, w->name);
        a.client_tenant_id = arena_str(&arena, w->tenant);
        a.dev_stamp = rstamp[k];
        a.dev_load = lazy_load;
        a.dup = lazy_dup;
        a.dev_ctx = x;
        device_init(&a.dev);
        for (size_t i = 0; i < q->nsorts; i++) {
            struct store_cell *v = &a.sort_vals[i];

            v->name = q->sorts[i].field;
            v->kind = w->sort[i].kind;
            v->i = w->sort[i].i;
            if (v->kind == SC_TEXT)
                v->s = arena_str(&arena, w->sort[i].s);
        }
        a.nsort_vals = q->nsorts;
        x->cur_id = a.id;
        x->cur_tenant = a.client_tenant_id;
        x->cur_set = set;
        (*rows)++;
        rc = x->cb(x->arg, &a);
        done(x->dev_st);
        /* The row read ahead for this one, used or not (another thread cached it meanwhile). */
        if (x->batch_id != 0 && x->batch_id == a.id)
            x->batch_id = sqlite3_step(bst) == SQLITE_ROW ? sqlite3_column_int64(bst, 0) : 0;
    }
out:
    done(bst); /* before ids goes: bound without a copy */
    x->batch_st = NULL;
    x->batch_id = 0;
    buf_free(&ids);
    buf_free(&arena);
    free(held);
    free(rstamp);
    free(rid);
    free(r);
    return rc;
}

static int
sq_assets_part(void *ctx, int part, int count, int64_t offset, int limit, int64_t *rows)
{
    struct sq_part *x = ctx;
    struct sq *s = x->s;
    const struct asset_query *q = x->q;
    sqlite3_stmt *st = NULL;
    struct buf sql;
    struct asset a;
    struct store_binds *lb = xcalloc(1, sizeof *lb);
    struct type_memo tm = {"", DEVICE_UNKNOWN};
    int rc = ERR_OK, src, sort_col[STORE_LIST_MAX_SORTS], keyed = 0, lazy;
    const struct serialset *set = NULL;

    *rows = 0;
    buf_init(&sql, SQL_MAX);
    lazy = !count && q->lazy_dev && limit > 0 && limit <= LAZY_MAX_ROWS && x->db_tag != 0;
    if (count) {
        buf_addstr(&sql, "SELECT count(*)");
    } else if (lazy) {
        /* What the list indexes hold (with the client row): a walk that needs no table row,
         * when the filters and sorts are indexed too. */
        buf_addstr(&sql, "SELECT h.id, h.client_id, COALESCE(c.name_override, c.name), "
                         "c.tenant_id, c.sync_gen");
    } else {
        buf_addstr(&sql, STORE_HW_LIST_COLS);
        buf_addstr(&sql, x->set != NULL ? "h.serial_key, " : STORE_HW_LIST_DUP);
        buf_addstr(&sql, s->dsql.cols_h);
        buf_addstr(&sql, ", h.missing_since");
    }
    if (!count) {
        /* The sort values, for the caller's cursor: a device column read again is not
         * selected twice; the others last. */
        for (size_t i = 0, next = lazy ? 5 : 11 + device_field_count; i < q->nsorts; i++) {
            const struct store_list_field *f =
                store_list_field(store_list_entity("hardware"), q->sorts[i].field);

            if (f == NULL || i >= STORE_LIST_MAX_SORTS) {
                rc = store_list_sort_values(&sql, "hardware", q->sorts, q->nsorts, x->eb);
                if (rc == ERR_OK) /* unknown fields are refused there */
                    rc = err_set(x->eb, ERR_INVAL, "too many sort fields");
                goto out;
            }
            if (lazy || (sort_col[i] = hw_device_column(f->expr)) < 0) {
                buf_printf(&sql, ", %s", f->expr);
                sort_col[i] = (int)next++;
            }
        }
    }
    rc = asset_where(s, &sql, q, 1, 0, x->stream && !count, lazy, x->os_walk, lb, x->eb);
    if (rc == ERR_OK && x->stream && !count && part == STORE_PART_ALL && q->nsorts == 0) {
        buf_addstr(&sql, " ORDER BY s.rowid");
        if (limit > 0)
            buf_printf(&sql, " LIMIT %d", limit);
        else if (offset > 0)
            buf_printf(&sql, " %s", sq_dialect.no_limit);
        if (offset > 0)
            buf_printf(&sql, " OFFSET %" PRId64, offset);
    } else if (rc == ERR_OK) {
        rc = store_sql_asset_tail(&sq_dialect, q, part, count, offset, limit, &sql, lb, x->eb);
    }
    if (rc != ERR_OK)
        goto out;
    rc = cached(s, buf_cstr(&sql), &st, x->eb);
    if (rc != ERR_OK)
        goto out;
    asset_bind(st, q, lb);
    if (count) {
        if (sqlite3_step(st) == SQLITE_ROW)
            *rows = sqlite3_column_int64(st, 0);
        else
            rc = db_err(s, sqlite3_extended_errcode(s->db), x->eb, "counting assets");
        goto out;
    }
    if (lazy) {
        rc = lazy_page(x, st, limit, sort_col, rows);
        goto out;
    }
    keyed = x->set != NULL;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&a, 0, sizeof a);
        a.id = sqlite3_column_int64(st, 0);
        a.client_id = sqlite3_column_int64(st, 1);
        a.client_name = (const char *)sqlite3_column_text(st, 2);
        a.client_tenant_id = (const char *)sqlite3_column_text(st, 3);
        /* (An asset's tenant is its client's: column 3.) */
        if (*rows == 0)
            set = snapshot_set(x);
        x->cur_id = a.id;
        x->cur_tenant = a.client_tenant_id;
        x->cur_set = set;
        a.integration_id = sqlite3_column_int64(st, 4);
        a.first_synced_at = col_int_or(st, 6, TS_NULL);
        a.last_synced_at = col_int_or(st, 7, TS_NULL);
        a.retired_at = col_int_or(st, 8, TS_NULL);
        a.serial_duplicate = keyed ? row_dup(x, (const char *)sqlite3_column_text(st, 9),
                                             (size_t)sqlite3_column_bytes(st, 9))
                                   : sqlite3_column_int(st, 9) != 0;
        read_device_view(st, 10, &a.dev, &tm);
        a.missing_since = col_int_or(st, 10 + (int)device_field_count, TS_NULL);
        a.dev.intune_id = (char *)sqlite3_column_text(st, 5);
        for (size_t i = 0; i < q->nsorts; i++) {
            int c = sort_col[i], t = sqlite3_column_type(st, c);
            struct store_cell *v = &a.sort_vals[i];

            v->name = q->sorts[i].field;
            v->kind = t == SQLITE_NULL ? SC_NULL : t == SQLITE_TEXT ? SC_TEXT : SC_INT;
            if (v->kind == SC_TEXT)
                v->s = (const char *)sqlite3_column_text(st, c);
            else if (v->kind == SC_INT)
                v->i = sqlite3_column_int64(st, c);
        }
        a.nsort_vals = q->nsorts;
        (*rows)++;
        rc = x->cb(x->arg, &a); /* a.dev borrows the row: nothing to free */
        if (rc != 0)
            break;
    }
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc = db_err(s, sqlite3_extended_errcode(s->db), x->eb, "listing assets");
out:
    release(s, st);
    buf_free(&sql);
    store_binds_free(lb);
    free(lb);
    return rc;
}

/* Whether q lists one OS (eq filters on it only) sorted by name, of active rows: the shape
 * hardware_asset_os_name serves once every row is in it. */
static int
os_walk_shape(const struct asset_query *q)
{
    int os = 0;

    if (q->nsorts != 1 || strcmp(q->sorts[0].field, "name") != 0 || q->include_retired ||
        (q->search != NULL && q->search[0] != '\0') || q->client != NULL)
        return 0;
    for (size_t i = 0; i < q->nfilters; i++) {
        const char *op = q->filters[i].op;

        if (strcmp(q->filters[i].field, "operating_system.name") != 0 ||
            (op != NULL && strcmp(op, "eq") != 0))
            return 0;
        os = 1;
    }
    return os;
}

static int
sq_assets_each(struct store *base, const struct asset_query *q,
               int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb)
{
    struct sq_part x = {.s = (struct sq *)base,
                        .q = q,
                        .cb = cb,
                        .arg = arg,
                        .eb = eb,
                        .dev_tm = {"", DEVICE_UNKNOWN}};
    sqlite3_stmt *st = NULL;
    char *match = NULL;
    int rc, own = 0, stream = 0, os_walk, lazy;

    /* A few rows (an asset's detail, small pages) probe cheaper than a set is looked up, let
     * alone built. */
    if (q->limit == 0 || q->limit > DUP_SET_MIN_ROWS)
        x.set = dup_set(x.s, q->account_id, &x.set_version);
    if (q->nsorts == 0 && q->search != NULL && (match = store_trigram_query(q->search)) != NULL)
        stream = 1;
    free(match);
    os_walk = os_walk_shape(q);
    lazy = q->lazy_dev && x.s->base.cache_id != NULL;
    /* One snapshot for what is decided here and the list: the search index's coverage (for
     * stream and os_walk), and a lazy page's rows read after the list statement. */
    if ((stream || os_walk || lazy) && sqlite3_get_autocommit(x.s->db))
        own = exec_sql(x.s, "BEGIN", NULL, "") == ERR_OK;
    if ((stream || os_walk) && (own || !sqlite3_get_autocommit(x.s->db)) &&
        prep(x.s, S_UNINDEXED, "SELECT 1 FROM hardware_asset WHERE search_indexed IS NULL LIMIT 1",
             &st, NULL) == ERR_OK) {
        /* Rows the indexer has not reached (a sync's newest) are in neither index. */
        int all = sqlite3_step(st) == SQLITE_DONE;

        x.stream = stream && all;
        x.os_walk = os_walk && all;
    }
    done(st);
    if (lazy)
        x.db_tag = hash_bytes(x.s->base.cache_id, strlen(x.s->base.cache_id)) | 1;
    rc = store_assets_parts(q, sq_assets_part, &x);
    if (own)
        read_end(x.s);
    serialset_release(x.set);
    return rc;
}

static int64_t
sq_assets_count(struct store *base, const struct asset_query *q, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    struct buf sql;
    int64_t n;
    struct store_binds *lb = xcalloc(1, sizeof *lb);

    buf_init(&sql, SQL_MAX);
    if (q->nfilters == 0 && (q->search == NULL || q->search[0] == '\0') && q->client == NULL &&
        !q->include_retired) {
        /* Every active device of the account: the clients keep that count (reconcile). */
        buf_addstr(&sql, "SELECT COALESCE(sum(device_count), 0) FROM client WHERE account_id = ?1");
        n = cached(s, buf_cstr(&sql), &st, eb);
        if (n != ERR_OK)
            goto out;
        sqlite3_bind_int64(st, 1, q->account_id);
        n = sqlite3_step(st) == SQLITE_ROW
                ? sqlite3_column_int64(st, 0)
                : db_err(s, sqlite3_extended_errcode(s->db), eb, "counting assets");
        goto out;
    }
    buf_addstr(&sql, "SELECT count(*)");
    n = asset_where(s, &sql, q, 0, 1, 0, 0, 0, lb, eb);
    if (n != ERR_OK)
        goto out;
    n = cached(s, buf_cstr(&sql), &st, eb);
    if (n != ERR_OK)
        goto out;
    asset_bind(st, q, lb);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    else
        n = db_err(s, sqlite3_extended_errcode(s->db), eb, "counting assets");
out:
    release(s, st);
    buf_free(&sql);
    store_binds_free(lb);
    free(lb);
    return n;
}
struct asset_get {
    int (*cb)(void *arg, const struct asset *a);
    void *arg;
    int found;
};

static int
get_cb(void *arg, const struct asset *a)
{
    struct asset_get *g = arg;

    g->found = 1;
    return g->cb(g->arg, a);
}

static int
sq_asset_get(struct store *base, int64_t account_id, int64_t id,
             int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb)
{
    struct asset_get g = {0};
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
    g.cb = cb;
    g.arg = arg;
    rc = sq_assets_each(base, &q, get_cb, &g, eb);
    if (rc != ERR_OK)
        return rc;
    if (!g.found)
        return err_set(eb, ERR_NOTFOUND, "hardware asset %" PRId64 " does not exist", id);
    return ERR_OK;
}

static int
sq_data_version(struct store *base, int64_t *out, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, S_DATA_VERSION, "SELECT v FROM data_version WHERE id = 1", &st, eb);

    if (rc != ERR_OK)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the data version");
    done(st);
    return rc;
}

static int
sq_map_reads(struct store *base, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;

    return exec_sql(s, "PRAGMA mmap_size = 1073741824", eb, "mapping the database for reads");
}

static int
sq_search_index(struct store *base, int max_rows, int64_t *indexed, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    struct buf sql;
    int own, rc, src;

    *indexed = 0;
    buf_init(&sql, SQL_MAX);
    buf_addstr(&sql, "INSERT INTO hardware_search (rowid, ");
    search_cols(s, "", &sql);
    buf_addstr(&sql, ") SELECT id, ");
    search_cols(s, "", &sql);
    if (buf_addstr(&sql, " FROM hardware_asset WHERE search_indexed IS NULL ORDER BY id LIMIT "
                         "?1;") != ERR_OK) {
        buf_free(&sql);
        return err_set(eb, ERR_TOOBIG, "the search index statement is too long");
    }
    rc = wbegin(s, &own, eb);
    if (rc != ERR_OK)
        goto out;
    /* Both statements pick the same rows: nothing else writes inside this transaction. */
    src = prep_once(s, buf_cstr(&sql), -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_int(st, 1, max_rows);
        src = sqlite3_step(st);
    }
    if (src != SQLITE_OK && src != SQLITE_DONE) {
        rc = db_err(s, src, eb, "adding assets to the search index");
        goto end;
    }
    sqlite3_finalize(st);
    st = NULL;
    src = prep_once(s,
                    "UPDATE hardware_asset SET search_indexed = 1 WHERE id IN (SELECT id "
                    "FROM hardware_asset WHERE search_indexed IS NULL ORDER BY id LIMIT "
                    "?1)",
                    -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_int(st, 1, max_rows);
        src = sqlite3_step(st);
    }
    if (src != SQLITE_DONE)
        rc = db_err(s, src, eb, "marking assets as indexed for search");
    else
        *indexed = sqlite3_changes(s->db);
end:
    sqlite3_finalize(st);
    rc = wend(s, own, rc, eb);
    if (rc != ERR_OK)
        *indexed = 0;
out:
    buf_free(&sql);
    return rc;
}

static int
sq_device_checkins(struct store *base, int64_t integration_id, const char *tenant_id,
                   int (*cb)(void *arg, const char *intune_id, int64_t last_check_in_at,
                             int retired),
                   void *arg, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = ERR_OK, src;

    src = prep_once(s,
                    "SELECT intune_device_id, last_check_in_at, retired_at IS NOT NULL "
                    "FROM hardware_asset WHERE integration_id = ?1 AND tenant_id = ?2",
                    -1, &st, NULL);
    if (src != SQLITE_OK)
        return db_err(s, src, eb, "reading device check-ins");
    sqlite3_bind_int64(st, 1, integration_id);
    bind_text(st, 2, tenant_id);
    while (rc == ERR_OK && (src = sqlite3_step(st)) == SQLITE_ROW)
        rc = cb(arg, (const char *)sqlite3_column_text(st, 0), col_ts(st, 1),
                sqlite3_column_int(st, 2));
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "reading device check-ins");
    sqlite3_finalize(st);
    return rc;
}

/* ---- software and history ---------------------------------------------------------------- */

static const char *
empty_null(const unsigned char *s)
{
    return s == NULL || s[0] == '\0' ? NULL : (const char *)s;
}

static int
sq_software_each(struct store *base, const struct software_query *qs,
                 int (*cb)(void *arg, const struct software_row *r), void *arg, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    struct software_row r;
    struct buf sql;
    int rc = ERR_OK, src;

    buf_init(&sql, SQL_MAX);
    buf_addstr(&sql,
               "SELECT t.id, t.client_id, COALESCE(c.name_override, c.name), c.tenant_id, t.name, "
               "t.version, t.publisher, t.platform, t.size_bytes, t.device_count "
               "FROM software_title t JOIN client c ON c.id = t.client_id "
               "WHERE t.account_id = ?1 AND t.device_count > 0");
    if (qs->client != NULL)
        buf_addstr(&sql, " AND (CAST(c.id AS TEXT) = ?2 OR c.tenant_id = ?2 "
                         "OR COALESCE(c.name_override, c.name) = ?2)");
    if (qs->search != NULL && qs->search[0] != '\0')
        buf_addstr(&sql, " AND (instr(lower(t.name), lower(?3)) > 0 OR "
                         "instr(lower(t.publisher), lower(?3)) > 0)");
    if (qs->after_id > 0)
        buf_addstr(&sql, " AND t.id > ?4");
    buf_addstr(&sql, " ORDER BY t.id");
    if (qs->limit > 0)
        buf_printf(&sql, " LIMIT %d", qs->limit);
    src = prep_once(s, buf_cstr(&sql), -1, &st, NULL);
    buf_free(&sql);
    if (src != SQLITE_OK)
        return db_err(s, src, eb, "listing software");
    sqlite3_bind_int64(st, 1, qs->account_id);
    if (qs->client != NULL)
        bind_text(st, 2, qs->client);
    if (qs->search != NULL)
        bind_text(st, 3, qs->search);
    sqlite3_bind_int64(st, 4, qs->after_id);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        r.id = sqlite3_column_int64(st, 0);
        r.client_id = sqlite3_column_int64(st, 1);
        r.client_name = (const char *)sqlite3_column_text(st, 2);
        r.client_tenant_id = (const char *)sqlite3_column_text(st, 3);
        r.name = (const char *)sqlite3_column_text(st, 4);
        r.version = empty_null(sqlite3_column_text(st, 5));
        r.publisher = empty_null(sqlite3_column_text(st, 6));
        r.platform = empty_null(sqlite3_column_text(st, 7));
        r.size_bytes = sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 8);
        r.device_count = sqlite3_column_int64(st, 9);
        rc = cb(arg, &r);
        if (rc != 0)
            break;
    }
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "listing software");
    sqlite3_finalize(st);
    return rc;
}

static int
sq_asset_changes_each(struct store *base, int64_t account_id, int64_t asset_id,
                      int (*cb)(void *arg, const struct asset_change_row *c), void *arg,
                      struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    struct asset_change_row c;
    int rc = ERR_OK, src;

    src = prep_once(s, "SELECT 1 FROM hardware_asset WHERE id = ?1 AND account_id = ?2", -1, &st,
                    NULL);
    if (src != SQLITE_OK)
        return db_err(s, src, eb, "reading the asset");
    sqlite3_bind_int64(st, 1, asset_id);
    sqlite3_bind_int64(st, 2, account_id);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    st = NULL;
    if (src == SQLITE_DONE)
        return err_set(eb, ERR_NOTFOUND, "asset %" PRId64 " does not exist", asset_id);
    if (src != SQLITE_ROW)
        return db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the asset");
    src = prep_once(s,
                    "SELECT id, at, field, old_value, new_value FROM asset_change "
                    "WHERE asset_id = ?1 ORDER BY at, id",
                    -1, &st, NULL);
    if (src != SQLITE_OK)
        return db_err(s, src, eb, "reading the asset history");
    sqlite3_bind_int64(st, 1, asset_id);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        c.id = sqlite3_column_int64(st, 0);
        c.asset_id = asset_id;
        c.at = sqlite3_column_int64(st, 1);
        c.field = (const char *)sqlite3_column_text(st, 2);
        c.old_value = (const char *)sqlite3_column_text(st, 3);
        c.new_value = (const char *)sqlite3_column_text(st, 4);
        rc = cb(arg, &c);
        if (rc != 0)
            break;
    }
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the asset history");
    sqlite3_finalize(st);
    return rc;
}

/* ---- sync runs --------------------------------------------------------------------------- */

static int
sq_run_start(struct store *base, int64_t integration_id, const char *kind, int64_t now,
             int64_t *run_id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int own, rc, src;

    rc = wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = prep(s, S_RUN_START,
              "INSERT INTO sync_run (account_id, integration_id, kind, started_at, status) "
              "SELECT account_id, id, ?2, ?3, 'running' FROM integration WHERE id = ?1 "
              "RETURNING id",
              &st, eb);
    if (rc != ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, integration_id);
    bind_text(st, 2, kind);
    sqlite3_bind_int64(st, 3, now);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *run_id = sqlite3_column_int64(st, 0);
    else if (src == SQLITE_DONE)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", integration_id);
    else
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "starting the sync run");
    done(st);
out:
    return wend(s, own, rc, eb);
}

static int
sq_run_tenant(struct store *base, int64_t run_id, const struct tenant_result *r, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int own, rc, src;

    /* Between a sync's tenants foreign keys may be off (fk_settle): the run is looked up here,
     * under the write lock, instead of switching them on and back for every tenant. */
    s->fk_keep = 1;
    rc = wbegin(s, &own, eb);
    s->fk_keep = 0;
    if (rc != ERR_OK)
        return rc;
    rc = prep(s, S_RUN_EXISTS, "SELECT 1 FROM sync_run WHERE id = ?1", &st, eb);
    if (rc != ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, run_id);
    src = sqlite3_step(st);
    if (src == SQLITE_DONE)
        rc = err_set(eb, ERR_NOTFOUND, "sync run %" PRId64 " does not exist", run_id);
    else if (src != SQLITE_ROW)
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "looking up the sync run");
    done(st);
    if (rc != ERR_OK)
        goto out;
    rc = prep(s, S_RUN_TENANT,
              "INSERT INTO sync_tenant_result (run_id, tenant_id, client_name, status, "
              "error_code, error_message, error_remedy, created, updated, unchanged, retired, "
              "revived, installs_added, installs_removed, devices, requests, throttled, "
              "duration_ms, error_request_id, error_date) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, "
              "?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18, ?19, ?20)",
              &st, eb);
    if (rc != ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, run_id);
    bind_text(st, 2, r->tenant_id);
    bind_text(st, 3, r->client_name);
    bind_text(st, 4, r->status);
    bind_text(st, 5, r->error_code);
    bind_text(st, 6, r->message);
    bind_text(st, 7, r->remedy);
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
    bind_text(st, 19, r->request_id);
    bind_text(st, 20, r->response_date);
    rc = step_done(s, st, eb, "recording the tenant result");
    if (rc == ERR_NOTFOUND)
        rc = err_set(eb, ERR_NOTFOUND, "sync run %" PRId64 " does not exist", run_id);
out:
    return wend(s, own, rc, eb);
}

static int
sq_run_finish(struct store *base, int64_t run_id, const char *status, const char *message,
              int64_t now, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int own, rc;

    rc = wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = prep(s, S_RUN_FINISH,
              "UPDATE sync_run SET status = ?1, finished_at = ?2, error_message = ?4 WHERE id = ?3",
              &st, eb);
    if (rc != ERR_OK)
        goto out;
    bind_text(st, 1, status);
    sqlite3_bind_int64(st, 2, now);
    sqlite3_bind_int64(st, 3, run_id);
    bind_text(st, 4, message);
    rc = step_done(s, st, eb, "finishing the sync run");
    if (rc == ERR_OK && sqlite3_changes(s->db) == 0)
        rc = err_set(eb, ERR_NOTFOUND, "sync run %" PRId64 " does not exist", run_id);
out:
    return wend(s, own, rc, eb);
}

static int
sq_reconcile_device(struct store *base, const struct device *d, struct errbuf *eb)
{
    struct sq *x = (struct sq *)base;
    int rc = sq_reconcile_device_step(base, d, eb);

    if (rc != ERR_OK && x->rec_active)
        x->rec_failed = 1;
    return rc;
}

static int
sq_reconcile_installs(struct store *base, const char *intune_device_id, const struct app_ref *apps,
                      size_t n, struct errbuf *eb)
{
    struct sq *x = (struct sq *)base;
    int rc = sq_reconcile_installs_step(base, intune_device_id, apps, n, eb);

    if (rc != ERR_OK && x->rec_active)
        x->rec_failed = 1;
    return rc;
}

/* ---- second factor (migration 13) ------------------------------------------------------- */

/* Steps one prepared write and finalizes it; *changes gets the rows it changed. */
static int
totp_write(struct sq *s, sqlite3_stmt *st, int64_t *changes, struct errbuf *eb, const char *what)
{
    int src = sqlite3_step(st), rc = ERR_OK;

    if (src == SQLITE_DONE || src == SQLITE_ROW) {
        if (changes != NULL)
            *changes = sqlite3_changes(s->db);
    } else {
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, what);
    }
    sqlite3_finalize(st);
    return rc;
}

/* One write with ?1 = id and, unless v is NULL, ?2 = v. */
static int
totp_write1(struct sq *s, const char *sql, int64_t id, const char *v, int64_t *changes,
            struct errbuf *eb, const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = once(s, sql, &st, eb, what);

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    if (v != NULL)
        bind_text(st, 2, v);
    return totp_write(s, st, changes, eb, what);
}

/* ERR_EXISTS (what) when the user is there, else ERR_NOTFOUND: why an update changed nothing. */
static int
totp_why_not(struct sq *s, int64_t user_id, int err_if_there, const char *msg, struct errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int rc = once(s, "SELECT 1 FROM app_user WHERE id = ?1", &st, eb, "reading the user"), src;

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, user_id);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src == SQLITE_ROW)
        return err_set(eb, err_if_there, "%s", msg);
    if (src == SQLITE_DONE)
        return err_set(eb, ERR_NOTFOUND, "there is no such user");
    return db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the user");
}

static int
sq_totp_get(struct store *base, int64_t user_id, struct user_totp *out, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc, src;

    rc = once(s,
              "SELECT u.id, u.account_id, u.totp_secret_sealed, u.totp_enrolled_at, "
              "u.totp_last_step, a.require_totp FROM app_user u JOIN account a ON "
              "a.id = u.account_id WHERE u.id = ?1",
              &st, eb, "reading the user's second factor");
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, user_id);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        out->user_id = sqlite3_column_int64(st, 0);
        out->account_id = sqlite3_column_int64(st, 1);
        out->secret_sealed = col_dup(st, 2);
        out->enrolled_at = col_ts(st, 3);
        out->last_step =
            sqlite3_column_type(st, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 4);
        out->require = sqlite3_column_int(st, 5) != 0;
    } else if (src == SQLITE_DONE) {
        rc = err_set(eb, ERR_NOTFOUND, "there is no such user");
    } else {
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the user's second factor");
    }
    sqlite3_finalize(st);
    if (rc != ERR_OK)
        return rc;
    rc = once(s,
              "SELECT id, code_hash FROM user_recovery_code WHERE user_id = ?1 AND used_at IS "
              "NULL ORDER BY id LIMIT 16",
              &st, eb, "reading the recovery codes");
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, user_id);
    while (out->ncodes < STORE_RECOVERY_MAX && (src = sqlite3_step(st)) == SQLITE_ROW) {
        out->code_id[out->ncodes] = sqlite3_column_int64(st, 0);
        out->code_hash[out->ncodes] = col_dup(st, 1);
        out->ncodes++;
    }
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the recovery codes");
    sqlite3_finalize(st);
    return rc;
}

static int
sq_totp_begin(struct store *base, int64_t user_id, const char *sealed, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    int64_t n = 0;
    int own, rc = wbegin(s, &own, eb);

    if (rc != ERR_OK)
        return rc;
    rc = totp_write1(s,
                     "UPDATE app_user SET totp_secret_sealed = ?2, totp_enrolled_at = NULL, "
                     "totp_last_step = NULL WHERE id = ?1 AND totp_enrolled_at IS NULL",
                     user_id, sealed, &n, eb, "starting the second factor's enrolment");
    if (rc == ERR_OK && n == 0)
        rc = totp_why_not(s, user_id, ERR_EXISTS,
                          "the second factor is already set up; turn it off first", eb);
    if (rc == ERR_OK)
        rc = totp_write1(s, "DELETE FROM user_recovery_code WHERE user_id = ?1", user_id, NULL,
                         NULL, eb, "removing the recovery codes");
    return wend(s, own, rc, eb);
}

static int
sq_totp_enrol(struct store *base, int64_t user_id, int64_t step, int64_t now,
              const char *const *hashes, size_t n, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t changed = 0;
    int own, rc = wbegin(s, &own, eb);

    if (rc != ERR_OK)
        return rc;
    rc = once(s,
              "UPDATE app_user SET totp_enrolled_at = ?2, totp_last_step = ?3 WHERE id = ?1 AND "
              "totp_secret_sealed IS NOT NULL AND totp_enrolled_at IS NULL",
              &st, eb, "confirming the second factor");
    if (rc == ERR_OK) {
        sqlite3_bind_int64(st, 1, user_id);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_int64(st, 3, step);
        rc = totp_write(s, st, &changed, eb, "confirming the second factor");
    }
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "no second factor is being set up; start again");
    if (rc == ERR_OK)
        rc = totp_write1(s, "DELETE FROM user_recovery_code WHERE user_id = ?1", user_id, NULL,
                         NULL, eb, "removing the recovery codes");
    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        rc = once(s,
                  "INSERT INTO user_recovery_code (user_id, code_hash, created_at) "
                  "VALUES (?1, ?2, ?3)",
                  &st, eb, "storing the recovery codes");
        if (rc != ERR_OK)
            break;
        sqlite3_bind_int64(st, 1, user_id);
        bind_text(st, 2, hashes[i]);
        sqlite3_bind_int64(st, 3, now);
        rc = totp_write(s, st, NULL, eb, "storing the recovery codes");
    }
    return wend(s, own, rc, eb);
}

static int
sq_totp_use_step(struct store *base, int64_t user_id, int64_t step, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t changed = 0;
    int own, rc = wbegin(s, &own, eb);

    if (rc != ERR_OK)
        return rc;
    rc = once(s,
              "UPDATE app_user SET totp_last_step = ?2 WHERE id = ?1 AND totp_enrolled_at IS NOT "
              "NULL AND (totp_last_step IS NULL OR totp_last_step < ?2)",
              &st, eb, "recording the code's use");
    if (rc == ERR_OK) {
        sqlite3_bind_int64(st, 1, user_id);
        sqlite3_bind_int64(st, 2, step);
        rc = totp_write(s, st, &changed, eb, "recording the code's use");
    }
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_AUTH, "this code was already used");
    return wend(s, own, rc, eb);
}

static int
sq_totp_recovery_use(struct store *base, int64_t user_id, int64_t code_id, int64_t now,
                     struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t changed = 0;
    int own, rc = wbegin(s, &own, eb);

    if (rc != ERR_OK)
        return rc;
    rc = once(s,
              "UPDATE user_recovery_code SET used_at = ?3 WHERE id = ?2 AND user_id = ?1 AND "
              "used_at IS NULL",
              &st, eb, "using a recovery code");
    if (rc == ERR_OK) {
        sqlite3_bind_int64(st, 1, user_id);
        sqlite3_bind_int64(st, 2, code_id);
        sqlite3_bind_int64(st, 3, now);
        rc = totp_write(s, st, &changed, eb, "using a recovery code");
    }
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "this recovery code was already used");
    return wend(s, own, rc, eb);
}

static int
sq_totp_clear(struct store *base, int64_t user_id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    int64_t n = 0;
    int own, rc = wbegin(s, &own, eb);

    if (rc != ERR_OK)
        return rc;
    rc = totp_write1(s,
                     "UPDATE app_user SET totp_secret_sealed = NULL, totp_enrolled_at = NULL, "
                     "totp_last_step = NULL WHERE id = ?1",
                     user_id, NULL, &n, eb, "turning the second factor off");
    if (rc == ERR_OK && n == 0)
        rc = err_set(eb, ERR_NOTFOUND, "there is no such user");
    if (rc == ERR_OK)
        rc = totp_write1(s, "DELETE FROM user_recovery_code WHERE user_id = ?1", user_id, NULL,
                         NULL, eb, "removing the recovery codes");
    return wend(s, own, rc, eb);
}

static int
sq_totp_secrets_each(struct store *base, int (*cb)(void *arg, int64_t user_id, const char *sealed),
                     void *arg, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s,
                  "SELECT id, totp_secret_sealed FROM app_user WHERE totp_secret_sealed IS NOT "
                  "NULL ORDER BY id",
                  &st, eb, "reading the second factors"),
        src = SQLITE_DONE;

    if (rc != ERR_OK)
        return rc;
    while (rc == ERR_OK && (src = sqlite3_step(st)) == SQLITE_ROW)
        rc = cb(arg, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1));
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc = db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the second factors");
    sqlite3_finalize(st);
    return rc;
}

static int
sq_totp_set_sealed(struct store *base, int64_t user_id, const char *sealed, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    int64_t n = 0;
    int own, rc = wbegin(s, &own, eb);

    if (rc != ERR_OK)
        return rc;
    rc = totp_write1(s,
                     "UPDATE app_user SET totp_secret_sealed = ?2 WHERE id = ?1 AND "
                     "totp_secret_sealed IS NOT NULL",
                     user_id, sealed, &n, eb, "re-sealing the second factor");
    if (rc == ERR_OK && n == 0)
        rc = err_set(eb, ERR_NOTFOUND, "the user has no second factor");
    return wend(s, own, rc, eb);
}

static int
sq_account_require_totp(struct store *base, int64_t account_id, int on, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t n = 0;
    int own, rc = wbegin(s, &own, eb);

    if (rc != ERR_OK)
        return rc;
    rc = once(s, "UPDATE account SET require_totp = ?2 WHERE id = ?1", &st, eb,
              "changing the account's second factor rule");
    if (rc == ERR_OK) {
        sqlite3_bind_int64(st, 1, account_id);
        sqlite3_bind_int(st, 2, on);
        rc = totp_write(s, st, &n, eb, "changing the account's second factor rule");
    }
    if (rc == ERR_OK && n == 0)
        rc = err_set(eb, ERR_NOTFOUND, "there is no such account");
    return wend(s, own, rc, eb);
}

static const struct store_ops sqlite_ops = {
    .name = "sqlite",
    .close = sq_close,
    .tx_begin = sq_tx_begin,
    .tx_commit = sq_tx_commit,
    .tx_rollback = sq_tx_rollback,
    .account_ensure = sq_account_ensure,
    .integration_insert = sq_integration_insert,
    .integration_get = sq_integration_get,
    .integration_list = sq_integration_list,
    .integration_set_secret = sq_integration_set_secret,
    .integration_set_expiry = sq_integration_set_expiry,
    .integration_delete = sq_integration_delete,
    .clients_each = sq_clients_each,
    .client_fail = sq_client_fail,
    .client_update = sq_client_update,
    .reconcile_begin = sq_reconcile_begin,
    .reconcile_device = sq_reconcile_device,
    .reconcile_installs = sq_reconcile_installs,
    .reconcile_commit = sq_reconcile_commit,
    .reconcile_rollback = sq_reconcile_rollback,
    .retire_preview = sq_retire_preview,
    .batch_begin = sq_batch_begin,
    .batch_commit = sq_batch_commit,
    .assets_each = sq_assets_each,
    .assets_count = sq_assets_count,
    .device_checkins = sq_device_checkins,
    .software_each = sq_software_each,
    .asset_changes_each = sq_asset_changes_each,
    .run_start = sq_run_start,
    .run_tenant = sq_run_tenant,
    .run_finish = sq_run_finish,
    .user_insert = sq_user_insert,
    .user_get = sq_user_get,
    .user_set_password = sq_user_set_password,
    .user_delete = sq_user_delete,
    .user_count = sq_user_count,
    .session_insert = sq_session_insert,
    .session_user = sq_session_user,
    .session_delete = sq_session_delete,
    .apikey_insert = sq_apikey_insert,
    .apikey_find = sq_apikey_find,
    .apikey_touch = sq_apikey_touch,
    .apikey_revoke = sq_apikey_revoke,
    .integration_update = sq_integration_update,
    .list_each = sq_list_each,
    .list_count = sq_list_count,
    .asset_get = sq_asset_get,
    .data_version = sq_data_version,
    .search_index = sq_search_index,
    .map_reads = sq_map_reads,
    .totp_get = sq_totp_get,
    .totp_begin = sq_totp_begin,
    .totp_enrol = sq_totp_enrol,
    .totp_use_step = sq_totp_use_step,
    .totp_recovery_use = sq_totp_recovery_use,
    .totp_clear = sq_totp_clear,
    .totp_secrets_each = sq_totp_secrets_each,
    .totp_set_sealed = sq_totp_set_sealed,
    .account_require_totp = sq_account_require_totp,
};
