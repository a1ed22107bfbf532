/* graph_batch_fuzzer.c - the streaming $batch parser (both body kinds) and the detectedApps page
 * parser on arbitrary bytes: never crash or leak, and every result keeps its invariants. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "err.h"
#include "graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_apps(const struct detected_app *apps, size_t n)
{
    for (size_t k = 0; k < n; k++) {
        ASSERT(apps[k].id != NULL && apps[k].id[0] != '\0');
        ASSERT(apps[k].name == NULL || apps[k].name[0] != '\0');
        ASSERT(apps[k].size_bytes >= -1);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const enum graph_batch_kind kinds[] = {GRAPH_BATCH_APPS, GRAPH_BATCH_DETAIL};
    struct detected_app *apps = NULL;
    size_t n = 0, cap = 0;
    char *next = NULL;
    struct errbuf eb;
    int rc;

    if (size > (1u << 20))
        return 0;
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        struct graph_batch b;

        if (graph_batch_parse((const char *)data, size, kinds[k], &b, &eb) != ERR_OK) {
            ASSERT(b.items == NULL && b.n == 0 && eb.msg[0] != '\0');
            continue;
        }
        ASSERT(b.n <= GRAPH_BATCH_MAX);
        for (size_t i = 0; i < b.n; i++) {
            const struct graph_batch_item *it = &b.items[i];

            ASSERT(it->id != NULL);
            ASSERT(it->retry_after == -1 || it->retry_after >= 0);
            ASSERT(it->memory == -1 || it->memory > 0);
            ASSERT(it->ethernet_mac == NULL || it->ethernet_mac[0] != '\0');
            if (it->apps_rc == ERR_OK)
                check_apps(it->apps, it->napps);
            else
                ASSERT(it->napps == 0 && it->next_link == NULL);
        }
        graph_batch_clear(&b);
    }
    rc = graph_apps_parse((const char *)data, size, &apps, &n, &cap, &next, &eb);
    if (rc == ERR_OK)
        check_apps(apps, n);
    else
        ASSERT(n == 0 && next == NULL && (rc == ERR_PARSE || rc == ERR_INVAL));
    for (size_t i = 0; i < n; i++)
        detected_app_clear(&apps[i]);
    free(apps);
    free(next);
    return 0;
}
