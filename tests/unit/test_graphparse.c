/* test_graphparse.c - the streaming (yajl) Graph parsers against the jansson mapping they
 * replaced (kept below as the reference): identical results over Microsoft's fixtures, the
 * simulator's pages (hostile strings included) and mutated pages; then the strictness contract
 * of graph.h case by case. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <cmocka.h>

#include "fixture.h"
#include "graph_ref.h"

#include "buf.h"
#include "clock.h"
#include "graph.h"
#include "http.h"
#include "mem.h"
#include "simworld.h"

/* ---- comparisons ------------------------------------------------------------------------------
 */

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
free_devs(struct device *d, size_t n)
{
    for (size_t i = 0; i < n; i++)
        device_clear(&d[i]);
    free(d);
}

static void
free_apps(struct detected_app *a, size_t n)
{
    for (size_t i = 0; i < n; i++)
        detected_app_clear(&a[i]);
    free(a);
}

/* Both parsers over one body; returns the streaming parser's rc. */
static int
diff_devices(const char *body, size_t len, const char *label)
{
    struct device *a = NULL, *b = NULL;
    size_t na = 0, nb = 0, ca = 0, cb = 0;
    char *la = NULL, *lb = NULL;
    struct errbuf ea = {0}, eb = {0};
    int ra = graph_devices_parse(body, len, &a, &na, &ca, &la, &ea);
    int rb = ref_devices_parse(body, len, &b, &nb, &cb, &lb, &eb);

    if (ra != rb)
        fail_msg("%s: devices rc %d (%s) vs jansson %d (%s)", label, ra, ea.msg, rb, eb.msg);
    if (ra != ERR_OK && !is_syntax(eb.msg) && strcmp(ea.msg, eb.msg) != 0)
        fail_msg("%s: \"%s\" vs jansson \"%s\"", label, ea.msg, eb.msg);
    assert_int_equal(na, nb);
    for (size_t i = 0; i < na; i++) {
        if (!device_equal(&a[i], &b[i]))
            fail_msg("%s: device %zu differs", label, i);
    }
    assert_true(same_str(la, lb));
    free_devs(a, na);
    free_devs(b, nb);
    free(la);
    free(lb);
    return ra;
}

static void
same_apps(const struct detected_app *a, size_t na, const struct detected_app *b, size_t nb,
          const char *label)
{
    if (na != nb)
        fail_msg("%s: %zu apps vs jansson %zu", label, na, nb);
    for (size_t i = 0; i < na; i++) {
        if (!same_str(a[i].id, b[i].id) || !same_str(a[i].name, b[i].name) ||
            !same_str(a[i].version, b[i].version) || !same_str(a[i].publisher, b[i].publisher) ||
            !same_str(a[i].platform, b[i].platform) || a[i].size_bytes != b[i].size_bytes)
            fail_msg("%s: app %zu differs", label, i);
    }
}

static int
diff_apps(const char *body, size_t len, const char *label)
{
    struct detected_app *a = NULL, *b = NULL;
    size_t na = 0, nb = 0, ca = 0, cb = 0;
    char *la = NULL, *lb = NULL;
    struct errbuf ea = {0}, eb = {0};
    int ra = graph_apps_parse(body, len, &a, &na, &ca, &la, &ea);
    int rb = ref_apps_parse(body, len, &b, &nb, &cb, &lb, &eb);

    if (ra != rb)
        fail_msg("%s: apps rc %d (%s) vs jansson %d (%s)", label, ra, ea.msg, rb, eb.msg);
    if (ra == ERR_INVAL && strcmp(ea.msg, eb.msg) != 0)
        fail_msg("%s: \"%s\" vs jansson \"%s\"", label, ea.msg, eb.msg);
    same_apps(a, na, b, nb, label);
    assert_true(same_str(la, lb));
    free_apps(a, na);
    free_apps(b, nb);
    free(la);
    free(lb);
    return ra;
}

/* A catalogue that "knows" the ids of even length, at index len * 7. */
static uint32_t
find_even(void *arg, const char *id, size_t len)
{
    (void)id;
    (*(size_t *)arg)++;
    return len % 2 == 0 ? (uint32_t)(len * 7) : UINT32_MAX;
}

/* graph_batch_parse_known must agree with graph_batch_parse, known apps aside. */
static void
diff_known(const char *body, size_t len, const struct graph_batch *a, int ra, const char *ma,
           const char *label)
{
    struct graph_batch k;
    struct errbuf ek = {0};
    size_t calls = 0;
    int rk = graph_batch_parse_known(body, len, find_even, &calls, &k, &ek);

    if (rk != ra || (rk != ERR_OK && strcmp(ek.msg, ma) != 0))
        fail_msg("%s: known rc %d (%s) vs %d (%s)", label, rk, ek.msg, ra, ma);
    assert_int_equal(k.n, a->n);
    for (size_t i = 0; i < k.n; i++) {
        const struct graph_batch_item *x = &k.items[i], *y = &a->items[i];

        if (x->apps_rc != y->apps_rc || x->napps != y->napps ||
            (x->apps_rc != ERR_OK && strcmp(x->apps_eb.msg, y->apps_eb.msg) != 0) ||
            !same_str(x->next_link, y->next_link))
            fail_msg("%s: known item %zu differs", label, i);
        for (size_t j = 0; j < x->napps; j++) {
            const struct detected_app *p = &x->apps[j], *q = &y->apps[j];
            size_t idlen = strlen(q->id);

            if (idlen % 2 == 0) {
                if (p->id != NULL || p->name != NULL || p->version != NULL ||
                    p->publisher != NULL || p->platform != NULL || p->known != idlen * 7 ||
                    p->size_bytes != q->size_bytes)
                    fail_msg("%s: known item %zu app %zu was copied", label, i, j);
            } else {
                same_apps(p, 1, q, 1, label);
            }
        }
    }
    graph_batch_clear(&k);
}

