/* test_asset_gen.c - the hardware list's writer (asset_writer) writes, byte for byte, what the
 * yajl generator wrote for the list before it (the reference below: every value through
 * yajl_gen_*, strings jansson refuses with their non-ASCII bytes as '?', times by clock_fmt,
 * end of support by lifecycle_lookup), and the same value asset_to_json (jansson, the detail and
 * the CLI) builds: full rows, NULLs, hostile and malformed strings, strings longer than the
 * writer's chunk, Int64 extremes, every kind of timestamp, pages of many rows. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jansson.h>
#include <stdlib.h>
#include <string.h>
#include <yajl/yajl_gen.h>

#include "asset.h"
#include "buf.h"
#include "clock.h"
#include "err.h"
#include "lifecycle.h"
#include "mem.h"

/* ---- the reference: yajl's generator, one call per token ---------------------------------- */

static void
ref_str(yajl_gen g, const char *s)
{
    json_t *v;
    char *copy;

    if (s == NULL) {
        assert_int_equal(yajl_gen_null(g), yajl_gen_status_ok);
        return;
    }
    v = json_string(s);
    copy = xstrdup(s);
    if (v == NULL) /* jansson refuses it: non-ASCII bytes shown as '?' */
        for (unsigned char *p = (unsigned char *)copy; *p != '\0'; p++)
            if (*p >= 0x80)
                *p = '?';
    json_decref(v);
    assert_int_equal(yajl_gen_string(g, (const unsigned char *)copy, strlen(copy)),
                     yajl_gen_status_ok);
    free(copy);
}

static void
ref_key(yajl_gen g, const char *k)
{
    assert_int_equal(yajl_gen_string(g, (const unsigned char *)k, strlen(k)), yajl_gen_status_ok);
}

static void
ref_int(yajl_gen g, int64_t v)
{
    assert_int_equal(yajl_gen_integer(g, (long long)v), yajl_gen_status_ok);
}

static void
ref_null(yajl_gen g)
{
    assert_int_equal(yajl_gen_null(g), yajl_gen_status_ok);
}

static void
ref_ts(yajl_gen g, int64_t t)
{
    char out[32];

    if (t == TS_NULL) {
        ref_null(g);
        return;
    }
    clock_fmt(t, out, sizeof out);
    ref_str(g, out);
}

static void
ref_bytes(yajl_gen g, int64_t v)
{
    if (v < 0)
        ref_null(g);
    else
        ref_int(g, v);
}

static void
ref_bool(yajl_gen g, int v)
{
    if (v < 0)
        ref_null(g);
    else
        assert_int_equal(yajl_gen_bool(g, v != 0), yajl_gen_status_ok);
}

static void
ref_open(yajl_gen g)
{
    assert_int_equal(yajl_gen_map_open(g), yajl_gen_status_ok);
}

static void
ref_close(yajl_gen g)
{
    assert_int_equal(yajl_gen_map_close(g), yajl_gen_status_ok);
}

