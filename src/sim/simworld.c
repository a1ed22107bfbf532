/* simworld.c - deterministic generation and rendering of the simulator's tenants and devices. */
#include "simworld.h"

#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "clock.h"
#include "err.h"
#include "mem.h"

/* Order follows what the service returns (observed list output); managementState last. */
const struct simw_prop simw_props[SIMW_NPROPS] = {
    {"id", SIMW_STR, 0},
    {"userId", SIMW_STR, 0},
    {"deviceName", SIMW_STR, 0},
    {"managedDeviceOwnerType", SIMW_STR, 0},
    {"enrolledDateTime", SIMW_DATE, 0},
    {"lastSyncDateTime", SIMW_DATE, 0},
    {"operatingSystem", SIMW_STR, 0},
    {"complianceState", SIMW_STR, 0},
    {"jailBroken", SIMW_STR, 0},
    {"managementAgent", SIMW_STR, 0},
    {"osVersion", SIMW_STR, 0},
    {"easActivated", SIMW_BOOL, 0},
    {"easDeviceId", SIMW_STR, 0},
    {"easActivationDateTime", SIMW_DATE, 0},
    {"azureADRegistered", SIMW_BOOLNULL, 0},
    {"deviceEnrollmentType", SIMW_STR, 0},
    {"activationLockBypassCode", SIMW_STR, 1},
    {"emailAddress", SIMW_STR, 0},
    {"azureADDeviceId", SIMW_STR, 0},
    {"deviceRegistrationState", SIMW_STR, 0},
    {"deviceCategoryDisplayName", SIMW_STR, 0},
    {"isSupervised", SIMW_BOOL, 0},
    {"exchangeLastSuccessfulSyncDateTime", SIMW_DATE, 0},
    {"exchangeAccessState", SIMW_STR, 0},
    {"exchangeAccessStateReason", SIMW_STR, 0},
    {"remoteAssistanceSessionUrl", SIMW_STR, 0},
    {"remoteAssistanceSessionErrorDetails", SIMW_STR, 0},
    {"isEncrypted", SIMW_BOOL, 0},
    {"userPrincipalName", SIMW_STR, 0},
    {"model", SIMW_STR, 0},
    {"manufacturer", SIMW_STR, 0},
    {"imei", SIMW_STR, 0},
    {"complianceGracePeriodExpirationDateTime", SIMW_DATE, 0},
    {"serialNumber", SIMW_STR, 0},
    {"phoneNumber", SIMW_STR, 0},
    {"androidSecurityPatchLevel", SIMW_STR, 0},
    {"userDisplayName", SIMW_STR, 0},
    {"configurationManagerClientEnabledFeatures", SIMW_NULLOBJ, 0},
    {"wiFiMacAddress", SIMW_STR, 0},
    {"deviceHealthAttestationState", SIMW_NULLOBJ, 0},
    {"subscriberCarrier", SIMW_STR, 0},
    {"meid", SIMW_STR, 0},
    {"totalStorageSpaceInBytes", SIMW_INT64, 0},
    {"freeStorageSpaceInBytes", SIMW_INT64, 0},
    {"managedDeviceName", SIMW_STR, 0},
    {"partnerReportedThreatState", SIMW_STR, 0},
    {"requireUserEnrollmentApproval", SIMW_BOOLNULL, 0},
    {"managementCertificateExpirationDate", SIMW_DATE, 0},
    {"iccid", SIMW_STR, 1},
    {"udid", SIMW_STR, 1},
    {"notes", SIMW_STR, 1},
    {"ethernetMacAddress", SIMW_STR, 1},
    {"physicalMemoryInBytes", SIMW_INT64, 1},
    {"enrollmentProfileName", SIMW_STR, 0},
    {"deviceActionResults", SIMW_EMPTYARR, 0},
    {"managementState", SIMW_STR, 0},
};

enum {
    P_ID,
    P_USERID,
    P_DEVICENAME,
    P_OWNER,
    P_ENROLLED,
    P_LASTSYNC,
    P_OS,
    P_COMPLIANCE,
    P_JAILBROKEN,
    P_AGENT,
    P_OSVER,
    P_EASACT,
    P_EASID,
    P_EASACTDT,
    P_AADREG,
    P_ENROLLTYPE,
    P_ALBC,
    P_EMAIL,
    P_AADID,
    P_REGSTATE,
    P_CATEGORY,
    P_SUPERVISED,
    P_EXCHSYNC,
    P_EXCHSTATE,
    P_EXCHREASON,
    P_RAURL,
    P_RAERR,
    P_ENCRYPTED,
    P_UPN,
    P_MODEL,
    P_MANUF,
    P_IMEI,
    P_GRACE,
    P_SERIAL,
    P_PHONE,
    P_ANDROIDPATCH,
    P_USERDISPLAY,
    P_CMFEATURES,
    P_WIFIMAC,
    P_HEALTH,
    P_CARRIER,
    P_MEID,
    P_TOTAL,
    P_FREE,
    P_MDNAME,
    P_THREAT,
    P_REQAPPROVAL,
    P_CERTEXP,
    P_ICCID,
    P_UDID,
    P_NOTES,
    P_ETHMAC,
    P_MEMORY,
    P_PROFILE,
    P_ACTIONS,
    P_MGMTSTATE,
};

int
simw_prop_index(const char *name)
{
    for (int i = 0; i < SIMW_NPROPS; i++)
        if (strcasecmp(simw_props[i].name, name) == 0)
            return i;
    return -1;
}

uint64_t
simw_rand(uint64_t *state)
{
    uint64_t z = (*state += UINT64_C(0x9e3779b97f4a7c15));

    z = (z ^ (z >> 30)) * UINT64_C(0xbf58476d1ce4e5b9);
    z = (z ^ (z >> 27)) * UINT64_C(0x94d049bb133111eb);
    return z ^ (z >> 31);
}

uint64_t
simw_rand_range(uint64_t *state, uint64_t n)
{
    return n ? simw_rand(state) % n : 0;
}

void
simw_guid(uint64_t *state, char out[37])
{
    uint64_t a = simw_rand(state), b = simw_rand(state);

    /* version 4 / variant 1 bits so the ids look like real GUIDs */
    snprintf(out, 37, "%08x-%04x-4%03x-%04x-%012llx", (unsigned)(a >> 32),
             (unsigned)((a >> 16) & 0xffff), (unsigned)(a & 0xfff),
             (unsigned)(0x8000 | ((b >> 48) & 0x3fff)),
             (unsigned long long)(b & UINT64_C(0xffffffffffff)));
}

#define NELEM(a)    (sizeof(a) / sizeof((a)[0]))
#define PICK(st, a) ((a)[simw_rand_range((st), NELEM(a))])

static void
rand_chars(uint64_t *st, const char *alphabet, int n, char *out)
{
    size_t al = strlen(alphabet);

    for (int i = 0; i < n; i++)
        out[i] = alphabet[simw_rand_range(st, al)];
    out[n] = '\0';
}

static const char UPALNUM[] = "ABCDEFGHJKLMNPQRSTUVWXYZ0123456789";
static const char DIGITS[] = "0123456789";
static const char HEX[] = "0123456789ABCDEF";

/* --- names ------------------------------------------------------------------------------- */

static const char *const company_a[] = {
    "Contoso",     "Fabrikam",   "Northwind",     "Adventure Works", "Tailspin",
    "Wingtip",     "Litware",    "Proseware",     "Woodgrove",       "Alpine Ski",
    "Blue Yonder", "Coho",       "Fourth Coffee", "Graphic Design",  "Humongous",
    "Lamna",       "Lucerne",    "Margie's",      "Relecloud",       "Trey",
    "VanArsdel",   "Wide World", "Datum",         "Bellows",         "Consolidated",
    "Southridge",  "Tasmanian",  "Munson's",      "Hanson",          "Baker & Sons",
};
static const char *const company_b[] = {
    "Dental",  "Logistics", "Legal LLP", "Accounting", "Pharmaceuticals", "Toys",
    "Traders", "Travel",    "Bank",      "Insurance",  "Architects",      "Winery",
    "Clinic",  "Motors",    "Foods",     "Energy",     "Consulting",      "Partners",
};
static const char *const special_companies[] = {
    "Müller & Söhne GmbH",  "株式会社サンプル商事",
    "Café Zoë S.à r.l.",    "<script>alert('x')</script> Holdings",
    "\"Quoted\", Inc.",     "=HYPERLINK(\"http://evil.example\",\"Click\")",
    "Ελληνική Εταιρεία ΑΕ", "🚀 Rocket Startups",
};

