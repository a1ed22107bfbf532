/* cursor.c - list cursors (see cursor.h).
 *
 * Decoded text: "o:N", "k:N", or for a sort
 *   "s:" SIG ":" POS ":" ID ":" COUNT ":" VALUE...
 * with SIG 8 lowercase hex digits, numbers in decimal, and each VALUE "n;" (NULL),
 * "i" NUMBER ";" or "t" LENGTH ":" BYTES ";". */
#include "utf8.h"
#include "cursor.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "buf.h"
#include "mem.h"

uint32_t
cursor_sort_sig(const char *entity, const struct store_sort *ss, size_t n)
{
    uint32_t h = 2166136261u; /* FNV-1a */
    const char *p;

    for (p = entity != NULL ? entity : ""; *p != '\0'; p++)
        h = (h ^ (unsigned char)*p) * 16777619u;
    for (size_t i = 0; i < n; i++) {
        h = (h ^ (unsigned char)(ss[i].desc ? '-' : '+')) * 16777619u;
        for (p = ss[i].field; *p != '\0'; p++)
            h = (h ^ (unsigned char)*p) * 16777619u;
        h = (h ^ (unsigned char)',') * 16777619u;
    }
    return h;
}

int
cursor_encode(const struct cursor *c, char *out, size_t outlen)
{
    struct buf b;
    int rc = 0, full = 0;

    if (outlen <= CURSOR_TEXT_MAX)
        return -1;
    buf_init(&b, CURSOR_RAW_MAX); /* an append past it fails: the cursor is too long */
    switch (c->kind) {
    case 'o':
    case 'k':
        if (c->n < 0)
            rc = -1;
        else
            full |= buf_printf(&b, "%c:%" PRId64, c->kind, c->n);
        break;
    case 's':
        if (c->pos < 0 || c->id < 0 || c->nvals == 0 || c->nvals > STORE_LIST_MAX_SORTS) {
            rc = -1;
            break;
        }
        full |= buf_printf(&b, "s:%08" PRIx32 ":%" PRId64 ":%" PRId64 ":%zu:", c->sig, c->pos,
                           c->id, c->nvals);
        for (size_t i = 0; i < c->nvals && rc == 0; i++) {
            const struct store_cell *v = &c->vals[i];

            if (v->kind == SC_NULL) {
                full |= buf_addstr(&b, "n;");
            } else if (v->kind == SC_INT) {
                full |= buf_printf(&b, "i%" PRId64 ";", v->i);
            } else if (v->kind == SC_TEXT && v->s != NULL) {
                size_t len = strlen(v->s);

                if (len > CURSOR_RAW_MAX) {
                    rc = -1;
                    break;
                }
                full |= buf_printf(&b, "t%zu:", len);
                full |= buf_add(&b, v->s, len);
                full |= buf_addc(&b, ';');
            } else {
                rc = -1;
            }
        }
        break;
    default:
        rc = -1;
    }
    if (rc == 0 && (full != 0 || b.len > CURSOR_RAW_MAX))
        rc = -1;
    if (rc == 0)
        sodium_bin2base64(out, outlen, (const unsigned char *)b.data, b.len,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    buf_free(&b);
    return rc;
}

/* A decimal number as cursor_encode writes it: [-]digits, no leading zero, within int64. */
static int
take_num(const char **p, const char *end, int allow_neg, int64_t *out)
{
    const char *s = *p;
    int neg = 0;
    uint64_t v = 0, lim;
    int digits = 0;

    if (s < end && *s == '-' && allow_neg) {
        neg = 1;
        s++;
    }
    lim = neg ? (uint64_t)INT64_MAX + 1 : (uint64_t)INT64_MAX;
    while (s < end && *s >= '0' && *s <= '9') {
        if (digits > 0 && v == 0)
            return -1; /* leading zero */
        if (v > (lim - (uint64_t)(*s - '0')) / 10)
            return -1;
        v = v * 10 + (uint64_t)(*s - '0');
        digits++;
        s++;
    }
    if (digits == 0 || (neg && v == 0))
        return -1;
    *out = neg ? (v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v) : (int64_t)v;
    *p = s;
    return 0;
}

static int
take_char(const char **p, const char *end, char ch)
{
    if (*p >= end || **p != ch)
        return -1;
    (*p)++;
    return 0;
}

/* Strict UTF-8 (no overlongs, surrogates or code points past U+10FFFF) without NUL. */
static int
utf8_ok(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned char c = s[i];
        size_t k;

        if (c == 0)
            return 0;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((k = utf8_char_len(s + i, n - i)) == 0)
            return 0;
        i += k;
    }
    return 1;
}

