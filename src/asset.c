/* asset.c - PRODUCT.md §4 JSON views of assets and clients. */
#include "asset.h"

#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "lifecycle.h"
#include "mem.h"

const char *const asset_columns[] = {
    "id",
    "client.id",
    "client.name",
    "client.tenant_id",
    "source.integration_id",
    "source.intune_device_id",
    "source.azure_ad_device_id",
    "name",
    "serial_number",
    "manufacturer",
    "model",
    "type",
    "operating_system.name",
    "operating_system.version",
    "operating_system.end_of_support",
    "user.principal_name",
    "user.display_name",
    "user.email",
    "ownership",
    "compliance_state",
    "management_state",
    "enrollment_type",
    "is_encrypted",
    "is_supervised",
    "storage.total_bytes",
    "storage.free_bytes",
    "memory_bytes",
    "wifi_mac",
    "ethernet_mac",
    "imei",
    "meid",
    "phone_number",
    "enrolled_at",
    "last_check_in_at",
    "first_synced_at",
    "last_synced_at",
    "retired_at",
    "serial_duplicate",
};
const size_t asset_column_count = sizeof asset_columns / sizeof asset_columns[0];

const char *const asset_table_columns[] = {
    "id",
    "client.name",
    "name",
    "serial_number",
    "type",
    "operating_system.name",
    "operating_system.version",
    "user.principal_name",
    "last_check_in_at",
};
const size_t asset_table_column_count = sizeof asset_table_columns / sizeof asset_table_columns[0];

const char *const client_columns[] = {
    "id",           "tenant_id",    "name",           "default_domain", "source",
    "included",     "status",       "last_sync_at",   "error.code",     "error.message",
    "error.remedy", "device_count", "software_count",
};
const size_t client_column_count = sizeof client_columns / sizeof client_columns[0];

/* Strings from the database are normally UTF-8; anything else is shown with '?' per bad byte
 * rather than dropped. */
static json_t *
jstr(const char *s)
{
    json_t *v;
    char *copy;

    if (s == NULL)
        return json_null();
    v = json_string(s);
    if (v != NULL)
        return v;
    copy = xstrdup(s);
    for (unsigned char *p = (unsigned char *)copy; *p != '\0'; p++)
        if (*p >= 0x80)
            *p = '?';
    v = json_string(copy);
    free(copy);
    return v != NULL ? v : json_null();
}

static json_t *
jts(int64_t t)
{
    char out[32];

    if (t == TS_NULL)
        return json_null();
    clock_fmt(t, out, sizeof out);
    return json_stringn_nocheck(out, strlen(out)); /* ASCII digits and separators */
}

