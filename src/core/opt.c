/* opt.c - the option parser of every memsync command (opt.h). */
#include "opt.h"

#include <stdio.h>
#include <string.h>

/* opt_parse, and opt_parse_head when next is set: then the first positional ends the options. */
static int
parse(const char *cmd, int argc, char **argv, const struct opt *opts, const char **pos, int maxpos,
      int *npos, int *help, int *next)
{
    char who[80]; /* "memsync CMD" in messages ("memsync" for the global flags) */

    if (cmd != NULL)
        snprintf(who, sizeof who, "memsync %s", cmd);
    else
        snprintf(who, sizeof who, "memsync");
    *npos = 0;
    *help = 0;
    if (next != NULL)
        *next = argc;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const struct opt *o = NULL;
        size_t nlen;
        const char *eq;

        if (strcmp(a, "--help") == 0 || strcmp(a, "-h") == 0) {
            *help = 1;
            continue;
        }
        if (strncmp(a, "--", 2) != 0 || a[2] == '\0') {
            if (strcmp(a, "-") != 0 && a[0] == '-' && a[1] != '\0') {
                fprintf(stderr, "%s: unknown option %s (see %s --help)\n", who, a, who);
                return -1;
            }
            if (next != NULL) {
                *next = i;
                return 0;
            }
            if (*npos >= maxpos) {
                fprintf(stderr, "%s: unexpected argument '%s'\n", who, a);
                return -1;
            }
            pos[(*npos)++] = a;
            continue;
        }
        eq = strchr(a + 2, '=');
        nlen = eq != NULL ? (size_t)(eq - (a + 2)) : strlen(a + 2);
        for (const struct opt *p = opts; p->name != NULL; p++) {
            if (strlen(p->name) == nlen && strncmp(p->name, a + 2, nlen) == 0) {
                o = p;
                break;
            }
        }
        if (o == NULL) {
            fprintf(stderr, "%s: unknown option %.*s (see %s --help)\n", who, (int)(nlen + 2), a,
                    who);
            return -1;
        }
        if (o->has_arg) {
            if (eq != NULL) {
                *o->value = eq + 1;
            } else if (i + 1 < argc) {
                *o->value = argv[++i];
            } else {
                fprintf(stderr, "%s: option --%s needs a value\n", who, o->name);
                return -1;
            }
        } else {
            if (eq != NULL) {
                fprintf(stderr, "%s: option --%s takes no value\n", who, o->name);
                return -1;
            }
            *o->flag = 1;
        }
    }
    return 0;
}

int
opt_parse(const char *cmd, int argc, char **argv, const struct opt *opts, const char **pos,
          int maxpos, int *npos, int *help)
{
    return parse(cmd, argc, argv, opts, pos, maxpos, npos, help, NULL);
}

int
opt_parse_head(int argc, char **argv, const struct opt *opts, int *next, int *help)
{
    int npos;

    return parse(NULL, argc, argv, opts, NULL, 0, &npos, help, next);
}
