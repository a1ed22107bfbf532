#include "remedy.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

static const char *const remedy_ids[] = {
    [REMEDY_NONE] = "none",
    [REMEDY_SECRET_INVALID] = "secret_invalid",
    [REMEDY_SECRET_EXPIRED] = "secret_expired",
    [REMEDY_APP_NOT_IN_TENANT] = "app_not_in_tenant",
    [REMEDY_TENANT_NOT_FOUND] = "tenant_not_found",
    [REMEDY_SECRET_MISSING] = "secret_missing",
    [REMEDY_AUTH_OTHER] = "auth_failed",
    [REMEDY_PERMISSION_MISSING] = "permission_missing",
    [REMEDY_NO_INTUNE_LICENSE] = "no_intune_license",
    [REMEDY_TOKEN_REJECTED] = "token_rejected",
    [REMEDY_INDIRECT_RESELLER] = "indirect_reseller",
    [REMEDY_THROTTLED] = "throttled",
    [REMEDY_SERVICE_ERROR] = "service_error",
    [REMEDY_NETWORK] = "network",
    [REMEDY_BAD_RESPONSE] = "bad_response",
    [REMEDY_PARTNER_ACCESS] = "partner_access",
    [REMEDY_INTERRUPTED] = "interrupted",
    [REMEDY_STORE] = "store_error",
    [REMEDY_NO_SERVICE_PRINCIPAL] = "app_no_service_principal",
    [REMEDY_APP_DISABLED] = "app_disabled",
    [REMEDY_CONDITIONAL_ACCESS] = "conditional_access",
    [REMEDY_WRONG_CLOUD] = "wrong_cloud",
    [REMEDY_RESOURCE_NOT_IN_TENANT] = "resource_not_in_tenant",
    [REMEDY_INVALID_SCOPE] = "invalid_scope",
    [REMEDY_PARTNER_NOT_AUTHORIZED] = "partner_not_authorized",
    [REMEDY_ORG_UNREADABLE] = "org_unreadable",
    [REMEDY_RETIRE_HELD] = "retire_held",
    [REMEDY_LISTING_SHORT] = "listing_short",
};

/* What app-only access needs in every customer tenant, and why GDAP does not give it. */
#define CONSENT_WHY                                                                                \
    "App-only access needs the app's service principal and admin-consented application "           \
    "permissions in each customer tenant; GDAP grants delegated access to users only, and DAP "    \
    "(AdminAgents) is being retired."

const char *
remedy_id(enum remedy_code code)
{
    if ((int)code < 0 || (size_t)code >= sizeof remedy_ids / sizeof remedy_ids[0] ||
        remedy_ids[code] == NULL)
        return "unknown";
    return remedy_ids[code];
}

void
remedy_note_ids(struct remedy *r, const char *request_id, const char *request_id2, const char *date,
                const char *date2)
{
    const char *id = request_id != NULL && *request_id != '\0' ? request_id : request_id2;
    const char *d = date != NULL && *date != '\0' ? date : date2;

    if (id != NULL && *id != '\0')
        snprintf(r->request_id, sizeof r->request_id, "%s", id);
    if (d != NULL && *d != '\0')
        snprintf(r->date, sizeof r->date, "%s", d);
}

static const char * or (const char *s, const char *def)
{
    return s != NULL && *s != '\0' ? s : def;
}

