/* test_store.c - SQLite store: migrations and refusals, integrations, reconcile rules. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <inttypes.h>
#include <libpq-fe.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "asset.h"
#include "clock.h"
#include "device.h"
#include "err.h"
#include "mem.h"
#include "rowcache.h"
#include "serialset.h"
#include "store_int.h"
#include "store.h"

#define T0 INT64_C(1767225600) /* 2026-01-01T00:00:00Z */

struct fx {
    const char *pg_url; /* set when the test runs against PostgreSQL */
    char dir[64];
    char path[128];
    struct store *st;
    int64_t account;
    int64_t integ;
};

static void
rm_db(const char *path)
{
    char p[160];

    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-journal", path);
    unlink(p);
}

static int
setup_plain(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);

    assert_non_null(fx);
    snprintf(fx->dir, sizeof fx->dir, "/tmp/memsync-store-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof fx->path, "%s/memsync.db", fx->dir);
    *state = fx;
    return 0;
}

static void
pg_exec(const char *url, const char *sql)
{
    PGconn *c = PQconnectdb(url);
    PGresult *r;

    assert_int_equal(PQstatus(c), CONNECTION_OK);
    r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(c);
}

static int
open_store(void **state, const char *pg_url)
{
    struct fx *fx;
    struct errbuf eb = {0};
    struct integration in;

    setup_plain(state);
    fx = *state;
    fx->pg_url = pg_url;
    if (pg_url != NULL)
        pg_exec(pg_url, "SET client_min_messages = warning; DROP SCHEMA public CASCADE; "
                        "CREATE SCHEMA public");
    assert_int_equal(store_open(&fx->st, pg_url != NULL ? pg_url : fx->path, &eb), ERR_OK);
    assert_int_equal(store_account_ensure(fx->st, "default", &fx->account, &eb), ERR_OK);
    memset(&in, 0, sizeof in);
    in.account_id = fx->account;
    in.name = "msp";
    in.partner_tenant_id = "11111111-1111-1111-1111-111111111111";
    in.partner_app_id = "22222222-2222-2222-2222-222222222222";
    in.sync_app_id = "33333333-3333-3333-3333-333333333333";
    in.partner_secret_expires = TS_NULL;
    in.sync_secret_expires = TS_NULL;
    assert_int_equal(store_integration_insert(fx->st, &in, &eb), ERR_OK);
    fx->integ = in.id;
    return 0;
}

static int
setup_open(void **state)
{
    return open_store(state, NULL);
}

static int
setup_open_pg(void **state)
{
    return open_store(state, getenv("MEMSYNC_TEST_PG_URL"));
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    store_close(fx->st);
    rm_db(fx->path);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static char *
read_file(const char *path, size_t *len)
{
    FILE *fp = fopen(path, "rb");
    char *data;
    long n;

    assert_non_null(fp);
    assert_int_equal(fseek(fp, 0, SEEK_END), 0);
    n = ftell(fp);
    assert_true(n >= 0);
    rewind(fp);
    data = malloc((size_t)n + 1);
    assert_non_null(data);
    assert_int_equal(fread(data, 1, (size_t)n, fp), (size_t)n);
    fclose(fp);
    *len = (size_t)n;
    return data;
}

static int64_t
sqlite_int(const char *path, const char *sql)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -999;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
    if (sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* First column of the first row as an integer, from whichever backend fx uses. */
static int64_t
db_int(struct fx *fx, const char *sql)
{
    PGconn *c;
    PGresult *r;
    int64_t v = -999;

    if (fx->pg_url == NULL)
        return sqlite_int(fx->path, sql);
    c = PQconnectdb(fx->pg_url);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    r = PQexec(c, sql);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    if (PQntuples(r) > 0 && !PQgetisnull(r, 0, 0))
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    PQfinish(c);
    return v;
}

/* First column of row `row` as text ("" when absent), from either backend; caller frees. */
static char *
db_text(struct fx *fx, const char *sql, int row)
{
    char *v = NULL;

    if (fx->pg_url == NULL) {
        sqlite3 *db = NULL;
        sqlite3_stmt *st = NULL;
        assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
        assert_int_equal(sqlite3_prepare_v2(db, sql, -1, &st, NULL), SQLITE_OK);
        for (int i = 0; i <= row && sqlite3_step(st) == SQLITE_ROW; i++)
            if (i == row)
                v = xstrdup((const char *)sqlite3_column_text(st, 0));
        sqlite3_finalize(st);
        sqlite3_close(db);
    } else {
        PGconn *c = PQconnectdb(fx->pg_url);
        PGresult *r = PQexec(c, sql);
        assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
        if (PQntuples(r) > row)
            v = xstrdup(PQgetvalue(r, row, 0));
        PQclear(r);
        PQfinish(c);
    }
    return v != NULL ? v : xstrdup("");
}

static void
sql_exec(const char *path, const char *sql)
{
    sqlite3 *db = NULL;

    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE, NULL),
                     SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, sql, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
}

static void
mkdev(struct device *d, const char *id, const char *name, const char *serial)
{
    device_init(d);
    d->intune_id = xstrdup(id);
    d->name = xstrdup(name);
    d->serial = xstrdup(serial);
    d->os_name = xstrdup("Windows");
    d->os_version = xstrdup("10.0.19045.4291");
    d->ownership = xstrdup("company");
    d->type = DEVICE_WORKSTATION;
    d->storage_total = INT64_C(512110190592);
    d->storage_free = INT64_C(3221225472);
    d->is_encrypted = 1;
    d->enrolled_at = T0 - 86400;
}

static const struct client_info ci_a = {"aaaaaaaa-0000-0000-0000-000000000001",
                                        "Contoso",
                                        "contoso.example",
                                        "partner_center",
                                        NULL,
                                        NULL};
static const struct client_info ci_b = {"bbbbbbbb-0000-0000-0000-000000000002",
                                        "Fabrikam",
                                        "fabrikam.example",
                                        "partner_center",
                                        NULL,
                                        NULL};

/* Most tests here retire a device at the first complete listing that lacks it (a policy of
 * one sync and no wait); the retirement policy's own tests set theirs with retire_commit. */
static int
retire_commit(struct store *st, const struct retire_policy *p, int complete, int installs,
              struct reconcile_counts *c, struct errbuf *eb)
{
    struct errbuf ignore = {0};

    if (p != NULL)
        (void)store_reconcile_policy(st, p, &ignore);
    return store_reconcile_commit(st, complete, installs, c, eb);
}

static const struct retire_policy retire_now = {1, 0, 0};
#define store_reconcile_commit(st, complete, installs, c, eb)                                      \
    retire_commit(st, &retire_now, complete, installs, c, eb)

/* Reconciles devs into tenant ci at time now. */
static struct reconcile_counts
sync_tenant(struct fx *fx, const struct client_info *ci, struct device *devs, size_t n,
            int complete, int64_t now)
{
    struct errbuf eb = {0};
    struct reconcile_counts c;

    memset(&c, 0, sizeof c);
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, ci, now, &eb), ERR_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(store_reconcile_device(fx->st, &devs[i], &eb), ERR_OK);
    assert_int_equal(store_reconcile_commit(fx->st, complete, complete, &c, &eb), ERR_OK);
    return c;
}

struct seen {
    int n;
    int64_t ids[16];
    char names[16][32];
    int64_t retired[16];
    int64_t missing[16];
    int dup[16];
    int64_t storage[16];
    char tenant[16][40];
};

static int
collect(void *arg, const struct asset *a)
{
    struct seen *s = arg;

    if (s->n >= 16)
        return ERR_TOOBIG;
    s->ids[s->n] = a->id;
    snprintf(s->names[s->n], sizeof s->names[0], "%s", a->dev.name ? a->dev.name : "");
    snprintf(s->tenant[s->n], sizeof s->tenant[0], "%s", a->client_tenant_id);
    s->retired[s->n] = a->retired_at;
    s->missing[s->n] = a->missing_since;
    s->dup[s->n] = a->serial_duplicate;
    s->storage[s->n] = a->dev.storage_total;
    s->n++;
    return 0;
}

struct hist {
    int n;
    char text[8][96];
};

static int
collect_hist(void *arg, const struct asset_change_row *c)
{
    struct hist *h = arg;

    if (h->n >= 8)
        return ERR_TOOBIG;
    snprintf(h->text[h->n], sizeof h->text[0], "%s:%s>%s", c->field,
             c->old_value ? c->old_value : "null", c->new_value ? c->new_value : "null");
    h->n++;
    return 0;
}

static struct seen
list_assets(struct fx *fx, int include_retired)
{
    struct asset_query q;
    struct seen s;
    struct errbuf eb = {0};

    memset(&q, 0, sizeof q);
    memset(&s, 0, sizeof s);
    q.account_id = fx->account;
    q.include_retired = include_retired;
    assert_int_equal(store_assets_each(fx->st, &q, collect, &s, &eb), ERR_OK);
    return s;
}

/* list_assets answered twice: from a serialset built just now (SQLite), then with the set's
 * build turn held here, so every flag comes from SQL; both must agree. */
static struct seen
list_assets_both(struct fx *fx, int include_retired)
{
    const char *db = fx->pg_url != NULL ? fx->pg_url : fx->path;
    struct errbuf eb = {0};
    struct seen a, b;
    struct serialset *set;
    int64_t v = 0;
    int build = 0;

    serialset_reset();
    a = list_assets(fx, include_retired);
    assert_int_equal(store_data_version(fx->st, &v, &eb), ERR_OK);
    set = serialset_acquire(db, fx->account, v, clock_mono_ms(), &build);
    if (fx->pg_url == NULL) { /* the list built it, at this version */
        assert_non_null(set);
        assert_int_equal(build, 0);
    } else if (build) { /* PostgreSQL probes in SQL: nobody built it */
        assert_null(serialset_publish(db, fx->account, v, NULL, 0, 0));
    }
    serialset_release(set);
    serialset_reset();
    assert_null(serialset_acquire(db, fx->account, v, clock_mono_ms(), &build));
    assert_int_equal(build, 1);
    b = list_assets(fx, include_retired);
    assert_null(serialset_publish(db, fx->account, v, NULL, 0, 0));
    serialset_reset();
    assert_memory_equal(&a, &b, sizeof a);
    return a;
}

static int
first_client_cb(void *arg, const struct client_row *c)
{
    struct client_row *out = arg;

    if (out->tenant_id != NULL)
        return 0;
    out->tenant_id = xstrdup(c->tenant_id);
    out->status = xstrdup(c->status);
    out->warning_code = c->warning_code ? xstrdup(c->warning_code) : NULL;
    out->warning_message = c->warning_message ? xstrdup(c->warning_message) : NULL;
    out->warning_remedy = c->warning_remedy ? xstrdup(c->warning_remedy) : NULL;
    out->device_count = c->device_count;
    return 0;
}

/* The first client of the account (by name): a copy to client_row_clear. */
static int
first_client(struct fx *fx, struct client_row *out)
{
    struct errbuf eb = {0};

    memset(out, 0, sizeof *out);
    return store_clients_each(fx->st, fx->account, first_client_cb, out, &eb);
}

static void
free_devs(struct device *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        device_clear(&d[i]);
}

/* ---- change feed ---------------------------------------------------------------------- */

struct feed {
    int n;
    int64_t seq[64];
    char kind[64][24];
    char tenant[64][40];
};

static int
feed_cb(void *arg, const struct change_row *c)
{
    struct feed *f = arg;

    if (f->n < 64) {
        f->seq[f->n] = c->seq;
        snprintf(f->kind[f->n], sizeof f->kind[0], "%s", c->kind);
        snprintf(f->tenant[f->n], sizeof f->tenant[0], "%s", c->tenant_id ? c->tenant_id : "");
        f->n++;
    }
    return 0;
}

static struct feed
feed_after(struct store *st, int64_t account, int64_t after)
{
    struct change_query q = {0};
    struct errbuf eb = {0};
    struct feed f;

    memset(&f, 0, sizeof f);
    q.account_id = account;
    q.after_seq = after;
    q.limit = 64;
    assert_int_equal(store_changes_each(st, &q, feed_cb, &f, NULL, &eb), ERR_OK);
    for (int i = 1; i < f.n; i++)
        assert_true(f.seq[i] > f.seq[i - 1]);
    return f;
}

/* Created, changed (a quiet field is not fed), retired, and the client's first status; a rolled
 * back tenant leaves no row. */
static void
test_change_feed(void **state)
{
    struct fx *fx = *state;
    struct device d[2];
    struct errbuf eb = {0};
    struct feed f;

    mkdev(&d[0], "feed-1", "FEED-1", "SER-F1");
    mkdev(&d[1], "feed-2", "FEED-2", "SER-F2");
    sync_tenant(fx, &ci_a, d, 2, 1, T0);
    f = feed_after(fx->st, fx->account, 0);
    assert_int_equal(f.n, 3);
    assert_string_equal(f.kind[0], "asset.created");
    assert_string_equal(f.kind[1], "asset.created");
    assert_string_equal(f.kind[2], "client.status");
    d[0].last_check_in_at = T0 + 50; /* quiet */
    free(d[1].os_version);
    d[1].os_version = xstrdup("10.0.22631.1");
    sync_tenant(fx, &ci_a, d, 2, 1, T0 + 60);
    f = feed_after(fx->st, fx->account, f.seq[2]);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.kind[0], "asset.changed");
    sync_tenant(fx, &ci_a, d, 1, 1, T0 + 120);
    f = feed_after(fx->st, fx->account, f.seq[0]);
    assert_int_equal(f.n, 1);
    assert_string_equal(f.kind[0], "asset.retired");
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_b, T0, &eb), ERR_OK);
    assert_int_equal(store_reconcile_device(fx->st, &d[1], &eb), ERR_OK);
    store_reconcile_rollback(fx->st);
    assert_int_equal(feed_after(fx->st, fx->account, f.seq[0]).n, 0);
    assert_int_equal(feed_after(fx->st, fx->account + 999, 0).n, 0);
    free_devs(d, 2);
}

/* PostgreSQL: a tenant that began first but commits last gets the higher numbers, and nothing
 * of it is visible (or numbered) before its commit: a reader resuming after what it saw misses
 * nothing. */
static void
test_change_feed_commit_order_pg(void **state)
{
    struct fx *fx = *state;
    struct store *st2 = NULL;
    struct device da, db;
    struct errbuf eb = {0};
    struct reconcile_counts c;
    struct feed f;
    int64_t seen;

    mkdev(&da, "order-a", "ORDER-A", "SER-OA");
    mkdev(&db, "order-b", "ORDER-B", "SER-OB");
    assert_int_equal(store_open(&st2, fx->pg_url, &eb), ERR_OK);
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_a, T0, &eb), ERR_OK);
    assert_int_equal(store_reconcile_device(fx->st, &da, &eb), ERR_OK);
    assert_int_equal(store_reconcile_begin(st2, fx->account, fx->integ, &ci_b, T0, &eb), ERR_OK);
    assert_int_equal(store_reconcile_device(st2, &db, &eb), ERR_OK);
    assert_int_equal(store_reconcile_commit(st2, 1, 1, &c, &eb), ERR_OK);
    f = feed_after(st2, fx->account, 0);
    assert_int_equal(f.n, 2); /* B's created and status rows only */
    for (int i = 0; i < f.n; i++)
        assert_string_equal(f.tenant[i], ci_b.tenant_id);
    seen = f.seq[f.n - 1];
    assert_int_equal(store_reconcile_commit(fx->st, 1, 1, &c, &eb), ERR_OK);
    f = feed_after(st2, fx->account, seen);
    assert_int_equal(f.n, 2);
    for (int i = 0; i < f.n; i++) {
        assert_string_equal(f.tenant[i], ci_a.tenant_id);
        assert_true(f.seq[i] > seen);
    }
    store_close(st2);
    free_devs(&da, 1);
    free_devs(&db, 1);
}

/* ---- open, migrations, refusals -------------------------------------------------------- */