static json_t *
jbytes(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static json_t *
jbool(int v)
{
    return v < 0 ? json_null() : json_boolean(v);
}

static json_t *
end_of_support(const struct device *d)
{
    struct lifecycle_info li;

    memset(&li, 0, sizeof li);
    if (d->os_name == NULL || !lifecycle_lookup(d->os_name, d->os_version, &li) ||
        li.end_of_support[0] == '\0')
        return json_null();
    return json_string(li.end_of_support);
}

/* Keys are constant ASCII: set without jansson's per-key UTF-8 check (a list page sets about
 * 40 keys per row). Insertion order is the output order. */
#define SETK(o, k, v) json_object_set_new_nocheck((o), (k), (v))

json_t *
asset_to_json(const struct asset *a)
{
    const struct device *d = &a->dev;
    json_t *o = json_object(), *x;

    SETK(o, "id", json_integer(a->id));
    x = json_object();
    SETK(x, "id", json_integer(a->client_id));
    SETK(x, "name", jstr(a->client_name));
    SETK(x, "tenant_id", jstr(a->client_tenant_id));
    SETK(o, "client", x);
    x = json_object();
    SETK(x, "integration_id", json_integer(a->integration_id));
    SETK(x, "intune_device_id", jstr(d->intune_id));
    SETK(x, "azure_ad_device_id", jstr(d->aad_device_id));
    SETK(o, "source", x);
    SETK(o, "name", jstr(d->name));
    SETK(o, "serial_number", jstr(d->serial));
    SETK(o, "manufacturer", jstr(d->manufacturer));
    SETK(o, "model", jstr(d->model));
    SETK(o, "type", json_string(device_type_name(d->type)));
    x = json_object();
    SETK(x, "name", jstr(d->os_name));
    SETK(x, "version", jstr(d->os_version));
    SETK(x, "end_of_support", end_of_support(d));
    SETK(o, "operating_system", x);
    x = json_object();
    SETK(x, "principal_name", jstr(d->user_upn));
    SETK(x, "display_name", jstr(d->user_name));
    SETK(x, "email", jstr(d->user_email));
    SETK(o, "user", x);
    SETK(o, "ownership", jstr(d->ownership));
    SETK(o, "compliance_state", jstr(d->compliance_state));
    SETK(o, "management_state", jstr(d->management_state));
    SETK(o, "enrollment_type", jstr(d->enrollment_type));
    SETK(o, "is_encrypted", jbool(d->is_encrypted));
    SETK(o, "is_supervised", jbool(d->is_supervised));
    x = json_object();
    SETK(x, "total_bytes", jbytes(d->storage_total));
    SETK(x, "free_bytes", jbytes(d->storage_free));
    SETK(o, "storage", x);
    SETK(o, "memory_bytes", jbytes(d->memory));
    SETK(o, "wifi_mac", jstr(d->wifi_mac));
    SETK(o, "ethernet_mac", jstr(d->ethernet_mac));
    SETK(o, "imei", jstr(d->imei));
    SETK(o, "meid", jstr(d->meid));
    SETK(o, "phone_number", jstr(d->phone));
    SETK(o, "enrolled_at", jts(d->enrolled_at));
    SETK(o, "last_check_in_at", jts(d->last_check_in_at));
    SETK(o, "first_synced_at", jts(a->first_synced_at));
    SETK(o, "last_synced_at", jts(a->last_synced_at));
    SETK(o, "retired_at", jts(a->retired_at));
    SETK(o, "serial_duplicate", json_boolean(a->serial_duplicate != 0));
    return o;
}

/* ---- the same view through yajl's generator ------------------------------------------------
 * No tree: values go straight to the generator's output. jstr's fallback is reproduced exactly:
 * jansson accepts only well-formed UTF-8 (no overlong forms, surrogates or code points past
 * U+10FFFF), and a string it refuses is shown with every non-ASCII byte as '?'. */

/* 1 when s[0..n) is UTF-8 that jansson's json_string accepts; *plain = 0 when a byte needs a
 * JSON escape (a quote, a backslash or a control character). */
static int
utf8_ok(const unsigned char *s, size_t n, int *plain)
{
    size_t i = 0;

    *plain = 1;
    while (i < n) {
        unsigned c = s[i], len, v;

        if (c < 0x80) {
            if (c < 0x20 || c == '"' || c == '\\')
                *plain = 0;
            i++;
            continue;
        }
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
            v = c & 0x1F;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            v = c & 0x0F;
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            v = c & 0x07;
        } else {
            return 0;
        }
        if (n - i < len)
            return 0;
        for (unsigned k = 1; k < len; k++) {
            if ((s[i + k] & 0xC0) != 0x80)
                return 0;
            v = (v << 6) | (s[i + k] & 0x3F);
        }
        if (v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF) || (len == 3 && v < 0x800) ||
            (len == 4 && v < 0x10000))
            return 0;
        i += len;
    }
    return 1;
}

#define GEN_OK(x) ((x) == yajl_gen_status_ok ? 0 : 1)

static int
gkey(yajl_gen g, const char *k)
{
    return GEN_OK(yajl_gen_string(g, (const unsigned char *)k, strlen(k)));
}

/* A string that needs no escape, quoted as yajl_gen_string would write it, in one token:
 * yajl_gen_number emits its text as is, with the same separators and state checks. */
