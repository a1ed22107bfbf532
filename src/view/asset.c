/* asset.c - docs/API.md "Fields": JSON views of assets and clients. */
#include "asset.h"

#include <stdlib.h>
#include <string.h>
#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "buf.h"
#include "clock.h"
#include "lifecycle.h"
#include "mem.h"
#include "rowcache.h"
#include "utf8.h"

const char *const asset_columns[] = {
    "id",
    "client.id",
    "client.name",
    "client.tenant_id",
    "source.integration_id",
    "source.intune_device_id",
    "source.azure_ad_device_id",
    "name",
    "serial_number",
    "manufacturer",
    "model",
    "type",
    "operating_system.name",
    "operating_system.version",
    "operating_system.end_of_support",
    "user.principal_name",
    "user.display_name",
    "user.email",
    "ownership",
    "compliance_state",
    "management_state",
    "enrollment_type",
    "is_encrypted",
    "is_supervised",
    "storage.total_bytes",
    "storage.free_bytes",
    "memory_bytes",
    "wifi_mac",
    "ethernet_mac",
    "imei",
    "meid",
    "phone_number",
    "enrolled_at",
    "last_check_in_at",
    "first_synced_at",
    "last_synced_at",
    "retired_at",
    "missing_since",
    "serial_duplicate",
};
const size_t asset_column_count = sizeof asset_columns / sizeof asset_columns[0];

const char *const asset_table_columns[] = {
    "id",
    "client.name",
    "name",
    "serial_number",
    "type",
    "operating_system.name",
    "operating_system.version",
    "user.principal_name",
    "last_check_in_at",
};
const size_t asset_table_column_count = sizeof asset_table_columns / sizeof asset_table_columns[0];

const char *const client_columns[] = {
    "id",           "tenant_id",       "name",           "default_domain",   "source",
    "included",     "status",          "last_sync_at",   "error.code",       "error.message",
    "error.remedy", "device_count",    "software_count", "error.request_id", "error.date",
    "warning.code", "warning.message", "warning.remedy",
};
const size_t client_column_count = sizeof client_columns / sizeof client_columns[0];

/* Strings from the database are normally UTF-8; anything else is shown with '?' per bad byte
 * rather than dropped. */
static json_t *
jstr(const char *s)
{
    json_t *v;
    char *copy;

    if (s == NULL)
        return json_null();
    v = json_string(s);
    if (v != NULL)
        return v;
    copy = xstrdup(s);
    for (unsigned char *p = (unsigned char *)copy; *p != '\0'; p++)
        if (*p >= 0x80)
            *p = '?';
    v = json_string(copy);
    free(copy);
    return v != NULL ? v : json_null();
}

static json_t *
jts(int64_t t)
{
    char out[32];

    if (t == TS_NULL)
        return json_null();
    clock_fmt(t, out, sizeof out);
    return json_stringn_nocheck(out, strlen(out)); /* ASCII digits and separators */
}

static json_t *
jbytes(int64_t v)
{
    return v < 0 ? json_null() : json_integer(v);
}

static json_t *
jbool(int v)
{
    return v < 0 ? json_null() : json_boolean(v);
}

static json_t *
end_of_support(const struct device *d)
{
    struct lifecycle_info li;

    memset(&li, 0, sizeof li);
    if (d->os_name == NULL || !lifecycle_lookup(d->os_name, d->os_version, &li) ||
        li.end_of_support[0] == '\0')
        return json_null();
    return json_string(li.end_of_support);
}

/* Keys are constant ASCII: set without jansson's per-key UTF-8 check (a list page sets about
 * 40 keys per row). Insertion order is the output order. */
#define SETK(o, k, v) json_object_set_new_nocheck((o), (k), (v))