static void
ref_asset(yajl_gen g, const struct asset *a)
{
    const struct device *d = &a->dev;
    struct lifecycle_info li;

    ref_open(g);
    ref_key(g, "id");
    ref_int(g, a->id);
    ref_key(g, "client");
    ref_open(g);
    ref_key(g, "id");
    ref_int(g, a->client_id);
    ref_key(g, "name");
    ref_str(g, a->client_name);
    ref_key(g, "tenant_id");
    ref_str(g, a->client_tenant_id);
    ref_close(g);
    ref_key(g, "source");
    ref_open(g);
    ref_key(g, "integration_id");
    ref_int(g, a->integration_id);
    ref_key(g, "intune_device_id");
    ref_str(g, d->intune_id);
    ref_key(g, "azure_ad_device_id");
    ref_str(g, d->aad_device_id);
    ref_close(g);
    ref_key(g, "name");
    ref_str(g, d->name);
    ref_key(g, "serial_number");
    ref_str(g, d->serial);
    ref_key(g, "manufacturer");
    ref_str(g, d->manufacturer);
    ref_key(g, "model");
    ref_str(g, d->model);
    ref_key(g, "type");
    ref_str(g, device_type_name(d->type));
    ref_key(g, "operating_system");
    ref_open(g);
    ref_key(g, "name");
    ref_str(g, d->os_name);
    ref_key(g, "version");
    ref_str(g, d->os_version);
    ref_key(g, "end_of_support");
    memset(&li, 0, sizeof li);
    if (d->os_name == NULL || !lifecycle_lookup(d->os_name, d->os_version, &li) ||
        li.end_of_support[0] == '\0')
        ref_null(g);
    else
        ref_str(g, li.end_of_support);
    ref_close(g);
    ref_key(g, "user");
    ref_open(g);
    ref_key(g, "principal_name");
    ref_str(g, d->user_upn);
    ref_key(g, "display_name");
    ref_str(g, d->user_name);
    ref_key(g, "email");
    ref_str(g, d->user_email);
    ref_close(g);
    ref_key(g, "ownership");
    ref_str(g, d->ownership);
    ref_key(g, "compliance_state");
    ref_str(g, d->compliance_state);
    ref_key(g, "management_state");
    ref_str(g, d->management_state);
    ref_key(g, "enrollment_type");
    ref_str(g, d->enrollment_type);
    ref_key(g, "is_encrypted");
    ref_bool(g, d->is_encrypted);
    ref_key(g, "is_supervised");
    ref_bool(g, d->is_supervised);
    ref_key(g, "storage");
    ref_open(g);
    ref_key(g, "total_bytes");
    ref_bytes(g, d->storage_total);
    ref_key(g, "free_bytes");
    ref_bytes(g, d->storage_free);
    ref_close(g);
    ref_key(g, "memory_bytes");
    ref_bytes(g, d->memory);
    ref_key(g, "wifi_mac");
    ref_str(g, d->wifi_mac);
    ref_key(g, "ethernet_mac");
    ref_str(g, d->ethernet_mac);
    ref_key(g, "imei");
    ref_str(g, d->imei);
    ref_key(g, "meid");
    ref_str(g, d->meid);
    ref_key(g, "phone_number");
    ref_str(g, d->phone);
    ref_key(g, "enrolled_at");
    ref_ts(g, d->enrolled_at);
    ref_key(g, "last_check_in_at");
    ref_ts(g, d->last_check_in_at);
    ref_key(g, "first_synced_at");
    ref_ts(g, a->first_synced_at);
    ref_key(g, "last_synced_at");
    ref_ts(g, a->last_synced_at);
    ref_key(g, "retired_at");
    ref_ts(g, a->retired_at);
    ref_key(g, "missing_since");
    ref_ts(g, a->missing_since);
    ref_key(g, "updated_at");
    ref_ts(g, a->updated_at);
    ref_key(g, "serial_duplicate");
    assert_int_equal(yajl_gen_bool(g, a->serial_duplicate != 0), yajl_gen_status_ok);
    ref_close(g);
}

/* The reference bytes of a JSON array of the n assets (one asset alone when !array). */
static char *
ref_json(const struct asset *as, size_t n, int array)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    const unsigned char *out = NULL;
    size_t len = 0;
    char *copy;

    assert_non_null(g);
    if (array)
        assert_int_equal(yajl_gen_array_open(g), yajl_gen_status_ok);
    for (size_t i = 0; i < n; i++)
        ref_asset(g, &as[i]);
    if (array)
        assert_int_equal(yajl_gen_array_close(g), yajl_gen_status_ok);
    assert_int_equal(yajl_gen_get_buf(g, &out, &len), yajl_gen_status_ok);
    copy = xmalloc(len + 1);
    memcpy(copy, out, len);
    copy[len] = '\0';
    yajl_gen_free(g);
    return copy;
}

static void
write_rows(struct asset_writer *w, const struct asset *as, size_t n, int array)
{
    if (array)
        asset_writer_raw(w, "[", 1);
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            asset_writer_raw(w, ",", 1);
        asset_writer_asset(w, &as[i]);
    }
    if (array)
        asset_writer_raw(w, "]", 1);
}

