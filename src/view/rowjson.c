/* rowjson.c - a store row as a JSON object (rowjson.h). */
#include "rowjson.h"

#include <stdio.h>
#include <string.h>

#include "clock.h"

static json_t *
cell_value(const struct store_cell *c)
{
    char ts[32];

    switch (c->kind) {
    case SC_INT:
        return json_integer(c->i);
    case SC_TEXT: {
        json_t *v = json_string(c->s != NULL ? c->s : "");
        return v != NULL ? v : json_string("?");
    }
    case SC_TS:
        clock_fmt(c->i, ts, sizeof ts);
        return json_string(ts);
    case SC_BOOL:
        return json_boolean(c->i != 0);
    default:
        return json_null();
    }
}

json_t *
rowjson_cells(const struct store_cell *cells, size_t n)
{
    json_t *row = json_object();

    for (size_t i = 0; i < n; i++) {
        const char *name = cells[i].name;
        const char *dot = strchr(name, '.');
        json_t *v = cell_value(&cells[i]);

        if (dot == NULL) {
            json_object_set_new(row, name, v);
        } else {
            char parent[64];
            json_t *obj;

            snprintf(parent, sizeof parent, "%.*s", (int)(dot - name), name);
            obj = json_object_get(row, parent);
            if (obj == NULL) {
                obj = json_object();
                json_object_set_new(row, parent, obj);
            }
            json_object_set_new(obj, dot + 1, v);
        }
    }
    /* A client without a warning has "warning": null, not an object of nulls. */
    {
        const json_t *w = json_object_get(row, "warning");

        if (json_is_object(w) && json_is_null(json_object_get(w, "code")))
            json_object_set_new(row, "warning", json_null());
    }
    /* Likewise a healthy client, tenant result or run: "error": null (API and CLI alike). */
    {
        const json_t *e = json_object_get(row, "error"), *v;
        const char *k;
        int all_null = json_is_object(e);

        json_object_foreach((json_t *)e, k, v)
        {
            if (!json_is_null(v))
                all_null = 0;
        }
        if (all_null)
            json_object_set_new(row, "error", json_null());
    }
    return row;
}
