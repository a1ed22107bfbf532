/* test_graph.c - Graph pages, devices, organization, detected apps, errors, paging rules.
 * Fixtures are read at run time from $FIXTURE_DIR (Microsoft's published examples). */
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
#include "graph.h"
#include "mem.h"

static void
free_devs(struct device *devs, size_t n)
{
    for (size_t i = 0; i < n; i++)
        device_clear(&devs[i]);
    free(devs);
}

static void
test_devices_list_fixture(void **state)
{
    size_t len, n = 0, cap = 0;
    char *body = fixture("graph-v1.0-managedDevices-list.response.json", &len);
    struct device *devs = NULL;
    char *next = NULL;
    struct errbuf eb;

    (void)state;
    assert_int_equal(graph_devices_parse(body, len, &devs, &n, &cap, &next, &eb), ERR_OK);
    assert_int_equal(n, 1);
    assert_null(next);
    assert_string_equal(devs[0].intune_id, "705c034c-034c-705c-4c03-5c704c035c70");
    assert_string_equal(devs[0].name, "Device Name value");
    assert_string_equal(devs[0].serial, "Serial Number value");
    assert_string_equal(devs[0].os_name, "Operating System value");
    assert_string_equal(devs[0].compliance_state, "compliant");
    assert_string_equal(devs[0].enrollment_type, "userEnrollment");
    assert_string_equal(devs[0].aad_device_id, "Azure ADDevice Id value");
    assert_string_equal(devs[0].ownership, "company");
    assert_int_equal(devs[0].is_supervised, 1);
    assert_true(devs[0].storage_total == 8);
    assert_true(devs[0].storage_free == 7);
    /* "2017-01-01T00:02:49.3205976-08:00" */
    assert_true(devs[0].last_check_in_at == INT64_C(1483257769));
    assert_int_equal(devs[0].type, DEVICE_UNKNOWN);
    free_devs(devs, n);
    free(body);
}

static void
test_cloudpc_fixture(void **state)
{
    size_t len, n = 0, cap = 0;
    char *body =
        fixture("observed-thirdparty-graph-v1.0-managedDevices-list.cloudpc.response.json", &len);
    struct device *devs = NULL;
    char *next = NULL;
    struct errbuf eb;

    (void)state;
    assert_int_equal(graph_devices_parse(body, len, &devs, &n, &cap, &next, &eb), ERR_OK);
    assert_int_equal(n, 1);
    assert_non_null(next);
    assert_non_null(strstr(next, "$skiptoken=LastDeviceName%3d%27CPC-achak-A17OZ%27"));
    assert_true(graph_link_allowed("https://graph.microsoft.com", next));
    assert_string_equal(devs[0].serial, "0000-0014-0657-8375-4585-0309-11");
    assert_true(devs[0].storage_total == INT64_C(136844410880));
    assert_true(devs[0].storage_free == INT64_C(110705508352));
    assert_true(devs[0].memory == -1);
    assert_null(devs[0].user_upn);
    assert_null(devs[0].ethernet_mac);
    assert_null(devs[0].imei);
    assert_int_equal(devs[0].type, DEVICE_VIRTUAL);
    assert_int_equal(devs[0].is_encrypted, 0);
    assert_true(devs[0].enrolled_at == INT64_C(1702577118));
    free(next);

    /* A second page appends; a bad page leaves the array as it was. */
    {
        static const char bad[] =
            "{\"value\":[{\"id\":\"ok\"},{\"id\":\"b\",\"freeStorageSpaceInBytes\":1.5}]}";

        assert_int_equal(graph_devices_parse(body, len, &devs, &n, &cap, NULL, &eb), ERR_OK);
        assert_int_equal(n, 2);
        assert_int_equal(graph_devices_parse(bad, sizeof bad - 1, &devs, &n, &cap, &next, &eb),
                         ERR_PARSE);
        assert_non_null(strstr(eb.msg, "freeStorageSpaceInBytes"));
        assert_int_equal(n, 2);
        assert_null(next);
    }
    free_devs(devs, n);
    free(body);
}

