/* test_report.c - zip + CSV reading of Intune report exports. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <zlib.h>

#include "buf.h"
#include "report.h"

struct rows {
    char text[4096]; /* rows as "a|b|c\n" */
    size_t n;
};

static int
collect(void *arg, size_t row, const char *const *cells, size_t ncells)
{
    struct rows *r = arg;
    size_t len = strlen(r->text);

    assert_int_equal(row, r->n);
    for (size_t i = 0; i < ncells; i++)
        len +=
            (size_t)snprintf(r->text + len, sizeof r->text - len, "%s%s", i ? "|" : "", cells[i]);
    snprintf(r->text + len, sizeof r->text - len, "\n");
    r->n++;
    return 0;
}

/* collect, but for rows after the first two (the header and a filler too long for text). */
static int
collect_tail(void *arg, size_t row, const char *const *cells, size_t ncells)
{
    struct rows *r = arg;

    if (row < 2) {
        assert_int_equal(ncells, 3);
        r->n++;
        return 0;
    }
    return collect(arg, row, cells, ncells);
}

static void
put(struct buf *b, unsigned long v, int bytes)
{
    for (int i = 0; i < bytes; i++)
        buf_addc(b, (char)((v >> (8 * i)) & 0xFF));
}

/* A one-entry zip of text, deflated (method 8) or stored (0). */
static void
make_zip(struct buf *z, const char *text, int method, int corrupt_crc)
{
    size_t len = strlen(text);
    unsigned long crc = crc32(0L, (const Bytef *)text, (uInt)len);
    unsigned char comp[8192];
    size_t clen = len;
    size_t cd;

    if (method == 8) {
        z_stream zs;

        memset(&zs, 0, sizeof zs);
        assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
        zs.next_in = (Bytef *)(uintptr_t)text;
        zs.avail_in = (uInt)len;
        zs.next_out = comp;
        zs.avail_out = sizeof comp;
        assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
        clen = zs.total_out;
        deflateEnd(&zs);
    } else {
        memcpy(comp, text, len);
    }
    if (corrupt_crc)
        crc ^= 1;
    put(z, 0x04034b50, 4);
    put(z, 20, 2);
    put(z, 0, 2);
    put(z, (unsigned long)method, 2);
    put(z, 0, 4);
    put(z, crc, 4);
    put(z, clen, 4);
    put(z, len, 4);
    put(z, 5, 2);
    put(z, 0, 2);
    buf_add(z, "r.csv", 5);
    buf_add(z, comp, clen);
    cd = z->len;
    put(z, 0x02014b50, 4);
    put(z, 20, 2);
    put(z, 20, 2);
    put(z, 0, 2);
    put(z, (unsigned long)method, 2);
    put(z, 0, 4);
    put(z, crc, 4);
    put(z, clen, 4);
    put(z, len, 4);
    put(z, 5, 2);
    put(z, 0, 2);
    put(z, 0, 2);
    put(z, 0, 2);
    put(z, 0, 2);
    put(z, 0, 4);
    put(z, 0, 4);
    buf_add(z, "r.csv", 5);
    put(z, 0x06054b50, 4);
    put(z, 0, 2);
    put(z, 0, 2);
    put(z, 1, 2);
    put(z, 1, 2);
    put(z, z->len - cd - 4 - 2 - 2 - 2 - 2, 4);
    put(z, cd, 4);
    put(z, 0, 2);
}

/* The same entry as a zip64 archive, as large-report writers make it: 0xFFFFFFFF sizes and offset
 * with the real values in 0x0001 extra fields, and a zip64 end record found via its locator.
 * damage: 1 = the locator points past the record, 2 = the extra field is too short. */
