/*
 * lualib.c -- what a script sees in a runspace (docs/design.md section 4): emit and the write_*
 * streams, print (to the information stream), sleep, random, shared, json, time, runspace;
 * plus the rules of the profiles: binary chunks refused everywhere, os.exit and os.setlocale
 * (which would act on the whole process) refused everywhere, and the restricted profile's
 * removals.
 *
 * C functions here that allocate C memory keep it in the runspace's scratch slots rather than
 * in locals, because a Lua error (out of memory while pushing a result, say) unwinds them
 * without returning.
 */
#include "lualib_int.h"

#include "exec.h"
#include "json.h"
#include "marshal.h"
#include "shared.h"
#include "syslib.h"

#include <lauxlib.h>
#include <lualib.h>

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

static rs_runspace *self(lua_State *L)
{
    return rs__lua_runspace(L);
}

/* Holds v in the runspace's scratch slot with `charge` bytes of its memory limit, freeing
 * (and giving back the charge of) what a previous raise may have left there. */
static rs_value *hold(rs_runspace *rs, rs_value *v, size_t charge)
{
    rs_value_destroy(rs->scratch_value);
    rs__uncharge(rs, rs->scratch_charge);
    rs->scratch_value = v;
    rs->scratch_charge = charge;
    return v;
}

/* ---- output and streams ------------------------------------------------------------------- */

static int l_emit(lua_State *L)
{
    rs_runspace *rs = self(L);
    int n = lua_gettop(L);
    for (int i = 1; i <= n; i++)
        rs__run_emit(L, rs, i);
    return 0;
}

/* The text of the arguments of print/write_*: tostring of each, tab-separated. */
static const char *arguments_text(lua_State *L, size_t *len)
{
    int n = lua_gettop(L);
    luaL_Buffer b;
    luaL_buffinit(L, &b);
    for (int i = 1; i <= n; i++) {
        if (i > 1)
            luaL_addchar(&b, '\t');
        luaL_tolstring(L, i, NULL);
        luaL_addvalue(&b);
    }
    luaL_pushresult(&b);
    return lua_tolstring(L, -1, len);
}

static int write_stream(lua_State *L, rs_stream stream)
{
    size_t len;
    const char *msg = arguments_text(L, &len);
    if (rs__run_record(self(L), L, stream, msg, len, NULL, -1))
        return luaL_error(L, "out of memory");
    return 0;
}

static int l_write_error(lua_State *L)
{
    return write_stream(L, RS_STREAM_ERROR);
}

static int l_write_warning(lua_State *L)
{
    return write_stream(L, RS_STREAM_WARNING);
}

static int l_write_verbose(lua_State *L)
{
    return write_stream(L, RS_STREAM_VERBOSE);
}

static int l_write_debug(lua_State *L)
{
    return write_stream(L, RS_STREAM_DEBUG);
}

static int l_write_information(lua_State *L)
{
    return write_stream(L, RS_STREAM_INFORMATION);
}

/* write_progress{activity=, status=, percent=} or write_progress(activity, status, percent). */
static int l_write_progress(lua_State *L)
{
    const char *activity, *status;
    lua_Number percent;
    if (lua_istable(L, 1)) {
        lua_getfield(L, 1, "activity");
        lua_getfield(L, 1, "status");
        lua_getfield(L, 1, "percent");
        activity = luaL_optstring(L, -3, "");
        status = luaL_optstring(L, -2, "");
        percent = luaL_optnumber(L, -1, -1);
    } else {
        activity = luaL_optstring(L, 1, "");
        status = luaL_optstring(L, 2, "");
        percent = luaL_optnumber(L, 3, -1);
    }
    int pct = isnan(percent) || percent < 0 ? -1 : percent > 100 ? 100 : (int)percent;
    if (rs__run_record(self(L), L, RS_STREAM_PROGRESS, status, strlen(status), activity, pct))
        return luaL_error(L, "out of memory");
    return 0;
}

/* ---- sleep -------------------------------------------------------------------------------- */

static int l_sleep(lua_State *L)
{
    lua_Number s = luaL_checknumber(L, 1);
    if (!(s >= 0))
        return luaL_argerror(L, 1, "seconds must be a non-negative number");
    rs__exec *ex = rs__exec_current();
    if (ex && ex->L) {
        int why = rs__exec_sleep(ex, s);
        if (why)
            return rs__exec_raise(L, ex, why);
        return 0;
    }
    /* Outside an invocation (a module running while its runspace opens): a plain sleep. */
    int64_t ns = rs__seconds_to_ns(s);
    struct timespec ts = {.tv_sec = ns / 1000000000, .tv_nsec = ns % 1000000000};
    while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
        continue;
    return 0;
}

/* ---- shared ------------------------------------------------------------------------------- */

/* The runspace's store; a standalone runspace without one makes it on first use (only its own
 * thread touches the field). */
static rs_shared *store(lua_State *L)
{
    rs_runspace *rs = self(L);
    if (!rs->shared && rs_shared_create(&rs->shared))
        luaL_error(L, "shared: out of memory");
    return rs->shared;
}

