/* ui_webhooks.c - the webhook page of the web UI (ui_webhooks.h). */
#include "ui_webhooks.h"

#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "clock.h"
#include "store.h"
#include "store_webhooks.h"
#include "webhook_dispatch.h"

#define LOG_ROWS 10

static const char *const event_names[] = {WEBHOOK_EVENTS};

static void
ts(struct buf *b, int64_t t)
{
    char s[32];

    if (t == TS_NULL) {
        buf_addstr(b, "–");
        return;
    }
    clock_fmt(t, s, sizeof s);
    buf_addstr(b, s);
}

struct view {
    const struct ui_totp_env *env;
    struct httpd_request *req;
    const struct auth_principal *p;
    struct buf *b;
};

static int
delivery_cb(void *arg, const struct webhook_delivery_row *d)
{
    struct view *v = arg;

    buf_addstr(v->b, "<tr><td>");
    v->env->esc(v->b, d->event);
    buf_addstr(v->b, "</td><td>");
    v->env->esc(v->b, d->state);
    buf_printf(v->b, "</td><td>%" PRId64 "</td><td>", d->attempts);
    if (d->last_status > 0)
        buf_printf(v->b, "%" PRId64, d->last_status);
    else
        buf_addstr(v->b, "–");
    buf_addstr(v->b, "</td><td>");
    if (d->last_at != TS_NULL && d->last_latency_ms >= 0)
        buf_printf(v->b, "%" PRId64 " ms", d->last_latency_ms);
    else
        buf_addstr(v->b, "–");
    buf_addstr(v->b, "</td><td>");
    ts(v->b, d->last_at);
    buf_addstr(v->b, "</td><td>");
    v->env->esc(v->b, d->last_error != NULL ? d->last_error : "");
    buf_addstr(v->b, "</td></tr>");
    return 0;
}

static void
button(struct view *v, int64_t id, const char *what, const char *label)
{
    buf_printf(v->b, "<form method=\"post\" action=\"/webhooks/%" PRId64 "/%s\" class=\"inline\">",
               id, what);
    buf_addstr(v->b, "<input type=\"hidden\" name=\"csrf\" value=\"");
    v->env->esc(v->b, v->p->csrf);
    buf_printf(v->b, "\"><button type=\"submit\" class=\"ghost\">%s</button></form>", label);
}

static int
hook_cb(void *arg, const struct webhook_row *w)
{
    struct view *v = arg;
    struct errbuf eb = {0};

    buf_printf(v->b, "<section class=\"webhook\" id=\"webhook-%" PRId64 "\"><h2>", w->id);
    v->env->esc(v->b, w->url);
    buf_addstr(v->b, "</h2><p>Events: ");
    v->env->esc(v->b, w->events);
    buf_addstr(v->b, ". Created ");
    ts(v->b, w->created_at);
    buf_addstr(v->b, ". ");
    if (w->paused_at != TS_NULL) {
        buf_addstr(v->b, "<strong class=\"warn\">Paused</strong> since ");
        ts(v->b, w->paused_at);
        buf_addstr(v->b, ": ");
        v->env->esc(v->b, w->paused_reason != NULL ? w->paused_reason : "");
        buf_addstr(v->b, " ");
        button(v, w->id, "resume", "Resume");
    } else if (w->failing_since != TS_NULL) {
        buf_addstr(v->b, "<strong class=\"warn\">Failing</strong> since ");
        ts(v->b, w->failing_since);
        buf_addstr(v->b, " (paused after a day of failed tries). ");
    } else {
        buf_addstr(v->b, "Active. ");
    }
    button(v, w->id, "remove", "Remove");
    buf_addstr(v->b, "</p><table><thead><tr><th>Event</th><th>State</th><th>Attempts</th>"
                     "<th>Response</th><th>Latency</th><th>Last try</th><th>Error</th></tr>"
                     "</thead><tbody>");
    store_webhook_deliveries_each(v->req->st, w->account_id, w->id, LOG_ROWS, delivery_cb, v, &eb);
    buf_addstr(v->b, "</tbody></table></section>");
    return 0;
}

