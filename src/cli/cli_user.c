/* cli_user.c - `memsync user ...` (web UI accounts) and `memsync apikey ...` (REST API keys)
 * (cli_int.h). */
#include "cli.h"
#include "cli_int.h"

#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include <sodium.h>

#include "auth.h"
#include "clock.h"
#include "log.h"
#include "opt.h"
#include "store.h"

/* The options of both commands; each takes its own subset. */
struct user_opts {
    const char *account, *role, *pwfile, *name, *scope, *expires, *expires_days;
    const char *pos[1];
    int npos, help, bad, no_expiry;
};

/* Reads one line (without its newline) from fd into out (max bytes including NUL). */
static int
read_line_fd(int fd, char *out, size_t max)
{
    size_t len = 0;
    char c;
    ssize_t r;

    while ((r = read(fd, &c, 1)) == 1) {
        if (c == '\n')
            break;
        if (len + 1 >= max)
            return -1;
        out[len++] = c;
    }
    if (r < 0)
        return -1;
    while (len > 0 && out[len - 1] == '\r')
        len--;
    out[len] = '\0';
    return 0;
}

static int
prompt_password(const char *label, char *out, size_t max)
{
    struct termios old, quiet;
    int fd = open("/dev/tty", O_RDWR | O_CLOEXEC), rc;

    if (fd < 0)
        return -1;
    if (write(fd, label, strlen(label)) < 0) {
        close(fd);
        return -1;
    }
    tcgetattr(fd, &old);
    quiet = old;
    quiet.c_lflag &= (tcflag_t) ~(ECHO);
    tcsetattr(fd, TCSAFLUSH, &quiet);
    rc = read_line_fd(fd, out, max);
    tcsetattr(fd, TCSAFLUSH, &old);
    if (write(fd, "\n", 1) < 0)
        rc = -1;
    close(fd);
    return rc;
}

/* Password from --password-file FILE, "-" (stdin) or an interactive prompt (asked twice). */
static int
get_password(const char *file, char *out, size_t max)
{
    if (file != NULL) {
        int fd = strcmp(file, "-") == 0 ? STDIN_FILENO : open(file, O_RDONLY | O_CLOEXEC);
        int rc;

        if (fd < 0) {
            fprintf(stderr, "memsync: cannot read %s: %s\n", file, err_strerror(errno));
            return -1;
        }
        rc = read_line_fd(fd, out, max);
        if (fd != STDIN_FILENO)
            close(fd);
        if (rc != 0)
            fprintf(stderr, "memsync: the password in %s is too long or unreadable\n", file);
        return rc;
    }
    {
        char again[AUTH_PASSWORD_MAX + 2];

        if (prompt_password("Password: ", out, max) != 0 ||
            prompt_password("Password again: ", again, sizeof again) != 0) {
            fprintf(stderr, "memsync: no terminal to ask for the password; use "
                            "--password-file FILE (or - for stdin)\n");
            return -1;
        }
        if (strcmp(out, again) != 0) {
            sodium_memzero(again, sizeof again);
            fprintf(stderr, "memsync: the passwords differ\n");
            return -1;
        }
        sodium_memzero(again, sizeof again);
    }
    return 0;
}

static int
cmd_store(struct ctx *cx, struct store **st)
{
    struct errbuf eb = {0};

    if (store_open(st, cx->cfg.db, &eb) != ERR_OK) {
        fprintf(stderr, "memsync: %s\n", eb.msg);
        return -1;
    }
    return 0;
}

struct print_walk {
    int rows;
};

static int
print_cells(void *arg, const struct store_cell *c, size_t n)
{
    struct print_walk *w = arg;

    for (size_t i = 0; i < n; i++) {
        char ts[32];

        if (i)
            fputs("  ", stdout);
        switch (c[i].kind) {
        case SC_INT:
            printf("%-6lld", (long long)c[i].i);
            break;
        case SC_TEXT:
            printf("%-16s", c[i].s);
            break;
        case SC_TS:
            clock_fmt(c[i].i, ts, sizeof ts);
            printf("%s", ts);
            break;
        case SC_BOOL:
            printf("%s", c[i].i ? "yes" : "no");
            break;
        default:
            printf("%-6s", "-");
            break;
        }
    }
    putchar('\n');
    w->rows++;
    return 0;
}

