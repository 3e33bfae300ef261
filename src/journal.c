/*
 * journal.c -- the journal of a for-each run: a file of JSON lines, a header naming the run
 * and one line per delivered record, that survives a crash so that a resume runs only what
 * is missing. The format and the modes are documented in runspace.h (rs_journal_mode).
 *
 * DESIGN
 * Threads: the run thread appends records; the journal's own thread ("writer") writes them
 * with write(2) and syncs them with fdatasync. Lock order: foreach's fe->mu is never taken
 * with j->mu held (the writer calls on_failure without it).
 *
 * Buffers: rs__journal_append encodes the record straight into `pending` under j->mu, so a
 * record is in the writer's hands the moment it is appended, whatever the caller's
 * on_record then does (a slow standard output must not hold records back from the disk).
 * The writer swaps `pending` with its own `writing` buffer under the lock and writes it
 * without: one write(2) per batch of records, never one per record. When `pending` passes
 * PENDING_MAX, append waits on `room` for the writer (memory stays bounded when the disk is
 * slower than the run).
 *
 * Who wakes whom: append signals `work` when `pending` turns non-empty (the writer then
 * knows when the sync is due) and when it passes WRITE_CHUNK; close signals it to finish.
 * The writer sleeps on `work` while nothing waits, and otherwise until the sync deadline:
 * SYNC_DELAY after the oldest record not yet synced was appended. So a record is on disk
 * within SYNC_DELAY plus a sync, also when the records stop coming (a quiet period after a
 * burst), and fdatasync runs at most about every SYNC_DELAY while they come. The writer
 * signals `room` when it takes `pending`. Nothing polls.
 *
 * Failure: the first write or sync error ends the journal: the writer records it, drops what
 * waits and what comes later, and calls on_failure once (foreach then stops the run). Every
 * record is counted: `appended` by the run thread, `synced` by the writer after each
 * successful fdatasync; their difference is what a resume will run again.
 *
 * Resume: the file is read once, line by line through a buffer (never whole), and each
 * record's head ({"index":N,"status":"S") parsed without a JSON parser; lines written by
 * other hands fall back to one. Done indexes go to a set whose memory follows the gaps:
 * chunks of 32,768 indexes as bitmaps, dropped for a marker once every index in them is
 * done.
 */
#include "journal.h"

#include "json.h"
#include "thread.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#define FORMAT_VERSION 1
#define SYNC_DELAY_NS 50000000        /* 50 ms */
#define WRITE_CHUNK ((size_t)1 << 20) /* write once this much waits, sync due or not */
#define PENDING_MAX ((size_t)8 << 20) /* append waits beyond this */
#define HEADER_MAX ((size_t)1 << 20)  /* the longest first line taken for a header */
#define READ_CHUNK ((size_t)1 << 20)
#define MAX_INDEX ((uint64_t)1 << 36) /* the highest index a resume takes */
#define HEADER_MAGIC "{\"runspace_journal\":"

static const char *const status_names[] = {"ok", "error", "timeout", "cancelled"};

/* Test hooks: an error for the next sync, and the times of the latest syncs. */
static atomic_int test_sync_error;
#define SYNC_LOG 256
static _Atomic int64_t sync_log[SYNC_LOG];
static atomic_uint_least64_t sync_count;

void rs__journal_test_fail_sync(int err)
{
    atomic_store(&test_sync_error, err);
}

size_t rs__journal_test_syncs(int64_t *times, size_t cap)
{
    uint64_t n = atomic_load(&sync_count);
    size_t k = n < SYNC_LOG ? (size_t)n : SYNC_LOG;
    if (k > cap)
        k = cap;
    for (size_t i = 0; i < k; i++)
        times[i] = atomic_load(&sync_log[(n - k + i) % SYNC_LOG]);
    return k;
}

/* ---- index sets ------------------------------------------------------------------------- */

/* A set of indexes in chunks of CHUNK_SIZE: NULL (none in it), FULL (all of them), or a
 * bitmap with its count. Memory follows the chunks that are partly filled. */
#define CHUNK_SHIFT 15
#define CHUNK_SIZE ((uint64_t)1 << CHUNK_SHIFT)

typedef struct chunk {
    uint32_t count;
    uint64_t bits[CHUNK_SIZE / 64];
} chunk;

static chunk full_chunk; /* the marker of a full chunk; never read or written */
#define FULL (&full_chunk)

typedef struct idxset {
    chunk **chunks;
    size_t n;
    uint64_t count;
} idxset;

static bool idx_get(const idxset *s, uint64_t i)
{
    uint64_t c = i >> CHUNK_SHIFT;
    if (c >= s->n || !s->chunks[c])
        return false;
    if (s->chunks[c] == FULL)
        return true;
    return s->chunks[c]->bits[(i & (CHUNK_SIZE - 1)) >> 6] >> (i & 63) & 1;
}

/* Adds (on) or removes index i (at most MAX_INDEX). 0 or RS_ENOMEM. */
static int idx_put(idxset *s, uint64_t i, bool on)
{
    size_t c = (size_t)(i >> CHUNK_SHIFT);
    if (c >= s->n) {
        if (!on)
            return 0;
        size_t n = s->n ? s->n : 16;
        while (n <= c)
            n *= 2;
        chunk **chunks = rs__realloc(s->chunks, n * sizeof *chunks);
        if (!chunks)
            return RS_ENOMEM;
        memset(chunks + s->n, 0, (n - s->n) * sizeof *chunks);
        s->chunks = chunks;
        s->n = n;
    }
    chunk *k = s->chunks[c];
    if (!k || k == FULL) {
        if (on == (k == FULL))
            return 0;
        k = rs__malloc(sizeof *k);
        if (!k)
            return RS_ENOMEM;
        bool was_full = s->chunks[c] == FULL;
        memset(k->bits, was_full ? 0xff : 0, sizeof k->bits);
        k->count = was_full ? (uint32_t)CHUNK_SIZE : 0;
        s->chunks[c] = k;
    }
    uint64_t *w = &k->bits[(i & (CHUNK_SIZE - 1)) >> 6];
    uint64_t bit = (uint64_t)1 << (i & 63);
    if (on && !(*w & bit)) {
        *w |= bit;
        s->count++;
        if (++k->count == CHUNK_SIZE) {
            rs__free(k);
            s->chunks[c] = FULL;
        }
    } else if (!on && (*w & bit)) {
        *w &= ~bit;
        s->count--;
        if (--k->count == 0) {
            rs__free(k);
            s->chunks[c] = NULL;
        }
    }
    return 0;
}

