/* pagecache.c - bounded LRU cache of rendered answers (see pagecache.h). */
#include "pagecache.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

struct pagecache_entry {
    atomic_int refs; /* the cache's own (while listed) plus one per hit being sent */
    struct pagecache_entry *hnext;
    struct pagecache_entry *prev, *next; /* LRU: head is the most recent */
    uint64_t hash;
    int64_t version;
    size_t keylen, len, cost;
    char data[]; /* body, NUL, key */
};

struct pagecache {
    pthread_mutex_t mu;
    size_t max, bytes, count;
    uint64_t hits, misses, evictions;
    int64_t newest; /* the highest data version seen: entries of older ones are dead */
    unsigned char hkey[crypto_shorthash_KEYBYTES]; /* SipHash: query strings cannot flood a chain */
    size_t nbuckets;                               /* a power of two */
    struct pagecache_entry **buckets;
    struct pagecache_entry *head, *tail;
};

int
pagecache_create(struct pagecache **out, size_t max_bytes, struct errbuf *eb)
{
    struct pagecache *pc;
    size_t n = 64;

    *out = NULL;
    if (max_bytes == 0)
        return ERR_OK;
    if (max_bytes / (1024 * 1024) > PAGECACHE_MAX_MB)
        return err_set(eb, ERR_INVAL, "the page cache is limited to %d MB", PAGECACHE_MAX_MB);
    /* About one bucket per 16 KiB of bound; pages are ~240 KiB, small answers much less. */
    while (n < (1u << 16) && n * 16384 < max_bytes)
        n *= 2;
    pc = calloc(1, sizeof *pc);
    if (pc == NULL || (pc->buckets = calloc(n, sizeof *pc->buckets)) == NULL) {
        free(pc);
        return err_set(eb, ERR_NOMEM, "no memory for the page cache");
    }
    pthread_mutex_init(&pc->mu, NULL);
    pc->max = max_bytes;
    pc->nbuckets = n;
    crypto_shorthash_keygen(pc->hkey);
    *out = pc;
    return ERR_OK;
}

void
pagecache_release(void *entry)
{
    struct pagecache_entry *e = entry;

    if (e != NULL && atomic_fetch_sub(&e->refs, 1) == 1)
        free(e);
}

/* Unlinks e from the hash chain and the LRU list and drops the cache's reference. Locked. */
static void
drop(struct pagecache *pc, struct pagecache_entry *e)
{
    struct pagecache_entry **pp = &pc->buckets[e->hash & (pc->nbuckets - 1)];

    while (*pp != e)
        pp = &(*pp)->hnext;
    *pp = e->hnext;
    if (e->prev != NULL)
        e->prev->next = e->next;
    else
        pc->head = e->next;
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        pc->tail = e->prev;
    pc->bytes -= e->cost;
    pc->count--;
    pagecache_release(e);
}

static void
to_head(struct pagecache *pc, struct pagecache_entry *e)
{
    if (pc->head == e)
        return;
    e->prev->next = e->next; /* not the head, so prev is set */
    if (e->next != NULL)
        e->next->prev = e->prev;
    else
        pc->tail = e->prev;
    e->prev = NULL;
    e->next = pc->head;
    pc->head->prev = e;
    pc->head = e;
}

/* The data version only grows, so once a request saw v every entry of an older version can
 * never be hit again: free them now rather than holding dead pages until the LRU reaches
 * them. Locked; O(entries) once per version change. Returns 0 when version itself is already
 * older than one seen (a request that read it before a commit). */
static int
see_version(struct pagecache *pc, int64_t version)
{
    struct pagecache_entry *e, *next;

    if (pc->count == 0 || version > pc->newest) {
        for (e = pc->head; e != NULL; e = next) {
            next = e->next;
            if (e->version < version)
                drop(pc, e);
        }
        pc->newest = version;
    }
    return version >= pc->newest;
}

static uint64_t
hash_of(const struct pagecache *pc, const void *key, size_t keylen)
{
    unsigned char h[crypto_shorthash_BYTES];
    uint64_t v;

    crypto_shorthash(h, key, keylen, pc->hkey);
    memcpy(&v, h, sizeof v);
    return v;
}

/* Locked. */
static struct pagecache_entry *
find(struct pagecache *pc, uint64_t hash, const void *key, size_t keylen)
{
    struct pagecache_entry *e = pc->buckets[hash & (pc->nbuckets - 1)];

    for (; e != NULL; e = e->hnext)
        if (e->hash == hash && e->keylen == keylen &&
            memcmp(e->data + e->len + 1, key, keylen) == 0)
            return e;
    return NULL;
}

struct pagecache_entry *
pagecache_get(struct pagecache *pc, const void *key, size_t keylen, int64_t version)
{
    struct pagecache_entry *e;
    uint64_t hash;

    if (pc == NULL)
        return NULL;
    hash = hash_of(pc, key, keylen);
    pthread_mutex_lock(&pc->mu);
    (void)see_version(pc, version);
    e = find(pc, hash, key, keylen);
    if (e != NULL && e->version == version) {
        to_head(pc, e);
        atomic_fetch_add(&e->refs, 1);
        pc->hits++;
    } else {
        if (e != NULL) /* rendered before a write: never valid again */
            drop(pc, e);
        e = NULL;
        pc->misses++;
    }
    pthread_mutex_unlock(&pc->mu);
    return e;
}

