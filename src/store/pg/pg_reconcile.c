/* pg_reconcile.c - PostgreSQL: one tenant's reconcile and retirement (pg_int.h). */
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

/* ---- reconcile --------------------------------------------------------------------------- */

static void
rec_reset(struct pg *g)
{
    g->rec_active = 0;
    g->rec_failed = 0;
    XFREE(g->rec_tenant);
    memset(&g->rec_counts, 0, sizeof g->rec_counts);
}

int
pg_reconcile_begin(struct store *base, int64_t account_id, int64_t integration_id,
                   const struct client_info *ci, int64_t now, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r = NULL;
    int rc;

    if (g->rec_active || pg_in_tx(g))
        return err_set(eb, ERR_INVAL, "a transaction is already open on this store");
    rc = pg_q_done(g, "BEGIN", NULL, eb, "starting the tenant's transaction", NULL);
    if (rc != ERR_OK)
        return rc;
    rc = pg_check_integration(g, account_id, integration_id, eb);
    if (rc != ERR_OK)
        goto out;
    pg_p_i64(&p, account_id);
    pg_p_i64(&p, integration_id);
    pg_p_text(&p, ci->tenant_id);
    pg_p_text(&p, ci->name);
    pg_p_text(&p, ci->default_domain);
    pg_p_text(&p, ci->source);
    pg_p_i64(&p, now);
    /* The upsert locks the client row, so two syncs of one tenant serialise here. */
    r = pg_q(g,
             "INSERT INTO client (account_id, integration_id, tenant_id, name, default_domain, "
             "source, sync_gen, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, "
             "COALESCE($6, 'partner_center'), 1, $7, $7) ON CONFLICT (integration_id, tenant_id) "
             "DO UPDATE SET name = COALESCE(excluded.name, client.name), "
             "default_domain = COALESCE(excluded.default_domain, client.default_domain), "
             "source = COALESCE($6, client.source), sync_gen = client.sync_gen + 1, "
             "updated_at = excluded.updated_at RETURNING id, sync_gen",
             &p, eb, "saving the client", &rc);
    if (r != NULL) {
        g->rec_client = pg_r_i64(r, 0, 0, 0);
        g->rec_gen = pg_r_i64(r, 0, 1, 0);
    }
    PQclear(r);
out:
    if (rc != ERR_OK) {
        pg_rollback(g);
        return rc;
    }
    rec_reset(g);
    g->rec_active = 1;
    g->rec_account = account_id;
    g->rec_integration = integration_id;
    g->rec_now = now;
    g->rec_tenant = xstrdup(ci->tenant_id);
    return ERR_OK;
}

struct change_ctx {
    struct pg *g;
    int64_t asset_id;
    struct errbuf *eb;
};

static int
record_change(void *arg, const char *field, const char *oldv, const char *newv)
{
    struct change_ctx *cx = arg;
    struct params p = {0};

    pg_p_i64(&p, cx->g->rec_account);
    pg_p_i64(&p, cx->asset_id);
    pg_p_i64(&p, cx->g->rec_now);
    pg_p_text(&p, field);
    pg_p_text(&p, oldv);
    pg_p_text(&p, newv);
    return pg_q_done_c(cx->g,
                       "INSERT INTO asset_change (account_id, asset_id, at, field, old_value, "
                       "new_value) VALUES ($1, $2, $3, $4, $5, $6)",
                       &p, cx->eb, "recording the asset history", NULL);
}

static int
need_rec(struct pg *g, struct errbuf *eb)
{
    if (!g->rec_active)
        return err_set(eb, ERR_INVAL, "no tenant reconcile is in progress");
    return ERR_OK;
}

