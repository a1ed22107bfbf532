/* pg_accounts.c - PostgreSQL: accounts, integrations, clients, users, sessions and API keys
 * (pg_int.h). */
#include "pg_int.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-fe.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "log.h"
#include "mem.h"

static const char *const integ_cols =
    "id, account_id, name, partner_tenant_id, partner_app_id, sync_app_id, "
    "partner_secret_sealed, sync_secret_sealed, partner_secret_hint, sync_secret_hint, "
    "partner_secret_expires, sync_secret_expires, tenant_source, sync_interval, created_at, "
    "updated_at, cloud, partner_secret_expiry_source, sync_secret_expiry_source";

/* ---- accounts and integrations ---------------------------------------------------------- */

int
pg_account_ensure(struct store *base, const char *name, int64_t *id, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int own, rc;

    rc = pg_wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    pg_p_text(&p, name);
    pg_p_i64(&p, clock_now());
    rc = pg_q_done(g,
                   "INSERT INTO account (name, created_at) VALUES ($1, $2) ON CONFLICT (name) DO "
                   "NOTHING",
                   &p, eb, "creating the account", NULL);
    if (rc == ERR_OK) {
        p.n = 1;
        r = pg_q(g, "SELECT id FROM account WHERE name = $1", &p, eb, "reading the account", &rc);
        if (r != NULL && PQntuples(r) == 1)
            *id = pg_r_i64(r, 0, 0, 0);
        else if (r != NULL)
            rc = err_set(eb, ERR_DB, "account \"%s\" vanished", name);
        PQclear(r);
    }
    return pg_wend(g, own, rc, eb);
}

static void
r_integration(const PGresult *r, int row, struct integration *in)
{
    memset(in, 0, sizeof *in);
    in->id = pg_r_i64(r, row, 0, 0);
    in->account_id = pg_r_i64(r, row, 1, 0);
    in->name = pg_r_dup(r, row, 2);
    in->partner_tenant_id = pg_r_dup(r, row, 3);
    in->partner_app_id = pg_r_dup(r, row, 4);
    in->sync_app_id = pg_r_dup(r, row, 5);
    in->partner_secret_sealed = pg_r_dup(r, row, 6);
    in->sync_secret_sealed = pg_r_dup(r, row, 7);
    in->partner_secret_hint = pg_r_dup(r, row, 8);
    in->sync_secret_hint = pg_r_dup(r, row, 9);
    in->partner_secret_expires = pg_r_i64(r, row, 10, TS_NULL);
    in->sync_secret_expires = pg_r_i64(r, row, 11, TS_NULL);
    in->tenant_source = pg_r_dup(r, row, 12);
    in->sync_interval = pg_r_i64(r, row, 13, 0);
    in->created_at = pg_r_i64(r, row, 14, 0);
    in->updated_at = pg_r_i64(r, row, 15, 0);
    in->cloud = pg_r_dup(r, row, 16);
    in->partner_secret_expiry_source = pg_r_dup(r, row, 17);
    in->sync_secret_expiry_source = pg_r_dup(r, row, 18);
}

int
pg_integration_insert(struct store *base, struct integration *in, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t now = clock_now();
    PGresult *r;
    int own, rc;

    rc = pg_wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, in->account_id);
    pg_p_text(&p, in->name);
    pg_p_text(&p, in->partner_tenant_id);
    pg_p_text(&p, in->partner_app_id);
    pg_p_text(&p, in->sync_app_id);
    pg_p_text(&p, in->partner_secret_sealed);
    pg_p_text(&p, in->sync_secret_sealed);
    pg_p_text(&p, in->partner_secret_hint);
    pg_p_text(&p, in->sync_secret_hint);
    pg_p_ts(&p, in->partner_secret_expires);
    pg_p_ts(&p, in->sync_secret_expires);
    pg_p_text(&p, in->tenant_source != NULL ? in->tenant_source : "partner_center");
    pg_p_i64(&p, in->sync_interval > 0 ? in->sync_interval : 21600);
    pg_p_i64(&p, now);
    pg_p_text(&p, in->cloud != NULL ? in->cloud : "global");
    r = pg_q(
        g,
        "INSERT INTO integration (account_id, name, partner_tenant_id, partner_app_id, "
        "sync_app_id, partner_secret_sealed, sync_secret_sealed, partner_secret_hint, "
        "sync_secret_hint, partner_secret_expires, sync_secret_expires, tenant_source, "
        "sync_interval, created_at, updated_at, cloud) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, "
        "$9, $10, $11, $12, $13, $14, $14, $15) RETURNING id",
        &p, eb, "saving the integration", &rc);
    if (r != NULL) {
        in->id = pg_r_i64(r, 0, 0, 0);
        in->created_at = in->updated_at = now;
        if (in->sync_interval <= 0)
            in->sync_interval = 21600;
    } else if (rc == ERR_EXISTS) {
        rc = err_set(eb, ERR_EXISTS, "an integration named \"%s\" already exists", in->name);
    } else if (rc == ERR_NOTFOUND) {
        rc = err_set(eb, ERR_NOTFOUND, "account %" PRId64 " does not exist", in->account_id);
    }
    PQclear(r);
    return pg_wend(g, own, rc, eb);
}

