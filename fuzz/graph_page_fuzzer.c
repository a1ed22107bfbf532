/* graph_page_fuzzer.c - graph_devices_parse on arbitrary bytes, with invariants on the result. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"
#include "graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct device *devs = NULL;
    size_t n = 0, cap = 0;
    char *next = NULL;
    struct errbuf eb;
    struct graph_error ge;

    if (size > (1u << 20))
        return 0;
    if (graph_devices_parse((const char *)data, size, &devs, &n, &cap, &next, &eb) == ERR_OK) {
        ASSERT(n <= cap);
        for (size_t i = 0; i < n; i++) {
            const struct device *d = &devs[i];
            struct device copy;

            ASSERT(d->intune_id != NULL && d->intune_id[0] != '\0');
            ASSERT(d->ownership != NULL);
            ASSERT(d->memory == -1 || d->memory > 0);
            ASSERT(d->storage_total >= -1 && d->storage_free >= -1);
            ASSERT(d->is_encrypted >= -1 && d->is_encrypted <= 1);
            ASSERT(d->serial == NULL || !device_serial_is_placeholder(d->serial));
            for (size_t k = 0; k < device_field_count; k++) {
                const char *s = device_field_str(d, &device_fields[k]);

                if (device_fields[k].kind == DF_STR)
                    ASSERT(s == NULL || s[0] != '\0');
            }
            device_copy(&copy, d);
            ASSERT(device_equal(&copy, d));
            device_clear(&copy);
        }
        free(next);
    } else {
        ASSERT(n == 0 && next == NULL);
        ASSERT(eb.msg[0] != '\0');
    }
    for (size_t i = 0; i < n; i++)
        device_clear(&devs[i]);
    free(devs);
    if (graph_error_parse((const char *)data, size, &ge) == ERR_OK)
        ASSERT(strlen(ge.code) < sizeof ge.code && strlen(ge.message) < sizeof ge.message);
    return 0;
}
