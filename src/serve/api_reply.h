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
/* eb may be NULL (err_str(code) is the detail). */
void api_reply_err(struct httpd_response *resp, int code, const struct errbuf *eb);

#endif
