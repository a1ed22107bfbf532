/* sqlite_reconcile.c - SQLite: the statements of a tenant's reconcile (reconcile.c decides), its
 * group commit and the retirement preview (sqlite_int.h). */
#include "sqlite_int.h"

#include "reconcile.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "buf.h"
#include "clock.h"
#include "hash.h"
#include "log.h"
#include "mem.h"
#include "serialset.h"

/* ---- reconcile --------------------------------------------------------------------------- */

/* Undoes the tenant's work: its savepoint inside a batch, else its transaction. */
static void
rec_undo(struct sq *s)
{
    if (sqlite3_get_autocommit(s->db)) {
        /* nothing left to undo (SQLite ends the transaction on some errors) */
    } else if (s->rec_sp) {
        sqlite3_exec(s->db, "ROLLBACK TO tenant; RELEASE tenant", NULL, NULL, NULL);
    } else {
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    }
    s->rec_sp = 0;
}

/* Before a sync's first write transaction on this connection: the sync's cache and checkpoint
 * settings, and foreign keys off. Leaves fk_keep set: the caller clears it once its
 * transaction is open (fk_settle would switch them back on before the BEGIN). */
static int
sync_conn_setup(struct sq *s, struct errbuf *eb)
{
    int rc = ERR_OK;

    if (!s->rec_tuned) {
        /* Only a connection that syncs: an 8 MiB page cache instead of 2 (the tenant's index
         * pages stay in memory instead of being read back), fewer checkpoints (each one
         * fdatasyncs), temporary b-trees in memory. Peak RSS of the reference MSP's full sync
         * stays under 50 MiB. */
        rc = sq_exec_sql(s,
                         "PRAGMA cache_size = -8192; PRAGMA wal_autocheckpoint = 10000; "
                         "PRAGMA temp_store = MEMORY",
                         eb, "configuring the connection for a sync");
        if (rc != ERR_OK)
            return rc;
        s->rec_tuned = 1;
    }
    /* Foreign keys are not checked inside the tenant's transaction (PRAGMA foreign_keys is a
     * no-op inside one, so it is switched here, and back by fk_settle). What it writes refers
     * only to rows it has read or written itself under its write lock: the integration and its
     * account (check_integration), the client (upserted below), assets and titles (inserted or
     * looked up by id in the transaction), and it deletes nothing, so no cascade is missed.
     * Checking cost three parent lookups per install and per device. */
    s->fk_keep = 1;
    if (!s->fk_off) {
        rc =
            sq_exec_sql(s, "PRAGMA foreign_keys = OFF", eb, "configuring the tenant's transaction");
        if (rc == ERR_OK)
            s->fk_off = 1;
    }
    if (rc != ERR_OK)
        s->fk_keep = 0;
    return rc;
}

/* The title's id, from this transaction's map or one upsert. */
/* name US version US publisher US platform, in s->title_key (no allocation once it is big
 * enough: most installs are of a title the map already holds). */
static const char *
title_key(struct sq *s, const struct app_ref *a, size_t *keylen)
{
    const char *parts[4] = {a->name, a->version ? a->version : "", a->publisher ? a->publisher : "",
                            a->platform ? a->platform : ""};
    size_t len[4], need = 0, off = 0;

    for (int k = 0; k < 4; k++)
        need += (len[k] = strlen(parts[k])) + 1;
    if (need > s->title_key_cap) {
        s->title_key_cap = need * 2;
        s->title_key = xrealloc(s->title_key, s->title_key_cap);
    }
    for (int k = 0; k < 4; k++) {
        memcpy(s->title_key + off, parts[k], len[k]);
        off += len[k];
        s->title_key[off++] = k < 3 ? '\x1f' : '\0';
    }
    *keylen = off - 1;
    return s->title_key;
}

static void
bind_title(const struct sq *s, sqlite3_stmt *st, const struct app_ref *a)
{
    sqlite3_bind_int64(st, 1, s->base.rec.account);
    sqlite3_bind_int64(st, 2, s->base.rec.client);
    sq_bind_text(st, 3, a->name);
    sq_bind_text(st, 4, a->version != NULL ? a->version : "");
    sq_bind_text(st, 5, a->publisher != NULL ? a->publisher : "");
    sq_bind_text(st, 6, a->platform != NULL ? a->platform : "");
    if (a->size_bytes < 0)
        sqlite3_bind_null(st, 7);
    else
        sqlite3_bind_int64(st, 7, a->size_bytes);
}

