/* test_log.c - log lines: JSON members from a message's key=value fields, and text lines that no
 * value can break. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "log.h"

#define TS "2026-01-02T03:04:05.006Z"

/* The JSON line of msg, parsed; fails the test when it is not one JSON object and a newline. */
static json_t *
json_line(const char *msg)
{
    char line[8192];
    size_t n = log_format(line, sizeof line, LOG_WARN, TS, msg, 1, 0);
    json_error_t je;
    json_t *o;

    assert_true(n > 2);
    assert_int_equal(line[n - 1], '\n');
    assert_null(memchr(line, '\n', n - 1));
    o = json_loadb(line, n, 0, &je);
    if (o == NULL)
        fail_msg("not JSON: %s (%s)", line, je.text);
    assert_true(json_is_object(o));
    return o;
}

static const char *
str(const json_t *o, const char *key)
{
    const json_t *v = json_object_get(o, key);

    if (!json_is_string(v))
        fail_msg("member %s is not a string", key);
    return json_string_value(v);
}

static void
test_fields_become_members(void **state)
{
    json_t *o;

    (void)state;
    o = json_line("tenant failed tenant=0b1c2d3e-0000-4000-8000-000000000001 name=\"Contoso "
                  "Ltd\" code=auth_consent requests=12: Admin consent is missing. Grant it.");
    assert_string_equal(str(o, "ts"), TS);
    assert_string_equal(str(o, "level"), "warn");
    assert_string_equal(str(o, "msg"), "tenant failed");
    assert_string_equal(str(o, "tenant"), "0b1c2d3e-0000-4000-8000-000000000001");
    assert_string_equal(str(o, "name"), "Contoso Ltd");
    assert_string_equal(str(o, "code"), "auth_consent");
    assert_true(json_is_integer(json_object_get(o, "requests")));
    assert_int_equal(json_integer_value(json_object_get(o, "requests")), 12);
    assert_string_equal(str(o, "detail"), "Admin consent is missing. Grant it.");
    json_decref(o);
}

static void
test_numbers_only_when_plain(void **state)
{
    json_t *o;

    (void)state;
    o = json_line("sync finished run=7 devices=-3 zip=007 ms=1.5 big=12345678901234567890 "
                  "quoted=\"42\" id=0");
    assert_int_equal(json_integer_value(json_object_get(o, "run")), 7);
    assert_int_equal(json_integer_value(json_object_get(o, "devices")), -3);
    assert_int_equal(json_integer_value(json_object_get(o, "id")), 0);
    assert_string_equal(str(o, "zip"), "007");
    assert_string_equal(str(o, "ms"), "1.5");
    assert_string_equal(str(o, "big"), "12345678901234567890");
    assert_string_equal(str(o, "quoted"), "42");
    json_decref(o);
}

static void
test_plain_values_with_spaces_and_urls(void **state)
{
    json_t *o;

    (void)state;
    o = json_line("http failed url=http://127.0.0.1:8080/graph?… error=Couldn't connect to "
                  "server status=0");
    assert_string_equal(str(o, "msg"), "http failed");
    assert_string_equal(str(o, "url"), "http://127.0.0.1:8080/graph?…");
    assert_string_equal(str(o, "error"), "Couldn't connect to server");
    assert_int_equal(json_integer_value(json_object_get(o, "status")), 0);
    assert_null(json_object_get(o, "detail"));
    json_decref(o);
}

static void
test_no_fields_and_reserved_names(void **state)
{
    json_t *o;

    (void)state;
    o = json_line("api: internal error: x");
    assert_string_equal(str(o, "msg"), "api: internal error: x");
    assert_int_equal(json_object_size(o), 3);
    json_decref(o);
    o = json_line("secret expiry integration=1 app=sync level=critical msg=x ts=y: renew it");
    assert_string_equal(str(o, "level"), "warn");
    assert_string_equal(str(o, "field_level"), "critical");
    assert_string_equal(str(o, "field_msg"), "x");
    assert_string_equal(str(o, "field_ts"), "y");
    assert_string_equal(str(o, "ts"), TS);
    assert_string_equal(str(o, "msg"), "secret expiry");
    assert_string_equal(str(o, "detail"), "renew it");
    json_decref(o);
}

static void
test_hostile_values_stay_inside(void **state)
{
    json_t *o;

    (void)state;
    /* A quote, a newline, an escape sequence and a byte that is not UTF-8 in a name. */
    o = json_line("tenant synced tenant=t1 name=\"Evil\" Corp\n{\"level\":\"error\"}\x1b[2J\xff\" "
                  "devices=3");
    assert_string_equal(str(o, "tenant"), "t1");
    assert_string_equal(str(o, "name"), "Evil\" Corp\n{\"level\":\"error\"}\x1b[2J\xef\xbf\xbd");
    assert_string_equal(str(o, "level"), "warn");
    assert_int_equal(json_integer_value(json_object_get(o, "devices")), 3);
    json_decref(o);
}

static void
test_long_line_stays_one_object(void **state)
{
    char msg[2048], line[600];
    size_t n;
    json_error_t je;
    json_t *o;

    (void)state;
    n = (size_t)snprintf(msg, sizeof msg, "many a=1 b=\"");
    memset(msg + n, 'x', 1500);
    snprintf(msg + n + 1500, sizeof msg - n - 1500, "\" c=3");
    n = log_format(line, sizeof line, LOG_INFO, TS, msg, 1, 0);
    assert_true(n < sizeof line);
    assert_int_equal(line[n - 1], '\n');
    o = json_loadb(line, n, 0, &je);
    assert_non_null(o);
    assert_int_equal(json_integer_value(json_object_get(o, "a")), 1);
    assert_null(json_object_get(o, "b")); /* did not fit: left off */
    json_decref(o);
}

static void
test_text_escapes_control_characters(void **state)
{
    char line[1024];
    size_t n;

    (void)state;
    n = log_format(line, sizeof line, LOG_INFO, TS,
                   "tenant synced name=\"a\nZ info forged\r\x1b[2Kb\tc\x7f\" devices=1", 0, 0);
    assert_string_equal(line, TS " info tenant synced name=\"a\\nZ info forged\\r\\x1b[2Kb\\tc"
                                 "\\x7f\" devices=1\n");
    assert_int_equal(n, strlen(line));
    /* C1 controls too (U+009B is a CSI to some terminals); other UTF-8 stays as it is. */
    log_format(line, sizeof line, LOG_INFO, TS,
               "x name=\"\xc2\x9b"
               "2J caf\xc3\xa9\xc2\xa0\"",
               0, 0);
    assert_string_equal(line, TS " info x name=\"\\u009b2J caf\xc3\xa9\xc2\xa0\"\n");
    /* Behind a progress bar the line first clears it; that escape is the logger's own. */
    log_format(line, sizeof line, LOG_ERROR, TS, "x", 0, 1);
    assert_string_equal(line, "\r\033[K" TS " error x\n");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fields_become_members),
        cmocka_unit_test(test_numbers_only_when_plain),
        cmocka_unit_test(test_plain_values_with_spaces_and_urls),
        cmocka_unit_test(test_no_fields_and_reserved_names),
        cmocka_unit_test(test_hostile_values_stay_inside),
        cmocka_unit_test(test_long_line_stays_one_object),
        cmocka_unit_test(test_text_escapes_control_characters),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