static const char *const first_names[] = {
    "Anna",  "Ben",    "Chloé", "David", "Emma",  "Farid", "Grace",  "Hiro",  "Ines",  "Jonas",
    "Karin", "Liam",   "María", "Noah",  "Olga",  "Pablo", "Quinn",  "Rania", "Søren", "Tomás",
    "Uma",   "Victor", "Wei",   "Xenia", "Yusuf", "Zoë",   "Łukasz", "Ngozi", "Priya", "Jürgen",
};
static const char *const last_names[] = {
    "Anderson",     "Bauer",  "Chen",    "Dubois",   "Evans",   "Fischer", "García",
    "Hansen",       "Ito",    "Johnson", "Kowalski", "López",   "Müller",  "Nakamura",
    "O'Brien",      "Petrov", "Quist",   "Rossi",    "Schmidt", "Tanaka",  "Novák",
    "Van der Berg", "Wang",   "Yılmaz",  "Zhang",
};

static const char *const hostile_names[] = {
    "<img src=x onerror=alert(1)>",
    "<script>alert(document.cookie)</script>",
    "Bob's \"work\" laptop, 2nd floor",
    "line one\nline two",
    "=cmd|' /C calc'!A0",
    "+SUM(1+1)",
    "-2+3",
    "@SUM(A1:A2)",
    "北京-笔记本电脑",
    "💻 Élodie's MacBook",
    "Ünïcödé-Dëvïcé",
    "tab\tseparated;semi,comma",
};

static char *
slugify(const char *name)
{
    size_t n = strlen(name);
    char *s = xmalloc(n + 8);
    size_t j = 0;

    for (size_t i = 0; i < n && j < 40; i++) {
        unsigned char c = (unsigned char)name[i];
        if ((c >= 'a' && c <= 'z') || (c >= '0' && c <= '9'))
            s[j++] = (char)c;
        else if (c >= 'A' && c <= 'Z')
            s[j++] = (char)(c - 'A' + 'a');
    }
    if (j == 0) {
        memcpy(s, "tenant", 6);
        j = 6;
    }
    s[j] = '\0';
    return s;
}

/* --- devices ------------------------------------------------------------------------------ */

struct hwmodel {
    const char *manufacturer;
    const char *model;
    const char *chassis;
    int serial_kind; /* see gen_serial */
    int64_t disk_gb;
    int64_t ram_gb;
};

enum {
    SER_DELL,
    SER_LENOVO,
    SER_HP,
    SER_SURFACE,
    SER_CLOUDPC,
    SER_VMWARE,
    SER_PLACEHOLDER,
    SER_APPLE,
    SER_SAMSUNG,
    SER_PIXEL
};

static const struct hwmodel win_laptops[] = {
    {"Dell Inc.", "Latitude 5440", "laptop", SER_DELL, 512, 16},
    {"Dell Inc.", "Latitude 7450", "laptop", SER_DELL, 512, 32},
    {"Dell Inc.", "XPS 13 9340", "laptop", SER_DELL, 1024, 32},
    {"Dell Inc.", "Precision 5680", "laptop", SER_DELL, 1024, 64},
    {"LENOVO", "ThinkPad T14 Gen 4", "laptop", SER_LENOVO, 512, 16},
    {"LENOVO", "ThinkPad X1 Carbon Gen 11", "laptop", SER_LENOVO, 1024, 32},
    {"LENOVO", "ThinkPad E16 Gen 1", "laptop", SER_LENOVO, 256, 8},
    {"HP", "HP EliteBook 840 G10 Notebook PC", "laptop", SER_HP, 512, 16},
    {"HP", "HP ProBook 450 15.6 inch G10 Notebook PC", "laptop", SER_HP, 256, 8},
    {"Microsoft Corporation", "Surface Laptop 5", "laptop", SER_SURFACE, 256, 16},
    {"Microsoft Corporation", "Surface Pro 9", "convertible", SER_SURFACE, 256, 16},
};
static const struct hwmodel win_desktops[] = {
    {"Dell Inc.", "OptiPlex 7010", "desktop", SER_DELL, 512, 16},
    {"HP", "HP EliteDesk 800 G6 Small Form Factor PC", "desktop", SER_HP, 256, 16},
    {"LENOVO", "ThinkCentre M70q Gen 4", "desktop", SER_LENOVO, 512, 16},
    {"Dell Inc.", "PowerEdge T150", "desktop", SER_DELL, 2048, 32},
};
static const struct hwmodel vms[] = {
    {"Microsoft Corporation", "Virtual Machine", "desktop", SER_PLACEHOLDER, 127, 8},
    {"VMware, Inc.", "VMware7,1", "desktop", SER_VMWARE, 100, 8},
    {"VMware, Inc.", "VMware20,1", "desktop", SER_PLACEHOLDER, 80, 4},
};
static const struct hwmodel cloudpcs[] = {
    {"Microsoft Corporation", "Cloud PC Enterprise 2vCPU/8GB/128GB", "desktop", SER_CLOUDPC, 128,
     8},
    {"Microsoft Corporation", "Cloud PC Enterprise 4vCPU/16GB/256GB", "desktop", SER_CLOUDPC, 256,
     16},
};
static const struct hwmodel iphones[] = {
    {"Apple", "iPhone 13", "phone", SER_APPLE, 128, 4},
    {"Apple", "iPhone 14 Pro", "phone", SER_APPLE, 256, 6},
    {"Apple", "iPhone 15", "phone", SER_APPLE, 128, 6},
    {"Apple", "iPhone SE (3rd generation)", "phone", SER_APPLE, 64, 4},
};
static const struct hwmodel ipads[] = {
    {"Apple", "iPad (10th generation)", "tablet", SER_APPLE, 64, 4},
    {"Apple", "iPad Pro (11-inch) (4th generation)", "tablet", SER_APPLE, 256, 8},
};
static const struct hwmodel androids[] = {
    {"samsung", "SM-S911B", "phone", SER_SAMSUNG, 128, 8},
    {"samsung", "SM-A546B", "phone", SER_SAMSUNG, 128, 6},
    {"Google", "Pixel 8", "phone", SER_PIXEL, 128, 8},
    {"motorola", "moto g54 5G", "phone", SER_SAMSUNG, 256, 8},
};
static const struct hwmodel macs[] = {
    {"Apple", "MacBook Air (M2, 2022)", "laptop", SER_APPLE, 256, 8},
    {"Apple", "MacBook Pro (14-inch, 2023)", "laptop", SER_APPLE, 512, 16},
    {"Apple", "Mac mini (2023)", "desktop", SER_APPLE, 512, 16},
};

static const char *const placeholders[] = {
    "To Be Filled By O.E.M.", "System Serial Number", "Default string", "0", "None", "",
};

static void
gen_serial(uint64_t *st, int kind, char *out, size_t outlen)
{
    char t[64];

    switch (kind) {
    case SER_DELL:
        rand_chars(st, UPALNUM, 7, t);
        snprintf(out, outlen, "%s", t);
        break;
    case SER_LENOVO:
        rand_chars(st, UPALNUM, 6, t);
        snprintf(out, outlen, "PF%s", t);
        break;
    case SER_HP:
        rand_chars(st, UPALNUM, 7, t);
        snprintf(out, outlen, "5CG%s", t);
        break;
    case SER_SURFACE:
        rand_chars(st, DIGITS, 12, t);
        snprintf(out, outlen, "%s", t);
        break;
    case SER_CLOUDPC:
        rand_chars(st, DIGITS, 26, t);
        snprintf(out, outlen, "%.4s-%.4s-%.4s-%.4s-%.4s-%.4s-%.2s", t, t + 4, t + 8, t + 12, t + 16,
                 t + 20, t + 24);
        break;
    case SER_VMWARE: {
        char h[33];
        rand_chars(st, "0123456789abcdef", 32, h);
        snprintf(out, outlen,
                 "VMware-%.2s %.2s %.2s %.2s %.2s %.2s %.2s %.2s-%.2s %.2s %.2s %.2s %.2s %.2s "
                 "%.2s %.2s",
                 h, h + 2, h + 4, h + 6, h + 8, h + 10, h + 12, h + 14, h + 16, h + 18, h + 20,
                 h + 22, h + 24, h + 26, h + 28, h + 30);
        break;
    }
    case SER_PLACEHOLDER:
        snprintf(out, outlen, "%s", PICK(st, placeholders));
        break;
    case SER_APPLE:
        rand_chars(st, UPALNUM, 10, t);
        snprintf(out, outlen, "%s", t);
        break;
    case SER_SAMSUNG:
        rand_chars(st, UPALNUM, 9, t);
        snprintf(out, outlen, "R5C%s", t);
        break;
    default:
        rand_chars(st, UPALNUM, 10, t);
        snprintf(out, outlen, "%s", t);
        break;
    }
}

static void
gen_mac(uint64_t *st, char *out)
{
    rand_chars(st, HEX, 12, out);
}

static void
gen_imei(uint64_t *st, char *out)
{
    char t[16];

    rand_chars(st, DIGITS, 12, t);
    snprintf(out, 16, "35%s", t);
    /* Luhn check digit, as real IMEIs carry one */
    int sum = 0;
    for (int i = 0; i < 14; i++) {
        int dgt = out[i] - '0';
        if (i % 2 == 1) {
            dgt *= 2;
            if (dgt > 9)
                dgt -= 9;
        }
        sum += dgt;
    }
    out[14] = (char)('0' + (10 - sum % 10) % 10);
    out[15] = '\0';
}

