/* test_guid.c - Microsoft's GUID form: the check, and the random ids memsync sends with its
 * requests (client-request-id, MS-RequestId, MS-CorrelationId). */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include <sodium.h>

#include "guid.h"

static void
test_valid(void **state)
{
    (void)state;
    assert_true(guid_valid("0f1e2d3c-4b5a-6978-8796-A5B4C3D2E1F0"));
    assert_false(guid_valid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f"));
    assert_false(guid_valid("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0 "));
    assert_false(guid_valid("0f1e2d3c04b5a-6978-8796-a5b4c3d2e1f0"));
    assert_false(guid_valid(NULL));
}

/* Version 4, RFC 4122 variant, lower case, and different every time. */
static void
test_random(void **state)
{
    char a[37], b[37];

    (void)state;
    assert_true(sodium_init() >= 0);
    for (int i = 0; i < 100; i++) {
        guid_random(a);
        guid_random(b);
        assert_int_equal(strlen(a), 36);
        assert_true(guid_valid(a));
        assert_int_equal(a[14], '4');
        assert_non_null(strchr("89ab", a[19]));
        for (size_t k = 0; k < 36; k++)
            assert_false(a[k] >= 'A' && a[k] <= 'F');
        assert_string_not_equal(a, b);
    }
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
