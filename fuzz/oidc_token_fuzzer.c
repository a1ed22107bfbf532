/* oidc_token_fuzzer.c - an ID token as it arrives from Microsoft's token endpoint: oidc_validate
 * on arbitrary bytes against a fixed key set (the corpus holds tokens signed by its private key,
 * which is not kept), then the role mapping of what was accepted. The first byte picks the
 * clock: before, within or after the corpus tokens' lifetime. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mem.h"
#include "oidc.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char jwks_text[] =
    "{\"keys\":[{\"alg\":\"RS256\",\"e\":\"AQAB\",\"key_ops\":[\"verify\"],\"kid\":\"fuzz-1\""
    ",\"kty\":\"RSA\",\"n\":\"rSLjyGmaOOStglv2CL5Ruq6hm3ahulMI_cOIQc06_jq2sYmDJ7WQXOwlIK2xsrH"
    "PPvjPcFlNQ842i2MQnAI4--V6y6kpAEhngUR7uSRILcHaoNcc71b8FHoWVYfKq3b9iu1Y77ymaf6Jo8ReNI_kgDU"
    "_z-jC3s0HKr55rouNvnihpgv1PWCEaqhOdbIl6KatJM5npzGg9nUJekiAlKiHiVaBrPUBWkBfNJQeza3SVqT_JjO"
    "0Lh-qwDzTrr9oipkXuUJ7IWxkHmswD4ggYweaxOr-Wzh3VFq62lhtk_QhiPN6C2eshVezioW1PSNbXfQZlz_A29H"
    "wEXM3UkyYroqgOw\",\"use\":\"sig\"}]}";

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static json_t *jwks;
    static const int64_t clocks[] = {1799990000, 1800001000, 1800009000, 1800003700};
    struct oidc_expect x = {
        "https://login.microsoftonline.com/5b8c0e2a-1111-4222-8333-444455556666/v2.0",
        "0f0e0d0c-aaaa-4bbb-8ccc-ddddeeeeffff",
        "5b8c0e2a-1111-4222-8333-444455556666",
        "fuzz-nonce",
        0,
        -1};
    struct oidc_claims c;
    struct errbuf eb;
    enum oidc_fail why;
    char *tok;
    int rc;

    if (jwks == NULL)
        jwks = json_loads(jwks_text, 0, NULL);
    if (size > OIDC_TOKEN_MAX + 64)
        return 0;
    x.now = clocks[size > 0 ? data[0] & 3 : 0];
    tok = xmalloc(size + 1);
    if (size > 0)
        memcpy(tok, data + 1, size - 1);
    tok[size > 0 ? size - 1 : 0] = '\0';
    if (size == 0 || memchr(data + 1, '\0', size - 1) == NULL) {
        rc = oidc_validate(tok, jwks, &x, &c, &why, &eb);
        if (rc == ERR_OK) {
            const char *role = oidc_map_role("g-admins=admin,memsync.viewer=viewer", &c);

            ASSERT(why == OIDC_OK && c.oid[0] != '\0');
            ASSERT(role == NULL || strcmp(role, "admin") == 0 || strcmp(role, "viewer") == 0);
            ASSERT(c.ngroups <= OIDC_CLAIMS_MAX && c.nroles <= OIDC_CLAIMS_MAX);
        } else {
            ASSERT(rc == ERR_AUTH && why != OIDC_OK);
            ASSERT(c.groups == NULL && c.roles == NULL);
        }
        oidc_claims_clear(&c);
        /* The same bytes as a role mapping. */
        if (oidc_map_check(tok, NULL) == ERR_OK)
            ASSERT(strlen(tok) > 0);
    }
    free(tok);
    return 0;
}
