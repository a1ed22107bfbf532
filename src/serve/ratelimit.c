/* ratelimit.c - token buckets per API key in a fixed table (ratelimit.h). A token is UNIT
 * units, so that a millisecond adds exactly per_minute units: refills are exact integers at any
 * rate, without floating point or rounding that would add up. */
#include "ratelimit.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

#define UNIT 60000 /* units per token: ms in a minute */

struct slot {
    int64_t key; /* 0: free */
    int64_t units;
    int64_t last_ms;
};

struct shard {
    pthread_mutex_t mu;
    struct slot slots[RATELIMIT_SLOTS];
};

struct ratelimit {
    int64_t per_minute;
    int64_t cap; /* burst * UNIT */
    struct shard shards[RATELIMIT_SHARDS];
};

int
ratelimit_new(int per_minute, int burst, struct ratelimit **out, struct errbuf *eb)
{
    struct ratelimit *rl;

    *out = NULL;
    if (per_minute < 1 || per_minute > RATELIMIT_MAX_RATE || burst < 1 ||
        burst > RATELIMIT_MAX_RATE)
        return err_set(eb, ERR_INVAL, "rate limit %d a minute, burst %d: out of range", per_minute,
                       burst);
    rl = xcalloc(1, sizeof *rl);
    rl->per_minute = per_minute;
    rl->cap = (int64_t)burst * UNIT;
    for (int i = 0; i < RATELIMIT_SHARDS; i++)
        pthread_mutex_init(&rl->shards[i].mu, NULL);
    *out = rl;
    return ERR_OK;
}

void
ratelimit_free(struct ratelimit *rl)
{
    if (rl == NULL)
        return;
    for (int i = 0; i < RATELIMIT_SHARDS; i++)
        pthread_mutex_destroy(&rl->shards[i].mu);
    free(rl);
}

static uint64_t
mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return x;
}

/* Seconds (rounded up) until the bucket holds missing_m units more than now. */
static int
seconds_for(const struct ratelimit *rl, int64_t missing_m)
{
    int64_t ms;

    if (missing_m <= 0)
        return 0;
    ms = (missing_m + rl->per_minute - 1) / rl->per_minute; /* per_minute units a ms */
    return (int)((ms + 999) / 1000);
}

int
ratelimit_take(struct ratelimit *rl, int64_t key, int64_t now_ms, struct ratelimit_state *st)
{
    uint64_t h = mix((uint64_t)key);
    struct shard *sh = &rl->shards[h % RATELIMIT_SHARDS];
    size_t base = (size_t)((h / RATELIMIT_SHARDS) % RATELIMIT_SLOTS);
    struct slot *s = NULL, *oldest = NULL;
    int ok;

    pthread_mutex_lock(&sh->mu);
    for (size_t i = 0; i < RATELIMIT_PROBE; i++) {
        struct slot *c = &sh->slots[(base + i) % RATELIMIT_SLOTS];

        if (c->key == key) {
            s = c;
            break;
        }
        if (oldest == NULL || c->key == 0 || (oldest->key != 0 && c->last_ms < oldest->last_ms))
            oldest = c;
    }
    if (s == NULL) { /* a new key, or one dropped: a full bucket */
        s = oldest;
        s->key = key;
        s->units = rl->cap;
        s->last_ms = now_ms;
    } else if (now_ms > s->last_ms) {
        int64_t elapsed = now_ms - s->last_ms;

        if (elapsed > 3600 * 1000) /* no overflow; an hour refills any bucket */
            elapsed = 3600 * 1000;
        s->units += elapsed * rl->per_minute;
        if (s->units > rl->cap)
            s->units = rl->cap;
        s->last_ms = now_ms;
    }
    ok = s->units >= UNIT;
    if (ok)
        s->units -= UNIT;
    st->limit = (int)(rl->cap / UNIT);
    st->remaining = (int)(s->units / UNIT);
    st->reset_s = seconds_for(rl, rl->cap - s->units);
    st->retry_after_s = ok ? 0 : seconds_for(rl, UNIT - s->units);
    if (!ok && st->retry_after_s < 1)
        st->retry_after_s = 1;
    pthread_mutex_unlock(&sh->mu);
    return ok;
}
