/* main.c - the memsync command-line entry point: global flags, then one command. */
#include <stdio.h>
#include <string.h>

#include "sim.h"

int
main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "sim") == 0)
        return sim_main(argc - 1, argv + 1);
    fprintf(stderr, "usage: memsync COMMAND ...\n");
    return 2;
}
