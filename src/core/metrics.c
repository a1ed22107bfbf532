/* metrics.c - process-wide request counters and sync duration histograms (metrics.h). */
#include "metrics.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define ROUTE_MAX 128

struct route_series {
    char route[ROUTE_MAX];
    char method[8];
    int cls; /* 1..5 */
    uint64_t count;
};

/* Upper bounds in seconds; a sync of a few tenants takes seconds, of hundreds an hour. */
static const double sync_bounds[] = {1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 7200};
#define NBOUNDS (sizeof sync_bounds / sizeof sync_bounds[0])

struct histogram {
    uint64_t buckets[NBOUNDS]; /* not cumulative here; summed when written */
    uint64_t count;
    double sum;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static struct route_series series[METRICS_ROUTES_MAX];
static size_t nseries;
static uint64_t other_count[6];
static struct histogram sync_hist[2]; /* [0] incremental, [1] full */

static int
id_like(const char *s, size_t len)
{
    size_t digits = 0;

    if (len >= 24)
        return 1;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];

        if (c >= '0' && c <= '9')
            digits++;
        else if (!((c >= 'a' && c <= 'z') || c == '-' || c == '_' || c == '.'))
            return 1; /* upper case, percent-encoding, anything unusual */
    }
    /* "v1" is a word; "42", "7f3c-..." are ids. */
    return digits == len || (digits > 0 && !(len == 2 && s[0] == 'v'));
}

/* Writes `path` as a route template into out (size n): "/api/v1/assets/hardware/{id}". */
static void
metrics_route_template(const char *path, char *out, size_t n)
{
    size_t o = 0;
    const char *p = path != NULL ? path : "";

    if (n == 0)
        return;
    out[0] = '\0';
    while (*p != '\0') {
        const char *seg, *e;
        size_t len;

        while (*p == '/')
            p++;
        if (*p == '\0')
            break;
        seg = p;
        e = strchr(seg, '/');
        len = e != NULL ? (size_t)(e - seg) : strlen(seg);
        p = seg + len;
        if (id_like(seg, len)) {
            seg = "{id}";
            len = 4;
        }
        if (o + 1 + len + 1 > n) {
            snprintf(out, n, "other");
            return;
        }
        out[o++] = '/';
        memcpy(out + o, seg, len);
        o += len;
        out[o] = '\0';
    }
    if (o == 0)
        snprintf(out, n, "/");
}

static const char *
known_method(const char *m)
{
    static const char *const methods[] = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", NULL};

    for (size_t i = 0; m != NULL && methods[i] != NULL; i++)
        if (strcmp(m, methods[i]) == 0)
            return methods[i];
    return "other";
}

void
metrics_http_observe(const char *method, const char *path, int status)
{
    char route[ROUTE_MAX];
    const char *m = known_method(method);
    int cls = status >= 100 && status < 600 ? status / 100 : 5;
    size_t i;

    metrics_route_template(path, route, sizeof route);
    pthread_mutex_lock(&mu);
    for (i = 0; i < nseries; i++)
        if (series[i].cls == cls && strcmp(series[i].method, m) == 0 &&
            strcmp(series[i].route, route) == 0)
            break;
    if (i == nseries && nseries < METRICS_ROUTES_MAX) {
        snprintf(series[i].route, sizeof series[i].route, "%s", route);
        snprintf(series[i].method, sizeof series[i].method, "%s", m);
        series[i].cls = cls;
        nseries++;
    }
    if (i < nseries)
        series[i].count++;
    else
        other_count[cls]++;
    pthread_mutex_unlock(&mu);
}

void
metrics_sync_observe(int full, double seconds)
{
    struct histogram *h = &sync_hist[full ? 1 : 0];

    if (seconds < 0)
        seconds = 0;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < NBOUNDS; i++)
        if (seconds <= sync_bounds[i]) {
            h->buckets[i]++;
            break;
        }
    h->count++;
    h->sum += seconds;
    pthread_mutex_unlock(&mu);
}

void
metrics_label(struct buf *b, const char *s)
{
    for (const char *p = s != NULL ? s : ""; *p != '\0'; p++) {
        if (*p == '\\')
            buf_addstr(b, "\\\\");
        else if (*p == '"')
            buf_addstr(b, "\\\"");
        else if (*p == '\n')
            buf_addstr(b, "\\n");
        else
            buf_addc(b, *p);
    }
}

void
metrics_http_write(struct buf *b)
{
    buf_addstr(b, "# HELP memsync_http_requests_total HTTP requests answered by the router, by "
                  "route template, method and status class (process-wide).\n"
                  "# TYPE memsync_http_requests_total counter\n");
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < nseries; i++) {
        buf_addstr(b, "memsync_http_requests_total{route=\"");
        metrics_label(b, series[i].route);
        buf_printf(b, "\",method=\"%s\",code=\"%dxx\"} %" PRIu64 "\n", series[i].method,
                   series[i].cls, series[i].count);
    }
    for (int c = 1; c <= 5; c++)
        if (other_count[c] > 0)
            buf_printf(b,
                       "memsync_http_requests_total{route=\"other\",method=\"other\","
                       "code=\"%dxx\"} %" PRIu64 "\n",
                       c, other_count[c]);
    pthread_mutex_unlock(&mu);
}

void
metrics_sync_write(struct buf *b)
{
    static const char *const kinds[] = {"incremental", "full"};

    buf_addstr(b, "# HELP memsync_sync_duration_seconds Duration of the syncs this process ran, "
                  "by kind (process-wide).\n"
                  "# TYPE memsync_sync_duration_seconds histogram\n");
    pthread_mutex_lock(&mu);
    for (int k = 1; k >= 0; k--) {
        const struct histogram *h = &sync_hist[k];
        uint64_t cum = 0;

        for (size_t i = 0; i < NBOUNDS; i++) {
            cum += h->buckets[i];
            buf_printf(b,
                       "memsync_sync_duration_seconds_bucket{kind=\"%s\",le=\"%g\"} %" PRIu64 "\n",
                       kinds[k], sync_bounds[i], cum);
        }
        buf_printf(b,
                   "memsync_sync_duration_seconds_bucket{kind=\"%s\",le=\"+Inf\"} %" PRIu64 "\n"
                   "memsync_sync_duration_seconds_sum{kind=\"%s\"} %.3f\n"
                   "memsync_sync_duration_seconds_count{kind=\"%s\"} %" PRIu64 "\n",
                   kinds[k], h->count, kinds[k], h->sum, kinds[k], h->count);
    }
    pthread_mutex_unlock(&mu);
}