/* Converts argument idx for the store (charged to the memory limit: *charge); raises with the
 * path on failure. */
static rs_value *shared_arg(lua_State *L, int idx, const char *what, size_t *charge)
{
    int code;
    char *msg;
    rs_value *v = rs__lua_to_value(L, self(L), idx, "value", 0, charge, &code, &msg);
    if (!v)
        rs__run_raise(L, self(L), what, code, msg);
    return v;
}

/* Raises the failure of a write to the store. */
static int shared_failed(lua_State *L, const char *what, int rc)
{
    if (rc == RS_ELIMIT)
        return luaL_error(L, "%s: the shared store is full: it holds at most %I bytes", what,
                          (lua_Integer)self(L)->mem_limit);
    if (rc == RS_EIO)
        return luaL_error(L, "%s: the run's store on Redis cannot be reached", what);
    if (rc == RS_EVALUE)
        return luaL_error(L, "%s: the value cannot be stored as JSON", what);
    return luaL_error(L, "%s: out of memory", what);
}

static int l_shared_get(lua_State *L)
{
    size_t klen;
    const char *key = luaL_checklstring(L, 1, &klen);
    rs_runspace *rs = self(L);
    rs_value *v = NULL;
    int rc = rs__shared_get(store(L), key, klen, &v);
    if (rc == RS_ENOENT) {
        lua_pushnil(L);
        return 1;
    }
    if (rc)
        return shared_failed(L, "shared.get", rc);
    hold(rs, v, 0);
    rs__lua_push_value(L, v);
    hold(rs, NULL, 0);
    return 1;
}

static int l_shared_set(lua_State *L)
{
    size_t klen;
    const char *key = luaL_checklstring(L, 1, &klen);
    luaL_checkany(L, 2);
    rs_runspace *rs = self(L);
    rs_shared *st = store(L); /* may raise: before holding a converted value */
    size_t charge = 0;
    rs_value *v = lua_isnil(L, 2) ? NULL : shared_arg(L, 2, "shared.set", &charge);
    rs__uncharge(rs, charge); /* the store holds it now, within its own limit */
    int rc = rs__shared_put(st, key, klen, v, rs->mem_limit);
    if (rc)
        return shared_failed(L, "shared.set", rc);
    return 0;
}

static int l_shared_incr(lua_State *L)
{
    size_t klen;
    const char *key = luaL_checklstring(L, 1, &klen);
    lua_Integer delta = luaL_optinteger(L, 2, 1);
    int64_t out;
    int rc = rs__shared_incr(store(L), key, klen, delta, &out, self(L)->mem_limit);
    if (rc == RS_EINVAL)
        return luaL_error(L, "shared.incr: the value of '%s' is not an integer", key);
    if (rc == RS_ERUNTIME)
        return luaL_error(L, "shared.incr: integer overflow");
    if (rc)
        return shared_failed(L, "shared.incr", rc);
    lua_pushinteger(L, (lua_Integer)out);
    return 1;
}

static int l_shared_add(lua_State *L)
{
    size_t klen;
    const char *key = luaL_checklstring(L, 1, &klen);
    luaL_checkany(L, 2);
    if (lua_isnil(L, 2))
        return luaL_argerror(L, 2, "value expected");
    rs_runspace *rs = self(L);
    rs_shared *st = store(L); /* may raise: before holding a converted value */
    size_t charge;
    rs_value *v = shared_arg(L, 2, "shared.add", &charge);
    rs__uncharge(rs, charge);
    bool added;
    int rc = rs__shared_cas(st, key, klen, NULL, v, &added, rs->mem_limit);
    if (rc)
        return shared_failed(L, "shared.add", rc);
    lua_pushboolean(L, added);
    return 1;
}

static int l_shared_cas(lua_State *L)
{
    size_t klen;
    const char *key = luaL_checklstring(L, 1, &klen);
    lua_settop(L, 3);
    rs_runspace *rs = self(L);
    rs_shared *st = store(L); /* may raise: before holding converted values */
    /* The expected value is held in scratch: converting the new one may raise. */
    size_t charge = 0;
    rs_value *expected = NULL;
    if (!lua_isnil(L, 2)) {
        expected = shared_arg(L, 2, "shared.cas", &charge);
        hold(rs, expected, charge);
    }
    size_t vcharge = 0;
    rs_value *v = lua_isnil(L, 3) ? NULL : shared_arg(L, 3, "shared.cas", &vcharge);
    rs__uncharge(rs, vcharge);
    bool swapped;
    int rc = rs__shared_cas(st, key, klen, expected, v, &swapped, rs->mem_limit);
    hold(rs, NULL, 0);
    if (rc)
        return shared_failed(L, "shared.cas", rc);
    lua_pushboolean(L, swapped);
    return 1;
}

static int l_shared_keys(lua_State *L)
{
    rs_runspace *rs = self(L);
    rs_value *keys = rs_shared_keys(store(L));
    if (!keys)
        return luaL_error(L, "shared.keys: out of memory, or the run's store on Redis cannot be "
                             "reached");
    hold(rs, keys, 0);
    rs__lua_push_value(L, keys);
    hold(rs, NULL, 0);
    return 1;
}

