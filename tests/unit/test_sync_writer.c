/* test_sync_writer.c - the sync's database writer thread (src/sync/sync_writer.c) on a real
 * SQLite store: a result comes back only once its tenant's data is committed, in the order the
 * jobs were handed over; failures are recorded after the open batch; the queue refuses room
 * past its bounds while the writer is held up, and drains once it is not. The writer thread is
 * started by sync_writer_start (pthread_create), so scripts/tsan.sh runs this test too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "config.h"
#include "device.h"
#include "err.h"
#include "http.h"
#include "mem.h"
#include "store.h"
#include "sync_int.h"

struct fx {
    char dir[64];
    char path[128];
    struct config cfg;
    struct sync_opts opts;
    struct integration in;
    struct engine eng;
};

static int
setup(void **state)
{
    struct fx *fx = xcalloc(1, sizeof *fx);
    struct errbuf eb = {0};
    int64_t account = 0;

    snprintf(fx->dir, sizeof fx->dir, "/tmp/memsync-writer-XXXXXX");
    assert_non_null(mkdtemp(fx->dir));
    snprintf(fx->path, sizeof fx->path, "%s/memsync.db", fx->dir);
    config_defaults(&fx->cfg);
    assert_int_equal(store_open(&fx->eng.st, fx->path, &eb), ERR_OK);
    assert_int_equal(store_account_ensure(fx->eng.st, "default", &account, &eb), ERR_OK);
    fx->in.account_id = account;
    fx->in.name = "msp";
    fx->in.partner_tenant_id = "11111111-1111-1111-1111-111111111111";
    fx->in.partner_app_id = "22222222-2222-2222-2222-222222222222";
    fx->in.sync_app_id = "33333333-3333-3333-3333-333333333333";
    fx->in.tenant_source = "partner_center";
    fx->in.partner_secret_expires = TS_NULL;
    fx->in.sync_secret_expires = TS_NULL;
    assert_int_equal(store_integration_insert(fx->eng.st, &fx->in, &eb), ERR_OK);
    fx->eng.in = &fx->in;
    fx->eng.cfg = &fx->cfg;
    fx->eng.opts = &fx->opts;
    assert_int_equal(http_new(&fx->eng.http, NULL, &eb), ERR_OK);
    assert_int_equal(
        store_run_start(fx->eng.st, fx->in.id, "full", clock_now(), &fx->eng.run_id, &eb), ERR_OK);
    *state = fx;
    return 0;
}

static int
teardown(void **state)
{
    struct fx *fx = *state;
    char p[192];

    sync_writer_free(fx->eng.writer);
    http_free(fx->eng.http);
    store_close(fx->eng.st);
    for (const char *suffix = ""; suffix != NULL; suffix = suffix[0] == '\0'  ? "-wal"
                                                           : suffix[1] == 'w' ? "-shm"
                                                                              : NULL) {
        snprintf(p, sizeof p, "%s%s", fx->path, suffix);
        unlink(p);
    }
    rmdir(fx->dir);
    free(fx);
    return 0;
}

static void
start(struct fx *fx)
{
    struct errbuf eb = {0};

    assert_int_equal(sync_writer_start(&fx->eng, &eb), ERR_OK);
    fx->eng.writer->run_id = fx->eng.run_id;
}

static char *
tenant_id(size_t i)
{
    return xasprintf("aaaaaaaa-0000-0000-0000-%012zu", i);
}

static struct wjob *
job(size_t tenant, size_t ndevs)
{
    struct wjob *j = xcalloc(1, sizeof *j);

    j->kind = WJOB_RECONCILE;
    j->tenant = tenant;
    j->tenant_id = tenant_id(tenant);
    j->name = xasprintf("Client %zu", tenant);
    j->started_ms = clock_mono_ms();
    j->devices = (int64_t)ndevs;
    j->complete = 1;
    j->apps_complete = 1;
    j->ndevs = ndevs;
    j->devs = xcalloc(ndevs ? ndevs : 1, sizeof *j->devs);
    for (size_t i = 0; i < ndevs; i++) {
        device_init(&j->devs[i]);
        j->devs[i].intune_id = xasprintf("dddddddd-%04zu-0000-0000-%012zu", tenant, i);
        j->devs[i].name = xasprintf("PC-%zu-%zu", tenant, i);
        j->devs[i].serial = xasprintf("SN%zu-%zu", tenant, i);
        j->devs[i].type = DEVICE_WORKSTATION;
    }
    return j;
}

static struct wjob *
fail_job(size_t tenant, enum remedy_code code)
{
    struct wjob *j = xcalloc(1, sizeof *j);
    struct remedy_ctx ctx = {0};

    j->kind = WJOB_FAIL;
    j->tenant = tenant;
    j->tenant_id = tenant_id(tenant);
    j->started_ms = clock_mono_ms();
    ctx.tenant_id = j->tenant_id;
    remedy_set(&j->rem, code, &ctx, "injected");
    return j;
}

static void
noop(void *arg)
{
    (void)arg;
}

/* The next result, waiting in the HTTP loop as the engine does (the writer wakes it). */
static struct wresult *
next_result(struct fx *fx, struct wresult **pending)
{
    struct wresult *r;

    while (*pending == NULL) {
        *pending = sync_writer_results(fx->eng.writer);
        if (*pending == NULL) {
            http_timer(fx->eng.http, 200, noop, NULL);
            http_run(fx->eng.http, 200);
        }
    }
    r = *pending;
    *pending = r->next;
    return r;
}

