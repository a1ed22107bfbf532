/* pg_reconcile.c - PostgreSQL: the statements of a tenant's reconcile (reconcile.c decides) and
 * the retirement preview (pg_int.h). */
#include "pg_int.h"

#include "reconcile.h"

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

/* ---- reconcile: the statements of reconcile.c -------------------------------------------- */

static int
rec_begin(struct store *base, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;

    if (base->rec.active || pg_in_tx(g))
        return err_set(eb, ERR_INVAL, "a transaction is already open on this store");
    return pg_q_done(g, "BEGIN", NULL, eb, "starting the tenant's transaction", NULL);
}

static void
rec_undo(struct store *base)
{
    pg_rollback((struct pg *)base);
}

static int
rec_commit(struct store *base, struct errbuf *eb)
{
    return pg_q_done((struct pg *)base, "COMMIT", NULL, eb, "committing the tenant", NULL);
}

static int
rec_integration_owned(struct store *base, int64_t account_id, int64_t integration_id,
                      struct errbuf *eb)
{
    return pg_check_integration((struct pg *)base, account_id, integration_id, eb);
}

static int
rec_client_upsert(struct store *base, int64_t account_id, int64_t integration_id,
                  const struct client_info *ci, int64_t now, int64_t *client, int64_t *gen,
                  struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r = NULL;
    int rc = ERR_OK;

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
        *client = pg_r_i64(r, 0, 0, 0);
        *gen = pg_r_i64(r, 0, 1, 0);
    }
    PQclear(r);
    return rc;
}

static int
rec_device_find(struct store *base, const char *intune_id, int *found, int64_t *id,
                int64_t *retired, struct device *old, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc = ERR_OK;

    pg_p_i64(&p, base->rec.integration);
    pg_p_text(&p, base->rec.tenant);
    pg_p_text(&p, intune_id);
    r = pg_qc(g, g->dsql.find, &p, eb, "looking up the device", &rc);
    if (r == NULL)
        return rc;
    if (PQntuples(r) == 1) {
        *found = 1;
        *id = pg_r_i64(r, 0, 0, 0);
        *retired = pg_r_i64(r, 0, 1, TS_NULL);
        pg_r_device(r, 0, 2, old);
    }
    PQclear(r);
    return ERR_OK;
}

/* *id stays 0: the insert returns nothing, so the installs look the device up. */
static int
rec_device_insert(struct store *base, const struct device *d, const char *key, int64_t *id,
                  struct errbuf *eb)
{
    const struct reconcile *x = &base->rec;
    struct params p = {0};

    (void)id;
    pg_p_i64(&p, x->account);
    pg_p_i64(&p, x->client);
    pg_p_i64(&p, x->integration);
    pg_p_text(&p, x->tenant);
    pg_p_text(&p, d->intune_id);
    pg_p_device(&p, d);
    pg_p_text(&p, key);
    pg_p_i64(&p, x->now);
    pg_p_i64(&p, x->gen);
    return pg_q_done_c((struct pg *)base, ((struct pg *)base)->dsql.ins, &p, eb,
                       "saving a new device", NULL);
}

static int
rec_device_touch(struct store *base, int64_t id, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, base->rec.now);
    pg_p_i64(&p, base->rec.gen);
    pg_p_i64(&p, id);
    return pg_q_done_c(
        (struct pg *)base,
        "UPDATE hardware_asset SET last_synced_at = $1, last_seen_gen = $2 WHERE id = $3", &p, eb,
        "touching a device", NULL);
}

static int
rec_device_update(struct store *base, int64_t id, const struct device *d, const char *key,
                  struct errbuf *eb)
{
    struct params p = {0};

    pg_p_device(&p, d);
    pg_p_text(&p, key);
    pg_p_i64(&p, base->rec.now);
    pg_p_i64(&p, base->rec.gen);
    pg_p_i64(&p, base->rec.client);
    pg_p_i64(&p, id);
    return pg_q_done_c((struct pg *)base, ((struct pg *)base)->dsql.upd, &p, eb,
                       "updating a device", NULL);
}

static int
rec_change_insert(struct store *base, int64_t asset_id, const char *field, const char *oldv,
                  const char *newv, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, base->rec.account);
    pg_p_i64(&p, asset_id);
    pg_p_i64(&p, base->rec.now);
    pg_p_text(&p, field);
    pg_p_text(&p, oldv);
    pg_p_text(&p, newv);
    return pg_q_done_c((struct pg *)base,
                       "INSERT INTO asset_change (account_id, asset_id, at, field, old_value, "
                       "new_value) VALUES ($1, $2, $3, $4, $5, $6)",
                       &p, eb, "recording the asset history", NULL);
}

