/* hash.c - see hash.h. */
#include "hash.h"

#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

static pthread_once_t seed_once = PTHREAD_ONCE_INIT;
static uint64_t seed;

static void
seed_init(void)
{
    if (sodium_init() < 0)
        abort(); /* no randomness source: nothing of memsync's can run */
    randombytes_buf(&seed, sizeof seed);
}

uint64_t
hash_bytes(const void *p, size_t len)
{
    const unsigned char *s = p;
    uint64_t h, w;
    size_t i = 0;

    pthread_once(&seed_once, seed_init);
    h = seed ^ len;
    for (; len - i >= 8; i += 8) {
        memcpy(&w, s + i, 8);
        h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 29;
    }
    if (i < len) { /* the last 1-7 bytes as one zero-padded word (len is in the seed) */
        w = 0;
        memcpy(&w, s + i, len - i);
        h = (h ^ w) * 0x9E3779B97F4A7C15ULL;
        h ^= h >> 29;
    }
    return h ^ (h >> 32);
}
