/* test_device.c - managedDevice mapping, serial placeholders, type derivation. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fixture.h"

#include "clock.h"
#include "device.h"
#include "mem.h"

static json_t *
load(const char *text)
{
    json_t *j = json_loads(text, JSON_REJECT_DUPLICATES, NULL);

    assert_non_null(j);
    return j;
}

static void
test_serial_placeholders(void **state)
{
    static const char *const placeholders[] = {
        "To Be Filled By O.E.M.",
        "to be filled by o.e.m.",
        "  System Serial Number ",
        "Default string",
        "0",
        "0123456789",
        "123456789",
        "None",
        "N/A",
        "",
        "   ",
        "00000000",
        "0000-0000-0000",
        "Not Specified",
        "Not Available",
        "To be filled by O.E.M.",
        "DEFAULT STRING",
        "\tn/a\n",
    };
    static const char *const real[] = {
        "PF2ABCDE",    "C02XK1ABJGH5", "0000-0014-0657-8375-4585-0309-11",
        "01234567890", "X0",           "Serial Number value",
    };
    char *s;

    (void)state;
    for (size_t i = 0; i < sizeof placeholders / sizeof placeholders[0]; i++) {
        assert_true(device_serial_is_placeholder(placeholders[i]));
        assert_null(device_serial_normalize(placeholders[i]));
    }
    for (size_t i = 0; i < sizeof real / sizeof real[0]; i++)
        assert_false(device_serial_is_placeholder(real[i]));
    assert_true(device_serial_is_placeholder(NULL));
    s = device_serial_normalize("  PF2ABCDE \t");
    assert_string_equal(s, "PF2ABCDE");
    free(s);
}

static void
test_type_derivation(void **state)
{
    static const struct {
        const char *os, *model, *manufacturer;
        enum device_type want;
    } cases[] = {
        {"iOS", "iPhone 15", "Apple", DEVICE_MOBILE},
        {"iPadOS", "iPad Pro", "Apple", DEVICE_MOBILE},
        {"Android", "Pixel 8", "Google", DEVICE_MOBILE},
        {"Windows Mobile", "Lumia", "Microsoft", DEVICE_MOBILE},
        {"Windows", "Virtual Machine", "Microsoft Corporation", DEVICE_VIRTUAL},
        {"Windows", "VMware Virtual Platform", "VMware, Inc.", DEVICE_VIRTUAL},
        {"Windows", "VMware7,1", "VMware, Inc.", DEVICE_VIRTUAL},
        {"Linux", "VirtualBox", "innotek GmbH", DEVICE_VIRTUAL},
        {"Linux", "Standard PC (Q35 + ICH9, 2009)", "QEMU", DEVICE_VIRTUAL},
        {"Linux", "KVM", "Red Hat", DEVICE_VIRTUAL},
        {"macOS", "Parallels Virtual Platform", "Parallels Software", DEVICE_VIRTUAL},
        {"Windows", "HVM domU", "Xen", DEVICE_VIRTUAL},
        {"Windows", "Cloud PC Enterprise 2vCPU/4GB/128GB", "Microsoft Corporation", DEVICE_VIRTUAL},
        {"Windows Server 2022", "PowerEdge R750", "Dell Inc.", DEVICE_SERVER},
        {"Windows", "Latitude 7440", "Dell Inc.", DEVICE_WORKSTATION},
        {"macOS", "MacBookPro18,3", "Apple", DEVICE_WORKSTATION},
        {"Linux", "ThinkPad X1", "LENOVO", DEVICE_WORKSTATION},
        {"ChromeOS", "Chromebook", "HP", DEVICE_WORKSTATION},
        {"Windows", "Surface Laptop 5", "Microsoft Corporation", DEVICE_WORKSTATION},
        {"Operating System value", "Model value", "Manufacturer value", DEVICE_UNKNOWN},
        {NULL, NULL, NULL, DEVICE_UNKNOWN},
    };
    enum device_type t;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        t = device_type_derive(cases[i].os, cases[i].model, cases[i].manufacturer);
        if (t != cases[i].want)
            fail_msg("case %zu (%s/%s/%s): got %s want %s", i, cases[i].os, cases[i].model,
                     cases[i].manufacturer, device_type_name(t), device_type_name(cases[i].want));
    }
    assert_string_equal(device_type_name(DEVICE_VIRTUAL), "VIRTUAL");
    assert_int_equal(device_type_parse("SERVER", &t), 0);
    assert_int_equal(t, DEVICE_SERVER);
    assert_int_not_equal(device_type_parse("TOASTER", &t), 0);
}

static void
test_strict_types(void **state)
{
    static const struct {
        const char *json, *member;
    } bad[] = {
        {"{\"id\":\"a\",\"totalStorageSpaceInBytes\":3.0}", "totalStorageSpaceInBytes"},
        {"{\"id\":\"a\",\"physicalMemoryInBytes\":\"8\"}", "physicalMemoryInBytes"},
        {"{\"id\":\"a\",\"deviceName\":5}", "deviceName"},
        {"{\"id\":\"a\",\"isEncrypted\":\"true\"}", "isEncrypted"},
        {"{\"id\":\"a\",\"serialNumber\":[]}", "serialNumber"},
        {"{\"id\":\"a\",\"lastSyncDateTime\":12}", "lastSyncDateTime"},
        {"{\"deviceName\":\"x\"}", "id"},
        {"{\"id\":\"\"}", "id"},
    };
    struct device d;
    struct errbuf eb;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        json_t *j = load(bad[i].json);

        assert_int_equal(device_from_graph(j, &d, &eb), ERR_PARSE);
        assert_non_null(strstr(eb.msg, bad[i].member));
        assert_null(d.intune_id); /* left cleared */
        json_decref(j);
    }
}

