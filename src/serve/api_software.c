/* api_software.c - products across clients: snapshots per data version, API routes. */
#include "api_software.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "api_reply.h"
#include "cursor.h"
#include "httpd.h"
#include "log.h"
#include "mem.h"
#include "rowjson.h"

#define PAGE_DEFAULT 50
#define PAGE_MAX     200

static pthread_mutex_t snap_mu = PTHREAD_MUTEX_INITIALIZER;
static struct software_snap *slots[SOFTWARE_SNAP_SLOTS];
static uint64_t slot_used[SOFTWARE_SNAP_SLOTS]; /* when each was stored; the oldest goes */
static uint64_t slot_tick;

static void
snap_unref_locked(struct software_snap *s)
{
    if (s != NULL && --s->refs == 0) {
        product_index_free(s->ix);
        free(s);
    }
}

void
api_software_release(struct software_snap *s)
{
    if (s == NULL)
        return;
    pthread_mutex_lock(&snap_mu);
    snap_unref_locked(s);
    pthread_mutex_unlock(&snap_mu);
}

void
api_software_forget(void)
{
    pthread_mutex_lock(&snap_mu);
    for (size_t i = 0; i < SOFTWARE_SNAP_SLOTS; i++) {
        snap_unref_locked(slots[i]);
        slots[i] = NULL;
    }
    pthread_mutex_unlock(&snap_mu);
}

struct build {
    struct product_index *ix;
    struct errbuf *eb;
    int rc;
};

static const struct store_cell *
cell(const struct store_cell *cells, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(cells[i].name, name) == 0)
            return &cells[i];
    return NULL;
}

static const char *
cell_s(const struct store_cell *c)
{
    return c != NULL && c->kind == SC_TEXT ? c->s : NULL;
}

static int64_t
cell_i(const struct store_cell *c)
{
    return c != NULL && c->kind != SC_NULL && c->kind != SC_TEXT ? c->i : 0;
}

static int
build_cb(void *arg, const struct store_cell *cells, size_t n)
{
    struct build *b = arg;

    b->rc = product_index_add(
        b->ix, cell_i(cell(cells, n, "id")), cell_i(cell(cells, n, "client.id")),
        cell_s(cell(cells, n, "name")), cell_s(cell(cells, n, "publisher")),
        cell_s(cell(cells, n, "version")), cell_i(cell(cells, n, "device_count")), b->eb);
    return b->rc != ERR_OK ? b->rc : 0;
}

/* The titles product_index_dedupe asks about and their current devices, read in one pass of
 * the product_installs list: a query per title costs seconds on a large account. First pass (pairs
 * NULL): records the titles asked for, answers no devices; second pass: answers from pairs. */
struct title_devs {
    int64_t *want; /* sorted title ids */
    size_t nwant, capwant;
    int64_t (*pairs)[2]; /* (title id, device id), sorted */
    size_t npairs, cappairs;
};

#define TITLE_DEVICES_MAX 50000000

static int
i64_cmp(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

    return a < b ? -1 : a > b;
}

static int
pair_cmp(const void *x, const void *y)
{
    const int64_t *a = x, *b = y;

    if (a[0] != b[0])
        return a[0] < b[0] ? -1 : 1;
    return a[1] < b[1] ? -1 : a[1] > b[1];
}

static int
install_cb(void *arg, const struct store_cell *cells, size_t n)
{
    struct title_devs *t = arg;
    int64_t title = cell_i(cell(cells, n, "title_id"));

    if (bsearch(&title, t->want, t->nwant, sizeof *t->want, i64_cmp) == NULL)
        return 0;
    if (t->npairs >= TITLE_DEVICES_MAX)
        return ERR_TOOBIG;
    t->pairs = mem_grow(t->pairs, &t->cappairs, t->npairs + 1, sizeof *t->pairs);
    t->pairs[t->npairs][0] = title;
    t->pairs[t->npairs][1] = cell_i(cell(cells, n, "asset_id"));
    t->npairs++;
    return 0;
}

static int
title_devices(void *arg, int64_t title_id, int64_t **ids, size_t *n, struct errbuf *eb)
{
    struct title_devs *t = arg;
    size_t lo = 0, hi = t->npairs, k;

    (void)eb;
    *ids = NULL;
    *n = 0;
    if (t->pairs == NULL) {
        t->want = mem_grow(t->want, &t->capwant, t->nwant + 1, sizeof *t->want);
        t->want[t->nwant++] = title_id;
        return ERR_OK;
    }
    while (lo < hi) { /* the first pair of title_id */
        size_t mid = lo + (hi - lo) / 2;

        if (t->pairs[mid][0] < title_id)
            lo = mid + 1;
        else
            hi = mid;
    }
    for (k = lo; k < t->npairs && t->pairs[k][0] == title_id; k++)
        ;
    if (k > lo) {
        *ids = xcalloc(k - lo, sizeof **ids);
        for (size_t i = lo; i < k; i++)
            (*ids)[i - lo] = t->pairs[i][1];
        *n = k - lo;
    }
    return ERR_OK;
}

