/* sqlite_assets.c - SQLite reads: generic lists, hardware assets (the lazy-row engine and the
 * serial sets), software and asset history (sqlite_int.h). */
#include "sqlite_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "clock.h"
#include "hash.h"
#include "log.h"
#include "mem.h"
#include "serialset.h"

/* ---- generic lists (SQL from store.c's shared builder) --------------------------------- */

static void
sq_param(struct buf *sql, int n)
{
    buf_printf(sql, "?%d", n);
}

static void
sq_contains(struct buf *sql, const char *expr, int n)
{
    buf_printf(sql, "instr(lower(COALESCE(CAST(%s AS TEXT), '')), lower(?%d)) > 0", expr, n);
}

static void
sq_ieq(struct buf *sql, const char *expr, int n)
{
    buf_printf(sql, "%s = ?%d COLLATE NOCASE", expr, n);
}

static const struct store_dialect sq_dialect = {sq_param, sq_contains, sq_ieq, "LIMIT -1", 0};

static void
lbinds_apply(sqlite3_stmt *st, const struct store_binds *b)
{
    for (int i = 0; i < b->n; i++) {
        if (b->v[i].kind == SC_INT)
            sqlite3_bind_int64(st, b->first + i, b->v[i].i);
        else
            sq_bind_text(st, b->first + i, b->v[i].s);
    }
}

static int
sq_list_prepare(struct sq *s, const struct list_query *q, int count, sqlite3_stmt **st,
                struct store_binds *b, const struct store_list_entity **ent, struct errbuf *eb)
{
    const struct store_list_entity *e = store_list_entity(q->entity);
    struct buf sql;
    int rc;

    *st = NULL;
    if (e == NULL || e->from == NULL)
        return err_set(eb, ERR_INVAL, "unknown list '%s'", q->entity ? q->entity : "");
    *ent = e;
    buf_init(&sql, SQL_MAX);
    b->first = 5;
    rc = store_sql_list(&sq_dialect, q, count, &sql, b, eb);
    if (rc == ERR_OK)
        rc = sq_cached(s, buf_cstr(&sql), st, eb);
    buf_free(&sql);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(*st, 1, q->account_id);
    if (strstr(e->from, "?2") != NULL)
        sqlite3_bind_int64(*st, 2, q->parent_id);
    if (q->search != NULL && q->search[0] != '\0')
        sq_bind_text(*st, 3, q->search);
    lbinds_apply(*st, b);
    return ERR_OK;
}

int
sq_list_each(struct store *base, const struct list_query *q,
             int (*cb)(void *arg, const struct store_cell *cells, size_t n), void *arg,
             struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    struct store_binds *b = xcalloc(1, sizeof *b);
    struct store_cell cells[64];
    const struct store_list_entity *e = NULL;
    sqlite3_stmt *st = NULL;
    int rc, src = SQLITE_DONE;
    size_t n = 0;

    rc = sq_list_prepare(s, q, 0, &st, b, &e, eb);
    if (rc != ERR_OK)
        goto out;
    for (const struct store_list_field *f = e->fields; f->name != NULL && n < 64; f++)
        n++;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        for (size_t i = 0; i < n; i++) {
            const struct store_list_field *f = &e->fields[i];
            int isnull = sqlite3_column_type(st, (int)i) == SQLITE_NULL;

            cells[i].name = f->name;
            cells[i].kind = isnull ? SC_NULL : f->kind;
            cells[i].i = isnull ? 0 : sqlite3_column_int64(st, (int)i);
            cells[i].s =
                isnull || f->kind != SC_TEXT ? NULL : (const char *)sqlite3_column_text(st, (int)i);
        }
        rc = cb(arg, cells, n);
        if (rc != 0)
            break;
    }
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "listing");
out:
    sq_release(s, st);
    store_binds_free(b);
    free(b);
    return rc;
}

int64_t
sq_list_count(struct store *base, const struct list_query *q, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    struct store_binds *b = xcalloc(1, sizeof *b);
    const struct store_list_entity *e = NULL;
    sqlite3_stmt *st = NULL;
    int64_t n;

    n = sq_list_prepare(s, q, 1, &st, b, &e, eb);
    if (n == ERR_OK) {
        if (sqlite3_step(st) == SQLITE_ROW)
            n = sqlite3_column_int64(st, 0);
        else
            n = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "counting");
    }
    sq_release(s, st);
    store_binds_free(b);
    free(b);
    return n;
}

/* ---- asset reads ------------------------------------------------------------------------- */

