/* sync_appcat.c - per-device phases: a tenant's catalogue of detected apps, the $batch calls
 * for hardware detail and detected apps, the per-device app pages, and the device index by
 * Intune id. */
#include "sync_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <sodium.h>

#include "clock.h"
#include "graph.h"
#include "hash.h"
#include "http.h"
#include "log.h"
#include "mem.h"

/* ---- per-device phases: hardware detail and detected apps ---------------------------------- */

#define MAX_TENANT_BATCHES 4
#define MAX_APP_PAGES      50

static uint64_t
str_hash_ci(const char *s)
{
    uint64_t h = 1469598103934665603ULL;

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;

        h = (h ^ (c >= 'A' && c <= 'Z' ? c + 32u : c)) * 1099511628211ULL;
    }
    return h;
}

void
sync_appcat_clear(struct appcat *c)
{
    for (size_t i = 0; i < c->n; i++)
        detected_app_clear(&c->apps[i]);
    free(c->apps);
    free(c->slots);
    memset(c, 0, sizeof *c);
}

/* The slot of the app with Graph id id[0..len), or the empty slot where it belongs. */
static size_t
appcat_slot(const struct appcat *c, const char *id, size_t len)
{
    size_t mask = c->nslots - 1, i;

    for (i = hash_bytes(id, len) & mask; c->slots[i] != 0; i = (i + 1) & mask) {
        const char *have = c->apps[c->slots[i] - 1].id;
        if (strncmp(have, id, len) == 0 && have[len] == '\0')
            break;
    }
    return i;
}

/* The catalogue index of the app with Graph id id[0..len) (need not be NUL-terminated), or
 * UINT32_MAX. A parser can look the id up before copying the app's strings: nearly every
 * detected app of a tenant is one it has already seen on another device. */
uint32_t
sync_appcat_find(const struct appcat *c, const char *id, size_t len)
{
    size_t i;

    if (c->n == 0)
        return UINT32_MAX;
    i = appcat_slot(c, id, len);
    return c->slots[i] != 0 ? c->slots[i] - 1 : UINT32_MAX;
}

static uint32_t
app_find(void *arg, const char *id, size_t len)
{
    return sync_appcat_find(arg, id, len);
}

/* Takes ownership of *a (cleared on return) and returns its index in the catalogue. An app
 * without id is one graph_batch_parse_known found there already. */
uint32_t
sync_appcat_intern(struct appcat *c, struct detected_app *a)
{
    size_t i, len;
    uint32_t known;

    if (a->id == NULL)
        return a->known;
    len = strlen(a->id);
    known = sync_appcat_find(c, a->id, len);

    if (known != UINT32_MAX) {
        detected_app_clear(a);
        return known;
    }
    if (c->n * 2 >= c->nslots) {
        size_t ns = c->nslots ? c->nslots * 2 : 256;
        uint32_t *slots = xcalloc(ns, sizeof *slots);

        for (size_t k = 0; k < c->n; k++) {
            i = hash_bytes(c->apps[k].id, strlen(c->apps[k].id)) & (ns - 1);
            while (slots[i] != 0)
                i = (i + 1) & (ns - 1);
            slots[i] = (uint32_t)k + 1;
        }
        free(c->slots);
        c->slots = slots;
        c->nslots = ns;
    }
    c->apps = mem_grow(c->apps, &c->cap, c->n + 1, sizeof *c->apps);
    i = appcat_slot(c, a->id, len);
    c->apps[c->n] = *a;
    memset(a, 0, sizeof *a);
    c->slots[i] = (uint32_t)c->n + 1;
    return (uint32_t)c->n++;
}

void
sync_devapps_add(struct devapps *d, uint32_t idx)
{
    size_t cap = d->cap; /* 32-bit counts keep the per-device list small */

    for (uint32_t i = 0; i < d->n; i++)
        if (d->idx[i] == idx)
            return;
    d->idx = mem_grow(d->idx, &cap, (size_t)d->n + 1, sizeof *d->idx);
    d->cap = (uint32_t)cap;
    d->idx[d->n++] = idx;
}

