/* test_rowcache.c - the row cache: stamps, aux strings, the byte bound, threads. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "rowcache.h"

static void
emit(void *arg, const char *p, size_t n)
{
    buf_add(arg, p, n);
}

/* The value of id at stamp, or NULL when missed; *aux its aux ("<none>" when it had none). */
static const char *
get(struct rowcache *c, int64_t id, uint64_t stamp, struct buf *b, char *aux)
{
    int has = -1;

    buf_reset(b);
    if (!rowcache_get(c, id, stamp, emit, b, aux, &has))
        return NULL;
    assert_true(has == 0 || has == 1);
    if (!has) {
        assert_string_equal(aux, "");
        snprintf(aux, ROWCACHE_MAX_AUX + 1, "<none>");
    }
    return buf_cstr(b);
}

static void
test_disabled(void **state)
{
    struct rowcache *c = (struct rowcache *)1;
    struct rowcache_stats st;
    struct errbuf eb = {0};
    struct buf b;
    char aux[ROWCACHE_MAX_AUX + 1];

    (void)state;
    buf_init(&b, 1 << 20);
    assert_int_equal(rowcache_create(&c, 0, &eb), ERR_OK);
    assert_null(c);
    rowcache_put(c, 1, 1, "x", 1, NULL);
    assert_null(get(c, 1, 1, &b, aux));
    rowcache_stats(c, &st);
    assert_int_equal(st.entries, 0);
    assert_int_equal(st.max_bytes, 0);
    rowcache_free(c);
    assert_int_equal(rowcache_create(&c, (size_t)(ROWCACHE_MAX_MB + 1) * 1024 * 1024, &eb),
                     ERR_INVAL);
    assert_null(c);
    assert_non_null(strstr(eb.msg, "MiB"));
    buf_free(&b);
}

