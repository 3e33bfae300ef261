/*
 * jobs.c -- rs.jobs{...}: named background jobs (the job manager) from Lua.
 *
 * Every call goes straight to rs_jobs_*, which is thread-safe and blocks only in the waits,
 * each with the caller's timeout. Closing (jobs:close(), __close, __gc) stops the running
 * jobs and waits for them to stop.
 */
#include "lrs.h"

#include <string.h>

typedef struct lrs_jobs {
    rs_jobs *jobs;
    lrs_pool *pool; /* the pool object's, when one was given */
} lrs_jobs;

static lrs_jobs *check_jobs(lua_State *L)
{
    lrs_jobs *j = luaL_checkudata(L, 1, LRS_JOBS);
    if (!j->jobs)
        luaL_error(L, "the jobs manager is closed");
    return j;
}

static int jobs_fail(lua_State *L, lrs_jobs *j, int rc)
{
    return lrs_fail(L, rc, rs_jobs_errmsg(j->jobs));
}

/* rs.jobs{pool = p | max = N, profile = ..., ...} */
static int l_jobs(lua_State *L)
{
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lrs_jobs *j = lua_newuserdatauv(L, sizeof *j, 1);
    memset(j, 0, sizeof *j);
    luaL_setmetatable(L, LRS_JOBS);
    int self = lua_gettop(L);
    rs_jobs_opts o = {0};
    lrs_pool *p = NULL;
    lua_getfield(L, 1, "pool");
    if (!lua_isnil(L, -1)) {
        p = lrs_check_pool(L, -1);
        o.pool = lrs_pool_get(p);
        lua_setiuservalue(L, self, 1);
    } else {
        lua_pop(L, 1);
        rs_iss *iss;
        lrs_iss_from_opts(L, 1, &iss);
        o.iss = iss;
        o.max_jobs = (unsigned)lrs_opt_int(L, 1, "max", 0, LRS_MAX_RUNSPACES);
    }
    if (!lrs_quiet(L, 1, p))
        o.on_record = lrs_echo_job;
    int rc = rs_jobs_create(&o, &j->jobs);
    if (rc)
        return lrs_fail(L, rc, "cannot create the jobs manager");
    if (p) {
        lrs_pool_use(p);
        j->pool = p;
    }
    lua_pushvalue(L, self);
    return 1;
}

/* The job name at arg: a string without zero bytes (names are C strings). */
static const char *check_name(lua_State *L, int arg)
{
    size_t len;
    const char *name = luaL_checklstring(L, arg, &len);
    luaL_argcheck(L, strlen(name) == len, arg, "a job's name cannot hold a zero byte");
    return name;
}

/* jobs:start(script[, {name = ..., params = {...}}]): the job's name. */
static int jobs_start(lua_State *L)
{
    lrs_jobs *j = check_jobs(L);
    size_t len;
    const char *script = luaL_checklstring(L, 2, &len);
    luaL_argcheck(L, strlen(script) == len, 2, "a job's script cannot hold a zero byte");
    const char *name = NULL;
    lua_settop(L, 3);
    rs_value **box = lrs_newbox(L); /* index 4 */
    if (!lua_isnil(L, 3)) {
        luaL_checktype(L, 3, LUA_TTABLE);
        name = lrs_opt_string(L, 3, "name", NULL);
        if (lua_getfield(L, 3, "params") != LUA_TNIL) {
            if (!lua_istable(L, -1))
                return luaL_error(L, "option 'params' must be a table");
            char err[256];
            *box = lrs_to_value(L, -1, "params", err, sizeof err);
            if (!*box)
                return luaL_error(L, "%s", err);
            if (rs_value_type(*box) == RS_TARRAY && rs_array_len(*box) == 0) {
                rs_value_destroy(*box);
                *box = rs_value_map();
            }
        }
        lua_pop(L, 1);
    }
    const char *assigned = NULL;
    int rc = rs_jobs_start(j->jobs, name, script, *box, &assigned);
    lrs_box_free(L, 4);
    if (rc)
        return jobs_fail(L, j, rc);
    lua_pushstring(L, assigned);
    return 1;
}

static const char *job_state(rs_job_state s)
{
    switch (s) {
    case RS_JOB_RUNNING:
        return "running";
    case RS_JOB_COMPLETED:
        return "completed";
    case RS_JOB_COMPLETED_WITH_ERRORS:
        return "completed_with_errors";
    case RS_JOB_FAILED:
        return "failed";
    case RS_JOB_STOPPED:
        return "stopped";
    }
    return "unknown";
}

