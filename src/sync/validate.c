/* validate.c - pre-save checks of the integration values against Microsoft. */
#include "validate.h"

#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "cloud.h"
#include "graph.h"
#include "guid.h"
#include "http.h"
#include "mem.h"
#include "partner.h"
#include "remedy.h"
#include "token.h"

#define CHECK_MAX 64

struct vctx {
    const struct config *cfg; /* with the integration's cloud applied */
    const struct cloud *cloud;
    const struct validate_input *in;
    struct validation *out;
    struct http_opts hopts;
    char correlation_id[37];          /* MS-CorrelationId of the checks' Partner Center requests */
    enum remedy_code last_token_fail; /* what the last failed get_token diagnosed */
};

/* The form field a failed credential check points at (struct check.field), from what Entra
 * said: the tenant, the app id or the key; "" when it does not say which. */
static void
check_field(struct check *c, enum remedy_code code, const char *tenant_field, const char *app_field,
            const char *secret_field)
{
    const char *f = "";

    switch (code) {
    case REMEDY_TENANT_NOT_FOUND:
        f = tenant_field;
        break;
    case REMEDY_APP_NOT_IN_TENANT:
        f = app_field;
        break;
    case REMEDY_SECRET_INVALID:
    case REMEDY_SECRET_EXPIRED:
    case REMEDY_SECRET_MISSING:
        f = secret_field;
        break;
    default:
        break;
    }
    snprintf(c->field, sizeof c->field, "%s", f);
}

static struct check *add_check(struct vctx *v, const char *id, const char *tenant, const char *fmt,
                               ...) __attribute__((format(printf, 4, 5)));

static struct check *
add_check(struct vctx *v, const char *id, const char *tenant, const char *fmt, ...)
{
    struct check *c;
    va_list ap;

    if (v->out->n >= CHECK_MAX)
        return &v->out->checks[CHECK_MAX - 1];
    c = &v->out->checks[v->out->n++];
    memset(c, 0, sizeof *c);
    snprintf(c->id, sizeof c->id, "%s", id);
    snprintf(c->tenant_id, sizeof c->tenant_id, "%s", tenant != NULL ? tenant : "");
    va_start(ap, fmt);
    vsnprintf(c->title, sizeof c->title, fmt, ap);
    va_end(ap);
    c->status = CHECK_PASS;
    return c;
}

static void
check_fail(struct check *c, enum check_status st, const struct remedy *r, const char *ms)
{
    c->status = st;
    snprintf(c->message, sizeof c->message, "%s", r->message);
    snprintf(c->remedy, sizeof c->remedy, "%s", r->action);
    if (ms != c->microsoft)
        snprintf(c->microsoft, sizeof c->microsoft, "%s", ms != NULL ? ms : "");
}

static const char *
check_status_name(enum check_status s)
{
    switch (s) {
    case CHECK_PASS:
        return "pass";
    case CHECK_FAIL:
        return "fail";
    case CHECK_WARN:
        return "warn";
    default:
        return "skip";
    }
}

/* Gets a token; on failure fills the check with the Entra diagnosis and returns NULL. */
static char *
get_token(struct vctx *v, struct check *c, const char *tenant, const char *app_id,
          const char *secret, const char *audience, const char *label, enum check_status on_fail)
{
    struct http_req req = {0};
    struct buf form;
    struct errbuf eb = {0};
    struct token_result tr = {0};
    struct remedy rem;
    struct remedy_ctx ctx = {0};
    char *url = token_url(v->cfg->login_url, tenant, 0);
    char *body = NULL, *tok = NULL;
    size_t blen = 0;
    long status = 0;
    char ms[512], crid[37], crh[64];

    ctx.tenant_id = tenant;
    ctx.app_id = app_id;
    ctx.app_label = label;
    ctx.login_base = v->cfg->login_url;
    buf_init(&form, 16384);
    token_form(&form, app_id, secret, audience, 0);
    req.method = "POST";
    req.url = url;
    req.body = form.data;
    req.body_len = form.len;
    req.headers[0] = "Content-Type: application/x-www-form-urlencoded";
    guid_random(crid);
    snprintf(crh, sizeof crh, "client-request-id: %s", crid);
    req.headers[1] = crh;
    req.timeout_ms = 30000;
    if (http_fetch(&v->hopts, &req, &status, &body, &blen, NULL, &eb) != ERR_OK) {
        remedy_set(&rem, REMEDY_NETWORK, &ctx, eb.msg);
        check_fail(c, on_fail, &rem, eb.msg);
        goto out;
    }
    if (token_parse(body, blen, status, &tr, &eb) != ERR_OK) {
        if (tr.aadsts != 0 || tr.error != NULL) {
            remedy_from_entra(&rem, &ctx, tr.aadsts, tr.error, status);
            snprintf(ms, sizeof ms, "HTTP %ld %s: %s", status, tr.error ? tr.error : "",
                     tr.error_description ? tr.error_description : "");
        } else {
            remedy_set(&rem, REMEDY_BAD_RESPONSE, &ctx, eb.msg);
            snprintf(ms, sizeof ms, "HTTP %ld: %s", status, eb.msg);
        }
        check_fail(c, on_fail, &rem, ms);
        v->last_token_fail = rem.code;
        goto out;
    }
    tok = tr.access_token;
    tr.access_token = NULL;
out:
    token_result_clear(&tr);
    buf_free(&form);
    free(url);
    free(body);
    return tok;
}

