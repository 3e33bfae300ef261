/*
 * redisq_worker.c -- `runspace worker`: serves runs from Redis with a local for-each of its
 * own, the work stream as its input and the results stream as its sink.
 *
 * DESIGN
 * The worker finds runs in the set PREFIX runs and serves one at a time. Serving a run is an
 * rs_foreach on a pool of the worker's own (its profile and memory limit, the run's
 * variables, modules, script, arguments, parameters, timeout and retries):
 *  - its input iterator (the engine's reader thread, with a connection of its own) takes
 *    entries of the work stream for this consumer: first what other consumers held longer
 *    than the lease (XAUTOCLAIM), then new ones (XREADGROUP, blocking 200 ms). It hands the
 *    items out one by one, noting for each local index its entry and its index in the run
 *    (the `slots` deque, under mu). It holds at most `limit` items not yet recorded, a number
 *    that follows the items' duration (about 100 ms of work per runspace), so that one worker
 *    does not take what others could run, and waits on `cv` for records to make room.
 *  - on_record (the run thread, which is the thread of rs_worker_run) appends the record to
 *    the next result entry and counts down its work entry; on_progress, after each batch of
 *    records, sends the result entry and then acknowledges (XACK, XDEL) the work entries
 *    whose every item has its record: on one connection, in that order, so that an entry is
 *    acknowledged only after its records are stored.
 *  - Every lease/3 the iterator claims again the entries it holds (XCLAIM with JUSTID), so
 *    that items longer than the lease are not taken from a live worker; and every 250 ms it
 *    reads the run's state: a run stopped, finished or deleted is left (the local run is
 *    stopped, and its cancelled records are not sent: the submitter has given those).
 * The iterator returns 0 (the end of the input) when the worker stops, when the run is left,
 * or after a second with nothing to do, and the worker looks for runs again.
 *
 * Stop: rs_worker_stop's first call ends the input (what was handed out finishes, is stored
 * and acknowledged; entries read but not handed out stay pending and are reclaimed by others
 * after the lease); its second stops the local run: cancelled items are neither recorded nor
 * acknowledged. Redis lost for longer than retry_for ends rs_worker_run with RS_EIO.
 *
 * Lock order: w->mu is never held while c->mu is taken, nor the reverse.
 */
#include "json.h"
#include "redisq.h"
#include "thread.h"

#include <errno.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

struct rs_worker {
    rs_worker_opts opts;
    rs__redis_addr addr;
    char *prefix;
    char *name;
    rs__msg msg;
    int wake_fd;           /* eventfd: readable from the first stop */
    atomic_int stop_level; /* 0, 1 (finish what is held), 2 (stop it) */
    atomic_bool running;
    rs__mutex mu;        /* guards `current` */
    rs_foreach *current; /* the run being served, for a second stop */
    rs__buf noticed;     /* runs already reported as unusable, "\nNAME\n..." */
};

/* A work entry, while any of its items is unrecorded or it awaits its acknowledgement. */
typedef struct entry {
    char id[48];
    size_t remaining; /* items without a record */
    bool tainted;     /* an item of it was cancelled here: not acknowledged */
    struct entry *next, *prev;
} entry;

typedef struct slot {
    entry *e;
    uint64_t index; /* in the run */
    bool recorded;
} slot;

typedef struct item {
    entry *e;
    uint64_t index;
    rs_value *input;
} item;

/* One run being served. */
typedef struct serving {
    rs_worker *w;
    const char *run;
    char *key, *work, *results;
    rs__redis *rd; /* the iterator's connection */
    rs__redis *wr; /* the run thread's connection */
    rs_foreach *fe;

    rs__mutex mu;
    rs__cond cv;   /* room for more items (a record came) */
    entry entries; /* list head of live entries */
    slot *slots;   /* deque of handed-out items, by local index */
    size_t slots_cap, slots_head, slots_count;
    uint64_t base;     /* local index of slots[slots_head] */
    uint64_t given;    /* items handed out */
    uint64_t recorded; /* of those, recorded */
    _Atomic double item_seconds;

    /* iterator only */
    item *queue;
    size_t queue_len, queue_pos;
    int64_t last_state_ns, last_claim_ns, last_autoclaim_ns, idle_since;
    bool leave;
    /* Stopped, finished or deleted (set by the iterator, read by the run thread): nothing more
     * is sent, so that no key of a deleted run comes back without its expiry. */
    atomic_bool run_gone;

    /* run thread only */
    rs__buf out; /* the result entry being filled: "[rec,rec" */
    size_t out_records;
    entry **acks;
    size_t nacks, acks_cap;
    int sink_rc; /* the first failure to store records */
} serving;

/* ---- the worker handle -------------------------------------------------------------------- */

