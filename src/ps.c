/*
 * ps.c -- the invocation (PowerShell instance): building a pipeline, invoking it synchronously
 * or with begin/end, stopping it, and its wait handle.
 *
 * DESIGN
 * State changes happen under ps->mu; `state` and `completed` are also atomics so that getters
 * need no lock. An invocation moves IDLE -> QUEUED (begin: in a pool's queue, or about to start
 * on a runspace) -> EXECUTING (published by the thread that runs it, after which a stop can
 * reach that thread) -> FINISHING -> IDLE (published: results final, waiters woken, eventfd
 * written). The thread that finishes an invocation does not touch it after publishing, so the
 * owner may destroy it as soon as it sees completion.
 *
 * A stop of a queued invocation removes it from the pool's queue and finishes it at once. A stop
 * that races with a worker taking it sets stop_requested, which the worker checks when it
 * publishes EXECUTING. A stop of an executing invocation goes to the runspace's execution
 * context (interrupt.c). Nothing here polls: waiters sleep on ps->cv.
 *
 * Lock order: a pool's mu, then ps->mu, then an execution context's mu.
 */
#include "ps_int.h"

#include "timer.h"

#include <errno.h>
#include <stdarg.h>
#include <signal.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

static bool running(const rs_ps *ps)
{
    return atomic_load(&ps->phase) != RS__PHASE_IDLE;
}

/* Sets the message of a failing call on the handle and returns code. The caller's message and
 * the invocation's (result_msg, set by the thread running it) live apart, each stamped when
 * set, and rs_ps_errmsg shows the newer. */
