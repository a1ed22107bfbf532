/* config.c - settings from defaults, file, environment and flags (see config.h). */
#include "config.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"

enum config_type {
    CT_STRING,
    CT_PATH,
    CT_DB,
    CT_URL,
    CT_LISTEN,
    CT_LEVEL,
    CT_FORMAT,
    CT_RUNNER,
    CT_INT,
    CT_BOOL,   /* environment only: any value means yes */
    CT_TIME,   /* environment only: RFC 3339 or Unix seconds (clock.c parses it) */
    CT_SECRET, /* environment only: never printed */
};

struct config_item {
    const char *key;
    const char *env;
    const char *def;
    size_t offset;
    size_t size; /* field size for strings, 0 for CT_INT */
    enum config_type type;
    const char *help;
    int min, max; /* CT_INT */
};

#define STR_ITEM(k, e, d, t, h)                                                                    \
    {                                                                                              \
#k, e, d, offsetof(struct config, k), sizeof(((struct config *)0)->k), t, h, 0, 0          \
    }

static const struct config_item config_items[] = {
    STR_ITEM(db, "MEMSYNC_DB", "./memsync.db", CT_DB, "SQLite database file"),
    STR_ITEM(listen, "MEMSYNC_LISTEN", "127.0.0.1:8080", CT_LISTEN, "HTTP listen address"),
    STR_ITEM(master_key_file, "MEMSYNC_MASTER_KEY_FILE", "", CT_PATH,
             "master key file (empty: <db>.key)"),
    STR_ITEM(login_url, "MEMSYNC_LOGIN_URL", "https://login.microsoftonline.com", CT_URL,
             "Entra login base URL"),
    STR_ITEM(graph_url, "MEMSYNC_GRAPH_URL", "https://graph.microsoft.com", CT_URL,
             "Microsoft Graph base URL"),
    STR_ITEM(partner_center_url, "MEMSYNC_PARTNER_CENTER_URL",
             "https://api.partnercenter.microsoft.com", CT_URL, "Partner Center base URL"),
    STR_ITEM(ca_file, "MEMSYNC_CA_FILE", "", CT_PATH, "extra CA bundle (empty: system store)"),
    STR_ITEM(log_level, "MEMSYNC_LOG_LEVEL", "info", CT_LEVEL, "error, warn, info or debug"),
    STR_ITEM(log_format, "MEMSYNC_LOG_FORMAT", "text", CT_FORMAT, "text or json"),
    STR_ITEM(sync_runner, "MEMSYNC_SYNC_RUNNER", "serve", CT_RUNNER,
             "who runs serve's syncs: serve, or workers (PostgreSQL job queue)"),
    {"sync_parallel", "MEMSYNC_SYNC_PARALLEL", "32", offsetof(struct config, sync_parallel), 0,
     CT_INT, "tenants synced in parallel (1-256)", 1, 256},
    {"sync_commit_ms", "MEMSYNC_SYNC_COMMIT_MS", "250", offsetof(struct config, sync_commit_ms), 0,
     CT_INT,
     "ms a SQLite sync gathers reconciled tenants into one commit (0-10000; 0: each tenant "
     "commits alone)",
     0, 10000},
    {"api_cache_mb", "MEMSYNC_API_CACHE_MB", "64", offsetof(struct config, api_cache_mb), 0, CT_INT,
     "MiB of rendered list answers serve keeps (0-16384; 0 turns the cache off)", 0, 16384},
    {"api_row_cache_mb", "MEMSYNC_API_ROW_CACHE_MB", "128",
     offsetof(struct config, api_row_cache_mb), 0, CT_INT,
     "MiB of rendered hardware rows serve keeps (0-16384; 0 turns the cache off)", 0, 16384},
    {"intune_tenant_budget", "MEMSYNC_INTUNE_TENANT_BUDGET", "1000",
     offsetof(struct config, intune_tenant_budget), 0, CT_INT,
     "Intune requests per 20 s memsync sends to one tenant at most (20-1900; the tenant's 4000 "
     "are shared with its other apps)",
     20, 1900},
    {"retire_after_syncs", "MEMSYNC_RETIRE_AFTER_SYNCS", "2",
     offsetof(struct config, retire_after_syncs), 0, CT_INT,
     "consecutive complete listings a device must be missing from before it is retired (1-100)", 1,
     100},
    {"retire_after_hours", "MEMSYNC_RETIRE_AFTER_HOURS", "24",
     offsetof(struct config, retire_after_hours), 0, CT_INT,
     "hours a device must be missing from listings before it is retired (0-8760)", 0, 8760},
    {"retire_guard_pct", "MEMSYNC_RETIRE_GUARD_PCT", "10",
     offsetof(struct config, retire_guard_pct), 0, CT_INT,
     "a sync retiring more than this % of a tenant's devices retires none (0-100; 0: no guard)", 0,
     100},
    {"retire_guard_min", "MEMSYNC_RETIRE_GUARD_MIN", "5", offsetof(struct config, retire_guard_min),
     0, CT_INT, "the guard above trips only when at least this many would retire (1-1000000)", 1,
     1000000},
    {"api_rate_per_minute", "MEMSYNC_API_RATE_PER_MINUTE", "1200",
     offsetof(struct config, api_rate_per_minute), 0, CT_INT,
     "requests a minute serve answers one API key on average; more are refused with 429 "
     "(0-1000000; 0: no limit)",
     0, 1000000},
    {"api_rate_burst", "MEMSYNC_API_RATE_BURST", "0", offsetof(struct config, api_rate_burst), 0,
     CT_INT,
     "requests one API key may make at once before api_rate_per_minute paces it (0-1000000; 0: "
     "a minute's worth)",
     0, 1000000},
};

