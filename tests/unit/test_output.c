/* test_output.c - CSV quoting and formula neutralisation, JSON streaming, table layout. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "output.h"

struct cap {
    char *data;
    size_t len;
    FILE *fp;
};

static void
cap_open(struct cap *c)
{
    memset(c, 0, sizeof *c);
    c->fp = open_memstream(&c->data, &c->len);
    assert_non_null(c->fp);
}

static void
cap_close(struct cap *c)
{
    fclose(c->fp);
}

static json_t *
row(const char *text)
{
    json_error_t jerr;
    json_t *r = json_loads(text, 0, &jerr);

    assert_non_null(r);
    return r;
}

/* Writes rows (JSON texts) in fmt with columns and returns the output (caller frees). */
static char *
render(enum output_format fmt, const char *const *cols, size_t ncols, const char *const *rows,
       size_t nrows)
{
    struct cap c;
    struct output *o = NULL;
    struct errbuf eb = {0};

    cap_open(&c);
    assert_int_equal(output_begin(&o, c.fp, fmt, cols, ncols, &eb), ERR_OK);
    for (size_t i = 0; i < nrows; i++) {
        json_t *r = row(rows[i]);
        assert_int_equal(output_row(o, r, &eb), ERR_OK);
        json_decref(r);
    }
    assert_int_equal(output_end(o, &eb), ERR_OK);
    cap_close(&c);
    return c.data;
}

static void
test_format_parse(void **state)
{
    enum output_format f;
    struct errbuf eb = {0};

    (void)state;
    assert_int_equal(output_format_parse("csv", &f, &eb), ERR_OK);
    assert_int_equal(f, OUTPUT_CSV);
    assert_int_equal(output_format_parse("jsonl", &f, &eb), ERR_OK);
    assert_int_equal(f, OUTPUT_JSONL);
    assert_int_equal(output_format_parse("xml", &f, &eb), ERR_USAGE);
    assert_non_null(strstr(eb.msg, "xml"));
}

static void
test_csv_quoting(void **state)
{
    static const char *const cols[] = {"id", "client.name", "note", "size"};
    static const char *const rows[] = {
        ("{\"id\":1,\"client\":{\"name\":\"Contoso, Ltd\"},\"note\":\"say \\\"hi\\\"\","
         "\"size\":8796093022208}"),
        "{\"id\":2,\"client\":{\"name\":\"Fabrikam\"},\"note\":\"line1\\nline2\",\"size\":null}",
        "{\"id\":3,\"client\":null}",
    };
    char *out;

    (void)state;
    out = render(OUTPUT_CSV, cols, 4, rows, 3);
    assert_string_equal(out, "id,client.name,note,size\r\n"
                             "1,\"Contoso, Ltd\",\"say \"\"hi\"\"\",8796093022208\r\n"
                             "2,Fabrikam,\"line1\nline2\",\r\n"
                             "3,,,\r\n");
    free(out);
}

static void
test_csv_formula_neutralised(void **state)
{
    static const char *const cols[] = {"v"};
    static const char *const rows[] = {
        "{\"v\":\"=HYPERLINK(\\\"http://x\\\")\"}",
        "{\"v\":\"+1\"}",
        "{\"v\":\"-2+3\"}",
        "{\"v\":\"@SUM(A1)\"}",
        "{\"v\":\"\\tx\"}",
        "{\"v\":\"\\rx\"}",
        "{\"v\":-5}",
        "{\"v\":\"plain\"}",
    };
    char *out;

    (void)state;
    out = render(OUTPUT_CSV, cols, 1, rows, 8);
    assert_string_equal(out, "v\r\n"
                             "\"'=HYPERLINK(\"\"http://x\"\")\"\r\n"
                             "'+1\r\n"
                             "'-2+3\r\n"
                             "'@SUM(A1)\r\n"
                             "'\tx\r\n"
                             "\"'\rx\"\r\n"
                             "-5\r\n"
                             "plain\r\n");
    free(out);
}

static void
test_csv_columns_from_first_row(void **state)
{
    static const char *const rows[] = {
        "{\"id\":7,\"client\":{\"id\":1,\"name\":\"C\"},\"ok\":true}",
    };
    char *out;

    (void)state;
    out = render(OUTPUT_CSV, NULL, 0, rows, 1);
    assert_string_equal(out, "id,client.id,client.name,ok\r\n7,1,C,true\r\n");
    free(out);
}

