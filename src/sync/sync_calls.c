/* sync_calls.c - the sync engine's calls: every request goes through
 * sync_call_submit()/call_on_resp() (pacing, the bearer token, retries with Retry-After or backoff,
 * one token refresh on a Graph 401, throttling holds); token calls, Graph calls and how a Graph
 * failure is told. */
#include "sync_int.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <sodium.h>

#include "buf.h"
#include "clock.h"
#include "cloud.h"
#include "graph.h"
#include "guid.h"
#include "http.h"
#include "log.h"
#include "mem.h"
#include "pacer.h"
#include "partner.h"
#include "remedy.h"
#include "token.h"

void
sync_call_free(struct call *c)
{
    if (c == NULL)
        return;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        c->eng->live = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    free(c->url);
    if (c->body != NULL) {
        sodium_memzero(c->body, c->body_len);
        free(c->body);
    }
    free(c->extra_header);
    free(c->token_tenant);
    free(c->items);
    sync_call_free(c->then);
    free(c);
}

struct call *
sync_call_new(struct engine *eng, struct tenant *t, enum call_kind kind, char *url,
              call_done_fn *done)
{
    struct call *c = xcalloc(1, sizeof *c);

    c->eng = eng;
    c->t = t;
    c->kind = kind;
    c->url = url;
    c->done = done;
    c->units = 1;
    c->next = eng->live;
    if (eng->live != NULL)
        eng->live->prev = c;
    eng->live = c;
    return c;
}

void
sync_retry_timer(void *arg)
{
    sync_call_submit(arg);
}

int64_t
sync_backoff_ms(int attempt)
{
    int64_t d = BACKOFF_BASE_MS;

    for (int i = 1; i < attempt && d < BACKOFF_CAP_MS; i++)
        d *= 2;
    if (d > BACKOFF_CAP_MS)
        d = BACKOFF_CAP_MS;
    /* Jitter in [d/2, d) spreads the retries of many tenants apart. */
    return d / 2 + (int64_t)randombytes_uniform((uint32_t)(d / 2 > 0 ? d / 2 : 1));
}

int
sync_status_retryable(long status)
{
    return status == 429 || status == 500 || status == 502 || status == 503 || status == 504;
}

/* Backoff after Intune's window for the streak-th hold in a row: jitter up to 1 s for the
 * first, then 1-2 s, 2-4 s, ... up to 30-60 s. */
static int64_t
window_backoff_ms(int streak)
{
    int64_t d = WINDOW_BACKOFF_BASE_MS;

    for (int i = 1; i < streak && d < WINDOW_BACKOFF_CAP_MS; i++)
        d *= 2;
    if (d > WINDOW_BACKOFF_CAP_MS)
        d = WINDOW_BACKOFF_CAP_MS;
    if (streak <= 1)
        return (int64_t)randombytes_uniform((uint32_t)d);
    return d / 2 + (int64_t)randombytes_uniform((uint32_t)(d / 2));
}

/* Tenant t's Intune answered 429 now (retry_after < 0: without the header). Cuts the tenant's
 * pace, once per window. With Retry-After the tenant pauses that long; without it, Intune's
 * window (20 s, whose start we cannot see) must pass: the first such 429 since the last hold
 * ended holds every call of the tenant for a whole window from now, plus a backoff that grows
 * with each hold in a row; later 429s of calls already in flight join that hold. Returns the
 * milliseconds until the tenant may send again. */
int64_t
sync_tenant_throttled(struct tenant *t, double retry_after)
{
    int64_t now = clock_mono_ms();
    int64_t wait;

    if (t->last_cut_ms == 0 || now - t->last_cut_ms >= INTUNE_TENANT_WINDOW) {
        int pace = pacer_cut(&t->pacer, PACE_FLOOR, now);

        t->last_cut_ms = now;
        log_info("throttled tenant=%s pace=%d retry_after=%s", t->cust.tenant_id, pace,
                 retry_after >= 0 ? "yes" : "no");
    }
    if (retry_after >= 0) {
        wait = (int64_t)(retry_after * 1000.0);
        if (wait > RETRY_AFTER_MAX_MS)
            wait = RETRY_AFTER_MAX_MS;
        pacer_hold(&t->pacer, now + wait);
        return wait;
    }
    if (now >= t->hold_until) {
        /* A hold that starts within a window of the last one's end continues the streak. */
        if (t->hold_until != 0 && now - t->hold_until < INTUNE_TENANT_WINDOW)
            t->throttle_streak++;
        else
            t->throttle_streak = 1;
        t->hold_until = now + INTUNE_TENANT_WINDOW + window_backoff_ms(t->throttle_streak);
        pacer_hold(&t->pacer, t->hold_until);
        log_info("throttled without Retry-After tenant=%s hold_ms=%lld streak=%d",
                 t->cust.tenant_id, (long long)(t->hold_until - now), t->throttle_streak);
    }
    return t->hold_until - now;
}

