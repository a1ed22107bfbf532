/* test_jsonarena.c - trees parsed in the arena rewind it when freed, chunks are reused, foreign
 * memory is freed normally, and a thread that never parsed in an arena uses plain malloc. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "jsonarena.h"
#include "mem.h"

/* A page-like document: n objects of a few members. */
static char *
doc(int n)
{
    size_t cap = (size_t)n * 96 + 64, len = 0;
    char *s = xmalloc(cap);

    len += (size_t)snprintf(s + len, cap - len, "{\"value\":[");
    for (int i = 0; i < n; i++)
        len += (size_t)snprintf(s + len, cap - len,
                                "%s{\"id\":\"dev-%d\",\"name\":\"Device %d\",\"n\":%d,\"ok\":true}",
                                i ? "," : "", i, i, i);
    snprintf(s + len, cap - len, "]}");
    return s;
}

static void
test_rewind_and_reuse(void **state)
{
    struct jsonarena_stats st;
    char *text = doc(2000);
    json_t *root;
    size_t chunks;

    (void)state;
    assert_int_equal(jsonarena_release(), 0);
    root = jsonarena_loadb(text, strlen(text), JSON_REJECT_DUPLICATES, NULL);
    assert_non_null(root);
    jsonarena_stats(&st);
    assert_true(st.chunks >= 1);
    assert_true(st.live > 0);
    assert_int_equal(st.rewinds, 0);
    assert_string_equal(json_string_value(json_object_get(
                            json_array_get(json_object_get(root, "value"), 1999), "id")),
                        "dev-1999");
    json_decref(root);
    jsonarena_stats(&st);
    assert_int_equal(st.live, 0);
    assert_int_equal(st.used, 0);
    assert_int_equal(st.rewinds, 1);
    chunks = st.chunks;

    /* The same document again: no new chunk. */
    for (int i = 0; i < 3; i++) {
        root = jsonarena_loadb(text, strlen(text), 0, NULL);
        assert_non_null(root);
        json_decref(root);
    }
    jsonarena_stats(&st);
    assert_int_equal(st.chunks, chunks);
    assert_int_equal(st.mallocs, chunks);
    assert_int_equal(st.rewinds, 4);
    assert_int_equal(jsonarena_release(), 0);
    jsonarena_stats(&st);
    assert_int_equal(st.chunks, 0);
    free(text);
}

static void
test_two_trees_rewind_after_both(void **state)
{
    struct jsonarena_stats st;
    json_t *a = jsonarena_loadb("[1,2,3]", 7, 0, NULL);
    json_t *b = jsonarena_loadb("{\"k\":\"v\"}", 9, 0, NULL);

    (void)state;
    assert_non_null(a);
    assert_non_null(b);
    json_decref(a);
    jsonarena_stats(&st);
    assert_true(st.live > 0); /* b still lives in the arena */
    assert_int_equal(jsonarena_release(), ERR_EXISTS);
    assert_string_equal(json_string_value(json_object_get(b, "k")), "v");
    json_decref(b);
    jsonarena_stats(&st);
    assert_int_equal(st.live, 0);
    assert_int_equal(jsonarena_release(), 0);
}

static void
test_foreign_memory_and_growth(void **state)
{
    struct jsonarena_stats st, after;
    json_t *root = jsonarena_loadb("{\"a\":[]}", 8, 0, NULL);
    json_t *plain = json_pack("{s:s}", "x", "outside the arena");
    char *dump;

    (void)state;
    assert_non_null(root);
    assert_non_null(plain);
    jsonarena_stats(&st);
    /* Values added after the parse come from malloc; freeing them is an ordinary free. */
    assert_int_equal(json_array_append_new(json_object_get(root, "a"), json_string("later")), 0);
    assert_int_equal(json_object_set_new(root, "b", json_integer(7)), 0);
    jsonarena_stats(&after);
    assert_int_equal(after.live, st.live);
    dump = json_dumps(root, JSON_COMPACT | JSON_SORT_KEYS);
    assert_string_equal(dump, "{\"a\":[\"later\"],\"b\":7}");
    free(dump); /* json_dumps outside a parse is plain malloc */
    json_decref(plain);
    json_decref(root);
    jsonarena_stats(&after);
    assert_int_equal(after.live, 0);
    assert_int_equal(jsonarena_release(), 0);
}

