/* sim.c - `memsync sim`: Entra token endpoints, Partner Center customers and the Graph/Intune
 * routes memsync uses, served by libmicrohttpd from a generated world (simworld.h). This file is
 * the server core: the listener, dispatch by path prefix, sending (with injected delays), the
 * response helpers, argv, start and stop. The services live in sim_entra.c, sim_partner.c,
 * sim_graph.c, sim_export.c and sim_control.c; simsrv.h holds what they share.
 *
 * Threads: MHD's internal epoll thread pool runs the handlers; a delay thread resumes
 * connections suspended for injected latency; the main thread waits for SIGTERM/SIGINT.
 * World data is guarded by world->lock (rwlock); faults, statistics and throttling counters by
 * `g.mu`.
 */
#include "sim.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sodium.h>
#include <sys/stat.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "clock.h"
#include "config.h"
#include "err.h"
#include "log.h"
#include "mem.h"
#include "opt.h"
#include "simsrv.h"
#include "simworld.h"

const char *const sim_route_names[R_COUNT] = {
    "token_v2",       "token_v1",      "openid",
    "customers",      "customer",      "organization",
    "managedDevices", "managedDevice", "deviceDetectedApps",
    "detectedApps",   "detectedApp",   "detectedAppDevices",
    "batch",          "exportJobs",    "download",
    "control",        "other",         "managedDeviceOverview",
};

struct sim_state g;

uint64_t
sim_str_hash(const char *a, const char *b)
{
    uint64_t h = UINT64_C(1469598103934665603);

    for (; *a; a++)
        h = (h ^ (unsigned char)*a) * UINT64_C(1099511628211);
    h = (h ^ '|') * UINT64_C(1099511628211);
    for (; b && *b; b++)
        h = (h ^ (unsigned char)*b) * UINT64_C(1099511628211);
    return h;
}

void
sim_sidx_put(struct sidx *x, uint64_t h, size_t pos)
{
    size_t j = (size_t)h & (x->cap - 1);

    while (x->slot[j])
        j = (j + 1) & (x->cap - 1);
    x->slot[j] = pos + 1;
}

/* Makes room for n entries; rehashes with hash_of(i) when the table grows. */
void
sim_sidx_reserve(struct sidx *x, size_t n, uint64_t (*hash_of)(size_t))
{
    if (n * 2 < x->cap)
        return;
    free(x->slot);
    x->cap = x->cap ? x->cap * 2 : 256;
    while (n * 2 >= x->cap)
        x->cap *= 2;
    x->slot = xcalloc(x->cap, sizeof(*x->slot));
    for (size_t i = 0; i + 1 < n; i++)
        sim_sidx_put(x, hash_of(i), i);
}

void
sim_sidx_clear(struct sidx *x)
{
    if (x->slot)
        memset(x->slot, 0, x->cap * sizeof(*x->slot));
}

/* --- small helpers ------------------------------------------------------------------------- */

/* Query arguments of the $batch inner request being served on this thread. */
__thread json_t *sim_inner_args;
/* Set while an inner request of a $batch is served: faults on the route "batch_item" apply
 * (each item has its own status, e.g. a 401 in a 200 batch: Microsoft Graph "JSON batching"). */
__thread int sim_in_batch_item;

/* Query argument lookup; inside $batch (c == NULL) it reads the inner request's query. */
const char *
sim_arg_lookup(struct MHD_Connection *c, const char *k)
{
    if (c == NULL)
        return sim_inner_args ? json_string_value(json_object_get(sim_inner_args, k)) : NULL;
    return MHD_lookup_connection_value(c, MHD_GET_ARGUMENT_KIND, k);
}

void
sim_rand_guid(char out[37])
{
    /* request ids need uniqueness, not secrecy: a per-thread generator seeded once avoids a
     * getrandom() call per response */
    static __thread uint64_t st;
    unsigned char r[16];

    if (st == 0)
        randombytes_buf(&st, sizeof st);
    uint64_t a = simw_rand(&st), b = simw_rand(&st);
    memcpy(r, &a, 8);
    memcpy(r + 8, &b, 8);
    r[6] = (unsigned char)((r[6] & 0x0f) | 0x40);
    r[8] = (unsigned char)((r[8] & 0x3f) | 0x80);
    snprintf(out, 37, "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", r[0],
             r[1], r[2], r[3], r[4], r[5], r[6], r[7], r[8], r[9], r[10], r[11], r[12], r[13],
             r[14], r[15]);
}

struct resp *
sim_resp_new(int status, const char *ctype)
{
    struct resp *r = xcalloc(1, sizeof(*r));

    r->status = status;
    r->ctype = ctype;
    return r;
}

void
sim_resp_free(struct resp *r)
{
    if (r == NULL)
        return;
    free(r->body);
    for (int i = 0; i < r->nhdrs; i++)
        free(r->hdrs[i].value);
    free(r);
}

void
sim_resp_hdr(struct resp *r, const char *name, const char *value)
{
    if (r->nhdrs < (int)(sizeof r->hdrs / sizeof r->hdrs[0])) {
        r->hdrs[r->nhdrs].name = name;
        r->hdrs[r->nhdrs].value = xstrdup(value);
        r->nhdrs++;
    }
}

