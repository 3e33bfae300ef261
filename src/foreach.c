/*
 * foreach.c -- parallel for-each over a stream of inputs, on the public invocation API.
 *
 * DESIGN
 * Threads: the caller of rs_foreach_run (the "run thread") dispatches and delivers; a reader
 * thread pulls inputs from the iterator into a bounded ring; the pool's workers run batches.
 *
 * Slots: 2 x throttle invocations (rs_ps with RS_PS_ITEM_RESULTS), so every worker has its next
 * batch queued while it runs one. A batch is up to `batch` inputs in one invocation: one
 * dispatch, one wake-up and one completion per batch, not per item. With automatic batching
 * the size follows the measured time per item so that a batch takes about 2 ms (at most 4096
 * items, and when the number of inputs is known, no more than a fair share of what is left).
 *
 * Who wakes whom (all under fe->mu): the reader signals `cv` when it adds to the ring while the
 * run thread waits, and waits on `space` when the ring is full; a slot's on_complete (worker
 * thread) appends the slot to the done list and signals `cv`, as does a fail-fast failure on a
 * worker (on_item) and rs_foreach_stop; the run thread signals `space` when it takes from the
 * ring. The run thread sleeps on `cv` only when it can neither dispatch nor deliver, and decides
 * that under the lock right before it waits: every step that releases the lock loops back to
 * look again, since what was signalled while it did not wait is seen only by looking. Nothing
 * polls.
 *
 * Delivery: a finished batch is split into one record per item (outputs and inputs are moved
 * out of the invocation, not copied). Failed or timed-out items with retries left go back to a
 * retry queue, which dispatch serves first. In completion order, records go straight to
 * on_record; in input order they wait in a reorder ring, and dispatch pauses while the oldest
 * undelivered input is a whole window behind, or while the records held for it take more
 * than HELD_MAX bytes (outputs waiting behind one slow item), which bounds memory by count
 * and by bytes.
 *
 * Stopping (rs_foreach_stop, or fail-fast's first failure): running batches are stopped, and
 * everything read but not finished is reported cancelled. Fail-fast acts on the worker: the
 * item that fails with no attempt left stops the rest of its own batch at once (on_item) and
 * marks the run stopping; the run thread then stops the other batches. Fail-fast keeps reading
 * the input to the end so that every input gets its record; a stop reads no further: the
 * reader ends after the iterator's current call, and an iterator that blocks watches the stop
 * eventfd.
 *
 * Journal (journal.c, when opts.journal is set): three hooks. It is opened before the reader
 * starts, and the indexes it holds are fixed from then on, so the reader asks it without a
 * lock and skips those inputs (it reads them, to keep the indexes, but they get no record;
 * ordered delivery moves next_deliver past them). Each record is appended to it when its
 * item completes, before the caller sees it and, in input order, before it waits in the
 * reorder window: the journal is the durable record of what finished, whatever the order,
 * so a crash loses at most what the journal had not synced (about 100 ms), while standard
 * output of a crashed ordered run may lack records the journal has. A journal that cannot be
 * written stops the run as rs_foreach_stop would (the run thread learns it from an append, the
 * journal's thread tells it through journal_failed, which takes fe->mu and never holds the
 * journal's lock), and the run ends with RS_EIO. It is closed (written and synced) after the last
 * record.
 *
 * Redis (redisq_submit.c, when rs_foreach_set_redis was called): the items run on workers
 * elsewhere, and rs_foreach_run hands the run to the submitter instead of the pool. The
 * submitter reads the input on the run thread and delivers the records that come back
 * through the remote hooks at the end of this file (foreach_int.h): the same counting,
 * reorder window, journal and progress as a local run.
 */
#include "common.h"
#include "exec.h"
#include "foreach_exec.h"
#include "foreach_int.h"
#include "iss.h"
#include "journal.h"
#include "ps_int.h"
#include "queue.h"
#include "redisq.h"
#include "runspace_int.h"
#include "sha256.h"
#include "thread.h"
#include "value.h"

#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define MAX_BATCH 4096
/* In input order, new inputs wait while the records held for an earlier one take more than
 * this (their outputs, inputs and errors, by rs__value_size): memory stays bounded when one
 * slow item holds back many with large outputs. */
#define HELD_MAX ((size_t)64 << 20)
#define BATCH_TARGET_NS 2000000 /* aim for batches of about 2 ms of work */

typedef struct slot {
    struct rs_foreach *fe;
    rs_ps *ps;
    rs_async *async;
    bool busy;
    uint64_t *index; /* per item of the batch: input index */
    int *attempts;   /* per item: attempts including this one */
    size_t n;
    struct slot *next_done;
} slot;

/* An input read but not yet dispatched, or waiting for a retry. */
typedef struct pending {
    uint64_t index;
    rs_value *item; /* NULL for an input that could not be read */
    char *error;    /* set for such an input */
    int attempts;
} pending;

/* A ring of pendings. */
typedef struct pring {
    pending *items;
    size_t cap, head, count;
} pring;

/* What became of an input, besides its input and outputs. */
typedef struct outcome {
    rs_item_status status;
    const char *error; /* borrowed */
    double duration;
    double start;
    uint64_t runspace_id;
    int attempts;
} outcome;

/* A record waiting for delivery in input order. */
typedef struct held {
    bool filled;
    size_t bytes; /* counted in fe->held_bytes */
    outcome o;    /* its error is `error` */
    char *error;  /* owned */
    rs_value *input;
    rs_value *output;
} held;

struct rs_foreach {
    rs_foreach_opts opts;
    rs__msg msg;
    char *script;
    size_t script_len;
    char *script_name; /* the file it came from, for messages (rs_ps_add_script_named), or NULL */
    char *command;
    rs__cmdtpl *exec;     /* an external command per item (rs_foreach_set_exec), or NULL */
    rs_value *args;       /* array or NULL */
    rs_value *params;     /* map or NULL */
    char *journal_path;   /* opts.journal, copied */
    char *journal_source; /* opts.journal_source, copied */
    char session[72];     /* digest of the pool's session state, for the journal's header */
    atomic_bool running;
    atomic_bool stop_requested;
    _Atomic(const char *) cancel_why; /* why the run stopped: the error of cancelled records */

    /* Run state, under mu. */
    rs__mutex mu;
    rs__cond cv;
    rs__cond space;
    pring ring; /* read, not dispatched */
    bool reader_done;
    bool reader_quit;    /* stop reading (a stop) */
    bool run_waiting;    /* the run thread sleeps on cv */
    int stop_fd;         /* eventfd, readable from a stop to the end of the run it stopped */
    uint64_t read_count; /* inputs read so far */
    rs__thread reader;
    slot *done;          /* finished slots, newest first */
    bool stopping;       /* stop or fail-fast: no more dispatch */
    bool journal_failed; /* the journal could not be written: the run stops */

    /* The journal (run thread; the reader asks it which indexes are done, a set fixed while
     * the run lasts), and the inputs the reader skipped because it holds their record. */
    rs__journal *journal;
    atomic_uint_least64_t skipped;

    rs__redisq_spec *redis; /* rs_foreach_set_redis: the run goes to Redis */

