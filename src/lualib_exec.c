/*
 * lualib_exec.c -- `exec`, running a native command from a script (default profile):
 *
 *   exec{"cmd", "arg", ..., timeout = seconds, input = "text", cwd = "dir", check = bool}
 *   exec("cmd", "arg", ...)
 *     -> {code = exit status (128 + signal when killed), signal = n or nil,
 *         stdout = "...", stderr = "..."}
 *
 * The command is found on PATH and runs in a process group of its own, with default signal
 * dispositions and an empty signal mask (child.c). Its standard input gets `input` (or is
 * /dev/null), its outputs are captured. A non-zero exit status is data, not a failure: the
 * script reads `code`; with `check = true` a non-zero exit or a signal raises an error
 * instead ("exec: CMD: exit code N: <the end of its stderr>"). When the invocation is stopped
 * or times out, or the command passes its own timeout, the whole group is killed and reaped,
 * so nothing is left running; the first two raise the interruption, the last an error naming
 * the timeout. A command that cannot start (not found, not executable) is a Lua error with
 * the OS reason.
 *
 * os.execute is replaced too (default profile), with Lua's results: its shell runs in a
 * process group of its own and waits the same interruptible way, where system() would wait
 * out a stop.
 */
#include "syslib.h"

#include "child.h"
#include "exec.h"

#include <lauxlib.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHILD_MT "runspace.exec.child"

/* The child lives in a userdata whose __gc kills and reaps it if it still runs, so that a
 * Lua error cannot leave one behind. */
static int child_gc(lua_State *L)
{
    rs__child_free(luaL_checkudata(L, 1, CHILD_MT));
    return 0;
}

static rs__child *new_child(lua_State *L)
{
    rs__child *c = lua_newuserdatauv(L, sizeof *c, 0);
    rs__child_init(c);
    rs__gc_metatable(L, CHILD_MT, child_gc);
    return c;
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

static int l_exec(lua_State *L)
{
    rs_runspace *rs = rs__lua_runspace(L);
    bool table = lua_istable(L, 1);
    double timeout = 0;
    size_t input_len = 0;
    const char *input = NULL, *cwd = NULL;
    bool check = false;
    if (table) {
        lua_getfield(L, 1, "timeout");
        lua_getfield(L, 1, "input");
        lua_getfield(L, 1, "cwd");
        lua_getfield(L, 1, "check");
        timeout = luaL_optnumber(L, -4, 0);
        input = luaL_optlstring(L, -3, NULL, &input_len);
        cwd = luaL_optstring(L, -2, NULL);
        check = lua_toboolean(L, -1);
        if (!(timeout >= 0))
            return luaL_error(L, "exec: timeout must be a non-negative number of seconds");
    }
    int argc;
    const char **argv = command_line(L, table, &argc);

    rs__child *c = new_child(L);
    rs__child_spec spec = {.argv = argv, .cwd = cwd, .stdin_pipe = input != NULL};
    int err = rs__child_start(c, &spec);
    if (err)
        return luaL_error(L, "exec: %s: %s", argv[0], strerror(err));

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
    int failure = rs__child_wait(c, ex, input, input_len, deadline, room, &why, &timed_out);
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

    if (check && (WIFSIGNALED(c->status) || WEXITSTATUS(c->status) != 0)) {
        /* check = true: a failure of the command is an error of the script. */
        if (WIFSIGNALED(c->status))
            lua_pushfstring(
                L, "exec: %s: killed by signal %d (SIG%s)", argv[0], WTERMSIG(c->status),
                sigabbrev_np(WTERMSIG(c->status)) ? sigabbrev_np(WTERMSIG(c->status)) : "?");
        else
            lua_pushfstring(L, "exec: %s: exit code %d", argv[0], WEXITSTATUS(c->status));
        const char *tail;
        size_t tail_len;
        rs__child_stderr_tail(c, &tail, &tail_len);
        if (tail_len) {
            lua_pushliteral(L, ": ");
            lua_pushlstring(L, tail, tail_len);
            lua_concat(L, 3);
        }
        return lua_error(L);
    }
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
    rs__child *c = new_child(L);
    const char *argv[] = {"sh", "-c", cmd, NULL};
    rs__child_spec spec = {.argv = argv, .path = "/bin/sh", .no_capture = true};
    int rc = rs__child_start(c, &spec);
    if (rc) {
        errno = rc;
        return luaL_fileresult(L, 0, NULL);
    }
    rs__exec *ex = rs__exec_current();
    int why = 0;
    bool timed_out = false; /* no deadline of its own: stays false */
    int failure = rs__child_wait(c, ex, NULL, 0, 0, 0, &why, &timed_out);
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
