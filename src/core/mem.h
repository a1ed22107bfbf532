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

/* Frees *p and sets it to NULL. */
#define XFREE(p)                                                                                   \
    do {                                                                                           \
        free(p);                                                                                   \
        (p) = NULL;                                                                                \
    } while (0)

#endif
