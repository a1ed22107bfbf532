/* clock.h - wall-clock and monotonic time, RFC 3339 formatting and parsing.
 *
 * Wall time is Unix seconds (int64). For tests, MEMSYNC_NOW (RFC 3339 or Unix seconds) fixes
 * clock_now() so expiry and retirement rules can be exercised at any date. Thread-safe.
 */
#ifndef MEMSYNC_CLOCK_H
#define MEMSYNC_CLOCK_H

#include <stddef.h>
#include <stdint.h>

/* "No timestamp" (JSON null). Also what Microsoft's 0001-01-01T00:00:00Z sentinel parses to. */
#define TS_NULL INT64_MIN

int64_t clock_now(void);     /* Unix seconds, UTC; honours MEMSYNC_NOW */
int64_t clock_mono_ms(void); /* monotonic milliseconds */
int64_t clock_mono_us(void); /* monotonic microseconds */

/* Formats t as "YYYY-MM-DDTHH:MM:SSZ" into out (>= 21 bytes). TS_NULL gives "". */
void clock_fmt(int64_t t, char *out, size_t outlen);

/* Parses RFC 3339 / ISO 8601 date-times as Microsoft sends them: "2024-04-13T20:23:18Z",
 * fractional seconds (".7156189"), offsets ("-08:00"), and a bare date "2026-05-01" (midnight
 * UTC). Year 0001 (the .NET DateTime.MinValue sentinel) yields TS_NULL.
 * Returns ERR_OK or ERR_PARSE. */
int clock_parse(const char *s, int64_t *out);

#endif
