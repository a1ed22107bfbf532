/* ui_totp.h - the web UI's second factor pages (docs/SECURITY.md "Second factor"; mfa.h does
 * the work): the code or enrolment step of a sign-in, the user's "Security" page (set up, turn
 * off, recovery codes shown once) and the admin's rule and per-user reset.
 *
 * Routes (POSTs come after ui.c's same-origin check and carry a form token):
 *   GET/POST /login/totp        pending sign-in: a code or a recovery code
 *   GET/POST /login/totp/enrol  pending sign-in whose account requires a second factor
 *   GET  /security              any signed-in user
 *   POST /security/totp/start|confirm|disable   any signed-in user, for themselves
 *   POST /security/require      admin: on=1|0 for the account
 *   POST /users/ID/totp/reset   admin: a user of the account
 * The pending sign-in is a cookie (MFA_PENDING_COOKIE, Path=/login, HttpOnly, SameSite=Strict)
 * naming server-side state (mfa.h); it is never a session.
 *
 * Threads: HTTP pool threads; no shared state of its own.
 */
#ifndef MEMSYNC_UI_TOTP_H
#define MEMSYNC_UI_TOTP_H

#include "auth.h"
#include "buf.h"
#include "httpd.h"
#include "vault.h"

#define MFA_PENDING_COOKIE "memsync_pending"

/* What ui.c lends these pages (so this file needs neither ui.h nor api.h): its page frame
 * (page_begin resets resp's body; the navigation shows when p is signed in, p may be NULL),
 * escaping, form decoding, the check of a return path, the session cookie's name and the
 * vault. */
struct ui_totp_env {
    const struct vault *vault;
    const char *session_cookie;
    void (*page_begin)(struct httpd_response *resp, const struct auth_principal *p,
                       const char *title, const char *active);
    void (*page_end)(struct httpd_response *resp);
    void (*esc)(struct buf *b, const char *s);
    char *(*form_value)(const char *body, const char *key);
    const char *(*safe_next)(const char *next);
};

/* The /login/totp pages; 1 when path was one of them (resp filled), else 0. */
int ui_totp_pending(const struct ui_totp_env *env, struct httpd_request *req,
                    struct httpd_response *resp);

/* After a right password (p filled, no session yet): when the user still needs a second factor,
 * starts the pending sign-in, answers (a redirect, or an error page) and returns 1; returns 0
 * when the caller should start the session. Fails closed: a database error answers 503. */
int ui_totp_after_password(const struct ui_totp_env *env, struct httpd_request *req,
                           struct httpd_response *resp, const struct auth_principal *p,
                           const char *next);

/* The signed-in routes above, and the gate: a signed-in user whose account requires a second
 * factor and who has none reaches only /security (and sign-out) until they set one up. 1 when
 * it answered, 0 when ui.c goes on. */
int ui_totp_signed_in(const struct ui_totp_env *env, struct httpd_request *req,
                      struct httpd_response *resp, const struct auth_principal *p);

#endif
