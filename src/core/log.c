#include "log.h"

#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"
#include "utf8.h"

#define LOG_MSG_MAX    2048
#define LOG_LINE_MAX   8192
#define LOG_FIELDS_MAX 32

static enum log_level log_cur = LOG_INFO;
static int log_json;
static atomic_int log_clear; /* set by the thread drawing the progress line */

int
log_level_parse(const char *s, enum log_level *out)
{
    static const char *names[] = {"error", "warn", "info", "debug"};

    for (int i = 0; i < 4; i++) {
        if (strcmp(s, names[i]) == 0) {
            *out = (enum log_level)i;
            return ERR_OK;
        }
    }
    return ERR_INVAL;
}

void
log_configure(enum log_level level, int json)
{
    log_cur = level;
    log_json = json;
}

void
log_progress_line(int active)
{
    log_clear = active;
}

int
log_enabled(enum log_level level)
{
    return level <= log_cur;
}

/* ---- the message's fields ------------------------------------------------------------------- */

struct field {
    const char *key, *val;
    size_t klen, vlen;
    int quoted;
};

struct parsed {
    const char *head, *detail;
    size_t hlen, dlen;
    struct field f[LOG_FIELDS_MAX];
    size_t n;
};

/* Length of the key when s starts with `key=` (ASCII letter or _, then letters, digits, _ and
 * .), else 0. */
