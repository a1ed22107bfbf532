/* test_hwfilter.c - the hardware list's derived filters: arguments, tests, and that each insight
 * figure counts exactly the assets its filter passes. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>

#include <cmocka.h>

#include "clock.h"
#include "hwfilter.h"
#include "insight.h"
#include "mem.h"

#define N 6

static void
mk(struct asset *a, const char *os, const char *ver, int64_t last, int enc, const char * compl,
   const char *serial, int dup)
{
    memset(a, 0, sizeof *a);
    device_init(&a->dev);
    a->client_id = 1;
    a->client_name = "Contoso";
    a->client_tenant_id = "t-1";
    a->retired_at = TS_NULL;
    a->dev.intune_id = xstrdup("d");
    a->dev.os_name = xstrdup(os);
    a->dev.os_version = xstrdup(ver);
    a->dev.last_check_in_at = last;
    a->dev.is_encrypted = enc;
    a->dev.compliance_state = compl != NULL ? xstrdup(compl ) : NULL;
    a->dev.serial = serial != NULL ? xstrdup(serial) : NULL;
    a->serial_duplicate = dup;
}

static int
passes(const char *key, const char *value, const struct asset *a, int64_t now)
{
    struct hwfilter f;
    struct errbuf eb = {0};

    hwfilter_init(&f, now);
    assert_int_equal(hwfilter_arg(&f, key, value, &eb), 1);
    assert_true(hwfilter_active(&f));
    return hwfilter_match(&f, a);
}

static void
test_args(void **state)
{
    struct hwfilter f;
    struct errbuf eb = {0};
    struct buf b;

    (void)state;
    hwfilter_init(&f, 0);
    assert_false(hwfilter_active(&f));
    assert_int_equal(hwfilter_arg(&f, "page_size", "5", &eb), 0);
    assert_int_equal(hwfilter_arg(&f, "stale_days", "0", &eb), ERR_INVAL);
    assert_int_equal(hwfilter_arg(&f, "stale_days", "3651", &eb), ERR_INVAL);
    assert_int_equal(hwfilter_arg(&f, "stale_days", "7x", &eb), ERR_INVAL);
    assert_int_equal(hwfilter_arg(&f, "os_support", "ends_within:", &eb), ERR_INVAL);
    assert_int_equal(hwfilter_arg(&f, "serial", "gone", &eb), ERR_INVAL);
    assert_int_equal(hwfilter_arg(&f, "encrypted", "yes", &eb), ERR_INVAL);
    assert_int_equal(hwfilter_arg(&f, "compliance", "a b", &eb), ERR_INVAL);
    assert_false(hwfilter_active(&f));
    assert_int_equal(hwfilter_arg(&f, "stale_days", "30", &eb), 1);
    assert_int_equal(hwfilter_arg(&f, "os_support", "ends_within:90", &eb), 1);
    assert_int_equal(hwfilter_arg(&f, "serial", "shared", &eb), 1);
    assert_int_equal(hwfilter_arg(&f, "encrypted", "false", &eb), 1);
    assert_int_equal(hwfilter_arg(&f, "compliance", "not_compliant", &eb), 1);
    buf_init(&b, 1024);
    hwfilter_query(&f, &b);
    assert_string_equal(buf_cstr(&b), "&stale_days=30&os_support=ends_within:90&serial=shared"
                                      "&encrypted=false&compliance=not_compliant");
    buf_free(&b);
    /* An empty value turns a filter off. */
    assert_int_equal(hwfilter_arg(&f, "stale_days", "", &eb), 1);
    assert_int_equal(f.stale_days, 0);
}

