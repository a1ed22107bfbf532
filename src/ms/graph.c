#include "graph.h"

#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "jsonarena.h"
#include "mem.h"
#include "remedy.h"

const char GRAPH_DEVICE_SELECT[] =
    "id,azureADDeviceId,deviceName,serialNumber,manufacturer,model,operatingSystem,osVersion,"
    "userPrincipalName,userDisplayName,emailAddress,managedDeviceOwnerType,complianceState,"
    "managementState,deviceEnrollmentType,isEncrypted,isSupervised,totalStorageSpaceInBytes,"
    "freeStorageSpaceInBytes,physicalMemoryInBytes,wiFiMacAddress,ethernetMacAddress,imei,meid,"
    "phoneNumber,enrolledDateTime,lastSyncDateTime";

static json_t *
load_json(const char *body, size_t len, const char *what, struct errbuf *eb)
{
    json_error_t jerr;
    json_t *root;

    if (body == NULL) {
        err_set(eb, ERR_PARSE, "%s: empty response", what);
        return NULL;
    }
    /* Every tree parsed here is freed by the same thread before it parses much more. */
    root = jsonarena_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (root == NULL) {
        err_set(eb, ERR_PARSE, "%s is not valid JSON: %s (line %d, column %d)", what, jerr.text,
                jerr.line, jerr.column);
        return NULL;
    }
    if (!json_is_object(root)) {
        json_decref(root);
        err_set(eb, ERR_PARSE, "%s is not a JSON object", what);
        return NULL;
    }
    return root;
}

static int
next_link_get(const json_t *root, char **out, const char *what, struct errbuf *eb)
{
    const json_t *v = json_object_get(root, "@odata.nextLink");

    *out = NULL;
    if (v == NULL || json_is_null(v))
        return ERR_OK;
    if (!json_is_string(v) || json_string_length(v) == 0)
        return err_set(eb, ERR_PARSE, "%s: @odata.nextLink is not a URL string", what);
    *out = xstrndup(json_string_value(v), json_string_length(v));
    return ERR_OK;
}

void
graph_page_clear(struct graph_page *p)
{
    if (p == NULL)
        return;
    json_decref(p->root);
    free(p->next_link);
    p->root = NULL;
    p->value = NULL;
    p->next_link = NULL;
}

int
graph_page_parse(const char *body, size_t len, struct graph_page *out, struct errbuf *eb)
{
    json_t *root = NULL, *value;
    int rc;

    memset(out, 0, sizeof *out);
    if ((root = load_json(body, len, "Graph page", eb)) == NULL)
        return ERR_PARSE;
    value = json_object_get(root, "value");
    if (!json_is_array(value)) {
        rc = err_set(eb, ERR_PARSE, "Graph page has no \"value\" array");
        goto out;
    }
    if ((rc = next_link_get(root, &out->next_link, "Graph page", eb)) != ERR_OK)
        goto out;
    out->root = root;
    out->value = value;
    root = NULL;
out:
    json_decref(root);
    return rc;
}

void
graph_org_clear(struct graph_org *o)
{
    if (o == NULL)
        return;
    free(o->id);
    free(o->name);
    free(o->default_domain);
    memset(o, 0, sizeof *o);
}

static char *
opt_str(const json_t *obj, const char *member)
{
    const json_t *v = json_object_get(obj, member);

    if (!json_is_string(v) || json_string_length(v) == 0)
        return NULL;
    return xstrndup(json_string_value(v), json_string_length(v));
}

static const char *
domain_with(const json_t *domains, const char *flag)
{
    size_t i;
    const json_t *d;

    json_array_foreach(domains, i, d)
    {
        const json_t *name = json_object_get(d, "name");

        if (json_is_true(json_object_get(d, flag)) && json_is_string(name) &&
            json_string_length(name) > 0)
            return json_string_value(name);
    }
    return NULL;
}

static int
names_intune(const char *s)
{
    for (; *s != '\0'; s++)
        if (strncasecmp(s, "intune", 6) == 0)
            return 1;
    return 0;
}