static void
test_fresh_and_reopen(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    int64_t a1 = 0, a2 = 0;

    assert_int_equal(store_open(&fx->st, fx->path, &eb), ERR_OK);
    assert_string_equal(store_backend(fx->st), "sqlite");
    assert_int_equal(store_account_ensure(fx->st, "acme", &a1, &eb), ERR_OK);
    store_close(fx->st);
    fx->st = NULL;
    assert_int_equal(sqlite_int(fx->path, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
    assert_int_equal(sqlite_int(fx->path, "PRAGMA application_id"), STORE_APPLICATION_ID);
    assert_int_equal(
        sqlite_int(fx->path, "SELECT count(*) FROM sqlite_schema WHERE name = 'hardware_asset'"),
        1);
    assert_int_equal(store_open(&fx->st, fx->path, &eb), ERR_OK);
    assert_int_equal(store_account_ensure(fx->st, "acme", &a2, &eb), ERR_OK);
    assert_true(a1 > 0);
    assert_int_equal(a1, a2);
}

static void
expect_refused(struct fx *fx, const char *what)
{
    struct errbuf eb = {0};
    size_t n1, n2;
    char *before = read_file(fx->path, &n1);
    char *after;

    assert_int_not_equal(store_open(&fx->st, fx->path, &eb), ERR_OK);
    assert_null(fx->st);
    assert_non_null(strstr(eb.msg, fx->path));
    assert_non_null(strstr(eb.msg, what));
    after = read_file(fx->path, &n2);
    assert_int_equal(n1, n2);
    assert_memory_equal(before, after, n1);
    free(before);
    free(after);
}

static void
test_refuse_not_sqlite(void **state)
{
    struct fx *fx = *state;
    FILE *fp = fopen(fx->path, "wb");

    assert_non_null(fp);
    fputs("name,serial\nlaptop,ABC\nthis is a CSV file, not a database at all\n", fp);
    fclose(fp);
    expect_refused(fx, "not a SQLite database");
}

static void
test_refuse_foreign_sqlite(void **state)
{
    struct fx *fx = *state;

    sql_exec(fx->path, "CREATE TABLE notes (id INTEGER PRIMARY KEY, body TEXT);"
                       "INSERT INTO notes (body) VALUES ('keep me');");
    expect_refused(fx, "not a memsync database");
}

static void
test_refuse_newer(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};

    assert_int_equal(store_open(&fx->st, fx->path, &eb), ERR_OK);
    store_close(fx->st);
    fx->st = NULL;
    sql_exec(fx->path, "PRAGMA journal_mode = DELETE; PRAGMA user_version = 99");
    expect_refused(fx, "newer memsync");
}

static void
test_postgres_unreachable(void **state)
{
    struct store *st = NULL;
    struct errbuf eb = {0};

    (void)state;
    assert_int_equal(
        store_open(&st, "postgresql://memsync:hunter2@127.0.0.1:1/memsync?connect_timeout=2", &eb),
        ERR_DB);
    assert_null(st);
    assert_non_null(strstr(eb.msg, "cannot connect to PostgreSQL"));
    assert_null(strstr(eb.msg, "hunter2"));
    assert_int_equal(store_open(&st, "postgres://127.0.0.1:1/x?connect_timeout=2", &eb), ERR_DB);
    assert_null(st);
}

/* ---- integrations ---------------------------------------------------------------------- */

static void
test_integrations(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct integration in, got, *list = NULL;
    size_t n = 0;

    assert_int_equal(store_integration_get(fx->st, fx->account, fx->integ, &got, &eb), ERR_OK);
    assert_string_equal(got.name, "msp");
    assert_string_equal(got.tenant_source, "partner_center");
    assert_null(got.partner_secret_sealed);
    assert_true(got.partner_secret_expires == TS_NULL);
    assert_int_equal(got.sync_interval, 21600);
    integration_clear(&got);

    memset(&in, 0, sizeof in);
    in.account_id = fx->account;
    in.name = "msp";
    in.partner_tenant_id = "t";
    in.partner_app_id = "p";
    in.sync_app_id = "s";
    in.partner_secret_expires = TS_NULL;
    in.sync_secret_expires = TS_NULL;
    assert_int_equal(store_integration_insert(fx->st, &in, &eb), ERR_EXISTS);
    in.name = "second";
    in.tenant_source = "gdap";
    assert_int_equal(store_integration_insert(fx->st, &in, &eb), ERR_OK);
    in.tenant_source = "bogus";
    in.name = "third";
    assert_int_equal(store_integration_insert(fx->st, &in, &eb), ERR_INVAL);

    assert_int_equal(store_tx_begin(fx->st, &eb), ERR_OK);
    assert_int_equal(store_integration_set_secret(fx->st, fx->integ, "partner", "v1.sealed", "abc",
                                                  T0 + 86400 * 365, &eb),
                     ERR_OK);
    assert_int_equal(
        store_integration_set_secret(fx->st, fx->integ, "sync", "v1.sealed2", "xyz", TS_NULL, &eb),
        ERR_OK);
    assert_int_equal(store_tx_commit(fx->st, &eb), ERR_OK);
    assert_int_equal(store_integration_set_secret(fx->st, 9999, "sync", "x", "x", TS_NULL, &eb),
                     ERR_NOTFOUND);
    assert_int_equal(store_integration_set_secret(fx->st, fx->integ, "other", "x", "x", 0, &eb),
                     ERR_INVAL);

    assert_int_equal(store_integration_list(fx->st, fx->account, &list, &n, &eb), ERR_OK);
    assert_int_equal(n, 2);
    assert_string_equal(list[0].partner_secret_sealed, "v1.sealed");
    assert_string_equal(list[0].partner_secret_hint, "abc");
    assert_true(list[0].partner_secret_expires == T0 + 86400 * 365);
    assert_string_equal(list[0].sync_secret_hint, "xyz");
    assert_true(list[0].sync_secret_expires == TS_NULL);
    assert_string_equal(list[1].name, "second");
    assert_string_equal(list[1].tenant_source, "gdap");
    for (size_t i = 0; i < n; i++)
        integration_clear(&list[i]);
    free(list);

    assert_int_equal(store_integration_delete(fx->st, fx->account, in.id, &eb), ERR_OK);
    assert_int_equal(store_integration_delete(fx->st, fx->account, in.id, &eb), ERR_NOTFOUND);
    assert_int_equal(store_integration_get(fx->st, fx->account, in.id, &got, &eb), ERR_NOTFOUND);
    /* Another account cannot see it. */
    assert_int_equal(store_integration_get(fx->st, fx->account + 1, fx->integ, &got, &eb),
                     ERR_NOTFOUND);
}

/* An integration's cloud and where each key's expiry came from (schema 11). */
/* API keys keep their expiry and when they were last used (schema 12); the last use is written
 * at most once a minute. */
static void
test_apikey_expiry_and_last_use(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    int64_t id = 0, never_id = 0, acc = 0, got_id = 0, exp = 0, used = 0;
    char *scope = NULL;

    assert_int_equal(store_apikey_insert(fx->st, fx->account, "psa", "read", "hash-1", "msk_1",
                                         INT64_C(1900000000), &id, &eb),
                     ERR_OK);
    assert_int_equal(store_apikey_insert(fx->st, fx->account, "old", "admin", "hash-2", "msk_2",
                                         TS_NULL, &never_id, &eb),
                     ERR_OK);
    assert_int_equal(store_apikey_find(fx->st, "hash-1", &acc, &got_id, &scope, &exp, &used, &eb),
                     ERR_OK);
    assert_int_equal(got_id, id);
    assert_string_equal(scope, "read");
    assert_true(exp == INT64_C(1900000000));
    assert_true(used == TS_NULL);
    free(scope);
    assert_int_equal(store_apikey_touch(fx->st, id, INT64_C(1800000000), &eb), ERR_OK);
    assert_int_equal(store_apikey_touch(fx->st, id, INT64_C(1800000030), &eb), ERR_OK);
    assert_int_equal(store_apikey_find(fx->st, "hash-1", &acc, &got_id, &scope, &exp, &used, &eb),
                     ERR_OK);
    free(scope);
    assert_true(used == INT64_C(1800000000)); /* the second use, 30 s later, wrote nothing */
    assert_int_equal(store_apikey_touch(fx->st, id, INT64_C(1800000060), &eb), ERR_OK);
    assert_int_equal(store_apikey_find(fx->st, "hash-1", &acc, &got_id, &scope, &exp, &used, &eb),
                     ERR_OK);
    free(scope);
    assert_true(used == INT64_C(1800000060));
    assert_int_equal(store_apikey_find(fx->st, "hash-2", &acc, &got_id, &scope, &exp, &used, &eb),
                     ERR_OK);
    free(scope);
    assert_true(exp == TS_NULL);
}

static int
count_secret_cb(void *arg, int64_t user_id, const char *sealed)
{
    (void)user_id;
    if (sealed != NULL && strncmp(sealed, "v1:", 3) == 0)
        (*(int *)arg)++;
    return 0;
}

/* Single sign-on (schema 14): settings per account, the first sign-in unlocking local-signin off,
 * users keyed by (account, tid, oid), role changes, re-sealing, removal turning passwords on. */
static int
sso_count_cb(void *arg, int64_t id, const char *s)
{
    (void)id;
    (void)s;
    (*(int *)arg)++;
    return ERR_OK;
}

static void
test_sso_state(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct account_sso in = {0}, got;
    struct user_row u;
    int64_t uid = 0, other_acc = 0, id2 = 0;
    int on = 0, n = 0;

    assert_int_equal(store_sso_get(fx->st, fx->account, &got, &eb), ERR_NOTFOUND);
    assert_int_equal(store_account_local_signin(fx->st, fx->account, 0, &eb), ERR_DENIED);
    in.account_id = fx->account;
    in.tenant_id = "t-1";
    in.client_id = "c-1";
    in.redirect_uri = "https://m.example/auth/sso/callback";
    in.secret_sealed = "v1:sealed";
    in.secret_hint = "abc";
    in.role_map = "g=admin";
    assert_int_equal(store_sso_set(fx->st, &in, &eb), ERR_OK);
    assert_int_equal(store_sso_get(fx->st, fx->account, &got, &eb), ERR_OK);
    assert_string_equal(got.tenant_id, "t-1");
    assert_string_equal(got.secret_sealed, "v1:sealed");
    assert_string_equal(got.role_map, "g=admin");
    assert_true(got.worked_at == TS_NULL);
    assert_int_equal(got.local_signin, 1);
    account_sso_clear(&got);
    assert_int_equal(store_sso_each(fx->st, sso_count_cb, &n, &eb), ERR_OK);
    assert_int_equal(n, 1);

    /* Off only once a sign-in worked; a new tenant or app forgets that it did. */
    assert_int_equal(store_account_local_signin(fx->st, fx->account, 0, &eb), ERR_DENIED);
    assert_int_equal(store_sso_worked(fx->st, fx->account, T0, &eb), ERR_OK);
    in.role_map = "g=viewer";
    assert_int_equal(store_sso_set(fx->st, &in, &eb), ERR_OK);
    assert_int_equal(store_sso_get(fx->st, fx->account, &got, &eb), ERR_OK);
    assert_true(got.worked_at == T0);
    account_sso_clear(&got);
    assert_int_equal(store_account_local_signin(fx->st, fx->account, 0, &eb), ERR_OK);
    assert_int_equal(store_account_local_signin_get(fx->st, fx->account, &on, &eb), ERR_OK);
    assert_int_equal(on, 0);
    in.tenant_id = "t-2";
    assert_int_equal(store_sso_set(fx->st, &in, &eb), ERR_OK);
    assert_int_equal(store_sso_get(fx->st, fx->account, &got, &eb), ERR_OK);
    assert_true(got.worked_at == TS_NULL);
    account_sso_clear(&got);

    /* Users by (account, tid, oid); the name stays unique across accounts. */
    assert_int_equal(store_user_sso_find(fx->st, fx->account, "t-2", "o-1", &u, &eb), ERR_NOTFOUND);
    assert_int_equal(
        store_user_sso_insert(fx->st, fx->account, "t-2", "o-1", "ada@x", "viewer", &uid, &eb),
        ERR_OK);
    assert_int_equal(store_user_sso_find(fx->st, fx->account, "t-2", "o-1", &u, &eb), ERR_OK);
    assert_true(u.id == uid);
    assert_string_equal(u.role, "viewer");
    assert_string_equal(u.password_hash, STORE_SSO_NO_PASSWORD);
    user_row_clear(&u);
    assert_int_equal(
        store_user_sso_insert(fx->st, fx->account, "t-2", "o-1", "ada2@x", "viewer", &id2, &eb),
        ERR_EXISTS);
    assert_int_equal(
        store_user_sso_insert(fx->st, fx->account, "t-2", "o-2", "ada@x", "viewer", &id2, &eb),
        ERR_EXISTS);
    assert_int_equal(store_account_ensure(fx->st, "other", &other_acc, &eb), ERR_OK);
    assert_int_equal(store_user_sso_find(fx->st, other_acc, "t-2", "o-1", &u, &eb), ERR_NOTFOUND);
    assert_int_equal(store_user_set_role(fx->st, uid, "admin", &eb), ERR_OK);
    assert_int_equal(store_user_sso_find(fx->st, fx->account, "t-2", "o-1", &u, &eb), ERR_OK);
    assert_string_equal(u.role, "admin");
    user_row_clear(&u);
    assert_int_equal(store_user_set_role(fx->st, uid, "owner", &eb), ERR_INVAL);

    /* Re-sealing, then removal: password sign-in comes back on. */
    assert_int_equal(store_sso_set_sealed(fx->st, fx->account, "v1:resealed", &eb), ERR_OK);
    assert_int_equal(store_sso_set_sealed(fx->st, other_acc, "v1:x", &eb), ERR_NOTFOUND);
    assert_int_equal(store_sso_get(fx->st, fx->account, &got, &eb), ERR_OK);
    assert_string_equal(got.secret_sealed, "v1:resealed");
    account_sso_clear(&got);
    assert_int_equal(store_sso_delete(fx->st, fx->account, &eb), ERR_OK);
    assert_int_equal(store_sso_delete(fx->st, fx->account, &eb), ERR_NOTFOUND);
    assert_int_equal(store_account_local_signin_get(fx->st, fx->account, &on, &eb), ERR_OK);
    assert_int_equal(on, 1);
}

/* A user's second factor (schema 13): enrolment, a step used once, single-use recovery codes,
 * the account's rule, re-sealing and clearing. */
/* Per-user preferences (schema 16): set, replaced, per user, gone with the user. */
static void
test_user_prefs(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    int64_t uid = 0, other = 0;
    char *v = NULL, big[STORE_PREF_MAX + 2];

    assert_int_equal(store_user_insert(fx->st, fx->account, "pia", "viewer", "pw", &uid, &eb),
                     ERR_OK);
    assert_int_equal(store_user_insert(fx->st, fx->account, "quin", "viewer", "pw", &other, &eb),
                     ERR_OK);
    assert_int_equal(store_pref_get(fx->st, uid, "hardware.columns", &v, &eb), ERR_NOTFOUND);
    assert_null(v);
    assert_int_equal(store_pref_set(fx->st, uid, "hardware.columns", "model,age", &eb), ERR_OK);
    assert_int_equal(store_pref_set(fx->st, uid, "hardware.columns", "serial", &eb), ERR_OK);
    assert_int_equal(store_pref_get(fx->st, uid, "hardware.columns", &v, &eb), ERR_OK);
    assert_string_equal(v, "serial");
    free(v);
    assert_int_equal(store_pref_get(fx->st, other, "hardware.columns", &v, &eb), ERR_NOTFOUND);
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    assert_int_equal(store_pref_set(fx->st, uid, "k", big, &eb), ERR_INVAL);
    assert_int_equal(store_user_delete(fx->st, uid, &eb), ERR_OK);
    assert_int_equal(store_pref_get(fx->st, uid, "hardware.columns", &v, &eb), ERR_NOTFOUND);
}

static void
test_totp_state(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct user_totp t;
    int64_t uid = 0, other = 0, code0;
    const char *const hashes[] = {"h-a", "h-b", "h-c"};
    int seen = 0;

    assert_int_equal(store_user_insert(fx->st, fx->account, "ana", "viewer", "pw", &uid, &eb),
                     ERR_OK);
    assert_int_equal(store_user_insert(fx->st, fx->account, "ben", "viewer", "pw", &other, &eb),
                     ERR_OK);
    assert_int_equal(store_totp_get(fx->st, uid, &t, &eb), ERR_OK);
    assert_null(t.secret_sealed);
    assert_true(t.enrolled_at == TS_NULL);
    assert_true(t.last_step == -1);
    assert_int_equal(t.require, 0);
    assert_int_equal(t.ncodes, 0);
    user_totp_clear(&t);
    assert_int_equal(store_totp_get(fx->st, 999999, &t, &eb), ERR_NOTFOUND);

    /* Not confirmed yet: nothing to use a code against. */
    assert_int_equal(store_totp_begin(fx->st, uid, "v1:sealed-1", &eb), ERR_OK);
    assert_int_equal(store_totp_use_step(fx->st, uid, 100, &eb), ERR_AUTH);
    assert_int_equal(store_totp_enrol(fx->st, other, 100, T0, hashes, 3, &eb), ERR_NOTFOUND);
    assert_int_equal(store_totp_enrol(fx->st, uid, 100, T0, hashes, 3, &eb), ERR_OK);
    assert_int_equal(store_totp_enrol(fx->st, uid, 101, T0, hashes, 3, &eb), ERR_NOTFOUND);
    /* Enrolled: a new secret needs the old one cleared first. */
    assert_int_equal(store_totp_begin(fx->st, uid, "v1:sealed-2", &eb), ERR_EXISTS);
    assert_int_equal(store_totp_begin(fx->st, 999999, "v1:sealed-2", &eb), ERR_NOTFOUND);
    assert_int_equal(store_totp_get(fx->st, uid, &t, &eb), ERR_OK);
    assert_string_equal(t.secret_sealed, "v1:sealed-1");
    assert_true(t.enrolled_at == T0);
    assert_true(t.last_step == 100);
    assert_int_equal(t.ncodes, 3);
    assert_string_equal(t.code_hash[0], "h-a");
    code0 = t.code_id[0];
    user_totp_clear(&t);

    /* A step is accepted once, and only forward. */
    assert_int_equal(store_totp_use_step(fx->st, uid, 100, &eb), ERR_AUTH);
    assert_int_equal(store_totp_use_step(fx->st, uid, 99, &eb), ERR_AUTH);
    assert_int_equal(store_totp_use_step(fx->st, uid, 101, &eb), ERR_OK);
    assert_int_equal(store_totp_use_step(fx->st, uid, 101, &eb), ERR_AUTH);

    /* A recovery code works once, and only for its user. */
    assert_int_equal(store_totp_recovery_use(fx->st, other, code0, T0 + 1, &eb), ERR_NOTFOUND);
    assert_int_equal(store_totp_recovery_use(fx->st, uid, code0, T0 + 1, &eb), ERR_OK);
    assert_int_equal(store_totp_recovery_use(fx->st, uid, code0, T0 + 2, &eb), ERR_NOTFOUND);
    assert_int_equal(store_totp_get(fx->st, uid, &t, &eb), ERR_OK);
    assert_int_equal(t.ncodes, 2);
    assert_string_equal(t.code_hash[0], "h-b");
    user_totp_clear(&t);

    /* The account's rule shows on each of its users. */
    assert_int_equal(store_account_require_totp(fx->st, fx->account, 1, &eb), ERR_OK);
    assert_int_equal(store_totp_get(fx->st, other, &t, &eb), ERR_OK);
    assert_int_equal(t.require, 1);
    user_totp_clear(&t);
    assert_int_equal(store_account_require_totp(fx->st, 999999, 1, &eb), ERR_NOTFOUND);

    /* Key rotation sees every envelope and replaces it in place. */
    assert_int_equal(store_totp_secrets_each(fx->st, count_secret_cb, &seen, &eb), ERR_OK);
    assert_int_equal(seen, 1);
    assert_int_equal(store_totp_set_sealed(fx->st, uid, "v1:sealed-3", &eb), ERR_OK);
    assert_int_equal(store_totp_set_sealed(fx->st, other, "v1:sealed-3", &eb), ERR_NOTFOUND);
    assert_int_equal(store_totp_get(fx->st, uid, &t, &eb), ERR_OK);
    assert_string_equal(t.secret_sealed, "v1:sealed-3");
    assert_true(t.enrolled_at == T0);
    user_totp_clear(&t);

    /* Clearing (an admin's reset) removes secret, enrolment and codes. */
    assert_int_equal(store_totp_clear(fx->st, uid, &eb), ERR_OK);
    assert_int_equal(store_totp_get(fx->st, uid, &t, &eb), ERR_OK);
    assert_null(t.secret_sealed);
    assert_true(t.enrolled_at == TS_NULL);
    assert_true(t.last_step == -1);
    assert_int_equal(t.ncodes, 0);
    user_totp_clear(&t);
    assert_int_equal(store_totp_clear(fx->st, 999999, &eb), ERR_NOTFOUND);
    /* Removing a user removes their recovery codes with them. */
    assert_int_equal(store_totp_begin(fx->st, other, "v1:sealed-4", &eb), ERR_OK);
    assert_int_equal(store_totp_enrol(fx->st, other, 5, T0, hashes, 3, &eb), ERR_OK);
    assert_int_equal(store_user_delete(fx->st, other, &eb), ERR_OK);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM user_recovery_code"), 0);
}

static void
test_integration_cloud_and_expiry_source(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct integration in, got;

    assert_int_equal(store_integration_get(fx->st, fx->account, fx->integ, &got, &eb), ERR_OK);
    assert_string_equal(got.cloud, "global");
    assert_null(got.sync_secret_expiry_source);
    integration_clear(&got);

    memset(&in, 0, sizeof in);
    in.account_id = fx->account;
    in.name = "gcc-high";
    in.partner_tenant_id = "t";
    in.partner_app_id = "p";
    in.sync_app_id = "s";
    in.partner_secret_expires = TS_NULL;
    in.sync_secret_expires = TS_NULL;
    in.cloud = "usgov";
    assert_int_equal(store_integration_insert(fx->st, &in, &eb), ERR_OK);
    assert_int_equal(store_integration_get(fx->st, fx->account, in.id, &got, &eb), ERR_OK);
    assert_string_equal(got.cloud, "usgov");
    integration_clear(&got);
    in.name = "nowhere";
    in.cloud = "mars";
    assert_int_equal(store_integration_insert(fx->st, &in, &eb), ERR_INVAL);

    assert_int_equal(
        store_integration_set_expiry(fx->st, fx->integ, "sync", T0 + 86400, "microsoft", &eb),
        ERR_OK);
    assert_int_equal(store_integration_get(fx->st, fx->account, fx->integ, &got, &eb), ERR_OK);
    assert_true(got.sync_secret_expires == T0 + 86400);
    assert_string_equal(got.sync_secret_expiry_source, "microsoft");
    assert_null(got.partner_secret_expiry_source);
    integration_clear(&got);
    /* A key entered again is an entered date again. */
    assert_int_equal(
        store_integration_set_secret(fx->st, fx->integ, "sync", "x", "abc", T0 + 7200, &eb),
        ERR_OK);
    assert_int_equal(store_integration_get(fx->st, fx->account, fx->integ, &got, &eb), ERR_OK);
    assert_null(got.sync_secret_expiry_source);
    assert_true(got.sync_secret_expires == T0 + 7200);
    integration_clear(&got);
    assert_int_equal(store_integration_set_expiry(fx->st, 9999, "sync", T0, "microsoft", &eb),
                     ERR_NOTFOUND);
    assert_int_equal(store_integration_set_expiry(fx->st, fx->integ, "sync", T0, "guess", &eb),
                     ERR_INVAL);

    /* A schema 8 database (before these columns) is migrated: its integration is global. */
    store_close(fx->st);
    fx->st = NULL;
    if (fx->pg_url == NULL)
        sql_exec(fx->path,
                 "BEGIN;"
                 /* schema 9's and 10's columns: their migrations add them again */
                 "DROP INDEX hardware_asset_missing;"
                 "ALTER TABLE hardware_asset DROP COLUMN missing_since;"
                 "ALTER TABLE hardware_asset DROP COLUMN missing_syncs;"
                 "ALTER TABLE client DROP COLUMN warning_code;"
                 "ALTER TABLE client DROP COLUMN warning_message;"
                 "ALTER TABLE client DROP COLUMN warning_remedy;"
                 "ALTER TABLE client DROP COLUMN error_request_id;"
                 "ALTER TABLE client DROP COLUMN error_date;"
                 "ALTER TABLE sync_tenant_result DROP COLUMN error_request_id;"
                 "ALTER TABLE sync_tenant_result DROP COLUMN error_date;"
                 "ALTER TABLE integration DROP COLUMN cloud;"
                 "ALTER TABLE integration DROP COLUMN partner_secret_expiry_source;"
                 "ALTER TABLE integration DROP COLUMN sync_secret_expiry_source;"
                 "ALTER TABLE api_key DROP COLUMN expires_at;"          /* schema 12 */
                 "ALTER TABLE app_user DROP COLUMN totp_secret_sealed;" /* schema 13 */
                 "ALTER TABLE app_user DROP COLUMN totp_enrolled_at;"
                 "ALTER TABLE app_user DROP COLUMN totp_last_step;"
                 "ALTER TABLE account DROP COLUMN require_totp;"
                 "DROP TABLE user_recovery_code;"
                 "DROP INDEX app_user_sso; DROP TABLE account_sso;" /* schema 14 */
                 "ALTER TABLE app_user DROP COLUMN sso_tid;"
                 "ALTER TABLE app_user DROP COLUMN sso_oid;"
                 "ALTER TABLE account DROP COLUMN local_signin;"
                 "DROP TABLE user_pref; DROP INDEX sync_tenant_result_tenant;" /* schema 16 */
                 "DROP TABLE webhook_expiry_sent; DROP TABLE webhook_position; DROP TABLE "
                 "webhook_delivery;"
                 "DROP TABLE webhook;"
                 "DROP TABLE change_event;" /* schema 15 */
                 "ALTER TABLE hardware_asset DROP COLUMN updated_at;"
                 "PRAGMA user_version = 8; COMMIT;");
    else
        pg_exec(fx->pg_url,
                "DROP INDEX hardware_asset_missing;"
                "ALTER TABLE hardware_asset DROP COLUMN missing_since;"
                "ALTER TABLE hardware_asset DROP COLUMN missing_syncs;"
                "ALTER TABLE client DROP COLUMN warning_code, DROP COLUMN "
                "warning_message, DROP COLUMN warning_remedy;"
                "ALTER TABLE client DROP COLUMN error_request_id, DROP COLUMN "
                "error_date;"
                "ALTER TABLE sync_tenant_result DROP COLUMN error_request_id, "
                "DROP COLUMN error_date;"
                "ALTER TABLE integration DROP COLUMN cloud;"
                "ALTER TABLE integration DROP COLUMN partner_secret_expiry_source;"
                "ALTER TABLE integration DROP COLUMN sync_secret_expiry_source;"
                "ALTER TABLE api_key DROP COLUMN expires_at;"          /* schema 12 */
                "ALTER TABLE app_user DROP COLUMN totp_secret_sealed;" /* schema 13 */
                "ALTER TABLE app_user DROP COLUMN totp_enrolled_at;"
                "ALTER TABLE app_user DROP COLUMN totp_last_step;"
                "ALTER TABLE account DROP COLUMN require_totp;"
                "DROP TABLE user_recovery_code;"
                "DROP INDEX app_user_sso; DROP TABLE account_sso;" /* schema 14 */
                "ALTER TABLE app_user DROP COLUMN sso_tid, DROP COLUMN sso_oid;"
                "ALTER TABLE account DROP COLUMN local_signin;"
                "DROP TABLE user_pref; DROP INDEX sync_tenant_result_tenant;" /* schema 16 */
                "DROP TABLE webhook_expiry_sent; DROP TABLE webhook_position; DROP TABLE "
                "webhook_delivery;"
                "DROP TABLE webhook;"
                "DROP TABLE change_event;" /* schema 15 */
                "ALTER TABLE hardware_asset DROP COLUMN updated_at;"
                "DROP FUNCTION memsync_change_seq();"
                "ALTER TABLE data_version DROP COLUMN change_seq;"
                "ALTER TABLE sync_job DROP COLUMN leased_at;" /* schema 18 */
                "UPDATE memsync_meta SET value = 8 WHERE key = 'schema_version'");
    assert_int_equal(store_open(&fx->st, fx->pg_url != NULL ? fx->pg_url : fx->path, &eb), ERR_OK);
    assert_int_equal(store_integration_get(fx->st, fx->account, in.id, &got, &eb), ERR_OK);
    assert_string_equal(got.cloud, "global");
    assert_null(got.sync_secret_expiry_source);
    integration_clear(&got);
    assert_int_equal(db_int(fx, fx->pg_url == NULL ? "PRAGMA user_version"
                                                   : "SELECT value FROM memsync_meta WHERE key = "
                                                     "'schema_version'"),
                     STORE_SCHEMA_VERSION);
}

/* ---- reconcile ------------------------------------------------------------------------- */

static void
test_reconcile_created_updated_unchanged(void **state)
{
    struct fx *fx = *state;
    struct device d[2];
    struct reconcile_counts c;

    mkdev(&d[0], "dev-a", "LAPTOP-A", "SN-A");
    mkdev(&d[1], "dev-b", "LAPTOP-B", "SN-B");
    c = sync_tenant(fx, &ci_a, d, 2, 1, T0);
    assert_int_equal(c.created, 2);
    assert_int_equal(c.updated + c.unchanged + c.retired, 0);

    free(d[1].os_version);
    d[1].os_version = xstrdup("10.0.22631.3447");
    d[1].storage_free = INT64_C(4294967296);
    c = sync_tenant(fx, &ci_a, d, 2, 1, T0 + 3600);
    assert_int_equal(c.created, 0);
    assert_int_equal(c.updated, 1);
    assert_int_equal(c.unchanged, 1);
    assert_int_equal(c.retired, 0);

    {
        static const char sql[] = "SELECT field || '|' || old_value || '|' || new_value || '|' || "
                                  "CAST(at AS TEXT) FROM asset_change ORDER BY field";
        /* The free storage moves on its own: the asset keeps it, the history does not. */
        char *r0 = db_text(fx, sql, 0), *r1 = db_text(fx, sql, 1), *r2 = db_text(fx, sql, 2);
        assert_string_equal(r0, "os_version|10.0.19045.4291|10.0.22631.3447|1767229200");
        assert_string_equal(r1, "");
        assert_string_equal(r2, "");
        free(r0);
        free(r1);
        free(r2);
    }
    {
        struct hist h;
        struct errbuf e2 = {0};
        int64_t id = db_int(fx, "SELECT id FROM hardware_asset WHERE intune_device_id = 'dev-b'");
        memset(&h, 0, sizeof h);
        assert_int_equal(store_asset_changes_each(fx->st, fx->account, id, collect_hist, &h, &e2),
                         ERR_OK);
        assert_int_equal(h.n, 1);
        assert_string_equal(h.text[0], "os_version:10.0.19045.4291>10.0.22631.3447");
        assert_int_equal(
            store_asset_changes_each(fx->st, fx->account + 1, id, collect_hist, &h, &e2),
            ERR_NOTFOUND);
    }
    free_devs(d, 2);
}

/* A device whose only changes are its last check-in and free storage (every sync moves them)
 * is written with the new values and records no history row; a real change next to them does. */
static void
test_volatile_fields_not_history(void **state)
{
    struct fx *fx = *state;
    struct device d[1];
    struct reconcile_counts c;
    struct seen s;

    mkdev(&d[0], "dev-v", "LAPTOP-V", "SN-V");
    d[0].last_check_in_at = T0 - 600;
    c = sync_tenant(fx, &ci_a, d, 1, 1, T0);
    assert_int_equal(c.created, 1);
    d[0].last_check_in_at = T0 + 3000;
    d[0].storage_free = INT64_C(1073741824);
    c = sync_tenant(fx, &ci_a, d, 1, 1, T0 + 3600);
    assert_int_equal(c.updated, 1);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM asset_change"), 0);
    assert_int_equal(db_int(fx, "SELECT last_check_in_at FROM hardware_asset WHERE "
                                "intune_device_id = 'dev-v'"),
                     T0 + 3000);
    s = list_assets(fx, 0);
    assert_int_equal(s.n, 1);
    d[0].last_check_in_at = T0 + 6000;
    free(d[0].name);
    d[0].name = xstrdup("LAPTOP-V2");
    c = sync_tenant(fx, &ci_a, d, 1, 1, T0 + 7200);
    assert_int_equal(c.updated, 1);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM asset_change"), 1);
    {
        char *r = db_text(fx,
                          "SELECT field || '|' || old_value || '|' || new_value FROM "
                          "asset_change",
                          0);
        assert_string_equal(r, "name|LAPTOP-V|LAPTOP-V2");
        free(r);
    }
    assert_true(store_device_field_volatile("last_check_in_at"));
    assert_false(store_device_field_volatile("os_version"));
    free_devs(d, 1);
}

static void
test_complete_listing_retires_missing(void **state)
{
    struct fx *fx = *state;
    struct device d[3];
    struct reconcile_counts c;
    struct seen s;

    mkdev(&d[0], "dev-a", "A", "SN-A");
    mkdev(&d[1], "dev-b", "B", "SN-B");
    mkdev(&d[2], "dev-c", "C", "SN-C");
    sync_tenant(fx, &ci_a, d, 3, 1, T0);
    sync_tenant(fx, &ci_b, d, 1, 1, T0); /* other tenant: must not be touched */

    /* Incomplete listing without B: nothing retired. */
    c = sync_tenant(fx, &ci_a, (struct device[]){d[0]}, 1, 0, T0 + 60);
    assert_int_equal(c.retired, 0);
    assert_int_equal(list_assets(fx, 0).n, 4);

    /* Complete listing of A and C: exactly B retired. */
    {
        struct device two[2] = {d[0], d[2]};
        c = sync_tenant(fx, &ci_a, two, 2, 1, T0 + 120);
    }
    assert_int_equal(c.retired, 1);
    assert_int_equal(c.unchanged, 2);
    s = list_assets(fx, 0);
    assert_int_equal(s.n, 3);
    for (int i = 0; i < s.n; i++)
        assert_string_not_equal(s.names[i], "B");
    s = list_assets(fx, 1);
    assert_int_equal(s.n, 4);
    for (int i = 0; i < s.n; i++) {
        if (strcmp(s.names[i], "B") == 0)
            assert_true(s.retired[i] == T0 + 120);
        else
            assert_true(s.retired[i] == TS_NULL);
    }

    /* B reappears: revived, counted as updated. */
    c = sync_tenant(fx, &ci_a, d, 3, 1, T0 + 180);
    assert_int_equal(c.revived, 1);
    assert_int_equal(c.updated, 1);
    assert_int_equal(c.unchanged, 2);
    assert_int_equal(c.retired, 0);
    s = list_assets(fx, 0);
    assert_int_equal(s.n, 4);
    free_devs(d, 3);
}

/* One sync of tenant ci under policy p (NULL: the store's default), with an optional warning;
 * *would / *active: the retirement preview before the commit. */
static struct reconcile_counts
sync_policy(struct fx *fx, const struct client_info *ci, struct device *devs, size_t n,
            int complete, int64_t now, const struct retire_policy *p, const char *warn,
            int64_t *would, int64_t *active)
{
    struct errbuf eb = {0};
    struct reconcile_counts c;
    int64_t w = -1, a = -1;

    memset(&c, 0, sizeof c);
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, ci, now, &eb), ERR_OK);
    for (size_t i = 0; i < n; i++)
        assert_int_equal(store_reconcile_device(fx->st, &devs[i], &eb), ERR_OK);
    if (p != NULL)
        assert_int_equal(store_reconcile_policy(fx->st, p, &eb), ERR_OK);
    assert_int_equal(store_reconcile_retire_preview(fx->st, &w, &a, &eb), ERR_OK);
    if (would != NULL)
        *would = w;
    if (active != NULL)
        *active = a;
    if (warn != NULL)
        assert_int_equal(store_reconcile_warning(fx->st, warn, "msg", "do this", &eb), ERR_OK);
    assert_int_equal(retire_commit(fx->st, NULL, complete, complete, &c, &eb), ERR_OK);
    return c;
}

