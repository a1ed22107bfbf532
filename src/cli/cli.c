/* cli.c - the memsync command line. */
#include "cli.h"
#include "cli_int.h"

#include <errno.h>
#include <limits.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <curl/curl.h>
#include <jansson.h>
#include <sodium.h>

#include "api_software.h"
#include "asset.h"
#include "backup.h"
#include "clock.h"
#include "config.h"
#include "cloud.h"
#include "expiry.h"
#include "guid.h"
#include "hwfilter.h"
#include "insight.h"
#include "importfmt.h"
#include "integration.h"
#include "log.h"
#include "mem.h"
#include "mfa.h"
#include "opt.h"
#include "output.h"
#include "rowjson.h"
#include "sim.h"
#include "store.h"
#include "ui_sso.h"
#include "sync.h"
#include "worker.h"
#include "validate.h"
#include "vault.h"
#include "webhook_dispatch.h"

#define DEFAULT_ACCOUNT "default"

static const char usage_text[] =
    "usage: memsync [--db URL] [--config FILE] [--log-level LEVEL] COMMAND ...\n"
    "\n"
    "commands:\n"
    "  serve        web UI + REST API + scheduler        [--listen 127.0.0.1:8080]\n"
    "  sim          Microsoft cloud simulator            [--listen ADDR] [--tenants N] ...\n"
    "  integration  add | list | show ID | rotate-secret ID | remove ID\n"
    "  sync         run a sync now, in the foreground    [--integration ID] "
    "[--full|--incremental]\n"
    "  clients      list clients and their sync status   [--format table|csv|json|jsonl]\n"
    "  assets       hardware | software                  [--client X] [--format ...]\n"
    "  status       integrations, problems, secrets near expiry\n"
    "  insights     per client: stale devices, unsupported OS, missing serials, encryption\n"
    "  changes      the change feed since a cursor           [--since CURSOR] [--kind K,...]\n"
    "  webhook      test URL --secret-file FILE: one signed test delivery\n"
    "  key          rotate: new master key, every secret re-sealed\n"
    "  user         add | list | passwd | remove | reset-totp (web UI accounts)\n"
    "  account      require-totp on|off | sso set|show|off | local-signin on|off (sign-in rules)\n"
    "  apikey       create | list | revoke (REST API keys)\n"
    "  worker       run queued syncs from a shared PostgreSQL database [--once]\n"
    "  config       show the effective settings\n"
    "  backup       FILE: a consistent copy of the SQLite database, also while serve runs\n"
    "  restore      FILE: put a backup in place of the database (checked first)\n"
    "\n"
    "Run `memsync COMMAND --help` for a command's options. Settings: --db or MEMSYNC_DB "
    "(default ./memsync.db),\n"
    "MEMSYNC_LOGIN_URL, MEMSYNC_GRAPH_URL, MEMSYNC_PARTNER_CENTER_URL, MEMSYNC_CA_FILE, "
    "MEMSYNC_MASTER_KEY_FILE,\n"
    "MEMSYNC_LOG_LEVEL, MEMSYNC_LOG_FORMAT (flag > environment > config file > default).\n";

/* True when stdout's reader has gone away (`memsync assets | head -1`): the pipe or socket
 * reports an error. Not errno: libcurl's sockets leave EPIPE there too. */
static int
stdout_gone(void)
{
    struct pollfd p = {.fd = STDOUT_FILENO, .events = 0, .revents = 0};

    return poll(&p, 1, 0) == 1 && (p.revents & (POLLERR | POLLHUP)) != 0;
}

/* A reader that stops reading is not an error of ours: nothing more is written, nothing is
 * said, and the exit status is 0 (as git and kubectl do). */
static int
stdout_closed(void)
{
    return ferror(stdout) && stdout_gone();
}

static int
fail(const char *cmd, const struct errbuf *eb)
{
    if (stdout_closed())
        return CLI_OK;
    if (eb->code == ERR_OK && eb->msg[0] == '\0' && ferror(stdout))
        return CLI_FAIL; /* a row callback stopped the listing and said why (row_out) */
    fprintf(stderr, "memsync %s: %s\n", cmd, eb->msg[0] ? eb->msg : err_str(eb->code));
    return CLI_FAIL;
}

static int
parse_id(const char *s, int64_t *out)
{
    char *end;
    long long v;

    errno = 0;
    v = strtoll(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0' || v <= 0)
        return -1;
    *out = (int64_t)v;
    return 0;
}

/* ---- secrets ------------------------------------------------------------------------------- */

/* Reads a secret from a file, "-" (stdin) or, when path is NULL, the environment variable env.
 * The result is sodium_malloc'd (vault_wipe it). Trailing newlines and spaces are dropped:
 * editors add them, and Entra secrets never end in whitespace. */
static int
read_secret(const char *path, const char *env, const char *label, char **out, struct errbuf *eb)
{
    char *buf = NULL;
    size_t len = 0;
    int fd = -1;
    int rc = ERR_OK;

    *out = NULL;
    buf = sodium_malloc(VAULT_SECRET_MAX + 2);
    if (buf == NULL)
        return err_set(eb, ERR_NOMEM, "out of memory");
    if (path == NULL) {
        const char *v = env != NULL ? config_env(env) : NULL;

        if (v == NULL || *v == '\0') {
            rc =
                err_set(eb, ERR_USAGE,
                        "the %s key is missing: give --%s-secret-file FILE (or - for stdin) or "
                        "set %s",
                        label, strcmp(label, "Partner App") == 0 ? "partner-app" : "sync-app", env);
            goto out;
        }
        len = strlen(v);
        if (len > VAULT_SECRET_MAX) {
            rc = err_set(eb, ERR_TOOBIG, "%s: the %s key is longer than %d bytes", env, label,
                         VAULT_SECRET_MAX);
            goto out;
        }
        memcpy(buf, v, len);
    } else {
        ssize_t n;

        fd = strcmp(path, "-") == 0 ? STDIN_FILENO : open(path, O_RDONLY | O_CLOEXEC);
        if (fd < 0) {
            rc = err_set(eb, ERR_IO, "cannot read the %s key file %s: %s; check the path", label,
                         path, err_strerror(errno));
            goto out;
        }
        while ((n = read(fd, buf + len, VAULT_SECRET_MAX + 1 - len)) > 0) {
            len += (size_t)n;
            if (len > VAULT_SECRET_MAX)
                break;
        }
        if (n < 0) {
            rc = err_set(eb, ERR_IO, "cannot read the %s key file %s: %s", label, path,
                         err_strerror(errno));
            goto out;
        }
        if (len > VAULT_SECRET_MAX) {
            rc = err_set(eb, ERR_TOOBIG,
                         "the %s key file %s is larger than %d bytes; it should hold only the "
                         "secret's value",
                         label, path, VAULT_SECRET_MAX);
            goto out;
        }
    }
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' ' ||
                       buf[len - 1] == '\t'))
        len--;
    buf[len] = '\0';
    if (len == 0) {
        rc = err_set(eb, ERR_INVAL, "the %s key %s%s is empty", label, path ? "file " : "",
                     path ? path : env);
        goto out;
    }
    *out = buf;
    buf = NULL;
out:
    if (fd > STDIN_FILENO)
        close(fd);
    if (buf != NULL) {
        sodium_memzero(buf, VAULT_SECRET_MAX + 2);
        sodium_free(buf);
    }
    return rc;
}

static int
parse_date_opt(const char *s, const char *what, int64_t *out, struct errbuf *eb)
{
    if (clock_parse(s, out) != ERR_OK || *out == TS_NULL)
        return err_set(eb, ERR_USAGE, "%s: '%s' is not a date (use YYYY-MM-DD)", what, s);
    return ERR_OK;
}

/* ---- shared setup -------------------------------------------------------------------------- */

static int
open_store(struct ctx *cx, struct store **st, int64_t *account, struct errbuf *eb)
{
    int rc = store_open(st, cx->cfg.db, eb);

    if (rc != ERR_OK)
        return rc;
    rc = store_account_ensure(*st, DEFAULT_ACCOUNT, account, eb);
    if (rc != ERR_OK) {
        store_close(*st);
        *st = NULL;
    }
    return rc;
}

static int
open_vault(struct ctx *cx, int create, struct vault **v, struct errbuf *eb)
{
    char path[CONFIG_VALUE_MAX + 8];

    config_master_key_path(&cx->cfg, path, sizeof path);
    return vault_open(v, path, create, eb);
}

/* Runs a sync of one integration and reports it. Returns a CLI exit code. */
static void log_expiry(const struct integration *in, int64_t now);

struct sync_flags {
    int incremental;
    int parallel;
    int no_software;
    int hardware_detail;
    int export_min_devices; /* from --app-strategy; 0 = automatic */
    int confirm_retire;     /* --confirm-retire: past the mass-retirement guard */
    int verbose;            /* -v: logs under the progress lines of a terminal */
};

static int
run_sync(struct ctx *cx, struct store *st, const struct integration *in,
         const struct sync_flags *fl, int *failed)
{
    struct vault *v = NULL;
    struct errbuf eb = {0};
    struct sync_creds creds = {0};
    struct sync_opts so = {0};
    struct sync_summary sum = {0};
    int rc, code = CLI_FAIL;

    if ((rc = open_vault(cx, 0, &v, &eb)) != ERR_OK ||
        (rc = sync_creds_unseal(&creds, v, in, &eb)) != ERR_OK)
        goto out;
    log_expiry(in, clock_now());
    so.cfg = &cx->cfg;
    so.incremental = fl->incremental;
    so.parallel = fl->parallel;
    so.software = !fl->no_software;
    so.export_min_devices = fl->export_min_devices;
    so.hardware_detail = fl->hardware_detail;
    so.confirm_retire = fl->confirm_retire;
    so.progress = isatty(STDERR_FILENO) && config_env("MEMSYNC_NO_PROGRESS") == NULL;
    /* On a terminal the tenant lines tell what happened; logs only with -v (or a log level
     * chosen on purpose). */
    if (so.progress && !fl->verbose &&
        config_origin_of(&cx->cfg, "log_level") == CONFIG_FROM_DEFAULT)
        log_configure(LOG_ERROR, strcmp(cx->cfg.log_format, "json") == 0);
    if ((rc = sync_run(st, in, &creds, &so, &sum, &eb)) != ERR_OK)
        goto out;
    printf("sync %s of integration %lld: %d tenants, %d ok, %d failed",
           sum.interrupted ? "interrupted" : "finished", (long long)in->id, sum.tenants_total,
           sum.tenants_ok, sum.tenants_failed);
    if (sum.interrupted)
        printf(", %d stopped mid-way, %d not started", sum.tenants_interrupted,
               sum.tenants_total - sum.tenants_ok - sum.tenants_failed - sum.tenants_interrupted);
    printf("; %lld devices (%lld new, %lld changed, %lld retired); %lld requests, %lld "
           "throttled, %.1f s\n",
           (long long)sum.devices, (long long)sum.created, (long long)sum.updated,
           (long long)sum.retired, (long long)sum.requests, (long long)sum.throttled,
           (double)sum.duration_ms / 1000.0);
    if (sum.interrupted)
        fprintf(stderr, "memsync sync: interrupted; tenants not finished keep their previous "
                        "data. Run the sync again.\n");
    code = sum.tenants_failed > 0 || sum.interrupted ? CLI_PARTIAL : CLI_OK;
    if (failed != NULL && sum.tenants_failed > 0)
        *failed = 1;
out:
    if (rc != ERR_OK)
        fprintf(stderr, "memsync sync: %s\n", eb.msg);
    sync_creds_wipe(&creds);
    vault_close(v);
    return code;
}