static void
test_sentinel_dates(void **state)
{
    static const char page[] = "{\"value\":[{\"id\":\"z\",\"enrolledDateTime\":"
                               "\"0001-01-01T00:00:00Z\",\"lastSyncDateTime\":"
                               "\"0001-01-01T00:00:00Z\",\"physicalMemoryInBytes\":0}]}";
    struct device *devs = NULL;
    size_t n = 0, cap = 0;

    (void)state;
    assert_int_equal(graph_devices_parse(page, sizeof page - 1, &devs, &n, &cap, NULL, NULL),
                     ERR_OK);
    assert_true(devs[0].enrolled_at == TS_NULL);
    assert_true(devs[0].last_check_in_at == TS_NULL);
    assert_true(devs[0].memory == -1);
    free_devs(devs, n);
}

static void
test_page_parse(void **state)
{
    static const char *const bad[] = {
        "",
        "[]",
        "{}",
        "{\"value\":{}}",
        "{\"value\":[],\"@odata.nextLink\":5}",
        "{\"value\":[],\"value\":[]}",
        "{\"value\":[1]} x",
    };
    static const char ok[] = "{\"value\":[1,2],\"@odata.nextLink\":\"https://g/x\"}";
    struct graph_page p;
    struct errbuf eb;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(graph_page_parse(bad[i], strlen(bad[i]), &p, &eb), ERR_PARSE);
        assert_null(p.root);
    }
    assert_int_equal(graph_page_parse(ok, sizeof ok - 1, &p, &eb), ERR_OK);
    assert_int_equal(json_array_size(p.value), 2);
    assert_string_equal(p.next_link, "https://g/x");
    graph_page_clear(&p);
    graph_page_clear(&p);
}

static void
test_organization(void **state)
{
    static const char *const names[] = {"graph-v1.0-organization-list.response.json",
                                        "graph-v1.0-organization-get.response.json"};
    static const char domains[] =
        "{\"value\":[{\"id\":\"t1\",\"displayName\":\"Contoso\",\"verifiedDomains\":["
        "{\"name\":\"contoso.onmicrosoft.com\",\"isDefault\":false,\"isInitial\":true},"
        "{\"name\":\"contoso.com\",\"isDefault\":true,\"isInitial\":false}]}]}";
    static const char initial[] =
        "{\"id\":\"t1\",\"displayName\":\"C\",\"verifiedDomains\":["
        "{\"name\":\"c.onmicrosoft.com\",\"isDefault\":false,\"isInitial\":true}]}";
    struct graph_org o;
    struct errbuf eb;

    (void)state;
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        char *body = fixture(names[i], &len);

        assert_int_equal(graph_org_parse(body, len, &o, &eb), ERR_OK);
        assert_string_equal(o.name, "Contoso");
        assert_null(o.default_domain);
        assert_int_equal(o.intune_plan, 2); /* SharePoint only: no Intune plan */
        graph_org_clear(&o);
        free(body);
    }
    assert_int_equal(graph_org_parse(domains, sizeof domains - 1, &o, &eb), ERR_OK);
    assert_string_equal(o.id, "t1");
    assert_string_equal(o.default_domain, "contoso.com");
    graph_org_clear(&o);
    assert_int_equal(graph_org_parse(initial, sizeof initial - 1, &o, &eb), ERR_OK);
    assert_string_equal(o.default_domain, "c.onmicrosoft.com");
    graph_org_clear(&o);
    assert_int_equal(graph_org_parse("{\"value\":[]}", 12, &o, &eb), ERR_PARSE);
    graph_org_clear(NULL);
}

/* assignedPlans tell whether the tenant has Intune (service SCO, enabled or in grace). */
static void
test_org_intune_plan(void **state)
{
    static const struct {
        const char *json;
        int want;
    } cases[] = {
        {"{\"id\":\"t\"}", 0},
        {"{\"assignedPlans\":[]}", 2},
        {"{\"assignedPlans\":[{\"service\":\"exchange\",\"capabilityStatus\":\"Enabled\"},"
         "{\"service\":\"SCO\",\"capabilityStatus\":\"Enabled\"}]}",
         1},
        {"{\"assignedPlans\":[{\"service\":\"SCO\",\"capabilityStatus\":\"Warning\"}]}", 1},
        {"{\"assignedPlans\":[{\"service\":\"SCO\",\"capabilityStatus\":\"Deleted\"}]}", 2},
        {"{\"assignedPlans\":[{\"service\":\"MicrosoftIntune\",\"capabilityStatus\":\"Enabled\"}]}",
         1},
    };
    struct graph_org o;
    struct errbuf eb;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        assert_int_equal(graph_org_parse(cases[i].json, strlen(cases[i].json), &o, &eb), ERR_OK);
        assert_int_equal(o.intune_plan, cases[i].want);
        graph_org_clear(&o);
    }
}

