/*
 * lrs.h -- the Lua module `runspace` (runspace.so): what its files share.
 *
 * The module is a thin user of the public header, as the CLI is (it shares one internal
 * helper, src/ptrset.h, to copy values by the library's rule). Its rules, which every file
 * keeps:
 *  - The calling Lua state is touched only by the thread that called into the module. No
 *    callback of the library touches it: results are copied into C values on the library's
 *    threads and turned into Lua values here, on the caller's thread.
 *  - Every call that blocks takes a timeout (seconds; nil or a negative number: no limit).
 *  - A Lua error can be raised by any Lua API call that allocates. C resources are therefore
 *    never held across such a call unless a userdata with a __gc owns them (lrs_box), so a
 *    raised error leaks nothing.
 *  - Misuse (a wrong argument, a closed object, a second close) is a Lua error with a message;
 *    nothing a Lua program does with the module's objects crashes the state.
 */
#ifndef LRS_H
#define LRS_H

#include <runspace.h>

#include <lauxlib.h>
#include <lua.h>

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define LRS_POOL "runspace.pool"
#define LRS_HANDLE "runspace.handle"
#define LRS_FOREACH "runspace.foreach"
#define LRS_JOBS "runspace.jobs"
#define LRS_SHARED "runspace.shared"
#define LRS_BOX "runspace.box"
#define LRS_SCAN "runspace.scan"

/* ---- values (value.c) ---- */

/* Converts the Lua value at idx to a new rs_value (copied: tables become arrays when their
 * keys are 1..n, maps otherwise; nil and rs.null become null). Never raises. NULL on failure
 * with err (at least 160 bytes) saying why and where ("arg 2[3].name: cannot pass a
 * function"). what names the root in messages. */
rs_value *lrs_to_value(lua_State *L, int idx, const char *what, char *err, size_t errsize);
/* Pushes a copy of v (borrowed). null is nil at the top, rs.null inside tables. May raise
 * (out of memory): hold v in a box if it must be freed. */
void lrs_push_value(lua_State *L, const rs_value *v);
/* Pushes an empty box: a userdata whose slot owns the value stored in it and frees it when
 * collected or at lrs_box_free. Made before the value, so that a value never lives unowned
 * across a call that may raise. */
rs_value **lrs_newbox(lua_State *L);
/* Frees the value of the box at idx now. */
void lrs_box_free(lua_State *L, int idx);
void lrs_value_open(lua_State *L);

/* ---- common (module.c) ---- */

/* Raises a Lua error "message" (the library's message, else rs_strerror(code)), positioned
 * at the caller as luaL_error does. */
int lrs_fail(lua_State *L, int code, const char *message);
/* A timeout argument: nil or negative means none (-1). NaN is an argument error. */
double lrs_opt_timeout(lua_State *L, int arg);
/* A seconds option (time_limit, idle_timeout...): nil, negative or math.huge mean none (-1);
 * NaN or a non-number is an error naming the option. */
double lrs_opt_seconds(lua_State *L, int t, const char *field);
/* Fields of an options table at index t. */
/* An integer option from 0 to max; anything else (a fraction, a negative number, 2^32 for a
 * count) is an error naming the option and the range. */
lua_Integer lrs_opt_int(lua_State *L, int t, const char *field, lua_Integer def, lua_Integer max);
/* The most runspaces a pool or jobs manager may have (pool:max(n) takes the same). */
#define LRS_MAX_RUNSPACES 65536
double lrs_opt_number(lua_State *L, int t, const char *field, double def);
/* A string option; one holding a zero byte is an error (names, paths). */
const char *lrs_opt_string(lua_State *L, int t, const char *field, const char *def);
/* A string option of any bytes, with its length. */
const char *lrs_opt_lstring(lua_State *L, int t, const char *field, const char *def, size_t *len);
int lrs_opt_bool(lua_State *L, int t, const char *field, int def);
/* Builds an ISS from the fields of the options table at t (profile, variables, functions,
 * modules, memory, instructions); *out gets it, or NULL when none of them is set. Raises
 * on bad options (nothing leaks: the ISS is boxed while it is built). */
void lrs_iss_from_opts(lua_State *L, int t, rs_iss **out);
/* Registers the metatable of a kind of object: methods as __index, the metamethods of meta, and
 * a __metatable field, so that getmetatable cannot reach the finalizers. */
void lrs_new_class(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *meta);
/* Seconds on the monotonic clock. */
double lrs_now(void);
/* Waits on cv (made with a CLOCK_MONOTONIC attribute) with mu held, until signalled or until
 * deadline (lrs_now() seconds; < 0: no deadline). */
void lrs_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, double deadline);

/* ---- what tasks write (records.c) ---- */

/* Shows a task's stream record as lua5.4 shows a script's print, and as the runspace tool
 * does: print and write_information on standard output, warnings ("WARNING: ") and
 * write_error ("ERROR: ") on standard error, each a whole line, flushed. Verbose, debug and
 * progress records, and terminating errors (h:wait raises those), are not shown. Called on
 * the library's threads: it touches the C streams only, never a Lua state. */
void lrs_echo(const rs_record *r);
/* rs_ps_opts.on_record and rs_foreach_opts.on_stream calling lrs_echo. */
void lrs_echo_ps(rs_ps *ps, const rs_record *r, void *ud);
void lrs_echo_item(uint64_t index, const rs_record *r, void *ud);
void lrs_echo_job(const char *job, const rs_record *r, void *ud);
void lrs_echo_host(const rs_record *r, void *ud);
/* The records of the ended invocation ps, in the order they were written, as an array of maps
 * {stream, message, source, line, traceback, activity, percent, time} (fields that do not
 * apply left out); NULL when it wrote none, or when out of memory (*oom set). */
rs_value *lrs_take_records(rs_ps *ps, bool *oom);

/* ---- pools and handles (pool.c) ---- */

/* The C side of a pool object, kept alive by the objects that use it (handles, jobs, for-each
 * runs) as well as by its userdata: the rs_pool is destroyed when the last one lets go. Only
 * the thread of the Lua state touches it. */
typedef struct lrs_pool lrs_pool;
/* The pool object at idx (raises when it is not one, or is closed). */
lrs_pool *lrs_check_pool(lua_State *L, int idx);
rs_pool *lrs_pool_get(lrs_pool *p);
/* The option quiet of the options table at t; when it is not given, that of the pool p the
 * run or jobs manager uses (NULL: none, not quiet). */
bool lrs_quiet(lua_State *L, int t, const lrs_pool *p);
void lrs_pool_retain(lrs_pool *p);
void lrs_pool_release(lrs_pool *p);
/* A jobs manager or for-each run starts (retains) and stops (releases) using the pool: while
 * any does, pool:close() refuses, since it could not stop their invocations. */
void lrs_pool_use(lrs_pool *p);
void lrs_pool_unuse(lrs_pool *p);
void lrs_pool_open(lua_State *L);

/* ---- the other objects ---- */
void lrs_foreach_open(lua_State *L);
void lrs_jobs_open(lua_State *L);
void lrs_shared_open(lua_State *L);
/* Pushes a shared-store object for s (a reference is taken). */
void lrs_shared_push(lua_State *L, rs_shared *s);
/* The store of the shared object at idx, or NULL when idx holds none. */
rs_shared *lrs_shared_test(lua_State *L, int idx);
void lrs_scan_open(lua_State *L);

#endif
