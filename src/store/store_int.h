/* store_int.h - the store's inside: what store.c, the SQL builder, the reconcile core and the
 * backends (src/store/sqlite/, src/store/pg/) share, and nothing else may use. curl keeps
 * vtls.h / vtls_int.h apart the same way.
 *
 * Only files in src/store/ and its subfolders include this (scripts/layers.py refuses any
 * other; unit tests may). It holds the backend vtable (struct store_ops) and the handle every
 * backend's starts with (struct store, with the tenant reconcile's state that reconcile.c
 * keeps), the device diff and text helpers, the generic-list SQL builder and the backends' open
 * functions.
 * Threads, errors and ownership: as store.h; nothing here keeps state of its own.
 */
#ifndef MEMSYNC_STORE_INT_H
#define MEMSYNC_STORE_INT_H

#include "buf.h"
#include "store.h"

/* ---- shared helpers (any backend) ------------------------------------------------------- */

/* Calls cb once per field of device_fields whose value differs between old and new, with both
 * values as text (NULL for "no value"). Returns the number of differing fields, or the first
 * non-zero value cb returns (negative ERR_*). */
int store_device_diff(const struct device *old, const struct device *new_,
                      int (*cb)(void *arg, const char *field, const char *oldv, const char *newv),
                      void *arg);
/* 1 when the field named name (device_fields) moves on its own between syncs (the last
 * check-in, the free storage): the asset keeps its latest value, the change history does not
 * record it (a technician reads the history for changes a person made or cares about). */
int store_device_field_volatile(const char *name);
/* Text of one field as the change history records it; returns a malloc'd string or NULL. */
char *store_device_field_text(const struct device *d, const struct device_field *f);
/* An FTS5 trigram query for rows containing text: every 3-character window of text as a quoted
 * term, joined by AND (a superset of the case-insensitive substring matches; callers keep the
 * exact test). malloc'd; NULL when text has fewer than 3 characters or is not valid UTF-8. */
char *store_trigram_query(const char *text);
/* Upper-case trimmed serial used for duplicate detection; malloc'd, NULL when no serial. */
char *store_serial_key(const char *serial);

/* The change feed's query (store_changes_each) with placeholders p1.. ('?' or '$'): 1 account,
 * 2 after_seq, 3 limit, 4 client (when q->client_id), then one per kind. Columns, in order:
 * seq, at, kind, client id, client name, tenant id, asset id, intune id, asset name, serial,
 * title id, title name, version, publisher, field, old, new, account id. */
void store_changes_sql(struct buf *sql, char p, const struct change_query *q);

/* ---- backend interface (store.c and the backends) -------------------------------------- */

struct reconcile_ops;

/* Single sign-on (migration 14): one table per backend, as store.h's store_sso_* and
 * store_user_sso_* / store_user_set_role / store_account_local_signin*. */
struct store_sso_ops {
    int (*get)(struct store *st, int64_t account_id, struct account_sso *out, struct errbuf *eb);
    int (*set)(struct store *st, const struct account_sso *in, struct errbuf *eb);
    int (*del)(struct store *st, int64_t account_id, struct errbuf *eb);
    int (*each)(struct store *st, int (*cb)(void *arg, int64_t id, const char *name), void *arg,
                struct errbuf *eb);
    int (*worked)(struct store *st, int64_t account_id, int64_t now, struct errbuf *eb);
    int (*secrets_each)(struct store *st, int (*cb)(void *arg, int64_t id, const char *sealed),
                        void *arg, struct errbuf *eb);
    int (*set_sealed)(struct store *st, int64_t account_id, const char *sealed, struct errbuf *eb);
    int (*local_signin)(struct store *st, int64_t account_id, int on, struct errbuf *eb);
    int (*local_signin_get)(struct store *st, int64_t account_id, int *on, struct errbuf *eb);
    int (*user_find)(struct store *st, int64_t account_id, const char *tid, const char *oid,
                     struct user_row *out, struct errbuf *eb);
    int (*user_insert)(struct store *st, int64_t account_id, const char *tid, const char *oid,
                       const char *name, const char *role, int64_t *id, struct errbuf *eb);
    int (*user_set_role)(struct store *st, int64_t id, const char *role, struct errbuf *eb);
};

