/* backup.h - a consistent copy of the SQLite database while serve and syncs run, and putting
 * such a copy back (`memsync backup FILE`, `memsync restore FILE`). Part of the SQLite backend:
 * besides the SQLite backend (src/store/sqlite/), the only module that uses the sqlite3 API.
 *
 * backup_sqlite(): SQLite's online backup API (sqlite3_backup_*) copies the database in steps of
 * BACKUP_STEP_PAGES pages, all from one read transaction of the source, so the copy is the
 * database as of one commit even while other processes write (WAL mode: readers and writers do
 * not wait for each other). SQLITE_BUSY and SQLITE_LOCKED are retried for up to
 * BACKUP_BUSY_MS. The copy is written beside dest (dest.partial, mode 0600), switched to
 * rollback journal mode (one self-contained file), fsync'd and renamed over dest; a failure
 * leaves dest as it was.
 *
 * backup_restore_sqlite(): checks the file first (a SQLite database with memsync's
 * application_id, schema version 1..STORE_SCHEMA_VERSION, PRAGMA integrity_check "ok"), copies it
 * beside the database (db.restore, 0600, fsync'd) and checks the copy again; then refuses when
 * any other connection has the database open (SQLite cannot leave WAL mode while one does, and
 * the restore holds an exclusive lock from then on), keeps the database it replaces as
 * db.before-restore (a hard link), removes its -wal and -shm and renames the copy into place.
 * Errors leave the database untouched. ERR_DB: not a memsync database, newer schema, damaged;
 * ERR_EXISTS: the database is in use; ERR_IO: file errors. Messages name the files.
 *
 * Both are for a SQLite path; PostgreSQL uses pg_dump / pg_restore (docs/DEPLOY.md).
 * Thread: any, one call at a time per file. Open no struct store on the same file in this
 * process during a restore (closing a descriptor drops the process's POSIX locks).
 */
#ifndef MEMSYNC_BACKUP_H
#define MEMSYNC_BACKUP_H

#include <stdint.h>

#include "err.h"

#define BACKUP_STEP_PAGES 1024
#define BACKUP_BUSY_MS    30000

struct backup_info {
    int64_t schema_version;
    int64_t bytes;
    int64_t pages;
    int replaced; /* restore: a database was there (and is kept as db.before-restore) */
};

int backup_sqlite(const char *db_path, const char *dest, struct backup_info *info,
                  struct errbuf *eb);
int backup_restore_sqlite(const char *file, const char *db_path, struct backup_info *info,
                          struct errbuf *eb);

#endif
