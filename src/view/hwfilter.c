/* hwfilter.c - derived hardware filters, the tests insight figures count with. */
#include "hwfilter.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "lifecycle.h"

#define DAY 86400

void
hwfilter_init(struct hwfilter *f, int64_t now)
{
    memset(f, 0, sizeof *f);
    f->now = now;
    f->encrypted = -1;
}

int
hwfilter_active(const struct hwfilter *f)
{
    return f->stale_days > 0 || f->os != HWF_OS_ANY || f->serial != HWF_SERIAL_ANY ||
           f->encrypted >= 0 || f->compliance[0] != '\0';
}

static int
parse_days(const char *s, int *out)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > HWFILTER_MAX_DAYS)
        return -1;
    *out = (int)v;
    return 0;
}

int
hwfilter_arg(struct hwfilter *f, const char *key, const char *value, struct errbuf *eb)
{
    if (strcmp(key, "stale_days") == 0) {
        if (value[0] == '\0') {
            f->stale_days = 0;
            return 1;
        }
        if (parse_days(value, &f->stale_days) != 0)
            return err_set(eb, ERR_INVAL, "stale_days is a whole number of days from 1 to %d",
                           HWFILTER_MAX_DAYS);
        return 1;
    }
    if (strcmp(key, "os_support") == 0) {
        if (value[0] == '\0')
            f->os = HWF_OS_ANY;
        else if (strcmp(value, "past") == 0)
            f->os = HWF_OS_PAST;
        else if (strncmp(value, "ends_within:", 12) == 0 &&
                 parse_days(value + 12, &f->os_within_days) == 0)
            f->os = HWF_OS_ENDS;
        else
            return err_set(eb, ERR_INVAL, "os_support is past or ends_within:DAYS (1 to %d)",
                           HWFILTER_MAX_DAYS);
        return 1;
    }
    if (strcmp(key, "serial") == 0) {
        if (value[0] == '\0')
            f->serial = HWF_SERIAL_ANY;
        else if (strcmp(value, "missing") == 0)
            f->serial = HWF_SERIAL_MISSING;
        else if (strcmp(value, "shared") == 0)
            f->serial = HWF_SERIAL_SHARED;
        else
            return err_set(eb, ERR_INVAL, "serial is missing or shared");
        return 1;
    }
    if (strcmp(key, "encrypted") == 0) {
        if (value[0] == '\0')
            f->encrypted = -1;
        else if (strcmp(value, "true") == 0)
            f->encrypted = 1;
        else if (strcmp(value, "false") == 0)
            f->encrypted = 0;
        else
            return err_set(eb, ERR_INVAL, "encrypted is true or false");
        return 1;
    }
    if (strcmp(key, "compliance") == 0) {
        size_t n = strlen(value);

        if (n >= sizeof f->compliance)
            return err_set(eb, ERR_INVAL, "compliance is compliant, not_compliant or a state");
        for (size_t i = 0; i < n; i++)
            if (!((value[i] >= 'a' && value[i] <= 'z') || (value[i] >= 'A' && value[i] <= 'Z') ||
                  value[i] == '_'))
                return err_set(eb, ERR_INVAL, "compliance is compliant, not_compliant or a state");
        memcpy(f->compliance, value, n + 1);
        return 1;
    }
    return 0;
}

void
hwfilter_query(const struct hwfilter *f, struct buf *b)
{
    if (f->stale_days > 0)
        buf_printf(b, "&stale_days=%d", f->stale_days);
    if (f->os == HWF_OS_PAST)
        buf_addstr(b, "&os_support=past");
    else if (f->os == HWF_OS_ENDS)
        buf_printf(b, "&os_support=ends_within:%d", f->os_within_days);
    if (f->serial != HWF_SERIAL_ANY)
        buf_printf(b, "&serial=%s", f->serial == HWF_SERIAL_MISSING ? "missing" : "shared");
    if (f->encrypted >= 0)
        buf_printf(b, "&encrypted=%s", f->encrypted ? "true" : "false");
    if (f->compliance[0] != '\0')
        buf_printf(b, "&compliance=%s", f->compliance);
}

int
hwfilter_stale(const struct device *d, int64_t now, int days)
{
    return d->last_check_in_at == TS_NULL || now - d->last_check_in_at > (int64_t)days * DAY;
}

