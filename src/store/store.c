/* store.c - what every backend shares except the reconcile: dispatch to the backend's
 * store_ops with the argument checks, the process-wide count cache, the device diff and serial
 * key, the generic lists' entities and the SQL built from them, and the generated device SQL.
 * The tenant reconcile's logic is reconcile.c, reached through the backends' store_ops. */
#include "store_int.h"

#include "buf.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "clock.h"
#include "cloud.h"
#include "flight.h"
#include "mem.h"
#include "utf8.h"

static void
rec_warning_clear(struct store *st)
{
    XFREE(st->rec_warn_code);
    XFREE(st->rec_warn_message);
    XFREE(st->rec_warn_remedy);
}

int
store_open(struct store **out, const char *url, struct errbuf *eb)
{
    int rc;

    ASSERT(out != NULL);
    *out = NULL;
    if (url == NULL || url[0] == '\0')
        return err_set(eb, ERR_INVAL, "no database given; pass a SQLite file path with --db");
    if (strncmp(url, "postgresql://", 13) == 0 || strncmp(url, "postgres://", 11) == 0)
        rc = store_pg_open(out, url, eb);
    else
        rc = store_sqlite_open(out, url, eb);
    if (rc == ERR_OK)
        (*out)->cache_id = xstrdup(url);
    return rc;
}

int
store_open_peer(const struct store *st, struct store **out, struct errbuf *eb)
{
    *out = NULL;
    if (st->cache_id == NULL || strcmp(st->cache_id, ":memory:") == 0)
        return err_set(eb, ERR_UNSUPPORTED, "an in-memory database has no second connection");
    return store_open(out, st->cache_id, eb);
}

void
store_close(struct store *st)
{
    if (st == NULL)
        return;
    free(st->cache_id);
    st->cache_id = NULL;
    rec_warning_clear(st);
    st->ops->close(st);
}

const char *
store_backend(const struct store *st)
{
    return st->ops->name;
}

int
store_tx_begin(struct store *st, struct errbuf *eb)
{
    return st->ops->tx_begin(st, eb);
}

int
store_tx_commit(struct store *st, struct errbuf *eb)
{
    return st->ops->tx_commit(st, eb);
}

void
store_tx_rollback(struct store *st)
{
    st->ops->tx_rollback(st);
}

int
store_account_ensure(struct store *st, const char *name, int64_t *account_id, struct errbuf *eb)
{
    if (name == NULL || name[0] == '\0')
        return err_set(eb, ERR_INVAL, "account name is empty");
    return st->ops->account_ensure(st, name, account_id, eb);
}

void
integration_clear(struct integration *in)
{
    if (in == NULL)
        return;
    free(in->name);
    free(in->partner_tenant_id);
    free(in->partner_app_id);
    free(in->sync_app_id);
    free(in->partner_secret_sealed);
    free(in->sync_secret_sealed);
    free(in->partner_secret_hint);
    free(in->sync_secret_hint);
    free(in->tenant_source);
    free(in->cloud);
    free(in->partner_secret_expiry_source);
    free(in->sync_secret_expiry_source);
    memset(in, 0, sizeof *in);
    in->partner_secret_expires = TS_NULL;
    in->sync_secret_expires = TS_NULL;
}

int
store_integration_insert(struct store *st, struct integration *in, struct errbuf *eb)
{
    if (in->name == NULL || in->partner_tenant_id == NULL || in->partner_app_id == NULL ||
        in->sync_app_id == NULL)
        return err_set(eb, ERR_INVAL,
                       "an integration needs a name, partner tenant id, partner app id and sync "
                       "app id");
    if (in->tenant_source != NULL && strcmp(in->tenant_source, "partner_center") != 0 &&
        strcmp(in->tenant_source, "contracts") != 0 && strcmp(in->tenant_source, "gdap") != 0)
        return err_set(eb, ERR_INVAL,
                       "tenant source \"%s\" is not one of partner_center, contracts, gdap",
                       in->tenant_source);
    if (in->cloud != NULL && cloud_find(in->cloud) == NULL)
        return err_set(eb, ERR_INVAL, "cloud \"%s\" is not one of %s", in->cloud, CLOUD_NAMES);
    return st->ops->integration_insert(st, in, eb);
}

int
store_integration_get(struct store *st, int64_t account_id, int64_t id, struct integration *out,
                      struct errbuf *eb)
{
    return st->ops->integration_get(st, account_id, id, out, eb);
}

int
store_integration_list(struct store *st, int64_t account_id, struct integration **out, size_t *n,
                       struct errbuf *eb)
{
    return st->ops->integration_list(st, account_id, out, n, eb);
}

int
store_integration_set_secret(struct store *st, int64_t id, const char *which, const char *sealed,
                             const char *hint, int64_t expires, struct errbuf *eb)
{
    if (which == NULL || (strcmp(which, "partner") != 0 && strcmp(which, "sync") != 0))
        return err_set(eb, ERR_INVAL, "secret kind must be \"partner\" or \"sync\"");
    return st->ops->integration_set_secret(st, id, which, sealed, hint, expires, eb);
}

int
store_integration_set_expiry(struct store *st, int64_t id, const char *which, int64_t expires,
                             const char *source, struct errbuf *eb)
{
    if (which == NULL || (strcmp(which, "partner") != 0 && strcmp(which, "sync") != 0))
        return err_set(eb, ERR_INVAL, "secret kind must be \"partner\" or \"sync\"");
    if (source != NULL && strcmp(source, "microsoft") != 0)
        return err_set(eb, ERR_INVAL, "expiry source must be \"microsoft\" or none");
    return st->ops->integration_set_expiry(st, id, which, expires, source, eb);
}

int
store_integration_delete(struct store *st, int64_t account_id, int64_t id, struct errbuf *eb)
{
    return st->ops->integration_delete(st, account_id, id, eb);
}

void
client_row_clear(struct client_row *c)
{
    if (c == NULL)
        return;
    free(c->tenant_id);
    free(c->name);
    free(c->default_domain);
    free(c->source);
    free(c->status);
    free(c->error_code);
    free(c->error_message);
    free(c->error_remedy);
    free(c->error_request_id);
    free(c->error_date);
    free(c->warning_code);
    free(c->warning_message);
    free(c->warning_remedy);
    memset(c, 0, sizeof *c);
    c->last_sync_at = TS_NULL;
}

int
store_clients_each(struct store *st, int64_t account_id,
                   int (*cb)(void *arg, const struct client_row *c), void *arg, struct errbuf *eb)
{
    return st->ops->clients_each(st, account_id, cb, arg, eb);
}

static int
check_client_info(const struct client_info *ci, struct errbuf *eb)
{
    if (ci == NULL || ci->tenant_id == NULL || ci->tenant_id[0] == '\0')
        return err_set(eb, ERR_INVAL, "client has no tenant id");
    return ERR_OK;
}

int
store_client_fail(struct store *st, int64_t account_id, int64_t integration_id,
                  const struct client_info *ci, const char *code, const char *message,
                  const char *remedy, struct errbuf *eb)
{
    int rc = check_client_info(ci, eb);

    if (rc != ERR_OK)
        return rc;
    return st->ops->client_fail(st, account_id, integration_id, ci, code, message, remedy, eb);
}

int
store_client_update(struct store *st, int64_t account_id, const char *client, int included,
                    const char *name_override, struct errbuf *eb)
{
    if (client == NULL || client[0] == '\0')
        return err_set(eb, ERR_INVAL, "no client given");
    if (included < -1 || included > 1)
        return err_set(eb, ERR_INVAL, "included must be 0 or 1");
    return st->ops->client_update(st, account_id, client, included, name_override, eb);
}

int
store_reconcile_begin(struct store *st, int64_t account_id, int64_t integration_id,
                      const struct client_info *ci, int64_t now, struct errbuf *eb)
{
    int rc = check_client_info(ci, eb);

    if (rc != ERR_OK)
        return rc;
    rec_warning_clear(st);
    st->rec_policy.after_syncs = RETIRE_AFTER_SYNCS_DEFAULT;
    st->rec_policy.after_s = RETIRE_AFTER_S_DEFAULT;
    st->rec_policy.hold = 0;
    return st->ops->reconcile_begin(st, account_id, integration_id, ci, now, eb);
}

int
store_reconcile_policy(struct store *st, const struct retire_policy *p, struct errbuf *eb)
{
    if (p == NULL || p->after_syncs < 1 || p->after_s < 0)
        return err_set(eb, ERR_INVAL,
                       "a retirement policy needs at least one sync and no "
                       "negative time");
    st->rec_policy = *p;
    return ERR_OK;
}

int
store_reconcile_retire_preview(struct store *st, int64_t *would_retire, int64_t *active,
                               struct errbuf *eb)
{
    *would_retire = 0;
    *active = 0;
    return st->ops->retire_preview(st, would_retire, active, eb);
}

#define REC_WARNING_MAX 4096

int
store_reconcile_warning(struct store *st, const char *code, const char *message, const char *remedy,
                        struct errbuf *eb)
{
    const char *v[3] = {code, message, remedy};

    for (int i = 0; i < 3; i++)
        if (v[i] != NULL && strlen(v[i]) > REC_WARNING_MAX)
            return err_set(eb, ERR_INVAL, "a client warning has at most %d bytes per part",
                           REC_WARNING_MAX);
    rec_warning_clear(st);
    if (code == NULL)
        return ERR_OK;
    st->rec_warn_code = xstrdup(code);
    st->rec_warn_message = message != NULL ? xstrdup(message) : NULL;
    st->rec_warn_remedy = remedy != NULL ? xstrdup(remedy) : NULL;
    return ERR_OK;
}

int
store_reconcile_device(struct store *st, const struct device *d, struct errbuf *eb)
{
    if (d == NULL || d->intune_id == NULL || d->intune_id[0] == '\0')
        return err_set(eb, ERR_INVAL, "device has no Intune id");
    return st->ops->reconcile_device(st, d, eb);
}

int
store_reconcile_installs(struct store *st, const char *intune_device_id, const struct app_ref *apps,
                         size_t n, struct errbuf *eb)
{
    if (intune_device_id == NULL)
        return err_set(eb, ERR_INVAL, "installs without an Intune device id");
    for (size_t i = 0; i < n; i++)
        if (apps[i].name == NULL || apps[i].name[0] == '\0')
            return err_set(eb, ERR_INVAL, "software on device %s has no name", intune_device_id);
    return st->ops->reconcile_installs(st, intune_device_id, apps, n, eb);
}

