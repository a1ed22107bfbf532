/* api.c - REST routes, list parameters, JSON views, errors, CSV streaming, metrics. */
#include "api.h"
#include "api_client.h"
#include "api_software.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "asset.h"
#include "clock.h"
#include "cloud.h"
#include "cursor.h"
#include "expiry.h"
#include "guid.h"
#include "hwfilter.h"
#include "importfmt.h"
#include "insight.h"
#include "integration.h"
#include "jsonarena.h"
#include "log.h"
#include "metrics.h"
#include "mem.h"
#include "output.h"
#include "openapi.h"
#include "flight.h"
#include "pagecache.h"
#include "rowjson.h"
#include "rowcache.h"
#include "scheduler.h"
#include "ui.h"
#include "ui_runs.h"

#define CSV_BATCH 500

/* ---- JSON views -------------------------------------------------------------------------- */

/* A key as the API shows it: hint, expiry, days left and the warning level of expiry.h (the
 * same words as `memsync status` and the UI). */
static json_t *
secret_json(const char *hint, int64_t expires, const char *label, int64_t integration_id,
            const char *which)
{
    struct expiry e;
    char ts[32], msg[512];

    expiry_check(expires, clock_now(), &e);
    expiry_message(&e, label, integration_id, which, msg, sizeof msg);
    clock_fmt(expires, ts, sizeof ts);
    return json_pack(
        "{s:s?, s:s?, s:o, s:s, s:s?}", "hint", hint, "expires_at", expires == TS_NULL ? NULL : ts,
        "days_to_expiry", expires == TS_NULL ? json_null() : json_integer((json_int_t)e.days_left),
        "expiry_level", expiry_level_name(e.level), "expiry_warning", msg[0] ? msg : NULL);
}

static int
first_row_cb(void *arg, const struct store_cell *cells, size_t n)
{
    json_t **out = arg;

    if (*out == NULL)
        *out = rowjson_cells(cells, n);
    return 0;
}

json_t *
api_integration_json(struct api_app *app, const struct integration *in)
{
    char created[32], updated[32];
    json_t *j;

    clock_fmt(in->created_at, created, sizeof created);
    clock_fmt(in->updated_at, updated, sizeof updated);
    j = json_pack(
        "{s:I, s:s?, s:s?, s:s?, s:s?, s:o, s:o, s:s?, s:I, s:s, s:s, s:s}", "id",
        (json_int_t)in->id, "name", in->name, "partner_tenant_id", in->partner_tenant_id,
        "partner_app_id", in->partner_app_id, "sync_app_id", in->sync_app_id, "partner_app_secret",
        secret_json(in->partner_secret_hint, in->partner_secret_expires, "Partner App", in->id,
                    "partner"),
        "sync_app_secret",
        secret_json(in->sync_secret_hint, in->sync_secret_expires, "Sync App", in->id, "sync"),
        "tenant_source", in->tenant_source, "sync_interval_seconds", (json_int_t)in->sync_interval,
        "created_at", created, "updated_at", updated, "cloud",
        in->cloud != NULL ? in->cloud : "global");
    if (j != NULL) {
        json_object_set_new(json_object_get(j, "partner_app_secret"), "expiry_source",
                            json_string(in->partner_secret_expiry_source != NULL
                                            ? in->partner_secret_expiry_source
                                            : "entered"));
        json_object_set_new(json_object_get(j, "sync_app_secret"), "expiry_source",
                            json_string(in->sync_secret_expiry_source != NULL
                                            ? in->sync_secret_expiry_source
                                            : "entered"));
    }
    (void)app;
    return j != NULL ? j : json_object();
}

/* Adds "sync": {"state", "last_run"} using the caller's store; ERR_* when the last run could
 * not be read. */
static int
integration_sync_json(struct api_app *app, struct store *st, json_t *j, int64_t account, int64_t id,
                      struct errbuf *eb)
{
    struct list_query q = {0};
    struct store_filter f = {"integration_id", "eq", NULL};
    char idtxt[32];
    json_t *last = NULL;
    int rc;

    snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
    f.value = idtxt;
    q.entity = "sync_runs";
    q.account_id = account;
    q.filters = &f;
    q.nfilters = 1;
    q.limit = 1;
    if ((rc = store_list_each(st, &q, first_row_cb, &last, eb)) != ERR_OK) {
        json_decref(last);
        return rc;
    }
    json_object_set_new(j, "sync",
                        json_pack("{s:s, s:o}", "state", scheduler_state(app->sched, id),
                                  "last_run", last != NULL ? last : json_null()));
    return ERR_OK;
}

/* ---- list parameters --------------------------------------------------------------------- */

struct list_params {
    int page_size;
    int64_t offset;
    int64_t after_id;
    int keyset;            /* cursor was a keyset cursor on id */
    struct cursor seek;    /* a keyset cursor on the sort ('s'), else kind 0 */
    int64_t pos;           /* rows before this page (for the positional fallback) */
    const char *cursor_in; /* the cursor argument, decoded once every argument is read */
    struct store_filter filters[STORE_LIST_MAX_FILTERS];
    size_t nfilters;
    struct store_sort sorts[STORE_LIST_MAX_SORTS];
    size_t nsorts;
    char *search;
    char *owned[STORE_LIST_MAX_FILTERS * 3 + STORE_LIST_MAX_SORTS + 2];
    int nowned;
    const char *entity;
    struct errbuf eb;
    int bad;
    int nparams;   /* query parameters read, bounded by API_MAX_QUERY_PARAMS */
    unsigned seen; /* single-valued parameters already read (param_once) */
};

/* Keeps s until list_params_clear. The table is sized for every string the limits on filters
 * and sorts allow; should it ever be full, s is kept on the list's error path instead of lost. */
static char *
own(struct list_params *lp, char *s)
{
    if (lp->nowned < (int)(sizeof lp->owned / sizeof lp->owned[0])) {
        lp->owned[lp->nowned++] = s;
        return s;
    }
    free(s);
    if (!lp->bad)
        lp->bad = err_set(&lp->eb, ERR_INVAL, "too many query parameters");
    return NULL;
}

static void
list_params_clear(struct list_params *lp)
{
    for (int i = 0; i < lp->nowned; i++)
        free(lp->owned[i]);
    lp->nowned = 0;
    cursor_free(&lp->seek);
}

static int
parse_i64(const char *s, int64_t *out)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0')
        return -1;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || *end != '\0')
        return -1;
    *out = v;
    return 0;
}

/* Strips one pair of surrounding double quotes. */
static char *
unquote(const char *s)
{
    size_t n = strlen(s);

    if (n >= 2 && s[0] == '"' && s[n - 1] == '"')
        return xstrndup(s + 1, n - 2);
    return xstrdup(s);
}

/* A single-valued parameter given twice is refused (seen: one bit per parameter). */
static int
param_once(struct list_params *lp, unsigned bit, const char *key)
{
    if (lp->seen & bit) {
        lp->bad = err_set(&lp->eb, ERR_INVAL, "'%s' is given more than once", key);
        return 1;
    }
    lp->seen |= bit;
    return 0;
}

static int
param_cb(void *arg, const char *key, const char *value)
{
    struct list_params *lp = arg;

    if (++lp->nparams > API_MAX_QUERY_PARAMS) {
        lp->bad = err_set(&lp->eb, ERR_INVAL, "at most %d query parameters", API_MAX_QUERY_PARAMS);
        return 1;
    }
    if ((strcmp(key, "page_size") == 0 && param_once(lp, 1u, key)) ||
        (strcmp(key, "cursor") == 0 && param_once(lp, 2u, key)) ||
        (strcmp(key, "search") == 0 && param_once(lp, 4u, key)) ||
        (strcmp(key, "sort") == 0 && param_once(lp, 8u, key)))
        return 1;
    if (strcmp(key, "page_size") == 0) {
        int64_t n;
        if (parse_i64(value, &n) != 0 || n < 1 || n > API_PAGE_MAX) {
            lp->bad = err_set(&lp->eb, ERR_INVAL, "page_size must be a number from 1 to %d",
                              API_PAGE_MAX);
            return 1;
        }
        lp->page_size = (int)n;
    } else if (strcmp(key, "cursor") == 0) {
        lp->cursor_in = value[0] != '\0' ? own(lp, xstrdup(value)) : NULL;
    } else if (strcmp(key, "search") == 0) {
        if (strlen(value) > 200) {
            lp->bad = err_set(&lp->eb, ERR_INVAL, "search text is longer than 200 characters");
            return 1;
        }
        lp->search = value[0] != '\0' ? own(lp, xstrdup(value)) : NULL;
    } else if (strncmp(key, "filter[", 7) == 0) {
        size_t kl = strlen(key);
        static const char *const ops[] = {"eq", "in", "lt", "lte", "gt", "gte", "like"};
        const char *colon = strchr(value, ':');
        struct store_filter *f;
        char *field;

        if (kl < 9 || key[kl - 1] != ']') {
            lp->bad = err_set(&lp->eb, ERR_INVAL, "filter must be written filter[field]=op:value");
            return 1;
        }
        if (lp->nfilters >= STORE_LIST_MAX_FILTERS) {
            lp->bad = err_set(&lp->eb, ERR_INVAL, "at most %d filters", STORE_LIST_MAX_FILTERS);
            return 1;
        }
        field = own(lp, xstrndup(key + 7, kl - 8));
        if (field == NULL)
            return 1;
        if (!store_list_has_field(lp->entity, field)) {
            lp->bad = err_set(&lp->eb, ERR_INVAL, "unknown filter field '%s'", field);
            return 1;
        }
        f = &lp->filters[lp->nfilters++];
        f->field = field;
        f->op = "eq";
        f->value = NULL;
        if (colon != NULL) {
            size_t oplen = (size_t)(colon - value), letters = 0;

            for (size_t i = 0; i < sizeof ops / sizeof ops[0]; i++)
                if (strlen(ops[i]) == oplen && strncmp(ops[i], value, oplen) == 0) {
                    f->op = ops[i];
                    value = colon + 1;
                    break;
                }
            while (letters < oplen && isalpha((unsigned char)value[letters]))
                letters++;
            /* word:rest names an operator: one we do not know is an error, not a value (a
             * value with a colon is quoted). */
            if (value != colon + 1 && oplen > 0 && letters == oplen) {
                lp->bad = err_set(&lp->eb, ERR_INVAL,
                                  "unknown filter operator '%.*s' (eq, in, lt, lte, gt, gte, like; "
                                  "quote a value that holds a colon)",
                                  (int)(oplen > 20 ? 20 : oplen), value);
                return 1;
            }
        }
        if (strcmp(f->op, "in") == 0) {
            /* Items may be quoted: "a b","c". */
            struct buf b;
            buf_init(&b, 8192);
            for (const char *p = value; *p != '\0'; p++)
                if (*p != '"')
                    buf_addc(&b, *p);
            if (buf_error(&b) != ERR_OK) { /* never a shorter list than asked for */
                lp->bad =
                    err_set(&lp->eb, ERR_INVAL, "the value of filter '%s' is too long", field);
                return 1;
            }
            f->value = own(lp, buf_detach(&b, NULL));
        } else {
            f->value = own(lp, unquote(value));
        }
    } else if (strcmp(key, "sort") == 0) {
        char *list = xstrdup(value), *p = list;

        while (p != NULL && *p != '\0') {
            char *next = strchr(p, ',');
            int desc = 0;

            if (next != NULL)
                *next++ = '\0';
            if (*p == '-') {
                desc = 1;
                p++;
            } else if (*p == '+' || *p == ' ') {
                p++; /* '+' arrives as ' ' when not percent-encoded */
            }
            if (!store_list_has_field(lp->entity, p)) {
                lp->bad = err_set(&lp->eb, ERR_INVAL, "unknown sort field '%s'", p);
                free(list);
                return 1;
            }
            if (lp->nsorts >= STORE_LIST_MAX_SORTS) {
                lp->bad =
                    err_set(&lp->eb, ERR_INVAL, "at most %d sort fields", STORE_LIST_MAX_SORTS);
                free(list);
                return 1;
            }
            lp->sorts[lp->nsorts].field = own(lp, xstrdup(p));
            lp->sorts[lp->nsorts].desc = desc;
            lp->nsorts++;
            p = next;
        }
        free(list);
    }
    return 0;
}

