/* product.c - product names and publishers normalised, titles grouped into products. */
#include "product.h"

#include <stdlib.h>
#include <string.h>

#include "hash.h"
#include "mem.h"

/* ---- normalisation ------------------------------------------------------------------------ */

static int
lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + 32 : c;
}

static int
ieq(const char *s, size_t n, const char *word)
{
    size_t k = strlen(word);

    if (k != n)
        return 0;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != word[i])
            return 0;
    return 1;
}

static int
is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int
is_alpha(int c)
{
    c = lower(c);
    return c >= 'a' && c <= 'z';
}

/* "23.01", "14.40.33810", "v1.2.3": digits and dots, at least one dot. */
static int
is_version(const char *s, size_t n)
{
    int dots = 0, digits = 0;
    size_t i = 0;

    if (n > 0 && (s[0] == 'v' || s[0] == 'V'))
        i = 1;
    if (i >= n || !is_digit((unsigned char)s[i]))
        return 0;
    for (; i < n; i++) {
        if (is_digit((unsigned char)s[i]))
            digits++;
        else if (s[i] == '.' && i + 1 < n && is_digit((unsigned char)s[i + 1]))
            dots++;
        else
            return 0;
    }
    return digits > 0 && dots > 0;
}

/* Architectures and bitness that end a name. */
static int
is_arch(const char *s, size_t n)
{
    static const char *const words[] = {"x64",    "x86",    "x86_64", "amd64", "arm64", "ia64",
                                        "64-bit", "32-bit", "64bit",  "32bit", "win64", "win32"};

    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (ieq(s, n, words[i]))
            return 1;
    return 0;
}

/* "en-us", "de-DE", "zh-Hans": 2-3 letters, a dash, 2-4 letters. */
static int
is_locale(const char *s, size_t n)
{
    size_t i = 0, a, b;

    while (i < n && is_alpha((unsigned char)s[i]))
        i++;
    a = i;
    if (a < 2 || a > 3 || i >= n || s[i] != '-')
        return 0;
    i++;
    while (i < n && is_alpha((unsigned char)s[i]))
        i++;
    b = i - a - 1;
    return i == n && b >= 2 && b <= 4;
}

/* A word inside brackets that says nothing about which product it is. */
static int
is_bracket_noise(const char *s, size_t n)
{
    static const char *const words[] = {"64",          "32",      "bit",  "edition", "machine",
                                        "user",        "msi",     "-",    "arm",     "per-user",
                                        "per-machine", "version", "build"};

    if (is_arch(s, n) || is_locale(s, n) || is_version(s, n))
        return 1;
    for (size_t i = 0; i < sizeof words / sizeof words[0]; i++)
        if (ieq(s, n, words[i]))
            return 1;
    return 0;
}

/* 1 when every word of s[0..n) (split on spaces, commas, slashes, semicolons) is noise. */
static int
bracket_all_noise(const char *s, size_t n)
{
    size_t i = 0, words = 0;

    while (i < n) {
        size_t st;

        while (i < n && strchr(" ,/;", s[i]) != NULL)
            i++;
        st = i;
        while (i < n && strchr(" ,/;", s[i]) == NULL)
            i++;
        if (i > st) {
            if (!is_bracket_noise(s + st, i - st))
                return 0;
            words++;
        }
    }
    return words > 0;
}

/* Copies name into out with whitespace runs as one space, trimmed; returns the length. */
static size_t
collapse(const char *name, char *out, size_t outlen)
{
    size_t n = 0;
    int space = 0;

    for (const char *p = name != NULL ? name : ""; *p != '\0' && n + 1 < outlen; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\n') {
            space = n > 0;
            continue;
        }
        if (space && n + 2 < outlen)
            out[n++] = ' ';
        space = 0;
        out[n++] = *p;
    }
    out[n] = '\0';
    return n;
}