static void
test_stamps_and_aux(void **state)
{
    struct rowcache *c = NULL;
    struct rowcache_stats st;
    struct errbuf eb = {0};
    struct buf b;
    char aux[ROWCACHE_MAX_AUX + 1], big[ROWCACHE_MAX_VALUE + 2], longkey[ROWCACHE_MAX_AUX + 2];

    (void)state;
    buf_init(&b, 1 << 20);
    assert_int_equal(rowcache_create(&c, 1 << 20, &eb), ERR_OK);
    rowcache_put(c, 7, 100, ",\"a\":1", 6, "SERIAL7");
    rowcache_put(c, 8, 200, ",\"b\":2", 6, NULL);
    rowcache_put(c, 9, 300, "", 0, "");
    assert_string_equal(get(c, 7, 100, &b, aux), ",\"a\":1");
    assert_string_equal(aux, "SERIAL7");
    assert_string_equal(get(c, 8, 200, &b, aux), ",\"b\":2");
    assert_string_equal(aux, "<none>"); /* no serial is not an empty one */
    assert_string_equal(get(c, 9, 300, &b, aux), "");
    assert_string_equal(aux, "");
    /* has counts nothing and drops nothing. */
    assert_true(rowcache_has(c, 8, 200));
    assert_false(rowcache_has(c, 8, 201));
    assert_true(rowcache_has(c, 8, 200));
    assert_false(rowcache_has(c, 99, 1));
    assert_false(rowcache_has(NULL, 8, 200));
    /* Another stamp: a miss, and the entry is gone even for its own stamp. */
    assert_null(get(c, 7, 101, &b, aux));
    assert_null(get(c, 7, 100, &b, aux));
    rowcache_stats(c, &st);
    assert_int_equal(st.entries, 2);
    assert_int_equal(st.hits, 3);
    assert_int_equal(st.misses, 2);
    /* A put replaces the id's entry. */
    rowcache_put(c, 8, 201, ",\"b\":3", 6, "K");
    assert_null(get(c, 8, 200, &b, aux));
    rowcache_put(c, 8, 202, ",\"b\":4", 6, "K");
    rowcache_put(c, 8, 203, ",\"b\":5", 6, "K2");
    assert_string_equal(get(c, 8, 203, &b, aux), ",\"b\":5");
    assert_string_equal(aux, "K2");
    rowcache_stats(c, &st);
    assert_int_equal(st.entries, 2);
    /* Past the value or aux bound nothing is cached. */
    memset(big, 'v', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    rowcache_put(c, 10, 1, big, ROWCACHE_MAX_VALUE + 1, NULL);
    assert_null(get(c, 10, 1, &b, aux));
    rowcache_put(c, 10, 1, big, ROWCACHE_MAX_VALUE, NULL);
    assert_non_null(get(c, 10, 1, &b, aux));
    assert_int_equal(b.len, ROWCACHE_MAX_VALUE);
    memset(longkey, 'k', sizeof longkey - 1);
    longkey[sizeof longkey - 1] = '\0';
    rowcache_put(c, 11, 1, "x", 1, longkey);
    assert_null(get(c, 11, 1, &b, aux));
    longkey[ROWCACHE_MAX_AUX] = '\0';
    rowcache_put(c, 11, 1, "x", 1, longkey);
    assert_non_null(get(c, 11, 1, &b, aux));
    assert_string_equal(aux, longkey);
    rowcache_free(c);
    buf_free(&b);
}

/* has_many agrees with one lookup per row, across shards, stamps and absent ids. */
static void
test_has_many(void **state)
{
    struct rowcache *c = NULL;
    struct errbuf eb = {0};
    struct buf b;
    char aux[ROWCACHE_MAX_AUX + 1];
    int64_t ids[600];
    uint64_t stamps[600];
    unsigned char held[600];

    (void)state;
    buf_init(&b, 1 << 20);
    assert_int_equal(rowcache_create(&c, 4 << 20, &eb), ERR_OK);
    for (int64_t id = 2; id <= 500; id += 2)
        rowcache_put(c, id, (uint64_t)id * 7, "v", 1, NULL);
    for (int i = 0; i < 600; i++) {
        ids[i] = 600 - i; /* not in id order */
        stamps[i] = (uint64_t)ids[i] * 7 + (ids[i] % 5 == 0);
    }
    memset(held, 7, sizeof held);
    rowcache_has_many(c, ids, stamps, 600, held);
    for (int i = 0; i < 600; i++) {
        int64_t id = ids[i];

        assert_int_equal(held[i], id % 2 == 0 && id <= 500 && id % 5 != 0);
    }
    /* Another stamp asked is not a miss: the entry stays. */
    assert_non_null(get(c, 10, 70, &b, aux));
    rowcache_has_many(c, ids, stamps, 0, held);
    rowcache_has_many(NULL, ids, stamps, 3, held);
    assert_true(held[0] == 0 && held[1] == 0 && held[2] == 0);
    rowcache_free(c);
    buf_free(&b);
}

static void
test_byte_bound(void **state)
{
    struct rowcache *c = NULL;
    struct rowcache_stats st;
    struct errbuf eb = {0};
    struct buf b;
    char aux[ROWCACHE_MAX_AUX + 1], v[1000];
    const size_t max = 256 * 1024;
    int64_t n = 2000;

    (void)state;
    buf_init(&b, 1 << 20);
    memset(v, 'r', sizeof v);
    assert_int_equal(rowcache_create(&c, max, &eb), ERR_OK);
    for (int64_t id = 1; id <= n; id++) {
        rowcache_put(c, id, (uint64_t)id * 3, v, sizeof v, "S");
        rowcache_stats(c, &st);
        assert_true(st.bytes <= max);
    }
    assert_true(st.evictions > 0);
    assert_true(st.entries < (size_t)n);
    /* At most a shard's worth short of the bound: the space is used. */
    assert_true(st.bytes > max - max / ROWCACHE_SHARDS - 2 * (sizeof v + 100));
    assert_int_equal(st.entries + st.evictions, (size_t)n);
    /* The newest are kept, the oldest went first. */
    assert_non_null(get(c, n, (uint64_t)n * 3, &b, aux));
    assert_null(get(c, 1, 3, &b, aux));
    /* A hit is recent use: a row read again outlives the rows put after it. */
    {
        int64_t keep = n - 100, kept = 0;

        assert_non_null(get(c, keep, (uint64_t)keep * 3, &b, aux));
        for (int64_t id = n + 1; id <= n + 150; id++) {
            rowcache_put(c, id, 1, v, sizeof v, NULL);
            if (get(c, keep, (uint64_t)keep * 3, &b, aux) != NULL)
                kept++;
        }
        assert_int_equal(kept, 150);
    }
    /* So is has: the row it finds is about to be read. (600 puts fill every shard twice.) */
    {
        int64_t keep = n + 1000, kept = 0;

        rowcache_put(c, keep, 1, v, sizeof v, NULL);
        for (int64_t id = n + 151; id <= n + 750; id++) {
            rowcache_put(c, id, 1, v, sizeof v, NULL);
            kept += rowcache_has(c, keep, 1);
        }
        assert_int_equal(kept, 600);
        assert_null(get(c, n + 151, 1, &b, aux)); /* the oldest of them went */
    }
    rowcache_free(c);
    buf_free(&b);
}

struct worker {
    struct rowcache *c;
    unsigned seed;
    int bad, hits;
};

/* The value of (id, stamp): a reader that gets another row's bytes, or another stamp's, sees it. */
static size_t
value_of(int64_t id, uint64_t stamp, char *out)
{
    return (size_t)snprintf(out, 96, "{%lld:%llu:%0*d}", (long long)id, (unsigned long long)stamp,
                            (int)(id % 50), 0);
}

static void *
work(void *arg)
{
    struct worker *w = arg;
    struct buf b;
    char aux[ROWCACHE_MAX_AUX + 1], want[96], key[32];

    buf_init(&b, 1 << 20);
    for (int i = 0; i < 40000; i++) {
        int64_t id;
        uint64_t stamp;
        size_t n;

        w->seed = w->seed * 1103515245u + 12345u;
        id = (int64_t)(w->seed >> 8) % 500;
        stamp = (w->seed >> 4) % 3;
        n = value_of(id, stamp, want);
        snprintf(key, sizeof key, "k%lld.%llu", (long long)id, (unsigned long long)stamp);
        if (i % 64 == 0) { /* a page's probe, racing the others' puts and evictions */
            int64_t ids[32];
            uint64_t stamps[32];
            unsigned char held[32];

            for (int k = 0; k < 32; k++) {
                ids[k] = (id + k * 17) % 500;
                stamps[k] = stamp;
            }
            rowcache_has_many(w->c, ids, stamps, 32, held);
            for (int k = 0; k < 32; k++)
                if (held[k] > 1)
                    w->bad++;
        }
        if (get(w->c, id, stamp, &b, aux) != NULL) {
            w->hits++;
            if (b.len != n || memcmp(b.data, want, n) != 0 || strcmp(aux, key) != 0)
                w->bad++;
        } else {
            rowcache_put(w->c, id, stamp, want, n, key);
        }
    }
    buf_free(&b);
    return NULL;
}

static void
test_threads(void **state)
{
    struct rowcache *c = NULL;
    struct errbuf eb = {0};
    struct worker w[4];
    pthread_t t[4];
    struct rowcache_stats st;

    (void)state;
    /* Small enough to evict all the time, large enough to hit. */
    assert_int_equal(rowcache_create(&c, 32 * 1024, &eb), ERR_OK);
    for (int i = 0; i < 4; i++) {
        w[i] = (struct worker){c, (unsigned)i * 7919u + 1u, 0, 0};
        assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        assert_int_equal(pthread_join(t[i], NULL), 0);
        assert_int_equal(w[i].bad, 0);
        assert_true(w[i].hits > 0);
    }
    rowcache_stats(c, &st);
    assert_true(st.bytes <= 32 * 1024);
    assert_true(st.evictions > 0);
    rowcache_free(c);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disabled), cmocka_unit_test(test_stamps_and_aux),
        cmocka_unit_test(test_has_many), cmocka_unit_test(test_byte_bound),
        cmocka_unit_test(test_threads),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