static int
title_id(struct sq *s, const struct app_ref *a, int64_t *out, struct errbuf *eb)
{
    sqlite3_stmt *st = NULL;
    size_t keylen;
    const char *lookup = title_key(s, a, &keylen);
    uint64_t h = hash_bytes(lookup, keylen);
    char *key;
    size_t mask, i;
    int rc, src;

    if (s->ntitle_slots > 0) {
        mask = s->ntitle_slots - 1;
        for (i = h & mask; s->title_slots[i] != 0; i = (i + 1) & mask) {
            if (strcmp(s->title_keys[s->title_slots[i] - 1], lookup) == 0) {
                *out = s->title_ids[s->title_slots[i] - 1];
                return ERR_OK;
            }
        }
    }
    key = xstrdup(lookup);
    rc = ERR_EXISTS;
    if (s->base.rec.fresh) {
        /* A tenant's first sync has no titles yet: a plain INSERT, without the upsert's
         * conflict branch and RETURNING table (four fifths of its cost). */
        rc = sq_prep(s, S_TITLE_INS,
                     "INSERT INTO software_title (account_id, client_id, name, version, publisher, "
                     "platform, size_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                     &st, eb);
        if (rc == ERR_OK) {
            bind_title(s, st, a);
            src = sqlite3_step(st);
            if (src == SQLITE_DONE)
                *out = sqlite3_last_insert_rowid(s->db);
            else if (sqlite3_extended_errcode(s->db) == SQLITE_CONSTRAINT_UNIQUE)
                rc = ERR_EXISTS; /* there after all: the upsert below finds it */
            else
                rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "saving a software title");
            sq_done(st);
        }
    }
    if (rc == ERR_EXISTS) {
        rc = sq_prep(s, S_TITLE_UPSERT,
                     "INSERT INTO software_title (account_id, client_id, name, version, publisher, "
                     "platform, size_bytes) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) "
                     "ON CONFLICT (client_id, name, version, publisher, platform) DO UPDATE SET "
                     "size_bytes = COALESCE(excluded.size_bytes, software_title.size_bytes) "
                     "RETURNING id",
                     &st, eb);
        if (rc == ERR_OK) {
            bind_title(s, st, a);
            src = sqlite3_step(st);
            if (src == SQLITE_ROW)
                *out = sqlite3_column_int64(st, 0);
            else
                rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "saving a software title");
            sq_done(st);
        }
    }
    if (rc != ERR_OK) {
        free(key);
        return rc;
    }
    if ((s->ntitles + 1) * 2 > s->ntitle_slots) {
        size_t ns = s->ntitle_slots ? s->ntitle_slots * 2 : 1024;

        free(s->title_slots);
        s->title_slots = xcalloc(ns, sizeof *s->title_slots);
        s->ntitle_slots = ns;
        for (size_t k = 0; k < s->ntitles; k++) {
            for (i = hash_bytes(s->title_keys[k], strlen(s->title_keys[k])) & (ns - 1);
                 s->title_slots[i] != 0; i = (i + 1) & (ns - 1))
                ;
            s->title_slots[i] = (uint32_t)k + 1;
        }
    }
    if (s->ntitles == s->captitles) {
        s->captitles = s->captitles ? s->captitles * 2 : 256;
        s->title_keys = xrealloc(s->title_keys, s->captitles * sizeof *s->title_keys);
        s->title_ids = xrealloc(s->title_ids, s->captitles * sizeof *s->title_ids);
    }
    mask = s->ntitle_slots - 1;
    for (i = h & mask; s->title_slots[i] != 0; i = (i + 1) & mask)
        ;
    s->title_keys[s->ntitles] = key;
    s->title_ids[s->ntitles] = *out;
    s->title_slots[i] = (uint32_t)++s->ntitles;
    return ERR_OK;
}

/* INSERT statements for 1, 2, 4, ... 32 installs of one asset (S_INST_INS + k holds 2^k rows). */
#define INST_BATCH_LOG 5
_Static_assert(S_INST_INS_32 == S_INST_INS + INST_BATCH_LOG, "one statement per batch size");