static int
gquoted(yajl_gen g, const char *s, size_t n)
{
    char q[256];

    if (n > sizeof q - 2)
        return GEN_OK(yajl_gen_string(g, (const unsigned char *)s, n));
    q[0] = '"';
    memcpy(q + 1, s, n);
    q[n + 1] = '"';
    return GEN_OK(yajl_gen_number(g, q, n + 2));
}

static int
gstr(yajl_gen g, const char *s)
{
    size_t n;
    char small[256], *copy;
    int bad, plain;

    if (s == NULL)
        return GEN_OK(yajl_gen_null(g));
    n = strlen(s);
    if (utf8_ok((const unsigned char *)s, n, &plain))
        return plain ? gquoted(g, s, n) : GEN_OK(yajl_gen_string(g, (const unsigned char *)s, n));
    copy = n < sizeof small ? small : xmalloc(n + 1);
    memcpy(copy, s, n + 1);
    for (unsigned char *p = (unsigned char *)copy; *p != '\0'; p++)
        if (*p >= 0x80)
            *p = '?';
    bad = GEN_OK(yajl_gen_string(g, (const unsigned char *)copy, n));
    if (copy != small)
        free(copy);
    return bad;
}

/* Decimal without snprintf; exact for INT64_MIN. */
static int
gint(yajl_gen g, int64_t v)
{
    char out[24], *p = out + sizeof out;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

    do {
        *--p = (char)('0' + u % 10);
        u /= 10;
    } while (u != 0);
    if (v < 0)
        *--p = '-';
    return GEN_OK(yajl_gen_number(g, p, (size_t)(out + sizeof out - p)));
}

static int
gts(yajl_gen g, int64_t t)
{
    char out[32];

    if (t == TS_NULL)
        return GEN_OK(yajl_gen_null(g));
    clock_fmt(t, out, sizeof out);
    return gquoted(g, out, strlen(out)); /* digits and separators */
}

static int
gbytes(yajl_gen g, int64_t v)
{
    return v < 0 ? GEN_OK(yajl_gen_null(g)) : gint(g, v);
}

static int
gbool(yajl_gen g, int v)
{
    return v < 0 ? GEN_OK(yajl_gen_null(g)) : GEN_OK(yajl_gen_bool(g, v != 0));
}

static int
gend_of_support(yajl_gen g, const struct device *d)
{
    struct lifecycle_info li;

    memset(&li, 0, sizeof li);
    if (d->os_name == NULL || !lifecycle_lookup(d->os_name, d->os_version, &li) ||
        li.end_of_support[0] == '\0')
        return GEN_OK(yajl_gen_null(g));
    return gstr(g, li.end_of_support);
}

#define GOPEN(g)  GEN_OK(yajl_gen_map_open(g))
#define GCLOSE(g) GEN_OK(yajl_gen_map_close(g))
/* Key, then value: two statements, as the operands of | have no order. */
#define KV(k, v)                                                                                   \
    do {                                                                                           \
        bad |= gkey(g, (k));                                                                       \
        bad |= (v);                                                                                \
    } while (0)