/* The error envelope's flags are read from the whole message, past what is kept of it. */
static void
test_error_whole_message(void **state)
{
    char body[2048];
    struct graph_error ge;
    int n;

    (void)state;
    n = snprintf(body, sizeof body,
                 "{\"error\":{\"code\":\"Forbidden\",\"message\":\"%0900d %s\","
                 "\"innerError\":{\"date\":\"2026-12-07T15:00:00\",\"request-id\":\"r-1\"}}}",
                 0, "Request not applicable to target tenant.");
    assert_int_equal(graph_error_parse(body, (size_t)n, &ge), ERR_OK);
    assert_int_equal(strlen(ge.message), sizeof ge.message - 1);
    assert_int_equal(ge.not_applicable, 1);
    assert_int_equal(ge.nested_forbidden, 0);
    assert_string_equal(ge.request_id, "r-1");
    assert_string_equal(ge.date, "2026-12-07T15:00:00");
    n = snprintf(body, sizeof body,
                 "{\"error\":{\"code\":\"UnknownError\",\"message\":\"{\\\"ErrorCode\\\":"
                 "\\\"Forbidden\\\",\\\"Message\\\":\\\"%0700d\\\"}\"}}",
                 0);
    assert_int_equal(graph_error_parse(body, (size_t)n, &ge), ERR_OK);
    assert_int_equal(ge.nested_forbidden, 1);
    assert_int_equal(ge.not_applicable, 0);
}

/* deviceManagement/managedDeviceOverview: the entity at the top level (as Graph answers a
 * singleton) or under "value" (as the Intune reference's example shows it). */
static void
test_device_overview(void **state)
{
    static const char top[] =
        "{\"@odata.context\":\"https://graph.microsoft.com/v1.0/$metadata#deviceManagement/"
        "managedDeviceOverview/$entity\",\"@odata.type\":\"#microsoft.graph."
        "managedDeviceOverview\",\"id\":\"x\",\"enrolledDeviceCount\":949,"
        "\"mdmEnrolledCount\":949,\"dualEnrolledDeviceCount\":0,"
        "\"deviceOperatingSystemSummary\":{\"windowsCount\":900}}";
    static const char wrapped[] = "{\"value\":{\"@odata.type\":\"#microsoft.graph."
                                  "managedDeviceOverview\",\"enrolledDeviceCount\":1024}}";
    static const char *const bad[] = {
        "{\"value\":{\"mdmEnrolledCount\":3}}",
        "{\"enrolledDeviceCount\":-1}",
        "{\"enrolledDeviceCount\":3.5}",
        "{\"enrolledDeviceCount\":\"3\"}",
        "{\"enrolledDeviceCount\":4294967296}",
        "[1]",
        "not json",
    };
    struct errbuf eb;
    int64_t n = 0;

    (void)state;
    assert_int_equal(graph_overview_parse(top, sizeof top - 1, &n, &eb), ERR_OK);
    assert_int_equal(n, 949);
    assert_int_equal(graph_overview_parse(wrapped, sizeof wrapped - 1, &n, &eb), ERR_OK);
    assert_int_equal(n, 1024);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(graph_overview_parse(bad[i], strlen(bad[i]), &n, &eb), ERR_PARSE);
        assert_int_equal(n, -1);
    }
}

