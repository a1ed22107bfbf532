/* pg_int.h - the PostgreSQL backend of store.h (libpq, parameterised SQL only): what its files
 * share.
 *
 * Same schema and rules as the SQLite backend (docs/STORE.md). The schema identity lives in a
 * memsync_meta table (application_id, schema_version) instead of SQLite's header pragmas;
 * migrations run in one transaction under an advisory lock. Messages name the database by
 * host and name, never by URL (it may carry a password).
 *
 * Files: pg_conn.c (parameters and results, statement helpers, device columns, open/close,
 * transactions, the ops table), pg_schema.c (schema and migrations), pg_accounts.c (accounts,
 * integrations, clients, users, sessions, API keys, second factor), pg_reconcile.c (a tenant's
 * reconcile statements), pg_assets.c (asset reads, generic lists, software, history), pg_jobs.c
 * (sync runs and the worker's jobs). Only src/store/pg/ includes this header. Threads, errors and
 * ownership: as store.h; a struct pg belongs to its connection's thread.
 */
#ifndef MEMSYNC_PG_INT_H
#define MEMSYNC_PG_INT_H

#include <libpq-fe.h>
#include <stdint.h>

#include "store_int.h"

#define SQL_MAX    (256 * 1024)
#define PARAMS_MAX 64
#define PREP_MAX   32
/* Pipelined statements sent before their results are read (pg_pipe_send): the server's
 * answers wait in socket buffers meanwhile, and a full buffer on both sides would deadlock. */
#define PIPE_MAX 512

struct pg_rec;

struct pg {
    struct store base;
    PGconn *conn;
    char *label;                  /* "database NAME on HOST" for messages */
    struct store_device_sql dsql; /* generated from device_fields (store.c) */
    /* The tenant being reconciled is base.rec (reconcile.c). */
    /* hot-path prepared statements */
    const char *prep_sql[PREP_MAX];
    char prep_name[PREP_MAX][16];
    int nprep;
    /* pipeline mode (pg_pipe_send): what each unread statement does, for its error */
    const char *pipe_what[PIPE_MAX];
    PGresult **pipe_res[PIPE_MAX];   /* where a statement's result goes (NULL: dropped) */
    int64_t *pipe_changed[PIPE_MAX]; /* where its count of rows goes (NULL: dropped) */
    int npipe;
    struct pg_rec *prec; /* the reconcile's per-tenant state (pg_reconcile.c) */
    char *rec_devs_sql;  /* its read of a tenant's devices (lives as long as the connection) */
};

struct params {
    const char *v[PARAMS_MAX];
    char num[PARAMS_MAX][24];
    int n;
};

/* ---- pg_conn.c ---- */

void pg_p_text(struct params *p, const char *s);
void pg_p_i64(struct params *p, int64_t v);
void pg_p_ts(struct params *p, int64_t v);
int64_t pg_r_i64(const PGresult *r, int row, int col, int64_t if_null);
char *pg_r_dup(const PGresult *r, int row, int col);
const char *pg_r_str(const PGresult *r, int row, int col);
PGresult *pg_q(struct pg *g, const char *sql, const struct params *p, struct errbuf *eb,
               const char *what, int *rc);
PGresult *pg_qc(struct pg *g, const char *sql, const struct params *p, struct errbuf *eb,
                const char *what, int *rc);
/* pg_q for at most one row: the result when it has one (PQclear it); else NULL with *rc the
 * query's error, or ERR_NOTFOUND (missing as the message when it is not NULL, eb untouched
 * otherwise) when no row came back. */
PGresult *pg_q_row(struct pg *g, const char *sql, const struct params *p, const char *missing,
                   struct errbuf *eb, const char *what, int *rc);
/* A user_row from row 0's (id, account_id, name, role, password_hash, created_at). */
void pg_copy_user(const PGresult *r, struct user_row *out);
int pg_q_done(struct pg *g, const char *sql, const struct params *p, struct errbuf *eb,
              const char *what, int64_t *changed);
int pg_q_done_c(struct pg *g, const char *sql, const struct params *p, struct errbuf *eb,
                const char *what, int64_t *changed);
int pg_in_tx(struct pg *g);
/* Pipeline mode: pg_pipe_send queues a statement without waiting for its result (the SQL
 * text is cached as with pg_qc: for per-row statements); pg_pipe_sync reads every queued result,
 * leaves pipeline mode and returns the first failure (the transaction is then aborted). Every
 * synchronous statement (pg_q and friends) syncs first. A queue of PIPE_MAX syncs by itself. */
int pg_pipe_send(struct pg *g, const char *sql, const struct params *p, const char *what,
                 struct errbuf *eb);