static int
failed_client_cb(void *arg, const struct client_row *c)
{
    (void)arg;
    if (c->status != NULL && strcmp(c->status, "error") == 0) {
        fprintf(stderr, "  %s (%s): %s %s\n", c->name != NULL ? c->name : "?", c->tenant_id,
                c->error_message != NULL ? c->error_message : "",
                c->error_remedy != NULL ? c->error_remedy : "");
        /* What Microsoft support asks for. */
        if (c->error_request_id != NULL)
            fprintf(stderr, "    Microsoft request-id %s%s%s\n", c->error_request_id,
                    c->error_date != NULL ? ", date " : "",
                    c->error_date != NULL ? c->error_date : "");
    }
    return 0;
}

static int
warned_client_cb(void *arg, const struct client_row *c)
{
    int *n = arg;

    if (c->status == NULL || strcmp(c->status, "ok") != 0 || c->warning_code == NULL)
        return 0;
    if ((*n)++ == 0)
        fprintf(stderr, "memsync sync: synced with warnings:\n");
    fprintf(stderr, "  %s (%s): %s %s\n", c->name != NULL ? c->name : "?", c->tenant_id,
            c->warning_message != NULL ? c->warning_message : "",
            c->warning_remedy != NULL ? c->warning_remedy : "");
    return 0;
}

/* Lists the clients whose last sync succeeded with a warning (retirements held back, a short
 * listing, /organization unreadable), with what to do. */
static void
print_warned_clients(struct store *st, int64_t account)
{
    struct errbuf eb = {0};
    int n = 0;

    if (store_clients_each(st, account, warned_client_cb, &n, &eb) != ERR_OK)
        fprintf(stderr, "memsync sync: %s\n", eb.msg);
}

/* Lists the clients whose last sync failed, with their remedies (exit code 3). */
static void
print_failed_clients(struct store *st, int64_t account)
{
    struct errbuf eb = {0};

    fprintf(stderr, "memsync sync: some tenants failed; their data was kept:\n");
    if (store_clients_each(st, account, failed_client_cb, NULL, &eb) != ERR_OK)
        fprintf(stderr, "memsync sync: %s\n", eb.msg);
}

/* 0 when format names a --format; else prints a usage error. Checked before the store is
 * opened, so a bad flag is a usage error and a store failure prints no partial output. */
static int
bad_format(const char *cmd, const char *format)
{
    enum output_format f;
    struct errbuf eb = {0};

    if (output_format_parse(format, &f, &eb) == ERR_OK)
        return 0;
    fprintf(stderr, "memsync %s: %s\n", cmd, eb.msg);
    return 1;
}

/* Starts an output writer for --format; table output may use a shorter column set. */
static int
open_output(const char *format, const char *const *cols, size_t ncols,
            const char *const *table_cols, size_t ntable, struct output **out, struct errbuf *eb)
{
    enum output_format fmt;
    int rc = output_format_parse(format, &fmt, eb);

    if (rc != ERR_OK)
        return rc;
    if (fmt == OUTPUT_TABLE && table_cols != NULL)
        return output_begin(out, stdout, fmt, table_cols, ntable, eb);
    return output_begin(out, stdout, fmt, cols, ncols, eb);
}

static int
row_out(struct output *out, json_t *row)
{
    struct errbuf eb = {0};
    int rc = output_row(out, row, &eb);

    json_decref(row);
    if (rc != ERR_OK && !stdout_closed())
        fprintf(stderr, "memsync: %s\n", eb.msg);
    return rc;
}

static int
finish_output(struct output *out)
{
    struct errbuf eb = {0};

    if (output_end(out, &eb) != ERR_OK) {
        if (stdout_closed()) /* the reader went away (| head): not an error of ours */
            return CLI_OK;
        fprintf(stderr, "memsync: %s\n", eb.msg);
        return CLI_FAIL;
    }
    return CLI_OK;
}

/* ---- integration --------------------------------------------------------------------------- */

static int
integration_add(struct ctx *cx, int argc, char **argv)
{
    const char *tenant = NULL, *papp = NULL, *pfile = NULL, *sapp = NULL, *sfile = NULL;
    const char *name = NULL, *pexp = NULL, *sexp = NULL, *source = NULL, *cloud = NULL;
    int no_sync = 0, help = 0, npos;
    const char *pos[1];
    const struct opt opts[] = {
        {"partner-tenant-id", 1, &tenant, NULL},
        {"partner-app-id", 1, &papp, NULL},
        {"partner-app-secret-file", 1, &pfile, NULL},
        {"sync-app-id", 1, &sapp, NULL},
        {"sync-app-secret-file", 1, &sfile, NULL},
        {"name", 1, &name, NULL},
        {"partner-app-secret-expires", 1, &pexp, NULL},
        {"sync-app-secret-expires", 1, &sexp, NULL},
        {"tenant-source", 1, &source, NULL},
        {"cloud", 1, &cloud, NULL},
        {"no-sync", 0, NULL, &no_sync},
        {NULL, 0, NULL, NULL},
    };
    struct integration in = {0};
    struct store *st = NULL;
    struct vault *v = NULL;
    char *psec = NULL, *ssec = NULL;
    struct errbuf eb = {0};
    int64_t account, id = 0, now = clock_now();
    int rc, code = CLI_FAIL;

    if (opt_parse("integration add", argc, argv, opts, pos, 0, &npos, &help) != 0)
        return CLI_USAGE;
    if (help) {
        printf("usage: memsync integration add --partner-tenant-id ID --partner-app-id ID\n"
               "         --partner-app-secret-file FILE --sync-app-id ID "
               "--sync-app-secret-file FILE\n"
               "         [--name NAME] [--partner-app-secret-expires DATE]\n"
               "         [--sync-app-secret-expires DATE] [--tenant-source "
               "partner_center|contracts|gdap]\n"
               "         [--cloud global|usgov|usgovdod|china] [--no-sync]\n"
               "--cloud sets the login, Graph and Partner Center hosts and token audiences of a\n"
               "national cloud (US Government GCC High or DoD, 21Vianet); URL settings still win.\n"
               "Secret files may be - (stdin); without a file, MEMSYNC_PARTNER_APP_SECRET and\n"
               "MEMSYNC_SYNC_APP_SECRET are used. Secrets are never accepted on the command "
               "line.\n");
        return CLI_OK;
    }
    if (tenant == NULL || papp == NULL || sapp == NULL) {
        fprintf(stderr, "memsync integration add: --partner-tenant-id, --partner-app-id and "
                        "--sync-app-id are required (see --help)\n");
        return CLI_USAGE;
    }
    if (cloud != NULL && cloud_find(cloud) == NULL) {
        fprintf(stderr, "memsync integration add: --cloud is one of %s\n", CLOUD_NAMES);
        return CLI_USAGE;
    }
    if (!guid_valid(tenant) || !guid_valid(papp) || !guid_valid(sapp)) {
        const char *which = !guid_valid(tenant) ? "Microsoft Partner Account ID"
                            : !guid_valid(papp) ? "Microsoft Partner App ID"
                                                : "Microsoft Sync App ID";
        const char *val = !guid_valid(tenant) ? tenant : !guid_valid(papp) ? papp : sapp;

        fprintf(stderr,
                "memsync integration add: the %s '%s' is not a GUID "
                "(like 00000000-0000-0000-0000-000000000000); copy it from the Azure portal\n",
                which, val);
        return CLI_USAGE;
    }
    if (pfile != NULL && sfile != NULL && strcmp(pfile, "-") == 0 && strcmp(sfile, "-") == 0) {
        fprintf(stderr, "memsync integration add: only one secret can come from stdin\n");
        return CLI_USAGE;
    }
    if (source != NULL && strcmp(source, "partner_center") != 0 &&
        strcmp(source, "contracts") != 0 && strcmp(source, "gdap") != 0) {
        fprintf(stderr, "memsync integration add: --tenant-source must be partner_center, "
                        "contracts or gdap\n");
        return CLI_USAGE;
    }
    in.partner_secret_expires = now + INTEGRATION_SECRET_LIFETIME;
    in.sync_secret_expires = now + INTEGRATION_SECRET_LIFETIME;
    if (pexp != NULL && (rc = parse_date_opt(pexp, "--partner-app-secret-expires",
                                             &in.partner_secret_expires, &eb)) != ERR_OK) {
        fprintf(stderr, "memsync integration add: %s\n", eb.msg);
        return CLI_USAGE;
    }
    if (sexp != NULL && (rc = parse_date_opt(sexp, "--sync-app-secret-expires",
                                             &in.sync_secret_expires, &eb)) != ERR_OK) {
        fprintf(stderr, "memsync integration add: %s\n", eb.msg);
        return CLI_USAGE;
    }
    if (in.partner_secret_expires > now + INTEGRATION_SECRET_MAX_LIFE ||
        in.sync_secret_expires > now + INTEGRATION_SECRET_MAX_LIFE)
        log_warn("a secret expiry date is more than 24 months away; Microsoft allows at most 24 "
                 "months, so check the date shown in Entra ID");

    if ((rc = read_secret(pfile, "MEMSYNC_PARTNER_APP_SECRET", "Partner App", &psec, &eb)) !=
        ERR_OK)
        goto out;
    if ((rc = read_secret(sfile, "MEMSYNC_SYNC_APP_SECRET", "Sync App", &ssec, &eb)) != ERR_OK)
        goto out;
    if (guid_valid(psec) || guid_valid(ssec)) {
        rc = err_set(&eb, ERR_INVAL,
                     "the %s key looks like a GUID: that is the secret's ID, not its value. Copy "
                     "the Value column from Entra ID > App registrations > Certificates & secrets",
                     guid_valid(psec) ? "Partner App" : "Sync App");
        goto out;
    }
    if ((rc = open_store(cx, &st, &account, &eb)) != ERR_OK)
        goto out;
    if ((rc = open_vault(cx, 1, &v, &eb)) != ERR_OK)
        goto out;
    {
        struct integration_input ii = {0};
        struct validation val = {0};

        ii.name = name;
        ii.partner_tenant_id = tenant;
        ii.partner_app_id = papp;
        ii.partner_app_secret = psec;
        ii.sync_app_id = sapp;
        ii.sync_app_secret = ssec;
        ii.partner_expires_at = in.partner_secret_expires;
        ii.sync_expires_at = in.sync_secret_expires;
        ii.tenant_source = source;
        ii.cloud = cloud;
        printf("Checking the values with Microsoft:\n");
        rc = integration_create(&cx->cfg, st, v, account, &ii, &id, &val, &eb);
        if (val.n > 0) {
            validation_print(&val, stdout);
            fflush(stdout);
        }
        if (rc == ERR_AUTH && !val.ok)
            err_set(&eb, ERR_AUTH,
                    "not saved: the checks marked FAIL above must pass first (each says "
                    "what to do)");
        validation_clear(&val);
        if (rc != ERR_OK)
            goto out;
    }
    printf("integration %lld saved (%s)\n", (long long)id,
           name != NULL ? name : "Microsoft Intune");
    code = CLI_OK;
    if (!no_sync) {
        struct integration saved = {0};

        if ((rc = store_integration_get(st, account, id, &saved, &eb)) != ERR_OK)
            goto out;
        struct sync_flags fl = {0};

        code = run_sync(cx, st, &saved, &fl, NULL);
        integration_clear(&saved);
    }
out:
    if (rc != ERR_OK) {
        fprintf(stderr, "memsync integration add: %s\n", eb.msg);
        code = CLI_FAIL;
    }
    vault_wipe(psec);
    vault_wipe(ssec);
    integration_clear(&in);
    vault_close(v);
    store_close(st);
    return code;
}