int rs_worker_create(const rs_worker_opts *opts, rs_worker **out)
{
    if (!opts || !out)
        return RS_EMISUSE;
    *out = NULL;
    rs_worker *w = rs__calloc(1, sizeof *w);
    if (!w)
        return RS_ENOMEM;
    w->opts = *opts;
    w->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    int rc = rs__redis_parse_url(opts->url, &w->addr, &w->msg);
    const char *prefix = opts->prefix ? opts->prefix : RS__RQ_DEFAULT_PREFIX;
    if (!rc && !rs__rq_prefix_ok(prefix))
        rc = rs__msg_set(&w->msg, RS_EINVAL,
                         "a key prefix is at most 64 printable characters without blanks");
    if (!rc && (opts->lease < 0 || opts->lease != opts->lease || opts->retry_for < 0))
        rc = rs__msg_set(&w->msg, RS_EINVAL, "the lease and retry time must be 0 or more");
    if (!rc) {
        char host[64] = "host";
        gethostname(host, sizeof host - 1);
        w->prefix = rs__strdup(prefix);
        w->name = opts->name ? rs__strdup(opts->name) : rs__format("%s-%ld", host, (long)getpid());
        if (!w->prefix || !w->name)
            rc = RS_ENOMEM;
    }
    if (!rc && (w->wake_fd < 0 || rs__mutex_init(&w->mu)))
        rc = RS_ESYSTEM;
    if (rc) {
        /* The message of a bad URL cannot reach the caller without a handle: keep it. */
        if (rc == RS_EINVAL) {
            *out = w;
            w->stop_level = -1; /* unusable: rs_worker_run refuses */
            return rc;
        }
        rs_worker_destroy(w);
        return rc;
    }
    w->opts.url = NULL;
    w->opts.prefix = w->prefix;
    w->opts.name = w->name;
    if (!w->opts.lease)
        w->opts.lease = 30;
    if (!w->opts.retry_for)
        w->opts.retry_for = 60;
    if (!w->opts.memory_limit)
        w->opts.memory_limit = (size_t)1 << 30;
    *out = w;
    return 0;
}

int rs_worker_destroy(rs_worker *w)
{
    if (!w)
        return 0;
    if (atomic_load(&w->running))
        return rs__msg_set(&w->msg, RS_EBUSY, "the worker is running");
    rs__redis_addr_free(&w->addr);
    rs__free(w->prefix);
    rs__free(w->name);
    rs__buf_free(&w->noticed);
    rs__msg_free(&w->msg);
    if (w->wake_fd >= 0) {
        close(w->wake_fd);
        rs__mutex_destroy(&w->mu);
    }
    rs__free(w);
    return 0;
}

const char *rs_worker_errmsg(const rs_worker *w)
{
    return w ? rs__msg_get(&w->msg) : "";
}

int rs_worker_stop(rs_worker *w)
{
    if (!w)
        return RS_EMISUSE;
    int level = atomic_load(&w->stop_level);
    if (level < 0)
        return 0;
    atomic_store(&w->stop_level, level >= 1 ? 2 : 1);
    uint64_t one = 1;
    ssize_t n = write(w->wake_fd, &one, sizeof one);
    (void)n;
    if (level >= 1) {
        rs__mutex_lock(&w->mu);
        if (w->current)
            rs_foreach_stop(w->current);
        rs__mutex_unlock(&w->mu);
    }
    return 0;
}

