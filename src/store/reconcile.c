/* reconcile.c - one tenant's reconcile for every backend (reconcile.h). */
#include "reconcile.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "mem.h"

void
reconcile_reset(struct store *st)
{
    struct reconcile *r = &st->rec;

    if (st->ops->rec->reset != NULL)
        st->ops->rec->reset(st);
    XFREE(r->tenant);
    XFREE(r->asset_intune);
    XFREE(r->delta);
    memset(r, 0, sizeof *r);
}

int
reconcile_need(struct store *st, int write, struct errbuf *eb)
{
    const struct reconcile *r = &st->rec;

    if (!r->active)
        return err_set(eb, ERR_INVAL, "no tenant reconcile is in progress");
    if (!write)
        return ERR_OK;
    /* Some databases end the whole transaction on some errors (SQLite: a full disk, an OR
     * ROLLBACK conflict); writing on would autocommit, so a failed or ended one takes none. */
    if (r->failed)
        return err_set(eb, ERR_INVAL, "tenant %s: an earlier step failed", r->tenant);
    if (st->ops->rec->tx_alive != NULL && !st->ops->rec->tx_alive(st))
        return err_set(eb, ERR_DB, "tenant %s: the database ended the transaction", r->tenant);
    return ERR_OK;
}

int
reconcile_begin(struct store *st, int64_t account_id, int64_t integration_id,
                const struct client_info *ci, int64_t now, struct errbuf *eb)
{
    const struct reconcile_ops *ops = st->ops->rec;
    int64_t client = 0, gen = 0;
    int rc, empty = 0;

    rc = ops->begin(st, eb);
    if (rc != ERR_OK)
        return rc;
    /* Cleared before the backend's steps, which may keep per-tenant state (reset frees it). */
    reconcile_reset(st);
    rc = ops->integration_owned(st, account_id, integration_id, eb);
    if (rc == ERR_OK)
        rc = ops->client_upsert(st, account_id, integration_id, ci, now, &client, &gen, eb);
    /* A tenant's first sync: no device can be found, so none is looked up. */
    if (rc == ERR_OK && ops->tenant_empty != NULL)
        rc = ops->tenant_empty(st, integration_id, ci->tenant_id, &empty, eb);
    if (rc != ERR_OK) {
        ops->undo(st);
        reconcile_reset(st);
        return rc;
    }
    st->rec.active = 1;
    st->rec.fresh = empty;
    st->rec.account = account_id;
    st->rec.integration = integration_id;
    st->rec.client = client;
    st->rec.gen = gen;
    st->rec.now = now;
    st->rec.tenant = xstrdup(ci->tenant_id);
    return ERR_OK;
}

/* ---- title counts ---------------------------------------------------------------------- */

static inline size_t
delta_slot(int64_t title, size_t mask)
{
    return (size_t)(((uint64_t)title * 0x9E3779B97F4A7C15ULL) >> 32) & mask;
}

static void
delta_add(struct reconcile *r, int64_t title, int64_t d)
{
    size_t mask, i;

    if ((r->ndelta + 1) * 2 > r->ndelta_slots) {
        struct reconcile_delta *old = r->delta;
        size_t nold = r->ndelta_slots, ns = nold ? nold * 2 : 256;

        r->delta = xcalloc(ns, sizeof *r->delta);
        r->ndelta_slots = ns;
        for (size_t k = 0; k < nold; k++) {
            if (old[k].id == 0)
                continue;
            for (i = delta_slot(old[k].id, ns - 1); r->delta[i].id != 0; i = (i + 1) & (ns - 1))
                ;
            r->delta[i] = old[k];
        }
        free(old);
    }
    mask = r->ndelta_slots - 1;
    for (i = delta_slot(title, mask); r->delta[i].id != 0 && r->delta[i].id != title;
         i = (i + 1) & mask)
        ;
    if (r->delta[i].id == 0) {
        r->delta[i].id = title;
        r->ndelta++;
    }
    r->delta[i].d += d;
}

struct asset_delta {
    struct reconcile *r;
    int64_t d;
};

static void
asset_delta_cb(void *arg, int64_t title)
{
    struct asset_delta *x = arg;

    delta_add(x->r, title, x->d);
}

/* Adds d to the count of every title the asset has an active install of (it is revived: +1, or
 * retired: -1). */
static int
delta_asset(struct store *st, int64_t asset_id, int64_t d, struct errbuf *eb)
{
    struct asset_delta x = {&st->rec, d};

    if (!st->ops->rec->title_deltas)
        return ERR_OK;
    return st->ops->rec->asset_titles(st, asset_id, asset_delta_cb, &x, eb);
}

