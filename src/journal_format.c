/*
 * journal_format.c -- the lines of a journal: reading them through a buffer, the record lines
 * (written with little work per record, since a record is journaled as it is delivered, on
 * the run thread; read back by their head without a JSON parser), and the header that names
 * a run. The format is documented in runspace.h (rs_journal_mode).
 */
#include "journal_int.h"

#include "json.h"
#include "json_check.h"
#include "thread.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define READ_CHUNK ((size_t)1 << 20)
#define READ_AHEAD ((size_t)16 << 20) /* asked of the disk beyond what was read */

static const char *const status_names[] = {"ok", "error", "timeout", "cancelled"};

/* ---- reading lines ---------------------------------------------------------------------- */

int rs__lines_next(rs__lines *l, char **line, size_t *len, bool *complete, uint64_t *offset,
                   int *err)
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
            /* Ask for what comes after this read now, without waiting for it: the disk
             * reads ahead while the lines just read are checked. */
            uint64_t next = l->base + l->end + (uint64_t)got;
            if (next >= l->ahead) {
                posix_fadvise(l->fd, (off_t)next, (off_t)READ_AHEAD, POSIX_FADV_WILLNEED);
                l->ahead = next + READ_AHEAD / 2;
            }
            l->end += (size_t)got;
        } else if (got == 0) {
            l->eof = true;
        } else if (errno != EINTR) {
            *err = errno;
            return RS_ESYSTEM;
        }
    }
}

/* ---- record lines --------------------------------------------------------------------------- */

/* Parses the head of a record line as this file writes it, {"index":N,"status":"S".
 * Returns 1 with *index and *status set, -1 when N is a number of digits above
 * RS__IDXSET_MAX (however many), or 0 for anything else (the caller then asks a JSON
 * parser). It does not look past the head: the caller checks the whole line. */
static int parse_head(const char *p, size_t len, uint64_t *index, int *status)
{
    static const char a[] = "{\"index\":", b[] = ",\"status\":\"";
    size_t i = sizeof a - 1;
    if (len < i + 1 || memcmp(p, a, i) != 0)
        return 0;
    uint64_t v = 0;
    bool above = false;
    size_t first = i;
    for (; i < len && p[i] >= '0' && p[i] <= '9'; i++) {
        v = v * 10 + (uint64_t)(p[i] - '0');
        if (v > RS__IDXSET_MAX) {
            above = true; /* stays above: no overflow past this point matters */
            v = RS__IDXSET_MAX + 1;
        }
    }
    if (i == first || (p[first] == '0' && i > first + 1))
        return 0;
    if (i < len && (p[i] == '.' || p[i] == 'e' || p[i] == 'E'))
        return 0;
    if (above)
        return -1;
    if (len - i < sizeof b - 1 || memcmp(p + i, b, sizeof b - 1) != 0)
        return 0;
    i += sizeof b - 1;
    static const size_t name_len[] = {2, 5, 7, 9}; /* of status_names */
    for (int k = 0; k < 4; k++) {
        size_t n = name_len[k];
        if (len - i > n && p[i] == status_names[k][0] && memcmp(p + i, status_names[k], n) == 0 &&
            p[i + n] == '"') {
            *index = v;
            *status = k;
            return 1;
        }
    }
    return 0;
}

/* Whether a line holds nothing but blanks. */
static bool blank(const char *p, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        if (p[i] != ' ' && p[i] != '\t' && p[i] != '\r')
            return false;
    }
    return true;
}

/* Whether the line is valid JSON in the shape the journal writes a record: its keys, in
 * their order and without blanks, each with one value that rs__json_check_prefix takes.
 * The fixed text is compared, not parsed, and only the values are checked, which makes the
 * check of a resume's ten million lines several times faster than a check of every byte.
 * False for any other line (the whole line is then checked). */
/* Whether q[0..n) is lit[0..n), for a literal of 8 to 16 bytes: two loads of 8 bytes each
 * side, inlined (a call to memcmp per key costs more than the rest of the check). */
static inline bool same8_16(const char *q, const char *lit, size_t n)
{
    uint64_t a, b, c, d;
    memcpy(&a, q, 8);
    memcpy(&b, lit, 8);
    memcpy(&c, q + n - 8, 8);
    memcpy(&d, lit + n - 8, 8);
    return a == b && c == d;
}