void
simw_dev_set_str(struct simdev *d, int p, const char *v)
{
    free(d->str[p]);
    d->str[p] = v ? xstrdup(v) : NULL;
}

static void
dev_free(struct simdev *d)
{
    if (d == NULL)
        return;
    for (int i = 0; i < SIMW_NPROPS; i++)
        free(d->str[i]);
    free(d->apps);
    free(d);
}

enum dkind { DK_LAPTOP, DK_DESKTOP, DK_VM, DK_CLOUDPC, DK_IPHONE, DK_IPAD, DK_ANDROID, DK_MAC };

static enum dkind
pick_kind(uint64_t *st)
{
    uint64_t r = simw_rand_range(st, 100);

    if (r < 40)
        return DK_LAPTOP;
    if (r < 52)
        return DK_DESKTOP;
    if (r < 56)
        return DK_VM;
    if (r < 61)
        return DK_CLOUDPC;
    if (r < 76)
        return DK_IPHONE;
    if (r < 81)
        return DK_IPAD;
    if (r < 92)
        return DK_ANDROID;
    return DK_MAC;
}

static const char *const win_builds[] = {"10.0.22631.3737", "10.0.22631.4169", "10.0.26100.1742",
                                         "10.0.19045.4529", "10.0.19044.3693", "10.0.22621.3880",
                                         "10.0.17763.6054"};
static const char *const ios_versions[] = {"17.5.1", "17.6.1", "18.0", "16.7.10", "15.8.3"};
static const char *const ipados_versions[] = {"17.5.1", "18.0.1", "16.7.8"};
static const char *const android_versions[] = {"14", "13", "12", "11"};
static const char *const android_patches[] = {"2024-09-01", "2024-06-01", "2023-12-01",
                                              "2022-05-01"};
static const char *const mac_versions[] = {"14.6.1 (23G93)", "15.0 (24A335)", "13.6.9 (22G830)",
                                           "12.7.6 (21H1320)"};
/* The releases of the OS versions above are those of the 2026-06-01 baseline. In a world whose
 * epoch is later (the current time: a demo), devices have taken updates: most run one of these
 * releases, current at the end of 2026, so the overview shows a realistic share of unsupported
 * systems rather than nearly all of them. Drawn from a generator of the device's own (seed,
 * sequence), so a world at the baseline epoch stays byte for byte what it was. */
#define SIMW_BASELINE_EPOCH 1780272000 /* 2026-06-01T00:00:00Z */
static const char *const win_current[] = {"10.0.26200.7462", "10.0.26200.7171", "10.0.26200.6899",
                                          "10.0.26100.7462"};
static const char *const ios_current[] = {"26.1", "26.2", "18.7.2"};
static const char *const ipados_current[] = {"26.1", "18.7.2"};
static const char *const android_current[] = {"16", "15", "14"};
static const char *const mac_current[] = {"26.1 (25B78)", "15.7.2 (24G325)", "14.8.2 (23J126)"};

static const char *
updated_os(const struct simworld *w, uint64_t seq, enum dkind k, int64_t epoch, const char *osver)
{
    uint64_t st = w->seed ^ (seq * UINT64_C(0x9e3779b97f4a7c15)) ^ UINT64_C(0x3c6ef372fe94f82b);
    /* A month after the baseline a third have updated, after three months three in four. */
    uint64_t months = (uint64_t)(epoch - SIMW_BASELINE_EPOCH) / (30 * 86400);
    uint64_t pct = months >= 3 ? 75 : 15 + months * 20;

    if (simw_rand_range(&st, 100) >= pct)
        return osver;
    switch (k) {
    case DK_LAPTOP:
    case DK_DESKTOP:
    case DK_VM:
    case DK_CLOUDPC:
        return PICK(&st, win_current);
    case DK_IPHONE:
        return PICK(&st, ios_current);
    case DK_IPAD:
        return PICK(&st, ipados_current);
    case DK_ANDROID:
        return PICK(&st, android_current);
    case DK_MAC:
        return PICK(&st, mac_current);
    }
    return osver;
}

static const char *const compliance_states[] = {
    "compliant",     "compliant", "compliant",     "compliant", "noncompliant",
    "inGracePeriod", "unknown",   "configManager", "error",     "conflict"};
static const char *const carriers[] = {"Verizon", "T-Mobile",   "Vodafone",
                                       "Orange",  "Telekom.de", "AT&T"};
static const char *const categories[] = {"Unknown",     "Unknown", "Sales",
                                         "Engineering", "Finance", "Shared"};

