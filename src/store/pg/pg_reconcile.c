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
#include "hash.h"
#include "log.h"
#include "mem.h"

/* ---- the tenant's stored state, read once (struct pg_rec) ---------------------------------
 *
 * Per row, a statement is a round trip; so the reconcile reads the tenant's devices, titles and
 * (when a device's installs are first needed) installs in one statement each, answers the
 * core's lookups from memory and sends its writes in libpq's pipeline mode, reading their
 * results in groups (pg_pipe_sync). Whatever this reconcile wrote already (a device listed
 * twice) is looked up in the database again, after a sync, so the answers stay exact. */

/* A string-keyed open-addressing table (key -> value), keys owned. */
struct smap {
    char **key;
    int64_t *val;
    size_t n, mask; /* mask + 1 slots, a power of two */
};

static void
smap_free(struct smap *m)
{
    for (size_t i = 0; m->key != NULL && i <= m->mask; i++)
        free(m->key[i]);
    free(m->key);
    free(m->val);
    memset(m, 0, sizeof *m);
}

static size_t
smap_slot(const struct smap *m, const char *k, size_t len)
{
    size_t i = (size_t)hash_bytes(k, len) & m->mask;

    while (m->key[i] != NULL && (strlen(m->key[i]) != len || memcmp(m->key[i], k, len) != 0))
        i = (i + 1) & m->mask;
    return i;
}

/* 1 and *v when k is in the table. */
static int
smap_get(const struct smap *m, const char *k, size_t len, int64_t *v)
{
    size_t i;

    if (m->key == NULL)
        return 0;
    i = smap_slot(m, k, len);
    if (m->key[i] == NULL)
        return 0;
    *v = m->val[i];
    return 1;
}

static void
smap_put(struct smap *m, const char *k, size_t len, int64_t v)
{
    size_t i;

    if ((m->n + 1) * 2 > (m->key != NULL ? m->mask + 1 : 0)) {
        struct smap old = *m;
        size_t ns = old.key != NULL ? (old.mask + 1) * 2 : 64;

        m->key = xcalloc(ns, sizeof *m->key);
        m->val = xcalloc(ns, sizeof *m->val);
        m->mask = ns - 1;
        for (size_t j = 0; old.key != NULL && j <= old.mask; j++) {
            if (old.key[j] == NULL)
                continue;
            i = smap_slot(m, old.key[j], strlen(old.key[j]));
            m->key[i] = old.key[j];
            m->val[i] = old.val[j];
        }
        free(old.key);
        free(old.val);
    }
    i = smap_slot(m, k, len);
    if (m->key[i] == NULL) {
        m->key[i] = xmalloc(len + 1);
        memcpy(m->key[i], k, len);
        m->key[i][len] = '\0';
        m->n++;
    }
    m->val[i] = v;
}

struct pinst {
    int64_t asset, title;
    int removed;
};

/* Flags of a stored device (pg_rec.flag). */
#define PF_DEV  1 /* its row was written in this reconcile */
#define PF_INST 2 /* its installs were */

struct pg_rec {
    /* the tenant's devices as stored: id, retired_at, device columns, intune id */
    PGresult *devs;
    unsigned char *flag; /* per row of devs */
    struct smap dev;     /* intune id -> row of devs, or -(k + 1) for new device k */
    char **fresh;        /* new devices' intune ids; their ids are -(k + 1) until read back */
    int64_t *fresh_id;   /* the id read back (0: not yet) */
    size_t nfresh, capfresh;
    int64_t last_id; /* the device found last and its row (-1: none) */
    int last_row;
    /* the tenant's installs, sorted by asset */
    struct pinst *inst;
    size_t ninst;
    /* the client's titles: key -> index into title_id / title_size */
    struct smap title;
    /* what prec_read queued (reading) and was read (loaded); the integration check's answer */
    int reading, loaded;
    PGresult *inst_r, *titles_r, *own;
    int64_t *title_id, *title_size;
    size_t ntitle, captitle;
    /* titles new in this reconcile: their id is -(j + 1) here (the database gives the real one
     * to the rows that name them: see rec_installs_insert); j indexes the title table */
    char **new_name, **new_version, **new_publisher, **new_platform;
    size_t nnew, capnew;
    /* devices seen unchanged: touched together at commit */
    int64_t *touch;
    size_t ntouch, captouch;
};

static void
prec_free(struct pg_rec *x)
{
    if (x == NULL)
        return;
    PQclear(x->devs);
    PQclear(x->inst_r);
    PQclear(x->titles_r);
    PQclear(x->own);
    free(x->flag);
    smap_free(&x->dev);
    for (size_t k = 0; k < x->nfresh; k++)
        free(x->fresh[k]);
    free(x->fresh);
    free(x->fresh_id);
    free(x->inst);
    smap_free(&x->title);
    for (size_t j = 0; j < x->nnew; j++) {
        free(x->new_name[j]);
        free(x->new_version[j]);
        free(x->new_publisher[j]);
        free(x->new_platform[j]);
    }
    free(x->new_name);
    free(x->new_version);
    free(x->new_publisher);
    free(x->new_platform);
    free(x->title_id);
    free(x->title_size);
    free(x->touch);
    free(x);
}

static void
rec_reset(struct store *base)
{
    struct pg *g = (struct pg *)base;

    /* Queued statements may still fill places in it. */
    if (g->conn != NULL)
        (void)pg_pipe_sync(g, NULL);
    prec_free(g->prec);
    g->prec = NULL;
}

/* A failure reported by a pipelined statement fails the reconcile (the transaction is
 * aborted). */
static int
pipe_rc(struct store *base, int rc)
{
    if (rc != ERR_OK && base->rec.active)
        base->rec.failed = 1;
    return rc;
}

static struct pg_rec *
prec_get(struct pg *g)
{
    if (g->prec == NULL) {
        g->prec = xcalloc(1, sizeof *g->prec);
        g->prec->last_row = -1;
    }
    return g->prec;
}

static int
cmp_pinst(const void *a, const void *b)
{
    const struct pinst *x = a, *y = b;

    return (x->asset > y->asset) - (x->asset < y->asset);
}

/* name, version, publisher, platform joined by \x1f (none of them holds one: they are names
 * read from JSON, and a control character there would only make two titles share a key, which
 * the database then tells apart: see rec_title_id). */
static char *
title_key(const char *name, const char *version, const char *publisher, const char *platform,
          size_t *len)
{
    char *k = xasprintf("%s\x1f%s\x1f%s\x1f%s", name, version != NULL ? version : "",
                        publisher != NULL ? publisher : "", platform != NULL ? platform : "");

    *len = strlen(k);
    return k;
}

