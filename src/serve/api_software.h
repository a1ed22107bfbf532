/* api_software.h - software across clients (docs/API.md "Software across clients"): the
 * products of an account (product.h), their versions and the devices that have them, for the
 * REST API (routes below, registered in api.c's table) and the web UI (ui_software.c).
 *
 * An account's products are built from its software titles (one store read of every title
 * with a current install) and kept per data version (store_data_version): every page, search
 * and drill-down until the next committed change reads the same snapshot. At most
 * SOFTWARE_SNAP_SLOTS accounts are kept (least recently built out); concurrent builders may both
 * build, the last one in stays. A snapshot is reference-counted: what api_software_snap
 * returned stays valid until api_software_release, whatever replaces it meanwhile.
 *
 * Threads: any HTTP pool thread; the slots are under a mutex. Errors: the store's (ERR_DB,
 * ERR_TIMEOUT, ...) and ERR_TOOBIG for an account past PRODUCT_TITLES_MAX titles.
 */
#ifndef MEMSYNC_API_SOFTWARE_H
#define MEMSYNC_API_SOFTWARE_H

#include <jansson.h>
#include <stdint.h>

#include "err.h"
#include "product.h"
#include "route.h"
#include "store.h"

#define SOFTWARE_SNAP_SLOTS 8

struct software_snap {
    struct product_index *ix; /* finished; read-only */
    int64_t account, version;
    int refs; /* under the module's mutex */
};

int api_software_snap(struct store *st, int64_t account, struct software_snap **out,
                      struct errbuf *eb);
void api_software_release(struct software_snap *s); /* NULL-safe */
/* Drops every kept snapshot (those still held are freed at their release). For the end of a
 * process: serve after its pool threads stopped, the CLI after its one answer. */
void api_software_forget(void);

/* Appends to arr the devices that have product p (of snapshot s), version only (NULL: every
 * version), client only (0: every client), rows offset.. offset+limit-1 in the product's order
 * (versions newest first, then client, then device name); *total gets how many there are. Each
 * row: the device (id, name, serial_number, client {id, name}, operating_system, user,
 * last_check_in_at), first_seen_at, and software {id, version}. */
int api_software_devices(struct store *st, const struct software_snap *s, const struct product *p,
                         const char *version, int64_t client, int64_t offset, int limit,
                         json_t *arr, int64_t *total, struct errbuf *eb);

/* JSON of a product: id, name, publisher, version_count, client_count, device_count,
 * title_count; with_versions adds versions [{version, client_count, device_count}]. */
json_t *api_software_product_json(const struct software_snap *s, const struct product *p,
                                  int with_versions);

route_handler api_software_products_get;        /* GET /api/v1/assets/products */
route_handler api_software_product_get;         /* GET /api/v1/assets/products/{id} */
route_handler api_software_product_devices_get; /* GET .../products/{id}/devices */

#endif
