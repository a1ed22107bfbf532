/* buf.h - bounded, growable byte buffer.
 *
 * A struct buf is caller-allocated; its fields are private except `data` and `len` for reading.
 * Every buffer has a maximum, so network-fed data can never grow without limit. `data` is always
 * NUL-terminated once anything has been added (the NUL is not counted in len). Not thread-safe;
 * one owner.
 *
 * Errors are sticky: the first append that fails (ERR_TOOBIG past the maximum, ERR_INVAL for a
 * bad format) poisons the buffer. Its memory is freed (len 0, buf_cstr ""), every later append
 * is a no-op returning the same error, and buf_error() says so. A run of unchecked appends can
 * therefore never produce a body with a hole in it: check buf_error() once before using the
 * bytes. buf_reset, buf_detach and buf_free clear the poison. buf_reserve is a size hint: its
 * failure changes nothing.
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
    int err; /* the first failed append's ERR_*, sticky */
};

void buf_init(struct buf *b, size_t max);            /* cannot fail; allocates nothing */
int buf_add(struct buf *b, const void *p, size_t n); /* ERR_TOOBIG past max; poisons */
int buf_addstr(struct buf *b, const char *s);
int buf_addc(struct buf *b, char c);
int buf_printf(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Appends src's bytes; a poisoned src poisons b with its error (a part built apart). */
int buf_addbuf(struct buf *b, const struct buf *src);
void buf_reset(struct buf *b);             /* len = 0, keeps memory, clears the poison */
int buf_reserve(struct buf *b, size_t n);  /* room for n more bytes; ERR_TOOBIG past max */
int buf_error(const struct buf *b);        /* ERR_OK, or the error that poisoned b */
void buf_free(struct buf *b);              /* reusable after free */
const char *buf_cstr(const struct buf *b); /* "" when empty, never NULL */
/* Hands the bytes to the caller (who frees them) and resets b. Never NULL; "" when b was
 * poisoned (check buf_error first). */
char *buf_detach(struct buf *b, size_t *len);

/* Percent-encodes s for application/x-www-form-urlencoded bodies and URL query values. */
int buf_add_urlenc(struct buf *b, const char *s);

#endif
