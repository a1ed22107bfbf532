/* ui_sso.c - single sign-on pages: see ui_sso.h. */
#include "ui_sso.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "guid.h"
#include "log.h"
#include "mem.h"
#include "oidc.h"
#include "store.h"
#include "vault.h"

#define SSO_TABLE  "account_sso"
#define SSO_COLUMN "client_secret"

static void
notice(const struct ui_sso_env *env, struct buf *b, const char *kind, const char *msg)
{
    buf_printf(b, "<div class=\"notice %s\">", kind);
    env->ui->esc(b, msg);
    buf_addstr(b, "</div>");
}

static void
redirect(struct httpd_response *resp, const char *to)
{
    resp->status = 303;
    resp->content_type = "text/plain";
    buf_reset(&resp->body);
    httpd_response_header(resp, "Location", to);
}

static void
set_cookie(struct httpd_response *resp, const struct httpd_request *req, const char *value,
           int max_age)
{
    char cookie[256];

    /* Lax: the browser must send it on Microsoft's top-level redirect back to the callback. */
    snprintf(cookie, sizeof cookie, "%s=%s; Path=/auth/sso; HttpOnly; SameSite=Lax; Max-Age=%d%s",
             OIDC_COOKIE, value, max_age, req->https ? "; Secure" : "");
    httpd_response_header(resp, "Set-Cookie", cookie);
}

/* A sign-in refusal: what happened (title), what to do (msg), a way to start again. */
static void
sso_page(const struct ui_sso_env *env, struct httpd_response *resp, int status, const char *title,
         const char *msg)
{
    struct buf *b = &resp->body;

    env->ui->page_begin(resp, NULL, title, NULL);
    buf_addstr(b, "<div class=\"login panel\" id=\"sso-error\"><h1>");
    env->ui->esc(b, title);
    buf_addstr(b, "</h1>");
    notice(env, b, "bad", msg);
    buf_addstr(b, "<p><a href=\"/login\">Back to sign-in</a></p></div>");
    env->ui->page_end(resp);
    resp->status = status;
}

/* ---- sign-in page buttons ---------------------------------------------------------------- */

struct buttons {
    struct buf *b;
    const char *next;
    void (*esc)(struct buf *b, const char *s);
    int n;
};

static int
button_cb(void *arg, int64_t account_id, const char *name)
{
    struct buttons *x = arg;
    struct buf u;

    (void)account_id;
    if (x->n++ == 0)
        buf_addstr(x->b, "<div class=\"sso stack\">");
    buf_init(&u, 4096);
    buf_addstr(&u, "/auth/sso?account=");
    buf_add_urlenc(&u, name);
    if (x->next != NULL && strcmp(x->next, "/assets") != 0) {
        buf_addstr(&u, "&next=");
        buf_add_urlenc(&u, x->next);
    }
    buf_addstr(x->b, "<a class=\"btn\" href=\"");
    x->esc(x->b, buf_cstr(&u));
    buf_addstr(x->b, "\">Sign in with Microsoft");
    if (strcmp(name, AUTH_DEFAULT_ACCOUNT) != 0) {
        buf_addstr(x->b, " (");
        x->esc(x->b, name);
        buf_addstr(x->b, ")");
    }
    buf_addstr(x->b, "</a>");
    buf_free(&u);
    return ERR_OK;
}

void
ui_sso_login_buttons(struct store *st, struct buf *b, const char *next,
                     void (*esc)(struct buf *b, const char *s))
{
    struct buttons x = {b, next, esc, 0};
    struct errbuf eb = {0};

    if (st == NULL)
        return;
    if (store_sso_each(st, button_cb, &x, &eb) != ERR_OK)
        log_warn("sso: cannot list accounts for the sign-in page error=\"%s\"", eb.msg);
    if (x.n > 0)
        buf_addstr(b, "<p class=\"muted\">or with a local user name and password:</p></div>");
}

/* ---- start ------------------------------------------------------------------------------- */

struct find {
    const char *name;
    int64_t id;
};

