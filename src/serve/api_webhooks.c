/* api_webhooks.c - webhook subscriptions in the REST API (api_webhooks.h). */
#include "api_webhooks.h"

#include <inttypes.h>
#include <jansson.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "app.h"
#include "clock.h"
#include "log.h"
#include "mem.h"
#include "store.h"
#include "store_webhooks.h"
#include "webhook.h"
#include "webhook_dispatch.h"

#define ADMIN_ONLY "only admins (or admin API keys) can manage webhooks"

static json_t *
ts_json(int64_t t)
{
    char b[32];

    if (t == TS_NULL)
        return json_null();
    clock_fmt(t, b, sizeof b);
    return json_string(b);
}

static json_t *
events_json(const char *events)
{
    json_t *a = json_array();

    for (const char *p = events; p != NULL && *p != '\0';) {
        const char *comma = strchr(p, ',');
        size_t len = comma != NULL ? (size_t)(comma - p) : strlen(p);

        json_array_append_new(a, json_stringn(p, len));
        p = comma != NULL ? comma + 1 : NULL;
    }
    return a;
}

static json_t *
hook_json(const struct webhook_row *w)
{
    return json_pack("{s:I, s:s?, s:o, s:o, s:b, s:o, s:s?, s:o}", "id", (json_int_t)w->id, "url",
                     w->url, "events", events_json(w->events), "created_at", ts_json(w->created_at),
                     "paused", w->paused_at != TS_NULL, "paused_at", ts_json(w->paused_at),
                     "paused_reason", w->paused_reason, "failing_since", ts_json(w->failing_since));
}

static int
list_cb(void *arg, const struct webhook_row *w)
{
    json_array_append_new(arg, hook_json(w));
    return 0;
}

static void
webhooks_get(const struct route_call *c)
{
    struct errbuf eb = {0};
    json_t *data = json_array();
    int rc = store_webhooks_each(c->req->st, c->p->account_id, list_cb, data, &eb);

    if (rc != ERR_OK) {
        json_decref(data);
        api_reply_err(c->resp, rc, &eb);
        return;
    }
    api_reply_json(c->resp, 200, json_pack("{s:o}", "data", data));
}

/* The events as stored: joined by commas (webhook_dispatch_subscribe checks them). */
static int
events_text(json_t *ev, char *out, size_t len, struct errbuf *eb)
{
    size_t i, used = 0;
    json_t *v;

    if (!json_is_array(ev) || json_array_size(ev) == 0 || json_array_size(ev) > WEBHOOK_EVENT_COUNT)
        return err_set(eb, ERR_INVAL, "events must be a list of 1 to %d event names",
                       WEBHOOK_EVENT_COUNT);
    out[0] = '\0';
    json_array_foreach(ev, i, v)
    {
        const char *s = json_string_value(v);

        if (s == NULL || strchr(s, ',') != NULL)
            return err_set(eb, ERR_INVAL, "events must be event names");
        used += (size_t)snprintf(out + used, len - used, "%s%s", i ? "," : "", s);
        if (used >= len)
            return err_set(eb, ERR_INVAL, "too many events");
    }
    return ERR_OK;
}