void
sim_resp_json(struct resp *r, json_t *j)
{
    free(r->body);
    r->body = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
    if (r->body == NULL)
        r->body = xstrdup("{}");
    r->len = strlen(r->body);
    json_decref(j);
}

void
sim_resp_buf(struct resp *r, struct buf *b)
{
    free(r->body);
    r->body = buf_detach(b, &r->len);
}

static void
graph_date(char *out, size_t n)
{
    time_t t = time(NULL);
    struct tm tm;

    gmtime_r(&t, &tm);
    strftime(out, n, "%Y-%m-%dT%H:%M:%S", &tm);
}

struct resp *
sim_graph_error(int status, const char *code, const char *message)
{
    struct resp *r = sim_resp_new(status, SIM_JSON_CT);
    char rid[37], date[32];

    sim_rand_guid(rid);
    graph_date(date, sizeof date);
    sim_resp_json(r, json_pack("{s:{s:s, s:s, s:{s:s, s:s, s:s}}}", "error", "code", code,
                               "message", message, "innerError", "date", date, "request-id", rid,
                               "client-request-id", rid));
    sim_resp_hdr(r, "request-id", rid);
    return r;
}

struct resp *
sim_graph_429(double retry_after)
{
    struct resp *r = sim_resp_new(429, SIM_JSON_CT);
    char rid[37], date[32], ra[32];

    sim_rand_guid(rid);
    graph_date(date, sizeof date);
    sim_resp_json(r, json_pack("{s:{s:s, s:{s:s, s:s, s:s, s:s, s:s}, s:s}}", "error", "code",
                               "TooManyRequests", "innerError", "code", "429", "date", date,
                               "message", "Please retry after", "request-id", rid, "status", "429",
                               "message", "Please retry again later."));
    if (retry_after >= 0) {
        snprintf(ra, sizeof ra, "%.3f", retry_after);
        sim_resp_hdr(r, "Retry-After", ra);
    }
    sim_resp_hdr(r, "request-id", rid);
    return r;
}

struct resp *
sim_pc_error(int status, const char *code, const char *desc)
{
    struct resp *r = sim_resp_new(status, SIM_JSON_CT);

    sim_resp_json(r, json_pack("{s:s, s:s, s:[], s:s}", "code", code, "description", desc, "data",
                               "source", "PartnerFD"));
    return r;
}

struct resp *
sim_pc_429(int seconds)
{
    struct resp *r = sim_resp_new(429, SIM_JSON_CT);
    char msg[96], ra[16];

    snprintf(msg, sizeof msg, "Rate limit is exceeded. Try again in %d seconds.", seconds);
    sim_resp_json(r, json_pack("{s:i, s:s}", "statusCode", 429, "message", msg));
    snprintf(ra, sizeof ra, "%d", seconds);
    sim_resp_hdr(r, "Retry-After", ra);
    return r;
}

/* --- sending ------------------------------------------------------------------------------- */

struct slow_src {
    char *body;
    size_t len;
    size_t limit; /* bytes to send before failing (drop) */
    int slow;
    long rate_bps; /* bytes per second, 0 = no limit */
};

static ssize_t
slow_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct slow_src *s = cls;
    size_t n;

    if (pos >= s->limit)
        return s->limit < s->len ? MHD_CONTENT_READER_END_WITH_ERROR
                                 : MHD_CONTENT_READER_END_OF_STREAM;
    n = s->limit - (size_t)pos;
    if (s->slow) {
        if (n > 256)
            n = 256;
        usleep(100 * 1000);
    }
    if (n > max)
        n = max;
    if (s->rate_bps > 0) { /* at most a tenth of a second's worth, then its time */
        size_t step = s->rate_bps >= 10 ? (size_t)s->rate_bps / 10 : 1;

        if (n > step)
            n = step;
        usleep((useconds_t)((uint64_t)n * 1000000u / (uint64_t)s->rate_bps));
    }
    memcpy(buf, s->body + pos, n);
    return (ssize_t)n;
}

static void
slow_free(void *cls)
{
    struct slow_src *s = cls;

    free(s->body);
    free(s);
}

