/* insight.h - lifecycle insight per client (docs/API.md "Lifecycle insight"): devices not checked
 * in for N days, operating systems past their end of support, devices without a real serial,
 * serials seen in two tenants, encryption and compliance at a glance, asset age from enrolment.
 *
 * Feed active assets one by one (insight_add), then read one row per client. The accumulator
 * owns its memory; insight_free releases it. One thread. Pure apart from the lifecycle table.
 */
#ifndef MEMSYNC_INSIGHT_H
#define MEMSYNC_INSIGHT_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"

struct insight_row {
    int64_t client_id;
    char *client_name;
    char *tenant_id;
    int64_t devices;
    int64_t stale;            /* last check-in older than stale_days (or never) */
    int64_t unsupported_os;   /* operating system past its vendor's end of support */
    int64_t no_serial;        /* no serial, or a placeholder */
    int64_t duplicate_serial; /* the same real serial in another tenant */
    int64_t encrypted;
    int64_t compliant;
    int64_t oldest_enrolled_at; /* TS_NULL when no device has a date */
};

struct insight;

struct insight *insight_new(int64_t now, int stale_days);
void insight_free(struct insight *in);
void insight_add(struct insight *in, const struct asset *a);
/* insight_add as a store_assets_each callback (arg: the struct insight); always 0. */
int insight_collect(void *arg, const struct asset *a);
size_t insight_count(const struct insight *in);
const struct insight_row *insight_row(const struct insight *in, size_t i);
/* The row as JSON: client{id,name,tenant_id}, devices, stale, unsupported_os, no_serial,
 * duplicate_serial, encrypted_pct, compliant_pct, oldest_enrolment_days. */
json_t *insight_to_json(const struct insight *in, size_t i);

/* The hardware list arguments that list the devices a figure counts (hwfilter.h), appended to b
 * as "&key=value..." ("" for "devices"): stale, unsupported_os, no_serial, duplicate_serial,
 * encrypted_pct (the devices not encrypted), compliant_pct (those not compliant). 0, or -1 for
 * a figure without a list. */
int insight_figure_query(const char *figure, int stale_days, struct buf *b);

extern const char *const insight_columns[];
extern const size_t insight_column_count;

#endif
