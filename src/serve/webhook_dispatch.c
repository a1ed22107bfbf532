/* webhook_dispatch.c - the webhook thread of serve (webhook_dispatch.h). */
#include "webhook_dispatch.h"

#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "changes.h"
#include "clock.h"
#include "expiry.h"
#include "log.h"
#include "mem.h"
#include "store.h"
#include "store_webhooks.h"
#include "webhook.h"

#define FLIGHT_MAX    8 /* deliveries in flight at once, at most one per subscription */
#define FEED_BATCH    500
#define RUNS_BATCH    100
#define HOOKS_MAX     1024
#define BACKOFF_DEF   30
#define SENT_MAX      256 /* expiry warnings known to be sent (a cache of webhook_expiry_sent) */
#define STEP_MS       1000
#define STOP_GRACE_MS 3000 /* a stop waits this long for deliveries in flight */

static const char *const known_events[] = {WEBHOOK_EVENTS};

int
webhook_event_known(const char *name)
{
    for (size_t i = 0; name != NULL && i < WEBHOOK_EVENT_COUNT; i++)
        if (strcmp(name, known_events[i]) == 0)
            return 1;
    return 0;
}

struct hook {
    int64_t id, account_id;
    char *url, *events, *sealed;
    int paused;
    int64_t created_at, from_seq, from_run;
};

/* One delivery in flight; owned by the dispatcher thread. */
struct flight {
    int64_t id, webhook_id, attempts;
    char *event;
    struct webhook_xfer *x;
};

struct sent {
    int64_t integration_id, expires_at;
    char which[8], level[8];
};

struct webhook_dispatch {
    const struct config *cfg;
    const struct vault *v;
    pthread_t thread;
    pthread_mutex_t mu;
    int stop;
    CURLM *multi;
    struct store *st;
    struct hook *hooks;
    size_t nhooks;
    struct flight fl[FLIGHT_MAX];
    size_t nfl;
    struct sent sent[SENT_MAX];
    size_t nsent;
    int64_t backoff_s, retry_for_s;
    struct webhook_policy policy;
    char hosts[1024];
};

static int64_t
env_int(const char *name, int64_t def, int64_t lo, int64_t hi)
{
    const char *s = config_env(name);
    char *end = NULL;
    long long v;

    if (s == NULL)
        return def;
    errno = 0;
    v = strtoll(s, &end, 10);
    return errno == 0 && end != s && *end == '\0' && v >= lo && v <= hi ? (int64_t)v : def;
}

static void
hooks_clear(struct webhook_dispatch *d)
{
    for (size_t i = 0; i < d->nhooks; i++) {
        free(d->hooks[i].url);
        free(d->hooks[i].events);
        free(d->hooks[i].sealed);
    }
    free(d->hooks);
    d->hooks = NULL;
    d->nhooks = 0;
}

static int
hook_cb(void *arg, const struct webhook_row *w)
{
    struct webhook_dispatch *d = arg;
    struct hook *h;

    if (d->nhooks >= HOOKS_MAX)
        return 0;
    d->hooks = xrealloc(d->hooks, (d->nhooks + 1) * sizeof *d->hooks);
    h = &d->hooks[d->nhooks++];
    h->id = w->id;
    h->account_id = w->account_id;
    h->url = xstrdup(w->url != NULL ? w->url : "");
    h->events = xstrdup(w->events != NULL ? w->events : "");
    h->sealed = xstrdup(w->secret_sealed != NULL ? w->secret_sealed : "");
    h->paused = w->paused_at != TS_NULL;
    h->created_at = w->created_at;
    h->from_seq = w->from_seq;
    h->from_run = w->from_run;
    return 0;
}

static int
subscribed(const struct hook *h, const char *event)
{
    size_t n = strlen(event);

    for (const char *p = h->events; p != NULL && *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);

        if (len == n && strncmp(p, event, n) == 0)
            return 1;
        p = comma != NULL ? comma + 1 : NULL;
    }
    return 0;
}

/* Whether h was subscribed when what it would be told of happened: a change by its seq, a run by
 * its id or its end; seq < 0 is something happening now. The dispatcher may be behind (serve
 * just started, a batch at a time), so a new subscription must not be sent what was committed
 * before it. */
