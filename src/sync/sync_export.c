/* sync_export.c - detected apps from the AppInvRawData report export: the job, its polling, the
 * download to an unlinked temporary file and the read of its CSV into the tenant's catalogue;
 * on any trouble the apps are read device by device instead (export_fallback). */
#include "sync_int.h"

#include <jansson.h>

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "clock.h"
#include "graph.h"
#include "http.h"
#include "log.h"
#include "mem.h"
#include "report.h"

/* ---- detected apps from the AppInvRawData report export ------------------------------------ */

/* Closes the tenant's downloaded report (unlinked when made: closing frees its space). */
void
sync_export_file_close(struct tenant *t)
{
    if (t->export_fd > 0)
        close(t->export_fd);
    t->export_fd = -1;
}

#define EXPORT_MAX_WAIT_MS (30 * 60 * 1000)
/* The zip lives in a temporary file, mapped while it is read: these bound disk, not memory. */
#define EXPORT_MAX_ZIP ((size_t)4 << 30)
#define EXPORT_MAX_CSV ((size_t)32 << 30)
/* Jobs Microsoft made for our POST may carry a requestDateTime a little before our clock. */
#define EXPORT_CLOCK_SLACK_S 300

static const char *const export_columns[6] = {
    "ApplicationKey",     "ApplicationName", "ApplicationPublisher",
    "ApplicationVersion", "DeviceId",        "Platform"};

static void export_created(struct call *c, const struct http_resp *r);
static void export_polled(struct call *c, const struct http_resp *r);
static void export_downloaded(struct call *c, const struct http_resp *r);

/* The export did not work out: read the apps device by device instead. */
static void
export_fallback(struct tenant *t, const char *why, long status)
{
    log_info("report export not used tenant=%s status=%ld: %s; reading apps per device",
             t->cust.tenant_id, status, why);
    XFREE(t->export_id);
    sync_export_file_close(t);
    sync_phase_pump(t);
}

/* A temporary file for the report in $TMPDIR (else /tmp), mode 0600, unlinked at once: it
 * disappears with its descriptor on every path, a crash included. -1 when none can be made. */
static int
export_file_open(struct tenant *t)
{
    const char *dir = config_env("TMPDIR");
    char path[4096];
    int fd;

    if (dir == NULL || dir[0] == '\0')
        dir = "/tmp";
    if ((size_t)snprintf(path, sizeof path, "%s/memsync-export-XXXXXX", dir) >= sizeof path)
        return -1;
    if ((fd = mkstemp(path)) < 0) {
        log_warn("cannot make a temporary file for the report tenant=%s dir=%s: %s",
                 t->cust.tenant_id, dir, err_strerror(errno));
        return -1;
    }
    (void)unlink(path);
    (void)fcntl(fd, F_SETFD, FD_CLOEXEC);
    return fd;
}

void
sync_export_start(struct tenant *t)
{
    struct engine *eng = t->eng;
    json_t *sel = json_array(), *body;
    struct call *c;

    for (size_t i = 0; i < 6; i++)
        json_array_append_new(sel, json_string(export_columns[i]));
    /* replaceLocalizableValues: names, not codes, in the columns (the default keeps codes and
     * adds *_loc columns), so Platform reads as detectedApp's platform does. */
    body = json_pack("{s:s, s:s, s:s, s:o}", "reportName", "AppInvRawData", "format", "csv",
                     "localizationType", "replaceLocalizableValues", "select", sel);
    c = sync_graph_call_new(
        t, xasprintf("%s/beta/deviceManagement/reports/exportJobs", eng->cfg->graph_url),
        export_created);
    c->body = json_dumps(body, JSON_COMPACT);
    c->body_len = strlen(c->body);
    c->no_transport_retry = 1;
    json_decref(body);
    t->busy++;
    t->export_waited_ms = 0;
    t->export_delay_ms = 1000;
    t->export_posts++;
    t->export_posted = clock_now();
    sync_call_submit(c);
}

static void export_listed(struct call *c, const struct http_resp *r);
static void export_schedule_poll(struct tenant *t);

/* The POST failed after it may have reached Microsoft (a timeout, a dropped connection): a job
 * may exist. List the tenant's jobs and take ours rather than start a second export. */
static void
export_look_for_job(struct tenant *t)
{
    struct call *c = sync_graph_call_new(
        t, xasprintf("%s/beta/deviceManagement/reports/exportJobs", t->eng->cfg->graph_url),
        export_listed);

    t->busy++;
    sync_call_submit(c);
}