static enum MHD_Result
queue_resp(struct MHD_Connection *c, struct resp *r)
{
    struct MHD_Response *mr;
    enum MHD_Result ret;

    if (r->mode == SIMW_FAULT_DROP || r->mode == SIMW_FAULT_SLOW || r->rate_bps > 0 ||
        r->drop_at > 0) {
        struct slow_src *s = xcalloc(1, sizeof(*s));
        s->body = r->body;
        s->len = r->len;
        s->limit = r->mode == SIMW_FAULT_DROP ? r->len / 2 : r->len;
        if (r->drop_at > 0 && r->drop_at < s->limit)
            s->limit = r->drop_at;
        s->slow = r->mode == SIMW_FAULT_SLOW;
        s->rate_bps = r->rate_bps;
        r->body = NULL;
        mr = MHD_create_response_from_callback(s->len, s->rate_bps > 0 ? 65536 : 1024, slow_reader,
                                               s, slow_free);
    } else {
        size_t len = r->len;
        if (r->mode == SIMW_FAULT_BOM && r->body != NULL) {
            char *b = xmalloc(r->len + 3);
            memcpy(b, "\xEF\xBB\xBF", 3);
            memcpy(b + 3, r->body, r->len);
            free(r->body);
            r->body = b;
            r->len += 3;
            len = r->len;
        }
        if (r->mode == SIMW_FAULT_TRUNCATE)
            len = r->len / 2;
        mr = MHD_create_response_from_buffer(len, r->body ? r->body : (char *)"",
                                             r->body ? MHD_RESPMEM_MUST_FREE
                                                     : MHD_RESPMEM_PERSISTENT);
        r->body = NULL;
    }
    if (mr == NULL) {
        sim_resp_free(r);
        return MHD_NO;
    }
    if (r->ctype)
        MHD_add_response_header(mr, "Content-Type", r->ctype);
    for (int i = 0; i < r->nhdrs; i++)
        MHD_add_response_header(mr, r->hdrs[i].name, r->hdrs[i].value);
    MHD_add_response_header(mr, "X-Content-Type-Options", "nosniff");
    if (r->mode == SIMW_FAULT_DROP || r->drop_at > 0)
        MHD_add_response_header(mr, "Connection", "close");
    ret = MHD_queue_response(c, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    sim_resp_free(r);
    return ret;
}

static void *
delay_main(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&g.dmu);
    while (!g.stopping) {
        int64_t now = clock_mono_ms(), next = now + 1000;
        struct req **pp = &g.delayed;
        while (*pp) {
            struct req *q = *pp;
            if (q->due_ms <= now) {
                *pp = q->next_delayed;
                q->next_delayed = NULL;
                MHD_resume_connection(q->conn);
                continue;
            }
            if (q->due_ms < next)
                next = q->due_ms;
            pp = &q->next_delayed;
        }
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        int64_t wait = next - now;
        ts.tv_sec += (time_t)(wait / 1000);
        ts.tv_nsec += (long)(wait % 1000) * 1000000L;
        if (ts.tv_nsec >= 1000000000L) {
            ts.tv_sec++;
            ts.tv_nsec -= 1000000000L;
        }
        pthread_cond_timedwait(&g.dcv, &g.dmu, &ts);
    }
    /* resume everything so MHD can shut down */
    while (g.delayed) {
        struct req *q = g.delayed;
        g.delayed = q->next_delayed;
        MHD_resume_connection(q->conn);
    }
    pthread_mutex_unlock(&g.dmu);
    return NULL;
}

static enum MHD_Result
send_resp(struct MHD_Connection *c, struct req *q, struct resp *r)
{
    int delay = r->delay_ms + __atomic_load_n(&g.latency_ms, __ATOMIC_RELAXED);

    q->done = 1;
    if (delay > 0) {
        pthread_mutex_lock(&g.dmu);
        /* once stopping, nothing is suspended any more: MHD must not stop with suspended
         * connections */
        if (!g.stopping) {
            q->pending = r;
            q->conn = c;
            q->due_ms = clock_mono_ms() + delay;
            MHD_suspend_connection(c);
            q->next_delayed = g.delayed;
            g.delayed = q;
            pthread_cond_signal(&g.dcv);
            pthread_mutex_unlock(&g.dmu);
            return MHD_YES;
        }
        pthread_mutex_unlock(&g.dmu);
    }
    return queue_resp(c, r);
}

/* --- dispatch ------------------------------------------------------------------------------- */

static void
request_completed(void *cls, struct MHD_Connection *c, void **con_cls,
                  enum MHD_RequestTerminationCode toe)
{
    struct req *q = *con_cls;

    (void)cls;
    (void)c;
    (void)toe;
    if (q == NULL)
        return;
    buf_free(&q->body);
    sim_resp_free(q->pending);
    free(q);
    *con_cls = NULL;
}

static enum MHD_Result
arg_len_cb(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    size_t *n = cls;

    (void)kind;
    *n += strlen(key) + (value ? strlen(value) : 0) + 2;
    return MHD_YES;
}