json_t *
asset_to_json(const struct asset *a)
{
    const struct device *d = &a->dev;
    json_t *o = json_object(), *x;

    SETK(o, "id", json_integer(a->id));
    x = json_object();
    SETK(x, "id", json_integer(a->client_id));
    SETK(x, "name", jstr(a->client_name));
    SETK(x, "tenant_id", jstr(a->client_tenant_id));
    SETK(o, "client", x);
    x = json_object();
    SETK(x, "integration_id", json_integer(a->integration_id));
    SETK(x, "intune_device_id", jstr(d->intune_id));
    SETK(x, "azure_ad_device_id", jstr(d->aad_device_id));
    SETK(o, "source", x);
    SETK(o, "name", jstr(d->name));
    SETK(o, "serial_number", jstr(d->serial));
    SETK(o, "manufacturer", jstr(d->manufacturer));
    SETK(o, "model", jstr(d->model));
    SETK(o, "type", json_string(device_type_name(d->type)));
    x = json_object();
    SETK(x, "name", jstr(d->os_name));
    SETK(x, "version", jstr(d->os_version));
    SETK(x, "end_of_support", end_of_support(d));
    SETK(o, "operating_system", x);
    x = json_object();
    SETK(x, "principal_name", jstr(d->user_upn));
    SETK(x, "display_name", jstr(d->user_name));
    SETK(x, "email", jstr(d->user_email));
    SETK(o, "user", x);
    SETK(o, "ownership", jstr(d->ownership));
    SETK(o, "compliance_state", jstr(d->compliance_state));
    SETK(o, "management_state", jstr(d->management_state));
    SETK(o, "enrollment_type", jstr(d->enrollment_type));
    SETK(o, "is_encrypted", jbool(d->is_encrypted));
    SETK(o, "is_supervised", jbool(d->is_supervised));
    x = json_object();
    SETK(x, "total_bytes", jbytes(d->storage_total));
    SETK(x, "free_bytes", jbytes(d->storage_free));
    SETK(o, "storage", x);
    SETK(o, "memory_bytes", jbytes(d->memory));
    SETK(o, "wifi_mac", jstr(d->wifi_mac));
    SETK(o, "ethernet_mac", jstr(d->ethernet_mac));
    SETK(o, "imei", jstr(d->imei));
    SETK(o, "meid", jstr(d->meid));
    SETK(o, "phone_number", jstr(d->phone));
    SETK(o, "enrolled_at", jts(d->enrolled_at));
    SETK(o, "last_check_in_at", jts(d->last_check_in_at));
    SETK(o, "first_synced_at", jts(a->first_synced_at));
    SETK(o, "last_synced_at", jts(a->last_synced_at));
    SETK(o, "retired_at", jts(a->retired_at));
    SETK(o, "missing_since", jts(a->missing_since));
    SETK(o, "updated_at", jts(a->updated_at));
    SETK(o, "serial_duplicate", json_boolean(a->serial_duplicate != 0));
    return o;
}

/* ---- the same view written as text (the hardware list) ------------------------------------
 * No tree and no generator: the members are constant text around the values. The bytes are
 * those yajl's generator wrote for this view until it was replaced (compact, '/' unescaped,
 * other controls as \u00XX in capitals), and jansson's view reproduced exactly: jansson accepts
 * only well-formed UTF-8 (no overlong forms, surrogates or code points past U+10FFFF), and a
 * string it refuses is shown with every non-ASCII byte as '?'. */

#define AW_CHUNK 16384
#define EOS_MEMO 256

/* End of support by OS and version, per thread: the table is compiled in, so an answer never
 * changes, and an inventory has a few dozen versions. */
struct eos_memo {
    char os[24];
    char ver[40];
    char eos[11]; /* "" when none */
    int used;
};
static _Thread_local struct eos_memo eos_memo[EOS_MEMO];

/* Timestamps written through a slot each: the date text of the slot's last day. */
#define TS_SLOTS 7

struct asset_writer {
    struct buf *out;  /* NULL: the writer owns the bytes (asset_writer_take) */
    char *base, *end; /* end: as far as output may go now */
    char *p;          /* the next byte */
    size_t cap, max;  /* owned: cap allocated (one kept for the NUL), at most max written */
    int bad;
    int64_t ts_day[TS_SLOTS];
    char ts_date[TS_SLOTS][10];
};

static struct asset_writer *
aw_new(struct buf *out, size_t cap, size_t max)
{
    struct asset_writer *w = xmalloc(sizeof *w);

    w->out = out;
    w->base = xmalloc(cap);
    w->cap = cap;
    w->end = w->base + (out != NULL ? cap : cap - 1 < max ? cap - 1 : max);
    w->p = w->base;
    w->max = max;
    w->bad = 0;
    for (int i = 0; i < TS_SLOTS; i++)
        w->ts_day[i] = INT64_MIN;
    return w;
}

struct asset_writer *
asset_writer_new(struct buf *out)
{
    return aw_new(out, AW_CHUNK, 0);
}

struct asset_writer *
asset_writer_new_owned(size_t hint, size_t max)
{
    /* Never less than a chunk: aw_room's callers ask for up to AW_CHUNK at once. */
    size_t cap = (hint < max ? hint : max) + 1;

    return aw_new(NULL, cap < AW_CHUNK ? AW_CHUNK : cap, max);
}

/* Frees need bytes (need <= AW_CHUNK): a chunk goes to out, or the owned bytes grow. Past the
 * maximum the writer fails, and what follows is written over the start (never kept). */