/* Counts each device once per product and version (product_index_dedupe). */
static int
snap_dedupe(struct store *st, int64_t account, struct product_index *ix, struct errbuf *eb)
{
    struct title_devs td = {0};
    struct list_query q;
    int rc = product_index_dedupe(ix, title_devices, &td, eb); /* which titles */

    if (rc == ERR_OK && td.nwant > 0) {
        qsort(td.want, td.nwant, sizeof *td.want, i64_cmp);
        memset(&q, 0, sizeof q);
        q.entity = "product_installs";
        q.account_id = account;
        rc = store_list_each(st, &q, install_cb, &td, eb);
        if (rc == ERR_TOOBIG && eb != NULL && eb->msg[0] == '\0')
            err_set(eb, rc, "more than %d installs to count", TITLE_DEVICES_MAX);
        if (rc == ERR_OK) {
            if (td.pairs == NULL)
                td.pairs = xcalloc(1, sizeof *td.pairs); /* answer from no pairs */
            qsort(td.pairs, td.npairs, sizeof *td.pairs, pair_cmp);
            rc = product_index_dedupe(ix, title_devices, &td, eb);
        }
    }
    free(td.want);
    free(td.pairs);
    return rc;
}

int
api_software_snap(struct store *st, int64_t account, struct software_snap **out, struct errbuf *eb)
{
    struct software_snap *s = NULL;
    struct list_query q;
    struct build b;
    int64_t version;
    size_t victim = 0;
    int rc;

    *out = NULL;
    if ((rc = store_data_version(st, &version, eb)) != ERR_OK)
        return rc;
    pthread_mutex_lock(&snap_mu);
    for (size_t i = 0; i < SOFTWARE_SNAP_SLOTS; i++)
        if (slots[i] != NULL && slots[i]->account == account && slots[i]->version == version) {
            s = slots[i];
            s->refs++;
            break;
        }
    pthread_mutex_unlock(&snap_mu);
    if (s != NULL) {
        *out = s;
        return ERR_OK;
    }
    memset(&q, 0, sizeof q);
    q.entity = "product_titles";
    q.account_id = account;
    b.ix = product_index_new();
    b.eb = eb;
    b.rc = ERR_OK;
    rc = store_list_each(st, &q, build_cb, &b, eb);
    if (rc == ERR_OK && b.rc != ERR_OK)
        rc = b.rc;
    if (rc != ERR_OK) {
        product_index_free(b.ix);
        return rc;
    }
    product_index_finish(b.ix);
    if ((rc = snap_dedupe(st, account, b.ix, eb)) != ERR_OK) {
        product_index_free(b.ix);
        return rc;
    }
    s = xcalloc(1, sizeof *s);
    s->ix = b.ix;
    s->account = account;
    s->version = version;
    s->refs = 2; /* the slot's and the caller's */
    pthread_mutex_lock(&snap_mu);
    for (size_t i = 0; i < SOFTWARE_SNAP_SLOTS; i++) {
        if (slots[i] == NULL || slots[i]->account == account) {
            victim = i;
            break;
        }
        if (slot_used[i] < slot_used[victim])
            victim = i;
    }
    snap_unref_locked(slots[victim]);
    slots[victim] = s;
    slot_used[victim] = ++slot_tick;
    pthread_mutex_unlock(&snap_mu);
    *out = s;
    return ERR_OK;
}

json_t *
api_software_product_json(const struct software_snap *s, const struct product *p, int with_versions)
{
    json_t *o =
        json_pack("{s:I, s:s, s:s?, s:I, s:I, s:I, s:I}", "id", (json_int_t)p->id, "name", p->name,
                  "publisher", p->publisher[0] != '\0' ? p->publisher : NULL, "version_count",
                  (json_int_t)p->nversions, "client_count", (json_int_t)p->clients, "device_count",
                  (json_int_t)p->devices, "title_count", (json_int_t)p->titles);

    if (o != NULL && with_versions) {
        json_t *vs = json_array();

        for (size_t i = 0; i < p->nversions; i++) {
            const struct product_version *v = &s->ix->versions[p->first_version + i];

            json_array_append_new(vs, json_pack("{s:s?, s:I, s:I}", "version",
                                                v->version[0] != '\0' ? v->version : NULL,
                                                "client_count", (json_int_t)v->clients,
                                                "device_count", (json_int_t)v->devices));
        }
        json_object_set_new(o, "versions", vs);
    }
    return o;
}

