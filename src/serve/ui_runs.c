/* ui_runs.c - a sync run while it runs (contract in ui_runs.h). */
#include "ui_runs.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "output.h"

void
ui_runs_duration(char *out, size_t n, int64_t ms)
{
    if (ms < 0)
        ms = 0;
    if (ms < 1000)
        snprintf(out, n, "%" PRId64 " ms", ms);
    else if (ms < 60000)
        snprintf(out, n, "%.1f s", (double)ms / 1000.0);
    else if (ms < 3600000)
        snprintf(out, n, "%" PRId64 " min %02" PRId64 " s", ms / 60000, ms / 1000 % 60);
    else
        snprintf(out, n, "%" PRId64 " h %02" PRId64 " min", ms / 3600000, ms / 60000 % 60);
}

json_t *
ui_runs_live_json(struct scheduler *s, struct store *st, int64_t run_id, int *listed)
{
    struct scheduler_live *v = NULL;
    size_t n = 0;
    json_t *arr;

    if (!scheduler_live_get(s, st, run_id, &v, &n, listed))
        return NULL;
    arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:s, s:s?, s:s, s:I}", "tenant_id", v[i].tenant_id,
                                             "name", v[i].name[0] != '\0' ? v[i].name : NULL,
                                             "status", v[i].running ? "running" : "pending",
                                             "elapsed_ms", (json_int_t)v[i].elapsed_ms));
    free(v);
    return arr;
}

