/* pg_assets.c - PostgreSQL reads: hardware assets, generic lists, software and asset history
 * (pg_int.h). */
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

/* ---- asset reads ------------------------------------------------------------------------- */

static void
pg_dparam(struct buf *sql, int n)
{
    buf_printf(sql, "$%d", n);
}

static void
pg_dcontains(struct buf *sql, const char *expr, int n)
{
    buf_printf(sql, "strpos(lower(COALESCE(CAST(%s AS TEXT), '')), lower($%d::text)) > 0", expr, n);
}

static void
pg_dieq(struct buf *sql, const char *expr, int n)
{
    buf_printf(sql, "lower(%s) = lower($%d::text)", expr, n);
}

/* Parameters as $N; list statements are renumbered afterwards (pg_numbered). */
static const struct store_dialect pg_dialect = {pg_dparam, pg_dcontains, pg_dieq, "LIMIT ALL", 1};

/* Moves the builder's values into p (as text); ERR_INVAL past what one statement takes. */
static int
pg_take_binds(struct params *p, const struct store_binds *b, struct errbuf *eb)
{
    if (p->n + b->n > PARAMS_MAX)
        return err_set(eb, ERR_INVAL, "too many filter values (at most %d)", PARAMS_MAX - p->n);
    for (int i = 0; i < b->n; i++) {
        if (b->v[i].kind == SC_INT)
            pg_p_i64(p, b->v[i].i);
        else
            pg_p_text(p, b->v[i].s);
    }
    return ERR_OK;
}

static int
asset_where(struct pg *g, struct buf *b, struct params *p, const struct asset_query *q_, int paging,
            struct store_binds *sb, struct errbuf *eb)
{
    int rc;

    buf_addstr(b, " FROM hardware_asset h JOIN client c ON c.id = h.client_id "
                  "WHERE h.account_id = $1");
    pg_p_i64(p, q_->account_id);
    if (!q_->include_retired)
        buf_addstr(b, " AND h.retired_at IS NULL");
    if (q_->client != NULL) {
        pg_p_text(p, q_->client);
        buf_printf(b,
                   " AND (CAST(c.id AS TEXT) = $%d OR c.tenant_id = $%d OR "
                   "COALESCE(c.name_override, c.name) = $%d)",
                   p->n, p->n, p->n);
    }
    if (q_->search != NULL && q_->search[0] != '\0') {
        const char *cols[] = {g->dsql.col_name, g->dsql.col_serial, g->dsql.col_upn,
                              g->dsql.col_user, g->dsql.col_model};
        int first = 1;
        pg_p_text(p, q_->search);
        buf_addstr(b, " AND (");
        for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
            if (cols[i] == NULL)
                continue;
            buf_printf(b, "%sstrpos(lower(COALESCE(h.%s, '')), lower($%d::text)) > 0",
                       first ? "" : " OR ", cols[i], p->n);
            first = 0;
        }
        if (first)
            buf_addstr(b, "false");
        buf_addstr(b, ")");
    }
    if (paging && q_->after_id > 0) {
        pg_p_i64(p, q_->after_id);
        buf_printf(b, " AND h.id > $%d", p->n);
    }
    if (q_->nfilters == 0)
        return ERR_OK;
    /* API filters: the shared builder numbers its parameters after ours; p points into sb,
     * which the caller frees after the query. */
    sb->first = p->n + 1;
    rc = store_sql_filters(&pg_dialect, store_list_entity("hardware"), q_->filters, q_->nfilters, b,
                           sb, eb);
    if (rc == ERR_OK)
        rc = pg_take_binds(p, sb, eb);
    return rc;
}

struct pg_part {
    struct pg *g;
    const struct asset_query *q;
    int (*cb)(void *arg, const struct asset *a);
    void *arg;
    struct errbuf *eb;
};

