/* sqlite_accounts.c - SQLite: accounts, integrations, clients, users, sessions and API keys
 * (sqlite_int.h). */
#include "sqlite_int.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "clock.h"
#include "hash.h"
#include "log.h"
#include "mem.h"
#include "serialset.h"

static const char *const integ_cols =
    "id, account_id, name, partner_tenant_id, partner_app_id, sync_app_id, "
    "partner_secret_sealed, sync_secret_sealed, partner_secret_hint, sync_secret_hint, "
    "partner_secret_expires, sync_secret_expires, tenant_source, sync_interval, created_at, "
    "updated_at, cloud, partner_secret_expiry_source, sync_secret_expiry_source";

/* ---- accounts and integrations ---------------------------------------------------------- */

int
sq_account_ensure(struct store *base, const char *name, int64_t *id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int own, rc;

    rc = sq_wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = sq_prep(s, S_ACCOUNT_INS,
                 "INSERT INTO account (name, created_at) VALUES (?1, ?2) "
                 "ON CONFLICT (name) DO NOTHING",
                 &st, eb);
    if (rc != ERR_OK)
        goto out;
    sq_bind_text(st, 1, name);
    sqlite3_bind_int64(st, 2, clock_now());
    rc = sq_step_done(s, st, eb, "creating the account");
    if (rc != ERR_OK)
        goto out;
    rc = sq_prep(s, S_ACCOUNT_GET, "SELECT id FROM account WHERE name = ?1", &st, eb);
    if (rc != ERR_OK)
        goto out;
    sq_bind_text(st, 1, name);
    if (sqlite3_step(st) == SQLITE_ROW)
        *id = sqlite3_column_int64(st, 0);
    else
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the account");
    sq_done(st);
out:
    return sq_wend(s, own, rc, eb);
}

static void
read_integration(sqlite3_stmt *st, struct integration *in)
{
    memset(in, 0, sizeof *in);
    in->id = sqlite3_column_int64(st, 0);
    in->account_id = sqlite3_column_int64(st, 1);
    in->name = sq_col_dup(st, 2);
    in->partner_tenant_id = sq_col_dup(st, 3);
    in->partner_app_id = sq_col_dup(st, 4);
    in->sync_app_id = sq_col_dup(st, 5);
    in->partner_secret_sealed = sq_col_dup(st, 6);
    in->sync_secret_sealed = sq_col_dup(st, 7);
    in->partner_secret_hint = sq_col_dup(st, 8);
    in->sync_secret_hint = sq_col_dup(st, 9);
    in->partner_secret_expires = sq_col_ts(st, 10);
    in->sync_secret_expires = sq_col_ts(st, 11);
    in->tenant_source = sq_col_dup(st, 12);
    in->sync_interval = sqlite3_column_int64(st, 13);
    in->created_at = sqlite3_column_int64(st, 14);
    in->updated_at = sqlite3_column_int64(st, 15);
    in->cloud = sq_col_dup(st, 16);
    in->partner_secret_expiry_source = sq_col_dup(st, 17);
    in->sync_secret_expiry_source = sq_col_dup(st, 18);
}

int
sq_integration_insert(struct store *base, struct integration *in, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t now = clock_now();
    int own, rc, src;

    rc = sq_wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc =
        sq_prep(s, S_INTEG_INS,
                "INSERT INTO integration (account_id, name, partner_tenant_id, partner_app_id, "
                "sync_app_id, partner_secret_sealed, sync_secret_sealed, partner_secret_hint, "
                "sync_secret_hint, partner_secret_expires, sync_secret_expires, tenant_source, "
                "sync_interval, created_at, updated_at, cloud) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, "
                "?8, ?9, ?10, ?11, ?12, ?13, ?14, ?14, ?15) RETURNING id",
                &st, eb);
    if (rc != ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, in->account_id);
    sq_bind_text(st, 2, in->name);
    sq_bind_text(st, 3, in->partner_tenant_id);
    sq_bind_text(st, 4, in->partner_app_id);
    sq_bind_text(st, 5, in->sync_app_id);
    sq_bind_text(st, 6, in->partner_secret_sealed);
    sq_bind_text(st, 7, in->sync_secret_sealed);
    sq_bind_text(st, 8, in->partner_secret_hint);
    sq_bind_text(st, 9, in->sync_secret_hint);
    sq_bind_ts(st, 10, in->partner_secret_expires);
    sq_bind_ts(st, 11, in->sync_secret_expires);
    sq_bind_text(st, 12, in->tenant_source != NULL ? in->tenant_source : "partner_center");
    sqlite3_bind_int64(st, 13, in->sync_interval > 0 ? in->sync_interval : 21600);
    sqlite3_bind_int64(st, 14, now);
    sq_bind_text(st, 15, in->cloud != NULL ? in->cloud : "global");
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        in->id = sqlite3_column_int64(st, 0);
        in->created_at = in->updated_at = now;
        if (in->sync_interval <= 0)
            in->sync_interval = 21600;
    } else {
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "saving the integration");
        if (rc == ERR_EXISTS)
            rc = err_set(eb, ERR_EXISTS, "an integration named \"%s\" already exists", in->name);
        else if (rc == ERR_NOTFOUND)
            rc = err_set(eb, ERR_NOTFOUND, "account %" PRId64 " does not exist", in->account_id);
    }
    sq_done(st);
