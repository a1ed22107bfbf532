#include "partner.h"

#include <ctype.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "graph.h"
#include "guid.h"
#include "mem.h"

void
customer_clear(struct customer *c)
{
    if (c == NULL)
        return;
    free(c->tenant_id);
    free(c->name);
    free(c->domain);
    free(c->relationship);
    free(c->associated_partner_id);
    memset(c, 0, sizeof *c);
}

void
customers_free(struct customer *v, size_t n)
{
    for (size_t i = 0; v != NULL && i < n; i++)
        customer_clear(&v[i]);
    free(v);
}

void
customer_page_clear(struct customer_page *p)
{
    if (p == NULL)
        return;
    for (size_t i = 0; i < p->count; i++)
        customer_clear(&p->items[i]);
    free(p->items);
    free(p->next_uri);
    free(p->next_continuation);
    memset(p, 0, sizeof *p);
    p->total_count = -1;
}

/* Length of the base without trailing slashes and without a trailing "/v1". */
static size_t
pc_base_len(const char *base)
{
    size_t n = strlen(base);

    while (n > 0 && base[n - 1] == '/')
        n--;
    if (n >= 3 && strncmp(base + n - 3, "/v1", 3) == 0)
        n -= 3;
    while (n > 0 && base[n - 1] == '/')
        n--;
    return n;
}

char *
partner_customers_url(const char *pc_base, int size)
{
    if (pc_base == NULL)
        return NULL;
    if (size <= 0 || size > PARTNER_PAGE_SIZE)
        size = PARTNER_PAGE_SIZE;
    return xasprintf("%.*s/v1/customers?size=%d", (int)pc_base_len(pc_base), pc_base, size);
}

char *
partner_next_url(const char *pc_base, const char *next_uri)
{
    size_t n;
    const char *path;

    if (pc_base == NULL || next_uri == NULL || *next_uri == '\0')
        return NULL;
    if (strncasecmp(next_uri, "https://", 8) == 0 || strncasecmp(next_uri, "http://", 7) == 0) {
        /* An absolute link may only point back at Partner Center: the token goes with it. */
        return graph_link_allowed(pc_base, next_uri) ? xstrdup(next_uri) : NULL;
    }
    for (const char *c = next_uri; *c != '\0'; c++) {
        if ((unsigned char)*c <= 0x20 || *c == 0x7f || *c == '\\')
            return NULL;
    }
    /* "//host/..." would be a network-path reference to another host. */
    if (next_uri[0] == '/' && next_uri[1] == '/')
        return NULL;
    n = pc_base_len(pc_base);
    path = next_uri[0] == '/' ? next_uri + 1 : next_uri;
    /* Partner Center links come as "/v1/customers?..." or "/customers?...": "/v1" once. */
    if (strncmp(path, "v1", 2) == 0 && (path[2] == '/' || path[2] == '?' || path[2] == '\0'))
        return xasprintf("%.*s/%s", (int)n, pc_base, path);
    return xasprintf("%.*s/v1/%s", (int)n, pc_base, path);
}

static json_t *
load_obj(const char *body, size_t len, const char *what, struct errbuf *eb)
{
    json_error_t jerr;
    json_t *root;

    if (body == NULL) {
        err_set(eb, ERR_PARSE, "%s: empty response", what);
        return NULL;
    }
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        err_set(eb, ERR_PARSE, "%s is not valid JSON: %s (line %d, column %d)", what, jerr.text,
                jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        err_set(eb, ERR_PARSE, "%s is not a JSON object", what);
        return NULL;
    }
    return root;
}

/* Optional string member: absent/null/"" give NULL; another type is an error. */
static int
opt_str(const json_t *obj, const char *member, char **out, const char *what, struct errbuf *eb)
{
    const json_t *v = json_object_get(obj, member);

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return ERR_OK;
    if (!json_is_string(v))
        return err_set(eb, ERR_PARSE, "%s: member %s is not a string", what, member);
    if (json_string_length(v) > 0)
        *out = xstrndup(json_string_value(v), json_string_length(v));
    return ERR_OK;
}

static void
customer_free_fields(struct customer *c)
{
    free(c->tenant_id);
    free(c->name);
    free(c->domain);
    free(c->relationship);
    free(c->associated_partner_id);
    memset(c, 0, sizeof *c);
}

static struct customer *
page_alloc(struct customer_page *p, size_t count)
{
    p->items = xcalloc(count ? count : 1, sizeof *p->items);
    return p->items;
}