void
sync_apps_problem(struct tenant *t, const char *what, long status)
{
    if (!t->apps_failed)
        snprintf(t->sync_apps_problem, sizeof t->sync_apps_problem, "%s (HTTP %ld)", what, status);
    t->apps_failed = 1;
}

/* Adds one parsed detectedApps page to device dev, taking the apps; rc/eb say whether the body
 * was understood. */
static void
apps_page(struct tenant *t, size_t dev, int rc, const struct errbuf *eb, struct detected_app *apps,
          size_t n)
{
    if (rc != ERR_OK) {
        sync_apps_problem(t, "a detected-apps page was not understood", 200);
        log_warn("detected apps not understood tenant=%s: %s", t->cust.tenant_id, eb->msg);
        return;
    }
    for (size_t i = 0; i < n; i++)
        sync_devapps_add(&t->dapps[dev], sync_appcat_intern(&t->cat, &apps[i]));
}

static void
detail_item(struct tenant *t, size_t dev, const struct graph_batch_item *it)
{
    struct device *d = &t->devs[dev];

    if (it->memory > 0)
        d->memory = it->memory;
    if (it->ethernet_mac != NULL)
        device_set_str(d, &d->ethernet_mac, it->ethernet_mac, strlen(it->ethernet_mac));
}

static void app_page_done(struct call *c, const struct http_resp *r);

static void
app_page_request(struct tenant *t, size_t dev, char *url, int page)
{
    struct call *c = sync_graph_call_new(t, url, app_page_done);

    c->dev = dev;
    c->page = page;
    t->busy++;
    sync_call_submit(c);
}

static void
app_page_done(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    size_t dev = c->dev;
    struct detected_app *apps = NULL;
    size_t n = 0, cap = 0;
    char *next = NULL;
    struct errbuf eb = {0};
    int rc = ERR_PARSE;

    t->busy--;
    if (t->state != TS_RUNNING) { /* the tenant failed meanwhile */
        sync_call_free(c);
        return;
    }
    if (r->err == ERR_OK && r->status == 200)
        rc = graph_apps_parse(r->body, r->body_len, &apps, &n, &cap, &next, &eb);
    if (rc == ERR_PARSE) { /* a failed request, or a body that is not JSON */
        sync_apps_problem(t, "a detected-apps page failed", r->status);
        t->fetched[dev] = 0;
    } else {
        apps_page(t, dev, rc, &eb, apps, n);
    }
    if (next != NULL) {
        if (graph_link_allowed(t->eng->cfg->graph_url, next) && c->page < MAX_APP_PAGES) {
            app_page_request(t, dev, next, c->page + 1);
            next = NULL;
        } else {
            sync_apps_problem(
                t, "a detected-apps next link was not followed (another host, or over 50 pages)",
                200);
            t->fetched[dev] = 0;
        }
    }
    free(next);
    free(apps);
    sync_call_free(c);
    sync_phase_pump(t);
}

static void
requeue_timer(void *arg)
{
    struct call *c = arg; /* a holder call carrying the items to requeue */
    struct tenant *t = c->t;

    if (t->state != TS_RUNNING) {
        t->busy--;
        sync_call_free(c);
        return;
    }
    for (int i = 0; i < c->n_items; i++)
        t->pending[t->npending++] = c->items[i];
    t->busy--;
    sync_call_free(c);
    sync_phase_pump(t);
}

/* The token refresh started by $batch item 401s finished (or failed the tenant): the items
 * waiting for it go again. */
static void
batch_token_done(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    struct call *w = c->then;

    c->then = NULL;
    if (t->auth_wait == w)
        t->auth_wait = NULL;
    t->refreshed_ms = clock_mono_ms();
    sync_token_done(c, r); /* caches the new token, or fails the tenant */
    http_timer(t->eng->http, 0, requeue_timer, w);
}

/* A $batch item of call c answered 401: the token may have gone stale under the batch, as for
 * a whole-response 401. The first such item refreshes the tenant's token once; items of
 * batches sent before that refresh finished go again with the new token. An item of a batch
 * sent afterwards is a real refusal (returns 0); else dev is requeued (returns 1). */
