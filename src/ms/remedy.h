/* remedy.h - turns what Microsoft said into what the user should know and do (docs/SETUP.md and
 * src/ms/remedy.c).
 *
 * Each diagnosis has a stable code (for the API, tests and metrics), a plain-language message
 * and a remedy. Messages never include secrets or tokens. Pure functions; thread-safe.
 *
 * Consent: the sync reads each customer tenant with app-only tokens, which need the app's
 * service principal and admin-consented application permissions in that tenant; GDAP only grants
 * delegated access to users and DAP (AdminAgents) is being retired. Remedies about consent say so
 * and give the tenant's admin-consent link {login}/{tenant}/adminconsent?client_id={app id} when
 * the context has login_base, tenant_id and app_id.
 *
 * Intune failures are told apart on the whole answer, never a prefix of it: "Request not
 * applicable to target tenant." at any status is the missing licence; a 403, or a 401 that Intune
 * marks as its own (WWW-Authenticate realm "urn:intune:service", or a message nesting
 * "ErrorCode":"Forbidden") is not a token problem: no Intune plan in the tenant's assignedPlans
 * means no licence, otherwise the permission (or its consent) is missing.
 */
#ifndef MEMSYNC_REMEDY_H
#define MEMSYNC_REMEDY_H

#include <stddef.h>

enum remedy_code {
    REMEDY_NONE = 0,
    REMEDY_SECRET_INVALID,     /* AADSTS7000215 */
    REMEDY_SECRET_EXPIRED,     /* AADSTS7000222 */
    REMEDY_APP_NOT_IN_TENANT,  /* AADSTS700016 */
    REMEDY_TENANT_NOT_FOUND,   /* AADSTS90002 */
    REMEDY_SECRET_MISSING,     /* AADSTS7000218 */
    REMEDY_AUTH_OTHER,         /* any other Entra error */
    REMEDY_PERMISSION_MISSING, /* Graph 403 on Intune routes */
    REMEDY_NO_INTUNE_LICENSE,  /* Graph 400 "Request not applicable to target tenant." */
    REMEDY_TOKEN_REJECTED,     /* Graph 401 InvalidAuthenticationToken */
    REMEDY_INDIRECT_RESELLER,  /* customer of an indirect reseller */
    REMEDY_THROTTLED,          /* 429 beyond the retry budget */
    REMEDY_SERVICE_ERROR,      /* 5xx beyond the retry budget */
    REMEDY_NETWORK,            /* connection failures, timeouts */
    REMEDY_BAD_RESPONSE,       /* malformed JSON or unexpected shape */
    REMEDY_PARTNER_ACCESS,     /* Partner Center 401/403 */
    REMEDY_INTERRUPTED,        /* the sync was stopped before this tenant finished */
    REMEDY_STORE,              /* saving the tenant failed (database) */
    /* AADSTS7000229: no service principal in the app's home tenant */
    REMEDY_NO_SERVICE_PRINCIPAL,
    /* AADSTS7000112, AADSTS70001 */
    REMEDY_APP_DISABLED,
    /* AADSTS53003 */
    REMEDY_CONDITIONAL_ACCESS,
    /* AADSTS900382: cross-cloud request */
    REMEDY_WRONG_CLOUD,
    /* AADSTS500011: Graph / Partner Center not in the tenant */
    REMEDY_RESOURCE_NOT_IN_TENANT,
    /* AADSTS70011 */
    REMEDY_INVALID_SCOPE,
    /* AADSTS90099: app not authorized for partner delegated admins */
    REMEDY_PARTNER_NOT_AUTHORIZED,
    /* Warnings: the tenant synced, but the MSP should know (the client row's warning). */
    REMEDY_ORG_UNREADABLE, /* /organization 403: name and domain from Partner Center */
    REMEDY_RETIRE_HELD,    /* the mass-retirement guard kept devices (detail: the figures) */
    REMEDY_LISTING_SHORT,  /* fewer devices listed than Microsoft counts (detail: both) */
};

/* What the tenant's /organization assignedPlans say about Intune (remedy_ctx.intune_plan). */
enum remedy_intune_plan {
    REMEDY_INTUNE_UNKNOWN = 0, /* not read (or no assignedPlans) */
    REMEDY_INTUNE_PLAN,        /* an enabled Intune plan */
    REMEDY_INTUNE_NO_PLAN,     /* assignedPlans read, no enabled Intune plan */
};

struct remedy {
    enum remedy_code code;
    char id[48];       /* stable code, e.g. "secret_invalid" */
    char message[512]; /* what happened */
    char action[512];  /* what to do */
    /* Microsoft's ids of the failed answer, for its support ("" when unknown): Graph request-id,
     * Partner Center MS-RequestId or Entra trace_id, and the answer's date. remedy_set clears
     * them; remedy_note_ids sets them. */
    char request_id[128];
    char date[64];
};

/* Context for the messages. Any member may be NULL. */
struct remedy_ctx {
    const char *tenant_id;
    const char *app_id;     /* client id of the app that was used */
    const char *app_label;  /* "Partner App" or "Sync App" */
    const char *login_base; /* for the admin-consent link */
    const char *expired_on; /* "YYYY-MM-DD" when known */
    enum remedy_intune_plan intune_plan;
};

/* A Graph error answer, as remedy_from_graph_error reads it. */
struct remedy_graph_error {
    long status;
    const char *code;     /* error.code, or NULL */
    const char *message;  /* error.message (may be cut short: the flags below are not), or NULL */
    int not_applicable;   /* the whole message holds "Request not applicable to target tenant." */
    int nested_forbidden; /* the whole message nests "ErrorCode":"Forbidden" (Intune's 401) */
    const char *www_authenticate; /* the WWW-Authenticate header, or NULL */
};

/* Entra token error: AADSTS code (0 if none), OAuth error string, HTTP status. */
void remedy_from_entra(struct remedy *r, const struct remedy_ctx *ctx, long aadsts,
                       const char *oauth_error, long status);
/* Graph error: HTTP status and envelope code/message (the whole message). */
void remedy_from_graph(struct remedy *r, const struct remedy_ctx *ctx, long status,
                       const char *code, const char *message);
void remedy_from_graph_error(struct remedy *r, const struct remedy_ctx *ctx,
                             const struct remedy_graph_error *ge);
/* 1 when text[0..len) holds "Request not applicable to target tenant" (Intune, no licence). */
int remedy_text_not_applicable(const char *text, size_t len);
/* 1 when text[0..len) nests "ErrorCode":"Forbidden" (quotes escaped or not, spaces allowed). */
int remedy_text_nested_forbidden(const char *text, size_t len);
/* 1 when a WWW-Authenticate value names Intune's realm (urn:intune:service). */
int remedy_intune_realm(const char *www_authenticate);
void remedy_set(struct remedy *r, enum remedy_code code, const struct remedy_ctx *ctx,
                const char *detail);
const char *remedy_id(enum remedy_code code);
/* Records Microsoft's ids: the first non-empty of each pair wins (a header, then the body's copy).
 * Any argument may be NULL. */
void remedy_note_ids(struct remedy *r, const char *request_id, const char *request_id2,
                     const char *date, const char *date2);

#endif
