/*
 * redisq_submit.c -- the submitter of a run on Redis: it stores the run, streams the inputs
 * into the run's work stream and delivers the records that come back, one per input.
 *
 * DESIGN
 * One thread: the run thread of rs_foreach_run. It alternates between feeding and
 * collecting. Feeding reads inputs from the iterator into a work entry (up to `entry` items,
 * a size that follows the items' measured duration so that an entry is about 50 ms of
 * work; 4 items, and no more than 64 in all, until the first records say how long an item
 * takes) and adds it with XADD, then advances the run's `submitted` field, in one pipeline;
 * it stops while `window` items are undelivered (back-pressure: Redis and this process hold
 * at most the window, whatever the length of the input). Collecting reads the result stream
 * with XREAD (blocking up to 100 ms when there is nothing to feed) and delivers each record
 * through the engine's remote hooks (foreach_int.h), keeping the first record of each index
 * (the `have` set) and dropping the duplicates that at-least-once execution produces.
 *
 * The results stream is trimmed (XTRIM MINID) behind what was delivered more than 2 s ago,
 * so that a journal (synced every 50 ms) holds those records before Redis lets them go.
 *
 * Resume: the run's hash names what it runs (digest) and how far the dead submitter got
 * (submitted). The results still in Redis are delivered first; inputs below `submitted` are
 * then read but not sent again (their records are on their way), unless the run had been
 * stopped, in which case whatever has no record is sent again.
 *
 * Stop (rs_foreach_stop, fail-fast, a journal that fails): the run's state becomes
 * "stopped", so that workers drop its items; every undelivered item gets a cancelled record
 * at once (its input null: the submitter does not keep inputs), and fail-fast reads the rest
 * of the input to give each a cancelled record too.
 */
#include "foreach_int.h"
#include "idxset.h"
#include "json.h"
#include "redisq.h"
#include "thread.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define WINDOW 65536
#define FIRST_WINDOW 64 /* undelivered items before any duration is known */
#define TRIM_LAG_NS 2000000000LL

typedef struct submitter {
    rs_foreach *fe;
    const rs__redisq_spec *spec;
    rs__foreach_what_t what;
    rs__redis *r;
    char *key, *work, *results;
    rs__idxset have;       /* indexes whose record was delivered (or is in the journal) */
    uint64_t next_index;   /* the next input to read */
    uint64_t submitted;    /* every index below it is in the work stream */
    uint64_t resent_below; /* resume: indexes below it were sent by the dead submitter */
    bool resend_all;       /* resume of a stopped run: send again what has no record */
    uint64_t pending;      /* read (and sent or awaited), no record yet */
    bool input_done;
    rs__buf entry; /* the work entry being filled: "[[i,v],..." */
    size_t entry_items;
    size_t entry_max;
    double item_seconds; /* running average of the items' durations */
    char last_id[48];    /* of the results stream */
    char trim_id[48];    /* a delivered id at least TRIM_LAG_NS old */
    char mark_id[48];
    int64_t mark_ns;
    bool failed_fast;
    uint64_t dropped; /* result entries or records that were not valid */
} submitter;

/* ---- the spec (rs_foreach_set_redis) ------------------------------------------------------ */

void rs__redisq_spec_free(rs__redisq_spec *spec)
{
    if (!spec)
        return;
    rs__redis_addr_free(&spec->addr);
    rs__free(spec->prefix);
    rs__free(spec->run);
    rs__free(spec->variables);
    rs__free(spec->modules);
    rs__free(spec);
}

/* A module file's source as [name, source] appended to b. */
static int add_module(rs__buf *b, const char *path, rs__msg *msg)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return rs__msg_set(msg, errno == ENOENT ? RS_ENOENT : RS_EIO, "cannot read module '%s': %s",
                           path, strerror(errno));
    rs__buf text = {0};
    char chunk[8192];
    size_t n;
    int rc = 0;
    while (!rc && (n = fread(chunk, 1, sizeof chunk, f)) > 0)
        rc = text.len + n > ((size_t)64 << 20) ? RS_ELIMIT : rs__buf_append(&text, chunk, n);
    bool err = ferror(f);
    fclose(f);
    if (err || rc) {
        rs__buf_free(&text);
        return rs__msg_set(msg, err ? RS_EIO : rc, "cannot read module '%s'", path);
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t blen = strlen(base);
    if (blen > 4 && strcmp(base + blen - 4, ".lua") == 0)
        blen -= 4;
    rc = rs__buf_putc(b, '[');
    if (!rc)
        rc = rs__json_encode_text(b, base, blen);
    if (!rc)
        rc = rs__buf_putc(b, ',');
    if (!rc)
        rc = rs__json_encode_text(b, text.data ? text.data : "", text.len);
    if (!rc)
        rc = rs__buf_putc(b, ']');
    rs__buf_free(&text);
    return rc ? rs__msg_set(msg, rc, "out of memory") : 0;
}

