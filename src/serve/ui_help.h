/* ui_help.h - the web UI's help page (GET /help/setup: docs/SETUP.md as HTML, compiled in from
 * www/setup_html.inc, which www/embed.py generates and lint.embed keeps current) and what the
 * integration form takes from a failed check: which field each check points at, which keys passed
 * (so that they stay filled), and how many customer tenants were sampled.
 *
 * The help page is the served copy of the setup guide: every value of the form links to its
 * place there (ui_help_anchor), e.g. /help/setup#microsoft-partner-app-key.
 *
 * Pure; thread-safe.
 */
#ifndef MEMSYNC_UI_HELP_H
#define MEMSYNC_UI_HELP_H

#include <jansson.h>

#include "buf.h"

/* The setup guide as HTML (a static string). */
const char *ui_help_setup_html(void);

/* The help page's anchor (without '#') for a form field ("partner_app_secret"), or NULL. */
const char *ui_help_anchor(const char *field);

/* From a validation result (validation_to_json): the message of the first failed check that
 * points at field, or NULL when none does. value: what the user sent for field (NULL: nothing);
 * an id field whose value is not a GUID fails too (it is refused before any check runs). */
const char *ui_help_field_failure(const json_t *val, const char *field, const char *value);

/* 1 when the check that proves this key (partner_app_secret: "partner_token", sync_app_secret:
 * "sync_token") passed in val, so the form may keep the key the user just typed. */
int ui_help_key_passed(const json_t *val, const char *field);

/* "Checked 2 of 20 customer tenants" (with the number of warnings) from val's tenants_sampled and
 * customers; nothing when the customer list was not read. Appended to b as one paragraph
 * (id "checks-sampled"). */
void ui_help_sampled(struct buf *b, const json_t *val);

#endif
