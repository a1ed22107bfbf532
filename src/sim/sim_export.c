/* sim_export.c - Intune report exports of `memsync sim`: exportJobs, the CSV and zip they
 * produce, and the blob downloads of the finished zip.
 */
#include "simsrv.h"

#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <zlib.h>

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "mem.h"
#include "simworld.h"

/* --- export jobs ---------------------------------------------------------------------------- */

/* Export jobs of the Intune reports API: a job completes on the second poll and its `url`
 * serves a zip holding one CSV (deflate via zlib; the zip container is written here). */

struct colmap {
    const char *col;
    const char *prop; /* managedDevice property, or NULL for computed columns */
};

static const struct colmap inv_cols[] = {
    {"DeviceId", "id"},
    {"DeviceName", "deviceName"},
    {"CreatedDate", "enrolledDateTime"},
    {"LastContact", "lastSyncDateTime"},
    {"ReferenceId", "azureADDeviceId"},
    {"OSVersion", "osVersion"},
    {"OS", "operatingSystem"},
    {"DeviceType", "operatingSystem"},
    {"SerialNumber", "serialNumber"},
    {"Manufacturer", "manufacturer"},
    {"Model", "model"},
    {"IMEI", "imei"},
    {"MEID", "meid"},
    {"WifiMacAddress", "wiFiMacAddress"},
    {"EthernetMAC", "ethernetMacAddress"},
    {"StorageTotal", "totalStorageSpaceInBytes"},
    {"StorageFree", "freeStorageSpaceInBytes"},
    {"UPN", "userPrincipalName"},
    {"UserEmail", "emailAddress"},
    {"UserName", "userDisplayName"},
    {"PrimaryUser", "userId"},
    {"CompliantState", "complianceState"},
    {"ComplianceState", "complianceState"},
    {"ManagementAgent", "managementAgent"},
    {"OwnerType", "managedDeviceOwnerType"},
    {"ManagementState", "managementState"},
    {"IsSupervised", "isSupervised"},
    {"IsEncrypted", "isEncrypted"},
    {"PhoneNumber", "phoneNumber"},
    {"ICCID", "iccid"},
    {"EnrollmentType", "deviceEnrollmentType"},
    {"CertExpirationDate", "managementCertificateExpirationDate"},
    {"JailBroken", "jailBroken"},
    {"CategoryName", "deviceCategoryDisplayName"},
    {"ProcessorArchitecture", NULL},
    {"SkuFamily", NULL},
    {"JoinType", NULL},
};

static const char *const app_cols[] = {
    "ApplicationKey",
    "ApplicationName",
    "ApplicationPublisher",
    "ApplicationShortVersion",
    "ApplicationVersion",
    "DeviceId",
    "DeviceName",
    "OSDescription",
    "OSVersion",
    "Platform",
    "UserId",
    "EmailAddress",
    "UserName",
};

static const char *const inv_default[] = {
    "DeviceId",  "DeviceName",  "SerialNumber", "Manufacturer", "Model",
    "OSVersion", "LastContact", "UPN",          "StorageTotal", "StorageFree"};

static void
csv_field(struct buf *b, const char *s, int first)
{
    if (!first)
        (void)buf_addc(b, ',');
    (void)buf_addc(b, '"');
    for (const char *p = s ? s : ""; *p; p++) {
        if (*p == '"')
            (void)buf_addc(b, '"');
        (void)buf_addc(b, *p);
    }
    (void)buf_addc(b, '"');
}

static void
report_date(int64_t t, char *out, size_t n)
{
    struct tm tm;
    time_t tt = (time_t)t;

    if (t == TS_NULL) {
        snprintf(out, n, "%s", "");
        return;
    }
    gmtime_r(&tt, &tm);
    strftime(out, n, "%Y-%m-%d %H:%M:%S.0000000", &tm);
}

