/* test_asset.c - docs/API.md "Fields", nesting, nulls and exact Int64 in the JSON views. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "asset.h"
#include "clock.h"
#include "mem.h"
#include "output.h"

static void
keys_are(const json_t *obj, const char *const *want, size_t n)
{
    const char *key;
    json_t *v;
    size_t i = 0;

    assert_true(json_is_object(obj));
    assert_int_equal(json_object_size(obj), n);
    json_object_foreach((json_t *)obj, key, v)
    {
        (void)v;
        assert_string_equal(key, want[i]);
        i++;
    }
}

static void
fill(struct asset *a)
{
    memset(a, 0, sizeof *a);
    device_init(&a->dev);
    a->id = 42;
    a->client_id = 7;
    a->client_name = "Contoso";
    a->client_tenant_id = "aaaaaaaa-0000-0000-0000-000000000001";
    a->integration_id = 3;
    a->dev.intune_id = xstrdup("0f6e2c2d-1111-2222-3333-444455556666");
    a->dev.name = xstrdup("LAPTOP-7");
    a->dev.serial = xstrdup("PF3ABC12");
    a->dev.type = DEVICE_WORKSTATION;
    a->dev.os_name = xstrdup("Windows");
    a->dev.os_version = xstrdup("10.0.19045.4291");
    a->dev.ownership = xstrdup("company");
    a->dev.is_encrypted = 1;
    a->dev.is_supervised = 0;
    a->dev.storage_total = INT64_C(8796093022208);
    a->dev.storage_free = INT64_C(2147483648);
    a->dev.enrolled_at = INT64_C(1713039798); /* 2024-04-13T20:23:18Z */
    a->first_synced_at = INT64_C(1767225600);
    a->last_synced_at = INT64_C(1767229200);
    a->retired_at = TS_NULL;
    a->missing_since = INT64_C(1767139200);
    a->updated_at = INT64_C(1767229200);
    a->serial_duplicate = 1;
}

static void
test_asset_fields(void **state)
{
    static const char *const top[] = {
        "id",
        "client",
        "source",
        "name",
        "serial_number",
        "manufacturer",
        "model",
        "type",
        "operating_system",
        "user",
        "ownership",
        "compliance_state",
        "management_state",
        "enrollment_type",
        "is_encrypted",
        "is_supervised",
        "storage",
        "memory_bytes",
        "wifi_mac",
        "ethernet_mac",
        "imei",
        "meid",
        "phone_number",
        "enrolled_at",
        "last_check_in_at",
        "first_synced_at",
        "last_synced_at",
        "retired_at",
        "missing_since",
        "updated_at",
        "serial_duplicate",
    };
    static const char *const client[] = {"id", "name", "tenant_id"};
    static const char *const source[] = {"integration_id", "intune_device_id",
                                         "azure_ad_device_id"};
    static const char *const os[] = {"name", "version", "end_of_support"};
    static const char *const user[] = {"principal_name", "display_name", "email"};
    static const char *const storage[] = {"total_bytes", "free_bytes"};
    struct asset a;
    json_t *j;

    (void)state;
    fill(&a);
    j = asset_to_json(&a);
    assert_non_null(j);
    keys_are(j, top, sizeof top / sizeof top[0]);
    keys_are(json_object_get(j, "client"), client, 3);
    keys_are(json_object_get(j, "source"), source, 3);
    keys_are(json_object_get(j, "operating_system"), os, 3);
    keys_are(json_object_get(j, "user"), user, 3);
    keys_are(json_object_get(j, "storage"), storage, 2);

    assert_int_equal(json_integer_value(json_object_get(j, "id")), 42);
    assert_int_equal(json_integer_value(output_lookup(j, "client.id")), 7);
    assert_string_equal(json_string_value(output_lookup(j, "client.name")), "Contoso");
    assert_int_equal(json_integer_value(output_lookup(j, "source.integration_id")), 3);
    assert_string_equal(json_string_value(output_lookup(j, "source.intune_device_id")),
                        "0f6e2c2d-1111-2222-3333-444455556666");
    assert_true(json_is_null(output_lookup(j, "source.azure_ad_device_id")));
    assert_string_equal(json_string_value(json_object_get(j, "type")), "WORKSTATION");
    assert_string_equal(json_string_value(output_lookup(j, "operating_system.end_of_support")),
                        "2025-10-14");
    assert_true(json_is_null(output_lookup(j, "user.principal_name")));
    assert_true(json_is_true(json_object_get(j, "is_encrypted")));
    assert_true(json_is_false(json_object_get(j, "is_supervised")));
    assert_true(json_integer_value(output_lookup(j, "storage.total_bytes")) ==
                INT64_C(8796093022208));
    assert_true(json_integer_value(output_lookup(j, "storage.free_bytes")) == INT64_C(2147483648));
    assert_true(json_is_null(json_object_get(j, "memory_bytes")));
    assert_string_equal(json_string_value(json_object_get(j, "enrolled_at")),
                        "2024-04-13T20:23:18Z");
    assert_true(json_is_null(json_object_get(j, "last_check_in_at")));
    assert_string_equal(json_string_value(json_object_get(j, "first_synced_at")),
                        "2026-01-01T00:00:00Z");
    assert_true(json_is_null(json_object_get(j, "retired_at")));
    assert_true(json_is_true(json_object_get(j, "serial_duplicate")));
    assert_true(json_is_null(json_object_get(j, "manufacturer")));

    /* Every csv/table column is a path that exists in the object. */
    for (size_t i = 0; i < asset_column_count; i++)
        assert_non_null(output_lookup(j, asset_columns[i]));
    for (size_t i = 0; i < asset_table_column_count; i++)
        assert_non_null(output_lookup(j, asset_table_columns[i]));
    json_decref(j);
    device_clear(&a.dev);
}

