#include "insight.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "lifecycle.h"
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

/* 1 when the OS is past its end of support (a known date earlier than now). */
static int
os_unsupported(const struct device *d, int64_t now)
{
    struct lifecycle_info li;
    int64_t eos;

    if (d->os_name == NULL || !lifecycle_lookup(d->os_name, d->os_version, &li) ||
        li.end_of_support[0] == '\0' || clock_parse(li.end_of_support, &eos) != 0)
        return 0;
    /* The vendor's date is the last day with updates: unsupported from the day after. */
    return eos + 86400 <= now;
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
    if (d->last_check_in_at == TS_NULL ||
        in->now - d->last_check_in_at > (int64_t)in->stale_days * 86400)
        r->stale++;
    if (os_unsupported(d, in->now))
        r->unsupported_os++;
    if (d->serial == NULL)
        r->no_serial++;
    if (a->serial_duplicate)
        r->duplicate_serial++;
    if (d->is_encrypted == 1)
        r->encrypted++;
    if (d->compliance_state != NULL && strcmp(d->compliance_state, "compliant") == 0)
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
