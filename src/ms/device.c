#include "device.h"

#include <ctype.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "mem.h"

#define F(n, k, m)                                                                                 \
    {                                                                                              \
        n, k, offsetof(struct device, m)                                                           \
    }

const struct device_field device_fields[] = {
    F("azure_ad_device_id", DF_STR, aad_device_id),
    F("name", DF_STR, name),
    F("serial_number", DF_STR, serial),
    F("manufacturer", DF_STR, manufacturer),
    F("model", DF_STR, model),
    F("type", DF_TYPE, type),
    F("os_name", DF_STR, os_name),
    F("os_version", DF_STR, os_version),
    F("user_principal_name", DF_STR, user_upn),
    F("user_display_name", DF_STR, user_name),
    F("user_email", DF_STR, user_email),
    F("ownership", DF_STR, ownership),
    F("compliance_state", DF_STR, compliance_state),
    F("management_state", DF_STR, management_state),
    F("enrollment_type", DF_STR, enrollment_type),
    F("is_encrypted", DF_BOOL, is_encrypted),
    F("is_supervised", DF_BOOL, is_supervised),
    F("storage_total_bytes", DF_INT64, storage_total),
    F("storage_free_bytes", DF_INT64, storage_free),
    F("memory_bytes", DF_INT64, memory),
    F("wifi_mac", DF_STR, wifi_mac),
    F("ethernet_mac", DF_STR, ethernet_mac),
    F("imei", DF_STR, imei),
    F("meid", DF_STR, meid),
    F("phone_number", DF_STR, phone),
    F("enrolled_at", DF_TS, enrolled_at),
    F("last_check_in_at", DF_TS, last_check_in_at),
};

const size_t device_field_count = sizeof device_fields / sizeof device_fields[0];

void
device_init(struct device *d)
{
    memset(d, 0, sizeof *d);
    d->type = DEVICE_UNKNOWN;
    d->is_encrypted = -1;
    d->is_supervised = -1;
    d->storage_total = -1;
    d->storage_free = -1;
    d->memory = -1;
    d->enrolled_at = TS_NULL;
    d->last_check_in_at = TS_NULL;
}

static char **
field_strp(struct device *d, const struct device_field *f)
{
    return (char **)(void *)((char *)d + f->offset);
}

/* 1 when p points into d's shared string allocation (not to be freed on its own). */
static int
in_strings(const struct device *d, const char *p)
{
    return d->strings != NULL && p >= d->strings && p < d->strings + d->strings_len;
}

void
device_clear(struct device *d)
{
    if (d == NULL)
        return;
    if (!in_strings(d, d->intune_id))
        free(d->intune_id);
    for (size_t i = 0; i < device_field_count; i++) {
        if (device_fields[i].kind == DF_STR) {
            char *p = *field_strp(d, &device_fields[i]);

            if (!in_strings(d, p))
                free(p);
        }
    }
    free(d->strings);
    device_init(d);
}

void
device_set_str(struct device *d, char **field, const char *s, size_t n)
{
    if (!in_strings(d, *field))
        free(*field);
    *field = s != NULL ? xstrndup(s, n) : NULL;
}

void
device_copy(struct device *dst, const struct device *src)
{
    *dst = *src;
    dst->strings = NULL;
    dst->strings_len = 0;
    dst->intune_id = xstrdup(src->intune_id);
    for (size_t i = 0; i < device_field_count; i++) {
        const struct device_field *f = &device_fields[i];

        if (f->kind == DF_STR)
            *field_strp(dst, f) = xstrdup(device_field_str(src, f));
    }
}

const char *
device_field_str(const struct device *d, const struct device_field *f)
{
    if (f->kind == DF_TYPE)
        return device_type_name(d->type);
    if (f->kind != DF_STR)
        return NULL;
    return *(char *const *)(const void *)((const char *)d + f->offset);
}

int64_t
device_field_int(const struct device *d, const struct device_field *f)
{
    const char *p = (const char *)d + f->offset;

    switch (f->kind) {
    case DF_INT64:
    case DF_TS:
        return *(const int64_t *)(const void *)p;
    case DF_BOOL:
        return *(const int *)(const void *)p;
    case DF_TYPE:
        return (int64_t)d->type;
    case DF_STR:
        break;
    }
    return 0;
}

