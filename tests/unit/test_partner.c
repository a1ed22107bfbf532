/* test_partner.c - Partner Center and Graph customer sources, paging, URL helpers.
 * Fixtures are read at run time from $FIXTURE_DIR. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "fixture.h"

#include "mem.h"
#include <jansson.h>

#include "partner.h"

static void
test_customers_list(void **state)
{
    size_t len;
    char *body = fixture("pc-v1-customers-list.response.json", &len);
    struct customer_page p;
    struct errbuf eb;

    (void)state;
    assert_int_equal(partner_customers_parse(body, len, &p, &eb), ERR_OK);
    assert_int_equal(p.count, 2);
    assert_int_equal(p.total_count, 2);
    /* companyProfile.tenantId is the docs' literal "<guid>": the customer id stands in */
    assert_string_equal(p.items[0].tenant_id, "b44bb1fb-c595-45b0-9e09-d657365580bf");
    assert_string_equal(p.items[1].tenant_id, "45c44870-ef77-4fdd-b6fe-3dacb075cff2");
    assert_string_equal(p.items[0].name, "companyName");
    assert_string_equal(p.items[0].domain, "domain");
    assert_string_equal(p.items[0].relationship, "reseller");
    assert_null(p.items[0].associated_partner_id);
    assert_null(p.next_uri);
    assert_null(p.next_continuation);
    customer_page_clear(&p);
    customer_page_clear(&p);
    free(body);
}

static void
test_customer_get_and_filter(void **state)
{
    size_t len;
    char *body = fixture("pc-v1-customer-get.response.json", &len);
    struct customer_page p;
    struct errbuf eb;

    (void)state;
    assert_int_equal(partner_customers_parse(body, len, &p, &eb), ERR_OK);
    assert_int_equal(p.count, 1);
    assert_string_equal(p.items[0].tenant_id, "eebd1b55-5360-4438-a11d-5c06918c3014");
    assert_string_equal(p.items[0].name, "1kl as kjk");
    assert_string_equal(p.items[0].domain, "abcdefgh1234.ccsctp.net");
    customer_page_clear(&p);
    free(body);

    body = fixture("pc-v1-customers-filter-companyname.response.json", &len);
    assert_int_equal(partner_customers_parse(body, len, &p, &eb), ERR_OK);
    assert_int_equal(p.count, 3);
    assert_string_equal(p.items[1].tenant_id, "7b26b357-9ca3-48b8-a58e-4febe2662a5d");
    assert_string_equal(p.items[1].name, "Contoso");
    assert_string_equal(p.items[1].domain, "ContosoCorpCo.onmicrosoft.com");
    assert_null(p.next_uri);
    customer_page_clear(&p);
    free(body);
}

static void
test_paging_envelope(void **state)
{
    size_t len;
    char *body = fixture("pc-v1-paging-example-links-next.response.json", &len);
    struct customer_page p;
    struct errbuf eb;
    char *next;

    (void)state;
    /* invoice line items, not customers: the envelope is what matters */
    {
        /* same envelope with customer items */
        json_t *root = json_loadb(body, len, 0, NULL);
        char *dumped;

        assert_non_null(root);
        json_object_set_new(root, "items", json_pack("[{s:s}]", "id", "c1"));
        dumped = json_dumps(root, 0);
        assert_int_equal(partner_customers_parse(dumped, strlen(dumped), &p, &eb), ERR_OK);
        assert_int_equal(p.count, 1);
        assert_string_equal(p.items[0].tenant_id, "c1");
        assert_string_equal(p.next_continuation, "AQAAAA==");
        assert_non_null(strstr(p.next_uri, "seekOperation=Next"));
        next = partner_next_url("https://api.partnercenter.microsoft.com", p.next_uri);
        assert_true(strncmp(next, "https://api.partnercenter.microsoft.com/v1/invoices/", 52) == 0);
        free(next);
        customer_page_clear(&p);
        free(dumped);
        json_decref(root);
    }
    free(body);
}

static void
test_indirect_reseller_txt(void **state)
{
    size_t len;
    char *body = fixture("pc-v1-customers-filter-indirectreseller.response.txt", &len);
    struct customer_page p;
    struct errbuf eb;

    (void)state;
    assert_int_equal(partner_customers_parse(body, len, &p, &eb), ERR_PARSE);
    assert_non_null(strstr(eb.msg, "not valid JSON"));
    assert_non_null(strstr(eb.msg, "line"));
    assert_int_equal(p.count, 0);
    assert_null(p.items);
    free(body);
}