static int64_t
missing_of(const struct seen *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return s->missing[i];
    fail_msg("no asset %s", name);
    return 0;
}

static int64_t
retired_of(const struct seen *s, const char *name)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->names[i], name) == 0)
            return s->retired[i];
    fail_msg("no asset %s", name);
    return 0;
}

/* The default policy: retired only after two complete listings and 24 hours without it; an
 * incomplete listing neither marks nor retires; seen again clears the marks, without history. */
static void
test_retire_policy(void **state)
{
    struct fx *fx = *state;
    struct device d[3];
    struct device ac[2];
    struct reconcile_counts c;
    struct seen s;
    struct hist h = {0};
    struct errbuf eb = {0};
    int64_t would = 0, active = 0;

    mkdev(&d[0], "dev-a", "A", "SN-A");
    mkdev(&d[1], "dev-b", "B", "SN-B");
    mkdev(&d[2], "dev-c", "C", "SN-C");
    ac[0] = d[0];
    ac[1] = d[2];
    sync_policy(fx, &ci_a, d, 3, 1, T0, NULL, NULL, NULL, NULL);

    /* An incomplete listing without B: no mark. */
    c = sync_policy(fx, &ci_a, ac, 2, 0, T0 + 60, NULL, NULL, NULL, NULL);
    assert_int_equal(c.missing, 0);
    s = list_assets(fx, 1);
    assert_true(missing_of(&s, "B") == TS_NULL);

    /* First complete listing without B: marked, not retired. */
    c = sync_policy(fx, &ci_a, ac, 2, 1, T0 + 120, NULL, NULL, &would, &active);
    assert_int_equal(would, 0);
    assert_int_equal(active, 3);
    assert_int_equal(c.missing, 1);
    assert_int_equal(c.retired, 0);
    s = list_assets(fx, 0);
    assert_int_equal(s.n, 3);
    assert_true(missing_of(&s, "B") == T0 + 120);
    assert_true(missing_of(&s, "A") == TS_NULL);

    /* Seen again: the marks go, and no history row says so. */
    c = sync_policy(fx, &ci_a, d, 3, 1, T0 + 180, NULL, NULL, NULL, NULL);
    assert_int_equal(c.missing, 0);
    assert_int_equal(c.unchanged, 3);
    s = list_assets(fx, 0);
    assert_true(missing_of(&s, "B") == TS_NULL);
    for (int i = 0; i < s.n; i++)
        if (strcmp(s.names[i], "B") == 0)
            assert_int_equal(
                store_asset_changes_each(fx->st, fx->account, s.ids[i], collect_hist, &h, &eb),
                ERR_OK);
    assert_int_equal(h.n, 0);

    /* Gone again: two complete listings within 24 hours keep it... */
    sync_policy(fx, &ci_a, ac, 2, 1, T0 + 240, NULL, NULL, NULL, NULL);
    c = sync_policy(fx, &ci_a, ac, 2, 1, T0 + 3600, NULL, NULL, &would, NULL);
    assert_int_equal(would, 0);
    assert_int_equal(c.retired, 0);
    s = list_assets(fx, 0);
    assert_int_equal(s.n, 3);
    assert_true(missing_of(&s, "B") == T0 + 240); /* the first listing that lacked it */

    /* ...24 hours after the first one, the next complete listing retires it. */
    c = sync_policy(fx, &ci_a, ac, 2, 1, T0 + 240 + 86400, NULL, NULL, &would, &active);
    assert_int_equal(would, 1);
    assert_int_equal(active, 3);
    assert_int_equal(c.retired, 1);
    s = list_assets(fx, 1);
    assert_true(retired_of(&s, "B") == T0 + 240 + 86400);
    assert_true(missing_of(&s, "B") == T0 + 240);
    assert_int_equal(list_assets(fx, 0).n, 2);

    /* Listed again: revived, no longer missing. */
    c = sync_policy(fx, &ci_a, d, 3, 1, T0 + 300 + 86400, NULL, NULL, NULL, NULL);
    assert_int_equal(c.revived, 1);
    s = list_assets(fx, 0);
    assert_int_equal(s.n, 3);
    assert_true(missing_of(&s, "B") == TS_NULL);
    free_devs(d, 3);
}

