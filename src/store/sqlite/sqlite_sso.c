/* sqlite_sso.c - the SQLite backend of store.h's single sign-on (migration 14): the account's
 * sign-in app (table account_sso), its local_signin switch, and users keyed by (account, tid,
 * oid). */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "sqlite_int.h"

static int
prep(struct sq *s, const char *sql, sqlite3_stmt **st, struct errbuf *eb, const char *what)
{
    if (sq_prep_once(s, sql, -1, st, NULL) != SQLITE_OK) {
        *st = NULL;
        return sq_db_err(s, sqlite3_extended_errcode(s->db), eb, what);
    }
    return ERR_OK;
}

/* Steps a write in its own transaction unless one is open; *changes: rows changed. */
static int
write_once(struct sq *s, sqlite3_stmt *st, int64_t *changes, struct errbuf *eb, const char *what)
{
    int own, rc, src;

    if ((rc = sq_wbegin(s, &own, eb)) != ERR_OK) {
        sqlite3_finalize(st);
        return rc;
    }
    src = sqlite3_step(st);
    if (src == SQLITE_ROW || src == SQLITE_DONE) {
        if (changes != NULL)
            *changes = sqlite3_changes(s->db);
    } else {
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, what);
    }
    sqlite3_finalize(st);
    return sq_wend(s, own, rc, eb);
}

static void
copy_sso(sqlite3_stmt *st, void *arg)
{
    struct account_sso *out = arg;

    out->account_id = sqlite3_column_int64(st, 0);
    out->account_name = sq_col_dup(st, 1);
    out->tenant_id = sq_col_dup(st, 2);
    out->client_id = sq_col_dup(st, 3);
    out->redirect_uri = sq_col_dup(st, 4);
    out->secret_sealed = sq_col_dup(st, 5);
    out->secret_hint = sq_col_dup(st, 6);
    out->role_map = sq_col_dup(st, 7);
    out->worked_at = sq_col_ts(st, 8);
    out->local_signin = sqlite3_column_int(st, 9) != 0;
}

static int
sso_get(struct store *base, int64_t account_id, struct account_sso *out, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = prep(s,
              "SELECT a.id, a.name, o.tenant_id, o.client_id, o.redirect_uri, o.secret_sealed, "
              "o.secret_hint, o.role_map, o.worked_at, a.local_signin FROM account_sso o JOIN "
              "account a ON a.id = o.account_id WHERE o.account_id = ?1",
              &st, eb, "reading the single sign-on settings");
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, account_id);
    rc = sq_step_row(s, st, copy_sso, out, "the account has no single sign-on settings", eb,
                     "reading the single sign-on settings");
    sqlite3_finalize(st);
    return rc;
}

static int
sso_set(struct store *base, const struct account_sso *in, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    /* A new tenant or app has not worked yet: local sign-in cannot be turned off on its word. */
    rc = prep(s,
              "INSERT INTO account_sso (account_id, tenant_id, client_id, redirect_uri, "
              "secret_sealed, secret_hint, role_map, worked_at, updated_at) VALUES (?1, ?2, ?3, "
              "?4, ?5, ?6, ?7, NULL, ?8) ON CONFLICT (account_id) DO UPDATE SET worked_at = CASE "
              "WHEN tenant_id = excluded.tenant_id AND client_id = excluded.client_id THEN "
              "worked_at END, tenant_id = excluded.tenant_id, client_id = excluded.client_id, "
              "redirect_uri = excluded.redirect_uri, secret_sealed = excluded.secret_sealed, "
              "secret_hint = excluded.secret_hint, role_map = excluded.role_map, updated_at = "
              "excluded.updated_at",
              &st, eb, "saving the single sign-on settings");
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, in->account_id);
    sq_bind_text(st, 2, in->tenant_id);
    sq_bind_text(st, 3, in->client_id);
    sq_bind_text(st, 4, in->redirect_uri);
    sq_bind_text(st, 5, in->secret_sealed);
    sq_bind_text(st, 6, in->secret_hint);
    sq_bind_text(st, 7, in->role_map);
    sqlite3_bind_int64(st, 8, clock_now());
    return write_once(s, st, NULL, eb, "saving the single sign-on settings");
}

static int
sso_del(struct store *base, int64_t account_id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int64_t n = 0;
    int own, rc;

    if ((rc = sq_wbegin(s, &own, eb)) != ERR_OK)
        return rc;
    rc = prep(s, "DELETE FROM account_sso WHERE account_id = ?1", &st, eb,
              "removing the single sign-on settings");
    if (rc == ERR_OK) {
        sqlite3_bind_int64(st, 1, account_id);
        rc = write_once(s, st, &n, eb, "removing the single sign-on settings");
    }
    if (rc == ERR_OK && n == 0)
        rc = err_set(eb, ERR_NOTFOUND, "the account has no single sign-on settings");
    if (rc == ERR_OK)
        rc = prep(s, "UPDATE account SET local_signin = 1 WHERE id = ?1", &st, eb,
                  "turning local sign-in back on");
    if (rc == ERR_OK) {
        sqlite3_bind_int64(st, 1, account_id);
        rc = write_once(s, st, NULL, eb, "turning local sign-in back on");
    }
    return sq_wend(s, own, rc, eb);
}

static int
sso_each(struct store *base, int (*cb)(void *arg, int64_t id, const char *name), void *arg,
         struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc, src;

    rc = prep(s,
              "SELECT a.id, a.name FROM account_sso o JOIN account a ON a.id = o.account_id "
              "ORDER BY a.name LIMIT 100",
              &st, eb, "listing single sign-on accounts");
    if (rc != ERR_OK)
        return rc;
    while ((src = sqlite3_step(st)) == SQLITE_ROW && rc == ERR_OK)
        rc = cb(arg, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1));
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "listing single sign-on accounts");
    sqlite3_finalize(st);
    return rc;
}

