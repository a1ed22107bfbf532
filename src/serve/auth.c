/* auth.c - passwords, sessions, API keys, CSRF and the sign-in limiter. */
#include "auth.h"

#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <sodium.h>

#include "clock.h"
#include "config.h"
#include "log.h"
#include "mem.h"

/* ---- password hashing, at most AUTH_HASH_SLOTS at once ---------------------------------- */

static pthread_mutex_t slot_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t slot_cv = PTHREAD_COND_INITIALIZER;
static int slots_busy;

static void
slot_take(void)
{
    pthread_mutex_lock(&slot_mu);
    while (slots_busy >= AUTH_HASH_SLOTS)
        pthread_cond_wait(&slot_cv, &slot_mu);
    slots_busy++;
    pthread_mutex_unlock(&slot_mu);
}

static void
slot_give(void)
{
    pthread_mutex_lock(&slot_mu);
    slots_busy--;
    pthread_cond_signal(&slot_cv);
    pthread_mutex_unlock(&slot_mu);
}

int
auth_password_policy(const char *pw, struct errbuf *eb)
{
    size_t n = pw != NULL ? strlen(pw) : 0;

    if (n < AUTH_PASSWORD_MIN)
        return err_set(eb, ERR_INVAL, "a password needs at least %d characters", AUTH_PASSWORD_MIN);
    if (n > AUTH_PASSWORD_MAX)
        return err_set(eb, ERR_INVAL, "a password may have at most %d characters",
                       AUTH_PASSWORD_MAX);
    return ERR_OK;
}

int
auth_password_hash(const char *pw, char *out, struct errbuf *eb)
{
    int rc;

    ASSERT(crypto_pwhash_STRBYTES <= AUTH_HASH_MAX);
    slot_take();
    rc = crypto_pwhash_str(out, pw, strlen(pw), crypto_pwhash_OPSLIMIT_INTERACTIVE,
                           crypto_pwhash_MEMLIMIT_INTERACTIVE);
    slot_give();
    if (rc != 0)
        return err_set(eb, ERR_NOMEM, "not enough memory to hash the password");
    return ERR_OK;
}

int
auth_password_check(const char *hash, const char *pw)
{
    int rc;

    if (hash == NULL || pw == NULL || strlen(pw) > AUTH_PASSWORD_MAX)
        return 0;
    slot_take();
    rc = crypto_pwhash_str_verify(hash, pw, strlen(pw));
    slot_give();
    return rc == 0;
}

/* ---- digests and tokens ------------------------------------------------------------------ */

void
auth_digest(const char *s, char *out)
{
    unsigned char h[32];

    crypto_generichash(h, sizeof h, (const unsigned char *)s, strlen(s), NULL, 0);
    sodium_bin2hex(out, AUTH_TOKEN_HEX + 1, h, sizeof h);
}

static void
random_hex(char *out)
{
    unsigned char r[32];

    randombytes_buf(r, sizeof r);
    sodium_bin2hex(out, AUTH_TOKEN_HEX + 1, r, sizeof r);
    sodium_memzero(r, sizeof r);
}

/* Keyed digest, so the CSRF token says nothing about the session id. */
static void
csrf_of(const char *token, char *out)
{
    static const unsigned char key[] = "memsync-csrf-v1-memsync-csrf-v1!";
    unsigned char h[32];

    crypto_generichash(h, sizeof h, (const unsigned char *)token, strlen(token), key, 32);
    sodium_bin2hex(out, AUTH_TOKEN_HEX + 1, h, sizeof h);
}

static int
is_hex_token(const char *s, size_t len)
{
    if (s == NULL || strlen(s) != len)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return 0;
    return 1;
}

int
auth_csrf_ok(const struct auth_principal *p, const char *token)
{
    if (p == NULL || p->csrf[0] == '\0' || token == NULL || strlen(token) != AUTH_TOKEN_HEX)
        return 0;
    return sodium_memcmp(p->csrf, token, AUTH_TOKEN_HEX) == 0;
}

/* ---- sign-in limiter --------------------------------------------------------------------- */

