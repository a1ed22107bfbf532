/* store.h - persistent state: accounts, integrations, clients (tenants), hardware assets,
 * software, asset history and sync runs; SQLite (default) or PostgreSQL backend.
 *
 * store_open() picks the backend from the URL: "postgresql://..." or "postgres://..." selects
 * PostgreSQL, anything else is a SQLite file path. Migrations are applied on open; a file that is
 * not a memsync database (or is newer than this build) is refused with a clear message and never
 * modified. SQLite runs in WAL mode with foreign keys on, a busy timeout and BEGIN IMMEDIATE for
 * every write transaction. Schema, rules and backend notes: docs/STORE.md.
 *
 * Threads: a struct store (one connection) belongs to one thread; open one per thread. The
 * count cache (store_assets_count, store_list_count) is shared by every connection of the
 * process and protected by its own mutex (count_mu in store.c), held only for the lookup and the
 * insert; a thread that finds the same count being computed waits for it (single flight,
 * flight.h). The SQLite lists' serial sets (serialset.h) are shared the same way.
 * Errors: ERR_OK or a negative ERR_* code, message in eb. Library codes never leak. A database
 * another process keeps locked past the busy timeout fails with ERR_TIMEOUT (worth a retry).
 * Ownership: structs filled by the store own their strings; free them with the matching
 * *_clear(). Callbacks receive borrowed rows valid only during the call.
 * No backend-specific SQL or types appear outside the backend files. This header is the API;
 * the backends' interface (struct store_ops, the SQL builder, the backends' open functions) is
 * store_int.h, which only src/store/ includes (scripts/layers.py).
 */
#ifndef MEMSYNC_STORE_H
#define MEMSYNC_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "device.h"
#include "err.h"
#include "partner.h"

struct store;

int store_open(struct store **out, const char *url, struct errbuf *eb);
void store_close(struct store *st);                /* NULL-safe */
const char *store_backend(const struct store *st); /* "sqlite" | "postgresql" */
/* Opens another connection to st's database, for another thread (the sync's writer). A SQLite
 * in-memory database has no second connection: ERR_UNSUPPORTED. */
int store_open_peer(const struct store *st, struct store **out, struct errbuf *eb);

/* Explicit transactions for multi-statement changes (integration create + sealed secrets). */
int store_tx_begin(struct store *st, struct errbuf *eb);
int store_tx_commit(struct store *st, struct errbuf *eb);
void store_tx_rollback(struct store *st);

/* ---- accounts ---------------------------------------------------------------------------- */

/* Returns the id of the account named name, creating it when absent. */
int store_account_ensure(struct store *st, const char *name, int64_t *account_id,
                         struct errbuf *eb);

/* ---- integrations ------------------------------------------------------------------------ */

struct integration {
    int64_t id;
    int64_t account_id;
    char *name;
    char *partner_tenant_id; /* Microsoft Partner Account ID */
    char *partner_app_id;
    char *sync_app_id;
    char *partner_secret_sealed; /* vault envelope, never plaintext */
    char *sync_secret_sealed;
    char *partner_secret_hint; /* first 3 characters, for display */
    char *sync_secret_hint;
    int64_t partner_secret_expires; /* Unix seconds or TS_NULL */
    int64_t sync_secret_expires;
    char *tenant_source; /* "partner_center" (default) | "contracts" | "gdap" */
    char *cloud;         /* cloud.h: "global" (default) | "usgov" | "usgovdod" | "china" */
    /* Where each secret's expiry came from: NULL = entered by the MSP, "microsoft" = read from
     * the app's passwordCredentials (store_integration_set_expiry). */
    char *partner_secret_expiry_source;
    char *sync_secret_expiry_source;
    int64_t sync_interval; /* seconds between incremental syncs */
    int64_t created_at;
    int64_t updated_at;
};

void integration_clear(struct integration *in);

/* Inserts in (id and timestamps are set on success). Secrets may be NULL and set afterwards
 * with store_integration_set_secret in the same transaction. */
int store_integration_insert(struct store *st, struct integration *in, struct errbuf *eb);
int store_integration_get(struct store *st, int64_t account_id, int64_t id, struct integration *out,
                          struct errbuf *eb); /* ERR_NOTFOUND */
/* Fills a malloc'd array (free each with integration_clear, then the array). */
int store_integration_list(struct store *st, int64_t account_id, struct integration **out,
                           size_t *n, struct errbuf *eb);
/* which: "partner" or "sync". The expiry counts as entered (its source becomes NULL). */
int store_integration_set_secret(struct store *st, int64_t id, const char *which,
                                 const char *sealed, const char *hint, int64_t expires,
                                 struct errbuf *eb);
/* Records a secret's expiry and where it came from (source "microsoft", or NULL = entered);
 * the secret itself is unchanged. ERR_NOTFOUND for an unknown integration. */
int store_integration_set_expiry(struct store *st, int64_t id, const char *which, int64_t expires,
                                 const char *source, struct errbuf *eb);
