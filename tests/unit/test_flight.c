/* test_flight.c - single flight: threads asking for one key at once compute it once and get the
 * leader's result; a failed leader hands the work to a waiter; the number of keys in flight and
 * the wait are bounded. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "flight.h"

enum { NTHREADS = 8 };

static void
sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

struct racer {
    struct flight *f;
    pthread_barrier_t *start;
    int fail_first;          /* the first leader fails */
    int *leaders, *computed; /* under mu */
    pthread_mutex_t *mu;
    enum flight_role role;
    int64_t value;
    char text[32];
};

static void *
race(void *arg)
{
    struct racer *r = arg;
    struct flight_result res;
    int ticket, first;

    pthread_barrier_wait(r->start);
    r->role = flight_begin(r->f, "key", 3, 10000, &res, &ticket);
    if (r->role == FLIGHT_RESULT) {
        r->value = res.value;
        snprintf(r->text, sizeof r->text, "%s", res.bytes != NULL ? res.bytes : "");
        free(res.bytes);
        return NULL;
    }
    pthread_mutex_lock(r->mu);
    first = (*r->leaders)++ == 0;
    (*r->computed)++;
    pthread_mutex_unlock(r->mu);
    sleep_ms(200); /* long enough for every other thread to join the flight */
    if (r->role == FLIGHT_LEADER && first && r->fail_first) {
        flight_finish(r->f, ticket, 0, 0, NULL, 0);
        r->value = -1;
        return NULL;
    }
    r->value = 42;
    snprintf(r->text, sizeof r->text, "answer");
    flight_finish(r->f, ticket, 1, 42, "answer", 6);
    return NULL;
}

static void
run_race(struct flight *f, int fail_first, struct racer *r, int *leaders, int *computed)
{
    pthread_t t[NTHREADS];
    pthread_barrier_t start;
    pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;

    *leaders = *computed = 0;
    assert_int_equal(pthread_barrier_init(&start, NULL, NTHREADS), 0);
    for (int i = 0; i < NTHREADS; i++) {
        r[i] = (struct racer){f, &start, fail_first, leaders, computed, &mu, FLIGHT_ALONE, 0, ""};
        assert_int_equal(pthread_create(&t[i], NULL, race, &r[i]), 0);
    }
    for (int i = 0; i < NTHREADS; i++)
        pthread_join(t[i], NULL);
    pthread_barrier_destroy(&start);
}

/* Threads asking together: one computes, the others get its value and their own copy. */
static void
test_one_computes(void **state)
{
    static struct flight f = FLIGHT_INIT(4);
    struct racer r[NTHREADS];
    int leaders, computed, results = 0;

    (void)state;
    run_race(&f, 0, r, &leaders, &computed);
    assert_int_equal(computed, 1);
    for (int i = 0; i < NTHREADS; i++) {
        assert_int_equal(r[i].value, 42);
        assert_string_equal(r[i].text, "answer");
        results += r[i].role == FLIGHT_RESULT;
    }
    assert_int_equal(results, NTHREADS - 1);
    for (int i = 0; i < 4; i++) /* every slot is free again */
        assert_null(f.slot[i].key);
}

/* The leader fails: one waiter leads the next attempt and the rest get its result. */
static void
test_failed_leader_hands_over(void **state)
{
    static struct flight f = FLIGHT_INIT(4);
    struct racer r[NTHREADS];
    int leaders, computed, failed = 0, ok = 0;

    (void)state;
    run_race(&f, 1, r, &leaders, &computed);
    assert_int_equal(computed, 2);
    for (int i = 0; i < NTHREADS; i++) {
        failed += r[i].value == -1;
        ok += r[i].value == 42;
    }
    assert_int_equal(failed, 1);
    assert_int_equal(ok, NTHREADS - 1);
    for (int i = 0; i < 4; i++)
        assert_null(f.slot[i].key);
}

/* Past the slots, and for a key too long to keep, the caller computes alone. */
static void
test_bounded_keys(void **state)
{
    static struct flight f = FLIGHT_INIT(2);
    struct flight_result res;
    int t1, t2, t3;
    char *big = calloc(FLIGHT_KEY_MAX + 1, 1);

    (void)state;
    assert_int_equal(flight_begin(&f, "a", 1, 1000, &res, &t1), FLIGHT_LEADER);
    assert_int_equal(flight_begin(&f, "b", 1, 1000, &res, &t2), FLIGHT_LEADER);
    assert_int_equal(flight_begin(&f, "c", 1, 1000, &res, &t3), FLIGHT_ALONE);
    assert_int_equal(t3, -1);
    flight_finish(&f, t3, 1, 1, NULL, 0); /* no ticket: nothing happens */
    flight_finish(&f, t1, 1, 1, NULL, 0);
    assert_int_equal(flight_begin(&f, "c", 1, 1000, &res, &t3), FLIGHT_LEADER);
    flight_finish(&f, t3, 1, 1, NULL, 0);
    flight_finish(&f, t2, 1, 1, NULL, 0);
    assert_int_equal(flight_begin(&f, big, FLIGHT_KEY_MAX + 1, 1000, &res, &t1), FLIGHT_ALONE);
    free(big);
}

struct waiter {
    struct flight *f;
    enum flight_role role;
    long waited_ms;
};

static void *
wait_alone(void *arg)
{
    struct waiter *w = arg;
    struct flight_result res;
    struct timespec a, b;
    int ticket;

    clock_gettime(CLOCK_MONOTONIC, &a);
    w->role = flight_begin(w->f, "slow", 4, 150, &res, &ticket);
    clock_gettime(CLOCK_MONOTONIC, &b);
    w->waited_ms = (b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    free(res.bytes);
    return NULL;
}

/* A slow leader: the waiter gives up at its deadline and computes alone. */
static void
test_wait_is_bounded(void **state)
{
    static struct flight f = FLIGHT_INIT(2);
    struct flight_result res;
    struct waiter w = {&f, FLIGHT_LEADER, 0};
    pthread_t t;
    int ticket;

    (void)state;
    assert_int_equal(flight_begin(&f, "slow", 4, 1000, &res, &ticket), FLIGHT_LEADER);
    assert_int_equal(pthread_create(&t, NULL, wait_alone, &w), 0);
    pthread_join(t, NULL);
    assert_int_equal(w.role, FLIGHT_ALONE);
    assert_true(w.waited_ms >= 140 && w.waited_ms < 5000);
    flight_finish(&f, ticket, 1, 7, NULL, 0); /* nobody waits: the slot is freed */
    assert_null(f.slot[ticket].key);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_one_computes),
        cmocka_unit_test(test_failed_leader_hands_over),
        cmocka_unit_test(test_bounded_keys),
        cmocka_unit_test(test_wait_is_bounded),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