static int
after_start(const struct hook *h, int64_t seq, int64_t run_id, int64_t finished_at)
{
    if (seq < 0)
        return 1;
    if (seq > 0)
        return seq > h->from_seq;
    return run_id > h->from_run || (finished_at != TS_NULL && finished_at > h->created_at);
}

/* Queues event for every active subscription of the account that began before it (seq for a
 * change; run_id and finished_at for a run); data is borrowed. */
static int
fan_out(struct webhook_dispatch *d, int64_t account_id, const char *event, json_t *data,
        int64_t seq, int64_t run_id, int64_t finished_at, struct errbuf *eb)
{
    char at[32], *body = NULL;
    json_t *j;
    int rc = ERR_OK;

    clock_fmt(clock_now(), at, sizeof at);
    for (size_t i = 0; rc == ERR_OK && i < d->nhooks; i++) {
        const struct hook *h = &d->hooks[i];

        if (h->account_id != account_id || h->paused || !subscribed(h, event) ||
            !after_start(h, seq, run_id, finished_at))
            continue;
        if (body == NULL) {
            j = json_pack("{s:s, s:s, s:O}", "event", event, "at", at, "data", data);
            body = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;
            json_decref(j);
            if (body == NULL)
                return err_set(eb, ERR_NOMEM, "out of memory");
        }
        rc = store_webhook_enqueue(d->st, h->id, event, body, clock_now(), eb);
    }
    free(body);
    return rc;
}

struct feed_walk {
    struct webhook_dispatch *d;
    struct errbuf *eb;
    int64_t last;
    size_t n;
};

static int
change_cb(void *arg, const struct change_row *c)
{
    struct feed_walk *w = arg;
    const char *event = NULL;
    json_t *data;
    int rc;

    w->last = c->seq;
    w->n++;
    if (strcmp(c->kind, "asset.created") == 0 || strcmp(c->kind, "asset.retired") == 0 ||
        strcmp(c->kind, "asset.changed") == 0)
        event = c->kind;
    else if (strcmp(c->kind, "client.status") == 0 && c->new_value != NULL &&
             strcmp(c->new_value, "error") == 0)
        event = "client.failed";
    else if (strcmp(c->kind, "client.status") == 0 && c->old_value != NULL &&
             strcmp(c->old_value, "error") == 0)
        event = "client.recovered";
    if (event == NULL)
        return 0;
    data = changes_row_json(c);
    if (data == NULL)
        return ERR_NOMEM;
    rc = fan_out(w->d, c->account_id, event, data, c->seq, 0, TS_NULL, w->eb);
    json_decref(data);
    return rc;
}

struct run_walk {
    struct webhook_dispatch *d;
    struct errbuf *eb;
    int64_t last;
    int blocked; /* a running run: later ones wait for it, so none is skipped */
};

static int
run_cb(void *arg, const struct webhook_run_row *r)
{
    struct run_walk *w = arg;
    char s[32], f[32];
    json_t *data;
    int rc;

    if (w->blocked || r->status == NULL || strcmp(r->status, "running") == 0) {
        w->blocked = 1;
        return 0;
    }
    w->last = r->id;
    clock_fmt(r->started_at, s, sizeof s);
    clock_fmt(r->finished_at, f, sizeof f);
    data = json_pack("{s:I, s:I, s:s?, s:s, s:s, s:s?}", "id", (json_int_t)r->id, "integration_id",
                     (json_int_t)r->integration_id, "kind", r->kind, "status", r->status,
                     "started_at", s, "finished_at", r->finished_at != TS_NULL ? f : NULL);
    if (data == NULL)
        return ERR_NOMEM;
    rc = fan_out(w->d, r->account_id, "sync.finished", data, 0, r->id, r->finished_at, w->eb);
    json_decref(data);
    return rc;
}

static int
any_change(void *arg, const struct change_row *c)
{
    (void)c;
    *(int *)arg = 1;
    return 0;
}

static int
any_run(void *arg, const struct webhook_run_row *r)
{
    if (r->status != NULL && strcmp(r->status, "running") != 0)
        *(int *)arg = 1;
    return 0;
}

