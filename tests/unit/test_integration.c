/* test_integration.c - the integration service: a new row and its two sealed keys are written
 * together or not at all, the checks that run before Microsoft is asked, and removal. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "clock.h"
#include "err.h"
#include "integration.h"
#include "store.h"
#include "vault.h"

#define GUID_T "11111111-1111-1111-1111-111111111111"
#define GUID_P "22222222-2222-2222-2222-222222222222"
#define GUID_S "33333333-3333-3333-3333-333333333333"

struct fx {
    char dir[64];
    char db[128];
    char key[128];
    struct store *st;
    struct vault *v;
    struct config cfg;
    int64_t account;
};

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    struct errbuf eb = {0};

    assert_non_null(fx);
    unsetenv("MEMSYNC_MASTER_KEY");
    snprintf(fx->dir, sizeof fx->dir, "/tmp/memsync-integ-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->db, sizeof fx->db, "%s/memsync.db", fx->dir);
    snprintf(fx->key, sizeof fx->key, "%s/master.key", fx->dir);
    assert_int_equal(store_open(&fx->st, fx->db, &eb), ERR_OK);
    assert_int_equal(store_account_ensure(fx->st, "default", &fx->account, &eb), ERR_OK);
    assert_int_equal(vault_open(&fx->v, fx->key, 1, &eb), ERR_OK);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;
    char p[160];
    static const char *const suffix[] = {"", "-wal", "-shm", "-journal"};

    store_close(fx->st);
    vault_close(fx->v);
    for (size_t i = 0; i < sizeof suffix / sizeof suffix[0]; i++) {
        snprintf(p, sizeof p, "%s%s", fx->db, suffix[i]);
        unlink(p);
    }
    unlink(fx->key);
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static size_t
rows(struct fx *fx)
{
    struct integration *list = NULL;
    size_t n = 0;
    struct errbuf eb = {0};

    assert_int_equal(store_integration_list(fx->st, fx->account, &list, &n, &eb), ERR_OK);
    for (size_t i = 0; i < n; i++)
        integration_clear(&list[i]);
    free(list);
    return n;
}

static void
fill_row(struct fx *fx, struct integration *row, const char *name)
{
    memset(row, 0, sizeof *row);
    row->account_id = fx->account;
    row->name = (char *)name;
    row->partner_tenant_id = (char *)GUID_T;
    row->partner_app_id = (char *)GUID_P;
    row->sync_app_id = (char *)GUID_S;
    row->tenant_source = (char *)"partner_center";
    row->cloud = (char *)"global";
    row->sync_interval = INTEGRATION_INTERVAL_DEF;
    row->partner_secret_expires = clock_now() + 86400;
    row->sync_secret_expires = clock_now() + 86400;
}

/* Both keys are sealed for the new row's id and can be opened again; hints are 3 characters. */
static void
test_insert_sealed(void **state)
{
    struct fx *fx = *state;
    struct integration row, got = {0};
    struct errbuf eb = {0};
    char *plain = NULL;

    fill_row(fx, &row, "one");
    assert_int_equal(
        integration_insert_sealed(fx->st, fx->v, &row, "partner-key-value", "sync-key-value", &eb),
        ERR_OK);
    assert_true(row.id > 0);
    assert_int_equal(rows(fx), 1);
    assert_int_equal(store_integration_get(fx->st, fx->account, row.id, &got, &eb), ERR_OK);
    assert_string_equal(got.partner_secret_hint, "par");
    assert_string_equal(got.sync_secret_hint, "syn");
    assert_int_equal(vault_unseal(fx->v, "integration", row.id, "sync_app_secret",
                                  got.sync_secret_sealed, &plain, &eb),
                     ERR_OK);
    assert_string_equal(plain, "sync-key-value");
    vault_wipe(plain);
    plain = NULL;
    assert_int_equal(vault_unseal(fx->v, "integration", row.id, "partner_app_secret",
                                  got.partner_secret_sealed, &plain, &eb),
                     ERR_OK);
    assert_string_equal(plain, "partner-key-value");
    vault_wipe(plain);
    integration_clear(&got);
}

/* The second seal fails (the vault refuses an empty key) after the row was inserted: the
 * transaction is rolled back, so no row without keys is left behind. */
