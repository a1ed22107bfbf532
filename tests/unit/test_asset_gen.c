/* test_asset_gen.c - asset_gen (yajl, the hardware list) writes exactly what asset_to_json
 * (jansson, the detail and the CLI) builds: same members in the same order, same values, for
 * full rows, NULLs, hostile and malformed strings and Int64 extremes. */
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
#include "clock.h"
#include "err.h"

/* asset_gen's output for a, parsed by jansson (order-preserving). */
static json_t *
gen_json(const struct asset *a)
{
    yajl_gen g = yajl_gen_alloc(NULL);
    const unsigned char *out = NULL;
    size_t len = 0;
    json_error_t je;
    json_t *j;

    assert_non_null(g);
    assert_int_equal(asset_gen(g, a), ERR_OK);
    assert_int_equal(yajl_gen_get_buf(g, &out, &len), yajl_gen_status_ok);
    j = json_loadb((const char *)out, len, 0, &je);
    if (j == NULL)
        fail_msg("asset_gen wrote JSON jansson cannot read (%s): %.*s", je.text, (int)len,
                 (const char *)out);
    yajl_gen_free(g);
    return j;
}

/* Same value and, dumped the same way, the same bytes (so the same member order). */
static void
same(const struct asset *a)
{
    json_t *want = asset_to_json(a), *got = gen_json(a);
    char *w = json_dumps(want, JSON_COMPACT), *h = json_dumps(got, JSON_COMPACT);

    assert_non_null(w);
    assert_non_null(h);
    if (!json_equal(want, got))
        fail_msg("asset_gen differs:\n want %s\n got  %s", w, h);
    assert_string_equal(w, h);
    free(w);
    free(h);
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
    a->serial_duplicate = 1;
}

static void
test_every_field_set(void **state)
{
    struct asset a;
    json_t *j;

    (void)state;
    full(&a);
    same(&a);
    /* The comparison can fail: a different row is not equal. */
    j = gen_json(&a);
    a.id = 43;
    {
        json_t *other = asset_to_json(&a);
        assert_false(json_equal(j, other));
        json_decref(other);
    }
    json_decref(j);
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

    (void)state;
    memset(&a, 0, sizeof a);
    device_init(&a.dev);
    a.first_synced_at = TS_NULL;
    a.last_synced_at = TS_NULL;
    a.retired_at = TS_NULL;
    same(&a);
    j = gen_json(&a);
    assert_true(json_is_null(json_object_get(j, "name")));
    assert_true(json_is_null(json_object_get(json_object_get(j, "storage"), "total_bytes")));
    assert_true(json_is_null(json_object_get(j, "is_encrypted")));
    assert_true(json_is_null(json_object_get(j, "retired_at")));
    assert_true(
        json_is_null(json_object_get(json_object_get(j, "operating_system"), "end_of_support")));
    json_decref(j);
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
    };
    struct asset a;

    (void)state;
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        full(&a);
        all_strings(&a, texts[i]);
        same(&a);
    }
    /* Plain text at and past the one-token path's 254 bytes. */
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
    /* Longer than gstr's stack copy. */
    {
        char big[1200];
        memset(big, 'x', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        big[10] = '\xff';
        big[700] = '"';
        full(&a);
        all_strings(&a, big);
        same(&a);
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
    full(&a);
    a.id = INT64_MAX;
    {
        json_t *j = gen_json(&a);
        assert_true(json_integer_value(json_object_get(j, "id")) == INT64_MAX);
        json_decref(j);
    }
    /* Timestamps at the edges clock_fmt handles. */
    full(&a);
    a.dev.enrolled_at = 0;
    a.dev.last_check_in_at = INT64_C(253402300799); /* 9999-12-31T23:59:59Z */
    a.first_synced_at = -INT64_C(62135596800);      /* 0001-01-01 */
    same(&a);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_field_set),
        cmocka_unit_test(test_nulls),
        cmocka_unit_test(test_hostile_strings),
        cmocka_unit_test(test_int64_extremes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
