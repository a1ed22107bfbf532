/* bench_parse.c - CPU cost of parsing a Graph managedDevices page (jansson tree + mapping to
 * struct device), the floor under memsync's per-device sync cost.
 * Usage: bench_parse FILE [ITERATIONS]   (FILE: one saved page, e.g. from memsync sim) */
#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "device.h"
#include "graph.h"
#include "mem.h"

int
main(int argc, char **argv)
{
    FILE *f;
    char *body;
    long len;
    int iters = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 20;
    size_t total = 0;
    int64_t t0, t1;

    if (argc < 2 || (f = fopen(argv[1], "rb")) == NULL) {
        fprintf(stderr, "usage: bench_parse PAGE.json [ITERATIONS]\n");
        return 2;
    }
    fseek(f, 0, SEEK_END);
    len = ftell(f);
    fseek(f, 0, SEEK_SET);
    body = xmalloc((size_t)len + 1);
    if (fread(body, 1, (size_t)len, f) != (size_t)len)
        return 1;
    fclose(f);
    t0 = clock_mono_us();
    for (int i = 0; i < iters; i++) {
        struct device *devs = NULL;
        size_t n = 0, cap = 0;
        char *next = NULL;
        struct errbuf eb;

        if (graph_devices_parse(body, (size_t)len, &devs, &n, &cap, &next, &eb) != ERR_OK) {
            fprintf(stderr, "parse: %s\n", eb.msg);
            return 1;
        }
        total += n;
        for (size_t k = 0; k < n; k++)
            device_clear(&devs[k]);
        free(devs);
        free(next);
    }
    t1 = clock_mono_us();
    printf("page %ld bytes, %zu devices parsed in %d iterations: %.2f us per device, %.1f MB/s\n",
           len, total / (size_t)iters, iters, (double)(t1 - t0) / (double)total,
           (double)len * iters / (double)(t1 - t0));
    free(body);
    return 0;
}
