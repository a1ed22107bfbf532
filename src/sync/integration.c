/* integration.c - the integration service: create, replace a key, remove (integration.h). */
#include "integration.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cloud.h"
#include "guid.h"
#include "log.h"
#include "mem.h"

int
integration_parse_expiry(const char *s, const char *label, int64_t *out, struct errbuf *eb)
{
    int64_t now = clock_now();

    if (s == NULL || s[0] == '\0') {
        *out = now + INTEGRATION_SECRET_LIFETIME;
        return ERR_OK;
    }
    if (clock_parse(s, out) != ERR_OK || *out == TS_NULL)
        return err_set(eb, ERR_INVAL, "%s: '%.40s' is not a date (use YYYY-MM-DD)", label, s);
    if (*out > now + INTEGRATION_SECRET_MAX_LIFE)
        return err_set(eb, ERR_INVAL,
                       "%s is more than 24 months away; Microsoft allows at most 24 months", label);
    return ERR_OK;
}

int
integration_check_secret(const char *s, const char *label, struct errbuf *eb)
{
    if (s == NULL || s[0] == '\0')
        return err_set(eb, ERR_INVAL, "the %s is missing", label);
    if (strlen(s) > VAULT_SECRET_MAX)
        return err_set(eb, ERR_INVAL, "the %s is longer than %d characters", label,
                       VAULT_SECRET_MAX);
    if (guid_valid(s))
        return err_set(eb, ERR_INVAL,
                       "the %s looks like a GUID: that is the secret's ID, not its value. Copy "
                       "the Value column from Entra ID > App registrations > Certificates & "
                       "secrets",
                       label);
    return ERR_OK;
}

static int
expiry_of(const char *text, int64_t at, const char *label, int64_t *out, struct errbuf *eb)
{
    if (at != 0) {
        *out = at;
        return ERR_OK;
    }
    return integration_parse_expiry(text, label, out, eb);
}

int
integration_insert_sealed(struct store *st, const struct vault *v, struct integration *row,
                          const char *partner_secret, const char *sync_secret, struct errbuf *eb)
{
    char *psealed = NULL, *ssealed = NULL, *ph = NULL, *sh = NULL;
    int rc, in_tx = 0;

    /* Sealed secrets are bound to the row id: insert and seal in one transaction. */
    if ((rc = store_tx_begin(st, eb)) != ERR_OK)
        goto out;
    in_tx = 1;
    if ((rc = store_integration_insert(st, row, eb)) != ERR_OK)
        goto out;
    if ((rc = vault_seal(v, "integration", row->id, "partner_app_secret", partner_secret, &psealed,
                         eb)) != ERR_OK ||
        (rc = vault_seal(v, "integration", row->id, "sync_app_secret", sync_secret, &ssealed,
                         eb)) != ERR_OK)
        goto out;
    ph = xstrndup(partner_secret, 3);
    sh = xstrndup(sync_secret, 3);
    if ((rc = store_integration_set_secret(st, row->id, "partner", psealed, ph,
                                           row->partner_secret_expires, eb)) != ERR_OK ||
        (rc = store_integration_set_secret(st, row->id, "sync", ssealed, sh,
                                           row->sync_secret_expires, eb)) != ERR_OK)
        goto out;
    if ((rc = store_tx_commit(st, eb)) != ERR_OK)
        goto out;
    in_tx = 0;
out:
    if (in_tx) {
        store_tx_rollback(st);
        row->id = 0;
    }
    free(psealed);
    free(ssealed);
    free(ph);
    free(sh);
    return rc;
}

int
integration_create(const struct config *cfg, struct store *st, const struct vault *v,
                   int64_t account_id, const struct integration_input *in, int64_t *id,
                   struct validation *val, struct errbuf *eb)
{
    struct integration row = {0};
    struct validate_input vi = {0};
    const char *source = in->tenant_source != NULL && in->tenant_source[0] != '\0'
                             ? in->tenant_source
                             : "partner_center";
    int rc;

    *id = 0;
    if (!guid_valid(in->partner_tenant_id))
        return err_set(eb, ERR_INVAL,
                       "the Microsoft Partner Account ID must be a GUID like "
                       "00000000-0000-0000-0000-000000000000 (the partner's Azure tenant ID)");
    if (!guid_valid(in->partner_app_id))
        return err_set(eb, ERR_INVAL,
                       "the Microsoft Partner App ID must be a GUID (the Partner "
                       "Center app's client ID)");
    if (!guid_valid(in->sync_app_id))
        return err_set(eb, ERR_INVAL,
                       "the Microsoft Sync App ID must be a GUID (the sync app's client ID)");
    if ((rc = integration_check_secret(in->partner_app_secret, "Microsoft Partner App Key", eb)) !=
            ERR_OK ||
        (rc = integration_check_secret(in->sync_app_secret, "Microsoft Sync App Key", eb)) !=
            ERR_OK)
        return rc;
    if (strcmp(source, "partner_center") != 0 && strcmp(source, "contracts") != 0 &&
        strcmp(source, "gdap") != 0)
        return err_set(eb, ERR_INVAL, "tenant_source must be partner_center, contracts or gdap");
    if (in->cloud != NULL && in->cloud[0] != '\0' && cloud_find(in->cloud) == NULL)
        return err_set(eb, ERR_INVAL, "cloud must be one of %s", CLOUD_NAMES);
    if (in->name != NULL && strlen(in->name) > INTEGRATION_NAME_MAX)
        return err_set(eb, ERR_INVAL, "the name is longer than %d characters",
                       INTEGRATION_NAME_MAX);
    if ((rc = expiry_of(in->partner_expires, in->partner_expires_at, "the Partner App Key expiry",
                        &row.partner_secret_expires, eb)) != ERR_OK ||
        (rc = expiry_of(in->sync_expires, in->sync_expires_at, "the Sync App Key expiry",
                        &row.sync_secret_expires, eb)) != ERR_OK)
        return rc;
    if (in->sync_interval != 0 && (in->sync_interval < INTEGRATION_INTERVAL_MIN ||
                                   in->sync_interval > INTEGRATION_INTERVAL_MAX))
        return err_set(eb, ERR_INVAL, "the sync interval must be between 5 minutes and 7 days");

