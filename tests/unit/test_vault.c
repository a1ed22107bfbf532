/* test_vault.c - sealing, associated-data binding, key files and the environment key. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "err.h"
#include "vault.h"

#define SECRET "s3cr3t-Value~with.symbols_0123456789"

struct fx {
    char dir[64];
    char path[128];
    struct vault *v;
};

static int
setup(void **state)
{
    struct fx *fx = calloc(1, sizeof *fx);
    struct errbuf eb = {0};

    assert_non_null(fx);
    unsetenv("MEMSYNC_MASTER_KEY");
    snprintf(fx->dir, sizeof fx->dir, "/tmp/memsync-vault-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof fx->path, "%s/memsync.db.key", fx->dir);
    assert_int_equal(vault_open(&fx->v, fx->path, 1, &eb), ERR_OK);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;
    char p[160];

    vault_close(fx->v);
    unlink(fx->path);
    snprintf(p, sizeof p, "%s/other.key", fx->dir);
    unlink(p);
    rmdir(fx->dir);
    free(fx);
    unsetenv("MEMSYNC_MASTER_KEY");
    return 0;
}

static void
test_round_trip(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    char *env = NULL, *env2 = NULL, *pt = NULL;

    assert_int_equal(vault_seal(fx->v, "integrations", 7, "partner_app_secret", SECRET, &env, &eb),
                     ERR_OK);
    assert_true(strncmp(env, "v1:", 3) == 0);
    assert_memory_equal(env + 3, vault_key_id(fx->v), 8);
    assert_int_equal(env[11], ':');
    assert_null(strstr(env, SECRET));
    assert_null(strstr(env, "s3cr3t"));
    assert_int_equal(vault_unseal(fx->v, "integrations", 7, "partner_app_secret", env, &pt, &eb),
                     ERR_OK);
    assert_string_equal(pt, SECRET);
    /* A fresh nonce each time: the same secret never seals to the same text. */
    assert_int_equal(vault_seal(fx->v, "integrations", 7, "partner_app_secret", SECRET, &env2, &eb),
                     ERR_OK);
    assert_string_not_equal(env, env2);
    vault_wipe(pt);
    vault_wipe(NULL);
    free(env);
    free(env2);
}

static void
test_ad_binding(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    char *env = NULL, *pt = NULL;

    assert_int_equal(vault_seal(fx->v, "integrations", 7, "partner_app_secret", SECRET, &env, &eb),
                     ERR_OK);
    assert_int_equal(vault_unseal(fx->v, "integrations", 8, "partner_app_secret", env, &pt, &eb),
                     ERR_CRYPTO);
    assert_null(pt);
    assert_non_null(strstr(eb.msg, "integration 8"));
    assert_null(strstr(eb.msg, SECRET));
    assert_int_equal(vault_unseal(fx->v, "integrations", 7, "sync_app_secret", env, &pt, &eb),
                     ERR_CRYPTO);
    assert_int_equal(vault_unseal(fx->v, "tenants", 7, "partner_app_secret", env, &pt, &eb),
                     ERR_CRYPTO);
    assert_null(pt);
    free(env);
}

static void
test_wrong_key(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct vault *other = NULL;
    char p[160], *env = NULL, *pt = NULL;

    snprintf(p, sizeof p, "%s/other.key", fx->dir);
    assert_int_equal(vault_generate(p, &eb), ERR_OK);
    assert_int_equal(vault_generate(p, &eb), ERR_EXISTS);
    assert_int_equal(vault_open_file(&other, p, &eb), ERR_OK);
    assert_string_not_equal(vault_key_id(other), vault_key_id(fx->v));
    assert_int_equal(vault_seal(fx->v, "integrations", 3, "secret", SECRET, &env, &eb), ERR_OK);
    assert_int_equal(vault_unseal(other, "integrations", 3, "secret", env, &pt, &eb), ERR_CRYPTO);
    assert_null(pt);
    assert_non_null(strstr(eb.msg, "cannot open the stored secret for integration 3"));
    assert_non_null(strstr(eb.msg, "the master key does not match"));
    assert_non_null(strstr(eb.msg, "was the key file replaced?"));

    /* Same key id forged onto the other key's envelope: the AEAD still refuses it. */
    memcpy(env + 3, vault_key_id(other), 8);
    assert_int_equal(vault_unseal(other, "integrations", 3, "secret", env, &pt, &eb), ERR_CRYPTO);
    assert_null(pt);
    free(env);
    env = NULL;

    /* Rotation helper: old envelope resealed under the new key opens there only. */
    assert_int_equal(vault_seal(fx->v, "integrations", 3, "secret", SECRET, &env, &eb), ERR_OK);
    {
        char *re = NULL;
        assert_int_equal(vault_reseal(fx->v, other, "integrations", 3, "secret", env, &re, &eb),
                         ERR_OK);
        assert_int_equal(vault_unseal(other, "integrations", 3, "secret", re, &pt, &eb), ERR_OK);
        assert_string_equal(pt, SECRET);
        vault_wipe(pt);
        pt = NULL;
        assert_int_equal(vault_unseal(fx->v, "integrations", 3, "secret", re, &pt, &eb),
                         ERR_CRYPTO);
        free(re);
    }
    free(env);
    vault_close(other);
}