/* Appends the WHERE clause of q; parameters: ?1 account, ?2 client, ?3 search, ?4 after_id. */
static int
asset_where(struct sq *s, struct buf *b, const struct asset_query *q, int paging, int count,
            int stream, int lean, int os_walk, struct store_binds *lb, struct errbuf *eb)
{
    int join = q->client != NULL || !count, by_client = 0;
    char *match = NULL;

    lb->first = 5;

    /* A count needs the client row only to filter on it. */
    for (size_t i = 0; i < q->nfilters; i++) {
        const char *f = q->filters[i].field, *op = q->filters[i].op;

        if (strncmp(f, "client.", 7) == 0 && strcmp(f, "client.id") != 0)
            join = 1;
        if (strcmp(f, "client.id") == 0 && (op == NULL || strcmp(op, "eq") == 0))
            by_client = 1;
    }
    if (q->search != NULL && q->search[0] != '\0' && lb->n < (int)(sizeof lb->v / sizeof lb->v[0]))
        match = store_trigram_query(q->search);
    stream = stream && match != NULL && paging && !count;
    if (stream) {
        /* The search index's matches in rowid order drive the walk (CROSS JOIN keeps them
         * outside): a page in id order stops after its rows instead of collecting every
         * candidate first. Only while every asset is indexed (sq_assets_each checks). */
        lb->v[lb->n].kind = SC_TEXT;
        lb->v[lb->n].s = match;
        lb->n++;
        buf_printf(b,
                   " FROM hardware_search s CROSS JOIN hardware_asset h ON h.id = s.rowid%s "
                   "WHERE s.hardware_search MATCH ?%d AND +h.account_id = ?1",
                   join ? " JOIN client c ON c.id = h.client_id" : "", lb->first + lb->n - 1);
    } else {
        buf_addstr(b, join ? " FROM hardware_asset h JOIN client c ON c.id = h.client_id"
                           : " FROM hardware_asset h");
        /* One client: its index is the narrow one, but without statistics SQLite may prefer
         * an account index; the unary + keeps the account check out of index selection.
         * Search candidates likewise: an account index walk would probe a million rows
         * against them. */
        if (lean && by_client && match == NULL)
            /* The client's account is the asset's: the list reads only its index then
             * (covering: sq_assets_part's lean columns). */
            buf_addstr(b, " WHERE c.account_id = ?1");
        else
            buf_addstr(b, by_client || match != NULL ? " WHERE +h.account_id = ?1"
                                                     : " WHERE h.account_id = ?1");
    }
    if (!q->include_retired)
        buf_addstr(b, match != NULL ? " AND +h.retired_at IS NULL" : " AND h.retired_at IS NULL");
    if (os_walk) /* true of every row in this snapshot: it names hardware_asset_os_name */
        buf_addstr(b, " AND h.search_indexed IS NOT NULL");
    if (q->client != NULL)
        buf_addstr(b, " AND (CAST(c.id AS TEXT) = ?2 OR c.tenant_id = ?2 "
                      "OR COALESCE(c.name_override, c.name) = ?2)");
    if (q->search != NULL && q->search[0] != '\0') {
        const char *cols[] = {s->dsql.col_name, s->dsql.col_serial, s->dsql.col_upn,
                              s->dsql.col_user, s->dsql.col_model};
        int first = 1;

        /* Rows holding every trigram of the text (a superset) and rows not indexed yet, then
         * the exact test. */
        if (match != NULL && !stream) {
            lb->v[lb->n].kind = SC_TEXT;
            lb->v[lb->n].s = match;
            lb->n++;
            buf_printf(b,
                       " AND h.id IN (SELECT rowid FROM hardware_search WHERE hardware_search "
                       "MATCH ?%d UNION ALL SELECT id FROM hardware_asset WHERE search_indexed "
                       "IS NULL)",
                       lb->first + lb->n - 1);
        }
        buf_addstr(b, " AND (");
        for (size_t i = 0; i < sizeof cols / sizeof cols[0]; i++) {
            if (cols[i] == NULL)
                continue;
            buf_printf(b, "%sinstr(lower(COALESCE(h.%s, '')), lower(?3)) > 0", first ? "" : " OR ",
                       cols[i]);
            first = 0;
        }
        if (first)
            buf_addstr(b, "0");
        buf_addstr(b, ")");
    }
    if (paging && q->after_id > 0)
        buf_addstr(b, stream ? " AND s.rowid > ?4" : " AND h.id > ?4");
    return store_sql_filters(&sq_dialect, store_list_entity("hardware"), q->filters, q->nfilters, b,
                             lb, eb);
}

static void
asset_bind(sqlite3_stmt *st, const struct asset_query *q, const struct store_binds *lb)
{
    lbinds_apply(st, lb);
    sqlite3_bind_int64(st, 1, q->account_id);
    if (q->client != NULL)
        sq_bind_text(st, 2, q->client);
    if (q->search != NULL)
        sq_bind_text(st, 3, q->search);
    sqlite3_bind_int64(st, 4, q->after_id);
}

/* Column c's integer, or null_value for SQL NULL: the type is asked only when the value is 0
 * (NULL reads as 0), one call per column for most rows. */
static inline int64_t
col_int_or(sqlite3_stmt *st, int c, int64_t null_value)
{
    int64_t v = sqlite3_column_int64(st, c);

    if (v == 0 && sqlite3_column_type(st, c) == SQLITE_NULL)
        return null_value;
    return v;
}

/* The last type text parsed on a list page and its value: a page has a few distinct types. */
struct type_memo {
    char text[16];
    enum device_type type;
};

/* read_device for list rows: the strings point into the statement's row (valid until the next
 * step), so a page of 200 rows makes no copies. Never device_clear the result. */
static void
read_device_view(sqlite3_stmt *st, int first, struct device *d, struct type_memo *tm)
{
    device_init(d);
    for (size_t i = 0; i < device_field_count; i++) {
        const struct device_field *f = &device_fields[i];
        void *p = sq_field_ptr(d, f);
        int c = first + (int)i;

        switch (f->kind) {
        case DF_STR: /* NULL for SQL NULL */
            *(const char **)p = (const char *)sqlite3_column_text(st, c);
            break;
        case DF_INT64:
            *(int64_t *)p = col_int_or(st, c, -1);
            break;
        case DF_BOOL:
            *(int *)p = sqlite3_column_int(st, c) != 0              ? 1
                        : sqlite3_column_type(st, c) == SQLITE_NULL ? -1
                                                                    : 0;
            break;
        case DF_TS:
            *(int64_t *)p = col_int_or(st, c, TS_NULL);
            break;
        case DF_TYPE: {
            const char *t = (const char *)sqlite3_column_text(st, c);
            enum device_type ty = DEVICE_UNKNOWN;
            size_t n;

            if (t != NULL && strcmp(t, tm->text) == 0) {
                ty = tm->type;
            } else if (t != NULL) {
                if (device_type_parse(t, &ty) != 0)
                    ty = DEVICE_UNKNOWN;
                if ((n = strlen(t)) < sizeof tm->text) {
                    memcpy(tm->text, t, n + 1);
                    tm->type = ty;
                }
            }
            *(enum device_type *)p = ty;
            break;
        }
        }
    }
}

/* The list query's column holding expr when it is one of the device columns (cols_h, from
 * column 10), else -1. */
static int
hw_device_column(const char *expr)
{
    if (strncmp(expr, "h.", 2) != 0)
        return -1;
    for (size_t i = 0; i < device_field_count; i++)
        if (strcmp(expr + 2, device_fields[i].name) == 0)
            return 10 + (int)i;
    return -1;
}

struct sq_part {
    struct sq *s;
    const struct asset_query *q;
    int (*cb)(void *arg, const struct asset *a);
    void *arg;
    struct errbuf *eb;
    /* The account's shared serials at data version set_version, or NULL: the list then asks
     * SQLite for the duplicate flag. With a set, column 9 is the serial key and only members
     * are probed (dup_probe). */
    struct serialset *set;
    int64_t set_version;
    /* A search page in id order walks the search index's matches (asset_where). */
    int stream;
    /* A list of one OS sorted by name walks hardware_asset_os_name (schema_v8). */
    int os_walk;
    /* Lazy rows (asset_query.lazy_dev): the row being handed out (id, tenant), the serial
     * set its duplicate flag is read from (NULL: probe), the statement lazy_load stepped for
     * it (reset once the callback returns) and its type memo. batch_st reads the page's rows
     * the caller does not hold ahead, in page order: its current row is batch_id's (0: none
     * left). */
    int64_t cur_id;
    const char *cur_tenant;
    const struct serialset *cur_set;
    sqlite3_stmt *dev_st;
    sqlite3_stmt *batch_st;
    int64_t batch_id;
    struct type_memo dev_tm;
    uint64_t db_tag;
};