static void idx_free(idxset *s)
{
    for (size_t c = 0; c < s->n; c++) {
        if (s->chunks[c] != FULL)
            rs__free(s->chunks[c]);
    }
    rs__free(s->chunks);
    memset(s, 0, sizeof *s);
}

/* The first index at or after i that is not in s. */
static uint64_t idx_next_clear(const idxset *s, uint64_t i)
{
    while (idx_get(s, i)) {
        if (s->chunks[i >> CHUNK_SHIFT] == FULL)
            i = ((i >> CHUNK_SHIFT) + 1) << CHUNK_SHIFT;
        else
            i++;
    }
    return i;
}

/* ---- reading lines ---------------------------------------------------------------------- */

/* Lines of a file through a buffer that grows only for lines longer than it. */
typedef struct lines {
    int fd;
    char *buf;
    size_t cap, start, end; /* the unread bytes are buf[start..end) */
    size_t scanned;         /* bytes after start known to hold no newline */
    uint64_t base;          /* the file offset of buf[0] */
    bool eof;
    uint64_t number; /* of the line last returned, from 1 */
} lines;

/* The next line, without its newline, in *line (valid until the next call; NUL-terminated)
 * and *len; *complete is false for a last line that has no newline; *offset gets its file
 * offset. Returns 1, 0 at the end, or a negative RS_E* code with errno's reason in *err
 * (RS_ESYSTEM for a read error, RS_ENOMEM). */
static int next_line(lines *l, char **line, size_t *len, bool *complete, uint64_t *offset, int *err)
{
    for (;;) {
        size_t have = l->end - l->start;
        char *p = l->buf ? l->buf + l->start : NULL;
        char *nl = have > l->scanned ? memchr(p + l->scanned, '\n', have - l->scanned) : NULL;
        l->scanned = have;
        if (nl || (l->eof && have)) {
            size_t n = nl ? (size_t)(nl - p) : have;
            p[n] = '\0'; /* the newline, or the spare byte kept after end */
            *line = p;
            *len = n;
            *complete = nl != NULL;
            *offset = l->base + l->start;
            l->start += n + (nl ? 1 : 0);
            l->scanned = 0;
            l->number++;
            return 1;
        }
        if (l->eof)
            return 0;
        if (!l->buf) /* the first read: tell the kernel to read ahead generously */
            posix_fadvise(l->fd, 0, 0, POSIX_FADV_SEQUENTIAL);
        /* Keep the partial line, make room, read on. */
        if (l->start) {
            memmove(l->buf, l->buf + l->start, have);
            l->base += l->start;
            l->end = have;
            l->start = 0;
        }
        if (l->cap - l->end < READ_CHUNK / 2 + 1) {
            size_t cap = l->cap ? l->cap * 2 : READ_CHUNK;
            char *b = rs__realloc(l->buf, cap);
            if (!b) {
                *err = ENOMEM;
                return RS_ENOMEM;
            }
            l->buf = b;
            l->cap = cap;
        }
        ssize_t got = read(l->fd, l->buf + l->end, l->cap - l->end - 1);
        if (got > 0) {
            l->end += (size_t)got;
        } else if (got == 0) {
            l->eof = true;
        } else if (errno != EINTR) {
            *err = errno;
            return RS_ESYSTEM;
        }
    }
}

/* ---- record lines ----------------------------------------------------------------------- */

/* Parses the head of a record line as this file writes it, {"index":N,"status":"S", and
 * checks that the line ends an object. False for anything else (the caller then asks a JSON
 * parser). */
static bool parse_head(const char *p, size_t len, uint64_t *index, int *status)
{
    static const char a[] = "{\"index\":", b[] = ",\"status\":\"";
    size_t i = sizeof a - 1;
    if (len < i + 1 || memcmp(p, a, i) != 0 || p[len - 1] != '}')
        return false;
    uint64_t v = 0;
    size_t first = i;
    for (; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
        if (v > MAX_INDEX)
            return false;
        v = v * 10 + (uint64_t)(p[i] - '0');
    }
    if (i == first || (p[first] == '0' && i > first + 1))
        return false;
    if (len - i < sizeof b - 1 || memcmp(p + i, b, sizeof b - 1) != 0)
        return false;
    i += sizeof b - 1;
    for (int k = 0; k < 4; k++) {
        size_t n = strlen(status_names[k]);
        if (len - i > n && memcmp(p + i, status_names[k], n) == 0 && p[i + n] == '"') {
            *index = v;
            *status = k;
            return true;
        }
    }
    return false;
}

/* The index and status of a record line: the fast head, or else the whole line as JSON.
 * *rec (may be NULL) gets the decoded line (a map) when it was decoded. 0, RS_EINVAL with
 * the reason in why (256 bytes), or RS_ENOMEM. */
static int record_head(const char *p, size_t len, uint64_t *index, int *status, char *why)
{
    if (parse_head(p, len, index, status))
        return 0;
    rs_value *v = NULL;
    rs_errinfo err;
    int rc = rs_json_decode(p, len, &v, &err);
    if (rc) {
        snprintf(why, 256, "%s", rc == RS_ENOMEM ? "out of memory" : err.message);
        return rc == RS_ENOMEM ? RS_ENOMEM : RS_EINVAL;
    }
    rs_value *iv = rs_map_get(v, "index"), *sv = rs_map_get(v, "status");
    const char *s = rs_value_type(sv) == RS_TSTRING ? rs_value_get_string(sv, NULL) : "";
    int k = 0;
    while (k < 4 && strcmp(s, status_names[k]) != 0)
        k++;
    rc = RS_EINVAL;
    if (rs_value_type(v) != RS_TMAP || rs_value_type(iv) != RS_TINT)
        snprintf(why, 256, "it has no index");
    else if (rs_value_get_int(iv) < 0 || (uint64_t)rs_value_get_int(iv) > MAX_INDEX)
        snprintf(why, 256, "its index is not from 0 to 2^36");
    else if (k == 4)
        snprintf(why, 256, "it has no status ok, error, timeout or cancelled");
    else
        rc = 0;
    if (!rc) {
        *index = (uint64_t)rs_value_get_int(iv);
        *status = k;
    }
    rs_value_destroy(v);
    return rc;
}

