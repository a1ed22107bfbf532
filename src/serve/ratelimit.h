/* ratelimit.h - request rates per API key of `memsync serve` (docs/API.md "Rate limits").
 *
 * Each key has a bucket of `burst` requests that refills at `per_minute` requests a minute; a
 * request takes one, and a request that finds the bucket empty is refused with the seconds
 * until one is back. The router (router.c) asks for every API request made with a key (not for
 * sessions, which are people at a browser) and answers 429 with Retry-After when refused; every
 * answer to a key carries RateLimit-Limit (burst), RateLimit-Remaining and RateLimit-Reset
 * (seconds until the bucket is full again).
 *
 * Bounded memory: RATELIMIT_SHARDS * RATELIMIT_SLOTS buckets, allocated once. A key lives in one
 * shard (by its id) and in one of RATELIMIT_PROBE slots there; when all of them hold other keys,
 * the one unused the longest is dropped (it starts full when it comes back), which a table far
 * larger than the keys in use keeps rare.
 * Threads: ratelimit_take may run on any thread at once (a mutex per shard).
 * Limits: per_minute 1..RATELIMIT_MAX_RATE, burst 1..RATELIMIT_MAX_RATE, else ERR_INVAL.
 */
#ifndef MEMSYNC_RATELIMIT_H
#define MEMSYNC_RATELIMIT_H

#include <stdint.h>

#include "err.h"

#define RATELIMIT_SHARDS   16
#define RATELIMIT_SLOTS    256 /* per shard: 4096 keys in all */
#define RATELIMIT_PROBE    8
#define RATELIMIT_MAX_RATE 1000000

struct ratelimit;

/* What an answer tells its caller. */
struct ratelimit_state {
    int limit;         /* burst */
    int remaining;     /* requests left now */
    int reset_s;       /* seconds until the bucket is full */
    int retry_after_s; /* refused: seconds until one request is allowed; else 0 */
};

int ratelimit_new(int per_minute, int burst, struct ratelimit **out, struct errbuf *eb);
void ratelimit_free(struct ratelimit *rl); /* NULL-safe */

/* Takes one request of key (> 0) at now_ms (monotonic milliseconds): 1 when allowed, 0 when
 * refused. st gets the figures for the headers either way. */
int ratelimit_take(struct ratelimit *rl, int64_t key, int64_t now_ms, struct ratelimit_state *st);

#endif