static int
pg_reconcile_device_step(struct store *base, const struct device *d, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    struct device old;
    PGresult *r;
    char *key = NULL;
    int64_t id = 0, retired = TS_NULL;
    int found = 0, rc;

    device_init(&old);
    rc = need_rec(g, eb);
    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, g->rec_integration);
    pg_p_text(&p, g->rec_tenant);
    pg_p_text(&p, d->intune_id);
    r = pg_qc(g, g->dsql.find, &p, eb, "looking up the device", &rc);
    if (r == NULL)
        goto out;
    if (PQntuples(r) == 1) {
        found = 1;
        id = pg_r_i64(r, 0, 0, 0);
        retired = pg_r_i64(r, 0, 1, TS_NULL);
        pg_r_device(r, 0, 2, &old);
        old.intune_id = xstrdup(d->intune_id);
    }
    PQclear(r);
    key = store_serial_key(d->serial);
    p.n = 0;
    if (!found) {
        pg_p_i64(&p, g->rec_account);
        pg_p_i64(&p, g->rec_client);
        pg_p_i64(&p, g->rec_integration);
        pg_p_text(&p, g->rec_tenant);
        pg_p_text(&p, d->intune_id);
        pg_p_device(&p, d);
        pg_p_text(&p, key);
        pg_p_i64(&p, g->rec_now);
        pg_p_i64(&p, g->rec_gen);
        rc = pg_q_done_c(g, g->dsql.ins, &p, eb, "saving a new device", NULL);
        if (rc == ERR_OK)
            g->rec_counts.created++;
        goto out;
    }
    if (retired == TS_NULL && device_equal(&old, d) &&
        store_device_diff(&old, d, NULL, NULL) == 0) {
        pg_p_i64(&p, g->rec_now);
        pg_p_i64(&p, g->rec_gen);
        pg_p_i64(&p, id);
        rc = pg_q_done_c(
            g, "UPDATE hardware_asset SET last_synced_at = $1, last_seen_gen = $2 WHERE id = $3",
            &p, eb, "touching a device", NULL);
        if (rc == ERR_OK)
            g->rec_counts.unchanged++;
        goto out;
    }
    pg_p_device(&p, d);
    pg_p_text(&p, key);
    pg_p_i64(&p, g->rec_now);
    pg_p_i64(&p, g->rec_gen);
    pg_p_i64(&p, g->rec_client);
    pg_p_i64(&p, id);
    rc = pg_q_done_c(g, g->dsql.upd, &p, eb, "updating a device", NULL);
    if (rc != ERR_OK)
        goto out;
    {
        struct change_ctx cx = {g, id, eb};
        int n = store_device_diff(&old, d, record_change, &cx);
        if (n < 0) {
            rc = n;
            goto out;
        }
    }
    g->rec_counts.updated++;
    if (retired != TS_NULL)
        g->rec_counts.revived++;
out:
    free(key);
    device_clear(&old);
    return rc;
}

static int
upsert_install(struct pg *g, int64_t asset_id, const struct app_ref *a, struct errbuf *eb)
{
    struct params p = {0};
    PGresult *r;
    int64_t title = 0, removed = TS_NULL;
    int rc, found = 0;

    pg_p_i64(&p, g->rec_account);
    pg_p_i64(&p, g->rec_client);
    pg_p_text(&p, a->name);
    pg_p_text(&p, a->version != NULL ? a->version : "");
    pg_p_text(&p, a->publisher != NULL ? a->publisher : "");
    pg_p_text(&p, a->platform != NULL ? a->platform : "");
    if (a->size_bytes < 0)
        pg_p_text(&p, NULL);
    else
        pg_p_i64(&p, a->size_bytes);
    r = pg_qc(
        g,
        "INSERT INTO software_title (account_id, client_id, name, version, publisher, platform, "
        "size_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (client_id, name, "
        "version, publisher, platform) DO UPDATE SET size_bytes = "
        "COALESCE(excluded.size_bytes, software_title.size_bytes) RETURNING id",
        &p, eb, "saving a software title", &rc);
    if (r == NULL)
        return rc;
    title = pg_r_i64(r, 0, 0, 0);
    PQclear(r);

    p.n = 0;
    pg_p_i64(&p, asset_id);
    pg_p_i64(&p, title);
    r = pg_qc(g, "SELECT removed_at FROM software_install WHERE asset_id = $1 AND title_id = $2",
              &p, eb, "looking up an install", &rc);
    if (r == NULL)
        return rc;
    if (PQntuples(r) == 1) {
        found = 1;
        removed = pg_r_i64(r, 0, 0, TS_NULL);
    }
    PQclear(r);
    p.n = 0;
    if (!found) {
        pg_p_i64(&p, g->rec_account);
        pg_p_i64(&p, asset_id);
        pg_p_i64(&p, title);
        pg_p_i64(&p, g->rec_now);
        pg_p_i64(&p, g->rec_gen);
        rc = pg_q_done_c(
            g,
            "INSERT INTO software_install (account_id, asset_id, title_id, first_seen_at, "
            "last_seen_at, removed_at, last_seen_gen) VALUES ($1, $2, $3, $4, $4, NULL, "
            "$5)",
            &p, eb, "saving an install", NULL);
        if (rc == ERR_OK)
            g->rec_counts.installs_added++;
        return rc;
    }
    pg_p_i64(&p, g->rec_now);
    pg_p_i64(&p, g->rec_gen);
    pg_p_i64(&p, asset_id);
    pg_p_i64(&p, title);
    rc = pg_q_done_c(
        g,
        "UPDATE software_install SET last_seen_at = $1, last_seen_gen = $2, removed_at = "
        "NULL WHERE asset_id = $3 AND title_id = $4",
        &p, eb, "updating an install", NULL);
    if (rc == ERR_OK && removed != TS_NULL)
        g->rec_counts.installs_added++;
    return rc;
}