    /* Run thread only. */
    rs_pool *pool;
    bool own_pool;
    slot *slots;
    size_t nslots;
    pring retry;
    size_t batch;
    double ns_per_item; /* running average of item time */
    rs_value *view;     /* completion order: lends a record its outputs (collect_streaming) */
    held *window;       /* ordered delivery */
    size_t window_cap;
    uint64_t next_deliver;
    size_t held_bytes;      /* of the records in the window */
    uint64_t dispatched_hi; /* 1 + highest index dispatched */
    rs_foreach_summary sum;
    int64_t started;
};

/* Test hook: the most bytes held in a reorder window by any run (rs__foreach_test_held_peak). */
static atomic_size_t test_held_peak;

size_t rs__foreach_test_held_peak(bool reset)
{
    return reset ? atomic_exchange(&test_held_peak, 0) : atomic_load(&test_held_peak);
}

/* Why records are cancelled (their error), by what stopped the run. */
#define WHY_STOP "the run was stopped before this item finished"
#define WHY_FAIL_FAST "another item failed, and fail-fast stopped the run before this one finished"
#define WHY_JOURNAL "the run stopped because its journal could not be written"

/* ---- rings -------------------------------------------------------------------------------- */

static int ring_push(pring *r, pending p)
{
    if (r->count == r->cap) {
        size_t cap = r->cap ? r->cap * 2 : 64;
        pending *items = rs__malloc(cap * sizeof *items);
        if (!items)
            return RS_ENOMEM;
        for (size_t i = 0; i < r->count; i++)
            items[i] = r->items[(r->head + i) % r->cap];
        rs__free(r->items);
        r->items = items;
        r->cap = cap;
        r->head = 0;
    }
    r->items[(r->head + r->count++) % r->cap] = p;
    return 0;
}

static pending ring_pop(pring *r)
{
    pending p = r->items[r->head];
    r->head = (r->head + 1) % r->cap;
    r->count--;
    return p;
}

static void ring_free(pring *r)
{
    while (r->count) {
        pending p = ring_pop(r);
        rs_value_destroy(p.item);
        rs__free(p.error);
    }
    rs__free(r->items);
    memset(r, 0, sizeof *r);
}

/* ---- creation ----------------------------------------------------------------------------- */

int rs_foreach_create(const rs_foreach_opts *opts, rs_foreach **out)
{
    if (!out)
        return RS_EMISUSE;
    *out = NULL;
    if (!opts || !opts->next || !(opts->timeout >= 0))
        return RS_EINVAL;
    if (!opts->journal && (opts->journal_mode || opts->journal_force || opts->journal_source))
        return RS_EINVAL;
    if (opts->journal_mode != RS_JOURNAL_NEW && opts->journal_mode != RS_JOURNAL_RESUME &&
        opts->journal_mode != RS_JOURNAL_RESUME_FAILED)
        return RS_EINVAL;
    rs_foreach *fe = rs__calloc(1, sizeof *fe);
    if (!fe)
        return RS_ENOMEM;
    fe->opts = *opts;
    if (fe->opts.throttle == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        fe->opts.throttle = n > 0 ? (unsigned)n : 1;
    }
    if (fe->opts.batch > MAX_BATCH)
        fe->opts.batch = MAX_BATCH;
    atomic_init(&fe->running, false);
    atomic_init(&fe->stop_requested, false);
    atomic_init(&fe->skipped, 0);
    atomic_init(&fe->cancel_why, NULL);
    fe->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (fe->stop_fd < 0 || rs__mutex_init(&fe->mu) || rs__cond_init(&fe->cv) ||
        rs__cond_init(&fe->space)) {
        if (fe->stop_fd >= 0)
            close(fe->stop_fd);
        rs__free(fe);
        return RS_ESYSTEM;
    }
    /* The run's own pool is made now (it keeps its own reference to the ISS, which the caller
     * may release at once) and opened by the first run. */
    fe->pool = opts->pool;
    if (!fe->pool) {
        rs_pool_opts po = {.iss = opts->iss,
                           .min_runspaces = 1,
                           .max_runspaces = fe->opts.throttle,
                           .idle_timeout = -1};
        int rc = rs_pool_create(&po, &fe->pool);
        if (rc) {
            rs_foreach_destroy(fe);
            return rc;
        }
        fe->own_pool = true;
    }
    if (opts->journal) {
        /* The strings are the caller's; the session state is digested now, while the ISS is
         * surely alive (the caller may release it right after this call). */
        fe->journal_path = rs__strdup(opts->journal);
        fe->journal_source = opts->journal_source ? rs__strdup(opts->journal_source) : NULL;
        fe->opts.journal = fe->journal_path;
        fe->opts.journal_source = fe->journal_source;
        if (!fe->journal_path || (opts->journal_source && !fe->journal_source) ||
            rs__iss_digest(rs__pool_iss(fe->pool), fe->session)) {
            rs_foreach_destroy(fe);
            return RS_ENOMEM;
        }
    }
    *out = fe;
    return 0;
}

int rs_foreach_destroy(rs_foreach *fe)
{
    if (!fe)
        return 0;
    if (atomic_load(&fe->running))
        return rs__msg_set(&fe->msg, RS_EBUSY, "the run is in progress");
    if (fe->own_pool)
        rs_pool_destroy(fe->pool);
    rs__free(fe->script);
    rs__free(fe->script_name);
    rs__free(fe->command);
    rs__cmdtpl_free(fe->exec);
    rs_value_destroy(fe->args);
    rs_value_destroy(fe->params);
    rs__free(fe->journal_path);
    rs__free(fe->journal_source);
    rs__redisq_spec_free(fe->redis);
    rs__msg_free(&fe->msg);
    close(fe->stop_fd);
    rs__cond_destroy(&fe->space);
    rs__cond_destroy(&fe->cv);
    rs__mutex_destroy(&fe->mu);
    rs__free(fe);
    return 0;
}

const char *rs_foreach_errmsg(const rs_foreach *fe)
{
    return fe ? rs__msg_get(&fe->msg) : "";
}

/* What runs per item: one of a script (with its name, or NULL), a command and an external
 * command (taken), in place of the one set before. */
static void set_work(rs_foreach *fe, char *script, char *script_name, char *command,
                     rs__cmdtpl *exec)
{
    rs__free(fe->script);
    rs__free(fe->script_name);
    rs__free(fe->command);
    rs__cmdtpl_free(fe->exec);
    fe->script = script;
    fe->script_name = script_name;
    fe->command = command;
    fe->exec = exec;
}

int rs_foreach_set_script(rs_foreach *fe, const char *src, size_t len)
{
    return rs_foreach_set_script_named(fe, src, len, NULL);
}

