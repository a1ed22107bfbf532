/* rowjson.h - a store row (store_cell array) as the JSON object the REST API, the web UI and
 * `--format json` show.
 *
 * Dotted cell names become nested objects ("client.name" -> {"client": {"name": ...}}; names
 * are at most 63 bytes before the dot); times become RFC 3339 text, NULLs null. A client
 * without a warning gets "warning": null rather than an object of nulls, and an "error" whose
 * members are all null (a healthy client, tenant result or run) is null too.
 * Ownership: cells are borrowed; the result is a new reference. Threads: any.
 */
#ifndef MEMSYNC_ROWJSON_H
#define MEMSYNC_ROWJSON_H

#include <jansson.h>
#include <stddef.h>

#include "store.h"

json_t *rowjson_cells(const struct store_cell *cells, size_t n);

#endif
