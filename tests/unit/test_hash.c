/* test_hash.c - the tables' hash: a function of the bytes alone (within a process), every byte
 * and the length count, and keys shaped like memsync's (GUIDs, title keys) spread over a table. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "hash.h"

static void
test_same_bytes_same_hash(void **state)
{
    char a[64], b[64];

    (void)state;
    for (size_t len = 0; len <= sizeof a; len++) {
        memset(a, 'x', sizeof a);
        memset(b, 'y', sizeof b);
        memcpy(b, a, len); /* b differs only past len */
        assert_true(hash_bytes(a, len) == hash_bytes(b, len));
    }
}

/* Changing any one byte, in the 8-byte steps or in the tail, or the length, changes the hash. */
static void
test_every_byte_counts(void **state)
{
    unsigned char k[37];

    (void)state;
    for (size_t len = 1; len <= sizeof k; len++) {
        memset(k, 'a', sizeof k);
        uint64_t base = hash_bytes(k, len);

        for (size_t i = 0; i < len; i++) {
            k[i] = 'b';
            assert_true(hash_bytes(k, len) != base);
            k[i] = 'a';
        }
        assert_true(hash_bytes(k, len - 1) != base);
    }
}

/* 20,000 GUID-shaped keys in a 32,768-slot table (the tables stay at most half full): probes stay
 * short. The seed is random per process, so the bounds are statistical: linear probing at this
 * load displaces a key by ~0.8 slots on average, and its longest run varies between seeds
 * (runs of 60-70 occur), while a hash that clusters these keys gives runs in the thousands. */
static void
test_spread(void **state)
{
    enum { N = 20000, SLOTS = 32768 };
    unsigned char *used = calloc(SLOTS, 1);
    size_t longest = 0, total = 0;

    (void)state;
    assert_non_null(used);
    for (int i = 0; i < N; i++) {
        char key[40];
        size_t probe = 0, at;

        snprintf(key, sizeof key, "%08x-0000-4000-8000-%012x", (unsigned)i * 2654435761u,
                 (unsigned)i);
        at = hash_bytes(key, strlen(key)) & (SLOTS - 1);
        while (used[at]) {
            at = (at + 1) & (SLOTS - 1);
            probe++;
        }
        used[at] = 1;
        total += probe;
        if (probe > longest)
            longest = probe;
    }
    free(used);
    assert_true(total < 2 * N); /* mean displacement under 2 slots */
    assert_true(longest < 256);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_bytes_same_hash),
        cmocka_unit_test(test_every_byte_counts),
        cmocka_unit_test(test_spread),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
