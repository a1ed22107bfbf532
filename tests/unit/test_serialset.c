/* test_serialset.c - the shared-serial sets: membership, bounds, single flight, versions and
 * the rebuild pace. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <stdio.h>
#include <string.h>

#include "err.h"
#include "serialset.h"

static int
reset(void **state)
{
    (void)state;
    serialset_reset();
    return 0;
}

static void
test_membership_and_growth(void **state)
{
    struct serialset *s = serialset_new();
    char key[32];

    (void)state;
    for (int i = 0; i < 5000; i++) {
        int n = snprintf(key, sizeof key, "SN-%d", i * 7);

        assert_int_equal(serialset_add(s, key, (size_t)n), ERR_OK);
    }
    assert_int_equal(serialset_add(s, "SN-0", 4), ERR_OK); /* again: no second entry */
    assert_int_equal(serialset_count(s), 5000);
    for (int i = 0; i < 35000; i++) {
        int n = snprintf(key, sizeof key, "SN-%d", i);

        assert_int_equal(serialset_has(s, key, (size_t)n), i % 7 == 0);
    }
    /* The length is part of the key: a prefix or an extension is another serial. */
    assert_false(serialset_has(s, "SN-7", 3));
    assert_false(serialset_has(s, "SN-71", 5));
    assert_true(serialset_has(s, "SN-70xyz", 5));
    assert_false(serialset_has(s, "", 0));
    serialset_release(s);
    serialset_release(NULL);
}

static void
test_key_bound(void **state)
{
    struct serialset *s = serialset_new();
    char key[32];
    int rc = ERR_OK;
    unsigned i;

    (void)state;
    for (i = 0; i <= SERIALSET_MAX_KEYS && rc == ERR_OK; i++)
        rc = serialset_add(s, key, (size_t)snprintf(key, sizeof key, "%u", i));
    assert_int_equal(rc, ERR_TOOBIG);
    assert_int_equal(i, SERIALSET_MAX_KEYS + 1);
    assert_int_equal(serialset_count(s), SERIALSET_MAX_KEYS);
    serialset_release(s);
}

static void
test_single_flight_and_versions(void **state)
{
    struct serialset *s, *got, *again;
    int build = 0;

    (void)state;
    /* First reader builds; a second one meanwhile gets nothing and no turn. */
    assert_null(serialset_acquire("db1", 1, 10, 1000, &build));
    assert_int_equal(build, 1);
    assert_null(serialset_acquire("db1", 1, 10, 1000, &build));
    assert_int_equal(build, 0);
    /* Another account and another database are other sets. */
    assert_null(serialset_acquire("db1", 2, 10, 1000, &build));
    assert_int_equal(build, 1);
    assert_null(serialset_publish("db1", 2, 10, NULL, 1000, 1000));
    assert_null(serialset_acquire("db2", 1, 10, 1000, &build));
    assert_int_equal(build, 1);
    assert_null(serialset_publish("db2", 1, 10, NULL, 1000, 1000));

    s = serialset_new();
    assert_int_equal(serialset_add(s, "X1", 2), ERR_OK);
    got = serialset_publish("db1", 1, 10, s, 1000, 1100); /* a 100 ms build */
    assert_ptr_equal(got, s);
    again = serialset_acquire("db1", 1, 10, 1200, &build);
    assert_ptr_equal(again, s);
    assert_int_equal(build, 0);
    assert_true(serialset_has(again, "X1", 2));
    serialset_release(again);
    /* A failed build is remembered for its version: no retry at that version. */
    assert_null(serialset_acquire("db1", 2, 10, 999999, &build));
    assert_int_equal(build, 0);

    /* A newer version: no set, and no rebuild before max(2 s, 10 x 100 ms) has passed. */
    assert_null(serialset_acquire("db1", 1, 11, 1100 + SERIALSET_REBUILD_MIN_MS - 1, &build));
    assert_int_equal(build, 0);
    /* A reader of an older snapshot never gets the turn. */
    assert_null(serialset_acquire("db1", 1, 9, 1100 + 100000, &build));
    assert_int_equal(build, 0);
    assert_null(serialset_acquire("db1", 1, 11, 1100 + SERIALSET_REBUILD_MIN_MS, &build));
    assert_int_equal(build, 1);
    /* The old set stays valid for whoever holds it after the slot moves on. */
    assert_null(serialset_publish("db1", 1, 11, NULL, 3100, 3100 + 5000));
    assert_true(serialset_has(got, "X1", 2));
    serialset_release(got);
    /* A slow build (5 s) paces the next one at 10 x its duration. */
    assert_null(serialset_acquire("db1", 1, 12, 8100 + 49999, &build));
    assert_int_equal(build, 0);
    assert_null(serialset_acquire("db1", 1, 12, 8100 + 50000, &build));
    assert_int_equal(build, 1);
    assert_null(serialset_publish("db1", 1, 12, NULL, 0, 0));
}

static void
test_slots_bounded(void **state)
{
    char db[32];
    int build = 0;

    (void)state;
    /* Every slot held by a builder: one more pair finds no slot, and no turn. */
    for (int i = 0; i < SERIALSET_SLOTS; i++) {
        snprintf(db, sizeof db, "db-%d", i);
        assert_null(serialset_acquire(db, 1, 1, 0, &build));
        assert_int_equal(build, 1);
    }
    assert_null(serialset_acquire("one-more", 1, 1, 0, &build));
    assert_int_equal(build, 0);
    /* Builds ended: the least recently used slot makes room. */
    for (int i = 0; i < SERIALSET_SLOTS; i++) {
        snprintf(db, sizeof db, "db-%d", i);
        serialset_release(serialset_publish(db, 1, 1, serialset_new(), 0, 0));
    }
    assert_null(serialset_acquire("one-more", 1, 1, 0, &build));
    assert_int_equal(build, 1);
    serialset_release(serialset_publish("one-more", 1, 1, serialset_new(), 0, 0));
    assert_null(serialset_acquire("db-0", 1, 1, 0, &build)); /* db-0 was the one dropped */
    assert_int_equal(build, 1);
    assert_null(serialset_publish("db-0", 1, 1, NULL, 0, 0));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_membership_and_growth, reset),
        cmocka_unit_test_setup(test_key_bound, reset),
        cmocka_unit_test_setup(test_single_flight_and_versions, reset),
        cmocka_unit_test_setup(test_slots_bounded, reset),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