int
store_reconcile_commit(struct store *st, int listing_complete, int installs_complete,
                       struct reconcile_counts *counts, struct errbuf *eb)
{
    int rc = st->ops->reconcile_commit(st, listing_complete, installs_complete, counts, eb);

    rec_warning_clear(st);
    return rc;
}

void
store_reconcile_rollback(struct store *st)
{
    st->ops->reconcile_rollback(st);
    rec_warning_clear(st);
}

int
store_batch_begin(struct store *st, struct errbuf *eb)
{
    int rc;

    if (st->ops->batch_begin == NULL)
        return 0;
    rc = st->ops->batch_begin(st, eb);
    return rc == ERR_OK ? 1 : rc;
}

int
store_batch_commit(struct store *st, struct errbuf *eb)
{
    return st->ops->batch_commit != NULL ? st->ops->batch_commit(st, eb) : ERR_OK;
}

int
store_assets_each(struct store *st, const struct asset_query *q,
                  int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb)
{
    return st->ops->assets_each(st, q, cb, arg, eb);
}

int
store_device_checkins(struct store *st, int64_t integration_id, const char *tenant_id,
                      int (*cb)(void *arg, const char *intune_id, int64_t last_check_in_at,
                                int retired),
                      void *arg, struct errbuf *eb)
{
    return st->ops->device_checkins(st, integration_id, tenant_id, cb, arg, eb);
}

int
store_map_reads(struct store *st, struct errbuf *eb)
{
    return st->ops->map_reads != NULL ? st->ops->map_reads(st, eb) : ERR_OK;
}

int
store_search_index(struct store *st, int max_rows, int64_t *indexed, struct errbuf *eb)
{
    *indexed = 0;
    if (max_rows < 1)
        return err_set(eb, ERR_INVAL, "a search index batch needs at least one row");
    if (st->ops->search_index == NULL)
        return ERR_OK;
    return st->ops->search_index(st, max_rows, indexed, eb);
}

int
store_data_version(struct store *st, int64_t *out, struct errbuf *eb)
{
    return st->ops->data_version(st, out, eb);
}

/* ---- hardware count cache ------------------------------------------------------------------
 * Set-associative, least recently used replaced within a set: a direct-mapped table let two
 * lists whose keys collide evict each other on every request (6 recounts, 16 % of the CPU of
 * the benchmark's 331 rotated pages). Never grows past its slots. */

#define COUNT_WAYS    8
#define COUNT_SETS    128
#define COUNT_KEY_MAX 4096

static pthread_mutex_t count_mu = PTHREAD_MUTEX_INITIALIZER;
static uint64_t count_tick; /* under count_mu */
static struct {
    char *key;
    int64_t version;
    int64_t count;
    uint64_t used; /* count_tick of the last hit or fill */
} count_slots[COUNT_SETS][COUNT_WAYS];

static int
key_str(struct buf *b, const char *s)
{
    /* Length-prefixed so no two different queries share a key. */
    if (s == NULL)
        return buf_addstr(b, "-;");
    return buf_printf(b, "%zu:%s;", strlen(s), s);
}

static int
filter_cmp(const void *a, const void *b)
{
    const struct store_filter *x = *(const struct store_filter *const *)a;
    const struct store_filter *y = *(const struct store_filter *const *)b;
    int c = strcmp(x->field, y->field);

    if (c == 0)
        c = strcmp(x->op != NULL ? x->op : "", y->op != NULL ? y->op : "");
    if (c == 0)
        c = strcmp(x->value != NULL ? x->value : "", y->value != NULL ? y->value : "");
    return c;
}

/* Appends the filters in a canonical order (sorted), so the same conditions share a key. */
static int
key_filters(struct buf *b, const struct store_filter *filters, size_t n)
{
    const struct store_filter *fs[STORE_LIST_MAX_FILTERS];
    int bad = 0;

    if (n > STORE_LIST_MAX_FILTERS)
        return ERR_INVAL;
    for (size_t i = 0; i < n; i++)
        fs[i] = &filters[i];
    if (n > 1)
        qsort(fs, n, sizeof fs[0], filter_cmp);
    for (size_t i = 0; i < n; i++) {
        bad |= key_str(b, fs[i]->field) != ERR_OK;
        bad |= key_str(b, fs[i]->op) != ERR_OK;
        bad |= key_str(b, fs[i]->value) != ERR_OK;
    }
    return bad ? ERR_TOOBIG : ERR_OK;
}

/* Ends a count key with the search and the filters; the key, or NULL (and b freed) when any
 * part did not fit. */
static char *
key_finish(struct buf *b, int bad, const char *search, const struct store_filter *filters,
           size_t nfilters)
{
    bad |= key_str(b, search != NULL && search[0] != '\0' ? search : NULL) != ERR_OK;
    bad |= key_filters(b, filters, nfilters) != ERR_OK;
    if (bad) {
        buf_free(b);
        return NULL;
    }
    return buf_detach(b, NULL);
}

/* The conditions of q in a canonical order (filters sorted, paging and sorts left out);
 * NULL when the key would be too long to keep. */
static char *
count_key(const struct store *st, const struct asset_query *q)
{
    struct buf b;
    int bad = 0;

    if (st->cache_id == NULL)
        return NULL;
    buf_init(&b, COUNT_KEY_MAX);
    bad |= key_str(&b, st->cache_id) != ERR_OK;
    bad |= buf_printf(&b, "%" PRId64 ";%d;", q->account_id, q->include_retired ? 1 : 0) != ERR_OK;
    bad |= key_str(&b, q->client) != ERR_OK;
    return key_finish(&b, bad, q->search, q->filters, q->nfilters);
}

/* Generic lists whose rows change only with a client or integration write (which bumps the
 * data version): their counts may be cached. Sync runs, users and keys change without one. */
static int
list_follows_version(const char *entity)
{
    static const char *const lists[] = {"clients",        "software", "software_devices",
                                        "asset_software", "installs", "installs_all",
                                        "asset_changes"};

    for (size_t i = 0; i < sizeof lists / sizeof lists[0]; i++)
        if (strcmp(entity, lists[i]) == 0)
            return 1;
    return 0;
}

/* A generic list's count key: a prefix no hardware key has ('L' where the account stands). */
static char *
list_count_key(const struct store *st, const struct list_query *q)
{
    struct buf b;
    int bad = 0;

    if (st->cache_id == NULL || q->entity == NULL || !list_follows_version(q->entity))
        return NULL;
    buf_init(&b, COUNT_KEY_MAX);
    bad |= key_str(&b, st->cache_id) != ERR_OK;
    bad |= buf_printf(&b, "L;%" PRId64 ";%" PRId64 ";", q->account_id, q->parent_id) != ERR_OK;
    bad |= key_str(&b, q->entity) != ERR_OK;
    return key_finish(&b, bad, q->search, q->filters, q->nfilters);
}

static size_t
count_set(const char *key)
{
    uint64_t h = 1469598103934665603ULL;

    for (const unsigned char *p = (const unsigned char *)key; *p != '\0'; p++)
        h = (h ^ *p) * 1099511628211ULL;
    return (size_t)(h % COUNT_SETS);
}

/* The way of set holding key, else -1. Under count_mu. */
static int
count_way(size_t set, const char *key)
{
    for (int i = 0; i < COUNT_WAYS; i++)
        if (count_slots[set][i].key != NULL && strcmp(count_slots[set][i].key, key) == 0)
            return i;
    return -1;
}

/* Single flight: the keys being counted now, so that the requests arriving together after a
 * commit count once; the others wait up to COUNT_WAIT_S for that count. */
#define COUNT_PENDING 16
#define COUNT_WAIT_S  60
static struct flight count_flight = FLIGHT_INIT(COUNT_PENDING);
static uint64_t count_computed, count_hits; /* under count_mu */

/* The count cached under key at version, else -1. Under count_mu. */
static int64_t
count_cached(size_t set, const char *key, int64_t version)
{
    int w = count_way(set, key);

    if (w < 0 || count_slots[set][w].version != version)
        return -1;
    count_slots[set][w].used = ++count_tick;
    count_hits++;
    return count_slots[set][w].count;
}

/* The count cached under key at version, or the one another thread is counting now (waited
 * for); else -1, and the caller counts. *turn is then the caller's flight ticket (end it with
 * count_finish), or -1 when it counts alone (every slot taken, or the wait ran out). */
static int64_t
count_lookup(const char *key, int64_t version, int *turn)
{
    size_t set = count_set(key);
    struct flight_result res;
    struct buf fk;
    enum flight_role role;
    int64_t n;

    *turn = -1;
    pthread_mutex_lock(&count_mu);
    n = count_cached(set, key, version);
    pthread_mutex_unlock(&count_mu);
    if (n >= 0)
        return n;
    buf_init(&fk, FLIGHT_KEY_MAX);
    buf_printf(&fk, "%" PRId64 ";%s", version, key);
    role = flight_begin(&count_flight, buf_cstr(&fk), fk.len, (int64_t)COUNT_WAIT_S * 1000, &res,
                        turn);
    buf_free(&fk);
    pthread_mutex_lock(&count_mu);
    if (role == FLIGHT_RESULT) {
        n = res.value;
        count_hits++;
    } else if (role == FLIGHT_LEADER && (n = count_cached(set, key, version)) >= 0) {
        /* A flight ended between the miss and this one: hand its count on. */
        pthread_mutex_unlock(&count_mu);
        flight_finish(&count_flight, *turn, 1, n, NULL, 0);
        *turn = -1;
        return n;
    } else {
        count_computed++;
    }
    pthread_mutex_unlock(&count_mu);
    free(res.bytes);
    return n;
}

static void count_remember(char *key, int64_t version, int64_t n);

/* After the backend counted n (negative: failed) for a count_lookup miss: caches it under key
 * (taken; NULL: nothing to cache) and ends the turn, handing n to the waiters. */
static void
count_finish(char *key, int64_t version, int64_t n, int turn)
{
    if (key != NULL && n >= 0)
        count_remember(key, version, n);
    else
        free(key);
    flight_finish(&count_flight, turn, n >= 0, n, NULL, 0);
}

void
store_count_stats(uint64_t *computed, uint64_t *hits)
{
    pthread_mutex_lock(&count_mu);
    *computed = count_computed;
    *hits = count_hits;
    pthread_mutex_unlock(&count_mu);
}

