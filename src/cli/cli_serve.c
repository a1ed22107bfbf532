/* cli_serve.c - `memsync serve`: the web UI, the REST API and the scheduler in one process
 * (cli_int.h). */
#include "cli.h"
#include "cli_int.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "api_software.h"
#include "app.h"
#include "auth.h"
#include "clock.h"
#include "config.h"
#include "httpd.h"
#include "log.h"
#include "opt.h"
#include "pagecache.h"
#include "ratelimit.h"
#include "router.h"
#include "rowcache.h"
#include "scheduler.h"
#include "webhook_dispatch.h"
#include "store.h"
#include "vault.h"

static int
write_url_file(const char *path, const char *url)
{
    char tmp[4096];
    FILE *fp;

    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    fp = fopen(tmp, "w");
    if (fp == NULL)
        return -1;
    fprintf(fp, "%s\n", url);
    if (fclose(fp) != 0)
        return -1;
    return rename(tmp, path);
}

static int
is_loopback_listen(const char *listen)
{
    return strncmp(listen, "127.", 4) == 0 || strncmp(listen, "localhost:", 10) == 0 ||
           strncmp(listen, "[::1]:", 6) == 0;
}

/* `memsync key rotate` keeps the previous key as FILE.old: say so while it lies there. */
static void
warn_old_key(const char *keypath)
{
    char old[CONFIG_VALUE_MAX + 16];

    snprintf(old, sizeof old, "%s.old", keypath);
    if (access(old, F_OK) == 0)
        log_warn("serve: the previous master key is still at %s (kept by `memsync key rotate`); "
                 "delete it once no backup needs it",
                 old);
}

/* Waits for SIGINT or SIGTERM; SIGHUP reads the master key file again (after a key rotation). */
static void
serve_wait(const struct vault *v, const sigset_t *sigs, int *sig)
{
    for (;;) {
        struct errbuf eb = {0};

        if (sigwait(sigs, sig) != 0)
            continue;
        if (*sig != SIGHUP)
            return;
        if (vault_reload(v, &eb) != ERR_OK)
            log_warn("serve: cannot read the master key file again: %s; keeping the key in use",
                     eb.msg);
        else
            log_info("serve: SIGHUP, master key file read again key_id=%s", vault_key_id(v));
    }
}

