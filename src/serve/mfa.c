/* mfa.c - second factor: enrolment, checks, recovery codes, pending sign-ins (see mfa.h). */
#include "mfa.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "clock.h"
#include "log.h"

#define SEAL_TABLE  "app_user"
#define SEAL_COLUMN "totp_secret"

/* ---- pending sign-ins -------------------------------------------------------------------- */

struct pending {
    char digest[AUTH_TOKEN_HEX + 1]; /* "" = free */
    int64_t expires;
    int tries;
    enum mfa_stage stage;
    struct auth_principal p;
    char next[MFA_NEXT_MAX];
};

static pthread_mutex_t pending_mu = PTHREAD_MUTEX_INITIALIZER;
static struct pending pendings[MFA_PENDING_MAX];

/* The slot of digest (locked), or NULL. Expired slots are freed on the way. */
static struct pending *
pending_find(const char *digest, int64_t now)
{
    for (size_t i = 0; i < MFA_PENDING_MAX; i++) {
        struct pending *x = &pendings[i];

        if (x->digest[0] != '\0' && x->expires <= now) {
            sodium_memzero(x, sizeof *x);
            continue;
        }
        if (x->digest[0] != '\0' && sodium_memcmp(x->digest, digest, AUTH_TOKEN_HEX) == 0)
            return x;
    }
    return NULL;
}

static int
token_ok(const char *token)
{
    return token != NULL && strlen(token) == AUTH_TOKEN_HEX &&
           strspn(token, "0123456789abcdef") == AUTH_TOKEN_HEX;
}

int
mfa_pending_start(const struct auth_principal *p, enum mfa_stage stage, const char *next,
                  char *token_out, struct errbuf *eb)
{
    unsigned char raw[AUTH_TOKEN_HEX / 2];
    char digest[AUTH_TOKEN_HEX + 1];
    struct pending *slot = NULL;
    int64_t now = clock_now();

    token_out[0] = '\0';
    randombytes_buf(raw, sizeof raw);
    sodium_bin2hex(token_out, AUTH_TOKEN_HEX + 1, raw, sizeof raw);
    sodium_memzero(raw, sizeof raw);
    auth_digest(token_out, digest);
    pthread_mutex_lock(&pending_mu);
    (void)pending_find(digest, now); /* frees the expired ones */
    for (size_t i = 0; i < MFA_PENDING_MAX && slot == NULL; i++)
        if (pendings[i].digest[0] == '\0')
            slot = &pendings[i];
    if (slot != NULL) {
        memset(slot, 0, sizeof *slot);
        memcpy(slot->digest, digest, sizeof slot->digest);
        slot->expires = now + MFA_PENDING_TTL;
        slot->stage = stage;
        slot->p = *p;
        memset(slot->p.csrf, 0, sizeof slot->p.csrf);
        snprintf(slot->next, sizeof slot->next, "%s", next != NULL ? next : "/assets");
    }
    pthread_mutex_unlock(&pending_mu);
    if (slot == NULL) {
        sodium_memzero(token_out, AUTH_TOKEN_HEX + 1);
        return err_set(eb, ERR_THROTTLED,
                       "too many sign-ins are waiting for their second factor; try again in a "
                       "few minutes");
    }
    return ERR_OK;
}

int
mfa_pending_get(const char *token, struct auth_principal *p, enum mfa_stage *stage, char *next,
                struct errbuf *eb)
{
    char digest[AUTH_TOKEN_HEX + 1], form[AUTH_TOKEN_HEX + 16];
    struct pending *x;

    memset(p, 0, sizeof *p);
    *stage = MFA_NONE;
    next[0] = '\0';
    if (!token_ok(token))
        return err_set(eb, ERR_AUTH, "sign in first");
    auth_digest(token, digest);
    pthread_mutex_lock(&pending_mu);
    x = pending_find(digest, clock_now());
    if (x != NULL) {
        *p = x->p;
        *stage = x->stage;
        memcpy(next, x->next, MFA_NEXT_MAX);
    }
    pthread_mutex_unlock(&pending_mu);
    if (x == NULL)
        return err_set(eb, ERR_AUTH, "this sign-in expired; enter your password again");
    /* The pending page's form token: a digest only the holder of the cookie can know. */
    snprintf(form, sizeof form, "mfa-form:%s", token);
    auth_digest(form, p->csrf);
    sodium_memzero(form, sizeof form);
    return ERR_OK;
}

