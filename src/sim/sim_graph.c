/* sim_graph.c - Microsoft Graph of `memsync sim`: the Intune routes (managedDevices,
 * detectedApps, managedDeviceOverview), the partner tenant's directory routes, $batch, Intune's
 * throttles and listing faults.
 */
#include "simsrv.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "log.h"
#include "mem.h"
#include "simworld.h"

/* Intune's 401 UnknownError for an authorization or licence failure: the message nests the
 * service's own error ({"ErrorCode":"Forbidden", ...}) and WWW-Authenticate names Intune's
 * realm. Sources: microsoftgraph/microsoft-graph-explorer-v4 #706;
 * microsoftgraph/microsoft-graph-docs-contrib #4528; AzureAD/microsoft-authentication-library-
 * for-js #7007, #7011 (Microsoft365DSC treats it as "tenant not registered for Intune"). */
static struct resp *
intune_401(void)
{
    char op[37], act[37], msg[512];
    json_t *hh, *inner, *outer;
    char *hs, *is, *os;
    struct resp *r;

    sim_rand_guid(op);
    sim_rand_guid(act);
    snprintf(msg, sizeof msg,
             "An error has occurred - Operation ID (for customer support): %s - Activity ID: %s - "
             "Url: https://fef.msua06.manage.microsoft.com/DeviceFE/StatelessDeviceFEService/"
             "deviceManagement/managedDevices?api-version=2024-09-10",
             op, act);
    hh = json_pack("{s:s}", "WWW-Authenticate",
                   "Bearer realm=\"urn:intune:service," SIM_INTUNE_REALM "\"");
    hs = json_dumps(hh, JSON_COMPACT);
    inner = json_pack("{s:i, s:s, s:s, s:n, s:s, s:s}", "_version", 3, "Message", msg,
                      "CustomApiErrorPhrase", "", "RetryAfter", "ErrorSourceService", "",
                      "HttpHeaders", hs);
    is = json_dumps(inner, JSON_INDENT(2));
    outer = json_pack("{s:s, s:s, s:n, s:n, s:n, s:[]}", "ErrorCode", "Forbidden", "Message", is,
                      "Target", "Details", "InnerError", "InstanceAnnotations");
    os = json_dumps(outer, JSON_COMPACT);
    r = sim_graph_error(401, "UnknownError", os);
    sim_resp_hdr(r, "WWW-Authenticate", "Bearer realm=\"urn:intune:service," SIM_INTUNE_REALM "\"");
    free(hs);
    free(is);
    free(os);
    json_decref(hh);
    json_decref(inner);
    json_decref(outer);
    return r;
}

static struct resp *
graph_intune_gate(struct gctx *x)
{
    if (x->t && x->t->intune_401 && (!x->t->intune_licensed || !x->t->permission))
        return intune_401();
    if (x->t && !x->t->intune_licensed)
        return sim_graph_error(400, "BadRequest", "Request not applicable to target tenant.");
    if (x->t && !x->t->permission) {
        char op[37], act[37], msg[512];
        sim_rand_guid(op);
        sim_rand_guid(act);
        snprintf(msg, sizeof msg,
                 "Application is not authorized to perform this operation - Operation ID (for "
                 "customer support): %s - Activity ID: %s - Url: "
                 "https://fef.msua06.manage.microsoft.com/DeviceFE/StatelessDeviceFEService/"
                 "deviceManagement/managedDevices?api-version=2024-09-10 - "
                 "CustomApiErrorPhrase: ",
                 op, act);
        return sim_graph_error(403, "Forbidden", msg);
    }
    return NULL;
}

static struct resp *
graph_organization(struct gctx *x)
{
    struct simworld *w = g.w;
    const char *id = x->partner ? w->partner_tenant_id : x->t->id;
    const char *name = x->partner ? w->partner_name : x->t->name;
    const char *initial = x->partner ? w->partner_domain : x->t->initial_domain;
    const char *dflt = x->partner ? w->partner_domain : x->t->domain;
    char ctx[256];
    json_t *plans = json_array();

    json_array_append_new(plans, json_pack("{s:s, s:s, s:s, s:s}", "assignedDateTime",
                                           "2024-01-15T10:00:00Z", "capabilityStatus", "Enabled",
                                           "service", "exchange", "servicePlanId",
                                           "efb87545-963c-4e0d-99df-69c6916d9eb0"));
    if (x->partner || x->t->intune_licensed) {
        json_array_append_new(plans, json_pack("{s:s, s:s, s:s, s:s}", "assignedDateTime",
                                               "2024-01-15T10:00:00Z", "capabilityStatus",
                                               "Enabled", "service", "SCO", "servicePlanId",
                                               "c1ec4a95-1f05-45b3-a911-aa3fa01094f5"));
    }
    json_t *domains = json_array();
    json_array_append_new(domains, json_pack("{s:s, s:b, s:b, s:s, s:s}", "capabilities",
                                             "Email, OfficeCommunicationsOnline", "isDefault",
                                             strcmp(dflt, initial) == 0, "isInitial", 1, "name",
                                             initial, "type", "Managed"));
    if (strcmp(dflt, initial) != 0)
        json_array_append_new(domains,
                              json_pack("{s:s, s:b, s:b, s:s, s:s}", "capabilities",
                                        "Email, OfficeCommunicationsOnline", "isDefault", 1,
                                        "isInitial", 0, "name", dflt, "type", "Managed"));
    json_t *org = json_pack(
        "{s:s, s:n, s:[s], s:s, s:n, s:s, s:s, s:s, s:s, s:n, s:s, s:s, s:s, s:n, s:o, s:o, "
        "s:[], s:[s]}",
        "id", id, "deletedDateTime", "businessPhones", "+1 425 555 0100", "city", "Redmond",
        "country", "countryLetterCode", x->partner ? "US" : x->t->country, "createdDateTime",
        "2019-03-14T09:21:07Z", "displayName", name, "postalCode", "98052", "preferredLanguage",
        "state", "WA", "street", "1 Main Street", "tenantType", "AAD", "onPremisesSyncEnabled",
        "assignedPlans", plans, "verifiedDomains", domains, "provisionedPlans",
        "technicalNotificationMails", "admin@example.com");
    snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#organization", g.base, x->ver);
    struct resp *r = sim_resp_new(200, SIM_GRAPH_CT);
    sim_resp_json(r, json_pack("{s:s, s:[o]}", "@odata.context", ctx, "value", org));
    return r;
}

/* Splits a $select into trimmed names and hands each to take(); a name take() refuses (-1) is
 * Graph's 400 naming it and type. NULL response on success. */
