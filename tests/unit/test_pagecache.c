/* test_pagecache.c - the answer cache: hits only for the same key and data version, the byte
 * bound under any sequence of puts, LRU order, entries alive while referenced, disabled when 0,
 * threads, and ETags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pagecache.h"

static int
setup(void **state)
{
    (void)state;
    return sodium_init() < 0 ? -1 : 0;
}

static void
put_str(struct pagecache *pc, const char *key, int64_t v, const char *body)
{
    pagecache_put(pc, key, strlen(key), v, body, strlen(body));
}

/* The cached body for key at v, or NULL (copied into out). */
static const char *
get_str(struct pagecache *pc, const char *key, int64_t v, char *out, size_t outlen)
{
    struct pagecache_entry *e = pagecache_get(pc, key, strlen(key), v);
    const char *b;
    size_t n;

    if (e == NULL)
        return NULL;
    b = pagecache_body(e, &n);
    assert_true(n < outlen);
    memcpy(out, b, n);
    out[n] = '\0';
    pagecache_release(e);
    return out;
}

static void
test_disabled(void **state)
{
    struct pagecache *pc = (struct pagecache *)1;
    struct pagecache_stats s;
    struct errbuf eb = {0};
    char out[64];

    (void)state;
    assert_int_equal(pagecache_create(&pc, 0, &eb), ERR_OK);
    assert_null(pc);
    put_str(pc, "k", 1, "body");
    assert_null(get_str(pc, "k", 1, out, sizeof out));
    pagecache_stats_get(pc, &s);
    assert_int_equal(s.entries, 0);
    pagecache_free(pc);
    pagecache_release(NULL);
    assert_int_equal(pagecache_create(&pc, ((size_t)PAGECACHE_MAX_MB + 1) * 1024 * 1024, &eb),
                     ERR_INVAL);
    assert_null(pc);
}

static void
test_key_and_version(void **state)
{
    struct pagecache *pc;
    struct pagecache_stats s;
    char out[64];

    (void)state;
    assert_int_equal(pagecache_create(&pc, 1 << 20, NULL), ERR_OK);
    put_str(pc, "acct 1 /hw ?a=1", 10, "one");
    put_str(pc, "acct 2 /hw ?a=1", 10, "two");
    assert_string_equal(get_str(pc, "acct 1 /hw ?a=1", 10, out, sizeof out), "one");
    assert_string_equal(get_str(pc, "acct 2 /hw ?a=1", 10, out, sizeof out), "two");
    assert_null(get_str(pc, "acct 3 /hw ?a=1", 10, out, sizeof out));
    assert_null(get_str(pc, "acct 1 /hw ?a=1 ", 10, out, sizeof out));
    assert_null(get_str(pc, "acct 1 /hw ?a=", 10, out, sizeof out));
    /* Another version misses and the stale entry is gone for good. */
    assert_null(get_str(pc, "acct 1 /hw ?a=1", 11, out, sizeof out));
    assert_null(get_str(pc, "acct 1 /hw ?a=1", 10, out, sizeof out));
    /* A newer put replaces; an older one does not displace a newer entry. */
    put_str(pc, "acct 2 /hw ?a=1", 12, "two v12");
    put_str(pc, "acct 2 /hw ?a=1", 11, "two v11");
    assert_string_equal(get_str(pc, "acct 2 /hw ?a=1", 12, out, sizeof out), "two v12");
    /* Keys are bytes, not strings. */
    pagecache_put(pc, "a\0b", 3, 12, "nul", 3);
    assert_null(pagecache_get(pc, "a\0c", 3, 12));
    assert_null(pagecache_get(pc, "a", 1, 12));
    {
        struct pagecache_entry *e = pagecache_get(pc, "a\0b", 3, 12);
        size_t n;
        assert_non_null(e);
        assert_memory_equal(pagecache_body(e, &n), "nul", 3);
        assert_int_equal(n, 3);
        pagecache_release(e);
    }
    pagecache_stats_get(pc, &s);
    assert_int_equal(s.entries, 2);
    assert_true(s.hits >= 4);
    /* A request at a newer version frees every older page at once (all dead), and a page
     * rendered at an older version than one seen is not kept. */
    assert_null(get_str(pc, "anything", 13, out, sizeof out));
    pagecache_stats_get(pc, &s);
    assert_int_equal(s.entries, 0);
    assert_int_equal(s.bytes, 0);
    put_str(pc, "now", 13, "current");
    put_str(pc, "late", 12, "rendered before the commit");
    pagecache_stats_get(pc, &s);
    assert_int_equal(s.entries, 1);
    assert_string_equal(get_str(pc, "now", 13, out, sizeof out), "current");
    assert_null(get_str(pc, "late", 13, out, sizeof out));
    /* An emptied cache follows the version wherever it goes (a restored database). */
    assert_null(get_str(pc, "now", 5, out, sizeof out)); /* drops the v13 entry: a miss */
    put_str(pc, "now", 5, "restored");
    assert_string_equal(get_str(pc, "now", 5, out, sizeof out), "restored");
    pagecache_free(pc);
}