static int fail(rs_ps *ps, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(rs_ps *ps, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rs__msg_vset(&ps->msg, code, fmt, ap);
    va_end(ap);
    rs__mutex_lock(&ps->mu);
    ps->msg_stamp = ++ps->stamp;
    rs__mutex_unlock(&ps->mu);
    return code;
}

/* ---- creation and binding ----------------------------------------------------------------- */

int rs_ps_create(rs_ps **out)
{
    if (!out)
        return RS_EMISUSE;
    *out = NULL;
    rs_ps *ps = rs__calloc(1, sizeof *ps);
    if (!ps)
        return RS_ENOMEM;
    if (rs__mutex_init(&ps->mu)) {
        rs__free(ps);
        return RS_ESYSTEM;
    }
    if (rs__cond_init(&ps->cv)) {
        rs__mutex_destroy(&ps->mu);
        rs__free(ps);
        return RS_ESYSTEM;
    }
    atomic_init(&ps->state, RS_PS_NOT_STARTED);
    atomic_init(&ps->phase, RS__PHASE_IDLE);
    atomic_init(&ps->completed, false);
    rs__queue_init(&ps->qnode);
    ps->async.ps = ps;
    ps->async.fd = -1;
    *out = ps;
    return 0;
}

/* Joins the thread of a finished begin-invoke on a runspace. */
static void join_thread(rs_ps *ps)
{
    if (ps->has_thread) {
        rs__thread_join(ps->thread);
        ps->has_thread = false;
    }
}

static void unbind(rs_ps *ps)
{
    if (ps->pool)
        rs__pool_unbind(ps->pool);
    if (ps->runspace) {
        rs__mutex_lock(&ps->runspace->mu);
        ps->runspace->nbound--;
        rs__mutex_unlock(&ps->runspace->mu);
    }
    ps->pool = NULL;
    ps->runspace = NULL;
}

static void free_stages(rs_ps *ps)
{
    for (size_t i = 0; i < ps->nstages; i++) {
        rs__free(ps->stages[i].text);
        rs__free(ps->stages[i].chunkname);
        rs_value_destroy(ps->stages[i].args);
        rs_value_destroy(ps->stages[i].params);
    }
    ps->nstages = 0;
    ps->syntax_rc = 0;
    rs__free(ps->syntax_msg);
    ps->syntax_msg = NULL;
}

int rs_ps_destroy(rs_ps *ps)
{
    if (!ps)
        return 0;
    rs__mutex_lock(&ps->mu);
    bool busy = running(ps);
    rs__mutex_unlock(&ps->mu);
    if (busy)
        return fail(ps, RS_EBUSY, "the invocation is running; stop it first");
    join_thread(ps);
    unbind(ps);
    rs__runspace_free(ps->private_rs);
    free_stages(ps);
    rs__free(ps->stages);
    rs_value_destroy(ps->inputs);
    rs__ps_clear_results(ps);
    if (ps->async.fd >= 0)
        close(ps->async.fd);
    rs__msg_free(&ps->msg);
    rs__msg_free(&ps->result_msg);
    rs__cond_destroy(&ps->cv);
    rs__mutex_destroy(&ps->mu);
    rs__free(ps);
    return 0;
}

/* Returns RS_EBUSY (with the message set) while the invocation runs. */
static int check_idle(rs_ps *ps)
{
    rs__mutex_lock(&ps->mu);
    bool busy = running(ps);
    rs__mutex_unlock(&ps->mu);
    return busy ? fail(ps, RS_EBUSY, "the invocation is running") : 0;
}

int rs_ps_set_pool(rs_ps *ps, rs_pool *pool)
{
    if (!ps)
        return RS_EMISUSE;
    int rc = check_idle(ps);
    if (rc)
        return rc;
    if (pool && (rc = rs__pool_bind(pool)))
        return fail(ps, rc, "the pool cannot take invocations");
    unbind(ps);
    ps->pool = pool;
    return 0;
}

int rs_ps_set_runspace(rs_ps *ps, rs_runspace *rs)
{
    if (!ps)
        return RS_EMISUSE;
    int rc = check_idle(ps);
    if (rc)
        return rc;
    if (rs && rs->pool)
        return fail(ps, RS_EINVAL, "runspace %s belongs to a pool", rs->name);
    unbind(ps);
    if (rs) {
        rs__mutex_lock(&rs->mu);
        rs->nbound++;
        rs__mutex_unlock(&rs->mu);
    }
    ps->runspace = rs;
    return 0;
}

int rs_ps_set_opts(rs_ps *ps, const rs_ps_opts *opts)
{
    if (!ps)
        return RS_EMISUSE;
    if (!opts)
        return RS_EINVAL;
    int rc = check_idle(ps);
    if (rc)
        return rc;
    if (!(opts->timeout >= 0) || !(opts->item_timeout >= 0))
        return fail(ps, RS_EINVAL, "timeouts must be zero or positive numbers");
    if (opts->flags & ~(unsigned)(RS_PS_ITEM_RESULTS | RS_PS_STREAM_RECORDS))
        return fail(ps, RS_EINVAL, "unknown flags 0x%x", opts->flags);
    ps->opts = *opts;
    return 0;
}

/* ---- building the pipeline ---------------------------------------------------------------- */

static rs__stage *add_stage(rs_ps *ps, rs__stage_kind kind, const char *text, size_t len,
                            const char *chunkname)
{
    if (ps->nstages == ps->capstages) {
        size_t cap = ps->capstages ? ps->capstages * 2 : 2;
        rs__stage *st = rs__realloc(ps->stages, cap * sizeof *st);
        if (!st)
            return NULL;
        ps->stages = st;
        ps->capstages = cap;
    }
    char *copy = rs__strndup(text, len);
    char *name = chunkname ? rs__strdup(chunkname) : NULL;
    if (!copy || (chunkname && !name)) {
        rs__free(copy);
        rs__free(name);
        return NULL;
    }
    rs__stage *st = &ps->stages[ps->nstages++];
    memset(st, 0, sizeof *st);
    st->kind = kind;
    st->text = copy;
    st->len = len;
    st->chunkname = name;
    st->hash = rs__hash(text, len) ^ (name ? rs__hash(name, strlen(name)) * 31 : 0);
    return st;
}

int rs_ps_add_script(rs_ps *ps, const char *src, size_t len)
{
    return rs_ps_add_script_named(ps, src, len, NULL);
}

int rs_ps_add_script_named(rs_ps *ps, const char *src, size_t len, const char *name)
{
    if (!ps)
        return RS_EMISUSE;
    if (!src)
        return fail(ps, RS_EINVAL, "the script is NULL");
    if (name && !*name)
        return fail(ps, RS_EINVAL, "the script's name is empty");
    int rc = check_idle(ps);
    if (rc)
        return rc;
    if (len == (size_t)-1)
        len = strlen(src);
    char *chunkname = name ? rs__format("@%s", name) : NULL;
    if (name && !chunkname)
        return fail(ps, RS_ENOMEM, "out of memory");
    char *msg = NULL;
    rc = rs__check_syntax(src, len, chunkname ? chunkname : "=script", &msg);
    if (rc && rc != RS_ESYNTAX) {
        rs__free(msg);
        rs__free(chunkname);
        return fail(ps, rc, "out of memory");
    }
    rs__stage *st = add_stage(ps, RS__STAGE_SCRIPT, src, len, chunkname);
    rs__free(chunkname);
    if (!st) {
        rs__free(msg);
        return fail(ps, RS_ENOMEM, "out of memory");
    }
    if (rc) {
        fail(ps, rc, "%s", msg ? msg : "syntax error");
        if (!ps->syntax_rc) {
            ps->syntax_rc = rc;
            ps->syntax_msg = msg;
            msg = NULL;
        }
    }
    rs__free(msg);
    return rc;
}

int rs_ps_add_command(rs_ps *ps, const char *name)
{
    if (!ps)
        return RS_EMISUSE;
    if (!name || !*name)
        return fail(ps, RS_EINVAL, "a command needs a name");
    int rc = check_idle(ps);
    if (rc)
        return rc;
    if (!add_stage(ps, RS__STAGE_COMMAND, name, strlen(name), NULL))
        return fail(ps, RS_ENOMEM, "out of memory");
    return 0;
}

int rs__ps_add_native(rs_ps *ps, const char *name, rs_command_fn fn, void *userdata)
{
    int rc = check_idle(ps);
    if (rc)
        return rc;
    rs__stage *st = add_stage(ps, RS__STAGE_NATIVE, name, strlen(name), NULL);
    if (!st)
        return fail(ps, RS_ENOMEM, "out of memory");
    st->native =
        (rs__iss_entry){.kind = RS__ISS_COMMAND, .name = st->text, .fn = fn, .userdata = userdata};
    return 0;
}

/* The last stage, for arguments and parameters; frees value and fails when there is none. */
static int last_stage(rs_ps *ps, rs_value *value, rs__stage **out)
{
    int rc = check_idle(ps);
    if (!rc && ps->nstages == 0)
        rc = fail(ps, RS_EMISUSE, "add a script or a command before its arguments");
    if (!rc && !value)
        rc = fail(ps, RS_EINVAL, "the value is NULL");
    if (rc) {
        rs_value_destroy(value);
        return rc;
    }
    *out = &ps->stages[ps->nstages - 1];
    return 0;
}

int rs_ps_add_argument(rs_ps *ps, rs_value *value)
{
    if (!ps) {
        rs_value_destroy(value);
        return RS_EMISUSE;
    }
    rs__stage *st;
    int rc = last_stage(ps, value, &st);
    if (rc)
        return rc;
    if (!st->args && !(st->args = rs_value_array())) {
        rs_value_destroy(value);
        return fail(ps, RS_ENOMEM, "out of memory");
    }
    if (rs_array_push(st->args, value))
        return fail(ps, RS_ENOMEM, "out of memory");
    return 0;
}

int rs_ps_add_parameter(rs_ps *ps, const char *name, rs_value *value)
{
    if (!ps) {
        rs_value_destroy(value);
        return RS_EMISUSE;
    }
    if (!name || !*name) {
        rs_value_destroy(value);
        return fail(ps, RS_EINVAL, "a parameter needs a name");
    }
    rs__stage *st;
    int rc = last_stage(ps, value, &st);
    if (rc)
        return rc;
    if (!st->params && !(st->params = rs_value_map())) {
        rs_value_destroy(value);
        return fail(ps, RS_ENOMEM, "out of memory");
    }
    if (rs_map_set(st->params, name, value))
        return fail(ps, RS_ENOMEM, "out of memory");
    return 0;
}

int rs_ps_add_input(rs_ps *ps, rs_value *value)
{
    if (!ps) {
        rs_value_destroy(value);
        return RS_EMISUSE;
    }
    int rc = check_idle(ps);
    if (!rc && !value)
        rc = fail(ps, RS_EINVAL, "the value is NULL");
    if (rc) {
        rs_value_destroy(value);
        return rc;
    }
    if (!ps->inputs && !(ps->inputs = rs_value_array())) {
        rs_value_destroy(value);
        return fail(ps, RS_ENOMEM, "out of memory");
    }
    if (rs_array_push(ps->inputs, value))
        return fail(ps, RS_ENOMEM, "out of memory");
    return 0;
}

int rs_ps_clear_input(rs_ps *ps)
{
    if (!ps)
        return RS_EMISUSE;
    int rc = check_idle(ps);
    if (rc)
        return rc;
    rs_value_destroy(ps->inputs);
    ps->inputs = NULL;
    return 0;
}

rs_value *rs_ps_take_inputs(rs_ps *ps)
{
    if (!ps || check_idle(ps))
        return NULL;
    rs_value *inputs = ps->inputs;
    ps->inputs = NULL;
    return inputs;
}

int rs_ps_clear_arguments(rs_ps *ps)
{
    if (!ps)
        return RS_EMISUSE;
    int rc = check_idle(ps);
    if (rc)
        return rc;
    for (size_t i = 0; i < ps->nstages; i++) {
        rs_value_destroy(ps->stages[i].args);
        rs_value_destroy(ps->stages[i].params);
        ps->stages[i].args = NULL;
        ps->stages[i].params = NULL;
    }
    return 0;
}

int rs_ps_clear(rs_ps *ps)
{
    if (!ps)
        return RS_EMISUSE;
    int rc = check_idle(ps);
    if (rc)
        return rc;
    free_stages(ps);
    rs_value_destroy(ps->inputs);
    ps->inputs = NULL;
    rs__ps_clear_results(ps);
    return 0;
}

/* ---- finishing ---------------------------------------------------------------------------- */

static rs_ps_state state_for(int code)
{
    if (code == 0)
        return RS_PS_COMPLETED;
    if (code == RS_ESTOPPED || code == RS_ECANCELED)
        return RS_PS_STOPPED;
    return RS_PS_FAILED;
}

/* Publishes the end of an invocation, whose result code and message are already set (see
 * rs__ps_run_claimed), so that an on_complete callback, and whoever it wakes, reads them. The
 * caller must not touch ps afterwards unless it owns it (the synchronous paths do). */
void rs__ps_publish(rs_ps *ps, int code)
{
    rs_ps_state st = state_for(code);
    if (ps->opts.on_complete)
        ps->opts.on_complete(ps, st, ps->opts.userdata);
    rs__mutex_lock(&ps->mu);
    atomic_store(&ps->phase, RS__PHASE_IDLE);
    ps->running_on = NULL;
    atomic_store(&ps->state, st);
    atomic_store(&ps->completed, true);
    rs__cond_broadcast(&ps->cv);
    if (ps->async.fd >= 0) {
        uint64_t one = 1;
        ssize_t n = write(ps->async.fd, &one, sizeof one);
        RS__UNUSED(n); /* an eventfd write of 1 cannot fail short of overflow */
    }
    rs__mutex_unlock(&ps->mu);
}

void rs__ps_finish_unrun(rs_ps *ps, int code, const char *message)
{
    rs__mutex_lock(&ps->mu);
    atomic_store(&ps->phase, RS__PHASE_FINISHING);
    rs__mutex_unlock(&ps->mu);
    rs__ps_clear_results(ps);
    ps->output = rs_value_array();
    const char *why = code == RS_ECANCELED  ? "cancelled: the pool was closed"
                      : code == RS_ESTOPPED ? "cancelled: the invocation was stopped before it ran"
                                            : rs__ps_add_error(ps, code, message);
    size_t n = ps->inputs ? rs_array_len(ps->inputs) : 0;
    if ((ps->opts.flags & RS_PS_ITEM_RESULTS) && n) {
        ps->items = rs__calloc(n, sizeof *ps->items);
        ps->nitems = ps->items ? n : 0;
        for (size_t i = 0; i < ps->nitems; i++) {
            ps->items[i].status =
                code == RS_ESTOPPED || code == RS_ECANCELED ? RS_ITEM_CANCELLED : RS_ITEM_ERROR;
            ps->items[i].code = code;
            ps->items[i].error = why;
        }
    }
    rs__msg_set(&ps->result_msg, code, "%s", message);
    rs__mutex_lock(&ps->mu);
    ps->result = code;
    ps->result_stamp = ++ps->stamp;
    rs__mutex_unlock(&ps->mu);
    rs__ps_publish(ps, code);
}

bool rs__ps_claim(rs_ps *ps, rs_runspace *rs)
{
    rs__exec *ex = &rs->exec;
    rs__mutex_lock(&ps->mu);
    bool stopped = ps->stop_requested;
    if (!stopped) {
        ex->thread = pthread_self();
        atomic_store(&ex->stop, 0);
        ps->running_on = rs;
        atomic_store(&ps->phase, RS__PHASE_EXECUTING);
    }
    rs__mutex_unlock(&ps->mu);
    return !stopped;
}

int rs__ps_run_claimed(rs_ps *ps, rs_runspace *rs, struct rs__timer *timer)
{
    int code = rs__ps_execute(ps, rs, timer);
    rs__mutex_lock(&ps->mu);
    ps->running_on = NULL;
    ps->result = code;
    ps->result_stamp = ++ps->stamp; /* rs_ps_errmsg now shows the invocation's message */
    atomic_store(&ps->phase, RS__PHASE_FINISHING);
    rs__mutex_unlock(&ps->mu);
    return code;
}

/* Runs ps on the runspace it claimed (rs->busy) on the calling thread, releases the runspace,
 * then publishes the end. */
static void run_here(rs_ps *ps, rs_runspace *rs, struct rs__timer *timer)
{
    if (!rs__ps_claim(ps, rs)) {
        atomic_store(&rs->busy, 0);
        rs__ps_finish_unrun(ps, RS_ESTOPPED, "the invocation was stopped before it ran");
        return;
    }
    int code = rs__ps_run_claimed(ps, rs, timer);
    atomic_store(&rs->busy, 0);
    rs__ps_publish(ps, code);
}

/* ---- starting ----------------------------------------------------------------------------- */

/* The timer a run on a runspace needs, or NULL when it sets no timeout. */
static struct rs__timer *timer_for(rs_ps *ps, rs_runspace *rs)
{
    if (!(ps->opts.timeout > 0) && !(ps->opts.item_timeout > 0))
        return NULL;
    return rs->pool ? rs__pool_timer(rs->pool) : rs__runspace_timer(rs);
}

/* Moves an idle invocation to QUEUED. Returns 0, or an error (nothing changed). */
static int enter_queued(rs_ps *ps, bool begun)
{
    if (ps->nstages == 0)
        return fail(ps, RS_EINVAL, "the pipeline is empty: add a script or command");
    if (ps->syntax_rc)
        return fail(ps, ps->syntax_rc, "%s", ps->syntax_msg);
    rs__mutex_lock(&ps->mu);
    if (running(ps)) {
        rs__mutex_unlock(&ps->mu);
        return fail(ps, RS_EMISUSE, "the invocation is already running");
    }
    ps->prev_state = atomic_load(&ps->state);
    ps->prev_completed = atomic_load(&ps->completed);
    atomic_store(&ps->phase, RS__PHASE_QUEUED);
    ps->begun = begun;
    ps->ended = false;
    ps->stop_requested = false;
    ps->result = 0;
    atomic_store(&ps->completed, false);
    atomic_store(&ps->state, RS_PS_RUNNING);
    if (ps->async.fd >= 0) {
        uint64_t v;
        while (read(ps->async.fd, &v, sizeof v) < 0 && errno == EINTR)
            continue;
    }
    rs__mutex_unlock(&ps->mu);
    join_thread(ps);
    return 0;
}

/* Undoes enter_queued when the start failed before anything ran: the state and wait handle
 * are as they were. */
static int undo_queued(rs_ps *ps, int code)
{
    rs__mutex_lock(&ps->mu);
    atomic_store(&ps->phase, RS__PHASE_IDLE);
    ps->begun = false;
    atomic_store(&ps->state, ps->prev_state);
    atomic_store(&ps->completed, ps->prev_completed);
    rs__cond_broadcast(&ps->cv);
    rs__mutex_unlock(&ps->mu);
    return code;
}

/* The runspace a non-pooled invocation runs on, opening the private one if needed. */
static int target_runspace(rs_ps *ps, rs_runspace **out)
{
    if (ps->runspace) {
        *out = ps->runspace;
        return 0;
    }
    if (!ps->private_rs) {
        int rc = rs__runspace_new(NULL, NULL, NULL, NULL, &ps->private_rs);
        if (rc)
            return fail(ps, rc, "cannot create a runspace: %s", rs_strerror(rc));
    }
    if (atomic_load(&ps->private_rs->state) != RS_RUNSPACE_OPENED) {
        int rc = rs__runspace_open_state(ps->private_rs);
        if (rc)
            return fail(ps, rc, "%s", rs__msg_get(&ps->private_rs->msg));
    }
    *out = ps->private_rs;
    return 0;
}

/* Claims rs for one invocation. */
static int claim(rs_ps *ps, rs_runspace *rs)
{
    if (atomic_load(&rs->state) != RS_RUNSPACE_OPENED)
        return fail(ps, RS_ECLOSED, "runspace %s is not open", rs->name);
    int expected = 0;
    if (!atomic_compare_exchange_strong(&rs->busy, &expected, 1))
        return fail(ps, RS_EBUSY, "runspace %s is running another invocation", rs->name);
    return 0;
}

static void *runspace_thread(void *arg)
{
    rs_ps *ps = arg;
    rs__mutex_lock(&ps->mu);
    rs_runspace *rs = ps->running_on;
    rs__mutex_unlock(&ps->mu);
    run_here(ps, rs, timer_for(ps, rs));
    return NULL;
}

/* Starts the invocation: queued on the pool, on a new thread for a runspace (async), or run
 * right here (sync on a runspace). */
static int start(rs_ps *ps, bool async)
{
    int rc = enter_queued(ps, async);
    if (rc)
        return rc;
    if (ps->pool) {
        rc = rs__pool_submit(ps->pool, ps);
        return rc ? undo_queued(ps, fail(ps, rc, "the pool is not open")) : 0;
    }
    rs_runspace *rs;
    if ((rc = target_runspace(ps, &rs)) || (rc = claim(ps, rs)))
        return undo_queued(ps, rc);
    if (async) {
        rs__mutex_lock(&ps->mu);
        ps->running_on = rs; /* read by the new thread; EXECUTING is published by it */
        rs__mutex_unlock(&ps->mu);
        sigset_t sigs;
        sigemptyset(&sigs);
        rs__interrupt_sigset(&sigs);
        rc = rs__thread_create(&ps->thread, runspace_thread, ps, &sigs);
        if (rc) {
            atomic_store(&rs->busy, 0);
            return undo_queued(ps, fail(ps, rc, "cannot start a thread: %s", strerror(errno)));
        }
        ps->has_thread = true;
        return 0;
    }
    /* Synchronous on the caller's thread: let the interrupt signal reach it meanwhile. */
    sigset_t set, old;
    sigemptyset(&set);
    rs__interrupt_sigset(&set);
    pthread_sigmask(SIG_UNBLOCK, &set, &old);
    run_here(ps, rs, timer_for(ps, rs));
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    return 0;
}

/* Waits for the end of the current invocation; ps->mu is held. */
static void wait_completed(rs_ps *ps)
{
    while (!atomic_load(&ps->completed))
        rs__cond_wait(&ps->cv, &ps->mu);
}

/* Hands the output to the caller (an empty array stays behind). */
static void hand_over(rs_ps *ps, rs_value **output)
{
    if (!output)
        return;
    *output = ps->output;
    ps->output = rs_value_array();
    if (!*output)
        *output = rs_value_array();
}

int rs_ps_invoke(rs_ps *ps, rs_value **output)
{
    if (output)
        *output = NULL;
    if (!ps)
        return RS_EMISUSE;
    int rc = start(ps, false);
    if (rc)
        return rc;
    rs__mutex_lock(&ps->mu);
    wait_completed(ps);
    rs__mutex_unlock(&ps->mu);
    hand_over(ps, output);
    return ps->result;
}

int rs_ps_begin_invoke(rs_ps *ps, rs_async **async)
{
    if (async)
        *async = NULL;
    if (!ps)
        return RS_EMISUSE;
    int rc = start(ps, true);
    if (rc)
        return rc;
    if (async)
        *async = &ps->async;
    return 0;
}

int rs_ps_end_invoke(rs_ps *ps, rs_async *async, rs_value **output)
{
    if (output)
        *output = NULL;
    if (!ps)
        return RS_EMISUSE;
    if (async != &ps->async)
        return fail(ps, RS_EMISUSE, "the wait handle is not this invocation's");
    rs__mutex_lock(&ps->mu);
    if (!ps->begun || ps->ended) {
        bool twice = ps->ended;
        rs__mutex_unlock(&ps->mu);
        return fail(ps, RS_EMISUSE,
                    twice ? "end-invoke was already called for this invocation"
                          : "end-invoke needs a begin-invoke first");
    }
    wait_completed(ps);
    ps->ended = true;
    rs__mutex_unlock(&ps->mu);
    join_thread(ps);
    hand_over(ps, output);
    return ps->result;
}

/* ---- stopping ----------------------------------------------------------------------------- */

int rs_ps_begin_stop(rs_ps *ps)
{
    if (!ps)
        return RS_EMISUSE;
    rs__mutex_lock(&ps->mu);
    rs_pool *pool = running(ps) ? ps->pool : NULL;
    rs__mutex_unlock(&ps->mu);
    if (pool && rs__pool_dequeue(pool, ps)) {
        rs__ps_finish_unrun(ps, RS_ESTOPPED, "the invocation was stopped before it ran");
        return 0;
    }
    rs__mutex_lock(&ps->mu);
    if (running(ps) && atomic_load(&ps->phase) != RS__PHASE_FINISHING) {
        ps->stop_requested = true;
        if (atomic_load(&ps->phase) == RS__PHASE_EXECUTING && ps->running_on) {
            atomic_store(&ps->state, RS_PS_STOPPING);
            rs__exec_request_stop(&ps->running_on->exec);
        }
    }
    rs__mutex_unlock(&ps->mu);
    return 0;
}

int rs_ps_stop(rs_ps *ps)
{
    int rc = rs_ps_begin_stop(ps);
    if (rc)
        return rc;
    /* Until it completes, or is idle again: a begin that failed after queueing puts the
     * invocation back as it was (undo_queued), and it will never complete. */
    rs__mutex_lock(&ps->mu);
    while (atomic_load(&ps->state) != RS_PS_NOT_STARTED && !atomic_load(&ps->completed) &&
           atomic_load(&ps->phase) != RS__PHASE_IDLE)
        rs__cond_wait(&ps->cv, &ps->mu);
    rs__mutex_unlock(&ps->mu);
    return 0;
}

/* ---- results ------------------------------------------------------------------------------ */

rs_ps_state rs_ps_get_state(rs_ps *ps)
{
    return ps ? (rs_ps_state)atomic_load(&ps->state) : RS_PS_NOT_STARTED;
}

/* True when the results may be read: the invocation is not running, or has finished and is
 * being published (as inside an on_complete callback). Lock-free: the thread that ran it wrote
 * the results before it stored FINISHING, and this load sees them with it. */
static bool settled(rs_ps *ps)
{
    int phase = atomic_load(&ps->phase);
    return phase == RS__PHASE_IDLE || phase == RS__PHASE_FINISHING;
}

bool rs_ps_had_errors(rs_ps *ps)
{
    return ps && settled(ps) && ps->had_errors;
}

int rs_ps_result(rs_ps *ps)
{
    if (!ps)
        return RS_EMISUSE;
    return settled(ps) ? ps->result : 0;
}

const char *rs_ps_errmsg(const rs_ps *cps)
{
    rs_ps *ps = (rs_ps *)cps;
    if (!ps)
        return "";
    rs__mutex_lock(&ps->mu);
    const rs__msg *m = ps->result_stamp > ps->msg_stamp ? &ps->result_msg : &ps->msg;
    rs__mutex_unlock(&ps->mu);
    return rs__msg_get(m);
}

const rs_value *rs_ps_output(rs_ps *ps)
{
    return ps && settled(ps) ? ps->output : NULL;
}

size_t rs_ps_record_count(rs_ps *ps, rs_stream stream)
{
    if (!ps || stream < 0 || stream >= RS_STREAM_COUNT || !settled(ps))
        return 0;
    if (stream == RS_STREAM_OUTPUT)
        return ps->output ? rs_array_len(ps->output) : 0;
    return ps->records[stream].count;
}

int rs_ps_record(rs_ps *ps, rs_stream stream, size_t index, rs_record *out)
{
    if (!ps)
        return RS_EMISUSE;
    if (!out || stream <= RS_STREAM_OUTPUT || stream >= RS_STREAM_COUNT)
        return RS_EINVAL;
    if (!settled(ps))
        return RS_EBUSY;
    if (index >= ps->records[stream].count)
        return RS_EINVAL;
    *out = ps->records[stream].items[index];
    return 0;
}

size_t rs_ps_item_count(rs_ps *ps)
{
    return ps && settled(ps) ? ps->nitems : 0;
}

int rs_ps_item(rs_ps *ps, size_t index, rs_item_result *out)
{
    if (!ps)
        return RS_EMISUSE;
    if (!out)
        return RS_EINVAL;
    if (!settled(ps))
        return RS_EBUSY;
    if (index >= ps->nitems)
        return RS_EINVAL;
    *out = ps->items[index];
    return 0;
}

/* ---- wait handles ------------------------------------------------------------------------- */

bool rs_async_is_completed(rs_async *async)
{
    return async && atomic_load(&async->ps->completed);
}

int rs_async_wait(rs_async *async, double timeout)
{
    if (!async)
        return RS_EMISUSE;
    if (timeout != timeout)
        return RS_EINVAL;
    rs_ps *ps = async->ps;
    int rc = 0;
    /* A short invocation ends before a sleep would; the spin never outlasts the timeout. */
    if (timeout != 0)
        rs__spin_until(&ps->completed,
                       timeout < 0 || timeout > 50e-6 ? 50000 : rs__seconds_to_ns(timeout));
    rs__mutex_lock(&ps->mu);
    if (timeout < 0) {
        wait_completed(ps);
    } else {
        int64_t deadline = rs__now_ns() + rs__seconds_to_ns(timeout);
        while (!atomic_load(&ps->completed) && rc == 0)
            rc = rs__cond_wait_until(&ps->cv, &ps->mu, deadline);
        if (atomic_load(&ps->completed))
            rc = 0;
    }
    rs__mutex_unlock(&ps->mu);
    return rc;
}

int rs_async_fd(rs_async *async)
{
    if (!async) {
        errno = EINVAL;
        return -1;
    }
    rs_ps *ps = async->ps;
    rs__mutex_lock(&ps->mu);
    if (ps->async.fd < 0) {
        ps->async.fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (ps->async.fd >= 0 && atomic_load(&ps->completed)) {
            uint64_t one = 1;
            ssize_t n = write(ps->async.fd, &one, sizeof one);
            RS__UNUSED(n);
        }
    }
    int fd = ps->async.fd;
    rs__mutex_unlock(&ps->mu);
    return fd;
}

/* ---- names -------------------------------------------------------------------------------- */

const char *rs_ps_state_name(rs_ps_state s)
{
    static const char *const names[] = {"NotStarted", "Running",   "Stopping",
                                        "Stopped",    "Completed", "Failed"};
    return (unsigned)s < RS__ARRAY_SIZE(names) ? names[s] : "Unknown";
}

const char *rs_stream_name(rs_stream s)
{
    static const char *const names[] = {"output", "error",       "warning", "verbose",
                                        "debug",  "information", "progress"};
    return (unsigned)s < RS__ARRAY_SIZE(names) ? names[s] : "unknown";
}

const char *rs_item_status_name(rs_item_status s)
{
    static const char *const names[] = {"ok", "error", "timeout", "cancelled"};
    return (unsigned)s < RS__ARRAY_SIZE(names) ? names[s] : "unknown";
}

const char *rs_runspace_state_name(rs_runspace_state s)
{
    static const char *const names[] = {"BeforeOpen", "Opened", "Broken", "Closed"};
    return (unsigned)s < RS__ARRAY_SIZE(names) ? names[s] : "Unknown";
}

const char *rs_availability_name(rs_availability a)
{
    static const char *const names[] = {"None", "Available", "Busy"};
    return (unsigned)a < RS__ARRAY_SIZE(names) ? names[a] : "Unknown";
}
