/* totp.h - RFC 6238 time-based one-time passwords (HMAC-SHA1, 30 s steps, 6 digits, the
 * parameters every authenticator app uses) through liboath, the secrets they share, their
 * otpauth:// enrolment URI and its QR code as inline SVG (libqrencode).
 *
 * Secrets are 20 random bytes (libsodium; sodium_init() must have run) in base32 without
 * padding, TOTP_SECRET_MAX bytes at most. Codes are compared in constant time. Thread-safe:
 * liboath is initialised once on first use. Nothing here logs; secrets and codes never appear
 * in an error message. */
#ifndef MEMSYNC_TOTP_H
#define MEMSYNC_TOTP_H

#include <stddef.h>
#include <time.h>

#include "err.h"

#define TOTP_STEP       30  /* seconds per step (RFC 6238 default) */
#define TOTP_DIGITS     6   /* digits of a code */
#define TOTP_SECRET_MAX 64  /* base32 text of a secret, with its NUL */
#define TOTP_URI_MAX    512 /* an otpauth:// URI, with its NUL */

/* A new secret: 20 random bytes as base32 (32 characters) into out (TOTP_SECRET_MAX). */
int totp_secret_new(char out[TOTP_SECRET_MAX], struct errbuf *eb);

/* The digits-long code of raw key bytes at time now, with HMAC-SHA1 (sha = 1), -SHA256 (256)
 * or -SHA512 (512); out holds digits + 1 bytes. Exposed for the RFC 6238 test vectors. */
int totp_code_raw(const void *key, size_t keylen, time_t now, unsigned digits, int sha, char *out,
                  struct errbuf *eb);

/* The 6-digit code of a base32 secret at time now (out: TOTP_DIGITS + 1 bytes). ERR_PARSE when
 * the secret is not base32. */
int totp_code(const char *secret, time_t now, char out[TOTP_DIGITS + 1], struct errbuf *eb);

/* The step (floor(now / TOTP_STEP)) of time now. */
long long totp_step(time_t now);

/* Checks code against secret for the steps of now - 1, now and now + 1 (clock skew), refusing
 * any step <= last_step (a code is used once; pass -1 when none was used). On success *step is
 * the step matched, which the caller stores as the new last_step. ERR_AUTH for a wrong, stale or
 * replayed code (the message says which, never the code), ERR_PARSE for a bad secret. */
int totp_verify(const char *secret, time_t now, const char *code, long long last_step,
                long long *step, struct errbuf *eb);

/* The enrolment URI "otpauth://totp/ISSUER:ACCOUNT?secret=...&issuer=ISSUER&algorithm=SHA1&
 * digits=6&period=30", label and issuer percent-encoded. *out is malloc'd (free()).
 * ERR_TOOBIG past TOTP_URI_MAX. */
int totp_uri(const char *issuer, const char *account, const char *secret, char **out,
             struct errbuf *eb);

/* text as a QR code (error correction M) in a self-contained SVG element: black modules as one
 * path on a white background with a 4-module quiet zone, no external references. *out is
 * malloc'd (free()). */
int totp_qr_svg(const char *text, char **out, struct errbuf *eb);

/* Recovery codes: TOTP_RECOVERY_CODES per enrolment, each 10 characters of a 31-letter alphabet
 * without look-alikes (no 0, 1, i, l, o; about 49 bits) shown as "xxxxx-xxxxx". The caller
 * hashes the canonical form with auth_password_hash() and shows the codes once. */
#define TOTP_RECOVERY_CODES 10
#define TOTP_RECOVERY_LEN   12 /* "xxxxx-xxxxx" with its NUL */

/* A new random recovery code in its canonical form (libsodium). */
void totp_recovery_new(char out[TOTP_RECOVERY_LEN]);

/* The canonical form of a recovery code as typed: case, spaces and dashes are ignored. 1 and
 * out filled when it is 10 characters of the alphabet, else 0 (out is then ""). */
int totp_recovery_norm(const char *in, char out[TOTP_RECOVERY_LEN]);

#endif