void
pagecache_put(struct pagecache *pc, const void *key, size_t keylen, int64_t version,
              const void *body, size_t len)
{
    struct pagecache_entry *e, *old;
    size_t cost;

    if (pc == NULL)
        return;
    cost = sizeof *e + len + 1 + keylen;
    if (cost < len || cost > pc->max / 8)
        return;
    e = malloc(sizeof *e + len + 1 + keylen);
    if (e == NULL)
        return;
    atomic_init(&e->refs, 1);
    e->hnext = e->prev = e->next = NULL;
    e->hash = hash_of(pc, key, keylen);
    e->version = version;
    e->keylen = keylen;
    e->len = len;
    e->cost = cost;
    memcpy(e->data, body, len);
    e->data[len] = '\0';
    memcpy(e->data + len + 1, key, keylen);

    pthread_mutex_lock(&pc->mu);
    if (!see_version(pc, version)) {
        /* Rendered at a version already superseded: it could never be hit. */
        pthread_mutex_unlock(&pc->mu);
        free(e);
        return;
    }
    old = find(pc, e->hash, key, keylen);
    if (old != NULL)
        drop(pc, old);
    while (pc->bytes + cost > pc->max && pc->tail != NULL) {
        drop(pc, pc->tail);
        pc->evictions++;
    }
    e->hnext = pc->buckets[e->hash & (pc->nbuckets - 1)];
    pc->buckets[e->hash & (pc->nbuckets - 1)] = e;
    e->next = pc->head;
    if (pc->head != NULL)
        pc->head->prev = e;
    pc->head = e;
    if (pc->tail == NULL)
        pc->tail = e;
    pc->bytes += cost;
    pc->count++;
    pthread_mutex_unlock(&pc->mu);
}

const char *
pagecache_body(const struct pagecache_entry *e, size_t *len)
{
    *len = e->len;
    return e->data;
}

void
pagecache_free(struct pagecache *pc)
{
    if (pc == NULL)
        return;
    while (pc->head != NULL)
        drop(pc, pc->head);
    pthread_mutex_destroy(&pc->mu);
    free(pc->buckets);
    free(pc);
}

void
pagecache_stats_get(struct pagecache *pc, struct pagecache_stats *out)
{
    memset(out, 0, sizeof *out);
    if (pc == NULL)
        return;
    pthread_mutex_lock(&pc->mu);
    out->max_bytes = pc->max;
    out->bytes = pc->bytes;
    out->entries = pc->count;
    out->hits = pc->hits;
    out->misses = pc->misses;
    out->evictions = pc->evictions;
    pthread_mutex_unlock(&pc->mu);
}

/* ---- ETags ---------------------------------------------------------------------------------- */

static unsigned char etag_key[crypto_generichash_KEYBYTES];
static pthread_once_t etag_once = PTHREAD_ONCE_INIT;

static void
etag_init(void)
{
    randombytes_buf(etag_key, sizeof etag_key);
}

void
pagecache_etag(const void *key, size_t keylen, int64_t version, char out[PAGECACHE_ETAG_LEN + 1])
{
    crypto_generichash_state st;
    unsigned char h[16], v[8];
    char hex[2 * sizeof h + 1];

    pthread_once(&etag_once, etag_init);
    for (int i = 0; i < 8; i++)
        v[i] = (unsigned char)((uint64_t)version >> (8 * i));
    crypto_generichash_init(&st, etag_key, sizeof etag_key, sizeof h);
    crypto_generichash_update(&st, v, sizeof v);
    crypto_generichash_update(&st, key, keylen);
    crypto_generichash_final(&st, h, sizeof h);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    out[0] = '"';
    memcpy(out + 1, hex, 2 * sizeof h);
    out[PAGECACHE_ETAG_LEN - 1] = '"';
    out[PAGECACHE_ETAG_LEN] = '\0';
}

int
pagecache_etag_match(const char *inm, const char *etag)
{
    size_t elen = strlen(etag);

    if (inm == NULL)
        return 0;
    for (const char *p = inm; *p != '\0';) {
        const char *end;

        while (*p == ' ' || *p == '\t' || *p == ',')
            p++;
        if (*p == '\0')
            break;
        if (*p == '*')
            return 1;
        if (p[0] == 'W' && p[1] == '/') /* weak comparison, as RFC 9110 asks for this header */
            p += 2;
        end = p;
        if (*end == '"') {
            end = strchr(end + 1, '"');
            if (end == NULL)
                return 0;
            end++;
        } else {
            while (*end != '\0' && *end != ',' && *end != ' ')
                end++;
        }
        if ((size_t)(end - p) == elen && memcmp(p, etag, elen) == 0)
            return 1;
        p = end;
    }
    return 0;
}