#define CONFIG_NITEMS (sizeof config_items / sizeof config_items[0])

/* Variables read from the environment alone (no file key, no flag), through config_env. */
struct config_env_item {
    const char *env;
    enum config_type type;
    int test; /* set only by the tests and benchmarks: the manual leaves it out */
    const char *help;
    int min, max; /* CT_INT */
};

static const struct config_env_item config_env_items[] = {
    {"MEMSYNC_CONFIG", CT_PATH, 0, "the config file to read when no --config is given", 0, 0},
    {"MEMSYNC_MASTER_KEY", CT_SECRET, 0,
     "the master key itself (64 hex characters or the base64 of 32 bytes) instead of the key file",
     0, 0},
    {"MEMSYNC_PARTNER_APP_SECRET", CT_SECRET, 0,
     "the Partner App's client secret when a command is given no secret file", 0, 0},
    {"MEMSYNC_SYNC_APP_SECRET", CT_SECRET, 0,
     "the Sync App's client secret when a command is given no secret file", 0, 0},
    {"MEMSYNC_NO_PROGRESS", CT_BOOL, 0, "any value: no progress line on a terminal", 0, 0},
    {"TMPDIR", CT_PATH, 0, "where a sync keeps downloaded reports (unset: /tmp)", 0, 0},
    {"MEMSYNC_NOW", CT_TIME, 1, "a fixed clock: RFC 3339 or Unix seconds", 0, 0},
    {"MEMSYNC_VALIDATE_SAMPLE", CT_INT, 1,
     "customer tenants serve tries when it validates an integration (1-100)", 1, 100},
    {"MEMSYNC_WEBHOOK_ALLOW_PRIVATE", CT_BOOL, 0,
     "any value: webhooks may reach private, unique-local, carrier-grade NAT and link-local "
     "addresses",
     0, 0},
    {"MEMSYNC_WEBHOOK_HTTP_HOSTS", CT_STRING, 0,
     "comma-separated host names webhooks may reach over plain http (default: https only)", 0, 0},
    {"MEMSYNC_WEBHOOK_ALLOW_LOOPBACK", CT_BOOL, 1, "any value: webhooks may reach loopback", 0, 0},
    {"MEMSYNC_WEBHOOK_BACKOFF_S", CT_INT, 1, "seconds before a webhook's first retry (1-3600)", 1,
     3600},
    {"MEMSYNC_WEBHOOK_RETRY_FOR_S", CT_INT, 1,
     "seconds a webhook subscription may keep failing, with no delivery getting through, before "
     "it pauses (1-86400)",
     1, 86400},
};

