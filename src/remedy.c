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
    [REMEDY_ORG_UNREADABLE] = "org_unreadable",
    [REMEDY_RETIRE_HELD] = "retire_held",
    [REMEDY_LISTING_SHORT] = "listing_short",
};

const char *
remedy_id(enum remedy_code code)
{
    if ((int)code < 0 || (size_t)code >= sizeof remedy_ids / sizeof remedy_ids[0] ||
        remedy_ids[code] == NULL)
        return "unknown";
    return remedy_ids[code];
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

    if (ctx == NULL)
        ctx = &empty;
    app = or (ctx->app_label, "app");
    tenant = or (ctx->tenant_id, "this tenant");
    d = or (detail, "");
    if (*d != '\0')
        snprintf(extra, sizeof extra, " (%s)", d);
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
                 "the AdminAgents/GDAP access that brought it is gone.",
                 app, or (ctx->app_id, "unknown client id"), tenant);
        if (ctx->login_base != NULL && ctx->app_id != NULL && ctx->tenant_id != NULL)
            snprintf(r->action, sizeof r->action,
                     "Have a Global Administrator of that tenant grant consent at "
                     "%s/%s/adminconsent?client_id=%s, or check its AdminAgents/GDAP "
                     "relationship.",
                     ctx->login_base, ctx->tenant_id, ctx->app_id);
        else
            snprintf(r->action, sizeof r->action,
                     "Grant admin consent for the app in that tenant, or check its "
                     "AdminAgents/GDAP relationship.");
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
                 "DeviceManagementManagedDevices.Read.All permission or its admin consent there.",
                 app, tenant);
        snprintf(r->action, sizeof r->action,
                 "Add the application permissions DeviceManagementManagedDevices.Read.All and "
                 "DeviceManagementApps.Read.All to the app and grant admin consent in that "
                 "tenant.");
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
                 "Microsoft Graph rejected the %s's access token in %s.", app, tenant);
        snprintf(r->action, sizeof r->action,
                 "This usually clears on the next run; if it persists, check the app's consent "
                 "in that tenant.");
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

void
remedy_from_graph(struct remedy *r, const struct remedy_ctx *ctx, long status, const char *code,
                  const char *message)
{
    char detail[160];

    if (status == 400 && message != NULL &&
        strstr(message, "Request not applicable to target tenant") != NULL) {
        remedy_set(r, REMEDY_NO_INTUNE_LICENSE, ctx, NULL);
    } else if (status == 403) {
        remedy_set(r, REMEDY_PERMISSION_MISSING, ctx, NULL);
    } else if (status == 401) {
        remedy_set(r, REMEDY_TOKEN_REJECTED, ctx, NULL);
    } else if (status == 429) {
        remedy_set(r, REMEDY_THROTTLED, ctx, NULL);
    } else if (status >= 500) {
        snprintf(detail, sizeof detail, "HTTP %ld%s%s", status, code && *code ? " " : "",
                 code ? code : "");
        remedy_set(r, REMEDY_SERVICE_ERROR, ctx, detail);
    } else if (status == 0) {
        remedy_set(r, REMEDY_NETWORK, ctx, message);
    } else {
        snprintf(detail, sizeof detail, "HTTP %ld%s%s", status, code && *code ? " " : "",
                 code ? code : "");
        remedy_set(r, REMEDY_BAD_RESPONSE, ctx, detail);
    }
}
