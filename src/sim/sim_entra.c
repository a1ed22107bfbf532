/* sim_entra.c - Entra ID token endpoints of `memsync sim` (v1 and v2 client credentials, OpenID
 * configuration, AADSTS errors) and the bearer checks the other services use. Token crypto is
 * simtok.c's.
 */
#include "simsrv.h"

#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "clock.h"
#include "err.h"
#include "simworld.h"

/* --- Entra tokens -------------------------------------------------------------------------- */

static struct resp *aad_error(int status, const char *error, long code, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static struct resp *
aad_error(int status, const char *error, long code, const char *fmt, ...)
{
    struct resp *r = sim_resp_new(status, SIM_JSON_CT);
    char trace[37], corr[37], ts[32], msg[768], desc[1024], uri[96];
    va_list ap;
    time_t t = time(NULL);
    struct tm tm;

    sim_rand_guid(trace);
    sim_rand_guid(corr);
    gmtime_r(&t, &tm);
    strftime(ts, sizeof ts, "%Y-%m-%d %H:%M:%SZ", &tm);
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(desc, sizeof desc,
             "AADSTS%ld: %s\r\nTrace ID: %s\r\nCorrelation ID: %s\r\nTimestamp: %s", code, msg,
             trace, corr, ts);
    snprintf(uri, sizeof uri, "https://login.microsoftonline.com/error?code=%ld", code);
    sim_resp_json(r,
                  json_pack("{s:s, s:s, s:[I], s:s, s:s, s:s, s:s}", "error", error,
                            "error_description", desc, "error_codes", (json_int_t)code, "timestamp",
                            ts, "trace_id", trace, "correlation_id", corr, "error_uri", uri));
    sim_resp_hdr(r, "Cache-Control", "no-store, no-cache");
    return r;
}

struct form {
    char *kv[16][2];
    int n;
};

static void
form_parse(char *body, struct form *f)
{
    char *save = NULL;

    f->n = 0;
    for (char *p = body; p && *p && f->n < 16; p = save) {
        char *amp = strchr(p, '&');
        save = amp ? amp + 1 : NULL;
        if (amp)
            *amp = '\0';
        char *eq = strchr(p, '=');
        if (eq == NULL)
            continue;
        *eq = '\0';
        if (simtok_form_decode(p) != ERR_OK || simtok_form_decode(eq + 1) != ERR_OK)
            continue;
        f->kv[f->n][0] = p;
        f->kv[f->n][1] = eq + 1;
        f->n++;
    }
}

static const char *
form_get(const struct form *f, const char *k)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->kv[i][0], k) == 0)
            return f->kv[i][1];
    return NULL;
}

/* Normalises a resource / scope into an audience: "https://graph.microsoft.com/.default" and
 * "https://graph.microsoft.com/" both become SIM_GRAPH_AUD. NULL when unknown. */
/* Graph's audience in each national cloud (learn.microsoft.com/graph/deployments), and
 * 21Vianet's Partner Center (partner-center-rest-urls). */
static const struct {
    const char *aud, *cloud;
} national_aud[] = {
    {"https://graph.microsoft.us", "usgov"},
    {"https://dod-graph.microsoft.us", "usgovdod"},
    {"https://microsoftgraph.chinacloudapi.cn", "china"},
    {"https://partner.partnercenterapi.microsoftonline.cn", "china"},
};

static const char *
audience_of(const char *v, int v2, const char **cloud)
{
    char tmp[256];
    size_t n;

    if (v == NULL)
        return NULL;
    snprintf(tmp, sizeof tmp, "%s", v);
    n = strlen(tmp);
    if (v2) {
        if (n < 9 || strcmp(tmp + n - 9, "/.default") != 0)
            return NULL;
        tmp[n - 9] = '\0';
    } else if (n > 0 && tmp[n - 1] == '/') {
        tmp[n - 1] = '\0';
    }
    *cloud = "";
    for (size_t i = 0; i < sizeof national_aud / sizeof national_aud[0]; i++) {
        if (strcasecmp(tmp, national_aud[i].aud) == 0) {
            *cloud = national_aud[i].cloud;
            return strstr(national_aud[i].aud, "partner") != NULL ? SIM_PC_AUD : SIM_GRAPH_AUD;
        }
    }
    if (strcasecmp(tmp, SIM_GRAPH_AUD) == 0 ||
        strcasecmp(tmp, "00000003-0000-0000-c000-000000000000") == 0)
        return SIM_GRAPH_AUD;
    if (strcasecmp(tmp, SIM_PC_AUD) == 0 ||
        strcasecmp(tmp, "fa3d9a0c-3fb0-42cc-9193-47c7ecd2edbd") == 0)
        return SIM_PC_AUD;
    return NULL;
}