#define LIMIT_SLOTS 1024

struct limit_slot {
    char key[AUTH_LIMIT_KEY_MAX];
    int64_t window_start;
    int fails;
    int max; /* the limit this key is held to (a slot at it is never evicted) */
};

static pthread_mutex_t limit_mu = PTHREAD_MUTEX_INITIALIZER;
static struct limit_slot limits[LIMIT_SLOTS];

/* A slot that may be reused: empty, its window over, or under its limit. */
static int
limit_evictable(const struct limit_slot *l, int64_t now)
{
    return l->key[0] == '\0' || now - l->window_start >= AUTH_FAIL_WINDOW || l->fails < l->max;
}

/* The slot of key; with create, a new one in the oldest evictable slot. NULL when absent (or, with
 * create, when every slot holds a key at its limit: those never give way, so cycling junk names
 * cannot reset a locked user's count). */
static struct limit_slot *
limit_slot(const char *key, int64_t now, int create)
{
    struct limit_slot *victim = NULL;

    for (size_t i = 0; i < LIMIT_SLOTS; i++) {
        struct limit_slot *l = &limits[i];

        if (l->key[0] != '\0' && strcmp(l->key, key) == 0) {
            if (now - l->window_start >= AUTH_FAIL_WINDOW) {
                l->window_start = now;
                l->fails = 0;
            }
            return l;
        }
        if (limit_evictable(l, now) &&
            (victim == NULL || l->key[0] == '\0' ||
             (victim->key[0] != '\0' && l->window_start < victim->window_start)))
            victim = l;
    }
    if (!create || victim == NULL)
        return NULL;
    snprintf(victim->key, sizeof victim->key, "%s", key);
    victim->window_start = now;
    victim->fails = 0;
    victim->max = 1;
    return victim;
}

/* 1 when a slot for a new key could be made. */
static int
limit_room(int64_t now)
{
    for (size_t i = 0; i < LIMIT_SLOTS; i++)
        if (limit_evictable(&limits[i], now))
            return 1;
    return 0;
}

int
auth_limit_allowed(const char *key, int max, int64_t now)
{
    struct limit_slot *l;
    int ok;

    pthread_mutex_lock(&limit_mu);
    l = limit_slot(key, now, 0);
    ok = l != NULL ? l->fails < max : limit_room(now);
    pthread_mutex_unlock(&limit_mu);
    return ok;
}

void
auth_limit_fail(const char *key, int max, int64_t now)
{
    struct limit_slot *l;

    pthread_mutex_lock(&limit_mu);
    l = limit_slot(key, now, 1);
    if (l != NULL) {
        l->fails++;
        l->max = max;
    }
    pthread_mutex_unlock(&limit_mu);
}

void
auth_limit_reset(void)
{
    pthread_mutex_lock(&limit_mu);
    memset(limits, 0, sizeof limits);
    pthread_mutex_unlock(&limit_mu);
}

/* The limiter's name for a client address: IPv6 by its /64 (one host holds a whole /64), an
 * IPv4-mapped IPv6 address as IPv4, anything else as given. */
void
auth_limit_net(const char *ip, char *out, size_t outsz)
{
    unsigned char a[16];

    if (ip == NULL || ip[0] == '\0') {
        snprintf(out, outsz, "?");
        return;
    }
    if (strchr(ip, ':') != NULL && inet_pton(AF_INET6, ip, a) == 1) {
        static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
        char txt[INET6_ADDRSTRLEN];

        if (memcmp(a, mapped, sizeof mapped) == 0) {
            snprintf(out, outsz, "%u.%u.%u.%u", a[12], a[13], a[14], a[15]);
            return;
        }
        memset(a + 8, 0, 8);
        if (inet_ntop(AF_INET6, a, txt, sizeof txt) != NULL) {
            snprintf(out, outsz, "%s/64", txt);
            return;
        }
    }
    snprintf(out, outsz, "%s", ip);
}

/* The three counters of a sign-in: the address, the name from that address, the name from
 * anywhere (looser, so a lockout by name from elsewhere does not shut the real user out). */
