/* log.h - the one logger: printf-checked, to stderr, `message key=value ...` or JSON lines.
 *
 * Thread-safe (one write(2) per line). Never pass secrets, tokens, Authorization headers or
 * passwords to it; use log_redact_url() for URLs that may carry query tokens.
 * Levels: error, warn, info, debug. Format: text (default) or json.
 *
 * Messages are written `head key=value key="value with spaces" ...: detail`. The head is the
 * text before the first ` key=`; a plain value runs to the next ` key=`, ": " or the end; a
 * quoted value to the quote followed by ` key=`, ": " or the end; what follows ": " is the
 * detail. Keys are [A-Za-z_][A-Za-z0-9_.]*.
 * json: one object per line, {"ts","level","msg": head, one member per field, "detail"}; a
 * value that is a plain integer is a JSON number, anything else a string (bytes that are not
 * UTF-8 become U+FFFD); a field named ts, level, msg or detail is written as "field_NAME".
 * A line is at most 8 KiB: fields that do not fit are left off, the object stays whole.
 * text: control characters in the message are written \n, \r, \t or \xHH (C1 controls
 * \u0080-\u009f), so no value can start a line of its own or move the cursor.
 */
#ifndef MEMSYNC_LOG_H
#define MEMSYNC_LOG_H

#include <stddef.h>

enum log_level { LOG_ERROR = 0, LOG_WARN = 1, LOG_INFO = 2, LOG_DEBUG = 3 };

/* Parses "error|warn|info|debug" and "text|json"; returns ERR_INVAL on an unknown name. */
int log_level_parse(const char *s, enum log_level *out);
void log_configure(enum log_level level, int json);
/* While a progress bar owns the terminal line: each log line first clears it ("\r\033[K"). */
void log_progress_line(int active);
int log_enabled(enum log_level level);

/* Formats one line (what log_msg writes) into out[cap]: ts is the ISO time, clear the progress
 * bar's "\r\033[K" (text only). Returns its length (the line ends in "\n"), 0 when cap < 8. */
size_t log_format(char *out, size_t cap, enum log_level level, const char *ts, const char *msg,
                  int json, int clear);

void log_msg(enum log_level level, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

#define log_error(...) log_msg(LOG_ERROR, __VA_ARGS__)
#define log_warn(...)  log_msg(LOG_WARN, __VA_ARGS__)
#define log_info(...)  log_msg(LOG_INFO, __VA_ARGS__)
#define log_debug(...) log_msg(LOG_DEBUG, __VA_ARGS__)

/* Copies url into out without its query string (which may hold tokens): "https://h/p?…". */
void log_redact_url(const char *url, char *out, size_t outlen);

#endif