static void
test_detected_apps(void **state)
{
    static const char *const names[] = {"graph-v1.0-detectedApps-list.response.json",
                                        "graph-v1.0-detectedApp-get.response.json"};
    struct detected_app *apps = NULL;
    size_t n = 0, cap = 0;
    struct errbuf eb;

    (void)state;
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        char *body = fixture(names[i], &len);

        assert_int_equal(graph_apps_parse(body, len, &apps, &n, &cap, NULL, &eb), ERR_OK);
        assert_int_equal(n, i + 1);
        assert_string_equal(apps[i].id, "caf60db6-0db6-caf6-b60d-f6cab60df6ca");
        assert_string_equal(apps[i].name, "Display Name value");
        assert_string_equal(apps[i].version, "Version value");
        assert_null(apps[i].publisher);
        assert_true(apps[i].size_bytes == 10);
        free(body);
    }
    {
        static const char real[] = "{\"value\":[{\"id\":\"a\",\"sizeInByte\":1.0}]}";

        /* JSON, but not a detectedApps page (ERR_PARSE is for bodies that are not JSON) */
        assert_int_equal(graph_apps_parse(real, sizeof real - 1, &apps, &n, &cap, NULL, &eb),
                         ERR_INVAL);
    }
    assert_int_equal(n, 2);
    for (size_t i = 0; i < n; i++)
        detected_app_clear(&apps[i]);
    free(apps);
}

static void
test_error_fixtures(void **state)
{
    struct graph_error ge;
    size_t len;
    char *body;

    (void)state;
    body = fixture("graph-error-example.response.json", &len);
    assert_int_equal(graph_error_parse(body, len, &ge), ERR_OK);
    assert_string_equal(ge.code, "invalidRange");
    assert_string_equal(ge.message, "Uploaded fragment overlaps with existing data.");
    assert_string_equal(ge.request_id, "request-id");
    free(body);

    body = fixture("graph-error-429-throttled.response.json", &len);
    assert_int_equal(graph_error_parse(body, len, &ge), ERR_OK);
    assert_string_equal(ge.code, "TooManyRequests");
    assert_string_equal(ge.inner_code, "429");
    assert_string_equal(ge.request_id, "94fb3b52-452a-4535-a601-69e0a90e3aa2");
    free(body);

    {
        static const char lower[] =
            "{\"error\":{\"code\":\"X\",\"innererror\":{\"code\":\"Y\",\"request-id\":\"r\"}}}";

        assert_int_equal(graph_error_parse(lower, sizeof lower - 1, &ge), ERR_OK);
    }
    assert_string_equal(ge.inner_code, "Y");
    assert_string_equal(ge.request_id, "r");
    assert_int_equal(graph_error_parse("{\"value\":[]}", 12, &ge), ERR_PARSE);
    assert_int_equal(graph_error_parse("nope", 4, &ge), ERR_PARSE);
}

static void
test_batch_inner_errors(void **state)
{
    static const char *const codes[] = {"", "Authorization_RequestDenied", "Request_BadRequest"};
    size_t len, i, k = 0;
    char *body = fixture("graph-v1.0-batch.response.json", &len);
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL), *r;

    (void)state;
    assert_non_null(root);
    json_array_foreach(json_object_get(root, "responses"), i, r)
    {
        json_int_t status = json_integer_value(json_object_get(r, "status"));
        char *inner = json_dumps(json_object_get(r, "body"), 0);
        struct graph_error ge;

        assert_non_null(inner);
        if (status >= 400) {
            assert_int_equal(graph_error_parse(inner, strlen(inner), &ge), ERR_OK);
            assert_string_equal(ge.code, codes[k++]);
            assert_true(ge.message[0] != '\0');
            assert_true(ge.request_id[0] != '\0');
        } else {
            assert_int_equal(graph_error_parse(inner, strlen(inner), &ge), ERR_PARSE);
        }
        free(inner);
    }
    assert_int_equal(k, 3);
    json_decref(root);
    free(body);
}

/* The Intune docs print the message as JavaScript-style "a" + "b" pieces; joined, it is a
 * Graph error envelope. */
