/* graph_link_fuzzer.c - graph_link_allowed never crashes, and "allowed" implies the same host.
 * Input: base URL, a NUL byte, then the candidate link. */
#include <ctype.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "graph.h"
#include "mem.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Independent, deliberately simple host extraction: text between "://" and the first of
 * "/?#:" (or "]" for IPv6), lowercased, trailing dot removed. */
static void
host_of(const char *url, char *out, size_t cap)
{
    const char *p = strstr(url, "://");
    size_t n;

    out[0] = '\0';
    if (p == NULL)
        return;
    p += 3;
    n = *p == '[' ? strcspn(p, "]") + 1 : strcspn(p, "/?#:");
    if (n >= cap)
        n = cap - 1;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)p[i]);
    out[n] = '\0';
    if (n > 1 && out[n - 1] == '.')
        out[n - 1] = '\0';
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul;
    char *base, *link;

    if (size > 4096)
        return 0;
    nul = memchr(data, 0, size);
    if (nul == NULL) {
        link = xstrndup((const char *)data, size);
        base = xstrdup("https://graph.microsoft.com");
    } else {
        base = xstrndup((const char *)data, (size_t)(nul - data));
        link = xstrndup((const char *)nul + 1, size - (size_t)(nul - data) - 1);
    }
    if (graph_link_allowed(base, link)) {
        char hb[512], hl[512];

        host_of(base, hb, sizeof hb);
        host_of(link, hl, sizeof hl);
        ASSERT(hb[0] != '\0' && strcmp(hb, hl) == 0);
        ASSERT(strchr(hl, '@') == NULL);
        ASSERT(strncasecmp(base, link, 5) == 0); /* same scheme */
    }
    free(base);
    free(link);
    return 0;
}