#define DUP_SET_MIN_ROWS 32

/* Ends a read transaction this module began; never leaves it open for the connection's next
 * writes. */
static void
read_end(struct sq *s)
{
    if (sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL) != SQLITE_OK &&
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL) != SQLITE_OK)
        log_warn("store: a read transaction could not be ended: %s", sqlite3_errmsg(s->db));
}

/* The serial keys two or more of the account's assets hold, at the data version this read
 * sees (*version), or NULL when it is not this thread's turn to build them and no set of the
 * current version exists. Best effort: a failure only means the list probes every row. */
static struct serialset *
dup_set(struct sq *s, int64_t account_id, int64_t *version)
{
    struct serialset *set = NULL, *ns = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = 0, t0; /* set by sq_data_version; GCC -O3 cannot see it across files */
    int build = 0, own = 0, src, ok = 0;

    if (s->base.cache_id == NULL || sq_data_version(&s->base, &v, NULL) != ERR_OK)
        return NULL;
    set = serialset_acquire(s->base.cache_id, account_id, v, clock_mono_ms(), &build);
    *version = v;
    if (!build)
        return set;
    t0 = clock_mono_ms();
    /* The version and the keys from one snapshot. */
    own = sqlite3_get_autocommit(s->db) && sq_exec_sql(s, "BEGIN", NULL, "") == ERR_OK;
    if (sq_data_version(&s->base, &v, NULL) != ERR_OK ||
        sq_prep(s, S_SERIAL_SHARED,
                "SELECT serial_key FROM hardware_asset INDEXED BY hardware_asset_serial "
                "WHERE serial_key IS NOT NULL AND account_id = ?1 GROUP BY serial_key "
                "HAVING count(*) > 1",
                &st, NULL) != ERR_OK)
        goto out;
    ns = serialset_new();
    sqlite3_bind_int64(st, 1, account_id);
    while ((src = sqlite3_step(st)) == SQLITE_ROW)
        if (serialset_add(ns, (const char *)sqlite3_column_text(st, 0),
                          (size_t)sqlite3_column_bytes(st, 0)) != ERR_OK)
            break;
    ok = src == SQLITE_DONE;
out:
    sq_done(st);
    if (own)
        read_end(s);
    if (!ok) {
        serialset_release(ns);
        ns = NULL;
    }
    *version = v;
    return serialset_publish(s->base.cache_id, account_id, v, ns, t0, clock_mono_ms());
}

/* Whether an active asset of another tenant holds key (the row's own id and tenant excluded):
 * STORE_HW_LIST_DUP for one row. */
static int
dup_probe(struct sq *s, int64_t account_id, int64_t id, const char *tenant, const char *key)
{
    sqlite3_stmt *st = NULL;
    int dup = 0;

    if (sq_prep(s, S_SERIAL_DUP,
                "SELECT 1 FROM hardware_asset o WHERE o.serial_key = ?1 AND o.account_id = ?2 "
                "AND o.id <> ?3 AND o.tenant_id <> ?4 AND o.retired_at IS NULL LIMIT 1",
                &st, NULL) != ERR_OK)
        return 0;
    sq_bind_text(st, 1, key);
    sqlite3_bind_int64(st, 2, account_id);
    sqlite3_bind_int64(st, 3, id);
    sq_bind_text(st, 4, tenant);
    dup = sqlite3_step(st) == SQLITE_ROW;
    sq_done(st);
    return dup;
}

/* The duplicate flag of the row being handed out, whose serial key is key[0..len). */
static int
row_dup(struct sq_part *x, const char *key, size_t len)
{
    return key != NULL && (x->cur_set == NULL || serialset_has(x->cur_set, key, len)) &&
           dup_probe(x->s, x->q->account_id, x->cur_id, x->cur_tenant, key);
}

/* The columns of a lazy row's rest (S_ASSET_DEV, S_ASSET_DEV_BATCH): id first. */
#define LAZY_DEV_COLS                                                                              \
    "SELECT h.id, h.integration_id, h.intune_device_id, h.first_synced_at, h.last_synced_at, "     \
    "h.retired_at, h.serial_key, h.missing_since, h.updated_at, %s FROM "

/* asset.dev_load of a lazy row: the rest of it in the list's snapshot (sq_assets_each holds
 * it), from the rows read ahead when it is there, else read by id. */
static int
lazy_load(void *ctx, struct asset *a, const char **serial_key)
{
    struct sq_part *x = ctx;
    struct sq *s = x->s;
    sqlite3_stmt *st;
    int rc;

    if (x->batch_id != 0 && x->batch_id == x->cur_id) {
        st = x->batch_st;
    } else {
        if (x->dev_st == NULL) {
            char *sql = xasprintf(LAZY_DEV_COLS "hardware_asset h WHERE h.id = ?1", s->dsql.cols_h);

            rc = sq_prep(s, S_ASSET_DEV, sql, &x->dev_st, x->eb);
            free(sql);
            if (rc != ERR_OK)
                return rc;
        }
        st = x->dev_st;
        sqlite3_reset(st);
        sqlite3_bind_int64(st, 1, x->cur_id);
        if (sqlite3_step(st) != SQLITE_ROW)
            return sq_db_err(s, sqlite3_extended_errcode(s->db), x->eb, "reading a device");
    }
    a->integration_id = sqlite3_column_int64(st, 1);
    a->first_synced_at = col_int_or(st, 3, TS_NULL);
    a->last_synced_at = col_int_or(st, 4, TS_NULL);
    a->retired_at = col_int_or(st, 5, TS_NULL);
    *serial_key = (const char *)sqlite3_column_text(st, 6);
    a->serial_duplicate = row_dup(x, *serial_key, (size_t)sqlite3_column_bytes(st, 6));
    a->missing_since = col_int_or(st, 7, TS_NULL);
    a->updated_at = col_int_or(st, 8, TS_NULL);
    read_device_view(st, 9, &a->dev, &x->dev_tm);
    a->dev.intune_id = (char *)sqlite3_column_text(st, 2);
    return ERR_OK;
}

