/* sim_partner.c - Partner Center of `memsync sim`: the customer list and customer routes under
 * /pc/v1.
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
#include "err.h"
#include "simworld.h"

/* --- Partner Center ------------------------------------------------------------------------- */

static json_t *
pc_link(const char *uri)
{
    return json_pack("{s:s, s:s, s:[]}", "uri", uri, "method", "GET", "headers");
}

static json_t *
pc_customer_json(const struct simtenant *t, int full)
{
    char self[96], prof[128];
    json_t *cp, *cust;

    snprintf(self, sizeof self, "/customers/%s", t->id);
    snprintf(prof, sizeof prof, "/customers/%s/profiles/company", t->id);
    cp = json_pack("{s:s, s:s, s:s, s:{s:o}, s:{s:s}}", "tenantId", t->id, "domain",
                   t->initial_domain, "companyName", t->name, "links", "self", pc_link(prof),
                   "attributes", "objectType", "CustomerCompanyProfile");
    if (full) {
        /* address and email only come with a single-customer GET */
        json_object_set_new(cp, "address",
                            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s}", "country", t->country,
                                      "region", "wa", "city", "Redmond", "addressLine1",
                                      "1 Main St", "postalCode", "98052", "phoneNumber",
                                      "4255550100"));
        json_object_set_new(cp, "email", json_string("admin@example.com"));
        /* keep links and attributes last, as Partner Center writes them */
        json_t *l = json_incref(json_object_get(cp, "links"));
        json_t *a = json_incref(json_object_get(cp, "attributes"));
        json_object_del(cp, "links");
        json_object_del(cp, "attributes");
        json_object_set_new(cp, "links", l);
        json_object_set_new(cp, "attributes", a);
    }
    cust = json_pack("{s:s, s:s, s:o}", "id", t->id, "commerceId", t->commerce_id, "companyProfile",
                     cp);
    if (full) {
        char bp[128];
        snprintf(bp, sizeof bp, "/customers/%s/profiles/billing", t->id);
        json_object_set_new(
            cust, "billingProfile",
            json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:{s:s, s:s, s:s, s:s, s:s, s:s, "
                      "s:s, s:s}, s:{s:o}, s:{s:s, s:s}}",
                      "id", t->commerce_id, "firstName", "Admin", "lastName", "Contact", "email",
                      "admin@example.com", "culture", "en-US", "language", "en", "companyName",
                      t->name, "defaultAddress", "country", t->country, "city", "Redmond", "state",
                      "WA", "addressLine1", "1 Main St", "postalCode", "98052", "firstName",
                      "Admin", "lastName", "Contact", "phoneNumber", "4255550100", "links", "self",
                      pc_link(bp), "attributes", "etag", "-4242348048554929329", "objectType",
                      "CustomerBillingProfile"));
    }
    json_object_set_new(cust, "relationshipToPartner", json_string("reseller"));
    if (full) {
        json_object_set_new(cust, "allowDelegatedAccess", json_boolean(1));
        json_object_set_new(cust, "customDomains",
                            json_pack("[s,s]", t->initial_domain, t->domain));
    }
    if (t->associated_partner[0])
        json_object_set_new(cust, "associatedPartnerId", json_string(t->associated_partner));
    json_object_set_new(cust, "links", json_pack("{s:o}", "self", pc_link(self)));
    json_object_set_new(cust, "attributes", json_pack("{s:s}", "objectType", "Customer"));
    return cust;
}

static struct resp *
pc_auth(struct MHD_Connection *c, struct simtok_claims *cl)
{
    struct resp *r = sim_bearer_check(c, SIM_PC_AUD, cl);

    if (r)
        return r;
    if (strcasecmp(cl->tid, g.w->partner_tenant_id) != 0 ||
        strcasecmp(cl->appid, g.w->partner_app.id) != 0) {
        r = sim_pc_error(403, "600001", "The partner tenant is not authorized for this resource.");
        return r;
    }
    return NULL;
}