static void
title_add(struct pg_rec *x, const char *key, size_t len, int64_t id, int64_t size)
{
    if (x->ntitle == x->captitle) {
        x->captitle = x->captitle ? x->captitle * 2 : 64;
        x->title_id = xrealloc(x->title_id, x->captitle * sizeof *x->title_id);
        x->title_size = xrealloc(x->title_size, x->captitle * sizeof *x->title_size);
    }
    x->title_id[x->ntitle] = id;
    x->title_size[x->ntitle] = size;
    smap_put(&x->title, key, len, (int64_t)x->ntitle);
    x->ntitle++;
}

/* Queues the reads of what the tenant has stored: its devices, its installs and its client's
 * titles (pg_pipe_sync then fills them in, prec_take files them). */
static int
prec_read(struct pg *g, int64_t integration, const char *tenant, struct errbuf *eb)
{
    struct pg_rec *x = prec_get(g);
    struct params p = {0};
    int rc;

    if (g->rec_devs_sql == NULL)
        g->rec_devs_sql = xasprintf("SELECT h.id, h.retired_at, %s, h.intune_device_id FROM "
                                    "hardware_asset h WHERE h.integration_id = $1 AND "
                                    "h.tenant_id = $2",
                                    g->dsql.cols_h);
    pg_p_i64(&p, integration);
    pg_p_text(&p, tenant);
    rc = pg_pipe_send_r(g, g->rec_devs_sql, &p, "reading the tenant's devices", &x->devs, NULL, eb);
    if (rc == ERR_OK)
        rc = pg_pipe_send_r(g,
                            "SELECT i.asset_id, i.title_id, i.removed_at IS NOT NULL FROM "
                            "software_install i JOIN hardware_asset h ON h.id = i.asset_id WHERE "
                            "h.integration_id = $1 AND h.tenant_id = $2",
                            &p, "reading the tenant's installs", &x->inst_r, NULL, eb);
    if (rc == ERR_OK)
        rc = pg_pipe_send_r(g,
                            "SELECT id, name, version, publisher, platform, size_bytes FROM "
                            "software_title WHERE client_id = (SELECT id FROM client WHERE "
                            "integration_id = $1 AND tenant_id = $2)",
                            &p, "reading the client's software titles", &x->titles_r, NULL, eb);
    x->reading = rc == ERR_OK;
    return rc;
}

/* Files what prec_read read (after the sync); ERR_DB when a read did not come back. */
static int
prec_take(struct pg *g, struct errbuf *eb)
{
    struct pg_rec *x = g->prec;
    int ncol;

    x->reading = 0;
    if (x->devs == NULL || x->inst_r == NULL || x->titles_r == NULL)
        return err_set(eb, ERR_DB, "reading the tenant's stored state: no answer");
    ncol = PQnfields(x->devs);
    x->flag = xcalloc((size_t)PQntuples(x->devs) + 1, 1);
    for (int i = 0; i < PQntuples(x->devs); i++) {
        const char *k = PQgetvalue(x->devs, i, ncol - 1);
        smap_put(&x->dev, k, strlen(k), i);
    }
    x->ninst = (size_t)PQntuples(x->inst_r);
    x->inst = xcalloc(x->ninst + 1, sizeof *x->inst);
    for (size_t i = 0; i < x->ninst; i++) {
        x->inst[i].asset = pg_r_i64(x->inst_r, (int)i, 0, 0);
        x->inst[i].title = pg_r_i64(x->inst_r, (int)i, 1, 0);
        x->inst[i].removed = PQgetvalue(x->inst_r, (int)i, 2)[0] == 't';
    }
    PQclear(x->inst_r);
    x->inst_r = NULL;
    qsort(x->inst, x->ninst, sizeof *x->inst, cmp_pinst);
    for (int i = 0; i < PQntuples(x->titles_r); i++) {
        size_t len;
        const PGresult *r = x->titles_r;
        char *k = title_key(PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
                            PQgetvalue(r, i, 4), &len);

        title_add(x, k, len, pg_r_i64(r, i, 0, 0), pg_r_i64(r, i, 5, -1));
        free(k);
    }
    PQclear(x->titles_r);
    x->titles_r = NULL;
    x->loaded = 1;
    return ERR_OK;
}

/* The tenant's stored state, read now unless it was with the client row. */
static int
prec_load(struct pg *g, struct errbuf *eb)
{
    struct pg_rec *x = prec_get(g);
    int rc;

    if (x->loaded)
        return ERR_OK;
    rc = prec_read(g, g->base.rec.integration, g->base.rec.tenant, eb);
    if (rc == ERR_OK)
        rc = pg_pipe_sync(g, eb);
    if (rc == ERR_OK)
        rc = prec_take(g, eb);
    return pipe_rc(&g->base, rc);
}

/* The real id of new device -(k + 1), read back after a sync. */
static int
fresh_real(struct pg *g, int64_t id, int64_t *real, struct errbuf *eb)
{
    struct pg_rec *x = g->prec;
    size_t k = (size_t)(-id - 1);
    struct params p = {0};
    PGresult *r;
    int rc = ERR_OK;

    if (id >= 0) {
        *real = id;
        return ERR_OK;
    }
    ASSERT(k < x->nfresh);
    if (x->fresh_id[k] == 0) {
        pg_p_i64(&p, g->base.rec.integration);
        pg_p_text(&p, g->base.rec.tenant);
        pg_p_text(&p, x->fresh[k]);
        r = pg_q(g,
                 "SELECT id FROM hardware_asset WHERE integration_id = $1 AND tenant_id = $2 "
                 "AND intune_device_id = $3",
                 &p, eb, "looking up a new device", &rc);
        if (r == NULL)
            return pipe_rc(&g->base, rc);
        if (PQntuples(r) == 1)
            x->fresh_id[k] = pg_r_i64(r, 0, 0, 0);
        PQclear(r);
        if (x->fresh_id[k] == 0)
            return err_set(eb, ERR_NOTFOUND, "new device %s is not in the database", x->fresh[k]);
    }
    *real = x->fresh_id[k];
    return ERR_OK;
}

/* ---- reconcile: the statements of reconcile.c -------------------------------------------- */

/* The tenant's first statements go in one round trip: BEGIN, the integration check, the
 * client row and the reads of its stored state (prec_read). */
static int
rec_begin(struct store *base, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;

    if (base->rec.active || pg_in_tx(g))
        return err_set(eb, ERR_INVAL, "a transaction is already open on this store");
    return pg_pipe_send(g, "BEGIN", NULL, "starting the tenant's transaction", eb);
}

static void
rec_undo(struct store *base)
{
    pg_rollback((struct pg *)base);
}

static int
rec_commit(struct store *base, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    int rc = pg_pipe_send(g, "COMMIT", NULL, "committing the tenant", eb);

    /* Every statement since the retirement preview, the counts of missing_mark and retire. */
    if (rc == ERR_OK)
        rc = pg_pipe_sync(g, eb);
    if (rc == ERR_OK && pg_in_tx(g))
        rc = err_set(eb, ERR_DB, "committing the tenant: %s kept the transaction open", g->label);
    return rc;
}