static json_t *
integration_json(const struct integration *in)
{
    char pexp[32], sexp[32], created[32];

    clock_fmt(in->partner_secret_expires, pexp, sizeof pexp);
    clock_fmt(in->sync_secret_expires, sexp, sizeof sexp);
    clock_fmt(in->created_at, created, sizeof created);
    return json_pack(
        "{s:I, s:s?, s:s?, s:s?, s:{s:s?, s:s?, s:s}, s:{s:s?, s:s?, s:s}, s:s?, s:I, s:s?, s:s}",
        "id", (json_int_t)in->id, "name", in->name, "partner_tenant_id", in->partner_tenant_id,
        "partner_app_id", in->partner_app_id, "partner_app_secret", "hint", in->partner_secret_hint,
        "expires_at", pexp[0] ? pexp : NULL, "expiry_source",
        in->partner_secret_expiry_source != NULL ? in->partner_secret_expiry_source : "entered",
        "sync_app_secret", "hint", in->sync_secret_hint, "expires_at", sexp[0] ? sexp : NULL,
        "expiry_source",
        in->sync_secret_expiry_source != NULL ? in->sync_secret_expiry_source : "entered",
        "sync_app_id", in->sync_app_id, "sync_interval_seconds", (json_int_t)in->sync_interval,
        "tenant_source", in->tenant_source, "cloud", in->cloud != NULL ? in->cloud : "global");
}

static const char *const integration_columns[] = {
    "id",
    "name",
    "partner_tenant_id",
    "partner_app_id",
    "sync_app_id",
    "partner_app_secret.expires_at",
    "sync_app_secret.expires_at",
    "tenant_source",
    "cloud",
};

static int
integration_list(struct ctx *cx, int argc, char **argv)
{
    const char *format = "table";
    int help = 0, npos;
    const char *pos[1];
    const struct opt opts[] = {{"format", 1, &format, NULL}, {NULL, 0, NULL, NULL}};
    struct store *st = NULL;
    struct integration *list = NULL;
    size_t n = 0;
    struct errbuf eb = {0};
    int64_t account;
    struct output *out = NULL;
    int code = CLI_FAIL;

    if (opt_parse("integration list", argc, argv, opts, pos, 0, &npos, &help) != 0)
        return CLI_USAGE;
    if (help) {
        printf("usage: memsync integration list [--format table|csv|json|jsonl]\n");
        return CLI_OK;
    }
    if (open_store(cx, &st, &account, &eb) != ERR_OK ||
        store_integration_list(st, account, &list, &n, &eb) != ERR_OK) {
        code = fail("integration list", &eb);
        goto out;
    }
    if (open_output(format, integration_columns,
                    sizeof integration_columns / sizeof integration_columns[0], NULL, 0, &out,
                    &eb) != ERR_OK) {
        fprintf(stderr, "memsync integration list: %s\n", eb.msg);
        code = CLI_USAGE;
        goto out;
    }
    for (size_t i = 0; i < n; i++)
        if (row_out(out, integration_json(&list[i])) != ERR_OK)
            break;
    code = finish_output(out);
out:
    for (size_t i = 0; i < n; i++)
        integration_clear(&list[i]);
    free(list);
    store_close(st);
    return code;
}

static int
integration_show_remove(struct ctx *cx, int argc, char **argv, int remove)
{
    const char *cmd = remove ? "integration remove" : "integration show";
    int help = 0, npos;
    const char *pos[1];
    const struct opt opts[] = {{NULL, 0, NULL, NULL}};
    struct store *st = NULL;
    struct integration in = {0};
    struct errbuf eb = {0};
    int64_t account, id;
    int code = CLI_FAIL;

    if (opt_parse(cmd, argc, argv, opts, pos, 1, &npos, &help) != 0)
        return CLI_USAGE;
    if (help || npos != 1 || parse_id(pos[0], &id) != 0) {
        fprintf(help ? stdout : stderr, "usage: memsync %s ID\n", cmd);
        return help ? CLI_OK : CLI_USAGE;
    }
    if (open_store(cx, &st, &account, &eb) != ERR_OK) {
        code = fail(cmd, &eb);
        goto out;
    }
    if (store_integration_get(st, account, id, &in, &eb) != ERR_OK) {
        code = fail(cmd, &eb);
        goto out;
    }
    if (remove) {
        if (integration_remove(st, account, id, &eb) != ERR_OK) {
            code = fail(cmd, &eb);
            goto out;
        }
        printf("integration %lld removed\n", (long long)id);
    } else {
        json_t *j = integration_json(&in);

        json_dumpf(j, stdout, JSON_INDENT(2) | JSON_SORT_KEYS);
        putchar('\n');
        json_decref(j);
    }
    code = CLI_OK;
out:
    integration_clear(&in);
    store_close(st);
    return code;
}

static int
integration_rotate(struct ctx *cx, int argc, char **argv)
{
    const char *file = NULL, *expires = NULL;
    int partner = 0, sync = 0, help = 0, npos;
    const char *pos[1];
    const struct opt opts[] = {
        {"partner", 0, NULL, &partner}, {"sync", 0, NULL, &sync}, {"secret-file", 1, &file, NULL},
        {"expires", 1, &expires, NULL}, {NULL, 0, NULL, NULL},
    };
    struct store *st = NULL;
    struct vault *v = NULL;
    struct integration in = {0};
    struct errbuf eb = {0};
    struct validation val = {0};
    char *newsec = NULL;
    int64_t account, id, exp = clock_now() + INTEGRATION_SECRET_LIFETIME;
    const char *label, *which;
    int rc = ERR_OK, code = CLI_FAIL;

    if (opt_parse("integration rotate-secret", argc, argv, opts, pos, 1, &npos, &help) != 0)
        return CLI_USAGE;
    if (help || npos != 1 || parse_id(pos[0], &id) != 0 || partner == sync) {
        fprintf(help ? stdout : stderr,
                "usage: memsync integration rotate-secret ID --partner|--sync --secret-file FILE "
                "[--expires DATE]\n"
                "The new secret is checked with Microsoft first, then swapped in; a sync already "
                "running finishes with the old one.\n");
        return help ? CLI_OK : CLI_USAGE;
    }
    if (expires != NULL && parse_date_opt(expires, "--expires", &exp, &eb) != ERR_OK) {
        fprintf(stderr, "memsync integration rotate-secret: %s\n", eb.msg);
        return CLI_USAGE;
    }
    label = partner ? "Partner App" : "Sync App";
    which = partner ? "partner" : "sync";
    if ((rc = read_secret(file, partner ? "MEMSYNC_PARTNER_APP_SECRET" : "MEMSYNC_SYNC_APP_SECRET",
                          label, &newsec, &eb)) != ERR_OK)
        goto out;
    /* Looked up first so that an unknown ID is said before any check runs. */
    if ((rc = open_store(cx, &st, &account, &eb)) != ERR_OK ||
        (rc = store_integration_get(st, account, id, &in, &eb)) != ERR_OK ||
        (rc = open_vault(cx, 0, &v, &eb)) != ERR_OK)
        goto out;
    printf("Checking the new %s key with Microsoft:\n", label);
    rc = integration_rotate_secret(&cx->cfg, st, v, account, id, which, newsec, NULL, exp, 0, &val,
                                   &eb);
    if (val.n > 0) {
        validation_print(&val, stdout);
        fflush(stdout);
    }
    if (rc == ERR_AUTH && !val.ok)
        err_set(&eb, ERR_AUTH,
                "the %s key was not changed: the checks marked FAIL above "
                "must pass first",
                label);
    if (rc != ERR_OK)
        goto out;
    {
        char d[32];

        clock_fmt(exp, d, sizeof d);
        printf("the %s key of integration %lld was replaced; it expires on %.10s\n", label,
               (long long)id, d);
    }
    code = CLI_OK;
out:
    if (rc != ERR_OK)
        fprintf(stderr, "memsync integration rotate-secret: %s\n", eb.msg);
    validation_clear(&val);
    vault_wipe(newsec);
    integration_clear(&in);
    vault_close(v);
    store_close(st);
    return code;
}

static int
cmd_integration(struct ctx *cx, int argc, char **argv)
{
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
        fprintf(argc < 2 ? stderr : stdout,
                "usage: memsync integration add | list | show ID | rotate-secret ID | remove "
                "ID\n");
        return argc < 2 ? CLI_USAGE : CLI_OK;
    }
    if (strcmp(argv[1], "add") == 0)
        return integration_add(cx, argc - 1, argv + 1);
    if (strcmp(argv[1], "list") == 0)
        return integration_list(cx, argc - 1, argv + 1);
    if (strcmp(argv[1], "show") == 0)
        return integration_show_remove(cx, argc - 1, argv + 1, 0);
    if (strcmp(argv[1], "remove") == 0)
        return integration_show_remove(cx, argc - 1, argv + 1, 1);
    if (strcmp(argv[1], "rotate-secret") == 0)
        return integration_rotate(cx, argc - 1, argv + 1);
    fprintf(stderr,
            "memsync integration: unknown subcommand '%s' (add, list, show, "
            "rotate-secret, remove)\n",
            argv[1]);
    return CLI_USAGE;
}

/* ---- sync ---------------------------------------------------------------------------------- */

static void
on_signal(int sig)
{
    (void)sig;
    sync_request_stop();
}

