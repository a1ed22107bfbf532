/* openapi.h - the OpenAPI 3.0 description of the REST API, served at /openapi.json.
 *
 * Built once from the route table in openapi.c (the same routes api.c answers) and kept for the
 * life of the process. Thread-safe (pthread_once). The returned string is never freed.
 */
#ifndef MEMSYNC_OPENAPI_H
#define MEMSYNC_OPENAPI_H

#include <stddef.h>

const char *openapi_document(void);

/* The route table, for tests and the docs: path templates and methods ("GET", "POST", ...). */
struct openapi_route {
    const char *path;
    const char *method;
    const char *summary;
    int list;             /* paged list with page_size, cursor, filter, sort, search */
    int body;             /* takes a JSON body */
    int admin;            /* needs the admin role */
    const char *produces; /* "application/json" unless stated */
};
extern const struct openapi_route openapi_routes[];
extern const size_t openapi_route_count;

#endif
