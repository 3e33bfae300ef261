/*
 * child.h -- a child process in a process group of its own, waited on in a way a stop or a
 * timeout of the running invocation ends, and killed with its whole group when it must not
 * outlive the wait. Used by `exec{}` and `os.execute` (lualib_exec.c) and by the for-each's
 * external commands (foreach_exec.c).
 */
#ifndef RS_CHILD_H
#define RS_CHILD_H

#include "runspace_int.h"

#include <sys/types.h>

typedef struct rs__child {
    pid_t pid; /* > 0 until reaped */
    int pidfd;
    int in, out, err; /* our ends of the pipes, -1 once closed (or never opened) */
    rs__buf obuf, ebuf;
    size_t err_keep; /* > 0: keep only about the last err_keep bytes of stderr */
    bool err_cut;    /* bytes of stderr were dropped to keep its tail */
    int status;      /* the wait status once reaped */
} rs__child;

/* How to start a child. */
typedef struct rs__child_spec {
    const char *const *argv; /* argv[0] is searched on PATH unless path is set */
    const char *path;        /* the program to run, or NULL */
    const char *cwd;         /* or NULL */
    bool stdin_pipe;         /* true: c->in is a pipe to its stdin; false: /dev/null */
    bool no_capture;         /* stdout and stderr are the caller's own (os.execute) */
} rs__child_spec;

/* Resets c to "no child" (every descriptor -1). */
void rs__child_init(rs__child *c);
/* Starts the child: its own process group, default signal dispositions, an empty signal
 * mask, descriptors other than 0-2 closed (they are all O_CLOEXEC in the library). Returns 0
 * or the errno of the failure (ENOENT for a program not found, EACCES, ...). */
int rs__child_start(rs__child *c, const rs__child_spec *spec);
/* Waits for the child: feeds it input, collects its outputs, until it has exited with its
 * outputs closed, the deadline passes (0 = none; *timed_out), the invocation ex (or NULL) is
 * due to end (*why), or a failure: an errno, or EFBIG when the kept outputs exceed out_limit
 * (0 = none). A child still running then is killed with its group and reaped. */
int rs__child_wait(rs__child *c, rs__exec *ex, const char *input, size_t input_len,
                   int64_t deadline, size_t out_limit, int *why, bool *timed_out);
/* The end of the child's stderr, for a failure's message: at most the last 512 bytes, from a
 * line's start when one begins there, without the final newlines (borrowed from c). */
void rs__child_stderr_tail(const rs__child *c, const char **tail, size_t *len);
/* Kills the child's process group and reaps it (no-op once reaped); closes every descriptor
 * and frees the buffers. */
void rs__child_free(rs__child *c);

#endif
