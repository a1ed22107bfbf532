/* output.c - table, CSV, JSON and JSON-lines writers for jansson rows. */
#define _XOPEN_SOURCE 700 /* wcwidth */
#include "output.h"

#include <errno.h>
#include <inttypes.h>
#include <locale.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <wchar.h>

#include "buf.h"
#include "mem.h"

#define CELL_MAX (16 * 1024 * 1024)

struct output {
    FILE *fp;
    enum output_format fmt;
    const char *const *cols; /* borrowed, or owned_cols */
    size_t ncols;
    char **owned_cols;
    size_t rows;
    /* table: cells kept until the end, row-major, ncols per row */
    char **cells;
    size_t ncells, capcells;
    int no_headers; /* csv and table: no header line */
    int raw;        /* csv: no formula guard (machine imports) */
};

void
output_no_headers(struct output *o)
{
    o->no_headers = 1;
}

void
output_raw_cells(struct output *o)
{
    o->raw = 1;
}

int
output_format_parse(const char *s, enum output_format *out, struct errbuf *eb)
{
    static const struct {
        const char *name;
        enum output_format f;
    } names[] = {
        {"table", OUTPUT_TABLE},
        {"csv", OUTPUT_CSV},
        {"json", OUTPUT_JSON},
        {"jsonl", OUTPUT_JSONL},
    };

    for (size_t i = 0; s != NULL && i < sizeof names / sizeof names[0]; i++)
        if (strcmp(s, names[i].name) == 0) {
            *out = names[i].f;
            return ERR_OK;
        }
    return err_set(eb, ERR_USAGE, "unknown format \"%s\"; use table, csv, json or jsonl",
                   s != NULL ? s : "");
}

const json_t *
output_lookup(const json_t *row, const char *path)
{
    const json_t *v = row;
    const char *p = path;

    while (v != NULL && *p != '\0') {
        const char *dot = strchr(p, '.');
        size_t n = dot != NULL ? (size_t)(dot - p) : strlen(p);
        if (!json_is_object(v))
            return NULL;
        v = json_object_getn(v, p, n);
        p += n;
        if (*p == '.')
            p++;
    }
    return v;
}

/* Text of one cell: "" for null/absent, numbers exact, objects and arrays as compact JSON. */
static char *
cell_text(const json_t *v)
{
    if (v == NULL || json_is_null(v))
        return xstrdup("");
    if (json_is_string(v))
        return xstrndup(json_string_value(v), json_string_length(v));
    if (json_is_true(v))
        return xstrdup("true");
    if (json_is_false(v))
        return xstrdup("false");
    if (json_is_integer(v))
        return xasprintf("%" JSON_INTEGER_FORMAT, json_integer_value(v));
    {
        char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        char *r = xstrdup(s != NULL ? s : "");
        free(s);
        return r;
    }
}

static void
flatten(struct output *o, const json_t *obj, const char *prefix, size_t *cap)
{
    const char *key;
    json_t *v;

    json_object_foreach((json_t *)obj, key, v)
    {
        char *name = prefix != NULL ? xasprintf("%s.%s", prefix, key) : xstrdup(key);
        if (json_is_object(v) && json_object_size(v) > 0) {
            flatten(o, v, name, cap);
            free(name);
            continue;
        }
        o->owned_cols = mem_grow(o->owned_cols, cap, o->ncols + 1, sizeof *o->owned_cols);
        o->owned_cols[o->ncols++] = name;
    }
    o->cols = (const char *const *)o->owned_cols;
}

static int
io_check(struct output *o, struct errbuf *eb)
{
    if (ferror(o->fp))
        return err_set(eb, ERR_IO, "writing the output failed: %s", err_strerror(errno));
    return ERR_OK;
}

int
output_begin(struct output **out, FILE *fp, enum output_format fmt, const char *const *columns,
             size_t ncolumns, struct errbuf *eb)
{
    struct output *o = xcalloc(1, sizeof *o);

    o->fp = fp;
    o->fmt = fmt;
    o->cols = columns;
    o->ncols = columns != NULL ? ncolumns : 0;
    *out = NULL;
    if (fmt == OUTPUT_JSON)
        fputs("[", fp);
    if (io_check(o, eb) != ERR_OK) {
        free(o);
        return ERR_IO;
    }
    *out = o;
    return ERR_OK;
}

/* RFC 4180 cell with formula neutralisation for strings unless raw. */
static void
csv_cell(FILE *fp, const json_t *v, int raw)
{
    char *t = cell_text(v);
    int lead =
        !raw && json_is_string(v) &&
        (t[0] == '=' || t[0] == '+' || t[0] == '-' || t[0] == '@' || t[0] == '\t' || t[0] == '\r');
    int quote = strpbrk(t, ",\"\r\n") != NULL;

    if (quote)
        fputc('"', fp);
    if (lead)
        fputc('\'', fp);
    for (const char *p = t; *p != '\0'; p++) {
        if (*p == '"')
            fputc('"', fp);
        fputc(*p, fp);
    }
    if (quote)
        fputc('"', fp);
    free(t);
}