#define CONFIG_ENV_NITEMS (sizeof config_env_items / sizeof config_env_items[0])
#define CONFIG_KEY_MAX    64

static const char *const config_levels[] = {"error", "warn", "info", "debug"};
static const char *const config_formats[] = {"text", "json"};
static const char *const config_runners[] = {"serve", "workers"};

/* Matches key against the table; '-' in key matches '_'. */
static const struct config_item *
config_find(const char *key, size_t keylen)
{
    for (size_t i = 0; i < CONFIG_NITEMS; i++) {
        const char *k = config_items[i].key;
        size_t j;

        if (strlen(k) != keylen)
            continue;
        for (j = 0; j < keylen; j++) {
            char ch = key[j] == '-' ? '_' : key[j];
            if (ch != k[j])
                break;
        }
        if (j == keylen)
            return &config_items[i];
    }
    return NULL;
}

static int
in_list(const char *v, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (strcmp(v, list[i]) == 0)
            return 1;
    return 0;
}

static int
has_space_or_ctl(const char *v)
{
    for (; *v != '\0'; v++)
        if ((unsigned char)*v <= ' ' || *v == 0x7f)
            return 1;
    return 0;
}

/* Validates value for item and stores it; src names the source for messages. */
static int
config_apply(struct config *c, const struct config_item *it, const char *value, const char *src,
             struct errbuf *eb)
{
    size_t len = strlen(value);
    char *field = (char *)c + it->offset;

    switch (it->type) {
    case CT_INT: {
        char *end = NULL;
        long long n;

        errno = 0;
        n = strtoll(value, &end, 10);
        if (len == 0 || errno != 0 || end == value || *end != '\0' || n < it->min || n > it->max)
            return err_set(eb, ERR_INVAL, "%s: '%.64s' is not a whole number from %d to %d", src,
                           value, it->min, it->max);
        *(int *)(void *)field = (int)n;
        return ERR_OK;
    }
    case CT_LEVEL:
        if (!in_list(value, config_levels, sizeof config_levels / sizeof config_levels[0]))
            return err_set(eb, ERR_INVAL, "%s: '%.64s' is not one of error, warn, info, debug", src,
                           value);
        break;
    case CT_FORMAT:
        if (!in_list(value, config_formats, sizeof config_formats / sizeof config_formats[0]))
            return err_set(eb, ERR_INVAL, "%s: '%.64s' is not one of text, json", src, value);
        break;
    case CT_RUNNER:
        if (!in_list(value, config_runners, sizeof config_runners / sizeof config_runners[0]))
            return err_set(eb, ERR_INVAL, "%s: '%.64s' is not one of serve, workers", src, value);
        break;
    case CT_URL: {
        const char *host = NULL;

        if (strncmp(value, "https://", 8) == 0)
            host = value + 8;
        else if (strncmp(value, "http://", 7) == 0)
            host = value + 7;
        if (host == NULL || host[0] == '\0' || host[0] == '/' || has_space_or_ctl(value))
            return err_set(eb, ERR_INVAL,
                           "%s: '%.64s' is not a URL starting with http:// or https://", src,
                           value);
        /* Base URLs are joined with "/path"; drop trailing slashes. */
        while (len > (size_t)(host - value) + 1 && value[len - 1] == '/')
            len--;
        break;
    }
    case CT_LISTEN: {
        const char *colon = strrchr(value, ':');
        char *end = NULL;
        long long port;

        if (colon == NULL || colon == value || has_space_or_ctl(value))
            return err_set(eb, ERR_INVAL, "%s: '%.64s' is not HOST:PORT", src, value);
        errno = 0;
        port = strtoll(colon + 1, &end, 10);
        if (errno != 0 || end == colon + 1 || *end != '\0' || port < 0 || port > 65535)
            return err_set(eb, ERR_INVAL, "%s: '%.64s' has no port from 0 to 65535", src, value);
        break;
    }
    case CT_DB:
        if (len == 0)
            return err_set(eb, ERR_INVAL, "%s: the database path is empty", src);
        /* "<db>.key" must still fit a field (config_master_key_path). */
        if (len + 4 >= it->size)
            return err_set(eb, ERR_INVAL, "%s: value is %zu bytes, the limit is %zu", src, len,
                           it->size - 5);
        break;
    case CT_PATH:
    case CT_STRING:
    case CT_BOOL:
    case CT_TIME:
    case CT_SECRET:
        break;
    }
    if (len >= it->size)
        return err_set(eb, ERR_INVAL, "%s: value is %zu bytes, the limit is %zu", src, len,
                       it->size - 1);
    memcpy(field, value, len);
    field[len] = '\0';
    return ERR_OK;
}