static int
diff_batch(const char *body, size_t len, enum graph_batch_kind kind, const char *label)
{
    struct graph_batch a, b;
    struct errbuf ea = {0}, eb = {0};
    int ra = graph_batch_parse(body, len, kind, &a, &ea);
    int rb = ref_batch_parse(body, len, kind, &b, &eb);

    if (ra != rb)
        fail_msg("%s: batch rc %d (%s) vs jansson %d (%s)", label, ra, ea.msg, rb, eb.msg);
    if (ra != ERR_OK && !is_syntax(eb.msg) && strcmp(ea.msg, eb.msg) != 0)
        fail_msg("%s: \"%s\" vs jansson \"%s\"", label, ea.msg, eb.msg);
    if (kind == GRAPH_BATCH_APPS)
        diff_known(body, len, &a, ra, ea.msg, label);
    assert_int_equal(a.n, b.n);
    for (size_t i = 0; i < a.n; i++) {
        const struct graph_batch_item *x = &a.items[i], *y = &b.items[i];

        if (!same_str(x->id, y->id) || x->status != y->status || x->retry_after != y->retry_after ||
            x->has_body != y->has_body)
            fail_msg("%s: item %zu differs", label, i);
        if (!x->has_body)
            continue;
        if (kind == GRAPH_BATCH_DETAIL) {
            if (x->memory != y->memory || !same_str(x->ethernet_mac, y->ethernet_mac))
                fail_msg("%s: item %zu detail differs", label, i);
            continue;
        }
        if (x->apps_rc != y->apps_rc ||
            (x->apps_rc != ERR_OK && strcmp(x->apps_eb.msg, y->apps_eb.msg) != 0))
            fail_msg("%s: item %zu: \"%s\" vs jansson \"%s\"", label, i, x->apps_eb.msg,
                     y->apps_eb.msg);
        same_apps(x->apps, x->napps, y->apps, y->napps, label);
        if (!same_str(x->next_link, y->next_link))
            fail_msg("%s: item %zu next link differs", label, i);
    }
    graph_batch_clear(&a);
    graph_batch_clear(&b);
    return ra;
}

static void
diff_all(const char *body, size_t len, const char *label)
{
    diff_devices(body, len, label);
    diff_apps(body, len, label);
    diff_batch(body, len, GRAPH_BATCH_APPS, label);
    diff_batch(body, len, GRAPH_BATCH_DETAIL, label);
}

/* ---- inputs ------------------------------------------------------------------------------------
 */

/* Every published Microsoft payload through every parser, plus the single-entity examples as
 * page elements and $batch bodies. */
static void
test_fixtures_differential(void **state)
{
    static const char *const entities[] = {
        "graph-v1.0-managedDevice-get.response.json", "graph-beta-managedDevice-get.response.json",
        "graph-v1.0-detectedApp-get.response.json", "graph-v1.0-detectedApps-list.response.json"};
    const char *dir = fixture_dir();
    DIR *d;
    struct dirent *e;
    int seen = 0;

    (void)state;
    if ((d = opendir(dir)) == NULL)
        fail_msg("fixture folder %s: cannot open", dir);
    while ((e = readdir(d)) != NULL) {
        size_t len, nl = strlen(e->d_name);
        char *body;

        if (nl < 5 || strcmp(e->d_name + nl - 5, ".json") != 0)
            continue;
        body = fixture(e->d_name, &len);
        diff_all(body, len, e->d_name);
        free(body);
        seen++;
    }
    closedir(d);
    if (seen < 30)
        fail_msg("fixture folder %s: %d JSON payloads, expected at least 30", dir, seen);
    for (size_t i = 0; i < sizeof entities / sizeof entities[0]; i++) {
        size_t len;
        char *body = fixture(entities[i], &len);
        struct buf b;

        buf_init(&b, 1u << 20);
        buf_printf(&b, "{\"value\":[%s,%s]}", body, body);
        diff_devices(buf_cstr(&b), strlen(buf_cstr(&b)), entities[i]);
        buf_reset(&b);
        buf_printf(&b,
                   "{\"responses\":[{\"id\":\"0\",\"status\":200,\"body\":%s},"
                   "{\"id\":\"1\",\"status\":429,\"headers\":{\"retry-after\":\"3\"},"
                   "\"body\":%s}]}",
                   body, body);
        assert_int_equal(
            diff_batch(buf_cstr(&b), strlen(buf_cstr(&b)), GRAPH_BATCH_DETAIL, entities[i]),
            ERR_OK);
        assert_int_equal(
            diff_batch(buf_cstr(&b), strlen(buf_cstr(&b)), GRAPH_BATCH_APPS, entities[i]), ERR_OK);
        buf_free(&b);
        free(body);
    }
}

/* A devices page (v1.0 list form, or the beta full form) of the simulator's tenant. */
static char *
sim_devices_page(const struct simtenant *t, size_t from, size_t n, int full, size_t *len)
{
    struct buf b;

    buf_init(&b, 64u << 20);
    buf_addstr(&b, "{\"@odata.context\":\"https://graph.microsoft.com/v1.0/$metadata#x\","
                   "\"value\":[");
    for (size_t i = from; i < from + n && i < t->ndev; i++) {
        if (i > from)
            buf_addc(&b, ',');
        assert_int_equal(simw_render_device(t->devs[i], NULL, full, full, &b), ERR_OK);
    }
    buf_addstr(&b, "],\"@odata.nextLink\":\"https://graph.microsoft.com/v1.0/x?$skiptoken=a\"}");
    return buf_detach(&b, len);
}