int store_integration_delete(struct store *st, int64_t account_id, int64_t id, struct errbuf *eb);

/* ---- clients (customer tenants) ---------------------------------------------------------- */

struct client_info {
    const char *tenant_id;
    const char *name;
    const char *default_domain;
    const char *source; /* "partner_center" | "contracts" | "gdap" */
    /* store_client_fail only: Microsoft's request id and the answer's date for its support,
     * or NULL */
    const char *error_request_id;
    const char *error_date;
};

struct client_row {
    int64_t id;
    int64_t integration_id;
    char *tenant_id;
    char *name;
    char *default_domain;
    char *source;
    int included;
    char *status; /* "ok" | "error" | "never" */
    char *error_code;
    char *error_message;
    char *error_remedy;
    int64_t last_sync_at; /* TS_NULL when never */
    int64_t device_count; /* active (not retired) hardware assets */
    int64_t software_count;
    /* Microsoft's request id of the failure and the date its answer carried, or NULL */
    char *error_request_id;
    char *error_date;
    /* What the last successful sync wants the MSP to know although it succeeded (devices held
     * back from retirement, a listing that looked short, /organization unreadable); NULL when
     * none. Replaced by every successful reconcile, kept by a failed one. */
    char *warning_code;
    char *warning_message;
    char *warning_remedy;
};

void client_row_clear(struct client_row *c);
int store_clients_each(struct store *st, int64_t account_id,
                       int (*cb)(void *arg, const struct client_row *c), void *arg,
                       struct errbuf *eb);

/* Records a failed tenant: status "error" with code, message and remedy; data untouched.
 * Creates the client row when it does not exist yet. */
int store_client_fail(struct store *st, int64_t account_id, int64_t integration_id,
                      const struct client_info *ci, const char *code, const char *message,
                      const char *remedy, struct errbuf *eb);

/* Includes or excludes a client (included: 1 / 0, -1 = leave as is) and sets its display name
 * override (NULL = leave, "" = clear). client is an id, a tenant id or an exact name;
 * ERR_NOTFOUND when nothing matches, ERR_INVAL when a name matches several clients. */
int store_client_update(struct store *st, int64_t account_id, const char *client, int included,
                        const char *name_override, struct errbuf *eb);

/* ---- reconcile (one transaction per tenant) ---------------------------------------------- */

struct reconcile_counts {
    int64_t created;
    int64_t updated;
    int64_t unchanged;
    int64_t retired;
    int64_t revived;
    int64_t installs_added;
    int64_t installs_removed;
    int64_t missing; /* active devices this complete listing lacked (those retired included) */
};

/* When a device missing from complete listings is retired (docs/ARCHITECTURE.md "Retirement"):
 * only once it was missing from after_syncs consecutive complete listings and after_s seconds
 * have passed since the first of them (hardware_asset.missing_since); a device seen again has
 * both cleared (no history row: it never left). hold: retire none this time (the caller's
 * mass-retirement guard tripped); the missing marks still advance. */
struct retire_policy {
    int after_syncs; /* >= 1 */
    int64_t after_s; /* >= 0 */
    int hold;
};
#define RETIRE_AFTER_SYNCS_DEFAULT 2
#define RETIRE_AFTER_S_DEFAULT     (24 * 3600)

/* Starts the tenant's write transaction (BEGIN IMMEDIATE) and upserts its client row. */
int store_reconcile_begin(struct store *st, int64_t account_id, int64_t integration_id,
                          const struct client_info *ci, int64_t now, struct errbuf *eb);
/* Inserts, updates (recording each changed field in the asset history) or touches one device.
 * A retired device that reappears comes back to life. */
int store_reconcile_device(struct store *st, const struct device *d, struct errbuf *eb);
/* Software seen on one device in this sync (replaces its install set when apps_complete). */
struct app_ref {
    const char *name;
    const char *version;
    const char *publisher;
    const char *platform;
    int64_t size_bytes;
};
int store_reconcile_installs(struct store *st, const char *intune_device_id,
                             const struct app_ref *apps, size_t n, struct errbuf *eb);
/* Sets the retirement policy of this tenant's commit (begin sets the defaults:
 * RETIRE_AFTER_SYNCS_DEFAULT, RETIRE_AFTER_S_DEFAULT, no hold). ERR_INVAL outside a reconcile
 * or for a policy out of range. */
int store_reconcile_policy(struct store *st, const struct retire_policy *p, struct errbuf *eb);
/* How many active devices a commit with a complete listing would retire under the policy set
 * now (hold ignored), and how many active devices the tenant has (those seen in this reconcile
 * included): for the caller's mass-retirement guard. Call after the last reconcile_device. */
int store_reconcile_retire_preview(struct store *st, int64_t *would_retire, int64_t *active,
                                   struct errbuf *eb);
/* The warning the commit stores on the client row (code, message and remedy, each at most 4 KiB;
 * NULL code = none, the default set by begin). Copied. */
