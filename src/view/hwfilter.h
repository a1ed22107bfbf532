/* hwfilter.h - the hardware list's derived filters (docs/API.md "Hardware filters"): the tests
 * behind each insight figure (insight.h counts with these same functions, so a figure's number
 * is the number of rows its filter lists), and the list walk that applies them.
 *
 * Derived filters are those SQL cannot answer from stored columns alone: the OS past its
 * vendor's end of support or ending within N days (the lifecycle table), not checked in for N
 * days (or never), no real serial, a serial another tenant also has, encrypted or not (unknown
 * counts as not), compliant or not (unknown counts as not). Plain column filters (model,
 * manufacturer, ownership, enrolment dates, missing_since) stay store filters.
 *
 * Query arguments (hwfilter_arg): stale_days=N, os_support=past|ends_within:N,
 * serial=missing|shared, encrypted=true|false, compliance=compliant|not_compliant|STATE.
 * Days are 1..HWFILTER_MAX_DAYS. A struct hwfilter is a value; pure apart from the lifecycle
 * table and hwfilter_each's store reads. Thread-safe.
 */
#ifndef MEMSYNC_HWFILTER_H
#define MEMSYNC_HWFILTER_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "device.h"
#include "err.h"
#include "store.h"

#define HWFILTER_MAX_DAYS 3650

enum hwfilter_os { HWF_OS_ANY, HWF_OS_PAST, HWF_OS_ENDS };
enum hwfilter_serial { HWF_SERIAL_ANY, HWF_SERIAL_MISSING, HWF_SERIAL_SHARED };

struct hwfilter {
    int64_t now;
    int stale_days; /* 0: off */
    enum hwfilter_os os;
    int os_within_days; /* HWF_OS_ENDS */
    enum hwfilter_serial serial;
    int encrypted;       /* -1: off; 1: encrypted; 0: not known to be */
    char compliance[32]; /* "": off; "compliant", "not_compliant" or Intune's state */
};

void hwfilter_init(struct hwfilter *f, int64_t now);
int hwfilter_active(const struct hwfilter *f);
/* Reads one query argument: 1 when key is a derived filter and value is good, 0 when key is
 * not one, ERR_INVAL (message in eb) for a bad value. */
int hwfilter_arg(struct hwfilter *f, const char *key, const char *value, struct errbuf *eb);
/* Appends f as query arguments ("&stale_days=30..."), for links. */
void hwfilter_query(const struct hwfilter *f, struct buf *b);
/* 1 when the asset passes every derived filter of f. */
int hwfilter_match(const struct hwfilter *f, const struct asset *a);

/* The tests, shared with insight.c. */
int hwfilter_stale(const struct device *d, int64_t now, int days);
int hwfilter_os_past(const struct device *d, int64_t now);
/* Not past yet, and the last supported day is within days of now. */
int hwfilter_os_ends_within(const struct device *d, int64_t now, int days);
int hwfilter_serial_missing(const struct device *d);
int hwfilter_is_encrypted(const struct device *d);
int hwfilter_is_compliant(const struct device *d);
/* The OS support status for people: "supported until DATE", "past support since DATE",
 * "supported" (no end date yet) or "unknown". Returns out. */
const char *hwfilter_os_status(const struct device *d, int64_t now, char *out, size_t outlen);

/* Reads q (its own offset, limit and cursors must be unset) in its order and hands cb the rows
 * that pass f, skipping offset of them and stopping after limit (0: all); *total: how many pass
 * (every row is read). ERR_OK, the store's error or what cb returned. */
int hwfilter_each(struct store *st, const struct asset_query *q, const struct hwfilter *f,
                  int64_t offset, int limit, int (*cb)(void *arg, const struct asset *a), void *arg,
                  int64_t *total, struct errbuf *eb);

#endif