int
pg_integration_get(struct store *base, int64_t account_id, int64_t id, struct integration *out,
                   struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    char sql[512];
    PGresult *r;
    int rc;

    snprintf(sql, sizeof sql, "SELECT %s FROM integration WHERE account_id = $1 AND id = $2",
             integ_cols);
    pg_p_i64(&p, account_id);
    pg_p_i64(&p, id);
    r = pg_q(g, sql, &p, eb, "reading the integration", &rc);
    if (r != NULL && PQntuples(r) == 1)
        r_integration(r, 0, out);
    else if (r != NULL)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
    PQclear(r);
    return rc;
}

int
pg_integration_list(struct store *base, int64_t account_id, struct integration **out, size_t *n,
                    struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    char sql[512];
    PGresult *r;
    int rc;

    *out = NULL;
    *n = 0;
    snprintf(sql, sizeof sql, "SELECT %s FROM integration WHERE account_id = $1 ORDER BY id",
             integ_cols);
    pg_p_i64(&p, account_id);
    r = pg_q(g, sql, &p, eb, "listing integrations", &rc);
    if (r == NULL)
        return rc;
    if (PQntuples(r) > 0) {
        *out = xcalloc((size_t)PQntuples(r), sizeof **out);
        for (int i = 0; i < PQntuples(r); i++)
            r_integration(r, i, &(*out)[i]);
        *n = (size_t)PQntuples(r);
    }
    PQclear(r);
    return ERR_OK;
}