static struct resp *
select_each(const char *sel, const char *type, int (*take)(void *arg, const char *name), void *arg)
{
    char tmp[4096], *save = NULL;

    if (sel == NULL)
        return NULL;
    if (strlen(sel) >= sizeof tmp)
        return sim_graph_error(400, "BadRequest", "The $select query option is too long.");
    snprintf(tmp, sizeof tmp, "%s", sel);
    for (char *p = strtok_r(tmp, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
        while (*p == ' ')
            p++;
        char *e = p + strlen(p);
        while (e > p && e[-1] == ' ')
            *--e = '\0';
        if (*p == '\0')
            continue;
        if (take(arg, p) < 0) {
            char msg[512];
            snprintf(msg, sizeof msg, "Could not find a property named '%.200s' on type '%s'.", p,
                     type);
            return sim_graph_error(400, "BadRequest", msg);
        }
    }
    return NULL;
}

struct dev_select {
    uint64_t *mask;
    int *any;
    int beta;
};

static int
dev_select_take(void *arg, const char *name)
{
    struct dev_select *d = arg;
    int i = simw_prop_index(name);

    if (i < 0 && d->beta && simw_beta_index(name) >= 0) {
        d->mask[1] |= UINT64_C(1) << simw_beta_index(name);
        *d->any = 1;
        return 0;
    }
    if (i < 0)
        return -1;
    d->mask[i / 64] |= UINT64_C(1) << (i % 64);
    *d->any = 1;
    return 0;
}

/* Parses $select into a property bitmask. Returns NULL response on success. */
static struct resp *
parse_select(const char *sel, uint64_t mask[2], int *any, int beta, const char *type)
{
    struct dev_select d = {mask, any, beta};

    mask[0] = mask[1] = 0;
    *any = 0;
    return select_each(sel, type, dev_select_take, &d);
}

static void
context_url(struct buf *b, struct gctx *x, const char *what, const char *sel)
{
    (void)buf_printf(b, "%s/graph/%s/$metadata#%s", g.base, x->ver, what);
    if (sel && *sel)
        (void)buf_printf(b, "(%s)", sel);
}

/* A small $filter for managedDevices: clauses joined by "and", each `prop op literal`
 * (eq ne gt ge lt le) or `startswith(prop,'x')`; what third-party Intune code uses. */
enum fop { F_EQ, F_NE, F_GT, F_GE, F_LT, F_LE, F_SW };

struct fclause {
    int prop;
    enum fop op;
    int isnull;
    char str[256];
    int64_t num;
};

#define FILTER_MAX 8

static int
filter_literal(const char **pp, struct fclause *fc)
{
    const char *p = *pp;
    size_t n = 0;

    while (*p == ' ')
        p++;
    if (*p == '\'') {
        for (p++; *p; p++) {
            if (*p == '\'') {
                if (p[1] == '\'') {
                    p++;
                } else {
                    break;
                }
            }
            if (n + 1 >= sizeof fc->str)
                return ERR_PARSE;
            fc->str[n++] = *p;
        }
        if (*p != '\'')
            return ERR_PARSE;
        fc->str[n] = '\0';
        *pp = p + 1;
        return ERR_OK;
    }
    while (*p && *p != ' ' && *p != ')' && n + 1 < sizeof fc->str)
        fc->str[n++] = *p++;
    fc->str[n] = '\0';
    if (n == 0)
        return ERR_PARSE;
    if (strcmp(fc->str, "null") == 0)
        fc->isnull = 1;
    *pp = p;
    return ERR_OK;
}

static struct resp *
filter_parse(const char *f, struct fclause *cl, int *n)
{
    const char *p = f;

    *n = 0;
    if (f == NULL)
        return NULL;
    while (*p) {
        struct fclause *fc;
        char name[64];
        size_t k = 0;
        if (*n == FILTER_MAX)
            return sim_graph_error(400, "BadRequest", "Too many clauses in $filter.");
        fc = &cl[(*n)++];
        memset(fc, 0, sizeof(*fc));
        while (*p == ' ')
            p++;
        if (strncasecmp(p, "startswith(", 11) == 0) {
            p += 11;
            while (*p && *p != ',' && k + 1 < sizeof name)
                name[k++] = *p++;
            name[k] = '\0';
            if (*p != ',')
                goto bad;
            p++;
            fc->op = F_SW;
            if (filter_literal(&p, fc) != ERR_OK || *p != ')')
                goto bad;
            p++;
        } else {
            static const char *const ops[] = {"eq", "ne", "gt", "ge", "lt", "le"};
            while (*p && *p != ' ' && k + 1 < sizeof name)
                name[k++] = *p++;
            name[k] = '\0';
            while (*p == ' ')
                p++;
            int op = -1;
            for (int i = 0; i < 6; i++)
                if (strncasecmp(p, ops[i], 2) == 0 && p[2] == ' ')
                    op = i;
            if (op < 0)
                goto bad;
            fc->op = (enum fop)op;
            p += 3;
            if (filter_literal(&p, fc) != ERR_OK)
                goto bad;
        }
        fc->prop = simw_prop_index(name);
        if (fc->prop < 0) {
            char msg[256];
            snprintf(msg, sizeof msg,
                     "Could not find a property named '%.64s' on type "
                     "'microsoft.graph.managedDevice'.",
                     name);
            return sim_graph_error(400, "BadRequest", msg);
        }
        enum simw_kind kd = simw_props[fc->prop].kind;
        if (kd == SIMW_DATE && !fc->isnull) {
            if (clock_parse(fc->str, &fc->num) != ERR_OK)
                goto bad;
        } else if (kd == SIMW_INT64 && !fc->isnull) {
            char *end;
            fc->num = strtoll(fc->str, &end, 10);
            if (*end)
                goto bad;
        } else if ((kd == SIMW_BOOL || kd == SIMW_BOOLNULL) && !fc->isnull) {
            if (strcmp(fc->str, "true") != 0 && strcmp(fc->str, "false") != 0)
                goto bad;
            fc->num = strcmp(fc->str, "true") == 0;
        } else if (kd == SIMW_NULLOBJ || kd == SIMW_EMPTYARR) {
            goto bad;
        }
        if (fc->op == F_SW && kd != SIMW_STR)
            goto bad;
        while (*p == ' ')
            p++;
        if (*p == '\0')
            break;
        if (strncasecmp(p, "and ", 4) != 0)
            goto bad;
        p += 4;
    }
    return NULL;
bad:
    return sim_graph_error(400, "BadRequest", "Invalid filter clause");
}

static int
cmp_op(int c, enum fop op)
{
    switch (op) {
    case F_EQ:
        return c == 0;
    case F_NE:
        return c != 0;
    case F_GT:
        return c > 0;
    case F_GE:
        return c >= 0;
    case F_LT:
        return c < 0;
    case F_LE:
        return c <= 0;
    case F_SW:
        break;
    }
    return 0;
}

static int
filter_match(const struct simdev *d, const struct fclause *cl, int n)
{
    for (int i = 0; i < n; i++) {
        const struct fclause *fc = &cl[i];
        int p = fc->prop, c;
        switch (simw_props[p].kind) {
        case SIMW_STR: {
            const char *v = d->str[p];
            if (fc->isnull) {
                c = v == NULL ? 0 : 1;
            } else if (v == NULL) {
                return 0;
            } else if (fc->op == F_SW) {
                if (strncasecmp(v, fc->str, strlen(fc->str)) != 0)
                    return 0;
                continue;
            } else {
                c = strcasecmp(v, fc->str);
            }
            break;
        }
        case SIMW_BOOLNULL:
        case SIMW_BOOL:
        case SIMW_INT64:
        case SIMW_DATE:
            if (fc->isnull) {
                c = 1;
                break;
            }
            c = d->num[p] < fc->num ? -1 : d->num[p] > fc->num ? 1 : 0;
            break;
        default:
            return 0;
        }
        if (!cmp_op(c, fc->op))
            return 0;
    }
    return 1;
}

static struct resp *
graph_devices(struct gctx *x, int *page_out)
{
    struct MHD_Connection *c = x->c;
    const char *top_s = sim_arg_lookup(c, "$top");
    const char *sel = sim_arg_lookup(c, "$select");
    const char *skip = sim_arg_lookup(c, "$skiptoken");
    const char *filter = sim_arg_lookup(c, "$filter");
    const char *count = sim_arg_lookup(c, "$count");
    uint64_t mask[2];
    int any, nf = 0;
    long top = SIM_DEV_PAGE;
    int64_t after = 0, page = 1;
    struct resp *r;
    struct buf b;
    struct fclause fcl[FILTER_MAX];

    r = parse_select(sel, mask, &any, x->beta, "microsoft.graph.managedDevice");
    if (r)
        return r;
    r = filter_parse(filter, fcl, &nf);
    if (r)
        return r;
    if (top_s) {
        char *end;
        top = strtol(top_s, &end, 10);
        if (*top_s == '\0' || *end != '\0' || top < 0)
            return sim_graph_error(400, "BadRequest", "Invalid value for $top query option.");
        if (top == 0 || top > SIM_DEV_PAGE)
            top = SIM_DEV_PAGE;
    }
    if (skip) {
        int64_t v[2];
        if (simtok_open_ints("mdsk", skip, v, 2) != ERR_OK)
            return sim_graph_error(400, "BadRequest", "The $skiptoken is invalid.");
        after = v[0];
        page = v[1];
    }
    *page_out = (int)page;
    buf_init(&b, SIM_PAGE_MAX);
    (void)buf_addstr(&b, "{\"@odata.context\":\"");
    context_url(&b, x, "deviceManagement/managedDevices", sel);
    (void)buf_addc(&b, '"');
    if (x->t && count && strcmp(count, "true") == 0 && skip == NULL) {
        size_t total = 0;
        pthread_rwlock_rdlock(&g.w->lock);
        for (size_t i = 0; i < x->t->ndev; i++)
            total += filter_match(x->t->devs[i], fcl, nf);
        pthread_rwlock_unlock(&g.w->lock);
        (void)buf_printf(&b, ",\"@odata.count\":%zu", total);
    }
    size_t mark = b.len;
    (void)buf_addstr(&b, ",\"value\":[");
    if (x->t) {
        pthread_rwlock_rdlock(&g.w->lock);
        struct simtenant *t = x->t;
        size_t i = simw_device_after(t, (uint64_t)after), n = 0;
        uint64_t last = 0;
        if (x->short_keep >= 0 && x->short_keep < top)
            top = x->short_keep;
        for (; i < t->ndev && n < (size_t)top; i++) {
            if (nf && !filter_match(t->devs[i], fcl, nf))
                continue;
            if (x->skip_seq != 0 && t->devs[i]->seq == x->skip_seq)
                continue;
            if (n++)
                (void)buf_addc(&b, ',');
            if (simw_render_device(t->devs[i], any ? mask : NULL, 0, x->beta, &b) != ERR_OK)
                break;
            last = t->devs[i]->seq;
        }
        while (nf && i < t->ndev && !filter_match(t->devs[i], fcl, nf))
            i++;
        /* microsoftgraph/microsoft-graph-docs #21659, msgraph-sdk-powershell #1819: an
         * unfiltered listing that ends early, without @odata.nextLink (the short fault). */
        int more = i < t->ndev && x->short_keep < 0;
        pthread_rwlock_unlock(&g.w->lock);
        (void)buf_addc(&b, ']');
        if (more) {
            int64_t v[2] = {(int64_t)last, page + 1};
            char *tok = simtok_seal_ints("mdsk", v, 2);
            struct buf nl;
            buf_init(&nl, 16384);
            (void)buf_printf(&nl, "%s/graph/%s/deviceManagement/managedDevices?", g.base, x->ver);
            if (sel) {
                (void)buf_addstr(&nl, "$select=");
                (void)buf_add_urlenc(&nl, sel);
                (void)buf_addc(&nl, '&');
            }
            if (filter) {
                (void)buf_addstr(&nl, "$filter=");
                (void)buf_add_urlenc(&nl, filter);
                (void)buf_addc(&nl, '&');
            }
            if (top_s)
                (void)buf_printf(&nl, "$top=%ld&", top);
            (void)buf_printf(&nl, "$skiptoken=%s", tok);
            /* nextLink goes before value, as Graph writes it */
            struct buf out;
            buf_init(&out, SIM_PAGE_MAX);
            (void)buf_add(&out, b.data, mark);
            (void)buf_addstr(&out, ",\"@odata.nextLink\":");
            (void)simw_json_str(&out, buf_cstr(&nl));
            (void)buf_add(&out, b.data + mark, b.len - mark);
            buf_free(&b);
            b = out;
            buf_free(&nl);
            free(tok);
        }
    } else {
        (void)buf_addc(&b, ']');
    }
    if (buf_addc(&b, '}') != ERR_OK) {
        buf_free(&b);
        return sim_graph_error(500, "InternalServerError", "Page too large.");
    }
    r = sim_resp_new(200, SIM_GRAPH_CT);
    sim_resp_buf(r, &b);
    return r;
}

static struct resp *
graph_device(struct gctx *x, const char *id)
{
    const char *sel = sim_arg_lookup(x->c, "$select");
    uint64_t mask[2];
    int any;
    struct resp *r = parse_select(sel, mask, &any, x->beta, "microsoft.graph.managedDevice");
    struct buf b;

    if (r)
        return r;
    long pos = x->t ? simw_device_pos(x->t, id) : -1;
    if (pos < 0) {
        char msg[160];
        snprintf(msg, sizeof msg, "Resource not found for the segment 'managedDevices'.");
        return sim_graph_error(404, "ResourceNotFound", msg);
    }
    buf_init(&b, SIM_PAGE_MAX);
    (void)buf_addstr(&b, "{\"@odata.context\":\"");
    context_url(&b, x, "deviceManagement/managedDevices", sel);
    (void)buf_addstr(&b, "/$entity\",");
    struct buf dev;
    buf_init(&dev, SIM_PAGE_MAX);
    /* only a beta GET that names the fields in $select gets the per-device values */
    (void)simw_render_device(x->t->devs[pos], any ? mask : NULL, x->beta && any, x->beta, &dev);
    (void)buf_add(&b, dev.data + 1, dev.len - 1);
    buf_free(&dev);
    r = sim_resp_new(200, SIM_GRAPH_CT);
    sim_resp_buf(r, &b);
    return r;
}

/* microsoft.graph.detectedApp's properties, in the order Graph writes them. */
static const char *const app_props[] = {"id",          "displayName", "version", "sizeInByte",
                                        "deviceCount", "publisher",   "platform"};
#define APP_ALL ((1u << (sizeof app_props / sizeof app_props[0])) - 1)

static int
app_select_take(void *arg, const char *name)
{
    unsigned *mask = arg;

    for (size_t i = 0; i < sizeof app_props / sizeof app_props[0]; i++) {
        if (strcasecmp(name, app_props[i]) == 0) {
            *mask |= 1u << i;
            return 0;
        }
    }
    return -1;
}

/* $select on detectedApps: a mask of app_props (all of them without one). OData names
 * compare case-insensitively, as Graph's do. NULL response on success. */
static struct resp *
parse_app_select(const char *sel, unsigned *mask)
{
    struct resp *r;

    *mask = 0;
    r = select_each(sel, "microsoft.graph.detectedApp", app_select_take, mask);
    if (*mask == 0)
        *mask = APP_ALL;
    return r;
}

/* One detectedApp with the properties in mask. */
static json_t *
app_json(const struct simapp *a, unsigned mask)
{
    json_t *o = json_object();

    if (mask & 1u)
        json_object_set_new(o, "id", json_string(a->id));
    if (mask & 2u)
        json_object_set_new(o, "displayName", json_string(a->name));
    if (mask & 4u)
        json_object_set_new(o, "version", json_string(a->version));
    if (mask & 8u)
        json_object_set_new(o, "sizeInByte", json_integer((json_int_t)a->size));
    if (mask & 16u)
        json_object_set_new(o, "deviceCount", json_integer(a->device_count));
    if (mask & 32u)
        json_object_set_new(o, "publisher", a->publisher ? json_string(a->publisher) : json_null());
    if (mask & 64u)
        json_object_set_new(o, "platform", json_string(a->platform));
    return o;
}

/* Collection of detected apps (all of the tenant, or one device's). */
static struct resp *
graph_apps(struct gctx *x, const struct simdev *only, const char *ctxwhat)
{
    const char *top_s = sim_arg_lookup(x->c, "$top");
    const char *skip = sim_arg_lookup(x->c, "$skiptoken");
    long top = 1000;
    int64_t off = 0;
    json_t *arr = json_array(), *root;
    char ctx[512];
    struct simtenant *t = x->t;
    size_t total, i, n = 0;
    const char *sel = sim_arg_lookup(x->c, "$select");
    unsigned mask;
    struct resp *bad = parse_app_select(sel, &mask);
    char *selq = NULL;

    if (bad != NULL) {
        json_decref(arr);
        return bad;
    }
    if (top_s) {
        char *end;
        top = strtol(top_s, &end, 10);
        if (*top_s == '\0' || *end != '\0' || top < 0) {
            json_decref(arr);
            return sim_graph_error(400, "BadRequest", "Invalid value for $top query option.");
        }
        if (top == 0 || top > 1000)
            top = 1000;
    } else if (only == NULL) {
        top = 1000;
    }
    if (skip) {
        int64_t v[1];
        if (simtok_open_ints("dask", skip, v, 1) != ERR_OK || v[0] < 0) {
            json_decref(arr);
            return sim_graph_error(400, "BadRequest", "The $skiptoken is invalid.");
        }
        off = v[0];
    }
    total = t == NULL ? 0 : only ? only->napps : t->napps;
    for (i = (size_t)off; t && i < total && n < (size_t)top; i++) {
        const struct simapp *a = only ? &t->apps[only->apps[i]] : &t->apps[i];
        if (!only && a->device_count == 0)
            continue;
        json_array_append_new(arr, app_json(a, mask));
        n++;
    }
    /* The next link keeps the query's $select, as Graph's do. */
    if (sel != NULL) {
        struct buf q;

        buf_init(&q, 128);
        for (size_t k = 0; k < sizeof app_props / sizeof app_props[0]; k++)
            if (mask & (1u << k))
                (void)buf_printf(&q, "%s%s", q.len ? "," : "$select=", app_props[k]);
        (void)buf_addstr(&q, "&");
        selq = xstrdup(buf_cstr(&q));
        buf_free(&q);
    } else {
        selq = xstrdup("");
    }
    snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#%s", g.base, x->ver, ctxwhat);
    root = json_pack("{s:s}", "@odata.context", ctx);
    if (i < total) {
        int64_t v[1] = {(int64_t)i};
        char *tok = simtok_seal_ints("dask", v, 1);
        char *url = xasprintf("%s/graph/%s/%s?%s%s%s%s$skiptoken=%s", g.base, x->ver,
                              "deviceManagement/detectedApps", selq, top_s ? "$top=" : "",
                              top_s ? top_s : "", top_s ? "&" : "", tok);
        if (only) {
            free(url);
            url = xasprintf("%s/graph/%s/deviceManagement/managedDevices/%s/detectedApps?%s%s%s%s"
                            "$skiptoken=%s",
                            g.base, x->ver, only->str[0], selq, top_s ? "$top=" : "",
                            top_s ? top_s : "", top_s ? "&" : "", tok);
        }
        json_object_set_new(root, "@odata.nextLink", json_string(url));
        free(url);
        free(tok);
    }
    free(selq);
    json_object_set_new(root, "value", arr);
    struct resp *r = sim_resp_new(200, SIM_GRAPH_CT);
    sim_resp_json(r, root);
    return r;
}

static struct resp *
graph_app_devices(struct gctx *x, const char *appid)
{
    const char *top_s = sim_arg_lookup(x->c, "$top");
    const char *skip = sim_arg_lookup(x->c, "$skiptoken");
    const char *sel = sim_arg_lookup(x->c, "$select");
    struct simtenant *t = x->t;
    long pos = t ? simw_app_pos(t, appid) : -1;
    long top = SIM_DEV_PAGE;
    int64_t off = 0;
    uint64_t mask[2];
    int any;
    struct resp *r;
    struct buf b;

    if (pos < 0)
        return sim_graph_error(404, "ResourceNotFound",
                               "Resource not found for the segment 'detectedApps'.");
    r = parse_select(sel, mask, &any, 0, "microsoft.graph.managedDevice");
    if (r)
        return r;
    if (top_s) {
        char *end;
        top = strtol(top_s, &end, 10);
        if (*top_s == '\0' || *end != '\0' || top < 0)
            return sim_graph_error(400, "BadRequest", "Invalid value for $top query option.");
        if (top == 0 || top > SIM_DEV_PAGE)
            top = SIM_DEV_PAGE;
    }
    if (skip) {
        int64_t v[1];
        if (simtok_open_ints("adsk", skip, v, 1) != ERR_OK || v[0] < 0)
            return sim_graph_error(400, "BadRequest", "The $skiptoken is invalid.");
        off = v[0];
    }
    buf_init(&b, SIM_PAGE_MAX);
    (void)buf_addstr(&b, "{\"@odata.context\":\"");
    context_url(&b, x, "deviceManagement/detectedApps('x')/managedDevices", sel);
    (void)buf_addstr(&b, "\",\"value\":[");
    size_t i, n = 0;
    for (i = (size_t)off; i < t->ndev && n < (size_t)top; i++) {
        const struct simdev *d = t->devs[i];
        int has = 0;
        for (size_t k = 0; k < d->napps; k++)
            if (d->apps[k] == (uint32_t)pos) {
                has = 1;
                break;
            }
        if (!has)
            continue;
        if (n++)
            (void)buf_addc(&b, ',');
        (void)simw_render_device(d, any ? mask : NULL, 0, 0, &b);
    }
    (void)buf_addc(&b, ']');
    if (i < t->ndev && n == (size_t)top) {
        int64_t v[1] = {(int64_t)i};
        char *tok = simtok_seal_ints("adsk", v, 1);
        (void)buf_printf(&b,
                         ",\"@odata.nextLink\":\"%s/graph/%s/deviceManagement/detectedApps/%s/"
                         "managedDevices?%s%s%s$skiptoken=%s\"",
                         g.base, x->ver, t->apps[pos].id, top_s ? "$top=" : "", top_s ? top_s : "",
                         top_s ? "&" : "", tok);
        free(tok);
    }
    (void)buf_addc(&b, '}');
    r = sim_resp_new(200, SIM_GRAPH_CT);
    sim_resp_buf(r, &b);
    return r;
}

/* Extracts an id from "/{id}" or "('{id}')" at s into out; returns the rest of the path. */
const char *
sim_path_key(const char *s, char *out, size_t outlen)
{
    size_t n = 0;

    out[0] = '\0';
    if (s[0] == '(' && s[1] == '\'') {
        const char *e = strstr(s + 2, "')");
        if (e == NULL)
            return NULL;
        n = (size_t)(e - s - 2);
        if (n >= outlen)
            return NULL;
        memcpy(out, s + 2, n);
        out[n] = '\0';
        return e + 2;
    }
    if (s[0] == '/' && s[1]) {
        const char *e = strchr(s + 1, '/');
        n = e ? (size_t)(e - s - 1) : strlen(s + 1);
        if (n >= outlen)
            return NULL;
        memcpy(out, s + 1, n);
        out[n] = '\0';
        return s + 1 + n;
    }
    return NULL;
}

static struct resp *graph_batch(struct gctx *x, const char *body, size_t len);

static json_t *
password_json(const struct simw_secret *sec, int with_text)
{
    char st[32], en[32], hint[4];

    clock_fmt(sec->start, st, sizeof st);
    clock_fmt(sec->expires, en, sizeof en);
    snprintf(hint, sizeof hint, "%.3s", sec->value);
    return json_pack("{s:n, s:s, s:s, s:s, s:o, s:s, s:s}", "customKeyIdentifier", "endDateTime",
                     en, "keyId", sec->key_id, "startDateTime", st, "secretText",
                     with_text ? json_string(sec->value) : json_null(), "hint", hint, "displayName",
                     "memsync");
}

static json_t *
application_json(struct gctx *x, const struct simw_app *a, const char *name)
{
    char ctx[256];
    json_t *pw = json_array();

    snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#applications/$entity", g.base, x->ver);
    for (int i = 0; i < a->nsecrets; i++)
        json_array_append_new(pw, password_json(&a->secrets[i], 0));
    return json_pack(
        "{s:s, s:s, s:n, s:n, s:s, s:n, s:[], s:s, s:n, s:s, s:n, s:n, s:n, s:[], s:s, s:s, s:[], "
        "s:n, s:{s:i, s:n, s:[], s:[], s:[]}, s:[], s:{s:[]}, s:{s:n, s:n, s:n, s:n, s:n}, s:[], "
        "s:{s:[], s:s}, s:o, s:[], s:{s:[], s:n, s:n, s:{s:b, s:b}}}",
        "@odata.context", ctx, "id", a->object_id, "deletedDateTime", "isFallbackPublicClient",
        "appId", a->id, "applicationTemplateId", "identifierUris", "createdDateTime",
        "2025-01-10T09:00:00Z", "disabledByMicrosoftStatus", "displayName", name,
        "isDeviceOnlyAuthSupported", "groupMembershipClaims", "optionalClaims", "addIns",
        "publisherDomain", g.w->partner_domain, "signInAudience", "AzureADMultipleOrgs", "tags",
        "tokenEncryptionKeyId", "api", "requestedAccessTokenVersion", 2, "acceptMappedClaims",
        "knownClientApplications", "oauth2PermissionScopes", "preAuthorizedApplications",
        "appRoles", "publicClient", "redirectUris", "info", "termsOfServiceUrl", "supportUrl",
        "privacyStatementUrl", "marketingUrl", "logoUrl", "keyCredentials",
        "parentalControlSettings", "countriesBlockedForMinors", "legalAgeGroupRule", "Allow",
        "passwordCredentials", pw, "requiredResourceAccess", "web", "redirectUris", "homePageUrl",
        "logoutUrl", "implicitGrantSettings", "enableIdTokenIssuance", 0,
        "enableAccessTokenIssuance", 0);
}

/* Partner-side directory routes: contracts, GDAP customers and relationships, tenant
 * information, and the two applications (for secret expiry and rotation). Caller holds the
 * world lock for writing. */
static struct resp *
graph_directory(struct gctx *x, const char *method, const char *path, const char *body,
                size_t bodylen)
{
    struct simworld *w = g.w;
    char ctx[256];
    struct resp *r;
    json_t *arr;

    if (strcmp(method, "GET") == 0 && strcmp(path, "/contracts") == 0) {
        arr = json_array();
        for (size_t i = 0; x->partner && i < w->ntenants; i++) {
            struct simtenant *t = w->tenants[i];
            json_array_append_new(arr, json_pack("{s:s, s:s, s:s, s:s, s:s}", "contractType",
                                                 "ResellerPartner", "customerId", t->id,
                                                 "defaultDomainName", t->initial_domain,
                                                 "displayName", t->name, "id", t->commerce_id));
        }
        snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#contracts", g.base, x->ver);
        r = sim_resp_new(200, SIM_GRAPH_CT);
        sim_resp_json(r, json_pack("{s:s, s:o}", "@odata.context", ctx, "value", arr));
        return r;
    }
    if (strcmp(method, "GET") == 0 && strncmp(path, "/contracts/", 11) == 0) {
        for (size_t i = 0; x->partner && i < w->ntenants; i++) {
            struct simtenant *t = w->tenants[i];
            if (strcasecmp(t->commerce_id, path + 11) == 0) {
                snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#contracts/$entity", g.base,
                         x->ver);
                r = sim_resp_new(200, SIM_GRAPH_CT);
                sim_resp_json(r, json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "@odata.context", ctx,
                                           "contractType", "ResellerPartner", "customerId", t->id,
                                           "defaultDomainName", t->initial_domain, "displayName",
                                           t->name, "id", t->commerce_id));
                return r;
            }
        }
        return sim_graph_error(404, "Request_ResourceNotFound",
                               "Resource not found for the segment 'contracts'.");
    }
    if (strcmp(method, "GET") == 0 &&
        (strcmp(path, "/tenantRelationships/delegatedAdminCustomers") == 0 ||
         strcmp(path, "/tenantRelationships/delegatedAdminRelationships") == 0)) {
        int rel = strcmp(path, "/tenantRelationships/delegatedAdminRelationships") == 0;
        arr = json_array();
        for (size_t i = 0; x->partner && i < w->ntenants; i++) {
            struct simtenant *t = w->tenants[i];
            if (rel) {
                char id[80];
                snprintf(id, sizeof id, "%s-%s", t->commerce_id, w->partner_tenant_id);
                json_array_append_new(
                    arr, json_pack("{s:s, s:s, s:s, s:{s:s, s:s}, s:{s:[{s:s}]}, s:s, s:s, s:s, "
                                   "s:s, s:s}",
                                   "id", id, "displayName", "memsync GDAP", "duration", "P730D",
                                   "customer", "tenantId", t->id, "displayName", t->name,
                                   "accessDetails", "unifiedRoles", "roleDefinitionId",
                                   "62e90394-69f5-4237-9190-012177145e10", "status",
                                   t->consented ? "active" : "terminated", "createdDateTime",
                                   "2025-01-10T09:00:00Z", "lastModifiedDateTime",
                                   "2025-01-10T09:05:00Z", "activatedDateTime",
                                   "2025-01-10T09:05:00Z", "endDateTime", "2027-01-10T09:00:00Z"));
            } else {
                json_array_append_new(arr, json_pack("{s:s, s:s, s:s}", "id", t->id, "tenantId",
                                                     t->id, "displayName", t->name));
            }
        }
        snprintf(ctx, sizeof ctx, "%s/graph/%s/tenantRelationships/$metadata#%s", g.base, x->ver,
                 rel ? "delegatedAdminRelationships" : "delegatedAdminCustomers");
        r = sim_resp_new(200, SIM_GRAPH_CT);
        sim_resp_json(r, json_pack("{s:s, s:o}", "@odata.context", ctx, "value", arr));
        return r;
    }
    if (strcmp(method, "GET") == 0 &&
        strncmp(path, "/tenantRelationships/findTenantInformationByTenantId(tenantId='", 63) == 0) {
        char id[64];
        const char *s = path + 63, *e = strchr(s, '\'');
        size_t n = e ? (size_t)(e - s) : 0;
        struct simtenant *t = NULL;
        if (n > 0 && n < sizeof id) {
            memcpy(id, s, n);
            id[n] = '\0';
            t = simw_tenant_by_id(w, id);
        }
        if (t == NULL || !t->exists)
            return sim_graph_error(404, "Request_ResourceNotFound", "Tenant not found.");
        snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#microsoft.graph.tenantInformation", g.base,
                 x->ver);
        r = sim_resp_new(200, SIM_GRAPH_CT);
        sim_resp_json(r, json_pack("{s:s, s:s, s:n, s:s, s:s}", "@odata.context", ctx, "tenantId",
                                   t->id, "federationBrandName", "displayName", t->name,
                                   "defaultDomainName", t->initial_domain));
        return r;
    }
    if (strncmp(path, "/applications", 13) == 0) {
        char key[64];
        const char *rest = path + 13;
        struct simw_app *a = NULL;
        if (strncmp(rest, "(appId='", 8) == 0) {
            const char *e = strchr(rest + 8, '\'');
            size_t n = e ? (size_t)(e - rest - 8) : 0;
            if (n == 0 || n >= sizeof key || e[1] != ')')
                return sim_graph_error(400, "BadRequest", "Bad request path.");
            memcpy(key, rest + 8, n);
            key[n] = '\0';
            rest = e + 2;
            a = strcasecmp(key, w->sync_app.id) == 0      ? &w->sync_app
                : strcasecmp(key, w->partner_app.id) == 0 ? &w->partner_app
                                                          : NULL;
        } else if ((rest = sim_path_key(rest, key, sizeof key)) != NULL) {
            a = strcasecmp(key, w->sync_app.object_id) == 0      ? &w->sync_app
                : strcasecmp(key, w->partner_app.object_id) == 0 ? &w->partner_app
                                                                 : NULL;
        }
        if (a == NULL || !x->partner)
            return sim_graph_error(404, "Request_ResourceNotFound",
                                   "Resource not found for the segment 'applications'.");
        if (strcmp(method, "GET") == 0 && __atomic_load_n(&g.no_app_read, __ATOMIC_RELAXED))
            return sim_graph_error(403, "Authorization_RequestDenied",
                                   "Insufficient privileges to complete the operation.");
        if (strcmp(method, "GET") == 0 && *rest == '\0') {
            r = sim_resp_new(200, SIM_GRAPH_CT);
            sim_resp_json(
                r, application_json(x, a, a == &w->sync_app ? "memsync sync" : "memsync partner"));
            return r;
        }
        if (strcmp(method, "POST") == 0 && strcmp(rest, "/addPassword") == 0) {
            const char *s = simw_secret_add(w, a, clock_now() + 2 * 365 * 86400);
            (void)s;
            a->secrets[a->nsecrets - 1].start = clock_now();
            r = sim_resp_new(200, SIM_GRAPH_CT);
            json_t *o = password_json(&a->secrets[a->nsecrets - 1], 1);
            json_t *in = json_loadb(body ? body : "", bodylen, 0, NULL);
            const char *dn = json_string_value(
                json_object_get(json_object_get(in, "passwordCredential"), "displayName"));
            if (dn)
                json_object_set_new(o, "displayName", json_string(dn));
            json_decref(in);
            snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#microsoft.graph.passwordCredential",
                     g.base, x->ver);
            json_object_set_new(o, "@odata.context", json_string(ctx));
            sim_resp_json(r, o);
            return r;
        }
        if (strcmp(method, "POST") == 0 && strcmp(rest, "/removePassword") == 0) {
            json_t *in = json_loadb(body ? body : "", bodylen, 0, NULL);
            const char *kid = json_string_value(json_object_get(in, "keyId"));
            int found = 0;
            for (int i = 0; kid && i < a->nsecrets; i++) {
                if (strcasecmp(a->secrets[i].key_id, kid) == 0) {
                    free(a->secrets[i].value);
                    memmove(&a->secrets[i], &a->secrets[i + 1],
                            (size_t)(a->nsecrets - i - 1) * sizeof(a->secrets[0]));
                    a->nsecrets--;
                    found = 1;
                    break;
                }
            }
            json_decref(in);
            if (!found)
                return sim_graph_error(400, "BadRequest",
                                       "No password credential with that keyId.");
            r = sim_resp_new(204, NULL);
            return r;
        }
        return sim_graph_error(405, "Request_BadRequest",
                               "Specified HTTP method is not allowed for the request target.");
    }
    return sim_graph_error(400, "BadRequest", "Resource not found for the segment.");
}

