/* lifecycle.c - OS end-of-support lookup over the table generated from data/os-lifecycle.csv. */
#include "lifecycle.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

struct lifecycle_row {
    const char *family;
    const char *release;
    const char *match;
    const char *scope;
    const char *end_of_support;
    const char *extended_end;
};

static const struct lifecycle_row lifecycle_rows[] = {
#include "lifecycle_data.inc"
};

#define LIFECYCLE_NROWS   (sizeof lifecycle_rows / sizeof lifecycle_rows[0])
#define LIFECYCLE_NUM_MAX 999999

/* Lower rank wins when one build has several rows and Intune does not tell the edition.
 * "Pro/Enterprise/Education" (Windows 10 22H2) ranks with Home/Pro: Home cannot enrol in Intune
 * MDM, and both rows share the end date; only the paid ESU end differs. */
static int
scope_rank(const char *family, const char *scope)
{
    if (strcmp(family, "windows_server") == 0)
        return 5;
    if (strcmp(scope, "Home/Pro") == 0 || strcmp(scope, "Home/Pro/Enterprise/Education") == 0 ||
        strcmp(scope, "Pro/Enterprise/Education") == 0)
        return 0;
    if (strcmp(scope, "Home") == 0)
        return 1;
    if (strcmp(scope, "Enterprise/Education") == 0)
        return 2;
    return 3; /* LTSC variants */
}

/* Parses up to max dot-separated decimal fields from s; returns how many, -1 if malformed.
 * Stops at the first character that is neither digit nor '.' only after a complete field
 * (Android sometimes appends text, e.g. "14 (UP1A)"). */
static int
parse_fields(const char *s, long *f, int max)
{
    int n = 0;

    while (n < max) {
        long v = 0;
        int digits = 0;

        while (*s >= '0' && *s <= '9') {
            v = v * 10 + (*s - '0');
            if (v > LIFECYCLE_NUM_MAX)
                return -1;
            s++;
            digits++;
        }
        if (digits == 0)
            return n > 0 ? n : -1;
        f[n++] = v;
        if (*s != '.')
            break;
        s++;
    }
    return n;
}

static void
fill(const struct lifecycle_row *r, struct lifecycle_info *out)
{
    memset(out, 0, sizeof *out);
    snprintf(out->release, sizeof out->release, "%s", r->release);
    snprintf(out->end_of_support, sizeof out->end_of_support, "%s", r->end_of_support);
    snprintf(out->extended_end, sizeof out->extended_end, "%s", r->extended_end);
}

static int
lookup_windows(const char *version, struct lifecycle_info *out)
{
    const struct lifecycle_row *best = NULL;
    int best_rank = 0;
    long f[4];
    char build[16];

    /* "10.0.<build>.<revision>"; the build alone identifies the release. */
    if (parse_fields(version, f, 4) < 3)
        return 0;
    snprintf(build, sizeof build, "%ld", f[2]);
    for (size_t i = 0; i < LIFECYCLE_NROWS; i++) {
        const struct lifecycle_row *r = &lifecycle_rows[i];
        int rank;

        if (strncmp(r->family, "windows", 7) != 0 || strcmp(r->match, build) != 0)
            continue;
        rank = scope_rank(r->family, r->scope);
        if (best == NULL || rank < best_rank) {
            best = r;
            best_rank = rank;
        }
    }
    if (best == NULL)
        return 0; /* preview or unknown build: never rounded to a neighbour */
    fill(best, out);
    return 1;
}

static int
lookup_major(const char *family, const char *version, struct lifecycle_info *out)
{
    long f[2] = {0, 0};
    int n = parse_fields(version, f, 2);
    char key[32];

    if (n < 1)
        return 0;
    if (strcmp(family, "macos") == 0 && f[0] == 10)
        snprintf(key, sizeof key, "10.%ld", n > 1 ? f[1] : 0L);
    else if (strcmp(family, "android") == 0 && f[0] == 8)
        snprintf(key, sizeof key, "8.%ld", n > 1 ? f[1] : 0L);
    else if (strcmp(family, "android") == 0 && f[0] == 12 && n > 1 && f[1] == 1)
        snprintf(key, sizeof key, "12.1");
    else
        snprintf(key, sizeof key, "%ld", f[0]);
    for (size_t i = 0; i < LIFECYCLE_NROWS; i++) {
        const struct lifecycle_row *r = &lifecycle_rows[i];

        if (strcmp(r->family, family) == 0 && strcmp(r->match, key) == 0) {
            fill(r, out);
            return 1;
        }
    }
    return 0;
}

int
lifecycle_lookup(const char *os_name, const char *os_version, struct lifecycle_info *out)
{
    if (os_name == NULL || os_version == NULL || out == NULL)
        return 0;
    while (*os_version == ' ')
        os_version++;
    if (strcasecmp(os_name, "Windows") == 0)
        return lookup_windows(os_version, out);
    if (strcasecmp(os_name, "macOS") == 0)
        return lookup_major("macos", os_version, out);
    if (strcasecmp(os_name, "iOS") == 0)
        return lookup_major("ios", os_version, out);
    if (strcasecmp(os_name, "iPadOS") == 0)
        return lookup_major("ipados", os_version, out);
    if (strncasecmp(os_name, "Android", 7) == 0)
        return lookup_major("android", os_version, out);
    return 0;
}