void
remedy_set(struct remedy *r, enum remedy_code code, const struct remedy_ctx *ctx,
           const char *detail)
{
    static const struct remedy_ctx empty = {0};
    const char *app, *tenant, *d;
    char extra[256] = "";
    char consent[320] = "";

    if (ctx == NULL)
        ctx = &empty;
    app = or (ctx->app_label, "app");
    tenant = or (ctx->tenant_id, "this tenant");
    d = or (detail, "");
    if (*d != '\0')
        snprintf(extra, sizeof extra, " (%s)", d);
    if (ctx->login_base != NULL && ctx->app_id != NULL && ctx->tenant_id != NULL)
        snprintf(consent, sizeof consent, "%s/%s/adminconsent?client_id=%s", ctx->login_base,
                 ctx->tenant_id, ctx->app_id);
    memset(r, 0, sizeof *r);
    r->code = code;
    snprintf(r->id, sizeof r->id, "%s", remedy_id(code));
    switch (code) {
    case REMEDY_NONE:
        break;
    case REMEDY_SECRET_INVALID:
        snprintf(r->message, sizeof r->message,
                 "The %s key was rejected: this often means the secret's ID was pasted instead "
                 "of its value.",
                 app);
        snprintf(r->action, sizeof r->action,
                 "Copy the secret's Value from Entra ID > App registrations > Certificates & "
                 "secrets and update it here.");
        break;
    case REMEDY_SECRET_EXPIRED:
        if (ctx->expired_on != NULL && *ctx->expired_on != '\0')
            snprintf(r->message, sizeof r->message, "The %s key expired on %s.", app,
                     ctx->expired_on);
        else
            snprintf(r->message, sizeof r->message, "The %s key has expired.", app);
        snprintf(r->action, sizeof r->action,
                 "Create a new secret in Entra ID > App registrations > Certificates & secrets "
                 "and rotate it here.");
        break;
    case REMEDY_APP_NOT_IN_TENANT:
        snprintf(r->message, sizeof r->message,
                 "The %s (%s) is not present in tenant %s: it was never consented there, or "
                 "the AdminAgents/GDAP access that brought it is gone. " CONSENT_WHY,
                 app, or (ctx->app_id, "unknown client id"), tenant);
        if (consent[0] != '\0')
            snprintf(r->action, sizeof r->action,
                     "Have a Global Administrator of that tenant grant admin consent at %s.",
                     consent);
        else
            snprintf(r->action, sizeof r->action,
                     "Have a Global Administrator of that tenant grant admin consent for the "
                     "app there.");
        break;
    case REMEDY_TENANT_NOT_FOUND:
        snprintf(r->message, sizeof r->message,
                 "Tenant %s was not found: the tenant ID is wrong or the tenant no longer "
                 "exists.",
                 tenant);
        snprintf(r->action, sizeof r->action,
                 "Check the tenant ID (a GUID from Entra ID > Overview) and correct it here, or "
                 "exclude this tenant.");
        break;
    case REMEDY_SECRET_MISSING:
        snprintf(r->message, sizeof r->message, "No key was sent for the %s.", app);
        snprintf(r->action, sizeof r->action, "Enter the %s key (the secret's Value) here.", app);
        break;
    case REMEDY_AUTH_OTHER:
        snprintf(r->message, sizeof r->message, "Microsoft refused to sign in the %s%s.", app,
                 extra);
        snprintf(r->action, sizeof r->action,
                 "Check the app ID, key and tenant ID; the Microsoft error code above explains "
                 "the exact cause.");
        break;
    case REMEDY_PERMISSION_MISSING:
        snprintf(r->message, sizeof r->message,
                 "The %s is not allowed to read Intune devices in %s: it lacks the "
                 "DeviceManagementManagedDevices.Read.All permission or its admin consent there. "
                 "GDAP roles do not help: app-only access needs admin-consented application "
                 "permissions in each customer tenant.",
                 app, tenant);
        snprintf(r->action, sizeof r->action,
                 "Add the application permissions DeviceManagementManagedDevices.Read.All and "
                 "DeviceManagementApps.Read.All to the app and grant admin consent in that "
                 "tenant%s%s.",
                 consent[0] != '\0' ? ": " : "", consent);
        break;
    case REMEDY_NO_INTUNE_LICENSE:
        snprintf(r->message, sizeof r->message,
                 "Tenant %s has no Intune licence, so there is nothing to sync there.", tenant);
        snprintf(r->action, sizeof r->action,
                 "Nothing to do unless the client should have Intune; you may exclude this "
                 "tenant.");
        break;
    case REMEDY_TOKEN_REJECTED:
        snprintf(r->message, sizeof r->message,
                 "Microsoft Graph rejected the %s's access token in %s, also after a fresh "
                 "sign-in.",
                 app, tenant);
        snprintf(r->action, sizeof r->action,
                 "Usually temporary: the sync will retry next run. If it persists, check that "
                 "the app is admin-consented in that tenant%s%s.",
                 consent[0] != '\0' ? " (" : "", consent[0] != '\0' ? consent : "");
        if (consent[0] != '\0')
            snprintf(r->action + strlen(r->action), sizeof r->action - strlen(r->action), ")");
        break;
    case REMEDY_INDIRECT_RESELLER:
        snprintf(r->message, sizeof r->message,
                 "Tenant %s is a customer of an indirect reseller; memsync cannot reach it "
                 "through Partner Center.",
                 tenant);
        snprintf(r->action, sizeof r->action,
                 "Not supported: direct (GDAP) access to the tenant is required, or exclude it.");
        break;
    case REMEDY_THROTTLED:
        snprintf(r->message, sizeof r->message,
                 "Microsoft throttled requests for %s beyond the retry budget.", tenant);
        snprintf(r->action, sizeof r->action,
                 "Nothing to do: the sync will resume next run; data kept.");
        break;
    case REMEDY_SERVICE_ERROR:
        snprintf(r->message, sizeof r->message,
                 "Microsoft's service kept failing (server error%s%s).", *d ? " " : "", d);
        snprintf(r->action, sizeof r->action,
                 "Usually temporary: the sync will retry next run; data kept.");
        break;
    case REMEDY_NETWORK:
        snprintf(r->message, sizeof r->message, "Microsoft could not be reached%s.", extra);
        snprintf(r->action, sizeof r->action,
                 "Check the network, proxy and firewall of this server and the URL settings; "
                 "data kept.");
        break;
    case REMEDY_BAD_RESPONSE:
        snprintf(r->message, sizeof r->message,
                 "Microsoft sent a response memsync could not "
                 "read%s.",
                 extra);
        snprintf(r->action, sizeof r->action,
                 "Usually temporary: the sync will retry next run; data kept. Report it if it "
                 "persists.");
        break;
    case REMEDY_PARTNER_ACCESS:
        snprintf(r->message, sizeof r->message,
                 "Partner Center refused access to the customer list%s.", extra);
        snprintf(r->action, sizeof r->action,
                 "Check the Partner App ID and key in Partner Center > Account settings > App "
                 "management, and the Partner Account ID.");
        break;
    case REMEDY_INTERRUPTED:
        snprintf(r->message, sizeof r->message, "The sync was stopped before %s finished.", tenant);
        snprintf(r->action, sizeof r->action, "Nothing was changed for it; run the sync again.");
        break;
    case REMEDY_STORE:
        snprintf(r->message, sizeof r->message, "Saving %s failed%s.", tenant, extra);
        snprintf(r->action, sizeof r->action,
                 "Nothing was changed for this tenant. Check the database (disk space, "
                 "permissions) and run the sync again.");
        break;
    case REMEDY_NO_SERVICE_PRINCIPAL:
        snprintf(r->message, sizeof r->message,
                 "The %s (%s) has no service principal in its home tenant, so Microsoft cannot "
                 "sign it in anywhere (AADSTS7000229).",
                 app, or (ctx->app_id, "unknown client id"));
        snprintf(r->action, sizeof r->action,
                 "In the partner tenant, open Entra ID > App registrations > the app and create "
                 "its enterprise application (or grant admin consent there once), then run the "
                 "sync again.");
        break;
    case REMEDY_APP_DISABLED:
        snprintf(r->message, sizeof r->message,
                 "The %s is disabled%s%s, so Microsoft refuses to sign it in%s.", app,
                 ctx->tenant_id != NULL ? " in tenant " : "", ctx->tenant_id != NULL ? tenant : "",
                 extra);
        snprintf(r->action, sizeof r->action,
                 "Enable sign-in for the app's enterprise application (Entra ID > Enterprise "
                 "applications > Properties > Enabled for users to sign in) in that tenant, or "
                 "ask its administrator to.");
        break;
    case REMEDY_CONDITIONAL_ACCESS:
        snprintf(r->message, sizeof r->message,
                 "A Conditional Access policy in tenant %s blocks the %s (AADSTS53003).", tenant,
                 app);
        snprintf(r->action, sizeof r->action,
                 "Ask that tenant's administrator to exclude the app's service principal from the "
                 "Conditional Access policy for workload identities (or allow this server's IP "
                 "address), then run the sync again.");
        break;
    case REMEDY_WRONG_CLOUD:
        snprintf(r->message, sizeof r->message,
                 "Tenant %s lives in another Microsoft cloud than the one the %s signed in to "
                 "(AADSTS900382).",
                 tenant, app);
        snprintf(r->action, sizeof r->action,
                 "Set the integration's cloud setting (global, usgov, usgovdod, china) to the "
                 "tenant's cloud, with an app registered in that cloud.");
        break;
    case REMEDY_RESOURCE_NOT_IN_TENANT:
        snprintf(r->message, sizeof r->message,
                 "Tenant %s does not have the service the %s asked a token for "
                 "(AADSTS500011: resource principal not found)%s.",
                 tenant, app, extra);
        snprintf(r->action, sizeof r->action,
                 "Check the URL and cloud settings (the token audience must match the tenant's "
                 "cloud); for Partner Center, check that the tenant is a partner tenant.");
        break;
    case REMEDY_INVALID_SCOPE:
        snprintf(r->message, sizeof r->message,
                 "Microsoft refused the token scope the %s asked for (AADSTS70011)%s.", app, extra);
        snprintf(r->action, sizeof r->action,
                 "Check the URL and cloud settings: the Graph and Partner Center hosts decide "
                 "the scope memsync asks for.");
        break;
    case REMEDY_PARTNER_NOT_AUTHORIZED:
        snprintf(r->message, sizeof r->message,
                 "The %s is not authorized in tenant %s for partner delegated admins "
                 "(AADSTS90099). " CONSENT_WHY,
                 app, tenant);
        if (consent[0] != '\0')
            snprintf(r->action, sizeof r->action,
                     "Have an administrator of that tenant grant admin consent at %s.", consent);
        else
            snprintf(r->action, sizeof r->action,
                     "Have an administrator of that tenant grant admin consent for the app.");
        break;
    case REMEDY_ORG_UNREADABLE:
        snprintf(r->message, sizeof r->message,
                 "The %s may not read tenant %s's organization (Organization.Read.All is not "
                 "consented there), so its name and domain come from Partner Center; its "
                 "devices were synced.",
                 app, tenant);
        if (ctx->login_base != NULL && ctx->app_id != NULL && ctx->tenant_id != NULL)
            snprintf(r->action, sizeof r->action,
                     "Add the application permission Organization.Read.All to the app, then "
                     "have a Global Administrator of that tenant consent again at "
                     "%s/%s/adminconsent?client_id=%s (a consent covers only the permissions "
                     "the app had when it was granted).",
                     ctx->login_base, ctx->tenant_id, ctx->app_id);
        else
            snprintf(r->action, sizeof r->action,
                     "Add the application permission Organization.Read.All to the app and grant "
                     "admin consent again in that tenant.");
        break;
    case REMEDY_RETIRE_HELD:
        snprintf(r->message, sizeof r->message,
                 "Microsoft stopped listing many of %s's devices at once%s, so none of them was "
                 "retired: a listing that ends early looks just like that.",
                 tenant, extra);
        snprintf(r->action, sizeof r->action,
                 "Check the tenant's devices in the Intune admin center (Devices > All devices). "
                 "If Intune still shows them, nothing is to do: they stay active and this clears "
                 "once they are listed again. If they really are gone, retire them with "
                 "`memsync sync --confirm-retire`.");
        break;
    case REMEDY_LISTING_SHORT:
        snprintf(r->message, sizeof r->message,
                 "Microsoft listed fewer of %s's devices than it counts%s, so the listing was "
                 "taken as incomplete: devices it lacked were kept as they were.",
                 tenant, extra);
        snprintf(r->action, sizeof r->action,
                 "Nothing to do: the next sync lists the tenant again; data kept. If it "
                 "persists, compare the device count in the Intune admin center.");
        break;
    }
}

