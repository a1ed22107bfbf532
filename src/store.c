/* store.c - backend dispatch and the reconcile logic every backend shares. */
#include "store.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "mem.h"

int
store_open(struct store **out, const char *url, struct errbuf *eb)
{
    ASSERT(out != NULL);
    *out = NULL;
    if (url == NULL || url[0] == '\0')
        return err_set(eb, ERR_INVAL, "no database given; pass a SQLite file path with --db");
    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0)
        return store_pg_open(out, url, eb);
    return store_sqlite_open(out, url, eb);
}

void
store_close(struct store *st)
{
    if (st == NULL)
        return;
    st->ops->close(st);
}

const char *
store_backend(const struct store *st)
{
    return st->ops->name;
}

int
store_tx_begin(struct store *st, struct errbuf *eb)
{
    return st->ops->tx_begin(st, eb);
}

int
store_tx_commit(struct store *st, struct errbuf *eb)
{
    return st->ops->tx_commit(st, eb);
}

void
store_tx_rollback(struct store *st)
{
    st->ops->tx_rollback(st);
}

int
store_account_ensure(struct store *st, const char *name, int64_t *account_id, struct errbuf *eb)
{
    if (name == NULL || name[0] == '\0')
        return err_set(eb, ERR_INVAL, "account name is empty");
    return st->ops->account_ensure(st, name, account_id, eb);
}

void
integration_clear(struct integration *in)
{
    if (in == NULL)
        return;
    free(in->name);
    free(in->partner_tenant_id);
    free(in->partner_app_id);
    free(in->sync_app_id);
    free(in->partner_secret_sealed);
    free(in->sync_secret_sealed);
    free(in->partner_secret_hint);
    free(in->sync_secret_hint);
    free(in->tenant_source);
    memset(in, 0, sizeof *in);
    in->partner_secret_expires = TS_NULL;
    in->sync_secret_expires = TS_NULL;
}

int
store_integration_insert(struct store *st, struct integration *in, struct errbuf *eb)
{
    if (in->name == NULL || in->partner_tenant_id == NULL || in->partner_app_id == NULL ||
        in->sync_app_id == NULL)
        return err_set(eb, ERR_INVAL,
                       "an integration needs a name, partner tenant id, partner app id and sync "
                       "app id");
    if (in->tenant_source != NULL && strcmp(in->tenant_source, "partner_center") != 0 &&
        strcmp(in->tenant_source, "contracts") != 0 && strcmp(in->tenant_source, "gdap") != 0)
        return err_set(eb, ERR_INVAL,
                       "tenant source \"%s\" is not one of partner_center, contracts, gdap",
                       in->tenant_source);
    return st->ops->integration_insert(st, in, eb);
}

int
store_integration_get(struct store *st, int64_t account_id, int64_t id, struct integration *out,
                      struct errbuf *eb)
{
    return st->ops->integration_get(st, account_id, id, out, eb);
}

int
store_integration_list(struct store *st, int64_t account_id, struct integration **out, size_t *n,
                       struct errbuf *eb)
{
    return st->ops->integration_list(st, account_id, out, n, eb);
}

int
store_integration_set_secret(struct store *st, int64_t id, const char *which, const char *sealed,
                             const char *hint, int64_t expires, struct errbuf *eb)
{
    if (which == NULL || (strcmp(which, "partner") != 0 && strcmp(which, "sync") != 0))
        return err_set(eb, ERR_INVAL, "secret kind must be \"partner\" or \"sync\"");
    return st->ops->integration_set_secret(st, id, which, sealed, hint, expires, eb);
}

int
store_integration_delete(struct store *st, int64_t account_id, int64_t id, struct errbuf *eb)
{
    return st->ops->integration_delete(st, account_id, id, eb);
}

void
client_row_clear(struct client_row *c)
{
    if (c == NULL)
        return;
    free(c->tenant_id);
    free(c->name);
    free(c->default_domain);
    free(c->source);
    free(c->status);
    free(c->error_code);
    free(c->error_message);
    free(c->error_remedy);
    memset(c, 0, sizeof *c);
    c->last_sync_at = TS_NULL;
}

