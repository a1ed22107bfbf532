/* sqlite_conn.c - the SQLite backend's connection: statement helpers, device columns, open,
 * close, transactions and the ops table (sqlite_int.h). */
#include "sqlite_int.h"

#include "reconcile.h"

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

/* ---- errors and statement helpers ------------------------------------------------------- */

int
sq_db_err(struct sq *s, int src, struct errbuf *eb, const char *what)
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
    case SQLITE_LOCKED: /* past the busy timeout: worth a retry (serve answers 503) */
        return err_set(eb, ERR_TIMEOUT,
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
int
sq_prep_once(struct sq *s, const char *sql, int len, sqlite3_stmt **st, const char **tail)
{
    fk_settle(s);
    return sqlite3_prepare_v2(s->db, sql, len, st, tail);
}

int
sq_exec_sql(struct sq *s, const char *sql, struct errbuf *eb, const char *what)
{
    int rc;

    fk_settle(s);
    rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);

    if (rc != SQLITE_OK)
        return sq_db_err(s, sqlite3_extended_errcode(s->db), eb, what);
    return ERR_OK;
}

int
sq_prep(struct sq *s, enum stmt_id id, const char *sql, sqlite3_stmt **out, struct errbuf *eb)
{
    fk_settle(s);
    if (s->stmt[id] == NULL) {
        int rc = sqlite3_prepare_v3(s->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &s->stmt[id], NULL);
        if (rc != SQLITE_OK) {
            s->stmt[id] = NULL;
            return sq_db_err(s, rc, eb, "preparing a statement");
        }
    }
    *out = s->stmt[id];
    return ERR_OK;
}

/* A prepared statement for sql from the connection's cache (or a new one, cached when a slot
 * is free or idle). Give it back with release(). A statement already handed out is never
 * handed out twice: nested use of the same text gets its own. */
int
sq_cached(struct sq *s, const char *sql, sqlite3_stmt **out, struct errbuf *eb)
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
        return sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "preparing a statement");
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
void
sq_release(struct sq *s, sqlite3_stmt *st)
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

void
sq_done(sqlite3_stmt *st)
{
    if (st == NULL)
        return;
    sqlite3_reset(st);
    sqlite3_clear_bindings(st);
}

/* Steps a statement that returns no row (or whose rows are ignored) and resets it. */
int
sq_step_done(struct sq *s, sqlite3_stmt *st, struct errbuf *eb, const char *what)
{
    int rc;

    while ((rc = sqlite3_step(st)) == SQLITE_ROW)
        ;
    if (rc != SQLITE_DONE)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, what);
    else
        rc = ERR_OK;
    sq_done(st);
    return rc;
}

void
sq_bind_text(sqlite3_stmt *st, int i, const char *v)
{
    if (v == NULL)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_text(st, i, v, -1, SQLITE_TRANSIENT);
}

void
sq_bind_ts(sqlite3_stmt *st, int i, int64_t v)
{
    if (v == TS_NULL)
        sqlite3_bind_null(st, i);
    else
        sqlite3_bind_int64(st, i, v);
}

char *
sq_col_dup(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return NULL;
    return xstrdup((const char *)sqlite3_column_text(st, i));
}

int64_t
sq_col_ts(sqlite3_stmt *st, int i)
{
    if (sqlite3_column_type(st, i) == SQLITE_NULL)
        return TS_NULL;
    return sqlite3_column_int64(st, i);
}

int
sq_step_row(struct sq *s, sqlite3_stmt *st, sq_row_copy *copy, void *out, const char *missing,
            struct errbuf *eb, const char *what)
{
    int src = sqlite3_step(st);

    if (src == SQLITE_ROW) {
        copy(st, out);
        return ERR_OK;
    }
    if (src == SQLITE_DONE)
        return missing != NULL ? err_set(eb, ERR_NOTFOUND, "%s", missing) : ERR_NOTFOUND;
    return sq_db_err(s, sqlite3_extended_errcode(s->db), eb, what);
}

void
sq_copy_user(sqlite3_stmt *st, void *out)
{
    struct user_row *u = out;

    u->id = sqlite3_column_int64(st, 0);
    u->account_id = sqlite3_column_int64(st, 1);
    u->name = sq_col_dup(st, 2);
    u->role = sq_col_dup(st, 3);
    u->password_hash = sq_col_dup(st, 4);
    u->created_at = sqlite3_column_int64(st, 5);
}