/* New installs of one asset, as few INSERTs as the binary decomposition of n allows (a device's
 * 26 new installs are 3 statements, not a 16-row one and 10 single rows): the statement
 * overhead (bind, step, halt, reset) is paid per statement, not per row. */
static int
insert_installs(struct store *base, int64_t asset_id, const int64_t *titles, size_t n,
                struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    size_t i = 0;
    int rc = ERR_OK;

    for (int k = INST_BATCH_LOG; rc == ERR_OK && k >= 0; k--) {
        size_t rows = (size_t)1 << k;

        while (rc == ERR_OK && n - i >= rows) {
            if (s->stmt[S_INST_INS + k] == NULL) {
                struct buf b;

                buf_init(&b, 4096);
                /* OR ROLLBACK: a violation (impossible: only titles the asset lacks come
                 * here) ends the transaction (with a batch, every tenant in it, which the sync
                 * then reports failed) instead of needing a statement journal. */
                buf_addstr(&b, "INSERT OR ROLLBACK INTO software_install (account_id, asset_id, "
                               "title_id, first_seen_at, last_seen_at, removed_at, last_seen_gen) "
                               "VALUES ");
                for (size_t r = 0; r < rows; r++)
                    buf_printf(&b, "%s(?1, ?2, ?%zu, ?3, ?3, NULL, ?4)", r ? ", " : "", r + 5);
                rc = sq_prep(s, S_INST_INS + k, buf_cstr(&b), &st, eb);
                buf_free(&b);
                if (rc != ERR_OK)
                    break;
            }
            st = s->stmt[S_INST_INS + k];
            sqlite3_bind_int64(st, 1, base->rec.account);
            sqlite3_bind_int64(st, 2, asset_id);
            sqlite3_bind_int64(st, 3, base->rec.now);
            sqlite3_bind_int64(st, 4, base->rec.gen);
            for (size_t r = 0; r < rows; r++)
                sqlite3_bind_int64(st, (int)r + 5, titles[i + r]);
            rc = sq_step_done(s, st, eb, rows > 1 ? "saving installs" : "saving an install");
            i += rows;
        }
    }
    return rc;
}

/* ---- the statements of reconcile.c ------------------------------------------------------ */

static int
rec_begin(struct store *base, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    int rc;

    if (s->batch && sqlite3_get_autocommit(s->db))
        return err_set(eb, ERR_DB,
                       "the sync's transaction was ended by an earlier error; "
                       "store_batch_commit reports it");
    if (base->rec.active || (!s->batch && !sqlite3_get_autocommit(s->db)))
        return err_set(eb, ERR_INVAL, "a transaction is already open on this store");
    if (s->batch) {
        rc = sq_exec_sql(s, "SAVEPOINT tenant", eb, "starting the tenant's transaction");
        if (rc == ERR_OK)
            s->rec_sp = 1;
        return rc;
    }
    rc = sync_conn_setup(s, eb);
    if (rc != ERR_OK)
        return rc;
    rc = sq_exec_sql(s, "BEGIN IMMEDIATE", eb, "starting the tenant's transaction");
    s->fk_keep = 0;
    return rc;
}

static void
rec_undo_op(struct store *base)
{
    rec_undo((struct sq *)base);
}

static void
rec_rollback(struct store *base)
{
    struct sq *s = (struct sq *)base;

    if (s->rec_sp || !s->batch)
        rec_undo(s);
}

static int
rec_commit(struct store *base, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    int rc;

    if (!s->rec_sp)
        return sq_exec_sql(s, "COMMIT", eb, "committing the tenant");
    rc = sq_exec_sql(s, "RELEASE tenant", eb, "committing the tenant");
    if (rc == ERR_OK)
        s->rec_sp = 0;
    return rc;
}

static int
rec_tx_alive(struct store *base)
{
    return !sqlite3_get_autocommit(((struct sq *)base)->db);
}

static void
rec_reset(struct store *base)
{
    struct sq *s = (struct sq *)base;

    for (size_t i = 0; i < s->ntitles; i++)
        free(s->title_keys[i]);
    XFREE(s->title_keys);
    XFREE(s->title_ids);
    XFREE(s->title_slots);
    s->ntitles = s->captitles = s->ntitle_slots = 0;
}