static void
count_request(struct call *c, const struct http_resp *r)
{
    c->eng->sum.requests += c->units;
    if (c->t != NULL)
        c->t->requests += c->units;
    if (r->status == 429) {
        c->eng->sum.throttled++;
        if (c->t != NULL)
            c->t->throttled++;
    }
}

/* Microsoft's ids of an answer (headers first, then what the body said) onto a remedy. */
void
sync_note_resp_ids(struct remedy *rem, const struct http_resp *r, const char *body_id,
                   const char *body_date)
{
    remedy_note_ids(rem, r->request_id, body_id, r->date, body_date);
}

/* ---- tokens -------------------------------------------------------------------------------- */

/* A call that gets a token for (tenant, audience) and then submits `then`. */
struct call *
sync_token_call_new(struct engine *eng, struct tenant *t, const char *tenant_id,
                    const char *client_id, const char *secret, const char *audience,
                    struct call *then)
{
    struct buf form;
    struct call *c = sync_call_new(eng, t, CALL_TOKEN, token_url(eng->cfg->login_url, tenant_id, 0),
                                   sync_token_done);

    buf_init(&form, 16384);
    if (token_form(&form, client_id, secret, audience, 0) != ERR_OK)
        log_error("token form too large tenant=%s", tenant_id);
    c->body = buf_detach(&form, &c->body_len);
    c->token_tenant = xstrdup(tenant_id);
    c->audience = audience;
    c->client_id = client_id;
    c->secret = secret;
    c->then = then;
    return c;
}

static void
fail_call_chain(struct call *c, const struct remedy *rem)
{
    struct engine *eng = c->eng;

    if (c->then != NULL && c->then->optional) {
        struct call *next = c->then;
        struct http_resp r = {.err = ERR_AUTH, .errmsg = rem->message, .retry_after = -1};

        c->then = NULL;
        next->done(next, &r);
        return;
    }
    if (c->t != NULL) {
        sync_tenant_fail(c->t, rem);
    } else {
        eng->fatal = 1;
        err_set(&eng->fatal_eb, ERR_AUTH, "%s %s", rem->message, rem->action);
        eng->listing_done = 1;
    }
}

/* Microsoft says the key expired (AADSTS7000222) although our date was later: correct the
 * stored date to now, once per run, so status, the API and the UI show "expired". */
static int64_t
note_expired(struct engine *eng, int is_partner)
{
    const struct integration *in = eng->in;
    struct errbuf eb = {0};
    int64_t now = clock_now();

    if (!eng->expiry_fixed[is_partner] && eng->writer != NULL) {
        /* the writer stores it (and logs it): this thread does not write while it runs */
        struct wjob *j = xcalloc(1, sizeof *j);
        const char *sealed = is_partner ? in->partner_secret_sealed : in->sync_secret_sealed;
        const char *hint = is_partner ? in->partner_secret_hint : in->sync_secret_hint;

        eng->expiry_fixed[is_partner] = 1;
        j->kind = WJOB_EXPIRED;
        j->partner = is_partner;
        j->expires = now;
        j->sealed = sealed != NULL ? xstrdup(sealed) : NULL;
        j->hint = hint != NULL ? xstrdup(hint) : NULL;
        sync_writer_submit(eng->writer, j);
    } else if (!eng->expiry_fixed[is_partner]) {
        eng->expiry_fixed[is_partner] = 1;
        if (store_integration_set_secret(
                eng->st, in->id, is_partner ? "partner" : "sync",
                is_partner ? in->partner_secret_sealed : in->sync_secret_sealed,
                is_partner ? in->partner_secret_hint : in->sync_secret_hint, now, &eb) != ERR_OK)
            log_error("cannot record the key's expiry integration=%lld: %s", (long long)in->id,
                      eb.msg);
        else
            log_warn("secret expired integration=%lld app=%s: Microsoft refused it with "
                     "AADSTS7000222; its expiry date was corrected to today",
                     (long long)in->id, is_partner ? "partner" : "sync");
    }
    return now;
}