static size_t
rtrim(char *s, size_t n)
{
    for (;;) {
        if (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '-' || s[n - 1] == ',' || s[n - 1] == ':' ||
                      s[n - 1] == '_' || s[n - 1] == '|')) {
            n--;
            continue;
        }
        /* an en dash or em dash (UTF-8) */
        if (n >= 3 && (unsigned char)s[n - 3] == 0xe2 && (unsigned char)s[n - 2] == 0x80 &&
            ((unsigned char)s[n - 1] == 0x93 || (unsigned char)s[n - 1] == 0x94)) {
            n -= 3;
            continue;
        }
        break;
    }
    s[n] = '\0';
    return n;
}

/* Removes trailing noise from s (length n, whitespace collapsed) in place. */
static size_t
strip_noise(char *s, size_t n)
{
    size_t orig = n;

    n = rtrim(s, n);
    while (n > 0) {
        char close = s[n - 1];

        if (close == ')' || close == ']') {
            char open = close == ')' ? '(' : '[';
            int depth = 0;
            size_t i = n;

            while (i > 0) {
                i--;
                if (s[i] == close)
                    depth++;
                else if (s[i] == open && --depth == 0)
                    break;
            }
            if (depth == 0 && s[i] == open && i > 0 && bracket_all_noise(s + i + 1, n - i - 2)) {
                n = rtrim(s, i);
                continue;
            }
            break;
        }
        {
            size_t st = n;

            while (st > 0 && s[st - 1] != ' ')
                st--;
            if (st == 0)
                break; /* the name's only word stays */
            if (is_version(s + st, n - st) || is_arch(s + st, n - st)) {
                n = rtrim(s, st);
                continue;
            }
            if (is_locale(s + st, n - st)) {
                size_t k = st;

                while (k > 0 && s[k - 1] == ' ')
                    k--;
                if (k > 0 && s[k - 1] == '-') {
                    n = rtrim(s, k);
                    continue;
                }
            }
        }
        break;
    }
    if (n == 0) { /* nothing but noise: keep the name */
        s[orig] = '\0';
        return orig;
    }
    s[n] = '\0';
    return n;
}

size_t
product_name_display(const char *name, char *out, size_t outlen)
{
    char tmp[PRODUCT_NAME_MAX];
    size_t n = collapse(name, tmp, sizeof tmp);

    n = strip_noise(tmp, n);
    if (outlen == 0)
        return 0;
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, tmp, n);
    out[n] = '\0';
    return n;
}

size_t
product_name_key(const char *name, char *out, size_t outlen)
{
    size_t n = product_name_display(name, out, outlen);

    for (size_t i = 0; i < n; i++)
        out[i] = (char)lower((unsigned char)out[i]);
    return n;
}

size_t
product_publisher_key(const char *publisher, char *out, size_t outlen)
{
    static const char *const legal[] = {
        "corporation", "corp", "inc", "incorporated", "llc", "ltd", "limited", "gmbh", "ag", "co",
        "sa",          "s.a",  "plc", "bv",           "b.v", "srl", "s.r.l",   "oy",   "ab", "as"};
    char tmp[PRODUCT_NAME_MAX];
    size_t n = collapse(publisher, tmp, sizeof tmp), keep;

    for (size_t i = 0; i < n; i++)
        tmp[i] = (char)lower((unsigned char)tmp[i]);
    keep = n;
    for (;;) {
        size_t st;
        int cut = 0;

        while (n > 0 && (tmp[n - 1] == '.' || tmp[n - 1] == ',' || tmp[n - 1] == ' '))
            n--;
        st = n;
        while (st > 0 && tmp[st - 1] != ' ' && tmp[st - 1] != ',')
            st--;
        if (st == 0)
            break; /* the first word is the publisher */
        for (size_t i = 0; i < sizeof legal / sizeof legal[0] && !cut; i++)
            if (ieq(tmp + st, n - st, legal[i]))
                cut = 1;
        if (!cut)
            break;
        n = st;
    }
    while (n > 0 && (tmp[n - 1] == ',' || tmp[n - 1] == ' '))
        n--;
    if (n == 0)
        n = keep;
    if (outlen == 0)
        return 0;
    if (n >= outlen)
        n = outlen - 1;
    memcpy(out, tmp, n);
    out[n] = '\0';
    return n;
}

