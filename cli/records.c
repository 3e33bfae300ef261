/*
 * records.c -- a for-each record in each output format of the `runspace` program (raw,
 * jsonl, csv, table): what `foreach` writes as items finish, and what `joblog` writes from a
 * journal.
 */
#include "cli.h"

#include <stdlib.h>
#include <string.h>

/* Writes s as a JSON string. */
static void out_json_string(const char *s)
{
    rs_value *v = rs_value_string(s);
    char *text = v ? json_text(v) : NULL;
    out_puts(text ? text : "null");
    free(text);
    rs_value_destroy(v);
}

static void out_json_value(const rs_value *v)
{
    char *text = json_text(v);
    out_puts(text ? text : "null");
    free(text);
}

/* Writes s as a CSV field (RFC 4180). */
static void out_csv_field(const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        out_puts(s);
        return;
    }
    out_putc('"');
    for (const char *p = s; *p; p++) {
        if (*p == '"')
            out_putc('"');
        out_putc(*p);
    }
    out_putc('"');
}

bool parse_record_format(const char *s, record_format *out)
{
    static const char *const formats[] = {"raw", "jsonl", "csv", "table", NULL};
    int f = parse_choice(s, formats);
    if (f < 0)
        return false;
    *out = (record_format)f;
    return true;
}

void record_heading(record_format f)
{
    if (f == FMT_CSV)
        out_puts("index,input,status,output,error,duration_ms,runspace\n");
    else if (f == FMT_TABLE)
        out_puts("   INDEX  STATUS       TIME(ms)  RUNSPACE  OUTPUT / ERROR\n");
}

void record_write(record_format f, const rs_foreach_record *r, progress_bar *bar)
{
    char num[64];
    switch (f) {
    case FMT_RAW:
        if (r->status == RS_ITEM_OK) {
            for (size_t i = 0; i < rs_array_len(r->output); i++)
                out_value_raw(rs_array_get(r->output, i));
        } else {
            char *error = utf8_text(r->error);
            bar_clear(bar);
            fprintf(stderr, "runspace: item %llu: %s: %s\n", (unsigned long long)r->index,
                    rs_item_status_name(r->status), error ? error : r->error);
            free(error);
        }
        break;
    case FMT_JSONL:
        snprintf(num, sizeof num, "{\"index\":%llu,\"input\":", (unsigned long long)r->index);
        out_puts(num);
        out_json_value(r->input);
        out_puts(",\"status\":\"");
        out_puts(rs_item_status_name(r->status));
        out_puts("\",\"output\":");
        out_json_value(r->output);
        out_puts(",\"error\":");
        if (r->error)
            out_json_string(r->error);
        else
            out_puts("null");
        snprintf(num, sizeof num, ",\"duration_ms\":%.3f,\"runspace\":%llu}\n", r->duration * 1e3,
                 (unsigned long long)r->runspace_id);
        out_puts(num);
        break;
    case FMT_CSV: {
        snprintf(num, sizeof num, "%llu,", (unsigned long long)r->index);
        out_puts(num);
        char *in = json_text(r->input);
        out_csv_field(in ? in : "");
        free(in);
        out_putc(',');
        out_puts(rs_item_status_name(r->status));
        out_putc(',');
        char *outv = json_text(r->output);
        out_csv_field(outv ? outv : "");
        free(outv);
        out_putc(',');
        char *error = r->error ? utf8_text(r->error) : NULL;
        out_csv_field(error ? error : "");
        free(error);
        snprintf(num, sizeof num, ",%.3f,%llu\n", r->duration * 1e3,
                 (unsigned long long)r->runspace_id);
        out_puts(num);
        break;
    }
    case FMT_TABLE: {
        char *text = r->status == RS_ITEM_OK ? json_text(r->output) : utf8_text(r->error);
        snprintf(num, sizeof num, "%8llu  %-9s %10.3f  %8llu  ", (unsigned long long)r->index,
                 rs_item_status_name(r->status), r->duration * 1e3,
                 (unsigned long long)r->runspace_id);
        bar_clear(bar);
        out_puts(num);
        out_puts(text ? text : "");
        out_putc('\n');
        free(text);
        break;
    }
    }
}
