/* ui_webhooks.h - the web UI's webhook page for admins (docs/API.md "Webhooks"):
 *   GET  /webhooks               subscriptions, their state and newest deliveries, a new one
 *   POST /webhooks               subscribe: url, one checkbox per event; the secret is shown on
 *                                the answer page only
 *   POST /webhooks/ID/remove     remove a subscription
 *   POST /webhooks/ID/resume     resume a paused one
 * The router checks the session, the role and the CSRF token of every POST. ui.c lends the page
 * frame through struct ui_totp_env (ui_totp.h), the same as the second factor's pages.
 * Threads: HTTP pool threads; no state of its own.
 */
#ifndef MEMSYNC_UI_WEBHOOKS_H
#define MEMSYNC_UI_WEBHOOKS_H

#include <stdint.h>

#include "auth.h"
#include "httpd.h"
#include "ui_totp.h"

void ui_webhooks_get(const struct ui_totp_env *env, struct httpd_request *req,
                     struct httpd_response *resp, const struct auth_principal *p,
                     const char *ca_file);
void ui_webhooks_post(const struct ui_totp_env *env, struct httpd_request *req,
                      struct httpd_response *resp, const struct auth_principal *p,
                      const char *ca_file);
void ui_webhooks_remove_post(const struct ui_totp_env *env, struct httpd_request *req,
                             struct httpd_response *resp, const struct auth_principal *p,
                             int64_t id);
void ui_webhooks_resume_post(const struct ui_totp_env *env, struct httpd_request *req,
                             struct httpd_response *resp, const struct auth_principal *p,
                             int64_t id);

#endif