struct store_ops {
    const char *name;
    /* The statements reconcile.c runs; the backend's reconcile_* entries are reconcile.c's. */
    const struct reconcile_ops *rec;
    void (*close)(struct store *st);
    int (*tx_begin)(struct store *st, struct errbuf *eb);
    int (*tx_commit)(struct store *st, struct errbuf *eb);
    void (*tx_rollback)(struct store *st);
    int (*account_ensure)(struct store *st, const char *name, int64_t *id, struct errbuf *eb);
    int (*integration_insert)(struct store *st, struct integration *in, struct errbuf *eb);
    int (*integration_get)(struct store *st, int64_t account_id, int64_t id,
                           struct integration *out, struct errbuf *eb);
    int (*integration_list)(struct store *st, int64_t account_id, struct integration **out,
                            size_t *n, struct errbuf *eb);
    int (*integration_set_expiry)(struct store *st, int64_t id, const char *which, int64_t expires,
                                  const char *source, struct errbuf *eb);
    int (*integration_set_secret)(struct store *st, int64_t id, const char *which,
                                  const char *sealed, const char *hint, int64_t expires,
                                  struct errbuf *eb);
    int (*integration_delete)(struct store *st, int64_t account_id, int64_t id, struct errbuf *eb);
    int (*clients_each)(struct store *st, int64_t account_id,
                        int (*cb)(void *arg, const struct client_row *c), void *arg,
                        struct errbuf *eb);
    int (*client_fail)(struct store *st, int64_t account_id, int64_t integration_id,
                       const struct client_info *ci, const char *code, const char *message,
                       const char *remedy, struct errbuf *eb);
    int (*client_update)(struct store *st, int64_t account_id, const char *client, int included,
                         const char *name_override, struct errbuf *eb);
    int (*reconcile_begin)(struct store *st, int64_t account_id, int64_t integration_id,
                           const struct client_info *ci, int64_t now, struct errbuf *eb);
    int (*reconcile_device)(struct store *st, const struct device *d, struct errbuf *eb);
    int (*reconcile_installs)(struct store *st, const char *intune_device_id,
                              const struct app_ref *apps, size_t n, struct errbuf *eb);
    int (*reconcile_commit)(struct store *st, int listing_complete, int installs_complete,
                            struct reconcile_counts *counts, struct errbuf *eb);
    void (*reconcile_rollback)(struct store *st);
    int (*batch_begin)(struct store *st, struct errbuf *eb);  /* NULL: not supported */
    int (*batch_commit)(struct store *st, struct errbuf *eb); /* NULL: not supported */
    int (*assets_each)(struct store *st, const struct asset_query *q,
                       int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb);
    int64_t (*assets_count)(struct store *st, const struct asset_query *q, struct errbuf *eb);
    int (*device_checkins)(struct store *st, int64_t integration_id, const char *tenant_id,
                           int (*cb)(void *arg, const char *intune_id, int64_t last_check_in_at,
                                     int retired),
                           void *arg, struct errbuf *eb);
    int (*software_each)(struct store *st, const struct software_query *q,
                         int (*cb)(void *arg, const struct software_row *s), void *arg,
                         struct errbuf *eb);
    int (*asset_changes_each)(struct store *st, int64_t account_id, int64_t asset_id,
                              int (*cb)(void *arg, const struct asset_change_row *c), void *arg,
                              struct errbuf *eb);
    int (*changes_each)(struct store *st, const struct change_query *q,
                        int (*cb)(void *arg, const struct change_row *c), void *arg, int64_t *head,
                        struct errbuf *eb);
    /* Generic statements for the small tables of store_webhooks.c: sql with ?1..?n, args the
     * values (SC_NULL, SC_INT, SC_TEXT). exec: one write in its own transaction unless one is
     * open; *changed (optional) rows changed, *id (optional) the new row's id when sql ends in
     * "RETURNING id". query: cb per row with its cells (borrowed for the call). */
    int (*sql_exec)(struct store *st, const char *sql, const struct store_cell *args, size_t n,
                    int64_t *changed, int64_t *id, struct errbuf *eb);
    int (*sql_query)(struct store *st, const char *sql, const struct store_cell *args, size_t n,
                     int (*cb)(void *arg, const struct store_cell *cells, size_t n), void *arg,
                     struct errbuf *eb);
    int (*run_start)(struct store *st, int64_t integration_id, const char *kind, int64_t now,
                     int64_t *run_id, struct errbuf *eb);
    int (*run_tenant)(struct store *st, int64_t run_id, const struct tenant_result *r,
                      struct errbuf *eb);
    int (*run_finish)(struct store *st, int64_t run_id, const char *status, const char *message,
                      int64_t now, struct errbuf *eb);
    int (*user_insert)(struct store *st, int64_t account_id, const char *name, const char *role,
                       const char *password_hash, int64_t *id, struct errbuf *eb);
    int (*user_get)(struct store *st, const char *name, struct user_row *out, struct errbuf *eb);
    int (*user_set_password)(struct store *st, int64_t id, const char *password_hash,
                             struct errbuf *eb);
    int (*user_delete)(struct store *st, int64_t id, struct errbuf *eb);
    int64_t (*user_count)(struct store *st, struct errbuf *eb);
    int (*session_insert)(struct store *st, const char *token_hash, int64_t user_id,
                          int64_t expires_at, struct errbuf *eb);
    int (*session_user)(struct store *st, const char *token_hash, int64_t now, struct user_row *out,
                        struct errbuf *eb);
    int (*session_delete)(struct store *st, const char *token_hash, struct errbuf *eb);
    int (*apikey_insert)(struct store *st, int64_t account_id, const char *name, const char *scope,
                         const char *key_hash, const char *prefix, int64_t expires_at, int64_t *id,
                         struct errbuf *eb);
    int (*apikey_find)(struct store *st, const char *key_hash, int64_t *account_id, int64_t *id,
                       char **scope, int64_t *expires_at, int64_t *last_used_at, struct errbuf *eb);
    int (*apikey_touch)(struct store *st, int64_t id, int64_t now, struct errbuf *eb);
    int (*pref_get)(struct store *st, int64_t user_id, const char *key, char **value,
                    struct errbuf *eb);
    int (*pref_set)(struct store *st, int64_t user_id, const char *key, const char *value,
                    struct errbuf *eb);
    int (*apikey_revoke)(struct store *st, int64_t account_id, int64_t id, struct errbuf *eb);
    int (*integration_update)(struct store *st, int64_t account_id, int64_t id, const char *name,
                              int64_t sync_interval, int64_t partner_expires, int64_t sync_expires,
                              struct errbuf *eb);
    /* second factor (migration 13) */
    int (*totp_get)(struct store *st, int64_t user_id, struct user_totp *out, struct errbuf *eb);
    int (*totp_begin)(struct store *st, int64_t user_id, const char *sealed, struct errbuf *eb);
    int (*totp_enrol)(struct store *st, int64_t user_id, int64_t step, int64_t now,
                      const char *const *hashes, size_t n, struct errbuf *eb);
    int (*totp_use_step)(struct store *st, int64_t user_id, int64_t step, struct errbuf *eb);
    int (*totp_recovery_use)(struct store *st, int64_t user_id, int64_t code_id, int64_t now,
                             struct errbuf *eb);
    int (*totp_clear)(struct store *st, int64_t user_id, struct errbuf *eb);
    int (*totp_secrets_each)(struct store *st,
                             int (*cb)(void *arg, int64_t user_id, const char *sealed), void *arg,
                             struct errbuf *eb);
    int (*totp_set_sealed)(struct store *st, int64_t user_id, const char *sealed,
                           struct errbuf *eb);
    int (*account_require_totp)(struct store *st, int64_t account_id, int on, struct errbuf *eb);
    const struct store_sso_ops *sso; /* single sign-on (migration 14) */
    int (*list_each)(struct store *st, const struct list_query *q,
                     int (*cb)(void *arg, const struct store_cell *cells, size_t n), void *arg,
                     struct errbuf *eb);
    int64_t (*list_count)(struct store *st, const struct list_query *q, struct errbuf *eb);
    int (*asset_get)(struct store *st, int64_t account_id, int64_t id,
                     int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb);
    /* sync jobs: NULL in backends without them */
    int (*job_enqueue)(struct store *st, int64_t integration_id, int full,
                       const struct customer *tenant, int64_t now, int64_t *run_id,
                       struct errbuf *eb);
    int (*job_lease)(struct store *st, const char *worker, int lease_s, int64_t now,
                     struct sync_job *out, int64_t *busy, struct errbuf *eb);
    int (*job_renew)(struct store *st, const struct sync_job *j, const char *worker, int lease_s,
                     struct errbuf *eb);
    int (*job_expand)(struct store *st, const struct sync_job *j, const char *worker,
                      const struct customer *c, size_t n, int64_t now, struct errbuf *eb);
    int (*job_finish)(struct store *st, const struct sync_job *j, const char *worker, int ok,
                      const char *message, int64_t now, struct errbuf *eb);
    int (*job_release)(struct store *st, const struct sync_job *j, const char *worker,
                       struct errbuf *eb);
    int (*job_unfinished)(struct store *st, int64_t run_id, size_t max,
                          int (*cb)(void *arg, const char *tenant_id, const char *name, int leased,
                                    int64_t elapsed_s),
                          void *arg, size_t *n, struct errbuf *eb);
    int (*data_version)(struct store *st, int64_t *out, struct errbuf *eb);
    int (*search_index)(struct store *st, int max_rows, int64_t *indexed, struct errbuf *eb);
    int (*map_reads)(struct store *st, struct errbuf *eb);
    int (*retire_preview)(struct store *st, int64_t *would_retire, int64_t *active,
                          struct errbuf *eb);
};

