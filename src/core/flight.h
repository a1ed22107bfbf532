/* flight.h - single flight: of the threads that need the same costly result at once, one (the
 * leader) computes it and the others wait for its answer instead of computing it too.
 *
 * A struct flight is one group of keys (one per cache), usually a static initialised with
 * FLIGHT_INIT(slots). A key is opaque bytes that must name everything the result depends on
 * (for a cache, its data version too). flight_begin answers one of:
 *   FLIGHT_LEADER  the caller computes the result, then calls flight_finish exactly once with
 *                  the ticket it got, ok or not (a leader that may have raced a finished flight
 *                  checks its cache once more first, and finishes with what it found);
 *   FLIGHT_RESULT  the leader's result is in *out (out->bytes is the caller's to free);
 *   FLIGHT_ALONE   the caller computes without a flight: every slot is taken, the key is longer
 *                  than FLIGHT_KEY_MAX, or the wait ran out (a slow leader).
 * When a leader fails (flight_finish with ok = 0), its waiters start over: one of them leads
 * the next attempt, the others wait for it, until the deadline of their first call.
 *
 * Bounds: at most `slots` keys (FLIGHT_MAX_SLOTS) in flight per group; a waiter waits at most
 * wait_ms; a result's bytes are copied once for each waiter (at most FLIGHT_MAX_BYTES; larger
 * results are handed to nobody: the waiters compute alone).
 *
 * Threads: every function is thread-safe (one mutex and condition variable per group, held for
 * slot lookups and copies only, never while a result is computed). A leader must not call
 * flight_begin again for the same key before it finishes: it would wait for itself.
 * Errors: none; the roles above say everything.
 */
#ifndef MEMSYNC_FLIGHT_H
#define MEMSYNC_FLIGHT_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#define FLIGHT_MAX_SLOTS 32
#define FLIGHT_KEY_MAX   16384
#define FLIGHT_MAX_BYTES ((size_t)64 << 20)

enum flight_role { FLIGHT_LEADER, FLIGHT_RESULT, FLIGHT_ALONE };

/* What the leader computed: a number and/or bytes. */
struct flight_result {
    int64_t value;
    char *bytes; /* NUL-terminated copy, or NULL; the receiver frees it */
    size_t len;
};

struct flight_slot { /* private */
    char *key;       /* NULL: free */
    size_t keylen;
    int state; /* running, done or failed */
    unsigned waiters;
    struct flight_result res;
};

struct flight { /* private: use FLIGHT_INIT */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    size_t nslots;
    struct flight_slot slot[FLIGHT_MAX_SLOTS];
};

#define FLIGHT_INIT(slots)                                                                         \
    {                                                                                              \
        PTHREAD_MUTEX_INITIALIZER, PTHREAD_COND_INITIALIZER, (slots),                              \
        {                                                                                          \
            {                                                                                      \
                0                                                                                  \
            }                                                                                      \
        }                                                                                          \
    }

/* Joins the flight of key (see above). *ticket is the leader's slot, else -1. */
enum flight_role flight_begin(struct flight *f, const void *key, size_t keylen, int64_t wait_ms,
                              struct flight_result *out, int *ticket);
/* Ends a leader's turn (ticket < 0: nothing to do) and wakes its waiters: ok hands them value
 * and a copy of bytes[0..len) (bytes may be NULL); !ok makes them start over. */
void flight_finish(struct flight *f, int ticket, int ok, int64_t value, const void *bytes,
                   size_t len);

#endif
