/* ui.c - server-rendered HTML pages of the web UI. */
#include "ui.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <sodium.h>

#include "app.h"
#include "asset.h"
#include "auth.h"
#include "clock.h"
#include "expiry.h"
#include "flight.h"
#include "hwfilter.h"
#include "insight.h"
#include "integration.h"
#include "log.h"
#include "mem.h"
#include "output.h"
#include "rowjson.h"
#include "scheduler.h"
#include "store.h"
#include "ui_client.h"
#include "ui_device.h"
#include "ui_help.h"
#include "ui_runs.h"
#include "ui_sso.h"
#include "ui_software.h"
#include "ui_totp.h"
#include "ui_webhooks.h"
#include "utf8.h"
#include "validate.h"

#define PAGE_SIZE 50
/* The filters kept for links: a whole request head (MHD's 128 KiB) percent-encoded fits, so
 * a link never loses a filter; escaped for HTML, twice that. */
#define QUERY_KEEP_MAX ((size_t)4 * 128 * 1024)

static const char app_css[] =
#include "../../www/app_css.inc"
    ;
static const char app_js[] =
#include "../../www/app_js.inc"
    ;

/* ---- helpers
 * -----------------------------------------------------------------------------
 */

void
ui_esc(struct buf *b, const char *s)
{
    if (s == NULL)
        return;
    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        switch (c) {
        case '&':
            buf_addstr(b, "&amp;");
            break;
        case '<':
            buf_addstr(b, "&lt;");
            break;
        case '>':
            buf_addstr(b, "&gt;");
            break;
        case '"':
            buf_addstr(b, "&quot;");
            break;
        case '\'':
            buf_addstr(b, "&#39;");
            break;
        default:
            if (c < 0x20 && c != '\n' && c != '\t')
                buf_addc(b, ' ');
            else
                buf_addc(b, (char)c);
        }
    }
}

static int
hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

char *
ui_form_value(const char *body, const char *key)
{
    size_t klen = strlen(key);
    const char *p = body;

    while (p != NULL && *p != '\0') {
        const char *amp = strchr(p, '&');
        const char *end = amp != NULL ? amp : p + strlen(p);

        if ((size_t)(end - p) > klen && strncmp(p, key, klen) == 0 && p[klen] == '=') {
            char *out = xmalloc((size_t)(end - p) + 1), *o = out;

            for (const char *q = p + klen + 1; q < end; q++) {
                if (*q == '+') {
                    *o++ = ' ';
                } else if (*q == '%' && end - q > 2 && hexval(q[1]) >= 0 && hexval(q[2]) >= 0) {
                    *o++ = (char)(hexval(q[1]) * 16 + hexval(q[2]));
                    q += 2;
                } else {
                    *o++ = *q;
                }
            }
            *o = '\0';
            return out;
        }
        if ((size_t)(end - p) == klen && strncmp(p, key, klen) == 0)
            return xstrdup("");
        p = amp != NULL ? amp + 1 : NULL;
    }
    return NULL;
}

static void
esc_attr_url(struct buf *b, const char *s)
{
    /* Query values: percent-encode, then HTML-escape the result (it has no HTML
     * specials). */
    buf_add_urlenc(b, s != NULL ? s : "");
}

static void
fmt_ts_json(struct buf *b, const json_t *v)
{
    const char *s = json_string_value(v);

    if (s == NULL) {
        buf_addstr(b, "<span class=\"muted\">—</span>");
        return;
    }
    buf_addstr(b, "<span title=\"");
    ui_esc(b, s);
    buf_addstr(b, "\">");
    if (strlen(s) >= 16) {
        char d[17];
        snprintf(d, sizeof d, "%.10s %.5s", s, s + 11);
        ui_esc(b, d);
    } else {
        ui_esc(b, s);
    }
    buf_addstr(b, "</span>");
}

/* Appends a JSON value as escaped text; null becomes a dash. */
static void
jtext(struct buf *b, const json_t *v)
{
    char num[32];

    if (v == NULL || json_is_null(v)) {
        buf_addstr(b, "<span class=\"muted\">—</span>");
    } else if (json_is_string(v)) {
        ui_esc(b, json_string_value(v));
    } else if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        buf_addstr(b, num);
    } else if (json_is_boolean(v)) {
        buf_addstr(b, json_is_true(v) ? "yes" : "no");
    } else {
        char *s = json_dumps(v, JSON_ENCODE_ANY | JSON_COMPACT);
        ui_esc(b, s);
        free(s);
    }
}

static const json_t *
jpath(const json_t *row, const char *path)
{
    return output_lookup(row, path);
}

/* Microsoft's request id and date of a failure, which its support asks for. */
static void
support_ids(struct buf *b, const json_t *row)
{
    if (!json_is_string(jpath(row, "error.request_id")))
        return;
    buf_addstr(b, "<div class=\"muted mono\">request-id ");
    jtext(b, jpath(row, "error.request_id"));
    if (json_is_string(jpath(row, "error.date"))) {
        buf_addstr(b, " &middot; date ");
        jtext(b, jpath(row, "error.date"));
    }
    buf_addstr(b, "</div>");
}

static void
pill(struct buf *b, const char *status)
{
    buf_addstr(b, "<span class=\"pill ");
    ui_esc(b, status);
    buf_addstr(b, "\">");
    ui_esc(b, status);
    buf_addstr(b, "</span>");
}

struct page {
    struct api_app *app;
    struct httpd_request *req;
    struct httpd_response *resp;
    struct auth_principal p;
    struct buf *b;
    int store_rc; /* the first failed store read: page_end answers an error page instead */
};

/* Records a failed store call (rc) of the page being built, logged with its cause; page_end
 * then answers an error page, never the page built from whatever came back. */
static void
page_store_failed(struct page *pg, int rc, const struct errbuf *eb)
{
    if (pg->store_rc != ERR_OK)
        return;
    pg->store_rc = rc;
    log_warn("ui: a database call failed route=%s error=\"%s\"", pg->req->path,
             eb != NULL && eb->msg[0] != '\0' ? eb->msg : err_str(rc));
}

/* The status of a failed store call: a busy database is worth a retry. */
static int
store_status(int rc)
{
    return rc == ERR_TIMEOUT ? 503 : 500;
}

/* What a page says about a failed store call (rc, eb): a database or file error names the file,
 * so it goes to the log and the page says what to do; every other message (a wrong value, a
 * limit) is the user's. Also ui_totp's (struct ui_totp_env). */
static const char *
store_msg(const struct httpd_request *req, int rc, const struct errbuf *eb)
{
    if (rc != ERR_DB && rc != ERR_TIMEOUT && rc != ERR_IO)
        return eb->msg;
    log_warn("ui: a database call failed route=%s error=\"%s\"", req->path, eb->msg);
    return rc == ERR_TIMEOUT ? "The database is busy; try again in a moment."
                             : "The database could not be read; the cause is in the server's log.";
}

static void
page_begin(struct page *pg, const char *title, const char *active)
{
    static const char *const nav[][2] = {
        {"/", "Overview"},       {"/assets", "Hardware"}, {"/software", "Software"},
        {"/clients", "Clients"}, {"/runs", "Sync runs"},  {"/integrations", "Integrations"},
    };
    struct buf *b = pg->b;

    pg->resp->html = 1;
    pg->resp->content_type = "text/html; charset=utf-8";
    buf_reset(b);
    buf_addstr(b, "<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"
                  "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                  "<title>");
    ui_esc(b, title);
    buf_addstr(b, " · memsync</title><link rel=\"stylesheet\" href=\"/static/app.css\">"
                  "<script src=\"/static/app.js\" defer></script></head><body>");
    if (pg->p.account_id != 0) {
        buf_addstr(b, "<header class=\"top\"><a class=\"brand\" "
                      "href=\"/assets\">memsync</a><nav>");
        for (size_t i = 0; i < sizeof nav / sizeof nav[0]; i++)
            buf_printf(b, "<a href=\"%s\"%s>%s</a>", nav[i][0],
                       active != NULL && strcmp(active, nav[i][0]) == 0 ? " class=\"on\"" : "",
                       nav[i][1]);
        if (pg->p.role == AUTH_ADMIN)
            buf_printf(b,
                       "<a href=\"/users\"%s>Users</a><a href=\"/api-keys\"%s>API keys</a>"
                       "<a href=\"/webhooks\"%s>Webhooks</a>",
                       active != NULL && strcmp(active, "/users") == 0 ? " class=\"on\"" : "",
                       active != NULL && strcmp(active, "/api-keys") == 0 ? " class=\"on\"" : "",
                       active != NULL && strcmp(active, "/webhooks") == 0 ? " class=\"on\"" : "");
        if (pg->p.role == AUTH_ADMIN)
            buf_printf(b, "<a href=\"/settings/sso\"%s>Sign-in</a>",
                       active != NULL && strcmp(active, "/settings/sso") == 0 ? " class=\"on\""
                                                                              : "");
        buf_printf(b, "<a href=\"/security\"%s>Security</a>",
                   active != NULL && strcmp(active, "/security") == 0 ? " class=\"on\"" : "");
        buf_addstr(b, "</nav><div class=\"who\"><span>");
        ui_esc(b, pg->p.name);
        buf_printf(b,
                   " · %s</span><form method=\"post\" action=\"/logout\">"
                   "<input type=\"hidden\" name=\"csrf\" value=\"%s\">"
                   "<button class=\"ghost\" type=\"submit\">Sign out</button></form></div>"
                   "</header>",
                   pg->p.role == AUTH_ADMIN ? "admin" : "viewer", pg->p.csrf);
    }
    buf_addstr(b, "<main>");
}

static void notice(struct buf *b, const char *kind, const char *msg);

static void
page_end(struct page *pg)
{
    if (pg->store_rc != ERR_OK) {
        int rc = pg->store_rc;

        pg->store_rc = ERR_OK; /* page_begin below must not loop back here */
        pg->resp->status = store_status(rc);
        page_begin(pg, "Error", NULL);
        if (rc == ERR_TIMEOUT) {
            httpd_response_header(pg->resp, "Retry-After", "5");
            notice(pg->b, "bad", "The database is busy; try again in a moment.");
        } else {
            notice(pg->b, "bad",
                   "This page could not be read from the database; the cause is "
                   "in the server's log.");
        }
        buf_addstr(pg->b, "</main></body></html>");
        return;
    }
    buf_addstr(pg->b, "</main></body></html>");
    pg->resp->status = pg->resp->status ? pg->resp->status : 200;
}

static void
csrf_field(struct page *pg)
{
    buf_printf(pg->b, "<input type=\"hidden\" name=\"csrf\" value=\"%s\">", pg->p.csrf);
}

static void
redirect(struct httpd_response *resp, const char *to)
{
    resp->status = 303;
    resp->content_type = "text/plain";
    buf_reset(&resp->body);
    /* "": a target too long to build (its buffer failed); never a Location to nowhere. */
    httpd_response_header(resp, "Location", to[0] != '\0' ? to : "/");
}

static void
notice(struct buf *b, const char *kind, const char *msg)
{
    buf_printf(b, "<div class=\"notice %s\">", kind);
    ui_esc(b, msg);
    buf_addstr(b, "</div>");
}

static void
empty_state(struct buf *b, const char *title, const char *html_hint)
{
    buf_addstr(b, "<div class=\"empty\"><strong>");
    ui_esc(b, title);
    buf_printf(b, "</strong>%s</div>", html_hint);
}

/* ---- sign in / out
 * ----------------------------------------------------------------------- */

static void
login_page(struct page *pg, const char *error, const char *next)
{
    struct buf *b = pg->b;

    page_begin(pg, "Sign in", NULL);
    buf_addstr(b, "<div class=\"login panel\"><h1>Sign in to memsync</h1>");
    if (error != NULL)
        notice(b, "bad", error);
    ui_sso_login_buttons(pg->req->st, b, next, ui_esc); /* "Sign in with Microsoft" (ui_sso.c) */
    buf_addstr(b, "<form class=\"stack\" method=\"post\" action=\"/login\">"
                  "<label>User name<input type=\"text\" name=\"name\" "
                  "autocomplete=\"username\" "
                  "required autofocus></label>"
                  "<label>Password<input type=\"password\" name=\"password\" "
                  "autocomplete=\"current-password\" required></label>"
                  "<input type=\"hidden\" name=\"next\" value=\"");
    ui_esc(b, next != NULL ? next : "/assets");
    buf_addstr(b, "\"><button type=\"submit\">Sign in</button></form></div>");
    page_end(pg);
}

/* Only local paths: never redirect to another site after sign-in. A browser strips tabs and
 * newlines from a Location and reads '\\' as '/', so "/\t/evil.example" would be another
 * origin: accept only '/' then [A-Za-z0-9/_.?=&%+,:~-], no "//", and no %-escape of a control
 * character, '/' or '\\'. */
static const char *
safe_next(const char *next)
{
    static const char safe[] = "/_.?=&%+,:~-";

    if (next == NULL || next[0] != '/' || strstr(next, "//") != NULL || strlen(next) > 1024)
        return "/assets";
    for (const char *p = next; *p != '\0'; p++) {
        unsigned char c = (unsigned char)*p;

        if (!isalnum(c) && strchr(safe, c) == NULL)
            return "/assets";
        if (c == '%') {
            char hex[3] = {0};
            long v;

            if (!isxdigit((unsigned char)p[1]) || !isxdigit((unsigned char)p[2]))
                return "/assets";
            hex[0] = p[1];
            hex[1] = p[2];
            v = strtol(hex, NULL, 16);
            if (v < 0x20 || v == 0x7f || v == '/' || v == '\\')
                return "/assets";
        }
    }
    return next;
}

/* ---- what ui_totp.c borrows (ui_totp.h) ------------------------------------------------ */

static void
totp_page_begin(struct httpd_response *resp, const struct auth_principal *p, const char *title,
                const char *active)
{
    struct page pg;

    memset(&pg, 0, sizeof pg);
    pg.resp = resp;
    pg.b = &resp->body;
    if (p != NULL)
        pg.p = *p;
    page_begin(&pg, title, active);
}

static void
totp_page_end(struct httpd_response *resp)
{
    struct page pg;

    memset(&pg, 0, sizeof pg);
    pg.resp = resp;
    pg.b = &resp->body;
    page_end(&pg);
}

static const struct ui_totp_env *
totp_env(const struct api_app *app, struct ui_totp_env *e)
{
    e->vault = app->vault;
    e->session_cookie = APP_SESSION_COOKIE;
    e->page_begin = totp_page_begin;
    e->page_end = totp_page_end;
    e->esc = ui_esc;
    e->form_value = ui_form_value;
    e->safe_next = safe_next;
    e->store_msg = store_msg;
    return e;
}

static const struct ui_client_env *
client_env(struct ui_client_env *e)
{
    e->page_begin = totp_page_begin;
    e->page_end = totp_page_end;
    e->esc = ui_esc;
    e->form_value = ui_form_value;
    return e;
}

static void
login_post(struct page *pg)
{
    char *name = ui_form_value(pg->req->body, "name");
    char *pw = ui_form_value(pg->req->body, "password");
    char *next = ui_form_value(pg->req->body, "next");
    char token[AUTH_TOKEN_HEX + 1], cookie[256];
    struct ui_totp_env te;
    struct errbuf eb = {0};
    int rc;

    if (pg->req->st == NULL) {
        pg->resp->status = 503;
        login_page(pg, "The database is not available.", next);
        goto out;
    }
    rc = auth_password_login(pg->req->st, pg->req->ip, name, pw, &pg->p, &eb);
    if (rc == ERR_OK &&
        ui_totp_after_password(totp_env(pg->app, &te), pg->req, pg->resp, &pg->p, safe_next(next)))
        goto out; /* a second factor comes first (ui_totp.c) */
    if (rc == ERR_OK)
        rc = auth_session_start(pg->req->st, pg->req->ip, &pg->p, token, &eb);
    if (rc != ERR_OK) {
        pg->resp->status = rc == ERR_THROTTLED ? 429
                           : rc == ERR_AUTH    ? 401
                           : rc == ERR_DENIED  ? 403
                                               : store_status(rc);
        memset(&pg->p, 0, sizeof pg->p);
        login_page(pg, eb.msg, next);
        goto out;
    }
    snprintf(cookie, sizeof cookie, "%s=%s; Path=/; HttpOnly; SameSite=Strict; Max-Age=%d%s",
             APP_SESSION_COOKIE, token, AUTH_SESSION_TTL, pg->req->https ? "; Secure" : "");
    httpd_response_header(pg->resp, "Set-Cookie", cookie);
    redirect(pg->resp, safe_next(next));
out:
    if (pw != NULL) {
        memset(pw, 0, strlen(pw));
        free(pw);
    }
    free(name);
    free(next);
}

static void
logout_post(struct page *pg)
{
    const char *tok = httpd_cookie(pg->req, APP_SESSION_COOKIE);
    char cookie[160];

    if (tok != NULL && pg->req->st != NULL)
        auth_logout(pg->req->st, tok);
    snprintf(cookie, sizeof cookie, "%s=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0%s",
             APP_SESSION_COOKIE, pg->req->https ? "; Secure" : "");
    httpd_response_header(pg->resp, "Set-Cookie", cookie);
    redirect(pg->resp, "/login");
}

/* ---- list plumbing
 * ----------------------------------------------------------------------- */

struct rows {
    json_t *arr;
};

static int
rows_cells_cb(void *arg, const struct store_cell *cells, size_t n)
{
    struct rows *r = arg;

    json_array_append_new(r->arr, rowjson_cells(cells, n));
    return 0;
}

static int
rows_asset_cb(void *arg, const struct asset *a)
{
    struct rows *r = arg;

    json_array_append_new(r->arr, asset_to_json(a));
    return 0;
}

static json_t *
list_rows(struct page *pg, const char *entity, int64_t parent, const struct store_filter *f,
          size_t nf, const struct store_sort *s, size_t ns, const char *search, int64_t offset,
          int limit, int64_t *total)
{
    struct list_query q = {0};
    struct rows r = {json_array()};
    struct errbuf eb = {0};
    int rc;

    q.entity = entity;
    q.account_id = pg->p.account_id;
    q.parent_id = parent;
    q.filters = f;
    q.nfilters = nf;
    q.sorts = s;
    q.nsorts = ns;
    q.search = search;
    if (total != NULL && (*total = store_list_count(pg->req->st, &q, &eb)) < 0) {
        page_store_failed(pg, (int)*total, &eb);
        *total = 0;
    }
    q.offset = offset;
    q.limit = limit;
    if ((rc = store_list_each(pg->req->st, &q, rows_cells_cb, &r, &eb)) != ERR_OK)
        page_store_failed(pg, rc, &eb);
    return r.arr;
}

static int64_t
arg_page(struct page *pg)
{
    const char *s = httpd_arg(pg->req, "page");
    char *end;
    long long v;

    if (s == NULL)
        return 1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 1 || v > 1000000)
        return 1;
    return v;
}

