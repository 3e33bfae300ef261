/*
 * pool.c -- the runspace pool: a concurrency limiter of min..max runspaces, each on a worker
 * thread of its own.
 *
 * DESIGN
 * Queues: `pending` holds submitted invocations in order; `idle` holds the workers waiting
 * for work, most recently idle first (its runspace is the warmest). Everything is under
 * pool->mu.
 *
 * Who wakes whom: a submit appends to `pending` and signals one idle worker's own condition
 * variable; with no idle worker and fewer than max workers it starts a new one (which opens
 * its runspace on its own thread, then takes work). A worker loops as libuv's threadpool
 * does: lock, wait while there is nothing to do, take the head of `pending`, unlock, run it.
 * It releases its runspace (busy count, availability) before it publishes the invocation's
 * end, so a caller that sees completion also sees the pool's slot free.
 *
 * Trimming: a worker above min waits with a timeout of idle_timeout; when it expires and the
 * worker is still idle and still above min, it closes its runspace and exits. At or below min
 * a worker waits without a timeout, so an idle pool uses no CPU.
 *
 * Shutdown: close marks the pool closing, takes every queued invocation out (they end
 * cancelled), wakes idle workers, and waits on `changed` until every worker has exited; exited
 * workers sit in `zombies` until joined. Lowering max retires idle workers at once and busy ones
 * when they finish.
 *
 * Lock order: pool->mu, then ps->mu, then an execution context's mu.
 */
#include "ps_int.h"

#include "shared.h"
#include "timer.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

typedef struct rs__worker {
    rs_pool *pool;
    rs__thread thread;
    rs_runspace *rs;
    rs__cond cv;         /* signalled when it has something to look at */
    rs__qnode node;      /* pool->workers, then pool->zombies */
    rs__qnode idle_node; /* pool->idle while idle */
    atomic_bool kicked;  /* taken off pool->idle by a submit: work is there */
} rs__worker;

struct rs_pool {
    rs__mutex mu;
    rs__cond changed;  /* a worker opened, failed, exited, or went idle after work */
    rs_iss *iss;       /* reference */
    rs_shared *shared; /* reference */
    unsigned min;
    unsigned max;
    double idle_timeout; /* seconds; < 0: never trim */
    rs_pool_state state;
    rs__qnode pending; /* rs_ps.qnode */
    size_t npending;
    rs__qnode workers;
    rs__qnode idle;
    rs__qnode zombies;
    unsigned nworkers;  /* live workers, starting ones included, retiring ones not */
    unsigned nretiring; /* decided to exit, not yet in zombies */
    unsigned nstarting; /* not yet done opening their runspace */
    unsigned nbusy;
    int open_error;   /* first failure to open a runspace */
    rs__msg open_msg; /* its message (written by workers under mu; msg is for callers) */
    int nbound;       /* invocations bound to the pool */
    rs__timer *timer;
    rs__msg msg;
};

static void *worker_main(void *arg);

/* Starts a worker; pool->mu held. */
static int spawn(rs_pool *pool)
{
    rs__worker *w = rs__calloc(1, sizeof *w);
    if (!w)
        return RS_ENOMEM;
    int rc = rs__runspace_new(pool->iss, NULL, pool->shared, pool, &w->rs);
    if (rc) {
        rs__free(w);
        return rc;
    }
    if (rs__cond_init(&w->cv)) {
        rs__runspace_free(w->rs);
        rs__free(w);
        return RS_ESYSTEM;
    }
    w->pool = pool;
    rs__queue_init(&w->idle_node);
    rs__queue_insert_tail(&pool->workers, &w->node);
    pool->nworkers++;
    pool->nstarting++;
    sigset_t sigs;
    sigemptyset(&sigs);
    rs__interrupt_sigset(&sigs);
    rc = rs__thread_create(&w->thread, worker_main, w, &sigs);
    if (rc) {
        rs__queue_remove(&w->node);
        pool->nworkers--;
        pool->nstarting--;
        rs__cond_destroy(&w->cv);
        rs__runspace_free(w->rs);
        rs__free(w);
        return rc;
    }
    return 0;
}

