/*
 * syslib.h -- the system built-ins of the default profile: fs, proc, exec (the seed's
 * workloads) and net (the scanner). Each lives in a file of its own (lualib_<name>.c) and is
 * opened by lualib.c; the restricted profile has none of them.
 */
#ifndef RS_SYSLIB_H
#define RS_SYSLIB_H

#include "runspace_int.h"

/* Gives the userdata on top of the stack the metatable registered as name, whose __gc is gc;
 * the metatable is made on first use, so that opening a runspace does not pay for it. */
void rs__gc_metatable(lua_State *L, const char *name, lua_CFunction gc);

/* Each defines its global table; called in protected mode while a runspace opens. */
void rs__open_fs(lua_State *L);
void rs__open_proc(lua_State *L);
void rs__open_exec(lua_State *L);
void rs__open_net(lua_State *L);

#endif