/* The cursor against the sort (both arguments may come in any order). */
static int
cursor_params(struct list_params *lp)
{
    const struct store_list_entity *e = store_list_entity(lp->entity);
    struct cursor c;

    if (cursor_decode(lp->cursor_in, &c) != 0)
        return err_set(&lp->eb, ERR_INVAL, "cursor is not one this API returned");
    if (c.kind == 'o') {
        /* Positional: what sorted lists answered before keyset cursors; still honoured. */
        lp->offset = c.n;
        lp->pos = c.n;
        return ERR_OK;
    }
    if (c.kind == 'k' && lp->nsorts == 0) {
        lp->keyset = 1;
        lp->after_id = c.n;
        return ERR_OK;
    }
    if (c.kind == 's' && lp->nsorts == 0 && e != NULL && e->seek_field != NULL &&
        c.sig == cursor_sort_sig(lp->entity, NULL, 0) && c.nvals == 1) {
        /* A keyset cursor in a list's default order. */
        const struct store_list_field *f = store_list_field(e, e->seek_field);

        if (f == NULL || c.vals[0].kind != (f->kind == SC_TEXT ? SC_TEXT : SC_INT)) {
            cursor_free(&c);
            return err_set(&lp->eb, ERR_INVAL, "cursor is not one this API returned");
        }
        lp->seek = c;
        lp->pos = c.pos;
        return ERR_OK;
    }
    if (c.kind != 's' || lp->nsorts == 0 || e == NULL || strcmp(lp->entity, "hardware") != 0 ||
        c.sig != cursor_sort_sig(lp->entity, lp->sorts, lp->nsorts) || c.nvals != lp->nsorts) {
        cursor_free(&c);
        return err_set(&lp->eb, ERR_INVAL,
                       "cursor belongs to another sort order or list; start from the first page");
    }
    for (size_t i = 0; i < c.nvals; i++) {
        const struct store_list_field *f = store_list_field(e, lp->sorts[i].field);
        int text = f != NULL && f->kind == SC_TEXT;

        if (f == NULL || (c.vals[i].kind == SC_TEXT && !text) ||
            (c.vals[i].kind == SC_INT && text)) {
            cursor_free(&c);
            return err_set(&lp->eb, ERR_INVAL, "cursor is not one this API returned");
        }
    }
    lp->seek = c;
    lp->pos = c.pos;
    return ERR_OK;
}

/* The pure part of list_params_parse: kv holds npairs (key, value) pairs, kv[2i] and kv[2i+1],
 * in the order the request gave them. */
static int
list_params_parse_pairs(const char *entity, const char *const *kv, size_t npairs,
                        struct list_params *lp)
{
    memset(lp, 0, sizeof *lp);
    lp->page_size = API_PAGE_DEFAULT;
    lp->entity = entity;
    for (size_t i = 0; i < npairs; i++)
        if (param_cb(lp, kv[2 * i], kv[2 * i + 1] != NULL ? kv[2 * i + 1] : "") != 0)
            break;
    if (!lp->bad && lp->cursor_in != NULL)
        lp->bad = cursor_params(lp);
    return lp->bad;
}

int
api_list_params_check(const char *entity, const char *const *kv, size_t npairs, struct errbuf *eb)
{
    struct list_params lp;
    int rc = list_params_parse_pairs(entity, kv, npairs, &lp);

    if (rc != ERR_OK)
        err_set(eb, rc, "%s", lp.eb.msg);
    list_params_clear(&lp);
    return rc;
}

/* The query arguments as pairs; one past the limit so that the parser refuses the request. */
struct arg_pairs {
    const char *kv[2 * (API_MAX_QUERY_PARAMS + 1)];
    size_t n;
};

static int
collect_pair(void *arg, const char *key, const char *value)
{
    struct arg_pairs *p = arg;

    if (p->n >= API_MAX_QUERY_PARAMS + 1)
        return 1;
    p->kv[2 * p->n] = key;
    p->kv[2 * p->n + 1] = value;
    p->n++;
    return 0;
}

static int
list_params_parse(struct httpd_request *req, const char *entity, struct list_params *lp)
{
    struct arg_pairs p;

    p.n = 0;
    httpd_args_each(req, collect_pair, &p);
    return list_params_parse_pairs(entity, p.kv, p.n, lp);
}

static void
fill_query(struct list_query *q, const struct list_params *lp, const char *entity, int64_t account,
           int64_t parent)
{
    memset(q, 0, sizeof *q);
    q->entity = entity;
    q->account_id = account;
    q->parent_id = parent;
    q->filters = lp->filters;
    q->nfilters = lp->nfilters;
    q->sorts = lp->sorts;
    q->nsorts = lp->nsorts;
    q->search = lp->search;
}

struct collect {
    json_t *arr;
    int64_t last_id;
    /* Keyset paging in the default order: the page's last row's seek value and id. */
    const struct store_list_entity *seek_e;
    size_t seek_i, id_i, rows, page_size;
    struct cursor last;
};

static int
collect_cb(void *arg, const struct store_cell *cells, size_t n)
{
    struct collect *c = arg;

    json_array_append_new(c->arr, rowjson_cells(cells, n));
    if (c->seek_e != NULL && ++c->rows == c->page_size && c->seek_i < n && c->id_i < n) {
        const struct store_cell *v = &cells[c->seek_i];

        c->last.kind = 's';
        c->last.nvals = 1;
        c->last.vals[0].kind = v->kind == SC_TEXT ? SC_TEXT : SC_INT;
        c->last.vals[0].i = v->i;
        c->last.vals[0].s = v->kind == SC_TEXT ? xstrdup(v->s != NULL ? v->s : "") : NULL;
        c->last.id = cells[c->id_i].i;
    }
    return 0;
}

/* Where the entity's seek field and its id sit in a row (store_list_each's cells follow the
 * entity's fields); 0 when the list does not page by keyset. */
static int
seek_columns(const struct store_list_entity *e, size_t *seek_i, size_t *id_i)
{
    size_t i = 0;
    int found = 0;

    if (e == NULL || e->seek_field == NULL)
        return 0;
    for (const struct store_list_field *f = e->fields; f->name != NULL; f++, i++) {
        if (strcmp(f->name, e->seek_field) == 0) {
            *seek_i = i;
            found |= 1;
        }
        if (strcmp(f->name, "id") == 0) {
            *id_i = i;
            found |= 2;
        }
    }
    return found == 3;
}

/* A generic paged list of entity. */
/* Replies one page: the first page_size rows of arr, total_count, and a cursor (kind, next)
 * when arr holds one row more than the page. */
static void
reply_page_cursor(struct httpd_response *resp, json_t *arr, size_t page_size, int64_t total,
                  const struct cursor *next)
{
    char *cur = NULL;
    json_t *nc = json_null();

    if (json_array_size(arr) > page_size) {
        struct cursor o = {0};

        json_array_remove(arr, page_size);
        cur = xmalloc(CURSOR_TEXT_MAX + 1);
        o.kind = 'o';
        o.n = next->pos;
        /* A keyset cursor too long to hand out (a sort value of kilobytes) becomes positional:
         * the pages after it are keyset again. Never a null cursor before the last page. */
        if (cursor_encode(next, cur, CURSOR_TEXT_MAX + 1) == 0 ||
            (next->kind == 's' && cursor_encode(&o, cur, CURSOR_TEXT_MAX + 1) == 0))
            nc = json_string(cur);
        free(cur);
    }
    api_reply_json(resp, 200,
                   json_pack("{s:O, s:I, s:o}", "data", arr, "total_count", (json_int_t)total,
                             "next_cursor", nc));
}

static void
reply_page(struct httpd_response *resp, json_t *arr, size_t page_size, int64_t total, char kind,
           int64_t next)
{
    struct cursor c = {0};

    c.kind = kind;
    c.n = next;
    reply_page_cursor(resp, arr, page_size, total, &c);
}

/* Ends a list answer's arena scope; anything still alive in it is a leak worth hearing about. */
static void
arena_done(void)
{
    size_t live = jsonarena_end();

    if (live != 0)
        log_error("api: %zu JSON values outlived their list answer; the arena cannot rewind", live);
}

static void
send_list(struct httpd_request *req, struct httpd_response *resp, const char *entity,
          int64_t account, int64_t parent)
{
    struct list_params lp;
    struct list_query q;
    struct collect c;
    struct errbuf eb = {0};
    int64_t total;
    int rc, keyset;

    jsonarena_begin(); /* the page's tree is built, dumped and freed right here */
    memset(&c, 0, sizeof c);
    c.arr = json_array();
    if (list_params_parse(req, entity, &lp) != ERR_OK) {
        api_reply_err(resp, ERR_INVAL, &lp.eb);
        goto out;
    }
    fill_query(&q, &lp, entity, account, parent);
    total = store_list_count(req->st, &q, &eb);
    if (total < 0) {
        api_reply_err(resp, (int)total, &eb);
        goto out;
    }
    /* In its default order a list with a seek field pages by keyset: a deep page costs what
     * the first one does. A sorted one, or an old positional cursor, pages by position. */
    keyset = lp.nsorts == 0 && seek_columns(store_list_entity(entity), &c.seek_i, &c.id_i);
    if (keyset) {
        c.seek_e = store_list_entity(entity);
        c.page_size = (size_t)lp.page_size;
    }
    if (lp.seek.kind == 's') {
        q.seek = 1;
        q.seek_val = lp.seek.vals[0];
        q.seek_id = lp.seek.id;
    } else {
        q.offset = lp.offset;
    }
    q.limit = lp.page_size + 1;
    rc = store_list_each(req->st, &q, collect_cb, &c, &eb);
    if (rc != ERR_OK) {
        api_reply_err(resp, rc, &eb);
        goto out;
    }
    if (keyset && c.last.kind == 's') {
        c.last.sig = cursor_sort_sig(entity, NULL, 0);
        c.last.pos = lp.pos + lp.page_size;
        reply_page_cursor(resp, c.arr, (size_t)lp.page_size, total, &c.last);
    } else {
        reply_page(resp, c.arr, (size_t)lp.page_size, total, 'o', lp.offset + lp.page_size);
    }
out:
    json_decref(c.arr);
    cursor_free(&c.last);
    list_params_clear(&lp);
    arena_done();
}

