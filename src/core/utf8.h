/* utf8.h - the one strict UTF-8 check of the project (RFC 3629: no overlong forms, no UTF-16
 * surrogates, nothing past U+10FFFF), for the parsers, the API's writers, the cursors and the
 * search. Pure functions; any thread.
 */
#ifndef MEMSYNC_UTF8_H
#define MEMSYNC_UTF8_H

#include <stddef.h>

/* Length (1-4) of the well-formed character that starts s[0..n), 0 when it is ill-formed or
 * n is 0. An ASCII byte, NUL included, is 1. */
size_t utf8_char_len(const unsigned char *s, size_t n);

#endif