static int
cmd_sync(struct ctx *cx, int argc, char **argv)
{
    const char *iid = NULL, *par = NULL, *strategy = NULL;
    int full = 0, incr = 0, help = 0, queue = 0, npos;
    struct sync_flags fl = {0};
    const char *pos[1];
    const struct opt opts[] = {
        {"integration", 1, &iid, NULL},
        {"full", 0, NULL, &full},
        {"incremental", 0, NULL, &incr},
        {"parallel", 1, &par, NULL},
        {"no-software", 0, NULL, &fl.no_software},
        {"hardware-detail", 0, NULL, &fl.hardware_detail},
        {"app-strategy", 1, &strategy, NULL},
        {"queue", 0, NULL, &queue},
        {"confirm-retire", 0, NULL, &fl.confirm_retire},
        {"verbose", 0, NULL, &fl.verbose},
        {NULL, 0, NULL, NULL},
    };
    static char verbose_flag[] = "--verbose";
    struct store *st = NULL;
    struct integration *list = NULL;
    size_t n = 0;
    struct errbuf eb = {0};
    int64_t account, id = 0, parallel = 0;
    int code = CLI_OK, ran = 0, failed_any = 0;
    struct sigaction sa;

    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "-v") == 0)
            argv[i] = verbose_flag;
    if (opt_parse("sync", argc, argv, opts, pos, 0, &npos, &help) != 0)
        return CLI_USAGE;
    if (help) {
        printf("usage: memsync sync [--integration ID] [--full|--incremental] [--parallel N]\n"
               "         [--no-software] [--hardware-detail] [--app-strategy "
               "auto|per-device|export]\n"
               "         [--queue] [--confirm-retire] [-v|--verbose]\n"
               "On a terminal: a progress bar with elapsed time and an estimate, a line per "
               "tenant as it\nfinishes (ok, or failed with what to do); logs only with -v.\n"
               "--queue: hand the sync to `memsync worker` processes (PostgreSQL) and return at "
               "once.\n"
               "--confirm-retire: retire devices that left Intune even when more than "
               "retire_guard_pct %% of a\n"
               "tenant's devices go at once (the guard otherwise keeps them and warns).\n"
               "--app-strategy: detected apps per device through $batch, or from the Intune "
               "AppInvRawData report export;\n"
               "auto (default) uses the export for tenants with 2000 devices or more.\n"
               "--hardware-detail reads memory and Ethernet MAC per device: one more Intune "
               "request per device.\n"
               "Exit 0: every tenant synced; 3: some tenants failed (listed with remedies); 1: "
               "the sync could not run.\n");
        return CLI_OK;
    }
    if (full && incr) {
        fprintf(stderr, "memsync sync: --full and --incremental exclude each other\n");
        return CLI_USAGE;
    }
    if (queue && fl.confirm_retire) {
        /* A queued job carries no options, and a confirmation belongs to the sync the operator
         * watches: the one this command runs. */
        fprintf(stderr, "memsync sync: --confirm-retire cannot be queued; run `memsync sync "
                        "--confirm-retire` without --queue\n");
        return CLI_USAGE;
    }
    if (strategy != NULL) {
        if (strcmp(strategy, "per-device") == 0) {
            fl.export_min_devices = INT_MAX;
        } else if (strcmp(strategy, "export") == 0) {
            fl.export_min_devices = 1;
        } else if (strcmp(strategy, "auto") != 0) {
            fprintf(stderr, "memsync sync: --app-strategy is auto, per-device or export\n");
            return CLI_USAGE;
        }
    }
    if ((iid != NULL && parse_id(iid, &id) != 0) ||
        (par != NULL && (parse_id(par, &parallel) != 0 || parallel > 512))) {
        fprintf(stderr, "memsync sync: %s must be a positive number\n",
                iid != NULL && parse_id(iid, &id) != 0 ? "--integration" : "--parallel");
        return CLI_USAGE;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    if (open_store(cx, &st, &account, &eb) != ERR_OK ||
        store_integration_list(st, account, &list, &n, &eb) != ERR_OK) {
        code = fail("sync", &eb);
        goto out;
    }
    if (n == 0) {
        fprintf(stderr, "memsync sync: no integration is set up yet; add one with `memsync "
                        "integration add`\n");
        code = CLI_FAIL;
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        int c;

        if (id != 0 && list[i].id != id)
            continue;
        ran = 1;
        if (queue) {
            int64_t run = 0;

            if (store_job_enqueue(st, list[i].id, !incr, clock_now(), &run, &eb) != ERR_OK) {
                code = fail("sync", &eb);
                continue;
            }
            printf("sync of integration %lld queued as run %lld; `memsync worker` processes "
                   "run it\n",
                   (long long)list[i].id, (long long)run);
            continue;
        }
        fl.incremental = incr;
        fl.parallel = (int)parallel;
        c = run_sync(cx, st, &list[i], &fl, &failed_any);
        if (c == CLI_FAIL || (c == CLI_PARTIAL && code == CLI_OK))
            code = c;
    }
    if (!ran) {
        fprintf(stderr,
                "memsync sync: integration %lld does not exist (see memsync integration "
                "list)\n",
                (long long)id);
        code = CLI_FAIL;
    }
    if (code == CLI_PARTIAL && failed_any)
        print_failed_clients(st, account);
    if (ran && !queue && code != CLI_FAIL)
        print_warned_clients(st, account);
out:
    for (size_t i = 0; i < n; i++)
        integration_clear(&list[i]);
    free(list);
    store_close(st);
    return code;
}

/* ---- worker (PostgreSQL job queue) --------------------------------------------------------- */

static void
on_worker_signal(int sig)
{
    if (sig == SIGHUP)
        worker_request_key_reload();
    else
        worker_request_stop();
}

static int
cmd_worker(struct ctx *cx, int argc, char **argv)
{
    const char *lease = NULL, *poll = NULL, *conc = NULL;
    int once = 0, no_software = 0, help = 0, npos;
    const char *pos[1];
    const struct opt opts[] = {
        {"lease-seconds", 1, &lease, NULL}, {"poll-seconds", 1, &poll, NULL},
        {"once", 0, NULL, &once},           {"no-software", 0, NULL, &no_software},
        {"concurrency", 1, &conc, NULL},    {NULL, 0, NULL, NULL},
    };
    struct store *st = NULL;
    struct vault *v = NULL;
    struct worker_opts wo = {0};
    struct worker_stats ws = {0};
    struct errbuf eb = {0};
    int64_t account, lease_s = 0, poll_s = 0, concurrency = 0;
    struct sigaction sa;
    int code = CLI_OK;

    if (opt_parse("worker", argc, argv, opts, pos, 0, &npos, &help) != 0)
        return CLI_USAGE;
    if (help) {
        printf("usage: memsync worker [--once] [--lease-seconds N] [--poll-seconds N] "
               "[--concurrency N] [--no-software]\n"
               "Runs queued syncs (`memsync sync --queue`, or `memsync serve` with sync_runner = "
               "workers)\nfrom a shared PostgreSQL database; start as many as you like, on any "
               "machine with the\nsame --db and master key file. --once: exit when the queue "
               "is empty. A job whose worker\ndies is taken by another once its lease (default "
               "%d s) lapses. --concurrency: tenant jobs\nsynced at once (default: "
               "sync_parallel).\nExit 0; 3 when a job failed (the run and the log say why); 1 when "
               "the worker could not start.\n",
               WORKER_LEASE_DEFAULT_S);
        return CLI_OK;
    }
    if ((lease != NULL && (parse_id(lease, &lease_s) != 0 || lease_s > 86400)) ||
        (poll != NULL && (parse_id(poll, &poll_s) != 0 || poll_s > 3600))) {
        fprintf(stderr, "memsync worker: --lease-seconds is 1 to 86400 and --poll-seconds 1 to "
                        "3600\n");
        return CLI_USAGE;
    }
    if (conc != NULL &&
        (parse_id(conc, &concurrency) != 0 || concurrency > WORKER_CONCURRENCY_MAX)) {
        fprintf(stderr, "memsync worker: --concurrency is 1 to %d\n", WORKER_CONCURRENCY_MAX);
        return CLI_USAGE;
    }
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_worker_signal;
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGHUP, &sa, NULL);
    if (open_store(cx, &st, &account, &eb) != ERR_OK) {
        code = fail("worker", &eb);
        goto out;
    }
    if (strcmp(store_backend(st), "postgresql") != 0) {
        fprintf(stderr,
                "memsync worker: workers share a PostgreSQL database (--db postgresql://...); "
                "with the SQLite database %s, `memsync serve` and `memsync sync` run the syncs "
                "themselves\n",
                cx->cfg.db);
        code = CLI_FAIL;
        goto out;
    }
    if (open_vault(cx, 0, &v, &eb) != ERR_OK) {
        code = fail("worker", &eb);
        goto out;
    }
    wo.cfg = &cx->cfg;
    wo.vault = v;
    wo.lease_s = (int)lease_s;
    wo.poll_s = (int)poll_s;
    wo.once = once;
    wo.software = !no_software;
    wo.concurrency = (int)concurrency;
    if (worker_run(st, &wo, &ws, &eb) != ERR_OK)
        code = fail("worker", &eb);
    else if (ws.failed > 0)
        code = CLI_PARTIAL;
out:
    vault_close(v);
    store_close(st);
    return code;
}

/* ---- clients and assets -------------------------------------------------------------------- */

static int
client_cb(void *arg, const struct client_row *c)
{
    return row_out(arg, client_to_json(c));
}

/* For people: the error columns only matter in `status`, and are wide. */
static const char *const client_table_columns[] = {
    "id",           "name",           "tenant_id",  "status",       "last_sync_at",
    "device_count", "software_count", "error.code", "warning.code",
};

static int
clients_update(struct ctx *cx, int argc, char **argv)
{
    const char *what = argv[0];
    int rename = strcmp(what, "rename") == 0;
    struct store *st = NULL;
    struct errbuf eb = {0};
    int64_t account;
    int code = CLI_FAIL;

    int help = 0, npos;
    const char *pos[2];
    const struct opt opts[] = {{NULL, 0, NULL, NULL}};
    char cmd[32];

    snprintf(cmd, sizeof cmd, "clients %s", what);
    if (opt_parse(cmd, argc, argv, opts, pos, 2, &npos, &help) != 0 || help ||
        npos != (rename ? 2 : 1)) {
        fprintf(help ? stdout : stderr, "usage: memsync clients %s CLIENT%s\n", what,
                rename ? " NAME" : "");
        return help ? CLI_OK : CLI_USAGE;
    }
    if (open_store(cx, &st, &account, &eb) != ERR_OK ||
        store_client_update(st, account, pos[0],
                            rename                         ? -1
                            : strcmp(what, "include") == 0 ? 1
                                                           : 0,
                            rename ? pos[1] : NULL, &eb) != ERR_OK) {
        code = fail("clients", &eb);
        goto out;
    }
    printf("client %s %s\n", pos[0],
           rename                         ? (pos[1][0] ? "renamed" : "name restored")
           : strcmp(what, "include") == 0 ? "included: it is synced again"
                                          : "excluded: it is no longer synced; its data is kept");
    code = CLI_OK;
out:
    store_close(st);
    return code;
}

