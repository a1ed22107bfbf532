/* backup.c - online backup and checked restore of the SQLite database (see backup.h). */
#include "backup.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <sqlite3.h>

#include "mem.h"
#include "store.h"

#define SQLITE_HEADER 100

/* "<path><suffix>", malloc'd. */
static char *
path_with(const char *path, const char *suffix)
{
    size_t n = strlen(path) + strlen(suffix) + 1;
    char *p = xmalloc(n);

    snprintf(p, n, "%s%s", path, suffix);
    return p;
}

/* fsync of a file, then of the directory that holds it (so a rename survives a crash). */
static int
sync_file_and_dir(const char *path, struct errbuf *eb)
{
    char *dir = xstrdup(path), *slash = strrchr(dir, '/');
    int fd, rc = ERR_OK;

    fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 || fsync(fd) != 0)
        rc = err_set(eb, ERR_IO, "cannot write %s to disk: %s", path, err_strerror(errno));
    if (fd >= 0)
        close(fd);
    if (slash == dir)
        slash[1] = '\0';
    else if (slash != NULL)
        *slash = '\0';
    if (rc == ERR_OK) {
        fd = open(slash != NULL ? dir : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (fd >= 0) {
            (void)fsync(fd);
            close(fd);
        }
    }
    free(dir);
    return rc;
}

static uint32_t
be32(const unsigned char *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* Reads the 100-byte SQLite header: a memsync database of a schema this build knows. */
static int
check_header(const char *path, const char *what, int64_t *version, struct errbuf *eb)
{
    unsigned char h[SQLITE_HEADER];
    ssize_t got;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    uint32_t app, ver;

    if (fd < 0)
        return err_set(eb, errno == ENOENT ? ERR_NOTFOUND : ERR_IO, "cannot read %s %s: %s", what,
                       path, err_strerror(errno));
    got = read(fd, h, sizeof h);
    close(fd);
    if (got != (ssize_t)sizeof h || memcmp(h, "SQLite format 3", 16) != 0)
        return err_set(eb, ERR_DB, "%s %s is not a SQLite database", what, path);
    app = be32(h + 68);
    ver = be32(h + 60);
    if (app != (uint32_t)STORE_APPLICATION_ID)
        return err_set(eb, ERR_DB, "%s %s is a SQLite database but not a memsync database", what,
                       path);
    if (ver < 1 || ver > (uint32_t)STORE_SCHEMA_VERSION)
        return err_set(eb, ERR_DB,
                       "%s %s has schema version %" PRIu32
                       ", this memsync knows 1 to %d; use the memsync that wrote it",
                       what, path, ver, STORE_SCHEMA_VERSION);
    *version = ver;
    return ERR_OK;
}

static int
sql_err(sqlite3 *db, const char *doing, const char *path, struct errbuf *eb)
{
    int code = sqlite3_errcode(db) == SQLITE_BUSY ? ERR_EXISTS : ERR_DB;

    return err_set(eb, code, "%s %s: %s", doing, path,
                   db != NULL ? sqlite3_errmsg(db) : "out of memory");
}

static int
pragma_int(sqlite3 *db, const char *sql, int64_t *out)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);

    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        *out = sqlite3_column_int64(st, 0);
        rc = SQLITE_OK;
    }
    sqlite3_finalize(st);
    return rc;
}

/* Leaves a database file in rollback-journal mode (one file, no -wal needed to read it).
 * SQLite answers the mode it is in: one that could not be changed is not an error there. */
static int
to_rollback_mode(sqlite3 *db, const char *path, struct errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    int rc = ERR_OK;

    if (sqlite3_prepare_v2(db, "PRAGMA journal_mode = DELETE", -1, &st, NULL) != SQLITE_OK ||
        sqlite3_step(st) != SQLITE_ROW) {
        rc = sql_err(db, "cannot finish", path, eb);
    } else if (sqlite3_stricmp((const char *)sqlite3_column_text(st, 0), "delete") != 0) {
        rc = err_set(eb, ERR_EXISTS, "cannot finish %s: it stays in %s mode", path,
                     (const char *)sqlite3_column_text(st, 0));
    }
    sqlite3_finalize(st);
    return rc;
}

