/*
 * interrupt.c -- stopping a running script, promptly and without a permanent hook.
 *
 * DESIGN
 * A Lua state may only be touched by the thread running it, and a count hook left on all the
 * time slows tight loops by half or more. So the hook goes on only when needed, and it is put
 * on by the executing thread itself: a stopper (rs_ps_stop, the timer of a timeout) sets an
 * atomic flag or publishes a deadline, wakes a sleep() through the context's condition
 * variable, and sends the interrupt signal to the executing thread (pthread_kill). The handler
 * runs on that thread and calls lua_sethook on the Lua threads it is running, which Lua
 * supports from signal handlers (lua.c does the same for Ctrl-C): the VM reloads its trap
 * flag at every jump and call, so the hook fires at the next instruction even in
 * `while true do end`. The hook checks why it fired and raises the error, keeping itself armed
 * so a script's pcall cannot swallow the stop: every further instruction raises again until
 * the error reaches the runner's own pcall. A stale signal (the run it was meant for already
 * ended) finds nothing due and the hook removes itself.
 *
 * The signal is SIGRTMIN+6. ThreadSanitizer defers asynchronous signals until the thread next
 * enters an intercepted libc call, which a tight Lua loop never does, but delivers the signals
 * it considers synchronous at once; TSan builds therefore use SIGSYS, and the mechanism is
 * otherwise the same.
 *
 * Coroutines are Lua threads of their own with their own hooks. coroutine.resume and
 * coroutine.wrap are replaced (lualib.c) by versions that record the resumed thread in `co`
 * and hand it the resumer's hook, so the handler arms every thread on the running chain.
 *
 * The signal is installed without SA_RESTART, so a blocking system call in a script (io.read
 * on a pipe, for one) returns EINTR and the hook then fires.
 */
#include "runspace_int.h"

#include <lauxlib.h>

#include <errno.h>
#include <pthread.h>
#include <string.h>

#if defined(__SANITIZE_THREAD__)
#define INTERRUPT_SIGNAL SIGSYS
#else
#define INTERRUPT_SIGNAL (SIGRTMIN + 6)
#endif

/* How many instructions the budget hook lets pass between its checks. */
#define BUDGET_STEP 1000

/* The context of the script this thread runs. initial-exec: the signal handler reads it, and
 * a dynamic TLS access could allocate on first use. */
static __thread rs__exec *tls_exec __attribute__((tls_model("initial-exec")));

static void interrupt_hook(lua_State *L, lua_Debug *ar);
static void budget_hook(lua_State *L, lua_Debug *ar);

int rs__interrupt_signal(void)
{
    return INTERRUPT_SIGNAL;
}

rs__exec *rs__exec_current(void)
{
    return tls_exec;
}

/* Arms the interrupt hook on every Lua thread of the running chain. Async-signal-safe. */
static void arm(rs__exec *ex)
{
    int n = ex->depth;
    atomic_signal_fence(memory_order_acquire);
    if (n > RS__CO_MAX)
        n = RS__CO_MAX;
    for (int i = 0; i < n; i++)
        lua_sethook(ex->co[i], interrupt_hook, LUA_MASKCOUNT, 1);
}

static void on_signal(int sig, siginfo_t *info, void *uctx)
{
    RS__UNUSED(sig);
    RS__UNUSED(info);
    RS__UNUSED(uctx);
    int saved = errno;
    rs__exec *ex = tls_exec;
    if (ex && ex->L)
        arm(ex);
    errno = saved;
}

static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static int setup_result;

static void setup(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO; /* no SA_RESTART: see the DESIGN note */
    sigemptyset(&sa.sa_mask);
    setup_result = sigaction(INTERRUPT_SIGNAL, &sa, NULL) == 0 ? 0 : RS_ESYSTEM;
}

int rs__interrupt_setup(void)
{
    pthread_once(&setup_once, setup);
    return setup_result;
}

int rs__exec_init(rs__exec *ex)
{
    memset(ex, 0, sizeof *ex);
    atomic_init(&ex->stop, 0);
    atomic_init(&ex->deadline, 0);
    rs__queue_init(&ex->timer_node);
    if (rs__mutex_init(&ex->mu))
        return RS_ESYSTEM;
    if (rs__cond_init(&ex->cv)) {
        rs__mutex_destroy(&ex->mu);
        return RS_ESYSTEM;
    }
    return 0;
}

void rs__exec_destroy(rs__exec *ex)
{
    rs__cond_destroy(&ex->cv);
    rs__mutex_destroy(&ex->mu);
}

/* The hook a thread carries while no interruption is pending. */
static void set_resting_hook(rs__exec *ex, lua_State *L)
{
    if (ex && ex->budget)
        lua_sethook(L, budget_hook, LUA_MASKCOUNT,
                    ex->budget < BUDGET_STEP ? (int)ex->budget : BUDGET_STEP);
    else
        lua_sethook(L, NULL, 0, 0);
}

void rs__exec_enter(rs__exec *ex, lua_State *L)
{
    ex->L = L;
    ex->co[0] = L;
    ex->reason = 0;
    ex->budget_left = ex->budget;
    atomic_signal_fence(memory_order_release);
    ex->depth = 1;
    tls_exec = ex;
    set_resting_hook(ex, L);
}