/* Takes the list of exited workers (pool->mu held) for reap(). */
static void take_zombies(rs_pool *pool, rs__qnode *out)
{
    rs__queue_init(out);
    while (!rs__queue_empty(&pool->zombies)) {
        rs__qnode *n = rs__queue_head(&pool->zombies);
        rs__queue_remove(n);
        rs__queue_insert_tail(out, n);
    }
}

/* Joins and frees exited workers; without the pool's lock. */
static void reap(rs__qnode *zombies)
{
    while (!rs__queue_empty(zombies)) {
        rs__worker *w = RS__QUEUE_DATA(rs__queue_head(zombies), rs__worker, node);
        rs__queue_remove(&w->node);
        rs__thread_join(w->thread);
        rs__runspace_free(w->rs);
        rs__cond_destroy(&w->cv);
        rs__free(w);
    }
}

/* Wakes every idle worker so it looks at the pool again; pool->mu held. */
static void wake_idle(rs_pool *pool)
{
    rs__qnode *n;
    RS__QUEUE_FOREACH (n, &pool->idle) {
        rs__cond_signal(&RS__QUEUE_DATA(n, rs__worker, idle_node)->cv);
    }
}

static bool shutting_down(const rs_pool *pool)
{
    return pool->state == RS_POOL_CLOSING || pool->state == RS_POOL_CLOSED ||
           pool->state == RS_POOL_BROKEN;
}

/* Takes a worker out of the counts the moment it decides to exit (pool->mu held), so that
 * the others decide on the new count. */
static void retire_locked(rs_pool *pool, rs__worker *w)
{
    if (rs__queue_linked(&w->idle_node))
        rs__queue_remove(&w->idle_node);
    rs__queue_remove(&w->node);
    pool->nworkers--;
    pool->nretiring++;
}

/* Waits until there is work (returns the invocation) or the worker must exit (NULL);
 * pool->mu held. */
/* How long an idle worker watches for new work before it sleeps: long enough for a caller
 * that waited for its invocation to begin the next one, short enough not to take much CPU
 * from the threads that submit and collect. */
#define WORKER_SPIN_NS 15000

static rs_ps *next_work(rs_pool *pool, rs__worker *w)
{
    bool spun = false;
    for (;;) {
        if (shutting_down(pool) || pool->nworkers > pool->max)
            return NULL;
        if (!rs__queue_empty(&pool->pending))
            break;
        rs__queue_insert_head(&pool->idle, &w->idle_node);
        rs__cond_broadcast(&pool->changed);
        if (!spun) {
            /* Spin a moment before sleeping: the next invocation often comes at once (a
             * caller that waited for one begins the next), and a sleeping thread is slow to
             * wake. What was signalled meanwhile is seen by looking again, under the lock,
             * before any sleep: the worker leaves the idle list and comes back to the top. */
            spun = true;
            atomic_store_explicit(&w->kicked, false, memory_order_relaxed);
            rs__mutex_unlock(&pool->mu);
            rs__spin_until(&w->kicked, WORKER_SPIN_NS);
            rs__mutex_lock(&pool->mu);
            if (rs__queue_linked(&w->idle_node))
                rs__queue_remove(&w->idle_node);
            continue;
        }
        bool trim = pool->idle_timeout >= 0 && pool->nworkers > pool->min;
        int rc = 0;
        if (trim)
            rc = rs__cond_wait_until(&w->cv, &pool->mu,
                                     rs__now_ns() + rs__seconds_to_ns(pool->idle_timeout));
        else
            rs__cond_wait(&w->cv, &pool->mu);
        bool still_idle = rs__queue_linked(&w->idle_node);
        if (still_idle)
            rs__queue_remove(&w->idle_node);
        if (rc == RS_ETIMEDOUT && still_idle && pool->nworkers > pool->min &&
            rs__queue_empty(&pool->pending))
            return NULL;
    }
    rs_ps *ps = RS__QUEUE_DATA(rs__queue_head(&pool->pending), rs_ps, qnode);
    rs__queue_remove(&ps->qnode);
    pool->npending--;
    return ps;
}

