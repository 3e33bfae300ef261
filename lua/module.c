/*
 * module.c -- `require "runspace"`: the module's table, and what its files share (errors,
 * options tables, the session state built from them). See lrs.h for the rules every file of
 * the module keeps.
 */
#include "lrs.h"

#include <math.h>
#include <string.h>
#include <time.h>

int lrs_fail(lua_State *L, int code, const char *message)
{
    if (!message || !*message)
        message = rs_strerror(code);
    return luaL_error(L, "%s", message);
}

void lrs_new_class(lua_State *L, const char *name, const luaL_Reg *methods, const luaL_Reg *meta)
{
    luaL_newmetatable(L, name);
    lua_pushliteral(L, "runspace");
    lua_setfield(L, -2, "__metatable");
    lua_newtable(L);
    luaL_setfuncs(L, methods, 0);
    lua_setfield(L, -2, "__index");
    luaL_setfuncs(L, meta, 0);
    lua_pop(L, 1);
}

double lrs_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* A deadline this far away (seconds on the monotonic clock, some 31,000 years) is no deadline:
 * beyond it the conversion to a timespec would overflow. */
#define LRS_FOREVER 1e12

void lrs_cond_wait_until(pthread_cond_t *cv, pthread_mutex_t *mu, double deadline)
{
    if (deadline < 0 || !(deadline < LRS_FOREVER)) {
        pthread_cond_wait(cv, mu);
        return;
    }
    struct timespec ts;
    ts.tv_sec = (time_t)deadline;
    ts.tv_nsec = (long)((deadline - (double)ts.tv_sec) * 1e9);
    if (ts.tv_nsec >= 1000000000L)
        ts.tv_nsec = 999999999L;
    pthread_cond_timedwait(cv, mu, &ts);
}

double lrs_opt_timeout(lua_State *L, int arg)
{
    if (lua_isnoneornil(L, arg))
        return -1;
    double t = luaL_checknumber(L, arg);
    luaL_argcheck(L, !isnan(t), arg, "the timeout is not a number");
    return t < 0 || !(t < LRS_FOREVER) ? -1 : t;
}

double lrs_opt_seconds(lua_State *L, int t, const char *field)
{
    lua_getfield(L, t, field);
    if (lua_isnil(L, -1)) {
        lua_pop(L, 1);
        return -1;
    }
    if (!lua_isnumber(L, -1))
        luaL_error(L, "option '%s' must be a number of seconds (got %s)", field,
                   luaL_typename(L, -1));
    double s = lua_tonumber(L, -1);
    lua_pop(L, 1);
    if (isnan(s))
        luaL_error(L, "option '%s' must be a number of seconds (got nan)", field);
    return s < 0 || !(s < LRS_FOREVER) ? -1 : s;
}

lua_Integer lrs_opt_int(lua_State *L, int t, const char *field, lua_Integer def, lua_Integer max)
{
    lua_getfield(L, t, field);
    lua_Integer v = def;
    if (!lua_isnil(L, -1)) {
        int ok;
        v = lua_tointegerx(L, -1, &ok);
        if (!ok || v < 0 || v > max) {
            if (lua_type(L, -1) == LUA_TNUMBER)
                luaL_error(L, "option '%s' must be an integer from 0 to %I (got %s)", field, max,
                           lua_tostring(L, -1));
            luaL_error(L, "option '%s' must be an integer from 0 to %I (got %s)", field, max,
                       luaL_typename(L, -1));
        }
    }
    lua_pop(L, 1);
    return v;
}

double lrs_opt_number(lua_State *L, int t, const char *field, double def)
{
    lua_getfield(L, t, field);
    double v = def;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TNUMBER)
            luaL_error(L, "option '%s' must be a number (got %s)", field, luaL_typename(L, -1));
        v = lua_tonumber(L, -1);
        if (isnan(v) || v < 0)
            luaL_error(L, "option '%s' must be a number of seconds, not negative", field);
    }
    lua_pop(L, 1);
    return v;
}

const char *lrs_opt_lstring(lua_State *L, int t, const char *field, const char *def, size_t *len)
{
    lua_getfield(L, t, field);
    const char *v = def;
    *len = def ? strlen(def) : 0;
    if (!lua_isnil(L, -1)) {
        if (lua_type(L, -1) != LUA_TSTRING)
            luaL_error(L, "option '%s' must be a string (got %s)", field, luaL_typename(L, -1));
        v = lua_tolstring(L, -1, len); /* alive: the options table holds it */
    }
    lua_pop(L, 1);
    return v;
}

const char *lrs_opt_string(lua_State *L, int t, const char *field, const char *def)
{
    size_t len;
    const char *v = lrs_opt_lstring(L, t, field, def, &len);
    if (v && strlen(v) != len)
        luaL_error(L, "option '%s' holds a zero byte", field);
    return v;
}

int lrs_opt_bool(lua_State *L, int t, const char *field, int def)
{
    lua_getfield(L, t, field);
    int v = lua_isnil(L, -1) ? def : lua_toboolean(L, -1);
    lua_pop(L, 1);
    return v;
}

/* ---- the session state of options --------------------------------------------------------- */

#define LRS_ISS "runspace.iss"

static int iss_gc(lua_State *L)
{
    rs_iss **slot = luaL_checkudata(L, 1, LRS_ISS);
    rs_iss_destroy(*slot);
    *slot = NULL;
    return 0;
}