/* Caches n under key (taken) at version. */
static void
count_remember(char *key, int64_t version, int64_t n)
{
    size_t set = count_set(key);
    int w;

    pthread_mutex_lock(&count_mu);
    w = count_way(set, key);
    if (w < 0) { /* an empty way, else the least recently used */
        w = 0;
        for (int i = 1; i < COUNT_WAYS && count_slots[set][w].key != NULL; i++)
            if (count_slots[set][i].key == NULL ||
                count_slots[set][i].used < count_slots[set][w].used)
                w = i;
    }
    free(count_slots[set][w].key);
    count_slots[set][w].key = key;
    count_slots[set][w].version = version;
    count_slots[set][w].count = n;
    count_slots[set][w].used = ++count_tick;
    pthread_mutex_unlock(&count_mu);
}

int64_t
store_assets_count(struct store *st, const struct asset_query *q, struct errbuf *eb)
{
    int64_t version = 0, n;
    char *key = NULL;
    int turn = -1;

    /* The version is read before counting: a write committed in between makes the entry
     * look older than it is (a recount later), never newer. */
    if (st->ops->data_version(st, &version, NULL) == ERR_OK)
        key = count_key(st, q);
    if (key != NULL && (n = count_lookup(key, version, &turn)) >= 0) {
        free(key);
        return n;
    }
    n = st->ops->assets_count(st, q, eb);
    count_finish(key, version, n, turn);
    return n;
}

int
store_software_each(struct store *st, const struct software_query *q,
                    int (*cb)(void *arg, const struct software_row *s), void *arg,
                    struct errbuf *eb)
{
    return st->ops->software_each(st, q, cb, arg, eb);
}

int
store_asset_changes_each(struct store *st, int64_t account_id, int64_t asset_id,
                         int (*cb)(void *arg, const struct asset_change_row *c), void *arg,
                         struct errbuf *eb)
{
    return st->ops->asset_changes_each(st, account_id, asset_id, cb, arg, eb);
}

static const char *const change_kinds[] = {STORE_CHANGE_KINDS};

int
store_change_kind_known(const char *kind)
{
    for (size_t i = 0; kind != NULL && i < sizeof change_kinds / sizeof change_kinds[0]; i++)
        if (strcmp(kind, change_kinds[i]) == 0)
            return 1;
    return 0;
}

void
store_changes_sql(struct buf *sql, char p, const struct change_query *q)
{
    int n = 4;

    buf_printf(sql,
               "SELECT e.seq, e.at, e.kind, e.client_id, COALESCE(c.name_override, c.name), "
               "c.tenant_id, e.asset_id, h.intune_device_id, h.name, h.serial_number, e.title_id, "
               "t.name, t.version, t.publisher, e.field, e.old_value, e.new_value, e.account_id "
               "FROM change_event e LEFT JOIN client c ON c.id = e.client_id "
               "LEFT JOIN hardware_asset h ON h.id = e.asset_id "
               "LEFT JOIN software_title t ON t.id = e.title_id "
               "WHERE %s%c1 AND e.seq > %c2",
               q->account_id != 0 ? "e.account_id = " : "0 = ", p, p);
    /* Always bound (0 without a client): PostgreSQL types every parameter up to the last. */
    if (q->client_id != 0)
        buf_printf(sql, " AND e.client_id = %c%d", p, n++);
    else
        buf_printf(sql, " AND %c%d = 0", p, n++);
    for (size_t i = 0; i < q->nkinds; i++)
        buf_printf(sql, "%s%c%d", i == 0 ? " AND e.kind IN (" : ", ", p, n++);
    if (q->nkinds > 0)
        buf_addstr(sql, ")");
    buf_printf(sql, " ORDER BY e.seq LIMIT %c3", p);
}

int
store_changes_each(struct store *st, const struct change_query *q,
                   int (*cb)(void *arg, const struct change_row *c), void *arg, int64_t *head,
                   struct errbuf *eb)
{
    if (q->limit < 1 || q->limit > STORE_CHANGES_MAX || q->after_seq < 0 || q->account_id < 0 ||
        q->nkinds > STORE_CHANGE_KIND_COUNT)
        return err_set(eb, ERR_INVAL, "change query out of range");
    for (size_t i = 0; i < q->nkinds; i++)
        if (!store_change_kind_known(q->kinds[i]))
            return err_set(eb, ERR_INVAL, "unknown change kind");
    if (st->ops->changes_each == NULL)
        return err_set(eb, ERR_INVAL, "this database has no change feed");
    return st->ops->changes_each(st, q, cb, arg, head, eb);
}

void
sync_job_clear(struct sync_job *j)
{
    if (j == NULL)
        return;
    customer_clear(&j->cust);
    memset(j, 0, sizeof *j);
}

static int
no_jobs(const struct store *st, struct errbuf *eb)
{
    return err_set(eb, ERR_UNSUPPORTED,
                   "sync jobs for `memsync worker` need a PostgreSQL database (--db "
                   "postgresql://...); this one is %s, where `memsync serve` or `memsync sync` "
                   "run the syncs themselves",
                   st->ops->name);
}

int
store_job_enqueue(struct store *st, int64_t integration_id, int full, int64_t now, int64_t *run_id,
                  struct errbuf *eb)
{
    if (st->ops->job_enqueue == NULL)
        return no_jobs(st, eb);
    return st->ops->job_enqueue(st, integration_id, full, NULL, now, run_id, eb);
}

int
store_job_enqueue_tenant(struct store *st, int64_t integration_id, const struct customer *tenant,
                         int64_t now, int64_t *run_id, struct errbuf *eb)
{
    if (tenant == NULL || tenant->tenant_id == NULL)
        return err_set(eb, ERR_INVAL, "no tenant to queue");
    if (st->ops->job_enqueue == NULL)
        return no_jobs(st, eb);
    return st->ops->job_enqueue(st, integration_id, 1, tenant, now, run_id, eb);
}

int
store_job_lease(struct store *st, const char *worker, int lease_s, int64_t now,
                struct sync_job *out, int64_t *busy, struct errbuf *eb)
{
    memset(out, 0, sizeof *out);
    *busy = 0;
    if (st->ops->job_lease == NULL)
        return no_jobs(st, eb);
    if (worker == NULL || worker[0] == '\0' || lease_s < 1)
        return err_set(eb, ERR_INVAL, "a job lease needs a worker name and a duration");
    return st->ops->job_lease(st, worker, lease_s, now, out, busy, eb);
}

int
store_job_renew(struct store *st, const struct sync_job *j, const char *worker, int lease_s,
                struct errbuf *eb)
{
    if (st->ops->job_renew == NULL)
        return no_jobs(st, eb);
    return st->ops->job_renew(st, j, worker, lease_s, eb);
}

int
store_job_expand(struct store *st, const struct sync_job *j, const char *worker,
                 const struct customer *c, size_t n, int64_t now, struct errbuf *eb)
{
    if (st->ops->job_expand == NULL)
        return no_jobs(st, eb);
    if (j->cust.tenant_id != NULL)
        return err_set(eb, ERR_INVAL, "only a discovery job queues tenant jobs");
    return st->ops->job_expand(st, j, worker, c, n, now, eb);
}

int
store_job_finish(struct store *st, const struct sync_job *j, const char *worker, int ok,
                 const char *message, int64_t now, struct errbuf *eb)
{
    if (st->ops->job_finish == NULL)
        return no_jobs(st, eb);
    return st->ops->job_finish(st, j, worker, ok, message, now, eb);
}

int
store_job_release(struct store *st, const struct sync_job *j, const char *worker, struct errbuf *eb)
{
    if (st->ops->job_release == NULL)
        return no_jobs(st, eb);
    return st->ops->job_release(st, j, worker, eb);
}

int
store_job_unfinished(struct store *st, int64_t run_id, size_t max,
                     int (*cb)(void *arg, const char *tenant_id, const char *name, int leased,
                               int64_t elapsed_s),
                     void *arg, size_t *n, struct errbuf *eb)
{
    *n = 0;
    if (st->ops->job_unfinished == NULL)
        return no_jobs(st, eb);
    return st->ops->job_unfinished(st, run_id, max, cb, arg, n, eb);
}

int
store_run_start(struct store *st, int64_t integration_id, const char *kind, int64_t now,
                int64_t *run_id, struct errbuf *eb)
{
    if (kind == NULL || (strcmp(kind, "full") != 0 && strcmp(kind, "incremental") != 0))
        return err_set(eb, ERR_INVAL, "sync kind must be \"full\" or \"incremental\"");
    return st->ops->run_start(st, integration_id, kind, now, run_id, eb);
}

int
store_run_tenant(struct store *st, int64_t run_id, const struct tenant_result *r, struct errbuf *eb)
{
    if (r == NULL || r->tenant_id == NULL || r->status == NULL)
        return err_set(eb, ERR_INVAL, "tenant result needs a tenant id and a status");
    return st->ops->run_tenant(st, run_id, r, eb);
}

int
store_run_finish(struct store *st, int64_t run_id, const char *status, const char *message,
                 int64_t now, struct errbuf *eb)
{
    static const char *const ok[] = {"ok", "partial", "failed", "interrupted"};
    size_t i;

    for (i = 0; status != NULL && i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(status, ok[i]) == 0)
            break;
    if (status == NULL || i == sizeof ok / sizeof ok[0])
        return err_set(eb, ERR_INVAL, "sync run status must be ok, partial, failed or interrupted");
    return st->ops->run_finish(st, run_id, status, message, now, eb);
}

/* ---- shared helpers ------------------------------------------------------------------- */

char *
store_device_field_text(const struct device *d, const struct device_field *f)
{
    const char *base = (const char *)d + f->offset;
    char ts[32];

    switch (f->kind) {
    case DF_STR:
        return xstrdup(*(char *const *)(const void *)base);
    case DF_INT64: {
        int64_t v = *(const int64_t *)(const void *)base;
        return v < 0 ? NULL : xasprintf("%" PRId64, v);
    }
    case DF_BOOL: {
        int v = *(const int *)(const void *)base;
        return v < 0 ? NULL : xstrdup(v ? "true" : "false");
    }
    case DF_TS: {
        int64_t v = *(const int64_t *)(const void *)base;
        if (v == TS_NULL)
            return NULL;
        clock_fmt(v, ts, sizeof ts);
        return xstrdup(ts);
    }
    case DF_TYPE:
        return xstrdup(device_type_name(*(const enum device_type *)(const void *)base));
    }
    return NULL;
}

int
store_device_field_volatile(const char *name)
{
    static const char *const volatile_fields[] = {"last_check_in_at", "storage_free_bytes"};

    for (size_t i = 0; name != NULL && i < sizeof volatile_fields / sizeof volatile_fields[0]; i++)
        if (strcmp(name, volatile_fields[i]) == 0)
            return 1;
    return 0;
}