static void *worker_main(void *arg)
{
    rs__worker *w = arg;
    rs_pool *pool = w->pool;
    rs_runspace *rs = w->rs;
    int rc = rs__runspace_open_state(rs);

    rs__mutex_lock(&pool->mu);
    pool->nstarting--;
    rs__cond_broadcast(&pool->changed); /* rs_pool_open waits for it, even if work is queued */
    if (rc) {
        /* The runspace cannot open: say why, and fail one queued invocation rather than leave
         * it waiting for a runspace that will never come. */
        if (!pool->open_error) {
            pool->open_error = rc;
            rs__msg_set(&pool->open_msg, rc, "%s", rs__msg_get(&rs->msg));
        }
        rs_ps *ps = NULL;
        if (pool->state == RS_POOL_OPENED && !rs__queue_empty(&pool->pending)) {
            ps = RS__QUEUE_DATA(rs__queue_head(&pool->pending), rs_ps, qnode);
            rs__queue_remove(&ps->qnode);
            pool->npending--;
        }
        rs__mutex_unlock(&pool->mu);
        if (ps)
            rs__ps_finish_unrun(ps, rc, rs__msg_get(&rs->msg));
        rs__mutex_lock(&pool->mu);
    } else {
        rs_ps *ps;
        while ((ps = next_work(pool, w)) != NULL) {
            pool->nbusy++;
            atomic_store(&rs->busy, 1);
            rs__mutex_unlock(&pool->mu);

            bool claimed = rs__ps_claim(ps, rs);
            int code = 0;
            if (claimed) {
                rs__timer *timer =
                    ps->opts.timeout > 0 || ps->opts.item_timeout > 0 ? rs__pool_timer(pool) : NULL;
                code = rs__ps_run_claimed(ps, rs, timer);
            }
            atomic_store(&rs->busy, 0);
            rs__mutex_lock(&pool->mu);
            pool->nbusy--;
            rs__cond_broadcast(&pool->changed);
            rs__mutex_unlock(&pool->mu);
            if (claimed)
                rs__ps_publish(ps, code);
            else
                rs__ps_finish_unrun(ps, RS_ESTOPPED, "the invocation was stopped before it ran");
            rs__mutex_lock(&pool->mu);
            if (!rs->L)
                break; /* the interpreter could not be reopened: retire, a new one may open */
        }
    }
    /* Retire: close the interpreter on its own thread, then become a zombie to be joined. */
    retire_locked(pool, w);
    rs__mutex_unlock(&pool->mu);
    rs__runspace_close_state(rs);
    atomic_store(&rs->state, RS_RUNSPACE_CLOSED);
    rs__mutex_lock(&pool->mu);
    rs__queue_insert_tail(&pool->zombies, &w->node);
    pool->nretiring--;
    /* Work may be waiting with nobody left to start a worker for it. */
    /* Work may be waiting with nobody left to run it. After a failed open too: each new worker
     * that fails takes one queued invocation with it, so this ends. */
    if (pool->state == RS_POOL_OPENED && !rs__queue_empty(&pool->pending) &&
        pool->nworkers < pool->max && pool->npending > pool->nstarting)
        spawn(pool);
    rs__cond_broadcast(&pool->changed);
    rs__mutex_unlock(&pool->mu);
    return NULL;
}

/* ---- internal API for ps.c ---------------------------------------------------------------- */