static void
wipe_free(char *s)
{
    if (s != NULL) {
        memset(s, 0, strlen(s));
        free(s);
    }
}

/* GET with a bearer token; returns the status (0 on transport failure, eb set). */
static long
get_json(struct vctx *v, const char *url, const char *token, const char *extra, char **body,
         size_t *blen, struct errbuf *eb)
{
    struct http_req req = {0};
    char *auth = xasprintf("Authorization: Bearer %s", token);
    char ids[2][96], g[37];
    size_t pcl = strlen(v->cfg->partner_center_url);
    int nh = 2;
    long status = 0;

    req.url = url;
    req.headers[0] = auth;
    req.headers[1] = "Accept: application/json";
    /* The ids Microsoft support asks for, as the sync sends them. */
    guid_random(g);
    if (pcl > 0 && strncmp(url, v->cfg->partner_center_url, pcl) == 0) {
        snprintf(ids[0], sizeof ids[0], "MS-RequestId: %s", g);
        snprintf(ids[1], sizeof ids[1], "MS-CorrelationId: %s", v->correlation_id);
        req.headers[nh++] = ids[0];
        req.headers[nh++] = ids[1];
        req.headers[nh++] = "MS-Contract-Version: v1";
    } else {
        snprintf(ids[0], sizeof ids[0], "client-request-id: %s", g);
        req.headers[nh++] = ids[0];
    }
    req.headers[nh] = extra;
    req.timeout_ms = 30000;
    if (http_fetch(&v->hopts, &req, &status, body, blen, NULL, eb) != ERR_OK)
        status = 0;
    wipe_free(auth);
    return status;
}

/* intune_plan: what the tenant's organization said about Intune (remedy_intune_plan). */
static void
graph_check(struct vctx *v, struct check *c, long status, const char *body, size_t blen,
            const struct errbuf *eb, const char *tenant, int intune_plan)
{
    struct remedy rem;
    struct remedy_ctx ctx = {0};
    struct remedy_graph_error rg = {0};
    struct graph_error ge;
    char ms[512];

    ctx.intune_plan = (enum remedy_intune_plan)intune_plan;
    ctx.tenant_id = tenant;
    ctx.app_id = v->in->sync_app_id;
    ctx.app_label = "Sync App";
    ctx.login_base = v->cfg->login_url;
    if (status == 0) {
        remedy_set(&rem, REMEDY_NETWORK, &ctx, eb->msg);
        check_fail(c, CHECK_WARN, &rem, eb->msg);
        return;
    }
    if (graph_error_parse(body, blen, &ge) == ERR_OK) {
        rg.status = status;
        rg.code = ge.code;
        rg.message = ge.message;
        rg.not_applicable = ge.not_applicable;
        rg.nested_forbidden = ge.nested_forbidden;
        remedy_from_graph_error(&rem, &ctx, &rg);
        snprintf(ms, sizeof ms, "HTTP %ld %s: %s", status, ge.code, ge.message);
    } else {
        remedy_from_graph(&rem, &ctx, status, NULL, NULL);
        snprintf(ms, sizeof ms, "HTTP %ld", status);
    }
    check_fail(c, CHECK_WARN, &rem, ms);
}