static void
test_intune_403(void **state)
{
    size_t len, o = 0;
    char *body = fixture("intune-graph-error-403-forbidden.response.txt", &len);
    char *joined = xmalloc(len + 1);
    struct graph_error ge;

    (void)state;
    for (size_t i = 0; i < len; i++) {
        if (body[i] == '"') {
            size_t j = i + 1;

            while (j < len && (body[j] == ' ' || body[j] == '\n' || body[j] == '\r'))
                j++;
            if (j < len && body[j] == '+') {
                j++;
                while (j < len && (body[j] == ' ' || body[j] == '\n' || body[j] == '\r'))
                    j++;
                if (j < len && body[j] == '"') {
                    i = j; /* drop `" + "` */
                    continue;
                }
            }
        }
        joined[o++] = body[i];
    }
    joined[o] = '\0';
    assert_int_equal(graph_error_parse(body, len, &ge), ERR_PARSE);
    assert_int_equal(graph_error_parse(joined, o, &ge), ERR_OK);
    assert_string_equal(ge.code, "Forbidden");
    assert_non_null(strstr(ge.message, "Application is not authorized to perform this operation"
                                       " - Operation ID (for customer support)"));
    assert_non_null(strstr(ge.message, "CustomApiErrorPhrase: "));
    assert_string_equal(ge.request_id, "00000000-0000-0000-0000-000000000000");
    free(joined);
    free(body);
}

static void
test_link_allowed(void **state)
{
    static const char base[] = "https://graph.microsoft.com";
    static const struct {
        const char *link;
        int want;
    } cases[] = {
        {"https://graph.microsoft.com/v1.0/x?$skiptoken=a", 1},
        {"https://GRAPH.Microsoft.COM/v1.0/x", 1},
        {"https://graph.microsoft.com:443/v1.0/x", 1},
        {"https://graph.microsoft.com", 1},
        {"https://graph.microsoft.com?$skip=1", 1},
        {"https://evil.example/v1.0/x", 0},
        {"https://graph.microsoft.com.evil.example/x", 0},
        {"https://graph.microsoft.com:8443/v1.0/x", 0},
        {"http://graph.microsoft.com/v1.0/x", 0},
        {"ftp://graph.microsoft.com/v1.0/x", 0},
        {"https://graph.microsoft.com@evil.example/x", 0},
        {"https://user:pw@graph.microsoft.com/x", 0},
        {"https://evil.example\\@graph.microsoft.com/x", 0},
        {"https://graph.microsoft.com:/x", 0},
        {"https://graph.microsoft.com:99999/x", 0},
        {"//graph.microsoft.com/x", 0},
        {"/v1.0/x", 0},
        {"", 0},
        {"https://graph.microsoft.com\n.evil/x", 0},
        {"https://graph%2emicrosoft.com/x", 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (graph_link_allowed(base, cases[i].link) != cases[i].want)
            fail_msg("case %zu: %s", i, cases[i].link);
    }
    assert_true(graph_link_allowed("http://127.0.0.1:8080/", "http://127.0.0.1:8080/v1.0/a"));
    assert_false(graph_link_allowed("http://127.0.0.1:8080/", "http://127.0.0.1:8081/v1.0/a"));
    assert_true(graph_link_allowed("https://[::1]:9/", "https://[::1]:9/v1.0/a"));
    assert_false(graph_link_allowed(base, NULL));
}

/* Report downloads: Azure Blob hosts of every cloud over https, or the Graph origin itself. */
static void
test_blob_url_allowed(void **state)
{
    static const char base[] = "http://127.0.0.1:8080/graph";
    static const struct {
        const char *url;
        int want;
    } cases[] = {
        {"https://amsua0102repexpstorage.blob.core.windows.net/reports/x.zip?sv=1&sig=a", 1},
        {"https://acct1.BLOB.core.Windows.net/r/x.zip", 1},
        {"https://acct.blob.core.usgovcloudapi.net/r/x.zip", 1},
        {"https://acct.blob.core.chinacloudapi.cn/r/x.zip", 1},
        {"http://127.0.0.1:8080/download/x.zip?sig=1", 1},
        {"http://acct.blob.core.windows.net/r/x.zip", 0},
        {"https://acct.blob.core.windows.net:8443/r/x.zip", 0},
        {"https://blob.core.windows.net/r/x.zip", 0},
        {"https://.blob.core.windows.net/r/x.zip", 0},
        {"https://evil.acct.blob.core.windows.net/r/x.zip", 0},
        {"https://acct.blob.core.windows.net.evil.example/r/x.zip", 0},
        {"https://acct.file.core.windows.net/r/x.zip", 0},
        {"https://evil.example/acct.blob.core.windows.net/x.zip", 0},
        {"https://acct.blob.core.windows.net@evil.example/x.zip", 0},
        {"https://evil.example\\@acct.blob.core.windows.net/x.zip", 0},
        {"http://127.0.0.1:8081/download/x.zip", 0},
        {"https://acct.blob.core.windows.net\n/x.zip", 0},
        {"", 0},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        if (graph_blob_url_allowed(base, cases[i].url) != cases[i].want)
            fail_msg("case %zu: %s", i, cases[i].url);
    }
    assert_false(graph_blob_url_allowed(base, NULL));
}

static void
test_devices_url(void **state)
{
    char *u = graph_devices_url("https://graph.microsoft.com/", "v1.0", 999);

    (void)state;
    assert_non_null(strstr(u, "https://graph.microsoft.com/v1.0/deviceManagement/managedDevices?"
                              "$select=id,"));
    assert_non_null(strstr(u, "&$top=999"));
    assert_null(strstr(u, ".com//"));
    assert_true(graph_link_allowed("https://graph.microsoft.com", u));
    free(u);
    /* every member the mapping reads is selected */
    {
        static const char *const members[] = {
            "serialNumber",        "physicalMemoryInBytes",  "totalStorageSpaceInBytes",
            "managementState",     "lastSyncDateTime",       "azureADDeviceId",
            "ethernetMacAddress",  "managedDeviceOwnerType", "phoneNumber",
            "deviceEnrollmentType"};

        for (size_t i = 0; i < sizeof members / sizeof members[0]; i++)
            assert_non_null(strstr(GRAPH_DEVICE_SELECT, members[i]));
    }
}

/* The jansson way graph_batch_body used to build its text. */
static char *
ref_batch_body(const char *const *ids, const char *const *urls, size_t n)
{
    json_t *reqs = json_array(), *root;
    char *text;

    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            reqs, json_pack("{s:s, s:s, s:s}", "id", ids[i], "method", "GET", "url", urls[i]));
    root = json_pack("{s:o}", "requests", reqs);
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    return text;
}