static int
rec_asset_find(struct store *base, const char *intune_id, int64_t *id, int *active,
               struct errbuf *eb)
{
    struct params p = {0};
    PGresult *r;
    int rc = ERR_OK;

    pg_p_i64(&p, base->rec.integration);
    pg_p_text(&p, base->rec.tenant);
    pg_p_text(&p, intune_id);
    r = pg_q((struct pg *)base,
             "SELECT id, retired_at IS NULL FROM hardware_asset WHERE integration_id = $1 AND "
             "tenant_id = $2 AND intune_device_id = $3",
             &p, eb, "looking up the device", &rc);
    if (r == NULL)
        return rc;
    if (PQntuples(r) == 1) {
        *id = pg_r_i64(r, 0, 0, 0);
        *active = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    } else {
        rc = ERR_NOTFOUND;
    }
    PQclear(r);
    return rc;
}

static int
rec_installs_each(struct store *base, int64_t asset_id,
                  void (*cb)(void *arg, int64_t title, int removed), void *arg, struct errbuf *eb)
{
    struct params p = {0};
    PGresult *r;
    int rc = ERR_OK;

    pg_p_i64(&p, asset_id);
    r = pg_qc((struct pg *)base,
              "SELECT title_id, removed_at IS NOT NULL FROM software_install WHERE asset_id = $1",
              &p, eb, "reading a device's installs", &rc);
    if (r == NULL)
        return rc;
    for (int i = 0; i < PQntuples(r); i++)
        cb(arg, pg_r_i64(r, i, 0, 0), strcmp(PQgetvalue(r, i, 1), "t") == 0);
    PQclear(r);
    return ERR_OK;
}

static int
rec_title_id(struct store *base, const struct app_ref *a, int64_t *id, struct errbuf *eb)
{
    struct params p = {0};
    PGresult *r;
    int rc = ERR_OK;

    pg_p_i64(&p, base->rec.account);
    pg_p_i64(&p, base->rec.client);
    pg_p_text(&p, a->name);
    pg_p_text(&p, a->version != NULL ? a->version : "");
    pg_p_text(&p, a->publisher != NULL ? a->publisher : "");
    pg_p_text(&p, a->platform != NULL ? a->platform : "");
    if (a->size_bytes < 0)
        pg_p_text(&p, NULL);
    else
        pg_p_i64(&p, a->size_bytes);
    r = pg_qc(
        (struct pg *)base,
        "INSERT INTO software_title (account_id, client_id, name, version, publisher, platform, "
        "size_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT (client_id, name, "
        "version, publisher, platform) DO UPDATE SET size_bytes = "
        "COALESCE(excluded.size_bytes, software_title.size_bytes) RETURNING id",
        &p, eb, "saving a software title", &rc);
    if (r == NULL)
        return rc;
    *id = pg_r_i64(r, 0, 0, 0);
    PQclear(r);
    return ERR_OK;
}

static int
rec_installs_insert(struct store *base, int64_t asset_id, const int64_t *titles, size_t n,
                    struct errbuf *eb)
{
    int rc = ERR_OK;

    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        struct params p = {0};

        pg_p_i64(&p, base->rec.account);
        pg_p_i64(&p, asset_id);
        pg_p_i64(&p, titles[i]);
        pg_p_i64(&p, base->rec.now);
        pg_p_i64(&p, base->rec.gen);
        rc = pg_q_done_c(
            (struct pg *)base,
            "INSERT INTO software_install (account_id, asset_id, title_id, first_seen_at, "
            "last_seen_at, removed_at, last_seen_gen) VALUES ($1, $2, $3, $4, $4, NULL, "
            "$5)",
            &p, eb, "saving an install", NULL);
    }
    return rc;
}

static int
rec_install_revive(struct store *base, int64_t asset_id, int64_t title, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, base->rec.now);
    pg_p_i64(&p, base->rec.gen);
    pg_p_i64(&p, asset_id);
    pg_p_i64(&p, title);
    return pg_q_done_c(
        (struct pg *)base,
        "UPDATE software_install SET last_seen_at = $1, last_seen_gen = $2, removed_at = "
        "NULL WHERE asset_id = $3 AND title_id = $4",
        &p, eb, "updating an install", NULL);
}