static void
test_failed_seal_leaves_no_row(void **state)
{
    struct fx *fx = *state;
    struct integration row;
    struct errbuf eb = {0};
    int rc;

    fill_row(fx, &row, "two");
    rc = integration_insert_sealed(fx->st, fx->v, &row, "partner-key-value", "", &eb);
    assert_int_not_equal(rc, ERR_OK);
    assert_int_equal(row.id, 0);
    assert_int_equal(rows(fx), 0);
    /* The same name can then be saved: nothing of the first attempt remains. */
    fill_row(fx, &row, "two");
    assert_int_equal(
        integration_insert_sealed(fx->st, fx->v, &row, "partner-key-value", "sync-key-value", &eb),
        ERR_OK);
    assert_int_equal(rows(fx), 1);
}

/* Malformed values are refused before Microsoft is asked (no validation ran, nothing stored). */
static void
test_create_refuses_malformed(void **state)
{
    struct fx *fx = *state;
    struct integration_input in = {0};
    struct validation val = {0};
    struct errbuf eb = {0};
    int64_t id = -1;

    in.partner_tenant_id = GUID_T;
    in.partner_app_id = "not-a-guid";
    in.sync_app_id = GUID_S;
    in.partner_app_secret = "partner-key-value";
    in.sync_app_secret = "sync-key-value";
    assert_int_equal(integration_create(&fx->cfg, fx->st, fx->v, fx->account, &in, &id, &val, &eb),
                     ERR_INVAL);
    assert_non_null(strstr(eb.msg, "Partner App ID"));
    in.partner_app_id = GUID_P;
    in.sync_app_secret = GUID_S; /* the secret's ID pasted instead of its value */
    assert_int_equal(integration_create(&fx->cfg, fx->st, fx->v, fx->account, &in, &id, &val, &eb),
                     ERR_INVAL);
    assert_non_null(strstr(eb.msg, "looks like a GUID"));
    in.sync_app_secret = "sync-key-value";
    in.sync_expires = "2999-01-01";
    assert_int_equal(integration_create(&fx->cfg, fx->st, fx->v, fx->account, &in, &id, &val, &eb),
                     ERR_INVAL);
    assert_non_null(strstr(eb.msg, "24 months"));
    in.sync_expires = NULL;
    in.sync_interval = 60;
    assert_int_equal(integration_create(&fx->cfg, fx->st, fx->v, fx->account, &in, &id, &val, &eb),
                     ERR_INVAL);
    assert_int_equal(id, 0);
    assert_int_equal(val.n, 0);
    assert_int_equal(rows(fx), 0);
}

static void
test_parse_expiry(void **state)
{
    struct errbuf eb = {0};
    int64_t t = 0, now = clock_now();

    (void)state;
    assert_int_equal(integration_parse_expiry(NULL, "x", &t, &eb), ERR_OK);
    assert_true(t >= now + INTEGRATION_SECRET_LIFETIME - 5 &&
                t <= now + INTEGRATION_SECRET_LIFETIME + 5);
    assert_int_equal(integration_parse_expiry("2026-13-45", "x", &t, &eb), ERR_INVAL);
    assert_int_equal(integration_parse_expiry("3000-01-01", "x", &t, &eb), ERR_INVAL);
}

/* Rotation of an unknown integration, and a malformed which or key, change nothing. */
static void
test_rotate_refusals(void **state)
{
    struct fx *fx = *state;
    struct validation val = {0};
    struct errbuf eb = {0};

    assert_int_equal(integration_rotate_secret(&fx->cfg, fx->st, fx->v, fx->account, 999, "sync",
                                               "new-key-value", NULL, 0, 1, &val, &eb),
                     ERR_NOTFOUND);
    assert_int_equal(integration_rotate_secret(&fx->cfg, fx->st, fx->v, fx->account, 999, "both",
                                               "new-key-value", NULL, 0, 1, &val, &eb),
                     ERR_INVAL);
    assert_int_equal(integration_rotate_secret(&fx->cfg, fx->st, fx->v, fx->account, 999, "partner",
                                               "", NULL, 0, 1, &val, &eb),
                     ERR_INVAL);
    assert_int_equal(val.n, 0);
}

static void
test_remove(void **state)
{
    struct fx *fx = *state;
    struct integration row;
    struct errbuf eb = {0};

    fill_row(fx, &row, "three");
    assert_int_equal(
        integration_insert_sealed(fx->st, fx->v, &row, "partner-key-value", "sync-key", &eb),
        ERR_OK);
    assert_int_equal(rows(fx), 1);
    assert_int_equal(integration_remove(fx->st, fx->account, row.id, &eb), ERR_OK);
    assert_int_equal(rows(fx), 0);
    assert_int_not_equal(integration_remove(fx->st, fx->account, row.id, &eb), ERR_OK);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_insert_sealed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_seal_leaves_no_row, setup, teardown),
        cmocka_unit_test_setup_teardown(test_create_refuses_malformed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_expiry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rotate_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_remove, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