static int
pc_customer(const json_t *item, struct customer *c, struct errbuf *eb)
{
    const char *what = "Partner Center customer";
    const json_t *profile;
    char *id = NULL, *tid = NULL;
    int rc;

    memset(c, 0, sizeof *c);
    if (!json_is_object(item))
        return err_set(eb, ERR_PARSE, "%s is not a JSON object", what);
    profile = json_object_get(item, "companyProfile");
    if (profile != NULL && !json_is_null(profile) && !json_is_object(profile))
        return err_set(eb, ERR_PARSE, "%s: companyProfile is not an object", what);
    if ((rc = opt_str(item, "id", &id, what, eb)) != ERR_OK ||
        (rc = opt_str(profile, "tenantId", &tid, what, eb)) != ERR_OK ||
        (rc = opt_str(profile, "companyName", &c->name, what, eb)) != ERR_OK ||
        (rc = opt_str(profile, "domain", &c->domain, what, eb)) != ERR_OK ||
        (rc = opt_str(item, "relationshipToPartner", &c->relationship, what, eb)) != ERR_OK ||
        (rc = opt_str(item, "associatedPartnerId", &c->associated_partner_id, what, eb)) != ERR_OK)
        goto out;
    /* The tenant id is companyProfile.tenantId; the customer id is the same GUID and stands in
     * when tenantId is missing or not a GUID (the docs' samples carry "<guid>"). */
    if (tid != NULL && (guid_valid(tid) || !guid_valid(id))) {
        c->tenant_id = tid;
        tid = NULL;
    } else if (id != NULL) {
        c->tenant_id = id;
        id = NULL;
    } else {
        rc = err_set(eb, ERR_PARSE, "%s has neither id nor companyProfile.tenantId", what);
        goto out;
    }
    rc = ERR_OK;
out:
    free(id);
    free(tid);
    if (rc != ERR_OK)
        customer_free_fields(c);
    return rc;
}

int
partner_customers_parse(const char *body, size_t len, struct customer_page *out, struct errbuf *eb)
{
    const char *what = "Partner Center customers page";
    json_t *root = NULL;
    const json_t *items, *total, *next, *headers, *h;
    size_t i;
    int rc;

    memset(out, 0, sizeof *out);
    out->total_count = -1;
    if ((root = load_obj(body, len, what, eb)) == NULL)
        return ERR_PARSE;
    items = json_object_get(root, "items");
    if (items == NULL && json_object_get(root, "companyProfile") != NULL) {
        /* GET /v1/customers/{id}: one Customer, returned as a page of one. */
        page_alloc(out, 1);
        if ((rc = pc_customer(root, &out->items[0], eb)) != ERR_OK)
            goto out;
        out->count = 1;
        goto done;
    }
    if (!json_is_array(items)) {
        rc = err_set(eb, ERR_PARSE, "%s has no \"items\" array", what);
        goto out;
    }
    total = json_object_get(root, "totalCount");
    if (json_is_integer(total) && json_integer_value(total) >= 0)
        out->total_count = (long)json_integer_value(total);
    page_alloc(out, json_array_size(items));
    for (i = 0; i < json_array_size(items); i++) {
        if ((rc = pc_customer(json_array_get(items, i), &out->items[i], eb)) != ERR_OK)
            goto out;
        out->count++;
    }
    next = json_object_get(json_object_get(root, "links"), "next");
    if (json_is_object(next)) {
        if ((rc = opt_str(next, "uri", &out->next_uri, what, eb)) != ERR_OK)
            goto out;
        headers = json_object_get(next, "headers");
        json_array_foreach(headers, i, h)
        {
            const json_t *k = json_object_get(h, "key"), *v = json_object_get(h, "value");

            if (json_is_string(k) && json_is_string(v) &&
                strcasecmp(json_string_value(k), "MS-ContinuationToken") == 0) {
                free(out->next_continuation);
                out->next_continuation = xstrndup(json_string_value(v), json_string_length(v));
            }
        }
    }
done:
    rc = ERR_OK;
out:
    json_decref(root);
    if (rc != ERR_OK)
        customer_page_clear(out);
    return rc;
}

/* Graph collections: /contracts and /tenantRelationships/delegatedAdminCustomers. */
static int
graph_customers(const char *body, size_t len, struct customer_page *out, int gdap,
                struct errbuf *eb)
{
    const char *what = gdap ? "delegatedAdminCustomers page" : "contracts page";
    json_t *root = NULL, *single = NULL;
    const json_t *value, *link;
    size_t i;
    int rc;