static void
aw_grow(struct asset_writer *w, size_t need)
{
    size_t cap = w->cap, n = (size_t)(w->p - w->base);

    if (w->out != NULL) {
        if (n > 0 && buf_add(w->out, w->base, n) != ERR_OK)
            w->bad = 1;
        w->p = w->base;
        return;
    }
    if (w->bad || n + need > w->max) {
        w->bad = 1;
        w->p = w->base;
        w->end = w->base + w->cap; /* at least a chunk */
        return;
    }
    while (cap < n + need + 1)
        cap *= 2;
    if (cap > w->max + 1)
        cap = w->max + 1;
    w->base = xrealloc(w->base, cap);
    w->p = w->base + n;
    w->cap = cap;
    w->end = w->base + (cap - 1 < w->max ? cap - 1 : w->max);
}

static void
aw_flush(struct asset_writer *w)
{
    if (w->out != NULL)
        aw_grow(w, 0);
}

/* Room for need more bytes (need <= AW_CHUNK). */
static inline char *
aw_room(struct asset_writer *w, size_t need)
{
    if ((size_t)(w->end - w->p) < need)
        aw_grow(w, need);
    return w->p;
}

static void
aw_put_big(struct asset_writer *w, const char *s, size_t n)
{
    while (n > 0) {
        size_t k = n < AW_CHUNK ? n : AW_CHUNK;

        memcpy(aw_room(w, k), s, k);
        w->p += k;
        s += k;
        n -= k;
    }
}

/* Inline: most calls copy a constant fragment, a memcpy of known size. */
static inline void
aw_put(struct asset_writer *w, const char *s, size_t n)
{
    if (n > AW_CHUNK / 2) {
        aw_put_big(w, s, n);
        return;
    }
    memcpy(aw_room(w, n), s, n);
    w->p += n;
}

void
asset_writer_raw(struct asset_writer *w, const char *s, size_t n)
{
    aw_put(w, s, n);
}

/* A constant fragment. */
#define PUTK(w, lit) aw_put((w), (lit), sizeof(lit) - 1)

/* 1 when s[0..n) is UTF-8 that jansson's json_string accepts; *plain = 0 when a byte needs a
 * JSON escape (a quote, a backslash or a control character). */
static int
utf8_ok(const unsigned char *s, size_t n, int *plain)
{
    size_t i = 0;

    *plain = 1;
    while (i < n) {
        unsigned c = s[i], len;

        if (c < 0x80) {
            if (c < 0x20 || c == '"' || c == '\\')
                *plain = 0;
            i++;
            continue;
        }
        if ((len = (unsigned)utf8_char_len(s + i, n - i)) == 0)
            return 0;
        i += len;
    }
    return 1;
}

/* The quoted, escaped form of s[0..n); with ascii, bytes >= 0x80 as '?'. At most 6 bytes per
 * input byte, written in pieces that fit the chunk. */
static void
aw_escaped(struct asset_writer *w, const unsigned char *s, size_t n, int ascii)
{
    static const char hex[] = "0123456789ABCDEF";

    PUTK(w, "\"");
    while (n > 0) {
        size_t take = n < AW_CHUNK / 8 ? n : AW_CHUNK / 8;
        char *o = aw_room(w, take * 6), *o0 = o;

        for (size_t i = 0; i < take; i++) {
            unsigned char c = s[i];

            if (c >= 0x80 && ascii)
                c = '?';
            switch (c) {
            case '"':
            case '\\':
                *o++ = '\\';
                *o++ = (char)c;
                break;
            case '\b':
                *o++ = '\\';
                *o++ = 'b';
                break;
            case '\f':
                *o++ = '\\';
                *o++ = 'f';
                break;
            case '\n':
                *o++ = '\\';
                *o++ = 'n';
                break;
            case '\r':
                *o++ = '\\';
                *o++ = 'r';
                break;
            case '\t':
                *o++ = '\\';
                *o++ = 't';
                break;
            default:
                if (c < 0x20) {
                    memcpy(o, "\\u00", 4);
                    o[4] = hex[c >> 4];
                    o[5] = hex[c & 15];
                    o += 6;
                } else {
                    *o++ = (char)c;
                }
            }
        }
        w->p += (size_t)(o - o0);
        s += take;
        n -= take;
    }
    PUTK(w, "\"");
}

/* 1 for the bytes a string can hold as they are and that need no UTF-8 check: printable
 * ASCII but the quote and the backslash. 0 ends the fast scan (NUL included). */
