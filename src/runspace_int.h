/*
 * runspace_int.h -- internal structure of a runspace and of the execution context through
 * which other threads stop or time out the script it runs.
 */
#ifndef RS_RUNSPACE_INT_H
#define RS_RUNSPACE_INT_H

#include "arena.h"
#include "common.h"
#include "iss.h"
#include "queue.h"
#include "thread.h"

#include <lua.h>

#include <signal.h>
#include <stdatomic.h>

struct rs_ps;
struct rs__timer;

/* Coroutines nested deeper than this are not interrupted individually; their resumer is. Lua
 * itself refuses C nesting past about 200 levels, so the limit is never reached in practice. */
#define RS__CO_MAX 256

/*
 * The execution context of a runspace: how a stop or a timeout reaches a running script.
 *
 * The executing thread publishes itself (tls_exec, `thread`, `running`) and the Lua threads it
 * is running (`co`). A stopper sets `stop`, a deadline is published in `deadline`; either then
 * calls rs__exec_interrupt, which wakes a sleep() through `cv` and sends the interrupt signal
 * to the executing thread. The signal handler runs on that thread and arms a count hook on the
 * Lua threads in `co` (lua_sethook is made to be called from a signal handler), re-allowing
 * hooks where Lua turned them off (a finalizer, say); the hook then raises an error at the
 * next VM instruction. The process's watchdog repeats the signal while the interruption stays
 * due. So the hook is on only after an interrupt, and the Lua state is only ever touched by
 * its own thread. See interrupt.c.
 */
typedef struct rs__exec {
    /* Owned by the executing thread. */
    lua_State *L;                   /* the runspace's main thread while executing, else NULL */
    lua_State *co[RS__CO_MAX];      /* co[0] = L, then the coroutines being resumed */
    volatile sig_atomic_t depth;    /* entries of co in use, read by the signal handler */
    volatile sig_atomic_t in_hook;  /* one of our hooks runs (its allowhook is off by design) */
    volatile sig_atomic_t broke_in; /* the handler re-allowed hooks in code Lua ran without */
    bool tainted;                   /* such code was cut short: replace the state after the run */
    int reason;                     /* RS_E* of the interruption raised, 0 for none */
    int64_t item_deadline;          /* ns, 0 = none */
    int64_t inv_deadline;           /* ns, 0 = none */
    uint64_t budget;                /* instruction budget per run, 0 = none */
    uint64_t budget_left;
    /* Shared with other threads. */
    atomic_int stop;       /* nonzero once a stop was requested */
    atomic_llong deadline; /* min of the deadlines above, read by the timer */
    atomic_bool running;   /* a run is published: `thread` is valid */
    atomic_ullong beat;    /* ticks of the budget hook, for the watchdog's stall check */
    atomic_int blocked;    /* waiting in sleep(): a silent budget hook is no stall */
    pthread_t thread;      /* the executing thread, valid while a run is published */
    rs__mutex mu;          /* sleep() waits on cv under mu */
    rs__cond cv;
    /* Timer registration (under the timer's lock). */
    struct rs__timer *timer;
    rs__qnode timer_node;
    int64_t fired_deadline;
    /* Watchdog registration (under the watchdog's lock; `watched` is read without it). */
    rs__qnode wd_node;
    atomic_bool watched;
    int wd_what;
    bool wd_signalled; /* rs__exec_interrupt has just signalled: wait a period first */
    uint64_t wd_beat;
    int wd_stalls;
} rs__exec;