static void
make_zip64(struct buf *z, const char *text, int damage)
{
    size_t len = strlen(text);
    unsigned long crc = crc32(0L, (const Bytef *)text, (uInt)len);
    unsigned char comp[8192];
    size_t clen, cd, cdlen, z64;
    z_stream zs;

    memset(&zs, 0, sizeof zs);
    assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY), Z_OK);
    zs.next_in = (Bytef *)(uintptr_t)text;
    zs.avail_in = (uInt)len;
    zs.next_out = comp;
    zs.avail_out = sizeof comp;
    assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
    clen = zs.total_out;
    deflateEnd(&zs);
    put(z, 0x04034b50, 4);
    put(z, 45, 2);
    put(z, 0, 2);
    put(z, 8, 2);
    put(z, 0, 4);
    put(z, crc, 4);
    put(z, 0xFFFFFFFFul, 4);
    put(z, 0xFFFFFFFFul, 4);
    put(z, 5, 2);
    put(z, 20, 2);
    buf_add(z, "r.csv", 5);
    put(z, 1, 2);
    put(z, 16, 2);
    put(z, len, 8);
    put(z, clen, 8);
    buf_add(z, comp, clen);
    cd = z->len;
    put(z, 0x02014b50, 4);
    put(z, 45, 2);
    put(z, 45, 2);
    put(z, 0, 2);
    put(z, 8, 2);
    put(z, 0, 4);
    put(z, crc, 4);
    put(z, 0xFFFFFFFFul, 4);
    put(z, 0xFFFFFFFFul, 4);
    put(z, 5, 2);
    put(z, damage == 2 ? 24 : 32, 2);
    put(z, 0, 2);
    put(z, 0, 2);
    put(z, 0, 2);
    put(z, 0, 4);
    put(z, 0xFFFFFFFFul, 4);
    buf_add(z, "r.csv", 5);
    put(z, 0x5455, 2); /* an extended-timestamp field first: the reader must skip it */
    put(z, 0, 2);
    put(z, 1, 2);
    put(z, damage == 2 ? 16 : 24, 2);
    put(z, len, 8);
    put(z, clen, 8);
    if (damage != 2)
        put(z, 0, 8);
    cdlen = z->len - cd;
    z64 = z->len;
    put(z, 0x06064b50, 4);
    put(z, 44, 8);
    put(z, 45, 2);
    put(z, 45, 2);
    put(z, 0, 4);
    put(z, 0, 4);
    put(z, 1, 8);
    put(z, 1, 8);
    put(z, cdlen, 8);
    put(z, cd, 8);
    put(z, 0x07064b50, 4);
    put(z, 0, 4);
    put(z, damage == 1 ? z64 + 100 : z64, 8);
    put(z, 1, 4);
    put(z, 0x06054b50, 4);
    put(z, 0xFFFF, 2);
    put(z, 0xFFFF, 2);
    put(z, 0xFFFF, 2);
    put(z, 0xFFFF, 2);
    put(z, 0xFFFFFFFFul, 4);
    put(z, 0xFFFFFFFFul, 4);
    put(z, 0, 2);
}

static const char csv_text[] = "\xEF\xBB\xBF"
                               "ApplicationKey,ApplicationName,DeviceId\r\n"
                               "k1,\"Office, 365\",d1\r\n"
                               "k2,\"say \"\"hi\"\"\",d2\r\n"
                               "k3,\"two\nlines\",d3\n"
                               "k4,,d4\n"
                               "\n";

static const char csv_rows[] = "ApplicationKey|ApplicationName|DeviceId\n"
                               "k1|Office, 365|d1\n"
                               "k2|say \"hi\"|d2\n"
                               "k3|two\nlines|d3\n"
                               "k4||d4\n";

static void
test_csv(void **state)
{
    struct rows r = {0};

    (void)state;
    assert_int_equal(report_csv_parse(csv_text, sizeof csv_text - 1, collect, &r, NULL), 0);
    assert_string_equal(r.text, csv_rows);
    assert_int_equal(r.n, 5);
}

static void
test_csv_errors(void **state)
{
    struct rows r = {0};
    struct errbuf eb = {0};
    char *big = malloc(REPORT_MAX_CELL + 10);

    (void)state;
    assert_int_equal(report_csv_parse("a,\"open\n", 8, collect, &r, &eb), ERR_PARSE);
    memset(big, 'x', REPORT_MAX_CELL + 9);
    big[REPORT_MAX_CELL + 9] = '\n';
    memset(&r, 0, sizeof r);
    assert_int_equal(report_csv_parse(big, REPORT_MAX_CELL + 10, collect, &r, &eb), ERR_TOOBIG);
    free(big);
}

