/* graphparse.c - the sync's hot Graph parsers on yajl's callback API: managedDevices pages,
 * detectedApps pages and $batch answers, mapped as the tokens arrive (no tree). The strictness
 * contract is in graph.h; the mapping rules are those of device_from_graph and the jansson
 * code this replaced, checked member by member in the same order so messages stay the same. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sodium.h>
#include <yajl/yajl_parse.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "clock.h"
#include "graph.h"
#include "utf8.h"
#include "http.h"
#include "mem.h"

/* A member name with its length (keys are compared by length first). */
struct mname {
    const char *s;
    size_t len;
};
#define MN(lit)                                                                                    \
    {                                                                                              \
        lit, sizeof lit - 1                                                                        \
    }

/* Value types as seen per known member. */
enum vt { V_ABSENT = 0, V_NULL, V_STR, V_INT, V_REAL, V_TRUE, V_FALSE, V_OBJ, V_ARR };

struct mval {
    uint8_t t;
    uint8_t in_body; /* V_STR: the text is in the body at off (not NUL-terminated) */
    size_t off, len; /* V_STR: else at scratch + off, NUL-terminated */
    int64_t i;       /* V_INT */
};

/* Container kinds; each map kind has a member table (below). */
enum kind {
    K_SKIP,    /* not read: everything inside is ignored */
    K_DPAGE,   /* managedDevices page */
    K_DLIST,   /* its value array */
    K_DEV,     /* a managedDevice */
    K_DEVW,    /* the docs' {"value": {...}} wrapper content of a managedDevice */
    K_APAGE,   /* detectedApps page (top level or a $batch body) */
    K_ALIST,   /* its value array */
    K_APP,     /* a detectedApp */
    K_BROOT,   /* $batch answer */
    K_BLIST,   /* its responses array */
    K_BITEM,   /* one response */
    K_BHDR,    /* its headers */
    K_DETAIL,  /* a managedDevice detail body */
    K_DETAILW, /* its {"value": {...}} wrapper content */
    K_COUNT
};

enum { PV_VALUE, PV_NEXT, PV_N };
static const struct mname page_members[] = {MN("value"), MN("@odata.nextLink")};

enum {
    DM_ID,
    DM_STR0, /* 17 string members from here, in dev_strs order */
    DM_SERIAL = DM_STR0 + 17,
    DM_OWNER,
    DM_ENC,
    DM_SUP,
    DM_TOTAL,
    DM_FREE,
    DM_MEM,
    DM_ENROLLED,
    DM_LASTSYNC,
    DM_VALUE,
    DM_N
};
static const struct mname dev_members[DM_N] = {MN("id"),
                                               MN("azureADDeviceId"),
                                               MN("deviceName"),
                                               MN("manufacturer"),
                                               MN("model"),
                                               MN("operatingSystem"),
                                               MN("osVersion"),
                                               MN("userPrincipalName"),
                                               MN("userDisplayName"),
                                               MN("emailAddress"),
                                               MN("complianceState"),
                                               MN("managementState"),
                                               MN("deviceEnrollmentType"),
                                               MN("wiFiMacAddress"),
                                               MN("ethernetMacAddress"),
                                               MN("imei"),
                                               MN("meid"),
                                               MN("phoneNumber"),
                                               MN("serialNumber"),
                                               MN("managedDeviceOwnerType"),
                                               MN("isEncrypted"),
                                               MN("isSupervised"),
                                               MN("totalStorageSpaceInBytes"),
                                               MN("freeStorageSpaceInBytes"),
                                               MN("physicalMemoryInBytes"),
                                               MN("enrolledDateTime"),
                                               MN("lastSyncDateTime"),
                                               MN("value")};
static const size_t dev_strs[17] = {
    offsetof(struct device, aad_device_id),
    offsetof(struct device, name),
    offsetof(struct device, manufacturer),
    offsetof(struct device, model),
    offsetof(struct device, os_name),
    offsetof(struct device, os_version),
    offsetof(struct device, user_upn),
    offsetof(struct device, user_name),
    offsetof(struct device, user_email),
    offsetof(struct device, compliance_state),
    offsetof(struct device, management_state),
    offsetof(struct device, enrollment_type),
    offsetof(struct device, wifi_mac),
    offsetof(struct device, ethernet_mac),
    offsetof(struct device, imei),
    offsetof(struct device, meid),
    offsetof(struct device, phone),
};

enum { AM_ID, AM_NAME, AM_VERSION, AM_PUBLISHER, AM_PLATFORM, AM_SIZE, AM_N };
static const struct mname app_members[] = {MN("id"),        MN("displayName"), MN("version"),
                                           MN("publisher"), MN("platform"),    MN("sizeInByte")};

enum { BM_ID, BM_STATUS, BM_HEADERS, BM_BODY, BM_N };
static const struct mname item_members[] = {MN("id"), MN("status"), MN("headers"), MN("body")};
static const struct mname root_members[] = {MN("responses")};
static const struct mname header_members[] = {MN("Retry-After")};

enum { TM_MEM, TM_MAC, TM_VALUE, TM_N };
static const struct mname detail_members[] = {MN("physicalMemoryInBytes"), MN("ethernetMacAddress"),
                                              MN("value")};

struct table {
    const struct mname *names;
    int n;
    int ci; /* names compare case-insensitively (HTTP headers) */
};

static const struct table tables[K_COUNT] = {
    [K_DPAGE] = {page_members, PV_N, 0},    [K_DEV] = {dev_members, DM_N, 0},
    [K_DEVW] = {dev_members, DM_N, 0},      [K_APAGE] = {page_members, PV_N, 0},
    [K_APP] = {app_members, AM_N, 0},       [K_BROOT] = {root_members, 1, 0},
    [K_BITEM] = {item_members, BM_N, 0},    [K_BHDR] = {header_members, 1, 1},
    [K_DETAIL] = {detail_members, TM_N, 0}, [K_DETAILW] = {detail_members, TM_N, 0},
};

#define NO_LAST 63

struct frame {
    uint8_t kind;
    int8_t key;     /* member index of the value being read, -1 for an unknown member */
    int8_t last;    /* the member read last, or NO_LAST */
    uint64_t seen;  /* known members met so far: a second one is a duplicate */
    size_t count;   /* arrays: elements so far */
    uint32_t obj;   /* maps: serial number, for the duplicate check of members not read */
    struct mval *v; /* maps with a table: where member values go */
};