/* ---- hardware ---------------------------------------------------------------------------- */

/* An answer holds counts that age with the clock (stale devices, enrolment age) as well as the
 * data: cached answers are keyed by this many seconds of wall time too. */
#define INSIGHT_CACHE_S 600

struct genpage {
    struct asset_writer *w;
    struct rowcache *rowc; /* rendered row bodies (lazy rows); NULL = off */
    size_t rows, page_size;
    int64_t last_id;
    struct cursor last; /* the last row's sort values (text copied) */
    int more;
};

/* Writes the first page_size rows; one more only says there is a next page. */
static int
asset_write_cb(void *arg, const struct asset *a)
{
    struct genpage *p = arg;
    int rc;

    if (p->rows == p->page_size) {
        p->more = 1;
        return 0;
    }
    if (p->rows > 0)
        asset_writer_raw(p->w, ",", 1);
    rc = asset_writer_row(p->w, a, p->rowc);
    if (rc != ERR_OK)
        return rc;
    p->rows++;
    p->last_id = a->id;
    if (p->rows == p->page_size && a->nsort_vals > 0) {
        /* The page's last row: a sorted list's next cursor starts after its values. */
        cursor_free(&p->last);
        for (size_t i = 0; i < a->nsort_vals && i < STORE_LIST_MAX_SORTS; i++) {
            p->last.vals[i] = a->sort_vals[i];
            if (a->sort_vals[i].kind == SC_TEXT)
                p->last.vals[i].s = xstrdup(a->sort_vals[i].s);
            p->last.nvals++;
        }
    }
    return 0;
}

#define RAW(w, lit) asset_writer_raw((w), (lit), sizeof(lit) - 1)

/* Renders the page of q into resp: {"data": [...], "total_count": N, "next_cursor": ...}, the
 * same envelope reply_page writes, without a tree. */
/* asset_query.lazy_held for the row cache. */
static void
row_held(void *arg, const int64_t *ids, const uint64_t *stamps, size_t n, unsigned char *held)
{
    rowcache_has_many(arg, ids, stamps, n, held);
}

static void
hardware_render(struct httpd_request *req, struct httpd_response *resp, struct asset_query *q,
                const struct list_params *lp, int64_t total, struct rowcache *rowc)
{
    struct genpage p = {0};
    struct errbuf eb = {0};
    char *cur = NULL, *body;
    size_t len = 0;
    int rc, bad = 0;

    buf_reset(&resp->body);
    /* About 1.2 KB per asset: one allocation instead of a dozen doublings and copies. The
     * writer's bytes become the answer as they are (no copy into resp->body). */
    p.w = asset_writer_new_owned((size_t)lp->page_size * 1280 + 256, HTTPD_RESP_MAX);
    p.page_size = (size_t)lp->page_size;
    p.rowc = q->lazy_dev ? rowc : NULL;
    RAW(p.w, "{\"data\":[");
    rc = store_assets_each(req->st, q, asset_write_cb, &p, &eb);
    if (rc != ERR_OK) {
        free(asset_writer_take(p.w, &len));
        cursor_free(&p.last);
        api_reply_err(resp, rc, &eb);
        return;
    }
    RAW(p.w, "],\"total_count\":");
    asset_writer_int(p.w, total);
    RAW(p.w, ",\"next_cursor\":");
    if (p.more) {
        /* Keyset both ways: after the last id, or after the last row's sort values and id
         * (cheap at any depth, and rows added or retired between pages shift nothing). A
         * cursor too long for CURSOR_RAW_MAX (sort values of kilobytes) falls back to the
         * position. */
        cur = xmalloc(CURSOR_TEXT_MAX + 1);
        if (lp->nsorts == 0) {
            p.last.kind = 'k';
            p.last.n = p.last_id;
        } else {
            p.last.kind = 's';
            p.last.sig = cursor_sort_sig("hardware", lp->sorts, lp->nsorts);
            p.last.pos = lp->pos + lp->page_size;
            p.last.id = p.last_id;
        }
        if (cursor_encode(&p.last, cur, CURSOR_TEXT_MAX + 1) != 0) {
            struct cursor o = {0};

            o.kind = 'o';
            o.n = lp->pos + lp->page_size;
            bad |= cursor_encode(&o, cur, CURSOR_TEXT_MAX + 1) != 0;
        }
        asset_writer_string(p.w, cur);
        free(cur);
    } else {
        RAW(p.w, "null");
    }
    RAW(p.w, "}");
    cursor_free(&p.last);
    body = asset_writer_take(p.w, &len);
    if (bad || body == NULL) {
        free(body);
        api_reply_json(resp, 500, NULL); /* the generic "could not be built" answer */
        return;
    }
    resp->status = 200;
    resp->content_type = "application/json";
    resp->ext = body;
    resp->ext_len = len;
    resp->ext_free = free;
    resp->ext_cls = body;
}

static int
key_arg(void *arg, const char *key, const char *value)
{
    struct buf *b = arg;

    /* Length-prefixed: no two argument lists share a key. */
    return buf_printf(b, "%zu:%s%zu:%s", strlen(key), key, strlen(value), value) != ERR_OK;
}

/* Everything a list answer depends on besides the stored data: the route, the account (every
 * principal of an account sees the same rows) and the query arguments as sent, in order. */
static int
list_key(struct httpd_request *req, const char *route, int64_t account, struct buf *key)
{
    buf_init(key, 8192);
    if (buf_printf(key, "%s\n%" PRId64 "\n", route, account) != ERR_OK ||
        httpd_args_each(req, key_arg, key) != 0)
        return ERR_TOOBIG;
    return ERR_OK;
}

/* Answers from the answer cache: 304 when If-None-Match names the answer's ETag (key and
 * version; written to etag either way), or the cached body. 0 when the caller must render it. */
static int
cached_answer(struct api_app *app, struct httpd_request *req, struct httpd_response *resp,
              const char *key, size_t keylen, int64_t version, char *etag)
{
    struct pagecache_entry *hit;

    pagecache_etag(key, keylen, version, etag);
    if (pagecache_etag_match(httpd_header(req, "If-None-Match"), etag)) {
        resp->status = 304;
        buf_reset(&resp->body);
        httpd_response_header(resp, "ETag", etag);
        return 1;
    }
    if ((hit = pagecache_get(app->pages, key, keylen, version)) == NULL)
        return 0;
    resp->status = 200;
    resp->content_type = "application/json";
    buf_reset(&resp->body);
    resp->ext = pagecache_body(hit, &resp->ext_len);
    resp->ext_free = pagecache_release;
    resp->ext_cls = hit;
    httpd_response_header(resp, "ETag", etag);
    return 1;
}

struct hwargs {
    struct hwfilter f;
    struct errbuf eb;
    int bad;
};

static int
hwfilter_arg_cb(void *arg, const char *key, const char *value)
{
    struct hwargs *h = arg;

    if (hwfilter_arg(&h->f, key, value != NULL ? value : "", &h->eb) < 0) {
        h->bad = 1;
        return 1;
    }
    return 0;
}

/* A page of a list with derived filters (hwfilter.h): every row is read and tested. */
static void
hardware_filtered(struct httpd_request *req, struct httpd_response *resp, struct asset_query *q,
                  const struct list_params *lp, const struct hwfilter *f)
{
    struct genpage p = {0};
    struct errbuf eb = {0};
    char cur[CURSOR_TEXT_MAX + 1];
    struct cursor o = {0};
    int64_t total = 0;
    size_t len = 0;
    char *body;
    int rc;

    if (lp->keyset || lp->seek.kind == 's') {
        api_reply_error(resp, 400, "invalid_request", "Invalid request",
                        "cursor belongs to another list; start from the first page");
        return;
    }
    buf_reset(&resp->body);
    p.w = asset_writer_new_owned((size_t)lp->page_size * 1280 + 256, HTTPD_RESP_MAX);
    p.page_size = (size_t)lp->page_size;
    RAW(p.w, "{\"data\":[");
    rc = hwfilter_each(req->st, q, f, lp->offset, lp->page_size + 1, asset_write_cb, &p, &total,
                       &eb);
    cursor_free(&p.last);
    if (rc != ERR_OK) {
        free(asset_writer_take(p.w, &len));
        api_reply_err(resp, rc, &eb);
        return;
    }
    RAW(p.w, "],\"total_count\":");
    asset_writer_int(p.w, total);
    RAW(p.w, ",\"next_cursor\":");
    o.kind = 'o';
    o.n = lp->offset + lp->page_size;
    if (p.more && cursor_encode(&o, cur, sizeof cur) == 0)
        asset_writer_string(p.w, cur);
    else
        RAW(p.w, "null");
    RAW(p.w, "}");
    body = asset_writer_take(p.w, &len);
    if (body == NULL) {
        api_reply_json(resp, 500, NULL);
        return;
    }
    resp->status = 200;
    resp->content_type = "application/json";
    resp->ext = body;
    resp->ext_len = len;
    resp->ext_free = free;
    resp->ext_cls = body;
}

