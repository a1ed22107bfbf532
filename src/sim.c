#include "sim.h"

#include <stdio.h>

int
sim_main(int argc, char **argv)
{
    (void)argc;
    (void)argv;
    fprintf(stderr, "memsync sim: not built yet\n");
    return 1;
}
