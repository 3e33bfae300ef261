/*
 * interrupt.c -- stopping a running script, promptly and without a permanent hook, wherever
 * its Lua code runs.
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
 * Code Lua runs with hooks off. Lua calls no hook while a thread's `allowhook` flag is clear,
 * and it clears the flag while it runs a finalizer (__gc), while a hook runs (so also in a
 * debug.sethook function, and in a message handler called for an error a hook raised), and
 * it leaves it clear on a coroutine that died inside a hook, whose __close handlers then run
 * with it clear. A loop in any of them would ignore every stop. There is no API to set the
 * flag, so the handler does it itself ("break-in"): when an interruption is due, it sets the
 * flag on the running Lua threads, after which the armed hook fires in that code too. The
 * flag's place in struct lua_State is not in Lua's public headers; probe_allowhook() finds it
 * at start-up by watching the byte change where Lua documents the flag changes (inside a
 * hook, inside a finalizer, and back), and the break-in is disabled if the probe disagrees.
 * Lua resets the flag for each finalizer it starts, so one break-in may not be enough: the
 * watchdog below keeps signalling while an interruption stays due. Once hooks-off code has
 * been cut short, the runspace's Lua finalizers are disarmed (lualib.c keeps every metatable
 * that makes an object finalizable, rs__lualib_disarm_finalizers) so that no further one
 * runs, and the runspace is replaced after the run (`tainted`).
 *
 * The watchdog (watchdog.c) repeats the signal while an interruption stays due, ends the grace
 * of a closing state, and "pokes" a budgeted run whose budget hook went silent with a second
 * signal, installed with SA_RESTART so that a blocking read is not disturbed, whose handler
 * only performs the break-in so that the budget also counts code run with hooks off.
 *
 * The interrupt signal is SIGRTMIN+6, the poke SIGRTMIN+7. ThreadSanitizer defers
 * asynchronous signals until the thread next enters an intercepted libc call, which a tight
 * Lua loop never does, but delivers the signals it considers synchronous at once; TSan builds
 * therefore use SIGSYS for both, and the mechanism is otherwise the same.
 *
 * Coroutines are Lua threads of their own with their own hooks. coroutine.resume, wrap and
 * close are replaced (lualib.c) by versions that record the thread they run in `co` and hand
 * it the resumer's hook, so the handler arms every thread on the running chain.
 *
 * The interrupt signal is installed without SA_RESTART, so a blocking system call in a script
 * (io.read on a pipe, for one) returns EINTR and the hook then fires.
 *
 * Lock order: an execution's mu, then the watchdog's lock (rs__exec_interrupt).
 */
#include "runspace_int.h"

#include "lualib_int.h"
#include "queue.h"
#include "thread.h"

#include <lauxlib.h>
#include <lualib.h>

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#if defined(__SANITIZE_THREAD__)
#define INTERRUPT_SIGNAL SIGSYS
#define POKE_SIGNAL SIGSYS
#else
#define INTERRUPT_SIGNAL (SIGRTMIN + 6)
#define POKE_SIGNAL (SIGRTMIN + 7)
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

int rs__poke_signal(void)
{
    return POKE_SIGNAL;
}

void rs__interrupt_sigset(sigset_t *set)
{
    sigaddset(set, INTERRUPT_SIGNAL);
    sigaddset(set, POKE_SIGNAL);
}

rs__exec *rs__exec_current(void)
{
    return tls_exec;
}

/* ---- break-in ----------------------------------------------------------------------------- */

/* Offset of `allowhook` in struct lua_State, or -1 when the probe could not confirm it. */
static ptrdiff_t allowhook_offset = -1;

static unsigned char *allowhook_of(lua_State *L, ptrdiff_t off)
{
    return (unsigned char *)L + off;
}

static int probe_seen_in_hook = -1;
static int probe_seen_in_gc = -1;
static ptrdiff_t probe_off;

static void probe_hook(lua_State *L, lua_Debug *ar)
{
    RS__UNUSED(ar);
    probe_seen_in_hook = *allowhook_of(L, probe_off);
    lua_sethook(L, NULL, 0, 0);
}

static int probe_gc(lua_State *L)
{
    probe_seen_in_gc = *allowhook_of(L, probe_off);
    return 0;
}

static void *probe_alloc(void *ud, void *ptr, size_t osize, size_t nsize)
{
    RS__UNUSED(ud);
    RS__UNUSED(osize);
    if (nsize == 0) {
        free(ptr);
        return NULL;
    }
    return realloc(ptr, nsize);
}

static int probe_body(lua_State *L)
{
    lua_sethook(L, probe_hook, LUA_MASKCOUNT, 1);
    luaL_loadstring(L, "local x = 0 for i = 1, 3 do x = x + i end return x");
    lua_call(L, 0, 0);
    lua_newtable(L);
    lua_newtable(L);
    lua_pushcfunction(L, probe_gc);
    lua_setfield(L, -2, "__gc");
    lua_setmetatable(L, -2);
    lua_pop(L, 1);
    lua_gc(L, LUA_GCCOLLECT);
    return 0;
}