static struct resp *
handle_token(struct MHD_Connection *c, const char *tenant_in, int v2, struct req *q,
             const char **tenant_out)
{
    struct simworld *w = g.w;
    struct form f;
    const char *grant, *client_id, *secret, *scope, *aud, *aud_cloud = "";
    char basic_id[256] = "", basic_secret[512] = "", tidbuf[40];
    int partner_tenant = 0, is_partner_app, is_sync_app, chk;
    struct simtenant *t = NULL;
    struct resp *r = NULL;
    int64_t now = clock_now();
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");

    form_parse(q->body.data ? q->body.data : (char *)"", &f);
    grant = form_get(&f, "grant_type");
    client_id = form_get(&f, "client_id");
    secret = form_get(&f, "client_secret");
    scope = form_get(&f, v2 ? "scope" : "resource");

    if (auth && strncasecmp(auth, "Basic ", 6) == 0) {
        char dec[800];
        if (simtok_b64_decode(auth + 6, dec, sizeof dec) == ERR_OK) {
            char *colon = strchr(dec, ':');
            if (colon) {
                *colon = '\0';
                snprintf(basic_id, sizeof basic_id, "%s", dec);
                snprintf(basic_secret, sizeof basic_secret, "%s", colon + 1);
                if (client_id == NULL)
                    client_id = basic_id;
                if (secret == NULL)
                    secret = basic_secret;
            }
        }
    }

    pthread_rwlock_rdlock(&w->lock);
    if (strcasecmp(tenant_in, "common") == 0 || strcasecmp(tenant_in, "consumers") == 0 ||
        strcasecmp(tenant_in, "organizations") == 0) {
        r = aad_error(400, "invalid_request", 9001023,
                      "The grant type isn't supported over the /common or /consumers endpoints. "
                      "Please use the /organizations or tenant-specific endpoint.");
        goto out;
    }
    if (strcasecmp(tenant_in, w->partner_tenant_id) == 0 ||
        strcasecmp(tenant_in, w->partner_domain) == 0) {
        partner_tenant = 1;
        snprintf(tidbuf, sizeof tidbuf, "%s", w->partner_tenant_id);
    } else {
        t = simw_tenant_by_id(w, tenant_in);
        if (t == NULL || !t->exists) {
            r = aad_error(400, "invalid_tenant", 90002,
                          "Tenant '%.64s' not found. Check to make sure you have the correct "
                          "tenant ID and are signing into the correct cloud. Check with your "
                          "subscription administrator, this may happen if there are no active "
                          "subscriptions for the tenant.",
                          tenant_in);
            goto out;
        }
        snprintf(tidbuf, sizeof tidbuf, "%s", t->id);
    }
    *tenant_out = partner_tenant ? w->partner_tenant_id : t->id;
    if (grant == NULL) {
        r = aad_error(400, "invalid_request", 900144,
                      "The request body must contain the following parameter: 'grant_type'.");
        goto out;
    }
    if (strcmp(grant, "client_credentials") != 0) {
        r = aad_error(400, "unsupported_grant_type", 70003,
                      "The app requested an unsupported grant type '%.32s'.", grant);
        goto out;
    }
    if (client_id == NULL || *client_id == '\0') {
        r = aad_error(400, "invalid_request", 900144,
                      "The request body must contain the following parameter: 'client_id'.");
        goto out;
    }
    is_partner_app = strcasecmp(client_id, w->partner_app.id) == 0;
    is_sync_app = strcasecmp(client_id, w->sync_app.id) == 0;
    if ((!is_partner_app && !is_sync_app) || (is_partner_app && !partner_tenant) ||
        (is_sync_app && !partner_tenant && !t->consented)) {
        r = aad_error(400, "unauthorized_client", 700016,
                      "Application with identifier '%.64s' was not found in the directory "
                      "'%s'. This can happen if the application has not been installed by the "
                      "administrator of the tenant or consented to by any user in the tenant. "
                      "You may have sent your authentication request to the wrong tenant.",
                      client_id, partner_tenant ? w->partner_name : t->name);
        goto out;
    }
    if (scope == NULL) {
        r = v2 ? aad_error(400, "invalid_request", 900144,
                           "The request body must contain the following parameter: 'scope'.")
               : aad_error(400, "invalid_request", 900144,
                           "The request body must contain the following parameter: "
                           "'resource'.");
        goto out;
    }
    if (secret == NULL || *secret == '\0') {
        r = aad_error(401, "invalid_client", 7000218,
                      "The request body must contain the following parameter: "
                      "'client_assertion' or 'client_secret'.");
        goto out;
    }
    chk = simw_secret_check(is_partner_app ? &w->partner_app : &w->sync_app, secret, now);
    if (chk == 0 && secret == basic_secret) {
        /* HTTP Basic credentials are form-encoded before base64 (RFC 6749 2.3.1) */
        char dec[512];
        snprintf(dec, sizeof dec, "%s", basic_secret);
        if (simtok_form_decode(dec) == ERR_OK)
            chk = simw_secret_check(is_partner_app ? &w->partner_app : &w->sync_app, dec, now);
    }
    if (chk == 0) {
        r = aad_error(401, "invalid_client", 7000215,
                      "Invalid client secret provided. Ensure the secret being sent in the "
                      "request is the client secret value, not the client secret ID, for a "
                      "secret added to app '%s'.",
                      is_partner_app ? w->partner_app.id : w->sync_app.id);
        goto out;
    }
    if (chk < 0) {
        r = aad_error(401, "invalid_client", 7000222,
                      "The provided client secret keys for app '%s' are expired. Visit the "
                      "Azure portal to create new keys for your app: "
                      "https://aka.ms/NewClientSecret, or consider using certificate "
                      "credentials for added security: https://aka.ms/certCreds.",
                      is_partner_app ? w->partner_app.id : w->sync_app.id);
        goto out;
    }
    aud = audience_of(scope, v2, &aud_cloud);
    if (aud == NULL || (is_partner_app && strcmp(aud, SIM_PC_AUD) != 0) ||
        (is_sync_app && strcmp(aud, SIM_GRAPH_AUD) != 0)) {
        if (v2)
            r = aad_error(400, "invalid_scope", 70011,
                          "The provided request must include a 'scope' input parameter. The "
                          "provided value for the input parameter 'scope' is not valid. The "
                          "scope %.128s is not valid.",
                          scope);
        else
            r = aad_error(400, "invalid_resource", 500011,
                          "The resource principal named %.128s was not found in the tenant "
                          "named %s. This can happen if the application has not been installed "
                          "by the administrator of the tenant or consented to by any user in "
                          "the tenant. You might have sent your authentication request to the "
                          "wrong tenant.",
                          scope, partner_tenant ? w->partner_name : t->name);
        goto out;
    }
    if (!partner_tenant && strcmp(aud, SIM_GRAPH_AUD) == 0 && strcmp(aud_cloud, t->cloud) != 0) {
        /* set_tenant cloud: the tenant lives in another cloud than the audience asked for */
        r = aad_error(400, "invalid_request", 900382,
                      "Confidential Client is not supported in Cross Cloud request.");
        goto out;
    }
    {
        char *tok = simtok_issue(tidbuf, client_id, aud, now, SIM_TOKEN_LIFE);
        r = sim_resp_new(200, SIM_JSON_CT);
        if (v2) {
            sim_resp_json(r, json_pack("{s:s, s:i, s:i, s:s}", "token_type", "Bearer", "expires_in",
                                       SIM_TOKEN_LIFE, "ext_expires_in", SIM_TOKEN_LIFE,
                                       "access_token", tok));
        } else {
            char ein[16], eon[24], nbf[24];
            snprintf(ein, sizeof ein, "%d", SIM_TOKEN_LIFE);
            snprintf(eon, sizeof eon, "%lld", (long long)(now + SIM_TOKEN_LIFE));
            snprintf(nbf, sizeof nbf, "%lld", (long long)now);
            sim_resp_json(r,
                          json_pack("{s:s, s:s, s:s, s:s, s:s, s:s, s:s}", "token_type", "Bearer",
                                    "expires_in", ein, "ext_expires_in", ein, "expires_on", eon,
                                    "not_before", nbf, "resource", scope, "access_token", tok));
        }
        sim_resp_hdr(r, "Cache-Control", "no-store, no-cache");
        free(tok);
    }
out:
    pthread_rwlock_unlock(&w->lock);
    return r;
}

