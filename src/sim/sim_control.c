/* sim_control.c - the /_sim/ control API of `memsync sim` (world, stats, request log, control
 * ops), statistics, the request log and scenarios.
 */
#include "simsrv.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "err.h"
#include "log.h"
#include "mem.h"
#include "simworld.h"

/* --- statistics and the request log (under g.mu) -------------------------------------------- */

static uint64_t
stat_hash_of(size_t i)
{
    return sim_str_hash(g.stats[i].route, g.stats[i].tenant);
}

void
sim_stat_count(enum route rt, const char *tenant, int throttled)
{
    const char *rn = sim_route_names[rt];

    if (tenant == NULL || *tenant == '\0')
        tenant = "-";
    pthread_mutex_lock(&g.mu);
    g.total_requests++;
    g.throttled += throttled != 0;
    uint64_t h = sim_str_hash(rn, tenant);
    size_t i = g.nstats;
    for (size_t j = g.stat_idx.cap ? (size_t)h & (g.stat_idx.cap - 1) : 0;
         g.stat_idx.cap && g.stat_idx.slot[j]; j = (j + 1) & (g.stat_idx.cap - 1)) {
        size_t p = g.stat_idx.slot[j] - 1;
        if (strcmp(g.stats[p].route, rn) == 0 && strcmp(g.stats[p].tenant, tenant) == 0) {
            i = p;
            break;
        }
    }
    if (i == g.nstats) {
        g.stats = mem_grow(g.stats, &g.capstats, g.nstats + 1, sizeof(*g.stats));
        memset(&g.stats[i], 0, sizeof g.stats[i]);
        snprintf(g.stats[i].route, sizeof g.stats[i].route, "%s", rn);
        snprintf(g.stats[i].tenant, sizeof g.stats[i].tenant, "%s", tenant);
        g.nstats++;
        sim_sidx_reserve(&g.stat_idx, g.nstats, stat_hash_of);
        sim_sidx_put(&g.stat_idx, h, i);
    }
    g.stats[i].count++;
    pthread_mutex_unlock(&g.mu);
}

static void
reqlog_copy(char *dst, size_t cap, struct MHD_Connection *c, const char *name)
{
    const char *v = c != NULL ? MHD_lookup_connection_value(c, MHD_HEADER_KIND, name) : NULL;

    snprintf(dst, cap, "%s", v != NULL && strlen(v) < cap ? v : v != NULL ? "(too long)" : "");
}

/* Empties the log and turns it on or off. Caller holds g.mu. */
static void
reqlog_clear(int on)
{
    g.reqlog_seq = 0;
    g.reqlog_t0 = clock_mono_ms();
    g.reqlog_off = !on;
}

/* Records one answered request, with the support headers it carried so tests can check that a
 * client sends them (and reuses MS-RequestId on a retry, as Partner Center asks). `c` is NULL for
 * a $batch item: its headers are the batch's. */
void
sim_reqlog_add(struct MHD_Connection *c, enum route rt, const char *tenant, const char *method,
               const struct resp *r)
{
    struct reqlog_ent e;

    memset(&e, 0, sizeof e);
    e.route = (unsigned char)rt;
    snprintf(e.tenant, sizeof e.tenant, "%s", tenant != NULL ? tenant : "-");
    snprintf(e.method, sizeof e.method, "%s", method != NULL ? method : "");
    e.status = r->status;
    e.batch_item = c == NULL;
    for (int i = 0; i < r->nhdrs; i++)
        e.retry_after |= strcmp(r->hdrs[i].name, "Retry-After") == 0;
    reqlog_copy(e.client_request_id, sizeof e.client_request_id, c, "client-request-id");
    reqlog_copy(e.ms_request_id, sizeof e.ms_request_id, c, "MS-RequestId");
    reqlog_copy(e.ms_correlation_id, sizeof e.ms_correlation_id, c, "MS-CorrelationId");
    reqlog_copy(e.ms_contract_version, sizeof e.ms_contract_version, c, "MS-Contract-Version");
    pthread_mutex_lock(&g.mu);
    if (!g.reqlog_off) {
        if (g.reqlog == NULL) {
            g.reqlog = xcalloc(SIM_REQLOG_MAX, sizeof *g.reqlog);
            if (g.reqlog_seq == 0)
                g.reqlog_t0 = clock_mono_ms();
        }
        e.ms = clock_mono_ms() - g.reqlog_t0;
        e.seq = ++g.reqlog_seq;
        g.reqlog[(e.seq - 1) % SIM_REQLOG_MAX] = e;
    }
    pthread_mutex_unlock(&g.mu);
}