int
pg_integration_set_expiry(struct store *base, int64_t id, const char *which, int64_t expires,
                          const char *source, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t changed = 0;
    int own, rc;

    rc = pg_wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    pg_p_ts(&p, expires);
    pg_p_text(&p, source);
    pg_p_i64(&p, clock_now());
    pg_p_i64(&p, id);
    rc = pg_q_done(g,
                   strcmp(which, "partner") == 0
                       ? "UPDATE integration SET partner_secret_expires = $1, "
                         "partner_secret_expiry_source = $2, updated_at = $3 WHERE id = $4"
                       : "UPDATE integration SET sync_secret_expires = $1, "
                         "sync_secret_expiry_source = $2, updated_at = $3 WHERE id = $4",
                   &p, eb, "saving the secret's expiry", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
    return pg_wend(g, own, rc, eb);
}

int
pg_integration_set_secret(struct store *base, int64_t id, const char *which, const char *sealed,
                          const char *hint, int64_t expires, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t changed = 0;
    int own, rc;

    rc = pg_wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    pg_p_text(&p, sealed);
    pg_p_text(&p, hint);
    pg_p_ts(&p, expires);
    pg_p_i64(&p, clock_now());
    pg_p_i64(&p, id);
    rc = pg_q_done(g,
                   strcmp(which, "partner") == 0
                       ? "UPDATE integration SET partner_secret_sealed = $1, partner_secret_hint = "
                         "$2, partner_secret_expires = $3, partner_secret_expiry_source = NULL, "
                         "updated_at = $4 WHERE id = $5"
                       : "UPDATE integration SET sync_secret_sealed = $1, sync_secret_hint = $2, "
                         "sync_secret_expires = $3, sync_secret_expiry_source = NULL, updated_at = "
                         "$4 WHERE id = $5",
                   &p, eb, "saving the secret", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
    return pg_wend(g, own, rc, eb);
}

int
pg_integration_delete(struct store *base, int64_t account_id, int64_t id, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t changed = 0;
    int own, rc;

    rc = pg_wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, account_id);
    pg_p_i64(&p, id);
    rc = pg_q_done(g, "DELETE FROM integration WHERE account_id = $1 AND id = $2", &p, eb,
                   "deleting the integration", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
    return pg_wend(g, own, rc, eb);
}

/* ---- clients ----------------------------------------------------------------------------- */

int
pg_clients_each(struct store *base, int64_t account_id,
                int (*cb)(void *arg, const struct client_row *c), void *arg, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    struct client_row c;
    PGresult *r;
    int rc;

    pg_p_i64(&p, account_id);
    r = pg_q(g,
             "SELECT id, integration_id, tenant_id, COALESCE(name_override, name), default_domain, "
             "source, included, status, error_code, error_message, error_remedy, last_sync_at, "
             "device_count, software_count, error_request_id, error_date, warning_code, "
             "warning_message, warning_remedy FROM client WHERE account_id = $1 "
             "ORDER BY lower(COALESCE(name_override, name, tenant_id)), id",
             &p, eb, "listing clients", &rc);
    if (r == NULL)
        return rc;
    for (int i = 0; rc == ERR_OK && i < PQntuples(r); i++) {
        c.id = pg_r_i64(r, i, 0, 0);
        c.integration_id = pg_r_i64(r, i, 1, 0);
        c.tenant_id = pg_r_dup(r, i, 2);
        c.name = pg_r_dup(r, i, 3);
        c.default_domain = pg_r_dup(r, i, 4);
        c.source = pg_r_dup(r, i, 5);
        c.included = (int)pg_r_i64(r, i, 6, 1);
        c.status = pg_r_dup(r, i, 7);
        c.error_code = pg_r_dup(r, i, 8);
        c.error_message = pg_r_dup(r, i, 9);
        c.error_remedy = pg_r_dup(r, i, 10);
        c.last_sync_at = pg_r_i64(r, i, 11, TS_NULL);
        c.device_count = pg_r_i64(r, i, 12, 0);
        c.software_count = pg_r_i64(r, i, 13, 0);
        c.error_request_id = pg_r_dup(r, i, 14);
        c.error_date = pg_r_dup(r, i, 15);
        c.warning_code = pg_r_dup(r, i, 16);
        c.warning_message = pg_r_dup(r, i, 17);
        c.warning_remedy = pg_r_dup(r, i, 18);
        rc = cb(arg, &c);
        client_row_clear(&c);
    }
    PQclear(r);
    return rc;
}

int
pg_check_integration(struct pg *g, int64_t account_id, int64_t integration_id, struct errbuf *eb)
{
    struct params p = {0};
    PGresult *r;
    int rc;

    pg_p_i64(&p, integration_id);
    pg_p_i64(&p, account_id);
    r = pg_q(g, "SELECT 1 FROM integration WHERE id = $1 AND account_id = $2", &p, eb,
             "reading the integration", &rc);
    if (r != NULL && PQntuples(r) == 0)
        rc = err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", integration_id);
    PQclear(r);
    return rc;
}

int
pg_client_fail(struct store *base, int64_t account_id, int64_t integration_id,
               const struct client_info *ci, const char *code, const char *message,
               const char *remedy, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r = NULL;
    char *old = NULL;
    int64_t now = clock_now();
    int own, rc;

    rc = pg_wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    rc = pg_check_integration(g, account_id, integration_id, eb);
    if (rc != ERR_OK)
        goto out;
    /* The status before this failure, for the feed's client.status row ("never": no client;
     * FOR UPDATE: a concurrent failure of the same client waits). */
    pg_p_i64(&p, integration_id);
    pg_p_text(&p, ci->tenant_id);
    r = pg_q(g, "SELECT status FROM client WHERE integration_id = $1 AND tenant_id = $2 FOR UPDATE",
             &p, eb, "reading the client's status", &rc);
    if (r == NULL)
        goto out;
    old = PQntuples(r) > 0 ? pg_r_dup(r, 0, 0) : xstrdup("never");
    PQclear(r);
    p.n = 0;
    pg_p_i64(&p, account_id);
    pg_p_i64(&p, integration_id);
    pg_p_text(&p, ci->tenant_id);
    pg_p_text(&p, ci->name);
    pg_p_text(&p, ci->default_domain);
    pg_p_text(&p, ci->source);
    pg_p_text(&p, code);
    pg_p_text(&p, message);
    pg_p_text(&p, remedy);
    pg_p_i64(&p, now);
    pg_p_text(&p, ci->error_request_id);
    pg_p_text(&p, ci->error_date);
    rc = pg_q_done(
        g,
        "INSERT INTO client (account_id, integration_id, tenant_id, name, default_domain, "
        "source, status, error_code, error_message, error_remedy, error_request_id, "
        "error_date, created_at, updated_at) VALUES ($1, $2, $3, $4, $5, "
        "COALESCE($6, 'partner_center'), 'error', $7, $8, $9, $11, $12, $10, $10) "
        "ON CONFLICT (integration_id, tenant_id) DO "
        "UPDATE SET name = COALESCE(excluded.name, client.name), "
        "default_domain = COALESCE(excluded.default_domain, client.default_domain), "
        "source = COALESCE($6, client.source), status = 'error', "
        "error_code = excluded.error_code, error_message = excluded.error_message, "
        "error_remedy = excluded.error_remedy, "
        "error_request_id = excluded.error_request_id, error_date = excluded.error_date, "
        "updated_at = excluded.updated_at",
        &p, eb, "recording the tenant failure", NULL);
    if (rc == ERR_OK && strcmp(old, "error") != 0) {
        p.n = 0;
        pg_p_i64(&p, integration_id);
        pg_p_text(&p, ci->tenant_id);
        pg_p_i64(&p, now);
        pg_p_text(&p, old);
        rc = pg_q_done(g,
                       "INSERT INTO change_event (account_id, client_id, at, kind, field, "
                       "old_value, new_value) SELECT account_id, id, $3, 'client.status', "
                       "'status', $4, 'error' FROM client WHERE integration_id = $1 AND "
                       "tenant_id = $2",
                       &p, eb, "recording the client's status change", NULL);
    }
out:
    free(old);
    return pg_wend(g, own, rc, eb);
}

int
pg_client_update(struct store *base, int64_t account_id, const char *client, int included,
                 const char *name_override, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int64_t id = 0;
    int own, rc;

    rc = pg_wbegin(g, &own, eb);
    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, account_id);
    pg_p_text(&p, client);
    r = pg_q(g,
             "SELECT id FROM client WHERE account_id = $1 AND (CAST(id AS TEXT) = $2 OR "
             "tenant_id = $2 OR COALESCE(name_override, name) = $2) LIMIT 2",
             &p, eb, "finding the client", &rc);
    if (r != NULL) {
        if (PQntuples(r) == 0)
            rc = err_set(eb, ERR_NOTFOUND, "no client \"%s\"", client);
        else if (PQntuples(r) > 1)
            rc =
                err_set(eb, ERR_INVAL, "\"%s\" matches several clients; use the tenant id", client);
        else
            id = pg_r_i64(r, 0, 0, 0);
    }
    PQclear(r);
    if (rc != ERR_OK)
        goto out;
    p.n = 0;
    pg_p_i64(&p, included);
    pg_p_text(&p, name_override);
    pg_p_i64(&p, clock_now());
    pg_p_i64(&p, id);
    rc =
        pg_q_done(g,
                  "UPDATE client SET included = CASE WHEN $1::smallint < 0 THEN included ELSE "
                  "$1::smallint END, name_override = CASE WHEN $2::text IS NULL THEN name_override "
                  "ELSE NULLIF($2::text, '') END, updated_at = $3 WHERE id = $4",
                  &p, eb, "updating the client", NULL);
out:
    return pg_wend(g, own, rc, eb);
}

/* ---- web: users, sessions, API keys ----------------------------------------------------- */

/* Runs one write (own transaction unless one is open); ERR_NOTFOUND when it changed no row
 * and must_change is set. */
static int
pg_write(struct pg *g, const char *sql, const struct params *p, int must_change, struct errbuf *eb,
         const char *what)
{
    int64_t changed = 0;
    int own, rc = pg_wbegin(g, &own, eb);

    if (rc != ERR_OK)
        return rc;
    rc = pg_q_done(g, sql, p, eb, what, &changed);
    if (rc == ERR_OK && must_change && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "%s: no such row", what);
    return pg_wend(g, own, rc, eb);
}

int
pg_user_insert(struct store *base, int64_t account_id, const char *name, const char *role,
               const char *password_hash, int64_t *id, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int own, rc = pg_wbegin(g, &own, eb);

    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, account_id);
    pg_p_text(&p, name);
    pg_p_text(&p, role);
    pg_p_text(&p, password_hash);
    pg_p_i64(&p, clock_now());
    r = pg_q(g,
             "INSERT INTO app_user (account_id, name, role, password_hash, created_at) VALUES ($1, "
             "$2, $3, $4, $5) RETURNING id",
             &p, eb, "adding the user", &rc);
    if (r != NULL)
        *id = pg_r_i64(r, 0, 0, 0);
    PQclear(r);
    rc = pg_wend(g, own, rc, eb);
    if (rc == ERR_EXISTS)
        return err_set(eb, ERR_EXISTS, "a user named %s already exists", name);
    return rc;
}