int store_reconcile_warning(struct store *st, const char *code, const char *message,
                            const char *remedy, struct errbuf *eb);
/* Commits. Devices seen since begin lose their missing marks. With listing_complete, devices of
 * this tenant not seen since begin are marked missing (missing_since = now when it was not
 * set, and one more consecutive missing listing) and retired (retired_at = now) when the
 * policy says so; with installs_complete, installs not seen are marked removed. The client row
 * gets status "ok", last_sync_at, counts and the warning (or none), and each title touched by
 * this tenant's changes its device_count (active installs on active devices), in the same
 * transaction. */
int store_reconcile_commit(struct store *st, int listing_complete, int installs_complete,
                           struct reconcile_counts *counts, struct errbuf *eb);
void store_reconcile_rollback(struct store *st);

/* Group commit. Between store_batch_begin and store_batch_commit each tenant's reconcile
 * (begin..commit or rollback) is a savepoint of one transaction, and every other write on this
 * handle joins it: a crash, or a failed store_batch_commit, loses every tenant of the batch and
 * half of none. The sync commits a batch at least every sync_commit_ms and before it records a
 * failure. Small tenants are cheaper so: their devices share index pages, which one commit
 * writes once instead of once per tenant. On PostgreSQL both are no-ops (each tenant commits
 * alone) and store_batch_begin returns 0. Else 1, or a negative error (the lock was not
 * obtained: the caller goes on without a batch). */
int store_batch_begin(struct store *st, struct errbuf *eb);
int store_batch_commit(struct store *st, struct errbuf *eb);

/* ---- list conditions (API lists, hardware and generic) --------------------------------- */

/* Ops: "eq", "in" (value is a comma list), "lt", "lte", "gt", "gte", "like" (substring,
 * case-insensitive). Fields are the entity's public names (docs/API.md "Fields");
 * an unknown field or op is ERR_INVAL naming it. */
struct store_filter {
    const char *field;
    const char *op;
    const char *value;
};
struct store_sort {
    const char *field;
    int desc;
};

#define STORE_LIST_MAX_FILTERS 16
#define STORE_LIST_MAX_SORTS   4

enum store_cell_kind { SC_NULL, SC_INT, SC_TEXT, SC_TS, SC_BOOL };

/* One column of a row: name is a dotted path ("client.name"). Borrowed for the callback. */
struct store_cell {
    const char *name;
    enum store_cell_kind kind;
    int64_t i;
    const char *s;
};

/* ---- hardware assets (reads) ------------------------------------------------------------- */

/* What store_assets_each hands its callback: the asset and every string it points to (the
 * client's and dev's) are borrowed for the call only (SQLite: the statement's row). Copy what
 * must outlive it; never device_clear dev. */
struct asset {
    int64_t id;
    int64_t client_id;
    const char *client_name;
    const char *client_tenant_id;
    int64_t integration_id;
    struct device dev;
    int64_t first_synced_at;
    int64_t last_synced_at;
    int64_t retired_at;    /* TS_NULL while active */
    int64_t missing_since; /* first complete listing that lacked it (TS_NULL: listed) */
    int64_t updated_at;    /* last change of a field the change feed reports (schema 15) */
    int serial_duplicate;  /* same real serial seen in another tenant */
    /* The row's values of the query's sorts (SC_NULL, SC_INT or SC_TEXT; strings borrowed for
     * the callback), for keyset cursors. */
    struct store_cell sort_vals[STORE_LIST_MAX_SORTS];
    size_t nsort_vals;
    /* A row of an asset_query.lazy_dev list (SQLite) holds only id, client_* and sort_vals.
     * The callback then either calls dev_load(dev_ctx, &copy, &key) on its own copy of the row,
     * which reads the rest in the list's snapshot (strings borrowed until the callback returns;
     * *key: the serial key, NULL without a real serial), or, when it kept the rest from an
     * earlier row with the same id and dev_stamp, calls dup(dev_ctx, key) for the one value
     * that depends on other rows, serial_duplicate. dev_stamp changes with every write of the
     * row's other values (it names the client's sync generation, which every write of its
     * assets bumps, and the database), so such a copy is never stale. 0 and NULL in a full
     * row. */
    uint64_t dev_stamp;
    int (*dev_load)(void *ctx, struct asset *a, const char **serial_key);
    int (*dup)(void *ctx, const char *serial_key);
    void *dev_ctx;
};