static json_t *
reqlog_json(void)
{
    json_t *a = json_array(), *o;
    uint64_t first;

    pthread_mutex_lock(&g.mu);
    first = g.reqlog_seq > SIM_REQLOG_MAX ? g.reqlog_seq - SIM_REQLOG_MAX : 0;
    for (uint64_t s = first; g.reqlog != NULL && s < g.reqlog_seq; s++) {
        const struct reqlog_ent *e = &g.reqlog[s % SIM_REQLOG_MAX];

        json_array_append_new(
            a, json_pack("{s:I, s:I, s:s, s:s, s:s, s:i, s:b, s:b, s:s, s:s, s:s, s:s}", "seq",
                         (json_int_t)e->seq, "ms", (json_int_t)e->ms, "route",
                         sim_route_names[e->route], "tenant", e->tenant, "method", e->method,
                         "status", e->status, "retry_after", e->retry_after, "batch_item",
                         e->batch_item, "client_request_id", e->client_request_id, "ms_request_id",
                         e->ms_request_id, "ms_correlation_id", e->ms_correlation_id,
                         "ms_contract_version", e->ms_contract_version));
    }
    o = json_pack("{s:b, s:I, s:o}", "enabled", !g.reqlog_off, "dropped", (json_int_t)first,
                  "requests", a);
    pthread_mutex_unlock(&g.mu);
    return o;
}

/* --- control API ---------------------------------------------------------------------------- */

/* Control API for tests: GET /_sim/world, GET /_sim/stats, POST /_sim/control. */

static struct simtenant *
ctl_tenant(json_t *v)
{
    if (json_is_integer(v)) {
        json_int_t i = json_integer_value(v);
        return i >= 0 && (size_t)i < g.w->ntenants ? g.w->tenants[i] : NULL;
    }
    return simw_tenant_by_id(g.w, json_string_value(v));
}

static enum simw_fault_kind
fault_kind_parse(const char *s)
{
    if (s == NULL)
        return SIMW_FAULT_NONE;
    if (strcmp(s, "status") == 0 || strcmp(s, "error") == 0)
        return SIMW_FAULT_STATUS;
    if (strcmp(s, "drop") == 0)
        return SIMW_FAULT_DROP;
    if (strcmp(s, "truncate") == 0)
        return SIMW_FAULT_TRUNCATE;
    if (strcmp(s, "latency") == 0)
        return SIMW_FAULT_LATENCY;
    if (strcmp(s, "429") == 0 || strcmp(s, "throttle") == 0)
        return SIMW_FAULT_429;
    if (strcmp(s, "slow") == 0)
        return SIMW_FAULT_SLOW;
    if (strcmp(s, "bom") == 0)
        return SIMW_FAULT_BOM;
    if (strcmp(s, "short") == 0)
        return SIMW_FAULT_SHORT;
    if (strcmp(s, "rename") == 0 || strcmp(s, "rename_during_listing") == 0)
        return SIMW_FAULT_RENAME;
    return SIMW_FAULT_NONE;
}