static int
rec_integration_owned(struct store *base, int64_t account_id, int64_t integration_id,
                      struct errbuf *eb)
{
    return sq_check_integration((struct sq *)base, account_id, integration_id, eb);
}

static int
rec_client_upsert(struct store *base, int64_t account_id, int64_t integration_id,
                  const struct client_info *ci, int64_t now, int64_t *client, int64_t *gen,
                  struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc, src;

    /* The generation grows past the data version, which every client write bumps: a client
     * id reused after a deletion never sees a generation its predecessor had, so (client,
     * generation) names the state of its assets for good (the list rows' dev_stamp). */
    rc = sq_prep(s, S_CLIENT_BEGIN,
                 "INSERT INTO client (account_id, integration_id, tenant_id, name, default_domain, "
                 "source, sync_gen, created_at, updated_at) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, COALESCE(?6, 'partner_center'), "
                 "(SELECT v FROM data_version WHERE id = 1) + 1, ?7, ?7) "
                 "ON CONFLICT (integration_id, tenant_id) DO UPDATE SET "
                 "name = COALESCE(excluded.name, client.name), "
                 "default_domain = COALESCE(excluded.default_domain, client.default_domain), "
                 "source = COALESCE(?6, client.source), "
                 "sync_gen = max(client.sync_gen, (SELECT v FROM data_version WHERE id = 1)) + 1, "
                 "updated_at = excluded.updated_at RETURNING id, sync_gen",
                 &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, account_id);
    sqlite3_bind_int64(st, 2, integration_id);
    sq_bind_text(st, 3, ci->tenant_id);
    sq_bind_text(st, 4, ci->name);
    sq_bind_text(st, 5, ci->default_domain);
    sq_bind_text(st, 6, ci->source);
    sqlite3_bind_int64(st, 7, now);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *client = sqlite3_column_int64(st, 0);
        *gen = sqlite3_column_int64(st, 1);
    } else {
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "saving the client");
    }
    sq_done(st);
    return rc;
}

static int
rec_tenant_empty(struct store *base, int64_t integration_id, const char *tenant_id, int *empty,
                 struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sq_prep(s, S_ASSET_ANY,
                 "SELECT EXISTS (SELECT 1 FROM hardware_asset WHERE integration_id = ?1 AND "
                 "tenant_id = ?2)",
                 &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, integration_id);
    sq_bind_text(st, 2, tenant_id);
    if (sqlite3_step(st) == SQLITE_ROW)
        *empty = sqlite3_column_int(st, 0) == 0;
    else
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "looking up the tenant's devices");
    sq_done(st);
    return rc;
}

static int
rec_device_find(struct store *base, const char *intune_id, int *found, int64_t *id,
                int64_t *retired, struct device *old, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc, src;

    rc = sq_prep(s, S_ASSET_FIND, s->dsql.find, &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, base->rec.integration);
    sq_bind_text(st, 2, base->rec.tenant);
    sq_bind_text(st, 3, intune_id);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *found = 1;
        *id = sqlite3_column_int64(st, 0);
        *retired = sq_col_ts(st, 1);
        sq_read_device(st, 2, old);
    } else if (src != SQLITE_DONE) {
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "looking up the device");
    }
    sq_done(st);
    return rc;
}

static int
rec_device_insert(struct store *base, const struct device *d, const char *key, int64_t *id,
                  struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    const struct reconcile *r = &base->rec;
    sqlite3_stmt *st = NULL;
    int n = (int)device_field_count;
    int rc = sq_prep(s, S_ASSET_INS, s->dsql.ins, &st, eb);

    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, r->account);
    sqlite3_bind_int64(st, 2, r->client);
    sqlite3_bind_int64(st, 3, r->integration);
    sq_bind_text(st, 4, r->tenant);
    sq_bind_text(st, 5, d->intune_id);
    sq_bind_device(st, 6, d);
    sq_bind_text(st, 6 + n, key);
    sqlite3_bind_int64(st, 7 + n, r->now);
    sqlite3_bind_int64(st, 8 + n, r->gen);
    rc = sq_step_done(s, st, eb, "saving a new device");
    *id = sqlite3_last_insert_rowid(s->db);
    return rc;
}