static int
batch_item_unauthorized(struct tenant *t, const struct call *c, size_t dev)
{
    struct engine *eng = t->eng;

    if (t->auth_wait == NULL) {
        struct call *tc;

        if (t->item_refreshed) {
            if (c->sent_ms >= t->refreshed_ms)
                return 0;
            t->pending[t->npending++] = dev;
            return 1;
        }
        t->item_refreshed = 1;
        t->auth_wait = sync_call_new(eng, t, CALL_GRAPH, NULL, NULL);
        t->busy++;
        log_info("batch item unauthorized tenant=%s: refreshing the token once", t->cust.tenant_id);
        tc = sync_token_call_new(eng, t, c->token_tenant, c->client_id, c->secret, c->audience,
                                 t->auth_wait);
        tc->done = batch_token_done;
        /* Through a zero-delay timer: batch_done is still reading the tenant's state. */
        http_timer(eng->http, 0, sync_retry_timer, tc);
    }
    t->auth_wait->items = xrealloc(t->auth_wait->items, (size_t)(t->auth_wait->n_items + 1) *
                                                            sizeof *t->auth_wait->items);
    t->auth_wait->items[t->auth_wait->n_items++] = dev;
    return 1;
}

static void
batch_done(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    struct engine *eng = t->eng;
    struct graph_batch b = {0};
    struct errbuf eb = {0};
    struct call *retry = NULL;
    int64_t delay = -1;

    t->busy--;
    if (t->state != TS_RUNNING) {
        sync_call_free(c);
        return;
    }
    if (r->err != ERR_OK || r->status != 200 ||
        (t->phase == PHASE_DETAIL
             ? graph_batch_parse(r->body, r->body_len, GRAPH_BATCH_DETAIL, &b, &eb)
             : graph_batch_parse_known(r->body, r->body_len, app_find, &t->cat, &b, &eb)) !=
            ERR_OK) {
        if (t->phase == PHASE_APPS)
            sync_apps_problem(t, "a $batch of detected-apps requests failed", r->status);
        for (int i = 0; i < c->n_items && t->phase == PHASE_APPS; i++)
            t->fetched[c->items[i]] = 0;
        goto out;
    }
    for (size_t i = 0; i < b.n; i++) {
        struct graph_batch_item *it = &b.items[i];
        char *end;
        long k = strtol(it->id, &end, 10);
        size_t dev;

        if (*end != '\0' || k < 0 || k >= c->n_items)
            continue;
        dev = c->items[k];
        if (it->status == 429) {
            eng->sum.throttled++;
            t->throttled++;
        }
        if (it->status == 200 && it->has_body) {
            if (t->phase == PHASE_DETAIL) {
                detail_item(t, dev, it);
            } else {
                char *next = it->next_link;

                apps_page(t, dev, it->apps_rc, &it->apps_eb, it->apps, it->napps);
                it->napps = 0; /* interned or cleared */
                it->next_link = NULL;
                t->fetched[dev] = 1;
                if (next != NULL) {
                    if (graph_link_allowed(eng->cfg->graph_url, next))
                        app_page_request(t, dev, next, 2);
                    else
                        free(next);
                }
            }
        } else if ((it->status == 429 && it->retry_after < 0 &&
                    t->throttles[dev] < ITEM_THROTTLES_MAX) ||
                   (sync_status_retryable(it->status) && t->tries[dev] + 1 < eng->max_attempts)) {
            /* Throttled or failing items go into a new batch after their Retry-After, or
             * Intune's window (sync_tenant_throttled), or a backoff. */
            int64_t d;

            if (it->status == 429 && it->retry_after < 0) {
                t->throttles[dev]++;
                d = sync_tenant_throttled(t, -1);
            } else {
                t->tries[dev]++;
                d = it->status == 429      ? sync_tenant_throttled(t, it->retry_after)
                    : it->retry_after >= 0 ? (int64_t)(it->retry_after * 1000.0)
                                           : sync_backoff_ms(t->tries[dev] + 1);
            }
            if (retry == NULL) {
                retry = sync_call_new(eng, t, CALL_GRAPH, NULL, NULL);
                retry->items = xcalloc(GRAPH_BATCH_MAX, sizeof *retry->items);
            }
            retry->items[retry->n_items++] = dev;
            if (d > delay)
                delay = d;
        } else if (it->status == 401 && batch_item_unauthorized(t, c, dev)) {
            /* requeued after a token refresh */
        } else if (it->status == 404) {
            /* The device left Intune since the listing: it has no apps to read. */
            if (t->phase == PHASE_APPS)
                t->fetched[dev] = 1;
        } else if (t->phase == PHASE_APPS) {
            sync_apps_problem(t, "reading detected apps failed", it->status);
        }
    }
    if (retry != NULL) {
        if (delay > RETRY_AFTER_MAX_MS)
            delay = RETRY_AFTER_MAX_MS;
        t->busy++;
        http_timer(eng->http, delay + (int64_t)randombytes_uniform(250), requeue_timer, retry);
    }
out:
    graph_batch_clear(&b);
    sync_call_free(c);
    sync_phase_pump(t);
}