static int
rec_integration_owned(struct store *base, int64_t account_id, int64_t integration_id,
                      struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};

    pg_p_i64(&p, integration_id);
    pg_p_i64(&p, account_id);
    return pg_pipe_send_r(g, "SELECT 1 FROM integration WHERE id = $1 AND account_id = $2", &p,
                          "reading the integration", &prec_get(g)->own, NULL, eb);
}

static int
rec_client_upsert(struct store *base, int64_t account_id, int64_t integration_id,
                  const struct client_info *ci, int64_t now, int64_t *client, int64_t *gen,
                  struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct pg_rec *x = prec_get(g);
    struct params p = {0};
    PGresult *r = NULL;
    int rc;

    pg_p_i64(&p, account_id);
    pg_p_i64(&p, integration_id);
    pg_p_text(&p, ci->tenant_id);
    pg_p_text(&p, ci->name);
    pg_p_text(&p, ci->default_domain);
    pg_p_text(&p, ci->source);
    pg_p_i64(&p, now);
    /* The upsert locks the client row, so two syncs of one tenant serialise here (and what
     * the reconcile reads of the tenant below stays true until its commit). */
    rc = pg_pipe_send_r(
        g,
        "INSERT INTO client (account_id, integration_id, tenant_id, name, default_domain, "
        "source, sync_gen, created_at, updated_at) SELECT $1::bigint, $2::bigint, $3::text, "
        "$4::text, $5::text, COALESCE($6::text, 'partner_center'), 1, $7::bigint, $7::bigint "
        "WHERE EXISTS (SELECT 1 FROM integration "
        "WHERE id = $2 AND account_id = $1) ON CONFLICT (integration_id, tenant_id) "
        "DO UPDATE SET name = COALESCE(excluded.name, client.name), "
        "default_domain = COALESCE(excluded.default_domain, client.default_domain), "
        "source = COALESCE($6, client.source), sync_gen = client.sync_gen + 1, "
        "updated_at = excluded.updated_at RETURNING id, sync_gen",
        &p, "saving the client", &r, NULL, eb);
    if (rc == ERR_OK)
        rc = prec_read(g, integration_id, ci->tenant_id, eb);
    if (rc == ERR_OK)
        rc = pg_pipe_sync(g, eb);
    if (rc == ERR_OK && (x->own == NULL || PQntuples(x->own) == 0))
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", integration_id);
    if (rc == ERR_OK && (r == NULL || PQntuples(r) != 1))
        rc = err_set(eb, ERR_DB, "saving the client: %s returned no row", g->label);
    if (rc == ERR_OK) {
        *client = pg_r_i64(r, 0, 0, 0);
        *gen = pg_r_i64(r, 0, 1, 0);
        rc = prec_take(g, eb);
    }
    PQclear(r);
    return rc;
}

/* The database's answer, for a device this reconcile wrote already. */
static int
device_find_db(struct pg *g, const char *intune_id, int *found, int64_t *id, int64_t *retired,
               struct device *old, struct errbuf *eb)
{
    struct params p = {0};
    PGresult *r;
    int rc = ERR_OK;

    pg_p_i64(&p, g->base.rec.integration);
    pg_p_text(&p, g->base.rec.tenant);
    pg_p_text(&p, intune_id);
    r = pg_qc(g, g->dsql.find, &p, eb, "looking up the device", &rc);
    if (r == NULL)
        return pipe_rc(&g->base, rc);
    if (PQntuples(r) == 1) {
        *found = 1;
        *id = pg_r_i64(r, 0, 0, 0);
        *retired = pg_r_i64(r, 0, 1, TS_NULL);
        pg_r_device(r, 0, 2, old);
    }
    PQclear(r);
    return ERR_OK;
}

static int
rec_device_find(struct store *base, const char *intune_id, int *found, int64_t *id,
                int64_t *retired, struct device *old, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct pg_rec *x;
    int64_t v;
    int rc;

    x = prec_get(g);
    if ((rc = prec_load(g, eb)) != ERR_OK)
        return rc;
    x->last_id = 0;
    x->last_row = -1;
    if (!smap_get(&x->dev, intune_id, strlen(intune_id), &v))
        return ERR_OK;
    if (v < 0 || (x->flag[v] & PF_DEV))
        return device_find_db(g, intune_id, found, id, retired, old, eb);
    *found = 1;
    *id = pg_r_i64(x->devs, (int)v, 0, 0);
    *retired = pg_r_i64(x->devs, (int)v, 1, TS_NULL);
    pg_r_device(x->devs, (int)v, 2, old);
    x->last_id = *id;
    x->last_row = (int)v;
    return ERR_OK;
}

/* Marks what this reconcile wrote of the device found last. */
static void
mark(struct pg_rec *x, int64_t id, unsigned char f)
{
    if (x != NULL && x->last_row >= 0 && x->last_id == id)
        x->flag[x->last_row] |= f;
}

/* *id: -(k + 1) for the k-th new device (fresh_real reads the real one back when needed). */
static int
rec_device_insert(struct store *base, const struct device *d, const char *key, int64_t *id,
                  struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    const struct reconcile *r = &base->rec;
    struct pg_rec *x = prec_get(g);
    struct params p = {0};
    size_t len = strlen(d->intune_id);
    int64_t v;
    int rc;

    if ((rc = prec_load(g, eb)) != ERR_OK)
        return rc;
    if (smap_get(&x->dev, d->intune_id, len, &v))
        return ERR_EXISTS;
    pg_p_i64(&p, r->account);
    pg_p_i64(&p, r->client);
    pg_p_i64(&p, r->integration);
    pg_p_text(&p, r->tenant);
    pg_p_text(&p, d->intune_id);
    pg_p_device(&p, d);
    pg_p_text(&p, key);
    pg_p_i64(&p, r->now);
    pg_p_i64(&p, r->gen);
    rc = pg_pipe_send(g, g->dsql.ins, &p, "saving a new device", eb);
    if (rc != ERR_OK)
        return pipe_rc(base, rc);
    if (x->nfresh == x->capfresh) {
        x->capfresh = x->capfresh ? x->capfresh * 2 : 64;
        x->fresh = xrealloc(x->fresh, x->capfresh * sizeof *x->fresh);
        x->fresh_id = xrealloc(x->fresh_id, x->capfresh * sizeof *x->fresh_id);
    }
    x->fresh[x->nfresh] = xstrdup(d->intune_id);
    x->fresh_id[x->nfresh] = 0;
    x->nfresh++;
    smap_put(&x->dev, d->intune_id, len, -(int64_t)x->nfresh);
    *id = -(int64_t)x->nfresh;
    return ERR_OK;
}

static int
rec_device_touch(struct store *base, int64_t id, struct errbuf *eb)
{
    struct pg_rec *x = prec_get((struct pg *)base);

    (void)eb;
    x->touch = mem_grow(x->touch, &x->captouch, x->ntouch + 1, sizeof *x->touch);
    x->touch[x->ntouch++] = id;
    mark(x, id, PF_DEV);
    return ERR_OK;
}