/* GET deviceManagement/managedDeviceOverview (v1.0 and beta): the singleton entity at the top
 * level with its context, as Graph answers a single entity. Counts come from the world:
 * enrolledDeviceCount is every device the unfiltered listing should return. */
static struct resp *
graph_overview(struct gctx *x)
{
    size_t n = 0, win = 0, ios = 0, mac = 0, android = 0, other = 0;
    int os = simw_prop_index("operatingSystem");
    char ctx[256];
    struct resp *r;

    if (x->t != NULL) {
        pthread_rwlock_rdlock(&g.w->lock);
        n = x->t->ndev;
        for (size_t i = 0; i < n; i++) {
            const char *v = os > 0 ? x->t->devs[i]->str[os] : NULL;

            if (v == NULL)
                other++;
            else if (strcasecmp(v, "Windows") == 0)
                win++;
            else if (strcasecmp(v, "iOS") == 0 || strcasecmp(v, "iPadOS") == 0)
                ios++;
            else if (strcasecmp(v, "macOS") == 0)
                mac++;
            else if (strcasecmp(v, "Android") == 0)
                android++;
            else
                other++;
        }
        pthread_rwlock_unlock(&g.w->lock);
    }
    snprintf(ctx, sizeof ctx,
             "%s/graph/%s/$metadata#deviceManagement/managedDeviceOverview/$entity", g.base,
             x->ver);
    r = sim_resp_new(200, SIM_GRAPH_CT);
    sim_resp_json(
        r,
        json_pack(
            "{s:s, s:s, s:s, s:I, s:I, s:i, s:{s:s, s:I, s:I, s:I, s:i, s:I, s:I, s:i, s:i, s:i, "
            "s:i, s:i, s:i}, s:{s:s, s:i, s:i, s:i, s:i, s:i}}",
            "@odata.context", ctx, "@odata.type", "#microsoft.graph.managedDeviceOverview", "id",
            "4a6c4fb5-3f36-4c51-9a2a-0c6e5b1f0d2e", "enrolledDeviceCount", (json_int_t)n,
            "mdmEnrolledCount", (json_int_t)n, "dualEnrolledDeviceCount", 0,
            "deviceOperatingSystemSummary", "@odata.type",
            "microsoft.graph.deviceOperatingSystemSummary", "androidCount", (json_int_t)android,
            "iosCount", (json_int_t)ios, "macOSCount", (json_int_t)mac, "windowsMobileCount", 0,
            "windowsCount", (json_int_t)win, "unknownCount", (json_int_t)other,
            "androidDedicatedCount", 0, "androidDeviceAdminCount", 0, "androidFullyManagedCount", 0,
            "androidWorkProfileCount", 0, "androidCorporateWorkProfileCount", 0,
            "configMgrDeviceCount", 0, "deviceExchangeAccessStateSummary", "@odata.type",
            "microsoft.graph.deviceExchangeAccessStateSummary", "allowedDeviceCount", 0,
            "blockedDeviceCount", 0, "quarantinedDeviceCount", 0, "unknownDeviceCount", 0,
            "unavailableDeviceCount", 0));
    return r;
}

