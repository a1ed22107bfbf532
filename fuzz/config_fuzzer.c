/* config_fuzzer.c - config file parser on arbitrary bytes: errors or a valid config, no crash. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "config.h"
#include "err.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct config c;
    struct errbuf eb = {0};
    int rc;

    if (size > 65536)
        return 0;
    config_defaults(&c);
    rc = config_parse_text(&c, "fuzz", (const char *)data, size, &eb);
    ASSERT(rc == ERR_OK || eb.msg[0] != '\0');
    /* Every string field stays NUL-terminated and every limit holds, whatever happened. */
    ASSERT(memchr(c.db, '\0', sizeof c.db) != NULL && c.db[0] != '\0');
    ASSERT(memchr(c.graph_url, '\0', sizeof c.graph_url) != NULL);
    ASSERT(memchr(c.log_level, '\0', sizeof c.log_level) != NULL);
    ASSERT(memchr(c.log_format, '\0', sizeof c.log_format) != NULL);
    ASSERT(c.sync_parallel >= 1 && c.sync_parallel <= 256);
    ASSERT(strncmp(c.login_url, "http", 4) == 0);
    /* What `memsync config` shows of db: bounded, whatever the size of its buffer. */
    {
        char red[CONFIG_VALUE_MAX], tiny[8];

        config_redact_db(c.db, red, sizeof red);
        ASSERT(strlen(red) < sizeof red);
        config_redact_db(c.db, tiny, sizeof tiny);
        ASSERT(strlen(tiny) < sizeof tiny && strncmp(tiny, red, strlen(tiny)) == 0);
    }
    return 0;
}