static int
text_equal(const char *a, const char *b)
{
    if (a == NULL || b == NULL)
        return a == b;
    return strcmp(a, b) == 0;
}

int
store_device_diff(const struct device *old, const struct device *new_,
                  int (*cb)(void *arg, const char *field, const char *oldv, const char *newv),
                  void *arg)
{
    int n = 0;

    for (size_t i = 0; i < device_field_count; i++) {
        const struct device_field *f = &device_fields[i];
        char *a = store_device_field_text(old, f);
        char *b = store_device_field_text(new_, f);
        int rc = 0;

        if (!text_equal(a, b)) {
            n++;
            if (cb != NULL)
                rc = cb(arg, f->name, a, b);
        }
        free(a);
        free(b);
        if (rc != 0)
            return rc;
    }
    return n;
}

char *
store_trigram_query(const char *text)
{
    const unsigned char *t = (const unsigned char *)text;
    size_t starts[256], nch = 0, len = 0, all;
    struct buf b;

    if (text == NULL)
        return NULL;
    all = strlen(text);
    while (len < all) {
        size_t n = utf8_char_len(t + len, all - len);

        if (n == 0 || nch >= sizeof starts / sizeof starts[0])
            return NULL;
        starts[nch++] = len;
        len += n;
    }
    if (nch < 3)
        return NULL;
    buf_init(&b, 64 * 1024);
    for (size_t i = 0; i + 3 <= nch; i++) {
        size_t end = i + 3 < nch ? starts[i + 3] : len;

        if (i > 0)
            buf_addstr(&b, " AND ");
        buf_addc(&b, '"');
        for (size_t k = starts[i]; k < end; k++) {
            if (t[k] == '"')
                buf_addc(&b, '"');
            buf_addc(&b, (char)t[k]);
        }
        buf_addc(&b, '"');
    }
    return buf_detach(&b, NULL);
}

char *
store_serial_key(const char *serial)
{
    size_t start = 0, end;
    char *k;

    if (serial == NULL)
        return NULL;
    end = strlen(serial);
    while (start < end && isspace((unsigned char)serial[start]))
        start++;
    while (end > start && isspace((unsigned char)serial[end - 1]))
        end--;
    if (end == start)
        return NULL;
    k = xstrndup(serial + start, end - start);
    for (char *p = k; *p != '\0'; p++)
        *p = (char)toupper((unsigned char)*p);
    return k;
}

/* ---- web: users, sessions, API keys, lists ----------------------------------------------- */

void
user_row_clear(struct user_row *u)
{
    if (u == NULL)
        return;
    free(u->name);
    free(u->role);
    free(u->password_hash);
    memset(u, 0, sizeof *u);
}

int
store_user_insert(struct store *st, int64_t account_id, const char *name, const char *role,
                  const char *password_hash, int64_t *id, struct errbuf *eb)
{
    if (name == NULL || name[0] == '\0' || strlen(name) > 128)
        return err_set(eb, ERR_INVAL, "a user name must have 1 to 128 characters");
    if (role == NULL || (strcmp(role, "admin") != 0 && strcmp(role, "viewer") != 0))
        return err_set(eb, ERR_INVAL, "a user's role must be admin or viewer");
    return st->ops->user_insert(st, account_id, name, role, password_hash, id, eb);
}

int
store_user_get(struct store *st, const char *name, struct user_row *out, struct errbuf *eb)
{
    memset(out, 0, sizeof *out);
    return st->ops->user_get(st, name, out, eb);
}

int
store_user_set_password(struct store *st, int64_t id, const char *password_hash, struct errbuf *eb)
{
    return st->ops->user_set_password(st, id, password_hash, eb);
}

int
store_user_delete(struct store *st, int64_t id, struct errbuf *eb)
{
    return st->ops->user_delete(st, id, eb);
}

int64_t
store_user_count(struct store *st, struct errbuf *eb)
{
    return st->ops->user_count(st, eb);
}

int
store_session_insert(struct store *st, const char *token_hash, int64_t user_id, int64_t expires_at,
                     struct errbuf *eb)
{
    return st->ops->session_insert(st, token_hash, user_id, expires_at, eb);
}

int
store_session_user(struct store *st, const char *token_hash, int64_t now, struct user_row *out,
                   struct errbuf *eb)
{
    memset(out, 0, sizeof *out);
    return st->ops->session_user(st, token_hash, now, out, eb);
}

int
store_session_delete(struct store *st, const char *token_hash, struct errbuf *eb)
{
    return st->ops->session_delete(st, token_hash, eb);
}

int
store_apikey_insert(struct store *st, int64_t account_id, const char *name, const char *scope,
                    const char *key_hash, const char *prefix, int64_t expires_at, int64_t *id,
                    struct errbuf *eb)
{
    if (scope == NULL || (strcmp(scope, "read") != 0 && strcmp(scope, "admin") != 0))
        return err_set(eb, ERR_INVAL, "an API key's scope must be read or admin");
    return st->ops->apikey_insert(st, account_id, name, scope, key_hash, prefix, expires_at, id,
                                  eb);
}

int
store_apikey_find(struct store *st, const char *key_hash, int64_t *account_id, int64_t *id,
                  char **scope, int64_t *expires_at, int64_t *last_used_at, struct errbuf *eb)
{
    *scope = NULL;
    *expires_at = TS_NULL;
    *last_used_at = TS_NULL;
    return st->ops->apikey_find(st, key_hash, account_id, id, scope, expires_at, last_used_at, eb);
}

int
store_pref_get(struct store *st, int64_t user_id, const char *key, char **value, struct errbuf *eb)
{
    *value = NULL;
    if (strlen(key) > STORE_PREF_MAX)
        return err_set(eb, ERR_INVAL, "a preference's name is at most %d bytes", STORE_PREF_MAX);
    return st->ops->pref_get(st, user_id, key, value, eb);
}

int
store_pref_set(struct store *st, int64_t user_id, const char *key, const char *value,
               struct errbuf *eb)
{
    if (strlen(key) > STORE_PREF_MAX || strlen(value) > STORE_PREF_MAX)
        return err_set(eb, ERR_INVAL, "a preference is at most %d bytes", STORE_PREF_MAX);
    return st->ops->pref_set(st, user_id, key, value, eb);
}

int
store_apikey_touch(struct store *st, int64_t id, int64_t now, struct errbuf *eb)
{
    return st->ops->apikey_touch(st, id, now, eb);
}

int
store_apikey_revoke(struct store *st, int64_t account_id, int64_t id, struct errbuf *eb)
{
    return st->ops->apikey_revoke(st, account_id, id, eb);
}

/* ---- second factor (migration 13) ------------------------------------------------------- */

void
user_totp_clear(struct user_totp *t)
{
    if (t == NULL)
        return;
    free(t->secret_sealed);
    for (size_t i = 0; i < t->ncodes && i < STORE_RECOVERY_MAX; i++)
        free(t->code_hash[i]);
    memset(t, 0, sizeof *t);
}

int
store_totp_get(struct store *st, int64_t user_id, struct user_totp *out, struct errbuf *eb)
{
    int rc;

    memset(out, 0, sizeof *out);
    out->enrolled_at = TS_NULL;
    out->last_step = -1;
    if ((rc = st->ops->totp_get(st, user_id, out, eb)) != ERR_OK)
        user_totp_clear(out);
    return rc;
}

int
store_totp_begin(struct store *st, int64_t user_id, const char *sealed, struct errbuf *eb)
{
    if (sealed == NULL || sealed[0] == '\0')
        return err_set(eb, ERR_INVAL, "no sealed TOTP secret");
    return st->ops->totp_begin(st, user_id, sealed, eb);
}

int
store_totp_enrol(struct store *st, int64_t user_id, int64_t step, int64_t now,
                 const char *const *hashes, size_t n, struct errbuf *eb)
{
    if (n > STORE_RECOVERY_MAX || (n > 0 && hashes == NULL) || step < 0)
        return err_set(eb, ERR_INVAL, "bad TOTP enrolment (%zu recovery codes)", n);
    return st->ops->totp_enrol(st, user_id, step, now, hashes, n, eb);
}

int
store_totp_use_step(struct store *st, int64_t user_id, int64_t step, struct errbuf *eb)
{
    return st->ops->totp_use_step(st, user_id, step, eb);
}

int
store_totp_recovery_use(struct store *st, int64_t user_id, int64_t code_id, int64_t now,
                        struct errbuf *eb)
{
    return st->ops->totp_recovery_use(st, user_id, code_id, now, eb);
}

int
store_totp_clear(struct store *st, int64_t user_id, struct errbuf *eb)
{
    return st->ops->totp_clear(st, user_id, eb);
}

int
store_totp_secrets_each(struct store *st, int (*cb)(void *arg, int64_t user_id, const char *sealed),
                        void *arg, struct errbuf *eb)
{
    return st->ops->totp_secrets_each(st, cb, arg, eb);
}

int
store_totp_set_sealed(struct store *st, int64_t user_id, const char *sealed, struct errbuf *eb)
{
    if (sealed == NULL || sealed[0] == '\0')
        return err_set(eb, ERR_INVAL, "no sealed TOTP secret");
    return st->ops->totp_set_sealed(st, user_id, sealed, eb);
}

int
store_account_require_totp(struct store *st, int64_t account_id, int on, struct errbuf *eb)
{
    return st->ops->account_require_totp(st, account_id, on != 0, eb);
}

int
store_integration_update(struct store *st, int64_t account_id, int64_t id, const char *name,
                         int64_t sync_interval, int64_t partner_expires, int64_t sync_expires,
                         struct errbuf *eb)
{
    if (name != NULL && (name[0] == '\0' || strlen(name) > 200))
        return err_set(eb, ERR_INVAL, "an integration name must have 1 to 200 characters");
    if (sync_interval != 0 && (sync_interval < 300 || sync_interval > 7 * 86400))
        return err_set(eb, ERR_INVAL, "the sync interval must be between 5 minutes and 7 days");
    return st->ops->integration_update(st, account_id, id, name, sync_interval, partner_expires,
                                       sync_expires, eb);
}

int
store_list_each(struct store *st, const struct list_query *q,
                int (*cb)(void *arg, const struct store_cell *cells, size_t n), void *arg,
                struct errbuf *eb)
{
    if (q->nfilters > STORE_LIST_MAX_FILTERS || q->nsorts > STORE_LIST_MAX_SORTS)
        return err_set(eb, ERR_INVAL, "too many filters or sort fields");
    return st->ops->list_each(st, q, cb, arg, eb);
}

