/* hash.h - the hash of the in-memory open-addressing tables of the sync and the store (the
 * tenant's app catalogue, the reconcile's software titles).
 *
 * Eight bytes a step. Seeded at random once per process, so that keys from the network (app
 * ids and names) cannot be chosen in advance to collide; the tables are also bounded by the
 * tenant's size. Not stable across processes and not a cryptographic hash: nothing may store
 * or compare it outside the process. Thread-safe (the seed is set once, under pthread_once).
 */
#ifndef MEMSYNC_HASH_H
#define MEMSYNC_HASH_H

#include <stddef.h>
#include <stdint.h>

uint64_t hash_bytes(const void *p, size_t len);

#endif