static int
pg_read_user(PGresult *r, struct user_row *out, struct errbuf *eb, const char *what)
{
    if (PQntuples(r) != 1)
        return err_set(eb, ERR_NOTFOUND, "%s: not found", what);
    pg_copy_user(r, out);
    return ERR_OK;
}

int
pg_user_get(struct store *base, const char *name, struct user_row *out, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc;

    pg_p_text(&p, name);
    r = pg_q(g,
             "SELECT id, account_id, name, role, password_hash, created_at FROM app_user WHERE "
             "name = $1",
             &p, eb, "reading the user", &rc);
    if (r == NULL)
        return rc;
    rc = pg_read_user(r, out, eb, "user");
    PQclear(r);
    return rc;
}

int
pg_user_set_password(struct store *base, int64_t id, const char *password_hash, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int rc;

    pg_p_i64(&p, id);
    pg_p_text(&p, password_hash);
    rc = pg_write(g, "UPDATE app_user SET password_hash = $2 WHERE id = $1", &p, 1, eb,
                  "changing the password");
    if (rc == ERR_OK) {
        /* A new password ends every session of the user. */
        p.n = 1;
        rc = pg_write(g, "DELETE FROM user_session WHERE user_id = $1", &p, 0, eb,
                      "ending sessions");
    }
    return rc;
}

