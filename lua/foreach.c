/*
 * foreach.c -- rs.foreach{...}: the parallel for-each engine as a Lua iterator.
 *
 *   for rec in rs.foreach{input = io.lines("hosts.txt"), script = "return ..."} do ... end
 *
 * DESIGN. rs_foreach_run blocks until every record is delivered and pulls its input on a
 * reader thread, so it runs on a thread of this module (the runner), and the Lua state's
 * thread only ever meets it through two bounded queues under one mutex:
 *  - inputs: the Lua thread calls the program's input (an iterator function, or a table read
 *    by index) and queues copies; the engine's reader takes them (read_input). The reader
 *    waits on `reader_cv` while the queue is empty; the Lua thread refills the queue whenever
 *    it runs and is woken (`lua_cv`) when the queue runs low.
 *  - records: the runner's on_record copies each record into a ring; when the ring is full it
 *    waits on `space_cv`. The Lua thread takes one record per step of the loop, waking the
 *    runner. The Lua thread is woken once per batch of records (the engine's on_progress
 *    follows each), or when the ring is half full, or when the reader needs input or the run
 *    ends (records delivered outside a batch, such as the cancelled ones of a stop, wait for
 *    one of these).
 * The Lua thread waits on `lua_cv` for: a record, the end of the run, or an input queue that
 * runs low. Every wait of the Lua thread is bounded by the run's time_limit, after which the
 * run is stopped (rs_foreach_stop) and the rest of the records come back cancelled.
 * Closing (the loop left by break or error: __close; or __gc) sets `closing`, stops the run,
 * ends the reader's input and drops records from then on, then joins the runner. No Lua code
 * is called with the mutex held.
 */
#include "lrs.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define INPUT_CAP 256
#define RECORD_CAP 256
#define INPUT_CHUNK 32

typedef struct fe_rec {
    uint64_t index;
    rs_value *input;
    rs_item_status status;
    rs_value *output;
    char *error;
    double duration;
    uint64_t runspace;
    int attempts;
} fe_rec;

typedef struct lrs_fe {
    rs_foreach *fe;
    lrs_pool *pool; /* the pool object's, when one was given */
    pthread_t runner;
    bool started, joined;
    pthread_mutex_t mu;
    pthread_cond_t lua_cv, reader_cv, space_cv;
    /* input (under mu) */
    rs_value *in_items[INPUT_CAP];
    char *in_errors[INPUT_CAP]; /* an input that could not be copied: why */
    size_t in_head, in_count;
    uint64_t consumed; /* items the engine has taken: the index of the next one */
    bool input_end;    /* the program's input is exhausted (or failed) */
    bool closing;      /* the Lua side is gone: drop everything */
    bool run_done;     /* rs_foreach_run returned */
    /* records (under mu) */
    fe_rec recs[RECORD_CAP];
    size_t rec_head, rec_count;
    /* the run's outcome (written by the runner before run_done) */
    int run_rc;
    char run_msg[512];
    rs_foreach_summary summary;
    /* Lua side only */
    int input_kind; /* 0 function, 1 table */
    lua_Integer next_index, table_len;
    double deadline; /* < 0: none */
    bool stopped_by_limit;
    bool iterating;           /* re-entrance guard */
    bool finished;            /* the loop saw the end */
    fe_rec current;           /* the record being turned into Lua */
    fe_rec ready[RECORD_CAP]; /* records taken from the ring in one go, served one per step */
    size_t ready_head, ready_count;
} lrs_fe;

static void rec_free(fe_rec *r)
{
    rs_value_destroy(r->input);
    rs_value_destroy(r->output);
    free(r->error);
    memset(r, 0, sizeof *r);
}

/* ---- the engine's side (runner and reader threads) ---------------------------------------- */

static int read_input(void *ud, rs_value **item, char **error)
{
    lrs_fe *f = ud;
    pthread_mutex_lock(&f->mu);
    while (f->in_count == 0 && !f->input_end && !f->closing) {
        pthread_cond_signal(&f->lua_cv);
        pthread_cond_wait(&f->reader_cv, &f->mu);
    }
    if (f->in_count == 0 || f->closing) {
        pthread_mutex_unlock(&f->mu);
        return 0;
    }
    size_t i = f->in_head;
    *item = f->in_items[i];
    char *err = f->in_errors[i];
    f->in_items[i] = NULL;
    f->in_errors[i] = NULL;
    f->in_head = (i + 1) % INPUT_CAP;
    f->in_count--;
    f->consumed++;
    if (f->in_count <= INPUT_CAP / 4 && !f->input_end)
        pthread_cond_signal(&f->lua_cv);
    pthread_mutex_unlock(&f->mu);
    if (err) {
        *error = err;
        return RS_EVALUE;
    }
    return 1;
}