int rs_foreach_set_script_named(rs_foreach *fe, const char *src, size_t len, const char *name)
{
    if (!fe)
        return RS_EMISUSE;
    if (!src)
        return rs__msg_set(&fe->msg, RS_EINVAL, "the script is NULL");
    if (name && !*name)
        return rs__msg_set(&fe->msg, RS_EINVAL, "the script's name is empty");
    if (len == (size_t)-1)
        len = strlen(src);
    /* Check it now, so that a script that does not compile stops everything before any input
     * is read. */
    rs_ps *ps;
    int rc = rs_ps_create(&ps);
    if (rc)
        return rs__msg_set(&fe->msg, rc, "%s", rs_strerror(rc));
    rc = rs_ps_add_script_named(ps, src, len, name);
    if (rc)
        rs__msg_set(&fe->msg, rc, "%s", rs_ps_errmsg(ps));
    rs_ps_destroy(ps);
    if (rc)
        return rc;
    char *copy = rs__strndup(src, len);
    if (!copy)
        return rs__msg_set(&fe->msg, RS_ENOMEM, "out of memory");
    char *name_copy = name ? rs__strdup(name) : NULL;
    if (name && !name_copy) {
        rs__free(copy);
        return rs__msg_set(&fe->msg, RS_ENOMEM, "out of memory");
    }
    set_work(fe, copy, name_copy, NULL, NULL);
    fe->script_len = len;
    return 0;
}

int rs_foreach_set_command(rs_foreach *fe, const char *name)
{
    if (!fe)
        return RS_EMISUSE;
    if (!name || !*name)
        return RS_EINVAL;
    char *copy = rs__strdup(name);
    if (!copy)
        return rs__msg_set(&fe->msg, RS_ENOMEM, "out of memory");
    set_work(fe, NULL, NULL, copy, NULL);
    return 0;
}

int rs_foreach_set_exec(rs_foreach *fe, const char *tmpl, unsigned flags)
{
    if (!fe)
        return RS_EMISUSE;
    if (!tmpl || (flags & ~(unsigned)RS_EXEC_SHELL))
        return rs__msg_set(&fe->msg, RS_EINVAL, "invalid argument");
    rs__cmdtpl *t;
    char *msg;
    int rc = rs__cmdtpl_parse(tmpl, (flags & RS_EXEC_SHELL) != 0, &t, &msg);
    if (rc) {
        rs__msg_set(&fe->msg, rc, "%s", msg ? msg : rs_strerror(rc));
        rs__free(msg);
        return rc;
    }
    set_work(fe, NULL, NULL, NULL, t);
    return 0;
}

int rs_foreach_add_argument(rs_foreach *fe, rs_value *value)
{
    if (!fe || !value) {
        rs_value_destroy(value);
        return fe ? RS_EINVAL : RS_EMISUSE;
    }
    if (!fe->args && !(fe->args = rs_value_array())) {
        rs_value_destroy(value);
        return RS_ENOMEM;
    }
    return rs_array_push(fe->args, value);
}

int rs_foreach_add_parameter(rs_foreach *fe, const char *name, rs_value *value)
{
    if (!fe || !value || !name || !*name) {
        rs_value_destroy(value);
        return fe ? RS_EINVAL : RS_EMISUSE;
    }
    if (!fe->params && !(fe->params = rs_value_map())) {
        rs_value_destroy(value);
        return RS_ENOMEM;
    }
    return rs_map_set(fe->params, name, value);
}

int rs_foreach_stop(rs_foreach *fe)
{
    if (!fe)
        return RS_EMISUSE;
    /* The flag and the descriptor change together under the lock, as the end of a run clears
     * them together: a stop racing that end then either belongs to the run ending (both are
     * cleared) or to the next one (both stay set), never half to each. */
    rs__mutex_lock(&fe->mu);
    atomic_store(&fe->stop_requested, true);
    uint64_t one = 1;
    ssize_t n = write(fe->stop_fd, &one, sizeof one);
    (void)n; /* an eventfd write of 1 fails only on overflow */
    rs__cond_signal(&fe->cv);
    rs__mutex_unlock(&fe->mu);
    return 0;
}

int rs_foreach_stop_fd(rs_foreach *fe)
{
    return fe ? fe->stop_fd : -1;
}

/* ---- the reader thread -------------------------------------------------------------------- */

static void *reader_main(void *arg)
{
    rs_foreach *fe = arg;
    rs__mutex_lock(&fe->mu);
    for (;;) {
        while (!fe->reader_quit && fe->ring.count >= fe->ring.cap)
            rs__cond_wait(&fe->space, &fe->mu);
        if (fe->reader_quit)
            break;
        uint64_t index = fe->read_count;
        rs__mutex_unlock(&fe->mu);
        rs_value *item = NULL;
        char *error = NULL;
        int rc;
        bool quit = false;
        for (uint64_t skips = 1;; skips++) {
            rc = fe->opts.next(fe->opts.input_userdata, &item, &error);
            if (rc == 0 || !fe->journal || !rs__journal_done(fe->journal, index))
                break;
            /* The journal holds its record: it is read, to keep the indexes, but not run. */
            rs_value_destroy(item);
            rs__free(error);
            item = NULL;
            error = NULL;
            index++;
            atomic_fetch_add_explicit(&fe->skipped, 1, memory_order_relaxed);
            if (atomic_load(&fe->stop_requested)) {
                quit = true;
                break;
            }
            if (skips % 4096 == 0) { /* a journal that failed stops the reading too */
                rs__mutex_lock(&fe->mu);
                quit = fe->reader_quit;
                rs__mutex_unlock(&fe->mu);
                if (quit)
                    break;
            }
        }
        rs__mutex_lock(&fe->mu);
        fe->read_count = index;
        if (quit)
            break;
        if (rc == 0) {
            rs_value_destroy(item);
            rs__free(error);
            break;
        }
        if (rc < 0 && !error)
            error = rs__strdup(rs_strerror(rc));
        /* An input the iterator produced is owed a record even if a stop came meanwhile (the
         * stopping run reports it cancelled). There is room: the reader waited for it, and
         * only the run thread takes from the ring since; so this push does not allocate. */
        pending p = {.index = fe->read_count, .item = item, .error = error};
        fe->ring.items[(fe->ring.head + fe->ring.count++) % fe->ring.cap] = p;
        fe->read_count++;
        if (fe->run_waiting)
            rs__cond_signal(&fe->cv);
        if (fe->reader_quit)
            break;
    }
    fe->reader_done = true;
    rs__cond_signal(&fe->cv);
    rs__mutex_unlock(&fe->mu);
    return NULL;
}

/* ---- delivery ----------------------------------------------------------------------------- */

static void count(rs_foreach *fe, rs_item_status st)
{
    fe->sum.total++;
    switch (st) {
    case RS_ITEM_OK:
        fe->sum.succeeded++;
        break;
    case RS_ITEM_ERROR:
        fe->sum.failed++;
        break;
    case RS_ITEM_TIMEOUT:
        fe->sum.timed_out++;
        break;
    case RS_ITEM_CANCELLED:
        fe->sum.cancelled++;
        break;
    }
}

static void mark_stopping(rs_foreach *fe, bool quit_reading, const char *why);

/* The journal could not take a record (run thread) or could not write or sync (the
 * journal's thread): the run stops as it would for rs_foreach_stop, and ends with the
 * journal's error. */
static void journal_failed(void *arg)
{
    rs_foreach *fe = arg;
    rs__mutex_lock(&fe->mu);
    if (!fe->journal_failed) {
        fe->journal_failed = true;
        mark_stopping(fe, true, WHY_JOURNAL);
    }
    rs__mutex_unlock(&fe->mu);
}

/* The outcome of item j of a batch, as its record reports it. */
static outcome item_outcome(const rs_item_result *it, int attempts)
{
    return (outcome){.status = it->status,
                     .error = it->error,
                     .duration = it->duration,
                     .start = it->start,
                     .runspace_id = it->runspace_id,
                     .attempts = attempts};
}

