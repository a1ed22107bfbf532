/* test_reconcile.c - the reconcile core against a scripted backend: what it asks the backend to
 * write for a device and its install set, the counts and title deltas it keeps, and that a
 * failed step keeps the commit from happening. Both real backends run it through test_store. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "device.h"
#include "err.h"
#include "mem.h"
#include "reconcile.h"

#define HAVE_MAX 16

/* One tenant holding at most one device (id 7) and its installs. */
struct fake {
    struct store base;
    struct buf log; /* the writes asked for, space-separated */
    int found;
    int64_t retired;
    struct device stored;
    int64_t have[HAVE_MAX];
    int removed[HAVE_MAX];
    size_t nhave;
    int fail_update; /* device_update answers ERR_DB */
    int open;        /* the tenant's transaction */
};

static void
note(struct store *st, const char *what)
{
    struct fake *f = (struct fake *)st;

    buf_printf(&f->log, "%s ", what);
}

static void
note_id(struct store *st, const char *what, int64_t v)
{
    struct fake *f = (struct fake *)st;

    buf_printf(&f->log, "%s:%" PRId64 " ", what, v);
}

static int
f_begin(struct store *st, struct errbuf *eb)
{
    (void)eb;
    ((struct fake *)st)->open = 1;
    return ERR_OK;
}

static void
f_undo(struct store *st)
{
    ((struct fake *)st)->open = 0;
    note(st, "undo");
}

static int
f_commit(struct store *st, struct errbuf *eb)
{
    (void)eb;
    ((struct fake *)st)->open = 0;
    note(st, "commit");
    return ERR_OK;
}

static int
f_owned(struct store *st, int64_t account_id, int64_t integration_id, struct errbuf *eb)
{
    (void)st;
    if (account_id != 1 || integration_id != 2)
        return err_set(eb, ERR_NOTFOUND, "integration %d does not exist", (int)integration_id);
    return ERR_OK;
}

static int
f_client(struct store *st, int64_t account_id, int64_t integration_id, const struct client_info *ci,
         int64_t now, int64_t *client, int64_t *gen, struct errbuf *eb)
{
    (void)st, (void)account_id, (void)integration_id, (void)ci, (void)now, (void)eb;
    *client = 3;
    *gen = 5;
    return ERR_OK;
}

static int
f_find(struct store *st, const char *intune_id, int *found, int64_t *id, int64_t *retired,
       struct device *old, struct errbuf *eb)
{
    struct fake *f = (struct fake *)st;

    (void)intune_id, (void)eb;
    if (!f->found)
        return ERR_OK;
    *found = 1;
    *id = 7;
    *retired = f->retired;
    old->name = xstrdup(f->stored.name);
    old->ownership = xstrdup(f->stored.ownership);
    old->type = f->stored.type;
    old->is_encrypted = f->stored.is_encrypted;
    old->is_supervised = f->stored.is_supervised;
    old->storage_total = f->stored.storage_total;
    old->storage_free = f->stored.storage_free;
    old->memory = f->stored.memory;
    return ERR_OK;
}

static int
f_insert(struct store *st, const struct device *d, const char *key, int64_t *id, struct errbuf *eb)
{
    (void)d, (void)key, (void)eb;
    *id = 7;
    note(st, "insert-device");
    return ERR_OK;
}

static int
f_touch(struct store *st, int64_t id, struct errbuf *eb)
{
    (void)eb;
    note_id(st, "touch", id);
    return ERR_OK;
}

static int
f_update(struct store *st, int64_t id, const struct device *d, const char *key, struct errbuf *eb)
{
    (void)d, (void)key;
    if (((struct fake *)st)->fail_update)
        return err_set(eb, ERR_DB, "disk full");
    note_id(st, "update", id);
    return ERR_OK;
}

static int
f_change(struct store *st, int64_t asset_id, const char *field, const char *oldv, const char *newv,
         struct errbuf *eb)
{
    struct fake *f = (struct fake *)st;

    (void)asset_id, (void)eb;
    buf_printf(&f->log, "change:%s:%s>%s ", field, oldv ? oldv : "-", newv ? newv : "-");
    return ERR_OK;
}

static int
f_asset_find(struct store *st, const char *intune_id, int64_t *id, int *active, struct errbuf *eb)
{
    (void)st, (void)eb;
    if (strcmp(intune_id, "dev-1") != 0)
        return ERR_NOTFOUND;
    *id = 7;
    *active = 1;
    return ERR_OK;
}

static int
f_installs_each(struct store *st, int64_t asset_id,
                void (*cb)(void *arg, int64_t title, int removed), void *arg, struct errbuf *eb)
{
    struct fake *f = (struct fake *)st;

    (void)asset_id, (void)eb;
    for (size_t i = 0; i < f->nhave; i++)
        cb(arg, f->have[i], f->removed[i]);
    return ERR_OK;
}

