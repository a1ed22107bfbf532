/* config.h - settings (PRODUCT.md §5.2): one declarative table drives defaults, the config file,
 * MEMSYNC_* environment variables and command-line flags. Precedence: flag > environment >
 * file > default.
 *
 * Config file format: one "key = value" per line, '#' comments, keys as in the table
 * (e.g. "graph_url = https://graph.microsoft.com"). Unknown keys are an error naming the line.
 * A struct config is filled once on the main thread and read-only afterwards.
 */
#ifndef MEMSYNC_CONFIG_H
#define MEMSYNC_CONFIG_H

#include <stddef.h>

#include "err.h"

#define CONFIG_VALUE_MAX 1024

struct config {
    char db[CONFIG_VALUE_MAX];              /* MEMSYNC_DB, ./memsync.db */
    char listen[CONFIG_VALUE_MAX];          /* MEMSYNC_LISTEN, 127.0.0.1:8080 */
    char master_key_file[CONFIG_VALUE_MAX]; /* MEMSYNC_MASTER_KEY_FILE, "" = <db>.key */
    char login_url[CONFIG_VALUE_MAX];       /* MEMSYNC_LOGIN_URL */
    char graph_url[CONFIG_VALUE_MAX];       /* MEMSYNC_GRAPH_URL */
    char partner_center_url[CONFIG_VALUE_MAX]; /* MEMSYNC_PARTNER_CENTER_URL */
    char ca_file[CONFIG_VALUE_MAX];         /* MEMSYNC_CA_FILE, "" = system store */
    char log_level[16];                     /* MEMSYNC_LOG_LEVEL, info */
    char log_format[16];                    /* MEMSYNC_LOG_FORMAT, text */
    int sync_parallel;                      /* MEMSYNC_SYNC_PARALLEL, tenants in flight, 32 */
};

/* Fills defaults, then the file (when path != NULL, or MEMSYNC_CONFIG), then the environment. */
int config_load(struct config *c, const char *path, struct errbuf *eb);
/* Applies one flag value by key ("db", "listen", ...). ERR_INVAL for unknown keys/bad values. */
int config_set(struct config *c, const char *key, const char *value, struct errbuf *eb);
/* The key file path actually used: master_key_file or "<db>.key". */
void config_master_key_path(const struct config *c, char *out, size_t outlen);
/* Prints every setting with its source-independent value (secrets never live here). */
void config_print(const struct config *c, void *file);

#endif