/* ---- json --------------------------------------------------------------------------------- */

/* A json call's look at the run: a stop, the timeout or a spent budget ends a long encoding
 * or decoding (work counted like instructions, as output conversion counts it). why keeps
 * what ended it. */
typedef struct json_run {
    rs__exec *ex;
    int why;
} json_run;

static int json_check(void *ud, uint64_t work)
{
    json_run *r = ud;
    return r->why = rs__exec_charge(r->ex, work);
}

static int l_json_encode(lua_State *L)
{
    luaL_checkany(L, 1);
    unsigned flags = 0;
    if (lua_toboolean(L, 2) && !lua_istable(L, 2))
        flags |= RS_JSON_PRETTY;
    if (lua_istable(L, 2)) {
        if (lua_getfield(L, 2, "pretty") != LUA_TNIL && lua_toboolean(L, -1))
            flags |= RS_JSON_PRETTY;
        if (lua_getfield(L, 2, "ascii") != LUA_TNIL && lua_toboolean(L, -1))
            flags |= RS_JSON_ASCII;
        lua_pop(L, 2);
    }
    rs_runspace *rs = self(L);
    int code;
    char *msg;
    size_t charge;
    rs_value *v = rs__lua_to_value(L, rs, 1, "value", 0, &charge, &code, &msg);
    if (!v)
        return rs__run_raise(L, rs, "json.encode", code, msg);
    hold(rs, v, charge);
    rs_errinfo err;
    rs->scratch.len = 0;
    rs__exec *ex = rs__exec_current();
    json_run run = {ex && ex->L ? ex : NULL, 0};
    int rc = rs__json_encode_checked(v, flags, "value", 1, &rs->scratch, &err,
                                     run.ex ? json_check : NULL, &run);
    hold(rs, NULL, 0);
    if (rc && run.why) {
        rs__buf_free(&rs->scratch);
        return rs__exec_raise(L, run.ex, run.why);
    }
    if (rc == 0 && rs__charge(rs, rs->scratch.len)) {
        rs__buf_free(&rs->scratch);
        return rs__run_raise(L, rs, "json.encode", RS_ENOMEM,
                             rs__format("the text does not fit in the runspace memory limit of "
                                        "%zu bytes",
                                        rs->mem_limit));
    }
    rs__uncharge(rs, rs->scratch.len); /* a look only: the Lua string is charged as Lua's */
    if (rc)
        return luaL_error(L, "json.encode: %s", err.message);
    lua_pushlstring(L, rs->scratch.data ? rs->scratch.data : "", rs->scratch.len);
    if (rs->scratch.cap > 65536)
        rs__buf_free(&rs->scratch);
    return 1;
}

static int l_json_decode(lua_State *L)
{
    size_t len;
    const char *text = luaL_checklstring(L, 1, &len);
    rs_runspace *rs = self(L);
    size_t cost = rs->mem_limit ? rs__json_decode_cost(text, len) : 0;
    if (rs__charge(rs, cost))
        return rs__run_raise(L, rs, "json.decode", RS_ENOMEM,
                             rs__format("decoding %zu bytes of JSON takes about %zu bytes, more "
                                        "than the runspace memory limit of %zu bytes leaves",
                                        len, cost, rs->mem_limit));
    rs_errinfo err;
    rs_value *v = NULL;
    rs__exec *ex = rs__exec_current();
    json_run run = {ex && ex->L ? ex : NULL, 0};
    int rc = rs__json_decode_checked(text, len, &v, &err, run.ex ? json_check : NULL, &run);
    if (rc && run.why) {
        rs__uncharge(rs, cost);
        return rs__exec_raise(L, run.ex, run.why);
    }
    if (rc) {
        rs__uncharge(rs, cost);
        return luaL_error(L, "json.decode: line %d, column %d: %s", err.line, err.column,
                          err.message);
    }
    hold(rs, v, cost);
    rs__lua_push_value(L, v);
    hold(rs, NULL, 0);
    return 1;
}

/* json.map([t]): marks t (or a new table) so that it encodes as an object even when empty. */
static int l_json_map(lua_State *L)
{
    if (lua_isnoneornil(L, 1)) {
        rs__lua_push_empty_map(L);
        return 1;
    }
    luaL_checktype(L, 1, LUA_TTABLE);
    rs__lua_push_empty_map(L);
    lua_getmetatable(L, -1);
    lua_setmetatable(L, 1);
    lua_settop(L, 1);
    return 1;
}

/* ---- time --------------------------------------------------------------------------------- */

static int l_time_now(lua_State *L)
{
    lua_pushnumber(L, rs__wall_time());
    return 1;
}

static int l_time_monotonic(lua_State *L)
{
    lua_pushnumber(L, (lua_Number)rs__now_ns() * 1e-9);
    return 1;
}

/* ---- coroutines: resumed threads join the interruptible set -------------------------------- */