static void
inv_value(const struct simdev *d, const char *col, const char *prop, char *out, size_t n)
{
    int p = prop ? simw_prop_index(prop) : -1;

    out[0] = '\0';
    if (p < 0) {
        if (strcmp(col, "ProcessorArchitecture") == 0)
            snprintf(out, n, "%s",
                     d->arch && strcmp(d->arch, "arm64") == 0 ? "12"
                     : d->arch && strcmp(d->arch, "x64") == 0 ? "9"
                                                              : "0");
        else if (strcmp(col, "JoinType") == 0)
            snprintf(out, n, "%s", "Azure AD joined");
        else if (strcmp(col, "SkuFamily") == 0)
            snprintf(out, n, "%s", "Enterprise");
        return;
    }
    switch (simw_props[p].kind) {
    case SIMW_STR:
        snprintf(out, n, "%s", d->str[p] ? d->str[p] : "");
        break;
    case SIMW_BOOL:
    case SIMW_BOOLNULL:
        snprintf(out, n, "%s", d->num[p] > 0 ? "True" : "False");
        break;
    case SIMW_INT64:
        /* storage columns are reported in MB */
        snprintf(out, n, "%lld", (long long)(d->num[p] / 1048576));
        break;
    case SIMW_DATE:
        report_date(d->num[p], out, n);
        break;
    default:
        break;
    }
}

static void
put16(struct buf *b, unsigned v)
{
    unsigned char x[2] = {(unsigned char)(v & 0xff), (unsigned char)((v >> 8) & 0xff)};
    (void)buf_add(b, x, 2);
}

static void
put32(struct buf *b, unsigned long v)
{
    unsigned char x[4] = {(unsigned char)(v & 0xff), (unsigned char)((v >> 8) & 0xff),
                          (unsigned char)((v >> 16) & 0xff), (unsigned char)((v >> 24) & 0xff)};
    (void)buf_add(b, x, 4);
}

static void
put64(struct buf *b, uint64_t v)
{
    put32(b, (unsigned long)(v & 0xffffffffu));
    put32(b, (unsigned long)(v >> 32));
}

/* The same archive as zip_one writes, in zip64 form, as writers of large reports make it:
 * 0xFFFFFFFF sizes and offset with the values in 0x0001 extra fields, and a zip64 end record
 * with its locator. */
static void
zip64_container(const char *name, size_t nlen, unsigned long crc, const unsigned char *comp,
                size_t clen, size_t len, struct buf *out)
{
    size_t cd, cdlen, z64;

    put32(out, 0x04034b50);
    put16(out, 45);
    put16(out, 0x0800);
    put16(out, 8);
    put16(out, 0);
    put16(out, 0x21);
    put32(out, crc);
    put32(out, 0xFFFFFFFFul);
    put32(out, 0xFFFFFFFFul);
    put16(out, (unsigned)nlen);
    put16(out, 20);
    (void)buf_add(out, name, nlen);
    put16(out, 1);
    put16(out, 16);
    put64(out, len);
    put64(out, clen);
    (void)buf_add(out, comp, clen);
    cd = out->len;
    put32(out, 0x02014b50);
    put16(out, 45);
    put16(out, 45);
    put16(out, 0x0800);
    put16(out, 8);
    put16(out, 0);
    put16(out, 0x21);
    put32(out, crc);
    put32(out, 0xFFFFFFFFul);
    put32(out, 0xFFFFFFFFul);
    put16(out, (unsigned)nlen);
    put16(out, 28);
    put16(out, 0);
    put16(out, 0);
    put16(out, 0);
    put32(out, 0);
    put32(out, 0xFFFFFFFFul);
    (void)buf_add(out, name, nlen);
    put16(out, 1);
    put16(out, 24);
    put64(out, len);
    put64(out, clen);
    put64(out, 0);
    cdlen = out->len - cd;
    z64 = out->len;
    put32(out, 0x06064b50);
    put64(out, 44);
    put16(out, 45);
    put16(out, 45);
    put32(out, 0);
    put32(out, 0);
    put64(out, 1);
    put64(out, 1);
    put64(out, cdlen);
    put64(out, cd);
    put32(out, 0x07064b50);
    put32(out, 0);
    put64(out, z64);
    put32(out, 1);
    put32(out, 0x06054b50);
    put16(out, 0xFFFF);
    put16(out, 0xFFFF);
    put16(out, 0xFFFF);
    put16(out, 0xFFFF);
    put32(out, 0xFFFFFFFFul);
    put32(out, 0xFFFFFFFFul);
    put16(out, 0);
}