void
remedy_from_entra(struct remedy *r, const struct remedy_ctx *ctx, long aadsts,
                  const char *oauth_error, long status)
{
    char detail[128];

    switch (aadsts) {
    case 7000215:
        remedy_set(r, REMEDY_SECRET_INVALID, ctx, NULL);
        return;
    case 7000222:
        remedy_set(r, REMEDY_SECRET_EXPIRED, ctx, NULL);
        return;
    case 700016:
        remedy_set(r, REMEDY_APP_NOT_IN_TENANT, ctx, NULL);
        return;
    case 90002:
        remedy_set(r, REMEDY_TENANT_NOT_FOUND, ctx, NULL);
        return;
    case 7000218:
        remedy_set(r, REMEDY_SECRET_MISSING, ctx, NULL);
        return;
    case 7000229:
        remedy_set(r, REMEDY_NO_SERVICE_PRINCIPAL, ctx, NULL);
        return;
    case 7000112:
    case 70001:
        snprintf(detail, sizeof detail, "AADSTS%ld", aadsts);
        remedy_set(r, REMEDY_APP_DISABLED, ctx, detail);
        return;
    case 53003:
        remedy_set(r, REMEDY_CONDITIONAL_ACCESS, ctx, NULL);
        return;
    case 900382:
        remedy_set(r, REMEDY_WRONG_CLOUD, ctx, NULL);
        return;
    case 500011:
        remedy_set(r, REMEDY_RESOURCE_NOT_IN_TENANT, ctx, NULL);
        return;
    case 70011:
        remedy_set(r, REMEDY_INVALID_SCOPE, ctx, NULL);
        return;
    case 90099:
        remedy_set(r, REMEDY_PARTNER_NOT_AUTHORIZED, ctx, NULL);
        return;
    default:
        break;
    }
    if (aadsts == 0 && status == 429) {
        remedy_set(r, REMEDY_THROTTLED, ctx, NULL);
        return;
    }
    if (aadsts == 0 && status >= 500) {
        snprintf(detail, sizeof detail, "HTTP %ld", status);
        remedy_set(r, REMEDY_SERVICE_ERROR, ctx, detail);
        return;
    }
    if (aadsts != 0)
        snprintf(detail, sizeof detail, "AADSTS%ld%s%s", aadsts, oauth_error ? ", " : "",
                 oauth_error ? oauth_error : "");
    else
        snprintf(detail, sizeof detail, "%s, HTTP %ld", or (oauth_error, "no error code"), status);
    remedy_set(r, REMEDY_AUTH_OTHER, ctx, detail);
}

