/* store_sso.c - store.h's single sign-on functions (migration 14): argument checks, then the
 * backend's table (store_int.h struct store_sso_ops). */
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "store_int.h"

void
account_sso_clear(struct account_sso *s)
{
    if (s == NULL)
        return;
    free(s->account_name);
    free(s->tenant_id);
    free(s->client_id);
    free(s->redirect_uri);
    free(s->secret_sealed);
    free(s->secret_hint);
    free(s->role_map);
    memset(s, 0, sizeof *s);
}

int
store_sso_get(struct store *st, int64_t account_id, struct account_sso *out, struct errbuf *eb)
{
    int rc;

    memset(out, 0, sizeof *out);
    out->worked_at = TS_NULL;
    if ((rc = st->ops->sso->get(st, account_id, out, eb)) != ERR_OK)
        account_sso_clear(out);
    return rc;
}

int
store_sso_set(struct store *st, const struct account_sso *in, struct errbuf *eb)
{
    if (in->tenant_id == NULL || in->client_id == NULL || in->redirect_uri == NULL ||
        in->secret_sealed == NULL || in->secret_sealed[0] == '\0' || in->role_map == NULL)
        return err_set(eb, ERR_INVAL, "incomplete single sign-on settings");
    return st->ops->sso->set(st, in, eb);
}

int
store_sso_delete(struct store *st, int64_t account_id, struct errbuf *eb)
{
    return st->ops->sso->del(st, account_id, eb);
}

int
store_sso_each(struct store *st, int (*cb)(void *arg, int64_t account_id, const char *name),
               void *arg, struct errbuf *eb)
{
    return st->ops->sso->each(st, cb, arg, eb);
}

int
store_sso_worked(struct store *st, int64_t account_id, int64_t now, struct errbuf *eb)
{
    return st->ops->sso->worked(st, account_id, now, eb);
}

int
store_sso_secrets_each(struct store *st,
                       int (*cb)(void *arg, int64_t account_id, const char *sealed), void *arg,
                       struct errbuf *eb)
{
    return st->ops->sso->secrets_each(st, cb, arg, eb);
}

int
store_sso_set_sealed(struct store *st, int64_t account_id, const char *sealed, struct errbuf *eb)
{
    if (sealed == NULL || sealed[0] == '\0')
        return err_set(eb, ERR_INVAL, "no sealed SSO client secret");
    return st->ops->sso->set_sealed(st, account_id, sealed, eb);
}

int
store_account_local_signin(struct store *st, int64_t account_id, int on, struct errbuf *eb)
{
    return st->ops->sso->local_signin(st, account_id, on != 0, eb);
}

int
store_account_local_signin_get(struct store *st, int64_t account_id, int *on, struct errbuf *eb)
{
    *on = 1;
    return st->ops->sso->local_signin_get(st, account_id, on, eb);
}

int
store_user_sso_find(struct store *st, int64_t account_id, const char *tid, const char *oid,
                    struct user_row *out, struct errbuf *eb)
{
    int rc;

    memset(out, 0, sizeof *out);
    if (tid == NULL || oid == NULL || tid[0] == '\0' || oid[0] == '\0')
        return err_set(eb, ERR_INVAL, "no tenant or object id");
    if ((rc = st->ops->sso->user_find(st, account_id, tid, oid, out, eb)) != ERR_OK)
        user_row_clear(out);
    return rc;
}

static int
role_ok(const char *role)
{
    return role != NULL && (strcmp(role, "admin") == 0 || strcmp(role, "viewer") == 0);
}

int
store_user_sso_insert(struct store *st, int64_t account_id, const char *tid, const char *oid,
                      const char *name, const char *role, int64_t *id, struct errbuf *eb)
{
    if (tid == NULL || oid == NULL || name == NULL || tid[0] == '\0' || oid[0] == '\0' ||
        name[0] == '\0' || !role_ok(role))
        return err_set(eb, ERR_INVAL, "bad single sign-on user");
    return st->ops->sso->user_insert(st, account_id, tid, oid, name, role, id, eb);
}

int
store_user_set_role(struct store *st, int64_t id, const char *role, struct errbuf *eb)
{
    if (!role_ok(role))
        return err_set(eb, ERR_INVAL, "role must be admin or viewer");
    return st->ops->sso->user_set_role(st, id, role, eb);
}