/* The vendor's last supported day as Unix seconds (its midnight), or TS_NULL when unknown or
 * still without an end date. */
static int64_t
os_end(const struct device *d)
{
    struct lifecycle_info li;
    int64_t eos;

    if (d->os_name == NULL || !lifecycle_lookup(d->os_name, d->os_version, &li) ||
        li.end_of_support[0] == '\0' || clock_parse(li.end_of_support, &eos) != 0)
        return TS_NULL;
    return eos;
}

int
hwfilter_os_past(const struct device *d, int64_t now)
{
    int64_t eos = os_end(d);

    /* The vendor's date is the last day with updates: unsupported from the day after. */
    return eos != TS_NULL && eos + DAY <= now;
}

int
hwfilter_os_ends_within(const struct device *d, int64_t now, int days)
{
    int64_t eos = os_end(d);

    return eos != TS_NULL && eos + DAY > now && eos <= now + (int64_t)days * DAY;
}

int
hwfilter_serial_missing(const struct device *d)
{
    return d->serial == NULL;
}

int
hwfilter_is_encrypted(const struct device *d)
{
    return d->is_encrypted == 1;
}

int
hwfilter_is_compliant(const struct device *d)
{
    return d->compliance_state != NULL && strcmp(d->compliance_state, "compliant") == 0;
}

const char *
hwfilter_os_status(const struct device *d, int64_t now, char *out, size_t outlen)
{
    struct lifecycle_info li;

    if (d->os_name == NULL || !lifecycle_lookup(d->os_name, d->os_version, &li))
        snprintf(out, outlen, "unknown");
    else if (li.end_of_support[0] == '\0')
        snprintf(out, outlen, "supported");
    else if (hwfilter_os_past(d, now))
        snprintf(out, outlen, "past support since %s", li.end_of_support);
    else
        snprintf(out, outlen, "supported until %s", li.end_of_support);
    return out;
}

int
hwfilter_match(const struct hwfilter *f, const struct asset *a)
{
    const struct device *d = &a->dev;

    if (f->stale_days > 0 && !hwfilter_stale(d, f->now, f->stale_days))
        return 0;
    if (f->os == HWF_OS_PAST && !hwfilter_os_past(d, f->now))
        return 0;
    if (f->os == HWF_OS_ENDS && !hwfilter_os_ends_within(d, f->now, f->os_within_days))
        return 0;
    if (f->serial == HWF_SERIAL_MISSING && !hwfilter_serial_missing(d))
        return 0;
    if (f->serial == HWF_SERIAL_SHARED && !a->serial_duplicate)
        return 0;
    if (f->encrypted >= 0 && hwfilter_is_encrypted(d) != f->encrypted)
        return 0;
    if (f->compliance[0] != '\0') {
        if (strcmp(f->compliance, "not_compliant") == 0)
            return !hwfilter_is_compliant(d);
        if (d->compliance_state == NULL || strcmp(d->compliance_state, f->compliance) != 0)
            return 0;
    }
    return 1;
}

struct walk {
    const struct hwfilter *f;
    int64_t skip;
    int limit;
    int64_t seen, sent;
    int (*cb)(void *arg, const struct asset *a);
    void *arg;
};

static int
walk_cb(void *arg, const struct asset *a)
{
    struct walk *w = arg;
    int rc;

    if (!hwfilter_match(w->f, a))
        return 0;
    w->seen++;
    if (w->seen <= w->skip || (w->limit > 0 && w->sent >= w->limit))
        return 0;
    w->sent++;
    rc = w->cb(w->arg, a);
    return rc;
}

int
hwfilter_each(struct store *st, const struct asset_query *q, const struct hwfilter *f,
              int64_t offset, int limit, int (*cb)(void *arg, const struct asset *a), void *arg,
              int64_t *total, struct errbuf *eb)
{
    struct asset_query all = *q;
    struct walk w = {f, offset < 0 ? 0 : offset, limit, 0, 0, cb, arg};
    int rc;

    /* Every row is read: the total counts them all; full rows, the filters read the device. */
    all.offset = 0;
    all.limit = 0;
    all.after_id = 0;
    all.seek = 0;
    all.lazy_dev = 0;
    all.lazy_held = NULL;
    rc = store_assets_each(st, &all, walk_cb, &w, eb);
    if (total != NULL)
        *total = w.seen;
    return rc;
}
