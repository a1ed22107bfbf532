/* ui_device.h - the device page's body as a technician reads it (README.md "Using it"): sizes
 * in GB, dates with their time zone (UTC) and age ("3 days ago"), the OS support status in words
 * (supported until DATE, past support since DATE, supported with no end date announced,
 * unknown), the client as a link to /clients/{id}, an "Open in Intune" link, and the history.
 *
 * ui.c reads the rows (the asset as asset_to_json() renders it, its change history as the
 * "asset_changes" list) and frames the page; these functions write HTML into b. Every string from
 * a tenant goes through env->esc (ui.c's ui_esc), which this module takes as a pointer so that it
 * needs neither ui.h nor anything above it.
 *
 * The Intune link: Microsoft publishes no URL scheme for its admin center; the one used is what
 * the admin center shows in the address bar for a device, and what MSP tools link to (the
 * "View in Intune" device action of CIPP, github.com/KelvinTegelaar/CIPP, found with a code
 * search of public repositories):
 *   https://intune.microsoft.com/{tenant}/#view/Microsoft_Intune_Devices/DeviceSettingsMenuBlade/
 *   ~/overview/mdmDeviceId/{intune device id}
 * The tenant segment (the customer's tenant id) makes a partner's admin center open the customer
 * tenant instead of its own. The host is the admin center of the device's integration's cloud
 * (cloud.h: intune.microsoft.com, .us for GCC High and DoD, intune.microsoftonline.cn for
 * 21Vianet).
 *
 * Pure functions of their arguments (now is passed in); thread-safe. Output is bounded by b.
 */
#ifndef MEMSYNC_UI_DEVICE_H
#define MEMSYNC_UI_DEVICE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

struct ui_device_env {
    void (*esc)(struct buf *b, const char *s); /* HTML-escapes s (NULL: nothing) */
};

/* "476.9 GB" (decimal units, as storage is sold), "512 MB", "900 bytes"; negative: "". */
void ui_device_size(char *out, size_t n, int64_t bytes);
/* How long ago then was, seen at now: "just now", "5 minutes ago", "3 hours ago", "3 days ago",
 * "2 months ago", "3 years ago"; a time ahead of now reads "in 3 days". */
void ui_device_age(char *out, size_t n, int64_t then, int64_t now);
/* Appends an RFC 3339 time as <time datetime="..." title="...">YYYY-MM-DD HH:MM UTC</time> and
 * its age; NULL or unparsable: a dash (the text as is when unparsable). */
void ui_device_when(struct buf *b, const char *rfc3339, int64_t now,
                    const struct ui_device_env *env);
/* The OS support status in words for Intune's operatingSystem and osVersion, and a class for
 * its pill: "ok" (supported until / no end announced), "error" (past support), "never"
 * (unknown). status gets e.g. "supported until 2027-10-12 (Windows 11 25H2)". */
const char *ui_device_support(const char *os_name, const char *os_version, int64_t now,
                              char *status, size_t n);
/* The admin center's page of the device in cloud (cloud.h's names; NULL, "" or unknown: global),
 * or 0 (nothing written) when an id is not a GUID. */
int ui_device_intune_url(char *out, size_t n, const char *cloud, const char *tenant_id,
                         const char *intune_id);

/* The page body below the device's name: the field list (id "asset-fields") with the client
 * link, the Intune link (in cloud, the device's integration's), the support status (id
 * "os-support"), sizes and dates as above. */
void ui_device_fields(struct buf *b, const json_t *asset, const char *cloud, int64_t now,
                      const struct ui_device_env *env);
/* The history table (id "asset-history"; "No changes recorded" when empty); field names are
 * shown as words, dates as ui_device_when, storage sizes as ui_device_size. */
void ui_device_history(struct buf *b, const json_t *rows, int64_t now,
                       const struct ui_device_env *env);

#endif