static const char *
arg_nonempty(struct page *pg, const char *name)
{
    const char *v = httpd_arg(pg->req, name);

    return v != NULL && v[0] != '\0' ? v : NULL;
}

/* Query string of the current filters (without page/sort), for links. */
static void
query_keep(struct page *pg, struct buf *q, const char *const *keys, size_t n, const char *skip)
{
    for (size_t i = 0; i < n; i++) {
        const char *v = arg_nonempty(pg, keys[i]);

        if (v == NULL || (skip != NULL && strcmp(keys[i], skip) == 0))
            continue;
        buf_printf(q, "&%s=", keys[i]);
        esc_attr_url(q, v);
    }
}

/* A pager for pages of size rows. */
static void
pager_n(struct page *pg, const char *base, const char *keep, int64_t page, int64_t total, int size)
{
    struct buf *b = pg->b;
    int64_t pages = total <= 0 ? 1 : (total + size - 1) / size;

    buf_printf(b,
               "<div class=\"pager\"><span>%" PRId64 " total · page %" PRId64 " of %" PRId64
               "</span><span>",
               total < 0 ? 0 : total, page, pages);
    if (page > 1)
        buf_printf(b,
                   "<a class=\"btn ghost\" rel=\"prev\" href=\"%s?page=%" PRId64 "%s\">"
                   "← Previous</a> ",
                   base, page - 1, keep);
    if (page < pages)
        buf_printf(b,
                   "<a class=\"btn ghost\" rel=\"next\" href=\"%s?page=%" PRId64 "%s\">"
                   "Next →</a>",
                   base, page + 1, keep);
    buf_addstr(b, "</span></div>");
}

static void
pager(struct page *pg, const char *base, const char *keep, int64_t page, int64_t total)
{
    pager_n(pg, base, keep, page, total, PAGE_SIZE);
}

/* Sortable column header. */
static void
sort_th(struct page *pg, const char *base, const char *keep, const char *field, const char *label,
        const char *cls)
{
    const char *cur = arg_nonempty(pg, "sort");
    int on =
        cur != NULL && (strcmp(cur, field) == 0 || (cur[0] == '-' && strcmp(cur + 1, field) == 0));
    int desc = on && cur[0] == '-';

    buf_printf(pg->b, "<th%s%s%s><a href=\"%s?sort=%s%s%s\">%s%s</a></th>", cls ? " class=\"" : "",
               cls ? cls : "", cls ? "\"" : "", base, on && !desc ? "-" : "", field, keep, label,
               on ? (desc ? " ↓" : " ↑") : "");
}

static int
parse_sort(const char *s, struct store_sort *out, const char *entity)
{
    if (s == NULL)
        return 0;
    out->desc = s[0] == '-';
    out->field = s[0] == '-' ? s + 1 : s;
    return store_list_has_field(entity, out->field) ? 1 : 0;
}

/* ---- hardware
 * ----------------------------------------------------------------------------
 */

static void
client_options(struct page *pg, const char *selected)
{
    json_t *rows = list_rows(pg, "clients", 0, NULL, 0, NULL, 0, NULL, 0, 2000, NULL);
    size_t i;
    json_t *row;

    buf_addstr(pg->b, "<option value=\"\">All clients</option>");
    json_array_foreach(rows, i, row)
    {
        char id[32];

        snprintf(id, sizeof id, "%" JSON_INTEGER_FORMAT,
                 json_integer_value(json_object_get(row, "id")));
        buf_printf(pg->b, "<option value=\"%s\"%s>", id,
                   selected != NULL && strcmp(selected, id) == 0 ? " selected" : "");
        ui_esc(pg->b, json_string_value(json_object_get(row, "name")));
        if (json_string_value(json_object_get(row, "name")) == NULL)
            ui_esc(pg->b, json_string_value(json_object_get(row, "tenant_id")));
        buf_addstr(pg->b, "</option>");
    }
    json_decref(rows);
}

/* The hardware list's optional columns (key, header, sort field or NULL) and those shown until a
 * user chooses (preference "hardware.columns"). */
static const char *const hw_cols[][3] = {
    {"client", "Client", "client.name"},
    {"serial", "Serial", "serial_number"},
    {"type", "Type", "type"},
    {"os", "OS", "operating_system.name"},
    {"os_support", "OS support", NULL},
    {"model", "Model", "model"},
    {"user", "User", "user.principal_name"},
    {"compliance", "Compliance", "compliance_state"},
    {"encryption", "Encrypted", "is_encrypted"},
    {"age", "Age", "enrolled_at"},
    {"last_check_in", "Last check-in", "last_check_in_at"},
};
#define HW_NCOLS           (sizeof hw_cols / sizeof hw_cols[0])
#define HW_DEFAULT_COLUMNS "client,serial,os,os_support,compliance,last_check_in"
#define HW_PAGE_SIZES                                                                              \
    {                                                                                              \
        25, 50, 100, 200                                                                           \
    }

/* 1 when key is in the comma list cols. */
static int
col_on(const char *cols, const char *key)
{
    size_t n = strlen(key);

    for (const char *p = cols; p != NULL && *p != '\0';) {
        const char *e = strchr(p, ',');
        size_t len = e != NULL ? (size_t)(e - p) : strlen(p);

        if (len == n && strncmp(p, key, n) == 0)
            return 1;
        p = e != NULL ? e + 1 : NULL;
    }
    return 0;
}

/* The user's page size (preference "hardware.page_size"), else PAGE_SIZE. */
static int
hw_page_size(const char *pref)
{
    static const int sizes[] = HW_PAGE_SIZES;

    for (size_t i = 0; pref != NULL && i < sizeof sizes / sizeof sizes[0]; i++)
        if (strtol(pref, NULL, 10) == sizes[i])
            return sizes[i];
    return PAGE_SIZE;
}

/* Age since enrolment for people: days, months or years. */
static void
fmt_age(struct buf *b, const json_t *enrolled, int64_t now)
{
    int64_t t, d;

    if (!json_is_string(enrolled) || clock_parse(json_string_value(enrolled), &t) != 0) {
        buf_addstr(b, "<span class=\"muted\">—</span>");
        return;
    }
    d = (now - t) / 86400;
    if (d < 0)
        d = 0;
    if (d < 60)
        buf_printf(b, "%" PRId64 " d", d);
    else if (d < 730)
        buf_printf(b, "%" PRId64 " mo", d / 30);
    else
        buf_printf(b, "%" PRId64 ".%" PRId64 " y", d / 365, (d % 365) * 10 / 365);
}

/* Why a client's list is empty when it has never synced or its last sync failed (its error and
 * remedy), or nothing when it synced. 1 when it said something. */
static int
client_why_empty(struct page *pg, const char *client)
{
    struct store_filter f = {"id", "eq", client};
    json_t *rows = list_rows(pg, "clients", 0, &f, 1, NULL, 0, NULL, 0, 1, NULL);
    const json_t *row = json_array_get(rows, 0);
    const char *status = json_string_value(json_object_get(row, "status"));
    struct buf *b = pg->b;
    int said = 0;

    if (status != NULL && strcmp(status, "ok") != 0) {
        buf_addstr(b, "<div class=\"empty\" id=\"why-empty\"><strong>");
        if (strcmp(status, "never") == 0 && !json_is_string(jpath(row, "error.message")))
            buf_addstr(b, "This client has not been synced yet");
        else
            buf_addstr(b, "This client's devices could not be read");
        buf_addstr(b, "</strong>");
        if (json_is_string(jpath(row, "error.message"))) {
            buf_addstr(b, "<p>");
            jtext(b, jpath(row, "error.message"));
            buf_addstr(b, "</p><p class=\"remedy\">");
            jtext(b, jpath(row, "error.remedy"));
            buf_addstr(b, "</p>");
            support_ids(b, row);
        } else {
            buf_addstr(b, "<p>Its devices appear after the next sync of its integration.</p>");
        }
        buf_printf(b,
                   "<p><a href=\"/clients/%" JSON_INTEGER_FORMAT "\">The client's page</a> has "
                   "what to do and a button to sync it now.</p></div>",
                   json_integer_value(json_object_get(row, "id")));
        said = 1;
    }
    json_decref(rows);
    return said;
}

static void
hw_cell(struct page *pg, const char *key, const json_t *row, int64_t now)
{
    struct buf *b = pg->b;

    if (strcmp(key, "client") == 0) {
        buf_printf(b, "<td><a href=\"/clients/%" JSON_INTEGER_FORMAT "\">",
                   json_integer_value(jpath(row, "client.id")));
        jtext(b, jpath(row, "client.name"));
        buf_addstr(b, "</a></td>");
    } else if (strcmp(key, "serial") == 0) {
        buf_addstr(b, "<td class=\"mono\">");
        jtext(b, json_object_get(row, "serial_number"));
        buf_addstr(b, "</td>");
    } else if (strcmp(key, "type") == 0) {
        buf_addstr(b, "<td>");
        jtext(b, json_object_get(row, "type"));
        buf_addstr(b, "</td>");
    } else if (strcmp(key, "os") == 0) {
        buf_addstr(b, "<td>");
        jtext(b, jpath(row, "operating_system.name"));
        buf_addstr(b, " <span class=\"muted\">");
        jtext(b, jpath(row, "operating_system.version"));
        buf_addstr(b, "</span></td>");
    } else if (strcmp(key, "os_support") == 0) {
        struct device d;
        char st[96];

        memset(&d, 0, sizeof d);
        d.os_name = (char *)json_string_value(jpath(row, "operating_system.name"));
        d.os_version = (char *)json_string_value(jpath(row, "operating_system.version"));
        hwfilter_os_status(&d, now, st, sizeof st);
        /* Short in a list: "ended DATE", "until DATE"; the whole sentence as the title. */
        buf_printf(b, "<td%s title=\"", strncmp(st, "past", 4) == 0 ? " class=\"warn\"" : "");
        ui_esc(b, st);
        buf_addstr(b, "\">");
        if (strncmp(st, "past support since ", 19) == 0)
            buf_printf(b, "ended %s", st + 19);
        else if (strncmp(st, "supported until ", 16) == 0)
            buf_printf(b, "until %s", st + 16);
        else
            ui_esc(b, st);
        buf_addstr(b, "</td>");
    } else if (strcmp(key, "model") == 0) {
        buf_addstr(b, "<td>");
        jtext(b, json_object_get(row, "manufacturer"));
        buf_addstr(b, " <span class=\"muted\">");
        jtext(b, json_object_get(row, "model"));
        buf_addstr(b, "</span></td>");
    } else if (strcmp(key, "user") == 0) {
        buf_addstr(b, "<td>");
        jtext(b, jpath(row, "user.principal_name"));
        buf_addstr(b, "</td>");
    } else if (strcmp(key, "compliance") == 0) {
        const char *c = json_string_value(json_object_get(row, "compliance_state"));

        buf_printf(b, "<td%s>", c != NULL && strcmp(c, "compliant") != 0 ? " class=\"warn\"" : "");
        jtext(b, json_object_get(row, "compliance_state"));
        buf_addstr(b, "</td>");
    } else if (strcmp(key, "encryption") == 0) {
        buf_addstr(b, "<td>");
        jtext(b, json_object_get(row, "is_encrypted"));
        buf_addstr(b, "</td>");
    } else if (strcmp(key, "age") == 0) {
        buf_addstr(b, "<td class=\"num\">");
        fmt_age(b, json_object_get(row, "enrolled_at"), now);
        buf_addstr(b, "</td>");
    } else if (strcmp(key, "last_check_in") == 0) {
        buf_addstr(b, "<td>");
        fmt_ts_json(b, json_object_get(row, "last_check_in_at"));
        buf_addstr(b, "</td>");
    }
}

static void
select_opts(struct buf *b, const char *name, const char *label, const char *cur,
            const char *const (*opts)[2], size_t n)
{
    buf_printf(b, "<label>%s<select name=\"%s\" data-autosubmit><option value=\"\">Any</option>",
               label, name);
    for (size_t i = 0; i < n; i++)
        buf_printf(b, "<option value=\"%s\"%s>%s</option>", opts[i][0],
                   cur != NULL && strcmp(cur, opts[i][0]) == 0 ? " selected" : "", opts[i][1]);
    buf_addstr(b, "</select></label>");
}

static void
text_input(struct buf *b, const char *name, const char *label, const char *type, const char *cur)
{
    buf_printf(b, "<label>%s<input type=\"%s\" name=\"%s\" value=\"", label, type, name);
    ui_esc(b, cur);
    buf_addstr(b, "\"></label>");
}