int
store_clients_each(struct store *st, int64_t account_id,
                   int (*cb)(void *arg, const struct client_row *c), void *arg, struct errbuf *eb)
{
    return st->ops->clients_each(st, account_id, cb, arg, eb);
}

static int
check_client_info(const struct client_info *ci, struct errbuf *eb)
{
    if (ci == NULL || ci->tenant_id == NULL || ci->tenant_id[0] == '\0')
        return err_set(eb, ERR_INVAL, "client has no tenant id");
    return ERR_OK;
}

int
store_client_fail(struct store *st, int64_t account_id, int64_t integration_id,
                  const struct client_info *ci, const char *code, const char *message,
                  const char *remedy, struct errbuf *eb)
{
    int rc = check_client_info(ci, eb);

    if (rc != ERR_OK)
        return rc;
    return st->ops->client_fail(st, account_id, integration_id, ci, code, message, remedy, eb);
}

int
store_client_update(struct store *st, int64_t account_id, const char *client, int included,
                    const char *name_override, struct errbuf *eb)
{
    if (client == NULL || client[0] == '\0')
        return err_set(eb, ERR_INVAL, "no client given");
    if (included < -1 || included > 1)
        return err_set(eb, ERR_INVAL, "included must be 0 or 1");
    return st->ops->client_update(st, account_id, client, included, name_override, eb);
}

int
store_reconcile_begin(struct store *st, int64_t account_id, int64_t integration_id,
                      const struct client_info *ci, int64_t now, struct errbuf *eb)
{
    int rc = check_client_info(ci, eb);

    if (rc != ERR_OK)
        return rc;
    return st->ops->reconcile_begin(st, account_id, integration_id, ci, now, eb);
}

int
store_reconcile_device(struct store *st, const struct device *d, struct errbuf *eb)
{
    if (d == NULL || d->intune_id == NULL || d->intune_id[0] == '\0')
        return err_set(eb, ERR_INVAL, "device has no Intune id");
    return st->ops->reconcile_device(st, d, eb);
}

int
store_reconcile_installs(struct store *st, const char *intune_device_id, const struct app_ref *apps,
                         size_t n, struct errbuf *eb)
{
    if (intune_device_id == NULL)
        return err_set(eb, ERR_INVAL, "installs without an Intune device id");
    for (size_t i = 0; i < n; i++)
        if (apps[i].name == NULL || apps[i].name[0] == '\0')
            return err_set(eb, ERR_INVAL, "software on device %s has no name", intune_device_id);
    return st->ops->reconcile_installs(st, intune_device_id, apps, n, eb);
}

int
store_reconcile_commit(struct store *st, int listing_complete, int installs_complete,
                       struct reconcile_counts *counts, struct errbuf *eb)
{
    return st->ops->reconcile_commit(st, listing_complete, installs_complete, counts, eb);
}

void
store_reconcile_rollback(struct store *st)
{
    st->ops->reconcile_rollback(st);
}

int
store_assets_each(struct store *st, const struct asset_query *q,
                  int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb)
{
    return st->ops->assets_each(st, q, cb, arg, eb);
}

int
store_device_checkins(struct store *st, int64_t integration_id, const char *tenant_id,
                      int (*cb)(void *arg, const char *intune_id, int64_t last_check_in_at,
                                int retired),
                      void *arg, struct errbuf *eb)
{
    return st->ops->device_checkins(st, integration_id, tenant_id, cb, arg, eb);
}

int64_t
store_assets_count(struct store *st, const struct asset_query *q, struct errbuf *eb)
{
    return st->ops->assets_count(st, q, eb);
}

int
store_software_each(struct store *st, const struct software_query *q,
                    int (*cb)(void *arg, const struct software_row *s), void *arg,
                    struct errbuf *eb)
{
    return st->ops->software_each(st, q, cb, arg, eb);
}

