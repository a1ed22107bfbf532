/* report.c - zip (one CSV entry) and streaming CSV for Intune report exports. */
#include "report.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "mem.h"

/* An incremental RFC 4180 parser: bytes in, rows out. A row's cells sit NUL-separated in one
 * buffer, reused from row to row; runs of plain bytes are copied at once. */
struct csv {
    report_row_cb *cb;
    void *arg;
    struct errbuf *eb;
    char *row; /* the row's cells so far, each NUL-terminated but the one being read */
    size_t len, cap;
    size_t cell_off; /* where the cell being read starts in row */
    size_t offs[REPORT_MAX_COLS];
    const char *cells[REPORT_MAX_COLS];
    size_t ncells;
    size_t row_no;
    int in_quotes;
    int quote_pending; /* saw '"' inside quotes: either "" or the closing quote */
    int cell_started;
    int after_cr;
    int bom_checked;
    size_t bom_seen;
    int rc;
};

static void
csv_init(struct csv *c, report_row_cb *cb, void *arg, struct errbuf *eb)
{
    memset(c, 0, sizeof *c);
    c->cb = cb;
    c->arg = arg;
    c->eb = eb;
}

static void
csv_free(struct csv *c)
{
    c->ncells = 0;
    free(c->row);
    c->row = NULL;
    c->len = c->cap = 0;
}

/* Room for n more bytes in the row. Bounded: cells are at most REPORT_MAX_CELL bytes and a row
 * has at most REPORT_MAX_COLS of them (one more may be read before end_cell refuses it). */
static void
row_room(struct csv *c, size_t n)
{
    size_t ncap;

    if (c->cap - c->len >= n)
        return;
    ncap = c->cap ? c->cap : 1024;
    while (ncap - c->len < n)
        ncap *= 2;
    c->row = xrealloc(c->row, ncap);
    c->cap = ncap;
}

static int
end_cell(struct csv *c)
{
    if (c->ncells >= REPORT_MAX_COLS)
        return err_set(c->eb, ERR_TOOBIG, "report row %zu has more than %d columns", c->row_no,
                       REPORT_MAX_COLS);
    row_room(c, 1);
    c->row[c->len++] = '\0';
    c->offs[c->ncells++] = c->cell_off;
    c->cell_off = c->len;
    c->cell_started = 0;
    return ERR_OK;
}

static int
end_row(struct csv *c)
{
    int rc = ERR_OK;

    if (c->ncells == 0 && !c->cell_started)
        return ERR_OK; /* an empty line */
    if ((rc = end_cell(c)) != ERR_OK)
        return rc;
    for (size_t i = 0; i < c->ncells; i++)
        c->cells[i] = c->row + c->offs[i];
    rc = c->cb(c->arg, c->row_no++, c->cells, c->ncells);
    c->ncells = 0;
    c->len = 0;
    c->cell_off = 0;
    return rc;
}

static int
cell_add(struct csv *c, const char *s, size_t n)
{
    c->cell_started = 1;
    if (n > REPORT_MAX_CELL - (c->len - c->cell_off))
        return err_set(c->eb, ERR_TOOBIG, "report row %zu has a cell over %d bytes", c->row_no,
                       REPORT_MAX_CELL);
    row_room(c, n);
    memcpy(c->row + c->len, s, n);
    c->len += n;
    return ERR_OK;
}

/* Bytes that end a run of plain bytes in an unquoted cell. */
static int
csv_special(char ch)
{
    return ch == '"' || ch == ',' || ch == '\r' || ch == '\n';
}

static int
csv_feed(struct csv *c, const char *p, size_t n)
{
    static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};
    int rc = ERR_OK;

    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        char ch = p[i];

        if (!c->bom_checked) {
            if ((unsigned char)ch == bom[c->bom_seen]) {
                if (++c->bom_seen == 3)
                    c->bom_checked = 1;
                continue;
            }
            c->bom_checked = 1;
            if (c->bom_seen > 0 && (rc = cell_add(c, (const char *)bom, c->bom_seen)) != ERR_OK)
                break;
        }
        if (c->in_quotes) {
            if (c->quote_pending) {
                c->quote_pending = 0;
                if (ch == '"') {
                    rc = cell_add(c, "\"", 1);
                    continue;
                }
                c->in_quotes = 0; /* that was the closing quote; handle ch below */
            } else if (ch == '"') {
                c->quote_pending = 1;
                continue;
            } else {
                const char *q = memchr(p + i, '"', n - i);
                size_t j = q != NULL ? (size_t)(q - p) : n;

                rc = cell_add(c, p + i, j - i);
                i = j - 1;
                continue;
            }
        }
        if (c->after_cr) {
            c->after_cr = 0;
            if (ch == '\n')
                continue;
        }
        switch (ch) {
        case '"':
            if (c->len == c->cell_off) {
                c->in_quotes = 1;
                c->cell_started = 1;
            } else {
                rc = cell_add(c, &ch, 1); /* a stray quote inside an unquoted cell: keep it */
            }
            break;
        case ',':
            rc = end_cell(c);
            c->cell_started = 1; /* the next cell exists even if empty */
            break;
        case '\r':
            c->after_cr = 1;
            rc = end_row(c);
            break;
        case '\n':
            rc = end_row(c);
            break;
        default: {
            size_t j = i + 1;

            while (j < n && !csv_special(p[j]))
                j++;
            rc = cell_add(c, p + i, j - i);
            i = j - 1;
            break;
        }
        }
    }
    return rc;
}