/* Appends a literal (room reserved). */
#define PUT(b, lit)                                                                                \
    do {                                                                                           \
        memcpy((b)->data + (b)->len, lit, sizeof lit - 1);                                         \
        (b)->len += sizeof lit - 1;                                                                \
    } while (0)

/* Appends x in decimal (room reserved). */
static void put_u64(rs__buf *b, uint64_t x)
{
    b->len += rs__format_u64(b->data + b->len, x);
}

/* Makes room for n more bytes and the NUL; false when out of memory. No call when there is
 * room already, which is nearly always. */
#define ROOM(b, n) ((b)->len + (n) + 1 <= (b)->cap || rs__buf_reserve((b), (n)) == 0)

/* Appends the fraction of v (a count of 10^-digits units) after a point (room reserved). */
static void put_fraction(rs__buf *b, uint64_t v, int digits)
{
    char *p = b->data + b->len;
    p[0] = '.';
    for (int i = digits; i > 0; i--, v /= 10)
        p[i] = (char)('0' + v % 10);
    b->len += (size_t)digits + 1;
}

/* The text of the whole seconds of the last start time written: records that start within
 * the same second share it, and it is formatted once. */
typedef struct seconds_text {
    uint64_t seconds;
    size_t len;
    char text[24];
} seconds_text;

/* Appends a start time (seconds since the epoch) with microseconds (room reserved). */
static void put_start(rs__buf *b, double t, seconds_text *cache)
{
    double scaled = t * 1e6 + 0.5;
    uint64_t us = scaled > 0 && scaled < 1e18 ? (uint64_t)scaled : 0;
    uint64_t sec = us / 1000000;
    if (sec != cache->seconds || !cache->len) {
        cache->seconds = sec;
        cache->len = rs__format_u64(cache->text, sec);
    }
    memcpy(b->data + b->len, cache->text, cache->len);
    b->len += cache->len;
    put_fraction(b, us % 1000000, 6);
}

/* Appends a duration in seconds as milliseconds with 3 decimals (room reserved). */
static void put_milliseconds(rs__buf *b, double seconds)
{
    double scaled = seconds * 1e6 + 0.5;
    uint64_t us = scaled > 0 && scaled < 1e18 ? (uint64_t)scaled : 0;
    put_u64(b, us / 1000);
    put_fraction(b, us % 1000, 3);
}

/* Appends v when it is an integer or a short string of printable ASCII without quotes or
 * backslashes (room reserved: 64 bytes), the values of most records; false for anything
 * else, which the JSON encoder writes. */
static bool put_simple(rs__buf *b, const rs_value *v)
{
    rs_type t = rs_value_type(v);
    if (t == RS_TINT) {
        int64_t x = rs_value_get_int(v);
        if (x < 0)
            b->data[b->len++] = '-';
        put_u64(b, x < 0 ? 0 - (uint64_t)x : (uint64_t)x);
        return true;
    }
    if (t != RS_TSTRING)
        return false;
    size_t len;
    const char *s = rs_value_get_string(v, &len);
    if (len > 40)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c < 0x20 || c >= 0x7f || c == '"' || c == '\\')
            return false;
    }
    char *p = b->data + b->len;
    p[0] = '"';
    memcpy(p + 1, s, len);
    p[len + 1] = '"';
    b->len += len + 2;
    return true;
}

/* Appends a value as JSON, repaired; null for one nested deeper than JSON may be. Simple
 * values (put_simple), and arrays of a few, are written without the encoder. */
static int put_value(rs__buf *b, const rs_value *v, const char *root)
{
    if (!ROOM(b, 64))
        return RS_ENOMEM;
    size_t start = b->len;
    if (put_simple(b, v))
        return 0;
    size_t n = rs_value_type(v) == RS_TARRAY ? rs_array_len(v) : 0;
    if (n && n <= 8) {
        b->data[b->len++] = '[';
        size_t i = 0;
        for (; i < n; i++) {
            if (i)
                b->data[b->len++] = ',';
            if (!ROOM(b, 64))
                return RS_ENOMEM;
            if (!put_simple(b, rs_array_get(v, i)))
                break;
        }
        if (i == n) {
            b->data[b->len++] = ']';
            return 0;
        }
        b->len = start; /* something else inside: the encoder writes it all */
    }
    int rc = rs__json_encode_ex(v, RS_JSON_REPAIR, root, 0, b, NULL);
    if (rc == RS_EVALUE)
        rc = rs__buf_append(b, "null", 4);
    return rc;
}

/* Appends r's line, with its newline. 0 or RS_ENOMEM (b is as before then). This runs once
 * per record, on the run thread: the fixed parts are written without a call per piece. */
static int encode_record(rs__buf *b, const rs_foreach_record *r, seconds_text *cache)
{
    static const char *const quoted[] = {
        "ok\",\"start\":", "error\",\"start\":", "timeout\",\"start\":", "cancelled\",\"start\":"};
    size_t start = b->len;
    /* A number takes at most 27 bytes: 96 covers the head, 24 and 96 the middle and tail. */
    if (!ROOM(b, 96))
        return RS_ENOMEM;
    PUT(b, "{\"index\":");
    put_u64(b, r->index);
    PUT(b, ",\"status\":\"");
    const char *st = quoted[r->status <= RS_ITEM_CANCELLED ? r->status : RS_ITEM_ERROR];
    size_t n = strlen(st);
    memcpy(b->data + b->len, st, n);
    b->len += n;
    if (r->start > 0)
        put_start(b, r->start, cache);
    else
        PUT(b, "null");
    PUT(b, ",\"input\":");
    int rc = put_value(b, r->input, "input");
    if (!rc && !ROOM(b, 24))
        rc = RS_ENOMEM;
    if (!rc) {
        PUT(b, ",\"output\":");
        rc = put_value(b, r->output, "output");
    }
    if (!rc && !ROOM(b, 24))
        rc = RS_ENOMEM;
    if (!rc) {
        PUT(b, ",\"error\":");
        if (r->error)
            rc = rs__json_encode_text(b, r->error, strlen(r->error));
        else
            PUT(b, "null");
    }
    if (!rc && !ROOM(b, 96))
        rc = RS_ENOMEM;
    if (rc) {
        b->len = start;
        b->data[start] = '\0';
        return RS_ENOMEM;
    }
    PUT(b, ",\"duration_ms\":");
    put_milliseconds(b, r->duration);
    PUT(b, ",\"attempts\":");
    put_u64(b, r->attempts > 0 ? (uint64_t)r->attempts : 0);
    PUT(b, ",\"runspace\":");
    put_u64(b, r->runspace_id);
    PUT(b, "}\n");
    b->data[b->len] = '\0';
    return 0;
}