static void
assets_page(struct page *pg)
{
    static const char *const keys[] = {
        "client",     "os",           "type",           "search",          "os_support",
        "stale_days", "encrypted",    "serial",         "compliance",      "ownership",
        "model",      "manufacturer", "enrolled_after", "enrolled_before", "missing",
        "included"};
    static const char *const oses[] = {"Windows", "macOS", "iOS", "iPadOS", "Android", "Linux"};
    static const char *const types[] = {"WORKSTATION", "SERVER", "VIRTUAL", "MOBILE", "UNKNOWN"};
    static const char *const os_support_opts[][2] = {{"past", "Past end of support"},
                                                     {"ends_within:90", "Ends within 90 days"},
                                                     {"ends_within:365", "Ends within a year"}};
    static const char *const stale_opts[][2] = {
        {"7", "7 days"}, {"30", "30 days"}, {"90", "90 days"}};
    static const char *const enc_opts[][2] = {{"true", "Encrypted"}, {"false", "Not encrypted"}};
    static const char *const serial_opts[][2] = {{"missing", "Missing or placeholder"},
                                                 {"shared", "Shared with another tenant"}};
    static const char *const comp_opts[][2] = {{"compliant", "Compliant"},
                                               {"not_compliant", "Not compliant"},
                                               {"noncompliant", "Non-compliant (Intune)"},
                                               {"inGracePeriod", "In grace period"},
                                               {"unknown", "Unknown"}};
    static const char *const own_opts[][2] = {
        {"company", "Company"}, {"personal", "Personal"}, {"unknown", "Unknown"}};
    static const int sizes[] = HW_PAGE_SIZES;
    struct buf *b = pg->b, keep, csvq;
    struct store_filter f[12];
    struct store_sort so = {"name", 0};
    struct asset_query q = {0};
    struct hwfilter hf;
    struct rows r = {json_array()};
    const char *client = arg_nonempty(pg, "client"), *os = arg_nonempty(pg, "os"),
               *type = arg_nonempty(pg, "type"), *search = arg_nonempty(pg, "search");
    const char *model = arg_nonempty(pg, "model"), *maker = arg_nonempty(pg, "manufacturer"),
               *own = arg_nonempty(pg, "ownership"), *after = arg_nonempty(pg, "enrolled_after"),
               *before = arg_nonempty(pg, "enrolled_before"),
               *missing = arg_nonempty(pg, "missing"), *included = arg_nonempty(pg, "included");
    char *pref_cols = NULL, *pref_size = NULL;
    const char *cols;
    size_t nf = 0, i;
    int64_t page = arg_page(pg), total = 0, now = clock_now();
    int psize, derived, bad = 0;
    json_t *row;
    struct errbuf eb = {0};
    int rc;

    buf_init(&keep, QUERY_KEEP_MAX);
    buf_init(&csvq, QUERY_KEEP_MAX);
    /* The user's columns and page size; a failed read only means the defaults. */
    if (store_pref_get(pg->req->st, pg->p.user_id, "hardware.columns", &pref_cols, &eb) != ERR_OK)
        pref_cols = NULL;
    if (store_pref_get(pg->req->st, pg->p.user_id, "hardware.page_size", &pref_size, &eb) != ERR_OK)
        pref_size = NULL;
    cols = pref_cols != NULL ? pref_cols : HW_DEFAULT_COLUMNS;
    psize = hw_page_size(pref_size);
    hwfilter_init(&hf, now);
    {
        static const char *const hk[] = {"os_support", "stale_days", "encrypted", "serial",
                                         "compliance"};

        for (i = 0; i < sizeof hk / sizeof hk[0]; i++) {
            const char *v = arg_nonempty(pg, hk[i]);

            if (v != NULL && hwfilter_arg(&hf, hk[i], v, &eb) < 0)
                bad = 1;
        }
    }
    derived = hwfilter_active(&hf);
    if (client != NULL)
        f[nf++] = (struct store_filter){"client.id", "eq", client};
    if (os != NULL)
        f[nf++] = (struct store_filter){"operating_system.name", "eq", os};
    if (type != NULL)
        f[nf++] = (struct store_filter){"type", "eq", type};
    if (model != NULL)
        f[nf++] = (struct store_filter){"model", "like", model};
    if (maker != NULL)
        f[nf++] = (struct store_filter){"manufacturer", "like", maker};
    if (own != NULL)
        f[nf++] = (struct store_filter){"ownership", "eq", own};
    if (after != NULL)
        f[nf++] = (struct store_filter){"enrolled_at", "gte", after};
    if (before != NULL)
        f[nf++] = (struct store_filter){"enrolled_at", "lt", before};
    if (missing != NULL && strcmp(missing, "true") == 0)
        f[nf++] = (struct store_filter){"missing_since", "gte", "1970-01-01"};
    if (included != NULL && strcmp(included, "true") == 0)
        f[nf++] = (struct store_filter){"client.included", "eq", "true"};
    q.account_id = pg->p.account_id;
    q.filters = f;
    q.nfilters = nf;
    q.search = search;
    /* By name unless the user sorts: what people look for first. */
    if (!parse_sort(arg_nonempty(pg, "sort"), &so, "hardware"))
        so = (struct store_sort){"name", 0};
    q.sorts = &so;
    q.nsorts = 1;
    if (bad) {
        /* A hand-edited link: the list without the bad filter would mislead. */
        total = 0;
    } else if (derived) {
        rc = hwfilter_each(pg->req->st, &q, &hf, (page - 1) * psize, psize, rows_asset_cb, &r,
                           &total, &eb);
        if (rc == ERR_INVAL) {
            bad = 1;
        } else if (rc != ERR_OK) {
            page_store_failed(pg, rc, &eb);
        }
    } else {
        if ((total = store_assets_count(pg->req->st, &q, &eb)) < 0) {
            if (total == ERR_INVAL)
                bad = 1;
            else
                page_store_failed(pg, (int)total, &eb);
            total = 0;
        }
        q.offset = (page - 1) * psize;
        q.limit = psize;
        if (!bad && (rc = store_assets_each(pg->req->st, &q, rows_asset_cb, &r, &eb)) != ERR_OK) {
            if (rc == ERR_INVAL)
                bad = 1;
            else
                page_store_failed(pg, rc, &eb);
        }
    }

    page_begin(pg, "Hardware", "/assets");
    buf_addstr(b, "<h1>Hardware assets</h1><form class=\"toolbar\" id=\"hw-filters\" "
                  "method=\"get\" action=\"/assets\"><label>Client<select name=\"client\" "
                  "data-autosubmit>");
    client_options(pg, client);
    buf_addstr(b, "</select></label><label>Operating system<select name=\"os\" "
                  "data-autosubmit><option value=\"\">Any</option>");
    for (i = 0; i < sizeof oses / sizeof oses[0]; i++)
        buf_printf(b, "<option%s>%s</option>",
                   os != NULL && strcmp(os, oses[i]) == 0 ? " selected" : "", oses[i]);
    buf_addstr(b, "</select></label><label>Type<select name=\"type\" data-autosubmit>"
                  "<option value=\"\">Any</option>");
    for (i = 0; i < sizeof types / sizeof types[0]; i++)
        buf_printf(b, "<option%s>%s</option>",
                   type != NULL && strcmp(type, types[i]) == 0 ? " selected" : "", types[i]);
    buf_addstr(b, "</select></label>");
    select_opts(b, "os_support", "OS support", arg_nonempty(pg, "os_support"), os_support_opts,
                sizeof os_support_opts / sizeof os_support_opts[0]);
    buf_addstr(b, "<label>Not checked in for<select name=\"stale_days\" data-autosubmit>"
                  "<option value=\"\">Any</option>");
    {
        const char *cur = arg_nonempty(pg, "stale_days");
        int listed = 0;

        for (i = 0; i < sizeof stale_opts / sizeof stale_opts[0]; i++) {
            int on = cur != NULL && strcmp(cur, stale_opts[i][0]) == 0;

            listed |= on;
            buf_printf(b, "<option value=\"%s\"%s>%s</option>", stale_opts[i][0],
                       on ? " selected" : "", stale_opts[i][1]);
        }
        if (cur != NULL && !listed && hf.stale_days > 0)
            buf_printf(b, "<option value=\"%d\" selected>%d days</option>", hf.stale_days,
                       hf.stale_days);
    }
    buf_addstr(b, "</select></label>");
    select_opts(b, "encrypted", "Encryption", arg_nonempty(pg, "encrypted"), enc_opts,
                sizeof enc_opts / sizeof enc_opts[0]);
    select_opts(b, "compliance", "Compliance", arg_nonempty(pg, "compliance"), comp_opts,
                sizeof comp_opts / sizeof comp_opts[0]);
    select_opts(b, "serial", "Serial", arg_nonempty(pg, "serial"), serial_opts,
                sizeof serial_opts / sizeof serial_opts[0]);
    select_opts(b, "ownership", "Ownership", own, own_opts, sizeof own_opts / sizeof own_opts[0]);
    text_input(b, "model", "Model", "search", model);
    text_input(b, "manufacturer", "Manufacturer", "search", maker);
    text_input(b, "enrolled_after", "Enrolled from", "date", after);
    text_input(b, "enrolled_before", "Enrolled before", "date", before);
    buf_printf(b,
               "<label class=\"check\"><input type=\"checkbox\" name=\"missing\" value=\"true\""
               "%s data-autosubmit>Missing from Intune</label>",
               missing != NULL && strcmp(missing, "true") == 0 ? " checked" : "");
    buf_printf(b,
               "<label class=\"check\"><input type=\"checkbox\" name=\"included\" "
               "value=\"true\"%s data-autosubmit>Only clients not excluded</label>",
               included != NULL && strcmp(included, "true") == 0 ? " checked" : "");
    buf_addstr(b, "<label>Search<input type=\"search\" name=\"search\" "
                  "placeholder=\"name, serial, user, model\" value=\"");
    ui_esc(b, search);
    buf_addstr(b, "\"></label><button type=\"submit\">Apply</button>");
    /* The export takes the same filters through the API's filter syntax. */
    {
        static const char *const ff[][2] = {{"client", "filter%5Bclient.id%5D=eq%3A"},
                                            {"os", "filter%5Boperating_system.name%5D=eq%3A"},
                                            {"type", "filter%5Btype%5D=eq%3A"},
                                            {"model", "filter%5Bmodel%5D=like%3A"},
                                            {"manufacturer", "filter%5Bmanufacturer%5D=like%3A"},
                                            {"ownership", "filter%5Bownership%5D=eq%3A"},
                                            {"enrolled_after", "filter%5Benrolled_at%5D=gte%3A"},
                                            {"enrolled_before", "filter%5Benrolled_at%5D=lt%3A"},
                                            {"search", "search="}};

        for (i = 0; i < sizeof ff / sizeof ff[0]; i++) {
            const char *v = arg_nonempty(pg, ff[i][0]);

            if (v == NULL)
                continue;
            buf_printf(&csvq, "&%s", ff[i][1]);
            esc_attr_url(&csvq, v);
        }
    }
    hwfilter_query(&hf, &csvq); /* its values are plain words and numbers */
    if (missing != NULL && strcmp(missing, "true") == 0)
        buf_addstr(&csvq, "&filter%5Bmissing_since%5D=gte%3A1970-01-01");
    if (included != NULL && strcmp(included, "true") == 0)
        buf_addstr(&csvq, "&filter%5Bclient.included%5D=eq%3Atrue");
    buf_addstr(b, "<a class=\"btn ghost\" id=\"export-csv\" "
                  "href=\"/api/v1/assets/hardware.csv?");
    ui_esc(b, csvq.len > 0 ? buf_cstr(&csvq) + 1 : "");
    buf_addstr(b, "\">Export CSV</a>");
    /* The same filters, as files Snipe-IT and GLPI import (docs/API.md "Import formats"). */
    buf_addstr(b, "<a class=\"btn ghost\" id=\"export-snipeit\" "
                  "href=\"/api/v1/assets/hardware.csv?format=snipeit");
    ui_esc(b, buf_cstr(&csvq));
    buf_addstr(b, "\">Snipe-IT CSV</a><a class=\"btn ghost\" id=\"export-glpi\" "
                  "href=\"/api/v1/assets/hardware.jsonl?format=glpi");
    ui_esc(b, buf_cstr(&csvq));
    buf_addstr(b, "\">GLPI inventory</a></form>");
    /* The column chooser and page size, kept per user. */
    buf_addstr(b, "<details class=\"chooser\" id=\"hw-columns\"><summary>Columns and page size"
                  "</summary><form method=\"post\" action=\"/assets/preferences\">");
    csrf_field(pg);
    for (i = 0; i < HW_NCOLS; i++)
        buf_printf(b,
                   "<label class=\"check\"><input type=\"checkbox\" name=\"col\" value=\"%s\"%s>"
                   "%s</label>",
                   hw_cols[i][0], col_on(cols, hw_cols[i][0]) ? " checked" : "", hw_cols[i][1]);
    buf_addstr(b, "<label>Rows per page<select name=\"page_size\">");
    for (i = 0; i < sizeof sizes / sizeof sizes[0]; i++)
        buf_printf(b, "<option%s>%d</option>", sizes[i] == psize ? " selected" : "", sizes[i]);
    buf_addstr(b, "</select></label><input type=\"hidden\" name=\"back\" value=\"");
    query_keep(pg, &keep, keys, sizeof keys / sizeof keys[0], NULL);
    ui_esc(b, keep.len > 0 ? buf_cstr(&keep) + 1 : "");
    buf_addstr(b, "\"><button type=\"submit\">Save</button></form></details>");
    if (bad) {
        buf_addstr(b, "<div class=\"notice bad\">");
        ui_esc(b, eb.msg[0] != '\0' ? eb.msg : "A filter has a value this list does not take.");
        buf_addstr(b, "</div>");
    }
    if (json_array_size(r.arr) == 0) {
        buf_addstr(b, "<div class=\"tablewrap\">");
        if (client != NULL && client_why_empty(pg, client))
            ;
        else if (nf > 0 || search != NULL || derived)
            empty_state(b, "No device matches these filters",
                        "<p><a href=\"/assets\">Clear the filters</a></p>");
        else
            empty_state(b, "No devices yet",
                        "<p>Add an integration under <a "
                        "href=\"/integrations\">Integrations</a>; "
                        "its first sync fills this list.</p>");
        buf_addstr(b, "</div>");
    } else {
        struct buf ek; /* the filters, HTML-escaped for the sort links */

        buf_init(&ek, 2 * QUERY_KEEP_MAX);
        ui_esc(&ek, buf_cstr(&keep));
        buf_addstr(b, "<div class=\"tablewrap\"><table id=\"assets\"><thead><tr>");
        sort_th(pg, "/assets", buf_cstr(&ek), "name", "Name", NULL);
        for (i = 0; i < HW_NCOLS; i++) {
            if (!col_on(cols, hw_cols[i][0]))
                continue;
            if (hw_cols[i][2] != NULL)
                sort_th(pg, "/assets", buf_cstr(&ek), hw_cols[i][2], hw_cols[i][1], NULL);
            else
                buf_printf(b, "<th>%s</th>", hw_cols[i][1]);
        }
        buf_free(&ek);
        buf_addstr(b, "</tr></thead><tbody>");
        json_array_foreach(r.arr, i, row)
        {
            buf_printf(b, "<tr><td><a href=\"/assets/%" JSON_INTEGER_FORMAT "\">",
                       json_integer_value(json_object_get(row, "id")));
            jtext(b, json_object_get(row, "name"));
            buf_addstr(b, "</a>");
            if (json_is_string(json_object_get(row, "missing_since")))
                buf_addstr(b, " <span class=\"pill warn\" title=\"not in Intune's last "
                              "listing; kept until it has been missing for a while\">"
                              "missing</span>");
            buf_addstr(b, "</td>");
            for (size_t k = 0; k < HW_NCOLS; k++)
                if (col_on(cols, hw_cols[k][0]))
                    hw_cell(pg, hw_cols[k][0], row, now);
            buf_addstr(b, "</tr>");
        }
        buf_addstr(b, "</tbody></table></div>");
    }
    {
        struct buf ek;
        const char *sort = arg_nonempty(pg, "sort");

        buf_init(&ek, 2 * QUERY_KEEP_MAX);
        if (sort != NULL) {
            buf_addstr(&keep, "&sort=");
            esc_attr_url(&keep, sort);
        }
        ui_esc(&ek, buf_cstr(&keep));
        pager_n(pg, "/assets", buf_cstr(&ek), page, total, psize);
        buf_free(&ek);
    }
    page_end(pg);
    json_decref(r.arr);
    buf_free(&keep);
    buf_free(&csvq);
    free(pref_cols);
    free(pref_size);
}

/* POST /assets/preferences: the user's columns (col=KEY, repeated) and page size, then back to
 * the list (back: its query). */
static void
assets_prefs_post(struct page *pg)
{
    const char *body = pg->req->body != NULL ? pg->req->body : "";
    char *size = ui_form_value(body, "page_size"), *back = ui_form_value(body, "back");
    struct buf cols, to;
    struct errbuf eb = {0};
    char num[16];
    int rc;

    buf_init(&cols, STORE_PREF_MAX);
    buf_init(&to, QUERY_KEEP_MAX);
    /* Only known keys, in the table's order: col=a&col=b arrive as repeated pairs. */
    for (size_t i = 0; i < HW_NCOLS; i++) {
        char pat[64];
        const char *p = body;
        size_t n;

        snprintf(pat, sizeof pat, "col=%s", hw_cols[i][0]);
        n = strlen(pat);
        while ((p = strstr(p, pat)) != NULL) {
            if ((p == body || p[-1] == '&') && (p[n] == '&' || p[n] == '\0')) {
                buf_printf(&cols, "%s%s", cols.len > 0 ? "," : "", hw_cols[i][0]);
                break;
            }
            p += n;
        }
    }
    snprintf(num, sizeof num, "%d", hw_page_size(size));
    rc = store_pref_set(pg->req->st, pg->p.user_id, "hardware.columns", buf_cstr(&cols), &eb);
    if (rc == ERR_OK)
        rc = store_pref_set(pg->req->st, pg->p.user_id, "hardware.page_size", num, &eb);
    if (rc != ERR_OK) {
        pg->resp->status = store_status(rc);
        page_begin(pg, "Not saved", "/assets");
        notice(pg->b, "bad", store_msg(pg->req, rc, &eb));
        page_end(pg);
    } else {
        buf_addstr(&to, "/assets");
        /* Only a query of this list goes back: never another place. */
        if (back != NULL && back[0] != '\0' && strchr(back, '/') == NULL &&
            strchr(back, '\\') == NULL)
            buf_printf(&to, "?%s", back);
        redirect(pg->resp, buf_cstr(&to));
    }
    free(size);
    free(back);
    buf_free(&cols);
    buf_free(&to);
}

static int
asset_json_cb(void *arg, const struct asset *a)
{
    json_t **out = arg;

    *out = asset_to_json(a);
    return 0;
}

static void
kv(struct buf *b, const char *label, const json_t *v)
{
    buf_addstr(b, "<dt>");
    ui_esc(b, label);
    buf_addstr(b, "</dt><dd>");
    jtext(b, v);
    buf_addstr(b, "</dd>");
}