struct asset_query {
    int64_t account_id;
    const char *client; /* client id, tenant id or exact name; NULL = all */
    int include_retired;
    const char *search; /* substring of name, serial, user, model (case-insensitive) */
    int64_t after_id;   /* keyset cursor: rows with id > after_id */
    int limit;          /* 0 = no limit */
    /* API lists (store_list_has_field("hardware", ...)); sorts end with id as tie-break. */
    const struct store_filter *filters;
    size_t nfilters;
    const struct store_sort *sorts;
    size_t nsorts;
    int64_t offset;
    /* Keyset paging of a sorted list (nsorts > 0): with seek set, the rows after the one whose
     * sort values are seek_vals (kind SC_NULL, SC_INT or SC_TEXT, one per sort) and whose id is
     * seek_id, in the list's order: each sort's direction with NULLs last both ways, then id
     * in the last sort's direction. offset still applies after the seek. */
    int seek;
    struct store_cell seek_vals[STORE_LIST_MAX_SORTS];
    int64_t seek_id;
    /* Pages (limit > 0): the callback may get rows without their device fields (see
     * asset.dev_load), for a caller that keeps them rendered. A backend may ignore it. */
    int lazy_dev;
    /* With lazy_dev: which rows of a page the caller holds the rest of: held[i] = 1 when it
     * holds ids[i] at stamps[i] (asset.dev_stamp), else 0; asked once per page, before any
     * callback, so that the rest of the others can be read ahead in one go. NULL: it holds
     * none. Called on the store's thread; must not use the store. */
    void (*lazy_held)(void *arg, const int64_t *ids, const uint64_t *stamps, size_t n,
                      unsigned char *held);
    void *lazy_held_arg;
};

/* The stored lastSyncDateTime of each device of one tenant, for incremental syncs (cheaper than
 * store_assets_each: no joins). retired is 1 for retired devices. */
int store_device_checkins(struct store *st, int64_t integration_id, const char *tenant_id,
                          int (*cb)(void *arg, const char *intune_id, int64_t last_check_in_at,
                                    int retired),
                          void *arg, struct errbuf *eb);
int store_assets_each(struct store *st, const struct asset_query *q,
                      int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb);
/* Counts rows of q (paging fields ignored). Answers from a bounded process-wide cache keyed by
 * the database, account and the normalised conditions, valid while store_data_version is
 * unchanged; so a count is never older than the last committed write of any process. */
int64_t store_assets_count(struct store *st, const struct asset_query *q, struct errbuf *eb);
/* Counts of the process-wide cache so far (store_assets_count and store_list_count): how many
 * the backends computed, and how many were answered from the cache, waits for a count another
 * thread was computing included (single flight). For tests and benchmarks. */
void store_count_stats(uint64_t *computed, uint64_t *hits);
/* A number every committed change of clients or integrations (and so every reconcile, which
 * ends by updating its client row) increases, read from the database so other processes' writes
 * count too (migration 4: table data_version, kept by triggers). */
int store_data_version(struct store *st, int64_t *out, struct errbuf *eb);

/* Adds up to max_rows assets that the free-text search index does not hold yet (SQLite: new
 * assets are found by a scan until then); *indexed says how many, 0 when it is up to date or
 * the backend has no such index. Takes the write lock for one batch: keep batches small
 * (a few thousand rows: about 0.1 ms of CPU per row). */
int store_search_index(struct store *st, int max_rows, int64_t *indexed, struct errbuf *eb);

/* For a connection that answers many reads (the API's threads): SQLite reads pages through a
 * memory map instead of copying each one. Not for a sync: mapped pages count towards its
 * resident memory. No-op on PostgreSQL. */
int store_map_reads(struct store *st, struct errbuf *eb);

/* ---- software and asset history (reads) ------------------------------------------------- */

struct software_row {
    int64_t id;
    int64_t client_id;
    const char *client_name;
    const char *client_tenant_id;
    const char *name;
    const char *version;   /* NULL when unknown */
    const char *publisher; /* NULL when unknown */
    const char *platform;  /* NULL when unknown */
    int64_t size_bytes;    /* -1 when unknown */
    int64_t device_count;  /* active devices with the title currently installed */
};

struct software_query {
    int64_t account_id;
    const char *client; /* client id, tenant id or exact name; NULL = all */
    const char *search; /* substring of name or publisher (case-insensitive) */
    int64_t after_id;   /* keyset cursor */
    int limit;          /* 0 = no limit */
};

/* Titles with at least one current install (removed and retired-only titles are left out). */
int store_software_each(struct store *st, const struct software_query *q,
                        int (*cb)(void *arg, const struct software_row *s), void *arg,
                        struct errbuf *eb);

struct asset_change_row {
    int64_t id;
    int64_t asset_id;
    int64_t at;
    const char *field; /* device_fields name */
    const char *old_value;
    const char *new_value;
};

/* The history of one asset, oldest first; ERR_NOTFOUND when the asset is not the account's. */
int store_asset_changes_each(struct store *st, int64_t account_id, int64_t asset_id,
                             int (*cb)(void *arg, const struct asset_change_row *c), void *arg,
                             struct errbuf *eb);

/* ---- change feed (schema 15, docs/STORE.md "Change feed") ---------------------------------- */

/* The kinds of change_event rows, as the API names them. */
#define STORE_CHANGE_KINDS                                                                         \
    "asset.created", "asset.changed", "asset.retired", "asset.revived", "install.added",           \
        "install.removed", "client.status"
