/* store_webhooks.h - webhook subscriptions, their delivery queue and log, and the dispatcher's
 * position in the change feed and the sync runs (schemas 15, 17 and 19; docs/STORE.md "Webhooks").
 *
 * Written once for both backends through store_ops.sql_exec / sql_query. Threads, errors and
 * ownership as store.h: rows handed to callbacks are borrowed for the call. A subscription's
 * secret is stored only as a vault envelope ("webhook", id, "secret").
 */
#ifndef MEMSYNC_STORE_WEBHOOKS_H
#define MEMSYNC_STORE_WEBHOOKS_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "store.h"

#define STORE_WEBHOOKS_MAX 32 /* subscriptions per account */

struct webhook_row {
    int64_t id;
    int64_t account_id;
    const char *url;
    const char *events; /* comma-separated */
    const char *secret_sealed;
    int64_t created_at;
    int64_t paused_at; /* TS_NULL while active */
    const char *paused_reason;
    /* What was committed when it was created: it is sent what comes after, not before. */
    int64_t from_seq; /* the change feed's last seq */
    int64_t from_run; /* the newest sync run's id */
    /* The first failed try since the last delivered one, TS_NULL when the last try succeeded
     * (schema 19): a subscription failing for a day is paused. */
    int64_t failing_since;
};

struct webhook_delivery_row {
    int64_t id;
    int64_t webhook_id;
    const char *event;
    const char *body;
    const char *state; /* queued, delivered, failed */
    int64_t attempts;
    int64_t created_at;
    int64_t next_at;
    int64_t last_at;         /* TS_NULL before the first try */
    int64_t last_status;     /* 0: no HTTP answer */
    int64_t last_latency_ms; /* -1: none */
    const char *last_error;
};

/* A subscription with an empty envelope (the caller seals the secret with the new id and calls
 * store_webhook_set_sealed in the same transaction). ERR_TOOBIG past STORE_WEBHOOKS_MAX. */
int store_webhook_insert(struct store *st, int64_t account_id, const char *url, const char *events,
                         int64_t now, int64_t *id, struct errbuf *eb);
int store_webhook_set_sealed(struct store *st, int64_t id, const char *sealed, struct errbuf *eb);
/* ERR_NOTFOUND when the account has no such subscription. */
int store_webhook_delete(struct store *st, int64_t account_id, int64_t id, struct errbuf *eb);
/* paused: 1 pauses with reason, 0 resumes (its failing time is cleared and its queued
 * deliveries are due at once). ERR_NOTFOUND as above (account 0: any). */
int store_webhook_pause(struct store *st, int64_t account_id, int64_t id, int paused,
                        const char *reason, int64_t now, struct errbuf *eb);
/* The account's subscriptions (account 0: every account's), by id. */
int store_webhooks_each(struct store *st, int64_t account_id,
                        int (*cb)(void *arg, const struct webhook_row *w), void *arg,
                        struct errbuf *eb);

int store_webhook_enqueue(struct store *st, int64_t webhook_id, const char *event, const char *body,
                          int64_t now, struct errbuf *eb);
/* The head of each active subscription's queue (its oldest queued delivery) when due at now,
 * soonest first, at most limit: one subscription's deliveries go out in order. */
int store_webhook_due(struct store *st, int64_t now, size_t limit,
                      int (*cb)(void *arg, const struct webhook_delivery_row *d), void *arg,
                      struct errbuf *eb);
/* Records one try: its state afterwards, the next try's time, the answer's status (0: none),
 * latency and error (NULL when none). */
int store_webhook_result(struct store *st, int64_t id, const char *state, int64_t attempts,
                         int64_t next_at, int64_t status, int64_t latency_ms, const char *error,
                         int64_t now, struct errbuf *eb);
/* The subscription's newest deliveries first, at most limit; ERR_NOTFOUND as above. */
int store_webhook_deliveries_each(struct store *st, int64_t account_id, int64_t webhook_id,
                                  size_t limit,
                                  int (*cb)(void *arg, const struct webhook_delivery_row *d),
                                  void *arg, struct errbuf *eb);
/* Records a try's outcome on its subscription: ok clears the failing time, a failure sets it
 * unless set; since is the failing time afterwards (TS_NULL after ok). */
int store_webhook_failing(struct store *st, int64_t id, int ok, int64_t now, int64_t *since,
                          struct errbuf *eb);

struct webhook_expiry_row {
    int64_t integration_id;
    int64_t account_id;
    int64_t partner_expires; /* TS_NULL: unknown */
    int64_t sync_expires;
};

/* Every integration's secret expiries, by id. */
int store_webhook_expiries_each(struct store *st,
                                int (*cb)(void *arg, const struct webhook_expiry_row *r), void *arg,
                                struct errbuf *eb);
/* Records that the warning (integration, which, level) for the secret expiring at expires_at
 * was sent; *first is 1 when it had not been (a new secret's expiry starts afresh). */
int store_webhook_expiry_mark(struct store *st, int64_t integration_id, const char *which,
                              const char *level, int64_t expires_at, int64_t now, int *first,
                              struct errbuf *eb);

struct webhook_run_row {
    int64_t id;
    int64_t account_id;
    int64_t integration_id;
    const char *kind;
    const char *status; /* "running" until it finished */
    int64_t started_at;
    int64_t finished_at;
};

/* Sync runs with id > after_id, by id, at most limit. */
int store_webhook_runs_after(struct store *st, int64_t after_id, size_t limit,
                             int (*cb)(void *arg, const struct webhook_run_row *r), void *arg,
                             struct errbuf *eb);

/* How far the dispatcher has turned changes and finished runs into deliveries. */
int store_webhook_position(struct store *st, int64_t *change_seq, int64_t *run_id,
                           struct errbuf *eb);
/* Moves the position from (old_seq, old_run); ERR_EXISTS when it is no longer there (another
 * serve moved it first: the caller rolls back, so no event is queued twice). */
int store_webhook_set_position(struct store *st, int64_t old_seq, int64_t old_run,
                               int64_t change_seq, int64_t run_id, struct errbuf *eb);

#endif