/* The message handle of fe, for errors found while copying the options. */
static rs__msg *msg_of(rs_foreach *fe)
{
    rs__foreach_what_t w;
    rs__foreach_what(fe, &w);
    return w.msg;
}

int rs_foreach_set_redis(rs_foreach *fe, const rs_redis_opts *opts)
{
    if (!fe || !opts)
        return RS_EMISUSE;
    rs__msg *msg = msg_of(fe);
    if (opts->retry_for < 0 || opts->ttl < 0 || opts->retry_for != opts->retry_for ||
        opts->ttl != opts->ttl)
        return rs__msg_set(msg, RS_EINVAL, "retry_for and ttl must be 0 or more");
    if (opts->run && !rs__rq_name_ok(opts->run))
        return rs__msg_set(msg, RS_EINVAL,
                           "a run's name is 1 to 64 letters, digits, '.', '_' or '-', not '%.80s'",
                           opts->run);
    if (opts->resume && !opts->run)
        return rs__msg_set(msg, RS_EINVAL, "a resume needs the run's name");
    rs__foreach_what_t what;
    rs__foreach_what(fe, &what);
    /* The records a resume finds in Redis come in any order, beyond any reorder window. */
    if (opts->resume && what.opts->ordered)
        return rs__msg_set(msg, RS_EINVAL, "an ordered run on Redis cannot be resumed");
    const char *prefix = opts->prefix ? opts->prefix : RS__RQ_DEFAULT_PREFIX;
    if (!rs__rq_prefix_ok(prefix))
        return rs__msg_set(msg, RS_EINVAL,
                           "a key prefix is at most 64 printable characters without blanks");
    if (opts->variables && rs_value_type(opts->variables) != RS_TMAP)
        return rs__msg_set(msg, RS_EINVAL, "the variables must be a map");
    rs__redisq_spec *s = rs__calloc(1, sizeof *s);
    if (!s)
        return rs__msg_set(msg, RS_ENOMEM, "out of memory");
    int rc = rs__redis_parse_url(opts->url, &s->addr, msg);
    if (rc) {
        rs__free(s);
        return rc;
    }
    s->resume = opts->resume;
    s->retry_for = opts->retry_for > 0 ? opts->retry_for : 60;
    s->ttl = opts->ttl > 0 ? opts->ttl : 86400;
    s->prefix = rs__strdup(prefix);
    if (opts->run) {
        s->run = rs__strdup(opts->run);
    } else {
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        s->run = rs__format("run-%lld-%ld", (long long)ts.tv_sec, (long)getpid());
    }
    rs__buf vars = {0}, mods = {0};
    if (!s->prefix || !s->run)
        rc = rs__msg_set(msg, RS_ENOMEM, "out of memory");
    if (!rc && opts->variables &&
        rs__json_encode_ex(opts->variables, RS_JSON_REPAIR, "variables", 0, &vars, NULL))
        rc = rs__msg_set(msg, RS_EINVAL, "the variables cannot be written as JSON");
    if (!rc)
        rc = rs__buf_putc(&mods, '[');
    for (size_t i = 0; !rc && i < opts->nmodules; i++) {
        if (i)
            rc = rs__buf_putc(&mods, ',');
        if (!rc)
            rc = add_module(&mods, opts->modules[i], msg);
    }
    if (!rc)
        rc = rs__buf_putc(&mods, ']');
    if (!rc && !vars.len)
        rc = rs__buf_puts(&vars, "{}");
    if (rc) {
        if (rc == RS_ENOMEM)
            rs__msg_set(msg, rc, "out of memory");
        rs__buf_free(&vars);
        rs__buf_free(&mods);
        rs__redisq_spec_free(s);
        return rc;
    }
    s->variables = rs__buf_detach(&vars, NULL);
    s->modules = rs__buf_detach(&mods, NULL);
    return rs__foreach_set_redis_spec(fe, s);
}

/* ---- the run on Redis --------------------------------------------------------------------- */

static int fail(submitter *s, int rc, const char *fmt, const char *arg)
{
    return rs__msg_set(s->what.msg, rc, fmt, arg);
}

