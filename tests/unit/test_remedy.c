/* test_remedy.c - what memsync tells the user for each Microsoft failure (docs/SETUP.md and
 * src/ms/remedy.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "cloud.h"
#include "config.h"
#include "remedy.h"

static const struct remedy_ctx ctx = {
    .tenant_id = "11111111-2222-3333-4444-555555555555",
    .app_id = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee",
    .app_label = "Sync App",
    .login_base = "https://login.microsoftonline.com",
    .expired_on = "2026-05-01",
};

static void
test_entra_codes(void **state)
{
    struct remedy r;

    (void)state;
    remedy_from_entra(&r, &ctx, 7000215, "invalid_client", 401);
    assert_int_equal(r.code, REMEDY_SECRET_INVALID);
    assert_string_equal(r.id, "secret_invalid");
    assert_string_equal(r.message, "The Sync App key was rejected: this often means the secret's "
                                   "ID was pasted instead of its value.");
    assert_string_equal(r.action, "Copy the secret's Value from Entra ID > App registrations > "
                                  "Certificates & secrets and update it here.");

    remedy_from_entra(&r, &ctx, 7000222, "invalid_client", 401);
    assert_int_equal(r.code, REMEDY_SECRET_EXPIRED);
    assert_non_null(strstr(r.message, "expired on 2026-05-01"));
    assert_non_null(strstr(r.action, "Create a new secret"));
    assert_non_null(strstr(r.action, "rotate it here"));

    remedy_from_entra(&r, &ctx, 700016, "unauthorized_client", 400);
    assert_int_equal(r.code, REMEDY_APP_NOT_IN_TENANT);
    assert_non_null(strstr(r.action, "https://login.microsoftonline.com/"
                                     "11111111-2222-3333-4444-555555555555/adminconsent?client_id="
                                     "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"));
    assert_non_null(strstr(r.message, "AdminAgents/GDAP"));

    remedy_from_entra(&r, &ctx, 90002, "invalid_tenant", 400);
    assert_int_equal(r.code, REMEDY_TENANT_NOT_FOUND);
    assert_non_null(strstr(r.message, "11111111-2222-3333-4444-555555555555"));
    assert_non_null(strstr(r.message, "wrong"));

    remedy_from_entra(&r, &ctx, 7000218, "invalid_request", 400);
    assert_int_equal(r.code, REMEDY_SECRET_MISSING);

    remedy_from_entra(&r, &ctx, 50034, "invalid_request", 400);
    assert_int_equal(r.code, REMEDY_AUTH_OTHER);
    assert_non_null(strstr(r.message, "AADSTS50034"));

    remedy_from_entra(&r, &ctx, 0, NULL, 503);
    assert_int_equal(r.code, REMEDY_SERVICE_ERROR);

    /* without an expiry date or consent context the text still stands */
    remedy_from_entra(&r, NULL, 7000222, NULL, 401);
    assert_non_null(strstr(r.message, "expired"));
    remedy_from_entra(&r, NULL, 700016, NULL, 400);
    assert_null(strstr(r.action, "(null)"));
}