/* One-file zip (method 8, raw deflate). Returns ERR_OK and the archive in *out. */
static int
zip_one(const char *name, const char *data, size_t len, struct buf *out, int zip64)
{
    z_stream zs;
    unsigned long crc = crc32(0L, (const Bytef *)data, (uInt)len);
    uLong bound;
    unsigned char *comp;
    size_t clen;
    size_t nlen = strlen(name);

    memset(&zs, 0, sizeof zs);
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -15, 8, Z_DEFAULT_STRATEGY) != Z_OK)
        return ERR_NOMEM;
    bound = deflateBound(&zs, (uLong)len);
    comp = xmalloc(bound);
    zs.next_in = (Bytef *)(uintptr_t)data;
    zs.avail_in = (uInt)len;
    zs.next_out = comp;
    zs.avail_out = (uInt)bound;
    if (deflate(&zs, Z_FINISH) != Z_STREAM_END) {
        deflateEnd(&zs);
        free(comp);
        return ERR_IO;
    }
    clen = zs.total_out;
    deflateEnd(&zs);
    if (zip64) {
        zip64_container(name, nlen, crc, comp, clen, len, out);
        free(comp);
        return ERR_OK;
    }
    /* local file header */
    put32(out, 0x04034b50);
    put16(out, 20);
    put16(out, 0x0800); /* UTF-8 names */
    put16(out, 8);
    put16(out, 0);
    put16(out, 0x21); /* 1980-01-01 */
    put32(out, crc);
    put32(out, (unsigned long)clen);
    put32(out, (unsigned long)len);
    put16(out, (unsigned)nlen);
    put16(out, 0);
    (void)buf_add(out, name, nlen);
    (void)buf_add(out, comp, clen);
    size_t cd = out->len;
    put32(out, 0x02014b50);
    put16(out, 20);
    put16(out, 20);
    put16(out, 0x0800);
    put16(out, 8);
    put16(out, 0);
    put16(out, 0x21);
    put32(out, crc);
    put32(out, (unsigned long)clen);
    put32(out, (unsigned long)len);
    put16(out, (unsigned)nlen);
    put16(out, 0);
    put16(out, 0);
    put16(out, 0);
    put16(out, 0);
    put32(out, 0);
    put32(out, 0);
    (void)buf_add(out, name, nlen);
    size_t cdlen = out->len - cd;
    put32(out, 0x06054b50);
    put16(out, 0);
    put16(out, 0);
    put16(out, 1);
    put16(out, 1);
    put32(out, (unsigned long)cdlen);
    put32(out, (unsigned long)cd);
    put16(out, 0);
    free(comp);
    return ERR_OK;
}

/* A localizable value as the default localizationType leaves it: a number standing for the name
 * (the name goes to Platform_loc). The numbers are the simulator's own. */
static const char *
platform_code(const char *platform)
{
    static const char *const names[] = {
        "windows",  "macOS", "ios", "androidWorkProfile", "androidDeviceAdministrator",
        "chromeOS", "linux"};
    static const char *const codes[] = {"1", "2", "3", "4", "5", "6", "7"};

    for (size_t i = 0; platform != NULL && i < sizeof names / sizeof names[0]; i++)
        if (strcasecmp(platform, names[i]) == 0)
            return codes[i];
    return "0";
}