/* asset.dup of a lazy row. */
static int
lazy_dup(void *ctx, const char *serial_key)
{
    return row_dup(ctx, serial_key, serial_key != NULL ? strlen(serial_key) : 0);
}

/* asset.dev_stamp of a lazy row: the database, the client and its sync generation, which the
 * transaction of every write of the client's assets bumps (the client upsert of sqlite_reconcile.c)
 * and which a client id reused after a deletion never repeats (a new client starts past the data
 * version). Never 0. */
static uint64_t
lazy_stamp(uint64_t db_tag, int64_t client_id, int64_t gen)
{
    int64_t v[2] = {client_id, gen};
    uint64_t h = hash_bytes(v, sizeof v) ^ db_tag;

    return h != 0 ? h : 1;
}

/* The serial set that serves the snapshot being read: x->set only if it was built there, else
 * NULL (every member of the page is then probed). */
static const struct serialset *
snapshot_set(struct sq_part *x)
{
    int64_t seen = 0;

    if (x->set == NULL || sq_data_version(&x->s->base, &seen, NULL) != ERR_OK ||
        seen != x->set_version)
        return NULL;
    return x->set;
}

/* Lazy pages are collected whole first: at most this many rows, their strings in an arena. */
#define LAZY_MAX_ROWS  5000
#define LAZY_ARENA_MAX (8 * 1024 * 1024)

/* A collected row of a lazy page (its id and stamp in arrays of their own, for lazy_held);
 * strings are offsets into the page's arena (SIZE_MAX: NULL). */
struct lazy_row {
    int64_t client_id;
    size_t name, tenant;
    struct {
        enum store_cell_kind kind;
        int64_t i;
        size_t s;
    } sort[STORE_LIST_MAX_SORTS];
};

static int
arena_add(struct buf *a, sqlite3_stmt *st, int c, size_t *off)
{
    const unsigned char *p = sqlite3_column_text(st, c);
    size_t n;

    *off = SIZE_MAX;
    if (p == NULL)
        return ERR_OK;
    n = (size_t)sqlite3_column_bytes(st, c);
    if (buf_reserve(a, n + 1) != ERR_OK)
        return ERR_TOOBIG;
    memcpy(a->data + a->len, p, n + 1); /* with SQLite's terminator */
    *off = a->len;
    a->len += n + 1;
    return ERR_OK;
}

/* Appends ",id" (just "id" first) to a JSON array of ids, without printf: a page can ask for
 * hundreds. */
static int
ids_add(struct buf *b, int64_t id, int first)
{
    char t[24], *e = t + sizeof t, *p = e;
    uint64_t u = id < 0 ? 0 : (uint64_t)id; /* ids are positive */

    do
        *--p = (char)('0' + u % 10);
    while ((u /= 10) != 0);
    if (!first)
        *--p = ',';
    return buf_add(b, p, (size_t)(e - p));
}

static const char *
arena_str(const struct buf *a, size_t off)
{
    return off == SIZE_MAX ? NULL : a->data + off;
}

/* The rows of a lazy page (st: the list statement, stepped here). They are collected first, so
 * that the rest of those the caller does not hold (asset_query.lazy_held) is read by one
 * statement, in page order, beside the callbacks: a row read by id costs a statement reset,
 * which frees every column buffer (about a third of a row's cost). */
static int
lazy_page(struct sq_part *x, sqlite3_stmt *st, int limit, const int *sort_col, int64_t *rows)
{
    struct sq *s = x->s;
    const struct asset_query *q = x->q;
    struct lazy_row *r = xmalloc((size_t)limit * sizeof *r);
    int64_t *rid = xmalloc((size_t)limit * sizeof *rid);
    uint64_t *rstamp = xmalloc((size_t)limit * sizeof *rstamp);
    unsigned char *held = xcalloc((size_t)limit, 1);
    const struct serialset *set = NULL;
    sqlite3_stmt *bst = NULL;
    struct buf arena, ids;
    size_t n = 0, want = 0;
    int rc = ERR_OK, src = SQLITE_DONE;

    buf_init(&arena, LAZY_ARENA_MAX);
    buf_init(&ids, LAZY_ARENA_MAX);
    buf_reserve(&arena, (size_t)limit * 64);
    buf_addc(&ids, '[');
    while (n < (size_t)limit && (src = sqlite3_step(st)) == SQLITE_ROW) {
        struct lazy_row *w = &r[n];

        rid[n] = sqlite3_column_int64(st, 0);
        w->client_id = sqlite3_column_int64(st, 1);
        if (n > 0 && w->client_id == r[n - 1].client_id) { /* one snapshot: the same client */
            rstamp[n] = rstamp[n - 1];
            w->name = r[n - 1].name;
            w->tenant = r[n - 1].tenant;
        } else {
            rstamp[n] = lazy_stamp(x->db_tag, w->client_id, sqlite3_column_int64(st, 4));
            rc = arena_add(&arena, st, 2, &w->name);
            if (rc == ERR_OK)
                rc = arena_add(&arena, st, 3, &w->tenant);
        }
        for (size_t i = 0; i < q->nsorts && rc == ERR_OK; i++) {
            int c = sort_col[i], t = sqlite3_column_type(st, c);

            w->sort[i].kind = t == SQLITE_NULL ? SC_NULL : t == SQLITE_TEXT ? SC_TEXT : SC_INT;
            if (w->sort[i].kind == SC_TEXT)
                rc = arena_add(&arena, st, c, &w->sort[i].s);
            else if (w->sort[i].kind == SC_INT)
                w->sort[i].i = sqlite3_column_int64(st, c);
        }
        if (rc != ERR_OK)
            break;
        n++;
    }
    if (rc == ERR_OK && src != SQLITE_ROW && src != SQLITE_DONE) {
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), x->eb, "listing assets");
        goto out;
    }
    if (rc == ERR_OK && n > 0 && q->lazy_held != NULL)
        q->lazy_held(q->lazy_held_arg, rid, rstamp, n, held);
    for (size_t k = 0; k < n && rc == ERR_OK; k++)
        if (!held[k])
            rc = ids_add(&ids, rid[k], want++ == 0);
    if (rc != ERR_OK) {
        rc = err_set(x->eb, ERR_TOOBIG, "a list page's rows are too large; ask for fewer");
        goto out;
    }
    if (n > 0)
        set = snapshot_set(x);
    if (want > 0 && buf_addc(&ids, ']') == ERR_OK) {
        char *sql = xasprintf(LAZY_DEV_COLS "json_each(?1) j CROSS JOIN hardware_asset h "
                                            "ON h.id = j.value",
                              s->dsql.cols_h);

        rc = sq_prep(s, S_ASSET_DEV_BATCH, sql, &bst, x->eb);
        free(sql);
        if (rc != ERR_OK)
            goto out;
        sqlite3_bind_text(bst, 1, ids.data, (int)ids.len, SQLITE_STATIC);
        x->batch_st = bst;
        x->batch_id = sqlite3_step(bst) == SQLITE_ROW ? sqlite3_column_int64(bst, 0) : 0;
    }
    for (size_t k = 0; k < n && rc == ERR_OK; k++) {
        const struct lazy_row *w = &r[k];
        struct asset a;

        memset(&a, 0, sizeof a);
        a.id = rid[k];
        a.client_id = w->client_id;
        a.client_name = arena_str(&arena, w->name);
        a.client_tenant_id = arena_str(&arena, w->tenant);
        a.dev_stamp = rstamp[k];
        a.dev_load = lazy_load;
        a.dup = lazy_dup;
        a.dev_ctx = x;
        device_init(&a.dev);
        for (size_t i = 0; i < q->nsorts; i++) {
            struct store_cell *v = &a.sort_vals[i];

            v->name = q->sorts[i].field;
            v->kind = w->sort[i].kind;
            v->i = w->sort[i].i;
            if (v->kind == SC_TEXT)
                v->s = arena_str(&arena, w->sort[i].s);
        }
        a.nsort_vals = q->nsorts;
        x->cur_id = a.id;
        x->cur_tenant = a.client_tenant_id;
        x->cur_set = set;
        (*rows)++;
        rc = x->cb(x->arg, &a);
        sq_done(x->dev_st);
        /* The row read ahead for this one, used or not (another thread cached it meanwhile). */
        if (x->batch_id != 0 && x->batch_id == a.id)
            x->batch_id = sqlite3_step(bst) == SQLITE_ROW ? sqlite3_column_int64(bst, 0) : 0;
    }
