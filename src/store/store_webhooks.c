/* store_webhooks.c - webhook subscriptions, deliveries and the dispatcher's position
 * (store_webhooks.h), for every backend through store_ops.sql_exec / sql_query. */
#include "store_webhooks.h"

#include <inttypes.h>
#include <string.h>

#include "clock.h"
#include "store_int.h"

#define I(v)                                                                                       \
    {                                                                                              \
        NULL, SC_INT, (v), NULL                                                                    \
    }
#define T(v)                                                                                       \
    {                                                                                              \
        NULL, SC_TEXT, 0, (v)                                                                      \
    }

static int64_t
cell_i(const struct store_cell *c, int64_t if_null)
{
    return c->kind == SC_INT ? c->i : if_null;
}

static const char *
cell_s(const struct store_cell *c)
{
    return c->kind == SC_TEXT ? c->s : NULL;
}

static int
count_cb(void *arg, const struct store_cell *cells, size_t n)
{
    *(int64_t *)arg = n > 0 ? cell_i(&cells[0], 0) : 0;
    return 0;
}

int
store_webhook_insert(struct store *st, int64_t account_id, const char *url, const char *events,
                     int64_t now, int64_t *id, struct errbuf *eb)
{
    const struct store_cell a[] = {I(account_id)};
    const struct store_cell b[] = {I(account_id), T(url), T(events), I(now)};
    int64_t n = 0;
    int rc;

    rc = st->ops->sql_query(st, "SELECT count(*) FROM webhook WHERE account_id = ?1", a, 1,
                            count_cb, &n, eb);
    if (rc != ERR_OK)
        return rc;
    if (n >= STORE_WEBHOOKS_MAX)
        return err_set(eb, ERR_TOOBIG, "an account has at most %d webhooks", STORE_WEBHOOKS_MAX);
    return st->ops->sql_exec(st,
                             "INSERT INTO webhook (account_id, url, events, secret_sealed, "
                             "created_at, from_seq, from_run) VALUES (?1, ?2, ?3, '', ?4, "
                             "COALESCE((SELECT max(seq) FROM change_event), 0), "
                             "COALESCE((SELECT max(id) FROM sync_run), 0)) RETURNING id",
                             b, 4, NULL, id, eb);
}

int
store_webhook_set_sealed(struct store *st, int64_t id, const char *sealed, struct errbuf *eb)
{
    const struct store_cell a[] = {T(sealed), I(id)};

    return st->ops->sql_exec(st, "UPDATE webhook SET secret_sealed = ?1 WHERE id = ?2", a, 2, NULL,
                             NULL, eb);
}

int
store_webhook_delete(struct store *st, int64_t account_id, int64_t id, struct errbuf *eb)
{
    const struct store_cell a[] = {I(id), I(account_id)};
    int64_t changed = 0;
    int rc = st->ops->sql_exec(st, "DELETE FROM webhook WHERE id = ?1 AND account_id = ?2", a, 2,
                               &changed, NULL, eb);

    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "webhook %" PRId64 " does not exist", id);
    return rc;
}

int
store_webhook_pause(struct store *st, int64_t account_id, int64_t id, int paused,
                    const char *reason, int64_t now, struct errbuf *eb)
{
    const struct store_cell a[] = {I(id), I(account_id), I(now), T(reason)};
    int64_t changed = 0;
    int rc;

    if (paused)
        rc = st->ops->sql_exec(st,
                               "UPDATE webhook SET paused_at = ?3, paused_reason = ?4 WHERE id = "
                               "?1 AND (account_id = ?2 OR ?2 = 0)",
                               a, 4, &changed, NULL, eb);
    else
        rc = st->ops->sql_exec(st,
                               "UPDATE webhook SET paused_at = NULL, paused_reason = NULL, "
                               "failing_since = NULL WHERE id = ?1 AND (account_id = ?2 OR ?2 = 0)",
                               a, 2, &changed, NULL, eb);
    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_NOTFOUND, "webhook %" PRId64 " does not exist", id);
    /* A resumed subscription's queue is tried again at once, with a new day to succeed. */
    if (rc == ERR_OK && !paused) {
        const struct store_cell b[] = {I(id), I(now)};

        rc = st->ops->sql_exec(st,
                               "UPDATE webhook_delivery SET next_at = ?2 WHERE webhook_id = ?1 "
                               "AND state = 'queued' AND next_at > ?2",
                               b, 2, NULL, NULL, eb);
    }
    return rc;
}

