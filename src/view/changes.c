/* changes.c - the change feed's JSON and cursor (changes.h). */
#include "changes.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clock.h"

#define CURSOR_PREFIX "c1."

void
changes_cursor(int64_t seq, char out[CHANGES_CURSOR_MAX])
{
    snprintf(out, CHANGES_CURSOR_MAX, CURSOR_PREFIX "%" PRId64, seq < 0 ? 0 : seq);
}

int
changes_cursor_parse(const char *text, int64_t *seq, struct errbuf *eb)
{
    const char *d;
    char *end = NULL;
    long long v;

    *seq = 0;
    if (text == NULL || strncmp(text, CURSOR_PREFIX, strlen(CURSOR_PREFIX)) != 0)
        return err_set(eb, ERR_INVAL, "cursor is not a change feed cursor (use next_cursor)");
    d = text + strlen(CURSOR_PREFIX);
    if (*d < '0' || *d > '9' || strlen(d) > 19)
        return err_set(eb, ERR_INVAL, "cursor is not a change feed cursor (use next_cursor)");
    errno = 0;
    v = strtoll(d, &end, 10);
    if (errno != 0 || end == NULL || *end != '\0' || v < 0)
        return err_set(eb, ERR_INVAL, "cursor is not a change feed cursor (use next_cursor)");
    *seq = (int64_t)v;
    return ERR_OK;
}

json_t *
changes_row_json(const struct change_row *c)
{
    char cur[CHANGES_CURSOR_MAX], at[32];
    json_t *asset = json_null(), *sw = json_null();

    changes_cursor(c->seq, cur);
    clock_fmt(c->at, at, sizeof at);
    if (c->asset_id != 0)
        asset = json_pack("{s:I, s:s?, s:s?, s:s?}", "id", (json_int_t)c->asset_id,
                          "intune_device_id", c->intune_device_id, "name", c->asset_name,
                          "serial_number", c->serial_number);
    if (c->title_id != 0)
        sw = json_pack("{s:I, s:s?, s:s?, s:s?}", "id", (json_int_t)c->title_id, "name",
                       c->title_name, "version", c->title_version, "publisher", c->title_publisher);
    return json_pack("{s:s, s:s, s:s, s:{s:I, s:s?, s:s?}, s:o, s:o, s:s?, s:s?, s:s?}", "cursor",
                     cur, "at", at, "kind", c->kind, "client", "id", (json_int_t)c->client_id,
                     "name", c->client_name, "tenant_id", c->tenant_id, "asset", asset, "software",
                     sw, "field", c->field, "old", c->old_value, "new", c->new_value);
}

int
changes_kinds_parse(char *buf, struct change_query *q, struct errbuf *eb)
{
    char *p = buf;

    q->nkinds = 0;
    while (p != NULL && *p != '\0') {
        char *comma = strchr(p, ',');

        if (comma != NULL)
            *comma = '\0';
        if (!store_change_kind_known(p))
            return err_set(eb, ERR_INVAL,
                           "kind \"%.64s\" is not a change kind (asset.created, asset.changed, "
                           "asset.retired, asset.revived, install.added, install.removed, "
                           "client.status)",
                           p);
        for (size_t i = 0; i < q->nkinds; i++)
            if (strcmp(q->kinds[i], p) == 0)
                return err_set(eb, ERR_INVAL, "kind \"%s\" is listed twice", p);
        if (q->nkinds >= STORE_CHANGE_KIND_COUNT)
            return err_set(eb, ERR_INVAL, "too many kinds");
        q->kinds[q->nkinds++] = p;
        p = comma != NULL ? comma + 1 : NULL;
    }
    return ERR_OK;
}
