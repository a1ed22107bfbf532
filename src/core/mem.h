/* mem.h - allocation for small, internally sized objects.
 *
 * These abort the process on out-of-memory (like tmux, redis and h2o do for a daemon). They are
 * only for sizes memsync chooses; any size that comes from the network or a file is checked
 * against a limit before it reaches an allocator. Thread-safe.
 */
#ifndef MEMSYNC_MEM_H
#define MEMSYNC_MEM_H

#include <stddef.h>

void *xmalloc(size_t n);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *p, size_t n);
char *xstrdup(const char *s);            /* NULL in, NULL out */
char *xstrndup(const char *s, size_t n); /* copies at most n bytes, always NUL-terminated */
char *xasprintf(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Makes room for need elements of elem bytes in the array p, which has room for *cap: when
 * need > *cap it doubles *cap (starting from MEM_GROW_FIRST) until need fits, reallocates and
 * returns the new array; otherwise returns p unchanged. Aborts on out-of-memory and when the
 * byte size overflows size_t, so a caller whose count comes from the network or a file checks
 * it against its limit first (the abort is the backstop, not the check). */
#define MEM_GROW_FIRST 16
void *mem_grow_realloc(void *p, size_t *cap, size_t need, size_t elem);
/* Inline so an append that fits (nearly all of them, on the parse paths) costs one compare. */
static inline void *
mem_grow(void *p, size_t *cap, size_t need, size_t elem)
{
    return need <= *cap ? p : mem_grow_realloc(p, cap, need, elem);
}

/* Frees *p and sets it to NULL. */
#define XFREE(p)                                                                                   \
    do {                                                                                           \
        free(p);                                                                                   \
        (p) = NULL;                                                                                \
    } while (0)

#endif