static void
asset_detail(struct page *pg, int64_t id)
{
    struct buf *b = pg->b;
    const struct ui_device_env denv = {ui_esc};
    json_t *a = NULL, *sw, *hist, *row;
    struct errbuf eb = {0};
    size_t i;
    int rc = store_asset_get(pg->req->st, pg->p.account_id, id, asset_json_cb, &a, &eb);

    if (rc != ERR_OK && rc != ERR_NOTFOUND)
        page_store_failed(pg, rc, &eb);
    if (rc != ERR_OK || a == NULL) {
        json_decref(a);
        pg->resp->status = 404;
        page_begin(pg, "Not found", "/assets");
        empty_state(b, "This device does not exist",
                    "<p><a href=\"/assets\">Back to hardware</a></p>");
        page_end(pg);
        return;
    }
    sw = list_rows(pg, "asset_software", id, NULL, 0, NULL, 0, NULL, 0, 1000, NULL);
    hist = list_rows(pg, "asset_changes", id, NULL, 0, NULL, 0, NULL, 0, 500, NULL);
    page_begin(pg,
               json_string_value(json_object_get(a, "name")) != NULL
                   ? json_string_value(json_object_get(a, "name"))
                   : "Device",
               "/assets");
    buf_addstr(b, "<p class=\"muted\"><a href=\"/assets\">Hardware</a> /</p><h1 "
                  "id=\"asset-name\">");
    jtext(b, json_object_get(a, "name"));
    buf_addstr(b, "</h1>");
    if (json_is_true(json_object_get(a, "serial_duplicate"))) {
        const char *serial = json_string_value(json_object_get(a, "serial_number"));

        buf_addstr(b, "<div class=\"notice warn\" id=\"serial-duplicate\">The same serial "
                      "number is also reported in another tenant: a device that moved between "
                      "customers, or a serial that is not unique.");
        if (serial != NULL) {
            buf_addstr(b, " <a href=\"/assets?search=");
            esc_attr_url(b, serial);
            buf_addstr(b, "\">Show every device with this serial</a>");
        }
        buf_addstr(b, "</div>");
    }
    if (json_is_string(json_object_get(a, "missing_since")) &&
        json_is_null(json_object_get(a, "retired_at"))) {
        buf_addstr(b, "<div class=\"notice warn\" id=\"missing-since\">Intune has not listed "
                      "this device since ");
        fmt_ts_json(b, json_object_get(a, "missing_since"));
        buf_addstr(b, ". It stays active until it has been missing from several complete "
                      "listings over a day (settings retire_after_syncs and "
                      "retire_after_hours), and comes back as it was if Intune lists it "
                      "again.</div>");
    }
    buf_addstr(b, "<div class=\"grid2\"><div class=\"panel\">");
    {
        /* The Intune link goes to the admin center of the integration's cloud; an unreadable
         * integration leaves the global one. */
        json_t *iid = json_object_get(json_object_get(a, "source"), "integration_id");
        struct integration in = {0};
        struct errbuf ieb = {0};

        if (json_is_integer(iid))
            (void)store_integration_get(pg->req->st, pg->p.account_id, json_integer_value(iid), &in,
                                        &ieb);
        ui_device_fields(b, a, in.cloud, clock_now(), &denv);
        integration_clear(&in);
    }
    buf_addstr(b, "</div><div>");
    buf_printf(b, "<h2>Installed software (%zu)</h2><div class=\"tablewrap\">",
               json_array_size(sw));
    if (json_array_size(sw) == 0) {
        empty_state(b, "No software recorded",
                    "<p>Detected applications appear after a sync that reads them.</p>");
    } else {
        buf_addstr(b, "<table id=\"asset-software\"><thead><tr><th>Name</th><th>Version</th>"
                      "<th class=\"hide-narrow\">Publisher</th><th>First "
                      "seen</th></tr></thead>"
                      "<tbody>");
        json_array_foreach(sw, i, row)
        {
            /* A removed install's title may have no device left: no link to an empty
             * page. */
            if (json_is_string(json_object_get(row, "removed_at"))) {
                buf_addstr(b, "<tr><td>");
                jtext(b, json_object_get(row, "name"));
                buf_addstr(b, " <span class=\"pill never\">removed</span>");
            } else {
                buf_printf(b, "<tr><td><a href=\"/software/%" JSON_INTEGER_FORMAT "\">",
                           json_integer_value(json_object_get(row, "software_id")));
                jtext(b, json_object_get(row, "name"));
                buf_addstr(b, "</a>");
            }
            buf_addstr(b, "</td><td>");
            jtext(b, json_object_get(row, "version"));
            buf_addstr(b, "</td><td class=\"hide-narrow\">");
            jtext(b, json_object_get(row, "publisher"));
            buf_addstr(b, "</td><td>");
            fmt_ts_json(b, json_object_get(row, "first_seen_at"));
            buf_addstr(b, "</td></tr>");
        }
        buf_addstr(b, "</tbody></table>");
    }
    buf_addstr(b, "</div><h2>History</h2><div class=\"tablewrap\">");
    ui_device_history(b, hist, clock_now(), &denv);
    buf_addstr(b, "</div></div></div>");
    page_end(pg);
    json_decref(a);
    json_decref(sw);
    json_decref(hist);
}

/* ---- software
 * ----------------------------------------------------------------------------
 */

static void
software_page(struct page *pg)
{
    static const char *const keys[] = {"client", "search"};
    struct buf *b = pg->b, keep, ek;
    struct store_filter f[1];
    struct store_sort so;
    const char *client = arg_nonempty(pg, "client"), *search = arg_nonempty(pg, "search");
    size_t nf = 0, ns = 0, i;
    int64_t page = arg_page(pg), total = 0;
    json_t *rows, *row;

    buf_init(&keep, QUERY_KEEP_MAX);
    buf_init(&ek, 2 * QUERY_KEEP_MAX);
    if (client != NULL)
        f[nf++] = (struct store_filter){"client.id", "eq", client};
    if (parse_sort(arg_nonempty(pg, "sort"), &so, "software"))
        ns = 1;
    rows = list_rows(pg, "software", 0, f, nf, &so, ns, search, (page - 1) * PAGE_SIZE, PAGE_SIZE,
                     &total);
    page_begin(pg, "Software", "/software");
    buf_addstr(b, "<h1>Software</h1><form class=\"toolbar\" method=\"get\" "
                  "action=\"/software\">"
                  "<label>Client<select name=\"client\" data-autosubmit>");
    client_options(pg, client);
    buf_addstr(b, "</select></label><label>Search<input type=\"search\" name=\"search\" "
                  "placeholder=\"name or publisher\" value=\"");
    ui_esc(b, search);
    buf_addstr(b, "\"></label><button type=\"submit\">Apply</button>"
                  "<a class=\"btn ghost\" "
                  "href=\"/api/v1/assets/software.csv\">Export CSV</a>"
                  "<a class=\"btn ghost\" id=\"across-clients\" "
                  "href=\"/software/products\">Across clients</a>"
                  "</form><div class=\"tablewrap\">");
    query_keep(pg, &keep, keys, sizeof keys / sizeof keys[0], NULL);
    ui_esc(&ek, buf_cstr(&keep));
    if (json_array_size(rows) == 0) {
        empty_state(b, nf || search ? "No title matches" : "No software yet",
                    "<p>Software titles appear after a sync reads detected "
                    "applications.</p>");
    } else {
        buf_addstr(b, "<table id=\"software\"><thead><tr>");
        sort_th(pg, "/software", buf_cstr(&ek), "name", "Name", NULL);
        sort_th(pg, "/software", buf_cstr(&ek), "version", "Version", NULL);
        sort_th(pg, "/software", buf_cstr(&ek), "publisher", "Publisher", "hide-narrow");
        sort_th(pg, "/software", buf_cstr(&ek), "client.name", "Client", NULL);
        sort_th(pg, "/software", buf_cstr(&ek), "device_count", "Devices", "num");
        buf_addstr(b, "</tr></thead><tbody>");
        json_array_foreach(rows, i, row)
        {
            buf_printf(b, "<tr><td><a href=\"/software/%" JSON_INTEGER_FORMAT "\">",
                       json_integer_value(json_object_get(row, "id")));
            jtext(b, json_object_get(row, "name"));
            buf_addstr(b, "</a></td><td>");
            jtext(b, json_object_get(row, "version"));
            buf_addstr(b, "</td><td class=\"hide-narrow\">");
            jtext(b, json_object_get(row, "publisher"));
            buf_addstr(b, "</td><td>");
            jtext(b, jpath(row, "client.name"));
            buf_addstr(b, "</td><td class=\"num\">");
            jtext(b, json_object_get(row, "device_count"));
            buf_addstr(b, "</td></tr>");
        }
        buf_addstr(b, "</tbody></table>");
    }
    buf_addstr(b, "</div>");
    if (arg_nonempty(pg, "sort") != NULL) {
        buf_addstr(&keep, "&sort=");
        esc_attr_url(&keep, arg_nonempty(pg, "sort"));
        buf_reset(&ek);
        ui_esc(&ek, buf_cstr(&keep));
    }
    pager(pg, "/software", buf_cstr(&ek), page, total);
    page_end(pg);
    json_decref(rows);
    buf_free(&keep);
    buf_free(&ek);
}

static void
software_detail(struct page *pg, int64_t id)
{
    struct buf *b = pg->b;
    struct store_filter f = {"id", "eq", NULL};
    char idtxt[32];
    json_t *t, *title, *devs, *row;
    int64_t page = arg_page(pg), total = 0;
    size_t i;

    snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
    f.value = idtxt;
    t = list_rows(pg, "software", 0, &f, 1, NULL, 0, NULL, 0, 1, NULL);
    title = json_array_get(t, 0);
    if (title == NULL) {
        json_decref(t);
        pg->resp->status = 404;
        page_begin(pg, "Not found", "/software");
        empty_state(b, "This software title does not exist",
                    "<p><a href=\"/software\">Back to software</a></p>");
        page_end(pg);
        return;
    }
    devs = list_rows(pg, "software_devices", id, NULL, 0, NULL, 0, arg_nonempty(pg, "search"),
                     (page - 1) * PAGE_SIZE, PAGE_SIZE, &total);
    page_begin(pg, json_string_value(json_object_get(title, "name")), "/software");
    buf_addstr(b, "<p class=\"muted\"><a href=\"/software\">Software</a> /</p><h1>");
    jtext(b, json_object_get(title, "name"));
    buf_addstr(b, " <span class=\"muted\">");
    jtext(b, json_object_get(title, "version"));
    buf_addstr(b, "</span></h1><div class=\"panel\"><dl class=\"kv\">");
    kv(b, "Publisher", json_object_get(title, "publisher"));
    kv(b, "Platform", json_object_get(title, "platform"));
    kv(b, "Client", jpath(title, "client.name"));
    kv(b, "Devices", json_object_get(title, "device_count"));
    buf_addstr(b, "</dl></div><h2>Devices</h2><div class=\"tablewrap\">");
    if (json_array_size(devs) == 0) {
        empty_state(b, "No active device has this title", "");
    } else {
        buf_addstr(b, "<table id=\"software-devices\"><thead><tr><th>Name</th><th>Serial</th>"
                      "<th>Client</th><th class=\"hide-narrow\">User</th><th>First seen</th>"
                      "</tr></thead><tbody>");
        json_array_foreach(devs, i, row)
        {
            buf_printf(b, "<tr><td><a href=\"/assets/%" JSON_INTEGER_FORMAT "\">",
                       json_integer_value(json_object_get(row, "id")));
            jtext(b, json_object_get(row, "name"));
            buf_addstr(b, "</a></td><td class=\"mono\">");
            jtext(b, json_object_get(row, "serial_number"));
            buf_addstr(b, "</td><td>");
            jtext(b, jpath(row, "client.name"));
            buf_addstr(b, "</td><td class=\"hide-narrow\">");
            jtext(b, jpath(row, "user.principal_name"));
            buf_addstr(b, "</td><td>");
            fmt_ts_json(b, json_object_get(row, "first_seen_at"));
            buf_addstr(b, "</td></tr>");
        }
        buf_addstr(b, "</tbody></table>");
    }
    buf_addstr(b, "</div>");
    {
        char base[64];
        snprintf(base, sizeof base, "/software/%" PRId64, id);
        pager(pg, base, "", page, total);
    }
    page_end(pg);
    json_decref(t);
    json_decref(devs);
}

/* ---- clients
 * -----------------------------------------------------------------------------
 */

static void
clients_page(struct page *pg)
{
    struct buf *b = pg->b;
    static const char *const statuses[][2] = {
        {"error", "Failing"}, {"never", "Never synced"}, {"ok", "Synced"}};
    const char *search = arg_nonempty(pg, "search"), *status = arg_nonempty(pg, "status");
    const char *order = arg_nonempty(pg, "order");
    struct store_filter f = {"status", "eq", status};
    /* Failing first: "error" < "never" < "ok", then by name. */
    struct store_sort so[2] = {{"status", 0}, {"name", 0}};
    int failing_first = order != NULL && strcmp(order, "status") == 0;
    json_t *rows = list_rows(pg, "clients", 0, &f, status != NULL ? 1 : 0, so,
                             failing_first ? 2 : 0, search, 0, 5000, NULL),
           *row;
    size_t i;

    page_begin(pg, "Clients", "/clients");
    buf_addstr(b, "<h1>Clients</h1><form class=\"toolbar\" method=\"get\" "
                  "action=\"/clients\">"
                  "<label>Status<select name=\"status\" data-autosubmit><option "
                  "value=\"\">Any</option>");
    for (i = 0; i < sizeof statuses / sizeof statuses[0]; i++)
        buf_printf(b, "<option value=\"%s\"%s>%s</option>", statuses[i][0],
                   status != NULL && strcmp(status, statuses[i][0]) == 0 ? " selected" : "",
                   statuses[i][1]);
    buf_printf(b,
               "</select></label><label>Order<select name=\"order\" data-autosubmit><option "
               "value=\"\">By name</option><option value=\"status\"%s>Failing first</option>"
               "</select></label>",
               failing_first ? " selected" : "");
    buf_addstr(b, "<label>Search<input type=\"search\" name=\"search\" value=\"");
    ui_esc(b, search);
    buf_addstr(b, "\"></label><button type=\"submit\">Apply</button><a class=\"btn ghost\" "
                  "href=\"/api/v1/clients.csv\">Export CSV</a></form><div "
                  "class=\"tablewrap\">");
    if (json_array_size(rows) == 0) {
        empty_state(b, "No clients yet",
                    "<p>Customer tenants appear after the first sync of an "
                    "<a href=\"/integrations\">integration</a>.</p>");
    } else {
        buf_addstr(b, "<table id=\"clients\"><thead><tr><th>Client</th><th>Status</th>"
                      "<th class=\"num\">Devices</th><th class=\"num "
                      "hide-narrow\">Software</th>"
                      "<th class=\"hide-narrow\">Last sync</th><th>Problem and fix</th></tr>"
                      "</thead><tbody>");
        json_array_foreach(rows, i, row)
        {
            buf_printf(b, "<tr><td><a href=\"/clients/%" JSON_INTEGER_FORMAT "\">",
                       json_integer_value(json_object_get(row, "id")));
            jtext(b, json_object_get(row, "name"));
            buf_addstr(b, "</a><div class=\"muted mono\">");
            jtext(b, json_object_get(row, "default_domain"));
            buf_addstr(b, "</div></td><td>");
            pill(b, json_string_value(json_object_get(row, "status")));
            buf_addstr(b, "</td><td class=\"num\">");
            jtext(b, json_object_get(row, "device_count"));
            buf_addstr(b, "</td><td class=\"num hide-narrow\">");
            jtext(b, json_object_get(row, "software_count"));
            buf_addstr(b, "</td><td class=\"hide-narrow\">");
            fmt_ts_json(b, json_object_get(row, "last_sync_at"));
            buf_addstr(b, "</td><td>");
            if (json_is_string(jpath(row, "error.message"))) {
                jtext(b, jpath(row, "error.message"));
                buf_addstr(b, "<div class=\"remedy\">");
                jtext(b, jpath(row, "error.remedy"));
                buf_addstr(b, "</div>");
                support_ids(b, row);
            } else if (json_is_string(jpath(row, "warning.code"))) {
                /* Synced, with something the MSP should know (client warning). */
                buf_addstr(b, "<div class=\"client-warning\" data-code=\"");
                ui_esc(b, json_string_value(jpath(row, "warning.code")));
                buf_addstr(b, "\"><span class=\"pill warn\">warning</span> ");
                jtext(b, jpath(row, "warning.message"));
                buf_addstr(b, "<div class=\"remedy\">");
                jtext(b, jpath(row, "warning.remedy"));
                buf_addstr(b, "</div></div>");
            }
            buf_addstr(b, "</td></tr>");
        }
        buf_addstr(b, "</tbody></table>");
    }
    buf_addstr(b, "</div>");
    page_end(pg);
    json_decref(rows);
}

/* ---- sync runs
 * ---------------------------------------------------------------------------
 */

