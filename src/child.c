/*
 * child.c -- a child process in a process group of its own (see child.h).
 *
 * DESIGN: the child is started with posix_spawn, which glibc implements with
 * clone(CLONE_VM | CLONE_VFORK): no page tables are copied, so a start costs the same in a
 * process of many threads and a large heap as in a small one. The wait is one ppoll over the
 * pipes and a pidfd of the child, with the interrupt signal blocked except inside ppoll, so a
 * stop or a timeout that arrives between the check and the wait still wakes it (ppoll
 * returns EINTR). When the wait ends early the whole group is killed, and the child is reaped
 * only once the group has let go of the outputs: until then its pid, and so the group's id,
 * cannot be reused by another process.
 */
#include "child.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

/* Longest wait, after the kill, for the group's processes to let go of the outputs. Only a
 * process that left the group or sleeps uninterruptibly can hold them past the kill. */
#define KILL_GRACE_NS 2000000000LL

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

void rs__child_init(rs__child *c)
{
    memset(c, 0, sizeof *c);
    c->pidfd = c->in = c->out = c->err = -1;
}

/* /dev/null, opened once for the process (O_CLOEXEC: only dup2 gives it to a child). */
static int devnull_fd = -1;
static pthread_once_t devnull_once = PTHREAD_ONCE_INIT;
static void open_devnull(void)
{
    devnull_fd = open("/dev/null", O_RDWR | O_CLOEXEC);
}

/* Reads and discards the outputs until every process holding them has exited (end of file on
 * both) or the grace period passes; closes them. */
static void await_outputs_closed(rs__child *c)
{
    int64_t deadline = rs__now_ns() + KILL_GRACE_NS;
    while (c->out >= 0 || c->err >= 0) {
        struct pollfd fds[2];
        int *which[2];
        nfds_t n = 0;
        if (c->out >= 0)
            which[n] = &c->out, fds[n++] = (struct pollfd){.fd = c->out, .events = POLLIN};
        if (c->err >= 0)
            which[n] = &c->err, fds[n++] = (struct pollfd){.fd = c->err, .events = POLLIN};
        int64_t left = deadline - rs__now_ns();
        if (left <= 0)
            break;
        int r = poll(fds, n, (int)(left / 1000000) + 1);
        if (r < 0 && errno != EINTR)
            break;
        for (nfds_t i = 0; r > 0 && i < n; i++) {
            if (!fds[i].revents)
                continue;
            char chunk[4096];
            ssize_t got;
            while ((got = read(*which[i], chunk, sizeof chunk)) > 0)
                continue;
            if (got == 0 || (errno != EAGAIN && errno != EINTR))
                close_fd(which[i]);
        }
    }
    close_fd(&c->out);
    close_fd(&c->err);
}

/* Kills the group, waits for it to let go of the outputs, reaps the child. */
static void kill_and_reap(rs__child *c)
{
    if (c->pid > 0) {
        kill(-c->pid, SIGKILL);
        close_fd(&c->in);
        await_outputs_closed(c);
        while (waitpid(c->pid, &c->status, 0) < 0 && errno == EINTR)
            continue;
        c->pid = 0;
    }
}

void rs__child_free(rs__child *c)
{
    kill_and_reap(c);
    close_fd(&c->pidfd);
    close_fd(&c->in);
    close_fd(&c->out);
    close_fd(&c->err);
    rs__buf_free(&c->obuf);
    rs__buf_free(&c->ebuf);
}

void rs__child_stderr_tail(const rs__child *c, const char **tail, size_t *len)
{
    const char *s = c->ebuf.data ? c->ebuf.data : "";
    size_t n = c->ebuf.len;
    while (n && (s[n - 1] == '\n' || s[n - 1] == '\r'))
        n--;
    size_t from = n > 512 ? n - 512 : 0;
    if (from) {
        const char *nl = memchr(s + from, '\n', n - from);
        if (nl && nl + 1 < s + n)
            from = (size_t)(nl + 1 - s);
    }
    *tail = s + from;
    *len = n - from;
}

/* Reads what a pipe has into b; closes it at end of file. keep > 0 keeps only about the last
 * keep bytes (*cut then says bytes were dropped). Returns 0 or an errno. */
static int drain(int *fd, rs__buf *b, size_t keep, bool *cut)
{
    char chunk[16384];
    for (;;) {
        ssize_t n = read(*fd, chunk, sizeof chunk);
        if (n > 0) {
            if (rs__buf_append(b, chunk, (size_t)n))
                return ENOMEM;
            if (keep && b->len > 2 * keep) {
                memmove(b->data, b->data + b->len - keep, keep);
                b->len = keep;
                b->data[keep] = '\0';
                *cut = true;
            }
            continue;
        }
        if (n == 0) {
            close_fd(fd);
            return 0;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN)
            return 0;
        int e = errno;
        close_fd(fd);
        return e;
    }
}

/* Spawn attributes of every child: a process group of its own (so that it can be killed
 * whole), default signal dispositions and an empty signal mask. */
