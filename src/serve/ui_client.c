/* ui_client.c - the page of one client and its change form. */
#include "ui_client.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "api_client.h"
#include "app.h"
#include "asset.h"
#include "clock.h"
#include "insight.h"
#include "log.h"
#include "mem.h"
#include "rowjson.h"
#include "scheduler.h"
#include "store.h"

#define DEVICES_SHOWN  10
#define SOFTWARE_SHOWN 10
#define URL_MAX        2048

static const json_t *
jpath(const json_t *row, const char *path)
{
    const char *dot = strchr(path, '.');
    char head[64];

    if (dot == NULL)
        return json_object_get(row, path);
    snprintf(head, sizeof head, "%.*s", (int)(dot - path), path);
    return json_object_get(json_object_get(row, head), dot + 1);
}

static void
text(const struct ui_client_env *env, struct buf *b, const json_t *v)
{
    char num[32];

    if (v == NULL || json_is_null(v)) {
        buf_addstr(b, "<span class=\"muted\">—</span>");
    } else if (json_is_string(v)) {
        env->esc(b, json_string_value(v));
    } else if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        buf_addstr(b, num);
    } else if (json_is_boolean(v)) {
        buf_addstr(b, json_is_true(v) ? "yes" : "no");
    }
}

/* "YYYY-MM-DD HH:MM UTC" of an RFC 3339 value, the whole value as its title. */
static void
when(const struct ui_client_env *env, struct buf *b, const json_t *v)
{
    const char *s = json_string_value(v);

    if (s == NULL || strlen(s) < 16) {
        text(env, b, v);
        return;
    }
    buf_addstr(b, "<span title=\"");
    env->esc(b, s);
    buf_printf(b, "\">%.10s %.5s UTC</span>", s, s + 11);
}

/* The admin-consent address a remedy names (remedy.h), or "" when it names none. */
static void
consent_url(const char *remedy, char *out, size_t outlen)
{
    const char *p = remedy != NULL ? strstr(remedy, "/adminconsent?") : NULL;
    const char *start, *end;

    out[0] = '\0';
    if (p == NULL)
        return;
    /* The login address memsync itself put there (remedy.c): https, or http for the simulator. */
    for (start = p;
         start > remedy && strncmp(start, "https://", 8) != 0 && strncmp(start, "http://", 7) != 0;
         start--)
        ;
    if (strncmp(start, "https://", 8) != 0 && strncmp(start, "http://", 7) != 0)
        return;
    for (end = p;
         *end != '\0' && *end != ' ' && *end != ')' && *end != '"' && *end != '<' && *end != '\n';
         end++)
        ;
    if (end > start && end[-1] == '.')
        end--;
    if ((size_t)(end - start) < outlen)
        snprintf(out, outlen, "%.*s", (int)(end - start), start);
}

static int
cells_cb(void *arg, const struct store_cell *cells, size_t n)
{
    json_array_append_new(arg, rowjson_cells(cells, n));
    return 0;
}

static int
asset_cb(void *arg, const struct asset *a)
{
    json_array_append_new(arg, asset_to_json(a));
    return 0;
}

/* A card: the figure, what it counts, and a link to the devices behind it. */
static void
card(struct buf *b, int64_t id, const char *figure, const json_t *v, const char *label, int warn)
{
    struct buf q;

    buf_init(&q, 1024);
    insight_figure_query(figure, API_CLIENT_STALE_DAYS, &q);
    buf_printf(b, "<a class=\"card%s\" data-figure=\"%s\" href=\"/assets?client=%" PRId64 "%s\">",
               warn && json_integer_value(v) > 0 ? " warn" : "", figure, id, buf_cstr(&q));
    if (json_is_integer(v))
        buf_printf(b, "<strong>%" JSON_INTEGER_FORMAT "%s</strong>", json_integer_value(v),
                   strstr(figure, "_pct") != NULL ? " %" : "");
    else
        buf_addstr(b, "<strong>—</strong>");
    buf_printf(b, "%s</a>", label);
    buf_free(&q);
}

