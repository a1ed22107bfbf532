/* output.h - one writer for rows given as jansson objects, in the formats of `--format`:
 * table (aligned columns for people), csv (RFC 4180), json (one array) and jsonl (one object per
 * line).
 *
 * Columns are dotted paths into the row ("client.name" is row.client.name); they choose and
 * order the cells of csv and table and are the csv header. json and jsonl write whole rows.
 * json and jsonl stream: nothing is kept in memory between rows. table keeps its cells until
 * output_end() so it can align them by display width (wcwidth(3) in C.UTF-8, set for the call's
 * thread only with uselocale, never setlocale: a CJK character takes two columns); cells are cut
 * at OUTPUT_TABLE_CELL_MAX columns with "…", control characters become spaces, and the headers
 * are the column paths in words ("client.name" -> "Client", "serial_number" -> "Serial number").
 * CSV cells that a spreadsheet would run as a formula (starting with =, +, -, @, tab or CR) get a
 * leading apostrophe, unless output_raw_cells() turned that off (files for importers, which
 * would keep the apostrophe as part of the value).
 *
 * Ownership: the writer borrows fp and never closes it; output_end() frees the writer (also on
 * error). Not thread-safe: one writer per thread.
 * Errors: ERR_IO when writing fails, ERR_INVAL for a row that is not an object.
 */
#ifndef MEMSYNC_OUTPUT_H
#define MEMSYNC_OUTPUT_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "err.h"

enum output_format { OUTPUT_TABLE, OUTPUT_CSV, OUTPUT_JSON, OUTPUT_JSONL };

#define OUTPUT_TABLE_CELL_MAX 40

struct output;

/* "table" | "csv" | "json" | "jsonl"; ERR_USAGE for anything else. */
int output_format_parse(const char *s, enum output_format *out, struct errbuf *eb);

/* columns: ncolumns dotted paths, borrowed until output_end(). They may be NULL/0 for json and
 * jsonl; for csv and table they are then taken from the first row (nested objects flattened). */
int output_begin(struct output **out, FILE *fp, enum output_format fmt, const char *const *columns,
                 size_t ncolumns, struct errbuf *eb);
/* csv and table: leave the header line out (`--no-headers`). Call before the first row. */
void output_no_headers(struct output *o);
/* csv: write cells as they are, without the formula guard. Call before the first row. */
void output_raw_cells(struct output *o);
/* ERR_INVAL when row is not an object, ERR_IO when the stream failed. */
int output_row(struct output *o, const json_t *row, struct errbuf *eb);
/* Finishes (closing bracket, table flush) and frees o. NULL-safe. */
int output_end(struct output *o, struct errbuf *eb);

/* The value at a dotted path, or NULL when absent. Borrowed. */
const json_t *output_lookup(const json_t *row, const char *path);

#endif
