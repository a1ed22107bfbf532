/* Unit tests of the simulator's world generator, device rendering and tokens. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include <jansson.h>

#include "buf.h"
#include "clock.h"
#include "err.h"
#include "simsrv.h"
#include "simworld.h"

static struct simworld *
world(uint64_t seed, int tenants, int devices, int apps)
{
    struct simw_opts o = {seed, tenants, devices, apps, 1780272000 /* 2026-06-01 */};
    return simw_new(&o);
}

static char *
render_all(struct simworld *w)
{
    struct buf b;
    size_t n;

    buf_init(&b, 64u << 20);
    for (size_t t = 0; t < w->ntenants; t++) {
        assert_int_equal(buf_addstr(&b, w->tenants[t]->id), ERR_OK);
        assert_int_equal(buf_addstr(&b, w->tenants[t]->name), ERR_OK);
        for (size_t i = 0; i < w->tenants[t]->ndev; i++)
            assert_int_equal(simw_render_device(w->tenants[t]->devs[i], NULL, 1, 1, &b), ERR_OK);
        for (size_t i = 0; i < w->tenants[t]->napps; i++)
            assert_int_equal(buf_addstr(&b, w->tenants[t]->apps[i].id), ERR_OK);
    }
    return buf_detach(&b, &n);
}

static void
test_same_seed_same_world(void **state)
{
    struct simworld *a = world(7, 3, 40, 5), *b = world(7, 3, 40, 5), *c = world(8, 3, 40, 5);
    char *ra = render_all(a), *rb = render_all(b), *rc = render_all(c);

    (void)state;
    assert_string_equal(ra, rb);
    assert_true(strcmp(ra, rc) != 0);
    assert_string_equal(a->partner_tenant_id, b->partner_tenant_id);
    assert_string_equal(a->sync_app.secrets[0].value, b->sync_app.secrets[0].value);
    free(ra);
    free(rb);
    free(rc);
    simw_free(a);
    simw_free(b);
    simw_free(c);
}

static void
test_device_json_shape(void **state)
{
    struct simworld *w = world(1, 1, 200, 0);
    struct simtenant *t = w->tenants[0];
    int big = 0, userless = 0;

    (void)state;
    assert_int_equal(t->ndev, 200);
    for (size_t i = 0; i < t->ndev; i++) {
        struct buf b;
        json_error_t je;
        buf_init(&b, 1 << 20);
        assert_int_equal(simw_render_device(t->devs[i], NULL, 0, 0, &b), ERR_OK);
        json_t *j = json_loadb(b.data, b.len, JSON_REJECT_DUPLICATES, &je);
        assert_non_null(j);
        assert_int_equal(json_object_size(j), SIMW_NPROPS);
        for (int p = 0; p < SIMW_NPROPS; p++) {
            json_t *v = json_object_get(j, simw_props[p].name);
            assert_non_null(v);
            switch (simw_props[p].kind) {
            case SIMW_BOOL:
                assert_true(json_is_boolean(v));
                break;
            case SIMW_INT64:
                assert_true(json_is_integer(v));
                break;
            case SIMW_DATE:
                assert_true(json_is_string(v));
                break;
            case SIMW_EMPTYARR:
                assert_true(json_is_array(v));
                break;
            case SIMW_NULLOBJ:
                assert_true(json_is_null(v));
                break;
            default:
                break;
            }
        }
        assert_int_equal(json_integer_value(json_object_get(j, "physicalMemoryInBytes")), 0);
        assert_true(json_is_null(json_object_get(j, "ethernetMacAddress")));
        assert_string_equal(json_string_value(json_object_get(j, "easActivationDateTime")),
                            "0001-01-01T00:00:00Z");
        big += json_integer_value(json_object_get(j, "totalStorageSpaceInBytes")) >
               INT64_C(2147483648);
        userless += strcmp(json_string_value(json_object_get(j, "userPrincipalName")), "") == 0;
        json_decref(j);
        buf_free(&b);
    }
    assert_true(big > 150);
    assert_true(userless > 0);
    simw_free(w);
}

static void
test_select_and_full(void **state)
{
    struct simworld *w = world(2, 1, 3, 0);
    uint64_t sel[2] = {0, 0};
    int mem = simw_prop_index("PHYSICALMEMORYINBYTES"), id = simw_prop_index("id");
    struct buf b;

    (void)state;
    assert_true(mem > 0);
    assert_int_equal(id, 0);
    assert_int_equal(simw_prop_index("nope"), -1);
    sel[0] = (UINT64_C(1) << mem) | 1;
    buf_init(&b, 1 << 16);
    assert_int_equal(simw_render_device(w->tenants[0]->devs[0], sel, 1, 1, &b), ERR_OK);
    json_t *j = json_loads(b.data, 0, NULL);
    assert_int_equal(json_object_size(j), 2);
    assert_true(json_integer_value(json_object_get(j, "physicalMemoryInBytes")) > INT64_C(1) << 31);
    json_decref(j);
    assert_true(simw_beta_index("hardwareInformation") == 0);
    buf_free(&b);
    simw_free(w);
}