/* jobs:get(name): {name, state, result, errors, error, start, finish, duration}, or nil. */
static int jobs_get(lua_State *L)
{
    lrs_jobs *j = check_jobs(L);
    size_t len;
    const char *name = luaL_checklstring(L, 2, &len);
    if (strlen(name) != len)
        return 0; /* no job has such a name: start refuses them */
    rs_job_info info;
    int rc = rs_jobs_get(j->jobs, name, &info);
    if (rc == RS_ENOENT)
        return 0;
    if (rc)
        return jobs_fail(L, j, rc);
    /* The info's strings and result stay valid until the job is removed, which only this
     * thread could do: pushing them may raise, and holds nothing. */
    lua_createtable(L, 0, 8);
    lua_pushstring(L, info.name);
    lua_setfield(L, -2, "name");
    lua_pushstring(L, job_state(info.state));
    lua_setfield(L, -2, "state");
    if (info.result) {
        lrs_push_value(L, info.result);
        lua_setfield(L, -2, "result");
    }
    lua_pushinteger(L, (lua_Integer)info.error_count);
    lua_setfield(L, -2, "errors");
    if (info.error) {
        lua_pushstring(L, info.error);
        lua_setfield(L, -2, "error");
    }
    lua_pushnumber(L, info.start);
    lua_setfield(L, -2, "start");
    if (info.end > 0) {
        lua_pushnumber(L, info.end);
        lua_setfield(L, -2, "finish");
    }
    lua_pushnumber(L, info.duration);
    lua_setfield(L, -2, "duration");
    return 1;
}

/* jobs:list([filter]): names of "all" (default), "running" or "completed" jobs. */
static int jobs_list(lua_State *L)
{
    lrs_jobs *j = check_jobs(L);
    static const char *const filters[] = {"all", "running", "completed", NULL};
    rs_job_filter filter = (rs_job_filter)luaL_checkoption(L, 2, "all", filters);
    size_t cap = rs_jobs_list(j->jobs, filter, NULL, 0);
    const char **names = lua_newuserdatauv(L, (cap ? cap : 1) * sizeof *names, 0);
    size_t n = rs_jobs_list(j->jobs, filter, names, cap);
    if (n > cap)
        n = cap; /* jobs started in between (by another thread): the first cap */
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_pushstring(L, names[i]);
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int wait_result(lua_State *L, lrs_jobs *j, int rc)
{
    if (rc == RS_ETIMEDOUT) {
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        return 2;
    }
    if (rc)
        return jobs_fail(L, j, rc);
    lua_pushboolean(L, 1);
    return 1;
}

/* jobs:wait(name[, timeout]): true once it ended, or nil, "timeout". */
static int jobs_wait(lua_State *L)
{
    lrs_jobs *j = check_jobs(L);
    const char *name = check_name(L, 2);
    return wait_result(L, j, rs_jobs_wait(j->jobs, name, lrs_opt_timeout(L, 3)));
}

/* jobs:wait_all([timeout]) */
static int jobs_wait_all(lua_State *L)
{
    lrs_jobs *j = check_jobs(L);
    return wait_result(L, j, rs_jobs_wait_all(j->jobs, lrs_opt_timeout(L, 2)));
}

/* jobs:remove(name): stops it if it runs, and forgets it. */
static int jobs_remove(lua_State *L)
{
    lrs_jobs *j = check_jobs(L);
    int rc = rs_jobs_remove(j->jobs, check_name(L, 2));
    if (rc)
        return jobs_fail(L, j, rc);
    return 0;
}

static int jobs_close(lua_State *L)
{
    lrs_jobs *j = luaL_checkudata(L, 1, LRS_JOBS);
    if (j->jobs) {
        rs_jobs_destroy(j->jobs);
        j->jobs = NULL;
    }
    if (j->pool) {
        lrs_pool *p = j->pool;
        j->pool = NULL;
        lrs_pool_unuse(p);
    }
    return 0;
}

void lrs_jobs_open(lua_State *L)
{
    static const luaL_Reg methods[] = {{"start", jobs_start},       {"get", jobs_get},
                                       {"list", jobs_list},         {"wait", jobs_wait},
                                       {"wait_all", jobs_wait_all}, {"remove", jobs_remove},
                                       {"close", jobs_close},       {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", jobs_close}, {"__close", jobs_close}, {NULL, NULL}};
    lrs_new_class(L, LRS_JOBS, methods, meta);
    lua_pushcfunction(L, l_jobs);
    lua_setfield(L, -2, "jobs");
}