static void
sim_apps_page(struct buf *b, const struct simtenant *t, const struct simdev *d)
{
    buf_addstr(b, "{\"@odata.context\":\"https://graph.microsoft.com/beta/$metadata#y\","
                  "\"value\":[");
    for (size_t k = 0; k < d->napps; k++) {
        const struct simapp *a = &t->apps[d->apps[k]];

        buf_printf(b, "%s{\"id\":", k ? "," : "");
        simw_json_str(b, a->id);
        buf_addstr(b, ",\"displayName\":");
        simw_json_str(b, a->name);
        buf_addstr(b, ",\"version\":");
        simw_json_str(b, a->version);
        buf_addstr(b, ",\"publisher\":");
        if (a->publisher != NULL)
            simw_json_str(b, a->publisher);
        else
            buf_addstr(b, "null");
        buf_addstr(b, ",\"platform\":");
        simw_json_str(b, a->platform);
        buf_printf(b, ",\"sizeInByte\":%lld}", (long long)a->size);
    }
    buf_addstr(b, "]}");
}

static char *
sim_batch(const struct simtenant *t, size_t from, size_t nitems, size_t *len)
{
    struct buf b;

    buf_init(&b, 64u << 20);
    buf_addstr(&b, "{\"responses\":[");
    for (size_t i = 0; i < nitems && from + i < t->ndev; i++) {
        buf_printf(&b,
                   "%s{\"id\":\"%zu\",\"status\":%d,\"headers\":{\"Content-Type\":"
                   "\"application/json\"%s},\"body\":",
                   i ? "," : "", i, i % 7 == 3 ? 429 : 200,
                   i % 7 == 3 ? ",\"Retry-After\":\"1.5\"" : "");
        if (i % 7 == 3)
            buf_addstr(&b, "{\"error\":{\"code\":\"TooManyRequests\",\"message\":\"x\"}}");
        else if (i % 5 == 4) /* the beta detail form, for GRAPH_BATCH_DETAIL */
            assert_int_equal(simw_render_device(t->devs[from + i], NULL, 1, 1, &b), ERR_OK);
        else
            sim_apps_page(&b, t, t->devs[from + i]);
        buf_addc(&b, '}');
    }
    buf_addstr(&b, "]}");
    return buf_detach(&b, len);
}

static struct simworld *
sim_world(int devices, int apps)
{
    struct simw_opts o = {42, 1, devices, apps, 1780272000 /* 2026-06-01 */};

    return simw_new(&o);
}

/* The simulator's pages (3 % hostile names: quotes, markup, formulas, RTL, emoji, NUL-free
 * control escapes) map the same through both parsers. */
static void
test_sim_differential(void **state)
{
    struct simworld *w = sim_world(600, 35);
    const struct simtenant *t = w->tenants[0];
    size_t len;

    (void)state;
    for (int full = 0; full <= 1; full++) {
        char *page = sim_devices_page(t, 0, t->ndev, full, &len);

        assert_int_equal(diff_devices(page, len, "sim page"), ERR_OK);
        free(page);
    }
    for (size_t from = 0; from < t->ndev; from += GRAPH_BATCH_MAX) {
        char *batch = sim_batch(t, from, GRAPH_BATCH_MAX, &len);

        assert_int_equal(diff_batch(batch, len, GRAPH_BATCH_APPS, "sim batch"), ERR_OK);
        assert_int_equal(diff_batch(batch, len, GRAPH_BATCH_DETAIL, "sim batch"), ERR_OK);
        free(batch);
    }
    for (size_t i = 0; i < 50; i++) {
        struct buf b;

        buf_init(&b, 1u << 24);
        sim_apps_page(&b, t, t->devs[i]);
        assert_int_equal(diff_apps(buf_cstr(&b), strlen(buf_cstr(&b)), "sim apps"), ERR_OK);
        buf_free(&b);
    }
    simw_free(w);
}

/* Byte-level mutations of valid pages (flip, insert, delete, truncate, duplicate a span): both
 * parsers agree on every one. Deterministic. */
static void
mutate_and_diff(const char *src, size_t len, int rounds, int what)
{
    static const char alphabet[] = "{}[]\",:0123456789.eE-+ tfnul\\/aZ\x7f\xc3\xa9\xff";
    uint64_t rng = 0x9e3779b97f4a7c15u + (uint64_t)what;
    char *m = xmalloc(len * 2 + 16);

    for (int r = 0; r < rounds; r++) {
        size_t n = len, pos;
        int ops = 1 + (int)simw_rand_range(&rng, 3);
        char label[64];

        memcpy(m, src, len);
        for (int k = 0; k < ops && n > 0; k++) {
            pos = (size_t)simw_rand_range(&rng, n);
            switch (simw_rand_range(&rng, 5)) {
            case 0:
                m[pos] = alphabet[simw_rand_range(&rng, sizeof alphabet - 1)];
                break;
            case 1:
                memmove(m + pos + 1, m + pos, n - pos);
                m[pos] = alphabet[simw_rand_range(&rng, sizeof alphabet - 1)];
                n++;
                break;
            case 2:
                memmove(m + pos, m + pos + 1, n - pos - 1);
                n--;
                break;
            case 3:
                n = pos;
                break;
            default: { /* repeat a short span: makes duplicate members and odd nesting */
                size_t span = 1 + (size_t)simw_rand_range(&rng, 40);

                if (pos + span > n || n + span > len * 2 + 16)
                    break;
                memmove(m + pos + span, m + pos, n - pos);
                n += span;
                break;
            }
            }
        }
        snprintf(label, sizeof label, "mutation %d of input %d", r, what);
        if (what == 0)
            diff_devices(m, n, label);
        else if (what == 1)
            diff_batch(m, n, GRAPH_BATCH_APPS, label);
        else if (what == 2)
            diff_batch(m, n, GRAPH_BATCH_DETAIL, label);
        else
            diff_apps(m, n, label);
    }
    free(m);
}