#define STORE_CHANGE_KIND_COUNT 7
#define STORE_CHANGES_MAX       1000 /* rows per store_changes_each call */

/* 1 when kind is one of STORE_CHANGE_KINDS. */
int store_change_kind_known(const char *kind);

struct change_query {
    int64_t account_id;                         /* 0: every account (the webhook dispatcher) */
    int64_t after_seq;                          /* rows with seq > after_seq; 0: from the first */
    int64_t client_id;                          /* 0: every client */
    const char *kinds[STORE_CHANGE_KIND_COUNT]; /* known kinds only; nkinds 0: every kind */
    size_t nkinds;
    size_t limit; /* 1..STORE_CHANGES_MAX */
};

/* One committed change. Strings are borrowed for the callback; absent values are NULL (ids 0). */
struct change_row {
    int64_t seq; /* commit order: a row committed later has a higher seq */
    int64_t at;
    const char *kind;
    int64_t account_id;
    int64_t client_id;
    const char *client_name;
    const char *tenant_id;
    int64_t asset_id;
    const char *intune_device_id; /* asset rows: the asset's current identity */
    const char *asset_name;
    const char *serial_number;
    int64_t title_id; /* install rows */
    const char *title_name;
    const char *title_version;
    const char *title_publisher;
    const char *field; /* asset.changed: a device_fields name; client.status: "status" */
    const char *old_value;
    const char *new_value;
};

/* The account's committed changes after q->after_seq in seq order, at most q->limit; cb's
 * non-zero return stops the walk and is returned. A row another writer commits later always
 * gets a higher seq (SQLite: one writer; PostgreSQL: numbered at commit under a row lock), so a
 * reader that resumes after the last seq it saw misses nothing. *head (optional) gets the
 * highest committed seq of the database, for a cursor that starts "now". */
int store_changes_each(struct store *st, const struct change_query *q,
                       int (*cb)(void *arg, const struct change_row *c), void *arg, int64_t *head,
                       struct errbuf *eb);

/* ---- sync runs ----------------------------------------------------------------------------- */

struct tenant_result {
    const char *tenant_id;
    const char *client_name;
    const char *status; /* "ok" | "error" */
    const char *error_code;
    const char *message;
    const char *remedy;
    const char *request_id;    /* Microsoft's request id of the failure, or NULL */
    const char *response_date; /* the date of Microsoft's answer, or NULL */
    struct reconcile_counts counts;
    int64_t devices;
    int64_t requests;
    int64_t throttled;
    int64_t duration_ms;
};

int store_run_start(struct store *st, int64_t integration_id, const char *kind, int64_t now,
                    int64_t *run_id, struct errbuf *eb);
int store_run_tenant(struct store *st, int64_t run_id, const struct tenant_result *r,
                     struct errbuf *eb);
/* status: "ok" | "partial" | "failed" | "interrupted" */
int store_run_finish(struct store *st, int64_t run_id, const char *status, const char *message,
                     int64_t now, struct errbuf *eb);

/* ---- sync jobs for `memsync worker` (PostgreSQL only; SQLite answers ERR_UNSUPPORTED) ----
 *
 * A queued sync is one run and its jobs: first a discovery job (tenant_id NULL) whose worker
 * lists the customers and queues one job per tenant in the same run, then those tenant jobs.
 * Workers lease jobs with FOR UPDATE SKIP LOCKED for lease_s seconds of the database's clock
 * and renew the lease while they work; a job whose lease lapsed (its worker died) is leased
 * again, at most STORE_JOB_ATTEMPTS times in all, then failed with a tenant result that says
 * so. The job that completes a run's last pending job finishes the run: "ok", "partial" (a
 * tenant failed) or "failed" (discovery failed). Results of a worker that lost its lease are
 * refused (ERR_NOTFOUND) so a tenant is never recorded done twice by mistake. */
#define STORE_JOB_ATTEMPTS 3

struct sync_job {
    int64_t id;
    int64_t run_id;
    int64_t account_id;
    int64_t integration_id;
    int full;
    int attempts;         /* leases so far, this one included */
    struct customer cust; /* tenant_id NULL: the discovery job */
};
void sync_job_clear(struct sync_job *j); /* NULL-safe */

/* Starts a run of the integration and queues its discovery job. ERR_EXISTS when a queued run
 * of this integration still has pending jobs. */
int store_job_enqueue(struct store *st, int64_t integration_id, int full, int64_t now,
                      int64_t *run_id, struct errbuf *eb);
/* Starts a full run of one tenant of the integration and queues its tenant job alone (no
 * discovery: the customer as given, names may be NULL). ERR_EXISTS as store_job_enqueue. */
int store_job_enqueue_tenant(struct store *st, int64_t integration_id,
                             const struct customer *tenant, int64_t now, int64_t *run_id,
                             struct errbuf *eb);
/* Leases the oldest pending job for worker. ERR_NOTFOUND when there is none; *busy then counts
 * the jobs other workers hold, which may still queue more or lapse. */
