/* api_reply.c - the REST API's answers (api_reply.h). */
#include "api_reply.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "mem.h"

/* jansson hands over a few bytes at a time: gather them before appending to the body. */
struct dump {
    struct buf *out;
    size_t n;
    int bad;
    char tmp[16384];
};

static void
dump_flush(struct dump *d)
{
    if (d->n > 0 && buf_add(d->out, d->tmp, d->n) != ERR_OK)
        d->bad = 1;
    d->n = 0;
}

static int
dump_cb(const char *data, size_t n, void *arg)
{
    struct dump *d = arg;

    if (d->n + n > sizeof d->tmp) {
        dump_flush(d);
        if (n > sizeof d->tmp) {
            if (buf_add(d->out, data, n) != ERR_OK)
                d->bad = 1;
            return d->bad ? -1 : 0;
        }
    }
    memcpy(d->tmp + d->n, data, n);
    d->n += n;
    return d->bad ? -1 : 0;
}

/* Serialises straight into the response body: no intermediate string to grow and copy. */
void
api_reply_json(struct httpd_response *resp, int status, json_t *j)
{
    struct dump *d = xmalloc(sizeof *d);
    int rc = -1;

    resp->status = status;
    resp->content_type = "application/json";
    buf_reset(&resp->body);
    d->out = &resp->body;
    d->n = 0;
    d->bad = 0;
    if (j != NULL) {
        rc = json_dump_callback(j, dump_cb, d, JSON_COMPACT);
        dump_flush(d);
    }
    if (rc != 0 || d->bad) {
        resp->status = 500;
        buf_reset(&resp->body);
        buf_addstr(&resp->body, "{\"errors\":[{\"code\":\"internal\",\"title\":\"Internal "
                                "error\",\"detail\":\"The response could not be built.\"}]}");
    }
    free(d);
    json_decref(j);
}

void
api_reply_error(struct httpd_response *resp, int status, const char *code, const char *title,
                const char *detail)
{
    api_reply_json(resp, status,
                   json_pack("{s:[{s:s, s:s, s:s}]}", "errors", "code", code, "title", title,
                             "detail", detail != NULL ? detail : title));
}

void
api_reply_err(struct httpd_response *resp, int code, const struct errbuf *eb)
{
    const char *msg = eb != NULL && eb->msg[0] ? eb->msg : err_str(code);

    switch (code) {
    case ERR_NOTFOUND:
        api_reply_error(resp, 404, "not_found", "Not found", msg);
        break;
    case ERR_INVAL:
    case ERR_PARSE:
    case ERR_USAGE:
        api_reply_error(resp, 400, "invalid_request", "Invalid request", msg);
        break;
    case ERR_AUTH:
        api_reply_error(resp, 401, "unauthorized", "Authentication required", msg);
        break;
    case ERR_DENIED:
        api_reply_error(resp, 403, "forbidden", "Forbidden", msg);
        break;
    case ERR_EXISTS:
        api_reply_error(resp, 409, "conflict", "Conflict", msg);
        break;
    case ERR_THROTTLED:
        api_reply_error(resp, 429, "too_many_requests", "Too many requests", msg);
        break;
    case ERR_TOOBIG: /* the same code as httpd's answer to a body over its limit */
        api_reply_error(resp, 413, "payload_too_large", "Request too large", msg);
        break;
    case ERR_UNSUPPORTED:
        api_reply_error(resp, 501, "not_implemented", "Not implemented", msg);
        break;
    case ERR_TIMEOUT: /* a database locked past the busy timeout; msg names the file */
        log_warn("api: busy: %s", msg);
        api_reply_error(resp, 503, "busy", "Service busy", "The database is busy; try again.");
        httpd_response_header(resp, "Retry-After", "5");
        break;
    default:
        log_warn("api: internal error: %s", msg);
        api_reply_error(resp, 500, "internal", "Internal error",
                        "The request could not be completed; see the server log.");
        break;
    }
}

void
api_reply_sync_err(struct httpd_response *resp, int code, const struct errbuf *eb)
{
    if (code != ERR_TOOBIG) {
        api_reply_err(resp, code, eb);
        return;
    }
    api_reply_error(resp, 503, "busy", "Service busy",
                    eb != NULL && eb->msg[0] ? eb->msg
                                             : "too many syncs are queued; try again later");
    httpd_response_header(resp, "Retry-After", "30");
}