/* Builds the CSV of a job (caller holds the world read lock). */
static void
export_csv(struct export_job *j, struct simtenant *t, struct buf *csv)
{
    int apps = strcmp(j->report, "AppInvRawData") == 0;
    size_t ncols = json_array_size(j->select);
    char v[512];

    int loc_col = 0; /* the default localizationType appends Platform_loc to a coded Platform */

    for (size_t i = 0; i < ncols; i++) {
        const char *col = json_string_value(json_array_get(j->select, i));

        csv_field(csv, col, i == 0);
        loc_col |= apps && j->codes && strcmp(col, "Platform") == 0;
    }
    if (loc_col)
        csv_field(csv, "Platform_loc", 0);
    (void)buf_addstr(csv, "\r\n");
    for (size_t di = 0; t && di < t->ndev; di++) {
        const struct simdev *d = t->devs[di];
        size_t rows = apps ? d->napps : 1;
        for (size_t a = 0; a < rows; a++) {
            const struct simapp *ap = apps ? &t->apps[d->apps[a]] : NULL;
            for (size_t i = 0; i < ncols; i++) {
                const char *col = json_string_value(json_array_get(j->select, i));
                v[0] = '\0';
                if (apps) {
                    int ui = simw_prop_index("userId"), ei = simw_prop_index("emailAddress"),
                        ni = simw_prop_index("userDisplayName");
                    const char *s = "";
                    if (strcmp(col, "ApplicationKey") == 0)
                        s = ap->id;
                    else if (strcmp(col, "ApplicationName") == 0)
                        s = ap->name;
                    else if (strcmp(col, "ApplicationPublisher") == 0)
                        s = ap->publisher ? ap->publisher : "";
                    else if (strcmp(col, "ApplicationVersion") == 0 ||
                             strcmp(col, "ApplicationShortVersion") == 0)
                        s = ap->version;
                    else if (strcmp(col, "DeviceId") == 0)
                        s = d->str[0];
                    else if (strcmp(col, "DeviceName") == 0)
                        s = d->str[simw_prop_index("deviceName")];
                    else if (strcmp(col, "OSDescription") == 0)
                        s = d->str[simw_prop_index("operatingSystem")];
                    else if (strcmp(col, "OSVersion") == 0)
                        s = d->str[simw_prop_index("osVersion")];
                    else if (strcmp(col, "Platform") == 0)
                        s = j->codes ? platform_code(ap->platform) : ap->platform;
                    else if (strcmp(col, "UserId") == 0)
                        s = d->str[ui];
                    else if (strcmp(col, "EmailAddress") == 0)
                        s = d->str[ei];
                    else if (strcmp(col, "UserName") == 0)
                        s = d->str[ni];
                    snprintf(v, sizeof v, "%s", s ? s : "");
                } else {
                    for (size_t k = 0; k < sizeof inv_cols / sizeof inv_cols[0]; k++)
                        if (strcasecmp(inv_cols[k].col, col) == 0) {
                            inv_value(d, inv_cols[k].col, inv_cols[k].prop, v, sizeof v);
                            break;
                        }
                    /* the report has the real Ethernet MAC, unlike the Graph list */
                    if (strcasecmp(col, "EthernetMAC") == 0) {
                        int p = simw_prop_index("ethernetMacAddress");
                        snprintf(v, sizeof v, "%s", d->str[p] ? d->str[p] : "");
                    }
                }
                csv_field(csv, v, i == 0);
            }
            if (loc_col)
                csv_field(csv, ap->platform, 0);
            (void)buf_addstr(csv, "\r\n");
        }
    }
    /* Padding: app rows of devices that left the tenant, as a large report holds many. */
    for (long p = 0; apps && p < j->pad_rows; p++) {
        char dev[40];

        snprintf(dev, sizeof dev, "00000000-0000-4000-8000-%012ld", p / 8);
        for (size_t i = 0; i < ncols; i++) {
            const char *col = json_string_value(json_array_get(j->select, i));

            if (strcmp(col, "DeviceId") == 0)
                snprintf(v, sizeof v, "%s", dev);
            else if (strcmp(col, "ApplicationKey") == 0)
                snprintf(v, sizeof v, "%064ld", p % 997);
            else if (strcmp(col, "ApplicationName") == 0)
                snprintf(v, sizeof v, "Line-of-business app %ld", p % 997);
            else if (strcmp(col, "ApplicationVersion") == 0)
                snprintf(v, sizeof v, "1.%ld.%ld", p % 13, p % 7);
            else if (strcmp(col, "Platform") == 0)
                snprintf(v, sizeof v, "%s", j->codes ? platform_code("windows") : "windows");
            else
                v[0] = '\0';
            csv_field(csv, v, i == 0);
        }
        if (loc_col)
            csv_field(csv, "windows", 0);
        (void)buf_addstr(csv, "\r\n");
    }
}

