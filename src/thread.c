/*
 * thread.c -- pthread wrappers: mutexes, monotonic condition variables, threads, clocks.
 */
#include "thread.h"

#include <errno.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* A failure here is a bug in the caller (or memory corruption); stop at once, loudly. */
static void die(const char *what, int err)
{
    fprintf(stderr, "librunspace: %s failed: %s\n", what, strerror(err));
    abort();
}

int rs__mutex_init(rs__mutex *mu)
{
    return pthread_mutex_init(&mu->m, NULL) ? RS_ESYSTEM : 0;
}

void rs__mutex_destroy(rs__mutex *mu)
{
    int err = pthread_mutex_destroy(&mu->m);
    if (err)
        die("pthread_mutex_destroy", err);
}

void rs__mutex_lock(rs__mutex *mu)
{
    int err = pthread_mutex_lock(&mu->m);
    if (err)
        die("pthread_mutex_lock", err);
}

void rs__mutex_unlock(rs__mutex *mu)
{
    int err = pthread_mutex_unlock(&mu->m);
    if (err)
        die("pthread_mutex_unlock", err);
}

int rs__cond_init(rs__cond *cv)
{
    pthread_condattr_t attr;
    if (pthread_condattr_init(&attr))
        return RS_ESYSTEM;
    int err = pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
    if (!err)
        err = pthread_cond_init(&cv->c, &attr);
    pthread_condattr_destroy(&attr);
    return err ? RS_ESYSTEM : 0;
}

void rs__cond_destroy(rs__cond *cv)
{
    int err = pthread_cond_destroy(&cv->c);
    if (err)
        die("pthread_cond_destroy", err);
}

void rs__cond_signal(rs__cond *cv)
{
    int err = pthread_cond_signal(&cv->c);
    if (err)
        die("pthread_cond_signal", err);
}

void rs__cond_broadcast(rs__cond *cv)
{
    int err = pthread_cond_broadcast(&cv->c);
    if (err)
        die("pthread_cond_broadcast", err);
}

void rs__cond_wait(rs__cond *cv, rs__mutex *mu)
{
    int err = pthread_cond_wait(&cv->c, &mu->m);
    if (err)
        die("pthread_cond_wait", err);
}

int rs__cond_wait_until(rs__cond *cv, rs__mutex *mu, int64_t deadline_ns)
{
    if (rs__now_ns() >= deadline_ns)
        return RS_ETIMEDOUT;
    struct timespec ts = {.tv_sec = deadline_ns / 1000000000, .tv_nsec = deadline_ns % 1000000000};
    int err = pthread_cond_timedwait(&cv->c, &mu->m, &ts);
    if (err == ETIMEDOUT)
        return RS_ETIMEDOUT;
    if (err)
        die("pthread_cond_timedwait", err);
    return 0;
}

int rs__thread_create(rs__thread *t, void *(*fn)(void *), void *arg, const sigset_t *unblock)
{
    /* The new thread inherits the creator's mask: block everything around the create so the
     * thread starts with all asynchronous signals blocked, then reopen `unblock` for it. */
    sigset_t all, old;
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    for (int sig = 1; unblock && sig < NSIG; sig++) {
        if (sigismember(unblock, sig) == 1)
            sigdelset(&all, sig);
    }
    pthread_sigmask(SIG_SETMASK, &all, &old);
    pthread_attr_t attr;
    int err = pthread_attr_init(&attr);
    if (!err) {
        /* Runspaces run Lua, which recurses in C for nested calls; 1 MiB is ample (the
         * default 8 MiB only costs address space, but many pools mean many threads). */
        pthread_attr_setstacksize(&attr, 1u << 20);
        err = pthread_create(t, &attr, fn, arg);
        pthread_attr_destroy(&attr);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (err) {
        errno = err;
        return RS_ESYSTEM;
    }
    return 0;
}

void rs__thread_join(rs__thread t)
{
    int err = pthread_join(t, NULL);
    if (err)
        die("pthread_join", err);
}

bool rs__spin_until(const atomic_bool *flag, int64_t spin_ns)
{
    static atomic_int cpus; /* 0: not asked yet */
    int n = atomic_load_explicit(&cpus, memory_order_relaxed);
    if (n == 0) {
        long c = sysconf(_SC_NPROCESSORS_ONLN);
        n = c > 1 ? (int)(c > 4096 ? 4096 : c) : 1;
        atomic_store_explicit(&cpus, n, memory_order_relaxed);
    }
    if (n < 2)
        return atomic_load_explicit(flag, memory_order_acquire);
    int64_t end = rs__now_ns() + spin_ns;
    for (;;) {
        for (int i = 0; i < 64; i++) {
            if (atomic_load_explicit(flag, memory_order_acquire))
                return true;
#if defined(__x86_64__) || defined(__i386__)
            __builtin_ia32_pause();
#endif
        }
        if (rs__now_ns() >= end)
            return atomic_load_explicit(flag, memory_order_acquire);
    }
}

int64_t rs__now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

double rs__wall_time(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int64_t rs__seconds_to_ns(double seconds)
{
    if (!(seconds > 0))
        return 0;
    if (seconds >= 9.2e9)
        return INT64_MAX / 2;
    /* 0 means "none" to every timeout, so a positive duration must stay positive: 1e-10 s
     * is 1 ns, not no timeout at all. */
    int64_t ns = (int64_t)llround(seconds * 1e9);
    return ns > 0 ? ns : 1;
}