int64_t
store_list_count(struct store *st, const struct list_query *q, struct errbuf *eb)
{
    int64_t version = 0, n;
    char *key = NULL;
    int turn = -1;

    if (q->nfilters > STORE_LIST_MAX_FILTERS || q->nsorts > STORE_LIST_MAX_SORTS)
        return err_set(eb, ERR_INVAL, "too many filters or sort fields");
    /* As store_assets_count: the version first, so an entry can only look older than it is. */
    if (st->ops->data_version != NULL && st->ops->data_version(st, &version, NULL) == ERR_OK)
        key = list_count_key(st, q);
    if (key != NULL && (n = count_lookup(key, version, &turn)) >= 0) {
        free(key);
        return n;
    }
    n = st->ops->list_count(st, q, eb);
    count_finish(key, version, n, turn);
    return n;
}

int
store_asset_get(struct store *st, int64_t account_id, int64_t id,
                int (*cb)(void *arg, const struct asset *a), void *arg, struct errbuf *eb)
{
    return st->ops->asset_get(st, account_id, id, cb, arg, eb);
}

/* ---- generic lists: entities and the SQL every backend builds from them ------------------ */

#define LF(n, e, k)                                                                                \
    {                                                                                              \
        n, e, k                                                                                    \
    }

static const struct store_list_field hardware_fields[] = {
    LF("id", "h.id", SC_INT),
    LF("client.id", "h.client_id", SC_INT),
    LF("client.name", "COALESCE(c.name_override, c.name)", SC_TEXT),
    LF("client.tenant_id", "c.tenant_id", SC_TEXT),
    LF("client.included", "c.included", SC_BOOL),
    LF("source.integration_id", "h.integration_id", SC_INT),
    LF("source.intune_device_id", "h.intune_device_id", SC_TEXT),
    LF("source.azure_ad_device_id", "h.azure_ad_device_id", SC_TEXT),
    LF("name", "h.name", SC_TEXT),
    LF("serial_number", "h.serial_number", SC_TEXT),
    LF("manufacturer", "h.manufacturer", SC_TEXT),
    LF("model", "h.model", SC_TEXT),
    LF("type", "h.type", SC_TEXT),
    LF("operating_system.name", "h.os_name", SC_TEXT),
    LF("operating_system.version", "h.os_version", SC_TEXT),
    LF("user.principal_name", "h.user_principal_name", SC_TEXT),
    LF("user.display_name", "h.user_display_name", SC_TEXT),
    LF("user.email", "h.user_email", SC_TEXT),
    LF("ownership", "h.ownership", SC_TEXT),
    LF("compliance_state", "h.compliance_state", SC_TEXT),
    LF("management_state", "h.management_state", SC_TEXT),
    LF("enrollment_type", "h.enrollment_type", SC_TEXT),
    LF("is_encrypted", "h.is_encrypted", SC_BOOL),
    LF("is_supervised", "h.is_supervised", SC_BOOL),
    LF("storage.total_bytes", "h.storage_total_bytes", SC_INT),
    LF("storage.free_bytes", "h.storage_free_bytes", SC_INT),
    LF("memory_bytes", "h.memory_bytes", SC_INT),
    LF("wifi_mac", "h.wifi_mac", SC_TEXT),
    LF("ethernet_mac", "h.ethernet_mac", SC_TEXT),
    LF("imei", "h.imei", SC_TEXT),
    LF("meid", "h.meid", SC_TEXT),
    LF("phone_number", "h.phone_number", SC_TEXT),
    LF("enrolled_at", "h.enrolled_at", SC_TS),
    LF("last_check_in_at", "h.last_check_in_at", SC_TS),
    LF("first_synced_at", "h.first_synced_at", SC_TS),
    LF("last_synced_at", "h.last_synced_at", SC_TS),
    LF("retired_at", "h.retired_at", SC_TS),
    LF("missing_since", "h.missing_since", SC_TS),
    LF("updated_at", "h.updated_at", SC_TS),
    {NULL, NULL, SC_NULL},
};

static const struct store_list_field client_fields[] = {
    LF("id", "c.id", SC_INT),
    LF("integration_id", "c.integration_id", SC_INT),
    LF("tenant_id", "c.tenant_id", SC_TEXT),
    LF("name", "COALESCE(c.name_override, c.name)", SC_TEXT),
    LF("default_domain", "c.default_domain", SC_TEXT),
    LF("source", "c.source", SC_TEXT),
    LF("included", "c.included", SC_BOOL),
    LF("status", "c.status", SC_TEXT),
    LF("last_sync_at", "c.last_sync_at", SC_TS),
    LF("error.code", "c.error_code", SC_TEXT),
    LF("error.message", "c.error_message", SC_TEXT),
    LF("error.remedy", "c.error_remedy", SC_TEXT),
    LF("error.request_id", "c.error_request_id", SC_TEXT),
    LF("error.date", "c.error_date", SC_TEXT),
    LF("device_count", "c.device_count", SC_INT),
    LF("software_count", "c.software_count", SC_INT),
    LF("warning.code", "c.warning_code", SC_TEXT),
    LF("warning.message", "c.warning_message", SC_TEXT),
    LF("warning.remedy", "c.warning_remedy", SC_TEXT),
    {NULL, NULL, SC_NULL},
};

static const struct store_list_field software_fields[] = {
    LF("id", "t.id", SC_INT),
    LF("client.id", "c.id", SC_INT),
    LF("client.name", "COALESCE(c.name_override, c.name)", SC_TEXT),
    LF("client.tenant_id", "c.tenant_id", SC_TEXT),
    LF("name", "t.name", SC_TEXT),
    LF("version", "NULLIF(t.version, '')", SC_TEXT),
    LF("publisher", "NULLIF(t.publisher, '')", SC_TEXT),
    LF("platform", "NULLIF(t.platform, '')", SC_TEXT),
    LF("size_bytes", "t.size_bytes", SC_INT),
    LF("device_count", "t.device_count", SC_INT),
    {NULL, NULL, SC_NULL},
};

static const struct store_list_field software_device_fields[] = {
    LF("id", "h.id", SC_INT),
    LF("name", "h.name", SC_TEXT),
    LF("serial_number", "h.serial_number", SC_TEXT),
    LF("client.id", "c.id", SC_INT),
    LF("client.name", "COALESCE(c.name_override, c.name)", SC_TEXT),
    LF("operating_system.name", "h.os_name", SC_TEXT),
    LF("operating_system.version", "h.os_version", SC_TEXT),
    LF("user.principal_name", "h.user_principal_name", SC_TEXT),
    LF("last_check_in_at", "h.last_check_in_at", SC_TS),
    LF("first_seen_at", "i.first_seen_at", SC_TS),
    /* Only active installs are listed, and those are not rewritten each sync: each was last
     * seen when its asset was (see store_reconcile_installs). */
    LF("last_seen_at", "h.last_synced_at", SC_TS),
    {NULL, NULL, SC_NULL},
};

static const struct store_list_field asset_software_fields[] = {
    LF("hardware_asset_id", "i.asset_id", SC_INT),
    LF("software_id", "t.id", SC_INT),
    LF("name", "t.name", SC_TEXT),
    LF("version", "NULLIF(t.version, '')", SC_TEXT),
    LF("publisher", "NULLIF(t.publisher, '')", SC_TEXT),
    LF("platform", "NULLIF(t.platform, '')", SC_TEXT),
    LF("size_bytes", "t.size_bytes", SC_INT),
    LF("first_seen_at", "i.first_seen_at", SC_TS),
    /* Unchanged installs are not rewritten each sync: an active one was last seen when its
     * asset was (see store_reconcile_installs). */
    LF("last_seen_at",
       "CASE WHEN i.removed_at IS NULL THEN ha.last_synced_at ELSE i.last_seen_at END", SC_TS),
    LF("removed_at", "i.removed_at", SC_TS),
    {NULL, NULL, SC_NULL},
};

/* Every install of the account (docs/API.md "Fields": software install), with names for people. */
static const struct store_list_field install_fields[] = {
    LF("hardware_asset_id", "i.asset_id", SC_INT),
    LF("software_id", "t.id", SC_INT),
    LF("client.id", "c.id", SC_INT),
    LF("client.name", "COALESCE(c.name_override, c.name)", SC_TEXT),
    LF("client.tenant_id", "c.tenant_id", SC_TEXT),
    LF("device_name", "ha.name", SC_TEXT),
    LF("name", "t.name", SC_TEXT),
    LF("version", "NULLIF(t.version, '')", SC_TEXT),
    LF("publisher", "NULLIF(t.publisher, '')", SC_TEXT),
    LF("first_seen_at", "i.first_seen_at", SC_TS),
    LF("last_seen_at",
       "CASE WHEN i.removed_at IS NULL THEN ha.last_synced_at ELSE i.last_seen_at END", SC_TS),
    LF("removed_at", "i.removed_at", SC_TS),
    {NULL, NULL, SC_NULL},
};

/* Titles as the software view across clients reads them (api_software.c): no join. */
static const struct store_list_field product_title_fields[] = {
    LF("id", "t.id", SC_INT),
    LF("client.id", "t.client_id", SC_INT),
    LF("name", "t.name", SC_TEXT),
    LF("version", "NULLIF(t.version, '')", SC_TEXT),
    LF("publisher", "NULLIF(t.publisher, '')", SC_TEXT),
    LF("device_count", "t.device_count", SC_INT),
    {NULL, NULL, SC_NULL},
};

static const struct store_list_field product_install_fields[] = {
    LF("title_id", "i.title_id", SC_INT),
    LF("asset_id", "i.asset_id", SC_INT),
    {NULL, NULL, SC_NULL},
};

static const struct store_list_field change_fields[] = {
    LF("id", "x.id", SC_INT),
    LF("at", "x.at", SC_TS),
    LF("field", "x.field", SC_TEXT),
    LF("old_value", "x.old_value", SC_TEXT),
    LF("new_value", "x.new_value", SC_TEXT),
    {NULL, NULL, SC_NULL},
};

