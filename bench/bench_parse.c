/* bench_parse.c - CPU cost of the sync's hot parses: a Graph managedDevices page mapped to struct
 * device, and optionally a $batch answer of detectedApps pages mapped to detected_app records
 * (the floors under memsync's per-device and per-install sync cost).
 * Usage: bench_parse PAGE.json [ITERATIONS [BATCH.json]]   (files saved from memsync sim) */
#include <stdio.h>
#include <stdlib.h>

#include "clock.h"
#include "device.h"
#include "graph.h"
#include "mem.h"

static char *
slurp(const char *path, long *len)
{
    FILE *f = fopen(path, "rb");
    char *body;

    if (f == NULL)
        return NULL;
    fseek(f, 0, SEEK_END);
    *len = ftell(f);
    fseek(f, 0, SEEK_SET);
    body = xmalloc((size_t)*len + 1);
    if (fread(body, 1, (size_t)*len, f) != (size_t)*len) {
        fclose(f);
        free(body);
        return NULL;
    }
    fclose(f);
    return body;
}

static int
bench_batch(const char *path, int iters)
{
    long len;
    char *body = slurp(path, &len);
    size_t total = 0;
    int64_t t0, t1;

    if (body == NULL) {
        fprintf(stderr, "cannot read %s\n", path);
        return 1;
    }
    t0 = clock_mono_us();
    for (int i = 0; i < iters; i++) {
        struct graph_batch b;
        struct errbuf eb;

        if (graph_batch_parse(body, (size_t)len, GRAPH_BATCH_APPS, &b, &eb) != ERR_OK) {
            fprintf(stderr, "batch: %s\n", eb.msg);
            return 1;
        }
        for (size_t k = 0; k < b.n; k++)
            total += b.items[k].napps;
        graph_batch_clear(&b);
    }
    t1 = clock_mono_us();
    printf("batch %ld bytes, %zu installs parsed in %d iterations: %.3f us per install, "
           "%.1f MB/s\n",
           len, total / (size_t)iters, iters, (double)(t1 - t0) / (double)total,
           (double)len * iters / (double)(t1 - t0));
    free(body);
    return 0;
}

int
main(int argc, char **argv)
{
    char *body;
    long len;
    int iters = argc > 2 ? (int)strtol(argv[2], NULL, 10) : 20;
    size_t total = 0;
    int64_t t0, t1;

    if (argc < 2 || iters <= 0 || (body = slurp(argv[1], &len)) == NULL) {
        fprintf(stderr, "usage: bench_parse PAGE.json [ITERATIONS [BATCH.json]]\n");
        return 2;
    }
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
    if (argc > 3)
        return bench_batch(argv[3], iters);
    return 0;
}
