/* graph_batch_fuzzer.c - graph_batch_parse and the detected-apps page parser it feeds, on
 * arbitrary bytes: never crash, and a parsed batch holds at most GRAPH_BATCH_MAX items. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include "err.h"
#include "graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct graph_batch b;
    struct errbuf eb;

    if (size > (1u << 20))
        return 0;
    if (graph_batch_parse((const char *)data, size, &b, &eb) != ERR_OK)
        return 0;
    ASSERT(b.n <= GRAPH_BATCH_MAX);
    for (size_t i = 0; i < b.n; i++) {
        struct detected_app *apps = NULL;
        size_t n = 0, cap = 0;
        char *next = NULL;

        ASSERT(b.items[i].id != NULL);
        ASSERT(b.items[i].retry_after == -1 || b.items[i].retry_after >= 0);
        if (b.items[i].body != NULL &&
            graph_apps_from_json(b.items[i].body, &apps, &n, &cap, &next, &eb) == ERR_OK) {
            for (size_t k = 0; k < n; k++) {
                ASSERT(apps[k].id != NULL && apps[k].id[0] != '\0');
                detected_app_clear(&apps[k]);
            }
        }
        free(apps);
        free(next);
    }
    graph_batch_clear(&b);
    return 0;
}
