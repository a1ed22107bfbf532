/* config.h - settings (README.md "Commands and settings"): one declarative table drives defaults,
 * the config file, MEMSYNC_* environment variables and command-line flags. Precedence: flag >
 * environment > file > default.
 *
 * Config file format: one "key = value" per line, '#' comments, keys as in the table
 * (e.g. "graph_url = https://graph.microsoft.com"); a value may be wrapped in double quotes.
 * Unknown keys are an error naming the line. A struct config is filled once on the main thread
 * and read-only afterwards.
 *
 * Validation: URLs must be http:// or https:// with a host (trailing '/' removed); log_level one
 * of error, warn, info, debug; log_format text or json; sync_runner serve or workers; listen
 * HOST:PORT; sync_parallel 1..256; api_cache_mb and api_row_cache_mb 0..16384;
 * sync_commit_ms 0..10000; intune_tenant_budget 20..1900; retire_after_syncs 1..100,
 * retire_after_hours 0..8760, retire_guard_pct 0..100, retire_guard_min 1..1000000,
 * api_rate_per_minute and api_rate_burst 0..1000000. A value
 * longer than its field is an
 * error, never truncated. An empty MEMSYNC_* variable counts as unset. Errors are ERR_INVAL
 * (ERR_NOTFOUND / ERR_IO / ERR_TOOBIG for the file itself) and name the source: "config file X line
 * 3: ...", "MEMSYNC_LOG_LEVEL: ...", "--log-level: ...". Never calls setlocale.
 *
 * The environment is read here alone (scripts/checksrc.sh refuses getenv elsewhere): the
 * table's variables, and beside it a list of environment-only ones, each with a type, that
 * config_env hands out. Two of those are for tests and benchmarks only and left out of the
 * manual: MEMSYNC_NOW (a fixed clock) and MEMSYNC_VALIDATE_SAMPLE (tenants a validation tries).
 */
#ifndef MEMSYNC_CONFIG_H
#define MEMSYNC_CONFIG_H

#include <stddef.h>

#include "err.h"

#define CONFIG_VALUE_MAX    1024
#define CONFIG_ORIGIN_SLOTS 64 /* at least the settings table's rows */

enum config_origin { CONFIG_FROM_DEFAULT, CONFIG_FROM_FILE, CONFIG_FROM_ENV, CONFIG_FROM_FLAG };

struct config {
    char db[CONFIG_VALUE_MAX];                 /* MEMSYNC_DB, ./memsync.db */
    char listen[CONFIG_VALUE_MAX];             /* MEMSYNC_LISTEN, 127.0.0.1:8080 */
    char master_key_file[CONFIG_VALUE_MAX];    /* MEMSYNC_MASTER_KEY_FILE, "" = <db>.key */
    char login_url[CONFIG_VALUE_MAX];          /* MEMSYNC_LOGIN_URL */
    char graph_url[CONFIG_VALUE_MAX];          /* MEMSYNC_GRAPH_URL */
    char partner_center_url[CONFIG_VALUE_MAX]; /* MEMSYNC_PARTNER_CENTER_URL */
    char ca_file[CONFIG_VALUE_MAX];            /* MEMSYNC_CA_FILE, "" = system store */
    char log_level[16];                        /* MEMSYNC_LOG_LEVEL, info */
    char log_format[16];                       /* MEMSYNC_LOG_FORMAT, text */
    char sync_runner[16]; /* MEMSYNC_SYNC_RUNNER, serve; workers: serve queues syncs for
                             `memsync worker` processes (PostgreSQL) */
    int sync_parallel;    /* MEMSYNC_SYNC_PARALLEL, tenants in flight, 32 */
    int api_cache_mb;     /* MEMSYNC_API_CACHE_MB, serve's cache of list answers, 64; 0 = off */
    int api_row_cache_mb; /* MEMSYNC_API_ROW_CACHE_MB, serve's cache of list rows, 128; 0 = off */
    int sync_commit_ms;   /* MEMSYNC_SYNC_COMMIT_MS, group commit window (SQLite), 250; 0 = off */
    int intune_tenant_budget; /* MEMSYNC_INTUNE_TENANT_BUDGET, Intune requests per 20 s per
                                 tenant, 1000 (Microsoft: 2000 per app, 4000 for all apps) */
    /* Retirement (docs/ARCHITECTURE.md "Retirement"): a device missing from complete listings
     * retires after this many consecutive ones (MEMSYNC_RETIRE_AFTER_SYNCS, 2) and this many
     * hours since the first (MEMSYNC_RETIRE_AFTER_HOURS, 24); a sync that would retire more
     * than retire_guard_pct % of a tenant's active devices and at least retire_guard_min of them
     * retires none (MEMSYNC_RETIRE_GUARD_PCT, 10, 0 = no guard; MEMSYNC_RETIRE_GUARD_MIN, 5). */
    int retire_after_syncs;
    int retire_after_hours;
    int retire_guard_pct;
    int retire_guard_min;
    /* Requests per API key (ratelimit.h): MEMSYNC_API_RATE_PER_MINUTE, 1200, 0 = no limit; up to
     * MEMSYNC_API_RATE_BURST at once, 0 = a minute's worth. */
    int api_rate_per_minute;
    int api_rate_burst;
    /* Where each setting's value came from, by its row in the settings table (config_origin). */
    unsigned char origin[CONFIG_ORIGIN_SLOTS];
};

