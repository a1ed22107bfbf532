/* test_pacer.c - the sliding-window limiter never lets more than `limit` sends into a window. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>

#include <cmocka.h>

#include "pacer.h"

static void
test_burst_then_wait(void **state)
{
    struct pacer p;

    (void)state;
    pacer_init(&p, 5, 1000);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(pacer_wait(&p, 1, 100), 0);
        pacer_note(&p, 1, 100);
    }
    /* The sixth must wait for the first to leave the window. */
    assert_int_equal(pacer_wait(&p, 1, 100), 1000);
    assert_int_equal(pacer_wait(&p, 1, 700), 400);
    assert_int_equal(pacer_wait(&p, 1, 1100), 0);
    pacer_free(&p);
}

static void
test_batches_count_per_item(void **state)
{
    struct pacer p;

    (void)state;
    pacer_init(&p, 10, 1000);
    pacer_note(&p, 4, 0);
    pacer_note(&p, 4, 500);
    assert_int_equal(pacer_wait(&p, 2, 600), 0);
    /* 4 more do not fit until the first 2 of the t=0 batch have left: at t=1000. */
    assert_int_equal(pacer_wait(&p, 4, 600), 400);
    /* More than the limit is treated as the limit: waits for every send to leave. */
    assert_int_equal(pacer_wait(&p, 50, 600), 900);
    pacer_free(&p);
}

/* Simulates a client sending as fast as allowed and checks every window of the timeline. */
static void
test_no_window_ever_exceeds_the_limit(void **state)
{
    enum { LIMIT = 37, WINDOW = 200, SENDS = 2000 };
    struct pacer p;
    int64_t *at = calloc(SENDS, sizeof *at);
    int64_t now = 0;
    unsigned seed = 7;

    (void)state;
    pacer_init(&p, LIMIT, WINDOW);
    for (int i = 0; i < SENDS;) {
        int n = 1 + (int)((seed = seed * 1103515245u + 12345u) >> 16) % 5;
        int64_t w;

        if (i + n > SENDS)
            n = SENDS - i;
        w = pacer_wait(&p, n, now);
        now += w + (int64_t)((seed >> 8) % 3);
        if (pacer_wait(&p, n, now) != 0)
            continue;
        pacer_note(&p, n, now);
        for (int k = 0; k < n; k++)
            at[i++] = now;
    }
    for (int i = 0; i + LIMIT < SENDS; i++)
        assert_true(at[i + LIMIT] - at[i] >= WINDOW);
    pacer_free(&p);
    free(at);
}

/* A 429 halves the pace; each clean window raises it by a tenth, up to the budget. */
static void
test_cut_and_recover(void **state)
{
    struct pacer p;

    (void)state;
    pacer_init(&p, 1000, 20000);
    assert_int_equal(pacer_pace(&p, 0), 1000);
    assert_int_equal(pacer_cut(&p, 20, 5000), 500);
    assert_int_equal(pacer_pace(&p, 5000), 500);
    assert_int_equal(pacer_pace(&p, 24999), 500); /* not a whole clean window yet */
    assert_int_equal(pacer_pace(&p, 25000), 550);
    assert_int_equal(pacer_pace(&p, 45000), 605);
    /* A second 429 inside the recovery cuts from where the pace is. */
    assert_int_equal(pacer_cut(&p, 20, 45000), 302);
    /* Never below the floor; never above the budget however long it stays clean. */
    for (int i = 0; i < 10; i++)
        pacer_cut(&p, 20, 45000);
    assert_int_equal(pacer_pace(&p, 45000), 20);
    assert_int_equal(pacer_pace(&p, 45000 + 3600 * 1000), 1000);
    /* A floor above the budget is the budget. */
    pacer_free(&p);
    pacer_init(&p, 10, 1000);
    assert_int_equal(pacer_cut(&p, 20, 0), 10);
    pacer_free(&p);
}

/* After a cut, sends are limited to the new pace in every window. */
static void
test_cut_limits_the_window(void **state)
{
    struct pacer p;

    (void)state;
    pacer_init(&p, 100, 1000);
    pacer_note(&p, 30, 0);
    pacer_cut(&p, 1, 10); /* pace 50 */
    assert_int_equal(pacer_wait(&p, 20, 10), 0);
    pacer_note(&p, 20, 10);
    /* 50 sent in this window: one more waits until the t=0 sends leave. */
    assert_int_equal(pacer_wait(&p, 1, 10), 990);
    assert_int_equal(pacer_wait(&p, 1, 1000), 0);
    pacer_note(&p, 30, 1000);
    assert_int_equal(pacer_wait(&p, 1, 1001), 9); /* the t=10 sends */
    pacer_free(&p);
}

/* A hold stops every send until its end; an earlier hold does not shorten it. */
static void
test_hold(void **state)
{
    struct pacer p;

    (void)state;
    pacer_init(&p, 100, 20000);
    pacer_hold(&p, 20500);
    assert_int_equal(pacer_wait(&p, 1, 500), 20000);
    pacer_hold(&p, 10000);
    assert_int_equal(pacer_wait(&p, 1, 20000), 500);
    assert_int_equal(pacer_wait(&p, 1, 20500), 0);
    pacer_free(&p);
}

/* Throttled at every cut, then clean: no window ever holds more than the pace of its start. */
static void
test_adaptive_never_exceeds_pace(void **state)
{
    enum { LIMIT = 200, WINDOW = 100, SENDS = 20000 };
    struct pacer p;
    int64_t *at = calloc(SENDS, sizeof *at);
    int *pace = calloc(SENDS, sizeof *pace);
    int64_t now = 0;
    int cuts = 0;

    (void)state;
    pacer_init(&p, LIMIT, WINDOW);
    for (int i = 0; i < SENDS;) {
        now += pacer_wait(&p, 1, now);
        pacer_note(&p, 1, now);
        pace[i] = pacer_pace(&p, now);
        at[i++] = now;
        if (i % 997 == 0 && cuts < 8) {
            pacer_cut(&p, 20, now);
            cuts++;
        }
    }
    /* Between a send and the pace-th send after it at least one window passes, whenever the
     * pace did not rise in between. */
    for (int i = 0; i < SENDS; i++) {
        int k = pace[i];

        if (i + k < SENDS && pace[i + k] <= k)
            assert_true(at[i + k] - at[i] >= WINDOW);
    }
    assert_int_equal(pacer_pace(&p, now + 1000 * WINDOW), LIMIT);
    pacer_free(&p);
    free(at);
    free(pace);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_wait),
        cmocka_unit_test(test_batches_count_per_item),
        cmocka_unit_test(test_no_window_ever_exceeds_the_limit),
        cmocka_unit_test(test_cut_and_recover),
        cmocka_unit_test(test_cut_limits_the_window),
        cmocka_unit_test(test_hold),
        cmocka_unit_test(test_adaptive_never_exceeds_pace),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
