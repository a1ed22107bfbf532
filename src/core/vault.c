/* vault.c - sealed secrets: XChaCha20-Poly1305 envelopes under a master key (see vault.h). */
#include "vault.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sodium.h>

#include "config.h"
#include "log.h"
#include "mem.h"

#define VAULT_KEY_LEN   crypto_aead_xchacha20poly1305_ietf_KEYBYTES
#define VAULT_NONCE_LEN crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define VAULT_TAG_LEN   crypto_aead_xchacha20poly1305_ietf_ABYTES
#define VAULT_ID_LEN    8
#define VAULT_RAW_MAX   (VAULT_NONCE_LEN + VAULT_SECRET_MAX + VAULT_TAG_LEN)
#define VAULT_B64_MAX   (((VAULT_RAW_MAX + 2) / 3) * 4)
#define VAULT_NAME_MAX  128 /* table and column names in the associated data */
#define VAULT_AD_MAX    (32 + 2 * VAULT_NAME_MAX + 24)
/* Largest key file we read: hex text plus whitespace. */
#define VAULT_FILE_MAX 256

static const char vault_prefix[] = "v1:";
static const char vault_ad_tag[] = "memsync-secret-v1";

struct vault {
    unsigned char *key; /* sodium_malloc'd, read-only after open */
    char key_id[VAULT_ID_LEN + 1];
    /* Reloadable vaults (vault_open from a key file): the file's path and identity when read.
     * key and key_id are swapped under lock (write) and used under it (read). */
    char *path;
    pthread_rwlock_t lock;
    int locked; /* lock initialised */
    dev_t dev;
    ino_t ino;
    struct timespec mtime;
};

/* Takes hex (64 chars) or base64 (32 bytes, padded or not) text; returns 0 on success. */
static int
decode_key_text(const char *text, size_t len, unsigned char *key)
{
    size_t got = 0;
    const char *end = NULL;

    while (len > 0 && (text[len - 1] == '\n' || text[len - 1] == '\r' || text[len - 1] == ' ' ||
                       text[len - 1] == '\t'))
        len--;
    if (len == 2 * VAULT_KEY_LEN) {
        if (sodium_hex2bin(key, VAULT_KEY_LEN, text, len, NULL, &got, &end) == 0 &&
            got == VAULT_KEY_LEN && end == text + len)
            return 0;
    }
    if (sodium_base642bin(key, VAULT_KEY_LEN, text, len, NULL, &got, &end,
                          sodium_base64_VARIANT_ORIGINAL) == 0 &&
        got == VAULT_KEY_LEN && end == text + len)
        return 0;
    if (sodium_base642bin(key, VAULT_KEY_LEN, text, len, NULL, &got, &end,
                          sodium_base64_VARIANT_ORIGINAL_NO_PADDING) == 0 &&
        got == VAULT_KEY_LEN && end == text + len)
        return 0;
    sodium_memzero(key, VAULT_KEY_LEN);
    return -1;
}

static struct vault *
vault_alloc(void)
{
    struct vault *v = xcalloc(1, sizeof *v);

    v->key = sodium_malloc(VAULT_KEY_LEN);
    if (v->key == NULL) {
        free(v);
        return NULL;
    }
    /* sodium_malloc already tries to lock; this is best effort too (RLIMIT_MEMLOCK). */
    (void)sodium_mlock(v->key, VAULT_KEY_LEN);
    return v;
}

static void
vault_finish(struct vault *v)
{
    unsigned char h[VAULT_ID_LEN / 2];
    char hex[VAULT_ID_LEN + 1];

    crypto_generichash(h, sizeof h, v->key, VAULT_KEY_LEN, NULL, 0);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    memcpy(v->key_id, hex, sizeof v->key_id);
    (void)sodium_mprotect_readonly(v->key);
}

