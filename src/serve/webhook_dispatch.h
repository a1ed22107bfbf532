/* webhook_dispatch.h - the webhook thread of `memsync serve` (docs/API.md "Webhooks"): turns
 * committed changes and finished sync runs into queued deliveries, and sends the due ones.
 *
 * Once a second, with its own store connection: (1) reads the change feed and the sync runs
 * after its stored position (store_webhook_position), queues one delivery per subscribed,
 * active webhook of the change's account, and moves the position, in one transaction: a
 * restart neither loses nor repeats one; (2) queues secret.expiring when an integration's
 * partner or sync secret reaches a warning level of expiry.h (30, 14, 7 days, expired), once per
 * secret and level (webhook_expiry_sent); (3) sends the due head of each subscription's queue,
 * at most FLIGHT_MAX at once and one per subscription (its order kept; a slow target delays only
 * its own), through one curl multi handle, and records each try. A failed try is retried after
 * webhook_backoff(attempts); a subscription whose every try failed for WEBHOOK_RETRY_FOR_S since
 * its last delivered one is paused with a reason the UI and API show and a log line, its queue
 * kept for the resume. A stop ends what is in flight (it stays queued: sent again after a
 * restart, so a receiver may see a Memsync-Delivery twice). Syncs never wait for any of it.
 *
 * Events: asset.created, asset.retired, asset.changed (one per changed field), client.failed
 * (a client's status became error), client.recovered (error to ok), sync.finished,
 * secret.expiring.
 * Test-only settings: MEMSYNC_WEBHOOK_BACKOFF_S (the first retry's wait, default 30) and
 * MEMSYNC_WEBHOOK_RETRY_FOR_S. Threads: start and stop from one thread.
 */
#ifndef MEMSYNC_WEBHOOK_DISPATCH_H
#define MEMSYNC_WEBHOOK_DISPATCH_H

#include <stdint.h>

#include "config.h"
#include "err.h"
#include "vault.h"

#define WEBHOOK_EVENTS                                                                             \
    "sync.finished", "client.failed", "client.recovered", "secret.expiring", "asset.created",      \
        "asset.retired", "asset.changed"
#define WEBHOOK_EVENT_COUNT 7

struct webhook_dispatch;

int webhook_dispatch_start(struct webhook_dispatch **out, const struct config *cfg,
                           const struct vault *v, struct errbuf *eb);
void webhook_dispatch_stop(struct webhook_dispatch *d); /* NULL-safe */

struct store;

/* Key rotation (`memsync key rotate`): every subscription's secret of every account sealed
 * under to instead of from, inside the caller's transaction. */
int webhook_dispatch_reseal_all(struct store *st, const struct vault *from, const struct vault *to,
                                struct errbuf *eb);

#define WEBHOOK_SECRET_TEXT 71 /* "whsec_" + 64 hex + NUL */

/* A new subscription of the account (API and UI): url checked against the outbound rules
 * (webhook.h, settings as webhook_policy_from_env), events a comma-separated list of known,
 * distinct events; a fresh secret sealed by v in the same transaction. secret gets its text,
 * to show once. ERR_INVAL with the reason for a refused URL or event list. */
int webhook_dispatch_subscribe(struct store *st, const struct vault *v, const char *ca_file,
                               int64_t account_id, const char *url, const char *events, int64_t *id,
                               char secret[WEBHOOK_SECRET_TEXT], struct errbuf *eb);

/* 1 when name is one of WEBHOOK_EVENTS. */
int webhook_event_known(const char *name);

#endif
