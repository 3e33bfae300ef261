/*
 * records.c -- a for-each record in each output format of the `runspace` program (raw,
 * jsonl, csv, table): what `foreach` writes as items finish, and what `joblog` writes from a
 * journal.
 */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Writes s as a JSON string. */
static void out_json_string(const char *s)
{
    rs_value *v = rs_value_string(s);
    if (v)
        out_json(v);
    else
        out_puts("null");
    rs_value_destroy(v);
}

/* A duration in seconds as milliseconds with 3 decimals, rounded half up to the microsecond
 * as the journal writes it, so that every format shows the same digits for a record. */
static void format_ms(char *buf, size_t size, double seconds)
{
    double scaled = seconds * 1e6 + 0.5;
    unsigned long long us = scaled > 0 && scaled < 1e18 ? (unsigned long long)scaled : 0;
    snprintf(buf, size, "%llu.%03llu", us / 1000, us % 1000);
}

/* An input for a message or a column, on one line (see display_text): a string as it is,
 * other values as JSON, cut to at most max bytes (with "..."), in a new string (free); NULL
 * when out of memory. Only the first bytes of a long input are looked at. */
static char *input_text(const rs_value *input, size_t max)
{
    if (rs_value_type(input) == RS_TSTRING) {
        size_t len;
        const char *s = rs_value_get_string(input, &len);
        return display_text(s, len < 4 * max ? len : 4 * max, max);
    }
    bool cut;
    char *json = json_prefix(input, max + 1, &cut);
    char *text = json ? display_text(json, strlen(json), max) : NULL;
    free(json);
    return text;
}

/* A message for a text format (table, stderr) on one line; NULL when out of memory. */
static char *message_text(const char *s)
{
    return display_text(s, strlen(s), 0);
}

/* Streams JSON text as a CSV field (RFC 4180): as it is while it holds none of , " CR LF
 * (held back until that is known), else in quotes with each " doubled. A text without them
 * is short (nested one-element arrays around a number), so what is held back stays small;
 * should it not, the field is quoted, which is always valid. */
typedef struct csv_field {
    char held[4096];
    size_t n;
    bool quoted;
} csv_field;

static void csv_quoted(const char *data, size_t len)
{
    size_t run = 0;
    for (size_t i = 0; i < len; i++) {
        if (data[i] == '"') {
            out_write(data + run, i + 1 - run);
            out_putc('"');
            run = i + 1;
        }
    }
    out_write(data + run, len - run);
}

static int csv_sink(const char *data, size_t len, void *ud)
{
    csv_field *f = ud;
    if (!f->quoted) {
        bool plain = len <= sizeof f->held - f->n;
        for (size_t i = 0; plain && i < len; i++)
            plain = !strchr(",\"\r\n", data[i]) || !data[i];
        if (plain) {
            memcpy(f->held + f->n, data, len);
            f->n += len;
            return 0;
        }
        f->quoted = true;
        out_putc('"');
        csv_quoted(f->held, f->n);
    }
    csv_quoted(data, len);
    return out_stopped();
}

static void out_csv_json(const rs_value *v)
{
    csv_field f = {.n = 0};
    json_stream(v, csv_sink, &f);
    if (f.quoted)
        out_putc('"');
    else
        out_write(f.held, f.n);
}

/* Streams JSON text to a terminal's table: JSON escapes every C0 control but lets DEL and
 * the C1 controls (U+0080-U+009F, which some terminals obey) through; they are written as
 * \u escapes, which read the same as JSON. held is a 0xC2 byte whose successor is still to
 * come. */
typedef struct table_field {
    bool held;
} table_field;

static int table_sink(const char *data, size_t len, void *ud)
{
    table_field *t = ud;
    const unsigned char *p = (const unsigned char *)data;
    size_t run = 0;
    char esc[8];
    for (size_t i = 0; i < len; i++) {
        if (t->held) {
            t->held = false;
            if (p[i] >= 0x80 && p[i] < 0xa0) {
                snprintf(esc, sizeof esc, "\\u%04x", p[i]);
                out_puts(esc);
                run = i + 1;
                continue;
            }
            out_putc('\xc2');
            run = i;
        }
        if (p[i] == 0x7f || p[i] == 0xc2) {
            out_write(data + run, i - run);
            if (p[i] == 0x7f)
                out_puts("\\u007f");
            else
                t->held = true;
            run = i + 1;
        }
    }
    out_write(data + run, len - run);
    return out_stopped();
}

/* Writes s as a CSV field (RFC 4180). */
static void out_csv_field(const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        out_puts(s);
        return;
    }
    out_putc('"');
    csv_quoted(s, strlen(s));
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
            char *error = message_text(r->error);
            char *in = input_text(r->input, 80);
            char *line = NULL;
            bool string = rs_value_type(r->input) == RS_TSTRING;
            if (asprintf(&line, string ? "input '%s': %s: %s" : "input %s: %s: %s", in ? in : "",
                         rs_item_status_name(r->status), error ? error : "out of memory") < 0)
                line = NULL;
            bar_line(bar, "runspace: ", line ? line : "out of memory",
                     strlen(line ? line : "out of memory"));
            free(line);
            free(in);
            free(error);
        }
        break;
    case FMT_JSONL:
        snprintf(num, sizeof num, "{\"index\":%llu,\"input\":", (unsigned long long)r->index);
        out_puts(num);
        out_json(r->input);
        out_puts(",\"status\":\"");
        out_puts(rs_item_status_name(r->status));
        out_puts("\",\"output\":");
        out_json(r->output);
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
        out_csv_json(r->input);
        out_putc(',');
        out_puts(rs_item_status_name(r->status));
        out_putc(',');
        out_csv_json(r->output);
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
        char *text = r->status == RS_ITEM_OK ? NULL : message_text(r->error);
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
        if (r->status == RS_ITEM_OK) {
            table_field t = {false};
            json_stream(r->output, table_sink, &t);
            if (t.held)
                out_putc('\xc2');
        } else {
            out_puts(text ? text : "");
        }
        out_putc('\n');
        free(text);
        break;
    }
    }
}
