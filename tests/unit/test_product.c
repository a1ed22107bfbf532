/* test_product.c - product names as Intune reports them, normalised, and titles of several
 * clients grouped into products with their versions. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "product.h"

static const struct {
    const char *raw, *key;
} names[] = {
    /* Visual C++ redistributables: architecture and build number after the name */
    {"Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.40.33810",
     "microsoft visual c++ 2015-2022 redistributable"},
    {"Microsoft Visual C++ 2015-2022 Redistributable (x86) - 14.38.33135",
     "microsoft visual c++ 2015-2022 redistributable"},
    {"Microsoft Visual C++ 2008 Redistributable - x64 9.0.30729.6161",
     "microsoft visual c++ 2008 redistributable"},
    {"Microsoft Visual C++ 2019 X64 Minimum Runtime - 14.29.30133",
     "microsoft visual c++ 2019 x64 minimum runtime"},
    {"Microsoft Visual C++ 2013 x86 Additional Runtime - 12.0.21005",
     "microsoft visual c++ 2013 x86 additional runtime"},
    /* Microsoft 365 and Office: a locale after a dash; years and 365 stay */
    {"Microsoft 365 Apps for enterprise - en-us", "microsoft 365 apps for enterprise"},
    {"Microsoft 365 Apps for enterprise - de-de", "microsoft 365 apps for enterprise"},
    {"Microsoft 365 - en-us", "microsoft 365"},
    {"Microsoft Office Professional Plus 2016", "microsoft office professional plus 2016"},
    /* browsers */
    {"Google Chrome", "google chrome"},
    {"GOOGLE CHROME", "google chrome"},
    {"Mozilla Firefox (x64 en-US)", "mozilla firefox"},
    {"Mozilla Firefox 120.0.1 (x64 en-US)", "mozilla firefox"},
    {"Microsoft Edge", "microsoft edge"},
    {"Microsoft Edge WebView2 Runtime", "microsoft edge webview2 runtime"},
    /* Teams, Zoom, Slack, Webex: bitness and installer words in brackets */
    {"Microsoft Teams", "microsoft teams"},
    {"Microsoft Teams classic", "microsoft teams classic"},
    {"Teams Machine-Wide Installer", "teams machine-wide installer"},
    {"Zoom", "zoom"},
    {"Zoom(64bit)", "zoom"},
    {"Zoom (32-bit)", "zoom"},
    {"Zoom Workplace (64-bit)", "zoom workplace"},
    {"Slack (Machine - MSI)", "slack"},
    {"Cisco Webex Meetings", "cisco webex meetings"},
    /* versions at the end, with or without a v */
    {"7-Zip 23.01 (x64)", "7-zip"},
    {"7-Zip 19.00 (x64 edition)", "7-zip"},
    {"Notepad++ (64-bit x64)", "notepad++"},
    {"Python 3.11.5 (64-bit)", "python"},
    {"Git version 2.43.0", "git version"},
    {"WinSCP v6.1.2", "winscp"},
    {"Microsoft Windows Desktop Runtime - 8.0.1 (x64)", "microsoft windows desktop runtime"},
    {"Adobe Acrobat (64-bit)", "adobe acrobat"},
    {"Adobe Acrobat Reader DC", "adobe acrobat reader dc"},
    /* what stays: versions without a dot, words in brackets that name something */
    {"Java 8 Update 391 (64-bit)", "java 8 update 391"},
    {"Windows PC Health Check", "windows pc health check"},
    {"Intel(R) Wireless Bluetooth(R)", "intel(r) wireless bluetooth(r)"},
    {"Update for Windows 10 for x64-based Systems (KB5001716)",
     "update for windows 10 for x64-based systems (kb5001716)"},
    {"Intel PROSet Wi-Fi", "intel proset wi-fi"},
    {"Company Portal", "company portal"},
    /* whitespace and separators */
    {"  Dell   SupportAssist  ", "dell supportassist"},
    {"HP Wolf Security \xe2\x80\x93 Console", "hp wolf security \xe2\x80\x93 console"},
    {"Foo Agent \xe2\x80\x93 1.2.3", "foo agent"},
    /* only noise: kept as it was */
    {"1.0.0", "1.0.0"},
    {"(x64)", "(x64)"},
    {"", ""},
};