void
vault_close(struct vault *v)
{
    if (v == NULL)
        return;
    if (v->locked)
        pthread_rwlock_destroy(&v->lock);
    free(v->path);
    if (v->key != NULL) {
        (void)sodium_mprotect_readwrite(v->key);
        sodium_memzero(v->key, VAULT_KEY_LEN);
        sodium_free(v->key);
    }
    free(v);
}

const char *
vault_key_id(const struct vault *v)
{
    return v->key_id;
}

/* Writes a fresh random key as hex text to a new file (O_EXCL, 0600). */
static int
create_key_file(const char *path, struct errbuf *eb)
{
    unsigned char *key = NULL;
    char *hex = NULL;
    size_t hexlen = 2 * VAULT_KEY_LEN + 1;
    int fd = -1, rc = ERR_OK;
    size_t off = 0;

    key = sodium_malloc(VAULT_KEY_LEN);
    hex = sodium_malloc(hexlen + 1);
    if (key == NULL || hex == NULL) {
        rc = err_set(eb, ERR_NOMEM, "cannot allocate locked memory for a new master key");
        goto out;
    }
    randombytes_buf(key, VAULT_KEY_LEN);
    sodium_bin2hex(hex, hexlen, key, VAULT_KEY_LEN);
    hex[hexlen - 1] = '\n';
    fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (fd < 0) {
        if (errno == EEXIST)
            rc = err_set(eb, ERR_EXISTS,
                         "master key file %s already exists: refusing to overwrite it", path);
        else
            rc = err_set(eb, ERR_IO, "cannot create master key file %s: %s", path,
                         err_strerror(errno));
        goto out;
    }
    while (off < hexlen) {
        ssize_t n = write(fd, hex + off, hexlen - off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0) {
            rc = err_set(eb, ERR_IO, "cannot write master key file %s: %s", path,
                         err_strerror(errno));
            goto out;
        }
        off += (size_t)n;
    }
    if (fsync(fd) != 0) {
        rc = err_set(eb, ERR_IO, "cannot sync master key file %s: %s", path, err_strerror(errno));
        goto out;
    }
    log_info("master key file created path=%s", path);
out:
    if (fd >= 0 && close(fd) != 0 && rc == ERR_OK)
        rc = err_set(eb, ERR_IO, "cannot close master key file %s: %s", path, err_strerror(errno));
    if (rc != ERR_OK && rc != ERR_EXISTS && fd >= 0)
        (void)unlink(path); /* never leave a half-written key behind */
    sodium_free(key);
    sodium_free(hex);
    return rc;
}

