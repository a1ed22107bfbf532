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
    c->row = mem_grow(c->row, &c->cap, c->len + n, 1);
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

/* The rest of a quoted cell from p[i]: its text up to the closing quote, "" taken as one quote.
 * Returns where parsing goes on: after the closing quote, or at n with the cell still open
 * (quote_pending when the chunk ended on a quote that may be the first of ""). */
static size_t
quoted_run(struct csv *c, const char *p, size_t i, size_t n, int *rc)
{
    for (;;) {
        const char *q = memchr(p + i, '"', n - i);
        size_t j = q != NULL ? (size_t)(q - p) : n;

        if (j + 1 < n && p[j + 1] == '"') { /* "" : the text and one quote */
            if ((*rc = cell_add(c, p + i, j + 1 - i)) != ERR_OK)
                return n;
            i = j + 2;
            continue;
        }
        if (j > i && (*rc = cell_add(c, p + i, j - i)) != ERR_OK)
            return n;
        if (j == n)
            return n;
        if (j + 1 == n) {
            c->quote_pending = 1;
            return n;
        }
        c->in_quotes = 0;
        return j + 1;
    }
}

/* A row whose cells are all plain or simply quoted and that ends in this chunk, read in one go:
 * its raw text is copied once and each cell's end (closing quote, comma or line end) becomes its
 * NUL. Returns i when the row needs the byte-wise path: an empty line, a "" escape, text after a
 * closing quote, a limit reached, or the chunk ending first (that path then redoes the row). */
static size_t
fast_row(struct csv *c, const char *p, size_t i, size_t n, int *rc)
{
    size_t ends[REPORT_MAX_COLS], k = i, nc = 0;

    if (p[i] == '\r' || p[i] == '\n')
        return i;
    for (;;) {
        size_t start, end;

        if (k >= n || nc >= REPORT_MAX_COLS)
            return i;
        if (p[k] == '"') {
            const char *q = memchr(p + k + 1, '"', n - k - 1);

            if (q == NULL)
                return i;
            start = k + 1;
            end = (size_t)(q - p);
            k = end + 1;
            if (k >= n || (p[k] != ',' && p[k] != '\r' && p[k] != '\n'))
                return i;
        } else {
            start = k;
            while (k < n && p[k] != ',' && p[k] != '\r' && p[k] != '\n')
                k++;
            if (k >= n)
                return i;
            end = k;
        }
        if (end - start > REPORT_MAX_CELL)
            return i;
        c->offs[nc] = start - i;
        ends[nc++] = end - i;
        if (p[k] != ',')
            break;
        k++;
    }
    row_room(c, k - i + 1);
    memcpy(c->row, p + i, k - i);
    for (size_t x = 0; x < nc; x++) {
        c->row[ends[x]] = '\0';
        c->cells[x] = c->row + c->offs[x];
    }
    *rc = c->cb(c->arg, c->row_no++, c->cells, nc);
    if (p[k] == '\r') {
        if (k + 1 == n)
            c->after_cr = 1;
        else if (p[k + 1] == '\n')
            k++;
    }
    return k + 1;
}