static int
str_eq(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

int
device_equal(const struct device *a, const struct device *b)
{
    if (!str_eq(a->intune_id, b->intune_id))
        return 0;
    for (size_t i = 0; i < device_field_count; i++) {
        const struct device_field *f = &device_fields[i];

        if (f->kind == DF_STR) {
            if (!str_eq(device_field_str(a, f), device_field_str(b, f)))
                return 0;
        } else if (device_field_int(a, f) != device_field_int(b, f)) {
            return 0;
        }
    }
    return 1;
}

/* ---- serial numbers ---------------------------------------------------------------------- */

/* Compared case-insensitively after trimming. Firmware defaults and vendor fill-ins that are
 * shared by many machines and therefore identify none. */
static const char *const serial_placeholders[] = {
    "to be filled by o.e.m.",
    "to be filled by oem",
    "to be filled by o.e.m",
    "to be filled",
    "system serial number",
    "chassis serial number",
    "base board serial number",
    "serial number",
    "default string",
    "default",
    "0123456789",
    "123456789",
    "1234567890",
    "12345678",
    "none",
    "null",
    "n/a",
    "na",
    "not specified",
    "not available",
    "not applicable",
    "unknown",
    "invalid",
    "oem",
    "o.e.m.",
    "empty",
    "xxxxxxxxxx",
    "-",
};

static void
trim_span(const char *s, const char **start, size_t *len)
{
    size_t n;

    while (*s != '\0' && isspace((unsigned char)*s))
        s++;
    n = strlen(s);
    while (n > 0 && isspace((unsigned char)s[n - 1]))
        n--;
    *start = s;
    *len = n;
}

int
device_serial_is_placeholder(const char *raw)
{
    const char *s;
    size_t n, zeros = 0, i;

    if (raw == NULL)
        return 1;
    trim_span(raw, &s, &n);
    if (n == 0)
        return 1;
    /* All zeros, possibly grouped ("0000-0000"), is what blank EEPROMs report. */
    for (i = 0; i < n; i++) {
        if (s[i] == '0')
            zeros++;
        else if (s[i] != '-' && s[i] != ' ' && s[i] != '.' && s[i] != ':')
            break;
    }
    if (i == n && zeros > 0)
        return 1;
    for (size_t k = 0; k < sizeof serial_placeholders / sizeof serial_placeholders[0]; k++) {
        const char *p = serial_placeholders[k];

        if (strlen(p) == n && strncasecmp(s, p, n) == 0)
            return 1;
    }
    return 0;
}

char *
device_serial_normalize(const char *raw)
{
    const char *s;
    size_t n;

    if (device_serial_is_placeholder(raw))
        return NULL;
    trim_span(raw, &s, &n);
    return xstrndup(s, n);
}

/* ---- type derivation ----------------------------------------------------------------------- */

static int
has_prefix_ci(const char *s, const char *prefix)
{
    return s != NULL && strncasecmp(s, prefix, strlen(prefix)) == 0;
}

static int
contains_ci(const char *s, const char *needle)
{
    size_t n = strlen(needle);

    if (s == NULL)
        return 0;
    for (; *s != '\0'; s++) {
        if (strncasecmp(s, needle, n) == 0)
            return 1;
    }
    return 0;
}

/* ASCII lower-case copy of s into buf (what strncasecmp compares in the C locale); NULL when s
 * is NULL or does not fit, and the caller falls back to contains_ci. */
static const char *
lower_copy(const char *s, char *buf, size_t cap)
{
    size_t i;

    if (s == NULL)
        return NULL;
    for (i = 0; s[i] != '\0'; i++) {
        if (i + 1 >= cap)
            return NULL;
        buf[i] = (char)(s[i] >= 'A' && s[i] <= 'Z' ? s[i] + ('a' - 'A') : s[i]);
    }
    buf[i] = '\0';
    return buf;
}

static int
looks_virtual(const char *s)
{
    static const char *const contains[] = {"virtual machine", "virtualbox", "qemu",  "kvm",
                                           "parallels",       "hvm domu",   "vmware"};
    static const char *const prefixes[] = {"xen", "cloud pc", "innotek", "bochs"};
    char buf[256];
    /* Lower-case once instead of a strncasecmp at every position for every needle. */
    const char *low = lower_copy(s, buf, sizeof buf);

    if (s == NULL)
        return 0;
    for (size_t i = 0; i < sizeof contains / sizeof contains[0]; i++) {
        if (low != NULL ? strstr(low, contains[i]) != NULL : contains_ci(s, contains[i]))
            return 1;
    }
    for (size_t i = 0; i < sizeof prefixes / sizeof prefixes[0]; i++) {
        if (has_prefix_ci(s, prefixes[i]))
            return 1;
    }
    return 0;
}

enum device_type
device_type_derive(const char *os, const char *model, const char *manufacturer)
{
    static const char *const mobile[] = {
        "ios", "ipados", "android", "windows mobile", "windows phone", "windowsmobile"};
    static const char *const desktop[] = {"windows", "macos",  "mac os",   "os x",
                                          "linux",   "ubuntu", "chromeos", "chrome os"};

    for (size_t i = 0; i < sizeof mobile / sizeof mobile[0]; i++) {
        if (has_prefix_ci(os, mobile[i]))
            return DEVICE_MOBILE;
    }
    if (looks_virtual(model) || looks_virtual(manufacturer))
        return DEVICE_VIRTUAL;
    if (contains_ci(os, "server"))
        return DEVICE_SERVER;
    for (size_t i = 0; i < sizeof desktop / sizeof desktop[0]; i++) {
        if (has_prefix_ci(os, desktop[i]))
            return DEVICE_WORKSTATION;
    }
    return DEVICE_UNKNOWN;
}

static const char *const type_names[] = {"UNKNOWN", "WORKSTATION", "SERVER", "VIRTUAL", "MOBILE"};

const char *
device_type_name(enum device_type t)
{
    if ((int)t < 0 || (size_t)t >= sizeof type_names / sizeof type_names[0])
        return "UNKNOWN";
    return type_names[t];
}

int
device_type_parse(const char *s, enum device_type *out)
{
    for (size_t i = 0; s != NULL && i < sizeof type_names / sizeof type_names[0]; i++) {
        if (strcasecmp(s, type_names[i]) == 0) {
            *out = (enum device_type)i;
            return ERR_OK;
        }
    }
    return ERR_INVAL;
}

/* ---- mapping from Graph -------------------------------------------------------------------- */

static int
get_int64(const json_t *obj, const char *member, int64_t *out, struct errbuf *eb)
{
    const json_t *v = json_object_get(obj, member);

    *out = -1;
    if (v == NULL || json_is_null(v))
        return ERR_OK;
    if (!json_is_integer(v))
        return err_set(eb, ERR_PARSE, "managedDevice member %s is not an integer", member);
    if (json_integer_value(v) >= 0)
        *out = (int64_t)json_integer_value(v);
    return ERR_OK;
}

static int
get_bool(const json_t *obj, const char *member, int *out, struct errbuf *eb)
{
    const json_t *v = json_object_get(obj, member);

    *out = -1;
    if (v == NULL || json_is_null(v))
        return ERR_OK;
    if (!json_is_boolean(v))
        return err_set(eb, ERR_PARSE, "managedDevice member %s is not a boolean", member);
    *out = json_is_true(v) ? 1 : 0;
    return ERR_OK;
}

static int
get_ts(const json_t *obj, const char *member, int64_t *out, struct errbuf *eb)
{
    const json_t *v = json_object_get(obj, member);

    *out = TS_NULL;
    if (v == NULL || json_is_null(v))
        return ERR_OK;
    if (!json_is_string(v))
        return err_set(eb, ERR_PARSE, "managedDevice member %s is not a date string", member);
    if (json_string_length(v) == 0)
        return ERR_OK;
    if (clock_parse(json_string_value(v), out) != ERR_OK)
        return err_set(eb, ERR_PARSE, "managedDevice member %s is not a valid date", member);
    return ERR_OK;
}

/* The member as a non-empty JSON string, or NULL when absent, null or ""; ERR_PARSE for any
 * other type. */
static int
str_member(const json_t *obj, const char *member, const json_t **out, struct errbuf *eb)
{
    const json_t *v = json_object_get(obj, member);

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return ERR_OK;
    if (!json_is_string(v))
        return err_set(eb, ERR_PARSE, "managedDevice member %s is not a string", member);
    if (json_string_length(v) > 0)
        *out = v;
    return ERR_OK;
}

static char *
put_str(char *base, size_t *off, const char *s, size_t n)
{
    char *p = base + *off;

    memcpy(p, s, n);
    p[n] = '\0';
    *off += n + 1;
    return p;
}

void
device_derive(struct device *d)
{
    /* List responses always carry 0: the real value needs a per-device GET. */
    if (d->memory == 0)
        d->memory = -1;
    d->type = device_type_derive(d->os_name, d->model, d->manufacturer);
    /* Intune reports Windows Server as "Windows"; build 20348 exists only as Server 2022. */
    if (d->type == DEVICE_WORKSTATION && has_prefix_ci(d->os_name, "windows") &&
        d->os_version != NULL && strstr(d->os_version, ".20348.") != NULL)
        d->type = DEVICE_SERVER;
}

int
device_from_graph(const json_t *obj, struct device *d, struct errbuf *eb)
{
    static const struct {
        const char *member;
        size_t offset;
    } strs[] = {
        {"azureADDeviceId", offsetof(struct device, aad_device_id)},
        {"deviceName", offsetof(struct device, name)},
        {"manufacturer", offsetof(struct device, manufacturer)},
        {"model", offsetof(struct device, model)},
        {"operatingSystem", offsetof(struct device, os_name)},
        {"osVersion", offsetof(struct device, os_version)},
        {"userPrincipalName", offsetof(struct device, user_upn)},
        {"userDisplayName", offsetof(struct device, user_name)},
        {"emailAddress", offsetof(struct device, user_email)},
        {"complianceState", offsetof(struct device, compliance_state)},
        {"managementState", offsetof(struct device, management_state)},
        {"deviceEnrollmentType", offsetof(struct device, enrollment_type)},
        {"wiFiMacAddress", offsetof(struct device, wifi_mac)},
        {"ethernetMacAddress", offsetof(struct device, ethernet_mac)},
        {"imei", offsetof(struct device, imei)},
        {"meid", offsetof(struct device, meid)},
        {"phoneNumber", offsetof(struct device, phone)},
    };
#define NSTRS (sizeof strs / sizeof strs[0])
    const json_t *id, *wrapped, *vals[NSTRS], *serial = NULL, *owner = NULL;
    const char *own = "unknown";
    size_t total, off = 0;
    int rc;

    device_init(d);
    if (!json_is_object(obj)) {
        rc = err_set(eb, ERR_PARSE, "managedDevice is not a JSON object");
        goto out;
    }
    /* Microsoft's generated single-GET examples wrap the entity in {"value": {...}}; the live
     * service returns it at top level. Accept both. */
    wrapped = json_object_get(obj, "value");
    if (json_object_get(obj, "id") == NULL && json_is_object(wrapped))
        obj = wrapped;
    id = json_object_get(obj, "id");
    if (!json_is_string(id) || json_string_length(id) == 0) {
        rc = err_set(eb, ERR_PARSE, "managedDevice has no id");
        goto out;
    }
    for (size_t i = 0; i < NSTRS; i++) {
        if ((rc = str_member(obj, strs[i].member, &vals[i], eb)) != ERR_OK)
            goto out;
    }
    if ((rc = str_member(obj, "serialNumber", &serial, eb)) != ERR_OK ||
        (rc = str_member(obj, "managedDeviceOwnerType", &owner, eb)) != ERR_OK)
        goto out;
    if (owner != NULL && strcasecmp(json_string_value(owner), "company") == 0)
        own = "company";
    else if (owner != NULL && strcasecmp(json_string_value(owner), "personal") == 0)
        own = "personal";
    /* One allocation for the id, the ownership and every string member. */
    total = json_string_length(id) + 1 + strlen(own) + 1;
    for (size_t i = 0; i < NSTRS; i++)
        total += vals[i] != NULL ? json_string_length(vals[i]) + 1 : 0;
    d->strings = xmalloc(total);
    d->strings_len = total;
    d->intune_id = put_str(d->strings, &off, json_string_value(id), json_string_length(id));
    d->ownership = put_str(d->strings, &off, own, strlen(own));
    for (size_t i = 0; i < NSTRS; i++) {
        char **slot = (char **)(void *)((char *)d + strs[i].offset);

        if (vals[i] != NULL)
            *slot =
                put_str(d->strings, &off, json_string_value(vals[i]), json_string_length(vals[i]));
    }
    if (serial != NULL)
        d->serial = device_serial_normalize(json_string_value(serial));
    if ((rc = get_bool(obj, "isEncrypted", &d->is_encrypted, eb)) != ERR_OK ||
        (rc = get_bool(obj, "isSupervised", &d->is_supervised, eb)) != ERR_OK ||
        (rc = get_int64(obj, "totalStorageSpaceInBytes", &d->storage_total, eb)) != ERR_OK ||
        (rc = get_int64(obj, "freeStorageSpaceInBytes", &d->storage_free, eb)) != ERR_OK ||
        (rc = get_int64(obj, "physicalMemoryInBytes", &d->memory, eb)) != ERR_OK ||
        (rc = get_ts(obj, "enrolledDateTime", &d->enrolled_at, eb)) != ERR_OK ||
        (rc = get_ts(obj, "lastSyncDateTime", &d->last_check_in_at, eb)) != ERR_OK)
        goto out;
    device_derive(d);
    rc = ERR_OK;
out:
    if (rc != ERR_OK)
        device_clear(d);
    return rc;
#undef NSTRS
}