int rs__pool_submit(rs_pool *pool, rs_ps *ps)
{
    rs__qnode zombies;
    rs__mutex_lock(&pool->mu);
    if (pool->state != RS_POOL_OPENED) {
        rs__mutex_unlock(&pool->mu);
        return RS_ECLOSED;
    }
    rs__queue_insert_tail(&pool->pending, &ps->qnode);
    pool->npending++;
    int rc = 0;
    if (!rs__queue_empty(&pool->idle)) {
        rs__worker *w = RS__QUEUE_DATA(rs__queue_head(&pool->idle), rs__worker, idle_node);
        rs__queue_remove(&w->idle_node);
        atomic_store_explicit(&w->kicked, true, memory_order_release);
        rs__cond_signal(&w->cv);
    } else if (pool->nworkers < pool->max && pool->npending > pool->nstarting) {
        rc = spawn(pool);
        if (rc && pool->nworkers > 0)
            rc = 0; /* the workers there are will get to it */
        if (rc) {
            rs__queue_remove(&ps->qnode);
            pool->npending--;
        }
    }
    take_zombies(pool, &zombies);
    rs__mutex_unlock(&pool->mu);
    reap(&zombies);
    return rc;
}

bool rs__pool_dequeue(rs_pool *pool, rs_ps *ps)
{
    rs__mutex_lock(&pool->mu);
    bool queued = rs__queue_linked(&ps->qnode);
    if (queued) {
        rs__queue_remove(&ps->qnode);
        pool->npending--;
    }
    rs__mutex_unlock(&pool->mu);
    return queued;
}

int rs__pool_bind(rs_pool *pool)
{
    rs__mutex_lock(&pool->mu);
    pool->nbound++;
    rs__mutex_unlock(&pool->mu);
    return 0;
}

void rs__pool_unbind(rs_pool *pool)
{
    rs__mutex_lock(&pool->mu);
    pool->nbound--;
    rs__mutex_unlock(&pool->mu);
}

rs__timer *rs__pool_timer(rs_pool *pool)
{
    rs__mutex_lock(&pool->mu);
    if (!pool->timer)
        rs__timer_create(&pool->timer);
    rs__timer *t = pool->timer;
    rs__mutex_unlock(&pool->mu);
    return t;
}

/* ---- public API --------------------------------------------------------------------------- */

int rs_pool_create(const rs_pool_opts *opts, rs_pool **out)
{
    if (!out)
        return RS_EMISUSE;
    *out = NULL;
    rs_pool_opts o = opts ? *opts : (rs_pool_opts){0};
    if (o.min_runspaces == 0)
        o.min_runspaces = 1;
    if (o.max_runspaces == 0) {
        long n = sysconf(_SC_NPROCESSORS_ONLN);
        o.max_runspaces = n > 0 ? (unsigned)n : 1;
        if (o.max_runspaces < o.min_runspaces)
            o.max_runspaces = o.min_runspaces;
    }
    if (o.min_runspaces > o.max_runspaces || o.idle_timeout != o.idle_timeout)
        return RS_EINVAL;
    rs_pool *pool = rs__calloc(1, sizeof *pool);
    if (!pool)
        return RS_ENOMEM;
    if (rs__mutex_init(&pool->mu)) {
        rs__free(pool);
        return RS_ESYSTEM;
    }
    if (rs__cond_init(&pool->changed)) {
        rs__mutex_destroy(&pool->mu);
        rs__free(pool);
        return RS_ESYSTEM;
    }
    rs__queue_init(&pool->pending);
    rs__queue_init(&pool->workers);
    rs__queue_init(&pool->idle);
    rs__queue_init(&pool->zombies);
    pool->min = o.min_runspaces;
    pool->max = o.max_runspaces;
    pool->idle_timeout = o.idle_timeout == 0 ? 60.0 : o.idle_timeout;
    pool->state = RS_POOL_BEFORE_OPEN;
    int rc = 0;
    if (o.iss) {
        pool->iss = rs__iss_retain(o.iss);
    } else {
        rs_iss *def = NULL;
        rc = rs_iss_create(RS_PROFILE_DEFAULT, &def);
        if (!rc) {
            pool->iss = rs__iss_retain(def);
            rs__iss_release(def);
        }
    }
    if (!rc) {
        if (o.shared)
            pool->shared = rs__shared_retain(o.shared);
        else
            rc = rs_shared_create(&pool->shared);
    }
    if (rc || rs__interrupt_setup()) {
        rs__iss_release(pool->iss);
        rs__shared_release(pool->shared);
        rs__cond_destroy(&pool->changed);
        rs__mutex_destroy(&pool->mu);
        rs__free(pool);
        return rc ? rc : RS_ESYSTEM;
    }
    *out = pool;
    return 0;
}

