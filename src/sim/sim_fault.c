/* sim_fault.c - injected faults and throttling windows of `memsync sim`, shared by every
 * service.
 */
#include "simsrv.h"

#include <pthread.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "mem.h"
#include "simworld.h"

static uint64_t
win_hash_of(size_t i)
{
    return sim_str_hash(g.wins[i].key, NULL);
}

/* Finds and consumes a matching fault; copies it to *out. Returns 1 when one applies. */
int
sim_fault_take(enum route rt, const char *tenant, int page, struct simw_fault *out)
{
    struct simworld *w = g.w;
    int hit = 0;

    pthread_mutex_lock(&g.mu);
    for (size_t i = 0; i < w->nfaults; i++) {
        struct simw_fault *f = &w->faults[i];
        if (f->remaining == 0)
            continue;
        if (strcmp(f->route, "*") != 0 && strcmp(f->route, sim_route_names[rt]) != 0 &&
            !(sim_in_batch_item && strcmp(f->route, "batch_item") == 0))
            continue;
        if (strcmp(f->tenant, "*") != 0 && (tenant == NULL || strcasecmp(f->tenant, tenant) != 0))
            continue;
        if (f->page > 0 && f->page != page)
            continue;
        if (f->until_ms > 0 && clock_mono_ms() >= f->until_ms)
            continue;
        /* A share of the matching requests, drawn in arrival order from the fault's seeded
         * generator: Intune's 429s without Retry-After come at a rate (MSEndpointMgr "A
         * beginners guide to Microsoft Graph API rate limiting in Intune"). */
        if (f->rate > 0 && (double)simw_rand_range(&f->rng, 1000000) >= f->rate * 1000000.0)
            continue;
        if (f->remaining > 0)
            f->remaining--;
        *out = *f;
        hit = 1;
        break;
    }
    pthread_mutex_unlock(&g.mu);
    return hit;
}

/* Fixed-window counter; returns seconds to wait (> 0) when over the limit, else 0. */
/* `others`: requests other apps make at the start of each window (TH_TENANT only). */
double
sim_throttle_hit(const char *key, enum throttle_kind kind, long others)
{
    int64_t now = clock_mono_ms();
    double wait = 0;
    size_t i;
    long limit, window_ms;

    pthread_mutex_lock(&g.mu);
    limit = kind == TH_INTUNE   ? g.intune_limit
            : kind == TH_GLOBAL ? g.global_limit
            : kind == TH_DAPPS  ? g.dapps_limit
            : kind == TH_TENANT ? g.tenant_limit
                                : g.pc_limit;
    window_ms = kind == TH_INTUNE || kind == TH_DAPPS || kind == TH_TENANT ? g.intune_window_ms
                : kind == TH_GLOBAL                                        ? g.global_window_ms
                                                                           : g.pc_window_ms;
    if (!g.throttle || limit <= 0) {
        pthread_mutex_unlock(&g.mu);
        return 0;
    }
    uint64_t h = sim_str_hash(key, NULL);
    i = g.nwins;
    for (size_t j = g.win_idx.cap ? (size_t)h & (g.win_idx.cap - 1) : 0;
         g.win_idx.cap && g.win_idx.slot[j]; j = (j + 1) & (g.win_idx.cap - 1)) {
        size_t p = g.win_idx.slot[j] - 1;
        if (strcmp(g.wins[p].key, key) == 0) {
            i = p;
            break;
        }
    }
    if (i == g.nwins) {
        g.wins = mem_grow(g.wins, &g.capwins, g.nwins + 1, sizeof(*g.wins));
        memset(&g.wins[i], 0, sizeof g.wins[i]);
        snprintf(g.wins[i].key, sizeof g.wins[i].key, "%s", key);
        g.wins[i].start_ms = now;
        g.wins[i].count = kind == TH_TENANT ? others : 0;
        g.nwins++;
        sim_sidx_reserve(&g.win_idx, g.nwins, win_hash_of);
        sim_sidx_put(&g.win_idx, h, i);
    }
    struct throttle_win *tw = &g.wins[i];
    if (now - tw->start_ms >= window_ms) {
        tw->start_ms = now;
        tw->count = kind == TH_TENANT ? others : 0; /* the tenant's other apps */
    }
    /* usage keeps accruing while throttled, as Microsoft documents */
    tw->count++;
    if (tw->count > limit) {
        wait = (double)(tw->start_ms + window_ms - now) / 1000.0;
        if (wait < 0.001)
            wait = 0.001;
    }
    pthread_mutex_unlock(&g.mu);
    return wait;
}

/* Applies an injected fault to the response about to be built. Returns a replacement response
 * (error kinds) or NULL and sets mode/delay on *mode_out. */
struct resp *
sim_fault_apply(const struct simw_fault *f, int graph, enum simw_fault_kind *mode, int *delay)
{
    switch (f->kind) {
    case SIMW_FAULT_STATUS: {
        int st = f->status ? f->status : 500;
        const char *code = f->code[0]  ? f->code
                           : st == 503 ? "ServiceUnavailable"
                           : st == 403 ? "Forbidden"
                           : st == 401 ? "InvalidAuthenticationToken"
                           : st == 404 ? "ResourceNotFound"
                           : st == 400 ? "BadRequest"
                                       : "InternalServerError";
        const char *msg = f->message[0] ? f->message : "An internal server error occurred.";
        struct resp *r = graph ? sim_graph_error(st, code, msg) : sim_pc_error(st, code, msg);
        if (st == 503 && f->retry_after >= 0) {
            char ra[32];
            snprintf(ra, sizeof ra, "%g", f->retry_after);
            sim_resp_hdr(r, "Retry-After", ra);
        }
        if (f->bom)
            r->mode = SIMW_FAULT_BOM;
        return r;
    }
    case SIMW_FAULT_429:
        if (graph) {
            struct resp *r = sim_graph_429(f->retry_after);
            if (f->bom)
                r->mode = SIMW_FAULT_BOM;
            return r;
        }
        {
            struct resp *r = sim_pc_429(f->retry_after < 0 ? 1 : (int)(f->retry_after + 0.999));
            if (f->retry_after < 0) {
                free(r->hdrs[0].value);
                r->nhdrs = 0;
            }
            if (f->bom)
                r->mode = SIMW_FAULT_BOM;
            return r;
        }
    case SIMW_FAULT_BOM:
        /* Partner Center answers (and Graph error bodies) that start with a UTF-8 byte-order
         * mark: Azure/msrest-for-python #144; microsoftgraph/microsoft-graph-docs #679;
         * Azure/azure-sdk-for-js #6780. */
        *mode = f->kind;
        return NULL;
    case SIMW_FAULT_LATENCY:
        *delay = f->latency_ms;
        return NULL;
    case SIMW_FAULT_DROP:
    case SIMW_FAULT_TRUNCATE:
    case SIMW_FAULT_SLOW:
        *mode = f->kind;
        return NULL;
    case SIMW_FAULT_SHORT:
    case SIMW_FAULT_RENAME: /* listing faults: graph_request applies them */
    case SIMW_FAULT_NONE:
        break;
    }
    return NULL;
}