static bool record_shape(const char *p, size_t len)
{
    const char *q = p, *end = p + len;
    size_t used;
/* The key (a literal: its comparison is inlined), then one value. */
#define KEY_VALUE(key)                                                                             \
    ((size_t)(end - q) > sizeof key - 1 && same8_16(q, key, sizeof key - 1) &&                     \
     (q += sizeof key - 1, rs__json_check_prefix(q, (size_t)(end - q), &used)) &&                  \
     (q += used, true))
    bool ok = KEY_VALUE("{\"index\":") && KEY_VALUE(",\"status\":") && KEY_VALUE(",\"start\":") &&
              KEY_VALUE(",\"input\":") && KEY_VALUE(",\"output\":") && KEY_VALUE(",\"error\":") &&
              KEY_VALUE(",\"duration_ms\":") && KEY_VALUE(",\"attempts\":") &&
              KEY_VALUE(",\"runspace\":");
#undef KEY_VALUE
    return ok && end - q == 1 && *q == '}';
}

#define INDEX_RANGE "its index is not from 0 to 2^36"

/* The one rule of what a record line is, for a resume and for rs_journal_read alike: a
 * blank line is no record (RS__JOURNAL_BLANK); anything else must be a JSON object that
 * rs_json_decode takes, with an integer "index" from 0 to 2^36 and a "status" that is one of
 * the four. The whole line is checked by rs__json_check (one pass, no allocation: a resume
 * of ten million lines stays fast), so a line that a full decode refuses -- bytes that are
 * not UTF-8, a NUL or zeros left by a power loss, a line that merely starts and ends like a
 * record -- is refused here too. The head is then read as the journal writes it, or, for
 * lines written by other hands, from the decoded line. */