/* Stores a new run, or reads back the one a resume re-attaches to. */
static int attach(submitter *s)
{
    const rs__foreach_what_t *w = &s->what;
    rs__buf args = {0}, params = {0};
    int rc = 0;
    if (w->args)
        rc = rs__json_encode_ex(w->args, RS_JSON_REPAIR, "arguments", 0, &args, NULL);
    else
        rc = rs__buf_puts(&args, "[]");
    if (!rc && w->params)
        rc = rs__json_encode_ex(w->params, RS_JSON_REPAIR, "parameters", 0, &params, NULL);
    else if (!rc)
        rc = rs__buf_puts(&params, "{}");
    char digest[72];
    if (!rc)
        rs__rq_digest(w->script, w->script_len, w->command, args.data, params.data,
                      s->spec->variables, s->spec->modules, digest);
    if (rc) {
        rs__buf_free(&args);
        rs__buf_free(&params);
        return rs__msg_set(w->msg, rc, "the arguments cannot be written as JSON");
    }
    const char *run = s->spec->run;
    redisReply *rep = NULL;
    if (!s->spec->resume) {
        const char *nx[] = {"HSETNX", s->key, "version", RS__RQ_VERSION};
        rep = rs__redis_cmd(s->r, &rc, w->msg, 4, nx, NULL);
        if (rep && rep->type == REDIS_REPLY_INTEGER && rep->integer == 0)
            rc = fail(s, RS_EEXIST,
                      "a run named '%s' exists on Redis (resume it, or delete it with "
                      "`runspace runs --delete NAME`)",
                      run);
        freeReplyObject(rep);
        if (!rc) {
            char timeout[32], retries[16], created[32];
            snprintf(timeout, sizeof timeout, "%.17g", w->opts->timeout);
            snprintf(retries, sizeof retries, "%u", w->opts->retries);
            snprintf(created, sizeof created, "%.3f", rs__wall_time());
            const char *hs[] = {"HSET",       s->key,
                                "state",      "running",
                                "digest",     digest,
                                "script",     w->script ? w->script : "",
                                "command",    w->command ? w->command : "",
                                "arguments",  args.data,
                                "parameters", params.data,
                                "variables",  s->spec->variables,
                                "modules",    s->spec->modules,
                                "script_name", w->script_name ? w->script_name : "",
                                "timeout",    timeout,
                                "retries",    retries,
                                "submitted",  "0",
                                "done",       "0",
                                "total",      "0",
                                "created",    created};
            size_t lens[RS__ARRAY_SIZE(hs)];
            for (size_t i = 0; i < RS__ARRAY_SIZE(hs); i++)
                lens[i] = strlen(hs[i]);
            if (w->script)
                lens[7] = w->script_len;
            const char *grp[] = {"XGROUP", "CREATE", s->work, RS__RQ_GROUP, "0", "MKSTREAM"};
            /* The results stream exists from the start (an empty stream made with a group no
             * one reads), so that workers add to it with NOMKSTREAM and never bring back the
             * results of a run that was deleted or finished. */
            const char *rgrp[] = {"XGROUP", "CREATE", s->results, "none", "$", "MKSTREAM"};
            const char *runs[] = {"SADD", NULL, run};
            char *set = rs__format("%sruns", s->spec->prefix);
            char *news = rs__format("%sruns:new", s->spec->prefix);
            runs[1] = set;
            /* Workers waiting for work wake on this stream. */
            const char *ann[] = {"XADD", news, "MAXLEN", "~", "1000", "*", "run", run};
            redisReply *reps[5] = {0};
            if (!set || !news)
                rc = rs__msg_set(w->msg, RS_ENOMEM, "out of memory");
            if (!rc)
                rc = rs__redis_append(s->r, (int)RS__ARRAY_SIZE(hs), hs, lens);
            if (!rc)
                rc = rs__redis_append(s->r, 6, grp, NULL);
            if (!rc)
                rc = rs__redis_append(s->r, 3, runs, NULL);
            if (!rc)
                rc = rs__redis_append(s->r, 8, ann, NULL);
            if (!rc)
                rc = rs__redis_append(s->r, 6, rgrp, NULL);
            if (!rc)
                rc = rs__redis_exec(s->r, reps, 5, w->msg);
            for (int i = 0; !rc && i < 5; i++) {
                if (reps[i]->type == REDIS_REPLY_ERROR && !strstr(reps[i]->str, "BUSYGROUP"))
                    rc = rs__msg_set(w->msg, RS_EIO, "Redis refused to store the run: %.200s",
                                     reps[i]->str);
            }
            for (int i = 0; i < 5; i++)
                if (reps[i])
                    freeReplyObject(reps[i]);
            rs__free(set);
            rs__free(news);
        }
    } else {
        const char *ga[] = {"HGETALL", s->key};
        rep = rs__redis_cmd(s->r, &rc, w->msg, 2, ga, NULL);
        if (rep && (rep->type != REDIS_REPLY_ARRAY || rep->elements == 0))
            rc = fail(s, RS_ENOENT, "there is no run named '%s' on Redis", run);
        const redisReply *ver = rc ? NULL : rs__rq_field(rep, "version");
        const redisReply *dig = rc ? NULL : rs__rq_field(rep, "digest");
        const redisReply *state = rc ? NULL : rs__rq_field(rep, "state");
        if (!rc && (!ver || strcmp(ver->str, RS__RQ_VERSION) != 0))
            rc = fail(s, RS_EINVAL,
                      "the run '%s' on Redis was written by another version of runspace", run);
        else if (!rc && (!dig || strcmp(dig->str, digest) != 0))
            rc = fail(s, RS_EINVAL,
                      "the run '%s' on Redis belongs to another run (another script, "
                      "arguments, parameters, variables or modules)",
                      run);
        else if (!rc && (!state || !rs__rq_field_u64(rep, "submitted", &s->resent_below) ||
                         s->resent_below > RS__RQ_MAX_INDEX))
            rc = fail(s, RS_EINVAL, "the run '%s' on Redis is damaged (no state or count)", run);
        if (!rc && strcmp(state->str, "done") == 0)
            rc = fail(s, RS_EINVAL,
                      "the run '%s' on Redis is finished: its records were all delivered", run);
        if (!rc)
            s->resend_all = strcmp(state->str, "stopped") == 0;
        freeReplyObject(rep);
        if (!rc) {
            const char *hs[] = {"HSET", s->key, "state", "running"};
            const char *p1[] = {"PERSIST", s->key};
            const char *p2[] = {"PERSIST", s->work};
            const char *p3[] = {"PERSIST", s->results};
            const char *grp[] = {"XGROUP", "CREATE", s->work, RS__RQ_GROUP, "0", "MKSTREAM"};
            redisReply *reps[5] = {0};
            rc = rs__redis_append(s->r, 4, hs, NULL);
            if (!rc)
                rc = rs__redis_append(s->r, 2, p1, NULL);
            if (!rc)
                rc = rs__redis_append(s->r, 2, p2, NULL);
            if (!rc)
                rc = rs__redis_append(s->r, 2, p3, NULL);
            if (!rc)
                rc = rs__redis_append(s->r, 6, grp, NULL);
            if (!rc)
                rc = rs__redis_exec(s->r, reps, 5, w->msg);
            for (int i = 0; i < 5; i++)
                if (reps[i])
                    freeReplyObject(reps[i]);
            s->submitted = s->resent_below;
        }
    }
    rs__buf_free(&args);
    rs__buf_free(&params);
    return rc;
}