/* Builds one device from its own random stream, so any device can be regenerated alone. */
static struct simdev *
gen_device(struct simworld *w, struct simtenant *t, uint64_t st)
{
    struct simdev *d = xcalloc(1, sizeof(*d));
    const struct hwmodel *hm = NULL;
    char id[37], aad[37], uid[37], serial[128], mac[16], emac[16], buf[512], upn[256], dname[300];
    const char *os = "Windows", *osver = "", *agent = "mdm", *enroll = "windowsAzureADJoin";
    enum dkind k = pick_kind(&st);
    int userless = simw_rand_range(&st, 100) < 8;
    int personal = 0, mobile = 0, hostile = simw_rand_range(&st, 100) < 3;
    int64_t epoch = w->epoch;

    d->seq = ++w->next_seq;
    simw_guid(&st, id);
    simw_guid(&st, aad);
    simw_guid(&st, uid);
    switch (k) {
    case DK_LAPTOP:
        hm = &PICK(&st, win_laptops);
        break;
    case DK_DESKTOP:
        hm = &PICK(&st, win_desktops);
        break;
    case DK_VM:
        hm = &PICK(&st, vms);
        break;
    case DK_CLOUDPC:
        hm = &PICK(&st, cloudpcs);
        break;
    case DK_IPHONE:
        hm = &PICK(&st, iphones);
        break;
    case DK_IPAD:
        hm = &PICK(&st, ipads);
        break;
    case DK_ANDROID:
        hm = &PICK(&st, androids);
        break;
    case DK_MAC:
        hm = &PICK(&st, macs);
        break;
    }
    gen_serial(&st, hm->serial_kind, serial, sizeof serial);
    gen_mac(&st, mac);
    gen_mac(&st, emac);
    d->chassis = hm->chassis;
    d->arch = "x64";

    const char *fn = PICK(&st, first_names), *ln = PICK(&st, last_names);
    char *slug_fn = slugify(fn), *slug_ln = slugify(ln);
    snprintf(upn, sizeof upn, "%s.%s@%s", slug_fn, slug_ln, t ? t->domain : "partner.example");
    free(slug_fn);
    free(slug_ln);

    switch (k) {
    case DK_LAPTOP:
    case DK_DESKTOP:
    case DK_VM:
        os = "Windows";
        osver = PICK(&st, win_builds);
        if (k == DK_VM && simw_rand_range(&st, 2))
            snprintf(dname, sizeof dname, "SRV-%s", serial[0] ? "APP01" : "VM01");
        else {
            char tag[8];
            rand_chars(&st, UPALNUM, 6, tag);
            snprintf(dname, sizeof dname, "%s-%s", k == DK_LAPTOP ? "LT" : "DT", tag);
        }
        d->arch = simw_rand_range(&st, 20) == 0 ? "arm64" : "x64";
        break;
    case DK_CLOUDPC: {
        char tag[6];
        rand_chars(&st, UPALNUM, 5, tag);
        snprintf(dname, sizeof dname, "CPC-%.5s-%s", upn, tag);
        osver = PICK(&st, win_builds);
        userless = 0;
        break;
    }
    case DK_IPHONE:
    case DK_IPAD:
        os = k == DK_IPHONE ? "iOS" : "iPadOS";
        osver = k == DK_IPHONE ? PICK(&st, ios_versions) : PICK(&st, ipados_versions);
        snprintf(dname, sizeof dname, "%s's %s", fn, k == DK_IPHONE ? "iPhone" : "iPad");
        enroll = simw_rand_range(&st, 2) ? "appleBulkWithUser" : "userEnrollment";
        mobile = 1;
        d->arch = "arm64";
        break;
    case DK_ANDROID:
        os = "Android";
        osver = PICK(&st, android_versions);
        snprintf(dname, sizeof dname, "%s_Android_%s", fn, hm->model);
        enroll = "userEnrollment";
        mobile = 1;
        d->arch = "arm64";
        break;
    case DK_MAC:
        os = "macOS";
        osver = PICK(&st, mac_versions);
        snprintf(dname, sizeof dname, "%s's MacBook", fn);
        enroll = "appleBulkWithUser";
        d->arch = "arm64";
        break;
    }
    if (mobile && simw_rand_range(&st, 100) < 30)
        personal = 1;
    if (hostile) {
        snprintf(dname, sizeof dname, "%s", PICK(&st, hostile_names));
    } else if (simw_rand_range(&st, 400) == 0) {
        memset(dname, 'N', 255);
        dname[255] = '\0';
    }

    simw_dev_set_str(d, P_ID, id);
    simw_dev_set_str(d, P_DEVICENAME, dname);
    simw_dev_set_str(d, P_OWNER, personal ? "personal" : "company");
    int64_t enrolled = epoch - (int64_t)(30 + simw_rand_range(&st, 1400)) * 86400 -
                       (int64_t)simw_rand_range(&st, 86400);
    int64_t last = simw_rand_range(&st, 100) < 90
                       ? epoch - (int64_t)simw_rand_range(&st, 14 * 86400)
                       : epoch - (int64_t)(30 + simw_rand_range(&st, 200)) * 86400;
    if (last < enrolled)
        last = enrolled + 3600;
    d->num[P_ENROLLED] = enrolled;
    d->num[P_LASTSYNC] = last;
    if (epoch > SIMW_BASELINE_EPOCH)
        osver = updated_os(w, d->seq, k, epoch, osver);
    simw_dev_set_str(d, P_OS, os);
    simw_dev_set_str(d, P_COMPLIANCE, PICK(&st, compliance_states));
    simw_dev_set_str(d, P_JAILBROKEN, mobile ? "False" : "Unknown");
    simw_dev_set_str(d, P_AGENT, agent);
    simw_dev_set_str(d, P_OSVER, osver);
    d->num[P_EASACT] = 0;
    simw_dev_set_str(d, P_EASID, "");
    d->num[P_EASACTDT] = TS_NULL;
    d->num[P_AADREG] = 1;
    simw_dev_set_str(d, P_ENROLLTYPE, k == DK_ANDROID ? "userEnrollment" : enroll);
    simw_dev_set_str(d, P_ALBC, k == DK_IPHONE || k == DK_IPAD ? "K0DCL-8EKVD-4R1R-1QKR" : NULL);
    simw_dev_set_str(d, P_AADID, aad);
    simw_dev_set_str(d, P_REGSTATE, "registered");
    simw_dev_set_str(d, P_CATEGORY, PICK(&st, categories));
    d->num[P_SUPERVISED] = (k == DK_IPHONE || k == DK_IPAD) && !personal;
    d->num[P_EXCHSYNC] = TS_NULL;
    simw_dev_set_str(d, P_EXCHSTATE, "none");
    simw_dev_set_str(d, P_EXCHREASON, "none");
    simw_dev_set_str(d, P_RAURL, NULL);
    simw_dev_set_str(d, P_RAERR, NULL);
    d->num[P_ENCRYPTED] = simw_rand_range(&st, 10) < 8;
    if (userless) {
        simw_dev_set_str(d, P_USERID, "");
        simw_dev_set_str(d, P_EMAIL, "");
        simw_dev_set_str(d, P_UPN, "");
        simw_dev_set_str(d, P_USERDISPLAY, "");
    } else {
        simw_dev_set_str(d, P_USERID, uid);
        simw_dev_set_str(d, P_EMAIL, upn);
        simw_dev_set_str(d, P_UPN, upn);
        snprintf(buf, sizeof buf, "%s %s", fn, ln);
        simw_dev_set_str(d, P_USERDISPLAY, buf);
    }
    simw_dev_set_str(d, P_MODEL, hm->model);
    simw_dev_set_str(d, P_MANUF, hm->manufacturer);
    /* iPhones and cellular iPads (every other one) have radios */
    if (mobile && (k != DK_IPAD || simw_rand_range(&st, 2) == 0)) {
        char imei[16], phone[32], iccid[24];
        gen_imei(&st, imei);
        simw_dev_set_str(d, P_IMEI, imei);
        rand_chars(&st, DIGITS, 9, buf);
        snprintf(phone, sizeof phone, "+1425%.7s", buf);
        simw_dev_set_str(d, P_PHONE, personal ? "" : phone);
        simw_dev_set_str(d, P_CARRIER, PICK(&st, carriers));
        rand_chars(&st, DIGITS, 17, buf);
        snprintf(iccid, sizeof iccid, "89%s", buf);
        simw_dev_set_str(d, P_ICCID, iccid);
    } else {
        simw_dev_set_str(d, P_IMEI, "");
        simw_dev_set_str(d, P_PHONE, "");
        simw_dev_set_str(d, P_CARRIER, "");
        simw_dev_set_str(d, P_ICCID, NULL);
    }
    d->num[P_GRACE] = 253402300799; /* 9999-12-31T23:59:59Z, what compliant devices carry */
    if (strcmp(d->str[P_COMPLIANCE], "inGracePeriod") == 0)
        d->num[P_GRACE] = epoch + 3 * 86400;
    simw_dev_set_str(d, P_SERIAL, serial);
    simw_dev_set_str(d, P_ANDROIDPATCH, k == DK_ANDROID ? PICK(&st, android_patches) : "");
    simw_dev_set_str(d, P_WIFIMAC, k == DK_VM ? "" : mac);
    simw_dev_set_str(d, P_MEID, "");
    int64_t total = hm->disk_gb * INT64_C(1000000000) - (int64_t)simw_rand_range(&st, 1u << 30);
    d->num[P_TOTAL] = total;
    d->num[P_FREE] = (int64_t)((double)total * (0.05 + (double)simw_rand_range(&st, 80) / 100.0));
    {
        struct tm tm;
        time_t tt = (time_t)enrolled;
        gmtime_r(&tt, &tm);
        int h12 = tm.tm_hour % 12 == 0 ? 12 : tm.tm_hour % 12;
        const char *at = strchr(d->str[P_UPN], '@');
        int ulen = at ? (int)(at - d->str[P_UPN]) : 200;
        snprintf(buf, sizeof buf, "%.*s_%s_%d/%d/%d_%d:%02d %s", userless ? 36 : ulen,
                 userless ? aad : d->str[P_UPN], os, tm.tm_mon + 1, tm.tm_mday, tm.tm_year + 1900,
                 h12, tm.tm_min, tm.tm_hour < 12 ? "AM" : "PM");
        simw_dev_set_str(d, P_MDNAME, buf);
    }
    simw_dev_set_str(d, P_THREAT, "unknown");
    d->num[P_REQAPPROVAL] = -1;
    d->num[P_CERTEXP] = enrolled + 365 * 86400;
    simw_dev_set_str(d, P_UDID, (k == DK_IPHONE || k == DK_IPAD || k == DK_MAC) ? id : NULL);
    simw_dev_set_str(d, P_NOTES, simw_rand_range(&st, 10) == 0 ? "Loaner pool" : NULL);
    simw_dev_set_str(d, P_ETHMAC, (k == DK_DESKTOP || k == DK_VM) ? emac : NULL);
    d->num[P_MEMORY] = hm->ram_gb * INT64_C(1073741824);
    simw_dev_set_str(d, P_PROFILE, NULL);
    {
        uint64_t r = simw_rand_range(&st, 100);
        simw_dev_set_str(d, P_MGMTSTATE,
                         r < 96   ? "managed"
                         : r < 98 ? "retirePending"
                                  : "wipePending");
    }
    if (userless)
        simw_dev_set_str(d, P_ENROLLTYPE, k == DK_VM ? "windowsBulkUserless" : enroll);
    (void)t;
    return d;
}

/* --- apps ---------------------------------------------------------------------------------- */

struct appdef {
    const char *name;
    const char *publisher; /* NULL => null */
    const char *versions[3];
    int64_t size;
};

