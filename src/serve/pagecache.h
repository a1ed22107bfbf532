/* pagecache.h - a bounded, process-wide cache of whole rendered API answers (list pages), and
 * their ETags.
 *
 * Keys: opaque bytes built by the caller, which must name everything an answer depends on
 * besides the stored data: the account, the route and the query (api.c's list_key). Each entry
 * also records the data version (store_data_version) it was rendered at; a lookup at another
 * version misses and drops the entry. The version is bumped by every committed client or
 * integration write of any process, so a hit is never older than the last commit.
 * Callers read the version before rendering: a write committed in between only files a newer
 * answer under an older version, which no later lookup asks for. Versions only grow, so the
 * first request at a newer version frees every older entry at once, and a put at a version
 * older than one already seen is dropped (an empty cache accepts any version: a restored
 * database may go back).
 *
 * Bound: the cost of the cached entries (body + key + about 100 bytes) never exceeds max_bytes;
 * a put evicts least recently used entries first. A body costing more than max_bytes / 8 is not
 * cached. An entry evicted while a response still sends it lives on until released, outside the
 * bound (at most one per connection being answered).
 *
 * Threads: every function is thread-safe (one mutex, held for a hash lookup and list moves;
 * copies happen outside it). Entries are reference-counted: a hit hands the caller one
 * reference, which it releases exactly once (pagecache_release, from any thread, e.g. MHD's
 * free callback once the body is sent); until then the body is valid and unchanged.
 *
 * Ownership: pagecache_put copies key and body. pagecache_free may run with references
 * outstanding; those entries are freed at their last release.
 *
 * Errors: pagecache_create fails with ERR_INVAL past PAGECACHE_MAX_MB; put is best effort (an
 * oversized body is not cached). A NULL cache (disabled: api_cache_mb = 0) is valid everywhere:
 * get misses, put does nothing, stats are zero.
 *
 * Only answers safe for anyone presenting the same key may be put: 200 answers without secrets
 * (the caller decides; api.c caches the hardware list and the insights answer).
 *
 * Single flight is not the cache's: api.c runs the costly insights answer through flight.h (the
 * key plus the version), so the requests that miss together render it once.
 */
#ifndef MEMSYNC_PAGECACHE_H
#define MEMSYNC_PAGECACHE_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define PAGECACHE_MAX_MB 16384
/* A strong ETag's length: a quote, 32 hex digits, a quote. */
#define PAGECACHE_ETAG_LEN 34

struct pagecache;
struct pagecache_entry;

/* *out = NULL when max_bytes is 0 (disabled). */
int pagecache_create(struct pagecache **out, size_t max_bytes, struct errbuf *eb);
void pagecache_free(struct pagecache *pc); /* NULL-safe */

/* A referenced entry for (key, version), or NULL. */
struct pagecache_entry *pagecache_get(struct pagecache *pc, const void *key, size_t keylen,
                                      int64_t version);
/* Caches a copy of body under (key, version), replacing an older one. */
void pagecache_put(struct pagecache *pc, const void *key, size_t keylen, int64_t version,
                   const void *body, size_t len);
const char *pagecache_body(const struct pagecache_entry *e, size_t *len);
void pagecache_release(void *entry); /* NULL-safe; void * to serve as a free callback */

struct pagecache_stats {
    size_t max_bytes;
    size_t bytes;
    size_t entries;
    uint64_t hits;
    uint64_t misses;
    uint64_t evictions;
};
void pagecache_stats_get(struct pagecache *pc, struct pagecache_stats *out);

/* The ETag of the answer for (key, version): a keyed hash (a random key per process, so tags
 * reveal nothing and do not outlive the process that rendered them). Needs no cache. */
void pagecache_etag(const void *key, size_t keylen, int64_t version,
                    char out[PAGECACHE_ETAG_LEN + 1]);
/* 1 when an If-None-Match header value (a list of tags, W/ allowed, or *) names etag. */
int pagecache_etag_match(const char *if_none_match, const char *etag);

#endif