void
sync_token_done(struct call *c, const struct http_resp *r)
{
    struct engine *eng = c->eng;
    struct token_result tr = {0};
    struct errbuf eb = {0};
    struct remedy rem;
    struct remedy_ctx ctx = {0};
    int is_partner = c->audience == NULL || strcmp(c->audience, eng->cloud->pc_audience) == 0;
    char expired_on[16] = "";

    ctx.tenant_id = c->token_tenant;
    ctx.app_id = c->client_id;
    ctx.app_label = is_partner ? "Partner App" : "Sync App";
    ctx.login_base = eng->cfg->login_url;
    if (r->err != ERR_OK) {
        remedy_set(&rem, r->err == ERR_INTERRUPTED ? REMEDY_INTERRUPTED : REMEDY_NETWORK, &ctx,
                   r->errmsg);
        goto fail;
    }
    if (token_parse(r->body, r->body_len, r->status, &tr, &eb) != ERR_OK) {
        if (tr.aadsts != 0 || tr.error != NULL) {
            int64_t exp =
                is_partner ? eng->in->partner_secret_expires : eng->in->sync_secret_expires;

            if (tr.aadsts == 7000222 && (exp == TS_NULL || exp > clock_now()))
                exp = note_expired(eng, is_partner);
            if (exp != TS_NULL) {
                clock_fmt(exp, expired_on, sizeof expired_on);
                expired_on[10] = '\0';
                ctx.expired_on = expired_on;
            }
            remedy_from_entra(&rem, &ctx, tr.aadsts, tr.error, r->status);
            if (c->t != NULL && c->t->cust.associated_partner_id != NULL &&
                (tr.aadsts == 700016 || tr.aadsts == 90002))
                remedy_set(&rem, REMEDY_INDIRECT_RESELLER, &ctx, NULL);
            /* Entra's trace_id is its request id (x-ms-request-id carries the same). */
            remedy_note_ids(&rem, tr.trace_id, tr.correlation_id, r->date, tr.timestamp);
        } else {
            remedy_set(&rem, r->status >= 500 ? REMEDY_SERVICE_ERROR : REMEDY_BAD_RESPONSE, &ctx,
                       eb.msg);
            sync_note_resp_ids(&rem, r, NULL, NULL);
        }
        token_result_clear(&tr);
        goto fail;
    }
    token_cache_put(eng->tokens, c->token_tenant, c->audience, tr.access_token,
                    clock_now() + tr.expires_in);
    token_result_clear(&tr);
    if (c->then != NULL) {
        struct call *next = c->then;

        c->then = NULL;
        sync_call_free(c);
        sync_call_submit(next);
        return;
    }
    sync_call_free(c);
    return;
fail:
    fail_call_chain(c, &rem);
    sync_call_free(c);
}

/* ---- the request path ---------------------------------------------------------------------- */

/* Gives the call's bulk slot back and lets the longest-waiting bulk call go. */
static void
gate_release(struct call *c)
{
    struct engine *eng = c->eng;
    struct call *next;

    if (!c->holds_gate)
        return;
    c->holds_gate = 0;
    eng->bulk_inflight--;
    if ((next = eng->bulk_head) != NULL) {
        eng->bulk_head = next->qnext;
        if (eng->bulk_head == NULL)
            eng->bulk_tail = NULL;
        /* Through a zero-delay timer: submitting from inside a completion would nest. */
        http_timer(eng->http, 0, sync_retry_timer, next);
    }
}