static void
test_asset_unknown_os_and_empty(void **state)
{
    struct asset a;
    json_t *j;

    (void)state;
    memset(&a, 0, sizeof a);
    device_init(&a.dev);
    a.dev.intune_id = xstrdup("x");
    a.dev.os_name = xstrdup("PlanOS");
    a.dev.os_version = xstrdup("9");
    a.first_synced_at = a.last_synced_at = a.retired_at = a.missing_since = a.updated_at = TS_NULL;
    j = asset_to_json(&a);
    assert_non_null(j);
    assert_true(json_is_null(output_lookup(j, "operating_system.end_of_support")));
    assert_true(json_is_null(json_object_get(j, "is_encrypted")));
    assert_true(json_is_null(output_lookup(j, "storage.total_bytes")));
    assert_true(json_is_null(output_lookup(j, "client.name")));
    assert_string_equal(json_string_value(json_object_get(j, "type")), "UNKNOWN");
    assert_true(json_is_false(json_object_get(j, "serial_duplicate")));
    json_decref(j);
    device_clear(&a.dev);
}

static void
test_client_json(void **state)
{
    static const char *const top[] = {"id",     "tenant_id",    "name",           "default_domain",
                                      "source", "included",     "status",         "last_sync_at",
                                      "error",  "device_count", "software_count", "warning"};
    struct client_row c;
    json_t *j;

    (void)state;
    memset(&c, 0, sizeof c);
    c.id = 5;
    c.tenant_id = "t1";
    c.name = "Contoso";
    c.source = "gdap";
    c.included = 1;
    c.status = "never";
    c.last_sync_at = TS_NULL;
    c.device_count = INT64_C(3000000000);
    j = client_to_json(&c);
    assert_non_null(j);
    keys_are(j, top, sizeof top / sizeof top[0]);
    assert_true(json_is_null(json_object_get(j, "error")));
    assert_true(json_is_null(json_object_get(j, "warning")));
    assert_true(json_is_null(json_object_get(j, "last_sync_at")));
    assert_true(json_is_null(json_object_get(j, "default_domain")));
    assert_true(json_is_true(json_object_get(j, "included")));
    assert_true(json_integer_value(json_object_get(j, "device_count")) == INT64_C(3000000000));
    json_decref(j);

    c.status = "error";
    c.error_code = "consent_missing";
    c.error_message = "not consented";
    c.warning_code = "org_unreadable";
    c.warning_message = "name from Partner Center";
    c.last_sync_at = INT64_C(1767225600);
    j = client_to_json(&c);
    assert_string_equal(json_string_value(output_lookup(j, "warning.code")), "org_unreadable");
    assert_true(json_is_null(output_lookup(j, "warning.remedy")));
    assert_string_equal(json_string_value(output_lookup(j, "error.code")), "consent_missing");
    assert_true(json_is_null(output_lookup(j, "error.remedy")));
    assert_string_equal(json_string_value(json_object_get(j, "last_sync_at")),
                        "2026-01-01T00:00:00Z");
    for (size_t i = 0; i < client_column_count; i++)
        assert_non_null(output_lookup(j, client_columns[i]));
    json_decref(j);
}

static void
test_software_and_change_json(void **state)
{
    static const char *const top[] = {"id",        "client",   "name",       "version",
                                      "publisher", "platform", "size_bytes", "device_count"};
    struct software_row s;
    struct asset_change_row c;
    json_t *j;

    (void)state;
    memset(&s, 0, sizeof s);
    s.id = 9;
    s.client_id = 2;
    s.client_name = "Contoso";
    s.name = "7-Zip";
    s.version = "23.01";
    s.size_bytes = -1;
    s.device_count = 4;
    j = software_to_json(&s);
    assert_non_null(j);
    keys_are(j, top, sizeof top / sizeof top[0]);
    assert_true(json_is_null(json_object_get(j, "size_bytes")));
    assert_true(json_is_null(json_object_get(j, "publisher")));
    assert_string_equal(json_string_value(output_lookup(j, "client.name")), "Contoso");
    for (size_t i = 0; i < software_column_count; i++)
        assert_non_null(output_lookup(j, software_columns[i]));
    json_decref(j);

    memset(&c, 0, sizeof c);
    c.id = 1;
    c.asset_id = 42;
    c.at = INT64_C(1767225600);
    c.field = "os_version";
    c.old_value = NULL;
    c.new_value = "10.0.22631.3447";
    j = asset_change_to_json(&c);
    assert_non_null(j);
    assert_string_equal(json_string_value(json_object_get(j, "at")), "2026-01-01T00:00:00Z");
    assert_true(json_is_null(json_object_get(j, "old")));
    assert_string_equal(json_string_value(json_object_get(j, "new")), "10.0.22631.3447");
    for (size_t i = 0; i < asset_change_column_count; i++)
        assert_non_null(output_lookup(j, asset_change_columns[i]));
    json_decref(j);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_asset_fields),
        cmocka_unit_test(test_asset_unknown_os_and_empty),
        cmocka_unit_test(test_client_json),
        cmocka_unit_test(test_software_and_change_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
