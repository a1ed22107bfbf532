/* form_value_fuzzer.c - the web UI's form decoding (application/x-www-form-urlencoded bodies and
 * query strings as browsers and attackers send them): ui_form_value never reads past the body,
 * and a value it finds is a NUL-terminated string no longer than the body. Input: the key, a
 * newline, the body. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "ui.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nl = memchr(data, '\n', size);
    size_t klen = nl != NULL ? (size_t)(nl - data) : 0;
    char *key, *body, *v;
    size_t blen;

    /* The body as httpd hands it over: at most 64 KiB, NUL-terminated (NULs inside stop it). */
    if (size > 65536)
        size = 65536;
    if (klen > size)
        klen = size;
    key = malloc(klen + 1);
    ASSERT(key != NULL);
    memcpy(key, data, klen);
    key[klen] = '\0';
    blen = nl != NULL && klen < size ? size - klen - 1 : size;
    body = malloc(blen + 1);
    ASSERT(body != NULL);
    memcpy(body, data + size - blen, blen);
    body[blen] = '\0';

    v = ui_form_value(body, key);
    if (v != NULL) {
        ASSERT(strlen(v) <= strlen(body));
        free(v);
    }
    /* The keys the UI reads on every form. */
    v = ui_form_value(body, "csrf");
    free(v);
    v = ui_form_value(body, "next");
    free(v);
    free(key);
    free(body);
    return 0;
}