int
cli_cmd_serve(struct ctx *cx, int argc, char **argv)
{
    const struct config *cfg = &cx->cfg;
    const char *listen = cfg->listen, *url_file = NULL;
    int schedule = 1, no_schedule = 0, help = 0, npos;
    const char *pos[1];
    const struct opt opts[] = {
        {"listen", 1, &listen, NULL},
        {"url-file", 1, &url_file, NULL},
        {"no-schedule", 0, NULL, &no_schedule},
        {NULL, 0, NULL, NULL},
    };
    struct router *router = NULL;
    struct store *st = NULL;
    struct vault *v = NULL;
    struct scheduler *sched = NULL;
    struct webhook_dispatch *hooks = NULL;
    struct httpd *h = NULL;
    struct api_app app;
    struct httpd_opts ho = {0};
    struct errbuf eb = {0};
    char keypath[CONFIG_VALUE_MAX + 8], url[128], *pw = NULL, host[CONFIG_VALUE_MAX];
    sigset_t sigs;
    int sig = 0, code = 1;

    if (opt_parse("serve", argc, argv, opts, pos, 0, &npos, &help) != 0)
        return CLI_USAGE;
    if (help) {
        printf("usage: memsync serve [--listen HOST:PORT] [--url-file FILE] [--no-schedule]\n"
               "Web UI, REST API (/api/v1) and sync scheduler. Listens on 127.0.0.1:8080 by "
               "default;\nput a reverse proxy (nginx, see docs/DEPLOY.md) in front for "
               "remote access and TLS.\n--no-schedule: no periodic syncs (saves and "
               "\"sync now\" still run).\n");
        return CLI_OK;
    }
    schedule = !no_schedule;
    memset(&app, 0, sizeof app);
    /* Signals go to sigwait below, not to the server threads created after this. */
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);

    if (store_open(&st, cfg->db, &eb) != ERR_OK)
        goto fail;
    if (auth_bootstrap(st, &pw, &eb) != ERR_OK)
        goto fail;
    if (pw != NULL) {
        printf("memsync: first start: created user \"admin\" with password %s\n"
               "memsync: it is shown only this once; change it with `memsync user passwd "
               "admin`\n",
               pw);
        fflush(stdout);
        sodium_memzero(pw, strlen(pw));
        free(pw);
        pw = NULL;
    }
    config_master_key_path(cfg, keypath, sizeof keypath);
    if (vault_open(&v, keypath, 1, &eb) != ERR_OK)
        goto fail;
    warn_old_key(keypath);
    app.cfg = cfg;
    app.vault = v;
    app.started_at = clock_now();
    if (config_env("MEMSYNC_VALIDATE_SAMPLE") != NULL) {
        /* Customer tenants tried when saving (tests use a small sample). */
        const char *s = config_env("MEMSYNC_VALIDATE_SAMPLE");
        char *end;
        long long n;

        errno = 0;
        n = strtoll(s, &end, 10);
        if (errno == 0 && end != s && *end == '\0' && n >= 1 && n <= 100)
            app.validate_sample = (int)n;
    }
    if (strcmp(cfg->sync_runner, "workers") == 0 && strncmp(cfg->db, "postgresql://", 13) != 0 &&
        strncmp(cfg->db, "postgres://", 11) != 0) {
        err_set(&eb, ERR_INVAL,
                "sync_runner = workers needs a PostgreSQL database (--db postgresql://...), the "
                "queue `memsync worker` processes lease jobs from; with SQLite use sync_runner = "
                "serve");
        goto fail;
    }
    if (pagecache_create(&app.pages, (size_t)cfg->api_cache_mb * 1024 * 1024, &eb) != ERR_OK ||
        rowcache_create(&app.rows, (size_t)cfg->api_row_cache_mb * 1024 * 1024, &eb) != ERR_OK)
        goto fail;
    if (cfg->api_rate_per_minute > 0 &&
        ratelimit_new(cfg->api_rate_per_minute,
                      cfg->api_rate_burst > 0 ? cfg->api_rate_burst : cfg->api_rate_per_minute,
                      &app.limits, &eb) != ERR_OK)
        goto fail;
    if (scheduler_start(&sched, cfg, v, schedule, &eb) != ERR_OK)
        goto fail;
    app.sched = sched;
    /* Deliveries run beside the syncs, never in them. */
    if (webhook_dispatch_start(&hooks, cfg, v, &eb) != ERR_OK)
        goto fail;
    ho.listen = listen;
    ho.db_url = cfg->db;
    if (router_create(&router, &app, &eb) != ERR_OK)
        goto fail;
    ho.handler = router_handle;
    ho.app = router;
    if (httpd_start(&h, &ho, &eb) != ERR_OK)
        goto fail;
    app.httpd = h;
    snprintf(host, sizeof host, "%s", listen);
    if (strrchr(host, ':') != NULL)
        *strrchr(host, ':') = '\0';
    if (strcmp(host, "0.0.0.0") == 0 || host[0] == '\0')
        snprintf(host, sizeof host, "127.0.0.1");
    snprintf(url, sizeof url, "http://%s:%u", host, (unsigned)httpd_port(h));
    if (!is_loopback_listen(listen))
        log_warn("serve: listening on %s, which is reachable from other hosts; put nginx with "
                 "TLS in front instead (docs/DEPLOY.md)",
                 listen);
    log_info("serve: listening url=%s", url);
    printf("memsync serve: listening on %s\n", url);
    fflush(stdout);
    if (url_file != NULL && write_url_file(url_file, url) != 0) {
        err_set(&eb, ERR_IO, "cannot write %s: %s", url_file, err_strerror(errno));
        goto fail;
    }
    serve_wait(v, &sigs, &sig);
    log_info("serve: stopping signal=%d", sig);
    code = 0;
    goto out;
fail:
    fprintf(stderr, "memsync serve: %s\n", eb.msg);
out:
    httpd_stop(h);
    router_free(router);
    pagecache_free(app.pages); /* after the pool threads: no request uses it any more */
    rowcache_free(app.rows);
    ratelimit_free(app.limits);
    api_software_forget(); /* the products kept per account (api_software.h) */
    webhook_dispatch_stop(hooks);
    scheduler_stop(sched);
    vault_close(v);
    store_close(st);
    return code;
}