int64_t
product_id(const char *name_key, const char *publisher_key)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a, 64 bits */
    const char *parts[2] = {name_key != NULL ? name_key : "",
                            publisher_key != NULL ? publisher_key : ""};

    for (int k = 0; k < 2; k++) {
        for (const unsigned char *p = (const unsigned char *)parts[k]; *p != '\0'; p++) {
            h ^= *p;
            h *= 1099511628211ULL;
        }
        h ^= 0x1f; /* a separator no key holds */
        h *= 1099511628211ULL;
    }
    h &= (1ULL << 53) - 1;
    return h == 0 ? 1 : (int64_t)h;
}

int
product_version_cmp(const char *a, const char *b)
{
    a = a != NULL ? a : "";
    b = b != NULL ? b : "";
    while (*a != '\0' && *b != '\0') {
        if (is_digit((unsigned char)*a) && is_digit((unsigned char)*b)) {
            const char *x = a, *y = b;
            size_t nx, ny;
            int c;

            while (*x == '0' && is_digit((unsigned char)x[1]))
                x++;
            while (*y == '0' && is_digit((unsigned char)y[1]))
                y++;
            a = x;
            b = y;
            while (is_digit((unsigned char)*a))
                a++;
            while (is_digit((unsigned char)*b))
                b++;
            nx = (size_t)(a - x);
            ny = (size_t)(b - y);
            if (nx != ny)
                return nx < ny ? -1 : 1;
            if ((c = memcmp(x, y, nx)) != 0)
                return c < 0 ? -1 : 1;
            continue;
        }
        if (*a != *b)
            return (unsigned char)*a < (unsigned char)*b ? -1 : 1;
        a++;
        b++;
    }
    return *a == *b ? 0 : *a == '\0' ? -1 : 1;
}

/* ---- the index ---------------------------------------------------------------------------- */

#define POOL_BLOCK (64 * 1024)

struct pool_block {
    struct pool_block *next;
    size_t used;
    char data[POOL_BLOCK];
};

struct stage_row {
    /* keys and versions are canonical (one pointer per distinct string): compared by address */
    const char *name_key, *pub_key, *name, *pub, *version;
    size_t vid; /* the version's index in product_staging.vlist, then its rank */
    int64_t title_id, client_id, devices;
};

/* A raw string seen before and what it became (names: display and key; publishers: as
 * written and key; versions: as written). */
struct intern_slot {
    const char *raw, *a, *b;
    size_t id; /* versions: index in product_staging.vlist */
};

struct intern {
    struct intern_slot *slot;
    size_t cap, n; /* cap a power of two, at most half full */
};

struct product_staging {
    struct stage_row *rows;
    size_t n, cap;
    /* Titles arrive in table order: the same names, publishers and versions come back from
     * client to client, so each distinct one is normalised and stored once. */
    struct intern names, pubs, versions, keys;
    const char **vlist; /* distinct versions, in the order first seen */
    size_t nv, capv;
};

/* Strings of an index live in blocks that never move; the index frees them all at once. */
struct product_index_priv {
    struct product_index pub;
    struct pool_block *blocks;
};

static const char *
pool_dup(struct product_index *ix, const char *s, size_t n)
{
    struct product_index_priv *pv = (struct product_index_priv *)ix;
    struct pool_block *b = pv->blocks;
    char *r;

    if (n + 1 > POOL_BLOCK) /* cannot happen: names are cut at PRODUCT_NAME_MAX */
        n = POOL_BLOCK - 1;
    if (b == NULL || b->used + n + 1 > POOL_BLOCK) {
        b = xmalloc(sizeof *b);
        b->next = pv->blocks;
        b->used = 0;
        pv->blocks = b;
    }
    r = b->data + b->used;
    memcpy(r, s, n);
    r[n] = '\0';
    b->used += n + 1;
    return r;
}