/* Case-insensitive search of needle in text[0..len); text need not be NUL-terminated. */
static int
contains_ci(const char *text, size_t len, const char *needle)
{
    size_t n = strlen(needle);

    if (text == NULL || n == 0 || len < n)
        return 0;
    for (size_t i = 0; i + n <= len; i++)
        if (strncasecmp(text + i, needle, n) == 0)
            return 1;
    return 0;
}

int
remedy_text_not_applicable(const char *text, size_t len)
{
    return contains_ci(text, len, "Request not applicable to target tenant");
}

int
remedy_text_nested_forbidden(const char *text, size_t len)
{
    static const char key[] = "ErrorCode";

    /* "ErrorCode":"Forbidden", as text or JSON-escaped inside a string (\"ErrorCode\":...). */
    for (size_t i = 0; text != NULL && i + sizeof key - 1 <= len; i++) {
        size_t j = i + sizeof key - 1;

        if (strncasecmp(text + i, key, sizeof key - 1) != 0)
            continue;
        while (j < len && (text[j] == '"' || text[j] == '\\' || text[j] == ' ' || text[j] == ':'))
            j++;
        if (len - j >= 9 && strncasecmp(text + j, "Forbidden", 9) == 0)
            return 1;
    }
    return 0;
}

int
remedy_intune_realm(const char *www_authenticate)
{
    return www_authenticate != NULL &&
           contains_ci(www_authenticate, strlen(www_authenticate), "urn:intune:service");
}

