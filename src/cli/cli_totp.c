/* cli_totp.c - `memsync user reset-totp` and `memsync account require-totp` (see cli_totp.h). */
#include "cli_totp.h"

#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "config.h"
#include "log.h"
#include "store.h"

/* cli.h's exit codes (not included: cli.c includes this file's header). */
enum { EXIT_DONE = 0, EXIT_FAILED = 1, EXIT_USAGE = 2 };

static int
open_db(struct ctx *cx, struct store **st, const char *cmd)
{
    const struct config *cfg = (const struct config *)(void *)cx;
    struct errbuf eb = {0};

    if (store_open(st, cfg->db, &eb) != ERR_OK) {
        fprintf(stderr, "memsync %s: %s\n", cmd, eb.msg);
        return -1;
    }
    return 0;
}

static int
is_help(const char *a)
{
    return strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0;
}

static int
user_reset_totp(struct ctx *cx, int argc, char **argv)
{
    static const char usage[] =
        "usage: memsync user reset-totp NAME\n"
        "Turns the user's two-step sign-in off: removes their authenticator secret and recovery "
        "codes (for a lost device). They sign in with the password alone, or set it up again "
        "when their account requires it.\n";
    struct store *st = NULL;
    struct user_row u = {0};
    struct errbuf eb = {0};
    int rc, code = EXIT_FAILED;

    for (int i = 1; i < argc; i++)
        if (is_help(argv[i])) {
            fputs(usage, stdout);
            return EXIT_DONE;
        }
    if (argc != 2 || argv[1][0] == '-') {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    if (open_db(cx, &st, "user reset-totp") != 0)
        return EXIT_FAILED;
    rc = store_user_get(st, argv[1], &u, &eb);
    if (rc == ERR_NOTFOUND)
        err_set(&eb, rc, "there is no user named %s", argv[1]);
    if (rc == ERR_OK)
        rc = store_totp_clear(st, u.id, &eb);
    if (rc != ERR_OK) {
        fprintf(stderr, "memsync user reset-totp: %s\n", eb.msg);
        goto out;
    }
    log_info("second factor reset user=%s by=command-line", argv[1]);
    printf("two-step sign-in of %s is off; their recovery codes are gone\n", argv[1]);
    code = EXIT_DONE;
out:
    user_row_clear(&u);
    store_close(st);
    return code;
}

int
cli_totp_cmd_user(struct ctx *cx, int argc, char **argv)
{
    if (argc >= 2 && strcmp(argv[1], "reset-totp") == 0)
        return user_reset_totp(cx, argc - 1, argv + 1);
    return auth_cmd_user(cx, argc, argv);
}

int
cli_totp_cmd_account(struct ctx *cx, int argc, char **argv)
{
    static const char usage[] =
        "usage: memsync account require-totp on|off [--account NAME]\n"
        "on: every local user of the account (default \"default\") must use two-step sign-in; "
        "those without it set it up at their next sign-in. off: it is each user's choice.\n";
    const char *account = AUTH_DEFAULT_ACCOUNT, *sub = NULL, *val = NULL;
    struct store *st = NULL;
    struct errbuf eb = {0};
    int64_t acc = 0;
    int rc, on;

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];

        if (is_help(a)) {
            fputs(usage, stdout);
            return EXIT_DONE;
        }
        if (strcmp(a, "--account") == 0 && i + 1 < argc) {
            account = argv[++i];
        } else if (strncmp(a, "--account=", 10) == 0) {
            account = a + 10;
        } else if (a[0] == '-') {
            fprintf(stderr, "memsync account: unknown option %s\n%s", a, usage);
            return EXIT_USAGE;
        } else if (sub == NULL) {
            sub = a;
        } else if (val == NULL) {
            val = a;
        } else {
            fprintf(stderr, "memsync account: unexpected argument '%s'\n%s", a, usage);
            return EXIT_USAGE;
        }
    }
    if (sub == NULL || strcmp(sub, "require-totp") != 0 || val == NULL ||
        (strcmp(val, "on") != 0 && strcmp(val, "off") != 0)) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    on = strcmp(val, "on") == 0;
    if (open_db(cx, &st, "account") != 0)
        return EXIT_FAILED;
    if ((rc = store_account_ensure(st, account, &acc, &eb)) == ERR_OK)
        rc = store_account_require_totp(st, acc, on, &eb);
    store_close(st);
    if (rc != ERR_OK) {
        fprintf(stderr, "memsync account: %s\n", eb.msg);
        return EXIT_FAILED;
    }
    log_info("two-step sign-in %s account=%s by=command-line", on ? "required" : "optional",
             account);
    printf("two-step sign-in is %s for the local users of account %s\n",
           on ? "required" : "optional", account);
    return EXIT_DONE;
}