static void
runs_page(struct page *pg)
{
    struct buf *b = pg->b;
    int64_t page = arg_page(pg), total = 0;
    json_t *rows = list_rows(pg, "sync_runs", 0, NULL, 0, NULL, 0, NULL, (page - 1) * PAGE_SIZE,
                             PAGE_SIZE, &total),
           *row;
    size_t i;
    int live = 0;

    page_begin(pg, "Sync runs", "/runs");
    buf_addstr(b, "<h1>Sync runs</h1><div class=\"tablewrap\">");
    if (json_array_size(rows) == 0) {
        empty_state(b, "No sync has run yet",
                    "<p>Saving an <a href=\"/integrations\">integration</a> starts a full "
                    "sync.</p>");
    } else {
        buf_addstr(b, "<table "
                      "id=\"runs\"><thead><tr><th>Run</th><th>Integration</th><th>Kind</th>"
                      "<th>Status</th><th>Started</th><th class=\"num\">Tenants ok / "
                      "failed</th>"
                      "<th class=\"num hide-narrow\">Devices</th></tr></thead><tbody>");
        json_array_foreach(rows, i, row)
        {
            const char *st = json_string_value(json_object_get(row, "status"));

            live |= st != NULL && strcmp(st, "running") == 0;
            buf_printf(b,
                       "<tr><td><a href=\"/runs/%" JSON_INTEGER_FORMAT "\">#%" JSON_INTEGER_FORMAT
                       "</a></td><td>",
                       json_integer_value(json_object_get(row, "id")),
                       json_integer_value(json_object_get(row, "id")));
            jtext(b, json_object_get(row, "integration_name"));
            buf_addstr(b, "</td><td>");
            jtext(b, json_object_get(row, "kind"));
            buf_addstr(b, "</td><td>");
            pill(b, st);
            buf_addstr(b, "</td><td>");
            fmt_ts_json(b, json_object_get(row, "started_at"));
            buf_addstr(b, "</td><td class=\"num\">");
            jtext(b, json_object_get(row, "tenants_ok"));
            buf_addstr(b, " / ");
            jtext(b, json_object_get(row, "tenants_failed"));
            buf_addstr(b, "</td><td class=\"num hide-narrow\">");
            jtext(b, json_object_get(row, "devices"));
            buf_addstr(b, "</td></tr>");
        }
        buf_addstr(b, "</tbody></table>");
    }
    buf_addstr(b, "</div>");
    if (live)
        buf_addstr(b, "<p class=\"muted\" data-live>A sync is running; this page "
                      "refreshes.</p>");
    pager(pg, "/runs", "", page, total);
    page_end(pg);
    json_decref(rows);
}

static void
run_detail(struct page *pg, int64_t id)
{
    struct buf *b = pg->b;
    struct store_filter f = {"id", "eq", NULL};
    const struct ui_runs_env renv = {ui_esc};
    char idtxt[32];
    json_t *r, *run, *tenants;
    const char *st;

    snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
    f.value = idtxt;
    r = list_rows(pg, "sync_runs", 0, &f, 1, NULL, 0, NULL, 0, 1, NULL);
    run = json_array_get(r, 0);
    if (run == NULL) {
        json_decref(r);
        pg->resp->status = 404;
        page_begin(pg, "Not found", "/runs");
        empty_state(b, "This sync run does not exist", "<p><a href=\"/runs\">Back</a></p>");
        page_end(pg);
        return;
    }
    tenants = list_rows(pg, "sync_tenant_results", id, NULL, 0, NULL, 0, NULL, 0, 10000, NULL);
    st = json_string_value(json_object_get(run, "status"));
    page_begin(pg, "Sync run", "/runs");
    buf_printf(b,
               "<p class=\"muted\"><a href=\"/runs\">Sync runs</a> /</p><h1>Sync "
               "run #%" PRId64 " ",
               id);
    pill(b, st);
    buf_addstr(b, "</h1>");
    if (json_string_value(jpath(run, "error.message")) != NULL)
        notice(b, st != NULL && strcmp(st, "failed") == 0 ? "bad" : "warn",
               json_string_value(jpath(run, "error.message")));
    buf_addstr(b, "<div class=\"panel\"><dl class=\"kv\" id=\"run-summary\">");
    kv(b, "Integration", json_object_get(run, "integration_name"));
    kv(b, "Kind", json_object_get(run, "kind"));
    buf_addstr(b, "<dt>Started</dt><dd>");
    fmt_ts_json(b, json_object_get(run, "started_at"));
    buf_addstr(b, "</dd><dt>Finished</dt><dd>");
    fmt_ts_json(b, json_object_get(run, "finished_at"));
    buf_addstr(b, "</dd>");
    kv(b, "Tenants done", json_object_get(run, "tenants_total"));
    kv(b, "Tenants failed", json_object_get(run, "tenants_failed"));
    kv(b, "Devices", json_object_get(run, "devices"));
    kv(b, "Requests", json_object_get(run, "requests"));
    kv(b, "Throttled", json_object_get(run, "throttled"));
    buf_addstr(b, "</dl>");
    if (st != NULL && strcmp(st, "running") == 0)
        buf_addstr(b, "<div class=\"progress running\"><span></span></div><p "
                      "class=\"muted\" data-live>Running — this page refreshes; tenants "
                      "waiting for a slot are pending.</p>");
    buf_addstr(b, "</div><h2>Tenants</h2><div class=\"tablewrap\">");
    ui_runs_tenants(b, pg->app->sched, pg->req->st, id, st != NULL && strcmp(st, "running") == 0,
                    tenants, &renv);
    buf_addstr(b, "</div>");
    page_end(pg);
    json_decref(r);
    json_decref(tenants);
}

/* ---- integrations
 * ------------------------------------------------------------------------ */

static void
validation_html(struct buf *b, const json_t *val)
{
    const json_t *checks = json_object_get(val, "checks"), *c;
    size_t i;

    if (!json_is_array(checks))
        return;
    ui_help_sampled(b, val);
    buf_addstr(b, "<div class=\"tablewrap\"><table id=\"checks\"><thead><tr><th>Check</th>"
                  "<th>Result</th><th>What it means and what to "
                  "do</th></tr></thead><tbody>");
    json_array_foreach(checks, i, c)
    {
        buf_addstr(b, "<tr><td>");
        jtext(b, json_object_get(c, "title"));
        if (json_is_string(json_object_get(c, "tenant_id")) &&
            json_string_length(json_object_get(c, "tenant_id")) > 0) {
            buf_addstr(b, "<div class=\"muted mono\">");
            jtext(b, json_object_get(c, "tenant_id"));
            buf_addstr(b, "</div>");
        }
        buf_addstr(b, "</td><td>");
        pill(b, json_string_value(json_object_get(c, "status")));
        buf_addstr(b, "</td><td>");
        if (json_string_length(json_object_get(c, "microsoft_said")) > 0) {
            buf_addstr(b, "<div class=\"mono muted\">");
            jtext(b, json_object_get(c, "microsoft_said"));
            buf_addstr(b, "</div>");
        }
        jtext(b, json_object_get(c, "message"));
        if (json_string_length(json_object_get(c, "remedy")) > 0) {
            buf_addstr(b, "<div class=\"remedy\">");
            jtext(b, json_object_get(c, "remedy"));
            buf_addstr(b, "</div>");
        }
        buf_addstr(b, "</td></tr>");
    }
    buf_addstr(b, "</tbody></table></div>");
}

static void
add_form(struct page *pg, const char *body, const json_t *val)
{
    static const char *const fields[][4] = {
        {"name", "Name", "text", "optional, e.g. the MSP's name"},
        {"partner_tenant_id", "Microsoft Partner Account ID", "text",
         "the partner's Azure tenant ID"},
        {"partner_app_id", "Microsoft Partner App ID", "text", "Partner Center app (client) ID"},
        {"partner_app_secret", "Microsoft Partner App Key", "password",
         "Partner Center app client secret (its Value, not its ID)"},
        {"sync_app_id", "Microsoft Sync App ID", "text", "sync app (client) ID"},
        {"sync_app_secret", "Microsoft Sync App Key", "password",
         "sync app client secret (its Value, not its ID)"},
        {"partner_app_secret_expires_at", "Partner App Key expires", "date",
         "optional; default 6 months from today"},
        {"sync_app_secret_expires_at", "Sync App Key expires", "date",
         "optional; default 6 months from today"},
    };
    struct buf *b = pg->b;

    buf_addstr(b, "<div class=\"panel\"><h2>Add integration</h2><form class=\"stack\" "
                  "id=\"add-integration\" method=\"post\" action=\"/integrations\">");
    csrf_field(pg);
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        char *sent = body != NULL ? ui_form_value(body, fields[i][0]) : NULL;
        const char *failed = ui_help_field_failure(val, fields[i][0], sent);
        const char *anchor = ui_help_anchor(fields[i][0]);
        char *v = NULL;

        if (sent != NULL)
            memset(sent, 0, strlen(sent));
        free(sent);

        /* After a failed check the values come back, but a key only when its own check
         * passed (the one that failed is to be typed again). */
        if (body != NULL &&
            (strcmp(fields[i][2], "password") != 0 || ui_help_key_passed(val, fields[i][0])))
            v = ui_form_value(body, fields[i][0]);
        buf_printf(b, "<label%s>%s <small>%s", failed != NULL ? " class=\"invalid\"" : "",
                   fields[i][1], fields[i][3]);
        if (anchor != NULL)
            buf_printf(b,
                       " &middot; <a class=\"help\" href=\"/help/setup#%s\" "
                       "target=\"_blank\">where do I find this?</a>",
                       anchor);
        buf_printf(b, "</small><input type=\"%s\" name=\"%s\" autocomplete=\"off\"%s%s value=\"",
                   fields[i][2], fields[i][0],
                   strstr(fields[i][3], "optional") != NULL ? "" : " required",
                   failed != NULL ? " aria-invalid=\"true\"" : "");
        ui_esc(b, v);
        buf_addstr(b, "\">");
        if (failed != NULL) {
            buf_addstr(b, "<span class=\"field-error\">");
            ui_esc(b, failed);
            buf_addstr(b, "</span>");
        }
        buf_addstr(b, "</label>");
        if (v != NULL)
            memset(v, 0, strlen(v));
        free(v);
    }
    buf_addstr(b, "<label>Microsoft cloud <small>where the partner and its customers' tenants "
                  "live</small><select name=\"cloud\"><option value=\"global\" "
                  "selected>Global (commercial, GCC)</option><option value=\"usgov\">US "
                  "Government GCC High</option><option value=\"usgovdod\">US Government "
                  "DoD</option><option value=\"china\">China (21Vianet)</option></select>"
                  "</label>");
    buf_addstr(b, "<label>Sync every <select name=\"sync_interval_hours\"><option "
                  "value=\"6\" "
                  "selected>6 hours</option><option value=\"1\">hour</option><option "
                  "value=\"12\">12 hours</option><option value=\"24\">24 "
                  "hours</option></select>"
                  "</label><button type=\"submit\">Check and save</button>"
                  "<p class=\"muted\">Saving checks every value with Microsoft first; "
                  "nothing "
                  "is stored when a check fails. A saved integration starts a full sync at "
                  "once.</p></form></div>");
}

static void
integrations_page(struct page *pg, const char *msg_kind, const char *msg, const json_t *val,
                  const char *body)
{
    struct buf *b = pg->b;
    struct integration *list = NULL;
    size_t n = 0;
    int64_t now = clock_now();
    struct errbuf eb = {0};
    int rc = store_integration_list(pg->req->st, pg->p.account_id, &list, &n, &eb);

    if (rc != ERR_OK)
        page_store_failed(pg, rc, &eb);
    page_begin(pg, "Integrations", "/integrations");
    buf_addstr(b, "<h1>Integrations</h1>");
    if (msg != NULL)
        notice(b, msg_kind, msg);
    if (val != NULL)
        validation_html(b, val);
    if (n == 0)
        buf_addstr(b, "<div class=\"panel\"><div class=\"empty\"><strong>No integration "
                      "yet</strong><p>Enter the five values of your Partner Center app "
                      "and sync "
                      "app below.</p></div></div>");
    for (size_t i = 0; i < n; i++) {
        struct integration *in = &list[i];
        const char *state = scheduler_state(((struct api_app *)pg->app)->sched, in->id);
        const struct {
            const char *label, *which, *hint;
            int64_t exp;
            const char *source;
        } keys[2] = {
            {"Partner App Key", "partner", in->partner_secret_hint, in->partner_secret_expires,
             in->partner_secret_expiry_source},
            {"Sync App Key", "sync", in->sync_secret_hint, in->sync_secret_expires,
             in->sync_secret_expiry_source},
        };

        buf_printf(b, "<div class=\"panel integration\" id=\"integration-%" PRId64 "\"><h2>",
                   in->id);
        ui_esc(b, in->name);
        buf_addstr(b, " ");
        pill(b, state);
        buf_addstr(b, "</h2><dl class=\"kv\"><dt>Microsoft Partner Account "
                      "ID</dt><dd class=\"mono\">");
        ui_esc(b, in->partner_tenant_id);
        buf_addstr(b, "</dd><dt>Microsoft Partner App ID</dt><dd class=\"mono\">");
        ui_esc(b, in->partner_app_id);
        buf_addstr(b, "</dd><dt>Microsoft Sync App ID</dt><dd class=\"mono\">");
        ui_esc(b, in->sync_app_id);
        buf_addstr(b, "</dd><dt>Microsoft cloud</dt><dd>");
        ui_esc(b, in->cloud != NULL ? in->cloud : "global");
        buf_addstr(b, "</dd>");
        for (int k = 0; k < 2; k++) {
            struct expiry e;
            char d[32];

            expiry_check(keys[k].exp, now, &e);
            clock_fmt(keys[k].exp, d, sizeof d);
            buf_printf(b, "<dt>%s</dt><dd><span class=\"mono\">", keys[k].label);
            ui_esc(b, keys[k].hint);
            buf_printf(b, "…</span> expires %.10s (%s) ", d[0] ? d : "(unknown)",
                       keys[k].source != NULL ? "from Microsoft" : "entered");
            if (e.level == EXPIRY_EXPIRED)
                buf_addstr(b, "<span class=\"pill error\">expired — rotate it now</span>");
            else if (e.level != EXPIRY_OK && e.level != EXPIRY_UNKNOWN)
                buf_printf(b, "<span class=\"pill warn\">expires in %" PRId64 " days</span>",
                           e.days_left);
            buf_addstr(b, "</dd>");
        }
        buf_printf(b, "<dt>Schedule</dt><dd>incremental sync every %" PRId64 " hours</dd></dl>",
                   in->sync_interval / 3600);
        if (pg->p.role == AUTH_ADMIN) {
            buf_addstr(b, "<div class=\"toolbar\">");
            ui_runs_sync_button(b, in->id, state, pg->p.csrf);
            buf_addstr(b, "</div><details><summary>Replace a key</summary>");
            buf_printf(b,
                       "<form class=\"stack rotate\" method=\"post\" "
                       "action=\"/integrations/%" PRId64 "/rotate\">",
                       in->id);
            csrf_field(pg);
            buf_addstr(b, "<label>Which key<select name=\"which\"><option value=\"partner\">"
                          "Microsoft Partner App Key</option><option value=\"sync\">Microsoft "
                          "Sync App Key</option></select></label><label>New key <small>the "
                          "secret's Value</small><input type=\"password\" name=\"secret\" "
                          "autocomplete=\"off\" required></label><label>Expires "
                          "<small>optional; "
                          "default 6 months</small><input type=\"date\" name=\"expires_at\">"
                          "</label><button type=\"submit\">Check and replace</button><p "
                          "class=\"muted\">The new key is checked with Microsoft first; a sync "
                          "already running finishes with the old one.</p></form></details>");
        }
        buf_addstr(b, "</div>");
        integration_clear(in);
    }
    free(list);
    if (pg->p.role == AUTH_ADMIN)
        add_form(pg, body, val);
    else
        buf_addstr(b, "<p class=\"muted\">Only admins can add or change integrations.</p>");
    page_end(pg);
}

static int64_t
form_hours(const char *body)
{
    char *v = ui_form_value(body, "sync_interval_hours");
    int64_t h = 6;

    if (v != NULL) {
        char *end;
        long long x = strtoll(v, &end, 10);
        if (*end == '\0' && x >= 1 && x <= 168)
            h = x;
        free(v);
    }
    return h * 3600;
}