/* ---- the header ------------------------------------------------------------------------- */

/* The header's fields that name the run, in the order they are compared. */
static const char *const run_fields[] = {"script",  "command", "arguments", "parameters",
                                         "session", "timeout", "retries",   "source"};

/* The header of spec's run as a value (NULL when out of memory). */
static rs_value *make_header(const rs__journal_spec *spec)
{
    rs_value *h = rs_value_map();
    const char *texts[] = {spec->script, spec->command, spec->arguments, spec->parameters,
                           spec->session};
    int rc = h ? 0 : RS_ENOMEM;
    if (!rc)
        rc = rs_map_set(h, "runspace_journal", rs_value_int(FORMAT_VERSION));
    if (!rc)
        rc = rs_map_set(h, "created", rs_value_double(floor(rs__wall_time() * 1e3) / 1e3));
    if (!rc)
        rc =
            rs_map_set(h, "source", spec->source ? rs_value_string(spec->source) : rs_value_null());
    for (size_t i = 0; !rc && i < RS__ARRAY_SIZE(texts); i++)
        rc = rs_map_set(h, run_fields[i], texts[i] ? rs_value_string(texts[i]) : rs_value_null());
    if (!rc)
        rc = rs_map_set(h, "timeout", rs_value_double(spec->timeout));
    if (!rc)
        rc = rs_map_set(h, "retries", rs_value_int(spec->retries));
    if (rc) {
        rs_value_destroy(h);
        return NULL;
    }
    return h;
}

/* How field differs between the journal's header (old) and this run's (now): a clause for
 * the message, into out (256 bytes). */
static void describe_difference(const char *field, const rs_value *old, const rs_value *now,
                                char *out)
{
    static const struct {
        const char *field, *clause;
        bool show; /* the values are short and say something to a reader */
    } says[] = {
        {"script", "the script differs", false},
        {"command", "the command differs", true},
        {"arguments", "the arguments differ", false},
        {"parameters", "the parameters differ", false},
        {"session",
         "the session state (profile, limits, variables, functions, modules or "
         "commands) differs",
         false},
        {"timeout", "the timeout differs", true},
        {"retries", "the number of retries differs", true},
        {"source", "the input source differs", true},
    };
    size_t i = 0;
    while (i + 1 < RS__ARRAY_SIZE(says) && strcmp(says[i].field, field) != 0)
        i++;
    if (!says[i].show) {
        snprintf(out, 256, "%s", says[i].clause);
        return;
    }
    char *a = NULL, *b = NULL;
    rs_json_encode(old, RS_JSON_REPAIR, &a, NULL, NULL);
    rs_json_encode(now, RS_JSON_REPAIR, &b, NULL, NULL);
    snprintf(out, 256, "%s (%.80s in the journal, %.80s now)", says[i].clause, a ? a : "?",
             b ? b : "?");
    rs__free(a);
    rs__free(b);
}