static void on_record(const rs_foreach_record *r, void *ud)
{
    lrs_fe *f = ud;
    fe_rec c = {.index = r->index,
                .status = r->status,
                .duration = r->duration,
                .runspace = r->runspace_id,
                .attempts = r->attempts};
    pthread_mutex_lock(&f->mu);
    bool closing = f->closing;
    pthread_mutex_unlock(&f->mu);
    if (closing)
        return;
    /* Copies made outside the lock; out of memory leaves a field empty and says so. */
    c.input = rs_value_copy(r->input);
    c.output = rs_value_copy(r->output);
    if (r->error)
        c.error = strdup(r->error);
    if ((r->input && !c.input) || (r->output && !c.output) || (r->error && !c.error)) {
        free(c.error);
        c.error = strdup("out of memory copying the record");
        c.status = RS_ITEM_ERROR;
    }
    pthread_mutex_lock(&f->mu);
    while (f->rec_count == RECORD_CAP && !f->closing)
        pthread_cond_wait(&f->space_cv, &f->mu);
    if (f->closing) {
        pthread_mutex_unlock(&f->mu);
        rec_free(&c);
        return;
    }
    f->recs[(f->rec_head + f->rec_count) % RECORD_CAP] = c;
    f->rec_count++;
    if (f->rec_count >= RECORD_CAP / 2)
        pthread_cond_signal(&f->lua_cv);
    pthread_mutex_unlock(&f->mu);
}

/* Called by the engine after each batch of records it delivered: the Lua thread is woken once
 * a batch rather than once a record (waking it per record made the two threads take turns,
 * a context switch each). */
static void on_progress(const rs_foreach_progress *progress, void *ud)
{
    (void)progress;
    lrs_fe *f = ud;
    pthread_mutex_lock(&f->mu);
    if (f->rec_count)
        pthread_cond_signal(&f->lua_cv);
    pthread_mutex_unlock(&f->mu);
}

static void *runner_main(void *arg)
{
    lrs_fe *f = arg;
    rs_foreach_summary s = {0};
    int rc = rs_foreach_run(f->fe, &s);
    pthread_mutex_lock(&f->mu);
    f->run_rc = rc;
    if (rc && rc != RS_ESTOPPED)
        snprintf(f->run_msg, sizeof f->run_msg, "%s", rs_foreach_errmsg(f->fe));
    f->summary = s;
    f->run_done = true;
    pthread_cond_signal(&f->lua_cv);
    pthread_mutex_unlock(&f->mu);
    return NULL;
}

/* ---- the Lua side ------------------------------------------------------------------------- */

static lrs_fe *check_fe(lua_State *L, int idx)
{
    lrs_fe **slot = luaL_checkudata(L, idx, LRS_FOREACH);
    if (!*slot)
        luaL_error(L, "the for-each run is closed");
    return *slot;
}

/* Stops and joins the runner, and frees everything. Blocks until the running items have
 * stopped (the library interrupts them promptly). */
static void fe_close(lrs_fe *f)
{
    if (f->started && !f->joined) {
        pthread_mutex_lock(&f->mu);
        f->closing = true;
        pthread_cond_broadcast(&f->reader_cv);
        pthread_cond_broadcast(&f->space_cv);
        pthread_mutex_unlock(&f->mu);
        rs_foreach_stop(f->fe);
        pthread_join(f->runner, NULL);
        f->joined = true;
    }
    for (size_t i = 0; i < INPUT_CAP; i++) {
        rs_value_destroy(f->in_items[i]);
        free(f->in_errors[i]);
    }
    for (size_t i = 0; i < f->rec_count; i++)
        rec_free(&f->recs[(f->rec_head + i) % RECORD_CAP]);
    for (size_t i = 0; i < f->ready_count; i++)
        rec_free(&f->ready[(f->ready_head + i) % RECORD_CAP]);
    rec_free(&f->current);
    rs_foreach_destroy(f->fe);
    if (f->pool)
        lrs_pool_unuse(f->pool);
    pthread_mutex_destroy(&f->mu);
    pthread_cond_destroy(&f->lua_cv);
    pthread_cond_destroy(&f->reader_cv);
    pthread_cond_destroy(&f->space_cv);
    free(f);
}