int store_job_lease(struct store *st, const char *worker, int lease_s, int64_t now,
                    struct sync_job *out, int64_t *busy, struct errbuf *eb);
/* Extends worker's lease. ERR_NOTFOUND when the lease lapsed and the job is no longer ours. */
int store_job_renew(struct store *st, const struct sync_job *j, const char *worker, int lease_s,
                    struct errbuf *eb);
/* Completes a discovery job: queues one tenant job per customer (n may be 0). */
int store_job_expand(struct store *st, const struct sync_job *j, const char *worker,
                     const struct customer *c, size_t n, int64_t now, struct errbuf *eb);
/* Completes a job: ok = 0 records message as the failure (a discovery failure fails the run). */
int store_job_finish(struct store *st, const struct sync_job *j, const char *worker, int ok,
                     const char *message, int64_t now, struct errbuf *eb);
/* Gives the job back to the queue (the worker is shutting down); the lease does not count. */
int store_job_release(struct store *st, const struct sync_job *j, const char *worker,
                      struct errbuf *eb);
/* The unfinished jobs of a run, oldest first, at most max (a run page of a queued sync): cb gets
 * each job's tenant (tenant_id NULL: the discovery job, still reading the customer list; name
 * may be NULL), leased 1 while a worker holds it, with elapsed_s since it leased it (the
 * database's clock; schema 18), else 0. Strings are borrowed for the call. *n: how many jobs
 * (0: none unfinished, e.g. a run not queued for workers). */
int store_job_unfinished(struct store *st, int64_t run_id, size_t max,
                         int (*cb)(void *arg, const char *tenant_id, const char *name, int leased,
                                   int64_t elapsed_s),
                         void *arg, size_t *n, struct errbuf *eb);

/* ---- web: users, sessions, API keys (migration 2) --------------------------------------- */

/* Names are unique across accounts (sign-in takes a name only). role: "admin" | "viewer". */
struct user_row {
    int64_t id;
    int64_t account_id;
    char *name;
    char *role;
    char *password_hash; /* crypto_pwhash_str string, never shown */
    int64_t created_at;
};
void user_row_clear(struct user_row *u);

int store_user_insert(struct store *st, int64_t account_id, const char *name, const char *role,
                      const char *password_hash, int64_t *id, struct errbuf *eb); /* ERR_EXISTS */
int store_user_get(struct store *st, const char *name, struct user_row *out,
                   struct errbuf *eb); /* ERR_NOTFOUND */
int store_user_set_password(struct store *st, int64_t id, const char *password_hash,
                            struct errbuf *eb);
int store_user_delete(struct store *st, int64_t id, struct errbuf *eb);
int64_t store_user_count(struct store *st, struct errbuf *eb); /* users of every account */

/* Sessions and API keys are found by a digest of their token; the token itself is never kept.
 * scope of an API key: "read" | "admin". */
int store_session_insert(struct store *st, const char *token_hash, int64_t user_id,
                         int64_t expires_at, struct errbuf *eb);
/* The user of an unexpired session (ERR_NOTFOUND otherwise). */
int store_session_user(struct store *st, const char *token_hash, int64_t now, struct user_row *out,
                       struct errbuf *eb);
int store_session_delete(struct store *st, const char *token_hash, struct errbuf *eb);

/* expires_at: when the key stops working, TS_NULL for never. */
int store_apikey_insert(struct store *st, int64_t account_id, const char *name, const char *scope,
                        const char *key_hash, const char *prefix, int64_t expires_at, int64_t *id,
                        struct errbuf *eb);
/* Finds an unrevoked key (expired or not): fills account, id, scope (malloc'd, caller frees),
 * expires_at and last_used_at (TS_NULL when none). */
int store_apikey_find(struct store *st, const char *key_hash, int64_t *account_id, int64_t *id,
                      char **scope, int64_t *expires_at, int64_t *last_used_at,
                      struct errbuf *eb); /* ERR_NOTFOUND */
/* Sets the key's last_used_at to now unless it is already within the last minute. */
int store_apikey_touch(struct store *st, int64_t id, int64_t now, struct errbuf *eb);
int store_apikey_revoke(struct store *st, int64_t account_id, int64_t id, struct errbuf *eb);

/* ---- web: second factor, TOTP (migration 13) -------------------------------------------- */

/* A user's TOTP state and their account's rule. secret_sealed is a vault envelope for
 * ("app_user", user id, "totp_secret") -- never the secret itself -- or NULL when the user has
 * none; enrolled_at is TS_NULL while an enrolment is not confirmed yet; last_step is the newest
 * time step a code was accepted for (-1: none), kept so a code is refused a second time also
 * across restarts. code_id / code_hash: the unused recovery codes (crypto_pwhash_str hashes). */