struct devpage {
    json_t *arr;
    int64_t title_id;
    const char *version;
};

static int
device_cb(void *arg, const struct store_cell *cells, size_t n)
{
    struct devpage *d = arg;
    json_t *row = rowjson_cells(cells, n);

    json_object_del(row, "last_seen_at");
    json_object_set_new(row, "software",
                        json_pack("{s:I, s:s?}", "id", (json_int_t)d->title_id, "version",
                                  d->version[0] != '\0' ? d->version : NULL));
    json_array_append_new(d->arr, row);
    return 0;
}

int
api_software_devices(struct store *st, const struct software_snap *s, const struct product *p,
                     const char *version, int64_t client, int64_t offset, int limit, json_t *arr,
                     int64_t *total, struct errbuf *eb)
{
    int64_t skip = offset, sum = 0;
    size_t want = limit > 0 ? (size_t)limit : 0;

    *total = 0;
    for (size_t vi = 0; vi < p->nversions; vi++) {
        const struct product_version *v = &s->ix->versions[p->first_version + vi];

        if (version != NULL && strcmp(version, v->version) != 0)
            continue;
        for (size_t ti = 0; ti < v->ntitles; ti++) {
            const struct product_title *t = &s->ix->titles[v->first_title + ti];
            struct devpage d = {arr, t->title_id, v->version};
            struct list_query q;
            int rc;

            if (client != 0 && t->client_id != client)
                continue;
            sum += t->devices;
            if (skip >= t->devices) {
                skip -= t->devices;
                continue;
            }
            if (json_array_size(arr) >= want)
                continue; /* counting the rest only */
            memset(&q, 0, sizeof q);
            q.entity = "software_devices";
            q.account_id = s->account;
            q.parent_id = t->title_id;
            q.offset = skip;
            q.limit = (int)(want - json_array_size(arr));
            skip = 0;
            if ((rc = store_list_each(st, &q, device_cb, &d, eb)) != ERR_OK)
                return rc;
        }
    }
    *total = sum;
    return ERR_OK;
}

/* ---- routes ------------------------------------------------------------------------------- */

static int
parse_pos(const char *s, int64_t max, int64_t *out)
{
    char *end;
    long long v;

    if (s == NULL || s[0] < '0' || s[0] > '9')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0' || v < 0 || v > max)
        return -1;
    *out = v;
    return 0;
}

/* page_size and cursor (positional); 0, or -1 after answering 400. */
static int
page_args(struct httpd_request *req, struct httpd_response *resp, int *page_size, int64_t *offset)
{
    const char *ps = httpd_arg(req, "page_size"), *cur = httpd_arg(req, "cursor");
    int64_t n;

    *page_size = PAGE_DEFAULT;
    *offset = 0;
    if (ps != NULL) {
        if (parse_pos(ps, PAGE_MAX, &n) != 0 || n < 1) {
            api_reply_error(resp, 400, "invalid_request", "Invalid request",
                            "page_size must be a number from 1 to 200");
            return -1;
        }
        *page_size = (int)n;
    }
    if (cur != NULL && cur[0] != '\0') {
        struct cursor c;
        int bad = cursor_decode(cur, &c) != 0;

        if (!bad && c.kind != 'o') {
            cursor_free(&c);
            bad = 1;
        }
        if (bad) {
            api_reply_error(resp, 400, "invalid_request", "Invalid request",
                            "cursor is not one this API returned");
            return -1;
        }
        *offset = c.n;
    }
    return 0;
}

static void
reply_list(struct httpd_response *resp, json_t *arr, int64_t total, int64_t next)
{
    json_t *nc = json_null();

    if (next < total) {
        struct cursor c = {0};
        char text[CURSOR_TEXT_MAX + 1];

        c.kind = 'o';
        c.n = next;
        if (cursor_encode(&c, text, sizeof text) == 0) {
            json_decref(nc);
            nc = json_string(text);
        }
    }
    api_reply_json(resp, 200,
                   json_pack("{s:o, s:I, s:o}", "data", arr, "total_count", (json_int_t)total,
                             "next_cursor", nc));
}