/* Records where its value came from (config_print_origin); always ERR_OK. */
static int
note_origin(struct config *c, const struct config_item *it, enum config_origin o)
{
    size_t i = (size_t)(it - config_items);

    if (i < sizeof c->origin)
        c->origin[i] = (unsigned char)o;
    return ERR_OK;
}

void
config_defaults(struct config *c)
{
    memset(c, 0, sizeof *c);
    for (size_t i = 0; i < CONFIG_NITEMS; i++) {
        int rc = config_apply(c, &config_items[i], config_items[i].def, "default", NULL);
        ASSERT(rc == ERR_OK);
    }
}

static int
is_blank(char ch)
{
    return ch == ' ' || ch == '\t' || ch == '\r';
}

int
config_parse_text(struct config *c, const char *name, const char *text, size_t len,
                  struct errbuf *eb)
{
    char value[CONFIG_VALUE_MAX + 2];
    char src[CONFIG_VALUE_MAX];
    size_t pos = 0;
    int line = 0, rc;

    if (len > CONFIG_FILE_MAX)
        return err_set(eb, ERR_TOOBIG, "config file %s is %zu bytes, the limit is %d", name, len,
                       CONFIG_FILE_MAX);
    while (pos < len) {
        const char *ln = text + pos, *nl = memchr(ln, '\n', len - pos);
        size_t n = nl != NULL ? (size_t)(nl - ln) : len - pos;
        size_t ks, ke, vs, ve, eq;
        const struct config_item *it;

        pos += n + (nl != NULL);
        line++;
        if (memchr(ln, '\0', n) != NULL)
            return err_set(eb, ERR_INVAL, "config file %s line %d: contains a NUL byte", name,
                           line);
        ks = 0;
        while (ks < n && is_blank(ln[ks]))
            ks++;
        if (ks == n || ln[ks] == '#')
            continue;
        for (eq = ks; eq < n && ln[eq] != '='; eq++)
            ;
        if (eq == n)
            return err_set(eb, ERR_INVAL, "config file %s line %d: expected 'key = value'", name,
                           line);
        ke = eq;
        while (ke > ks && is_blank(ln[ke - 1]))
            ke--;
        it = config_find(ln + ks, ke - ks);
        if (it == NULL)
            return err_set(eb, ERR_INVAL, "config file %s line %d: unknown key '%.*s'", name, line,
                           (int)(ke - ks > CONFIG_KEY_MAX ? CONFIG_KEY_MAX : ke - ks), ln + ks);
        vs = eq + 1;
        while (vs < n && is_blank(ln[vs]))
            vs++;
        ve = n;
        while (ve > vs && is_blank(ln[ve - 1]))
            ve--;
        if (ve - vs >= 2 && ln[vs] == '"' && ln[ve - 1] == '"') {
            vs++;
            ve--;
        }
        if (ve - vs > CONFIG_VALUE_MAX)
            return err_set(eb, ERR_INVAL,
                           "config file %s line %d: value of '%s' is %zu bytes, the limit is %d",
                           name, line, it->key, ve - vs, CONFIG_VALUE_MAX - 1);
        memcpy(value, ln + vs, ve - vs);
        value[ve - vs] = '\0';
        snprintf(src, sizeof src, "config file %s line %d: %s", name, line, it->key);
        if ((rc = config_apply(c, it, value, src, eb)) != ERR_OK ||
            (rc = note_origin(c, it, CONFIG_FROM_FILE)) != ERR_OK)
            return rc;
    }
    return ERR_OK;
}

