/* ui.h - the web UI of `memsync serve`: server-rendered HTML pages (README.md "Using it") with a
 * stylesheet and a little JavaScript compiled into the binary (www/).
 *
 * Pages: sign in/out, hardware assets (filter, sort, search, page, CSV export), asset detail,
 * software titles and their devices, clients, sync runs (live progress, per-tenant remedies),
 * integrations (the five-field form, per-check validation results, key rotation, expiry
 * warnings, sync now). Every string that a tenant or user controls goes through ui_esc().
 * Sessions: HttpOnly, SameSite=Strict cookie (Secure behind a TLS proxy). The router (router.h)
 * checks, from the route table, before a page runs: a session for every page but sign-in and
 * the static files (else a redirect to sign-in, or 401 for a form), same origin and the
 * session's CSRF token for every POST form, and the admin role for changes and for the users
 * and API keys pages. Viewers see no change forms.
 *
 * Threads: called on HTTP pool threads; no shared mutable state.
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

/* Appends s HTML-escaped (& < > " ' and control characters); NULL appends nothing. */
void ui_esc(struct buf *b, const char *s);

/* Decodes the value of key from an application/x-www-form-urlencoded body or query string.
 * Returns a malloc'd string or NULL when absent. */
char *ui_form_value(const char *body, const char *key);

#endif