static int
find_cb(void *arg, int64_t account_id, const char *name)
{
    struct find *f = arg;

    if (strcmp(name, f->name) == 0)
        f->id = account_id;
    return ERR_OK;
}

static const char *
store_words(int rc)
{
    return rc == ERR_TIMEOUT ? "The database is busy; try again in a moment."
                             : "The database could not be read; the cause is in the server's log.";
}

void
ui_sso_start(const struct ui_sso_env *env, struct httpd_request *req, struct httpd_response *resp)
{
    const char *account = httpd_arg(req, "account");
    const char *next = env->ui->safe_next(httpd_arg(req, "next"));
    struct find f = {account != NULL ? account : AUTH_DEFAULT_ACCOUNT, 0};
    struct account_sso s = {0};
    struct oidc_provider prov = {0};
    struct oidc_pending pend;
    char cookie[OIDC_RANDOM_LEN + 1], chal[OIDC_RANDOM_LEN + 1], *url = NULL;
    struct errbuf eb = {0};
    int64_t now = clock_now();
    int rc;

    if (req->st == NULL) {
        sso_page(env, resp, 503, "Sign-in is not available", "The database is not available.");
        return;
    }
    rc = store_sso_each(req->st, find_cb, &f, &eb);
    if (rc == ERR_OK && f.id == 0)
        rc = ERR_NOTFOUND;
    if (rc == ERR_OK)
        rc = store_sso_get(req->st, f.id, &s, &eb);
    if (rc == ERR_NOTFOUND) {
        sso_page(env, resp, 404, "No sign-in with Microsoft",
                 "This account has no sign-in with Microsoft. Sign in with your memsync user "
                 "name and password, or ask your memsync admin to set it up.");
        goto out;
    }
    if (rc != ERR_OK) {
        log_warn("sso start: database error error=\"%s\"", eb.msg);
        sso_page(env, resp, rc == ERR_TIMEOUT ? 503 : 500, "Sign-in is not available",
                 store_words(rc));
        goto out;
    }
    rc = oidc_provider_get(env->cfg->login_url, s.tenant_id, env->cfg->ca_file, now, &prov, &eb);
    if (rc != ERR_OK) {
        log_warn("sso start: provider unreadable account=%s error=\"%s\"", s.account_name, eb.msg);
        sso_page(env, resp, 502, "Microsoft cannot be reached",
                 "memsync could not read your tenant's sign-in configuration from Microsoft. Try "
                 "again in a moment; if it keeps failing, your memsync admin finds the cause in "
                 "the server's log (check the tenant id and the network).");
        goto out;
    }
    if (oidc_pending_start(s.account_id, next, now, &pend, cookie, &eb) != ERR_OK) {
        sso_page(env, resp, 429, "Too many sign-ins", eb.msg);
        goto out;
    }
    oidc_pkce_challenge(pend.verifier, chal);
    url = oidc_authorize_url(prov.authorize_url, s.client_id, s.redirect_uri, pend.state,
                             pend.nonce, chal);
    set_cookie(resp, req, cookie, OIDC_PENDING_TTL);
    redirect(resp, url);
    httpd_response_header(resp, "Cache-Control", "no-store");
    sodium_memzero(&pend, sizeof pend);
    sodium_memzero(cookie, sizeof cookie);
out:
    free(url);
    oidc_provider_clear(&prov);
    account_sso_clear(&s);
}

/* ---- callback ---------------------------------------------------------------------------- */

