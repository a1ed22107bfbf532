/* opt.c - the option parser of every memsync command (opt.h). */
#include "opt.h"

#include <stdio.h>
#include <string.h>

int
opt_parse(const char *cmd, int argc, char **argv, const struct opt *opts, const char **pos,
          int maxpos, int *npos, int *help)
{
    *npos = 0;
    *help = 0;
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
                fprintf(stderr, "memsync %s: unknown option %s (see memsync %s --help)\n", cmd, a,
                        cmd);
                return -1;
            }
            if (*npos >= maxpos) {
                fprintf(stderr, "memsync %s: unexpected argument '%s'\n", cmd, a);
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
            fprintf(stderr, "memsync %s: unknown option %.*s (see memsync %s --help)\n", cmd,
                    (int)(nlen + 2), a, cmd);
            return -1;
        }
        if (o->has_arg) {
            if (eq != NULL) {
                *o->value = eq + 1;
            } else if (i + 1 < argc) {
                *o->value = argv[++i];
            } else {
                fprintf(stderr, "memsync %s: option --%s needs a value\n", cmd, o->name);
                return -1;
            }
        } else {
            if (eq != NULL) {
                fprintf(stderr, "memsync %s: option --%s takes no value\n", cmd, o->name);
                return -1;
            }
            *o->flag = 1;
        }
    }
    return 0;
}