/* An injected Entra error: the `error` string and default status follow the code. */
static struct resp *
aad_fault(long code, int status, const char *message)
{
    const char *error = "invalid_request";
    int st = 400;

    switch (code) {
    case 7000215:
    case 7000222:
    case 7000218:
        error = "invalid_client";
        st = 401;
        break;
    case 700016:
        error = "unauthorized_client";
        break;
    case 90002:
        error = "invalid_tenant";
        break;
    case 70011:
        error = "invalid_scope";
        break;
    case 53003:
        error = "access_denied";
        break;
    case 7000112:
    case 70001:
        error = "unauthorized_client";
        break;
    case 7000229: /* no service principal in the app's home tenant (Azure/azure-sdk-for-net #46762)
                   */
        error = "invalid_client";
        break;
    case 500011: /* resource principal not found in the tenant */
        error = "invalid_resource";
        break;
    default:
        break;
    }
    return aad_error(status ? status : st, error, code, "%s",
                     message && message[0] ? message : "Injected error.");
}

static struct resp *
handle_openid(const char *tenant)
{
    struct resp *r;
    char base[256], tok[300], iss[300], auth[300], jwks[300];

    pthread_rwlock_rdlock(&g.w->lock);
    int known =
        strcasecmp(tenant, g.w->partner_tenant_id) == 0 || simw_tenant_by_id(g.w, tenant) != NULL;
    pthread_rwlock_unlock(&g.w->lock);
    if (!known)
        return aad_error(400, "invalid_tenant", 90002,
                         "Tenant '%.64s' not found. Check to make sure you have the correct "
                         "tenant ID and are signing into the correct cloud.",
                         tenant);
    snprintf(base, sizeof base, "%s/login/%s", g.base, tenant);
    snprintf(tok, sizeof tok, "%s/oauth2/v2.0/token", base);
    snprintf(auth, sizeof auth, "%s/oauth2/v2.0/authorize", base);
    snprintf(iss, sizeof iss, "%s/login/%s/v2.0", g.base, tenant);
    snprintf(jwks, sizeof jwks, "%s/login/%s/discovery/v2.0/keys", g.base, tenant);
    r = sim_resp_new(200, SIM_JSON_CT);
    sim_resp_json(
        r,
        json_pack("{s:s, s:[s,s,s], s:s, s:[s,s,s], s:[s], s:s, s:[s,s], s:s, s:s, s:[s]}",
                  "token_endpoint", tok, "token_endpoint_auth_methods_supported",
                  "client_secret_post", "private_key_jwt", "client_secret_basic", "jwks_uri", jwks,
                  "response_modes_supported", "query", "fragment", "form_post",
                  "subject_types_supported", "pairwise", "issuer", iss, "grant_types_supported",
                  "client_credentials", "authorization_code", "authorization_endpoint", auth,
                  "tenant_region_scope", "NA", "id_token_signing_alg_values_supported", "RS256"));
    return r;
}