void
cursor_free(struct cursor *c)
{
    for (size_t i = 0; i < c->nvals && i < STORE_LIST_MAX_SORTS; i++) {
        if (c->vals[i].kind == SC_TEXT)
            free((char *)c->vals[i].s);
        c->vals[i].s = NULL;
    }
    c->nvals = 0;
}

int
cursor_decode(const char *text, struct cursor *out)
{
    unsigned char *raw = NULL;
    size_t tl = strlen(text), n = 0;
    const char *p, *end;
    struct cursor c;
    int64_t v;

    memset(out, 0, sizeof *out);
    memset(&c, 0, sizeof c);
    if (tl == 0 || tl > CURSOR_TEXT_MAX)
        return -1;
    /* libsodium's decoder reads some bytes past 0x7f as base64 digits: only the alphabet. */
    if (strspn(text, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != tl)
        return -1;
    raw = xmalloc(CURSOR_RAW_MAX + 1);
    if (sodium_base642bin(raw, CURSOR_RAW_MAX, text, tl, NULL, &n, NULL,
                          sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
        goto bad;
    p = (const char *)raw;
    end = p + n;
    if (n < 3 || p[1] != ':')
        goto bad;
    c.kind = p[0];
    p += 2;
    if (c.kind == 'o' || c.kind == 'k') {
        if (take_num(&p, end, 0, &c.n) != 0 || p != end)
            goto bad;
        free(raw);
        *out = c;
        return 0;
    }
    if (c.kind != 's')
        goto bad;
    /* The signature: exactly 8 lowercase hex digits. */
    if (end - p < 9)
        goto bad;
    for (int i = 0; i < 8; i++) {
        char h = p[i];
        int d = h >= '0' && h <= '9' ? h - '0' : h >= 'a' && h <= 'f' ? h - 'a' + 10 : -1;

        if (d < 0)
            goto bad;
        c.sig = (c.sig << 4) | (uint32_t)d;
    }
    p += 8;
    if (take_char(&p, end, ':') != 0 || take_num(&p, end, 0, &c.pos) != 0 ||
        take_char(&p, end, ':') != 0 || take_num(&p, end, 0, &c.id) != 0 ||
        take_char(&p, end, ':') != 0 || take_num(&p, end, 0, &v) != 0 ||
        take_char(&p, end, ':') != 0 || v < 1 || v > STORE_LIST_MAX_SORTS)
        goto bad;
    for (int64_t i = 0; i < v; i++) {
        struct store_cell *x = &c.vals[c.nvals];
        char tag;

        if (p >= end)
            goto bad;
        tag = *p++;
        x->kind = SC_NULL;
        if (tag == 'n') {
            /* NULL */
        } else if (tag == 'i') {
            if (take_num(&p, end, 1, &x->i) != 0)
                goto bad;
            x->kind = SC_INT;
        } else if (tag == 't') {
            int64_t len;

            if (take_num(&p, end, 0, &len) != 0 || take_char(&p, end, ':') != 0 || len > end - p ||
                !utf8_ok((const unsigned char *)p, (size_t)len))
                goto bad;
            x->s = xstrndup(p, (size_t)len);
            x->kind = SC_TEXT;
            p += len;
        } else {
            goto bad;
        }
        c.nvals++;
        if (take_char(&p, end, ';') != 0)
            goto bad;
    }
    if (p != end)
        goto bad;
    free(raw);
    *out = c;
    return 0;
bad:
    cursor_free(&c);
    free(raw);
    return -1;
}