/* Resumes co with narg arguments from L's top. Returns the number of results moved to L, or
 * -1 with an error value on L's top. */
static int resume(lua_State *L, lua_State *co, int narg)
{
    const char *bad = NULL;
    int st = lua_status(co);
    lua_Debug ar;
    if (co == L)
        bad = "cannot resume non-suspended coroutine";
    else if (st == LUA_OK && lua_getstack(co, 0, &ar))
        bad = "cannot resume non-suspended coroutine";
    else if (st == LUA_OK && lua_gettop(co) == 0)
        bad = "cannot resume dead coroutine";
    else if (st != LUA_OK && st != LUA_YIELD)
        bad = "cannot resume dead coroutine";
    else if (!lua_checkstack(co, narg))
        bad = "too many arguments to resume";
    if (bad) {
        lua_pushstring(L, bad);
        return -1;
    }
    lua_xmove(L, co, narg);
    rs__exec *ex = rs__exec_current();
    if (ex && ex->L) {
        /* The coroutine carries the resumer's hook: an armed interrupt, or the budget. */
        rs__exec_hand_hook(L, co);
        rs__exec_push_thread(ex, co);
    }
    int nres;
    int status = lua_resume(co, L, narg, &nres);
    if (ex && ex->L)
        rs__exec_pop_thread(ex);
    if (status == LUA_OK || status == LUA_YIELD) {
        if (!lua_checkstack(L, nres + 1)) {
            lua_pop(co, nres);
            lua_pushliteral(L, "too many results to resume");
            return -1;
        }
        lua_xmove(co, L, nres);
        return nres;
    }
    lua_xmove(co, L, 1);
    return -1;
}

static int l_co_resume(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "thread"); /* lua5.4's word */
    int r = resume(L, co, lua_gettop(L) - 1);
    if (r < 0) {
        lua_pushboolean(L, 0);
        lua_insert(L, -2);
        return 2;
    }
    lua_pushboolean(L, 1);
    lua_insert(L, -(r + 1));
    return r + 1;
}

/* Closes co's pending to-be-closed variables (lua_resetthread) with co on the running chain,
 * so that its __close handlers can be interrupted like any other code. */
static int reset_thread(lua_State *L, lua_State *co)
{
    rs__exec *ex = rs__exec_current();
    bool chained = ex && ex->L;
    if (chained) {
        rs__exec_hand_hook(L, co);
        rs__exec_push_thread(ex, co);
    }
    int status = lua_resetthread(co);
    if (chained)
        rs__exec_pop_thread(ex);
    return status;
}

static int l_co_wrapped(lua_State *L)
{
    lua_State *co = lua_tothread(L, lua_upvalueindex(1));
    int r = resume(L, co, lua_gettop(L));
    if (r >= 0)
        return r;
    int st = lua_status(co);
    if (st != LUA_OK && st != LUA_YIELD) {
        /* An error in the coroutine: close its variables; the error is the one left after
         * their __close handlers ran. */
        lua_pop(L, 1);
        st = reset_thread(L, co);
        lua_xmove(co, L, 1);
    }
    if (st != LUA_ERRMEM && lua_type(L, -1) == LUA_TSTRING) {
        luaL_where(L, 1);
        lua_insert(L, -2);
        lua_concat(L, 2);
    }
    return lua_error(L);
}

static int l_co_wrap(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TFUNCTION);
    lua_State *co = lua_newthread(L);
    lua_pushvalue(L, 1);
    lua_xmove(L, co, 1);
    lua_pushcclosure(L, l_co_wrapped, 1);
    return 1;
}

/* coroutine.close(co): Lua's own, with the closing thread on the running chain. */
static int l_co_close(lua_State *L)
{
    lua_State *co = lua_tothread(L, 1);
    luaL_argexpected(L, co, 1, "thread"); /* lua5.4's word */
    const char *what = "dead";
    lua_Debug ar;
    if (co == L)
        what = "running";
    else if (lua_status(co) == LUA_YIELD)
        what = "suspended";
    else if (lua_status(co) == LUA_OK)
        what = lua_getstack(co, 0, &ar) ? "normal" : lua_gettop(co) == 0 ? "dead" : "suspended";
    if (strcmp(what, "dead") != 0 && strcmp(what, "suspended") != 0)
        return luaL_error(L, "cannot close a %s coroutine", what);
    if (reset_thread(L, co) == LUA_OK) {
        lua_pushboolean(L, 1);
        return 1;
    }
    lua_pushboolean(L, 0);
    lua_xmove(co, L, 1);
    return 2;
}

/* ---- code Lua runs with hooks off ------------------------------------------------------------
 * Lua calls no hook while a thread's allowhook flag is clear: while a hook runs (so in a
 * message handler called for an error a hook raised), while a finalizer runs. interrupt.c
 * re-allows hooks there when an interruption is due. What remains for this file: every
 * metatable that makes an object finalizable is remembered (weakly), so that once a finalizer
 * had to be cut short, the others can be disarmed at once rather than each cut short in turn. */

static const char finalizers_key = 'f';