void rs__exec_leave(rs__exec *ex)
{
    tls_exec = NULL;
    ex->depth = 0;
    if (ex->L)
        lua_sethook(ex->L, NULL, 0, 0);
    ex->L = NULL;
}

void rs__exec_set_deadlines(rs__exec *ex, int64_t item_deadline, int64_t inv_deadline)
{
    ex->item_deadline = item_deadline;
    ex->inv_deadline = inv_deadline;
    int64_t d = item_deadline;
    if (inv_deadline && (!d || inv_deadline < d))
        d = inv_deadline;
    atomic_store(&ex->deadline, d); /* sequentially consistent: see rs__timer_moved */
}

int rs__exec_due(rs__exec *ex)
{
    if (ex->reason)
        return ex->reason; /* an interruption is being raised: it stays due until handled */
    if (atomic_load_explicit(&ex->stop, memory_order_acquire))
        return RS_ESTOPPED;
    int64_t d = atomic_load_explicit(&ex->deadline, memory_order_relaxed);
    if (d && rs__now_ns() >= d)
        return RS_ETIMEDOUT;
    return 0;
}

int rs__exec_raise(lua_State *L, rs__exec *ex, int why)
{
    if (!ex->reason)
        ex->reason = why;
    arm(ex);
    lua_sethook(L, interrupt_hook, LUA_MASKCOUNT, 1);
    switch (ex->reason) {
    case RS_ESTOPPED:
        lua_pushliteral(L, "the invocation was stopped");
        break;
    case RS_ETIMEDOUT:
        lua_pushliteral(L, "timed out");
        break;
    case RS_ELIMIT:
        lua_pushfstring(L, "instruction budget of %I exceeded", (lua_Integer)ex->budget);
        break;
    default:
        lua_pushliteral(L, "interrupted");
        break;
    }
    return lua_error(L);
}

/* The context a hook runs for, or NULL (after removing the hook) when no run is in progress:
 * a hook left on a coroutine that is resumed outside any invocation. */
static rs__exec *hook_context(lua_State *L)
{
    rs__exec *ex = tls_exec;
    if (!ex || !ex->L) {
        lua_sethook(L, NULL, 0, 0);
        return NULL;
    }
    return ex;
}

static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
    RS__UNUSED(ar);
    rs__exec *ex = hook_context(L);
    if (!ex)
        return;
    int why = rs__exec_due(ex);
    if (!why) {
        /* Stale: the interruption was for a run that has ended. A stop that arrives while the
         * hook is being reset is caught by the second look. */
        set_resting_hook(ex, L);
        why = rs__exec_due(ex);
    }
    if (why)
        rs__exec_raise(L, ex, why);
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    RS__UNUSED(ar);
    rs__exec *ex = hook_context(L);
    if (!ex)
        return;
    int why = rs__exec_due(ex);
    if (!why) {
        uint64_t step = ex->budget < BUDGET_STEP ? ex->budget : BUDGET_STEP;
        if (ex->budget_left <= step)
            why = RS_ELIMIT;
        else
            ex->budget_left -= step;
    }
    if (why)
        rs__exec_raise(L, ex, why);
}

int rs__exec_charge(rs__exec *ex, uint64_t work)
{
    int why = rs__exec_due(ex);
    if (why || !ex->budget)
        return why;
    if (ex->budget_left <= work)
        return RS_ELIMIT;
    ex->budget_left -= work;
    return 0;
}

void rs__exec_reset_hooks(rs__exec *ex)
{
    ex->reason = 0;
    ex->depth = 1;
    ex->budget_left = ex->budget;
    if (ex->L)
        set_resting_hook(ex, ex->L);
}

void rs__exec_push_thread(rs__exec *ex, lua_State *co)
{
    int n = ex->depth;
    if (n < RS__CO_MAX) {
        ex->co[n] = co;
        atomic_signal_fence(memory_order_release);
    }
    ex->depth = n + 1;
}

void rs__exec_pop_thread(rs__exec *ex)
{
    if (ex->depth > 1)
        ex->depth = ex->depth - 1;
}

void rs__exec_interrupt(rs__exec *ex)
{
    rs__mutex_lock(&ex->mu);
    rs__cond_broadcast(&ex->cv);
    rs__mutex_unlock(&ex->mu);
    pthread_kill(ex->thread, INTERRUPT_SIGNAL);
}

void rs__exec_request_stop(rs__exec *ex)
{
    atomic_store_explicit(&ex->stop, 1, memory_order_release);
    rs__exec_interrupt(ex);
}

int rs__exec_sleep(rs__exec *ex, double seconds)
{
    int64_t end = rs__now_ns() + rs__seconds_to_ns(seconds);
    int why;
    rs__mutex_lock(&ex->mu);
    while (!(why = rs__exec_due(ex))) {
        int64_t wake = end;
        int64_t d = atomic_load_explicit(&ex->deadline, memory_order_relaxed);
        if (d && d < wake)
            wake = d;
        if (rs__cond_wait_until(&ex->cv, &ex->mu, wake) == RS_ETIMEDOUT && rs__now_ns() >= end)
            break;
    }
    rs__mutex_unlock(&ex->mu);
    return why;
}