int
pg_user_delete(struct store *base, int64_t id, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, id);
    return pg_write((struct pg *)base, "DELETE FROM app_user WHERE id = $1", &p, 1, eb,
                    "removing the user");
}

int64_t
pg_user_count(struct store *base, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    PGresult *r;
    int64_t n;
    int rc;

    r = pg_q(g, "SELECT count(*) FROM app_user", NULL, eb, "counting users", &rc);
    if (r == NULL)
        return rc;
    n = pg_r_i64(r, 0, 0, 0);
    PQclear(r);
    return n;
}

int
pg_data_version(struct store *base, int64_t *out, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc;

    r = pg_qc(g, "SELECT v FROM data_version WHERE id = 1", &p, eb, "reading the data version",
              &rc);
    if (r == NULL)
        return rc;
    if (PQntuples(r) == 1)
        *out = pg_r_i64(r, 0, 0, 0);
    else
        rc = err_set(eb, ERR_DB, "the data version row is missing");
    PQclear(r);
    return rc;
}

int
pg_session_insert(struct store *base, const char *token_hash, int64_t user_id, int64_t expires_at,
                  struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t now = clock_now();
    int rc;

    pg_p_text(&p, token_hash);
    pg_p_i64(&p, user_id);
    pg_p_i64(&p, now);
    pg_p_i64(&p, expires_at);
    rc = pg_write(g,
                  "INSERT INTO user_session (token_hash, user_id, created_at, expires_at) VALUES "
                  "($1, $2, $3, $4)",
                  &p, 0, eb, "starting the session");
    if (rc == ERR_OK) {
        p.n = 0;
        pg_p_i64(&p, now);
        pg_write(g, "DELETE FROM user_session WHERE expires_at < $1", &p, 0, NULL,
                 "pruning sessions");
    }
    return rc;
}

int
pg_session_user(struct store *base, const char *token_hash, int64_t now, struct user_row *out,
                struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc;

    pg_p_text(&p, token_hash);
    pg_p_i64(&p, now);
    r = pg_q(g,
             "SELECT u.id, u.account_id, u.name, u.role, u.password_hash, u.created_at FROM "
             "user_session x JOIN app_user u ON u.id = x.user_id WHERE x.token_hash = $1 AND "
             "x.expires_at > $2",
             &p, eb, "reading the session", &rc);
    if (r == NULL)
        return rc;
    rc = pg_read_user(r, out, eb, "session");
    PQclear(r);
    return rc;
}

int
pg_session_delete(struct store *base, const char *token_hash, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_text(&p, token_hash);
    return pg_write((struct pg *)base, "DELETE FROM user_session WHERE token_hash = $1", &p, 0, eb,
                    "signing out");
}