struct hook_walk {
    int (*cb)(void *arg, const struct webhook_row *w);
    void *arg;
};

static int
hook_cb(void *arg, const struct store_cell *c, size_t n)
{
    struct hook_walk *x = arg;
    struct webhook_row w;

    if (n < 11)
        return ERR_DB;
    w.id = cell_i(&c[0], 0);
    w.account_id = cell_i(&c[1], 0);
    w.url = cell_s(&c[2]);
    w.events = cell_s(&c[3]);
    w.secret_sealed = cell_s(&c[4]);
    w.created_at = cell_i(&c[5], TS_NULL);
    w.paused_at = cell_i(&c[6], TS_NULL);
    w.paused_reason = cell_s(&c[7]);
    w.from_seq = cell_i(&c[8], 0);
    w.from_run = cell_i(&c[9], 0);
    w.failing_since = cell_i(&c[10], TS_NULL);
    return x->cb(x->arg, &w);
}

int
store_webhooks_each(struct store *st, int64_t account_id,
                    int (*cb)(void *arg, const struct webhook_row *w), void *arg, struct errbuf *eb)
{
    const struct store_cell a[] = {I(account_id)};
    struct hook_walk x = {cb, arg};

    return st->ops->sql_query(st,
                              "SELECT id, account_id, url, events, secret_sealed, created_at, "
                              "paused_at, paused_reason, from_seq, from_run, failing_since FROM "
                              "webhook WHERE "
                              "account_id = ?1 OR "
                              "?1 = 0 ORDER BY id",
                              a, 1, hook_cb, &x, eb);
}

int
store_webhook_enqueue(struct store *st, int64_t webhook_id, const char *event, const char *body,
                      int64_t now, struct errbuf *eb)
{
    const struct store_cell a[] = {I(webhook_id), T(event), T(body), I(now)};

    return st->ops->sql_exec(st,
                             "INSERT INTO webhook_delivery (webhook_id, event, body, created_at, "
                             "next_at) VALUES (?1, ?2, ?3, ?4, ?4)",
                             a, 4, NULL, NULL, eb);
}

struct del_walk {
    int (*cb)(void *arg, const struct webhook_delivery_row *d);
    void *arg;
};

#define DELIVERY_COLS                                                                              \
    "d.id, d.webhook_id, d.event, d.body, d.state, d.attempts, d.created_at, d.next_at, "          \
    "d.last_at, d.last_status, d.last_latency_ms, d.last_error"

static int
del_cb(void *arg, const struct store_cell *c, size_t n)
{
    struct del_walk *x = arg;
    struct webhook_delivery_row d;

    if (n < 12)
        return ERR_DB;
    d.id = cell_i(&c[0], 0);
    d.webhook_id = cell_i(&c[1], 0);
    d.event = cell_s(&c[2]);
    d.body = cell_s(&c[3]);
    d.state = cell_s(&c[4]);
    d.attempts = cell_i(&c[5], 0);
    d.created_at = cell_i(&c[6], TS_NULL);
    d.next_at = cell_i(&c[7], TS_NULL);
    d.last_at = cell_i(&c[8], TS_NULL);
    d.last_status = cell_i(&c[9], 0);
    d.last_latency_ms = cell_i(&c[10], -1);
    d.last_error = cell_s(&c[11]);
    return x->cb(x->arg, &d);
}

int
store_webhook_due(struct store *st, int64_t now, size_t limit,
                  int (*cb)(void *arg, const struct webhook_delivery_row *d), void *arg,
                  struct errbuf *eb)
{
    const struct store_cell a[] = {I(now), I((int64_t)limit)};
    struct del_walk x = {cb, arg};