static void
test_name_keys(void **state)
{
    char out[PRODUCT_NAME_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        product_name_key(names[i].raw, out, sizeof out);
        if (strcmp(out, names[i].key) != 0)
            fail_msg("\"%s\" -> \"%s\", want \"%s\"", names[i].raw, out, names[i].key);
    }
}

static void
test_display_keeps_case(void **state)
{
    char out[PRODUCT_NAME_MAX];

    (void)state;
    product_name_display("Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.40.33810", out,
                         sizeof out);
    assert_string_equal(out, "Microsoft Visual C++ 2015-2022 Redistributable");
    product_name_display("Zoom(64bit)", out, sizeof out);
    assert_string_equal(out, "Zoom");
    /* cut to the buffer, NUL-terminated */
    assert_int_equal(product_name_display("Google Chrome", out, 7), 6);
    assert_string_equal(out, "Google");
    product_name_display(NULL, out, sizeof out);
    assert_string_equal(out, "");
}

static void
test_publisher_keys(void **state)
{
    static const struct {
        const char *raw, *key;
    } pubs[] = {
        {"Microsoft Corporation", "microsoft"},
        {"Microsoft Corp.", "microsoft"},
        {"MICROSOFT CORPORATION", "microsoft"},
        {"Google LLC", "google"},
        {"Google, Inc.", "google"},
        {"Zoom Video Communications, Inc.", "zoom video communications"},
        {"Mozilla", "mozilla"},
        {"Igor Pavlov", "igor pavlov"},
        {"Dell Inc.", "dell"},
        {"SAP SE", "sap se"},
        {"Inc.", "inc"},
        {"", ""},
    };
    char out[PRODUCT_NAME_MAX];

    (void)state;
    for (size_t i = 0; i < sizeof pubs / sizeof pubs[0]; i++) {
        product_publisher_key(pubs[i].raw, out, sizeof out);
        if (strcmp(out, pubs[i].key) != 0)
            fail_msg("\"%s\" -> \"%s\", want \"%s\"", pubs[i].raw, out, pubs[i].key);
    }
}

static void
test_version_order(void **state)
{
    (void)state;
    assert_true(product_version_cmp("10.0", "9.2") > 0);
    assert_true(product_version_cmp("14.40.33810", "14.38.33135") > 0);
    assert_true(product_version_cmp("1.02", "1.2") == 0);
    assert_true(product_version_cmp("1.2", "1.2.1") < 0);
    assert_true(product_version_cmp("", "1") < 0);
    assert_true(product_version_cmp(NULL, NULL) == 0);
}

static void
test_ids_are_stable(void **state)
{
    (void)state;
    /* FNV-1a of the keys: the same in every process and build */
    assert_int_equal(product_id("google chrome", "google"), product_id("google chrome", "google"));
    assert_true(product_id("google chrome", "google") != product_id("google chrome", ""));
    assert_true(product_id("a", "bc") != product_id("ab", "c"));
    assert_true(product_id("google chrome", "google") > 0);
    assert_true(product_id("google chrome", "google") < (INT64_C(1) << 53));
}