out:
    return sq_wend(s, own, rc, eb);
}

int
sq_integration_get(struct store *base, int64_t account_id, int64_t id, struct integration *out,
                   struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    char sql[512];
    int rc, src;

    snprintf(sql, sizeof sql, "SELECT %s FROM integration WHERE account_id = ?1 AND id = ?2",
             integ_cols);
    rc = sq_prep(s, S_INTEG_GET, sql, &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, account_id);
    sqlite3_bind_int64(st, 2, id);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        read_integration(st, out);
    else if (src == SQLITE_DONE)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
    else
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the integration");
    sq_done(st);
    return rc;
}

int
sq_integration_list(struct store *base, int64_t account_id, struct integration **out, size_t *n,
                    struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    struct integration *arr = NULL;
    size_t len = 0, cap = 0;
    char sql[512];
    int rc, src;

    *out = NULL;
    *n = 0;
    snprintf(sql, sizeof sql, "SELECT %s FROM integration WHERE account_id = ?1 ORDER BY id",
             integ_cols);
    rc = sq_prep(s, S_INTEG_LIST, sql, &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, account_id);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (len == cap) {
            cap = cap ? cap * 2 : 8;
            arr = xrealloc(arr, cap * sizeof *arr);
        }
        read_integration(st, &arr[len++]);
    }
    if (src != SQLITE_DONE) {
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "listing integrations");
        for (size_t i = 0; i < len; i++)
            integration_clear(&arr[i]);
        XFREE(arr);
        len = 0;
    }
    sq_done(st);
    *out = arr;
    *n = len;
    return rc;
}

int
sq_integration_set_expiry(struct store *base, int64_t id, const char *which, int64_t expires,
                          const char *source, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int own, rc;

    rc = sq_wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = sq_prep(s, strcmp(which, "partner") == 0 ? S_INTEG_EXPIRY_P : S_INTEG_EXPIRY_S,
                 strcmp(which, "partner") == 0
                     ? "UPDATE integration SET partner_secret_expires = ?1, "
                       "partner_secret_expiry_source = ?2, updated_at = ?3 WHERE id = ?4"
                     : "UPDATE integration SET sync_secret_expires = ?1, "
                       "sync_secret_expiry_source = ?2, updated_at = ?3 WHERE id = ?4",
                 &st, eb);
    if (rc != ERR_OK)
        goto out;
    sq_bind_ts(st, 1, expires);
    sq_bind_text(st, 2, source);
    sqlite3_bind_int64(st, 3, clock_now());
    sqlite3_bind_int64(st, 4, id);
    rc = sq_step_done(s, st, eb, "saving the secret's expiry");
    if (rc == ERR_OK && sqlite3_changes(s->db) == 0)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
out:
    return sq_wend(s, own, rc, eb);
}

int
sq_integration_set_secret(struct store *base, int64_t id, const char *which, const char *sealed,
                          const char *hint, int64_t expires, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int partner = strcmp(which, "partner") == 0;
    int own, rc;

    rc = sq_wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    if (partner)
        rc = sq_prep(s, S_INTEG_SECRET_P,
                     "UPDATE integration SET partner_secret_sealed = ?1, partner_secret_hint = ?2, "
                     "partner_secret_expires = ?3, partner_secret_expiry_source = NULL, "
                     "updated_at = ?4 WHERE id = ?5",
                     &st, eb);
    else
        rc = sq_prep(s, S_INTEG_SECRET_S,
                     "UPDATE integration SET sync_secret_sealed = ?1, sync_secret_hint = ?2, "
                     "sync_secret_expires = ?3, sync_secret_expiry_source = NULL, updated_at = ?4 "
                     "WHERE id = ?5",
                     &st, eb);
    if (rc != ERR_OK)
        goto out;
    sq_bind_text(st, 1, sealed);
    sq_bind_text(st, 2, hint);
    sq_bind_ts(st, 3, expires);
    sqlite3_bind_int64(st, 4, clock_now());
    sqlite3_bind_int64(st, 5, id);
    rc = sq_step_done(s, st, eb, "saving the secret");
    if (rc == ERR_OK && sqlite3_changes(s->db) == 0)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
out:
    return sq_wend(s, own, rc, eb);
}

int
sq_integration_delete(struct store *base, int64_t account_id, int64_t id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int own, rc;

    rc = sq_wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = sq_prep(s, S_INTEG_DEL, "DELETE FROM integration WHERE account_id = ?1 AND id = ?2", &st,
                 eb);
    if (rc != ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, account_id);
    sqlite3_bind_int64(st, 2, id);
    rc = sq_step_done(s, st, eb, "deleting the integration");
    if (rc == ERR_OK && sqlite3_changes(s->db) == 0)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
out:
    return sq_wend(s, own, rc, eb);
}

/* ---- clients ----------------------------------------------------------------------------- */