enum mode { M_DEVICES, M_APPS, M_BATCH };

/* A detectedApps page being read, and where its apps go. */
struct apage {
    struct detected_app **apps;
    size_t *n, *cap, start;
    char *next;
    int failed; /* an app was not understood; eb says why */
    struct errbuf eb;
};

struct ps {
    enum mode mode;
    enum graph_batch_kind bkind;
    const char *what;
    int depth;
    struct frame st[GRAPH_JSON_MAX_DEPTH + 1];
    char why[160]; /* set when a callback stops the parse */
    yajl_handle h;
    size_t end; /* where the top-level value ended */
    int root_not_object;
    const char *body; /* the text being parsed */
    size_t blen;
    char *sb; /* scratch for the strings of the entity being read */
    size_t sn, scap;
    char num[64];
    /* Members come in a steady order: after member i of a kind, succ[kind][i] is tried first. */
    int8_t succ[K_COUNT][NO_LAST + 1];
    /* Members not read, of every object so far: (object serial, name) in an open-addressed
     * set, names in kb. Grows with the body, which http.c caps. */
    struct ukey {
        uint32_t obj, hash;
        size_t off, len;
    } * uk;
    size_t ukn, ukcap;
    char *kb;
    size_t kbn, kbcap;
    uint32_t objs;
    unsigned char hkey[crypto_shorthash_KEYBYTES];
    int keyed;

    struct mval pv[PV_N];    /* page level (K_DPAGE, K_APAGE) */
    struct mval dv[2][DM_N]; /* device: as is, and inside a {"value": {...}} wrapper */
    struct mval av[AM_N];
    struct mval rv[1];
    struct mval iv[BM_N];
    struct mval hv[1];
    struct mval tv[2][TM_N];

    /* M_DEVICES */
    struct device **devs;
    size_t *n, *cap, start;
    int dev_failed;
    struct errbuf dev_eb;
    char *next;

    /* M_APPS and $batch bodies of GRAPH_BATCH_APPS */
    struct apage ap;
    graph_app_find_fn *find; /* NULL: copy every app */
    void *find_arg;

    /* M_BATCH: items[GRAPH_BATCH_MAX] catches the ones past the limit, then is cleared */
    struct graph_batch_item *items;
    struct graph_batch_item *cur;
    size_t bad_item; /* first item without id or status, SIZE_MAX for none */
    size_t nresp;
    char *item_id;
};

static int stop(struct ps *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int
stop(struct ps *p, const char *fmt, ...)
{
    va_list ap;

    va_start(ap, fmt);
    vsnprintf(p->why, sizeof p->why, fmt, ap);
    va_end(ap);
    return 0;
}

static void
scratch_grow(struct ps *p, size_t len)
{
    p->sb = mem_grow(p->sb, &p->scap, p->sn + len + 1, 1);
}

/* Appends s to the scratch, NUL-terminated; returns its offset. */
static size_t
scratch_put(struct ps *p, const char *s, size_t len)
{
    size_t off = p->sn;

    if (p->scap - p->sn < len + 1)
        scratch_grow(p, len);
    memcpy(p->sb + off, s, len);
    p->sb[off + len] = '\0';
    p->sn += len + 1;
    return off;
}

/* A V_STR's text; NUL-terminated unless in_body (only K_APP strings may be). */
static const char *
sv(const struct ps *p, const struct mval *m)
{
    return (m->in_body ? p->body : p->sb) + m->off;
}

/* Keyed (SipHash with a random key per parse, as jansson seeds its hash) so that no body can
 * put every name in one probe chain. */
static uint32_t
key_hash(struct ps *p, uint32_t obj, const unsigned char *k, size_t len)
{
    unsigned char out[crypto_shorthash_BYTES];
    uint64_t h;

    if (!p->keyed) {
        randombytes_buf(p->hkey, sizeof p->hkey);
        p->keyed = 1;
    }
    crypto_shorthash(out, k, len, p->hkey);
    memcpy(&h, out, sizeof h);
    h ^= (uint64_t)obj * UINT64_C(0x9e3779b97f4a7c15);
    return (uint32_t)(h ^ (h >> 32));
}

/* 1 when this object already had a member of this name; else remembers it. */
static int
unread_seen(struct ps *p, uint32_t obj, const unsigned char *k, size_t len)
{
    uint32_t h = key_hash(p, obj, k, len);
    size_t mask, i;

    if (p->ukn * 2 >= p->ukcap) {
        size_t ncap = p->ukcap ? p->ukcap * 2 : 64;
        struct ukey *t = xcalloc(ncap, sizeof *t);

        for (size_t j = 0; j < p->ukcap; j++) {
            if (p->uk[j].obj == 0)
                continue;
            for (i = p->uk[j].hash & (ncap - 1); t[i].obj != 0; i = (i + 1) & (ncap - 1))
                ;
            t[i] = p->uk[j];
        }
        free(p->uk);
        p->uk = t;
        p->ukcap = ncap;
    }
    mask = p->ukcap - 1;
    for (i = h & mask; p->uk[i].obj != 0; i = (i + 1) & mask) {
        const struct ukey *u = &p->uk[i];

        if (u->obj == obj && u->hash == h && u->len == len && memcmp(p->kb + u->off, k, len) == 0)
            return 1;
    }
    p->kb = mem_grow(p->kb, &p->kbcap, p->kbn + len + 1, 1); /* + 1: never NULL, even for "" */
    memcpy(p->kb + p->kbn, k, len);
    p->uk[i] = (struct ukey){obj, h, p->kbn, len};
    p->kbn += len;
    p->ukn++;
    return 0;
}

/* ---- text checks yajl does not make ------------------------------------------------------- */

static int
hex4(const unsigned char *s, unsigned *out)
{
    unsigned v = 0;

    for (int i = 0; i < 4; i++) {
        unsigned c = s[i];

        if (c >= '0' && c <= '9')
            v = v * 16 + (c - '0');
        else if ((c | 0x20) >= 'a' && (c | 0x20) <= 'f')
            v = v * 16 + ((c | 0x20) - 'a' + 10);
        else
            return 0;
    }
    *out = v;
    return 1;
}

#ifdef __SSE2__
/* 0xff for each byte of s[0..16) that is not printable ASCII or is a backslash. Signed compare:
 * bytes >= 0x80 are negative, so "< 0x20" catches them too. */
static __m128i
unclean16(const unsigned char *s)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);

    return _mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                        _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')));
}