static int
cmd_clients(struct ctx *cx, int argc, char **argv)
{
    const char *format = "table";
    int help = 0, npos;
    const char *pos[1];
    const struct opt opts[] = {{"format", 1, &format, NULL}, {NULL, 0, NULL, NULL}};
    struct store *st = NULL;
    struct output *out = NULL;
    struct errbuf eb = {0};
    int64_t account;
    int code = CLI_FAIL;

    if (argc >= 2 && (strcmp(argv[1], "include") == 0 || strcmp(argv[1], "exclude") == 0 ||
                      strcmp(argv[1], "rename") == 0))
        return clients_update(cx, argc - 1, argv + 1);
    if (opt_parse("clients", argc, argv, opts, pos, 0, &npos, &help) != 0)
        return CLI_USAGE;
    if (help) {
        printf("usage: memsync clients [--format table|csv|json|jsonl]\n"
               "       memsync clients exclude|include CLIENT\n"
               "       memsync clients rename CLIENT NAME   (\"\" restores Microsoft's name)\n"
               "CLIENT is a client id, a tenant id or the exact name. Excluded tenants are not "
               "synced; their data is kept.\n");
        return CLI_OK;
    }
    if (bad_format("clients", format))
        return CLI_USAGE;
    if (open_store(cx, &st, &account, &eb) != ERR_OK) {
        code = fail("clients", &eb);
        goto out;
    }
    if (open_output(format, client_columns, client_column_count, client_table_columns,
                    sizeof client_table_columns / sizeof client_table_columns[0], &out,
                    &eb) != ERR_OK) {
        code = fail("clients", &eb);
        goto out;
    }
    if (store_clients_each(st, account, client_cb, out, &eb) != ERR_OK) {
        code = fail("clients", &eb);
        output_end(out, NULL);
        goto out;
    }
    code = finish_output(out);
out:
    store_close(st);
    return code;
}

static int
asset_cb(void *arg, const struct asset *a)
{
    return row_out(arg, asset_to_json(a));
}

struct import_out {
    struct output *out;
    enum importfmt_kind kind;
};

/* A hardware asset in an import format (`assets hardware --format snipeit|glpi`). */
static int
import_cb(void *arg, const struct asset *a)
{
    struct import_out *io = arg;
    json_t *row = asset_to_json(a);
    json_t *x = io->kind == IMPORTFMT_SNIPEIT
                    ? importfmt_snipeit_row(row)
                    : importfmt_glpi_inventory(row, "memsync-" MEMSYNC_VERSION);

    json_decref(row);
    return row_out(io->out, x);
}

static int
software_cb(void *arg, const struct software_row *sw)
{
    return row_out(arg, software_to_json(sw));
}

static int
install_cb(void *arg, const struct store_cell *cells, size_t n)
{
    return row_out(arg, rowjson_cells(cells, n));
}

static const char *const install_columns[] = {
    "hardware_asset_id", "software_id",   "client.name",  "device_name", "name",
    "version",           "first_seen_at", "last_seen_at", "removed_at",
};

/* `--client X` as a list filter: a memsync id, a tenant id, or an exact name. */
static void
client_filter(const char *client, struct store_filter *f)
{
    int64_t id;

    f->op = "eq";
    f->value = client;
    if (parse_id(client, &id) == 0)
        f->field = "client.id";
    else if (guid_valid(client))
        f->field = "client.tenant_id";
    else
        f->field = "client.name";
}

struct client_match {
    const char *want;
    int found;
};

static int
client_match_cb(void *arg, const struct client_row *c)
{
    struct client_match *m = arg;
    char id[24];

    snprintf(id, sizeof id, "%lld", (long long)c->id);
    if (strcmp(id, m->want) == 0 || (c->tenant_id != NULL && strcmp(c->tenant_id, m->want) == 0) ||
        (c->name != NULL && strcmp(c->name, m->want) == 0))
        m->found = 1;
    return 0;
}

/* `--client X` must name a client (what client_filter matches); ERR_NOTFOUND says what was
 * looked for, so a typo is an error rather than an empty list. */
static int
check_client(struct store *st, int64_t account, const char *client, struct errbuf *eb)
{
    struct client_match m = {client, 0};
    int rc;

    if (client == NULL)
        return ERR_OK;
    if ((rc = store_clients_each(st, account, client_match_cb, &m, eb)) != ERR_OK)
        return rc;
    if (!m.found)
        return err_set(eb, ERR_NOTFOUND,
                       "no client matches --client '%s' (a memsync client id, a tenant id or the "
                       "exact name); `memsync clients` lists them",
                       client);
    return ERR_OK;
}

#define ASSETS_COLUMNS_MAX 48

/* `assets hardware` selection and layout: --os, --type, --stale-days, --sort, --columns,
 * --no-headers, --limit, through the list filters the API uses. */
struct assets_view {
    const char *os, *type, *stale, *sort, *columns, *limit;
    /* Filters of the insight figures (hwfilter.h) and plain column filters. */
    const char *os_support, *serial, *encrypted, *compliance, *model, *manufacturer, *ownership,
        *enrolled_before, *enrolled_after;
    struct hwfilter hf;
    int no_headers, missing, included;
    struct store_filter f[12];
    struct store_sort sorts[STORE_LIST_MAX_SORTS];
    char sortbuf[512], colbuf[1024], since[32];
    const char *cols[ASSETS_COLUMNS_MAX];
    size_t ncols;
};

static int
known_asset_column(const char *c)
{
    for (size_t i = 0; i < asset_column_count; i++)
        if (strcmp(asset_columns[i], c) == 0)
            return 1;
    return 0;
}

/* Fills q's filters, sorts and limit, and v->cols; ERR_USAGE with a message for bad values. */
static int
assets_view_apply(struct assets_view *v, struct asset_query *q, struct errbuf *eb)
{
    int64_t n;
    size_t nf = 0, ns = 0;
    char *p, *next;

    if (v->os != NULL)
        v->f[nf++] = (struct store_filter){"operating_system.name", "eq", v->os};
    if (v->type != NULL)
        v->f[nf++] = (struct store_filter){"type", "eq", v->type};
    hwfilter_init(&v->hf, clock_now());
    {
        /* The same tests as the insight figures: --stale-days counts never checked in too. */
        const char *const hk[][2] = {{"stale_days", v->stale},
                                     {"os_support", v->os_support},
                                     {"serial", v->serial},
                                     {"encrypted", v->encrypted},
                                     {"compliance", v->compliance}};

        for (size_t i = 0; i < sizeof hk / sizeof hk[0]; i++)
            if (hk[i][1] != NULL && hwfilter_arg(&v->hf, hk[i][0], hk[i][1], eb) < 0) {
                char msg[sizeof eb->msg];

                snprintf(msg, sizeof msg, "%s", eb->msg);
                return err_set(eb, ERR_USAGE, "--%s: %s", hk[i][0], msg);
            }
    }
    if (v->model != NULL)
        v->f[nf++] = (struct store_filter){"model", "eq", v->model};
    if (v->manufacturer != NULL)
        v->f[nf++] = (struct store_filter){"manufacturer", "eq", v->manufacturer};
    if (v->ownership != NULL)
        v->f[nf++] = (struct store_filter){"ownership", "eq", v->ownership};
    if (v->enrolled_before != NULL)
        v->f[nf++] = (struct store_filter){"enrolled_at", "lt", v->enrolled_before};
    if (v->enrolled_after != NULL)
        v->f[nf++] = (struct store_filter){"enrolled_at", "gte", v->enrolled_after};
    if (v->missing) /* missing from Intune's last complete listing, not retired yet */
        v->f[nf++] = (struct store_filter){"missing_since", "gte", "1970-01-01"};
    if (v->included) /* the scope of `memsync insights` without --client */
        v->f[nf++] = (struct store_filter){"client.included", "eq", "true"};
    q->filters = v->f;
    q->nfilters = nf;
    if (v->limit != NULL) {
        if (parse_id(v->limit, &n) != 0 || n > 1000000000)
            return err_set(eb, ERR_USAGE, "--limit must be a positive number of rows");
        q->limit = (int)n;
    }
    if (v->sort != NULL) {
        if (strlen(v->sort) >= sizeof v->sortbuf)
            return err_set(eb, ERR_USAGE, "--sort is too long");
        snprintf(v->sortbuf, sizeof v->sortbuf, "%s", v->sort);
        for (p = v->sortbuf; p != NULL; p = next) {
            int desc = *p == '-';

            next = strchr(p, ',');
            if (next != NULL)
                *next++ = '\0';
            if (*p == '-' || *p == '+')
                p++;
            if (ns >= STORE_LIST_MAX_SORTS)
                return err_set(eb, ERR_USAGE, "--sort takes at most %d fields",
                               STORE_LIST_MAX_SORTS);
            if (!store_list_has_field("hardware", p))
                return err_set(eb, ERR_USAGE,
                               "--sort: unknown field '%s' (the columns of --format csv, e.g. "
                               "name, -last_check_in_at)",
                               p);
            v->sorts[ns++] = (struct store_sort){p, desc};
        }
        q->sorts = v->sorts;
        q->nsorts = ns;
    }
    if (v->columns != NULL) {
        if (strlen(v->columns) >= sizeof v->colbuf)
            return err_set(eb, ERR_USAGE, "--columns is too long");
        snprintf(v->colbuf, sizeof v->colbuf, "%s", v->columns);
        for (p = v->colbuf; p != NULL; p = next) {
            next = strchr(p, ',');
            if (next != NULL)
                *next++ = '\0';
            if (!known_asset_column(p))
                return err_set(eb, ERR_USAGE,
                               "--columns: unknown column '%s' (the header of --format csv lists "
                               "them)",
                               p);
            if (v->ncols >= ASSETS_COLUMNS_MAX)
                return err_set(eb, ERR_USAGE, "--columns: too many columns");
            v->cols[v->ncols++] = p;
        }
    }
    return ERR_OK;
}

static const char *const product_columns[] = {
    "id", "name", "publisher", "version_count", "client_count", "device_count", "title_count",
};

/* `memsync assets products`: software across clients (docs/API.md), as the API lists it. */
static int
assets_products(struct ctx *cx, const char *format, const char *search)
{
    struct store *st = NULL;
    struct software_snap *snap = NULL;
    struct output *out = NULL;
    struct errbuf eb = {0};
    int64_t account;
    int code = CLI_FAIL, rc = ERR_OK;

    if (open_store(cx, &st, &account, &eb) != ERR_OK ||
        api_software_snap(st, account, &snap, &eb) != ERR_OK ||
        open_output(format, product_columns, sizeof product_columns / sizeof product_columns[0],
                    NULL, 0, &out, &eb) != ERR_OK) {
        code = fail("assets", &eb);
        goto out;
    }
    for (size_t i = 0; i < snap->ix->nproducts && rc == ERR_OK; i++)
        if (product_matches(&snap->ix->products[i], search))
            rc = row_out(out, api_software_product_json(snap, &snap->ix->products[i], 0));
    if (rc != ERR_OK) {
        output_end(out, NULL);
        goto out;
    }
    code = finish_output(out);
out:
    api_software_release(snap);
    api_software_forget();
    store_close(st);
    return code;
}