/* What emit_record does with a record: journal it, hand it to the caller, or both. */
#define TO_JOURNAL 1u
#define TO_CALLER 2u

/* Hands one record to the journal and/or to the caller, as `to` says (run thread). */
static void emit_record(rs_foreach *fe, uint64_t index, const rs_value *input,
                        const rs_value *output, const outcome *o, unsigned to)
{
    if (!fe->journal)
        to &= ~TO_JOURNAL;
    if (to & TO_CALLER)
        count(fe, o->status);
    else if (!to)
        return;
    if (!fe->opts.on_record && !(to & TO_JOURNAL))
        return;
    /* Records without outputs still get an (empty) array; NULL only when out of memory. */
    rs_value *none = output ? NULL : rs_value_array();
    if (!output)
        output = none;
    rs_value *null_input = input ? NULL : rs_value_null();
    const char *error = o->status == RS_ITEM_OK ? NULL : (o->error ? o->error : "failed");
    const char *why = atomic_load(&fe->cancel_why);
    if (o->status == RS_ITEM_CANCELLED && why)
        error = why;
    rs_foreach_record rec = {.index = index,
                             .input = input ? input : null_input,
                             .status = o->status,
                             .output = output,
                             .error = error,
                             .duration = o->duration,
                             .runspace_id = o->runspace_id,
                             .attempts = o->attempts,
                             .start = o->start};
    /* The journal first: a record is on its way to the disk before anyone sees it. */
    if ((to & TO_JOURNAL) && rs__journal_append(fe->journal, &rec))
        journal_failed(fe);
    if ((to & TO_CALLER) && fe->opts.on_record)
        fe->opts.on_record(&rec, fe->opts.userdata);
    rs_value_destroy(none);
    rs_value_destroy(null_input);
}

static void report_progress(rs_foreach *fe)
{
    if (!fe->opts.on_progress)
        return;
    double elapsed = (double)(rs__now_ns() - fe->started) * 1e-9;
    rs_foreach_progress p = {.done = fe->sum.total,
                             .total = fe->opts.total,
                             .succeeded = fe->sum.succeeded,
                             .failed = fe->sum.total - fe->sum.succeeded,
                             .elapsed = elapsed,
                             .rate = elapsed > 0 ? (double)fe->sum.total / elapsed : 0,
                             .skipped = atomic_load_explicit(&fe->skipped, memory_order_relaxed)};
    fe->opts.on_progress(&p, fe->opts.userdata);
}

/* Delivers held records that are next in input order. Indexes whose record is in the
 * journal (a resume skips them) get none: delivery moves past them. */
static void flush_window(rs_foreach *fe)
{
    while (fe->window) {
        if (fe->journal && rs__journal_done(fe->journal, fe->next_deliver)) {
            fe->next_deliver = rs__journal_next_undone(fe->journal, fe->next_deliver);
            continue;
        }
        held *h = &fe->window[fe->next_deliver % fe->window_cap];
        if (!h->filled)
            break;
        h->o.error = h->error;
        emit_record(fe, fe->next_deliver, h->input, h->output, &h->o, TO_CALLER);
        fe->held_bytes -= h->bytes;
        rs_value_destroy(h->input);
        rs_value_destroy(h->output);
        rs__free(h->error);
        memset(h, 0, sizeof *h);
        fe->next_deliver++;
    }
}

/* Delivers (or holds, in input order) the record of one input. input and output are taken;
 * o (its error included) is borrowed. */
static void deliver(rs_foreach *fe, uint64_t index, rs_value *input, rs_value *output,
                    const outcome *o)
{
    if (!fe->window) {
        emit_record(fe, index, input, output, o, TO_JOURNAL | TO_CALLER);
        rs_value_destroy(input);
        rs_value_destroy(output);
        return;
    }
    /* Journaled now, as it completes; handed over when its turn comes. */
    emit_record(fe, index, input, output, o, TO_JOURNAL);
    held *h = &fe->window[index % fe->window_cap];
    size_t bytes = sizeof *h + (input ? rs__value_size(input) : 0) +
                   (output ? rs__value_size(output) : 0) + (o->error ? strlen(o->error) + 1 : 0);
    fe->held_bytes += bytes;
    size_t peak = atomic_load_explicit(&test_held_peak, memory_order_relaxed);
    while (fe->held_bytes > peak &&
           !atomic_compare_exchange_weak(&test_held_peak, &peak, fe->held_bytes))
        continue;
    *h = (held){.filled = true,
                .bytes = bytes,
                .o = *o,
                .error = o->error ? rs__strdup(o->error) : NULL,
                .input = input,
                .output = output};
    flush_window(fe);
}

/* Reports a pending input as cancelled (never ran, or its retry never came). */
static void cancel_pending(rs_foreach *fe, pending p)
{
    outcome o = {.status = p.error ? RS_ITEM_ERROR : RS_ITEM_CANCELLED,
                 .error = p.error ? p.error : "cancelled",
                 .attempts = p.attempts};
    deliver(fe, p.index, p.item, NULL, &o);
    rs__free(p.error);
}

/* ---- dispatch ----------------------------------------------------------------------------- */

static void slot_done(rs_ps *ps, rs_ps_state state, void *userdata)
{
    (void)ps;
    (void)state;
    slot *s = userdata;
    rs_foreach *fe = s->fe;
    rs__mutex_lock(&fe->mu);
    s->next_done = fe->done;
    fe->done = s;
    rs__cond_signal(&fe->cv);
    rs__mutex_unlock(&fe->mu);
}

/* Marks the run as stopping (fe->mu held): nothing more is dispatched, and with quit_reading
 * the reader stops after its current call (iterators that block watch the stop descriptor).
 * The run thread, which may be the caller or be woken by it, then stops the running batches
 * (stop_slots) once, without the lock, since stopping a queued invocation completes it at once
 * and its on_complete takes fe->mu. */
static void mark_stopping(rs_foreach *fe, bool quit_reading, const char *why)
{
    if (!fe->stopping)
        atomic_store(&fe->cancel_why, why); /* the first cause is the one */
    fe->stopping = true;
    if (quit_reading && !fe->reader_quit) {
        fe->reader_quit = true;
        rs__cond_signal(&fe->space);
    }
    rs__cond_signal(&fe->cv);
}

/* on_item of a slot's invocation (worker thread, right after an item's result is set): under
 * fail-fast, an item that failed with no attempt left stops the rest of its own batch at once
 * (they are reported cancelled) and marks the run stopping, so that the run thread stops the
 * other batches without waiting for this one to be collected. The attempt numbers were written
 * by the run thread before the batch began. */
/* Worker thread: a stream record of the batch, handed on with its item's input index. The
 * batch's indexes were set before it was dispatched and stay until it is delivered. */
static void slot_record(rs_ps *ps, const rs_record *r, void *userdata)
{
    (void)ps;
    slot *s = userdata;
    if (r->stream == RS_STREAM_ERROR && r->code != 0)
        return; /* terminating: the item's record carries it */
    uint64_t index = r->item >= 0 && (size_t)r->item < s->n ? s->index[r->item] : UINT64_MAX;
    s->fe->opts.on_stream(index, r, s->fe->opts.userdata);
}