int
mfa_pending_failed(const char *token)
{
    char digest[AUTH_TOKEN_HEX + 1];
    struct pending *x;
    int ended = 1;

    if (!token_ok(token))
        return 1;
    auth_digest(token, digest);
    pthread_mutex_lock(&pending_mu);
    x = pending_find(digest, clock_now());
    if (x != NULL && ++x->tries < MFA_PENDING_TRIES)
        ended = 0;
    else if (x != NULL)
        sodium_memzero(x, sizeof *x);
    pthread_mutex_unlock(&pending_mu);
    return ended;
}

void
mfa_pending_end(const char *token)
{
    char digest[AUTH_TOKEN_HEX + 1];
    struct pending *x;

    if (!token_ok(token))
        return;
    auth_digest(token, digest);
    pthread_mutex_lock(&pending_mu);
    x = pending_find(digest, clock_now());
    if (x != NULL)
        sodium_memzero(x, sizeof *x);
    pthread_mutex_unlock(&pending_mu);
}

void
mfa_pending_reset(void)
{
    pthread_mutex_lock(&pending_mu);
    sodium_memzero(pendings, sizeof pendings);
    pthread_mutex_unlock(&pending_mu);
}

/* ---- state, checks ----------------------------------------------------------------------- */

int
mfa_stage_of(struct store *st, int64_t user_id, enum mfa_stage *stage, struct errbuf *eb)
{
    struct user_totp t;
    int rc = store_totp_get(st, user_id, &t, eb);

    *stage = MFA_NONE;
    if (rc != ERR_OK)
        return rc;
    if (t.enrolled_at != TS_NULL)
        *stage = MFA_CODE;
    else if (t.require)
        *stage = MFA_ENROL;
    user_totp_clear(&t);
    return ERR_OK;
}

/* The user's secret in sodium memory (vault_wipe it). */
static int
open_secret(const struct vault *v, const struct user_totp *t, char **plain, struct errbuf *eb)
{
    *plain = NULL;
    if (t->secret_sealed == NULL)
        return err_set(eb, ERR_NOTFOUND, "no second factor is set up");
    return vault_unseal(v, SEAL_TABLE, t->user_id, SEAL_COLUMN, t->secret_sealed, plain, eb);
}

/* A recovery code: the first unused hash it matches is used up. ERR_AUTH when none. Every
 * stored hash is checked, so the time taken does not say which one matched. */
static int
check_recovery(struct store *st, const struct user_totp *t, const char *canon, struct errbuf *eb)
{
    int64_t hit = -1;

    for (size_t i = 0; i < t->ncodes; i++)
        if (t->code_hash[i] != NULL && auth_password_check(t->code_hash[i], canon) && hit < 0)
            hit = t->code_id[i];
    if (hit < 0)
        return err_set(eb, ERR_AUTH, "wrong or already used recovery code");
    if (store_totp_recovery_use(st, t->user_id, hit, clock_now(), eb) != ERR_OK)
        return err_set(eb, ERR_AUTH, "wrong or already used recovery code");
    return ERR_OK;
}

/* A TOTP code against t, its step recorded. */
static int
check_code(struct store *st, const struct vault *v, const struct user_totp *t, const char *code,
           struct errbuf *eb)
{
    char *plain = NULL;
    long long step = -1;
    int rc;

    if ((rc = open_secret(v, t, &plain, eb)) != ERR_OK)
        return rc;
    rc = totp_verify(plain, (time_t)clock_now(), code, t->last_step, &step, eb);
    vault_wipe(plain);
    if (rc == ERR_OK)
        rc = store_totp_use_step(st, t->user_id, step, eb);
    return rc;
}

