/* serialset.h - per database and account, the serial keys that two or more hardware assets hold:
 * a process-wide, versioned cache that lets a list page skip the duplicate-serial probe for the
 * rows whose serial nothing else has (nearly all of them).
 *
 * A set is a superset of what the probe can answer yes for (any two assets, any tenants,
 * retired or not), so "not in the set" proves "no duplicate" and a member still needs the exact
 * probe. It is valid only at the data version it was built at (store_data_version; every
 * reconcile and client write bumps it).
 *
 * Single flight: serialset_acquire names at most one builder per (database, account) at a time;
 * everyone else meanwhile gets NULL and probes every row, as without the cache. A rebuild for a
 * newer version waits max(SERIALSET_REBUILD_MIN_MS, SERIALSET_REBUILD_FACTOR x the last build's
 * duration) after the last build ended, so a sync committing tenant after tenant cannot keep a
 * core busy rebuilding (about 0.2 s per million assets).
 *
 * Bounds: SERIALSET_SLOTS (database, account) pairs, least recently used replaced;
 * SERIALSET_MAX_KEYS keys and SERIALSET_MAX_BYTES of key text per set. A build past either
 * gives up (serialset_add returns ERR_TOOBIG; publish NULL): that version then probes.
 *
 * Threads: acquire, publish, release and has are thread-safe (one mutex, held for slot lookups
 * and reference counts). A set being built belongs to its builder until published; a published
 * set is immutable and lives until its last reference is released.
 */
#ifndef MEMSYNC_SERIALSET_H
#define MEMSYNC_SERIALSET_H

#include <stddef.h>
#include <stdint.h>

#define SERIALSET_SLOTS          16
#define SERIALSET_MAX_KEYS       (1u << 20)
#define SERIALSET_MAX_BYTES      ((size_t)32 << 20)
#define SERIALSET_REBUILD_MIN_MS 2000
#define SERIALSET_REBUILD_FACTOR 10

struct serialset;

/* The set of (db, account) built at version, with a reference (serialset_release it), or NULL.
 * When NULL and *build is 1, the caller builds it now (serialset_new, serialset_add for each
 * key, serialset_publish), and must publish, even NULL on failure, to end its turn. */
struct serialset *serialset_acquire(const char *db, int64_t account_id, int64_t version,
                                    int64_t now_ms, int *build);
struct serialset *serialset_new(void);
/* Adds key[0..len) (no NUL needed); ERR_TOOBIG past the bounds, ERR_OK otherwise. */
int serialset_add(struct serialset *s, const char *key, size_t len);
/* Ends the caller's build of (db, account) at version: files s (NULL when the build failed or
 * gave up; the builder then releases its partial set itself) and hands back the builder's own
 * reference to s. started_ms and now_ms are clock_mono_ms() at the build's start and end. */
struct serialset *serialset_publish(const char *db, int64_t account_id, int64_t version,
                                    struct serialset *s, int64_t started_ms, int64_t now_ms);
int serialset_has(const struct serialset *s, const char *key, size_t len);
size_t serialset_count(const struct serialset *s);
void serialset_release(struct serialset *s); /* NULL-safe */
/* Drops every cached set (tests; sets still referenced live on until released). */
void serialset_reset(void);

#endif