/* One write with ?1 = id and ?2 = an integer or text (v NULL: iv). */
static int
write1(struct sq *s, const char *sql, int64_t id, const char *v, int64_t iv, int64_t *changes,
       struct errbuf *eb, const char *what)
{
    sqlite3_stmt *st = NULL;
    int rc = prep(s, sql, &st, eb, what);

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, id);
    if (v != NULL)
        sq_bind_text(st, 2, v);
    else
        sqlite3_bind_int64(st, 2, iv);
    return write_once(s, st, changes, eb, what);
}

static int
sso_worked(struct store *base, int64_t account_id, int64_t now, struct errbuf *eb)
{
    return write1((struct sq *)base, "UPDATE account_sso SET worked_at = ?2 WHERE account_id = ?1",
                  account_id, NULL, now, NULL, eb, "recording a single sign-on");
}

static int
sso_secrets_each(struct store *base, int (*cb)(void *arg, int64_t id, const char *sealed),
                 void *arg, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc, src;

    rc = prep(s, "SELECT account_id, secret_sealed FROM account_sso ORDER BY account_id", &st, eb,
              "reading the single sign-on secrets");
    if (rc != ERR_OK)
        return rc;
    while ((src = sqlite3_step(st)) == SQLITE_ROW && rc == ERR_OK)
        rc = cb(arg, sqlite3_column_int64(st, 0), (const char *)sqlite3_column_text(st, 1));
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc =
            sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading the single sign-on secrets");
    sqlite3_finalize(st);
    return rc;
}

static int
sso_set_sealed(struct store *base, int64_t account_id, const char *sealed, struct errbuf *eb)
{
    int64_t n = 0;
    int rc =
        write1((struct sq *)base, "UPDATE account_sso SET secret_sealed = ?2 WHERE account_id = ?1",
               account_id, sealed, 0, &n, eb, "re-sealing the single sign-on secret");

    if (rc == ERR_OK && n == 0)
        rc = err_set(eb, ERR_NOTFOUND, "the account has no single sign-on settings");
    return rc;
}

static int
local_signin(struct store *base, int64_t account_id, int on, struct errbuf *eb)
{
    int64_t n = 0;
    int rc = write1((struct sq *)base,
                    "UPDATE account SET local_signin = ?2 WHERE id = ?1 AND (?2 = 1 OR EXISTS "
                    "(SELECT 1 FROM account_sso WHERE account_id = ?1 AND worked_at IS NOT NULL))",
                    account_id, NULL, on, &n, eb, "changing local sign-in");

    if (rc == ERR_OK && n == 0)
        rc = err_set(eb, ERR_DENIED,
                     "local sign-in stays on until a sign-in with Microsoft has worked for this "
                     "account");
    return rc;
}

static void
copy_flag(sqlite3_stmt *st, void *out)
{
    *(int *)out = sqlite3_column_int(st, 0) != 0;
}

static int
local_signin_get(struct store *base, int64_t account_id, int *on, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = prep(s, "SELECT local_signin FROM account WHERE id = ?1", &st, eb,
                  "reading the account's sign-in rule");

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, account_id);
    rc = sq_step_row(s, st, copy_flag, on, NULL, eb, "reading the account's sign-in rule");
    sqlite3_finalize(st);
    return rc == ERR_NOTFOUND ? ERR_OK : rc; /* no such account: *on as it was */
}

static int
user_find(struct store *base, int64_t account_id, const char *tid, const char *oid,
          struct user_row *out, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = prep(s,
              "SELECT id, account_id, name, role, password_hash, created_at FROM app_user WHERE "
              "account_id = ?1 AND sso_tid = ?2 AND sso_oid = ?3",
              &st, eb, "reading the user");
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, account_id);
    sq_bind_text(st, 2, tid);
    sq_bind_text(st, 3, oid);
    rc = sq_step_row(s, st, sq_copy_user, out, "no user signed in with this Microsoft account yet",
                     eb, "reading the user");
    sqlite3_finalize(st);
    return rc;
}

static int
user_insert(struct store *base, int64_t account_id, const char *tid, const char *oid,
            const char *name, const char *role, int64_t *id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = prep(s,
                  "INSERT INTO app_user (account_id, name, role, password_hash, created_at, "
                  "sso_tid, sso_oid) VALUES (?1, ?2, ?3, '" STORE_SSO_NO_PASSWORD "', ?4, ?5, ?6)",
                  &st, eb, "adding the user");

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, account_id);
    sq_bind_text(st, 2, name);
    sq_bind_text(st, 3, role);
    sqlite3_bind_int64(st, 4, clock_now());
    sq_bind_text(st, 5, tid);
    sq_bind_text(st, 6, oid);
    rc = write_once(s, st, NULL, eb, "adding the user");
    if (rc == ERR_OK && id != NULL)
        *id = sqlite3_last_insert_rowid(s->db);
    if (rc == ERR_EXISTS)
        rc = err_set(eb, ERR_EXISTS, "a user named %s exists", name);
    return rc;
}

static int
user_set_role(struct store *base, int64_t id, const char *role, struct errbuf *eb)
{
    int64_t n = 0;
    int rc = write1((struct sq *)base, "UPDATE app_user SET role = ?2 WHERE id = ?1", id, role, 0,
                    &n, eb, "changing the user's role");

    if (rc == ERR_OK && n == 0)
        rc = err_set(eb, ERR_NOTFOUND, "there is no such user");
    return rc;
}

const struct store_sso_ops sq_sso_ops = {
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