/* The routes under /login/{tenant}: faults, then the token or OpenID endpoint. */
struct resp *
sim_entra_route(struct MHD_Connection *c, struct req *q, const char *method, const char *path,
                enum route *rt, char *tenant, size_t tenantlen)
{
    char ten[256];
    const char *s = path, *e = strchr(s, '/');
    size_t n = e ? (size_t)(e - s) : strlen(s);
    struct resp *r;

    if (n == 0 || n >= sizeof ten)
        return aad_error(400, "invalid_request", 90002, "Tenant not found.");
    memcpy(ten, s, n);
    ten[n] = '\0';
    e = s + n;
    /* People signing in (sim_oidc.c): key set, authorize, authorization_code grant. */
    if ((r = sim_oidc_route(c, q, method, ten, e)) != NULL)
        return r;
    if (strcmp(e, "/oauth2/v2.0/token") == 0 || strcmp(e, "/oauth2/token") == 0) {
        int v2 = strcmp(e, "/oauth2/v2.0/token") == 0;
        struct simw_fault f;
        enum simw_fault_kind mode = SIMW_FAULT_NONE;
        int delay = 0;
        *rt = v2 ? R_TOKEN_V2 : R_TOKEN_V1;
        if (strcmp(method, "POST") != 0)
            return aad_error(405, "invalid_request", 900561,
                             "The endpoint only accepts POST requests. Received a %.8s request.",
                             method);
        pthread_rwlock_rdlock(&g.w->lock);
        struct simtenant *tt = simw_tenant_by_id(g.w, ten);
        snprintf(tenant, tenantlen, "%s", tt ? tt->id : ten);
        pthread_rwlock_unlock(&g.w->lock);
        if (sim_fault_take(*rt, tenant, 0, &f)) {
            if (f.kind == SIMW_FAULT_STATUS && f.code[0] && strncmp(f.code, "AADSTS", 6) == 0) {
                r = aad_fault(strtol(f.code + 6, NULL, 10), f.status, f.message);
                if (f.bom)
                    r->mode = SIMW_FAULT_BOM;
                return r;
            }
            r = sim_fault_apply(&f, 0, &mode, &delay);
            if (r)
                return r;
        }
        const char *tout = NULL;
        r = handle_token(c, ten, v2, q, &tout);
        r->mode = mode;
        r->delay_ms = delay;
        return r;
    }
    if (strcmp(e, "/v2.0/.well-known/openid-configuration") == 0) {
        *rt = R_OPENID;
        return handle_openid(ten);
    }
    return aad_error(404, "invalid_request", 900561, "The endpoint was not found.");
}

