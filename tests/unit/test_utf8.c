/* test_utf8.c - the strict UTF-8 check: every well-formed length, and each way to be
 * ill-formed (RFC 3629). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "utf8.h"

#define LEN(lit) utf8_char_len((const unsigned char *)(lit), sizeof(lit) - 1)

static void
test_well_formed(void **state)
{
    (void)state;
    assert_int_equal(LEN("a"), 1);
    assert_int_equal(utf8_char_len((const unsigned char *)"", 1), 1); /* NUL is ASCII */
    assert_int_equal(LEN("\xC2\x80"), 2);                             /* U+0080 */
    assert_int_equal(LEN("\xDF\xBF"), 2);                             /* U+07FF */
    assert_int_equal(LEN("\xE0\xA0\x80"), 3);                         /* U+0800 */
    assert_int_equal(LEN("\xED\x9F\xBF"), 3);                         /* U+D7FF */
    assert_int_equal(LEN("\xEE\x80\x80"), 3);                         /* U+E000 */
    assert_int_equal(LEN("\xF0\x90\x80\x80"), 4);                     /* U+10000 */
    assert_int_equal(LEN("\xF4\x8F\xBF\xBF"), 4);                     /* U+10FFFF */
    assert_int_equal(LEN("\xC3\xA9tail"), 2); /* only the first character counts */
}

static void
test_ill_formed(void **state)
{
    (void)state;
    assert_int_equal(utf8_char_len((const unsigned char *)"a", 0), 0);
    assert_int_equal(LEN("\x80"), 0);             /* a lone continuation */
    assert_int_equal(LEN("\xC0\x80"), 0);         /* overlong NUL */
    assert_int_equal(LEN("\xC1\xBF"), 0);         /* overlong */
    assert_int_equal(LEN("\xE0\x9F\xBF"), 0);     /* overlong U+07FF */
    assert_int_equal(LEN("\xED\xA0\x80"), 0);     /* surrogate U+D800 */
    assert_int_equal(LEN("\xED\xBF\xBF"), 0);     /* surrogate U+DFFF */
    assert_int_equal(LEN("\xF0\x8F\xBF\xBF"), 0); /* overlong U+FFFF */
    assert_int_equal(LEN("\xF4\x90\x80\x80"), 0); /* past U+10FFFF */
    assert_int_equal(LEN("\xF5\x80\x80\x80"), 0);
    assert_int_equal(LEN("\xFF"), 0);
    assert_int_equal(LEN("\xE2\x82"), 0);     /* truncated by n */
    assert_int_equal(LEN("\xE2\x28\xA1"), 0); /* a bad continuation */
    assert_int_equal(LEN("\xC3\x00"), 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_well_formed),
        cmocka_unit_test(test_ill_formed),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