/* A row of quotes, "" escapes, commas and line ends inside quotes and CR LF, placed so that the
 * first 64 KiB chunk inflate hands over ends at each of its bytes in turn. */
static void
test_csv_chunk_boundaries(void **state)
{
    static const char tricky[] = "k,\"a\"\"b,\r\nc\"\"\",x\"y\r\nk2,\"\",\r\n";
    static const char tricky_rows[] = "k|a\"b,\r\nc\"|x\"y\nk2||\n";
    const size_t chunk = 65536, head = 6; /* "h,n,d\n" */
    char *text = malloc(chunk + 256);
    struct rows *r = malloc(sizeof *r);

    (void)state;
    for (size_t at = 0; at <= sizeof tricky; at++) {
        /* the filler row "F...F,,\n" brings the tricky row's start to chunk - at */
        size_t fill = chunk - at - head - 3, len;
        struct buf z;

        memcpy(text, "h,n,d\n", head);
        memset(text + head, 'F', fill);
        memcpy(text + head + fill, ",,\n", 3);
        len = head + fill + 3;
        memcpy(text + len, tricky, sizeof tricky);
        len += sizeof tricky - 1;
        buf_init(&z, 1 << 20);
        make_zip(&z, text, 8, 0);
        memset(r, 0, sizeof *r);
        assert_int_equal(
            report_zip_csv((const unsigned char *)z.data, z.len, 1 << 20, collect_tail, r, NULL),
            0);
        assert_string_equal(r->text, tricky_rows);
        assert_int_equal(r->n, 4);
        buf_free(&z);
    }
    free(r);
    free(text);
}

static void
test_zip_deflated_and_stored(void **state)
{
    for (int method = 0; method <= 8; method += 8) {
        struct buf z;
        struct rows r = {0};

        (void)state;
        buf_init(&z, 1 << 20);
        make_zip(&z, csv_text, method, 0);
        assert_int_equal(
            report_zip_csv((const unsigned char *)z.data, z.len, 1 << 20, collect, &r, NULL), 0);
        assert_string_equal(r.text, csv_rows);
        buf_free(&z);
    }
}

static void
test_zip_damage(void **state)
{
    struct buf z;
    struct rows r = {0};
    struct errbuf eb = {0};

    (void)state;
    buf_init(&z, 1 << 20);
    make_zip(&z, csv_text, 8, 1);
    assert_int_equal(
        report_zip_csv((const unsigned char *)z.data, z.len, 1 << 20, collect, &r, &eb), ERR_PARSE);
    assert_non_null(strstr(eb.msg, "checksum"));
    buf_free(&z);

    buf_init(&z, 1 << 20);
    make_zip(&z, csv_text, 8, 0);
    memset(&r, 0, sizeof r);
    assert_int_equal(report_zip_csv((const unsigned char *)z.data, z.len, 10, collect, &r, &eb),
                     ERR_TOOBIG);
    memset(&r, 0, sizeof r);
    assert_int_equal(
        report_zip_csv((const unsigned char *)z.data, z.len / 2, 1 << 20, collect, &r, &eb),
        ERR_PARSE);
    assert_int_equal(report_zip_csv((const unsigned char *)"PK", 2, 1 << 20, collect, &r, &eb),
                     ERR_PARSE);
    buf_free(&z);
}

/* Reports past 4 GiB come as zip64: the same rows through the zip64 records; damaged zip64
 * records are refused, not read past. */