static int
rec_device_touch(struct store *base, int64_t id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sq_prep(s, S_ASSET_TOUCH,
                 "UPDATE hardware_asset SET last_synced_at = ?1, last_seen_gen = ?2 WHERE id = ?3",
                 &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, base->rec.now);
    sqlite3_bind_int64(st, 2, base->rec.gen);
    sqlite3_bind_int64(st, 3, id);
    return sq_step_done(s, st, eb, "touching a device");
}

static int
rec_device_update(struct store *base, int64_t id, const struct device *d, const char *key,
                  struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int n = (int)device_field_count;
    int rc;

    rc = sq_prep(s, S_ASSET_UPD, s->dsql.upd, &st, eb);
    if (rc != ERR_OK)
        return rc;
    sq_bind_device(st, 1, d);
    sq_bind_text(st, n + 1, key);
    sqlite3_bind_int64(st, n + 2, base->rec.now);
    sqlite3_bind_int64(st, n + 3, base->rec.gen);
    sqlite3_bind_int64(st, n + 4, base->rec.client);
    sqlite3_bind_int64(st, n + 5, id);
    return sq_step_done(s, st, eb, "updating a device");
}

static int
rec_change_insert(struct store *base, int64_t asset_id, const char *field, const char *oldv,
                  const char *newv, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sq_prep(s, S_CHANGE_INS,
                 "INSERT INTO asset_change (account_id, asset_id, at, field, old_value, new_value) "
                 "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                 &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, base->rec.account);
    sqlite3_bind_int64(st, 2, asset_id);
    sqlite3_bind_int64(st, 3, base->rec.now);
    sq_bind_text(st, 4, field);
    sq_bind_text(st, 5, oldv);
    sq_bind_text(st, 6, newv);
    return sq_step_done(s, st, eb, "recording the asset history");
}

static int
rec_asset_find(struct store *base, const char *intune_id, int64_t *id, int *active,
               struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc, src;

    rc = sq_prep(s, S_ASSET_ID,
                 "SELECT id, retired_at IS NULL FROM hardware_asset WHERE integration_id = ?1 "
                 "AND tenant_id = ?2 AND intune_device_id = ?3",
                 &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, base->rec.integration);
    sq_bind_text(st, 2, base->rec.tenant);
    sq_bind_text(st, 3, intune_id);
    src = sqlite3_step(st);
    if (src == SQLITE_ROW) {
        *id = sqlite3_column_int64(st, 0);
        *active = sqlite3_column_int(st, 1);
    } else if (src == SQLITE_DONE)
        rc = ERR_NOTFOUND;
    else
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "looking up the device");
    sq_done(st);
    return rc;
}

static int
rec_installs_each(struct store *base, int64_t asset_id,
                  void (*cb)(void *arg, int64_t title, int removed), void *arg, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc, src;

    rc =
        sq_prep(s, S_INST_FIND,
                "SELECT title_id, removed_at IS NOT NULL FROM software_install WHERE asset_id = ?1",
                &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, asset_id);
    while ((src = sqlite3_step(st)) == SQLITE_ROW)
        cb(arg, sqlite3_column_int64(st, 0), sqlite3_column_int(st, 1));
    if (src != SQLITE_DONE)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading a device's installs");
    sq_done(st);
    return rc;
}

static int
rec_title_id(struct store *base, const struct app_ref *a, int64_t *id, struct errbuf *eb)
{
    return title_id((struct sq *)base, a, id, eb);
}

static int
rec_install_revive(struct store *base, int64_t asset_id, int64_t title, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sq_prep(s, S_INST_UPD,
                 "UPDATE software_install SET removed_at = NULL, last_seen_at = ?1, "
                 "last_seen_gen = ?2 WHERE asset_id = ?3 AND title_id = ?4",
                 &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, base->rec.now);
    sqlite3_bind_int64(st, 2, base->rec.gen);
    sqlite3_bind_int64(st, 3, asset_id);
    sqlite3_bind_int64(st, 4, title);
    return sq_step_done(s, st, eb, "reviving an install");
}

