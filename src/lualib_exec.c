/*
 * lualib_exec.c -- `exec`, running a native command from a script (default profile):
 *
 *   exec{"cmd", "arg", ..., timeout = seconds, input = "text", cwd = "dir"}
 *   exec("cmd", "arg", ...)
 *     -> {code = exit status (128 + signal when killed), signal = n or nil,
 *         stdout = "...", stderr = "..."}
 *
 * The command is found on PATH and runs in a process group of its own, with default signal
 * dispositions and an empty signal mask. Its standard input gets `input` (or is closed at
 * once), its outputs are captured. When the invocation is stopped or times out, or the
 * command passes its own timeout, the whole group is killed and reaped, so nothing is left
 * running; the first two raise the interruption, the last an error naming the timeout. A
 * command that cannot start (not found, not executable) is a Lua error with the OS reason.
 *
 * os.execute is replaced too (default profile), with Lua's results: its shell runs in a
 * process group of its own and waits the same interruptible way, where system() would wait
 * out a stop.
 *
 * DESIGN: the wait is one ppoll over the pipes and a pidfd of the child, with the interrupt
 * signal blocked except inside ppoll, so a stop that arrives between the check and the wait
 * still wakes it (ppoll returns EINTR). All C state lives in a userdata whose __gc kills and
 * reaps a child still running, so a Lua error cannot leave one behind.
 */
#include "syslib.h"

#include "exec.h"

#include <lauxlib.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <spawn.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_MT "runspace.exec.child"

extern char **environ;

typedef struct child {
    pid_t pid; /* > 0 until reaped */
    int pidfd;
    int in, out, err; /* our ends of the pipes, -1 once closed */
    rs__buf obuf, ebuf;
    int status;
} child;

static void close_fd(int *fd)
{
    if (*fd >= 0)
        close(*fd);
    *fd = -1;
}

/* Longest wait, after the kill, for the group's processes to let go of the outputs. Only a
 * process that left the group or sleeps uninterruptibly can hold them past the kill. */
#define KILL_GRACE_NS 2000000000LL

/* Reads and discards the outputs until every process holding them has exited (end of file on
 * both) or the grace period passes; closes them. */
static void await_outputs_closed(child *c)
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

/* Kills the child's process group, waits for the group to let go of the outputs, so that no
 * process of it is still running when this returns, and reaps the child. The child is reaped
 * last: until then its pid, and so the group's id, cannot be reused. */
static void kill_and_reap(child *c)
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

static int child_gc(lua_State *L)
{
    child *c = luaL_checkudata(L, 1, CHILD_MT);
    kill_and_reap(c);
    close_fd(&c->pidfd);
    close_fd(&c->in);
    close_fd(&c->out);
    close_fd(&c->err);
    rs__buf_free(&c->obuf);
    rs__buf_free(&c->ebuf);
    return 0;
}