/* hold: nothing retires although the policy would, the marks still advance; the client's
 * warning is stored with the commit and replaced (cleared) by the next one. */
static void
test_retire_hold_and_warning(void **state)
{
    struct fx *fx = *state;
    struct device d[6];
    struct retire_policy now = {1, 0, 0}, hold = {1, 0, 1};
    struct reconcile_counts c;
    struct client_row cr = {0};
    struct errbuf eb = {0};
    int64_t would = 0, active = 0;
    char id[8], name[8];

    for (int i = 0; i < 6; i++) {
        snprintf(id, sizeof id, "dev-%d", i);
        snprintf(name, sizeof name, "N%d", i);
        mkdev(&d[i], id, name, NULL);
    }
    sync_policy(fx, &ci_a, d, 6, 1, T0, &now, NULL, NULL, NULL);
    c = sync_policy(fx, &ci_a, d, 2, 1, T0 + 60, &hold, "retire_held", &would, &active);
    assert_int_equal(would, 4);
    assert_int_equal(active, 6);
    assert_int_equal(c.missing, 4);
    assert_int_equal(c.retired, 0);
    assert_int_equal(list_assets(fx, 0).n, 6);
    assert_int_equal(first_client(fx, &cr), ERR_OK);
    assert_string_equal(cr.status, "ok");
    assert_string_equal(cr.warning_code, "retire_held");
    assert_string_equal(cr.warning_message, "msg");
    assert_string_equal(cr.warning_remedy, "do this");
    client_row_clear(&cr);

    /* Confirmed (no hold): they retire; no warning: the client's is cleared. */
    c = sync_policy(fx, &ci_a, d, 2, 1, T0 + 120, &now, NULL, &would, NULL);
    assert_int_equal(would, 4);
    assert_int_equal(c.retired, 4);
    assert_int_equal(list_assets(fx, 0).n, 2);
    assert_int_equal(first_client(fx, &cr), ERR_OK);
    assert_null(cr.warning_code);
    assert_null(cr.warning_message);
    assert_int_equal(cr.device_count, 2);
    client_row_clear(&cr);

    /* A policy out of range is refused. */
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_a, T0 + 180, &eb),
                     ERR_OK);
    {
        struct retire_policy bad = {0, 0, 0};
        assert_int_equal(store_reconcile_policy(fx->st, &bad, &eb), ERR_INVAL);
    }
    store_reconcile_rollback(fx->st);
    free_devs(d, 6);
}

static void
test_rollback_leaves_nothing(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct device d;
    struct asset_query q;

    mkdev(&d, "dev-a", "A", "SN-A");
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_a, T0, &eb), ERR_OK);
    assert_int_equal(store_reconcile_device(fx->st, &d, &eb), ERR_OK);
    store_reconcile_rollback(fx->st);
    memset(&q, 0, sizeof q);
    q.account_id = fx->account;
    q.include_retired = 1;
    assert_int_equal(store_assets_count(fx->st, &q, &eb), 0);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM client"), 0);
    /* The store is usable afterwards. */
    sync_tenant(fx, &ci_a, &d, 1, 1, T0);
    assert_int_equal(store_assets_count(fx->st, &q, &eb), 1);
    /* A failed step poisons the transaction: commit refuses and nothing is kept. */
    {
        struct device e, two[1];
        struct reconcile_counts c;
        mkdev(&e, "dev-new", "NEW", "SN-N");
        two[0] = e;
        assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_a, T0 + 60, &eb),
                         ERR_OK);
        assert_int_equal(store_reconcile_device(fx->st, &two[0], &eb), ERR_OK);
        assert_int_equal(store_reconcile_installs(fx->st, "missing", NULL, 0, &eb), ERR_NOTFOUND);
        assert_int_equal(store_reconcile_commit(fx->st, 1, 1, &c, &eb), ERR_INVAL);
        assert_non_null(strstr(eb.msg, "earlier step failed"));
        assert_int_equal(store_assets_count(fx->st, &q, &eb), 1);
        device_clear(&e);
    }
    /* A reconcile call outside begin/commit is refused. */
    assert_int_equal(store_reconcile_device(fx->st, &d, &eb), ERR_INVAL);
    device_clear(&d);
}

/* Group commit: tenants of a batch are savepoints of one transaction. A tenant rolled back
 * inside it takes nothing else with it; other connections see the batch only once it commits;
 * a batch never committed (a crash, a close) leaves nothing. PostgreSQL commits each tenant. */
static void
test_batch_group_commit(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct device a, b;
    int batched;

    mkdev(&a, "dev-a", "A", "SN-A");
    mkdev(&b, "dev-b", "B", "SN-B");
    batched = store_batch_begin(fx->st, &eb);
    assert_int_equal(batched, fx->pg_url == NULL ? 1 : 0);
    if (batched)
        assert_true(store_batch_begin(fx->st, &eb) < 0);
    sync_tenant(fx, &ci_a, &a, 1, 1, T0);
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_b, T0, &eb), ERR_OK);
    assert_int_equal(store_reconcile_device(fx->st, &b, &eb), ERR_OK);
    store_reconcile_rollback(fx->st);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM hardware_asset"), batched ? 0 : 1);
    assert_int_equal(store_batch_commit(fx->st, &eb), ERR_OK);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM hardware_asset"), 1);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM client"), 1);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM hardware_asset WHERE serial_number = 'SN-B'"),
                     0);
    /* Committing with no batch open is a no-op. */
    assert_int_equal(store_batch_commit(fx->st, &eb), ERR_OK);
    /* Committing with a tenant still open keeps nothing of the batch. */
    if (batched) {
        assert_int_equal(store_batch_begin(fx->st, &eb), 1);
        sync_tenant(fx, &ci_b, &b, 1, 1, T0 + 30);
        assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_a, T0 + 30, &eb),
                         ERR_OK);
        assert_int_equal(store_batch_commit(fx->st, &eb), ERR_INVAL);
        assert_int_equal(db_int(fx, "SELECT count(*) FROM hardware_asset WHERE serial_number = "
                                    "'SN-B'"),
                         0);
        assert_int_equal(store_reconcile_device(fx->st, &a, &eb), ERR_INVAL);
    }

    /* A batch that is never committed: closing the store (as a crash would) keeps nothing. */
    assert_int_equal(store_batch_begin(fx->st, &eb), batched);
    sync_tenant(fx, &ci_b, &b, 1, 1, T0 + 60);
    store_close(fx->st);
    fx->st = NULL;
    assert_int_equal(db_int(fx, "SELECT count(*) FROM hardware_asset WHERE serial_number = 'SN-B'"),
                     batched ? 0 : 1);
    assert_int_equal(store_open(&fx->st, fx->pg_url != NULL ? fx->pg_url : fx->path, &eb), ERR_OK);
    /* The reopened store syncs normally, in a batch or not. */
    assert_int_equal(store_batch_begin(fx->st, &eb), batched);
    sync_tenant(fx, &ci_b, &b, 1, 1, T0 + 120);
    sync_tenant(fx, &ci_a, &a, 1, 1, T0 + 120);
    assert_int_equal(store_batch_commit(fx->st, &eb), ERR_OK);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM hardware_asset"), 2);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM client WHERE status = 'ok'"), 2);
    device_clear(&a);
    device_clear(&b);
}

/* A device may report the same title twice (two detected apps with one name, version,
 * publisher and platform): one install, on a new device and on a known one, among many. */
static void
test_same_title_twice_on_a_device(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct device d;
    struct reconcile_counts c;
    struct app_ref apps[301];
    char names[150][16];

    for (int i = 0; i < 150; i++) {
        snprintf(names[i], sizeof names[i], "App %03d", i);
        apps[2 * i] = (struct app_ref){names[i], "1.0", "Contoso", "windows", -1};
        apps[2 * i + 1] = (struct app_ref){names[(i * 7) % 150], "1.0", "Contoso", "windows", -1};
    }
    apps[300] = apps[0];
    mkdev(&d, "dev-a", "A", "SN-A");
    for (int round = 0; round < 2; round++) { /* a new device, then a known one */
        assert_int_equal(
            store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_a, T0 + round, &eb), ERR_OK);
        assert_int_equal(store_reconcile_device(fx->st, &d, &eb), ERR_OK);
        assert_int_equal(store_reconcile_installs(fx->st, "dev-a", apps, 301, &eb), ERR_OK);
        assert_int_equal(store_reconcile_commit(fx->st, 1, 1, &c, &eb), ERR_OK);
        assert_int_equal(c.installs_added, round == 0 ? 150 : 0);
        assert_int_equal(c.installs_removed, 0);
        assert_int_equal(db_int(fx, "SELECT count(*) FROM software_install"), 150);
    }
    device_clear(&d);
}

struct sw_seen {
    int n;
    char names[8][32];
    int64_t size[8];
    int64_t devices[8];
    int null_publisher[8];
};

static int
collect_sw(void *arg, const struct software_row *r)
{
    struct sw_seen *s = arg;

    if (s->n >= 8)
        return ERR_TOOBIG;
    snprintf(s->names[s->n], sizeof s->names[0], "%s", r->name);
    s->size[s->n] = r->size_bytes;
    s->devices[s->n] = r->device_count;
    s->null_publisher[s->n] = r->publisher == NULL;
    s->n++;
    return 0;
}

/* The last_seen_at of each row of a software_devices list. */
static int
collect_last_seen(void *arg, const struct store_cell *cells, size_t n)
{
    int64_t *out = arg;

    for (size_t i = 0; i < n; i++)
        if (strcmp(cells[i].name, "last_seen_at") == 0)
            *out = cells[i].i;
    return 0;
}

static void
test_installs(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct device d;
    struct reconcile_counts c;
    const struct app_ref apps[] = {
        {"Microsoft Edge", "124.0.2478.80", "Microsoft", "windows", INT64_C(5000000000)},
        {"7-Zip", "23.01", NULL, NULL, -1},
    };

    mkdev(&d, "dev-a", "A", "SN-A");
    /* Both apps. */
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_a, T0, &eb), ERR_OK);
    assert_int_equal(store_reconcile_device(fx->st, &d, &eb), ERR_OK);
    assert_int_equal(store_reconcile_installs(fx->st, "dev-a", apps, 2, &eb), ERR_OK);
    assert_int_equal(store_reconcile_commit(fx->st, 1, 1, &c, &eb), ERR_OK);
    assert_int_equal(c.installs_added, 2);
    assert_int_equal(c.installs_removed, 0);
    assert_int_equal(db_int(fx, "SELECT software_count FROM client"), 2);
    assert_true(db_int(fx, "SELECT size_bytes FROM software_title WHERE name = "
                           "'Microsoft Edge'") == INT64_C(5000000000));

    /* Only Edge: 7-Zip removed (kept, with removed_at). */
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_a, T0 + 60, &eb),
                     ERR_OK);
    assert_int_equal(store_reconcile_device(fx->st, &d, &eb), ERR_OK);
    assert_int_equal(store_reconcile_installs(fx->st, "dev-a", apps, 1, &eb), ERR_OK);
    assert_int_equal(store_reconcile_commit(fx->st, 1, 1, &c, &eb), ERR_OK);
    assert_int_equal(c.installs_added, 0);
    assert_int_equal(c.installs_removed, 1);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_install"), 2);
    assert_true(db_int(fx, "SELECT removed_at FROM software_install i JOIN software_title "
                           "t ON t.id = i.title_id WHERE t.name = '7-Zip'") == T0 + 60);
    assert_int_equal(db_int(fx, "SELECT software_count FROM client"), 1);

    /* Incomplete installs: nothing removed even though nothing was reported. */
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_a, T0 + 90, &eb),
                     ERR_OK);
    assert_int_equal(store_reconcile_commit(fx->st, 0, 0, &c, &eb), ERR_OK);
    assert_int_equal(c.installs_removed, 0);

    /* 7-Zip back: re-added, removed_at cleared. */
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_a, T0 + 120, &eb),
                     ERR_OK);
    assert_int_equal(store_reconcile_device(fx->st, &d, &eb), ERR_OK);
    assert_int_equal(store_reconcile_installs(fx->st, "dev-a", apps, 2, &eb), ERR_OK);
    assert_int_equal(store_reconcile_commit(fx->st, 1, 1, &c, &eb), ERR_OK);
    assert_int_equal(c.installs_added, 1);
    assert_int_equal(c.installs_removed, 0);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_install WHERE removed_at "
                                "IS NULL"),
                     2);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_title"), 2);
    {
        struct software_query sq;
        struct sw_seen sw;
        struct errbuf e2 = {0};
        memset(&sq, 0, sizeof sq);
        memset(&sw, 0, sizeof sw);
        sq.account_id = fx->account;
        sq.search = "micro";
        assert_int_equal(store_software_each(fx->st, &sq, collect_sw, &sw, &e2), ERR_OK);
        assert_int_equal(sw.n, 1);
        assert_string_equal(sw.names[0], "Microsoft Edge");
        assert_true(sw.size[0] == INT64_C(5000000000));
        assert_int_equal(sw.devices[0], 1);
        sq.search = NULL;
        sq.client = ci_a.tenant_id;
        memset(&sw, 0, sizeof sw);
        assert_int_equal(store_software_each(fx->st, &sq, collect_sw, &sw, &e2), ERR_OK);
        assert_int_equal(sw.n, 2);
        assert_string_equal(sw.names[1], "7-Zip");
        assert_int_equal(sw.null_publisher[1], 1);
        assert_true(sw.size[1] == -1);
    }
    /* Unchanged installs are not rewritten, yet a title's devices show them seen now. */
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_a, T0 + 180, &eb),
                     ERR_OK);
    assert_int_equal(store_reconcile_device(fx->st, &d, &eb), ERR_OK);
    assert_int_equal(store_reconcile_installs(fx->st, "dev-a", apps, 2, &eb), ERR_OK);
    assert_int_equal(store_reconcile_commit(fx->st, 1, 1, &c, &eb), ERR_OK);
    assert_int_equal(c.installs_added + c.installs_removed, 0);
    {
        struct list_query lq = {0};
        int64_t seen = 0;

        lq.entity = "software_devices";
        lq.account_id = fx->account;
        lq.parent_id = db_int(fx, "SELECT id FROM software_title WHERE name = '7-Zip'");
        assert_int_equal(store_list_each(fx->st, &lq, collect_last_seen, &seen, &eb), ERR_OK);
        assert_true(seen == T0 + 180);
    }
    device_clear(&d);
}

/* software_count as the API defines it: distinct titles with an active install on a current
 * device of the client. The commit counts it another way; both must agree. */
static const char sw_count_ref[] =
    "SELECT count(DISTINCT i.title_id) FROM software_install i JOIN hardware_asset h ON "
    "h.id = i.asset_id JOIN client c ON c.id = h.client_id WHERE c.tenant_id = '%s' AND "
    "h.retired_at IS NULL AND i.removed_at IS NULL";