/* Adds a fault from its JSON description (control op or scenario). Caller holds g.mu. */
int
sim_fault_add(json_t *o, char *err, size_t errlen)
{
    struct simw_fault f;
    json_t *tv = json_object_get(o, "tenant");
    const char *route = json_string_value(json_object_get(o, "route"));
    json_t *ra = json_object_get(o, "retry_after");
    json_t *cnt = json_object_get(o, "count");

    memset(&f, 0, sizeof f);
    f.kind = fault_kind_parse(json_string_value(json_object_get(o, "kind")));
    if (f.kind == SIMW_FAULT_NONE) {
        snprintf(err, errlen,
                 "unknown fault kind (status, drop, truncate, latency, 429, slow, bom, short, "
                 "rename)");
        return ERR_INVAL;
    }
    if (tv == NULL || (json_is_string(tv) && strcmp(json_string_value(tv), "*") == 0)) {
        snprintf(f.tenant, sizeof f.tenant, "*");
    } else {
        struct simtenant *t = ctl_tenant(tv);
        if (t == NULL && json_is_string(tv) &&
            strcasecmp(json_string_value(tv), g.w->partner_tenant_id) == 0) {
            snprintf(f.tenant, sizeof f.tenant, "%s", g.w->partner_tenant_id);
        } else if (t == NULL) {
            snprintf(err, errlen, "unknown tenant");
            return ERR_NOTFOUND;
        } else {
            snprintf(f.tenant, sizeof f.tenant, "%s", t->id);
        }
    }
    snprintf(f.route, sizeof f.route, "%s", route ? route : "*");
    if (route && strcmp(route, "*") != 0 && strcmp(route, "batch_item") != 0) {
        int ok = 0;
        for (int i = 0; i < R_COUNT; i++)
            ok |= strcmp(sim_route_names[i], route) == 0;
        if (!ok) {
            snprintf(err, errlen, "unknown route '%.40s'", route);
            return ERR_INVAL;
        }
    }
    f.page = (int)json_integer_value(json_object_get(o, "page"));
    f.status = (int)json_integer_value(json_object_get(o, "status"));
    f.latency_ms = (int)json_integer_value(json_object_get(o, "latency_ms"));
    f.keep = (int)json_integer_value(json_object_get(o, "keep"));
    f.retry_after = json_is_number(ra) ? json_number_value(ra) : json_is_null(ra) ? -1 : 2.128;
    f.remaining = json_is_integer(cnt) ? (int)json_integer_value(cnt) : -1;
    f.bom = json_is_true(json_object_get(o, "bom"));
    if (f.remaining == 0)
        f.remaining = -1;
    if (json_integer_value(json_object_get(o, "for_ms")) > 0)
        f.until_ms = clock_mono_ms() + (int64_t)json_integer_value(json_object_get(o, "for_ms"));
    if (json_object_get(o, "rate") != NULL) {
        json_t *rv = json_object_get(o, "rate");

        if (!json_is_number(rv) || json_number_value(rv) <= 0 || json_number_value(rv) > 1) {
            snprintf(err, errlen, "rate must be a number above 0 and at most 1");
            return ERR_INVAL;
        }
        f.rate = json_number_value(rv) < 1 ? json_number_value(rv) : 0;
        uint64_t st = g.w->seed ^ ((uint64_t)(g.w->nfaults + 1) << 32);

        f.rng = simw_rand(&st); /* a stream of its own per fault */
    }
    snprintf(f.code, sizeof f.code, "%s",
             json_string_value(json_object_get(o, "code"))
                 ? json_string_value(json_object_get(o, "code"))
                 : "");
    snprintf(f.message, sizeof f.message, "%s",
             json_string_value(json_object_get(o, "message"))
                 ? json_string_value(json_object_get(o, "message"))
                 : "");
    g.w->faults = xrealloc(g.w->faults, (g.w->nfaults + 1) * sizeof(*g.w->faults));
    g.w->faults[g.w->nfaults++] = f;
    return ERR_OK;
}

static struct simw_app *
ctl_app(json_t *o)
{
    const char *a = json_string_value(json_object_get(o, "app"));
    return a && strcmp(a, "partner") == 0 ? &g.w->partner_app : &g.w->sync_app;
}

void
sim_set_tenant_flags(struct simtenant *t, json_t *o)
{
    json_t *v;

    if ((v = json_object_get(o, "consented")) && json_is_boolean(v))
        t->consented = json_is_true(v);
    if ((v = json_object_get(o, "intune_licensed")) && json_is_boolean(v))
        t->intune_licensed = json_is_true(v);
    if ((v = json_object_get(o, "permission")) && json_is_boolean(v))
        t->permission = json_is_true(v);
    if ((v = json_object_get(o, "exists")) && json_is_boolean(v))
        t->exists = json_is_true(v);
    if ((v = json_object_get(o, "intune_401")) && json_is_boolean(v))
        t->intune_401 = json_is_true(v);
    if ((v = json_object_get(o, "indirect_reseller")) && json_is_boolean(v)) {
        if (json_is_true(v)) {
            uint64_t st = g.w->seed ^ (uint64_t)t->index;
            simw_guid(&st, t->associated_partner);
        } else {
            t->associated_partner[0] = '\0';
        }
    }
    if ((v = json_object_get(o, "associated_partner_id")) && json_is_string(v))
        snprintf(t->associated_partner, sizeof t->associated_partner, "%s", json_string_value(v));
    if ((v = json_object_get(o, "cloud")) && json_is_string(v)) {
        const char *c = json_string_value(v);

        if (strcmp(c, "usgov") == 0 || strcmp(c, "usgovdod") == 0 || strcmp(c, "china") == 0)
            snprintf(t->cloud, sizeof t->cloud, "%s", c);
        else
            t->cloud[0] = '\0';
    }
    /* Graph permissions reference: an admin consent covers only the application roles the app
     * had when it was granted, so tenants consented before Organization.Read.All was added
     * answer /organization with 403 Authorization_RequestDenied. */
    if ((v = json_object_get(o, "org_readable")) && json_is_boolean(v))
        t->org_denied = !json_is_true(v);
    if ((v = json_object_get(o, "other_apps")) && (json_is_integer(v) || json_is_null(v)))
        t->other_apps = json_is_null(v) ? -1 : (long)json_integer_value(v);
}