/* The same for a statement planned at each execution (per-tenant ones), keeping the result in
 * *res (the caller PQclear()s it; it stays NULL when the
 * statement failed) and the rows it changed in *changed, both set by the next sync: the
 * places must live until then. p may be NULL (a statement without parameters). */
int pg_pipe_send_r(struct pg *g, const char *sql, const struct params *p, const char *what,
                   PGresult **res, int64_t *changed, struct errbuf *eb);
int pg_pipe_sync(struct pg *g, struct errbuf *eb);
int pg_wbegin(struct pg *g, int *own, struct errbuf *eb);
void pg_rollback(struct pg *g);
int pg_wend(struct pg *g, int own, int rc, struct errbuf *eb);
void pg_p_device(struct params *p, const struct device *d);
void pg_r_device(const PGresult *r, int row, int first, struct device *d);

/* ---- pg_schema.c ---- */

int pg_read_identity(struct pg *g, int64_t *app, int64_t *ver, int64_t *tables, struct errbuf *eb);
int pg_migrate(struct pg *g, struct errbuf *eb);

/* ---- pg_accounts.c ---- */

int pg_account_ensure(struct store *base, const char *name, int64_t *id, struct errbuf *eb);
int pg_integration_insert(struct store *base, struct integration *in, struct errbuf *eb);
int pg_integration_get(struct store *base, int64_t account_id, int64_t id, struct integration *out,
                       struct errbuf *eb);
int pg_integration_list(struct store *base, int64_t account_id, struct integration **out, size_t *n,
                        struct errbuf *eb);
int pg_integration_set_expiry(struct store *base, int64_t id, const char *which, int64_t expires,
                              const char *source, struct errbuf *eb);
int pg_integration_set_secret(struct store *base, int64_t id, const char *which, const char *sealed,
                              const char *hint, int64_t expires, struct errbuf *eb);
int pg_integration_delete(struct store *base, int64_t account_id, int64_t id, struct errbuf *eb);
int pg_clients_each(struct store *base, int64_t account_id,
                    int (*cb)(void *arg, const struct client_row *c), void *arg, struct errbuf *eb);
int pg_check_integration(struct pg *g, int64_t account_id, int64_t integration_id,
                         struct errbuf *eb);
int pg_client_fail(struct store *base, int64_t account_id, int64_t integration_id,
                   const struct client_info *ci, const char *code, const char *message,
                   const char *remedy, struct errbuf *eb);
int pg_client_update(struct store *base, int64_t account_id, const char *client, int included,
                     const char *name_override, struct errbuf *eb);
int pg_user_insert(struct store *base, int64_t account_id, const char *name, const char *role,
                   const char *password_hash, int64_t *id, struct errbuf *eb);
int pg_user_get(struct store *base, const char *name, struct user_row *out, struct errbuf *eb);
int pg_user_set_password(struct store *base, int64_t id, const char *password_hash,
                         struct errbuf *eb);
int pg_user_delete(struct store *base, int64_t id, struct errbuf *eb);
int64_t pg_user_count(struct store *base, struct errbuf *eb);
int pg_data_version(struct store *base, int64_t *out, struct errbuf *eb);
int pg_session_insert(struct store *base, const char *token_hash, int64_t user_id,
                      int64_t expires_at, struct errbuf *eb);
int pg_session_user(struct store *base, const char *token_hash, int64_t now, struct user_row *out,
                    struct errbuf *eb);
int pg_session_delete(struct store *base, const char *token_hash, struct errbuf *eb);
int pg_apikey_insert(struct store *base, int64_t account_id, const char *name, const char *scope,
                     const char *key_hash, const char *prefix, int64_t expires_at, int64_t *id,
                     struct errbuf *eb);
int pg_apikey_touch(struct store *base, int64_t id, int64_t now, struct errbuf *eb);
int pg_pref_get(struct store *base, int64_t user_id, const char *key, char **value,
                struct errbuf *eb);
int pg_pref_set(struct store *base, int64_t user_id, const char *key, const char *value,
                struct errbuf *eb);
int pg_apikey_find(struct store *base, const char *key_hash, int64_t *account_id, int64_t *id,
                   char **scope, int64_t *expires_at, int64_t *last_used_at, struct errbuf *eb);
int pg_apikey_revoke(struct store *base, int64_t account_id, int64_t id, struct errbuf *eb);
int pg_integration_update(struct store *base, int64_t account_id, int64_t id, const char *name,
                          int64_t sync_interval, int64_t partner_expires, int64_t sync_expires,
                          struct errbuf *eb);