static void
form_open(const struct route_call *c, struct buf *b, const char *action, const char *cls)
{
    buf_printf(b,
               "<form method=\"post\" action=\"/clients/%" PRId64 "\" class=\"%s\">"
               "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
               "<input type=\"hidden\" name=\"action\" value=\"%s\">",
               c->id[0], cls, c->p->csrf, action);
}

static void
store_failed(const struct ui_client_env *env, const struct route_call *c, int rc,
             const struct errbuf *eb)
{
    log_warn("ui: a database call failed route=%s error=\"%s\"", c->req->path, eb->msg);
    c->resp->status = rc == ERR_TIMEOUT ? 503 : 500;
    env->page_begin(c->resp, c->p, "Error", NULL);
    buf_addstr(&c->resp->body, rc == ERR_TIMEOUT
                                   ? "<div class=\"notice bad\">The database is busy; try again "
                                     "in a moment.</div>"
                                   : "<div class=\"notice bad\">This page could not be read from "
                                     "the database; the cause is in the server's log.</div>");
    env->page_end(c->resp);
}

static const char *
done_text(const char *done)
{
    static const char *const words[][2] = {
        {"excluded", "Excluded: this client is no longer synced; its data is kept."},
        {"included", "Included: this client is synced again."},
        {"renamed", "Renamed."},
        {"sync", "A sync of this tenant is queued; its result appears under Recent syncs."},
    };

    for (size_t i = 0; done != NULL && i < sizeof words / sizeof words[0]; i++)
        if (strcmp(done, words[i][0]) == 0)
            return words[i][1];
    return NULL;
}