/* remedy_intune_plan of an assignedPlans array: service "SCO" (Intune's plan, notes 11.1) or a
 * service naming Intune, enabled or in its grace period ("Warning"). */
static int
org_intune_plan(const json_t *plans)
{
    size_t i;
    const json_t *p;

    if (!json_is_array(plans))
        return 0;
    json_array_foreach(plans, i, p)
    {
        const char *svc = json_string_value(json_object_get(p, "service"));
        const char *st = json_string_value(json_object_get(p, "capabilityStatus"));

        if (svc == NULL || (strcasecmp(svc, "SCO") != 0 && !names_intune(svc)))
            continue;
        if (st == NULL || strcasecmp(st, "Enabled") == 0 || strcasecmp(st, "Warning") == 0)
            return 1;
    }
    return 2;
}

int
graph_org_parse(const char *body, size_t len, struct graph_org *out, struct errbuf *eb)
{
    json_t *root = NULL;
    const json_t *org, *value, *domains;
    const char *dom;
    int rc;

    memset(out, 0, sizeof *out);
    if ((root = load_json(body, len, "organization response", eb)) == NULL)
        return ERR_PARSE;
    value = json_object_get(root, "value");
    if (json_is_array(value)) {
        org = json_array_get(value, 0);
        if (org == NULL) {
            rc = err_set(eb, ERR_PARSE, "organization list is empty");
            goto out;
        }
    } else if (json_is_object(value)) {
        org = value;
    } else {
        org = root;
    }
    if (!json_is_object(org)) {
        rc = err_set(eb, ERR_PARSE, "organization is not a JSON object");
        goto out;
    }
    out->id = opt_str(org, "id");
    out->name = opt_str(org, "displayName");
    domains = json_object_get(org, "verifiedDomains");
    dom = domain_with(domains, "isDefault");
    if (dom == NULL)
        dom = domain_with(domains, "isInitial");
    out->default_domain = xstrdup(dom);
    out->intune_plan = org_intune_plan(json_object_get(org, "assignedPlans"));
    rc = ERR_OK;
out:
    json_decref(root);
    return rc;
}

int
graph_overview_parse(const char *body, size_t len, int64_t *enrolled, struct errbuf *eb)
{
    json_t *root = NULL;
    const json_t *ov, *n;
    int rc = ERR_OK;

    *enrolled = -1;
    if ((root = load_json(body, len, "device overview response", eb)) == NULL)
        return ERR_PARSE;
    ov = json_object_get(root, "value");
    if (!json_is_object(ov))
        ov = root;
    n = json_object_get(ov, "enrolledDeviceCount");
    if (!json_is_integer(n) || json_integer_value(n) < 0 || json_integer_value(n) > INT32_MAX)
        rc = err_set(eb, ERR_PARSE, "device overview has no enrolledDeviceCount");
    else
        *enrolled = (int64_t)json_integer_value(n);
    json_decref(root);
    return rc;
}

void
detected_app_clear(struct detected_app *a)
{
    if (a == NULL)
        return;
    free(a->id);
    free(a->name);
    free(a->version);
    free(a->publisher);
    free(a->platform);
    memset(a, 0, sizeof *a);
    a->size_bytes = -1;
}

/* Printable ASCII that JSON does not escape: copied as is. */
static int
plain_ascii(const char *s, size_t *len)
{
    size_t i;

    for (i = 0; s[i] != '\0'; i++)
        if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7E || s[i] == '"' || s[i] == '\\')
            return 0;
    *len = i;
    return 1;
}

