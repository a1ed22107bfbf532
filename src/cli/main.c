/* main.c - the memsync program: process-wide setup, then the command line. */
#include <signal.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/stat.h>

#include <curl/curl.h>
#include <sodium.h>

#include "cli.h"
#include "jsonarena.h"
#include "store.h"

int
main(int argc, char **argv)
{
    int rc;

    /* Every file memsync creates is private: the database and SQLite's -wal and -shm beside it,
     * backups, exports, the master key. A stricter umask of the caller is kept. */
    umask(umask(0) | 077);
    /* No core dumps and no ptrace by other processes of the same user: memory holds the master
     * key and opened secrets. */
    prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
    /* libcurl runs with CURLOPT_NOSIGNAL, so a peer closing a socket must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    jsonarena_install();        /* before any thread uses jansson */
    store_sqlite_global_init(); /* before any thread uses SQLite */
    if (sodium_init() < 0) {
        fprintf(stderr, "memsync: libsodium could not initialise\n");
        return CLI_FAIL;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        fprintf(stderr, "memsync: libcurl could not initialise\n");
        return CLI_FAIL;
    }
    rc = cli_main(argc, argv);
    curl_global_cleanup();
    return rc;
}