static void
test_index_groups_across_clients(void **state)
{
    struct product_index *ix = product_index_new();
    const struct product *p, *z;
    const struct product_version *v;
    struct errbuf eb = {0};

    (void)state;
    /* client 1: x64 and x86 of one build, and an older build */
    assert_int_equal(product_index_add(ix, 10, 1,
                                       "Microsoft Visual C++ 2015-2022 Redistributable (x64) - "
                                       "14.40.33810",
                                       "Microsoft Corporation", "14.40.33810.0", 5, &eb),
                     ERR_OK);
    product_index_add(ix, 11, 1,
                      "Microsoft Visual C++ 2015-2022 Redistributable (x86) - 14.40.33810",
                      "Microsoft Corporation", "14.40.33810.0", 3, &eb);
    product_index_add(ix, 12, 1, "Microsoft Visual C++ 2015-2022 Redistributable (x64) - 9.1",
                      "Microsoft Corp.", "9.1", 1, &eb);
    /* client 2: the newest build */
    product_index_add(ix, 20, 2,
                      "Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.40.33810",
                      "Microsoft Corporation", "14.40.33810.0", 7, &eb);
    /* Zoom on two clients, one more device */
    product_index_add(ix, 30, 2, "Zoom(64bit)", "Zoom Video Communications, Inc.", "5.17", 2, &eb);
    product_index_add(ix, 31, 3, "Zoom", "Zoom Video Communications, Inc.", "5.16", 1, &eb);
    product_index_finish(ix);

    assert_int_equal(ix->nproducts, 2);
    p = &ix->products[0]; /* most devices first */
    assert_string_equal(p->name_key, "microsoft visual c++ 2015-2022 redistributable");
    assert_string_equal(p->publisher_key, "microsoft");
    assert_string_equal(p->name, "Microsoft Visual C++ 2015-2022 Redistributable");
    assert_string_equal(p->publisher, "Microsoft Corporation");
    assert_int_equal(p->clients, 2);
    assert_int_equal(p->devices, 16);
    assert_int_equal(p->titles, 4);
    assert_int_equal(p->nversions, 2);
    v = &ix->versions[p->first_version]; /* newest first */
    assert_string_equal(v->version, "14.40.33810.0");
    assert_int_equal(v->clients, 2);
    assert_int_equal(v->devices, 15);
    assert_int_equal(v->ntitles, 3);
    v = &ix->versions[p->first_version + 1];
    assert_string_equal(v->version, "9.1");
    assert_int_equal(v->clients, 1);
    assert_int_equal(v->devices, 1);
    assert_int_equal(ix->titles[v->first_title].title_id, 12);

    z = &ix->products[1];
    assert_string_equal(z->name, "Zoom");
    assert_int_equal(z->clients, 2);
    assert_int_equal(z->devices, 3);
    assert_ptr_equal(product_index_find(ix, z->id), z);
    assert_null(product_index_find(ix, 12345));
    assert_true(product_matches(z, "ZOOM"));
    assert_true(product_matches(z, "video comm"));
    assert_false(product_matches(z, "chrome"));
    assert_true(product_matches(z, ""));
    /* finished: no more titles */
    assert_int_equal(product_index_add(ix, 1, 1, "x", "y", "z", 1, NULL), ERR_INVAL);
    product_index_free(ix);
    product_index_free(NULL);
}

/* Title -> its devices, for product_index_dedupe; counts the titles asked about. */
static int dedupe_asked;

static int
devices_of(void *arg, int64_t title_id, int64_t **ids, size_t *n, struct errbuf *eb)
{
    static const int64_t t10[] = {100, 101, 102, 103, 104}, t11[] = {101, 102, 105}, t12[] = {104};

    (void)arg;
    (void)eb;
    dedupe_asked++;
    *n = title_id == 10 ? 5 : title_id == 11 ? 3 : title_id == 12 ? 1 : 0;
    *ids = *n > 0 ? calloc(*n, sizeof **ids) : NULL;
    if (*n > 0)
        memcpy(*ids, title_id == 10 ? t10 : title_id == 11 ? t11 : t12, *n * sizeof **ids);
    return title_id == 99 ? ERR_DB : ERR_OK;
}

