/* test_openapi.c - /openapi.json against the router's table, so neither can drift from the
 * other: every API route is an operation (same path template and method) with a unique
 * operationId and a typed 2xx answer, public exactly when the route needs no caller; nothing in
 * the document is missing from the table; every $ref resolves; each list's filter and sort
 * fields are the store's. And for every path of the table (API and UI), every other method is a
 * 405 whose Allow lists exactly the path's methods. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "api.h"
#include "openapi.h"
#include "router.h"
#include "store.h"

static json_t *
load_doc(void)
{
    json_error_t jerr;
    json_t *doc = json_loads(openapi_document(API_PAGE_DEFAULT, API_PAGE_MAX), 0, &jerr);

    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "openapi")), "3.1.0");
    return doc;
}

static void
lower(const char *in, char *out, size_t max)
{
    size_t i = 0;

    for (; in[i] != '\0' && i + 1 < max; i++)
        out[i] = (char)(in[i] >= 'A' && in[i] <= 'Z' ? in[i] - 'A' + 'a' : in[i]);
    out[i] = '\0';
}

static struct router *
real_router(void)
{
    struct router *r = NULL;
    struct errbuf eb = {0};

    assert_int_equal(router_create(&r, NULL, &eb), ERR_OK);
    return r;
}

/* A 2xx answer with content whose every media type has a schema (or, like 304, none at all). */
static int
typed_2xx(json_t *responses)
{
    const char *code;
    json_t *r;
    int typed = 0;

    json_object_foreach(responses, code, r)
    {
        json_t *content = json_object_get(r, "content"), *media;
        const char *type;

        if (code[0] != '2' || content == NULL)
            continue;
        typed = json_object_size(content) > 0;
        json_object_foreach(content, type, media)
        {
            json_t *schema = json_object_get(media, "schema");

            if (!json_is_object(schema) || json_object_size(schema) == 0)
                return 0;
        }
    }
    return typed;
}

static void
test_routes_are_operations(void **state)
{
    struct router *r = real_router();
    json_t *doc = load_doc(), *paths = json_object_get(doc, "paths"), *ids = json_object();
    const struct route *t;
    size_t n, api = 0;

    (void)state;
    t = router_routes(r, &n);
    for (size_t i = 0; i < n; i++) {
        char method[16];
        json_t *op, *sec;
        const char *opid;

        if (t[i].kind != ROUTE_API)
            continue;
        api++;
        lower(t[i].method, method, sizeof method);
        op = json_object_get(json_object_get(paths, t[i].pattern), method);
        if (op == NULL)
            fail_msg("%s %s is not in /openapi.json", t[i].method, t[i].pattern);
        opid = json_string_value(json_object_get(op, "operationId"));
        if (opid == NULL || opid[0] == '\0')
            fail_msg("%s %s has no operationId", t[i].method, t[i].pattern);
        if (json_object_get(ids, opid) != NULL)
            fail_msg("operationId %s is used twice", opid);
        json_object_set_new(ids, opid, json_true());
        if (!typed_2xx(json_object_get(op, "responses")))
            fail_msg("%s %s has no typed 2xx answer", t[i].method, t[i].pattern);
        sec = json_object_get(op, "security");
        if ((t[i].role == AUTH_NONE) != (json_is_array(sec) && json_array_size(sec) == 0))
            fail_msg("%s %s: public in the table and the document alike", t[i].method,
                     t[i].pattern);
    }
    assert_true(api >= 20);
    json_decref(ids);
    json_decref(doc);
    router_free(r);
}

static void
test_operations_are_routes(void **state)
{
    struct router *r = real_router();
    json_t *doc = load_doc(), *item;
    const char *path;
    const struct route *t;
    size_t n;

    (void)state;
    t = router_routes(r, &n);
    json_object_foreach(json_object_get(doc, "paths"), path, item)
    {
        const char *method;
        json_t *op;

        json_object_foreach(item, method, op)
        {
            int found = 0;

            if (strcmp(method, "parameters") == 0 || strcmp(method, "summary") == 0)
                continue;
            for (size_t i = 0; i < n && !found; i++) {
                char m[16];

                lower(t[i].method, m, sizeof m);
                found = t[i].kind == ROUTE_API && strcmp(t[i].pattern, path) == 0 &&
                        strcmp(m, method) == 0;
            }
            if (!found)
                fail_msg("/openapi.json has %s %s, which no API route answers", method, path);
        }
    }
    json_decref(doc);
    router_free(r);
}