static int
csv_finish(struct csv *c)
{
    if (c->in_quotes && !c->quote_pending)
        return err_set(c->eb, ERR_PARSE, "report row %zu ends inside a quoted cell", c->row_no);
    return end_row(c);
}

int
report_csv_parse(const char *text, size_t len, report_row_cb *cb, void *arg, struct errbuf *eb)
{
    struct csv c;
    int rc;

    csv_init(&c, cb, arg, eb);
    rc = csv_feed(&c, text, len);
    if (rc == ERR_OK)
        rc = csv_finish(&c);
    csv_free(&c);
    return rc;
}

static unsigned
rd16(const unsigned char *p)
{
    return (unsigned)p[0] | (unsigned)p[1] << 8;
}

static uint32_t
rd32(const unsigned char *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

int
report_zip_csv(const unsigned char *zip, size_t len, size_t max_out, report_row_cb *cb, void *arg,
               struct errbuf *eb)
{
    const unsigned char *eocd = NULL, *cd, *lh, *data;
    uint32_t crc_want, csize, usize, cd_off, lh_off;
    unsigned method, flags, nlen, xlen;
    struct csv c;
    z_stream zs;
    unsigned char out[65536];
    uLong crc = crc32(0L, Z_NULL, 0);
    size_t total = 0;
    int rc = ERR_OK, zinit = 0;

    /* The end-of-central-directory record is in the last 22 + 65535 bytes. */
    for (size_t i = len >= 22 ? len - 22 + 1 : 0; i-- > 0 && len - i <= 22 + 65535;) {
        if (rd32(zip + i) == 0x06054b50) {
            eocd = zip + i;
            break;
        }
    }
    if (eocd == NULL)
        return err_set(eb, ERR_PARSE, "the report is not a zip archive");
    if (rd16(eocd + 4) != 0 || rd16(eocd + 6) != 0 || rd16(eocd + 10) < 1)
        return err_set(eb, ERR_PARSE, "the report zip is multi-part or empty");
    cd_off = rd32(eocd + 16);
    if (cd_off == 0xFFFFFFFFu || (size_t)cd_off + 46 > len)
        return err_set(eb, ERR_PARSE, "the report zip's directory is out of range");
    cd = zip + cd_off;
    if (rd32(cd) != 0x02014b50)
        return err_set(eb, ERR_PARSE, "the report zip's directory is damaged");
    flags = rd16(cd + 8);
    method = rd16(cd + 10);
    crc_want = rd32(cd + 16);
    csize = rd32(cd + 20);
    usize = rd32(cd + 24);
    lh_off = rd32(cd + 42);
    if (flags & 1)
        return err_set(eb, ERR_UNSUPPORTED, "the report zip is encrypted");
    if (csize == 0xFFFFFFFFu || usize == 0xFFFFFFFFu || lh_off == 0xFFFFFFFFu)
        return err_set(eb, ERR_UNSUPPORTED, "the report zip uses zip64");
    if (method != 0 && method != 8)
        return err_set(eb, ERR_UNSUPPORTED, "the report zip uses compression method %u", method);
    if (usize > max_out)
        return err_set(eb, ERR_TOOBIG, "the report's CSV is %lu bytes (limit %zu)",
                       (unsigned long)usize, max_out);
    if ((size_t)lh_off + 30 > len || rd32(zip + lh_off) != 0x04034b50)
        return err_set(eb, ERR_PARSE, "the report zip's file header is damaged");
    lh = zip + lh_off;
    nlen = rd16(lh + 26);
    xlen = rd16(lh + 28);
    if ((size_t)lh_off + 30 + nlen + xlen + csize > len)
        return err_set(eb, ERR_PARSE, "the report zip is truncated");
    data = lh + 30 + nlen + xlen;

    csv_init(&c, cb, arg, eb);
    if (method == 0) {
        if (csize != usize) {
            rc = err_set(eb, ERR_PARSE, "the report zip's stored sizes disagree");
            goto out;
        }
        crc = crc32(crc, data, (uInt)csize);
        total = csize;
        rc = csv_feed(&c, (const char *)data, csize);
    } else {
        memset(&zs, 0, sizeof zs);
        if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) {
            rc = err_set(eb, ERR_NOMEM, "cannot start inflating the report");
            goto out;
        }
        zinit = 1;
        zs.next_in = (Bytef *)(uintptr_t)data;
        zs.avail_in = csize;
        for (;;) {
            int zr;
            size_t got;

            zs.next_out = out;
            zs.avail_out = sizeof out;
            zr = inflate(&zs, Z_NO_FLUSH);
            if (zr != Z_OK && zr != Z_STREAM_END) {
                rc = err_set(eb, ERR_PARSE, "the report zip's data is damaged (%s)",
                             zs.msg != NULL ? zs.msg : "inflate");
                goto out;
            }
            got = sizeof out - zs.avail_out;
            total += got;
            if (total > max_out || total > usize) {
                rc = err_set(eb, ERR_TOOBIG, "the report's CSV is larger than it says");
                goto out;
            }
            crc = crc32(crc, out, (uInt)got);
            if ((rc = csv_feed(&c, (const char *)out, got)) != ERR_OK)
                goto out;
            if (zr == Z_STREAM_END)
                break;
            if (got == 0 && zs.avail_in == 0) {
                rc = err_set(eb, ERR_PARSE, "the report zip's data is truncated");
                goto out;
            }
        }
    }
    if (total != usize || crc != crc_want) {
        rc = err_set(eb, ERR_PARSE, "the report zip's checksum or size does not match");
        goto out;
    }
    rc = csv_finish(&c);
out:
    if (zinit)
        inflateEnd(&zs);
    csv_free(&c);
    return rc;
}