static int
cmd_assets(struct ctx *cx, int argc, char **argv)
{
    const char *format = "table", *client = NULL, *search = NULL;
    int help = 0, retired = 0, npos;
    const char *pos[1];
    struct assets_view view;
    const struct opt opts[] = {
        {"format", 1, &format, NULL},
        {"client", 1, &client, NULL},
        {"search", 1, &search, NULL},
        {"include-retired", 0, NULL, &retired},
        {"os", 1, &view.os, NULL},
        {"type", 1, &view.type, NULL},
        {"stale-days", 1, &view.stale, NULL},
        {"os-support", 1, &view.os_support, NULL},
        {"serial", 1, &view.serial, NULL},
        {"encrypted", 1, &view.encrypted, NULL},
        {"compliance", 1, &view.compliance, NULL},
        {"model", 1, &view.model, NULL},
        {"manufacturer", 1, &view.manufacturer, NULL},
        {"ownership", 1, &view.ownership, NULL},
        {"enrolled-before", 1, &view.enrolled_before, NULL},
        {"enrolled-after", 1, &view.enrolled_after, NULL},
        {"missing", 0, NULL, &view.missing},
        {"included", 0, NULL, &view.included},
        {"sort", 1, &view.sort, NULL},
        {"columns", 1, &view.columns, NULL},
        {"limit", 1, &view.limit, NULL},
        {"no-headers", 0, NULL, &view.no_headers},
        {NULL, 0, NULL, NULL},
    };
    struct store *st = NULL;
    struct output *out = NULL;
    struct errbuf eb = {0};
    struct asset_query q = {0};
    int64_t account;
    int code = CLI_FAIL, software, rc, hardware, importing = 0;
    struct import_out imp = {NULL, IMPORTFMT_SNIPEIT};

    memset(&view, 0, sizeof view);
    if (opt_parse("assets", argc, argv, opts, pos, 1, &npos, &help) != 0)
        return CLI_USAGE;
    if (!help && npos == 1 && strcmp(pos[0], "products") == 0) {
        if (client != NULL || retired || view.os != NULL || view.type != NULL ||
            view.stale != NULL || view.sort != NULL || view.columns != NULL || view.limit != NULL ||
            view.no_headers) {
            fprintf(stderr, "memsync assets products: takes --search and --format only\n");
            return CLI_USAGE;
        }
        if (bad_format("assets", format))
            return CLI_USAGE;
        return assets_products(cx, format, search);
    }
    if (help || npos != 1 ||
        (strcmp(pos[0], "hardware") != 0 && strcmp(pos[0], "software") != 0 &&
         strcmp(pos[0], "installs") != 0)) {
        fprintf(help ? stdout : stderr,
                "usage: memsync assets hardware [--client ID|TENANT|NAME] [--search TEXT]\n"
                "         [--include-retired] [--format table|csv|json|jsonl|snipeit|glpi]\n"
                "         [--os NAME] [--type TYPE] [--stale-days N] [--sort [-]FIELD,...]\n"
                "         [--columns COL,...] [--no-headers] [--limit N]\n"
                "         [--os-support past|ends_within:DAYS] [--serial missing|shared]\n"
                "         [--encrypted true|false] [--compliance compliant|not_compliant|STATE]\n"
                "         [--model M] [--manufacturer M] [--ownership O]\n"
                "         [--enrolled-before DATE] [--enrolled-after DATE] [--missing]\n"
                "         [--included]\n"
                "       memsync assets software [--client ID|TENANT|NAME] [--search TEXT]\n"
                "         [--format table|csv|json|jsonl]\n"
                "       memsync assets installs [--client ID|TENANT|NAME] [--search TEXT]\n"
                "         [--include-retired] [--format table|csv|json|jsonl]\n"
                "       memsync assets products [--search TEXT] [--format table|csv|json|jsonl]\n"
                "products: software across clients, grouped by normalised name and publisher.\n"
                "installs: which device has which title; removed installs (removed_at set) "
                "only with --include-retired.\n"
                "hardware: --os and --type match operating_system.name and type (any case); "
                "--stale-days N: not\nchecked in for N days (or never); --sort and --columns "
                "take the column names of --format csv;\n--stale-days, --os-support, --serial, "
                "--encrypted and --compliance are the tests `memsync insights` counts; --included: "
                "only clients\nthat are not excluded (the clients `memsync insights` counts "
                "without --client).\n"
                "--format snipeit: a CSV for Snipe-IT's asset importer; --format glpi: GLPI "
                "inventory documents,\none per line (docs/API.md \"Import formats\").\n");
        return help ? CLI_OK : CLI_USAGE;
    }
    hardware = strcmp(pos[0], "hardware") == 0;
    if (hardware && importfmt_parse(format, &imp.kind, NULL) == ERR_OK) {
        /* Files for Snipe-IT's importer (CSV) and GLPI (inventory JSON lines) */
        importing = 1;
        if (view.columns != NULL || view.no_headers) {
            fprintf(stderr, "memsync assets: --format %s has its own columns\n", format);
            return CLI_USAGE;
        }
    } else if (bad_format("assets", format)) {
        return CLI_USAGE;
    }
    if (!hardware &&
        (view.os != NULL || view.type != NULL || view.stale != NULL || view.sort != NULL ||
         view.columns != NULL || view.limit != NULL || view.no_headers || view.os_support != NULL ||
         view.serial != NULL || view.encrypted != NULL || view.compliance != NULL ||
         view.model != NULL || view.manufacturer != NULL || view.ownership != NULL ||
         view.enrolled_before != NULL || view.enrolled_after != NULL || view.missing ||
         view.included)) {
        fprintf(stderr, "memsync assets: --os, --type, --stale-days, --sort, --columns, --limit "
                        "and --no-headers are for `assets hardware`\n");
        return CLI_USAGE;
    }
    if (hardware && assets_view_apply(&view, &q, &eb) != ERR_OK) {
        fprintf(stderr, "memsync assets: %s\n", eb.msg);
        return CLI_USAGE;
    }
    if (open_store(cx, &st, &account, &eb) != ERR_OK ||
        check_client(st, account, client, &eb) != ERR_OK) {
        code = fail("assets", &eb);
        goto out;
    }
    software = strcmp(pos[0], "software") == 0;
    if (strcmp(pos[0], "installs") == 0)
        rc = open_output(format, install_columns,
                         sizeof install_columns / sizeof install_columns[0], NULL, 0, &out, &eb);
    else if (software)
        rc = open_output(format, software_columns, software_column_count, NULL, 0, &out, &eb);
    else if (importing && imp.kind == IMPORTFMT_SNIPEIT)
        rc = open_output("csv", importfmt_snipeit_columns, importfmt_snipeit_column_count, NULL, 0,
                         &out, &eb);
    else if (importing)
        rc = open_output("jsonl", NULL, 0, NULL, 0, &out, &eb);
    else if (view.ncols > 0)
        rc = open_output(format, view.cols, view.ncols, view.cols, view.ncols, &out, &eb);
    else
        rc = open_output(format, asset_columns, asset_column_count, asset_table_columns,
                         asset_table_column_count, &out, &eb);
    if (rc != ERR_OK) {
        code = fail("assets", &eb);
        goto out;
    }
    if (view.no_headers)
        output_no_headers(out);
    if (importing)
        output_raw_cells(out); /* an importer would keep a guard's ' in the value */
    if (strcmp(pos[0], "installs") == 0) {
        struct store_filter f[1];
        struct list_query lq = {0};

        lq.entity = retired ? "installs_all" : "installs";
        lq.account_id = account;
        lq.filters = f;
        lq.search = search;
        if (client != NULL)
            client_filter(client, &f[lq.nfilters++]);
        rc = store_list_each(st, &lq, install_cb, out, &eb);
    } else if (software) {
        struct software_query sq = {0};

        sq.account_id = account;
        sq.client = client;
        sq.search = search;
        rc = store_software_each(st, &sq, software_cb, out, &eb);
    } else {
        q.account_id = account;
        q.client = client;
        q.search = search;
        q.include_retired = retired;
        imp.out = out;
        if (hwfilter_active(&view.hf)) {
            int limit = q.limit;

            q.limit = 0;
            rc = importing ? hwfilter_each(st, &q, &view.hf, 0, limit, import_cb, &imp, NULL, &eb)
                           : hwfilter_each(st, &q, &view.hf, 0, limit, asset_cb, out, NULL, &eb);
        } else {
            rc = importing ? store_assets_each(st, &q, import_cb, &imp, &eb)
                           : store_assets_each(st, &q, asset_cb, out, &eb);
        }
    }
    if (rc != ERR_OK) {
        code = fail("assets", &eb);
        output_end(out, NULL);
        goto out;
    }
    code = finish_output(out);
out:
    store_close(st);
    return code;
}

/* ---- insights ------------------------------------------------------------------------------ */

static int
cmd_insights(struct ctx *cx, int argc, char **argv)
{
    const char *format = "table", *client = NULL, *days = NULL;
    int help = 0, npos;
    const char *pos[1];
    const struct opt opts[] = {
        {"format", 1, &format, NULL},
        {"client", 1, &client, NULL},
        {"stale-days", 1, &days, NULL},
        {NULL, 0, NULL, NULL},
    };
    struct store *st = NULL;
    struct output *out = NULL;
    struct insight *in = NULL;
    struct asset_query q = {0};
    struct store_filter included = {"client.included", "eq", "true"};
    struct errbuf eb = {0};
    int64_t account, stale = 30;
    int code = CLI_FAIL;

    if (opt_parse("insights", argc, argv, opts, pos, 0, &npos, &help) != 0)
        return CLI_USAGE;
    if (help) {
        printf("usage: memsync insights [--client X] [--stale-days N] "
               "[--format table|csv|json|jsonl]\n"
               "Per client: devices not checked in for N days (default 30), operating systems "
               "past end of support,\ndevices without a real serial, serials in two tenants, "
               "encrypted and compliant share, oldest enrolment.\nExcluded clients count only "
               "when named with --client (`assets hardware --included` lists the rest).\n");
        return CLI_OK;
    }
    if (days != NULL && (parse_id(days, &stale) != 0 || stale > 3650)) {
        fprintf(stderr, "memsync insights: --stale-days must be a number of days (1-3650)\n");
        return CLI_USAGE;
    }
    if (bad_format("insights", format))
        return CLI_USAGE;
    in = insight_new(clock_now(), (int)stale);
    q.client = client;
    /* Excluded clients are no longer synced: the overview leaves them out unless named. */
    if (client == NULL) {
        q.filters = &included;
        q.nfilters = 1;
    }
    if (open_store(cx, &st, &account, &eb) != ERR_OK ||
        check_client(st, account, client, &eb) != ERR_OK ||
        (q.account_id = account, store_assets_each(st, &q, insight_collect, in, &eb)) != ERR_OK) {
        code = fail("insights", &eb);
        goto out;
    }
    if (open_output(format, insight_columns, insight_column_count, NULL, 0, &out, &eb) != ERR_OK) {
        code = fail("insights", &eb);
        goto out;
    }
    for (size_t i = 0; i < insight_count(in); i++)
        if (row_out(out, insight_to_json(in, i)) != ERR_OK)
            break;
    code = finish_output(out);
out:
    insight_free(in);
    store_close(st);
    return code;
}