static const struct appdef win_apps[] = {
    {"Microsoft Edge",
     "Microsoft Corporation",
     {"129.0.2792.65", "128.0.2739.79", "127.0.2651.105"},
     0},
    {"Google Chrome", "Google LLC", {"129.0.6668.90", "128.0.6613.138", "126.0.6478.127"}, 0},
    {"Mozilla Firefox (x64 en-US)", "Mozilla", {"131.0", "130.0.1", "128.3.1"}, 0},
    {"7-Zip 23.01 (x64)", "Igor Pavlov", {"23.01", "22.01", "19.00"}, 5242880},
    {"Adobe Acrobat (64-bit)", "Adobe", {"24.003.20112", "24.002.21005", "23.008.20470"}, 0},
    {"Zoom Workplace (64-bit)",
     "Zoom Video Communications, Inc.",
     {"6.2.3", "6.1.11", "5.17.11"},
     0},
    {"Microsoft Teams",
     "Microsoft Corporation",
     {"24257.205.3165.2853", "24215.1007.3082.1590", "1.7.00.13456"},
     0},
    {"Notepad++ (64-bit x64)", "Notepad++ Team", {"8.6.9", "8.6.2", "8.5.8"}, 0},
    {"VLC media player", "VideoLAN", {"3.0.21", "3.0.20", "3.0.18"}, 0},
    {"Microsoft 365 Apps for enterprise - en-us",
     "Microsoft Corporation",
     {"16.0.17928.20156", "16.0.17726.20160", "16.0.17328.20550"},
     0},
    {"Microsoft Visual C++ 2015-2022 Redistributable (x64) - 14.40.33810",
     "Microsoft Corporation",
     {"14.40.33810.0", "14.38.33135.0", "14.36.32532.0"},
     0},
    {"Slack", "Slack Technologies Inc.", {"4.40.128", "4.39.95", "4.36.140"}, 0},
    {"Cisco Secure Client - AnyConnect VPN",
     "Cisco Systems, Inc.",
     {"5.1.4.74", "5.0.05040", "4.10.08025"},
     0},
    {"Dell Command | Update for Windows Universal", "Dell Inc.", {"5.4.0", "5.2.0", "4.9.0"}, 0},
    {"HP Support Assistant", "HP Inc.", {"9.38.18.0", "9.30.11.0", "9.21.23.0"}, 0},
    {"Lenovo Vantage Service", "Lenovo Group Ltd.", {"4.1.16.0", "3.13.43.0", "3.8.23.0"}, 0},
    {"Git", "The Git Development Community", {"2.46.2", "2.45.1", "2.40.0"}, 0},
    {"Python 3.12.6 (64-bit)",
     "Python Software Foundation",
     {"3.12.6150.0", "3.11.9150.0", "3.10.11150.0"},
     0},
    {"Microsoft Visual Studio Code", "Microsoft Corporation", {"1.94.0", "1.93.1", "1.90.2"}, 0},
    {"Windows PC Health Check",
     "Microsoft Corporation",
     {"3.7.2204.15001", "3.6.2204.08001", "3.2.2110.14001"},
     0},
    {"TeamViewer", "TeamViewer", {"15.58.4", "15.55.3", "15.42.4"}, 0},
    {"KeePass Password Safe 2.57", "Dominik Reichl", {"2.57", "2.56", "2.54"}, 0},
    {"WinRAR 7.01 (64-bit)", "win.rar GmbH", {"7.01.0", "6.24.0", "6.02.0"}, 0},
    {"Greenshot 1.2.10.6", "Greenshot", {"1.2.10.6", "1.2.9.129", "1.2.8.12"}, 0},
    {"PuTTY release 0.81 (64-bit)", "Simon Tatham", {"0.81.0.0", "0.80.0.0", "0.78.0.0"}, 0},
    {"FileZilla 3.67.1", "Tim Kosse", {"3.67.1", "3.66.5", "3.63.2"}, 0},
    {"Microsoft OneDrive",
     "Microsoft Corporation",
     {"24.181.0908.0003", "24.161.0811.0001", "23.038.0219.0001"},
     0},
    {"Microsoft Update Health Tools",
     "Microsoft Corporation",
     {"5.72.0.0", "5.69.0.0", "3.74.0.0"},
     0},
    {"Microsoft Intune Management Extension",
     "Microsoft Corporation",
     {"1.84.107.0", "1.82.103.0", "1.77.104.0"},
     0},
    {"Java 8 Update 421 (64-bit)",
     "Oracle Corporation",
     {"8.0.4210.9", "8.0.4110.9", "8.0.3910.13"},
     0},
    {"Microsoft Windows Desktop Runtime - 8.0.8 (x64)",
     "Microsoft Corporation",
     {"8.0.8.34118", "8.0.6.33809", "6.0.33.34012"},
     0},
    {"Citrix Workspace 2409",
     "Citrix Systems, Inc.",
     {"24.9.0.133", "24.5.0.102", "23.11.0.197"},
     0},
    {"Sophos Endpoint Agent", "Sophos Limited", {"2024.2.1.1", "2023.2.2.1", "2023.1.0.2"}, 0},
    {"CrowdStrike Sensor Platform",
     "CrowdStrike, Inc.",
     {"7.18.18710.0", "7.16.18605.0", "7.11.18110.0"},
     0},
    {"Microsoft Power BI Desktop (x64)",
     "Microsoft Corporation",
     {"2.136.1202.0", "2.135.1085.0", "2.128.952.0"},
     0},
    {"Snagit 2024", "TechSmith Corporation", {"24.2.0.3934", "24.1.1.3136", "23.2.0.2040"}, 0},
    {"Webex", "Cisco Systems, Inc", {"44.9.0.30650", "44.6.0.29928", "43.11.0.27795"}, 0},
    {"LibreOffice 24.8.2.1", "The Document Foundation", {"24.8.2.1", "24.2.5.2", "7.6.7.2"}, 0},
    {"GIMP 2.10.38", "The GIMP Team", {"2.10.38", "2.10.36", "2.10.34"}, 0},
    {"Paint.NET", "dotPDN LLC", {"5.0.13", "5.0.12", "4.3.12"}, 0},
    {"WinSCP 6.3.5", "Martin Prikryl", {"6.3.5", "6.3.3", "5.21.8"}, 0},
    {"Wireshark 4.4.0 x64",
     "The Wireshark developer community, https://www.wireshark.org",
     {"4.4.0", "4.2.6", "3.6.16"},
     0},
    {"Docker Desktop", "Docker Inc.", {"4.34.2", "4.33.1", "4.28.0"}, 0},
    {"Node.js", "Node.js Foundation", {"20.17.0", "18.20.4", "22.9.0"}, 0},
    {"Spotify", "Spotify AB", {"1.2.47.366", "1.2.45.454", "1.2.31.1205"}, 0},
    {"WhatsApp", NULL, {"2.2437.9.0", "2.2435.4.0", "2.2424.6.0"}, 0},
    {"Intel(R) Graphics Driver",
     "Intel Corporation",
     {"31.0.101.5590", "31.0.101.4972", "30.0.101.1404"},
     0},
    {"Realtek Audio Driver",
     "Realtek Semiconductor Corp.",
     {"6.0.9549.1", "6.0.9450.1", "6.0.9239.1"},
     0},
    {"Microsoft Edge WebView2 Runtime",
     "Microsoft Corporation",
     {"129.0.2792.65", "128.0.2739.79", "125.0.2535.92"},
     0},
    {"Microsoft Defender for Endpoint",
     "Microsoft Corporation",
     {"4.18.24080.9", "4.18.24070.5", "4.18.24050.7"},
     0},
    {"Contoso Line-of-Business Client", NULL, {"3.2.1", "3.1.0", "2.9.7"}, 0},
    {"Company Portal", "Microsoft Corporation", {"11.2.1008.0", "11.2.179.0", "11.1.1131.0"}, 0},
    {"<script>alert('app')</script>", "Evil \"Publisher\", Inc.", {"1.0", "1.1", "=1+1"}, 0},
    {"Outil de gestion Élégant 日本語版 🚀",
     "Société Générale d'Outils",
     {"1.0.0", "1.2.0", "2.0.0"},
     0},
};
static const struct appdef ios_apps[] = {
    {"Microsoft Outlook", NULL, {"4.2437.0", "4.2431.1", "4.2419.0"}, 0},
    {"Microsoft Teams", NULL, {"6.20.0", "6.18.1", "6.14.2"}, 0},
    {"Microsoft Authenticator", NULL, {"6.8.15", "6.8.12", "6.8.4"}, 0},
    {"WhatsApp Messenger", NULL, {"24.19.86", "24.18.79", "24.12.75"}, 0},
    {"Company Portal", NULL, {"5.2409.0", "5.2407.1", "5.2403.0"}, 0},
    {"Microsoft Word", NULL, {"2.89", "2.88.1", "2.85"}, 0},
    {"Microsoft Excel", NULL, {"2.89", "2.88.1", "2.85"}, 0},
    {"OneDrive", NULL, {"15.37.1", "15.36", "15.30.1"}, 0},
    {"Slack", NULL, {"24.09.10", "24.08.20", "24.06.10"}, 0},
    {"Zoom Workplace", NULL, {"6.2.2", "6.1.5", "5.17.10"}, 0},
    {"Google Maps", NULL, {"6.129.0", "6.127.1", "6.120.0"}, 0},
    {"Spotify", NULL, {"8.9.82", "8.9.76", "8.9.50"}, 0},
};
static const struct appdef android_apps[] = {
    {"Microsoft Outlook", "Microsoft Corporation", {"4.2437.1", "4.2431.0", "4.2419.2"}, 0},
    {"Microsoft Teams",
     "Microsoft Corporation",
     {"1416/1.0.0.2024192401", "1416/1.0.0.2024182101", "1416/1.0.0.2024122201"},
     0},
    {"Microsoft Authenticator",
     "Microsoft Corporation",
     {"6.2409.6246", "6.2408.5634", "6.2405.3191"},
     0},
    {"Intune Company Portal",
     "Microsoft Corporation",
     {"5.0.6338.0", "5.0.6270.0", "5.0.6116.0"},
     0},
    {"Chrome", "Google LLC", {"129.0.6668.81", "128.0.6613.146", "126.0.6478.122"}, 0},
    {"WhatsApp", "WhatsApp LLC", {"2.24.19.86", "2.24.18.80", "2.24.12.78"}, 0},
    {"Samsung Internet", NULL, {"26.0.3.1", "25.0.6.3", "24.0.3.2"}, 0},
    {"Google Play services", "Google LLC", {"24.38.33", "24.36.14", "24.26.32"}, 0},
    {"Zoom Workplace", "zoom.us", {"6.2.3.24059", "6.1.11.23370", "5.17.11.20383"}, 0},
    {"Slack", "Slack Technologies Inc.", {"24.09.20.0", "24.08.10.0", "24.06.20.0"}, 0},
};
static const struct appdef mac_apps[] = {
    {"Google Chrome", "Google LLC", {"129.0.6668.90", "128.0.6613.138", "126.0.6478.127"}, 0},
    {"Microsoft Word", "Microsoft Corporation", {"16.89", "16.88", "16.85"}, 0},
    {"Microsoft Excel", "Microsoft Corporation", {"16.89", "16.88", "16.85"}, 0},
    {"Microsoft Outlook", "Microsoft Corporation", {"16.89", "16.88", "16.85"}, 0},
    {"Microsoft Teams",
     "Microsoft Corporation",
     {"24257.2901.3165.2853", "24215.1007.3082.1590", "24124.1412.2911.3341"},
     0},
    {"Slack", "Slack Technologies, Inc.", {"4.40.128", "4.39.95", "4.36.140"}, 0},
    {"zoom.us", "Zoom Video Communications, Inc.", {"6.2.3", "6.1.11", "5.17.11"}, 0},
    {"Safari", NULL, {"18.0", "17.6", "16.6"}, 0},
    {"Visual Studio Code", "Microsoft Corporation", {"1.94.0", "1.93.1", "1.90.2"}, 0},
    {"1Password", "AgileBits Inc.", {"8.10.46", "8.10.40", "8.10.30"}, 0},
    {"Company Portal", "Microsoft Corporation", {"5.2409.0", "5.2407.0", "5.2404.0"}, 0},
};

