/* test_mem.c - mem_grow: doubling, the first size, and the abort on a size that overflows. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <cmocka.h>

#include "mem.h"

/* An empty array gets MEM_GROW_FIRST, then doubles; the contents survive each move. */
static void
test_grow_doubles(void **state)
{
    int *a = NULL;
    size_t cap = 0;

    (void)state;
    a = mem_grow(a, &cap, 1, sizeof *a);
    assert_non_null(a);
    assert_int_equal(cap, MEM_GROW_FIRST);
    for (int i = 0; i < MEM_GROW_FIRST; i++)
        a[i] = i;
    a = mem_grow(a, &cap, MEM_GROW_FIRST + 1, sizeof *a);
    assert_int_equal(cap, 2 * MEM_GROW_FIRST);
    for (int i = 0; i < MEM_GROW_FIRST; i++)
        assert_int_equal(a[i], i);
    /* A jump past twice the room doubles until it fits. */
    a = mem_grow(a, &cap, 1000, sizeof *a);
    assert_int_equal(cap, 1024);
    a[999] = 7;
    assert_int_equal(a[999], 7);
    free(a);
}

/* Enough room: the same array back and the capacity untouched. */
static void
test_grow_no_change(void **state)
{
    size_t cap = 0;
    char *p = NULL;
    char *q;

    (void)state;
    p = mem_grow(p, &cap, 100, 1);
    assert_int_equal(cap, 128);
    q = mem_grow(p, &cap, 128, 1);
    assert_ptr_equal(p, q);
    assert_int_equal(cap, 128);
    q = mem_grow(p, &cap, 0, 1);
    assert_ptr_equal(p, q);
    free(p);
}

/* A capacity near SIZE_MAX must not wrap while doubling: it lands on need itself. */
static void
test_grow_no_wrap(void **state)
{
    size_t cap = SIZE_MAX / 2 + 2;
    char c = 0;

    (void)state;
    /* need <= cap: no allocation happens at all, so this is safe to call. */
    assert_ptr_equal(mem_grow(&c, &cap, SIZE_MAX / 2, 1), &c);
    assert_int_equal(cap, SIZE_MAX / 2 + 2);
}

/* Runs mem_grow(NULL, &cap, need, elem) in a child; returns the signal that ended it, or 0. */
static int
grow_in_child(size_t cap, size_t need, size_t elem)
{
    pid_t pid;
    int status = 0;

    pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        void *p = mem_grow(NULL, &cap, need, elem);

        free(p);
        _exit(0);
    }
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return WIFSIGNALED(status) ? WTERMSIG(status) : 0;
}

/* need * elem overflows size_t: the process aborts instead of allocating a short array, both
 * when doubling reaches the size and when doubling itself would wrap (it falls back to need). */
static void
test_grow_overflow_aborts(void **state)
{
    (void)state;
    assert_int_equal(grow_in_child(0, SIZE_MAX / 8 + 1, 16), SIGABRT);
    assert_int_equal(grow_in_child(SIZE_MAX / 2 + 2, SIZE_MAX / 2 + 3, 2), SIGABRT);
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_grow_doubles),
        cmocka_unit_test(test_grow_no_change),
        cmocka_unit_test(test_grow_no_wrap),
        cmocka_unit_test(test_grow_overflow_aborts),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