static size_t
key_len(const char *s)
{
    size_t n = 0;

    if (!((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z') || s[0] == '_'))
        return 0;
    while ((s[n] >= 'a' && s[n] <= 'z') || (s[n] >= 'A' && s[n] <= 'Z') ||
           (s[n] >= '0' && s[n] <= '9') || s[n] == '_' || s[n] == '.')
        n++;
    return s[n] == '=' ? n : 0;
}

/* ": " or a final ":" ends the fields; what follows is the detail. */
static int
at_detail(const char *s)
{
    return s[0] == ':' && (s[1] == ' ' || s[1] == '\0');
}

/* Splits `head key=value key="quoted value" ...: detail` (see log.h). */
static void
parse_msg(const char *msg, struct parsed *pm)
{
    const char *p = msg;

    memset(pm, 0, sizeof *pm);
    pm->head = msg;
    while (*p != '\0' && !((p == msg || p[-1] == ' ') && key_len(p) > 0))
        p++;
    pm->hlen = (size_t)(p - msg);
    while (pm->hlen > 0 && msg[pm->hlen - 1] == ' ')
        pm->hlen--;
    while (*p != '\0' && pm->n < LOG_FIELDS_MAX) {
        struct field *f = &pm->f[pm->n];
        const char *v, *e = NULL;

        f->key = p;
        f->klen = key_len(p);
        if (f->klen == 0)
            break;
        v = p + f->klen + 1;
        if (*v == '"') {
            /* The closing quote is the one followed by ` key=`, ": " or the end. */
            for (const char *q = strchr(v + 1, '"'); q != NULL; q = strchr(q + 1, '"'))
                if (q[1] == '\0' || (q[1] == ' ' && key_len(q + 2) > 0) || at_detail(q + 1)) {
                    e = q;
                    break;
                }
        }
        if (e != NULL) {
            f->val = v + 1;
            f->vlen = (size_t)(e - (v + 1));
            f->quoted = 1;
            p = e + 1;
        } else {
            /* A plain value runs to the next ` key=`, ": " or the end. */
            e = v;
            while (*e != '\0' && !(e[0] == ' ' && key_len(e + 1) > 0) && !at_detail(e))
                e++;
            while (e > v && e[-1] == ' ')
                e--;
            f->val = v;
            f->vlen = (size_t)(e - v);
            p = e;
        }
        pm->n++;
        if (p[0] == ' ' && key_len(p + 1) > 0) {
            p++;
            continue;
        }
        break;
    }
    if (*p != '\0') {
        if (at_detail(p))
            p++;
        while (*p == ' ')
            p++;
        pm->detail = p;
        pm->dlen = strlen(p);
    }
}

/* ---- a bounded line: whole pieces or nothing ----------------------------------------------- */

struct line {
    char *p;
    size_t cap, len;
};

static int
put(struct line *l, const char *s, size_t n)
{
    if (l->len + n + 3 > l->cap) /* room is kept for "}\n" and the NUL */
        return -1;
    memcpy(l->p + l->len, s, n);
    l->len += n;
    l->p[l->len] = '\0';
    return 0;
}

static int
puts_(struct line *l, const char *s)
{
    return put(l, s, strlen(s));
}

/* A JSON string: quotes, escapes, and U+FFFD for bytes that are not UTF-8. */
static int
put_json_str(struct line *l, const char *s, size_t n)
{
    size_t mark = l->len;
    char esc[8];

    if (put(l, "\"", 1) != 0)
        return -1;
    for (size_t i = 0; i < n;) {
        unsigned char c = (unsigned char)s[i];
        size_t cl = utf8_char_len((const unsigned char *)s + i, n - i);
        int rc;

        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            rc = put(l, esc, 2);
        } else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            rc = put(l, esc, 6);
        } else if (cl == 0) {
            rc = put(l, "\\ufffd", 6);
            cl = 1;
        } else {
            rc = put(l, s + i, cl);
        }
        if (rc != 0) {
            l->len = mark;
            l->p[mark] = '\0';
            return -1;
        }
        i += c < 0x80 ? 1 : cl;
    }
    if (put(l, "\"", 1) != 0) {
        l->len = mark;
        l->p[mark] = '\0';
        return -1;
    }
    return 0;
}

/* A plain integer that JSON parsers keep exact: -?(0|[1-9][0-9]*), at most 15 digits. */
static int
is_int(const char *s, size_t n)
{
    size_t i = s[0] == '-' ? 1 : 0;

    if (n <= i || n - i > 15 || (s[i] == '0' && n - i > 1))
        return 0;
    for (; i < n; i++)
        if (s[i] < '0' || s[i] > '9')
            return 0;
    return 1;
}

static int
put_member(struct line *l, const char *key, size_t klen, const char *val, size_t vlen, int raw,
           int own)
{
    size_t mark = l->len;
    static const char *const reserved[] = {"ts", "level", "msg", "detail"};

    if (put(l, ",", 1) != 0)
        return -1;
    /* A field named like one of the line's own members keeps its value under "field_NAME". */
    for (size_t i = 0; !own && i < sizeof reserved / sizeof reserved[0]; i++)
        if (strlen(reserved[i]) == klen && memcmp(reserved[i], key, klen) == 0) {
            if (puts_(l, "\"field_") != 0 || put(l, key, klen) != 0 || put(l, "\"", 1) != 0)
                goto full;
            goto value;
        }
    if (put_json_str(l, key, klen) != 0)
        goto full;
value:
    if (put(l, ":", 1) != 0 || (raw ? put(l, val, vlen) : put_json_str(l, val, vlen)) != 0)
        goto full;
    return 0;
full:
    l->len = mark;
    l->p[mark] = '\0';
    return -1;
}

/* Text: control characters become \n, \r, \t or \xHH, so a value cannot start a line. */
static void
put_text_escaped(struct line *l, const char *s)
{
    char esc[8];

    for (; *s != '\0'; s++) {
        unsigned char c = (unsigned char)*s;
        int rc;

        if (c == '\n')
            rc = put(l, "\\n", 2);
        else if (c == '\r')
            rc = put(l, "\\r", 2);
        else if (c == '\t')
            rc = put(l, "\\t", 2);
        else if (c < 0x20 || c == 0x7f) {
            snprintf(esc, sizeof esc, "\\x%02x", c);
            rc = put(l, esc, 4);
        } else if (c == 0xc2 && (unsigned char)s[1] >= 0x80 && (unsigned char)s[1] <= 0x9f) {
            /* U+0080..U+009F, the C1 controls (U+009B is CSI to some terminals). */
            snprintf(esc, sizeof esc, "\\u%04x", (unsigned char)s[1]);
            rc = put(l, esc, 6);
            s++;
        } else
            rc = put(l, s, 1);
        if (rc != 0)
            return;
    }
}

size_t
log_format(char *out, size_t cap, enum log_level level, const char *ts, const char *msg, int json,
           int clear)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    struct line l = {out, cap, 0};

    if (cap < 8)
        return 0;
    out[0] = '\0';
    if (json) {
        struct parsed pm;

        parse_msg(msg, &pm);
        if (puts_(&l, "{\"ts\":") != 0 || put_json_str(&l, ts, strlen(ts)) != 0 ||
            puts_(&l, ",\"level\":\"") != 0 || puts_(&l, names[level]) != 0 ||
            puts_(&l, "\",\"msg\":") != 0)
            goto close;
        if (put_json_str(&l, pm.head, pm.hlen) != 0) {
            put(&l, "\"\"", 2);
            goto close;
        }
        for (size_t i = 0; i < pm.n; i++) {
            const struct field *f = &pm.f[i];

            if (put_member(&l, f->key, f->klen, f->val, f->vlen,
                           !f->quoted && is_int(f->val, f->vlen), 0) != 0)
                goto close;
        }
        if (pm.detail != NULL)
            put_member(&l, "detail", 6, pm.detail, pm.dlen, 0, 1);
    close:
        /* put() always leaves room for these. */
        memcpy(out + l.len, "}\n", 3);
        return l.len + 2;
    }
    if (clear)
        puts_(&l, "\r\033[K");
    puts_(&l, ts);
    puts_(&l, " ");
    puts_(&l, names[level]);
    puts_(&l, " ");
    put_text_escaped(&l, msg);
    memcpy(out + l.len, "\n", 2);
    return l.len + 1;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
    char msg[LOG_MSG_MAX], line[LOG_LINE_MAX], ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;
    size_t n;

    if (level > log_cur)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000L);
    n = log_format(line, sizeof line, level, ts, msg, log_json, log_clear);
    /* One write per line keeps lines whole when several threads log. */
    if (n > 0)
        (void)!write(STDERR_FILENO, line, n);
}

void
log_redact_url(const char *url, char *out, size_t outlen)
{
    size_t n = strcspn(url, "?");

    if (outlen == 0)
        return;
    if (url[n] == '?')
        snprintf(out, outlen, "%.*s?…", (int)n, url);
    else
        snprintf(out, outlen, "%s", url);
}