/* The page; notice (escaped) and secret (shown once) may be NULL. */
static void
render(const struct ui_totp_env *env, struct httpd_request *req, struct httpd_response *resp,
       const struct auth_principal *p, int status, const char *notice, const char *secret)
{
    struct view v = {env, req, p, &resp->body};
    struct errbuf eb = {0};

    env->page_begin(resp, p, "Webhooks", "/webhooks");
    resp->status = status;
    buf_addstr(v.b, "<h1>Webhooks</h1><p>memsync POSTs signed events to these URLs "
                    "(docs/API.md \"Webhooks\" shows how to verify them).</p>");
    if (notice != NULL) {
        buf_printf(v.b, "<p class=\"notice %s\">", status == 200 ? "ok" : "bad");
        env->esc(v.b, notice);
        buf_addstr(v.b, "</p>");
    }
    if (secret != NULL) {
        buf_addstr(v.b, "<p class=\"notice ok\">Signing secret, shown only now: <code "
                        "class=\"secret\">");
        env->esc(v.b, secret);
        buf_addstr(v.b, "</code></p>");
    }
    if (req->st == NULL || store_webhooks_each(req->st, p->account_id, hook_cb, &v, &eb) != ERR_OK)
        buf_addstr(v.b, "<p class=\"notice bad\">The subscriptions cannot be read now.</p>");
    buf_addstr(v.b, "<h2>New webhook</h2><form method=\"post\" action=\"/webhooks\">"
                    "<input type=\"hidden\" name=\"csrf\" value=\"");
    env->esc(v.b, p->csrf);
    buf_addstr(v.b, "\"><label>URL <input name=\"url\" type=\"url\" required "
                    "placeholder=\"https://\"></label><fieldset><legend>Events</legend>");
    for (size_t i = 0; i < WEBHOOK_EVENT_COUNT; i++)
        buf_printf(v.b, "<label><input type=\"checkbox\" name=\"ev_%s\" value=\"1\"> %s</label> ",
                   event_names[i], event_names[i]);
    buf_addstr(v.b, "</fieldset><button type=\"submit\">Add webhook</button></form>");
    env->page_end(resp);
}

void
ui_webhooks_get(const struct ui_totp_env *env, struct httpd_request *req,
                struct httpd_response *resp, const struct auth_principal *p, const char *ca_file)
{
    (void)ca_file;
    render(env, req, resp, p, 200, NULL, NULL);
}

void
ui_webhooks_post(const struct ui_totp_env *env, struct httpd_request *req,
                 struct httpd_response *resp, const struct auth_principal *p, const char *ca_file)
{
    char *url = env->form_value(req->body, "url");
    char events[256], key[40], secret[WEBHOOK_SECRET_TEXT];
    struct errbuf eb = {0};
    size_t used = 0;
    int64_t id = 0;

    events[0] = '\0';
    for (size_t i = 0; i < WEBHOOK_EVENT_COUNT; i++) {
        char *on;

        snprintf(key, sizeof key, "ev_%s", event_names[i]);
        on = env->form_value(req->body, key);
        if (on != NULL && strcmp(on, "1") == 0)
            used += (size_t)snprintf(events + used, sizeof events - used, "%s%s", used ? "," : "",
                                     event_names[i]);
        free(on);
    }
    if (req->st == NULL) {
        render(env, req, resp, p, 503, "The database is not available now.", NULL);
    } else if (webhook_dispatch_subscribe(req->st, env->vault, ca_file, p->account_id,
                                          url != NULL ? url : "", events, &id, secret,
                                          &eb) != ERR_OK) {
        render(env, req, resp, p, 400, eb.msg, NULL);
    } else {
        render(env, req, resp, p, 200, "Webhook added.", secret);
        sodium_memzero(secret, sizeof secret);
    }
    free(url);
}

void
ui_webhooks_remove_post(const struct ui_totp_env *env, struct httpd_request *req,
                        struct httpd_response *resp, const struct auth_principal *p, int64_t id)
{
    struct errbuf eb = {0};

    if (req->st == NULL || store_webhook_delete(req->st, p->account_id, id, &eb) != ERR_OK)
        render(env, req, resp, p, 404, "No such webhook.", NULL);
    else
        render(env, req, resp, p, 200, "Webhook removed.", NULL);
}

void
ui_webhooks_resume_post(const struct ui_totp_env *env, struct httpd_request *req,
                        struct httpd_response *resp, const struct auth_principal *p, int64_t id)
{
    struct errbuf eb = {0};

    if (req->st == NULL ||
        store_webhook_pause(req->st, p->account_id, id, 0, NULL, clock_now(), &eb) != ERR_OK)
        render(env, req, resp, p, 404, "No such webhook.", NULL);
    else
        render(env, req, resp, p, 200, "Webhook resumed.", NULL);
}
