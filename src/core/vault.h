/* vault.h - secrets sealed at rest with XChaCha20-Poly1305 (libsodium).
 *
 * The master key (32 bytes) lives outside the database: MEMSYNC_MASTER_KEY (64 hex chars or
 * base64 of 32 bytes) or a 0600 key file (path a setting; by default "<database>.key" beside the
 * database, created on first use by vault_open with create=1). Key file format: 64 hex chars and
 * a newline (what memsync writes, readable in a backup listing); a raw 32-byte file is also
 * accepted. A key file with any group/other permission bit is refused ("chmod 600 FILE"). The key
 * is kept in sodium_malloc'd, mlock'd (best effort), read-only memory.
 *
 * Envelope (text): "v1:<key_id>:<base64(nonce[24] || ciphertext || tag[16])>", key_id being the
 * first 8 hex chars of BLAKE2b(key). Associated data binds each ciphertext to what it is for:
 * "memsync-secret-v1\0<table>\0<row id>\0<column>", so a ciphertext copied to another row or
 * column does not open.
 *
 * Errors: ERR_CRYPTO when a ciphertext does not open under this key ("wrong master key or the
 * value was moved"), ERR_NOTFOUND / ERR_DENIED for key file problems, each with a message saying
 * what to do. Never returns an empty secret silently. Plaintext returned to callers is
 * sodium_malloc'd; release it with vault_wipe(). A struct vault may be shared by threads.
 *
 * Reload: a vault that vault_open read from a key file notices when that file is replaced
 * (`memsync key rotate` in another process renames a new key over it): before each seal or
 * unseal it compares the file's identity (device, inode, mtime) with what it read, and reads the
 * key again when they differ. vault_reload forces it (serve and workers call it on SIGHUP). The
 * key is swapped under a read-write lock, so a seal or unseal uses one key throughout. A vault
 * from MEMSYNC_MASTER_KEY or vault_open_file never reloads.
 */
#ifndef MEMSYNC_VAULT_H
#define MEMSYNC_VAULT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define VAULT_SECRET_MAX 1024

struct vault;

/* Opens the key from MEMSYNC_MASTER_KEY or key_path. With create, a missing key file is created
 * (0600, fresh random key). */
int vault_open(struct vault **out, const char *key_path, int create, struct errbuf *eb);
void vault_close(struct vault *v);
/* Reads the key file again now (see "Reload"); ERR_OK and nothing done for a vault that is not
 * reloadable. On failure the key in use stays. */
int vault_reload(const struct vault *v, struct errbuf *eb);
const char *vault_key_id(const struct vault *v);

/* Seals plaintext for (table, row_id, column). *out is malloc'd text. */
int vault_seal(const struct vault *v, const char *table, int64_t row_id, const char *column,
               const char *plaintext, char **out, struct errbuf *eb);
/* Opens an envelope; *plaintext is sodium_malloc'd and NUL-terminated: free with vault_wipe. */
int vault_unseal(const struct vault *v, const char *table, int64_t row_id, const char *column,
                 const char *envelope, char **plaintext, struct errbuf *eb);
void vault_wipe(char *plaintext); /* NULL-safe */

/* Generates a new key file at new_path (0600, O_EXCL: ERR_EXISTS if present). */
int vault_generate(const char *new_path, struct errbuf *eb);

/* Key rotation: open the old key with vault_open (or vault_open_file), vault_generate a new file,
 * vault_open_file it (ignores MEMSYNC_MASTER_KEY), then vault_reseal every stored envelope and
 * write the results in one transaction before swapping the key files. */
int vault_open_file(struct vault **out, const char *key_path, struct errbuf *eb);
/* Opens envelope under from and seals the plaintext under to, same (table, row_id, column). The
 * plaintext never leaves locked memory and is wiped. *out is malloc'd text. */
int vault_reseal(const struct vault *from, const struct vault *to, const char *table,
                 int64_t row_id, const char *column, const char *envelope, char **out,
                 struct errbuf *eb);

#endif
