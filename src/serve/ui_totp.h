/* ui_totp.h - the web UI's second factor pages (docs/SECURITY.md "Second factor"; mfa.h does
 * the work): the code or enrolment step of a sign-in, the user's "Security" page (set up, turn
 * off, recovery codes shown once) and the admin's rule and per-user reset.
 *
 * Routes (entries of ui.c's route table; the router checks the origin of every POST):
 *   GET/POST /login/totp        pending sign-in: a code or a recovery code
 *   GET/POST /login/totp/enrol  pending sign-in whose account requires a second factor
 *   GET  /security              any signed-in user
 *   POST /security/totp/start|confirm|disable   any signed-in user, for themselves
 *   POST /security/require      admin: on=1|0 for the account
 *   POST /users/ID/totp/reset   admin: a user of the account
 * The pending sign-in is a cookie (MFA_PENDING_COOKIE, Path=/login, HttpOnly, SameSite=Strict)
 * naming server-side state (mfa.h); it is never a session. So the /login/totp routes have role
 * AUTH_NONE and check here what the router checks for the others: the pending cookie, and the
 * pending sign-in's form token on a POST. The signed-in routes are checked by the router (session,
 * CSRF token, role) like every other page.
 *
 * Threads: HTTP pool threads; no shared state of its own.
 */
#ifndef MEMSYNC_UI_TOTP_H
#define MEMSYNC_UI_TOTP_H

#include "auth.h"
#include "buf.h"
#include "httpd.h"
#include "mfa.h"
#include "vault.h"

#define MFA_PENDING_COOKIE "memsync_pending"

/* What ui.c lends these pages (so this file needs neither ui.h nor api.h): its page frame
 * (page_begin resets resp's body; the navigation shows when p is signed in, p may be NULL),
 * escaping, form decoding, the check of a return path, what a page says of a failed store call
 * (a database's message goes to the log instead), the session cookie's name and the vault. */
struct ui_totp_env {
    const struct vault *vault;
    const char *session_cookie;
    void (*page_begin)(struct httpd_response *resp, const struct auth_principal *p,
                       const char *title, const char *active);
    void (*page_end)(struct httpd_response *resp);
    void (*esc)(struct buf *b, const char *s);
    char *(*form_value)(const char *body, const char *key);
    const char *(*safe_next)(const char *next);
    const char *(*store_msg)(const struct httpd_request *req, int rc, const struct errbuf *eb);
};

/* A /login/totp page: want is MFA_CODE (/login/totp) or MFA_ENROL (/login/totp/enrol); GET/HEAD
 * shows the form, POST checks the code and on success starts the session. */
void ui_totp_pending(const struct ui_totp_env *env, struct httpd_request *req,
                     struct httpd_response *resp, enum mfa_stage want);

/* After a right password (p filled, no session yet): when the user still needs a second factor,
 * starts the pending sign-in, answers (a redirect, or an error page) and returns 1; returns 0
 * when the caller should start the session. Fails closed: a database error answers 503. */
int ui_totp_after_password(const struct ui_totp_env *env, struct httpd_request *req,
                           struct httpd_response *resp, const struct auth_principal *p,
                           const char *next);

/* The gate, run by the router (ui_gate) before every UI route of a signed-in user but sign-out
 * and the routes above: a user whose account requires a second factor and who has none is sent
 * to /security (GET) or refused (403) until they set one up. 1 when it answered, 0 when the
 * route goes on. Fails closed: an unreadable row answers 503 or 500. */
int ui_totp_gate(const struct ui_totp_env *env, struct httpd_request *req,
                 struct httpd_response *resp, const struct auth_principal *p);

/* The signed-in routes (p: the router's caller). */
void ui_totp_security_get(const struct ui_totp_env *env, struct httpd_request *req,
                          struct httpd_response *resp, const struct auth_principal *p);
void ui_totp_start_post(const struct ui_totp_env *env, struct httpd_request *req,
                        struct httpd_response *resp, const struct auth_principal *p);
void ui_totp_confirm_post(const struct ui_totp_env *env, struct httpd_request *req,
                          struct httpd_response *resp, const struct auth_principal *p);
void ui_totp_disable_post(const struct ui_totp_env *env, struct httpd_request *req,
                          struct httpd_response *resp, const struct auth_principal *p);
void ui_totp_require_post(const struct ui_totp_env *env, struct httpd_request *req,
                          struct httpd_response *resp, const struct auth_principal *p);
void ui_totp_reset_post(const struct ui_totp_env *env, struct httpd_request *req,
                        struct httpd_response *resp, const struct auth_principal *p,
                        int64_t user_id);

#endif