static void notice(rs_worker *w, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void notice(rs_worker *w, const char *fmt, ...)
{
    if (!w->opts.on_notice)
        return;
    va_list ap;
    va_start(ap, fmt);
    char *text = rs__vformat(fmt, ap);
    va_end(ap);
    if (text)
        w->opts.on_notice(text, w->opts.userdata);
    rs__free(text);
}

/* Reports a run that cannot be served, once per run. */
static void notice_once(rs_worker *w, const char *run, const char *why)
{
    char *needle = rs__format("\n%s\n", run);
    if (!needle || (w->noticed.data && strstr(w->noticed.data, needle))) {
        rs__free(needle);
        return;
    }
    if (w->noticed.len < (1 << 20)) {
        rs__buf_puts(&w->noticed, needle + (w->noticed.len ? 1 : 0));
    }
    rs__free(needle);
    notice(w, "run '%s' skipped: %s", run, why);
}

/* ---- the iterator (the engine's reader thread) -------------------------------------------- */

/* The most items held unrecorded: about 100 ms of work per runspace, within [throttle,
 * throttle * 4096]. */
static uint64_t limit_of(serving *c)
{
    unsigned t = c->w->opts.throttle ? c->w->opts.throttle : 1;
    double per = atomic_load(&c->item_seconds);
    double n = per > 0 ? 0.1 / per : 4; /* a few, until an item's duration is known */
    if (n < 1)
        n = 1;
    if (n > 4096)
        n = 4096;
    return (uint64_t)(n * t);
}

/* Reads the run's state: whether it is still to be served. */
static bool still_running(serving *c)
{
    int rc;
    rs__msg tmp = {0};
    const char *hg[] = {"HGET", c->key, "state"};
    redisReply *rep = rs__redis_cmd(c->rd, &rc, &tmp, 3, hg, NULL);
    rs__msg_free(&tmp);
    if (!rep)
        return rc != RS_EIO && rc != RS_ESTOPPED; /* lost: the run thread will learn it too */
    bool running = rep->type == REDIS_REPLY_STRING && strcmp(rep->str, "running") == 0;
    freeReplyObject(rep);
    return running;
}

/* Claims again, with a fresh idle time, the entries this worker holds. */
static void heartbeat(serving *c)
{
    rs__mutex_lock(&c->mu);
    size_t n = 0;
    for (entry *e = c->entries.next; e != &c->entries; e = e->next)
        n++;
    const char **argv = n ? rs__malloc((n + 6) * sizeof *argv) : NULL;
    size_t k = 0;
    char lease_ms[8] = "0";
    if (argv) {
        argv[k++] = "XCLAIM";
        argv[k++] = c->work;
        argv[k++] = RS__RQ_GROUP;
        argv[k++] = c->w->name;
        argv[k++] = lease_ms;
        for (entry *e = c->entries.next; e != &c->entries; e = e->next)
            argv[k++] = e->id;
        argv[k++] = "JUSTID";
    }
    /* The ids are copied into the command before the lock is released. */
    int rc = argv ? rs__redis_append(c->rd, (int)k, argv, NULL) : -1;
    rs__mutex_unlock(&c->mu);
    rs__free(argv);
    if (rc)
        return;
    redisReply *rep = NULL;
    rs__msg tmp = {0};
    if (rs__redis_exec(c->rd, &rep, 1, &tmp) == 0)
        freeReplyObject(rep);
    rs__msg_free(&tmp);
}

/* Acknowledges and deletes a work entry that is not valid (iterator's connection). */
static void drop_entry(serving *c, const char *id)
{
    const char *ack[] = {"XACK", c->work, RS__RQ_GROUP, id};
    const char *del[] = {"XDEL", c->work, id};
    redisReply *reps[2] = {0};
    rs__msg tmp = {0};
    if (!rs__redis_append(c->rd, 4, ack, NULL) && !rs__redis_append(c->rd, 3, del, NULL))
        rs__redis_exec(c->rd, reps, 2, &tmp);
    rs__msg_free(&tmp);
    for (int i = 0; i < 2; i++)
        if (reps[i])
            freeReplyObject(reps[i]);
}

/* Turns stream entries ([[id, [field, value...]], ...]) into queued items. */
static void take_entries(serving *c, const redisReply *entries)
{
    for (size_t i = 0; entries && i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= 48)
            continue;
        const char *id = e->element[0]->str;
        if (e->element[1]->type != REDIS_REPLY_ARRAY) /* deleted meanwhile */
            continue;
        const redisReply *v = rs__rq_field(e->element[1], "v");
        rs_value *arr = NULL;
        if (!v || rs_json_decode(v->str, v->len, &arr, NULL) || rs_value_type(arr) != RS_TARRAY ||
            rs_array_len(arr) == 0 || rs_array_len(arr) > RS__RQ_MAX_ENTRY) {
            notice(c->w, "run '%s': work entry %s is not a list of items: dropped", c->run, id);
            rs_value_destroy(arr);
            drop_entry(c, id);
            continue;
        }
        size_t n = rs_array_len(arr);
        entry *en = rs__calloc(1, sizeof *en);
        item *q = rs__realloc(c->queue, (c->queue_len + n) * sizeof *q);
        if (!en || !q) {
            rs__free(en);
            if (q)
                c->queue = q;
            rs_value_destroy(arr);
            continue; /* out of memory: it stays pending and comes back after the lease */
        }
        c->queue = q;
        memcpy(en->id, id, e->element[0]->len + 1);
        size_t good = 0;
        for (size_t j = 0; j < n; j++) {
            uint64_t index;
            rs_value *input;
            const char *why;
            if (rs__rq_decode_item(rs_array_get(arr, j), &index, &input, &why)) {
                notice(c->w, "run '%s': work entry %s: %s: dropped", c->run, id, why);
                continue;
            }
            c->queue[c->queue_len++] = (item){.e = en, .index = index, .input = input};
            good++;
        }
        rs_value_destroy(arr);
        if (!good) {
            rs__free(en);
            drop_entry(c, id);
            continue;
        }
        en->remaining = good;
        rs__mutex_lock(&c->mu);
        en->next = &c->entries;
        en->prev = c->entries.prev;
        c->entries.prev->next = en;
        c->entries.prev = en;
        rs__mutex_unlock(&c->mu);
    }
}

