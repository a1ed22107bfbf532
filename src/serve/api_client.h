/* api_client.h - one client of the REST API (docs/API.md "Clients"):
 *   GET   /api/v1/clients/{id}        the client, its insight figures, the hardware list query
 *                                     behind each figure, and its recent sync results
 *   PATCH /api/v1/clients/{id}        {"included": bool, "name": string|null} (admin): what
 *                                     `memsync clients exclude|include|rename` do, through the
 *                                     same store_client_update
 *   POST  /api/v1/clients/{id}/sync   a full sync of this tenant alone (admin), 202
 * The route entries are in api.c's table; the router checks roles and CSRF before these run.
 * Also the figures the client page of the web UI shows (ui_client.c), so both say the same.
 * Threads: HTTP pool threads; no state of its own.
 */
#ifndef MEMSYNC_API_CLIENT_H
#define MEMSYNC_API_CLIENT_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "route.h"
#include "store.h"

/* The stale figure's days on the client page and in its answer (the overview's). */
#define API_CLIENT_STALE_DAYS 30
/* Recent sync results shown. */
#define API_CLIENT_RESULTS 10

/* The client (the clients list's row) with "insight" (insight_to_json's figures without the
 * client, null when it has no active device), "figure_links" (figure -> hardware list query
 * arguments) and "recent_syncs". ERR_NOTFOUND when it is not the account's. */
int api_client_json(struct store *st, int64_t account, int64_t id, int64_t now, json_t **out,
                    struct errbuf *eb);

void api_client_get(const struct route_call *c);
void api_client_patch(const struct route_call *c);
void api_client_sync(const struct route_call *c);

#endif