static void
test_zip64(void **state)
{
    struct buf z;
    struct rows r = {0};
    struct errbuf eb = {0};

    (void)state;
    buf_init(&z, 1 << 20);
    make_zip64(&z, csv_text, 0);
    assert_int_equal(
        report_zip_csv((const unsigned char *)z.data, z.len, 1 << 20, collect, &r, &eb), 0);
    assert_string_equal(r.text, csv_rows);
    buf_free(&z);
    for (int damage = 1; damage <= 2; damage++) {
        buf_init(&z, 1 << 20);
        make_zip64(&z, csv_text, damage);
        memset(&r, 0, sizeof r);
        assert_int_equal(
            report_zip_csv((const unsigned char *)z.data, z.len, 1 << 20, collect, &r, &eb),
            ERR_PARSE);
        assert_non_null(strstr(eb.msg, "zip64"));
        buf_free(&z);
    }
}

/* ---- the byte-at-a-time state machine csv_feed was, kept as the reference ------------------- */

struct ref_csv {
    struct buf *out;
    struct errbuf *eb;
    char *row;
    size_t len, cap, cell_off, offs[REPORT_MAX_COLS], ncells, row_no;
    int in_quotes, quote_pending, cell_started, after_cr, bom_checked;
    size_t bom_seen;
};

static void
ref_room(struct ref_csv *c, size_t n)
{
    while (c->cap - c->len < n) {
        c->cap = c->cap ? c->cap * 2 : 1024;
        c->row = realloc(c->row, c->cap);
        assert_non_null(c->row);
    }
}

static int
ref_end_cell(struct ref_csv *c)
{
    if (c->ncells >= REPORT_MAX_COLS)
        return err_set(c->eb, ERR_TOOBIG, "report row %zu has more than %d columns", c->row_no,
                       REPORT_MAX_COLS);
    ref_room(c, 1);
    c->row[c->len++] = '\0';
    c->offs[c->ncells++] = c->cell_off;
    c->cell_off = c->len;
    c->cell_started = 0;
    return ERR_OK;
}

/* Rows go to out as "row_no:" then cells each ended by '|', then '\n'. */
static int
ref_end_row(struct ref_csv *c)
{
    int rc;

    if (c->ncells == 0 && !c->cell_started)
        return ERR_OK;
    if ((rc = ref_end_cell(c)) != ERR_OK)
        return rc;
    buf_printf(c->out, "%zu:", c->row_no++);
    for (size_t i = 0; i < c->ncells; i++) {
        buf_addstr(c->out, c->row + c->offs[i]);
        buf_addc(c->out, '|');
    }
    buf_addc(c->out, '\n');
    c->ncells = c->len = c->cell_off = 0;
    return ERR_OK;
}

static int
ref_cell_add(struct ref_csv *c, const char *s, size_t n)
{
    c->cell_started = 1;
    if (n > REPORT_MAX_CELL - (c->len - c->cell_off))
        return err_set(c->eb, ERR_TOOBIG, "report row %zu has a cell over %d bytes", c->row_no,
                       REPORT_MAX_CELL);
    ref_room(c, n);
    memcpy(c->row + c->len, s, n);
    c->len += n;
    return ERR_OK;
}

static int
ref_csv_parse(const char *p, size_t n, struct buf *out, struct errbuf *eb)
{
    static const unsigned char bom[3] = {0xEF, 0xBB, 0xBF};
    struct ref_csv c = {.out = out, .eb = eb};
    int rc = ERR_OK;

    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        char ch = p[i];

        if (!c.bom_checked) {
            if ((unsigned char)ch == bom[c.bom_seen]) {
                if (++c.bom_seen == 3)
                    c.bom_checked = 1;
                continue;
            }
            c.bom_checked = 1;
            if (c.bom_seen > 0 && (rc = ref_cell_add(&c, (const char *)bom, c.bom_seen)) != ERR_OK)
                break;
        }
        if (c.in_quotes) {
            if (c.quote_pending) {
                c.quote_pending = 0;
                if (ch == '"') {
                    rc = ref_cell_add(&c, "\"", 1);
                    continue;
                }
                c.in_quotes = 0;
            } else if (ch == '"') {
                c.quote_pending = 1;
                continue;
            } else {
                rc = ref_cell_add(&c, &ch, 1);
                continue;
            }
        }
        if (c.after_cr) {
            c.after_cr = 0;
            if (ch == '\n')
                continue;
        }
        switch (ch) {
        case '"':
            if (c.len == c.cell_off) {
                c.in_quotes = 1;
                c.cell_started = 1;
            } else {
                rc = ref_cell_add(&c, &ch, 1);
            }
            break;
        case ',':
            rc = ref_end_cell(&c);
            c.cell_started = 1;
            break;
        case '\r':
            c.after_cr = 1;
            rc = ref_end_row(&c);
            break;
        case '\n':
            rc = ref_end_row(&c);
            break;
        default:
            rc = ref_cell_add(&c, &ch, 1);
            break;
        }
    }
    if (rc == ERR_OK) {
        if (c.in_quotes && !c.quote_pending)
            rc = err_set(eb, ERR_PARSE, "report row %zu ends inside a quoted cell", c.row_no);
        else
            rc = ref_end_row(&c);
    }
    free(c.row);
    return rc;
}

