/* cli_sso.c - `memsync account sso set|show|off` and `memsync account local-signin on|off`
 * (cli_int.h): an account's single sign-on with Microsoft Entra ID (ui_sso.h). The client secret
 * comes from --secret-file FILE or "-" (stdin), never from argv. */
#include "cli.h"
#include "cli_int.h"

#include <errno.h>
#include <fcntl.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "auth.h"
#include "clock.h"
#include "log.h"
#include "opt.h"
#include "store.h"
#include "ui_sso.h"
#include "vault.h"

static const char usage[] =
    "usage: memsync account sso set --tenant TENANT_ID --client-id APP_ID --redirect-uri URI\n"
    "                               --map VALUE=admin|viewer[,VALUE=ROLE...] "
    "[--secret-file FILE|-] [--account NAME]\n"
    "       memsync account sso show|off [--account NAME]\n"
    "       memsync account local-signin on|off [--account NAME]\n"
    "sso set: sign-in with Microsoft for the account (default \"default\"): your Entra tenant "
    "id, the sign-in app's client id, its redirect URI (https://HOST/auth/sso/callback) and "
    "which group object ids or app roles get which role. The client secret is read from FILE or "
    "stdin (-); without --secret-file the stored one is kept. sso off: removes it and turns "
    "password sign-in back on. local-signin off: only Microsoft sign-in (refused until one "
    "worked).\n";

/* Reads the secret (trailing newlines dropped) into sodium memory. */
static int
read_secret_file(const char *path, char **out, struct errbuf *eb)
{
    char *buf = sodium_malloc(VAULT_SECRET_MAX + 2);
    size_t len = 0;
    int fd, rc = ERR_OK;

    *out = NULL;
    if (buf == NULL)
        return err_set(eb, ERR_NOMEM, "out of memory");
    fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        sodium_free(buf);
        return err_set(eb, ERR_IO, "cannot open %s: %s", path, err_strerror(errno));
    }
    while (len < VAULT_SECRET_MAX + 1) {
        ssize_t n = read(fd, buf + len, VAULT_SECRET_MAX + 1 - len);

        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = err_set(eb, ERR_IO, "cannot read %s: %s", path, err_strerror(errno));
            break;
        }
        if (n == 0)
            break;
        len += (size_t)n;
    }
    if (fd != STDIN_FILENO)
        close(fd);
    while (rc == ERR_OK && len > 0 &&
           (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        len--;
    if (rc == ERR_OK && (len == 0 || len > VAULT_SECRET_MAX))
        rc = err_set(eb, ERR_INVAL, "the client secret in %s is empty or longer than %d bytes",
                     path, VAULT_SECRET_MAX);
    if (rc != ERR_OK) {
        sodium_free(buf);
        return rc;
    }
    buf[len] = '\0';
    *out = buf;
    return ERR_OK;
}

static void
show(const struct account_sso *s)
{
    char when[32] = "never";

    if (s->worked_at != TS_NULL)
        clock_fmt(s->worked_at, when, sizeof when);
    printf("account:       %s\n", s->account_name);
    printf("tenant:        %s\n", s->tenant_id);
    printf("client id:     %s\n", s->client_id);
    printf("client secret: %s... (sealed)\n", s->secret_hint != NULL ? s->secret_hint : "");
    printf("redirect uri:  %s\n", s->redirect_uri);
    printf("role mapping:  %s\n", s->role_map);
    printf("last worked:   %s\n", when);
    printf("local sign-in: %s\n", s->local_signin ? "on" : "off");
}

int
cli_cmd_account_sso(struct ctx *cx, int argc, char **argv)
{
    const char *account = NULL, *tenant = NULL, *client = NULL, *uri = NULL, *map = NULL;
    const char *file = NULL, *pos[3] = {NULL, NULL, NULL};
    const struct opt opts[] = {
        {"account", 1, &account, NULL},  {"tenant", 1, &tenant, NULL},
        {"client-id", 1, &client, NULL}, {"redirect-uri", 1, &uri, NULL},
        {"map", 1, &map, NULL},          {"secret-file", 1, &file, NULL},
        {NULL, 0, NULL, NULL},
    };
    struct store *st = NULL;
    struct vault *v = NULL;
    struct account_sso s = {0};
    struct errbuf eb = {0};
    char *secret = NULL;
    int64_t acc = 0;
    int rc = ERR_OK, npos = 0, help = 0, code = CLI_OK;

    if (opt_parse("account", argc, argv, opts, pos, 3, &npos, &help) != 0)
        return CLI_USAGE;
    if (help) {
        fputs(usage, stdout);
        return CLI_OK;
    }
    if (npos != 2 ||
        (strcmp(pos[0], "sso") == 0 && strcmp(pos[1], "set") != 0 && strcmp(pos[1], "show") != 0 &&
         strcmp(pos[1], "off") != 0) ||
        (strcmp(pos[0], "local-signin") == 0 && strcmp(pos[1], "on") != 0 &&
         strcmp(pos[1], "off") != 0)) {
        fputs(usage, stderr);
        return CLI_USAGE;
    }
    if (account == NULL)
        account = AUTH_DEFAULT_ACCOUNT;
    if (file != NULL && (rc = read_secret_file(file, &secret, &eb)) != ERR_OK)
        goto out;
    if ((rc = store_open(&st, cx->cfg.db, &eb)) != ERR_OK ||
        (rc = store_account_ensure(st, account, &acc, &eb)) != ERR_OK)
        goto out;
    if (strcmp(pos[0], "local-signin") == 0) {
        int on = strcmp(pos[1], "on") == 0;

        if ((rc = store_account_local_signin(st, acc, on, &eb)) == ERR_OK) {
            log_info("sso local sign-in %s account=%s by=command-line", on ? "on" : "off", account);
            printf("password sign-in is %s for account %s\n", on ? "on" : "off", account);
        }
    } else if (strcmp(pos[1], "show") == 0) {
        rc = store_sso_get(st, acc, &s, &eb);
        if (rc == ERR_NOTFOUND) {
            printf("account %s has no single sign-on\n", account);
            rc = ERR_OK;
        } else if (rc == ERR_OK) {
            show(&s);
        }
    } else if (strcmp(pos[1], "off") == 0) {
        if ((rc = store_sso_delete(st, acc, &eb)) == ERR_OK) {
            log_info("sso turned off account=%s by=command-line", account);
            printf("single sign-on is off for account %s; password sign-in is on\n", account);
        }
    } else {
        if (tenant == NULL || client == NULL || uri == NULL || map == NULL) {
            fputs(usage, stderr);
            code = CLI_USAGE;
            goto out;
        }
        char path[CONFIG_VALUE_MAX + 8];

        config_master_key_path(&cx->cfg, path, sizeof path);
        if ((rc = vault_open(&v, path, 1, &eb)) == ERR_OK)
            rc = ui_sso_save(st, v, acc, tenant, client, secret, uri, map, &eb);
        if (rc == ERR_OK)
            printf("single sign-on is set for account %s; try \"Sign in with Microsoft\" before "
                   "turning password sign-in off\n",
                   account);
    }
out:
    if (rc != ERR_OK) {
        fprintf(stderr, "memsync account: %s\n", eb.msg);
        code = rc == ERR_INVAL || rc == ERR_USAGE ? CLI_USAGE : CLI_FAIL;
    }
    account_sso_clear(&s);
    vault_wipe(secret);
    vault_close(v);
    store_close(st);
    return code;
}