int
sim_set_throttle(json_t *o)
{
    json_t *v;

    if ((v = json_object_get(o, "enabled")) && json_is_boolean(v))
        g.throttle = json_is_true(v);
    if ((v = json_object_get(o, "intune_limit")) && json_is_integer(v))
        g.intune_limit = (long)json_integer_value(v);
    if ((v = json_object_get(o, "intune_window_ms")) && json_is_integer(v))
        g.intune_window_ms = (long)json_integer_value(v);
    if ((v = json_object_get(o, "global_limit")) && json_is_integer(v))
        g.global_limit = (long)json_integer_value(v);
    if ((v = json_object_get(o, "global_window_ms")) && json_is_integer(v))
        g.global_window_ms = (long)json_integer_value(v);
    if ((v = json_object_get(o, "pc_limit")) && json_is_integer(v))
        g.pc_limit = (long)json_integer_value(v);
    if ((v = json_object_get(o, "pc_window_ms")) && json_is_integer(v))
        g.pc_window_ms = (long)json_integer_value(v);
    if ((v = json_object_get(o, "detected_apps_limit")) && json_is_integer(v))
        g.dapps_limit = (long)json_integer_value(v);
    if ((v = json_object_get(o, "tenant_limit")) && json_is_integer(v))
        g.tenant_limit = (long)json_integer_value(v);
    if ((v = json_object_get(o, "other_apps")) && json_is_integer(v))
        g.other_apps = (long)json_integer_value(v);
    if (g.tenant_limit <= 0)
        g.tenant_limit = 4000;
    if (g.intune_window_ms <= 0)
        g.intune_window_ms = 20000;
    if (g.global_window_ms <= 0)
        g.global_window_ms = 10000;
    if (g.pc_window_ms <= 0)
        g.pc_window_ms = 60000;
    g.nwins = 0; /* new limits start fresh windows */
    sim_sidx_clear(&g.win_idx);
    return ERR_OK;
}