static void
hardware_list(struct api_app *app, struct httpd_request *req, struct httpd_response *resp,
              int64_t account)
{
    struct hwargs hw;
    struct list_params lp;
    struct asset_query q = {0};
    struct errbuf eb = {0};
    struct buf key;
    char etag[PAGECACHE_ETAG_LEN + 1];
    int64_t total, version = 0;
    int keyed;

    buf_init(&key, 1);
    if (list_params_parse(req, "hardware", &lp) != ERR_OK) {
        api_reply_err(resp, ERR_INVAL, &lp.eb);
        goto out;
    }
    memset(&hw, 0, sizeof hw);
    hwfilter_init(&hw.f, clock_now());
    httpd_args_each(req, hwfilter_arg_cb, &hw);
    if (hw.bad) {
        api_reply_err(resp, ERR_INVAL, &hw.eb);
        goto out;
    }
    /* The version is read before anything else: see pagecache.h. */
    /* Without the version the answer is rendered uncached; its own reads report a failure. */
    keyed = list_key(req, "hardware", account, &key) == ERR_OK &&
            store_data_version(req->st, &version, &eb) == ERR_OK;
    /* Derived filters age with the clock: cached as long as an insights answer is. */
    if (keyed && hwfilter_active(&hw.f))
        keyed = buf_printf(&key, "\n%" PRId64, hw.f.now / INSIGHT_CACHE_S) == ERR_OK;
    if (keyed && cached_answer(app, req, resp, key.data, key.len, version, etag))
        goto out;
    q.account_id = account;
    q.search = lp.search;
    q.filters = lp.filters;
    q.nfilters = lp.nfilters;
    q.sorts = lp.sorts;
    q.nsorts = lp.nsorts;
    q.include_retired = httpd_arg(req, "include_retired") != NULL &&
                        strcmp(httpd_arg(req, "include_retired"), "true") == 0;
    if (hwfilter_active(&hw.f)) {
        q.offset = lp.offset;
        hardware_filtered(req, resp, &q, &lp, &hw.f);
        goto cache;
    }
    total = store_assets_count(req->st, &q, &eb);
    if (total < 0) {
        api_reply_err(resp, (int)total, &eb);
        goto out;
    }
    if (lp.keyset) {
        q.after_id = lp.after_id;
    } else if (lp.seek.kind == 's') {
        q.seek = 1;
        q.seek_id = lp.seek.id;
        memcpy(q.seek_vals, lp.seek.vals, sizeof q.seek_vals);
    } else {
        q.offset = lp.offset; /* a positional cursor */
    }
    q.limit = lp.page_size + 1;
    q.lazy_dev = app->rows != NULL;
    q.lazy_held = row_held;
    q.lazy_held_arg = app->rows;
    hardware_render(req, resp, &q, &lp, total, app->rows);
cache:
    if (keyed && resp->status == 200) { /* never an error answer */
        pagecache_put(app->pages, key.data, key.len, version, resp->ext, resp->ext_len);
        httpd_response_header(resp, "ETag", etag);
    }
out:
    buf_free(&key);
    list_params_clear(&lp);
}

static int
asset_one_cb(void *arg, const struct asset *a)
{
    json_t **out = arg;

    *out = asset_to_json(a);
    return 0;
}

/* The rows, or NULL with eb set when they could not be read. */
static json_t *
sub_list(struct store *st, const char *entity, int64_t account, int64_t parent, int limit,
         struct errbuf *eb, int *rc)
{
    struct list_query q = {0};
    struct collect c;

    memset(&c, 0, sizeof c);
    c.arr = json_array();
    q.entity = entity;
    q.account_id = account;
    q.parent_id = parent;
    q.limit = limit;
    if ((*rc = store_list_each(st, &q, collect_cb, &c, eb)) != ERR_OK) {
        json_decref(c.arr);
        return NULL;
    }
    return c.arr;
}

static void
hardware_get(struct httpd_request *req, struct httpd_response *resp, int64_t account, int64_t id)
{
    json_t *a = NULL, *sw = NULL, *hist = NULL;
    struct errbuf eb = {0};
    int rc = store_asset_get(req->st, account, id, asset_one_cb, &a, &eb);

    if (rc != ERR_OK || a == NULL) {
        json_decref(a);
        api_reply_err(resp, rc != ERR_OK ? rc : ERR_NOTFOUND, &eb);
        return;
    }
    if ((sw = sub_list(req->st, "asset_software", account, id, 1000, &eb, &rc)) == NULL ||
        (hist = sub_list(req->st, "asset_changes", account, id, 500, &eb, &rc)) == NULL) {
        json_decref(sw);
        json_decref(a);
        api_reply_err(resp, rc, &eb);
        return;
    }
    json_object_set_new(a, "software", sw);
    json_object_set_new(a, "history", hist);
    api_reply_json(resp, 200, json_pack("{s:o}", "data", a));
}

/* 1 when the row id of entity exists in account. A failed check also answers 1: the list
 * read after it fails the same way and answers the error, never a 404. */
static int
row_exists(struct store *st, const char *entity, int64_t account, int64_t id)
{
    struct list_query q = {0};
    struct store_filter f = {"id", "eq", NULL};
    struct errbuf eb = {0};
    char idtxt[32];
    int64_t n;

    snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
    f.value = idtxt;
    q.entity = entity;
    q.account_id = account;
    q.filters = &f;
    q.nfilters = 1;
    if ((n = store_list_count(st, &q, &eb)) < 0)
        log_warn("api: cannot check that %s %" PRId64 " exists: %s", entity, id, eb.msg);
    return n != 0;
}

static void
one_row(struct httpd_request *req, struct httpd_response *resp, const char *entity, int64_t account,
        int64_t id, const char *what, struct scheduler *sched)
{
    struct list_query q = {0};
    struct store_filter f = {"id", "eq", NULL};
    char idtxt[32], msg[96];
    json_t *row = NULL;
    struct errbuf eb = {0};
    int rc;

    snprintf(idtxt, sizeof idtxt, "%" PRId64, id);
    f.value = idtxt;
    q.entity = entity;
    q.account_id = account;
    q.filters = &f;
    q.nfilters = 1;
    q.limit = 1;
    rc = store_list_each(req->st, &q, first_row_cb, &row, &eb);
    if (rc != ERR_OK) {
        api_reply_err(resp, rc, &eb);
        return;
    }
    if (row == NULL) {
        snprintf(msg, sizeof msg, "%s %" PRId64 " does not exist", what, id);
        api_reply_error(resp, 404, "not_found", "Not found", msg);
        return;
    }
    if (strcmp(entity, "sync_runs") == 0) {
        json_t *tenants = sub_list(req->st, "sync_tenant_results", account, id, 10000, &eb, &rc);

        if (tenants == NULL) {
            json_decref(row);
            api_reply_err(resp, rc, &eb);
            return;
        }
        json_object_set_new(row, "tenants", tenants);
        /* A run synced by this process, or queued for workers, lists its unfinished tenants. */
        {
            int listed = 0;
            json_t *live = ui_runs_live_json(sched, req->st, id, &listed);

            json_object_set_new(row, "tenants_unfinished", live != NULL ? live : json_null());
        }
    }
    api_reply_json(resp, 200, json_pack("{s:o}", "data", row));
}

/* ---- CSV exports (streamed in batches, never the whole table) ---------------------------- */

struct csv_stream {
    struct store *st;
    char entity[32];
    int64_t account;
    struct list_params lp;
    const char *const *cols;
    size_t ncols;
    int64_t after_id;   /* hardware keyset */
    int64_t offset;     /* other lists */
    struct hwfilter hf; /* hardware: the insight figures' filters (hwfilter.h) */
    int header_done;
    int done;
    struct buf pending;
    size_t sent;
    int import;                   /* hardware in an import format (importfmt.h) */
    enum importfmt_kind imp_kind; /* when import */
    int jsonl;                    /* JSON lines instead of CSV */
};

static void
csv_cell(struct buf *b, const json_t *v, int raw)
{
    char num[32];

    if (v == NULL || json_is_null(v))
        return;
    if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        buf_addstr(b, num);
    } else if (json_is_true(v)) {
        buf_addstr(b, "true");
    } else if (json_is_false(v)) {
        buf_addstr(b, "false");
    } else if (json_is_string(v)) {
        const char *s = json_string_value(v);
        int quote = strpbrk(s, ",\"\r\n") != NULL;
        int formula = !raw && (s[0] == '=' || s[0] == '+' || s[0] == '-' || s[0] == '@' ||
                               s[0] == '\t' || s[0] == '\r');

        if (quote || formula)
            buf_addc(b, '"');
        if (formula) /* a spreadsheet must not run tenant-controlled text */
            buf_addc(b, '\'');
        for (; *s != '\0'; s++) {
            if (*s == '"')
                buf_addc(b, '"');
            buf_addc(b, *s);
        }
        if (quote || formula)
            buf_addc(b, '"');
    } else if (json_is_real(v)) {
        snprintf(num, sizeof num, "%.17g", json_real_value(v));
        buf_addstr(b, num);
    }
}

static void
csv_row(struct buf *b, const json_t *row, const char *const *cols, size_t n, int raw)
{
    for (size_t i = 0; i < n; i++) {
        if (i)
            buf_addc(b, ',');
        csv_cell(b, output_lookup(row, cols[i]), raw);
    }
    buf_addstr(b, "\r\n");
}

/* One row of an export: CSV, or a JSON line; an import format's rows are built from the
 * asset's view and written without the formula guard. Takes row. */
static void
export_row(struct csv_stream *cs, json_t *row)
{
    if (cs->import) {
        json_t *x = cs->imp_kind == IMPORTFMT_SNIPEIT
                        ? importfmt_snipeit_row(row)
                        : importfmt_glpi_inventory(row, "memsync-" MEMSYNC_VERSION);

        json_decref(row);
        row = x;
    }
    if (cs->jsonl) {
        char *t = json_dumps(row, JSON_COMPACT);

        if (t != NULL) {
            buf_addstr(&cs->pending, t);
            buf_addc(&cs->pending, '\n');
        }
        free(t);
    } else {
        csv_row(&cs->pending, row, cs->cols, cs->ncols, cs->import);
    }
    json_decref(row);
}

struct csv_batch {
    struct csv_stream *cs;
    int rows;
};

static int
csv_asset_cb(void *arg, const struct asset *a)
{
    struct csv_batch *cb = arg;
    /* Rows read, written or not, end a batch: a short batch is the last one. */
    cb->cs->after_id = a->id;
    cb->rows++;
    if (!hwfilter_match(&cb->cs->hf, a))
        return 0;
    export_row(cb->cs, asset_to_json(a));
    return 0;
}

static int
csv_cells_cb(void *arg, const struct store_cell *cells, size_t n)
{
    struct csv_batch *cb = arg;

    export_row(cb->cs, rowjson_cells(cells, n));
    cb->rows++;
    return 0;
}

/* Fills cs->pending with the next batch; sets done at the end. Returns ERR_OK or the store's
 * error (in eb). */
static int
csv_fill(struct csv_stream *cs, struct errbuf *eb)
{
    struct csv_batch cb = {cs, 0};
    int rc;

    buf_reset(&cs->pending);
    cs->sent = 0;
    if (!cs->header_done && !cs->jsonl) {
        for (size_t i = 0; i < cs->ncols; i++)
            buf_printf(&cs->pending, "%s%s", i ? "," : "", cs->cols[i]);
        buf_addstr(&cs->pending, "\r\n");
        cs->header_done = 1;
    }
    if (strcmp(cs->entity, "hardware") == 0) {
        struct asset_query q = {0};

        q.account_id = cs->account;
        q.search = cs->lp.search;
        q.filters = cs->lp.filters;
        q.nfilters = cs->lp.nfilters;
        q.after_id = cs->after_id;
        q.limit = CSV_BATCH;
        rc = store_assets_each(cs->st, &q, csv_asset_cb, &cb, eb);
    } else {
        struct list_query q;

        fill_query(&q, &cs->lp, cs->entity, cs->account, 0);
        q.offset = cs->offset;
        q.limit = CSV_BATCH;
        rc = store_list_each(cs->st, &q, csv_cells_cb, &cb, eb);
        cs->offset += cb.rows;
    }
    if (rc == ERR_OK && (rc = buf_error(&cs->pending)) != ERR_OK)
        err_set(eb, rc, "a batch of rows does not fit in the export's buffer");
    if (rc != ERR_OK)
        return rc;
    if (cb.rows < CSV_BATCH)
        cs->done = 1;
    return ERR_OK;
}

