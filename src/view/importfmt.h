/* importfmt.h - hardware assets in the shapes other tools import (docs/API.md "Import
 * formats"): Snipe-IT's asset importer CSV and GLPI's native inventory format.
 *
 * Both take one hardware asset as its API view (asset_to_json: docs/API.md "Fields") and
 * return a new object the caller owns:
 * - importfmt_snipeit_row: one CSV row whose keys are importfmt_snipeit_columns, the header
 *   names Snipe-IT's importer maps (its "Importing Assets" page). Every value is a string.
 *   Written with output.h's CSV writer with the formula guard off (output_raw_cells): an
 *   importer stores a leading ' as part of the value.
 * - importfmt_glpi_inventory: one inventory document of GLPI's inventory format (the JSON
 *   schema of glpi-project/inventory_format: deviceid, itemtype and content.versionclient,
 *   hardware, bios, operatingsystem), one per line (JSON lines). Members memsync has no
 *   value for are left out, never null: the schema types them as strings or integers.
 * Pure; thread-safe. NULL in, NULL out.
 */
#ifndef MEMSYNC_IMPORTFMT_H
#define MEMSYNC_IMPORTFMT_H

#include <jansson.h>
#include <stddef.h>

#include "err.h"

enum importfmt_kind { IMPORTFMT_SNIPEIT, IMPORTFMT_GLPI };

/* "snipeit" | "glpi"; ERR_USAGE with a sentence for anything else. */
int importfmt_parse(const char *s, enum importfmt_kind *out, struct errbuf *eb);

extern const char *const importfmt_snipeit_columns[];
extern const size_t importfmt_snipeit_column_count;

json_t *importfmt_snipeit_row(const json_t *asset);
/* client_version: what content.versionclient says (e.g. "memsync-0.9.0"). */
json_t *importfmt_glpi_inventory(const json_t *asset, const char *client_version);

#endif