static json_t *
export_json(struct gctx *x, struct export_job *j, const char *status)
{
    char ctx[256], req[32], exp[32], url[512];
    json_t *o;

    snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#deviceManagement/reports/exportJobs/$entity",
             g.base, x->ver);
    clock_fmt(j->requested, req, sizeof req);
    o = json_pack("{s:s, s:s, s:s, s:o, s:s, s:O, s:s, s:n, s:s}", "@odata.context", ctx, "id",
                  j->id, "reportName", j->report, "filter",
                  j->filter ? json_string(j->filter) : json_string(""), "localizationType",
                  j->localization, "select", j->select, "format", "csv", "snapshotId", "status",
                  status);
    if (strcmp(status, "completed") == 0) {
        unsigned char sig[8];
        char hex[17];
        randombytes_buf(sig, sizeof sig);
        sodium_bin2hex(hex, sizeof hex, sig, sizeof sig);
        if (g.exp.url_host[0] != '\0') /* set_export url_host: a host memsync must refuse */
            snprintf(url, sizeof url, "https://%s/download/%s.zip?sv=2019-02-02&sr=b&sp=r&sig=%s",
                     g.exp.url_host, j->id, hex);
        else
            snprintf(url, sizeof url, "%s/download/%s.zip?sv=2019-02-02&sr=b&sp=r&sig=%s", g.base,
                     j->id, hex);
        json_object_set_new(o, "url", json_string(url));
        clock_fmt(clock_now() + 6 * 3600, exp, sizeof exp);
    } else {
        json_object_set_new(o, "url", json_null());
        snprintf(exp, sizeof exp, "%s", "0001-01-01T00:00:00Z");
    }
    json_object_set_new(o, "requestDateTime", json_string(req));
    json_object_set_new(o, "expirationDateTime", json_string(exp));
    return o;
}