/* Dispatches one Graph request (also used by $batch). `path` starts after /graph/{ver}. */
static struct resp *
graph_dispatch(struct gctx *x, const char *method, const char *path, const char *body,
               size_t bodylen, enum route *rt, int *page)
{
    char key[128];
    const char *rest;

    *rt = R_OTHER;
    *page = 0;
    if (strcmp(path, "/organization") == 0) {
        *rt = R_ORGANIZATION;
        if (strcmp(method, "GET") != 0)
            return sim_graph_error(405, "Request_BadRequest",
                                   "Specified HTTP method is not allowed for the request target.");
        if (x->t != NULL && x->t->org_denied) /* set_tenant org_readable: false */
            return sim_graph_error(403, "Authorization_RequestDenied",
                                   "Insufficient privileges to complete the operation.");
        return graph_organization(x);
    }
    if (strcmp(path, "/deviceManagement/managedDeviceOverview") == 0) {
        *rt = R_OVERVIEW;
        struct resp *gate = graph_intune_gate(x);
        if (gate)
            return gate;
        if (strcmp(method, "GET") != 0)
            return sim_graph_error(405, "BadRequest", "Method not allowed.");
        return graph_overview(x);
    }
    if (strcmp(path, "/$batch") == 0) {
        *rt = R_BATCH;
        if (sim_inner_args != NULL)
            return sim_graph_error(400, "BadRequest", "Nested batch requests are not supported.");
        if (strcmp(method, "POST") != 0)
            return sim_graph_error(405, "BadRequest", "Method not allowed.");
        return graph_batch(x, body, bodylen);
    }
    if (strncmp(path, "/deviceManagement/reports/exportJobs", 36) == 0) {
        *rt = R_EXPORT;
        struct resp *gate = graph_intune_gate(x);
        if (gate)
            return gate;
        return sim_export_route(x, method, path + 36, body, bodylen, rt);
    }
    if (strncmp(path, "/deviceManagement/managedDevices", 32) == 0) {
        rest = path + 32;
        *rt = *rest ? R_DEVICE : R_DEVICES;
        struct resp *gate = graph_intune_gate(x);
        if (gate)
            return gate;
        if (strcmp(method, "GET") != 0)
            return sim_graph_error(405, "BadRequest", "Method not allowed.");
        if (*rest == '\0')
            return graph_devices(x, page);
        rest = sim_path_key(rest, key, sizeof key);
        if (rest == NULL)
            return sim_graph_error(400, "BadRequest", "Bad request path.");
        pthread_rwlock_rdlock(&g.w->lock);
        struct resp *r;
        if (*rest == '\0') {
            r = graph_device(x, key);
        } else if (strcmp(rest, "/detectedApps") == 0) {
            *rt = R_DEVICE_APPS;
            long pos = x->t ? simw_device_pos(x->t, key) : -1;
            if (!x->beta)
                r = sim_graph_error(400, "BadRequest",
                                    "Resource not found for the segment 'detectedApps'.");
            else if (pos < 0)
                r = sim_graph_error(404, "ResourceNotFound",
                                    "Resource not found for the segment 'managedDevices'.");
            else
                r = graph_apps(x, x->t->devs[pos],
                               "deviceManagement/managedDevices('x')/"
                               "detectedApps");
        } else {
            r = sim_graph_error(400, "BadRequest", "Resource not found for the segment.");
        }
        pthread_rwlock_unlock(&g.w->lock);
        return r;
    }
    if (strncmp(path, "/deviceManagement/detectedApps", 30) == 0) {
        rest = path + 30;
        *rt = *rest ? R_APP : R_APPS;
        struct resp *gate = graph_intune_gate(x);
        if (gate)
            return gate;
        if (strcmp(method, "GET") != 0)
            return sim_graph_error(405, "BadRequest", "Method not allowed.");
        pthread_rwlock_rdlock(&g.w->lock);
        struct resp *r;
        if (*rest == '\0') {
            r = graph_apps(x, NULL, "deviceManagement/detectedApps");
        } else if ((rest = sim_path_key(rest, key, sizeof key)) == NULL) {
            r = sim_graph_error(400, "BadRequest", "Bad request path.");
        } else if (*rest == '\0') {
            long pos = x->t ? simw_app_pos(x->t, key) : -1;
            if (pos < 0) {
                r = sim_graph_error(404, "ResourceNotFound",
                                    "Resource not found for the segment 'detectedApps'.");
            } else {
                const struct simapp *a = &x->t->apps[pos];
                char ctx[256];
                unsigned mask;
                json_t *o;

                r = parse_app_select(sim_arg_lookup(x->c, "$select"), &mask);
                if (r == NULL) {
                    snprintf(ctx, sizeof ctx,
                             "%s/graph/%s/$metadata#deviceManagement/detectedApps/"
                             "$entity",
                             g.base, x->ver);
                    o = json_pack("{s:s}", "@odata.context", ctx);
                    json_object_update_new(o, app_json(a, mask));
                    r = sim_resp_new(200, SIM_GRAPH_CT);
                    sim_resp_json(r, o);
                }
            }
        } else if (strcmp(rest, "/managedDevices") == 0) {
            *rt = R_APP_DEVICES;
            r = graph_app_devices(x, key);
        } else {
            r = sim_graph_error(400, "BadRequest", "Resource not found for the segment.");
        }
        pthread_rwlock_unlock(&g.w->lock);
        return r;
    }
    if (strncmp(path, "/contracts", 10) == 0 || strncmp(path, "/tenantRelationships/", 21) == 0 ||
        strncmp(path, "/applications", 13) == 0) {
        struct resp *r;
        pthread_rwlock_wrlock(&g.w->lock);
        r = graph_directory(x, method, path, body, bodylen);
        pthread_rwlock_unlock(&g.w->lock);
        return r;
    }
    return sim_graph_error(400, "BadRequest", "Resource not found for the segment.");
}