out:
    sq_done(bst); /* before ids goes: bound without a copy */
    x->batch_st = NULL;
    x->batch_id = 0;
    buf_free(&ids);
    buf_free(&arena);
    free(held);
    free(rstamp);
    free(rid);
    free(r);
    return rc;
}

static int
sq_assets_part(void *ctx, int part, int count, int64_t offset, int limit, int64_t *rows)
{
    struct sq_part *x = ctx;
    struct sq *s = x->s;
    const struct asset_query *q = x->q;
    sqlite3_stmt *st = NULL;
    struct buf sql;
    struct asset a;
    struct store_binds *lb = xcalloc(1, sizeof *lb);
    struct type_memo tm = {"", DEVICE_UNKNOWN};
    int rc = ERR_OK, src, sort_col[STORE_LIST_MAX_SORTS], keyed = 0, lazy;
    const struct serialset *set = NULL;

    *rows = 0;
    buf_init(&sql, SQL_MAX);
    lazy = !count && q->lazy_dev && limit > 0 && limit <= LAZY_MAX_ROWS && x->db_tag != 0;
    if (count) {
        buf_addstr(&sql, "SELECT count(*)");
    } else if (lazy) {
        /* What the list indexes hold (with the client row): a walk that needs no table row,
         * when the filters and sorts are indexed too. */
        buf_addstr(&sql, "SELECT h.id, h.client_id, COALESCE(c.name_override, c.name), "
                         "c.tenant_id, c.sync_gen");
    } else {
        buf_addstr(&sql, STORE_HW_LIST_COLS);
        buf_addstr(&sql, x->set != NULL ? "h.serial_key, " : STORE_HW_LIST_DUP);
        buf_addstr(&sql, s->dsql.cols_h);
        buf_addstr(&sql, ", h.missing_since, h.updated_at");
    }
    if (!count) {
        /* The sort values, for the caller's cursor: a device column read again is not
         * selected twice; the others last. */
        for (size_t i = 0, next = lazy ? 5 : 12 + device_field_count; i < q->nsorts; i++) {
            const struct store_list_field *f =
                store_list_field(store_list_entity("hardware"), q->sorts[i].field);

            if (f == NULL || i >= STORE_LIST_MAX_SORTS) {
                rc = store_list_sort_values(&sql, "hardware", q->sorts, q->nsorts, x->eb);
                if (rc == ERR_OK) /* unknown fields are refused there */
                    rc = err_set(x->eb, ERR_INVAL, "too many sort fields");
                goto out;
            }
            if (lazy || (sort_col[i] = hw_device_column(f->expr)) < 0) {
                buf_printf(&sql, ", %s", f->expr);
                sort_col[i] = (int)next++;
            }
        }
    }
    rc = asset_where(s, &sql, q, 1, 0, x->stream && !count, lazy, x->os_walk, lb, x->eb);
    if (rc == ERR_OK && x->stream && !count && part == STORE_PART_ALL && q->nsorts == 0) {
        buf_addstr(&sql, " ORDER BY s.rowid");
        if (limit > 0)
            buf_printf(&sql, " LIMIT %d", limit);
        else if (offset > 0)
            buf_printf(&sql, " %s", sq_dialect.no_limit);
        if (offset > 0)
            buf_printf(&sql, " OFFSET %" PRId64, offset);
    } else if (rc == ERR_OK) {
        rc = store_sql_asset_tail(&sq_dialect, q, part, count, offset, limit, &sql, lb, x->eb);
    }
    if (rc != ERR_OK)
        goto out;
    rc = sq_cached(s, buf_cstr(&sql), &st, x->eb);
    if (rc != ERR_OK)
        goto out;
    asset_bind(st, q, lb);
    if (count) {
        if (sqlite3_step(st) == SQLITE_ROW)
            *rows = sqlite3_column_int64(st, 0);
        else
            rc = sq_db_err(s, sqlite3_extended_errcode(s->db), x->eb, "counting assets");
        goto out;
    }
    if (lazy) {
        rc = lazy_page(x, st, limit, sort_col, rows);
        goto out;
    }
    keyed = x->set != NULL;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&a, 0, sizeof a);
        a.id = sqlite3_column_int64(st, 0);
        a.client_id = sqlite3_column_int64(st, 1);
        a.client_name = (const char *)sqlite3_column_text(st, 2);
        a.client_tenant_id = (const char *)sqlite3_column_text(st, 3);
        /* (An asset's tenant is its client's: column 3.) */
        if (*rows == 0)
            set = snapshot_set(x);
        x->cur_id = a.id;
        x->cur_tenant = a.client_tenant_id;
        x->cur_set = set;
        a.integration_id = sqlite3_column_int64(st, 4);
        a.first_synced_at = col_int_or(st, 6, TS_NULL);
        a.last_synced_at = col_int_or(st, 7, TS_NULL);
        a.retired_at = col_int_or(st, 8, TS_NULL);
        a.serial_duplicate = keyed ? row_dup(x, (const char *)sqlite3_column_text(st, 9),
                                             (size_t)sqlite3_column_bytes(st, 9))
                                   : sqlite3_column_int(st, 9) != 0;
        read_device_view(st, 10, &a.dev, &tm);
        a.missing_since = col_int_or(st, 10 + (int)device_field_count, TS_NULL);
        a.updated_at = col_int_or(st, 11 + (int)device_field_count, TS_NULL);
        a.dev.intune_id = (char *)sqlite3_column_text(st, 5);
        for (size_t i = 0; i < q->nsorts; i++) {
            int c = sort_col[i], t = sqlite3_column_type(st, c);
            struct store_cell *v = &a.sort_vals[i];

            v->name = q->sorts[i].field;
            v->kind = t == SQLITE_NULL ? SC_NULL : t == SQLITE_TEXT ? SC_TEXT : SC_INT;
            if (v->kind == SC_TEXT)
                v->s = (const char *)sqlite3_column_text(st, c);
            else if (v->kind == SC_INT)
                v->i = sqlite3_column_int64(st, c);
        }
        a.nsort_vals = q->nsorts;
        (*rows)++;
        rc = x->cb(x->arg, &a); /* a.dev borrows the row: nothing to free */
        if (rc != 0)
            break;
    }
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), x->eb, "listing assets");
out:
    sq_release(s, st);
    buf_free(&sql);
    store_binds_free(lb);
    free(lb);
    return rc;
}