/* The tenant being reconciled (reconcile.c); reset by begin, commit and rollback. */
struct reconcile {
    int active;
    int failed; /* a device or install step failed: commit must not happen */
    int fresh;  /* the tenant had no assets at begin: devices are inserted unlooked-up */
    int64_t account, integration, client, gen, now;
    char *tenant;
    struct reconcile_counts counts;
    /* The device reconcile_device handled last, so its installs need no lookup (0: none). */
    int64_t asset_id;
    int asset_new;    /* asset_id was inserted just now: it has no installs yet */
    int asset_active; /* asset_id is not retired: its installs count for their titles */
    char *asset_intune;
    /* How this reconcile moves each title's device_count (open addressing on the title id,
     * 0 = empty), for backends that count incrementally (reconcile_ops.title_deltas). */
    struct reconcile_delta {
        int64_t id;
        int64_t d;
    } * delta;
    size_t ndelta, ndelta_slots;
};

/* Every backend's handle starts with this. */
struct store {
    const struct store_ops *ops;
    char *cache_id; /* the URL it was opened with: the count cache's database key */
    /* The tenant reconcile's policy and client warning (store_reconcile_policy / _warning),
     * reset by store_reconcile_begin, read by its commit (reconcile.c and the backend's
     * reconcile_ops). */
    struct retire_policy rec_policy;
    char *rec_warn_code, *rec_warn_message, *rec_warn_remedy;
    struct reconcile rec;
};