/* Resolves the token's tenant for Graph. Returns an error response or NULL. */
static struct resp *
graph_auth(struct MHD_Connection *c, struct gctx *x)
{
    struct resp *r = sim_bearer_check(c, SIM_GRAPH_AUD, &x->cl);

    if (r)
        return r;
    if (strcasecmp(x->cl.appid, g.w->sync_app.id) != 0)
        return sim_graph_error(403, "Authorization_RequestDenied",
                               "Insufficient privileges to complete the operation.");
    if (strcasecmp(x->cl.tid, g.w->partner_tenant_id) == 0) {
        x->partner = 1;
        return NULL;
    }
    pthread_rwlock_rdlock(&g.w->lock);
    x->t = simw_tenant_by_id(g.w, x->cl.tid);
    pthread_rwlock_unlock(&g.w->lock);
    if (x->t == NULL)
        return sim_graph_error(401, "InvalidAuthenticationToken",
                               "Access token validation failure. Invalid tenant.");
    return NULL;
}

static int
is_intune_route(enum route rt)
{
    return rt == R_DEVICES || rt == R_DEVICE || rt == R_DEVICE_APPS || rt == R_APPS ||
           rt == R_APP || rt == R_APP_DEVICES || rt == R_EXPORT || rt == R_OVERVIEW;
}