struct product_index *
product_index_new(void)
{
    struct product_index_priv *pv = xcalloc(1, sizeof *pv);

    pv->pub.staging = xcalloc(1, sizeof *pv->pub.staging);
    return &pv->pub;
}

enum intern_kind { INTERN_NAME, INTERN_PUBLISHER, INTERN_VERSION, INTERN_KEY };

static void intern_put(struct intern *t, struct intern_slot v);

static void
intern_grow(struct intern *t)
{
    struct intern old = *t;

    t->cap = old.cap > 0 ? old.cap * 2 : 1024;
    t->slot = xcalloc(t->cap, sizeof *t->slot);
    t->n = 0;
    for (size_t i = 0; i < old.cap; i++)
        if (old.slot[i].raw != NULL)
            intern_put(t, old.slot[i]);
    free(old.slot);
}

static void
intern_put(struct intern *t, struct intern_slot v)
{
    size_t i = (size_t)hash_bytes(v.raw, strlen(v.raw)) & (t->cap - 1);

    while (t->slot[i].raw != NULL)
        i = (i + 1) & (t->cap - 1);
    t->slot[i] = v;
    t->n++;
}

/* The normalised forms of raw, computed the first time it is seen. */
static const struct intern_slot *
intern_get(struct product_index *ix, struct intern *t, const char *raw, enum intern_kind kind)
{
    struct intern_slot v;
    char buf[PRODUCT_NAME_MAX];
    size_t i, n;

    if (t->cap > 0) {
        i = (size_t)hash_bytes(raw, strlen(raw)) & (t->cap - 1);
        while (t->slot[i].raw != NULL) {
            if (strcmp(t->slot[i].raw, raw) == 0)
                return &t->slot[i];
            i = (i + 1) & (t->cap - 1);
        }
    }
    if ((t->n + 1) * 2 > t->cap)
        intern_grow(t);
    n = strlen(raw);
    memset(&v, 0, sizeof v);
    v.raw = pool_dup(ix, raw, n < PRODUCT_NAME_MAX ? n : PRODUCT_NAME_MAX);
    if (kind == INTERN_NAME) {
        n = product_name_display(raw, buf, sizeof buf);
        v.a = pool_dup(ix, buf, n);
        product_name_key(raw, buf, sizeof buf);
        v.b = intern_get(ix, &ix->staging->keys, buf, INTERN_KEY)->raw;
    } else if (kind == INTERN_PUBLISHER) {
        n = collapse(raw, buf, sizeof buf);
        v.a = pool_dup(ix, buf, n);
        product_publisher_key(raw, buf, sizeof buf);
        v.b = intern_get(ix, &ix->staging->keys, buf, INTERN_KEY)->raw;
    } else if (kind == INTERN_VERSION) { /* raw is already collapsed */
        struct product_staging *s = ix->staging;

        v.a = v.raw;
        v.id = s->nv;
        s->vlist = mem_grow(s->vlist, &s->capv, s->nv + 1, sizeof *s->vlist);
        s->vlist[s->nv++] = v.raw;
    } else {
        v.a = v.raw;
    }
    intern_put(t, v);
    return intern_get(ix, t, v.raw, kind);
}

static void
staging_free(struct product_staging *s)
{
    if (s == NULL)
        return;
    free(s->rows);
    free(s->names.slot);
    free(s->pubs.slot);
    free(s->versions.slot);
    free(s->keys.slot);
    free(s->vlist);
    free(s);
}