struct client_seen {
    const char *tenant_id;
    int found;
    char status[16];
    char code[64];
    int64_t devices;
};

static int
client_cb(void *arg, const struct client_row *c)
{
    struct client_seen *s = arg;

    if (strcmp(c->tenant_id, s->tenant_id) != 0)
        return 0;
    s->found = 1;
    snprintf(s->status, sizeof s->status, "%s", c->status != NULL ? c->status : "");
    snprintf(s->code, sizeof s->code, "%s", c->error_code != NULL ? c->error_code : "");
    s->devices = c->device_count;
    return 0;
}

/* What another connection (the engine's) sees of tenant i: committed data only. */
static struct client_seen
client(struct fx *fx, size_t i)
{
    struct client_seen s = {0};
    struct errbuf eb = {0};
    char *tid = tenant_id(i);

    s.tenant_id = tid;
    assert_int_equal(store_clients_each(fx->eng.st, fx->in.account_id, client_cb, &s, &eb), ERR_OK);
    free(tid);
    s.tenant_id = NULL;
    return s;
}

static void
test_results_follow_commits(void **state)
{
    struct fx *fx = *state;
    struct wresult *pending = NULL;

    start(fx);
    sync_writer_submit(fx->eng.writer, job(0, 3));
    sync_writer_submit(fx->eng.writer, job(1, 2));
    sync_writer_submit(fx->eng.writer, fail_job(2, REMEDY_NETWORK));
    sync_writer_submit(fx->eng.writer, job(3, 1));
    sync_writer_submit(fx->eng.writer, fail_job(4, REMEDY_INTERRUPTED));
    for (size_t i = 0; i < 5; i++) {
        struct wresult *r = next_result(fx, &pending);
        struct client_seen s;

        assert_int_equal(r->tenant, i); /* in the order handed over */
        s = client(fx, i);
        if (i == 2) {
            assert_true(r->failed);
            assert_string_equal(s.status, "error");
            assert_string_equal(s.code, r->rem.id);
        } else if (i == 4) {
            /* interrupted: nothing is known to be wrong, its client row is left alone */
            assert_true(r->failed);
            assert_int_equal(r->rem.code, REMEDY_INTERRUPTED);
            assert_false(s.found);
        } else {
            size_t want = i == 0 ? 3 : i == 1 ? 2 : 1;

            assert_false(r->failed);
            assert_int_equal(r->nsynced, want);
            assert_int_equal(r->counts.created, (int64_t)want);
            /* the result came after the commit: this connection sees the devices */
            assert_string_equal(s.status, "ok");
            assert_int_equal(s.devices, (int64_t)want);
        }
        free(r);
    }
    sync_writer_stop(fx->eng.writer);
    assert_null(sync_writer_results(fx->eng.writer));
}

static void
test_queue_bounded_while_writer_waits(void **state)
{
    struct fx *fx = *state;
    struct wresult *pending = NULL;
    sqlite3 *db = NULL;

    start(fx);
    assert_true(sync_writer_room(fx->eng.writer, WRITER_QUEUE_DEVICES + 1)); /* empty: one fits */
    /* Another process holds the write lock: the writer waits in its first transaction. */
    assert_int_equal(sqlite3_open(fx->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);
    sync_writer_submit(fx->eng.writer, job(0, 10));
    assert_false(sync_writer_room(fx->eng.writer, WRITER_QUEUE_DEVICES));
    assert_true(sync_writer_room(fx->eng.writer, 10));
    for (size_t i = 1; i < WRITER_QUEUE_MAX; i++)
        sync_writer_submit(fx->eng.writer, job(i, 10));
    assert_false(sync_writer_room(fx->eng.writer, 1));
    assert_int_equal(sqlite3_exec(db, "COMMIT", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    for (size_t i = 0; i < WRITER_QUEUE_MAX; i++) {
        struct wresult *r = next_result(fx, &pending);

        assert_int_equal(r->tenant, i);
        assert_false(r->failed);
        assert_int_equal(client(fx, i).devices, 10);
        free(r);
    }
    sync_writer_stop(fx->eng.writer);
    assert_true(sync_writer_room(fx->eng.writer, WRITER_QUEUE_DEVICES)); /* all released */
}

int
main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_results_follow_commits, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_bounded_while_writer_waits, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