static int
pg_assets_part(void *ctx, int part, int count, int64_t offset, int limit, int64_t *rows)
{
    struct pg_part *x = ctx;
    struct pg *g = x->g;
    const struct asset_query *qa = x->q;
    struct params p = {0};
    struct buf sql;
    struct asset a;
    PGresult *r = NULL;
    int rc = ERR_OK, first_sort;
    struct store_binds *sb = xcalloc(1, sizeof *sb);
    struct store_binds *tb = xcalloc(1, sizeof *tb);

    *rows = 0;
    buf_init(&sql, SQL_MAX);
    if (count) {
        buf_addstr(&sql, "SELECT count(*)");
    } else {
        buf_addstr(&sql, STORE_HW_LIST_HEAD);
        buf_addstr(&sql, g->dsql.cols_h);
        buf_addstr(&sql, ", h.missing_since, h.updated_at");
        /* The sort values last, for the caller's cursor. */
        rc = store_list_sort_values(&sql, "hardware", qa->sorts, qa->nsorts, x->eb);
        if (rc != ERR_OK)
            goto out;
    }
    rc = asset_where(g, &sql, &p, qa, 1, sb, x->eb);
    if (rc != ERR_OK)
        goto out;
    tb->first = p.n + 1;
    rc = store_sql_asset_tail(&pg_dialect, qa, part, count, offset, limit, &sql, tb, x->eb);
    if (rc == ERR_OK)
        rc = pg_take_binds(&p, tb, x->eb);
    if (rc != ERR_OK)
        goto out;
    r = pg_q(g, buf_cstr(&sql), &p, x->eb, count ? "counting assets" : "listing assets", &rc);
    if (r == NULL)
        goto out;
    if (count) {
        *rows = pg_r_i64(r, 0, 0, 0);
        goto out;
    }
    first_sort = PQnfields(r) - (int)qa->nsorts;
    for (int i = 0; rc == ERR_OK && i < PQntuples(r); i++) {
        memset(&a, 0, sizeof a);
        a.id = pg_r_i64(r, i, 0, 0);
        a.client_id = pg_r_i64(r, i, 1, 0);
        a.client_name = pg_r_str(r, i, 2);
        a.client_tenant_id = pg_r_str(r, i, 3);
        a.integration_id = pg_r_i64(r, i, 4, 0);
        a.first_synced_at = pg_r_i64(r, i, 6, TS_NULL);
        a.last_synced_at = pg_r_i64(r, i, 7, TS_NULL);
        a.retired_at = pg_r_i64(r, i, 8, TS_NULL);
        a.serial_duplicate = pg_r_i64(r, i, 9, 0) != 0;
        pg_r_device(r, i, 10, &a.dev);
        a.missing_since = pg_r_i64(r, i, 10 + (int)device_field_count, TS_NULL);
        a.updated_at = pg_r_i64(r, i, 11 + (int)device_field_count, TS_NULL);
        a.dev.intune_id = pg_r_dup(r, i, 5);
        for (size_t k = 0; k < qa->nsorts; k++) {
            int c = first_sort + (int)k;
            const struct store_list_field *f =
                store_list_field(store_list_entity("hardware"), qa->sorts[k].field);
            struct store_cell *v = &a.sort_vals[k];

            v->name = qa->sorts[k].field;
            if (PQgetisnull(r, i, c)) {
                v->kind = SC_NULL;
            } else if (f->kind == SC_TEXT) {
                v->kind = SC_TEXT;
                v->s = PQgetvalue(r, i, c);
            } else {
                v->kind = SC_INT;
                v->i = pg_r_i64(r, i, c, 0);
            }
        }
        a.nsort_vals = qa->nsorts;
        (*rows)++;
        rc = x->cb(x->arg, &a);
        device_clear(&a.dev);
    }
out:
    if (r != NULL)
        PQclear(r);
    buf_free(&sql);
    store_binds_free(sb);
    store_binds_free(tb);
    free(sb);
    free(tb);
    return rc;
}

int
pg_assets_each(struct store *base, const struct asset_query *qa,
               int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb)
{
    struct pg_part x = {(struct pg *)base, qa, cb, arg, eb};

    return store_assets_parts(qa, pg_assets_part, &x);
}

int64_t
pg_assets_count(struct store *base, const struct asset_query *qa, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    struct buf sql;
    PGresult *r;
    int64_t n;
    int rc;

    struct store_binds *sb = xcalloc(1, sizeof *sb);

    buf_init(&sql, SQL_MAX);
    if (qa->nfilters == 0 && (qa->search == NULL || qa->search[0] == '\0') && qa->client == NULL &&
        !qa->include_retired) {
        /* Every active device of the account: the clients keep that count (reconcile). */
        buf_addstr(&sql, "SELECT COALESCE(sum(device_count), 0) FROM client WHERE account_id = $1");
        pg_p_i64(&p, qa->account_id);
        rc = ERR_OK;
    } else {
        buf_addstr(&sql, "SELECT count(*)");
        rc = asset_where(g, &sql, &p, qa, 0, sb, eb);
    }
    r = rc == ERR_OK ? pg_q(g, buf_cstr(&sql), &p, eb, "counting assets", &rc) : NULL;
    buf_free(&sql);
    store_binds_free(sb);
    free(sb);
    if (r == NULL)
        return rc;
    n = pg_r_i64(r, 0, 0, 0);
    PQclear(r);
    return n;
}