static enum MHD_Result
handler(void *cls, struct MHD_Connection *c, const char *url, const char *method,
        const char *version, const char *upload_data, size_t *upload_data_size, void **con_cls)
{
    struct req *q = *con_cls;
    struct resp *r = NULL;
    enum route rt = R_OTHER;
    const char *tenant = NULL;
    char tbuf[40] = "";

    (void)cls;
    (void)version;
    if (q == NULL) {
        q = xcalloc(1, sizeof(*q));
        buf_init(&q->body, SIM_BODY_MAX);
        *con_cls = q;
        return MHD_YES;
    }
    if (q->pending) {
        /* resumed after an injected delay */
        struct resp *p = q->pending;
        q->pending = NULL;
        return queue_resp(c, p);
    }
    if (*upload_data_size > 0) {
        if (!q->toobig && buf_add(&q->body, upload_data, *upload_data_size) != ERR_OK) {
            q->toobig = 1;
            buf_free(&q->body);
        }
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (q->done)
        return MHD_YES;
    size_t qlen = 0;
    MHD_get_connection_values(c, MHD_GET_ARGUMENT_KIND, arg_len_cb, &qlen);
    if (strlen(url) + qlen > SIM_URL_MAX) {
        r = sim_graph_error(414, "BadRequest", "The request URL is too long.");
        goto send;
    }
    if (q->toobig) {
        r = sim_graph_error(413, "RequestEntityTooLarge", "The request body is too large.");
        goto send;
    }
    if (strncmp(url, "/login/", 7) == 0) {
        r = sim_entra_route(c, q, method, url + 7, &rt, tbuf, sizeof tbuf);
        if (tbuf[0] != '\0')
            tenant = tbuf;
        goto send;
    }
    if (strncmp(url, "/pc/v1/customers", 16) == 0) {
        tenant = g.w->partner_tenant_id;
        r = sim_partner_route(c, method, url + 16, &rt);
        goto send;
    }
    if (strncmp(url, "/graph/v1.0/", 12) == 0 || strncmp(url, "/graph/beta/", 12) == 0) {
        r = sim_graph_route(c, method, url + 7, q->body.data, q->body.len, &rt, &tenant);
        goto send;
    }
    if (strncmp(url, "/_sim/", 6) == 0) {
        rt = R_CONTROL;
        r = sim_control_route(c, method, url + 6, q->body.data, q->body.len);
        goto send;
    }
    if (strncmp(url, "/download/", 10) == 0) {
        rt = R_DOWNLOAD;
        r = sim_export_download(c, url + 10);
        goto send;
    }
    if (strncmp(url, "/pc/", 4) == 0)
        r = sim_pc_error(404, "404", "The requested resource was not found.");
    else
        r = sim_graph_error(404, "NotFound", "No such route in the memsync simulator.");
send:
    if (rt != R_CONTROL) {
        sim_stat_count(rt, tenant, r->status == 429);
        sim_reqlog_add(c, rt, tenant, method, r);
    }
    if (log_enabled(LOG_DEBUG)) {
        /* the path only: queries may carry skiptokens, never secrets, but keep lines short */
        char red[512];
        log_redact_url(url, red, sizeof red);
        log_debug("sim request method=%s path=%s status=%d route=%s tenant=%s", method, red,
                  r->status, sim_route_names[rt], tenant ? tenant : "-");
    }
    return send_resp(c, q, r);
}

/* --- startup -------------------------------------------------------------------------------- */

static int
write_env_file(const char *path, const char *ca_file)
{
    struct simworld *w = g.w;
    char tmp[4096];
    FILE *f;
    int fd;

    snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid());
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    if (fd < 0)
        return ERR_IO;
    f = fdopen(fd, "w");
    if (f == NULL) {
        close(fd);
        return ERR_IO;
    }
    fprintf(f, "MEMSYNC_LOGIN_URL='%s/login'\n", g.base);
    fprintf(f, "MEMSYNC_GRAPH_URL='%s/graph'\n", g.base);
    fprintf(f, "MEMSYNC_PARTNER_CENTER_URL='%s/pc'\n", g.base);
    if (ca_file)
        fprintf(f, "MEMSYNC_CA_FILE='%s'\n", ca_file);
    fprintf(f, "MEMSYNC_SIM_PARTNER_TENANT_ID='%s'\n", w->partner_tenant_id);
    fprintf(f, "MEMSYNC_SIM_PARTNER_APP_ID='%s'\n", w->partner_app.id);
    fprintf(f, "MEMSYNC_SIM_PARTNER_APP_SECRET='%s'\n",
            w->partner_app.secrets[w->partner_app.nsecrets - 1].value);
    fprintf(f, "MEMSYNC_SIM_SYNC_APP_ID='%s'\n", w->sync_app.id);
    fprintf(f, "MEMSYNC_SIM_SYNC_APP_SECRET='%s'\n",
            w->sync_app.secrets[w->sync_app.nsecrets - 1].value);
    fprintf(f, "MEMSYNC_SIM_SSO_CLIENT_ID='%s'\n", sim_oidc_client_id());
    fprintf(f, "MEMSYNC_SIM_SSO_CLIENT_SECRET='%s'\n", sim_oidc_client_secret());
    if (fflush(f) != 0 || fsync(fd) != 0) {
        fclose(f);
        unlink(tmp);
        return ERR_IO;
    }
    fclose(f);
    if (rename(tmp, path) != 0) {
        unlink(tmp);
        return ERR_IO;
    }
    return ERR_OK;
}

struct simopts {
    const char *listen;
    const char *env_file;
    const char *scenario;
    int tenants, devices, apps;
    uint64_t seed;
    int latency_ms;
    int tls;
    int throttle;
    int threads;
    long intune_limit, intune_window_ms, global_limit, global_window_ms, pc_limit, pc_window_ms;
    int set_seed, set_tenants, set_devices, set_apps;
    int64_t epoch; /* the world's "now": 0 = the current time (--epoch fixes it for tests) */
};