/* Raises the ISS's message for a failed mutator. */
static void iss_check(lua_State *L, rs_iss *iss, int rc)
{
    if (rc)
        lrs_fail(L, rc, rs_iss_errmsg(iss));
}

/* The string at idx, for a name or source the library takes as a C string: one holding a zero
 * byte is an error naming the option, never cut short. */
static const char *c_string(lua_State *L, int idx, const char *option)
{
    size_t len;
    const char *s = lua_tolstring(L, idx, &len);
    if (strlen(s) != len)
        luaL_error(L, "option '%s': a name or source holds a zero byte", option);
    return s;
}

void lrs_iss_from_opts(lua_State *L, int t, rs_iss **out)
{
    static const char *const fields[] = {"profile", "variables",    "functions", "modules",
                                         "memory",  "instructions", NULL};
    *out = NULL;
    /* Not quiet: what runs outside an invocation (a finalizer as a runspace closes) is shown
     * as the tasks' own records are, through the session state's host. */
    int any = !lrs_opt_bool(L, t, "quiet", 0);
    for (int i = 0; fields[i]; i++) {
        lua_getfield(L, t, fields[i]);
        any |= !lua_isnil(L, -1);
        lua_pop(L, 1);
    }
    if (!any)
        return;
    const char *pname = lrs_opt_string(L, t, "profile", "default");
    rs_profile profile = RS_PROFILE_DEFAULT;
    if (strcmp(pname, "default") == 0)
        profile = RS_PROFILE_DEFAULT;
    else if (strcmp(pname, "restricted") == 0)
        profile = RS_PROFILE_RESTRICTED;
    else
        luaL_error(L, "option 'profile' must be \"default\" or \"restricted\" (got \"%s\")", pname);
    rs_iss **slot = lua_newuserdatauv(L, sizeof *slot, 0);
    *slot = NULL;
    luaL_setmetatable(L, LRS_ISS);
    int rc = rs_iss_create(profile, slot);
    if (rc)
        lrs_fail(L, rc, NULL);
    rs_iss *iss = *slot;
    if (!lrs_opt_bool(L, t, "quiet", 0))
        iss_check(L, iss, rs_iss_set_host(iss, lrs_echo_host, NULL));
    int box = lua_gettop(L);
    rs_value **vbox = lrs_newbox(L);
    if (lua_getfield(L, t, "variables") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) != LUA_TSTRING)
                luaL_error(L, "option 'variables' must map names to values");
            const char *name = c_string(L, -2, "variables");
            char err[256];
            *vbox = lrs_to_value(L, -1, name, err, sizeof err);
            if (!*vbox)
                luaL_error(L, "variable %s", err);
            rc = rs_iss_set_variable(iss, name, *vbox);
            lrs_box_free(L, box + 1);
            iss_check(L, iss, rc);
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "option 'variables' must be a table");
    }
    lua_pop(L, 1);
    if (lua_getfield(L, t, "functions") == LUA_TTABLE) {
        lua_pushnil(L);
        while (lua_next(L, -2)) {
            if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING)
                luaL_error(L, "option 'functions' must map names to Lua source (strings)");
            iss_check(L, iss,
                      rs_iss_add_function(iss, c_string(L, -2, "functions"),
                                          c_string(L, -1, "functions")));
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "option 'functions' must be a table");
    }
    lua_pop(L, 1);
    if (lua_getfield(L, t, "modules") == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
                luaL_error(L, "option 'modules' must list module names or paths");
            iss_check(L, iss, rs_iss_add_module(iss, c_string(L, -1, "modules")));
            lua_pop(L, 1);
        }
    } else if (!lua_isnil(L, -1)) {
        luaL_error(L, "option 'modules' must be a table");
    }
    lua_pop(L, 1);
    rs_limits limits = {.memory_bytes = (size_t)lrs_opt_int(L, t, "memory", 0, LUA_MAXINTEGER),
                        .instructions =
                            (uint64_t)lrs_opt_int(L, t, "instructions", 0, LUA_MAXINTEGER)};
    iss_check(L, iss, rs_iss_set_limits(iss, &limits));
    lua_settop(L, box); /* the ISS's box stays, owning it */
    *out = iss;
}

/* rs.monotonic(): seconds on the monotonic clock, for timing (time.monotonic in a runspace). */
static int l_monotonic(lua_State *L)
{
    lua_pushnumber(L, lrs_now());
    return 1;
}

/* ---- the module's table ------------------------------------------------------------------- */

LUALIB_API int luaopen_runspace(lua_State *L) __attribute__((visibility("default")));

LUALIB_API int luaopen_runspace(lua_State *L)
{
    luaL_checkversion(L);
    luaL_newmetatable(L, LRS_ISS);
    lua_pushcfunction(L, iss_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
    lrs_value_open(L);
    lua_newtable(L);
    lua_pushstring(L, rs_version());
    lua_setfield(L, -2, "version");
    lua_pushcfunction(L, l_monotonic);
    lua_setfield(L, -2, "monotonic");
    /* rs.null: null inside tables, as json.null is inside a runspace. */
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    lrs_pool_open(L);
    lrs_foreach_open(L);
    lrs_jobs_open(L);
    lrs_shared_open(L);
    lrs_scan_open(L);
    return 1;
}