    vi.partner_tenant_id = in->partner_tenant_id;
    vi.partner_app_id = in->partner_app_id;
    vi.partner_secret = in->partner_app_secret;
    vi.sync_app_id = in->sync_app_id;
    vi.sync_secret = in->sync_app_secret;
    vi.tenant_source = source;
    vi.cloud = in->cloud;
    vi.sample = in->sample;
    validate_integration(cfg, &vi, val, NULL);
    if (!val->ok)
        return err_set(eb, ERR_AUTH,
                       "not saved: the checks marked fail must pass first (each says what to do)");
    row.account_id = account_id;
    row.name = xstrdup(in->name != NULL && in->name[0] != '\0' ? in->name : "Microsoft Intune");
    row.partner_tenant_id = xstrdup(in->partner_tenant_id);
    row.partner_app_id = xstrdup(in->partner_app_id);
    row.sync_app_id = xstrdup(in->sync_app_id);
    row.tenant_source = xstrdup(source);
    row.cloud = xstrdup(in->cloud != NULL && in->cloud[0] != '\0' ? in->cloud : "global");
    row.sync_interval = in->sync_interval > 0 ? in->sync_interval : INTEGRATION_INTERVAL_DEF;
    rc = integration_insert_sealed(st, v, &row, in->partner_app_secret, in->sync_app_secret, eb);
    if (rc == ERR_OK) {
        *id = row.id;
        log_info("integration saved id=%" PRId64 " account=%" PRId64, row.id, account_id);
    } else if (rc == ERR_EXISTS) {
        err_set(eb, ERR_EXISTS, "an integration with this name already exists; pick another name");
    }
    integration_clear(&row);
    return rc;
}

int
integration_rotate_secret(const struct config *cfg, struct store *st, const struct vault *v,
                          int64_t account_id, int64_t id, const char *which, const char *secret,
                          const char *expires, int64_t expires_at, int sample,
                          struct validation *val, struct errbuf *eb)
{
    struct integration in = {0};
    struct validate_input vi = {0};
    char *other = NULL, *sealed = NULL, *hint = NULL;
    int64_t exp;
    int partner, rc;

    if (which == NULL || (strcmp(which, "partner") != 0 && strcmp(which, "sync") != 0))
        return err_set(eb, ERR_INVAL, "which must be \"partner\" or \"sync\"");
    partner = strcmp(which, "partner") == 0;
    if ((rc = integration_check_secret(
             secret, partner ? "Microsoft Partner App Key" : "Microsoft Sync App Key", eb)) !=
        ERR_OK)
        return rc;
    if ((rc = expiry_of(expires, expires_at, "the new key's expiry", &exp, eb)) != ERR_OK)
        return rc;
    if ((rc = store_integration_get(st, account_id, id, &in, eb)) != ERR_OK)
        return rc;
    /* The other key is needed to list customers for the tenant checks. */
    if ((rc = vault_unseal(v, "integration", id, partner ? "sync_app_secret" : "partner_app_secret",
                           partner ? in.sync_secret_sealed : in.partner_secret_sealed, &other,
                           eb)) != ERR_OK)
        goto out;
    vi.partner_tenant_id = in.partner_tenant_id;
    vi.partner_app_id = in.partner_app_id;
    vi.sync_app_id = in.sync_app_id;
    vi.partner_secret = partner ? secret : other;
    vi.sync_secret = partner ? other : secret;
    vi.tenant_source = in.tenant_source;
    vi.cloud = in.cloud;
    vi.sample = sample;
    validate_integration(cfg, &vi, val, NULL);
    if (!val->ok) {
        rc = err_set(eb, ERR_AUTH,
                     "the key was not changed: the checks marked fail must pass "
                     "first");
        goto out;
    }
    if ((rc = vault_seal(v, "integration", id, partner ? "partner_app_secret" : "sync_app_secret",
                         secret, &sealed, eb)) != ERR_OK)
        goto out;
    hint = xstrndup(secret, 3);
    rc = store_integration_set_secret(st, id, which, sealed, hint, exp, eb);
    if (rc == ERR_OK)
        log_info("integration key replaced id=%" PRId64 " which=%s", id, which);
out:
    vault_wipe(other);
    free(sealed);
    free(hint);
    integration_clear(&in);
    return rc;
}

int
integration_remove(struct store *st, int64_t account_id, int64_t id, struct errbuf *eb)
{
    int rc = store_integration_delete(st, account_id, id, eb);

    if (rc == ERR_OK)
        log_info("integration removed id=%" PRId64 " account=%" PRId64, id, account_id);
    return rc;
}