/* The further codes integrators meet (notes 6.4 and 14), each with its own remedy. */
static void
test_entra_more_codes(void **state)
{
    struct remedy r;

    (void)state;
    remedy_from_entra(&r, &ctx, 7000229, "invalid_client", 400);
    assert_int_equal(r.code, REMEDY_NO_SERVICE_PRINCIPAL);
    assert_string_equal(r.id, "app_no_service_principal");
    assert_non_null(strstr(r.message, "service principal"));
    assert_non_null(strstr(r.message, "home tenant"));
    assert_non_null(strstr(r.action, "enterprise application"));

    remedy_from_entra(&r, &ctx, 7000112, "unauthorized_client", 400);
    assert_int_equal(r.code, REMEDY_APP_DISABLED);
    assert_string_equal(r.id, "app_disabled");
    assert_non_null(strstr(r.message, "disabled"));
    assert_non_null(strstr(r.message, "AADSTS7000112"));
    remedy_from_entra(&r, &ctx, 70001, "unauthorized_client", 400);
    assert_int_equal(r.code, REMEDY_APP_DISABLED);
    assert_non_null(strstr(r.message, "AADSTS70001"));

    remedy_from_entra(&r, &ctx, 53003, "access_denied", 400);
    assert_int_equal(r.code, REMEDY_CONDITIONAL_ACCESS);
    assert_string_equal(r.id, "conditional_access");
    assert_non_null(strstr(r.message, "Conditional Access"));
    assert_non_null(strstr(r.action, "workload identities"));

    remedy_from_entra(&r, &ctx, 900382, "invalid_request", 400);
    assert_int_equal(r.code, REMEDY_WRONG_CLOUD);
    assert_string_equal(r.id, "wrong_cloud");
    assert_non_null(strstr(r.action, "cloud setting (global, usgov, usgovdod, china)"));

    remedy_from_entra(&r, &ctx, 500011, "invalid_resource", 400);
    assert_int_equal(r.code, REMEDY_RESOURCE_NOT_IN_TENANT);
    assert_string_equal(r.id, "resource_not_in_tenant");
    assert_non_null(strstr(r.message, "AADSTS500011"));

    remedy_from_entra(&r, &ctx, 70011, "invalid_scope", 400);
    assert_int_equal(r.code, REMEDY_INVALID_SCOPE);

    remedy_from_entra(&r, &ctx, 90099, "unauthorized_client", 400);
    assert_int_equal(r.code, REMEDY_PARTNER_NOT_AUTHORIZED);
    assert_non_null(strstr(r.action, "/11111111-2222-3333-4444-555555555555/adminconsent?client_id="
                                     "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"));

    /* Consent wording: app-only access, not GDAP, and DAP going away. */
    remedy_from_entra(&r, &ctx, 700016, "unauthorized_client", 400);
    assert_non_null(strstr(r.message, "service principal and admin-consented application "
                                      "permissions in each customer tenant"));
    assert_non_null(strstr(r.message, "GDAP grants delegated access to users only"));
    assert_non_null(strstr(r.message, "being retired"));
}