static int
rec_device_update(struct store *base, int64_t id, const struct device *d, const char *key,
                  struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int rc;

    if ((rc = fresh_real(g, id, &id, eb)) != ERR_OK)
        return rc;
    pg_p_device(&p, d);
    pg_p_text(&p, key);
    pg_p_i64(&p, base->rec.now);
    pg_p_i64(&p, base->rec.gen);
    pg_p_i64(&p, base->rec.client);
    pg_p_i64(&p, id);
    mark(g->prec, id, PF_DEV);
    return pipe_rc(base, pg_pipe_send(g, g->dsql.upd, &p, "updating a device", eb));
}

static int
rec_change_insert(struct store *base, int64_t asset_id, const char *field, const char *oldv,
                  const char *newv, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int rc;

    if ((rc = fresh_real(g, asset_id, &asset_id, eb)) != ERR_OK)
        return rc;
    pg_p_i64(&p, base->rec.account);
    pg_p_i64(&p, asset_id);
    pg_p_i64(&p, base->rec.now);
    pg_p_text(&p, field);
    pg_p_text(&p, oldv);
    pg_p_text(&p, newv);
    return pipe_rc(base, pg_pipe_send(g,
                                      "INSERT INTO asset_change (account_id, asset_id, at, field, "
                                      "old_value, new_value) VALUES ($1, $2, $3, $4, $5, $6)",
                                      &p, "recording the asset history", eb));
}

static int
rec_asset_find(struct store *base, const char *intune_id, int64_t *id, int *active,
               struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct pg_rec *x = g->prec;
    struct params p = {0};
    PGresult *r;
    int64_t v;
    int rc = ERR_OK;

    if (x != NULL && smap_get(&x->dev, intune_id, strlen(intune_id), &v) && v >= 0 &&
        !(x->flag[v] & PF_DEV)) {
        *id = pg_r_i64(x->devs, (int)v, 0, 0);
        *active = PQgetisnull(x->devs, (int)v, 1);
        x->last_id = *id;
        x->last_row = (int)v;
        return ERR_OK;
    }
    if (x != NULL) {
        x->last_id = 0;
        x->last_row = -1;
    }
    pg_p_i64(&p, base->rec.integration);
    pg_p_text(&p, base->rec.tenant);
    pg_p_text(&p, intune_id);
    r = pg_q(g,
             "SELECT id, retired_at IS NULL FROM hardware_asset WHERE integration_id = $1 AND "
             "tenant_id = $2 AND intune_device_id = $3",
             &p, eb, "looking up the device", &rc);
    if (r == NULL)
        return pipe_rc(base, rc);
    if (PQntuples(r) == 1) {
        *id = pg_r_i64(r, 0, 0, 0);
        *active = strcmp(PQgetvalue(r, 0, 1), "t") == 0;
    } else {
        rc = ERR_NOTFOUND;
    }
    PQclear(r);
    return rc;
}

static int titles_resolve(struct pg *g, struct errbuf *eb);

static int
rec_installs_each(struct store *base, int64_t asset_id,
                  void (*cb)(void *arg, int64_t title, int removed), void *arg, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct pg_rec *x = g->prec;
    struct params p = {0};
    PGresult *r;
    int rc = ERR_OK;

    /* Stored and not written in this reconcile: from the tenant's installs read once. */
    if (x != NULL && asset_id > 0 && x->last_id == asset_id && x->last_row >= 0 &&
        !(x->flag[x->last_row] & PF_INST)) {
        struct pinst key = {.asset = asset_id};
        const struct pinst *hit;
        size_t lo;

        hit = x->ninst ? bsearch(&key, x->inst, x->ninst, sizeof *x->inst, cmp_pinst) : NULL;
        if (hit == NULL)
            return ERR_OK;
        lo = (size_t)(hit - x->inst);
        while (lo > 0 && x->inst[lo - 1].asset == asset_id)
            lo--;
        for (; lo < x->ninst && x->inst[lo].asset == asset_id; lo++)
            cb(arg, x->inst[lo].title, x->inst[lo].removed);
        return ERR_OK;
    }
    if ((rc = fresh_real(g, asset_id, &asset_id, eb)) != ERR_OK)
        return rc;
    /* Stored installs name titles by their real ids: so must the core's comparison. */
    if (x != NULL && (rc = titles_resolve(g, eb)) != ERR_OK)
        return pipe_rc(base, rc);
    pg_p_i64(&p, asset_id);
    r = pg_qc(g,
              "SELECT title_id, removed_at IS NOT NULL FROM software_install WHERE asset_id = $1",
              &p, eb, "reading a device's installs", &rc);
    if (r == NULL)
        return pipe_rc(base, rc);
    for (int i = 0; i < PQntuples(r); i++)
        cb(arg, pg_r_i64(r, i, 0, 0), strcmp(PQgetvalue(r, i, 1), "t") == 0);
    PQclear(r);
    return ERR_OK;
}

/* The title upsert of one app (no RETURNING: pipelined). */
static int
title_send(struct pg *g, const char *name, const char *version, const char *publisher,
           const char *platform, int64_t size, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, g->base.rec.account);
    pg_p_i64(&p, g->base.rec.client);
    pg_p_text(&p, name);
    pg_p_text(&p, version);
    pg_p_text(&p, publisher);
    pg_p_text(&p, platform);
    if (size < 0)
        pg_p_text(&p, NULL);
    else
        pg_p_i64(&p, size);
    return pg_pipe_send(g,
                        "INSERT INTO software_title (account_id, client_id, name, version, "
                        "publisher, platform, size_bytes) VALUES ($1, $2, $3, $4, $5, $6, $7) ON "
                        "CONFLICT (client_id, name, version, publisher, platform) DO UPDATE SET "
                        "size_bytes = COALESCE(excluded.size_bytes, software_title.size_bytes)",
                        &p, "saving a software title", eb);
}