#define STORE_RECOVERY_MAX 16
struct user_totp {
    int64_t user_id;
    int64_t account_id;
    char *secret_sealed;
    int64_t enrolled_at;
    int64_t last_step;
    int require; /* the account requires a second factor of every local user */
    size_t ncodes;
    int64_t code_id[STORE_RECOVERY_MAX];
    char *code_hash[STORE_RECOVERY_MAX];
};
void user_totp_clear(struct user_totp *t);

/* ERR_NOTFOUND when there is no such user. */
int store_totp_get(struct store *st, int64_t user_id, struct user_totp *out, struct errbuf *eb);
/* Starts an enrolment: a new sealed secret, not confirmed, no recovery codes. ERR_EXISTS when the
 * user is enrolled (disable first), ERR_NOTFOUND when there is no such user. */
int store_totp_begin(struct store *st, int64_t user_id, const char *sealed, struct errbuf *eb);
/* Confirms the enrolment begun with store_totp_begin, in one transaction: enrolled at now, step
 * used, and n (<= STORE_RECOVERY_MAX) recovery code hashes replacing any others. ERR_NOTFOUND
 * when no unconfirmed secret is there. */
int store_totp_enrol(struct store *st, int64_t user_id, int64_t step, int64_t now,
                     const char *const *hashes, size_t n, struct errbuf *eb);
/* Records that a code of step was used, only when step is newer than the last one (atomic, so two
 * requests cannot both use one code): ERR_AUTH otherwise. */
int store_totp_use_step(struct store *st, int64_t user_id, int64_t step, struct errbuf *eb);
/* Marks one of the user's recovery codes used at now; ERR_NOTFOUND when it already was. */
int store_totp_recovery_use(struct store *st, int64_t user_id, int64_t code_id, int64_t now,
                            struct errbuf *eb);
/* Removes the user's secret, enrolment and recovery codes. ERR_NOTFOUND: no such user. */
int store_totp_clear(struct store *st, int64_t user_id, struct errbuf *eb);
/* Every stored TOTP envelope of every account (for `memsync key rotate`), and its replacement. */
int store_totp_secrets_each(struct store *st,
                            int (*cb)(void *arg, int64_t user_id, const char *sealed), void *arg,
                            struct errbuf *eb);
int store_totp_set_sealed(struct store *st, int64_t user_id, const char *sealed, struct errbuf *eb);
/* Turns the account's "every local user needs a second factor" rule on (1) or off (0). */
int store_account_require_totp(struct store *st, int64_t account_id, int on, struct errbuf *eb);

/* Changes name, sync interval and expiry dates (NULL / 0 / 0: unchanged); a date given here
 * counts as entered (its expiry source becomes NULL). */
int store_integration_update(struct store *st, int64_t account_id, int64_t id, const char *name,
                             int64_t sync_interval, int64_t partner_expires, int64_t sync_expires,
                             struct errbuf *eb);

/* ---- web: per-user preferences (migration 16) ------------------------------------------- */

/* A user's saved choice (the hardware list's columns and page size): keys and values at most
 * STORE_PREF_MAX bytes each (ERR_INVAL). get: a malloc'd copy, ERR_NOTFOUND when never set;
 * the row goes with its user. */
#define STORE_PREF_MAX 1024
int store_pref_get(struct store *st, int64_t user_id, const char *key, char **value,
                   struct errbuf *eb);
int store_pref_set(struct store *st, int64_t user_id, const char *key, const char *value,
                   struct errbuf *eb);

/* ---- generic lists: filtered, sorted, paged reads for the API and UI ------------------- */

/* Entities: "clients", "software" (titles with device counts), "software_devices" (parent:
 * software id), "asset_software" (parent: asset id), "asset_changes" (parent: asset id),
 * "installs" (current installs on active devices), "installs_all" (also removed ones and
 * those of retired devices), "sync_runs", "sync_tenant_results" (parent: run id),
 * "users", "api_keys", "client_sync_results" (parent: client id; its tenant's results in the
 * runs of its integration, newest first), "product_titles" (titles with a current install: id,
 * client.id, name, version, publisher, device_count, in id order), "product_installs"
 * (title_id, asset_id of every current install on an active device). Every row is
 * limited to account_id, except in "scheduler_integrations" (id, account_id, sync_interval,
 * last_started_at of every account's integrations), which only the sync scheduler reads. */
struct list_query {
    const char *entity;
    int64_t account_id;
    int64_t parent_id;
    const struct store_filter *filters;
    size_t nfilters;
    const struct store_sort *sorts;
    size_t nsorts;
    const char *search;
    int64_t offset;
    int limit; /* 0 = no limit */
    /* Keyset paging in the entity's default order (no sorts; entity seek_field set): rows after
     * the one whose seek_field is seek_val and whose tiebreak is seek_id. */
    int seek;
    struct store_cell seek_val;
    int64_t seek_id;
};

int store_list_each(struct store *st, const struct list_query *q,
                    int (*cb)(void *arg, const struct store_cell *cells, size_t n), void *arg,
                    struct errbuf *eb);
