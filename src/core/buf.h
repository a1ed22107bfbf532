/* buf.h - bounded, growable byte buffer.
 *
 * A struct buf is caller-allocated; its fields are private except `data` and `len` for reading.
 * Every buffer has a maximum: appending past it fails with ERR_TOOBIG and leaves the buffer as it
 * was, so network-fed data can never grow without limit. `data` is always NUL-terminated once
 * anything has been added (the NUL is not counted in len). Not thread-safe; one owner.
 */
#ifndef MEMSYNC_BUF_H
#define MEMSYNC_BUF_H

#include <stddef.h>

struct buf {
    char *data;
    size_t len;
    /* private */
    size_t cap;
    size_t max;
};

void buf_init(struct buf *b, size_t max);            /* cannot fail; allocates nothing */
int buf_add(struct buf *b, const void *p, size_t n); /* ERR_TOOBIG past max */
int buf_addstr(struct buf *b, const char *s);
int buf_addc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void buf_reset(struct buf *b);             /* len = 0, keeps memory */
int buf_reserve(struct buf *b, size_t n);  /* room for n more bytes; ERR_TOOBIG past max */
void buf_free(struct buf *b);              /* reusable after free */
const char *buf_cstr(const struct buf *b); /* "" when empty, never NULL */
/* Hands the bytes to the caller (who frees them) and resets b. Never NULL. */
char *buf_detach(struct buf *b, size_t *len);

/* Percent-encodes s for application/x-www-form-urlencoded bodies and URL query values. */
int buf_add_urlenc(struct buf *b, const char *s);

#endif
