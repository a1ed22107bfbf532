/* ui_software.c - software across clients in the web UI: products, versions, devices. */
#include "ui_software.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "api_software.h"
#include "buf.h"
#include "clock.h"
#include "mem.h"

#define PAGE_SIZE 50
#define PAGE_MAX  1000000

/* ?page=N (1-based); anything else is page 1. */
static int64_t
arg_page(struct httpd_request *req)
{
    const char *s = httpd_arg(req, "page");
    char *end;
    long long v;

    if (s == NULL || s[0] < '1' || s[0] > '9')
        return 1;
    errno = 0;
    v = strtoll(s, &end, 10);
    return errno != 0 || *end != '\0' || v < 1 || v > PAGE_MAX ? 1 : v;
}

static const char *
arg_text(struct httpd_request *req, const char *name)
{
    const char *s = httpd_arg(req, name);

    return s != NULL && s[0] != '\0' && strlen(s) <= 200 ? s : NULL;
}

/* Percent-encodes s for a query value (the result is also safe in an HTML attribute). */
static void
url_esc(struct buf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";

    for (const unsigned char *p = (const unsigned char *)s; p != NULL && *p != '\0'; p++) {
        if ((*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') ||
            *p == '-' || *p == '.' || *p == '_' || *p == '~') {
            buf_addc(b, (char)*p);
        } else {
            buf_addc(b, '%');
            buf_addc(b, hex[*p >> 4]);
            buf_addc(b, hex[*p & 15]);
        }
    }
}

static void
failed(const struct ui_software_env *env, struct httpd_response *resp,
       const struct auth_principal *p, int rc)
{
    resp->status = rc == ERR_TIMEOUT ? 503 : 500;
    env->page_begin(resp, p, "Error", "/software");
    buf_addstr(&resp->body, rc == ERR_TIMEOUT
                                ? "<h1>The database is busy</h1><p>Try again in a moment.</p>"
                                : "<h1>Something went wrong</h1><p>The server log says why.</p>");
    env->page_end(resp);
}

/* Previous / next links; base ends in '?' or '&'. */
static void
pager(struct buf *b, const char *base, int64_t page, int64_t total)
{
    int64_t pages = (total + PAGE_SIZE - 1) / PAGE_SIZE;

    if (pages <= 1)
        return;
    buf_printf(
        b, "<div class=\"pager\"><span>%" PRId64 " total · page %" PRId64 " of %" PRId64 "</span>",
        total, page, pages);
    if (page > 1) {
        buf_addstr(b, "<a class=\"btn ghost\" href=\"");
        buf_addstr(b, base);
        buf_printf(b, "page=%" PRId64 "\" rel=\"prev\">Previous</a>", page - 1);
    }
    if (page < pages) {
        buf_addstr(b, "<a class=\"btn ghost\" href=\"");
        buf_addstr(b, base);
        buf_printf(b, "page=%" PRId64 "\" rel=\"next\">Next</a>", page + 1);
    }
    buf_addstr(b, "</div>");
}

void
ui_software_products(const struct ui_software_env *env, struct httpd_request *req,
                     struct httpd_response *resp, const struct auth_principal *p)
{
    const char *search = arg_text(req, "search");
    int64_t page = arg_page(req), nh = 0, shown = 0;
    struct software_snap *s = NULL;
    struct errbuf eb = {0};
    struct buf *b = &resp->body, base;
    int rc;

    if ((rc = api_software_snap(req->st, p->account_id, &s, &eb)) != ERR_OK) {
        failed(env, resp, p, rc);
        return;
    }
    env->page_begin(resp, p, "Software across clients", "/software");
    buf_addstr(b, "<p class=\"muted\"><a href=\"/software\">Software</a> /</p>"
                  "<h1>Software across clients</h1>"
                  "<form class=\"toolbar\" method=\"get\" action=\"/software/products\">"
                  "<label>Where is it installed?<input type=\"search\" name=\"search\" "
                  "id=\"product-search\" placeholder=\"product or publisher\" value=\"");
    env->esc(b, search);
    buf_addstr(b, "\"></label><button type=\"submit\">Search</button></form>"
                  "<div class=\"tablewrap\">");
    for (size_t i = 0; i < s->ix->nproducts; i++)
        nh += product_matches(&s->ix->products[i], search);
    if (nh == 0) {
        buf_addstr(b, "<div class=\"empty\"><strong>");
        buf_addstr(b, search != NULL ? "No product matches" : "No software yet");
        buf_addstr(b, "</strong><p>Products appear after a sync reads detected applications."
                      "</p></div>");
    } else {
        int64_t k = 0;

        buf_addstr(b, "<table id=\"products\"><thead><tr><th>Product</th>"
                      "<th class=\"hide-narrow\">Publisher</th><th class=\"num\">Versions</th>"
                      "<th class=\"num\">Clients</th><th class=\"num\">Devices</th>"
                      "</tr></thead><tbody>");
        for (size_t i = 0; i < s->ix->nproducts; i++) {
            const struct product *pr = &s->ix->products[i];

            if (!product_matches(pr, search))
                continue;
            if (k++ < (page - 1) * PAGE_SIZE || shown >= PAGE_SIZE)
                continue;
            shown++;
            buf_printf(b, "<tr><td><a href=\"/software/products/%" PRId64 "\">", pr->id);
            env->esc(b, pr->name);
            buf_addstr(b, "</a></td><td class=\"hide-narrow\">");
            env->esc(b, pr->publisher);
            buf_printf(b,
                       "</td><td class=\"num\">%zu</td><td class=\"num\">%" PRId64
                       "</td><td class=\"num\">%" PRId64 "</td></tr>",
                       pr->nversions, pr->clients, pr->devices);
        }
        buf_addstr(b, "</tbody></table>");
    }
    buf_addstr(b, "</div>");
    buf_init(&base, 1024);
    buf_addstr(&base, "/software/products?");
    if (search != NULL) {
        buf_addstr(&base, "search=");
        url_esc(&base, search);
        buf_addstr(&base, "&amp;");
    }
    pager(b, buf_cstr(&base), page, nh);
    buf_free(&base);
    env->page_end(resp);
    api_software_release(s);
}

static const struct product *
product_or_404(const struct ui_software_env *env, struct httpd_request *req,
               struct httpd_response *resp, const struct auth_principal *p, int64_t id,
               struct software_snap **s)
{
    struct errbuf eb = {0};
    const struct product *pr;
    int rc;

    if ((rc = api_software_snap(req->st, p->account_id, s, &eb)) != ERR_OK) {
        failed(env, resp, p, rc);
        return NULL;
    }
    if ((pr = product_index_find((*s)->ix, id)) == NULL) {
        resp->status = 404;
        env->page_begin(resp, p, "Not found", "/software");
        buf_addstr(&resp->body,
                   "<div class=\"empty\"><strong>No installed software has "
                   "this product</strong><p><a href=\"/software/products\">Back to software "
                   "across clients</a></p></div>");
        env->page_end(resp);
        api_software_release(*s);
        *s = NULL;
    }
    return pr;
}

static void
crumbs(const struct ui_software_env *env, struct buf *b, const struct product *pr, int link)
{
    buf_addstr(b, "<p class=\"muted\"><a href=\"/software\">Software</a> / <a "
                  "href=\"/software/products\">Across clients</a> /");
    if (link) {
        buf_printf(b, " <a href=\"/software/products/%" PRId64 "\">", pr->id);
        env->esc(b, pr->name);
        buf_addstr(b, "</a> /");
    }
    buf_addstr(b, "</p>");
}

void
ui_software_product(const struct ui_software_env *env, struct httpd_request *req,
                    struct httpd_response *resp, const struct auth_principal *p, int64_t id)
{
    struct software_snap *s = NULL;
    const struct product *pr = product_or_404(env, req, resp, p, id, &s);
    struct buf *b = &resp->body;

    if (pr == NULL)
        return;
    env->page_begin(resp, p, pr->name, "/software");
    crumbs(env, b, pr, 0);
    buf_addstr(b, "<h1>");
    env->esc(b, pr->name);
    buf_addstr(b, "</h1><div class=\"panel\"><dl class=\"kv\"><dt>Publisher</dt><dd>");
    env->esc(b, pr->publisher[0] != '\0' ? pr->publisher : "unknown");
    buf_printf(b,
               "</dd><dt>Clients</dt><dd>%" PRId64 "</dd><dt>Devices</dt><dd><a "
               "href=\"/software/products/%" PRId64 "/devices\">%" PRId64 "</a></dd></dl></div>",
               pr->clients, pr->id, pr->devices);
    buf_addstr(b, "<h2>Versions</h2><div class=\"tablewrap\"><table id=\"product-versions\">"
                  "<thead><tr><th>Version</th><th class=\"num\">Clients</th>"
                  "<th class=\"num\">Devices</th></tr></thead><tbody>");
    for (size_t i = 0; i < pr->nversions; i++) {
        const struct product_version *v = &s->ix->versions[pr->first_version + i];

        buf_addstr(b, "<tr><td>");
        env->esc(b, v->version[0] != '\0' ? v->version : "unknown");
        buf_printf(b,
                   "</td><td class=\"num\">%" PRId64 "</td><td class=\"num\"><a "
                   "href=\"/software/products/%" PRId64 "/devices?version=",
                   v->clients, pr->id);
        url_esc(b, v->version);
        buf_printf(b, "\">%" PRId64 "</a></td></tr>", v->devices);
    }
    buf_addstr(b, "</tbody></table></div>");
    env->page_end(resp);
    api_software_release(s);
}

static const char *
jstr(const json_t *o, const char *a, const char *b)
{
    const json_t *v = json_object_get(o, a);

    if (b != NULL)
        v = json_object_get(v, b);
    return json_is_string(v) ? json_string_value(v) : "";
}

void
ui_software_product_devices(const struct ui_software_env *env, struct httpd_request *req,
                            struct httpd_response *resp, const struct auth_principal *p, int64_t id)
{
    const char *version = httpd_arg(req, "version");
    int64_t page = arg_page(req), total = 0;
    struct software_snap *s = NULL;
    const struct product *pr = product_or_404(env, req, resp, p, id, &s);
    struct errbuf eb = {0};
    struct buf *b = &resp->body, base;
    json_t *rows, *row;
    size_t i;
    int rc;

    if (pr == NULL)
        return;
    if (version != NULL && strlen(version) > 200)
        version = NULL;
    rows = json_array();
    rc = api_software_devices(req->st, s, pr, version, 0, (page - 1) * PAGE_SIZE, PAGE_SIZE, rows,
                              &total, &eb);
    if (rc != ERR_OK) {
        json_decref(rows);
        api_software_release(s);
        failed(env, resp, p, rc);
        return;
    }
    env->page_begin(resp, p, pr->name, "/software");
    crumbs(env, b, pr, 1);
    buf_addstr(b, "<h1>Devices with ");
    env->esc(b, pr->name);
    if (version != NULL) {
        buf_addstr(b, " <span class=\"muted\">");
        env->esc(b, version[0] != '\0' ? version : "unknown version");
        buf_addstr(b, "</span>");
    }
    buf_printf(b, "</h1><p class=\"muted\">%" PRId64 " across clients</p>", total);
    buf_addstr(b, "<div class=\"tablewrap\">");
    if (json_array_size(rows) == 0) {
        buf_addstr(b,
                   "<div class=\"empty\"><strong>No active device has this product</strong></div>");
    } else {
        buf_addstr(b, "<table id=\"product-devices\"><thead><tr><th>Name</th><th>Client</th>"
                      "<th>Version</th><th class=\"hide-narrow\">User</th>"
                      "<th class=\"hide-narrow\">Serial</th></tr></thead><tbody>");
        json_array_foreach(rows, i, row)
        {
            buf_printf(b, "<tr><td><a href=\"/assets/%" JSON_INTEGER_FORMAT "\">",
                       json_integer_value(json_object_get(row, "id")));
            env->esc(b, jstr(row, "name", NULL));
            buf_addstr(b, "</a></td><td>");
            env->esc(b, jstr(row, "client", "name"));
            buf_addstr(b, "</td><td>");
            env->esc(b, jstr(row, "software", "version"));
            buf_addstr(b, "</td><td class=\"hide-narrow\">");
            env->esc(b, jstr(row, "user", "principal_name"));
            buf_addstr(b, "</td><td class=\"hide-narrow mono\">");
            env->esc(b, jstr(row, "serial_number", NULL));
            buf_addstr(b, "</td></tr>");
        }
        buf_addstr(b, "</tbody></table>");
    }
    buf_addstr(b, "</div>");
    buf_init(&base, 1024);
    buf_printf(&base, "/software/products/%" PRId64 "/devices?", pr->id);
    if (version != NULL) {
        buf_addstr(&base, "version=");
        url_esc(&base, version);
        buf_addstr(&base, "&amp;");
    }
    pager(b, buf_cstr(&base), page, total);
    buf_free(&base);
    env->page_end(resp);
    json_decref(rows);
    api_software_release(s);
}