/* The entries of an XREADGROUP or XAUTOCLAIM reply. */
static const redisReply *entries_of(const redisReply *rep, bool autoclaim)
{
    if (!rep || rep->type != REDIS_REPLY_ARRAY)
        return NULL;
    if (autoclaim) /* [next-id, [entries], [deleted]] */
        return rep->elements >= 2 && rep->element[1]->type == REDIS_REPLY_ARRAY ? rep->element[1]
                                                                                : NULL;
    /* [[stream, [entries]]] */
    if (rep->elements == 1 && rep->element[0]->type == REDIS_REPLY_ARRAY &&
        rep->element[0]->elements == 2 && rep->element[0]->element[1]->type == REDIS_REPLY_ARRAY)
        return rep->element[0]->element[1];
    return NULL;
}

/* Fills the queue from Redis: reclaimed entries first, then new ones. */
static void fill(serving *c, uint64_t room)
{
    char count[16], lease[24];
    uint64_t n = room / 16 + 1;
    snprintf(count, sizeof count, "%llu", (unsigned long long)(n > 64 ? 64 : n));
    snprintf(lease, sizeof lease, "%lld", (long long)(c->w->opts.lease * 1000));
    int64_t now = rs__now_ns();
    int rc;
    redisReply *rep = NULL;
    rs__msg tmp = {0};
    if (now - c->last_autoclaim_ns > 200000000) {
        c->last_autoclaim_ns = now;
        const char *ac[] = {"XAUTOCLAIM", c->work, RS__RQ_GROUP, c->w->name,
                            lease,        "0-0",   "COUNT",      count};
        rep = rs__redis_cmd(c->rd, &rc, &tmp, 8, ac, NULL);
        take_entries(c, entries_of(rep, true));
        if (rep)
            freeReplyObject(rep);
        if (c->queue_len > c->queue_pos) {
            rs__msg_free(&tmp);
            return;
        }
    }
    const char *rg[] = {"XREADGROUP", "GROUP", RS__RQ_GROUP, c->w->name, "COUNT", count,
                        "BLOCK",      "200",   "STREAMS",    c->work,    ">"};
    rep = rs__redis_cmd(c->rd, &rc, &tmp, 11, rg, NULL);
    if (!rep && rc == RS_EIO && strstr(rs__msg_get(&tmp), "NOGROUP")) {
        c->leave = true; /* the run was deleted */
        atomic_store(&c->run_gone, true);
    }
    take_entries(c, entries_of(rep, false));
    if (rep)
        freeReplyObject(rep);
    rs__msg_free(&tmp);
}

/* Registers a handed-out item under the next local index (c->mu held). */
static int push_slot(serving *c, entry *e, uint64_t index)
{
    if (c->slots_count == c->slots_cap) {
        size_t cap = c->slots_cap ? c->slots_cap * 2 : 256;
        slot *s = rs__malloc(cap * sizeof *s);
        if (!s)
            return RS_ENOMEM;
        for (size_t i = 0; i < c->slots_count; i++)
            s[i] = c->slots[(c->slots_head + i) % c->slots_cap];
        rs__free(c->slots);
        c->slots = s;
        c->slots_cap = cap;
        c->slots_head = 0;
    }
    c->slots[(c->slots_head + c->slots_count++) % c->slots_cap] =
        (slot){.e = e, .index = index, .recorded = false};
    c->given++;
    return 0;
}

static int next_item(void *ud, rs_value **out, char **error)
{
    (void)error;
    serving *c = ud;
    rs_worker *w = c->w;
    for (;;) {
        if (atomic_load(&w->stop_level) || c->leave)
            return 0;
        int64_t now = rs__now_ns();
        if (now - c->last_state_ns > 250000000) {
            c->last_state_ns = now;
            if (!still_running(c)) {
                c->leave = true;
                atomic_store(&c->run_gone, true);
                rs_foreach_stop(c->fe);
                return 0;
            }
        }
        if (now - c->last_claim_ns > rs__seconds_to_ns(w->opts.lease / 3)) {
            c->last_claim_ns = now;
            heartbeat(c);
        }
        rs__mutex_lock(&c->mu);
        uint64_t held = c->given - c->recorded;
        uint64_t limit = limit_of(c);
        if (held >= limit) {
            rs__cond_wait_until(&c->cv, &c->mu, now + 200000000);
            rs__mutex_unlock(&c->mu);
            continue;
        }
        if (c->queue_pos < c->queue_len) {
            item it = c->queue[c->queue_pos++];
            if (push_slot(c, it.e, it.index)) {
                c->queue_pos--;
                rs__mutex_unlock(&c->mu);
                return 0; /* out of memory: end this serving; the rest comes back later */
            }
            rs__mutex_unlock(&c->mu);
            *out = it.input ? it.input : rs_value_null();
            c->idle_since = 0;
            return 1;
        }
        rs__mutex_unlock(&c->mu);
        c->queue_len = c->queue_pos = 0;
        fill(c, limit - held);
        if (c->queue_len)
            continue;
        if (!c->idle_since)
            c->idle_since = now;
        else if (held == 0 && now - c->idle_since > 1000000000)
            return 0; /* nothing to do here for a second: look at other runs */
    }
}