    memset(out, 0, sizeof *out);
    out->total_count = -1;
    if ((root = load_obj(body, len, what, eb)) == NULL)
        return ERR_PARSE;
    value = json_object_get(root, "value");
    if (value == NULL && json_object_get(root, gdap ? "tenantId" : "customerId") != NULL) {
        /* A single-entity GET: treat it as a collection of one. */
        single = json_array();
        json_array_append(single, root);
        value = single;
    }
    if (!json_is_array(value)) {
        rc = err_set(eb, ERR_PARSE, "%s has no \"value\" array", what);
        goto out;
    }
    link = json_object_get(root, "@odata.nextLink");
    if (link != NULL && !json_is_null(link) && !json_is_string(link)) {
        rc = err_set(eb, ERR_PARSE, "%s: @odata.nextLink is not a string", what);
        goto out;
    }
    if (json_is_string(link) && json_string_length(link) > 0)
        out->next_uri = xstrndup(json_string_value(link), json_string_length(link));
    page_alloc(out, json_array_size(value));
    for (i = 0; i < json_array_size(value); i++) {
        const json_t *item = json_array_get(value, i);
        struct customer *c = &out->items[i];
        char *id = NULL;

        if (!json_is_object(item)) {
            rc = err_set(eb, ERR_PARSE, "%s: item %zu is not an object", what, i + 1);
            goto out;
        }
        if (gdap) {
            rc = opt_str(item, "tenantId", &c->tenant_id, what, eb);
            if (rc == ERR_OK)
                rc = opt_str(item, "id", &id, what, eb);
            if (rc == ERR_OK && c->tenant_id == NULL) {
                c->tenant_id = id;
                id = NULL;
            }
            free(id);
            if (rc == ERR_OK)
                rc = opt_str(item, "displayName", &c->name, what, eb);
            if (rc == ERR_OK)
                c->relationship = xstrdup("gdap");
        } else {
            rc = opt_str(item, "customerId", &c->tenant_id, what, eb);
            if (rc == ERR_OK)
                rc = opt_str(item, "displayName", &c->name, what, eb);
            if (rc == ERR_OK)
                rc = opt_str(item, "defaultDomainName", &c->domain, what, eb);
            if (rc == ERR_OK)
                rc = opt_str(item, "contractType", &c->relationship, what, eb);
        }
        out->count++;
        if (rc != ERR_OK)
            goto out;
        if (c->tenant_id == NULL) {
            rc = err_set(eb, ERR_PARSE, "%s: item %zu has no tenant id", what, i + 1);
            goto out;
        }
    }
    rc = ERR_OK;
out:
    json_decref(single);
    json_decref(root);
    if (rc != ERR_OK)
        customer_page_clear(out);
    return rc;
}

int
partner_contracts_parse(const char *body, size_t len, struct customer_page *out, struct errbuf *eb)
{
    return graph_customers(body, len, out, 0, eb);
}

int
partner_gdap_customers_parse(const char *body, size_t len, struct customer_page *out,
                             struct errbuf *eb)
{
    return graph_customers(body, len, out, 1, eb);
}

static void
first_line(char *dst, size_t cap, const char *prefix, const char *code, const char *text)
{
    int n = snprintf(dst, cap, "%s%s%s%s", prefix, code, *code && *text ? ": " : "", text);

    if (n > 0)
        dst[strcspn(dst, "\r\n")] = '\0';
}

int
partner_error_parse(const char *body, size_t len, char *msg, size_t msglen)
{
    json_t *root = NULL;
    const json_t *code, *text;
    char codebuf[64] = "";
    int rc = ERR_PARSE;

    if (msglen > 0)
        msg[0] = '\0';
    if (body == NULL || (root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL)) == NULL)
        return ERR_PARSE;
    if (!json_is_object(root))
        goto out;
    code = json_object_get(root, "code");
    text = json_object_get(root, "description");
    if (code == NULL && text == NULL) {
        code = json_object_get(root, "statusCode");
        text = json_object_get(root, "message");
    }
    if (code == NULL && text == NULL)
        goto out;
    if (json_is_integer(code))
        snprintf(codebuf, sizeof codebuf, "%lld", (long long)json_integer_value(code));
    else if (json_is_string(code))
        snprintf(codebuf, sizeof codebuf, "%s", json_string_value(code));
    else if (code != NULL && !json_is_null(code))
        goto out;
    if (text != NULL && !json_is_null(text) && !json_is_string(text))
        goto out;
    if (msglen > 0)
        first_line(msg, msglen, "Partner Center error ", codebuf,
                   json_is_string(text) ? json_string_value(text) : "");
    rc = ERR_OK;
out:
    json_decref(root);
    return rc;
}