int
product_index_add(struct product_index *ix, int64_t title_id, int64_t client_id, const char *name,
                  const char *publisher, const char *version, int64_t devices, struct errbuf *eb)
{
    struct product_staging *s = ix->staging;
    const struct intern_slot *nm, *pb, *vs;
    struct stage_row *r;
    char buf[PRODUCT_NAME_MAX];

    if (s == NULL)
        return err_set(eb, ERR_INVAL, "the product index is already finished");
    if (s->n >= PRODUCT_TITLES_MAX)
        return err_set(eb, ERR_TOOBIG, "more than %d software titles", PRODUCT_TITLES_MAX);
    nm = intern_get(ix, &s->names, name != NULL ? name : "", INTERN_NAME);
    pb = intern_get(ix, &s->pubs, publisher != NULL ? publisher : "", INTERN_PUBLISHER);
    collapse(version != NULL ? version : "", buf, sizeof buf);
    vs = intern_get(ix, &s->versions, buf, INTERN_VERSION);
    s->rows = mem_grow(s->rows, &s->cap, s->n + 1, sizeof *s->rows);
    r = &s->rows[s->n++];
    r->name = nm->a;
    r->name_key = nm->b;
    r->pub = pb->a;
    r->pub_key = pb->b;
    r->version = vs->a;
    r->vid = vs->id;
    r->title_id = title_id;
    r->client_id = client_id;
    r->devices = devices > 0 ? devices : 0;
    return ERR_OK;
}

/* Groups rows by product (canonical keys: by address), versions newest first (vid holds the
 * version's rank by then), then client and title. */
static int
row_cmp(const void *x, const void *y)
{
    const struct stage_row *a = x, *b = y;

    if (a->name_key != b->name_key)
        return (uintptr_t)a->name_key < (uintptr_t)b->name_key ? -1 : 1;
    if (a->pub_key != b->pub_key)
        return (uintptr_t)a->pub_key < (uintptr_t)b->pub_key ? -1 : 1;
    if (a->vid != b->vid)
        return a->vid > b->vid ? -1 : 1;
    if (a->client_id != b->client_id)
        return a->client_id < b->client_id ? -1 : 1;
    return a->title_id < b->title_id ? -1 : a->title_id > b->title_id;
}

static int
version_order(const void *x, const void *y)
{
    const char *a = *(const char *const *)x, *b = *(const char *const *)y;
    int c = product_version_cmp(a, b);

    return c != 0 ? c : strcmp(a, b);
}

static int
i64_cmp(const void *x, const void *y)
{
    int64_t a = *(const int64_t *)x, b = *(const int64_t *)y;

    return a < b ? -1 : a > b;
}

static int
product_cmp(const void *x, const void *y)
{
    const struct product *a = x, *b = y;
    int c;

    if (a->devices != b->devices)
        return a->devices > b->devices ? -1 : 1;
    if ((c = strcmp(a->name_key, b->name_key)) != 0)
        return c;
    return strcmp(a->publisher_key, b->publisher_key);
}

