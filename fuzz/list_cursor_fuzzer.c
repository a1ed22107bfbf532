/* list_cursor_fuzzer.c - the API's list cursor as a client sends it (query parameter `cursor`):
 * cursor_decode accepts only what cursor_encode writes, so whatever it accepts encodes back to
 * the very same text, and decoding that again gives the same cursor. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cursor.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
same_cursor(const struct cursor *a, const struct cursor *b)
{
    if (a->kind != b->kind || a->n != b->n || a->sig != b->sig || a->pos != b->pos ||
        a->id != b->id || a->nvals != b->nvals)
        return 0;
    for (size_t i = 0; i < a->nvals; i++) {
        if (a->vals[i].kind != b->vals[i].kind)
            return 0;
        if (a->vals[i].kind == SC_INT && a->vals[i].i != b->vals[i].i)
            return 0;
        if (a->vals[i].kind == SC_TEXT && strcmp(a->vals[i].s, b->vals[i].s) != 0)
            return 0;
    }
    return 1;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char out[CURSOR_TEXT_MAX + 1];
    struct cursor c, again;
    char *text;

    /* A query parameter: NUL-terminated, bounded by the request head. */
    if (size > 2 * CURSOR_TEXT_MAX)
        size = 2 * CURSOR_TEXT_MAX;
    text = malloc(size + 1);
    ASSERT(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    memset(&c, 0, sizeof c);
    if (cursor_decode(text, &c) == 0) {
        ASSERT(c.kind == 'o' || c.kind == 'k' || c.kind == 's');
        ASSERT(c.nvals <= STORE_LIST_MAX_SORTS);
        ASSERT(cursor_encode(&c, out, sizeof out) == 0);
        ASSERT(strcmp(out, text) == 0);
        memset(&again, 0, sizeof again);
        ASSERT(cursor_decode(out, &again) == 0);
        ASSERT(same_cursor(&c, &again));
        cursor_free(&again);
    }
    cursor_free(&c);
    free(text);
    return 0;
}