/* Reads the key file into v->key. ERR_NOTFOUND when missing (errno ENOENT). */
static int
read_key_file(struct vault *v, const char *path, struct errbuf *eb)
{
    unsigned char *raw = NULL;
    struct stat st;
    int fd = -1, rc = ERR_OK;
    size_t len = 0;

    raw = sodium_malloc(VAULT_FILE_MAX + 1);
    if (raw == NULL)
        return err_set(eb, ERR_NOMEM, "cannot allocate locked memory for the master key");
    fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
    if (fd < 0) {
        if (errno == ENOENT)
            rc = err_set(eb, ERR_NOTFOUND,
                         "master key file %s not found: without it the stored secrets cannot be "
                         "opened; restore it or set MEMSYNC_MASTER_KEY",
                         path);
        else if (errno == EACCES)
            rc = err_set(eb, ERR_DENIED, "cannot read master key file %s: permission denied", path);
        else
            rc = err_set(eb, ERR_IO, "cannot open master key file %s: %s", path,
                         err_strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        rc = err_set(eb, ERR_IO, "cannot stat master key file %s: %s", path, err_strerror(errno));
        goto out;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = err_set(eb, ERR_INVAL, "master key file %s is not a regular file", path);
        goto out;
    }
    if ((st.st_mode & (S_IRWXG | S_IRWXO)) != 0) {
        rc = err_set(eb, ERR_DENIED,
                     "master key file %s is accessible by group or others (mode %04o): run "
                     "\"chmod 600 %s\"",
                     path, (unsigned)(st.st_mode & 07777), path);
        goto out;
    }
    for (;;) {
        ssize_t n = read(fd, raw + len, VAULT_FILE_MAX + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = err_set(eb, ERR_IO, "cannot read master key file %s: %s", path,
                         err_strerror(errno));
            goto out;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > VAULT_FILE_MAX)
            break;
    }
    (void)sodium_mprotect_readwrite(v->key);
    if (len == VAULT_KEY_LEN) {
        memcpy(v->key, raw, VAULT_KEY_LEN);
    } else if (len > VAULT_FILE_MAX || decode_key_text((const char *)raw, len, v->key) != 0) {
        rc = err_set(eb, ERR_PARSE,
                     "master key file %s is not a key: expected 64 hex characters (or 32 raw "
                     "bytes)",
                     path);
        goto out;
    }
out:
    if (fd >= 0)
        close(fd);
    sodium_free(raw);
    return rc;
}

static int
vault_init_sodium(struct errbuf *eb)
{
    if (sodium_init() < 0)
        return err_set(eb, ERR_CRYPTO, "libsodium could not be initialised");
    return ERR_OK;
}

int
vault_open_file(struct vault **out, const char *key_path, struct errbuf *eb)
{
    struct vault *v = NULL;
    int rc;

    *out = NULL;
    if ((rc = vault_init_sodium(eb)) != ERR_OK)
        return rc;
    if (key_path == NULL || key_path[0] == '\0')
        return err_set(eb, ERR_INVAL, "no master key file path given");
    if ((v = vault_alloc()) == NULL)
        return err_set(eb, ERR_NOMEM, "cannot allocate locked memory for the master key");
    if ((rc = read_key_file(v, key_path, eb)) != ERR_OK)
        goto out;
    vault_finish(v);
    *out = v;
    v = NULL;
out:
    vault_close(v);
    return rc;
}

static void make_reloadable(struct vault *v, const char *path);

int
vault_open(struct vault **out, const char *key_path, int create, struct errbuf *eb)
{
    struct vault *v = NULL;
    const char *env;
    int rc;

    *out = NULL;
    if ((rc = vault_init_sodium(eb)) != ERR_OK)
        return rc;
    env = config_env("MEMSYNC_MASTER_KEY");
    if (env != NULL && env[0] != '\0') {
        if ((v = vault_alloc()) == NULL)
            return err_set(eb, ERR_NOMEM, "cannot allocate locked memory for the master key");
        if (decode_key_text(env, strlen(env), v->key) != 0) {
            vault_close(v);
            return err_set(eb, ERR_PARSE,
                           "MEMSYNC_MASTER_KEY is not a key: expected 64 hex characters or the "
                           "base64 of 32 bytes");
        }
        vault_finish(v);
        *out = v;
        return ERR_OK;
    }
    rc = vault_open_file(out, key_path, eb);
    if (rc == ERR_NOTFOUND && create) {
        rc = create_key_file(key_path, eb);
        if (rc != ERR_OK && rc != ERR_EXISTS) /* EXISTS: another process won the race */
            return rc;
        err_clear(eb);
        rc = vault_open_file(out, key_path, eb);
    }
    if (rc == ERR_OK)
        make_reloadable(*out, key_path);
    return rc;
}

static void
remember_file(struct vault *v, const struct stat *st)
{
    v->dev = st->st_dev;
    v->ino = st->st_ino;
    v->mtime = st->st_mtim;
}

static void
make_reloadable(struct vault *v, const char *path)
{
    struct stat st;

    v->path = xstrdup(path);
    pthread_rwlock_init(&v->lock, NULL);
    v->locked = 1;
    if (stat(path, &st) == 0)
        remember_file(v, &st);
}

/* Reads the key file again into a fresh key and swaps it in. Caller holds no lock. */
static int
reload_key(struct vault *v, const struct stat *st, struct errbuf *eb)
{
    struct vault *nv = NULL;
    unsigned char *old;
    char oldid[VAULT_ID_LEN + 1];
    int rc = vault_open_file(&nv, v->path, eb);

    if (rc != ERR_OK)
        return rc;
    pthread_rwlock_wrlock(&v->lock);
    memcpy(oldid, v->key_id, sizeof oldid);
    old = v->key;
    v->key = nv->key;
    memcpy(v->key_id, nv->key_id, sizeof v->key_id);
    if (st != NULL)
        remember_file(v, st);
    nv->key = old;
    pthread_rwlock_unlock(&v->lock);
    if (strcmp(oldid, nv->key_id) != 0)
        log_info("master key reloaded path=%s key_id=%s old_key_id=%s", v->path, nv->key_id, oldid);
    vault_close(nv);
    return ERR_OK;
}

int
vault_reload(const struct vault *cv, struct errbuf *eb)
{
    struct vault *v = (struct vault *)(uintptr_t)cv; /* internally locked */
    struct stat st;

    if (v->path == NULL)
        return ERR_OK;
    if (stat(v->path, &st) != 0)
        return err_set(eb, ERR_NOTFOUND, "master key file %s: %s", v->path, err_strerror(errno));
    return reload_key(v, &st, eb);
}

/* Before each use: a key file replaced since it was read (`memsync key rotate` elsewhere) is
 * read again. A failed reload keeps the key in use and is logged. */
static void
refresh(const struct vault *cv)
{
    struct vault *v = (struct vault *)(uintptr_t)cv;
    struct stat st;
    struct errbuf eb = {0};
    int same;

    if (v->path == NULL || stat(v->path, &st) != 0)
        return;
    pthread_rwlock_rdlock(&v->lock);
    same = st.st_dev == v->dev && st.st_ino == v->ino && st.st_mtim.tv_sec == v->mtime.tv_sec &&
           st.st_mtim.tv_nsec == v->mtime.tv_nsec;
    pthread_rwlock_unlock(&v->lock);
    if (!same && reload_key(v, &st, &eb) != ERR_OK)
        log_warn("master key file changed but cannot be read again: %s", eb.msg);
}

static void
use_begin(const struct vault *v)
{
    refresh(v);
    if (v->locked)
        pthread_rwlock_rdlock(&((struct vault *)(uintptr_t)v)->lock);
}

static void
use_end(const struct vault *v)
{
    if (v->locked)
        pthread_rwlock_unlock(&((struct vault *)(uintptr_t)v)->lock);
}

int
vault_generate(const char *new_path, struct errbuf *eb)
{
    int rc;

    if ((rc = vault_init_sodium(eb)) != ERR_OK)
        return rc;
    if (new_path == NULL || new_path[0] == '\0')
        return err_set(eb, ERR_INVAL, "no master key file path given");
    return create_key_file(new_path, eb);
}

/* "integrations" -> "integration" for messages; other tables as they are. */
static void
owner_label(const char *table, char *out, size_t outlen)
{
    size_t n = strlen(table);

    if (n > 1 && n < outlen && table[n - 1] == 's') {
        memcpy(out, table, n - 1);
        out[n - 1] = '\0';
        return;
    }
    snprintf(out, outlen, "%s", table);
}

static int
build_ad(const char *table, int64_t row_id, const char *column, unsigned char *ad, size_t *adlen,
         struct errbuf *eb)
{
    size_t tl, cl, off = 0;
    char id[24];
    int idl;

    if (table == NULL || column == NULL)
        return err_set(eb, ERR_INVAL, "secret table and column must be given");
    tl = strlen(table);
    cl = strlen(column);
    if (tl == 0 || cl == 0 || tl > VAULT_NAME_MAX || cl > VAULT_NAME_MAX)
        return err_set(eb, ERR_INVAL, "secret table/column name is empty or too long");
    idl = snprintf(id, sizeof id, "%" PRId64, row_id);
    ASSERT(idl > 0 && (size_t)idl < sizeof id);
    /* Each part ends in NUL, except the last: "tag\0table\0rowid\0column". */
    memcpy(ad + off, vault_ad_tag, sizeof vault_ad_tag);
    off += sizeof vault_ad_tag;
    memcpy(ad + off, table, tl + 1);
    off += tl + 1;
    memcpy(ad + off, id, (size_t)idl + 1);
    off += (size_t)idl + 1;
    memcpy(ad + off, column, cl);
    off += cl;
    ASSERT(off <= VAULT_AD_MAX);
    *adlen = off;
    return ERR_OK;
}

int
vault_seal(const struct vault *v, const char *table, int64_t row_id, const char *column,
           const char *plaintext, char **out, struct errbuf *eb)
{
    unsigned char ad[VAULT_AD_MAX];
    unsigned char raw[VAULT_RAW_MAX];
    unsigned long long clen = 0;
    size_t adlen = 0, plen, b64len, total;
    char *env = NULL;
    int rc;

    *out = NULL;
    if (plaintext == NULL || plaintext[0] == '\0')
        return err_set(eb, ERR_INVAL, "refusing to seal an empty secret");
    plen = strlen(plaintext);
    if (plen > VAULT_SECRET_MAX)
        return err_set(eb, ERR_TOOBIG, "secret is %zu bytes, more than the limit of %d", plen,
                       VAULT_SECRET_MAX);
    if ((rc = build_ad(table, row_id, column, ad, &adlen, eb)) != ERR_OK)
        return rc;
    randombytes_buf(raw, VAULT_NONCE_LEN);
    total = VAULT_NONCE_LEN + plen + VAULT_TAG_LEN;
    b64len = sodium_base64_ENCODED_LEN(total, sodium_base64_VARIANT_ORIGINAL);
    env = xmalloc(sizeof vault_prefix - 1 + VAULT_ID_LEN + 1 + b64len);
    use_begin(v);
    crypto_aead_xchacha20poly1305_ietf_encrypt(raw + VAULT_NONCE_LEN, &clen,
                                               (const unsigned char *)plaintext, plen, ad, adlen,
                                               NULL, raw, v->key);
    memcpy(env + sizeof vault_prefix - 1, v->key_id, VAULT_ID_LEN);
    use_end(v);
    ASSERT(VAULT_NONCE_LEN + (size_t)clen == total);
    memcpy(env, vault_prefix, sizeof vault_prefix - 1);
    env[sizeof vault_prefix - 1 + VAULT_ID_LEN] = ':';
    sodium_bin2base64(env + sizeof vault_prefix + VAULT_ID_LEN, b64len, raw, total,
                      sodium_base64_VARIANT_ORIGINAL);
    sodium_memzero(raw, sizeof raw);
    *out = env;
    return ERR_OK;
}

int
vault_unseal(const struct vault *v, const char *table, int64_t row_id, const char *column,
             const char *envelope, char **plaintext, struct errbuf *eb)
{
    unsigned char ad[VAULT_AD_MAX];
    unsigned char raw[VAULT_RAW_MAX];
    unsigned long long mlen = 0;
    size_t adlen = 0, rawlen = 0, elen;
    const char *b64, *end = NULL;
    char who[VAULT_NAME_MAX + 1];
    char *pt = NULL;
    int rc;

    *plaintext = NULL;
    if ((rc = build_ad(table, row_id, column, ad, &adlen, eb)) != ERR_OK)
        return rc;
    owner_label(table, who, sizeof who);
    if (envelope == NULL || envelope[0] == '\0')
        return err_set(eb, ERR_PARSE, "the stored secret for %s %" PRId64 " (%s) is empty", who,
                       row_id, column);
    elen = strlen(envelope);
    if (strncmp(envelope, vault_prefix, sizeof vault_prefix - 1) != 0 ||
        elen < sizeof vault_prefix + VAULT_ID_LEN ||
        envelope[sizeof vault_prefix - 1 + VAULT_ID_LEN] != ':')
        return err_set(eb, ERR_PARSE,
                       "the stored secret for %s %" PRId64 " (%s) is not a v1 envelope", who,
                       row_id, column);
    for (size_t i = 0; i < VAULT_ID_LEN; i++) {
        char ch = envelope[sizeof vault_prefix - 1 + i];
        if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f')))
            return err_set(eb, ERR_PARSE,
                           "the stored secret for %s %" PRId64 " (%s) has a malformed key id", who,
                           row_id, column);
    }
    b64 = envelope + sizeof vault_prefix + VAULT_ID_LEN;
    if (strlen(b64) > VAULT_B64_MAX)
        return err_set(eb, ERR_TOOBIG, "the stored secret for %s %" PRId64 " (%s) is too long", who,
                       row_id, column);
    if (sodium_base642bin(raw, sizeof raw, b64, strlen(b64), NULL, &rawlen, &end,
                          sodium_base64_VARIANT_ORIGINAL) != 0 ||
        end != b64 + strlen(b64) || rawlen < VAULT_NONCE_LEN + VAULT_TAG_LEN + 1)
        return err_set(eb, ERR_PARSE,
                       "the stored secret for %s %" PRId64 " (%s) is not valid base64 or too short",
                       who, row_id, column);
    pt = sodium_malloc(rawlen - VAULT_NONCE_LEN - VAULT_TAG_LEN + 1);
    if (pt == NULL)
        return err_set(eb, ERR_NOMEM, "cannot allocate locked memory for a secret");
    use_begin(v);
    if (memcmp(envelope + sizeof vault_prefix - 1, v->key_id, VAULT_ID_LEN) != 0) {
        char cur[VAULT_ID_LEN + 1];

        memcpy(cur, v->key_id, sizeof cur);
        use_end(v);
        sodium_free(pt);
        return err_set(eb, ERR_CRYPTO,
                       "cannot open the stored secret for %s %" PRId64
                       " (%s, sealed under key %.8s, current key %s): the master key does not "
                       "match — was the key file replaced?",
                       who, row_id, column, envelope + sizeof vault_prefix - 1, cur);
    }
    rc = crypto_aead_xchacha20poly1305_ietf_decrypt((unsigned char *)pt, &mlen, NULL,
                                                    raw + VAULT_NONCE_LEN, rawlen - VAULT_NONCE_LEN,
                                                    ad, adlen, raw, v->key);
    use_end(v);
    if (rc != 0) {
        sodium_free(pt);
        return err_set(eb, ERR_CRYPTO,
                       "cannot open the stored secret for %s %" PRId64
                       " (%s): it was altered, moved from another row or column, or the master "
                       "key does not match — was the key file replaced?",
                       who, row_id, column);
    }
    pt[mlen] = '\0';
    if (mlen == 0 || memchr(pt, '\0', (size_t)mlen) != NULL) {
        sodium_free(pt);
        return err_set(eb, ERR_CRYPTO,
                       "the stored secret for %s %" PRId64 " (%s) opened but is empty or binary",
                       who, row_id, column);
    }
    *plaintext = pt;
    return ERR_OK;
}

void
vault_wipe(char *plaintext)
{
    sodium_free(plaintext); /* zeroes before freeing; NULL-safe */
}

int
vault_reseal(const struct vault *from, const struct vault *to, const char *table, int64_t row_id,
             const char *column, const char *envelope, char **out, struct errbuf *eb)
{
    char *pt = NULL;
    int rc;

    *out = NULL;
    if ((rc = vault_unseal(from, table, row_id, column, envelope, &pt, eb)) != ERR_OK)
        return rc;
    rc = vault_seal(to, table, row_id, column, pt, out, eb);
    vault_wipe(pt);
    return rc;
}