static int64_t
sw_count(struct fx *fx, const struct client_info *ci, int reference)
{
    char sql[512];

    if (reference)
        snprintf(sql, sizeof sql, sw_count_ref, ci->tenant_id);
    else
        snprintf(sql, sizeof sql, "SELECT software_count FROM client WHERE tenant_id = '%s'",
                 ci->tenant_id);
    return db_int(fx, sql);
}

/* One tenant sync: devs[i] reports apps[i] (n_apps[i] of them); installs of every device. */
static void
sync_sw(struct fx *fx, const struct client_info *ci, struct device *devs, size_t n,
        const struct app_ref *const *apps, const size_t *n_apps, int64_t now)
{
    struct errbuf eb = {0};
    struct reconcile_counts c;

    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, ci, now, &eb), ERR_OK);
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(store_reconcile_device(fx->st, &devs[i], &eb), ERR_OK);
        assert_int_equal(
            store_reconcile_installs(fx->st, devs[i].intune_id, apps[i], n_apps[i], &eb), ERR_OK);
    }
    assert_int_equal(store_reconcile_commit(fx->st, 1, 1, &c, &eb), ERR_OK);
}

static void
expect_sw_count(struct fx *fx, const struct client_info *ci, int64_t want)
{
    assert_int_equal(sw_count(fx, ci, 1), want);
    assert_int_equal(sw_count(fx, ci, 0), want);
    /* And every title's stored device_count is what its installs say. */
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_title t WHERE t.device_count <> "
                                "(SELECT count(*) FROM software_install i JOIN hardware_asset h "
                                "ON h.id = i.asset_id WHERE i.title_id = t.id AND i.removed_at "
                                "IS NULL AND h.retired_at IS NULL)"),
                     0);
}

static void
test_software_count(void **state)
{
    struct fx *fx = *state;
    struct device d[3];
    const struct app_ref edge = {"Edge", "1", "Microsoft", "windows", -1};
    const struct app_ref zip = {"7-Zip", "23.01", NULL, NULL, -1};
    const struct app_ref vlc = {"VLC", "3", NULL, NULL, -1};
    const struct app_ref a0[] = {edge, zip}, a1[] = {edge, vlc}, a2[] = {edge};
    const struct app_ref *all[] = {a0, a1, a2};
    const size_t n_all[] = {2, 2, 1};

    mkdev(&d[0], "dev-a", "A", "SN-A");
    mkdev(&d[1], "dev-b", "B", "SN-B");
    mkdev(&d[2], "dev-c", "C", "SN-C");
    sync_sw(fx, &ci_a, d, 3, all, n_all, T0);
    expect_sw_count(fx, &ci_a, 3);
    /* Another tenant with one of the same titles counts its own. */
    sync_sw(fx, &ci_b, &d[2], 1, &all[2], &n_all[2], T0);
    expect_sw_count(fx, &ci_b, 1);
    expect_sw_count(fx, &ci_a, 3);

    /* B drops VLC (only B had it): 2. A drops Edge (C still has it): still 2. */
    {
        const struct app_ref *v[] = {(const struct app_ref[]){zip}, a2, a2};
        const size_t nv[] = {1, 1, 1};
        sync_sw(fx, &ci_a, d, 3, v, nv, T0 + 60);
        expect_sw_count(fx, &ci_a, 2);
        /* VLC back on B: re-added. */
        sync_sw(fx, &ci_a, d, 3, all, n_all, T0 + 120);
        expect_sw_count(fx, &ci_a, 3);
    }
    /* A's device retired (complete listing without it): 7-Zip goes with it; Edge stays. */
    {
        struct device bc[2] = {d[1], d[2]};
        const struct app_ref *v[] = {a1, a2};
        const size_t nv[] = {2, 1};
        sync_sw(fx, &ci_a, bc, 2, v, nv, T0 + 180);
        expect_sw_count(fx, &ci_a, 2);
        /* Every device retired: nothing left. */
        sync_sw(fx, &ci_a, NULL, 0, NULL, NULL, T0 + 240);
        expect_sw_count(fx, &ci_a, 0);
    }
    /* All back: revived devices bring their active installs back. */
    sync_sw(fx, &ci_a, d, 3, all, n_all, T0 + 300);
    expect_sw_count(fx, &ci_a, 3);
    expect_sw_count(fx, &ci_b, 1);
    /* A revival without an installs step (apps not read) still counts what the device has. */
    sync_sw(fx, &ci_a, NULL, 0, NULL, NULL, T0 + 360);
    expect_sw_count(fx, &ci_a, 0);
    sync_tenant(fx, &ci_a, d, 3, 1, T0 + 420);
    expect_sw_count(fx, &ci_a, 3);
    free_devs(d, 3);
}

/* 63 new installs on one device take every multi-row INSERT size (32 + 16 + ... + 1). */
static void
test_many_installs(void **state)
{
    struct fx *fx = *state;
    struct device d[2];
    struct app_ref apps[63];
    char names[63][16];
    const struct app_ref *v[2];
    size_t nv[2];

    for (int i = 0; i < 63; i++) {
        snprintf(names[i], sizeof names[i], "App %02d", i);
        apps[i] = (struct app_ref){names[i], "1", NULL, NULL, -1};
    }
    mkdev(&d[0], "dev-a", "A", "SN-A");
    mkdev(&d[1], "dev-b", "B", "SN-B");
    v[0] = apps;
    v[1] = apps + 60;
    nv[0] = 63;
    nv[1] = 3;
    sync_sw(fx, &ci_a, d, 2, v, nv, T0);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_install"), 66);
    assert_int_equal(db_int(fx, "SELECT count(DISTINCT title_id) FROM software_install i JOIN "
                                "hardware_asset h ON h.id = i.asset_id WHERE h.name = 'A'"),
                     63);
    expect_sw_count(fx, &ci_a, 63);
    /* 23 gone from A (three of them still on B), then all back. */
    nv[0] = 40;
    sync_sw(fx, &ci_a, d, 2, v, nv, T0 + 60);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_install WHERE removed_at IS NULL"),
                     43);
    expect_sw_count(fx, &ci_a, 43);
    nv[0] = 63;
    sync_sw(fx, &ci_a, d, 2, v, nv, T0 + 120);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_install WHERE removed_at IS NULL"),
                     66);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_install"), 66);
    expect_sw_count(fx, &ci_a, 63);
    free_devs(d, 2);
}

/* The SQLite reconcile writes with foreign keys off (its own rows only): what it wrote must pass
 * the check, and every way out of it must turn them back on, or deleting an integration would
 * leave its assets and installs behind. */
static void
test_reconcile_foreign_keys(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct device d[2];
    const struct app_ref edge = {"Edge", "1", "Microsoft", "windows", -1};
    const struct app_ref zip = {"7-Zip", "23.01", NULL, NULL, -1};
    const struct app_ref a0[] = {edge, zip}, a1[] = {zip};
    const struct app_ref *all[] = {a0, a1};
    const size_t n_all[] = {2, 1};
    struct integration in;
    struct tenant_result r;
    int64_t run = 0;

    mkdev(&d[0], "dev-a", "A", "SN-A");
    mkdev(&d[1], "dev-b", "B", "SN-B");
    sync_sw(fx, &ci_a, d, 2, all, n_all, T0);
    free(d[0].name);
    d[0].name = xstrdup("A2"); /* a change: asset_change row */
    sync_sw(fx, &ci_a, d, 1, all, n_all, T0 + 60);
    if (fx->pg_url == NULL)
        assert_int_equal(sqlite_int(fx->path, "SELECT count(*) FROM pragma_foreign_key_check"), 0);

    /* After a rollback and after a refused begin as well as after a commit. */
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_a, T0 + 90, &eb),
                     ERR_OK);
    assert_int_equal(store_reconcile_device(fx->st, &d[1], &eb), ERR_OK);
    store_reconcile_rollback(fx->st);
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ + 100, &ci_a, T0, &eb),
                     ERR_NOTFOUND);
    /* A second integration whose rows must survive the first one's deletion. */
    memset(&in, 0, sizeof in);
    in.account_id = fx->account;
    in.name = "other";
    in.partner_tenant_id = "44444444-4444-4444-4444-444444444444";
    in.partner_app_id = "22222222-2222-2222-2222-222222222222";
    in.sync_app_id = "33333333-3333-3333-3333-333333333333";
    in.partner_secret_expires = TS_NULL;
    in.sync_secret_expires = TS_NULL;
    assert_int_equal(store_integration_insert(fx->st, &in, &eb), ERR_OK);
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, in.id, &ci_b, T0, &eb), ERR_OK);
    assert_int_equal(store_reconcile_device(fx->st, &d[1], &eb), ERR_OK);
    assert_int_equal(store_reconcile_installs(fx->st, "dev-b", a1, 1, &eb), ERR_OK);
    assert_int_equal(store_reconcile_commit(fx->st, 1, 1, NULL, &eb), ERR_OK);
    /* A tenant result between two tenants (SQLite keeps foreign keys off for it): a missing
     * run is still refused, and the delete below still cascades. */
    assert_int_equal(store_run_start(fx->st, in.id, "full", T0, &run, &eb), ERR_OK);
    memset(&r, 0, sizeof r);
    r.tenant_id = ci_b.tenant_id;
    r.status = "ok";
    assert_int_equal(store_run_tenant(fx->st, run + 100, &r, &eb), ERR_NOTFOUND);
    assert_int_equal(store_run_tenant(fx->st, run, &r, &eb), ERR_OK);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM sync_tenant_result"), 1);

    assert_int_equal(store_integration_delete(fx->st, fx->account, fx->integ, &eb), ERR_OK);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM hardware_asset"), 1);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_install"), 1);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_title"), 1);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM asset_change"), 0);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM client"), 1);
    free_devs(d, 2);
}

/* A first sync (no devices) whose client still has titles (here: its devices deleted by hand)
 * finds them instead of failing on their unique key, and counts them afresh. */
static void
test_first_sync_titles_exist(void **state)
{
    struct fx *fx = *state;
    struct device d[2];
    const struct app_ref edge = {"Edge", "1", "Microsoft", "windows", -1};
    const struct app_ref zip = {"7-Zip", "23.01", NULL, NULL, 1234};
    const struct app_ref a0[] = {edge, zip}, a1[] = {zip};
    const struct app_ref *all[] = {a0, a1};
    const size_t n_all[] = {2, 1};
    const char *gone = "DELETE FROM software_install; DELETE FROM asset_change; "
                       "DELETE FROM hardware_asset; UPDATE software_title SET device_count = 0";

    mkdev(&d[0], "dev-a", "A", "SN-A");
    mkdev(&d[1], "dev-b", "B", "SN-B");
    sync_sw(fx, &ci_a, d, 2, all, n_all, T0);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_title"), 2);
    if (fx->pg_url == NULL)
        sql_exec(fx->path, gone);
    else
        pg_exec(fx->pg_url, gone);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_install"), 0);
    sync_sw(fx, &ci_a, d, 2, all, n_all, T0 + 60);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_title"), 2);
    assert_int_equal(db_int(fx, "SELECT size_bytes FROM software_title WHERE name = '7-Zip'"),
                     1234);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_install"), 3);
    expect_sw_count(fx, &ci_a, 2);
    free_devs(d, 2);
}

/* A tenant's first sync inserts without looking devices up; one listed twice is still one asset,
 * updated by its second listing, and the tenant's second sync finds them all. */
static void
test_first_sync_device_twice(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct device d[3];
    struct reconcile_counts c;
    const struct app_ref zip = {"7-Zip", "23.01", NULL, NULL, -1};

    mkdev(&d[0], "dev-a", "A", "SN-A");
    mkdev(&d[1], "dev-a", "A renamed", "SN-A");
    mkdev(&d[2], "dev-b", "B", "SN-B");
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_a, T0, &eb), ERR_OK);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(store_reconcile_device(fx->st, &d[i], &eb), ERR_OK);
        assert_int_equal(store_reconcile_installs(fx->st, d[i].intune_id, &zip, 1, &eb), ERR_OK);
    }
    assert_int_equal(store_reconcile_commit(fx->st, 1, 1, &c, &eb), ERR_OK);
    assert_int_equal(c.created, 2);
    assert_int_equal(c.updated, 1);
    assert_int_equal(c.installs_added, 2);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM hardware_asset"), 2);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM hardware_asset WHERE name = 'A renamed'"), 1);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_install"), 2);
    c = sync_tenant(fx, &ci_a, &d[1], 2, 1, T0 + 60);
    assert_int_equal(c.created, 0);
    assert_int_equal(c.unchanged, 2);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM hardware_asset"), 2);
    /* Another tenant's first sync may hold the same device ids. */
    c = sync_tenant(fx, &ci_b, &d[1], 2, 1, T0 + 60);
    assert_int_equal(c.created, 2);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM hardware_asset"), 4);
    free_devs(d, 3);
}

/* SQLite can end a transaction by itself (a full disk, an OR ROLLBACK conflict): the reconcile
 * must then write nothing more, above all not retire every device outside the transaction. */
static void
test_reconcile_after_lost_transaction(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct device d[2];
    struct reconcile_counts c;
    const struct app_ref zip = {"7-Zip", "23.01", NULL, NULL, -1};

    mkdev(&d[0], "dev-a", "A", "SN-A");
    mkdev(&d[1], "dev-b", "B", "SN-B");
    sync_tenant(fx, &ci_a, d, 2, 1, T0);
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_a, T0 + 60, &eb),
                     ERR_OK);
    assert_int_equal(store_reconcile_device(fx->st, &d[0], &eb), ERR_OK);
    store_tx_rollback(fx->st); /* what SQLite does on such an error */
    assert_int_equal(store_reconcile_device(fx->st, &d[1], &eb), ERR_DB);
    assert_non_null(strstr(eb.msg, "ended the transaction"));
    assert_int_equal(store_reconcile_installs(fx->st, "dev-a", &zip, 1, &eb), ERR_INVAL);
    assert_int_equal(store_reconcile_commit(fx->st, 1, 1, &c, &eb), ERR_INVAL);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM hardware_asset WHERE retired_at IS NULL"), 2);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_install"), 0);
    /* Lost before any failed step: commit refuses on its own. */
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_a, T0 + 90, &eb),
                     ERR_OK);
    store_tx_rollback(fx->st);
    assert_int_equal(store_reconcile_commit(fx->st, 1, 1, &c, &eb), ERR_DB);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM hardware_asset WHERE retired_at IS NULL"), 2);
    assert_true(db_int(fx, "SELECT last_sync_at FROM client") == T0);
    /* And the store syncs normally afterwards. */
    c = sync_tenant(fx, &ci_a, d, 1, 1, T0 + 120);
    assert_int_equal(c.retired, 1);
    free_devs(d, 2);
}

/* Every install with what identifies it, one text per row, in a stable order. */
static const char install_rows[] =
    "SELECT t.name || ',' || h.name || ',' || i.first_seen_at || ',' || i.last_seen_at || ',' || "
    "COALESCE(i.removed_at, -1) || ',' || i.last_seen_gen FROM software_install i JOIN "
    "software_title t ON t.id = i.title_id JOIN hardware_asset h ON h.id = i.asset_id ORDER BY 1";

/* A database of the previous schema (4: software_install with its own id) is migrated with its
 * installs kept, and syncs on afterwards. */
