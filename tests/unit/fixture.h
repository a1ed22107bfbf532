/* fixture.h - reads one of Microsoft's published example payloads from $FIXTURE_DIR (the
 * shared reference folder; never copied into the repository). For cmocka tests: include after
 * <cmocka.h>. The returned text is NUL-terminated and malloc'd; the test frees it. */
#ifndef MEMSYNC_TEST_FIXTURE_H
#define MEMSYNC_TEST_FIXTURE_H

#include <stdio.h>
#include <stdlib.h>

#include "mem.h"

static inline char *
fixture(const char *name, size_t *len)
{
    const char *dir = getenv("FIXTURE_DIR");
    char path[4096];
    FILE *f;
    char *data;
    long n;

    if (dir == NULL)
        fail_msg("FIXTURE_DIR is not set");
    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (f == NULL)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    data = xmalloc((size_t)n + 1);
    assert_int_equal(fread(data, 1, (size_t)n, f), (size_t)n);
    data[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return data;
}

#endif