static void slot_item_done(rs_ps *ps, size_t index, const rs_item_result *it, void *userdata)
{
    slot *s = userdata;
    rs_foreach *fe = s->fe;
    if (!fe->opts.fail_fast || (it->status != RS_ITEM_ERROR && it->status != RS_ITEM_TIMEOUT))
        return;
    if (index < s->n && (unsigned)s->attempts[index] <= fe->opts.retries)
        return; /* it gets another attempt */
    rs_ps_begin_stop(ps);
    rs__mutex_lock(&fe->mu);
    mark_stopping(fe, false, WHY_FAIL_FAST);
    rs__mutex_unlock(&fe->mu);
}

/* Stops every running batch (run thread, fe->mu not held; only the run thread changes
 * `busy`). */
static void stop_slots(rs_foreach *fe)
{
    for (size_t i = 0; i < fe->nslots; i++) {
        if (fe->slots[i].busy)
            rs_ps_begin_stop(fe->slots[i].ps);
    }
}

/* The size of the next batch. */
static size_t batch_size(rs_foreach *fe)
{
    size_t b = fe->opts.batch ? fe->opts.batch : fe->batch;
    if (fe->opts.total && !fe->opts.batch) {
        /* Keep the tail balanced: no more than a fair share of what is left. */
        uint64_t left = fe->opts.total > fe->dispatched_hi ? fe->opts.total - fe->dispatched_hi : 0;
        size_t share = (size_t)(left / fe->nslots) + 1;
        if (b > share)
            b = share;
    }
    return b ? b : 1;
}

/* Whether the next new input (the head of the ring) may be taken: in input order, only while
 * it is within `span` of the oldest undelivered input, so the reorder window never overflows.
 * Retries are older than anything undelivered and always fit. */
static bool ring_head_fits(const rs_foreach *fe, size_t span)
{
    return fe->ring.count &&
           (!fe->window || fe->ring.items[fe->ring.head].index < fe->next_deliver + span);
}

/* Whether a new input may be dispatched (ring_head_fits within half the window), and in
 * input order only while the held records take at most HELD_MAX bytes. The input that holds
 * them back was dispatched before them (the ring is in input order), so it is running or
 * waits for a retry, which is always dispatched: the pause cannot last forever. */
static bool may_dispatch_new(const rs_foreach *fe)
{
    return ring_head_fits(fe, fe->window_cap / 2) && (!fe->window || fe->held_bytes <= HELD_MAX);
}

/* Fills a free slot from the retry queue and the ring and begins it (fe->mu held; released
 * while beginning, and while delivering the records of inputs that need no runspace). Returns
 * whether it took anything: if it did, it may have released the lock, and the caller must look
 * at everything again before it waits. */
static bool dispatch(rs_foreach *fe, slot *s)
{
    size_t want = batch_size(fe);
    size_t n = 0;
    bool took = false;
    /* The lock is released while records are delivered: a stop or a fail-fast failure may come
     * meanwhile, and what is taken after it would run although it is due to be cancelled. */
    while (n < want && !fe->stopping && !atomic_load(&fe->stop_requested) &&
           (fe->retry.count || may_dispatch_new(fe))) {
        pending p = fe->retry.count ? ring_pop(&fe->retry) : ring_pop(&fe->ring);
        took = true;
        if (p.error) { /* an input that could not be read: its record needs no runspace */
            rs__mutex_unlock(&fe->mu);
            deliver(fe, p.index, p.item, NULL,
                    &(outcome){.status = RS_ITEM_ERROR, .error = p.error});
            rs__free(p.error);
            rs__mutex_lock(&fe->mu);
            continue;
        }
        if (!p.item)
            p.item = rs_value_null();
        s->index[n] = p.index;
        s->attempts[n] = p.attempts + 1;
        if (p.index + 1 > fe->dispatched_hi)
            fe->dispatched_hi = p.index + 1;
        if (rs_ps_add_input(s->ps, p.item)) {
            rs__mutex_unlock(&fe->mu);
            deliver(fe, p.index, NULL, NULL,
                    &(outcome){
                        .status = RS_ITEM_ERROR, .error = "out of memory", .attempts = p.attempts});
            rs__mutex_lock(&fe->mu);
            continue;
        }
        n++;
    }
    rs__cond_signal(&fe->space);
    if (n == 0)
        return took;
    s->n = n;
    s->busy = true;
    rs__mutex_unlock(&fe->mu);
    int rc = rs_ps_begin_invoke(s->ps, &s->async);
    rs__mutex_lock(&fe->mu);
    if (rc) {
        /* Could not start (the pool closed under us): these inputs fail here. */
        s->busy = false;
        rs_value *inputs = rs_ps_take_inputs(s->ps);
        rs__mutex_unlock(&fe->mu);
        for (size_t i = n; i-- > 0;)
            deliver(fe, s->index[i], inputs ? rs_array_take(inputs, i) : NULL, NULL,
                    &(outcome){.status = RS_ITEM_ERROR,
                               .error = rs_ps_errmsg(s->ps),
                               .attempts = s->attempts[i] - 1});
        rs_value_destroy(inputs);
        rs__mutex_lock(&fe->mu);
    }
    return true;
}

/* Moves the last count values of out into a new array, keeping their order. The array is
 * filled with nulls first (no allocation), then each value is set in place; if it cannot be
 * made, the values are dropped and NULL returned. */
static rs_value *cut_tail(rs_value *out, size_t count)
{
    rs_value *arr = rs_value_array();
    if (arr && rs__array_reserve(arr, count)) {
        rs_value_destroy(arr);
        arr = NULL;
    }
    for (size_t k = 0; arr && k < count; k++)
        rs_array_push(arr, rs_value_null());
    for (size_t k = count; k-- > 0;) {
        rs_value *v = rs_array_take(out, rs_array_len(out) - 1);
        if (arr)
            rs_array_set(arr, k, v);
        else
            rs_value_destroy(v);
    }
    return arr;
}

/* Decides what happens to a failed item: true when it goes back for another attempt (taking
 * `input`, which must then be owned); triggers fail-fast on a final failure. Run thread. */
static bool retry_or_fail(rs_foreach *fe, rs_item_status st, uint64_t index, int attempts,
                          rs_value **input)
{
    bool failed = st == RS_ITEM_ERROR || st == RS_ITEM_TIMEOUT;
    if (!failed)
        return false;
    rs__mutex_lock(&fe->mu);
    bool retry = (unsigned)attempts <= fe->opts.retries && !fe->stopping && *input;
    if (retry &&
        ring_push(&fe->retry, (pending){.index = index, .item = *input, .attempts = attempts}) == 0)
        *input = NULL;
    else
        retry = false;
    if (!retry && fe->opts.fail_fast)
        mark_stopping(fe, false, WHY_FAIL_FAST); /* the run loop stops the running batches */
    rs__mutex_unlock(&fe->mu);
    return retry;
}

/* Completion order: every record is handed over at once, its outputs as a borrowed view (the
 * values stay in the batch's output array; fe->view only lends them), so nothing per item is
 * allocated or moved. */
/* The attempts item j of a batch has had, as its record reports them: the one just made,
 * unless it was cancelled before it started. (Retries count dispatches: s->attempts.) */