static void
test_tampered(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    char *env = NULL, *pt = NULL;
    size_t n;

    assert_int_equal(vault_seal(fx->v, "integrations", 1, "secret", SECRET, &env, &eb), ERR_OK);
    n = strlen(env);
    /* Flip one base64 character in the middle of the ciphertext. */
    env[n / 2] = env[n / 2] == 'A' ? 'B' : 'A';
    assert_int_equal(vault_unseal(fx->v, "integrations", 1, "secret", env, &pt, &eb), ERR_CRYPTO);
    assert_null(pt);
    /* Truncated, garbage, other versions. */
    env[20] = '\0';
    assert_int_equal(vault_unseal(fx->v, "integrations", 1, "secret", env, &pt, &eb), ERR_PARSE);
    assert_int_equal(vault_unseal(fx->v, "integrations", 1, "secret", "", &pt, &eb), ERR_PARSE);
    assert_int_equal(vault_unseal(fx->v, "integrations", 1, "secret", "v2:00000000:AAAA", &pt, &eb),
                     ERR_PARSE);
    assert_int_equal(
        vault_unseal(fx->v, "integrations", 1, "secret", "v1:0000000:AAAAAAAAAAAA", &pt, &eb),
        ERR_PARSE);
    assert_int_equal(vault_unseal(fx->v, "integrations", 1, "secret", "plaintext", &pt, &eb),
                     ERR_PARSE);
    assert_null(pt);
    free(env);
}

static void
test_limits(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    char *big = malloc(VAULT_SECRET_MAX + 2), *env = NULL, *pt = NULL;

    assert_non_null(big);
    memset(big, 'x', VAULT_SECRET_MAX);
    big[VAULT_SECRET_MAX] = '\0';
    assert_int_equal(vault_seal(fx->v, "t", 1, "c", big, &env, &eb), ERR_OK);
    assert_int_equal(vault_unseal(fx->v, "t", 1, "c", env, &pt, &eb), ERR_OK);
    assert_int_equal(strlen(pt), VAULT_SECRET_MAX);
    vault_wipe(pt);
    free(env);
    env = NULL;
    big[VAULT_SECRET_MAX] = 'x';
    big[VAULT_SECRET_MAX + 1] = '\0';
    assert_int_equal(vault_seal(fx->v, "t", 1, "c", big, &env, &eb), ERR_TOOBIG);
    assert_null(env);
    assert_int_equal(vault_seal(fx->v, "t", 1, "c", "", &env, &eb), ERR_INVAL);
    assert_null(env);
    free(big);
}

static void
test_key_file_mode(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct vault *v = NULL;
    struct stat st;
    char buf[80];
    int fd;
    ssize_t n;

    assert_int_equal(stat(fx->path, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    fd = open(fx->path, O_RDONLY);
    assert_true(fd >= 0);
    n = read(fd, buf, sizeof buf);
    close(fd);
    assert_int_equal(n, 65); /* 64 hex chars and a newline */
    assert_int_equal(buf[64], '\n');

    /* Reopening the same file gives the same key. */
    assert_int_equal(vault_open(&v, fx->path, 0, &eb), ERR_OK);
    assert_string_equal(vault_key_id(v), vault_key_id(fx->v));
    vault_close(v);
    v = NULL;

    assert_int_equal(chmod(fx->path, 0644), 0);
    assert_int_equal(vault_open(&v, fx->path, 0, &eb), ERR_DENIED);
    assert_null(v);
    assert_non_null(strstr(eb.msg, "chmod 600"));
    assert_non_null(strstr(eb.msg, fx->path));
    assert_int_equal(chmod(fx->path, 0600), 0);
}

static void
test_key_file_missing(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct vault *v = NULL;
    char p[160];
    int fd;

    snprintf(p, sizeof p, "%s/other.key", fx->dir);
    assert_int_equal(vault_open(&v, p, 0, &eb), ERR_NOTFOUND);
    assert_null(v);
    assert_non_null(strstr(eb.msg, "master key file"));
    assert_non_null(strstr(eb.msg, "not found"));
    assert_non_null(strstr(eb.msg, "restore it or set MEMSYNC_MASTER_KEY"));
    assert_int_equal(access(p, F_OK), -1); /* create=0 must not create */

    /* A raw 32-byte key file is accepted too; a short file is not. */
    fd = open(p, O_WRONLY | O_CREAT | O_EXCL, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "0123456789abcdef0123456789abcdef", 32), 32);
    close(fd);
    assert_int_equal(vault_open(&v, p, 0, &eb), ERR_OK);
    vault_close(v);
    v = NULL;
    fd = open(p, O_WRONLY | O_TRUNC);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, "abcd\n", 5), 5);
    close(fd);
    assert_int_equal(vault_open(&v, p, 0, &eb), ERR_PARSE);
    assert_null(v);
}