static int
rec_title_id(struct store *base, const struct app_ref *a, int64_t *id, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct pg_rec *x = prec_get(g);
    struct params p = {0};
    const char *ver = a->version != NULL ? a->version : "";
    const char *pub = a->publisher != NULL ? a->publisher : "";
    const char *plat = a->platform != NULL ? a->platform : "";
    size_t len;
    int64_t k;
    char *key;
    int rc = ERR_OK;

    if ((rc = prec_load(g, eb)) != ERR_OK)
        return rc;
    key = title_key(a->name, ver, pub, plat, &len);
    if (smap_get(&x->title, key, len, &k)) {
        *id = x->title_id[k];
        /* The upsert's size rule: a known size replaces the stored one. */
        if (a->size_bytes >= 0 && a->size_bytes != x->title_size[k]) {
            x->title_size[k] = a->size_bytes;
            if (*id > 0) {
                pg_p_i64(&p, a->size_bytes);
                pg_p_i64(&p, *id);
                rc = pg_pipe_send(g, "UPDATE software_title SET size_bytes = $1 WHERE id = $2", &p,
                                  "saving a software title", eb);
            } else {
                rc = title_send(g, a->name, ver, pub, plat, a->size_bytes, eb);
            }
        }
        free(key);
        return pipe_rc(base, rc);
    }
    free(key);
    rc = title_send(g, a->name, ver, pub, plat, a->size_bytes, eb);
    if (rc != ERR_OK)
        return pipe_rc(base, rc);
    if (x->nnew == x->capnew) {
        x->capnew = x->capnew ? x->capnew * 2 : 32;
        x->new_name = xrealloc(x->new_name, x->capnew * sizeof *x->new_name);
        x->new_version = xrealloc(x->new_version, x->capnew * sizeof *x->new_version);
        x->new_publisher = xrealloc(x->new_publisher, x->capnew * sizeof *x->new_publisher);
        x->new_platform = xrealloc(x->new_platform, x->capnew * sizeof *x->new_platform);
    }
    x->new_name[x->nnew] = xstrdup(a->name);
    x->new_version[x->nnew] = xstrdup(ver);
    x->new_publisher[x->nnew] = xstrdup(pub);
    x->new_platform[x->nnew] = xstrdup(plat);
    x->nnew++;
    *id = -(int64_t)x->nnew;
    key = title_key(a->name, ver, pub, plat, &len);
    title_add(x, key, len, *id, a->size_bytes);
    free(key);
    return ERR_OK;
}

/* One element of a text array literal: quoted, " and \ escaped. */
static void
text_elem(struct buf *b, const char *s)
{
    buf_addc(b, '"');
    for (; *s != '\0'; s++) {
        if (*s == '"' || *s == '\\')
            buf_addc(b, '\\');
        buf_addc(b, *s);
    }
    buf_addc(b, '"');
}

/* "{1,2,3}": an array parameter. */
static void
ids_array(struct buf *b, const int64_t *v, size_t n)
{
    buf_addc(b, '{');
    for (size_t i = 0; i < n; i++)
        buf_printf(b, "%s%" PRId64, i ? "," : "", v[i]);
    buf_addc(b, '}');
}

/* Reads the real ids of the titles new in this reconcile (they are in the database once the
 * pipeline is read) into the title table. */
static int
titles_resolve(struct pg *g, struct errbuf *eb)
{
    struct pg_rec *x = g->prec;
    struct params p = {0};
    struct buf nn, nv, np, nf;
    PGresult *r = NULL;
    size_t k = 0;
    int rc;

    for (size_t i = 0; i < x->ntitle; i++)
        k += x->title_id[i] < 0;
    if (k == 0)
        return ERR_OK;
    buf_init(&nn, SQL_MAX);
    buf_init(&nv, SQL_MAX);
    buf_init(&np, SQL_MAX);
    buf_init(&nf, SQL_MAX);
    buf_addc(&nn, '{');
    buf_addc(&nv, '{');
    buf_addc(&np, '{');
    buf_addc(&nf, '{');
    for (size_t j = 0; j < x->nnew; j++) {
        if (j) {
            buf_addc(&nn, ',');
            buf_addc(&nv, ',');
            buf_addc(&np, ',');
            buf_addc(&nf, ',');
        }
        text_elem(&nn, x->new_name[j]);
        text_elem(&nv, x->new_version[j]);
        text_elem(&np, x->new_publisher[j]);
        text_elem(&nf, x->new_platform[j]);
    }
    buf_addc(&nn, '}');
    buf_addc(&nv, '}');
    buf_addc(&np, '}');
    buf_addc(&nf, '}');
    rc = buf_error(&nn)   ? buf_error(&nn)
         : buf_error(&nv) ? buf_error(&nv)
         : buf_error(&np) ? buf_error(&np)
                          : buf_error(&nf);
    if (rc != ERR_OK) {
        rc = err_set(eb, rc, "too many new software titles");
        goto out;
    }
    pg_p_i64(&p, g->base.rec.client);
    pg_p_text(&p, buf_cstr(&nn));
    pg_p_text(&p, buf_cstr(&nv));
    pg_p_text(&p, buf_cstr(&np));
    pg_p_text(&p, buf_cstr(&nf));
    r = pg_q(g,
             "SELECT s.id, s.name, s.version, s.publisher, s.platform FROM unnest($2::text[], "
             "$3::text[], $4::text[], $5::text[]) AS k(name, version, publisher, platform) JOIN "
             "software_title s ON s.client_id = $1 AND s.name = k.name AND s.version = "
             "k.version AND s.publisher = k.publisher AND s.platform = k.platform",
             &p, eb, "reading new software titles", &rc);
    for (int i = 0; r != NULL && i < PQntuples(r); i++) {
        size_t len;
        int64_t t;
        char *key = title_key(PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
                              PQgetvalue(r, i, 4), &len);

        if (smap_get(&x->title, key, len, &t))
            x->title_id[t] = pg_r_i64(r, i, 0, 0);
        free(key);
    }
out:
    PQclear(r);
    buf_free(&nn);
    buf_free(&nv);
    buf_free(&np);
    buf_free(&nf);
    return rc;
}

/* One statement per device. A device inserted in this reconcile (no id here yet) is found by
 * its intune id, and a title new in this reconcile by its key, both by the database. */