void
product_index_finish(struct product_index *ix)
{
    struct product_staging *s = ix->staging;
    size_t capp = 0, capv = 0, i = 0;
    int64_t *clients = NULL;
    size_t capc = 0;

    if (s == NULL)
        return;
    if (s->nv > 0) { /* each version's rank in natural order, by its first-seen index */
        const char **sorted = xcalloc(s->nv, sizeof *sorted);
        size_t *rank = xcalloc(s->nv, sizeof *rank);
        struct intern *vt = &s->versions;

        memcpy(sorted, s->vlist, s->nv * sizeof *sorted);
        qsort(sorted, s->nv, sizeof *sorted, version_order);
        for (size_t k = 0; k < s->nv; k++)
            for (size_t h = (size_t)hash_bytes(sorted[k], strlen(sorted[k])) & (vt->cap - 1);
                 vt->slot[h].raw != NULL; h = (h + 1) & (vt->cap - 1))
                if (vt->slot[h].raw == sorted[k]) {
                    rank[vt->slot[h].id] = k;
                    break;
                }
        for (size_t k = 0; k < s->n; k++)
            s->rows[k].vid = rank[s->rows[k].vid];
        free(rank);
        free(sorted);
    }
    if (s->n > 0)
        qsort(s->rows, s->n, sizeof *s->rows, row_cmp);
    ix->titles = s->n > 0 ? xcalloc(s->n, sizeof *ix->titles) : NULL;
    while (i < s->n) {
        size_t j = i, best = i, nc = 0;
        struct product *p;

        while (j < s->n && s->rows[j].name_key == s->rows[i].name_key &&
               s->rows[j].pub_key == s->rows[i].pub_key)
            j++;
        ix->products = mem_grow(ix->products, &capp, ix->nproducts + 1, sizeof *ix->products);
        p = &ix->products[ix->nproducts++];
        memset(p, 0, sizeof *p);
        p->name_key = s->rows[i].name_key;
        p->publisher_key = s->rows[i].pub_key;
        p->id = product_id(p->name_key, p->publisher_key);
        p->first_version = ix->nversions;
        p->titles = (int64_t)(j - i);
        clients = mem_grow(clients, &capc, j - i, sizeof *clients);
        for (size_t k = i; k < j;) {
            size_t m = k, vc = 0;
            struct product_version *v;

            while (m < j && s->rows[m].version == s->rows[k].version)
                m++;
            ix->versions = mem_grow(ix->versions, &capv, ix->nversions + 1, sizeof *ix->versions);
            v = &ix->versions[ix->nversions++];
            memset(v, 0, sizeof *v);
            v->version = s->rows[k].version;
            v->first_title = ix->ntitles;
            for (size_t q = k; q < m; q++) {
                const struct stage_row *r = &s->rows[q];

                /* rows of a version are sorted by client */
                if (q == k || r->client_id != s->rows[q - 1].client_id)
                    vc++;
                v->devices += r->devices;
                clients[nc++] = r->client_id;
                ix->titles[ix->ntitles].title_id = r->title_id;
                ix->titles[ix->ntitles].client_id = r->client_id;
                ix->titles[ix->ntitles].devices = r->devices;
                ix->ntitles++;
                if (r->devices > s->rows[best].devices)
                    best = q;
            }
            v->ntitles = m - k;
            v->clients = (int64_t)vc;
            p->devices += v->devices;
            p->nversions++;
            k = m;
        }
        qsort(clients, nc, sizeof *clients, i64_cmp);
        for (size_t k = 0; k < nc; k++)
            if (k == 0 || clients[k] != clients[k - 1])
                p->clients++;
        p->name = s->rows[best].name;
        p->publisher = s->rows[best].pub;
        i = j;
    }
    if (ix->nproducts > 0)
        qsort(ix->products, ix->nproducts, sizeof *ix->products, product_cmp);
    free(clients);
    staging_free(s);
    ix->staging = NULL;
}

struct dedupe_title {
    int64_t client;
    size_t title, version;
};

struct dedupe_dev {
    size_t version;
    int64_t id;
};

static int
dedupe_title_cmp(const void *x, const void *y)
{
    const struct dedupe_title *a = x, *b = y;

    if (a->client != b->client)
        return a->client < b->client ? -1 : 1;
    return a->title < b->title ? -1 : a->title > b->title;
}

static int
dedupe_id_cmp(const void *x, const void *y)
{
    const struct dedupe_dev *a = x, *b = y;

    return a->id < b->id ? -1 : a->id > b->id;
}

static int
dedupe_version_cmp(const void *x, const void *y)
{
    const struct dedupe_dev *a = x, *b = y;

    if (a->version != b->version)
        return a->version < b->version ? -1 : 1;
    return a->id < b->id ? -1 : a->id > b->id;
}

/* Devices of one client's titles of a product (devs[0..n), every title's once): subtracts from
 * the product, and from each version, the devices counted more than once. */
static void
dedupe_group(struct product_index *ix, struct product *p, struct dedupe_dev *devs, size_t n)
{
    if (n < 2)
        return; /* nothing counted twice (and devs may be NULL: qsort must not see it) */
    qsort(devs, n, sizeof *devs, dedupe_id_cmp);
    for (size_t k = 1; k < n; k++)
        if (devs[k].id == devs[k - 1].id)
            p->devices--;
    qsort(devs, n, sizeof *devs, dedupe_version_cmp);
    for (size_t k = 1; k < n; k++)
        if (devs[k].version == devs[k - 1].version && devs[k].id == devs[k - 1].id)
            ix->versions[devs[k].version].devices--;
}