int
mfa_check(struct store *st, const struct vault *v, const char *ip, const struct auth_principal *p,
          const char *input, int *recovery, struct errbuf *eb)
{
    struct user_totp t;
    char canon[TOTP_RECOVERY_LEN], digits[TOTP_DIGITS + 1];
    size_t n = 0;
    int64_t now = clock_now();
    int rc;

    *recovery = 0;
    if (!auth_limit_login_allowed(ip, p->name, now)) {
        log_warn("second factor refused: too many failures user=%s ip=%s", p->name, ip ? ip : "?");
        return err_set(eb, ERR_THROTTLED, "too many failed sign-ins; wait %d minutes and try again",
                       AUTH_FAIL_WINDOW / 60);
    }
    if ((rc = store_totp_get(st, p->user_id, &t, eb)) != ERR_OK)
        return rc;
    if (t.enrolled_at == TS_NULL) {
        rc = err_set(eb, ERR_NOTFOUND, "no second factor is set up");
        goto out;
    }
    /* Spaces in a typed code ("123 456") are dropped. */
    for (const char *c = input != NULL ? input : ""; *c != '\0' && n < sizeof digits - 1; c++)
        if (*c != ' ')
            digits[n++] = *c;
    digits[n] = '\0';
    if (n == TOTP_DIGITS && strspn(digits, "0123456789") == TOTP_DIGITS) {
        rc = check_code(st, v, &t, digits, eb);
    } else if (totp_recovery_norm(input, canon)) {
        rc = check_recovery(st, &t, canon, eb);
        *recovery = rc == ERR_OK;
    } else {
        rc = err_set(eb, ERR_AUTH,
                     "enter the %d-digit code of your authenticator app or a "
                     "recovery code",
                     TOTP_DIGITS);
    }
    if (rc == ERR_AUTH) {
        auth_limit_login_failed(ip, p->name, now);
        log_info("second factor failed user=%s ip=%s", p->name, ip ? ip : "?");
    } else if (rc == ERR_OK && *recovery) {
        log_warn("signed in with a recovery code user=%s ip=%s left=%zu", p->name, ip ? ip : "?",
                 t.ncodes > 0 ? t.ncodes - 1 : 0);
    }
out:
    sodium_memzero(canon, sizeof canon);
    sodium_memzero(digits, sizeof digits);
    user_totp_clear(&t);
    return rc;
}

/* ---- enrolment --------------------------------------------------------------------------- */

int
mfa_enrol_secret(struct store *st, const struct vault *v, int64_t user_id,
                 char secret[TOTP_SECRET_MAX], struct errbuf *eb)
{
    struct user_totp t;
    char *plain = NULL, *sealed = NULL;
    int rc;

    secret[0] = '\0';
    if ((rc = store_totp_get(st, user_id, &t, eb)) != ERR_OK)
        return rc;
    if (t.enrolled_at != TS_NULL) {
        rc = err_set(eb, ERR_EXISTS, "the second factor is already set up; turn it off first");
        goto out;
    }
    if (t.secret_sealed != NULL) { /* an enrolment under way: show the same secret again */
        if ((rc = open_secret(v, &t, &plain, eb)) == ERR_OK) {
            if (strlen(plain) < TOTP_SECRET_MAX)
                memcpy(secret, plain, strlen(plain) + 1);
            else
                rc = err_set(eb, ERR_PARSE, "the stored TOTP secret is too long");
            goto out;
        }
        err_clear(eb); /* sealed under a lost key: start over */
    }
    if ((rc = totp_secret_new(secret, eb)) != ERR_OK ||
        (rc = vault_seal(v, SEAL_TABLE, user_id, SEAL_COLUMN, secret, &sealed, eb)) != ERR_OK ||
        (rc = store_totp_begin(st, user_id, sealed, eb)) != ERR_OK)
        goto out;
out:
    if (rc != ERR_OK)
        sodium_memzero(secret, TOTP_SECRET_MAX);
    vault_wipe(plain);
    free(sealed);
    user_totp_clear(&t);
    return rc;
}