/* Whether q lists one OS (eq filters on it only) sorted by name, of active rows: the shape
 * hardware_asset_os_name serves once every row is in it. */
static int
os_walk_shape(const struct asset_query *q)
{
    int os = 0;

    if (q->nsorts != 1 || strcmp(q->sorts[0].field, "name") != 0 || q->include_retired ||
        (q->search != NULL && q->search[0] != '\0') || q->client != NULL)
        return 0;
    for (size_t i = 0; i < q->nfilters; i++) {
        const char *op = q->filters[i].op;

        if (strcmp(q->filters[i].field, "operating_system.name") != 0 ||
            (op != NULL && strcmp(op, "eq") != 0))
            return 0;
        os = 1;
    }
    return os;
}

int
sq_assets_each(struct store *base, const struct asset_query *q,
               int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb)
{
    struct sq_part x = {.s = (struct sq *)base,
                        .q = q,
                        .cb = cb,
                        .arg = arg,
                        .eb = eb,
                        .dev_tm = {"", DEVICE_UNKNOWN}};
    sqlite3_stmt *st = NULL;
    char *match = NULL;
    int rc, own = 0, stream = 0, os_walk, lazy;

    /* A few rows (an asset's detail, small pages) probe cheaper than a set is looked up, let
     * alone built. */
    if (q->limit == 0 || q->limit > DUP_SET_MIN_ROWS)
        x.set = dup_set(x.s, q->account_id, &x.set_version);
    if (q->nsorts == 0 && q->search != NULL && (match = store_trigram_query(q->search)) != NULL)
        stream = 1;
    free(match);
    os_walk = os_walk_shape(q);
    lazy = q->lazy_dev && x.s->base.cache_id != NULL;
    /* One snapshot for what is decided here and the list: the search index's coverage (for
     * stream and os_walk), and a lazy page's rows read after the list statement. */
    if ((stream || os_walk || lazy) && sqlite3_get_autocommit(x.s->db))
        own = sq_exec_sql(x.s, "BEGIN", NULL, "") == ERR_OK;
    if ((stream || os_walk) && (own || !sqlite3_get_autocommit(x.s->db)) &&
        sq_prep(x.s, S_UNINDEXED,
                "SELECT 1 FROM hardware_asset WHERE search_indexed IS NULL LIMIT 1", &st,
                NULL) == ERR_OK) {
        /* Rows the indexer has not reached (a sync's newest) are in neither index. */
        int all = sqlite3_step(st) == SQLITE_DONE;

        x.stream = stream && all;
        x.os_walk = os_walk && all;
    }
    sq_done(st);
    if (lazy)
        x.db_tag = hash_bytes(x.s->base.cache_id, strlen(x.s->base.cache_id)) | 1;
    rc = store_assets_parts(q, sq_assets_part, &x);
    if (own)
        read_end(x.s);
    serialset_release(x.set);
    return rc;
}

int64_t
sq_assets_count(struct store *base, const struct asset_query *q, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    struct buf sql;
    int64_t n;
    struct store_binds *lb = xcalloc(1, sizeof *lb);

    buf_init(&sql, SQL_MAX);
    if (q->nfilters == 0 && (q->search == NULL || q->search[0] == '\0') && q->client == NULL &&
        !q->include_retired) {
        /* Every active device of the account: the clients keep that count (reconcile). */
        buf_addstr(&sql, "SELECT COALESCE(sum(device_count), 0) FROM client WHERE account_id = ?1");
        n = sq_cached(s, buf_cstr(&sql), &st, eb);
        if (n != ERR_OK)
            goto out;
        sqlite3_bind_int64(st, 1, q->account_id);
        n = sqlite3_step(st) == SQLITE_ROW
                ? sqlite3_column_int64(st, 0)
                : sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "counting assets");
        goto out;
    }
    buf_addstr(&sql, "SELECT count(*)");
    n = asset_where(s, &sql, q, 0, 1, 0, 0, 0, lb, eb);
    if (n != ERR_OK)
        goto out;
    n = sq_cached(s, buf_cstr(&sql), &st, eb);
    if (n != ERR_OK)
        goto out;
    asset_bind(st, q, lb);
    if (sqlite3_step(st) == SQLITE_ROW)
        n = sqlite3_column_int64(st, 0);
    else
        n = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "counting assets");