static void
call_on_resp(void *arg, const struct http_resp *r)
{
    struct call *c = arg;
    struct engine *eng = c->eng;
    int64_t delay;

    count_request(c, r);
    c->attempt++;
    gate_release(c);
    if (sync_stop_requested) {
        struct http_resp ir = {.err = ERR_INTERRUPTED, .errmsg = "interrupted", .retry_after = -1};
        c->done(c, &ir);
        return;
    }
    /* A Graph or PC 401 may mean our cached token went stale: refresh once. */
    if (r->err == ERR_OK && r->status == 401 && c->kind != CALL_TOKEN && !c->refreshed &&
        c->client_id != NULL) {
        struct call *tc;

        c->refreshed = 1;
        token_cache_drop(eng->tokens, c->token_tenant, c->audience);
        tc = sync_token_call_new(eng, c->t, c->token_tenant, c->client_id, c->secret, c->audience,
                                 c);
        sync_call_submit(tc);
        return;
    }
    if ((r->err != ERR_OK && r->err != ERR_TOOBIG && !c->no_transport_retry) ||
        (r->err == ERR_OK && sync_status_retryable(r->status))) {
        int counted = 1; /* the retry uses up one of the call's attempts */

        if (r->err == ERR_OK && r->status == 429 && c->t != NULL && c->kind == CALL_GRAPH) {
            /* The tenant's window: only the wait budget bounds a 429 without Retry-After. */
            delay = sync_tenant_throttled(c->t, r->retry_after) + (int64_t)randombytes_uniform(250);
            if (r->retry_after < 0) {
                counted = 0;
                c->attempt--;
            }
        } else if (r->err == ERR_OK && r->retry_after >= 0) {
            delay = (int64_t)(r->retry_after * 1000.0);
            if (delay > RETRY_AFTER_MAX_MS)
                delay = RETRY_AFTER_MAX_MS;
            /* A little jitter so tenants throttled together do not return together. */
            delay += (int64_t)randombytes_uniform(250);
        } else {
            delay = sync_backoff_ms(c->attempt);
        }
        if ((!counted || c->attempt < eng->max_attempts) &&
            c->waited_ms + delay <= THROTTLE_BUDGET_MS) {
            char safe[256];

            log_redact_url(c->url, safe, sizeof safe);
            log_debug("retry url=%s status=%ld attempt=%d delay_ms=%lld", safe, r->status,
                      c->attempt, (long long)delay);
            c->waited_ms += delay;
            http_timer(eng->http, delay, sync_retry_timer, c);
            return;
        }
    }
    c->done(c, r);
}

/* The ids Microsoft support asks for: client-request-id (a fresh GUID per request) to Entra and
 * Graph; MS-RequestId (one per call, the same on its retries), MS-CorrelationId (one per run) and
 * MS-Contract-Version to Partner Center. ids holds the header texts; returns the new count. */
static int
support_headers(struct call *c, struct http_req *req, int nh, char ids[3][96])
{
    char g[37];

    if (c->kind == CALL_PC) {
        if (c->request_guid[0] == '\0')
            guid_random(c->request_guid);
        snprintf(ids[0], sizeof ids[0], "MS-RequestId: %s", c->request_guid);
        snprintf(ids[1], sizeof ids[1], "MS-CorrelationId: %s", c->eng->correlation_id);
        req->headers[nh++] = ids[0];
        req->headers[nh++] = ids[1];
        req->headers[nh++] = "MS-Contract-Version: v1";
    } else {
        guid_random(g);
        snprintf(ids[0], sizeof ids[0], "client-request-id: %s", g);
        req->headers[nh++] = ids[0];
    }
    return nh;
}