/* ---- status -------------------------------------------------------------------------------- */

static json_t *
secret_status_json(const struct integration *in, int partner, int64_t now)
{
    struct expiry e;
    char msg[512];
    const char *src = partner ? in->partner_secret_expiry_source : in->sync_secret_expiry_source;

    expiry_check(partner ? in->partner_secret_expires : in->sync_secret_expires, now, &e);
    expiry_message(&e, partner ? "Partner App" : "Sync App", in->id, partner ? "partner" : "sync",
                   msg, sizeof msg);
    return json_pack("{s:s?, s:s?, s:I, s:s, s:s?, s:s}", "hint",
                     partner ? in->partner_secret_hint : in->sync_secret_hint, "expires_on",
                     e.date[0] ? e.date : NULL, "days_left", (json_int_t)e.days_left, "level",
                     expiry_level_name(e.level), "message", msg[0] ? msg : NULL, "expiry_source",
                     src != NULL ? src : "entered");
}

struct status_ctx {
    json_t *problems;
    json_t *warnings;
    int total, ok, error, never;
};

static int
status_client_cb(void *arg, const struct client_row *c)
{
    struct status_ctx *sc = arg;

    sc->total++;
    if (c->status != NULL && strcmp(c->status, "ok") == 0) {
        sc->ok++;
        if (c->warning_code != NULL)
            json_array_append_new(
                sc->warnings, json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?}", "tenant_id", c->tenant_id,
                                        "name", c->name, "code", c->warning_code, "message",
                                        c->warning_message, "remedy", c->warning_remedy));
    } else if (c->status != NULL && strcmp(c->status, "error") == 0) {
        sc->error++;
        json_array_append_new(sc->problems,
                              json_pack("{s:s?, s:s?, s:s?, s:s?, s:s?, s:s?, s:s?}", "tenant_id",
                                        c->tenant_id, "name", c->name, "code", c->error_code,
                                        "message", c->error_message, "remedy", c->error_remedy,
                                        "request_id", c->error_request_id, "date", c->error_date));
    } else {
        sc->never++;
    }
    return 0;
}

/* Logs the same expiry warnings status shows, so they reach the log of every sync. */
static void
log_expiry(const struct integration *in, int64_t now)
{
    for (int partner = 0; partner < 2; partner++) {
        struct expiry e;
        char msg[512];

        expiry_check(partner ? in->partner_secret_expires : in->sync_secret_expires, now, &e);
        if (e.level == EXPIRY_OK || e.level == EXPIRY_UNKNOWN)
            continue;
        expiry_message(&e, partner ? "Partner App" : "Sync App", in->id,
                       partner ? "partner" : "sync", msg, sizeof msg);
        log_warn("secret expiry integration=%lld app=%s level=%s days_left=%lld: %s",
                 (long long)in->id, partner ? "partner" : "sync", expiry_level_name(e.level),
                 (long long)e.days_left, msg);
    }
}

/* A string member of a status object, or def. */
static const char *
jstr(const json_t *obj, const char *key, const char *def)
{
    const char *v = json_string_value(json_object_get(obj, key));

    return v != NULL ? v : def;
}

static int
cmd_status(struct ctx *cx, int argc, char **argv)
{
    const char *format = "table";
    int help = 0, npos;
    const char *pos[1];
    const struct opt opts[] = {{"format", 1, &format, NULL}, {NULL, 0, NULL, NULL}};
    struct store *st = NULL;
    struct integration *list = NULL;
    size_t n = 0;
    struct errbuf eb = {0};
    struct status_ctx sc = {0};
    json_t *root = NULL, *ints;
    int64_t account, now = clock_now();
    int code = CLI_FAIL;

    if (opt_parse("status", argc, argv, opts, pos, 0, &npos, &help) != 0)
        return CLI_USAGE;
    if (help || (strcmp(format, "table") != 0 && strcmp(format, "json") != 0)) {
        fprintf(help ? stdout : stderr, "usage: memsync status [--format table|json]\n");
        return help ? CLI_OK : CLI_USAGE;
    }
    sc.problems = json_array();
    sc.warnings = json_array();
    if (open_store(cx, &st, &account, &eb) != ERR_OK ||
        store_integration_list(st, account, &list, &n, &eb) != ERR_OK ||
        store_clients_each(st, account, status_client_cb, &sc, &eb) != ERR_OK) {
        code = fail("status", &eb);
        goto out;
    }
    ints = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            ints, json_pack("{s:I, s:s?, s:s?, s:o, s:o}", "id", (json_int_t)list[i].id, "name",
                            list[i].name, "partner_tenant_id", list[i].partner_tenant_id,
                            "partner_app_secret", secret_status_json(&list[i], 1, now),
                            "sync_app_secret", secret_status_json(&list[i], 0, now)));
    root = json_pack("{s:o, s:{s:i, s:i, s:i, s:i}, s:O, s:O}", "integrations", ints, "clients",
                     "total", sc.total, "ok", sc.ok, "error", sc.error, "never", sc.never,
                     "problems", sc.problems, "warnings", sc.warnings);
    if (strcmp(format, "json") == 0) {
        json_dumpf(root, stdout, JSON_INDENT(2));
        putchar('\n');
        code = CLI_OK;
        goto out;
    }
    if (n == 0)
        printf("No integration yet: add one with `memsync integration add` (see --help).\n");
    for (size_t i = 0; i < n; i++) {
        const json_t *ji = json_array_get(ints, i);

        printf("Integration %lld: %s (partner tenant %s)\n", (long long)list[i].id,
               list[i].name ? list[i].name : "", list[i].partner_tenant_id);
        for (int p = 0; p < 2; p++) {
            const json_t *sj =
                json_object_get(ji, p == 0 ? "partner_app_secret" : "sync_app_secret");
            const char *level = json_string_value(json_object_get(sj, "level"));
            const char *msg = json_string_value(json_object_get(sj, "message"));

            printf("  %-16s %s…  expires %s (%s)  %s\n",
                   p == 0 ? "Partner App key:" : "Sync App key:", jstr(sj, "hint", ""),
                   jstr(sj, "expires_on", "(unknown)"),
                   strcmp(jstr(sj, "expiry_source", ""), "microsoft") == 0 ? "from Microsoft"
                                                                           : "entered",
                   strcmp(level, "ok") == 0 ? "" : level);
            if (msg != NULL)
                printf("    ! %s\n", msg);
        }
    }
    printf("Clients: %d (%d ok, %d failing, %d not synced yet)\n", sc.total, sc.ok, sc.error,
           sc.never);
    for (size_t i = 0; i < json_array_size(sc.problems); i++) {
        const json_t *p = json_array_get(sc.problems, i);

        printf("  ! %s (%s): %s\n    What to do: %s\n", jstr(p, "name", "?"),
               jstr(p, "tenant_id", ""), jstr(p, "message", ""), jstr(p, "remedy", ""));
    }
    for (size_t i = 0; i < json_array_size(sc.warnings); i++) {
        const json_t *w = json_array_get(sc.warnings, i);

        printf("  ~ %s (%s), synced with a warning: %s\n    What to do: %s\n", jstr(w, "name", "?"),
               jstr(w, "tenant_id", ""), jstr(w, "message", ""), jstr(w, "remedy", ""));
    }
    code = CLI_OK;
out:
    json_decref(root);
    json_decref(sc.problems);
    json_decref(sc.warnings);
    for (size_t i = 0; i < n; i++)
        integration_clear(&list[i]);
    free(list);
    store_close(st);
    return code;
}

/* ---- key rotation -------------------------------------------------------------------------- */

/* Re-seals every integration secret and TOTP secret under the key in new_path, in one
 * transaction. */
static int
reseal_all(struct store *st, int64_t account, const struct vault *from, const struct vault *to,
           struct errbuf *eb)
{
    struct integration *list = NULL;
    size_t n = 0;
    int rc, in_tx = 0;

    if ((rc = store_integration_list(st, account, &list, &n, eb)) != ERR_OK)
        return rc;
    if ((rc = store_tx_begin(st, eb)) != ERR_OK)
        goto out;
    in_tx = 1;
    for (size_t i = 0; rc == ERR_OK && i < n; i++) {
        const struct integration *in = &list[i];

        for (int p = 0; rc == ERR_OK && p < 2; p++) {
            const char *env = p == 0 ? in->partner_secret_sealed : in->sync_secret_sealed;
            char *sealed = NULL;

            if (env == NULL)
                continue;
            rc = vault_reseal(from, to, "integration", in->id,
                              p == 0 ? "partner_app_secret" : "sync_app_secret", env, &sealed, eb);
            if (rc == ERR_OK)
                rc = store_integration_set_secret(
                    st, in->id, p == 0 ? "partner" : "sync", sealed,
                    p == 0 ? in->partner_secret_hint : in->sync_secret_hint,
                    p == 0 ? in->partner_secret_expires : in->sync_secret_expires, eb);
            free(sealed);
        }
    }
    if (rc == ERR_OK)
        rc = mfa_reseal_all(st, from, to, eb); /* the users' TOTP secrets */
    if (rc == ERR_OK)
        rc = ui_sso_reseal_all(st, from, to, eb); /* the sign-in apps' client secrets */
    if (rc == ERR_OK)
        rc = webhook_dispatch_reseal_all(st, from, to, eb); /* the webhooks' secrets */
    if (rc == ERR_OK && (rc = store_tx_commit(st, eb)) == ERR_OK)
        in_tx = 0;
out:
    if (in_tx)
        store_tx_rollback(st);
    for (size_t i = 0; i < n; i++)
        integration_clear(&list[i]);
    free(list);
    return rc;
}