static void
test_contracts_and_gdap(void **state)
{
    size_t len;
    char *body;
    struct customer_page p;
    struct errbuf eb;

    (void)state;
    body = fixture("graph-v1.0-contracts-list.response.json", &len);
    assert_int_equal(partner_contracts_parse(body, len, &p, &eb), ERR_OK);
    assert_int_equal(p.count, 1);
    assert_string_equal(p.items[0].tenant_id, "customerId-value");
    assert_string_equal(p.items[0].name, "displayName-value");
    assert_string_equal(p.items[0].domain, "defaultDomainName-value");
    assert_string_equal(p.items[0].relationship, "contractType-value");
    customer_page_clear(&p);
    free(body);

    body = fixture("graph-v1.0-contract-get.response.json", &len);
    assert_int_equal(partner_contracts_parse(body, len, &p, &eb), ERR_OK);
    assert_int_equal(p.count, 1);
    assert_string_equal(p.items[0].tenant_id, "customerId-value");
    customer_page_clear(&p);
    free(body);

    body = fixture("graph-v1.0-delegatedAdminCustomers-list.response.json", &len);
    assert_int_equal(partner_gdap_customers_parse(body, len, &p, &eb), ERR_OK);
    assert_int_equal(p.count, 2);
    assert_string_equal(p.items[1].tenant_id, "1c0fa218-5dec-49db-8247-cfa457af8116");
    assert_string_equal(p.items[1].name, "Contoso subsidiary Inc");
    assert_string_equal(p.items[1].relationship, "gdap");
    assert_null(p.items[1].domain);
    assert_null(p.next_uri);
    customer_page_clear(&p);
    free(body);

    {
        static const char paged[] = "{\"value\":[{\"id\":\"x\",\"displayName\":\"X\"}],"
                                    "\"@odata.nextLink\":\"https://graph.microsoft.com/v1.0/"
                                    "tenantRelationships/delegatedAdminCustomers?$skiptoken=a\"}";
        static const char bad[] = "{\"value\":[{\"displayName\":\"no id\"}]}";

        assert_int_equal(partner_gdap_customers_parse(paged, sizeof paged - 1, &p, &eb), ERR_OK);
        assert_string_equal(p.items[0].tenant_id, "x");
        assert_non_null(strstr(p.next_uri, "$skiptoken=a"));
        customer_page_clear(&p);
        assert_int_equal(partner_contracts_parse(bad, sizeof bad - 1, &p, &eb), ERR_PARSE);
        assert_int_equal(p.count, 0);
    }
}

static void
test_error_bodies(void **state)
{
    size_t len;
    char *body = fixture("pc-error-429-throttled.response.json", &len);
    char msg[256];

    (void)state;
    assert_int_equal(partner_error_parse(body, len, msg, sizeof msg), ERR_OK);
    assert_non_null(strstr(msg, "429"));
    assert_non_null(strstr(msg, "Rate limit is exceeded. Try again in 57 seconds."));
    free(body);
    body = fixture("pc-error-schema.txt", &len);
    assert_int_equal(partner_error_parse(body, len, msg, sizeof msg), ERR_PARSE);
    free(body);
    {
        static const char e[] = "{\"code\":\"600008\",\"description\":\"The requested resource "
                                "does not exist.\\nmore\",\"data\":[],\"source\":\"PartnerFD\"}";

        assert_int_equal(partner_error_parse(e, sizeof e - 1, msg, sizeof msg), ERR_OK);
        assert_string_equal(msg, "Partner Center error 600008: The requested resource does not "
                                 "exist.");
    }
    assert_int_equal(partner_error_parse("{\"x\":1}", 7, msg, sizeof msg), ERR_PARSE);
}

static void
test_urls(void **state)
{
    static const struct {
        const char *base, *next, *want;
    } cases[] = {
        {"https://api.partnercenter.microsoft.com", "/v1/customers?size=500&seekOperation=Next",
         "https://api.partnercenter.microsoft.com/v1/customers?size=500&seekOperation=Next"},
        {"https://api.partnercenter.microsoft.com/", "/customers?size=500",
         "https://api.partnercenter.microsoft.com/v1/customers?size=500"},
        {"https://api.partnercenter.microsoft.com/v1", "/customers?size=500",
         "https://api.partnercenter.microsoft.com/v1/customers?size=500"},
        {"https://api.partnercenter.microsoft.com/v1/", "/v1/customers?size=5",
         "https://api.partnercenter.microsoft.com/v1/customers?size=5"},
        {"http://127.0.0.1:8080", "customers?a=1", "http://127.0.0.1:8080/v1/customers?a=1"},
        {"https://api.partnercenter.microsoft.com",
         "https://api.partnercenter.microsoft.com/v1/customers?x",
         "https://api.partnercenter.microsoft.com/v1/customers?x"},
        {"https://api.partnercenter.microsoft.com", "https://evil.example/v1/customers", NULL},
        {"https://api.partnercenter.microsoft.com", "//evil.example/v1/customers", NULL},
        {"https://api.partnercenter.microsoft.com", "", NULL},
    };
    char *u;

    (void)state;
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        u = partner_next_url(cases[i].base, cases[i].next);
        if (cases[i].want == NULL) {
            if (u != NULL)
                fail_msg("case %zu: got %s", i, u);
        } else {
            if (u == NULL || strcmp(u, cases[i].want) != 0)
                fail_msg("case %zu: got %s", i, u ? u : "(null)");
        }
        free(u);
    }
    u = partner_customers_url("https://api.partnercenter.microsoft.com/", 500);
    assert_string_equal(u, "https://api.partnercenter.microsoft.com/v1/customers?size=500");
    free(u);
    u = partner_customers_url("https://api.partnercenter.microsoft.com/v1", 40);
    assert_string_equal(u, "https://api.partnercenter.microsoft.com/v1/customers?size=40");
    free(u);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_customers_list),
        cmocka_unit_test(test_customer_get_and_filter),
        cmocka_unit_test(test_paging_envelope),
        cmocka_unit_test(test_indirect_reseller_txt),
        cmocka_unit_test(test_contracts_and_gdap),
        cmocka_unit_test(test_error_bodies),
        cmocka_unit_test(test_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