out:
    sq_release(s, st);
    buf_free(&sql);
    store_binds_free(lb);
    free(lb);
    return n;
}
struct asset_get {
    int (*cb)(void *arg, const struct asset *a);
    void *arg;
    int found;
};

static int
get_cb(void *arg, const struct asset *a)
{
    struct asset_get *g = arg;

    g->found = 1;
    return g->cb(g->arg, a);
}

int
sq_asset_get(struct store *base, int64_t account_id, int64_t id,
             int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb)
{
    struct asset_get g = {0};
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
    g.cb = cb;
    g.arg = arg;
    rc = sq_assets_each(base, &q, get_cb, &g, eb);
    if (rc != ERR_OK)
        return rc;
    if (!g.found)
        return err_set(eb, ERR_NOTFOUND, "hardware asset %" PRId64 " does not exist", id);
    return ERR_OK;
}

int
sq_data_version(struct store *base, int64_t *out, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = sq_prep(s, S_DATA_VERSION, "SELECT v FROM data_version WHERE id = 1", &st, eb);

    if (rc != ERR_OK)
        return rc;
    if (sqlite3_step(st) == SQLITE_ROW)
        *out = sqlite3_column_int64(st, 0);
    else
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the data version");
    sq_done(st);
    return rc;
}

int
sq_map_reads(struct store *base, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;

    return sq_exec_sql(s, "PRAGMA mmap_size = 1073741824", eb, "mapping the database for reads");
}

int
sq_search_index(struct store *base, int max_rows, int64_t *indexed, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    struct buf sql;
    int own, rc, src;

    *indexed = 0;
    buf_init(&sql, SQL_MAX);
    buf_addstr(&sql, "INSERT INTO hardware_search (rowid, ");
    sq_search_cols(s, "", &sql);
    buf_addstr(&sql, ") SELECT id, ");
    sq_search_cols(s, "", &sql);
    if (buf_addstr(&sql, " FROM hardware_asset WHERE search_indexed IS NULL ORDER BY id LIMIT "
                         "?1;") != ERR_OK) {
        buf_free(&sql);
        return err_set(eb, ERR_TOOBIG, "the search index statement is too long");
    }
    rc = sq_wbegin(s, &own, eb);
    if (rc != ERR_OK)
        goto out;
    /* Both statements pick the same rows: nothing else writes inside this transaction. */
    src = sq_prep_once(s, buf_cstr(&sql), -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_int(st, 1, max_rows);
        src = sqlite3_step(st);
    }
    if (src != SQLITE_OK && src != SQLITE_DONE) {
        rc = sq_db_err(s, src, eb, "adding assets to the search index");
        goto end;
    }
    sqlite3_finalize(st);
    st = NULL;
    src = sq_prep_once(s,
                       "UPDATE hardware_asset SET search_indexed = 1 WHERE id IN (SELECT id "
                       "FROM hardware_asset WHERE search_indexed IS NULL ORDER BY id LIMIT "
                       "?1)",
                       -1, &st, NULL);
    if (src == SQLITE_OK) {
        sqlite3_bind_int(st, 1, max_rows);
        src = sqlite3_step(st);
    }
    if (src != SQLITE_DONE)
        rc = sq_db_err(s, src, eb, "marking assets as indexed for search");
    else
        *indexed = sqlite3_changes(s->db);
end:
    sqlite3_finalize(st);
    rc = sq_wend(s, own, rc, eb);
    if (rc != ERR_OK)
        *indexed = 0;
out:
    buf_free(&sql);
    return rc;
}

int
sq_device_checkins(struct store *base, int64_t integration_id, const char *tenant_id,
                   int (*cb)(void *arg, const char *intune_id, int64_t last_check_in_at,
                             int retired),
                   void *arg, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = ERR_OK, src;

    src = sq_prep_once(s,
                       "SELECT intune_device_id, last_check_in_at, retired_at IS NOT NULL "
                       "FROM hardware_asset WHERE integration_id = ?1 AND tenant_id = ?2",
                       -1, &st, NULL);
    if (src != SQLITE_OK)
        return sq_db_err(s, src, eb, "reading device check-ins");
    sqlite3_bind_int64(st, 1, integration_id);
    sq_bind_text(st, 2, tenant_id);
    while (rc == ERR_OK && (src = sqlite3_step(st)) == SQLITE_ROW)
        rc = cb(arg, (const char *)sqlite3_column_text(st, 0), sq_col_ts(st, 1),
                sqlite3_column_int(st, 2));
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading device check-ins");
    sqlite3_finalize(st);
    return rc;
}

/* ---- software and history ---------------------------------------------------------------- */

static const char *
empty_null(const unsigned char *s)
{
    return s == NULL || s[0] == '\0' ? NULL : (const char *)s;
}

