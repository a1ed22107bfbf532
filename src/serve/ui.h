/* ui.h - the web UI of `memsync serve`: server-rendered HTML pages (README.md "Using it") with a
 * stylesheet and a little JavaScript compiled into the binary (www/).
 *
 * Pages: sign in/out, hardware assets (filter, sort, search, page, CSV export), asset detail,
 * software titles and their devices, clients, sync runs (live progress, per-tenant remedies),
 * integrations (the five-field form, per-check validation results, key rotation, expiry
 * warnings, sync now), and the two-step sign-in pages of ui_totp.c (its routes and the hooks
 * that call it: the sign-in POST, before /login, and after authentication). Every string that a
 * tenant or user controls goes through ui_esc().
 * Sessions: HttpOnly, SameSite=Strict cookie (Secure behind a TLS proxy); every POST form
 * carries the session's CSRF token and is refused without it. Viewers see no change forms.
 *
 * Threads: called on HTTP pool threads; no shared mutable state.
 */
#ifndef MEMSYNC_UI_H
#define MEMSYNC_UI_H

#include "buf.h"
#include "httpd.h"

/* Handles every path that is not the API (app is the struct api_app). */
void ui_handle(void *app, struct httpd_request *req, struct httpd_response *resp);

/* Appends s HTML-escaped (& < > " ' and control characters); NULL appends nothing. */
void ui_esc(struct buf *b, const char *s);

/* Decodes the value of key from an application/x-www-form-urlencoded body or query string.
 * Returns a malloc'd string or NULL when absent. */
char *ui_form_value(const char *body, const char *key);

#endif
