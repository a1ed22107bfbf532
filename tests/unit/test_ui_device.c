/* test_ui_device.c - the device page as a technician reads it: sizes, ages, dates with their
 * time zone, the OS support status in words, the Intune link, the history's words. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "ui_device.h"

/* 2026-12-07T12:00:00Z */
#define NOW INT64_C(1796644800)

static void
esc(struct buf *b, const char *s)
{
    for (; s != NULL && *s != '\0'; s++) {
        if (*s == '<')
            buf_addstr(b, "&lt;");
        else if (*s == '&')
            buf_addstr(b, "&amp;");
        else if (*s == '"')
            buf_addstr(b, "&quot;");
        else
            buf_addc(b, *s);
    }
}

static const struct ui_device_env env = {esc};

static void
test_size(void **state)
{
    char s[32];

    (void)state;
    ui_device_size(s, sizeof s, INT64_C(512110190592));
    assert_string_equal(s, "512 GB");
    ui_device_size(s, sizeof s, INT64_C(68719476736));
    assert_string_equal(s, "68.7 GB");
    ui_device_size(s, sizeof s, INT64_C(3221225472));
    assert_string_equal(s, "3.2 GB");
    ui_device_size(s, sizeof s, INT64_C(999));
    assert_string_equal(s, "999 bytes");
    ui_device_size(s, sizeof s, INT64_C(1500000));
    assert_string_equal(s, "1.5 MB");
    ui_device_size(s, sizeof s, INT64_C(2000000000000));
    assert_string_equal(s, "2.0 TB");
    ui_device_size(s, sizeof s, -1);
    assert_string_equal(s, "");
}

static void
test_age(void **state)
{
    char s[48];

    (void)state;
    ui_device_age(s, sizeof s, NOW - 3 * 86400 - 5, NOW);
    assert_string_equal(s, "3 days ago");
    ui_device_age(s, sizeof s, NOW - 86400, NOW);
    assert_string_equal(s, "1 day ago");
    ui_device_age(s, sizeof s, NOW - 30, NOW);
    assert_string_equal(s, "just now");
    ui_device_age(s, sizeof s, NOW - 7200, NOW);
    assert_string_equal(s, "2 hours ago");
    ui_device_age(s, sizeof s, NOW - 400 * 86400, NOW);
    assert_string_equal(s, "1 year ago");
    ui_device_age(s, sizeof s, NOW - 65 * 86400, NOW);
    assert_string_equal(s, "2 months ago");
    ui_device_age(s, sizeof s, NOW + 2 * 86400, NOW);
    assert_string_equal(s, "in 2 days");
}

static void
test_when(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 4096);
    ui_device_when(&b, "2026-12-04T10:15:00Z", NOW, &env);
    assert_non_null(strstr(buf_cstr(&b), "2026-12-04 10:15 UTC"));
    assert_non_null(strstr(buf_cstr(&b), "datetime=\"2026-12-04T10:15:00Z\""));
    assert_non_null(strstr(buf_cstr(&b), "3 days ago"));
    buf_reset(&b);
    ui_device_when(&b, "<nonsense>", NOW, &env);
    assert_string_equal(buf_cstr(&b), "&lt;nonsense>");
    buf_reset(&b);
    ui_device_when(&b, NULL, NOW, &env);
    assert_non_null(strstr(buf_cstr(&b), "—"));
    buf_free(&b);
}

static void
test_support(void **state)
{
    char s[256];

    (void)state;
    /* Windows 10 22H2: ended 2025-10-14. */
    assert_string_equal(ui_device_support("Windows", "10.0.19045.4529", NOW, s, sizeof s), "error");
    assert_non_null(strstr(s, "past support since 2025-10-14"));
    /* Windows 11 25H2 Home/Pro: until 2027-10-12. */
    assert_string_equal(ui_device_support("Windows", "10.0.26200.7171", NOW, s, sizeof s), "ok");
    assert_non_null(strstr(s, "supported until 2027-10-12"));
    /* The same build seen before its end: still supported. */
    assert_string_equal(
        ui_device_support("Windows", "10.0.19045.4529", INT64_C(1735689600), s, sizeof s), "ok");
    assert_non_null(strstr(s, "supported until 2025-10-14"));
    assert_string_equal(ui_device_support("iOS", "18.0", NOW, s, sizeof s), "ok");
    assert_non_null(strstr(s, "no end date announced"));
    assert_string_equal(ui_device_support("Windows", "10.0.99999.1", NOW, s, sizeof s), "never");
    assert_non_null(strstr(s, "unknown"));
    assert_string_equal(ui_device_support(NULL, NULL, NOW, s, sizeof s), "never");
}