int
sq_clients_each(struct store *base, int64_t account_id,
                int (*cb)(void *arg, const struct client_row *c), void *arg, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    struct client_row c;
    int rc = ERR_OK, src;

    /* Not cached: the callback may use the store while we iterate. */
    src = sq_prep_once(
        s,
        "SELECT id, integration_id, tenant_id, COALESCE(name_override, name), default_domain, "
        "source, included, status, error_code, error_message, error_remedy, last_sync_at, "
        "device_count, software_count, error_request_id, error_date, warning_code, "
        "warning_message, warning_remedy FROM client WHERE account_id = ?1 "
        "ORDER BY lower(COALESCE(name_override, name, tenant_id)), id",
        -1, &st, NULL);
    if (src != SQLITE_OK)
        return sq_db_err(s, src, eb, "listing clients");
    sqlite3_bind_int64(st, 1, account_id);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        c.id = sqlite3_column_int64(st, 0);
        c.integration_id = sqlite3_column_int64(st, 1);
        c.tenant_id = sq_col_dup(st, 2);
        c.name = sq_col_dup(st, 3);
        c.default_domain = sq_col_dup(st, 4);
        c.source = sq_col_dup(st, 5);
        c.included = sqlite3_column_int(st, 6);
        c.status = sq_col_dup(st, 7);
        c.error_code = sq_col_dup(st, 8);
        c.error_message = sq_col_dup(st, 9);
        c.error_remedy = sq_col_dup(st, 10);
        c.last_sync_at = sq_col_ts(st, 11);
        c.device_count = sqlite3_column_int64(st, 12);
        c.software_count = sqlite3_column_int64(st, 13);
        c.error_request_id = sq_col_dup(st, 14);
        c.error_date = sq_col_dup(st, 15);
        c.warning_code = sq_col_dup(st, 16);
        c.warning_message = sq_col_dup(st, 17);
        c.warning_remedy = sq_col_dup(st, 18);
        rc = cb(arg, &c);
        client_row_clear(&c);
        if (rc != 0)
            break;
    }
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "listing clients");
    sqlite3_finalize(st);
    return rc;
}

int
sq_check_integration(struct sq *s, int64_t account_id, int64_t integration_id, struct errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int rc, src;

    rc = sq_prep(s, S_INTEG_OWNED, "SELECT 1 FROM integration WHERE id = ?1 AND account_id = ?2",
                 &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, integration_id);
    sqlite3_bind_int64(st, 2, account_id);
    src = sqlite3_step(st);
    if (src == SQLITE_DONE)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", integration_id);
    else if (src != SQLITE_ROW)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the integration");
    sq_done(st);
    return rc;
}

/* The client's status before a failure: *old is malloc'd ("never" when there is no client). */
static int
client_status_old(struct sq *s, int64_t integration_id, const char *tenant, char **old,
                  struct errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int src;

    *old = NULL;
    src = sq_prep_once(s, "SELECT status FROM client WHERE integration_id = ?1 AND tenant_id = ?2",
                       -1, &st, NULL);
    if (src != SQLITE_OK)
        return sq_db_err(s, src, eb, "reading the client's status");
    sqlite3_bind_int64(st, 1, integration_id);
    sq_bind_text(st, 2, tenant);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW)
        *old = xstrdup((const char *)sqlite3_column_text(st, 0));
    sqlite3_finalize(st);
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        return sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the client's status");
    if (*old == NULL)
        *old = xstrdup("never");
    return ERR_OK;
}

/* The feed's client.status row of a failure (the client row is written). */
static int
client_fail_event(struct sq *s, int64_t integration_id, const char *tenant, const char *old,
                  int64_t now, struct errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int src;

    if (strcmp(old, "error") == 0)
        return ERR_OK;
    src = sq_prep_once(s,
                       "INSERT INTO change_event (account_id, client_id, at, kind, field, "
                       "old_value, new_value) SELECT account_id, id, ?3, 'client.status', "
                       "'status', ?4, 'error' FROM client WHERE integration_id = ?1 AND "
                       "tenant_id = ?2",
                       -1, &st, NULL);
    if (src != SQLITE_OK)
        return sq_db_err(s, src, eb, "recording the client's status change");
    sqlite3_bind_int64(st, 1, integration_id);
    sq_bind_text(st, 2, tenant);
    sqlite3_bind_int64(st, 3, now);
    sq_bind_text(st, 4, old);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src != SQLITE_DONE)
        return sq_db_err(s, sqlite3_extended_errcode(s->db), eb,
                         "recording the client's status change");
    return ERR_OK;
}