static void
delta_title(struct store *st, int64_t title, int64_t d)
{
    if (st->ops->rec->title_deltas)
        delta_add(&st->rec, title, d);
}

/* ---- change feed ----------------------------------------------------------------------- */

static int
feed(struct store *st, const char *kind, int64_t asset_id, int64_t title_id, const char *field,
     const char *oldv, const char *newv, struct errbuf *eb)
{
    if (st->ops->rec->event_insert == NULL)
        return ERR_OK;
    return st->ops->rec->event_insert(st, kind, asset_id, title_id, field, oldv, newv, eb);
}

static int
asset_updated(struct store *st, int64_t asset_id, struct errbuf *eb)
{
    if (st->ops->rec->asset_updated == NULL)
        return ERR_OK;
    return st->ops->rec->asset_updated(st, asset_id, eb);
}

/* ---- devices --------------------------------------------------------------------------- */

struct change_ctx {
    struct store *st;
    int64_t asset_id;
    struct errbuf *eb;
    int fed; /* changes of fields the feed reports */
};

static int
record_change(void *arg, const char *field, const char *oldv, const char *newv)
{
    struct change_ctx *cx = arg;
    int rc;

    /* The asset row keeps the new value (device_update): no history row, no feed row, and
     * updated_at does not move. */
    if (store_device_field_volatile(field))
        return 0;
    rc = cx->st->ops->rec->change_insert(cx->st, cx->asset_id, field, oldv, newv, cx->eb);
    if (rc == ERR_OK) {
        cx->fed++;
        rc = feed(cx->st, "asset.changed", cx->asset_id, 0, field, oldv, newv, cx->eb);
    }
    return rc;
}

/* A device was inserted: its id (looked up when the backend could not tell it) and its feed
 * row. */
static int
created(struct store *st, const struct device *d, int64_t *id, struct errbuf *eb)
{
    int active = 1, rc = ERR_OK;

    if (st->ops->rec->event_insert == NULL)
        return ERR_OK;
    if (*id == 0)
        rc = st->ops->rec->asset_find(st, d->intune_id, id, &active, eb);
    if (rc == ERR_OK)
        rc = feed(st, "asset.created", *id, 0, NULL, NULL, NULL, eb);
    return rc;
}

static int
device_step(struct store *st, const struct device *d, struct errbuf *eb)
{
    const struct reconcile_ops *ops = st->ops->rec;
    struct reconcile *r = &st->rec;
    struct device old;
    char *key = NULL;
    int64_t id = 0, retired = TS_NULL;
    int found = 0, rc;

    device_init(&old);
    rc = reconcile_need(st, 1, eb);
    if (rc != ERR_OK)
        return rc;
    key = store_serial_key(d->serial);
    if (r->fresh) {
        rc = ops->device_insert(st, d, key, &id, eb);
        if (rc == ERR_OK) {
            r->counts.created++;
            found = -1; /* new: see asset_new */
            rc = created(st, d, &id, eb);
            goto out;
        }
        if (rc != ERR_EXISTS)
            goto out;
        /* Listed twice: the single-row INSERT was refused before writing; update it. */
        rc = ERR_OK;
    }
    rc = ops->device_find(st, d->intune_id, &found, &id, &retired, &old, eb);
    if (rc != ERR_OK)
        goto out;
    if (!found) {
        rc = ops->device_insert(st, d, key, &id, eb);
        if (rc == ERR_OK) {
            r->counts.created++;
            rc = created(st, d, &id, eb);
        }
        found = -1;
        goto out;
    }
    old.intune_id = xstrdup(d->intune_id);
    if (retired == TS_NULL && device_equal(&old, d) &&
        store_device_diff(&old, d, NULL, NULL) == 0) {
        rc = ops->device_touch(st, id, eb);
        if (rc == ERR_OK)
            r->counts.unchanged++;
        goto out;
    }
    rc = ops->device_update(st, id, d, key, eb);
    if (rc != ERR_OK)
        goto out;
    {
        struct change_ctx cx = {st, id, eb, 0};
        int n = store_device_diff(&old, d, record_change, &cx);
        if (n < 0) {
            rc = n;
            goto out;
        }
        if (cx.fed > 0 || retired != TS_NULL)
            rc = asset_updated(st, id, eb);
    }
    r->counts.updated++;
    if (rc == ERR_OK && retired != TS_NULL) {
        r->counts.revived++;
        rc = delta_asset(st, id, 1, eb);
        if (rc == ERR_OK)
            rc = feed(st, "asset.revived", id, 0, NULL, NULL, NULL, eb);
    }
out:
    if (rc == ERR_OK) {
        free(r->asset_intune);
        r->asset_intune = id != 0 ? xstrdup(d->intune_id) : NULL;
        r->asset_id = id;
        r->asset_new = found < 0;
        r->asset_active = 1;
    }
    free(key);
    device_clear(&old);
    return rc;
}