static int ran_attempts(const slot *s, size_t j, const rs_item_result *it)
{
    return it->runspace_id ? s->attempts[j] : s->attempts[j] - 1;
}

static void collect_streaming(rs_foreach *fe, slot *s, rs_value *out, rs_value *inputs, int rc)
{
    size_t nitems = rs_ps_item_count(s->ps);
    for (size_t j = 0; j < s->n; j++) {
        rs_item_result it = {.status = RS_ITEM_ERROR, .code = rc, .error = rs_ps_errmsg(s->ps)};
        if (j < nitems)
            rs_ps_item(s->ps, j, &it);
        int attempts = ran_attempts(s, j, &it);
        rs_value *input = inputs ? rs_array_get(inputs, j) : NULL;
        if (it.status == RS_ITEM_ERROR || it.status == RS_ITEM_TIMEOUT) {
            rs_value *copy = input ? rs_value_copy(input) : NULL;
            if (retry_or_fail(fe, it.status, s->index[j], s->attempts[j], &copy))
                continue;
            rs_value_destroy(copy);
        }
        size_t have = out ? rs_array_len(out) : 0;
        size_t count = it.output_first + it.output_count <= have ? it.output_count : 0;
        outcome o = item_outcome(&it, attempts);
        if (count && rs__array_reserve(fe->view, count)) {
            o.status = RS_ITEM_ERROR;
            o.error = "out of memory";
            emit_record(fe, s->index[j], input, NULL, &o, TO_JOURNAL | TO_CALLER);
            continue;
        }
        for (size_t k = 0; k < count; k++) /* cannot fail: reserved */
            rs_array_push(fe->view, rs_array_get(out, it.output_first + k));
        emit_record(fe, s->index[j], input, fe->view, &o, TO_JOURNAL | TO_CALLER);
        while (rs_array_len(fe->view)) /* give the loans back, without freeing them */
            rs_array_take(fe->view, rs_array_len(fe->view) - 1);
    }
}

/* Input order: records wait in the reorder window, so each gets its own input and outputs,
 * moved (not copied) out of the batch. Walking the items backwards, each one's input and
 * outputs are at the tail of the arrays, where taking them costs nothing. */
static void collect_ordered(rs_foreach *fe, slot *s, rs_value *out, rs_value *inputs, int rc)
{
    size_t n = s->n;
    size_t nitems = rs_ps_item_count(s->ps);
    typedef struct rec {
        rs_item_result it;
        rs_value *input;
        rs_value *output;
        int attempts;
    } rec;
    rec *recs = rs__calloc(n, sizeof *recs);
    for (size_t j = n; j-- > 0;) {
        rec *r = recs ? &recs[j] : &(rec){0};
        r->it = (rs_item_result){.status = RS_ITEM_ERROR, .code = rc, .error = rs_ps_errmsg(s->ps)};
        if (j < nitems)
            rs_ps_item(s->ps, j, &r->it);
        r->attempts = ran_attempts(s, j, &r->it);
        r->input = inputs && rs_array_len(inputs) == j + 1 ? rs_array_take(inputs, j) : NULL;
        size_t have = out ? rs_array_len(out) : 0;
        r->output = cut_tail(out, r->it.output_count <= have ? r->it.output_count : have);
        if (!recs) { /* out of memory: deliver as we go, backwards */
            outcome o = item_outcome(&r->it, r->attempts);
            deliver(fe, s->index[j], r->input, r->output, &o);
        }
    }
    for (size_t j = 0; recs && j < n; j++) {
        rec *r = &recs[j];
        if (retry_or_fail(fe, r->it.status, s->index[j], s->attempts[j], &r->input)) {
            rs_value_destroy(r->output);
            continue;
        }
        outcome o = item_outcome(&r->it, r->attempts);
        deliver(fe, s->index[j], r->input, r->output, &o);
    }
    rs__free(recs);
}

/* Turns a finished batch into records (run thread, fe->mu not held). */
static void collect(rs_foreach *fe, slot *s)
{
    rs_value *out = NULL;
    int rc = rs_ps_end_invoke(s->ps, s->async, &out);
    rs_value *inputs = rs_ps_take_inputs(s->ps);
    if (s->n && !fe->opts.batch) {
        /* Follow the time items take: a batch of about BATCH_TARGET_NS. */
        double item_ns = 0;
        rs_item_result it;
        for (size_t j = 0; j < s->n; j++) {
            if (rs_ps_item(s->ps, j, &it) == 0)
                item_ns += it.duration * 1e9;
        }
        double per = item_ns / (double)s->n;
        fe->ns_per_item = fe->ns_per_item ? 0.7 * fe->ns_per_item + 0.3 * per : per;
        double b = fe->ns_per_item > 1 ? BATCH_TARGET_NS / fe->ns_per_item : MAX_BATCH;
        fe->batch = b < 1 ? 1 : b > MAX_BATCH ? MAX_BATCH : (size_t)b;
    }
    if (fe->window)
        collect_ordered(fe, s, out, inputs, rc);
    else
        collect_streaming(fe, s, out, inputs, rc);
    rs_value_destroy(out);
    rs_value_destroy(inputs);
    report_progress(fe);
}

/* ---- the run ------------------------------------------------------------------------------ */

/* The stage of a run with an external command (worker thread): item j of the slot's batch is
 * input s->index[j], written by the run thread before the batch began. */
static int exec_item(rs_call *call, void *userdata)
{
    slot *s = userdata;
    int64_t j = call->item;
    uint64_t seq = j >= 0 && (size_t)j < s->n ? s->index[j] + 1 : 0;
    return rs__cmdtpl_run(call, s->fe->exec, seq);
}

