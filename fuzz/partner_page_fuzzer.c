/* partner_page_fuzzer.c - the three customer-source parsers, the PC error parser and the
 * next-link resolver on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "partner.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check(const struct customer_page *p)
{
    for (size_t i = 0; i < p->count; i++)
        ASSERT(p->items[i].tenant_id != NULL && p->items[i].tenant_id[0] != '\0');
    if (p->next_uri != NULL) {
        static const char base[] = "https://api.partnercenter.microsoft.com";
        char *u = partner_next_url(base, p->next_uri);

        /* a resolved link never leaves Partner Center */
        if (u != NULL)
            ASSERT(strncmp(u, base, sizeof base - 1) == 0 &&
                   (u[sizeof base - 1] == '/' || u[sizeof base - 1] == '?' ||
                    u[sizeof base - 1] == ':' || u[sizeof base - 1] == '\0'));
        free(u);
    }
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct customer_page p;
    char msg[256];

    if (size > (1u << 20))
        return 0;
    if (partner_customers_parse((const char *)data, size, &p, NULL) == ERR_OK)
        check(&p);
    else
        ASSERT(p.count == 0 && p.items == NULL);
    customer_page_clear(&p);
    if (partner_contracts_parse((const char *)data, size, &p, NULL) == ERR_OK)
        check(&p);
    customer_page_clear(&p);
    if (partner_gdap_customers_parse((const char *)data, size, &p, NULL) == ERR_OK)
        check(&p);
    customer_page_clear(&p);
    if (partner_error_parse((const char *)data, size, msg, sizeof msg) == ERR_OK)
        ASSERT(strpbrk(msg, "\r\n") == NULL);
    return 0;
}