/* Remembers the metatable at idx when it has a __gc field, which is what makes Lua mark an
 * object for finalization when the metatable is set. Done before the metatable is set, so
 * that a memory error here leaves nothing unremembered. */
static void remember_finalizer(lua_State *L, int idx)
{
    if (lua_type(L, idx) != LUA_TTABLE)
        return;
    lua_pushliteral(L, "__gc");
    int has_gc = lua_rawget(L, idx) != LUA_TNIL; /* Lua reads metamethods raw, too */
    lua_pop(L, 1);
    if (!has_gc)
        return;
    lua_rawgetp(L, LUA_REGISTRYINDEX, &finalizers_key);
    lua_pushvalue(L, idx);
    lua_pushboolean(L, 1);
    lua_rawset(L, -3);
    lua_pop(L, 1);
}

void rs__lualib_disarm_finalizers(lua_State *L)
{
    if (!lua_checkstack(L, 4))
        return;
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &finalizers_key) != LUA_TTABLE) {
        lua_pop(L, 1);
        return;
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        lua_pop(L, 1);
        if (lua_istable(L, -1)) {
            lua_pushliteral(L, "__gc"); /* an interned metamethod name: no allocation */
            if (lua_rawget(L, -2) != LUA_TNIL) {
                lua_pop(L, 1);
                lua_pushliteral(L, "__gc");
                lua_pushnil(L);
                lua_rawset(L, -3); /* an existing key: no allocation */
            } else {
                lua_pop(L, 1);
            }
        }
    }
    lua_pop(L, 1);
}

/* setmetatable(t, mt): Lua's own, remembering finalizers. */
static int l_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_checktype(L, 1, LUA_TTABLE);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    if (luaL_getmetafield(L, 1, "__metatable") != LUA_TNIL)
        return luaL_error(L, "cannot change a protected metatable");
    lua_settop(L, 2);
    remember_finalizer(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* debug.setmetatable(v, mt): Lua's own, remembering finalizers. */
static int l_debug_setmetatable(lua_State *L)
{
    int t = lua_type(L, 2);
    luaL_argexpected(L, t == LUA_TNIL || t == LUA_TTABLE, 2, "nil or table");
    lua_settop(L, 2);
    remember_finalizer(L, 2);
    lua_setmetatable(L, 1);
    return 1;
}

/* Opens the finalizer bookkeeping: a table with weak keys in the registry. */
static void open_finalizers(lua_State *L)
{
    lua_newtable(L);
    lua_createtable(L, 0, 1);
    lua_pushliteral(L, "k");
    lua_setfield(L, -2, "__mode");
    lua_setmetatable(L, -2);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &finalizers_key);
}

/* ---- loading code: text only ---------------------------------------------------------------- */

/* A runspace loads text chunks only; everything else about loading is Lua's. Each loader
 * hands Lua the script's mode with 'b' taken out, so that Lua never reads a binary chunk, and
 * then restores Lua's answer for the script's mode: a binary chunk under a mode that allows
 * 'b' gets "binary chunks cannot be loaded in a runspace" where Lua would have loaded it;
 * under a mode that does not, Lua's own "attempt to load a binary chunk (mode is '...')" with
 * the script's mode; a text chunk refused by the mode gets Lua's "attempt to load a text
 * chunk (mode is '...')". The message comes in the form Lua gives a refused mode: nil and the
 * message from load and loadfile, an error from dofile. */

static const char binary_refused[] = "binary chunks cannot be loaded in a runspace";

/* Pushes mode without its 'b's: the mode to hand Lua. */
static const char *text_mode(lua_State *L, const char *mode)
{
    return luaL_gsub(L, mode, "b", "");
}

/* After a load with text_mode(mode) = `given` returned status with its message on the top:
 * replaces a message of Lua's mode check by the one for the script's mode. */
static void restore_mode_answer(lua_State *L, int status, const char *mode, const char *given)
{
    if (status != LUA_ERRSYNTAX || lua_type(L, -1) != LUA_TSTRING)
        return;
    const char *msg = lua_tostring(L, -1);
    const char *kinds[] = {"binary", "text"};
    for (int i = 0; i < 2; i++) {
        lua_pushfstring(L, "attempt to load a %s chunk (mode is '%s')", kinds[i], given);
        bool same = strcmp(msg, lua_tostring(L, -1)) == 0;
        lua_pop(L, 1);
        if (!same)
            continue;
        lua_pop(L, 1);
        if (i == 0 && strchr(mode, 'b'))
            lua_pushstring(L, binary_refused);
        else
            lua_pushfstring(L, "attempt to load a %s chunk (mode is '%s')", kinds[i], mode);
        return;
    }
}

/* Stack slot where the reader of load keeps the piece it returned last, out of the GC's way. */
#define READER_SLOT 5

/* load's reader: calls the function at 1 for the next piece of the chunk. */
static const char *read_piece(lua_State *L, void *ud, size_t *size)
{
    RS__UNUSED(ud);
    luaL_checkstack(L, 2, "too many nested functions");
    lua_pushvalue(L, 1);
    lua_call(L, 0, 1);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        *size = 0;
        return NULL;
    }
    if (!lua_isstring(L, -1))
        luaL_error(L, "reader function must return a string");
    lua_replace(L, READER_SLOT);
    return lua_tolstring(L, READER_SLOT, size);
}

