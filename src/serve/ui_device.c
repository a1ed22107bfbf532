/* ui_device.c - the device page's body as a technician reads it (contract in ui_device.h). */
#include "ui_device.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "cloud.h"
#include "guid.h"
#include "lifecycle.h"
#include "output.h"

void
ui_device_size(char *out, size_t n, int64_t bytes)
{
    static const char *const units[] = {"KB", "MB", "GB", "TB", "PB"};
    double v = (double)bytes;
    size_t u = 0;

    if (n == 0)
        return;
    out[0] = '\0';
    if (bytes < 0)
        return;
    if (bytes < 1000) {
        snprintf(out, n, "%" PRId64 " bytes", bytes);
        return;
    }
    v /= 1000.0;
    while (v >= 1000.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1000.0;
        u++;
    }
    /* One decimal below 100 ("476.9 GB", "8.6 GB"), none above ("512 GB"). */
    if (v < 100.0)
        snprintf(out, n, "%.1f %s", v, units[u]);
    else
        snprintf(out, n, "%.0f %s", v, units[u]);
}

void
ui_device_age(char *out, size_t n, int64_t then, int64_t now)
{
    static const struct {
        int64_t secs;
        const char *one, *many;
    } steps[] = {
        {365 * 86400, "year", "years"}, {30 * 86400, "month", "months"}, {86400, "day", "days"},
        {3600, "hour", "hours"},        {60, "minute", "minutes"},
    };
    int64_t d = now - then;
    int ahead = d < 0;

    if (n == 0)
        return;
    if (ahead)
        d = -d;
    if (d < 60) {
        snprintf(out, n, "just now");
        return;
    }
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++) {
        int64_t k = d / steps[i].secs;

        if (k >= 1) {
            snprintf(out, n, "%s%" PRId64 " %s%s", ahead ? "in " : "", k,
                     k == 1 ? steps[i].one : steps[i].many, ahead ? "" : " ago");
            return;
        }
    }
}

void
ui_device_when(struct buf *b, const char *rfc3339, int64_t now, const struct ui_device_env *env)
{
    char iso[32], age[48];
    int64_t t;

    if (rfc3339 == NULL) {
        buf_addstr(b, "<span class=\"muted\">—</span>");
        return;
    }
    if (clock_parse(rfc3339, &t) != ERR_OK || t == TS_NULL) {
        env->esc(b, rfc3339);
        return;
    }
    clock_fmt(t, iso, sizeof iso);
    ui_device_age(age, sizeof age, t, now);
    /* YYYY-MM-DDTHH:MM:SSZ -> "YYYY-MM-DD HH:MM UTC" */
    buf_printf(b,
               "<time datetime=\"%s\" title=\"%s\">%.10s %.5s UTC</time> <span class=\"muted "
               "age\">%s</span>",
               iso, iso, iso, iso + 11, age);
}

const char *
ui_device_support(const char *os_name, const char *os_version, int64_t now, char *status, size_t n)
{
    struct lifecycle_info li;
    char today[32];

    memset(&li, 0, sizeof li);
    if (os_name == NULL || !lifecycle_lookup(os_name, os_version, &li)) {
        snprintf(status, n, "unknown: this version is not in memsync's end-of-support table");
        return "never";
    }
    if (li.end_of_support[0] == '\0') {
        snprintf(status, n, "supported, no end date announced (%s)", li.release);
        return "ok";
    }
    clock_fmt(now, today, sizeof today); /* YYYY-MM-DD... compares as text */
    if (strncmp(li.end_of_support, today, 10) < 0) {
        snprintf(status, n, "past support since %s (%s)%s%s", li.end_of_support, li.release,
                 li.extended_end[0] != '\0' ? "; paid extended updates until " : "",
                 li.extended_end);
        return "error";
    }
    snprintf(status, n, "supported until %s (%s)", li.end_of_support, li.release);
    return "ok";
}

int
ui_device_intune_url(char *out, size_t n, const char *cloud, const char *tenant_id,
                     const char *intune_id)
{
    const struct cloud *cl = cloud_find(cloud);
    int w;

    if (n > 0)
        out[0] = '\0';
    if (!guid_valid(tenant_id) || !guid_valid(intune_id))
        return 0;
    w = snprintf(out, n,
                 "%s/%s/#view/Microsoft_Intune_Devices/DeviceSettingsMenuBlade/"
                 "~/overview/mdmDeviceId/%s",
                 (cl != NULL ? cl : cloud_find(NULL))->intune_url, tenant_id, intune_id);
    if (w < 0 || (size_t)w >= n) {
        if (n > 0)
            out[0] = '\0';
        return 0;
    }
    return 1;
}

