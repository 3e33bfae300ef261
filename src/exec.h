/*
 * exec.h -- what the Lua built-ins need from the executor: the current run's output and
 * streams, and native command calls.
 */
#ifndef RS_EXEC_H
#define RS_EXEC_H

#include "runspace_int.h"

/* The call context of a native command (public as an opaque type). */
struct rs_call {
    rs_runspace *rs;
    const char *name;
    const rs_value *args;   /* array or NULL */
    const rs_value *input;  /* pipeline item or NULL */
    const rs_value *params; /* map or NULL */
    rs_value *sink;         /* where rs_call_emit appends */
    lua_State *L;           /* the calling Lua thread, for source positions (may be NULL) */
    int64_t item;           /* the invocation's input item being run, or -1 */
    char *error;            /* set by rs_call_fail */
};

/* emit(): converts the Lua value at idx and appends it to the current output. Raises a Lua
 * error when it cannot (naming the path), or when no invocation is running. */
void rs__run_emit(lua_State *L, rs_runspace *rs, int idx);
/* Writes a record of the current invocation (dropped when none runs). L (may be NULL) gives
 * the source position of the writer. Returns 0 or RS_ENOMEM. */
int rs__run_record(rs_runspace *rs, lua_State *L, rs_stream stream, const char *msg, size_t len,
                   const char *activity, int percent);
/* Raises the failure of a built-in `what` (e.g. "shared.set") that could not convert or hold
 * a value: code is RS_EVALUE (a plain error with msg), RS_ENOMEM (the memory limit: raised as
 * an interruption no pcall can swallow, the item failing with msg as its detail) or an
 * interruption (RS_ESTOPPED, RS_ETIMEDOUT, RS_ELIMIT). msg (may be NULL) is taken. Never
 * returns. */
int rs__run_raise(lua_State *L, rs_runspace *rs, const char *what, int code, char *msg);
/* The lua_CFunction behind a native command's global: upvalues are the runspace and the ISS
 * entry (light userdata). */
int rs__lua_call_command(lua_State *L);

#endif