static void
webhook_post(const struct route_call *c)
{
    const struct api_app *app = c->app;
    struct webhook_row w = {0};
    struct errbuf eb = {0};
    json_error_t jerr;
    json_t *j = NULL, *out;
    const char *url;
    char events[256], secret[WEBHOOK_SECRET_TEXT];
    int64_t id = 0;
    int rc;

    secret[0] = '\0';
    j = json_loadb(c->req->body, c->req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    url = json_string_value(json_object_get(j, "url"));
    if (!json_is_object(j) || url == NULL) {
        rc = err_set(&eb, ERR_INVAL, "the body must be {\"url\": ..., \"events\": [...]}");
        goto fail;
    }
    if ((rc = events_text(json_object_get(j, "events"), events, sizeof events, &eb)) != ERR_OK ||
        (rc = webhook_dispatch_subscribe(c->req->st, app->vault, app->cfg->ca_file,
                                         c->p->account_id, url, events, &id, secret, &eb)) !=
            ERR_OK)
        goto fail;
    w.id = id;
    w.url = url;
    w.events = events;
    w.created_at = clock_now();
    w.paused_at = TS_NULL;
    w.failing_since = TS_NULL;
    out = hook_json(&w);
    json_object_set_new(out, "secret", json_string(secret));
    sodium_memzero(secret, sizeof secret);
    json_decref(j);
    api_reply_json(c->resp, 201, json_pack("{s:o}", "data", out));
    return;
fail:
    json_decref(j);
    api_reply_err(c->resp, rc, &eb);
}

static void
webhook_delete(const struct route_call *c)
{
    struct errbuf eb = {0};
    int rc = store_webhook_delete(c->req->st, c->p->account_id, c->id[0], &eb);

    if (rc != ERR_OK) {
        api_reply_err(c->resp, rc, &eb);
        return;
    }
    api_reply_json(c->resp, 200,
                   json_pack("{s:{s:I, s:b}}", "data", "id", (json_int_t)c->id[0], "deleted", 1));
}

static void
webhook_resume(const struct route_call *c)
{
    struct errbuf eb = {0};
    int rc = store_webhook_pause(c->req->st, c->p->account_id, c->id[0], 0, NULL, clock_now(), &eb);

    if (rc != ERR_OK) {
        api_reply_err(c->resp, rc, &eb);
        return;
    }
    api_reply_json(c->resp, 200,
                   json_pack("{s:{s:I, s:b}}", "data", "id", (json_int_t)c->id[0], "paused", 0));
}

static int
delivery_cb(void *arg, const struct webhook_delivery_row *d)
{
    json_array_append_new(
        arg,
        json_pack("{s:I, s:s?, s:s?, s:I, s:o, s:o, s:o, s:o, s:o, s:s?}", "id", (json_int_t)d->id,
                  "event", d->event, "state", d->state, "attempts", (json_int_t)d->attempts,
                  "created_at", ts_json(d->created_at), "last_at", ts_json(d->last_at), "next_at",
                  strcmp(d->state != NULL ? d->state : "", "queued") == 0 ? ts_json(d->next_at)
                                                                          : json_null(),
                  "response_status",
                  d->last_status > 0 ? json_integer((json_int_t)d->last_status) : json_null(),
                  "latency_ms",
                  d->last_latency_ms >= 0 && d->last_at != TS_NULL
                      ? json_integer((json_int_t)d->last_latency_ms)
                      : json_null(),
                  "error", d->last_error));
    return 0;
}

static void
deliveries_get(const struct route_call *c)
{
    struct errbuf eb = {0};
    json_t *data = json_array();
    int rc = store_webhook_deliveries_each(c->req->st, c->p->account_id, c->id[0],
                                           API_WEBHOOK_DELIVERIES, delivery_cb, data, &eb);

    if (rc != ERR_OK) {
        json_decref(data);
        api_reply_err(c->resp, rc, &eb);
        return;
    }
    api_reply_json(c->resp, 200, json_pack("{s:o}", "data", data));
}

static const struct route routes[] = {
    {"GET", "/api/v1/webhooks", webhooks_get, AUTH_ADMIN, 0, ROUTE_API, ADMIN_ONLY},
    {"POST", "/api/v1/webhooks", webhook_post, AUTH_ADMIN, 1, ROUTE_API, ADMIN_ONLY},
    {"DELETE", "/api/v1/webhooks/{id}", webhook_delete, AUTH_ADMIN, 1, ROUTE_API, ADMIN_ONLY},
    {"POST", "/api/v1/webhooks/{id}/resume", webhook_resume, AUTH_ADMIN, 1, ROUTE_API, ADMIN_ONLY},
    {"GET", "/api/v1/webhooks/{id}/deliveries", deliveries_get, AUTH_ADMIN, 0, ROUTE_API,
     ADMIN_ONLY},
};

const struct route *
api_webhooks_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}
