/* test_mfa.c - the second factor over a real SQLite store and vault, at fixed times
 * (MEMSYNC_NOW): enrolment and its recovery codes, a code used once, recovery codes used once,
 * the limiter, turning it off, key rotation, and the pending sign-in table (expiry, tries,
 * forged tokens). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "auth.h"
#include "mfa.h"
#include "store.h"
#include "totp.h"
#include "vault.h"

#define T0 INT64_C(1800000000) /* a multiple of 30: the start of a step */

struct fx {
    char dir[64], db[128], key[128], key2[128];
    struct store *st;
    struct vault *v;
    struct auth_principal p;
};

static void
at(int64_t t)
{
    char s[32];

    snprintf(s, sizeof s, "%lld", (long long)t);
    setenv("MEMSYNC_NOW", s, 1);
}

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    struct errbuf eb = {0};
    int64_t acc = 0, uid = 0;

    snprintf(fx->dir, sizeof fx->dir, "/tmp/memsync-mfa-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->db, sizeof fx->db, "%s/m.db", fx->dir);
    snprintf(fx->key, sizeof fx->key, "%s/m.key", fx->dir);
    snprintf(fx->key2, sizeof fx->key2, "%s/m2.key", fx->dir);
    assert_int_equal(store_open(&fx->st, fx->db, &eb), ERR_OK);
    assert_int_equal(vault_generate(fx->key, &eb), ERR_OK);
    assert_int_equal(vault_open_file(&fx->v, fx->key, &eb), ERR_OK);
    assert_int_equal(store_account_ensure(fx->st, "default", &acc, &eb), ERR_OK);
    assert_int_equal(store_user_insert(fx->st, acc, "ana", "viewer", "x", &uid, &eb), ERR_OK);
    fx->p.account_id = acc;
    fx->p.user_id = uid;
    fx->p.role = AUTH_READ;
    snprintf(fx->p.name, sizeof fx->p.name, "ana");
    auth_limit_reset();
    mfa_pending_reset();
    at(T0);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;

    store_close(fx->st);
    vault_close(fx->v);
    unlink(fx->db);
    unlink(fx->key);
    unlink(fx->key2);
    rmdir(fx->dir);
    free(fx);
    unsetenv("MEMSYNC_NOW");
    return 0;
}

/* Enrols fx's user at T0: the secret, and the recovery codes into codes. */
static void
enrol(struct fx *fx, char secret[TOTP_SECRET_MAX],
      char codes[TOTP_RECOVERY_CODES][TOTP_RECOVERY_LEN])
{
    struct errbuf eb = {0};
    char again[TOTP_SECRET_MAX], code[TOTP_DIGITS + 1];

    assert_int_equal(mfa_enrol_secret(fx->st, fx->v, fx->p.user_id, secret, &eb), ERR_OK);
    /* Until confirmed, the page shows the same secret again. */
    assert_int_equal(mfa_enrol_secret(fx->st, fx->v, fx->p.user_id, again, &eb), ERR_OK);
    assert_string_equal(secret, again);
    assert_int_equal(totp_code(secret, T0, code, &eb), ERR_OK);
    code[0] = code[0] == '9' ? '0' : (char)(code[0] + 1); /* a wrong code */
    assert_int_equal(mfa_enrol_confirm(fx->st, fx->v, fx->p.user_id, code, codes, &eb), ERR_AUTH);
    assert_int_equal(totp_code(secret, T0, code, &eb), ERR_OK);
    assert_int_equal(mfa_enrol_confirm(fx->st, fx->v, fx->p.user_id, code, codes, &eb), ERR_OK);
}

