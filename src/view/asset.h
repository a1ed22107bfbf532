/* asset.h - the JSON views of hardware assets and clients used by the REST API and by the CLI's
 * --format json/jsonl/csv/table (docs/API.md "Fields"; they are a contract).
 *
 * Timestamps are RFC 3339 UTC with Z, or null; Int64 values are JSON integers (exact); absent
 * values are JSON null. The column lists are the dotted paths for csv and table output.
 * Returned json_t are new references owned by the caller. Pure; thread-safe.
 */
#ifndef MEMSYNC_ASSET_H
#define MEMSYNC_ASSET_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"
#include "store.h"

json_t *asset_to_json(const struct asset *a);
/* The hardware list's JSON, written as text into a buffer without a tree (the same object as
 * asset_to_json: same members, values and order; strings that are not valid UTF-8 replaced
 * the same way). The writer gathers output in its own chunk and appends it to out; a failed
 * append (out's maximum) is remembered and reported by asset_writer_finish. One owner. */
struct asset_writer;
struct rowcache;

struct asset_writer *asset_writer_new(struct buf *out); /* aborts on OOM */
/* A writer that keeps the bytes itself (no copy into a buf): room for hint bytes first, at
 * most max in all. End it with asset_writer_take. */
struct asset_writer *asset_writer_new_owned(size_t hint, size_t max);
/* Frees w and returns its bytes (NUL-terminated, the caller frees them; *len without the
 * NUL), or NULL when they passed the maximum. Only for asset_writer_new_owned. */
char *asset_writer_take(struct asset_writer *w, size_t *len);
void asset_writer_asset(struct asset_writer *w, const struct asset *a);
/* One hardware list row: a full one as asset_writer_asset, a lazy one (store.h: asset.dev_load)
 * with its body from rc when it holds the row at its dev_stamp, else loaded, written and put
 * into rc (NULL: no cache). ERR_OK, or dev_load's error. */
int asset_writer_row(struct asset_writer *w, const struct asset *a, struct rowcache *rc);
void asset_writer_raw(struct asset_writer *w, const char *s, size_t n); /* JSON text as is */
void asset_writer_string(struct asset_writer *w, const char *s);        /* NULL: null */
void asset_writer_int(struct asset_writer *w, int64_t v);
/* Appends what is left and frees w: ERR_OK, or ERR_TOOBIG when out refused some of it. */
int asset_writer_finish(struct asset_writer *w);
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