int pg_totp_get(struct store *base, int64_t user_id, struct user_totp *out, struct errbuf *eb);
int pg_totp_begin(struct store *base, int64_t user_id, const char *sealed, struct errbuf *eb);
int pg_totp_enrol(struct store *base, int64_t user_id, int64_t step, int64_t now,
                  const char *const *hashes, size_t n, struct errbuf *eb);
int pg_totp_use_step(struct store *base, int64_t user_id, int64_t step, struct errbuf *eb);
int pg_totp_recovery_use(struct store *base, int64_t user_id, int64_t code_id, int64_t now,
                         struct errbuf *eb);
int pg_totp_clear(struct store *base, int64_t user_id, struct errbuf *eb);
int pg_totp_secrets_each(struct store *base,
                         int (*cb)(void *arg, int64_t user_id, const char *sealed), void *arg,
                         struct errbuf *eb);
int pg_totp_set_sealed(struct store *base, int64_t user_id, const char *sealed, struct errbuf *eb);
int pg_account_require_totp(struct store *base, int64_t account_id, int on, struct errbuf *eb);
/* ---- pg_sso.c ---- */
extern const struct store_sso_ops pg_sso_ops;

/* ---- pg_reconcile.c ---- */

extern const struct reconcile_ops pg_reconcile_ops;

int pg_retire_preview(struct store *base, int64_t *would_retire, int64_t *active,
                      struct errbuf *eb);

/* ---- pg_assets.c ---- */

int pg_assets_each(struct store *base, const struct asset_query *qa,
                   int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb);
int64_t pg_assets_count(struct store *base, const struct asset_query *qa, struct errbuf *eb);
int pg_asset_get(struct store *base, int64_t account_id, int64_t id,
                 int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb);
int pg_device_checkins(struct store *base, int64_t integration_id, const char *tenant_id,
                       int (*cb)(void *arg, const char *intune_id, int64_t last_check_in_at,
                                 int retired),
                       void *arg, struct errbuf *eb);
int pg_software_each(struct store *base, const struct software_query *qs,
                     int (*cb)(void *arg, const struct software_row *r), void *arg,
                     struct errbuf *eb);
int pg_sql_exec(struct store *base, const char *sql, const struct store_cell *args, size_t n,
                int64_t *changed, int64_t *id, struct errbuf *eb);
int pg_sql_query(struct store *base, const char *sql, const struct store_cell *args, size_t n,
                 int (*cb)(void *arg, const struct store_cell *cells, size_t n), void *arg,
                 struct errbuf *eb);
int pg_changes_each(struct store *base, const struct change_query *q,
                    int (*cb)(void *arg, const struct change_row *c), void *arg, int64_t *head,
                    struct errbuf *eb);
int pg_asset_changes_each(struct store *base, int64_t account_id, int64_t asset_id,
                          int (*cb)(void *arg, const struct asset_change_row *c), void *arg,
                          struct errbuf *eb);
int pg_list_each(struct store *base, const struct list_query *ql,
                 int (*cb)(void *arg, const struct store_cell *cells, size_t n), void *arg,
                 struct errbuf *eb);
int64_t pg_list_count(struct store *base, const struct list_query *ql, struct errbuf *eb);

/* ---- pg_jobs.c ---- */

int pg_run_start(struct store *base, int64_t integration_id, const char *kind, int64_t now,
                 int64_t *run_id, struct errbuf *eb);
int pg_run_tenant(struct store *base, int64_t run_id, const struct tenant_result *t,
                  struct errbuf *eb);
int pg_run_finish(struct store *base, int64_t run_id, const char *status, const char *message,
                  int64_t now, struct errbuf *eb);
int pg_job_enqueue(struct store *base, int64_t integration_id, int full,
                   const struct customer *tenant, int64_t now, int64_t *run_id, struct errbuf *eb);
int pg_job_lease(struct store *base, const char *worker, int lease_s, int64_t now,
                 struct sync_job *out, int64_t *busy, struct errbuf *eb);
int pg_job_renew(struct store *base, const struct sync_job *j, const char *worker, int lease_s,
                 struct errbuf *eb);
int pg_job_expand(struct store *base, const struct sync_job *j, const char *worker,
                  const struct customer *c, size_t n, int64_t now, struct errbuf *eb);
int pg_job_finish(struct store *base, const struct sync_job *j, const char *worker, int ok,
                  const char *message, int64_t now, struct errbuf *eb);
int pg_job_unfinished(struct store *base, int64_t run_id, size_t max,
                      int (*cb)(void *arg, const char *tenant_id, const char *name, int leased,
                                int64_t elapsed_s),
                      void *arg, size_t *n, struct errbuf *eb);
int pg_job_release(struct store *base, const struct sync_job *j, const char *worker,
                   struct errbuf *eb);

#endif
