/* test_err.c - the error helpers: err_set, err_prefix, and err_strerror's per-thread text. */
#include <errno.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <string.h>
#include <cmocka.h>

#include "err.h"

static void
test_set_and_prefix(void **state)
{
    struct errbuf eb;

    (void)state;
    err_clear(&eb);
    assert_int_equal(err_set(&eb, ERR_IO, "cannot read %s", "x"), ERR_IO);
    assert_string_equal(eb.msg, "cannot read x");
    assert_int_equal(err_prefix(&eb, ERR_PARSE, "config"), ERR_IO);
    assert_string_equal(eb.msg, "config: cannot read x");
}

/* The system's text, the same for the same errno, and a sentence even for an unknown one. */
static void
test_strerror(void **state)
{
    char first[ERR_STRERROR_MAX];
    const char *s;

    (void)state;
    s = err_strerror(ENOENT);
    assert_non_null(s);
    assert_true(strlen(s) > 0 && strlen(s) < ERR_STRERROR_MAX);
    memcpy(first, s, strlen(s) + 1);
    assert_string_not_equal(err_strerror(EACCES), first);
    assert_string_equal(err_strerror(ENOENT), first);
    s = err_strerror(-12345);
    assert_non_null(s);
    assert_true(strlen(s) > 0);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_and_prefix),
        cmocka_unit_test(test_strerror),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