/* What the page says for a refused token. */
static void
refused_token(const struct ui_sso_env *env, struct httpd_response *resp, enum oidc_fail why)
{
    const char *title = "Sign-in refused", *msg;

    switch (why) {
    case OIDC_AUDIENCE:
        title = "Sign-in refused: token for another application";
        msg = "Microsoft's ID token was issued for another application (audience). memsync "
              "accepts only tokens for its own sign-in app. Ask your memsync admin to check the "
              "app (client) id in the single sign-on settings, then sign in again.";
        break;
    case OIDC_TENANT:
        title = "Sign-in refused: another tenant";
        msg = "You signed in with an account of another Microsoft Entra tenant than the one this "
              "memsync account trusts. Sign in with your work account of the MSP's tenant.";
        break;
    case OIDC_ISSUER:
        title = "Sign-in refused: unknown issuer";
        msg = "The ID token was not issued by your tenant's sign-in service. Start the sign-in "
              "again; if it keeps happening, tell your memsync admin.";
        break;
    case OIDC_NONCE:
        title = "Sign-in refused: not this sign-in";
        msg = "The answer from Microsoft belongs to another sign-in than the one this browser "
              "started (nonce mismatch), so it was refused. Start the sign-in again.";
        break;
    case OIDC_SIGNATURE:
    case OIDC_KID:
        title = "Sign-in refused: bad signature";
        msg = "The ID token's signature did not verify against the signing keys your tenant "
              "publishes, so it was refused. Start the sign-in again; if it keeps happening, "
              "tell your memsync admin.";
        break;
    case OIDC_ALG:
        title = "Sign-in refused: bad signature";
        msg = "The ID token was not signed with RS256, the only algorithm memsync accepts, so "
              "it was refused. Start the sign-in again; if it keeps happening, tell your "
              "memsync admin.";
        break;
    case OIDC_EXPIRED:
    case OIDC_NOT_YET:
        title = "Sign-in refused: token out of date";
        msg = "The ID token is expired or not valid yet. Check that this computer's and the "
              "memsync server's clocks are right, then sign in again.";
        break;
    default:
        msg = "Microsoft's answer could not be read as a valid ID token. Start the sign-in "
              "again; if it keeps happening, tell your memsync admin.";
        break;
    }
    sso_page(env, resp, 403, title, msg);
}