static void
test_bound_and_lru(void **state)
{
    enum { MAX = 64 * 1024 };
    struct pagecache *pc;
    struct pagecache_stats s;
    char key[32], body[4000], out[4096];

    (void)state;
    assert_int_equal(pagecache_create(&pc, MAX, NULL), ERR_OK);
    memset(body, 'x', sizeof body - 1);
    body[sizeof body - 1] = '\0';
    put_str(pc, "keep", 1, "kept");
    for (int i = 0; i < 500; i++) {
        snprintf(key, sizeof key, "k%d", i);
        body[0] = (char)('a' + i % 26);
        put_str(pc, key, 1, body + (i % 3) * 1000);               /* 1,000 to 3,000 bytes */
        assert_non_null(get_str(pc, "keep", 1, out, sizeof out)); /* most recently used */
        pagecache_stats_get(pc, &s);
        assert_true(s.bytes <= MAX);
    }
    pagecache_stats_get(pc, &s);
    assert_true(s.evictions > 400);
    assert_true(s.entries > 10);
    /* The oldest are gone, the newest are there. */
    assert_null(get_str(pc, "k0", 1, out, sizeof out));
    assert_non_null(get_str(pc, "k499", 1, out, sizeof out));
    /* More than an eighth of the bound is never cached. */
    {
        char *big = malloc(MAX / 8 + 1);
        memset(big, 'y', MAX / 8);
        big[MAX / 8] = '\0';
        put_str(pc, "big", 1, big);
        assert_null(get_str(pc, "big", 1, out, sizeof out));
        free(big);
    }
    pagecache_free(pc);
}

static void
test_entry_outlives_eviction(void **state)
{
    struct pagecache *pc;
    struct pagecache_entry *e;
    char key[32], body[3000];
    const char *b;
    size_t n;

    (void)state;
    assert_int_equal(pagecache_create(&pc, 32 * 1024, NULL), ERR_OK);
    memset(body, 'z', sizeof body);
    pagecache_put(pc, "held", 4, 7, body, sizeof body);
    e = pagecache_get(pc, "held", 4, 7);
    assert_non_null(e);
    for (int i = 0; i < 100; i++) { /* evicts "held" */
        snprintf(key, sizeof key, "k%d", i);
        pagecache_put(pc, key, strlen(key), 7, body, sizeof body);
    }
    assert_null(pagecache_get(pc, "held", 4, 7));
    b = pagecache_body(e, &n); /* still ours (ASan would see a use after free) */
    assert_int_equal(n, sizeof body);
    assert_memory_equal(b, body, sizeof body);
    pagecache_release(e); /* the last reference: freed now */
    /* Freeing the cache with a reference out leaves the entry to its last release. */
    e = pagecache_get(pc, "k99", 3, 7);
    assert_non_null(e);
    pagecache_free(pc);
    b = pagecache_body(e, &n);
    assert_memory_equal(b, body, sizeof body);
    pagecache_release(e);
}