static void
test_json_escaping(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 1024);
    assert_int_equal(simw_json_str(&b, "a\"b\\c\nd\x01<é>"), ERR_OK);
    assert_string_equal(b.data, "\"a\\\"b\\\\c\\nd\\u0001<é>\"");
    buf_free(&b);
    buf_init(&b, 4);
    assert_int_equal(simw_json_str(&b, "too long for four"), ERR_TOOBIG);
    buf_free(&b);
}

static void
test_devices_add_remove_order(void **state)
{
    struct simworld *w = world(3, 1, 5, 4);
    struct simtenant *t = w->tenants[0];
    uint64_t s2 = t->devs[2]->seq;
    char id3[64];

    (void)state;
    snprintf(id3, sizeof id3, "%s", t->devs[3]->str[0]);
    simw_remove_device(t, 2);
    assert_int_equal(t->ndev, 4);
    /* keyset paging: the next device after a removed one is still found */
    assert_string_equal(t->devs[simw_device_after(t, s2)]->str[0], id3);
    simw_add_devices(w, t, 3);
    assert_int_equal(t->ndev, 7);
    assert_true(t->devs[6]->seq > t->devs[5]->seq);
    assert_int_equal(simw_device_pos(t, id3), 2);
    int installs = 0, counts = 0;
    for (size_t i = 0; i < t->ndev; i++)
        installs += (int)t->devs[i]->napps;
    for (size_t i = 0; i < t->napps; i++)
        counts += t->apps[i].device_count;
    assert_int_equal(installs, counts);
    assert_int_equal(simw_device_after(t, UINT64_MAX), t->ndev);
    simw_free(w);
}

static void
test_secrets(void **state)
{
    struct simworld *w = world(4, 1, 0, 0);
    const char *s = w->sync_app.secrets[0].value;
    int64_t now = clock_now();

    (void)state;
    assert_non_null(strchr(s, '+'));
    assert_non_null(strchr(s, '/'));
    assert_non_null(strchr(s, '='));
    assert_int_equal(simw_secret_check(&w->sync_app, s, now), 1);
    assert_int_equal(simw_secret_check(&w->sync_app, "x", now), 0);
    assert_int_equal(simw_secret_check(&w->sync_app, NULL, now), 0);
    w->sync_app.secrets[0].expires = now - 1;
    assert_int_equal(simw_secret_check(&w->sync_app, s, now), -1);
    const char *n = simw_secret_add(w, &w->sync_app, now + 100);
    assert_int_equal(simw_secret_check(&w->sync_app, n, now), 1);
    assert_string_not_equal(w->sync_app.secrets[0].key_id, w->sync_app.secrets[1].key_id);
    simw_free(w);
}

static void
test_tokens(void **state)
{
    struct simtok_claims cl;
    char *t, *bad;
    int64_t v[2] = {42, 7}, out[2];
    char *sk;
    char form[] = "a%2Bb+c%3D%2F";
    char bad_form[] = "%zz";
    char dec[64];

    (void)state;
    simtok_init();
    t = simtok_issue("tid-1", "app-1", "https://graph.microsoft.com", 1000, 3599);
    assert_int_equal(simtok_verify(t, 1500, &cl), ERR_OK);
    assert_string_equal(cl.tid, "tid-1");
    assert_string_equal(cl.appid, "app-1");
    assert_string_equal(cl.aud, "https://graph.microsoft.com");
    assert_int_equal(simtok_verify(t, 5000, &cl), ERR_TIMEOUT);
    bad = strdup(t);
    bad[strlen(bad) - 2] = bad[strlen(bad) - 2] == 'A' ? 'B' : 'A';
    assert_int_equal(simtok_verify(bad, 1500, &cl), ERR_AUTH);
    assert_int_equal(simtok_verify("a.b", 1500, &cl), ERR_AUTH);
    assert_int_equal(simtok_verify(NULL, 1500, &cl), ERR_AUTH);
    free(bad);
    free(t);

    sk = simtok_seal_ints("mdsk", v, 2);
    assert_int_equal(simtok_open_ints("mdsk", sk, out, 2), ERR_OK);
    assert_int_equal(out[0], 42);
    assert_int_equal(out[1], 7);
    assert_int_equal(simtok_open_ints("pcct", sk, out, 2), ERR_PARSE);
    assert_int_equal(simtok_open_ints("mdsk", "1000", out, 2), ERR_PARSE);
    sk[3] = sk[3] == 'A' ? 'B' : 'A';
    assert_int_equal(simtok_open_ints("mdsk", sk, out, 2), ERR_PARSE);
    free(sk);

    assert_int_equal(simtok_form_decode(form), ERR_OK);
    assert_string_equal(form, "a+b c=/");
    assert_int_equal(simtok_form_decode(bad_form), ERR_PARSE);
    assert_int_equal(simtok_b64_decode("aWQ6c2VjcmV0", dec, sizeof dec), ERR_OK);
    assert_string_equal(dec, "id:secret");
    assert_int_equal(simtok_b64_decode("!!", dec, sizeof dec), ERR_PARSE);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_same_seed_same_world),
        cmocka_unit_test(test_device_json_shape),
        cmocka_unit_test(test_select_and_full),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_devices_add_remove_order),
        cmocka_unit_test(test_secrets),
        cmocka_unit_test(test_tokens),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
