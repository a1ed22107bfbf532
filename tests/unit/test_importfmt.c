/* test_importfmt.c - Snipe-IT importer rows and GLPI inventory documents against the formats
 * those tools document (sources in docs/API.md "Import formats"). */
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
#include "importfmt.h"
#include "output.h"

/* Header names Snipe-IT's "Importing Assets" page lists for assets and for checking an asset
 * out to a user; its importer matches them without regard to case. */
static const char *const snipeit_documented[] = {
    "id",           "asset tag",    "name",      "serial",      "model name",      "model number",
    "category",     "status",       "notes",     "requestable", "warranty months", "byod",
    "last checkin", "manufacturer", "company",   "location",    "purchase date",   "purchase cost",
    "supplier",     "order number", "full name", "username",    "email",
};

static json_t *
sample_asset(const char *name, const char *serial, const char *type, const char *ownership)
{
    json_t *a = json_pack(
        "{s:I, s:{s:I, s:s, s:s}, s:{s:I, s:s, s:s}, s:s, s:s?, s:s, s:s, s:s,"
        " s:{s:s, s:s, s:n}, s:{s:s, s:s, s:s}, s:s, s:I, s:n}",
        "id", (json_int_t)42, "client", "id", (json_int_t)3, "name", "Contoso", "tenant_id",
        "11111111-2222-3333-4444-555555555555", "source", "integration_id", (json_int_t)1,
        "intune_device_id", "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee", "azure_ad_device_id",
        "ffffffff-bbbb-cccc-dddd-eeeeeeeeeeee", "name", name, "serial_number", serial,
        "manufacturer", "Dell Inc.", "model", "Latitude 7440", "type", type, "operating_system",
        "name", "Windows", "version", "10.0.22631.3007", "end_of_support", "user", "principal_name",
        "ada@contoso.example", "display_name", "Ada Lovelace", "email", "ada@contoso.example",
        "ownership", ownership, "memory_bytes", (json_int_t)17179869184LL, "retired_at");
    assert_non_null(a);
    return a;
}

static int
snipeit_known(const char *col)
{
    char low[64];
    size_t i;

    for (i = 0; col[i] != '\0' && i + 1 < sizeof low; i++)
        low[i] = (char)(col[i] >= 'A' && col[i] <= 'Z' ? col[i] + 32 : col[i]);
    low[i] = '\0';
    for (size_t k = 0; k < sizeof snipeit_documented / sizeof snipeit_documented[0]; k++)
        if (strcmp(low, snipeit_documented[k]) == 0)
            return 1;
    return 0;
}

static void
test_snipeit_columns_are_documented(void **state)
{
    int tag = 0, model = 0, cat = 0, status = 0;

    (void)state;
    assert_true(importfmt_snipeit_column_count >= 10);
    for (size_t i = 0; i < importfmt_snipeit_column_count; i++) {
        const char *c = importfmt_snipeit_columns[i];

        assert_true(snipeit_known(c));
        /* no leading or trailing spaces: the importer would not match the header */
        assert_true(c[0] != ' ' && c[strlen(c) - 1] != ' ');
        tag |= strcmp(c, "Asset Tag") == 0;
        model |= strcmp(c, "Model Name") == 0;
        cat |= strcmp(c, "Category") == 0;
        status |= strcmp(c, "Status") == 0;
    }
    /* what the importer requires to create an asset, and its key for updates */
    assert_true(tag && model && cat && status);
}

