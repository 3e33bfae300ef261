/*
 * lualib_int.h -- the built-ins of a runspace (docs/design.md section 4).
 */
#ifndef RS_LUALIB_INT_H
#define RS_LUALIB_INT_H

#include "runspace_int.h"

/* Opens the standard libraries allowed by the runspace's profile, applies the profile's rules
 * and defines the built-ins. Called in protected mode while the runspace opens. */
void rs__lualib_open(lua_State *L, rs_runspace *rs);

/* Replaces string.find, match, gmatch and gsub with versions that a stop or a timeout can
 * interrupt (lualib_pattern.c); L must have the string library open. */
void rs__open_pattern(lua_State *L);

/* Executing thread, during an interruption: removes __gc from every metatable that made an
 * object finalizable in L's state, so that no Lua finalizer runs any more (not at close
 * either). Allocates nothing and cannot raise. */
void rs__lualib_disarm_finalizers(lua_State *L);

/* Loads the module `name` as require would, for the host (an ISS module by name): in the
 * restricted profile too, where scripts cannot load modules from files. Leaves its value on
 * the stack; raises on failure. */
void rs__lualib_require(lua_State *L, const char *name);

#endif
