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
 * record's head ({"index":N,"status":"S") parsed without a JSON parser (journal_format.c);
 * lines written by other hands fall back to one. Done indexes go to a set whose memory
 * follows the gaps (idxset.c). rs_journal_read, for readers of a journal, is in
 * journal_read.c.
 */
#include "journal_int.h"

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

#define SYNC_DELAY_NS 50000000        /* 50 ms */
#define WRITE_CHUNK ((size_t)1 << 20) /* write once this much waits, sync due or not */
#define PENDING_MAX ((size_t)8 << 20) /* append waits beyond this */

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

/* ---- the header ---------------------------------------------------------------------------- */

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

/* Checks that the journal's header h names the run of now (a header value): 0, or
 * RS_EINVAL with the reason in msg. Another run is accepted with force, and told. */
static int check_run(const rs__journal_spec *spec, const rs_value *h, const rs_value *now,
                     rs__msg *msg)
{
    char why[256];
    if (rs__journal_same_run(h, now, why))
        return 0;
    if (!spec->force)
        return rs__msg_set(msg, RS_EINVAL, "the journal '%s' belongs to another run: %s",
                           spec->path, why);
    notice(spec,
           "the journal '%s' belongs to another run (%s); its records count as this run's, as "
           "forced",
           spec->path, why);
    return 0;
}

/* ---- the journal ------------------------------------------------------------------------ */

struct rs__journal {
    char *path;
    int fd;
    rs_journal_mode mode;
    rs__idxset done; /* fixed after open */
    void (*on_failure)(void *arg);
    void *failure_arg;

