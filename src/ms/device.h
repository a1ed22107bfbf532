/* device.h - the hardware asset record memsync keeps per Intune managedDevice, and its mapping
 * from Graph JSON.
 *
 * A struct device owns every string it points to; device_clear() frees them (NULL-safe, and the
 * struct may be reused after it). device_from_graph puts its strings in one allocation; replace
 * a string field with device_set_str, never with free() and a new pointer. Mapping rules
 * (docs/STORE.md "Reconcile rules", docs/API.md "Fields"):
 *   - empty strings from Graph become NULL (JSON null in every output);
 *   - serial numbers are trimmed; placeholders ("To Be Filled By O.E.M.", "System Serial Number",
 *     "Default string", "0", "0123456789", "123456789", "None", "N/A", "", ...) become NULL;
 *   - 0001-01-01T00:00:00Z dates become TS_NULL;
 *   - physicalMemoryInBytes 0 (what list responses carry) becomes "not known" (memory = -1);
 *   - managedDeviceOwnerType maps to company / personal / unknown;
 *   - type is derived from OS, model and manufacturer (see device_type_derive), and a Windows
 *     device on build 20348 (Server 2022 only) is a SERVER;
 *   - serial placeholders also include all-zero strings ("0000-0000"), "Not Specified",
 *     "Not Available", "To be filled by O.E.M." and similar, compared case-insensitively after
 *     trimming.
 * Pure functions; thread-safe.
 */
#ifndef MEMSYNC_DEVICE_H
#define MEMSYNC_DEVICE_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"

enum device_type {
    DEVICE_UNKNOWN = 0,
    DEVICE_WORKSTATION,
    DEVICE_SERVER,
    DEVICE_VIRTUAL,
    DEVICE_MOBILE,
};

struct device {
    char *intune_id;     /* managedDevice.id, never NULL after a successful parse */
    char *aad_device_id; /* azureADDeviceId */
    char *name;          /* deviceName */
    char *serial;        /* normalised serialNumber; NULL when missing or a placeholder */
    char *manufacturer;
    char *model;
    enum device_type type;
    char *os_name;    /* operatingSystem */
    char *os_version; /* osVersion */
    char *user_upn;   /* userPrincipalName */
    char *user_name;  /* userDisplayName */
    char *user_email; /* emailAddress */
    char *ownership;  /* "company" | "personal" | "unknown" (never NULL after parse) */
    char *compliance_state;
    char *management_state;
    char *enrollment_type; /* deviceEnrollmentType */
    int is_encrypted;      /* 0 / 1, -1 when absent */
    int is_supervised;
    int64_t storage_total; /* bytes; -1 when absent */
    int64_t storage_free;
    int64_t memory; /* bytes; -1 when not known (list responses carry 0) */
    char *wifi_mac;
    char *ethernet_mac;
    char *imei;
    char *meid;
    char *phone;
    int64_t enrolled_at;      /* Unix seconds or TS_NULL */
    int64_t last_check_in_at; /* lastSyncDateTime */
    /* private: one allocation for the strings device_from_graph set (one malloc per device
     * instead of one per field); fields pointing elsewhere are freed one by one. */
    char *strings;
    size_t strings_len;
};

/* Kinds of field, for code that walks every field generically (store, diff, CSV). */
enum device_field_kind { DF_STR, DF_INT64, DF_BOOL, DF_TS, DF_TYPE };

struct device_field {
    const char *name; /* stable snake_case name: store column and change-history key */
    enum device_field_kind kind;
    size_t offset; /* offsetof(struct device, ...) */
};

/* Every field of struct device except intune_id, in a fixed order. */
extern const struct device_field device_fields[];
extern const size_t device_field_count;

void device_init(struct device *d); /* zero strings, -1 numbers, TS_NULL dates */
void device_clear(struct device *d);
void device_copy(struct device *dst, const struct device *src); /* dst must be clear */
/* *field (a string member of d) becomes a copy of the n bytes at s (NULL: no value). */
void device_set_str(struct device *d, char **field, const char *s, size_t n);

/* Fills d from one managedDevice JSON object (v1.0 or beta, list or single GET). The generated
 * docs' single-GET examples wrap the entity as {"value": {...}}; an object without "id" whose
 * "value" is an object is read through that wrapper, so both forms map the same. Fails with
 * ERR_PARSE when id is missing or a member has the wrong JSON type (e.g. a real where Int64 is
 * expected), naming the member. d is left cleared on failure. */
int device_from_graph(const json_t *obj, struct device *d, struct errbuf *eb);
/* The derived fields of a mapped device: memory 0 becomes -1, type from OS/model/manufacturer,
 * Windows build 20348 becomes SERVER. Shared by device_from_graph and the streaming page parser
 * (graph_devices_parse) so both map alike. */
void device_derive(struct device *d);

/* Returns a newly allocated normalised serial, or NULL for placeholders and empty strings. */
char *device_serial_normalize(const char *raw);
int device_serial_is_placeholder(const char *raw);

/* iOS/iPadOS/Android/Windows Mobile -> MOBILE; model or manufacturer of a hypervisor or Cloud PC
 * ("Virtual Machine", VMware, VirtualBox, QEMU, KVM, Parallels, Xen, "Cloud PC ...") -> VIRTUAL;
 * an OS name containing "Server" -> SERVER; Windows/macOS/Linux/ChromeOS -> WORKSTATION;
 * otherwise UNKNOWN. Case-insensitive; NULLs allowed. */
enum device_type device_type_derive(const char *os, const char *model, const char *manufacturer);
const char *device_type_name(enum device_type t); /* "WORKSTATION", ... */
int device_type_parse(const char *s, enum device_type *out);

/* Field accessors for generic code. */
const char *device_field_str(const struct device *d, const struct device_field *f);
int64_t device_field_int(const struct device *d, const struct device_field *f);

/* 1 when every field (all of device_fields and intune_id) is equal. */
int device_equal(const struct device *a, const struct device *b);

#endif