/* Keeps [A-Za-z0-9._ :-] of s, at most outsz - 1 characters (Entra's error words). */
static void
clean(char *out, size_t outsz, const char *s)
{
    size_t j = 0;

    for (; s != NULL && *s != '\0' && j + 1 < outsz; s++)
        if ((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') || (*s >= '0' && *s <= '9') ||
            strchr("._ :-,'", *s) != NULL)
            out[j++] = *s;
    out[j] = '\0';
}

/* A user name for a new user: preferred_username when memsync accepts it as a name. */
static void
jit_name(const struct oidc_claims *c, int attempt, char *out, size_t outsz)
{
    if (attempt == 0 && auth_user_name_check(c->username, NULL) == ERR_OK) {
        snprintf(out, outsz, "%s", c->username);
        return;
    }
    snprintf(out, outsz, "sso-%.8s", c->oid);
    if (auth_user_name_check(out, NULL) != ERR_OK)
        snprintf(out, outsz, "sso-user-%lld", (long long)(clock_now() % 1000000));
    if (attempt > 1) {
        size_t n = strlen(out);

        snprintf(out + n, outsz - n, "-%u", (unsigned)randombytes_uniform(100000));
    }
}

/* The user of (account, tid, oid) with role: found (role updated) or made. */
static int
sso_user(struct store *st, int64_t account_id, const struct oidc_claims *c, const char *role,
         struct auth_principal *p, struct errbuf *eb)
{
    struct user_row u = {0};
    int64_t id = 0;
    char name[AUTH_USER_NAME_MAX + 1];
    int rc = store_user_sso_find(st, account_id, c->tid, c->oid, &u, eb);

    if (rc == ERR_OK) {
        if (strcmp(u.role, role) != 0) {
            if ((rc = store_user_set_role(st, u.id, role, eb)) != ERR_OK)
                goto out;
            log_info("sso user role changed user=%s role=%s", u.name, role);
        }
        id = u.id;
        snprintf(name, sizeof name, "%s", u.name);
    } else if (rc == ERR_NOTFOUND) {
        for (int attempt = 0; attempt < 4; attempt++) {
            jit_name(c, attempt, name, sizeof name);
            rc = store_user_sso_insert(st, account_id, c->tid, c->oid, name, role, &id, eb);
            if (rc != ERR_EXISTS)
                break;
        }
        if (rc != ERR_OK)
            goto out;
        log_info("sso user created user=%s role=%s account_id=%lld", name, role,
                 (long long)account_id);
    } else {
        goto out;
    }
    memset(p, 0, sizeof *p);
    p->account_id = account_id;
    p->user_id = id;
    p->role = strcmp(role, "admin") == 0 ? AUTH_ADMIN : AUTH_READ;
    snprintf(p->name, sizeof p->name, "%s", name);
out:
    user_row_clear(&u);
    return rc;
}

void
ui_sso_callback(const struct ui_sso_env *env, struct httpd_request *req,
                struct httpd_response *resp)
{
    const char *code = httpd_arg(req, "code"), *state = httpd_arg(req, "state");
    const char *error = httpd_arg(req, "error");
    struct oidc_pending pend;
    struct account_sso s = {0};
    struct oidc_provider prov = {0};
    struct oidc_claims cl = {0};
    struct oidc_expect x = {0};
    struct auth_principal p = {0};
    enum oidc_fail why = OIDC_OK;
    char *secret = NULL, *idt = NULL, token[AUTH_TOKEN_HEX + 1], cookie[256];
    const char *role;
    struct errbuf eb = {0};
    int64_t now = clock_now();
    int rc;

    rc = oidc_pending_take(httpd_cookie(req, OIDC_COOKIE), now, &pend, &eb);
    set_cookie(resp, req, "", 0); /* used once, whatever happens next */
    if (error != NULL) {
        char e[64], d[240], msg[400];

        clean(e, sizeof e, error);
        clean(d, sizeof d, httpd_arg(req, "error_description"));
        snprintf(msg, sizeof msg,
                 "Microsoft did not sign you in (%s%s%.160s). Start the sign-in again, or ask "
                 "your memsync admin.",
                 e, d[0] != '\0' ? ": " : "", d);
        sso_page(env, resp, 403, "Microsoft did not sign you in", msg);
        goto out;
    }
    if (rc != ERR_OK) {
        sso_page(env, resp, 400, "Sign-in expired",
                 "This sign-in was not started in this browser, has expired or was already used. "
                 "Start the sign-in again from the sign-in page.");
        goto out;
    }
    if (state == NULL || strlen(state) != strlen(pend.state) ||
        sodium_memcmp(state, pend.state, strlen(state)) != 0) {
        sso_page(env, resp, 403, "Sign-in refused: not this sign-in",
                 "The answer from Microsoft does not match the sign-in this browser started "
                 "(state mismatch), so it was refused. Start the sign-in again.");
        goto out;
    }
    if (code == NULL || code[0] == '\0' || strlen(code) > OIDC_TOKEN_MAX) {
        sso_page(env, resp, 400, "Sign-in refused",
                 "Microsoft's answer carries no sign-in code. Start the sign-in again.");
        goto out;
    }
    if (req->st == NULL || (rc = store_sso_get(req->st, pend.account_id, &s, &eb)) != ERR_OK) {
        log_warn("sso callback: settings unreadable error=\"%s\"", eb.msg);
        sso_page(env, resp, rc == ERR_NOTFOUND ? 404 : 503, "Sign-in is not available",
                 rc == ERR_NOTFOUND ? "Sign-in with Microsoft was turned off for this account "
                                      "meanwhile. Sign in with your user name and password."
                                    : store_words(rc));
        goto out;
    }
    rc = vault_unseal(env->ui->vault, SSO_TABLE, s.account_id, SSO_COLUMN, s.secret_sealed, &secret,
                      &eb);
    if (rc != ERR_OK) {
        log_warn("sso callback: client secret cannot be opened account=%s error=\"%s\"",
                 s.account_name, eb.msg);
        sso_page(env, resp, 500, "Sign-in is not available",
                 "memsync cannot open the sign-in app's client secret (master key). Your "
                 "memsync admin finds the cause in the server's log.");
        goto out;
    }
    rc = oidc_provider_get(env->cfg->login_url, s.tenant_id, env->cfg->ca_file, now, &prov, &eb);
    if (rc == ERR_OK)
        rc = oidc_exchange_code(prov.token_url, env->cfg->ca_file, s.client_id, secret, code,
                                pend.verifier, s.redirect_uri, &idt, &eb);
    if (rc != ERR_OK) {
        char msg[600];

        log_warn("sso callback: code not redeemed account=%s error=\"%s\"", s.account_name, eb.msg);
        snprintf(msg, sizeof msg,
                 "memsync could not redeem the sign-in with Microsoft: %s. Start the sign-in "
                 "again; if it keeps failing, your memsync admin should check the app's client "
                 "secret and redirect URI.",
                 eb.msg);
        sso_page(env, resp, 502, "Sign-in failed", msg);
        goto out;
    }
    x.issuer = prov.issuer;
    x.client_id = s.client_id;
    x.tenant = s.tenant_id;
    x.nonce = pend.nonce;
    x.now = now;
    x.skew = -1;
    rc = oidc_validate(idt, prov.jwks, &x, &cl, &why, &eb);
    if (rc == ERR_AUTH && why == OIDC_KID) {
        /* A key the cached set lacks: the tenant may have rotated its keys. */
        struct errbuf reb = {0};

        oidc_provider_clear(&prov);
        if (oidc_keys_refresh(env->cfg->login_url, s.tenant_id, env->cfg->ca_file, now, &prov,
                              &reb) == ERR_OK) {
            x.issuer = prov.issuer;
            rc = oidc_validate(idt, prov.jwks, &x, &cl, &why, &eb);
        }
    }
    if (rc != ERR_OK) {
        log_warn("sso sign-in refused account=%s reason=%s ip=%s", s.account_name,
                 oidc_fail_name(why), req->ip);
        refused_token(env, resp, why);
        goto out;
    }
    if ((role = oidc_map_role(s.role_map, &cl)) == NULL) {
        char msg[700];

        log_info("sso sign-in refused account=%s reason=no-role user=%s ip=%s", s.account_name,
                 cl.username, req->ip);
        snprintf(msg, sizeof msg,
                 "Microsoft signed you in as %.200s, but that account is in none of the groups "
                 "or app roles memsync lets in for this memsync account%s. Ask your memsync "
                 "admin to add you to a mapped group or app role.",
                 cl.username[0] != '\0' ? cl.username : cl.oid,
                 cl.groups_overage ? " (Microsoft left your groups out of the token because "
                                     "there are too many: map an app role instead)"
                                   : "");
        sso_page(env, resp, 403, "Not allowed in memsync", msg);
        goto out;
    }
    rc = sso_user(req->st, s.account_id, &cl, role, &p, &eb);
    if (rc == ERR_OK)
        rc = auth_session_start(req->st, req->ip, &p, token, &eb);
    if (rc != ERR_OK) {
        log_warn("sso sign-in failed account=%s error=\"%s\"", s.account_name, eb.msg);
        sso_page(env, resp, rc == ERR_TIMEOUT ? 503 : 500, "Sign-in failed", store_words(rc));
        goto out;
    }
    if (s.worked_at == TS_NULL && store_sso_worked(req->st, s.account_id, now, &eb) != ERR_OK)
        log_warn("sso: cannot record the first sign-in error=\"%s\"", eb.msg);
    else if (s.worked_at != TS_NULL)
        (void)store_sso_worked(req->st, s.account_id, now, NULL);
    snprintf(cookie, sizeof cookie, "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s",
             env->ui->session_cookie, token, AUTH_SESSION_TTL, req->https ? "; Secure" : "");
    httpd_response_header(resp, "Set-Cookie", cookie);
    sodium_memzero(token, sizeof token);
    sodium_memzero(cookie, sizeof cookie);
    log_info("sso signed in user=%s account=%s role=%s", p.name, s.account_name, role);
    redirect(resp, env->ui->safe_next(pend.next));
out:
    sodium_memzero(&pend, sizeof pend);
    vault_wipe(secret);
    if (idt != NULL) {
        sodium_memzero(idt, strlen(idt));
        free(idt);
    }
    oidc_claims_clear(&cl);
    oidc_provider_clear(&prov);
    account_sso_clear(&s);
}

/* ---- settings ---------------------------------------------------------------------------- */

static int
redirect_uri_ok(const char *u)
{
    static const char tail[] = "/auth/sso/callback";
    size_t n = u != NULL ? strlen(u) : 0;

    if (n < sizeof tail || n > 512 || strcmp(u + n - (sizeof tail - 1), tail) != 0)
        return 0;
    if (strncmp(u, "https://", 8) == 0)
        return 1;
    return strncmp(u, "http://127.0.0.1", 16) == 0 || strncmp(u, "http://localhost", 16) == 0 ||
           strncmp(u, "http://[::1]", 12) == 0;
}

int
ui_sso_save(struct store *st, const struct vault *v, int64_t account_id, const char *tenant,
            const char *client_id, const char *secret, const char *redirect_uri, const char *map,
            struct errbuf *eb)
{
    struct account_sso in = {0}, old = {0};
    char hint[4] = "";
    int rc;

    if (tenant == NULL || !guid_valid(tenant))
        return err_set(eb, ERR_INVAL, "the tenant must be your Entra tenant id (a GUID)");
    if (client_id == NULL || !guid_valid(client_id))
        return err_set(eb, ERR_INVAL, "the app (client) id must be a GUID");
    if (!redirect_uri_ok(redirect_uri))
        return err_set(eb, ERR_INVAL,
                       "the redirect URI must be https://YOUR-HOST/auth/sso/callback (http:// only "
                       "to loopback), as registered on the app");
    if ((rc = oidc_map_check(map, eb)) != ERR_OK)
        return rc;
    if (secret != NULL && (strlen(secret) < 1 || strlen(secret) > VAULT_SECRET_MAX))
        return err_set(eb, ERR_INVAL, "the client secret must be 1 to %d characters",
                       VAULT_SECRET_MAX);
    in.account_id = account_id;
    in.tenant_id = (char *)tenant;
    in.client_id = (char *)client_id;
    in.redirect_uri = (char *)redirect_uri;
    in.role_map = (char *)map;
    if (secret != NULL) {
        rc = vault_seal(v, SSO_TABLE, account_id, SSO_COLUMN, secret, &in.secret_sealed, eb);
        if (rc != ERR_OK)
            return rc;
        snprintf(hint, sizeof hint, "%.3s", secret);
        in.secret_hint = hint;
    } else {
        rc = store_sso_get(st, account_id, &old, eb);
        if (rc == ERR_NOTFOUND)
            rc = err_set(eb, ERR_INVAL, "a client secret is needed");
        if (rc != ERR_OK)
            return rc;
        in.secret_sealed = old.secret_sealed;
        in.secret_hint = old.secret_hint;
    }
    rc = store_sso_set(st, &in, eb);
    if (secret != NULL)
        free(in.secret_sealed);
    account_sso_clear(&old);
    if (rc == ERR_OK)
        log_info("sso settings saved account_id=%lld tenant=%s client_id=%s", (long long)account_id,
                 tenant, client_id);
    return rc;
}

static void
field(const struct ui_sso_env *env, struct buf *b, const char *label, const char *name,
      const char *value, const char *extra)
{
    buf_printf(b, "<label>%s<input type=\"text\" name=\"%s\" value=\"", label, name);
    env->ui->esc(b, value != NULL ? value : "");
    buf_printf(b, "\" %s></label>", extra);
}

static void
settings_page(const struct ui_sso_env *env, struct httpd_request *req, struct httpd_response *resp,
              const struct auth_principal *p, const char *kind, const char *msg)
{
    struct account_sso s = {0};
    struct buf *b = &resp->body;
    struct errbuf eb = {0};
    int rc = req->st != NULL ? store_sso_get(req->st, p->account_id, &s, &eb) : ERR_DB;
    int local = 1;

    env->ui->page_begin(resp, p, "Single sign-on", "/settings/sso");
    if (rc != ERR_OK && rc != ERR_NOTFOUND) {
        log_warn("sso settings unreadable error=\"%s\"", eb.msg);
        notice(env, b, "bad", store_words(rc));
        env->ui->page_end(resp);
        resp->status = rc == ERR_TIMEOUT ? 503 : 500;
        return;
    }
    if (req->st != NULL)
        store_account_local_signin_get(req->st, p->account_id, &local, NULL);
    buf_addstr(b, "<h1>Single sign-on</h1><p class=\"muted\">Let people sign in with their "
                  "Microsoft work account (Entra ID). memsync checks every ID token (signature "
                  "against your tenant's keys, issuer, audience, expiry, nonce, tenant) and "
                  "gives each person the role their groups or app roles map to; people in no "
                  "mapped group or role are refused. docs/SETUP.md says how to register the "
                  "app.</p>");
    if (msg != NULL)
        notice(env, b, kind, msg);
    if (rc == ERR_OK) {
        buf_printf(b, "<p id=\"sso-state\">On. %s</p>",
                   s.worked_at != TS_NULL ? "A sign-in through it has worked."
                                          : "No sign-in "
                                            "through it has "
                                            "worked yet.");
    }
    buf_addstr(b, "<form class=\"stack\" method=\"post\" action=\"/settings/sso\">");
    buf_printf(b, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">", p->csrf);
    field(env, b, "Tenant id", "tenant", s.tenant_id, "required");
    field(env, b, "App (client) id", "client_id", s.client_id, "required");
    buf_addstr(b, "<label>Client secret<input type=\"password\" name=\"secret\" "
                  "autocomplete=\"off\" placeholder=\"");
    if (s.secret_hint != NULL) {
        buf_addstr(b, "stored: ");
        env->ui->esc(b, s.secret_hint);
        buf_addstr(b, "... (leave empty to keep)");
    }
    buf_addstr(b, "\"></label>");
    field(env, b, "Redirect URI", "redirect_uri", s.redirect_uri,
          "required placeholder=\"https://memsync.example.com/auth/sso/callback\"");
    buf_addstr(b, "<label>Role mapping (one VALUE=admin or VALUE=viewer a line; VALUE: a group "
                  "object id or an app role)<textarea name=\"map\" rows=\"4\" required>");
    env->ui->esc(b, s.role_map != NULL ? s.role_map : "");
    buf_addstr(b, "</textarea></label><button type=\"submit\">Save</button></form>");
    if (rc == ERR_OK) {
        buf_printf(b,
                   "<h2>Password sign-in</h2><p>Local users %s sign in with a password.</p>"
                   "<form method=\"post\" action=\"/settings/sso/local\"><input type=\"hidden\" "
                   "name=\"csrf\" value=\"%s\"><input type=\"hidden\" name=\"on\" value=\"%s\">"
                   "<button type=\"submit\">%s</button></form>",
                   local ? "can" : "cannot", p->csrf, local ? "0" : "1",
                   local ? "Turn password sign-in off" : "Turn password sign-in on");
        buf_printf(b,
                   "<h2>Turn off</h2><form method=\"post\" action=\"/settings/sso/off\"><input "
                   "type=\"hidden\" name=\"csrf\" value=\"%s\"><button class=\"danger\" "
                   "type=\"submit\">Remove single sign-on</button></form>",
                   p->csrf);
    }
    env->ui->page_end(resp);
    account_sso_clear(&s);
}

void
ui_sso_settings_get(const struct ui_sso_env *env, struct httpd_request *req,
                    struct httpd_response *resp, const struct auth_principal *p)
{
    settings_page(env, req, resp, p, NULL, NULL);
}

static char *
nonempty(char *s)
{
    if (s != NULL && s[0] == '\0') {
        free(s);
        return NULL;
    }
    return s;
}

void
ui_sso_settings_post(const struct ui_sso_env *env, struct httpd_request *req,
                     struct httpd_response *resp, const struct auth_principal *p)
{
    char *tenant = env->ui->form_value(req->body, "tenant");
    char *client_id = env->ui->form_value(req->body, "client_id");
    char *secret = nonempty(env->ui->form_value(req->body, "secret"));
    char *uri = env->ui->form_value(req->body, "redirect_uri");
    char *map = env->ui->form_value(req->body, "map");
    struct errbuf eb = {0};
    int rc = req->st == NULL ? err_set(&eb, ERR_DB, "the database is not available")
                             : ui_sso_save(req->st, env->ui->vault, p->account_id, tenant,
                                           client_id, secret, uri, map, &eb);

    if (rc == ERR_OK) {
        log_info("sso settings changed by=%s", p->name);
        settings_page(env, req, resp, p, "ok",
                      "Saved. Sign out and try \"Sign in with Microsoft\" before turning "
                      "password sign-in off.");
    } else {
        settings_page(env, req, resp, p, "bad", rc == ERR_INVAL ? eb.msg : store_words(rc));
        resp->status = rc == ERR_INVAL ? 400 : 500;
    }
    if (secret != NULL) {
        sodium_memzero(secret, strlen(secret));
        free(secret);
    }
    free(tenant);
    free(client_id);
    free(uri);
    free(map);
}

void
ui_sso_off_post(const struct ui_sso_env *env, struct httpd_request *req,
                struct httpd_response *resp, const struct auth_principal *p)
{
    struct errbuf eb = {0};
    int rc = req->st == NULL ? ERR_DB : store_sso_delete(req->st, p->account_id, &eb);

    if (rc == ERR_OK)
        log_info("sso turned off by=%s", p->name);
    settings_page(env, req, resp, p, rc == ERR_OK ? "ok" : "bad",
                  rc == ERR_OK         ? "Single sign-on is off; password sign-in is on."
                  : rc == ERR_NOTFOUND ? "Single sign-on was not on."
                                       : store_words(rc));
}

void
ui_sso_local_post(const struct ui_sso_env *env, struct httpd_request *req,
                  struct httpd_response *resp, const struct auth_principal *p)
{
    char *on = env->ui->form_value(req->body, "on");
    int want = on != NULL && strcmp(on, "1") == 0;
    struct errbuf eb = {0};
    int rc =
        req->st == NULL ? ERR_DB : store_account_local_signin(req->st, p->account_id, want, &eb);

    free(on);
    if (rc == ERR_OK)
        log_info("sso local sign-in %s by=%s", want ? "on" : "off", p->name);
    settings_page(env, req, resp, p, rc == ERR_OK ? "ok" : "bad",
                  rc == ERR_OK       ? (want ? "Password sign-in is on."
                                             : "Password sign-in is off: people sign in with "
                                               "Microsoft.")
                  : rc == ERR_DENIED ? eb.msg
                                     : store_words(rc));
    if (rc == ERR_DENIED)
        resp->status = 409;
}

struct reseal {
    struct store *st;
    const struct vault *from, *to;
    struct errbuf *eb;
    int64_t ids[256];
    char *sealed[256];
    size_t n;
};

static int
reseal_cb(void *arg, int64_t account_id, const char *sealed)
{
    struct reseal *r = arg;

    if (r->n >= sizeof r->ids / sizeof r->ids[0])
        return err_set(r->eb, ERR_TOOBIG, "more than %zu single sign-on secrets",
                       sizeof r->ids / sizeof r->ids[0]);
    r->ids[r->n] = account_id;
    r->sealed[r->n] = xstrdup(sealed);
    r->n++;
    return ERR_OK;
}

int
ui_sso_reseal_all(struct store *st, const struct vault *from, const struct vault *to,
                  struct errbuf *eb)
{
    struct reseal *r = xcalloc(1, sizeof *r);
    int rc;

    r->st = st;
    r->from = from;
    r->to = to;
    r->eb = eb;
    /* Read first, write after: no statement stays open while the rows change. */
    rc = store_sso_secrets_each(st, reseal_cb, r, eb);
    for (size_t i = 0; rc == ERR_OK && i < r->n; i++) {
        char *out = NULL;

        rc = vault_reseal(from, to, SSO_TABLE, r->ids[i], SSO_COLUMN, r->sealed[i], &out, eb);
        if (rc == ERR_OK)
            rc = store_sso_set_sealed(st, r->ids[i], out, eb);
        free(out);
    }
    for (size_t i = 0; i < r->n; i++)
        free(r->sealed[i]);
    free(r);
    return rc;
}
