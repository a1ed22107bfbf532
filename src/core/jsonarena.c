/* jsonarena.c - see jsonarena.h. */
#include "jsonarena.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"

#define ALIGN 16

/* Under AddressSanitizer a rewound arena is poisoned, so a tree used after its decref is still
 * reported as a use after free. */
#if defined(__SANITIZE_ADDRESS__)
#define ARENA_ASAN 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
#define ARENA_ASAN 1
#endif
#endif
#ifdef ARENA_ASAN
#include <sanitizer/asan_interface.h>
#define POISON(p, n)   ASAN_POISON_MEMORY_REGION((p), (n))
#define UNPOISON(p, n) ASAN_UNPOISON_MEMORY_REGION((p), (n))
#else
#define POISON(p, n)   ((void)(p), (void)(n))
#define UNPOISON(p, n) ((void)(p), (void)(n))
#endif

struct chunk {
    char *base;
    size_t cap;
};

struct arena {
    struct chunk *chunks;
    size_t n, cap;
    size_t cur;  /* chunk being filled */
    size_t off;  /* bytes used in chunks[cur] */
    size_t used; /* bytes handed out since the last rewind */
    size_t live;
    size_t rewinds, mallocs;
    int active;
};

static _Thread_local struct arena tl;
static pthread_once_t install_once = PTHREAD_ONCE_INIT;

static void *
arena_alloc(size_t size)
{
    struct arena *a = &tl;
    size_t need = (size + (ALIGN - 1)) & ~(size_t)(ALIGN - 1);
    void *p;

    if (!a->active || size == 0 || need > JSONARENA_CHUNK / 4)
        return malloc(size);
    while (a->cur < a->n && a->chunks[a->cur].cap - a->off < need) {
        a->cur++;
        a->off = 0;
    }
    if (a->cur == a->n) {
        char *base = malloc(JSONARENA_CHUNK);

        if (base == NULL)
            return NULL;
        a->chunks = mem_grow(a->chunks, &a->cap, a->n + 1, sizeof *a->chunks);
        POISON(base, JSONARENA_CHUNK);
        a->chunks[a->n++] = (struct chunk){base, JSONARENA_CHUNK};
        a->mallocs++;
        a->off = 0;
    }
    p = a->chunks[a->cur].base + a->off;
    UNPOISON(p, size);
    a->off += need;
    a->used += need;
    a->live++;
    return p;
}

static void
arena_free(void *p)
{
    struct arena *a = &tl;
    uintptr_t u = (uintptr_t)p;

    if (p == NULL)
        return;
    for (size_t i = 0; i < a->n; i++) {
        uintptr_t b = (uintptr_t)a->chunks[i].base;

        if (u >= b && u < b + a->chunks[i].cap) {
            if (--a->live == 0) {
                for (size_t k = 0; k < a->n; k++)
                    POISON(a->chunks[k].base, a->chunks[k].cap);
                a->cur = 0;
                a->off = 0;
                a->used = 0;
                a->rewinds++;
            }
            return;
        }
    }
    free(p);
}

static void
install(void)
{
    json_set_alloc_funcs(arena_alloc, arena_free);
}

void
jsonarena_install(void)
{
    pthread_once(&install_once, install);
}

json_t *
jsonarena_loadb(const char *buf, size_t len, size_t flags, json_error_t *error)
{
    json_t *root;

    jsonarena_install();
    tl.active++;
    root = json_loadb(buf, len, flags, error);
    tl.active--;
    return root;
}

void
jsonarena_begin(void)
{
    jsonarena_install();
    tl.active++;
}

size_t
jsonarena_end(void)
{
    if (tl.active > 0)
        tl.active--;
    return tl.live;
}

int
jsonarena_release(void)
{
    if (tl.live != 0)
        return ERR_EXISTS;
    for (size_t i = 0; i < tl.n; i++) {
        UNPOISON(tl.chunks[i].base, tl.chunks[i].cap);
        free(tl.chunks[i].base);
    }
    free(tl.chunks);
    memset(&tl, 0, sizeof tl);
    return ERR_OK;
}

void
jsonarena_stats(struct jsonarena_stats *out)
{
    out->chunks = tl.n;
    out->live = tl.live;
    out->used = tl.used;
    out->rewinds = tl.rewinds;
    out->mallocs = tl.mallocs;
}