static void
test_mutation_differential(void **state)
{
    struct simworld *w = sim_world(40, 3);
    const struct simtenant *t = w->tenants[0];
    size_t len;
    char *page = sim_devices_page(t, 0, 3, 0, &len);
    char *batch;
    struct buf b;

    (void)state;
    mutate_and_diff(page, len, 4000, 0);
    free(page);
    batch = sim_batch(t, 0, 6, &len); /* short, so that mutations are dense */
    mutate_and_diff(batch, len, 1500, 1);
    mutate_and_diff(batch, len, 1500, 2);
    free(batch);
    buf_init(&b, 1u << 20);
    sim_apps_page(&b, t, t->devs[1]);
    mutate_and_diff(buf_cstr(&b), strlen(buf_cstr(&b)), 3000, 3);
    buf_free(&b);
    simw_free(w);
}

/* ---- the contract, case by case ---------------------------------------------------------------
 */

static int
dev1(const char *body, struct errbuf *eb, struct device *out)
{
    struct device *devs = NULL;
    size_t n = 0, cap = 0;
    char *next = NULL;
    int rc = graph_devices_parse(body, strlen(body), &devs, &n, &cap, &next, eb);

    if (rc == ERR_OK && out != NULL && n > 0)
        device_copy(out, &devs[0]);
    free_devs(devs, n);
    free(next);
    return rc;
}

static void
expect_dev_error(const char *body, const char *msg)
{
    struct errbuf eb = {0};

    assert_int_equal(dev1(body, &eb, NULL), ERR_PARSE);
    if (strstr(eb.msg, msg) == NULL)
        fail_msg("\"%s\": message \"%s\" lacks \"%s\"", body, eb.msg, msg);
}

static void
test_strict_duplicates(void **state)
{
    static const char *const batches[] = {
        "{\"responses\":[],\"responses\":[]}",
        "{\"responses\":[{\"id\":\"0\",\"id\":\"1\",\"status\":200}]}",
        "{\"responses\":[{\"id\":\"0\",\"status\":200,\"status\":404}]}",
        "{\"responses\":[{\"id\":\"0\",\"status\":200,\"body\":{},\"body\":{}}]}",
        "{\"responses\":[{\"id\":\"0\",\"status\":200,\"headers\":{},\"headers\":{}}]}",
        "{\"responses\":[{\"id\":\"0\",\"status\":429,\"headers\":{\"Retry-After\":\"1\","
        "\"retry-after\":\"99\"}}]}",
        "{\"responses\":[{\"id\":\"0\",\"status\":200,\"body\":{\"value\":[],"
        "\"value\":[{\"id\":\"x\"}]}}]}",
        "{\"responses\":[{\"id\":\"0\",\"status\":200,\"body\":{\"value\":[{\"id\":\"a\","
        "\"displayName\":\"A\",\"displayName\":\"B\"}]}}]}",
        "{\"responses\":[{\"id\":\"0\",\"status\":200,\"body\":{\"value\":[],"
        "\"@odata.nextLink\":\"https://a/\",\"@odata.nextLink\":\"https://b/\"}}]}",
    };
    static const char *const details[] = {
        "{\"responses\":[{\"id\":\"0\",\"status\":200,\"body\":{\"physicalMemoryInBytes\":1,"
        "\"physicalMemoryInBytes\":2}}]}",
        "{\"responses\":[{\"id\":\"0\",\"status\":200,\"body\":{\"value\":{"
        "\"ethernetMacAddress\":\"a\",\"ethernetMacAddress\":\"b\"}}}]}",
    };
    struct graph_batch b;
    struct errbuf eb;

    (void)state;
    expect_dev_error("{\"value\":[{\"id\":\"a\",\"id\":\"b\"}]}", "duplicate member \"id\"");
    expect_dev_error("{\"value\":[{\"id\":\"a\",\"deviceName\":\"x\",\"deviceName\":\"y\"}]}",
                     "duplicate member \"deviceName\"");
    expect_dev_error("{\"value\":[],\"value\":[]}", "duplicate member \"value\"");
    expect_dev_error("{\"value\":[],\"@odata.nextLink\":\"https://g/a\","
                     "\"@odata.nextLink\":\"https://evil/b\"}",
                     "duplicate member \"@odata.nextLink\"");
    expect_dev_error("{\"value\":[{\"value\":{\"id\":\"a\",\"id\":\"b\"}}]}",
                     "duplicate member \"id\"");
    for (size_t i = 0; i < sizeof batches / sizeof batches[0]; i++) {
        assert_int_equal(
            graph_batch_parse(batches[i], strlen(batches[i]), GRAPH_BATCH_APPS, &b, &eb),
            ERR_PARSE);
        assert_non_null(strstr(eb.msg, "duplicate member"));
    }
    for (size_t i = 0; i < sizeof details / sizeof details[0]; i++)
        assert_int_equal(
            graph_batch_parse(details[i], strlen(details[i]), GRAPH_BATCH_DETAIL, &b, &eb),
            ERR_PARSE);
    /* Members memsync does not read, at any depth, as jansson refused them. */
    expect_dev_error("{\"value\":[{\"id\":\"a\",\"notes\":1,\"notes\":2}]}", "duplicate member");
    expect_dev_error("{\"value\":[],\"x\":1,\"x\":2}", "duplicate member");
    expect_dev_error("{\"value\":[{\"id\":\"a\",\"hw\":{\"a\":{\"b\":1,\"b\":1}}}]}",
                     "duplicate member");
    /* the same name in different objects, and many names in one object, are fine */
    assert_int_equal(dev1("{\"value\":[{\"id\":\"a\",\"x\":{\"x\":{\"x\":1}},\"y\":{\"x\":1}},"
                          "{\"id\":\"b\",\"x\":1}],\"x\":1}",
                          &eb, NULL),
                     ERR_OK);
    {
        struct buf many;

        buf_init(&many, 1u << 20);
        buf_addstr(&many, "{\"value\":[{\"id\":\"a\"");
        for (int i = 0; i < 5000; i++)
            buf_printf(&many, ",\"k%d\":%d", i, i);
        buf_addstr(&many, "}]}");
        assert_int_equal(dev1(buf_cstr(&many), &eb, NULL), ERR_OK);
        buf_addstr(&many, "x");
        buf_reset(&many);
        buf_addstr(&many, "{\"value\":[{\"id\":\"a\"");
        for (int i = 0; i < 5000; i++)
            buf_printf(&many, ",\"k%d\":%d", i, i);
        buf_addstr(&many, ",\"k4321\":0}]}");
        assert_int_equal(dev1(buf_cstr(&many), &eb, NULL), ERR_PARSE);
        assert_int_equal(diff_devices(buf_cstr(&many), strlen(buf_cstr(&many)), "many"), ERR_PARSE);
        buf_free(&many);
    }
}