/* Every "$ref": "#/a/b/c" names a node of the document. */
static void
check_refs(json_t *doc, json_t *node)
{
    if (json_is_object(node)) {
        const char *k;
        json_t *v;

        json_object_foreach(node, k, v)
        {
            if (strcmp(k, "$ref") == 0) {
                const char *ref = json_string_value(v);
                char part[128];
                json_t *at = doc;

                assert_non_null(ref);
                assert_true(strncmp(ref, "#/", 2) == 0);
                for (const char *p = ref + 2; *p != '\0' && at != NULL;) {
                    const char *e = strchr(p, '/');
                    size_t len = e != NULL ? (size_t)(e - p) : strlen(p);

                    assert_true(len < sizeof part);
                    memcpy(part, p, len);
                    part[len] = '\0';
                    at = json_object_get(at, part);
                    p += len + (e != NULL);
                }
                if (at == NULL)
                    fail_msg("%s does not resolve", ref);
            } else {
                check_refs(doc, v);
            }
        }
    } else if (json_is_array(node)) {
        size_t i;
        json_t *v;

        json_array_foreach(node, i, v) check_refs(doc, v);
    }
}

static void
test_refs_resolve(void **state)
{
    json_t *doc = load_doc();

    (void)state;
    check_refs(doc, doc);
    json_decref(doc);
}

/* Each list names its store entity; its filter properties and sort values are its fields. */
static void
test_list_fields(void **state)
{
    json_t *doc = load_doc(), *item;
    const char *path;
    int lists = 0;

    (void)state;
    json_object_foreach(json_object_get(doc, "paths"), path, item)
    {
        json_t *op = json_object_get(item, "get"), *params, *p, *filter = NULL, *sort = NULL;
        const struct store_list_entity *e;
        char entity[64];
        const char *spec;
        size_t i, nfields = 0;

        if (op == NULL || (spec = json_string_value(json_object_get(op, "x-memsync-list"))) == NULL)
            continue;
        lists++;
        snprintf(entity, sizeof entity, "%.*s", (int)strcspn(spec, ":"), spec);
        e = store_list_entity(entity);
        assert_non_null(e);
        params = json_object_get(op, "parameters");
        json_array_foreach(params, i, p)
        {
            const char *name = json_string_value(json_object_get(p, "name"));

            if (name == NULL) /* a $ref, such as the id */
                continue;
            if (strcmp(name, "filter") == 0)
                filter = json_object_get(json_object_get(p, "schema"), "properties");
            else if (strcmp(name, "sort") == 0)
                sort =
                    json_object_get(json_object_get(json_object_get(p, "schema"), "items"), "enum");
        }
        assert_non_null(filter);
        assert_true(strchr(spec, ':') != NULL || sort != NULL);
        for (const struct store_list_field *f = e->fields; f->name != NULL; f++) {
            nfields++;
            if (json_object_get(filter, f->name) == NULL)
                fail_msg("%s: filter field %s is not documented", path, f->name);
        }
        assert_int_equal(json_object_size(filter), nfields);
        if (sort != NULL)
            assert_int_equal(json_array_size(sort), 2 * nfields);
    }
    assert_true(lists >= 8);
    json_decref(doc);
}

static int
any_caller(void *ctx, const char *key, const char *session, struct auth_principal *p,
           struct errbuf *eb)
{
    (void)ctx;
    (void)key;
    (void)session;
    (void)eb;
    memset(p, 0, sizeof *p);
    p->account_id = 1;
    p->user_id = 1;
    p->role = AUTH_ADMIN;
    return ERR_OK;
}

/* Every path of the table, every method it lacks: 405 with exactly its methods in Allow. */
static void
test_every_path_405(void **state)
{
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE"};
    struct router *r = real_router();
    const struct route *t;
    size_t n, checked = 0;

    (void)state;
    t = router_routes(r, &n);
    for (size_t i = 0; i < n; i++) {
        char path[160], want[64] = "";
        size_t o = 0;

        for (const char *p = t[i].pattern; *p != '\0' && o + 2 < sizeof path; p++) {
            if (*p == '{') {
                path[o++] = '1';
                while (*p != '}' && *p != '\0')
                    p++;
            } else {
                path[o++] = *p;
            }
        }
        path[o] = '\0';
        for (size_t k = 0; k < n; k++)
            if (strcmp(t[k].pattern, t[i].pattern) == 0 && strstr(want, t[k].method) == NULL)
                snprintf(want + strlen(want), sizeof want - strlen(want), "%s%s",
                         want[0] ? ", " : "", t[k].method);
        for (size_t m = 0; m < sizeof methods / sizeof methods[0]; m++) {
            struct router_req rq = {0};
            struct router_decision d;

            if (strstr(want, methods[m]) != NULL)
                continue; /* the path takes it */
            rq.method = methods[m];
            rq.path = path;
            rq.session = "s";
            rq.host = "h";
            router_decide(r, &rq, any_caller, NULL, &d);
            if (!d.denied || d.denial.why != ROUTE_BAD_METHOD)
                fail_msg("%s %s is not a 405", methods[m], path);
            assert_string_equal(d.denial.allow, want);
            checked++;
        }
    }
    assert_true(checked > 100);
    router_free(r);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_routes_are_operations), cmocka_unit_test(test_operations_are_routes),
        cmocka_unit_test(test_refs_resolve),          cmocka_unit_test(test_list_fields),
        cmocka_unit_test(test_every_path_405),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
