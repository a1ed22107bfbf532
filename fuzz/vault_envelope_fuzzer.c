/* vault_envelope_fuzzer.c - vault_unseal on arbitrary envelope text: must reject, never crash.
 * The first byte picks the row id, so both key-id and AEAD paths are reached. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "err.h"
#include "mem.h"
#include "vault.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct vault *fuzz_vault;

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct errbuf eb = {0};
    char *text = NULL, *pt = NULL, *env = NULL;
    int rc;

    if (size < 1 || size > 4096)
        return 0;
    if (fuzz_vault == NULL) {
        /* Fixed test key from the environment, so no key file is touched. */
        setenv("MEMSYNC_MASTER_KEY",
               "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f", 1);
        ASSERT(vault_open(&fuzz_vault, "/nonexistent", 0, &eb) == ERR_OK);
    }
    text = xstrndup((const char *)data + 1, size - 1);
    rc = vault_unseal(fuzz_vault, "integrations", data[0], "secret", text, &pt, &eb);
    ASSERT((rc == ERR_OK) == (pt != NULL));
    ASSERT(rc == ERR_OK || eb.msg[0] != '\0');
    if (rc == ERR_OK) {
        /* Only possible for an envelope sealed with the fuzz key: it must re-seal and reopen. */
        ASSERT(strlen(pt) > 0 && strlen(pt) <= VAULT_SECRET_MAX);
        ASSERT(vault_seal(fuzz_vault, "integrations", data[0], "secret", pt, &env, &eb) == ERR_OK);
        free(env);
    }
    vault_wipe(pt);
    free(text);
    return 0;
}