/* Whether index was sent by the submitter a resume replaces, its record still to come. */
static bool awaited(const submitter *s, uint64_t index)
{
    return index < s->resent_below && !s->resend_all;
}

/* Delivers one decoded record unless its index already has one. */
static void take_record(submitter *s, rs__rq_record *rec)
{
    bool known = rec->index < s->next_index || rec->index < s->resent_below;
    if (!known || rs__idxset_has(&s->have, rec->index) ||
        rs__foreach_remote_journaled(s->fe, rec->index) ||
        (rec->status == RS_ITEM_CANCELLED && s->spec->resume && !s->failed_fast &&
         rec->index < s->resent_below)) {
        /* A duplicate (an item that ran twice), one for an index never sent (garbage), or a
         * cancelled record of a stop the resume undoes: dropped. */
        if (!known)
            s->dropped++;
        rs_value_destroy(rec->input);
        rs_value_destroy(rec->output);
        return;
    }
    if (rs__idxset_put(&s->have, rec->index, true)) {
        rs_value_destroy(rec->input);
        rs_value_destroy(rec->output);
        return; /* out of memory: it stays pending, and a duplicate may still deliver it */
    }
    if (rec->index < s->next_index)
        s->pending--;
    if (rec->runspace_id || rec->duration > 0)
        s->item_seconds =
            s->item_seconds ? 0.9 * s->item_seconds + 0.1 * rec->duration : rec->duration;
    rs__remote_outcome o = {.status = rec->status,
                            .error = rec->error,
                            .duration = rec->duration,
                            .start = rec->start,
                            .runspace_id = rec->runspace_id,
                            .attempts = rec->attempts};
    if (s->what.opts->fail_fast && (rec->status == RS_ITEM_ERROR || rec->status == RS_ITEM_TIMEOUT))
        s->failed_fast = true;
    rs__foreach_remote_deliver(s->fe, rec->index, rec->input, rec->output, &o);
}

