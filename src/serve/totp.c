/* totp.c - RFC 6238 codes through liboath, otpauth URIs, QR codes as SVG (see totp.h). */
#include "totp.h"

#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <liboath/oath.h>
#include <qrencode.h>
#include <sodium.h>

#include "buf.h"

#define TOTP_KEY_BYTES 20
#define TOTP_KEY_MAX   64 /* decoded secret bytes accepted */
#define TOTP_QR_MAX    (256 * 1024)

static pthread_once_t totp_once = PTHREAD_ONCE_INIT;
static int totp_init_rc = OATH_OK;

static void
totp_init_once(void)
{
    totp_init_rc = oath_init();
}

static int
totp_init(struct errbuf *eb)
{
    pthread_once(&totp_once, totp_init_once);
    if (totp_init_rc != OATH_OK)
        return err_set(eb, ERR_CRYPTO, "liboath: %s", oath_strerror(totp_init_rc));
    return ERR_OK;
}

int
totp_secret_new(char out[TOTP_SECRET_MAX], struct errbuf *eb)
{
    unsigned char key[TOTP_KEY_BYTES];
    char *b32 = NULL;
    size_t n = 0;
    int rc = ERR_OK, orc;

    out[0] = '\0';
    if ((rc = totp_init(eb)) != ERR_OK)
        return rc;
    randombytes_buf(key, sizeof key);
    orc = oath_base32_encode((const char *)key, sizeof key, &b32, &n);
    if (orc != OATH_OK) {
        rc = err_set(eb, orc == OATH_MALLOC_ERROR ? ERR_NOMEM : ERR_CRYPTO, "base32: %s",
                     oath_strerror(orc));
        goto out;
    }
    while (n > 0 && b32[n - 1] == '=')
        n--;
    if (n >= TOTP_SECRET_MAX) {
        rc = err_set(eb, ERR_TOOBIG, "secret of %zu characters", n);
        goto out;
    }
    memcpy(out, b32, n);
    out[n] = '\0';
out:
    if (b32 != NULL) {
        sodium_memzero(b32, strlen(b32));
        free(b32);
    }
    sodium_memzero(key, sizeof key);
    return rc;
}

int
totp_code_raw(const void *key, size_t keylen, time_t now, unsigned digits, int sha, char *out,
              struct errbuf *eb)
{
    int flags, rc, orc;

    out[0] = '\0';
    if ((rc = totp_init(eb)) != ERR_OK)
        return rc;
    if (sha == 1)
        flags = 0;
    else if (sha == 256)
        flags = OATH_TOTP_HMAC_SHA256;
    else if (sha == 512)
        flags = OATH_TOTP_HMAC_SHA512;
    else
        return err_set(eb, ERR_INVAL, "no HMAC-SHA%d", sha);
    if (digits < 6 || digits > 8)
        return err_set(eb, ERR_INVAL, "%u digits", digits);
    orc = oath_totp_generate2(key, keylen, now, TOTP_STEP, 0, digits, flags, out);
    if (orc != OATH_OK)
        return err_set(eb, ERR_CRYPTO, "totp: %s", oath_strerror(orc));
    return ERR_OK;
}

/* Decodes a base32 secret (upper or lower case, '=' padding optional, spaces ignored) into
 * key (TOTP_KEY_MAX bytes). */