static int
build_world(struct simopts *o, json_t *sc, struct errbuf *eb)
{
    struct simw_opts wo = {o->seed, 0, o->devices, o->apps, o->epoch};
    json_t *v, *tl;

    if (sc) {
        if (!o->set_seed && json_is_integer(json_object_get(sc, "seed")))
            wo.seed = (uint64_t)json_integer_value(json_object_get(sc, "seed"));
        if (!o->set_devices && json_is_integer(json_object_get(sc, "devices")))
            wo.devices = (int)json_integer_value(json_object_get(sc, "devices"));
        if (!o->set_apps && json_is_integer(json_object_get(sc, "apps_per_device")))
            wo.apps_per_device = (int)json_integer_value(json_object_get(sc, "apps_per_device"));
        if (json_is_integer(json_object_get(sc, "latency_ms")) && o->latency_ms == 0)
            o->latency_ms = (int)json_integer_value(json_object_get(sc, "latency_ms"));
    }
    if (wo.devices < 0 || wo.devices > 1000000 || wo.apps_per_device < 0 || wo.apps_per_device > 60)
        return err_set(eb, ERR_USAGE, "devices must be 0..1000000 and apps-per-device 0..60");
    g.w = simw_new(&wo);
    tl = sc ? json_object_get(sc, "tenants") : NULL;
    if (o->set_tenants || tl == NULL) {
        int n = o->set_tenants || !json_is_integer(tl) ? o->tenants : (int)json_integer_value(tl);
        for (int i = 0; i < n; i++)
            simw_add_tenant(g.w, NULL, wo.devices);
    } else if (json_is_integer(tl)) {
        for (json_int_t i = 0; i < json_integer_value(tl) && i < 100000; i++)
            simw_add_tenant(g.w, NULL, wo.devices);
    } else if (json_is_array(tl)) {
        size_t i;
        json_array_foreach(tl, i, v)
        {
            json_t *dv = json_object_get(v, "devices");
            int nd = json_is_integer(dv) ? (int)json_integer_value(dv) : wo.devices;
            if (nd < 0 || nd > 1000000)
                return err_set(eb, ERR_PARSE, "scenario tenant %zu: devices out of range", i);
            struct simtenant *t =
                simw_add_tenant(g.w, json_string_value(json_object_get(v, "name")), nd);
            sim_set_tenant_flags(t, v);
        }
    } else {
        return err_set(eb, ERR_PARSE, "scenario: tenants must be a number or an array");
    }
    if (sc && json_is_object(json_object_get(sc, "throttle")))
        sim_set_throttle(json_object_get(sc, "throttle"));
    if (sc && json_is_array(json_object_get(sc, "faults"))) {
        size_t i;
        char err[256];
        json_array_foreach(json_object_get(sc, "faults"), i, v)
        {
            if (sim_fault_add(v, err, sizeof err) != ERR_OK)
                return err_set(eb, ERR_PARSE, "scenario fault %zu: %s", i, err);
        }
    }
    if (sc && json_is_boolean(json_object_get(json_object_get(sc, "partner"), "application_read")))
        g.no_app_read =
            !json_is_true(json_object_get(json_object_get(sc, "partner"), "application_read"));
    if (sc && json_is_object(json_object_get(sc, "export"))) {
        char err[256];
        if (sim_set_export(json_object_get(sc, "export"), err, sizeof err) != ERR_OK)
            return err_set(eb, ERR_PARSE, "scenario export: %s", err);
    }
    if (sc && json_is_object(json_object_get(sc, "secrets"))) {
        json_t *s = json_object_get(sc, "secrets");
        if (json_is_true(json_object_get(s, "sync_expired")))
            g.w->sync_app.secrets[0].expires = clock_now() - 86400;
        if (json_is_true(json_object_get(s, "partner_expired")))
            g.w->partner_app.secrets[0].expires = clock_now() - 86400;
    }
    return ERR_OK;
}

/* --- TLS: a throwaway CA and server certificate made with the openssl CLI ------------------ */

static int
run_argv(char *const argv[])
{
    pid_t pid = fork();
    int st = 0;

    if (pid < 0)
        return ERR_IO;
    if (pid == 0) {
        int fd = open("/dev/null", O_WRONLY);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
        }
        execvp(argv[0], argv);
        _exit(127);
    }
    while (waitpid(pid, &st, 0) < 0)
        if (errno != EINTR)
            return ERR_IO;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? ERR_OK : ERR_IO;
}

static char *
slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct buf b;
    char tmp[4096];
    size_t n;

    if (f == NULL)
        return NULL;
    buf_init(&b, 1 << 20);
    while ((n = fread(tmp, 1, sizeof tmp, f)) > 0)
        if (buf_add(&b, tmp, n) != ERR_OK)
            break;
    fclose(f);
    return buf_detach(&b, &n);
}

static int
make_certs(const char *dir, char **key_pem, char **cert_pem, char *ca_path, size_t ca_len,
           struct errbuf *eb)
{
    char cakey[1024], cacrt[1024], key[1024], csr[1024], crt[1024], ext[1024];
    FILE *f;