/* App names are the titles' ids. */
static int
f_title_id(struct store *st, const struct app_ref *a, int64_t *id, struct errbuf *eb)
{
    (void)st, (void)eb;
    *id = strtoll(a->name, NULL, 10);
    return ERR_OK;
}

static int
f_installs_insert(struct store *st, int64_t asset_id, const int64_t *titles, size_t n,
                  struct errbuf *eb)
{
    (void)asset_id, (void)eb;
    for (size_t i = 0; i < n; i++)
        note_id(st, "insert", titles[i]);
    return ERR_OK;
}

static int
f_revive(struct store *st, int64_t asset_id, int64_t title, struct errbuf *eb)
{
    (void)asset_id, (void)eb;
    note_id(st, "revive", title);
    return ERR_OK;
}

static int
f_remove(struct store *st, int64_t asset_id, int64_t title, struct errbuf *eb)
{
    (void)asset_id, (void)eb;
    note_id(st, "remove", title);
    return ERR_OK;
}

static int
f_missing_clear(struct store *st, struct errbuf *eb)
{
    (void)eb;
    note(st, "clear");
    return ERR_OK;
}

static int
f_missing_mark(struct store *st, int64_t *n, struct errbuf *eb)
{
    (void)eb;
    *n = 2;
    note(st, "mark");
    return ERR_OK;
}

static int
f_retire(struct store *st, int64_t *n, int64_t **gone, size_t *ngone, struct errbuf *eb)
{
    (void)eb;
    *gone = xmalloc(sizeof **gone);
    (*gone)[0] = 9;
    *ngone = 1;
    *n = 1;
    note(st, "retire");
    return ERR_OK;
}

/* Writes each title's delta into the log, in title order. */
static int
f_titles(struct store *st, struct errbuf *eb)
{
    const struct reconcile *r = &st->rec;

    (void)eb;
    for (int64_t t = 1; t <= 20; t++)
        for (size_t k = 0; k < r->ndelta_slots; k++)
            if (r->delta[k].id == t && r->delta[k].d != 0) {
                struct fake *f = (struct fake *)st;

                buf_printf(&f->log, "delta:%d:%+d ", (int)t, (int)r->delta[k].d);
            }
    return ERR_OK;
}

static int
f_client_ok(struct store *st, struct errbuf *eb)
{
    (void)eb;
    note(st, "client-ok");
    return ERR_OK;
}

/* Asset 7 has titles 1 and 2 active; asset 9 (retired at commit) has 2 and 11. */
static int
f_asset_titles(struct store *st, int64_t asset_id, void (*cb)(void *arg, int64_t title), void *arg,
               struct errbuf *eb)
{
    (void)st, (void)eb;
    cb(arg, 2);
    cb(arg, asset_id == 9 ? 11 : 1);
    return ERR_OK;
}

static const struct reconcile_ops fake_rec = {
    .begin = f_begin,
    .undo = f_undo,
    .rollback = f_undo,
    .commit = f_commit,
    .integration_owned = f_owned,
    .client_upsert = f_client,
    .device_find = f_find,
    .device_insert = f_insert,
    .device_touch = f_touch,
    .device_update = f_update,
    .change_insert = f_change,
    .asset_find = f_asset_find,
    .installs_each = f_installs_each,
    .title_id = f_title_id,
    .installs_insert = f_installs_insert,
    .install_revive = f_revive,
    .install_remove = f_remove,
    .missing_clear = f_missing_clear,
    .missing_mark = f_missing_mark,
    .retire = f_retire,
    .titles_count = f_titles,
    .client_ok = f_client_ok,
    .title_deltas = 1,
    .asset_titles = f_asset_titles,
};

static const struct store_ops fake_ops = {.name = "fake", .rec = &fake_rec};

static void
device_sample(struct device *d, const char *name)
{
    device_init(d);
    d->intune_id = xstrdup("dev-1");
    d->name = xstrdup(name);
    d->ownership = xstrdup("company");
}

static struct fake *
fake_begin(void)
{
    struct fake *f = xcalloc(1, sizeof *f);
    struct client_info ci = {.tenant_id = "tenant-a", .name = "A"};
    struct errbuf eb = {0};

    f->base.ops = &fake_ops;
    f->retired = TS_NULL;
    buf_init(&f->log, 1 << 16);
    device_sample(&f->stored, "old-name");
    assert_int_equal(reconcile_begin(&f->base, 1, 2, &ci, 1000, &eb), ERR_OK);
    assert_true(f->open);
    return f;
}

static void
fake_free(struct fake *f)
{
    reconcile_reset(&f->base);
    device_clear(&f->stored);
    buf_free(&f->log);
    free(f);
}

static void
test_unknown_integration(void **state)
{
    struct fake f = {0};
    struct client_info ci = {.tenant_id = "tenant-a"};
    struct errbuf eb = {0};

    (void)state;
    f.base.ops = &fake_ops;
    buf_init(&f.log, 4096);
    assert_int_equal(reconcile_begin(&f.base, 1, 99, &ci, 1000, &eb), ERR_NOTFOUND);
    assert_false(f.base.rec.active);
    assert_string_equal(buf_cstr(&f.log), "undo ");
    buf_free(&f.log);
}