static void
csv_header(struct output *o)
{
    for (size_t i = 0; i < o->ncols; i++) {
        json_t *name = json_string(o->cols[i]);
        if (i > 0)
            fputc(',', o->fp);
        csv_cell(o->fp, name, o->raw);
        json_decref(name);
    }
    fputs("\r\n", o->fp);
}

/* Decodes one UTF-8 sequence at p (already valid: jansson checks its strings) into *cp;
 * returns its length. */
static size_t
utf8_next(const unsigned char *p, uint32_t *cp)
{
    size_t len = 1;
    uint32_t c = *p;

    if (c >= 0xf0) {
        c &= 0x07;
        len = 4;
    } else if (c >= 0xe0) {
        c &= 0x0f;
        len = 3;
    } else if (c >= 0xc0) {
        c &= 0x1f;
        len = 2;
    }
    for (size_t i = 1; i < len; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return i; /* cut short: take what is there */
        c = (c << 6) | (p[i] & 0x3f);
    }
    *cp = c;
    return len;
}

/* East Asian wide and fullwidth ranges, for when no UTF-8 locale is installed. */
static int
wide_fallback(uint32_t c)
{
    return (c >= 0x1100 && c <= 0x115f) || (c >= 0x2e80 && c <= 0xa4cf && c != 0x303f) ||
           (c >= 0xac00 && c <= 0xd7a3) || (c >= 0xf900 && c <= 0xfaff) ||
           (c >= 0xfe30 && c <= 0xfe4f) || (c >= 0xff00 && c <= 0xff60) ||
           (c >= 0xffe0 && c <= 0xffe6) || (c >= 0x1f300 && c <= 0x1f64f) ||
           (c >= 0x1f900 && c <= 0x1f9ff) || (c >= 0x20000 && c <= 0x3fffd);
}

/* Terminal columns of one code point: wcwidth(3) in the C.UTF-8 locale, made for this thread
 * only with newlocale/uselocale (the process locale is never changed: see config.h). */
static int
cp_width(uint32_t c)
{
    static locale_t utf8 = (locale_t)0;
    static int tried;
    int w = -1;

    if (c < 0x7f)
        return c < 0x20 ? 0 : 1;
    if (!tried) {
        tried = 1;
        utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
    }
    if (utf8 != (locale_t)0) {
        locale_t old = uselocale(utf8);

        w = wcwidth((wchar_t)c);
        uselocale(old);
    }
    if (w < 0)
        w = wide_fallback(c) ? 2 : 1;
    return w;
}

static size_t
display_width(const char *s)
{
    size_t n = 0;
    const unsigned char *p = (const unsigned char *)s;

    while (*p != '\0') {
        uint32_t c = *p;

        p += utf8_next(p, &c);
        n += (size_t)cp_width(c);
    }
    return n;
}

/* Replaces control characters (C0, DEL, C1) and cuts the cell at OUTPUT_TABLE_CELL_MAX
 * terminal columns (display width: a CJK character takes two), ending a cut one with "…". */
static char *
table_cell(const json_t *v)
{
    char *t = cell_text(v);
    struct buf b;
    size_t cols = 0, total;
    const unsigned char *p = (const unsigned char *)t;

    buf_init(&b, CELL_MAX);
    total = display_width(t);
    while (*p != '\0') {
        uint32_t c = *p;
        size_t len = utf8_next(p, &c);
        int ctl = *p < 0x20 || *p == 0x7f || (*p == 0xc2 && p[1] >= 0x80 && p[1] <= 0x9f);
        size_t w = ctl ? 1 : (size_t)cp_width(c);

        if (total > OUTPUT_TABLE_CELL_MAX && cols + w > OUTPUT_TABLE_CELL_MAX - 1) {
            buf_addstr(&b, "\xe2\x80\xa6");
            break;
        }
        if (ctl)
            buf_addc(&b, ' ');
        else
            buf_add(&b, p, len);
        cols += w;
        p += len;
    }
    free(t);
    return buf_detach(&b, NULL);
}

/* A column path as a header in words: "client.name" -> "Client", "serial_number" ->
 * "Serial number", "os_version" -> "OS version", "last_sync_at" -> "Last sync at". */
