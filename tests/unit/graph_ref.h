/* graph_ref.h - the jansson mapping the streaming Graph parsers replaced (graph.c and sync.c
 * before yajl), kept only as the reference for test_graphparse.c and the differential fuzz
 * target. Header-only (static functions); include after graph.h. Not used by memsync itself. */
#ifndef MEMSYNC_TEST_GRAPH_REF_H
#define MEMSYNC_TEST_GRAPH_REF_H

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "graph.h"
#include "http.h"
#include "mem.h"

static int
ref_devices_parse(const char *body, size_t len, struct device **devs, size_t *n, size_t *cap,
                  char **next_link, struct errbuf *eb)
{
    struct graph_page page = {0};
    size_t start = *n, count;
    int rc;

    *next_link = NULL;
    if ((rc = graph_page_parse(body, len, &page, eb)) != ERR_OK)
        return rc;
    count = json_array_size(page.value);
    if (*cap - *n < count) {
        size_t ncap = *cap ? *cap : 64;

        while (ncap - *n < count)
            ncap *= 2;
        *devs = xrealloc(*devs, ncap * sizeof **devs);
        *cap = ncap;
    }
    for (size_t i = 0; i < count; i++) {
        rc = device_from_graph(json_array_get(page.value, i), &(*devs)[*n], eb);
        if (rc != ERR_OK) {
            err_prefix(eb, rc, "device %zu of the page", i + 1);
            goto out;
        }
        (*n)++;
    }
    *next_link = page.next_link;
    page.next_link = NULL;
    rc = ERR_OK;
out:
    if (rc != ERR_OK) {
        while (*n > start)
            device_clear(&(*devs)[--(*n)]);
    }
    graph_page_clear(&page);
    return rc;
}

static char *
ref_opt_str(const json_t *obj, const char *member)
{
    const json_t *v = json_object_get(obj, member);

    if (!json_is_string(v) || json_string_length(v) == 0)
        return NULL;
    return xstrndup(json_string_value(v), json_string_length(v));
}

static int
ref_app(const json_t *obj, struct detected_app *a, struct errbuf *eb)
{
    static const char *const members[] = {"displayName", "version", "publisher", "platform"};
    char **slots[] = {&a->name, &a->version, &a->publisher, &a->platform};
    const json_t *id, *size;

    memset(a, 0, sizeof *a);
    a->size_bytes = -1;
    if (!json_is_object(obj))
        return err_set(eb, ERR_PARSE, "detectedApp is not a JSON object");
    id = json_object_get(obj, "id");
    if (!json_is_string(id) || json_string_length(id) == 0)
        return err_set(eb, ERR_PARSE, "detectedApp has no id");
    for (size_t i = 0; i < 4; i++) {
        const json_t *v = json_object_get(obj, members[i]);

        if (v != NULL && !json_is_null(v) && !json_is_string(v)) {
            detected_app_clear(a);
            return err_set(eb, ERR_PARSE, "detectedApp member %s is not a string", members[i]);
        }
        *slots[i] = ref_opt_str(obj, members[i]);
    }
    size = json_object_get(obj, "sizeInByte");
    if (size != NULL && !json_is_null(size)) {
        if (!json_is_integer(size)) {
            detected_app_clear(a);
            return err_set(eb, ERR_PARSE, "detectedApp member sizeInByte is not an integer");
        }
        if (json_integer_value(size) >= 0)
            a->size_bytes = (int64_t)json_integer_value(size);
    }
    a->id = xstrndup(json_string_value(id), json_string_length(id));
    return ERR_OK;
}

static int
ref_apps_from_json(const json_t *root, struct detected_app **apps, size_t *n, size_t *cap,
                   char **next_link, struct errbuf *eb)
{
    const json_t *value, *nl;
    size_t start = *n, count;
    char *next = NULL;
    int rc;

    *next_link = NULL;
    if (!json_is_object(root))
        return err_set(eb, ERR_PARSE, "detectedApps page is not a JSON object");
    value = json_object_get(root, "value");
    if (json_is_object(value))
        count = 1;
    else if (json_is_array(value))
        count = json_array_size(value);
    else
        return err_set(eb, ERR_PARSE, "detectedApps page has no \"value\" array");
    nl = json_object_get(root, "@odata.nextLink");
    if (nl != NULL && !json_is_null(nl)) {
        if (!json_is_string(nl) || json_string_length(nl) == 0)
            return err_set(eb, ERR_PARSE, "detectedApps page: @odata.nextLink is not a URL string");
        next = xstrndup(json_string_value(nl), json_string_length(nl));
    }
    if (*cap - *n < count) {
        size_t ncap = *cap ? *cap : 64;

        while (ncap - *n < count)
            ncap *= 2;
        *apps = xrealloc(*apps, ncap * sizeof **apps);
        *cap = ncap;
    }
    for (size_t i = 0; i < count; i++) {
        const json_t *item = json_is_array(value) ? json_array_get(value, i) : value;

        if ((rc = ref_app(item, &(*apps)[*n], eb)) != ERR_OK)
            goto out;
        (*n)++;
    }
    *next_link = next;
    next = NULL;
    rc = ERR_OK;
out:
    if (rc != ERR_OK) {
        while (*n > start)
            detected_app_clear(&(*apps)[--(*n)]);
    }
    free(next);
    return rc;
}