/* 1 when a change or a finished run follows the position, 0 when none, or a negative ERR_*. */
static int
pending(struct webhook_dispatch *d, int64_t seq, int64_t run, struct errbuf *eb)
{
    struct change_query q = {0};
    int any = 0, rc;

    q.after_seq = seq;
    q.limit = 1;
    rc = store_changes_each(d->st, &q, any_change, &any, NULL, eb);
    if (rc == ERR_OK && !any)
        rc = store_webhook_runs_after(d->st, run, 1, any_run, &any, eb);
    return rc != ERR_OK ? rc : any;
}

static int
sent_known(const struct webhook_dispatch *d, int64_t iid, const char *which, const char *level,
           int64_t expires_at)
{
    for (size_t i = 0; i < d->nsent; i++)
        if (d->sent[i].integration_id == iid && d->sent[i].expires_at == expires_at &&
            strcmp(d->sent[i].which, which) == 0 && strcmp(d->sent[i].level, level) == 0)
            return 1;
    return 0;
}

static void
sent_remember(struct webhook_dispatch *d, int64_t iid, const char *which, const char *level,
              int64_t expires_at)
{
    struct sent *x;

    if (d->nsent >= SENT_MAX)
        d->nsent = 0; /* only a cache: the table answers again */
    x = &d->sent[d->nsent++];
    x->integration_id = iid;
    x->expires_at = expires_at;
    snprintf(x->which, sizeof x->which, "%s", which);
    snprintf(x->level, sizeof x->level, "%s", level);
}

struct exp_list {
    struct webhook_expiry_row v[HOOKS_MAX];
    size_t n;
};

static int
exp_cb(void *arg, const struct webhook_expiry_row *r)
{
    struct exp_list *l = arg;

    if (l->n < HOOKS_MAX)
        l->v[l->n++] = *r;
    return 0;
}

/* secret.expiring: once per secret (its expiry) and warning level of expiry.h, the levels
 * `memsync status` warns with; webhook_expiry_sent keeps what was sent across restarts. */
static int
expiry_one(struct webhook_dispatch *d, const struct webhook_expiry_row *r, const char *which,
           int64_t expires_at, int64_t now, struct errbuf *eb)
{
    struct expiry e;
    const char *level;
    char at[32], msg[512];
    json_t *data;
    int first = 0, rc;

    expiry_check(expires_at, now, &e);
    if (e.level != EXPIRY_WARN_30 && e.level != EXPIRY_WARN_14 && e.level != EXPIRY_WARN_7 &&
        e.level != EXPIRY_EXPIRED)
        return ERR_OK;
    level = expiry_level_name(e.level);
    if (sent_known(d, r->integration_id, which, level, expires_at))
        return ERR_OK;
    clock_fmt(expires_at, at, sizeof at);
    expiry_message(&e, strcmp(which, "sync") == 0 ? "Sync App" : "Partner App", r->integration_id,
                   which, msg, sizeof msg);
    data = json_pack("{s:I, s:s, s:s, s:I, s:s, s:s}", "integration_id",
                     (json_int_t)r->integration_id, "secret", which, "expires_at", at, "days_left",
                     (json_int_t)e.days_left, "level", level, "message", msg);
    if (data == NULL)
        return err_set(eb, ERR_NOMEM, "out of memory");
    if ((rc = store_tx_begin(d->st, eb)) != ERR_OK)
        goto out;
    rc = store_webhook_expiry_mark(d->st, r->integration_id, which, level, expires_at, now, &first,
                                   eb);
    if (rc == ERR_OK && first)
        rc = fan_out(d, r->account_id, "secret.expiring", data, -1, 0, TS_NULL, eb);
    if (rc == ERR_OK)
        rc = store_tx_commit(d->st, eb);
    else
        store_tx_rollback(d->st);
    if (rc == ERR_OK) {
        sent_remember(d, r->integration_id, which, level, expires_at);
        if (first)
            log_info("webhook secret.expiring integration=%" PRId64 " secret=%s level=%s "
                     "days_left=%" PRId64,
                     r->integration_id, which, level, e.days_left);
    }
out:
    json_decref(data);
    return rc;
}

