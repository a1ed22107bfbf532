/* remedy.h - turns what Microsoft said into what the user should know and do (docs/SETUP.md and
 * src/remedy.c).
 *
 * Each diagnosis has a stable code (for the API, tests and metrics), a plain-language message
 * and a remedy. Messages never include secrets or tokens. Pure functions; thread-safe.
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
    /* Warnings: the tenant synced, but the MSP should know (the client row's warning). */
    REMEDY_ORG_UNREADABLE, /* /organization 403: name and domain from Partner Center */
    REMEDY_RETIRE_HELD,    /* the mass-retirement guard kept devices (detail: the figures) */
    REMEDY_LISTING_SHORT,  /* fewer devices listed than Microsoft counts (detail: both) */
};

struct remedy {
    enum remedy_code code;
    char id[48];       /* stable code, e.g. "secret_invalid" */
    char message[512]; /* what happened */
    char action[512];  /* what to do */
};

/* Context for the messages. Any member may be NULL. */
struct remedy_ctx {
    const char *tenant_id;
    const char *app_id;     /* client id of the app that was used */
    const char *app_label;  /* "Partner App" or "Sync App" */
    const char *login_base; /* for the admin-consent link */
    const char *expired_on; /* "YYYY-MM-DD" when known */
};

/* Entra token error: AADSTS code (0 if none), OAuth error string, HTTP status. */
void remedy_from_entra(struct remedy *r, const struct remedy_ctx *ctx, long aadsts,
                       const char *oauth_error, long status);
/* Graph error: HTTP status and envelope code/message. */
void remedy_from_graph(struct remedy *r, const struct remedy_ctx *ctx, long status,
                       const char *code, const char *message);
void remedy_set(struct remedy *r, enum remedy_code code, const struct remedy_ctx *ctx,
                const char *detail);
const char *remedy_id(enum remedy_code code);

#endif
