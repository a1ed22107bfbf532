/* api_client.c - GET/PATCH /api/v1/clients/{id} and POST /api/v1/clients/{id}/sync. */
#include "api_client.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "api_reply.h"
#include "app.h"
#include "buf.h"
#include "clock.h"
#include "insight.h"
#include "log.h"
#include "rowjson.h"
#include "scheduler.h"

#define NAME_MAX_BYTES 256

static const char *const figures[] = {
    "devices",          "stale",         "unsupported_os", "no_serial",
    "duplicate_serial", "encrypted_pct", "compliant_pct"};

static void
reply(struct httpd_response *resp, int status, json_t *j)
{
    char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

    resp->status = s != NULL ? status : 500;
    resp->content_type = "application/json";
    buf_reset(&resp->body);
    buf_addstr(&resp->body, s != NULL
                                ? s
                                : "{\"errors\":[{\"code\":\"internal\",\"title\":\"Internal "
                                  "error\",\"detail\":\"The response could not be built.\"}]}");
    free(s);
    json_decref(j);
}

static void
reply_error(struct httpd_response *resp, int status, const char *code, const char *title,
            const char *detail)
{
    reply(resp, status,
          json_pack("{s:[{s:s, s:s, s:s}]}", "errors", "code", code, "title", title, "detail",
                    detail));
}

static int
rows_cb(void *arg, const struct store_cell *cells, size_t n)
{
    json_array_append_new(arg, rowjson_cells(cells, n));
    return 0;
}

int
api_client_json(struct store *st, int64_t account, int64_t id, int64_t now, json_t **out,
                struct errbuf *eb)
{
    struct list_query q = {0};
    struct store_filter f = {"id", "eq", NULL};
    struct asset_query aq = {0};
    struct insight *in = NULL;
    json_t *rows = json_array(), *row = NULL, *links = NULL, *fig = NULL;
    char idtxt[32];
    int rc;

    *out = NULL;
    snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
    f.value = idtxt;
    q.entity = "clients";
    q.account_id = account;
    q.filters = &f;
    q.nfilters = 1;
    q.limit = 1;
    if ((rc = store_list_each(st, &q, rows_cb, rows, eb)) != ERR_OK)
        goto out;
    if (json_array_size(rows) == 0) {
        rc = err_set(eb, ERR_NOTFOUND, "client %" PRId64 " does not exist", id);
        goto out;
    }
    row = json_incref(json_array_get(rows, 0));
    /* Its figures: the overview's, for this client's active devices alone. */
    in = insight_new(now, API_CLIENT_STALE_DAYS);
    aq.account_id = account;
    aq.client = idtxt;
    if ((rc = store_assets_each(st, &aq, insight_collect, in, eb)) != ERR_OK)
        goto out;
    if (insight_count(in) > 0) {
        fig = insight_to_json(in, 0);
        json_object_del(fig, "client");
    }
    json_object_set_new(row, "insight", fig != NULL ? fig : json_null());
    fig = NULL;
    links = json_object();
    for (size_t i = 0; i < sizeof figures / sizeof figures[0]; i++) {
        struct buf b;

        buf_init(&b, 1024);
        buf_printf(&b, "filter[client.id]=eq:%" PRId64, id);
        insight_figure_query(figures[i], API_CLIENT_STALE_DAYS, &b);
        json_object_set_new(links, figures[i], json_string(buf_cstr(&b)));
        buf_free(&b);
    }
    json_object_set_new(row, "figure_links", links);
    json_decref(rows);
    rows = json_array();
    memset(&q, 0, sizeof q);
    q.entity = "client_sync_results";
    q.account_id = account;
    q.parent_id = id;
    q.limit = API_CLIENT_RESULTS;
    if ((rc = store_list_each(st, &q, rows_cb, rows, eb)) != ERR_OK)
        goto out;
    json_object_set(row, "recent_syncs", rows);
    *out = row;
    row = NULL;
out:
    insight_free(in);
    json_decref(rows);
    json_decref(row);
    return rc;
}

void
api_client_get(const struct route_call *c)
{
    struct errbuf eb = {0};
    json_t *row = NULL;
    int rc = api_client_json(c->req->st, c->p->account_id, c->id[0], clock_now(), &row, &eb);

    if (rc != ERR_OK) {
        api_reply_err(c->resp, rc, &eb);
        return;
    }
    reply(c->resp, 200, json_pack("{s:o}", "data", row));
}