/* Runs one control op; fills *res with its result members. */
static int
control_op(json_t *o, json_t *res, char *err, size_t errlen)
{
    const char *op = json_string_value(json_object_get(o, "op"));
    struct simworld *w = g.w;
    struct simtenant *t = NULL;
    int rc = ERR_OK;

    if (op == NULL) {
        snprintf(err, errlen, "missing op");
        return ERR_INVAL;
    }
    if (strcmp(op, "fault") == 0) {
        pthread_rwlock_rdlock(&w->lock);
        pthread_mutex_lock(&g.mu);
        rc = sim_fault_add(o, err, errlen);
        pthread_mutex_unlock(&g.mu);
        pthread_rwlock_unlock(&w->lock);
        return rc;
    }
    if (strcmp(op, "clear_faults") == 0) {
        pthread_mutex_lock(&g.mu);
        w->nfaults = 0;
        pthread_mutex_unlock(&g.mu);
        return ERR_OK;
    }
    if (strcmp(op, "set_throttle") == 0) {
        pthread_mutex_lock(&g.mu);
        rc = sim_set_throttle(o);
        pthread_mutex_unlock(&g.mu);
        return rc;
    }
    if (strcmp(op, "request_log") == 0) {
        pthread_mutex_lock(&g.mu);
        reqlog_clear(json_is_true(json_object_get(o, "enabled")));
        pthread_mutex_unlock(&g.mu);
        return ERR_OK;
    }
    if (strcmp(op, "reset_stats") == 0) {
        pthread_mutex_lock(&g.mu);
        g.nstats = 0;
        sim_sidx_clear(&g.stat_idx);
        g.total_requests = 0;
        g.throttled = 0;
        reqlog_clear(!g.reqlog_off);
        g.download_ranges = 0;
        pthread_mutex_unlock(&g.mu);
        return ERR_OK;
    }
    if (strcmp(op, "set_partner") == 0) {
        json_t *v = json_object_get(o, "application_read");

        if (json_is_boolean(v))
            __atomic_store_n(&g.no_app_read, !json_is_true(v), __ATOMIC_RELAXED);
        return ERR_OK;
    }
    if (strcmp(op, "set_export") == 0) {
        pthread_mutex_lock(&g.mu);
        rc = sim_set_export(o, err, errlen);
        pthread_mutex_unlock(&g.mu);
        return rc;
    }
    if (strcmp(op, "set_latency") == 0) {
        __atomic_store_n(&g.latency_ms, (int)json_integer_value(json_object_get(o, "ms")),
                         __ATOMIC_RELAXED);
        return ERR_OK;
    }
    pthread_rwlock_wrlock(&w->lock);
    if (json_object_get(o, "tenant")) {
        t = ctl_tenant(json_object_get(o, "tenant"));
        if (t == NULL) {
            snprintf(err, errlen, "unknown tenant");
            rc = ERR_NOTFOUND;
            goto out;
        }
    }
    if (strcmp(op, "add_tenant") == 0) {
        const char *name = json_string_value(json_object_get(o, "name"));
        t = simw_add_tenant(w, name, (int)json_integer_value(json_object_get(o, "devices")));
        sim_set_tenant_flags(t, o);
        json_object_set_new(res, "tenant", json_string(t->id));
    } else if (t == NULL && (strcmp(op, "add_devices") == 0 || strcmp(op, "remove_devices") == 0 ||
                             strcmp(op, "modify_device") == 0 || strcmp(op, "set_tenant") == 0 ||
                             strcmp(op, "revoke_consent") == 0)) {
        snprintf(err, errlen, "op %s needs a tenant", op);
        rc = ERR_INVAL;
    } else if (strcmp(op, "add_devices") == 0) {
        json_int_t n = json_integer_value(json_object_get(o, "count"));
        size_t before = t->ndev;
        if (n < 0 || n > 1000000) {
            snprintf(err, errlen, "count out of range");
            rc = ERR_INVAL;
            goto out;
        }
        simw_add_devices(w, t, (int)n);
        json_t *ids = json_array();
        for (size_t i = before; i < t->ndev; i++)
            json_array_append_new(ids, json_string(t->devs[i]->str[0]));
        json_object_set_new(res, "ids", ids);
    } else if (strcmp(op, "remove_devices") == 0) {
        json_t *ids = json_object_get(o, "ids"), *v;
        json_int_t last = json_integer_value(json_object_get(o, "last"));
        json_t *removed = json_array();
        size_t i;
        if (json_is_array(ids)) {
            json_array_foreach(ids, i, v)
            {
                long pos = json_is_string(v) ? simw_device_pos(t, json_string_value(v)) : -1;
                if (pos >= 0) {
                    json_array_append_new(removed, json_string(t->devs[pos]->str[0]));
                    simw_remove_device(t, (size_t)pos);
                }
            }
        }
        while (last-- > 0 && t->ndev > 0) {
            json_array_append_new(removed, json_string(t->devs[t->ndev - 1]->str[0]));
            simw_remove_device(t, t->ndev - 1);
        }
        json_object_set_new(res, "removed", removed);
    } else if (strcmp(op, "modify_device") == 0) {
        const char *id = json_string_value(json_object_get(o, "id"));
        long pos = id ? simw_device_pos(t, id) : -1;
        json_t *set = json_object_get(o, "set"), *v;
        const char *k;
        if (pos < 0) {
            snprintf(err, errlen, "unknown device");
            rc = ERR_NOTFOUND;
            goto out;
        }
        struct simdev *d = t->devs[pos];
        json_object_foreach(set, k, v)
        {
            int p = simw_prop_index(k);
            if (p <= 0) {
                snprintf(err, errlen, "cannot set property '%.60s'", k);
                rc = ERR_INVAL;
                goto out;
            }
            switch (simw_props[p].kind) {
            case SIMW_STR:
                simw_dev_set_str(d, p, json_string_value(v));
                break;
            case SIMW_BOOL:
            case SIMW_BOOLNULL:
                d->num[p] = json_is_null(v) ? -1 : json_is_true(v);
                break;
            case SIMW_INT64:
                d->num[p] = json_integer_value(v);
                break;
            case SIMW_DATE: {
                int64_t ts;
                if (!json_is_string(v) || clock_parse(json_string_value(v), &ts) != ERR_OK) {
                    snprintf(err, errlen, "bad date for '%.60s'", k);
                    rc = ERR_INVAL;
                    goto out;
                }
                d->num[p] = ts;
                break;
            }
            default:
                break;
            }
        }
        if (json_is_true(json_object_get(o, "touch"))) {
            /* forward to now, and never before the generated world's own "now" */
            int64_t now = clock_now();
            d->num[simw_prop_index("lastSyncDateTime")] =
                now > w->epoch + 3600 ? now : w->epoch + 3600;
        }
    } else if (strcmp(op, "set_tenant") == 0) {
        sim_set_tenant_flags(t, o);
    } else if (strcmp(op, "revoke_consent") == 0) {
        t->consented = 0;
    } else if (strcmp(op, "expire_secret") == 0) {
        struct simw_app *a = ctl_app(o);
        const char *which = json_string_value(json_object_get(o, "which"));
        int64_t when = clock_now() - 60;
        if (json_is_string(json_object_get(o, "expires")))
            (void)clock_parse(json_string_value(json_object_get(o, "expires")), &when);
        for (int i = 0; i < a->nsecrets; i++)
            if (which == NULL || strcmp(which, "all") == 0 ||
                (strcmp(which, "old") == 0 ? i < a->nsecrets - 1 : i == a->nsecrets - 1))
                a->secrets[i].expires = when;
    } else if (strcmp(op, "add_secret") == 0 || strcmp(op, "rotate_secret") == 0) {
        struct simw_app *a = ctl_app(o);
        int64_t exp = clock_now() + 180 * 86400;
        const char *s = simw_secret_add(w, a, exp);
        json_object_set_new(res, "secret", json_string(s));
        if (strcmp(op, "rotate_secret") == 0) {
            /* the old secrets stop working at once */
            for (int i = 0; i < a->nsecrets - 1; i++)
                free(a->secrets[i].value);
            a->secrets[0] = a->secrets[a->nsecrets - 1];
            a->nsecrets = 1;
        }
    } else if (strcmp(op, "set_apps") == 0) {
        json_int_t k = json_integer_value(json_object_get(o, "apps_per_device"));
        if (k < 0 || k > 60) {
            snprintf(err, errlen, "apps_per_device must be 0..60");
            rc = ERR_INVAL;
            goto out;
        }
        w->apps_per_device = (int)k;
        for (size_t i = 0; i < w->ntenants; i++)
            if (t == NULL || w->tenants[i] == t)
                simw_assign_apps(w, w->tenants[i], (int)k);
    } else {
        snprintf(err, errlen, "unknown op '%.40s'", op);
        rc = ERR_INVAL;
    }
out:
    pthread_rwlock_unlock(&w->lock);
    return rc;
}

