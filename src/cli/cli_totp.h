/* cli_totp.h - the command line's second factor commands (README.md "Commands and settings"):
 *   memsync user reset-totp NAME                      an admin's recovery for a lost device:
 *                                                     clears the user's secret and recovery codes
 *   memsync account require-totp on|off [--account NAME]
 *                                                     every local user of the account needs a
 *                                                     second factor (or not)
 * cx is the command line's context (cli.c), whose first member is the loaded struct config.
 * Exit codes as cli.h. Runs on the main thread.
 */
#ifndef MEMSYNC_CLI_TOTP_H
#define MEMSYNC_CLI_TOTP_H

struct ctx;

/* `memsync user ...`: reset-totp here, every other subcommand in auth_cmd_user. */
int cli_totp_cmd_user(struct ctx *cx, int argc, char **argv);
/* `memsync account ...`. */
int cli_totp_cmd_account(struct ctx *cx, int argc, char **argv);

#endif