/* Tries one customer tenant with the Sync App: token, organization, one device. */
static void
check_tenant(struct vctx *v, const struct customer *cu)
{
    const char *tid = cu->tenant_id;
    const char *name = cu->name != NULL ? cu->name : tid;
    struct check *c;
    struct errbuf eb = {0};
    char *tok, *url = NULL, *body = NULL;
    size_t blen = 0;
    long status;
    int plan = 0;

    c = add_check(v, "tenant_token", tid, "Sync App signs in to %s", name);
    tok = get_token(v, c, tid, v->in->sync_app_id, v->in->sync_secret, v->cloud->graph_audience,
                    "Sync App", CHECK_WARN);
    if (tok == NULL) {
        if (cu->associated_partner_id != NULL) {
            struct remedy rem;
            struct remedy_ctx ctx = {.tenant_id = tid};

            remedy_set(&rem, REMEDY_INDIRECT_RESELLER, &ctx, NULL);
            check_fail(c, CHECK_WARN, &rem, c->microsoft);
        }
        return;
    }
    c = add_check(v, "tenant_organization", tid, "Sync App reads the organization of %s", name);
    url = xasprintf("%s/v1.0/organization", v->cfg->graph_url);
    status = get_json(v, url, tok, NULL, &body, &blen, &eb);
    if (status != 200) {
        graph_check(v, c, status, body, blen, &eb, tid, 0);
    } else {
        struct graph_org org;
        struct errbuf oeb = {0};

        if (graph_org_parse(body, blen, &org, &oeb) == ERR_OK)
            plan = org.intune_plan;
        graph_org_clear(&org);
    }
    free(url);
    free(body);
    body = NULL;
    c = add_check(v, "tenant_devices", tid, "Sync App reads Intune managed devices of %s", name);
    url = graph_devices_url(v->cfg->graph_url, "v1.0", 1);
    status = get_json(v, url, tok, NULL, &body, &blen, &eb);
    if (status != 200)
        graph_check(v, c, status, body, blen, &eb, tid, plan);
    free(url);
    free(body);
    wipe_free(tok);
}

int
validate_integration(const struct config *cfg, const struct validate_input *in,
                     struct validation *out, struct errbuf *eb)
{
    struct vctx v = {0};
    struct check *c;
    struct customer_page page = {0};
    char *pc_token = NULL, *sync_token = NULL, *url = NULL, *body = NULL;
    size_t blen = 0;
    int sample = in->sample > 0 ? in->sample : VALIDATE_DEFAULT_SAMPLE;
    int ids_ok = 1;
    const char *source = in->tenant_source != NULL ? in->tenant_source : "partner_center";
    struct config *ccfg = NULL;

    (void)eb;
    memset(out, 0, sizeof *out);
    out->checks = xcalloc(CHECK_MAX, sizeof *out->checks);
    out->customers = -1;
    if ((v.cloud = cloud_find(in->cloud)) == NULL)
        v.cloud = cloud_find(NULL);
    ccfg = xmalloc(sizeof *ccfg);
    *ccfg = *cfg;
    cloud_apply(v.cloud, ccfg);
    cfg = ccfg;
    v.cfg = cfg;
    v.in = in;
    v.out = out;
    v.hopts.ca_file = cfg->ca_file[0] != '\0' ? cfg->ca_file : NULL;
    guid_random(v.correlation_id);

    {
        static const struct {
            const char *id, *label, *field;
            size_t off;
        } guids[] = {
            {"partner_tenant_id_format", "Microsoft Partner Account ID", "partner_tenant_id",
             offsetof(struct validate_input, partner_tenant_id)},
            {"partner_app_id_format", "Microsoft Partner App ID", "partner_app_id",
             offsetof(struct validate_input, partner_app_id)},
            {"sync_app_id_format", "Microsoft Sync App ID", "sync_app_id",
             offsetof(struct validate_input, sync_app_id)},
        };
        for (size_t i = 0; i < sizeof guids / sizeof guids[0]; i++) {
            const char *val = *(const char *const *)((const char *)in + guids[i].off);

            c = add_check(&v, guids[i].id, NULL, "%s is a GUID", guids[i].label);
            if (!guid_valid(val)) {
                c->status = CHECK_FAIL;
                snprintf(c->field, sizeof c->field, "%s", guids[i].field);
                snprintf(c->message, sizeof c->message, "'%s' is not a GUID.",
                         val != NULL ? val : "");
                snprintf(c->remedy, sizeof c->remedy,
                         "Copy the %s from the Azure portal: it looks like "
                         "00000000-0000-0000-0000-000000000000.",
                         guids[i].label);
                ids_ok = 0;
            }
        }
    }
    if (!ids_ok)
        goto done;