struct worker {
    struct pagecache *pc;
    int seed;
    int64_t version;
    int bad;
};

static void *
hammer(void *arg)
{
    struct worker *w = arg;
    unsigned r = (unsigned)w->seed;
    char key[32], body[2048];

    for (int i = 0; i < 20000; i++) {
        struct pagecache_entry *e;
        int k;

        r = r * 1103515245u + 12345u;
        k = (int)((r >> 8) % 200);
        snprintf(key, sizeof key, "key-%d", k);
        e = pagecache_get(w->pc, key, strlen(key), w->version);
        if (e != NULL) {
            size_t n;
            const char *b = pagecache_body(e, &n);
            /* The body names its key: an entry never answers for another. */
            if (n < strlen(key) || memcmp(b, key, strlen(key)) != 0)
                w->bad = 1;
            pagecache_release(e);
        } else {
            size_t n = 100 + (r >> 4) % (sizeof body - 100);
            memset(body, '.', n);
            memcpy(body, key, strlen(key));
            pagecache_put(w->pc, key, strlen(key), w->version, body, n);
        }
    }
    return NULL;
}

static void
test_threads(void **state)
{
    struct pagecache *pc;
    struct pagecache_stats s;
    pthread_t t[4];
    struct worker w[4];

    (void)state;
    assert_int_equal(pagecache_create(&pc, 100 * 1024, NULL), ERR_OK);
    for (int i = 0; i < 4; i++) {
        w[i].pc = pc;
        w[i].seed = i + 1;
        w[i].version = 7;
        w[i].bad = 0;
        assert_int_equal(pthread_create(&t[i], NULL, hammer, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(w[i].bad, 0);
    }
    pagecache_stats_get(pc, &s);
    assert_true(s.bytes <= 100 * 1024);
    assert_true(s.hits > 0);
    assert_true(s.evictions > 0);
    pagecache_free(pc);
}

static void
test_etag(void **state)
{
    char a[PAGECACHE_ETAG_LEN + 1], b[PAGECACHE_ETAG_LEN + 1], c[PAGECACHE_ETAG_LEN + 1];
    char list[200];

    (void)state;
    pagecache_etag("acct 1 ?x", 9, 5, a);
    pagecache_etag("acct 1 ?x", 9, 5, b);
    assert_string_equal(a, b);
    assert_int_equal(strlen(a), PAGECACHE_ETAG_LEN);
    assert_true(a[0] == '"' && a[PAGECACHE_ETAG_LEN - 1] == '"');
    pagecache_etag("acct 1 ?x", 9, 6, c); /* the data changed */
    assert_string_not_equal(a, c);
    pagecache_etag("acct 2 ?x", 9, 5, c); /* another account */
    assert_string_not_equal(a, c);

    assert_true(pagecache_etag_match(a, a));
    snprintf(list, sizeof list, "W/%s", a);
    assert_true(pagecache_etag_match(list, a));
    snprintf(list, sizeof list, "\"x\", %s", a);
    assert_true(pagecache_etag_match(list, a));
    snprintf(list, sizeof list, "\"x\",%s ,\"y\"", a);
    assert_true(pagecache_etag_match(list, a));
    assert_true(pagecache_etag_match("*", a));
    assert_false(pagecache_etag_match(NULL, a));
    assert_false(pagecache_etag_match("", a));
    assert_false(pagecache_etag_match(c, a));
    assert_false(pagecache_etag_match("\"unterminated", a));
    snprintf(list, sizeof list, "%.*s", PAGECACHE_ETAG_LEN - 1, a); /* a prefix */
    assert_false(pagecache_etag_match(list, a));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_disabled),      cmocka_unit_test(test_key_and_version),
        cmocka_unit_test(test_bound_and_lru), cmocka_unit_test(test_entry_outlives_eviction),
        cmocka_unit_test(test_threads),       cmocka_unit_test(test_etag),
    };
    return cmocka_run_group_tests(tests, setup, NULL);
}