int
sq_client_fail(struct store *base, int64_t account_id, int64_t integration_id,
               const struct client_info *ci, const char *code, const char *message,
               const char *remedy, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    char *old = NULL;
    int64_t now = clock_now();
    int own, rc;

    rc = sq_wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = sq_check_integration(s, account_id, integration_id, eb);
    if (rc != ERR_OK)
        goto out;
    rc = client_status_old(s, integration_id, ci->tenant_id, &old, eb);
    if (rc != ERR_OK)
        goto out;
    rc = sq_prep(s, S_CLIENT_FAIL,
                 "INSERT INTO client (account_id, integration_id, tenant_id, name, default_domain, "
                 "source, status, error_code, error_message, error_remedy, error_request_id, "
                 "error_date, created_at, updated_at) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, COALESCE(?6, 'partner_center'), 'error', ?7, ?8, ?9, "
                 "?11, ?12, ?10, ?10) ON CONFLICT (integration_id, tenant_id) DO UPDATE SET "
                 "name = COALESCE(excluded.name, client.name), "
                 "default_domain = COALESCE(excluded.default_domain, client.default_domain), "
                 "source = COALESCE(?6, client.source), status = 'error', "
                 "error_code = excluded.error_code, error_message = excluded.error_message, "
                 "error_remedy = excluded.error_remedy, "
                 "error_request_id = excluded.error_request_id, error_date = excluded.error_date, "
                 "updated_at = excluded.updated_at",
                 &st, eb);
    if (rc != ERR_OK)
        goto out;
    sqlite3_bind_int64(st, 1, account_id);
    sqlite3_bind_int64(st, 2, integration_id);
    sq_bind_text(st, 3, ci->tenant_id);
    sq_bind_text(st, 4, ci->name);
    sq_bind_text(st, 5, ci->default_domain);
    sq_bind_text(st, 6, ci->source);
    sq_bind_text(st, 7, code);
    sq_bind_text(st, 8, message);
    sq_bind_text(st, 9, remedy);
    sqlite3_bind_int64(st, 10, now);
    sq_bind_text(st, 11, ci->error_request_id);
    sq_bind_text(st, 12, ci->error_date);
    rc = sq_step_done(s, st, eb, "recording the tenant failure");
    if (rc == ERR_OK)
        rc = client_fail_event(s, integration_id, ci->tenant_id, old, now, eb);
out:
    free(old);
    return sq_wend(s, own, rc, eb);
}

int
sq_client_update(struct store *base, int64_t account_id, const char *client, int included,
                 const char *name_override, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t id = 0;
    int own, rc, src, matches = 0;

    rc = sq_wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    src = sq_prep_once(s,
                       "SELECT id FROM client WHERE account_id = ?1 AND "
                       "(CAST(id AS TEXT) = ?2 OR tenant_id = ?2 OR "
                       "COALESCE(name_override, name) = ?2) LIMIT 2",
                       -1, &st, NULL);
    if (src != SQLITE_OK) {
        rc = sq_db_err(s, src, eb, "finding the client");
        goto out;
    }
    sqlite3_bind_int64(st, 1, account_id);
    sq_bind_text(st, 2, client);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        id = sqlite3_column_int64(st, 0);
        matches++;
    }
    if (src != SQLITE_DONE)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "finding the client");
    else if (matches == 0)
        rc = err_set(eb, ERR_NOTFOUND, "no client \"%s\"", client);
    else if (matches > 1)
        rc = err_set(eb, ERR_INVAL, "\"%s\" matches several clients; use the tenant id", client);
    sqlite3_finalize(st);
    st = NULL;
    if (rc != ERR_OK)
        goto out;
    src = sq_prep_once(s,
                       "UPDATE client SET included = CASE WHEN ?1 < 0 THEN included "
                       "ELSE ?1 END, name_override = CASE WHEN ?2 IS NULL THEN "
                       "name_override ELSE NULLIF(?2, '') END, updated_at = ?3 "
                       "WHERE id = ?4",
                       -1, &st, NULL);
    if (src != SQLITE_OK) {
        rc = sq_db_err(s, src, eb, "updating the client");
        goto out;
    }
    sqlite3_bind_int(st, 1, included);
    sq_bind_text(st, 2, name_override);
    sqlite3_bind_int64(st, 3, clock_now());
    sqlite3_bind_int64(st, 4, id);
    rc = sq_step_done(s, st, eb, "updating the client");
    sqlite3_finalize(st);
out:
    return sq_wend(s, own, rc, eb);
}

/* ---- web: users, sessions, API keys ----------------------------------------------------- */

/* Prepares sql (not cached: these run rarely or are per-request). */
static int
once(struct sq *s, const char *sql, sqlite3_stmt **st, struct errbuf *eb, const char *what)
{
    int src = sq_prep_once(s, sql, -1, st, NULL);

    if (src != SQLITE_OK) {
        *st = NULL;
        return sq_db_err(s, sqlite3_extended_errcode(s->db), eb, what);
    }
    return ERR_OK;
}

/* Steps a write statement in its own transaction unless one is open, then finalizes it. */
static int
once_write(struct sq *s, sqlite3_stmt *st, int64_t *rowid, struct errbuf *eb, const char *what)
{
    int own, rc, src;

    rc = sq_wbegin(s, &own, eb);
    if (rc != ERR_OK) {
        sqlite3_finalize(st);
        return rc;
    }
    src = sqlite3_step(st);
    if (src == SQLITE_ROW || src == SQLITE_DONE) {
        if (rowid != NULL)
            *rowid = sqlite3_last_insert_rowid(s->db);
        if (sqlite3_changes(s->db) == 0 && rowid == NULL)
            rc = err_set(eb, ERR_NOTFOUND, "%s: no such row", what);
    } else {
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, what);
    }
    sqlite3_finalize(st);
    return sq_wend(s, own, rc, eb);
}