struct rs_runspace {
    uint64_t id;
    char name[64];
    rs_iss *iss;          /* reference */
    rs_shared *shared;    /* reference; NULL until first used in a standalone runspace */
    struct rs_pool *pool; /* owning pool, or NULL for a standalone runspace */
    atomic_int state;     /* rs_runspace_state */
    atomic_int busy;      /* an invocation is executing on it */
    lua_State *L;
    rs__arena arena; /* small Lua objects (arena.c) */
    /* Lua memory accounting (the lua_Alloc of this runspace). */
    atomic_size_t mem_used;
    size_t mem_limit;
    /* C memory held for the script running now (its outputs and stream records, and values
     * being converted), counted against mem_limit with the Lua heap; its own thread only. */
    size_t c_held;
    bool oom_armed;      /* a refused allocation armed an RS_ENOMEM interruption (lua_alloc) */
    bool oom;            /* an allocation was refused since the flag was last cleared */
    bool modules_loaded; /* the ISS's modules ran in this state (the first invocation) */
    void *last_block;    /* while lua_close runs: the block it frees last (the state) */
    /* Scripts compiled in this runspace, by source and chunk name. */
    struct rs__cached {
        uint64_t hash;
        size_t len;
        char *src; /* len bytes of source, a NUL, then the chunk name */
        int ref;
    } cache[64];
    /* Scratch that C functions called from Lua keep here rather than in locals, so that a Lua
     * error raised while they hold it leaks nothing: it is freed on the next use or at close.
     * Native C functions never nest, so one of each suffices. */
    rs__buf scratch;
    rs__buf warning;   /* a Lua warning being pieced together (runspace.c) */
    bool warnings_off; /* "@off" was warned */
    rs_value *scratch_value;
    size_t scratch_charge; /* of the memory limit, for scratch_value (c_held) */
    rs_value *call_args;
    rs_value *call_out;
    rs__exec exec;
    struct rs__run *run; /* the invocation executing, or NULL (exec.c) */
    /* Standalone use: bindings and the private timer. */
    rs__mutex mu;
    int nbound;              /* invocations bound to it */
    struct rs__timer *timer; /* created on first use of a timeout */
    rs__msg msg;
};

/* The runspace a Lua state belongs to. It lives in the state's extra space, which Lua copies
 * to every thread it creates, so built-ins need no upvalue (Lua's own functions have none:
 * debug.getinfo(print, "u").nups is 0 in a runspace too). */
static inline rs_runspace *rs__lua_runspace(lua_State *L)
{
    return *(rs_runspace **)lua_getextraspace(L);
}

/* ---- runspace.c ---- */
/* How long, in all, the finalizers that lua_close runs may take when a runspace closes. */
#define RS__CLOSE_GRACE_NS ((int64_t)(RS_CLOSE_GRACE * 1e9))
/* Sets global `name` to the value on top (popped), raw: a script's metatable on _G must not
 * run inside the runner, where no stop or limit reaches it. */
void rs__set_global(lua_State *L, const char *name);
/* Charges bytes of C memory held for the running script to the memory limit: 0, or RS_ENOMEM
 * (nothing charged) when the Lua heap and what is held already leave no room. Its thread. */
int rs__charge(rs_runspace *rs, size_t bytes);
/* Gives back bytes charged before. */
void rs__uncharge(rs_runspace *rs, size_t bytes);
/* Runs the ISS's modules in the runspace's state once (protected, msgh as the message
 * handler); before the first script of the first invocation, inside its execution context,
 * so that their code runs under its stop, timeout and budget. Returns the lua_pcall status. */
int rs__runspace_load_modules(rs_runspace *rs, int msgh);
/* Creates the runspace object for a pool worker or a standalone runspace. */
int rs__runspace_new(const rs_iss *iss, const char *name, rs_shared *shared, struct rs_pool *pool,
                     rs_runspace **out);
/* Opens (or reopens after a failure) the interpreter; on the calling thread. */
int rs__runspace_open_state(rs_runspace *rs);
void rs__runspace_close_state(rs_runspace *rs);
void rs__runspace_free(rs_runspace *rs);
/* Pushes the compiled function for source (compiling and caching it on a miss). On failure
 * pushes nothing and returns RS_ESYNTAX or RS_ENOMEM with the message in *msg (new string). */
int rs__runspace_compiled(rs_runspace *rs, const char *src, size_t len, const char *chunkname,
                          uint64_t hash, char **msg);
/* FNV-1a of a script's text, the compile cache key. */
uint64_t rs__hash(const char *s, size_t len);
/* Checks that src compiles, on a per-thread scratch state; RS_ESYNTAX with *msg set. */
int rs__check_syntax(const char *src, size_t len, const char *chunkname, char **msg);
/* The runspace's timer, created on first use; NULL when out of resources. */
struct rs__timer *rs__runspace_timer(rs_runspace *rs);
void rs__runspace_info(rs_runspace *rs, rs_runspace_info *row);