static char *
header_words(const char *path)
{
    static const char *const upper[] = {"id",  "os",  "upn", "mac", "imei", "meid",
                                        "url", "aad", "tpm", "ram", NULL};
    char tmp[256];
    struct buf b;
    size_t n;
    const char *p = tmp;

    snprintf(tmp, sizeof tmp, "%s", path);
    n = strlen(tmp);
    if (n > 5 && strcmp(tmp + n - 5, ".name") == 0)
        tmp[n - 5] = '\0';
    buf_init(&b, sizeof tmp * 2);
    while (*p != '\0') {
        size_t wl = strcspn(p, "._");
        int done = 0;

        if (b.len > 0)
            buf_addc(&b, ' ');
        for (size_t i = 0; upper[i] != NULL && !done; i++)
            if (strlen(upper[i]) == wl && strncmp(p, upper[i], wl) == 0) {
                for (size_t k = 0; k < wl; k++)
                    buf_addc(&b, (char)(p[k] >= 'a' && p[k] <= 'z' ? p[k] - 32 : p[k]));
                done = 1;
            }
        if (!done) {
            for (size_t k = 0; k < wl; k++)
                buf_addc(&b, (char)(b.len == 0 && p[k] >= 'a' && p[k] <= 'z' ? p[k] - 32 : p[k]));
        }
        p += wl;
        while (*p == '.' || *p == '_')
            p++;
    }
    return buf_detach(&b, NULL);
}

int
output_row(struct output *o, const json_t *row, struct errbuf *eb)
{
    if (!json_is_object(row))
        return err_set(eb, ERR_INVAL, "output row is not a JSON object");
    if (o->cols == NULL && (o->fmt == OUTPUT_CSV || o->fmt == OUTPUT_TABLE)) {
        size_t cap = 0;
        flatten(o, row, NULL, &cap);
    }
    switch (o->fmt) {
    case OUTPUT_JSON:
        fputs(o->rows > 0 ? ",\n" : "\n", o->fp);
        json_dumpf(row, o->fp, JSON_COMPACT);
        break;
    case OUTPUT_JSONL:
        json_dumpf(row, o->fp, JSON_COMPACT);
        fputc('\n', o->fp);
        break;
    case OUTPUT_CSV:
        if (o->rows == 0 && !o->no_headers)
            csv_header(o);
        for (size_t i = 0; i < o->ncols; i++) {
            if (i > 0)
                fputc(',', o->fp);
            csv_cell(o->fp, output_lookup(row, o->cols[i]), o->raw);
        }
        fputs("\r\n", o->fp);
        break;
    case OUTPUT_TABLE:
        o->cells = mem_grow(o->cells, &o->capcells, o->ncells + o->ncols, sizeof *o->cells);
        for (size_t i = 0; i < o->ncols; i++)
            o->cells[o->ncells++] = table_cell(output_lookup(row, o->cols[i]));
        break;
    }
    o->rows++;
    return io_check(o, eb);
}

static void
table_line(struct output *o, char *const *cells, const size_t *w)
{
    for (size_t i = 0; i < o->ncols; i++) {
        fputs(cells[i], o->fp);
        if (i + 1 < o->ncols)
            for (size_t k = display_width(cells[i]); k < w[i] + 2; k++)
                fputc(' ', o->fp);
    }
    fputc('\n', o->fp);
}

static void
table_flush(struct output *o)
{
    size_t *w;
    char **head;

    if (o->ncols == 0)
        return;
    w = xcalloc(o->ncols, sizeof *w);
    head = xcalloc(o->ncols, sizeof *head);
    for (size_t i = 0; i < o->ncols; i++) {
        char *words = header_words(o->cols[i]);
        json_t *name = json_string(words);

        head[i] = table_cell(name);
        json_decref(name);
        free(words);
        w[i] = display_width(head[i]);
    }
    for (size_t r = 0; r < o->rows; r++)
        for (size_t i = 0; i < o->ncols; i++) {
            size_t n = display_width(o->cells[r * o->ncols + i]);
            if (n > w[i])
                w[i] = n;
        }
    if (!o->no_headers)
        table_line(o, head, w);
    for (size_t r = 0; r < o->rows; r++)
        table_line(o, &o->cells[r * o->ncols], w);
    for (size_t i = 0; i < o->ncols; i++)
        free(head[i]);
    free(head);
    free(w);
}

int
output_end(struct output *o, struct errbuf *eb)
{
    int rc;

    if (o == NULL)
        return ERR_OK;
    if (o->fmt == OUTPUT_JSON)
        fputs(o->rows > 0 ? "\n]\n" : "]\n", o->fp);
    else if (o->fmt == OUTPUT_CSV && o->rows == 0 && o->ncols > 0 && !o->no_headers)
        csv_header(o);
    else if (o->fmt == OUTPUT_TABLE)
        table_flush(o);
    fflush(o->fp);
    rc = io_check(o, eb);
    for (size_t i = 0; i < o->ncells; i++)
        free(o->cells[i]);
    free(o->cells);
    if (o->owned_cols != NULL)
        for (size_t i = 0; i < o->ncols; i++)
            free(o->owned_cols[i]);
    free(o->owned_cols);
    free(o);
    return rc;
}