int
pg_apikey_insert(struct store *base, int64_t account_id, const char *name, const char *scope,
                 const char *key_hash, const char *prefix, int64_t expires_at, int64_t *id,
                 struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int own, rc = pg_wbegin(g, &own, eb);

    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, account_id);
    pg_p_text(&p, name);
    pg_p_text(&p, scope);
    pg_p_text(&p, key_hash);
    pg_p_text(&p, prefix);
    pg_p_i64(&p, clock_now());
    pg_p_ts(&p, expires_at);
    r = pg_q(
        g,
        "INSERT INTO api_key (account_id, name, scope, key_hash, prefix, created_at, expires_at) "
        "VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING id",
        &p, eb, "creating the API key", &rc);
    if (r != NULL)
        *id = pg_r_i64(r, 0, 0, 0);
    PQclear(r);
    return pg_wend(g, own, rc, eb);
}

int
pg_apikey_touch(struct store *base, int64_t id, int64_t now, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, id);
    pg_p_i64(&p, now);
    return pg_write((struct pg *)base,
                    "UPDATE api_key SET last_used_at = $2 WHERE id = $1 AND "
                    "(last_used_at IS NULL OR last_used_at <= $2 - 60)",
                    &p, 0, eb, "recording the API key's use");
}

int
pg_apikey_find(struct store *base, const char *key_hash, int64_t *account_id, int64_t *id,
               char **scope, int64_t *expires_at, int64_t *last_used_at, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc;

    pg_p_text(&p, key_hash);
    r = pg_q(g,
             "SELECT account_id, id, scope, expires_at, last_used_at FROM api_key WHERE key_hash = "
             "$1 AND revoked_at IS NULL",
             &p, eb, "reading the API key", &rc);
    if (r == NULL)
        return rc;
    if (PQntuples(r) == 1) {
        *account_id = pg_r_i64(r, 0, 0, 0);
        *id = pg_r_i64(r, 0, 1, 0);
        *scope = pg_r_dup(r, 0, 2);
        *expires_at = pg_r_i64(r, 0, 3, TS_NULL);
        *last_used_at = pg_r_i64(r, 0, 4, TS_NULL);
    } else {
        rc = err_set(eb, ERR_NOTFOUND, "unknown API key");
    }
    PQclear(r);
    return rc;
}

int
pg_apikey_revoke(struct store *base, int64_t account_id, int64_t id, struct errbuf *eb)
{
    struct params p = {0};
    int rc;

    pg_p_i64(&p, account_id);
    pg_p_i64(&p, id);
    pg_p_i64(&p, clock_now());
    rc = pg_write((struct pg *)base,
                  "UPDATE api_key SET revoked_at = $3 WHERE account_id = $1 AND id = $2 AND "
                  "revoked_at IS NULL",
                  &p, 1, eb, "revoking the API key");
    if (rc == ERR_NOTFOUND)
        return err_set(eb, ERR_NOTFOUND, "API key %" PRId64 " does not exist or is revoked", id);
    return rc;
}

int
pg_integration_update(struct store *base, int64_t account_id, int64_t id, const char *name,
                      int64_t sync_interval, int64_t partner_expires, int64_t sync_expires,
                      struct errbuf *eb)
{
    struct params p = {0};
    int rc;

    pg_p_i64(&p, account_id);
    pg_p_i64(&p, id);
    pg_p_text(&p, name);
    if (sync_interval > 0)
        pg_p_i64(&p, sync_interval);
    else
        pg_p_text(&p, NULL);
    if (partner_expires != 0 && partner_expires != TS_NULL)
        pg_p_i64(&p, partner_expires);
    else
        pg_p_text(&p, NULL);
    if (sync_expires != 0 && sync_expires != TS_NULL)
        pg_p_i64(&p, sync_expires);
    else
        pg_p_text(&p, NULL);
    pg_p_i64(&p, clock_now());
    rc = pg_write((struct pg *)base,
                  "UPDATE integration SET name = COALESCE($3, name), sync_interval = "
                  "COALESCE($4::bigint, sync_interval), partner_secret_expires = "
                  "COALESCE($5::bigint, partner_secret_expires), sync_secret_expires = "
                  "COALESCE($6::bigint, sync_secret_expires), updated_at = $7, "
                  "partner_secret_expiry_source = CASE WHEN $5::bigint IS NULL THEN "
                  "partner_secret_expiry_source END, sync_secret_expiry_source = CASE WHEN "
                  "$6::bigint IS NULL THEN sync_secret_expiry_source END WHERE account_id = "
                  "$1 AND id = $2",
                  &p, 1, eb, "updating the integration");
    if (rc == ERR_NOTFOUND)
        return err_set(eb, ERR_NOTFOUND, "integration %" PRId64 " does not exist", id);
    return rc;
}

/* ---- second factor (migration 13) ------------------------------------------------------- */