static void
test_enrol_and_codes(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    char secret[TOTP_SECRET_MAX], codes[TOTP_RECOVERY_CODES][TOTP_RECOVERY_LEN];
    char code[TOTP_DIGITS + 1], other[TOTP_SECRET_MAX];
    struct user_totp t;
    enum mfa_stage stage;
    int recovery = -1;

    assert_int_equal(mfa_stage_of(fx->st, fx->p.user_id, &stage, &eb), ERR_OK);
    assert_int_equal(stage, MFA_NONE);
    enrol(fx, secret, codes);
    assert_int_equal(mfa_stage_of(fx->st, fx->p.user_id, &stage, &eb), ERR_OK);
    assert_int_equal(stage, MFA_CODE);
    assert_int_equal(mfa_enrol_secret(fx->st, fx->v, fx->p.user_id, other, &eb), ERR_EXISTS);

    /* Stored sealed, codes hashed; ten distinct codes. */
    assert_int_equal(store_totp_get(fx->st, fx->p.user_id, &t, &eb), ERR_OK);
    assert_non_null(strstr(t.secret_sealed, "v1:"));
    assert_null(strstr(t.secret_sealed, secret));
    assert_int_equal(t.ncodes, TOTP_RECOVERY_CODES);
    for (size_t i = 0; i < t.ncodes; i++) {
        assert_non_null(strstr(t.code_hash[i], "$argon2id$"));
        assert_null(strstr(t.code_hash[i], codes[i]));
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(codes[i], codes[j]);
    }
    user_totp_clear(&t);

    /* The code that confirmed the enrolment is used up; the next step's code works once. */
    assert_int_equal(totp_code(secret, T0, code, &eb), ERR_OK);
    assert_int_equal(mfa_check(fx->st, fx->v, "192.0.2.1", &fx->p, code, &recovery, &eb), ERR_AUTH);
    assert_non_null(strstr(eb.msg, "already used"));
    at(T0 + 30);
    assert_int_equal(totp_code(secret, T0 + 30, code, &eb), ERR_OK);
    assert_int_equal(mfa_check(fx->st, fx->v, "192.0.2.1", &fx->p, code, &recovery, &eb), ERR_OK);
    assert_int_equal(recovery, 0);
    assert_int_equal(mfa_check(fx->st, fx->v, "192.0.2.1", &fx->p, code, &recovery, &eb), ERR_AUTH);
    /* A step older than the last one used is refused too, though in the window. */
    assert_int_equal(totp_code(secret, T0, code, &eb), ERR_OK);
    assert_int_equal(mfa_check(fx->st, fx->v, "192.0.2.1", &fx->p, code, &recovery, &eb), ERR_AUTH);
    /* "123 456" is typed with a space sometimes. */
    at(T0 + 60);
    assert_int_equal(totp_code(secret, T0 + 60, code, &eb), ERR_OK);
    {
        char spaced[8] = {code[0], code[1], code[2], ' ', code[3], code[4], code[5], '\0'};

        assert_int_equal(mfa_check(fx->st, fx->v, "192.0.2.1", &fx->p, spaced, &recovery, &eb),
                         ERR_OK);
    }

    /* A recovery code, typed in capitals and without its dash, works once. */
    {
        char typed[TOTP_RECOVERY_LEN];
        size_t n = 0;

        for (const char *c = codes[3]; *c != '\0'; c++)
            if (*c != '-')
                typed[n++] = (char)(*c >= 'a' && *c <= 'z' ? *c - 'a' + 'A' : *c);
        typed[n] = '\0';
        assert_int_equal(mfa_check(fx->st, fx->v, "192.0.2.1", &fx->p, typed, &recovery, &eb),
                         ERR_OK);
        assert_int_equal(recovery, 1);
        assert_int_equal(mfa_check(fx->st, fx->v, "192.0.2.1", &fx->p, codes[3], &recovery, &eb),
                         ERR_AUTH);
        assert_int_equal(recovery, 0);
    }
    assert_int_equal(store_totp_get(fx->st, fx->p.user_id, &t, &eb), ERR_OK);
    assert_int_equal(t.ncodes, TOTP_RECOVERY_CODES - 1);
    user_totp_clear(&t);
    assert_int_equal(mfa_check(fx->st, fx->v, "192.0.2.1", &fx->p, "not a code", &recovery, &eb),
                     ERR_AUTH);
}

static void
test_limiter_disable_reset(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    char secret[TOTP_SECRET_MAX], codes[TOTP_RECOVERY_CODES][TOTP_RECOVERY_LEN];
    char code[TOTP_DIGITS + 1];
    enum mfa_stage stage;
    int recovery = 0;

    enrol(fx, secret, codes);
    at(T0 + 30);
    /* Wrong codes count like wrong passwords: then even the right code is refused. */
    for (int i = 0; i < AUTH_FAIL_MAX; i++)
        assert_int_equal(mfa_check(fx->st, fx->v, "192.0.2.9", &fx->p, "999999", &recovery, &eb),
                         ERR_AUTH);
    assert_int_equal(totp_code(secret, T0 + 30, code, &eb), ERR_OK);
    assert_int_equal(mfa_check(fx->st, fx->v, "192.0.2.9", &fx->p, code, &recovery, &eb),
                     ERR_THROTTLED);
    assert_false(auth_limit_login_allowed("192.0.2.9", "ana", T0 + 30));
    /* From another address the user still gets in. */
    assert_int_equal(mfa_check(fx->st, fx->v, "192.0.2.10", &fx->p, code, &recovery, &eb), ERR_OK);

    /* Off: only with a current code. */
    at(T0 + 60);
    assert_int_equal(mfa_disable(fx->st, fx->v, "192.0.2.10", &fx->p, "999999", &eb), ERR_AUTH);
    assert_int_equal(totp_code(secret, T0 + 60, code, &eb), ERR_OK);
    assert_int_equal(mfa_disable(fx->st, fx->v, "192.0.2.10", &fx->p, code, &eb), ERR_OK);
    assert_int_equal(mfa_stage_of(fx->st, fx->p.user_id, &stage, &eb), ERR_OK);
    assert_int_equal(stage, MFA_NONE);
    assert_int_equal(mfa_check(fx->st, fx->v, "192.0.2.10", &fx->p, code, &recovery, &eb),
                     ERR_NOTFOUND);
    /* The account's rule: a user without a second factor must enrol. */
    assert_int_equal(store_account_require_totp(fx->st, fx->p.account_id, 1, &eb), ERR_OK);
    assert_int_equal(mfa_stage_of(fx->st, fx->p.user_id, &stage, &eb), ERR_OK);
    assert_int_equal(stage, MFA_ENROL);
}