static int
expiry_step(struct webhook_dispatch *d, struct errbuf *eb)
{
    struct exp_list *l = xcalloc(1, sizeof *l);
    int64_t now = clock_now();
    int rc = store_webhook_expiries_each(d->st, exp_cb, l, eb);

    for (size_t i = 0; rc == ERR_OK && i < l->n; i++) {
        rc = expiry_one(d, &l->v[i], "partner", l->v[i].partner_expires, now, eb);
        if (rc == ERR_OK)
            rc = expiry_one(d, &l->v[i], "sync", l->v[i].sync_expires, now, eb);
    }
    free(l);
    return rc;
}

/* Turns what was committed since the position into deliveries, in one transaction. */
static int
queue_step(struct webhook_dispatch *d, struct errbuf *eb)
{
    struct change_query q = {0};
    struct feed_walk fw = {d, eb, 0, 0};
    struct run_walk rw = {d, eb, 0, 0};
    int64_t seq = 0, run = 0;
    int rc;

    /* The subscriptions, for this step and the sends after it. */
    hooks_clear(d);
    if ((rc = store_webhooks_each(d->st, 0, hook_cb, d, eb)) != ERR_OK ||
        (rc = expiry_step(d, eb)) != ERR_OK)
        return rc;
    /* Nothing new (the common case): no write transaction. */
    if ((rc = store_webhook_position(d->st, &seq, &run, eb)) != ERR_OK ||
        (rc = pending(d, seq, run, eb)) <= 0)
        return rc;
    if ((rc = store_tx_begin(d->st, eb)) != ERR_OK)
        return rc;
    if ((rc = store_webhook_position(d->st, &seq, &run, eb)) != ERR_OK)
        goto out;
    q.account_id = 0;
    q.after_seq = seq;
    q.limit = FEED_BATCH;
    fw.last = seq;
    rw.last = run;
    rc = store_changes_each(d->st, &q, change_cb, &fw, NULL, eb);
    if (rc == ERR_OK)
        rc = store_webhook_runs_after(d->st, run, RUNS_BATCH, run_cb, &rw, eb);
    if (rc == ERR_OK && (fw.last != seq || rw.last != run))
        rc = store_webhook_set_position(d->st, seq, run, fw.last, rw.last, eb);
out:
    if (rc == ERR_OK)
        return store_tx_commit(d->st, eb);
    store_tx_rollback(d->st);
    return rc == ERR_EXISTS ? ERR_OK : rc; /* another serve queued them */
}

int
webhook_dispatch_reseal_all(struct store *st, const struct vault *from, const struct vault *to,
                            struct errbuf *eb)
{
    struct webhook_dispatch d;
    int rc;

    memset(&d, 0, sizeof d);
    d.st = st;
    rc = store_webhooks_each(st, 0, hook_cb, &d, eb);
    for (size_t i = 0; rc == ERR_OK && i < d.nhooks; i++) {
        char *sealed = NULL;

        if (d.hooks[i].sealed[0] == '\0')
            continue;
        rc = vault_reseal(from, to, "webhook", d.hooks[i].id, "secret", d.hooks[i].sealed, &sealed,
                          eb);
        if (rc == ERR_OK)
            rc = store_webhook_set_sealed(st, d.hooks[i].id, sealed, eb);
        free(sealed);
    }
    hooks_clear(&d);
    return rc;
}