int rs_pool_open(rs_pool *pool)
{
    if (!pool)
        return RS_EMISUSE;
    rs__mutex_lock(&pool->mu);
    if (pool->state != RS_POOL_BEFORE_OPEN) {
        rs__mutex_unlock(&pool->mu);
        return rs__msg_set(&pool->msg, RS_EMISUSE, "the pool has already been opened");
    }
    pool->state = RS_POOL_OPENED;
    int rc = 0;
    for (unsigned i = 0; i < pool->min && !rc; i++)
        rc = spawn(pool);
    while (pool->nstarting > 0)
        rs__cond_wait(&pool->changed, &pool->mu);
    if (rc)
        rs__msg_set(&pool->msg, rc, "cannot start a worker thread: %s", strerror(errno));
    else if ((rc = pool->open_error))
        rs__msg_set(&pool->msg, rc, "%s", rs__msg_get(&pool->open_msg));
    rs__mutex_unlock(&pool->mu);
    if (rc) {
        rs_pool_close(pool);
        rs__mutex_lock(&pool->mu);
        pool->state = RS_POOL_BROKEN;
        rs__mutex_unlock(&pool->mu);
    }
    return rc;
}

int rs_pool_close(rs_pool *pool)
{
    if (!pool)
        return RS_EMISUSE;
    rs__mutex_lock(&pool->mu);
    if (pool->state == RS_POOL_CLOSING) {
        while (pool->state == RS_POOL_CLOSING)
            rs__cond_wait(&pool->changed, &pool->mu);
        rs__mutex_unlock(&pool->mu);
        return 0;
    }
    if (pool->state == RS_POOL_CLOSED || pool->state == RS_POOL_BROKEN ||
        pool->state == RS_POOL_BEFORE_OPEN) {
        if (pool->state == RS_POOL_BEFORE_OPEN)
            pool->state = RS_POOL_CLOSED;
        rs__mutex_unlock(&pool->mu);
        return 0;
    }
    pool->state = RS_POOL_CLOSING;
    wake_idle(pool);
    /* Cancel what is queued, one invocation at a time, each unlinked under the lock: a stop
     * racing with the close then finds it no longer queued and leaves it to us. */
    while (!rs__queue_empty(&pool->pending)) {
        rs_ps *ps = RS__QUEUE_DATA(rs__queue_head(&pool->pending), rs_ps, qnode);
        rs__queue_remove(&ps->qnode);
        pool->npending--;
        rs__mutex_unlock(&pool->mu);
        rs__ps_finish_unrun(ps, RS_ECANCELED, "cancelled: the pool was closed");
        rs__mutex_lock(&pool->mu);
    }
    rs__mutex_unlock(&pool->mu);

    rs__qnode zombies;
    rs__mutex_lock(&pool->mu);
    while (pool->nworkers > 0 || pool->nretiring > 0)
        rs__cond_wait(&pool->changed, &pool->mu);
    take_zombies(pool, &zombies);
    rs__mutex_unlock(&pool->mu);
    reap(&zombies);
    rs__timer *timer;
    rs__mutex_lock(&pool->mu);
    timer = pool->timer;
    pool->timer = NULL;
    pool->state = RS_POOL_CLOSED;
    rs__cond_broadcast(&pool->changed);
    rs__mutex_unlock(&pool->mu);
    rs__timer_destroy(timer);
    return 0;
}