/* asset_writer's bytes for the same, appended to a buf; a writer that keeps its bytes (grown
 * from nothing) writes the same. */
static char *
writer_json(const struct asset *as, size_t n, int array)
{
    struct buf b;
    struct asset_writer *w;
    char *text, *owned;
    size_t len = 0;

    buf_init(&b, 64 * 1024 * 1024);
    w = asset_writer_new(&b);
    write_rows(w, as, n, array);
    assert_int_equal(asset_writer_finish(w), ERR_OK);
    text = buf_detach(&b, NULL);
    w = asset_writer_new_owned(0, 64 * 1024 * 1024);
    write_rows(w, as, n, array);
    owned = asset_writer_take(w, &len);
    assert_non_null(owned);
    assert_int_equal(len, strlen(text));
    assert_string_equal(owned, text);
    free(owned);
    return text;
}

static void
same_bytes(const struct asset *as, size_t n, int array)
{
    char *want = ref_json(as, n, array), *got = writer_json(as, n, array);

    if (strcmp(want, got) != 0) {
        size_t i = 0;
        while (want[i] == got[i])
            i++;
        fail_msg("asset_writer differs from the yajl reference at byte %zu:\n want ...%.80s\n "
                 "got  ...%.80s",
                 i, want + (i > 20 ? i - 20 : 0), got + (i > 20 ? i - 20 : 0));
    }
    free(want);
    free(got);
}

/* The writer's bytes equal the reference's, and parse to what asset_to_json builds. */
static void
same(const struct asset *a)
{
    char *text;
    json_t *want = asset_to_json(a), *got;
    json_error_t je;
    char *w, *h;

    same_bytes(a, 1, 0);
    text = writer_json(a, 1, 0);
    got = json_loads(text, 0, &je);
    if (got == NULL)
        fail_msg("asset_writer wrote JSON jansson cannot read (%s): %s", je.text, text);
    w = json_dumps(want, JSON_COMPACT);
    h = json_dumps(got, JSON_COMPACT);
    assert_non_null(w);
    assert_non_null(h);
    if (!json_equal(want, got))
        fail_msg("asset_writer differs from asset_to_json:\n want %s\n got  %s", w, h);
    assert_string_equal(w, h);
    free(w);
    free(h);
    free(text);
    json_decref(want);
    json_decref(got);
}

static char **
str_at(struct device *d, size_t i)
{
    char **fields[] = {&d->aad_device_id,
                       &d->name,
                       &d->serial,
                       &d->manufacturer,
                       &d->model,
                       &d->os_name,
                       &d->os_version,
                       &d->user_upn,
                       &d->user_name,
                       &d->user_email,
                       &d->ownership,
                       &d->compliance_state,
                       &d->management_state,
                       &d->enrollment_type,
                       &d->wifi_mac,
                       &d->ethernet_mac,
                       &d->imei,
                       &d->meid,
                       &d->phone,
                       &d->intune_id};
    return i < sizeof fields / sizeof fields[0] ? fields[i] : NULL;
}

#define NSTR 20

/* Every string field of a (and the client's) set to s; a borrows s. */
static void
all_strings(struct asset *a, const char *s)
{
    for (size_t i = 0; i < NSTR; i++)
        *str_at(&a->dev, i) = (char *)s;
    a->client_name = s;
    a->client_tenant_id = s;
}

static void
full(struct asset *a)
{
    memset(a, 0, sizeof *a);
    device_init(&a->dev);
    all_strings(a, "value");
    a->dev.os_name = (char *)"Windows";
    a->dev.os_version = (char *)"10.0.19045.4291"; /* has an end of support */
    a->id = 42;
    a->client_id = 7;
    a->integration_id = 3;
    a->dev.type = DEVICE_WORKSTATION;
    a->dev.is_encrypted = 1;
    a->dev.is_supervised = 0;
    a->dev.storage_total = INT64_C(8796093022208);
    a->dev.storage_free = INT64_C(2147483648);
    a->dev.memory = INT64_C(17179869184);
    a->dev.enrolled_at = INT64_C(1713039798);
    a->dev.last_check_in_at = INT64_C(1767225600);
    a->first_synced_at = INT64_C(1767225600);
    a->last_synced_at = INT64_C(1767229200);
    a->retired_at = INT64_C(1767232800);
    a->missing_since = INT64_C(1767139200);
    a->updated_at = INT64_C(1767229100);
    a->serial_duplicate = 1;
}