static int
by_name(const void *x, const void *y)
{
    const struct product *a = *(const struct product *const *)x,
                         *b = *(const struct product *const *)y;
    int c = strcmp(a->name_key, b->name_key);

    return c != 0 ? c : strcmp(a->publisher_key, b->publisher_key);
}

static int
by_clients(const void *x, const void *y)
{
    const struct product *a = *(const struct product *const *)x,
                         *b = *(const struct product *const *)y;

    if (a->clients != b->clients)
        return a->clients > b->clients ? -1 : 1;
    return by_name(x, y);
}

void
api_software_products_get(const struct route_call *c)
{
    const char *search = httpd_arg(c->req, "search"), *sort = httpd_arg(c->req, "sort");
    struct software_snap *s = NULL;
    const struct product **hits = NULL;
    struct errbuf eb = {0};
    size_t nh = 0;
    int64_t offset;
    int page_size, rc;
    json_t *arr;

    if (page_args(c->req, c->resp, &page_size, &offset) != 0)
        return;
    if (search != NULL && strlen(search) > 200) {
        api_reply_error(c->resp, 400, "invalid_request", "Invalid request",
                        "search text is longer than 200 characters");
        return;
    }
    if (sort != NULL && strcmp(sort, "-device_count") != 0 && strcmp(sort, "name") != 0 &&
        strcmp(sort, "-client_count") != 0) {
        api_reply_error(c->resp, 400, "invalid_request", "Invalid request",
                        "sort takes -device_count (the default), -client_count or name");
        return;
    }
    if ((rc = api_software_snap(c->req->st, c->p->account_id, &s, &eb)) != ERR_OK) {
        api_reply_err(c->resp, rc, &eb);
        return;
    }
    hits = s->ix->nproducts > 0 ? xcalloc(s->ix->nproducts, sizeof *hits) : NULL;
    for (size_t i = 0; i < s->ix->nproducts; i++)
        if (product_matches(&s->ix->products[i], search))
            hits[nh++] = &s->ix->products[i];
    if (sort != NULL && strcmp(sort, "name") == 0 && nh > 1)
        qsort(hits, nh, sizeof *hits, by_name);
    else if (sort != NULL && strcmp(sort, "-client_count") == 0 && nh > 1)
        qsort(hits, nh, sizeof *hits, by_clients);
    arr = json_array();
    for (int64_t i = offset; i < (int64_t)nh && i < offset + page_size; i++)
        json_array_append_new(arr, api_software_product_json(s, hits[i], 0));
    reply_list(c->resp, arr, (int64_t)nh, offset + page_size);
    free(hits);
    api_software_release(s);
}

static const struct product *
product_or_404(const struct route_call *c, struct software_snap **s)
{
    struct errbuf eb = {0};
    const struct product *p;
    int rc;

    if ((rc = api_software_snap(c->req->st, c->p->account_id, s, &eb)) != ERR_OK) {
        api_reply_err(c->resp, rc, &eb);
        return NULL;
    }
    if ((p = product_index_find((*s)->ix, c->id[0])) == NULL) {
        api_reply_error(c->resp, 404, "not_found", "Not found",
                        "no installed software has this product id");
        api_software_release(*s);
        *s = NULL;
    }
    return p;
}

void
api_software_product_get(const struct route_call *c)
{
    struct software_snap *s = NULL;
    const struct product *p = product_or_404(c, &s);

    if (p == NULL)
        return;
    api_reply_json(c->resp, 200, json_pack("{s:o}", "data", api_software_product_json(s, p, 1)));
    api_software_release(s);
}

void
api_software_product_devices_get(const struct route_call *c)
{
    const char *version = httpd_arg(c->req, "version"), *cl = httpd_arg(c->req, "client_id");
    struct software_snap *s = NULL;
    const struct product *p;
    struct errbuf eb = {0};
    int64_t offset, total, client = 0;
    int page_size, rc;
    json_t *arr;

    if (page_args(c->req, c->resp, &page_size, &offset) != 0)
        return;
    if (cl != NULL && (parse_pos(cl, INT64_MAX, &client) != 0 || client < 1)) {
        api_reply_error(c->resp, 400, "invalid_request", "Invalid request",
                        "client_id must be a client's id");
        return;
    }
    if ((p = product_or_404(c, &s)) == NULL)
        return;
    arr = json_array();
    rc = api_software_devices(c->req->st, s, p, version, client, offset, page_size, arr, &total,
                              &eb);
    if (rc != ERR_OK) {
        json_decref(arr);
        api_reply_err(c->resp, rc, &eb);
    } else {
        reply_list(c->resp, arr, total, offset + page_size);
    }
    api_software_release(s);
}