static const struct store_list_field run_fields[] = {
    LF("id", "r.id", SC_INT),
    LF("integration_id", "r.integration_id", SC_INT),
    LF("integration_name", "g.name", SC_TEXT),
    LF("kind", "r.kind", SC_TEXT),
    LF("status", "r.status", SC_TEXT),
    LF("started_at", "r.started_at", SC_TS),
    LF("finished_at", "r.finished_at", SC_TS),
    LF("error.message", "r.error_message", SC_TEXT),
    LF("tenants_total", "(SELECT count(*) FROM sync_tenant_result x WHERE x.run_id = r.id)",
       SC_INT),
    LF("tenants_ok",
       "(SELECT count(*) FROM sync_tenant_result x WHERE x.run_id = r.id AND x.status = 'ok')",
       SC_INT),
    LF("tenants_failed",
       "(SELECT count(*) FROM sync_tenant_result x WHERE x.run_id = r.id AND x.status = 'error')",
       SC_INT),
    LF("devices",
       "(SELECT COALESCE(sum(x.devices), 0) FROM sync_tenant_result x WHERE "
       "x.run_id = r.id)",
       SC_INT),
    LF("requests",
       "(SELECT COALESCE(sum(x.requests), 0) FROM sync_tenant_result x WHERE "
       "x.run_id = r.id)",
       SC_INT),
    LF("throttled",
       "(SELECT COALESCE(sum(x.throttled), 0) FROM sync_tenant_result x WHERE "
       "x.run_id = r.id)",
       SC_INT),
    {NULL, NULL, SC_NULL},
};

static const struct store_list_field tenant_result_fields[] = {
    LF("tenant_id", "x.tenant_id", SC_TEXT),
    LF("client_name", "x.client_name", SC_TEXT),
    LF("status", "x.status", SC_TEXT),
    LF("error.code", "x.error_code", SC_TEXT),
    LF("error.message", "x.error_message", SC_TEXT),
    LF("error.remedy", "x.error_remedy", SC_TEXT),
    LF("error.request_id", "x.error_request_id", SC_TEXT),
    LF("error.date", "x.error_date", SC_TEXT),
    LF("devices", "x.devices", SC_INT),
    LF("created", "x.created", SC_INT),
    LF("updated", "x.updated", SC_INT),
    LF("unchanged", "x.unchanged", SC_INT),
    LF("retired", "x.retired", SC_INT),
    LF("installs_added", "x.installs_added", SC_INT),
    LF("installs_removed", "x.installs_removed", SC_INT),
    LF("requests", "x.requests", SC_INT),
    LF("throttled", "x.throttled", SC_INT),
    LF("duration_ms", "x.duration_ms", SC_INT),
    {NULL, NULL, SC_NULL},
};

static const struct store_list_field user_fields[] = {
    LF("id", "u.id", SC_INT),
    LF("name", "u.name", SC_TEXT),
    LF("role", "u.role", SC_TEXT),
    LF("created_at", "u.created_at", SC_TS),
    LF("totp_enrolled", "CASE WHEN u.totp_enrolled_at IS NULL THEN 0 ELSE 1 END", SC_BOOL),
    {NULL, NULL, SC_NULL},
};

static const struct store_list_field apikey_fields[] = {
    LF("id", "k.id", SC_INT),
    LF("name", "k.name", SC_TEXT),
    LF("scope", "k.scope", SC_TEXT),
    LF("prefix", "k.prefix", SC_TEXT),
    LF("created_at", "k.created_at", SC_TS),
    LF("revoked_at", "k.revoked_at", SC_TS),
    LF("expires_at", "k.expires_at", SC_TS),
    LF("last_used_at", "k.last_used_at", SC_TS),
    {NULL, NULL, SC_NULL},
};

/* A client's results in the sync runs, newest first (parent: client id). */
static const struct store_list_field client_result_fields[] = {
    LF("run_id", "x.run_id", SC_INT),
    LF("kind", "r.kind", SC_TEXT),
    LF("started_at", "r.started_at", SC_TS),
    LF("status", "x.status", SC_TEXT),
    LF("error.code", "x.error_code", SC_TEXT),
    LF("error.message", "x.error_message", SC_TEXT),
    LF("error.remedy", "x.error_remedy", SC_TEXT),
    LF("devices", "x.devices", SC_INT),
    LF("created", "x.created", SC_INT),
    LF("updated", "x.updated", SC_INT),
    LF("retired", "x.retired", SC_INT),
    LF("duration_ms", "x.duration_ms", SC_INT),
    {NULL, NULL, SC_NULL},
};

static const struct store_list_field sched_fields[] = {
    LF("id", "g.id", SC_INT),
    LF("account_id", "g.account_id", SC_INT),
    LF("sync_interval", "g.sync_interval", SC_INT),
    LF("last_started_at",
       "(SELECT max(r.started_at) FROM sync_run r WHERE r.integration_id = g.id)", SC_TS),
    {NULL, NULL, SC_NULL},
};

static const struct store_list_entity lentities[] = {
    {"hardware", NULL, {NULL}, NULL, NULL, hardware_fields, NULL, 0},
    {"clients",
     "FROM client c WHERE c.account_id = ?1",
     {"COALESCE(c.name_override, c.name)", "c.tenant_id", "c.default_domain", NULL},
     "COALESCE(c.name_override, c.name)",
     "c.id",
     client_fields,
     NULL,
     0},
    {"software",
     /* Titles with at least one current install, like store_software_each. */
     "FROM software_title t JOIN client c ON c.id = t.client_id WHERE t.account_id = ?1 AND "
     "t.device_count > 0",
     {"t.name", "t.publisher", NULL, NULL},
     "t.name",
     "t.id",
     software_fields,
     "name",
     0},
    {"software_devices",
     /* From the title's client's devices: installs are keyed by device, not by title. */
     "FROM hardware_asset h JOIN software_install i ON i.asset_id = h.id AND i.title_id = ?2 "
     "JOIN client c ON c.id = h.client_id WHERE h.client_id = (SELECT t.client_id FROM "
     "software_title t WHERE t.id = ?2 AND t.account_id = ?1) AND h.account_id = ?1 AND "
     "i.removed_at IS NULL AND h.retired_at IS NULL",
     {"h.name", "h.serial_number", "h.user_principal_name", NULL},
     "h.name",
     "h.id",
     software_device_fields,
     NULL,
     0},
    {"asset_software",
     "FROM software_install i JOIN software_title t ON t.id = i.title_id JOIN hardware_asset ha "
     "ON ha.id = i.asset_id WHERE i.account_id = ?1 AND i.asset_id = ?2",
     {"t.name", "t.publisher", NULL, NULL},
     "t.name",
     "t.id",
     asset_software_fields,
     NULL,
     0},
    {"installs",
     "FROM software_install i JOIN software_title t ON t.id = i.title_id JOIN hardware_asset ha "
     "ON ha.id = i.asset_id JOIN client c ON c.id = ha.client_id WHERE i.account_id = ?1 AND "
     "i.removed_at IS NULL AND ha.retired_at IS NULL",
     {"t.name", "ha.name", "t.publisher", NULL},
     "COALESCE(c.name_override, c.name), ha.name, t.name",
     "i.asset_id, i.title_id",
     install_fields,
     NULL,
     0},
    {"installs_all",
     "FROM software_install i JOIN software_title t ON t.id = i.title_id JOIN hardware_asset ha "
     "ON ha.id = i.asset_id JOIN client c ON c.id = ha.client_id WHERE i.account_id = ?1",
     {"t.name", "ha.name", "t.publisher", NULL},
     "COALESCE(c.name_override, c.name), ha.name, t.name",
     "i.asset_id, i.title_id",
     install_fields,
     NULL,
     0},
    {"product_titles",
     /* Every title with a current install, read whole in table order: "+" keeps SQLite from
      * walking the (account_id, name) index, whose random row reads cost ten times a scan. */
     "FROM software_title t WHERE +t.account_id = ?1 AND t.device_count > 0",
     {"t.name", "t.publisher", NULL, NULL},
     "t.id",
     "t.id",
     product_title_fields,
     NULL,
     0},
    {"product_installs",
     /* (title, device) of every current install on an active device, in key order: the two
      * numbers alone, for the products' distinct device counts (api_software.c). */
     "FROM software_install i JOIN hardware_asset ha ON ha.id = i.asset_id WHERE "
     "i.account_id = ?1 AND i.removed_at IS NULL AND ha.retired_at IS NULL",
     {NULL, NULL, NULL, NULL},
     "i.asset_id, i.title_id",
     "i.asset_id, i.title_id",
     product_install_fields,
     NULL,
     0},
    {"asset_changes",
     "FROM asset_change x WHERE x.account_id = ?1 AND x.asset_id = ?2",
     {"x.field", NULL, NULL, NULL},
     "x.at DESC",
     "x.id",
     change_fields,
     NULL,
     0},
    {"sync_runs",
     "FROM sync_run r JOIN integration g ON g.id = r.integration_id WHERE "
     "r.account_id = ?1",
     {"g.name", NULL, NULL, NULL},
     "r.id DESC",
     "r.id",
     run_fields,
     "id",
     1},
    {"sync_tenant_results",
     "FROM sync_tenant_result x JOIN sync_run r ON r.id = x.run_id WHERE r.account_id = ?1 AND "
     "x.run_id = ?2",
     {"x.client_name", "x.tenant_id", NULL, NULL},
     "x.status, x.client_name",
     "x.id",
     tenant_result_fields,
     NULL,
     0},
    {"users",
     "FROM app_user u WHERE u.account_id = ?1",
     {"u.name", NULL, NULL, NULL},
     "u.name",
     "u.id",
     user_fields,
     NULL,
     0},
    {"api_keys",
     "FROM api_key k WHERE k.account_id = ?1",
     {"k.name", NULL, NULL, NULL},
     "k.id",
     "k.id",
     apikey_fields,
     NULL,
     0},
    {"client_sync_results",
     /* By the tenant's index (migration 16): its results in every run of its integration. */
     "FROM client c JOIN sync_tenant_result x ON x.tenant_id = c.tenant_id JOIN sync_run r ON "
     "r.id = x.run_id AND r.integration_id = c.integration_id WHERE c.id = ?2 AND "
     "c.account_id = ?1",
     {NULL, NULL, NULL, NULL},
     "x.run_id DESC",
     "x.id",
     client_result_fields,
     NULL,
     0},
    /* Every account: only the scheduler reads this (?1 is unused). */
    {"scheduler_integrations",
     "FROM integration g WHERE g.partner_secret_sealed IS NOT NULL",
     {NULL, NULL, NULL, NULL},
     "g.id",
     "g.id",
     sched_fields,
     NULL,
     0},
};

const struct store_list_entity *
store_list_entity(const char *name)
{
    for (size_t i = 0; i < sizeof lentities / sizeof lentities[0]; i++)
        if (name != NULL && strcmp(lentities[i].name, name) == 0)
            return &lentities[i];
    return NULL;
}