    snprintf(cakey, sizeof cakey, "%s/sim-ca.key", dir);
    snprintf(cacrt, sizeof cacrt, "%s/sim-ca.pem", dir);
    snprintf(key, sizeof key, "%s/sim-server.key", dir);
    snprintf(csr, sizeof csr, "%s/sim-server.csr", dir);
    snprintf(crt, sizeof crt, "%s/sim-server.pem", dir);
    snprintf(ext, sizeof ext, "%s/sim-server.ext", dir);
    f = fopen(ext, "w");
    if (f == NULL)
        return err_set(eb, ERR_IO, "cannot write %s", ext);
    fprintf(f, "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\n"
               "keyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n");
    fclose(f);
    char *a1[] = {"openssl",
                  "req",
                  "-x509",
                  "-newkey",
                  "ec",
                  "-pkeyopt",
                  "ec_paramgen_curve:prime256v1",
                  "-nodes",
                  "-keyout",
                  cakey,
                  "-out",
                  cacrt,
                  "-days",
                  "30",
                  "-subj",
                  "/CN=memsync sim CA",
                  NULL};
    char *a2[] = {
        "openssl",       "req",     "-newkey", "ec",   "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-nodes",        "-keyout", key,       "-out", csr,        "-subj",
        "/CN=127.0.0.1", NULL};
    char *a3[] = {
        "openssl",         "x509", "-req", "-in",   csr,  "-CA",      cacrt, "-CAkey", cakey,
        "-CAcreateserial", "-out", crt,    "-days", "30", "-extfile", ext,   NULL};
    if (run_argv(a1) != ERR_OK || run_argv(a2) != ERR_OK || run_argv(a3) != ERR_OK)
        return err_set(eb, ERR_IO, "openssl could not create the simulator's certificates");
    *key_pem = slurp(key);
    *cert_pem = slurp(crt);
    if (*key_pem == NULL || *cert_pem == NULL)
        return err_set(eb, ERR_IO, "cannot read the generated certificates");
    snprintf(ca_path, ca_len, "%s", cacrt);
    /* only the CA certificate stays on disk; the keys live in memory */
    unlink(cakey);
    unlink(key);
    unlink(csr);
    unlink(crt);
    unlink(ext);
    {
        char srl[1040];
        snprintf(srl, sizeof srl, "%s/sim-ca.srl", dir);
        unlink(srl);
    }
    return ERR_OK;
}

/* --- main ----------------------------------------------------------------------------------- */

static void
usage(FILE *stream)
{
    fprintf(stream,
            "usage: memsync sim [--listen ADDR:PORT] [--env-file FILE] [--tenants N] "
            "[--devices M]\n"
            "                   [--apps-per-device K] [--seed S] [--latency-ms L] [--tls]\n"
            "                   [--scenario FILE|demo|faults|msp-reference] [--no-throttle]\n"
            "                   [--intune-limit N] [--intune-window-ms MS] [--global-limit N]\n"
            "                   [--global-window-ms MS] [--pc-limit N] [--pc-window-ms MS]\n"
            "                   [--threads N] [--epoch RFC3339|UNIX-SECONDS]\n");
}

static int
parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    long long v;

    if (s == NULL || *s == '\0')
        return ERR_USAGE;
    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno || *end != '\0' || v < lo || v > hi)
        return ERR_USAGE;
    *out = (long)v;
    return ERR_OK;
}

/* --epoch: RFC 3339 or Unix seconds, after 2001 (a world's dates reach four years back). */
static int
parse_epoch(const char *s, int64_t *out)
{
    long secs;

    if (parse_long(s, 1000000000L, 32503680000L, &secs) == ERR_OK) {
        *out = secs;
        return ERR_OK;
    }
    if (clock_parse(s, out) != ERR_OK || *out == TS_NULL || *out < 1000000000L)
        return ERR_USAGE;
    return ERR_OK;
}

/* One numeric option: where its text goes, its bounds, and where the number goes. */
struct numopt {
    const char *name;
    long lo, hi;
    long *out;
    int *set; /* or NULL */
    const char *text;
};

