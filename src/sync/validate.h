/* validate.h - checks the five integration values against Microsoft before they are saved
 * (docs/SETUP.md), each check reported separately with what Microsoft said and what to do.
 *
 * Checks, in order: the IDs are GUIDs; the Partner App gets a Partner Center token in the
 * partner tenant; the customer list can be read; the Sync App gets a Graph token in the partner
 * tenant; then, for a sample of customer tenants, the Sync App gets a token there and can read
 * /organization and managed devices. A failed credential check makes the result not savable
 * (ok = 0); tenant-level problems are warnings (with the admin-consent link where the Sync App is
 * missing). Secrets are borrowed and never copied into a check's text.
 *
 * The integration's cloud (cloud.h) picks the token audiences, and the hosts where the URL
 * settings are still the global defaults.
 *
 * Runs synchronously on the calling thread (it makes its own HTTP requests, bounded by the
 * sample size and the HTTP timeouts).
 */
#ifndef MEMSYNC_VALIDATE_H
#define MEMSYNC_VALIDATE_H

#include <jansson.h>
#include <stddef.h>
#include <stdio.h>

#include "config.h"
#include "err.h"

#define VALIDATE_DEFAULT_SAMPLE 5

enum check_status { CHECK_PASS, CHECK_FAIL, CHECK_WARN, CHECK_SKIP };

struct check {
    char id[48];     /* stable: "partner_tenant_id_format", "partner_token", ... */
    char title[160]; /* what was checked, in plain words */
    enum check_status status;
    char tenant_id[40];  /* for tenant-level checks, else "" */
    char microsoft[512]; /* what Microsoft said (error code and first line), or "" */
    char message[512];   /* what it means */
    char remedy[640];    /* what to do */
    char field[32];      /* a failed check: the input it points at ("partner_app_secret", ...), or
                            "" when Microsoft's answer does not say which */
};

struct validation {
    struct check *checks;
    size_t n;
    int ok;        /* 1 when the credentials can work and the integration may be saved */
    int customers; /* customers found, -1 when not listed */
    int sampled;   /* customer tenants tried with the Sync App (at most the sample) */
};

struct validate_input {
    const char *partner_tenant_id;
    const char *partner_app_id;
    const char *partner_secret; /* NULL: skip the Partner App checks (sync key rotation) */
    const char *sync_app_id;
    const char *sync_secret;   /* NULL: skip the Sync App checks (partner key rotation) */
    int sample;                /* customer tenants to try; 0 = VALIDATE_DEFAULT_SAMPLE */
    const char *tenant_source; /* "partner_center" (default), "contracts", "gdap" */
    const char *cloud;         /* cloud.h name; NULL = global. Sets hosts and audiences */
};

int validate_integration(const struct config *cfg, const struct validate_input *in,
                         struct validation *out, struct errbuf *eb);
void validation_clear(struct validation *v);
json_t *validation_to_json(const struct validation *v);
void validation_print(const struct validation *v, FILE *fp);

#endif
