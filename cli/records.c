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

/* A duration in seconds as milliseconds with 3 decimals, rounded half up to the microsecond
 * as the journal writes it, so that every format shows the same digits for a record. */
static void format_ms(char *buf, size_t size, double seconds)
{
    double scaled = seconds * 1e6 + 0.5;
    unsigned long long us = scaled > 0 && scaled < 1e18 ? (unsigned long long)scaled : 0;
    snprintf(buf, size, "%llu.%03llu", us / 1000, us % 1000);
}

/* An input for a message or a column: a string as it is, other values as JSON, cut to
 * at most max bytes (with "..."), in a new string (free); NULL when out of memory. */
static char *input_text(const rs_value *input, size_t max)
{
    char *text = rs_value_type(input) == RS_TSTRING ? utf8_text(rs_value_get_string(input, NULL))
                                                    : json_text(input);
    if (text && strlen(text) > max && max > 3) {
        size_t cut = max - 3;
        while (cut > 0 && ((unsigned char)text[cut] & 0xc0) == 0x80)
            cut--; /* not inside a UTF-8 sequence */
        memcpy(text + cut, "...", 4);
    }
    return text;
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
    /* CSV lines end with CRLF, as RFC 4180 says. */
    if (f == FMT_CSV)
        out_puts("index,input,status,output,error,duration_ms,attempts,runspace\r\n");
    else if (f == FMT_TABLE)
        out_puts(
            "   INDEX  STATUS       TIME(ms)  RUNSPACE  INPUT                 OUTPUT / ERROR\n");
}

void record_write(record_format f, const rs_foreach_record *r, progress_bar *bar)
{
    /* Room for every fixed part of a line with its numbers at their widest (20 digits). */
    char num[160];
    switch (f) {
    case FMT_RAW:
        if (r->status == RS_ITEM_OK) {
            for (size_t i = 0; i < rs_array_len(r->output); i++)
                out_value_raw(rs_array_get(r->output, i));
        } else {
            /* Named by its input (what the user gave), not by a 0-based index. */
            char *error = utf8_text(r->error);
            char *in = input_text(r->input, 80);
            bar_clear(bar);
            if (rs_value_type(r->input) == RS_TSTRING)
                fprintf(stderr, "runspace: input '%s': %s: %s\n", in ? in : "",
                        rs_item_status_name(r->status), error ? error : r->error);
            else
                fprintf(stderr, "runspace: input %s: %s: %s\n", in ? in : "",
                        rs_item_status_name(r->status), error ? error : r->error);
            free(in);
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
        out_puts(",\"duration_ms\":");
        format_ms(num, sizeof num, r->duration);
        out_puts(num);
        snprintf(num, sizeof num, ",\"attempts\":%d,\"runspace\":%llu}\n", r->attempts,
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
        out_putc(',');
        format_ms(num, sizeof num, r->duration);
        out_puts(num);
        snprintf(num, sizeof num, ",%d,%llu\r\n", r->attempts, (unsigned long long)r->runspace_id);
        out_puts(num);
        break;
    }
    case FMT_TABLE: {
        char *text = r->status == RS_ITEM_OK ? json_text(r->output) : utf8_text(r->error);
        char *in = input_text(r->input, 20);
        char ms[32];
        format_ms(ms, sizeof ms, r->duration);
        snprintf(num, sizeof num, "%8llu  %-9s %10s  %8llu  ", (unsigned long long)r->index,
                 rs_item_status_name(r->status), ms, (unsigned long long)r->runspace_id);
        bar_clear(bar);
        out_puts(num);
        out_puts(in ? in : "");
        /* The input column is 20 characters wide (plus two blanks). */
        size_t width = 0;
        for (const char *p = in ? in : ""; *p; p++)
            width += ((unsigned char)*p & 0xc0) != 0x80;
        for (; width < 22; width++)
            out_putc(' ');
        free(in);
        out_puts(text ? text : "");
        out_putc('\n');
        free(text);
        break;
    }
    }
}