int
backup_sqlite(const char *db_path, const char *dest, struct backup_info *info, struct errbuf *eb)
{
    sqlite3 *src = NULL, *dst = NULL;
    sqlite3_backup *bk = NULL;
    char *tmp = path_with(dest, ".partial");
    int64_t version = 0, app = 0, waited = 0;
    struct stat sb;
    int rc = ERR_OK, src_rc, in_read = 0;

    memset(info, 0, sizeof *info);
    if ((rc = check_header(db_path, "database", &version, eb)) != ERR_OK)
        goto out;
    if (stat(dest, &sb) == 0) {
        struct stat db;

        if (S_ISDIR(sb.st_mode)) {
            rc = err_set(eb, ERR_INVAL, "%s is a directory; give the backup a file name", dest);
            goto out;
        }
        if (stat(db_path, &db) == 0 && db.st_dev == sb.st_dev && db.st_ino == sb.st_ino) {
            rc = err_set(eb, ERR_INVAL, "%s is the database itself; give the backup another name",
                         dest);
            goto out;
        }
    }
    if (sqlite3_open_v2(db_path, &src, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
        SQLITE_OK) {
        rc = sql_err(src, "cannot open the database", db_path, eb);
        goto out;
    }
    sqlite3_busy_timeout(src, BACKUP_BUSY_MS);
    /* One read transaction for the whole copy: every step reads the same snapshot, so the
     * writes of serve and syncs meanwhile neither restart the backup nor get into it. */
    if (sqlite3_exec(src, "BEGIN", NULL, NULL, NULL) != SQLITE_OK ||
        pragma_int(src, "PRAGMA application_id", &app) != SQLITE_OK ||
        pragma_int(src, "PRAGMA user_version", &version) != SQLITE_OK) {
        rc = sql_err(src, "cannot read the database", db_path, eb);
        goto out;
    }
    in_read = 1;
    if (app != STORE_APPLICATION_ID) {
        rc = err_set(eb, ERR_DB, "database %s is not a memsync database", db_path);
        goto out;
    }
    if (unlink(tmp) != 0 && errno != ENOENT) {
        rc = err_set(eb, ERR_IO, "cannot remove the stale %s: %s", tmp, err_strerror(errno));
        goto out;
    }
    if (sqlite3_open_v2(tmp, &dst, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                        NULL) != SQLITE_OK) {
        rc = sql_err(dst, "cannot create", tmp, eb);
        goto out;
    }
    bk = sqlite3_backup_init(dst, "main", src, "main");
    if (bk == NULL) {
        rc = sql_err(dst, "cannot start the backup into", tmp, eb);
        goto out;
    }
    for (;;) {
        src_rc = sqlite3_backup_step(bk, BACKUP_STEP_PAGES);
        if (src_rc == SQLITE_DONE)
            break;
        if (src_rc == SQLITE_OK)
            continue;
        if ((src_rc == SQLITE_BUSY || src_rc == SQLITE_LOCKED) && waited < BACKUP_BUSY_MS) {
            sqlite3_sleep(50);
            waited += 50;
            continue;
        }
        rc = err_set(eb, src_rc == SQLITE_BUSY || src_rc == SQLITE_LOCKED ? ERR_TIMEOUT : ERR_DB,
                     "backup of %s stopped: %s", db_path, sqlite3_errstr(src_rc));
        goto out;
    }
    info->pages = sqlite3_backup_pagecount(bk);
    src_rc = sqlite3_backup_finish(bk);
    bk = NULL;
    if (src_rc != SQLITE_OK) {
        rc = err_set(eb, ERR_DB, "backup of %s failed: %s", db_path, sqlite3_errstr(src_rc));
        goto out;
    }
    sqlite3_exec(src, "COMMIT", NULL, NULL, NULL);
    in_read = 0;
    if ((rc = to_rollback_mode(dst, tmp, eb)) != ERR_OK)
        goto out;
    if (sqlite3_close(dst) != SQLITE_OK) {
        rc = sql_err(dst, "cannot close", tmp, eb);
        goto out;
    }
    dst = NULL;
    /* Created under memsync's umask (0600); make sure whatever the caller did. */
    if (chmod(tmp, 0600) != 0 || (rc = sync_file_and_dir(tmp, eb)) != ERR_OK) {
        if (rc == ERR_OK)
            rc = err_set(eb, ERR_IO, "cannot make %s private: %s", tmp, err_strerror(errno));
        goto out;
    }
    if (rename(tmp, dest) != 0) {
        rc = err_set(eb, ERR_IO, "cannot rename %s to %s: %s", tmp, dest, err_strerror(errno));
        goto out;
    }
    if ((rc = sync_file_and_dir(dest, eb)) != ERR_OK)
        goto out;
    if (stat(dest, &sb) == 0)
        info->bytes = (int64_t)sb.st_size;
    info->schema_version = version;
out:
    if (bk != NULL)
        sqlite3_backup_finish(bk);
    if (in_read)
        sqlite3_exec(src, "ROLLBACK", NULL, NULL, NULL);
    sqlite3_close(src);
    if (dst != NULL) {
        sqlite3_close(dst);
    }
    if (rc != ERR_OK)
        unlink(tmp);
    free(tmp);
    return rc;
}

/* Opens a database file that only this process uses, checks it fully and leaves it in
 * rollback-journal mode. */
static int
check_copy(const char *path, const char *what, struct backup_info *info, struct errbuf *eb)
{
    sqlite3 *db = NULL;
    sqlite3_stmt *st = NULL;
    int64_t app = 0, ver = 0, pages = 0;
    int rc = ERR_OK, src;

    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK ||
        pragma_int(db, "PRAGMA application_id", &app) != SQLITE_OK ||
        pragma_int(db, "PRAGMA user_version", &ver) != SQLITE_OK ||
        pragma_int(db, "PRAGMA page_count", &pages) != SQLITE_OK) {
        rc = err_set(eb, ERR_DB, "%s cannot be read as a database: %s", what,
                     db != NULL ? sqlite3_errmsg(db) : "out of memory");
        goto out;
    }
    if (app != STORE_APPLICATION_ID || ver < 1 || ver > STORE_SCHEMA_VERSION) {
        rc = err_set(eb, ERR_DB, "%s is not a memsync database of schema 1 to %d", what,
                     STORE_SCHEMA_VERSION);
        goto out;
    }
    /* integrity_check answers "ok" or up to 100 lines naming the damage; the first says what. */
    if (sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL) != SQLITE_OK) {
        rc = err_set(eb, ERR_DB, "%s cannot be checked: %s", what, sqlite3_errmsg(db));
        goto out;
    }
    src = sqlite3_step(st);
    if (src != SQLITE_ROW) {
        rc = err_set(eb, ERR_DB, "%s is damaged: %s", what, sqlite3_errmsg(db));
        goto out;
    }
    if (strcmp((const char *)sqlite3_column_text(st, 0), "ok") != 0) {
        rc = err_set(eb, ERR_DB, "%s is damaged (integrity check: %.200s)", what,
                     (const char *)sqlite3_column_text(st, 0));
        goto out;
    }
    sqlite3_finalize(st);
    st = NULL;
    if ((rc = to_rollback_mode(db, path, eb)) != ERR_OK)
        goto out;
    info->schema_version = ver;
    info->pages = pages;