/* Finds where struct lua_State keeps `allowhook`: right after the common object header
 * (a pointer and two bytes) and the status byte, in every Lua 5.4 release. Confirms it on a
 * scratch state: the byte must be 1 normally, 0 inside a hook and inside a finalizer, and the
 * status byte before it must read LUA_YIELD on a suspended coroutine. */
static void probe_allowhook(void)
{
    ptrdiff_t off = (ptrdiff_t)(sizeof(void *) + 3);
    probe_off = off;
    lua_State *L = lua_newstate(probe_alloc, NULL);
    if (!L)
        return;
    bool ok = lua_version(L) == 504 && *allowhook_of(L, off) == 1 && *allowhook_of(L, off - 1) == 0;
    if (ok) {
        luaL_openlibs(L);
        lua_pushcfunction(L, probe_body);
        ok = lua_pcall(L, 0, 0, 0) == LUA_OK && probe_seen_in_hook == 0 && probe_seen_in_gc == 0 &&
             *allowhook_of(L, off) == 1;
    }
    if (ok) {
        lua_State *co = lua_newthread(L);
        int nres;
        ok = luaL_loadstring(co, "coroutine.yield(1)") == LUA_OK &&
             lua_resume(co, L, 0, &nres) == LUA_YIELD && *allowhook_of(co, off - 1) == LUA_YIELD &&
             *allowhook_of(co, off) == 1;
    }
    lua_close(L);
    if (ok)
        allowhook_offset = off;
}

bool rs__interrupt_can_break_in(void)
{
    return allowhook_offset >= 0;
}

/* Re-allows hooks on the running Lua threads where Lua has them off, unless one of our own
 * hooks is what is running. Async-signal-safe. */
static void break_in(rs__exec *ex)
{
    if (allowhook_offset < 0 || ex->in_hook)
        return;
    int n = ex->depth;
    atomic_signal_fence(memory_order_acquire);
    if (n > RS__CO_MAX)
        n = RS__CO_MAX;
    for (int i = 0; i < n; i++) {
        unsigned char *flag = allowhook_of(ex->co[i], allowhook_offset);
        if (*flag == 0) {
            *flag = 1;
            ex->broke_in = 1;
        }
    }
}

/* ---- signals ------------------------------------------------------------------------------ */

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
    RS__UNUSED(info);
    RS__UNUSED(uctx);
    int saved = errno;
    rs__exec *ex = tls_exec;
    if (ex && ex->L) {
        bool due = rs__exec_due(ex) != 0;
        if (sig == INTERRUPT_SIGNAL)
            arm(ex);
        if (due || ex->budget)
            break_in(ex);
    }
    errno = saved;
}

static pthread_once_t setup_once = PTHREAD_ONCE_INIT;
static int setup_result;

static void setup(void)
{
    probe_allowhook();
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_signal;
    sa.sa_flags = SA_SIGINFO; /* no SA_RESTART: see the DESIGN note */
    sigemptyset(&sa.sa_mask);
    setup_result = sigaction(INTERRUPT_SIGNAL, &sa, NULL) == 0 ? 0 : RS_ESYSTEM;
    if (POKE_SIGNAL != INTERRUPT_SIGNAL) {
        sa.sa_flags = SA_SIGINFO | SA_RESTART;
        if (sigaction(POKE_SIGNAL, &sa, NULL) != 0)
            setup_result = RS_ESYSTEM;
    }
}

int rs__interrupt_setup(void)
{
    pthread_once(&setup_once, setup);
    return setup_result;
}

/* ---- the execution context ---------------------------------------------------------------- */

int rs__exec_init(rs__exec *ex)
{
    memset(ex, 0, sizeof *ex);
    atomic_init(&ex->stop, 0);
    atomic_init(&ex->deadline, 0);
    atomic_init(&ex->running, false);
    atomic_init(&ex->beat, 0);
    atomic_init(&ex->watched, false);
    rs__queue_init(&ex->timer_node);
    rs__queue_init(&ex->wd_node);
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
    rs__watchdog_unwatch(ex);
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
    ex->broke_in = 0;
    ex->in_hook = 0;
    ex->budget_left = ex->budget;
    atomic_signal_fence(memory_order_release);
    ex->depth = 1;
    tls_exec = ex;
    atomic_store(&ex->running, true);
    set_resting_hook(ex, L);
    if (ex->budget)
        rs__watchdog_watch(ex, RS__WD_BUDGET);
}

void rs__exec_leave(rs__exec *ex)
{
    lua_State *L = ex->L;
    /* Unpublish before anything else: a signal arriving from here on touches no Lua thread. */
    ex->depth = 0;
    atomic_signal_fence(memory_order_seq_cst);
    ex->L = NULL;
    tls_exec = NULL;
    atomic_store(&ex->running, false);
    rs__watchdog_unwatch(ex);
    if (L)
        lua_sethook(L, NULL, 0, 0);
}

