/* metrics.h - process-wide counters for serve's /metrics: HTTP requests by route template,
 * method and status class, and sync duration histograms by kind.
 *
 * Process-wide: the figures count what this process answered or ran since it started (a
 * restart resets them; syncs run by `memsync worker` processes are not in serve's histogram).
 * Bounded: at most METRICS_ROUTES_MAX route/method/class series; later ones count under
 * route="other". Route templates never hold ids: a numeric or id-like path segment becomes
 * "{id}". Thread-safe (one mutex); metrics_init is not needed (static state).
 */
#ifndef MEMSYNC_METRICS_H
#define MEMSYNC_METRICS_H

#include "buf.h"

#define METRICS_ROUTES_MAX 128

/* Counts one answered request. */
void metrics_http_observe(const char *method, const char *path, int status);

/* Counts one finished sync run of `seconds` (full or incremental). */
void metrics_sync_observe(int full, double seconds);

/* Appends the exposition-format families (HELP, TYPE, samples). */
void metrics_http_write(struct buf *b);
void metrics_sync_write(struct buf *b);

/* Appends s as a label value: backslash, double quote and newline escaped. */
void metrics_label(struct buf *b, const char *s);

#endif
