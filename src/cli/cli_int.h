/* cli_int.h - what the command line's files share (cli.c dispatches; cli_serve.c, cli_user.c
 * and cli_totp.c hold commands of their own): the context every command gets, and those commands.
 *
 * Ownership: cli_main owns the context; a command borrows it for its run. Threads: the main
 * thread. Each command returns an exit code of enum cli_exit (cli.h) and prints its own errors.
 */
#ifndef MEMSYNC_CLI_INT_H
#define MEMSYNC_CLI_INT_H

#include "config.h"

struct ctx {
    struct config cfg;
    const char *config_path;
};

/* `memsync serve [--listen HOST:PORT] [--url-file FILE] [--no-schedule]`: starts the scheduler
 * and the HTTP server (router.h) and runs until SIGINT/SIGTERM. On first run (no user at all) it
 * creates the user "admin" and prints its one-time password on stdout, never to the log. With
 * --url-file, the base URL ("http://127.0.0.1:PORT") is written there once the server listens. */
int cli_cmd_serve(struct ctx *cx, int argc, char **argv);

/* `memsync user ...` and `memsync apikey ...`. Passwords come from --password-file FILE, "-"
 * (stdin) or a prompt; never from argv. */
int cli_cmd_user(struct ctx *cx, int argc, char **argv);
int cli_cmd_apikey(struct ctx *cx, int argc, char **argv);

/* `memsync account require-totp on|off [--account NAME]`: every local user of the account needs
 * a second factor (on) or it is each user's choice (off). */
int cli_cmd_account(struct ctx *cx, int argc, char **argv);
/* `memsync account sso set|show|off` and `memsync account local-signin on|off` (cli_sso.c),
 * reached through cli_cmd_account. */
int cli_cmd_account_sso(struct ctx *cx, int argc, char **argv);

/* `memsync changes [--since CURSOR] [--client ID] [--kind K,...] [--account NAME]`: the change
 * feed after CURSOR as JSON lines; the cursor to resume from on stderr. */
int cli_cmd_changes(struct ctx *cx, int argc, char **argv);

/* `memsync webhook test URL --secret-file FILE [--event NAME]`: one signed test delivery
 * (webhook.h); exit 0 on a 2xx answer, 1 on another answer or a failure, 2 when refused. */
int cli_cmd_webhook(struct ctx *cx, int argc, char **argv);

#endif