/* Fills defaults, then the file (when path != NULL, or MEMSYNC_CONFIG), then the environment. */
int config_load(struct config *c, const char *path, struct errbuf *eb);
/* Parses config file text (len bytes, need not be NUL-terminated) over c; name is used in
 * messages. Limit: CONFIG_FILE_MAX bytes. Exposed for the fuzzer and tests. */
#define CONFIG_FILE_MAX (1024 * 1024)
int config_parse_text(struct config *c, const char *name, const char *text, size_t len,
                      struct errbuf *eb);
/* The value of environment variable name, or NULL when it is unset or empty, or when an
 * integer-typed one is not a whole number in its range. name must be in the settings table or
 * the environment-only list (an unknown name aborts: a programming error). Thread-safe while
 * nothing changes the environment. */
const char *config_env(const char *name);
/* Fills only the defaults. */
void config_defaults(struct config *c);
/* Applies one flag value by key ("db", "listen", ...). ERR_INVAL for unknown keys/bad values.
 * Keys may be spelt with '-' ("log-level"). */
int config_set(struct config *c, const char *key, const char *value, struct errbuf *eb);
/* The key file path actually used: master_key_file, else "<db>.key" for a SQLite path, else
 * "memsync.key" in the working directory for a PostgreSQL URL (fits in CONFIG_VALUE_MAX; "" if
 * outlen is too small). */
void config_master_key_path(const struct config *c, char *out, size_t outlen);
/* Prints every setting as "key = value" lines to file (a FILE *); db through
 * config_redact_db(), so a PostgreSQL password is never shown. */
void config_print(const struct config *c, void *file);
/* Like config_print, each line followed by where the value came from: "  # flag --key",
 * "  # environment MEMSYNC_X", "  # file PATH" (conf_path, the file config_load read), or
 * "  # default". */
void config_print_origin(const struct config *c, const char *conf_path, void *file);
/* Where the setting key's value came from (CONFIG_FROM_DEFAULT for an unknown key). */
enum config_origin config_origin_of(const struct config *c, const char *key);
/* Prints the settings table as the troff SETTINGS section of memsync.conf(5) (man/memsync.conf.5
 * holds this output between its BEGIN/END SETTINGS marks; a lint test compares them). */
void config_man(void *file);
/* Copies db into out with a password replaced by "****": postgresql://user:****@host/db, and
 * the value of password= in a URL query or a conninfo string (password='a b' included). Other
 * values are copied as they are (cut to outlen - 1 bytes). */
void config_redact_db(const char *db, char *out, size_t outlen);

#endif