static void
test_every_field_set(void **state)
{
    struct asset a;
    char *x, *y;

    (void)state;
    full(&a);
    same(&a);
    /* The comparison can fail: a different row gives other bytes. */
    x = writer_json(&a, 1, 0);
    a.id = 43;
    y = ref_json(&a, 1, 0);
    assert_true(strcmp(x, y) != 0);
    free(x);
    free(y);
    a.dev.type = DEVICE_MOBILE;
    a.dev.is_supervised = 1;
    a.serial_duplicate = 0;
    same(&a);
}

static void
test_nulls(void **state)
{
    struct asset a;
    json_t *j;
    char *text;

    (void)state;
    memset(&a, 0, sizeof a);
    device_init(&a.dev);
    a.first_synced_at = TS_NULL;
    a.last_synced_at = TS_NULL;
    a.retired_at = TS_NULL;
    a.missing_since = TS_NULL;
    a.updated_at = TS_NULL;
    same(&a);
    text = writer_json(&a, 1, 0);
    j = json_loads(text, 0, NULL);
    assert_non_null(j);
    assert_true(json_is_null(json_object_get(j, "name")));
    assert_true(json_is_null(json_object_get(json_object_get(j, "storage"), "total_bytes")));
    assert_true(json_is_null(json_object_get(j, "is_encrypted")));
    assert_true(json_is_null(json_object_get(j, "retired_at")));
    assert_true(json_is_null(json_object_get(j, "missing_since")));
    assert_true(
        json_is_null(json_object_get(json_object_get(j, "operating_system"), "end_of_support")));
    json_decref(j);
    free(text);
    /* Empty strings are strings, not null. */
    all_strings(&a, "");
    same(&a);
}

static void
test_hostile_strings(void **state)
{
    static const char *const texts[] = {
        "\"quoted\" \\back\\slash\\",
        "\x01\x02\x07\b\f\n\r\t\x0b\x1b\x1f\x7f end",
        "<img src=x onerror=alert(1)>",
        "</script><script>alert('x')</script>",
        "J\xc3\xbcrgen M\xc3\xbcller \xe2\x80\x94 \xe6\x97\xa5\xe6\x9c\xac",
        "\xf0\x9f\x92\xbb\xf0\x9f\x94\xa5 emoji",
        "line\xe2\x80\xa8separator\xe2\x80\xa9",
        "{\"json\":[1,2]}",
        "/solidus/",
        /* Not UTF-8 jansson accepts: shown with every non-ASCII byte as '?'. */
        "bad \xff\xfe bytes",
        "overlong \xc0\xaf and \xe0\x80\xaf",
        "surrogate \xed\xa0\x80",
        "past U+10FFFF \xf4\x90\x80\x80",
        "truncated \xe2\x82",
        "valid \xc3\xa9 then bad \x80",
        "bad \xff and \"quote\"\n",
    };
    struct asset a;

    (void)state;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        full(&a);
        all_strings(&a, texts[i]);
        same(&a);
    }
    /* Every single byte, alone and inside text. */
    for (int c = 1; c < 256; c++) {
        char one[2] = {(char)c, '\0'}, mid[8] = {'a', (char)c, 'b', '\0'};
        full(&a);
        all_strings(&a, one);
        same(&a);
        all_strings(&a, mid);
        same(&a);
    }
    /* Plain text around 254 bytes (the old one-token path's limit). */
    for (size_t n = 253; n <= 256; n++) {
        char plain[300];
        memset(plain, 'p', n);
        plain[n] = '\0';
        plain[0] = '\xc3'; /* non-ASCII needs no escape */
        plain[1] = '\xa9';
        full(&a);
        all_strings(&a, plain);
        same(&a);
    }
}