    if (in->partner_secret != NULL) {
        c = add_check(&v, "partner_token", in->partner_tenant_id,
                      "Partner App gets a Partner Center token in the partner tenant");
        pc_token = get_token(&v, c, in->partner_tenant_id, in->partner_app_id, in->partner_secret,
                             v.cloud->pc_audience, "Partner App", CHECK_FAIL);
        if (pc_token == NULL)
            check_field(c, v.last_token_fail, "partner_tenant_id", "partner_app_id",
                        "partner_app_secret");
        if (pc_token != NULL && strcmp(source, "partner_center") == 0) {
            struct errbuf geb = {0};
            long status;

            c = add_check(&v, "customer_list", NULL, "The partner's customer list can be read");
            url = partner_customers_url(cfg->partner_center_url, PARTNER_PAGE_SIZE);
            status = get_json(&v, url, pc_token, NULL, &body, &blen, &geb);
            if (status == 200 && partner_customers_parse(body, blen, &page, &geb) == ERR_OK) {
                out->customers = page.total_count >= 0 ? (int)page.total_count : (int)page.count;
                snprintf(c->message, sizeof c->message, "%d customers found%s.", out->customers,
                         page.next_uri != NULL ? " (first page)" : "");
            } else {
                char msg[512] = "";

                c->status = CHECK_FAIL;
                snprintf(c->field, sizeof c->field, "partner_app_id");
                if (status == 0)
                    snprintf(msg, sizeof msg, "%s", geb.msg);
                else if (status != 200)
                    partner_error_parse(body, blen, msg, sizeof msg);
                else
                    snprintf(msg, sizeof msg, "%s", geb.msg);
                snprintf(c->microsoft, sizeof c->microsoft, "HTTP %ld %s", status, msg);
                snprintf(c->message, sizeof c->message,
                         "Partner Center did not return the customer list.");
                snprintf(c->remedy, sizeof c->remedy,
                         "Check that the Partner App is registered in Partner Center > Account "
                         "settings > App management for this partner account.");
            }
        }
    }
    if (in->sync_secret != NULL) {
        c = add_check(&v, "sync_token", in->partner_tenant_id,
                      "Sync App gets a Graph token in the partner tenant");
        sync_token = get_token(&v, c, in->partner_tenant_id, in->sync_app_id, in->sync_secret,
                               v.cloud->graph_audience, "Sync App", CHECK_FAIL);
        if (sync_token == NULL)
            check_field(c, v.last_token_fail, "partner_tenant_id", "sync_app_id",
                        "sync_app_secret");
        if (sync_token != NULL) {
            for (size_t i = 0; i < page.count && (int)i < sample; i++)
                if (page.items[i].tenant_id != NULL) {
                    check_tenant(&v, &page.items[i]);
                    out->sampled++;
                }
        }
    }
done:
    out->ok = 1;
    for (size_t i = 0; i < out->n; i++)
        if (out->checks[i].status == CHECK_FAIL)
            out->ok = 0;
    customer_page_clear(&page);
    wipe_free(pc_token);
    wipe_free(sync_token);
    free(url);
    free(body);
    free(ccfg);
    return ERR_OK;
}

void
validation_clear(struct validation *v)
{
    if (v == NULL)
        return;
    free(v->checks);
    v->checks = NULL;
    v->n = 0;
}

json_t *
validation_to_json(const struct validation *v)
{
    json_t *arr = json_array();

    for (size_t i = 0; i < v->n; i++) {
        const struct check *c = &v->checks[i];

        json_array_append_new(
            arr,
            json_pack("{s:s, s:s, s:s, s:s?, s:s?, s:s?, s:s?, s:s?}", "id", c->id, "title",
                      c->title, "status", check_status_name(c->status), "tenant_id",
                      c->tenant_id[0] ? c->tenant_id : NULL, "microsoft_said",
                      c->microsoft[0] ? c->microsoft : NULL, "message",
                      c->message[0] ? c->message : NULL, "remedy", c->remedy[0] ? c->remedy : NULL,
                      "field", c->field[0] ? c->field : NULL));
    }
    return json_pack("{s:b, s:o, s:i, s:i}", "ok", v->ok, "checks", arr, "customers", v->customers,
                     "tenants_sampled", v->sampled);
}

void
validation_print(const struct validation *v, FILE *fp)
{
    for (size_t i = 0; i < v->n; i++) {
        const struct check *c = &v->checks[i];
        static const char *const tags[] = {"PASS", "FAIL", "WARN", "SKIP"};

        fprintf(fp, "  %s  %s\n", tags[c->status], c->title);
        if (c->status == CHECK_PASS && c->message[0])
            fprintf(fp, "        %s\n", c->message);
        if (c->status == CHECK_PASS)
            continue;
        if (c->microsoft[0])
            fprintf(fp, "        Microsoft said: %s\n", c->microsoft);
        if (c->message[0])
            fprintf(fp, "        %s\n", c->message);
        if (c->remedy[0])
            fprintf(fp, "        What to do: %s\n", c->remedy);
    }
    if (v->customers >= 0)
        fprintf(fp, "  checked %d of %d customer tenants\n", v->sampled, v->customers);
}
