/* cloud.h - Microsoft's clouds: the login, Graph and Partner Center hosts and the token
 * audiences that belong together (an integration's `cloud`).
 *
 * global (the default), usgov (Microsoft 365 GCC High), usgovdod (DoD) and china (operated by
 * 21Vianet). Sources: learn.microsoft.com/graph/deployments (login and Graph hosts) and
 * partner-center/developer/partner-center-rest-urls (Partner Center: the US Government cloud
 * uses the global host; 21Vianet has its own), and for the Intune admin center Microsoft's Intune
 * docs (MicrosoftDocs/memdocs intune/fundamentals: intune-us-government-endpoints.md, GCC High
 * and DoD; china-endpoints.md, 21Vianet). A commercial client asking a US Government
 * tenant for a token gets AADSTS900382 (cross-cloud).
 *
 * Explicit URL settings win: cloud_apply changes a URL only while it is the global default, so
 * MEMSYNC_GRAPH_URL etc. (the simulator, a proxy) still point where they say. Audiences always
 * follow the cloud. Pure, thread-safe.
 */
#ifndef MEMSYNC_CLOUD_H
#define MEMSYNC_CLOUD_H

#include "config.h"

struct cloud {
    const char *name;
    const char *login_url;
    const char *graph_url;
    const char *pc_url;
    const char *graph_audience; /* token audience for Graph */
    const char *pc_audience;    /* token audience for Partner Center */
    const char *intune_url;     /* the Intune admin center, for links to a device */
};

#define CLOUD_NAMES "global, usgov, usgovdod, china"

/* The cloud named name; NULL or "" is global; NULL for an unknown name. */
const struct cloud *cloud_find(const char *name);
/* Points cfg's login, Graph and Partner Center URLs at cl's hosts where they are still the
 * global defaults. */
void cloud_apply(const struct cloud *cl, struct config *cfg);

#endif