static ssize_t
csv_read(void *cls, char *out, size_t max)
{
    struct csv_stream *cs = cls;
    size_t n;

    while (cs->sent >= cs->pending.len) {
        struct errbuf eb = {0};

        if (cs->done)
            return 0;
        if (csv_fill(cs, &eb) != ERR_OK) {
            /* The status is sent: ending the stream early is the only way to tell the client. */
            log_warn("api: the %s export stopped: %s", cs->entity, eb.msg);
            return -1;
        }
    }
    n = cs->pending.len - cs->sent;
    if (n > max)
        n = max;
    memcpy(out, cs->pending.data + cs->sent, n);
    cs->sent += n;
    return (ssize_t)n;
}

static void
csv_free(void *cls)
{
    struct csv_stream *cs = cls;

    list_params_clear(&cs->lp);
    buf_free(&cs->pending);
    free(cs);
}

/* jsonl: the .jsonl route (JSON lines). ?format=snipeit (CSV) and ?format=glpi (JSON lines)
 * turn hardware rows into import files; checked before any byte is sent. */
static void
csv_export_as(struct httpd_request *req, struct httpd_response *resp, const char *entity,
              int64_t account, int jsonl)
{
    struct csv_stream *cs = xcalloc(1, sizeof *cs);
    struct hwargs hw;
    const char *format = httpd_arg(req, "format");
    char disp[96];

    if (list_params_parse(req, entity, &cs->lp) != ERR_OK) {
        api_reply_err(resp, ERR_INVAL, &cs->lp.eb);
        csv_free(cs);
        return;
    }
    memset(&hw, 0, sizeof hw);
    hwfilter_init(&hw.f, clock_now());
    if (strcmp(entity, "hardware") == 0)
        httpd_args_each(req, hwfilter_arg_cb, &hw);
    if (hw.bad) {
        api_reply_err(resp, ERR_INVAL, &hw.eb);
        csv_free(cs);
        return;
    }
    cs->hf = hw.f;
    cs->jsonl = jsonl;
    if (format != NULL && strcmp(format, jsonl ? "jsonl" : "csv") != 0) {
        struct errbuf eb = {0};

        if (strcmp(entity, "hardware") != 0 ||
            importfmt_parse(format, &cs->imp_kind, &eb) != ERR_OK ||
            (cs->imp_kind == IMPORTFMT_SNIPEIT) == jsonl) {
            api_reply_error(resp, 400, "invalid_request", "Bad request",
                            jsonl ? "format: this export takes jsonl or, for hardware, glpi"
                                  : "format: this export takes csv or, for hardware, snipeit");
            csv_free(cs);
            return;
        }
        cs->import = 1;
    }
    cs->st = req->st;
    snprintf(cs->entity, sizeof cs->entity, "%s", entity);
    cs->account = account;
    buf_init(&cs->pending, 4 * 1024 * 1024);
    if (strcmp(entity, "hardware") == 0) {
        cs->cols = asset_columns;
        cs->ncols = asset_column_count;
    } else if (strcmp(entity, "software") == 0) {
        cs->cols = software_columns;
        cs->ncols = software_column_count;
    } else {
        cs->cols = client_columns;
        cs->ncols = client_column_count;
    }
    if (cs->import && cs->imp_kind == IMPORTFMT_SNIPEIT) {
        cs->cols = importfmt_snipeit_columns;
        cs->ncols = importfmt_snipeit_column_count;
    }
    snprintf(disp, sizeof disp, "attachment; filename=\"%s%s.%s\"",
             strcmp(entity, "hardware") == 0   ? "hardware-assets"
             : strcmp(entity, "software") == 0 ? "software"
                                               : "clients",
             !cs->import                         ? ""
             : cs->imp_kind == IMPORTFMT_SNIPEIT ? "-snipeit"
                                                 : "-glpi",
             jsonl ? "jsonl" : "csv");
    /* The first batch is read before the status is sent: a query the store refuses (a value
     * the field's type cannot take, ...) is still a proper error answer, never a cut body. */
    {
        struct errbuf eb = {0};
        int rc = csv_fill(cs, &eb);

        if (rc != ERR_OK) {
            api_reply_err(resp, rc, &eb);
            csv_free(cs);
            return;
        }
    }
    resp->status = 200;
    resp->content_type = jsonl ? "application/x-ndjson" : "text/csv; charset=utf-8";
    httpd_response_header(resp, "Content-Disposition", disp);
    resp->reader = csv_read;
    resp->reader_free = csv_free;
    resp->reader_cls = cs;
}

static void
csv_export(struct httpd_request *req, struct httpd_response *resp, const char *entity,
           int64_t account)
{
    csv_export_as(req, resp, entity, account, 0);
}

/* ---- integrations (writes) --------------------------------------------------------------- */

/* Saves a new integration through the service, then queues its first full sync. *validation
 * gets the checks' results once they ran (a new reference), else NULL. */
static int
create_integration(struct api_app *app, struct store *st, int64_t account_id,
                   struct integration_input *in, int64_t *id, json_t **validation,
                   struct errbuf *eb)
{
    struct validation val = {0};
    int rc;

    in->sample = app->validate_sample;
    rc = integration_create(app->cfg, st, app->vault, account_id, in, id, &val, eb);
    *validation = val.n > 0 ? validation_to_json(&val) : NULL;
    validation_clear(&val);
    if (rc == ERR_OK && app->sched != NULL)
        scheduler_request(app->sched, account_id, *id, 1, NULL);
    return rc;
}

static int
rotate_integration(struct api_app *app, struct store *st, int64_t account_id, int64_t id,
                   const char *which, const char *secret, const char *expires, json_t **validation,
                   struct errbuf *eb)
{
    struct validation val = {0};
    int rc;

    rc = integration_rotate_secret(app->cfg, st, app->vault, account_id, id, which, secret, expires,
                                   0, app->validate_sample, &val, eb);
    *validation = val.n > 0 ? validation_to_json(&val) : NULL;
    validation_clear(&val);
    return rc;
}

static json_t *
parse_body(struct httpd_request *req, struct httpd_response *resp)
{
    json_error_t jerr;
    json_t *j;
    char detail[200];

    j = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, &jerr);
    if (j == NULL || !json_is_object(j)) {
        snprintf(detail, sizeof detail, "the body must be a JSON object%s%s", j == NULL ? ": " : "",
                 j == NULL ? jerr.text : "");
        json_decref(j);
        api_reply_error(resp, 400, "invalid_json", "Invalid JSON", detail);
        return NULL;
    }
    return j;
}

static const char *
jget(const json_t *o, const char *k)
{
    return json_string_value(json_object_get(o, k));
}

static void
integration_reply(struct api_app *app, struct httpd_request *req, struct httpd_response *resp,
                  int64_t account, int64_t id, int status, json_t *validation)
{
    struct integration in = {0};
    struct errbuf eb = {0};
    json_t *j;
    int rc = store_integration_get(req->st, account, id, &in, &eb);

    if (rc != ERR_OK) {
        json_decref(validation);
        api_reply_err(resp, rc, &eb);
        return;
    }
    j = api_integration_json(app, &in);
    rc = integration_sync_json(app, req->st, j, account, id, &eb);
    integration_clear(&in);
    if (rc != ERR_OK) {
        json_decref(j);
        json_decref(validation);
        api_reply_err(resp, rc, &eb);
        return;
    }
    api_reply_json(resp, status,
                   validation != NULL ? json_pack("{s:o, s:o}", "data", j, "validation", validation)
                                      : json_pack("{s:o}", "data", j));
}

static void
integrations_list(struct api_app *app, struct httpd_request *req, struct httpd_response *resp,
                  int64_t account)
{
    struct integration *list = NULL;
    size_t n = 0;
    struct errbuf eb = {0};
    json_t *arr;
    int rc = store_integration_list(req->st, account, &list, &n, &eb);

    if (rc != ERR_OK) {
        api_reply_err(resp, rc, &eb);
        return;
    }
    arr = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *j = api_integration_json(app, &list[i]);

        if (rc == ERR_OK)
            rc = integration_sync_json(app, req->st, j, account, list[i].id, &eb);
        json_array_append_new(arr, j);
        integration_clear(&list[i]);
    }
    free(list);
    if (rc != ERR_OK) {
        json_decref(arr);
        api_reply_err(resp, rc, &eb);
        return;
    }
    api_reply_json(
        resp, 200,
        json_pack("{s:o, s:I, s:n}", "data", arr, "total_count", (json_int_t)n, "next_cursor"));
}

/* The answer to an integration write that ran the checks: 422 with every check when they
 * refused the values, the error when something else failed, else the integration. Takes val. */
static void
integration_write_reply(struct api_app *app, struct httpd_request *req, struct httpd_response *resp,
                        int64_t account, int64_t id, int rc, const struct errbuf *eb, json_t *val,
                        const char *title, int status)
{
    if (rc == ERR_AUTH) {
        api_reply_json(resp, 422,
                       json_pack("{s:[{s:s, s:s, s:s}], s:o}", "errors", "code",
                                 "validation_failed", "title", title, "detail", eb->msg,
                                 "validation", val != NULL ? val : json_null()));
        return;
    }
    if (rc != ERR_OK) {
        json_decref(val);
        api_reply_err(resp, rc, eb);
        return;
    }
    integration_reply(app, req, resp, account, id, status, val);
}

static void
integration_create_route(struct api_app *app, struct httpd_request *req,
                         struct httpd_response *resp, int64_t account)
{
    json_t *body = parse_body(req, resp), *val = NULL;
    struct integration_input in = {0};
    struct errbuf eb = {0};
    int64_t id = 0;
    int rc;

    if (body == NULL)
        return;
    in.name = jget(body, "name");
    in.partner_tenant_id = jget(body, "partner_tenant_id");
    in.partner_app_id = jget(body, "partner_app_id");
    in.partner_app_secret = jget(body, "partner_app_secret");
    in.sync_app_id = jget(body, "sync_app_id");
    in.sync_app_secret = jget(body, "sync_app_secret");
    in.partner_expires = jget(body, "partner_app_secret_expires_at");
    in.sync_expires = jget(body, "sync_app_secret_expires_at");
    in.tenant_source = jget(body, "tenant_source");
    in.cloud = jget(body, "cloud");
    if (json_is_integer(json_object_get(body, "sync_interval_seconds")))
        in.sync_interval = json_integer_value(json_object_get(body, "sync_interval_seconds"));
    rc = create_integration(app, req->st, account, &in, &id, &val, &eb);
    json_decref(body);
    integration_write_reply(app, req, resp, account, id, rc, &eb, val,
                            "The values did not pass the checks", 201);
}