static void
test_strict_numbers(void **state)
{
    struct device d;
    struct errbuf eb;
    struct graph_batch b;
    static const char status_real[] = "{\"responses\":[{\"id\":\"0\",\"status\":200.0}]}";

    (void)state;
    expect_dev_error("{\"value\":[{\"id\":\"a\",\"totalStorageSpaceInBytes\":3.0}]}",
                     "device 1 of the page: managedDevice member totalStorageSpaceInBytes is not "
                     "an integer");
    expect_dev_error("{\"value\":[{\"id\":\"a\"},{\"id\":\"b\",\"physicalMemoryInBytes\":1e3}]}",
                     "device 2 of the page: managedDevice member physicalMemoryInBytes is not an "
                     "integer");
    expect_dev_error("{\"value\":[{\"id\":\"a\",\"totalStorageSpaceInBytes\":"
                     "9223372036854775808}]}",
                     "out of range");
    expect_dev_error("{\"value\":[{\"id\":\"a\",\"unread\":-9223372036854775809}]}",
                     "out of range");
    expect_dev_error("{\"value\":[{\"id\":\"a\",\"unread\":"
                     "123456789012345678901234567890123456789012345678901234567890123456789}]}",
                     "out of range");
    expect_dev_error("{\"value\":[{\"id\":\"a\",\"unread\":1e400}]}", "overflows");
    assert_int_equal(dev1("{\"value\":[{\"id\":\"a\",\"totalStorageSpaceInBytes\":"
                          "9223372036854775807,\"freeStorageSpaceInBytes\":-5,"
                          "\"physicalMemoryInBytes\":0,\"unread\":1e-400}]}",
                          &eb, &d),
                     ERR_OK);
    assert_true(d.storage_total == INT64_MAX);
    assert_true(d.storage_free == -1);
    assert_true(d.memory == -1);
    device_clear(&d);
    {
        struct detected_app *apps = NULL;
        size_t n = 0, cap = 0;
        static const char real[] = "{\"value\":[{\"id\":\"a\",\"sizeInByte\":3.0}]}";

        assert_int_equal(graph_apps_parse(real, sizeof real - 1, &apps, &n, &cap, NULL, &eb),
                         ERR_INVAL);
        assert_string_equal(eb.msg, "detectedApp member sizeInByte is not an integer");
        assert_int_equal(n, 0);
        free(apps);
    }
    assert_int_equal(
        graph_batch_parse(status_real, sizeof status_real - 1, GRAPH_BATCH_APPS, &b, &eb),
        ERR_PARSE);
    assert_string_equal(eb.msg, "$batch response item 0 lacks id or status");
}

static void
test_strict_text(void **state)
{
    static const char *const bad[] = {
        "{\"value\":[{\"id\":\"a\",\"deviceName\":\"\xc3\x28\"}]}",
        "{\"value\":[{\"id\":\"a\",\"deviceName\":\"\xc0\x80\"}]}",         /* overlong NUL */
        "{\"value\":[{\"id\":\"a\",\"deviceName\":\"\xe0\x80\xaf\"}]}",     /* overlong / */
        "{\"value\":[{\"id\":\"a\",\"deviceName\":\"\xed\xa0\x80\"}]}",     /* surrogate */
        "{\"value\":[{\"id\":\"a\",\"deviceName\":\"\xf4\x90\x80\x80\"}]}", /* > U+10FFFF */
        "{\"value\":[{\"id\":\"a\",\"deviceName\":\"\xff\"}]}",
        "{\"value\":[{\"id\":\"a\",\"x\xe9\":1}]}",
        "{\"value\":[{\"id\":\"a\",\"deviceName\":\"a\\u0000b\"}]}",
        "{\"value\":[{\"id\":\"a\\u0000\"}]}",
        "{\"value\":[{\"id\":\"a\",\"i\\u0000d\":1}]}",
        "{\"value\":[{\"id\":\"a\",\"deviceName\":\"\\ud800\"}]}",
        "{\"value\":[{\"id\":\"a\",\"deviceName\":\"\\udc00x\"}]}",
        "{\"value\":[{\"id\":\"a\",\"deviceName\":\"\\ud800\\u0041\"}]}",
        "{\"value\":[{\"id\":\"a\",\"deviceName\":\"tab\there\"}]}",
        "{\"value\":[{\"id\":\"a\"}]",       /* truncated */
        "{\"value\":[{\"id\":\"a\"}]} x",    /* trailing garbage */
        "{\"value\":[{\"id\":\"a\"}]} {}",   /* two values */
        "{\"value\":[{\"id\":\"a\"}]} // c", /* comment */
        /* yajl 2.1.0 alone accepts these: a partial token looks like the start of a next chunk */
        "{\"value\":[{\"id\":\"a\"}]} \"x",
        "{\"value\":[{\"id\":\"a\"}]}\"",
        "{\"value\":[{\"id\":\"a\"}]} tru",
        "{\"value\":[{\"id\":\"a\"}]} 1",
        "{\"valueue\":[]}\":[]}",
        "{\"value\":[{\"id\":\"a\"}]\v}", /* yajl: whitespace; JSON: not */
        "{\"value\":[{\"id\":\"a\"}]}\f",
        "{\"value\":[{\"id\":\"a\",\"deviceName\":\"a\vb\"}]}",
        "{\"value\":[{\"id\":\"a\"}],}", /* trailing comma */
        "\"value\"",                     /* top-level scalar */
        "",
    };
    struct device d;
    struct errbuf eb;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (dev1(bad[i], &eb, NULL) != ERR_PARSE)
            fail_msg("case %zu accepted", i);
        assert_non_null(strstr(eb.msg, "Graph page is not valid JSON"));
        /* jansson agrees with every one */
        assert_int_equal(diff_devices(bad[i], strlen(bad[i]), "strict text"), ERR_PARSE);
    }
    assert_int_equal(dev1("{\"value\":[{\"id\":\"a\",\"deviceName\":\"\\ud83d\\ude00 "
                          "\xf0\x9f\x98\x80 \\\"\\\\\\/\\b\\f\\n\\r\\t \\u00e9\"}]}",
                          &eb, &d),
                     ERR_OK);
    assert_string_equal(d.name, "\xf0\x9f\x98\x80 \xf0\x9f\x98\x80 \"\\/\b\f\n\r\t \xc3\xa9");
    device_clear(&d);
    {
        /* jansson 2.14 loads this (it skips a raw NUL after a number); we do not. */
        static const char nul[] = "{\"value\":[{\"id\":\"a\",\"x\":20\0}]}";
        struct device *devs = NULL;
        size_t n = 0, cap = 0;
        char *next = NULL;

        assert_int_equal(graph_devices_parse(nul, sizeof nul - 1, &devs, &n, &cap, &next, &eb),
                         ERR_PARSE);
        assert_non_null(strstr(eb.msg, "is not valid JSON"));
        assert_int_equal(n, 0);
    }
    assert_int_equal(dev1("[]", &eb, NULL), ERR_PARSE);
    assert_string_equal(eb.msg, "Graph page is not a JSON object");
}