struct resp *
sim_export_route(struct gctx *x, const char *method, const char *rest, const char *body,
                 size_t bodylen, enum route *rt)
{
    char key[128];
    const char *tid = x->partner ? g.w->partner_tenant_id : x->t->id;
    struct resp *r;

    *rt = R_EXPORT;
    if (*rest == '\0' && strcmp(method, "GET") == 0) {
        /* The tenant's jobs, newest first (a client checks here before it asks again). */
        json_t *arr = json_array();
        char ctx[256];

        pthread_mutex_lock(&g.mu);
        for (struct export_job *j = g.jobs; j; j = j->next)
            if (strcasecmp(j->tenant, tid) == 0) {
                json_t *o = export_json(x, j,
                                        j->zip          ? "completed"
                                        : j->polls >= 1 ? "inProgress"
                                                        : "notStarted");
                json_object_del(o, "@odata.context");
                json_array_append_new(arr, o);
            }
        pthread_mutex_unlock(&g.mu);
        snprintf(ctx, sizeof ctx, "%s/graph/%s/$metadata#deviceManagement/reports/exportJobs",
                 g.base, x->ver);
        r = sim_resp_new(200, SIM_GRAPH_CT);
        sim_resp_json(r, json_pack("{s:s, s:o}", "@odata.context", ctx, "value", arr));
        return r;
    }
    if (*rest == '\0') {
        json_t *in, *sel;
        const char *report;
        if (strcmp(method, "POST") != 0)
            return sim_graph_error(405, "BadRequest", "Method not allowed.");
        in = json_loadb(body ? body : "", bodylen, JSON_REJECT_DUPLICATES, NULL);
        report = in ? json_string_value(json_object_get(in, "reportName")) : NULL;
        if (report == NULL ||
            (strcmp(report, "DevicesWithInventory") != 0 && strcmp(report, "AppInvRawData") != 0 &&
             strcmp(report, "Devices") != 0)) {
            json_decref(in);
            return sim_graph_error(400, "BadRequest", "Invalid or unsupported reportName.");
        }
        sel = json_object_get(in, "select");
        json_t *cols = json_array();
        int apps = strcmp(report, "AppInvRawData") == 0;
        if (json_is_array(sel) && json_array_size(sel) > 0) {
            size_t i;
            json_t *v;
            json_array_foreach(sel, i, v)
            {
                const char *c = json_string_value(v);
                int ok = 0;
                if (c && apps) {
                    for (size_t k = 0; k < sizeof app_cols / sizeof app_cols[0]; k++)
                        ok |= strcmp(app_cols[k], c) == 0;
                } else if (c) {
                    for (size_t k = 0; k < sizeof inv_cols / sizeof inv_cols[0]; k++)
                        ok |= strcasecmp(inv_cols[k].col, c) == 0;
                }
                if (!ok) {
                    char msg[256];
                    snprintf(msg, sizeof msg, "Invalid select column '%.100s' for report %s.",
                             c ? c : "?", report);
                    json_decref(cols);
                    json_decref(in);
                    return sim_graph_error(400, "BadRequest", msg);
                }
                json_array_append_new(cols, json_string(c));
            }
        } else if (apps) {
            for (size_t k = 0; k < sizeof app_cols / sizeof app_cols[0]; k++)
                json_array_append_new(cols, json_string(app_cols[k]));
        } else {
            for (size_t k = 0; k < sizeof inv_default / sizeof inv_default[0]; k++)
                json_array_append_new(cols, json_string(inv_default[k]));
        }
        struct export_job *j = xcalloc(1, sizeof(*j));
        char guid[37];
        sim_rand_guid(guid);
        snprintf(j->id, sizeof j->id, "%s_%s", report, guid);
        snprintf(j->tenant, sizeof j->tenant, "%s", tid);
        snprintf(j->report, sizeof j->report, "%s", report);
        j->select = cols;
        j->filter = xstrdup(json_string_value(json_object_get(in, "filter")));
        {
            const char *lt = json_string_value(json_object_get(in, "localizationType"));
            snprintf(j->localization, sizeof j->localization, "%s",
                     lt && strlen(lt) < sizeof j->localization
                         ? lt
                         : "LocalizedValuesAsAdditionalColumn");
        }
        j->requested = clock_now();
        json_decref(in);
        r = sim_resp_new(201, SIM_GRAPH_CT);
        sim_resp_json(r, export_json(x, j, "notStarted"));
        pthread_mutex_lock(&g.mu);
        /* keep at most 256 jobs: drop the oldest */
        size_t n = 0;
        struct export_job **pp = &g.jobs;
        while (*pp && n < 255) {
            pp = &(*pp)->next;
            n++;
        }
        while (*pp) {
            struct export_job *old = *pp;
            *pp = old->next;
            json_decref(old->select);
            free(old->filter);
            free(old->zip);
            free(old);
        }
        j->next = g.jobs;
        g.jobs = j;
        pthread_mutex_unlock(&g.mu);
        return r;
    }
    if (sim_path_key(rest, key, sizeof key) == NULL || strcmp(method, "GET") != 0)
        return sim_graph_error(400, "BadRequest", "Bad request path.");
    pthread_mutex_lock(&g.mu);
    struct export_job *j;
    for (j = g.jobs; j; j = j->next)
        if (strcmp(j->id, key) == 0 && strcasecmp(j->tenant, tid) == 0)
            break;
    if (j == NULL) {
        pthread_mutex_unlock(&g.mu);
        return sim_graph_error(404, "ResourceNotFound", "The export job was not found.");
    }
    j->polls++;
    const char *status = j->polls >= 2 ? "completed" : "inProgress";
    if (j->polls >= 2 && j->zip == NULL) {
        /* build the CSV without holding g.mu (lock order: world lock, then g.mu) */
        struct export_job tmp;
        struct buf csv, zip;
        char name[128];
        int zip64 = g.exp.zip64;
        memset(&tmp, 0, sizeof tmp);
        snprintf(tmp.localization, sizeof tmp.localization, "%s", j->localization);
        tmp.pad_rows = g.exp.pad_rows;
        tmp.codes =
            g.exp.localized_codes && strcasecmp(j->localization, "replaceLocalizableValues") != 0;
        snprintf(tmp.id, sizeof tmp.id, "%s", j->id);
        snprintf(tmp.report, sizeof tmp.report, "%s", j->report);
        tmp.select = json_deep_copy(j->select);
        pthread_mutex_unlock(&g.mu);
        buf_init(&csv, SIM_PAGE_MAX);
        buf_init(&zip, SIM_PAGE_MAX);
        pthread_rwlock_rdlock(&g.w->lock);
        export_csv(&tmp, x->t, &csv);
        pthread_rwlock_unlock(&g.w->lock);
        snprintf(name, sizeof name, "%s.csv", tmp.id);
        (void)zip_one(name, buf_cstr(&csv), csv.len, &zip, zip64);
        buf_free(&csv);
        json_decref(tmp.select);
        pthread_mutex_lock(&g.mu);
        for (j = g.jobs; j; j = j->next)
            if (strcmp(j->id, tmp.id) == 0)
                break;
        if (j == NULL) {
            pthread_mutex_unlock(&g.mu);
            buf_free(&zip);
            return sim_graph_error(404, "ResourceNotFound", "The export job was not found.");
        }
        if (j->zip == NULL && zip.len > 0)
            j->zip = (unsigned char *)buf_detach(&zip, &j->ziplen);
        buf_free(&zip);
    }
    r = sim_resp_new(200, SIM_GRAPH_CT);
    sim_resp_json(r, export_json(x, j, status));
    pthread_mutex_unlock(&g.mu);
    return r;
}