static void
text(struct buf *b, const json_t *v, const struct ui_runs_env *env)
{
    if (json_is_string(v))
        env->esc(b, json_string_value(v));
    else if (json_is_integer(v))
        buf_printf(b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    else
        buf_addstr(b, "<span class=\"muted\">—</span>");
}

static void
pill(struct buf *b, const char *status, const struct ui_runs_env *env)
{
    buf_addstr(b, "<span class=\"pill ");
    env->esc(b, status);
    buf_addstr(b, "\">");
    env->esc(b, status);
    buf_addstr(b, "</span>");
}

static void
head(struct buf *b)
{
    buf_addstr(b, "<table id=\"run-tenants\" class=\"stack\"><thead><tr><th>Client</th>"
                  "<th>Status</th><th class=\"num\">Time</th><th class=\"num\">Devices</th>"
                  "<th class=\"num hide-narrow\">New / changed / retired</th>"
                  "<th class=\"num hide-narrow\">Requests</th><th>Problem and fix</th></tr>"
                  "</thead><tbody>");
}

void
ui_runs_tenants(struct buf *b, struct scheduler *s, struct store *st, int64_t run_id, int running,
                const json_t *finished, const struct ui_runs_env *env)
{
    struct scheduler_live *v = NULL;
    size_t n = 0, i;
    int listed = 0, live = running && scheduler_live_get(s, st, run_id, &v, &n, &listed);
    const json_t *row;
    char d[48];

    if (n == 0 && json_array_size(finished) == 0) {
        buf_addstr(b, "<div class=\"empty\"><strong>");
        buf_addstr(b, !running          ? "No tenant was synced"
                      : live && !listed ? "Reading the customer list"
                                        : "Waiting to start");
        buf_addstr(b, "</strong></div>");
        free(v);
        return;
    }
    head(b);
    /* Running tenants first (the longest running on top), then those waiting for a slot. */
    for (int pass = 1; pass >= 0; pass--) {
        for (i = 0; i < n; i++) {
            if (v[i].running != pass)
                continue;
            buf_printf(b, "<tr data-state=\"%s\"><td data-label=\"Client\">",
                       pass ? "running" : "pending");
            env->esc(b, v[i].name[0] != '\0' ? v[i].name : v[i].tenant_id);
            buf_addstr(b, "<div class=\"muted mono\">");
            env->esc(b, v[i].tenant_id);
            buf_addstr(b, "</div></td><td data-label=\"Status\">");
            pill(b, pass ? "running" : "pending", env);
            buf_addstr(b, "</td><td class=\"num\" data-label=\"Time\">");
            if (pass) {
                ui_runs_duration(d, sizeof d, v[i].elapsed_ms);
                buf_addstr(b, d);
                buf_addstr(b, " so far");
            } else {
                buf_addstr(b, "<span class=\"muted\">waiting</span>");
            }
            buf_addstr(b, "</td><td class=\"num\" data-label=\"Devices\"><span "
                          "class=\"muted\">—</span></td><td class=\"num hide-narrow\"></td>"
                          "<td class=\"num hide-narrow\"></td><td></td></tr>");
        }
    }
    json_array_foreach(finished, i, row)
    {
        const json_t *ms = json_object_get(row, "duration_ms");

        buf_addstr(b, "<tr data-state=\"done\"><td data-label=\"Client\">");
        text(b, json_object_get(row, "client_name"), env);
        buf_addstr(b, "<div class=\"muted mono\">");
        text(b, json_object_get(row, "tenant_id"), env);
        buf_addstr(b, "</div></td><td data-label=\"Status\">");
        pill(b, json_string_value(json_object_get(row, "status")), env);
        buf_addstr(b, "</td><td class=\"num\" data-label=\"Time\">");
        if (json_is_integer(ms)) {
            ui_runs_duration(d, sizeof d, json_integer_value(ms));
            buf_addstr(b, d);
        }
        buf_addstr(b, "</td><td class=\"num\" data-label=\"Devices\">");
        text(b, json_object_get(row, "devices"), env);
        buf_addstr(b, "</td><td class=\"num hide-narrow\">");
        text(b, json_object_get(row, "created"), env);
        buf_addstr(b, " / ");
        text(b, json_object_get(row, "updated"), env);
        buf_addstr(b, " / ");
        text(b, json_object_get(row, "retired"), env);
        buf_addstr(b, "</td><td class=\"num hide-narrow\">");
        text(b, json_object_get(row, "requests"), env);
        buf_addstr(b, "</td><td data-label=\"Problem and fix\">");
        if (json_is_string(output_lookup(row, "error.message")) ||
            json_is_string(output_lookup(row, "error.code"))) {
            buf_addstr(b, "<span class=\"mono\">");
            text(b, output_lookup(row, "error.code"), env);
            buf_addstr(b, "</span> ");
            text(b, output_lookup(row, "error.message"), env);
            buf_addstr(b, "<div class=\"remedy\">");
            text(b, output_lookup(row, "error.remedy"), env);
            buf_addstr(b, "</div>");
            if (json_is_string(output_lookup(row, "error.request_id"))) {
                buf_addstr(b, "<div class=\"muted mono\">request-id ");
                text(b, output_lookup(row, "error.request_id"), env);
                if (json_is_string(output_lookup(row, "error.date"))) {
                    buf_addstr(b, " &middot; date ");
                    text(b, output_lookup(row, "error.date"), env);
                }
                buf_addstr(b, "</div>");
            }
        }
        buf_addstr(b, "</td></tr>");
    }
    buf_addstr(b, "</tbody></table>");
    free(v);
}

void
ui_runs_sync_button(struct buf *b, int64_t integration_id, const char *state, const char *csrf)
{
    int busy = state != NULL && strcmp(state, "idle") != 0;

    buf_printf(b,
               "<form method=\"post\" action=\"/integrations/%" PRId64
               "/sync\"><input type=\"hidden\" name=\"csrf\" value=\"%s\">",
               integration_id, csrf);
    if (busy)
        buf_printf(b,
                   "<button type=\"submit\" class=\"sync-now\" disabled title=\"A sync of this "
                   "integration is %s; it can be started again when it has finished.\">Sync "
                   "%s…</button>",
                   strcmp(state, "queued") == 0 ? "queued" : "running",
                   strcmp(state, "queued") == 0 ? "queued" : "running");
    else
        buf_addstr(b, "<button type=\"submit\" class=\"sync-now\">Sync now</button>");
    buf_addstr(b, "</form>");
}
