/* test_totp.c - RFC 6238 appendix B vectors through liboath, the ±1 step window, replay refusal,
 * secrets, otpauth URIs and the QR code SVG. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "auth.h"
#include "err.h"
#include "totp.h"

/* RFC 6238 appendix B: the seeds are the ASCII digits, 20, 32 and 64 bytes long. */
static void
test_rfc6238_vectors(void **state)
{
    static const char seed[] = "1234567890123456789012345678901234567890123456789012345678901234";
    static const struct {
        long long t;
        const char *sha1, *sha256, *sha512;
    } v[] = {
        {59, "94287082", "46119246", "90693936"},
        {1111111109, "07081804", "68084774", "25091201"},
        {1111111111, "14050471", "67062674", "99943326"},
        {1234567890, "89005924", "91819424", "93441116"},
        {2000000000, "69279037", "90698825", "38618901"},
        {20000000000LL, "65353130", "77737706", "47863826"},
    };
    struct errbuf eb = {0};
    char out[9];

    (void)state;
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        assert_int_equal(totp_code_raw(seed, 20, (time_t)v[i].t, 8, 1, out, &eb), ERR_OK);
        assert_string_equal(out, v[i].sha1);
        assert_int_equal(totp_code_raw(seed, 32, (time_t)v[i].t, 8, 256, out, &eb), ERR_OK);
        assert_string_equal(out, v[i].sha256);
        assert_int_equal(totp_code_raw(seed, 64, (time_t)v[i].t, 8, 512, out, &eb), ERR_OK);
        assert_string_equal(out, v[i].sha512);
    }
    assert_int_equal(totp_code_raw(seed, 20, 59, 8, 384, out, &eb), ERR_INVAL);
    assert_int_equal(totp_code_raw(seed, 20, 59, 9, 1, out, &eb), ERR_INVAL);
}

/* The base32 form of the RFC seed, as an authenticator app is given it: 6-digit codes are the
 * last 6 digits of the 8-digit vectors. */
static void
test_code_base32(void **state)
{
    struct errbuf eb = {0};
    char out[TOTP_DIGITS + 1];

    (void)state;
    assert_int_equal(totp_code("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ", 59, out, &eb), ERR_OK);
    assert_string_equal(out, "287082");
    /* lower case, spaces and padding are accepted */
    assert_int_equal(totp_code("gezd gnbv gy3t qojq gezd gnbv gy3t qojq", 1111111109, out, &eb),
                     ERR_OK);
    assert_string_equal(out, "081804");
    assert_int_equal(totp_code("not base32!", 59, out, &eb), ERR_PARSE);
    assert_int_equal(totp_code("", 59, out, &eb), ERR_PARSE);
    assert_int_equal(totp_code(NULL, 59, out, &eb), ERR_PARSE);
}

static void
test_verify_window_and_replay(void **state)
{
    const char *sec = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
    struct errbuf eb = {0};
    char prev[TOTP_DIGITS + 1], cur[TOTP_DIGITS + 1], next[TOTP_DIGITS + 1], far[TOTP_DIGITS + 1];
    time_t now = 1111111111; /* step 37037037 */
    long long step = 0, s = totp_step(now);

    (void)state;
    assert_int_equal(s, 37037037);
    assert_int_equal(totp_code(sec, now - TOTP_STEP, prev, &eb), ERR_OK);
    assert_int_equal(totp_code(sec, now, cur, &eb), ERR_OK);
    assert_int_equal(totp_code(sec, now + TOTP_STEP, next, &eb), ERR_OK);
    assert_int_equal(totp_code(sec, now + 2 * TOTP_STEP, far, &eb), ERR_OK);

    assert_int_equal(totp_verify(sec, now, cur, -1, &step, &eb), ERR_OK);
    assert_int_equal(step, s);
    assert_int_equal(totp_verify(sec, now, prev, -1, &step, &eb), ERR_OK);
    assert_int_equal(step, s - 1);
    assert_int_equal(totp_verify(sec, now, next, -1, &step, &eb), ERR_OK);
    assert_int_equal(step, s + 1);
    /* two steps away is outside the window */
    assert_int_equal(totp_verify(sec, now, far, -1, &step, &eb), ERR_AUTH);
    assert_int_equal(step, -1);
    assert_non_null(strstr(eb.msg, "wrong or expired"));

    /* replay: the step used last (or an earlier one) is refused, a later one is accepted */
    assert_int_equal(totp_verify(sec, now, cur, s, &step, &eb), ERR_AUTH);
    assert_non_null(strstr(eb.msg, "already used"));
    assert_null(strstr(eb.msg, cur));
    assert_int_equal(totp_verify(sec, now, prev, s, &step, &eb), ERR_AUTH);
    assert_int_equal(totp_verify(sec, now, next, s, &step, &eb), ERR_OK);
    assert_int_equal(step, s + 1);

    /* malformed codes */
    assert_int_equal(totp_verify(sec, now, "12345", -1, &step, &eb), ERR_AUTH);
    assert_int_equal(totp_verify(sec, now, "1234567", -1, &step, &eb), ERR_AUTH);
    assert_int_equal(totp_verify(sec, now, "12a456", -1, &step, &eb), ERR_AUTH);
    assert_int_equal(totp_verify(sec, now, NULL, -1, &step, &eb), ERR_AUTH);
    assert_int_equal(totp_verify("!!", now, cur, -1, &step, &eb), ERR_PARSE);
}