/* __gc, __close and run:close(). */
static int fe_gc(lua_State *L)
{
    lrs_fe **slot = luaL_checkudata(L, 1, LRS_FOREACH);
    lrs_fe *f = *slot;
    if (f && f->iterating) /* close() from inside the run's own input function */
        return luaL_error(L, "the for-each run cannot be closed from its own input");
    *slot = NULL;
    if (f)
        fe_close(f);
    return 0;
}

/* Marks the input exhausted (the reader then ends the run's input). */
static void end_input(lrs_fe *f)
{
    pthread_mutex_lock(&f->mu);
    f->input_end = true;
    pthread_cond_broadcast(&f->reader_cv);
    pthread_mutex_unlock(&f->mu);
}

/* Reads the program's input into the queue until it is full or the input ends, in chunks of
 * INPUT_CHUNK items queued under one lock. The input function's error ends the input and is
 * raised, after the chunk in hand is freed. Only this thread adds to the queue, so the room
 * seen at the start can only grow. */
static void top_up(lua_State *L, lrs_fe *f)
{
    if (f->input_end) /* written by this thread only: no lock to read it here */
        return;
    pthread_mutex_lock(&f->mu);
    size_t room = f->input_end ? 0 : INPUT_CAP - f->in_count;
    pthread_mutex_unlock(&f->mu);
    while (room > 0) {
        rs_value *items[INPUT_CHUNK];
        char *whys[INPUT_CHUNK];
        size_t n = 0;
        bool end = false;
        while (n < INPUT_CHUNK && n < room) {
            if (f->input_kind == 1) {
                if (f->next_index > f->table_len) {
                    end = true;
                    break;
                }
                lua_getiuservalue(L, 1, 1);
                lua_rawgeti(L, -1, f->next_index++);
                lua_remove(L, -2);
            } else {
                lua_getiuservalue(L, 1, 1);
                if (lua_pcall(L, 0, 1, 0) != LUA_OK) {
                    for (size_t i = 0; i < n; i++) {
                        rs_value_destroy(items[i]);
                        free(whys[i]);
                    }
                    end_input(f);
                    f->iterating = false;
                    lua_error(L);
                }
                if (lua_isnil(L, -1)) {
                    lua_pop(L, 1);
                    end = true;
                    break;
                }
            }
            char err[256];
            items[n] = lrs_to_value(L, -1, "input", err, sizeof err);
            whys[n] = items[n] ? NULL : strdup(err);
            lua_pop(L, 1);
            n++;
        }
        pthread_mutex_lock(&f->mu);
        for (size_t i = 0; i < n; i++) {
            size_t k = (f->in_head + f->in_count) % INPUT_CAP;
            f->in_items[k] = items[i];
            f->in_errors[k] = whys[i];
            f->in_count++;
        }
        if (end)
            f->input_end = true;
        pthread_cond_broadcast(&f->reader_cv);
        pthread_mutex_unlock(&f->mu);
        room -= n;
        if (end)
            return;
    }
}

static const char *status_name(rs_item_status s)
{
    switch (s) {
    case RS_ITEM_OK:
        return "ok";
    case RS_ITEM_ERROR:
        return "error";
    case RS_ITEM_TIMEOUT:
        return "timeout";
    case RS_ITEM_CANCELLED:
        return "cancelled";
    }
    return "unknown";
}

static void push_record(lua_State *L, const fe_rec *r)
{
    lua_createtable(L, 0, 9);
    lua_pushinteger(L, (lua_Integer)r->index + 1);
    lua_setfield(L, -2, "index");
    lrs_push_value(L, r->input);
    lua_setfield(L, -2, "input");
    lua_pushstring(L, status_name(r->status));
    lua_setfield(L, -2, "status");
    if (r->output) {
        lrs_push_value(L, r->output);
    } else {
        lua_newtable(L);
    }
    lua_rawgeti(L, -1, 1);
    lua_setfield(L, -3, "value");
    lua_setfield(L, -2, "output");
    if (r->error) {
        lua_pushstring(L, r->error);
        lua_setfield(L, -2, "error");
    }
    lua_pushnumber(L, r->duration);
    lua_setfield(L, -2, "duration");
    lua_pushinteger(L, (lua_Integer)r->runspace);
    lua_setfield(L, -2, "runspace");
    lua_pushinteger(L, r->attempts);
    lua_setfield(L, -2, "attempts");
}