static int
rec_installs_insert(struct store *base, int64_t asset_id, const int64_t *titles, size_t n,
                    struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct pg_rec *x = prec_get(g);
    struct params p = {0};
    struct buf ids, nn, nv, np, nf;
    size_t nid = 0, nnew = 0;
    int rc;

    buf_init(&ids, SQL_MAX);
    buf_init(&nn, SQL_MAX);
    buf_init(&nv, SQL_MAX);
    buf_init(&np, SQL_MAX);
    buf_init(&nf, SQL_MAX);
    buf_addc(&ids, '{');
    buf_addc(&nn, '{');
    buf_addc(&nv, '{');
    buf_addc(&np, '{');
    buf_addc(&nf, '{');
    for (size_t i = 0; i < n; i++) {
        if (titles[i] > 0) {
            buf_printf(&ids, "%s%" PRId64, nid++ ? "," : "", titles[i]);
            continue;
        }
        size_t j = (size_t)(-titles[i] - 1);
        ASSERT(j < x->nnew);
        if (nnew++) {
            buf_addc(&nn, ',');
            buf_addc(&nv, ',');
            buf_addc(&np, ',');
            buf_addc(&nf, ',');
        }
        text_elem(&nn, x->new_name[j]);
        text_elem(&nv, x->new_version[j]);
        text_elem(&np, x->new_publisher[j]);
        text_elem(&nf, x->new_platform[j]);
    }
    buf_addc(&ids, '}');
    buf_addc(&nn, '}');
    buf_addc(&nv, '}');
    buf_addc(&np, '}');
    buf_addc(&nf, '}');
    rc = buf_error(&ids)  ? buf_error(&ids)
         : buf_error(&nn) ? buf_error(&nn)
         : buf_error(&nv) ? buf_error(&nv)
         : buf_error(&np) ? buf_error(&np)
                          : buf_error(&nf);
    if (rc != ERR_OK) {
        rc = err_set(eb, rc, "a device has too many installs to save");
        goto out;
    }
    pg_p_i64(&p, base->rec.account);
    pg_p_text(&p, buf_cstr(&ids));
    pg_p_i64(&p, base->rec.now);
    pg_p_i64(&p, base->rec.gen);
    if (asset_id < 0 && x->fresh_id[-asset_id - 1] == 0) {
        pg_p_text(&p, NULL);
        pg_p_i64(&p, base->rec.integration);
        pg_p_text(&p, base->rec.tenant);
        pg_p_text(&p, x->fresh[-asset_id - 1]);
    } else {
        if ((rc = fresh_real(g, asset_id, &asset_id, eb)) != ERR_OK)
            goto out;
        pg_p_i64(&p, asset_id);
        pg_p_i64(&p, base->rec.integration);
        pg_p_text(&p, base->rec.tenant);
        pg_p_text(&p, NULL);
        mark(x, asset_id, PF_INST);
    }
    /* Only titles with ids: a prepared statement of index lookups. */
    if (nnew == 0) {
        rc = pg_pipe_send(g,
                          "INSERT INTO software_install (account_id, asset_id, title_id, "
                          "first_seen_at, last_seen_at, removed_at, last_seen_gen) SELECT $1, "
                          "COALESCE($5::bigint, (SELECT h.id FROM hardware_asset h WHERE "
                          "h.integration_id = $6 AND h.tenant_id = $7 AND h.intune_device_id = "
                          "$8)), t.id, $3, $3, NULL, $4 FROM unnest($2::bigint[]) AS t(id)",
                          &p, "saving installs", eb);
        goto out;
    }
    pg_p_i64(&p, base->rec.client);
    pg_p_text(&p, buf_cstr(&nn));
    pg_p_text(&p, buf_cstr(&nv));
    pg_p_text(&p, buf_cstr(&np));
    pg_p_text(&p, buf_cstr(&nf));
    /* New titles, found by their key: planned for the tables as they are. */
    rc = pg_pipe_send_r(
        g,
        "INSERT INTO software_install (account_id, asset_id, title_id, first_seen_at, "
        "last_seen_at, removed_at, last_seen_gen) SELECT $1, COALESCE($5::bigint, (SELECT h.id "
        "FROM hardware_asset h WHERE h.integration_id = $6 AND h.tenant_id = $7 AND "
        "h.intune_device_id = $8)), t.id, $3, $3, NULL, $4 FROM (SELECT unnest($2::bigint[]) AS "
        "id UNION ALL SELECT s.id FROM unnest($10::text[], $11::text[], $12::text[], "
        "$13::text[]) AS k(name, version, publisher, platform) JOIN software_title s ON "
        "s.client_id = $9 AND s.name = k.name AND s.version = k.version AND s.publisher = "
        "k.publisher AND s.platform = k.platform) t",
        &p, "saving installs", NULL, NULL, eb);
out:
    buf_free(&ids);
    buf_free(&nn);
    buf_free(&nv);
    buf_free(&np);
    buf_free(&nf);
    return pipe_rc(base, rc);
}

static int
rec_install_revive(struct store *base, int64_t asset_id, int64_t title, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int rc;

    if ((rc = fresh_real(g, asset_id, &asset_id, eb)) != ERR_OK)
        return rc;
    pg_p_i64(&p, base->rec.now);
    pg_p_i64(&p, base->rec.gen);
    pg_p_i64(&p, asset_id);
    pg_p_i64(&p, title);
    mark(g->prec, asset_id, PF_INST);
    return pipe_rc(base, pg_pipe_send(g,
                                      "UPDATE software_install SET last_seen_at = $1, "
                                      "last_seen_gen = $2, removed_at = NULL WHERE asset_id = $3 "
                                      "AND title_id = $4",
                                      &p, "updating an install", eb));
}

static int
rec_install_remove(struct store *base, int64_t asset_id, int64_t title, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int rc;

    if ((rc = fresh_real(g, asset_id, &asset_id, eb)) != ERR_OK)
        return rc;
    pg_p_i64(&p, base->rec.now);
    pg_p_i64(&p, asset_id);
    pg_p_i64(&p, title);
    mark(g->prec, asset_id, PF_INST);
    return pipe_rc(base, pg_pipe_send(g,
                                      "UPDATE software_install SET removed_at = $1, last_seen_at "
                                      "= $1 WHERE asset_id = $2 AND title_id = $3",
                                      &p, "marking removed software", eb));
}

/* The devices seen unchanged, a few thousand ids per statement (queued). */
#define TOUCH_CHUNK 4096

static int
touch_send(struct store *base, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct pg_rec *x = g->prec;
    int rc = ERR_OK;

    for (size_t i = 0; x != NULL && rc == ERR_OK && i < x->ntouch; i += TOUCH_CHUNK) {
        size_t n = x->ntouch - i < TOUCH_CHUNK ? x->ntouch - i : TOUCH_CHUNK;
        struct params p = {0};
        struct buf arr;

        buf_init(&arr, SQL_MAX);
        ids_array(&arr, x->touch + i, n);
        rc = buf_error(&arr);
        if (rc != ERR_OK)
            rc = err_set(eb, rc, "too many devices to touch at once");
        pg_p_i64(&p, base->rec.now);
        pg_p_i64(&p, base->rec.gen);
        pg_p_text(&p, buf_cstr(&arr));
        if (rc == ERR_OK)
            rc = pg_pipe_send_r(g,
                                "UPDATE hardware_asset SET last_synced_at = $1, last_seen_gen = $2 "
                                "WHERE id = ANY($3::bigint[])",
                                &p, "touching devices", NULL, NULL, eb);
        buf_free(&arr);
    }
    if (x != NULL)
        x->ntouch = 0;
    return pipe_rc(base, rc);
}

/* The commit's steps are queued; rec_commit reads their answers (the counts too). */
static int
rec_missing_clear(struct store *base, struct errbuf *eb)
{
    struct params pm = {0};
    int rc = touch_send(base, eb);

    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&pm, base->rec.client);
    pg_p_i64(&pm, base->rec.gen);
    return pipe_rc(
        base, pg_pipe_send_r((struct pg *)base,
                             "UPDATE hardware_asset SET missing_since = NULL, missing_syncs = 0 "
                             "WHERE client_id = $1 AND missing_since IS NOT NULL AND retired_at "
                             "IS NULL AND last_seen_gen = $2",
                             &pm, "clearing missing marks", NULL, NULL, eb));
}

