/* mfa.h - the second factor of local users (docs/SECURITY.md "Second factor"): enrolment with a
 * TOTP secret (totp.h) sealed in the vault, codes checked and their step recorded so each is used
 * once, single-use recovery codes, the account's "required" rule, and the pending sign-in that
 * sits between a right password and a right code.
 *
 * Pending sign-ins live in this process's memory only (MFA_PENDING_MAX, each MFA_PENDING_TTL
 * seconds and MFA_PENDING_TRIES wrong codes at most): the client holds a random token, the server
 * the user it stands for, so the half-signed-in state cannot be forged or stretched; a restart
 * drops them (the user types the password again). Wrong codes also count in auth.h's sign-in
 * limiter, like wrong passwords.
 *
 * Secrets: the plain TOTP secret exists only while a page shows it or a code is checked, in
 * sodium memory, and is wiped; recovery codes are stored as crypto_pwhash_str hashes and shown
 * once. Nothing here logs a secret or a code.
 *
 * Threads: every function may be called from any thread (the pending table is locked); a
 * struct store passed in belongs to the calling thread. Errors: ERR_AUTH for a wrong, used or
 * stale code (the message says which, never the code), ERR_THROTTLED from the limiter, ERR_EXISTS
 * when enrolling twice, ERR_NOTFOUND when nothing is enrolled, store and vault errors otherwise.
 */
#ifndef MEMSYNC_MFA_H
#define MEMSYNC_MFA_H

#include <stddef.h>
#include <stdint.h>

#include "auth.h"
#include "err.h"
#include "store.h"
#include "totp.h"
#include "vault.h"

#define MFA_PENDING_MAX   256
#define MFA_PENDING_TTL   300 /* seconds from the password to the code */
#define MFA_PENDING_TRIES 5   /* wrong codes before the password is asked again */
#define MFA_NEXT_MAX      1025

/* What a user whose password was right still needs. */
enum mfa_stage {
    MFA_NONE = 0,  /* nothing: start the session */
    MFA_CODE = 1,  /* enrolled: a code or a recovery code */
    MFA_ENROL = 2, /* the account requires a second factor and the user has none yet */
};

/* The stage of user_id (reads the store). */
int mfa_stage_of(struct store *st, int64_t user_id, enum mfa_stage *stage, struct errbuf *eb);

/* Pending sign-ins. mfa_pending_start: a new one for p at stage, returning to next afterwards;
 * token_out (AUTH_TOKEN_HEX + 1) goes into a cookie (ERR_THROTTLED when the table is full of
 * live ones). mfa_pending_get: fills p (csrf: the pending page's form token), *stage and next
 * (MFA_NEXT_MAX); ERR_AUTH when unknown or expired. mfa_pending_failed: counts a wrong code and
 * ends the pending sign-in at MFA_PENDING_TRIES (returns 1 then). mfa_pending_end: forgets it. */
int mfa_pending_start(const struct auth_principal *p, enum mfa_stage stage, const char *next,
                      char *token_out, struct errbuf *eb);
int mfa_pending_get(const char *token, struct auth_principal *p, enum mfa_stage *stage, char *next,
                    struct errbuf *eb);
int mfa_pending_failed(const char *token);
void mfa_pending_end(const char *token);
void mfa_pending_reset(void); /* tests */

/* Checks input -- a 6-digit code or a recovery code -- for the enrolled user p, behind the
 * sign-in limiter (ip and name). A code's step is recorded (refused a second time); a recovery
 * code is used up. *recovery is 1 when a recovery code matched. */
int mfa_check(struct store *st, const struct vault *v, const char *ip,
              const struct auth_principal *p, const char *input, int *recovery, struct errbuf *eb);

/* Enrolment. mfa_enrol_secret: the unconfirmed secret of user_id into secret (a new one sealed
 * and stored when there is none); ERR_EXISTS when enrolled. mfa_enrol_confirm: checks code
 * against it, then records the enrolment with TOTP_RECOVERY_CODES new recovery codes written to
 * codes (shown once; the store keeps only their hashes). */
int mfa_enrol_secret(struct store *st, const struct vault *v, int64_t user_id,
                     char secret[TOTP_SECRET_MAX], struct errbuf *eb);
int mfa_enrol_confirm(struct store *st, const struct vault *v, int64_t user_id, const char *code,
                      char codes[TOTP_RECOVERY_CODES][TOTP_RECOVERY_LEN], struct errbuf *eb);

/* Turns the second factor of p off after checking a current code (mfa_check's rules). */
int mfa_disable(struct store *st, const struct vault *v, const char *ip,
                const struct auth_principal *p, const char *code, struct errbuf *eb);

/* Re-seals every stored TOTP secret from one vault key to another (`memsync key rotate`; the
 * caller holds the transaction). */
int mfa_reseal_all(struct store *st, const struct vault *from, const struct vault *to,
                   struct errbuf *eb);

#endif