/* ---- the sink (the run thread) ------------------------------------------------------------ */

/* Frees the entries whose acknowledgement was sent (or is moot). */
static void free_acked(serving *c)
{
    rs__mutex_lock(&c->mu);
    for (size_t i = 0; i < c->nacks; i++) {
        entry *e = c->acks[i];
        e->prev->next = e->next;
        e->next->prev = e->prev;
        rs__free(e);
    }
    rs__mutex_unlock(&c->mu);
    c->nacks = 0;
}

/* Sends the result entry and acknowledges the entries whose items all have their record. */
static void flush(serving *c)
{
    if (atomic_load(&c->run_gone)) {
        c->out.len = 0;
        c->out_records = 0;
        free_acked(c);
        return;
    }
    if (!c->out_records && !c->nacks)
        return;
    size_t n = 0;
    int rc = 0;
    if (c->out_records) {
        rc = rs__buf_putc(&c->out, ']');
        const char *xa[] = {"XADD", c->results, "NOMKSTREAM", "*", "r", c->out.data};
        size_t lens[] = {4, strlen(c->results), 10, 1, 1, c->out.len};
        if (!rc && !(rc = rs__redis_append(c->wr, 6, xa, lens)))
            n++;
    }
    const char **ack = c->nacks ? rs__malloc((c->nacks + 3) * sizeof *ack) : NULL;
    const char **del = c->nacks ? rs__malloc((c->nacks + 2) * sizeof *del) : NULL;
    if (!rc && ack && del) {
        ack[0] = "XACK", ack[1] = c->work, ack[2] = RS__RQ_GROUP;
        del[0] = "XDEL", del[1] = c->work;
        for (size_t i = 0; i < c->nacks; i++)
            ack[i + 3] = del[i + 2] = c->acks[i]->id;
        if (!(rc = rs__redis_append(c->wr, (int)c->nacks + 3, ack, NULL)))
            n++;
        if (!rc && !(rc = rs__redis_append(c->wr, (int)c->nacks + 2, del, NULL)))
            n++;
    }
    rs__free(ack);
    rs__free(del);
    redisReply *reps[3] = {0};
    if (!rc)
        rc = rs__redis_exec(c->wr, reps, n, &c->w->msg);
    if (!rc && c->out_records && reps[0]->type == REDIS_REPLY_NIL)
        atomic_store(&c->run_gone, true); /* NOMKSTREAM: the run was deleted or finished */
    for (size_t i = 0; i < 3; i++)
        if (reps[i])
            freeReplyObject(reps[i]);
    if (rc && !c->sink_rc) {
        /* Not stored: these items come back to some worker after the lease. */
        c->sink_rc = rc;
        rs_foreach_stop(c->fe);
    }
    c->out.len = 0;
    c->out_records = 0;
    free_acked(c);
}

static void on_record(const rs_foreach_record *r, void *ud)
{
    serving *c = ud;
    rs__mutex_lock(&c->mu);
    uint64_t off = r->index - c->base;
    slot *s = off < c->slots_count ? &c->slots[(c->slots_head + off) % c->slots_cap] : NULL;
    entry *e = s ? s->e : NULL;
    uint64_t index = s ? s->index : 0;
    if (s) {
        s->recorded = true;
        c->recorded++;
        while (c->slots_count && c->slots[c->slots_head].recorded) {
            c->slots_head = (c->slots_head + 1) % c->slots_cap;
            c->slots_count--;
            c->base++;
        }
        rs__cond_signal(&c->cv);
    }
    rs__mutex_unlock(&c->mu);
    if (!e)
        return;
    if (r->runspace_id) {
        double per = atomic_load(&c->item_seconds);
        atomic_store(&c->item_seconds, per ? 0.9 * per + 0.1 * r->duration : r->duration);
    }
    /* A cancelled item was stopped here (the worker or the run stopped): no record, and its
     * entry is not acknowledged, so that the run gets its record from elsewhere. */
    if (r->status == RS_ITEM_CANCELLED) {
        e->tainted = true;
    } else {
        size_t mark = c->out.len;
        int rc = rs__buf_putc(&c->out, c->out_records ? ',' : '[');
        if (!rc)
            rc = rs__rq_encode_record(&c->out, index, r);
        if (rc) {
            c->out.len = mark;
            e->tainted = true;
        } else {
            c->out_records++;
        }
    }
    if (--e->remaining == 0) {
        if (e->tainted) {
            rs__mutex_lock(&c->mu);
            e->prev->next = e->next;
            e->next->prev = e->prev;
            rs__mutex_unlock(&c->mu);
            rs__free(e);
        } else if (c->nacks < c->acks_cap ||
                   (c->acks = rs__realloc(c->acks, (c->acks_cap = c->acks_cap * 2 + 64) *
                                                       sizeof *c->acks))) {
            c->acks[c->nacks++] = e;
        }
    }
    if (c->out.len > ((size_t)4 << 20))
        flush(c);
}