/* --- bearer checks -------------------------------------------------------------------------- */

/* Checks the bearer token for audience `aud`; on success fills *cl. Otherwise returns the
 * error response of that service. */
struct resp *
sim_bearer_check(struct MHD_Connection *c, const char *aud, struct simtok_claims *cl)
{
    const char *auth = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Authorization");
    int graph = strcmp(aud, SIM_GRAPH_AUD) == 0;
    const char *why = NULL;
    int rc;

    if (auth == NULL || strncasecmp(auth, "Bearer ", 7) != 0 || auth[7] == '\0') {
        why = "Access token is empty.";
    } else {
        /* one verified token per thread: clients reuse theirs for many requests */
        static __thread char last_tok[4200];
        static __thread struct simtok_claims last_cl;
        int64_t now = clock_now();
        size_t tl = strlen(auth + 7);
        if (tl < sizeof last_tok && last_cl.exp > now && memcmp(last_tok, auth + 7, tl + 1) == 0) {
            *cl = last_cl;
            rc = ERR_OK;
        } else {
            rc = simtok_verify(auth + 7, now, cl);
            if (rc == ERR_OK && tl < sizeof last_tok) {
                memcpy(last_tok, auth + 7, tl + 1);
                last_cl = *cl;
            }
        }
        if (rc == ERR_TIMEOUT)
            why = "Lifetime validation failed, the token is expired.";
        else if (rc != ERR_OK)
            why = "IDX14100: JWT is not well formed, there are no dots (.).";
        else if (strcmp(cl->aud, aud) != 0)
            why = "Access token validation failure. Invalid audience.";
    }
    if (why == NULL)
        return NULL;
    if (graph) {
        struct resp *r = sim_graph_error(401, "InvalidAuthenticationToken", why);
        sim_resp_hdr(
            r, "WWW-Authenticate",
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/"
            "oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"");
        return r;
    }
    struct resp *r = sim_pc_error(401, "401", why);
    sim_resp_hdr(r, "WWW-Authenticate", "OAuth realm=urn:cpsvc:cpid:memsync-sim");
    return r;
}