/* Intune's failures told apart on the whole answer and the tenant's plans. */
static void
test_intune_failures(void **state)
{
    struct remedy r;
    struct remedy_ctx c = ctx;
    struct remedy_graph_error ge = {0};
    char longmsg[2048];
    static const char nested[] =
        "{\"ErrorCode\":\"Forbidden\",\"Message\":\"{\\r\\n  \\\"_version\\\": 3,\\r\\n  "
        "\\\"Message\\\": \\\"An error has occurred - Operation ID (for customer support): "
        "00000000-0000-0000-0000-000000000000\\\"\\r\\n}\",\"Target\":null}";

    (void)state;
    /* "Request not applicable to target tenant." anywhere in a long message, at any status */
    memset(longmsg, 'x', sizeof longmsg);
    snprintf(longmsg + 1500, sizeof longmsg - 1500, "Request not applicable to target tenant.");
    remedy_from_graph(&r, &ctx, 403, "Forbidden", longmsg);
    assert_int_equal(r.code, REMEDY_NO_INTUNE_LICENSE);
    remedy_from_graph(&r, &ctx, 401, "UnknownError", "Request not applicable to target tenant.");
    assert_int_equal(r.code, REMEDY_NO_INTUNE_LICENSE);
    assert_true(remedy_text_not_applicable(longmsg, strlen(longmsg)));
    assert_false(remedy_text_not_applicable(longmsg, 1500 + 20));

    /* Intune's 401 UnknownError nesting "ErrorCode":"Forbidden" is not a token problem */
    assert_true(remedy_text_nested_forbidden(nested, strlen(nested)));
    assert_true(remedy_text_nested_forbidden("{\"ErrorCode\" : \"Forbidden\"}", 26));
    assert_false(remedy_text_nested_forbidden("ErrorCode: NotFound, Forbidden", 30));
    c.intune_plan = REMEDY_INTUNE_PLAN;
    remedy_from_graph(&r, &c, 401, "UnknownError", nested);
    assert_int_equal(r.code, REMEDY_PERMISSION_MISSING);
    assert_non_null(strstr(r.action, "https://login.microsoftonline.com/"
                                     "11111111-2222-3333-4444-555555555555/adminconsent?client_id="
                                     "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee"));
    c.intune_plan = REMEDY_INTUNE_NO_PLAN;
    remedy_from_graph(&r, &c, 401, "UnknownError", nested);
    assert_int_equal(r.code, REMEDY_NO_INTUNE_LICENSE);
    c.intune_plan = REMEDY_INTUNE_UNKNOWN;
    remedy_from_graph(&r, &c, 401, "UnknownError", nested);
    assert_int_equal(r.code, REMEDY_PERMISSION_MISSING);

    /* ... nor is one whose WWW-Authenticate names Intune's realm, whatever the body */
    ge.status = 401;
    ge.code = "UnknownError";
    ge.message = "An error has occurred";
    ge.www_authenticate =
        "Bearer realm=\"urn:intune:service,f0f3c450-59bf-4f0d-b1b2-0ef84ddfe3c5\", "
        "authorization_uri=\"https://login.microsoftonline.com/common\"";
    c.intune_plan = REMEDY_INTUNE_NO_PLAN;
    remedy_from_graph_error(&r, &c, &ge);
    assert_int_equal(r.code, REMEDY_NO_INTUNE_LICENSE);
    c.intune_plan = REMEDY_INTUNE_PLAN;
    remedy_from_graph_error(&r, &c, &ge);
    assert_int_equal(r.code, REMEDY_PERMISSION_MISSING);
    /* a 403 in a tenant known to have no Intune plan is the licence */
    c.intune_plan = REMEDY_INTUNE_NO_PLAN;
    remedy_from_graph(&r, &c, 403, "Forbidden", "Application is not authorized");
    assert_int_equal(r.code, REMEDY_NO_INTUNE_LICENSE);

    /* a plain 401 stays a token problem, and no longer promises it clears by itself */
    ge.www_authenticate =
        "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/"
        "common/oauth2/authorize\"";
    ge.code = "InvalidAuthenticationToken";
    remedy_from_graph_error(&r, &c, &ge);
    assert_int_equal(r.code, REMEDY_TOKEN_REJECTED);
    assert_non_null(strstr(r.action, "admin-consented"));
    assert_true(remedy_intune_realm("Bearer realm=\"urn:intune:service,x\""));
    assert_false(remedy_intune_realm(NULL));

    /* Microsoft's ids ride on the remedy: a header first, then the body's copy */
    remedy_note_ids(&r, "", "body-id", NULL, "2026-12-07T15:00:00");
    assert_string_equal(r.request_id, "body-id");
    assert_string_equal(r.date, "2026-12-07T15:00:00");
    remedy_note_ids(&r, "hdr-id", "body-id", "Mon, 07 Dec 2026 15:00:00 GMT", NULL);
    assert_string_equal(r.request_id, "hdr-id");
    assert_string_equal(r.date, "Mon, 07 Dec 2026 15:00:00 GMT");
    remedy_set(&r, REMEDY_NETWORK, &ctx, NULL);
    assert_string_equal(r.request_id, "");
}

static void
test_graph_statuses(void **state)
{
    struct remedy r;

    (void)state;
    remedy_from_graph(&r, &ctx, 403, "Forbidden",
                      "Application is not authorized to perform this operation");
    assert_int_equal(r.code, REMEDY_PERMISSION_MISSING);
    assert_non_null(strstr(r.message, "DeviceManagementManagedDevices.Read.All"));
    assert_non_null(strstr(r.message, "consent"));

    remedy_from_graph(&r, &ctx, 400, "BadRequest", "Request not applicable to target tenant.");
    assert_int_equal(r.code, REMEDY_NO_INTUNE_LICENSE);
    assert_non_null(strstr(r.message, "no Intune licence"));
    assert_non_null(strstr(r.message, "nothing to sync"));

    remedy_from_graph(&r, &ctx, 400, "BadRequest", "Invalid filter clause");
    assert_int_equal(r.code, REMEDY_BAD_RESPONSE);

    remedy_from_graph(&r, &ctx, 429, "TooManyRequests", "Please retry again later.");
    assert_int_equal(r.code, REMEDY_THROTTLED);
    assert_non_null(strstr(r.action, "will resume next run; data kept"));

    remedy_from_graph(&r, &ctx, 401, "InvalidAuthenticationToken", "expired");
    assert_int_equal(r.code, REMEDY_TOKEN_REJECTED);

    remedy_from_graph(&r, &ctx, 503, "serviceNotAvailable", "x");
    assert_int_equal(r.code, REMEDY_SERVICE_ERROR);
    assert_non_null(strstr(r.message, "503"));

    remedy_from_graph(&r, &ctx, 0, NULL, "cannot connect to 127.0.0.1:9 (Connection refused)");
    assert_int_equal(r.code, REMEDY_NETWORK);
    assert_non_null(strstr(r.message, "Connection refused"));
}