static void
export_listed(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    json_t *root = NULL, *v, *best = NULL;
    int64_t best_at = TS_NULL;
    size_t i;

    t->busy--;
    if (t->state != TS_RUNNING) {
        sync_call_free(c);
        return;
    }
    sync_call_free(c);
    if (r->err != ERR_OK || r->status != 200 ||
        (root = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, NULL)) == NULL ||
        !json_is_array(json_object_get(root, "value"))) {
        json_decref(root);
        export_fallback(t, "the export job's creation failed and the jobs could not be listed",
                        r->status);
        return;
    }
    /* Ours: AppInvRawData, not failed, asked for no earlier than our POST (less clock slack). */
    json_array_foreach(json_object_get(root, "value"), i, v)
    {
        const char *id = json_string_value(json_object_get(v, "id"));
        const char *rep = json_string_value(json_object_get(v, "reportName"));
        const char *st = json_string_value(json_object_get(v, "status"));
        const char *at = json_string_value(json_object_get(v, "requestDateTime"));
        int64_t when;

        if (id == NULL || id[0] == '\0' || rep == NULL || strcmp(rep, "AppInvRawData") != 0 ||
            (st != NULL && strcmp(st, "failed") == 0) || at == NULL ||
            clock_parse(at, &when) != ERR_OK || when < t->export_posted - EXPORT_CLOCK_SLACK_S)
            continue;
        if (best == NULL || when > best_at) {
            best = v;
            best_at = when;
        }
    }
    if (best != NULL) {
        t->export_id = xstrdup(json_string_value(json_object_get(best, "id")));
        log_info("report export job found after an interrupted request tenant=%s",
                 t->cust.tenant_id);
        json_decref(root);
        export_schedule_poll(t);
        return;
    }
    json_decref(root);
    if (t->export_posts < 2) { /* none made: asking again cannot double it */
        sync_export_start(t);
        return;
    }
    export_fallback(t, "the export job could not be created", 0);
}

static void
export_poll_timer(void *arg)
{
    struct tenant *t = arg;
    char *url;

    t->busy--;
    if (t->state != TS_RUNNING)
        return;
    url = xasprintf("%s/beta/deviceManagement/reports/exportJobs('%s')", t->eng->cfg->graph_url,
                    t->export_id);
    t->busy++;
    sync_call_submit(sync_graph_call_new(t, url, export_polled));
}

static void
export_schedule_poll(struct tenant *t)
{
    if (t->export_waited_ms >= EXPORT_MAX_WAIT_MS) {
        export_fallback(t, "the export job did not finish within 30 minutes", 0);
        return;
    }
    t->busy++;
    http_timer(t->eng->http, t->export_delay_ms, export_poll_timer, t);
    t->export_waited_ms += t->export_delay_ms;
    if (t->export_delay_ms < 30000)
        t->export_delay_ms *= 2;
}

/* id, status and url of an export job; the docs' {"value": {...}} wrapper is accepted. */
static json_t *
export_job_json(const struct http_resp *r)
{
    json_t *root = json_loadb(r->body, r->body_len, JSON_REJECT_DUPLICATES, NULL);

    if (root != NULL && json_is_object(json_object_get(root, "value"))) {
        json_t *v = json_incref(json_object_get(root, "value"));

        json_decref(root);
        root = v;
    }
    if (root != NULL && !json_is_string(json_object_get(root, "id"))) {
        json_decref(root);
        root = NULL;
    }
    return root;
}

static void
export_created(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    json_t *job = NULL;

    t->busy--;
    if (t->state != TS_RUNNING) {
        sync_call_free(c);
        return;
    }
    if (r->err != ERR_OK && r->err != ERR_INTERRUPTED) {
        sync_call_free(c);
        export_look_for_job(t);
        return;
    }
    if (r->err != ERR_OK || (r->status != 201 && r->status != 200) ||
        (job = export_job_json(r)) == NULL) {
        sync_call_free(c);
        export_fallback(t, "the export job could not be created", r->status);
        return;
    }
    t->export_id = xstrdup(json_string_value(json_object_get(job, "id")));
    json_decref(job);
    sync_call_free(c);
    export_schedule_poll(t);
}

static void
export_polled(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    json_t *job = NULL;
    const char *status, *url;

    t->busy--;
    if (t->state != TS_RUNNING) {
        sync_call_free(c);
        return;
    }
    sync_call_free(c);
    if (r->err != ERR_OK || r->status != 200 || (job = export_job_json(r)) == NULL) {
        export_fallback(t, "the export job could not be read", r->status);
        return;
    }
    status = json_string_value(json_object_get(job, "status"));
    url = json_string_value(json_object_get(job, "url"));
    if (status != NULL && strcmp(status, "completed") == 0 && url != NULL && url[0] != '\0') {
        struct call *d;

        if (!graph_blob_url_allowed(t->eng->cfg->graph_url, url)) {
            export_fallback(t,
                            "the export's download URL is not on an Azure Blob Storage host or "
                            "the Graph host; it was not fetched",
                            200);
        } else if ((t->export_fd = export_file_open(t)) < 0) {
            export_fallback(t, "no temporary file for the report", 200);
        } else {
            d = sync_call_new(t->eng, t, CALL_BLOB, xstrdup(url), export_downloaded);
            d->max_body = EXPORT_MAX_ZIP;
            d->sink_fd = t->export_fd;
            d->bulk = 1;
            t->busy++;
            sync_call_submit(d);
        }
    } else if (status != NULL && strcmp(status, "failed") == 0) {
        export_fallback(t, "Microsoft reports the export job failed", 200);
    } else {
        export_schedule_poll(t);
    }
    json_decref(job);
}