/* No Intune plan known -> no licence; otherwise the permission or its consent is missing. */
static void
intune_refused(struct remedy *r, const struct remedy_ctx *ctx)
{
    if (ctx != NULL && ctx->intune_plan == REMEDY_INTUNE_NO_PLAN)
        remedy_set(r, REMEDY_NO_INTUNE_LICENSE, ctx, NULL);
    else
        remedy_set(r, REMEDY_PERMISSION_MISSING, ctx, NULL);
}

void
remedy_from_graph_error(struct remedy *r, const struct remedy_ctx *ctx,
                        const struct remedy_graph_error *ge)
{
    const char *code = ge->code;
    long status = ge->status;
    char detail[160];

    if (ge->not_applicable) {
        remedy_set(r, REMEDY_NO_INTUNE_LICENSE, ctx, NULL);
    } else if (status == 403) {
        intune_refused(r, ctx);
    } else if (status == 401 &&
               (ge->nested_forbidden || remedy_intune_realm(ge->www_authenticate))) {
        /* Intune's own 401 UnknownError: an authorization or licence failure, not the token. */
        intune_refused(r, ctx);
    } else if (status == 401) {
        remedy_set(r, REMEDY_TOKEN_REJECTED, ctx, NULL);
    } else if (status == 429) {
        remedy_set(r, REMEDY_THROTTLED, ctx, NULL);
    } else if (status >= 500) {
        snprintf(detail, sizeof detail, "HTTP %ld%s%s", status, code && *code ? " " : "",
                 code ? code : "");
        remedy_set(r, REMEDY_SERVICE_ERROR, ctx, detail);
    } else if (status == 0) {
        remedy_set(r, REMEDY_NETWORK, ctx, ge->message);
    } else {
        snprintf(detail, sizeof detail, "HTTP %ld%s%s", status, code && *code ? " " : "",
                 code ? code : "");
        remedy_set(r, REMEDY_BAD_RESPONSE, ctx, detail);
    }
}

void
remedy_from_graph(struct remedy *r, const struct remedy_ctx *ctx, long status, const char *code,
                  const char *message)
{
    struct remedy_graph_error ge = {0};

    ge.status = status;
    ge.code = code;
    ge.message = message;
    if (status != 0 && message != NULL) {
        ge.not_applicable = remedy_text_not_applicable(message, strlen(message));
        ge.nested_forbidden = remedy_text_nested_forbidden(message, strlen(message));
    }
    remedy_from_graph_error(r, ctx, &ge);
}
