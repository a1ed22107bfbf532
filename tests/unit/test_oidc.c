/* test_oidc.c - ID token validation (each claim's refusal, algorithm confusion, clock skew, a
 * rotated key set), role mapping, PKCE and the pending sign-ins. Tokens are made here with
 * libjose and a fresh RSA key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <jose/jose.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "err.h"
#include "mem.h"
#include "oidc.h"

#define TENANT "5b8c0e2a-1111-4222-8333-444455556666"
#define CLIENT "0f0e0d0c-aaaa-4bbb-8ccc-ddddeeeeffff"
#define ISSUER "https://login.example.test/" TENANT "/v2.0"
#define NONCE  "n-0S6_WzA2Mj"
#define NOW    1800000000

static json_t *key1, *key2; /* private RSA keys, kid k1 and k2 */

static json_t *
gen_key(const char *kid)
{
    json_t *k = json_pack("{s:s}", "alg", "RS256");

    assert_true(jose_jwk_gen(NULL, k));
    json_object_set_new(k, "kid", json_string(kid));
    return k;
}

static int
setup(void **state)
{
    (void)state;
    if (key1 == NULL) {
        key1 = gen_key("k1");
        key2 = gen_key("k2");
    }
    return 0;
}

/* The public key set of the given private keys. */
static json_t *
jwks_of(json_t *a, json_t *b)
{
    json_t *keys = json_array(), *ks[2] = {a, b};

    for (int i = 0; i < 2; i++) {
        json_t *pub;

        if (ks[i] == NULL)
            continue;
        pub = json_deep_copy(ks[i]);
        assert_true(jose_jwk_pub(NULL, pub));
        json_object_set_new(pub, "use", json_string("sig"));
        json_array_append_new(keys, pub);
    }
    return json_pack("{s:o}", "keys", keys);
}

static json_t *
good_claims(void)
{
    return json_pack("{s:s, s:s, s:s, s:I, s:I, s:I, s:s, s:s, s:s, s:s, s:[s,s], s:[s]}", "iss",
                     ISSUER, "aud", CLIENT, "tid", TENANT, "iat", (json_int_t)NOW - 10, "nbf",
                     (json_int_t)NOW - 10, "exp", (json_int_t)NOW + 3600, "nonce", NONCE, "oid",
                     "a1b2c3d4-0000-4000-8000-000000000001", "preferred_username",
                     "ada@example.test", "name", "Ada", "groups", "g-admins", "g-other", "roles",
                     "memsync.viewer");
}

