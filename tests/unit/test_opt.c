/* test_opt.c - the commands' option parser: both value forms, flags, positionals and their
 * limit, "-" as a positional, and each refusal (unknown option, missing value, value on a flag). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "opt.h"

struct parsed {
    const char *format, *file;
    int quiet;
    const char *pos[2];
    int npos, help, rc;
};

static struct parsed
run(int maxpos, const char *const *args)
{
    char *argv[16];
    int argc = 0;
    struct parsed p = {0};
    const struct opt opts[] = {
        {"format", 1, &p.format, NULL},
        {"secret-file", 1, &p.file, NULL},
        {"quiet", 0, NULL, &p.quiet},
        {NULL, 0, NULL, NULL},
    };

    argv[argc++] = (char *)"cmd";
    for (; args[argc - 1] != NULL; argc++)
        argv[argc] = (char *)args[argc - 1];
    p.rc = opt_parse("test", argc, argv, opts, p.pos, maxpos, &p.npos, &p.help);
    return p;
}

static void
test_values_flags_positionals(void **state)
{
    const char *a[] = {"one", "--format", "csv", "--quiet", "--secret-file=-", "two", NULL};
    struct parsed p = run(2, a);

    (void)state;
    assert_int_equal(p.rc, 0);
    assert_string_equal(p.format, "csv");
    assert_string_equal(p.file, "-");
    assert_int_equal(p.quiet, 1);
    assert_int_equal(p.npos, 2);
    assert_string_equal(p.pos[0], "one");
    assert_string_equal(p.pos[1], "two");
    assert_int_equal(p.help, 0);
}

static void
test_value_may_be_dash_and_stdin_positional(void **state)
{
    const char *a[] = {"--secret-file", "-", "-", NULL};
    struct parsed p = run(1, a);

    (void)state;
    assert_int_equal(p.rc, 0);
    assert_string_equal(p.file, "-");
    assert_int_equal(p.npos, 1);
    assert_string_equal(p.pos[0], "-");
}

static void
test_help(void **state)
{
    const char *a[] = {"-h", NULL}, *b[] = {"--format=json", "--help", NULL};
    struct parsed p = run(0, a), q = run(0, b);

    (void)state;
    assert_int_equal(p.rc, 0);
    assert_int_equal(p.help, 1);
    assert_int_equal(q.rc, 0);
    assert_int_equal(q.help, 1);
    assert_string_equal(q.format, "json");
}

static void
test_refusals(void **state)
{
    const char *unknown[] = {"--colour", NULL};
    const char *prefix[] = {"--form", "x", NULL}; /* no abbreviations */
    const char *shortopt[] = {"-f", NULL};
    const char *missing[] = {"--format", NULL};
    const char *flagval[] = {"--quiet=1", NULL};
    const char *toomany[] = {"a", "b", NULL};

    (void)state;
    assert_int_equal(run(0, unknown).rc, -1);
    assert_int_equal(run(0, prefix).rc, -1);
    assert_int_equal(run(0, shortopt).rc, -1);
    assert_int_equal(run(0, missing).rc, -1);
    assert_int_equal(run(0, flagval).rc, -1);
    assert_int_equal(run(1, toomany).rc, -1);
    assert_int_equal(run(2, toomany).rc, 0);
}

/* The global flags end at the command; the command's own options are left to it. */
static void
test_head_stops_at_the_command(void **state)
{
    char *argv[] = {(char *)"memsync", (char *)"--db=x.db", (char *)"--quiet",
                    (char *)"sync",    (char *)"--full",    NULL};
    char *bad[] = {(char *)"memsync", (char *)"--colour", (char *)"sync", NULL};
    char *none[] = {(char *)"memsync", (char *)"--db", (char *)"y.db", NULL};
    const char *db = NULL;
    int quiet = 0, next = -1, help = -1;
    const struct opt opts[] = {
        {"db", 1, &db, NULL},
        {"quiet", 0, NULL, &quiet},
        {NULL, 0, NULL, NULL},
    };

    (void)state;
    assert_int_equal(opt_parse_head(5, argv, opts, &next, &help), 0);
    assert_int_equal(next, 3);
    assert_string_equal(db, "x.db");
    assert_int_equal(quiet, 1);
    assert_int_equal(help, 0);
    assert_int_equal(opt_parse_head(3, bad, opts, &next, &help), -1);
    assert_int_equal(opt_parse_head(3, none, opts, &next, &help), 0);
    assert_int_equal(next, 3); /* no command */
    assert_string_equal(db, "y.db");
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_values_flags_positionals),
        cmocka_unit_test(test_value_may_be_dash_and_stdin_positional),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_head_stops_at_the_command),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