static json_t *
world_json(void)
{
    struct simworld *w = g.w;
    json_t *ts = json_array();

    pthread_rwlock_rdlock(&w->lock);
    for (size_t i = 0; i < w->ntenants; i++) {
        struct simtenant *t = w->tenants[i];
        size_t napps = 0;
        for (size_t a = 0; a < t->napps; a++)
            napps += t->apps[a].device_count > 0;
        json_array_append_new(
            ts,
            json_pack(
                "{s:i, s:s, s:s, s:s, s:s, s:I, s:I, s:b, s:b, s:b, s:b, s:s?, s:b, s:s, s:b, s:o}",
                "index", t->index, "id", t->id, "name", t->name, "domain", t->domain,
                "initial_domain", t->initial_domain, "devices", (json_int_t)t->ndev, "apps",
                (json_int_t)napps, "consented", t->consented, "intune_licensed", t->intune_licensed,
                "permission", t->permission, "exists", t->exists, "associated_partner_id",
                t->associated_partner[0] ? t->associated_partner : NULL, "intune_401",
                t->intune_401, "cloud", t->cloud[0] ? t->cloud : "global", "org_readable",
                !t->org_denied, "other_apps",
                t->other_apps >= 0 ? json_integer(t->other_apps) : json_null()));
    }
    json_t *o = json_pack("{s:I, s:s, s:s, s:s, s:s, s:i, s:o}", "seed", (json_int_t)w->seed,
                          "partner_tenant_id", w->partner_tenant_id, "partner_app_id",
                          w->partner_app.id, "sync_app_id", w->sync_app.id, "base_url", g.base,
                          "apps_per_device", w->apps_per_device, "tenants", ts);
    pthread_rwlock_unlock(&w->lock);
    return o;
}