/* Strings longer than the writer's 16 KiB chunk and its halves, plain, escaped and malformed,
 * so values cross every chunk boundary. */
static void
test_long_strings(void **state)
{
    static const size_t lens[] = {1000, 2047, 2048,  2049,  8190,  8191,
                                  8192, 8193, 16383, 16384, 16385, 40000};
    struct asset a;

    (void)state;
    for (size_t i = 0; i < sizeof lens / sizeof lens[0]; i++) {
        char *s = xmalloc(lens[i] + 1);

        for (int kind = 0; kind < 4; kind++) {
            memset(s, 'x', lens[i]);
            s[lens[i]] = '\0';
            if (kind == 1) /* escapes throughout */
                for (size_t k = 0; k < lens[i]; k += 7)
                    s[k] = k % 2 ? '"' : '\n';
            if (kind == 2) /* not UTF-8 */
                s[lens[i] / 2] = '\xff';
            if (kind == 3) /* UTF-8 (2 bytes) throughout */
                for (size_t k = 0; k + 1 < lens[i]; k += 2) {
                    s[k] = '\xc3';
                    s[k + 1] = '\xa9';
                }
            full(&a);
            a.dev.name = s;
            a.dev.model = s;
            same(&a);
        }
        free(s);
    }
}

static void
test_int64_extremes(void **state)
{
    static const int64_t ints[] = {
        0, 1, -1, 9, 10, INT64_MAX, INT64_MIN, INT64_MIN + 1, INT64_C(9007199254740993)};
    struct asset a;

    (void)state;
    for (size_t i = 0; i < sizeof ints / sizeof ints[0]; i++) {
        full(&a);
        a.id = ints[i];
        a.client_id = ints[i];
        a.integration_id = ints[i];
        a.dev.storage_total = ints[i];
        a.dev.storage_free = ints[i];
        a.dev.memory = ints[i];
        same(&a);
    }
    /* The digit count comes from the bit length: every power of ten and its neighbours. */
    for (uint64_t p = 1, k = 0; k < 19; k++, p *= 10) {
        full(&a);
        a.id = (int64_t)p;
        a.client_id = (int64_t)p - 1;
        a.integration_id = (int64_t)p + 1;
        a.dev.storage_total = (int64_t)p;
        a.dev.storage_free = (int64_t)p - 1;
        a.dev.memory = (int64_t)p + 1;
        same_bytes(&a, 1, 0);
        a.id = -(int64_t)p;
        a.client_id = 1 - (int64_t)p;
        a.integration_id = -1 - (int64_t)p;
        same_bytes(&a, 1, 0);
    }
}

/* The writer formats dates itself from year 1 to 9999 and leaves the rest to clock_fmt: both
 * give clock_fmt's text. */
static void
test_timestamps(void **state)
{
    static const int64_t edges[] = {
        0,
        -1,
        1,
        86399,
        86400,
        -86400,
        -86401,
        INT64_C(951782400),    /* 2000-02-29 */
        INT64_C(951868800),    /* 2000-03-01 */
        INT64_C(-2203891200),  /* 1900-03-01 */
        INT64_C(-2203977600),  /* 1900-02-28 */
        INT64_C(4107542400),   /* 2100-03-01 */
        INT64_C(253402300799), /* 9999-12-31T23:59:59Z */
        INT64_C(253402300800), /* year 10000: clock_fmt */
        -INT64_C(62135596800), /* 0001-01-01 */
        -INT64_C(62135596801), /* year 0: clock_fmt */
        -INT64_C(62167219200), /* 0000-01-01 */
        -INT64_C(62198755200), /* year -1 */
        INT64_C(1767225600),
    };
    struct asset a;
    uint64_t x = 88172645463325252ULL;

    (void)state;
    for (size_t i = 0; i < sizeof edges / sizeof edges[0]; i++) {
        full(&a);
        a.dev.enrolled_at = edges[i];
        a.dev.last_check_in_at = edges[i] + 59;
        a.first_synced_at = edges[i] - 3600;
        same(&a);
    }
    /* Random times over the whole fast range and a little past it. */
    for (int i = 0; i < 20000; i++) {
        int64_t span = INT64_C(253402300800) + INT64_C(62135596800) + 2 * INT64_C(86400) * 366;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        full(&a);
        a.dev.enrolled_at = (int64_t)(x % (uint64_t)span) - INT64_C(62135596800) - 86400 * 366;
        a.dev.last_check_in_at = (int64_t)(x % INT64_C(4102444800)); /* 1970 .. 2100 */
        same_bytes(&a, 1, 0);
    }
}