int rs__journal_record_head(const char *p, size_t len, uint64_t *index, int *status, char *why)
{
    if (blank(p, len))
        return RS__JOURNAL_BLANK;
    int head = parse_head(p, len, index, status);
    if (head < 0) {
        snprintf(why, 256, INDEX_RANGE);
        return RS_EINVAL;
    }
    size_t at;
    const char *what;
    if (!record_shape(p, len) && !rs__json_check(p, len, &at, &what)) {
        snprintf(why, 256, "it is not valid JSON (%s at byte %zu)", what, at + 1);
        return RS_EINVAL;
    }
    if (head > 0)
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
    rs_type it = rs_value_type(iv);
    rc = RS_EINVAL;
    if (rs_value_type(v) != RS_TMAP)
        snprintf(why, 256, "it is not a JSON object");
    else if (it != RS_TINT && it != RS_TDOUBLE)
        snprintf(why, 256, "it has no index");
    else if (it == RS_TDOUBLE || rs_value_get_int(iv) < 0 ||
             (uint64_t)rs_value_get_int(iv) > RS__IDXSET_MAX)
        snprintf(why, 256, INDEX_RANGE);
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

/* Appends a start time (seconds since the epoch) with microseconds (room reserved). */
static void put_start(rs__buf *b, double t, rs__seconds_text *cache)
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
int rs__journal_encode_record(rs__buf *b, const rs_foreach_record *r, rs__seconds_text *cache)
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

/* A name (the input source, the command) as the header holds it: valid UTF-8 that says
 * every byte, so that a name that is not UTF-8 (a path is any bytes) is neither refused nor
 * repaired into one that another name shares. A backslash becomes "\\", a byte that is not
 * part of valid UTF-8 "\xNN" (two hex digits), everything else stays: one name, one text,
 * and the same text each time, so the header of a resume compares like with like. NULL for
 * NULL, or when out of memory (*oom set). */
static rs_value *name_value(const char *name, bool *oom)
{
    if (!name)
        return rs_value_null();
    rs__buf b = {0};
    size_t len = strlen(name);
    int rc = 0;
    for (size_t i = 0; !rc && i < len;) {
        size_t at, n = len - i;
        if (rs__json_check_utf8(name + i, n, &at)) {
            at = n;
        }
        /* name[i..i+at) is valid UTF-8; backslashes in it are doubled. */
        for (size_t k = 0; !rc && k < at; k++) {
            rc =
                name[i + k] == '\\' ? rs__buf_append(&b, "\\\\", 2) : rs__buf_putc(&b, name[i + k]);
        }
        i += at;
        if (!rc && i < len) {
            char esc[5];
            snprintf(esc, sizeof esc, "\\x%02x", (unsigned char)name[i]);
            rc = rs__buf_append(&b, esc, 4);
            i++;
        }
    }
    rs_value *v = rc ? NULL : rs_value_stringn(b.data ? b.data : "", b.len);
    rs__buf_free(&b);
    if (!v)
        *oom = true;
    return v;
}

rs_value *rs__journal_header(const rs__journal_spec *spec)
{
    rs_value *h = rs_value_map();
    const char *texts[] = {spec->script, NULL, spec->arguments, spec->parameters, spec->session};
    bool oom = false;
    int rc = h ? 0 : RS_ENOMEM;
    if (!rc)
        rc = rs_map_set(h, "runspace_journal", rs_value_int(RS__JOURNAL_FORMAT));
    if (!rc)
        rc = rs_map_set(h, "created", rs_value_double(floor(rs__wall_time() * 1e3) / 1e3));
    if (!rc)
        rc = rs_map_set(h, "source", name_value(spec->source, &oom));
    for (size_t i = 0; !rc && i < RS__ARRAY_SIZE(texts); i++)
        rc = rs_map_set(h, run_fields[i],
                        i == 1     ? name_value(spec->command, &oom)
                        : texts[i] ? rs_value_string(texts[i])
                                   : rs_value_null());
    if (!rc)
        rc = rs_map_set(h, "timeout", rs_value_double(spec->timeout));
    if (!rc)
        rc = rs_map_set(h, "retries", rs_value_int(spec->retries));
    if (rc || oom) {
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

/* Checks that the decoded first line h is a header this version reads: 0, or RS_EINVAL
 * with the reason in msg. */
int rs__journal_check_format(const char *path, const rs_value *h, rs__msg *msg)
{
    const rs_value *version = rs_map_get(h, "runspace_journal");
    if (rs_value_type(h) != RS_TMAP || rs_value_type(version) != RS_TINT)
        return rs__msg_set(msg, RS_EINVAL,
                           "'%s' is not a runspace journal: its first line is not a journal "
                           "header; remove it or choose another file",
                           path);
    if (rs_value_get_int(version) != RS__JOURNAL_FORMAT)
        return rs__msg_set(msg, RS_EINVAL,
                           "the journal '%s' has format %" PRId64
                           ", which this version of runspace does not read (it reads %d)",
                           path, rs_value_get_int(version), RS__JOURNAL_FORMAT);
    return 0;
}

static bool is_number(const rs_value *v)
{
    return rs_value_type(v) == RS_TINT || rs_value_type(v) == RS_TDOUBLE;
}

/* Numbers compare by value, whatever their type: a header written by hand (or by another
 * JSON tool) may say 0 where this one wrote 0.0, and means the same; and they are shown the
 * way this run's header shows its own, as doubles for the timeout and integers for the
 * retries. */
bool rs__journal_same_run(const rs_value *h, const rs_value *now, char *why)
{
    for (size_t i = 0; i < RS__ARRAY_SIZE(run_fields); i++) {
        const rs_value *a = rs_map_get(h, run_fields[i]);
        const rs_value *b = rs_map_get(now, run_fields[i]);
        rs_value *shown = NULL;
        bool same;
        if (is_number(a) && is_number(b)) {
            double x = rs_value_get_double(a);
            same = x == rs_value_get_double(b);
            if (rs_value_type(a) != rs_value_type(b))
                shown = rs_value_type(b) == RS_TDOUBLE || x != floor(x) || fabs(x) > 9e18
                            ? rs_value_double(x)
                            : rs_value_int((int64_t)x);
        } else {
            shown = a ? NULL : rs_value_null();
            same = rs_value_equal(a ? a : shown, b);
        }
        if (!same)
            describe_difference(run_fields[i], shown ? shown : a, b, why);
        rs_value_destroy(shown);
        if (!same)
            return false;
    }
    return true;
}
