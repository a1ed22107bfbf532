/* test_lifecycle.c - known rows of the OS end-of-support table, as Intune reports versions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <string.h>

#include "lifecycle.h"

static void
expect_row(const char *os, const char *ver, const char *release, const char *eos, const char *ext)
{
    struct lifecycle_info li;

    memset(&li, 0x5a, sizeof li);
    assert_int_equal(lifecycle_lookup(os, ver, &li), 1);
    assert_string_equal(li.release, release);
    assert_string_equal(li.end_of_support, eos);
    assert_string_equal(li.extended_end, ext);
}

static void
expect_unknown(const char *os, const char *ver)
{
    struct lifecycle_info li;

    assert_int_equal(lifecycle_lookup(os, ver, &li), 0);
}

static void
test_windows(void **state)
{
    (void)state;
    expect_row("Windows", "10.0.19045.4291", "Windows 10 22H2", "2025-10-14", "2028-10-10");
    expect_row("Windows", "10.0.22631.3447", "Windows 11 23H2", "2025-11-11", "");
    expect_row("Windows", "10.0.18363.1556", "Windows 10 1909", "2021-05-11", "");
    expect_row("windows", "10.0.26100", "Windows 11 24H2", "2026-10-13", "");
    expect_row("Windows", "10.0.22000.2538", "Windows 11 21H2", "2023-10-10", "");
    /* Server-only builds. */
    expect_row("Windows", "10.0.20348.2402", "Windows Server 2022", "2031-10-14", "");
    expect_row("Windows", "6.3.9600.21620", "Windows Server 2012 R2", "2023-10-10", "2026-10-13");
    /* Insider builds are unknown, not rounded. */
    expect_unknown("Windows", "10.0.26120.1");
    expect_unknown("Windows", "10.0");
    expect_unknown("Windows", "");
    expect_unknown("Windows", "abc");
    expect_unknown("Windows", "10.0.99999999999999999999.1");
}

static void
test_apple_android(void **state)
{
    (void)state;
    expect_row("macOS", "10.15.7", "macOS 10.15 Catalina", "2026-02-02", "");
    expect_row("macOS", "14.4.1", "macOS 14 Sonoma", "", "");
    expect_unknown("macOS", "10.14.6");
    expect_row("iOS", "16.7.8", "iOS 16", "", "");
    expect_row("iOS", "17.4.1", "iOS 17", "2025-05-13", "");
    expect_row("iPadOS", "17.4.1", "iPadOS 17", "", ""); /* differs from iOS 17 */
    expect_row("Android", "8.1.0", "Android 8.1 Oreo", "2021-01-10", "");
    expect_row("AndroidEnterprise", "8.0.0", "Android 8.0 Oreo", "2021-01-01", "");
    expect_row("AndroidForWork", "14", "Android 14 Upside Down Cake", "", "");
    expect_row("Android", "12.1", "Android 12L (12.1) Snow Cone v2", "2025-03-03", "");
    expect_row("Android", "12", "Android 12 Snow Cone", "2025-03-03", "");
    expect_row("Android", "13", "Android 13 Tiramisu", "2026-03-02", "");
}

static void
test_unknown(void **state)
{
    struct lifecycle_info li;

    (void)state;
    expect_unknown("Linux", "6.1");
    expect_unknown("unknown", "10.0.19045.1");
    expect_unknown("iOS", "5.1");
    assert_int_equal(lifecycle_lookup(NULL, "1", &li), 0);
    assert_int_equal(lifecycle_lookup("iOS", NULL, &li), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_windows),
        cmocka_unit_test(test_apple_android),
        cmocka_unit_test(test_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
