/* sqlite_int.h - the SQLite backend of store.h: what its files share.
 *
 * One connection per struct store. Every write runs inside BEGIN IMMEDIATE (so a writer waits
 * for the lock under busy_timeout instead of failing on upgrade). Hot statements are prepared
 * once (persistent) and reset after each use so no read transaction stays open. The device
 * columns of hardware_asset are generated from device_fields, so adding a device field is one
 * line in device.c plus a migration in sqlite_schema.c.
 *
 * Files: sqlite_conn.c (statement helpers, device columns, open/close, transactions, the ops
 * table), sqlite_schema.c (schema and migrations), sqlite_accounts.c (accounts, integrations,
 * clients, users, sessions, API keys, second factor), sqlite_reconcile.c (a tenant's reconcile
 * statements, the group commit), sqlite_assets.c (lists, asset reads and the lazy-row engine,
 * software, history), sqlite_runs.c (sync runs). Only src/store/sqlite/ includes this header.
 * Threads, errors and ownership: as store.h; a struct sq belongs to its connection's thread.
 */
#ifndef MEMSYNC_SQLITE_INT_H
#define MEMSYNC_SQLITE_INT_H

#include <sqlite3.h>
#include <stdint.h>

#include "store_int.h"

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
    S_EVENT_INS,
    S_ASSET_UPDATED,
    S_CLIENT_STATUS_EV,
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
    /* The tenant being reconciled is base.rec (reconcile.c); its SQLite state follows. */
    /* PRAGMA foreign_keys is OFF (see fk_settle); fk_keep: the caller wants it to stay so. */
    int fk_off, fk_keep;
    int rec_tuned; /* the sync's cache and checkpoint settings are applied */
    int batch;     /* store_batch_begin's transaction is open: tenants are savepoints in it */
    int rec_sp;    /* the tenant's savepoint is open inside the batch */
    /* Title ids seen in this tenant transaction: one statement per title, not per install. */
    char **title_keys;
    int64_t *title_ids;
    uint32_t *title_slots; /* open addressing: index + 1, 0 = empty */
    size_t ntitles, captitles, ntitle_slots;
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

/* ---- sqlite_conn.c ---- */

int sq_db_err(struct sq *s, int src, struct errbuf *eb, const char *what);
int sq_prep_once(struct sq *s, const char *sql, int len, sqlite3_stmt **st, const char **tail);
int sq_exec_sql(struct sq *s, const char *sql, struct errbuf *eb, const char *what);
int sq_prep(struct sq *s, enum stmt_id id, const char *sql, sqlite3_stmt **out, struct errbuf *eb);
int sq_cached(struct sq *s, const char *sql, sqlite3_stmt **out, struct errbuf *eb);
void sq_release(struct sq *s, sqlite3_stmt *st);
void sq_done(sqlite3_stmt *st);
int sq_step_done(struct sq *s, sqlite3_stmt *st, struct errbuf *eb, const char *what);
void sq_bind_text(sqlite3_stmt *st, int i, const char *v);
void sq_bind_ts(sqlite3_stmt *st, int i, int64_t v);
char *sq_col_dup(sqlite3_stmt *st, int i);
int64_t sq_col_ts(sqlite3_stmt *st, int i);
/* Copies the current row of st into out (a getter's struct). */
typedef void sq_row_copy(sqlite3_stmt *st, void *out);
/* Steps a bound single-row query once: a row goes through copy into out (ERR_OK); no row is
 * ERR_NOTFOUND, with missing as the message when it is not NULL (eb untouched otherwise); a
 * failure is the database's error about what. Leaves st to the caller (finalize or release). */
int sq_step_row(struct sq *s, sqlite3_stmt *st, sq_row_copy *copy, void *out, const char *missing,
                struct errbuf *eb, const char *what);
/* A user_row from (id, account_id, name, role, password_hash, created_at). */
void sq_copy_user(sqlite3_stmt *st, void *out);
int sq_wbegin(struct sq *s, int *own, struct errbuf *eb);
int sq_wend(struct sq *s, int own, int rc, struct errbuf *eb);
void *sq_field_ptr(struct device *d, const struct device_field *f);
void sq_bind_device(sqlite3_stmt *st, int first, const struct device *d);
void sq_read_device(sqlite3_stmt *st, int first, struct device *d);