static int
config_read_file(struct config *c, const char *path, struct errbuf *eb)
{
    struct buf b;
    char chunk[4096];
    FILE *f = NULL;
    int rc = ERR_OK;

    buf_init(&b, CONFIG_FILE_MAX);
    f = fopen(path, "rb");
    if (f == NULL) {
        if (errno == ENOENT)
            rc = err_set(eb, ERR_NOTFOUND, "config file %s not found", path);
        else
            rc = err_set(eb, ERR_IO, "cannot open config file %s: %s", path, err_strerror(errno));
        goto out;
    }
    for (;;) {
        size_t n = fread(chunk, 1, sizeof chunk, f);
        if (n > 0 && buf_add(&b, chunk, n) != ERR_OK) {
            rc = err_set(eb, ERR_TOOBIG, "config file %s is larger than %d bytes", path,
                         CONFIG_FILE_MAX);
            goto out;
        }
        if (n < sizeof chunk) {
            if (ferror(f)) {
                rc = err_set(eb, ERR_IO, "cannot read config file %s", path);
                goto out;
            }
            break;
        }
    }
    rc = config_parse_text(c, path, b.data != NULL ? b.data : "", b.len, eb);
out:
    if (f != NULL)
        fclose(f);
    buf_free(&b);
    return rc;
}

int
config_load(struct config *c, const char *path, struct errbuf *eb)
{
    int rc;

    config_defaults(c);
    if (path == NULL)
        path = config_env("MEMSYNC_CONFIG");
    if (path != NULL && (rc = config_read_file(c, path, eb)) != ERR_OK)
        return rc;
    for (size_t i = 0; i < CONFIG_NITEMS; i++) {
        const char *v = getenv(config_items[i].env);

        if (v == NULL || v[0] == '\0')
            continue;
        if ((rc = config_apply(c, &config_items[i], v, config_items[i].env, eb)) != ERR_OK ||
            (rc = note_origin(c, &config_items[i], CONFIG_FROM_ENV)) != ERR_OK)
            return rc;
    }
    return ERR_OK;
}

const char *
config_env(const char *name)
{
    const struct config_env_item *it = NULL;
    const char *v;
    int known = 0;

    for (size_t i = 0; i < CONFIG_NITEMS && !known; i++)
        known = strcmp(config_items[i].env, name) == 0;
    for (size_t i = 0; i < CONFIG_ENV_NITEMS && !known; i++)
        if (strcmp(config_env_items[i].env, name) == 0) {
            it = &config_env_items[i];
            known = 1;
        }
    ASSERT(known); /* a variable memsync reads is in one of the two tables */
    v = getenv(name);
    if (v == NULL || v[0] == '\0')
        return NULL;
    if (it != NULL && it->type == CT_INT) {
        char *end = NULL;
        int saved = errno; /* callers may be reporting an error */
        long long n;
        int bad;

        errno = 0;
        n = strtoll(v, &end, 10);
        bad = errno != 0 || end == v || *end != '\0' || n < it->min || n > it->max;
        errno = saved;
        if (bad)
            return NULL;
    }
    return v;
}