static int setup(rs_foreach *fe)
{
    if (!fe->script && !fe->command && !fe->exec)
        return rs__msg_set(&fe->msg, RS_EINVAL,
                           "nothing to run: set a script, a command or an external command");
    int rc;
    if (fe->own_pool && rs_pool_get_state(fe->pool) == RS_POOL_BEFORE_OPEN &&
        (rc = rs_pool_open(fe->pool)))
        return rs__msg_set(&fe->msg, rc, "%s", rs_pool_errmsg(fe->pool));
    fe->nslots = (size_t)fe->opts.throttle * 2;
    fe->slots = rs__calloc(fe->nslots, sizeof *fe->slots);
    if (!fe->slots)
        return rs__msg_set(&fe->msg, RS_ENOMEM, "out of memory");
    size_t cap = fe->opts.batch ? fe->opts.batch : MAX_BATCH;
    for (size_t i = 0; i < fe->nslots; i++) {
        slot *s = &fe->slots[i];
        s->fe = fe;
        s->index = rs__calloc(cap, sizeof *s->index);
        s->attempts = rs__calloc(cap, sizeof *s->attempts);
        if (!s->index || !s->attempts || (rc = rs_ps_create(&s->ps)))
            return rs__msg_set(&fe->msg, RS_ENOMEM, "out of memory");
        /* Stream records go to on_stream as they are written and are not kept: an item
         * that prints without end must not fill the batch's invocation (its error records,
         * which the items' errors point into, are kept). */
        rs_ps_opts o = {.flags = RS_PS_ITEM_RESULTS | RS_PS_STREAM_RECORDS,
                        .item_timeout = fe->opts.timeout,
                        .on_complete = slot_done,
                        .on_item = slot_item_done,
                        .on_record = fe->opts.on_stream ? slot_record : NULL,
                        .userdata = s};
        rc = rs_ps_set_pool(s->ps, fe->pool);
        if (!rc)
            rc = rs_ps_set_opts(s->ps, &o);
        if (!rc)
            rc = fe->exec ? rs__ps_add_native(s->ps, "", exec_item, s)
                 : fe->script
                     ? rs_ps_add_script_named(s->ps, fe->script, fe->script_len, fe->script_name)
                     : rs_ps_add_command(s->ps, fe->command);
        for (size_t a = 0; !rc && fe->args && a < rs_array_len(fe->args); a++)
            rc = rs_ps_add_argument(s->ps, rs_value_copy(rs_array_get(fe->args, a)));
        for (size_t a = 0; !rc && fe->params && a < rs_map_len(fe->params); a++)
            rc = rs_ps_add_parameter(s->ps, rs_map_key(fe->params, a, NULL),
                                     rs_value_copy(rs_map_value(fe->params, a)));
        if (rc)
            return rs__msg_set(&fe->msg, rc, "%s", rs_ps_errmsg(s->ps));
    }
    fe->view = rs_value_array();
    if (!fe->view)
        return rs__msg_set(&fe->msg, RS_ENOMEM, "out of memory");
    if (fe->opts.ordered) {
        /* The reorder window: enough for every slot's largest batch, twice over. */
        fe->window_cap = fe->nslots * cap * 2;
        fe->window = rs__calloc(fe->window_cap, sizeof *fe->window);
        if (!fe->window)
            return rs__msg_set(&fe->msg, RS_ENOMEM, "out of memory");
    }
    /* The ring holds a few batches' worth of read-ahead; the reader waits when it is full. */
    fe->ring.cap = fe->nslots * cap;
    fe->ring.items = rs__malloc(fe->ring.cap * sizeof *fe->ring.items);
    if (!fe->ring.items)
        return rs__msg_set(&fe->msg, RS_ENOMEM, "out of memory");
    return 0;
}

static void teardown(rs_foreach *fe)
{
    for (size_t i = 0; fe->slots && i < fe->nslots; i++) {
        rs_ps_destroy(fe->slots[i].ps);
        rs__free(fe->slots[i].index);
        rs__free(fe->slots[i].attempts);
    }
    rs__free(fe->slots);
    fe->slots = NULL;
    rs_value_destroy(fe->view); /* empty: loans are always given back */
    fe->view = NULL;
    ring_free(&fe->ring);
    ring_free(&fe->retry);
    for (size_t i = 0; fe->window && i < fe->window_cap; i++) {
        rs_value_destroy(fe->window[i].input);
        rs_value_destroy(fe->window[i].output);
        rs__free(fe->window[i].error);
    }
    rs__free(fe->window);
    fe->window = NULL;
}

/* Opens the run's journal (see rs_journal_mode), after which the reader skips what it holds
 * and ordered delivery starts at the first index it does not hold. */
static int open_journal(rs_foreach *fe)
{
    char script[72], args[72], params[72];
    if (fe->script)
        rs__sha256_hex(fe->script, fe->script_len, script);
    const rs_value *values[2] = {fe->args, fe->params};
    char *digests[2] = {args, params};
    for (int i = 0; i < 2; i++) {
        if (!values[i] || (rs_value_type(values[i]) == RS_TARRAY ? !rs_array_len(values[i])
                                                                 : !rs_map_len(values[i]))) {
            digests[i] = NULL;
            continue;
        }
        rs__sha256 d;
        rs__sha256_init(&d);
        if (rs__value_digest(&d, values[i]))
            return rs__msg_set(&fe->msg, RS_ENOMEM, "out of memory");
        rs__sha256_final_hex(&d, digests[i]);
    }
    rs__journal_spec spec = {.path = fe->opts.journal,
                             .mode = fe->opts.journal_mode,
                             .force = fe->opts.journal_force,
                             .source = fe->opts.journal_source,
                             .script = fe->script ? script : NULL,
                             .command = fe->exec ? rs__cmdtpl_name(fe->exec) : fe->command,
                             .arguments = digests[0],
                             .parameters = digests[1],
                             .session = fe->session,
                             .timeout = fe->opts.timeout,
                             .retries = fe->opts.retries,
                             .on_notice = fe->opts.on_notice,
                             .notice_userdata = fe->opts.userdata,
                             .on_failure = journal_failed,
                             .failure_arg = fe};
    int rc = rs__journal_open(&spec, &fe->journal, &fe->msg);
    if (!rc)
        fe->next_deliver = rs__journal_next_undone(fe->journal, 0);
    return rc;
}

static bool any_busy(rs_foreach *fe)
{
    for (size_t i = 0; i < fe->nslots; i++) {
        if (fe->slots[i].busy)
            return true;
    }
    return false;
}

static slot *free_slot(rs_foreach *fe)
{
    for (size_t i = 0; i < fe->nslots; i++) {
        if (!fe->slots[i].busy)
            return &fe->slots[i];
    }
    return NULL;
}

/* The end of a run, local or remote: the rest of the reorder window is delivered, the journal
 * written and synced, the summary filled, and the stop (if any) used up. Returns the
 * journal's error, or 0. */
static int end_run(rs_foreach *fe, rs_foreach_summary *summary)
{
    flush_window(fe);
    teardown(fe);
    /* Every record has been appended: the rest is written and synced now. */
    int journal_rc = rs__journal_close(fe->journal, &fe->sum.unjournaled, &fe->msg);
    fe->journal = NULL;
    fe->sum.skipped = atomic_load(&fe->skipped);
    fe->sum.elapsed = (double)(rs__now_ns() - fe->started) * 1e-9;
    fe->sum.success_rate =
        fe->sum.total ? 100.0 * (double)fe->sum.succeeded / (double)fe->sum.total : 100.0;
    if (summary)
        *summary = fe->sum;
    rs__mutex_lock(&fe->mu);
    atomic_store(&fe->stop_requested, false);
    uint64_t drained;
    while (read(fe->stop_fd, &drained, sizeof drained) > 0)
        continue;
    rs__mutex_unlock(&fe->mu);
    return journal_rc;
}

