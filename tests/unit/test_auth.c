/* test_auth.c - the sign-in limiter: counters at their limit survive a flood of junk names, a
 * full table refuses new names, IPv6 counts per /64, and a name locked from one address still
 * signs in from another until the looser per-name limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "auth.h"

#define T0 INT64_C(1800000000)

static void
fail_n(const char *ip, const char *name, int n, int64_t now)
{
    for (int i = 0; i < n; i++)
        auth_limit_login_failed(ip, name, now);
}

static void
test_locked_user_survives_junk_names(void **state)
{
    char ip[64], name[64];

    (void)state;
    auth_limit_reset();
    fail_n("198.51.100.7", "victim", AUTH_FAIL_MAX, T0);
    assert_false(auth_limit_login_allowed("198.51.100.7", "victim", T0));
    /* Thousands of failed sign-ins with junk names from many addresses, one each. */
    for (int i = 0; i < 3000; i++) {
        snprintf(ip, sizeof ip, "10.%d.%d.%d", i / 65536, (i / 256) % 256, i % 256);
        snprintf(name, sizeof name, "junk%d", i);
        if (auth_limit_login_allowed(ip, name, T0 + 1))
            auth_limit_login_failed(ip, name, T0 + 1);
    }
    assert_false(auth_limit_login_allowed("198.51.100.7", "victim", T0 + 2));
    /* After the window the user may try again. */
    assert_true(auth_limit_login_allowed("198.51.100.7", "victim", T0 + AUTH_FAIL_WINDOW));
}

static void
test_full_table_refuses_new_keys(void **state)
{
    char key[64];
    int i;

    (void)state;
    auth_limit_reset();
    /* Fill the table with keys at their limit (never evicted). */
    for (i = 0; i < 100000; i++) {
        snprintf(key, sizeof key, "k%d", i);
        if (!auth_limit_allowed(key, 1, T0))
            break;
        auth_limit_fail(key, 1, T0);
    }
    assert_true(i > 100 && i < 100000);
    assert_false(auth_limit_allowed("k0", 1, T0));
    assert_false(auth_limit_allowed("someone-new", 5, T0));
    assert_true(auth_limit_allowed("someone-new", 5, T0 + AUTH_FAIL_WINDOW));
}

static void
test_ipv6_per_64(void **state)
{
    char ip[64], net[80];

    (void)state;
    auth_limit_reset();
    auth_limit_net("2001:db8:1:2:aaaa::1", net, sizeof net);
    assert_string_equal(net, "2001:db8:1:2::/64");
    auth_limit_net("::ffff:192.0.2.5", net, sizeof net);
    assert_string_equal(net, "192.0.2.5");
    auth_limit_net("192.0.2.5", net, sizeof net);
    assert_string_equal(net, "192.0.2.5");
    for (int i = 0; i < AUTH_FAIL_MAX_IP; i++) {
        char name[32];

        snprintf(ip, sizeof ip, "2001:db8:1:2::%x", i + 1);
        snprintf(name, sizeof name, "u%d", i);
        assert_true(auth_limit_login_allowed(ip, name, T0));
        auth_limit_login_failed(ip, name, T0);
    }
    assert_false(auth_limit_login_allowed("2001:db8:1:2:ffff::9", "fresh", T0));
    assert_true(auth_limit_login_allowed("2001:db8:1:3::1", "fresh", T0));
}

static void
test_lockout_by_name_from_another_address(void **state)
{
    char ip[64];

    (void)state;
    auth_limit_reset();
    fail_n("203.0.113.9", "alice", AUTH_FAIL_MAX, T0);
    assert_false(auth_limit_login_allowed("203.0.113.9", "alice", T0));
    /* The real user, elsewhere, is not locked out by someone else's failures. */
    assert_true(auth_limit_login_allowed("198.51.100.20", "alice", T0));
    /* Only many failures from many addresses lock the name everywhere, for one window. */
    for (int i = 0; i < AUTH_FAIL_MAX_USER; i++) {
        snprintf(ip, sizeof ip, "192.0.2.%d", i % 250 + 1);
        auth_limit_login_failed(ip, "bob", T0);
    }
    assert_false(auth_limit_login_allowed("198.51.100.20", "bob", T0));
    assert_true(auth_limit_login_allowed("198.51.100.20", "bob", T0 + AUTH_FAIL_WINDOW));
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_locked_user_survives_junk_names),
        cmocka_unit_test(test_full_table_refuses_new_keys),
        cmocka_unit_test(test_ipv6_per_64),
        cmocka_unit_test(test_lockout_by_name_from_another_address),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
