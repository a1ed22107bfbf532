/* partner.h - Partner Center customer listing (GET /v1/customers) and the customer-source
 * alternatives in Graph (/contracts, /tenantRelationships/delegatedAdminCustomers).
 *
 * Paging: a Partner Center page carries links.next {uri, method, headers[{key, value}]}; the next
 * request GETs that uri (relative to the Partner Center base) replaying its headers, notably
 * MS-ContinuationToken. Paging stops when links.next is absent. Graph sources page with
 * @odata.nextLink like every Graph collection.
 * Pure parsing; thread-safe. Results own their strings.
 */
#ifndef MEMSYNC_PARTNER_H
#define MEMSYNC_PARTNER_H

#include <stddef.h>

#include "err.h"

#define PARTNER_PAGE_SIZE 500

struct customer {
    char *tenant_id;             /* companyProfile.tenantId, else id */
    char *name;                  /* companyProfile.companyName / displayName */
    char *domain;                /* companyProfile.domain / defaultDomainName, may be NULL */
    char *relationship;          /* relationshipToPartner / contractType / "gdap" */
    char *associated_partner_id; /* set for customers of an indirect reseller */
};

struct customer_page {
    struct customer *items;
    size_t count;
    char *next_uri;          /* Partner Center links.next.uri (relative) or Graph @odata.nextLink */
    char *next_continuation; /* MS-ContinuationToken value for the next request, or NULL */
    long total_count;        /* totalCount when present, else -1 */
};

void customer_page_clear(struct customer_page *p); /* NULL-safe; leaves total_count -1 */
void customer_clear(struct customer *c);           /* NULL-safe; frees the strings */
void customers_free(struct customer *v, size_t n); /* NULL-safe; clears each, frees v */

/* First-page URL: "{base}/v1/customers?size=N". */
char *partner_customers_url(const char *pc_base, int size);
/* Resolves a links.next uri (relative, possibly without /v1) against the Partner Center base so
 * that "/v1" appears exactly once. An absolute uri is returned only when it points at the same
 * origin as pc_base; "//host" and other hosts give NULL (the token would follow). */
char *partner_next_url(const char *pc_base, const char *next_uri);

/* A customers page, or a single Customer (GET /v1/customers/{id}) as a page of one. tenant_id
 * is companyProfile.tenantId, unless that is missing or not a GUID while id is one (the docs'
 * samples carry "<guid>"). The contracts/GDAP parsers likewise accept a single entity.
 * On failure *out is cleared. */
int partner_customers_parse(const char *body, size_t len, struct customer_page *out,
                            struct errbuf *eb);
int partner_contracts_parse(const char *body, size_t len, struct customer_page *out,
                            struct errbuf *eb);
int partner_gdap_customers_parse(const char *body, size_t len, struct customer_page *out,
                                 struct errbuf *eb);

/* Partner Center error bodies: {"code","description",...} or {"statusCode","message"}.
 * Fills a one-line message; returns ERR_OK when the body had either shape. */
int partner_error_parse(const char *body, size_t len, char *msg, size_t msglen);

#endif