/* Where the run of printable ASCII without a backslash from i ends, or the last 64-byte step
 * before n: the whole text goes through here. */
static size_t
clean_run(const unsigned char *s, size_t i, size_t n)
{
    while (n - i >= 64) {
        __m128i a = unclean16(s + i), b = unclean16(s + i + 16);
        __m128i c = unclean16(s + i + 32), d = unclean16(s + i + 48);

        if (_mm_movemask_epi8(_mm_or_si128(_mm_or_si128(a, b), _mm_or_si128(c, d))) != 0) {
            uint64_t m = (uint64_t)(unsigned)_mm_movemask_epi8(a) |
                         (uint64_t)(unsigned)_mm_movemask_epi8(b) << 16 |
                         (uint64_t)(unsigned)_mm_movemask_epi8(c) << 32 |
                         (uint64_t)(unsigned)_mm_movemask_epi8(d) << 48;

            return i + (size_t)__builtin_ctzll(m);
        }
        i += 64;
    }
    return i;
}
#else
static size_t
clean_run(const unsigned char *s, size_t i, size_t n)
{
    (void)s;
    (void)n;
    return i;
}
#endif

/* yajl checks only the shape of UTF-8, decodes \u0000 and lone surrogate escapes without
 * complaint and takes \v and \f for whitespace; jansson refused all of these, and so do we.
 * Backslashes only occur inside strings in text yajl accepts, so every one met here starts an
 * escape. NULL when the text is clean. */
static const char *
text_check(const unsigned char *s, size_t n)
{
    size_t i = 0;

    while (i < n) {
        unsigned u, lo;
        size_t k;

        /* Printable ASCII without a backslash: 64, then 8 bytes at a time. */
        i = clean_run(s, i, n);
        while (n - i >= 8) {
            uint64_t w, x, m;

            memcpy(&w, s + i, 8);
            x = w ^ UINT64_C(0x5c5c5c5c5c5c5c5c);
            m = w | ((x - UINT64_C(0x0101010101010101)) & ~x) |
                ((w - UINT64_C(0x2020202020202020)) & ~w);
            if ((m & UINT64_C(0x8080808080808080)) != 0)
                break;
            i += 8;
        }
        if (i >= n)
            break;
        /* yajl skips \v and \f as whitespace; JSON has only space, \t, \n and \r. Other
         * control characters are refused by yajl wherever they are. */
        if (s[i] == 0x0b || s[i] == 0x0c)
            return "a control character outside a string";
        if (s[i] < 0x80 && s[i] != '\\') {
            i++;
            continue;
        }
        if (s[i] == '\\') {
            if (n - i < 6 || s[i + 1] != 'u' || !hex4(s + i + 2, &u)) {
                i += 2; /* another escape; yajl refuses the invalid ones */
                continue;
            }
            if (u == 0)
                return "\\u0000 is not allowed in a string";
            if (u >= 0xdc00 && u <= 0xdfff)
                return "a lone UTF-16 surrogate escape";
            if (u >= 0xd800 && u <= 0xdbff) {
                if (n - i < 12 || s[i + 6] != '\\' || s[i + 7] != 'u' || !hex4(s + i + 8, &lo) ||
                    lo < 0xdc00 || lo > 0xdfff)
                    return "a lone UTF-16 surrogate escape";
                i += 12;
            } else {
                i += 6;
            }
            continue;
        }
        if ((k = utf8_char_len(s + i, n - i)) == 0)
            return "invalid UTF-8";
        i += k;
    }
    return NULL;
}

/* ---- mapping -------------------------------------------------------------------------------- */

static int
str_ok(const struct mval *m)
{
    return m->t == V_ABSENT || m->t == V_NULL || m->t == V_STR;
}

/* A non-empty string member. */
static int
has_str(const struct mval *m)
{
    return m->t == V_STR && m->len > 0;
}

static char *
put_str(char *base, size_t *off, const char *s, size_t n)
{
    char *p = base + *off;

    memcpy(p, s, n);
    p[n] = '\0';
    *off += n + 1;
    return p;
}