static int
rec_missing_mark(struct store *base, int64_t *n, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, base->rec.now);
    pg_p_i64(&p, base->rec.client);
    pg_p_i64(&p, base->rec.gen);
    return pipe_rc(
        base, pg_pipe_send_r((struct pg *)base,
                             "UPDATE hardware_asset SET missing_since = COALESCE(missing_since, "
                             "$1), missing_syncs = missing_syncs + 1 WHERE client_id = $2 AND "
                             "retired_at IS NULL AND last_seen_gen < $3",
                             &p, "marking missing devices", NULL, n, eb));
}

/* The retired devices' ids come back (one round trip): their installs stop counting for
 * their titles (reconcile.c's title deltas). */
static int
rec_retire(struct store *base, int64_t *n, int64_t **gone, size_t *ngone, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params pr = {0};
    PGresult *r = NULL;
    int rc;

    pg_p_i64(&pr, base->rec.now);
    pg_p_i64(&pr, base->rec.client);
    pg_p_i64(&pr, base->rec.gen);
    pg_p_i64(&pr, base->rec_policy.after_syncs);
    pg_p_i64(&pr, base->rec.now - base->rec_policy.after_s);
    rc = pg_pipe_send_r(
        g,
        "UPDATE hardware_asset SET retired_at = $1, updated_at = $1 WHERE client_id = $2 AND "
        "missing_since IS NOT NULL AND retired_at IS NULL AND last_seen_gen < $3 "
        "AND missing_syncs >= $4 AND missing_since <= $5 RETURNING id",
        &pr, "retiring missing devices", &r, NULL, eb);
    if (rc == ERR_OK)
        rc = pg_pipe_sync(g, eb);
    if (rc == ERR_OK && r == NULL)
        rc = err_set(eb, ERR_DB, "retiring missing devices: no answer");
    if (rc == ERR_OK) {
        *n = PQntuples(r);
        *ngone = (size_t)PQntuples(r);
        *gone = xcalloc(*ngone + 1, sizeof **gone);
        for (size_t i = 0; i < *ngone; i++)
            (*gone)[i] = pg_r_i64(r, (int)i, 0, 0);
    }
    PQclear(r);
    return pipe_rc(base, rc);
}

/* ---- change feed (schema 15): numbered at commit by the table's deferred trigger ---------- */

/* A device or title new in this reconcile has a placeholder id (-(k + 1)) until the pipeline is
 * read: the feed's statements find it by its key instead, so they stay pipelined. This appends a
 * device's four parameters: its id (NULL while unread), then that key (integration, tenant,
 * Intune id; the latter NULL once the id is known). */
static void
rec_asset_key(struct store *base, int64_t asset_id, struct params *p)
{
    struct pg_rec *x = ((struct pg *)base)->prec;
    const char *intune = NULL;

    if (asset_id < 0) {
        size_t k = (size_t)(-asset_id - 1);

        ASSERT(x != NULL && k < x->nfresh);
        if (x->fresh_id[k] != 0)
            asset_id = x->fresh_id[k];
        else
            intune = x->fresh[k];
    }
    if (asset_id > 0)
        pg_p_i64(p, asset_id);
    else
        pg_p_text(p, NULL);
    pg_p_i64(p, base->rec.integration);
    pg_p_text(p, base->rec.tenant);
    pg_p_text(p, intune);
}

static int
rec_event_insert(struct store *base, const char *kind, int64_t asset_id, int64_t title_id,
                 const char *field, const char *oldv, const char *newv, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct pg_rec *x = g->prec;
    struct params p = {0};
    const char *tn = NULL, *tv = NULL, *tp = NULL, *tpl = NULL;

    if (title_id < 0) {
        size_t k = (size_t)(-title_id - 1);

        ASSERT(x != NULL && k < x->nnew);
        tn = x->new_name[k];
        tv = x->new_version[k];
        tp = x->new_publisher[k];
        tpl = x->new_platform[k];
    }
    pg_p_i64(&p, base->rec.account);
    pg_p_i64(&p, base->rec.client);
    rec_asset_key(base, asset_id, &p);
    if (title_id > 0)
        pg_p_i64(&p, title_id);
    else
        pg_p_text(&p, NULL);
    pg_p_text(&p, tn);
    pg_p_text(&p, tv);
    pg_p_text(&p, tp);
    pg_p_text(&p, tpl);
    pg_p_i64(&p, base->rec.now);
    pg_p_text(&p, kind);
    pg_p_text(&p, field);
    pg_p_text(&p, oldv);
    pg_p_text(&p, newv);
    return pipe_rc(
        base,
        pg_pipe_send(g,
                     "INSERT INTO change_event (account_id, client_id, asset_id, title_id, at, "
                     "kind, field, old_value, new_value) VALUES ($1, $2, "
                     "COALESCE($3::bigint, (SELECT id FROM hardware_asset WHERE integration_id = "
                     "$4 AND tenant_id = $5 AND intune_device_id = $6)), "
                     "COALESCE($7::bigint, (SELECT id FROM software_title WHERE client_id = $2 "
                     "AND name = $8 AND version = $9 AND publisher = $10 AND platform = $11)), "
                     "$12, $13, $14, $15, $16)",
                     &p, "recording a change", eb));
}

static int
rec_asset_updated(struct store *base, int64_t asset_id, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, base->rec.now);
    rec_asset_key(base, asset_id, &p);
    return pipe_rc(
        base, pg_pipe_send((struct pg *)base,
                           "UPDATE hardware_asset SET updated_at = $1 WHERE id = "
                           "COALESCE($2::bigint, (SELECT id FROM hardware_asset WHERE "
                           "integration_id = $3 AND tenant_id = $4 AND intune_device_id = $5))",
                           &p, "recording when a device changed", eb));
}

static int
rec_client_status(struct store *base, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, base->rec.client);
    pg_p_i64(&p, base->rec.now);
    return pipe_rc(
        base, pg_pipe_send((struct pg *)base,
                           "INSERT INTO change_event (account_id, client_id, at, kind, field, "
                           "old_value, new_value) SELECT account_id, id, $2, 'client.status', "
                           "'status', status, 'ok' FROM client WHERE id = $1 AND status <> 'ok'",
                           &p, "recording the client's status change", eb));
}

/* A stored device's active titles, from the installs read at begin (a device revived or
 * retired in this reconcile: its installs were not written yet, or are not written at all). */
static int
rec_asset_titles(struct store *base, int64_t asset_id, void (*cb)(void *arg, int64_t title),
                 void *arg, struct errbuf *eb)
{
    struct pg_rec *x = ((struct pg *)base)->prec;
    struct pinst key = {.asset = asset_id};
    const struct pinst *hit;
    size_t lo;

    if (x == NULL || !x->loaded)
        return err_set(eb, ERR_INVAL, "titles of a device before the tenant was read");
    if (asset_id <= 0 || x->ninst == 0)
        return ERR_OK;
    hit = bsearch(&key, x->inst, x->ninst, sizeof *x->inst, cmp_pinst);
    if (hit == NULL)
        return ERR_OK;
    lo = (size_t)(hit - x->inst);
    while (lo > 0 && x->inst[lo - 1].asset == asset_id)
        lo--;
    for (; lo < x->ninst && x->inst[lo].asset == asset_id; lo++)
        if (!x->inst[lo].removed)
            cb(arg, x->inst[lo].title);
    return ERR_OK;
}

