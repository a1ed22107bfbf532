/* cli_totp.c - `memsync account require-totp on|off` (cli_int.h); `memsync user reset-totp` is
 * one of cli_user.c's subcommands. */
#include "cli.h"
#include "cli_int.h"

#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "log.h"
#include "opt.h"
#include "store.h"

int
cli_cmd_account(struct ctx *cx, int argc, char **argv)
{
    static const char usage[] =
        "usage: memsync account require-totp on|off [--account NAME]\n"
        "       memsync account sso|local-signin ... (memsync account sso --help)\n"
        "on: every local user of the account (default \"default\") must use two-step sign-in; "
        "those without it set it up at their next sign-in. off: it is each user's choice.\n";
    const char *account = NULL, *pos[2] = {NULL, NULL};
    const struct opt opts[] = {
        {"account", 1, &account, NULL},
        {NULL, 0, NULL, NULL},
    };
    struct store *st = NULL;
    struct errbuf eb = {0};
    int64_t acc = 0;
    int rc, on, npos = 0, help = 0;

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "sso") == 0 || strcmp(argv[i], "local-signin") == 0)
            return cli_cmd_account_sso(cx, argc, argv);
    if (opt_parse("account", argc, argv, opts, pos, 2, &npos, &help) != 0)
        return CLI_USAGE;
    if (help) {
        fputs(usage, stdout);
        return CLI_OK;
    }
    if (npos != 2 || strcmp(pos[0], "require-totp") != 0 ||
        (strcmp(pos[1], "on") != 0 && strcmp(pos[1], "off") != 0)) {
        fputs(usage, stderr);
        return CLI_USAGE;
    }
    if (account == NULL)
        account = AUTH_DEFAULT_ACCOUNT;
    on = strcmp(pos[1], "on") == 0;
    if (store_open(&st, cx->cfg.db, &eb) != ERR_OK) {
        fprintf(stderr, "memsync account: %s\n", eb.msg);
        return CLI_FAIL;
    }
    if ((rc = store_account_ensure(st, account, &acc, &eb)) == ERR_OK)
        rc = store_account_require_totp(st, acc, on, &eb);
    store_close(st);
    if (rc != ERR_OK) {
        fprintf(stderr, "memsync account: %s\n", eb.msg);
        return CLI_FAIL;
    }
    log_info("two-step sign-in %s account=%s by=command-line", on ? "required" : "optional",
             account);
    printf("two-step sign-in is %s for the local users of account %s\n",
           on ? "required" : "optional", account);
    return CLI_OK;
}