static int
parse_opts(int argc, char **argv, struct simopts *o)
{
    long tenants = 0, devices = 0, apps = 0, seed = 0, latency = 0, threads = 0;
    struct numopt nums[] = {
        {"tenants", 0, 100000, &tenants, &o->set_tenants, NULL},
        {"devices", 0, 1000000, &devices, &o->set_devices, NULL},
        {"apps-per-device", 0, 60, &apps, &o->set_apps, NULL},
        {"seed", 0, 0x7fffffffffffffffL, &seed, &o->set_seed, NULL},
        {"latency-ms", 0, 600000, &latency, NULL, NULL},
        {"threads", 1, 64, &threads, NULL, NULL},
        {"intune-limit", 1, 100000000, &o->intune_limit, NULL, NULL},
        {"intune-window-ms", 1, 3600000, &o->intune_window_ms, NULL, NULL},
        {"global-limit", 1, 100000000, &o->global_limit, NULL, NULL},
        {"global-window-ms", 1, 3600000, &o->global_window_ms, NULL, NULL},
        {"pc-limit", 1, 100000000, &o->pc_limit, NULL, NULL},
        {"pc-window-ms", 1, 3600000, &o->pc_window_ms, NULL, NULL},
    };
    enum { NNUM = sizeof nums / sizeof nums[0] };
    int no_throttle = 0, help = 0, npos = 0;
    const char *epoch = NULL;
    struct opt opts[NNUM + 7];
    size_t k = 0;

    opts[k++] = (struct opt){"listen", 1, &o->listen, NULL};
    opts[k++] = (struct opt){"env-file", 1, &o->env_file, NULL};
    opts[k++] = (struct opt){"scenario", 1, &o->scenario, NULL};
    opts[k++] = (struct opt){"tls", 0, NULL, &o->tls};
    opts[k++] = (struct opt){"no-throttle", 0, NULL, &no_throttle};
    opts[k++] = (struct opt){"epoch", 1, &epoch, NULL};
    for (size_t n = 0; n < NNUM; n++)
        opts[k++] = (struct opt){nums[n].name, 1, &nums[n].text, NULL};
    opts[k] = (struct opt){NULL, 0, NULL, NULL};
    if (opt_parse("sim", argc, argv, opts, NULL, 0, &npos, &help) != 0) {
        usage(stderr);
        return ERR_USAGE;
    }
    if (help) {
        usage(stdout);
        return 1;
    }
    for (size_t n = 0; n < NNUM; n++) {
        if (nums[n].text == NULL)
            continue;
        if (parse_long(nums[n].text, nums[n].lo, nums[n].hi, nums[n].out) != ERR_OK) {
            fprintf(stderr, "memsync sim: bad value for --%s (a whole number from %ld to %ld)\n",
                    nums[n].name, nums[n].lo, nums[n].hi);
            return ERR_USAGE;
        }
        if (nums[n].set)
            *nums[n].set = 1;
    }
    if (no_throttle)
        o->throttle = 0;
    if (epoch != NULL && parse_epoch(epoch, &o->epoch) != ERR_OK) {
        fprintf(stderr, "memsync sim: bad value for --epoch (an RFC 3339 date-time such as "
                        "2026-06-01T00:00:00Z, or Unix seconds)\n");
        return ERR_USAGE;
    }
    if (nums[0].text)
        o->tenants = (int)tenants;
    if (nums[1].text)
        o->devices = (int)devices;
    if (nums[2].text)
        o->apps = (int)apps;
    if (nums[3].text)
        o->seed = (uint64_t)seed;
    if (nums[4].text)
        o->latency_ms = (int)latency;
    if (nums[5].text)
        o->threads = (int)threads;
    return ERR_OK;
}