static void
test_json_array_and_lines(void **state)
{
    static const char *const rows[] = {
        "{\"id\":1,\"storage\":{\"total_bytes\":8796093022208}}",
        "{\"id\":2,\"storage\":{\"total_bytes\":null}}",
    };
    json_error_t jerr;
    json_t *arr;
    char *out, *nl;

    (void)state;
    out = render(OUTPUT_JSON, NULL, 0, rows, 2);
    arr = json_loads(out, 0, &jerr);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 2);
    assert_true(json_integer_value(output_lookup(json_array_get(arr, 0), "storage.total_bytes")) ==
                INT64_C(8796093022208));
    assert_true(json_is_null(output_lookup(json_array_get(arr, 1), "storage.total_bytes")));
    json_decref(arr);
    free(out);

    out = render(OUTPUT_JSON, NULL, 0, rows, 0);
    arr = json_loads(out, 0, &jerr);
    assert_non_null(arr);
    assert_int_equal(json_array_size(arr), 0);
    json_decref(arr);
    free(out);

    out = render(OUTPUT_JSONL, NULL, 0, rows, 2);
    nl = strchr(out, '\n');
    assert_non_null(nl);
    *nl = '\0';
    arr = json_loads(out, 0, &jerr);
    assert_non_null(arr);
    assert_int_equal(json_integer_value(json_object_get(arr, "id")), 1);
    json_decref(arr);
    arr = json_loads(nl + 1, 0, &jerr);
    assert_non_null(arr);
    assert_int_equal(json_integer_value(json_object_get(arr, "id")), 2);
    assert_string_equal(strchr(nl + 1, '\n'), "\n");
    json_decref(arr);
    free(out);
}

static void
test_table(void **state)
{
    static const char *const cols[] = {"id", "name", "os"};
    static const char *const rows[] = {
        "{\"id\":1,\"name\":\"LAPTOP-1\",\"os\":\"Windows\"}",
        "{\"id\":22,\"name\":\"bad\\u0007name\\ttab\",\"os\":null}",
        "{\"id\":3,\"name\":\"0123456789012345678901234567890123456789EXTRA\",\"os\":\"iOS\"}",
    };
    char *out;

    (void)state;
    out = render(OUTPUT_TABLE, cols, 3, rows, 3);
    assert_string_equal(out, "ID  Name                                      OS\n"
                             "1   LAPTOP-1                                  Windows\n"
                             "22  bad name tab                              \n"
                             "3   012345678901234567890123456789012345678\xe2\x80\xa6  iOS\n");
    free(out);
}

static void
test_table_exact_width_not_cut(void **state)
{
    static const char *const cols[] = {"v"};
    static const char *const rows[] = {
        "{\"v\":\"0123456789012345678901234567890123456789\"}",
        "{\"v\":\"\\u00e9t\\u00e9\"}",
    };
    char *out;

    (void)state;
    out = render(OUTPUT_TABLE, cols, 1, rows, 2);
    assert_string_equal(out, "V\n0123456789012345678901234567890123456789\n\xc3\xa9t\xc3\xa9\n");
    free(out);
}

/* CJK characters take two terminal columns: columns align by display width, and a long value is
 * cut at 40 columns (not 40 characters). Headers are words. */
static void
test_table_cjk_display_width(void **state)
{
    static const char *const cols[] = {"client.name", "serial_number", "os"};
    static const char *const rows[] = {
        /* 東京 = 4 columns */
        "{\"client\":{\"name\":\"\u6771\u4eac\"},\"serial_number\":\"S1\",\"os\":\"iOS\"}",
        "{\"client\":{\"name\":\"Contoso\"},\"serial_number\":\"S2\",\"os\":\"Windows\"}",
        /* 25 CJK characters = 50 columns: cut to 19 (38 columns) and the ellipsis (39) */
        "{\"client\":{\"name\":\"\u5927\u5927\u5927\u5927\u5927\u5927\u5927\u5927\u5927"
        "\u5927\u5927\u5927\u5927\u5927\u5927\u5927\u5927\u5927\u5927\u5927\u5927\u5927"
        "\u5927\u5927\u5927\"},\"serial_number\":\"S3\",\"os\":\"macOS\"}",
    };
    char *out, *big = NULL;
    size_t n = 0;
    FILE *mem = open_memstream(&big, &n);

    (void)state;
    for (int i = 0; i < 19; i++)
        fputs("\xe5\xa4\xa7", mem);
    fclose(mem);
    out = render(OUTPUT_TABLE, cols, 3, rows, 3);
    {
        char want[1024];

        snprintf(want, sizeof want,
                 "Client                                   Serial number  OS\n"
                 "\xe6\x9d\xb1\xe4\xba\xac                                     S1             iOS\n"
                 "Contoso                                  S2             Windows\n"
                 "%s\xe2\x80\xa6  S3             macOS\n",
                 big);
        assert_string_equal(out, want);
    }
    free(big);
    free(out);
}

static void
test_row_not_object(void **state)
{
    struct cap c;
    struct output *o = NULL;
    struct errbuf eb = {0};
    json_t *arr = json_array();

    (void)state;
    cap_open(&c);
    assert_int_equal(output_begin(&o, c.fp, OUTPUT_JSONL, NULL, 0, &eb), ERR_OK);
    assert_int_equal(output_row(o, arr, &eb), ERR_INVAL);
    assert_int_equal(output_end(o, &eb), ERR_OK);
    cap_close(&c);
    assert_string_equal(c.data, "");
    free(c.data);
    json_decref(arr);
    assert_int_equal(output_end(NULL, &eb), ERR_OK);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_format_parse),
        cmocka_unit_test(test_csv_quoting),
        cmocka_unit_test(test_csv_formula_neutralised),
        cmocka_unit_test(test_csv_columns_from_first_row),
        cmocka_unit_test(test_json_array_and_lines),
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_table_exact_width_not_cut),
        cmocka_unit_test(test_table_cjk_display_width),
        cmocka_unit_test(test_row_not_object),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