/* What sync.c's app_page_done made of a body: not JSON -> ERR_PARSE, not a page -> ERR_INVAL. */
static int
ref_apps_parse(const char *body, size_t len, struct detected_app **apps, size_t *n, size_t *cap,
               char **next_link, struct errbuf *eb)
{
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    int rc;

    *next_link = NULL;
    if (root == NULL)
        return err_set(eb, ERR_PARSE, "not JSON");
    rc = ref_apps_from_json(root, apps, n, cap, next_link, eb);
    json_decref(root);
    if (rc != ERR_OK)
        eb->code = rc = ERR_INVAL;
    return rc;
}

/* The old graph_batch_parse, with sync.c's apps_page / detail_item applied to every body. */
static int
ref_batch_parse(const char *body, size_t len, enum graph_batch_kind kind, struct graph_batch *out,
                struct errbuf *eb)
{
    json_t *root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL);
    const json_t *responses;
    int rc = ERR_OK;

    memset(out, 0, sizeof *out);
    if (root == NULL)
        return err_set(eb, ERR_PARSE, "not JSON");
    out->items = xcalloc(GRAPH_BATCH_MAX + 1, sizeof *out->items);
    if (!json_is_object(root)) {
        rc = err_set(eb, ERR_PARSE, "$batch response is not a JSON object");
        goto out;
    }
    responses = json_object_get(root, "responses");
    if (!json_is_array(responses)) {
        rc = err_set(eb, ERR_PARSE, "$batch response has no \"responses\" array");
        goto out;
    }
    if (json_array_size(responses) > GRAPH_BATCH_MAX) {
        rc = err_set(eb, ERR_PARSE, "$batch response holds %zu responses (at most %d expected)",
                     json_array_size(responses), GRAPH_BATCH_MAX);
        goto out;
    }
    for (size_t i = 0; i < json_array_size(responses); i++) {
        const json_t *r = json_array_get(responses, i);
        const json_t *id = json_object_get(r, "id");
        const json_t *status = json_object_get(r, "status");
        const json_t *headers = json_object_get(r, "headers");
        const json_t *b = json_object_get(r, "body");
        struct graph_batch_item *it = &out->items[out->n];

        if (!json_is_string(id) || !json_is_integer(status)) {
            rc = err_set(eb, ERR_PARSE, "$batch response item %zu lacks id or status", i);
            goto out;
        }
        it->id = xstrdup(json_string_value(id));
        it->status = (long)json_integer_value(status);
        it->retry_after = -1;
        it->memory = -1;
        it->apps_rc = ERR_PARSE;
        out->n++;
        if (json_is_object(headers)) {
            const char *k;
            const json_t *v;

            json_object_foreach((json_t *)headers, k, v)
            {
                if (strcasecmp(k, "Retry-After") == 0 && json_is_string(v))
                    it->retry_after = http_parse_retry_after(json_string_value(v));
            }
        }
        it->has_body = json_is_object(b);
        if (!it->has_body)
            continue;
        if (kind == GRAPH_BATCH_APPS) {
            it->apps_rc = ref_apps_from_json(b, &it->apps, &it->napps, &it->capapps, &it->next_link,
                                             &it->apps_eb);
        } else {
            const json_t *ent = b, *v;

            if (json_is_object(json_object_get(b, "value")))
                ent = json_object_get(b, "value");
            v = json_object_get(ent, "physicalMemoryInBytes");
            if (json_is_integer(v) && json_integer_value(v) > 0)
                it->memory = (int64_t)json_integer_value(v);
            v = json_object_get(ent, "ethernetMacAddress");
            if (json_is_string(v) && json_string_length(v) > 0)
                it->ethernet_mac = xstrdup(json_string_value(v));
        }
    }
out:
    json_decref(root);
    if (rc != ERR_OK)
        graph_batch_clear(out);
    return rc;
}

#endif