int
sq_user_insert(struct store *base, int64_t account_id, const char *name, const char *role,
               const char *password_hash, int64_t *id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s,
                  "INSERT INTO app_user (account_id, name, role, password_hash, created_at) "
                  "VALUES (?1, ?2, ?3, ?4, ?5)",
                  &st, eb, "adding the user");

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, account_id);
    sq_bind_text(st, 2, name);
    sq_bind_text(st, 3, role);
    sq_bind_text(st, 4, password_hash);
    sqlite3_bind_int64(st, 5, clock_now());
    rc = once_write(s, st, id, eb, "adding the user");
    if (rc == ERR_EXISTS)
        return err_set(eb, ERR_EXISTS, "a user named %s already exists", name);
    return rc;
}

int
sq_user_get(struct store *base, const char *name, struct user_row *out, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s,
                  "SELECT id, account_id, name, role, password_hash, created_at FROM app_user "
                  "WHERE name = ?1",
                  &st, eb, "reading the user");

    if (rc != ERR_OK)
        return rc;
    sq_bind_text(st, 1, name);
    rc = sq_step_row(s, st, sq_copy_user, out, "user: not found", eb, "user");
    sqlite3_finalize(st);
    return rc;
}

int
sq_user_set_password(struct store *base, int64_t id, const char *password_hash, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s, "UPDATE app_user SET password_hash = ?2 WHERE id = ?1", &st, eb,
                  "changing the password");

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    sq_bind_text(st, 2, password_hash);
    rc = once_write(s, st, NULL, eb, "changing the password");
    if (rc == ERR_OK) {
        /* A new password ends every session of the user. */
        if (once(s, "DELETE FROM user_session WHERE user_id = ?1", &st, eb, "ending sessions") ==
            ERR_OK) {
            sqlite3_bind_int64(st, 1, id);
            sqlite3_step(st);
            sqlite3_finalize(st);
        }
    }
    return rc;
}

int
sq_user_delete(struct store *base, int64_t id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s, "DELETE FROM app_user WHERE id = ?1", &st, eb, "removing the user");

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    return once_write(s, st, NULL, eb, "removing the user");
}

int64_t
sq_user_count(struct store *base, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    int64_t n = 0;

    if (sq_pragma_int(s, "SELECT count(*) FROM app_user", &n) != SQLITE_OK)
        return sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "counting users");
    return n;
}

int
sq_session_insert(struct store *base, const char *token_hash, int64_t user_id, int64_t expires_at,
                  struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t now = clock_now();
    int rc = once(s,
                  "INSERT INTO user_session (token_hash, user_id, created_at, expires_at) "
                  "VALUES (?1, ?2, ?3, ?4)",
                  &st, eb, "starting the session");

    if (rc != ERR_OK)
        return rc;
    sq_bind_text(st, 1, token_hash);
    sqlite3_bind_int64(st, 2, user_id);
    sqlite3_bind_int64(st, 3, now);
    sqlite3_bind_int64(st, 4, expires_at);
    rc = once_write(s, st, NULL, eb, "starting the session");
    /* Expired sessions go away as new ones start. */
    if (rc == ERR_OK && once(s, "DELETE FROM user_session WHERE expires_at < ?1", &st, NULL,
                             "pruning sessions") == ERR_OK) {
        sqlite3_bind_int64(st, 1, now);
        once_write(s, st, NULL, NULL, "pruning sessions");
    }
    return rc;
}

int
sq_session_user(struct store *base, const char *token_hash, int64_t now, struct user_row *out,
                struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = sq_cached(s,
                       "SELECT u.id, u.account_id, u.name, u.role, u.password_hash, u.created_at "
                       "FROM user_session x JOIN app_user u ON u.id = x.user_id "
                       "WHERE x.token_hash = ?1 AND x.expires_at > ?2",
                       &st, eb);

    if (rc != ERR_OK)
        return rc;
    sq_bind_text(st, 1, token_hash);
    sqlite3_bind_int64(st, 2, now);
    rc = sq_step_row(s, st, sq_copy_user, out, "session: not found", eb, "session");
    sq_release(s, st);
    return rc;
}

int
sq_session_delete(struct store *base, const char *token_hash, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s, "DELETE FROM user_session WHERE token_hash = ?1", &st, eb, "signing out");

    if (rc != ERR_OK)
        return rc;
    sq_bind_text(st, 1, token_hash);
    rc = once_write(s, st, NULL, eb, "signing out");
    return rc == ERR_NOTFOUND ? ERR_OK : rc;
}

int
sq_apikey_insert(struct store *base, int64_t account_id, const char *name, const char *scope,
                 const char *key_hash, const char *prefix, int64_t expires_at, int64_t *id,
                 struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s,
                  "INSERT INTO api_key (account_id, name, scope, key_hash, prefix, created_at, "
                  "expires_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                  &st, eb, "creating the API key");

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, account_id);
    sq_bind_text(st, 2, name);
    sq_bind_text(st, 3, scope);
    sq_bind_text(st, 4, key_hash);
    sq_bind_text(st, 5, prefix);
    sqlite3_bind_int64(st, 6, clock_now());
    sq_bind_ts(st, 7, expires_at);
    return once_write(s, st, id, eb, "creating the API key");
}

