/*
 * watchdog.c -- one thread for the whole process that keeps interruptions going where one
 * signal is not enough.
 *
 * DESIGN
 * An interrupt (interrupt.c) is one signal to the executing thread. Code Lua runs with hooks
 * off can miss it, and Lua turns hooks off again for each finalizer it starts, so while an
 * interruption stays due the signal must come again. The watchdog keeps a list of executions
 * that need attention (rs__exec.wd_node, under its lock): one with a due interruption (a stop,
 * a passed deadline) it signals every RESIGNAL_NS until its run ends; one closing its state
 * (rs__exec_enter_close) it waits for, then signals once its grace has passed; one with an
 * instruction budget whose budget hook has not ticked for two periods, and that is not asleep
 * in sleep(), it pokes with the poke signal, so that the budget counts code run with hooks off.
 *
 * Who wakes whom: rs__watchdog_watch links an execution and signals the thread's condition
 * variable; the thread sleeps until the earliest time something on its list needs it, or
 * without a timeout when nothing does. rs__watchdog_unwatch unlinks under the lock, so that
 * after it returns the thread signals that execution no more. An execution found not running
 * (its run ended without unwatching, which only a stale link can be) is dropped. The thread
 * starts on first use and runs until the process ends.
 */
#include "runspace_int.h"

#include "queue.h"
#include "thread.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>

/* How often the watchdog signals an execution whose interruption stays due. */
#define RESIGNAL_NS 5000000

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    rs__qnode list; /* rs__exec.wd_node */
    bool started;
} wd = {.mu = PTHREAD_MUTEX_INITIALIZER, .list = {&wd.list, &wd.list}};

static pthread_once_t wd_once = PTHREAD_ONCE_INIT;

static void wd_init(void)
{
    pthread_condattr_t attr;
    pthread_condattr_init(&attr);
    pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (pthread_cond_init(&wd.cv, &attr) != 0)
        abort();
    pthread_condattr_destroy(&attr);
}

/* What the watchdog does for one execution (under wd.mu). Returns false when it no longer
 * needs watching; *next is lowered to the time it wants to look again. The thread is read
 * only while the run it belongs to is published (`running`, stored after it). */
static bool wd_visit(rs__exec *ex, int64_t now, int64_t *next)
{
    if (!atomic_load(&ex->running))
        return false;
    int64_t d = atomic_load(&ex->deadline);
    int64_t again = now + RESIGNAL_NS;
    if (atomic_load(&ex->stop) || (d && d <= now)) {
        if (ex->wd_signalled)
            ex->wd_signalled = false; /* the interrupter signalled just now: one period first */
        else
            pthread_kill(ex->thread, rs__interrupt_signal());
        *next = again < *next ? again : *next;
        return true;
    }
    if (ex->wd_what & RS__WD_BUDGET) {
        uint64_t beat = atomic_load_explicit(&ex->beat, memory_order_relaxed);
        if (beat != ex->wd_beat || atomic_load_explicit(&ex->blocked, memory_order_relaxed)) {
            ex->wd_beat = beat;
            ex->wd_stalls = 0;
        } else if (++ex->wd_stalls >= 2) {
            pthread_kill(ex->thread, rs__poke_signal());
        }
        *next = again < *next ? again : *next;
        return true;
    }
    if ((ex->wd_what & RS__WD_CLOSE) && d) {
        *next = d < *next ? d : *next;
        return true;
    }
    return false;
}

static void *wd_main(void *arg)
{
    RS__UNUSED(arg);
    pthread_mutex_lock(&wd.mu);
    for (;;) {
        int64_t now = rs__now_ns();
        int64_t next = INT64_MAX;
        rs__qnode *n = rs__queue_head(&wd.list);
        while (n != &wd.list) {
            rs__qnode *following = n->next;
            rs__exec *ex = RS__QUEUE_DATA(n, rs__exec, wd_node);
            if (!wd_visit(ex, now, &next)) {
                rs__queue_remove(n);
                ex->wd_what = 0;
                atomic_store(&ex->watched, false);
            }
            n = following;
        }
        if (next == INT64_MAX) {
            pthread_cond_wait(&wd.cv, &wd.mu);
        } else {
            struct timespec ts = {.tv_sec = next / 1000000000, .tv_nsec = next % 1000000000};
            pthread_cond_timedwait(&wd.cv, &wd.mu, &ts);
        }
    }
    return NULL;
}

void rs__watchdog_watch(rs__exec *ex, int what)
{
    pthread_once(&wd_once, wd_init);
    pthread_mutex_lock(&wd.mu);
    if (!wd.started) {
        rs__thread t;
        if (rs__thread_create(&t, wd_main, NULL, NULL) == 0) {
            pthread_detach(t);
            wd.started = true;
        }
    }
    if (!rs__queue_linked(&ex->wd_node)) {
        ex->wd_beat = atomic_load_explicit(&ex->beat, memory_order_relaxed);
        ex->wd_stalls = 0;
        ex->wd_what = 0;
        rs__queue_insert_tail(&wd.list, &ex->wd_node);
        atomic_store(&ex->watched, true);
    }
    ex->wd_what |= what;
    ex->wd_signalled = what == RS__WD_DUE;
    pthread_cond_signal(&wd.cv);
    pthread_mutex_unlock(&wd.mu);
}

void rs__watchdog_unwatch(rs__exec *ex)
{
    if (!atomic_load(&ex->watched))
        return;
    pthread_mutex_lock(&wd.mu);
    if (rs__queue_linked(&ex->wd_node))
        rs__queue_remove(&ex->wd_node);
    ex->wd_what = 0;
    atomic_store(&ex->watched, false);
    pthread_mutex_unlock(&wd.mu);
}