/* Normalises the report's Platform to detectedApp's platform spelling where they match. */
static const char *
export_platform(const char *p)
{
    static const char *const known[] = {
        "unknown",
        "windows",
        "windowsMobile",
        "windowsHolographic",
        "ios",
        "macOS",
        "chromeOS",
        "androidOSP",
        "androidDeviceAdministrator",
        "androidWorkProfile",
        "androidDedicatedAndFullyManaged",
    };

    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcasecmp(p, known[i]) == 0)
            return known[i];
    return p;
}

static int
export_row(void *arg, size_t row, const char *const *cells, size_t ncells)
{
    struct tenant *t = arg;
    struct detected_app a = {0};
    size_t dev;
    const char *v[6];
    uint32_t known;

    if (row == 0) {
        for (size_t k = 0; k < 6; k++) {
            t->export_cols[k] = -1;
            for (size_t i = 0; i < ncells; i++)
                if (strcasecmp(cells[i], export_columns[k]) == 0)
                    t->export_cols[k] = (int)i;
        }
        /* Key, name and device are needed; the rest may be missing. */
        return t->export_cols[0] < 0 || t->export_cols[1] < 0 || t->export_cols[4] < 0 ? ERR_PARSE
                                                                                       : ERR_OK;
    }
    for (size_t k = 0; k < 6; k++)
        v[k] = t->export_cols[k] >= 0 && (size_t)t->export_cols[k] < ncells
                   ? cells[t->export_cols[k]]
                   : "";
    dev = sync_devmap_find(t, v[4]);
    if (dev == SIZE_MAX || v[0][0] == '\0')
        return ERR_OK; /* a device that left Intune after the listing, or a blank row */
    if ((known = sync_appcat_find(&t->cat, v[0], strlen(v[0]))) != UINT32_MAX) {
        sync_devapps_add(&t->dapps[dev], known); /* copy only apps new to the tenant */
        return ERR_OK;
    }
    a.id = xstrdup(v[0]);
    a.name = v[1][0] ? xstrdup(v[1]) : NULL;
    a.publisher = v[2][0] ? xstrdup(v[2]) : NULL;
    a.version = v[3][0] ? xstrdup(v[3]) : NULL;
    a.platform = v[5][0] ? xstrdup(export_platform(v[5])) : NULL;
    a.size_bytes = -1;
    sync_devapps_add(&t->dapps[dev], sync_appcat_intern(&t->cat, &a));
    return ERR_OK;
}

/* Reads the downloaded zip from its file, mapped: the page cache holds it, not the heap. */
static int
export_read_file(struct tenant *t, struct errbuf *eb)
{
    struct stat sb;
    void *map;
    int rc;

    if (fstat(t->export_fd, &sb) != 0)
        return err_set(eb, ERR_IO, "cannot read the downloaded report: %s", err_strerror(errno));
    if (sb.st_size <= 0)
        return err_set(eb, ERR_PARSE, "the downloaded report is empty");
    map = mmap(NULL, (size_t)sb.st_size, PROT_READ, MAP_PRIVATE, t->export_fd, 0);
    if (map == MAP_FAILED)
        return err_set(eb, ERR_IO, "cannot map the downloaded report: %s", err_strerror(errno));
    rc = report_zip_csv(map, (size_t)sb.st_size, EXPORT_MAX_CSV, export_row, t, eb);
    munmap(map, (size_t)sb.st_size);
    return rc;
}

static void
export_downloaded(struct call *c, const struct http_resp *r)
{
    struct tenant *t = c->t;
    struct errbuf eb = {0};
    int rc;

    t->busy--;
    if (t->state != TS_RUNNING) {
        sync_call_free(c);
        return;
    }
    sync_call_free(c);
    if (r->err != ERR_OK || (r->status != 200 && r->status != 206)) {
        export_fallback(t, r->err != ERR_OK ? r->errmsg : "the export could not be downloaded",
                        r->status);
        return;
    }
    log_debug("report downloaded tenant=%s bytes=%lld", t->cust.tenant_id,
              (long long)r->file_bytes);
    rc = export_read_file(t, &eb);
    sync_export_file_close(t);
    if (rc != ERR_OK) {
        /* Apps read so far may be partial: drop them all and read per device. */
        for (size_t i = 0; i < t->ndevs; i++)
            t->dapps[i].n = 0;
        export_fallback(t, eb.msg, 200);
        return;
    }
    /* The report covers every device: the pending ones now have their (possibly empty) sets. */
    for (size_t i = 0; i < t->npending; i++)
        t->fetched[t->pending[i]] = 1;
    t->npending = 0;
    XFREE(t->export_id);
    log_debug("apps from report export tenant=%s apps=%zu", t->cust.tenant_id, t->cat.n);
    sync_phase_pump(t);
}