static int
pg_reconcile_installs_step(struct store *base, const char *intune_device_id,
                           const struct app_ref *apps, size_t n, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int64_t asset_id = 0;
    int rc;

    rc = need_rec(g, eb);
    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, g->rec_integration);
    pg_p_text(&p, g->rec_tenant);
    pg_p_text(&p, intune_device_id);
    r = pg_q(g,
             "SELECT id FROM hardware_asset WHERE integration_id = $1 AND tenant_id = $2 AND "
             "intune_device_id = $3",
             &p, eb, "looking up the device", &rc);
    if (r != NULL && PQntuples(r) == 1)
        asset_id = pg_r_i64(r, 0, 0, 0);
    else if (r != NULL)
        rc = err_set(eb, ERR_NOTFOUND, "device %s is not known in tenant %s", intune_device_id,
                     g->rec_tenant);
    PQclear(r);
    for (size_t i = 0; rc == ERR_OK && i < n; i++)
        rc = upsert_install(g, asset_id, &apps[i], eb);
    if (rc == ERR_OK) {
        /* This device's set is replaced: what it no longer reports is removed (kept). */
        struct params pr = {0};
        int64_t removed = 0;

        pg_p_i64(&pr, g->rec_now);
        pg_p_i64(&pr, asset_id);
        pg_p_i64(&pr, g->rec_gen);
        rc = pg_q_done(g,
                       "UPDATE software_install SET removed_at = $1, last_seen_at = $1 WHERE "
                       "asset_id = $2 AND removed_at IS NULL AND last_seen_gen < $3",
                       &pr, eb, "marking removed software", &removed);
        g->rec_counts.installs_removed += removed;
    }
    return rc;
}

int
pg_reconcile_commit(struct store *base, int listing_complete, int installs_complete,
                    struct reconcile_counts *counts, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0}, pm = {0};
    int rc;

    rc = need_rec(g, eb);
    if (rc != ERR_OK)
        return rc;
    if (g->rec_failed) {
        rc = err_set(eb, ERR_INVAL, "tenant %s: an earlier step failed, so nothing is committed",
                     g->rec_tenant);
        goto out;
    }
    pg_p_i64(&p, g->rec_now);
    pg_p_i64(&p, g->rec_client);
    pg_p_i64(&p, g->rec_gen);
    /* Seen again: no longer missing (not a change anyone needs in the history). */
    pg_p_i64(&pm, g->rec_client);
    pg_p_i64(&pm, g->rec_gen);
    rc = pg_q_done(g,
                   "UPDATE hardware_asset SET missing_since = NULL, missing_syncs = 0 "
                   "WHERE client_id = $1 AND missing_since IS NOT NULL AND retired_at IS NULL "
                   "AND last_seen_gen = $2",
                   &pm, eb, "clearing missing marks", NULL);
    if (rc != ERR_OK)
        goto out;
    if (listing_complete) {
        rc = pg_q_done(g,
                       "UPDATE hardware_asset SET missing_since = COALESCE(missing_since, $1), "
                       "missing_syncs = missing_syncs + 1 WHERE client_id = $2 AND "
                       "retired_at IS NULL AND last_seen_gen < $3",
                       &p, eb, "marking missing devices", &g->rec_counts.missing);
        if (rc != ERR_OK)
            goto out;
    }
    if (listing_complete && !base->rec_policy.hold) {
        struct params pr = {0};

        pg_p_i64(&pr, g->rec_now);
        pg_p_i64(&pr, g->rec_client);
        pg_p_i64(&pr, g->rec_gen);
        pg_p_i64(&pr, base->rec_policy.after_syncs);
        pg_p_i64(&pr, g->rec_now - base->rec_policy.after_s);
        rc = pg_q_done(g,
                       "UPDATE hardware_asset SET retired_at = $1 WHERE client_id = $2 AND "
                       "missing_since IS NOT NULL AND retired_at IS NULL AND last_seen_gen < $3 "
                       "AND missing_syncs >= $4 AND missing_since <= $5",
                       &pr, eb, "retiring missing devices", &g->rec_counts.retired);
        if (rc != ERR_OK)
            goto out;
    }
    /* Installs were replaced device by device in pg_reconcile_installs. */
    (void)installs_complete;
    if (g->rec_counts.installs_added > 0 || g->rec_counts.installs_removed > 0 ||
        g->rec_counts.retired > 0 || g->rec_counts.revived > 0) {
        struct params pc = {0};

        pg_p_i64(&pc, g->rec_client);
        rc = pg_q_done(g,
                       "UPDATE software_title t SET device_count = x.n FROM (SELECT t2.id, "
                       "count(h.id) AS n FROM software_title t2 LEFT JOIN software_install i "
                       "ON i.title_id = t2.id AND i.removed_at IS NULL LEFT JOIN hardware_asset h "
                       "ON h.id = i.asset_id AND h.retired_at IS NULL WHERE t2.client_id = $1 "
                       "GROUP BY t2.id) x WHERE t.id = x.id AND t.device_count <> x.n",
                       &pc, eb, "counting devices per software title", NULL);
        if (rc != ERR_OK)
            goto out;
    }
    p.n = 2;
    pg_p_text(&p, base->rec_warn_code);
    pg_p_text(&p, base->rec_warn_message);
    pg_p_text(&p, base->rec_warn_remedy);
    rc = pg_q_done(g,
                   "UPDATE client SET status = 'ok', error_code = NULL, error_message = NULL, "
                   "error_remedy = NULL, error_request_id = NULL, error_date = NULL, "
                   "last_sync_at = $1, updated_at = $1, "
                   "device_count = (SELECT count(*) FROM hardware_asset WHERE client_id = $2 AND "
                   "retired_at IS NULL), software_count = (SELECT count(*) FROM software_title "
                   "WHERE client_id = $2 AND device_count > 0), warning_code = $3, "
                   "warning_message = $4, warning_remedy = $5 "
                   "WHERE id = $2",
                   &p, eb, "updating the client", NULL);
    if (rc == ERR_OK)
        rc = pg_q_done(g, "COMMIT", NULL, eb, "committing the tenant", NULL);
