/* simsrv.h - internals shared by the simulator's modules (sim.c: server and routes;
 * simtok.c: tokens and opaque paging tokens). Not a public interface.
 *
 * Thread-safety: simtok functions are pure (they use the process-wide key set once by
 * simtok_init before the server starts).
 */
#ifndef MEMSYNC_SIMSRV_H
#define MEMSYNC_SIMSRV_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SIMTOK_FIELD_MAX 160

struct simtok_claims {
    char tid[64];
    char appid[64];
    char aud[SIMTOK_FIELD_MAX];
    int64_t exp;
};

/* Picks a fresh random signing key. Call once before serving. */
void simtok_init(void);

/* Issues an access token (JWT-shaped, HMAC-SHA256 signed) for tenant/app/audience, valid
 * `lifetime` seconds from `now`. Returns a heap string (caller frees). */
char *simtok_issue(const char *tid, const char *appid, const char *aud, int64_t now,
                   int64_t lifetime);

/* Verifies signature and expiry. Returns ERR_OK, ERR_AUTH (bad/forged) or ERR_TIMEOUT
 * (expired). */
int simtok_verify(const char *token, int64_t now, struct simtok_claims *out);

/* Opaque, MAC-protected encoding of a few integers (paging tokens). `kind` separates the
 * uses. Returns a heap string of base64url text. */
char *simtok_seal_ints(const char *kind, const int64_t *v, int n);
/* Reverse of simtok_seal_ints; ERR_PARSE when forged or malformed. */
int simtok_open_ints(const char *kind, const char *text, int64_t *v, int n);

/* Decodes application/x-www-form-urlencoded text in place ('+' => space, %XX). Returns
 * ERR_PARSE on a bad escape. */
int simtok_form_decode(char *s);

/* Standard base64 decode into out (NUL-terminated); ERR_PARSE on bad input. */
int simtok_b64_decode(const char *in, char *out, size_t outlen);

#endif