int
sq_apikey_touch(struct store *base, int64_t id, int64_t now, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t unused = 0;
    int rc = once(s,
                  "UPDATE api_key SET last_used_at = ?2 WHERE id = ?1 AND "
                  "(last_used_at IS NULL OR last_used_at <= ?2 - 60)",
                  &st, eb, "recording the API key's use");

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    sqlite3_bind_int64(st, 2, now);
    return once_write(s, st, &unused, eb, "recording the API key's use");
}

int
sq_apikey_find(struct store *base, const char *key_hash, int64_t *account_id, int64_t *id,
               char **scope, int64_t *expires_at, int64_t *last_used_at, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = sq_cached(s,
                       "SELECT account_id, id, scope, expires_at, last_used_at FROM api_key WHERE "
                       "key_hash = ?1 AND revoked_at IS NULL",
                       &st, eb);
    int src;

    if (rc != ERR_OK)
        return rc;
    sq_bind_text(st, 1, key_hash);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *account_id = sqlite3_column_int64(st, 0);
        *id = sqlite3_column_int64(st, 1);
        *scope = sq_col_dup(st, 2);
        *expires_at = sq_col_ts(st, 3);
        *last_used_at = sq_col_ts(st, 4);
    } else if (src == SQLITE_DONE) {
        rc = err_set(eb, ERR_NOTFOUND, "unknown API key");
    } else {
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the API key");
    }
    sq_release(s, st);
    return rc;
}

int
sq_apikey_revoke(struct store *base, int64_t account_id, int64_t id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s,
                  "UPDATE api_key SET revoked_at = ?3 WHERE account_id = ?1 AND id = ?2 AND "
                  "revoked_at IS NULL",
                  &st, eb, "revoking the API key");

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, account_id);
    sqlite3_bind_int64(st, 2, id);
    sqlite3_bind_int64(st, 3, clock_now());
    rc = once_write(s, st, NULL, eb, "revoking the API key");
    if (rc == ERR_NOTFOUND)
        return err_set(eb, ERR_NOTFOUND, "API key %" PRId64 " does not exist or is revoked", id);
    return rc;
}

int
sq_integration_update(struct store *base, int64_t account_id, int64_t id, const char *name,
                      int64_t sync_interval, int64_t partner_expires, int64_t sync_expires,
                      struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s,
                  "UPDATE integration SET name = COALESCE(?3, name), "
                  "sync_interval = COALESCE(?4, sync_interval), "
                  "partner_secret_expires = COALESCE(?5, partner_secret_expires), "
                  "sync_secret_expires = COALESCE(?6, sync_secret_expires), updated_at = ?7, "
                  "partner_secret_expiry_source = CASE WHEN ?5 IS NULL THEN "
                  "partner_secret_expiry_source END, "
                  "sync_secret_expiry_source = CASE WHEN ?6 IS NULL THEN "
                  "sync_secret_expiry_source END "
                  "WHERE account_id = ?1 AND id = ?2",
                  &st, eb, "updating the integration");

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, account_id);
    sqlite3_bind_int64(st, 2, id);
    sq_bind_text(st, 3, name);
    if (sync_interval > 0)
        sqlite3_bind_int64(st, 4, sync_interval);
    if (partner_expires != 0 && partner_expires != TS_NULL)
        sqlite3_bind_int64(st, 5, partner_expires);
    if (sync_expires != 0 && sync_expires != TS_NULL)
        sqlite3_bind_int64(st, 6, sync_expires);
    sqlite3_bind_int64(st, 7, clock_now());
    rc = once_write(s, st, NULL, eb, "updating the integration");
    if (rc == ERR_NOTFOUND)
        return err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
    return rc;
}

/* ---- second factor (migration 13) ------------------------------------------------------- */

/* Steps one prepared write and finalizes it; *changes gets the rows it changed. */
static int
totp_write(struct sq *s, sqlite3_stmt *st, int64_t *changes, struct errbuf *eb, const char *what)
{
    int src = sqlite3_step(st), rc = ERR_OK;

    if (src == SQLITE_DONE || src == SQLITE_ROW) {
        if (changes != NULL)
            *changes = sqlite3_changes(s->db);
    } else {
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, what);
    }
    sqlite3_finalize(st);
    return rc;
}

/* One write with ?1 = id and, unless v is NULL, ?2 = v. */
static int
totp_write1(struct sq *s, const char *sql, int64_t id, const char *v, int64_t *changes,
            struct errbuf *eb, const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = once(s, sql, &st, eb, what);

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    if (v != NULL)
        sq_bind_text(st, 2, v);
    return totp_write(s, st, changes, eb, what);
}

/* ERR_EXISTS (what) when the user is there, else ERR_NOTFOUND: why an update changed nothing. */
static int
totp_why_not(struct sq *s, int64_t user_id, int err_if_there, const char *msg, struct errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int rc = once(s, "SELECT 1 FROM app_user WHERE id = ?1", &st, eb, "reading the user"), src;

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, user_id);
    src = sqlite3_step(st);
    sqlite3_finalize(st);
    if (src == SQLITE_ROW)
        return err_set(eb, err_if_there, "%s", msg);
    if (src == SQLITE_DONE)
        return err_set(eb, ERR_NOTFOUND, "there is no such user");
    return sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the user");
}