/* Intune and global Graph throttles for one (inner) request; returns a 429 or NULL. */
static struct resp *
graph_throttle(struct gctx *x, enum route rt)
{
    char key[112];
    double wait;

    snprintf(key, sizeof key, "global|%s", x->cl.appid);
    wait = sim_throttle_hit(key, TH_GLOBAL, 0);
    if (wait <= 0 && is_intune_route(rt)) {
        snprintf(key, sizeof key, "intune|%s|%s", x->cl.appid, x->cl.tid);
        wait = sim_throttle_hit(key, TH_INTUNE, 0);
    }
    long others = x->t != NULL && x->t->other_apps >= 0 ? x->t->other_apps : g.other_apps;

    if (wait <= 0 && is_intune_route(rt) && others > 0) {
        snprintf(key, sizeof key, "tenant|%s", x->cl.tid);
        wait = sim_throttle_hit(key, TH_TENANT, others);
    }
    if (wait <= 0 && rt == R_DEVICE_APPS && g.dapps_limit > 0) {
        snprintf(key, sizeof key, "dapps|%s|%s", x->cl.appid, x->cl.tid);
        if (sim_throttle_hit(key, TH_DAPPS, 0) > 0)
            return sim_graph_429(-1); /* no Retry-After: Microsoft Q&A 5784629 */
    }
    return wait > 0 ? sim_graph_429(wait) : NULL;
}