/* The answer of load and loadfile for a load that returned status: the function (with env as
 * its first upvalue when env is not 0), or nil and the message. */
static int load_result(lua_State *L, int status, int env)
{
    if (status != LUA_OK) {
        lua_pushnil(L);
        lua_insert(L, -2);
        return 2;
    }
    if (env) {
        lua_pushvalue(L, env);
        if (!lua_setupvalue(L, -2, 1))
            lua_pop(L, 1);
    }
    return 1;
}

/* load(chunk [, chunkname [, mode [, env]]]): Lua's, its arguments checked in Lua's order and
 * its errors raised here, so that they name load and the caller's position. */
static int l_load(lua_State *L)
{
    size_t len;
    const char *s = lua_tolstring(L, 1, &len);
    const char *mode = luaL_optstring(L, 3, "bt");
    int env = !lua_isnone(L, 4) ? 4 : 0;
    int status;
    if (s) {
        const char *name = luaL_optstring(L, 2, s);
        const char *given = text_mode(L, mode);
        status = luaL_loadbufferx(L, s, len, name, given);
        restore_mode_answer(L, status, mode, given);
    } else {
        const char *name = luaL_optstring(L, 2, "=(load)");
        luaL_checktype(L, 1, LUA_TFUNCTION);
        lua_settop(L, READER_SLOT);
        const char *given = text_mode(L, mode);
        status = lua_load(L, read_piece, NULL, name, given);
        restore_mode_answer(L, status, mode, given);
    }
    return load_result(L, status, env);
}

static int l_loadfile(lua_State *L)
{
    const char *fname = luaL_optstring(L, 1, NULL);
    const char *mode = luaL_optstring(L, 2, "bt");
    int env = !lua_isnone(L, 3) ? 3 : 0;
    const char *given = text_mode(L, mode);
    int status = luaL_loadfilex(L, fname, given);
    restore_mode_answer(L, status, mode, given);
    return load_result(L, status, env);
}

static int dofile_done(lua_State *L, int status, lua_KContext ctx)
{
    RS__UNUSED(status);
    RS__UNUSED(ctx);
    return lua_gettop(L) - 1;
}

/* dofile, text only; the chunk may yield (a continuation, as Lua's own). */
static int l_dofile(lua_State *L)
{
    const char *fname = luaL_optstring(L, 1, NULL);
    lua_settop(L, 1);
    int status = luaL_loadfilex(L, fname, "t");
    restore_mode_answer(L, status, "bt", "t");
    if (status != LUA_OK)
        return lua_error(L);
    lua_callk(L, 0, LUA_MULTRET, 0, dofile_done);
    return dofile_done(L, LUA_OK, 0);
}

/* package.searchers' Lua-file searcher, loading text only. Upvalue 1 is the package table. */
static int l_search_lua(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    lua_getfield(L, lua_upvalueindex(1), "searchpath");
    lua_pushstring(L, name);
    lua_getfield(L, lua_upvalueindex(1), "path");
    if (!lua_isstring(L, -1))
        return luaL_error(L, "'package.path' must be a string");
    lua_call(L, 2, 2);
    if (lua_isnil(L, -2))
        return 1; /* the searchpath message says where it looked */
    lua_pop(L, 1);
    const char *filename = lua_tostring(L, -1);
    int status = luaL_loadfilex(L, filename, "t");
    restore_mode_answer(L, status, "bt", "t");
    if (status != LUA_OK)
        return luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, filename,
                          lua_tostring(L, -1));
    lua_pushstring(L, filename);
    return 2;
}

/* The restricted profile's last searcher: says why nothing else was looked at. */
static int l_search_refused(lua_State *L)
{
    lua_pushliteral(L, "\n\tthe restricted profile loads no modules from files");
    return 1;
}

/* package.path as the state opened with it, for the host's own module loading. */
static const char host_path_key = 'p';

/* The first file of the templates in path (';'-separated, '?' standing for name with dots
 * turned into '/') that can be opened for reading; pushes its name, or returns false. */
static bool host_search(lua_State *L, const char *name, const char *path)
{
    int base = lua_gettop(L);
    const char *dirname = luaL_gsub(L, name, ".", "/");
    for (const char *p = path; *p;) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        lua_pushlstring(L, p, len);
        const char *file = luaL_gsub(L, lua_tostring(L, -1), "?", dirname);
        FILE *f = len ? fopen(file, "r") : NULL;
        if (f) {
            fclose(f);
            lua_replace(L, base + 1);
            lua_settop(L, base + 1);
            return true;
        }
        lua_settop(L, base + 1);
        p += len + (end ? 1 : 0);
    }
    lua_settop(L, base);
    return false;
}

