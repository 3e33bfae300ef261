/*
 * timer.h -- the deadline watcher behind per-item and per-invocation timeouts.
 */
#ifndef RS_TIMER_H
#define RS_TIMER_H

#include "runspace_int.h"

typedef struct rs__timer rs__timer;

/* Creates the watcher and its thread. 0, RS_ENOMEM or RS_ESYSTEM. */
int rs__timer_create(rs__timer **out);
/* Stops and joins the thread; nothing may be watched any more. NULL is a no-op. */
void rs__timer_destroy(rs__timer *t);
/* Starts watching ex's published deadline (ex->deadline) until rs__timer_unwatch.
 * Thread-safe. */
void rs__timer_watch(rs__timer *t, rs__exec *ex);
/* Tells the timer that ex's deadline changed; cheap unless the timer must re-plan. */
void rs__timer_moved(rs__timer *t, rs__exec *ex);
void rs__timer_unwatch(rs__timer *t, rs__exec *ex);

#endif
