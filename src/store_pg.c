/* store_pg.c - PostgreSQL backend (libpq). Not built yet: opening refuses with a clear message. */
#include "store.h"

int
store_pg_open(struct store **out, const char *url, struct errbuf *eb)
{
    (void)url;
    *out = NULL;
    return err_set(eb, ERR_UNSUPPORTED,
                   "PostgreSQL support is not built yet; use a SQLite path for --db");
}