char *
graph_batch_body(const char *const *ids, const char *const *urls, size_t n)
{
    static const char head[] = "{\"requests\":[", tail[] = "]}";
    static const char k_id[] = "{\"id\":\"", k_url[] = "\",\"method\":\"GET\",\"url\":\"";
    size_t total = sizeof head + sizeof tail, len;
    char *text, *w;
    json_t *reqs, *root;

    /* Ids and URLs are plain ASCII in practice: write them directly, one allocation, and leave
     * escaping (and what jansson does with bad UTF-8) to jansson otherwise. */
    for (size_t i = 0; i < n; i++) {
        size_t li, lu;

        if (!plain_ascii(ids[i], &li) || !plain_ascii(urls[i], &lu))
            goto slow;
        total += sizeof k_id + sizeof k_url + li + lu + 3;
    }
    text = w = xmalloc(total);
    memcpy(w, head, sizeof head - 1);
    w += sizeof head - 1;
    for (size_t i = 0; i < n; i++) {
        if (i > 0)
            *w++ = ',';
        memcpy(w, k_id, sizeof k_id - 1);
        w += sizeof k_id - 1;
        len = strlen(ids[i]);
        memcpy(w, ids[i], len);
        w += len;
        memcpy(w, k_url, sizeof k_url - 1);
        w += sizeof k_url - 1;
        len = strlen(urls[i]);
        memcpy(w, urls[i], len);
        w += len;
        memcpy(w, "\"}", 2);
        w += 2;
    }
    memcpy(w, tail, sizeof tail);
    return text;
slow:
    reqs = json_array();

    for (size_t i = 0; i < n; i++)
        json_array_append_new(
            reqs, json_pack("{s:s, s:s, s:s}", "id", ids[i], "method", "GET", "url", urls[i]));
    root = json_pack("{s:o}", "requests", reqs);
    text = json_dumps(root, JSON_COMPACT);
    json_decref(root);
    if (text == NULL)
        abort();
    return text;
}

static void
copy_str(char *dst, size_t cap, const json_t *v)
{
    if (json_is_string(v))
        snprintf(dst, cap, "%s", json_string_value(v));
}

int
graph_error_parse(const char *body, size_t len, struct graph_error *out)
{
    json_t *root = NULL;
    const json_t *err, *v;
    const char *key;
    int rc = ERR_PARSE;

    memset(out, 0, sizeof *out);
    if (body == NULL || (root = json_loadb(body, len, JSON_REJECT_DUPLICATES, NULL)) == NULL)
        return ERR_PARSE;
    err = json_object_get(root, "error");
    if (!json_is_object(err))
        goto out;
    v = json_object_get(err, "code");
    if (v != NULL && !json_is_string(v))
        goto out;
    copy_str(out->code, sizeof out->code, v);
    v = json_object_get(err, "message");
    copy_str(out->message, sizeof out->message, v);
    if (json_is_string(v)) {
        out->not_applicable =
            remedy_text_not_applicable(json_string_value(v), json_string_length(v));
        out->nested_forbidden =
            remedy_text_nested_forbidden(json_string_value(v), json_string_length(v));
    }
    /* Microsoft's examples spell it innerError and innererror. */
    json_object_foreach((json_t *)err, key, v)
    {
        if (strcasecmp(key, "innererror") != 0 || !json_is_object(v))
            continue;
        copy_str(out->inner_code, sizeof out->inner_code, json_object_get(v, "code"));
        copy_str(out->request_id, sizeof out->request_id, json_object_get(v, "request-id"));
        if (out->request_id[0] == '\0')
            copy_str(out->request_id, sizeof out->request_id, json_object_get(v, "requestId"));
        copy_str(out->date, sizeof out->date, json_object_get(v, "date"));
        break;
    }
    rc = ERR_OK;
out:
    json_decref(root);
    return rc;
}

char *
graph_devices_url(const char *graph_base, const char *version, int top)
{
    size_t n = strlen(graph_base);

    while (n > 0 && graph_base[n - 1] == '/')
        n--;
    if (version == NULL || *version == '\0')
        version = "v1.0";
    if (top <= 0)
        top = GRAPH_DEVICE_PAGE_SIZE;
    return xasprintf("%.*s/%s/deviceManagement/managedDevices?$select=%s&$top=%d", (int)n,
                     graph_base, version, GRAPH_DEVICE_SELECT, top);
}

struct origin {
    char scheme[8];
    char host[256];
    long port;
};

