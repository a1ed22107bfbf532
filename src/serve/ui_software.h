/* ui_software.h - the web UI's software across clients: products (api_software.h) with a search
 * ("where is X installed"), a product's versions with their clients and devices, and the
 * devices that have it, across clients, linking to each device.
 *
 * Pages: GET /software/products[?search=&page=], /software/products/{id},
 * /software/products/{id}/devices[?version=&page=]. Routes are in ui.c's table, which hands
 * the page frame (its header with navigation, and footer) through struct ui_software_env.
 * Every string from a tenant goes through env->esc (ui_esc). A failed read answers 503 (database
 * busy) or 500, and an unknown product 404. Threads: any HTTP pool thread.
 */
#ifndef MEMSYNC_UI_SOFTWARE_H
#define MEMSYNC_UI_SOFTWARE_H

#include <stdint.h>

#include "auth.h"
#include "buf.h"
#include "httpd.h"

struct ui_software_env {
    void (*page_begin)(struct httpd_response *resp, const struct auth_principal *p,
                       const char *title, const char *active);
    void (*page_end)(struct httpd_response *resp);
    void (*esc)(struct buf *b, const char *s); /* ui_esc */
};

void ui_software_products(const struct ui_software_env *env, struct httpd_request *req,
                          struct httpd_response *resp, const struct auth_principal *p);
void ui_software_product(const struct ui_software_env *env, struct httpd_request *req,
                         struct httpd_response *resp, const struct auth_principal *p, int64_t id);
void ui_software_product_devices(const struct ui_software_env *env, struct httpd_request *req,
                                 struct httpd_response *resp, const struct auth_principal *p,
                                 int64_t id);

#endif