static void
limit_keys(const char *ip, const char *name, char *ipkey, char *pairkey, char *userkey)
{
    char net[INET6_ADDRSTRLEN + 4];

    auth_limit_net(ip, net, sizeof net);
    snprintf(ipkey, AUTH_LIMIT_KEY_MAX, "ip:%s", net);
    snprintf(pairkey, AUTH_LIMIT_KEY_MAX, "pair:%s@%s", name, net);
    snprintf(userkey, AUTH_LIMIT_KEY_MAX, "user:%s", name);
}

int
auth_limit_login_allowed(const char *ip, const char *name, int64_t now)
{
    char ipkey[AUTH_LIMIT_KEY_MAX], pairkey[AUTH_LIMIT_KEY_MAX], userkey[AUTH_LIMIT_KEY_MAX];

    limit_keys(ip, name, ipkey, pairkey, userkey);
    return auth_limit_allowed(ipkey, AUTH_FAIL_MAX_IP, now) &&
           auth_limit_allowed(pairkey, AUTH_FAIL_MAX, now) &&
           auth_limit_allowed(userkey, AUTH_FAIL_MAX_USER, now);
}

void
auth_limit_login_failed(const char *ip, const char *name, int64_t now)
{
    char ipkey[AUTH_LIMIT_KEY_MAX], pairkey[AUTH_LIMIT_KEY_MAX], userkey[AUTH_LIMIT_KEY_MAX];

    limit_keys(ip, name, ipkey, pairkey, userkey);
    auth_limit_fail(ipkey, AUTH_FAIL_MAX_IP, now);
    auth_limit_fail(pairkey, AUTH_FAIL_MAX, now);
    auth_limit_fail(userkey, AUTH_FAIL_MAX_USER, now);
}

/* ---- users ------------------------------------------------------------------------------- */

