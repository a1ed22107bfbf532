/* jsonarena.h - a per-thread bump arena for the json_t trees of parsed responses.
 *
 * Why: a 1,000-device page becomes ~60,000 small jansson allocations, each freed again a moment
 * later; their malloc/free was a tenth of the parse's instructions.
 *
 * jsonarena_install() points jansson's allocator (json_set_alloc_funcs, process-wide) at this
 * module; call it once at start-up before a second thread exists (jsonarena_loadb also installs
 * it, for programs that never called it). From then on:
 *   - outside jsonarena_loadb, jansson gets plain malloc/free on every thread;
 *   - inside jsonarena_loadb, jansson's allocations on the calling thread come from that
 *     thread's arena (chunks of JSONARENA_CHUNK bytes; a request over a quarter chunk still
 *     goes to malloc);
 *   - freeing arena memory is a no-op, freeing anything else goes to free();
 *   - when the last arena allocation of a thread has been freed (every tree it parsed was
 *     decref'd), the arena rewinds and the next parse reuses its chunks without new mallocs.
 * Contract for callers of jsonarena_loadb: decref the tree on the thread that parsed it, and
 * keep no part of it (json_incref) past the decref; copy strings out (strdup) instead. Values
 * added to such a tree later come from malloc and are handled like any other. A tree that is
 * never freed only keeps the arena from rewinding (memory grows; nothing is corrupted).
 */
#ifndef MEMSYNC_JSONARENA_H
#define MEMSYNC_JSONARENA_H

#include <jansson.h>
#include <stddef.h>

#include "err.h"

#define JSONARENA_CHUNK ((size_t)1 << 20)

void jsonarena_install(void); /* idempotent, thread-safe */

/* json_loadb with the tree allocated in the calling thread's arena. */
json_t *jsonarena_loadb(const char *buf, size_t len, size_t flags, json_error_t *error);

/* Between jsonarena_begin() and jsonarena_end() every jansson allocation of the calling thread
 * comes from its arena, under the same contract as jsonarena_loadb (build, dump and decref on
 * this thread; keep nothing). Used around the API's list answers, whose trees of hundreds of
 * small objects are built, dumped and freed at once. Pairs nest. jsonarena_end() returns how
 * many arena allocations are still alive: 0 once the outermost pair's trees were freed, unless
 * one leaked or was kept (the arena then cannot rewind: memory grows until it is freed). */
void jsonarena_begin(void);
size_t jsonarena_end(void);

/* Frees the calling thread's chunks when nothing in them is alive; 0, or ERR_EXISTS (and
 * nothing freed) while a tree still lives. Call before a thread that parsed ends. */
int jsonarena_release(void);

struct jsonarena_stats {
    size_t chunks;  /* chunks the thread holds */
    size_t live;    /* arena allocations not yet freed */
    size_t used;    /* bytes handed out since the last rewind */
    size_t rewinds; /* times the arena went back to its first chunk */
    size_t mallocs; /* chunks ever allocated by this thread */
};
void jsonarena_stats(struct jsonarena_stats *out); /* the calling thread's */

#endif
