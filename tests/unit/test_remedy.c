/* test_remedy.c - what memsync tells the user for each Microsoft failure (docs/SETUP.md and
 * src/remedy.c). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

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

    remedy_from_entra(&r, &ctx, 53003, "access_denied", 400);
    assert_int_equal(r.code, REMEDY_AUTH_OTHER);
    assert_non_null(strstr(r.message, "AADSTS53003"));

    remedy_from_entra(&r, &ctx, 0, NULL, 503);
    assert_int_equal(r.code, REMEDY_SERVICE_ERROR);

    /* without an expiry date or consent context the text still stands */
    remedy_from_entra(&r, NULL, 7000222, NULL, 401);
    assert_non_null(strstr(r.message, "expired"));
    remedy_from_entra(&r, NULL, 700016, NULL, 400);
    assert_null(strstr(r.action, "(null)"));
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

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_entra_codes),
        cmocka_unit_test(test_graph_statuses),
        cmocka_unit_test(test_other_codes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