static void
test_secret_new(void **state)
{
    struct errbuf eb = {0};
    char a[TOTP_SECRET_MAX], b[TOTP_SECRET_MAX], code[TOTP_DIGITS + 1];
    long long step;

    (void)state;
    assert_int_equal(totp_secret_new(a, &eb), ERR_OK);
    assert_int_equal(totp_secret_new(b, &eb), ERR_OK);
    assert_int_equal(strlen(a), 32); /* 20 bytes = 160 bits = 32 base32 characters */
    assert_int_equal(strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZ234567"), 32);
    assert_string_not_equal(a, b);
    assert_int_equal(totp_code(a, 1700000000, code, &eb), ERR_OK);
    assert_int_equal(totp_verify(a, 1700000000, code, -1, &step, &eb), ERR_OK);
}

static void
test_uri(void **state)
{
    struct errbuf eb = {0};
    char *uri = NULL;

    (void)state;
    assert_int_equal(totp_uri("memsync", "ann@msp.example", "JBSWY3DPEHPK3PXP", &uri, &eb), ERR_OK);
    assert_string_equal(uri, "otpauth://totp/memsync:ann%40msp.example?secret=JBSWY3DPEHPK3PXP"
                             "&issuer=memsync&algorithm=SHA1&digits=6&period=30");
    free(uri);
    uri = NULL;
    assert_int_equal(totp_uri("Acme MSP", "a b&c", "JBSWY3DPEHPK3PXP", &uri, &eb), ERR_OK);
    assert_non_null(strstr(uri, "/Acme%20MSP:a%20b%26c?"));
    assert_non_null(strstr(uri, "&issuer=Acme%20MSP&"));
    free(uri);
    uri = NULL;
    assert_int_equal(totp_uri("a:b", "x", "JBSWY3DPEHPK3PXP", &uri, &eb), ERR_INVAL);
    assert_null(uri);
    char longname[600];
    memset(longname, 'x', sizeof longname - 1);
    longname[sizeof longname - 1] = '\0';
    assert_int_equal(totp_uri("memsync", longname, "JBSWY3DPEHPK3PXP", &uri, &eb), ERR_TOOBIG);
    assert_null(uri);
}

static void
test_qr_svg(void **state)
{
    struct errbuf eb = {0};
    char *svg = NULL;
    const char *uri = "otpauth://totp/memsync:ann?secret=JBSWY3DPEHPK3PXP&issuer=memsync"
                      "&algorithm=SHA1&digits=6&period=30";

    (void)state;
    assert_int_equal(totp_qr_svg(uri, &svg, &eb), ERR_OK);
    assert_non_null(svg);
    assert_true(strncmp(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\"", 39) == 0);
    assert_non_null(strstr(svg, "</svg>"));
    assert_non_null(strstr(svg, "M4 4h1v1h-1z")); /* the top-left finder pattern's corner */
    /* self-contained: no links, images or scripts */
    assert_null(strstr(svg, "href"));
    assert_null(strstr(svg, "<image"));
    assert_null(strstr(svg, "<script"));
    /* the secret is not written into the SVG as text */
    assert_null(strstr(svg, "JBSWY3DPEHPK3PXP"));
    free(svg);
    svg = NULL;
    assert_int_equal(totp_qr_svg("", &svg, &eb), ERR_INVAL);
    assert_null(svg);
}

static void
test_recovery_codes(void **state)
{
    struct errbuf eb = {0};
    char a[TOTP_RECOVERY_LEN], b[TOTP_RECOVERY_LEN], n[TOTP_RECOVERY_LEN], typed[32];
    char hash[AUTH_HASH_MAX];

    (void)state;
    totp_recovery_new(a);
    totp_recovery_new(b);
    assert_int_equal(strlen(a), 11);
    assert_int_equal(a[5], '-');
    assert_int_equal(strspn(a, "23456789abcdefghjkmnpqrstuvwxyz"), 5);
    assert_int_equal(strspn(a + 6, "23456789abcdefghjkmnpqrstuvwxyz"), 5);
    assert_string_not_equal(a, b);
    assert_int_equal(totp_recovery_norm(a, n), 1);
    assert_string_equal(n, a);

    /* as typed: upper case, spaces, no dash */
    assert_int_equal(totp_recovery_norm(" AB2CD 3EFGH ", n), 1);
    assert_string_equal(n, "ab2cd-3efgh");
    assert_int_equal(totp_recovery_norm("ab2cd3efgh", n), 1);
    assert_string_equal(n, "ab2cd-3efgh");
    /* look-alikes, wrong lengths and other characters are refused */
    assert_int_equal(totp_recovery_norm("ab2cd-3efg0", n), 0);
    assert_string_equal(n, "");
    assert_int_equal(totp_recovery_norm("ab2cd-3efg", n), 0);
    assert_int_equal(totp_recovery_norm("ab2cd-3efghj", n), 0);
    assert_int_equal(totp_recovery_norm("ab2cd-3ef;h", n), 0);
    assert_int_equal(totp_recovery_norm("", n), 0);
    assert_int_equal(totp_recovery_norm(NULL, n), 0);

    /* stored hashed with the password hash; the typed form checks against it once normalised */
    assert_int_equal(auth_password_hash(a, hash, &eb), ERR_OK);
    snprintf(typed, sizeof typed, "%.5s %s", a, a + 6);
    for (char *p = typed; *p != '\0'; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    assert_int_equal(totp_recovery_norm(typed, n), 1);
    assert_int_equal(auth_password_check(hash, n), 1);
    assert_int_equal(auth_password_check(hash, b), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rfc6238_vectors),
        cmocka_unit_test(test_code_base32),
        cmocka_unit_test(test_verify_window_and_replay),
        cmocka_unit_test(test_secret_new),
        cmocka_unit_test(test_uri),
        cmocka_unit_test(test_qr_svg),
        cmocka_unit_test(test_recovery_codes),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