/* After a run stopped by run:stop() or its time limit: whether an input was read from the
 * program but never reached the engine (still queued, or, for a table, not yet read). Each
 * gets a record of its own, cancelled, so that every input has exactly one. */
static bool has_leftover(const lrs_fe *f)
{
    return f->in_count > 0 || (f->input_kind == 1 && f->next_index <= f->table_len);
}

/* The cancelled record of the next leftover input (mu held; released while the table is read,
 * which may raise). */
static void take_leftover(lua_State *L, lrs_fe *f, fe_rec *r)
{
    memset(r, 0, sizeof *r);
    r->index = f->consumed++;
    r->status = RS_ITEM_CANCELLED;
    f->summary.total++;
    f->summary.cancelled++;
    f->summary.success_rate = 100.0 * (double)f->summary.succeeded / (double)f->summary.total;
    if (f->in_count > 0) {
        size_t i = f->in_head;
        r->input = f->in_items[i]; /* NULL for an input that could not be copied: nil */
        free(f->in_errors[i]);
        f->in_items[i] = NULL;
        f->in_errors[i] = NULL;
        f->in_head = (i + 1) % INPUT_CAP;
        f->in_count--;
        pthread_mutex_unlock(&f->mu);
    } else {
        lua_Integer k = f->next_index++;
        pthread_mutex_unlock(&f->mu);
        char err[256];
        lua_getiuservalue(L, 1, 1);
        lua_rawgeti(L, -1, k);
        r->input = lrs_to_value(L, -1, "input", err, sizeof err);
        lua_pop(L, 2);
    }
    r->error = strdup(f->stopped_by_limit ? "the run's time limit passed before this item started"
                                          : "the run was stopped before this item started");
}

/* One step of the loop: the next record, or nil at the end. */
static int fe_step(lua_State *L)
{
    lrs_fe *f = check_fe(L, 1);
    if (f->finished)
        return 0;
    if (f->iterating)
        return luaL_error(L, "the for-each run is already being iterated (from its own input?)");
    f->iterating = true;
    rec_free(&f->current);
    for (;;) {
        top_up(L, f);
        if (f->ready_count) {
            f->current = f->ready[f->ready_head];
            memset(&f->ready[f->ready_head], 0, sizeof f->ready[0]);
            f->ready_head = (f->ready_head + 1) % RECORD_CAP;
            f->ready_count--;
            break;
        }
        pthread_mutex_lock(&f->mu);
        if (f->rec_count) {
            /* All of them at once: the next steps need no lock. ready is empty here. */
            for (size_t i = 0; i < f->rec_count; i++) {
                size_t k = (f->rec_head + i) % RECORD_CAP;
                f->ready[i] = f->recs[k];
                memset(&f->recs[k], 0, sizeof f->recs[0]);
            }
            f->ready_head = 0;
            f->ready_count = f->rec_count;
            f->rec_head = 0;
            f->rec_count = 0;
            pthread_cond_signal(&f->space_cv);
            pthread_mutex_unlock(&f->mu);
            continue;
        }
        if (f->run_done && has_leftover(f)) {
            take_leftover(L, f, &f->current); /* unlocks */
            break;
        }
        if (f->run_done) {
            pthread_mutex_unlock(&f->mu);
            pthread_join(f->runner, NULL);
            f->joined = true;
            f->finished = true;
            /* The run is over: its pool is free for pool:close() at once. */
            rs_foreach_destroy(f->fe);
            f->fe = NULL;
            if (f->pool)
                lrs_pool_unuse(f->pool);
            f->pool = NULL;
            f->iterating = false;
            if (f->run_rc && f->run_rc != RS_ESTOPPED)
                return lrs_fail(L, f->run_rc, f->run_msg);
            return 0;
        }
        if (!f->input_end && f->in_count <= INPUT_CAP / 4) {
            pthread_mutex_unlock(&f->mu);
            continue;
        }
        if (f->deadline >= 0 && !f->stopped_by_limit) {
            double left = f->deadline - lrs_now();
            if (left <= 0) {
                f->stopped_by_limit = true;
                f->input_end = true;
                pthread_cond_broadcast(&f->reader_cv);
                pthread_mutex_unlock(&f->mu);
                rs_foreach_stop(f->fe);
                continue;
            }
            lrs_cond_wait_until(&f->lua_cv, &f->mu, f->deadline);
        } else {
            pthread_cond_wait(&f->lua_cv, &f->mu);
        }
        pthread_mutex_unlock(&f->mu);
    }
    f->iterating = false;
    push_record(L, &f->current); /* may raise: current stays owned by f */
    rec_free(&f->current);
    return 1;
}

