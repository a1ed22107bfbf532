/* guid.h - the textual GUID form Microsoft uses for tenant, app and device ids
 * ("00000000-0000-0000-0000-000000000000", hex digits of either case). Thread-safe. */
#ifndef MEMSYNC_GUID_H
#define MEMSYNC_GUID_H

/* 1 when s is exactly 8-4-4-4-12 hex digits with dashes, else 0 (NULL is 0). */
int guid_valid(const char *s);

/* A random (version 4) GUID in lower case, as Microsoft's request and correlation ids are
 * (libsodium's generator; sodium_init() must have run). */
void guid_random(char out[37]);

#endif
