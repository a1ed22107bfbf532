/* reconcile.h - one tenant's reconcile, for every backend: the state machine behind
 * store_reconcile_* (docs/STORE.md "Reconcile rules").
 *
 * The core decides; the backend runs the statements. It holds the tenant's state (struct
 * reconcile, in struct store: store_int.h), looks devices up and chooses insert, touch or update,
 * records each changed field in the asset history, diffs a device's install set against what is
 * stored (inserts, revivals, removals), keeps the counts and each title's device-count change, and
 * runs the commit's steps in order. A backend supplies a struct reconcile_ops: SQL or prepared
 * statements only, no decisions.
 *
 * Internal to src/store/ (it includes store_int.h, so scripts/layers.py refuses it elsewhere;
 * unit tests may): the backends point their store_ops.reconcile_* at these functions
 * and store_ops.rec at their reconcile_ops (store.c dispatches as for any operation, so it
 * needs no include of this header). Threads: as struct store, one thread per
 * connection. Errors: ERR_OK or a negative ERR_*, message in eb; once a device or install step
 * failed, commit refuses and rolls back. Ownership: the core owns everything in struct
 * reconcile; ops borrow their arguments for the call.
 */
#ifndef MEMSYNC_RECONCILE_H
#define MEMSYNC_RECONCILE_H

#include <stddef.h>
#include <stdint.h>

#include "store_int.h"

/* What a backend runs. Each returns ERR_OK or a negative ERR_* with eb set, unless noted;
 * st->rec holds the tenant (client, generation, now). Optional entries may be NULL. */
struct reconcile_ops {
    /* Opens the tenant's transaction (refusing when one is open); undo ends it on failure,
     * rollback on the caller's request, commit for good. */
    int (*begin)(struct store *st, struct errbuf *eb);
    void (*undo)(struct store *st);
    void (*rollback)(struct store *st);
    int (*commit)(struct store *st, struct errbuf *eb);
    /* Optional: 0 when the database has ended the transaction itself (then nothing is written
     * or committed). */
    int (*tx_alive)(struct store *st);
    /* Optional: frees the backend's per-tenant state (its title map); reconcile_begin resets
     * before integration_owned, so the steps from there on may keep such state. */
    void (*reset)(struct store *st);

    int (*integration_owned)(struct store *st, int64_t account_id, int64_t integration_id,
                             struct errbuf *eb);
    /* Upserts the client row; sets its id and its new generation. */
    int (*client_upsert)(struct store *st, int64_t account_id, int64_t integration_id,
                         const struct client_info *ci, int64_t now, int64_t *client, int64_t *gen,
                         struct errbuf *eb);
    /* Optional: *empty = 1 when the tenant has no device stored yet. */
    int (*tenant_empty)(struct store *st, int64_t integration_id, const char *tenant_id, int *empty,
                        struct errbuf *eb);

    /* Fills *found, *id, *retired (TS_NULL when active) and old (device columns). */
    int (*device_find)(struct store *st, const char *intune_id, int *found, int64_t *id,
                       int64_t *retired, struct device *old, struct errbuf *eb);
    /* ERR_EXISTS when the device is there already (nothing written); *id = 0 when the backend
     * cannot tell the new row's id cheaply, or a negative id of the backend's own that its
     * other entries accept in place of the real one (PostgreSQL's pipelined inserts). */
    int (*device_insert)(struct store *st, const struct device *d, const char *serial_key,
                         int64_t *id, struct errbuf *eb);
    int (*device_touch)(struct store *st, int64_t id, struct errbuf *eb);
    int (*device_update)(struct store *st, int64_t id, const struct device *d,
                         const char *serial_key, struct errbuf *eb);
    int (*change_insert)(struct store *st, int64_t asset_id, const char *field, const char *oldv,
                         const char *newv, struct errbuf *eb);

    /* The change feed (schema 15; optional, NULL: none). event_insert adds one change_event
     * row of the tenant's client at rec.now (asset_id, title_id 0 and strings NULL when the
     * kind has none); asset_updated sets the asset's updated_at to rec.now; client_status adds
     * a client.status row when the client's stored status is not "ok" (before client_ok). */
    int (*event_insert)(struct store *st, const char *kind, int64_t asset_id, int64_t title_id,
                        const char *field, const char *oldv, const char *newv, struct errbuf *eb);
    int (*asset_updated)(struct store *st, int64_t asset_id, struct errbuf *eb);
    int (*client_status)(struct store *st, struct errbuf *eb);

    /* ERR_NOTFOUND when the tenant has no such device; *active: it is not retired. */
    int (*asset_find)(struct store *st, const char *intune_id, int64_t *id, int *active,
                      struct errbuf *eb);
    /* Calls cb for each install of the asset (removed: removed_at is set). */
    int (*installs_each)(struct store *st, int64_t asset_id,
                         void (*cb)(void *arg, int64_t title, int removed), void *arg,
                         struct errbuf *eb);
    /* *id may be negative (a title new in this reconcile, as device_insert's ids). */
    int (*title_id)(struct store *st, const struct app_ref *a, int64_t *id, struct errbuf *eb);
    /* Inserts installs of titles[0..n) (ascending) the asset does not have. */
    int (*installs_insert)(struct store *st, int64_t asset_id, const int64_t *titles, size_t n,
                           struct errbuf *eb);
    int (*install_revive)(struct store *st, int64_t asset_id, int64_t title, struct errbuf *eb);
    int (*install_remove)(struct store *st, int64_t asset_id, int64_t title, struct errbuf *eb);

    /* The commit's steps, in this order. missing_mark sets *n to the devices marked; retire
     * sets *n to the devices retired (their updated_at too) and fills *gone (malloc'd, the core
     * frees it) with their ids. */
    int (*missing_clear)(struct store *st, struct errbuf *eb);
    int (*missing_mark)(struct store *st, int64_t *n, struct errbuf *eb);
    int (*retire)(struct store *st, int64_t *n, int64_t **gone, size_t *ngone, struct errbuf *eb);
    /* Brings the titles' device_count up to date: from st->rec.delta when title_deltas is set,
     * else by counting. */
    int (*titles_count)(struct store *st, struct errbuf *eb);
    int (*client_ok)(struct store *st, struct errbuf *eb);

    /* Set: the core keeps st->rec.delta, reading a revived or retired asset's active titles
     * through asset_titles. */
    int title_deltas;
    int (*asset_titles)(struct store *st, int64_t asset_id, void (*cb)(void *arg, int64_t title),
                        void *arg, struct errbuf *eb);
};

int reconcile_begin(struct store *st, int64_t account_id, int64_t integration_id,
                    const struct client_info *ci, int64_t now, struct errbuf *eb);
int reconcile_device(struct store *st, const struct device *d, struct errbuf *eb);
int reconcile_installs(struct store *st, const char *intune_device_id, const struct app_ref *apps,
                       size_t n, struct errbuf *eb);
int reconcile_commit(struct store *st, int listing_complete, int installs_complete,
                     struct reconcile_counts *counts, struct errbuf *eb);
void reconcile_rollback(struct store *st);
/* ERR_INVAL unless a tenant is being reconciled, and (for a write) none of its steps failed and
 * the database still holds its transaction. */
int reconcile_need(struct store *st, int write, struct errbuf *eb);
/* Forgets the tenant (and the backend's per-tenant state); the backends' close calls it too. */
void reconcile_reset(struct store *st);

#endif
