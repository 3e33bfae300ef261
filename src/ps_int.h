/*
 * ps_int.h -- internal structure of an invocation (rs_ps) and the calls between the modules
 * that drive it: ps.c (state machine, public API), exec.c (running the pipeline on a
 * runspace) and pool.c (queueing it onto workers).
 */
#ifndef RS_PS_INT_H
#define RS_PS_INT_H

#include "iss.h"
#include "runspace_int.h"

struct rs__timer;

typedef enum rs__stage_kind {
    RS__STAGE_SCRIPT,
    RS__STAGE_COMMAND,
    RS__STAGE_NATIVE /* a C function given by the library itself (rs__ps_add_native) */
} rs__stage_kind;

typedef struct rs__stage {
    rs__stage_kind kind;
    char *text; /* script source, or the command's name */
    size_t len;
    char *chunkname;      /* a script's Lua chunk name ("=script", "@job.lua") */
    uint64_t hash;        /* of a script's source and chunk name: the compile cache key */
    rs_value *args;       /* array, or NULL */
    rs_value *params;     /* map, or NULL */
    rs__iss_entry native; /* RS__STAGE_NATIVE: its name (text), fn and userdata */
} rs__stage;

/* Where an invocation is in its life, beyond the public state. */
typedef enum rs__phase {
    RS__PHASE_IDLE = 0,  /* not started, or ended */
    RS__PHASE_QUEUED,    /* in a pool's queue (under the pool's lock) */
    RS__PHASE_EXECUTING, /* running on `running_on` */
    RS__PHASE_FINISHING  /* done executing, results being published */
} rs__phase;

struct rs_async {
    struct rs_ps *ps;
    int fd; /* eventfd made on first rs_async_fd, else -1 */
};

typedef struct rs__records {
    rs_record *items; /* each record's strings live in one block starting at its message */
    size_t count;
    size_t cap;
} rs__records;

struct rs_ps {
    /* Lock order: a pool's mu, then ps->mu, then an execution context's mu. */
    rs__mutex mu;
    rs__cond cv;           /* broadcast when the invocation ends */
    atomic_int state;      /* rs_ps_state, changed under mu */
    atomic_bool completed; /* ended and published */
    atomic_int phase;      /* rs__phase: changed under mu, read without it */
    bool begun;            /* begin-invoke started the current invocation */
    bool ended;            /* end-invoke consumed it */
    bool stop_requested;   /* under mu */
    int prev_state;        /* state and completion before the current start (undo) */
    bool prev_completed;
    int result;         /* RS_E* of the last invocation */
    rs__msg msg;        /* the last failing API call's message: written by callers only */
    rs__msg result_msg; /* the last invocation's message: written by the thread running it */
    uint64_t stamp;     /* under mu: orders the two messages (rs_ps_errmsg shows the newer) */
    uint64_t msg_stamp;
    uint64_t result_stamp;
    rs_ps_opts opts;
    /* The pipeline. */
    rs__stage *stages;
    size_t nstages;
    size_t capstages;
    int syntax_rc; /* first syntax error of an added script, 0 if none */
    char *syntax_msg;
    rs_value *inputs; /* array, or NULL */
    /* Binding. */
    rs_pool *pool;
    rs_runspace *runspace;
    rs_runspace *private_rs; /* opened on demand when neither is bound */
    rs_runspace *running_on; /* under mu while executing */
    rs__qnode qnode;         /* a pool's queue (under the pool's lock) */
    bool has_thread;         /* begin-invoke on a runspace started `thread` */
    rs__thread thread;
    /* Results. */
    rs_value *output;
    rs__records records[RS_STREAM_COUNT];
    rs_item_result *items;
    size_t nitems;
    bool had_errors;
    rs_async async;
};

/* ---- exec.c ---- */
/* Runs ps's pipeline on rs from the calling thread (which must own rs) and fills ps's
 * results; returns the result code, with the message in ps->result_msg. timer (may be NULL when no
 * timeout is set) watches the deadlines. */
int rs__ps_execute(rs_ps *ps, rs_runspace *rs, struct rs__timer *timer);
/* Clears the results of the last invocation. */
void rs__ps_clear_results(rs_ps *ps);

/* Adds an error record not tied to an item; returns its message (borrowed like the record),
 * or a static description of code when out of memory. */
const char *rs__ps_add_error(rs_ps *ps, int code, const char *message);

/* ---- ps.c ----
 * The thread that runs an invocation: rs__ps_claim publishes that it executes on rs (false
 * when a stop came first: the caller then releases what it holds and calls
 * rs__ps_finish_unrun); rs__ps_run_claimed runs it; the caller releases the runspace and
 * calls rs__ps_publish, after which it must not touch ps. */
bool rs__ps_claim(rs_ps *ps, rs_runspace *rs);
int rs__ps_run_claimed(rs_ps *ps, rs_runspace *rs, struct rs__timer *timer);
void rs__ps_publish(rs_ps *ps, int code);
/* Ends an invocation that never ran (stopped while queued, pool closed, runspace could not
 * open) with code: every input item is reported. Publishes. */
void rs__ps_finish_unrun(rs_ps *ps, int code, const char *message);

/* Adds a stage that runs fn(call, userdata) as a native command that is in no ISS: how the
 * library's own layers run C code per item (the for-each's external commands). name (copied)
 * prefixes its errors ("name: message"); "" for none. */
int rs__ps_add_native(rs_ps *ps, const char *name, rs_command_fn fn, void *userdata);

/* ---- pool.c ---- */
/* Queues ps (phase QUEUED); RS_ECLOSED when the pool does not take work. Takes the pool
 * lock. */
int rs__pool_submit(rs_pool *pool, rs_ps *ps);
/* Removes ps from the queue if it is still there; true if it was. Takes the pool lock. */
bool rs__pool_dequeue(rs_pool *pool, rs_ps *ps);
/* Counts invocations bound to the pool (rs_pool_destroy refuses while any are). */
int rs__pool_bind(rs_pool *pool);
void rs__pool_unbind(rs_pool *pool);
/* The pool's timer, created on first use; NULL when it cannot be created. */
struct rs__timer *rs__pool_timer(rs_pool *pool);

#endif