/* Opens a write transaction unless one is already open (explicit or reconcile). */
int
sq_wbegin(struct sq *s, int *own, struct errbuf *eb)
{
    *own = 0;
    if (!sqlite3_get_autocommit(s->db))
        return ERR_OK;
    if (sq_exec_sql(s, "BEGIN IMMEDIATE", eb, "starting a write") != ERR_OK)
        return eb != NULL ? eb->code : ERR_DB;
    *own = 1;
    return ERR_OK;
}

int
sq_wend(struct sq *s, int own, int rc, struct errbuf *eb)
{
    if (!own)
        return rc;
    if (rc == ERR_OK) {
        rc = sq_exec_sql(s, "COMMIT", eb, "committing");
        if (rc == ERR_OK)
            return rc;
    }
    sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}

/* ---- device columns ---------------------------------------------------------------------- */

void *
sq_field_ptr(struct device *d, const struct device_field *f)
{
    return (char *)d + f->offset;
}

void
sq_bind_device(sqlite3_stmt *st, int first, const struct device *d)
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
            sq_bind_ts(st, idx, *(const int64_t *)p);
            break;
        case DF_TYPE:
            sqlite3_bind_text(st, idx, device_type_name(*(const enum device_type *)p), -1,
                              SQLITE_STATIC);
            break;
        }
    }
}

void
sq_read_device(sqlite3_stmt *st, int first, struct device *d)
{
    device_init(d);
    for (size_t i = 0; i < device_field_count; i++) {
        const struct device_field *f = &device_fields[i];
        void *p = sq_field_ptr(d, f);
        int c = first + (int)i;
        int isnull = sqlite3_column_type(st, c) == SQLITE_NULL;

        switch (f->kind) {
        case DF_STR:
            *(char **)p = sq_col_dup(st, c);
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
    reconcile_reset(base);
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
    rc = open_refs(path) > 0 ? ERR_OK : sq_check_header(path, eb);
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
    if (sq_pragma_int(s, "PRAGMA application_id", &app) != SQLITE_OK ||
        sq_pragma_int(s, "PRAGMA user_version", &ver) != SQLITE_OK ||
        sq_pragma_int(s, "SELECT count(*) FROM sqlite_schema", &tables) != SQLITE_OK) {
        int ec = sqlite3_extended_errcode(s->db);
        if ((ec & 0xff) == SQLITE_NOTADB || (ec & 0xff) == SQLITE_CORRUPT)
            rc = sq_not_sqlite(path, eb);
        else
            rc = sq_db_err(s, ec, eb, "reading the database header");
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
    rc = sq_exec_sql(s, "PRAGMA journal_mode = WAL", eb, "enabling WAL");
    if (rc == ERR_OK)
        rc = sq_exec_sql(s, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", eb,
                         "configuring the connection");
    if (rc != ERR_OK) {
        err_prefix(eb, rc, "database %s", path);
        goto out;
    }
    rc = sq_migrate(s, eb);
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
    return sq_exec_sql(s, "BEGIN IMMEDIATE", eb, "starting a transaction");
}

static int
sq_tx_commit(struct store *base, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    int rc;

    if (sqlite3_get_autocommit(s->db))
        return err_set(eb, ERR_INVAL, "no transaction is open");
    rc = sq_exec_sql(s, "COMMIT", eb, "committing");
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
    .rec = &sq_reconcile_ops,
    .reconcile_begin = reconcile_begin,
    .reconcile_device = reconcile_device,
    .reconcile_installs = reconcile_installs,
    .reconcile_commit = reconcile_commit,
    .reconcile_rollback = reconcile_rollback,
    .retire_preview = sq_retire_preview,
    .batch_begin = sq_batch_begin,
    .batch_commit = sq_batch_commit,
    .assets_each = sq_assets_each,
    .assets_count = sq_assets_count,
    .device_checkins = sq_device_checkins,
    .software_each = sq_software_each,
    .asset_changes_each = sq_asset_changes_each,
    .changes_each = sq_changes_each,
    .sql_exec = sq_sql_exec,
    .sql_query = sq_sql_query,
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
    .pref_get = sq_pref_get,
    .pref_set = sq_pref_set,
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
    .sso = &sq_sso_ops,
};