/* A page: many rows through one writer (its chunk flushed many times, its end-of-support memo
 * full of colliding OS versions, names and versions too long for the memo). */
static void
test_page_of_rows(void **state)
{
    static const char *const oses[] = {"Windows", "macOS",   "iOS",   "iPadOS",
                                       "Android", "windows", "Linux", "AndroidForWork"};
    static const char *const vers[] = {"10.0.19045.4291",
                                       "10.0.22631.3447",
                                       "10.0.26100.1",
                                       "10.0.17763.1",
                                       "14.4.1",
                                       "17.4",
                                       "12",
                                       "8.1.0",
                                       "10.15.7",
                                       "13.0",
                                       "",
                                       NULL};
    enum { N = 600 };
    struct asset *as = xcalloc(N, sizeof *as);
    char(*names)[64] = xcalloc(N, 64);
    char longver[80], longos[80];

    (void)state;
    memset(longver, '1', sizeof longver - 1);
    longver[sizeof longver - 1] = '\0';
    memcpy(longver, "10.0.19045.", 11);
    memset(longos, 'W', sizeof longos - 1);
    longos[sizeof longos - 1] = '\0';
    for (size_t i = 0; i < N; i++) {
        full(&as[i]);
        as[i].id = (int64_t)i * 7919;
        snprintf(names[i], 64, "DESKTOP-%04zu \xc3\xa9", i);
        as[i].dev.name = names[i];
        as[i].dev.os_name = (char *)oses[i % (sizeof oses / sizeof oses[0])];
        as[i].dev.os_version = (char *)vers[(i / 3) % (sizeof vers / sizeof vers[0])];
        if (i % 97 == 0)
            as[i].dev.os_version = longver;
        if (i % 89 == 0)
            as[i].dev.os_name = longos;
        if (i % 13 == 0)
            as[i].dev.os_name = NULL;
        as[i].serial_duplicate = (int)(i % 2);
        as[i].retired_at = i % 3 ? TS_NULL : as[i].retired_at + (int64_t)i;
        as[i].missing_since = i % 4 ? TS_NULL : as[i].missing_since - (int64_t)i;
    }
    same_bytes(as, N, 1);
    free(names);
    free(as);
}

/* The plain-text scan works on blocks of 16 (and 8 and 4) bytes with an overlapping last
 * block: a byte that needs an escape or a UTF-8 check at every offset of strings of every
 * length up to 80, each string in an allocation of its own size. */
static void
test_block_offsets(void **state)
{
    static const char *const odd[] = {"\"",   "\\",   "\n",   "\x01",     "\x1f",
                                      "\x7f", "\x80", "\xff", "\xc3\xa9", "\xe2\x82"};
    struct asset a;

    (void)state;
    for (size_t n = 0; n <= 80; n++) {
        char *s = xmalloc(n + 1);

        memset(s, 'a', n);
        s[n] = '\0';
        full(&a);
        all_strings(&a, s);
        same_bytes(&a, 1, 0);
        for (size_t k = 0; k < n; k++) {
            for (size_t j = 0; j < sizeof odd / sizeof odd[0]; j++) {
                size_t m = strlen(odd[j]);

                if (k + m > n)
                    continue;
                memset(s, 'a', n);
                memcpy(s + k, odd[j], m);
                all_strings(&a, s);
                same_bytes(&a, 1, 0);
            }
        }
        free(s);
    }
}

