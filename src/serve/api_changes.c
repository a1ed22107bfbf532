/* api_changes.c - the change feed's route (api_changes.h). */
#include "api_changes.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "changes.h"
#include "mem.h"
#include "store.h"

struct page {
    json_t *data;
    int64_t last;
    size_t n, limit;
};

static int
row_cb(void *arg, const struct change_row *c)
{
    struct page *pg = arg;
    json_t *j;

    if (pg->n >= pg->limit) { /* the one read past the page: there is more */
        pg->n++;
        return 1;
    }
    j = changes_row_json(c);
    if (j == NULL || json_array_append_new(pg->data, j) != 0)
        return ERR_NOMEM;
    pg->last = c->seq;
    pg->n++;
    return 0;
}

static int
parse_int(const char *text, int64_t lo, int64_t hi, int64_t *out)
{
    char *end = NULL;
    long long v;

    if (text == NULL || *text < '0' || *text > '9' || strlen(text) > 19)
        return 0;
    errno = 0;
    v = strtoll(text, &end, 10);
    if (errno != 0 || *end != '\0' || v < lo || v > hi)
        return 0;
    *out = (int64_t)v;
    return 1;
}

static void
changes_get(const struct route_call *c)
{
    struct change_query q = {0};
    struct page pg = {0};
    struct errbuf eb = {0};
    const char *cursor = httpd_arg(c->req, "cursor"), *kind = httpd_arg(c->req, "kind");
    const char *limit = httpd_arg(c->req, "limit"), *client = httpd_arg(c->req, "client");
    char next[CHANGES_CURSOR_MAX];
    char *kinds = NULL;
    int64_t head = 0, v = API_CHANGES_LIMIT_DEFAULT;
    int now = 0, rc;

    if (c->req->st == NULL) { /* the error envelope, as every API error */
        rc = err_set(&eb, ERR_DB, "the database is not available");
        goto fail;
    }
    q.account_id = c->p->account_id;
    if (cursor != NULL && strcmp(cursor, "now") == 0)
        now = 1;
    else if (cursor != NULL && (rc = changes_cursor_parse(cursor, &q.after_seq, &eb)) != ERR_OK)
        goto fail;
    if (limit != NULL && !parse_int(limit, 1, API_CHANGES_LIMIT_MAX, &v)) {
        rc = err_set(&eb, ERR_INVAL, "limit must be a number from 1 to %d", API_CHANGES_LIMIT_MAX);
        goto fail;
    }
    q.limit = (size_t)v + 1; /* one more: whether another page follows */
    if (client != NULL && !parse_int(client, 1, INT64_MAX, &q.client_id)) {
        rc = err_set(&eb, ERR_INVAL, "client must be a client id");
        goto fail;
    }
    if (kind != NULL) {
        kinds = xstrdup(kind);
        if ((rc = changes_kinds_parse(kinds, &q, &eb)) != ERR_OK)
            goto fail;
    }
    pg.data = json_array();
    pg.limit = (size_t)v;
    if (now)
        q.limit = 1, q.after_seq = INT64_MAX - 1;
    rc = store_changes_each(c->req->st, &q, row_cb, &pg, &head, &eb);
    if (rc < 0)
        goto fail;
    if (now)
        pg.last = head, pg.n = 0, json_array_clear(pg.data);
    else if (pg.last == 0)
        pg.last = q.after_seq;
    changes_cursor(pg.last, next);
    api_reply_json(c->resp, 200,
                   json_pack("{s:o, s:s, s:b}", "data", pg.data, "next_cursor", next, "has_more",
                             pg.n > pg.limit));
    free(kinds);
    return;
fail:
    json_decref(pg.data);
    free(kinds);
    api_reply_err(c->resp, rc, &eb);
}

static const struct route routes[] = {
    {"GET", "/api/v1/changes", changes_get, AUTH_READ, 0, ROUTE_API, NULL},
};

const struct route *
api_changes_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}
