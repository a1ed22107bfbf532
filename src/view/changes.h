/* changes.h - the change feed as the API, the CLI and webhooks show it (docs/API.md "Change
 * feed"): one change_row (store.h) as JSON, and the feed's cursor.
 *
 * A cursor is "c1." and a decimal seq: callers treat it as opaque; "c1.0" is the start. Pure
 * functions; any thread. changes_row_json returns a new reference (NULL only on out-of-memory).
 */
#ifndef MEMSYNC_CHANGES_H
#define MEMSYNC_CHANGES_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "store.h"

#define CHANGES_CURSOR_MAX 32 /* bytes of a cursor's text, with its NUL */

/* out gets the cursor of the position after seq. */
void changes_cursor(int64_t seq, char out[CHANGES_CURSOR_MAX]);
/* The seq of a cursor's text; ERR_INVAL with a sentence in eb when it is not one. */
int changes_cursor_parse(const char *text, int64_t *seq, struct errbuf *eb);

/* {cursor, at, kind, client{id, name, tenant_id}, asset{id, intune_device_id, name,
 * serial_number}|null, software{id, name, version, publisher}|null, field, old, new}. */
json_t *changes_row_json(const struct change_row *c);

/* Splits a comma-separated list of kinds (the API's and the CLI's kind filter) into q->kinds,
 * pointing into buf (a copy of text the caller keeps while q is used); ERR_INVAL for an unknown
 * or repeated kind or more than STORE_CHANGE_KIND_COUNT. */
int changes_kinds_parse(char *buf, struct change_query *q, struct errbuf *eb);

#endif