void rs__exec_enter_close(rs__exec *ex, lua_State *L, int64_t deadline, int64_t inv_deadline)
{
    /* Inside a run (a reset) the thread is this one already, and the run's timer reads it. */
    if (!pthread_equal(ex->thread, pthread_self()))
        ex->thread = pthread_self();
    ex->budget = 0;
    rs__exec_set_deadlines(ex, deadline, inv_deadline);
    rs__exec_enter(ex, L);
    rs__watchdog_watch(ex, RS__WD_CLOSE);
}

void rs__exec_set_current(rs__exec *ex)
{
    tls_exec = ex;
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
    if (ex->broke_in && !ex->tainted) {
        /* Hooks-off code (a finalizer, say) is being cut short: let no other finalizer of
         * this state run, and have the state replaced after the run. */
        ex->tainted = true;
        rs__lualib_disarm_finalizers(L);
    }
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
    case RS_ENOMEM:
        lua_pushliteral(L, "out of memory: the runspace memory limit was exceeded");
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

/* Raises an interruption from inside one of our hooks. Lua calls hooks with hooks off, and a
 * message handler (xpcall's, the runner's) that the error meets runs before the error unwinds,
 * so it would run with hooks off too: a handler that loops would be reached only by a break-in,
 * once for each of the up to 200 nested calls of the handler that each new interruption makes.
 * Hooks are allowed again first, so the hook, still armed, interrupts such a handler at once;
 * the protected call that catches the error puts the flag back as it was. */
static void raise_from_hook(lua_State *L, rs__exec *ex, int why)
{
    if (allowhook_offset >= 0)
        *allowhook_of(L, allowhook_offset) = 1;
    rs__exec_raise(L, ex, why);
}

static void interrupt_hook(lua_State *L, lua_Debug *ar)
{
    RS__UNUSED(ar);
    rs__exec *ex = hook_context(L);
    if (!ex)
        return;
    ex->in_hook = 1;
    int why = rs__exec_due(ex);
    if (!why) {
        /* Stale: the interruption was for a run that has ended. A stop that arrives while the
         * hook is being reset is caught by the second look. */
        set_resting_hook(ex, L);
        why = rs__exec_due(ex);
    }
    ex->in_hook = 0;
    if (why)
        raise_from_hook(L, ex, why);
}

static void budget_hook(lua_State *L, lua_Debug *ar)
{
    RS__UNUSED(ar);
    rs__exec *ex = hook_context(L);
    if (!ex)
        return;
    ex->in_hook = 1;
    atomic_fetch_add_explicit(&ex->beat, 1, memory_order_relaxed);
    int why = rs__exec_due(ex);
    if (!why) {
        uint64_t step = ex->budget < BUDGET_STEP ? ex->budget : BUDGET_STEP;
        if (ex->budget_left <= step)
            why = RS_ELIMIT;
        else
            ex->budget_left -= step;
    }
    ex->in_hook = 0;
    if (why)
        raise_from_hook(L, ex, why);
}

int rs__exec_charge(rs__exec *ex, uint64_t work)
{
    int why = rs__exec_due(ex);
    if (why || !ex->budget)
        return why;
    atomic_fetch_add_explicit(&ex->beat, 1, memory_order_relaxed);
    if (ex->budget_left <= work)
        return RS_ELIMIT;
    ex->budget_left -= work;
    return 0;
}

void rs__exec_fail(rs__exec *ex, int why)
{
    if (why) {
        if (!ex->reason) {
            ex->reason = why;
            arm(ex);
        }
    } else if (ex->reason == RS_ENOMEM) {
        ex->reason = 0; /* the armed hook finds nothing due and rests */
    }
}

void rs__exec_reset_hooks(rs__exec *ex)
{
    ex->reason = 0;
    ex->depth = 1;
    ex->budget_left = ex->budget;
    if (ex->L)
        set_resting_hook(ex, ex->L);
}

void rs__exec_new_item(rs__exec *ex)
{
    ex->budget_left = ex->budget;
    if (ex->budget && ex->L)
        set_resting_hook(ex, ex->L); /* restarts the hook's count too */
}

void rs__exec_hand_hook(lua_State *L, lua_State *co)
{
    lua_Hook mine = lua_gethook(L);
    if (mine != interrupt_hook && mine != budget_hook)
        return; /* the script's own hook, or none: Lua's rules (a thread keeps its hook) */
    lua_Hook theirs = lua_gethook(co);
    if (theirs && theirs != interrupt_hook && theirs != budget_hook && mine != interrupt_hook)
        return; /* the script set a hook on co: it stays, unless a stop must get through */
    lua_sethook(co, mine, lua_gethookmask(L), lua_gethookcount(L));
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
    rs__watchdog_watch(ex, RS__WD_DUE);
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
    atomic_store_explicit(&ex->blocked, 1, memory_order_relaxed);
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
    atomic_store_explicit(&ex->blocked, 0, memory_order_relaxed);
    return why;
}