/* ERR_EXISTS-like err_if_there (msg) when the user is there, else ERR_NOTFOUND. */
static int
pg_totp_why_not(struct pg *g, int64_t user_id, int err_if_there, const char *msg, struct errbuf *eb)
{
    struct params p = {0};
    PGresult *r;
    int rc, there;

    pg_p_i64(&p, user_id);
    r = pg_q(g, "SELECT 1 FROM app_user WHERE id = $1", &p, eb, "reading the user", &rc);
    if (r == NULL)
        return rc;
    there = PQntuples(r) == 1;
    PQclear(r);
    return there ? err_set(eb, err_if_there, "%s", msg)
                 : err_set(eb, ERR_NOTFOUND, "there is no such user");
}

int
pg_totp_get(struct store *base, int64_t user_id, struct user_totp *out, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc;

    pg_p_i64(&p, user_id);
    r = pg_q_row(
        g,
        "SELECT u.id, u.account_id, u.totp_secret_sealed, u.totp_enrolled_at, u.totp_last_step, "
        "a.require_totp FROM app_user u JOIN account a ON a.id = u.account_id WHERE u.id = $1",
        &p, "there is no such user", eb, "reading the user's second factor", &rc);
    if (r == NULL)
        return rc;
    out->user_id = pg_r_i64(r, 0, 0, 0);
    out->account_id = pg_r_i64(r, 0, 1, 0);
    out->secret_sealed = pg_r_dup(r, 0, 2);
    out->enrolled_at = pg_r_i64(r, 0, 3, TS_NULL);
    out->last_step = pg_r_i64(r, 0, 4, -1);
    out->require = pg_r_i64(r, 0, 5, 0) != 0;
    PQclear(r);
    r = pg_q(g,
             "SELECT id, code_hash FROM user_recovery_code WHERE user_id = $1 AND used_at IS NULL "
             "ORDER BY id LIMIT 16",
             &p, eb, "reading the recovery codes", &rc);
    if (r == NULL)
        return rc;
    for (int i = 0; i < PQntuples(r) && out->ncodes < STORE_RECOVERY_MAX; i++) {
        out->code_id[out->ncodes] = pg_r_i64(r, i, 0, 0);
        out->code_hash[out->ncodes] = pg_r_dup(r, i, 1);
        out->ncodes++;
    }
    PQclear(r);
    return ERR_OK;
}

int
pg_totp_begin(struct store *base, int64_t user_id, const char *sealed, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t n = 0;
    int own, rc = pg_wbegin(g, &own, eb);

    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, user_id);
    pg_p_text(&p, sealed);
    rc = pg_q_done(g,
                   "UPDATE app_user SET totp_secret_sealed = $2, totp_enrolled_at = NULL, "
                   "totp_last_step = NULL WHERE id = $1 AND totp_enrolled_at IS NULL",
                   &p, eb, "starting the second factor's enrolment", &n);
    if (rc == ERR_OK && n == 0)
        rc = pg_totp_why_not(g, user_id, ERR_EXISTS,
                             "the second factor is already set up; turn it off first", eb);
    p.n = 1;
    if (rc == ERR_OK)
        rc = pg_q_done(g, "DELETE FROM user_recovery_code WHERE user_id = $1", &p, eb,
                       "removing the recovery codes", NULL);
    return pg_wend(g, own, rc, eb);
}

int
pg_totp_enrol(struct store *base, int64_t user_id, int64_t step, int64_t now,
              const char *const *hashes, size_t n, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t changed = 0;
    int own, rc = pg_wbegin(g, &own, eb);

    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, user_id);
    pg_p_i64(&p, now);
    pg_p_i64(&p, step);
    rc = pg_q_done(
        g,
        "UPDATE app_user SET totp_enrolled_at = $2, totp_last_step = $3 WHERE id = $1 AND "
        "totp_secret_sealed IS NOT NULL AND totp_enrolled_at IS NULL",
        &p, eb, "confirming the second factor", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "no second factor is being set up; start again");
    p.n = 1;
    if (rc == ERR_OK)
        rc = pg_q_done(g, "DELETE FROM user_recovery_code WHERE user_id = $1", &p, eb,
                       "removing the recovery codes", NULL);
    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        p.n = 1;
        pg_p_text(&p, hashes[i]);
        pg_p_i64(&p, now);
        rc =
            pg_q_done(g,
                      "INSERT INTO user_recovery_code (user_id, code_hash, created_at) VALUES ($1, "
                      "$2, $3)",
                      &p, eb, "storing the recovery codes", NULL);
    }
    return pg_wend(g, own, rc, eb);
}