void
api_client_patch(const struct route_call *c)
{
    struct errbuf eb = {0};
    json_error_t jerr;
    json_t *body = json_loadb(c->req->body, c->req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    json_t *inc, *name, *row = NULL;
    const char *key, *newname = NULL;
    json_t *v;
    char idtxt[32];
    int included = -1, rc;

    if (body == NULL || !json_is_object(body)) {
        reply_error(c->resp, 400, "invalid_json", "Invalid JSON", "the body must be a JSON object");
        goto out;
    }
    json_object_foreach(body, key, v)
    {
        if (strcmp(key, "included") != 0 && strcmp(key, "name") != 0) {
            char msg[128];

            snprintf(msg, sizeof msg, "unknown member '%.60s' (included, name)", key);
            reply_error(c->resp, 400, "invalid_request", "Invalid request", msg);
            goto out;
        }
    }
    inc = json_object_get(body, "included");
    name = json_object_get(body, "name");
    if (inc != NULL && !json_is_boolean(inc)) {
        reply_error(c->resp, 400, "invalid_request", "Invalid request",
                    "included is true or false");
        goto out;
    }
    if (name != NULL && !json_is_null(name) &&
        (!json_is_string(name) || strlen(json_string_value(name)) > NAME_MAX_BYTES)) {
        reply_error(c->resp, 400, "invalid_request", "Invalid request",
                    "name is a string of at most 256 bytes, or null for Microsoft's name");
        goto out;
    }
    if (inc == NULL && name == NULL) {
        reply_error(c->resp, 400, "invalid_request", "Invalid request",
                    "nothing to change: give included and/or name");
        goto out;
    }
    if (inc != NULL)
        included = json_is_true(inc) ? 1 : 0;
    if (name != NULL)
        newname = json_is_null(name) ? "" : json_string_value(name);
    snprintf(idtxt, sizeof idtxt, "%" PRId64, c->id[0]);
    /* The id as text: store_client_update also takes tenant ids and names, as the CLI does. */
    rc = store_client_update(c->req->st, c->p->account_id, idtxt, included, newname, &eb);
    if (rc == ERR_OK)
        rc = api_client_json(c->req->st, c->p->account_id, c->id[0], clock_now(), &row, &eb);
    if (rc != ERR_OK) {
        api_reply_err(c->resp, rc, &eb);
        goto out;
    }
    log_info("client changed id=%" PRId64 " by=%s included=%d renamed=%d", c->id[0], c->p->name,
             included, name != NULL);
    reply(c->resp, 200, json_pack("{s:o}", "data", row));
out:
    json_decref(body);
}

void
api_client_sync(const struct route_call *c)
{
    const struct api_app *app = c->app;
    struct errbuf eb = {0};
    json_t *row = NULL;
    int rc = api_client_json(c->req->st, c->p->account_id, c->id[0], clock_now(), &row, &eb);
    int64_t integ = 0, run = 0;
    char loc[64];

    if (rc == ERR_OK) {
        integ = json_integer_value(json_object_get(row, "integration_id"));
        if (!json_is_true(json_object_get(row, "included")))
            rc = err_set(&eb, ERR_INVAL, "the client is excluded: include it before syncing it");
        else if (app->sched == NULL)
            rc = err_set(&eb, ERR_UNSUPPORTED, "the scheduler is not running");
        else
            rc = scheduler_request_tenant(app->sched, c->req->st, c->p->account_id, integ,
                                          json_string_value(json_object_get(row, "tenant_id")),
                                          json_string_value(json_object_get(row, "name")),
                                          json_string_value(json_object_get(row, "default_domain")),
                                          &run, &eb);
    }
    json_decref(row);
    if (rc != ERR_OK) {
        api_reply_sync_err(c->resp, rc, &eb);
        return;
    }
    /* The run exists from now on (serve's thread or workers sync it): its page shows it live. */
    snprintf(loc, sizeof loc, "/api/v1/sync-runs/%" PRId64, run);
    httpd_response_header(c->resp, "Location", loc);
    reply(c->resp, 202,
          json_pack("{s:{s:I, s:I, s:I, s:s, s:s}}", "data", "run_id", (json_int_t)run, "client_id",
                    (json_int_t)c->id[0], "integration_id", (json_int_t)integ, "kind", "full",
                    "state", "queued"));
}
