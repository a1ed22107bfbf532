/* cli.h - the memsync command line: global flags, command dispatch and the commands that work on
 * the store directly (integration, sync, clients, assets, status).
 *
 * Exit codes (README.md "Commands and settings"): 0 success; 1 the command could not run; 2 usage
 * error; 3 a sync ran but some tenants failed. Errors are printed as "memsync: what happened ...
 * what to do" on stderr. Secrets come from files, stdin ("-") or the environment, never argv, and
 * never appear in any output. Runs on the main thread.
 */
#ifndef MEMSYNC_CLI_H
#define MEMSYNC_CLI_H

enum cli_exit { CLI_OK = 0, CLI_FAIL = 1, CLI_USAGE = 2, CLI_PARTIAL = 3 };

/* The whole program: parses global flags and runs one command. */
int cli_main(int argc, char **argv);

#endif