int
sim_main(int argc, char **argv)
{
    struct simopts o;
    struct errbuf eb;
    json_t *sc = NULL;
    struct sockaddr_in sa;
    char host[64] = "127.0.0.1", ca_path[1024] = "";
    char *key_pem = NULL, *cert_pem = NULL;
    long port = 0;
    sigset_t set;
    int sig, rc = 1, lfd = -1;
    const char *ll = config_env("MEMSYNC_LOG_LEVEL");

    memset(&o, 0, sizeof o);
    memset(&eb, 0, sizeof eb);
    o.listen = "127.0.0.1:0";
    o.seed = 1;
    o.tenants = 3;
    o.devices = 25;
    o.apps = 5;
    o.throttle = 1;
    o.threads = 4;
    o.intune_limit = 2000;
    o.intune_window_ms = 20000;
    o.global_limit = 130000;
    o.global_window_ms = 10000;
    o.pc_limit = 500;
    o.pc_window_ms = 60000;
    if (ll) {
        enum log_level lv;
        const char *lf = config_env("MEMSYNC_LOG_FORMAT");
        if (log_level_parse(ll, &lv) == ERR_OK)
            log_configure(lv, lf && strcmp(lf, "json") == 0);
    }
    int prc = parse_opts(argc, argv, &o);
    if (prc == 1)
        return 0;
    if (prc != ERR_OK)
        return 2;
    {
        const char *colon = strrchr(o.listen, ':');
        size_t hl = colon ? (size_t)(colon - o.listen) : 0;
        memset(&sa, 0, sizeof sa);
        sa.sin_family = AF_INET;
        if (colon == NULL || hl >= sizeof host ||
            parse_long(colon + 1, 0, 65535, &port) != ERR_OK) {
            fprintf(stderr, "memsync sim: --listen wants ADDR:PORT\n");
            return 2;
        }
        memcpy(host, o.listen, hl);
        host[hl] = '\0';
        if (inet_pton(AF_INET, host, &sa.sin_addr) != 1) {
            fprintf(stderr, "memsync sim: --listen address must be an IPv4 address\n");
            return 2;
        }
        sa.sin_port = htons((uint16_t)port);
    }
    simtok_init();
    sim_oidc_init();
    pthread_mutex_init(&g.mu, NULL);
    pthread_mutex_init(&g.dmu, NULL);
    pthread_cond_init(&g.dcv, NULL);
    g.throttle = o.throttle;
    g.intune_limit = o.intune_limit;
    g.intune_window_ms = o.intune_window_ms;
    g.global_limit = o.global_limit;
    g.global_window_ms = o.global_window_ms;
    g.pc_limit = o.pc_limit;
    g.pc_window_ms = o.pc_window_ms;
    g.tenant_limit = 4000;
    if (o.scenario) {
        sc = sim_load_scenario(o.scenario, &eb);
        if (sc == NULL) {
            fprintf(stderr, "memsync sim: %s\n", eb.msg);
            return 2;
        }
    }
    if (build_world(&o, sc, &eb) != ERR_OK) {
        fprintf(stderr, "memsync sim: %s\n", eb.msg);
        goto out;
    }
    if (!o.throttle)
        g.throttle = 0;
    g.latency_ms = o.latency_ms;
    g.tls = o.tls;
    if (o.tls) {
        char dir[1024];
        if (o.env_file) {
            const char *slash = strrchr(o.env_file, '/');
            if (slash)
                snprintf(dir, sizeof dir, "%.*s", (int)(slash - o.env_file), o.env_file);
            else
                snprintf(dir, sizeof dir, ".");
        } else {
            snprintf(dir, sizeof dir, "/tmp/memsync-sim-%ld", (long)getpid());
            mkdir(dir, 0700);
        }
        {
            /* The env file is read from anywhere: MEMSYNC_CA_FILE must be absolute. */
            char *abs = realpath(dir, NULL);

            if (abs != NULL) {
                snprintf(dir, sizeof dir, "%s", abs);
                free(abs);
            }
        }
        if (!MHD_is_feature_supported(MHD_FEATURE_TLS)) {
            fprintf(stderr, "memsync sim: this libmicrohttpd has no TLS support\n");
            goto out;
        }
        if (make_certs(dir, &key_pem, &cert_pem, ca_path, sizeof ca_path, &eb) != ERR_OK) {
            fprintf(stderr, "memsync sim: %s\n", eb.msg);
            goto out;
        }
    }

    /* signals are taken by sigwait on this thread; every other thread inherits the mask */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);
    pthread_create(&g.dthread, NULL, delay_main, NULL);

    /* bind first, so the base URL is known before any request can arrive */
    lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    {
        int one = 1;
        socklen_t sl = sizeof sa;
        if (lfd < 0 || setsockopt(lfd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) != 0 ||
            bind(lfd, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(lfd, 512) != 0 ||
            getsockname(lfd, (struct sockaddr *)&sa, &sl) != 0) {
            fprintf(stderr, "memsync sim: cannot listen on %s: %s\n", o.listen,
                    err_strerror(errno));
            goto stop;
        }
        snprintf(g.base, sizeof g.base, "%s://%s:%u", o.tls ? "https" : "http",
                 strcmp(host, "0.0.0.0") == 0 ? "127.0.0.1" : host, (unsigned)ntohs(sa.sin_port));
    }

    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME |
                     MHD_USE_ERROR_LOG;
    if (o.tls)
        flags |= MHD_USE_TLS;
    if (o.tls)
        g.d = MHD_start_daemon(
            flags, (uint16_t)port, NULL, NULL, handler, NULL, MHD_OPTION_LISTEN_SOCKET, lfd,
            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o.threads, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)2048, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
            request_completed, NULL, MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_HTTPS_MEM_KEY,
            key_pem, MHD_OPTION_HTTPS_MEM_CERT, cert_pem, MHD_OPTION_END);
    else
        g.d = MHD_start_daemon(
            flags, (uint16_t)port, NULL, NULL, handler, NULL, MHD_OPTION_LISTEN_SOCKET, lfd,
            MHD_OPTION_THREAD_POOL_SIZE, (unsigned)o.threads, MHD_OPTION_CONNECTION_LIMIT,
            (unsigned)2048, MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)120,
            MHD_OPTION_CONNECTION_MEMORY_LIMIT, (size_t)(256 * 1024), MHD_OPTION_NOTIFY_COMPLETED,
            request_completed, NULL, MHD_OPTION_STRICT_FOR_CLIENT, (int)1, MHD_OPTION_END);
    if (g.d == NULL) {
        fprintf(stderr, "memsync sim: cannot listen on %s\n", o.listen);
        goto stop;
    }
    lfd = -1; /* MHD owns and closes it now */
    if (o.env_file && write_env_file(o.env_file, o.tls ? ca_path : NULL) != ERR_OK) {
        fprintf(stderr, "memsync sim: cannot write %s\n", o.env_file);
        goto stop;
    }
    pthread_rwlock_rdlock(&g.w->lock);
    size_t ndev = 0;
    for (size_t i = 0; i < g.w->ntenants; i++)
        ndev += g.w->tenants[i]->ndev;
    log_info("sim ready url=%s tenants=%zu devices=%zu seed=%llu", g.base, g.w->ntenants, ndev,
             (unsigned long long)g.w->seed);
    pthread_rwlock_unlock(&g.w->lock);
    if (sigwait(&set, &sig) == 0)
        log_info("sim stopping signal=%d", sig);
    rc = 0;
stop:
    pthread_mutex_lock(&g.dmu);
    g.stopping = 1;
    pthread_cond_signal(&g.dcv);
    pthread_mutex_unlock(&g.dmu);
    pthread_join(g.dthread, NULL);
    if (g.d)
        MHD_stop_daemon(g.d);
    if (lfd >= 0)
        close(lfd);
out:
    json_decref(sc);
    while (g.jobs) {
        struct export_job *j = g.jobs;
        g.jobs = j->next;
        json_decref(j->select);
        free(j->filter);
        free(j->zip);
        free(j);
    }
    free(g.stats);
    free(g.reqlog);
    free(g.wins);
    free(g.stat_idx.slot);
    free(g.win_idx.slot);
    simw_free(g.w);
    g.w = NULL;
    free(key_pem);
    free(cert_pem);
    return rc;
}