int64_t store_list_count(struct store *st, const struct list_query *q, struct errbuf *eb);
/* 1 when the entity knows field (for filters and sorts), else 0. entity "hardware" too. */
int store_list_has_field(const char *entity, const char *field);

/* Hardware asset by id within the account (ERR_NOTFOUND). cb is called once. */
int store_asset_get(struct store *st, int64_t account_id, int64_t id,
                    int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb);

/* ---- schema identity ---------------------------------------------------------------- */

/* Schema identity of the SQLite file ("MSYN") and the newest schema version this build knows. */
#define STORE_APPLICATION_ID 0x4D53594E
#define STORE_SCHEMA_VERSION 19

/* ---- list catalogue (the API's cursors read it) ------------------------------------- */

/* One public field of a list entity and the SQL expression that reads it. */
struct store_list_field {
    const char *name; /* public dotted name */
    const char *expr; /* SQL expression (standard SQL) */
    enum store_cell_kind kind;
};

/* A list: FROM/WHERE text with ?1 = account and ?2 = parent, search columns, order. */
struct store_list_entity {
    const char *name;
    const char *from; /* NULL for "hardware" (its backends build that query themselves) */
    const char *search[4];
    const char *order;    /* default ORDER BY */
    const char *tiebreak; /* unique column that ends every ORDER BY */
    const struct store_list_field *fields;
    /* Keyset paging in the default order (list_query.seek): the field the order sorts by (never
     * NULL), and whether it runs downwards; NULL where the list pages by position only. */
    const char *seek_field;
    int seek_desc;
};

const struct store_list_entity *store_list_entity(const char *name);
const struct store_list_field *store_list_field(const struct store_list_entity *e,
                                                const char *name);

/* ---- web: single sign-on with Microsoft Entra ID (migration 14) -------------------------- */

/* An account's sign-in app: tenant (GUID), app (client) id, the redirect URI registered for it,
 * the client secret as a vault envelope for ("account_sso", account id, "client_secret") and its
 * first 3 characters, the role mapping (oidc.h: lines VALUE=admin|viewer), when a sign-in
 * through it last worked (TS_NULL: never) and the account's local_signin switch. */
struct account_sso {
    int64_t account_id;
    char *account_name;
    char *tenant_id;
    char *client_id;
    char *redirect_uri;
    char *secret_sealed;
    char *secret_hint;
    char *role_map;
    int64_t worked_at;
    int local_signin;
};
void account_sso_clear(struct account_sso *s);

/* ERR_NOTFOUND when the account has no SSO settings. */
int store_sso_get(struct store *st, int64_t account_id, struct account_sso *out, struct errbuf *eb);
/* Creates or replaces the settings of in->account_id (worked_at kept when the tenant and app
 * stay the same, else cleared). */
int store_sso_set(struct store *st, const struct account_sso *in, struct errbuf *eb);
/* Removes them and turns local sign-in back on (else nobody could sign in). */
int store_sso_delete(struct store *st, int64_t account_id, struct errbuf *eb);
/* Every account with SSO settings, by name (the sign-in page's buttons). */
int store_sso_each(struct store *st,
                   int (*cb)(void *arg, int64_t account_id, const char *account_name), void *arg,
                   struct errbuf *eb);
int store_sso_worked(struct store *st, int64_t account_id, int64_t now, struct errbuf *eb);
/* Every sealed SSO client secret (`memsync key rotate`) and its replacement. */
int store_sso_secrets_each(struct store *st,
                           int (*cb)(void *arg, int64_t account_id, const char *sealed), void *arg,
                           struct errbuf *eb);
int store_sso_set_sealed(struct store *st, int64_t account_id, const char *sealed,
                         struct errbuf *eb);
/* Password sign-in for the account's local users: on (1) or off (0). Off is refused
 * (ERR_DENIED) until a sign-in through SSO has worked (atomic with that check). */
int store_account_local_signin(struct store *st, int64_t account_id, int on, struct errbuf *eb);
/* *on: the account's switch (1 when the account does not exist: nothing to refuse). */
int store_account_local_signin_get(struct store *st, int64_t account_id, int *on,
                                   struct errbuf *eb);
/* Users signed in through SSO are keyed by (account, tid, oid), never by name. Their
 * password_hash is STORE_SSO_NO_PASSWORD, which no password matches. */
#define STORE_SSO_NO_PASSWORD "!sso"
int store_user_sso_find(struct store *st, int64_t account_id, const char *tid, const char *oid,
                        struct user_row *out, struct errbuf *eb); /* ERR_NOTFOUND */
int store_user_sso_insert(struct store *st, int64_t account_id, const char *tid, const char *oid,
                          const char *name, const char *role, int64_t *id,
                          struct errbuf *eb); /* ERR_EXISTS: the name is taken */
int store_user_set_role(struct store *st, int64_t id, const char *role, struct errbuf *eb);

/* Process-wide SQLite settings: call once, before any thread or store exists (main). */
void store_sqlite_global_init(void);

#endif
