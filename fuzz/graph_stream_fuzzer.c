/* graph_stream_fuzzer.c - differential: the streaming (yajl) parsers for managedDevices pages,
 * detectedApps pages and $batch answers against the jansson mapping they replaced
 * (tests/unit/graph_ref.h), on arbitrary bytes. Both must accept and refuse the same bodies,
 * map them to the same records and, past the JSON syntax, say the same thing. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "../tests/unit/graph_ref.h"
#include "err.h"
#include "graph.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int
same_str(const char *a, const char *b)
{
    return a == NULL || b == NULL ? a == b : strcmp(a, b) == 0;
}

static int
is_syntax(const char *msg)
{
    return strstr(msg, "is not valid JSON") != NULL || strcmp(msg, "not JSON") == 0;
}

static void
same_apps(const struct detected_app *a, size_t na, const struct detected_app *b, size_t nb)
{
    ASSERT(na == nb);
    for (size_t i = 0; i < na; i++) {
        ASSERT(same_str(a[i].id, b[i].id) && same_str(a[i].name, b[i].name));
        ASSERT(same_str(a[i].version, b[i].version) && same_str(a[i].publisher, b[i].publisher));
        ASSERT(same_str(a[i].platform, b[i].platform) && a[i].size_bytes == b[i].size_bytes);
    }
}

static void
free_apps(struct detected_app *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        detected_app_clear(&a[i]);
    free(a);
}

static void
diff_devices(const char *body, size_t len)
{
    struct device *a = NULL, *b = NULL;
    size_t na = 0, nb = 0, ca = 0, cb = 0;
    char *la = NULL, *lb = NULL;
    struct errbuf ea = {0}, eb = {0};
    int ra = graph_devices_parse(body, len, &a, &na, &ca, &la, &ea);
    int rb = ref_devices_parse(body, len, &b, &nb, &cb, &lb, &eb);

    ASSERT(ra == rb && na == nb && same_str(la, lb));
    ASSERT(ra == ERR_OK || is_syntax(eb.msg) || strcmp(ea.msg, eb.msg) == 0);
    for (size_t i = 0; i < na; i++) {
        ASSERT(device_equal(&a[i], &b[i]));
        device_clear(&a[i]);
        device_clear(&b[i]);
    }
    free(a);
    free(b);
    free(la);
    free(lb);
}

static void
diff_apps(const char *body, size_t len)
{
    struct detected_app *a = NULL, *b = NULL;
    size_t na = 0, nb = 0, ca = 0, cb = 0;
    char *la = NULL, *lb = NULL;
    struct errbuf ea = {0}, eb = {0};
    int ra = graph_apps_parse(body, len, &a, &na, &ca, &la, &ea);
    int rb = ref_apps_parse(body, len, &b, &nb, &cb, &lb, &eb);

    ASSERT(ra == rb && same_str(la, lb));
    ASSERT(ra != ERR_INVAL || strcmp(ea.msg, eb.msg) == 0);
    same_apps(a, na, b, nb);
    free_apps(a, na);
    free_apps(b, nb);
    free(la);
    free(lb);
}

static void
diff_batch(const char *body, size_t len, enum graph_batch_kind kind)
{
    struct graph_batch a, b;
    struct errbuf ea = {0}, eb = {0};
    int ra = graph_batch_parse(body, len, kind, &a, &ea);
    int rb = ref_batch_parse(body, len, kind, &b, &eb);

    ASSERT(ra == rb && a.n == b.n);
    ASSERT(ra == ERR_OK || is_syntax(eb.msg) || strcmp(ea.msg, eb.msg) == 0);
    for (size_t i = 0; i < a.n; i++) {
        const struct graph_batch_item *x = &a.items[i], *y = &b.items[i];

        ASSERT(same_str(x->id, y->id) && x->status == y->status);
        ASSERT(x->retry_after == y->retry_after && x->has_body == y->has_body);
        if (!x->has_body)
            continue;
        if (kind == GRAPH_BATCH_DETAIL) {
            ASSERT(x->memory == y->memory && same_str(x->ethernet_mac, y->ethernet_mac));
            continue;
        }
        ASSERT(x->apps_rc == y->apps_rc);
        ASSERT(x->apps_rc == ERR_OK || strcmp(x->apps_eb.msg, y->apps_eb.msg) == 0);
        same_apps(x->apps, x->napps, y->apps, y->napps);
        ASSERT(same_str(x->next_link, y->next_link));
    }
    graph_batch_clear(&a);
    graph_batch_clear(&b);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *body = (const char *)data;

    if (size > (1u << 20))
        return 0;
    if (memchr(body, '\0', size) != NULL) {
        /* Never JSON, and the one place the reference is laxer: jansson 2.14 skips a raw NUL
         * right after a number ({"a":20<NUL>} loads). The streaming parsers refuse it. */
        struct detected_app *apps = NULL;
        struct device *devs = NULL;
        size_t nd = 0, capd = 0, na = 0, capa = 0;
        char *next = NULL;
        struct graph_batch b;
        struct errbuf eb;

        ASSERT(graph_devices_parse(body, size, &devs, &nd, &capd, &next, &eb) == ERR_PARSE);
        ASSERT(graph_apps_parse(body, size, &apps, &na, &capa, &next, &eb) == ERR_PARSE);
        ASSERT(graph_batch_parse(body, size, GRAPH_BATCH_APPS, &b, &eb) == ERR_PARSE);
        ASSERT(nd == 0 && na == 0 && next == NULL);
        free(devs); /* grown before the refusal; empty */
        free(apps);
        return 0;
    }
    diff_devices(body, size);
    diff_apps(body, size);
    diff_batch(body, size, GRAPH_BATCH_APPS);
    diff_batch(body, size, GRAPH_BATCH_DETAIL);
    return 0;
}