static struct resp *
handle_customers(struct MHD_Connection *c, const char *rest)
{
    struct simworld *w = g.w;
    struct simtok_claims cl;
    struct resp *r = pc_auth(c, &cl);
    const char *size_s = sim_arg_lookup(c, "size");
    const char *seek = sim_arg_lookup(c, "seekOperation");
    const char *filter = sim_arg_lookup(c, "filter");
    long size = SIM_PC_PAGE_DEF;
    int64_t off = 0;
    char ffield[32] = "", fvalue[256] = "";

    if (r)
        return r;
    if (filter) {
        /* {"Field":"CompanyName"|"Domain","Value":"...","Operator":"starts_with"} */
        json_t *fj = json_loads(filter, JSON_REJECT_DUPLICATES, NULL);
        const char *fd = json_string_value(json_object_get(fj, "Field"));
        const char *fv = json_string_value(json_object_get(fj, "Value"));
        const char *fo = json_string_value(json_object_get(fj, "Operator"));
        int ok = fd && fv && fo && strcmp(fo, "starts_with") == 0 && strlen(fv) < sizeof fvalue;
        if (ok) {
            snprintf(ffield, sizeof ffield, "%.31s", fd);
            snprintf(fvalue, sizeof fvalue, "%s", fv);
        }
        json_decref(fj);
        if (!ok)
            return sim_pc_error(400, "400", "The filter is invalid.");
        if (strcmp(ffield, "IndirectReseller") == 0 ||
            strcmp(ffield, "IndirectCloudSolutionProvider") == 0)
            return sim_pc_error(403, "403",
                                "This operation requires App+User credentials; app-only access is "
                                "not supported.");
        if (strcmp(ffield, "CompanyName") != 0 && strcmp(ffield, "Domain") != 0)
            return sim_pc_error(400, "400", "The filter field is not supported.");
    }
    if (rest[0] == '/' && rest[1]) {
        /* GET /v1/customers/{id} */
        pthread_rwlock_rdlock(&w->lock);
        struct simtenant *t = simw_tenant_by_id(w, rest + 1);
        if (t && strcasecmp(t->id, rest + 1) == 0) {
            r = sim_resp_new(200, SIM_JSON_CT);
            sim_resp_json(r, pc_customer_json(t, 1));
        } else {
            r = sim_pc_error(404, "2000", "Customer not found.");
        }
        pthread_rwlock_unlock(&w->lock);
        return r;
    }
    if (size_s) {
        char *end;
        size = strtol(size_s, &end, 10);
        if (*size_s == '\0' || *end != '\0' || size < 0)
            return sim_pc_error(400, "400", "The size parameter is invalid.");
        if (size == 0)
            size = SIM_PC_PAGE_DEF;
        if (size > SIM_PC_PAGE_MAX)
            size = SIM_PC_PAGE_MAX;
    }
    if (seek) {
        const char *ct = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "MS-ContinuationToken");
        int64_t v[1];
        if (strcasecmp(seek, "Next") != 0)
            return sim_pc_error(400, "400", "Unsupported seek operation.");
        if (ct == NULL)
            return sim_pc_error(
                400, "400",
                "The continuation token header MS-ContinuationToken is required for "
                "seek operations.");
        if (simtok_open_ints("pcct", ct, v, 1) != ERR_OK || v[0] < 0)
            return sim_pc_error(400, "400", "The continuation token is invalid.");
        off = v[0];
    }
    json_t *items = json_array();
    size_t n = 0, end = (size_t)off + (size_t)size;
    pthread_rwlock_rdlock(&w->lock);
    /* n counts matching customers; items are those in [off, end) of the matching ones */
    for (size_t i = 0; i < w->ntenants; i++) {
        struct simtenant *t = w->tenants[i];
        if (ffield[0] && strncasecmp(strcmp(ffield, "Domain") == 0 ? t->initial_domain : t->name,
                                     fvalue, strlen(fvalue)) != 0)
            continue;
        if (n >= (size_t)off && n < end)
            json_array_append_new(items, pc_customer_json(t, 0));
        n++;
    }
    pthread_rwlock_unlock(&w->lock);
    if (end > n)
        end = n;
    struct buf fq;
    buf_init(&fq, 4096);
    if (filter) {
        (void)buf_addstr(&fq, "&filter=");
        (void)buf_add_urlenc(&fq, filter);
    }
    char self[4200];
    snprintf(self, sizeof self, "/v1/customers?size=%ld%s", size, buf_cstr(&fq));
    json_t *links = json_pack("{s:o}", "self", pc_link(self));
    if (end < n) {
        int64_t v[1] = {(int64_t)end};
        char *tok = simtok_seal_ints("pcct", v, 1);
        char next[4300];
        snprintf(next, sizeof next, "/v1/customers?size=%ld%s&seekOperation=Next", size,
                 buf_cstr(&fq));
        json_object_set_new(links, "next",
                            json_pack("{s:s, s:s, s:[{s:s, s:s}]}", "uri", next, "method", "GET",
                                      "headers", "key", "MS-ContinuationToken", "value", tok));
        free(tok);
    }
    buf_free(&fq);
    r = sim_resp_new(200, SIM_JSON_CT);
    sim_resp_json(r, json_pack("{s:I, s:o, s:o, s:{s:s}}", "totalCount",
                               (json_int_t)json_array_size(items), "items", items, "links", links,
                               "attributes", "objectType", "Collection"));
    return r;
}

/* GET /pc/v1/customers[/...]: throttle and faults, then the answer with Partner Center's tracing
 * headers (MS-RequestId and MS-CorrelationId echoed when sent). */
struct resp *
sim_partner_route(struct MHD_Connection *c, const char *method, const char *path, enum route *rt)
{
    struct simw_fault f;
    enum simw_fault_kind mode = SIMW_FAULT_NONE;
    int delay = 0;
    struct resp *r;

    *rt = path[0] ? R_CUSTOMER : R_CUSTOMERS;
    if (strcmp(method, "GET") != 0)
        return sim_pc_error(405, "405", "Method not allowed.");
    double wait = sim_throttle_hit("pc|customers", TH_PC, 0);
    if (wait > 0)
        return sim_pc_429((int)(wait + 0.999));
    if (sim_fault_take(*rt, g.w->partner_tenant_id, 0, &f)) {
        r = sim_fault_apply(&f, 0, &mode, &delay);
        if (r)
            return r;
    }
    r = handle_customers(c, path);
    r->mode = mode;
    r->delay_ms = delay;
    {
        const char *rid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "MS-RequestId");
        const char *cid = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "MS-CorrelationId");
        char g1[37];
        sim_rand_guid(g1);
        sim_resp_hdr(r, "MS-RequestId", rid && strlen(rid) < 64 ? rid : g1);
        sim_resp_hdr(r, "MS-CorrelationId", cid && strlen(cid) < 64 ? cid : g1);
        sim_resp_hdr(r, "MS-CV", "memsync-sim.0");
    }
    return r;
}