static void
test_migrate_installs_v4(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct device d[2];
    const struct app_ref edge = {"Edge", "1", "Microsoft", "windows", -1};
    const struct app_ref zip = {"7-Zip", "23.01", NULL, NULL, -1};
    const struct app_ref a0[] = {edge, zip}, a1[] = {zip};
    const struct app_ref *all[] = {a0, a1};
    const size_t n_all[] = {2, 1};
    char *before[4];

    mkdev(&d[0], "dev-a", "A", "SN-A");
    mkdev(&d[1], "dev-b", "B", "SN-B");
    sync_sw(fx, &ci_a, d, 2, all, n_all, T0);
    {
        /* 7-Zip removed from A, so a removed install crosses the migration too. */
        const struct app_ref *v[] = {(const struct app_ref[]){edge}, a1};
        const size_t nv[] = {1, 1};
        sync_sw(fx, &ci_a, d, 2, v, nv, T0 + 60);
    }
    store_close(fx->st);
    fx->st = NULL;
    /* Back to schema 4, as that version created software_install (schema 8's index and schema
     * 9's columns gone too: their migrations create them). */
    if (fx->pg_url == NULL)
        sql_exec(fx->path,
                 "BEGIN;"
                 "DROP INDEX hardware_asset_os_name;"
                 "DROP INDEX hardware_asset_missing;"
                 "ALTER TABLE hardware_asset DROP COLUMN missing_since;"
                 "ALTER TABLE hardware_asset DROP COLUMN missing_syncs;"
                 "ALTER TABLE client DROP COLUMN warning_code;"
                 "ALTER TABLE client DROP COLUMN warning_message;"
                 "ALTER TABLE client DROP COLUMN warning_remedy;"
                 "CREATE TABLE software_install_v4 ("
                 " id INTEGER PRIMARY KEY,"
                 " account_id INTEGER NOT NULL REFERENCES account(id) ON DELETE CASCADE,"
                 " asset_id INTEGER NOT NULL REFERENCES hardware_asset(id) ON DELETE CASCADE,"
                 " title_id INTEGER NOT NULL REFERENCES software_title(id) ON DELETE CASCADE,"
                 " first_seen_at INTEGER NOT NULL,"
                 " last_seen_at INTEGER NOT NULL,"
                 " removed_at INTEGER,"
                 " last_seen_gen INTEGER NOT NULL,"
                 " UNIQUE (asset_id, title_id)) STRICT;"
                 "INSERT INTO software_install_v4 (account_id, asset_id, title_id, first_seen_at, "
                 "last_seen_at, removed_at, last_seen_gen) SELECT * FROM software_install "
                 "ORDER BY title_id DESC;"
                 "DROP TABLE software_install;"
                 "ALTER TABLE software_install_v4 RENAME TO software_install;"
                 "CREATE INDEX software_install_title ON software_install(title_id);"
                 "ALTER TABLE software_title DROP COLUMN device_count;"
                 /* schema 10's columns: its migration adds them */
                 "ALTER TABLE client DROP COLUMN error_request_id;"
                 "ALTER TABLE client DROP COLUMN error_date;"
                 "ALTER TABLE sync_tenant_result DROP COLUMN error_request_id;"
                 "ALTER TABLE sync_tenant_result DROP COLUMN error_date;"
                 "ALTER TABLE integration DROP COLUMN cloud;"
                 "ALTER TABLE integration DROP COLUMN partner_secret_expiry_source;"
                 "ALTER TABLE integration DROP COLUMN sync_secret_expiry_source;"
                 "ALTER TABLE api_key DROP COLUMN expires_at;"      /* schema 12 */
                 "DROP INDEX app_user_sso; DROP TABLE account_sso;" /* schema 14 */
                 "ALTER TABLE app_user DROP COLUMN sso_tid;"
                 "ALTER TABLE app_user DROP COLUMN sso_oid;"
                 "ALTER TABLE account DROP COLUMN local_signin;"
                 "ALTER TABLE app_user DROP COLUMN totp_secret_sealed;" /* schema 13 */
                 "ALTER TABLE app_user DROP COLUMN totp_enrolled_at;"
                 "ALTER TABLE app_user DROP COLUMN totp_last_step;"
                 "ALTER TABLE account DROP COLUMN require_totp;"
                 "DROP TABLE user_recovery_code;"
                 "DROP TABLE user_pref; DROP INDEX sync_tenant_result_tenant;" /* schema 16 */
                 "DROP TABLE webhook_expiry_sent; DROP TABLE webhook_position; DROP TABLE "
                 "webhook_delivery;"
                 "DROP TABLE webhook;"
                 "DROP TABLE change_event;" /* schema 15 */
                 "ALTER TABLE hardware_asset DROP COLUMN updated_at;"
                 "PRAGMA user_version = 4; COMMIT;");
    else
        pg_exec(fx->pg_url,
                "DROP INDEX hardware_asset_missing;"
                "ALTER TABLE hardware_asset DROP COLUMN missing_since;"
                "ALTER TABLE hardware_asset DROP COLUMN missing_syncs;"
                "ALTER TABLE client DROP COLUMN warning_code, DROP COLUMN warning_message, "
                "DROP COLUMN warning_remedy;"
                "ALTER TABLE software_install DROP CONSTRAINT software_install_pkey;"
                "ALTER TABLE software_install ADD COLUMN id BIGINT GENERATED ALWAYS AS IDENTITY "
                "PRIMARY KEY;"
                "ALTER TABLE software_install ADD CONSTRAINT "
                "software_install_asset_id_title_id_key UNIQUE (asset_id, title_id);"
                "ALTER TABLE software_title DROP COLUMN device_count;"
                "ALTER TABLE client DROP COLUMN error_request_id, DROP COLUMN error_date;"
                "ALTER TABLE sync_tenant_result DROP COLUMN error_request_id, "
                "DROP COLUMN error_date;"
                "ALTER TABLE integration DROP COLUMN cloud;"
                "ALTER TABLE integration DROP COLUMN partner_secret_expiry_source;"
                "ALTER TABLE integration DROP COLUMN sync_secret_expiry_source;"
                "ALTER TABLE api_key DROP COLUMN expires_at;"      /* schema 12 */
                "DROP INDEX app_user_sso; DROP TABLE account_sso;" /* schema 14 */
                "ALTER TABLE app_user DROP COLUMN sso_tid;"
                "ALTER TABLE app_user DROP COLUMN sso_oid;"
                "ALTER TABLE account DROP COLUMN local_signin;"
                "ALTER TABLE app_user DROP COLUMN totp_secret_sealed;" /* schema 13 */
                "ALTER TABLE app_user DROP COLUMN totp_enrolled_at;"
                "ALTER TABLE app_user DROP COLUMN totp_last_step;"
                "ALTER TABLE account DROP COLUMN require_totp;"
                "DROP TABLE user_recovery_code;"
                "DROP TABLE user_pref; DROP INDEX sync_tenant_result_tenant;" /* schema 16 */
                "DROP TABLE webhook_expiry_sent; DROP TABLE webhook_position; DROP TABLE "
                "webhook_delivery;"
                "DROP TABLE webhook;"
                "DROP TABLE change_event;" /* schema 15 */
                "ALTER TABLE hardware_asset DROP COLUMN updated_at;"
                "DROP FUNCTION memsync_change_seq();"
                "ALTER TABLE data_version DROP COLUMN change_seq;"
                "ALTER TABLE sync_job DROP COLUMN leased_at;" /* schema 18 */
                "UPDATE memsync_meta SET value = 4 WHERE key = 'schema_version'");
    assert_int_equal(db_int(fx, fx->pg_url == NULL
                                    ? "SELECT count(*) FROM pragma_table_info('software_install') "
                                      "WHERE name = 'id'"
                                    : "SELECT count(*) FROM information_schema.columns WHERE "
                                      "table_name = 'software_install' AND column_name = 'id'"),
                     1);
    for (int r = 0; r < 4; r++)
        before[r] = db_text(fx, install_rows, r);

    assert_int_equal(store_open(&fx->st, fx->pg_url != NULL ? fx->pg_url : fx->path, &eb), ERR_OK);
    if (fx->pg_url == NULL) {
        assert_int_equal(sqlite_int(fx->path, "PRAGMA user_version"), STORE_SCHEMA_VERSION);
        assert_int_equal(sqlite_int(fx->path, "SELECT count(*) FROM sqlite_schema WHERE name = "
                                              "'software_install' AND sql LIKE '%WITHOUT ROWID'"),
                         1);
        /* Schema 6 counts devices per title instead of indexing installs by title. */
        assert_int_equal(sqlite_int(fx->path, "SELECT count(*) FROM sqlite_schema WHERE name = "
                                              "'software_install_title'"),
                         0);
        assert_int_equal(sqlite_int(fx->path, "SELECT count(*) FROM pragma_foreign_key_check"), 0);
        /* Its foreign keys are deferred, not gone: a dangling install fails at COMMIT. */
        {
            sqlite3 *db = NULL;
            assert_int_equal(sqlite3_open_v2(fx->path, &db, SQLITE_OPEN_READWRITE, NULL),
                             SQLITE_OK);
            assert_int_equal(sqlite3_exec(db,
                                          "PRAGMA foreign_keys = ON; BEGIN; INSERT INTO "
                                          "software_install VALUES (1, 999, 999, 0, 0, NULL, 0)",
                                          NULL, NULL, NULL),
                             SQLITE_OK);
            assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_CONSTRAINT);
            sqlite3_exec(db, "ROLLBACK", NULL, NULL, NULL);
            sqlite3_close(db);
        }
    } else {
        assert_int_equal(db_int(fx, "SELECT value FROM memsync_meta WHERE key = 'schema_version'"),
                         STORE_SCHEMA_VERSION);
    }
    assert_int_equal(db_int(fx, fx->pg_url == NULL
                                    ? "SELECT count(*) FROM pragma_table_info('software_install') "
                                      "WHERE name = 'id'"
                                    : "SELECT count(*) FROM information_schema.columns WHERE "
                                      "table_name = 'software_install' AND column_name = 'id'"),
                     0);
    for (int r = 0; r < 4; r++) {
        char *after = db_text(fx, install_rows, r);
        assert_string_equal(before[r], after);
        assert_true(r == 3 ? before[r][0] == '\0' : before[r][0] != '\0');
        free(after);
        free(before[r]);
    }
    expect_sw_count(fx, &ci_a, 2);
    /* device_count was counted by the migration: Edge on A, 7-Zip on B (its install on A is a
     * removed one). */
    assert_int_equal(db_int(fx, "SELECT device_count FROM software_title WHERE name = 'Edge'"), 1);
    assert_int_equal(db_int(fx, "SELECT device_count FROM software_title WHERE name = '7-Zip'"), 1);

    /* The migrated rows are updated in place: 7-Zip revived on A, Edge removed, a new title. */
    {
        const struct app_ref vlc = {"VLC", "3", NULL, NULL, -1};
        const struct app_ref *v[] = {(const struct app_ref[]){zip, vlc}, a1};
        const size_t nv[] = {2, 1};
        sync_sw(fx, &ci_a, d, 2, v, nv, T0 + 120);
    }
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_install"), 4);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM software_install WHERE removed_at IS NULL"),
                     3);
    assert_true(db_int(fx, "SELECT i.removed_at FROM software_install i JOIN software_title t ON "
                           "t.id = i.title_id WHERE t.name = 'Edge'") == T0 + 120);
    assert_true(db_int(fx, "SELECT i.first_seen_at FROM software_install i JOIN software_title t "
                           "ON t.id = i.title_id JOIN hardware_asset h ON h.id = i.asset_id WHERE "
                           "t.name = '7-Zip' AND h.name = 'A'") == T0);
    expect_sw_count(fx, &ci_a, 2);
    free_devs(d, 2);
}

static void
test_serial_duplicate(void **state)
{
    struct fx *fx = *state;
    struct device a[4], b[1];
    struct seen s;

    mkdev(&a[0], "dev-a1", "A1", "pf3abc12");
    mkdev(&a[1], "dev-a2", "A2", "UNIQUE-1");
    /* Two devices of one tenant share a serial: not a duplicate (the set holds it anyway). */
    mkdev(&a[2], "dev-a3", "A3", "SAME-TENANT");
    mkdev(&a[3], "dev-a4", "A4", "same-tenant");
    mkdev(&b[0], "dev-b1", "B1", "PF3ABC12");
    sync_tenant(fx, &ci_a, a, 4, 1, T0);
    s = list_assets_both(fx, 0);
    assert_int_equal(s.n, 4);
    for (int i = 0; i < s.n; i++)
        assert_int_equal(s.dup[i], 0);
    sync_tenant(fx, &ci_b, b, 1, 1, T0);
    s = list_assets_both(fx, 0);
    assert_int_equal(s.n, 5);
    for (int i = 0; i < s.n; i++)
        assert_int_equal(s.dup[i], strcmp(s.names[i], "A1") == 0 || strcmp(s.names[i], "B1") == 0);
    /* Once B1 is retired, A1 is no longer a duplicate; B1 still is, of A1. */
    sync_tenant(fx, &ci_b, NULL, 0, 1, T0 + 60);
    s = list_assets_both(fx, 0);
    assert_int_equal(s.n, 4);
    for (int i = 0; i < s.n; i++)
        assert_int_equal(s.dup[i], 0);
    s = list_assets_both(fx, 1);
    assert_int_equal(s.n, 5);
    for (int i = 0; i < s.n; i++)
        assert_int_equal(s.dup[i], strcmp(s.names[i], "B1") == 0);
    free_devs(a, 4);
    free_devs(b, 1);
}

/* ---- lazy list rows and the row cache --------------------------------------------------- */

struct pagew {
    struct asset_writer *w;
    struct rowcache *rc;
    int n;
};

static int
page_row(void *arg, const struct asset *a)
{
    struct pagew *p = arg;

    if (p->n++ > 0)
        asset_writer_raw(p->w, ",", 1);
    return asset_writer_row(p->w, a, p->rc);
}

static void
held_in_cache(void *arg, const int64_t *ids, const uint64_t *stamps, size_t n, unsigned char *held)
{
    rowcache_has_many(arg, ids, stamps, n, held);
}

/* Claims every odd id is held, cached or not: those rows are read by id when missed. */
static void
held_odd(void *arg, const int64_t *ids, const uint64_t *stamps, size_t n, unsigned char *held)
{
    (void)arg;
    (void)stamps;
    for (size_t i = 0; i < n; i++)
        held[i] = (unsigned char)(ids[i] & 1);
}

/* q's rows as the hardware list writes them: full rows, or lazy ones through rc, the store told
 * which rows rc holds by held (NULL: none). */
static char *
render_rows(struct fx *fx, struct asset_query *q, int lazy, struct rowcache *rc,
            void (*held)(void *, const int64_t *, const uint64_t *, size_t, unsigned char *))
{
    struct errbuf eb = {0};
    struct pagew p = {asset_writer_new_owned(4096, (size_t)1 << 24), rc, 0};
    size_t len = 0;
    char *out;

    q->lazy_dev = lazy;
    q->lazy_held = held;
    q->lazy_held_arg = rc;
    assert_int_equal(store_assets_each(fx->st, q, page_row, &p, &eb), ERR_OK);
    q->lazy_dev = 0;
    q->lazy_held = NULL;
    out = asset_writer_take(p.w, &len);
    assert_non_null(out);
    return out;
}

/* Every list shape reads the same lazily as in full: through rc as it is (rows cached from
 * earlier states must not show), again (all cached now), through a new cache (every row read
 * ahead), and through one the store is told wrongly holds odd ids (those read by id). Returns
 * the default list's text. */
static char *
check_lazy(struct fx *fx, struct rowcache *rc, int64_t client_id)
{
    char cid[32];
    struct store_filter by_client[] = {{"client.id", "eq", cid}};
    struct store_filter by_os[] = {{"operating_system.name", "in", "Windows,iOS"}};
    struct store_filter by_compliance[] = {{"compliance_state", "eq", "noncompliant"}};
    struct store_sort checkin[] = {{"last_check_in_at", 1}};
    struct store_sort name[] = {{"name", 0}};
    struct store_sort client_name[] = {{"client.name", 0}, {"name", 1}};
    char *first = NULL;

    snprintf(cid, sizeof cid, "%" PRId64, client_id);
    for (int shape = 0; shape < 9; shape++) {
        struct asset_query q;
        struct rowcache *fresh = NULL;
        struct errbuf eb = {0};
        char *full, *lazy;

        memset(&q, 0, sizeof q);
        q.account_id = fx->account;
        q.limit = 50;
        switch (shape) {
        case 1:
            q.include_retired = 1;
            break;
        case 2:
            q.filters = by_client;
            q.nfilters = 1;
            q.sorts = checkin;
            q.nsorts = 1;
            break;
        case 3:
            q.filters = by_os;
            q.nfilters = 1;
            q.sorts = name;
            q.nsorts = 1;
            break;
        case 4:
            q.filters = by_compliance;
            q.nfilters = 1;
            break;
        case 5:
            q.search = "dev";
            break;
        case 6:
            q.sorts = client_name;
            q.nsorts = 2;
            q.include_retired = 1;
            break;
        case 7: /* a page in the middle */
            q.filters = by_client;
            q.nfilters = 1;
            q.sorts = name;
            q.nsorts = 1;
            q.limit = 2;
            q.offset = 1;
            break;
        case 8:
            q.after_id = 1;
            q.limit = 3;
            break;
        }
        full = render_rows(fx, &q, 0, NULL, NULL);
        for (int pass = 0; pass < 2; pass++) {
            lazy = render_rows(fx, &q, 1, rc, held_in_cache);
            assert_string_equal(lazy, full);
            free(lazy);
        }
        for (int probe = 0; probe < 2; probe++) {
            assert_int_equal(rowcache_create(&fresh, 1 << 20, &eb), ERR_OK);
            lazy = render_rows(fx, &q, 1, fresh, probe == 0 ? held_in_cache : held_odd);
            assert_string_equal(lazy, full);
            free(lazy);
            rowcache_free(fresh);
            fresh = NULL;
        }
        if (shape == 0)
            first = full;
        else
            free(full);
    }
    return first;
}

static int64_t
client_of(struct fx *fx, const char *tenant)
{
    char sql[160];

    snprintf(sql, sizeof sql, "SELECT id FROM client WHERE tenant_id = '%s'", tenant);
    return db_int(fx, sql);
}