    return st->ops->sql_query(st,
                              "SELECT " DELIVERY_COLS " FROM webhook w JOIN webhook_delivery d "
                              "ON d.id = (SELECT min(q.id) FROM webhook_delivery q WHERE "
                              "q.webhook_id = w.id AND q.state = 'queued') WHERE w.paused_at IS "
                              "NULL AND d.next_at <= ?1 ORDER BY d.next_at, d.id LIMIT ?2",
                              a, 2, del_cb, &x, eb);
}

int
store_webhook_result(struct store *st, int64_t id, const char *state, int64_t attempts,
                     int64_t next_at, int64_t status, int64_t latency_ms, const char *error,
                     int64_t now, struct errbuf *eb)
{
    const struct store_cell a[] = {I(id),     T(state),      I(attempts), I(next_at),
                                   I(status), I(latency_ms), T(error),    I(now)};

    return st->ops->sql_exec(st,
                             "UPDATE webhook_delivery SET state = ?2, attempts = ?3, next_at = ?4, "
                             "last_status = ?5, last_latency_ms = ?6, last_error = ?7, last_at = "
                             "?8 WHERE id = ?1",
                             a, 8, NULL, NULL, eb);
}

int
store_webhook_deliveries_each(struct store *st, int64_t account_id, int64_t webhook_id,
                              size_t limit,
                              int (*cb)(void *arg, const struct webhook_delivery_row *d), void *arg,
                              struct errbuf *eb)
{
    const struct store_cell a[] = {I(webhook_id), I(account_id), I((int64_t)limit)};
    struct del_walk x = {cb, arg};
    int64_t n = 0;
    int rc;

    rc = st->ops->sql_query(st, "SELECT count(*) FROM webhook WHERE id = ?1 AND account_id = ?2", a,
                            2, count_cb, &n, eb);
    if (rc != ERR_OK)
        return rc;
    if (n == 0)
        return err_set(eb, ERR_NOTFOUND, "webhook %" PRId64 " does not exist", webhook_id);
    return st->ops->sql_query(st,
                              "SELECT " DELIVERY_COLS " FROM webhook_delivery d WHERE "
                              "d.webhook_id = ?1 AND ?2 > 0 ORDER BY d.id DESC LIMIT ?3",
                              a, 3, del_cb, &x, eb);
}

struct pos {
    int64_t seq, run;
    int found;
};

static int
pos_cb(void *arg, const struct store_cell *c, size_t n)
{
    struct pos *p = arg;

    if (n < 2)
        return ERR_DB;
    p->seq = cell_i(&c[0], 0);
    p->run = cell_i(&c[1], 0);
    p->found = 1;
    return 0;
}

int
store_webhook_position(struct store *st, int64_t *change_seq, int64_t *run_id, struct errbuf *eb)
{
    struct pos p = {0, 0, 0};
    int rc = st->ops->sql_query(st, "SELECT change_seq, run_id FROM webhook_position WHERE id = 1",
                                NULL, 0, pos_cb, &p, eb);

    if (rc == ERR_OK && !p.found)
        rc = err_set(eb, ERR_DB, "the webhook position is missing");
    *change_seq = p.seq;
    *run_id = p.run;
    return rc;
}

int
store_webhook_set_position(struct store *st, int64_t old_seq, int64_t old_run, int64_t change_seq,
                           int64_t run_id, struct errbuf *eb)
{
    const struct store_cell a[] = {I(change_seq), I(run_id), I(old_seq), I(old_run)};
    int64_t changed = 0;
    int rc = st->ops->sql_exec(st,
                               "UPDATE webhook_position SET change_seq = ?1, run_id = ?2 WHERE "
                               "id = 1 AND change_seq = ?3 AND run_id = ?4",
                               a, 4, &changed, NULL, eb);

    if (rc == ERR_OK && changed == 0)
        rc = err_set(eb, ERR_EXISTS, "another process moved the webhook position");
    return rc;
}