/* Delivers the records of one result entry. */
static void take_entry(submitter *s, const redisReply *fields)
{
    const redisReply *r = rs__rq_field(fields, "r");
    rs_value *arr = NULL;
    if (!r || rs_json_decode(r->str, r->len, &arr, NULL) || rs_value_type(arr) != RS_TARRAY) {
        s->dropped++;
        rs_value_destroy(arr);
        return;
    }
    for (size_t i = 0; i < rs_array_len(arr); i++) {
        rs__rq_record rec;
        const char *why;
        if (rs__rq_decode_record(rs_array_get(arr, i), &rec, &why)) {
            s->dropped++;
            continue;
        }
        take_record(s, &rec);
    }
    rs_value_destroy(arr);
}

/* Reads the results stream once (blocking up to block_ms when > 0) and delivers what came.
 * Returns 0 or the connection's error. */
static int collect(submitter *s, int block_ms, size_t count)
{
    char cnt[16], blk[16];
    snprintf(cnt, sizeof cnt, "%zu", count);
    snprintf(blk, sizeof blk, "%d", block_ms);
    const char *xr[] = {"XREAD", "COUNT", cnt, "BLOCK", blk, "STREAMS", s->results, s->last_id};
    const char *xr_now[] = {"XREAD", "COUNT", cnt, "STREAMS", s->results, s->last_id};
    int rc;
    redisReply *rep = block_ms > 0 ? rs__redis_cmd(s->r, &rc, s->what.msg, 8, xr, NULL)
                                   : rs__redis_cmd(s->r, &rc, s->what.msg, 6, xr_now, NULL);
    if (!rep)
        return rc;
    /* [[stream, [[id, [field, value, ...]], ...]]] or nil */
    if (rep->type == REDIS_REPLY_ARRAY && rep->elements == 1 &&
        rep->element[0]->type == REDIS_REPLY_ARRAY && rep->element[0]->elements == 2 &&
        rep->element[0]->element[1]->type == REDIS_REPLY_ARRAY) {
        const redisReply *entries = rep->element[0]->element[1];
        for (size_t i = 0; i < entries->elements; i++) {
            const redisReply *e = entries->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
                e->element[0]->type != REDIS_REPLY_STRING ||
                e->element[0]->len >= sizeof s->last_id) {
                s->dropped++;
                continue;
            }
            memcpy(s->last_id, e->element[0]->str, e->element[0]->len + 1);
            take_entry(s, e->element[1]);
        }
        if (entries->elements)
            rs__foreach_remote_progress(s->fe);
    }
    freeReplyObject(rep);
    return 0;
}

/* Sets a field of the run's hash only while the run exists (a run deleted from Redis must not
 * come back as a hash of one field): 1 when set, 0 when the run is gone. */
static const char set_if_run[] = "if redis.call('HEXISTS', KEYS[1], 'version') == 1 then "
                                 "redis.call('HSET', KEYS[1], ARGV[1], ARGV[2]) return 1 end "
                                 "return 0";

/* Sends the work entry being filled, and moves `submitted` past it. Neither recreates the
 * keys of a run deleted meanwhile (NOMKSTREAM, set_if_run): RS_EIO then. */