int
reconcile_device(struct store *st, const struct device *d, struct errbuf *eb)
{
    int rc = device_step(st, d, eb);

    if (rc != ERR_OK && st->rec.active)
        st->rec.failed = 1;
    return rc;
}

/* ---- installs -------------------------------------------------------------------------- */

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

/* A device's stored install set while it is compared with what the device reports. */
struct inst_set {
    struct inst *v;
    size_t n, cap;
    uint64_t filter[4];
};

/* A 256-bit filter over the titles in a device's install set: a title whose bit is clear is not
 * in the set, so most lookups skip the scan (a device's set is built while it is searched). */
static inline unsigned
inst_bit(int64_t title)
{
    return (unsigned)(((uint64_t)title * 0x9E3779B97F4A7C15ULL) >> 56);
}

static void
inst_add(struct inst_set *h, int64_t title, int removed, int seen)
{
    unsigned bit = inst_bit(title);

    if (h->n == h->cap) {
        h->cap = h->cap ? h->cap * 2 : 64;
        h->v = xrealloc(h->v, h->cap * sizeof *h->v);
    }
    h->v[h->n].title = title;
    h->v[h->n].removed = removed;
    h->v[h->n].seen = seen;
    h->filter[bit >> 6] |= UINT64_C(1) << (bit & 63);
    h->n++;
}

static void
inst_read_cb(void *arg, int64_t title, int removed)
{
    inst_add(arg, title, removed, 0);
}

static size_t
inst_find(const struct inst_set *h, int64_t title)
{
    unsigned bit = inst_bit(title);
    size_t k = h->n;

    if (h->filter[bit >> 6] & (UINT64_C(1) << (bit & 63)))
        for (k = 0; k < h->n && h->v[k].title != title; k++)
            ;
    return k;
}

/* Replaces one device's install set: new titles are inserted, removed ones that came back are
 * revived, and active ones no longer reported get removed_at. Unchanged installs are not
 * written at all, which keeps a repeated sync cheap (their effective last_seen_at is the
 * asset's last_synced_at). */
static int
installs_step(struct store *st, const char *intune_device_id, const struct app_ref *apps, size_t n,
              struct errbuf *eb)
{
    const struct reconcile_ops *ops = st->ops->rec;
    struct reconcile *r = &st->rec;
    struct inst_set have = {0};
    int64_t *fresh = NULL; /* titles to insert */
    size_t nnew = 0, capnew = 0;
    int64_t asset_id = 0;
    int is_new = 0, active = 1, rc;

    rc = reconcile_need(st, 1, eb);
    if (rc != ERR_OK)
        return rc;
    if (r->asset_intune != NULL && strcmp(r->asset_intune, intune_device_id) == 0) {
        asset_id = r->asset_id;
        is_new = r->asset_new;
        active = r->asset_active;
        r->asset_new = 0; /* a second call for the same device looks its installs up */
    } else {
        rc = ops->asset_find(st, intune_device_id, &asset_id, &active, eb);
        if (rc == ERR_NOTFOUND)
            rc = err_set(eb, ERR_NOTFOUND, "device %s is not known in tenant %s", intune_device_id,
                         r->tenant);
        if (rc != ERR_OK)
            return rc;
    }
    /* A device inserted by this reconcile has no installs to look up. */
    if (!is_new)
        rc = ops->installs_each(st, asset_id, inst_read_cb, &have, eb);

    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        int64_t title = 0;
        size_t k;