static void
test_env_key(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct vault *a = NULL, *b = NULL;
    char *env = NULL, *pt = NULL;
    char p[160];

    snprintf(p, sizeof p, "%s/other.key", fx->dir);
    setenv("MEMSYNC_MASTER_KEY", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f",
           1);
    /* The environment key wins; the missing file is neither needed nor created. */
    assert_int_equal(vault_open(&a, p, 1, &eb), ERR_OK);
    assert_int_equal(access(p, F_OK), -1);
    /* The same 32 bytes in base64. */
    setenv("MEMSYNC_MASTER_KEY", "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=", 1);
    assert_int_equal(vault_open(&b, p, 0, &eb), ERR_OK);
    assert_string_equal(vault_key_id(a), vault_key_id(b));
    assert_string_not_equal(vault_key_id(a), vault_key_id(fx->v));
    assert_int_equal(vault_seal(a, "integrations", 2, "secret", SECRET, &env, &eb), ERR_OK);
    assert_int_equal(vault_unseal(b, "integrations", 2, "secret", env, &pt, &eb), ERR_OK);
    assert_string_equal(pt, SECRET);
    vault_wipe(pt);
    free(env);
    vault_close(a);
    vault_close(b);
    b = NULL;

    setenv("MEMSYNC_MASTER_KEY", "not-a-key", 1);
    assert_int_equal(vault_open(&b, p, 0, &eb), ERR_PARSE);
    assert_null(b);
    assert_null(strstr(eb.msg, "not-a-key"));
    setenv("MEMSYNC_MASTER_KEY", "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e",
           1);
    assert_int_equal(vault_open(&b, p, 0, &eb), ERR_PARSE);
    unsetenv("MEMSYNC_MASTER_KEY");
}

/* A key file replaced while the vault is open (key rotate in another process) is read again
 * before the next use; vault_reload forces it; a vault from vault_open_file never reloads. */
static void
test_reload_after_replace(void **state)
{
    struct fx *fx = *state;
    struct errbuf eb = {0};
    struct vault *fixed = NULL, *newv = NULL;
    char other[160], old_id[9], *env = NULL, *env_new = NULL, *pt = NULL;

    snprintf(other, sizeof other, "%s/other.key", fx->dir);
    snprintf(old_id, sizeof old_id, "%s", vault_key_id(fx->v));
    assert_int_equal(vault_open_file(&fixed, fx->path, &eb), ERR_OK);
    assert_int_equal(vault_seal(fx->v, "integration", 1, "sync_app_secret", SECRET, &env, &eb),
                     ERR_OK);
    /* Rotate: a new key file renamed over the old one; the secret re-sealed under it. */
    assert_int_equal(vault_generate(other, &eb), ERR_OK);
    assert_int_equal(vault_open_file(&newv, other, &eb), ERR_OK);
    assert_int_equal(
        vault_reseal(fx->v, newv, "integration", 1, "sync_app_secret", env, &env_new, &eb), ERR_OK);
    assert_int_equal(rename(other, fx->path), 0);
    /* The open vault notices the new file at its next use. */
    assert_int_equal(vault_unseal(fx->v, "integration", 1, "sync_app_secret", env_new, &pt, &eb),
                     ERR_OK);
    assert_string_equal(pt, SECRET);
    vault_wipe(pt);
    pt = NULL;
    assert_string_equal(vault_key_id(fx->v), vault_key_id(newv));
    assert_string_not_equal(vault_key_id(fx->v), old_id);
    /* And says which key a secret of before wants. */
    assert_int_equal(vault_unseal(fx->v, "integration", 1, "sync_app_secret", env, &pt, &eb),
                     ERR_CRYPTO);
    assert_non_null(strstr(eb.msg, old_id));
    /* Forced reload: nothing changed, still fine. */
    assert_int_equal(vault_reload(fx->v, &eb), ERR_OK);
    assert_string_equal(vault_key_id(fx->v), vault_key_id(newv));
    /* vault_open_file's vault keeps its key. */
    assert_string_equal(vault_key_id(fixed), old_id);
    assert_int_equal(vault_reload(fixed, &eb), ERR_OK);
    assert_string_equal(vault_key_id(fixed), old_id);
    vault_close(fixed);
    vault_close(newv);
    free(env);
    free(env_new);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ad_binding, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wrong_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tampered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_limits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_after_replace, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
