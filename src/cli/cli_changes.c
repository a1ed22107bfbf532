/* cli_changes.c - `memsync changes` (cli_int.h): the change feed on the command line. */
#include "cli.h"
#include "cli_int.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth.h"
#include "changes.h"
#include "mem.h"
#include "opt.h"
#include "store.h"

struct walk {
    int64_t last;
    size_t n;
    int bad;
};

static int
print_cb(void *arg, const struct change_row *c)
{
    struct walk *w = arg;
    json_t *j = changes_row_json(c);
    char *s = j != NULL ? json_dumps(j, JSON_COMPACT) : NULL;

    json_decref(j);
    if (s == NULL)
        return ERR_NOMEM;
    if (puts(s) == EOF)
        w->bad = 1;
    free(s);
    w->last = c->seq;
    w->n++;
    return w->bad ? 1 : 0;
}

int
cli_cmd_changes(struct ctx *cx, int argc, char **argv)
{
    static const char usage[] =
        "usage: memsync changes [--since CURSOR] [--client ID] [--kind K[,K...]] "
        "[--account NAME]\n"
        "Prints what changed since CURSOR (the next_cursor printed by the previous run, or of "
        "GET /api/v1/changes), one JSON object per line, oldest first; the cursor to resume "
        "from goes to stderr as \"next_cursor=...\".\n";
    const char *since = NULL, *client = NULL, *kind = NULL, *account = NULL, *pos[1] = {NULL};
    const struct opt opts[] = {
        {"since", 1, &since, NULL},     {"client", 1, &client, NULL}, {"kind", 1, &kind, NULL},
        {"account", 1, &account, NULL}, {NULL, 0, NULL, NULL},
    };
    struct change_query q = {0};
    struct walk w = {0};
    struct store *st = NULL;
    struct errbuf eb = {0};
    char next[CHANGES_CURSOR_MAX], *kinds = NULL, *end = NULL;
    int rc = ERR_OK, npos = 0, help = 0, code = CLI_FAIL;

    if (opt_parse("changes", argc, argv, opts, pos, 0, &npos, &help) != 0)
        return CLI_USAGE;
    if (help) {
        fputs(usage, stdout);
        return CLI_OK;
    }
    if (since != NULL && changes_cursor_parse(since, &q.after_seq, &eb) != ERR_OK) {
        fprintf(stderr, "memsync changes: %s\n", eb.msg);
        return CLI_USAGE;
    }
    if (client != NULL) {
        errno = 0;
        q.client_id = strtoll(client, &end, 10);
        if (errno != 0 || end == client || *end != '\0' || q.client_id < 1) {
            fprintf(stderr, "memsync changes: --client must be a client id\n");
            return CLI_USAGE;
        }
    }
    if (kind != NULL) {
        kinds = xstrdup(kind);
        if (changes_kinds_parse(kinds, &q, &eb) != ERR_OK) {
            fprintf(stderr, "memsync changes: %s\n", eb.msg);
            free(kinds);
            return CLI_USAGE;
        }
    }
    if (store_open(&st, cx->cfg.db, &eb) != ERR_OK ||
        store_account_ensure(st, account != NULL ? account : AUTH_DEFAULT_ACCOUNT, &q.account_id,
                             &eb) != ERR_OK) {
        fprintf(stderr, "memsync changes: %s\n", eb.msg);
        goto out;
    }
    q.limit = STORE_CHANGES_MAX;
    w.last = q.after_seq;
    do {
        size_t before = w.n;

        rc = store_changes_each(st, &q, print_cb, &w, NULL, &eb);
        if (rc < 0 || w.bad || w.n - before < q.limit)
            break;
        q.after_seq = w.last;
    } while (1);
    if (rc < 0) {
        fprintf(stderr, "memsync changes: %s\n", eb.msg);
        goto out;
    }
    changes_cursor(w.last, next);
    fprintf(stderr, "next_cursor=%s\n", next);
    code = w.bad ? CLI_FAIL : CLI_OK;
out:
    free(kinds);
    store_close(st);
    return code;
}