static char *
b64(const char *s)
{
    size_t len = sodium_base64_encoded_len(strlen(s), sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    char *o = xmalloc(len);

    sodium_bin2base64(o, len, (const unsigned char *)s, strlen(s),
                      sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    return o;
}

/* A compact JWS of claims (taken) signed by key under a header {alg, kid}. */
static char *
make_token(json_t *claims, const json_t *key, const char *alg, const char *kid)
{
    char *cj = json_dumps(claims, JSON_COMPACT | JSON_SORT_KEYS), *c64 = b64(cj), *out;
    json_t *jws = json_pack("{s:s}", "payload", c64);
    json_t *sig = json_pack("{s:{s:s, s:s}}", "protected", "alg", alg, "kid", kid);
    json_t *k = json_deep_copy(key);
    struct buf b;

    json_object_del(k, "alg"); /* the header's alg decides, also a wrong one */
    assert_true(jose_jws_sig(NULL, jws, sig, k));
    json_decref(k);
    buf_init(&b, 64 * 1024);
    buf_printf(&b, "%s.%s.%s", json_string_value(json_object_get(jws, "protected")), c64,
               json_string_value(json_object_get(jws, "signature")));
    out = xstrdup(buf_cstr(&b));
    buf_free(&b);
    json_decref(jws);
    json_decref(sig);
    json_decref(claims);
    free(cj);
    free(c64);
    return out;
}

static const struct oidc_expect expect = {ISSUER, CLIENT, TENANT, NONCE, NOW, -1};

/* Validates tok (freed) against jwks; returns the reason (OIDC_OK when accepted). */
static enum oidc_fail
run(char *tok, const json_t *jwks, const struct oidc_expect *x)
{
    struct oidc_claims c;
    struct errbuf eb = {0};
    enum oidc_fail why = OIDC_MALFORMED;
    int rc = oidc_validate(tok, jwks, x != NULL ? x : &expect, &c, &why, &eb);

    if (rc == ERR_OK)
        assert_int_equal(why, OIDC_OK);
    else
        assert_int_equal(rc, ERR_AUTH);
    /* The message never carries the token. */
    assert_null(strstr(eb.msg, "eyJ"));
    oidc_claims_clear(&c);
    free(tok);
    return why;
}

static enum oidc_fail
with_claim(const char *name, json_t *value)
{
    json_t *c = good_claims(), *jwks = jwks_of(key1, NULL);
    enum oidc_fail f;

    if (value == NULL)
        json_object_del(c, name);
    else
        json_object_set_new(c, name, value);
    f = run(make_token(c, key1, "RS256", "k1"), jwks, NULL);
    json_decref(jwks);
    return f;
}

static void
test_valid(void **state)
{
    json_t *jwks = jwks_of(key1, NULL);
    char *tok = make_token(good_claims(), key1, "RS256", "k1");
    struct oidc_claims c;
    struct errbuf eb = {0};
    enum oidc_fail why;

    (void)state;
    assert_int_equal(oidc_validate(tok, jwks, &expect, &c, &why, &eb), ERR_OK);
    assert_string_equal(c.oid, "a1b2c3d4-0000-4000-8000-000000000001");
    assert_string_equal(c.tid, TENANT);
    assert_string_equal(c.username, "ada@example.test");
    assert_int_equal(c.ngroups, 2);
    assert_string_equal(c.groups[0], "g-admins");
    assert_int_equal(c.nroles, 1);
    assert_int_equal(c.groups_overage, 0);
    oidc_claims_clear(&c);
    free(tok);
    json_decref(jwks);
}

static void
test_claim_refusals(void **state)
{
    (void)state;
    assert_int_equal(with_claim("aud", json_string("another-app")), OIDC_AUDIENCE);
    assert_int_equal(with_claim("aud", json_pack("[s,s]", CLIENT, "other")), OIDC_AUDIENCE);
    assert_int_equal(with_claim("aud", json_pack("[s]", CLIENT)), OIDC_OK);
    assert_int_equal(with_claim("aud", NULL), OIDC_AUDIENCE);
    assert_int_equal(with_claim("tid", json_string("99999999-9999-4999-8999-999999999999")),
                     OIDC_TENANT);
    assert_int_equal(with_claim("tid", NULL), OIDC_TENANT);
    assert_int_equal(with_claim("iss", json_string("https://login.example.test/other/v2.0")),
                     OIDC_ISSUER);
    assert_int_equal(with_claim("nonce", json_string("n-other")), OIDC_NONCE);
    assert_int_equal(with_claim("nonce", NULL), OIDC_NONCE);
    assert_int_equal(with_claim("oid", NULL), OIDC_CLAIMS);
    assert_int_equal(with_claim("groups", json_string("g-admins")), OIDC_CLAIMS);
    assert_int_equal(with_claim("exp", NULL), OIDC_EXPIRED);
    assert_int_equal(with_claim("exp", json_string("soon")), OIDC_EXPIRED);
}

static void
test_clock_skew(void **state)
{
    (void)state;
    /* exp and nbf/iat hold within OIDC_SKEW seconds, not beyond. */
    assert_int_equal(with_claim("exp", json_integer(NOW - OIDC_SKEW + 1)), OIDC_OK);
    assert_int_equal(with_claim("exp", json_integer(NOW - OIDC_SKEW - 1)), OIDC_EXPIRED);
    assert_int_equal(with_claim("nbf", json_integer(NOW + OIDC_SKEW - 1)), OIDC_OK);
    assert_int_equal(with_claim("nbf", json_integer(NOW + OIDC_SKEW + 1)), OIDC_NOT_YET);
    assert_int_equal(with_claim("iat", json_integer(NOW + OIDC_SKEW + 60)), OIDC_NOT_YET);
}

static void
test_signature_and_algorithm(void **state)
{
    json_t *jwks = jwks_of(key1, NULL), *oct;
    char *tok, *p;
    const char *n;

    (void)state;
    /* One changed signature character. */
    tok = make_token(good_claims(), key1, "RS256", "k1");
    p = strrchr(tok, '.') + 10;
    *p = *p == 'A' ? 'B' : 'A';
    assert_int_equal(run(tok, jwks, NULL), OIDC_SIGNATURE);
    /* Changed claims under the old signature. */
    {
        char *good = make_token(good_claims(), key1, "RS256", "k1");
        json_t *c = good_claims();
        char *other, *d1, *d2, *d3;
        struct buf b;

        json_object_set_new(c, "oid", json_string("a1b2c3d4-0000-4000-8000-0000000000ff"));
        other = make_token(c, key1, "RS256", "k1");
        d1 = strchr(good, '.');
        d2 = strrchr(good, '.');
        d3 = strchr(other, '.');
        buf_init(&b, 64 * 1024);
        buf_add(&b, good, (size_t)(d1 - good));
        buf_add(&b, d3, (size_t)(strrchr(other, '.') - d3));
        buf_addstr(&b, d2);
        assert_int_equal(run(xstrdup(buf_cstr(&b)), jwks, NULL), OIDC_SIGNATURE);
        buf_free(&b);
        free(good);
        free(other);
    }
    /* Signed by another key under the published kid. */
    assert_int_equal(run(make_token(good_claims(), key2, "RS256", "k1"), jwks, NULL),
                     OIDC_SIGNATURE);
    /* alg confusion: HS256 keyed with the public modulus, the published key's bytes. */
    n = json_string_value(json_object_get(key1, "n"));
    oct = json_pack("{s:s, s:s, s:s}", "kty", "oct", "k", n, "alg", "HS256");
    assert_int_equal(run(make_token(good_claims(), oct, "HS256", "k1"), jwks, NULL), OIDC_ALG);
    json_decref(oct);
    /* alg none: no signature at all. */
    {
        char *h = b64("{\"alg\":\"none\",\"kid\":\"k1\"}"), *cj, *c;
        json_t *claims = good_claims();
        struct buf b;

        cj = json_dumps(claims, JSON_COMPACT);
        c = b64(cj);
        buf_init(&b, 64 * 1024);
        buf_printf(&b, "%s.%s.", h, c);
        assert_int_equal(run(xstrdup(buf_cstr(&b)), jwks, NULL), OIDC_ALG);
        buf_free(&b);
        free(h);
        free(cj);
        free(c);
        json_decref(claims);
    }
    /* Another RSA algorithm than the pinned one. */
    assert_int_equal(run(make_token(good_claims(), key1, "RS512", "k1"), jwks, NULL), OIDC_ALG);
    assert_int_equal(run(make_token(good_claims(), key1, "PS256", "k1"), jwks, NULL), OIDC_ALG);
    json_decref(jwks);
}

static void
test_rotated_keys(void **state)
{
    json_t *both = jwks_of(key1, key2), *old = jwks_of(key1, NULL), *fresh = jwks_of(key2, NULL);

    (void)state;
    /* During a rotation both keys verify their own tokens. */
    assert_int_equal(run(make_token(good_claims(), key1, "RS256", "k1"), both, NULL), OIDC_OK);
    assert_int_equal(run(make_token(good_claims(), key2, "RS256", "k2"), both, NULL), OIDC_OK);
    /* A cached set without the new kid: OIDC_KID, the caller's cue to refetch once. */
    assert_int_equal(run(make_token(good_claims(), key2, "RS256", "k2"), old, NULL), OIDC_KID);
    /* After the old key was removed its tokens fail. */
    assert_int_equal(run(make_token(good_claims(), key1, "RS256", "k1"), fresh, NULL), OIDC_KID);
    /* A key of another type or use under the kid is not used. */
    {
        json_t *enc = jwks_of(key1, NULL);

        json_object_set_new(json_array_get(json_object_get(enc, "keys"), 0), "use",
                            json_string("enc"));
        assert_int_equal(run(make_token(good_claims(), key1, "RS256", "k1"), enc, NULL), OIDC_KID);
        json_decref(enc);
    }
    json_decref(both);
    json_decref(old);
    json_decref(fresh);
}

static void
test_malformed(void **state)
{
    json_t *jwks = jwks_of(key1, NULL);
    char *big = xmalloc(OIDC_TOKEN_MAX + 10);

    (void)state;
    assert_int_equal(run(xstrdup(""), jwks, NULL), OIDC_MALFORMED);
    assert_int_equal(run(xstrdup("a.b"), jwks, NULL), OIDC_MALFORMED);
    assert_int_equal(run(xstrdup("a.b.c.d"), jwks, NULL), OIDC_MALFORMED);
    assert_int_equal(run(xstrdup("e30.e30.a+b"), jwks, NULL), OIDC_MALFORMED);
    assert_int_equal(run(xstrdup("bm90IGpzb24.e30.AAAA"), jwks, NULL), OIDC_MALFORMED);
    memset(big, 'A', OIDC_TOKEN_MAX + 9);
    big[OIDC_TOKEN_MAX + 9] = '\0';
    assert_int_equal(run(big, jwks, NULL), OIDC_MALFORMED);
    /* A key set of the wrong shape finds no key. */
    {
        json_t *bad = json_pack("{s:s}", "keys", "none");

        assert_int_equal(run(make_token(good_claims(), key1, "RS256", "k1"), bad, NULL), OIDC_KID);
        json_decref(bad);
    }
    json_decref(jwks);
}

static void
test_groups_overage(void **state)
{
    json_t *c = good_claims(), *jwks = jwks_of(key1, NULL);
    char *tok;
    struct oidc_claims cl;
    struct errbuf eb = {0};
    enum oidc_fail why;

    (void)state;
    json_object_del(c, "groups");
    json_object_set_new(c, "_claim_names", json_pack("{s:s}", "groups", "src1"));
    tok = make_token(c, key1, "RS256", "k1");
    assert_int_equal(oidc_validate(tok, jwks, &expect, &cl, &why, &eb), ERR_OK);
    assert_int_equal(cl.groups_overage, 1);
    assert_null(oidc_map_role("g-admins=admin", &cl));
    oidc_claims_clear(&cl);
    free(tok);
    json_decref(jwks);
}

static void
test_role_map(void **state)
{
    char *groups[] = {"G-Admins", "g-x"}, *roles[] = {"memsync.viewer"};
    struct oidc_claims c = {0};
    struct errbuf eb = {0};

    (void)state;
    c.groups = groups;
    c.ngroups = 2;
    c.roles = roles;
    c.nroles = 1;
    assert_int_equal(oidc_map_check("g-admins=admin\nmemsync.viewer=viewer", &eb), ERR_OK);
    assert_int_equal(oidc_map_check("g=admin,h=viewer", &eb), ERR_OK);
    assert_int_equal(oidc_map_check("", &eb), ERR_INVAL);
    assert_int_equal(oidc_map_check("g=owner", &eb), ERR_INVAL);
    assert_int_equal(oidc_map_check("g admin", &eb), ERR_INVAL);
    assert_int_equal(oidc_map_check("g<x>=admin", &eb), ERR_INVAL);
    assert_string_equal(oidc_map_role("g-admins=admin", &c), "admin"); /* any case */
    assert_string_equal(oidc_map_role("memsync.viewer=viewer,g-y=admin", &c), "viewer");
    /* admin wins over viewer whatever the order */
    assert_string_equal(oidc_map_role("memsync.viewer=viewer\ng-x=admin", &c), "admin");
    assert_null(oidc_map_role("g-y=admin,memsync.admin=admin", &c));
    assert_null(oidc_map_role(NULL, &c));
}

static void
test_pkce_and_url(void **state)
{
    char chal[OIDC_RANDOM_LEN + 1], r1[OIDC_RANDOM_LEN + 1], r2[OIDC_RANDOM_LEN + 1], *url;

    (void)state;
    /* base64url(SHA-256(verifier)), checked against Python's hashlib. */
    oidc_pkce_challenge("dBjftJeZ4CVP-mJ92p6WGnK9lz2yQdEXHHfvGqS8c3bvC24", chal);
    assert_string_equal(chal, "86nhENEJcfcihlheuvnWrnxopgDJ5Cr3Brm6XlFpbmU");
    oidc_random(r1);
    oidc_random(r2);
    assert_int_equal(strlen(r1), OIDC_RANDOM_LEN);
    assert_string_not_equal(r1, r2);
    url = oidc_authorize_url("https://login.example.test/t/oauth2/v2.0/authorize", CLIENT,
                             "https://m.example/auth/sso/callback", "st", "nn", chal);
    assert_non_null(strstr(url, "?client_id=" CLIENT "&response_type=code"));
    assert_non_null(strstr(url, "redirect_uri=https%3A%2F%2Fm.example%2Fauth%2Fsso%2Fcallback"));
    assert_non_null(strstr(url, "&code_challenge_method=S256"));
    free(url);
}

static void
test_pending(void **state)
{
    struct oidc_pending p, q;
    char cookie[OIDC_RANDOM_LEN + 1];
    struct errbuf eb = {0};

    (void)state;
    oidc_pending_reset();
    assert_int_equal(oidc_pending_start(7, "/clients", NOW, &p, cookie, &eb), ERR_OK);
    assert_int_equal(oidc_pending_take("nope", NOW, &q, &eb), ERR_AUTH);
    assert_int_equal(oidc_pending_take(cookie, NOW + 5, &q, &eb), ERR_OK);
    assert_int_equal(q.account_id, 7);
    assert_string_equal(q.state, p.state);
    assert_string_equal(q.nonce, p.nonce);
    assert_string_equal(q.verifier, p.verifier);
    assert_string_equal(q.next, "/clients");
    /* used once */
    assert_int_equal(oidc_pending_take(cookie, NOW + 6, &q, &eb), ERR_AUTH);
    /* expires */
    assert_int_equal(oidc_pending_start(7, NULL, NOW, &p, cookie, &eb), ERR_OK);
    assert_int_equal(oidc_pending_take(cookie, NOW + OIDC_PENDING_TTL + 1, &q, &eb), ERR_AUTH);
    /* a full table of live ones refuses more */
    for (int i = 0; i < OIDC_PENDING_MAX; i++)
        assert_int_equal(oidc_pending_start(1, NULL, NOW, &p, cookie, &eb), ERR_OK);
    assert_int_equal(oidc_pending_start(1, NULL, NOW, &p, cookie, &eb), ERR_THROTTLED);
    /* expired ones make room */
    assert_int_equal(oidc_pending_start(1, NULL, NOW + OIDC_PENDING_TTL + 1, &p, cookie, &eb),
                     ERR_OK);
    oidc_pending_reset();
}

static int
teardown_all(void **state)
{
    (void)state;
    json_decref(key1);
    json_decref(key2);
    return 0;
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),          cmocka_unit_test(test_claim_refusals),
        cmocka_unit_test(test_clock_skew),     cmocka_unit_test(test_signature_and_algorithm),
        cmocka_unit_test(test_rotated_keys),   cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_groups_overage), cmocka_unit_test(test_role_map),
        cmocka_unit_test(test_pkce_and_url),   cmocka_unit_test(test_pending),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, setup, teardown_all);
}