static int
csv_feed(struct csv *c, const char *p, size_t n)
{
    static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};
    int rc = ERR_OK;
    size_t i = 0;

    while (!c->bom_checked && i < n) {
        if ((unsigned char)p[i] == bom[c->bom_seen]) {
            i++;
            if (++c->bom_seen == 3)
                c->bom_checked = 1;
            continue;
        }
        c->bom_checked = 1;
        if (c->bom_seen > 0 && (rc = cell_add(c, (const char *)bom, c->bom_seen)) != ERR_OK)
            return rc;
    }
    if (i < n && c->in_quotes) { /* a quoted cell left open by the last chunk */
        if (c->quote_pending) {
            c->quote_pending = 0;
            if (p[i] == '"') {
                if ((rc = cell_add(c, "\"", 1)) != ERR_OK)
                    return rc;
                i = quoted_run(c, p, i + 1, n, &rc);
            } else {
                c->in_quotes = 0;
            }
        } else {
            i = quoted_run(c, p, i, n, &rc);
        }
    }
    while (rc == ERR_OK && i < n) {
        char ch;

        if (c->len == 0 && c->ncells == 0 && !c->cell_started && !c->after_cr) {
            size_t k = fast_row(c, p, i, n, &rc);

            if (k != i) {
                i = k;
                continue;
            }
        }
        ch = p[i];
        if (c->after_cr) {
            c->after_cr = 0;
            if (ch == '\n') {
                i++;
                continue;
            }
        }
        switch (ch) {
        case '"':
            if (c->len == c->cell_off) {
                c->in_quotes = 1;
                c->cell_started = 1;
                i = quoted_run(c, p, i + 1, n, &rc);
            } else {
                rc = cell_add(c, &ch, 1); /* a stray quote inside an unquoted cell: keep it */
                i++;
            }
            break;
        case ',':
            rc = end_cell(c);
            c->cell_started = 1; /* the next cell exists even if empty */
            i++;
            break;
        case '\r':
            c->after_cr = 1;
            rc = end_row(c);
            i++;
            break;
        case '\n':
            rc = end_row(c);
            i++;
            break;
        default: {
            size_t j = i + 1;

            while (j < n && !csv_special(p[j]))
                j++;
            rc = cell_add(c, p + i, j - i);
            i = j;
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

static uint64_t
rd64(const unsigned char *p)
{
    return (uint64_t)rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* The central directory's offset and entry count: from the end record, or from the zip64 end
 * record its locator (the 20 bytes before the end record) points to. */
static int
zip_directory(const unsigned char *zip, const unsigned char *eocd, uint64_t *cd_off,
              uint64_t *entries, struct errbuf *eb)
{
    size_t at = (size_t)(eocd - zip);
    const unsigned char *loc = at >= 20 ? eocd - 20 : NULL, *z;
    uint64_t z_off;

    *cd_off = rd32(eocd + 16);
    *entries = rd16(eocd + 10);
    if (loc == NULL || rd32(loc) != 0x07064b50) {
        if (rd16(eocd + 4) != 0 || rd16(eocd + 6) != 0)
            return err_set(eb, ERR_PARSE, "the report zip is multi-part or empty");
        return ERR_OK;
    }
    /* zip64: one disk, and the record (56 bytes at least) before the locator. */
    z_off = rd64(loc + 8);
    if (rd32(loc + 4) != 0 || rd32(loc + 16) != 1 || z_off > at - 20 || at - 20 - z_off < 56)
        return err_set(eb, ERR_PARSE, "the report zip's zip64 locator is damaged");
    z = zip + z_off;
    if (rd32(z) != 0x06064b50 || rd64(z + 4) < 44)
        return err_set(eb, ERR_PARSE, "the report zip's zip64 directory record is damaged");
    if (rd32(z + 16) != 0 || rd32(z + 20) != 0)
        return err_set(eb, ERR_PARSE, "the report zip is multi-part or empty");
    *entries = rd64(z + 32);
    *cd_off = rd64(z + 48);
    return ERR_OK;
}

/* Fills the zip64 values of a central directory entry from its extra field 0x0001: each of
 * usize, csize and lh_off that reads 0xFFFFFFFF is there, 8 bytes each, in that order. */
static int
zip64_extra(const unsigned char *x, size_t xlen, uint64_t *usize, uint64_t *csize, uint64_t *lh_off,
            struct errbuf *eb)
{
    while (xlen >= 4) {
        unsigned id = rd16(x), n = rd16(x + 2);
        size_t k = 0;

        if ((size_t)n > xlen - 4)
            break;
        if (id == 0x0001) {
            uint64_t *want[3] = {usize, csize, lh_off};

            for (size_t i = 0; i < 3; i++) {
                if (*want[i] != 0xFFFFFFFFu)
                    continue;
                if (k + 8 > n)
                    return err_set(eb, ERR_PARSE, "the report zip's zip64 field is short");
                *want[i] = rd64(x + 4 + k);
                k += 8;
            }
            return ERR_OK;
        }
        x += 4 + n;
        xlen -= 4 + (size_t)n;
    }
    return err_set(eb, ERR_PARSE, "the report zip's sizes need a zip64 field it does not have");
}

int
report_zip_csv(const unsigned char *zip, size_t len, size_t max_out, report_row_cb *cb, void *arg,
               struct errbuf *eb)
{
    const unsigned char *eocd = NULL, *cd, *lh, *data;
    uint64_t csize, usize, cd_off = 0, lh_off, entries = 0, in_left;
    uint32_t crc_want;
    unsigned method, flags, nlen, xlen, cd_nlen, cd_xlen;
    struct csv c;
    z_stream zs;
    unsigned char out[65536];
    uLong crc = crc32(0L, Z_NULL, 0);
    uint64_t total = 0;
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
    if ((rc = zip_directory(zip, eocd, &cd_off, &entries, eb)) != ERR_OK)
        return rc;
    if (entries < 1)
        return err_set(eb, ERR_PARSE, "the report zip is multi-part or empty");
    if (len < 46 || cd_off > len - 46)
        return err_set(eb, ERR_PARSE, "the report zip's directory is out of range");
    cd = zip + cd_off;
    if (rd32(cd) != 0x02014b50)
        return err_set(eb, ERR_PARSE, "the report zip's directory is damaged");
    flags = rd16(cd + 8);
    method = rd16(cd + 10);
    crc_want = rd32(cd + 16);
    csize = rd32(cd + 20);
    usize = rd32(cd + 24);
    cd_nlen = rd16(cd + 28);
    cd_xlen = rd16(cd + 30);
    lh_off = rd32(cd + 42);
    if (flags & 1)
        return err_set(eb, ERR_UNSUPPORTED, "the report zip is encrypted");
    if (csize == 0xFFFFFFFFu || usize == 0xFFFFFFFFu || lh_off == 0xFFFFFFFFu) {
        if ((size_t)cd_nlen + cd_xlen > len - cd_off - 46)
            return err_set(eb, ERR_PARSE, "the report zip's directory is out of range");
        if ((rc = zip64_extra(cd + 46 + cd_nlen, cd_xlen, &usize, &csize, &lh_off, eb)) != ERR_OK)
            return rc;
    }
    if (method != 0 && method != 8)
        return err_set(eb, ERR_UNSUPPORTED, "the report zip uses compression method %u", method);
    if (usize > max_out)
        return err_set(eb, ERR_TOOBIG, "the report's CSV is %llu bytes (limit %zu)",
                       (unsigned long long)usize, max_out);
    if (len < 30 || lh_off > len - 30 || rd32(zip + lh_off) != 0x04034b50)
        return err_set(eb, ERR_PARSE, "the report zip's file header is damaged");
    lh = zip + lh_off;
    nlen = rd16(lh + 26);
    xlen = rd16(lh + 28);
    if ((uint64_t)nlen + xlen > len - lh_off - 30 || csize > len - lh_off - 30 - nlen - xlen)
        return err_set(eb, ERR_PARSE, "the report zip is truncated");
    data = lh + 30 + nlen + xlen;

    csv_init(&c, cb, arg, eb);
    if (method == 0) {
        if (csize != usize) {
            rc = err_set(eb, ERR_PARSE, "the report zip's stored sizes disagree");
            goto out;
        }
        for (uint64_t off = 0; off < csize;) { /* crc32 takes at most 4 GiB at a time */
            uInt n = csize - off > (1u << 30) ? (1u << 30) : (uInt)(csize - off);

            crc = crc32(crc, data + off, n);
            off += n;
        }
        total = csize;
        rc = csv_feed(&c, (const char *)data, (size_t)csize);
    } else {
        memset(&zs, 0, sizeof zs);
        if (inflateInit2(&zs, -MAX_WBITS) != Z_OK) {
            rc = err_set(eb, ERR_NOMEM, "cannot start inflating the report");
            goto out;
        }
        zinit = 1;
        zs.next_in = (Bytef *)(uintptr_t)data;
        in_left = csize;
        for (;;) {
            int zr;
            size_t got;

            if (zs.avail_in == 0 && in_left > 0) { /* avail_in is 32 bits: feed in pieces */
                zs.avail_in = in_left > (1u << 30) ? (1u << 30) : (uInt)in_left;
                in_left -= zs.avail_in;
            }
            zs.next_out = out;
            zs.avail_out = sizeof out;
            zr = inflate(&zs, Z_NO_FLUSH);
            if (zr != Z_OK && zr != Z_STREAM_END && !(zr == Z_BUF_ERROR && in_left > 0)) {
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
            if (got == 0 && zs.avail_in == 0 && in_left == 0) {
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