static int
cmd_key(struct ctx *cx, int argc, char **argv)
{
    char path[CONFIG_VALUE_MAX + 8], newp[CONFIG_VALUE_MAX + 16], oldp[CONFIG_VALUE_MAX + 16];
    struct store *st = NULL;
    struct vault *from = NULL, *to = NULL;
    struct errbuf eb = {0};
    int64_t account;
    int rc, code = CLI_FAIL;

    int help = 0, npos;
    const char *pos[1];
    const struct opt opts[] = {{NULL, 0, NULL, NULL}};

    if (opt_parse("key", argc, argv, opts, pos, 1, &npos, &help) != 0 || help || npos != 1 ||
        strcmp(pos[0], "rotate") != 0) {
        fprintf(help ? stdout : stderr,
                "usage: memsync key rotate\n"
                "Creates a new master key, re-seals every stored secret with it in one "
                "transaction, then replaces the key file (the old key is kept as FILE.old).\n");
        return help ? CLI_OK : CLI_USAGE;
    }
    if (config_env("MEMSYNC_MASTER_KEY") != NULL) {
        fprintf(stderr, "memsync key rotate: the master key comes from MEMSYNC_MASTER_KEY; unset "
                        "it to rotate the key file, or keep managing the key where it is set\n");
        return CLI_FAIL;
    }
    config_master_key_path(&cx->cfg, path, sizeof path);
    snprintf(newp, sizeof newp, "%s.new", path);
    snprintf(oldp, sizeof oldp, "%s.old", path);
    if ((rc = open_store(cx, &st, &account, &eb)) != ERR_OK ||
        (rc = vault_open_file(&from, path, &eb)) != ERR_OK)
        goto out;
    /* A rotation that stopped before its rename left FILE.new behind: start over. The database
     * still holds secrets under the old key unless the commit happened, and then the new file
     * must be kept: opening it tells which. */
    if (access(newp, F_OK) == 0) {
        if ((rc = vault_open_file(&to, newp, &eb)) != ERR_OK)
            goto out;
        rc = reseal_all(st, account, to, to, &eb);
        if (rc == ERR_OK) {
            vault_close(from);
            from = to;
            to = NULL;
            goto swap;
        }
        vault_close(to);
        to = NULL;
        unlink(newp);
        err_clear(&eb);
    }
    if ((rc = vault_generate(newp, &eb)) != ERR_OK ||
        (rc = vault_open_file(&to, newp, &eb)) != ERR_OK)
        goto out;
    if ((rc = reseal_all(st, account, from, to, &eb)) != ERR_OK) {
        unlink(newp);
        goto out;
    }
swap:
    unlink(oldp);
    if (link(path, oldp) != 0 || rename(newp, path) != 0) {
        rc = err_set(&eb, ERR_IO,
                     "the secrets are re-sealed under %s but it could not replace %s (%s): "
                     "move it there by hand",
                     newp, path, err_strerror(errno));
        goto out;
    }
    printf("master key rotated: every secret is sealed under key %s; the old key is kept as %s "
           "until you delete it (back the new key file up first; an older database backup needs "
           "the old key)\nA running `memsync serve` or `memsync worker` reads the new key file "
           "before it next uses the key; `kill -HUP` it to make it read the file now.\n",
           vault_key_id(to != NULL ? to : from), oldp);
    code = CLI_OK;
out:
    if (rc != ERR_OK)
        fprintf(stderr, "memsync key rotate: %s\n", eb.msg);
    vault_close(from);
    vault_close(to);
    store_close(st);
    return code;
}

static int
cmd_config(struct ctx *cx, int argc, char **argv)
{
    int help = 0, npos, man = 0, origin = 0;
    const char *pos[1];
    /* --man (not in the help): the SETTINGS section of memsync.conf(5), from the table. */
    const struct opt opts[] = {
        {"man", 0, NULL, &man}, {"show-origin", 0, NULL, &origin}, {NULL, 0, NULL, NULL}};

    if (opt_parse("config", argc, argv, opts, pos, 0, &npos, &help) != 0)
        return CLI_USAGE;
    if (man && !help) {
        config_man(stdout);
        return CLI_OK;
    }
    if (help) {
        printf("usage: memsync [--db URL] [--config FILE] config [--show-origin]\n"
               "Prints the effective settings, one \"key = value\" per line (a PostgreSQL "
               "password as ****).\nEach comes from a flag, else MEMSYNC_<KEY>, else the config "
               "file (--config or MEMSYNC_CONFIG),\nelse its default; README \"Commands and "
               "settings\" lists them.\n--show-origin: each line ends with where its value "
               "came from (# flag, # environment VAR, # file, # default).\n");
        return CLI_OK;
    }
    if (origin)
        config_print_origin(
            &cx->cfg, cx->config_path != NULL ? cx->config_path : config_env("MEMSYNC_CONFIG"),
            stdout);
    else
        config_print(&cx->cfg, stdout);
    return CLI_OK;
}

/* ---- backup and restore -------------------------------------------------------------------- */

static int
is_postgresql(const char *db)
{
    return strncmp(db, "postgresql://", 13) == 0 || strncmp(db, "postgres://", 11) == 0;
}

static const char pg_backup_text[] =
    "the database is PostgreSQL: back it up and restore it with PostgreSQL's tools, e.g.\n"
    "  pg_dump --format=custom --file=memsync.dump 'postgresql://...'\n"
    "  pg_restore --clean --if-exists --no-owner --dbname='postgresql://...' memsync.dump\n"
    "(docs/DEPLOY.md, \"Back up and restore\"); the master key file is backed up separately.\n";

static int
cmd_backup_restore(struct ctx *cx, int argc, char **argv)
{
    int restore = strcmp(argv[0], "restore") == 0;
    const char *cmd = argv[0];
    int help = 0, npos;
    const char *pos[1];
    const struct opt opts[] = {{NULL, 0, NULL, NULL}};
    char key[CONFIG_VALUE_MAX + 8];
    struct backup_info bi = {0};
    struct errbuf eb = {0};

    if (opt_parse(cmd, argc, argv, opts, pos, 1, &npos, &help) != 0)
        return CLI_USAGE;
    if (help || npos != 1) {
        fprintf(help ? stdout : stderr,
                restore ? "usage: memsync restore FILE\n"
                          "Puts a backup made by `memsync backup` in place of the database (--db)."
                          "\nThe file is checked first (a memsync database, a schema this memsync "
                          "knows,\nPRAGMA integrity_check); a database that serve, a sync or a "
                          "worker has open is\nnot replaced. The replaced database is kept as "
                          "DB.before-restore.\n"
                        : "usage: memsync backup FILE\n"
                          "Writes a consistent copy of the database (--db) to FILE (mode 0600), "
                          "also while\nserve and syncs run. The master key file is not in it: "
                          "back it up separately.\n");
        return help ? CLI_OK : CLI_USAGE;
    }
    if (is_postgresql(cx->cfg.db)) {
        fprintf(stderr, "memsync %s: %s", cmd, pg_backup_text);
        return CLI_FAIL;
    }
    config_master_key_path(&cx->cfg, key, sizeof key);
    if (restore) {
        if (backup_restore_sqlite(pos[0], cx->cfg.db, &bi, &eb) != ERR_OK)
            return fail(cmd, &eb);
        printf("restored %s into %s (schema %lld, %.1f MB)", pos[0], cx->cfg.db,
               (long long)bi.schema_version, (double)bi.bytes / 1e6);
        if (bi.replaced)
            printf("; the database it replaced is kept as %s.before-restore", cx->cfg.db);
        printf(".\nIts secrets are sealed with the master key of the backup's time: %s must hold "
               "that key\n(restore the key file too if it was rotated since). The schema is "
               "brought up to date on the next start.\n",
               key);
        return CLI_OK;
    }
    if (backup_sqlite(cx->cfg.db, pos[0], &bi, &eb) != ERR_OK)
        return fail(cmd, &eb);
    printf("backup written: %s (schema %lld, %.1f MB, the database as of one moment)\n"
           "The master key is not in it: back up %s separately and keep the two apart\n"
           "(without the key the Microsoft secrets in the backup cannot be read).\n",
           pos[0], (long long)bi.schema_version, (double)bi.bytes / 1e6, key);
    return CLI_OK;
}

/* ---- main ---------------------------------------------------------------------------------- */

struct command {
    const char *name;
    int (*run)(struct ctx *cx, int argc, char **argv);
};

static const struct command commands[] = {
    {"integration", cmd_integration},
    {"sync", cmd_sync},
    {"clients", cmd_clients},
    {"assets", cmd_assets},
    {"status", cmd_status},
    {"insights", cmd_insights},
    {"key", cmd_key},
    {"config", cmd_config},
    {"serve", cli_cmd_serve},
    {"user", cli_cmd_user},
    {"account", cli_cmd_account},
    {"apikey", cli_cmd_apikey},
    {"worker", cmd_worker},
    {"backup", cmd_backup_restore},
    {"changes", cli_cmd_changes},
    {"webhook", cli_cmd_webhook},
    {"restore", cmd_backup_restore},
    {NULL, NULL},
};

/* Flushes stdout: a reader gone away turns a failure into 0, quietly (see stdout_closed); any
 * other write error (a full disk) is one. */
static int
finish_stdout(int rc)
{
    if (fflush(stdout) == 0 && !ferror(stdout))
        return rc;
    if (stdout_gone())
        return rc == CLI_FAIL ? CLI_OK : rc;
    if (rc != CLI_OK)
        return rc; /* the command said what failed */
    fprintf(stderr, "memsync: writing the output failed: %s\n", err_strerror(errno));
    return CLI_FAIL;
}

int
cli_main(int argc, char **argv)
{
    struct ctx cx;
    struct errbuf eb = {0};
    const char *db = NULL, *log_level = NULL;
    int i, rc, help = 0, version = 0;
    const struct opt opts[] = {
        {"db", 1, &db, NULL},
        {"config", 1, &cx.config_path, NULL},
        {"log-level", 1, &log_level, NULL},
        {"version", 0, NULL, &version},
        {NULL, 0, NULL, NULL},
    };
    enum log_level lvl;

    memset(&cx, 0, sizeof cx);
    if (opt_parse_head(argc, argv, opts, &i, &help) != 0)
        return CLI_USAGE;
    if (help) {
        fputs(usage_text, stdout);
        return CLI_OK;
    }
    if (version) {
        printf("memsync %s\n", MEMSYNC_VERSION);
        return CLI_OK;
    }
    if (i >= argc) {
        fputs(usage_text, stderr);
        return CLI_USAGE;
    }
    /* The simulator has its own flags and needs none of memsync's settings. */
    if (strcmp(argv[i], "sim") == 0)
        return sim_main(argc - i, argv + i);

    if (config_load(&cx.cfg, cx.config_path, &eb) != ERR_OK ||
        (db != NULL && config_set(&cx.cfg, "db", db, &eb) != ERR_OK) ||
        (log_level != NULL && config_set(&cx.cfg, "log_level", log_level, &eb) != ERR_OK)) {
        fprintf(stderr, "memsync: %s\n", eb.msg);
        return CLI_USAGE;
    }
    if (log_level_parse(cx.cfg.log_level, &lvl) != ERR_OK)
        lvl = LOG_INFO;
    log_configure(lvl, strcmp(cx.cfg.log_format, "json") == 0);

    for (const struct command *c = commands; c->name != NULL; c++) {
        if (strcmp(c->name, argv[i]) == 0) {
            rc = c->run(&cx, argc - i, argv + i);
            return finish_stdout(rc);
        }
    }
    fprintf(stderr, "memsync: unknown command '%s' (see memsync --help)\n", argv[i]);
    return CLI_USAGE;
}
