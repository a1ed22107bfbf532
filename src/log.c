#include "log.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "err.h"

static enum log_level log_cur = LOG_INFO;
static int log_json;
static int log_clear;

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

static size_t
json_escape(char *out, size_t cap, const char *s)
{
    size_t o = 0;

    for (; *s != '\0' && o + 7 < cap; s++) {
        unsigned char c = (unsigned char)*s;

        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
    return o;
}

void
log_msg(enum log_level level, const char *fmt, ...)
{
    static const char *names[] = {"error", "warn", "info", "debug"};
    char msg[2048], line[4600], ts[32];
    struct timespec now;
    struct tm tm;
    va_list ap;
    int n;

    if (level > log_cur)
        return;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    clock_gettime(CLOCK_REALTIME, &now);
    gmtime_r(&now.tv_sec, &tm);
    snprintf(ts, sizeof ts, "%04d-%02d-%02dT%02d:%02d:%02d.%03ldZ", tm.tm_year + 1900,
             tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, now.tv_nsec / 1000000L);
    if (log_json) {
        char esc[4200];

        json_escape(esc, sizeof esc, msg);
        n = snprintf(line, sizeof line, "{\"ts\":\"%s\",\"level\":\"%s\",\"msg\":\"%s\"}\n", ts,
                     names[level], esc);
    } else {
        n = snprintf(line, sizeof line, "%s%s %s %s\n", log_clear ? "\r\033[K" : "", ts,
                     names[level], msg);
    }
    if (n < 0)
        return;
    if ((size_t)n >= sizeof line) {
        n = (int)sizeof line - 1;
        line[n - 1] = '\n';
    }
    /* One write per line keeps lines whole when several threads log. */
    (void)!write(STDERR_FILENO, line, (size_t)n);
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