static void on_progress(const rs_foreach_progress *p, void *ud)
{
    (void)p;
    flush(ud);
}

/* ---- serving one run ---------------------------------------------------------------------- */

/* Builds the run's session state under the worker's own profile and limit. NULL with the
 * reason in *why (a new string). */
static rs_iss *make_iss(rs_worker *w, const redisReply *run, char **why)
{
    rs_iss *iss = NULL;
    rs_value *vars = NULL, *mods = NULL;
    char dir[] = "/tmp/runspace-worker-XXXXXX";
    bool have_dir = false;
    const redisReply *v = rs__rq_field(run, "variables");
    const redisReply *m = rs__rq_field(run, "modules");
    int rc = rs_iss_create(w->opts.profile, &iss);
    rs_limits limits = {.memory_bytes = w->opts.memory_limit};
    if (!rc)
        rc = rs_iss_set_limits(iss, &limits);
    if (rc) {
        *why = rs__strdup("out of memory");
        goto fail;
    }
    if (!v || rs_json_decode(v->str, v->len, &vars, NULL) || rs_value_type(vars) != RS_TMAP || !m ||
        rs_json_decode(m->str, m->len, &mods, NULL) || rs_value_type(mods) != RS_TARRAY) {
        *why = rs__strdup("its variables or modules are not valid");
        goto fail;
    }
    for (size_t i = 0; i < rs_map_len(vars); i++) {
        if (rs_iss_set_variable(iss, rs_map_key(vars, i, NULL), rs_map_value(vars, i))) {
            *why = rs__format("variable: %s", rs_iss_errmsg(iss));
            goto fail;
        }
    }
    for (size_t i = 0; i < rs_array_len(mods); i++) {
        const rs_value *mod = rs_array_get(mods, i);
        const rs_value *name = rs_array_get(mod, 0), *src = rs_array_get(mod, 1);
        const char *nm = rs_value_get_string(name, NULL);
        size_t srclen = 0;
        const char *text = rs_value_get_string(src, &srclen);
        if (rs_value_type(mod) != RS_TARRAY || rs_array_len(mod) != 2 ||
            rs_value_type(name) != RS_TSTRING || rs_value_type(src) != RS_TSTRING ||
            !rs__rq_name_ok(nm) || strchr(nm, '.')) {
            *why = rs__strdup("a module is not [name, source] with a plain name");
            goto fail;
        }
        if (!have_dir && !(have_dir = mkdtemp(dir) != NULL)) {
            *why = rs__format("cannot make a directory for its modules: %s", strerror(errno));
            goto fail;
        }
        char *path = rs__format("%s/%s.lua", dir, nm);
        FILE *f = path ? fopen(path, "wb") : NULL;
        bool ok = f && fwrite(text, 1, srclen, f) == srclen;
        if (f && fclose(f))
            ok = false;
        rc = ok ? rs_iss_add_module(iss, path) : RS_EIO;
        if (path)
            unlink(path);
        rs__free(path);
        if (rc) {
            *why = rs__format("module %s: %s", nm, ok ? rs_iss_errmsg(iss) : "cannot be written");
            goto fail;
        }
    }
    if (have_dir)
        rmdir(dir);
    rs_value_destroy(vars);
    rs_value_destroy(mods);
    return iss;
fail:
    if (have_dir)
        rmdir(dir);
    rs_value_destroy(vars);
    rs_value_destroy(mods);
    rs_iss_destroy(iss);
    return NULL;
}

/* Sets what the run runs on fe: its script or command, arguments and parameters. */
static int set_work(rs_foreach *fe, const redisReply *run, char **why)
{
    const redisReply *script = rs__rq_field(run, "script");
    const redisReply *command = rs__rq_field(run, "command");
    const redisReply *args = rs__rq_field(run, "arguments");
    const redisReply *params = rs__rq_field(run, "parameters");
    rs_value *a = NULL, *p = NULL;
    int rc = 0;
    if (!script || !command || !args || !params || rs_json_decode(args->str, args->len, &a, NULL) ||
        rs_value_type(a) != RS_TARRAY || rs_json_decode(params->str, params->len, &p, NULL) ||
        rs_value_type(p) != RS_TMAP) {
        *why = rs__strdup("its script, arguments or parameters are not valid");
        rc = RS_EINVAL;
    } else if (command->len) {
        rc = rs_foreach_set_command(fe, command->str);
    } else {
        /* A run of an older submitter has no script_name: the script is then unnamed. */
        const redisReply *name = rs__rq_field(run, "script_name");
        rc = rs_foreach_set_script_named(fe, script->str, script->len,
                                         name && name->len ? name->str : NULL);
    }
    if (rc && !*why)
        *why = rs__strdup(rs_foreach_errmsg(fe));
    while (!rc && rs_array_len(a))
        rc = rs_foreach_add_argument(fe, rs_array_take(a, 0));
    for (size_t i = 0; !rc && i < rs_map_len(p); i++)
        rc =
            rs_foreach_add_parameter(fe, rs_map_key(p, i, NULL), rs_value_copy(rs_map_value(p, i)));
    if (rc && !*why)
        *why = rs__strdup(rs_foreach_errmsg(fe));
    rs_value_destroy(a);
    rs_value_destroy(p);
    return rc;
}

