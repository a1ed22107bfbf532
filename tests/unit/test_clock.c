/* test_clock.c - RFC 3339 formatting (the hand-written fast path and its fallback) and parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "clock.h"

static void
check_like_gmtime(int64_t t)
{
    char got[32], want[32];
    struct tm tm;
    time_t tt = (time_t)t;

    gmtime_r(&tt, &tm);
    snprintf(want, sizeof want, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    clock_fmt(t, got, sizeof got);
    assert_string_equal(got, want);
}

static void
test_fmt(void **state)
{
    char out[32];
    int64_t back = 0;

    (void)state;
    clock_fmt(0, out, sizeof out);
    assert_string_equal(out, "1970-01-01T00:00:00Z");
    clock_fmt(INT64_C(1767225600), out, sizeof out);
    assert_string_equal(out, "2026-01-01T00:00:00Z");
    clock_fmt(INT64_C(253402300799), out, sizeof out);
    assert_string_equal(out, "9999-12-31T23:59:59Z");
    clock_fmt(-1, out, sizeof out);
    assert_string_equal(out, "1969-12-31T23:59:59Z");
    clock_fmt(TS_NULL, out, sizeof out);
    assert_string_equal(out, "");
    /* Past year 9999 and into a short buffer: the snprintf path, truncated but terminated. */
    check_like_gmtime(INT64_C(253402300800));
    clock_fmt(INT64_C(1767225600), out, 8);
    assert_string_equal(out, "2026-01");
    for (int64_t t = -86400 * 400; t < INT64_C(4102444800); t += INT64_C(86400) * 37 + 3671)
        check_like_gmtime(t);
    clock_fmt(INT64_C(1767225659), out, sizeof out);
    assert_int_equal(clock_parse(out, &back), 0);
    assert_true(back == INT64_C(1767225659));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fmt),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