static void
test_mapping_rules(void **state)
{
    json_t *j = load("{\"id\":\"dev-1\",\"deviceName\":\"\",\"serialNumber\":\" ABC123 \","
                     "\"managedDeviceOwnerType\":\"personal\",\"isEncrypted\":true,"
                     "\"isSupervised\":null,\"totalStorageSpaceInBytes\":512110190592,"
                     "\"physicalMemoryInBytes\":17179869184,"
                     "\"enrolledDateTime\":\"0001-01-01T00:00:00Z\","
                     "\"lastSyncDateTime\":\"2024-04-13T20:23:18Z\",\"operatingSystem\":\"iOS\"}");
    struct device d, c;
    struct errbuf eb;

    (void)state;
    assert_int_equal(device_from_graph(j, &d, &eb), ERR_OK);
    assert_string_equal(d.intune_id, "dev-1");
    assert_null(d.name);
    assert_string_equal(d.serial, "ABC123");
    assert_string_equal(d.ownership, "personal");
    assert_int_equal(d.is_encrypted, 1);
    assert_int_equal(d.is_supervised, -1);
    assert_true(d.storage_total == INT64_C(512110190592));
    assert_true(d.storage_free == -1);
    assert_true(d.memory == INT64_C(17179869184));
    assert_true(d.enrolled_at == TS_NULL);
    assert_true(d.last_check_in_at == INT64_C(1713039798));
    assert_int_equal(d.type, DEVICE_MOBILE);

    device_copy(&c, &d);
    assert_true(device_equal(&c, &d));
    free(c.serial);
    c.serial = xstrdup("OTHER");
    assert_false(device_equal(&c, &d));
    device_clear(&c);
    device_clear(&d);
    device_clear(&d); /* reusable, idempotent */
    device_clear(NULL);
    json_decref(j);

    j = load("{\"id\":\"s\",\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.20348.2340\"}");
    assert_int_equal(device_from_graph(j, &d, &eb), ERR_OK);
    assert_int_equal(d.type, DEVICE_SERVER);
    device_clear(&d);
    json_decref(j);
    j = load("{\"id\":\"w\",\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.22631.3447\"}");
    assert_int_equal(device_from_graph(j, &d, &eb), ERR_OK);
    assert_int_equal(d.type, DEVICE_WORKSTATION);
    device_clear(&d);
    json_decref(j);

    j = load("{\"id\":\"x\",\"managedDeviceOwnerType\":\"unknownFutureValue\"}");
    assert_int_equal(device_from_graph(j, &d, &eb), ERR_OK);
    assert_string_equal(d.ownership, "unknown");
    device_clear(&d);
    json_decref(j);
}

