/* test_token.c - token URLs, form bodies, Entra responses (fixtures from $FIXTURE_DIR), cache. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fixture.h"

#include "mem.h"
#include "token.h"

static void
test_success_fixtures(void **state)
{
    static const struct {
        const char *name, *token_prefix;
    } cases[] = {
        {"aad-v2-token-client-credentials.success.response.json", "eyJ0eXAiOiJKV1Qi"},
        {"aad-v2-token-client-credentials.recorded.response.json", "access_token"},
        {"aad-v1-token-client-credentials.success.response.json", "eyJ0eXAiO ... "},
        {"pc-app-only-token-aadv1-graphwindowsnet.response.json", ""},
    };
    struct token_result r;
    struct errbuf eb;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        size_t len;
        char *body = fixture(cases[i].name, &len);

        if (token_parse(body, len, 200, &r, &eb) != 0)
            fail_msg("%s: %s", cases[i].name, eb.msg);
        assert_non_null(r.access_token);
        assert_true(strncmp(r.access_token, cases[i].token_prefix, strlen(cases[i].token_prefix)) ==
                    0);
        assert_true(r.expires_in > 0);
        if (i < 3)
            assert_true(r.expires_in == 3599); /* number on v2, "3599" on v1 */
        assert_null(r.error);
        token_result_clear(&r);
        free(body);
    }
}

static void
test_error_fixtures(void **state)
{
    static const char *const names[] = {"aad-v2-token-error-invalid_scope.response.json",
                                        "aad-token-error-sample-with-error_uri.response.json"};
    struct token_result r;
    struct errbuf eb;

    (void)state;
    for (size_t i = 0; i < 2; i++) {
        size_t len;
        char *body = fixture(names[i], &len);

        assert_int_equal(token_parse(body, len, 400, &r, &eb), ERR_AUTH);
        assert_null(r.access_token);
        assert_string_equal(r.error, "invalid_scope");
        assert_int_equal(r.aadsts, 70011);
        assert_true(strncmp(r.error_description, "AADSTS70011: ", 13) == 0);
        assert_null(strchr(r.error_description, '\n'));
        assert_null(strstr(r.error_description, "Trace ID"));
        assert_non_null(strstr(eb.msg, "AADSTS70011"));
        /* the ids Microsoft support asks for */
        assert_string_equal(r.trace_id, "0000aaaa-11bb-cccc-dd22-eeeeee333333");
        assert_true(r.correlation_id[0] != '\0');
        assert_true(r.timestamp[0] != '\0');
        token_result_clear(&r);
        free(body);
    }
}

static void
test_bad_responses(void **state)
{
    static const char *const bad[] = {
        "",
        "not json",
        "[]",
        "{\"token_type\":\"Bearer\",\"expires_in\":3599}",
        "{\"access_token\":\"\",\"expires_in\":3599}",
        "{\"access_token\":null,\"expires_in\":3599}",
        "{\"access_token\":\"t\"}",
        "{\"access_token\":\"t\",\"expires_in\":\"soon\"}",
        "{\"access_token\":\"t\",\"expires_in\":\"-5\"}",
        "{\"access_token\":\"t\",\"expires_in\":3599.5}",
        "{\"access_token\":\"t\",\"expires_in\":\"3599x\"}",
        "{\"access_token\":\"t\",\"access_token\":\"u\",\"expires_in\":1}",
    };
    struct token_result r;
    struct errbuf eb;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (token_parse(bad[i], strlen(bad[i]), 200, &r, &eb) != ERR_PARSE)
            fail_msg("case %zu accepted: %s", i, bad[i]);
        assert_null(r.access_token);
    }
    /* A 500 without an Entra body is not an auth verdict. */
    assert_int_equal(token_parse("{}", 2, 500, &r, &eb), ERR_PARSE);
    /* an error without error_codes takes the AADSTS code from the description */
    {
        static const char e[] = "{\"error\":\"invalid_client\",\"error_description\":"
                                "\"AADSTS7000215: Invalid client secret provided.\\r\\nTrace\"}";

        assert_int_equal(token_parse(e, sizeof e - 1, 401, &r, &eb), ERR_AUTH);
        assert_int_equal(r.aadsts, 7000215);
        assert_string_equal(r.error_description, "AADSTS7000215: Invalid client secret provided.");
        token_result_clear(&r);
    }
    token_result_clear(NULL);
}