static void
copy_totp(sqlite3_stmt *st, void *arg)
{
    struct user_totp *out = arg;

    out->user_id = sqlite3_column_int64(st, 0);
    out->account_id = sqlite3_column_int64(st, 1);
    out->secret_sealed = sq_col_dup(st, 2);
    out->enrolled_at = sq_col_ts(st, 3);
    out->last_step = sqlite3_column_type(st, 4) == SQLITE_NULL ? -1 : sqlite3_column_int64(st, 4);
    out->require = sqlite3_column_int(st, 5) != 0;
}

int
sq_totp_get(struct store *base, int64_t user_id, struct user_totp *out, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc, src;

    rc = once(s,
              "SELECT u.id, u.account_id, u.totp_secret_sealed, u.totp_enrolled_at, "
              "u.totp_last_step, a.require_totp FROM app_user u JOIN account a ON "
              "a.id = u.account_id WHERE u.id = ?1",
              &st, eb, "reading the user's second factor");
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, user_id);
    rc = sq_step_row(s, st, copy_totp, out, "there is no such user", eb,
                     "reading the user's second factor");
    sqlite3_finalize(st);
    if (rc != ERR_OK)
        return rc;
    rc = once(s,
              "SELECT id, code_hash FROM user_recovery_code WHERE user_id = ?1 AND used_at IS "
              "NULL ORDER BY id LIMIT 16",
              &st, eb, "reading the recovery codes");
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, user_id);
    while (out->ncodes < STORE_RECOVERY_MAX && (src = sqlite3_step(st)) == SQLITE_ROW) {
        out->code_id[out->ncodes] = sqlite3_column_int64(st, 0);
        out->code_hash[out->ncodes] = sq_col_dup(st, 1);
        out->ncodes++;
    }
    if (src != SQLITE_ROW && src != SQLITE_DONE)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the recovery codes");
    sqlite3_finalize(st);
    return rc;
}

int
sq_totp_begin(struct store *base, int64_t user_id, const char *sealed, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    int64_t n = 0;
    int own, rc = sq_wbegin(s, &own, eb);

    if (rc != ERR_OK)
        return rc;
    rc = totp_write1(s,
                     "UPDATE app_user SET totp_secret_sealed = ?2, totp_enrolled_at = NULL, "
                     "totp_last_step = NULL WHERE id = ?1 AND totp_enrolled_at IS NULL",
                     user_id, sealed, &n, eb, "starting the second factor's enrolment");
    if (rc == ERR_OK && n == 0)
        rc = totp_why_not(s, user_id, ERR_EXISTS,
                          "the second factor is already set up; turn it off first", eb);
    if (rc == ERR_OK)
        rc = totp_write1(s, "DELETE FROM user_recovery_code WHERE user_id = ?1", user_id, NULL,
                         NULL, eb, "removing the recovery codes");
    return sq_wend(s, own, rc, eb);
}

int
sq_totp_enrol(struct store *base, int64_t user_id, int64_t step, int64_t now,
              const char *const *hashes, size_t n, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t changed = 0;
    int own, rc = sq_wbegin(s, &own, eb);

    if (rc != ERR_OK)
        return rc;
    rc = once(s,
              "UPDATE app_user SET totp_enrolled_at = ?2, totp_last_step = ?3 WHERE id = ?1 AND "
              "totp_secret_sealed IS NOT NULL AND totp_enrolled_at IS NULL",
              &st, eb, "confirming the second factor");
    if (rc == ERR_OK) {
        sqlite3_bind_int64(st, 1, user_id);
        sqlite3_bind_int64(st, 2, now);
        sqlite3_bind_int64(st, 3, step);
        rc = totp_write(s, st, &changed, eb, "confirming the second factor");
    }
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "no second factor is being set up; start again");
    if (rc == ERR_OK)
        rc = totp_write1(s, "DELETE FROM user_recovery_code WHERE user_id = ?1", user_id, NULL,
                         NULL, eb, "removing the recovery codes");
    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        rc = once(s,
                  "INSERT INTO user_recovery_code (user_id, code_hash, created_at) "
                  "VALUES (?1, ?2, ?3)",
                  &st, eb, "storing the recovery codes");
        if (rc != ERR_OK)
            break;
        sqlite3_bind_int64(st, 1, user_id);
        sq_bind_text(st, 2, hashes[i]);
        sqlite3_bind_int64(st, 3, now);
        rc = totp_write(s, st, NULL, eb, "storing the recovery codes");
    }
    return sq_wend(s, own, rc, eb);
}

int
sq_totp_use_step(struct store *base, int64_t user_id, int64_t step, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t changed = 0;
    int own, rc = sq_wbegin(s, &own, eb);

    if (rc != ERR_OK)
        return rc;
    rc = once(s,
              "UPDATE app_user SET totp_last_step = ?2 WHERE id = ?1 AND totp_enrolled_at IS NOT "
              "NULL AND (totp_last_step IS NULL OR totp_last_step < ?2)",
              &st, eb, "recording the code's use");
    if (rc == ERR_OK) {
        sqlite3_bind_int64(st, 1, user_id);
        sqlite3_bind_int64(st, 2, step);
        rc = totp_write(s, st, &changed, eb, "recording the code's use");
    }
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_AUTH, "this code was already used");
    return sq_wend(s, own, rc, eb);
}

