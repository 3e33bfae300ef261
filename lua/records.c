/*
 * records.c -- what tasks started from Lua write besides their values: shown on the program's
 * standard output and error as they are written (as print in the task would be under lua5.4),
 * and, on pools made with records = true, kept for h:records().
 */
#include "lrs.h"

#include <stdio.h>
#include <stdlib.h>

void lrs_echo(const rs_record *r)
{
    FILE *f;
    const char *prefix;
    switch (r->stream) {
    case RS_STREAM_INFORMATION:
        f = stdout;
        prefix = "";
        break;
    case RS_STREAM_WARNING:
        f = stderr;
        prefix = "WARNING: ";
        break;
    case RS_STREAM_ERROR:
        if (r->code != 0)
            return; /* a terminating error: the handle or record says it */
        f = stderr;
        prefix = "ERROR: ";
        break;
    default:
        return;
    }
    /* One lock for the whole line, so that lines of tasks on other threads never mix within a
     * line, nor with one fwrite of the program (io.write of a whole line). Lua's print writes
     * its pieces one by one, so a task's line can come between them. */
    flockfile(f);
    fputs(prefix, f);
    fwrite(r->message, 1, r->message_len, f);
    putc_unlocked('\n', f);
    fflush(f);
    funlockfile(f);
}

void lrs_echo_ps(rs_ps *ps, const rs_record *r, void *ud)
{
    (void)ps;
    (void)ud;
    lrs_echo(r);
}

void lrs_echo_item(uint64_t index, const rs_record *r, void *ud)
{
    (void)index;
    (void)ud;
    lrs_echo(r);
}

void lrs_echo_job(const char *job, const rs_record *r, void *ud)
{
    (void)job;
    (void)ud;
    lrs_echo(r);
}

void lrs_echo_host(const rs_record *r, void *ud)
{
    (void)ud;
    lrs_echo(r);
}

typedef struct rec_ref {
    double time;
    rs_stream stream;
    size_t index;
} rec_ref;

static int by_time(const void *a, const void *b)
{
    const rec_ref *x = a, *y = b;
    if (x->time != y->time)
        return x->time < y->time ? -1 : 1;
    if (x->stream != y->stream)
        return x->stream < y->stream ? -1 : 1;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Sets key of map to v (taken); false when out of memory. */
static bool put(rs_value *map, const char *key, rs_value *v)
{
    return v && rs_map_set(map, key, v) == 0;
}

static rs_value *record_map(const rs_record *r)
{
    rs_value *m = rs_value_map();
    if (!m)
        return NULL;
    bool ok = put(m, "stream", rs_value_string(rs_stream_name(r->stream))) &&
              put(m, "message", rs_value_stringn(r->message, r->message_len));
    if (ok && r->source)
        ok = put(m, "source", rs_value_string(r->source));
    if (ok && r->line > 0)
        ok = put(m, "line", rs_value_int(r->line));
    if (ok && r->traceback)
        ok = put(m, "traceback", rs_value_string(r->traceback));
    if (ok && r->activity)
        ok = put(m, "activity", rs_value_string(r->activity));
    if (ok && r->stream == RS_STREAM_PROGRESS && r->percent >= 0)
        ok = put(m, "percent", rs_value_int(r->percent));
    if (ok)
        ok = put(m, "time", rs_value_double(r->time));
    if (!ok) {
        rs_value_destroy(m);
        return NULL;
    }
    return m;
}

rs_value *lrs_take_records(rs_ps *ps, bool *oom)
{
    *oom = false;
    size_t n = 0;
    for (int s = RS_STREAM_ERROR; s < RS_STREAM_COUNT; s++)
        n += rs_ps_record_count(ps, (rs_stream)s);
    if (n == 0)
        return NULL;
    rec_ref *refs = malloc(n * sizeof *refs);
    rs_value *out = refs ? rs_value_array() : NULL;
    if (!out) {
        free(refs);
        *oom = true;
        return NULL;
    }
    size_t k = 0;
    for (int s = RS_STREAM_ERROR; s < RS_STREAM_COUNT; s++) {
        size_t c = rs_ps_record_count(ps, (rs_stream)s);
        for (size_t i = 0; i < c && k < n; i++) {
            rs_record r;
            if (rs_ps_record(ps, (rs_stream)s, i, &r) == 0)
                refs[k++] = (rec_ref){r.time, (rs_stream)s, i};
        }
    }
    qsort(refs, k, sizeof *refs, by_time);
    for (size_t i = 0; i < k; i++) {
        rs_record r;
        rs_value *m =
            rs_ps_record(ps, refs[i].stream, refs[i].index, &r) == 0 ? record_map(&r) : NULL;
        if (!m || rs_array_push(out, m)) {
            rs_value_destroy(out);
            free(refs);
            *oom = true;
            return NULL;
        }
    }
    free(refs);
    return out;
}