static void
integration_post(struct page *pg)
{
    struct integration_input in = {0};
    struct validation checks = {0};
    char *v[10] = {NULL};
    static const char *const names[] = {
        "name",
        "partner_tenant_id",
        "partner_app_id",
        "partner_app_secret",
        "sync_app_id",
        "sync_app_secret",
        "partner_app_secret_expires_at",
        "sync_app_secret_expires_at",
        "tenant_source",
        "cloud",
    };
    struct errbuf eb = {0};
    json_t *val = NULL;
    int64_t id = 0;
    int rc;

    for (int i = 0; i < 10; i++) {
        v[i] = ui_form_value(pg->req->body, names[i]);
        /* Pasted values often carry spaces or a newline at either end. */
        if (v[i] != NULL) {
            char *s = v[i];
            size_t n;
            while (*s == ' ' || *s == '\t')
                memmove(s, s + 1, strlen(s));
            n = strlen(s);
            while (n > 0 &&
                   (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\r' || s[n - 1] == '\t'))
                s[--n] = '\0';
        }
    }
    in.name = v[0];
    in.partner_tenant_id = v[1];
    in.partner_app_id = v[2];
    in.partner_app_secret = v[3];
    in.sync_app_id = v[4];
    in.sync_app_secret = v[5];
    in.partner_expires = v[6];
    in.sync_expires = v[7];
    in.tenant_source = v[8];
    in.cloud = v[9];
    in.sync_interval = form_hours(pg->req->body);
    in.sample = pg->app->validate_sample;
    rc = integration_create(pg->app->cfg, pg->req->st, pg->app->vault, pg->p.account_id, &in, &id,
                            &checks, &eb);
    val = checks.n > 0 ? validation_to_json(&checks) : NULL;
    validation_clear(&checks);
    if (rc == ERR_OK && pg->app->sched != NULL)
        scheduler_request(pg->app->sched, pg->p.account_id, id, 1, NULL);
    for (int i = 0; i < 10; i++) {
        if (v[i] != NULL)
            memset(v[i], 0, strlen(v[i]));
        free(v[i]);
    }
    if (rc == ERR_OK) {
        pg->resp->status = 200;
        integrations_page(pg, "ok",
                          "Saved. The credentials work and a full sync has started — follow it "
                          "under Sync runs.",
                          val, NULL);
    } else {
        pg->resp->status = rc == ERR_AUTH ? 422 : 400;
        integrations_page(pg, "bad", eb.msg, val, pg->req->body);
    }
    json_decref(val);
}

static void
rotate_post(struct page *pg, int64_t id)
{
    char *which = ui_form_value(pg->req->body, "which");
    char *secret = ui_form_value(pg->req->body, "secret");
    char *exp = ui_form_value(pg->req->body, "expires_at");
    struct validation checks = {0};
    struct errbuf eb = {0};
    json_t *val = NULL;
    int rc;

    if (secret != NULL) {
        size_t n = strlen(secret);
        while (n > 0 && (secret[n - 1] == ' ' || secret[n - 1] == '\n' || secret[n - 1] == '\r'))
            secret[--n] = '\0';
    }
    rc = integration_rotate_secret(pg->app->cfg, pg->req->st, pg->app->vault, pg->p.account_id, id,
                                   which, secret, exp, 0, pg->app->validate_sample, &checks, &eb);
    val = checks.n > 0 ? validation_to_json(&checks) : NULL;
    validation_clear(&checks);
    if (rc == ERR_OK) {
        integrations_page(pg, "ok", "The key was checked and replaced.", val, NULL);
    } else {
        pg->resp->status = rc == ERR_NOTFOUND ? 404 : rc == ERR_AUTH ? 422 : 400;
        integrations_page(pg, "bad", eb.msg, val, NULL);
    }
    json_decref(val);
    if (secret != NULL)
        memset(secret, 0, strlen(secret));
    free(secret);
    free(which);
    free(exp);
}

static void
sync_post(struct page *pg, int64_t id)
{
    struct api_app *app = pg->app;
    struct integration in = {0};
    struct errbuf eb = {0};
    int64_t run = 0;
    char to[48] = "/runs";
    int rc = store_integration_get(pg->req->st, pg->p.account_id, id, &in, &eb);

    integration_clear(&in);
    if (rc == ERR_OK && app->sched != NULL)
        rc = scheduler_request_run(app->sched, pg->req->st, pg->p.account_id, id, 1, &run, &eb);
    if (rc != ERR_OK && rc != ERR_EXISTS) {
        pg->resp->status = rc == ERR_NOTFOUND ? 404 : 400;
        integrations_page(pg, "bad", eb.msg, NULL, NULL);
        return;
    }
    if (run > 0)
        snprintf(to, sizeof to, "/runs/%" PRId64, run);
    redirect(pg->resp, to);
}

/* ---- overview: lifecycle insight per client
 * ------------------------------------------------
 */

#define OVERVIEW_STALE_DAYS 30
#define OVERVIEW_SLOTS      8
#define OVERVIEW_MAX        ((size_t)16 << 20)
#define OVERVIEW_ROWS       5000 /* at most ~2 KB each */
/* Stale devices and enrolment ages move with the clock, not only with the data. */
#define OVERVIEW_TTL_MS 600000

/* The rendered table of an account at a data version: walking every asset costs about 2 s per
 * million, so a page is built once per version. Slots: least recently built replaced. */
static struct {
    int64_t account_id, version, built_at;
    char *html;
} overview_cache[OVERVIEW_SLOTS];
static pthread_mutex_t overview_mu = PTHREAD_MUTEX_INITIALIZER;
/* Single flight: the (account, version) tables being built; others wait for the table (up to
 * OVERVIEW_WAIT_S) instead of walking every asset too. */
#define OVERVIEW_WAIT_S 30
static struct flight overview_flight = FLIGHT_INIT(OVERVIEW_SLOTS);

/* Rows with the most devices past their support first, then the most stale, then by name. */
static int
insight_cmp(const void *x, const void *y)
{
    const json_t *a = *(const json_t *const *)x, *b = *(const json_t *const *)y;
    json_int_t ua = json_integer_value(json_object_get(a, "unsupported_os"));
    json_int_t ub = json_integer_value(json_object_get(b, "unsupported_os"));
    json_int_t sa = json_integer_value(json_object_get(a, "stale"));
    json_int_t sb = json_integer_value(json_object_get(b, "stale"));
    const char *na = json_string_value(jpath(a, "client.name"));
    const char *nb = json_string_value(jpath(b, "client.name"));

    if (ua != ub)
        return ua < ub ? 1 : -1;
    if (sa != sb)
        return sa < sb ? 1 : -1;
    return strcmp(na != NULL ? na : "", nb != NULL ? nb : "");
}

/* A figure's cell: a link to the hardware list of the devices it counts (insight.h). */
static void
overview_cell(struct buf *b, const json_t *row, const char *key, int warn)
{
    const json_t *v = json_object_get(row, key);
    struct buf q;

    /* The serial columns give way on narrow screens, as their headers do. */
    int narrow = strcmp(key, "no_serial") == 0 || strcmp(key, "duplicate_serial") == 0;

    buf_init(&q, 1024);
    insight_figure_query(key, OVERVIEW_STALE_DAYS, &q);
    buf_printf(b,
               "<td class=\"num%s%s\" data-k=\"%s\"><a href=\"/assets?client=%" JSON_INTEGER_FORMAT
               "%s\">",
               warn && json_integer_value(v) > 0 ? " warn" : "", narrow ? " hide-narrow" : "", key,
               json_integer_value(jpath(row, "client.id")), buf_cstr(&q));
    jtext(b, v);
    buf_addstr(b, "</a></td>");
    buf_free(&q);
}

/* A card of the overview: the figure and a link to the devices it counts. */
static void
overview_card(struct buf *b, const char *figure, int64_t n, const char *label, int warn)
{
    struct buf q;

    buf_init(&q, 1024);
    buf_addstr(&q, "&included=true"); /* the overview's scope: clients not excluded */
    insight_figure_query(figure, OVERVIEW_STALE_DAYS, &q);
    buf_printf(b,
               "<a class=\"card%s\" data-figure=\"%s\" href=\"/assets?%s\"><strong>%" PRId64
               "</strong>%s</a>",
               warn && n > 0 ? " warn" : "", figure, q.len > 0 ? buf_cstr(&q) + 1 : "", n, label);
    buf_free(&q);
}

/* The cards and the per-client table of the account's active devices into b; ERR_* when the
 * assets could not be read (recorded for page_end). */
static int
overview_render(struct page *pg, struct buf *b)
{
    struct insight *in = insight_new(clock_now(), OVERVIEW_STALE_DAYS);
    struct store_filter included = {"client.included", "eq", "true"};
    struct asset_query q = {0};
    struct errbuf eb = {0};
    json_t **rows = NULL;
    int64_t tot[5] = {0}; /* devices, stale, unsupported, no serial, duplicate serial */
    size_t n;
    int rc;

    q.account_id = pg->p.account_id;
    /* Excluded clients are no longer synced: left out, and the cards' lists say so too. */
    q.filters = &included;
    q.nfilters = 1;
    rc = store_assets_each(pg->req->st, &q, insight_collect, in, &eb);
    if (rc != ERR_OK) {
        page_store_failed(pg, rc, &eb);
        goto out;
    }
    n = insight_count(in);
    rows = xcalloc(n + 1, sizeof *rows);
    for (size_t i = 0; i < n; i++) {
        const struct insight_row *r = insight_row(in, i);

        rows[i] = insight_to_json(in, i);
        tot[0] += r->devices;
        tot[1] += r->stale;
        tot[2] += r->unsupported_os;
        tot[3] += r->no_serial;
        tot[4] += r->duplicate_serial;
    }
    qsort(rows, n, sizeof *rows, insight_cmp);
    {
        char lbl[64];

        snprintf(lbl, sizeof lbl, "not checked in for %d days", OVERVIEW_STALE_DAYS);
        buf_printf(b,
                   "<div class=\"cards\"><a class=\"card\" href=\"/clients\"><strong>%zu"
                   "</strong>clients with devices</a>",
                   n);
        overview_card(b, "devices", tot[0], "devices", 0);
        overview_card(b, "unsupported_os", tot[2], "on an OS past its support", 1);
        overview_card(b, "stale", tot[1], lbl, 1);
        overview_card(b, "no_serial", tot[3], "without a real serial", 0);
        overview_card(b, "duplicate_serial", tot[4], "with a serial in two tenants", 0);
        buf_addstr(b, "</div>");
    }
    buf_addstr(b, "<div class=\"tablewrap\">");
    if (n == 0) {
        empty_state(b, "No devices yet",
                    "<p>Each client's devices are summarised here after the first sync of an "
                    "<a href=\"/integrations\">integration</a>.</p>");
    } else {
        buf_printf(b,
                   "<table id=\"insight\"><thead><tr><th>Client</th><th "
                   "class=\"num\">Devices</th><th class=\"num\">OS past support</th><th "
                   "class=\"num\">Not checked in %d days</th><th class=\"num hide-narrow\">No "
                   "real serial</th><th class=\"num hide-narrow\">Serial in two tenants</th>"
                   "<th class=\"num\">Encrypted %%</th><th class=\"num\">Compliant %%</th>"
                   "<th class=\"num hide-narrow\">Oldest enrolment (days)</th></tr></thead>"
                   "<tbody>",
                   OVERVIEW_STALE_DAYS);
        for (size_t i = 0; i < n && i < OVERVIEW_ROWS; i++) {
            buf_printf(b, "<tr><td><a href=\"/clients/%" JSON_INTEGER_FORMAT "\">",
                       json_integer_value(jpath(rows[i], "client.id")));
            jtext(b, jpath(rows[i], "client.name"));
            buf_addstr(b, "</a></td>");
            overview_cell(b, rows[i], "devices", 0);
            overview_cell(b, rows[i], "unsupported_os", 1);
            overview_cell(b, rows[i], "stale", 1);
            overview_cell(b, rows[i], "no_serial", 0);
            overview_cell(b, rows[i], "duplicate_serial", 0);
            overview_cell(b, rows[i], "encrypted_pct", 0);
            overview_cell(b, rows[i], "compliant_pct", 0);
            buf_addstr(b, "<td class=\"num hide-narrow\">");
            jtext(b, json_object_get(rows[i], "oldest_enrolment_days"));
            buf_addstr(b, "</td></tr>");
        }
        buf_addstr(b, "</tbody></table>");
    }
    buf_addstr(b, "</div>");
    if (n > OVERVIEW_ROWS)
        buf_printf(b,
                   "<p class=\"muted\">%zu more clients: <span class=\"mono\">memsync "
                   "insights</span> lists them all.</p>",
                   n - OVERVIEW_ROWS);
    for (size_t i = 0; i < n; i++)
        json_decref(rows[i]);
out:
    free(rows);
    insight_free(in);
    return rc;
}

/* What needs doing, read live (cheap): keys that expire within 30 days, clients whose last
 * sync failed. */
static void
overview_attention(struct page *pg)
{
    struct buf *b = pg->b;
    struct integration *list = NULL;
    struct store_filter f = {"status", "eq", "error"};
    int64_t now = clock_now(), failed = 0;
    size_t n = 0;
    struct list_query q = {0};
    struct errbuf eb = {0};
    int rc = store_integration_list(pg->req->st, pg->p.account_id, &list, &n, &eb);

    if (rc != ERR_OK)
        page_store_failed(pg, rc, &eb);
    for (size_t i = 0; i < n; i++) {
        const struct {
            const char *label;
            int64_t exp;
        } keys[2] = {{"Partner App Key", list[i].partner_secret_expires},
                     {"Sync App Key", list[i].sync_secret_expires}};

        for (int k = 0; k < 2; k++) {
            struct expiry e;

            expiry_check(keys[k].exp, now, &e);
            if (e.level == EXPIRY_OK || e.level == EXPIRY_UNKNOWN)
                continue;
            buf_printf(b, "<div class=\"notice %s attention\">The %s of ",
                       e.level == EXPIRY_EXPIRED ? "bad" : "warn", keys[k].label);
            ui_esc(b, list[i].name);
            if (e.level == EXPIRY_EXPIRED)
                buf_printf(b, " expired on %s: syncs fail until it is replaced.", e.date);
            else
                buf_printf(b, " expires in %" PRId64 " days (%s).", e.days_left, e.date);
            buf_addstr(b, " <a href=\"/integrations\">Rotate it on Integrations</a></div>");
        }
        integration_clear(&list[i]);
    }
    free(list);
    q.entity = "clients";
    q.account_id = pg->p.account_id;
    q.filters = &f;
    q.nfilters = 1;
    if ((failed = store_list_count(pg->req->st, &q, &eb)) < 0)
        page_store_failed(pg, (int)failed, &eb);
    if (failed > 0)
        buf_printf(b,
                   "<div class=\"notice bad attention\">%" PRId64 " client%s failed %s last "
                   "sync; %s devices are kept as they were. <a href=\"/clients\">See why and "
                   "what to do</a></div>",
                   failed, failed == 1 ? "" : "s", failed == 1 ? "its" : "their",
                   failed == 1 ? "its" : "their");
}

static void
overview_page(struct page *pg)
{
    struct buf *b = pg->b, part;
    int64_t version = 0;
    struct errbuf eb = {0};
    int rc = store_data_version(pg->req->st, &version, &eb), have_version = rc == ERR_OK;
    int slot = -1, ticket = -1;
    struct flight_result res = {0};
    enum flight_role role = FLIGHT_ALONE;
    char key[64];

    if (rc != ERR_OK)
        page_store_failed(pg, rc, &eb);

    page_begin(pg, "Overview", "/");
    buf_printf(b,
               "<h1>Overview</h1><p class=\"muted\">Active devices of every client not "
               "excluded: operating "
               "systems past their vendor's end of support, devices not checked in for %d days, "
               "serials that are missing or seen in two tenants, encryption and compliance. The "
               "same figures: <span class=\"mono\">memsync insights</span>.</p>",
               OVERVIEW_STALE_DAYS);
    overview_attention(pg);
    for (int again = 0; have_version && again < 2; again++) {
        pthread_mutex_lock(&overview_mu);
        for (int i = 0; i < OVERVIEW_SLOTS; i++)
            if (overview_cache[i].html != NULL &&
                overview_cache[i].account_id == pg->p.account_id &&
                overview_cache[i].version == version &&
                clock_mono_ms() - overview_cache[i].built_at < OVERVIEW_TTL_MS)
                slot = i;
        if (slot >= 0) {
            buf_addstr(b, overview_cache[slot].html);
            if (role == FLIGHT_LEADER) /* a leader that found the table after all hands it on */
                flight_finish(&overview_flight, ticket, 1, 0, overview_cache[slot].html,
                              strlen(overview_cache[slot].html));
        }
        pthread_mutex_unlock(&overview_mu);
        if (slot >= 0) {
            page_end(pg);
            return;
        }
        if (again)
            break;
        snprintf(key, sizeof key, "%" PRId64 ";%" PRId64, pg->p.account_id, version);
        role = flight_begin(&overview_flight, key, strlen(key), (int64_t)OVERVIEW_WAIT_S * 1000,
                            &res, &ticket);
        if (role == FLIGHT_RESULT && res.bytes != NULL) {
            buf_add(b, res.bytes, res.len);
            free(res.bytes);
            page_end(pg);
            return;
        }
        free(res.bytes);
        if (role != FLIGHT_LEADER)
            break;
        /* Leader: a build may have ended between the lookup above and the flight. */
    }
    buf_init(&part, OVERVIEW_MAX);
    rc = overview_render(pg, &part);
    if (rc == ERR_OK)
        buf_addbuf(b, &part); /* a table past OVERVIEW_MAX poisons the page: a 500 */
    if (rc == ERR_OK && buf_error(&part) == ERR_OK) {
        pthread_mutex_lock(&overview_mu);
        /* The account's slot, else an empty one, else the one built longest ago. */
        for (int i = 0, empty = -1, oldest = -1; have_version && i < OVERVIEW_SLOTS; i++) {
            if (overview_cache[i].html != NULL &&
                overview_cache[i].account_id == pg->p.account_id) {
                slot = i;
                break;
            }
            if (overview_cache[i].html == NULL && empty < 0)
                empty = i;
            else if (overview_cache[i].html != NULL &&
                     (oldest < 0 || overview_cache[i].built_at < overview_cache[oldest].built_at))
                oldest = i;
            if (i == OVERVIEW_SLOTS - 1)
                slot = empty >= 0 ? empty : oldest;
        }
        /* A newer table filed meanwhile stays. */
        if (slot >= 0 && !(overview_cache[slot].html != NULL &&
                           overview_cache[slot].account_id == pg->p.account_id &&
                           overview_cache[slot].version > version)) {
            free(overview_cache[slot].html);
            overview_cache[slot].html = xstrdup(buf_cstr(&part));
            overview_cache[slot].account_id = pg->p.account_id;
            overview_cache[slot].version = version;
            overview_cache[slot].built_at = clock_mono_ms();
        }
        pthread_mutex_unlock(&overview_mu);
    }
    /* The waiters get the table, or build it themselves after a failure. */
    flight_finish(&overview_flight, ticket, rc == ERR_OK && buf_error(&part) == ERR_OK, 0,
                  part.data, part.len);
    buf_free(&part);
    page_end(pg);
}

/* ---- API keys (admins)
 * ---------------------------------------------------------------------
 */

#define KEY_NAME_MAX 100

/* new_key: the key just created, shown this once; NULL otherwise. */
static void
apikeys_page(struct page *pg, const char *msg_kind, const char *msg, const char *new_key)
{
    struct buf *b = pg->b;
    json_t *rows = list_rows(pg, "api_keys", 0, NULL, 0, NULL, 0, NULL, 0, 1000, NULL), *row;
    size_t i;

    page_begin(pg, "API keys", "/api-keys");
    buf_addstr(b, "<h1>API keys</h1><p class=\"muted\">Tools such as a PSA or a reporting "
                  "script read memsync's REST API (<span class=\"mono\">/api/v1</span>, "
                  "described at <a href=\"/openapi.json\">/openapi.json</a>) with a key in "
                  "the <span class=\"mono\">x-api-key</span> header. A read key lists and "
                  "exports this account's data; an admin key can also change integrations. "
                  "memsync keeps only a digest of each key, so a key is shown once, when it is "
                  "created.</p>");
    if (msg != NULL)
        notice(b, msg_kind, msg);
    if (new_key != NULL) {
        buf_addstr(b, "<div class=\"panel newkey\"><h2>Copy the new key now</h2>"
                      "<p><code class=\"mono\" id=\"new-key\">");
        ui_esc(b, new_key);
        buf_addstr(b, "</code></p><p class=\"muted\">It will not be shown again. Send it as "
                      "the <span class=\"mono\">x-api-key</span> header.</p></div>");
    }
    buf_addstr(b, "<div class=\"panel\"><h2>Create a key</h2><form class=\"stack\" "
                  "id=\"create-key\" method=\"post\" action=\"/api-keys\">");
    csrf_field(pg);
    buf_printf(b,
               "<label>Name <small>what uses it, e.g. the PSA sync</small><input type=\"text\" "
               "name=\"name\" maxlength=\"%d\" required autocomplete=\"off\"></label>"
               "<label>Scope<select name=\"scope\"><option value=\"read\" selected>read "
               "— list and export</option><option value=\"admin\">admin — also change "
               "integrations</option></select></label><label>Expires<select "
               "name=\"expires_days\"><option value=\"30\">in 30 days</option><option "
               "value=\"90\">in 90 days</option><option value=\"365\" selected>in a year</option>"
               "<option value=\"730\">in two years</option><option value=\"never\">never"
               "</option></select></label><label>Or on <small>the key works through this day "
               "(UTC)</small><input type=\"date\" name=\"expires\"></label><button "
               "type=\"submit\">Create key</button></form></div><div class=\"tablewrap\">",
               KEY_NAME_MAX);
    if (json_array_size(rows) == 0) {
        empty_state(b, "No API keys yet",
                    "<p>Create one above for each tool that reads memsync, so each can be "
                    "revoked on its own.</p>");
    } else {
        buf_addstr(b, "<table id=\"api-keys\"><thead><tr><th>Name</th><th>Scope</th>"
                      "<th>Starts with</th><th class=\"hide-narrow\">Created</th>"
                      "<th>Expires</th><th>Last used</th><th>Status</th><th></th></tr></thead>"
                      "<tbody>");
        json_array_foreach(rows, i, row)
        {
            const json_t *revoked = json_object_get(row, "revoked_at");
            const json_t *exp = json_object_get(row, "expires_at");
            const json_t *used = json_object_get(row, "last_used_at");
            int active = revoked == NULL || json_is_null(revoked);
            int64_t exp_t = TS_NULL;
            int expired = json_is_string(exp) && clock_parse(json_string_value(exp), &exp_t) == 0 &&
                          exp_t <= clock_now();

            buf_addstr(b, "<tr><td>");
            jtext(b, json_object_get(row, "name"));
            buf_addstr(b, "</td><td>");
            jtext(b, json_object_get(row, "scope"));
            buf_addstr(b, "</td><td class=\"mono\">");
            jtext(b, json_object_get(row, "prefix"));
            buf_addstr(b, "…</td><td class=\"hide-narrow\">");
            fmt_ts_json(b, json_object_get(row, "created_at"));
            buf_addstr(b, "</td><td>");
            if (json_is_string(exp))
                fmt_ts_json(b, exp);
            else
                buf_addstr(b, "never");
            buf_addstr(b, "</td><td>");
            if (json_is_string(used))
                fmt_ts_json(b, used);
            else
                buf_addstr(b, "never");
            buf_addstr(b, "</td><td>");
            if (active) {
                buf_addstr(b, expired ? "<span class=\"pill never\">expired</span>"
                                      : "<span class=\"pill ok\">active</span>");
                buf_printf(b,
                           "</td><td><form method=\"post\" action=\"/api-keys/%" JSON_INTEGER_FORMAT
                           "/revoke\" class=\"revoke\">",
                           json_integer_value(json_object_get(row, "id")));
                csrf_field(pg);
                buf_addstr(b, "<button class=\"ghost\" type=\"submit\">Revoke</button></form>");
            } else {
                buf_addstr(b, "<span class=\"pill never\">revoked</span> ");
                fmt_ts_json(b, revoked);
                buf_addstr(b, "</td><td>");
            }
            buf_addstr(b, "</td></tr>");
        }
        buf_addstr(b, "</tbody></table>");
    }
    buf_addstr(b, "</div>");
    page_end(pg);
    json_decref(rows);
}

/* 1 to KEY_NAME_MAX bytes of UTF-8 text without control characters: it is shown in tables
 * here and in `memsync apikey list`. */
static int
key_name_ok(const char *name)
{
    size_t n = name != NULL ? strlen(name) : 0, k;

    if (n == 0 || n > KEY_NAME_MAX)
        return 0;
    for (const unsigned char *p = (const unsigned char *)name; *p != '\0'; p += k)
        if ((k = utf8_char_len(p, n - (size_t)(p - (const unsigned char *)name))) == 0 ||
            *p < 0x20 || *p == 0x7f)
            return 0;
    return 1;
}

static void
apikey_create_post(struct page *pg)
{
    char *name = ui_form_value(pg->req->body, "name");
    char *scope = ui_form_value(pg->req->body, "scope");
    char *days = ui_form_value(pg->req->body, "expires_days");
    char *date = ui_form_value(pg->req->body, "expires");
    char key[AUTH_APIKEY_LEN + 1];
    struct errbuf eb = {0};
    int64_t id = 0, expires = TS_NULL;
    int never = days != NULL && strcmp(days, "never") == 0, rc;
    size_t n;

    if (name != NULL) { /* pasted names carry spaces at either end */
        char *t = name;

        while (*t == ' ' || *t == '\t')
            t++;
        memmove(name, t, strlen(t) + 1);
        n = strlen(name);
        while (n > 0 && (name[n - 1] == ' ' || name[n - 1] == '\t' || name[n - 1] == '\r' ||
                         name[n - 1] == '\n'))
            name[--n] = '\0';
    }
    if (!key_name_ok(name)) {
        pg->resp->status = 400;
        apikeys_page(pg, "bad",
                     "Give the key a name of 1 to 100 characters on one line, such as the tool "
                     "that will use it.",
                     NULL);
    } else if (scope == NULL || (strcmp(scope, "read") != 0 && strcmp(scope, "admin") != 0)) {
        pg->resp->status = 400;
        apikeys_page(pg, "bad", "The scope must be read or admin.", NULL);
    } else if (auth_apikey_expiry(date,
                                  date != NULL && date[0] != '\0' ? NULL
                                  : never                         ? NULL
                                                                  : days,
                                  never && (date == NULL || date[0] == '\0'),
                                  pg->p.role == AUTH_ADMIN, clock_now(), &expires, &eb) != ERR_OK) {
        pg->resp->status = 400;
        apikeys_page(pg, "bad", eb.msg, NULL);
    } else if ((rc = auth_apikey_create(pg->req->st, pg->p.account_id, name, scope, expires, key,
                                        &id, &eb)) != ERR_OK) {
        pg->resp->status = store_status(rc);
        apikeys_page(pg, "bad", store_msg(pg->req, rc, &eb), NULL);
    } else {
        log_info("api key created id=%" PRId64 " scope=%s by=%s", id, scope, pg->p.name);
        apikeys_page(pg, "ok", "The key was created.", key);
        sodium_memzero(key, sizeof key);
    }
    free(name);
    free(scope);
    free(days);
    free(date);
}

static void
apikey_revoke_post(struct page *pg, int64_t id)
{
    struct errbuf eb = {0};
    int rc = store_apikey_revoke(pg->req->st, pg->p.account_id, id, &eb);

    if (rc != ERR_OK) {
        pg->resp->status = rc == ERR_NOTFOUND ? 404 : store_status(rc);
        apikeys_page(pg, "bad", store_msg(pg->req, rc, &eb), NULL);
        return;
    }
    log_info("api key revoked id=%" PRId64 " by=%s", id, pg->p.name);
    apikeys_page(pg, "ok", "The key was revoked: requests that send it are refused from now on.",
                 NULL);
}

/* ---- users (admins)
 * ------------------------------------------------------------------------
 */

static void
users_page(struct page *pg, const char *msg_kind, const char *msg, const char *body)
{
    struct buf *b = pg->b;
    json_t *rows = list_rows(pg, "users", 0, NULL, 0, NULL, 0, NULL, 0, 1000, NULL), *row;
    char *name = body != NULL ? ui_form_value(body, "name") : NULL;
    size_t i;

    page_begin(pg, "Users", "/users");
    buf_addstr(b, "<h1>Users</h1><p class=\"muted\">People who sign in to this account. An "
                  "admin can add integrations, rotate their keys, start syncs and manage users "
                  "and API keys; a viewer sees every page but changes nothing.</p>");
    if (msg != NULL)
        notice(b, msg_kind, msg);
    buf_addstr(b, "<div class=\"tablewrap\"><table id=\"users\"><thead><tr><th>Name</th>"
                  "<th>Role</th><th class=\"hide-narrow\">Added</th><th>Password</th><th></th>"
                  "</tr></thead><tbody>");
    json_array_foreach(rows, i, row)
    {
        json_int_t id = json_integer_value(json_object_get(row, "id"));
        int self = id == pg->p.user_id;

        buf_addstr(b, "<tr><td>");
        jtext(b, json_object_get(row, "name"));
        if (self)
            buf_addstr(b, " <span class=\"muted\">(you)</span>");
        buf_addstr(b, "</td><td>");
        jtext(b, json_object_get(row, "role"));
        buf_addstr(b, "</td><td class=\"hide-narrow\">");
        fmt_ts_json(b, json_object_get(row, "created_at"));
        buf_printf(b,
                   "</td><td><details><summary>Set a new password</summary><form "
                   "class=\"stack passwd\" method=\"post\" action=\"/users/%" JSON_INTEGER_FORMAT
                   "/password\">",
                   id);
        csrf_field(pg);
        buf_printf(b,
                   "<label>New password <small>at least %d characters; ends the user's "
                   "sessions</small><input type=\"password\" name=\"password\" minlength=\"%d\" "
                   "autocomplete=\"new-password\" required></label><button "
                   "type=\"submit\">Set password</button></form></details></td><td>",
                   AUTH_PASSWORD_MIN, AUTH_PASSWORD_MIN);
        if (!self) {
            buf_printf(
                b,
                "<form method=\"post\" class=\"remove\" action=\"/users/%" JSON_INTEGER_FORMAT
                "/remove\">",
                id);
            csrf_field(pg);
            buf_addstr(b, "<button class=\"ghost\" type=\"submit\">Remove</button></form>");
        }
        buf_addstr(b, "</td></tr>");
    }
    buf_addstr(b, "</tbody></table></div><div class=\"panel\"><h2>Add a user</h2><form "
                  "class=\"stack\" id=\"add-user\" method=\"post\" action=\"/users\">");
    csrf_field(pg);
    buf_printf(b,
               "<label>User name <small>letters, digits and . _ @ + - (an e-mail address "
               "works)</small><input type=\"text\" name=\"name\" maxlength=\"%d\" required "
               "autocomplete=\"off\" value=\"",
               AUTH_USER_NAME_MAX);
    ui_esc(b, name);
    buf_printf(b,
               "\"></label><label>Role<select name=\"role\"><option value=\"viewer\" "
               "selected>viewer — sees everything, changes nothing</option><option "
               "value=\"admin\">admin — also changes integrations, users and keys</option>"
               "</select></label><label>Password <small>at least %d characters; give it to "
               "the user yourself</small><input type=\"password\" name=\"password\" "
               "minlength=\"%d\" autocomplete=\"new-password\" required></label><button "
               "type=\"submit\">Add user</button></form></div>",
               AUTH_PASSWORD_MIN, AUTH_PASSWORD_MIN);
    page_end(pg);
    free(name);
    json_decref(rows);
}

/* Users made before names were checked may have longer ones: sign-in takes up to 128 bytes. */
#define USER_NAME_BUF 160

/* The name of this account's user id into name (USER_NAME_BUF bytes); 0 when the
 * account has no such user. */
static int
account_user(struct page *pg, int64_t id, char *name)
{
    struct store_filter f = {"id", "eq", NULL};
    char idtxt[32];
    json_t *rows;
    const char *n;
    int found;

    snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
    f.value = idtxt;
    rows = list_rows(pg, "users", 0, &f, 1, NULL, 0, NULL, 0, 1, NULL);
    n = json_string_value(json_object_get(json_array_get(rows, 0), "name"));
    found = n != NULL && strlen(n) < USER_NAME_BUF;
    if (found)
        memcpy(name, n, strlen(n) + 1);
    json_decref(rows);
    return found;
}

static void
free_secret(char *s)
{
    if (s != NULL)
        sodium_memzero(s, strlen(s));
    free(s);
}

static void
user_add_post(struct page *pg)
{
    char *name = ui_form_value(pg->req->body, "name");
    char *role = ui_form_value(pg->req->body, "role");
    char *pw = ui_form_value(pg->req->body, "password");
    struct errbuf eb = {0};
    int rc = auth_user_add_to(pg->req->st, pg->p.account_id, name, role, pw, &eb);

    if (rc == ERR_OK) {
        users_page(pg, "ok", "The user was added and can sign in now.", NULL);
    } else {
        pg->resp->status = rc == ERR_EXISTS ? 409 : rc == ERR_INVAL ? 400 : store_status(rc);
        users_page(pg, "bad", store_msg(pg->req, rc, &eb), pg->req->body);
    }
    free(name);
    free(role);
    free_secret(pw);
}

static void
user_password_post(struct page *pg, int64_t id)
{
    char *pw = ui_form_value(pg->req->body, "password");
    char name[USER_NAME_BUF];
    struct errbuf eb = {0};
    int rc;

    if (!account_user(pg, id, name)) {
        pg->resp->status = 404;
        users_page(pg, "bad", "There is no such user in this account.", NULL);
    } else if ((rc = auth_user_passwd(pg->req->st, name, pw, &eb)) != ERR_OK) {
        pg->resp->status = rc == ERR_INVAL ? 400 : store_status(rc);
        users_page(pg, "bad", store_msg(pg->req, rc, &eb), NULL);
    } else if (id == pg->p.user_id) {
        /* The change ended every session of the user, this one included. */
        redirect(pg->resp, "/login");
    } else {
        users_page(pg, "ok", "The password was changed and the user's sessions were ended.", NULL);
    }
    free_secret(pw);
}

static void
user_remove_post(struct page *pg, int64_t id)
{
    char name[USER_NAME_BUF];
    struct errbuf eb = {0};
    int rc;

    if (id == pg->p.user_id) {
        pg->resp->status = 400;
        users_page(pg, "bad",
                   "You cannot remove yourself: another admin can, so the account always keeps "
                   "one.",
                   NULL);
    } else if (!account_user(pg, id, name)) {
        pg->resp->status = 404;
        users_page(pg, "bad", "There is no such user in this account.", NULL);
    } else if ((rc = auth_user_remove(pg->req->st, name, &eb)) != ERR_OK) {
        pg->resp->status = store_status(rc);
        users_page(pg, "bad", store_msg(pg->req, rc, &eb), NULL);
    } else {
        log_info("user removed name=%s by=%s", name, pg->p.name);
        users_page(pg, "ok", "The user was removed and signed out.", NULL);
    }
}

/* ---- routes (router.h checks sign-in, the origin, CSRF and roles before any of these) ---- */

/* The page of one call. */
static void
page_of(const struct route_call *c, struct page *pg)
{
    memset(pg, 0, sizeof *pg);
    pg->app = c->app;
    pg->req = c->req;
    pg->resp = c->resp;
    pg->b = &c->resp->body;
    if (c->p != NULL)
        pg->p = *c->p;
}

static void
not_found(struct page *pg)
{
    pg->resp->status = 404;
    page_begin(pg, "Not found", NULL);
    empty_state(pg->b, "Page not found", "<p><a href=\"/assets\">Go to hardware</a></p>");
    page_end(pg);
}

static void
refused(struct page *pg, int status, const char *msg)
{
    pg->resp->status = status;
    page_begin(pg, "Refused", NULL);
    notice(pg->b, "bad", msg);
    page_end(pg);
}

static void
css_get(const struct route_call *c)
{
    c->resp->content_type = "text/css; charset=utf-8";
    buf_addstr(&c->resp->body, app_css);
}

static void
js_get(const struct route_call *c)
{
    c->resp->content_type = "text/javascript; charset=utf-8";
    buf_addstr(&c->resp->body, app_js);
}

static void
login_get(const struct route_call *c)
{
    struct page pg;

    page_of(c, &pg);
    login_page(&pg, NULL, safe_next(httpd_arg(c->req, "next")));
}

/* The setup guide (ui_help.h), linked from every value of the integration form. */
static void
help_page(struct page *pg)
{
    page_begin(pg, "Setting up the integration", "/integrations");
    buf_addstr(pg->b, "<article class=\"help\">");
    buf_addstr(pg->b, ui_help_setup_html());
    buf_addstr(pg->b, "</article>");
    page_end(pg);
}

/* One route function per page: each builds the page of its call and renders it. */
#define PAGE_ROUTE(fn, call)                                                                       \
    static void fn(const struct route_call *c)                                                     \
    {                                                                                              \
        struct page pg;                                                                            \
                                                                                                   \
        page_of(c, &pg);                                                                           \
        call;                                                                                      \
    }

PAGE_ROUTE(login_submit, login_post(&pg))
PAGE_ROUTE(logout_submit, logout_post(&pg))
PAGE_ROUTE(overview_get, overview_page(&pg))
PAGE_ROUTE(assets_get, assets_page(&pg))
PAGE_ROUTE(assets_prefs_submit, assets_prefs_post(&pg))
PAGE_ROUTE(asset_get, asset_detail(&pg, c->id[0]))
PAGE_ROUTE(software_get, software_page(&pg))
PAGE_ROUTE(software_one_get, software_detail(&pg, c->id[0]))
PAGE_ROUTE(clients_get, clients_page(&pg))
PAGE_ROUTE(runs_get, runs_page(&pg))
PAGE_ROUTE(run_get, run_detail(&pg, c->id[0]))
PAGE_ROUTE(integrations_get, integrations_page(&pg, NULL, NULL, NULL, NULL))
PAGE_ROUTE(apikeys_get, apikeys_page(&pg, NULL, NULL, NULL))
PAGE_ROUTE(users_get, users_page(&pg, NULL, NULL, NULL))
PAGE_ROUTE(integration_submit, integration_post(&pg))
PAGE_ROUTE(apikey_submit, apikey_create_post(&pg))
PAGE_ROUTE(user_submit, user_add_post(&pg))
PAGE_ROUTE(user_password_submit, user_password_post(&pg, c->id[0]))
PAGE_ROUTE(user_remove_submit, user_remove_post(&pg, c->id[0]))
PAGE_ROUTE(apikey_revoke_submit, apikey_revoke_post(&pg, c->id[0]))
PAGE_ROUTE(rotate_submit, rotate_post(&pg, c->id[0]))
PAGE_ROUTE(sync_submit, sync_post(&pg, c->id[0]))
PAGE_ROUTE(help_get, help_page(&pg))

/* Software across clients (ui_software.h): its pages in this UI's frame. */
static const struct ui_software_env software_env = {totp_page_begin, totp_page_end, ui_esc};

static void
products_get(const struct route_call *c)
{
    ui_software_products(&software_env, c->req, c->resp, c->p);
}

static void
product_get(const struct route_call *c)
{
    ui_software_product(&software_env, c->req, c->resp, c->p, c->id[0]);
}

static void
product_devices_get(const struct route_call *c)
{
    ui_software_product_devices(&software_env, c->req, c->resp, c->p, c->id[0]);
}

/* The second factor's routes (ui_totp.h). */
#define TOTP_ROUTE(fn, call)                                                                       \
    static void fn(const struct route_call *c)                                                     \
    {                                                                                              \
        struct ui_totp_env te;                                                                     \
        const struct ui_totp_env *env = totp_env(c->app, &te);                                     \
                                                                                                   \
        call;                                                                                      \
    }

TOTP_ROUTE(totp_code_route, ui_totp_pending(env, c->req, c->resp, MFA_CODE))
TOTP_ROUTE(totp_enrol_route, ui_totp_pending(env, c->req, c->resp, MFA_ENROL))
TOTP_ROUTE(security_get, ui_totp_security_get(env, c->req, c->resp, c->p))
TOTP_ROUTE(totp_start_submit, ui_totp_start_post(env, c->req, c->resp, c->p))
TOTP_ROUTE(totp_confirm_submit, ui_totp_confirm_post(env, c->req, c->resp, c->p))
TOTP_ROUTE(totp_disable_submit, ui_totp_disable_post(env, c->req, c->resp, c->p))
TOTP_ROUTE(totp_require_submit, ui_totp_require_post(env, c->req, c->resp, c->p))
TOTP_ROUTE(totp_reset_submit, ui_totp_reset_post(env, c->req, c->resp, c->p, c->id[0]))
/* The webhook page (ui_webhooks.h) borrows the same frame. */
TOTP_ROUTE(webhooks_page, ui_webhooks_get(env, c->req, c->resp, c->p,
                                          ((const struct api_app *)c->app)->cfg->ca_file))
TOTP_ROUTE(webhooks_submit, ui_webhooks_post(env, c->req, c->resp, c->p,
                                             ((const struct api_app *)c->app)->cfg->ca_file))
TOTP_ROUTE(webhook_remove_submit, ui_webhooks_remove_post(env, c->req, c->resp, c->p, c->id[0]))
TOTP_ROUTE(webhook_resume_submit, ui_webhooks_resume_post(env, c->req, c->resp, c->p, c->id[0]))

/* The client page's routes (ui_client.h). */
static void
client_one_get(const struct route_call *c)
{
    struct ui_client_env ce;

    ui_client_page(client_env(&ce), c);
}

static void
client_submit(const struct route_call *c)
{
    struct ui_client_env ce;

    ui_client_post(client_env(&ce), c);
}
/* Single sign-on's routes (ui_sso.h). */
#define SSO_ROUTE(fn, call)                                                                        \
    static void fn(const struct route_call *c)                                                     \
    {                                                                                              \
        struct ui_totp_env te;                                                                     \
        const struct api_app *app = c->app;                                                        \
        struct ui_sso_env se = {totp_env(c->app, &te), app->cfg};                                  \
        const struct ui_sso_env *env = &se;                                                        \
                                                                                                   \
        call;                                                                                      \
    }

SSO_ROUTE(sso_start_route, ui_sso_start(env, c->req, c->resp))
SSO_ROUTE(sso_callback_route, ui_sso_callback(env, c->req, c->resp))
SSO_ROUTE(sso_settings_get, ui_sso_settings_get(env, c->req, c->resp, c->p))
SSO_ROUTE(sso_settings_submit, ui_sso_settings_post(env, c->req, c->resp, c->p))
SSO_ROUTE(sso_off_submit, ui_sso_off_post(env, c->req, c->resp, c->p))
SSO_ROUTE(sso_local_submit, ui_sso_local_post(env, c->req, c->resp, c->p))

#define MANAGE_ONLY "Only admins can manage users and API keys."
#define CHANGE_ONLY "Only admins can change integrations, users and API keys."
#define TOTP_ONLY   "Only admins can change two-step sign-in for others."
#define SSO_ONLY    "Only admins can change how people sign in."

static const struct route routes[] = {
    {"GET", "/static/app.css", css_get, AUTH_NONE, 0, ROUTE_UI, NULL},
    {"GET", "/static/app.js", js_get, AUTH_NONE, 0, ROUTE_UI, NULL},
    {"GET", "/login", login_get, AUTH_NONE, 0, ROUTE_UI, NULL},
    {"POST", "/login", login_submit, AUTH_NONE, 1, ROUTE_UI, NULL},
    /* A pending sign-in, not a session: ui_totp.c checks its cookie and form token. */
    {"GET", "/login/totp", totp_code_route, AUTH_NONE, 0, ROUTE_UI, NULL},
    {"POST", "/login/totp", totp_code_route, AUTH_NONE, 1, ROUTE_UI, NULL},
    {"GET", "/login/totp/enrol", totp_enrol_route, AUTH_NONE, 0, ROUTE_UI, NULL},
    {"POST", "/login/totp/enrol", totp_enrol_route, AUTH_NONE, 1, ROUTE_UI, NULL},
    {"POST", "/logout", logout_submit, AUTH_READ, 1, ROUTE_UI, NULL},
    {"GET", "/security", security_get, AUTH_READ, 0, ROUTE_UI, NULL},
    {"POST", "/security/totp/start", totp_start_submit, AUTH_READ, 1, ROUTE_UI, NULL},
    {"POST", "/security/totp/confirm", totp_confirm_submit, AUTH_READ, 1, ROUTE_UI, NULL},
    {"POST", "/security/totp/disable", totp_disable_submit, AUTH_READ, 1, ROUTE_UI, NULL},
    {"POST", "/security/require", totp_require_submit, AUTH_ADMIN, 1, ROUTE_UI, TOTP_ONLY},
    {"POST", "/users/{id}/totp/reset", totp_reset_submit, AUTH_ADMIN, 1, ROUTE_UI, TOTP_ONLY},
    {"GET", "/", overview_get, AUTH_READ, 0, ROUTE_UI, NULL},
    {"GET", "/assets", assets_get, AUTH_READ, 0, ROUTE_UI, NULL},
    {"GET", "/assets/{id}", asset_get, AUTH_READ, 0, ROUTE_UI, NULL},
    {"GET", "/software", software_get, AUTH_READ, 0, ROUTE_UI, NULL},
    {"GET", "/software/{id}", software_one_get, AUTH_READ, 0, ROUTE_UI, NULL},
    {"GET", "/software/products", products_get, AUTH_READ, 0, ROUTE_UI, NULL},
    {"GET", "/software/products/{id}", product_get, AUTH_READ, 0, ROUTE_UI, NULL},
    {"GET", "/software/products/{id}/devices", product_devices_get, AUTH_READ, 0, ROUTE_UI, NULL},
    {"GET", "/clients", clients_get, AUTH_READ, 0, ROUTE_UI, NULL},
    {"GET", "/runs", runs_get, AUTH_READ, 0, ROUTE_UI, NULL},
    {"GET", "/runs/{id}", run_get, AUTH_READ, 0, ROUTE_UI, NULL},
    {"GET", "/integrations", integrations_get, AUTH_READ, 0, ROUTE_UI, NULL},
    {"GET", "/api-keys", apikeys_get, AUTH_ADMIN, 0, ROUTE_UI, MANAGE_ONLY},
    {"GET", "/users", users_get, AUTH_ADMIN, 0, ROUTE_UI, MANAGE_ONLY},
    {"GET", "/webhooks", webhooks_page, AUTH_ADMIN, 0, ROUTE_UI, MANAGE_ONLY},
    {"POST", "/webhooks", webhooks_submit, AUTH_ADMIN, 1, ROUTE_UI, CHANGE_ONLY},
    {"POST", "/webhooks/{id}/remove", webhook_remove_submit, AUTH_ADMIN, 1, ROUTE_UI, CHANGE_ONLY},
    {"POST", "/webhooks/{id}/resume", webhook_resume_submit, AUTH_ADMIN, 1, ROUTE_UI, CHANGE_ONLY},
    {"POST", "/integrations", integration_submit, AUTH_ADMIN, 1, ROUTE_UI, CHANGE_ONLY},
    {"POST", "/api-keys", apikey_submit, AUTH_ADMIN, 1, ROUTE_UI, CHANGE_ONLY},
    {"POST", "/users", user_submit, AUTH_ADMIN, 1, ROUTE_UI, CHANGE_ONLY},
    {"POST", "/users/{id}/password", user_password_submit, AUTH_ADMIN, 1, ROUTE_UI, CHANGE_ONLY},
    {"POST", "/users/{id}/remove", user_remove_submit, AUTH_ADMIN, 1, ROUTE_UI, CHANGE_ONLY},
    {"POST", "/api-keys/{id}/revoke", apikey_revoke_submit, AUTH_ADMIN, 1, ROUTE_UI, CHANGE_ONLY},
    {"POST", "/integrations/{id}/rotate", rotate_submit, AUTH_ADMIN, 1, ROUTE_UI, CHANGE_ONLY},
    {"POST", "/integrations/{id}/sync", sync_submit, AUTH_ADMIN, 1, ROUTE_UI, CHANGE_ONLY},
    {"GET", "/clients/{id}", client_one_get, AUTH_READ, 0, ROUTE_UI, NULL},
    {"POST", "/assets/preferences", assets_prefs_submit, AUTH_READ, 1, ROUTE_UI, NULL},
    {"POST", "/clients/{id}", client_submit, AUTH_ADMIN, 1, ROUTE_UI,
     "Only admins can exclude, include, rename or sync clients."},
    {"GET", "/help/setup", help_get, AUTH_READ, 0, ROUTE_UI, NULL},
    /* Single sign-on: the start and Microsoft's answer have no caller (ui_sso.h). */
    {"GET", "/auth/sso", sso_start_route, AUTH_NONE, 0, ROUTE_UI, NULL},
    {"GET", "/auth/sso/callback", sso_callback_route, AUTH_NONE, 0, ROUTE_UI, NULL},
    {"GET", "/settings/sso", sso_settings_get, AUTH_ADMIN, 0, ROUTE_UI, SSO_ONLY},
    {"POST", "/settings/sso", sso_settings_submit, AUTH_ADMIN, 1, ROUTE_UI, SSO_ONLY},
    {"POST", "/settings/sso/off", sso_off_submit, AUTH_ADMIN, 1, ROUTE_UI, SSO_ONLY},
    {"POST", "/settings/sso/local", sso_local_submit, AUTH_ADMIN, 1, ROUTE_UI, SSO_ONLY},
};

const struct route *
ui_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

/* What a signed-in user whose account requires a second factor may still reach without one. */
static route_handler *const gate_exempt[] = {
    logout_submit,       security_get,        totp_start_submit, totp_confirm_submit,
    totp_disable_submit, totp_require_submit, totp_reset_submit,
};

int
ui_gate(void *app, struct httpd_request *req, struct httpd_response *resp,
        const struct auth_principal *p, const struct route *rt)
{
    struct ui_totp_env te;

    for (size_t i = 0; rt != NULL && i < sizeof gate_exempt / sizeof gate_exempt[0]; i++)
        if (rt->handler == gate_exempt[i])
            return 0;
    return ui_totp_gate(totp_env(app, &te), req, resp, p);
}

void
ui_refuse(void *app, struct httpd_request *req, struct httpd_response *resp,
          const struct auth_principal *p, const struct route_denial *d)
{
    struct route_call c = {app, req, resp, p, {0}};
    struct page pg;

    page_of(&c, &pg);
    switch (d->why) {
    case ROUTE_CROSS_SITE:
        refused(&pg, 403, "This form was sent from another site and was refused.");
        break;
    case ROUTE_UNAUTHENTICATED:
        memset(&pg.p, 0, sizeof pg.p);
        if (req->st == NULL) { /* this thread could not open the database (httpd.c) */
            httpd_response_header(resp, "Retry-After", "5");
            refused(&pg, 503, "The database cannot be opened; try again in a moment.");
        } else if (d->code == ERR_DB || d->code == ERR_TIMEOUT || d->code == ERR_IO) {
            /* The session could not be read: say so rather than send a signed-in user away. */
            page_store_failed(&pg, d->code, NULL);
            page_begin(&pg, "Error", NULL);
            page_end(&pg);
        } else if (strcmp(req->method, "POST") == 0) {
            resp->status = 401;
            login_page(&pg, "Your session ended; sign in again.", "/assets");
        } else {
            struct buf to;

            buf_init(&to, 4096);
            buf_addstr(&to, "/login?next=");
            buf_add_urlenc(&to, req->path);
            redirect(resp, buf_cstr(&to));
            buf_free(&to);
        }
        break;
    case ROUTE_CSRF:
        refused(&pg, 403,
                "This form was refused: it did not carry this session's security token. "
                "Reload the page and try again.");
        break;
    case ROUTE_FORBIDDEN:
        refused(&pg, 403, d->msg != NULL ? d->msg : CHANGE_ONLY);
        break;
    case ROUTE_BAD_METHOD:
        resp->status = 405;
        httpd_response_header(resp, "Allow", d->allow != NULL ? d->allow : "");
        page_begin(&pg, "Not allowed", NULL);
        page_end(&pg);
        break;
    case ROUTE_NOT_FOUND:
    default:
        not_found(&pg);
        break;
    }
}