int
sq_totp_recovery_use(struct store *base, int64_t user_id, int64_t code_id, int64_t now,
                     struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t changed = 0;
    int own, rc = sq_wbegin(s, &own, eb);

    if (rc != ERR_OK)
        return rc;
    rc = once(s,
              "UPDATE user_recovery_code SET used_at = ?3 WHERE id = ?2 AND user_id = ?1 AND "
              "used_at IS NULL",
              &st, eb, "using a recovery code");
    if (rc == ERR_OK) {
        sqlite3_bind_int64(st, 1, user_id);
        sqlite3_bind_int64(st, 2, code_id);
        sqlite3_bind_int64(st, 3, now);
        rc = totp_write(s, st, &changed, eb, "using a recovery code");
    }
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "this recovery code was already used");
    return sq_wend(s, own, rc, eb);
}

int
sq_totp_clear(struct store *base, int64_t user_id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    int64_t n = 0;
    int own, rc = sq_wbegin(s, &own, eb);

    if (rc != ERR_OK)
        return rc;
    rc = totp_write1(s,
                     "UPDATE app_user SET totp_secret_sealed = NULL, totp_enrolled_at = NULL, "
                     "totp_last_step = NULL WHERE id = ?1",
                     user_id, NULL, &n, eb, "turning the second factor off");
    if (rc == ERR_OK && n == 0)
        rc = err_set(eb, ERR_NOTFOUND, "there is no such user");
    if (rc == ERR_OK)
        rc = totp_write1(s, "DELETE FROM user_recovery_code WHERE user_id = ?1", user_id, NULL,
                         NULL, eb, "removing the recovery codes");
    return sq_wend(s, own, rc, eb);
}

int
sq_totp_secrets_each(struct store *base, int (*cb)(void *arg, int64_t user_id, const char *sealed),
                     void *arg, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s,
                  "SELECT id, totp_secret_sealed FROM app_user WHERE totp_secret_sealed IS NOT "
                  "NULL ORDER BY id",
                  &st, eb, "reading the second factors"),
        src = SQLITE_DONE;

    if (rc != ERR_OK)
        return rc;
    while (rc == ERR_OK && (src = sqlite3_step(st)) == SQLITE_ROW)
        rc = cb(arg, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1));
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the second factors");
    sqlite3_finalize(st);
    return rc;
}

int
sq_totp_set_sealed(struct store *base, int64_t user_id, const char *sealed, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    int64_t n = 0;
    int own, rc = sq_wbegin(s, &own, eb);

    if (rc != ERR_OK)
        return rc;
    rc = totp_write1(s,
                     "UPDATE app_user SET totp_secret_sealed = ?2 WHERE id = ?1 AND "
                     "totp_secret_sealed IS NOT NULL",
                     user_id, sealed, &n, eb, "re-sealing the second factor");
    if (rc == ERR_OK && n == 0)
        rc = err_set(eb, ERR_NOTFOUND, "the user has no second factor");
    return sq_wend(s, own, rc, eb);
}

int
sq_account_require_totp(struct store *base, int64_t account_id, int on, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t n = 0;
    int own, rc = sq_wbegin(s, &own, eb);

    if (rc != ERR_OK)
        return rc;
    rc = once(s, "UPDATE account SET require_totp = ?2 WHERE id = ?1", &st, eb,
              "changing the account's second factor rule");
    if (rc == ERR_OK) {
        sqlite3_bind_int64(st, 1, account_id);
        sqlite3_bind_int(st, 2, on);
        rc = totp_write(s, st, &n, eb, "changing the account's second factor rule");
    }
    if (rc == ERR_OK && n == 0)
        rc = err_set(eb, ERR_NOTFOUND, "there is no such account");
    return sq_wend(s, own, rc, eb);
}

/* ---- web: per-user preferences (migration 16) ------------------------------------------ */

static void
copy_text(sqlite3_stmt *st, void *out)
{
    *(char **)out = xstrdup((const char *)sqlite3_column_text(st, 0));
}

int
sq_pref_get(struct store *base, int64_t user_id, const char *key, char **value, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = once(s, "SELECT value FROM user_pref WHERE user_id = ?1 AND key = ?2", &st, eb,
                  "reading the preference");

    *value = NULL;
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, user_id);
    sq_bind_text(st, 2, key);
    rc = sq_step_row(s, st, copy_text, value, NULL, eb, "reading the preference");
    sqlite3_finalize(st);
    return rc;
}

int
sq_pref_set(struct store *base, int64_t user_id, const char *key, const char *value,
            struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t unused = 0;
    int rc = once(s,
                  "INSERT INTO user_pref (user_id, key, value, updated_at) VALUES (?1, ?2, ?3, ?4) "
                  "ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value, "
                  "updated_at = excluded.updated_at",
                  &st, eb, "saving the preference");

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, user_id);
    sq_bind_text(st, 2, key);
    sq_bind_text(st, 3, value);
    sqlite3_bind_int64(st, 4, clock_now());
    return once_write(s, st, &unused, eb, "saving the preference");
}