/* A device with both the x64 and the x86 build (or two versions) of a product counts once. */
static void
test_index_dedupe(void **state)
{
    struct product_index *ix = product_index_new();
    const struct product *p;
    const struct product_version *v;
    struct errbuf eb = {0};

    (void)state;
    /* client 1: x64 on 5 devices, x86 on 3 (2 of them also have x64), an old build on 1 device
     * that also has x64; client 2: one title alone */
    product_index_add(ix, 10, 1, "Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.40",
                      "Microsoft Corporation", "14.40.33810.0", 5, &eb);
    product_index_add(ix, 11, 1, "Microsoft Visual C++ 2015-2022 Redistributable (x86) - 14.40",
                      "Microsoft Corporation", "14.40.33810.0", 3, &eb);
    product_index_add(ix, 12, 1, "Microsoft Visual C++ 2015-2022 Redistributable (x64) - 9.1",
                      "Microsoft Corporation", "9.1", 1, &eb);
    product_index_add(ix, 20, 2, "Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.40",
                      "Microsoft Corporation", "14.40.33810.0", 7, &eb);
    product_index_add(ix, 30, 2, "Zoom", "Zoom Video Communications, Inc.", "5.17", 10, &eb);
    product_index_finish(ix);
    p = &ix->products[0];
    assert_int_equal(p->devices, 16); /* the sum, before */
    dedupe_asked = 0;
    assert_int_equal(product_index_dedupe(ix, devices_of, NULL, &eb), ERR_OK);
    assert_int_equal(dedupe_asked, 3); /* client 1's titles; client 2's alone are not asked */
    /* client 1: devices 100..105 = 6 (not 9), client 2: 7 */
    p = &ix->products[0];
    assert_string_equal(p->name_key, "microsoft visual c++ 2015-2022 redistributable");
    assert_int_equal(p->devices, 13);
    v = &ix->versions[p->first_version];
    assert_string_equal(v->version, "14.40.33810.0");
    assert_int_equal(v->devices, 6 + 7); /* 100..105, and client 2's 7 */
    v = &ix->versions[p->first_version + 1];
    assert_int_equal(v->devices, 1);
    assert_int_equal(ix->products[1].devices, 10);
    product_index_free(ix);
}

/* The order follows the distinct counts. */
static void
test_index_dedupe_reorders(void **state)
{
    struct product_index *ix = product_index_new();
    struct errbuf eb = {0};

    (void)state;
    product_index_add(ix, 10, 1, "Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.40",
                      "Microsoft Corporation", "14.40.33810.0", 5, &eb);
    product_index_add(ix, 11, 1, "Microsoft Visual C++ 2015-2022 Redistributable (x86) - 14.40",
                      "Microsoft Corporation", "14.40.33810.0", 3, &eb);
    product_index_add(ix, 30, 2, "Zoom", "Zoom Video Communications, Inc.", "5.17", 7, &eb);
    product_index_finish(ix);
    assert_string_equal(ix->products[0].name, "Microsoft Visual C++ 2015-2022 Redistributable");
    assert_int_equal(product_index_dedupe(ix, devices_of, NULL, &eb), ERR_OK);
    assert_int_equal(ix->products[0].devices, 7);
    assert_string_equal(ix->products[0].name, "Zoom");
    assert_int_equal(ix->products[1].devices, 6);
    assert_ptr_equal(product_index_find(ix, ix->products[1].id), &ix->products[1]);
    product_index_free(ix);
}

/* Two builds of one client's product that no active device has any more (the titles' installs
 * were removed): nothing to subtract, and no sort over an empty list. */
static void
test_index_dedupe_no_devices(void **state)
{
    struct product_index *ix = product_index_new();
    struct errbuf eb = {0};

    (void)state;
    product_index_add(ix, 40, 1, "7-Zip 23.01 (x64)", "Igor Pavlov", "23.01", 0, &eb);
    product_index_add(ix, 41, 1, "7-Zip 23.01 (x86)", "Igor Pavlov", "23.01", 0, &eb);
    product_index_finish(ix);
    dedupe_asked = 0;
    assert_int_equal(product_index_dedupe(ix, devices_of, NULL, &eb), ERR_OK);
    assert_int_equal(dedupe_asked, 2);
    assert_int_equal(ix->nproducts, 1);
    assert_int_equal(ix->products[0].devices, 0);
    product_index_free(ix);
}

static void
test_index_empty(void **state)
{
    struct product_index *ix = product_index_new();

    (void)state;
    product_index_finish(ix);
    assert_int_equal(ix->nproducts, 0);
    product_index_free(ix);
    /* freed before it was finished */
    ix = product_index_new();
    product_index_add(ix, 1, 1, "Google Chrome", "Google LLC", "120.0", 1, NULL);
    product_index_free(ix);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_name_keys),
        cmocka_unit_test(test_display_keeps_case),
        cmocka_unit_test(test_publisher_keys),
        cmocka_unit_test(test_version_order),
        cmocka_unit_test(test_ids_are_stable),
        cmocka_unit_test(test_index_groups_across_clients),
        cmocka_unit_test(test_index_empty),
        cmocka_unit_test(test_index_dedupe),
        cmocka_unit_test(test_index_dedupe_reorders),
        cmocka_unit_test(test_index_dedupe_no_devices),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