int rs_pool_destroy(rs_pool *pool)
{
    if (!pool)
        return 0;
    rs__mutex_lock(&pool->mu);
    int bound = pool->nbound;
    rs__mutex_unlock(&pool->mu);
    if (bound)
        return rs__msg_set(&pool->msg, RS_EBUSY,
                           "%d invocation(s) are still bound to the pool; destroy them first",
                           bound);
    rs_pool_close(pool);
    rs__iss_release(pool->iss);
    rs__shared_release(pool->shared);
    rs__msg_free(&pool->msg);
    rs__msg_free(&pool->open_msg);
    rs__cond_destroy(&pool->changed);
    rs__mutex_destroy(&pool->mu);
    rs__free(pool);
    return 0;
}

int rs_pool_set_max(rs_pool *pool, unsigned max)
{
    if (!pool)
        return RS_EMISUSE;
    rs__mutex_lock(&pool->mu);
    int rc = 0;
    if (max == 0 || max < pool->min) {
        rc = rs__msg_set(&pool->msg, RS_EINVAL, "max (%u) must be at least min (%u) and 1", max,
                         pool->min);
    } else {
        pool->max = max;
        wake_idle(pool); /* extra idle workers retire */
        while (pool->state == RS_POOL_OPENED && pool->nworkers < pool->max &&
               pool->npending > pool->nstarting && spawn(pool) == 0)
            continue;
    }
    rs__mutex_unlock(&pool->mu);
    return rc;
}

int rs_pool_set_min(rs_pool *pool, unsigned min)
{
    if (!pool)
        return RS_EMISUSE;
    rs__mutex_lock(&pool->mu);
    int rc = 0;
    if (min == 0 || min > pool->max) {
        rc = rs__msg_set(&pool->msg, RS_EINVAL, "min (%u) must be between 1 and max (%u)", min,
                         pool->max);
    } else {
        pool->min = min;
        while (pool->state == RS_POOL_OPENED && pool->nworkers < pool->min && spawn(pool) == 0)
            continue;
        wake_idle(pool); /* they re-decide whether to wait with a trim timeout */
    }
    rs__mutex_unlock(&pool->mu);
    return rc;
}

unsigned rs_pool_get_max(rs_pool *pool)
{
    if (!pool)
        return 0;
    rs__mutex_lock(&pool->mu);
    unsigned v = pool->max;
    rs__mutex_unlock(&pool->mu);
    return v;
}

unsigned rs_pool_get_min(rs_pool *pool)
{
    if (!pool)
        return 0;
    rs__mutex_lock(&pool->mu);
    unsigned v = pool->min;
    rs__mutex_unlock(&pool->mu);
    return v;
}

unsigned rs_pool_available(rs_pool *pool)
{
    if (!pool)
        return 0;
    rs__mutex_lock(&pool->mu);
    unsigned v =
        pool->state == RS_POOL_OPENED && pool->max > pool->nbusy ? pool->max - pool->nbusy : 0;
    rs__mutex_unlock(&pool->mu);
    return v;
}

const rs_iss *rs__pool_iss(const rs_pool *pool)
{
    return pool->iss; /* set at create, unchanged until destroy */
}

rs_pool_state rs_pool_get_state(rs_pool *pool)
{
    if (!pool)
        return RS_POOL_CLOSED;
    rs__mutex_lock(&pool->mu);
    rs_pool_state s = pool->state;
    rs__mutex_unlock(&pool->mu);
    return s;
}

size_t rs_pool_runspaces(rs_pool *pool, rs_runspace_info *rows, size_t cap)
{
    if (!pool)
        return 0;
    size_t n = 0;
    rs__mutex_lock(&pool->mu);
    rs__qnode *q;
    RS__QUEUE_FOREACH (q, &pool->workers) {
        if (n < cap && rows)
            rs__runspace_info(RS__QUEUE_DATA(q, rs__worker, node)->rs, &rows[n]);
        n++;
    }
    rs__mutex_unlock(&pool->mu);
    return n;
}

rs_shared *rs_pool_shared(rs_pool *pool)
{
    return pool ? pool->shared : NULL;
}

const char *rs_pool_errmsg(const rs_pool *pool)
{
    return pool ? rs__msg_get(&pool->msg) : "";
}