/* Serves one run until it has nothing for this worker. Returns 0, or RS_EIO when Redis is
 * lost. */
static int serve(rs_worker *w, rs__redis *main, const char *run, const redisReply *hash)
{
    serving c = {.w = w, .run = run};
    c.entries.next = c.entries.prev = &c.entries;
    char *why = NULL;
    double timeout = 0;
    uint64_t retries = 0;
    const redisReply *t = rs__rq_field(hash, "timeout");
    if (!t || sscanf(t->str, "%lf", &timeout) != 1 || !(timeout >= 0 && timeout <= 1e9) ||
        !rs__rq_field_u64(hash, "retries", &retries) || retries > 1000) {
        notice_once(w, run, "its timeout or retries are not valid");
        return 0;
    }
    rs_iss *iss = make_iss(w, hash, &why);
    if (!iss) {
        notice_once(w, run, why ? why : "out of memory");
        rs__free(why);
        return 0;
    }
    /* The pool's `shared` is the run's store on Redis, the same for every worker. */
    rs_shared *shared = NULL;
    rs_pool *pool = NULL;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned throttle = w->opts.throttle ? w->opts.throttle : cpus > 0 ? (unsigned)cpus : 1;
    int prc =
        rs__redisq_shared_create(&w->addr, w->prefix, run, w->opts.retry_for, &shared, &w->msg);
    if (prc) {
        rs_iss_destroy(iss);
        return prc == RS_EIO ? prc : 0;
    }
    rs_pool_opts po = {.iss = iss,
                       .min_runspaces = 1,
                       .max_runspaces = throttle,
                       .idle_timeout = -1,
                       .shared = shared};
    prc = rs_pool_create(&po, &pool);
    rs_shared_destroy(shared); /* the pool keeps its reference */
    if (!prc && (prc = rs_pool_open(pool)))
        notice_once(w, run, rs_pool_errmsg(pool));
    if (prc) {
        rs_pool_destroy(pool);
        rs_iss_destroy(iss);
        return 0;
    }
    rs_foreach_opts o = {.pool = pool,
                         .throttle = throttle,
                         .timeout = timeout,
                         .retries = (unsigned)retries,
                         .next = next_item,
                         .input_userdata = &c,
                         .on_record = on_record,
                         .on_progress = on_progress,
                         .userdata = &c};
    int rc = rs_foreach_create(&o, &c.fe);
    rs_iss_destroy(iss);
    if (!rc && set_work(c.fe, hash, &why)) {
        notice_once(w, run, why ? why : "out of memory");
        rs__free(why);
        rs_foreach_destroy(c.fe);
        rs_pool_destroy(pool);
        return 0;
    }
    c.key = rs__rq_key(w->prefix, run, "");
    c.work = rs__rq_key(w->prefix, run, ":work");
    c.results = rs__rq_key(w->prefix, run, ":results");
    c.wr = main;
    if (rc || !c.key || !c.work || !c.results || rs__mutex_init(&c.mu) || rs__cond_init(&c.cv)) {
        rc = rs__msg_set(&w->msg, RS_ENOMEM, "out of memory");
        goto out;
    }
    rc = rs__redis_open(&w->addr, w->opts.retry_for, w->wake_fd, &c.rd, &w->msg);
    if (rc)
        goto out;
    rs__mutex_lock(&w->mu);
    w->current = c.fe;
    bool hard = atomic_load(&w->stop_level) >= 2;
    rs__mutex_unlock(&w->mu);
    if (hard)
        rs_foreach_stop(c.fe);
    rs_foreach_summary sum;
    rs_foreach_run(c.fe, &sum);
    rs__mutex_lock(&w->mu);
    w->current = NULL;
    rs__mutex_unlock(&w->mu);
    flush(&c);
    rc = c.sink_rc == RS_ESTOPPED ? 0 : c.sink_rc;
    if (sum.total)
        notice(w, "run '%s': %llu record%s stored", run,
               (unsigned long long)sum.total - sum.cancelled,
               sum.total - sum.cancelled == 1 ? "" : "s");
out:
    for (size_t i = c.queue_pos; i < c.queue_len; i++)
        rs_value_destroy(c.queue[i].input);
    rs__free(c.queue);
    while (c.entries.next != &c.entries) {
        entry *e = c.entries.next;
        c.entries.next = e->next;
        rs__free(e);
    }
    rs__free(c.slots);
    rs__free(c.acks);
    rs__buf_free(&c.out);
    rs_foreach_destroy(c.fe);
    rs_pool_destroy(pool);
    rs__redis_close(c.rd);
    if (c.key) {
        rs__cond_destroy(&c.cv);
        rs__mutex_destroy(&c.mu);
    }
    rs__free(c.key);
    rs__free(c.work);
    rs__free(c.results);
    return rc;
}

