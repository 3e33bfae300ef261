/*
 * marshal.h -- copying data between Lua and rs_value trees (docs/design.md section 2).
 */
#ifndef RS_MARSHAL_H
#define RS_MARSHAL_H

#include "common.h"

#include <lua.h>

/* Converts the Lua value at idx into a new rs_value, without raising Lua errors. Tables with
 * keys exactly 1..n become arrays, other tables maps (integer and float keys turn into their
 * decimal text; keys are sorted: numbers ascending, then strings bytewise, so output is
 * deterministic); an empty table is an array unless it carries the map marker. json.null is
 * null. A table referenced several times is copied for each reference.
 *
 * With a runspace rs that has a memory limit, every node made is charged to it (rs__charge)
 * and *charged (when not NULL) tells how much; the caller keeps the charge with the value or
 * gives it back (rs__uncharge) when it frees the value. While rs runs a script on this thread,
 * the conversion also counts each node as an instruction of the budget and stops at a due
 * stop or timeout. On failure returns NULL, charges nothing, sets *code (RS_EVALUE, RS_ENOMEM,
 * or the interruption: RS_ESTOPPED, RS_ETIMEDOUT, RS_ELIMIT) and *msg to a new string naming
 * the path: "<root>[<index>].key: cannot pass a function between runspaces". root_index 0
 * means the root has no index. */
/* A table referenced from several places is copied for each reference, so a few tables can
 * stand for an enormous copy ({t, t} nested 40 deep: 2^40 values). Past RS_COPY_SLACK bytes, a
 * copy may be at most RS_COPY_FACTOR times the size of the distinct values (tables, long
 * strings) it copies; beyond,
 * it fails with RS_EVALUE ("... the copy would be more than 16 times the value's own N bytes")
 * before it takes the process's memory, with or without a memory limit. */
#define RS_COPY_SLACK ((size_t)64 << 20)
#define RS_COPY_FACTOR 16
/* Strings this long count as the tables do: one met again (the same string referenced from
 * several places) is a copy again. */
#define RS_COPY_LONG_STRING 4096

rs_value *rs__lua_to_value(lua_State *L, rs_runspace *rs, int idx, const char *root,
                           lua_Integer root_index, size_t *charged, int *code, char **msg);

/* Converts the value at idx as output[k] of an invocation: like rs__lua_to_value, except that
 * a value no copy can carry (a function, coroutine or userdata, at any depth) becomes the text
 * Lua's tostring shows for it without calling __tostring ("function: 0x55d0c0a0"), as a
 * PowerShell object that cannot be serialized crosses as its string. *note is then set to a
 * new string for a warning ("output[2]: a function cannot cross between runspaces; it is
 * passed as the text \"function: 0x55d0c0a0\"", with a count when there are several), else
 * NULL. Cycles, bad keys, the memory limit and interruptions still fail. */
rs_value *rs__lua_to_output(lua_State *L, rs_runspace *rs, int idx, lua_Integer k, int *code,
                            char **msg, char **note);

/* Pushes a copy of v. A null at the top becomes nil, nested nulls become json.null; an empty
 * map becomes a table with the map marker. May raise Lua errors (memory, nesting > 512, and
 * the stop, timeout or budget of the run on this thread), so it is called only where raising
 * leaks nothing. */
void rs__lua_push_value(lua_State *L, const rs_value *v);

/* Registry keys (addresses) of the map marker metatable, created by rs__marshal_open. */
void rs__marshal_open(lua_State *L);
/* Pushes an empty table that converts to an empty map. */
void rs__lua_push_empty_map(lua_State *L);

#endif