static void notice(const rs__journal_spec *spec, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static void notice(const rs__journal_spec *spec, const char *fmt, ...)
{
    if (!spec->on_notice)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *note = rs__vformat(fmt, ap);
    va_end(ap);
    spec->on_notice(note ? note : "(out of memory)", spec->notice_userdata);
    rs__free(note);
}

/* Checks that the decoded first line h is a header this version reads: 0, or RS_EINVAL
 * with the reason in msg. */
static int check_format(const char *path, const rs_value *h, rs__msg *msg)
{
    const rs_value *version = rs_map_get(h, "runspace_journal");
    if (rs_value_type(h) != RS_TMAP || rs_value_type(version) != RS_TINT)
        return rs__msg_set(msg, RS_EINVAL,
                           "'%s' is not a runspace journal: its first line is not a journal "
                           "header; remove it or choose another file",
                           path);
    if (rs_value_get_int(version) != FORMAT_VERSION)
        return rs__msg_set(msg, RS_EINVAL,
                           "the journal '%s' has format %" PRId64
                           ", which this version of runspace does not read (it reads %d)",
                           path, rs_value_get_int(version), FORMAT_VERSION);
    return 0;
}

/* Checks that the journal's header h names the run of now (a header value): 0, or
 * RS_EINVAL with the reason in msg. Another run is accepted with force, and told. */
static int check_run(const rs__journal_spec *spec, const rs_value *h, const rs_value *now,
                     rs__msg *msg)
{
    for (size_t i = 0; i < RS__ARRAY_SIZE(run_fields); i++) {
        const rs_value *a = rs_map_get(h, run_fields[i]);
        const rs_value *b = rs_map_get(now, run_fields[i]);
        rs_value *null = a ? NULL : rs_value_null();
        bool same = rs_value_equal(a ? a : null, b);
        char why[256];
        if (!same)
            describe_difference(run_fields[i], a ? a : null, b, why);
        rs_value_destroy(null);
        if (same)
            continue;
        if (!spec->force)
            return rs__msg_set(msg, RS_EINVAL, "the journal '%s' belongs to another run: %s",
                               spec->path, why);
        notice(spec,
               "the journal '%s' belongs to another run (%s); its records count as this run's, "
               "as forced",
               spec->path, why);
        break;
    }
    return 0;
}

/* ---- the journal ------------------------------------------------------------------------ */

struct rs__journal {
    char *path;
    int fd;
    rs_journal_mode mode;
    idxset done; /* fixed after open */
    void (*on_failure)(void *arg);
    void *failure_arg;

    rs__mutex mu;
    rs__cond work; /* the writer has something to look at */
    rs__cond room; /* pending has room again (or the journal failed) */
    rs__buf pending;
    seconds_text seconds; /* of the start times written into pending */
    uint64_t pending_records;
    int64_t pending_since; /* when pending turned non-empty */
    bool chunk_signalled;  /* the writer was told that pending passed WRITE_CHUNK */
    uint64_t appended;     /* records appended, those dropped after a failure included */
    uint64_t synced;       /* records durably in the file */
    bool closing;
    int failed; /* errno of the first failure (ENOMEM for a record that could not be encoded) */
    bool failed_in_sync;
    rs__thread writer;
    bool writer_started;

    /* The writer's own. */
    rs__buf writing;
    uint64_t written;       /* records written but perhaps not synced, and synced */
    bool unsynced;          /* written data not synced yet */
    int64_t unsynced_since; /* the append time of the oldest of it */
};

/* Writes all of data; 0, or errno with *done bytes written. */
static int write_all(int fd, const char *data, size_t len, size_t *done)
{
    *done = 0;
    while (*done < len) {
        ssize_t n = write(fd, data + *done, len - *done);
        if (n > 0)
            *done += (size_t)n;
        else if (n == 0)
            return EIO;
        else if (errno != EINTR)
            return errno;
    }
    return 0;
}

static int sync_file(int fd)
{
    int injected = atomic_exchange(&test_sync_error, 0);
    if (injected)
        return injected;
    while (fdatasync(fd) != 0) {
        if (errno != EINTR)
            return errno;
    }
    atomic_store(&sync_log[atomic_fetch_add(&sync_count, 1) % SYNC_LOG], rs__now_ns());
    return 0;
}

/* Counts the newlines in data[0..n). */
static uint64_t count_lines(const char *data, size_t n)
{
    uint64_t k = 0;
    for (const char *p = data, *end = data + n; (p = memchr(p, '\n', (size_t)(end - p))); p++)
        k++;
    return k;
}

/* The writer thread (see DESIGN). */
static void *writer_main(void *arg)
{
    rs__journal *j = arg;
    rs__mutex_lock(&j->mu);
    for (;;) {
        bool have = j->pending.len > 0;
        if (j->failed && have) {
            /* Nothing more is written: what waits is lost, and counted as such. */
            j->pending.len = 0;
            j->pending_records = 0;
            rs__cond_broadcast(&j->room);
            continue;
        }
        if (!have && !j->unsynced) {
            if (j->closing)
                break;
            rs__cond_wait(&j->work, &j->mu);
            continue;
        }
        int64_t oldest = j->unsynced ? j->unsynced_since : j->pending_since;
        if (have && j->pending_since < oldest)
            oldest = j->pending_since;
        int64_t now = rs__now_ns();
        bool sync_due = j->closing || now >= oldest + SYNC_DELAY_NS;
        if (!sync_due && j->pending.len < WRITE_CHUNK) {
            rs__cond_wait_until(&j->work, &j->mu, oldest + SYNC_DELAY_NS);
            continue;
        }
        /* Take what waits, write it, and sync when due. */
        rs__buf taken = j->pending;
        j->pending = j->writing;
        j->writing = taken;
        uint64_t records = j->pending_records;
        j->pending_records = 0;
        j->chunk_signalled = false;
        if (have && !j->unsynced) {
            j->unsynced = true;
            j->unsynced_since = j->pending_since;
        }
        rs__cond_broadcast(&j->room);
        rs__mutex_unlock(&j->mu);

        size_t done = 0;
        int err = write_all(j->fd, j->writing.data, j->writing.len, &done);
        bool in_sync = false, synced = false;
        uint64_t written = err ? count_lines(j->writing.data, done) : records;
        if (!err && sync_due) {
            err = sync_file(j->fd);
            in_sync = err != 0;
            synced = !err;
        } else if (err) {
            /* What did reach the file stays there: make it durable if the disk lets us. */
            synced = sync_file(j->fd) == 0;
        }
        j->writing.len = 0;

        rs__mutex_lock(&j->mu);
        j->written += written;
        if (synced) {
            j->synced = j->written;
            j->unsynced = false;
        }
        if (err && !j->failed) {
            j->failed = err;
            j->failed_in_sync = in_sync;
            j->unsynced = false;
            rs__cond_broadcast(&j->room);
            if (j->on_failure) {
                rs__mutex_unlock(&j->mu);
                j->on_failure(j->failure_arg);
                rs__mutex_lock(&j->mu);
            }
        }
    }
    rs__mutex_unlock(&j->mu);
    return NULL;
}

int rs__journal_append(rs__journal *j, const rs_foreach_record *r)
{
    rs__mutex_lock(&j->mu);
    j->appended++;
    while (!j->failed && j->pending.len >= PENDING_MAX)
        rs__cond_wait(&j->room, &j->mu);
    if (j->failed) {
        rs__mutex_unlock(&j->mu);
        return RS_EIO;
    }
    bool was_empty = j->pending.len == 0;
    if (encode_record(&j->pending, r, &j->seconds)) {
        /* A record that cannot be journaled ends the journal, as a full disk would. */
        j->failed = ENOMEM;
        rs__cond_broadcast(&j->room);
        rs__cond_signal(&j->work);
        rs__mutex_unlock(&j->mu);
        return RS_EIO;
    }
    j->pending_records++;
    if (was_empty) {
        j->pending_since = rs__now_ns();
        rs__cond_signal(&j->work);
    } else if (j->pending.len >= WRITE_CHUNK && !j->chunk_signalled) {
        j->chunk_signalled = true;
        rs__cond_signal(&j->work);
    }
    rs__mutex_unlock(&j->mu);
    return 0;
}

bool rs__journal_done(const rs__journal *j, uint64_t index)
{
    return idx_get(&j->done, index);
}

uint64_t rs__journal_next_undone(const rs__journal *j, uint64_t index)
{
    return idx_next_clear(&j->done, index);
}

static void journal_free(rs__journal *j)
{
    if (j->fd >= 0)
        close(j->fd);
    idx_free(&j->done);
    rs__buf_free(&j->pending);
    rs__buf_free(&j->writing);
    rs__free(j->path);
    rs__cond_destroy(&j->room);
    rs__cond_destroy(&j->work);
    rs__mutex_destroy(&j->mu);
    rs__free(j);
}

int rs__journal_close(rs__journal *j, uint64_t *unjournaled, rs__msg *msg)
{
    if (unjournaled)
        *unjournaled = 0;
    if (!j)
        return 0;
    if (j->writer_started) {
        rs__mutex_lock(&j->mu);
        j->closing = true;
        rs__cond_signal(&j->work);
        rs__mutex_unlock(&j->mu);
        rs__thread_join(j->writer);
    }
    /* The writer has ended: its fields are ours now. */
    uint64_t lost = j->appended - j->synced;
    if (unjournaled)
        *unjournaled = lost;
    int rc = j->failed ? RS_EIO : 0;
    if (rc && msg)
        rs__msg_set(msg, RS_EIO, "cannot %s the journal '%s': %s",
                    j->failed_in_sync ? "sync" : "write", j->path,
                    j->failed == ENOMEM ? "out of memory" : strerror(j->failed));
    journal_free(j);
    return rc;
}

/* ---- opening ---------------------------------------------------------------------------- */

/* Syncs the directory of path, so that a file just created there survives a crash. */
static void sync_directory(const char *path)
{
    const char *slash = strrchr(path, '/');
    char *dir =
        slash ? rs__strndup(path, slash == path ? 1 : (size_t)(slash - path)) : rs__strdup(".");
    int fd = dir ? open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC) : -1;
    if (fd >= 0) {
        fsync(fd);
        close(fd);
    }
    rs__free(dir);
}

