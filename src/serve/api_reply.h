/* api_reply.h - how the REST API answers (docs/API.md "Errors"), for api.c and every route file
 * beside it (api_*.c): a JSON body, the error envelope {"errors": [{"code", "title", "detail"}]},
 * and the one table from a store or auth error to its HTTP status.
 * Each call replaces resp's status, content type and body; an answer that cannot be built is a
 * 500 with the envelope. A busy database (ERR_TIMEOUT) and every 500 are logged here, since their
 * message may name a file and is not shown.
 * Threads: any; no state.
 */
#ifndef MEMSYNC_API_REPLY_H
#define MEMSYNC_API_REPLY_H

#include <jansson.h>

#include "err.h"
#include "httpd.h"

/* Takes the reference j (NULL answers 500). */
void api_reply_json(struct httpd_response *resp, int status, json_t *j);
/* detail NULL: the title. */
void api_reply_error(struct httpd_response *resp, int status, const char *code, const char *title,
                     const char *detail);
/* eb may be NULL (err_str(code) is the detail). ERR_TOOBIG is 413, a body or value over its
 * limit; 429 is for the rate limits (the router's, and ERR_THROTTLED of the sign-in limits). */
void api_reply_err(struct httpd_response *resp, int code, const struct errbuf *eb);
/* As api_reply_err for a refused sync request, but the scheduler's full queue (ERR_TOOBIG) is the
 * server's capacity, neither the request's size nor the key's rate: 503 busy with Retry-After. */
void api_reply_sync_err(struct httpd_response *resp, int code, const struct errbuf *eb);

#endif