static int
rec_install_remove(struct store *base, int64_t asset_id, int64_t title, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sq_prep(s, S_INST_REMOVE,
                 "UPDATE software_install SET removed_at = ?1, last_seen_at = ?1 "
                 "WHERE asset_id = ?2 AND title_id = ?3",
                 &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, base->rec.now);
    sqlite3_bind_int64(st, 2, asset_id);
    sqlite3_bind_int64(st, 3, title);
    return sq_step_done(s, st, eb, "marking a removed install");
}

static int
rec_missing_clear(struct store *base, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    rc =
        sq_prep(s, S_MISSING_CLEAR,
                "UPDATE hardware_asset INDEXED BY hardware_asset_missing SET missing_since = NULL, "
                "missing_syncs = 0 WHERE client_id = ?1 AND missing_since IS NOT NULL AND "
                "retired_at IS NULL AND last_seen_gen = ?2",
                &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, base->rec.client);
    sqlite3_bind_int64(st, 2, base->rec.gen);
    return sq_step_done(s, st, eb, "clearing missing marks");
}

static int
rec_missing_mark(struct store *base, int64_t *n, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sq_prep(s, S_MISSING_MARK,
                 "UPDATE hardware_asset SET missing_since = COALESCE(missing_since, ?1), "
                 "missing_syncs = missing_syncs + 1 WHERE client_id = ?2 "
                 "AND retired_at IS NULL AND last_seen_gen < ?3",
                 &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, base->rec.now);
    sqlite3_bind_int64(st, 2, base->rec.client);
    sqlite3_bind_int64(st, 3, base->rec.gen);
    rc = sq_step_done(s, st, eb, "marking missing devices");
    if (rc == ERR_OK)
        *n = sqlite3_changes(s->db);
    return rc;
}

static int
rec_retire(struct store *base, int64_t *n, int64_t **gone, size_t *ngone, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    size_t capgone = 0;
    int rc, src;

    /* Every candidate was marked just now or before: only marked devices are read. */
    rc = sq_prep(
        s, S_RETIRE,
        "UPDATE hardware_asset INDEXED BY hardware_asset_missing SET retired_at = ?1, "
        "updated_at = ?1 WHERE client_id = ?2 AND missing_since IS NOT NULL AND retired_at IS NULL "
        "AND last_seen_gen < ?3 AND missing_syncs >= ?4 AND missing_since <= ?5 "
        "RETURNING id",
        &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, base->rec.now);
    sqlite3_bind_int64(st, 2, base->rec.client);
    sqlite3_bind_int64(st, 3, base->rec.gen);
    sqlite3_bind_int64(st, 4, base->rec_policy.after_syncs);
    sqlite3_bind_int64(st, 5, base->rec.now - base->rec_policy.after_s);
    while ((src = sqlite3_step(st)) == SQLITE_ROW) {
        if (*ngone == capgone) {
            capgone = capgone ? capgone * 2 : 64;
            *gone = xrealloc(*gone, capgone * sizeof **gone);
        }
        (*gone)[(*ngone)++] = sqlite3_column_int64(st, 0);
    }
    if (src != SQLITE_DONE)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "retiring missing devices");
    sq_done(st);
    *n = (int64_t)*ngone;
    return rc;
}

static int
rec_asset_titles(struct store *base, int64_t asset_id, void (*cb)(void *arg, int64_t title),
                 void *arg, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc, src;

    rc = sq_prep(s, S_ASSET_TITLES,
                 "SELECT title_id FROM software_install WHERE asset_id = ?1 AND removed_at IS NULL",
                 &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, asset_id);
    while ((src = sqlite3_step(st)) == SQLITE_ROW)
        cb(arg, sqlite3_column_int64(st, 0));
    if (src != SQLITE_DONE)
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "reading a device's installs");
    sq_done(st);
    return rc;
}