static void
graph_headers(struct MHD_Connection *c, struct resp *r)
{
    const char *crid =
        c ? MHD_lookup_connection_value(c, MHD_HEADER_KIND, "client-request-id") : NULL;
    char rid[37];
    int have = 0;

    for (int i = 0; i < r->nhdrs; i++)
        if (strcmp(r->hdrs[i].name, "request-id") == 0)
            have = 1;
    if (!have) {
        sim_rand_guid(rid);
        sim_resp_hdr(r, "request-id", rid);
    }
    if (crid && strlen(crid) < 128)
        sim_resp_hdr(r, "client-request-id", crid);
    if (r->status < 300)
        sim_resp_hdr(r, "OData-Version", "4.0");
    sim_resp_hdr(r, "Cache-Control", "no-cache");
}

/* Route of a Graph path (after /graph/{version}), for throttles, faults and statistics. */
static enum route
graph_classify(const char *path)
{
    if (strcmp(path, "/organization") == 0)
        return R_ORGANIZATION;
    if (strncmp(path, "/deviceManagement/managedDevices", 32) == 0)
        return path[32] == '\0'                     ? R_DEVICES
               : strstr(path + 32, "/detectedApps") ? R_DEVICE_APPS
                                                    : R_DEVICE;
    if (strncmp(path, "/deviceManagement/detectedApps", 30) == 0)
        return path[30] == '\0'                       ? R_APPS
               : strstr(path + 30, "/managedDevices") ? R_APP_DEVICES
                                                      : R_APP;
    if (strncmp(path, "/deviceManagement/reports/exportJobs", 36) == 0)
        return R_EXPORT;
    if (strcmp(path, "/$batch") == 0)
        return R_BATCH;
    if (strcmp(path, "/deviceManagement/managedDeviceOverview") == 0)
        return R_OVERVIEW;
    return R_OTHER;
}

/* The rename_during_listing fault: Graph pages managedDevices with a keyset skiptoken on
 * (LastDeviceName, LastDeviceId) (see the cloudpc fixture's nextLink), so a device renamed to
 * a name before the cursor while the pages are read is in no page. The simulator's cursor is
 * the device's sequence, so the device about to be listed first on this page is renamed (to
 * sort first) and left out of this page. */
