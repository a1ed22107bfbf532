/* ui.h - the web UI of `memsync serve`: server-rendered HTML pages (README.md "Using it") with a
 * stylesheet and a little JavaScript compiled into the binary (www/).
 *
 * Pages: sign in/out, the overview (per-client insights and what needs doing), hardware assets
 * (filter, sort, search, page, CSV export), asset detail, software titles and their devices,
 * clients, sync runs (live progress, per-tenant remedies), integrations (the five-field form,
 * per-check validation results, key rotation, expiry warnings, sync now), for admins users
 * and API keys, and the two-step sign-in pages of ui_totp.c (its routes are in this file's table;
 * the sign-in POST hands over to it after the password). Every string that a tenant or user
 * controls goes through ui_esc(). Sessions: HttpOnly, SameSite=Strict cookie (Secure behind a TLS
 * proxy). The router (router.h) checks, from the route table, before a page runs: a session for
 * every page but sign-in and the static files (else a redirect to sign-in, or 401 for a form), same
 * origin and the session's CSRF token for every POST form, and the admin role for changes and for
 * the users and API keys pages. Viewers see no change forms.
 *
 * Errors: a page never shows what a failed store call left behind. The first failed read of a
 * page is logged (route, cause) and the page becomes an error page: 503 "the database is busy"
 * (ERR_TIMEOUT: another process keeps it locked), 500 otherwise; a failed form write answers
 * the same statuses. A page that outgrows its buffer is answered by httpd as a 500 (buf.h's
 * sticky errors). Messages that name the database file go to the log only.
 *
 * Threads: called on HTTP pool threads, several at once. The only shared state is the
 * overview's table cache (OVERVIEW_SLOTS tables, under its mutex) and its single flight
 * (flight.h): one request builds an account's table per data version, the others wait for it.
 */
#ifndef MEMSYNC_UI_H
#define MEMSYNC_UI_H

#include "buf.h"
#include "httpd.h"
#include "route.h"

/* The UI's routes (a static table of n entries) for router_add; app is the struct api_app. */
const struct route *ui_routes(size_t *n);
/* Renders a refusal of the router as a page (or the sign-in redirect). */
void ui_refuse(void *app, struct httpd_request *req, struct httpd_response *resp,
               const struct auth_principal *p, const struct route_denial *d);
/* The router runs this for a session's caller before any UI route (and before its refusals):
 * the second factor's gate (ui_totp_gate), which lets sign-out and the Security routes through.
 * rt: the matched route, NULL when none. 1 when it answered (the route does not run). */
int ui_gate(void *app, struct httpd_request *req, struct httpd_response *resp,
            const struct auth_principal *p, const struct route *rt);

/* Appends s HTML-escaped (& < > " ' and control characters); NULL appends nothing. */
void ui_esc(struct buf *b, const char *s);

/* Decodes the value of key from an application/x-www-form-urlencoded body or query string.
 * Returns a malloc'd string or NULL when absent. */
char *ui_form_value(const char *body, const char *key);

#endif