static void
integration_patch_route(struct api_app *app, struct httpd_request *req, struct httpd_response *resp,
                        int64_t account, int64_t id)
{
    json_t *body = parse_body(req, resp);
    struct errbuf eb = {0};
    int64_t interval = 0, pexp = 0, sexp = 0;
    const char *s;
    int rc = ERR_OK;

    if (body == NULL)
        return;
    if (json_object_get(body, "partner_app_secret") != NULL ||
        json_object_get(body, "sync_app_secret") != NULL) {
        rc = err_set(&eb, ERR_INVAL,
                     "keys are replaced with POST .../rotate-secret, which checks "
                     "them with Microsoft first");
        goto out;
    }
    if (json_object_get(body, "sync_interval_seconds") != NULL) {
        if (!json_is_integer(json_object_get(body, "sync_interval_seconds"))) {
            rc = err_set(&eb, ERR_INVAL, "sync_interval_seconds must be a number");
            goto out;
        }
        interval = json_integer_value(json_object_get(body, "sync_interval_seconds"));
        if (interval == 0)
            interval = -1; /* 0 would mean "unchanged" below: refuse it */
    }
    if ((s = jget(body, "partner_app_secret_expires_at")) != NULL &&
        (rc = integration_parse_expiry(s, "partner_app_secret_expires_at", &pexp, &eb)) != ERR_OK)
        goto out;
    if ((s = jget(body, "sync_app_secret_expires_at")) != NULL &&
        (rc = integration_parse_expiry(s, "sync_app_secret_expires_at", &sexp, &eb)) != ERR_OK)
        goto out;
    rc = store_integration_update(req->st, account, id, jget(body, "name"), interval, pexp, sexp,
                                  &eb);
out:
    json_decref(body);
    if (rc != ERR_OK) {
        api_reply_err(resp, rc, &eb);
        return;
    }
    integration_reply(app, req, resp, account, id, 200, NULL);
}

static void
integration_rotate_route(struct api_app *app, struct httpd_request *req,
                         struct httpd_response *resp, int64_t account, int64_t id)
{
    json_t *body = parse_body(req, resp), *val = NULL;
    struct errbuf eb = {0};
    int rc;

    if (body == NULL)
        return;
    rc = rotate_integration(app, req->st, account, id, jget(body, "which"), jget(body, "secret"),
                            jget(body, "expires_at"), &val, &eb);
    json_decref(body);
    integration_write_reply(app, req, resp, account, id, rc, &eb, val,
                            "The new key did not pass the checks", 200);
}

static void
integration_sync_route(struct api_app *app, struct httpd_request *req, struct httpd_response *resp,
                       int64_t account, int64_t id)
{
    struct integration in = {0};
    struct errbuf eb = {0};
    const char *kind = httpd_arg(req, "kind");
    int full = kind == NULL || strcmp(kind, "incremental") != 0;
    int64_t run = 0;
    char loc[64];
    int rc = store_integration_get(req->st, account, id, &in, &eb);

    integration_clear(&in);
    if (rc == ERR_OK)
        rc = app->sched != NULL
                 ? scheduler_request_run(app->sched, req->st, account, id, full, &run, &eb)
                 : err_set(&eb, ERR_UNSUPPORTED, "the scheduler is not running");
    if (rc != ERR_OK) {
        api_reply_sync_err(resp, rc, &eb);
        return;
    }
    /* The run exists from now on: its page lists the tenants as they are synced. */
    snprintf(loc, sizeof loc, "/api/v1/sync-runs/%" PRId64, run);
    httpd_response_header(resp, "Location", loc);
    api_reply_json(resp, 202,
                   json_pack("{s:{s:I, s:I, s:s, s:s}}", "data", "run_id", (json_int_t)run,
                             "integration_id", (json_int_t)id, "kind",
                             full ? "full" : "incremental", "state", "queued"));
}

/* ---- metrics ----------------------------------------------------------------------------- */

struct metric_walk {
    struct buf *b;
    int64_t counts[3];
    struct buf *runs, *finished;
    int64_t seen[256];
    size_t nseen;
};

static int
tenant_status_cb(void *arg, const struct store_cell *c, size_t n)
{
    struct metric_walk *w = arg;

    for (size_t i = 0; i < n; i++)
        if (strcmp(c[i].name, "status") == 0 && c[i].s != NULL)
            w->counts[strcmp(c[i].s, "ok") == 0 ? 0 : strcmp(c[i].s, "error") == 0 ? 1 : 2]++;
    return 0;
}

static int
run_metric_cb(void *arg, const struct store_cell *c, size_t n)
{
    struct metric_walk *w = arg;
    int64_t started = TS_NULL, finished = TS_NULL, integ = 0;

    for (size_t i = 0; i < n; i++) {
        if (strcmp(c[i].name, "integration_id") == 0)
            integ = c[i].i;
        else if (strcmp(c[i].name, "started_at") == 0 && c[i].kind != SC_NULL)
            started = c[i].i;
        else if (strcmp(c[i].name, "finished_at") == 0 && c[i].kind != SC_NULL)
            finished = c[i].i;
    }
    if (started == TS_NULL || finished == TS_NULL)
        return 0;
    /* Runs come newest first: only each integration's latest finished run is reported. */
    for (size_t i = 0; i < w->nseen; i++)
        if (w->seen[i] == integ)
            return 0;
    if (w->nseen >= sizeof w->seen / sizeof w->seen[0])
        return 0;
    w->seen[w->nseen++] = integ;
    buf_printf(w->runs,
               "memsync_sync_last_duration_seconds{integration_id=\"%" PRId64 "\"} %" PRId64 "\n",
               integ, finished - started);
    buf_printf(w->finished,
               "memsync_sync_last_finished_timestamp_seconds{integration_id=\"%" PRId64
               "\"} %" PRId64 "\n",
               integ, finished);
    return 0;
}

/* One client's labels and figures, gathered from a "clients" row. */
struct client_metric_walk {
    struct buf *last, *up;
};

static int
client_metric_cb(void *arg, const struct store_cell *c, size_t n)
{
    struct client_metric_walk *w = arg;
    const char *tenant = NULL, *name = NULL, *status = NULL;
    int64_t integ = 0, last = TS_NULL;
    int included = 1;
    struct buf labels;

    for (size_t i = 0; i < n; i++) {
        if (strcmp(c[i].name, "integration_id") == 0)
            integ = c[i].i;
        else if (strcmp(c[i].name, "tenant_id") == 0)
            tenant = c[i].s;
        else if (strcmp(c[i].name, "name") == 0)
            name = c[i].s;
        else if (strcmp(c[i].name, "status") == 0)
            status = c[i].s;
        else if (strcmp(c[i].name, "included") == 0)
            included = c[i].kind == SC_NULL || c[i].i != 0;
        else if (strcmp(c[i].name, "last_sync_at") == 0 && c[i].kind != SC_NULL)
            last = c[i].i;
    }
    if (!included)
        return 0;
    buf_init(&labels, 4096);
    buf_printf(&labels, "{integration_id=\"%" PRId64 "\",tenant_id=\"", integ);
    metrics_label(&labels, tenant);
    buf_addstr(&labels, "\",client=\"");
    metrics_label(&labels, name);
    buf_addstr(&labels, "\"}");
    /* last_sync_at is only written by a tenant's successful sync. */
    if (last != TS_NULL)
        buf_printf(w->last, "memsync_client_last_success_timestamp_seconds%s %" PRId64 "\n",
                   buf_cstr(&labels), last);
    if (status != NULL && (strcmp(status, "ok") == 0 || strcmp(status, "error") == 0))
        buf_printf(w->up, "memsync_client_up%s %d\n", buf_cstr(&labels), strcmp(status, "ok") == 0);
    buf_free(&labels);
    return 0;
}

static int
client_metrics(struct store *st, int64_t account, struct buf *b, struct errbuf *eb)
{
    struct list_query q = {0};
    struct client_metric_walk w;
    struct buf last, up;
    int rc;

    buf_init(&last, 8 << 20);
    buf_init(&up, 8 << 20);
    w.last = &last;
    w.up = &up;
    q.entity = "clients";
    q.account_id = account;
    rc = store_list_each(st, &q, client_metric_cb, &w, eb);
    buf_addstr(b, "# HELP memsync_client_last_success_timestamp_seconds When each included "
                  "customer tenant last synced successfully.\n"
                  "# TYPE memsync_client_last_success_timestamp_seconds gauge\n");
    buf_addbuf(b, &last);
    buf_addstr(b, "# HELP memsync_client_up Whether each included customer tenant's latest sync "
                  "succeeded (1) or failed (0); never synced tenants are absent.\n"
                  "# TYPE memsync_client_up gauge\n");
    buf_addbuf(b, &up);
    buf_free(&last);
    buf_free(&up);
    return rc;
}

static int
secret_expiry_metrics(struct store *st, int64_t account, struct buf *b, struct errbuf *eb)
{
    struct integration *list = NULL;
    size_t n = 0;
    int rc;

    buf_addstr(b, "# HELP memsync_secret_expiry_timestamp_seconds When each integration's app "
                  "key (partner or sync app) expires.\n"
                  "# TYPE memsync_secret_expiry_timestamp_seconds gauge\n");
    if ((rc = store_integration_list(st, account, &list, &n, eb)) != ERR_OK)
        return rc;
    for (size_t i = 0; i < n; i++) {
        if (list[i].partner_secret_expires != TS_NULL)
            buf_printf(b,
                       "memsync_secret_expiry_timestamp_seconds{integration_id=\"%" PRId64
                       "\",app=\"partner\"} %" PRId64 "\n",
                       list[i].id, list[i].partner_secret_expires);
        if (list[i].sync_secret_expires != TS_NULL)
            buf_printf(b,
                       "memsync_secret_expiry_timestamp_seconds{integration_id=\"%" PRId64
                       "\",app=\"sync\"} %" PRId64 "\n",
                       list[i].id, list[i].sync_secret_expires);
        integration_clear(&list[i]);
    }
    free(list);
    return ERR_OK;
}