static json_t *
stats_json(void)
{
    json_t *routes = json_object();

    pthread_mutex_lock(&g.mu);
    for (size_t i = 0; i < g.nstats; i++) {
        json_t *r = json_object_get(routes, g.stats[i].route);
        if (r == NULL) {
            r = json_object();
            json_object_set_new(routes, g.stats[i].route, r);
        }
        json_object_set_new(r, g.stats[i].tenant, json_integer(g.stats[i].count));
    }
    json_t *o = json_pack("{s:I, s:I, s:o, s:I}", "total", (json_int_t)g.total_requests,
                          "throttled", (json_int_t)g.throttled, "requests", routes,
                          "download_ranges", (json_int_t)g.download_ranges);
    pthread_mutex_unlock(&g.mu);
    return o;
}

struct resp *
sim_control_route(struct MHD_Connection *c, const char *method, const char *rest, const char *body,
                  size_t len)
{
    struct resp *r;

    (void)c;
    if (strcmp(rest, "world") == 0 && strcmp(method, "GET") == 0) {
        r = sim_resp_new(200, SIM_JSON_CT);
        sim_resp_json(r, world_json());
        return r;
    }
    if (strcmp(rest, "requests") == 0 && strcmp(method, "GET") == 0) {
        r = sim_resp_new(200, SIM_JSON_CT);
        sim_resp_json(r, reqlog_json());
        return r;
    }
    if (strcmp(rest, "stats") == 0 && strcmp(method, "GET") == 0) {
        r = sim_resp_new(200, SIM_JSON_CT);
        sim_resp_json(r, stats_json());
        return r;
    }
    if (strcmp(rest, "oidc") == 0)
        return sim_oidc_control(method, body, len);
    if (strcmp(rest, "control") == 0 && strcmp(method, "POST") == 0) {
        json_error_t je;
        json_t *in = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &je);
        json_t *ops, *results = json_array(), *it;
        size_t i;
        char err[256] = "";
        if (in == NULL) {
            json_decref(results);
            r = sim_resp_new(400, SIM_JSON_CT);
            sim_resp_json(r, json_pack("{s:b, s:s}", "ok", 0, "error", je.text));
            return r;
        }
        ops = json_is_array(in) ? json_incref(in) : json_pack("[O]", in);
        json_array_foreach(ops, i, it)
        {
            json_t *res = json_object();
            if (!json_is_object(it) || control_op(it, res, err, sizeof err) != ERR_OK) {
                json_decref(res);
                json_decref(results);
                json_decref(ops);
                json_decref(in);
                r = sim_resp_new(400, SIM_JSON_CT);
                sim_resp_json(r, json_pack("{s:b, s:s, s:I}", "ok", 0, "error",
                                           err[0] ? err : "bad op", "index", (json_int_t)i));
                return r;
            }
            json_array_append_new(results, res);
        }
        json_decref(ops);
        json_decref(in);
        r = sim_resp_new(200, SIM_JSON_CT);
        sim_resp_json(r, json_pack("{s:b, s:o}", "ok", 1, "results", results));
        return r;
    }
    r = sim_resp_new(404, SIM_JSON_CT);
    sim_resp_json(r, json_pack("{s:b, s:s}", "ok", 0, "error", "no such control route"));
    return r;
}

/* --- scenarios ------------------------------------------------------------------------------ */

