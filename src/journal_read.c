/*
 * journal_read.c -- rs_journal_read: a journal's final records, the latest line for each
 * index, in two passes over the file. The first notes which indexes have lines (a set that
 * follows the gaps) and, for the few that have several, the number of their latest; the
 * second hands over the lines that are final. Memory does not follow the records.
 */
#include "journal_int.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

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
    rs__lines l = {.fd = fd};
    char *line;
    size_t len;
    bool complete;
    uint64_t offset;
    int err = 0, rc = 0, got;
    while ((got = rs__lines_next(&l, &line, &len, &complete, &offset, &err)) == 1) {
        if (l.number == 1) {
            rs_value *h = NULL;
            if (!complete || len > RS__JOURNAL_HEADER_MAX ||
                rs_json_decode(line, len, &h, NULL) != 0)
                rc = rs__msg_set(msg, RS_EINVAL,
                                 "'%s' is not a runspace journal: its first line is not a "
                                 "journal header",
                                 path);
            else
                rc = rs__journal_check_format(path, h, msg);
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
    rs__idxset seen;
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
    int rc = rs__journal_record_head(line, len, index, status, why);
    if (rc == RS__JOURNAL_BLANK)
        return rc;
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
        return rc == RS__JOURNAL_BLANK ? 0 : rc;
    r->sum.lines++;
    if (index > r->highest)
        r->highest = index;
    if (rs__idxset_has(&r->seen, index))
        rc = dup_put(&r->dups, index, number);
    else
        rc = rs__idxset_put(&r->seen, index, true);
    if (rc)
        return rs__msg_set(msg, rc, "%s",
                           rc == RS_ENOMEM ? "out of memory" : "an index is out of range");
    return 0;
}

/* A number of the decoded record m, or 0. */
static double number_of(const rs_value *m, const char *key)
{
    const rs_value *v = rs_map_get(m, key);
    rs_type t = rs_value_type(v);
    return v && (t == RS_TINT || t == RS_TDOUBLE) ? rs_value_get_double(v) : 0;
}

/* A count of the decoded record m (attempts, runspace): a number from 0 to max, else 0 (a
 * cast of a larger double would be undefined). */
static double count_of(const rs_value *m, const char *key, double max)
{
    double d = number_of(m, key);
    return d >= 0 && d <= max ? d : 0;
}

/* Pass 2: the final records, counted and handed over. */
static int second_pass(void *ctx, const char *line, size_t len, uint64_t number, rs__msg *msg)
{
    reading *r = ctx;
    uint64_t index;
    int status;
    int rc = head_of(r, line, len, number, &index, &status, msg);
    if (rc)
        return rc == RS__JOURNAL_BLANK ? 0 : rc;
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
                             .runspace_id = (uint64_t)count_of(m, "runspace", 1.8e19),
                             .attempts = (int)count_of(m, "attempts", 2147483647.0),
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
    rs__idxset_free(&r.seen);
    rs__free(r.dups.keys);
    rs__free(r.dups.lines);
    rs__msg_free(&msg);
    return rc;
}