/* Empties the file and writes the header h, synced. 0 or RS_ESYSTEM / RS_ENOMEM. */
static int start_anew(rs__journal *j, const rs_value *h, rs__msg *msg)
{
    rs__buf line = {0};
    int rc = rs__json_encode_ex(h, RS_JSON_REPAIR, "header", 0, &line, NULL);
    if (!rc)
        rc = rs__buf_putc(&line, '\n');
    if (rc) {
        rs__buf_free(&line);
        return rs__msg_set(msg, RS_ENOMEM, "out of memory");
    }
    size_t done;
    int err = ftruncate(j->fd, 0) ? errno : write_all(j->fd, line.data, line.len, &done);
    if (!err)
        err = sync_file(j->fd);
    rs__buf_free(&line);
    if (err)
        return rs__msg_set(msg, RS_ESYSTEM, "cannot write the journal '%s': %s", j->path,
                           strerror(err));
    return 0;
}

/* Reads the records after the header (resume): notes done indexes; truncates a torn last
 * line. *records gets the number of complete record lines. */
static int read_records(rs__journal *j, const rs__journal_spec *spec, lines *l, uint64_t *records,
                        rs__msg *msg)
{
    char *line;
    size_t len;
    bool complete;
    uint64_t offset;
    int err = 0, rc;
    *records = 0;
    while ((rc = next_line(l, &line, &len, &complete, &offset, &err)) == 1) {
        if (!complete) {
            /* Cut short by a crash: dropped, and its item runs again. */
            if (ftruncate(j->fd, (off_t)offset) != 0)
                return rs__msg_set(msg, RS_ESYSTEM, "cannot truncate the journal '%s': %s", j->path,
                                   strerror(errno));
            if (spec->on_notice) {
                char *note = rs__format("the journal '%s' ended in a line cut short (%zu "
                                        "bytes, line %" PRIu64 "), left by a crash: it was "
                                        "dropped, and its item runs again",
                                        j->path, len, l->number);
                spec->on_notice(note ? note : "the journal's torn last line was dropped",
                                spec->notice_userdata);
                rs__free(note);
            }
            break;
        }
        uint64_t index;
        int status;
        char why[256];
        rc = record_head(line, len, &index, &status, why);
        if (rc == RS_ENOMEM)
            return rs__msg_set(msg, RS_ENOMEM, "out of memory");
        if (rc)
            return rs__msg_set(msg, RS_EINVAL,
                               "line %" PRIu64 " of the journal '%s' is not a record: %s",
                               l->number, j->path, why);
        /* The latest line for an index is its record. */
        bool done = spec->mode == RS_JOURNAL_RESUME_FAILED ? status == RS_ITEM_OK
                                                           : status != RS_ITEM_CANCELLED;
        if (idx_put(&j->done, index, done))
            return rs__msg_set(msg, RS_ENOMEM, "out of memory");
        (*records)++;
    }
    if (rc < 0)
        return rs__msg_set(msg, rc, "cannot read the journal '%s': %s", j->path, strerror(err));
    return 0;
}

/* Opens (creating it if need be), checks and locks the file. */
static int open_file(rs__journal *j, bool *created, struct stat *st, rs__msg *msg)
{
    /* O_NONBLOCK: opening a FIFO or a device must not wait; it is refused below. */
    int flags = O_RDWR | O_APPEND | O_CLOEXEC | O_NONBLOCK;
    *created = false;
    j->fd = open(j->path, flags);
    if (j->fd < 0 && errno == ENOENT) {
        j->fd = open(j->path, flags | O_CREAT | O_EXCL, 0666);
        *created = j->fd >= 0;
        if (j->fd < 0 && errno == EEXIST)
            j->fd = open(j->path, flags);
    }
    if (j->fd < 0)
        return rs__msg_set(msg, RS_ESYSTEM, "cannot open the journal '%s': %s", j->path,
                           strerror(errno));
    if (fstat(j->fd, st) != 0)
        return rs__msg_set(msg, RS_ESYSTEM, "cannot open the journal '%s': %s", j->path,
                           strerror(errno));
    if (!S_ISREG(st->st_mode))
        return rs__msg_set(msg, RS_EINVAL,
                           "the journal '%s' is not a regular file (a journal must be one, to "
                           "be read back and synced)",
                           j->path);
    fcntl(j->fd, F_SETFL, flags & ~O_NONBLOCK);
    if (flock(j->fd, LOCK_EX | LOCK_NB) != 0)
        return rs__msg_set(msg, errno == EWOULDBLOCK ? RS_EBUSY : RS_ESYSTEM,
                           errno == EWOULDBLOCK ? "the journal '%s' is in use by another run"
                                                : "cannot lock the journal '%s': %s",
                           j->path, strerror(errno));
    return 0;
}

/* Whether text[0..len) could be the start of a header cut short (a crash while the journal
 * was created): a prefix of the header's opening, or more of it without a newline. */
static bool torn_header(const char *text, size_t len)
{
    size_t m = sizeof HEADER_MAGIC - 1;
    return memcmp(text, HEADER_MAGIC, len < m ? len : m) == 0;
}