static void
test_invalid_json_leaves_nothing_live(void **state)
{
    struct jsonarena_stats st;
    json_error_t err;

    (void)state;
    assert_null(jsonarena_loadb("{\"a\":[1,2,", 10, 0, &err));
    assert_null(jsonarena_loadb("{\"a\":1,\"a\":2}", 13, JSON_REJECT_DUPLICATES, &err));
    jsonarena_stats(&st);
    assert_int_equal(st.live, 0);
    assert_int_equal(jsonarena_release(), 0);
}

static void
test_big_string_goes_to_malloc(void **state)
{
    size_t n = JSONARENA_CHUNK; /* larger than any arena allocation */
    char *text = xmalloc(n + 16);
    struct jsonarena_stats st;
    json_t *root;

    (void)state;
    text[0] = '[';
    text[1] = '"';
    memset(text + 2, 'x', n);
    memcpy(text + 2 + n, "\"]", 3);
    root = jsonarena_loadb(text, n + 4, 0, NULL);
    assert_non_null(root);
    assert_int_equal(json_string_length(json_array_get(root, 0)), n);
    json_decref(root);
    jsonarena_stats(&st);
    assert_int_equal(st.live, 0);
    assert_int_equal(jsonarena_release(), 0);
    free(text);
}

/* A scope: every value built inside comes from the arena; outside, from malloc. */
static void
test_scope_builds_in_arena(void **state)
{
    struct jsonarena_stats st;
    json_t *outer, *inner, *plain;
    size_t rewinds;

    (void)state;
    jsonarena_stats(&st);
    assert_int_equal(st.live, 0);
    rewinds = st.rewinds;
    jsonarena_begin();
    outer = json_pack("{s:s, s:[i, i]}", "name", "laptop-1", "list", 1, 2);
    jsonarena_begin(); /* nested */
    inner = json_string("nested");
    assert_true(jsonarena_end() > 0); /* the inner scope ends; its value lives on */
    assert_true(jsonarena_end() > 0); /* the outermost ends; both trees are still alive */
    jsonarena_stats(&st);
    assert_true(st.live > 0);
    /* After the outermost end, values come from malloc again. */
    plain = json_string("plain");
    jsonarena_stats(&st);
    {
        size_t live = st.live;

        json_decref(plain);
        jsonarena_stats(&st);
        assert_int_equal(st.live, live);
    }
    json_decref(inner);
    json_decref(outer);
    jsonarena_stats(&st);
    assert_int_equal(st.live, 0);
    assert_int_equal(st.rewinds, rewinds + 1);
    assert_int_equal(jsonarena_end(), 0); /* unbalanced end: harmless */
}

static void *
other_thread(void *arg)
{
    struct jsonarena_stats st;
    json_t *j = json_pack("{s:[i,i]}", "k", 1, 2);
    char *s = json_dumps(j, JSON_COMPACT);

    (void)arg;
    jsonarena_stats(&st);
    json_decref(j);
    if (st.chunks != 0 || s == NULL || strcmp(s, "{\"k\":[1,2]}") != 0) {
        free(s);
        return (void *)1;
    }
    free(s);
    return NULL;
}

static void
test_thread_without_arena(void **state)
{
    pthread_t th;
    void *res = (void *)2;
    char *text = doc(100);
    json_t *root;

    (void)state;
    /* This thread holds a live arena tree while another uses jansson with plain malloc. */
    root = jsonarena_loadb(text, strlen(text), 0, NULL);
    assert_non_null(root);
    assert_int_equal(pthread_create(&th, NULL, other_thread, NULL), 0);
    assert_int_equal(pthread_join(th, &res), 0);
    assert_null(res);
    json_decref(root);
    assert_int_equal(jsonarena_release(), 0);
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rewind_and_reuse),
        cmocka_unit_test(test_two_trees_rewind_after_both),
        cmocka_unit_test(test_foreign_memory_and_growth),
        cmocka_unit_test(test_invalid_json_leaves_nothing_live),
        cmocka_unit_test(test_big_string_goes_to_malloc),
        cmocka_unit_test(test_thread_without_arena),
        cmocka_unit_test(test_scope_builds_in_arena),
    };
    jsonarena_install();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