/* run:stop(): running items are stopped, the rest of the input is not read; the loop goes on
 * and gets their records, cancelled. Does not block. */
static int fe_stop(lua_State *L)
{
    lrs_fe *f = check_fe(L, 1);
    if (f->fe)
        rs_foreach_stop(f->fe);
    end_input(f);
    return 0;
}

/* run:summary(): once the loop has ended, {total, succeeded, failed, timed_out, cancelled,
 * elapsed, success_rate, skipped (inputs a resumed journal held)}; nil before. */
static int fe_summary(lua_State *L)
{
    lrs_fe *f = check_fe(L, 1);
    if (!f->finished)
        return 0;
    const rs_foreach_summary *s = &f->summary;
    lua_createtable(L, 0, 8);
    lua_pushinteger(L, (lua_Integer)s->total);
    lua_setfield(L, -2, "total");
    lua_pushinteger(L, (lua_Integer)s->succeeded);
    lua_setfield(L, -2, "succeeded");
    lua_pushinteger(L, (lua_Integer)s->failed);
    lua_setfield(L, -2, "failed");
    lua_pushinteger(L, (lua_Integer)s->timed_out);
    lua_setfield(L, -2, "timed_out");
    lua_pushinteger(L, (lua_Integer)s->cancelled);
    lua_setfield(L, -2, "cancelled");
    lua_pushnumber(L, s->elapsed);
    lua_setfield(L, -2, "elapsed");
    lua_pushnumber(L, s->success_rate);
    lua_setfield(L, -2, "success_rate");
    lua_pushinteger(L, (lua_Integer)s->skipped);
    lua_setfield(L, -2, "skipped");
    return 1;
}

static void init_sync(lua_State *L, lrs_fe *f)
{
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    if (pthread_mutex_init(&f->mu, NULL) || pthread_cond_init(&f->lua_cv, &ca) ||
        pthread_cond_init(&f->reader_cv, NULL) || pthread_cond_init(&f->space_cv, NULL)) {
        pthread_condattr_destroy(&ca);
        luaL_error(L, "cannot create the for-each run's locks");
    }
    pthread_condattr_destroy(&ca);
}

/* Raises the run's message for a failed setup call. */
static void fe_check(lua_State *L, lrs_fe *f, int rc)
{
    if (rc)
        lrs_fail(L, rc, rs_foreach_errmsg(f->fe));
}

/* rs.foreach{input = t|f, script = src | command = name, ...}: the run, callable as the
 * loop's iterator, and its closing value. */
