/* report.h - reading Intune report exports: the zip Microsoft's exportJobs URL points to, holding
 * one CSV file (notes §9). Streaming: the CSV is inflated in chunks and parsed row by row, so a
 * 100 MB report never sits in memory whole.
 *
 * Zip: the first entry of the central directory, stored (0) or deflated (8), CRC-32 checked;
 * zip64 is read (the zip64 end record through its locator, and the 0x0001 extra field of the
 * entry for sizes and offset past 4 GiB); encryption and multi-disk archives are refused. CSV: RFC
 * 4180 (quoted fields, "" escapes, CR LF or LF line ends, newlines inside quotes), a UTF-8
 * byte-order mark is skipped. Limits: REPORT_MAX_CELL bytes per cell, REPORT_MAX_COLS cells per
 * row, max_out bytes of CSV in all (ERR_TOOBIG past any of them). Pure; thread-safe.
 */
#ifndef MEMSYNC_REPORT_H
#define MEMSYNC_REPORT_H

#include <stddef.h>

#include "err.h"

#define REPORT_MAX_CELL 65536
#define REPORT_MAX_COLS 64

/* Called once per CSV row, the header row included (row 0). cells are NUL-terminated and valid
 * only during the call. A non-zero return stops parsing and is returned. */
typedef int report_row_cb(void *arg, size_t row, const char *const *cells, size_t ncells);

/* Parses CSV text (whole, or the concatenation of chunks fed to a report_csv). */
int report_csv_parse(const char *text, size_t len, report_row_cb *cb, void *arg, struct errbuf *eb);

/* Inflates the zip's first file and parses it as CSV, calling cb per row. The zip may be a
 * mapped file (the sync maps the downloaded report): it is only read. */
int report_zip_csv(const unsigned char *zip, size_t len, size_t max_out, report_row_cb *cb,
                   void *arg, struct errbuf *eb);

#endif