static int
totp_decode(const char *secret, unsigned char key[TOTP_KEY_MAX], size_t *keylen, struct errbuf *eb)
{
    char norm[TOTP_SECRET_MAX + 8];
    char *bin = NULL;
    size_t n = 0, binlen = 0;
    int rc = ERR_OK, orc;

    *keylen = 0;
    if (secret == NULL)
        return err_set(eb, ERR_PARSE, "no TOTP secret");
    for (const char *p = secret; *p != '\0'; p++) {
        char c = *p;
        if (c == ' ' || c == '=')
            continue;
        if (c >= 'a' && c <= 'z')
            c = (char)(c - 'a' + 'A');
        if (n >= TOTP_SECRET_MAX - 1)
            return err_set(eb, ERR_PARSE, "TOTP secret too long");
        norm[n++] = c;
    }
    while (n % 8 != 0)
        norm[n++] = '=';
    norm[n] = '\0';
    if (n == 0)
        return err_set(eb, ERR_PARSE, "empty TOTP secret");
    orc = oath_base32_decode(norm, n, &bin, &binlen);
    if (orc != OATH_OK) {
        rc = err_set(eb, orc == OATH_MALLOC_ERROR ? ERR_NOMEM : ERR_PARSE,
                     "TOTP secret is not base32");
        goto out;
    }
    if (binlen == 0 || binlen > TOTP_KEY_MAX) {
        rc = err_set(eb, ERR_PARSE, "TOTP secret of %zu bytes", binlen);
        goto out;
    }
    memcpy(key, bin, binlen);
    *keylen = binlen;
out:
    if (bin != NULL) {
        sodium_memzero(bin, binlen);
        free(bin);
    }
    sodium_memzero(norm, sizeof norm);
    return rc;
}

int
totp_code(const char *secret, time_t now, char out[TOTP_DIGITS + 1], struct errbuf *eb)
{
    unsigned char key[TOTP_KEY_MAX];
    size_t keylen = 0;
    int rc;

    out[0] = '\0';
    if ((rc = totp_decode(secret, key, &keylen, eb)) == ERR_OK)
        rc = totp_code_raw(key, keylen, now, TOTP_DIGITS, 1, out, eb);
    sodium_memzero(key, sizeof key);
    return rc;
}

long long
totp_step(time_t now)
{
    return now < 0 ? -1 : (long long)now / TOTP_STEP;
}

int
totp_verify(const char *secret, time_t now, const char *code, long long last_step, long long *step,
            struct errbuf *eb)
{
    unsigned char key[TOTP_KEY_MAX];
    char want[TOTP_DIGITS + 1];
    size_t keylen = 0;
    long long cur = totp_step(now), hit = -1;
    int rc, replay = 0;

    *step = -1;
    if (code == NULL || strlen(code) != TOTP_DIGITS || strspn(code, "0123456789") != TOTP_DIGITS)
        return err_set(eb, ERR_AUTH, "a code is %d digits", TOTP_DIGITS);
    if ((rc = totp_decode(secret, key, &keylen, eb)) != ERR_OK)
        goto out;
    /* Every window step is computed and compared, so timing says nothing about which matched. */
    for (long long s = cur - 1; s <= cur + 1; s++) {
        if (s < 0)
            continue;
        rc = totp_code_raw(key, keylen, (time_t)(s * TOTP_STEP), TOTP_DIGITS, 1, want, eb);
        if (rc != ERR_OK)
            goto out;
        if (sodium_memcmp(want, code, TOTP_DIGITS) == 0) {
            if (s <= last_step)
                replay = 1;
            else if (hit < 0)
                hit = s;
        }
    }
    if (hit >= 0) {
        *step = hit;
        rc = ERR_OK;
    } else if (replay) {
        rc = err_set(eb, ERR_AUTH, "this code was already used");
    } else {
        rc = err_set(eb, ERR_AUTH, "wrong or expired code");
    }
out:
    sodium_memzero(key, sizeof key);
    sodium_memzero(want, sizeof want);
    return rc;
}