/* ---- sqlite_schema.c ---- */

void sq_search_cols(const struct sq *s, const char *pre, struct buf *b);
int sq_pragma_int(struct sq *s, const char *sql, int64_t *out);
int sq_not_sqlite(const char *path, struct errbuf *eb);
int sq_check_header(const char *path, struct errbuf *eb);
int sq_migrate(struct sq *s, struct errbuf *eb);

/* ---- sqlite_accounts.c ---- */

int sq_account_ensure(struct store *base, const char *name, int64_t *id, struct errbuf *eb);
int sq_integration_insert(struct store *base, struct integration *in, struct errbuf *eb);
int sq_integration_get(struct store *base, int64_t account_id, int64_t id, struct integration *out,
                       struct errbuf *eb);
int sq_integration_list(struct store *base, int64_t account_id, struct integration **out, size_t *n,
                        struct errbuf *eb);
int sq_integration_set_expiry(struct store *base, int64_t id, const char *which, int64_t expires,
                              const char *source, struct errbuf *eb);
int sq_integration_set_secret(struct store *base, int64_t id, const char *which, const char *sealed,
                              const char *hint, int64_t expires, struct errbuf *eb);
int sq_integration_delete(struct store *base, int64_t account_id, int64_t id, struct errbuf *eb);
int sq_clients_each(struct store *base, int64_t account_id,
                    int (*cb)(void *arg, const struct client_row *c), void *arg, struct errbuf *eb);
int sq_check_integration(struct sq *s, int64_t account_id, int64_t integration_id,
                         struct errbuf *eb);
int sq_client_fail(struct store *base, int64_t account_id, int64_t integration_id,
                   const struct client_info *ci, const char *code, const char *message,
                   const char *remedy, struct errbuf *eb);
int sq_client_update(struct store *base, int64_t account_id, const char *client, int included,
                     const char *name_override, struct errbuf *eb);
int sq_user_insert(struct store *base, int64_t account_id, const char *name, const char *role,
                   const char *password_hash, int64_t *id, struct errbuf *eb);
int sq_user_get(struct store *base, const char *name, struct user_row *out, struct errbuf *eb);
int sq_user_set_password(struct store *base, int64_t id, const char *password_hash,
                         struct errbuf *eb);
int sq_user_delete(struct store *base, int64_t id, struct errbuf *eb);
int64_t sq_user_count(struct store *base, struct errbuf *eb);
int sq_session_insert(struct store *base, const char *token_hash, int64_t user_id,
                      int64_t expires_at, struct errbuf *eb);
int sq_session_user(struct store *base, const char *token_hash, int64_t now, struct user_row *out,
                    struct errbuf *eb);
int sq_session_delete(struct store *base, const char *token_hash, struct errbuf *eb);
int sq_apikey_insert(struct store *base, int64_t account_id, const char *name, const char *scope,
                     const char *key_hash, const char *prefix, int64_t expires_at, int64_t *id,
                     struct errbuf *eb);
int sq_apikey_touch(struct store *base, int64_t id, int64_t now, struct errbuf *eb);
int sq_pref_get(struct store *base, int64_t user_id, const char *key, char **value,
                struct errbuf *eb);
int sq_pref_set(struct store *base, int64_t user_id, const char *key, const char *value,
                struct errbuf *eb);
int sq_apikey_find(struct store *base, const char *key_hash, int64_t *account_id, int64_t *id,
                   char **scope, int64_t *expires_at, int64_t *last_used_at, struct errbuf *eb);
int sq_apikey_revoke(struct store *base, int64_t account_id, int64_t id, struct errbuf *eb);
int sq_integration_update(struct store *base, int64_t account_id, int64_t id, const char *name,
                          int64_t sync_interval, int64_t partner_expires, int64_t sync_expires,
                          struct errbuf *eb);

