/* pg_sso.c - the PostgreSQL backend of store.h's single sign-on (migration 14): as
 * sqlite_sso.c, over libpq. */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "pg_int.h"

/* One write in its own transaction unless one is open; *changed: rows changed. */
static int
write_q(struct pg *g, const char *sql, const struct params *p, int64_t *changed, struct errbuf *eb,
        const char *what)
{
    int own, rc = pg_wbegin(g, &own, eb);

    if (rc != ERR_OK)
        return rc;
    rc = pg_q_done(g, sql, p, eb, what, changed);
    return pg_wend(g, own, rc, eb);
}

static int
sso_get(struct store *base, int64_t account_id, struct account_sso *out, struct errbuf *eb)
{
    struct params p = {0};
    PGresult *r;
    int rc;

    pg_p_i64(&p, account_id);
    r = pg_q_row((struct pg *)base,
                 "SELECT a.id, a.name, o.tenant_id, o.client_id, o.redirect_uri, o.secret_sealed, "
                 "o.secret_hint, o.role_map, o.worked_at, a.local_signin FROM account_sso o JOIN "
                 "account a ON a.id = o.account_id WHERE o.account_id = $1",
                 &p, "the account has no single sign-on settings", eb,
                 "reading the single sign-on settings", &rc);
    if (r == NULL)
        return rc;
    out->account_id = pg_r_i64(r, 0, 0, 0);
    out->account_name = pg_r_dup(r, 0, 1);
    out->tenant_id = pg_r_dup(r, 0, 2);
    out->client_id = pg_r_dup(r, 0, 3);
    out->redirect_uri = pg_r_dup(r, 0, 4);
    out->secret_sealed = pg_r_dup(r, 0, 5);
    out->secret_hint = pg_r_dup(r, 0, 6);
    out->role_map = pg_r_dup(r, 0, 7);
    out->worked_at = pg_r_i64(r, 0, 8, TS_NULL);
    out->local_signin = pg_r_i64(r, 0, 9, 1) != 0;
    PQclear(r);
    return ERR_OK;
}

static int
sso_set(struct store *base, const struct account_sso *in, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, in->account_id);
    pg_p_text(&p, in->tenant_id);
    pg_p_text(&p, in->client_id);
    pg_p_text(&p, in->redirect_uri);
    pg_p_text(&p, in->secret_sealed);
    pg_p_text(&p, in->secret_hint);
    pg_p_text(&p, in->role_map);
    pg_p_i64(&p, clock_now());
    return write_q((struct pg *)base,
                   "INSERT INTO account_sso (account_id, tenant_id, client_id, redirect_uri, "
                   "secret_sealed, secret_hint, role_map, worked_at, updated_at) VALUES ($1, $2, "
                   "$3, $4, $5, $6, $7, NULL, $8) ON CONFLICT (account_id) DO UPDATE SET "
                   "worked_at = CASE WHEN account_sso.tenant_id = excluded.tenant_id AND "
                   "account_sso.client_id = excluded.client_id THEN account_sso.worked_at END, "
                   "tenant_id = excluded.tenant_id, client_id = excluded.client_id, redirect_uri "
                   "= excluded.redirect_uri, secret_sealed = excluded.secret_sealed, secret_hint "
                   "= excluded.secret_hint, role_map = excluded.role_map, updated_at = "
                   "excluded.updated_at",
                   &p, NULL, eb, "saving the single sign-on settings");
}

static int
sso_del(struct store *base, int64_t account_id, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    int64_t n = 0;
    int own, rc = pg_wbegin(g, &own, eb);

    if (rc != ERR_OK)
        return rc;
    pg_p_i64(&p, account_id);
    rc = pg_q_done(g, "DELETE FROM account_sso WHERE account_id = $1", &p, eb,
                   "removing the single sign-on settings", &n);
    if (rc == ERR_OK && n == 0)
        rc = err_set(eb, ERR_NOTFOUND, "the account has no single sign-on settings");
    if (rc == ERR_OK)
        rc = pg_q_done(g, "UPDATE account SET local_signin = 1 WHERE id = $1", &p, eb,
                       "turning local sign-in back on", NULL);
    return pg_wend(g, own, rc, eb);
}

static int
rows_each(struct store *base, const char *sql, int (*cb)(void *arg, int64_t id, const char *s),
          void *arg, struct errbuf *eb, const char *what)
{
    PGresult *r;
    int rc = ERR_OK;

    r = pg_q((struct pg *)base, sql, NULL, eb, what, &rc);
    if (r == NULL)
        return rc;
    for (int i = 0; i < PQntuples(r) && rc == ERR_OK; i++)
        rc = cb(arg, pg_r_i64(r, i, 0, 0), pg_r_str(r, i, 1));
    PQclear(r);
    return rc;
}

static int
sso_each(struct store *base, int (*cb)(void *arg, int64_t id, const char *name), void *arg,
         struct errbuf *eb)
{
    return rows_each(base,
                     "SELECT a.id, a.name FROM account_sso o JOIN account a ON a.id = "
                     "o.account_id ORDER BY a.name LIMIT 100",
                     cb, arg, eb, "listing single sign-on accounts");
}

