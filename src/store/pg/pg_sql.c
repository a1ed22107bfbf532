/* pg_sql.c - the generic statements of store_ops.sql_exec / sql_query (store_int.h): ?N
 * placeholders become $N. */
#include "pg_int.h"

#include <inttypes.h>
#include <libpq-fe.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "mem.h"

#define SQL_MAX_COLS 32

static char *
dollars(const char *sql)
{
    char *out = xstrdup(sql);

    for (char *p = out; *p != '\0'; p++)
        if (*p == '?')
            *p = '$';
    return out;
}

static void
params_of(struct params *p, const struct store_cell *args, size_t n)
{
    for (size_t i = 0; i < n && i < PARAMS_MAX; i++) {
        if (args[i].kind == SC_INT)
            pg_p_i64(p, args[i].i);
        else
            pg_p_text(p, args[i].kind == SC_TEXT ? args[i].s : NULL);
    }
}

int
pg_sql_exec(struct store *base, const char *sql, const struct store_cell *args, size_t n,
            int64_t *changed, int64_t *id, struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct params p = {0};
    char *q = dollars(sql);
    PGresult *r;
    int own = 0, rc;

    rc = pg_wbegin(g, &own, eb);
    if (rc != ERR_OK) {
        free(q);
        return rc;
    }
    params_of(&p, args, n);
    r = pg_q(g, q, &p, eb, "writing", &rc);
    if (r != NULL) {
        const char *t = PQcmdTuples(r);

        if (changed != NULL)
            *changed = t[0] != '\0' ? strtoll(t, NULL, 10) : 0;
        if (id != NULL && PQntuples(r) > 0)
            *id = pg_r_i64(r, 0, 0, 0);
        PQclear(r);
    }
    free(q);
    return pg_wend(g, own, rc, eb);
}

int
pg_sql_query(struct store *base, const char *sql, const struct store_cell *args, size_t n,
             int (*cb)(void *arg, const struct store_cell *cells, size_t n), void *arg,
             struct errbuf *eb)
{
    struct pg *g = (struct pg *)base;
    struct store_cell cells[SQL_MAX_COLS];
    struct params p = {0};
    char *q = dollars(sql);
    PGresult *r;
    int rc = ERR_OK, ncol;

    params_of(&p, args, n);
    r = pg_q(g, q, &p, eb, "reading", &rc);
    free(q);
    if (r == NULL)
        return rc;
    ncol = PQnfields(r) < SQL_MAX_COLS ? PQnfields(r) : SQL_MAX_COLS;
    for (int i = 0; rc == ERR_OK && i < PQntuples(r); i++) {
        for (int c = 0; c < ncol; c++) {
            Oid t = PQftype(r, c);

            memset(&cells[c], 0, sizeof cells[c]);
            if (PQgetisnull(r, i, c)) {
                cells[c].kind = SC_NULL;
            } else if (t == 20 || t == 21 || t == 23) { /* int8, int2, int4 */
                cells[c].kind = SC_INT;
                cells[c].i = pg_r_i64(r, i, c, 0);
            } else {
                cells[c].kind = SC_TEXT;
                cells[c].s = PQgetvalue(r, i, c);
            }
        }
        rc = cb(arg, cells, (size_t)ncol);
    }
    PQclear(r);
    return rc;
}