out:
    if (rc != ERR_OK)
        pg_rollback(g);
    else if (counts != NULL)
        *counts = g->rec_counts;
    rec_reset(g);
    return rc;
}

int
pg_retire_preview(struct store *base, int64_t *would_retire, int64_t *active, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc = need_rec(g, eb);

    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, g->rec_client);
    pg_p_i64(&p, g->rec_gen);
    /* As on SQLite: unless one listing without waiting is the policy, only marked devices
     * can retire. */
    if (base->rec_policy.after_syncs <= 1 && base->rec_policy.after_s <= 0) {
        r = pg_q(g,
                 "SELECT count(*), count(*) FILTER (WHERE last_seen_gen < $2) FROM hardware_asset "
                 "WHERE client_id = $1 AND retired_at IS NULL",
                 &p, eb, "counting devices to retire", &rc);
    } else {
        pg_p_i64(&p, base->rec_policy.after_syncs);
        pg_p_i64(&p, g->rec_now);
        pg_p_i64(&p, base->rec_policy.after_s);
        r = pg_q(g,
                 "SELECT (SELECT count(*) FROM hardware_asset WHERE client_id = $1 AND retired_at "
                 "IS NULL), (SELECT count(*) FROM hardware_asset WHERE client_id = $1 AND "
                 "missing_since IS NOT NULL AND retired_at IS NULL AND last_seen_gen < $2 AND "
                 "missing_syncs + 1 >= $3 AND missing_since <= $4::bigint - $5::bigint)",
                 &p, eb, "counting devices to retire", &rc);
    }
    if (r == NULL)
        return rc;
    *active = pg_r_i64(r, 0, 0, 0);
    *would_retire = pg_r_i64(r, 0, 1, 0);
    PQclear(r);
    return ERR_OK;
}

void
pg_reconcile_rollback(struct store *base)
{
    struct pg *g = (struct pg *)base;

    pg_rollback(g);
    rec_reset(g);
}

int
pg_reconcile_device(struct store *base, const struct device *d, struct errbuf *eb)
{
    struct pg *x = (struct pg *)base;
    int rc = pg_reconcile_device_step(base, d, eb);

    if (rc != ERR_OK && x->rec_active)
        x->rec_failed = 1;
    return rc;
}

int
pg_reconcile_installs(struct store *base, const char *intune_device_id, const struct app_ref *apps,
                      size_t n, struct errbuf *eb)
{
    struct pg *x = (struct pg *)base;
    int rc = pg_reconcile_installs_step(base, intune_device_id, apps, n, eb);

    if (rc != ERR_OK && x->rec_active)
        x->rec_failed = 1;
    return rc;
}