/* The first byte of a "Range: bytes=N-" request, 0 without one, -1 for a form not served. */
static long long
range_start(struct MHD_Connection *c)
{
    const char *h = MHD_lookup_connection_value(c, MHD_HEADER_KIND, "Range");
    char *end = NULL;
    long long v;

    if (h == NULL)
        return 0;
    if (strncmp(h, "bytes=", 6) != 0 || h[6] < '0' || h[6] > '9')
        return -1;
    errno = 0;
    v = strtoll(h + 6, &end, 10);
    return errno == 0 && end != NULL && *end == '-' && end[1] == '\0' ? v : -1;
}

/* The blob of a completed job, as Azure Blob Storage serves it: Accept-Ranges, 206 for an open
 * byte range. With set_export: bytes_per_s paces it, drop_after cuts the next one short. */
struct resp *
sim_export_download(struct MHD_Connection *c, const char *rest)
{
    char id[128];
    const char *dot = strstr(rest, ".zip");
    size_t n = dot ? (size_t)(dot - rest) : 0;
    long long from = range_start(c);
    struct resp *r = NULL;

    if (n == 0 || n >= sizeof id)
        return sim_graph_error(404, "BlobNotFound", "The specified blob does not exist.");
    memcpy(id, rest, n);
    id[n] = '\0';
    pthread_mutex_lock(&g.mu);
    for (struct export_job *j = g.jobs; j; j = j->next) {
        if (strcmp(j->id, id) == 0 && j->zip) {
            if (from < 0 || (size_t)from >= j->ziplen) {
                char cr[64];

                r = sim_graph_error(416, "InvalidRange", "The range specified is invalid.");
                snprintf(cr, sizeof cr, "bytes */%zu", j->ziplen);
                sim_resp_hdr(r, "Content-Range", cr);
                break;
            }
            r = sim_resp_new(from > 0 ? 206 : 200, "application/octet-stream");
            r->len = j->ziplen - (size_t)from;
            r->body = xmalloc(r->len);
            memcpy(r->body, j->zip + from, r->len);
            sim_resp_hdr(r, "Accept-Ranges", "bytes");
            if (from > 0) {
                char cr[96];

                snprintf(cr, sizeof cr, "bytes %lld-%zu/%zu", from, j->ziplen - 1, j->ziplen);
                sim_resp_hdr(r, "Content-Range", cr);
                g.download_ranges++;
            }
            r->rate_bps = g.exp.bytes_per_s;
            if (g.exp.drop_after > 0) { /* once */
                r->drop_at = (size_t)g.exp.drop_after;
                g.exp.drop_after = 0;
            }
            break;
        }
    }
    pthread_mutex_unlock(&g.mu);
    return r ? r : sim_graph_error(404, "BlobNotFound", "The specified blob does not exist.");
}

/* set_export (control op) and the scenario's "export" member. */
int
sim_set_export(json_t *o, char *err, size_t errlen)
{
    json_t *v;

    if ((v = json_object_get(o, "pad_rows")) && json_is_integer(v)) {
        if (json_integer_value(v) < 0 || json_integer_value(v) > 20000000) {
            snprintf(err, errlen, "pad_rows must be 0..20000000");
            return ERR_INVAL;
        }
        g.exp.pad_rows = (long)json_integer_value(v);
    }
    if ((v = json_object_get(o, "bytes_per_s")) && json_is_integer(v))
        g.exp.bytes_per_s = json_integer_value(v) > 0 ? (long)json_integer_value(v) : 0;
    if ((v = json_object_get(o, "drop_after")) && json_is_integer(v))
        g.exp.drop_after = json_integer_value(v) > 0 ? (long)json_integer_value(v) : 0;
    if ((v = json_object_get(o, "zip64")) && json_is_boolean(v))
        g.exp.zip64 = json_is_true(v);
    if ((v = json_object_get(o, "localized_codes")) && json_is_boolean(v))
        g.exp.localized_codes = json_is_true(v);
    if ((v = json_object_get(o, "url_host")) && (json_is_string(v) || json_is_null(v)))
        snprintf(g.exp.url_host, sizeof g.exp.url_host, "%s",
                 json_is_string(v) ? json_string_value(v) : "");
    return ERR_OK;
}
