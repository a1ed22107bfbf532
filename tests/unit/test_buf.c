/* test_buf.c - the bounded buffer: appends up to the maximum, and sticky errors (the first
 * failed append poisons the buffer, later small appends cannot fill the hole, reset and free
 * clear the poison). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "buf.h"
#include "err.h"

static void
test_appends_up_to_max(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 8);
    assert_string_equal(buf_cstr(&b), "");
    assert_int_equal(buf_addstr(&b, "abc"), ERR_OK);
    assert_int_equal(buf_addc(&b, 'd'), ERR_OK);
    assert_int_equal(buf_printf(&b, "%d", 1234), ERR_OK);
    assert_int_equal(b.len, 8);
    assert_string_equal(buf_cstr(&b), "abcd1234");
    assert_int_equal(buf_error(&b), ERR_OK);
    buf_free(&b);
}

/* A failed append poisons the buffer: its bytes are gone and it stays poisoned. */
static void
test_failed_append_poisons(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 8);
    assert_int_equal(buf_addstr(&b, "<p>"), ERR_OK);
    assert_int_equal(buf_addstr(&b, "too long for it"), ERR_TOOBIG);
    assert_int_equal(buf_error(&b), ERR_TOOBIG);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_cstr(&b), "");
    /* Small appends that would fit now fail with the same error and add nothing. */
    assert_int_equal(buf_addstr(&b, "</p>"), ERR_TOOBIG);
    assert_int_equal(buf_addc(&b, 'x'), ERR_TOOBIG);
    assert_int_equal(buf_printf(&b, "%s", "y"), ERR_TOOBIG);
    assert_int_equal(buf_add(&b, "", 0), ERR_TOOBIG);
    assert_int_equal(buf_add_urlenc(&b, "a b"), ERR_TOOBIG);
    assert_int_equal(buf_error(&b), ERR_TOOBIG);
    assert_int_equal(b.len, 0);
    assert_string_equal(buf_cstr(&b), "");
    buf_free(&b);
}

static void
test_printf_past_max_poisons(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 4);
    assert_int_equal(buf_printf(&b, "%d", 123456), ERR_TOOBIG);
    assert_int_equal(buf_error(&b), ERR_TOOBIG);
    assert_int_equal(buf_addc(&b, '1'), ERR_TOOBIG);
    assert_int_equal(b.len, 0);
    buf_free(&b);
}

static void
test_reset_clears_poison(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 4);
    assert_int_equal(buf_addstr(&b, "12345"), ERR_TOOBIG);
    buf_reset(&b);
    assert_int_equal(buf_error(&b), ERR_OK);
    assert_int_equal(buf_addstr(&b, "ok"), ERR_OK);
    assert_string_equal(buf_cstr(&b), "ok");
    buf_free(&b);
}

static void
test_free_and_detach_clear_poison(void **state)
{
    struct buf b;
    char *p;
    size_t len = 99;

    (void)state;
    buf_init(&b, 4);
    assert_int_equal(buf_addstr(&b, "12345"), ERR_TOOBIG);
    buf_free(&b);
    assert_int_equal(buf_error(&b), ERR_OK);
    assert_int_equal(buf_addstr(&b, "abcd"), ERR_OK);
    assert_string_equal(buf_cstr(&b), "abcd");

    assert_int_equal(buf_addc(&b, 'e'), ERR_TOOBIG);
    p = buf_detach(&b, &len);
    assert_string_equal(p, ""); /* never the bytes before the failure */
    assert_int_equal(len, 0);
    free(p);
    assert_int_equal(buf_error(&b), ERR_OK);
    assert_int_equal(buf_addc(&b, 'z'), ERR_OK);
    assert_string_equal(buf_cstr(&b), "z");
    buf_free(&b);
    buf_free(NULL);
}

/* buf_reserve is a size hint: a reserve past the maximum fails without poisoning. */
static void
test_reserve_does_not_poison(void **state)
{
    struct buf b;

    (void)state;
    buf_init(&b, 16);
    assert_int_equal(buf_addstr(&b, "abc"), ERR_OK);
    assert_int_equal(buf_reserve(&b, 100), ERR_TOOBIG);
    assert_int_equal(buf_error(&b), ERR_OK);
    assert_int_equal(buf_addstr(&b, "def"), ERR_OK);
    assert_string_equal(buf_cstr(&b), "abcdef");
    buf_free(&b);
}

/* A part built in its own buffer carries its failure into the whole. */
static void
test_addbuf_carries_poison(void **state)
{
    struct buf whole, part;

    (void)state;
    buf_init(&whole, 64);
    buf_init(&part, 4);
    assert_int_equal(buf_addstr(&part, "ab"), ERR_OK);
    assert_int_equal(buf_addbuf(&whole, &part), ERR_OK);
    assert_string_equal(buf_cstr(&whole), "ab");
    assert_int_equal(buf_addstr(&part, "cdef"), ERR_TOOBIG);
    assert_int_equal(buf_addbuf(&whole, &part), ERR_TOOBIG);
    assert_int_equal(buf_error(&whole), ERR_TOOBIG);
    assert_int_equal(buf_addstr(&whole, "x"), ERR_TOOBIG);
    assert_int_equal(whole.len, 0);
    buf_free(&whole);
    buf_free(&part);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_appends_up_to_max),
        cmocka_unit_test(test_failed_append_poisons),
        cmocka_unit_test(test_printf_past_max_poisons),
        cmocka_unit_test(test_reset_clears_poison),
        cmocka_unit_test(test_free_and_detach_clear_poison),
        cmocka_unit_test(test_reserve_does_not_poison),
        cmocka_unit_test(test_addbuf_carries_poison),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