/* Each title's device_count moves by the reconcile's deltas (reconcile.c keeps them, as for
 * SQLite): one statement; a title new in this reconcile is found by its key. */
static int
rec_titles_count(struct store *base, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    const struct reconcile *r = &base->rec;
    struct pg_rec *x = g->prec;
    struct params p = {0};
    struct buf ids, ds, nn, nv, np, nf, nd;
    size_t nid = 0, nnew = 0;
    int rc;

    buf_init(&ids, SQL_MAX);
    buf_init(&ds, SQL_MAX);
    buf_init(&nn, SQL_MAX);
    buf_init(&nv, SQL_MAX);
    buf_init(&np, SQL_MAX);
    buf_init(&nf, SQL_MAX);
    buf_init(&nd, SQL_MAX);
    for (size_t i = 0; i < r->ndelta_slots; i++) {
        const struct reconcile_delta *d = &r->delta[i];

        if (d->id == 0 || d->d == 0)
            continue;
        if (d->id > 0) {
            buf_printf(&ids, "%s%" PRId64, nid ? "," : "", d->id);
            buf_printf(&ds, "%s%" PRId64, nid ? "," : "", d->d);
            nid++;
            continue;
        }
        size_t j = (size_t)(-d->id - 1);
        ASSERT(x != NULL && j < x->nnew);
        if (nnew++) {
            buf_addc(&nn, ',');
            buf_addc(&nv, ',');
            buf_addc(&np, ',');
            buf_addc(&nf, ',');
            buf_addc(&nd, ',');
        }
        text_elem(&nn, x->new_name[j]);
        text_elem(&nv, x->new_version[j]);
        text_elem(&np, x->new_publisher[j]);
        text_elem(&nf, x->new_platform[j]);
        buf_printf(&nd, "%" PRId64, d->d);
    }
    if (nid + nnew == 0) {
        rc = ERR_OK;
        goto out;
    }
    {
        struct buf *all[] = {&ids, &ds, &nn, &nv, &np, &nf, &nd};
        char *lit[7];

        rc = ERR_OK;
        for (size_t k = 0; k < 7 && rc == ERR_OK; k++)
            if ((rc = buf_error(all[k])) != ERR_OK)
                rc = err_set(eb, rc, "too many software titles changed at once");
        if (rc != ERR_OK)
            goto out;
        for (size_t k = 0; k < 7; k++)
            lit[k] = xasprintf("{%s}", buf_cstr(all[k]));
        for (size_t k = 0; k < 7; k++)
            pg_p_text(&p, lit[k]);
        pg_p_i64(&p, r->client);
        rc = pg_pipe_send_r(
            g,
            "UPDATE software_title t SET device_count = t.device_count + d.d FROM (SELECT a.id, "
            "a.d FROM unnest($1::bigint[], $2::bigint[]) AS a(id, d) UNION ALL SELECT s.id, k.d "
            "FROM unnest($3::text[], $4::text[], $5::text[], $6::text[], $7::bigint[]) AS k(name, "
            "version, publisher, platform, d) JOIN software_title s ON s.client_id = $8 AND "
            "s.name = k.name AND s.version = k.version AND s.publisher = k.publisher AND "
            "s.platform = k.platform) d WHERE t.id = d.id",
            &p, "counting devices per software title", NULL, NULL, eb);
        for (size_t k = 0; k < 7; k++)
            free(lit[k]);
    }
out:
    buf_free(&ids);
    buf_free(&ds);
    buf_free(&nn);
    buf_free(&nv);
    buf_free(&np);
    buf_free(&nf);
    buf_free(&nd);
    return pipe_rc(base, rc);
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
    return pipe_rc(
        base, pg_pipe_send_r(
                  (struct pg *)base,
                  "UPDATE client SET status = 'ok', error_code = NULL, error_message = NULL, "
                  "error_remedy = NULL, error_request_id = NULL, error_date = NULL, "
                  "last_sync_at = $1, updated_at = $1, "
                  "device_count = (SELECT count(*) FROM hardware_asset WHERE client_id = $2 AND "
                  "retired_at IS NULL), software_count = (SELECT count(*) FROM software_title "
                  "WHERE client_id = $2 AND device_count > 0), warning_code = $3, "
                  "warning_message = $4, warning_remedy = $5 "
                  "WHERE id = $2",
                  &p, "updating the client", NULL, NULL, eb));
}

const struct reconcile_ops pg_reconcile_ops = {
    .begin = rec_begin,
    .reset = rec_reset,
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
    .title_deltas = 1,
    .asset_titles = rec_asset_titles,
};

int
pg_retire_preview(struct store *base, int64_t *would_retire, int64_t *active, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r = NULL;
    int rc = reconcile_need(base, 0, eb);

    /* The devices seen so far count as seen: their touch goes first, in the same round trip,
     * with every write queued before it. */
    if (rc == ERR_OK && !base->rec.failed)
        rc = touch_send(base, eb);
    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, base->rec.client);
    pg_p_i64(&p, base->rec.gen);
    /* As on SQLite: unless one listing without waiting is the policy, only marked devices
     * can retire. */
    if (base->rec_policy.after_syncs <= 1 && base->rec_policy.after_s <= 0) {
        rc = pg_pipe_send_r(g,
                            "SELECT count(*), count(*) FILTER (WHERE last_seen_gen < $2) FROM "
                            "hardware_asset WHERE client_id = $1 AND retired_at IS NULL",
                            &p, "counting devices to retire", &r, NULL, eb);
    } else {
        pg_p_i64(&p, base->rec_policy.after_syncs);
        pg_p_i64(&p, base->rec.now);
        pg_p_i64(&p, base->rec_policy.after_s);
        rc = pg_pipe_send_r(
            g,
            "SELECT (SELECT count(*) FROM hardware_asset WHERE client_id = $1 AND retired_at "
            "IS NULL), (SELECT count(*) FROM hardware_asset WHERE client_id = $1 AND "
            "missing_since IS NOT NULL AND retired_at IS NULL AND last_seen_gen < $2 AND "
            "missing_syncs + 1 >= $3 AND missing_since <= $4::bigint - $5::bigint)",
            &p, "counting devices to retire", &r, NULL, eb);
    }
    if (rc == ERR_OK)
        rc = pg_pipe_sync(g, eb);
    if (rc == ERR_OK && (r == NULL || PQntuples(r) != 1))
        rc = err_set(eb, ERR_DB, "counting devices to retire: no answer");
    if (rc == ERR_OK) {
        *active = pg_r_i64(r, 0, 0, 0);
        *would_retire = pg_r_i64(r, 0, 1, 0);
    }
    PQclear(r);
    return pipe_rc(base, rc);
}
