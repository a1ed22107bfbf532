/* fixture.h - reads one of Microsoft's published example payloads from $FIXTURE_DIR, which CTest
 * points at tests/fixtures/microsoft (provenance of each file in its SOURCE.md). For cmocka tests:
 * include after <cmocka.h>. The returned text is NUL-terminated and malloc'd; the test frees it.
 * A missing or unreadable fixture fails the test with the path it looked for. */
#ifndef MEMSYNC_TEST_FIXTURE_H
#define MEMSYNC_TEST_FIXTURE_H

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"

/* The folder the fixtures live in; fails the test when CTest did not say. */
static inline const char *
fixture_dir(void)
{
    const char *dir = getenv("FIXTURE_DIR");

    if (dir == NULL || *dir == '\0')
        fail_msg("FIXTURE_DIR is not set: run this test through ctest, or set it to "
                 "tests/fixtures/microsoft");
    return dir;
}

static inline char *
fixture(const char *name, size_t *len)
{
    const char *dir = fixture_dir();
    char path[4096];
    FILE *f;
    char *data;
    long n = 0;

    snprintf(path, sizeof path, "%s/%s", dir, name);
    f = fopen(path, "rb");
    if (f == NULL) {
        int e = errno;

        fail_msg("fixture %s: cannot open (errno %d%s)", path, e,
                 e == ENOENT ? ", no such file" : "");
    }
    if (fseek(f, 0, SEEK_END) != 0 || (n = ftell(f)) < 0 || fseek(f, 0, SEEK_SET) != 0) {
        fclose(f);
        fail_msg("fixture %s: cannot read its size", path);
    }
    data = xmalloc((size_t)n + 1);
    if (fread(data, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        free(data);
        fail_msg("fixture %s: short read", path);
    }
    data[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return data;
}

#endif