static int send_entry(submitter *s)
{
    if (!s->entry_items)
        return 0;
    int rc = rs__buf_putc(&s->entry, ']');
    if (rc)
        return rs__msg_set(s->what.msg, rc, "out of memory");
    char sub[24];
    snprintf(sub, sizeof sub, "%llu", (unsigned long long)s->next_index);
    const char *xa[] = {"XADD", s->work, "NOMKSTREAM", "*", "v", s->entry.data};
    size_t lens[] = {4, strlen(s->work), 10, 1, 1, s->entry.len};
    const char *hs[] = {"EVAL", set_if_run, "1", s->key, "submitted", sub};
    redisReply *reps[2] = {0};
    rc = rs__redis_append(s->r, 6, xa, lens);
    if (!rc)
        rc = rs__redis_append(s->r, 6, hs, NULL);
    if (!rc)
        rc = rs__redis_exec(s->r, reps, 2, s->what.msg);
    for (int i = 0; !rc && i < 2; i++) {
        if (reps[i]->type == REDIS_REPLY_ERROR)
            rc = rs__msg_set(s->what.msg, RS_EIO, "Redis refused the inputs: %.200s", reps[i]->str);
        else if (reps[i]->type == REDIS_REPLY_NIL ||
                 (reps[i]->type == REDIS_REPLY_INTEGER && reps[i]->integer == 0))
            rc = rs__msg_set(s->what.msg, RS_EIO,
                             "the run '%s' was deleted from Redis while it ran", s->spec->run);
    }
    for (int i = 0; i < 2; i++)
        if (reps[i])
            freeReplyObject(reps[i]);
    s->entry.len = 0;
    s->entry_items = 0;
    s->submitted = s->next_index;
    return rc;
}

/* Reads the next input that still needs a record (those the journal or this run already
 * has are read, to keep the indexes, and passed over). Returns 0 at the end of the input,
 * else the iterator's code (1, or negative for an input that could not be read) with *item,
 * *error (either may be NULL; the caller frees them) and *index set. */
static int next_input(submitter *s, rs_value **item, char **error, uint64_t *index)
{
    const rs_foreach_opts *o = s->what.opts;
    for (;;) {
        *item = NULL;
        *error = NULL;
        int rc = o->next(o->input_userdata, item, error);
        if (rc == 0) {
            s->input_done = true;
            rs_value_destroy(*item);
            rs__free(*error);
            return 0;
        }
        *index = s->next_index++;
        bool journaled = rs__foreach_remote_journaled(s->fe, *index);
        if (!journaled && !rs__idxset_has(&s->have, *index))
            return rc;
        if (journaled)
            rs__foreach_remote_skip(s->fe);
        rs_value_destroy(*item);
        rs__free(*error);
    }
}

/* Whether another input may be read: fewer than WINDOW undelivered, and in an ordered run
 * within half the reorder window of the oldest undelivered index. */
static bool may_read(const submitter *s)
{
    uint64_t oldest = rs__foreach_remote_next_deliver(s->fe);
    /* Until the first records say how long an item takes, only a few small entries go out:
     * a guess too large would let the first workers take long items that others could run. */
    uint64_t window = s->item_seconds > 0 || s->what.opts->batch ? WINDOW : FIRST_WINDOW;
    return !s->input_done && s->pending < window &&
           (oldest == UINT64_MAX || s->next_index < oldest + WINDOW / 2);
}

/* Reads inputs into the work entry while the window and the reorder window allow; sends it
 * when full. Returns 0 or an error. */
static int feed(submitter *s)
{
    const rs_foreach_opts *o = s->what.opts;
    size_t want = o->batch ? o->batch : s->entry_max;
    if (!o->batch && s->item_seconds > 0) {
        double per = 0.05 / s->item_seconds;
        want = per < 1 ? 1 : per > RS__RQ_MAX_ENTRY ? RS__RQ_MAX_ENTRY : (size_t)per;
    }
    while (may_read(s)) {
        rs_value *item;
        char *error;
        uint64_t index;
        int rc = next_input(s, &item, &error, &index);
        if (rc == 0)
            break;
        if (rc < 0) { /* an input that could not be read: its record needs no worker */
            rs__idxset_put(&s->have, index, true);
            rs__foreach_remote_deliver(
                s->fe, index, item, NULL,
                &(rs__remote_outcome){.status = RS_ITEM_ERROR,
                                      .error = error ? error : rs_strerror(rc)});
            rs__free(error);
            continue;
        }
        s->pending++;
        if (awaited(s, index)) {
            rs_value_destroy(item);
            continue;
        }
        char num[24];
        int e = rs__buf_puts(&s->entry, s->entry_items ? ",[" : "[[");
        if (!e)
            e = rs__buf_append(&s->entry, num, rs__format_u64(num, index));
        if (!e)
            e = rs__buf_putc(&s->entry, ',');
        if (!e)
            e = rs__json_encode_ex(item ? item : NULL, RS_JSON_REPAIR, "input", 0, &s->entry, NULL);
        if (!e)
            e = rs__buf_putc(&s->entry, ']');
        rs_value_destroy(item);
        if (e)
            return rs__msg_set(s->what.msg, e, "an input cannot be written as JSON");
        if (++s->entry_items >= want && (rc = send_entry(s)))
            return rc;
    }
    return send_entry(s);
}