/* Consecutive rows through one writer, whose timestamps share a day or not (it keeps each
 * column's last date): steps across midnight, month and year ends, leap days, the extremes of
 * its own formatting and past them, NULL between. */
static void
test_timestamp_runs(void **state)
{
    static const int64_t starts[] = {
        INT64_C(1767225600) - 3,     /* 2026-01-01 */
        INT64_C(951782400) - 86400,  /* 2000-02-28 */
        INT64_C(4107542400) - 86400, /* 2100-02-28 */
        -3,
        -INT64_C(62135596800) - 2,     /* around 0001-01-01 */
        INT64_C(253402300799) - 86402, /* up to 9999-12-31 and past */
        INT64_C(1709164800) - 86400 * 40,
    };
    static const int64_t steps[] = {1, 3599, 86399, 86400, 86401, 86400 * 29 + 1, 86400 * 365};
    enum { N = 40 };
    struct asset as[N];

    (void)state;
    for (size_t i = 0; i < sizeof starts / sizeof starts[0]; i++) {
        for (size_t j = 0; j < sizeof steps / sizeof steps[0]; j++) {
            for (size_t r = 0; r < N; r++) {
                int64_t t = starts[i] + (int64_t)r * steps[j];

                full(&as[r]);
                as[r].dev.enrolled_at = t;
                as[r].dev.last_check_in_at = r % 5 == 4 ? TS_NULL : t + 1;
                as[r].first_synced_at = starts[i];
                as[r].last_synced_at = t - (int64_t)r;
                as[r].retired_at = r % 3 ? TS_NULL : t;
                as[r].missing_since = r % 4 == 1 ? t - 7 : TS_NULL;
            }
            same_bytes(as, N, 1);
        }
    }
}

/* An owned writer stops at its maximum (whatever its first room) and gives nothing back. */
static void
test_owned_cap(void **state)
{
    struct asset a;
    struct asset_writer *w;
    size_t len = 0;
    char *text;

    (void)state;
    full(&a);
    w = asset_writer_new_owned(1000, 100);
    for (int i = 0; i < 50; i++)
        asset_writer_asset(w, &a);
    assert_null(asset_writer_take(w, &len));
    w = asset_writer_new_owned(1 << 20, 30000);
    for (int i = 0; i < 50; i++)
        asset_writer_asset(w, &a);
    assert_null(asset_writer_take(w, &len));
    /* Exactly filled: the bytes and their NUL. */
    text = writer_json(&a, 1, 0);
    w = asset_writer_new_owned(strlen(text), strlen(text));
    asset_writer_asset(w, &a);
    free(asset_writer_take(w, &len));
    assert_int_equal(len, strlen(text));
    w = asset_writer_new_owned(0, strlen(text) - 1);
    asset_writer_asset(w, &a);
    assert_null(asset_writer_take(w, &len));
    free(text);
}

/* A buffer that refuses the output makes finish report it. */
static void
test_output_cap(void **state)
{
    struct buf b;
    struct asset a;
    struct asset_writer *w;

    (void)state;
    full(&a);
    buf_init(&b, 100);
    w = asset_writer_new(&b);
    for (int i = 0; i < 50; i++)
        asset_writer_asset(w, &a);
    assert_int_equal(asset_writer_finish(w), ERR_TOOBIG);
    assert_true(b.len <= 100);
    buf_free(&b);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_field_set), cmocka_unit_test(test_nulls),
        cmocka_unit_test(test_hostile_strings), cmocka_unit_test(test_long_strings),
        cmocka_unit_test(test_int64_extremes),  cmocka_unit_test(test_timestamps),
        cmocka_unit_test(test_page_of_rows),    cmocka_unit_test(test_output_cap),
        cmocka_unit_test(test_block_offsets),   cmocka_unit_test(test_timestamp_runs),
        cmocka_unit_test(test_owned_cap),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