static void
test_tests(void **state)
{
    int64_t now;
    struct asset a[N];
    char st[96];

    (void)state;
    assert_int_equal(clock_parse("2026-11-27T00:00:00Z", &now), 0);
    /* Windows 10 22H2 (build 19045) ended on 2025-10-14; Windows 11 25H2 is supported. */
    mk(&a[0], "Windows", "10.0.19045.4291", now - 30 * 86400, 1, "compliant", "S1", 0);
    mk(&a[1], "Windows", "10.0.26200.7171", now - 30 * 86400 - 1, 0, "noncompliant", NULL, 0);
    mk(&a[2], "Windows", "10.0.26200.7171", TS_NULL, -1, NULL, "S3", 1);
    mk(&a[3], "iOS", "18.1", now - 86400, 1, "inGracePeriod", "S4", 0);
    mk(&a[4], "Windows", "10.0.99999.1", now, 1, "compliant", "S5", 0);
    mk(&a[5], "Windows", "10.0.19045.1", now, 1, "compliant", "S6", 0);
    /* Stale: older than N days, or never; exactly N days is not. */
    assert_false(passes("stale_days", "30", &a[0], now));
    assert_true(passes("stale_days", "30", &a[1], now));
    assert_true(passes("stale_days", "30", &a[2], now));
    assert_true(passes("os_support", "past", &a[0], now));
    assert_false(passes("os_support", "past", &a[1], now));
    assert_false(passes("os_support", "past", &a[4], now)); /* unknown build */
    /* The day after the vendor's last day is the first unsupported one. */
    {
        int64_t last;

        assert_int_equal(clock_parse("2025-10-14T00:00:00Z", &last), 0);
        assert_false(passes("os_support", "past", &a[5], last + 86400 - 1));
        assert_true(passes("os_support", "past", &a[5], last + 86400));
        assert_true(passes("os_support", "ends_within:1", &a[5], last));
        assert_false(passes("os_support", "ends_within:1", &a[5], last - 2 * 86400));
    }
    assert_true(passes("serial", "missing", &a[1], now));
    assert_false(passes("serial", "missing", &a[0], now));
    assert_true(passes("serial", "shared", &a[2], now));
    assert_false(passes("serial", "shared", &a[0], now));
    assert_true(passes("encrypted", "true", &a[0], now));
    assert_true(passes("encrypted", "false", &a[2], now)); /* unknown is not encrypted */
    assert_true(passes("compliance", "not_compliant", &a[2], now));
    assert_true(passes("compliance", "not_compliant", &a[3], now));
    assert_false(passes("compliance", "not_compliant", &a[0], now));
    assert_true(passes("compliance", "inGracePeriod", &a[3], now));
    assert_false(passes("compliance", "compliant", &a[3], now));
    assert_string_equal(hwfilter_os_status(&a[0].dev, now, st, sizeof st),
                        "past support since 2025-10-14");
    assert_string_equal(hwfilter_os_status(&a[4].dev, now, st, sizeof st), "unknown");
    assert_int_equal(strncmp(hwfilter_os_status(&a[1].dev, now, st, sizeof st), "supported", 9), 0);
    for (int i = 0; i < N; i++)
        device_clear(&a[i].dev);
}

/* Each figure is the number of assets its filter (insight_figure_query) passes. */
static void
test_figure_is_its_list(void **state)
{
    static const char *const figs[] = {"stale", "unsupported_os", "no_serial", "duplicate_serial"};
    int64_t now, *counts[4];
    struct insight *in;
    const struct insight_row *r;
    struct asset a[N];

    (void)state;
    assert_int_equal(clock_parse("2026-11-27T00:00:00Z", &now), 0);
    mk(&a[0], "Windows", "10.0.19045.4291", now - 30 * 86400, 1, "compliant", "S1", 0);
    mk(&a[1], "Windows", "10.0.26200.7171", now - 31 * 86400, 0, "noncompliant", NULL, 0);
    mk(&a[2], "Windows", "10.0.26200.7171", TS_NULL, -1, NULL, "S3", 1);
    mk(&a[3], "iOS", "15.1", now - 86400, 1, "inGracePeriod", "S4", 1);
    mk(&a[4], "Windows", "10.0.99999.1", now, 1, "compliant", NULL, 0);
    mk(&a[5], "Android", "9", now, 0, "compliant", "S6", 0);
    in = insight_new(now, 30);
    for (int i = 0; i < N; i++)
        insight_add(in, &a[i]);
    r = insight_row(in, 0);
    counts[0] = (int64_t *)&r->stale;
    counts[1] = (int64_t *)&r->unsupported_os;
    counts[2] = (int64_t *)&r->no_serial;
    counts[3] = (int64_t *)&r->duplicate_serial;
    for (size_t k = 0; k < 4; k++) {
        struct hwfilter f;
        struct errbuf eb = {0};
        struct buf q;
        int64_t listed = 0;
        char *p, *save;

        buf_init(&q, 1024);
        assert_int_equal(insight_figure_query(figs[k], 30, &q), 0);
        hwfilter_init(&f, now);
        /* "&key=value" pairs */
        p = buf_detach(&q, NULL);
        save = p;
        for (char *kv = strtok_r(p, "&", &save); kv != NULL; kv = strtok_r(NULL, "&", &save)) {
            char *eq = strchr(kv, '=');

            assert_non_null(eq);
            *eq = '\0';
            assert_int_equal(hwfilter_arg(&f, kv, eq + 1, &eb), 1);
        }
        free(p);
        for (int i = 0; i < N; i++)
            listed += hwfilter_match(&f, &a[i]);
        assert_true(*counts[k] > 0);
        assert_int_equal(listed, *counts[k]);
    }
    assert_int_equal(insight_figure_query("nonsense", 30, &(struct buf){0}), -1);
    insight_free(in);
    for (int i = 0; i < N; i++)
        device_clear(&a[i].dev);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_args),
        cmocka_unit_test(test_tests),
        cmocka_unit_test(test_figure_is_its_list),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
