/* api_webhooks.h - webhook subscriptions in the REST API (docs/API.md "Webhooks"), admins only:
 * GET/POST /api/v1/webhooks, DELETE /api/v1/webhooks/{id}, POST /api/v1/webhooks/{id}/resume,
 * GET /api/v1/webhooks/{id}/deliveries (the delivery log, newest first).
 *
 * POST takes {"url": "https://...", "events": ["asset.created", ...]} and answers 201 with the
 * subscription and its "secret", shown this once (stored only sealed by the vault). A URL the
 * outbound rules refuse (webhook.h) or an unknown event is 400. Auth, threads: as api.h.
 */
#ifndef MEMSYNC_API_WEBHOOKS_H
#define MEMSYNC_API_WEBHOOKS_H

#include <stddef.h>

#include "route.h"

#define API_WEBHOOK_DELIVERIES 100 /* deliveries the log answers */

const struct route *api_webhooks_routes(size_t *n);

#endif
