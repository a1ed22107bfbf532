/* token_response_fuzzer.c - token_parse on arbitrary bytes and statuses, plus cache expiry math. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "token.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const long statuses[] = {200, 400, 401, 500};
    struct token_result r;
    struct errbuf eb;
    int rc;

    if (size < 1 || size > (1u << 18))
        return 0;
    rc = token_parse((const char *)data + 1, size - 1, statuses[data[0] & 3], &r, &eb);
    if (rc == ERR_OK) {
        struct token_cache *c = token_cache_new();
        const int64_t now = 1700000000;

        ASSERT(r.access_token != NULL && r.access_token[0] != '\0');
        ASSERT(strlen(r.access_token) <= TOKEN_MAX_LEN);
        ASSERT(r.expires_in > 0);
        ASSERT(r.error == NULL);
        token_cache_put(c, "tenant", AUDIENCE_GRAPH, r.access_token, now + r.expires_in);
        if (r.expires_in >= TOKEN_REFRESH_MARGIN)
            ASSERT(token_cache_get(c, "tenant", AUDIENCE_GRAPH, now) != NULL);
        else
            ASSERT(token_cache_get(c, "tenant", AUDIENCE_GRAPH, now) == NULL);
        token_cache_free(c);
    } else if (rc == ERR_AUTH) {
        ASSERT(r.access_token == NULL && r.error != NULL);
        ASSERT(r.error_description == NULL || strpbrk(r.error_description, "\r\n") == NULL);
    } else {
        ASSERT(r.access_token == NULL);
    }
    token_result_clear(&r);
    return 0;
}