/* Looks at every run once and serves those that are running. *served tells whether any was. */
static int round_of_runs(rs_worker *w, rs__redis *main, bool *served)
{
    char *set = rs__format("%sruns", w->prefix);
    if (!set)
        return rs__msg_set(&w->msg, RS_ENOMEM, "out of memory");
    const char *sm[] = {"SMEMBERS", set};
    int rc;
    redisReply *runs = rs__redis_cmd(main, &rc, &w->msg, 2, sm, NULL);
    rs__free(set);
    if (!runs)
        return rc;
    for (size_t i = 0; runs->type == REDIS_REPLY_ARRAY && i < runs->elements; i++) {
        if (atomic_load(&w->stop_level))
            break;
        const redisReply *name = runs->element[i];
        if (name->type != REDIS_REPLY_STRING || !rs__rq_name_ok(name->str) ||
            strlen(name->str) != name->len)
            continue; /* not a run's name: nothing of ours */
        char *key = rs__rq_key(w->prefix, name->str, "");
        const char *ga[] = {"HGETALL", key};
        redisReply *hash = key ? rs__redis_cmd(main, &rc, &w->msg, 2, ga, NULL) : NULL;
        rs__free(key);
        if (!hash) {
            if (rc == RS_EIO || rc == RS_ESTOPPED) {
                freeReplyObject(runs);
                return rc;
            }
            continue;
        }
        const redisReply *ver = rs__rq_field(hash, "version");
        const redisReply *state = rs__rq_field(hash, "state");
        if (hash->type == REDIS_REPLY_ARRAY && hash->elements &&
            (!ver || strcmp(ver->str, RS__RQ_VERSION) != 0)) {
            notice_once(w, name->str,
                        "it was written by another version of runspace (this worker speaks "
                        "protocol " RS__RQ_VERSION ")");
        } else if (state && strcmp(state->str, "running") == 0) {
            rc = serve(w, main, name->str, hash);
            *served = true;
        }
        freeReplyObject(hash);
        if (rc) {
            freeReplyObject(runs);
            return rc;
        }
    }
    freeReplyObject(runs);
    return 0;
}

int rs_worker_run(rs_worker *w)
{
    if (!w)
        return RS_EMISUSE;
    if (atomic_load(&w->stop_level) < 0)
        return RS_EINVAL;
    bool expected = false;
    if (!atomic_compare_exchange_strong(&w->running, &expected, true))
        return rs__msg_set(&w->msg, RS_EBUSY, "the worker is running");
    rs__redis *main = NULL;
    int rc = rs__redis_open(&w->addr, w->opts.retry_for, w->wake_fd, &main, &w->msg);
    if (!rc)
        notice(w, "worker %s serving runs from Redis at %s:%d", w->name, w->addr.host,
               w->addr.port);
    /* New runs are announced on PREFIX runs:new: the worker notes where that stream ends,
     * looks at every run, then waits (up to a second) for an announcement made since. */
    char *news = rs__format("%sruns:new", w->prefix);
    char last[48] = "0";
    if (!rc && !news)
        rc = rs__msg_set(&w->msg, RS_ENOMEM, "out of memory");
    while (!rc && !atomic_load(&w->stop_level)) {
        const char *rev[] = {"XREVRANGE", news, "+", "-", "COUNT", "1"};
        redisReply *top = rs__redis_cmd(main, &rc, &w->msg, 6, rev, NULL);
        if (!top)
            break;
        if (top->type == REDIS_REPLY_ARRAY && top->elements == 1 &&
            top->element[0]->type == REDIS_REPLY_ARRAY && top->element[0]->elements == 2 &&
            top->element[0]->element[0]->type == REDIS_REPLY_STRING &&
            top->element[0]->element[0]->len < sizeof last)
            memcpy(last, top->element[0]->element[0]->str, top->element[0]->element[0]->len + 1);
        freeReplyObject(top);
        bool served = false;
        rc = round_of_runs(w, main, &served);
        if (rc || served || atomic_load(&w->stop_level))
            continue;
        const char *xr[] = {"XREAD", "COUNT", "1", "BLOCK", "1000", "STREAMS", news, last};
        redisReply *rep = rs__redis_cmd(main, &rc, &w->msg, 8, xr, NULL);
        if (rep)
            freeReplyObject(rep);
    }
    rs__free(news);
    if (rc == RS_ESTOPPED)
        rc = 0;
    rs__redis_close(main);
    atomic_store(&w->running, false);
    return rc;
}
