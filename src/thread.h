/*
 * thread.h -- the one wrapper around pthreads.
 *
 * Lock, unlock, wait and signal return void and abort on failure: they fail only on
 * programming errors (a destroyed or foreign mutex), and carrying such errors up every call
 * path would hide them. Condition variables use CLOCK_MONOTONIC, so wall-clock jumps never
 * shorten or stretch a timed wait. A timed wait returns RS_ETIMEDOUT.
 */
#ifndef RS_THREAD_H
#define RS_THREAD_H

#include "common.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct rs__mutex {
    pthread_mutex_t m;
} rs__mutex;

typedef struct rs__cond {
    pthread_cond_t c;
} rs__cond;

typedef pthread_t rs__thread;

int rs__mutex_init(rs__mutex *mu); /* 0 or RS_ESYSTEM */
void rs__mutex_destroy(rs__mutex *mu);
void rs__mutex_lock(rs__mutex *mu);
void rs__mutex_unlock(rs__mutex *mu);

int rs__cond_init(rs__cond *cv); /* 0 or RS_ESYSTEM */
void rs__cond_destroy(rs__cond *cv);
void rs__cond_signal(rs__cond *cv);
void rs__cond_broadcast(rs__cond *cv);
void rs__cond_wait(rs__cond *cv, rs__mutex *mu);
/* Waits until the absolute monotonic deadline (nanoseconds, rs__now_ns); 0 when woken
 * (possibly spuriously), RS_ETIMEDOUT once the deadline has passed. */
int rs__cond_wait_until(rs__cond *cv, rs__mutex *mu, int64_t deadline_ns);

/* Starts a thread running fn(arg) with every asynchronous signal blocked but those in
 * `unblock` (NULL for none), so that process signals such as SIGINT go to the application's
 * threads. 0 or RS_ESYSTEM (with errno's reason in the message of the caller's choosing). */
int rs__thread_create(rs__thread *t, void *(*fn)(void *), void *arg, const sigset_t *unblock);
void rs__thread_join(rs__thread t);

/* Spin-then-park. Waking a thread that sleeps on a condition variable costs about 20 us on
 * an idle virtual machine, as much as a whole invocation, and a round trip (begin, then wait)
 * pays it twice. A thread that expects news soon first watches *flag (true: news) for up to
 * spin_ns, and sleeps only if nothing came. Returns whether *flag became nonzero. On one
 * CPU it does not spin: the thread it waits for cannot run meanwhile. */
bool rs__spin_until(const atomic_bool *flag, int64_t spin_ns);

/* Monotonic time in nanoseconds, and wall-clock seconds since the epoch. */
int64_t rs__now_ns(void);
double rs__wall_time(void);
/* seconds as nanoseconds, rounded and saturating at INT64_MAX / 2; a positive duration is at
 * least 1 ns, so that it never reads as 0 ("none"). 0, negative and NaN give 0. */
int64_t rs__seconds_to_ns(double seconds);

#endif
