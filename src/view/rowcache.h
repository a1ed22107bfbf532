/* rowcache.h - a bounded, process-wide cache of rendered hardware list rows: for each asset id,
 * the JSON of its device fields (the part of a list row that only a sync changes), and the stamp
 * it was rendered at.
 *
 * Unlike pagecache (whole answers, one per URL, all dropped by any commit), an entry serves
 * every list, filter, sort and page that shows the asset, and outlives other tenants' syncs.
 * The stamp is the caller's name for the content (store.h: asset.dev_stamp, which changes with
 * every write of the asset's device fields); a lookup with another stamp misses and drops the
 * entry, so a hit is never another version of the row.
 *
 * Bound: the cost of the entries (bytes + about 64 per entry) never exceeds max_bytes; a put
 * evicts least recently used entries of its shard first (approximately: a hit moves an entry to
 * the front only once it has left the newest quarter of its shard). A value longer than
 * ROWCACHE_MAX_VALUE is not cached.
 *
 * Threads: every function is thread-safe. Entries are spread over ROWCACHE_SHARDS shards, one
 * mutex each, held for a lookup, a list move and the copy out of one value (about a kilobyte).
 *
 * Ownership: put copies the value and a short string kept beside it (aux: what the caller needs
 * to finish the row, e.g. its serial key); get hands copies to the caller.
 *
 * Errors: rowcache_create fails with ERR_INVAL past ROWCACHE_MAX_MB. A NULL cache (disabled:
 * api_row_cache_mb = 0) is valid everywhere: get misses, put does nothing, stats are zero.
 */
#ifndef MEMSYNC_ROWCACHE_H
#define MEMSYNC_ROWCACHE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define ROWCACHE_MAX_MB    16384
#define ROWCACHE_SHARDS    16
#define ROWCACHE_MAX_VALUE 16384
#define ROWCACHE_MAX_AUX   255

struct rowcache;

/* *out = NULL when max_bytes is 0 (disabled). */
int rowcache_create(struct rowcache **out, size_t max_bytes, struct errbuf *eb);
void rowcache_free(struct rowcache *c); /* NULL-safe */

/* When id is cached at stamp: calls emit(arg, value, len) once, under the shard's lock (emit
 * must not call back into the cache), copies the entry's aux string into aux (NUL-terminated;
 * aux[0] = '\0' and *has_aux = 0 when it had none) and returns 1. Otherwise 0 (an entry at
 * another stamp is dropped). aux has room for ROWCACHE_MAX_AUX + 1 bytes. */
int rowcache_get(struct rowcache *c, int64_t id, uint64_t stamp,
                 void (*emit)(void *arg, const char *p, size_t n), void *arg, char *aux,
                 int *has_aux);
/* Whether id is cached at stamp (it then counts as used, as by get); no hit or miss is
 * counted. */
int rowcache_has(struct rowcache *c, int64_t id, uint64_t stamp);
/* rowcache_has for n rows at once: held[i] = 1 when ids[i] is cached at stamps[i], else 0. The
 * lookups of a shard run under one lock with their memory loads overlapped: far cheaper than n
 * calls for a page's rows, whose entries are at random places. */
void rowcache_has_many(struct rowcache *c, const int64_t *ids, const uint64_t *stamps, size_t n,
                       unsigned char *held);
/* Caches a copy of value[0..len) and of the string aux (NULL: none) for id at stamp, replacing
 * what id had. Nothing is cached past ROWCACHE_MAX_VALUE or ROWCACHE_MAX_AUX. */
void rowcache_put(struct rowcache *c, int64_t id, uint64_t stamp, const char *value, size_t len,
                  const char *aux);

struct rowcache_stats {
    uint64_t hits, misses, evictions;
    size_t entries, bytes, max_bytes;
};
void rowcache_stats(struct rowcache *c, struct rowcache_stats *out);

#endif