struct run_walk {
    int (*cb)(void *arg, const struct webhook_run_row *r);
    void *arg;
};

static int
run_cb(void *arg, const struct store_cell *c, size_t n)
{
    struct run_walk *x = arg;
    struct webhook_run_row r;

    if (n < 7)
        return ERR_DB;
    r.id = cell_i(&c[0], 0);
    r.account_id = cell_i(&c[1], 0);
    r.integration_id = cell_i(&c[2], 0);
    r.kind = cell_s(&c[3]);
    r.status = cell_s(&c[4]);
    r.started_at = cell_i(&c[5], TS_NULL);
    r.finished_at = cell_i(&c[6], TS_NULL);
    return x->cb(x->arg, &r);
}

int
store_webhook_runs_after(struct store *st, int64_t after_id, size_t limit,
                         int (*cb)(void *arg, const struct webhook_run_row *r), void *arg,
                         struct errbuf *eb)
{
    const struct store_cell a[] = {I(after_id), I((int64_t)limit)};
    struct run_walk x = {cb, arg};

    return st->ops->sql_query(st,
                              "SELECT id, account_id, integration_id, kind, status, started_at, "
                              "finished_at FROM sync_run WHERE id > ?1 ORDER BY id LIMIT ?2",
                              a, 2, run_cb, &x, eb);
}

static int
since_cb(void *arg, const struct store_cell *c, size_t n)
{
    *(int64_t *)arg = n > 0 ? cell_i(&c[0], TS_NULL) : TS_NULL;
    return 0;
}

int
store_webhook_failing(struct store *st, int64_t id, int ok, int64_t now, int64_t *since,
                      struct errbuf *eb)
{
    const struct store_cell a[] = {I(id), I(now)};
    int rc;

    *since = TS_NULL;
    if (ok)
        return st->ops->sql_exec(st, "UPDATE webhook SET failing_since = NULL WHERE id = ?1", a, 1,
                                 NULL, NULL, eb);
    rc = st->ops->sql_exec(st,
                           "UPDATE webhook SET failing_since = COALESCE(failing_since, ?2) "
                           "WHERE id = ?1",
                           a, 2, NULL, NULL, eb);
    if (rc == ERR_OK)
        rc = st->ops->sql_query(st, "SELECT failing_since FROM webhook WHERE id = ?1", a, 1,
                                since_cb, since, eb);
    return rc;
}

struct exp_walk {
    int (*cb)(void *arg, const struct webhook_expiry_row *r);
    void *arg;
};

static int
exp_cb(void *arg, const struct store_cell *c, size_t n)
{
    struct exp_walk *x = arg;
    struct webhook_expiry_row r;

    if (n < 4)
        return ERR_DB;
    r.integration_id = cell_i(&c[0], 0);
    r.account_id = cell_i(&c[1], 0);
    r.partner_expires = cell_i(&c[2], TS_NULL);
    r.sync_expires = cell_i(&c[3], TS_NULL);
    return x->cb(x->arg, &r);
}

int
store_webhook_expiries_each(struct store *st,
                            int (*cb)(void *arg, const struct webhook_expiry_row *r), void *arg,
                            struct errbuf *eb)
{
    struct exp_walk x = {cb, arg};

    return st->ops->sql_query(st,
                              "SELECT id, account_id, partner_secret_expires, "
                              "sync_secret_expires FROM integration ORDER BY id",
                              NULL, 0, exp_cb, &x, eb);
}

int
store_webhook_expiry_mark(struct store *st, int64_t integration_id, const char *which,
                          const char *level, int64_t expires_at, int64_t now, int *first,
                          struct errbuf *eb)
{
    const struct store_cell a[] = {I(integration_id), T(which), T(level), I(expires_at), I(now)};
    int64_t changed = 0;
    int rc = st->ops->sql_exec(st,
                               "INSERT INTO webhook_expiry_sent (integration_id, which, level, "
                               "expires_at, sent_at) VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO "
                               "NOTHING",
                               a, 5, &changed, NULL, eb);

    *first = rc == ERR_OK && changed > 0;
    return rc;
}