out:
    sqlite3_finalize(st);
    sqlite3_close(db);
    return rc;
}

/* Copies a file byte for byte into a new file (O_EXCL, 0600) and fsyncs it. */
static int
copy_file(const char *from, const char *to, int64_t *bytes, struct errbuf *eb)
{
    char buf[65536];
    int in = -1, out = -1, rc = ERR_OK;
    ssize_t n;

    *bytes = 0;
    in = open(from, O_RDONLY | O_CLOEXEC);
    if (in < 0)
        return err_set(eb, ERR_IO, "cannot read %s: %s", from, err_strerror(errno));
    out = open(to, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (out < 0) {
        rc = err_set(eb, ERR_IO, "cannot create %s: %s", to, err_strerror(errno));
        goto out;
    }
    while ((n = read(in, buf, sizeof buf)) > 0) {
        for (ssize_t off = 0; off < n;) {
            ssize_t w = write(out, buf + off, (size_t)(n - off));

            if (w < 0) {
                if (errno == EINTR)
                    continue;
                rc = err_set(eb, ERR_IO, "cannot write %s: %s", to, err_strerror(errno));
                goto out;
            }
            off += w;
        }
        *bytes += n;
    }
    if (n < 0) {
        rc = err_set(eb, ERR_IO, "cannot read %s: %s", from, err_strerror(errno));
        goto out;
    }
    if (fsync(out) != 0)
        rc = err_set(eb, ERR_IO, "cannot write %s to disk: %s", to, err_strerror(errno));
out:
    if (in >= 0)
        close(in);
    if (out >= 0)
        close(out);
    return rc;
}

static int
remove_if_there(const char *path, struct errbuf *eb)
{
    if (unlink(path) != 0 && errno != ENOENT)
        return err_set(eb, ERR_IO, "cannot remove %s: %s", path, err_strerror(errno));
    return ERR_OK;
}

int
backup_restore_sqlite(const char *file, const char *db_path, struct backup_info *info,
                      struct errbuf *eb)
{
    char *copy = path_with(db_path, ".restore"), *keep = path_with(db_path, ".before-restore");
    char *wal = path_with(db_path, "-wal"), *shm = path_with(db_path, "-shm");
    char *cwal = path_with(copy, "-wal"), *cshm = path_with(copy, "-shm");
    sqlite3 *cur = NULL;
    struct stat fs, ds;
    int64_t version = 0, bytes = 0;
    int rc, have_db;

    memset(info, 0, sizeof *info);
    if ((rc = check_header(file, "backup", &version, eb)) != ERR_OK)
        goto out;
    have_db = stat(db_path, &ds) == 0;
    if (have_db && stat(file, &fs) == 0 && fs.st_dev == ds.st_dev && fs.st_ino == ds.st_ino) {
        rc = err_set(eb, ERR_INVAL, "%s is the database itself; give the backup file", file);
        goto out;
    }
    if (have_db && (rc = check_header(db_path, "database", &version, eb)) != ERR_OK) {
        err_prefix(eb, rc, "not restored (the file there was left untouched)");
        goto out;
    }
    /* The copy that will become the database, checked where it lies. */
    if ((rc = remove_if_there(copy, eb)) != ERR_OK || (rc = remove_if_there(cwal, eb)) != ERR_OK ||
        (rc = remove_if_there(cshm, eb)) != ERR_OK)
        goto out;
    if ((rc = copy_file(file, copy, &bytes, eb)) != ERR_OK)
        goto out;
    if ((rc = check_copy(copy, file, info, eb)) != ERR_OK)
        goto out;
    if ((rc = sync_file_and_dir(copy, eb)) != ERR_OK)
        goto out;
    info->bytes = bytes;
    if (have_db) {
        /* SQLite leaves WAL mode only when no other connection has the database open; from
         * then on the exclusive lock keeps new ones out until the file is replaced. */
        if (sqlite3_open_v2(db_path, &cur, SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX, NULL) !=
            SQLITE_OK) {
            rc = sql_err(cur, "cannot open the database", db_path, eb);
            goto out;
        }
        sqlite3_busy_timeout(cur, 0);
        if (to_rollback_mode(cur, db_path, eb) != ERR_OK ||
            sqlite3_exec(cur, "BEGIN EXCLUSIVE", NULL, NULL, NULL) != SQLITE_OK) {
            rc = err_set(eb, ERR_EXISTS,
                         "%s is in use (serve, a sync or a worker has it open); stop them first, "
                         "then restore (nothing was changed)",
                         db_path);
            goto out;
        }
        if ((rc = remove_if_there(keep, eb)) != ERR_OK)
            goto out;
        if (link(db_path, keep) != 0) {
            rc = err_set(eb, ERR_IO, "cannot keep the current database as %s: %s", keep,
                         err_strerror(errno));
            goto out;
        }
    }
    /* No -wal or -shm of the old file may meet the new one. */
    if ((rc = remove_if_there(wal, eb)) != ERR_OK || (rc = remove_if_there(shm, eb)) != ERR_OK)
        goto out;
    if (rename(copy, db_path) != 0) {
        rc = err_set(eb, ERR_IO, "cannot rename %s to %s: %s", copy, db_path, err_strerror(errno));
        goto out;
    }
    info->replaced = have_db;
    rc = sync_file_and_dir(db_path, eb);
out:
    if (cur != NULL) {
        sqlite3_exec(cur, "ROLLBACK", NULL, NULL, NULL);
        sqlite3_close(cur);
    }
    if (rc != ERR_OK) {
        unlink(copy);
        unlink(cwal);
        unlink(cshm);
    }
    free(copy);
    free(keep);
    free(wal);
    free(shm);
    free(cwal);
    free(cshm);
    return rc;
}
