/* err.h - the project-wide error codes and the message out-parameter.
 *
 * Every fallible function returns ERR_OK (0) or a negative ERR_* code. When it fails and the
 * caller passed a struct errbuf, the buffer holds one plain-language sentence saying what
 * happened (and, where the user can act, what to do). Library codes (CURLcode, SQLITE_*,
 * errno, ...) are translated at module boundaries and never leak upward.
 * Messages never contain secrets or tokens. Thread-safe: no shared state.
 */
#ifndef MEMSYNC_ERR_H
#define MEMSYNC_ERR_H

#include <stddef.h>

enum err_code {
    ERR_OK = 0,
    ERR_NOMEM = -1,        /* allocation failed */
    ERR_INVAL = -2,        /* invalid argument or input */
    ERR_NOTFOUND = -3,     /* no such object */
    ERR_IO = -4,           /* file or socket I/O */
    ERR_DB = -5,           /* database error */
    ERR_HTTP = -6,         /* transport failure or unexpected HTTP status */
    ERR_THROTTLED = -7,    /* throttled beyond the retry budget */
    ERR_PARSE = -8,        /* malformed input (JSON, CSV, URL, date, ...) */
    ERR_CRYPTO = -9,       /* sealing/unsealing failed, wrong key */
    ERR_TOOBIG = -10,      /* a size limit was reached */
    ERR_AUTH = -11,        /* authentication or authorisation refused */
    ERR_USAGE = -12,       /* bad command line */
    ERR_TIMEOUT = -13,     /* a deadline passed */
    ERR_INTERRUPTED = -14, /* stopped by a signal or a shutdown request */
    ERR_EXISTS = -15,      /* already exists */
    ERR_DENIED = -16,      /* permission denied (file mode, role) */
    ERR_UNSUPPORTED = -17, /* feature not available in this build or backend */
};

#define ERRBUF_MSG_MAX 512

struct errbuf {
    int code;
    char msg[ERRBUF_MSG_MAX];
};

/* Formats the message into eb (if eb != NULL) and returns code, so one line both records and
 * returns: `return err_set(eb, ERR_TOOBIG, "page is %zu bytes", n);` */
int err_set(struct errbuf *eb, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Prefixes an existing message: "context: old message". Returns eb->code (or code if eb NULL). */
int err_prefix(struct errbuf *eb, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Clears eb (if not NULL). */
void err_clear(struct errbuf *eb);

/* Static name of a code, e.g. "parse error". Never NULL. */
const char *err_str(int code);

/* The system's text for an errno value, thread-safe where strerror() is not (banned by
 * scripts/checksrc.sh). Never NULL. The text lives in a per-thread buffer of ERR_STRERROR_MAX
 * bytes that the next call on the same thread overwrites: use one call per message. */
#define ERR_STRERROR_MAX 128
const char *err_strerror(int errnum);

/* Aborts with file:line in every build (never compiled out like assert()). */
#define ASSERT(x)                                                                                  \
    do {                                                                                           \
        if (!(x))                                                                                  \
            err_assert_fail(#x, __FILE__, __LINE__);                                               \
    } while (0)
_Noreturn void err_assert_fail(const char *expr, const char *file, int line);

#endif