static void
test_reseal(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    char secret[TOTP_SECRET_MAX], codes[TOTP_RECOVERY_CODES][TOTP_RECOVERY_LEN];
    char code[TOTP_DIGITS + 1];
    struct vault *to = NULL;
    int recovery = 0;

    enrol(fx, secret, codes);
    assert_int_equal(vault_generate(fx->key2, &eb), ERR_OK);
    assert_int_equal(vault_open_file(&to, fx->key2, &eb), ERR_OK);
    assert_int_equal(store_tx_begin(fx->st, &eb), ERR_OK);
    assert_int_equal(mfa_reseal_all(fx->st, fx->v, to, &eb), ERR_OK);
    assert_int_equal(store_tx_commit(fx->st, &eb), ERR_OK);
    at(T0 + 30);
    assert_int_equal(totp_code(secret, T0 + 30, code, &eb), ERR_OK);
    /* The old key opens it no more; the new one does. */
    assert_int_equal(mfa_check(fx->st, fx->v, "192.0.2.1", &fx->p, code, &recovery, &eb),
                     ERR_CRYPTO);
    assert_int_equal(mfa_check(fx->st, to, "192.0.2.1", &fx->p, code, &recovery, &eb), ERR_OK);
    vault_close(to);
}

static void
test_pending(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    char tok[AUTH_TOKEN_HEX + 1], tok2[AUTH_TOKEN_HEX + 1], next[MFA_NEXT_MAX];
    char forged[AUTH_TOKEN_HEX + 1];
    struct auth_principal got;
    enum mfa_stage stage;

    assert_int_equal(mfa_pending_start(&fx->p, MFA_CODE, "/clients", tok, &eb), ERR_OK);
    assert_int_equal(strlen(tok), AUTH_TOKEN_HEX);
    assert_int_equal(mfa_pending_get(tok, &got, &stage, next, &eb), ERR_OK);
    assert_true(got.user_id == fx->p.user_id);
    assert_int_equal(stage, MFA_CODE);
    assert_string_equal(next, "/clients");
    assert_int_equal(strlen(got.csrf), AUTH_TOKEN_HEX);
    /* A token one character off, or not hex, names nothing. */
    memcpy(forged, tok, sizeof forged);
    forged[0] = forged[0] == 'a' ? 'b' : 'a';
    assert_int_equal(mfa_pending_get(forged, &got, &stage, next, &eb), ERR_AUTH);
    assert_int_equal(mfa_pending_get("zz", &got, &stage, next, &eb), ERR_AUTH);
    assert_int_equal(mfa_pending_get(NULL, &got, &stage, next, &eb), ERR_AUTH);

    /* MFA_PENDING_TRIES wrong codes end it. */
    for (int i = 1; i < MFA_PENDING_TRIES; i++)
        assert_int_equal(mfa_pending_failed(tok), 0);
    assert_int_equal(mfa_pending_failed(tok), 1);
    assert_int_equal(mfa_pending_get(tok, &got, &stage, next, &eb), ERR_AUTH);

    /* It expires after MFA_PENDING_TTL; ending it forgets it at once. */
    assert_int_equal(mfa_pending_start(&fx->p, MFA_ENROL, NULL, tok, &eb), ERR_OK);
    assert_int_equal(mfa_pending_start(&fx->p, MFA_CODE, NULL, tok2, &eb), ERR_OK);
    at(T0 + MFA_PENDING_TTL - 1);
    assert_int_equal(mfa_pending_get(tok, &got, &stage, next, &eb), ERR_OK);
    assert_int_equal(stage, MFA_ENROL);
    assert_string_equal(next, "/assets");
    mfa_pending_end(tok2);
    assert_int_equal(mfa_pending_get(tok2, &got, &stage, next, &eb), ERR_AUTH);
    at(T0 + MFA_PENDING_TTL);
    assert_int_equal(mfa_pending_get(tok, &got, &stage, next, &eb), ERR_AUTH);

    /* A full table of live ones refuses more; expired ones make room. */
    at(T0 + 1000);
    for (int i = 0; i < MFA_PENDING_MAX; i++)
        assert_int_equal(mfa_pending_start(&fx->p, MFA_CODE, NULL, tok, &eb), ERR_OK);
    assert_int_equal(mfa_pending_start(&fx->p, MFA_CODE, NULL, tok, &eb), ERR_THROTTLED);
    at(T0 + 1000 + MFA_PENDING_TTL);
    assert_int_equal(mfa_pending_start(&fx->p, MFA_CODE, NULL, tok, &eb), ERR_OK);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_enrol_and_codes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limiter_disable_reset, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reseal, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pending, setup, teardown),
    };

    if (sodium_init() < 0)
        return 1;
    return cmocka_run_group_tests(tests, NULL, NULL);
}