int
store_asset_changes_each(struct store *st, int64_t account_id, int64_t asset_id,
                         int (*cb)(void *arg, const struct asset_change_row *c), void *arg,
                         struct errbuf *eb)
{
    return st->ops->asset_changes_each(st, account_id, asset_id, cb, arg, eb);
}

int
store_run_start(struct store *st, int64_t integration_id, const char *kind, int64_t now,
                int64_t *run_id, struct errbuf *eb)
{
    if (kind == NULL || (strcmp(kind, "full") != 0 && strcmp(kind, "incremental") != 0))
        return err_set(eb, ERR_INVAL, "sync kind must be \"full\" or \"incremental\"");
    return st->ops->run_start(st, integration_id, kind, now, run_id, eb);
}

int
store_run_tenant(struct store *st, int64_t run_id, const struct tenant_result *r, struct errbuf *eb)
{
    if (r == NULL || r->tenant_id == NULL || r->status == NULL)
        return err_set(eb, ERR_INVAL, "tenant result needs a tenant id and a status");
    return st->ops->run_tenant(st, run_id, r, eb);
}

int
store_run_finish(struct store *st, int64_t run_id, const char *status, int64_t now,
                 struct errbuf *eb)
{
    static const char *const ok[] = {"ok", "partial", "failed", "interrupted"};
    size_t i;

    for (i = 0; status != NULL && i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(status, ok[i]) == 0)
            break;
    if (status == NULL || i == sizeof ok / sizeof ok[0])
        return err_set(eb, ERR_INVAL, "sync run status must be ok, partial, failed or interrupted");
    return st->ops->run_finish(st, run_id, status, now, eb);
}

/* ---- shared helpers ------------------------------------------------------------------- */

char *
store_device_field_text(const struct device *d, const struct device_field *f)
{
    const char *base = (const char *)d + f->offset;
    char ts[32];

    switch (f->kind) {
    case DF_STR:
        return xstrdup(*(char *const *)(const void *)base);
    case DF_INT64: {
        int64_t v = *(const int64_t *)(const void *)base;
        return v < 0 ? NULL : xasprintf("%" PRId64, v);
    }
    case DF_BOOL: {
        int v = *(const int *)(const void *)base;
        return v < 0 ? NULL : xstrdup(v ? "true" : "false");
    }
    case DF_TS: {
        int64_t v = *(const int64_t *)(const void *)base;
        if (v == TS_NULL)
            return NULL;
        clock_fmt(v, ts, sizeof ts);
        return xstrdup(ts);
    }
    case DF_TYPE:
        return xstrdup(device_type_name(*(const enum device_type *)(const void *)base));
    }
    return NULL;
}

static int
text_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

int
store_device_diff(const struct device *old, const struct device *new_,
                  int (*cb)(void *arg, const char *field, const char *oldv, const char *newv),
                  void *arg)
{
    int n = 0;

    for (size_t i = 0; i < device_field_count; i++) {
        const struct device_field *f = &device_fields[i];
        char *a = store_device_field_text(old, f);
        char *b = store_device_field_text(new_, f);
        int rc = 0;

        if (!text_equal(a, b)) {
            n++;
            if (cb != NULL)
                rc = cb(arg, f->name, a, b);
        }
        free(a);
        free(b);
        if (rc != 0)
            return rc;
    }
    return n;
}

char *
store_serial_key(const char *serial)
{
    size_t start = 0, end;
    char *k;

    if (serial == NULL)
        return NULL;
    end = strlen(serial);
    while (start < end && isspace((unsigned char)serial[start]))
        start++;
    while (end > start && isspace((unsigned char)serial[end - 1]))
        end--;
    if (end == start)
        return NULL;
    k = xstrndup(serial + start, end - start);
    for (char *p = k; *p != '\0'; p++)
        *p = (char)toupper((unsigned char)*p);
    return k;
}