static int
rec_install_remove(struct store *base, int64_t asset_id, int64_t title, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, base->rec.now);
    pg_p_i64(&p, asset_id);
    pg_p_i64(&p, title);
    return pg_q_done_c((struct pg *)base,
                       "UPDATE software_install SET removed_at = $1, last_seen_at = $1 WHERE "
                       "asset_id = $2 AND title_id = $3",
                       &p, eb, "marking removed software", NULL);
}

static int
rec_missing_clear(struct store *base, struct errbuf *eb)
{
    struct params pm = {0};

    pg_p_i64(&pm, base->rec.client);
    pg_p_i64(&pm, base->rec.gen);
    return pg_q_done((struct pg *)base,
                     "UPDATE hardware_asset SET missing_since = NULL, missing_syncs = 0 "
                     "WHERE client_id = $1 AND missing_since IS NOT NULL AND retired_at IS NULL "
                     "AND last_seen_gen = $2",
                     &pm, eb, "clearing missing marks", NULL);
}

static int
rec_missing_mark(struct store *base, int64_t *n, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, base->rec.now);
    pg_p_i64(&p, base->rec.client);
    pg_p_i64(&p, base->rec.gen);
    return pg_q_done((struct pg *)base,
                     "UPDATE hardware_asset SET missing_since = COALESCE(missing_since, $1), "
                     "missing_syncs = missing_syncs + 1 WHERE client_id = $2 AND "
                     "retired_at IS NULL AND last_seen_gen < $3",
                     &p, eb, "marking missing devices", n);
}

/* The titles are recounted at commit (rec_titles_count): no ids needed. */
static int
rec_retire(struct store *base, int64_t *n, int64_t **gone, size_t *ngone, struct errbuf *eb)
{
    struct params pr = {0};
    PGresult *r;
    int rc = ERR_OK;

    pg_p_i64(&pr, base->rec.now);
    pg_p_i64(&pr, base->rec.client);
    pg_p_i64(&pr, base->rec.gen);
    pg_p_i64(&pr, base->rec_policy.after_syncs);
    pg_p_i64(&pr, base->rec.now - base->rec_policy.after_s);
    r = pg_q((struct pg *)base,
             "UPDATE hardware_asset SET retired_at = $1, updated_at = $1 WHERE client_id = $2 AND "
             "missing_since IS NOT NULL AND retired_at IS NULL AND last_seen_gen < $3 "
             "AND missing_syncs >= $4 AND missing_since <= $5 RETURNING id",
             &pr, eb, "retiring missing devices", &rc);
    if (r == NULL)
        return rc;
    *ngone = (size_t)PQntuples(r);
    *n = (int64_t)*ngone;
    if (*ngone > 0) {
        *gone = xcalloc(*ngone, sizeof **gone);
        for (size_t k = 0; k < *ngone; k++)
            (*gone)[k] = pg_r_i64(r, (int)k, 0, 0);
    }
    PQclear(r);
    return rc;
}

/* ---- change feed (schema 15): numbered at commit by the table's deferred trigger ---------- */

static int
rec_event_insert(struct store *base, const char *kind, int64_t asset_id, int64_t title_id,
                 const char *field, const char *oldv, const char *newv, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, base->rec.account);
    pg_p_i64(&p, base->rec.client);
    if (asset_id != 0)
        pg_p_i64(&p, asset_id);
    else
        pg_p_text(&p, NULL);
    if (title_id != 0)
        pg_p_i64(&p, title_id);
    else
        pg_p_text(&p, NULL);
    pg_p_i64(&p, base->rec.now);
    pg_p_text(&p, kind);
    pg_p_text(&p, field);
    pg_p_text(&p, oldv);
    pg_p_text(&p, newv);
    return pg_q_done_c((struct pg *)base,
                       "INSERT INTO change_event (account_id, client_id, asset_id, title_id, at, "
                       "kind, field, old_value, new_value) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                       "$8, $9)",
                       &p, eb, "recording a change", NULL);
}

static int
rec_asset_updated(struct store *base, int64_t asset_id, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, base->rec.now);
    pg_p_i64(&p, asset_id);
    return pg_q_done_c((struct pg *)base, "UPDATE hardware_asset SET updated_at = $1 WHERE id = $2",
                       &p, eb, "recording when a device changed", NULL);
}