static void
test_other_codes(void **state)
{
    struct remedy r;

    (void)state;
    remedy_set(&r, REMEDY_INDIRECT_RESELLER, &ctx, NULL);
    assert_non_null(strstr(r.action, "direct"));
    assert_non_null(strstr(r.message, "indirect reseller"));
    remedy_set(&r, REMEDY_BAD_RESPONSE, &ctx, "Graph page is not valid JSON");
    assert_non_null(strstr(r.message, "not valid JSON"));
    remedy_set(&r, REMEDY_PARTNER_ACCESS, NULL, NULL);
    assert_non_null(strstr(r.action, "Partner"));
    /* The warnings of a tenant that synced (the client row's warning). */
    remedy_set(&r, REMEDY_ORG_UNREADABLE, &ctx, NULL);
    assert_string_equal(r.id, "org_unreadable");
    assert_non_null(strstr(r.message, "Organization.Read.All"));
    assert_non_null(strstr(r.message, "Partner Center"));
    assert_non_null(strstr(r.action, "https://login.microsoftonline.com/11111111-2222-3333-4444-"
                                     "555555555555/adminconsent?client_id=aaaaaaaa-bbbb-cccc-"
                                     "dddd-eeeeeeeeeeee"));
    remedy_set(&r, REMEDY_RETIRE_HELD, &ctx, "12 of its 40 devices, more than 10 %");
    assert_string_equal(r.id, "retire_held");
    assert_non_null(strstr(r.message, "12 of its 40 devices"));
    assert_non_null(strstr(r.action, "memsync sync --confirm-retire"));
    remedy_set(&r, REMEDY_LISTING_SHORT, &ctx, "5 listed, 20 counted");
    assert_string_equal(r.id, "listing_short");
    assert_non_null(strstr(r.message, "5 listed, 20 counted"));
    for (int c = REMEDY_NONE; c <= REMEDY_LISTING_SHORT; c++) {
        assert_string_not_equal(remedy_id((enum remedy_code)c), "unknown");
        remedy_set(&r, (enum remedy_code)c, &ctx, NULL);
        if (c != REMEDY_NONE) {
            assert_true(r.message[0] != '\0');
            assert_true(r.action[0] != '\0');
        }
        assert_null(strstr(r.message, "(null)"));
    }
    assert_string_equal(remedy_id((enum remedy_code)999), "unknown");
}

/* The sync and the setup checks take the consent link's login base from the configuration with
 * the integration's cloud applied: a US Government tenant consents on login.microsoftonline.us,
 * unless an explicit MEMSYNC_LOGIN_URL says otherwise. */
static void
test_consent_link_follows_the_cloud(void **state)
{
    static struct config cfg;
    struct remedy_ctx c = ctx;
    struct remedy r;

    (void)state;
    snprintf(cfg.login_url, sizeof cfg.login_url, "%s", cloud_find(NULL)->login_url);
    cloud_apply(cloud_find("usgov"), &cfg);
    c.login_base = cfg.login_url;
    remedy_from_entra(&r, &c, 700016, "unauthorized_client", 400);
    assert_non_null(strstr(r.action, "https://login.microsoftonline.us/"
                                     "11111111-2222-3333-4444-555555555555/adminconsent?"));

    snprintf(cfg.login_url, sizeof cfg.login_url, "%s", "http://127.0.0.1:9/login");
    cloud_apply(cloud_find("china"), &cfg);
    c.login_base = cfg.login_url;
    remedy_from_entra(&r, &c, 700016, "unauthorized_client", 400);
    assert_non_null(strstr(r.action, "http://127.0.0.1:9/login/11111111-"));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entra_codes),
        cmocka_unit_test(test_entra_more_codes),
        cmocka_unit_test(test_intune_failures),
        cmocka_unit_test(test_graph_statuses),
        cmocka_unit_test(test_other_codes),
        cmocka_unit_test(test_consent_link_follows_the_cloud),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
