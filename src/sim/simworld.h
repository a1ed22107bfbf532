/* simworld.h - the simulator's world: partner, customer tenants, Intune devices and detected apps.
 *
 * A world is generated deterministically from a seed (same seed and options => the same tenants,
 * devices and apps, byte for byte when rendered, at the same epoch); generated dates are
 * relative to the world's epoch: the current time unless simw_opts.epoch fixes it (tests do, so
 * that their dates do not move with today).
 *
 * Ownership: simw_new() returns a world the caller frees with simw_free() (NULL-safe); tenants,
 * devices and apps belong to it. Tenants are never freed before the world, so a tenant pointer
 * stays valid; device pointers do not survive simw_remove_device().
 * Threads: functions here do not lock. Readers hold `lock` for reading; changes (devices,
 * tenant flags, secrets) hold it for writing. `faults` is guarded by the simulator's own mutex.
 * Errors: allocation aborts (mem.h: sizes are ours, bounded by the callers' option checks);
 * rendering writes into a bounded struct buf and returns ERR_TOOBIG like any buf user.
 */
#ifndef MEMSYNC_SIMWORLD_H
#define MEMSYNC_SIMWORLD_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "buf.h"

#define SIMW_NPROPS      56 /* v1.0 managedDevice structural properties */
#define SIMW_MAX_SECRETS 8

/* Property value kinds of the v1.0 managedDevice table. */
enum simw_kind {
    SIMW_STR,      /* string or null */
    SIMW_BOOL,     /* true/false */
    SIMW_BOOLNULL, /* true/false/null (num < 0 = null) */
    SIMW_INT64,    /* number */
    SIMW_DATE,     /* DateTimeOffset; TS_NULL => 0001-01-01T00:00:00Z */
    SIMW_NULLOBJ,  /* complex type, always null here */
    SIMW_EMPTYARR, /* collection, always [] here */
};

struct simw_prop {
    const char *name;
    enum simw_kind kind;
    int list_blank; /* 1: null (0 for numbers) in lists, real value only on a beta $select GET */
};

extern const struct simw_prop simw_props[SIMW_NPROPS];

/* Index of a property by name (case-insensitive), or -1. */
int simw_prop_index(const char *name);

struct simdev {
    uint64_t seq; /* insertion order key, used by skiptokens */
    char *str[SIMW_NPROPS];
    int64_t num[SIMW_NPROPS];
    uint32_t *apps; /* indices into the tenant's app catalogue */
    size_t napps;
    /* beta-only hardware facts */
    const char *chassis;
    const char *arch;
};

struct simapp {
    char id[65]; /* 64 hex */
    char *name;
    char *version;
    char *publisher; /* NULL => JSON null */
    const char *platform;
    int64_t size;
    int device_count;
};

/* Fault injected on a route of one tenant (or all). */
enum simw_fault_kind {
    SIMW_FAULT_NONE = 0,
    SIMW_FAULT_STATUS,   /* answer `status` with an error body (500, 503, 403, 400, 401 ...) */
    SIMW_FAULT_DROP,     /* send half of the body, then close the connection */
    SIMW_FAULT_TRUNCATE, /* complete HTTP response whose JSON body is cut in half */
    SIMW_FAULT_LATENCY,  /* delay the answer by latency_ms */
    SIMW_FAULT_429,      /* throttled answer (retry_after < 0: no Retry-After header) */
    SIMW_FAULT_SLOW,     /* send the body slowly, in small pieces */
    /* a UTF-8 byte-order mark before the JSON body (also with "bom": true on an error fault) */
    SIMW_FAULT_BOM,
    SIMW_FAULT_SHORT,  /* a managedDevices page that ends the listing early: at most `keep`
                          devices and no @odata.nextLink */
    SIMW_FAULT_RENAME, /* the first device of a managedDevices page is renamed as the page is
                          read and falls behind the paging cursor: not listed this time */
};

struct simw_fault {
    char tenant[64]; /* a customer's or the partner's tenant id (an index is resolved when the
                        fault is added), or "*" for all */
    char route[32];  /* a name of sim_route_names (sim.c), "batch_item" (every inner request of
                        a $batch, whatever its route), or "*" */
    int page;        /* 0 = any page, else the 1-based page of a managedDevices listing (no
                        other route counts pages: there such a fault never fires) */
    enum simw_fault_kind kind;
    int status;
    int latency_ms;
    double retry_after; /* seconds; < 0 = omit header */
    int remaining;      /* requests left; < 0 = always */
    char code[64];      /* Graph error code override */
    char message[256];  /* error message override */
    int bom;            /* status / 429 kinds: the error body starts with a UTF-8 BOM */
    double rate;        /* 0 = every matching request; else the share that gets the fault */
    uint64_t rng;       /* draws for `rate`, seeded from the world's seed: deterministic */
    int64_t until_ms;   /* monotonic ms the fault ends at; 0 = never */
    int keep;           /* SHORT: devices the page still lists */
};