/* Built-in scenarios, generated rather than stored so they stay in step with the code. */
static json_t *
builtin_scenario(const char *name)
{
    if (strcmp(name, "demo") == 0) {
        return json_pack("{s:I, s:[{s:i},{s:i},{s:i},{s:i},{s:i}], s:i}", "seed", (json_int_t)1,
                         "tenants", "devices", 12, "devices", 40, "devices", 7, "devices", 150,
                         "devices", 25, "apps_per_device", 15);
    }
    if (strcmp(name, "faults") == 0) {
        json_t *ts = json_array(), *fs = json_array();
        for (int i = 0; i < 20; i++)
            json_array_append_new(ts, json_pack("{s:i}", "devices", 30));
        json_object_set_new(json_array_get(ts, 6), "consented", json_false());
        json_object_set_new(json_array_get(ts, 7), "exists", json_false());
        json_object_set_new(json_array_get(ts, 8), "intune_licensed", json_false());
        json_object_set_new(json_array_get(ts, 9), "permission", json_false());
        json_object_set_new(json_array_get(ts, 10), "indirect_reseller", json_true());
        /* A reseller's customer has not consented the MSP's sync app: 700016 there. */
        json_object_set_new(json_array_get(ts, 10), "consented", json_false());
        json_array_append_new(fs, json_pack("{s:i, s:s, s:s, s:f}", "tenant", 11, "route",
                                            "managedDevices", "kind", "429", "retry_after", 1.5));
        json_array_append_new(fs,
                              json_pack("{s:i, s:s, s:s, s:i, s:i}", "tenant", 12, "route",
                                        "managedDevices", "kind", "drop", "page", 1, "count", 2));
        json_array_append_new(fs, json_pack("{s:i, s:s, s:s, s:i, s:n}", "tenant", 13, "route",
                                            "managedDevices", "kind", "status", "status", 503,
                                            "retry_after"));
        json_array_append_new(fs, json_pack("{s:i, s:s, s:s}", "tenant", 14, "route",
                                            "managedDevices", "kind", "truncate"));
        json_array_append_new(fs, json_pack("{s:i, s:s, s:s, s:i}", "tenant", 15, "route",
                                            "organization", "kind", "status", "status", 500));
        json_array_append_new(fs, json_pack("{s:i, s:s, s:s, s:i}", "tenant", 16, "route", "*",
                                            "kind", "latency", "latency_ms", 1500));
        json_array_append_new(fs, json_pack("{s:i, s:s, s:s, s:i}", "tenant", 17, "route",
                                            "managedDevices", "kind", "status", "status", 401));
        /* One 429 without Retry-After: memsync waits out Intune's 20 s window for it. */
        json_array_append_new(fs, json_pack("{s:i, s:s, s:s, s:n, s:i}", "tenant", 18, "route",
                                            "managedDevices", "kind", "429", "retry_after", "count",
                                            1));
        json_array_append_new(fs, json_pack("{s:i, s:s, s:s, s:i}", "tenant", 19, "route",
                                            "managedDevices", "kind", "status", "status", 500));
        return json_pack("{s:I, s:o, s:i, s:o}", "seed", (json_int_t)7, "tenants", ts,
                         "apps_per_device", 10, "faults", fs);
    }
    if (strcmp(name, "msp-reference") == 0) {
        /* 200 tenants, 40,000 devices, Zipf-like sizes: a few with thousands, many small */
        json_t *ts = json_array();
        double h = 0;
        int sum = 0, sizes[200];
        for (int i = 0; i < 200; i++)
            h += 1.0 / (i + 1);
        for (int i = 0; i < 200; i++) {
            sizes[i] = (int)(40000.0 / h / (i + 1));
            if (sizes[i] < 1)
                sizes[i] = 1;
            sum += sizes[i];
        }
        sizes[0] += 40000 - sum;
        for (int i = 0; i < 200; i++)
            json_array_append_new(ts, json_pack("{s:i}", "devices", sizes[(i * 37) % 200]));
        return json_pack("{s:I, s:o, s:i}", "seed", (json_int_t)42, "tenants", ts,
                         "apps_per_device", 50);
    }
    return NULL;
}

json_t *
sim_load_scenario(const char *arg, struct errbuf *eb)
{
    json_error_t je;
    json_t *j = builtin_scenario(arg);

    if (j)
        return j;
    j = json_load_file(arg, JSON_REJECT_DUPLICATES, &je);
    if (j == NULL) {
        char alt[512];
        /* a bare name may also refer to scenarios/NAME.json */
        snprintf(alt, sizeof alt, "scenarios/%s.json", arg);
        j = json_load_file(alt, JSON_REJECT_DUPLICATES, NULL);
    }
    if (j == NULL) {
        err_set(eb, ERR_PARSE, "scenario %s: %s (line %d)", arg, je.text, je.line);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        err_set(eb, ERR_PARSE, "scenario %s: the top level must be an object", arg);
        return NULL;
    }
    {
        static const char *const known[] = {
            "seed",   "devices", "apps_per_device", "latency_ms", "tenants", "throttle",
            "faults", "secrets", "description",     "export",     "partner"};
        const char *k;
        json_t *v;
        json_object_foreach(j, k, v)
        {
            int ok = 0;
            for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
                ok |= strcmp(k, known[i]) == 0;
            if (!ok)
                log_warn("sim scenario member ignored name=%s", k);
        }
    }
    return j;
}