static void
test_field_table(void **state)
{
    struct device d;
    int seen_type = 0;

    (void)state;
    device_init(&d);
    d.memory = 42;
    d.type = DEVICE_SERVER;
    assert_true(device_field_count >= 27);
    for (size_t i = 0; i < device_field_count; i++) {
        const struct device_field *f = &device_fields[i];

        assert_non_null(f->name);
        for (size_t k = 0; k < i; k++)
            assert_string_not_equal(f->name, device_fields[k].name);
        if (strcmp(f->name, "memory_bytes") == 0)
            assert_true(device_field_int(&d, f) == 42);
        if (f->kind == DF_TYPE) {
            seen_type = 1;
            assert_string_equal(device_field_str(&d, f), "SERVER");
        }
        if (f->kind == DF_TS)
            assert_true(device_field_int(&d, f) == TS_NULL);
    }
    assert_true(seen_type);
}

/* The single-entity GET examples wrap the device in {"value": {...}}; both forms map. */
static void
test_single_get_fixtures(void **state)
{
    static const char *const names[] = {"graph-v1.0-managedDevice-get.response.json",
                                        "graph-beta-managedDevice-get.response.json"};
    struct device d, top;
    struct errbuf eb;

    (void)state;
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        char *body = fixture(names[i], &len);
        json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);

        assert_non_null(root);
        assert_int_equal(device_from_graph(root, &d, &eb), ERR_OK);
        assert_string_equal(d.intune_id, "705c034c-034c-705c-4c03-5c704c035c70");
        assert_string_equal(d.serial, "Serial Number value");
        assert_string_equal(d.ownership, "company");
        assert_int_equal(d.is_encrypted, 1);
        assert_true(d.storage_total == 8);
        assert_true(d.storage_free == 7);
        /* the top-level form gives the same record */
        assert_int_equal(device_from_graph(json_object_get(root, "value"), &top, &eb), ERR_OK);
        assert_true(device_equal(&d, &top));
        if (i == 1) {
            assert_string_equal(d.management_state, "retirePending");
            assert_true(d.memory == 5);
        }
        device_clear(&d);
        device_clear(&top);
        json_decref(root);
        free(body);
    }
}

/* Parsed strings share one allocation; replacing one with device_set_str frees nothing of it. */
static void
test_set_str_on_parsed_device(void **state)
{
    json_t *j = load("{\"id\":\"dev-9\",\"deviceName\":\"PC-9\",\"ethernetMacAddress\":"
                     "\"aa\",\"model\":\"VMware7,1\",\"serialNumber\":\" SN9 \"}");
    struct device d, c;
    struct errbuf eb;

    (void)state;
    assert_int_equal(device_from_graph(j, &d, &eb), ERR_OK);
    assert_string_equal(d.ethernet_mac, "aa");
    assert_string_equal(d.serial, "SN9");
    assert_int_equal(d.type, DEVICE_VIRTUAL);
    device_set_str(&d, &d.ethernet_mac, "00:11:22:33:44:55", 17);
    device_set_str(&d, &d.name, "PC-9-renamed", 4);
    device_set_str(&d, &d.model, NULL, 0);
    assert_string_equal(d.ethernet_mac, "00:11:22:33:44:55");
    assert_string_equal(d.name, "PC-9");
    assert_null(d.model);
    assert_string_equal(d.intune_id, "dev-9");
    device_copy(&c, &d);
    device_clear(&d); /* the copy owns its own strings */
    assert_string_equal(c.ethernet_mac, "00:11:22:33:44:55");
    assert_string_equal(c.ownership, "unknown");
    device_set_str(&c, &c.ethernet_mac, "bb", 2);
    device_clear(&c);
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_serial_placeholders),
        cmocka_unit_test(test_type_derivation),
        cmocka_unit_test(test_strict_types),
        cmocka_unit_test(test_mapping_rules),
        cmocka_unit_test(test_field_table),
        cmocka_unit_test(test_single_get_fixtures),
        cmocka_unit_test(test_set_str_on_parsed_device),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