static int
cmd_list(struct store *st, const char *account, const char *entity, const char *header)
{
    struct errbuf eb = {0};
    struct list_query q = {0};
    struct print_walk w = {0};
    int64_t acc;

    if (store_account_ensure(st, account != NULL ? account : AUTH_DEFAULT_ACCOUNT, &acc, &eb) !=
        ERR_OK) {
        fprintf(stderr, "memsync: %s\n", eb.msg);
        return 1;
    }
    q.entity = entity;
    q.account_id = acc;
    puts(header);
    if (store_list_each(st, &q, print_cells, &w, &eb) != ERR_OK) {
        fprintf(stderr, "memsync: %s\n", eb.msg);
        return 1;
    }
    return 0;
}

/* An admin's recovery for a lost device: the user's secret and recovery codes go; they sign in
 * with the password alone, or set it up again when their account requires it. */
static int
user_reset_totp(struct store *st, const char *name, struct errbuf *eb)
{
    struct user_row u = {0};
    int rc = store_user_get(st, name, &u, eb);

    if (rc == ERR_NOTFOUND)
        err_set(eb, rc, "there is no user named %s", name);
    if (rc == ERR_OK)
        rc = store_totp_clear(st, u.id, eb);
    if (rc == ERR_OK)
        log_info("second factor reset user=%s by=command-line", name);
    user_row_clear(&u);
    return rc;
}

int
cli_cmd_user(struct ctx *cx, int argc, char **argv)
{
    static const char usage[] =
        "usage: memsync user add NAME [--role admin|viewer] [--account NAME] "
        "[--password-file FILE|-]\n"
        "       memsync user list [--account NAME]\n"
        "       memsync user passwd NAME [--password-file FILE|-]\n"
        "       memsync user remove NAME\n"
        "       memsync user reset-totp NAME   (turns the user's two-step sign-in off)\n"
        "Passwords are read from a file, stdin (-) or a prompt, never from the command line.\n";
    struct user_opts o = {0};
    const struct opt opts[] = {
        {"account", 1, &o.account, NULL},
        {"role", 1, &o.role, NULL},
        {"password-file", 1, &o.pwfile, NULL},
        {NULL, 0, NULL, NULL},
    };
    struct store *st = NULL;
    struct errbuf eb = {0};
    char pw[AUTH_PASSWORD_MAX + 2];
    const char *sub;
    int code = 1;

    o.bad = argc >= 2 && opt_parse("user", argc - 1, argv + 1, opts, o.pos, 1, &o.npos, &o.help);
    sub = argc >= 2 ? argv[1] : NULL;
    if (sub != NULL && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0))
        o.help = 1;
    if (sub == NULL || o.bad || o.help) {
        fputs(usage, o.help ? stdout : stderr);
        return o.help ? 0 : 2;
    }
    if ((strcmp(sub, "add") == 0 || strcmp(sub, "passwd") == 0 || strcmp(sub, "remove") == 0 ||
         strcmp(sub, "reset-totp") == 0) &&
        o.npos != 1) {
        fputs(usage, stderr);
        return 2;
    }
    if (strcmp(sub, "list") != 0 && strcmp(sub, "add") != 0 && strcmp(sub, "passwd") != 0 &&
        strcmp(sub, "remove") != 0 && strcmp(sub, "reset-totp") != 0) {
        fputs(usage, stderr);
        return 2;
    }
    if (o.role != NULL && strcmp(o.role, "admin") != 0 && strcmp(o.role, "viewer") != 0) {
        fprintf(stderr, "memsync user: --role must be admin or viewer\n");
        return 2;
    }
    if (cmd_store(cx, &st) != 0)
        return 1;
    if (strcmp(sub, "list") == 0) {
        code = cmd_list(st, o.account, "users",
                        "ID      NAME              ROLE              "
                        "CREATED               TOTP");
        goto out;
    }
    if (strcmp(sub, "remove") == 0) {
        if (auth_user_remove(st, o.pos[0], &eb) != ERR_OK)
            goto fail;
        printf("user %s removed\n", o.pos[0]);
        code = 0;
        goto out;
    }
    if (strcmp(sub, "reset-totp") == 0) {
        if (user_reset_totp(st, o.pos[0], &eb) != ERR_OK)
            goto fail;
        printf("two-step sign-in of %s is off; their recovery codes are gone\n", o.pos[0]);
        code = 0;
        goto out;
    }
    if (get_password(o.pwfile, pw, sizeof pw) != 0)
        goto out;
    if (strcmp(sub, "add") == 0) {
        if (auth_user_add(st, o.account, o.pos[0], o.role != NULL ? o.role : "viewer", pw, &eb) !=
            ERR_OK)
            goto fail;
        printf("user %s added (%s)\n", o.pos[0], o.role != NULL ? o.role : "viewer");
    } else {
        if (auth_user_passwd(st, o.pos[0], pw, &eb) != ERR_OK)
            goto fail;
        printf("password of %s changed; its sessions were ended\n", o.pos[0]);
    }
    code = 0;
    goto out;
