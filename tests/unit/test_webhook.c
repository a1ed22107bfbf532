/* test_webhook.c - the webhook signature (against a value computed independently with Python's
 * hmac module), its verification, the target URL rules, the address checks, deliveries in a
 * curl multi handle and the backoff. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <curl/curl.h>
#include <netinet/in.h>
#include <sodium.h>

#include "webhook.h"

static const unsigned char key[] = "0123456789abcdef0123456789abcdef";
#define KEYLEN 32

static void
test_sign_known_value(void **state)
{
    char sig[WEBHOOK_SIG_MAX];

    (void)state;
    /* hmac.new(key, b'1700000000.{"a":1}', hashlib.sha256).hexdigest() */
    webhook_sign(key, KEYLEN, 1700000000, "{\"a\":1}", 7, sig);
    assert_string_equal(
        sig, "t=1700000000,v1=f05f2539e3ae1c49aec5f8cfdad75ef6b06480b133973ffbb7ec9e18827af177");
}

static void
test_verify(void **state)
{
    char sig[WEBHOOK_SIG_MAX];
    const char *body = "{\"event\":\"asset.created\"}";
    size_t n = strlen(body);

    (void)state;
    webhook_sign(key, KEYLEN, 1700000000, body, n, sig);
    assert_int_equal(webhook_verify(key, KEYLEN, sig, body, n, 1700000100, 300), ERR_OK);
    /* Too old, from the future, another body, another key, mangled headers. */
    assert_int_equal(webhook_verify(key, KEYLEN, sig, body, n, 1700000301, 300), ERR_AUTH);
    assert_int_equal(webhook_verify(key, KEYLEN, sig, body, n, 1699999000, 300), ERR_AUTH);
    assert_int_equal(
        webhook_verify(key, KEYLEN, sig, "{\"event\":\"asset.retired\"}", n, 1700000000, 300),
        ERR_AUTH);
    assert_int_equal(webhook_verify((const unsigned char *)"another key, also thirty-two b", KEYLEN,
                                    sig, body, n, 1700000000, 300),
                     ERR_AUTH);
    sig[strlen(sig) - 1] = sig[strlen(sig) - 1] == '0' ? '1' : '0';
    assert_int_equal(webhook_verify(key, KEYLEN, sig, body, n, 1700000000, 300), ERR_AUTH);
    assert_int_equal(webhook_verify(key, KEYLEN, "v1=abc", body, n, 1700000000, 300), ERR_AUTH);
    assert_int_equal(webhook_verify(key, KEYLEN, "t=1700000000,v1=", body, n, 1700000000, 300),
                     ERR_AUTH);
    assert_int_equal(webhook_verify(key, KEYLEN, NULL, body, n, 1700000000, 300), ERR_AUTH);
    /* The timestamp is signed: moving it breaks the signature. */
    webhook_sign(key, KEYLEN, 1700000000, body, n, sig);
    sig[2] = '2';
    assert_int_equal(webhook_verify(key, KEYLEN, sig, body, n, 2700000000, 300), ERR_AUTH);
}

static int
v4(const struct webhook_policy *p, const char *a)
{
    struct sockaddr_in in;

    memset(&in, 0, sizeof in);
    in.sin_family = AF_INET;
    assert_int_equal(inet_pton(AF_INET, a, &in.sin_addr), 1);
    return webhook_addr_allowed(p, (const struct sockaddr *)&in);
}

static int
v6(const struct webhook_policy *p, const char *a)
{
    struct sockaddr_in6 in;

    memset(&in, 0, sizeof in);
    in.sin6_family = AF_INET6;
    assert_int_equal(inet_pton(AF_INET6, a, &in.sin6_addr), 1);
    return webhook_addr_allowed(p, (const struct sockaddr *)&in);
}