int
pg_totp_use_step(struct store *base, int64_t user_id, int64_t step, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t changed = 0;
    int rc;

    pg_p_i64(&p, user_id);
    pg_p_i64(&p, step);
    rc = pg_q_done(
        g,
        "UPDATE app_user SET totp_last_step = $2 WHERE id = $1 AND totp_enrolled_at IS NOT "
        "NULL AND (totp_last_step IS NULL OR totp_last_step < $2)",
        &p, eb, "recording the code's use", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_AUTH, "this code was already used");
    return rc;
}

int
pg_totp_recovery_use(struct store *base, int64_t user_id, int64_t code_id, int64_t now,
                     struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t changed = 0;
    int rc;

    pg_p_i64(&p, user_id);
    pg_p_i64(&p, code_id);
    pg_p_i64(&p, now);
    rc = pg_q_done(g,
                   "UPDATE user_recovery_code SET used_at = $3 WHERE id = $2 AND user_id = $1 AND "
                   "used_at IS NULL",
                   &p, eb, "using a recovery code", &changed);
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "this recovery code was already used");
    return rc;
}

int
pg_totp_clear(struct store *base, int64_t user_id, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t n = 0;
    int own, rc = pg_wbegin(g, &own, eb);

    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, user_id);
    rc = pg_q_done(g,
                   "UPDATE app_user SET totp_secret_sealed = NULL, totp_enrolled_at = NULL, "
                   "totp_last_step = NULL WHERE id = $1",
                   &p, eb, "turning the second factor off", &n);
    if (rc == ERR_OK && n == 0)
        rc = err_set(eb, ERR_NOTFOUND, "there is no such user");
    if (rc == ERR_OK)
        rc = pg_q_done(g, "DELETE FROM user_recovery_code WHERE user_id = $1", &p, eb,
                       "removing the recovery codes", NULL);
    return pg_wend(g, own, rc, eb);
}

int
pg_totp_secrets_each(struct store *base, int (*cb)(void *arg, int64_t user_id, const char *sealed),
                     void *arg, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    PGresult *r;
    int rc;

    r = pg_q(g,
             "SELECT id, totp_secret_sealed FROM app_user WHERE totp_secret_sealed IS NOT NULL "
             "ORDER BY id",
             NULL, eb, "reading the second factors", &rc);
    if (r == NULL)
        return rc;
    for (int i = 0; rc == ERR_OK && i < PQntuples(r); i++)
        rc = cb(arg, pg_r_i64(r, i, 0, 0), pg_r_str(r, i, 1));
    PQclear(r);
    return rc;
}

int
pg_totp_set_sealed(struct store *base, int64_t user_id, const char *sealed, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, user_id);
    pg_p_text(&p, sealed);
    return pg_write((struct pg *)base,
                    "UPDATE app_user SET totp_secret_sealed = $2 WHERE id = $1 AND "
                    "totp_secret_sealed IS NOT NULL",
                    &p, 1, eb, "re-sealing the second factor");
}

int
pg_account_require_totp(struct store *base, int64_t account_id, int on, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, account_id);
    pg_p_i64(&p, on ? 1 : 0);
    return pg_write((struct pg *)base, "UPDATE account SET require_totp = $2 WHERE id = $1", &p, 1,
                    eb, "changing the account's second factor rule");
}

/* ---- web: per-user preferences (migration 16) ------------------------------------------ */

int
pg_pref_get(struct store *base, int64_t user_id, const char *key, char **value, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    PGresult *r;
    int rc;

    *value = NULL;
    pg_p_i64(&p, user_id);
    pg_p_text(&p, key);
    r = pg_q_row(g, "SELECT value FROM user_pref WHERE user_id = $1 AND key = $2", &p, NULL, eb,
                 "reading the preference", &rc);
    if (r == NULL)
        return rc;
    *value = pg_r_dup(r, 0, 0);
    PQclear(r);
    return ERR_OK;
}

int
pg_pref_set(struct store *base, int64_t user_id, const char *key, const char *value,
            struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, user_id);
    pg_p_text(&p, key);
    pg_p_text(&p, value);
    pg_p_i64(&p, clock_now());
    return pg_write((struct pg *)base,
                    "INSERT INTO user_pref (user_id, key, value, updated_at) VALUES ($1, $2, $3, "
                    "$4) ON CONFLICT (user_id, key) DO UPDATE SET value = excluded.value, "
                    "updated_at = excluded.updated_at",
                    &p, 0, eb, "saving the preference");
}