int
auth_user_name_check(const char *name, struct errbuf *eb)
{
    size_t n = name != NULL ? strlen(name) : 0;

    if (n == 0 || n > AUTH_USER_NAME_MAX || name[0] == '.' || name[0] == '-' ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._@+-") != n)
        return err_set(eb, ERR_INVAL,
                       "a user name is 1 to %d letters, digits and . _ @ + - (an e-mail address "
                       "works), starting with a letter or digit",
                       AUTH_USER_NAME_MAX);
    return ERR_OK;
}

int
auth_user_add_to(struct store *st, int64_t account_id, const char *name, const char *role,
                 const char *pw, struct errbuf *eb)
{
    char hash[AUTH_HASH_MAX];
    int64_t id;
    int rc;

    if ((rc = auth_user_name_check(name, eb)) != ERR_OK)
        return rc;
    if (role == NULL || (strcmp(role, "admin") != 0 && strcmp(role, "viewer") != 0))
        return err_set(eb, ERR_INVAL, "the role must be admin or viewer");
    if ((rc = auth_password_policy(pw, eb)) != ERR_OK)
        return rc;
    if ((rc = auth_password_hash(pw, hash, eb)) != ERR_OK)
        return rc;
    rc = store_user_insert(st, account_id, name, role, hash, &id, eb);
    sodium_memzero(hash, sizeof hash);
    if (rc == ERR_OK)
        log_info("user added name=%s role=%s", name, role);
    return rc;
}

int
auth_user_add(struct store *st, const char *account, const char *name, const char *role,
              const char *pw, struct errbuf *eb)
{
    int64_t acc;
    int rc;

    /* Checked before the account is made: a refused user leaves no empty account behind. */
    if ((rc = auth_user_name_check(name, eb)) != ERR_OK ||
        (rc = auth_password_policy(pw, eb)) != ERR_OK)
        return rc;
    if ((rc = store_account_ensure(st, account != NULL ? account : AUTH_DEFAULT_ACCOUNT, &acc,
                                   eb)) != ERR_OK)
        return rc;
    return auth_user_add_to(st, acc, name, role, pw, eb);
}

int
auth_user_passwd(struct store *st, const char *name, const char *pw, struct errbuf *eb)
{
    struct user_row u = {0};
    char hash[AUTH_HASH_MAX];
    int rc;

    if ((rc = auth_password_policy(pw, eb)) != ERR_OK)
        return rc;
    if ((rc = store_user_get(st, name, &u, eb)) != ERR_OK) {
        if (rc == ERR_NOTFOUND)
            err_set(eb, rc, "there is no user named %s", name);
        goto out;
    }
    if ((rc = auth_password_hash(pw, hash, eb)) != ERR_OK)
        goto out;
    rc = store_user_set_password(st, u.id, hash, eb);
    if (rc == ERR_OK)
        log_info("password changed user=%s", name);
out:
    user_row_clear(&u);
    return rc;
}

int
auth_user_remove(struct store *st, const char *name, struct errbuf *eb)
{
    struct user_row u = {0};
    int rc = store_user_get(st, name, &u, eb);

    if (rc == ERR_NOTFOUND)
        rc = err_set(eb, rc, "there is no user named %s", name);
    if (rc == ERR_OK)
        rc = store_user_delete(st, u.id, eb);
    user_row_clear(&u);
    return rc;
}

int
auth_bootstrap(struct store *st, char **pw_out, struct errbuf *eb)
{
    unsigned char r[15];
    char pw[32];
    int64_t n;
    int rc;

    *pw_out = NULL;
    n = store_user_count(st, eb);
    if (n < 0)
        return (int)n;
    if (n > 0)
        return ERR_OK;
    randombytes_buf(r, sizeof r);
    /* URL-safe base64 without padding: 20 characters that survive copy and paste. */
    sodium_bin2base64(pw, sizeof pw, r, sizeof r, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    sodium_memzero(r, sizeof r);
    rc = auth_user_add(st, AUTH_DEFAULT_ACCOUNT, "admin", "admin", pw, eb);
    if (rc == ERR_OK)
        *pw_out = xstrdup(pw);
    sodium_memzero(pw, sizeof pw);
    return rc;
}

/* ---- sessions and keys ------------------------------------------------------------------- */

static void
principal_from_user(const struct user_row *u, struct auth_principal *p)
{
    memset(p, 0, sizeof *p);
    p->account_id = u->account_id;
    p->user_id = u->id;
    p->role = u->role != NULL && strcmp(u->role, "admin") == 0 ? AUTH_ADMIN : AUTH_READ;
    snprintf(p->name, sizeof p->name, "%s", u->name != NULL ? u->name : "");
}

int
auth_password_login(struct store *st, const char *ip, const char *name, const char *pw,
                    struct auth_principal *p, struct errbuf *eb)
{
    struct user_row u = {0};
    int64_t now = clock_now();
    struct errbuf seb = {0};
    int local = 1, rc;

    memset(p, 0, sizeof *p);
    if (name == NULL || name[0] == '\0' || pw == NULL || strlen(name) > 128)
        return err_set(eb, ERR_AUTH, "wrong user name or password");
    if (!auth_limit_login_allowed(ip, name, now)) {
        log_warn("sign-in refused: too many failures user=%s ip=%s", name, ip ? ip : "?");
        return err_set(eb, ERR_THROTTLED, "too many failed sign-ins; wait %d minutes and try again",
                       AUTH_FAIL_WINDOW / 60);
    }
    rc = store_user_get(st, name, &u, &seb);
    if (rc != ERR_OK && rc != ERR_NOTFOUND) {
        log_warn("sign-in failed: database error user=%s error=\"%s\"", name, seb.msg);
        rc = err_set(eb, rc,
                     rc == ERR_TIMEOUT ? "the database is busy; try again in a moment"
                                       : "sign-in is not available right now (database error)");
        goto out;
    }
    /* An account that signs in with Microsoft may turn passwords off (ui_sso.h). Read first,
     * so that the answer is the same whether or not the password was right. */
    if (rc == ERR_OK &&
        (rc = store_account_local_signin_get(st, u.account_id, &local, &seb)) != ERR_OK) {
        log_warn("sign-in failed: database error user=%s error=\"%s\"", name, seb.msg);
        rc = err_set(eb, rc, "sign-in is not available right now (database error)");
        goto out;
    }
    /* Hash even for an unknown name, so timing does not tell which names exist. */
    if (rc == ERR_NOTFOUND || !auth_password_check(u.password_hash, pw) || !local) {
        if (rc == ERR_NOTFOUND) {
            char dummy[AUTH_HASH_MAX];

            auth_password_hash(pw != NULL ? pw : "", dummy, NULL);
        }
        auth_limit_login_failed(ip, name, now);
        if (rc == ERR_OK && !local) {
            log_info("sign-in refused: password sign-in is off user=%s ip=%s", name, ip ? ip : "?");
            rc = err_set(eb, ERR_DENIED,
                         "password sign-in is turned off for this account: use \"Sign in with "
                         "Microsoft\"");
            goto out;
        }
        log_info("sign-in failed user=%s ip=%s", name, ip ? ip : "?");
        rc = err_set(eb, ERR_AUTH, "wrong user name or password");
        goto out;
    }
    principal_from_user(&u, p);
out:
    user_row_clear(&u);
    return rc;
}

int
auth_session_start(struct store *st, const char *ip, struct auth_principal *p, char *token_out,
                   struct errbuf *eb)
{
    char digest[AUTH_TOKEN_HEX + 1];
    int rc;

    random_hex(token_out);
    auth_digest(token_out, digest);
    rc = store_session_insert(st, digest, p->user_id, clock_now() + AUTH_SESSION_TTL, eb);
    if (rc != ERR_OK) {
        sodium_memzero(token_out, AUTH_TOKEN_HEX + 1);
        return rc;
    }
    csrf_of(token_out, p->csrf);
    log_info("signed in user=%s ip=%s", p->name, ip ? ip : "?");
    return ERR_OK;
}

int
auth_login(struct store *st, const char *ip, const char *name, const char *pw, char *token_out,
           struct auth_principal *p, struct errbuf *eb)
{
    int rc;

    token_out[0] = '\0';
    if ((rc = auth_password_login(st, ip, name, pw, p, eb)) == ERR_OK)
        rc = auth_session_start(st, ip, p, token_out, eb);
    return rc;
}

int
auth_session(struct store *st, const char *token, struct auth_principal *p, struct errbuf *eb)
{
    struct user_row u = {0};
    char digest[AUTH_TOKEN_HEX + 1];
    int rc;

    if (!is_hex_token(token, AUTH_TOKEN_HEX))
        return err_set(eb, ERR_AUTH, "not signed in");
    auth_digest(token, digest);
    rc = store_session_user(st, digest, clock_now(), &u, eb);
    if (rc == ERR_NOTFOUND)
        rc = err_set(eb, ERR_AUTH, "the session expired; sign in again");
    if (rc == ERR_OK) {
        principal_from_user(&u, p);
        csrf_of(token, p->csrf);
    }
    user_row_clear(&u);
    return rc;
}

int
auth_logout(struct store *st, const char *token)
{
    char digest[AUTH_TOKEN_HEX + 1];
    struct errbuf eb = {0};
    int rc;

    if (!is_hex_token(token, AUTH_TOKEN_HEX))
        return ERR_OK;
    auth_digest(token, digest);
    if ((rc = store_session_delete(st, digest, &eb)) != ERR_OK && rc != ERR_NOTFOUND)
        log_warn("sign-out: the session could not be ended error=\"%s\"", eb.msg);
    return rc;
}

int
auth_apikey(struct store *st, const char *key, struct auth_principal *p, struct errbuf *eb)
{
    char digest[AUTH_TOKEN_HEX + 1];
    char *scope = NULL;
    int64_t acc = 0, id = 0, expires = TS_NULL, used = TS_NULL, now = clock_now();
    int rc;

    if (key == NULL || strncmp(key, AUTH_APIKEY_PREFIX, 4) != 0 ||
        !is_hex_token(key + 4, AUTH_TOKEN_HEX))
        return err_set(eb, ERR_AUTH, "invalid API key");
    auth_digest(key, digest);
    rc = store_apikey_find(st, digest, &acc, &id, &scope, &expires, &used, eb);
    if (rc == ERR_NOTFOUND)
        rc = err_set(eb, ERR_AUTH, "invalid or revoked API key");
    if (rc == ERR_OK && expires != TS_NULL && now >= expires) {
        char when[32];

        clock_fmt(expires, when, sizeof when);
        rc = err_set(eb, ERR_AUTH, "API key %lld expired at %s; an admin can create a new one",
                     (long long)id, when);
    }
    /* At most one write a minute per key. A failure to record it does not refuse the key. */
    if (rc == ERR_OK && (used == TS_NULL || now - used >= AUTH_APIKEY_TOUCH_S)) {
        struct errbuf teb = {0};

        if (store_apikey_touch(st, id, now, &teb) != ERR_OK)
            log_debug("api key use not recorded id=%lld error=\"%s\"", (long long)id, teb.msg);
    }
    if (rc == ERR_OK) {
        memset(p, 0, sizeof *p);
        p->account_id = acc;
        p->key_id = id;
        p->role = scope != NULL && strcmp(scope, "admin") == 0 ? AUTH_ADMIN : AUTH_READ;
        snprintf(p->name, sizeof p->name, "apikey:%lld", (long long)id);
    }
    free(scope);
    return rc;
}

int
auth_apikey_expiry(const char *date, const char *days, int never, int admin, int64_t now,
                   int64_t *out, struct errbuf *eb)
{
    int given = (date != NULL && date[0] != '\0') + (days != NULL && days[0] != '\0') + !!never;

    *out = now + AUTH_APIKEY_DEFAULT_DAYS * INT64_C(86400);
    if (given > 1)
        return err_set(eb, ERR_INVAL, "give one of an expiry date, a number of days or no expiry");
    if (never) {
        if (!admin)
            return err_set(eb, ERR_DENIED, "only admins may create a key that never expires");
        *out = TS_NULL;
    } else if (days != NULL && days[0] != '\0') {
        char *end;
        long long n;

        errno = 0;
        n = strtoll(days, &end, 10);
        if (errno != 0 || *end != '\0' || n < 1 || n > AUTH_APIKEY_MAX_DAYS)
            return err_set(eb, ERR_INVAL, "the number of days must be from 1 to %d",
                           AUTH_APIKEY_MAX_DAYS);
        *out = now + (int64_t)n * 86400;
    } else if (date != NULL && date[0] != '\0') {
        int64_t t;

        if (clock_parse(date, &t) != 0)
            return err_set(eb, ERR_INVAL, "the expiry date must be written like 2027-12-31");
        if (strlen(date) == 10)
            t += 86400 - 1; /* a date: the key works through that day (UTC) */
        if (t <= now)
            return err_set(eb, ERR_INVAL, "the expiry date is in the past");
        if (t > now + AUTH_APIKEY_MAX_DAYS * INT64_C(86400))
            return err_set(eb, ERR_INVAL, "the expiry date is more than %d days away",
                           AUTH_APIKEY_MAX_DAYS);
        *out = t;
    }
    return ERR_OK;
}

int
auth_apikey_create(struct store *st, int64_t account_id, const char *name, const char *scope,
                   int64_t expires_at, char *key_out, int64_t *id, struct errbuf *eb)
{
    char body[AUTH_TOKEN_HEX + 1], digest[AUTH_TOKEN_HEX + 1], prefix[16];
    int rc;

    random_hex(body);
    snprintf(key_out, AUTH_APIKEY_LEN + 1, "%s%s", AUTH_APIKEY_PREFIX, body);
    sodium_memzero(body, sizeof body);
    auth_digest(key_out, digest);
    snprintf(prefix, sizeof prefix, "%.10s", key_out);
    rc = store_apikey_insert(st, account_id, name != NULL ? name : "", scope, digest, prefix,
                             expires_at, id, eb);
    if (rc != ERR_OK)
        sodium_memzero(key_out, AUTH_APIKEY_LEN + 1);
    return rc;
}
