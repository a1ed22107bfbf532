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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_wait),
        cmocka_unit_test(test_batches_count_per_item),
        cmocka_unit_test(test_no_window_ever_exceeds_the_limit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