void rs__lualib_require(lua_State *L, const char *name)
{
    luaL_checkstack(L, 8, "module loading");
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_LOADED_TABLE);
    int loaded = lua_gettop(L);
    if (lua_getfield(L, loaded, name) != LUA_TNIL && lua_toboolean(L, -1)) {
        lua_remove(L, loaded);
        return;
    }
    lua_pop(L, 1);
    luaL_getsubtable(L, LUA_REGISTRYINDEX, LUA_PRELOAD_TABLE);
    if (lua_getfield(L, -1, name) == LUA_TFUNCTION) {
        lua_remove(L, -2);
        lua_pushstring(L, name);
        lua_pushliteral(L, ":preload:");
    } else {
        lua_pop(L, 2);
        lua_rawgetp(L, LUA_REGISTRYINDEX, &host_path_key);
        const char *path = lua_tostring(L, -1);
        if (!path || !host_search(L, name, path))
            luaL_error(L, "module '%s' not found in package.path '%s'", name, path ? path : "");
        const char *file = lua_tostring(L, -1); /* [loaded, path, file] */
        if (luaL_loadfilex(L, file, "t") != LUA_OK)
            luaL_error(L, "error loading module '%s' from file '%s':\n\t%s", name, file,
                       lua_tostring(L, -1));
        lua_pushstring(L, name);
        lua_pushvalue(L, loaded + 2); /* [loaded, path, file, chunk, name, file] */
        lua_remove(L, loaded + 1);
        lua_remove(L, loaded + 1);
    }
    lua_call(L, 2, 1); /* [loaded, value] */
    if (!lua_isnil(L, -1))
        lua_setfield(L, loaded, name);
    else
        lua_pop(L, 1);
    if (lua_getfield(L, loaded, name) == LUA_TNIL) { /* the module set nothing: true */
        lua_pop(L, 1);
        lua_pushboolean(L, 1);
        lua_pushvalue(L, -1);
        lua_setfield(L, loaded, name);
    }
    lua_remove(L, loaded);
}

static int l_refused(lua_State *L)
{
    return luaL_error(L, "%s", lua_tostring(L, lua_upvalueindex(1)));
}

/* Replaces t[name] (t at index t) with a function raising why. */
static void refuse(lua_State *L, int t, const char *name, const char *why)
{
    lua_pushstring(L, why);
    lua_pushcclosure(L, l_refused, 1);
    lua_setfield(L, t, name);
}

static void remove_field(lua_State *L, int t, const char *name)
{
    lua_pushnil(L);
    lua_setfield(L, t, name);
}

void rs__gc_metatable(lua_State *L, const char *name, lua_CFunction gc)
{
    if (luaL_newmetatable(L, name)) {
        lua_pushcfunction(L, gc);
        lua_setfield(L, -2, "__gc");
    }
    lua_setmetatable(L, -2);
}

/* ---- opening ------------------------------------------------------------------------------ */

static const luaL_Reg global_fns[] = {{"emit", l_emit},
                                      {"write_error", l_write_error},
                                      {"write_warning", l_write_warning},
                                      {"write_verbose", l_write_verbose},
                                      {"write_debug", l_write_debug},
                                      {"write_information", l_write_information},
                                      {"write_progress", l_write_progress},
                                      {"print", l_write_information},
                                      {"sleep", l_sleep},
                                      {NULL, NULL}};

static const luaL_Reg shared_fns[] = {
    {"get", l_shared_get}, {"set", l_shared_set}, {"incr", l_shared_incr},
    {"add", l_shared_add}, {"cas", l_shared_cas}, {"keys", l_shared_keys},
    {NULL, NULL}};

static const luaL_Reg json_fns[] = {
    {"encode", l_json_encode}, {"decode", l_json_decode}, {"map", l_json_map}, {NULL, NULL}};

static const luaL_Reg time_fns[] = {
    {"now", l_time_now}, {"monotonic", l_time_monotonic}, {NULL, NULL}};

/* Creates a table of functions and binds it to a global; leaves it on the stack. */
static void new_lib(lua_State *L, const char *name, const luaL_Reg *fns, int nfields)
{
    int n = 0;
    while (fns[n].name)
        n++;
    lua_createtable(L, 0, n + nfields);
    luaL_setfuncs(L, fns, 0);
    lua_pushvalue(L, -1);
    lua_setglobal(L, name);
}

static void open_standard(lua_State *L, rs_profile profile)
{
    static const luaL_Reg common[] = {{LUA_GNAME, luaopen_base},
                                      {LUA_LOADLIBNAME, luaopen_package},
                                      {LUA_COLIBNAME, luaopen_coroutine},
                                      {LUA_TABLIBNAME, luaopen_table},
                                      {LUA_OSLIBNAME, luaopen_os},
                                      {LUA_STRLIBNAME, luaopen_string},
                                      {LUA_MATHLIBNAME, luaopen_math},
                                      {LUA_UTF8LIBNAME, luaopen_utf8},
                                      {NULL, NULL}};
    static const luaL_Reg full[] = {
        {LUA_IOLIBNAME, luaopen_io}, {LUA_DBLIBNAME, luaopen_debug}, {NULL, NULL}};
    for (const luaL_Reg *lib = common; lib->name; lib++) {
        luaL_requiref(L, lib->name, lib->func, 1);
        lua_pop(L, 1);
    }
    if (profile == RS_PROFILE_DEFAULT) {
        for (const luaL_Reg *lib = full; lib->name; lib++) {
            luaL_requiref(L, lib->name, lib->func, 1);
            lua_pop(L, 1);
        }
    }
}