static void
test_url_and_form(void **state)
{
    struct buf b;
    char *u;

    (void)state;
    u = token_url("https://login.microsoftonline.com/", "contoso.onmicrosoft.com", 0);
    assert_string_equal(u, "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/"
                           "v2.0/token");
    free(u);
    u = token_url("http://127.0.0.1:9", "a/../b", 1);
    assert_string_equal(u, "http://127.0.0.1:9/a%2F..%2Fb/oauth2/token");
    free(u);
    assert_null(token_url("https://x", "", 0));

    buf_init(&b, 4096);
    assert_int_equal(token_form(&b, "00001111-aaaa", "qkDw+s/x=&y", AUDIENCE_GRAPH, 0), 0);
    assert_string_equal(buf_cstr(&b), "grant_type=client_credentials&client_id=00001111-aaaa"
                                      "&client_secret=qkDw%2Bs%2Fx%3D%26y"
                                      "&scope=https%3A%2F%2Fgraph.microsoft.com%2F.default");
    buf_reset(&b);
    assert_int_equal(token_form(&b, "id", "s", AUDIENCE_PARTNER_CENTER, 1), 0);
    assert_string_equal(buf_cstr(&b), "grant_type=client_credentials&client_id=id"
                                      "&client_secret=s"
                                      "&resource=https%3A%2F%2Fapi.partnercenter.microsoft.com");
    buf_free(&b);
    buf_init(&b, 16);
    assert_int_equal(token_form(&b, "id", "a-long-secret-value", AUDIENCE_GRAPH, 0), ERR_TOOBIG);
    buf_free(&b);
}

static void
test_cache(void **state)
{
    struct token_cache *c = token_cache_new();
    const int64_t now = 1700000000;

    (void)state;
    assert_null(token_cache_get(c, "t1", AUDIENCE_GRAPH, now));
    token_cache_put(c, "t1", AUDIENCE_GRAPH, "tok-graph", now + 3599);
    token_cache_put(c, "t1", AUDIENCE_PARTNER_CENTER, "tok-pc", now + 3599);
    token_cache_put(c, "t2", AUDIENCE_GRAPH, "tok-t2", now + 100);
    assert_string_equal(token_cache_get(c, "t1", AUDIENCE_GRAPH, now), "tok-graph");
    assert_string_equal(token_cache_get(c, "t1", AUDIENCE_PARTNER_CENTER, now), "tok-pc");
    /* valid for less than the margin: treated as expired */
    assert_null(token_cache_get(c, "t2", AUDIENCE_GRAPH, now));
    /* the margin boundary */
    assert_non_null(token_cache_get(c, "t1", AUDIENCE_GRAPH, now + 3599 - TOKEN_REFRESH_MARGIN));
    assert_null(token_cache_get(c, "t1", AUDIENCE_GRAPH, now + 3599 - TOKEN_REFRESH_MARGIN + 1));
    assert_null(token_cache_get(c, "t1", AUDIENCE_GRAPH, now));
    /* replace, drop */
    token_cache_put(c, "t1", AUDIENCE_PARTNER_CENTER, "tok-pc2", now + 7200);
    assert_string_equal(token_cache_get(c, "t1", AUDIENCE_PARTNER_CENTER, now), "tok-pc2");
    token_cache_drop(c, "t1", AUDIENCE_PARTNER_CENTER);
    assert_null(token_cache_get(c, "t1", AUDIENCE_PARTNER_CENTER, now));
    token_cache_drop(c, "nope", AUDIENCE_GRAPH);
    token_cache_put(c, "t3", AUDIENCE_GRAPH, "tok-t3", now + 3600);
    token_cache_free(c);
    token_cache_free(NULL);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_success_fixtures),
        cmocka_unit_test(test_error_fixtures),
        cmocka_unit_test(test_bad_responses),
        cmocka_unit_test(test_url_and_form),
        cmocka_unit_test(test_cache),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
