/* cursor.h - the API's list cursors: opaque base64url text a client sends back unchanged.
 *
 * Three kinds (the first byte of the decoded text):
 *   'o' positional: the next page starts at row n (older sorted pages; still honoured).
 *   'k' keyset on id: rows with id > n (lists in id order).
 *   's' keyset on a sort: the last row's sort values and id, the sort order it belongs to (a
 *       hash of the fields and directions, so a cursor is not used under another order) and
 *       the position of the next page (for the positional fallback).
 *
 * Bound: the decoded text is at most CURSOR_RAW_MAX bytes; cursor_encode refuses a cursor that
 * would be longer (a sort value of kilobytes: the caller falls back to 'o') and cursor_decode
 * refuses longer input. Decoding is strict: every byte must be where cursor_encode puts it
 * (numbers without signs, spaces or leading zeros, text valid UTF-8 without NUL, nothing
 * after the last value), else -1.
 *
 * Ownership: cursor_decode's text values are malloc'd into the cursor; cursor_free frees them.
 * cursor_encode only borrows. */
#ifndef MEMSYNC_CURSOR_H
#define MEMSYNC_CURSOR_H

#include <stddef.h>
#include <stdint.h>

#include "store.h"

#define CURSOR_RAW_MAX 4096
/* Longest text cursor_encode writes, without the NUL. */
#define CURSOR_TEXT_MAX ((CURSOR_RAW_MAX + 2) / 3 * 4)

struct cursor {
    char kind;    /* 'o', 'k' or 's' */
    int64_t n;    /* 'o': offset; 'k': last id */
    uint32_t sig; /* 's': cursor_sort_sig of the order */
    int64_t pos;  /* 's': rows before the next page */
    int64_t id;   /* 's': the last row's id */
    size_t nvals; /* 's': one per sort, at most STORE_LIST_MAX_SORTS */
    struct store_cell vals[STORE_LIST_MAX_SORTS]; /* kinds SC_NULL, SC_INT, SC_TEXT */
};

/* Writes c into out (outlen > CURSOR_TEXT_MAX); 0, or -1 when c is invalid or too long. */
int cursor_encode(const struct cursor *c, char *out, size_t outlen);
/* Parses text into c: 0, or -1 for anything cursor_encode cannot have written. */
int cursor_decode(const char *text, struct cursor *c);
void cursor_free(struct cursor *c);
/* A hash of a list's entity and sort fields with their directions. */
uint32_t cursor_sort_sig(const char *entity, const struct store_sort *ss, size_t n);

#endif