void
ui_client_page(const struct ui_client_env *env, const struct route_call *c)
{
    struct buf *b = &c->resp->body;
    struct errbuf eb = {0};
    json_t *row = NULL, *devices = json_array(), *software = json_array(), *v;
    struct asset_query aq = {0};
    struct list_query lq = {0};
    struct store_filter sf = {"client.id", "eq", NULL};
    struct store_sort ss = {"device_count", 1}, ds = {"name", 0};
    const char *status, *done = done_text(httpd_arg(c->req, "done"));
    char idtxt[32], consent[URL_MAX];
    int admin = c->p->role == AUTH_ADMIN, rc;
    int64_t id = c->id[0], ndev;
    size_t i;

    rc = api_client_json(c->req->st, c->p->account_id, id, clock_now(), &row, &eb);
    if (rc == ERR_NOTFOUND) {
        c->resp->status = 404;
        env->page_begin(c->resp, c->p, "Not found", "/clients");
        buf_addstr(b, "<div class=\"empty\"><strong>No such client</strong><p><a "
                      "href=\"/clients\">All clients</a></p></div>");
        env->page_end(c->resp);
        goto out;
    }
    snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
    if (rc == ERR_OK) {
        aq.account_id = c->p->account_id;
        aq.client = idtxt;
        aq.sorts = &ds;
        aq.nsorts = 1;
        aq.limit = DEVICES_SHOWN;
        rc = store_assets_each(c->req->st, &aq, asset_cb, devices, &eb);
    }
    if (rc == ERR_OK) {
        sf.value = idtxt;
        lq.entity = "software";
        lq.account_id = c->p->account_id;
        lq.filters = &sf;
        lq.nfilters = 1;
        lq.sorts = &ss;
        lq.nsorts = 1;
        lq.limit = SOFTWARE_SHOWN;
        rc = store_list_each(c->req->st, &lq, cells_cb, software, &eb);
    }
    if (rc != ERR_OK) {
        store_failed(env, c, rc, &eb);
        goto out;
    }
    env->page_begin(c->resp, c->p, json_string_value(json_object_get(row, "name")), "/clients");
    status = json_string_value(json_object_get(row, "status"));
    buf_addstr(b,
               "<p class=\"muted\"><a href=\"/clients\">Clients</a> /</p><h1 id=\"client-name\">");
    text(env, b, json_object_get(row, "name"));
    buf_addstr(b, "</h1>");
    if (done != NULL) {
        buf_addstr(b, "<div class=\"notice ok\" id=\"client-done\">");
        env->esc(b, done);
        buf_addstr(b, "</div>");
    }
    buf_addstr(b, "<dl class=\"kv\" id=\"client-facts\"><dt>Status</dt><dd><span class=\"pill ");
    env->esc(b, status);
    buf_addstr(b, "\">");
    env->esc(b, status);
    buf_addstr(b, "</span>");
    if (!json_is_true(json_object_get(row, "included")))
        buf_addstr(b, " <span class=\"pill warn\" id=\"client-excluded\">excluded</span>");
    buf_addstr(b, "</dd><dt>Last sync</dt><dd>");
    when(env, b, json_object_get(row, "last_sync_at"));
    buf_addstr(b, "</dd><dt>Tenant</dt><dd class=\"mono\">");
    text(env, b, json_object_get(row, "tenant_id"));
    buf_addstr(b, "</dd><dt>Domain</dt><dd class=\"mono\">");
    text(env, b, json_object_get(row, "default_domain"));
    buf_addstr(b, "</dd><dt>Devices</dt><dd>");
    text(env, b, json_object_get(row, "device_count"));
    buf_addstr(b, "</dd></dl>");

    /* The problem, its remedy and the remedy's action. */
    if (json_is_string(jpath(row, "error.message")) || json_is_string(jpath(row, "warning.code"))) {
        int err = json_is_string(jpath(row, "error.message"));
        const char *remedy = json_string_value(jpath(row, err ? "error.remedy" : "warning.remedy"));

        buf_printf(b, "<div class=\"notice %s\" id=\"client-problem\"><strong>",
                   err ? "bad" : "warn");
        text(env, b, jpath(row, err ? "error.message" : "warning.message"));
        buf_addstr(b, "</strong><div class=\"remedy\">");
        env->esc(b, remedy);
        buf_addstr(b, "</div>");
        if (err && json_is_string(jpath(row, "error.request_id"))) {
            buf_addstr(b, "<div class=\"muted mono\">request-id ");
            text(env, b, jpath(row, "error.request_id"));
            buf_addstr(b, "</div>");
        }
        consent_url(remedy, consent, sizeof consent);
        if (consent[0] != '\0') {
            buf_addstr(b, "<p><a class=\"btn\" id=\"consent\" target=\"_blank\" "
                          "rel=\"noopener noreferrer\" href=\"");
            env->esc(b, consent);
            buf_addstr(b, "\">Grant admin consent in this tenant</a> then sync it again.</p>");
        }
        buf_addstr(b, "</div>");
    }
    if (admin) {
        int included = json_is_true(json_object_get(row, "included"));

        buf_addstr(b, "<div class=\"toolbar\" id=\"client-actions\">");
        if (included) {
            form_open(c, b, "sync", "inline");
            buf_addstr(b, "<button type=\"submit\" id=\"client-sync\">Sync this tenant "
                          "now</button></form>");
        }
        form_open(c, b, included ? "exclude" : "include", "inline");
        buf_printf(b, "<button type=\"submit\" class=\"%s\" id=\"client-%s\">%s</button></form>",
                   included ? "ghost" : "", included ? "exclude" : "include",
                   included ? "Exclude from syncs" : "Include in syncs");
        form_open(c, b, "rename", "inline");
        buf_addstr(b, "<label>Display name<input name=\"name\" maxlength=\"256\" value=\"");
        text(env, b, json_object_get(row, "name"));
        buf_addstr(b, "\"></label><button type=\"submit\" class=\"ghost\" "
                      "id=\"client-rename\">Rename</button></form></div>");
    }

    /* Figures: each one links to the devices it counts. */
    v = json_object_get(row, "insight");
    buf_addstr(b, "<h2>Insight</h2><div class=\"cards\" id=\"client-figures\">");
    card(b, id, "devices", json_object_get(v, "devices"), "devices", 0);
    card(b, id, "unsupported_os", json_object_get(v, "unsupported_os"), "on an OS past its support",
         1);
    {
        char lbl[64];

        snprintf(lbl, sizeof lbl, "not checked in for %d days", API_CLIENT_STALE_DAYS);
        card(b, id, "stale", json_object_get(v, "stale"), lbl, 1);
    }
    card(b, id, "no_serial", json_object_get(v, "no_serial"), "without a real serial", 0);
    card(b, id, "duplicate_serial", json_object_get(v, "duplicate_serial"),
         "with a serial in two tenants", 0);
    card(b, id, "encrypted_pct", json_object_get(v, "encrypted_pct"),
         "encrypted (lists those that are not)", 0);
    card(b, id, "compliant_pct", json_object_get(v, "compliant_pct"),
         "compliant (lists those that are not)", 0);
    buf_addstr(b, "</div>");

    /* Devices. */
    ndev = json_integer_value(json_object_get(row, "device_count"));
    buf_printf(b,
               "<h2>Devices</h2><div class=\"tablewrap\"><table id=\"client-devices\"><thead><tr>"
               "<th>Name</th><th>OS</th><th class=\"hide-narrow\">User</th><th>Last check-in"
               "</th></tr></thead><tbody>");
    json_array_foreach(devices, i, v)
    {
        buf_printf(b, "<tr><td><a href=\"/assets/%" JSON_INTEGER_FORMAT "\">",
                   json_integer_value(json_object_get(v, "id")));
        text(env, b, json_object_get(v, "name"));
        buf_addstr(b, "</a></td><td>");
        text(env, b, jpath(v, "operating_system.name"));
        buf_addstr(b, " <span class=\"muted\">");
        text(env, b, jpath(v, "operating_system.version"));
        buf_addstr(b, "</span></td><td class=\"hide-narrow\">");
        text(env, b, jpath(v, "user.principal_name"));
        buf_addstr(b, "</td><td>");
        when(env, b, json_object_get(v, "last_check_in_at"));
        buf_addstr(b, "</td></tr>");
    }
    if (json_array_size(devices) == 0)
        buf_addstr(b, "<tr><td colspan=\"4\" class=\"muted\">No active device.</td></tr>");
    buf_printf(
        b,
        "</tbody></table></div><p><a id=\"client-all-devices\" href=\"/assets?client=%" PRId64
        "\">All %" PRId64 " devices</a></p>",
        id, ndev);

    /* Software, most installed first. */
    buf_addstr(b, "<h2>Software</h2><div class=\"tablewrap\"><table id=\"client-software\"><thead>"
                  "<tr><th>Title</th><th class=\"hide-narrow\">Version</th><th "
                  "class=\"num\">Devices</th></tr></thead><tbody>");
    json_array_foreach(software, i, v)
    {
        buf_printf(b, "<tr><td><a href=\"/software/%" JSON_INTEGER_FORMAT "\">",
                   json_integer_value(json_object_get(v, "id")));
        text(env, b, json_object_get(v, "name"));
        buf_addstr(b, "</a></td><td class=\"hide-narrow\">");
        text(env, b, json_object_get(v, "version"));
        buf_addstr(b, "</td><td class=\"num\">");
        text(env, b, json_object_get(v, "device_count"));
        buf_addstr(b, "</td></tr>");
    }
    if (json_array_size(software) == 0)
        buf_addstr(b, "<tr><td colspan=\"3\" class=\"muted\">No software read yet.</td></tr>");
    buf_printf(b,
               "</tbody></table></div><p><a href=\"/software?client=%" PRId64
               "\">All software of this client</a></p>",
               id);

    /* Recent sync results. */
    buf_addstr(b, "<h2>Recent syncs</h2><div class=\"tablewrap\"><table id=\"client-syncs\"><thead>"
                  "<tr><th>Run</th><th>Started</th><th>Result</th><th class=\"num\">Devices</th>"
                  "<th>Problem</th></tr></thead><tbody>");
    json_array_foreach(json_object_get(row, "recent_syncs"), i, v)
    {
        buf_printf(b,
                   "<tr><td><a href=\"/runs/%" JSON_INTEGER_FORMAT "\">#%" JSON_INTEGER_FORMAT
                   "</a></td><td>",
                   json_integer_value(json_object_get(v, "run_id")),
                   json_integer_value(json_object_get(v, "run_id")));
        when(env, b, json_object_get(v, "started_at"));
        buf_addstr(b, "</td><td><span class=\"pill ");
        text(env, b, json_object_get(v, "status"));
        buf_addstr(b, "\">");
        text(env, b, json_object_get(v, "status"));
        buf_addstr(b, "</span></td><td class=\"num\">");
        text(env, b, json_object_get(v, "devices"));
        buf_addstr(b, "</td><td>");
        if (json_is_string(jpath(v, "error.message")))
            text(env, b, jpath(v, "error.message"));
        buf_addstr(b, "</td></tr>");
    }
    if (json_array_size(json_object_get(row, "recent_syncs")) == 0)
        buf_addstr(b, "<tr><td colspan=\"5\" class=\"muted\">No sync has reached this tenant "
                      "yet.</td></tr>");
    buf_addstr(b, "</tbody></table></div>");
    env->page_end(c->resp);
out:
    json_decref(row);
    json_decref(devices);
    json_decref(software);
}