/* Applies the profile's rules to the standard libraries. */
static void sandbox(lua_State *L, rs_profile profile)
{
    lua_pushglobaltable(L);
    int g = lua_gettop(L);
    /* setmetatable: see "code Lua runs with hooks off". */
    lua_pushcfunction(L, l_setmetatable);
    lua_setfield(L, g, "setmetatable");
    if (profile == RS_PROFILE_DEFAULT) {
        lua_getglobal(L, "debug");
        lua_pushcfunction(L, l_debug_setmetatable);
        lua_setfield(L, -2, "setmetatable");
        lua_pop(L, 1);
    }
    /* load: text chunks only, in every profile. */
    lua_pushcfunction(L, l_load);
    lua_setfield(L, g, "load");
    /* os: what acts on the whole process is refused in every profile. */
    lua_getglobal(L, "os");
    int os = lua_gettop(L);
    refuse(L, os, "exit",
           "os.exit is not available in a runspace: it would end the whole process (return or "
           "error() instead)");
    refuse(L, os, "setlocale",
           "os.setlocale is not available in a runspace: it would change every thread's locale");
    /* package: Lua files load as text only. */
    lua_getglobal(L, "package");
    int pkg = lua_gettop(L);
    lua_getfield(L, pkg, "path");
    lua_rawsetp(L, LUA_REGISTRYINDEX, &host_path_key);
    lua_getfield(L, pkg, "searchers");
    int searchers = lua_gettop(L);
    lua_pushvalue(L, pkg);
    lua_pushcclosure(L, l_search_lua, 1);
    lua_rawseti(L, searchers, 2);
    if (profile == RS_PROFILE_DEFAULT) {
        lua_pushcfunction(L, l_loadfile);
        lua_setfield(L, g, "loadfile");
        lua_pushcfunction(L, l_dofile);
        lua_setfield(L, g, "dofile");
    } else {
        remove_field(L, g, "loadfile");
        remove_field(L, g, "dofile");
        static const char *const os_removed[] = {"execute", "remove",  "rename",
                                                 "getenv",  "tmpname", NULL};
        for (int i = 0; os_removed[i]; i++)
            remove_field(L, os, os_removed[i]);
        /* require serves package.loaded and package.preload only: no searcher reads a file,
         * and nothing tells whether a file exists. */
        lua_pushcfunction(L, l_search_refused);
        lua_rawseti(L, searchers, 2);
        lua_pushnil(L);
        lua_rawseti(L, searchers, 4);
        lua_pushnil(L);
        lua_rawseti(L, searchers, 3);
        remove_field(L, pkg, "loadlib");
        remove_field(L, pkg, "searchpath");
        lua_pushliteral(L, "");
        lua_setfield(L, pkg, "path");
        lua_pushliteral(L, "");
        lua_setfield(L, pkg, "cpath");
    }
    lua_settop(L, g - 1);
}

void rs__lualib_open(lua_State *L, rs_runspace *rs)
{
    rs_profile profile = rs->iss->profile;
    open_standard(L, profile);
    open_finalizers(L);
    rs__open_pattern(L);
    sandbox(L, profile);
    rs__marshal_open(L);

    lua_pushglobaltable(L);
    luaL_setfuncs(L, global_fns, 0);
    lua_pop(L, 1);

    lua_getglobal(L, "coroutine");
    lua_pushcfunction(L, l_co_resume);
    lua_setfield(L, -2, "resume");
    lua_pushcfunction(L, l_co_wrap);
    lua_setfield(L, -2, "wrap");
    lua_pushcfunction(L, l_co_close);
    lua_setfield(L, -2, "close");
    lua_pop(L, 1);

    lua_getglobal(L, "math");
    lua_getfield(L, -1, "random");
    lua_setglobal(L, "random");
    lua_getfield(L, -1, "randomseed");
    lua_setglobal(L, "random_seed");
    lua_pop(L, 1);

    new_lib(L, "shared", shared_fns, 0);
    lua_pop(L, 1);
    new_lib(L, "json", json_fns, 1);
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lua_pop(L, 1);
    new_lib(L, "time", time_fns, 0);
    lua_pop(L, 1);

    lua_createtable(L, 0, 2);
    lua_pushinteger(L, (lua_Integer)rs->id);
    lua_setfield(L, -2, "id");
    lua_pushstring(L, rs->name);
    lua_setfield(L, -2, "name");
    lua_setglobal(L, "runspace");

    lua_newtable(L);
    lua_setglobal(L, "params");

    if (profile == RS_PROFILE_DEFAULT) {
        rs__open_fs(L);
        rs__open_proc(L);
        rs__open_exec(L);
        rs__open_net(L);
    }
}