struct out_rows {
    struct buf *out;
    size_t skip; /* rows before this one are not written (the filler of the chunked runs) */
};

static int
out_row(void *arg, size_t row, const char *const *cells, size_t ncells)
{
    struct out_rows *o = arg;

    if (row < o->skip)
        return 0;
    buf_printf(o->out, "%zu:", row);
    for (size_t i = 0; i < ncells; i++) {
        buf_addstr(o->out, cells[i]);
        buf_addc(o->out, '|');
    }
    buf_addc(o->out, '\n');
    return 0;
}

static uint64_t
rnd(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

/* Random CSV-ish text over the bytes that matter: quotes, commas, line ends, BOM bytes. */
static size_t
random_csv(uint64_t *s, char *t, size_t max)
{
    static const char alphabet[] = "\"\",,\r\n\nab \xEF\xBB\xBF";
    size_t n = (size_t)(rnd(s) % max);

    for (size_t i = 0; i < n; i++)
        t[i] = alphabet[rnd(s) % (sizeof alphabet - 1)];
    if (rnd(s) % 4 == 0 && n >= 3)
        memcpy(t, "\xEF\xBB\xBF", 1 + rnd(s) % 3);
    return n;
}

static void
expect_same(const char *text, size_t len, int rc, const struct errbuf *eb, const struct buf *got,
            size_t skip_rows, const char *label)
{
    struct buf want;
    struct errbuf ew = {0};
    int rw;

    buf_init(&want, 1 << 24);
    rw = ref_csv_parse(text, len, &want, &ew);
    if (rc != rw || (rc != ERR_OK && strcmp(eb->msg, ew.msg) != 0))
        fail_msg("%s: rc %d (%s) vs reference %d (%s)", label, rc, eb->msg, rw, ew.msg);
    if (rc == ERR_OK) {
        /* skip the reference's filler rows too */
        const char *w = buf_cstr(&want);

        for (size_t r = 0; r < skip_rows; r++)
            w = strchr(w, '\n') + 1;
        if (strcmp(buf_cstr(got), w) != 0)
            fail_msg("%s: rows differ", label);
    }
    buf_free(&want);
}

/* report_csv_parse agrees with the reference on random text, limits included. */
static void
test_csv_differential(void **state)
{
    uint64_t seed = 0x9e3779b97f4a7c15u;
    char t[400];
    char *big = malloc(2 * REPORT_MAX_CELL + 16);

    (void)state;
    for (int r = 0; r < 40000; r++) {
        size_t n = random_csv(&seed, t, r % 2 ? sizeof t : 24);
        struct buf got;
        struct errbuf eb = {0};
        struct out_rows o = {&got, 0};
        char label[32];
        int rc;

        buf_init(&got, 1 << 24);
        rc = report_csv_parse(t, n, out_row, &o, &eb);
        snprintf(label, sizeof label, "round %d", r);
        expect_same(t, n, rc, &eb, &got, 0, label);
        buf_free(&got);
    }
    /* A quoted cell reaching the size limit just before or on a "" escape. */
    for (size_t x = REPORT_MAX_CELL - 2; x <= REPORT_MAX_CELL; x++) {
        struct buf got;
        struct errbuf eb = {0};
        struct out_rows o = {&got, 0};
        size_t n = 0;
        int rc;

        big[n++] = '"';
        memset(big + n, 'x', x);
        n += x;
        memcpy(big + n, "\"\"\"\n", 4);
        n += 4;
        buf_init(&got, 1 << 24);
        rc = report_csv_parse(big, n, out_row, &o, &eb);
        expect_same(big, n, rc, &eb, &got, 0, "limit");
        buf_free(&got);
    }
    /* Rows read in one go: cells about the size limit, plain and quoted; 63 to 65 columns. */
    for (size_t x = REPORT_MAX_CELL - 1; x <= REPORT_MAX_CELL + 1; x++) {
        for (int quoted = 0; quoted <= 1; quoted++) {
            struct buf got;
            struct errbuf eb = {0};
            struct out_rows o = {&got, 0};
            size_t n = 0;
            int rc;

            memcpy(big, "a,", 2);
            n = 2 + (size_t)quoted;
            big[2] = '"';
            memset(big + n, 'x', x);
            n += x;
            if (quoted)
                big[n++] = '"';
            memcpy(big + n, ",b\r\n", 4);
            n += 4;
            buf_init(&got, 1 << 24);
            rc = report_csv_parse(big, n, out_row, &o, &eb);
            expect_same(big, n, rc, &eb, &got, 0, "cell limit in one go");
            buf_free(&got);
        }
    }
    for (size_t cols = REPORT_MAX_COLS - 1; cols <= REPORT_MAX_COLS + 1; cols++) {
        struct buf got, text;
        struct errbuf eb = {0};
        struct out_rows o = {&got, 0};
        int rc;

        buf_init(&text, 1 << 20);
        for (size_t k = 0; k < cols; k++)
            buf_addstr(&text, k % 2 ? "\"q\"," : "p,");
        text.data[text.len - 1] = '\n';
        buf_init(&got, 1 << 24);
        rc = report_csv_parse(text.data, text.len, out_row, &o, &eb);
        expect_same(text.data, text.len, rc, &eb, &got, 0, "columns in one go");
        buf_free(&got);
        buf_free(&text);
    }
    free(big);
}

/* The same through a deflated zip, the random text straddling the first 64 KiB chunk's end. */
static void
test_csv_differential_chunked(void **state)
{
    const size_t chunk = 65536;
    uint64_t seed = 0x2545f4914f6cdd1du;
    char *text = malloc(chunk + 512);

    (void)state;
    for (int r = 0; r < 300; r++) {
        size_t n, at = (size_t)(rnd(&seed) % 300), fill = chunk - at - 4;
        struct buf got, z;
        struct errbuf eb = {0};
        struct out_rows o = {&got, 1};
        char label[32];
        int rc;

        memset(text, 'F', fill);
        memcpy(text + fill, ",,\r\n", 4);
        n = fill + 4 + random_csv(&seed, text + fill + 4, 400);
        text[n] = '\0';
        if (strlen(text) != n)
            continue; /* make_zip takes a C string */
        buf_init(&z, 1 << 20);
        make_zip(&z, text, 8, 0);
        buf_init(&got, 1 << 24);
        rc = report_zip_csv((const unsigned char *)z.data, z.len, 1 << 20, out_row, &o, &eb);
        snprintf(label, sizeof label, "chunked round %d", r);
        expect_same(text, n, rc, &eb, &got, 1, label);
        buf_free(&got);
        buf_free(&z);
    }
    free(text);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_csv_errors),
        cmocka_unit_test(test_csv_chunk_boundaries),
        cmocka_unit_test(test_zip_deflated_and_stored),
        cmocka_unit_test(test_zip_damage),
        cmocka_unit_test(test_zip64),
        cmocka_unit_test(test_csv_differential),
        cmocka_unit_test(test_csv_differential_chunked),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