const struct store_list_field *
store_list_field(const struct store_list_entity *e, const char *name)
{
    for (const struct store_list_field *f = e->fields; f->name != NULL; f++)
        if (name != NULL && strcmp(f->name, name) == 0)
            return f;
    return NULL;
}

int
store_list_sort_values(struct buf *sql, const char *entity, const struct store_sort *sorts,
                       size_t nsorts, struct errbuf *eb)
{
    const struct store_list_entity *e = store_list_entity(entity);

    for (size_t i = 0; i < nsorts; i++) {
        const struct store_list_field *f = e != NULL ? store_list_field(e, sorts[i].field) : NULL;

        if (f == NULL)
            return err_set(eb, ERR_INVAL, "unknown sort field '%s'", sorts[i].field);
        buf_printf(sql, ", %s", f->expr);
    }
    return ERR_OK;
}

int
store_list_has_field(const char *entity, const char *field)
{
    const struct store_list_entity *e = store_list_entity(entity);

    return e != NULL && store_list_field(e, field) != NULL;
}

void
store_binds_free(struct store_binds *b)
{
    for (int i = 0; i < b->n; i++)
        free(b->v[i].s);
    b->n = 0;
}

/* Converts one filter value to what the column stores; returns the parameter number. */
static int
bind_value(struct store_binds *b, const struct store_list_field *f, const char *v,
           struct errbuf *eb)
{
    struct store_bind *x;

    if (b->n >= (int)(sizeof b->v / sizeof b->v[0]))
        return err_set(eb, ERR_INVAL, "too many filter values");
    x = &b->v[b->n];
    memset(x, 0, sizeof *x);
    switch (f->kind) {
    case SC_INT: {
        char *end;
        long long n;

        errno = 0;
        n = strtoll(v, &end, 10);
        if (errno != 0 || end == v || *end != '\0')
            return err_set(eb, ERR_INVAL, "filter on %s: '%s' is not a number", f->name, v);
        x->kind = SC_INT;
        x->i = n;
        break;
    }
    case SC_TS: {
        int64_t t;

        if (clock_parse(v, &t) != ERR_OK || t == TS_NULL)
            return err_set(eb, ERR_INVAL,
                           "filter on %s: '%s' is not a date (use 2026-01-31 or "
                           "2026-01-31T12:00:00Z)",
                           f->name, v);
        x->kind = SC_INT;
        x->i = t;
        break;
    }
    case SC_BOOL:
        if (strcmp(v, "true") == 0 || strcmp(v, "1") == 0)
            x->i = 1;
        else if (strcmp(v, "false") == 0 || strcmp(v, "0") == 0)
            x->i = 0;
        else
            return err_set(eb, ERR_INVAL, "filter on %s: use true or false", f->name);
        x->kind = SC_INT;
        break;
    default:
        x->kind = SC_TEXT;
        x->s = xstrdup(v);
        break;
    }
    b->n++;
    return b->first + b->n - 1;
}

/* Appends " AND ..." for each filter. */
int
store_sql_filters(const struct store_dialect *d, const struct store_list_entity *e,
                  const struct store_filter *fs, size_t n, struct buf *sql, struct store_binds *b,
                  struct errbuf *eb)
{
    for (size_t k = 0; k < n; k++) {
        const struct store_filter *ft = &fs[k];
        const struct store_list_field *f = store_list_field(e, ft->field);
        const char *op = ft->op != NULL ? ft->op : "eq";
        int p;

        if (f == NULL)
            return err_set(eb, ERR_INVAL, "unknown filter field '%s'", ft->field);
        if (ft->value == NULL)
            return err_set(eb, ERR_INVAL, "filter on %s needs a value", f->name);
        if (strcmp(op, "like") == 0) {
            struct store_bind *x;

            if (b->n >= (int)(sizeof b->v / sizeof b->v[0]))
                return err_set(eb, ERR_INVAL, "too many filter values");
            x = &b->v[b->n++];
            x->kind = SC_TEXT;
            x->s = xstrdup(ft->value);
            buf_addstr(sql, " AND ");
            d->contains(sql, f->expr, b->first + b->n - 1);
        } else if (strcmp(op, "in") == 0) {
            char *list = xstrdup(ft->value), *save = list, *item;
            int first = 1, rc = ERR_OK;

            buf_printf(sql, " AND %s IN (", f->expr);
            while (save != NULL) {
                item = save;
                save = strchr(save, ',');
                if (save != NULL)
                    *save++ = '\0';
                p = bind_value(b, f, item, eb);
                if (p < 0) {
                    rc = p;
                    break;
                }
                buf_addstr(sql, first ? "" : ", ");
                d->param(sql, p);
                first = 0;
            }
            free(list);
            if (rc != ERR_OK)
                return rc;
            buf_addstr(sql, ")");
        } else {
            const char *sqlop = strcmp(op, "eq") == 0    ? "="
                                : strcmp(op, "lt") == 0  ? "<"
                                : strcmp(op, "lte") == 0 ? "<="
                                : strcmp(op, "gt") == 0  ? ">"
                                : strcmp(op, "gte") == 0 ? ">="
                                                         : NULL;
            if (sqlop == NULL)
                return err_set(eb, ERR_INVAL,
                               "unknown filter operator '%s' (use eq, in, lt, lte, gt, gte, like)",
                               op);
            p = bind_value(b, f, ft->value, eb);
            if (p < 0)
                return p;
            buf_addstr(sql, " AND ");
            if (f->kind == SC_TEXT && strcmp(op, "eq") == 0) {
                d->ieq(sql, f->expr, p);
            } else {
                buf_printf(sql, "%s %s ", f->expr, sqlop);
                d->param(sql, p);
            }
        }
    }
    return ERR_OK;
}

int
store_sql_sorts(const struct store_list_entity *e, const struct store_sort *ss, size_t n,
                struct buf *sql, struct errbuf *eb)
{
    for (size_t k = 0; k < n; k++) {
        const struct store_list_field *f = store_list_field(e, ss[k].field);

        if (f == NULL)
            return err_set(eb, ERR_INVAL, "unknown sort field '%s'", ss[k].field);
        /* NULLs sort last both ways, on both backends (SQLite puts them first ascending,
         * PostgreSQL first descending). Hardware lists sorted by one field read the values and
         * the NULLs apart instead (store_assets_parts), each in an order an index serves. */
        buf_printf(sql, "%s%s %s", k ? ", " : " ORDER BY ", f->expr,
                   ss[k].desc ? "DESC NULLS LAST" : "ASC NULLS LAST");
    }
    return ERR_OK;
}

int
store_binds_add(struct store_binds *b, const struct store_cell *v, struct errbuf *eb)
{
    struct store_bind *x;

    if (b->n >= (int)(sizeof b->v / sizeof b->v[0]))
        return err_set(eb, ERR_INVAL, "too many filter values");
    x = &b->v[b->n];
    memset(x, 0, sizeof *x);
    if (v->kind == SC_TEXT) {
        x->kind = SC_TEXT;
        x->s = xstrdup(v->s != NULL ? v->s : "");
    } else {
        x->kind = SC_INT;
        x->i = v->i;
    }
    b->n++;
    return b->first + b->n - 1;
}

/* Rows after the seek row from sort k on: "(x > v OR x IS NULL OR (x = v AND <k + 1>))" for a
 * value, "(x IS NULL AND <k + 1>)" for a NULL (NULLs last), the id after the last sort. */
static int
seek_chain(const struct store_dialect *d, const struct store_list_entity *e,
           const struct asset_query *q, size_t k, struct buf *sql, struct store_binds *b,
           struct errbuf *eb)
{
    const struct store_list_field *f;
    const struct store_cell *v = &q->seek_vals[k];
    struct store_cell idv = {NULL, SC_INT, q->seek_id, NULL};
    int p, rc;

    if (k == q->nsorts) {
        p = store_binds_add(b, &idv, eb);
        if (p < 0)
            return p;
        buf_printf(sql, "h.id %s ", q->sorts[q->nsorts - 1].desc ? "<" : ">");
        d->param(sql, p);
        return ERR_OK;
    }
    f = store_list_field(e, q->sorts[k].field);
    if (f == NULL)
        return err_set(eb, ERR_INVAL, "unknown sort field '%s'", q->sorts[k].field);
    if (v->kind == SC_NULL) {
        buf_printf(sql, "(%s IS NULL AND ", f->expr);
    } else {
        p = store_binds_add(b, v, eb);
        if (p < 0)
            return p;
        buf_printf(sql, "(%s %s ", f->expr, q->sorts[k].desc ? "<" : ">");
        d->param(sql, p);
        buf_printf(sql, " OR %s IS NULL OR (%s = ", f->expr, f->expr);
        d->param(sql, p);
        buf_addstr(sql, " AND ");
    }
    rc = seek_chain(d, e, q, k + 1, sql, b, eb);
    buf_addstr(sql, v->kind == SC_NULL ? ")" : "))");
    return rc;
}

int
store_sql_asset_tail(const struct store_dialect *d, const struct asset_query *q, int part,
                     int count, int64_t offset, int limit, struct buf *sql, struct store_binds *b,
                     struct errbuf *eb)
{
    const struct store_list_entity *e = store_list_entity("hardware");
    int rc;