static int
sso_secrets_each(struct store *base, int (*cb)(void *arg, int64_t id, const char *sealed),
                 void *arg, struct errbuf *eb)
{
    return rows_each(base, "SELECT account_id, secret_sealed FROM account_sso ORDER BY account_id",
                     cb, arg, eb, "reading the single sign-on secrets");
}

static int
sso_worked(struct store *base, int64_t account_id, int64_t now, struct errbuf *eb)
{
    struct params p = {0};

    pg_p_i64(&p, account_id);
    pg_p_i64(&p, now);
    return write_q((struct pg *)base, "UPDATE account_sso SET worked_at = $2 WHERE account_id = $1",
                   &p, NULL, eb, "recording a single sign-on");
}

static int
sso_set_sealed(struct store *base, int64_t account_id, const char *sealed, struct errbuf *eb)
{
    struct params p = {0};
    int64_t n = 0;
    int rc;

    pg_p_i64(&p, account_id);
    pg_p_text(&p, sealed);
    rc = write_q((struct pg *)base,
                 "UPDATE account_sso SET secret_sealed = $2 WHERE account_id = $1", &p, &n, eb,
                 "re-sealing the single sign-on secret");
    if (rc == ERR_OK && n == 0)
        rc = err_set(eb, ERR_NOTFOUND, "the account has no single sign-on settings");
    return rc;
}

static int
local_signin(struct store *base, int64_t account_id, int on, struct errbuf *eb)
{
    struct params p = {0};
    int64_t n = 0;
    int rc;

    pg_p_i64(&p, account_id);
    pg_p_i64(&p, on ? 1 : 0);
    rc = write_q((struct pg *)base,
                 "UPDATE account SET local_signin = $2 WHERE id = $1 AND ($2 = 1 OR EXISTS (SELECT "
                 "1 FROM account_sso WHERE account_id = $1 AND worked_at IS NOT NULL))",
                 &p, &n, eb, "changing local sign-in");
    if (rc == ERR_OK && n == 0)
        rc = err_set(eb, ERR_DENIED,
                     "local sign-in stays on until a sign-in with Microsoft has worked for this "
                     "account");
    return rc;
}

static int
local_signin_get(struct store *base, int64_t account_id, int *on, struct errbuf *eb)
{
    struct params p = {0};
    PGresult *r;
    int rc = ERR_OK;

    pg_p_i64(&p, account_id);
    r = pg_q((struct pg *)base, "SELECT local_signin FROM account WHERE id = $1", &p, eb,
             "reading the account's sign-in rule", &rc);
    if (r == NULL)
        return rc;
    if (PQntuples(r) == 1)
        *on = pg_r_i64(r, 0, 0, 1) != 0;
    PQclear(r);
    return ERR_OK;
}

static int
user_find(struct store *base, int64_t account_id, const char *tid, const char *oid,
          struct user_row *out, struct errbuf *eb)
{
    struct params p = {0};
    PGresult *r;
    int rc = ERR_OK;

    pg_p_i64(&p, account_id);
    pg_p_text(&p, tid);
    pg_p_text(&p, oid);
    r = pg_q_row((struct pg *)base,
                 "SELECT id, account_id, name, role, password_hash, created_at FROM app_user WHERE "
                 "account_id = $1 AND sso_tid = $2 AND sso_oid = $3",
                 &p, "no user signed in with this Microsoft account yet", eb, "reading the user",
                 &rc);
    if (r == NULL)
        return rc;
    pg_copy_user(r, out);
    PQclear(r);
    return ERR_OK;
}

static int
user_insert(struct store *base, int64_t account_id, const char *tid, const char *oid,
            const char *name, const char *role, int64_t *id, struct errbuf *eb)
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
    pg_p_i64(&p, clock_now());
    pg_p_text(&p, tid);
    pg_p_text(&p, oid);
    r = pg_q(g,
             "INSERT INTO app_user (account_id, name, role, password_hash, created_at, sso_tid, "
             "sso_oid) VALUES ($1, $2, $3, '" STORE_SSO_NO_PASSWORD "', $4, $5, $6) RETURNING id",
             &p, eb, "adding the user", &rc);
    if (r != NULL && id != NULL)
        *id = pg_r_i64(r, 0, 0, 0);
    PQclear(r);
    rc = pg_wend(g, own, rc, eb);
    if (rc == ERR_EXISTS)
        return err_set(eb, ERR_EXISTS, "a user named %s exists", name);
    return rc;
}

static int
user_set_role(struct store *base, int64_t id, const char *role, struct errbuf *eb)
{
    struct params p = {0};
    int64_t n = 0;
    int rc;

    pg_p_i64(&p, id);
    pg_p_text(&p, role);
    rc = write_q((struct pg *)base, "UPDATE app_user SET role = $2 WHERE id = $1", &p, &n, eb,
                 "changing the user's role");
    if (rc == ERR_OK && n == 0)
        rc = err_set(eb, ERR_NOTFOUND, "there is no such user");
    return rc;
}

const struct store_sso_ops pg_sso_ops = {
    .get = sso_get,
    .set = sso_set,
    .del = sso_del,
    .each = sso_each,
    .worked = sso_worked,
    .secrets_each = sso_secrets_each,
    .set_sealed = sso_set_sealed,
    .local_signin = local_signin,
    .local_signin_get = local_signin_get,
    .user_find = user_find,
    .user_insert = user_insert,
    .user_set_role = user_set_role,
};