/* device_from_graph's checks, in its order, over the members collected for one device. */
static int
device_build(struct ps *p, struct device *d, struct errbuf *eb)
{
    const struct mval *v = p->dv[0];
    const char *own = "unknown";
    size_t total, off = 0;
    int rc;

    device_init(d);
    if (v[DM_ID].t == V_ABSENT && v[DM_VALUE].t == V_OBJ)
        v = p->dv[1];
    if (!has_str(&v[DM_ID]))
        return err_set(eb, ERR_PARSE, "managedDevice has no id");
    for (int i = DM_STR0; i <= DM_OWNER; i++) {
        if (!str_ok(&v[i]))
            return err_set(eb, ERR_PARSE, "managedDevice member %s is not a string",
                           dev_members[i].s);
    }
    if (has_str(&v[DM_OWNER]) && strcasecmp(sv(p, &v[DM_OWNER]), "company") == 0)
        own = "company";
    else if (has_str(&v[DM_OWNER]) && strcasecmp(sv(p, &v[DM_OWNER]), "personal") == 0)
        own = "personal";
    total = v[DM_ID].len + 1 + strlen(own) + 1;
    for (int i = 0; i < 17; i++)
        total += has_str(&v[DM_STR0 + i]) ? v[DM_STR0 + i].len + 1 : 0;
    d->strings = xmalloc(total);
    d->strings_len = total;
    d->intune_id = put_str(d->strings, &off, sv(p, &v[DM_ID]), v[DM_ID].len);
    d->ownership = put_str(d->strings, &off, own, strlen(own));
    for (int i = 0; i < 17; i++) {
        const struct mval *m = &v[DM_STR0 + i];

        if (has_str(m))
            *(char **)(void *)((char *)d + dev_strs[i]) =
                put_str(d->strings, &off, sv(p, m), m->len);
    }
    if (has_str(&v[DM_SERIAL]))
        d->serial = device_serial_normalize(sv(p, &v[DM_SERIAL]));
    for (int i = DM_ENC; i <= DM_SUP; i++) {
        int *out = i == DM_ENC ? &d->is_encrypted : &d->is_supervised;

        if (v[i].t == V_TRUE || v[i].t == V_FALSE) {
            *out = v[i].t == V_TRUE;
        } else if (v[i].t != V_ABSENT && v[i].t != V_NULL) {
            rc = err_set(eb, ERR_PARSE, "managedDevice member %s is not a boolean",
                         dev_members[i].s);
            goto fail;
        }
    }
    for (int i = DM_TOTAL; i <= DM_MEM; i++) {
        int64_t *out = i == DM_TOTAL  ? &d->storage_total
                       : i == DM_FREE ? &d->storage_free
                                      : &d->memory;

        if (v[i].t == V_INT) {
            if (v[i].i >= 0)
                *out = v[i].i;
        } else if (v[i].t != V_ABSENT && v[i].t != V_NULL) {
            rc = err_set(eb, ERR_PARSE, "managedDevice member %s is not an integer",
                         dev_members[i].s);
            goto fail;
        }
    }
    for (int i = DM_ENROLLED; i <= DM_LASTSYNC; i++) {
        int64_t *out = i == DM_ENROLLED ? &d->enrolled_at : &d->last_check_in_at;

        if (v[i].t == V_ABSENT || v[i].t == V_NULL)
            continue;
        if (v[i].t != V_STR) {
            rc = err_set(eb, ERR_PARSE, "managedDevice member %s is not a date string",
                         dev_members[i].s);
            goto fail;
        }
        if (v[i].len > 0 && clock_parse(sv(p, &v[i]), out) != ERR_OK) {
            *out = TS_NULL;
            rc = err_set(eb, ERR_PARSE, "managedDevice member %s is not a valid date",
                         dev_members[i].s);
            goto fail;
        }
    }
    device_derive(d);
    return ERR_OK;
fail:
    device_clear(d);
    return rc;
}

static void
device_done(struct ps *p, size_t index)
{
    if (p->dev_failed)
        return; /* the page fails anyway: save the work */
    *p->devs = mem_grow(*p->devs, p->cap, *p->n + 1, sizeof **p->devs);
    if (device_build(p, &(*p->devs)[*p->n], &p->dev_eb) != ERR_OK) {
        err_prefix(&p->dev_eb, ERR_PARSE, "device %zu of the page", index + 1);
        p->dev_failed = 1;
        return;
    }
    (*p->n)++;
}

static void
dev_not_object(struct ps *p, size_t index)
{
    if (p->dev_failed)
        return;
    err_set(&p->dev_eb, ERR_PARSE, "managedDevice is not a JSON object");
    err_prefix(&p->dev_eb, ERR_PARSE, "device %zu of the page", index + 1);
    p->dev_failed = 1;
}