static void
listing_rename(struct gctx *x)
{
    const char *skip = sim_arg_lookup(x->c, "$skiptoken");
    int name = simw_prop_index("deviceName");
    int64_t v[2] = {0, 1};
    size_t i;

    if (x->t == NULL || name <= 0 || (skip && simtok_open_ints("mdsk", skip, v, 2) != ERR_OK))
        return;
    pthread_rwlock_wrlock(&g.w->lock);
    i = simw_device_after(x->t, (uint64_t)v[0]);
    if (i < x->t->ndev) {
        struct simdev *d = x->t->devs[i];
        char *renamed = xasprintf("0-%s", d->str[name] != NULL ? d->str[name] : "device");

        simw_dev_set_str(d, name, renamed);
        free(renamed);
        x->skip_seq = d->seq;
    }
    pthread_rwlock_unlock(&g.w->lock);
}

/* Runs the full pipeline of one Graph request (auth, throttle, fault, route). */
static struct resp *
graph_request(struct gctx *x, struct MHD_Connection *c, const char *method, const char *path,
              const char *body, size_t len, int apply_faults)
{
    enum route rt = R_OTHER;
    int page = 0;
    struct resp *r = NULL;
    struct simw_fault f;
    enum simw_fault_kind mode = SIMW_FAULT_NONE;
    int delay = 0;

    rt = graph_classify(path);
    if (rt != R_BATCH) {
        r = graph_throttle(x, rt);
        if (r)
            return r;
    }
    if (rt == R_DEVICES) {
        /* the page number is only known from the skiptoken */
        const char *skip = sim_arg_lookup(c, "$skiptoken");
        int64_t v[2];
        page = 1;
        if (skip && simtok_open_ints("mdsk", skip, v, 2) == ERR_OK)
            page = (int)v[1];
    }
    x->short_keep = -1;
    x->skip_seq = 0;
    if (apply_faults &&
        sim_fault_take(rt, x->partner ? g.w->partner_tenant_id : x->t->id, page, &f)) {
        r = sim_fault_apply(&f, 1, &mode, &delay);
        if (r)
            return r;
        if (rt == R_DEVICES && f.kind == SIMW_FAULT_SHORT)
            x->short_keep = f.keep > 0 ? f.keep : 0;
        else if (rt == R_DEVICES && f.kind == SIMW_FAULT_RENAME)
            listing_rename(x);
    }
    r = graph_dispatch(x, method, path, body, len, &rt, &page);
    r->mode = mode;
    r->delay_ms = delay;
    return r;
}

/* --- $batch --------------------------------------------------------------------------------- */

static struct resp *
graph_batch(struct gctx *x, const char *body, size_t len)
{
    json_t *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, NULL);
    json_t *reqs = root ? json_object_get(root, "requests") : NULL;
    json_t *out = NULL;
    size_t i;
    json_t *it;

    if (!json_is_array(reqs)) {
        json_decref(root);
        return sim_graph_error(400, "BadRequest", "Invalid batch payload format.");
    }
    if (json_array_size(reqs) > SIM_BATCH_MAX) {
        json_decref(root);
        return sim_graph_error(400, "BadRequest",
                               "The number of batch requests exceeds the maximum of 20.");
    }
    out = json_array();
    json_array_foreach(reqs, i, it)
    {
        const char *id = json_string_value(json_object_get(it, "id"));
        const char *method = json_string_value(json_object_get(it, "method"));
        const char *url = json_string_value(json_object_get(it, "url"));
        int dup = 0;
        for (size_t k = 0; id && k < i; k++)
            dup |= strcasecmp(
                       id, json_string_value(json_object_get(json_array_get(reqs, k), "id"))) == 0;
        if (id == NULL || method == NULL || url == NULL || dup ||
            (json_object_get(it, "body") && !json_is_object(json_object_get(it, "headers")))) {
            json_decref(out);
            json_decref(root);
            return sim_graph_error(400, "BadRequest",
                                   dup ? "Batch request ids must be unique."
                                       : "Batch request items need id, method and url (and headers "
                                         "when a body is sent).");
        }
    }
    /* inner requests read their own query, never the outer one */
    struct gctx inner = *x;
    inner.c = NULL;
    json_t *statuses = json_object();
    json_array_foreach(reqs, i, it)
    {
        const char *id = json_string_value(json_object_get(it, "id"));
        const char *method = json_string_value(json_object_get(it, "method"));
        const char *url = json_string_value(json_object_get(it, "url"));
        json_t *deps = json_object_get(it, "dependsOn"), *dv;
        char path[4096], *q, *ibody = NULL;
        json_t *args = json_object();
        struct resp *r = NULL;
        json_t *hdrs = json_object(), *ib;
        size_t di;
        int failed_dep = 0;

        /* a prerequisite that failed (or has not run) fails its dependants with 424 */
        json_array_foreach(deps, di, dv)
        {
            json_t *stv =
                json_string_value(dv) ? json_object_get(statuses, json_string_value(dv)) : NULL;
            if (stv == NULL || json_integer_value(stv) >= 400)
                failed_dep = 1;
        }
        if (failed_dep) {
            r = sim_graph_error(424, "FailedDependency",
                                "The request was not run because a request it depends on failed.");
        } else if (strlen(url) + 2 > sizeof path) {
            r = sim_graph_error(400, "BadRequest", "The request URL is too long.");
        } else {
            snprintf(path, sizeof path, "%s%s", url[0] == '/' ? "" : "/", url);
            q = strchr(path, '?');
            if (q) {
                *q++ = '\0';
                char *save = NULL;
                for (char *p = strtok_r(q, "&", &save); p; p = strtok_r(NULL, "&", &save)) {
                    char *eq = strchr(p, '=');
                    if (eq) {
                        *eq = '\0';
                        (void)simtok_form_decode(eq + 1);
                    }
                    (void)simtok_form_decode(p);
                    json_object_set_new(args, p, json_string(eq ? eq + 1 : ""));
                }
            }
            if (json_object_get(it, "body"))
                ibody = json_dumps(json_object_get(it, "body"), JSON_COMPACT);
            sim_inner_args = args;
            sim_in_batch_item = 1;
            r = graph_request(&inner, NULL, method, path, ibody, ibody ? strlen(ibody) : 0, 1);
            sim_in_batch_item = 0;
            sim_inner_args = NULL;
            free(ibody);
            sim_stat_count(graph_classify(path), x->partner ? g.w->partner_tenant_id : x->t->id,
                           r->status == 429);
            sim_reqlog_add(NULL, graph_classify(path),
                           x->partner ? g.w->partner_tenant_id : x->t->id, method, r);
        }
        json_decref(args);
        graph_headers(NULL, r);
        json_object_set_new(statuses, id, json_integer(r->status));
        for (int h = 0; h < r->nhdrs; h++)
            json_object_set_new(hdrs, r->hdrs[h].name, json_string(r->hdrs[h].value));
        if (r->ctype)
            json_object_set_new(hdrs, "Content-Type", json_string(r->ctype));
        ib = r->body ? json_loadb(r->body, r->len, 0, NULL) : NULL;
        json_t *item = json_pack("{s:s, s:i, s:o}", "id", id, "status", r->status, "headers", hdrs);
        if (ib)
            json_object_set_new(item, "body", ib);
        json_array_append_new(out, item);
        sim_resp_free(r);
    }
    json_decref(statuses);
    json_decref(root);
    struct resp *r = sim_resp_new(200, SIM_GRAPH_CT);
    sim_resp_json(r, json_pack("{s:o}", "responses", out));
    return r;
}

/* The routes under /graph/: token, throttles, faults, then the route; Graph's response headers
 * on every answer. */
struct resp *
sim_graph_route(struct MHD_Connection *c, const char *method, const char *path, const char *body,
                size_t len, enum route *rt, const char **tenant)
{
    struct gctx x;
    struct resp *r;

    memset(&x, 0, sizeof x);
    x.c = c;
    x.beta = path[0] == 'b';
    snprintf(x.ver, sizeof x.ver, "%s", x.beta ? "beta" : "v1.0");
    *rt = graph_classify(path + 4);
    r = graph_auth(c, &x);
    if (r == NULL) {
        *tenant = x.partner ? g.w->partner_tenant_id : x.t->id;
        r = graph_request(&x, c, method, path + 4, body, len, 1);
    }
    graph_headers(c, r);
    return r;
}