/* Reads what a pipe has; closes it at end of file. Returns 0 or an errno. */
static int drain(int *fd, rs__buf *b)
{
    char chunk[16384];
    for (;;) {
        ssize_t n = read(*fd, chunk, sizeof chunk);
        if (n > 0) {
            if (rs__buf_append(b, chunk, (size_t)n))
                return ENOMEM;
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

/* Collects the command line: from the table at index 1, or from the string arguments. The
 * strings stay on the Lua stack, referenced by the table or the arguments. */
static const char **command_line(lua_State *L, bool table, int *argc)
{
    int n = table ? (int)lua_rawlen(L, 1) : lua_gettop(L);
    if (n < 1)
        luaL_error(L, "exec: no command given");
    const char **argv = lua_newuserdatauv(L, ((size_t)n + 1) * sizeof *argv, 0);
    for (int i = 1; i <= n; i++) {
        if (table) {
            lua_rawgeti(L, 1, i);
            if (!lua_isstring(L, -1))
                luaL_error(L, "exec: element %d of the command is a %s, not a string", i,
                           luaL_typename(L, -1));
            lua_pop(L, 1);
            lua_rawgeti(L, 1, i);
            argv[i - 1] = lua_tostring(L, -1);
            lua_pop(L, 1); /* still referenced by the table */
        } else {
            argv[i - 1] = luaL_checkstring(L, i);
        }
    }
    argv[n] = NULL;
    *argc = n;
    return argv;
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

/* Starts the command; fills c or returns an errno. */
static int start(child *c, const char *const *argv, const char *cwd)
{
    int pin[2], pout[2], perr[2];
    if (pipe2(pin, O_CLOEXEC))
        return errno;
    if (pipe2(pout, O_CLOEXEC)) {
        int e = errno;
        close(pin[0]), close(pin[1]);
        return e;
    }
    if (pipe2(perr, O_CLOEXEC)) {
        int e = errno;
        close(pin[0]), close(pin[1]), close(pout[0]), close(pout[1]);
        return e;
    }
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t attr;
    posix_spawn_file_actions_init(&fa);
    own_group_attr(&attr);
    posix_spawn_file_actions_adddup2(&fa, pin[0], 0);
    posix_spawn_file_actions_adddup2(&fa, pout[1], 1);
    posix_spawn_file_actions_adddup2(&fa, perr[1], 2);
    if (cwd)
        posix_spawn_file_actions_addchdir_np(&fa, cwd);
    pid_t pid;
    int rc = posix_spawnp(&pid, argv[0], &fa, &attr, (char *const *)argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&attr);
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    if (rc) {
        close(pin[1]), close(pout[0]), close(perr[0]);
        return rc;
    }
    c->pid = pid;
    c->in = pin[1];
    c->out = pout[0];
    c->err = perr[0];
    fcntl(c->in, F_SETFL, O_NONBLOCK);
    fcntl(c->out, F_SETFL, O_NONBLOCK);
    fcntl(c->err, F_SETFL, O_NONBLOCK);
    c->pidfd = pidfd_open(pid, 0);
    return c->pidfd < 0 ? errno : 0;
}

/* Waits for the child, interruptibly: feeds it input, collects its outputs, until it has
 * exited with its outputs closed, the deadline passes (0 = none; *timed_out), the invocation
 * ex (or NULL) is due to end (*why), or a failure: an errno, EFBIG when the outputs exceed
 * mem_limit (0 = none). A child still running then is killed with its group and reaped. */
static int wait_child(child *c, rs__exec *ex, const char *input, size_t input_len, int64_t deadline,
                      size_t mem_limit, int *why, bool *timed_out)
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
        if (iout >= 0 && fds[iout].revents && (failure = drain(&c->out, &c->obuf)))
            break;
        if (ierr >= 0 && fds[ierr].revents && (failure = drain(&c->err, &c->ebuf)))
            break;
        if (mem_limit && c->obuf.len + c->ebuf.len > mem_limit) {
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

static int l_exec(lua_State *L)
{
    rs_runspace *rs = rs__lua_runspace(L);
    bool table = lua_istable(L, 1);
    double timeout = 0;
    size_t input_len = 0;
    const char *input = NULL, *cwd = NULL;
    if (table) {
        lua_getfield(L, 1, "timeout");
        lua_getfield(L, 1, "input");
        lua_getfield(L, 1, "cwd");
        timeout = luaL_optnumber(L, -3, 0);
        input = luaL_optlstring(L, -2, NULL, &input_len);
        cwd = luaL_optstring(L, -1, NULL);
        if (!(timeout >= 0))
            return luaL_error(L, "exec: timeout must be a non-negative number of seconds");
    }
    int argc;
    const char **argv = command_line(L, table, &argc);

    child *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    c->pidfd = c->in = c->out = c->err = -1;
    rs__gc_metatable(L, CHILD_MT, child_gc);
    int err = start(c, argv, cwd);
    if (err)
        return luaL_error(L, "exec: %s: %s", argv[0], strerror(err));
    if (!input)
        close_fd(&c->in);

    rs__exec *ex = rs__exec_current();
    int64_t deadline = timeout > 0 ? rs__now_ns() + rs__seconds_to_ns(timeout) : 0;
    int why = 0;
    bool timed_out = false;
    /* The outputs may take what the memory limit leaves (0: no limit). */
    size_t room = 0;
    if (rs->mem_limit) {
        size_t used = rs_runspace_memory(rs) + rs->c_held;
        room = used < rs->mem_limit ? rs->mem_limit - used : 1;
    }
    int failure = wait_child(c, ex, input, input_len, deadline, room, &why, &timed_out);
    if (why)
        return rs__exec_raise(L, ex, why);
    if (timed_out) {
        char secs[32];
        snprintf(secs, sizeof secs, "%g", timeout);
        return luaL_error(L, "exec: %s: timed out after %s s", argv[0], secs);
    }
    if (failure == EFBIG)
        return luaL_error(L, "exec: %s: output exceeds the runspace memory limit", argv[0]);
    if (failure)
        return luaL_error(L, "exec: %s: %s", argv[0], strerror(failure));

    lua_createtable(L, 0, 4);
    if (WIFSIGNALED(c->status)) {
        lua_pushinteger(L, 128 + WTERMSIG(c->status));
        lua_setfield(L, -2, "code");
        lua_pushinteger(L, WTERMSIG(c->status));
        lua_setfield(L, -2, "signal");
    } else {
        lua_pushinteger(L, WEXITSTATUS(c->status));
        lua_setfield(L, -2, "code");
    }
    lua_pushlstring(L, c->obuf.data ? c->obuf.data : "", c->obuf.len);
    lua_setfield(L, -2, "stdout");
    lua_pushlstring(L, c->ebuf.data ? c->ebuf.data : "", c->ebuf.len);
    lua_setfield(L, -2, "stderr");
    return 1;
}

/* os.execute([command]): Lua's results, but the shell runs in a process group of its own and
 * the wait is one a stop or timeout ends, killing the group (system() would wait it out). */
static int l_os_execute(lua_State *L)
{
    const char *cmd = luaL_optstring(L, 1, NULL);
    if (!cmd) {
        lua_pushboolean(L, access("/bin/sh", X_OK) == 0);
        return 1;
    }
    child *c = lua_newuserdatauv(L, sizeof *c, 0);
    memset(c, 0, sizeof *c);
    c->pidfd = c->in = c->out = c->err = -1;
    rs__gc_metatable(L, CHILD_MT, child_gc);
    posix_spawnattr_t attr;
    own_group_attr(&attr);
    const char *argv[] = {"sh", "-c", cmd, NULL};
    pid_t pid;
    int rc = posix_spawn(&pid, "/bin/sh", NULL, &attr, (char *const *)argv, environ);
    posix_spawnattr_destroy(&attr);
    if (rc) {
        errno = rc;
        return luaL_fileresult(L, 0, NULL);
    }
    c->pid = pid;
    c->pidfd = pidfd_open(pid, 0);
    if (c->pidfd < 0) {
        int e = errno;
        kill_and_reap(c);
        errno = e;
        return luaL_fileresult(L, 0, NULL);
    }
    rs__exec *ex = rs__exec_current();
    int why = 0;
    bool timed_out = false; /* no deadline of its own: stays false */
    int failure = wait_child(c, ex, NULL, 0, 0, 0, &why, &timed_out);
    if (why)
        return rs__exec_raise(L, ex, why);
    if (failure) {
        errno = failure;
        return luaL_fileresult(L, 0, NULL);
    }
    errno = 0; /* luaL_execresult reads a nonzero errno as a failure to run */
    return luaL_execresult(L, c->status);
}

void rs__open_exec(lua_State *L)
{
    lua_pushcfunction(L, l_exec);
    lua_setglobal(L, "exec");
    lua_getglobal(L, "os");
    lua_pushcfunction(L, l_os_execute);
    lua_setfield(L, -2, "execute");
    lua_pop(L, 1);
}