int rs_foreach_run(rs_foreach *fe, rs_foreach_summary *summary)
{
    if (!fe)
        return RS_EMISUSE;
    bool expected = false;
    if (!atomic_compare_exchange_strong(&fe->running, &expected, true))
        return rs__msg_set(&fe->msg, RS_EBUSY, "the run is in progress");
    memset(&fe->sum, 0, sizeof fe->sum);
    fe->started = rs__now_ns();
    fe->batch = 1;
    fe->ns_per_item = 0;
    fe->next_deliver = fe->dispatched_hi = fe->read_count = 0;
    fe->held_bytes = 0;
    fe->reader_done = fe->run_waiting = fe->journal_failed = false;
    atomic_store(&fe->cancel_why, NULL);
    fe->done = NULL;
    atomic_store(&fe->skipped, 0);
    if (fe->redis) {
        int rrc = fe->exec ? rs__msg_set(&fe->msg, RS_EINVAL,
                                         "an external command per item does not run on Redis "
                                         "workers: give them a script (exec{...} runs a command "
                                         "from one)")
                           : rs__redisq_submit(fe, fe->redis, summary);
        atomic_store(&fe->running, false);
        return rrc;
    }
    /* A stop requested before the run ends it at once: the reader quits before its first
     * call, so that nothing is read. */
    bool stopped = atomic_load(&fe->stop_requested); /* rs_foreach_stop ended this run */
    fe->reader_quit = fe->stopping = stopped;
    if (stopped)
        atomic_store(&fe->cancel_why, WHY_STOP);
    int rc = setup(fe);
    /* The journal is opened before anything is read (a stop before the run reads nothing,
     * and so has nothing to journal). */
    if (!rc && fe->opts.journal && !stopped)
        rc = open_journal(fe);
    if (!rc && rs__thread_create(&fe->reader, reader_main, fe, 0))
        rc = rs__msg_set(&fe->msg, RS_ESYSTEM, "cannot start the reader thread: %s",
                         strerror(errno));
    if (rc) {
        rs__journal_close(fe->journal, NULL, NULL);
        fe->journal = NULL;
        teardown(fe);
        atomic_store(&fe->running, false);
        return rc;
    }

    /* Each step below that releases the lock loops back to the top (continue), so that every
     * condition is looked at again, under the lock, right before the wait: whatever changed
     * while the lock was free (a batch finished, the reader added or ended) was signalled when
     * nobody waited, and is seen only by looking. */
    bool slots_stopped = false; /* the running batches were told to stop */
    rs__mutex_lock(&fe->mu);
    for (;;) {
        if (atomic_load(&fe->stop_requested) && !stopped) {
            stopped = true;
            mark_stopping(fe, true, WHY_STOP);
            continue;
        }
        /* A stop, or fail-fast (here or on a worker): stop every running batch, once. */
        if (fe->stopping && !slots_stopped) {
            slots_stopped = true;
            rs__mutex_unlock(&fe->mu);
            stop_slots(fe);
            rs__mutex_lock(&fe->mu);
            continue;
        }
        /* Finished batches first: their records, retries and fail-fast decisions. */
        if (fe->done) {
            slot *s = fe->done;
            fe->done = s->next_done;
            rs__mutex_unlock(&fe->mu);
            collect(fe, s);
            rs__mutex_lock(&fe->mu);
            s->busy = false;
            continue;
        }
        /* Once stopping, what was read is cancelled rather than run. */
        if (fe->stopping && (fe->retry.count || ring_head_fits(fe, fe->window_cap))) {
            pending p = fe->retry.count ? ring_pop(&fe->retry) : ring_pop(&fe->ring);
            rs__cond_signal(&fe->space);
            rs__mutex_unlock(&fe->mu);
            cancel_pending(fe, p);
            rs__mutex_lock(&fe->mu);
            continue;
        }
        if (!fe->stopping && (fe->retry.count || may_dispatch_new(fe))) {
            slot *s = free_slot(fe);
            if (s && dispatch(fe, s))
                continue; /* it took inputs, and may have released the lock */
        }
        if (fe->reader_done && !fe->ring.count && !fe->retry.count && !any_busy(fe))
            break;
        fe->run_waiting = true;
        rs__cond_wait(&fe->cv, &fe->mu);
        fe->run_waiting = false;
    }
    rs__mutex_unlock(&fe->mu);
    rs__thread_join(fe->reader);
    int journal_rc = end_run(fe, summary);
    atomic_store(&fe->running, false);
    if (journal_rc)
        return journal_rc; /* its message is set */
    if (stopped)
        return rs__msg_set(&fe->msg, RS_ESTOPPED, "the run was stopped");
    return 0;
}

/* ---- the remote hooks (foreach_int.h) ----------------------------------------------------- */

const char *rs_foreach_run_name(const rs_foreach *fe)
{
    return fe && fe->redis ? fe->redis->run : NULL;
}

int rs__foreach_set_redis_spec(rs_foreach *fe, rs__redisq_spec *spec)
{
    if (atomic_load(&fe->running)) {
        rs__redisq_spec_free(spec);
        return rs__msg_set(&fe->msg, RS_EBUSY, "the run is in progress");
    }
    rs__redisq_spec_free(fe->redis);
    fe->redis = spec;
    return 0;
}

void rs__foreach_what(rs_foreach *fe, rs__foreach_what_t *w)
{
    *w = (rs__foreach_what_t){.script = fe->script,
                              .script_len = fe->script_len,
                              .script_name = fe->script_name,
                              .command = fe->command,
                              .args = fe->args,
                              .params = fe->params,
                              .opts = &fe->opts,
                              .msg = &fe->msg};
}

int rs__foreach_remote_begin(rs_foreach *fe, size_t window)
{
    fe->reader_quit = fe->stopping = false;
    if (!fe->script && !fe->command)
        return rs__msg_set(&fe->msg, RS_EINVAL, "nothing to run: set a script or a command");
    if (fe->opts.ordered) {
        fe->window_cap = window;
        fe->window = rs__calloc(window, sizeof *fe->window);
        if (!fe->window)
            return rs__msg_set(&fe->msg, RS_ENOMEM, "out of memory");
    }
    int rc = fe->opts.journal ? open_journal(fe) : 0;
    if (rc) {
        teardown(fe);
        return rc;
    }
    return 0;
}

bool rs__foreach_remote_journaled(rs_foreach *fe, uint64_t index)
{
    return fe->journal && rs__journal_done(fe->journal, index);
}

void rs__foreach_remote_skip(rs_foreach *fe)
{
    atomic_fetch_add(&fe->skipped, 1);
}

void rs__foreach_remote_deliver(rs_foreach *fe, uint64_t index, rs_value *input, rs_value *output,
                                const rs__remote_outcome *ro)
{
    outcome o = {.status = ro->status,
                 .error = ro->error,
                 .duration = ro->duration,
                 .start = ro->start,
                 .runspace_id = ro->runspace_id,
                 .attempts = ro->attempts};
    deliver(fe, index, input, output, &o);
}

void rs__foreach_remote_progress(rs_foreach *fe)
{
    report_progress(fe);
}

uint64_t rs__foreach_remote_next_deliver(const rs_foreach *fe)
{
    return fe->window ? fe->next_deliver : UINT64_MAX;
}

bool rs__foreach_remote_stopping(rs_foreach *fe, bool *journal_failed)
{
    rs__mutex_lock(&fe->mu);
    bool stop = fe->stopping || atomic_load(&fe->stop_requested);
    *journal_failed = fe->journal_failed;
    rs__mutex_unlock(&fe->mu);
    return stop;
}

uint64_t rs__foreach_remote_delivered(const rs_foreach *fe)
{
    return fe->sum.total;
}

int rs__foreach_remote_end(rs_foreach *fe, rs_foreach_summary *summary, int rc)
{
    bool stopped = atomic_load(&fe->stop_requested);
    int journal_rc = end_run(fe, summary);
    if (journal_rc)
        return journal_rc;
    if (rc)
        return rc;
    if (stopped)
        return rs__msg_set(&fe->msg, RS_ESTOPPED, "the run was stopped");
    return 0;
}