static const unsigned char aw_plain[256] = {
    [' '] = 1, ['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1, ['&'] = 1,  ['\''] = 1, ['('] = 1,
    [')'] = 1, ['*'] = 1, ['+'] = 1, [','] = 1, ['-'] = 1, ['.'] = 1,  ['/'] = 1,  ['0'] = 1,
    ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1,  ['7'] = 1,  ['8'] = 1,
    ['9'] = 1, [':'] = 1, [';'] = 1, ['<'] = 1, ['='] = 1, ['>'] = 1,  ['?'] = 1,  ['@'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1,  ['G'] = 1,  ['H'] = 1,
    ['I'] = 1, ['J'] = 1, ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1,  ['O'] = 1,  ['P'] = 1,
    ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1, ['U'] = 1, ['V'] = 1,  ['W'] = 1,  ['X'] = 1,
    ['Y'] = 1, ['Z'] = 1, ['['] = 1, [']'] = 1, ['^'] = 1, ['_'] = 1,  ['`'] = 1,  ['a'] = 1,
    ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1,  ['h'] = 1,  ['i'] = 1,
    ['j'] = 1, ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1,  ['p'] = 1,  ['q'] = 1,
    ['r'] = 1, ['s'] = 1, ['t'] = 1, ['u'] = 1, ['v'] = 1, ['w'] = 1,  ['x'] = 1,  ['y'] = 1,
    ['z'] = 1, ['{'] = 1, ['|'] = 1, ['}'] = 1, ['~'] = 1, [0x7F] = 1,
};

#define ONES8 UINT64_C(0x0101010101010101)
#define ONES4 UINT32_C(0x01010101)

/* Non-zero when one of the 8 (4) bytes is not plain: a control character, a quote, a
 * backslash or a byte >= 0x80 (each test is exact for the word as a whole). */
static inline uint64_t
unplain8(uint64_t v)
{
    uint64_t q = v ^ (ONES8 * '"'), b = v ^ (ONES8 * '\\');

    return (v | ((q - ONES8) & ~q) | ((b - ONES8) & ~b) | ((v - ONES8 * 0x20) & ~v)) &
           (ONES8 * 0x80);
}

static inline uint32_t
unplain4(uint32_t v)
{
    uint32_t q = v ^ (ONES4 * '"'), b = v ^ (ONES4 * '\\');

    return (v | ((q - ONES4) & ~q) | ((b - ONES4) & ~b) | ((v - ONES4 * 0x20) & ~v)) &
           (ONES4 * 0x80);
}

#ifdef __SSE2__
static inline int
copy16(char *o, const unsigned char *s)
{
    __m128i v = _mm_loadu_si128((const __m128i *)(const void *)s);

    _mm_storeu_si128((__m128i *)(void *)o, v);
    /* Signed: bytes >= 0x80 are below 0x20 too. */
    return _mm_movemask_epi8(_mm_or_si128(_mm_cmplt_epi8(v, _mm_set1_epi8(0x20)),
                                          _mm_or_si128(_mm_cmpeq_epi8(v, _mm_set1_epi8('"')),
                                                       _mm_cmpeq_epi8(v, _mm_set1_epi8('\\')))));
}
#endif

/* Copies s[0..n) to o; 1 when every byte was plain (aw_plain). Otherwise o holds some of the
 * bytes and the caller writes the string again. Blocks overlap at the end rather than loop
 * over the tail. */
static inline __attribute__((always_inline)) int
plain_copy(char *o, const unsigned char *s, size_t n)
{
    uint64_t a8, b8;
    uint32_t a4, b4;

#ifdef __SSE2__
    if (n >= 16) {
        int m = 0;

        for (size_t i = 0; i + 16 < n; i += 16)
            m |= copy16(o + i, s + i);
        return (m | copy16(o + n - 16, s + n - 16)) == 0;
    }
#else
    if (n >= 16) {
        uint64_t m = 0;

        for (size_t i = 0; i + 8 < n; i += 8) {
            memcpy(&a8, s + i, 8);
            memcpy(o + i, &a8, 8);
            m |= unplain8(a8);
        }
        memcpy(&b8, s + n - 8, 8);
        memcpy(o + n - 8, &b8, 8);
        return (m | unplain8(b8)) == 0;
    }
#endif
    if (n >= 8) {
        memcpy(&a8, s, 8);
        memcpy(&b8, s + n - 8, 8);
        memcpy(o, &a8, 8);
        memcpy(o + n - 8, &b8, 8);
        return (unplain8(a8) | unplain8(b8)) == 0;
    }
    if (n >= 4) {
        memcpy(&a4, s, 4);
        memcpy(&b4, s + n - 4, 4);
        memcpy(o, &a4, 4);
        memcpy(o + n - 4, &b4, 4);
        return (unplain4(a4) | unplain4(b4)) == 0;
    }
    for (size_t i = 0; i < n; i++) {
        if (!aw_plain[s[i]])
            return 0;
        o[i] = (char)s[i];
    }
    return 1;
}

static void aw_str_slow(struct asset_writer *w, const unsigned char *s, size_t n);

/* Inline at each member: a call per string cost as much as the check. */
static inline __attribute__((always_inline)) void
aw_str(struct asset_writer *w, const char *str)
{
    const unsigned char *s = (const unsigned char *)str;
    size_t n;

    if (s == NULL) {
        PUTK(w, "null");
        return;
    }
    n = strlen(str);
    /* Printable ASCII, the usual case: checked while copied. */
    if (n + 2 <= AW_CHUNK / 2) {
        char *o = aw_room(w, n + 2);

        if (plain_copy(o + 1, s, n)) {
            o[0] = '"';
            o[n + 1] = '"';
            w->p += n + 2;
            return;
        }
    }
    aw_str_slow(w, s, n);
}

static void
aw_str_slow(struct asset_writer *w, const unsigned char *s, size_t n)
{
    int plain;

    if (!utf8_ok(s, n, &plain))
        aw_escaped(w, s, n, 1);
    else if (!plain || n + 2 > AW_CHUNK / 2)
        aw_escaped(w, s, n, 0);
    else {
        char *o = aw_room(w, n + 2);

        o[0] = '"';
        memcpy(o + 1, s, n);
        o[n + 1] = '"';
        w->p += n + 2;
    }
}

void
asset_writer_string(struct asset_writer *w, const char *s)
{
    aw_str(w, s);
}

static const char digits2[201] = "000102030405060708091011121314151617181920212223242526272829"
                                 "303132333435363738394041424344454647484950515253545556575859"
                                 "606162636465666768697071727374757677787980818283848586878889"
                                 "90919293949596979899";

static inline void
put2(char *o, unsigned v)
{
    memcpy(o, digits2 + 2 * v, 2);
}

static const uint64_t pow10s[20] = {1,
                                    10,
                                    100,
                                    1000,
                                    10000,
                                    100000,
                                    1000000,
                                    10000000,
                                    100000000,
                                    1000000000,
                                    10000000000,
                                    100000000000,
                                    1000000000000,
                                    10000000000000,
                                    100000000000000,
                                    1000000000000000,
                                    10000000000000000,
                                    100000000000000000,
                                    1000000000000000000,
                                    10000000000000000000u};

/* Decimal without snprintf, straight to its place: the digit count from the bit length
 * (1233 / 4096 ~ log10 2), then two digits a step. Exact for INT64_MIN. */
static inline void
aw_int(struct asset_writer *w, int64_t v)
{
    char *o = aw_room(w, 20), *p;
    uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;
    size_t neg = v < 0, t = (size_t)(64 - __builtin_clzll(u | 1)) * 1233 >> 12;
    size_t nd = t + (u >= pow10s[t]);

    if (nd == 0)
        nd = 1;
    o[0] = '-';
    p = o + neg + nd;
    while (u >= 100) {
        p -= 2;
        put2(p, (unsigned)(u % 100));
        u /= 100;
    }
    if (u >= 10)
        put2(p - 2, (unsigned)u);
    else
        p[-1] = (char)('0' + u);
    w->p += neg + nd;
}

void
asset_writer_int(struct asset_writer *w, int64_t v)
{
    aw_int(w, v);
}

static void
aw_bytes(struct asset_writer *w, int64_t v)
{
    if (v < 0)
        PUTK(w, "null");
    else
        aw_int(w, v);
}

static void
aw_bool(struct asset_writer *w, int v)
{
    if (v < 0)
        PUTK(w, "null");
    else if (v)
        PUTK(w, "true");
    else
        PUTK(w, "false");
}

/* 0001-01-01T00:00:00Z .. 9999-12-31T23:59:59Z: clock_fmt's text without gmtime_r (a lock
 * and a time zone conversion per call, five calls per row). */
#define TS_FAST_MIN (-INT64_C(62135596800))
#define TS_FAST_MAX INT64_C(253402300799)

static void ts_date(int64_t days, char *o);

/* NULL and times out of the fast range: clock_fmt's text. */
static void
aw_ts_slow(struct asset_writer *w, int64_t t)
{
    char out[32];

    if (t == TS_NULL) {
        PUTK(w, "null");
        return;
    }
    clock_fmt(t, out, sizeof out);
    aw_str(w, out);
}

/* slot: which of the row's timestamps (each keeps its last date). */
static inline void
aw_ts(struct asset_writer *w, int slot, int64_t t)
{
    int64_t days, secs;
    char *o;

    if (t < TS_FAST_MIN || t > TS_FAST_MAX) { /* TS_NULL too */
        aw_ts_slow(w, t);
        return;
    }
    days = t / 86400;
    secs = t % 86400;
    if (secs < 0) {
        secs += 86400;
        days--;
    }
    o = aw_room(w, 22);
    /* A column's timestamps often share their day with the row before (sync times, a page
     * sorted by time). */
    if (days != w->ts_day[slot])
        ts_date(days, w->ts_date[slot]);
    w->ts_day[slot] = days;
    o[0] = '"';
    memcpy(o + 1, w->ts_date[slot], 10);
    o[11] = 'T';
    put2(o + 12, (unsigned)(secs / 3600));
    o[14] = ':';
    put2(o + 15, (unsigned)(secs / 60 % 60));
    o[17] = ':';
    put2(o + 18, (unsigned)(secs % 60));
    o[20] = 'Z';
    o[21] = '"';
    w->p += 22;
}

/* "YYYY-MM-DD" of a day count from 1970-01-01, years 1..9999. */
static void
ts_date(int64_t days, char *o)
{
    int64_t era, doe, yoe, doy, mp, y;
    unsigned m, d;

    /* Civil date of a day count (proleptic Gregorian, eras of 400 years from 0000-03-01). */
    days += 719468;
    era = (days >= 0 ? days : days - 146096) / 146097;
    doe = days - era * 146097;
    yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    mp = (5 * doy + 2) / 153;
    d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
    m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
    y = yoe + era * 400 + (m <= 2);
    put2(o, (unsigned)(y / 100));
    put2(o + 2, (unsigned)(y % 100));
    o[4] = '-';
    put2(o + 5, m);
    o[7] = '-';
    put2(o + 8, d);
}

/* lifecycle_lookup once per OS and version and thread, unless it is too long to keep. */
static void
aw_end_of_support(struct asset_writer *w, const struct device *d)
{
    struct lifecycle_info li;
    struct eos_memo *m = NULL;
    size_t ln, lv;
    uint32_t h = 2166136261u;

    if (d->os_name == NULL) {
        PUTK(w, "null");
        return;
    }
    if (d->os_version != NULL && (ln = strlen(d->os_name)) < sizeof m->os &&
        (lv = strlen(d->os_version)) < sizeof m->ver) {
        for (size_t i = 0; i < ln; i++)
            h = (h ^ (unsigned char)d->os_name[i]) * 16777619u;
        for (size_t i = 0; i < lv; i++)
            h = (h ^ (unsigned char)d->os_version[i]) * 16777619u;
        m = &eos_memo[h % EOS_MEMO];
        if (m->used && strcmp(m->os, d->os_name) == 0 && strcmp(m->ver, d->os_version) == 0)
            goto out;
        memcpy(m->os, d->os_name, ln + 1);
        memcpy(m->ver, d->os_version, lv + 1);
        m->used = 1;
    }
    memset(&li, 0, sizeof li);
    if (!lifecycle_lookup(d->os_name, d->os_version, &li))
        li.end_of_support[0] = '\0';
    if (m == NULL) {
        if (li.end_of_support[0] == '\0')
            PUTK(w, "null");
        else
            aw_str(w, li.end_of_support);
        return;
    }
    memcpy(m->eos, li.end_of_support, sizeof m->eos);
    m->eos[sizeof m->eos - 1] = '\0';
out:
    if (m->eos[0] == '\0')
        PUTK(w, "null");
    else
        aw_str(w, m->eos);
}

/* asset_writer_asset in three parts, for a list that keeps the middle one (rowcache): the head
 * (id and client), the body (source, device fields, sync times and retirement: what only the
 * asset's own row holds, and the compiled-in lifecycle table), and the tail (whether the
 * serial is duplicated, which depends on other rows; the closing brace). */
static void
asset_writer_asset_head(struct asset_writer *w, const struct asset *a)
{
    PUTK(w, "{\"id\":");
    aw_int(w, a->id);
    PUTK(w, ",\"client\":{\"id\":");
    aw_int(w, a->client_id);
    PUTK(w, ",\"name\":");
    aw_str(w, a->client_name);
    PUTK(w, ",\"tenant_id\":");
    aw_str(w, a->client_tenant_id);
    PUTK(w, "}");
}

static void
asset_writer_asset_body(struct asset_writer *w, const struct asset *a)
{
    const struct device *d = &a->dev;

    PUTK(w, ",\"source\":{\"integration_id\":");
    aw_int(w, a->integration_id);
    PUTK(w, ",\"intune_device_id\":");
    aw_str(w, d->intune_id);
    PUTK(w, ",\"azure_ad_device_id\":");
    aw_str(w, d->aad_device_id);
    PUTK(w, "},\"name\":");
    aw_str(w, d->name);
    PUTK(w, ",\"serial_number\":");
    aw_str(w, d->serial);
    PUTK(w, ",\"manufacturer\":");
    aw_str(w, d->manufacturer);
    PUTK(w, ",\"model\":");
    aw_str(w, d->model);
    PUTK(w, ",\"type\":");
    aw_str(w, device_type_name(d->type));
    PUTK(w, ",\"operating_system\":{\"name\":");
    aw_str(w, d->os_name);
    PUTK(w, ",\"version\":");
    aw_str(w, d->os_version);
    PUTK(w, ",\"end_of_support\":");
    aw_end_of_support(w, d);
    PUTK(w, "},\"user\":{\"principal_name\":");
    aw_str(w, d->user_upn);
    PUTK(w, ",\"display_name\":");
    aw_str(w, d->user_name);
    PUTK(w, ",\"email\":");
    aw_str(w, d->user_email);
    PUTK(w, "},\"ownership\":");
    aw_str(w, d->ownership);
    PUTK(w, ",\"compliance_state\":");
    aw_str(w, d->compliance_state);
    PUTK(w, ",\"management_state\":");
    aw_str(w, d->management_state);
    PUTK(w, ",\"enrollment_type\":");
    aw_str(w, d->enrollment_type);
    PUTK(w, ",\"is_encrypted\":");
    aw_bool(w, d->is_encrypted);
    PUTK(w, ",\"is_supervised\":");
    aw_bool(w, d->is_supervised);
    PUTK(w, ",\"storage\":{\"total_bytes\":");
    aw_bytes(w, d->storage_total);
    PUTK(w, ",\"free_bytes\":");
    aw_bytes(w, d->storage_free);
    PUTK(w, "},\"memory_bytes\":");
    aw_bytes(w, d->memory);
    PUTK(w, ",\"wifi_mac\":");
    aw_str(w, d->wifi_mac);
    PUTK(w, ",\"ethernet_mac\":");
    aw_str(w, d->ethernet_mac);
    PUTK(w, ",\"imei\":");
    aw_str(w, d->imei);
    PUTK(w, ",\"meid\":");
    aw_str(w, d->meid);
    PUTK(w, ",\"phone_number\":");
    aw_str(w, d->phone);
    PUTK(w, ",\"enrolled_at\":");
    aw_ts(w, 0, d->enrolled_at);
    PUTK(w, ",\"last_check_in_at\":");
    aw_ts(w, 1, d->last_check_in_at);
    PUTK(w, ",\"first_synced_at\":");
    aw_ts(w, 2, a->first_synced_at);
    PUTK(w, ",\"last_synced_at\":");
    aw_ts(w, 3, a->last_synced_at);
    PUTK(w, ",\"retired_at\":");
    aw_ts(w, 4, a->retired_at);
    PUTK(w, ",\"missing_since\":");
    aw_ts(w, 5, a->missing_since);
    PUTK(w, ",\"updated_at\":");
    aw_ts(w, 6, a->updated_at);
}

static void
asset_writer_asset_tail(struct asset_writer *w, int serial_duplicate)
{
    if (serial_duplicate != 0)
        PUTK(w, ",\"serial_duplicate\":true}");
    else
        PUTK(w, ",\"serial_duplicate\":false}");
}

void
asset_writer_asset(struct asset_writer *w, const struct asset *a)
{
    asset_writer_asset_head(w, a);
    asset_writer_asset_body(w, a);
    asset_writer_asset_tail(w, a->serial_duplicate);
}

/* An owned writer's length so far (SIZE_MAX for a writer into a buf), and the bytes written
 * since that mark: valid until the next write; NULL for a writer into a buf or one past its
 * maximum. */
static size_t
asset_writer_mark(const struct asset_writer *w)
{
    return w->out == NULL ? (size_t)(w->p - w->base) : SIZE_MAX;
}

static const char *
asset_writer_since(const struct asset_writer *w, size_t mark, size_t *len)
{
    size_t n = (size_t)(w->p - w->base);

    if (w->out != NULL || w->bad || mark > n)
        return NULL;
    *len = n - mark;
    return w->base + mark;
}

static void
emit_raw(void *arg, const char *p, size_t n)
{
    aw_put(arg, p, n);
}

int
asset_writer_row(struct asset_writer *w, const struct asset *a, struct rowcache *rc)
{
    char key[ROWCACHE_MAX_AUX + 1];
    int has_key = 0, dup;

    if (a->dev_load == NULL) {
        asset_writer_asset(w, a);
        return ERR_OK;
    }
    asset_writer_asset_head(w, a);
    if (rowcache_get(rc, a->id, a->dev_stamp, emit_raw, w, key, &has_key)) {
        dup = a->dup(a->dev_ctx, has_key ? key : NULL);
    } else {
        struct asset b = *a;
        const char *body, *serial_key = NULL;
        size_t mark, n;
        int err = a->dev_load(a->dev_ctx, &b, &serial_key);

        if (err != ERR_OK)
            return err;
        mark = asset_writer_mark(w);
        asset_writer_asset_body(w, &b);
        if ((body = asset_writer_since(w, mark, &n)) != NULL)
            rowcache_put(rc, a->id, a->dev_stamp, body, n, serial_key);
        dup = b.serial_duplicate;
    }
    asset_writer_asset_tail(w, dup);
    return ERR_OK;
}

int
asset_writer_finish(struct asset_writer *w)
{
    int bad;

    aw_flush(w);
    bad = w->bad;
    free(w->base);
    free(w);
    return bad ? ERR_TOOBIG : ERR_OK;
}

char *
asset_writer_take(struct asset_writer *w, size_t *len)
{
    char *out = NULL;

    if (!w->bad) {
        out = w->base;
        *w->p = '\0';
        *len = (size_t)(w->p - w->base);
    } else {
        free(w->base);
    }
    free(w);
    return out;
}

json_t *
client_to_json(const struct client_row *c)
{
    json_t *err, *warn;

    if (c->error_code == NULL && c->error_message == NULL && c->error_remedy == NULL)
        err = json_null();
    else
        err = json_pack("{s:o, s:o, s:o, s:o, s:o}", "code", jstr(c->error_code), "message",
                        jstr(c->error_message), "remedy", jstr(c->error_remedy), "request_id",
                        jstr(c->error_request_id), "date", jstr(c->error_date));
    if (c->warning_code == NULL)
        warn = json_null();
    else
        warn = json_pack("{s:o, s:o, s:o}", "code", jstr(c->warning_code), "message",
                         jstr(c->warning_message), "remedy", jstr(c->warning_remedy));
    return json_pack("{s:I, s:o, s:o, s:o, s:o, s:b, s:o, s:o, s:o, s:I, s:I, s:o}", "id",
                     (json_int_t)c->id, "tenant_id", jstr(c->tenant_id), "name", jstr(c->name),
                     "default_domain", jstr(c->default_domain), "source", jstr(c->source),
                     "included", c->included != 0, "status", jstr(c->status), "last_sync_at",
                     jts(c->last_sync_at), "error", err, "device_count",
                     (json_int_t)c->device_count, "software_count", (json_int_t)c->software_count,
                     "warning", warn);
}

const char *const software_columns[] = {
    "id",      "client.id", "client.name", "client.tenant_id", "name",
    "version", "publisher", "platform",    "size_bytes",       "device_count",
};
const size_t software_column_count = sizeof software_columns / sizeof software_columns[0];

json_t *
software_to_json(const struct software_row *s)
{
    return json_pack("{s:I, s:{s:I, s:o, s:o}, s:o, s:o, s:o, s:o, s:o, s:I}", "id",
                     (json_int_t)s->id, "client", "id", (json_int_t)s->client_id, "name",
                     jstr(s->client_name), "tenant_id", jstr(s->client_tenant_id), "name",
                     jstr(s->name), "version", jstr(s->version), "publisher", jstr(s->publisher),
                     "platform", jstr(s->platform), "size_bytes", jbytes(s->size_bytes),
                     "device_count", (json_int_t)s->device_count);
}

const char *const asset_change_columns[] = {"id", "asset_id", "at", "field", "old", "new"};
const size_t asset_change_column_count =
    sizeof asset_change_columns / sizeof asset_change_columns[0];

json_t *
asset_change_to_json(const struct asset_change_row *c)
{
    return json_pack("{s:I, s:I, s:o, s:o, s:o, s:o}", "id", (json_int_t)c->id, "asset_id",
                     (json_int_t)c->asset_id, "at", jts(c->at), "field", jstr(c->field), "old",
                     jstr(c->old_value), "new", jstr(c->new_value));
}
