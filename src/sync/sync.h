/* sync.h - the sync engine: lists customer tenants and syncs each one's devices (and software)
 * into the store, many tenants at once, paced under Microsoft's limits (docs/ARCHITECTURE.md "The
 * sync engine").
 *
 * sync_run() runs one whole sync on the calling thread, which owns everything it creates (the
 * HTTP engine, the token cache, tenant state). It blocks until every tenant is done, failed, or
 * a stop was requested with sync_request_stop() (async-signal-safe). Meanwhile one more thread,
 * the database writer, writes the run through its own connection to st's database (opened with
 * store_open_peer, closed before sync_run returns): reconciles, failures, tenant results. st
 * itself is read, and written only before the first tenant and after the last result.
 *
 * Guarantees: each tenant is reconciled in one store transaction, and only after its device
 * listing completed; a tenant that failed, was throttled out or interrupted changes no asset
 * (its client row records the error and remedy). Secrets in `creds` are borrowed, never copied
 * into logs or messages.
 *
 * Returns ERR_OK when the run happened (even if some tenants failed: see the summary), or an
 * error when it could not run at all (e.g. the customer list could not be read), with the
 * message and remedy in eb.
 */
#ifndef MEMSYNC_SYNC_H
#define MEMSYNC_SYNC_H

#include <stdint.h>

#include "config.h"
#include "err.h"
#include "partner.h"
#include "store.h"
#include "vault.h"

struct sync_creds {
    const char *partner_tenant_id;
    const char *partner_app_id;
    const char *partner_secret;
    const char *sync_app_id;
    const char *sync_secret;
};

/* Fills c from the integration with both secrets unsealed (sodium-guarded memory; the ids are
 * borrowed from in, which must outlive c). Free with sync_creds_wipe(), also after an error. */
int sync_creds_unseal(struct sync_creds *c, const struct vault *v, const struct integration *in,
                      struct errbuf *eb);
void sync_creds_wipe(struct sync_creds *c); /* wipes and frees the secrets; NULL fields are fine */

/* A tenant of a running sync that has not finished (sync_opts.on_progress). */
struct sync_tenant_live {
    const char *tenant_id;
    const char *name;   /* Partner Center's (or the organization's) name; may be NULL */
    int running;        /* 0: pending (waiting for a free slot), 1: being synced */
    int64_t elapsed_ms; /* since it started, 0 when pending */
};

struct sync_opts {
    const struct config *cfg;
    int incremental;        /* 0 = full sync */
    int parallel;           /* tenants in flight; 0 = cfg->sync_parallel */
    int progress;           /* draw a progress bar on stderr (a terminal) */
    int software;           /* also sync detected applications */
    int hardware_detail;    /* fetch memory and Ethernet MAC per device (one request each) */
    int max_attempts;       /* per request, 0 = default */
    int export_min_devices; /* read apps from the AppInvRawData report export when at least
                               this many devices need them; 0 = the tenant's pace
                               per 20 s (one window of the budget) */
    /* Pacing limits (requests per window); 0 = Microsoft's documented values. */
    int intune_tenant_limit; /* per app per tenant per 20 s (95 % used); 0 = the
                                cfg->intune_tenant_budget, sent as is */
    int intune_global_limit; /* per app across tenants per 10 s: 130000 */
    int pc_limit;            /* Partner Center customers per 60 s: 500 */

    /* For `memsync worker`, where one run is shared by many processes (worker.h): */
    int64_t run_id;                 /* > 0: record tenant results in this existing run, which
                                       the caller started and finishes */
    const struct customer *tenants; /* non-NULL: sync these (borrowed) instead of listing the
                                       customers; exclusions still apply */
    size_t ntenants;
    /* Called about once a second between requests, on the calling thread; st holds no
     * transaction (the writer has its own connection). Returning non-zero stops the run as
     * sync_request_stop() does; tenants already handed to the writer are still committed. */
    int (*tick)(void *arg);
    void *tick_arg;
    /* Live progress (`memsync serve`'s run page): called about once a second and once at the
     * end, on the calling thread, with the tenants not finished yet (pending or running; the
     * finished ones are in the run's tenant results). The array and its strings are borrowed
     * for the call only. listed: 0 while the customer list is still being read. */
    void (*on_progress)(void *arg, const struct sync_tenant_live *live, size_t n, int listed);
    void *progress_arg;
    /* With run_id > 0: 1 = this call also finishes that run (its status, as without run_id),
     * for a run the caller started to answer its id at once (scheduler.h). */
    int finish_run;
    /* Retire devices past the mass-retirement guard (config retire_guard_pct): the MSP checked
     * that they are gone. The other retirement rules still apply. */
    int confirm_retire;
};

struct sync_summary {
    int64_t run_id;
    int tenants_total;
    int tenants_ok;
    int tenants_failed;
    int tenants_interrupted; /* stopped mid-way by sync_request_stop(); data kept */
    int64_t devices;
    int64_t created, updated, unchanged, retired;
    int64_t installs;
    int64_t requests;
    int64_t throttled;
    int64_t duration_ms;
    int interrupted;
};

int sync_run(struct store *st, const struct integration *in, const struct sync_creds *creds,
             const struct sync_opts *opts, struct sync_summary *out, struct errbuf *eb);

/* Lists the integration's customers (minus the MSP's exclusions) without syncing any: *out is
 * a malloc'd array of *n customers the caller frees with customers_free(). Errors as
 * sync_run's "could not run". opts->run_id, tenants and tick are ignored. */
int sync_discover(struct store *st, const struct integration *in, const struct sync_creds *creds,
                  const struct sync_opts *opts, struct customer **out, size_t *n,
                  struct errbuf *eb);

/* Asks a running sync_run to stop starting work and return (async-signal-safe). */
void sync_request_stop(void);

#endif
