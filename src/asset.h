/* asset.h - the JSON views of hardware assets and clients used by the REST API and by the CLI's
 * --format json/jsonl/csv/table (PRODUCT.md §4 field names; they are a contract).
 *
 * Timestamps are RFC 3339 UTC with Z, or null; Int64 values are JSON integers (exact); absent
 * values are JSON null. The column lists are the dotted paths for csv and table output.
 * Returned json_t are new references owned by the caller. Pure; thread-safe.
 */
#ifndef MEMSYNC_ASSET_H
#define MEMSYNC_ASSET_H

#include <jansson.h>
#include <stddef.h>
#include <yajl/yajl_gen.h>

#include "store.h"

json_t *asset_to_json(const struct asset *a);
/* Writes the same object as asset_to_json (same members, values and order) to g, for pages
 * rendered without a tree (the hardware list). Strings that are not valid UTF-8 are
 * replaced the same way. ERR_OK, or ERR_INVAL when the generator refuses (g's state is
 * then unspecified: discard the output). */
int asset_gen(yajl_gen g, const struct asset *a);
json_t *client_to_json(const struct client_row *c);

extern const char *const asset_columns[];
extern const size_t asset_column_count;
/* A short set for people: id, client, name, serial, type, OS, user, last check-in. */
extern const char *const asset_table_columns[];
extern const size_t asset_table_column_count;

extern const char *const client_columns[];
extern const size_t client_column_count;

/* Software title: id, client{id,name,tenant_id}, name, version, publisher, platform, size_bytes,
 * device_count. */
json_t *software_to_json(const struct software_row *s);
extern const char *const software_columns[];
extern const size_t software_column_count;

/* One history entry: id, asset_id, at, field, old, new. */
json_t *asset_change_to_json(const struct asset_change_row *c);
extern const char *const asset_change_columns[];
extern const size_t asset_change_column_count;

#endif
