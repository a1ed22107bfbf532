/* serialset.c - versioned sets of shared serial keys (see serialset.h). */
#include "serialset.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "hash.h"
#include "mem.h"

struct entry {
    uint64_t hash;
    uint32_t off;
    uint32_t len1; /* length + 1; 0 = empty */
};

struct serialset {
    atomic_int refs;
    size_t n, nslots; /* nslots: a power of two, at most half full */
    struct entry *slots;
    char *text;
    size_t len, cap;
};

struct slot {
    char *db;
    int64_t account_id;
    int64_t version;
    struct serialset *set; /* the slot's reference; NULL when the build gave up */
    int built;             /* set/version hold a build's result */
    int building;          /* a builder has the turn: the slot is not evicted */
    int64_t build_end_ms, build_ms;
    uint64_t used;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct slot slots[SERIALSET_SLOTS];
static uint64_t tick;

struct serialset *
serialset_new(void)
{
    struct serialset *s = xcalloc(1, sizeof *s);

    atomic_init(&s->refs, 1);
    s->nslots = 64;
    s->slots = xcalloc(s->nslots, sizeof *s->slots);
    return s;
}

void
serialset_release(struct serialset *s)
{
    if (s == NULL || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    free(s->slots);
    free(s->text);
    free(s);
}

static struct entry *
find(const struct serialset *s, const char *key, size_t len, uint64_t h)
{
    size_t mask = s->nslots - 1;

    for (size_t i = (size_t)h & mask;; i = (i + 1) & mask) {
        struct entry *e = &s->slots[i];

        if (e->len1 == 0 ||
            (e->hash == h && e->len1 == len + 1 && memcmp(s->text + e->off, key, len) == 0))
            return e;
    }
}

static void
grow(struct serialset *s)
{
    struct serialset old = *s;

    s->nslots *= 2;
    s->slots = xcalloc(s->nslots, sizeof *s->slots);
    for (size_t i = 0; i < old.nslots; i++) {
        size_t mask = s->nslots - 1, j;

        if (old.slots[i].len1 == 0)
            continue;
        for (j = (size_t)old.slots[i].hash & mask; s->slots[j].len1 != 0; j = (j + 1) & mask)
            ;
        s->slots[j] = old.slots[i];
    }
    free(old.slots);
}

int
serialset_add(struct serialset *s, const char *key, size_t len)
{
    uint64_t h = hash_bytes(key, len);
    struct entry *e;

    if (s->n >= SERIALSET_MAX_KEYS || len > SERIALSET_MAX_BYTES - s->len)
        return ERR_TOOBIG;
    e = find(s, key, len, h);
    if (e->len1 != 0)
        return ERR_OK;
    if (s->len + len > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;

        while (cap < s->len + len)
            cap *= 2;
        if (cap > SERIALSET_MAX_BYTES)
            cap = SERIALSET_MAX_BYTES;
        s->text = xrealloc(s->text, cap);
        s->cap = cap;
    }
    memcpy(s->text + s->len, key, len);
    e->hash = h;
    e->off = (uint32_t)s->len;
    e->len1 = (uint32_t)len + 1;
    s->len += len;
    if (++s->n * 2 > s->nslots)
        grow(s);
    return ERR_OK;
}

int
serialset_has(const struct serialset *s, const char *key, size_t len)
{
    return find(s, key, len, hash_bytes(key, len))->len1 != 0;
}

size_t
serialset_count(const struct serialset *s)
{
    return s->n;
}

/* Slot of (db, account), else -1. Under mu. */
static int
slot_find(const char *db, int64_t account_id)
{
    for (int i = 0; i < SERIALSET_SLOTS; i++)
        if (slots[i].db != NULL && slots[i].account_id == account_id &&
            strcmp(slots[i].db, db) == 0)
            return i;
    return -1;
}

struct serialset *
serialset_acquire(const char *db, int64_t account_id, int64_t version, int64_t now_ms, int *build)
{
    struct serialset *out = NULL;
    struct slot *sl;
    int i;

    *build = 0;
    pthread_mutex_lock(&mu);
    i = slot_find(db, account_id);
    if (i < 0) { /* an empty slot, else the least recently used one nobody is building */
        for (int j = 0; j < SERIALSET_SLOTS; j++) {
            if (slots[j].building)
                continue;
            if (slots[j].db == NULL) {
                i = j;
                break;
            }
            if (i < 0 || slots[j].used < slots[i].used)
                i = j;
        }
        if (i < 0)
            goto out;
        sl = &slots[i];
        serialset_release(sl->set);
        free(sl->db);
        memset(sl, 0, sizeof *sl);
        sl->db = xstrdup(db);
        sl->account_id = account_id;
    }
    sl = &slots[i];
    sl->used = ++tick;
    if (sl->built && sl->version == version) {
        if ((out = sl->set) != NULL)
            atomic_fetch_add(&out->refs, 1);
        goto out;
    }
    /* A reader of an older snapshot never rebuilds: the newer set stays. */
    if (sl->building || (sl->built && version < sl->version))
        goto out;
    if (!sl->built || now_ms - sl->build_end_ms >=
                          (sl->build_ms * SERIALSET_REBUILD_FACTOR > SERIALSET_REBUILD_MIN_MS
                               ? sl->build_ms * SERIALSET_REBUILD_FACTOR
                               : SERIALSET_REBUILD_MIN_MS)) {
        sl->building = 1;
        *build = 1;
    }
out:
    pthread_mutex_unlock(&mu);
    return out;
}

struct serialset *
serialset_publish(const char *db, int64_t account_id, int64_t version, struct serialset *s,
                  int64_t started_ms, int64_t now_ms)
{
    struct slot *sl;
    int i;

    pthread_mutex_lock(&mu);
    i = slot_find(db, account_id);
    if (i < 0 || !slots[i].building) { /* reset meanwhile: the set serves this caller only */
        pthread_mutex_unlock(&mu);
        return s;
    }
    sl = &slots[i];
    serialset_release(sl->set);
    sl->set = s;
    if (s != NULL)
        atomic_fetch_add(&s->refs, 1);
    sl->version = version;
    sl->built = 1;
    sl->building = 0;
    sl->build_end_ms = now_ms;
    sl->build_ms = now_ms - started_ms;
    pthread_mutex_unlock(&mu);
    return s;
}

void
serialset_reset(void)
{
    pthread_mutex_lock(&mu);
    for (int i = 0; i < SERIALSET_SLOTS; i++) {
        if (slots[i].building)
            continue;
        serialset_release(slots[i].set);
        free(slots[i].db);
        memset(&slots[i], 0, sizeof slots[i]);
    }
    pthread_mutex_unlock(&mu);
}