int
config_set(struct config *c, const char *key, const char *value, struct errbuf *eb)
{
    const struct config_item *it;
    char src[CONFIG_KEY_MAX + 3];
    int rc;

    if (key == NULL || value == NULL)
        return err_set(eb, ERR_INVAL, "setting name and value must be given");
    it = config_find(key, strlen(key));
    if (it == NULL)
        return err_set(eb, ERR_INVAL, "unknown setting '%.64s'", key);
    snprintf(src, sizeof src, "--%s", it->key);
    for (char *p = src; *p != '\0'; p++)
        if (*p == '_')
            *p = '-';
    if ((rc = config_apply(c, it, value, src, eb)) != ERR_OK)
        return rc;
    return note_origin(c, it, CONFIG_FROM_FLAG);
}

void
config_master_key_path(const struct config *c, char *out, size_t outlen)
{
    int n;

    if (outlen == 0)
        return;
    if (c->master_key_file[0] != '\0')
        n = snprintf(out, outlen, "%s", c->master_key_file);
    else if (strncmp(c->db, "postgresql://", 13) == 0 || strncmp(c->db, "postgres://", 11) == 0)
        /* There is no "beside the database" for a server URL (and the URL may hold a
         * password): the key file defaults to the working directory. */
        n = snprintf(out, outlen, "memsync.key");
    else
        n = snprintf(out, outlen, "%s.key", c->db);
    if (n < 0 || (size_t)n >= outlen)
        out[0] = '\0';
}

void
config_print(const struct config *c, void *file)
{
    FILE *f = file;

    for (size_t i = 0; i < CONFIG_NITEMS; i++) {
        const struct config_item *it = &config_items[i];

        if (it->type == CT_INT)
            fprintf(f, "%s = %d\n", it->key,
                    *(const int *)(const void *)((const char *)c + it->offset));
        else if (it->type == CT_DB) {
            char red[CONFIG_VALUE_MAX];

            config_redact_db(c->db, red, sizeof red);
            fprintf(f, "%s = %s\n", it->key, red);
        } else
            fprintf(f, "%s = %s\n", it->key, (const char *)c + it->offset);
    }
}

/* Writes s as troff text: backslashes as \e, '-' as \-, a leading '.' or '\'' guarded. */
static void
man_text(FILE *f, const char *s)
{
    if (*s == '.' || *s == '\'')
        fputs("\\&", f);
    for (; *s != '\0'; s++) {
        if (*s == '\\')
            fputs("\\e", f);
        else if (*s == '-')
            fputs("\\-", f);
        else
            fputc(*s, f);
    }
}

void
config_man(void *file)
{
    FILE *f = file;

    fputs(".SH SETTINGS\n"
          "Each setting comes from its environment variable (shown below), else this file, "
          "else its default;\n"
          ".B db\n"
          "and\n"
          ".B log_level\n"
          "may also be given as the flags\n"
          ".B \\-\\-db\n"
          "and\n"
          ".BR \\-\\-log\\-level ,\n"
          "which come first.\n",
          f);
    for (size_t i = 0; i < CONFIG_NITEMS; i++) {
        const struct config_item *it = &config_items[i];

        fputs(".TP\n.B ", f);
        man_text(f, it->key);
        fputs("\n", f);
        man_text(f, it->help);
        fputs(".\nEnvironment:\n.BR ", f);
        man_text(f, it->env);
        fputs(" .\nDefault: ", f);
        if (it->def[0] == '\0')
            fputs("empty", f);
        else {
            fputs("\\(lq", f);
            man_text(f, it->def);
            fputs("\\(rq", f);
        }
        fputs(".\n", f);
    }
    fputs(".SS Environment only\n"
          "These are read from the environment alone; an empty one counts as unset.\n",
          f);
    for (size_t i = 0; i < CONFIG_ENV_NITEMS; i++) {
        const struct config_env_item *it = &config_env_items[i];

        if (it->test)
            continue;
        fputs(".TP\n.B ", f);
        man_text(f, it->env);
        fputs("\n", f);
        man_text(f, it->help);
        fputs(".\n", f);
    }
}