/* Trims the results stream behind what was delivered TRIM_LAG_NS ago, and writes the count
 * of delivered records into the run (for `runspace runs`), once a second. Returns RS_EIO when
 * the run was deleted from Redis meanwhile (`runspace runs --delete`): nothing would come. */
static int trim(submitter *s)
{
    int64_t now = rs__now_ns();
    if (now - s->mark_ns < TRIM_LAG_NS / 2)
        return 0;
    memcpy(s->trim_id, s->mark_id, sizeof s->trim_id);
    memcpy(s->mark_id, s->last_id, sizeof s->mark_id);
    s->mark_ns = now;
    char done[24];
    snprintf(done, sizeof done, "%llu", (unsigned long long)rs__foreach_remote_delivered(s->fe));
    /* The count goes only into a run that still exists: a deleted one stays deleted. */
    const char *ev[] = {"EVAL", set_if_run, "1", s->key, "done", done};
    const char *xt[] = {"XTRIM", s->results, "MINID", s->trim_id};
    size_t n = 0;
    if (!rs__redis_append(s->r, 6, ev, NULL))
        n++;
    if (n && strcmp(s->trim_id, "0") != 0 && !rs__redis_append(s->r, 4, xt, NULL))
        n++;
    redisReply *reps[2] = {0};
    int rc = rs__redis_exec(s->r, reps, n, s->what.msg);
    if (!rc && n && reps[0]->type == REDIS_REPLY_INTEGER && reps[0]->integer == 0)
        rc = rs__msg_set(s->what.msg, RS_EIO, "the run '%s' was deleted from Redis while it ran",
                         s->spec->run);
    for (int i = 0; i < 2; i++)
        if (reps[i])
            freeReplyObject(reps[i]);
    return rc;
}

/* Sets the run's state; with an expiry for a finished run. Best effort. */
static void set_state(submitter *s, const char *state, bool expire)
{
    char ttl[32], done[24], total[24];
    snprintf(ttl, sizeof ttl, "%lld", (long long)s->spec->ttl);
    snprintf(done, sizeof done, "%llu", (unsigned long long)rs__foreach_remote_delivered(s->fe));
    snprintf(total, sizeof total, "%llu", (unsigned long long)s->next_index);
    char *shared = rs__rq_key(s->spec->prefix, s->spec->run, ":shared");
    const char *hs[] = {"HSET", s->key, "state", state, "done", done, "total", total};
    const char *e1[] = {"EXPIRE", s->key, ttl};
    const char *e2[] = {"EXPIRE", s->work, ttl};
    const char *e3[] = {"EXPIRE", s->results, ttl};
    const char *e4[] = {"EXPIRE", shared, ttl};
    size_t n = 0;
    if (!rs__redis_append(s->r, s->input_done ? 8 : 4, hs, NULL))
        n++;
    if (expire && shared) {
        const char *const *ex[] = {e1, e2, e3, e4};
        for (int i = 0; i < 4; i++)
            if (!rs__redis_append(s->r, 3, ex[i], NULL))
                n++;
    }
    redisReply *reps[5] = {0};
    rs__msg tmp = {0};
    rs__redis_exec(s->r, reps, n, &tmp);
    rs__msg_free(&tmp);
    for (size_t i = 0; i < 5; i++)
        if (reps[i])
            freeReplyObject(reps[i]);
    rs__free(shared);
}

/* A stop: every undelivered index gets a cancelled record; under fail-fast the rest of the
 * input is read, and each gets one too. */
static void cancel_rest(submitter *s, bool read_rest)
{
    while (read_rest && !s->input_done) {
        bool jf;
        if (rs__foreach_remote_stopping(s->fe, &jf))
            break; /* a stop on top of fail-fast reads no further */
        rs_value *item;
        char *error;
        uint64_t index;
        int rc = next_input(s, &item, &error, &index);
        if (rc == 0)
            break;
        rs__idxset_put(&s->have, index, true);
        rs__foreach_remote_deliver(
            s->fe, index, item, NULL,
            &(rs__remote_outcome){.status = rc < 0 ? RS_ITEM_ERROR : RS_ITEM_CANCELLED,
                                  .error = rc < 0 && error ? error : "cancelled"});
        rs__free(error);
    }
    for (uint64_t i = rs__idxset_next_absent(&s->have, 0); i < s->next_index;
         i = rs__idxset_next_absent(&s->have, i + 1)) {
        if (rs__foreach_remote_journaled(s->fe, i))
            continue;
        rs__remote_outcome c = {.status = RS_ITEM_CANCELLED, .error = "cancelled"};
        rs__foreach_remote_deliver(s->fe, i, NULL, NULL, &c);
    }
    rs__foreach_remote_progress(s->fe);
}

