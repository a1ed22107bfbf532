#include "clock.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "config.h"
#include "err.h"

/* Days from 1970-01-01 to y-m-d in the proleptic Gregorian calendar. */
static int64_t
days_from_civil(int64_t y, unsigned m, unsigned d)
{
    int64_t era;
    unsigned yoe, doy, doe;

    y -= m <= 2;
    era = (y >= 0 ? y : y - 399) / 400;
    yoe = (unsigned)(y - era * 400);
    doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

int64_t
clock_now(void)
{
    const char *fixed = config_env("MEMSYNC_NOW");

    if (fixed != NULL && *fixed != '\0') {
        int64_t t;
        char *end;
        long long v;

        if (clock_parse(fixed, &t) == ERR_OK && t != TS_NULL)
            return t;
        errno = 0;
        v = strtoll(fixed, &end, 10);
        if (errno == 0 && *end == '\0')
            return (int64_t)v;
    }
    return (int64_t)time(NULL);
}

int64_t
clock_mono_ms(void)
{
    return clock_mono_us() / 1000;
}

int64_t
clock_mono_us(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static void
put_digits(char *out, int v, int n)
{
    for (int i = n - 1; i >= 0; i--) {
        out[i] = (char)('0' + v % 10);
        v /= 10;
    }
}

void
clock_fmt(int64_t t, char *out, size_t outlen)
{
    struct tm tm;
    time_t tt;

    if (t == TS_NULL) {
        if (outlen > 0)
            out[0] = '\0';
        return;
    }
    tt = (time_t)t;
    gmtime_r(&tt, &tm);
    /* API lists format five of these per row: digits by hand in the common case. */
    if (outlen >= 21 && tm.tm_year + 1900 >= 0 && tm.tm_year + 1900 <= 9999) {
        put_digits(out, tm.tm_year + 1900, 4);
        out[4] = '-';
        put_digits(out + 5, tm.tm_mon + 1, 2);
        out[7] = '-';
        put_digits(out + 8, tm.tm_mday, 2);
        out[10] = 'T';
        put_digits(out + 11, tm.tm_hour, 2);
        out[13] = ':';
        put_digits(out + 14, tm.tm_min, 2);
        out[16] = ':';
        put_digits(out + 17, tm.tm_sec, 2);
        out[19] = 'Z';
        out[20] = '\0';
        return;
    }
    snprintf(out, outlen, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
             tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

static int
digits(const char *s, int n, int *out)
{
    int v = 0;

    for (int i = 0; i < n; i++) {
        if (!isdigit((unsigned char)s[i]))
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

int
clock_parse(const char *s, int64_t *out)
{
    int y, mo, d, h = 0, mi = 0, se = 0, oh = 0, om = 0, sign = 0;
    const char *p;

    if (s == NULL || strlen(s) < 10 || digits(s, 4, &y) || s[4] != '-' || digits(s + 5, 2, &mo) ||
        s[7] != '-' || digits(s + 8, 2, &d))
        return ERR_PARSE;
    if (mo < 1 || mo > 12 || d < 1 || d > 31)
        return ERR_PARSE;
    p = s + 10;
    if (*p == 'T' || *p == 't' || *p == ' ') {
        if (strlen(p) < 9 || digits(p + 1, 2, &h) || p[3] != ':' || digits(p + 4, 2, &mi) ||
            p[6] != ':' || digits(p + 7, 2, &se))
            return ERR_PARSE;
        if (h > 23 || mi > 59 || se > 60)
            return ERR_PARSE;
        p += 9;
        if (*p == '.') {
            p++;
            if (!isdigit((unsigned char)*p))
                return ERR_PARSE;
            while (isdigit((unsigned char)*p))
                p++;
        }
        if (*p == 'Z' || *p == 'z') {
            p++;
        } else if (*p == '+' || *p == '-') {
            sign = *p == '-' ? -1 : 1;
            if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om))
                return ERR_PARSE;
            p += 6;
        } else if (*p != '\0') {
            return ERR_PARSE;
        }
    }
    if (*p != '\0')
        return ERR_PARSE;
    if (y == 1) {
        *out = TS_NULL;
        return ERR_OK;
    }
    *out = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400 + h * 3600 + mi * 60 + se -
           sign * (oh * 3600 + om * 60);
    return ERR_OK;
}
