/* rowcache.c - bounded, sharded LRU cache of rendered list rows (see rowcache.h). */
#include "rowcache.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* An entry's cost beyond its value: the struct and the allocator's overhead. */
#define ENTRY_OVERHEAD 64

struct entry {
    struct entry *hnext;
    struct entry *prev, *next; /* LRU: head is the most recent */
    int64_t id;
    uint64_t stamp;
    uint64_t tick; /* the shard's tick when it was put or last moved to the front */
    uint32_t len;  /* <= ROWCACHE_MAX_VALUE */
    uint32_t has_aux;
    char data[]; /* value, then aux and its NUL */
};

struct shard {
    pthread_mutex_t mu;
    size_t bytes, count, max;
    uint64_t hits, misses, evictions;
    uint64_t tick;          /* counts puts and moves to the front */
    struct entry **buckets; /* nbuckets, a power of two */
    struct entry *head, *tail;
};

struct rowcache {
    size_t max, nbuckets;
    struct shard shards[ROWCACHE_SHARDS];
};

/* Ids are assigned by the database, not chosen by a client: a fixed mix spreads them. */
static uint64_t
mix(int64_t id)
{
    uint64_t x = (uint64_t)id + 0x9e3779b97f4a7c15u;

    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9u;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebu;
    return x ^ (x >> 31);
}

int
rowcache_create(struct rowcache **out, size_t max_bytes, struct errbuf *eb)
{
    struct rowcache *c;
    size_t per, nb = 64;

    *out = NULL;
    if (max_bytes == 0)
        return ERR_OK;
    if (max_bytes > (size_t)ROWCACHE_MAX_MB * 1024 * 1024)
        return err_set(eb, ERR_INVAL, "the row cache may use at most %d MiB", ROWCACHE_MAX_MB);
    c = xcalloc(1, sizeof *c);
    c->max = max_bytes;
    per = max_bytes / ROWCACHE_SHARDS;
    /* A bucket per kilobyte of budget: a rendered row is about one. */
    while (nb < per / 1024 && nb < ((size_t)1 << 22))
        nb *= 2;
    c->nbuckets = nb;
    for (size_t i = 0; i < ROWCACHE_SHARDS; i++) {
        struct shard *s = &c->shards[i];

        pthread_mutex_init(&s->mu, NULL);
        s->max = per;
        s->buckets = xcalloc(nb, sizeof *s->buckets);
    }
    *out = c;
    return ERR_OK;
}

void
rowcache_free(struct rowcache *c)
{
    if (c == NULL)
        return;
    for (size_t i = 0; i < ROWCACHE_SHARDS; i++) {
        struct shard *s = &c->shards[i];

        for (struct entry *e = s->head, *n; e != NULL; e = n) {
            n = e->next;
            free(e);
        }
        free(s->buckets);
        pthread_mutex_destroy(&s->mu);
    }
    free(c);
}

static struct shard *
shard_of(struct rowcache *c, int64_t id, struct entry ***bucket)
{
    uint64_t h = mix(id);
    struct shard *s = &c->shards[h % ROWCACHE_SHARDS];

    *bucket = &s->buckets[(h / ROWCACHE_SHARDS) & (c->nbuckets - 1)];
    return s;
}

static void
lru_unlink(struct shard *s, struct entry *e)
{
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        s->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        s->tail = e->prev;
    e->prev = e->next = NULL;
}

static void
lru_front(struct shard *s, struct entry *e)
{
    e->prev = NULL;
    e->next = s->head;
    if (s->head != NULL)
        s->head->prev = e;
    s->head = e;
    if (s->tail == NULL)
        s->tail = e;
}

/* A hit moves e to the front only once it has aged out of the newest quarter of the shard:
 * a move writes both neighbours and the head, three cache misses at random places, which cost
 * more than the lookup itself; most hits of a working set that fits now write nothing, and
 * the eviction order stays close to least recently used. */
static void
touch(struct shard *s, struct entry *e)
{
    if (s->tick - e->tick <= s->count / 4)
        return;
    if (s->head != e) {
        lru_unlink(s, e);
        lru_front(s, e);
    }
    e->tick = ++s->tick;
}

static size_t
entry_cost(const struct entry *e)
{
    return e->len + strlen(e->data + e->len) + 1 + ENTRY_OVERHEAD;
}

/* Unlinks e (in bucket chain *pp) from the shard; the caller frees it. */
static void
drop(struct shard *s, struct entry **pp, struct entry *e)
{
    *pp = e->hnext;
    lru_unlink(s, e);
    s->bytes -= entry_cost(e);
    s->count--;
}

int
rowcache_get(struct rowcache *c, int64_t id, uint64_t stamp,
             void (*emit)(void *arg, const char *p, size_t n), void *arg, char *aux, int *has_aux)
{
    struct entry **b, **pp, *e, *stale = NULL;
    struct shard *s;
    int hit = 0;

    if (c == NULL)
        return 0;
    s = shard_of(c, id, &b);
    pthread_mutex_lock(&s->mu);
    for (pp = b; (e = *pp) != NULL; pp = &e->hnext)
        if (e->id == id)
            break;
    if (e != NULL && e->stamp == stamp) {
        touch(s, e);
        emit(arg, e->data, e->len);
        memcpy(aux, e->data + e->len, strlen(e->data + e->len) + 1); /* put bounded it */
        *has_aux = e->has_aux;
        hit = 1;
        s->hits++;
    } else {
        if (e != NULL) {
            drop(s, pp, e);
            stale = e;
        }
        s->misses++;
    }
    pthread_mutex_unlock(&s->mu);
    free(stale);
    return hit;
}