/* ---- the field list ----------------------------------------------------------------------- */

enum fkind { F_TEXT, F_WHEN, F_SIZE, F_BOOL };

static const struct {
    const char *path, *label;
    enum fkind kind;
} fields[] = {
    {"serial_number", "Serial number", F_TEXT},
    {"manufacturer", "Manufacturer", F_TEXT},
    {"model", "Model", F_TEXT},
    {"type", "Type", F_TEXT},
    {"operating_system.name", "Operating system", F_TEXT},
    {"operating_system.version", "OS version", F_TEXT},
    {"user.display_name", "User", F_TEXT},
    {"user.principal_name", "User principal name", F_TEXT},
    {"user.email", "Email", F_TEXT},
    {"ownership", "Ownership", F_TEXT},
    {"compliance_state", "Compliance", F_TEXT},
    {"management_state", "Management state", F_TEXT},
    {"enrollment_type", "Enrollment type", F_TEXT},
    {"is_encrypted", "Encrypted", F_BOOL},
    {"is_supervised", "Supervised", F_BOOL},
    {"storage.total_bytes", "Storage", F_SIZE},
    {"storage.free_bytes", "Free storage", F_SIZE},
    {"memory_bytes", "Memory", F_SIZE},
    {"wifi_mac", "Wi-Fi MAC", F_TEXT},
    {"ethernet_mac", "Ethernet MAC", F_TEXT},
    {"imei", "IMEI", F_TEXT},
    {"meid", "MEID", F_TEXT},
    {"phone_number", "Phone number", F_TEXT},
    {"enrolled_at", "Enrolled", F_WHEN},
    {"last_check_in_at", "Last check-in", F_WHEN},
    {"first_synced_at", "First synced", F_WHEN},
    {"last_synced_at", "Last synced", F_WHEN},
    {"retired_at", "Retired", F_WHEN},
    {"missing_since", "Missing from Intune since", F_WHEN},
    {"source.intune_device_id", "Intune device ID", F_TEXT},
    {"source.azure_ad_device_id", "Entra device ID", F_TEXT},
};

static void
dash(struct buf *b)
{
    buf_addstr(b, "<span class=\"muted\">—</span>");
}

static void
value(struct buf *b, const json_t *v, enum fkind kind, int64_t now, const struct ui_device_env *env)
{
    char num[64];

    if (v == NULL || json_is_null(v)) {
        dash(b);
    } else if (kind == F_WHEN && json_is_string(v)) {
        ui_device_when(b, json_string_value(v), now, env);
    } else if (kind == F_SIZE && json_is_integer(v)) {
        ui_device_size(num, sizeof num, json_integer_value(v));
        buf_printf(b, "<span title=\"%" JSON_INTEGER_FORMAT " bytes\">%s</span>",
                   json_integer_value(v), num);
    } else if (json_is_boolean(v)) {
        buf_addstr(b, json_is_true(v) ? "yes" : "no");
    } else if (json_is_integer(v)) {
        snprintf(num, sizeof num, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        buf_addstr(b, num);
    } else if (json_is_string(v)) {
        env->esc(b, json_string_value(v));
    } else {
        dash(b);
    }
}

void
ui_device_fields(struct buf *b, const json_t *a, const char *cloud, int64_t now,
                 const struct ui_device_env *env)
{
    const json_t *cid = output_lookup(a, "client.id");
    const char *tenant = json_string_value(output_lookup(a, "client.tenant_id"));
    const char *intune = json_string_value(output_lookup(a, "source.intune_device_id"));
    char url[512], status[256];
    const char *cls;

    buf_addstr(b, "<dl class=\"kv\" id=\"asset-fields\"><dt>Client</dt><dd>");
    if (json_is_integer(cid)) {
        buf_printf(b, "<a id=\"asset-client\" href=\"/clients/%" JSON_INTEGER_FORMAT "\">",
                   json_integer_value(cid));
        value(b, output_lookup(a, "client.name"), F_TEXT, now, env);
        buf_addstr(b, "</a>");
    } else {
        value(b, output_lookup(a, "client.name"), F_TEXT, now, env);
    }
    buf_addstr(b, "</dd><dt>In Intune</dt><dd>");
    if (ui_device_intune_url(url, sizeof url, cloud, tenant, intune)) {
        buf_addstr(b, "<a id=\"open-in-intune\" target=\"_blank\" rel=\"noopener noreferrer\" "
                      "href=\"");
        env->esc(b, url);
        buf_addstr(b, "\">Open in Intune</a>");
    } else {
        dash(b);
    }
    buf_addstr(b, "</dd>");
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        buf_addstr(b, "<dt>");
        env->esc(b, fields[i].label);
        buf_addstr(b, "</dt><dd>");
        value(b, output_lookup(a, fields[i].path), fields[i].kind, now, env);
        buf_addstr(b, "</dd>");
        if (strcmp(fields[i].path, "operating_system.version") == 0) {
            cls = ui_device_support(json_string_value(output_lookup(a, "operating_system.name")),
                                    json_string_value(output_lookup(a, "operating_system.version")),
                                    now, status, sizeof status);
            buf_printf(b, "<dt>OS support</dt><dd id=\"os-support\"><span class=\"pill %s\">", cls);
            env->esc(b, status);
            buf_addstr(b, "</span></dd>");
        }
    }
    buf_addstr(b, "</dl>");
}