int
webhook_dispatch_subscribe(struct store *st, const struct vault *v, const char *ca_file,
                           int64_t account_id, const char *url, const char *events, int64_t *id,
                           char secret[WEBHOOK_SECRET_TEXT], struct errbuf *eb)
{
    struct webhook_policy pol;
    char hosts[1024], list[256], *sealed = NULL;
    const char *seen[WEBHOOK_EVENT_COUNT];
    unsigned char raw[32];
    size_t nseen = 0;
    int rc;

    secret[0] = '\0';
    webhook_policy_from_env(&pol, hosts, sizeof hosts, ca_file);
    if ((rc = webhook_url_check(&pol, url, eb)) != ERR_OK)
        return rc;
    if (events == NULL || events[0] == '\0' || strlen(events) >= sizeof list)
        return err_set(eb, ERR_INVAL, "choose at least one event");
    snprintf(list, sizeof list, "%s", events);
    for (char *p = list, *comma; p != NULL; p = comma) {
        comma = strchr(p, ',');
        if (comma != NULL)
            *comma++ = '\0';
        if (!webhook_event_known(p))
            return err_set(eb, ERR_INVAL,
                           "unknown event (sync.finished, client.failed, client.recovered, "
                           "secret.expiring, asset.created, asset.retired, asset.changed)");
        for (size_t k = 0; k < nseen; k++)
            if (strcmp(seen[k], p) == 0)
                return err_set(eb, ERR_INVAL, "event %s is listed twice", p);
        seen[nseen++] = p;
    }
    randombytes_buf(raw, sizeof raw);
    memcpy(secret, "whsec_", 6);
    sodium_bin2hex(secret + 6, WEBHOOK_SECRET_TEXT - 6, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    if ((rc = store_tx_begin(st, eb)) != ERR_OK)
        goto out;
    if ((rc = store_webhook_insert(st, account_id, url, events, clock_now(), id, eb)) != ERR_OK ||
        (rc = vault_seal(v, "webhook", *id, "secret", secret, &sealed, eb)) != ERR_OK ||
        (rc = store_webhook_set_sealed(st, *id, sealed, eb)) != ERR_OK ||
        (rc = store_tx_commit(st, eb)) != ERR_OK)
        store_tx_rollback(st);
out:
    free(sealed);
    if (rc != ERR_OK)
        sodium_memzero(secret, WEBHOOK_SECRET_TEXT);
    else
        log_info("webhook created id=%" PRId64 " account=%" PRId64, *id, account_id);
    return rc;
}

struct due_list {
    struct webhook_delivery_row v[2 * FLIGHT_MAX];
    char *event[2 * FLIGHT_MAX], *body[2 * FLIGHT_MAX];
    size_t n;
};

static int
due_cb(void *arg, const struct webhook_delivery_row *r)
{
    struct due_list *l = arg;

    if (l->n >= 2 * FLIGHT_MAX)
        return 0;
    l->v[l->n] = *r;
    l->event[l->n] = xstrdup(r->event != NULL ? r->event : "");
    l->body[l->n] = xstrdup(r->body != NULL ? r->body : "");
    l->n++;
    return 0;
}

static const struct hook *
hook_of(const struct webhook_dispatch *d, int64_t id)
{
    for (size_t i = 0; i < d->nhooks; i++)
        if (d->hooks[i].id == id)
            return &d->hooks[i];
    return NULL;
}

static int
in_flight(const struct webhook_dispatch *d, int64_t webhook_id)
{
    for (size_t i = 0; i < d->nfl; i++)
        if (d->fl[i].webhook_id == webhook_id)
            return 1;
    return 0;
}

/* Records one try and, when the subscription has failed every try for retry_for_s since its
 * last delivered one, pauses it. */
static void
record(struct webhook_dispatch *d, const struct flight *f, int rc, const struct webhook_result *res,
       struct errbuf *why)
{
    struct errbuf sb = {0};
    int64_t now = clock_now(), attempts = f->attempts + 1, since = TS_NULL;
    int ok = rc == ERR_OK && res->status >= 200 && res->status < 300;

    if (rc == ERR_OK && !ok)
        snprintf(why->msg, sizeof why->msg, "the target answered %ld", res->status);
    if (store_webhook_failing(d->st, f->webhook_id, ok, now, &since, &sb) != ERR_OK)
        log_warn("webhook: cannot record a subscription's failing time: %s", sb.msg);
    if (store_webhook_result(d->st, f->id, ok ? "delivered" : "queued", attempts,
                             now + webhook_backoff((int)attempts, d->backoff_s), res->status,
                             res->latency_ms, ok ? NULL : why->msg, now, &sb) != ERR_OK)
        log_warn("webhook: cannot record a delivery: %s", sb.msg);
    log_info("webhook delivery id=%" PRId64 " webhook=%" PRId64 " event=%s state=%s status=%ld "
             "ms=%" PRId64,
             f->id, f->webhook_id, f->event, ok ? "delivered" : "queued", res->status,
             res->latency_ms);
    if (!ok && since != TS_NULL && now - since >= d->retry_for_s) {
        char at[32], reason[512];

        clock_fmt(since, at, sizeof at);
        snprintf(reason, sizeof reason,
                 "every delivery failed since %s (the last: %.300s); fix the target, then "
                 "resume: what is queued is sent again",
                 at, why->msg);
        log_warn("webhook paused id=%" PRId64 " failing_since=%s attempts=%" PRId64 " error=%s",
                 f->webhook_id, at, attempts, why->msg);
        if (store_webhook_pause(d->st, 0, f->webhook_id, 1, reason, now, &sb) != ERR_OK)
            log_warn("webhook: cannot pause a subscription: %s", sb.msg);
    }
}

static void
flight_end(struct webhook_dispatch *d, size_t i)
{
    struct flight *f = &d->fl[i];

    curl_multi_remove_handle(d->multi, webhook_xfer_handle(f->x));
    webhook_xfer_free(f->x);
    free(f->event);
    d->fl[i] = d->fl[--d->nfl];
}

/* Starts the due head of each subscription's queue that has nothing in flight, up to FLIGHT_MAX
 * at once: a slow target holds only its own subscription's queue. */
static int
start_due(struct webhook_dispatch *d, struct errbuf *eb)
{
    struct due_list l;
    int rc;

    if (d->nfl >= FLIGHT_MAX)
        return ERR_OK;
    l.n = 0;
    rc = store_webhook_due(d->st, clock_now(), FLIGHT_MAX + d->nfl, due_cb, &l, eb);
    for (size_t i = 0; i < l.n; i++) {
        const struct webhook_delivery_row *r = &l.v[i];
        const struct hook *h = hook_of(d, r->webhook_id);
        struct errbuf why = {0};
        struct flight *f;
        char *secret = NULL, idtext[24];
        int xrc;

        if (rc != ERR_OK || d->nfl >= FLIGHT_MAX || h == NULL || h->paused ||
            in_flight(d, r->webhook_id))
            goto next;
        f = &d->fl[d->nfl];
        memset(f, 0, sizeof *f);
        f->id = r->id;
        f->webhook_id = r->webhook_id;
        f->attempts = r->attempts;
        f->event = l.event[i];
        l.event[i] = NULL;
        snprintf(idtext, sizeof idtext, "%" PRId64, r->id);
        xrc = vault_unseal(d->v, "webhook", h->id, "secret", h->sealed, &secret, &why);
        if (xrc == ERR_OK)
            xrc =
                webhook_xfer_new(&d->policy, h->url, (const unsigned char *)secret, strlen(secret),
                                 f->event, idtext, l.body[i], strlen(l.body[i]), &f->x, &why);
        vault_wipe(secret);
        if (xrc == ERR_OK && curl_multi_add_handle(d->multi, webhook_xfer_handle(f->x)) != CURLM_OK)
            xrc = err_set(&why, ERR_NOMEM, "cannot start a delivery");
        if (xrc != ERR_OK) { /* refused before sending: a failed try */
            struct webhook_result none;

            memset(&none, 0, sizeof none);
            record(d, f, xrc, &none, &why);
            webhook_xfer_free(f->x);
            free(f->event);
            goto next;
        }
        d->nfl++;
    next:
        free(l.event[i]);
        free(l.body[i]);
    }
    return rc;
}

/* Runs the transfers in flight and records those that ended; the number that ended. */
static size_t
pump(struct webhook_dispatch *d)
{
    CURLMsg *m;
    int running = 0, left = 0;
    size_t ended = 0;

    if (d->nfl == 0)
        return 0;
    curl_multi_perform(d->multi, &running);
    while ((m = curl_multi_info_read(d->multi, &left)) != NULL) {
        if (m->msg != CURLMSG_DONE)
            continue;
        for (size_t i = 0; i < d->nfl; i++) {
            struct webhook_result *res;
            struct errbuf why = {0};
            int rc;

            if (webhook_xfer_handle(d->fl[i].x) != m->easy_handle)
                continue;
            res = xcalloc(1, sizeof *res);
            rc = webhook_xfer_done(d->fl[i].x, (int)m->data.result, res, &why);
            record(d, &d->fl[i], rc, res, &why);
            free(res);
            flight_end(d, i);
            ended++;
            break;
        }
    }
    return ended;
}

static int
stopping(struct webhook_dispatch *d)
{
    int s;

    pthread_mutex_lock(&d->mu);
    s = d->stop;
    pthread_mutex_unlock(&d->mu);
    return s;
}

/* One loop: queue once a second, start what is due when a slot is free, and wait in curl for
 * the transfers, the next second or webhook_dispatch_stop's wakeup. A stop waits up to
 * STOP_GRACE_MS for what is in flight; what has not ended stays queued and is sent again after the
 * restart (receivers dedupe by Memsync-Delivery). */
static void *
run(void *arg)
{
    struct webhook_dispatch *d = arg;
    int64_t next_queue = 0;

    while (!stopping(d)) {
        struct errbuf eb = {0};
        int64_t now = clock_mono_ms(), wait;
        size_t ended;

        if (d->st == NULL && now >= next_queue && store_open(&d->st, d->cfg->db, &eb) != ERR_OK)
            log_warn("webhook: cannot open the database: %s", eb.msg);
        ended = d->st != NULL ? pump(d) : 0;
        if (d->st != NULL && now >= next_queue) {
            next_queue = now + STEP_MS;
            if (queue_step(d, &eb) != ERR_OK)
                log_warn("webhook: cannot queue deliveries: %s", eb.msg);
            ended = 1;
        } else if (d->st == NULL && now >= next_queue) {
            next_queue = now + STEP_MS;
        }
        if (ended > 0 && d->st != NULL && !stopping(d) && start_due(d, &eb) != ERR_OK)
            log_warn("webhook: cannot read due deliveries: %s", eb.msg);
        if (d->nfl > 0)
            curl_multi_perform(d->multi, &(int){0});
        wait = next_queue - clock_mono_ms();
        if (wait > 0)
            curl_multi_poll(d->multi, NULL, 0, (int)(wait < STEP_MS ? wait : STEP_MS), NULL);
    }
    /* A target that has answered is recorded rather than sent the delivery again after the
     * restart: what is in flight gets a moment to end. */
    for (int64_t until = clock_mono_ms() + STOP_GRACE_MS;
         d->nfl > 0 && d->st != NULL && clock_mono_ms() < until;) {
        pump(d);
        if (d->nfl > 0)
            curl_multi_poll(d->multi, NULL, 0, 50, NULL);
    }
    while (d->nfl > 0)
        flight_end(d, d->nfl - 1);
    return NULL;
}

int
webhook_dispatch_start(struct webhook_dispatch **out, const struct config *cfg,
                       const struct vault *v, struct errbuf *eb)
{
    struct webhook_dispatch *d = xcalloc(1, sizeof *d);

    *out = NULL;
    d->cfg = cfg;
    d->v = v;
    d->backoff_s = env_int("MEMSYNC_WEBHOOK_BACKOFF_S", BACKOFF_DEF, 1, 3600);
    d->retry_for_s =
        env_int("MEMSYNC_WEBHOOK_RETRY_FOR_S", WEBHOOK_RETRY_FOR_S, 1, WEBHOOK_RETRY_FOR_S);
    webhook_policy_from_env(&d->policy, d->hosts, sizeof d->hosts, cfg->ca_file);
    if ((d->multi = curl_multi_init()) == NULL) {
        free(d);
        return err_set(eb, ERR_NOMEM, "cannot start the webhook thread");
    }
    pthread_mutex_init(&d->mu, NULL);
    if (pthread_create(&d->thread, NULL, run, d) != 0) {
        pthread_mutex_destroy(&d->mu);
        curl_multi_cleanup(d->multi);
        free(d);
        return err_set(eb, ERR_NOMEM, "cannot start the webhook thread");
    }
    *out = d;
    return ERR_OK;
}

void
webhook_dispatch_stop(struct webhook_dispatch *d)
{
    if (d == NULL)
        return;
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_mutex_unlock(&d->mu);
    curl_multi_wakeup(d->multi);
    pthread_join(d->thread, NULL);
    hooks_clear(d);
    store_close(d->st);
    curl_multi_cleanup(d->multi);
    pthread_mutex_destroy(&d->mu);
    free(d);
}