void
rowcache_has_many(struct rowcache *c, const int64_t *ids, const uint64_t *stamps, size_t n,
                  unsigned char *held)
{
    struct probe {
        struct entry **b;
        size_t i;
    } * p;
    size_t start[ROWCACHE_SHARDS + 1] = {0}, fill[ROWCACHE_SHARDS];

    memset(held, 0, n);
    if (c == NULL || n == 0)
        return;
    /* Grouped by shard (one lock each), the lookups of a group overlap their cache misses: the
     * bucket slots, then the entries, are fetched for all before any is compared. */
    p = xmalloc(n * sizeof *p);
    for (size_t i = 0; i < n; i++)
        start[mix(ids[i]) % ROWCACHE_SHARDS + 1]++;
    for (size_t k = 0; k < ROWCACHE_SHARDS; k++) {
        start[k + 1] += start[k];
        fill[k] = start[k];
    }
    for (size_t i = 0; i < n; i++) {
        struct entry **b;
        size_t k = (size_t)(shard_of(c, ids[i], &b) - c->shards);

        p[fill[k]].b = b;
        p[fill[k]++].i = i;
    }
    for (size_t k = 0; k < ROWCACHE_SHARDS; k++) {
        struct shard *s = &c->shards[k];

        if (start[k] == start[k + 1])
            continue;
        pthread_mutex_lock(&s->mu);
        for (size_t j = start[k]; j < start[k + 1]; j++)
            __builtin_prefetch(p[j].b);
        for (size_t j = start[k]; j < start[k + 1]; j++)
            if (*p[j].b != NULL)
                __builtin_prefetch(*p[j].b);
        for (size_t j = start[k]; j < start[k + 1]; j++) {
            size_t i = p[j].i;
            struct entry *e;

            for (e = *p[j].b; e != NULL && e->id != ids[i]; e = e->hnext)
                ;
            if (e != NULL && e->stamp == stamps[i]) {
                held[i] = 1;
                touch(s, e);
            }
        }
        pthread_mutex_unlock(&s->mu);
    }
    free(p);
}

int
rowcache_has(struct rowcache *c, int64_t id, uint64_t stamp)
{
    unsigned char held = 0;

    rowcache_has_many(c, &id, &stamp, 1, &held);
    return held;
}

void
rowcache_put(struct rowcache *c, int64_t id, uint64_t stamp, const char *value, size_t len,
             const char *aux)
{
    struct entry **b, **pp, *e, *n, *gone = NULL;
    struct shard *s;
    size_t alen = aux != NULL ? strlen(aux) : 0;

    if (c == NULL || len > ROWCACHE_MAX_VALUE || alen > ROWCACHE_MAX_AUX)
        return;
    s = shard_of(c, id, &b);
    len += alen + 1; /* counted with the value below */
    if (len + ENTRY_OVERHEAD > s->max)
        return;
    n = xmalloc(sizeof *n + len);
    n->id = id;
    n->stamp = stamp;
    n->len = (uint32_t)(len - alen - 1);
    n->has_aux = aux != NULL;
    memcpy(n->data, value, n->len);
    memcpy(n->data + n->len, aux != NULL ? aux : "", alen + 1);
    pthread_mutex_lock(&s->mu);
    for (pp = b; (e = *pp) != NULL; pp = &e->hnext)
        if (e->id == id) {
            drop(s, pp, e);
            e->hnext = gone;
            gone = e;
            break;
        }
    while (s->tail != NULL && s->bytes + len + ENTRY_OVERHEAD > s->max) {
        struct entry *t = s->tail, **tp;

        shard_of(c, t->id, &tp);
        while (*tp != t)
            tp = &(*tp)->hnext;
        drop(s, tp, t);
        t->hnext = gone;
        gone = t;
        s->evictions++;
    }
    n->hnext = *b;
    *b = n;
    n->tick = ++s->tick;
    lru_front(s, n);
    s->bytes += entry_cost(n);
    s->count++;
    pthread_mutex_unlock(&s->mu);
    while (gone != NULL) {
        e = gone->hnext;
        free(gone);
        gone = e;
    }
}

void
rowcache_stats(struct rowcache *c, struct rowcache_stats *out)
{
    memset(out, 0, sizeof *out);
    if (c == NULL)
        return;
    out->max_bytes = c->max;
    for (size_t i = 0; i < ROWCACHE_SHARDS; i++) {
        struct shard *s = &c->shards[i];

        pthread_mutex_lock(&s->mu);
        out->hits += s->hits;
        out->misses += s->misses;
        out->evictions += s->evictions;
        out->entries += s->count;
        out->bytes += s->bytes;
        pthread_mutex_unlock(&s->mu);
    }
}