int
asset_gen(yajl_gen g, const struct asset *a)
{
    const struct device *d = &a->dev;
    int bad = 0;

    bad |= GOPEN(g);
    KV("id", gint(g, a->id));
    KV("client", GOPEN(g));
    KV("id", gint(g, a->client_id));
    KV("name", gstr(g, a->client_name));
    KV("tenant_id", gstr(g, a->client_tenant_id));
    bad |= GCLOSE(g);
    KV("source", GOPEN(g));
    KV("integration_id", gint(g, a->integration_id));
    KV("intune_device_id", gstr(g, d->intune_id));
    KV("azure_ad_device_id", gstr(g, d->aad_device_id));
    bad |= GCLOSE(g);
    KV("name", gstr(g, d->name));
    KV("serial_number", gstr(g, d->serial));
    KV("manufacturer", gstr(g, d->manufacturer));
    KV("model", gstr(g, d->model));
    KV("type", gstr(g, device_type_name(d->type)));
    KV("operating_system", GOPEN(g));
    KV("name", gstr(g, d->os_name));
    KV("version", gstr(g, d->os_version));
    KV("end_of_support", gend_of_support(g, d));
    bad |= GCLOSE(g);
    KV("user", GOPEN(g));
    KV("principal_name", gstr(g, d->user_upn));
    KV("display_name", gstr(g, d->user_name));
    KV("email", gstr(g, d->user_email));
    bad |= GCLOSE(g);
    KV("ownership", gstr(g, d->ownership));
    KV("compliance_state", gstr(g, d->compliance_state));
    KV("management_state", gstr(g, d->management_state));
    KV("enrollment_type", gstr(g, d->enrollment_type));
    KV("is_encrypted", gbool(g, d->is_encrypted));
    KV("is_supervised", gbool(g, d->is_supervised));
    KV("storage", GOPEN(g));
    KV("total_bytes", gbytes(g, d->storage_total));
    KV("free_bytes", gbytes(g, d->storage_free));
    bad |= GCLOSE(g);
    KV("memory_bytes", gbytes(g, d->memory));
    KV("wifi_mac", gstr(g, d->wifi_mac));
    KV("ethernet_mac", gstr(g, d->ethernet_mac));
    KV("imei", gstr(g, d->imei));
    KV("meid", gstr(g, d->meid));
    KV("phone_number", gstr(g, d->phone));
    KV("enrolled_at", gts(g, d->enrolled_at));
    KV("last_check_in_at", gts(g, d->last_check_in_at));
    KV("first_synced_at", gts(g, a->first_synced_at));
    KV("last_synced_at", gts(g, a->last_synced_at));
    KV("retired_at", gts(g, a->retired_at));
    KV("serial_duplicate", GEN_OK(yajl_gen_bool(g, a->serial_duplicate != 0)));
    bad |= GCLOSE(g);
    return bad ? ERR_INVAL : ERR_OK;
}

json_t *
client_to_json(const struct client_row *c)
{
    json_t *err;

    if (c->error_code == NULL && c->error_message == NULL && c->error_remedy == NULL)
        err = json_null();
    else
        err = json_pack("{s:o, s:o, s:o}", "code", jstr(c->error_code), "message",
                        jstr(c->error_message), "remedy", jstr(c->error_remedy));
    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:b, s:o, s:o, s:o, s:I, s:I}", "id",
                     (json_int_t)c->id, "tenant_id", jstr(c->tenant_id), "name", jstr(c->name),
                     "default_domain", jstr(c->default_domain), "source", jstr(c->source),
                     "included", c->included != 0, "status", jstr(c->status), "last_sync_at",
                     jts(c->last_sync_at), "error", err, "device_count",
                     (json_int_t)c->device_count, "software_count", (json_int_t)c->software_count);
}

const char *const software_columns[] = {
    "id",      "client.id", "client.name", "client.tenant_id", "name",
    "version", "publisher", "platform",    "size_bytes",       "device_count",
};
const size_t software_column_count = sizeof software_columns / sizeof software_columns[0];

json_t *
software_to_json(const struct software_row *s)
{
    return json_pack("{s:I, s:{s:I, s:o, s:o}, s:o, s:o, s:o, s:o, s:o, s:I}", "id",
                     (json_int_t)s->id, "client", "id", (json_int_t)s->client_id, "name",
                     jstr(s->client_name), "tenant_id", jstr(s->client_tenant_id), "name",
                     jstr(s->name), "version", jstr(s->version), "publisher", jstr(s->publisher),
                     "platform", jstr(s->platform), "size_bytes", jbytes(s->size_bytes),
                     "device_count", (json_int_t)s->device_count);
}

const char *const asset_change_columns[] = {"id", "asset_id", "at", "field", "old", "new"};
const size_t asset_change_column_count =
    sizeof asset_change_columns / sizeof asset_change_columns[0];

json_t *
asset_change_to_json(const struct asset_change_row *c)
{
    return json_pack("{s:I, s:I, s:o, s:o, s:o, s:o}", "id", (json_int_t)c->id, "asset_id",
                     (json_int_t)c->asset_id, "at", jts(c->at), "field", jstr(c->field), "old",
                     jstr(c->old_value), "new", jstr(c->new_value));
}