/* ---- history ------------------------------------------------------------------------------ */

/* The history's field names (device_fields) in the words of the field list. */
static const char *
field_label(const char *name, enum fkind *kind)
{
    static const struct {
        const char *name, *label;
        enum fkind kind;
    } names[] = {
        {"azure_ad_device_id", "Entra device ID", F_TEXT},
        {"name", "Name", F_TEXT},
        {"serial_number", "Serial number", F_TEXT},
        {"os_name", "Operating system", F_TEXT},
        {"os_version", "OS version", F_TEXT},
        {"user_principal_name", "User principal name", F_TEXT},
        {"user_display_name", "User", F_TEXT},
        {"user_email", "Email", F_TEXT},
        {"compliance_state", "Compliance", F_TEXT},
        {"management_state", "Management state", F_TEXT},
        {"enrollment_type", "Enrollment type", F_TEXT},
        {"is_encrypted", "Encrypted", F_BOOL},
        {"is_supervised", "Supervised", F_BOOL},
        {"storage_total_bytes", "Storage", F_SIZE},
        {"storage_free_bytes", "Free storage", F_SIZE},
        {"memory_bytes", "Memory", F_SIZE},
        {"enrolled_at", "Enrolled", F_WHEN},
        {"last_check_in_at", "Last check-in", F_WHEN},
    };

    *kind = F_TEXT;
    for (size_t i = 0; name != NULL && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(name, names[i].name) == 0) {
            *kind = names[i].kind;
            return names[i].label;
        }
    return name;
}

/* A history value is text: sizes are digits, dates RFC 3339, booleans "true"/"false". */
static void
hist_value(struct buf *b, const json_t *v, enum fkind kind, int64_t now,
           const struct ui_device_env *env)
{
    const char *s = json_string_value(v);

    if (s != NULL && kind == F_SIZE) {
        char *end;
        long long x = strtoll(s, &end, 10);
        char num[64];

        if (*end == '\0' && end != s) {
            ui_device_size(num, sizeof num, x);
            env->esc(b, num);
            return;
        }
    }
    if (s != NULL && kind == F_BOOL && (strcmp(s, "true") == 0 || strcmp(s, "false") == 0)) {
        buf_addstr(b, s[0] == 't' ? "yes" : "no");
        return;
    }
    value(b, v, kind, now, env);
}

void
ui_device_history(struct buf *b, const json_t *rows, int64_t now, const struct ui_device_env *env)
{
    const json_t *row;
    size_t i;

    if (json_array_size(rows) == 0) {
        buf_addstr(b, "<div class=\"empty\"><strong>No changes recorded</strong><p>Changes seen "
                      "between syncs are listed here (not the last check-in or free storage, "
                      "which move at every sync).</p></div>");
        return;
    }
    buf_addstr(b, "<table id=\"asset-history\" class=\"stack\"><thead><tr><th>When</th>"
                  "<th>Field</th><th>Old</th><th>New</th></tr></thead><tbody>");
    json_array_foreach(rows, i, row)
    {
        enum fkind kind;
        const char *label = field_label(json_string_value(json_object_get(row, "field")), &kind);

        buf_addstr(b, "<tr><td data-label=\"When\">");
        value(b, json_object_get(row, "at"), F_WHEN, now, env);
        buf_addstr(b, "</td><td data-label=\"Field\">");
        env->esc(b, label);
        buf_addstr(b, "</td><td data-label=\"Old\">");
        hist_value(b, json_object_get(row, "old_value"), kind, now, env);
        buf_addstr(b, "</td><td data-label=\"New\">");
        hist_value(b, json_object_get(row, "new_value"), kind, now, env);
        buf_addstr(b, "</td></tr>");
    }
    buf_addstr(b, "</tbody></table>");
}