static void
test_lazy_rows(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct device a[3], b[1];
    struct rowcache *rc = NULL;
    struct rowcache_stats st;
    struct integration in;
    char *text;
    int64_t ca, gen_before;

    assert_int_equal(rowcache_create(&rc, 4 << 20, &eb), ERR_OK);
    mkdev(&a[0], "dev-a1", "A1", "SHARED-1");
    mkdev(&a[1], "dev-a2", "A2", "UNIQUE-2");
    mkdev(&a[2], "dev-a3", "A3", "Unknown"); /* no real serial: no serial key */
    a[0].last_check_in_at = T0 - 300;
    a[1].last_check_in_at = T0 - 100;
    free(a[1].compliance_state);
    a[1].compliance_state = xstrdup("compliant");
    mkdev(&b[0], "dev-b1", "B1", "OTHER-1");
    free(b[0].os_name);
    b[0].os_name = xstrdup("iOS");
    sync_tenant(fx, &ci_a, a, 3, 1, T0);
    sync_tenant(fx, &ci_b, b, 1, 1, T0);
    ca = client_of(fx, ci_a.tenant_id);
    free(check_lazy(fx, rc, ca));
    rowcache_stats(rc, &st);
    /* SQLite hands out lazy rows (the cache fills); PostgreSQL full ones. */
    if (fx->pg_url == NULL)
        assert_true(st.entries == 4 && st.hits > 0);
    else
        assert_int_equal(st.entries, 0);

    /* A device changes: the cached row of it must not show. */
    free(a[1].name);
    a[1].name = xstrdup("A2-renamed");
    free(a[1].compliance_state);
    a[1].compliance_state = xstrdup("noncompliant");
    a[0].last_check_in_at = T0 + 30;
    sync_tenant(fx, &ci_a, a, 3, 1, T0 + 60);
    text = check_lazy(fx, rc, ca);
    assert_non_null(strstr(text, "A2-renamed"));
    free(text);

    /* Another tenant takes A1's serial: A1's cached row is now a duplicate. */
    free(b[0].serial);
    b[0].serial = xstrdup("shared-1");
    sync_tenant(fx, &ci_b, b, 1, 1, T0 + 60);
    text = check_lazy(fx, rc, ca);
    assert_non_null(strstr(text, "\"serial_duplicate\":true"));
    free(text);

    /* A3 is retired, then the client is deleted with its integration and made again: its
     * rows come back under the same ids, perhaps the same client id, with other values. */
    sync_tenant(fx, &ci_a, a, 2, 1, T0 + 120);
    free(check_lazy(fx, rc, ca));
    gen_before = db_int(fx, "SELECT max(sync_gen) FROM client");
    assert_int_equal(store_integration_delete(fx->st, fx->account, fx->integ, &eb), ERR_OK);
    memset(&in, 0, sizeof in);
    in.account_id = fx->account;
    in.name = "msp again";
    in.partner_tenant_id = "11111111-1111-1111-1111-111111111111";
    in.partner_app_id = "22222222-2222-2222-2222-222222222222";
    in.sync_app_id = "33333333-3333-3333-3333-333333333333";
    in.partner_secret_expires = TS_NULL;
    in.sync_secret_expires = TS_NULL;
    assert_int_equal(store_integration_insert(fx->st, &in, &eb), ERR_OK);
    fx->integ = in.id;
    free(a[0].name);
    a[0].name = xstrdup("A1-again");
    sync_tenant(fx, &ci_a, a, 3, 1, T0 + 120);
    ca = client_of(fx, ci_a.tenant_id);
    if (fx->pg_url == NULL) /* a new client's generation starts past every earlier one */
        assert_true(db_int(fx, "SELECT min(sync_gen) FROM client") > gen_before);
    text = check_lazy(fx, rc, ca);
    assert_non_null(strstr(text, "A1-again"));
    free(text);
    rowcache_free(rc);
    free_devs(a, 3);
    free_devs(b, 1);
}

/* One OS (op:value on operating_system.name) sorted by name, in full and lazily; both must
 * read the same. */
static char *
os_list(struct fx *fx, const char *op, const char *value, int desc, struct rowcache *rc)
{
    struct store_filter f[] = {{"operating_system.name", op, value}};
    struct store_sort by_name[] = {{"name", desc}};
    struct asset_query q;
    char *full, *lazy;

    memset(&q, 0, sizeof q);
    q.account_id = fx->account;
    q.limit = 50;
    q.filters = f;
    q.nfilters = 1;
    q.sorts = by_name;
    q.nsorts = 1;
    full = render_rows(fx, &q, 0, NULL, NULL);
    lazy = render_rows(fx, &q, 1, rc, held_in_cache);
    assert_string_equal(lazy, full);
    free(lazy);
    return full;
}

/* An OS eq list sorted by name (hardware_asset_os_name once the search indexer reached every
 * row, the name index before) reads as the same list written as "in" (never that index). */
static void
check_os_walk(struct fx *fx, struct rowcache *rc)
{
    for (int desc = 0; desc < 2; desc++) {
        char *eq = os_list(fx, "eq", "ios", desc, rc);
        char *in = os_list(fx, "in", "iOS,IOS", desc, rc);

        assert_string_equal(eq, in);
        assert_non_null(strstr(eq, "\"id\""));
        free(eq);
        free(in);
    }
}

static void
test_os_walk(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct device a[5], b[2];
    const char *an[] = {"delta", "Alpha", "charlie", "bravo", "aardvark"};
    const char *aos[] = {"iOS", "iOS", "Windows", "IOS", "iOS"};
    struct rowcache *rc = NULL;
    int64_t n = 0;
    char *text;

    assert_int_equal(rowcache_create(&rc, 1 << 20, &eb), ERR_OK);
    for (int i = 0; i < 5; i++) {
        char id[16];

        snprintf(id, sizeof id, "os-a%d", i);
        mkdev(&a[i], id, an[i], "Unknown");
        free(a[i].os_name);
        a[i].os_name = xstrdup(aos[i]);
    }
    mkdev(&b[0], "os-b0", "echo", "SN-E");
    mkdev(&b[1], "os-b1", "foxtrot", "SN-F");
    free(b[0].os_name);
    b[0].os_name = xstrdup("iOS");
    free(b[1].os_name);
    b[1].os_name = xstrdup("Android");
    sync_tenant(fx, &ci_a, a, 4, 1, T0);
    sync_tenant(fx, &ci_b, b, 2, 1, T0);
    check_os_walk(fx, rc); /* nothing indexed yet */
    assert_int_equal(store_search_index(fx->st, 1000, &n, &eb), ERR_OK);
    check_os_walk(fx, rc); /* every row indexed */
    text = os_list(fx, "eq", "IOS", 0, rc);
    assert_true(strstr(text, "Alpha") < strstr(text, "bravo"));
    assert_true(strstr(text, "bravo") < strstr(text, "delta"));
    assert_null(strstr(text, "charlie"));
    free(text);

    /* A sync's new device is not indexed yet: the list still shows it. */
    sync_tenant(fx, &ci_a, a, 5, 1, T0 + 60);
    check_os_walk(fx, rc);
    text = os_list(fx, "eq", "iOS", 0, rc);
    assert_non_null(strstr(text, "aardvark"));
    free(text);
    assert_int_equal(store_search_index(fx->st, 1000, &n, &eb), ERR_OK);
    check_os_walk(fx, rc);

    /* Indexed rows renamed, moved to another OS, retired. */
    free(a[0].name);
    a[0].name = xstrdup("zulu");
    free(a[1].os_name);
    a[1].os_name = xstrdup("Android");
    sync_tenant(fx, &ci_a, a + 1, 4, 1, T0 + 120); /* a[0] is gone: retired */
    check_os_walk(fx, rc);
    text = os_list(fx, "eq", "ios", 0, rc);
    assert_null(strstr(text, "Alpha"));
    assert_null(strstr(text, "delta"));
    assert_non_null(strstr(text, "aardvark"));
    free(text);
    sync_tenant(fx, &ci_a, a, 5, 1, T0 + 180); /* back, renamed */
    check_os_walk(fx, rc);
    text = os_list(fx, "eq", "ios", 1, rc);
    assert_true(strstr(text, "zulu") < strstr(text, "aardvark"));
    free(text);
    rowcache_free(rc);
    free_devs(a, 5);
    free_devs(b, 2);
}

static void
test_int64_roundtrip_and_query(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct device d[2];
    struct seen s;
    struct asset_query q;

    mkdev(&d[0], "dev-a", "Big-Disk", "SN-A");
    d[0].storage_total = INT64_C(8796093022208); /* 8 TiB, far above 2^31 */
    d[0].memory = INT64_C(68719476736);
    mkdev(&d[1], "dev-b", "small", "SN-B");
    d[1].storage_total = -1;
    sync_tenant(fx, &ci_a, d, 2, 1, T0);
    s = list_assets(fx, 0);
    assert_int_equal(s.n, 2);
    assert_true(s.storage[0] == INT64_C(8796093022208));
    assert_true(s.storage[1] == -1);
    assert_string_equal(s.tenant[0], ci_a.tenant_id);

    memset(&q, 0, sizeof q);
    memset(&s, 0, sizeof s);
    q.account_id = fx->account;
    q.search = "big-d";
    assert_int_equal(store_assets_each(fx->st, &q, collect, &s, &eb), ERR_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.names[0], "Big-Disk");
    q.search = NULL;
    q.client = "Contoso";
    assert_int_equal(store_assets_count(fx->st, &q, &eb), 2);
    q.client = "Nobody";
    assert_int_equal(store_assets_count(fx->st, &q, &eb), 0);
    q.client = NULL;
    q.limit = 1;
    memset(&s, 0, sizeof s);
    assert_int_equal(store_assets_each(fx->st, &q, collect, &s, &eb), ERR_OK);
    assert_int_equal(s.n, 1);
    q.after_id = s.ids[0];
    memset(&s, 0, sizeof s);
    assert_int_equal(store_assets_each(fx->st, &q, collect, &s, &eb), ERR_OK);
    assert_int_equal(s.n, 1);
    assert_string_equal(s.names[0], "small");
    /* A page past the end of a list sorted by one field: the rows with a value are counted to
     * place the offset among the NULLs, for client fields too (the count needs the join). */
    {
        static const char *const fields[] = {"client.name", "name", "client.id", "imei"};

        for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
            struct store_sort so = {fields[i], (int)i % 2};

            memset(&q, 0, sizeof q);
            memset(&s, 0, sizeof s);
            q.account_id = fx->account;
            q.sorts = &so;
            q.nsorts = 1;
            q.offset = 1000;
            q.limit = 10;
            if (store_assets_each(fx->st, &q, collect, &s, &eb) != ERR_OK)
                fail_msg("sort %s, offset past the end: %s", fields[i], eb.msg);
            assert_int_equal(s.n, 0);
            q.offset = 1;
            assert_int_equal(store_assets_each(fx->st, &q, collect, &s, &eb), ERR_OK);
            assert_int_equal(s.n, 1);
        }
    }
    free_devs(d, 2);
}

struct client_seen {
    int n;
    char status[4][8];
    char code[4][32];
    int64_t devices[4];
};

static int
collect_client(void *arg, const struct client_row *c)
{
    struct client_seen *s = arg;

    snprintf(s->status[s->n], sizeof s->status[0], "%s", c->status);
    snprintf(s->code[s->n], sizeof s->code[0], "%s", c->error_code ? c->error_code : "");
    s->devices[s->n] = c->device_count;
    s->n++;
    return 0;
}

static void
test_clients_and_runs(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct device d;
    struct client_seen s;
    struct tenant_result r;
    int64_t run = 0;

    mkdev(&d, "dev-a", "A", "SN-A");
    sync_tenant(fx, &ci_a, &d, 1, 1, T0);
    assert_int_equal(store_client_fail(fx->st, fx->account, fx->integ, &ci_b, "consent_missing",
                                       "The sync app is not consented.", "Grant consent.", &eb),
                     ERR_OK);
    memset(&s, 0, sizeof s);
    assert_int_equal(store_clients_each(fx->st, fx->account, collect_client, &s, &eb), ERR_OK);
    assert_int_equal(s.n, 2);
    assert_string_equal(s.status[0], "ok"); /* Contoso sorts first */
    assert_int_equal(s.devices[0], 1);
    assert_string_equal(s.status[1], "error");
    assert_string_equal(s.code[1], "consent_missing");

    assert_int_equal(store_client_update(fx->st, fx->account, "Fabrikam", 0, "Fab (old)", &eb),
                     ERR_OK);
    assert_int_equal(store_client_update(fx->st, fx->account, "Nobody", 0, NULL, &eb),
                     ERR_NOTFOUND);
    assert_int_equal(db_int(fx, "SELECT included FROM client WHERE name_override = "
                                "'Fab (old)'"),
                     0);
    assert_int_equal(store_client_update(fx->st, fx->account, ci_b.tenant_id, 1, "", &eb), ERR_OK);
    assert_int_equal(db_int(fx, "SELECT count(*) FROM client WHERE included = 1 AND "
                                "name_override IS NULL"),
                     2);

    assert_int_equal(store_run_start(fx->st, fx->integ, "full", T0, &run, &eb), ERR_OK);
    memset(&r, 0, sizeof r);
    r.tenant_id = ci_a.tenant_id;
    r.status = "ok";
    r.counts.created = 1;
    r.requests = 3;
    assert_int_equal(store_run_tenant(fx->st, run, &r, &eb), ERR_OK);
    assert_int_equal(store_run_finish(fx->st, run, "partial", NULL, T0 + 5, &eb), ERR_OK);
    assert_int_equal(store_run_finish(fx->st, run + 100, "ok", NULL, T0 + 5, &eb), ERR_NOTFOUND);
    assert_int_equal(store_run_start(fx->st, 4242, "full", T0, &run, &eb), ERR_NOTFOUND);
    assert_int_equal(db_int(fx, "SELECT requests FROM sync_tenant_result"), 3);
    device_clear(&d);
}

struct ids_seen {
    char request_id[64];
    char date[64];
};

static int
collect_ids(void *arg, const struct client_row *c)
{
    struct ids_seen *s = arg;

    if (strcmp(c->tenant_id, ci_b.tenant_id) == 0) {
        snprintf(s->request_id, sizeof s->request_id, "%s",
                 c->error_request_id ? c->error_request_id : "(null)");
        snprintf(s->date, sizeof s->date, "%s", c->error_date ? c->error_date : "(null)");
    }
    return 0;
}

/* Microsoft's request id and date of a failure are kept with the client and the run's result,
 * and a later successful sync of the tenant clears them with the error. */
static void
test_failure_ids(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct device d;
    struct ids_seen s;
    struct tenant_result r;
    struct client_info ci = ci_b;
    int64_t run = 0;
    char *v;

    ci.error_request_id = "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0";
    ci.error_date = "Mon, 07 Dec 2026 15:00:00 GMT";
    assert_int_equal(store_client_fail(fx->st, fx->account, fx->integ, &ci, "permission_missing",
                                       "Not allowed.", "Grant consent.", &eb),
                     ERR_OK);
    memset(&s, 0, sizeof s);
    assert_int_equal(store_clients_each(fx->st, fx->account, collect_ids, &s, &eb), ERR_OK);
    assert_string_equal(s.request_id, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0");
    assert_string_equal(s.date, "Mon, 07 Dec 2026 15:00:00 GMT");

    assert_int_equal(store_run_start(fx->st, fx->integ, "full", T0, &run, &eb), ERR_OK);
    memset(&r, 0, sizeof r);
    r.tenant_id = ci_b.tenant_id;
    r.status = "error";
    r.error_code = "permission_missing";
    r.request_id = ci.error_request_id;
    r.response_date = ci.error_date;
    assert_int_equal(store_run_tenant(fx->st, run, &r, &eb), ERR_OK);
    v = db_text(fx, "SELECT error_request_id || '|' || error_date FROM sync_tenant_result", 0);
    assert_string_equal(v, "0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0|Mon, 07 Dec 2026 15:00:00 GMT");
    free(v);

    mkdev(&d, "dev-b", "B", "SN-B");
    sync_tenant(fx, &ci_b, &d, 1, 1, T0 + 60);
    memset(&s, 0, sizeof s);
    assert_int_equal(store_clients_each(fx->st, fx->account, collect_ids, &s, &eb), ERR_OK);
    assert_string_equal(s.request_id, "(null)");
    assert_string_equal(s.date, "(null)");
    device_clear(&d);
}

/* WAL: a second connection reads the last committed state while a tenant is being written. */
static void
test_reader_sees_snapshot(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct store *reader = NULL;
    struct device d;
    struct asset_query q;
    struct reconcile_counts c;

    assert_int_equal(store_open(&reader, fx->path, &eb), ERR_OK);
    mkdev(&d, "dev-a", "A", "SN-A");
    memset(&q, 0, sizeof q);
    q.account_id = fx->account;
    assert_int_equal(store_reconcile_begin(fx->st, fx->account, fx->integ, &ci_a, T0, &eb), ERR_OK);
    assert_int_equal(store_reconcile_device(fx->st, &d, &eb), ERR_OK);
    assert_int_equal(store_assets_count(reader, &q, &eb), 0);
    assert_int_equal(store_reconcile_commit(fx->st, 1, 1, &c, &eb), ERR_OK);
    assert_int_equal(store_assets_count(reader, &q, &eb), 1);
    store_close(reader);
    device_clear(&d);
}

static void
test_diff_helper(void **state)
{
    struct device a, b;
    char *k;

    (void)state;
    mkdev(&a, "x", "n", "s");
    mkdev(&b, "x", "n", "s");
    assert_int_equal(store_device_diff(&a, &b, NULL, NULL), 0);
    b.is_encrypted = 0;
    b.type = DEVICE_VIRTUAL;
    assert_int_equal(store_device_diff(&a, &b, NULL, NULL), 2);
    device_clear(&a);
    device_clear(&b);
    k = store_serial_key("  ab-12c ");
    assert_string_equal(k, "AB-12C");
    free(k);
    assert_null(store_serial_key("   "));
    assert_null(store_serial_key(NULL));
}

static void
test_pg_refuse_foreign_and_newer(void **state)
{
    struct fx *fx = *state;
    struct store *st = NULL;
    struct errbuf eb = {0};

    assert_string_equal(store_backend(fx->st), "postgresql");
    store_close(fx->st);
    fx->st = NULL;
    /* Reopen: already migrated. */
    assert_int_equal(store_open(&st, fx->pg_url, &eb), ERR_OK);
    store_close(st);
    pg_exec(fx->pg_url, "UPDATE memsync_meta SET value = 99 WHERE key = 'schema_version'");
    assert_int_equal(store_open(&st, fx->pg_url, &eb), ERR_DB);
    assert_non_null(strstr(eb.msg, "newer memsync"));
    assert_int_equal(db_int(fx, "SELECT value FROM memsync_meta WHERE key = 'schema_version'"), 99);
    pg_exec(fx->pg_url, "SET client_min_messages = warning; DROP SCHEMA public CASCADE; "
                        "CREATE SCHEMA public; CREATE TABLE notes (id int)");
    assert_int_equal(store_open(&st, fx->pg_url, &eb), ERR_DB);
    assert_non_null(strstr(eb.msg, "not a memsync database"));
    assert_int_equal(db_int(fx, "SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"), 1);
    assert_null(st);
}

/* ---- count cache and search index (migration 4) ------------------------------------------ */

static int64_t
count_os(struct store *st, int64_t account, const char *os)
{
    struct store_filter f = {"operating_system.name", "eq", os};
    struct asset_query q;
    struct errbuf eb = {0};

    memset(&q, 0, sizeof q);
    q.account_id = account;
    q.filters = &f;
    q.nfilters = 1;
    return store_assets_count(st, &q, &eb);
}

/* A cached count changes right after any write that changes it, whichever connection wrote. */
static void
test_count_cache_follows_writes(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct store *other = NULL;
    struct store_filter f = {"client.name", "eq", "Renamed"};
    struct asset_query q;
    struct device d[3];
    int64_t v0 = 0, v1 = 0;

    mkdev(&d[0], "dev-a", "A", "SN-A");
    mkdev(&d[1], "dev-b", "B", "SN-B");
    mkdev(&d[2], "dev-c", "C", "SN-C");
    sync_tenant(fx, &ci_a, d, 1, 1, T0);
    assert_int_equal(count_os(fx->st, fx->account, "Windows"), 1);
    assert_int_equal(count_os(fx->st, fx->account, "Windows"), 1); /* cached */
    assert_int_equal(store_data_version(fx->st, &v0, &eb), ERR_OK);
    /* Another connection (as a CLI sync in another process would) adds two devices. */
    assert_int_equal(store_open(&other, fx->pg_url != NULL ? fx->pg_url : fx->path, &eb), ERR_OK);
    {
        struct store *mine = fx->st;
        fx->st = other;
        sync_tenant(fx, &ci_a, d, 3, 1, T0 + 60);
        fx->st = mine;
    }
    assert_int_equal(store_data_version(fx->st, &v1, &eb), ERR_OK);
    assert_true(v1 != v0);
    assert_int_equal(count_os(fx->st, fx->account, "Windows"), 3);
    /* A device leaves: the listing without it retires it. */
    sync_tenant(fx, &ci_a, d, 2, 1, T0 + 120);
    assert_int_equal(count_os(other, fx->account, "Windows"), 2);
    /* Client rename and exclusion change counts that filter on the client. */
    memset(&q, 0, sizeof q);
    q.account_id = fx->account;
    q.filters = &f;
    q.nfilters = 1;
    assert_int_equal(store_assets_count(fx->st, &q, &eb), 0);
    assert_int_equal(store_client_update(other, fx->account, "Contoso", -1, "Renamed", &eb),
                     ERR_OK);
    assert_int_equal(store_assets_count(fx->st, &q, &eb), 2);
    store_close(other);
    free_devs(d, 3);
}

/* The count cache keeps every one of many recent distinct lists: a row written behind the
 * store's back (no data version change) shows in none of their counts. A direct-mapped table
 * lost some of 300 to collisions and recounted them. */
static void
test_count_cache_holds_many_lists(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct device d;
    struct store_filter f = {"name", "eq", NULL};
    struct asset_query q;
    char name[32];

    mkdev(&d, "dev-a", "A", "SN-A");
    sync_tenant(fx, &ci_a, &d, 1, 1, T0);
    memset(&q, 0, sizeof q);
    q.account_id = fx->account;
    q.filters = &f;
    q.nfilters = 1;
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "N%d", i);
        f.value = name;
        assert_int_equal(store_assets_count(fx->st, &q, &eb), 0);
    }
    /* Every name gets a row, the data version stays: cached counts stay 0. */
    sql_exec(fx->path,
             "WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE "
             "i < 299) INSERT INTO hardware_asset (account_id, client_id, integration_id, "
             "tenant_id, intune_device_id, name, first_synced_at, last_synced_at, "
             "last_seen_gen) SELECT h.account_id, h.client_id, h.integration_id, "
             "h.tenant_id, 'x' || i, 'N' || i, 0, 0, 0 FROM n, hardware_asset h");
    for (int i = 0; i < 300; i++) {
        snprintf(name, sizeof name, "N%d", i);
        f.value = name;
        if (store_assets_count(fx->st, &q, &eb) != 0)
            fail_msg("the count of %s was not kept", name);
    }
    /* The rows are there: a list not counted before sees them. */
    f.op = "like";
    f.value = "N";
    assert_int_equal(store_assets_count(fx->st, &q, &eb), 300);
    device_clear(&d);
}