int
product_index_dedupe(struct product_index *ix, product_devices_fn *devices, void *arg,
                     struct errbuf *eb)
{
    struct dedupe_title *tl = NULL;
    struct dedupe_dev *devs = NULL;
    size_t captl = 0, capd = 0;
    int rc = ERR_OK;

    if (ix->staging != NULL)
        return err_set(eb, ERR_INVAL, "the product index is not finished");
    for (size_t pi = 0; pi < ix->nproducts && rc == ERR_OK; pi++) {
        struct product *p = &ix->products[pi];
        size_t nt = 0;

        for (size_t vi = p->first_version; vi < p->first_version + p->nversions; vi++) {
            const struct product_version *v = &ix->versions[vi];

            for (size_t t = v->first_title; t < v->first_title + v->ntitles; t++) {
                tl = mem_grow(tl, &captl, nt + 1, sizeof *tl);
                tl[nt].client = ix->titles[t].client_id;
                tl[nt].title = t;
                tl[nt].version = vi;
                nt++;
            }
        }
        if (nt > 1)
            qsort(tl, nt, sizeof *tl, dedupe_title_cmp);
        for (size_t a = 0, b; a < nt && rc == ERR_OK; a = b) {
            size_t nd = 0;

            for (b = a + 1; b < nt && tl[b].client == tl[a].client; b++)
                ;
            if (b - a < 2)
                continue; /* one title: its count is of distinct devices already */
            for (size_t k = a; k < b && rc == ERR_OK; k++) {
                int64_t *ids = NULL;
                size_t n = 0;

                rc = devices(arg, ix->titles[tl[k].title].title_id, &ids, &n, eb);
                if (rc == ERR_OK && n > 0) {
                    devs = mem_grow(devs, &capd, nd + n, sizeof *devs);
                    for (size_t q = 0; q < n; q++) {
                        devs[nd + q].version = tl[k].version;
                        devs[nd + q].id = ids[q];
                    }
                    nd += n;
                }
                free(ids);
            }
            if (rc == ERR_OK)
                dedupe_group(ix, p, devs, nd);
        }
    }
    if (rc == ERR_OK && ix->nproducts > 0)
        qsort(ix->products, ix->nproducts, sizeof *ix->products, product_cmp);
    free(tl);
    free(devs);
    return rc;
}

void
product_index_free(struct product_index *ix)
{
    struct product_index_priv *pv = (struct product_index_priv *)ix;
    struct pool_block *b;

    if (ix == NULL)
        return;
    staging_free(ix->staging);
    free(ix->products);
    free(ix->versions);
    free(ix->titles);
    while ((b = pv->blocks) != NULL) {
        pv->blocks = b->next;
        free(b);
    }
    free(pv);
}

const struct product *
product_index_find(const struct product_index *ix, int64_t id)
{
    for (size_t i = 0; ix != NULL && i < ix->nproducts; i++)
        if (ix->products[i].id == id)
            return &ix->products[i];
    return NULL;
}

/* Case-insensitive (ASCII) substring. */
static int
icontains(const char *hay, const char *needle)
{
    size_t n = strlen(needle);

    if (hay == NULL)
        return 0;
    for (; *hay != '\0'; hay++) {
        size_t k = 0;

        while (k < n && hay[k] != '\0' &&
               lower((unsigned char)hay[k]) == lower((unsigned char)needle[k]))
            k++;
        if (k == n)
            return 1;
    }
    return 0;
}

int
product_matches(const struct product *p, const char *text)
{
    if (text == NULL || text[0] == '\0')
        return 1;
    return icontains(p->name, text) || icontains(p->name_key, text) ||
           icontains(p->publisher, text);
}