static void own_group_attr(posix_spawnattr_t *attr)
{
    posix_spawnattr_init(attr);
    sigset_t none, all;
    sigemptyset(&none);
    sigfillset(&all);
    posix_spawnattr_setsigmask(attr, &none);
    posix_spawnattr_setsigdefault(attr, &all);
    posix_spawnattr_setpgroup(attr, 0);
    posix_spawnattr_setflags(attr, POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF |
                                       POSIX_SPAWN_SETPGROUP);
}

int rs__child_start(rs__child *c, const rs__child_spec *spec)
{
    int pin[2] = {-1, -1}, pout[2] = {-1, -1}, perr[2] = {-1, -1};
    int e = 0;
    if (spec->stdin_pipe && pipe2(pin, O_CLOEXEC))
        return errno;
    if (!spec->no_capture && (pipe2(pout, O_CLOEXEC) || pipe2(perr, O_CLOEXEC))) {
        e = errno;
        close_fd(&pin[0]), close_fd(&pin[1]), close_fd(&pout[0]), close_fd(&pout[1]);
        return e;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    own_group_attr(&attr);
    if (spec->stdin_pipe) {
        posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    } else if (!spec->no_capture) {
        pthread_once(&devnull_once, open_devnull);
        if (devnull_fd >= 0)
            posix_spawn_file_actions_adddup2(&fa, devnull_fd, 0);
        else
            posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    }
    if (!spec->no_capture) {
        posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
        posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
    }
    if (spec->cwd)
        posix_spawn_file_actions_addchdir_np(&fa, spec->cwd);
    pid_t pid;
    char *const *argv = (char *const *)spec->argv;
    int rc = spec->path ? posix_spawn(&pid, spec->path, &fa, &attr, argv, environ)
                        : posix_spawnp(&pid, spec->argv[0], &fa, &attr, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close_fd(&pin[0]);
    close_fd(&pout[1]);
    close_fd(&perr[1]);
    if (rc) {
        close_fd(&pin[1]), close_fd(&pout[0]), close_fd(&perr[0]);
        return rc;
    }
    c->pid = pid;
    c->in = pin[1];
    c->out = pout[0];
    c->err = perr[0];
    if (c->in >= 0)
        fcntl(c->in, F_SETFL, O_NONBLOCK);
    if (c->out >= 0)
        fcntl(c->out, F_SETFL, O_NONBLOCK);
    if (c->err >= 0)
        fcntl(c->err, F_SETFL, O_NONBLOCK);
    c->pidfd = pidfd_open(pid, 0);
    if (c->pidfd < 0) {
        e = errno;
        kill_and_reap(c);
        return e;
    }
    return 0;
}

int rs__child_wait(rs__child *c, rs__exec *ex, const char *input, size_t input_len,
                   int64_t deadline, size_t out_limit, int *why, bool *timed_out)
{
    sigset_t block, old;
    sigemptyset(&block);
    rs__interrupt_sigset(&block);
    pthread_sigmask(SIG_BLOCK, &block, &old);
    size_t written = 0;
    int failure = 0;
    while (c->pid > 0) {
        if (ex && ex->L && (*why = rs__exec_due(ex)))
            break;
        int64_t now = rs__now_ns();
        if (deadline && now >= deadline) {
            *timed_out = true;
            break;
        }
        struct pollfd fds[4];
        int n = 0, iin = -1, iout = -1, ierr = -1, ipid;
        if (c->in >= 0)
            fds[iin = n++] = (struct pollfd){.fd = c->in, .events = POLLOUT};
        if (c->out >= 0)
            fds[iout = n++] = (struct pollfd){.fd = c->out, .events = POLLIN};
        if (c->err >= 0)
            fds[ierr = n++] = (struct pollfd){.fd = c->err, .events = POLLIN};
        /* The process's exit matters only once its outputs are closed. */
        ipid = c->out < 0 && c->err < 0 ? n : -1;
        if (ipid >= 0)
            fds[n++] = (struct pollfd){.fd = c->pidfd, .events = POLLIN};
        int64_t left = deadline ? deadline - now : -1;
        struct timespec ts = {.tv_sec = left / 1000000000, .tv_nsec = left % 1000000000};
        int r = ppoll(fds, (nfds_t)n, deadline ? &ts : NULL, &old);
        if (r < 0) {
            if (errno == EINTR)
                continue;
            failure = errno;
            break;
        }
        if (iin >= 0 && fds[iin].revents) {
            ssize_t w = write(c->in, input + written, input_len - written);
            if (w > 0)
                written += (size_t)w;
            if ((w < 0 && errno != EAGAIN && errno != EINTR) || written == input_len)
                close_fd(&c->in); /* all given, or the command stopped reading */
        }
        if (iout >= 0 && fds[iout].revents && (failure = drain(&c->out, &c->obuf, 0, NULL)))
            break;
        if (ierr >= 0 && fds[ierr].revents &&
            (failure = drain(&c->err, &c->ebuf, c->err_keep, &c->err_cut)))
            break;
        if (out_limit && c->obuf.len + c->ebuf.len > out_limit) {
            failure = EFBIG;
            break;
        }
        if (ipid >= 0 && fds[ipid].revents && waitpid(c->pid, &c->status, WNOHANG) == c->pid)
            c->pid = 0;
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (c->pid > 0)
        kill_and_reap(c);
    return failure;
}
