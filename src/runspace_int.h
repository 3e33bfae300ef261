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
 * The executing thread publishes itself (tls_exec, `thread`) and the Lua threads it is running
 * (`co`). A stopper sets `stop`, a deadline is published in `deadline`; either then calls
 * rs__exec_interrupt, which wakes a sleep() through `cv` and sends the interrupt signal to the
 * executing thread. The signal handler runs on that thread and arms a count hook on the Lua
 * threads in `co` (lua_sethook is made to be called from a signal handler); the hook then
 * raises an error at the next VM instruction. So the hook is on only after an interrupt, and
 * the Lua state is only ever touched by its own thread.
 */
typedef struct rs__exec {
    /* Owned by the executing thread. */
    lua_State *L;                /* the runspace's main thread while executing, else NULL */
    lua_State *co[RS__CO_MAX];   /* co[0] = L, then the coroutines being resumed */
    volatile sig_atomic_t depth; /* entries of co in use, read by the signal handler */
    int reason;                  /* RS_E* of the interruption raised, 0 for none */
    int64_t item_deadline;       /* ns, 0 = none */
    int64_t inv_deadline;        /* ns, 0 = none */
    uint64_t budget;             /* instruction budget per run, 0 = none */
    uint64_t budget_left;
    /* Shared with other threads. */
    atomic_int stop;       /* nonzero once a stop was requested */
    atomic_llong deadline; /* min of the deadlines above, read by the timer */
    pthread_t thread;      /* the executing thread, valid while a run is published */
    rs__mutex mu;          /* sleep() waits on cv under mu */
    rs__cond cv;
    /* Timer registration (under the timer's lock). */
    struct rs__timer *timer;
    rs__qnode timer_node;
    int64_t fired_deadline;
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
    bool oom; /* an allocation was refused since the flag was last cleared */
    /* Scripts compiled in this runspace, by source. */
    struct rs__cached {
        uint64_t hash;
        size_t len;
        char *src;
        int ref;
    } cache[64];
    /* Scratch that C functions called from Lua keep here rather than in locals, so that a Lua
     * error raised while they hold it leaks nothing: it is freed on the next use or at close.
     * Native C functions never nest, so one of each suffices. */
    rs__buf scratch;
    rs_value *scratch_value;
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

/* ---- runspace.c ---- */
/* Creates the runspace object for a pool worker or a standalone runspace. */
int rs__runspace_new(const rs_iss *iss, const char *name, rs_shared *shared, struct rs_pool *pool,
                     rs_runspace **out);
/* Opens (or reopens after a failure) the interpreter; on the calling thread. */
int rs__runspace_open_state(rs_runspace *rs);
void rs__runspace_close_state(rs_runspace *rs);
void rs__runspace_free(rs_runspace *rs);
/* Pushes the compiled function for source (compiling and caching it on a miss). On failure
 * pushes nothing and returns RS_ESYNTAX or RS_ENOMEM with the message in *msg (new string). */
int rs__runspace_compiled(rs_runspace *rs, const char *src, size_t len, uint64_t hash, char **msg);
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
/* Installs the interrupt signal handler, once per process. 0 or RS_ESYSTEM. */
int rs__interrupt_setup(void);
/* The signal number used for interrupts (exposed for tests and the signal mask of workers). */
int rs__interrupt_signal(void);
/* Executing thread: starts / ends a run of Lua code on L. */
void rs__exec_enter(rs__exec *ex, lua_State *L);
void rs__exec_leave(rs__exec *ex);
/* Executing thread: sets the deadlines of the current run (0 = none) and the budget. */
void rs__exec_set_deadlines(rs__exec *ex, int64_t item_deadline, int64_t inv_deadline);
/* Executing thread: the interruption due now (RS_ESTOPPED, RS_ETIMEDOUT), or 0. */
int rs__exec_due(rs__exec *ex);
/* Executing thread: charges work done in C (counted like instructions) to the run's budget;
 * the interruption due now, RS_ELIMIT when the budget is spent, or 0. */
int rs__exec_charge(rs__exec *ex, uint64_t work);
/* Executing thread: raises the Lua error of interruption `why` on L, keeping the hook armed
 * so that a script's pcall cannot swallow it. Never returns. */
int rs__exec_raise(lua_State *L, rs__exec *ex, int why);
/* Executing thread: after a run ends, puts the hooks back to their resting state. */
void rs__exec_reset_hooks(rs__exec *ex);
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

#endif
