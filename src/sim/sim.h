/* sim.h - `memsync sim`: a simulator of the Microsoft endpoints memsync uses (Entra tokens,
 * Partner Center customers, Microsoft Graph organization and Intune routes), for tests, the demo
 * and evaluation without credentials. See docs/SIMULATOR.md.
 */
#ifndef MEMSYNC_SIM_H
#define MEMSYNC_SIM_H

/* Entry point of the `sim` command; argv[0] is "sim". Returns the process exit code. */
int sim_main(int argc, char **argv);

#endif
