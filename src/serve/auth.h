/* auth.h - users, passwords, sessions, CSRF tokens, API keys and sign-in rate limiting
 * (docs/DEPLOY.md "Users and API keys").
 *
 * Passwords are hashed with libsodium crypto_pwhash_str (Argon2id, INTERACTIVE limits); at most
 * AUTH_HASH_SLOTS hashes run at once (64 MiB each), others wait. Session ids and API keys are
 * 32 random bytes (hex); only a BLAKE2b digest of them is stored, so a database copy cannot sign
 * in. The CSRF token of a session is a keyed digest of its id, so it needs no storage and differs
 * per session. An API key has an expiry (default a year; an expired key is refused with a message
 * saying when) and a last-used time, written at most once a minute per key. Sign-in failures are
 * limited, in process memory, per AUTH_FAIL_WINDOW seconds: per client address (AUTH_FAIL_MAX_IP;
 * IPv6 per /64), per user name from one address (AUTH_FAIL_MAX) and per user name from anywhere
 * (AUTH_FAIL_MAX_USER, looser: failures from one address do not lock the user out from another). A
 * counter at its limit is never evicted from the table.
 *
 * Threads: every function may be called from any thread (the limiter and the hash slots are
 * locked); a struct store passed in belongs to the calling thread.
 * Errors: ERR_AUTH for a wrong name/password/key/session (one message, never saying which part
 * was wrong), ERR_THROTTLED when the limiter refuses, ERR_INVAL for a password that is too
 * short or long, store errors otherwise. Secrets (passwords, tokens, keys) are never logged.
 */
#ifndef MEMSYNC_AUTH_H
#define MEMSYNC_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "store.h"

#define AUTH_HASH_SLOTS      2
#define AUTH_TOKEN_HEX       64 /* session id / API key body: 32 bytes as hex */
#define AUTH_APIKEY_PREFIX   "msk_"
#define AUTH_APIKEY_LEN      (4 + AUTH_TOKEN_HEX)
#define AUTH_SESSION_TTL     (12 * 3600)
#define AUTH_PASSWORD_MIN    10
#define AUTH_PASSWORD_MAX    256
#define AUTH_FAIL_MAX        5  /* per user name from one client address */
#define AUTH_FAIL_MAX_USER   50 /* per user name from any address */
#define AUTH_FAIL_MAX_IP     30 /* per client address (many users may share one NAT) */
#define AUTH_FAIL_WINDOW     300
#define AUTH_DEFAULT_ACCOUNT "default"

/* API keys expire after a year unless told otherwise; last_used_at is written at most once a
 * minute per key. */
#define AUTH_APIKEY_DEFAULT_DAYS 365
#define AUTH_APIKEY_MAX_DAYS     3650
#define AUTH_APIKEY_TOUCH_S      60

enum auth_role { AUTH_NONE = 0, AUTH_READ = 1, AUTH_ADMIN = 2 };

/* Who is calling: a signed-in user or an API key. */
struct auth_principal {
    int64_t account_id;
    int64_t user_id; /* 0 for an API key */
    int64_t key_id;  /* 0 for a session */
    enum auth_role role;
    char name[132];
    char csrf[AUTH_TOKEN_HEX + 1]; /* session only */
};

/* Hashes pw (bounded by AUTH_HASH_SLOTS). out must hold AUTH_HASH_MAX bytes. */
#define AUTH_HASH_MAX 128
int auth_password_hash(const char *pw, char *out, struct errbuf *eb);
int auth_password_check(const char *hash, const char *pw); /* 1 when it matches */
/* ERR_INVAL with a message when pw is too short or too long. */
int auth_password_policy(const char *pw, struct errbuf *eb);

/* Creates a user in account (created when absent). role "admin" | "viewer". ERR_INVAL for a
 * name auth_user_name_check refuses, a bad role or a password the policy refuses; ERR_EXISTS
 * when the name is taken (names are unique across accounts: sign-in asks only for the name). */
int auth_user_add(struct store *st, const char *account, const char *name, const char *role,
                  const char *pw, struct errbuf *eb);