void
sync_call_submit(struct call *c)
{
    struct engine *eng = c->eng;
    struct http_req req = {0};
    struct errbuf eb = {0};
    char *auth = NULL;
    char ids[3][96];
    char range[64];
    int64_t now = clock_mono_ms();
    int64_t wait = 0;
    int nh = 0;
    int rc;

    if (sync_stop_requested) {
        struct http_resp r = {.err = ERR_INTERRUPTED, .errmsg = "interrupted", .retry_after = -1};
        c->done(c, &r);
        return;
    }
    if (c->kind == CALL_GRAPH) {
        int64_t w1 = c->t != NULL ? pacer_wait(&c->t->pacer, c->units, now) : 0;
        int64_t w2 = pacer_wait(&eng->global, c->units, now);

        wait = w1 > w2 ? w1 : w2;
    } else if (c->kind == CALL_PC) {
        wait = pacer_wait(&eng->pc, 1, now);
    }
    if (wait > 0) {
        http_timer(eng->http, wait, sync_retry_timer, c);
        return;
    }
    if (c->bulk && !c->holds_gate) {
        if (eng->bulk_inflight >= BULK_MAX) {
            c->qnext = NULL;
            if (eng->bulk_tail != NULL)
                eng->bulk_tail->qnext = c;
            else
                eng->bulk_head = c;
            eng->bulk_tail = c;
            return;
        }
        eng->bulk_inflight++;
        c->holds_gate = 1;
    }
    if (c->kind == CALL_GRAPH) {
        if (c->t != NULL)
            pacer_note(&c->t->pacer, c->units, now);
        pacer_note(&eng->global, c->units, now);
    } else if (c->kind == CALL_PC) {
        pacer_note(&eng->pc, 1, now);
    }

    req.url = c->url;
    req.max_body = c->max_body;
    if (c->body != NULL && c->kind == CALL_GRAPH) {
        req.method = "POST";
        req.body = c->body;
        req.body_len = c->body_len;
        req.headers[nh++] = "Content-Type: application/json";
    }
    if (c->kind == CALL_BLOB) {
        /* A pre-signed URL on another host: no Authorization header, ever. The body streams to
         * a file; a retry asks only for the bytes not yet on disk. */
        struct stat sb;

        req.to_file = 1;
        req.sink_fd = c->sink_fd;
        req.timeout_ms = EXPORT_DOWNLOAD_TIMEOUT_MS;
        req.low_speed_bps = EXPORT_LOW_SPEED_BPS;
        req.low_speed_s = EXPORT_LOW_SPEED_S;
        if (fstat(c->sink_fd, &sb) == 0 && sb.st_size > 0) {
            snprintf(range, sizeof range, "Range: bytes=%lld-", (long long)sb.st_size);
            req.headers[nh++] = range;
        }
    } else if (c->kind == CALL_TOKEN) {
        req.method = "POST";
        req.body = c->body;
        req.body_len = c->body_len;
        req.headers[nh++] = "Content-Type: application/x-www-form-urlencoded";
        req.headers[nh++] = "Accept: application/json";
        nh = support_headers(c, &req, nh, ids);
    } else {
        const char *tok = token_cache_get(eng->tokens, c->token_tenant, c->audience, clock_now());

        if (tok == NULL) {
            /* Expired while the call waited: get a new one first. */
            struct call *tc = sync_token_call_new(eng, c->t, c->token_tenant, c->client_id,
                                                  c->secret, c->audience, c);
            sync_call_submit(tc);
            return;
        }
        auth = xasprintf("Authorization: Bearer %s", tok);
        req.headers[nh++] = auth;
        req.headers[nh++] = "Accept: application/json";
        if (c->extra_header != NULL)
            req.headers[nh++] = c->extra_header;
        nh = support_headers(c, &req, nh, ids);
    }
    c->sent_ms = now;
    rc = http_submit(eng->http, &req, call_on_resp, c, &eb);
    if (auth != NULL) {
        sodium_memzero(auth, strlen(auth));
        free(auth);
    }
    if (rc != ERR_OK) {
        struct http_resp r = {.err = rc, .errmsg = eb.msg, .retry_after = -1};

        gate_release(c);
        c->done(c, &r);
    }
}

/* A Graph call for tenant t with the sync app's token. */
struct call *
sync_graph_call_new(struct tenant *t, char *url, call_done_fn *done)
{
    struct engine *eng = t->eng;
    struct call *c = sync_call_new(eng, t, CALL_GRAPH, url, done);

    c->token_tenant = xstrdup(t->cust.tenant_id);
    c->audience = eng->cloud->graph_audience;
    c->client_id = eng->creds->sync_app_id;
    c->secret = eng->creds->sync_secret;
    return c;
}

/* Maps a final non-2xx or transport failure of a Graph call to a remedy. */
void
sync_graph_failure(struct tenant *t, const struct http_resp *r, struct remedy *rem)
{
    struct remedy_ctx ctx = {0};
    struct remedy_graph_error rg = {0};
    struct graph_error ge;

    ctx.tenant_id = t->cust.tenant_id;
    ctx.app_id = t->eng->creds->sync_app_id;
    ctx.app_label = "Sync App";
    ctx.login_base = t->eng->cfg->login_url;
    if (r->err == ERR_INTERRUPTED) {
        remedy_set(rem, REMEDY_INTERRUPTED, &ctx, NULL);
        return;
    }
    if (r->err != ERR_OK) {
        remedy_set(rem, r->err == ERR_TOOBIG ? REMEDY_BAD_RESPONSE : REMEDY_NETWORK, &ctx,
                   r->errmsg);
        return;
    }
    if (r->status == 429) {
        remedy_set(rem, REMEDY_THROTTLED, &ctx, NULL);
        sync_note_resp_ids(rem, r, NULL, NULL);
        return;
    }
    rg.status = r->status;
    rg.www_authenticate = r->www_authenticate;
    if (graph_error_parse(r->body, r->body_len, &ge) == ERR_OK) {
        rg.code = ge.code;
        rg.message = ge.message;
        rg.not_applicable = ge.not_applicable;
        rg.nested_forbidden = ge.nested_forbidden;
    } else {
        memset(&ge, 0, sizeof ge);
    }
    /* /organization's assignedPlans tell a missing licence from a missing permission. */
    ctx.intune_plan = (enum remedy_intune_plan)t->org.intune_plan;
    remedy_from_graph_error(rem, &ctx, &rg);
    sync_note_resp_ids(rem, r, ge.request_id, ge.date);
}