    rs__mutex mu;
    rs__cond work; /* the writer has something to look at */
    rs__cond room; /* pending has room again (or the journal failed) */
    rs__buf pending;
    rs__seconds_text seconds; /* of the start times written into pending */
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
        if (j->writing.cap > 2 * WRITE_CHUNK)
            rs__buf_free(&j->writing); /* a burst is over: give its memory back */

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
    if (!r->input || !r->output || rs__journal_encode_record(&j->pending, r, &j->seconds)) {
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
    return rs__idxset_has(&j->done, index);
}

uint64_t rs__journal_next_undone(const rs__journal *j, uint64_t index)
{
    return rs__idxset_next_absent(&j->done, index);
}

static void journal_free(rs__journal *j)
{
    if (j->fd >= 0)
        close(j->fd);
    rs__idxset_free(&j->done);
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
static int read_records(rs__journal *j, const rs__journal_spec *spec, rs__lines *l,
                        uint64_t *records, rs__msg *msg)
{
    char *line;
    size_t len;
    bool complete;
    uint64_t offset;
    int err = 0, rc;
    *records = 0;
    while ((rc = rs__lines_next(l, &line, &len, &complete, &offset, &err)) == 1) {
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
        rc = rs__journal_record_head(line, len, &index, &status, why);
        if (rc == RS__JOURNAL_BLANK)
            continue;
        if (rc == RS_ENOMEM)
            return rs__msg_set(msg, RS_ENOMEM, "out of memory");
        if (rc)
            return rs__msg_set(msg, RS_EINVAL,
                               "line %" PRIu64 " of the journal '%s' is not a record: %s",
                               l->number, j->path, why);
        /* The latest line for an index is its record. */
        bool done = spec->mode == RS_JOURNAL_RESUME_FAILED ? status == RS_ITEM_OK
                                                           : status != RS_ITEM_CANCELLED;
        rc = rs__idxset_put(&j->done, index, done);
        if (rc)
            return rs__msg_set(msg, rc, "%s",
                               rc == RS_ENOMEM ? "out of memory" : "an index is out of range");
        (*records)++;
    }
    if (rc < 0)
        return rs__msg_set(msg, rc, "cannot read the journal '%s': %s", j->path, strerror(err));
    return 0;
}

#define NOT_REGULAR                                                                                \
    "the journal '%s' is not a regular file (a journal must be one, to be read back and synced)"

/* Opens (creating it if need be), checks and locks the file. What exists and is not a
 * regular file (a device, a FIFO, a directory) is refused before it is opened read-write,
 * since opening some devices so has effects of its own; the check is made again on the open
 * file, for what changed in between. A dangling symbolic link is a missing journal: the file
 * it names is created. */
static int open_file(rs__journal *j, bool *created, struct stat *st, rs__msg *msg)
{
    /* O_NONBLOCK: opening a FIFO or a device must not wait; it is refused below. */
    int flags = O_RDWR | O_APPEND | O_CLOEXEC | O_NONBLOCK;
    *created = false;
    if (stat(j->path, st) == 0 && !S_ISREG(st->st_mode))
        return rs__msg_set(msg, RS_EINVAL, NOT_REGULAR, j->path);
    j->fd = open(j->path, flags);
    if (j->fd < 0 && errno == ENOENT) {
        j->fd = open(j->path, flags | O_CREAT | O_EXCL, 0666);
        *created = j->fd >= 0;
        if (j->fd < 0 && errno == EEXIST) {
            struct stat link;
            j->fd = open(j->path, flags);
            if (j->fd < 0 && errno == ENOENT && lstat(j->path, &link) == 0 &&
                S_ISLNK(link.st_mode)) {
                /* A dangling link (O_EXCL does not follow one): create what it names. */
                j->fd = open(j->path, flags | O_CREAT, 0666);
                *created = j->fd >= 0;
            }
        }
    }
    if (j->fd < 0)
        return rs__msg_set(msg, RS_ESYSTEM, "cannot open the journal '%s': %s", j->path,
                           strerror(errno));
    if (fstat(j->fd, st) != 0)
        return rs__msg_set(msg, RS_ESYSTEM, "cannot open the journal '%s': %s", j->path,
                           strerror(errno));
    if (!S_ISREG(st->st_mode))
        return rs__msg_set(msg, RS_EINVAL, NOT_REGULAR, j->path);
    fcntl(j->fd, F_SETFL, flags & ~O_NONBLOCK);
    if (flock(j->fd, LOCK_EX | LOCK_NB) != 0)
        return rs__msg_set(msg, errno == EWOULDBLOCK ? RS_EBUSY : RS_ESYSTEM,
                           errno == EWOULDBLOCK ? "the journal '%s' is in use by another run"
                                                : "cannot lock the journal '%s': %s",
                           j->path, strerror(errno));
    return 0;
}

/* Whether text[0..len) (a first line without its newline) is a header cut short by a crash
 * while the journal was created: at least the magic, and no less, of the opening that every
 * header of this format has. The header goes to the file in one write(2) of a few hundred
 * bytes, so a crash leaves all of it, none, or a part cut at a block boundary (well past the
 * magic); a shorter text such as "{" is some other file's, and is left as it was. */
static bool torn_header(const char *text, size_t len)
{
    static const char opening[] = RS__JOURNAL_MAGIC "1,\"created\":";
    size_t m = sizeof RS__JOURNAL_MAGIC - 1, o = sizeof opening - 1;
    return len >= m && memcmp(text, opening, len < o ? len : o) == 0;
}

/* Validates, reads and prepares the open file (see rs_journal_mode). */
static int prepare(rs__journal *j, const rs__journal_spec *spec, bool created,
                   const struct stat *st, rs__msg *msg)
{
    rs_value *now = rs__journal_header(spec);
    if (!now)
        return rs__msg_set(msg, RS_ENOMEM, "out of memory");
    rs__lines l = {.fd = j->fd};
    int rc = 0, err = 0;
    bool anew = created || st->st_size == 0;
    char *line;
    size_t len;
    bool complete;
    uint64_t offset;
    int got = anew ? 0 : rs__lines_next(&l, &line, &len, &complete, &offset, &err);
    rs_value *h = NULL;
    if (got < 0) {
        rc = rs__msg_set(msg, got, "cannot read the journal '%s': %s", j->path, strerror(err));
    } else if (anew || got == 0) {
        anew = true;
    } else if (!complete) {
        if (len <= RS__JOURNAL_HEADER_MAX && torn_header(line, len)) {
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
    } else if (len > RS__JOURNAL_HEADER_MAX || rs_json_decode(line, len, &h, NULL) != 0) {
        rc = rs__msg_set(msg, RS_EINVAL,
                         "'%s' is not a runspace journal: its first line is not a journal "
                         "header; remove it or choose another file",
                         j->path);
    } else if (!(rc = rs__journal_check_format(j->path, h, msg))) {
        if (spec->mode != RS_JOURNAL_NEW) {
            uint64_t records;
            rc = check_run(spec, h, now, msg);
            if (!rc)
                rc = read_records(j, spec, &l, &records, msg);
        } else {
            /* A new run replaces a journal without records; one with records if forced. */
            got = rs__lines_next(&l, &line, &len, &complete, &offset, &err);
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