int
totp_uri(const char *issuer, const char *account, const char *secret, char **out, struct errbuf *eb)
{
    struct buf b;
    int rc;

    *out = NULL;
    if (issuer == NULL || account == NULL || secret == NULL || issuer[0] == '\0' ||
        strchr(issuer, ':') != NULL)
        return err_set(eb, ERR_INVAL,
                       "TOTP URI needs an issuer without ':', an account "
                       "and a secret");
    buf_init(&b, TOTP_URI_MAX - 1);
    if ((rc = buf_addstr(&b, "otpauth://totp/")) != ERR_OK ||
        (rc = buf_add_urlenc(&b, issuer)) != ERR_OK || (rc = buf_addc(&b, ':')) != ERR_OK ||
        (rc = buf_add_urlenc(&b, account)) != ERR_OK ||
        (rc = buf_addstr(&b, "?secret=")) != ERR_OK ||
        (rc = buf_add_urlenc(&b, secret)) != ERR_OK ||
        (rc = buf_addstr(&b, "&issuer=")) != ERR_OK ||
        (rc = buf_add_urlenc(&b, issuer)) != ERR_OK ||
        (rc = buf_printf(&b, "&algorithm=SHA1&digits=%d&period=%d", TOTP_DIGITS, TOTP_STEP)) !=
            ERR_OK)
        goto out;
    *out = buf_detach(&b, NULL);
    if (*out == NULL)
        rc = err_set(eb, ERR_NOMEM, "out of memory");
out:
    if (rc == ERR_TOOBIG)
        err_set(eb, rc, "TOTP URI longer than %d bytes", TOTP_URI_MAX - 1);
    else if (rc != ERR_OK && rc != ERR_NOMEM)
        err_set(eb, rc, "TOTP URI");
    buf_free(&b);
    return rc;
}

int
totp_qr_svg(const char *text, char **out, struct errbuf *eb)
{
    QRcode *qr = NULL;
    struct buf b;
    int rc = ERR_OK, w, side;

    *out = NULL;
    buf_init(&b, TOTP_QR_MAX);
    if (text == NULL || text[0] == '\0' || strlen(text) >= TOTP_URI_MAX)
        return err_set(eb, ERR_INVAL, "QR code text of bad length");
    qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    if (qr == NULL)
        return err_set(eb, ERR_NOMEM, "QR code could not be encoded");
    w = qr->width;
    side = w + 8;
    rc = buf_printf(&b,
                    "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 %d %d\" "
                    "width=\"%d\" height=\"%d\" shape-rendering=\"crispEdges\" role=\"img\" "
                    "aria-label=\"QR code\"><rect width=\"%d\" height=\"%d\" fill=\"#fff\"/>"
                    "<path fill=\"#000\" d=\"",
                    side, side, side * 5, side * 5, side, side);
    for (int y = 0; rc == ERR_OK && y < w; y++)
        for (int x = 0; rc == ERR_OK && x < w; x++)
            if (qr->data[(size_t)y * (size_t)w + (size_t)x] & 1)
                rc = buf_printf(&b, "M%d %dh1v1h-1z", x + 4, y + 4);
    if (rc == ERR_OK)
        rc = buf_addstr(&b, "\"/></svg>");
    if (rc != ERR_OK) {
        err_set(eb, rc, "QR code SVG");
        goto out;
    }
    *out = buf_detach(&b, NULL);
    if (*out == NULL)
        rc = err_set(eb, ERR_NOMEM, "out of memory");
out:
    QRcode_free(qr);
    buf_free(&b);
    return rc;
}

static const char totp_recovery_alpha[] = "23456789abcdefghjkmnpqrstuvwxyz";

void
totp_recovery_new(char out[TOTP_RECOVERY_LEN])
{
    size_t o = 0;

    for (int i = 0; i < 10; i++) {
        if (i == 5)
            out[o++] = '-';
        out[o++] = totp_recovery_alpha[randombytes_uniform(sizeof totp_recovery_alpha - 1)];
    }
    out[o] = '\0';
}

int
totp_recovery_norm(const char *in, char out[TOTP_RECOVERY_LEN])
{
    size_t n = 0;

    out[0] = '\0';
    if (in == NULL)
        return 0;
    for (const char *p = in; *p != '\0'; p++) {
        char c = *p;

        if (c == ' ' || c == '-' || c == '\t')
            continue;
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (strchr(totp_recovery_alpha, c) == NULL || n >= 10) {
            out[0] = '\0';
            return 0;
        }
        out[n < 5 ? n : n + 1] = c; /* out[5] is the dash */
        n++;
    }
    if (n != 10) {
        out[0] = '\0';
        return 0;
    }
    out[5] = '-';
    out[11] = '\0';
    return 1;
}
