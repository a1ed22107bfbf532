/* list_params_fuzzer.c - a list request's query parameters (page_size, cursor, filter[f]=op:v,
 * sort, search) through the API's own parser, api_list_params_check. Input: the first byte picks
 * the list, the rest is lines "key=value" (a line without '=' is a key with an empty value), at
 * most 80 pairs so that the limit on parameters is reached too. Any outcome but ERR_OK or
 * ERR_INVAL with a message, a crash or a leak is a finding. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "api.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_PAIRS 80

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const lists[] = {
        "hardware",       "clients",  "software",     "software_devices",
        "asset_software", "installs", "installs_all", "asset_changes",
        "sync_runs",      "users",    "api_keys"};
    const char *kv[2 * MAX_PAIRS];
    struct errbuf eb;
    size_t n = 0;
    char *text, *p;
    const char *entity;
    int rc;

    if (size == 0)
        return 0;
    entity = lists[data[0] % (sizeof lists / sizeof lists[0])];
    data++;
    size--;
    /* Query arguments: NUL-terminated, bounded by the request head. */
    if (size > 16384)
        size = 16384;
    text = malloc(size + 1);
    ASSERT(text != NULL);
    memcpy(text, data, size);
    text[size] = '\0';
    p = text;
    while (n < MAX_PAIRS && *p != '\0') {
        char *nl = strchr(p, '\n');
        char *eq;

        if (nl != NULL)
            *nl = '\0';
        eq = strchr(p, '=');
        if (eq != NULL)
            *eq = '\0';
        kv[2 * n] = p;
        kv[2 * n + 1] = eq != NULL ? eq + 1 : NULL;
        n++;
        if (nl == NULL)
            break;
        p = nl + 1;
    }
    memset(&eb, 0, sizeof eb);
    rc = api_list_params_check(entity, kv, n, &eb);
    ASSERT(rc == ERR_OK || rc == ERR_INVAL);
    ASSERT(rc == ERR_OK || eb.msg[0] != '\0');
    if (n > API_MAX_QUERY_PARAMS)
        ASSERT(rc == ERR_INVAL);
    free(text);
    return 0;
}