struct appset {
    const struct appdef *defs;
    size_t n;
    const char *platform;
    int pidx;
};

#define APPMAP_SLOTS (4 * 64 * 3)

static struct appset
appset_for(const struct simdev *d)
{
    const char *os = d->str[P_OS] ? d->str[P_OS] : "";
    struct appset s = {win_apps, NELEM(win_apps), "windows", 0};

    if (strcmp(os, "iOS") == 0 || strcmp(os, "iPadOS") == 0) {
        s.defs = ios_apps;
        s.n = NELEM(ios_apps);
        s.platform = "ios";
        s.pidx = 1;
    } else if (strcmp(os, "Android") == 0) {
        s.defs = android_apps;
        s.n = NELEM(android_apps);
        s.platform = "androidWorkProfile";
        s.pidx = 2;
    } else if (strcmp(os, "macOS") == 0) {
        s.defs = mac_apps;
        s.n = NELEM(mac_apps);
        s.platform = "macOS";
        s.pidx = 3;
    }
    return s;
}

static void
app_id(const char *name, const char *version, const char *platform, char out[65])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_state s;

    crypto_hash_sha256_init(&s);
    crypto_hash_sha256_update(&s, (const unsigned char *)name, strlen(name) + 1);
    crypto_hash_sha256_update(&s, (const unsigned char *)version, strlen(version) + 1);
    crypto_hash_sha256_update(&s, (const unsigned char *)platform, strlen(platform));
    crypto_hash_sha256_final(&s, h);
    sodium_bin2hex(out, 65, h, sizeof h);
}

long
simw_app_pos(const struct simtenant *t, const char *id)
{
    for (size_t i = 0; i < t->napps; i++)
        if (strcasecmp(t->apps[i].id, id) == 0)
            return (long)i;
    return -1;
}

/* Finds or creates the catalogue entry for (def, version, platform). */
static uint32_t
tenant_app(struct simtenant *t, const struct appset *set, size_t di, int v)
{
    const struct appdef *def = &set->defs[di];
    const char *platform = set->platform;
    char id[65];
    size_t slot = ((size_t)set->pidx * 64 + di) * 3 + (size_t)v;

    if (t->appmap == NULL) {
        t->appmap = xmalloc(APPMAP_SLOTS * sizeof(*t->appmap));
        for (size_t i = 0; i < APPMAP_SLOTS; i++)
            t->appmap[i] = -1;
    }
    if (t->appmap[slot] >= 0)
        return (uint32_t)t->appmap[slot];
    app_id(def->name, def->versions[v], platform, id);
    t->appmap[slot] = (int)t->napps;
    t->apps = xrealloc(t->apps, (t->napps + 1) * sizeof(*t->apps));
    struct simapp *a = &t->apps[t->napps];
    memset(a, 0, sizeof(*a));
    memcpy(a->id, id, sizeof a->id);
    a->name = xstrdup(def->name);
    a->version = xstrdup(def->versions[v]);
    a->publisher = xstrdup(def->publisher);
    a->platform = platform;
    {
        uint64_t st = 0;
        for (const char *p = id; *p; p++)
            st = st * 31 + (unsigned char)*p;
        a->size = def->size ? def->size
                            : (int64_t)(1 + simw_rand_range(&st, 900)) * 1048576 +
                                  (int64_t)simw_rand_range(&st, 1048576);
    }
    return (uint32_t)t->napps++;
}

static void
assign_device_apps(struct simtenant *t, struct simdev *d, int k, uint64_t st)
{
    struct appset s = appset_for(d);
    size_t n = (size_t)k < s.n ? (size_t)k : s.n;
    size_t order[64];

    free(d->apps);
    d->apps = NULL;
    d->napps = 0;
    if (n == 0)
        return;
    for (size_t i = 0; i < s.n; i++)
        order[i] = i;
    d->apps = xmalloc(n * sizeof(*d->apps));
    for (size_t i = 0; i < n; i++) {
        size_t j = i + (size_t)simw_rand_range(&st, s.n - i);
        size_t tmp = order[i];
        order[i] = order[j];
        order[j] = tmp;
        int v = (int)simw_rand_range(&st, 3);
        uint32_t ai = tenant_app(t, &s, order[i], v);
        d->apps[d->napps++] = ai;
        t->apps[ai].device_count++;
    }
}

void
simw_assign_apps(struct simworld *w, struct simtenant *t, int k)
{
    for (size_t i = 0; i < t->napps; i++)
        t->apps[i].device_count = 0;
    for (size_t i = 0; i < t->ndev; i++) {
        uint64_t st = w->seed ^ (t->devs[i]->seq * UINT64_C(0x2545F4914F6CDD1D)) ^ 0xa99;
        assign_device_apps(t, t->devs[i], k, st);
    }
}

/* --- tenants ------------------------------------------------------------------------------- */

static void
tenant_push(struct simtenant *t, struct simdev *d)
{
    t->devs = mem_grow(t->devs, &t->capdev, t->ndev + 1, sizeof(*t->devs));
    t->devs[t->ndev++] = d;
}

void
simw_add_devices(struct simworld *w, struct simtenant *t, int n)
{
    for (int i = 0; i < n; i++) {
        uint64_t st = w->seed * UINT64_C(0x100000001b3) ^ ((uint64_t)t->index << 32) ^
                      (w->next_seq + 1) * UINT64_C(0x9E3779B97F4A7C15);
        struct simdev *d = gen_device(w, t, st);
        /* the same serial in two tenants: the first device of tenants 1 and 2 share one */
        if ((t->index == 1 || t->index == 2) && t->ndev == 0) {
            char s[16];
            uint64_t ss = w->seed ^ UINT64_C(0x5e41a1);
            rand_chars(&ss, UPALNUM, 7, s);
            simw_dev_set_str(d, P_SERIAL, s);
            simw_dev_set_str(d, P_MANUF, "Dell Inc.");
            simw_dev_set_str(d, P_MODEL, "Latitude 5440");
        }
        /* every tenant of some size gets hostile and maximum-length names at fixed places */
        if (t->ndev % 17 == 7)
            simw_dev_set_str(
                d, P_DEVICENAME,
                hostile_names[(t->ndev / 17 + (size_t)t->index) % NELEM(hostile_names)]);
        if (t->ndev % 97 == 41) {
            char longname[256];
            memset(longname, 'W', 255);
            memcpy(longname, "LONG-", 5);
            longname[255] = '\0';
            simw_dev_set_str(d, P_DEVICENAME, longname);
        }
        tenant_push(t, d);
        if (w->apps_per_device > 0)
            assign_device_apps(t, d, w->apps_per_device,
                               w->seed ^ (d->seq * UINT64_C(0x2545F4914F6CDD1D)) ^ 0xa99);
    }
}

void
simw_remove_device(struct simtenant *t, size_t i)
{
    struct simdev *d;

    if (i >= t->ndev)
        return;
    d = t->devs[i];
    for (size_t a = 0; a < d->napps; a++)
        if (d->apps[a] < t->napps && t->apps[d->apps[a]].device_count > 0)
            t->apps[d->apps[a]].device_count--;
    dev_free(d);
    memmove(&t->devs[i], &t->devs[i + 1], (t->ndev - i - 1) * sizeof(*t->devs));
    t->ndev--;
}