    if (part == STORE_PART_ALL) {
        if (q->nsorts > 0 && q->seek) {
            buf_addstr(sql, " AND ");
            rc = seek_chain(d, e, q, 0, sql, b, eb);
            if (rc != ERR_OK)
                return rc;
        }
        if (count)
            return ERR_OK;
        if (q->nsorts > 0) {
            rc = store_sql_sorts(e, q->sorts, q->nsorts, sql, eb);
            if (rc != ERR_OK)
                return rc;
            buf_addstr(sql, q->sorts[q->nsorts - 1].desc ? ", h.id DESC" : ", h.id");
        } else {
            buf_addstr(sql, " ORDER BY h.id");
        }
    } else {
        const struct store_list_field *f = store_list_field(e, q->sorts[0].field);
        const struct store_cell *v = &q->seek_vals[0];
        struct store_cell idv = {NULL, SC_INT, q->seek_id, NULL};
        const char *dir = q->sorts[0].desc ? " DESC" : "";
        const char *op = q->sorts[0].desc ? "<" : ">";
        int pv, pid;

        if (f == NULL)
            return err_set(eb, ERR_INVAL, "unknown sort field '%s'", q->sorts[0].field);
        buf_printf(sql, " AND %s IS %sNULL", f->expr, part == STORE_PART_VALUES ? "NOT " : "");
        if (q->seek && part == STORE_PART_VALUES && v->kind != SC_NULL) {
            /* A row-value comparison: both engines walk an index on (field, id) from there. */
            pv = store_binds_add(b, v, eb);
            pid = pv < 0 ? pv : store_binds_add(b, &idv, eb);
            if (pid < 0)
                return pid;
            buf_printf(sql, " AND (%s, h.id) %s (", f->expr, op);
            d->param(sql, pv);
            buf_addstr(sql, ", ");
            d->param(sql, pid);
            buf_addstr(sql, ")");
        } else if (q->seek && part == STORE_PART_NULLS && v->kind == SC_NULL) {
            pid = store_binds_add(b, &idv, eb);
            if (pid < 0)
                return pid;
            buf_printf(sql, " AND h.id %s ", op);
            d->param(sql, pid);
        }
        if (count)
            return ERR_OK;
        buf_addstr(sql, " ORDER BY ");
        if (d->order_retired && !q->include_retired)
            buf_printf(sql, "h.retired_at%s, ", dir);
        /* In the NULL part the field is constant too: named, it lets the same index serve. */
        buf_printf(sql, "%s%s, h.id%s", f->expr, dir, dir);
    }
    if (limit > 0)
        buf_printf(sql, " LIMIT %d", limit);
    else if (offset > 0)
        buf_printf(sql, " %s", d->no_limit);
    if (offset > 0)
        buf_printf(sql, " OFFSET %" PRId64, offset);
    return ERR_OK;
}

int
store_assets_parts(const struct asset_query *q, store_part_fn run, void *ctx)
{
    int64_t got = 0, more = 0, before = 0, offset = q->offset;
    int rc;

    if (q->nsorts != 1)
        return run(ctx, STORE_PART_ALL, 0, q->offset, q->limit, &got);
    /* One sort: the rows with a value, then (NULLs last) those without; each part is an index
     * walk from its seek point where an index on (field, id) exists. */
    if (!q->seek || q->seek_vals[0].kind != SC_NULL) {
        rc = run(ctx, STORE_PART_VALUES, 0, offset, q->limit, &got);
        if (rc != ERR_OK || (q->limit > 0 && got >= q->limit))
            return rc;
        if (got == 0 && offset > 0) {
            /* The offset may reach past the values: skip as many NULL rows as it does. */
            rc = run(ctx, STORE_PART_VALUES, 1, 0, 0, &before);
            if (rc != ERR_OK)
                return rc;
            offset = offset > before ? offset - before : 0;
        } else {
            offset = 0;
        }
    }
    return run(ctx, STORE_PART_NULLS, 0, offset, q->limit > 0 ? q->limit - (int)got : 0, &more);
}

/* Copies an entity's SQL text, writing its "?N" parameters in the backend's style. */
static void
sql_params(const struct store_dialect *d, struct buf *sql, const char *text)
{
    for (const char *t = text; *t != '\0'; t++) {
        if (*t == '?' && t[1] >= '1' && t[1] <= '9') {
            d->param(sql, t[1] - '0');
            t++;
        } else {
            buf_addc(sql, *t);
        }
    }
}

/* Builds "<select|count> FROM ... [filters] [search] [order] [limit]" for q. */
int
store_sql_list(const struct store_dialect *d, const struct list_query *q, int count,
               struct buf *sql, struct store_binds *b, struct errbuf *eb)
{
    const struct store_list_entity *e = store_list_entity(q->entity);
    int rc;

    if (e == NULL || e->from == NULL)
        return err_set(eb, ERR_INVAL, "unknown list '%s'", q->entity ? q->entity : "");
    b->first = 5;
    if (count) {
        buf_addstr(sql, "SELECT count(*) ");
    } else {
        buf_addstr(sql, "SELECT ");
        for (const struct store_list_field *f = e->fields; f->name != NULL; f++)
            buf_printf(sql, "%s%s", f == e->fields ? "" : ", ", f->expr);
        buf_addstr(sql, " ");
    }
    sql_params(d, sql, e->from);
    rc = store_sql_filters(d, e, q->filters, q->nfilters, sql, b, eb);
    if (rc != ERR_OK)
        return rc;
    if (q->search != NULL && q->search[0] != '\0') {
        buf_addstr(sql, " AND (");
        for (int i = 0; i < 4 && e->search[i] != NULL; i++) {
            buf_addstr(sql, i ? " OR " : "");
            d->contains(sql, e->search[i], 3);
        }
        buf_addstr(sql, ")");
    }
    if (count)
        return ERR_OK;
    if (q->seek) {
        const struct store_list_field *f =
            q->nsorts == 0 && e->seek_field != NULL ? store_list_field(e, e->seek_field) : NULL;
        struct store_cell idv = {.kind = SC_INT, .i = q->seek_id};
        const char *op = e->seek_desc ? "<" : ">";
        int pv, pv2, pid;

        if (f == NULL || q->seek_val.kind != (f->kind == SC_TEXT ? SC_TEXT : SC_INT))
            return err_set(eb, ERR_INVAL, "a keyset cursor does not fit list '%s'", e->name);
        /* (v > x OR (v = x AND id > y)), downwards with <; the order's value is never NULL. */
        pv = store_binds_add(b, &q->seek_val, eb);
        pv2 = pv < 0 ? pv : store_binds_add(b, &q->seek_val, eb);
        pid = pv2 < 0 ? pv2 : store_binds_add(b, &idv, eb);
        if (pid < 0)
            return pid;
        buf_printf(sql, " AND (%s %s ", f->expr, op);
        d->param(sql, pv);
        buf_printf(sql, " OR (%s = ", f->expr);
        d->param(sql, pv2);
        buf_printf(sql, " AND %s %s ", e->tiebreak, op);
        d->param(sql, pid);
        buf_addstr(sql, "))");
    }
    if (q->nsorts > 0) {
        rc = store_sql_sorts(e, q->sorts, q->nsorts, sql, eb);
        if (rc != ERR_OK)
            return rc;
        buf_printf(sql, ", %s%s", e->tiebreak, q->sorts[q->nsorts - 1].desc ? " DESC" : "");
    } else {
        buf_printf(sql, " ORDER BY %s, %s", e->order, e->tiebreak);
    }
    if (q->limit > 0)
        buf_printf(sql, " LIMIT %d", q->limit);
    else if (q->offset > 0)
        buf_printf(sql, " %s", d->no_limit);
    if (q->offset > 0)
        buf_printf(sql, " OFFSET %" PRId64, q->offset);
    return ERR_OK;
}

/* ---- generated device SQL ------------------------------------------------------------------ */

/* hardware_asset's own columns: a device field must not take one of these names. */
static const char *const meta_cols[] = {
    "id",
    "account_id",
    "client_id",
    "integration_id",
    "tenant_id",
    "intune_device_id",
    "serial_key",
    "first_synced_at",
    "last_synced_at",
    "retired_at",
    "last_seen_gen",
    "missing_since",
    "missing_syncs",
    "updated_at",
};

static const char *
field_name_at(size_t offset)
{
    for (size_t i = 0; i < device_field_count; i++)
        if (device_fields[i].offset == offset)
            return device_fields[i].name;
    return NULL;
}

int
store_device_sql_build(struct store_device_sql *d, char p, const char *find_suffix,
                       struct errbuf *eb)
{
    struct buf cols, h, ph, set;
    size_t n = device_field_count;
    int rc = ERR_OK;

    memset(d, 0, sizeof *d);
    buf_init(&cols, 16384);
    buf_init(&h, 16384);
    buf_init(&ph, 16384);
    buf_init(&set, 16384);
    for (size_t i = 0; i < n; i++) {
        const char *name = device_fields[i].name;

        for (const char *c = name; *c != '\0'; c++)
            if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '_')) {
                rc = err_set(eb, ERR_INVAL, "device field \"%s\" is not a column name", name);
                goto out;
            }
        for (size_t k = 0; k < sizeof meta_cols / sizeof meta_cols[0]; k++)
            if (strcmp(name, meta_cols[k]) == 0) {
                rc = err_set(eb, ERR_INVAL, "device field \"%s\" collides with a column", name);
                goto out;
            }
        buf_printf(&cols, "%s%s", i ? ", " : "", name);
        buf_printf(&h, "%sh.%s", i ? ", " : "", name);
        buf_printf(&ph, ", %c%zu", p, 6 + i);
        buf_printf(&set, "%s%s = %c%zu", i ? ", " : "", name, p, 1 + i);
    }
    d->cols_h = xstrdup(buf_cstr(&h));
    d->find = xasprintf("SELECT id, retired_at, %s FROM hardware_asset WHERE integration_id = "
                        "%c1 AND tenant_id = %c2 AND intune_device_id = %c3%s",
                        buf_cstr(&cols), p, p, p, find_suffix);
    d->ins = xasprintf("INSERT INTO hardware_asset (account_id, client_id, integration_id, "
                       "tenant_id, intune_device_id, %s, serial_key, first_synced_at, "
                       "last_synced_at, updated_at, retired_at, last_seen_gen) VALUES (%c1, %c2, "
                       "%c3, %c4, %c5%s, %c%zu, %c%zu, %c%zu, %c%zu, NULL, %c%zu)",
                       buf_cstr(&cols), p, p, p, p, p, buf_cstr(&ph), p, 6 + n, p, 7 + n, p, 7 + n,
                       p, 7 + n, p, 8 + n);
    d->upd = xasprintf("UPDATE hardware_asset SET %s, serial_key = %c%zu, last_synced_at = %c%zu, "
                       "last_seen_gen = %c%zu, retired_at = NULL, client_id = %c%zu WHERE id = "
                       "%c%zu",
                       buf_cstr(&set), p, n + 1, p, n + 2, p, n + 3, p, n + 4, p, n + 5);
    d->col_name = field_name_at(offsetof(struct device, name));
    d->col_serial = field_name_at(offsetof(struct device, serial));
    d->col_upn = field_name_at(offsetof(struct device, user_upn));
    d->col_user = field_name_at(offsetof(struct device, user_name));
    d->col_model = field_name_at(offsetof(struct device, model));
out:
    buf_free(&cols);
    buf_free(&h);
    buf_free(&ph);
    buf_free(&set);
    return rc;
}

void
store_device_sql_free(struct store_device_sql *d)
{
    if (d == NULL)
        return;
    free(d->cols_h);
    free(d->find);
    free(d->ins);
    free(d->upd);
    memset(d, 0, sizeof *d);
}
