/* expiry.h - client-secret expiry warnings (docs/SETUP.md): the same
 * levels and words everywhere (status, API, UI, log, /metrics).
 *
 * Levels: ok (more than 30 days left), warn_30 (30 days or less), warn_14 (14 or less), warn_7
 * (7 or less), expired (the expiry instant has come), unknown (no date). Days are whole days left,
 * rounded down. Pure, thread-safe.
 */
#ifndef MEMSYNC_EXPIRY_H
#define MEMSYNC_EXPIRY_H

#include <stddef.h>
#include <stdint.h>

enum expiry_level {
    EXPIRY_UNKNOWN,
    EXPIRY_OK,
    EXPIRY_WARN_30,
    EXPIRY_WARN_14,
    EXPIRY_WARN_7,
    EXPIRY_EXPIRED
};

struct expiry {
    enum expiry_level level;
    int64_t days_left; /* may be negative once expired; 0 when unknown */
    char date[11];     /* "YYYY-MM-DD" or "" */
};

void expiry_check(int64_t expires_at, int64_t now, struct expiry *out);
const char *expiry_level_name(enum expiry_level l); /* "ok", "warn_30", ..., "expired", "unknown" */
/* One sentence for people, e.g. "The Sync App key expires in 13 days (2027-01-09): create a new
 * secret and run `memsync integration rotate-secret 1 --sync`." Empty for ok/unknown. */
void expiry_message(const struct expiry *e, const char *label, int64_t integration_id,
                    const char *which, char *out, size_t outlen);

#endif