/* ---- generic lists: SQL shared by the backends (store.c) ----------------------------- */

/* The hardware list's leading columns, both backends (the FROM, the joins and the asset columns
 * follow): ids, client, source, sync times (STORE_HW_LIST_COLS, nine) and whether another
 * tenant holds the same serial (STORE_HW_LIST_DUP; SQLite may select h.serial_key there instead
 * and answer from a serialset).
 * o.id <> h.id changes no answer (the row itself has the same tenant) but is read from the
 * serial index, so SQLite skips the table lookup of the row's own entry: for a serial no other
 * asset has, the check is one index seek. */
#define STORE_HW_LIST_COLS                                                                         \
    "SELECT h.id, h.client_id, COALESCE(c.name_override, c.name), c.tenant_id, "                   \
    "h.integration_id, h.intune_device_id, h.first_synced_at, h.last_synced_at, "                  \
    "h.retired_at, "
#define STORE_HW_LIST_DUP                                                                          \
    "CASE WHEN h.serial_key IS NOT NULL AND EXISTS (SELECT 1 FROM "                                \
    "hardware_asset o WHERE o.serial_key = h.serial_key AND o.account_id = "                       \
    "h.account_id AND o.id <> h.id AND o.tenant_id <> h.tenant_id AND o.retired_at IS NULL) "      \
    "THEN 1 ELSE 0 END, "
#define STORE_HW_LIST_HEAD STORE_HW_LIST_COLS STORE_HW_LIST_DUP
/* Appends ", expr" for each sort field of entity (the row's sort values, for its cursor); an
 * unknown field is ERR_INVAL. For the backends' list builders. */
int store_list_sort_values(struct buf *sql, const char *entity, const struct store_sort *sorts,
                           size_t nsorts, struct errbuf *eb);