/* Validates, reads and prepares the open file (see rs_journal_mode). */
static int prepare(rs__journal *j, const rs__journal_spec *spec, bool created,
                   const struct stat *st, rs__msg *msg)
{
    rs_value *now = make_header(spec);
    if (!now)
        return rs__msg_set(msg, RS_ENOMEM, "out of memory");
    lines l = {.fd = j->fd};
    int rc = 0, err = 0;
    bool anew = created || st->st_size == 0;
    char *line;
    size_t len;
    bool complete;
    uint64_t offset;
    int got = anew ? 0 : next_line(&l, &line, &len, &complete, &offset, &err);
    rs_value *h = NULL;
    if (got < 0) {
        rc = rs__msg_set(msg, got, "cannot read the journal '%s': %s", j->path, strerror(err));
    } else if (anew || got == 0) {
        anew = true;
    } else if (!complete) {
        if (len <= HEADER_MAX && torn_header(line, len)) {
            notice(spec,
                   "the journal '%s' holds only part of its header, left by a crash while it "
                   "was created: it is started anew",
                   j->path);
            anew = true;
        } else {
            rc = rs__msg_set(msg, RS_EINVAL,
                             "'%s' is not a runspace journal: it has no header line; remove it "
                             "or choose another file",
                             j->path);
        }
    } else if (len > HEADER_MAX || rs_json_decode(line, len, &h, NULL) != 0) {
        rc = rs__msg_set(msg, RS_EINVAL,
                         "'%s' is not a runspace journal: its first line is not a journal "
                         "header; remove it or choose another file",
                         j->path);
    } else if (!(rc = check_format(j->path, h, msg))) {
        if (spec->mode != RS_JOURNAL_NEW) {
            uint64_t records;
            rc = check_run(spec, h, now, msg);
            if (!rc)
                rc = read_records(j, spec, &l, &records, msg);
        } else {
            /* A new run replaces a journal without records; one with records if forced. */
            got = next_line(&l, &line, &len, &complete, &offset, &err);
            if (got < 0)
                rc = rs__msg_set(msg, got, "cannot read the journal '%s': %s", j->path,
                                 strerror(err));
            else if (got == 1 && complete && !spec->force)
                rc = rs__msg_set(msg, RS_EEXIST, "the journal '%s' already holds records", j->path);
            else
                anew = true;
        }
    }
    rs_value_destroy(h);
    if (!rc && anew) {
        if (!created && st->st_size == 0 && spec->mode != RS_JOURNAL_NEW)
            notice(spec, "the journal '%s' is empty: every input runs", j->path);
        rc = start_anew(j, now, msg);
        if (!rc && created)
            sync_directory(j->path);
    }
    rs__free(l.buf);
    rs_value_destroy(now);
    return rc;
}

int rs__journal_open(const rs__journal_spec *spec, rs__journal **out, rs__msg *msg)
{
    *out = NULL;
    rs__journal *j = rs__calloc(1, sizeof *j);
    if (!j)
        return rs__msg_set(msg, RS_ENOMEM, "out of memory");
    j->fd = -1;
    j->mode = spec->mode;
    j->on_failure = spec->on_failure;
    j->failure_arg = spec->failure_arg;
    j->path = rs__strdup(spec->path);
    if (!j->path || rs__mutex_init(&j->mu) || rs__cond_init(&j->work) || rs__cond_init(&j->room)) {
        /* The primitives that did initialise are plain memory on Linux (no resources). */
        rs__free(j->path);
        rs__free(j);
        return rs__msg_set(msg, RS_ENOMEM, "out of memory");
    }
    bool created;
    struct stat st;
    int rc = open_file(j, &created, &st, msg);
    if (!rc)
        rc = prepare(j, spec, created, &st, msg);
    if (!rc && rs__thread_create(&j->writer, writer_main, j, NULL))
        rc = rs__msg_set(msg, RS_ESYSTEM, "cannot start the journal's thread: %s", strerror(errno));
    if (rc) {
        journal_free(j);
        return rc;
    }
    j->writer_started = true;
    *out = j;
    return 0;
}

/* ---- reading a journal (rs_journal_read) ------------------------------------------------ */

/* The indexes that have more than one line, with the number of their latest line: an
 * open-addressing table keyed by index + 1 (0 marks a free slot). */
typedef struct dups {
    uint64_t *keys, *lines;
    size_t cap, count;
} dups;

static size_t dup_slot(const dups *d, uint64_t key)
{
    size_t i = (size_t)((key * 0x9e3779b97f4a7c15ull) >> 17) & (d->cap - 1);
    while (d->keys[i] && d->keys[i] != key)
        i = (i + 1) & (d->cap - 1);
    return i;
}

static int dup_put(dups *d, uint64_t index, uint64_t line)
{
    if (2 * (d->count + 1) > d->cap) {
        dups bigger = {.cap = d->cap ? d->cap * 2 : 64};
        bigger.keys = rs__calloc(bigger.cap, sizeof *bigger.keys);
        bigger.lines = rs__calloc(bigger.cap, sizeof *bigger.lines);
        if (!bigger.keys || !bigger.lines) {
            rs__free(bigger.keys);
            rs__free(bigger.lines);
            return RS_ENOMEM;
        }
        for (size_t i = 0; i < d->cap; i++) {
            if (d->keys[i]) {
                size_t k = dup_slot(&bigger, d->keys[i]);
                bigger.keys[k] = d->keys[i];
                bigger.lines[k] = d->lines[i];
            }
        }
        bigger.count = d->count;
        rs__free(d->keys);
        rs__free(d->lines);
        *d = bigger;
    }
    size_t k = dup_slot(d, index + 1);
    if (!d->keys[k])
        d->count++;
    d->keys[k] = index + 1;
    d->lines[k] = line;
    return 0;
}

/* The latest line of index if it has more than one, else 0. */
static uint64_t dup_latest(const dups *d, uint64_t index)
{
    if (!d->count)
        return 0;
    size_t k = dup_slot(d, index + 1);
    return d->keys[k] ? d->lines[k] : 0;
}

/* One pass over the journal's lines: the header checked, then fn(line...) per complete
 * record line. *torn is set when the last line is cut short. */
typedef int (*line_fn)(void *ctx, const char *line, size_t len, uint64_t number, rs__msg *msg);

static int each_record(int fd, const char *path, line_fn fn, void *ctx, bool *torn, rs__msg *msg)
{
    lines l = {.fd = fd};
    char *line;
    size_t len;
    bool complete;
    uint64_t offset;
    int err = 0, rc = 0, got;
    while ((got = next_line(&l, &line, &len, &complete, &offset, &err)) == 1) {
        if (l.number == 1) {
            rs_value *h = NULL;
            if (!complete || len > HEADER_MAX || rs_json_decode(line, len, &h, NULL) != 0)
                rc = rs__msg_set(msg, RS_EINVAL,
                                 "'%s' is not a runspace journal: its first line is not a "
                                 "journal header",
                                 path);
            else
                rc = check_format(path, h, msg);
            rs_value_destroy(h);
        } else if (!complete) {
            *torn = true;
        } else {
            rc = fn(ctx, line, len, l.number, msg);
        }
        if (rc)
            break;
    }
    if (got < 0)
        rc = rs__msg_set(msg, got, "cannot read the journal '%s': %s", path, strerror(err));
    else if (!rc && l.number == 0)
        rc = rs__msg_set(msg, RS_EINVAL, "'%s' is not a runspace journal: it is empty", path);
    rs__free(l.buf);
    return rc;
}