static void
test_snipeit_row(void **state)
{
    json_t *a = sample_asset("=HYPERLINK(\"x\")", "-5CG1234", "WORKSTATION", "personal");
    json_t *r = importfmt_snipeit_row(a);

    (void)state;
    assert_non_null(r);
    assert_int_equal(json_object_size(r), importfmt_snipeit_column_count);
    for (size_t i = 0; i < importfmt_snipeit_column_count; i++)
        assert_true(json_is_string(json_object_get(r, importfmt_snipeit_columns[i])));
    assert_string_equal(json_string_value(json_object_get(r, "Asset Tag")), "memsync-42");
    /* values as they are: no formula guard in an import file */
    assert_string_equal(json_string_value(json_object_get(r, "Name")), "=HYPERLINK(\"x\")");
    assert_string_equal(json_string_value(json_object_get(r, "Serial")), "-5CG1234");
    assert_string_equal(json_string_value(json_object_get(r, "Model Name")), "Latitude 7440");
    assert_string_equal(json_string_value(json_object_get(r, "Manufacturer")), "Dell Inc.");
    assert_string_equal(json_string_value(json_object_get(r, "Category")), "Workstations");
    assert_string_equal(json_string_value(json_object_get(r, "Company")), "Contoso");
    assert_string_equal(json_string_value(json_object_get(r, "Status")), "Ready to Deploy");
    assert_string_equal(json_string_value(json_object_get(r, "BYOD")), "1");
    assert_string_equal(json_string_value(json_object_get(r, "Username")), "ada@contoso.example");
    assert_string_equal(json_string_value(json_object_get(r, "Full Name")), "Ada Lovelace");
    assert_non_null(strstr(json_string_value(json_object_get(r, "Notes")),
                           "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"));
    json_decref(r);
    json_decref(a);

    /* no serial, no model, retired, a phone */
    a = sample_asset("iPhone", NULL, "MOBILE", "company");
    json_object_set_new(a, "model", json_null());
    json_object_set_new(a, "retired_at", json_string("2026-01-01T00:00:00Z"));
    r = importfmt_snipeit_row(a);
    assert_string_equal(json_string_value(json_object_get(r, "Serial")), "");
    assert_string_equal(json_string_value(json_object_get(r, "Model Name")), "Unknown model");
    assert_string_equal(json_string_value(json_object_get(r, "Category")), "Mobile devices");
    assert_string_equal(json_string_value(json_object_get(r, "Status")), "Archived");
    assert_string_equal(json_string_value(json_object_get(r, "BYOD")), "0");
    json_decref(r);
    json_decref(a);
    assert_null(importfmt_snipeit_row(NULL));
}

/* The members of GLPI's inventory schema memsync may write, with their JSON types. */
static const struct {
    const char *path;
    json_type type;
} glpi_documented[] = {
    {"deviceid", JSON_STRING},
    {"itemtype", JSON_STRING},
    {"content", JSON_OBJECT},
    {"content.versionclient", JSON_STRING},
    {"content.hardware", JSON_OBJECT},
    {"content.hardware.name", JSON_STRING},
    {"content.hardware.memory", JSON_INTEGER},
    {"content.hardware.lastloggeduser", JSON_STRING},
    {"content.bios", JSON_OBJECT},
    {"content.bios.smanufacturer", JSON_STRING},
    {"content.bios.smodel", JSON_STRING},
    {"content.bios.ssn", JSON_STRING},
    {"content.operatingsystem", JSON_OBJECT},
    {"content.operatingsystem.name", JSON_STRING},
    {"content.operatingsystem.version", JSON_STRING},
    {"content.operatingsystem.full_name", JSON_STRING},
};

/* Every member of o (recursively) is a documented one of the documented type. */
static void
check_glpi_members(const json_t *o, const char *prefix)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)o, key, v)
    {
        char path[128];
        int found = 0;

        snprintf(path, sizeof path, "%s%s%s", prefix, prefix[0] ? "." : "", key);
        for (size_t i = 0; i < sizeof glpi_documented / sizeof glpi_documented[0]; i++)
            if (strcmp(glpi_documented[i].path, path) == 0) {
                assert_int_equal(json_typeof(v), glpi_documented[i].type);
                found = 1;
            }
        if (!found)
            fail_msg("%s is not a member memsync should write", path);
        if (json_is_object(v))
            check_glpi_members(v, path);
    }
}

