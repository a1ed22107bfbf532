/* sqlite_sql.c - the generic statements of store_ops.sql_exec / sql_query (store_int.h). */
#include "sqlite_int.h"

#include <sqlite3.h>
#include <stdlib.h>
#include <string.h>

#define SQL_MAX_COLS 32

static int
bind_all(sqlite3_stmt *st, const struct store_cell *args, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        int k = (int)i + 1;

        if (args[i].kind == SC_INT)
            sqlite3_bind_int64(st, k, args[i].i);
        else if (args[i].kind == SC_TEXT && args[i].s != NULL)
            sqlite3_bind_text(st, k, args[i].s, -1, SQLITE_TRANSIENT);
        else
            sqlite3_bind_null(st, k);
    }
    return ERR_OK;
}

int
sq_sql_exec(struct store *base, const char *sql, const struct store_cell *args, size_t n,
            int64_t *changed, int64_t *id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int own = 0, rc, src;

    rc = sq_wbegin(s, &own, eb);
    if (rc != ERR_OK)
        return rc;
    src = sq_prep_once(s, sql, -1, &st, NULL);
    if (src != SQLITE_OK) {
        rc = sq_db_err(s, src, eb, "writing");
        goto out;
    }
    bind_all(st, args, n);
    while ((src = sqlite3_step(st)) == SQLITE_ROW)
        if (id != NULL)
            *id = sqlite3_column_int64(st, 0);
    if (src != SQLITE_DONE) {
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "writing");
        goto out;
    }
    if (changed != NULL)
        *changed = sqlite3_changes(s->db);
out:
    sqlite3_finalize(st);
    return sq_wend(s, own, rc, eb);
}

int
sq_sql_query(struct store *base, const char *sql, const struct store_cell *args, size_t n,
             int (*cb)(void *arg, const struct store_cell *cells, size_t n), void *arg,
             struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    struct store_cell cells[SQL_MAX_COLS];
    sqlite3_stmt *st = NULL;
    int rc = ERR_OK, src, ncol;

    src = sq_prep_once(s, sql, -1, &st, NULL);
    if (src != SQLITE_OK)
        return sq_db_err(s, src, eb, "reading");
    bind_all(st, args, n);
    ncol = sqlite3_column_count(st);
    if (ncol > SQL_MAX_COLS)
        ncol = SQL_MAX_COLS;
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        for (int c = 0; c < ncol; c++) {
            int t = sqlite3_column_type(st, c);

            memset(&cells[c], 0, sizeof cells[c]);
            cells[c].kind = t == SQLITE_NULL ? SC_NULL : t == SQLITE_INTEGER ? SC_INT : SC_TEXT;
            if (t == SQLITE_INTEGER)
                cells[c].i = sqlite3_column_int64(st, c);
            else if (t != SQLITE_NULL)
                cells[c].s = (const char *)sqlite3_column_text(st, c);
        }
        rc = cb(arg, cells, (size_t)ncol);
        if (rc != 0)
            break;
    }
    if (rc == ERR_OK && src != SQLITE_DONE)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading");
    sqlite3_finalize(st);
    return rc;
}