void
sync_phase_pump(struct tenant *t)
{
    struct engine *eng = t->eng;

    if (t->state != TS_RUNNING)
        return;
    while (!sync_stop_requested && t->busy < MAX_TENANT_BATCHES && t->npending > 0) {
        const char *ids[GRAPH_BATCH_MAX], *urls[GRAPH_BATCH_MAX];
        char idbuf[GRAPH_BATCH_MAX][16];
        char *urlbuf[GRAPH_BATCH_MAX];
        struct call *c;
        int n = 0;

        c = sync_graph_call_new(t, xasprintf("%s/beta/$batch", eng->cfg->graph_url), batch_done);
        c->bulk = 1;
        c->items = xcalloc(GRAPH_BATCH_MAX, sizeof *c->items);
        while (n < GRAPH_BATCH_MAX && t->npending > 0) {
            size_t dev = t->pending[--t->npending];

            c->items[n] = dev;
            snprintf(idbuf[n], sizeof idbuf[n], "%d", n);
            ids[n] = idbuf[n];
            if (t->phase == PHASE_DETAIL)
                urlbuf[n] = xasprintf("/deviceManagement/managedDevices/%s?$select=id,"
                                      "hardwareInformation,physicalMemoryInBytes,"
                                      "ethernetMacAddress",
                                      t->devs[dev].intune_id);
            else
                urlbuf[n] = xasprintf("/deviceManagement/managedDevices/%s/detectedApps"
                                      "?$select=id,displayName,version,publisher,platform,"
                                      "sizeInByte",
                                      t->devs[dev].intune_id);
            urls[n] = urlbuf[n];
            n++;
        }
        c->n_items = n;
        c->units = n;
        c->body = graph_batch_body(ids, urls, (size_t)n);
        c->body_len = strlen(c->body);
        for (int i = 0; i < n; i++)
            free(urlbuf[i]);
        t->busy++;
        sync_call_submit(c);
        if (t->state != TS_RUNNING)
            return;
    }
    if (t->busy == 0 && (t->npending == 0 || sync_stop_requested))
        sync_phase_next(t);
}

/* Index of the tenant's device with this Intune id (any case), or SIZE_MAX. */
size_t
sync_devmap_find(const struct tenant *t, const char *intune_id)
{
    if (t->devmap == NULL)
        return SIZE_MAX;
    for (size_t i = str_hash_ci(intune_id) & t->devmap_mask; t->devmap[i] != 0;
         i = (i + 1) & t->devmap_mask) {
        size_t k = t->devmap[i] - 1;

        if (strcasecmp(t->devs[k].intune_id, intune_id) == 0)
            return k;
    }
    return SIZE_MAX;
}

void
sync_devmap_build(struct tenant *t)
{
    size_t ns = 16;

    while (ns < t->ndevs * 2)
        ns *= 2;
    t->devmap = xcalloc(ns, sizeof *t->devmap);
    t->devmap_mask = ns - 1;
    for (size_t i = 0; i < t->ndevs; i++) {
        size_t k = str_hash_ci(t->devs[i].intune_id) & t->devmap_mask;

        while (t->devmap[k] != 0)
            k = (k + 1) & t->devmap_mask;
        t->devmap[k] = (uint32_t)i + 1;
    }
}