static void
test_batch_body(void **state)
{
    static const char *const ids[] = {"0", "1", "", "3", "19", "x\"y", "6"};
    static const char *const urls[] = {
        "/deviceManagement/managedDevices/a-b/detectedApps?$select=id,displayName",
        "/deviceManagement/managedDevices/c?$select=id&$top=5",
        "/x",
        "/tab\there",
        "/quote\"and\\back/slash",
        "/caf\xc3\xa9",
        "/bad\xff",
    };

    (void)state;
    /* plain ASCII (the fast path) and each kind of text it leaves to jansson */
    for (size_t n = 0; n <= 3; n++)
        for (size_t k = 0; k + n <= 7; k++) {
            char *a = graph_batch_body(ids + k, urls + k, n),
                 *b = ref_batch_body(ids + k, urls + k, n);

            assert_string_equal(a, b);
            free(a);
            free(b);
        }
    {
        char *a = graph_batch_body(ids, urls, 2);

        assert_string_equal(a, "{\"requests\":[{\"id\":\"0\",\"method\":\"GET\",\"url\":"
                               "\"/deviceManagement/managedDevices/a-b/detectedApps?$select=id,"
                               "displayName\"},{\"id\":\"1\",\"method\":\"GET\",\"url\":"
                               "\"/deviceManagement/managedDevices/c?$select=id&$top=5\"}]}");
        free(a);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_devices_list_fixture), cmocka_unit_test(test_cloudpc_fixture),
        cmocka_unit_test(test_sentinel_dates),       cmocka_unit_test(test_page_parse),
        cmocka_unit_test(test_organization),         cmocka_unit_test(test_detected_apps),
        cmocka_unit_test(test_error_fixtures),       cmocka_unit_test(test_batch_inner_errors),
        cmocka_unit_test(test_intune_403),           cmocka_unit_test(test_link_allowed),
        cmocka_unit_test(test_devices_url),          cmocka_unit_test(test_batch_body),
        cmocka_unit_test(test_org_intune_plan),      cmocka_unit_test(test_error_whole_message),
        cmocka_unit_test(test_blob_url_allowed),     cmocka_unit_test(test_device_overview),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
