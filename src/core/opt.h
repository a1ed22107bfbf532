/* opt.h - the option parser of every memsync command (`memsync COMMAND [SUB] ...`).
 *
 * Options are long only: --name VALUE, --name=VALUE, or --flag; -h and --help set *help.
 * Anything else that starts with '-' (but "-" alone, which means stdin) is an unknown option;
 * the rest are positional, kept in order, at most maxpos of them. Values and positionals point
 * into argv (borrowed, nothing is allocated). A refusal prints one line on stderr naming the
 * command ("memsync CMD: unknown option --x (see memsync CMD --help)") and returns -1, which
 * the command turns into exit code 2. No state: any thread may call it.
 */
#ifndef MEMSYNC_OPT_H
#define MEMSYNC_OPT_H

/* One option; a table of them ends with a zeroed entry ({NULL, 0, NULL, NULL}). */
struct opt {
    const char *name;   /* without the leading "--" */
    int has_arg;        /* 1: takes a value */
    const char **value; /* where the value goes (has_arg) */
    int *flag;          /* set to 1 when present (!has_arg) */
};

/* Parses argv[1..] (argv[0] is the command or subcommand name) into opts and pos (npos of at
 * most maxpos). cmd names the command in messages ("integration add"). Returns 0, or -1 after
 * printing why. */
int opt_parse(const char *cmd, int argc, char **argv, const struct opt *opts, const char **pos,
              int maxpos, int *npos, int *help);

/* The global flags before a command (`memsync --db URL sync ...`): parses argv[1..] like
 * opt_parse up to the first positional, whose index goes to *next (argc when there is none).
 * Messages name no command ("memsync: unknown option --x (see memsync --help)"). */
int opt_parse_head(int argc, char **argv, const struct opt *opts, int *next, int *help);

#endif
