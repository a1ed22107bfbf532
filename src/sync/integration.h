/* integration.h - the integration service: the one place that creates an integration, replaces
 * one of its two keys and removes one. The command line, the REST API and the web UI all call
 * it, so the rules live once: the values are checked, then validated with Microsoft, and a new
 * row and its two sealed keys are written in ONE transaction (a sealed key is bound to the row
 * id, so the row must exist first; a failed seal leaves no row behind).
 *
 * Ownership: every input is borrowed; secrets are never copied out of the caller's buffers
 * except into the vault's sealed form and a 3-character hint. *val is the caller's (filled also
 * on refusal; validation_clear it). Threads: any thread, with a struct store of its own; the
 * vault is shared read-only. Runs validate_integration synchronously (network, bounded by its
 * sample and the HTTP timeouts).
 * Errors: ERR_INVAL with a message for a malformed value; ERR_AUTH when a Microsoft check failed
 * (nothing written; *val says which); ERR_NOTFOUND for an unknown integration; ERR_EXISTS for a
 * name in use; store and vault errors otherwise. Secrets never appear in messages or logs.
 */
#ifndef MEMSYNC_INTEGRATION_H
#define MEMSYNC_INTEGRATION_H

#include <stdint.h>

#include "config.h"
#include "err.h"
#include "store.h"
#include "validate.h"
#include "vault.h"

#define INTEGRATION_SECRET_LIFETIME (182 * 86400) /* default: 6 months, as Entra offers */
#define INTEGRATION_SECRET_MAX_LIFE (731 * 86400) /* Microsoft allows at most 24 months */
#define INTEGRATION_NAME_MAX        200
#define INTEGRATION_INTERVAL_MIN    300 /* sync interval bounds, seconds */
#define INTEGRATION_INTERVAL_MAX    (7 * 86400)
#define INTEGRATION_INTERVAL_DEF    (6 * 3600)

/* The values of a new integration (borrowed). An expiry is the *_at time when nonzero (the
 * command line checks its own dates), else parsed from the text (NULL or "": 6 months). */
struct integration_input {
    const char *name; /* NULL or "": "Microsoft Intune" */
    const char *partner_tenant_id;
    const char *partner_app_id;
    const char *partner_app_secret;
    const char *sync_app_id;
    const char *sync_app_secret;
    const char *partner_expires;
    const char *sync_expires;
    int64_t partner_expires_at;
    int64_t sync_expires_at;
    const char *tenant_source; /* NULL or "": partner_center */
    const char *cloud;         /* cloud.h name; NULL or "": global */
    int64_t sync_interval;     /* 0: INTEGRATION_INTERVAL_DEF */
    int sample;                /* customer tenants validation tries; 0: its default */
};

/* Checks in, validates it with Microsoft (results in *val), then inserts the row and seals both
 * keys in one transaction. *id is the new row's on ERR_OK. Queues no sync: the caller does. */
int integration_create(const struct config *cfg, struct store *st, const struct vault *v,
                       int64_t account_id, const struct integration_input *in, int64_t *id,
                       struct validation *val, struct errbuf *eb);

/* The transaction of integration_create alone: inserts row (its id is set) and seals and stores
 * both keys, or writes nothing. For callers that validated already; row's secret fields are
 * ignored, its expiries are stored with the keys. */
int integration_insert_sealed(struct store *st, const struct vault *v, struct integration *row,
                              const char *partner_secret, const char *sync_secret,
                              struct errbuf *eb);

/* Replaces one key (which: "partner" | "sync") of integration id in account_id, after validating
 * it with Microsoft together with the other, stored key (results in *val). The expiry is
 * expires_at when nonzero, else parsed from expires (NULL or "": 6 months). A sync already
 * running finishes with the old key. */
int integration_rotate_secret(const struct config *cfg, struct store *st, const struct vault *v,
                              int64_t account_id, int64_t id, const char *which, const char *secret,
                              const char *expires, int64_t expires_at, int sample,
                              struct validation *val, struct errbuf *eb);

/* Deletes integration id of account_id with everything synced under it. */
int integration_remove(struct store *st, int64_t account_id, int64_t id, struct errbuf *eb);

/* A key's expiry from text (YYYY-MM-DD or RFC 3339; NULL or "": 6 months from now). ERR_INVAL
 * for a malformed date or one more than 24 months away; label names the field in messages. */
int integration_parse_expiry(const char *s, const char *label, int64_t *out, struct errbuf *eb);

/* ERR_INVAL unless s is a plausible key value: present, at most VAULT_SECRET_MAX bytes, and
 * not a GUID (Entra shows the secret's ID beside its value). label names it in the message. */
int integration_check_secret(const char *s, const char *label, struct errbuf *eb);

#endif