void
ui_client_post(const struct ui_client_env *env, const struct route_call *c)
{
    const struct api_app *app = c->app;
    const char *body = c->req->body != NULL ? c->req->body : "";
    char *action = env->form_value(body, "action"), *name = NULL;
    char idtxt[32], to[96];
    struct errbuf eb = {0};
    json_t *row = NULL;
    const char *done = NULL;
    int64_t run = 0;
    int rc = ERR_OK;

    snprintf(idtxt, sizeof idtxt, "%" PRId64, c->id[0]);
    if (action != NULL && strcmp(action, "exclude") == 0) {
        rc = store_client_update(c->req->st, c->p->account_id, idtxt, 0, NULL, &eb);
        done = "excluded";
    } else if (action != NULL && strcmp(action, "include") == 0) {
        rc = store_client_update(c->req->st, c->p->account_id, idtxt, 1, NULL, &eb);
        done = "included";
    } else if (action != NULL && strcmp(action, "rename") == 0) {
        name = env->form_value(body, "name");
        if (name == NULL || strlen(name) > 256)
            rc = err_set(&eb, ERR_INVAL, "a name is at most 256 bytes");
        else
            rc = store_client_update(c->req->st, c->p->account_id, idtxt, -1, name, &eb);
        done = "renamed";
    } else if (action != NULL && strcmp(action, "sync") == 0) {
        rc = api_client_json(c->req->st, c->p->account_id, c->id[0], clock_now(), &row, &eb);
        if (rc == ERR_OK && app->sched == NULL)
            rc = err_set(&eb, ERR_UNSUPPORTED, "the scheduler is not running");
        if (rc == ERR_OK)
            rc = scheduler_request_tenant(
                app->sched, c->req->st, c->p->account_id,
                json_integer_value(json_object_get(row, "integration_id")),
                json_string_value(json_object_get(row, "tenant_id")),
                json_string_value(json_object_get(row, "name")),
                json_string_value(json_object_get(row, "default_domain")), &run, &eb);
        done = "sync";
    } else {
        rc = err_set(&eb, ERR_INVAL, "unknown action");
    }
    if (rc == ERR_OK) {
        log_info("client changed id=%" PRId64 " by=%s action=%s", c->id[0], c->p->name, done);
        if (run > 0) /* as the integration's "Sync now": the new run's page, live */
            snprintf(to, sizeof to, "/runs/%" PRId64, run);
        else
            snprintf(to, sizeof to, "/clients/%" PRId64 "?done=%s", c->id[0], done);
        c->resp->status = 303;
        c->resp->content_type = "text/plain";
        buf_reset(&c->resp->body);
        httpd_response_header(c->resp, "Location", to);
    } else {
        c->resp->status = rc == ERR_NOTFOUND                                             ? 404
                          : rc == ERR_TIMEOUT                                            ? 503
                          : rc == ERR_INVAL || rc == ERR_EXISTS || rc == ERR_UNSUPPORTED ? 409
                                                                                         : 500;
        if (c->resp->status >= 500)
            log_warn("ui: a client change failed route=%s error=\"%s\"", c->req->path, eb.msg);
        env->page_begin(c->resp, c->p, "Not done", "/clients");
        buf_addstr(&c->resp->body, "<div class=\"notice bad\">");
        env->esc(&c->resp->body, c->resp->status >= 500 ? "The change could not be saved; the "
                                                          "cause is in the server's log."
                                                        : eb.msg);
        buf_printf(&c->resp->body,
                   "</div><p><a href=\"/clients/%" PRId64 "\">Back to the client</a></p>",
                   c->id[0]);
        env->page_end(c->resp);
    }
    json_decref(row);
    free(action);
    free(name);
}