int
mfa_enrol_confirm(struct store *st, const struct vault *v, int64_t user_id, const char *code,
                  char codes[TOTP_RECOVERY_CODES][TOTP_RECOVERY_LEN], struct errbuf *eb)
{
    struct user_totp t;
    char hashes[TOTP_RECOVERY_CODES][AUTH_HASH_MAX];
    const char *hp[TOTP_RECOVERY_CODES];
    char *plain = NULL;
    long long step = -1;
    int rc;

    memset(codes, 0, sizeof(char[TOTP_RECOVERY_CODES][TOTP_RECOVERY_LEN]));
    if ((rc = store_totp_get(st, user_id, &t, eb)) != ERR_OK)
        return rc;
    if (t.enrolled_at != TS_NULL) {
        rc = err_set(eb, ERR_EXISTS, "the second factor is already set up");
        goto out;
    }
    if (t.secret_sealed == NULL) {
        rc = err_set(eb, ERR_NOTFOUND, "no second factor is being set up; start again");
        goto out;
    }
    if ((rc = open_secret(v, &t, &plain, eb)) != ERR_OK)
        goto out;
    rc = totp_verify(plain, (time_t)clock_now(), code, -1, &step, eb);
    vault_wipe(plain);
    if (rc != ERR_OK)
        goto out;
    for (int i = 0; rc == ERR_OK && i < TOTP_RECOVERY_CODES; i++) {
        totp_recovery_new(codes[i]);
        rc = auth_password_hash(codes[i], hashes[i], eb);
        hp[i] = hashes[i];
    }
    if (rc == ERR_OK)
        rc = store_totp_enrol(st, user_id, step, clock_now(), hp, TOTP_RECOVERY_CODES, eb);
    sodium_memzero(hashes, sizeof hashes);
    if (rc == ERR_OK)
        log_info("second factor set up user_id=%" PRId64, user_id);
out:
    if (rc != ERR_OK)
        sodium_memzero(codes, sizeof(char[TOTP_RECOVERY_CODES][TOTP_RECOVERY_LEN]));
    user_totp_clear(&t);
    return rc;
}

int
mfa_disable(struct store *st, const struct vault *v, const char *ip, const struct auth_principal *p,
            const char *code, struct errbuf *eb)
{
    int recovery = 0;
    int rc = mfa_check(st, v, ip, p, code, &recovery, eb);

    if (rc == ERR_OK)
        rc = store_totp_clear(st, p->user_id, eb);
    if (rc == ERR_OK)
        log_info("second factor turned off user=%s", p->name);
    return rc;
}

/* ---- key rotation ------------------------------------------------------------------------ */

struct reseal {
    const struct vault *from, *to;
    int64_t *ids;
    char **sealed;
    size_t n, cap;
    struct errbuf *eb;
};

static int
reseal_cb(void *arg, int64_t user_id, const char *sealed)
{
    struct reseal *r = arg;
    int rc;

    if (r->n == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 16;
        int64_t *ids = realloc(r->ids, cap * sizeof *ids);
        char **s2;

        if (ids == NULL)
            return err_set(r->eb, ERR_NOMEM, "out of memory");
        r->ids = ids;
        if ((s2 = realloc(r->sealed, cap * sizeof *s2)) == NULL)
            return err_set(r->eb, ERR_NOMEM, "out of memory");
        r->sealed = s2;
        r->cap = cap;
    }
    rc = vault_reseal(r->from, r->to, SEAL_TABLE, user_id, SEAL_COLUMN, sealed, &r->sealed[r->n],
                      r->eb);
    if (rc == ERR_OK)
        r->ids[r->n++] = user_id;
    return rc;
}

int
mfa_reseal_all(struct store *st, const struct vault *from, const struct vault *to,
               struct errbuf *eb)
{
    struct reseal r = {from, to, NULL, NULL, 0, 0, eb};
    int rc;

    /* Read first, write after: no write while the read's statement is open. */
    rc = store_totp_secrets_each(st, reseal_cb, &r, eb);
    for (size_t i = 0; rc == ERR_OK && i < r.n; i++)
        rc = store_totp_set_sealed(st, r.ids[i], r.sealed[i], eb);
    for (size_t i = 0; i < r.n; i++)
        free(r.sealed[i]);
    free(r.sealed);
    free(r.ids);
    return rc;
}
