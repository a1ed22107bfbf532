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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_csv),
        cmocka_unit_test(test_csv_errors),
        cmocka_unit_test(test_csv_chunk_boundaries),
        cmocka_unit_test(test_zip_deflated_and_stored),
        cmocka_unit_test(test_zip_damage),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