static int l_foreach(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lua_getfield(L, 1, "input");
    int kind = lua_type(L, -1) == LUA_TTABLE ? 1 : lua_type(L, -1) == LUA_TFUNCTION ? 0 : -1;
    if (kind < 0)
        return luaL_error(L, "option 'input' must be a table or an iterator function (got %s)",
                          luaL_typename(L, -1));
    size_t script_len; /* a script may hold zero bytes (in its string literals) */
    const char *script = lrs_opt_lstring(L, 1, "script", NULL, &script_len);
    const char *command = lrs_opt_string(L, 1, "command", NULL);
    if (!script == !command)
        return luaL_error(L, "give one of the options 'script' and 'command'");
    lrs_fe **slot = lua_newuserdatauv(L, sizeof *slot, 2); /* [input, pool object] */
    *slot = NULL;
    luaL_setmetatable(L, LRS_FOREACH);
    int self = lua_gettop(L);
    lua_pushvalue(L, 2);
    lua_setiuservalue(L, self, 1);
    lrs_fe *f = calloc(1, sizeof *f);
    if (!f)
        return luaL_error(L, "out of memory");
    init_sync(L, f); /* on failure f leaks: nothing else to free yet, and it is tiny */
    *slot = f;
    f->input_kind = kind;
    f->next_index = 1;
    f->table_len = kind == 1 ? (lua_Integer)lua_rawlen(L, 2) : 0;
    double limit = lrs_opt_seconds(L, 1, "time_limit");
    f->deadline = limit < 0 ? -1 : lrs_now() + limit;

    rs_foreach_opts o = {0};
    lua_getfield(L, 1, "pool");
    if (!lua_isnil(L, -1)) {
        lrs_pool *p = lrs_check_pool(L, -1);
        o.pool = lrs_pool_get(p);
        lua_setiuservalue(L, self, 2);
        lrs_pool_use(p);
        f->pool = p;
    } else {
        lua_pop(L, 1);
    }
    rs_iss *iss = NULL;
    if (!f->pool)
        lrs_iss_from_opts(L, 1, &iss); /* its box stays on the stack */
    o.iss = iss;
    o.throttle = (unsigned)lrs_opt_int(L, 1, "throttle", 0, LRS_MAX_RUNSPACES);
    o.batch = (unsigned)lrs_opt_int(L, 1, "batch", 0, UINT32_MAX);
    o.timeout = lrs_opt_number(L, 1, "timeout", 0);
    o.retries = (unsigned)lrs_opt_int(L, 1, "retries", 0, UINT32_MAX);
    o.ordered = lrs_opt_bool(L, 1, "ordered", 0);
    o.fail_fast = lrs_opt_bool(L, 1, "fail_fast", 0);
    o.journal = lrs_opt_string(L, 1, "journal", NULL);
    const char *resume = lrs_opt_string(L, 1, "resume", NULL);
    if (resume && strcmp(resume, "all") == 0)
        o.journal_mode = RS_JOURNAL_RESUME;
    else if (resume && strcmp(resume, "failed") == 0)
        o.journal_mode = RS_JOURNAL_RESUME_FAILED;
    else if (resume)
        return luaL_error(L, "option 'resume' must be \"all\" or \"failed\"");
    o.next = read_input;
    o.input_userdata = f;
    o.on_record = on_record;
    o.on_progress = on_progress;
    if (!lrs_quiet(L, 1, f->pool))
        o.on_stream = lrs_echo_item;
    o.userdata = f;
    int rc = rs_foreach_create(&o, &f->fe);
    if (rc)
        return lrs_fail(L, rc, rc == RS_EINVAL ? "invalid for-each options" : NULL);
    fe_check(L, f,
             script ? rs_foreach_set_script(f->fe, script, script_len)
                    : rs_foreach_set_command(f->fe, command));
    if (lua_getfield(L, 1, "args") == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            lua_rawgeti(L, -1, i);
            char err[256], what[32];
            snprintf(what, sizeof what, "args[%lld]", (long long)i);
            rs_value *v = lrs_to_value(L, -1, what, err, sizeof err);
            if (!v)
                return luaL_error(L, "%s", err);
            fe_check(L, f, rs_foreach_add_argument(f->fe, v));
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        return luaL_error(L, "option 'args' must be a list");
    }
    lua_pop(L, 1);
    if (lua_getfield(L, 1, "params") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                return luaL_error(L, "option 'params' must map names to values");
            char err[256];
            rs_value *v = lrs_to_value(L, -1, lua_tostring(L, -2), err, sizeof err);
            if (!v)
                return luaL_error(L, "parameter %s", err);
            fe_check(L, f, rs_foreach_add_parameter(f->fe, lua_tostring(L, -2), v));
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        return luaL_error(L, "option 'params' must be a table");
    }
    lua_pop(L, 1);
    if (pthread_create(&f->runner, NULL, runner_main, f))
        return luaL_error(L, "cannot start the for-each run: %s", strerror(errno));
    f->started = true;
    lua_pushvalue(L, self);
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushvalue(L, self);
    return 4;
}

void lrs_foreach_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"stop", fe_stop}, {"summary", fe_summary}, {"close", fe_gc}, {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__call", fe_step}, {"__gc", fe_gc}, {"__close", fe_gc}, {NULL, NULL}};
    lrs_new_class(L, LRS_FOREACH, methods, meta);
    lua_pushcfunction(L, l_foreach);
    lua_setfield(L, -2, "foreach");
}
