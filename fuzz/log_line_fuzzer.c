/* log_line_fuzzer.c - log lines from arbitrary messages: the JSON line is always one JSON object
 * with ts, level and msg, the text line always one line without a control character. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <jansson.h>

#include "err.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char msg[2048], line[8192];
    json_error_t je;
    json_t *o;
    size_t n;

    /* What vsnprintf gives log_msg: at most 2047 bytes, no NUL inside. */
    if (size >= sizeof msg)
        size = sizeof msg - 1;
    memcpy(msg, data, size);
    msg[size] = '\0';

    n = log_format(line, sizeof line, LOG_WARN, "2026-01-01T00:00:00.000Z", msg, 1, 0);
    ASSERT(n > 2 && n < sizeof line && line[n - 1] == '\n' && line[n] == '\0');
    ASSERT(memchr(line, '\n', n - 1) == NULL);
    o = json_loadb(line, n, 0, &je);
    ASSERT(o != NULL && json_is_object(o));
    ASSERT(json_is_string(json_object_get(o, "ts")));
    ASSERT(strcmp(json_string_value(json_object_get(o, "level")), "warn") == 0);
    ASSERT(json_is_string(json_object_get(o, "msg")));
    json_decref(o);

    n = log_format(line, sizeof line, LOG_INFO, "2026-01-01T00:00:00.000Z", msg, 0, 0);
    ASSERT(n > 0 && n < sizeof line && line[n - 1] == '\n');
    for (size_t i = 0; i + 1 < n; i++)
        ASSERT((unsigned char)line[i] >= 0x20 && line[i] != 0x7f);
    return 0;
}