/* Applies the reconcile's title deltas: counted as installs change, not recounted. */
static int
rec_titles_count(struct store *base, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    const struct reconcile *r = &base->rec;
    sqlite3_stmt *st = NULL;
    int rc = ERR_OK;

    for (size_t k = 0; rc == ERR_OK && k < r->ndelta_slots; k++) {
        if (r->delta[k].id == 0 || r->delta[k].d == 0)
            continue;
        rc = sq_prep(s, S_TITLE_COUNT,
                     "UPDATE software_title SET device_count = device_count + ?2 WHERE id = ?1",
                     &st, eb);
        if (rc != ERR_OK)
            break;
        sqlite3_bind_int64(st, 1, r->delta[k].id);
        sqlite3_bind_int64(st, 2, r->delta[k].d);
        rc = sq_step_done(s, st, eb, "counting a title's devices");
    }
    return rc;
}

static int
rec_client_ok(struct store *base, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sq_prep(s, S_CLIENT_OK,
                 "UPDATE client SET status = 'ok', error_code = NULL, error_message = NULL, "
                 "error_remedy = NULL, error_request_id = NULL, error_date = NULL, "
                 "last_sync_at = ?2, updated_at = ?2, "
                 "device_count = (SELECT count(*) FROM hardware_asset "
                 " WHERE client_id = ?1 AND retired_at IS NULL), "
                 "software_count = (SELECT count(*) FROM software_title "
                 " WHERE client_id = ?1 AND device_count > 0), "
                 "warning_code = ?3, warning_message = ?4, warning_remedy = ?5 "
                 "WHERE id = ?1",
                 &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, base->rec.client);
    sqlite3_bind_int64(st, 2, base->rec.now);
    sq_bind_text(st, 3, base->rec_warn_code);
    sq_bind_text(st, 4, base->rec_warn_message);
    sq_bind_text(st, 5, base->rec_warn_remedy);
    return sq_step_done(s, st, eb, "updating the client");
}

/* ---- change feed (schema 15): one writer at a time, so the rowid is the commit order ---- */

static int
rec_event_insert(struct store *base, const char *kind, int64_t asset_id, int64_t title_id,
                 const char *field, const char *oldv, const char *newv, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sq_prep(s, S_EVENT_INS,
                 "INSERT INTO change_event (account_id, client_id, asset_id, title_id, at, kind, "
                 "field, old_value, new_value) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
                 &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, base->rec.account);
    sqlite3_bind_int64(st, 2, base->rec.client);
    if (asset_id != 0)
        sqlite3_bind_int64(st, 3, asset_id);
    if (title_id != 0)
        sqlite3_bind_int64(st, 4, title_id);
    sqlite3_bind_int64(st, 5, base->rec.now);
    sq_bind_text(st, 6, kind);
    sq_bind_text(st, 7, field);
    sq_bind_text(st, 8, oldv);
    sq_bind_text(st, 9, newv);
    return sq_step_done(s, st, eb, "recording a change");
}

static int
rec_asset_updated(struct store *base, int64_t asset_id, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sq_prep(s, S_ASSET_UPDATED, "UPDATE hardware_asset SET updated_at = ?1 WHERE id = ?2", &st,
                 eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, base->rec.now);
    sqlite3_bind_int64(st, 2, asset_id);
    return sq_step_done(s, st, eb, "recording when a device changed");
}

static int
rec_client_status(struct store *base, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc;

    rc = sq_prep(s, S_CLIENT_STATUS_EV,
                 "INSERT INTO change_event (account_id, client_id, at, kind, field, old_value, "
                 "new_value) SELECT account_id, id, ?2, 'client.status', 'status', status, 'ok' "
                 "FROM client WHERE id = ?1 AND status <> 'ok'",
                 &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, base->rec.client);
    sqlite3_bind_int64(st, 2, base->rec.now);
    return sq_step_done(s, st, eb, "recording the client's status change");
}

const struct reconcile_ops sq_reconcile_ops = {
    .begin = rec_begin,
    .undo = rec_undo_op,
    .rollback = rec_rollback,
    .commit = rec_commit,
    .tx_alive = rec_tx_alive,
    .reset = rec_reset,
    .integration_owned = rec_integration_owned,
    .client_upsert = rec_client_upsert,
    .tenant_empty = rec_tenant_empty,
    .device_find = rec_device_find,
    .device_insert = rec_device_insert,
    .device_touch = rec_device_touch,
    .device_update = rec_device_update,
    .change_insert = rec_change_insert,
    .event_insert = rec_event_insert,
    .asset_updated = rec_asset_updated,
    .client_status = rec_client_status,
    .asset_find = rec_asset_find,
    .installs_each = rec_installs_each,
    .title_id = rec_title_id,
    .installs_insert = insert_installs,
    .install_revive = rec_install_revive,
    .install_remove = rec_install_remove,
    .missing_clear = rec_missing_clear,
    .missing_mark = rec_missing_mark,
    .retire = rec_retire,
    .titles_count = rec_titles_count,
    .client_ok = rec_client_ok,
    .title_deltas = 1,
    .asset_titles = rec_asset_titles,
};