int
pg_asset_get(struct store *base, int64_t account_id, int64_t id,
             int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb)
{
    struct asset_query q = {0};
    struct store_filter f = {"id", "eq", NULL};
    char idtxt[32];
    int rc;

    snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
    f.value = idtxt;
    q.account_id = account_id;
    q.include_retired = 1;
    q.filters = &f;
    q.nfilters = 1;
    q.limit = 1;
    if (pg_assets_count(base, &q, eb) <= 0)
        return err_set(eb, ERR_NOTFOUND, "hardware asset %" PRId64 " does not exist", id);
    rc = pg_assets_each(base, &q, cb, arg, eb);
    return rc;
}

int
pg_device_checkins(struct store *base, int64_t integration_id, const char *tenant_id,
                   int (*cb)(void *arg, const char *intune_id, int64_t last_check_in_at,
                             int retired),
                   void *arg, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc = ERR_OK;

    pg_p_i64(&p, integration_id);
    pg_p_text(&p, tenant_id);
    r = pg_q(g,
             "SELECT intune_device_id, last_check_in_at, (retired_at IS NOT NULL)::int "
             "FROM hardware_asset WHERE integration_id = $1 AND tenant_id = $2",
             &p, eb, "reading device check-ins", &rc);
    if (r == NULL)
        return rc;
    for (int i = 0; rc == ERR_OK && i < PQntuples(r); i++)
        rc = cb(arg, pg_r_str(r, i, 0), pg_r_i64(r, i, 1, TS_NULL), (int)pg_r_i64(r, i, 2, 0));
    PQclear(r);
    return rc;
}

/* ---- software and history ---------------------------------------------------------------- */

static const char *
empty_null(const char *s)
{
    return s == NULL || s[0] == '\0' ? NULL : s;
}

int
pg_software_each(struct store *base, const struct software_query *qs,
                 int (*cb)(void *arg, const struct software_row *r), void *arg, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    struct software_row r;
    struct buf sql;
    PGresult *res;
    int rc;

    buf_init(&sql, SQL_MAX);
    buf_addstr(&sql,
               "SELECT t.id, t.client_id, COALESCE(c.name_override, c.name), c.tenant_id, t.name, "
               "t.version, t.publisher, t.platform, t.size_bytes, t.device_count "
               "FROM software_title t JOIN client c ON c.id = t.client_id "
               "WHERE t.account_id = $1 AND t.device_count > 0");
    pg_p_i64(&p, qs->account_id);
    if (qs->client != NULL) {
        pg_p_text(&p, qs->client);
        buf_printf(&sql,
                   " AND (CAST(c.id AS TEXT) = $%d OR c.tenant_id = $%d OR "
                   "COALESCE(c.name_override, c.name) = $%d)",
                   p.n, p.n, p.n);
    }
    if (qs->search != NULL && qs->search[0] != '\0') {
        pg_p_text(&p, qs->search);
        buf_printf(&sql,
                   " AND (strpos(lower(t.name), lower($%d::text)) > 0 OR "
                   "strpos(lower(t.publisher), lower($%d::text)) > 0)",
                   p.n, p.n);
    }
    if (qs->after_id > 0) {
        pg_p_i64(&p, qs->after_id);
        buf_printf(&sql, " AND t.id > $%d", p.n);
    }
    buf_addstr(&sql, " ORDER BY t.id");
    if (qs->limit > 0)
        buf_printf(&sql, " LIMIT %d", qs->limit);
    res = pg_q(g, buf_cstr(&sql), &p, eb, "listing software", &rc);
    buf_free(&sql);
    if (res == NULL)
        return rc;
    for (int i = 0; rc == ERR_OK && i < PQntuples(res); i++) {
        r.id = pg_r_i64(res, i, 0, 0);
        r.client_id = pg_r_i64(res, i, 1, 0);
        r.client_name = pg_r_str(res, i, 2);
        r.client_tenant_id = pg_r_str(res, i, 3);
        r.name = pg_r_str(res, i, 4);
        r.version = empty_null(pg_r_str(res, i, 5));
        r.publisher = empty_null(pg_r_str(res, i, 6));
        r.platform = empty_null(pg_r_str(res, i, 7));
        r.size_bytes = pg_r_i64(res, i, 8, -1);
        r.device_count = pg_r_i64(res, i, 9, 0);
        rc = cb(arg, &r);
    }
    PQclear(res);
    return rc;
}