int sq_totp_get(struct store *base, int64_t user_id, struct user_totp *out, struct errbuf *eb);
int sq_totp_begin(struct store *base, int64_t user_id, const char *sealed, struct errbuf *eb);
int sq_totp_enrol(struct store *base, int64_t user_id, int64_t step, int64_t now,
                  const char *const *hashes, size_t n, struct errbuf *eb);
int sq_totp_use_step(struct store *base, int64_t user_id, int64_t step, struct errbuf *eb);
int sq_totp_recovery_use(struct store *base, int64_t user_id, int64_t code_id, int64_t now,
                         struct errbuf *eb);
int sq_totp_clear(struct store *base, int64_t user_id, struct errbuf *eb);
int sq_totp_secrets_each(struct store *base,
                         int (*cb)(void *arg, int64_t user_id, const char *sealed), void *arg,
                         struct errbuf *eb);
int sq_totp_set_sealed(struct store *base, int64_t user_id, const char *sealed, struct errbuf *eb);
int sq_account_require_totp(struct store *base, int64_t account_id, int on, struct errbuf *eb);
/* ---- sqlite_sso.c ---- */
extern const struct store_sso_ops sq_sso_ops;

/* ---- sqlite_reconcile.c ---- */

extern const struct reconcile_ops sq_reconcile_ops;

int sq_retire_preview(struct store *base, int64_t *would_retire, int64_t *active,
                      struct errbuf *eb);
int sq_batch_begin(struct store *base, struct errbuf *eb);
int sq_batch_commit(struct store *base, struct errbuf *eb);

/* ---- sqlite_assets.c ---- */

int sq_list_each(struct store *base, const struct list_query *q,
                 int (*cb)(void *arg, const struct store_cell *cells, size_t n), void *arg,
                 struct errbuf *eb);
int64_t sq_list_count(struct store *base, const struct list_query *q, struct errbuf *eb);
int sq_assets_each(struct store *base, const struct asset_query *q,
                   int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb);
int64_t sq_assets_count(struct store *base, const struct asset_query *q, struct errbuf *eb);
int sq_asset_get(struct store *base, int64_t account_id, int64_t id,
                 int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb);
int sq_data_version(struct store *base, int64_t *out, struct errbuf *eb);
int sq_map_reads(struct store *base, struct errbuf *eb);
int sq_search_index(struct store *base, int max_rows, int64_t *indexed, struct errbuf *eb);
int sq_device_checkins(struct store *base, int64_t integration_id, const char *tenant_id,
                       int (*cb)(void *arg, const char *intune_id, int64_t last_check_in_at,
                                 int retired),
                       void *arg, struct errbuf *eb);
int sq_software_each(struct store *base, const struct software_query *qs,
                     int (*cb)(void *arg, const struct software_row *r), void *arg,
                     struct errbuf *eb);
int sq_sql_exec(struct store *base, const char *sql, const struct store_cell *args, size_t n,
                int64_t *changed, int64_t *id, struct errbuf *eb);
int sq_sql_query(struct store *base, const char *sql, const struct store_cell *args, size_t n,
                 int (*cb)(void *arg, const struct store_cell *cells, size_t n), void *arg,
                 struct errbuf *eb);
int sq_changes_each(struct store *base, const struct change_query *q,
                    int (*cb)(void *arg, const struct change_row *c), void *arg, int64_t *head,
                    struct errbuf *eb);
int sq_asset_changes_each(struct store *base, int64_t account_id, int64_t asset_id,
                          int (*cb)(void *arg, const struct asset_change_row *c), void *arg,
                          struct errbuf *eb);

/* ---- sqlite_runs.c ---- */

int sq_run_start(struct store *base, int64_t integration_id, const char *kind, int64_t now,
                 int64_t *run_id, struct errbuf *eb);
int sq_run_tenant(struct store *base, int64_t run_id, const struct tenant_result *r,
                  struct errbuf *eb);
int sq_run_finish(struct store *base, int64_t run_id, const char *status, const char *message,
                  int64_t now, struct errbuf *eb);

#endif