fail:
    fprintf(stderr, "memsync user %s: %s\n", sub, eb.msg);
out:
    sodium_memzero(pw, sizeof pw);
    store_close(st);
    return code;
}

int
cli_cmd_apikey(struct ctx *cx, int argc, char **argv)
{
    static const char usage[] =
        "usage: memsync apikey create --name NAME [--scope read|admin] [--account NAME]\n"
        "                             [--expires YYYY-MM-DD | --expires-days N | --no-expiry]\n"
        "       memsync apikey list [--account NAME]\n"
        "       memsync apikey revoke ID [--account NAME]\n"
        "The key is shown once, when it is created; memsync keeps only a digest of it.\n"
        "A key expires after 365 days unless told otherwise.\n";
    struct user_opts o = {0};
    const struct opt opts[] = {
        {"account", 1, &o.account, NULL},
        {"name", 1, &o.name, NULL},
        {"scope", 1, &o.scope, NULL},
        {"expires", 1, &o.expires, NULL},
        {"expires-days", 1, &o.expires_days, NULL},
        {"no-expiry", 0, NULL, &o.no_expiry},
        {NULL, 0, NULL, NULL},
    };
    struct store *st = NULL;
    struct errbuf eb = {0};
    char key[AUTH_APIKEY_LEN + 1];
    const char *sub = argc >= 2 ? argv[1] : NULL;
    int64_t acc, id, expires = TS_NULL;
    int code = 1;

    o.bad = argc >= 2 && opt_parse("apikey", argc - 1, argv + 1, opts, o.pos, 1, &o.npos, &o.help);
    if (sub != NULL && (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0))
        o.help = 1;
    if (sub == NULL || o.bad || o.help ||
        (strcmp(sub, "create") != 0 && strcmp(sub, "list") != 0 && strcmp(sub, "revoke") != 0)) {
        fputs(usage, o.help ? stdout : stderr);
        return o.help ? 0 : 2;
    }
    if (o.scope != NULL && strcmp(o.scope, "read") != 0 && strcmp(o.scope, "admin") != 0) {
        fprintf(stderr, "memsync apikey: --scope must be read or admin\n");
        return 2;
    }
    /* The command line runs with the database's own rights: an admin's. */
    if (strcmp(sub, "create") == 0 && auth_apikey_expiry(o.expires, o.expires_days, o.no_expiry, 1,
                                                         clock_now(), &expires, &eb) != ERR_OK) {
        fprintf(stderr, "memsync apikey create: %s\n", eb.msg);
        return 2;
    }
    if (strcmp(sub, "revoke") == 0) {
        char *end;

        if (o.npos != 1 || (id = strtoll(o.pos[0], &end, 10)) <= 0 || *end != '\0') {
            fputs(usage, stderr);
            return 2;
        }
    }
    if (cmd_store(cx, &st) != 0)
        return 1;
    if (strcmp(sub, "list") == 0) {
        code = cmd_list(st, o.account, "api_keys",
                        "ID      NAME              SCOPE             PREFIX            CREATED  "
                        "             REVOKED               EXPIRES               LAST USED");
        goto out;
    }
    if (store_account_ensure(st, o.account != NULL ? o.account : AUTH_DEFAULT_ACCOUNT, &acc, &eb) !=
        ERR_OK)
        goto fail;
    if (strcmp(sub, "revoke") == 0) {
        if (store_apikey_revoke(st, acc, id, &eb) != ERR_OK)
            goto fail;
        printf("API key %lld revoked\n", (long long)id);
        code = 0;
        goto out;
    }
    if (auth_apikey_create(st, acc, o.name != NULL ? o.name : "api", o.scope ? o.scope : "read",
                           expires, key, &id, &eb) != ERR_OK)
        goto fail;
    printf("%s\n", key);
    {
        char when[32] = "never";

        if (expires != TS_NULL)
            clock_fmt(expires, when, sizeof when);
        fprintf(stderr,
                "API key %lld created (scope %s, expires %s). This is the only time it is shown: "
                "store it now. Send it as the x-api-key header.\n",
                (long long)id, o.scope ? o.scope : "read", when);
    }
    sodium_memzero(key, sizeof key);
    code = 0;
    goto out;
fail:
    fprintf(stderr, "memsync apikey %s: %s\n", sub, eb.msg);
out:
    store_close(st);
    return code;
}
