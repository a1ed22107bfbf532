/* api_changes.h - GET /api/v1/changes, the change feed (docs/API.md "Change feed"): what
 * changed in the caller's account since a cursor, in commit order.
 *
 * Query: cursor (from next_cursor; absent: the start; "now": the newest position, no rows),
 * limit 1..API_CHANGES_LIMIT_MAX (default API_CHANGES_LIMIT_DEFAULT), client (a client id),
 * kind (comma-separated change kinds). Answer: {"data": [change...], "next_cursor": "...",
 * "has_more": bool}; 400 for a bad parameter. Auth and threads: as api.h (any reader).
 */
#ifndef MEMSYNC_API_CHANGES_H
#define MEMSYNC_API_CHANGES_H

#include <stddef.h>

#include "route.h"

#define API_CHANGES_LIMIT_DEFAULT 100
#define API_CHANGES_LIMIT_MAX     500

/* The feed's routes (a static table of n entries) for router_add. */
const struct route *api_changes_routes(size_t *n);

#endif