int
pg_asset_changes_each(struct store *base, int64_t account_id, int64_t asset_id,
                      int (*cb)(void *arg, const struct asset_change_row *c), void *arg,
                      struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    struct asset_change_row c;
    PGresult *res;
    int rc;

    pg_p_i64(&p, asset_id);
    pg_p_i64(&p, account_id);
    res = pg_q(g, "SELECT 1 FROM hardware_asset WHERE id = $1 AND account_id = $2", &p, eb,
               "reading the asset", &rc);
    if (res == NULL)
        return rc;
    if (PQntuples(res) == 0)
        rc = err_set(eb, ERR_NOTFOUND, "asset %" PRId64 " does not exist", asset_id);
    PQclear(res);
    if (rc != ERR_OK)
        return rc;
    p.n = 1;
    res = pg_q(g,
               "SELECT id, at, field, old_value, new_value FROM asset_change WHERE asset_id = $1 "
               "ORDER BY at, id",
               &p, eb, "reading the asset history", &rc);
    if (res == NULL)
        return rc;
    for (int i = 0; rc == ERR_OK && i < PQntuples(res); i++) {
        c.id = pg_r_i64(res, i, 0, 0);
        c.asset_id = asset_id;
        c.at = pg_r_i64(res, i, 1, 0);
        c.field = pg_r_str(res, i, 2);
        c.old_value = pg_r_str(res, i, 3);
        c.new_value = pg_r_str(res, i, 4);
        rc = cb(arg, &c);
    }
    PQclear(res);
    return rc;
}

/* ---- generic lists (SQL from store.c's shared builder) --------------------------------- */

/* PostgreSQL wants every parameter up to the highest one used; the shared builder leaves gaps
 * ($4 is never used by a list, $2 only with a parent). Renumbers $N in order of first use and
 * fills p from vals[N]. */
static int
pg_numbered(const char *sql, const char *const *vals, int nvals, struct params *p, struct buf *out,
            struct errbuf *eb)
{
    int map[PARAMS_MAX + 8];

    memset(map, 0, sizeof map);
    for (const char *t = sql; *t != '\0'; t++) {
        if (*t == '$' && t[1] >= '0' && t[1] <= '9') {
            int n = 0;

            while (t[1] >= '0' && t[1] <= '9') {
                n = n * 10 + (t[1] - '0');
                t++;
            }
            if (n <= 0 || n >= nvals || n >= (int)(sizeof map / sizeof map[0]))
                return err_set(eb, ERR_INVAL, "too many filter values");
            if (map[n] == 0) {
                if (p->n >= PARAMS_MAX)
                    return err_set(eb, ERR_INVAL, "too many filter values");
                pg_p_text(p, vals[n]);
                map[n] = p->n;
            }
            buf_printf(out, "$%d", map[n]);
        } else {
            buf_addc(out, *t);
        }
    }
    return ERR_OK;
}

static PGresult *
pg_list_run(struct pg *g, const struct list_query *lq, int count, struct errbuf *eb, int *rc)
{
    struct store_binds *b = xcalloc(1, sizeof *b);
    const char *vals[PARAMS_MAX + 8];
    char num[PARAMS_MAX + 8][24];
    struct params p = {0};
    struct buf sql, out;
    PGresult *r = NULL;
    int nvals = 5;

    memset(vals, 0, sizeof vals);
    buf_init(&sql, SQL_MAX);
    buf_init(&out, SQL_MAX);
    *rc = store_sql_list(&pg_dialect, lq, count, &sql, b, eb);
    if (*rc != ERR_OK)
        goto out;
    snprintf(num[1], sizeof num[1], "%" PRId64, lq->account_id);
    snprintf(num[2], sizeof num[2], "%" PRId64, lq->parent_id);
    vals[1] = num[1];
    vals[2] = num[2];
    vals[3] = lq->search;
    if (b->n > PARAMS_MAX) {
        *rc = err_set(eb, ERR_INVAL, "too many filter values");
        goto out;
    }
    for (int i = 0; i < b->n; i++, nvals++) {
        if (b->v[i].kind == SC_INT) {
            snprintf(num[nvals], sizeof num[nvals], "%" PRId64, b->v[i].i);
            vals[nvals] = num[nvals];
        } else {
            vals[nvals] = b->v[i].s;
        }
    }
    *rc = pg_numbered(buf_cstr(&sql), vals, nvals, &p, &out, eb);
    if (*rc == ERR_OK)
        r = pg_q(g, buf_cstr(&out), &p, eb, "listing", rc);
out:
    store_binds_free(b);
    free(b);
    buf_free(&sql);
    buf_free(&out);
    return r;
}