/* The text checks scan 64 bytes at a time: each kind of bad (and good) byte sequence at every
 * offset of a long body is found (or passed) the same as in a short one. */
static void
test_strict_text_long(void **state)
{
    static const struct {
        const char *snippet, *msg; /* msg NULL: accepted, the name decodes to want */
        const char *want;
    } cases[] = {
        {"\xc3\x28", "invalid UTF-8", NULL},
        {"\xff", "invalid UTF-8", NULL},
        {"\xed\xa0\x80", "invalid UTF-8", NULL},
        {"\\u0000", "\\u0000 is not allowed in a string", NULL},
        {"\\ud800x", "a lone UTF-16 surrogate escape", NULL},
        {"\\udc00", "a lone UTF-16 surrogate escape", NULL},
        {"\v", "a control character outside a string", NULL},
        {"\x01", "", NULL},
        {"\xc3\xa9", NULL, "\xc3\xa9"},
        {"\\u00e9\\\"", NULL, "\xc3\xa9\""},
        {"\\ud83d\\ude00", NULL, "\xf0\x9f\x98\x80"},
        {"\x7e", NULL, "~"},
    };
    char body[512], want[256];
    struct device d;
    struct errbuf eb;

    (void)state;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        for (size_t pad = 0; pad < 140; pad++) {
            int n = snprintf(
                body, sizeof body, "{\"value\":[{\"id\":\"a\",\"deviceName\":\"%*s%s%s\"}]}",
                (int)pad, "", cases[c].snippet,
                "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
            int rc = dev1(body, &eb, &d);

            assert_true(n > 0 && (size_t)n < sizeof body);
            if (cases[c].msg == NULL) {
                if (rc != ERR_OK)
                    fail_msg("case %zu pad %zu: %s", c, pad, eb.msg);
                snprintf(want, sizeof want, "%*s%s%s", (int)pad, "", cases[c].want,
                         "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
                assert_string_equal(d.name, want);
                device_clear(&d);
                continue;
            }
            if (rc != ERR_PARSE || strstr(eb.msg, "Graph page is not valid JSON") == NULL ||
                strstr(eb.msg, cases[c].msg) == NULL)
                fail_msg("case %zu pad %zu: rc %d \"%s\"", c, pad, rc, eb.msg);
        }
    }
}

static void
test_strict_depth(void **state)
{
    struct buf b;
    struct errbuf eb;

    (void)state;
    for (int depth = 62; depth <= 66; depth++) {
        buf_init(&b, 1u << 16);
        /* page object + value array + device object = 3 levels, then the unread member */
        buf_addstr(&b, "{\"value\":[{\"id\":\"a\",\"deep\":");
        for (int i = 3; i < depth; i++)
            buf_addc(&b, '[');
        for (int i = 3; i < depth; i++)
            buf_addc(&b, ']');
        buf_addstr(&b, "}]}");
        if (depth <= GRAPH_JSON_MAX_DEPTH) {
            assert_int_equal(dev1(buf_cstr(&b), &eb, NULL), ERR_OK);
        } else {
            assert_int_equal(dev1(buf_cstr(&b), &eb, NULL), ERR_PARSE);
            assert_non_null(strstr(eb.msg, "nested deeper than 64 levels"));
        }
        buf_free(&b);
    }
}

static void
test_wrong_types(void **state)
{
    static const struct {
        const char *dev;
        const char *msg;
    } cases[] = {
        {"{\"id\":5}", "device 1 of the page: managedDevice has no id"},
        {"{\"id\":\"\"}", "managedDevice has no id"},
        {"{\"deviceName\":5}", "managedDevice has no id"},
        {"{\"id\":\"a\",\"deviceName\":5}", "managedDevice member deviceName is not a string"},
        {"{\"id\":\"a\",\"serialNumber\":[]}", "member serialNumber is not a string"},
        {"{\"id\":\"a\",\"isEncrypted\":\"yes\"}", "member isEncrypted is not a boolean"},
        {"{\"id\":\"a\",\"enrolledDateTime\":5}", "member enrolledDateTime is not a date string"},
        {"{\"id\":\"a\",\"lastSyncDateTime\":\"yesterday\"}",
         "member lastSyncDateTime is not a valid date"},
        {"{\"id\":\"a\",\"freeStorageSpaceInBytes\":\"1\"}",
         "member freeStorageSpaceInBytes is not an integer"},
        {"{\"id\":\"a\",\"freeStorageSpaceInBytes\":{}}",
         "member freeStorageSpaceInBytes is not an integer"},
        {"5", "device 1 of the page: managedDevice is not a JSON object"},
        {"[]", "managedDevice is not a JSON object"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char body[256];

        snprintf(body, sizeof body, "{\"value\":[%s]}", cases[i].dev);
        expect_dev_error(body, cases[i].msg);
        diff_devices(body, strlen(body), body);
    }
    {
        /* The wrapper is read only when the object itself has no id (null counts as one). */
        static const char *const wrapped[] = {
            "{\"value\":[{\"id\":\"outer\",\"value\":{\"id\":\"inner\",\"deviceName\":\"x\"}}]}",
            "{\"value\":[{\"value\":{\"id\":\"inner\"},\"deviceName\":5}]}",
            "{\"value\":[{\"id\":null,\"value\":{\"id\":\"inner\"}}]}",
            "{\"value\":[{\"value\":{\"value\":{\"id\":\"inner\"}}}]}",
            "{\"value\":[{\"value\":[{\"id\":\"inner\"}]}]}",
        };
        static const int ok[] = {1, 1, 0, 0, 0};
        static const char *const ids[] = {"outer", "inner"};
        struct device d;
        struct errbuf eb;

        for (size_t i = 0; i < sizeof wrapped / sizeof wrapped[0]; i++) {
            assert_int_equal(diff_devices(wrapped[i], strlen(wrapped[i]), wrapped[i]),
                             ok[i] ? ERR_OK : ERR_PARSE);
            if (!ok[i])
                continue;
            assert_int_equal(dev1(wrapped[i], &eb, &d), ERR_OK);
            assert_string_equal(d.intune_id, ids[i]);
            assert_null(d.name);
            device_clear(&d);
        }
    }
    expect_dev_error("{\"value\":{}}", "Graph page has no \"value\" array");
    expect_dev_error("{\"value\":[],\"@odata.nextLink\":\"\"}",
                     "@odata.nextLink is not a URL string");
    expect_dev_error("{\"value\":[],\"@odata.nextLink\":5}", "@odata.nextLink is not a URL string");
}

/* A failed page leaves the caller's array as it was; a good one appends. */
static void
test_append_and_rollback(void **state)
{
    static const char good[] = "{\"value\":[{\"id\":\"a\"},{\"value\":{\"id\":\"w\","
                               "\"operatingSystem\":\"Windows\",\"osVersion\":\"10.0.20348.1\"}}],"
                               "\"@odata.nextLink\":\"https://g/n\"}";
    static const char bad[] = "{\"value\":[{\"id\":\"b\"},{\"id\":\"c\",\"imei\":1}]}";
    struct device *devs = NULL;
    size_t n = 0, cap = 0;
    char *next = NULL;
    struct errbuf eb;

    (void)state;
    for (int i = 0; i < 40; i++) {
        assert_int_equal(graph_devices_parse(good, sizeof good - 1, &devs, &n, &cap, &next, &eb),
                         ERR_OK);
        assert_string_equal(next, "https://g/n");
        free(next);
    }
    assert_int_equal(n, 80);
    assert_string_equal(devs[79].intune_id, "w");
    assert_int_equal(devs[79].type, DEVICE_SERVER);
    assert_int_equal(graph_devices_parse(bad, sizeof bad - 1, &devs, &n, &cap, &next, &eb),
                     ERR_PARSE);
    assert_string_equal(eb.msg, "device 2 of the page: managedDevice member imei is not a string");
    assert_int_equal(n, 80);
    assert_null(next);
    free_devs(devs, n);
}

static void
test_batch_items(void **state)
{
    static const char body[] =
        "{\"responses\":["
        "{\"body\":{\"value\":[{\"id\":\"a\",\"displayName\":\"A\"}],"
        "\"@odata.nextLink\":\"https://g/next\"},\"status\":200,\"id\":\"0\"},"
        "{\"id\":\"1\",\"status\":429,\"headers\":{\"rEtRy-AfTeR\":\"2.5\"},"
        "\"body\":{\"error\":{\"code\":\"TooManyRequests\"}}},"
        "{\"id\":\"2\",\"status\":404},"
        "{\"id\":\"3\",\"status\":200,\"body\":{\"value\":[{\"id\":\"x\",\"version\":1}]}},"
        "{\"id\":\"4\",\"status\":200,\"body\":\"text\"},"
        "{\"id\":\"5\",\"status\":200,\"body\":{\"value\":{\"id\":\"single\"}}}"
        "]}";
    static const char *const bad[] = {
        "{\"responses\":[{\"status\":200}]}",
        "{\"responses\":[{\"id\":\"0\"}]}",
        "{\"responses\":[{\"id\":0,\"status\":200}]}",
        "{\"responses\":[{\"id\":\"0\",\"status\":\"200\"}]}",
        "{\"responses\":[{\"id\":\"0\",\"status\":200},5]}",
    };
    struct graph_batch b;
    struct errbuf eb;
    struct buf big;

    (void)state;
    assert_int_equal(diff_batch(body, sizeof body - 1, GRAPH_BATCH_APPS, "items"), ERR_OK);
    assert_int_equal(graph_batch_parse(body, sizeof body - 1, GRAPH_BATCH_APPS, &b, &eb), ERR_OK);
    assert_int_equal(b.n, 6);
    assert_int_equal(b.items[0].apps_rc, ERR_OK);
    assert_int_equal(b.items[0].napps, 1);
    assert_string_equal(b.items[0].apps[0].name, "A");
    assert_string_equal(b.items[0].next_link, "https://g/next");
    assert_int_equal(b.items[1].status, 429);
    assert_true(b.items[1].retry_after == 2.5);
    assert_true(b.items[2].retry_after == -1);
    assert_int_equal(b.items[2].has_body, 0);
    assert_int_equal(b.items[3].apps_rc, ERR_PARSE);
    assert_string_equal(b.items[3].apps_eb.msg, "detectedApp member version is not a string");
    assert_int_equal(b.items[4].has_body, 0);
    assert_string_equal(b.items[5].apps[0].id, "single");
    graph_batch_clear(&b);
    {
        size_t calls = 0;

        /* Only apps that pass the checks are looked up; known ones are not copied. */
        assert_int_equal(graph_batch_parse_known(body, sizeof body - 1, find_even, &calls, &b, &eb),
                         ERR_OK);
        assert_int_equal(calls, 2);
        assert_string_equal(b.items[0].apps[0].name, "A");
        assert_null(b.items[5].apps[0].id);
        assert_int_equal(b.items[5].apps[0].known, 42);
        graph_batch_clear(&b);
    }
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(diff_batch(bad[i], strlen(bad[i]), GRAPH_BATCH_APPS, bad[i]), ERR_PARSE);
        assert_int_equal(graph_batch_parse(bad[i], strlen(bad[i]), GRAPH_BATCH_APPS, &b, &eb),
                         ERR_PARSE);
        assert_non_null(strstr(eb.msg, "lacks id or status"));
        assert_null(b.items);
    }
    buf_init(&big, 1u << 16);
    buf_addstr(&big, "{\"responses\":[");
    for (int i = 0; i <= GRAPH_BATCH_MAX; i++)
        buf_printf(&big, "%s{\"id\":\"%d\",\"status\":200,\"body\":{\"value\":[{\"id\":\"a\"}]}}",
                   i ? "," : "", i);
    buf_addstr(&big, "]}");
    assert_int_equal(diff_batch(buf_cstr(&big), strlen(buf_cstr(&big)), GRAPH_BATCH_APPS, "21"),
                     ERR_PARSE);
    assert_int_equal(
        graph_batch_parse(buf_cstr(&big), strlen(buf_cstr(&big)), GRAPH_BATCH_APPS, &b, &eb),
        ERR_PARSE);
    assert_string_equal(eb.msg, "$batch response holds 21 responses (at most 20 expected)");
    buf_free(&big);
}

static void
test_batch_detail(void **state)
{
    static const char body[] =
        "{\"responses\":["
        "{\"id\":\"0\",\"status\":200,\"body\":{\"id\":\"d\",\"physicalMemoryInBytes\":"
        "17179869184,\"ethernetMacAddress\":\"00155D010203\"}},"
        "{\"id\":\"1\",\"status\":200,\"body\":{\"physicalMemoryInBytes\":1,\"value\":{"
        "\"physicalMemoryInBytes\":8589934592}}},"
        "{\"id\":\"2\",\"status\":200,\"body\":{\"physicalMemoryInBytes\":8.0,"
        "\"ethernetMacAddress\":5}},"
        "{\"id\":\"3\",\"status\":200,\"body\":{\"physicalMemoryInBytes\":0,"
        "\"ethernetMacAddress\":\"\"}}"
        "]}";
    struct graph_batch b;
    struct errbuf eb;

    (void)state;
    assert_int_equal(diff_batch(body, sizeof body - 1, GRAPH_BATCH_DETAIL, "detail"), ERR_OK);
    assert_int_equal(graph_batch_parse(body, sizeof body - 1, GRAPH_BATCH_DETAIL, &b, &eb), ERR_OK);
    assert_true(b.items[0].memory == INT64_C(17179869184));
    assert_string_equal(b.items[0].ethernet_mac, "00155D010203");
    assert_true(b.items[1].memory == INT64_C(8589934592));
    assert_null(b.items[1].ethernet_mac);
    assert_true(b.items[2].memory == -1);
    assert_null(b.items[2].ethernet_mac);
    assert_true(b.items[3].memory == -1);
    assert_null(b.items[3].ethernet_mac);
    graph_batch_clear(&b);
}

static void
test_apps_page_kinds(void **state)
{
    struct detected_app *apps = NULL;
    size_t n = 0, cap = 0;
    char *next = NULL;
    struct errbuf eb;

    (void)state;
    assert_int_equal(graph_apps_parse("[]", 2, &apps, &n, &cap, &next, &eb), ERR_INVAL);
    assert_string_equal(eb.msg, "detectedApps page is not a JSON object");
    assert_int_equal(graph_apps_parse("{\"value\":5}", 11, &apps, &n, &cap, &next, &eb), ERR_INVAL);
    assert_int_equal(graph_apps_parse("{\"value\":[}", 11, &apps, &n, &cap, &next, &eb), ERR_PARSE);
    assert_int_equal(graph_apps_parse("5", 1, &apps, &n, &cap, &next, &eb), ERR_PARSE);
    assert_int_equal(graph_apps_parse(NULL, 0, &apps, &n, &cap, &next, &eb), ERR_PARSE);
    assert_int_equal(n, 0);
    assert_null(next);
    free(apps);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_fixtures_differential), cmocka_unit_test(test_sim_differential),
        cmocka_unit_test(test_mutation_differential), cmocka_unit_test(test_strict_duplicates),
        cmocka_unit_test(test_strict_numbers),        cmocka_unit_test(test_strict_text),
        cmocka_unit_test(test_strict_text_long),      cmocka_unit_test(test_strict_depth),
        cmocka_unit_test(test_wrong_types),           cmocka_unit_test(test_append_and_rollback),
        cmocka_unit_test(test_batch_items),           cmocka_unit_test(test_batch_detail),
        cmocka_unit_test(test_apps_page_kinds),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