static void
metrics_route(struct api_app *app, struct httpd_request *req, struct httpd_response *resp,
              int64_t account)
{
    struct buf *b = &resp->body;
    struct httpd_stats hs = {0};
    struct scheduler_stats ss = {0};
    struct asset_query aq = {0};
    struct list_query q = {0};
    struct metric_walk w;
    struct integration *list = NULL;
    size_t n = 0;
    struct errbuf eb = {0};
    int64_t devices;
    int rc = ERR_OK; /* the first failed read: the answer becomes its error */

    memset(&w, 0, sizeof w);
    w.b = b;

    if (app->httpd != NULL)
        httpd_stats_get(app->httpd, &hs);
    if (app->sched != NULL)
        scheduler_stats_get(app->sched, &ss);
    aq.account_id = account;
    if ((devices = store_assets_count(req->st, &aq, &eb)) < 0)
        rc = (int)devices;
    buf_reset(b);
    buf_printf(b,
               "# HELP memsync_build_info The running memsync's version (always 1).\n"
               "# TYPE memsync_build_info gauge\n"
               "memsync_build_info{version=\"" MEMSYNC_VERSION "\"} 1\n"
               "# HELP memsync_http_requests_received_total HTTP requests received, including "
               "those refused before routing (process-wide).\n"
               "# TYPE memsync_http_requests_received_total counter\n"
               "memsync_http_requests_received_total %" PRIu64 "\n"
               "# HELP memsync_http_responses_429_total Requests refused with 429.\n"
               "# TYPE memsync_http_responses_429_total counter\n"
               "memsync_http_responses_429_total %" PRIu64 "\n"
               "# HELP memsync_http_responses_5xx_total Requests answered with 5xx.\n"
               "# TYPE memsync_http_responses_5xx_total counter\n"
               "memsync_http_responses_5xx_total %" PRIu64 "\n"
               "# HELP memsync_sync_runs_total Syncs run by this process.\n"
               "# TYPE memsync_sync_runs_total counter\n"
               "memsync_sync_runs_total %" PRIu64 "\n"
               "# HELP memsync_sync_runs_failed_total Syncs of this process that failed or "
               "had a failed tenant.\n"
               "# TYPE memsync_sync_runs_failed_total counter\n"
               "memsync_sync_runs_failed_total %" PRIu64 "\n"
               "# HELP memsync_microsoft_requests_total Requests this process's syncs sent "
               "to Microsoft (each part of a $batch counts).\n"
               "# TYPE memsync_microsoft_requests_total counter\n"
               "memsync_microsoft_requests_total %" PRIu64 "\n"
               "# HELP memsync_microsoft_throttled_total Throttled (429) answers among them; "
               "each was retried after its Retry-After.\n"
               "# TYPE memsync_microsoft_throttled_total counter\n"
               "memsync_microsoft_throttled_total %" PRIu64 "\n"
               "# HELP memsync_devices Active hardware assets.\n"
               "# TYPE memsync_devices gauge\n"
               "memsync_devices %" PRId64 "\n",
               hs.requests, hs.status_429, hs.status_5xx, ss.runs, ss.failed, ss.microsoft_requests,
               ss.microsoft_throttled, devices);
    metrics_http_write(b);
    metrics_sync_write(b);
    q.entity = "clients";
    q.account_id = account;
    if (rc == ERR_OK)
        rc = store_list_each(req->st, &q, tenant_status_cb, &w, &eb);
    if (rc == ERR_OK)
        rc = client_metrics(req->st, account, b, &eb);
    buf_printf(b,
               "# HELP memsync_tenants Customer tenants by last sync status.\n"
               "# TYPE memsync_tenants gauge\n"
               "memsync_tenants{status=\"ok\"} %" PRId64 "\n"
               "memsync_tenants{status=\"error\"} %" PRId64 "\n"
               "memsync_tenants{status=\"never\"} %" PRId64 "\n",
               w.counts[0], w.counts[1], w.counts[2]);
    {
        struct buf runs, fin;

        buf_init(&runs, 1 << 20);
        buf_init(&fin, 1 << 20);
        w.runs = &runs;
        w.finished = &fin;
        q.entity = "sync_runs";
        q.limit = 500;
        if (rc == ERR_OK)
            rc = store_list_each(req->st, &q, run_metric_cb, &w, &eb);
        buf_addstr(b, "# HELP memsync_sync_last_duration_seconds Duration of each integration's "
                      "latest finished sync.\n"
                      "# TYPE memsync_sync_last_duration_seconds gauge\n");
        buf_addbuf(b, &runs);
        buf_addstr(b, "# HELP memsync_sync_last_finished_timestamp_seconds When each "
                      "integration's latest sync finished.\n"
                      "# TYPE memsync_sync_last_finished_timestamp_seconds gauge\n");
        buf_addbuf(b, &fin);
        buf_free(&runs);
        buf_free(&fin);
    }
    buf_addstr(b, "# HELP memsync_secret_days_to_expiry Days until each key expires.\n"
                  "# TYPE memsync_secret_days_to_expiry gauge\n");
    if (rc == ERR_OK && (rc = store_integration_list(req->st, account, &list, &n, &eb)) == ERR_OK) {
        int64_t now = clock_now();

        for (size_t i = 0; i < n; i++) {
            if (list[i].partner_secret_expires != TS_NULL)
                buf_printf(b,
                           "memsync_secret_days_to_expiry{integration_id=\"%" PRId64
                           "\",secret=\"partner\"} %.1f\n",
                           list[i].id, (double)(list[i].partner_secret_expires - now) / 86400.0);
            if (list[i].sync_secret_expires != TS_NULL)
                buf_printf(b,
                           "memsync_secret_days_to_expiry{integration_id=\"%" PRId64
                           "\",secret=\"sync\"} %.1f\n",
                           list[i].id, (double)(list[i].sync_secret_expires - now) / 86400.0);
            integration_clear(&list[i]);
        }
        free(list);
    }
    if (rc == ERR_OK)
        rc = secret_expiry_metrics(req->st, account, b, &eb);
    {
        struct pagecache_stats ps;

        pagecache_stats_get(app->pages, &ps);
        buf_printf(
            b,
            "# HELP memsync_api_cache_bytes Bytes of list answers cached (bound: "
            "api_cache_mb).\n"
            "# TYPE memsync_api_cache_bytes gauge\n"
            "memsync_api_cache_bytes %zu\n"
            "# HELP memsync_api_cache_max_bytes The bound of the list answer cache in bytes.\n"
            "# TYPE memsync_api_cache_max_bytes gauge\n"
            "memsync_api_cache_max_bytes %zu\n"
            "# HELP memsync_api_cache_entries List answers cached.\n"
            "# TYPE memsync_api_cache_entries gauge\n"
            "memsync_api_cache_entries %zu\n"
            "# HELP memsync_api_cache_hits_total List answers served from the cache.\n"
            "# TYPE memsync_api_cache_hits_total counter\n"
            "memsync_api_cache_hits_total %" PRIu64 "\n"
            "# HELP memsync_api_cache_misses_total List answers not in the cache.\n"
            "# TYPE memsync_api_cache_misses_total counter\n"
            "memsync_api_cache_misses_total %" PRIu64 "\n"
            "# HELP memsync_api_cache_evictions_total List answers dropped to stay within the "
            "bound.\n"
            "# TYPE memsync_api_cache_evictions_total counter\n"
            "memsync_api_cache_evictions_total %" PRIu64 "\n",
            ps.bytes, ps.max_bytes, ps.entries, ps.hits, ps.misses, ps.evictions);
    }
    {
        struct rowcache_stats rs;

        rowcache_stats(app->rows, &rs);
        buf_printf(
            b,
            "# HELP memsync_api_row_cache_bytes Bytes of rendered hardware rows cached "
            "(bound: api_row_cache_mb).\n"
            "# TYPE memsync_api_row_cache_bytes gauge\n"
            "memsync_api_row_cache_bytes %zu\n"
            "# HELP memsync_api_row_cache_max_bytes The bound of the hardware row cache in bytes.\n"
            "# TYPE memsync_api_row_cache_max_bytes gauge\n"
            "memsync_api_row_cache_max_bytes %zu\n"
            "# HELP memsync_api_row_cache_entries Hardware rows cached.\n"
            "# TYPE memsync_api_row_cache_entries gauge\n"
            "memsync_api_row_cache_entries %zu\n"
            "# HELP memsync_api_row_cache_hits_total Hardware rows served from the cache.\n"
            "# TYPE memsync_api_row_cache_hits_total counter\n"
            "memsync_api_row_cache_hits_total %" PRIu64 "\n"
            "# HELP memsync_api_row_cache_misses_total Hardware rows rendered afresh.\n"
            "# TYPE memsync_api_row_cache_misses_total counter\n"
            "memsync_api_row_cache_misses_total %" PRIu64 "\n"
            "# HELP memsync_api_row_cache_evictions_total Hardware rows dropped to stay within the "
            "bound.\n"
            "# TYPE memsync_api_row_cache_evictions_total counter\n"
            "memsync_api_row_cache_evictions_total %" PRIu64 "\n",
            rs.bytes, rs.max_bytes, rs.entries, rs.hits, rs.misses, rs.evictions);
    }
    if (rc != ERR_OK) {
        api_reply_err(resp, rc, &eb);
        return;
    }
    resp->status = 200;
    resp->content_type = "text/plain; version=0.0.4; charset=utf-8";
}

#define INSIGHT_STALE_DAYS 30
#define INSIGHT_MAX_DAYS   3650
/* Single flight: requests for one answer arriving together render it once; the others wait
 * up to INSIGHT_WAIT_S for it. */
#define INSIGHT_FLIGHTS 16
#define INSIGHT_WAIT_S  30
static struct flight insight_flight = FLIGHT_INIT(INSIGHT_FLIGHTS);

/* GET /api/v1/insights: `memsync insights` for the caller's account, a row per client with
 * active devices, all in one answer (no paging). Walking every asset costs ~2 s per million,
 * so the answer goes to the answer cache like a hardware page. */
static void
insights_answer(struct api_app *app, struct httpd_request *req, struct httpd_response *resp,
                int64_t account)
{
    const char *arg = httpd_arg(req, "stale_days");
    char key[96], fkey[128], etag[PAGECACHE_ETAG_LEN + 1];
    struct asset_query q = {0};
    struct errbuf eb = {0};
    struct insight *in = NULL;
    struct store_filter included = {"client.included", "eq", "true"};
    struct flight_result res;
    json_t *rows = NULL;
    int64_t version = 0, now = clock_now();
    long long days = INSIGHT_STALE_DAYS;
    int keyed, rc, ticket = -1;

    if (arg != NULL) {
        char *end;

        errno = 0;
        days = strtoll(arg, &end, 10);
        if (errno != 0 || end == arg || *end != '\0' || days < 1 || days > INSIGHT_MAX_DAYS) {
            api_reply_error(resp, 400, "invalid_request", "Invalid request",
                            "stale_days is a whole number of days from 1 to 3650");
            return;
        }
    }
    snprintf(key, sizeof key, "insights;%" PRId64 ";%lld;%" PRId64, account, days,
             now / INSIGHT_CACHE_S);
    keyed = store_data_version(req->st, &version, &eb) == ERR_OK; /* as in hardware_list */
    if (keyed && cached_answer(app, req, resp, key, strlen(key), version, etag))
        return;
    if (keyed) {
        snprintf(fkey, sizeof fkey, "%s;%" PRId64, key, version);
        switch (flight_begin(&insight_flight, fkey, strlen(fkey), (int64_t)INSIGHT_WAIT_S * 1000,
                             &res, &ticket)) {
        case FLIGHT_RESULT: /* the answer another request just rendered */
            resp->status = 200;
            resp->content_type = "application/json";
            buf_reset(&resp->body);
            buf_add(&resp->body, res.bytes, res.len);
            httpd_response_header(resp, "ETag", etag);
            free(res.bytes);
            return;
        case FLIGHT_LEADER: /* a flight may have filed it since the lookup above */
            if (cached_answer(app, req, resp, key, strlen(key), version, etag)) {
                flight_finish(&insight_flight, ticket, resp->status == 200 && resp->ext != NULL, 0,
                              resp->ext, resp->ext_len);
                return;
            }
            break;
        case FLIGHT_ALONE:
            break;
        }
    }
    in = insight_new(now, (int)days);
    q.account_id = account;
    /* Excluded clients are no longer synced: not counted (their devices: filter[client.included]).
     */
    q.filters = &included;
    q.nfilters = 1;
    rc = store_assets_each(req->st, &q, insight_collect, in, &eb);
    if (rc != ERR_OK) {
        api_reply_err(resp, rc, &eb);
        goto out;
    }
    rows = json_array();
    for (size_t i = 0; i < insight_count(in); i++)
        json_array_append_new(rows, insight_to_json(in, i));
    api_reply_json(resp, 200,
                   json_pack("{s:o, s:I, s:n, s:I}", "data", rows, "total_count",
                             (json_int_t)insight_count(in), "next_cursor", "stale_days",
                             (json_int_t)days));
    if (keyed && resp->status == 200) {
        pagecache_put(app->pages, key, strlen(key), version, resp->body.data, resp->body.len);
        httpd_response_header(resp, "ETag", etag);
    }
out:
    /* The waiters get the answer, or render it themselves after a failure. */
    flight_finish(&insight_flight, ticket, resp->status == 200 && buf_error(&resp->body) == ERR_OK,
                  0, resp->body.data, resp->body.len);
    insight_free(in);
}

