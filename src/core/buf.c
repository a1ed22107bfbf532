#include "buf.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"

void
buf_init(struct buf *b, size_t max)
{
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->max = max;
    b->err = ERR_OK;
}

/* The first failed append frees the bytes: a body missing a piece is never handed on. */
static int
poison(struct buf *b, int err)
{
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->err = err;
    return err;
}

static int
reserve(struct buf *b, size_t extra)
{
    size_t need, cap;

    if (b->err != ERR_OK)
        return b->err;
    if (extra > b->max || b->len > b->max - extra)
        return ERR_TOOBIG;
    need = b->len + extra + 1;
    if (need <= b->cap)
        return ERR_OK;
    cap = b->cap ? b->cap : 256;
    while (cap < need)
        cap *= 2;
    if (cap > b->max + 1)
        cap = b->max + 1;
    b->data = xrealloc(b->data, cap);
    b->cap = cap;
    return ERR_OK;
}

int
buf_reserve(struct buf *b, size_t n)
{
    return reserve(b, n);
}

int
buf_error(const struct buf *b)
{
    return b->err;
}

int
buf_add(struct buf *b, const void *p, size_t n)
{
    int rc;

    if ((rc = reserve(b, n)) != ERR_OK)
        return poison(b, rc);
    if (n > 0)
        memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = '\0';
    return ERR_OK;
}

int
buf_addstr(struct buf *b, const char *s)
{
    return buf_add(b, s, strlen(s));
}

int
buf_addbuf(struct buf *b, const struct buf *src)
{
    if (b->err != ERR_OK)
        return b->err;
    if (src->err != ERR_OK)
        return poison(b, src->err);
    return buf_add(b, src->data, src->len);
}

int
buf_addc(struct buf *b, char c)
{
    return buf_add(b, &c, 1);
}

int
buf_printf(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int n, rc;

    if (b->err != ERR_OK)
        return b->err;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return poison(b, ERR_INVAL);
    if ((rc = reserve(b, (size_t)n)) != ERR_OK)
        return poison(b, rc);
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return ERR_OK;
}

void
buf_reset(struct buf *b)
{
    b->len = 0;
    b->err = ERR_OK;
    if (b->data != NULL)
        b->data[0] = '\0';
}

void
buf_free(struct buf *b)
{
    if (b == NULL)
        return;
    free(b->data);
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->err = ERR_OK;
}

const char *
buf_cstr(const struct buf *b)
{
    return b->data != NULL ? b->data : "";
}

char *
buf_detach(struct buf *b, size_t *len)
{
    char *p = b->data != NULL ? b->data : xstrdup("");

    if (len != NULL)
        *len = b->len;
    b->data = NULL;
    b->len = 0;
    b->cap = 0;
    b->err = ERR_OK;
    return p;
}

int
buf_add_urlenc(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *p = (const unsigned char *)s; *p != '\0'; p++) {
        int rc;

        if ((*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            rc = buf_addc(b, (char)*p);
        } else {
            char enc[3] = {'%', hex[*p >> 4], hex[*p & 15]};
            rc = buf_add(b, enc, 3);
        }
        if (rc != ERR_OK)
            return rc;
    }
    return ERR_OK;
}
