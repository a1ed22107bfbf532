#include "insight.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "hwfilter.h"
#include "mem.h"

struct insight {
    int64_t now;
    int stale_days;
    struct insight_row *rows;
    size_t n, cap;
};

const char *const insight_columns[] = {
    "client.name",      "devices",       "stale",         "unsupported_os",        "no_serial",
    "duplicate_serial", "encrypted_pct", "compliant_pct", "oldest_enrolment_days",
};
const size_t insight_column_count = sizeof insight_columns / sizeof insight_columns[0];

struct insight *
insight_new(int64_t now, int stale_days)
{
    struct insight *in = xcalloc(1, sizeof *in);

    in->now = now;
    in->stale_days = stale_days;
    return in;
}

void
insight_free(struct insight *in)
{
    if (in == NULL)
        return;
    for (size_t i = 0; i < in->n; i++) {
        free(in->rows[i].client_name);
        free(in->rows[i].tenant_id);
    }
    free(in->rows);
    free(in);
}

static struct insight_row *
row_for(struct insight *in, const struct asset *a)
{
    struct insight_row *r;

    /* Assets arrive grouped by client in practice; the last row is the likely match. */
    for (size_t i = in->n; i-- > 0;)
        if (in->rows[i].client_id == a->client_id)
            return &in->rows[i];
    in->rows = mem_grow(in->rows, &in->cap, in->n + 1, sizeof *in->rows);
    r = &in->rows[in->n++];
    memset(r, 0, sizeof *r);
    r->client_id = a->client_id;
    r->client_name = xstrdup(a->client_name);
    r->tenant_id = xstrdup(a->client_tenant_id);
    r->oldest_enrolled_at = TS_NULL;
    return r;
}

void
insight_add(struct insight *in, const struct asset *a)
{
    struct insight_row *r;
    const struct device *d = &a->dev;

    if (a->retired_at != TS_NULL)
        return;
    r = row_for(in, a);
    r->devices++;
    /* The same tests as the hardware list's filters (hwfilter.h): a figure is its list's size. */
    if (hwfilter_stale(d, in->now, in->stale_days))
        r->stale++;
    if (hwfilter_os_past(d, in->now))
        r->unsupported_os++;
    if (hwfilter_serial_missing(d))
        r->no_serial++;
    if (a->serial_duplicate)
        r->duplicate_serial++;
    if (hwfilter_is_encrypted(d))
        r->encrypted++;
    if (hwfilter_is_compliant(d))
        r->compliant++;
    if (d->enrolled_at != TS_NULL &&
        (r->oldest_enrolled_at == TS_NULL || d->enrolled_at < r->oldest_enrolled_at))
        r->oldest_enrolled_at = d->enrolled_at;
}

int
insight_collect(void *arg, const struct asset *a)
{
    insight_add(arg, a);
    return 0;
}

size_t
insight_count(const struct insight *in)
{
    return in->n;
}

const struct insight_row *
insight_row(const struct insight *in, size_t i)
{
    return i < in->n ? &in->rows[i] : NULL;
}

static json_t *
pct(int64_t part, int64_t whole)
{
    return whole > 0 ? json_integer((json_int_t)((part * 100 + whole / 2) / whole)) : json_null();
}

json_t *
insight_to_json(const struct insight *in, size_t i)
{
    const struct insight_row *r = insight_row(in, i);

    if (r == NULL)
        return NULL;
    return json_pack("{s:{s:I, s:s?, s:s?}, s:I, s:I, s:I, s:I, s:I, s:o, s:o, s:o}", "client",
                     "id", (json_int_t)r->client_id, "name", r->client_name, "tenant_id",
                     r->tenant_id, "devices", (json_int_t)r->devices, "stale", (json_int_t)r->stale,
                     "unsupported_os", (json_int_t)r->unsupported_os, "no_serial",
                     (json_int_t)r->no_serial, "duplicate_serial", (json_int_t)r->duplicate_serial,
                     "encrypted_pct", pct(r->encrypted, r->devices), "compliant_pct",
                     pct(r->compliant, r->devices), "oldest_enrolment_days",
                     r->oldest_enrolled_at == TS_NULL
                         ? json_null()
                         : json_integer((json_int_t)((in->now - r->oldest_enrolled_at) / 86400)));
}

int
insight_figure_query(const char *figure, int stale_days, struct buf *b)
{
    struct hwfilter f;

    hwfilter_init(&f, 0);
    if (strcmp(figure, "devices") == 0)
        return 0;
    if (strcmp(figure, "stale") == 0)
        f.stale_days = stale_days;
    else if (strcmp(figure, "unsupported_os") == 0)
        f.os = HWF_OS_PAST;
    else if (strcmp(figure, "no_serial") == 0)
        f.serial = HWF_SERIAL_MISSING;
    else if (strcmp(figure, "duplicate_serial") == 0)
        f.serial = HWF_SERIAL_SHARED;
    else if (strcmp(figure, "encrypted_pct") == 0)
        f.encrypted = 0;
    else if (strcmp(figure, "compliant_pct") == 0)
        snprintf(f.compliance, sizeof f.compliance, "not_compliant");
    else
        return -1;
    hwfilter_query(&f, b);
    return 0;
}