/* ---- routes (router.h checks sign-in, CSRF and roles before any of these runs) ---------- */

static void
healthz_route(const struct route_call *c)
{
    if (c->req->st == NULL) {
        api_reply_json(c->resp, 503, json_pack("{s:s}", "status", "database unavailable"));
        return;
    }
    api_reply_json(c->resp, 200, json_pack("{s:s}", "status", "ok"));
}

static void
metrics_get(const struct route_call *c)
{
    metrics_route(c->app, c->req, c->resp, c->p->account_id);
}

static void
openapi_get(const struct route_call *c)
{
    c->resp->status = 200;
    c->resp->content_type = "application/json";
    buf_reset(&c->resp->body);
    buf_addstr(&c->resp->body, openapi_document(API_PAGE_DEFAULT, API_PAGE_MAX));
}

static void
clients_get(const struct route_call *c)
{
    send_list(c->req, c->resp, "clients", c->p->account_id, 0);
}

static void
clients_csv(const struct route_call *c)
{
    csv_export(c->req, c->resp, "clients", c->p->account_id);
}

static void
hardware_list_get(const struct route_call *c)
{
    hardware_list(c->app, c->req, c->resp, c->p->account_id);
}

static void
hardware_csv(const struct route_call *c)
{
    csv_export(c->req, c->resp, "hardware", c->p->account_id);
}

static void
hardware_jsonl(const struct route_call *c)
{
    csv_export_as(c->req, c->resp, "hardware", c->p->account_id, 1);
}

static void
hardware_one(const struct route_call *c)
{
    hardware_get(c->req, c->resp, c->p->account_id, c->id[0]);
}

static void
software_get(const struct route_call *c)
{
    send_list(c->req, c->resp, "software", c->p->account_id, 0);
}

static void
software_csv(const struct route_call *c)
{
    csv_export(c->req, c->resp, "software", c->p->account_id);
}

static void
software_one(const struct route_call *c)
{
    one_row(c->req, c->resp, "software", c->p->account_id, c->id[0], "software title", NULL);
}

static void
software_devices(const struct route_call *c)
{
    if (!row_exists(c->req->st, "software", c->p->account_id, c->id[0])) {
        api_reply_error(c->resp, 404, "not_found", "Not found",
                        "this software title does not exist");
        return;
    }
    send_list(c->req, c->resp, "software_devices", c->p->account_id, c->id[0]);
}

/* Which device has which title; include_retired=true adds removed installs and those of
 * retired devices. */
static void
installs_get(const struct route_call *c)
{
    const char *r = httpd_arg(c->req, "include_retired");

    send_list(c->req, c->resp, r != NULL && strcmp(r, "true") == 0 ? "installs_all" : "installs",
              c->p->account_id, 0);
}

static void
integrations_get(const struct route_call *c)
{
    integrations_list(c->app, c->req, c->resp, c->p->account_id);
}

static void
integration_post(const struct route_call *c)
{
    integration_create_route(c->app, c->req, c->resp, c->p->account_id);
}

static void
integration_get(const struct route_call *c)
{
    integration_reply(c->app, c->req, c->resp, c->p->account_id, c->id[0], 200, NULL);
}

static void
integration_patch(const struct route_call *c)
{
    integration_patch_route(c->app, c->req, c->resp, c->p->account_id, c->id[0]);
}

static void
integration_rotate(const struct route_call *c)
{
    integration_rotate_route(c->app, c->req, c->resp, c->p->account_id, c->id[0]);
}

static void
integration_sync(const struct route_call *c)
{
    integration_sync_route(c->app, c->req, c->resp, c->p->account_id, c->id[0]);
}

static void
sync_runs_get(const struct route_call *c)
{
    send_list(c->req, c->resp, "sync_runs", c->p->account_id, 0);
}

static void
sync_run_get(const struct route_call *c)
{
    one_row(c->req, c->resp, "sync_runs", c->p->account_id, c->id[0], "sync run",
            ((struct api_app *)c->app)->sched);
}

static void
insights_get(const struct route_call *c)
{
    insights_answer(c->app, c->req, c->resp, c->p->account_id);
}

static void
me_get(const struct route_call *c)
{
    const struct auth_principal *p = c->p;

    api_reply_json(c->resp, 200,
                   json_pack("{s:{s:s, s:s, s:I}}", "data", "name", p->name, "role",
                             p->role == AUTH_ADMIN ? "admin" : "viewer", "account_id",
                             (json_int_t)p->account_id));
}

#define ADMIN_ONLY "only admins (or admin API keys) can change integrations"

static const struct route routes[] = {
    {"GET", "/healthz", healthz_route, AUTH_NONE, 0, ROUTE_API, NULL},
    {"GET", "/metrics", metrics_get, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/openapi.json", openapi_get, AUTH_NONE, 0, ROUTE_API, NULL},
    {"GET", "/api/v1/clients", clients_get, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/api/v1/clients.csv", clients_csv, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/api/v1/clients/{id}", api_client_get, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/api/v1/assets/hardware", hardware_list_get, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/api/v1/assets/hardware.csv", hardware_csv, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/api/v1/assets/hardware.jsonl", hardware_jsonl, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/api/v1/assets/hardware/{id}", hardware_one, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/api/v1/assets/software", software_get, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/api/v1/assets/software.csv", software_csv, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/api/v1/assets/software/{id}", software_one, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/api/v1/assets/software/{id}/devices", software_devices, AUTH_READ, 0, ROUTE_API,
     NULL},
    {"GET", "/api/v1/assets/installs", installs_get, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/api/v1/assets/products", api_software_products_get, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/api/v1/assets/products/{id}", api_software_product_get, AUTH_READ, 0, ROUTE_API,
     NULL},
    {"GET", "/api/v1/assets/products/{id}/devices", api_software_product_devices_get, AUTH_READ, 0,
     ROUTE_API, NULL},
    {"GET", "/api/v1/integrations", integrations_get, AUTH_READ, 0, ROUTE_API, NULL},
    {"POST", "/api/v1/integrations", integration_post, AUTH_ADMIN, 1, ROUTE_API, ADMIN_ONLY},
    {"GET", "/api/v1/integrations/{id}", integration_get, AUTH_READ, 0, ROUTE_API, NULL},
    {"PATCH", "/api/v1/integrations/{id}", integration_patch, AUTH_ADMIN, 1, ROUTE_API, ADMIN_ONLY},
    {"POST", "/api/v1/integrations/{id}/rotate-secret", integration_rotate, AUTH_ADMIN, 1,
     ROUTE_API, ADMIN_ONLY},
    {"POST", "/api/v1/integrations/{id}/sync", integration_sync, AUTH_ADMIN, 1, ROUTE_API,
     ADMIN_ONLY},
    {"GET", "/api/v1/sync-runs", sync_runs_get, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/api/v1/sync-runs/{id}", sync_run_get, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/api/v1/insights", insights_get, AUTH_READ, 0, ROUTE_API, NULL},
    {"GET", "/api/v1/me", me_get, AUTH_READ, 0, ROUTE_API, NULL},
    {"PATCH", "/api/v1/clients/{id}", api_client_patch, AUTH_ADMIN, 1, ROUTE_API,
     "only admins (or admin API keys) can change clients"},
    {"POST", "/api/v1/clients/{id}/sync", api_client_sync, AUTH_ADMIN, 1, ROUTE_API,
     "only admins (or admin API keys) can start syncs"},
};

const struct route *
api_routes(size_t *n)
{
    *n = sizeof routes / sizeof routes[0];
    return routes;
}

void
api_refuse(void *app, struct httpd_request *req, struct httpd_response *resp,
           const struct auth_principal *p, const struct route_denial *d)
{
    (void)app;
    (void)p;
    switch (d->why) {
    case ROUTE_UNAUTHENTICATED: {
        struct errbuf eb = {0};

        if (req->st == NULL) { /* this thread could not open the database (httpd.c) */
            api_reply_error(resp, 503, "unavailable", "Service unavailable",
                            "The database cannot be opened; try again later.");
            httpd_response_header(resp, "Retry-After", "5");
            break;
        }
        if (d->code == ERR_AUTH)
            httpd_response_header(resp, "WWW-Authenticate", "ApiKey header=\"x-api-key\"");
        eb.code = d->code;
        snprintf(eb.msg, sizeof eb.msg, "%s", d->msg != NULL ? d->msg : "");
        api_reply_err(resp, d->code, &eb);
        break;
    }
    case ROUTE_CSRF:
        api_reply_error(resp, 403, "csrf", "Forbidden",
                        "missing or wrong X-CSRF-Token for this session");
        break;
    case ROUTE_FORBIDDEN:
    case ROUTE_CROSS_SITE:
        api_reply_error(resp, 403, "forbidden", "Forbidden",
                        d->msg != NULL ? d->msg : "your role does not allow this");
        break;
    case ROUTE_BAD_METHOD:
        httpd_response_header(resp, "Allow", d->allow != NULL ? d->allow : "");
        api_reply_error(resp, 405, "method_not_allowed", "Method not allowed",
                        "this route does not take this method (see the Allow header)");
        break;
    case ROUTE_THROTTLED: {
        char secs[16];

        snprintf(secs, sizeof secs, "%d", d->retry_after_s > 0 ? d->retry_after_s : 1);
        httpd_response_header(resp, "Retry-After", secs);
        api_reply_error(resp, 429, "too_many_requests", "Too many requests",
                        "this API key is over its rate limit (see RateLimit-* and Retry-After)");
        break;
    }
    case ROUTE_NOT_FOUND:
    default:
        api_reply_error(resp, 404, "not_found", "Not found", "no such route (see /openapi.json)");
        break;
    }
}