struct simtenant {
    int index;
    char id[37];
    char *name;
    char *domain; /* default domain */
    char *initial_domain;
    char *country;
    struct simdev **devs;
    size_t ndev, capdev;
    struct simapp *apps;
    size_t napps;
    int *appmap;                 /* (platform, app, version) => index in apps, or -1; private */
    int consented;               /* sync app has a service principal here */
    int intune_licensed;         /* 0 => Graph 400 "Request not applicable to target tenant." */
    int permission;              /* 0 => Intune 403 Forbidden */
    int exists;                  /* 0 => AADSTS90002 at token time (listed by PC but gone) */
    char associated_partner[37]; /* indirect reseller id or "" */
    char commerce_id[37];
    /* 1 => no licence and no permission answer as Intune also does: 401 UnknownError nesting
     * {"ErrorCode":"Forbidden"} with WWW-Authenticate realm "urn:intune:service"
     * (microsoft-graph-explorer-v4 #706; microsoft-graph-docs-contrib #4528) */
    int intune_401;
    /* "" (global), "usgov", "usgovdod" or "china": Graph tokens for another cloud's audience
     * get AADSTS900382 (learn.microsoft.com/graph/deployments; pnp/PnP-PowerShell #3042) */
    char cloud[12];
    int org_denied; /* 1 => /organization 403 Authorization_RequestDenied (org_readable false) */
    /* Intune requests this tenant's other apps make each window, -1 = the throttle's
     * other_apps: a tenant running a heavy backup or RMM tool leaves less of its 4000. */
    long other_apps;
};

struct simw_secret {
    char *value;
    int64_t expires; /* unix seconds */
    int64_t start;
    char key_id[37];
};

struct simw_app {
    char id[37];
    char object_id[37]; /* the application object's id (Graph /applications/{id}) */
    struct simw_secret secrets[SIMW_MAX_SECRETS];
    int nsecrets;
};

struct simw_opts {
    uint64_t seed;
    int tenants;
    int devices;
    int apps_per_device;
    int64_t epoch; /* Unix seconds of the world's "now"; 0 = clock_now() at creation */
};

struct simworld {
    pthread_rwlock_t lock;
    uint64_t seed;
    uint64_t next_seq;
    uint64_t rng;  /* for devices added at run time, deterministic too */
    int64_t epoch; /* the world's "now": generated dates are relative to it */
    char partner_tenant_id[37];
    char *partner_name;
    char *partner_domain;
    struct simw_app partner_app;
    struct simw_app sync_app;
    struct simtenant **tenants;
    size_t ntenants;
    int apps_per_device;
    struct simw_fault *faults; /* guarded by the simulator's mutex, not by `lock` */
    size_t nfaults;
};

/* Deterministic generator (splitmix64). */
uint64_t simw_rand(uint64_t *state);
uint64_t simw_rand_range(uint64_t *state, uint64_t n); /* [0, n) */
void simw_guid(uint64_t *state, char out[37]);

/* Creates a world. Returns NULL only for impossible options (then *why says which). */
struct simworld *simw_new(const struct simw_opts *o);
void simw_free(struct simworld *w);

/* Adds a customer tenant with `ndev` devices (name NULL => generated). Returns the tenant. */
struct simtenant *simw_add_tenant(struct simworld *w, const char *name, int ndev);
/* Appends n generated devices to t. */
void simw_add_devices(struct simworld *w, struct simtenant *t, int n);
/* Removes the device at position i (keeps order). */
void simw_remove_device(struct simtenant *t, size_t i);
/* Regenerates t's app catalogue and per-device installs with k apps per device. */
void simw_assign_apps(struct simworld *w, struct simtenant *t, int k);

struct simtenant *simw_tenant_by_id(struct simworld *w, const char *id_or_domain);
/* Position of the device with this id in t, or -1. */
long simw_device_pos(const struct simtenant *t, const char *id);
/* Position of the first device with seq > after (binary search). */
size_t simw_device_after(const struct simtenant *t, uint64_t after);
long simw_app_pos(const struct simtenant *t, const char *id);

/* Index of a beta-only managedDevice member (bit 64 + i of a $select mask), or -1. */
int simw_beta_index(const char *name);

/* Sets string property p of d (copying v; NULL => null). */
void simw_dev_set_str(struct simdev *d, int p, const char *v);

/* Renders a device as a JSON object. `sel` (bitmask of SIMW_NPROPS bits, NULL = all) picks
 * properties; `full` (beta single GET with $select) renders the list-blank properties too;
 * `beta` renders the beta-only members (bits 64.. of sel; all of them when sel is NULL). */
int simw_render_device(const struct simdev *d, const uint64_t *sel, int full, int beta,
                       struct buf *out);

/* Appends s as a JSON string literal. */
int simw_json_str(struct buf *out, const char *s);

/* Secret checks: 1 valid, 0 no such secret, -1 matches an expired secret. */
int simw_secret_check(const struct simw_app *a, const char *secret, int64_t now);
/* Adds a new secret (returns it, owned by the app), valid until `expires`. */
const char *simw_secret_add(struct simworld *w, struct simw_app *a, int64_t expires);

#endif
