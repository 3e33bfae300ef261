/*
 * timer.c -- one thread that interrupts executions whose deadline has passed.
 *
 * DESIGN
 * Executions with a timeout register here (watch) for the length of their run and publish
 * their current deadline in an atomic. The thread sleeps on its condition variable until the
 * earliest published deadline (`wake_at`), or without a timeout when no deadline is pending.
 * When an execution moves its deadline (the next item starts), it calls rs__timer_moved, which
 * wakes the thread only if the new deadline is earlier than wake_at or the thread sleeps without
 * one (as it does after firing the last pending deadline). A stale earlier wake-up finds
 * nothing due and sleeps again. So the per-item cost is an atomic store and an atomic load;
 * the lock is taken only when the thread must re-plan.
 *
 * When a deadline passes the thread interrupts the execution (rs__exec_interrupt) once per
 * deadline value; the execution's own hook decides, from the clock, whether it is still due.
 * Lock order: timer->mu, then an execution's mu and then the watchdog's lock (both inside
 * rs__exec_interrupt, which also hands the execution to the watchdog to repeat the signal).
 */
#include "timer.h"

struct rs__timer {
    rs__mutex mu;
    rs__cond cv;
    rs__qnode watched;    /* rs__exec.timer_node */
    atomic_llong wake_at; /* deadline the thread sleeps towards; 0 = none (written under mu) */
    bool quit;
    rs__thread thread;
};

static void *timer_main(void *arg)
{
    rs__timer *t = arg;
    rs__mutex_lock(&t->mu);
    while (!t->quit) {
        /* Re-planning: an execution that moves its deadline from now on sees 0 and wakes us
         * (rs__timer_moved), or moved it before and our scan below sees it. */
        atomic_store(&t->wake_at, 0);
        int64_t now = rs__now_ns();
        int64_t next = 0;
        rs__qnode *n;
        RS__QUEUE_FOREACH (n, &t->watched) {
            rs__exec *ex = RS__QUEUE_DATA(n, rs__exec, timer_node);
            int64_t d = atomic_load(&ex->deadline);
            if (!d)
                continue;
            if (d <= now) {
                if (ex->fired_deadline != d) {
                    ex->fired_deadline = d;
                    rs__exec_interrupt(ex);
                }
                continue;
            }
            if (!next || d < next)
                next = d;
        }
        atomic_store(&t->wake_at, next);
        if (next)
            rs__cond_wait_until(&t->cv, &t->mu, next);
        else
            rs__cond_wait(&t->cv, &t->mu);
    }
    rs__mutex_unlock(&t->mu);
    return NULL;
}

int rs__timer_create(rs__timer **out)
{
    *out = NULL;
    rs__timer *t = rs__calloc(1, sizeof *t);
    if (!t)
        return RS_ENOMEM;
    rs__queue_init(&t->watched);
    atomic_init(&t->wake_at, 0);
    if (rs__mutex_init(&t->mu)) {
        rs__free(t);
        return RS_ESYSTEM;
    }
    if (rs__cond_init(&t->cv)) {
        rs__mutex_destroy(&t->mu);
        rs__free(t);
        return RS_ESYSTEM;
    }
    if (rs__thread_create(&t->thread, timer_main, t, 0)) {
        rs__cond_destroy(&t->cv);
        rs__mutex_destroy(&t->mu);
        rs__free(t);
        return RS_ESYSTEM;
    }
    *out = t;
    return 0;
}

void rs__timer_destroy(rs__timer *t)
{
    if (!t)
        return;
    rs__mutex_lock(&t->mu);
    t->quit = true;
    rs__cond_signal(&t->cv);
    rs__mutex_unlock(&t->mu);
    rs__thread_join(t->thread);
    rs__cond_destroy(&t->cv);
    rs__mutex_destroy(&t->mu);
    rs__free(t);
}

void rs__timer_watch(rs__timer *t, rs__exec *ex)
{
    rs__mutex_lock(&t->mu);
    if (!rs__queue_linked(&ex->timer_node))
        rs__queue_insert_tail(&t->watched, &ex->timer_node);
    ex->fired_deadline = 0;
    int64_t d = atomic_load_explicit(&ex->deadline, memory_order_acquire);
    int64_t w = atomic_load(&t->wake_at);
    if (d && (!w || d < w)) {
        atomic_store(&t->wake_at, d);
        rs__cond_signal(&t->cv);
    }
    rs__mutex_unlock(&t->mu);
}

void rs__timer_moved(rs__timer *t, rs__exec *ex)
{
    /* Sequentially consistent with the timer's store of 0 and its scan: one side always sees
     * the other (the deadline was published by rs__exec_set_deadlines before this load). */
    int64_t d = atomic_load(&ex->deadline);
    int64_t w = atomic_load(&t->wake_at);
    if (d && (!w || d < w))
        rs__timer_watch(t, ex);
}

void rs__timer_unwatch(rs__timer *t, rs__exec *ex)
{
    rs__mutex_lock(&t->mu);
    if (rs__queue_linked(&ex->timer_node))
        rs__queue_remove(&ex->timer_node);
    rs__mutex_unlock(&t->mu);
}
