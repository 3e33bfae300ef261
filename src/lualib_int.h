/*
 * lualib_int.h -- the built-ins of a runspace (DESIGN.md section 4).
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

#endif