typedef struct reading {
    const char *path;
    idxset seen;
    dups dups;
    uint64_t highest;
    rs_journal_summary sum;
    rs_foreach_record_fn on_record;
    void *userdata;
} reading;

static int head_of(reading *r, const char *line, size_t len, uint64_t number, uint64_t *index,
                   int *status, rs__msg *msg)
{
    char why[256];
    int rc = record_head(line, len, index, status, why);
    if (rc == RS_ENOMEM)
        return rs__msg_set(msg, RS_ENOMEM, "out of memory");
    if (rc)
        return rs__msg_set(msg, RS_EINVAL,
                           "line %" PRIu64 " of the journal '%s' is not a record: %s", number,
                           r->path, why);
    return 0;
}

/* Pass 1: which indexes have lines, and the latest line of those that have several. */
static int first_pass(void *ctx, const char *line, size_t len, uint64_t number, rs__msg *msg)
{
    reading *r = ctx;
    uint64_t index;
    int status;
    int rc = head_of(r, line, len, number, &index, &status, msg);
    if (rc)
        return rc;
    r->sum.lines++;
    if (index > r->highest)
        r->highest = index;
    if (idx_get(&r->seen, index))
        rc = dup_put(&r->dups, index, number);
    else
        rc = idx_put(&r->seen, index, true);
    return rc ? rs__msg_set(msg, RS_ENOMEM, "out of memory") : 0;
}

/* A number of the decoded record m, or 0. */
static double number_of(const rs_value *m, const char *key)
{
    const rs_value *v = rs_map_get(m, key);
    rs_type t = rs_value_type(v);
    return v && (t == RS_TINT || t == RS_TDOUBLE) ? rs_value_get_double(v) : 0;
}

/* Pass 2: the final records, counted and handed over. */
static int second_pass(void *ctx, const char *line, size_t len, uint64_t number, rs__msg *msg)
{
    reading *r = ctx;
    uint64_t index;
    int status;
    int rc = head_of(r, line, len, number, &index, &status, msg);
    if (rc)
        return rc;
    uint64_t latest = dup_latest(&r->dups, index);
    if (latest && latest != number)
        return 0; /* superseded by a later line */
    r->sum.records++;
    uint64_t *counts[] = {&r->sum.succeeded, &r->sum.failed, &r->sum.timed_out, &r->sum.cancelled};
    (*counts[status])++;
    if (!r->on_record)
        return 0;
    rs_value *m = NULL;
    rs_errinfo err;
    rc = rs_json_decode(line, len, &m, &err);
    if (rc || rs_value_type(m) != RS_TMAP) {
        rs_value_destroy(m);
        if (rc == RS_ENOMEM)
            return rs__msg_set(msg, RS_ENOMEM, "out of memory");
        return rs__msg_set(msg, RS_EINVAL,
                           "line %" PRIu64 " of the journal '%s' is not a record: %s", number,
                           r->path, rc ? err.message : "it is not an object");
    }
    rs_value *none = rs_value_null(), *empty = NULL;
    const rs_value *input = rs_map_get(m, "input");
    const rs_value *output = rs_map_get(m, "output");
    const rs_value *error = rs_map_get(m, "error");
    if (rs_value_type(output) != RS_TARRAY)
        output = empty = rs_value_array();
    if (!output) {
        rs_value_destroy(m);
        return rs__msg_set(msg, RS_ENOMEM, "out of memory");
    }
    rs_foreach_record rec = {.index = index,
                             .input = input ? input : none,
                             .status = (rs_item_status)status,
                             .output = output,
                             .error = status == RS_ITEM_OK ? NULL
                                      : rs_value_type(error) == RS_TSTRING
                                          ? rs_value_get_string(error, NULL)
                                          : "failed",
                             .duration = number_of(m, "duration_ms") * 1e-3,
                             .runspace_id = (uint64_t)number_of(m, "runspace"),
                             .attempts = (int)number_of(m, "attempts"),
                             .start = number_of(m, "start")};
    r->on_record(&rec, r->userdata);
    rs_value_destroy(empty);
    rs_value_destroy(none);
    rs_value_destroy(m);
    return 0;
}

int rs_journal_read(const char *path, rs_foreach_record_fn on_record, void *userdata,
                    rs_journal_summary *summary, rs_errinfo *err)
{
    if (summary)
        memset(summary, 0, sizeof *summary);
    if (!path)
        return rs__errinfo_set(err, RS_EINVAL, "no journal given");
    rs__msg msg = {0};
    reading r = {.path = path, .on_record = on_record, .userdata = userdata};
    bool torn = false;
    int rc = 0;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0)
        rc = rs__msg_set(&msg, RS_ESYSTEM, "cannot open the journal '%s': %s", path,
                         strerror(errno));
    else if (!S_ISREG(st.st_mode))
        rc = rs__msg_set(&msg, RS_EINVAL, "the journal '%s' is not a regular file", path);
    else
        fcntl(fd, F_SETFL, O_RDONLY);
    if (!rc)
        rc = each_record(fd, path, first_pass, &r, &torn, &msg);
    if (!rc && lseek(fd, 0, SEEK_SET) != 0)
        rc = rs__msg_set(&msg, RS_ESYSTEM, "cannot read the journal '%s': %s", path,
                         strerror(errno));
    if (!rc)
        rc = each_record(fd, path, second_pass, &r, &torn, &msg);
    if (fd >= 0)
        close(fd);
    if (!rc && summary) {
        r.sum.torn = torn;
        r.sum.missing = r.seen.count ? r.highest + 1 - r.seen.count : 0;
        *summary = r.sum;
    }
    if (rc)
        rs__errinfo_set(err, rc, "%s", rs__msg_get(&msg));
    idx_free(&r.seen);
    rs__free(r.dups.keys);
    rs__free(r.dups.lines);
    rs__msg_free(&msg);
    return rc;
}