static void
test_intune_url(void **state)
{
    char u[512];

    (void)state;
    assert_int_equal(ui_device_intune_url(u, sizeof u, NULL, "aaaaaaaa-0000-0000-0000-000000000001",
                                          "bbbbbbbb-0000-0000-0000-000000000002"),
                     1);
    assert_string_equal(u, "https://intune.microsoft.com/aaaaaaaa-0000-0000-0000-000000000001/"
                           "#view/Microsoft_Intune_Devices/DeviceSettingsMenuBlade/~/overview/"
                           "mdmDeviceId/bbbbbbbb-0000-0000-0000-000000000002");
    /* Each cloud's admin center; an unknown name falls back to the global one. */
    {
        static const char *const want[][2] = {
            {"global", "https://intune.microsoft.com/"},
            {"usgov", "https://intune.microsoft.us/"},
            {"usgovdod", "https://intune.microsoft.us/"},
            {"china", "https://intune.microsoftonline.cn/"},
            {"", "https://intune.microsoft.com/"},
            {"mars", "https://intune.microsoft.com/"},
        };

        for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
            assert_int_equal(ui_device_intune_url(u, sizeof u, want[i][0],
                                                  "aaaaaaaa-0000-0000-0000-000000000001",
                                                  "bbbbbbbb-0000-0000-0000-000000000002"),
                             1);
            assert_true(strncmp(u, want[i][1], strlen(want[i][1])) == 0);
            assert_non_null(strstr(u, "/aaaaaaaa-0000-0000-0000-000000000001/#view/"));
        }
    }
    /* Not GUIDs: no link (an id is never pasted into a URL unchecked). */
    assert_int_equal(ui_device_intune_url(u, sizeof u, NULL, "x\"><script>",
                                          "bbbbbbbb-0000-0000-0000-000000000002"),
                     0);
    assert_string_equal(u, "");
    assert_int_equal(ui_device_intune_url(u, 20, NULL, "aaaaaaaa-0000-0000-0000-000000000001",
                                          "bbbbbbbb-0000-0000-0000-000000000002"),
                     0);
}

/* The page's link follows the integration's cloud. */
static void
test_fields_cloud(void **state)
{
    json_t *a = json_pack("{s:{s:i, s:s, s:s}, s:{s:s}}", "client", "id", 7, "name", "Agency",
                          "tenant_id", "aaaaaaaa-0000-0000-0000-000000000001", "source",
                          "intune_device_id", "bbbbbbbb-0000-0000-0000-000000000002");
    struct buf b;

    (void)state;
    buf_init(&b, 1 << 20);
    ui_device_fields(&b, a, "usgov", NOW, &env);
    assert_non_null(strstr(buf_cstr(&b), "href=\"https://intune.microsoft.us/aaaaaaaa-"));
    assert_null(strstr(buf_cstr(&b), "intune.microsoft.com"));
    buf_free(&b);
    json_decref(a);
}

static void
test_fields_and_history(void **state)
{
    json_t *a = json_pack(
        "{s:{s:i, s:s, s:s}, s:{s:s}, s:s, s:{s:s, s:s}, s:{s:I, s:I}, s:s, s:b}", "client", "id",
        7, "name", "Contoso <Ltd>", "tenant_id", "aaaaaaaa-0000-0000-0000-000000000001", "source",
        "intune_device_id", "bbbbbbbb-0000-0000-0000-000000000002", "serial_number", "SN-1",
        "operating_system", "name", "Windows", "version", "10.0.19045.4529", "storage",
        "total_bytes", (json_int_t)512110190592, "free_bytes", (json_int_t)3221225472,
        "last_check_in_at", "2026-12-04T10:15:00Z", "is_encrypted", 1);
    json_t *h =
        json_pack("[{s:s, s:s, s:s, s:s}, {s:s, s:s, s:s, s:s}]", "at", "2026-12-01T08:00:00Z",
                  "field", "os_version", "old_value", "10.0.19045.4291", "new_value",
                  "10.0.19045.4529", "at", "2026-11-01T08:00:00Z", "field", "storage_total_bytes",
                  "old_value", "256060514304", "new_value", "512110190592");
    struct buf b;
    const char *s;

    (void)state;
    buf_init(&b, 1 << 20);
    ui_device_fields(&b, a, NULL, NOW, &env);
    s = buf_cstr(&b);
    assert_non_null(strstr(s, "<a id=\"asset-client\" href=\"/clients/7\">Contoso &lt;Ltd></a>"));
    assert_non_null(strstr(s, "id=\"open-in-intune\""));
    assert_non_null(strstr(s, "mdmDeviceId/bbbbbbbb-0000-0000-0000-000000000002"));
    assert_non_null(strstr(s, "512 GB"));
    assert_non_null(strstr(s, "3.2 GB"));
    assert_null(strstr(s, "512110190592</"));
    assert_non_null(strstr(s, "2026-12-04 10:15 UTC"));
    assert_non_null(strstr(s, "3 days ago"));
    assert_non_null(strstr(s, "past support since 2025-10-14"));
    assert_non_null(strstr(s, "<dt>Encrypted</dt><dd>yes</dd>"));
    buf_reset(&b);
    ui_device_history(&b, h, NOW, &env);
    s = buf_cstr(&b);
    assert_non_null(strstr(s, "OS version"));
    assert_non_null(strstr(s, "256 GB"));
    assert_non_null(strstr(s, "2026-12-01 08:00 UTC"));
    assert_null(strstr(s, "os_version"));
    buf_reset(&b);
    ui_device_history(&b, NULL, NOW, &env);
    assert_non_null(strstr(buf_cstr(&b), "No changes recorded"));
    buf_free(&b);
    json_decref(a);
    json_decref(h);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_size),
        cmocka_unit_test(test_age),
        cmocka_unit_test(test_when),
        cmocka_unit_test(test_support),
        cmocka_unit_test(test_intune_url),
        cmocka_unit_test(test_fields_cloud),
        cmocka_unit_test(test_fields_and_history),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