struct simtenant *
simw_add_tenant(struct simworld *w, const char *name, int ndev)
{
    struct simtenant *t = xcalloc(1, sizeof(*t));
    uint64_t st = w->seed * UINT64_C(0xff51afd7ed558ccd) + (uint64_t)w->ntenants * 7919 + 17;
    char nm[256];

    t->index = (int)w->ntenants;
    simw_guid(&st, t->id);
    simw_guid(&st, t->commerce_id);
    if (name) {
        snprintf(nm, sizeof nm, "%s", name);
    } else if (t->index % 13 == 5) {
        snprintf(nm, sizeof nm, "%s",
                 special_companies[(t->index / 13) % NELEM(special_companies)]);
    } else {
        snprintf(nm, sizeof nm, "%s %s", PICK(&st, company_a), PICK(&st, company_b));
        if (t->index >= (int)(NELEM(company_a)))
            snprintf(nm + strlen(nm), sizeof nm - strlen(nm), " %d", t->index);
    }
    t->name = xstrdup(nm);
    char *slug = slugify(nm);
    char dom[128];
    snprintf(dom, sizeof dom, "%s%d.onmicrosoft.com", slug, t->index);
    t->initial_domain = xstrdup(dom);
    snprintf(dom, sizeof dom, "%s%d.example.com", slug, t->index);
    t->domain = xstrdup(dom);
    free(slug);
    t->country = xstrdup(PICK(&st, ((const char *const[]){"US", "GB", "DE", "FR", "NL", "AU"})));
    t->consented = 1;
    t->intune_licensed = 1;
    t->permission = 1;
    t->other_apps = -1;
    t->exists = 1;
    w->tenants = xrealloc(w->tenants, (w->ntenants + 1) * sizeof(*w->tenants));
    w->tenants[w->ntenants++] = t;
    simw_add_devices(w, t, ndev);
    return t;
}

static void
tenant_free(struct simtenant *t)
{
    if (t == NULL)
        return;
    for (size_t i = 0; i < t->ndev; i++)
        dev_free(t->devs[i]);
    free(t->devs);
    for (size_t i = 0; i < t->napps; i++) {
        free(t->apps[i].name);
        free(t->apps[i].version);
        free(t->apps[i].publisher);
    }
    free(t->apps);
    free(t->appmap);
    free(t->name);
    free(t->domain);
    free(t->initial_domain);
    free(t->country);
    free(t);
}