int
sq_software_each(struct store *base, const struct software_query *qs,
                 int (*cb)(void *arg, const struct software_row *r), void *arg, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    struct software_row r;
    struct buf sql;
    int rc = ERR_OK, src;

    buf_init(&sql, SQL_MAX);
    buf_addstr(&sql,
               "SELECT t.id, t.client_id, COALESCE(c.name_override, c.name), c.tenant_id, t.name, "
               "t.version, t.publisher, t.platform, t.size_bytes, t.device_count "
               "FROM software_title t JOIN client c ON c.id = t.client_id "
               "WHERE t.account_id = ?1 AND t.device_count > 0");
    if (qs->client != NULL)
        buf_addstr(&sql, " AND (CAST(c.id AS TEXT) = ?2 OR c.tenant_id = ?2 "
                         "OR COALESCE(c.name_override, c.name) = ?2)");
    if (qs->search != NULL && qs->search[0] != '\0')
        buf_addstr(&sql, " AND (instr(lower(t.name), lower(?3)) > 0 OR "
                         "instr(lower(t.publisher), lower(?3)) > 0)");
    if (qs->after_id > 0)
        buf_addstr(&sql, " AND t.id > ?4");
    buf_addstr(&sql, " ORDER BY t.id");
    if (qs->limit > 0)
        buf_printf(&sql, " LIMIT %d", qs->limit);
    src = sq_prep_once(s, buf_cstr(&sql), -1, &st, NULL);
    buf_free(&sql);
    if (src != SQLITE_OK)
        return sq_db_err(s, src, eb, "listing software");
    sqlite3_bind_int64(st, 1, qs->account_id);
    if (qs->client != NULL)
        sq_bind_text(st, 2, qs->client);
    if (qs->search != NULL)
        sq_bind_text(st, 3, qs->search);
    sqlite3_bind_int64(st, 4, qs->after_id);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        r.id = sqlite3_column_int64(st, 0);
        r.client_id = sqlite3_column_int64(st, 1);
        r.client_name = (const char *)sqlite3_column_text(st, 2);
        r.client_tenant_id = (const char *)sqlite3_column_text(st, 3);
        r.name = (const char *)sqlite3_column_text(st, 4);
        r.version = empty_null(sqlite3_column_text(st, 5));
        r.publisher = empty_null(sqlite3_column_text(st, 6));
        r.platform = empty_null(sqlite3_column_text(st, 7));
        r.size_bytes = sqlite3_column_type(st, 8) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 8);
        r.device_count = sqlite3_column_int64(st, 9);
        rc = cb(arg, &r);
        if (rc != 0)
            break;
    }
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "listing software");
    sqlite3_finalize(st);
    return rc;
}

int
sq_asset_changes_each(struct store *base, int64_t account_id, int64_t asset_id,
                      int (*cb)(void *arg, const struct asset_change_row *c), void *arg,
                      struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    struct asset_change_row c;
    int rc = ERR_OK, src;

    src = sq_prep_once(s, "SELECT 1 FROM hardware_asset WHERE id = ?1 AND account_id = ?2", -1, &st,
                       NULL);
    if (src != SQLITE_OK)
        return sq_db_err(s, src, eb, "reading the asset");
    sqlite3_bind_int64(st, 1, asset_id);
    sqlite3_bind_int64(st, 2, account_id);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    st = NULL;
    if (src == SQLITE_DONE)
        return err_set(eb, ERR_NOTFOUND, "asset %" PRId64 " does not exist", asset_id);
    if (src != SQLITE_ROW)
        return sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the asset");
    src = sq_prep_once(s,
                       "SELECT id, at, field, old_value, new_value FROM asset_change "
                       "WHERE asset_id = ?1 ORDER BY at, id",
                       -1, &st, NULL);
    if (src != SQLITE_OK)
        return sq_db_err(s, src, eb, "reading the asset history");
    sqlite3_bind_int64(st, 1, asset_id);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        c.id = sqlite3_column_int64(st, 0);
        c.asset_id = asset_id;
        c.at = sqlite3_column_int64(st, 1);
        c.field = (const char *)sqlite3_column_text(st, 2);
        c.old_value = (const char *)sqlite3_column_text(st, 3);
        c.new_value = (const char *)sqlite3_column_text(st, 4);
        rc = cb(arg, &c);
        if (rc != 0)
            break;
    }
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the asset history");
    sqlite3_finalize(st);
    return rc;
}

/* ---- change feed (schema 15) ------------------------------------------------------------- */

int
sq_changes_each(struct store *base, const struct change_query *q,
                int (*cb)(void *arg, const struct change_row *c), void *arg, int64_t *head,
                struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    struct change_row c;
    struct buf sql;
    int rc = ERR_OK, src, began = 0;

    buf_init(&sql, 4096);
    /* One read transaction: the head and the rows from the same snapshot. */
    if (sqlite3_get_autocommit(s->db)) {
        rc = sq_exec_sql(s, "BEGIN", eb, "reading the change feed");
        if (rc != ERR_OK)
            goto out;
        began = 1;
    }
    if (head != NULL) {
        src = sq_prep_once(s, "SELECT COALESCE(max(seq), 0) FROM change_event", -1, &st, NULL);
        if (src != SQLITE_OK) {
            rc = sq_db_err(s, src, eb, "reading the change feed");
            goto out;
        }
        if (sqlite3_step(st) != SQLITE_ROW) {
            rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the change feed");
            goto out;
        }
        *head = sqlite3_column_int64(st, 0);
        sqlite3_finalize(st);
        st = NULL;
    }
    store_changes_sql(&sql, '?', q);
    src = sq_prep_once(s, buf_cstr(&sql), -1, &st, NULL);
    if (src != SQLITE_OK) {
        rc = sq_db_err(s, src, eb, "reading the change feed");
        goto out;
    }
    sqlite3_bind_int64(st, 1, q->account_id);
    sqlite3_bind_int64(st, 2, q->after_seq);
    sqlite3_bind_int64(st, 3, (int64_t)q->limit);
    sqlite3_bind_int64(st, 4, q->client_id);
    for (size_t i = 0; i < q->nkinds; i++)
        sq_bind_text(st, 5 + (int)i, q->kinds[i]);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        memset(&c, 0, sizeof c);
        c.seq = sqlite3_column_int64(st, 0);
        c.at = sqlite3_column_int64(st, 1);
        c.kind = (const char *)sqlite3_column_text(st, 2);
        c.client_id = sqlite3_column_int64(st, 3);
        c.client_name = (const char *)sqlite3_column_text(st, 4);
        c.tenant_id = (const char *)sqlite3_column_text(st, 5);
        c.asset_id = sqlite3_column_int64(st, 6);
        c.intune_device_id = (const char *)sqlite3_column_text(st, 7);
        c.asset_name = (const char *)sqlite3_column_text(st, 8);
        c.serial_number = (const char *)sqlite3_column_text(st, 9);
        c.title_id = sqlite3_column_int64(st, 10);
        c.title_name = (const char *)sqlite3_column_text(st, 11);
        c.title_version = (const char *)sqlite3_column_text(st, 12);
        c.title_publisher = (const char *)sqlite3_column_text(st, 13);
        c.field = (const char *)sqlite3_column_text(st, 14);
        c.old_value = (const char *)sqlite3_column_text(st, 15);
        c.new_value = (const char *)sqlite3_column_text(st, 16);
        c.account_id = sqlite3_column_int64(st, 17);
        rc = cb(arg, &c);
        if (rc != 0)
            break;
    }
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the change feed");
out:
    sqlite3_finalize(st);
    if (began)
        sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
    buf_free(&sql);
    return rc;
}