static void
test_glpi_inventory(void **state)
{
    json_t *a = sample_asset("LT-042", "5CG1234", "WORKSTATION", "company");
    json_t *d = importfmt_glpi_inventory(a, "memsync-1.2.3");
    const char *it;

    (void)state;
    assert_non_null(d);
    check_glpi_members(d, "");
    /* the schema's required members */
    assert_non_null(output_lookup(d, "deviceid"));
    assert_string_equal(json_string_value(output_lookup(d, "content.versionclient")),
                        "memsync-1.2.3");
    it = json_string_value(output_lookup(d, "itemtype"));
    assert_string_equal(it, "Computer");
    assert_string_equal(json_string_value(output_lookup(d, "deviceid")),
                        "memsync-aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee");
    assert_string_equal(json_string_value(output_lookup(d, "content.bios.ssn")), "5CG1234");
    assert_string_equal(json_string_value(output_lookup(d, "content.hardware.name")), "LT-042");
    assert_int_equal(json_integer_value(output_lookup(d, "content.hardware.memory")), 16384);
    assert_string_equal(json_string_value(output_lookup(d, "content.operatingsystem.full_name")),
                        "Windows 10.0.22631.3007");
    json_decref(d);
    json_decref(a);

    /* absent values are left out, never null; a phone is a Phone */
    a = sample_asset("iPhone", NULL, "MOBILE", "company");
    json_object_set_new(a, "memory_bytes", json_null());
    d = importfmt_glpi_inventory(a, NULL);
    check_glpi_members(d, "");
    assert_null(output_lookup(d, "content.bios.ssn"));
    assert_null(output_lookup(d, "content.hardware.memory"));
    assert_string_equal(json_string_value(output_lookup(d, "itemtype")), "Phone");
    json_decref(d);
    json_decref(a);
}

static void
test_parse(void **state)
{
    enum importfmt_kind k;
    struct errbuf eb = {0};

    (void)state;
    assert_int_equal(importfmt_parse("snipeit", &k, NULL), ERR_OK);
    assert_int_equal(k, IMPORTFMT_SNIPEIT);
    assert_int_equal(importfmt_parse("glpi", &k, NULL), ERR_OK);
    assert_int_equal(k, IMPORTFMT_GLPI);
    assert_int_equal(importfmt_parse("csv", &k, &eb), ERR_USAGE);
    assert_non_null(strstr(eb.msg, "snipeit"));
    assert_int_equal(importfmt_parse(NULL, &k, NULL), ERR_USAGE);
}

/* The CSV writer keeps its formula guard for spreadsheets and drops it for import files. */
static void
test_csv_guard_on_and_off(void **state)
{
    const char *const cols[] = {"Name"};
    json_t *r = json_pack("{s:s}", "Name", "=1+2");
    char *data = NULL;
    size_t len = 0;
    FILE *fp;
    struct output *o;

    (void)state;
    fp = open_memstream(&data, &len);
    assert_int_equal(output_begin(&o, fp, OUTPUT_CSV, cols, 1, NULL), ERR_OK);
    assert_int_equal(output_row(o, r, NULL), ERR_OK);
    assert_int_equal(output_end(o, NULL), ERR_OK);
    fclose(fp);
    assert_string_equal(data, "Name\r\n'=1+2\r\n");
    free(data);

    fp = open_memstream(&data, &len);
    assert_int_equal(output_begin(&o, fp, OUTPUT_CSV, cols, 1, NULL), ERR_OK);
    output_raw_cells(o);
    assert_int_equal(output_row(o, r, NULL), ERR_OK);
    assert_int_equal(output_end(o, NULL), ERR_OK);
    fclose(fp);
    assert_string_equal(data, "Name\r\n=1+2\r\n");
    free(data);
    json_decref(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_snipeit_columns_are_documented),
        cmocka_unit_test(test_snipeit_row),
        cmocka_unit_test(test_glpi_inventory),
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_csv_guard_on_and_off),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