/* Splits scheme://host[:port] off a URL; refuses userinfo, odd characters and bad ports. */
static int
origin_parse(const char *url, struct origin *o)
{
    const char *p = strstr(url, "://"), *auth, *end, *colon = NULL;
    size_t slen, hlen;

    if (p == NULL)
        return -1;
    slen = (size_t)(p - url);
    if (slen == 0 || slen >= sizeof o->scheme)
        return -1;
    for (size_t i = 0; i < slen; i++)
        o->scheme[i] = (char)tolower((unsigned char)url[i]);
    o->scheme[slen] = '\0';
    if (strcmp(o->scheme, "https") != 0 && strcmp(o->scheme, "http") != 0)
        return -1;
    auth = p + 3;
    end = auth + strcspn(auth, "/?#");
    for (const char *c = auth; c < end; c++) {
        unsigned char ch = (unsigned char)*c;

        /* "@" would make the part before it userinfo; "\" is read as "/" by some parsers. */
        if (ch <= 0x20 || ch >= 0x7f || ch == '@' || ch == '\\' || ch == '%')
            return -1;
    }
    if (*auth == '[') {
        const char *rb = memchr(auth, ']', (size_t)(end - auth));

        if (rb == NULL)
            return -1;
        hlen = (size_t)(rb - auth) + 1;
        if (rb + 1 < end) {
            if (rb[1] != ':')
                return -1;
            colon = rb + 1;
        }
    } else {
        colon = memchr(auth, ':', (size_t)(end - auth));
        hlen = (size_t)((colon != NULL ? colon : end) - auth);
    }
    if (hlen == 0 || hlen >= sizeof o->host)
        return -1;
    for (size_t i = 0; i < hlen; i++)
        o->host[i] = (char)tolower((unsigned char)auth[i]);
    o->host[hlen] = '\0';
    /* A trailing dot names the same host; strip it so both forms compare equal. */
    if (hlen > 1 && o->host[hlen - 1] == '.')
        o->host[hlen - 1] = '\0';
    o->port = strcmp(o->scheme, "https") == 0 ? 443 : 80;
    if (colon != NULL) {
        long port = 0;
        const char *c = colon + 1;

        if (c == end)
            return -1;
        for (; c < end; c++) {
            if (!isdigit((unsigned char)*c))
                return -1;
            port = port * 10 + (*c - '0');
            if (port > 65535)
                return -1;
        }
        if (port == 0)
            return -1;
        o->port = port;
    }
    return 0;
}

int
graph_link_allowed(const char *graph_base, const char *next_link)
{
    struct origin a, b;

    if (graph_base == NULL || next_link == NULL)
        return 0;
    for (const char *c = next_link; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return 0;
    }
    if (origin_parse(graph_base, &a) != 0 || origin_parse(next_link, &b) != 0)
        return 0;
    return strcmp(a.scheme, b.scheme) == 0 && strcmp(a.host, b.host) == 0 && a.port == b.port;
}

/* Azure Blob Storage hosts of the public and national clouds (report export downloads). */
static const char *const blob_suffixes[] = {
    ".blob.core.windows.net",
    ".blob.core.usgovcloudapi.net",
    ".blob.core.chinacloudapi.cn",
};

int
graph_blob_url_allowed(const char *graph_base, const char *url)
{
    struct origin o;
    size_t hl;

    if (url == NULL)
        return 0;
    if (graph_link_allowed(graph_base, url))
        return 1;
    for (const char *c = url; *c != '\0'; c++) {
        if ((unsigned char)*c < 0x20 || *c == 0x7f)
            return 0;
    }
    if (origin_parse(url, &o) != 0 || strcmp(o.scheme, "https") != 0 || o.port != 443)
        return 0;
    hl = strlen(o.host);
    for (size_t i = 0; i < sizeof blob_suffixes / sizeof blob_suffixes[0]; i++) {
        size_t sl = strlen(blob_suffixes[i]);

        /* One storage-account label before the suffix: letters and digits only. */
        if (hl > sl && strcmp(o.host + hl - sl, blob_suffixes[i]) == 0) {
            for (size_t k = 0; k < hl - sl; k++)
                if (!isalnum((unsigned char)o.host[k]))
                    return 0;
            return 1;
        }
    }
    return 0;
}
