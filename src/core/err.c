#include "err.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int
err_set(struct errbuf *eb, int code, const char *fmt, ...)
{
    va_list ap;

    if (eb == NULL)
        return code;
    eb->code = code;
    va_start(ap, fmt);
    vsnprintf(eb->msg, sizeof eb->msg, fmt, ap);
    va_end(ap);
    return code;
}

int
err_prefix(struct errbuf *eb, int code, const char *fmt, ...)
{
    char head[ERRBUF_MSG_MAX];
    char old[ERRBUF_MSG_MAX];
    va_list ap;

    if (eb == NULL)
        return code;
    va_start(ap, fmt);
    vsnprintf(head, sizeof head, fmt, ap);
    va_end(ap);
    memcpy(old, eb->msg, sizeof old);
    old[sizeof old - 1] = '\0';
    if (old[0] != '\0')
        snprintf(eb->msg, sizeof eb->msg, "%s: %s", head, old);
    else
        snprintf(eb->msg, sizeof eb->msg, "%s", head);
    if (eb->code == 0)
        eb->code = code;
    return eb->code;
}

void
err_clear(struct errbuf *eb)
{
    if (eb == NULL)
        return;
    eb->code = 0;
    eb->msg[0] = '\0';
}

const char *
err_strerror(int errnum)
{
    static _Thread_local char text[ERR_STRERROR_MAX];

    /* The XSI strerror_r (the build asks for POSIX, not GNU) fills text and returns 0. */
    if (strerror_r(errnum, text, sizeof text) != 0)
        snprintf(text, sizeof text, "error %d", errnum);
    return text;
}

const char *
err_str(int code)
{
    switch (code) {
    case ERR_OK:
        return "ok";
    case ERR_NOMEM:
        return "out of memory";
    case ERR_INVAL:
        return "invalid input";
    case ERR_NOTFOUND:
        return "not found";
    case ERR_IO:
        return "I/O error";
    case ERR_DB:
        return "database error";
    case ERR_HTTP:
        return "HTTP error";
    case ERR_THROTTLED:
        return "throttled";
    case ERR_PARSE:
        return "parse error";
    case ERR_CRYPTO:
        return "cryptographic error";
    case ERR_TOOBIG:
        return "too big";
    case ERR_AUTH:
        return "authentication failed";
    case ERR_USAGE:
        return "usage error";
    case ERR_TIMEOUT:
        return "timed out";
    case ERR_INTERRUPTED:
        return "interrupted";
    case ERR_EXISTS:
        return "already exists";
    case ERR_DENIED:
        return "permission denied";
    case ERR_UNSUPPORTED:
        return "not supported";
    default:
        return "unknown error";
    }
}

void
err_assert_fail(const char *expr, const char *file, int line)
{
    fprintf(stderr, "memsync: assertion failed: %s at %s:%d\n", expr, file, line);
    fflush(stderr);
    abort();
}
