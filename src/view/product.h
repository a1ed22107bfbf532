/* product.h - software across clients: installed-app titles grouped into products.
 *
 * Intune names one application differently per platform, architecture and version ("Microsoft
 * Visual C++ 2015-2022 Redistributable (x64) - 14.40.33810", "... (x86) - 14.38.33135"), and
 * memsync keeps a title per client and (name, version, publisher). A product is a normalised
 * (name, publisher):
 * - product_name_key / product_name_display: trailing noise removed, repeatedly - a bracketed
 *   group made only of architecture, bitness, locale, version and installer words ("(x64)",
 *   "(64-bit)", "(x64 en-US)", "(Machine - MSI)"), a trailing version ("23.01", "v1.2.3",
 *   "14.40.33810"), a trailing architecture ("x64", "64-bit"), a locale after a dash
 *   ("- en-us"), dangling separators; whitespace runs become one space; the key is also in
 *   lower case (ASCII). A name that would become empty stays as it was (trimmed).
 * - product_publisher_key: lower case, trailing legal suffixes removed ("Corporation", "Inc.",
 *   "LLC", "Ltd", "GmbH", ...): "Microsoft Corporation" and "Microsoft Corp." are one.
 * The key functions write at most outlen bytes (always NUL-terminated) and return the length.
 *
 * struct product_index aggregates titles (one per client and version, as the store keeps them)
 * into products, each with its versions (newest first, by natural order: "10.0" after "9.2"),
 * and per product and version the number of distinct clients and the devices (the sum of the
 * titles' device counts; after product_index_dedupe, distinct devices: a device with the x86 and
 * the x64 build of one product counts once). Products are ordered by devices, most first, then
 * by name key. A
 * product's id is a hash of its keys (FNV-1a, 53 bits so JavaScript keeps it exact): stable
 * across processes and builds, so links and API clients can keep it. Bounded: at most
 * PRODUCT_TITLES_MAX titles (ERR_TOOBIG beyond). Pure; one owner; an index is read-only once
 * finished and then safe to read from several threads.
 */
#ifndef MEMSYNC_PRODUCT_H
#define MEMSYNC_PRODUCT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"

#define PRODUCT_NAME_MAX   512 /* bytes of a name kept; longer ones are cut */
#define PRODUCT_TITLES_MAX 4000000

size_t product_name_key(const char *name, char *out, size_t outlen);
size_t product_name_display(const char *name, char *out, size_t outlen);
size_t product_publisher_key(const char *publisher, char *out, size_t outlen);
/* The id of the product with these keys (as product_name_key and product_publisher_key). */
int64_t product_id(const char *name_key, const char *publisher_key);

struct product_title {
    int64_t title_id, client_id, devices;
};

struct product_version {
    const char *version; /* "" when Intune gave none */
    int64_t clients, devices;
    size_t first_title, ntitles; /* into product_index.titles */
};

struct product {
    int64_t id;
    const char *name, *publisher;         /* for people: from the title with most devices */
    const char *name_key, *publisher_key; /* publisher_key "" when none */
    int64_t clients, devices, titles;
    size_t first_version, nversions; /* into product_index.versions */
};

struct product_index {
    struct product *products;
    size_t nproducts;
    struct product_version *versions;
    size_t nversions;
    struct product_title *titles;
    size_t ntitles;
    struct product_staging *staging; /* while adding */
};

struct product_index *product_index_new(void);
/* One title: NULL strings are empty. ERR_TOOBIG past PRODUCT_TITLES_MAX. */
int product_index_add(struct product_index *ix, int64_t title_id, int64_t client_id,
                      const char *name, const char *publisher, const char *version, int64_t devices,
                      struct errbuf *eb);
/* Groups what was added; after it, only reads (and product_index_dedupe). */
void product_index_finish(struct product_index *ix);
/* A title's devices for product_index_dedupe: *ids gets a malloc'd array of *n device ids (the
 * caller frees it). Returns ERR_OK or an error, which stops the dedupe. */
typedef int product_devices_fn(void *arg, int64_t title_id, int64_t **ids, size_t *n,
                               struct errbuf *eb);
/* After product_index_finish: a device can be counted twice only through two titles of one
 * product in its own client (x86 and x64, two versions), so for each client with more than one
 * title of a product this asks devices() for those titles' devices and subtracts what they share
 * from the product's and each version's device count, then orders the products again. Titles
 * alone in their client are not asked about. ERR_OK or devices()' error (counts then partly
 * corrected: drop the index). */
int product_index_dedupe(struct product_index *ix, product_devices_fn *devices, void *arg,
                         struct errbuf *eb);
void product_index_free(struct product_index *ix); /* NULL-safe */
/* The product with this id, or NULL. */
const struct product *product_index_find(const struct product_index *ix, int64_t id);
/* 1 when text (case-insensitive, ASCII) is in the product's name or publisher; NULL or ""
 * matches every product. */
int product_matches(const struct product *p, const char *text);
/* strcmp-like natural order of version strings: digit runs compare as numbers. */
int product_version_cmp(const char *a, const char *b);

#endif
