/* importfmt.c - Snipe-IT importer rows and GLPI inventory documents from the asset view. */
#include "importfmt.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "output.h"

/* The header names of Snipe-IT's asset importer, in the order memsync writes them. */
const char *const importfmt_snipeit_columns[] = {
    "Asset Tag", "Name", "Serial", "Model Name", "Manufacturer", "Category", "Company",
    "Status",    "BYOD", "Notes",  "Full Name",  "Username",     "Email",
};
const size_t importfmt_snipeit_column_count =
    sizeof importfmt_snipeit_columns / sizeof importfmt_snipeit_columns[0];

int
importfmt_parse(const char *s, enum importfmt_kind *out, struct errbuf *eb)
{
    if (s != NULL && strcmp(s, "snipeit") == 0) {
        *out = IMPORTFMT_SNIPEIT;
        return ERR_OK;
    }
    if (s != NULL && strcmp(s, "glpi") == 0) {
        *out = IMPORTFMT_GLPI;
        return ERR_OK;
    }
    return err_set(eb, ERR_USAGE, "unknown import format \"%s\"; use snipeit or glpi",
                   s != NULL ? s : "");
}

/* The string at path, or NULL when absent, null or empty. */
static const char *
str_at(const json_t *asset, const char *path)
{
    const json_t *v = output_lookup(asset, path);
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;

    return s != NULL && s[0] != '\0' ? s : NULL;
}

static void
set_str(json_t *o, const char *key, const char *s)
{
    json_object_set_new(o, key, json_string(s != NULL ? s : ""));
}

/* Only when there is a value: GLPI's schema has no nulls. */
static void
set_opt(json_t *o, const char *key, const char *s)
{
    if (s != NULL)
        json_object_set_new(o, key, json_string(s));
}

/* memsync's device type as a Snipe-IT category (created on import when missing). */
static const char *
snipeit_category(const char *type)
{
    if (type == NULL)
        return "Devices";
    if (strcmp(type, "WORKSTATION") == 0)
        return "Workstations";
    if (strcmp(type, "SERVER") == 0)
        return "Servers";
    if (strcmp(type, "VIRTUAL") == 0)
        return "Virtual machines";
    if (strcmp(type, "MOBILE") == 0)
        return "Mobile devices";
    return "Devices";
}

json_t *
importfmt_snipeit_row(const json_t *asset)
{
    json_t *o;
    const json_t *id;
    const char *model, *os, *osv, *intune, *upn, *own;
    char tag[40], notes[512];

    if (!json_is_object(asset))
        return NULL;
    o = json_object();
    id = output_lookup(asset, "id");
    /* Stable, so that a second import updates the asset instead of adding one. */
    snprintf(tag, sizeof tag, "memsync-%" JSON_INTEGER_FORMAT,
             json_is_integer(id) ? json_integer_value(id) : (json_int_t)0);
    set_str(o, "Asset Tag", tag);
    set_str(o, "Name", str_at(asset, "name"));
    set_str(o, "Serial", str_at(asset, "serial_number"));
    /* Model Name and Category are required when the importer creates an asset. */
    model = str_at(asset, "model");
    set_str(o, "Model Name", model != NULL ? model : "Unknown model");
    set_str(o, "Manufacturer", str_at(asset, "manufacturer"));
    set_str(o, "Category", snipeit_category(str_at(asset, "type")));
    set_str(o, "Company", str_at(asset, "client.name"));
    /* A deployable label, so that the user columns check the asset out on import. */
    set_str(o, "Status", str_at(asset, "retired_at") != NULL ? "Archived" : "Ready to Deploy");
    own = str_at(asset, "ownership");
    set_str(o, "BYOD", own != NULL && strcmp(own, "personal") == 0 ? "1" : "0");
    os = str_at(asset, "operating_system.name");
    osv = str_at(asset, "operating_system.version");
    intune = str_at(asset, "source.intune_device_id");
    snprintf(notes, sizeof notes, "From memsync: Intune device %s, %s %s",
             intune != NULL ? intune : "unknown", os != NULL ? os : "unknown OS",
             osv != NULL ? osv : "");
    notes[strcspn(notes, "\r\n")] = '\0';
    {
        size_t n = strlen(notes);
        while (n > 0 && notes[n - 1] == ' ')
            notes[--n] = '\0';
    }
    set_str(o, "Notes", notes);
    upn = str_at(asset, "user.principal_name");
    set_str(o, "Full Name", upn != NULL ? str_at(asset, "user.display_name") : NULL);
    set_str(o, "Username", upn);
    set_str(o, "Email", upn != NULL ? str_at(asset, "user.email") : NULL);
    return o;
}

json_t *
importfmt_glpi_inventory(const json_t *asset, const char *client_version)
{
    json_t *doc, *content, *hw, *bios, *os;
    const json_t *mem, *id;
    const char *type, *intune, *osn, *osv;
    char devid[128], full[256];

    if (!json_is_object(asset))
        return NULL;
    doc = json_object();
    content = json_object();
    hw = json_object();
    bios = json_object();
    os = json_object();
    /* deviceid names the agent that sent the inventory; one per Intune device keeps it stable
     * from one export to the next. */
    intune = str_at(asset, "source.intune_device_id");
    id = output_lookup(asset, "id");
    if (intune != NULL)
        snprintf(devid, sizeof devid, "memsync-%s", intune);
    else
        snprintf(devid, sizeof devid, "memsync-asset-%" JSON_INTEGER_FORMAT,
                 json_is_integer(id) ? json_integer_value(id) : (json_int_t)0);
    json_object_set_new(doc, "deviceid", json_string(devid));
    type = str_at(asset, "type");
    json_object_set_new(
        doc, "itemtype",
        json_string(type != NULL && strcmp(type, "MOBILE") == 0 ? "Phone" : "Computer"));
    json_object_set_new(content, "versionclient",
                        json_string(client_version != NULL ? client_version : "memsync"));
    set_opt(hw, "name", str_at(asset, "name"));
    mem = output_lookup(asset, "memory_bytes");
    if (json_is_integer(mem) && json_integer_value(mem) > 0)
        json_object_set_new(hw, "memory", json_integer(json_integer_value(mem) / (1024 * 1024)));
    set_opt(hw, "lastloggeduser", str_at(asset, "user.principal_name"));
    json_object_set_new(content, "hardware", hw);
    set_opt(bios, "smanufacturer", str_at(asset, "manufacturer"));
    set_opt(bios, "smodel", str_at(asset, "model"));
    set_opt(bios, "ssn", str_at(asset, "serial_number"));
    json_object_set_new(content, "bios", bios);
    osn = str_at(asset, "operating_system.name");
    osv = str_at(asset, "operating_system.version");
    set_opt(os, "name", osn);
    set_opt(os, "version", osv);
    if (osn != NULL) {
        snprintf(full, sizeof full, "%s%s%s", osn, osv != NULL ? " " : "", osv != NULL ? osv : "");
        json_object_set_new(os, "full_name", json_string(full));
    }
    json_object_set_new(content, "operatingsystem", os);
    json_object_set_new(doc, "content", content);
    return doc;
}
