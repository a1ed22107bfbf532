/* ui_totp.c - second factor pages of the web UI (see ui_totp.h). */
#include "ui_totp.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "clock.h"
#include "log.h"
#include "mfa.h"
#include "store.h"
#include "totp.h"
#include "vault.h"

#define ISSUER "memsync"

/* ---- small helpers ----------------------------------------------------------------------- */

static void
notice(const struct ui_totp_env *env, struct buf *b, const char *kind, const char *msg)
{
    buf_printf(b, "<div class=\"notice %s\">", kind);
    env->esc(b, msg);
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
hidden_csrf(struct buf *b, const struct auth_principal *p)
{
    buf_printf(b, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">", p->csrf);
}

/* The form's token equals want (constant time). */
static int
form_token_ok(const struct ui_totp_env *env, const struct httpd_request *req, const char *want)
{
    char *got = env->form_value(req->body, "csrf");
    int ok = got != NULL && want[0] != '\0' && strlen(got) == strlen(want) &&
             sodium_memcmp(got, want, strlen(want)) == 0;

    free(got);
    return ok;
}

static void
set_cookie(struct httpd_response *resp, const struct httpd_request *req, const char *name,
           const char *value, const char *path, int max_age)
{
    char cookie[256];

    snprintf(cookie, sizeof cookie, "%s=%s; Path=%s; HttpOnly; SameSite=Strict; Max-Age=%d%s", name,
             value, path, max_age, req->https ? "; Secure" : "");
    httpd_response_header(resp, "Set-Cookie", cookie);
}

static void
free_secret(char *s)
{
    if (s != NULL) {
        sodium_memzero(s, strlen(s));
        free(s);
    }
}

/* A small page with one message (and the way back to sign-in). */
static void
message_page(const struct ui_totp_env *env, struct httpd_response *resp, int status,
             const char *title, const char *kind, const char *msg, const char *link_html)
{
    env->page_begin(resp, NULL, title, NULL);
    buf_addstr(&resp->body, "<div class=\"login panel\"><h1>");
    env->esc(&resp->body, title);
    buf_addstr(&resp->body, "</h1>");
    notice(env, &resp->body, kind, msg);
    buf_addstr(&resp->body, link_html);
    buf_addstr(&resp->body, "</div>");
    env->page_end(resp);
    resp->status = status;
}

/* The secret, its QR code and the confirm form (action). */
static void
setup_form(const struct ui_totp_env *env, struct buf *b, const struct auth_principal *p,
           const char *secret, const char *action, const char *error)
{
    char *uri = NULL, *svg = NULL;
    struct errbuf eb = {0};

    buf_addstr(b, "<h2>Set up an authenticator app</h2>");
    if (error != NULL)
        notice(env, b, "bad", error);
    buf_addstr(b, "<p>Scan this code with an authenticator app (Microsoft Authenticator, Google "
                  "Authenticator, 1Password, ...), or type the key by hand. Then enter the "
                  "6-digit code it shows.</p>");
    if (totp_uri(ISSUER, p->name, secret, &uri, &eb) == ERR_OK &&
        totp_qr_svg(uri, &svg, &eb) == ERR_OK)
        buf_printf(b, "<div class=\"qr\">%s</div>", svg);
    buf_addstr(b, "<p>Key: <code id=\"totp-secret\">");
    env->esc(b, secret);
    buf_printf(b,
               "</code> <small class=\"muted\">(time-based, SHA-1, %d digits, %d seconds)</small>"
               "</p><form class=\"stack\" method=\"post\" action=\"%s\">",
               TOTP_DIGITS, TOTP_STEP, action);
    hidden_csrf(b, p);
    buf_addstr(b, "<label>Code from the app<input type=\"text\" name=\"code\" "
                  "inputmode=\"numeric\" autocomplete=\"one-time-code\" required autofocus>"
                  "</label><button type=\"submit\">Turn on two-step sign-in</button></form>");
    free_secret(uri);
    free(svg);
}

/* The recovery codes, once. */
static void
codes_list(struct buf *b, char codes[TOTP_RECOVERY_CODES][TOTP_RECOVERY_LEN])
{
    buf_addstr(b, "<div class=\"notice ok\">Two-step sign-in is on.</div>"
                  "<h2>Recovery codes</h2><p>Each of these codes signs you in once when you do "
                  "not have your app. Keep them somewhere safe: <strong>they are shown only "
                  "now</strong>.</p><ul class=\"codes\" id=\"recovery-codes\">");
    for (int i = 0; i < TOTP_RECOVERY_CODES; i++)
        buf_printf(b, "<li><code>%s</code></li>", codes[i]);
    buf_addstr(b, "</ul>");
}

/* ---- pending sign-in --------------------------------------------------------------------- */

static void
code_page(const struct ui_totp_env *env, struct httpd_response *resp,
          const struct auth_principal *p, const char *error)
{
    struct buf *b = &resp->body;

    env->page_begin(resp, NULL, "Two-step sign-in", NULL);
    buf_addstr(b, "<div class=\"login panel\"><h1>Two-step sign-in</h1>");
    if (error != NULL)
        notice(env, b, "bad", error);
    buf_addstr(b, "<p>Enter the code your authenticator app shows for <strong>");
    env->esc(b, p->name);
    buf_addstr(b, "</strong>, or one of your recovery codes.</p>"
                  "<form class=\"stack\" method=\"post\" action=\"/login/totp\">");
    hidden_csrf(b, p);
    buf_addstr(b, "<label>Code<input type=\"text\" name=\"code\" inputmode=\"numeric\" "
                  "autocomplete=\"one-time-code\" required autofocus></label>"
                  "<button type=\"submit\">Sign in</button></form>"
                  "<p class=\"muted\"><a href=\"/login\">Start over</a></p></div>");
    env->page_end(resp);
}

static void
enrol_page(const struct ui_totp_env *env, struct httpd_request *req, struct httpd_response *resp,
           const struct auth_principal *p, const char *error)
{
    char secret[TOTP_SECRET_MAX];
    struct errbuf eb = {0};
    struct buf *b = &resp->body;

    if (mfa_enrol_secret(req->st, env->vault, p->user_id, secret, &eb) != ERR_OK) {
        message_page(env, resp, 500, "Two-step sign-in", "bad", env->store_msg(req, eb.code, &eb),
                     "<p><a href=\"/login\">Sign in again</a></p>");
        return;
    }
    env->page_begin(resp, NULL, "Set up two-step sign-in", NULL);
    buf_addstr(b, "<div class=\"panel\"><h1>Set up two-step sign-in</h1>");
    notice(env, b, "warn",
           "Your account requires a second step at sign-in. Set it up now to continue.");
    setup_form(env, b, p, secret, "/login/totp/enrol", error);
    buf_addstr(b, "<p class=\"muted\"><a href=\"/login\">Start over</a></p></div>");
    env->page_end(resp);
    sodium_memzero(secret, sizeof secret);
}

/* Signs the pending user in: the session cookie, the pending one cleared. */
static int
finish_sign_in(const struct ui_totp_env *env, struct httpd_request *req,
               struct httpd_response *resp, struct auth_principal *p, const char *pending,
               struct errbuf *eb)
{
    char token[AUTH_TOKEN_HEX + 1];
    int rc = auth_session_start(req->st, req->ip, p, token, eb);

    if (rc != ERR_OK)
        return rc;
    mfa_pending_end(pending);
    set_cookie(resp, req, env->session_cookie, token, "/", AUTH_SESSION_TTL);
    set_cookie(resp, req, MFA_PENDING_COOKIE, "", "/login", 0);
    sodium_memzero(token, sizeof token);
    return ERR_OK;
}

/* A wrong code: the page again, or sign-in from the start after too many. */
static void
wrong_code(const struct ui_totp_env *env, struct httpd_request *req, struct httpd_response *resp,
           const struct auth_principal *p, enum mfa_stage stage, const char *pending, int rc,
           const char *msg)
{
    if (rc == ERR_THROTTLED || mfa_pending_failed(pending)) {
        mfa_pending_end(pending);
        set_cookie(resp, req, MFA_PENDING_COOKIE, "", "/login", 0);
        message_page(env, resp, rc == ERR_THROTTLED ? 429 : 401, "Two-step sign-in", "bad",
                     rc == ERR_THROTTLED ? msg : "Too many wrong codes; sign in again.",
                     "<p><a href=\"/login\">Sign in again</a></p>");
        return;
    }
    if (stage == MFA_ENROL)
        enrol_page(env, req, resp, p, msg);
    else
        code_page(env, resp, p, msg);
    resp->status = 401;
}

void
ui_totp_pending(const struct ui_totp_env *env, struct httpd_request *req,
                struct httpd_response *resp, enum mfa_stage want)
{
    const char *pending;
    int get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;
    struct auth_principal p;
    enum mfa_stage stage;
    char next[MFA_NEXT_MAX];
    struct errbuf eb = {0};
    char *code = NULL;
    int rc, recovery = 0;

    pending = httpd_cookie(req, MFA_PENDING_COOKIE);
    if (req->st == NULL) {
        message_page(env, resp, 503, "Two-step sign-in", "bad", "The database is not available.",
                     "<p><a href=\"/login\">Back</a></p>");
        return;
    }
    if (mfa_pending_get(pending, &p, &stage, next, &eb) != ERR_OK) {
        if (get) {
            redirect(resp, "/login");
        } else {
            set_cookie(resp, req, MFA_PENDING_COOKIE, "", "/login", 0);
            message_page(env, resp, 401, "Two-step sign-in", "bad",
                         env->store_msg(req, eb.code, &eb),
                         "<p><a href=\"/login\">Sign in again</a></p>");
        }
        return;
    }
    if (stage != want) {
        redirect(resp, stage == MFA_ENROL ? "/login/totp/enrol" : "/login/totp");
        return;
    }
    if (get) {
        if (stage == MFA_ENROL)
            enrol_page(env, req, resp, &p, NULL);
        else
            code_page(env, resp, &p, NULL);
        return;
    }
    if (!form_token_ok(env, req, p.csrf)) {
        message_page(env, resp, 403, "Refused", "bad",
                     "This form was refused: reload the page and try again.",
                     "<p><a href=\"/login\">Sign in again</a></p>");
        return;
    }
    code = env->form_value(req->body, "code");
    if (stage == MFA_CODE) {
        rc = mfa_check(req->st, env->vault, req->ip, &p, code, &recovery, &eb);
        if (rc == ERR_OK && (rc = finish_sign_in(env, req, resp, &p, pending, &eb)) == ERR_OK)
            redirect(resp, recovery ? "/security?recovery=1" : env->safe_next(next));
        else if (rc == ERR_AUTH || rc == ERR_THROTTLED)
            wrong_code(env, req, resp, &p, stage, pending, rc, eb.msg);
        else
            message_page(env, resp, 500, "Two-step sign-in", "bad",
                         env->store_msg(req, eb.code, &eb),
                         "<p><a href=\"/login\">Sign in again</a></p>");
    } else {
        char codes[TOTP_RECOVERY_CODES][TOTP_RECOVERY_LEN];

        rc = auth_limit_login_allowed(req->ip, p.name, clock_now())
                 ? mfa_enrol_confirm(req->st, env->vault, p.user_id, code, codes, &eb)
                 : err_set(&eb, ERR_THROTTLED, "too many failed sign-ins; wait %d minutes",
                           AUTH_FAIL_WINDOW / 60);
        if (rc == ERR_AUTH)
            auth_limit_login_failed(req->ip, p.name, clock_now());
        if (rc == ERR_OK && (rc = finish_sign_in(env, req, resp, &p, pending, &eb)) == ERR_OK) {
            env->page_begin(resp, &p, "Two-step sign-in is on", NULL);
            buf_addstr(&resp->body, "<div class=\"panel\"><h1>Two-step sign-in is on</h1>");
            codes_list(&resp->body, codes);
            buf_addstr(&resp->body, "<p><a class=\"button\" href=\"");
            env->esc(&resp->body, env->safe_next(next));
            buf_addstr(&resp->body, "\">Continue</a></p></div>");
            env->page_end(resp);
        } else if (rc == ERR_AUTH || rc == ERR_THROTTLED) {
            wrong_code(env, req, resp, &p, stage, pending, rc, eb.msg);
        } else {
            message_page(env, resp, 500, "Two-step sign-in", "bad",
                         env->store_msg(req, eb.code, &eb),
                         "<p><a href=\"/login\">Sign in again</a></p>");
        }
        sodium_memzero(codes, sizeof codes);
    }
    free_secret(code);
}

int
ui_totp_after_password(const struct ui_totp_env *env, struct httpd_request *req,
                       struct httpd_response *resp, const struct auth_principal *p,
                       const char *next)
{
    char token[AUTH_TOKEN_HEX + 1];
    enum mfa_stage stage;
    struct errbuf eb = {0};

    (void)env;
    if (mfa_stage_of(req->st, p->user_id, &stage, &eb) != ERR_OK) {
        log_warn("sign-in: second factor state unreadable user=%s err=%s", p->name, eb.msg);
        message_page(env, resp, 503, "Sign in", "bad",
                     "Sign-in is not available right now (database error).",
                     "<p><a href=\"/login\">Back</a></p>");
        return 1;
    }
    if (stage == MFA_NONE)
        return 0;
    if (mfa_pending_start(p, stage, next, token, &eb) != ERR_OK) {
        message_page(env, resp, 429, "Sign in", "bad", eb.msg,
                     "<p><a href=\"/login\">Back</a></p>");
        return 1;
    }
    set_cookie(resp, req, MFA_PENDING_COOKIE, token, "/login", MFA_PENDING_TTL);
    sodium_memzero(token, sizeof token);
    log_info("password accepted, second factor %s user=%s ip=%s",
             stage == MFA_ENROL ? "enrolment required" : "asked", p->name, req->ip);
    redirect(resp, stage == MFA_ENROL ? "/login/totp/enrol" : "/login/totp");
    return 1;
}

/* ---- signed in --------------------------------------------------------------------------- */

struct user_list {
    const struct ui_totp_env *env;
    struct buf *b;
    const struct auth_principal *p;
};

static int
user_row_cb(void *arg, const struct store_cell *c, size_t n)
{
    struct user_list *u = arg;
    const struct ui_totp_env *env = u->env;

    if (n < 5)
        return 0;
    buf_addstr(u->b, "<tr><td>");
    env->esc(u->b, c[1].s);
    buf_addstr(u->b, "</td><td>");
    env->esc(u->b, c[2].s);
    buf_printf(u->b, "</td><td>%s</td><td>", c[4].i ? "on" : "off");
    if (c[4].i) {
        buf_printf(u->b,
                   "<form method=\"post\" action=\"/users/%" PRId64 "/totp/reset\">"
                   "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
                   "<button class=\"ghost\" type=\"submit\">Reset</button></form>",
                   c[0].i, u->p->csrf);
    }
    buf_addstr(u->b, "</td></tr>");
    return 0;
}

static void
security_page(const struct ui_totp_env *env, struct httpd_request *req, struct httpd_response *resp,
              const struct auth_principal *p, const char *kind, const char *msg)
{
    struct user_totp t;
    struct errbuf eb = {0};
    struct buf *b = &resp->body;
    char ts[32];

    (void)env;
    env->page_begin(resp, p, "Security", "/security");
    buf_addstr(b, "<h1>Security</h1>");
    if (msg != NULL)
        notice(env, b, kind, msg);
    else if (httpd_arg(req, "recovery") != NULL)
        notice(env, b, "warn",
               "You signed in with a recovery code, which is now used up. If you lost your "
               "app, turn two-step sign-in off and set it up again for new codes.");
    if (store_totp_get(req->st, p->user_id, &t, &eb) != ERR_OK) {
        notice(env, b, "bad", env->store_msg(req, eb.code, &eb));
        env->page_end(resp);
        return;
    }
    buf_addstr(b, "<section class=\"panel\"><h2>Two-step sign-in</h2>");
    if (t.enrolled_at != TS_NULL) {
        clock_fmt(t.enrolled_at, ts, sizeof ts);
        buf_printf(b,
                   "<p id=\"totp-status\">On since %s; %zu recovery codes left.</p>"
                   "<form class=\"stack\" method=\"post\" action=\"/security/totp/disable\">",
                   ts, t.ncodes);
        buf_printf(b, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">", p->csrf);
        buf_addstr(b, "<label>Current code (or a recovery code) to turn it off<input "
                      "type=\"text\" name=\"code\" autocomplete=\"one-time-code\" required>"
                      "</label><button class=\"ghost\" type=\"submit\">Turn off</button>"
                      "</form>");
    } else {
        if (t.require)
            notice(env, b, "warn",
                   "This account requires two-step sign-in: set it up to continue using "
                   "memsync.");
        buf_addstr(b, "<p id=\"totp-status\">Off.</p><form method=\"post\" "
                      "action=\"/security/totp/start\">");
        buf_printf(b, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">", p->csrf);
        buf_addstr(b, "<button type=\"submit\">Set up an authenticator app</button></form>");
    }
    buf_addstr(b, "</section>");
    if (p->role == AUTH_ADMIN) {
        struct list_query q = {0};
        struct user_list ul = {env, b, p};

        buf_printf(b,
                   "<section class=\"panel\"><h2>Every user of this account</h2><p>Two-step "
                   "sign-in is <strong id=\"totp-required\">%s</strong> for local users.</p>"
                   "<form method=\"post\" action=\"/security/require\">"
                   "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
                   "<input type=\"hidden\" name=\"on\" value=\"%d\">"
                   "<button type=\"submit\">%s</button></form>",
                   t.require ? "required" : "optional", p->csrf, t.require ? 0 : 1,
                   t.require ? "Make it optional" : "Require it");
        buf_addstr(b, "<table><thead><tr><th>User</th><th>Role</th><th>Two-step</th><th></th>"
                      "</tr></thead><tbody>");
        q.entity = "users";
        q.account_id = p->account_id;
        if (store_list_each(req->st, &q, user_row_cb, &ul, &eb) != ERR_OK)
            notice(env, b, "bad", env->store_msg(req, eb.code, &eb));
        buf_addstr(b, "</tbody></table></section>");
    }
    user_totp_clear(&t);
    env->page_end(resp);
}

static void
admin_reset(const struct ui_totp_env *env, struct httpd_request *req, struct httpd_response *resp,
            const struct auth_principal *p, int64_t id)
{
    struct user_totp t;
    struct errbuf eb = {0};
    int rc = store_totp_get(req->st, id, &t, &eb);

    /* Another account's user is "not found", as everywhere. */
    if (rc == ERR_OK && t.account_id != p->account_id)
        rc = err_set(&eb, ERR_NOTFOUND, "there is no such user");
    user_totp_clear(&t);
    if (rc == ERR_OK)
        rc = store_totp_clear(req->st, id, &eb);
    if (rc == ERR_OK) {
        log_info("second factor reset user_id=%" PRId64 " by=%s", id, p->name);
        security_page(env, req, resp, p, "ok", "Two-step sign-in of that user was reset.");
        return;
    }
    security_page(env, req, resp, p, "bad", env->store_msg(req, eb.code, &eb));
    resp->status = rc == ERR_NOTFOUND ? 404 : 500;
}

static void
refused(const struct ui_totp_env *env, struct httpd_response *resp, const struct auth_principal *p,
        int status, const char *msg)
{
    env->page_begin(resp, p, "Refused", NULL);
    notice(env, &resp->body, "bad", msg);
    env->page_end(resp);
    resp->status = status;
}

int
ui_totp_gate(const struct ui_totp_env *env, struct httpd_request *req, struct httpd_response *resp,
             const struct auth_principal *p)
{
    struct user_totp t;
    struct errbuf eb = {0};
    int rc, gate;

    if (p->user_id == 0 || req->st == NULL)
        return 0;
    /* A read of the user's row per page, failing closed. */
    if ((rc = store_totp_get(req->st, p->user_id, &t, &eb)) != ERR_OK) {
        log_warn("ui: a database call failed route=%s error=\"%s\"", req->path, eb.msg);
        refused(env, resp, p, rc == ERR_TIMEOUT ? 503 : 500,
                rc == ERR_TIMEOUT ? "The database is busy; try again in a moment."
                                  : "The database is not available.");
        return 1;
    }
    gate = t.require && t.enrolled_at == TS_NULL;
    user_totp_clear(&t);
    if (gate) {
        /* People signing in with Microsoft have Entra's second factor, and no password here. */
        struct user_row u = {0};

        if (store_user_get(req->st, p->name, &u, NULL) == ERR_OK && u.password_hash != NULL &&
            strcmp(u.password_hash, STORE_SSO_NO_PASSWORD) == 0)
            gate = 0;
        user_row_clear(&u);
    }
    if (!gate)
        return 0;
    if (strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0)
        redirect(resp, "/security");
    else
        refused(env, resp, p, 403,
                "This account requires two-step sign-in: set it up on the Security page first.");
    return 1;
}

void
ui_totp_security_get(const struct ui_totp_env *env, struct httpd_request *req,
                     struct httpd_response *resp, const struct auth_principal *p)
{
    security_page(env, req, resp, p, NULL, NULL);
}

void
ui_totp_require_post(const struct ui_totp_env *env, struct httpd_request *req,
                     struct httpd_response *resp, const struct auth_principal *p)
{
    char *on = env->form_value(req->body, "on");
    int want = on != NULL && strcmp(on, "1") == 0;
    struct errbuf eb = {0};
    int rc = store_account_require_totp(req->st, p->account_id, want, &eb);

    if (rc == ERR_OK)
        log_info("two-step sign-in %s account_id=%" PRId64 " by=%s", want ? "required" : "optional",
                 p->account_id, p->name);
    security_page(env, req, resp, p, rc == ERR_OK ? "ok" : "bad",
                  rc == ERR_OK ? "Saved." : env->store_msg(req, eb.code, &eb));
    if (rc != ERR_OK)
        resp->status = rc == ERR_TIMEOUT ? 503 : 500;
    free(on);
}

void
ui_totp_reset_post(const struct ui_totp_env *env, struct httpd_request *req,
                   struct httpd_response *resp, const struct auth_principal *p, int64_t user_id)
{
    admin_reset(env, req, resp, p, user_id);
}

void
ui_totp_start_post(const struct ui_totp_env *env, struct httpd_request *req,
                   struct httpd_response *resp, const struct auth_principal *p)
{
    char secret[TOTP_SECRET_MAX];
    struct errbuf eb = {0};

    if (mfa_enrol_secret(req->st, env->vault, p->user_id, secret, &eb) != ERR_OK) {
        security_page(env, req, resp, p, "bad", env->store_msg(req, eb.code, &eb));
    } else {
        env->page_begin(resp, p, "Security", "/security");
        buf_addstr(&resp->body, "<h1>Security</h1><section class=\"panel\">");
        setup_form(env, &resp->body, p, secret, "/security/totp/confirm", NULL);
        buf_addstr(&resp->body, "</section>");
        env->page_end(resp);
    }
    sodium_memzero(secret, sizeof secret);
}

void
ui_totp_confirm_post(const struct ui_totp_env *env, struct httpd_request *req,
                     struct httpd_response *resp, const struct auth_principal *p)
{
    char codes[TOTP_RECOVERY_CODES][TOTP_RECOVERY_LEN];
    char *code = env->form_value(req->body, "code");
    struct errbuf eb = {0};
    int rc = mfa_enrol_confirm(req->st, env->vault, p->user_id, code, codes, &eb);

    if (rc == ERR_OK) {
        env->page_begin(resp, p, "Security", "/security");
        buf_addstr(&resp->body, "<h1>Security</h1><section class=\"panel\">");
        codes_list(&resp->body, codes);
        buf_addstr(&resp->body, "<p><a href=\"/security\">Done</a></p></section>");
        env->page_end(resp);
    } else if (rc == ERR_AUTH) {
        char secret[TOTP_SECRET_MAX];

        if (mfa_enrol_secret(req->st, env->vault, p->user_id, secret, &eb) == ERR_OK) {
            env->page_begin(resp, p, "Security", "/security");
            buf_addstr(&resp->body, "<h1>Security</h1><section class=\"panel\">");
            setup_form(env, &resp->body, p, secret, "/security/totp/confirm",
                       "That code is wrong or expired; try the current one.");
            buf_addstr(&resp->body, "</section>");
            env->page_end(resp);
        } else {
            security_page(env, req, resp, p, "bad", env->store_msg(req, eb.code, &eb));
        }
        sodium_memzero(secret, sizeof secret);
        resp->status = 400;
    } else {
        security_page(env, req, resp, p, "bad", env->store_msg(req, eb.code, &eb));
        resp->status = rc == ERR_EXISTS ? 409 : 400;
    }
    sodium_memzero(codes, sizeof codes);
    free_secret(code);
}

void
ui_totp_disable_post(const struct ui_totp_env *env, struct httpd_request *req,
                     struct httpd_response *resp, const struct auth_principal *p)
{
    char *code = env->form_value(req->body, "code");
    struct errbuf eb = {0};
    int rc = mfa_disable(req->st, env->vault, req->ip, p, code, &eb);

    security_page(env, req, resp, p, rc == ERR_OK ? "ok" : "bad",
                  rc == ERR_OK ? "Two-step sign-in is off." : env->store_msg(req, eb.code, &eb));
    if (rc != ERR_OK)
        resp->status = rc == ERR_THROTTLED ? 429 : rc == ERR_AUTH ? 401 : 400;
    free_secret(code);
}