static void
test_addresses(void **state)
{
    struct webhook_policy none = {0}, lo = {0}, priv = {0};
    static const char *const refused4[] = {
        "127.0.0.1",   "127.1.2.3",       "10.0.0.1",   "172.16.0.1",      "172.31.255.255",
        "192.168.1.1", "169.254.169.254", "100.64.0.1", "100.127.255.255", "0.0.0.0",
        "224.0.0.1",   "255.255.255.255", "240.0.0.1",
    };
    static const char *const refused6[] = {
        "::1",
        "::",
        "fe80::1",
        "fc00::1",
        "fd12:3456::1",
        "ff02::1",
        "::ffff:127.0.0.1",
        "::ffff:10.1.2.3",
        "::ffff:169.254.169.254",
        "64:ff9b::a9fe:a9fe",
        "::7f00:1",
    };

    (void)state;
    lo.allow_loopback = 1;
    priv.allow_private = 1;
    for (size_t i = 0; i < sizeof refused4 / sizeof refused4[0]; i++)
        assert_false(v4(&none, refused4[i]));
    for (size_t i = 0; i < sizeof refused6 / sizeof refused6[0]; i++)
        assert_false(v6(&none, refused6[i]));
    assert_true(v4(&none, "93.184.216.34"));
    assert_true(v4(&none, "172.32.0.1"));
    assert_true(v4(&none, "100.128.0.1"));
    assert_true(v4(&none, "192.169.0.1"));
    assert_true(v6(&none, "2606:2800:220:1:248:1893:25c8:1946"));
    assert_true(v6(&none, "::ffff:93.184.216.34"));
    /* Loopback only with its own permission; private only with its own. */
    assert_true(v4(&lo, "127.0.0.1"));
    assert_true(v6(&lo, "::1"));
    assert_true(v6(&lo, "::ffff:127.0.0.1"));
    assert_false(v4(&lo, "10.0.0.1"));
    assert_true(v4(&priv, "10.0.0.1"));
    assert_true(v4(&priv, "169.254.169.254"));
    assert_true(v6(&priv, "fd00::1"));
    assert_false(v4(&priv, "127.0.0.1"));
    assert_false(v4(&priv, "0.0.0.0"));
    assert_false(v4(&priv, "224.0.0.1"));
    assert_false(webhook_addr_allowed(&priv, NULL));
}

static void
test_urls(void **state)
{
    struct webhook_policy p = {0};
    struct errbuf eb = {0};

    (void)state;
    assert_int_equal(webhook_url_check(&p, "https://hooks.example.com/x?y=1", &eb), ERR_OK);
    assert_int_equal(webhook_url_check(&p, "http://hooks.example.com/x", &eb), ERR_INVAL);
    assert_non_null(strstr(eb.msg, "https"));
    assert_int_equal(webhook_url_check(&p, "https://user:pw@hooks.example.com/", &eb), ERR_INVAL);
    assert_int_equal(webhook_url_check(&p, "ftp://hooks.example.com/", &eb), ERR_INVAL);
    assert_int_equal(webhook_url_check(&p, "hooks.example.com/x", &eb), ERR_INVAL);
    assert_int_equal(webhook_url_check(&p, "", &eb), ERR_INVAL);
    assert_int_equal(webhook_url_check(&p, NULL, &eb), ERR_INVAL);
    p.http_hosts[0] = "intranet.example";
    p.nhttp_hosts = 1;
    assert_int_equal(webhook_url_check(&p, "http://INTRANET.example:8080/h", &eb), ERR_OK);
    assert_int_equal(webhook_url_check(&p, "http://other.example/h", &eb), ERR_INVAL);
}