enum config_origin
config_origin_of(const struct config *c, const char *key)
{
    const struct config_item *it = config_find(key, strlen(key));
    size_t i = it != NULL ? (size_t)(it - config_items) : sizeof c->origin;

    return i < sizeof c->origin ? (enum config_origin)c->origin[i] : CONFIG_FROM_DEFAULT;
}

void
config_print_origin(const struct config *c, const char *conf_path, void *file)
{
    FILE *f = file;

    _Static_assert(CONFIG_NITEMS <= CONFIG_ORIGIN_SLOTS, "CONFIG_ORIGIN_SLOTS is too small");
    for (size_t i = 0; i < CONFIG_NITEMS; i++) {
        const struct config_item *it = &config_items[i];
        char val[CONFIG_VALUE_MAX];

        if (it->type == CT_INT)
            snprintf(val, sizeof val, "%d",
                     *(const int *)(const void *)((const char *)c + it->offset));
        else if (it->type == CT_DB)
            config_redact_db(c->db, val, sizeof val);
        else
            snprintf(val, sizeof val, "%s", (const char *)c + it->offset);
        switch (c->origin[i]) {
        case CONFIG_FROM_FLAG:
            fprintf(f, "%s = %s  # flag --", it->key, val);
            for (const char *k = it->key; *k != '\0'; k++)
                fputc(*k == '_' ? '-' : *k, f);
            fputc('\n', f);
            break;
        case CONFIG_FROM_ENV:
            fprintf(f, "%s = %s  # environment %s\n", it->key, val, it->env);
            break;
        case CONFIG_FROM_FILE:
            fprintf(f, "%s = %s  # file %s\n", it->key, val, conf_path != NULL ? conf_path : "");
            break;
        default:
            fprintf(f, "%s = %s  # default\n", it->key, val);
        }
    }
}

/* Appends s[0..n) to out (bounded; the caller sized out for the whole input). */
static void
red_put(char *out, size_t outlen, size_t *o, const char *s, size_t n)
{
    if (*o + n >= outlen)
        n = *o + 1 < outlen ? outlen - *o - 1 : 0;
    memcpy(out + *o, s, n);
    *o += n;
    out[*o] = '\0';
}

void
config_redact_db(const char *db, char *out, size_t outlen)
{
    const char *p = db, *scheme = strstr(db, "://");
    size_t o = 0;

    if (outlen == 0)
        return;
    out[0] = '\0';
    if (scheme != NULL &&
        (strncmp(db, "postgresql://", 13) == 0 || strncmp(db, "postgres://", 11) == 0)) {
        const char *auth = scheme + 3;
        size_t alen = strcspn(auth, "/?#");
        const char *at = NULL, *colon;

        for (const char *q = auth; q < auth + alen; q++)
            if (*q == '@')
                at = q;
        colon = at != NULL ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
        if (colon != NULL) { /* postgresql://user:PASSWORD@host */
            red_put(out, outlen, &o, db, (size_t)(colon + 1 - db));
            red_put(out, outlen, &o, "****", 4);
            p = at;
        }
    }
    /* password=VALUE in a URL's query (up to &) or a conninfo string (up to a space, or
     * quoted). */
    while (*p != '\0') {
        const char *k = strstr(p, "password=");
        size_t vlen;

        if (k == NULL || (k > db && strchr("?& \t", k[-1]) == NULL)) {
            size_t n = k == NULL ? strlen(p) : (size_t)(k + 9 - p);

            red_put(out, outlen, &o, p, n);
            p += n;
            continue;
        }
        red_put(out, outlen, &o, p, (size_t)(k + 9 - p));
        p = k + 9;
        if (*p == '\'') {
            vlen = 1;
            while (p[vlen] != '\0' && p[vlen] != '\'')
                vlen += p[vlen] == '\\' && p[vlen + 1] != '\0' ? 2 : 1;
            if (p[vlen] == '\'')
                vlen++;
        } else {
            vlen = strcspn(p, "& \t");
        }
        red_put(out, outlen, &o, "****", 4);
        p += vlen;
    }
}
