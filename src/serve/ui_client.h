/* ui_client.h - the web UI's page of one client (README.md "Using it"): status, last sync, the
 * problem with its remedy and the remedy's action as a button (admin-consent link), exclude or
 * include, rename, sync this tenant now, its insight figures each linking to the hardware list
 * filtered to the devices it counts, its devices, its software and its recent sync results.
 *
 * Routes (entries of ui.c's route table; the router checks session, origin, CSRF and role):
 *   GET  /clients/ID   any signed-in user; the change forms only for admins
 *   POST /clients/ID   admin: action=exclude|include|rename (name=)|sync, then back to the page
 * Changes go through the same functions as the API and the CLI (store_client_update,
 * scheduler_request_tenant); the figures are api_client_json's.
 *
 * Threads: HTTP pool threads; no shared state of its own.
 */
#ifndef MEMSYNC_UI_CLIENT_H
#define MEMSYNC_UI_CLIENT_H

#include "auth.h"
#include "buf.h"
#include "httpd.h"
#include "route.h"

/* What ui.c lends the page (so this file needs neither ui.h nor ui.c's page state): its frame
 * (page_begin resets resp's body), escaping and form decoding. */
struct ui_client_env {
    void (*page_begin)(struct httpd_response *resp, const struct auth_principal *p,
                       const char *title, const char *active);
    void (*page_end)(struct httpd_response *resp);
    void (*esc)(struct buf *b, const char *s);
    char *(*form_value)(const char *body, const char *key);
};

void ui_client_page(const struct ui_client_env *env, const struct route_call *c);
void ui_client_post(const struct ui_client_env *env, const struct route_call *c);

#endif
