/* ui_help.c - the help page and the integration form's use of a check result (ui_help.h). */
#include "ui_help.h"

#include <string.h>

#include "guid.h"

static const char setup_html[] =
#include "../../www/setup_html.inc"
    ;

const char *
ui_help_setup_html(void)
{
    return setup_html;
}

const char *
ui_help_anchor(const char *field)
{
    static const char *const map[][2] = {
        {"partner_tenant_id", "microsoft-partner-account-id"},
        {"partner_app_id", "microsoft-partner-app-id"},
        {"partner_app_secret", "microsoft-partner-app-key"},
        {"sync_app_id", "microsoft-sync-app-id"},
        {"sync_app_secret", "microsoft-sync-app-key"},
        {"partner_app_secret_expires_at", "3-saving"},
        {"sync_app_secret_expires_at", "3-saving"},
        {"cloud", "national-clouds"},
    };

    for (size_t i = 0; field != NULL && i < sizeof map / sizeof map[0]; i++)
        if (strcmp(field, map[i][0]) == 0)
            return map[i][1];
    return NULL;
}

static int
is(const json_t *o, const char *key, const char *want)
{
    const char *s = json_string_value(json_object_get(o, key));

    return s != NULL && strcmp(s, want) == 0;
}

const char *
ui_help_field_failure(const json_t *val, const char *field, const char *value)
{
    const json_t *c;
    size_t i;

    if (value != NULL && value[0] != '\0' && field != NULL &&
        (strcmp(field, "partner_tenant_id") == 0 || strcmp(field, "partner_app_id") == 0 ||
         strcmp(field, "sync_app_id") == 0) &&
        !guid_valid(value))
        return "This is not a GUID: it looks like 00000000-0000-0000-0000-000000000000.";

    json_array_foreach(json_object_get(val, "checks"), i, c)
    {
        if (is(c, "status", "fail") && is(c, "field", field)) {
            const char *m = json_string_value(json_object_get(c, "message"));

            return m != NULL ? m : "This value did not pass the check.";
        }
    }
    return NULL;
}

int
ui_help_key_passed(const json_t *val, const char *field)
{
    const char *check = field == NULL                              ? NULL
                        : strcmp(field, "partner_app_secret") == 0 ? "partner_token"
                        : strcmp(field, "sync_app_secret") == 0    ? "sync_token"
                                                                   : NULL;
    const json_t *c;
    size_t i;

    if (check == NULL)
        return 0;
    json_array_foreach(json_object_get(val, "checks"), i, c)
    {
        if (is(c, "id", check))
            return is(c, "status", "pass");
    }
    return 0;
}

void
ui_help_sampled(struct buf *b, const json_t *val)
{
    const json_t *cust = json_object_get(val, "customers"), *c;
    json_int_t sampled = json_integer_value(json_object_get(val, "tenants_sampled"));
    const char *last = NULL;
    int warned = 0;
    size_t i;

    if (!json_is_integer(cust) || json_integer_value(cust) < 0)
        return;
    /* A sampled tenant's checks are consecutive: count the tenants with a warning once. */
    json_array_foreach(json_object_get(val, "checks"), i, c)
    {
        const char *tid = json_string_value(json_object_get(c, "tenant_id"));

        if (tid != NULL &&
            strncmp(json_string_value(json_object_get(c, "id")), "tenant_", 7) == 0 &&
            is(c, "status", "warn") && (last == NULL || strcmp(last, tid) != 0)) {
            warned++;
            last = tid;
        }
    }
    buf_printf(b,
               "<p id=\"checks-sampled\" class=\"muted\">Checked %" JSON_INTEGER_FORMAT
               " of %" JSON_INTEGER_FORMAT " customer tenants",
               sampled, json_integer_value(cust));
    if (warned > 0)
        buf_printf(b, " (%d could not be read: see the warnings)", warned);
    buf_addstr(b, "; the others are read at the first sync, and a tenant that fails there says "
                  "why on the Clients page.</p>");
}