/* What differs between the backends' SQL. */
struct store_dialect {
    void (*param)(struct buf *sql, int n);                      /* parameter n: ?n or $n */
    void (*contains)(struct buf *sql, const char *expr, int n); /* case-insensitive substring */
    void (*ieq)(struct buf *sql, const char *expr, int n);      /* case-insensitive equality */
    const char *no_limit; /* a LIMIT clause meaning "every row" (before OFFSET) */
    /* ORDER BY needs the retired_at of a "retired_at IS NULL" list before the sort field for
     * an index on (..., retired_at, field, id) to serve it (PostgreSQL: IS NULL is no
     * equality to its planner). */
    int order_retired;
};

/* Parameter values collected while building; numbered from first. */
struct store_bind {
    int kind; /* SC_INT or SC_TEXT */
    int64_t i;
    char *s;
};
struct store_binds {
    struct store_bind v[STORE_LIST_MAX_FILTERS * 32];
    int n;
    int first;
};
void store_binds_free(struct store_binds *b);

/* Appends " AND <test>" per filter; ERR_INVAL names an unknown field, op or bad value. */
int store_sql_filters(const struct store_dialect *d, const struct store_list_entity *e,
                      const struct store_filter *fs, size_t n, struct buf *sql,
                      struct store_binds *b, struct errbuf *eb);
/* Appends " ORDER BY ..." for the sorts (the caller appends the tie-break). */
int store_sql_sorts(const struct store_list_entity *e, const struct store_sort *ss, size_t n,
                    struct buf *sql, struct errbuf *eb);
/* Adds parameter value v (SC_TEXT, else its integer); returns its number or ERR_INVAL. */
int store_binds_add(struct store_binds *b, const struct store_cell *v, struct errbuf *eb);

/* Hardware lists sorted by one field are read in two parts: the rows with a value in that
 * field, then (NULLs last) those without, so that each part is an index walk. */
enum { STORE_PART_ALL, STORE_PART_VALUES, STORE_PART_NULLS };
/* Runs one part of a hardware list: its rows from offset (at most limit, 0 = all) to the
 * query's callback, *rows their number; with count, only *rows = how many rows the part has
 * (after the seek). Returns ERR_OK, an error or what the callback returned. */
typedef int (*store_part_fn)(void *ctx, int part, int count, int64_t offset, int limit,
                             int64_t *rows);
/* Reads q (offset, limit, seek) through run: one STORE_PART_ALL unless there is one sort. */
int store_assets_parts(const struct asset_query *q, store_part_fn run, void *ctx);
/* Appends a hardware list part's conditions after the WHERE of the caller's filters: the part,
 * the seek (parameters in b), then unless count ORDER BY, LIMIT and OFFSET. */
int store_sql_asset_tail(const struct store_dialect *d, const struct asset_query *q, int part,
                         int count, int64_t offset, int limit, struct buf *sql,
                         struct store_binds *b, struct errbuf *eb);
/* The whole SELECT (or count) of q: parameters ?1 account, ?2 parent, ?3 search, filters
 * from ?5 (in b). */
int store_sql_list(const struct store_dialect *d, const struct list_query *q, int count,
                   struct buf *sql, struct store_binds *b, struct errbuf *eb);

/* The hardware_asset SQL both backends generate from device_fields (store.c), with the
 * backend's placeholder character ('?' for SQLite, '$' for PostgreSQL):
 *   find: ?1 integration, ?2 tenant, ?3 intune id -> id, retired_at, device columns (+suffix)
 *   ins:  ?1 account, ?2 client, ?3 integration, ?4 tenant, ?5 intune id, device columns,
 *         serial_key, first/last synced, last_seen_gen
 *   upd:  device columns, serial_key, last_synced_at, last_seen_gen, client_id, id */
struct store_device_sql {
    char *cols_h; /* "h.c1, h.c2, ..." */
    char *find;
    char *ins;
    char *upd;
    const char *col_name, *col_serial, *col_upn, *col_user, *col_model;
};
int store_device_sql_build(struct store_device_sql *d, char placeholder, const char *find_suffix,
                           struct errbuf *eb);
void store_device_sql_free(struct store_device_sql *d);

int store_sqlite_open(struct store **out, const char *path, struct errbuf *eb);
int store_pg_open(struct store **out, const char *url, struct errbuf *eb);

#endif
