#include "expiry.h"

#include <stdio.h>

#include "clock.h"

void
expiry_check(int64_t expires_at, int64_t now, struct expiry *out)
{
    char buf[32];
    int64_t left;

    out->date[0] = '\0';
    out->days_left = 0;
    if (expires_at == TS_NULL) {
        out->level = EXPIRY_UNKNOWN;
        return;
    }
    clock_fmt(expires_at, buf, sizeof buf);
    snprintf(out->date, sizeof out->date, "%.10s", buf);
    left = expires_at - now;
    /* Floor division: 1 second past expiry is day -1, not day 0. */
    out->days_left = left >= 0 ? left / 86400 : -((-left + 86399) / 86400);
    if (left <= 0)
        out->level = EXPIRY_EXPIRED;
    else if (out->days_left <= 7)
        out->level = EXPIRY_WARN_7;
    else if (out->days_left <= 14)
        out->level = EXPIRY_WARN_14;
    else if (out->days_left <= 30)
        out->level = EXPIRY_WARN_30;
    else
        out->level = EXPIRY_OK;
}

const char *
expiry_level_name(enum expiry_level l)
{
    switch (l) {
    case EXPIRY_OK:
        return "ok";
    case EXPIRY_WARN_30:
        return "warn_30";
    case EXPIRY_WARN_14:
        return "warn_14";
    case EXPIRY_WARN_7:
        return "warn_7";
    case EXPIRY_EXPIRED:
        return "expired";
    default:
        return "unknown";
    }
}

void
expiry_message(const struct expiry *e, const char *label, int64_t integration_id, const char *which,
               char *out, size_t outlen)
{
    if (e->level == EXPIRY_EXPIRED)
        snprintf(out, outlen,
                 "The %s key expired on %s: syncs fail until it is replaced. Create a new secret "
                 "in Entra ID > App registrations > Certificates & secrets and run `memsync "
                 "integration rotate-secret %lld --%s --secret-file FILE`.",
                 label, e->date, (long long)integration_id, which);
    else if (e->level == EXPIRY_WARN_7 || e->level == EXPIRY_WARN_14 || e->level == EXPIRY_WARN_30)
        snprintf(out, outlen,
                 "The %s key expires in %lld day%s (%s): create a new secret and run `memsync "
                 "integration rotate-secret %lld --%s --secret-file FILE` before then.",
                 label, (long long)e->days_left, e->days_left == 1 ? "" : "s", e->date,
                 (long long)integration_id, which);
    else if (outlen > 0)
        out[0] = '\0';
}
