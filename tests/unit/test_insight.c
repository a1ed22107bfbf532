/* test_insight.c - per-client lifecycle insight from assets. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "insight.h"
#include "mem.h"

static void
mk(struct asset *a, int64_t client, const char *os, const char *ver, int64_t last, int enc,
   const char * compl, const char *serial, int dup)
{
    memset(a, 0, sizeof *a);
    device_init(&a->dev);
    a->client_id = client;
    a->client_name = client == 1 ? "Contoso" : "Fabrikam";
    a->client_tenant_id = client == 1 ? "t-1" : "t-2";
    a->retired_at = TS_NULL;
    a->dev.intune_id = xstrdup("d");
    a->dev.os_name = xstrdup(os);
    a->dev.os_version = xstrdup(ver);
    a->dev.last_check_in_at = last;
    a->dev.is_encrypted = enc;
    a->dev.compliance_state = xstrdup(compl );
    a->dev.serial = xstrdup(serial);
    a->serial_duplicate = dup;
}

static void
test_counts_per_client(void **state)
{
    int64_t now, jan;
    struct insight *in;
    struct asset a[5];
    json_t *j;

    (void)state;
    assert_int_equal(clock_parse("2026-11-27T00:00:00Z", &now), 0);
    assert_int_equal(clock_parse("2026-01-10T00:00:00Z", &jan), 0);
    in = insight_new(now, 30);
    /* Windows 10 22H2 (build 19045) ended in October 2025; Windows 11 25H2 is supported. */
    mk(&a[0], 1, "Windows", "10.0.19045.4291", now - 3 * 86400, 1, "compliant", "S1", 0);
    mk(&a[1], 1, "Windows", "10.0.26200.7171", now - 40 * 86400, 0, "noncompliant", NULL, 0);
    mk(&a[2], 1, "Windows", "10.0.26200.7171", TS_NULL, 1, "compliant", "S3", 1);
    mk(&a[3], 2, "iOS", "18.1", now - 86400, 1, "compliant", "S4", 0);
    mk(&a[4], 1, "Windows", "10.0.26200.7171", now, 1, "compliant", "S5", 0);
    a[4].retired_at = now; /* retired devices do not count */
    a[0].dev.enrolled_at = jan;
    for (int i = 0; i < 5; i++)
        insight_add(in, &a[i]);
    assert_int_equal(insight_count(in), 2);
    {
        const struct insight_row *r = insight_row(in, 0);

        assert_int_equal(r->client_id, 1);
        assert_int_equal(r->devices, 3);
        assert_int_equal(r->stale, 2);
        assert_int_equal(r->unsupported_os, 1);
        assert_int_equal(r->no_serial, 1);
        assert_int_equal(r->duplicate_serial, 1);
        assert_int_equal(r->encrypted, 2);
        assert_int_equal(r->compliant, 2);
    }
    j = insight_to_json(in, 0);
    assert_int_equal(json_integer_value(json_object_get(j, "encrypted_pct")), 67);
    assert_int_equal(json_integer_value(json_object_get(j, "oldest_enrolment_days")), 321);
    assert_string_equal(json_string_value(json_object_get(json_object_get(j, "client"), "name")),
                        "Contoso");
    json_decref(j);
    for (int i = 0; i < 5; i++)
        device_clear(&a[i].dev);
    insight_free(in);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_per_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