/* A refused address is refused before anything is sent, whatever the name. */
static void
test_deliver_refuses_loopback(void **state)
{
    struct webhook_policy p = {0};
    struct webhook_result res;
    struct errbuf eb = {0};

    (void)state;
    p.http_hosts[0] = "127.0.0.1";
    p.http_hosts[1] = "localhost";
    p.nhttp_hosts = 2;
    p.timeout_ms = 2000;
    assert_int_equal(webhook_deliver(&p, "http://127.0.0.1:9/hook", key, KEYLEN, "test", "id", "{}",
                                     2, &res, &eb),
                     ERR_DENIED);
    assert_int_equal(res.status, 0);
    assert_int_equal(webhook_deliver(&p, "http://localhost:9/hook", key, KEYLEN, "test", "id", "{}",
                                     2, &res, &eb),
                     ERR_DENIED);
    assert_int_equal(webhook_deliver(&p, "http://example.invalid/hook", key, KEYLEN, "test", "id",
                                     "{}", 2, &res, &eb),
                     ERR_DENIED); /* plain http to a host not allowed */
}

/* The multi-handle form: several in flight in one CURLM, each refused at connect time (no
 * connection is made), each answer its own; the body is copied, so the caller's may go. */
static void
test_xfer_in_a_multi_handle(void **state)
{
    struct webhook_policy p = {0};
    struct webhook_xfer *x[3] = {NULL, NULL, NULL};
    struct webhook_result res;
    CURLM *m = curl_multi_init();
    CURLMsg *msg;
    int running = 1, left, done = 0;

    (void)state;
    p.http_hosts[0] = "127.0.0.1";
    p.nhttp_hosts = 1;
    p.timeout_ms = 2000;
    for (int i = 0; i < 3; i++) {
        char body[16];
        struct errbuf eb = {0};

        snprintf(body, sizeof body, "{\"n\":%d}", i);
        assert_int_equal(webhook_xfer_new(&p, "http://127.0.0.1:9/hook", key, KEYLEN, "test", "id",
                                          body, strlen(body), &x[i], &eb),
                         ERR_OK);
        memset(body, 0, sizeof body);
        assert_int_equal(curl_multi_add_handle(m, webhook_xfer_handle(x[i])), CURLM_OK);
    }
    {
        struct errbuf eb = {0};
        struct webhook_xfer *bad = (struct webhook_xfer *)1;

        assert_int_equal(webhook_xfer_new(&p, "http://example.invalid/hook", key, KEYLEN, "test",
                                          "id", "{}", 2, &bad, &eb),
                         ERR_DENIED);
        assert_null(bad);
    }
    while (running > 0) {
        curl_multi_perform(m, &running);
        if (running > 0)
            curl_multi_poll(m, NULL, 0, 100, NULL);
    }
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
        for (int i = 0; i < 3; i++) {
            struct errbuf eb = {0};

            if (msg->msg != CURLMSG_DONE || webhook_xfer_handle(x[i]) != msg->easy_handle)
                continue;
            assert_int_equal(webhook_xfer_done(x[i], (int)msg->data.result, &res, &eb), ERR_DENIED);
            assert_int_equal(res.status, 0);
            done++;
        }
    }
    assert_int_equal(done, 3);
    for (int i = 0; i < 3; i++) {
        curl_multi_remove_handle(m, webhook_xfer_handle(x[i]));
        webhook_xfer_free(x[i]);
    }
    webhook_xfer_free(NULL);
    curl_multi_cleanup(m);
}

static void
test_backoff(void **state)
{
    (void)state;
    assert_int_equal(webhook_backoff(1, 30), 30);
    assert_int_equal(webhook_backoff(2, 30), 60);
    assert_int_equal(webhook_backoff(3, 30), 120);
    assert_int_equal(webhook_backoff(30, 30), WEBHOOK_BACKOFF_MAX_S);
    assert_int_equal(webhook_backoff(1, 0), 1);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sign_known_value),
        cmocka_unit_test(test_verify),
        cmocka_unit_test(test_addresses),
        cmocka_unit_test(test_urls),
        cmocka_unit_test(test_deliver_refuses_loopback),
        cmocka_unit_test(test_xfer_in_a_multi_handle),
        cmocka_unit_test(test_backoff),
    };

    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