static int
rec_client_status(struct store *base, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, base->rec.client);
    pg_p_i64(&p, base->rec.now);
    return pg_q_done_c((struct pg *)base,
                       "INSERT INTO change_event (account_id, client_id, at, kind, field, "
                       "old_value, new_value) SELECT account_id, id, $2, 'client.status', "
                       "'status', status, 'ok' FROM client WHERE id = $1 AND status <> 'ok'",
                       &p, eb, "recording the client's status change", NULL);
}

static int
rec_titles_count(struct store *base, struct errbuf *eb)
{
    const struct reconcile_counts *c = &base->rec.counts;
    struct params pc = {0};

    if (!(c->installs_added > 0 || c->installs_removed > 0 || c->retired > 0 || c->revived > 0))
        return ERR_OK;
    pg_p_i64(&pc, base->rec.client);
    return pg_q_done((struct pg *)base,
                     "UPDATE software_title t SET device_count = x.n FROM (SELECT t2.id, "
                     "count(h.id) AS n FROM software_title t2 LEFT JOIN software_install i "
                     "ON i.title_id = t2.id AND i.removed_at IS NULL LEFT JOIN hardware_asset h "
                     "ON h.id = i.asset_id AND h.retired_at IS NULL WHERE t2.client_id = $1 "
                     "GROUP BY t2.id) x WHERE t.id = x.id AND t.device_count <> x.n",
                     &pc, eb, "counting devices per software title", NULL);
}

static int
rec_client_ok(struct store *base, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, base->rec.now);
    pg_p_i64(&p, base->rec.client);
    pg_p_text(&p, base->rec_warn_code);
    pg_p_text(&p, base->rec_warn_message);
    pg_p_text(&p, base->rec_warn_remedy);
    return pg_q_done((struct pg *)base,
                     "UPDATE client SET status = 'ok', error_code = NULL, error_message = NULL, "
                     "error_remedy = NULL, error_request_id = NULL, error_date = NULL, "
                     "last_sync_at = $1, updated_at = $1, "
                     "device_count = (SELECT count(*) FROM hardware_asset WHERE client_id = $2 AND "
                     "retired_at IS NULL), software_count = (SELECT count(*) FROM software_title "
                     "WHERE client_id = $2 AND device_count > 0), warning_code = $3, "
                     "warning_message = $4, warning_remedy = $5 "
                     "WHERE id = $2",
                     &p, eb, "updating the client", NULL);
}

const struct reconcile_ops pg_reconcile_ops = {
    .begin = rec_begin,
    .undo = rec_undo,
    .rollback = rec_undo,
    .commit = rec_commit,
    .integration_owned = rec_integration_owned,
    .client_upsert = rec_client_upsert,
    .device_find = rec_device_find,
    .device_insert = rec_device_insert,
    .device_touch = rec_device_touch,
    .device_update = rec_device_update,
    .change_insert = rec_change_insert,
    .event_insert = rec_event_insert,
    .asset_updated = rec_asset_updated,
    .client_status = rec_client_status,
    .asset_find = rec_asset_find,
    .installs_each = rec_installs_each,
    .title_id = rec_title_id,
    .installs_insert = rec_installs_insert,
    .install_revive = rec_install_revive,
    .install_remove = rec_install_remove,
    .missing_clear = rec_missing_clear,
    .missing_mark = rec_missing_mark,
    .retire = rec_retire,
    .titles_count = rec_titles_count,
    .client_ok = rec_client_ok,
};

int
pg_retire_preview(struct store *base, int64_t *would_retire, int64_t *active, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc = reconcile_need(base, 0, eb);

    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, base->rec.client);
    pg_p_i64(&p, base->rec.gen);
    /* As on SQLite: unless one listing without waiting is the policy, only marked devices
     * can retire. */
    if (base->rec_policy.after_syncs <= 1 && base->rec_policy.after_s <= 0) {
        r = pg_q(g,
                 "SELECT count(*), count(*) FILTER (WHERE last_seen_gen < $2) FROM hardware_asset "
                 "WHERE client_id = $1 AND retired_at IS NULL",
                 &p, eb, "counting devices to retire", &rc);
    } else {
        pg_p_i64(&p, base->rec_policy.after_syncs);
        pg_p_i64(&p, base->rec.now);
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