int
pg_list_each(struct store *base, const struct list_query *ql,
             int (*cb)(void *arg, const struct store_cell *cells, size_t n), void *arg,
             struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    const struct store_list_entity *e = store_list_entity(ql->entity);
    struct store_cell cells[64];
    PGresult *r;
    size_t n = 0;
    int rc;

    r = pg_list_run(g, ql, 0, eb, &rc);
    if (r == NULL)
        return rc;
    for (const struct store_list_field *f = e->fields; f->name != NULL && n < 64; f++)
        n++;
    for (int row = 0; rc == ERR_OK && row < PQntuples(r); row++) {
        for (size_t i = 0; i < n; i++) {
            const struct store_list_field *f = &e->fields[i];
            int isnull = PQgetisnull(r, row, (int)i);

            cells[i].name = f->name;
            cells[i].kind = isnull ? SC_NULL : f->kind;
            cells[i].i = isnull || f->kind == SC_TEXT ? 0 : pg_r_i64(r, row, (int)i, 0);
            cells[i].s = isnull || f->kind != SC_TEXT ? NULL : pg_r_str(r, row, (int)i);
        }
        rc = cb(arg, cells, n);
    }
    PQclear(r);
    return rc;
}

int64_t
pg_list_count(struct store *base, const struct list_query *ql, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    PGresult *r;
    int64_t n;
    int rc;

    r = pg_list_run(g, ql, 1, eb, &rc);
    if (r == NULL)
        return rc;
    n = pg_r_i64(r, 0, 0, 0);
    PQclear(r);
    return n;
}

/* ---- change feed (schema 15) ------------------------------------------------------------- */

int
pg_changes_each(struct store *base, const struct change_query *q,
                int (*cb)(void *arg, const struct change_row *c), void *arg, int64_t *head,
                struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    struct change_row c;
    PGresult *r = NULL;
    struct buf sql;
    int rc = ERR_OK;

    buf_init(&sql, 4096);
    /* Rows are numbered at commit, so the highest visible seq has every lower one visible. */
    if (head != NULL) {
        r = pg_q(g, "SELECT COALESCE(max(seq), 0) FROM change_event", NULL, eb,
                 "reading the change feed", &rc);
        if (r == NULL)
            goto out;
        *head = pg_r_i64(r, 0, 0, 0);
        PQclear(r);
        r = NULL;
    }
    store_changes_sql(&sql, '$', q);
    pg_p_i64(&p, q->account_id);
    pg_p_i64(&p, q->after_seq);
    pg_p_i64(&p, (int64_t)q->limit);
    pg_p_i64(&p, q->client_id);
    for (size_t i = 0; i < q->nkinds; i++)
        pg_p_text(&p, q->kinds[i]);
    r = pg_q(g, buf_cstr(&sql), &p, eb, "reading the change feed", &rc);
    if (r == NULL)
        goto out;
    for (int i = 0; rc == ERR_OK && i < PQntuples(r); i++) {
        memset(&c, 0, sizeof c);
        c.seq = pg_r_i64(r, i, 0, 0);
        c.at = pg_r_i64(r, i, 1, 0);
        c.kind = pg_r_str(r, i, 2);
        c.client_id = pg_r_i64(r, i, 3, 0);
        c.client_name = pg_r_str(r, i, 4);
        c.tenant_id = pg_r_str(r, i, 5);
        c.asset_id = pg_r_i64(r, i, 6, 0);
        c.intune_device_id = pg_r_str(r, i, 7);
        c.asset_name = pg_r_str(r, i, 8);
        c.serial_number = pg_r_str(r, i, 9);
        c.title_id = pg_r_i64(r, i, 10, 0);
        c.title_name = pg_r_str(r, i, 11);
        c.title_version = pg_r_str(r, i, 12);
        c.title_publisher = pg_r_str(r, i, 13);
        c.field = pg_r_str(r, i, 14);
        c.old_value = pg_r_str(r, i, 15);
        c.new_value = pg_r_str(r, i, 16);
        c.account_id = pg_r_i64(r, i, 17, 0);
        rc = cb(arg, &c);
    }
out:
    PQclear(r);
    buf_free(&sql);
    return rc;
}
