/* test_ratelimit.c - token buckets per API key: a burst, then refusals with Retry-After until
 * the rate refills; the header figures; keys apart from each other; a table that stays bounded
 * when far more keys than its slots come by; and threads taking from one key at once never
 * get more than the bucket held. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ratelimit.h"

static struct ratelimit *
limiter(int per_minute, int burst)
{
    struct ratelimit *rl = NULL;
    struct errbuf eb = {0};

    assert_int_equal(ratelimit_new(per_minute, burst, &rl, &eb), ERR_OK);
    return rl;
}

static void
test_burst_then_refused(void **state)
{
    struct ratelimit *rl = limiter(60, 5); /* one a second, five at once */
    struct ratelimit_state st;

    (void)state;
    for (int i = 0; i < 5; i++) {
        assert_int_equal(ratelimit_take(rl, 7, 1000, &st), 1);
        assert_int_equal(st.limit, 5);
        assert_int_equal(st.remaining, 4 - i);
        assert_int_equal(st.retry_after_s, 0);
    }
    assert_int_equal(st.reset_s, 5); /* five seconds to refill five */
    assert_int_equal(ratelimit_take(rl, 7, 1000, &st), 0);
    assert_int_equal(st.remaining, 0);
    assert_int_equal(st.retry_after_s, 1);
    /* Half a second later: still nothing; a second later: one. */
    assert_int_equal(ratelimit_take(rl, 7, 1500, &st), 0);
    assert_int_equal(st.retry_after_s, 1);
    assert_int_equal(ratelimit_take(rl, 7, 2000, &st), 1);
    assert_int_equal(ratelimit_take(rl, 7, 2000, &st), 0);
    /* An hour later the bucket is full again, never more. */
    for (int i = 0; i < 5; i++)
        assert_int_equal(ratelimit_take(rl, 7, 3600 * 1000 * 5, &st), 1);
    assert_int_equal(ratelimit_take(rl, 7, 3600 * 1000 * 5, &st), 0);
    ratelimit_free(rl);
}

static void
test_slow_rate_retry_after(void **state)
{
    struct ratelimit *rl = limiter(2, 1); /* one every 30 s */
    struct ratelimit_state st;

    (void)state;
    assert_int_equal(ratelimit_take(rl, 1, 0, &st), 1);
    assert_int_equal(ratelimit_take(rl, 1, 0, &st), 0);
    assert_int_equal(st.retry_after_s, 30);
    assert_int_equal(ratelimit_take(rl, 1, 10000, &st), 0);
    assert_in_range(st.retry_after_s, 20, 21); /* rounded up, never early */
    assert_int_equal(ratelimit_take(rl, 1, 30000, &st), 1);
    ratelimit_free(rl);
}

static void
test_keys_apart(void **state)
{
    struct ratelimit *rl = limiter(60, 2);
    struct ratelimit_state st;

    (void)state;
    assert_int_equal(ratelimit_take(rl, 1, 0, &st), 1);
    assert_int_equal(ratelimit_take(rl, 1, 0, &st), 1);
    assert_int_equal(ratelimit_take(rl, 1, 0, &st), 0);
    assert_int_equal(ratelimit_take(rl, 2, 0, &st), 1); /* another key: its own bucket */
    assert_int_equal(st.remaining, 1);
    ratelimit_free(rl);
}

static void
test_bounded(void **state)
{
    struct ratelimit *rl = limiter(60, 1);
    struct ratelimit_state st;
    struct errbuf eb = {0};
    struct ratelimit *bad = NULL;

    (void)state;
    /* Ten times the table's slots: no growth, each new key starts with its bucket. */
    for (int64_t k = 1; k <= 10 * RATELIMIT_SHARDS * RATELIMIT_SLOTS; k++)
        assert_int_equal(ratelimit_take(rl, k, k, &st), 1);
    /* A key in use stays limited while others come and go in small numbers. */
    assert_int_equal(ratelimit_take(rl, 999999, 0, &st), 1);
    assert_int_equal(ratelimit_take(rl, 1000001, 0, &st), 1);
    assert_int_equal(ratelimit_take(rl, 999999, 1, &st), 0);
    ratelimit_free(rl);
    assert_int_equal(ratelimit_new(0, 1, &bad, &eb), ERR_INVAL);
    assert_null(bad);
    assert_int_equal(ratelimit_new(1, RATELIMIT_MAX_RATE + 1, &bad, &eb), ERR_INVAL);
    ratelimit_free(NULL);
}

#define THREADS 4
#define TRIES   500

struct worker {
    struct ratelimit *rl;
    int allowed;
};

static void *
taker(void *arg)
{
    struct worker *w = arg;
    struct ratelimit_state st;

    for (int i = 0; i < TRIES; i++)
        w->allowed += ratelimit_take(w->rl, 42, 0, &st);
    return NULL;
}

static void
test_threads(void **state)
{
    struct ratelimit *rl = limiter(60, 300);
    struct worker w[THREADS];
    pthread_t t[THREADS];
    int total = 0;

    (void)state;
    for (int i = 0; i < THREADS; i++) {
        w[i].rl = rl;
        w[i].allowed = 0;
        assert_int_equal(pthread_create(&t[i], NULL, taker, &w[i]), 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(t[i], NULL);
        total += w[i].allowed;
    }
    assert_int_equal(total, 300); /* the clock stood still: exactly the burst */
    ratelimit_free(rl);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_burst_then_refused),
        cmocka_unit_test(test_slow_rate_retry_after),
        cmocka_unit_test(test_keys_apart),
        cmocka_unit_test(test_bounded),
        cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