/* The same, into the account with this id (the web UI's). */
int auth_user_add_to(struct store *st, int64_t account_id, const char *name, const char *role,
                     const char *pw, struct errbuf *eb);
/* ERR_INVAL with a message unless name is 1 to AUTH_USER_NAME_MAX of [A-Za-z0-9._@+-], not
 * starting with '.' or '-'. */
#define AUTH_USER_NAME_MAX 64
int auth_user_name_check(const char *name, struct errbuf *eb);
int auth_user_passwd(struct store *st, const char *name, const char *pw, struct errbuf *eb);
int auth_user_remove(struct store *st, const char *name, struct errbuf *eb);

/* When no user exists: creates "admin" (account "default") with a random password written to
 * *pw_out (malloc'd; the caller shows it once and frees it). *pw_out stays NULL otherwise. */
int auth_bootstrap(struct store *st, char **pw_out, struct errbuf *eb);

/* Signs in: checks the limiter for ip and name, the password, then starts a session.
 * token_out gets the session id (AUTH_TOKEN_HEX + 1 bytes). */
int auth_login(struct store *st, const char *ip, const char *name, const char *pw, char *token_out,
               struct auth_principal *p, struct errbuf *eb);
/* auth_login in two halves, for a second factor between them (mfa.h): the limiter and the
 * password, filling p without a session; then a session for p (p->csrf set). */
int auth_password_login(struct store *st, const char *ip, const char *name, const char *pw,
                        struct auth_principal *p, struct errbuf *eb);
int auth_session_start(struct store *st, const char *ip, struct auth_principal *p, char *token_out,
                       struct errbuf *eb);
/* Resolves a session id (cookie value) to its user. ERR_AUTH when unknown or expired. */
int auth_session(struct store *st, const char *token, struct auth_principal *p, struct errbuf *eb);
int auth_logout(struct store *st, const char *token);
/* Resolves an API key (header value). */
int auth_apikey(struct store *st, const char *key, struct auth_principal *p, struct errbuf *eb);
/* Creates an API key expiring at expires_at (TS_NULL: never); key_out (AUTH_APIKEY_LEN + 1
 * bytes) is the only time it is visible. */
int auth_apikey_create(struct store *st, int64_t account_id, const char *name, const char *scope,
                       int64_t expires_at, char *key_out, int64_t *id, struct errbuf *eb);
/* The expiry of a new key from at most one of: date (YYYY-MM-DD, the key works through that UTC
 * day, or RFC 3339), days (1..AUTH_APIKEY_MAX_DAYS), never (only when admin; ERR_DENIED
 * otherwise); none given: AUTH_APIKEY_DEFAULT_DAYS from now. *out is TS_NULL for never. */
int auth_apikey_expiry(const char *date, const char *days, int never, int admin, int64_t now,
                       int64_t *out, struct errbuf *eb);

/* 1 when token is the CSRF token of the session p (constant time). */
int auth_csrf_ok(const struct auth_principal *p, const char *token);

/* Sign-in limiter. auth_limit_allowed: 1 when key has had fewer than max failures in the
 * current window at now (a key not yet counted is refused only when the table is full of keys at
 * their limits, which are never evicted). auth_limit_fail counts one failure of key, held to max.
 * auth_limit_login_*: the three counters of a sign-in from ip as name. auth_limit_net: the
 * address as counted (IPv6 per /64). */
#define AUTH_LIMIT_KEY_MAX 224
int auth_limit_allowed(const char *key, int max, int64_t now);
void auth_limit_fail(const char *key, int max, int64_t now);
int auth_limit_login_allowed(const char *ip, const char *name, int64_t now);
void auth_limit_login_failed(const char *ip, const char *name, int64_t now);
void auth_limit_net(const char *ip, char *out, size_t outsz);
void auth_limit_reset(void);

/* Hex BLAKE2b-256 of s (out: AUTH_TOKEN_HEX + 1 bytes). */
void auth_digest(const char *s, char *out);

#endif