int
sq_retire_preview(struct store *base, int64_t *would_retire, int64_t *active, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    sqlite3_stmt *st = NULL;
    int rc = reconcile_need(base, 1, eb);

    if (rc != ERR_OK)
        return rc;
    /* Once the marks advance, a device can retire only if it is marked already, unless one
     * listing without waiting is the policy: otherwise only the client's few marked devices
     * (hardware_asset_missing) are read, and the active ones are counted from an index. */
    if (base->rec_policy.after_syncs <= 1 && base->rec_policy.after_s <= 0)
        rc = sq_prep(s, S_RETIRE_PREVIEW_ALL,
                     "SELECT count(*), COALESCE(sum(last_seen_gen < ?2), 0) FROM hardware_asset "
                     "WHERE client_id = ?1 AND retired_at IS NULL",
                     &st, eb);
    else
        rc = sq_prep(s, S_RETIRE_PREVIEW,
                     "SELECT (SELECT count(*) FROM hardware_asset WHERE client_id = ?1 AND "
                     "retired_at IS NULL), (SELECT count(*) FROM hardware_asset INDEXED BY "
                     "hardware_asset_missing WHERE client_id = ?1 AND missing_since IS NOT NULL "
                     "AND retired_at IS NULL AND last_seen_gen < ?2 AND missing_syncs + 1 >= ?3 "
                     "AND missing_since <= ?4 - ?5)",
                     &st, eb);
    if (rc != ERR_OK)
        return rc;
    sqlite3_bind_int64(st, 1, base->rec.client);
    sqlite3_bind_int64(st, 2, base->rec.gen);
    if (!(base->rec_policy.after_syncs <= 1 && base->rec_policy.after_s <= 0)) {
        sqlite3_bind_int64(st, 3, base->rec_policy.after_syncs);
        sqlite3_bind_int64(st, 4, base->rec.now);
        sqlite3_bind_int64(st, 5, base->rec_policy.after_s);
    }
    if (sqlite3_step(st) == SQLITE_ROW) {
        *active = sqlite3_column_int64(st, 0);
        *would_retire = sqlite3_column_int64(st, 1);
    } else {
        rc = sq_db_err(s, sqlite3_extended_errcode(s->db), eb, "counting devices to retire");
    }
    sq_done(st);
    return rc;
}

int
sq_batch_begin(struct store *base, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    int rc;

    if (s->batch || base->rec.active || !sqlite3_get_autocommit(s->db))
        return err_set(eb, ERR_INVAL, "a transaction is already open on this store");
    rc = sync_conn_setup(s, eb);
    if (rc != ERR_OK)
        return rc;
    rc = sq_exec_sql(s, "BEGIN IMMEDIATE", eb, "starting the sync's transaction");
    s->fk_keep = 0;
    if (rc == ERR_OK)
        s->batch = 1;
    return rc;
}

int
sq_batch_commit(struct store *base, struct errbuf *eb)
{
    struct sq *s = (struct sq *)base;
    int rc;

    if (!s->batch)
        return ERR_OK;
    s->batch = 0;
    if (base->rec.active) { /* a caller's bug: keep nothing rather than half a tenant */
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
        s->rec_sp = 0;
        reconcile_reset(base);
        return err_set(eb, ERR_INVAL, "a tenant's transaction was still open in the batch");
    }
    if (sqlite3_get_autocommit(s->db))
        return err_set(eb, ERR_DB,
                       "the database ended the transaction after an error, so the tenants "
                       "saved since the last commit were not");
    rc = sq_exec_sql(s, "COMMIT", eb, "committing the synced tenants");
    if (rc != ERR_OK)
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return rc;
}