        if ((rc = ops->title_id(st, &apps[i], &title, eb)) != ERR_OK)
            break;
        k = inst_find(&have, title);
        if (k < have.n && have.v[k].seen)
            continue; /* the same title twice on one device */
        if (k < have.n && !have.v[k].removed) {
            have.v[k].seen = 1;
            continue;
        }
        if (k < have.n) {
            rc = ops->install_revive(st, asset_id, title, eb);
            have.v[k].seen = 1;
            if (rc == ERR_OK && active)
                delta_title(st, title, 1);
            if (rc == ERR_OK)
                rc = feed(st, "install.added", asset_id, title, NULL, NULL, NULL, eb);
        } else {
            /* Inserted below, several rows per statement where the backend can. */
            inst_add(&have, title, 0, 1);
            if (nnew == capnew) {
                capnew = capnew ? capnew * 2 : 64;
                fresh = xrealloc(fresh, capnew * sizeof *fresh);
            }
            fresh[nnew++] = title;
            continue;
        }
        if (rc == ERR_OK)
            r->counts.installs_added++;
    }
    if (rc == ERR_OK && nnew > 0) {
        /* In key order: a new device's installs then go to the end of the table's b-tree
         * (SQLite appends there without descending from the root). */
        qsort(fresh, nnew, sizeof *fresh, cmp_i64);
        rc = ops->installs_insert(st, asset_id, fresh, nnew, eb);
        if (rc == ERR_OK)
            r->counts.installs_added += (int)nnew;
        for (size_t k = 0; rc == ERR_OK && active && k < nnew; k++)
            delta_title(st, fresh[k], 1);
        for (size_t k = 0; rc == ERR_OK && k < nnew; k++)
            rc = feed(st, "install.added", asset_id, fresh[k], NULL, NULL, NULL, eb);
    }
    for (size_t k = 0; rc == ERR_OK && k < have.n; k++) {
        if (have.v[k].seen || have.v[k].removed)
            continue;
        rc = ops->install_remove(st, asset_id, have.v[k].title, eb);
        if (rc == ERR_OK)
            r->counts.installs_removed++;
        if (rc == ERR_OK && active)
            delta_title(st, have.v[k].title, -1);
        if (rc == ERR_OK)
            rc = feed(st, "install.removed", asset_id, have.v[k].title, NULL, NULL, NULL, eb);
    }
    free(have.v);
    free(fresh);
    return rc;
}

int
reconcile_installs(struct store *st, const char *intune_device_id, const struct app_ref *apps,
                   size_t n, struct errbuf *eb)
{
    int rc = installs_step(st, intune_device_id, apps, n, eb);

    if (rc != ERR_OK && st->rec.active)
        st->rec.failed = 1;
    return rc;
}

/* ---- commit ---------------------------------------------------------------------------- */

int
reconcile_commit(struct store *st, int listing_complete, int installs_complete,
                 struct reconcile_counts *counts, struct errbuf *eb)
{
    const struct reconcile_ops *ops = st->ops->rec;
    struct reconcile *r = &st->rec;
    int rc;

    rc = reconcile_need(st, 0, eb);
    if (rc != ERR_OK)
        return rc;
    if (r->failed) {
        rc = err_set(eb, ERR_INVAL, "tenant %s: an earlier step failed, so nothing is committed",
                     r->tenant);
        goto out;
    }
    /* Retiring outside the tenant's transaction would retire every device. */
    if (ops->tx_alive != NULL && !ops->tx_alive(st)) {
        rc = err_set(eb, ERR_DB,
                     "tenant %s: the database ended the transaction, so nothing is "
                     "committed",
                     r->tenant);
        goto out;
    }
    /* Seen again: no longer missing (not a change anyone needs in the history). */
    rc = ops->missing_clear(st, eb);
    if (rc == ERR_OK && listing_complete)
        rc = ops->missing_mark(st, &r->counts.missing, eb);
    if (rc == ERR_OK && listing_complete && !st->rec_policy.hold) {
        int64_t *gone = NULL;
        size_t ngone = 0;

        rc = ops->retire(st, &r->counts.retired, &gone, &ngone, eb);
        /* Their installs stop counting for their titles. */
        for (size_t k = 0; rc == ERR_OK && k < ngone; k++)
            rc = delta_asset(st, gone[k], -1, eb);
        for (size_t k = 0; rc == ERR_OK && k < ngone; k++)
            rc = feed(st, "asset.retired", gone[k], 0, NULL, NULL, NULL, eb);
        free(gone);
    }
    /* Installs were replaced device by device in reconcile_installs. */
    (void)installs_complete;
    if (rc == ERR_OK)
        rc = ops->titles_count(st, eb);
    if (rc == ERR_OK && ops->client_status != NULL)
        rc = ops->client_status(st, eb);
    if (rc == ERR_OK)
        rc = ops->client_ok(st, eb);
    if (rc == ERR_OK)
        rc = ops->commit(st, eb);
out:
    if (rc != ERR_OK)
        ops->undo(st);
    else if (counts != NULL)
        *counts = r->counts;
    reconcile_reset(st);
    return rc;
}

void
reconcile_rollback(struct store *st)
{
    st->ops->rec->rollback(st);
    reconcile_reset(st);
}