static void
test_device_decisions(void **state)
{
    struct fake *f = fake_begin();
    struct reconcile_counts c = {0};
    struct device d;
    struct errbuf eb = {0};

    (void)state;
    device_sample(&d, "old-name");
    assert_int_equal(reconcile_device(&f->base, &d, &eb), ERR_OK); /* not stored: inserted */
    f->found = 1;
    assert_int_equal(reconcile_device(&f->base, &d, &eb), ERR_OK); /* equal: touched */
    free(d.name);
    d.name = xstrdup("new-name");
    assert_int_equal(reconcile_device(&f->base, &d, &eb), ERR_OK); /* changed: updated */
    f->retired = 900;
    assert_int_equal(reconcile_device(&f->base, &d, &eb), ERR_OK); /* retired: revived */
    assert_int_equal(reconcile_commit(&f->base, 1, 1, &c, &eb), ERR_OK);
    assert_string_equal(buf_cstr(&f->log),
                        "insert-device touch:7 update:7 change:name:old-name>new-name "
                        "update:7 change:name:old-name>new-name clear mark retire "
                        "delta:1:+1 delta:11:-1 client-ok commit ");
    assert_int_equal(c.created, 1);
    assert_int_equal(c.unchanged, 1);
    assert_int_equal(c.updated, 2);
    assert_int_equal(c.revived, 1);
    assert_int_equal(c.missing, 2);
    assert_int_equal(c.retired, 1);
    assert_false(f->base.rec.active);
    device_clear(&d);
    fake_free(f);
}

static void
test_install_set_diff(void **state)
{
    struct fake *f = fake_begin();
    struct reconcile_counts c = {0};
    struct app_ref apps[] = {
        {.name = "2"}, {.name = "3"}, {.name = "5"}, {.name = "4"}, {.name = "4"}};
    struct errbuf eb = {0};

    (void)state;
    /* Stored: 1 and 2 active, 3 removed. Reported: 2, 3, 5, 4 and 4 again. */
    f->have[0] = 1;
    f->have[1] = 2;
    f->have[2] = 3;
    f->removed[2] = 1;
    f->nhave = 3;
    assert_int_equal(reconcile_installs(&f->base, "dev-1", apps, 5, &eb), ERR_OK);
    assert_int_equal(reconcile_installs(&f->base, "dev-2", apps, 1, &eb), ERR_NOTFOUND);
    assert_string_equal(eb.msg, "device dev-2 is not known in tenant tenant-a");
    /* The failed step stops the commit, and the tenant is undone. */
    assert_int_equal(reconcile_commit(&f->base, 0, 1, &c, &eb), ERR_INVAL);
    assert_string_equal(buf_cstr(&f->log), "revive:3 insert:4 insert:5 remove:1 undo ");
    assert_false(f->open);
    assert_false(f->base.rec.active);
    fake_free(f);

    f = fake_begin();
    f->have[0] = 1;
    f->have[1] = 2;
    f->have[2] = 3;
    f->removed[2] = 1;
    f->nhave = 3;
    assert_int_equal(reconcile_installs(&f->base, "dev-1", apps, 5, &eb), ERR_OK);
    assert_int_equal(reconcile_commit(&f->base, 0, 1, &c, &eb), ERR_OK);
    assert_string_equal(buf_cstr(&f->log), "revive:3 insert:4 insert:5 remove:1 clear "
                                           "delta:1:-1 delta:3:+1 delta:4:+1 delta:5:+1 "
                                           "client-ok commit ");
    assert_int_equal(c.installs_added, 3);
    assert_int_equal(c.installs_removed, 1);
    assert_int_equal(c.missing, 0);
    fake_free(f);
}

static void
test_failed_device_blocks_commit(void **state)
{
    struct fake *f = fake_begin();
    struct device d;
    struct errbuf eb = {0};

    (void)state;
    device_sample(&d, "new-name");
    f->found = 1;
    f->fail_update = 1;
    assert_int_equal(reconcile_device(&f->base, &d, &eb), ERR_DB);
    f->fail_update = 0;
    /* Later steps are refused too: the transaction may be gone. */
    assert_int_equal(reconcile_device(&f->base, &d, &eb), ERR_INVAL);
    assert_int_equal(reconcile_commit(&f->base, 1, 1, NULL, &eb), ERR_INVAL);
    assert_non_null(strstr(eb.msg, "nothing is committed"));
    assert_string_equal(buf_cstr(&f->log), "undo ");
    assert_int_equal(reconcile_commit(&f->base, 1, 1, NULL, &eb), ERR_INVAL); /* none open */
    device_clear(&d);
    fake_free(f);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_unknown_integration),
        cmocka_unit_test(test_device_decisions),
        cmocka_unit_test(test_install_set_diff),
        cmocka_unit_test(test_failed_device_blocks_commit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
