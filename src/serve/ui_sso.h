/* ui_sso.h - the web UI's single sign-on with Microsoft Entra ID (docs/SECURITY.md "Single
 * sign-on"; oidc.h does the protocol): the "Sign in with Microsoft" buttons of the sign-in page,
 * the start and the callback of a sign-in, and the admin's settings page.
 *
 * Routes (entries of ui.c's route table):
 *   GET  /auth/sso?account=NAME[&next=PATH]   anyone: starts a sign-in (redirect to Microsoft)
 *   GET  /auth/sso/callback?code&state         anyone: Microsoft's answer; a session on success
 *   GET  /settings/sso                         admin: the account's settings
 *   POST /settings/sso                         admin: save (tenant, app id, secret, redirect
 *                                              URI, role mapping)
 *   POST /settings/sso/off                     admin: remove them (local sign-in back on)
 *   POST /settings/sso/local                   admin: local sign-in on=1|0
 * The start and the callback have no caller (AUTH_NONE): the pending sign-in is a random cookie
 * (OIDC_COOKIE, Path=/auth/sso, HttpOnly, SameSite=Lax so it comes back on Microsoft's
 * top-level redirect) naming state held in serve's memory (oidc.h), used once. The callback is
 * a GET from another site by design; it changes nothing unless the state, the cookie and a
 * fully valid ID token agree. Every refusal is a page saying what happened and what to do; no
 * token, code or secret is shown or logged.
 *
 * Threads: HTTP pool threads; no shared state of its own (oidc.h locks its own).
 */
#ifndef MEMSYNC_UI_SSO_H
#define MEMSYNC_UI_SSO_H

#include "auth.h"
#include "buf.h"
#include "config.h"
#include "httpd.h"
#include "ui_totp.h"

/* What ui.c lends (its page frame and helpers, as for ui_totp) and the settings memsync reads
 * (login URL and CA file). */
struct ui_sso_env {
    const struct ui_totp_env *ui;
    const struct config *cfg;
};

/* The sign-in page's "Sign in with Microsoft" links, one per account with SSO (none when the
 * store cannot be read: the password form still shows). */
void ui_sso_login_buttons(struct store *st, struct buf *b, const char *next,
                          void (*esc)(struct buf *b, const char *s));

void ui_sso_start(const struct ui_sso_env *env, struct httpd_request *req,
                  struct httpd_response *resp);
void ui_sso_callback(const struct ui_sso_env *env, struct httpd_request *req,
                     struct httpd_response *resp);
void ui_sso_settings_get(const struct ui_sso_env *env, struct httpd_request *req,
                         struct httpd_response *resp, const struct auth_principal *p);
void ui_sso_settings_post(const struct ui_sso_env *env, struct httpd_request *req,
                          struct httpd_response *resp, const struct auth_principal *p);
void ui_sso_off_post(const struct ui_sso_env *env, struct httpd_request *req,
                     struct httpd_response *resp, const struct auth_principal *p);
void ui_sso_local_post(const struct ui_sso_env *env, struct httpd_request *req,
                       struct httpd_response *resp, const struct auth_principal *p);

/* Checks and stores an account's settings (the CLI and the settings page): tenant a GUID,
 * client_id a GUID, redirect_uri https:// (or http:// to loopback) ending in /auth/sso/callback,
 * map as oidc_map_check; secret NULL keeps the stored one (there must be one). The secret is
 * sealed for ("account_sso", account_id, "client_secret"). */
int ui_sso_save(struct store *st, const struct vault *v, int64_t account_id, const char *tenant,
                const char *client_id, const char *secret, const char *redirect_uri,
                const char *map, struct errbuf *eb);
/* Re-seals every stored client secret from one vault key to another (`memsync key rotate`; the
 * caller holds the transaction). */
int ui_sso_reseal_all(struct store *st, const struct vault *from, const struct vault *to,
                      struct errbuf *eb);

#endif