int rs__redisq_submit(rs_foreach *fe, const rs__redisq_spec *spec, rs_foreach_summary *summary)
{
    submitter s = {.fe = fe, .spec = spec, .entry_max = 4};
    rs__foreach_what(fe, &s.what);
    strcpy(s.last_id, "0");
    strcpy(s.trim_id, "0");
    strcpy(s.mark_id, "0");
    s.mark_ns = rs__now_ns();
    s.key = rs__rq_key(spec->prefix, spec->run, "");
    s.work = rs__rq_key(spec->prefix, spec->run, ":work");
    s.results = rs__rq_key(spec->prefix, spec->run, ":results");
    int rc = 0;
    if (!s.key || !s.work || !s.results)
        rc = rs__msg_set(s.what.msg, RS_ENOMEM, "out of memory");
    if (!rc && !s.what.script && !s.what.command)
        rc = rs__msg_set(s.what.msg, RS_EINVAL, "nothing to run: set a script or a command");
    if (!rc)
        rc = rs__redis_open(&spec->addr, spec->retry_for, rs_foreach_stop_fd(fe), &s.r, s.what.msg);
    if (!rc)
        rc = attach(&s);
    if (!rc)
        rc = rs__foreach_remote_begin(fe, WINDOW);
    if (rc) {
        rs__redis_close(s.r);
        rs__free(s.key);
        rs__free(s.work);
        rs__free(s.results);
        return rc;
    }
    /* A resume first delivers what is already in the results stream. */
    int run_rc = 0;
    if (spec->resume) {
        s.next_index = 0;
        /* The indexes the dead submitter sent count as known for take_record. */
        for (;;) {
            char before[48];
            memcpy(before, s.last_id, sizeof before);
            if ((run_rc = collect(&s, 0, 1000)) || strcmp(before, s.last_id) == 0)
                break;
        }
    }
    bool stopped = false;
    while (!run_rc) {
        bool journal_failed = false;
        if (rs__foreach_remote_stopping(fe, &journal_failed) || s.failed_fast) {
            stopped = true;
            break;
        }
        if ((run_rc = feed(&s)))
            break;
        if (s.input_done && s.pending == 0)
            break;
        if ((run_rc = collect(&s, may_read(&s) ? 0 : 100, 64)) || (run_rc = trim(&s)))
            break;
    }
    if (stopped) {
        set_state(&s, "stopped", false);
        cancel_rest(&s, s.failed_fast);
    } else if (run_rc && run_rc != RS_ESTOPPED) {
        /* Redis is lost: the run stays as it is there, for a resume. */
        cancel_rest(&s, false);
    } else if (run_rc == RS_ESTOPPED) {
        cancel_rest(&s, false);
        run_rc = 0; /* the stop itself is reported by the end of the run */
    }
    bool finished = !stopped && !run_rc;
    if (s.dropped && s.what.opts->on_notice) {
        char note[160];
        snprintf(note, sizeof note,
                 "%llu entr%s in the run's results on Redis were not records and were dropped",
                 (unsigned long long)s.dropped, s.dropped == 1 ? "y" : "ies");
        s.what.opts->on_notice(note, s.what.opts->userdata);
    }
    /* The end of the run: the journal is closed (synced) now, so that the records it holds
     * need Redis no more. */
    int end_rc = rs__foreach_remote_end(fe, summary, run_rc);
    if (finished) {
        set_state(&s, "done", true);
        if (end_rc == 0) {
            /* Every record is delivered (and journaled): the results stream goes. */
            const char *del[] = {"DEL", s.results};
            int del_rc;
            rs__msg tmp = {0};
            redisReply *rep = rs__redis_cmd(s.r, &del_rc, &tmp, 2, del, NULL);
            if (rep)
                freeReplyObject(rep);
            rs__msg_free(&tmp);
        }
    }
    rs__redis_close(s.r);
    rs__idxset_free(&s.have);
    rs__buf_free(&s.entry);
    rs__free(s.key);
    rs__free(s.work);
    rs__free(s.results);
    return end_rc;
}