static void app_failed(struct ps *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static void
app_failed(struct ps *p, const char *fmt, ...)
{
    va_list ap;

    if (p->ap.failed)
        return;
    va_start(ap, fmt);
    vsnprintf(p->ap.eb.msg, sizeof p->ap.eb.msg, fmt, ap);
    va_end(ap);
    p->ap.eb.code = ERR_PARSE;
    p->ap.failed = 1;
}

/* app_from_json's checks, in its order. */
static void
app_done(struct ps *p)
{
    const struct mval *v = p->av;
    struct apage *a = &p->ap;
    struct detected_app *app;

    if (a->failed)
        return;
    if (!has_str(&v[AM_ID])) {
        app_failed(p, "detectedApp has no id");
        return;
    }
    for (int i = AM_NAME; i <= AM_PLATFORM; i++) {
        if (!str_ok(&v[i])) {
            app_failed(p, "detectedApp member %s is not a string", app_members[i].s);
            return;
        }
    }
    if (v[AM_SIZE].t != V_ABSENT && v[AM_SIZE].t != V_NULL && v[AM_SIZE].t != V_INT) {
        app_failed(p, "detectedApp member %s is not an integer", app_members[AM_SIZE].s);
        return;
    }
    *a->apps = mem_grow(*a->apps, a->cap, *a->n + 1, sizeof **a->apps);
    app = &(*a->apps)[(*a->n)++];
    memset(app, 0, sizeof *app);
    app->size_bytes = v[AM_SIZE].t == V_INT && v[AM_SIZE].i >= 0 ? v[AM_SIZE].i : -1;
    if (p->find != NULL &&
        (app->known = p->find(p->find_arg, sv(p, &v[AM_ID]), v[AM_ID].len)) != UINT32_MAX)
        return;
    app->id = xstrndup(sv(p, &v[AM_ID]), v[AM_ID].len);
    app->name = has_str(&v[AM_NAME]) ? xstrndup(sv(p, &v[AM_NAME]), v[AM_NAME].len) : NULL;
    app->version =
        has_str(&v[AM_VERSION]) ? xstrndup(sv(p, &v[AM_VERSION]), v[AM_VERSION].len) : NULL;
    app->publisher =
        has_str(&v[AM_PUBLISHER]) ? xstrndup(sv(p, &v[AM_PUBLISHER]), v[AM_PUBLISHER].len) : NULL;
    app->platform =
        has_str(&v[AM_PLATFORM]) ? xstrndup(sv(p, &v[AM_PLATFORM]), v[AM_PLATFORM].len) : NULL;
}

static void
apps_rollback(struct apage *a)
{
    while (*a->n > a->start)
        detected_app_clear(&(*a->apps)[--(*a->n)]);
}

/* The page-level checks of graph_apps_from_json, then the first app problem. */
static int
apage_done(struct ps *p, struct errbuf *eb)
{
    struct apage *a = &p->ap;
    const struct mval *next = &p->pv[PV_NEXT];
    int rc = ERR_OK;

    if (p->pv[PV_VALUE].t != V_OBJ && p->pv[PV_VALUE].t != V_ARR)
        rc = err_set(eb, ERR_PARSE, "detectedApps page has no \"value\" array");
    else if (next->t != V_ABSENT && next->t != V_NULL && (next->t != V_STR || next->len == 0))
        rc = err_set(eb, ERR_PARSE, "detectedApps page: @odata.nextLink is not a URL string");
    else if (a->failed)
        rc = err_set(eb, ERR_PARSE, "%s", a->eb.msg);
    if (rc != ERR_OK) {
        apps_rollback(a);
        free(a->next);
        a->next = NULL;
    }
    return rc;
}

static void
detail_done(struct ps *p)
{
    const struct mval *v = p->tv[0][TM_VALUE].t == V_OBJ ? p->tv[1] : p->tv[0];

    p->cur->memory = v[TM_MEM].t == V_INT && v[TM_MEM].i > 0 ? v[TM_MEM].i : -1;
    free(p->cur->ethernet_mac);
    p->cur->ethernet_mac = has_str(&v[TM_MAC]) ? xstrndup(sv(p, &v[TM_MAC]), v[TM_MAC].len) : NULL;
}

static void
item_clear(struct graph_batch_item *it)
{
    free(it->id);
    for (size_t i = 0; i < it->napps; i++)
        detected_app_clear(&it->apps[i]);
    free(it->apps);
    free(it->next_link);
    free(it->ethernet_mac);
    memset(it, 0, sizeof *it);
    it->retry_after = -1;
    it->memory = -1;
    it->apps_rc = ERR_PARSE;
}

static void
item_start(struct ps *p, size_t index)
{
    p->cur = &p->items[index < GRAPH_BATCH_MAX ? index : GRAPH_BATCH_MAX];
    item_clear(p->cur);
    memset(p->iv, 0, sizeof p->iv);
    free(p->item_id);
    p->item_id = NULL;
}

static void
item_done(struct ps *p, size_t index)
{
    struct graph_batch_item *it = p->cur;

    if ((p->iv[BM_ID].t != V_STR || p->iv[BM_STATUS].t != V_INT) && p->bad_item == SIZE_MAX)
        p->bad_item = index;
    it->id = p->item_id;
    p->item_id = NULL;
    it->status = (long)p->iv[BM_STATUS].i;
    it->has_body = p->iv[BM_BODY].t == V_OBJ;
    if (it == &p->items[GRAPH_BATCH_MAX])
        item_clear(it);
}

/* ---- callbacks ------------------------------------------------------------------------------ */

static struct frame *
top(struct ps *p)
{
    return &p->st[p->depth];
}

/* The value slot of the member being read in a map frame, or NULL. */
static struct mval *
slot(struct frame *f)
{
    return f->v != NULL && f->key >= 0 ? &f->v[f->key] : NULL;
}

/* An element of a list that must hold objects was something else. */
static void
list_elem_not_object(struct ps *p, struct frame *f)
{
    if (f->kind == K_DLIST)
        dev_not_object(p, f->count);
    else if (f->kind == K_ALIST)
        app_failed(p, "detectedApp is not a JSON object");
    else if (f->kind == K_BLIST && p->bad_item == SIZE_MAX)
        p->bad_item = f->count;
}

/* scalar() for a member of a detectedApp, the bulk of a $batch body; 0 when not one. */
static int
app_scalar(struct ps *p, enum vt t, const char *s, size_t len, int64_t i)
{
    struct frame *f = top(p);
    struct mval *m;

    if (f->kind != K_APP || f->key < 0)
        return 0;
    m = &f->v[f->key];
    m->t = (uint8_t)t;
    m->i = i;
    if (t != V_STR)
        return 1;
    /* Only copied if the app is new: point into the body when the text is there. */
    m->len = len;
    if ((uintptr_t)s - (uintptr_t)p->body < p->blen) {
        m->in_body = 1;
        m->off = (size_t)(s - p->body);
    } else {
        m->in_body = 0;
        m->off = scratch_put(p, s, len);
    }
    return 1;
}

static int
scalar(struct ps *p, enum vt t, const char *s, size_t len, int64_t i)
{
    struct frame *f = top(p);
    struct mval *m;

    if (f->v == NULL) { /* the root, a list or a map not read */
        if (p->depth == 0)
            return stop(p, "the top level is not an object or array");
        if (f->kind == K_DLIST || f->kind == K_ALIST || f->kind == K_BLIST) {
            list_elem_not_object(p, f);
            f->count++;
        }
        return 1;
    }
    if (f->key < 0)
        return 1;
    m = &f->v[f->key];
    m->t = (uint8_t)t;
    m->i = i;
    if (t != V_STR)
        return 1;
    switch (f->kind) {
    case K_APP:
        return app_scalar(p, t, s, len, i);
    case K_DPAGE:
    case K_APAGE: /* the next link outlives the scratch, which each entity reuses */
        m->len = len;
        if (f->key == PV_NEXT) {
            char **next = f->kind == K_DPAGE ? &p->next : &p->ap.next;

            free(*next);
            *next = len > 0 ? xstrndup(s, len) : NULL;
        }
        return 1;
    case K_BITEM:
        if (f->key == BM_ID)
            p->item_id = xstrndup(s, len);
        return 1;
    case K_BHDR: {
        size_t off = scratch_put(p, s, len);

        p->cur->retry_after = http_parse_retry_after(p->sb + off);
        p->sn = off;
        return 1;
    }
    default:
        m->off = scratch_put(p, s, len);
        m->len = len;
        return 1;
    }
}

static int
on_null(void *ctx)
{
    return scalar(ctx, V_NULL, NULL, 0, 0);
}

static int
on_boolean(void *ctx, int b)
{
    return scalar(ctx, b ? V_TRUE : V_FALSE, NULL, 0, 0);
}

static int
on_string(void *ctx, const unsigned char *s, size_t len)
{
    return app_scalar(ctx, V_STR, (const char *)s, len, 0) ||
           scalar(ctx, V_STR, (const char *)s, len, 0);
}

/* on_number past the fast path: reals, and integers of 19 digits or more. */
static __attribute__((noinline)) int
number_slow(struct ps *p, const char *s, size_t len)
{
    char *buf = p->num, *end;
    int real;
    int64_t v = 0;
    int rc = 1;

    real =
        memchr(s, '.', len) != NULL || memchr(s, 'e', len) != NULL || memchr(s, 'E', len) != NULL;
    if (len >= sizeof p->num) {
        if (!real)
            return stop(p, "an integer is out of range");
        buf = xstrndup(s, len);
    } else {
        memcpy(buf, s, len);
        buf[len] = '\0';
    }
    errno = 0;
    if (!real) {
        long long ll = strtoll(buf, &end, 10);

        if (errno == ERANGE || *end != '\0')
            rc = stop(p, "an integer is out of range");
        v = (int64_t)ll;
    } else {
        double d = strtod(buf, &end);

        if ((d == HUGE_VAL || d == -HUGE_VAL) && errno == ERANGE)
            rc = stop(p, "a real number overflows");
    }
    if (buf != p->num)
        free(buf);
    if (rc == 0)
        return 0;
    return scalar(p, real ? V_REAL : V_INT, NULL, 0, v);
}

/* Every number is checked as jansson did: integers must fit int64, reals must not overflow.
 * Where an integer is required, a real (3.0, 1e3) stays a real and is refused by the mapping. */
static int
on_number(void *ctx, const char *s, size_t len)
{
    struct ps *p = ctx;
    int64_t v = 0;
    size_t i = len > 0 && s[0] == '-';

    /* Up to 18 digits cannot overflow: skip strtoll for the common small integer. */
    if (len - i >= 1 && len - i <= 18) {
        for (; i < len && (unsigned char)(s[i] - '0') <= 9; i++)
            v = v * 10 + (s[i] - '0');
        if (i == len) {
            v = s[0] == '-' ? -v : v;
            return app_scalar(p, V_INT, NULL, 0, v) || scalar(p, V_INT, NULL, 0, v);
        }
    }
    return number_slow(p, s, len);
}

static int
push(struct ps *p, enum kind k, struct mval *v)
{
    struct frame *f;

    if (p->depth >= GRAPH_JSON_MAX_DEPTH)
        return stop(p, "nested deeper than %d levels", GRAPH_JSON_MAX_DEPTH);
    f = &p->st[++p->depth];
    f->kind = (uint8_t)k;
    f->key = -1;
    f->last = NO_LAST;
    f->seen = 0;
    f->count = 0;
    f->v = v;
    f->obj = 0;
    return 1;
}

/* push() for a JSON object. */
static int
push_map(struct ps *p, enum kind k, struct mval *v)
{
    if (!push(p, k, v))
        return 0;
    top(p)->obj = ++p->objs;
    return 1;
}

static int
on_start_map(void *ctx)
{
    struct ps *p = ctx;
    struct frame *f = top(p);
    struct mval *m;

    if (p->depth == 0) {
        if (p->mode == M_DEVICES) {
            memset(p->pv, 0, sizeof p->pv);
            return push_map(p, K_DPAGE, p->pv);
        }
        if (p->mode == M_APPS) {
            memset(p->pv, 0, sizeof p->pv);
            return push_map(p, K_APAGE, p->pv);
        }
        memset(p->rv, 0, sizeof p->rv);
        return push_map(p, K_BROOT, p->rv);
    }
    switch (f->kind) {
    case K_DLIST:
        memset(p->dv[0], 0, sizeof p->dv[0]);
        p->sn = 0;
        return push_map(p, K_DEV, p->dv[0]);
    case K_ALIST:
        memset(p->av, 0, sizeof p->av);
        p->sn = 0;
        return push_map(p, K_APP, p->av);
    case K_BLIST:
        item_start(p, f->count);
        return push_map(p, K_BITEM, p->iv);
    default:
        break;
    }
    if ((m = slot(f)) == NULL)
        return push_map(p, K_SKIP, NULL);
    m->t = V_OBJ;
    if (f->kind == K_DEV && f->key == DM_VALUE) {
        memset(p->dv[1], 0, sizeof p->dv[1]);
        return push_map(p, K_DEVW, p->dv[1]);
    }
    if (f->kind == K_APAGE && f->key == PV_VALUE) { /* the single-GET {"value": {...}} form */
        memset(p->av, 0, sizeof p->av);
        p->sn = 0;
        return push_map(p, K_APP, p->av);
    }
    if (f->kind == K_BITEM && f->key == BM_HEADERS) {
        memset(p->hv, 0, sizeof p->hv);
        return push_map(p, K_BHDR, p->hv);
    }
    if (f->kind == K_BITEM && f->key == BM_BODY) {
        if (p->bkind == GRAPH_BATCH_DETAIL) {
            memset(p->tv[0], 0, sizeof p->tv[0]);
            p->sn = 0;
            return push_map(p, K_DETAIL, p->tv[0]);
        }
        memset(p->pv, 0, sizeof p->pv);
        memset(&p->ap, 0, sizeof p->ap);
        p->ap.apps = &p->cur->apps;
        p->ap.n = &p->cur->napps;
        p->ap.cap = &p->cur->capapps;
        return push_map(p, K_APAGE, p->pv);
    }
    if (f->kind == K_DETAIL && f->key == TM_VALUE) {
        memset(p->tv[1], 0, sizeof p->tv[1]);
        return push_map(p, K_DETAILW, p->tv[1]);
    }
    return push_map(p, K_SKIP, NULL);
}

static int
on_start_array(void *ctx)
{
    struct ps *p = ctx;
    struct frame *f = top(p);
    struct mval *m;

    if (p->depth == 0) {
        p->root_not_object = 1;
        return push(p, K_SKIP, NULL);
    }
    if (f->kind == K_DLIST || f->kind == K_ALIST || f->kind == K_BLIST) {
        list_elem_not_object(p, f);
        f->count++;
        return push(p, K_SKIP, NULL);
    }
    if ((m = slot(f)) == NULL)
        return push(p, K_SKIP, NULL);
    m->t = V_ARR;
    if (f->kind == K_DPAGE && f->key == PV_VALUE)
        return push(p, K_DLIST, NULL);
    if (f->kind == K_APAGE && f->key == PV_VALUE)
        return push(p, K_ALIST, NULL);
    if (f->kind == K_BROOT)
        return push(p, K_BLIST, NULL);
    return push(p, K_SKIP, NULL);
}

/* a[0..n) == b[0..n) in word compares: member names are short, and a memcmp call per key cost
 * more than the compare. */
static inline int
bytes_eq(const unsigned char *a, const unsigned char *b, size_t n)
{
    uint64_t x, y;
    uint32_t u, v;

    if (n >= 8) {
        for (size_t i = 0; n - i > 8; i += 8) {
            memcpy(&x, a + i, 8);
            memcpy(&y, b + i, 8);
            if (x != y)
                return 0;
        }
        memcpy(&x, a + n - 8, 8);
        memcpy(&y, b + n - 8, 8);
        return x == y;
    }
    if (n >= 4) {
        memcpy(&u, a, 4);
        memcpy(&v, b, 4);
        if (u != v)
            return 0;
        memcpy(&u, a + n - 4, 4);
        memcpy(&v, b + n - 4, 4);
        return u == v;
    }
    for (size_t i = 0; i < n; i++)
        if (a[i] != b[i])
            return 0;
    return 1;
}

static int
key_eq(const struct table *t, int i, const unsigned char *k, size_t len)
{
    const struct mname *m = &t->names[i];

    if (m->len != len)
        return 0;
    return t->ci ? strncasecmp(m->s, (const char *)k, len) == 0
                 : bytes_eq((const unsigned char *)m->s, k, len);
}

static __attribute__((noinline)) int
dup_member(struct ps *p, const struct frame *f, int idx)
{
    return stop(p, "duplicate member \"%s\"", tables[f->kind].names[idx].s);
}

/* Member idx of the frame's table was named: remembered as the one read and as the one after
 * the last, refused when the object had it already. */
static inline int
key_known(struct ps *p, struct frame *f, int8_t *succ, int idx)
{
    f->key = (int8_t)idx;
    *succ = (int8_t)idx;
    f->last = (int8_t)idx;
    if (f->seen & (UINT64_C(1) << idx))
        return dup_member(p, f, idx);
    f->seen |= UINT64_C(1) << idx;
    return 1;
}

/* on_map_key when the key is not the member expected: any other of the table, or one not read
 * (its value is skipped, but a duplicate is still an error). */
static __attribute__((noinline)) int
key_other(struct ps *p, struct frame *f, const unsigned char *k, size_t len)
{
    const struct table *t = &tables[f->kind];
    int8_t *succ = &p->succ[f->kind][f->last];

    for (int i = 0; i < t->n; i++)
        if (key_eq(t, i, k, len))
            return key_known(p, f, succ, i);
    f->key = -1;
    if (unread_seen(p, f->obj, k, len))
        return stop(p, "duplicate member (not one memsync reads)");
    return 1;
}

/* Members come in a steady order: the one that followed the last one last time is tried first,
 * inline; the rest is out of line. */
static int
on_map_key(void *ctx, const unsigned char *k, size_t len)
{
    struct ps *p = ctx;
    struct frame *f = top(p);
    const struct table *t = &tables[f->kind];
    int8_t *succ = &p->succ[f->kind][f->last];
    const struct mname *m;

    if (t->n == 0 || t->ci) /* case-insensitive tables (headers) go the long way */
        return key_other(p, f, k, len);
    m = &t->names[*succ];
    if (m->len != len || !bytes_eq((const unsigned char *)m->s, k, len))
        return key_other(p, f, k, len);
    return key_known(p, f, succ, *succ);
}

static int
on_end_map(void *ctx)
{
    struct ps *p = ctx;
    struct frame *f = top(p);
    struct frame *parent = &p->st[p->depth - 1];

    switch (f->kind) {
    case K_DEV:
        device_done(p, parent->count);
        break;
    case K_APP:
        app_done(p);
        break;
    case K_APAGE:
        if (p->mode == M_BATCH)
            p->cur->apps_rc = apage_done(p, &p->cur->apps_eb);
        if (p->mode == M_BATCH && p->cur->apps_rc == ERR_OK) {
            p->cur->next_link = p->ap.next;
            p->ap.next = NULL;
        }
        break;
    case K_DETAIL:
        detail_done(p);
        break;
    case K_BITEM:
        item_done(p, parent->count);
        break;
    default:
        break;
    }
    if (--p->depth == 0)
        p->end = yajl_get_bytes_consumed(p->h);
    f = top(p);
    if (f->kind == K_DLIST || f->kind == K_ALIST || f->kind == K_BLIST)
        f->count++;
    return 1;
}

static int
on_end_array(void *ctx)
{
    struct ps *p = ctx;

    if (top(p)->kind == K_BLIST)
        p->nresp = top(p)->count;
    if (--p->depth == 0)
        p->end = yajl_get_bytes_consumed(p->h);
    return 1;
}

static const yajl_callbacks callbacks = {
    .yajl_null = on_null,
    .yajl_boolean = on_boolean,
    .yajl_number = on_number,
    .yajl_string = on_string,
    .yajl_start_map = on_start_map,
    .yajl_map_key = on_map_key,
    .yajl_end_map = on_end_map,
    .yajl_start_array = on_start_array,
    .yajl_end_array = on_end_array,
};

/* Runs the parse; ERR_OK when the text is well-formed JSON under the contract's rules. */
static int
run(struct ps *p, const char *body, size_t len, struct errbuf *eb)
{
    yajl_handle h;
    yajl_status st;
    const char *bad;
    int rc = ERR_OK;

    if (body == NULL)
        return err_set(eb, ERR_PARSE, "%s: empty response", p->what);
    if ((bad = text_check((const unsigned char *)body, len)) != NULL)
        return err_set(eb, ERR_PARSE, "%s is not valid JSON: %s", p->what, bad);
    p->body = body;
    p->blen = len;
    h = p->h = yajl_alloc(&callbacks, NULL, p);
    if (h == NULL)
        abort();
    st = yajl_parse(h, (const unsigned char *)body, len);
    if (st == yajl_status_ok)
        st = yajl_complete_parse(h);
    /* yajl 2.1.0 takes a trailing partial token ({} "x, {} tru, {} 1) for the start of a next
     * chunk and accepts the text: only whitespace may follow the top-level value. */
    if (st == yajl_status_ok) {
        size_t i = p->end;

        while (i < len && (body[i] == ' ' || body[i] == '\t' || body[i] == '\n' || body[i] == '\r'))
            i++;
        if (i < len) {
            yajl_free(h);
            return err_set(eb, ERR_PARSE, "%s is not valid JSON: trailing garbage (byte %zu)",
                           p->what, i);
        }
    }
    if (st == yajl_status_client_canceled) {
        rc = err_set(eb, ERR_PARSE, "%s is not valid JSON: %s (byte %zu)", p->what, p->why,
                     yajl_get_bytes_consumed(h));
    } else if (st != yajl_status_ok) {
        /* Not verbose: the verbose form quotes the input. */
        unsigned char *e = yajl_get_error(h, 0, NULL, 0);
        size_t n = e != NULL ? strcspn((const char *)e, "\n") : 0;

        rc = err_set(eb, ERR_PARSE, "%s is not valid JSON: %.*s", p->what, (int)n,
                     e != NULL ? (const char *)e : "");
        if (e != NULL)
            yajl_free_error(h, e);
    }
    yajl_free(h);
    return rc;
}

static void
ps_free(struct ps *p)
{
    free(p->sb);
    free(p->next);
    free(p->ap.next);
    free(p->item_id);
    free(p->uk);
    free(p->kb);
}

/* ---- entry points --------------------------------------------------------------------------- */

int
graph_devices_parse(const char *body, size_t len, struct device **devs, size_t *n, size_t *cap,
                    char **next_link, struct errbuf *eb)
{
    struct ps *p = xcalloc(1, sizeof *p);
    const struct mval *next = &p->pv[PV_NEXT];
    int rc;

    if (next_link != NULL)
        *next_link = NULL;
    p->mode = M_DEVICES;
    p->what = "Graph page";
    p->devs = devs;
    p->n = n;
    p->cap = cap;
    p->start = *n;
    if ((rc = run(p, body, len, eb)) != ERR_OK)
        goto out;
    if (p->root_not_object)
        rc = err_set(eb, ERR_PARSE, "Graph page is not a JSON object");
    else if (p->pv[PV_VALUE].t != V_ARR)
        rc = err_set(eb, ERR_PARSE, "Graph page has no \"value\" array");
    else if (next->t != V_ABSENT && next->t != V_NULL && (next->t != V_STR || next->len == 0))
        rc = err_set(eb, ERR_PARSE, "Graph page: @odata.nextLink is not a URL string");
    else if (p->dev_failed)
        rc = err_set(eb, ERR_PARSE, "%s", p->dev_eb.msg);
    if (rc == ERR_OK && next_link != NULL) {
        *next_link = p->next;
        p->next = NULL;
    }
out:
    if (rc != ERR_OK) {
        while (*n > p->start)
            device_clear(&(*devs)[--(*n)]);
    }
    ps_free(p);
    free(p);
    return rc;
}

int
graph_apps_parse(const char *body, size_t len, struct detected_app **apps, size_t *n, size_t *cap,
                 char **next_link, struct errbuf *eb)
{
    struct ps *p = xcalloc(1, sizeof *p);
    int rc;

    if (next_link != NULL)
        *next_link = NULL;
    p->mode = M_APPS;
    p->what = "detectedApps page";
    p->ap.apps = apps;
    p->ap.n = n;
    p->ap.cap = cap;
    p->ap.start = *n;
    if ((rc = run(p, body, len, eb)) != ERR_OK) {
        apps_rollback(&p->ap);
        goto out;
    }
    if (p->root_not_object) {
        rc = err_set(eb, ERR_INVAL, "detectedApps page is not a JSON object");
        goto out;
    }
    if (apage_done(p, eb) != ERR_OK) {
        rc = ERR_INVAL;
        if (eb != NULL)
            eb->code = ERR_INVAL;
        goto out;
    }
    if (next_link != NULL) {
        *next_link = p->ap.next;
        p->ap.next = NULL;
    }
out:
    ps_free(p);
    free(p);
    return rc;
}

void
graph_batch_clear(struct graph_batch *b)
{
    if (b == NULL)
        return;
    for (size_t i = 0; b->items != NULL && i <= GRAPH_BATCH_MAX; i++)
        item_clear(&b->items[i]);
    free(b->items);
    memset(b, 0, sizeof *b);
}

static int
batch_parse(const char *body, size_t len, enum graph_batch_kind kind, graph_app_find_fn *find,
            void *find_arg, struct graph_batch *out, struct errbuf *eb)
{
    struct ps *p = xcalloc(1, sizeof *p);
    int rc;

    p->find = find;
    p->find_arg = find_arg;
    memset(out, 0, sizeof *out);
    out->items = xcalloc(GRAPH_BATCH_MAX + 1, sizeof *out->items);
    for (size_t i = 0; i <= GRAPH_BATCH_MAX; i++)
        item_clear(&out->items[i]);
    p->mode = M_BATCH;
    p->bkind = kind;
    p->what = "$batch response";
    p->items = out->items;
    p->cur = &out->items[GRAPH_BATCH_MAX];
    p->bad_item = SIZE_MAX;
    if ((rc = run(p, body, len, eb)) != ERR_OK)
        goto out;
    if (p->root_not_object)
        rc = err_set(eb, ERR_PARSE, "$batch response is not a JSON object");
    else if (p->rv[0].t != V_ARR)
        rc = err_set(eb, ERR_PARSE, "$batch response has no \"responses\" array");
    else if (p->nresp > GRAPH_BATCH_MAX)
        rc = err_set(eb, ERR_PARSE, "$batch response holds %zu responses (at most %d expected)",
                     p->nresp, GRAPH_BATCH_MAX);
    else if (p->bad_item != SIZE_MAX)
        rc = err_set(eb, ERR_PARSE, "$batch response item %zu lacks id or status", p->bad_item);
    out->n = p->nresp;
out:
    if (rc != ERR_OK)
        graph_batch_clear(out);
    ps_free(p);
    free(p);
    return rc;
}

int
graph_batch_parse(const char *body, size_t len, enum graph_batch_kind kind, struct graph_batch *out,
                  struct errbuf *eb)
{
    return batch_parse(body, len, kind, NULL, NULL, out, eb);
}

int
graph_batch_parse_known(const char *body, size_t len, graph_app_find_fn *find, void *find_arg,
                        struct graph_batch *out, struct errbuf *eb)
{
    return batch_parse(body, len, GRAPH_BATCH_APPS, find, find_arg, out, eb);
}