const char *
simw_secret_add(struct simworld *w, struct simw_app *a, int64_t expires)
{
    /* Base64-like alphabet so secrets carry '+', '/' and '=' like some real ones do. */
    static const char alpha[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/~.-_";
    char s[48];

    if (a->nsecrets == SIMW_MAX_SECRETS) {
        free(a->secrets[0].value);
        memmove(&a->secrets[0], &a->secrets[1], (SIMW_MAX_SECRETS - 1) * sizeof(a->secrets[0]));
        a->nsecrets--;
    }
    rand_chars(&w->rng, alpha, 34, s);
    /* guarantee all three troublesome characters */
    s[3] = '+';
    s[11] = '/';
    s[34] = '=';
    s[35] = '\0';
    a->secrets[a->nsecrets].value = xstrdup(s);
    a->secrets[a->nsecrets].expires = expires;
    a->secrets[a->nsecrets].start =
        expires - 2 * 365 * 86400 < w->epoch ? expires - 2 * 365 * 86400 : w->epoch - 30 * 86400;
    simw_guid(&w->rng, a->secrets[a->nsecrets].key_id);
    return a->secrets[a->nsecrets++].value;
}

int
simw_secret_check(const struct simw_app *a, const char *secret, int64_t now)
{
    if (secret == NULL)
        return 0;
    for (int i = 0; i < a->nsecrets; i++) {
        if (strcmp(a->secrets[i].value, secret) == 0)
            return a->secrets[i].expires > now ? 1 : -1;
    }
    return 0;
}

struct simworld *
simw_new(const struct simw_opts *o)
{
    struct simworld *w = xcalloc(1, sizeof(*w));
    uint64_t st;

    pthread_rwlock_init(&w->lock, NULL);
    w->seed = o->seed;
    w->rng = o->seed ^ UINT64_C(0x6a09e667f3bcc908);
    /* Dates relative to today, so a demo shows today's stale and unsupported shares; a fixed
     * epoch (tests) makes them independent of the day the world is built. */
    w->epoch = o->epoch != 0 ? o->epoch : clock_now();
    w->apps_per_device = o->apps_per_device;
    st = o->seed ^ UINT64_C(0xbb67ae8584caa73b);
    simw_guid(&st, w->partner_tenant_id);
    simw_guid(&st, w->partner_app.id);
    simw_guid(&st, w->sync_app.id);
    simw_guid(&st, w->partner_app.object_id);
    simw_guid(&st, w->sync_app.object_id);
    w->partner_name = xstrdup("Sim Partner MSP Ltd");
    w->partner_domain = xstrdup("simpartnermsp.onmicrosoft.com");
    /* Secrets are valid for two years from the world's epoch or from now, whichever later */
    int64_t exp = clock_now();
    if (exp < w->epoch)
        exp = w->epoch;
    exp += 2 * 365 * 86400;
    simw_secret_add(w, &w->partner_app, exp);
    simw_secret_add(w, &w->sync_app, exp);
    for (int i = 0; i < o->tenants; i++)
        simw_add_tenant(w, NULL, o->devices);
    return w;
}

void
simw_free(struct simworld *w)
{
    if (w == NULL)
        return;
    for (size_t i = 0; i < w->ntenants; i++)
        tenant_free(w->tenants[i]);
    free(w->tenants);
    for (int i = 0; i < w->partner_app.nsecrets; i++)
        free(w->partner_app.secrets[i].value);
    for (int i = 0; i < w->sync_app.nsecrets; i++)
        free(w->sync_app.secrets[i].value);
    free(w->partner_name);
    free(w->partner_domain);
    free(w->faults);
    pthread_rwlock_destroy(&w->lock);
    free(w);
}

struct simtenant *
simw_tenant_by_id(struct simworld *w, const char *id)
{
    if (id == NULL)
        return NULL;
    for (size_t i = 0; i < w->ntenants; i++) {
        struct simtenant *t = w->tenants[i];
        if (strcasecmp(t->id, id) == 0 || strcasecmp(t->domain, id) == 0 ||
            strcasecmp(t->initial_domain, id) == 0)
            return t;
    }
    return NULL;
}

long
simw_device_pos(const struct simtenant *t, const char *id)
{
    for (size_t i = 0; i < t->ndev; i++)
        if (strcasecmp(t->devs[i]->str[P_ID], id) == 0)
            return (long)i;
    return -1;
}

size_t
simw_device_after(const struct simtenant *t, uint64_t after)
{
    size_t lo = 0, hi = t->ndev;

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (t->devs[mid]->seq <= after)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* --- rendering ----------------------------------------------------------------------------- */

int
simw_json_str(struct buf *out, const char *s)
{
    int rc = buf_addc(out, '"');
    const char *run = s;

    for (const char *p = s; rc == ERR_OK && *p; p++) {
        unsigned char c = (unsigned char)*p;
        const char *esc = NULL;
        char u[8];
        if (c == '"')
            esc = "\\\"";
        else if (c == '\\')
            esc = "\\\\";
        else if (c == '\n')
            esc = "\\n";
        else if (c == '\r')
            esc = "\\r";
        else if (c == '\t')
            esc = "\\t";
        else if (c < 0x20) {
            snprintf(u, sizeof u, "\\u%04x", c);
            esc = u;
        }
        if (esc) {
            rc = buf_add(out, run, (size_t)(p - run));
            if (rc == ERR_OK)
                rc = buf_addstr(out, esc);
            run = p + 1;
        }
    }
    if (rc == ERR_OK)
        rc = buf_addstr(out, run);
    if (rc == ERR_OK)
        rc = buf_addc(out, '"');
    return rc;
}

static int
render_value(const struct simdev *d, int p, int full, struct buf *out)
{
    char ts[32];

    switch (simw_props[p].kind) {
    case SIMW_STR:
        if (simw_props[p].list_blank && !full)
            return buf_addstr(out, "null");
        return d->str[p] ? simw_json_str(out, d->str[p]) : buf_addstr(out, "null");
    case SIMW_BOOL:
        return buf_addstr(out, d->num[p] ? "true" : "false");
    case SIMW_BOOLNULL:
        return buf_addstr(out, d->num[p] < 0 ? "null" : d->num[p] ? "true" : "false");
    case SIMW_INT64:
        if (simw_props[p].list_blank && !full)
            return buf_addc(out, '0');
        return buf_printf(out, "%lld", (long long)d->num[p]);
    case SIMW_DATE:
        if (d->num[p] == TS_NULL)
            return buf_addstr(out, "\"0001-01-01T00:00:00Z\"");
        clock_fmt(d->num[p], ts, sizeof ts);
        return buf_printf(out, "\"%s\"", ts);
    case SIMW_NULLOBJ:
        return buf_addstr(out, "null");
    case SIMW_EMPTYARR:
        return buf_addstr(out, "[]");
    }
    return ERR_INVAL;
}

/* Beta-only members, selectable as bits 64 + i of the $select mask. */
static const char *const beta_names[] = {
    "hardwareInformation",
    "ownerType",
    "chassisType",
    "deviceType",
    "aadRegistered",
    "lostModeState",
    "azureActiveDirectoryDeviceId",
    "retireAfterDateTime",
    "usersLoggedOn",
    "preferMdmOverGroupPolicyAppliedDateTime",
    "autopilotEnrolled",
    "roleScopeTagIds",
    "windowsActiveMalwareCount",
    "windowsRemediatedMalwareCount",
    "configurationManagerClientHealthState",
    "configurationManagerClientInformation",
    "processorArchitecture",
    "specificationVersion",
    "joinType",
    "skuFamily",
    "skuNumber",
    "managementFeatures",
    "chromeOSDeviceInfo",
};

int
simw_beta_index(const char *name)
{
    for (size_t i = 0; i < NELEM(beta_names); i++)
        if (strcasecmp(beta_names[i], name) == 0)
            return (int)i;
    return -1;
}

static const char *
dstr(const struct simdev *d, int p)
{
    return d->str[p] ? d->str[p] : "";
}

static int
render_hwinfo(const struct simdev *d, int full, struct buf *out)
{
    const char *os = dstr(d, P_OS);
    int win = strcmp(os, "Windows") == 0;
    int rc = buf_addstr(out, "{\"serialNumber\":");

    /* list responses carry the object with blank values; a $select GET has the data */
    if (rc == ERR_OK)
        rc = simw_json_str(out, full ? dstr(d, P_SERIAL) : "");
    if (rc == ERR_OK)
        rc = buf_printf(out, ",\"totalStorageSpace\":%lld,\"freeStorageSpace\":%lld,\"imei\":",
                        (long long)(full ? d->num[P_TOTAL] : 0),
                        (long long)(full ? d->num[P_FREE] : 0));
    if (rc == ERR_OK)
        rc = simw_json_str(out, full ? dstr(d, P_IMEI) : "");
    if (rc == ERR_OK)
        rc = buf_addstr(out, ",\"meid\":\"\",\"manufacturer\":");
    if (rc == ERR_OK)
        rc = simw_json_str(out, full ? dstr(d, P_MANUF) : "");
    if (rc == ERR_OK)
        rc = buf_addstr(out, ",\"model\":");
    if (rc == ERR_OK)
        rc = simw_json_str(out, full ? dstr(d, P_MODEL) : "");
    if (rc == ERR_OK)
        rc = buf_addstr(out, ",\"phoneNumber\":");
    if (rc == ERR_OK)
        rc = simw_json_str(out, full ? dstr(d, P_PHONE) : "");
    if (rc == ERR_OK)
        rc = buf_addstr(out, ",\"subscriberCarrier\":");
    if (rc == ERR_OK)
        rc = simw_json_str(out, full ? dstr(d, P_CARRIER) : "");
    if (rc == ERR_OK)
        rc = buf_addstr(out, ",\"cellularTechnology\":\"\",\"wifiMac\":");
    if (rc == ERR_OK)
        rc = simw_json_str(out, full ? dstr(d, P_WIFIMAC) : "");
    if (rc == ERR_OK)
        rc = buf_printf(
            out,
            ",\"operatingSystemLanguage\":\"%s\",\"isSupervised\":%s,\"isEncrypted\":%s,"
            "\"batterySerialNumber\":\"\",\"batteryHealthPercentage\":%d,"
            "\"batteryChargeCycles\":%d,\"isSharedDevice\":false,\"sharedDeviceCachedUsers\":[],"
            "\"tpmSpecificationVersion\":\"%s\",\"operatingSystemEdition\":\"%s\","
            "\"deviceFullQualifiedDomainName\":\"\","
            "\"deviceGuardVirtualizationBasedSecurityHardwareRequirementState\":"
            "\"meetHardwareRequirements\","
            "\"deviceGuardVirtualizationBasedSecurityState\":\"%s\","
            "\"deviceGuardLocalSystemAuthorityCredentialGuardState\":\"%s\","
            "\"osBuildNumber\":\"%s\",\"operatingSystemProductType\":%d,"
            "\"ipAddressV4\":\"%s\",\"subnetAddress\":\"%s\",\"esimIdentifier\":null,"
            "\"systemManagementBIOSVersion\":\"%s\",\"tpmManufacturer\":\"%s\",\"tpmVersion\":\"%"
            "s\"}",
            full ? "en-US" : "", full && d->num[P_SUPERVISED] ? "true" : "false",
            full && d->num[P_ENCRYPTED] ? "true" : "false", full ? 87 : 0, full ? 212 : 0,
            full && win ? "2.0, 0, 1.38" : "", full && win ? "Enterprise" : "",
            full && win ? "running" : "notConfigured", full && win ? "running" : "notConfigured",
            full ? dstr(d, P_OSVER) : "", full && win ? 4 : 0, full ? "10.0.4.27" : "",
            full ? "255.255.255.0" : "", full && win ? "1.21.0" : "",
            full && win ? "1314145024" : "", full && win ? "2.0" : "");
    return rc;
}

static int
render_beta_extra(const struct simdev *d, int i, int full, struct buf *out)
{
    const char *os = dstr(d, P_OS);
    int win = strcmp(os, "Windows") == 0;
    char ts[32];

    switch (i) {
    case 0:
        return render_hwinfo(d, full, out);
    case 1:
        return simw_json_str(out, dstr(d, P_OWNER));
    case 2:
        return simw_json_str(out, d->chassis ? d->chassis : "unknown");
    case 3:
        return simw_json_str(out, win                          ? "windowsRT"
                                  : strcmp(os, "iOS") == 0     ? "iPhone"
                                  : strcmp(os, "iPadOS") == 0  ? "iPad"
                                  : strcmp(os, "macOS") == 0   ? "macMDM"
                                  : strcmp(os, "Android") == 0 ? "androidForWork"
                                                               : "unknown");
    case 4:
        return buf_addstr(out, d->num[P_AADREG] > 0 ? "true" : "null");
    case 5:
        return buf_addstr(out, "\"disabled\"");
    case 6:
        return simw_json_str(out, dstr(d, P_AADID));
    case 7:
        return buf_addstr(out, "\"0001-01-01T00:00:00Z\"");
    case 8:
        if (d->str[P_USERID] == NULL || d->str[P_USERID][0] == '\0')
            return buf_addstr(out, "[]");
        clock_fmt(d->num[P_LASTSYNC], ts, sizeof ts);
        return buf_printf(out, "[{\"userId\":\"%s\",\"lastLogOnDateTime\":\"%s\"}]",
                          d->str[P_USERID], ts);
    case 9:
        return buf_addstr(out, "\"0001-01-01T00:00:00Z\"");
    case 10:
        return buf_addstr(out, win ? "true" : "false");
    case 11:
        return buf_addstr(out, "[\"0\"]");
    case 12:
    case 13:
        return buf_addc(out, '0');
    case 14:
    case 15:
        return buf_addstr(out, "null");
    case 16:
        return simw_json_str(out, d->arch ? d->arch : "unknown");
    case 17:
        return buf_addstr(out, "\"\"");
    case 18:
        return simw_json_str(out, win ? "azureADJoined" : "unknown");
    case 19:
        return simw_json_str(out, win ? "Enterprise" : "");
    case 20:
        return buf_addstr(out, win ? "4" : "0");
    case 21:
        return buf_addstr(out, "\"none\"");
    case 22:
        return buf_addstr(out, "[]");
    default:
        break;
    }
    return ERR_INVAL;
}

int
simw_render_device(const struct simdev *d, const uint64_t *sel, int full, int beta, struct buf *out)
{
    int rc = buf_addc(out, '{');
    int first = 1;

    for (int p = 0; rc == ERR_OK && p < SIMW_NPROPS; p++) {
        if (sel && !(sel[p / 64] & (UINT64_C(1) << (p % 64))))
            continue;
        if (!first)
            rc = buf_addc(out, ',');
        first = 0;
        if (rc == ERR_OK)
            rc = buf_printf(out, "\"%s\":", simw_props[p].name);
        if (rc == ERR_OK)
            rc = render_value(d, p, full, out);
    }
    for (int i = 0; beta && rc == ERR_OK && i < (int)NELEM(beta_names); i++) {
        if (sel && !(sel[1] & (UINT64_C(1) << i)))
            continue;
        if (!first)
            rc = buf_addc(out, ',');
        first = 0;
        if (rc == ERR_OK)
            rc = buf_printf(out, "\"%s\":", beta_names[i]);
        if (rc == ERR_OK)
            rc = render_beta_extra(d, i, full, out);
    }
    if (rc == ERR_OK)
        rc = buf_addc(out, '}');
    return rc;
}