/* ASCII case-insensitive substring: search= on SQLite (lower() folds ASCII only). */
static int
contains_ci(const char *hay, const char *needle)
{
    size_t n = strlen(needle), h = hay != NULL ? strlen(hay) : 0;

    if (n == 0)
        return 1;
    for (size_t i = 0; i + n <= h; i++) {
        size_t k = 0;
        while (k < n) {
            unsigned char a = (unsigned char)hay[i + k], b = (unsigned char)needle[k];
            if (a >= 'A' && a <= 'Z')
                a = (unsigned char)(a - 'A' + 'a');
            if (b >= 'A' && b <= 'Z')
                b = (unsigned char)(b - 'A' + 'a');
            if (a != b)
                break;
            k++;
        }
        if (k == n)
            return 1;
    }
    return 0;
}

static int
ascii(const char *s)
{
    for (; *s != '\0'; s++)
        if ((unsigned char)*s >= 0x80)
            return 0;
    return 1;
}

static const char *const search_names[] = {
    "Laptop-ABC",
    "<img src=x onerror=alert(1)>",
    "O'Brien \"quoted\" AND NEAR(x)",
    "100%_done\\",
    "ÉCOLE-Jürgen",
    "école-jürgen",
    "Kelvin \xE2\x84\xAA",
    "",
    "a*b^c-d:e",
};

/* Every search text finds exactly the devices holding it (case-insensitive substring). */
static void
check_searches(struct fx *fx, const struct device *d, size_t nd, const char *phase)
{
    static const char *const searches[] = {
        "lap",        "LAPTOP-abc", "abc",          "img src",
        "\"quoted\"", "\" AND ",    "NEAR(",        "O'B",
        "%_d",        "0%_",        "done\\",       "_",
        "%",          "ÉCOLE",      "école",        "jürgen",
        "JÜRGEN",     "kelvin k",   "\xE2\x84\xAA", "a*b",
        "^c-d:",      "xyz",        "ab",           "-",
        "''",         "\"\"\"",     "sn-0",         "SN-05",
        "model",      "Upn-3@",     "user 7",
    };

    for (size_t k = 0; k < sizeof searches / sizeof searches[0]; k++) {
        struct asset_query q;
        struct seen s;
        struct errbuf eb = {0};
        int want = 0;

        /* PostgreSQL's lower() folds beyond ASCII (by locale): compare ASCII-only cases. */
        if (fx->pg_url != NULL && (strstr(searches[k], "kelvin") != NULL || !ascii(searches[k])))
            continue;
        memset(&q, 0, sizeof q);
        memset(&s, 0, sizeof s);
        q.account_id = fx->account;
        q.search = searches[k];
        assert_int_equal(store_assets_each(fx->st, &q, collect, &s, &eb), ERR_OK);
        for (size_t i = 0; i < nd; i++) {
            int hit =
                contains_ci(d[i].name, searches[k]) || contains_ci(d[i].serial, searches[k]) ||
                contains_ci(d[i].user_upn, searches[k]) ||
                contains_ci(d[i].user_name, searches[k]) || contains_ci(d[i].model, searches[k]);
            int found = 0;

            for (int j = 0; j < s.n; j++)
                if (strcmp(s.names[j], d[i].name != NULL ? d[i].name : "") == 0)
                    found = 1;
            if (hit != found)
                fail_msg("%s: search '%s' and device '%s': expected %d, got %d", phase, searches[k],
                         d[i].name, hit, found);
            want += hit;
        }
        assert_int_equal(s.n, want);
        assert_int_equal(store_assets_count(fx->st, &q, &eb), want);
    }
}

/* Walks a search in pages of 3 (after_id): every device once, in id order. */
static void
check_search_pages(struct fx *fx, const char *text, int want)
{
    struct asset_query q;
    struct errbuf eb = {0};
    int64_t last = 0;
    int total = 0;

    memset(&q, 0, sizeof q);
    q.account_id = fx->account;
    q.search = text;
    q.limit = 3;
    for (;;) {
        struct seen s;

        memset(&s, 0, sizeof s);
        q.after_id = last;
        assert_int_equal(store_assets_each(fx->st, &q, collect, &s, &eb), ERR_OK);
        for (int i = 0; i < s.n; i++) {
            assert_true(s.ids[i] > last);
            last = s.ids[i];
        }
        total += s.n;
        if (s.n < 3)
            break;
    }
    assert_int_equal(total, want);
}

static int64_t
search_count(struct fx *fx, const char *text)
{
    struct asset_query q;
    struct errbuf eb = {0};

    memset(&q, 0, sizeof q);
    q.account_id = fx->account;
    q.search = text;
    return store_assets_count(fx->st, &q, &eb);
}

static void
test_search_matches_substring(void **state)
{
    struct fx *fx = *state;
    size_t nd = sizeof search_names / sizeof search_names[0];
    struct device d[sizeof search_names / sizeof search_names[0] + 1];
    struct errbuf eb = {0};
    int64_t n = -1;
    int sqlite = fx->pg_url == NULL;

    for (size_t i = 0; i < nd + 1; i++) {
        char id[32], sn[32], buf[64];

        snprintf(id, sizeof id, "dev-%zu", i);
        snprintf(sn, sizeof sn, "SN-%02zu", i);
        mkdev(&d[i], id, i < nd ? search_names[i] : "Late-Arrival-77", sn);
        snprintf(buf, sizeof buf, "upn-%zu@contoso.example", i);
        d[i].user_upn = xstrdup(buf);
        snprintf(buf, sizeof buf, "User %zu", i);
        d[i].user_name = i % 2 ? xstrdup(buf) : NULL;
        d[i].model = xstrdup(i % 3 ? "Model X" : "Latitude");
    }
    sync_tenant(fx, &ci_a, d, nd, 1, T0);
    /* Nothing indexed yet (SQLite: the sync leaves that to the scheduler): a scan answers. */
    check_searches(fx, d, nd, "not indexed");
    assert_int_equal(store_search_index(fx->st, 4, &n, &eb), ERR_OK);
    assert_int_equal(n, sqlite ? 4 : 0);
    check_searches(fx, d, nd, "partly indexed");
    assert_int_equal(store_search_index(fx->st, 1000, &n, &eb), ERR_OK);
    assert_int_equal(n, sqlite ? (int64_t)nd - 4 : 0);
    assert_int_equal(store_search_index(fx->st, 1000, &n, &eb), ERR_OK);
    assert_int_equal(n, 0);
    check_searches(fx, d, nd, "indexed");
    check_search_pages(fx, "upn-", (int)nd);
    check_search_pages(fx, "@contoso.EXAMPLE", (int)nd);

    /* Renaming an indexed device updates the index. */
    free(d[0].name);
    d[0].name = xstrdup("Desktop-QQQ");
    sync_tenant(fx, &ci_a, d, nd, 1, T0 + 60);
    assert_int_equal(search_count(fx, "top-qqq"), 1);
    assert_int_equal(search_count(fx, "laptop-abc"), 0);
    check_searches(fx, d, nd, "renamed");
    /* A device added after indexing is found before and after it is indexed. */
    sync_tenant(fx, &ci_a, d, nd + 1, 1, T0 + 120);
    assert_int_equal(search_count(fx, "arrival-7"), 1);
    check_searches(fx, d, nd + 1, "added, not indexed");
    check_search_pages(fx, "upn-", (int)nd + 1);
    assert_int_equal(store_search_index(fx->st, 1000, &n, &eb), ERR_OK);
    assert_int_equal(n, sqlite ? 1 : 0);
    assert_int_equal(search_count(fx, "arrival-7"), 1);
    check_searches(fx, d, nd + 1, "added");
    assert_int_equal(store_search_index(fx->st, 0, &n, &eb), ERR_INVAL);
    free_devs(d, nd + 1);
}

/* Threads that count the same conditions at once: the backend counts once. */
struct count_race {
    const char *db;
    pthread_barrier_t *start;
    int64_t account, n;
};

static void *
count_racer(void *arg)
{
    struct count_race *r = arg;
    struct store *st = NULL;
    struct errbuf eb = {0};
    struct asset_query q;

    memset(&q, 0, sizeof q);
    q.account_id = r->account;
    q.search = "upn-1"; /* nothing is indexed: every row is read */
    if (store_open(&st, r->db, &eb) == ERR_OK) {
        pthread_barrier_wait(r->start);
        r->n = store_assets_count(st, &q, &eb);
    } else {
        pthread_barrier_wait(r->start);
        r->n = -1;
    }
    store_close(st);
    return NULL;
}

static void
test_count_single_flight(void **state)
{
    struct fx *fx = *state;
    enum { NDEV = 6000, NTHREADS = 6 };
    struct device *d = xcalloc(NDEV, sizeof *d);
    struct count_race r[NTHREADS];
    pthread_t t[NTHREADS];
    pthread_barrier_t start;
    uint64_t c0, h0, c1, h1;

    for (size_t i = 0; i < NDEV; i++) {
        char id[32], buf[64];

        snprintf(id, sizeof id, "dev-%zu", i);
        mkdev(&d[i], id, id, NULL);
        snprintf(buf, sizeof buf, "upn-%zu@contoso.example", i);
        d[i].user_upn = xstrdup(buf);
    }
    sync_tenant(fx, &ci_a, d, NDEV, 1, T0);
    assert_int_equal(pthread_barrier_init(&start, NULL, NTHREADS), 0);
    store_count_stats(&c0, &h0);
    for (int i = 0; i < NTHREADS; i++) {
        r[i] =
            (struct count_race){fx->pg_url != NULL ? fx->pg_url : fx->path, &start, fx->account, 0};
        assert_int_equal(pthread_create(&t[i], NULL, count_racer, &r[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    store_count_stats(&c1, &h1);
    pthread_barrier_destroy(&start);
    /* upn-1, upn-10..19, upn-100..199, upn-1000..1999: 1,111 devices. */
    for (int i = 0; i < NTHREADS; i++)
        assert_int_equal(r[i].n, 1111);
    assert_int_equal(c1 - c0, 1);
    assert_int_equal(h1 - h0, NTHREADS - 1);
    free_devs(d, NDEV);
    free(d);
}

static void
test_trigram_query(void **state)
{
    char *m;

    (void)state;
    assert_null(store_trigram_query(NULL));
    assert_null(store_trigram_query("ab"));
    assert_null(store_trigram_query("\xC3\xA4\xC3\xB6")); /* two characters, four bytes */
    assert_null(store_trigram_query("ab\xFF"
                                    "cd"));         /* not UTF-8 */
    assert_null(store_trigram_query("ab\xC0\xAF")); /* overlong */
    m = store_trigram_query("abc");
    assert_string_equal(m, "\"abc\"");
    free(m);
    m = store_trigram_query("a\"bc");
    assert_string_equal(m, "\"a\"\"b\" AND \"\"\"bc\"");
    free(m);
    m = store_trigram_query("\xC3\xA4"
                            "bcd");
    assert_string_equal(m, "\"\xC3\xA4"
                           "bc\" AND \"bcd\"");
    free(m);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_fresh_and_reopen, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_not_sqlite, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_foreign_sqlite, setup_plain, teardown),
        cmocka_unit_test_setup_teardown(test_refuse_newer, setup_plain, teardown),
        cmocka_unit_test(test_postgres_unreachable),
        cmocka_unit_test_setup_teardown(test_integrations, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_volatile_fields_not_history, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_reconcile_created_updated_unchanged, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_complete_listing_retires_missing, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rollback_leaves_nothing, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_retire_policy, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_retire_hold_and_warning, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_batch_group_commit, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_same_title_twice_on_a_device, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_installs, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_software_count, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_installs_v4, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_apikey_expiry_and_last_use, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_totp_state, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_user_prefs, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_sso_state, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_change_feed, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_integration_cloud_and_expiry_source, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_many_installs, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_first_sync_device_twice, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_first_sync_titles_exist, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_reconcile_foreign_keys, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_reconcile_after_lost_transaction, setup_open,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_serial_duplicate, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_lazy_rows, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_os_walk, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_int64_roundtrip_and_query, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_clients_and_runs, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_failure_ids, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_reader_sees_snapshot, setup_open, teardown),
        cmocka_unit_test(test_diff_helper),
        cmocka_unit_test_setup_teardown(test_count_cache_follows_writes, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_count_cache_holds_many_lists, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_search_matches_substring, setup_open, teardown),
        cmocka_unit_test_setup_teardown(test_count_single_flight, setup_open, teardown),
        cmocka_unit_test(test_trigram_query),
    };
    const struct CMUnitTest pg_tests[] = {
        cmocka_unit_test_setup_teardown(test_totp_state, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_user_prefs, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_sso_state, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_change_feed, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_change_feed_commit_order_pg, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_integrations, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_volatile_fields_not_history, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_reconcile_created_updated_unchanged, setup_open_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_complete_listing_retires_missing, setup_open_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_rollback_leaves_nothing, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_retire_policy, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_retire_hold_and_warning, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_batch_group_commit, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_same_title_twice_on_a_device, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_installs, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_software_count, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_migrate_installs_v4, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_integration_cloud_and_expiry_source, setup_open_pg,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_many_installs, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_first_sync_device_twice, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_first_sync_titles_exist, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_reconcile_foreign_keys, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_serial_duplicate, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_lazy_rows, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_os_walk, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_int64_roundtrip_and_query, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_clients_and_runs, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_failure_ids, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_pg_refuse_foreign_and_newer, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_count_cache_follows_writes, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_search_matches_substring, setup_open_pg, teardown),
        cmocka_unit_test_setup_teardown(test_count_single_flight, setup_open_pg, teardown),
    };
    int failed = cmocka_run_group_tests_name("sqlite", tests, NULL, NULL);

    /* PostgreSQL runs only where a disposable database is given (its public schema is
     * dropped): MEMSYNC_TEST_PG_URL=postgresql:///memsync_test?host=/tmp/... */
    if (getenv("MEMSYNC_TEST_PG_URL") != NULL)
        failed += cmocka_run_group_tests_name("postgresql", pg_tests, NULL, NULL);
    return failed;
}