/* ---- interrupt.c ---- */
int rs__exec_init(rs__exec *ex);
void rs__exec_destroy(rs__exec *ex);
/* Installs the interrupt signal handlers, once per process. 0 or RS_ESYSTEM. */
int rs__interrupt_setup(void);
/* The signal number used for interrupts (for code that waits in ppoll/epoll_pwait). */
int rs__interrupt_signal(void);
/* The signal of the watchdog's pokes (the same as the interrupt signal in TSan builds). */
int rs__poke_signal(void);
/* Adds the signals a thread that runs scripts must accept to set. */
void rs__interrupt_sigset(sigset_t *set);
/* Whether code Lua runs with hooks off can be interrupted on this build (see interrupt.c). */
bool rs__interrupt_can_break_in(void);
/* Executing thread: starts / ends a run of Lua code on L. */
void rs__exec_enter(rs__exec *ex, lua_State *L);
void rs__exec_leave(rs__exec *ex);
/* Executing thread: starts the run that closes L (lua_close runs the finalizers), interrupted
 * once a deadline passes (inv_deadline may be 0) or on a stop; ends with rs__exec_leave. */
void rs__exec_enter_close(rs__exec *ex, lua_State *L, int64_t deadline, int64_t inv_deadline);
/* Makes ex (may be NULL) the calling thread's context again, after a nested run ended. */
void rs__exec_set_current(rs__exec *ex);
/* Executing thread: sets the deadlines of the current run (0 = none) and the budget. */
void rs__exec_set_deadlines(rs__exec *ex, int64_t item_deadline, int64_t inv_deadline);
/* Executing thread: the interruption due now (RS_ESTOPPED, RS_ETIMEDOUT, or the reason being
 * raised), or 0. Async-signal-safe. */
int rs__exec_due(rs__exec *ex);
/* Executing thread: charges work done in C (counted like instructions) to the run's budget;
 * the interruption due now, RS_ELIMIT when the budget is spent, or 0. */
int rs__exec_charge(rs__exec *ex, uint64_t work);
/* Executing thread: raises the Lua error of interruption `why` on L, keeping the hook armed
 * so that a script's pcall cannot swallow it. Never returns. */
int rs__exec_raise(lua_State *L, rs__exec *ex, int why);
/* Executing thread: makes interruption `why` due from now on (armed like a stop: the next
 * instruction raises it), without raising here; why == 0 calls off an RS_ENOMEM one that
 * was not raised yet. */
void rs__exec_fail(rs__exec *ex, int why);
/* Executing thread: after a run ends, puts the hooks back to their resting state. */
void rs__exec_reset_hooks(rs__exec *ex);
/* Executing thread: a new input item starts: the budget is whole again. */
void rs__exec_new_item(rs__exec *ex);
/* Executing thread, in coroutine.resume: gives co the hook of the resumer L when it is one of
 * ours (an armed interrupt always; the budget's unless the script set a hook on co). */
void rs__exec_hand_hook(lua_State *L, lua_State *co);
/* Executing thread, in coroutine.resume: the resumed thread enters / leaves the running set. */
void rs__exec_push_thread(rs__exec *ex, lua_State *co);
void rs__exec_pop_thread(rs__exec *ex);
/* Any thread: wakes the executing thread (sleep, and the hook through the signal). */
void rs__exec_interrupt(rs__exec *ex);
/* Any thread: requests a stop and interrupts. */
void rs__exec_request_stop(rs__exec *ex);
/* The execution context of the calling thread, or NULL when it runs no script. */
rs__exec *rs__exec_current(void);
/* Executing thread: sleeps up to seconds; returns 0, or the interruption that cut it short. */
int rs__exec_sleep(rs__exec *ex, double seconds);

/* ---- pool.c ---- */
/* The session state the pool's runspaces are built from (borrowed for the pool's life). */
const rs_iss *rs__pool_iss(const rs_pool *pool);

/* ---- watchdog.c ---- */
/* What the watchdog watches an execution for (rs__exec.wd_what). */
enum { RS__WD_DUE = 1, RS__WD_BUDGET = 2, RS__WD_CLOSE = 4 };
/* Any thread: puts ex on the watchdog's list, to be watched for `what` (RS__WD_*). */
void rs__watchdog_watch(rs__exec *ex, int what);
/* Any thread: takes ex off the list; after it returns, the watchdog signals ex no more. */
void rs__watchdog_unwatch(rs__exec *ex);

#endif
