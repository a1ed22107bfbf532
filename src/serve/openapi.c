/* openapi.c - the /openapi.json document: the compiled-in fragments, completed from the store's
 * list tables (openapi.h). */
#include "openapi.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "store.h"

static const char doc_src[] =
#include "openapi_doc.inc"
    ;

static pthread_once_t doc_once = PTHREAD_ONCE_INIT;
static char *doc;
static int page_default, page_max; /* the first caller's, read by build */

static const char *const filter_ops = "eq (default), in (comma list), lt, lte, gt, gte, like "
                                      "(substring, case-insensitive)";

static json_t *
query_param(const char *name, const char *desc, json_t *schema)
{
    return json_pack("{s:s, s:s, s:b, s:s, s:o}", "name", name, "in", "query", "required", 0,
                     "description", desc, "schema", schema);
}

static const char *
kind_type(enum store_cell_kind k)
{
    switch (k) {
    case SC_INT:
        return "integer";
    case SC_BOOL:
        return "boolean";
    case SC_TS:
        return "date-time";
    default:
        return "string";
    }
}

/* filter[field]=op:value for every field of the list: one property each. */
static json_t *
filter_param(const struct store_list_entity *e)
{
    json_t *props = json_object(), *p;
    char desc[160];

    for (const struct store_list_field *f = e->fields; f->name != NULL; f++) {
        snprintf(desc, sizeof desc, "op:value on a %s field", kind_type(f->kind));
        json_object_set_new(props, f->name,
                            json_pack("{s:s, s:s, s:s}", "type", "string", "pattern",
                                      "^((eq|in|lt|lte|gt|gte|like):)?.*$", "description", desc));
    }
    p = json_pack("{s:s, s:s, s:b, s:s, s:b, s:s, s:{s:s, s:o, s:b}, s:{s:s}}", "name", "filter",
                  "in", "query", "required", 0, "style", "deepObject", "explode", 1, "description",
                  "filter[field]=op:value; an unknown field or operator is a 400. Quote values "
                  "with commas, colons or spaces: filter[name]=eq:\"LT 01\"",
                  "schema", "type", "object", "properties", props, "additionalProperties", 0,
                  "example", "type", "eq:WORKSTATION");
    json_object_set_new(p, "x-memsync-filter-operators", json_string(filter_ops));
    if (strcmp(e->name, "hardware") != 0)
        json_object_del(p, "example");
    return p;
}

/* sort=field,-field: each field ascending, or descending with a '-'. */
static json_t *
sort_param(const struct store_list_entity *e)
{
    json_t *names = json_array();
    char neg[128];

    for (const struct store_list_field *f = e->fields; f->name != NULL; f++) {
        snprintf(neg, sizeof neg, "-%s", f->name);
        json_array_append_new(names, json_string(f->name));
        json_array_append_new(names, json_string(neg));
    }
    return json_pack("{s:s, s:s, s:b, s:s, s:b, s:s, s:{s:s, s:i, s:{s:s, s:o}}}", "name", "sort",
                     "in", "query", "required", 0, "style", "form", "explode", 0, "description",
                     "sort fields, comma-separated, '-' for descending ('+' or none for "
                     "ascending); nulls last both ways, then id",
                     "schema", "type", "array", "maxItems", STORE_LIST_MAX_SORTS, "items", "type",
                     "string", "enum", names);
}

static void
add_list_params(json_t *op, const char *spec)
{
    char entity[64];
    const char *colon = strchr(spec, ':');
    int csv = colon != NULL && strcmp(colon, ":csv") == 0;
    const struct store_list_entity *e;
    json_t *params = json_object_get(op, "parameters");

    snprintf(entity, sizeof entity, "%.*s", colon != NULL ? (int)(colon - spec) : (int)strlen(spec),
             spec);
    e = store_list_entity(entity);
    ASSERT(e != NULL); /* a fragment names a list the store does not have */
    if (params == NULL) {
        params = json_array();
        json_object_set_new(op, "parameters", params);
    }
    if (!csv) {
        json_array_append_new(
            params, query_param("page_size", "rows per page",
                                json_pack("{s:s, s:i, s:i, s:i}", "type", "integer", "minimum", 1,
                                          "maximum", page_max, "default", page_default)));
        json_array_append_new(
            params,
            query_param("cursor",
                        "next_cursor of the previous page, unchanged and with the same sort "
                        "(opaque; another sort or an edited cursor is a 400)",
                        json_pack("{s:s, s:i}", "type", "string", "maxLength", 8192)));
        json_array_append_new(params, sort_param(e));
    }
    json_array_append_new(params,
                          query_param("search", "free text, substring",
                                      json_pack("{s:s, s:i}", "type", "string", "maxLength", 200)));
    json_array_append_new(params, filter_param(e));
}

static json_t *
response_ref(const char *name)
{
    char ref[96];

    snprintf(ref, sizeof ref, "#/components/responses/%s", name);
    return json_pack("{s:s}", "$ref", ref);
}

/* Every 2xx answer to a key carries the rate limit's figures (ratelimit.h). */
static void
add_rate_headers(json_t *resps)
{
    static const char *const names[] = {"RateLimit-Limit", "RateLimit-Remaining",
                                        "RateLimit-Reset"};
    const char *code;
    json_t *r;

    json_object_foreach(resps, code, r)
    {
        json_t *headers;
        char ref[96];

        if (code[0] != '2' || json_object_get(r, "$ref") != NULL)
            continue;
        if ((headers = json_object_get(r, "headers")) == NULL) {
            headers = json_object();
            json_object_set_new(r, "headers", headers);
        }
        for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
            snprintf(ref, sizeof ref, "#/components/headers/%s", names[i]);
            json_object_set_new(headers, names[i], json_pack("{s:s}", "$ref", ref));
        }
    }
}

static void
complete(json_t *root)
{
    json_t *paths = json_object_get(root, "paths"), *item;
    const char *path;

    json_object_foreach(paths, path, item)
    {
        json_t *op;
        const char *method;

        json_object_foreach(item, method, op)
        {
            json_t *resps = json_object_get(op, "responses");
            json_t *list = json_object_get(op, "x-memsync-list");
            json_t *sec = json_object_get(op, "security");
            int public = json_is_array(sec) && json_array_size(sec) == 0;

            if (json_is_string(list))
                add_list_params(op, json_string_value(list));
            if (!public)
                add_rate_headers(resps);
            if (!public) {
                if (json_object_get(resps, "401") == NULL)
                    json_object_set_new(resps, "401", response_ref("Unauthorized"));
                if (json_object_get(resps, "429") == NULL)
                    json_object_set_new(resps, "429", response_ref("TooManyRequests"));
            }
            if (json_object_get(resps, "default") == NULL)
                json_object_set_new(resps, "default", response_ref("Error"));
        }
    }
}

static void
build(void)
{
    json_error_t jerr;
    json_t *root = json_loads(doc_src, 0, &jerr);

    ASSERT(root != NULL); /* openapi_doc.inc is generated from valid JSON */
    complete(root);
    doc = json_dumps(root, JSON_INDENT(1) | JSON_PRESERVE_ORDER);
    ASSERT(doc != NULL);
    json_decref(root);
}

const char *
openapi_document(int page_default_rows, int page_max_rows)
{
    static pthread_mutex_t first = PTHREAD_MUTEX_INITIALIZER;

    pthread_mutex_lock(&first);
    if (page_max == 0) {
        page_default = page_default_rows;
        page_max = page_max_rows;
    }
    pthread_mutex_unlock(&first);
    pthread_once(&doc_once, build);
    return doc;
}
