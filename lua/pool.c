/*
 * pool.c -- rs.pool{...} and the handles of pool:begin(script, ...).
 *
 * DESIGN. A pool object is a userdata pointing at an lrs_pool, which owns the rs_pool. The
 * lrs_pool is reference-counted by its userdata, by every handle, shared-store object, jobs
 * manager and for-each run that uses it, so that whichever Lua collects last, the rs_pool is
 * destroyed after every invocation bound to it. Only the Lua state's thread touches these
 * structures: no library callback is used, waits are rs_async_wait on that thread.
 *
 * Invocations are reused: pool:begin takes an idle rs_ps that already holds the same script
 * (checked once, compiled once per runspace by the library) from a small cache, replaces its
 * arguments and begins it. When a handle has been waited for, its invocation's results are
 * moved into the handle and the invocation goes back to the cache.
 *
 * A handle collected (or closed) while its invocation runs stops it and leaves the rs_ps to
 * the pool as an orphan, freed once it has ended (reaped at the next pool:begin, and waited
 * for when the pool goes). pool:close(timeout) stops every invocation of the pool's handles
 * and waits for them within the timeout.
 */
#include "lrs.h"

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Idle invocations kept per pool, one per script. */
#define LRS_CACHE 16
/* Seconds a pool that is collected waits for stopped invocations to end before it gives up
 * and leaks them (a native command that ignores rs_call_stopping could hold one forever). */
#define LRS_TEARDOWN_WAIT 30.0

typedef struct lrs_handle lrs_handle;

typedef struct lrs_orphan {
    rs_ps *ps;
    rs_async *async;
} lrs_orphan;

struct lrs_pool {
    rs_pool *pool;
    int refs;
    int users; /* jobs managers and for-each runs running on it */
    bool closed;
    bool quiet; /* its tasks' print and warnings are not shown (rs.pool{quiet = true}) */
    /* Its handles keep what their tasks write for h:records() (rs.pool{records = true}).
     * Without it the invocations hand records on as they come (RS_PS_STREAM_RECORDS): a task
     * that prints without end holds no memory for it. */
    bool keep_records;
    struct {
        rs_ps *ps;
        char *src;
        size_t len;
    } cache[LRS_CACHE];
    int ncache;
    lrs_handle *live; /* begun, not yet harvested */
    lrs_orphan *orphans;
    size_t norphans, orphan_cap;
};

struct lrs_handle {
    lrs_pool *pool;
    rs_ps *ps; /* while the handle holds an invocation */
    rs_async *async;
    char *src;
    size_t len;
    bool begun, harvested;
    rs_ps_state state; /* once harvested */
    int code;
    char *msg;
    rs_value *output;
    rs_value *records; /* once harvested: an array of record maps, or NULL when none */
    bool records_lost; /* no memory to keep them */
    lrs_handle *prev, *next;
};

rs_pool *lrs_pool_get(lrs_pool *p)
{
    return p->pool;
}

bool lrs_quiet(lua_State *L, int t, const lrs_pool *p)
{
    lua_getfield(L, t, "quiet");
    bool given = !lua_isnil(L, -1);
    lua_pop(L, 1);
    return given || !p ? lrs_opt_bool(L, t, "quiet", 0) : p->quiet;
}

void lrs_pool_retain(lrs_pool *p)
{
    p->refs++;
}

void lrs_pool_use(lrs_pool *p)
{
    p->refs++;
    p->users++;
}

void lrs_pool_unuse(lrs_pool *p)
{
    p->users--;
    lrs_pool_release(p);
}

static void destroy_ended(rs_ps *ps, rs_async *async)
{
    rs_value *out = NULL;
    rs_ps_end_invoke(ps, async, &out);
    rs_value_destroy(out);
    rs_ps_destroy(ps);
}

/* Frees the orphans that have ended. */
static void reap(lrs_pool *p)
{
    size_t j = 0;
    for (size_t i = 0; i < p->norphans; i++) {
        if (rs_async_is_completed(p->orphans[i].async))
            destroy_ended(p->orphans[i].ps, p->orphans[i].async);
        else
            p->orphans[j++] = p->orphans[i];
    }
    p->norphans = j;
}

/* Waits for the orphans until deadline (< 0: none); true when none is left. */
static bool wait_orphans(lrs_pool *p, double deadline)
{
    while (p->norphans) {
        lrs_orphan *o = &p->orphans[p->norphans - 1];
        double left = deadline < 0 ? -1 : deadline - lrs_now();
        if (deadline >= 0 && left < 0)
            left = 0;
        if (rs_async_wait(o->async, left))
            return false;
        destroy_ended(o->ps, o->async);
        p->norphans--;
    }
    return true;
}

static void drop_cache(lrs_pool *p)
{
    for (int i = 0; i < p->ncache; i++) {
        rs_ps_destroy(p->cache[i].ps);
        free(p->cache[i].src);
    }
    p->ncache = 0;
}

void lrs_pool_release(lrs_pool *p)
{
    if (--p->refs > 0)
        return;
    reap(p);
    if (!wait_orphans(p, lrs_now() + LRS_TEARDOWN_WAIT)) {
        fprintf(stderr,
                "runspace: a collected pool still has %zu stopped invocation(s) "
                "running after %.0f s; leaving it running\n",
                p->norphans, LRS_TEARDOWN_WAIT);
        return;
    }
    drop_cache(p);
    free(p->orphans);
    rs_pool_destroy(p->pool);
    free(p);
}

/* ---- invocations and their cache ---------------------------------------------------------- */

/* An idle invocation of src on the pool: from the cache, or new. On failure, returns NULL and
 * writes the message to err. */
static rs_ps *take_ps(lrs_pool *p, const char *src, size_t len, int *code, char *err,
                      size_t errsize)
{
    for (int i = 0; i < p->ncache; i++) {
        if (p->cache[i].len == len && memcmp(p->cache[i].src, src, len) == 0) {
            rs_ps *ps = p->cache[i].ps;
            free(p->cache[i].src);
            p->cache[i] = p->cache[--p->ncache];
            return ps;
        }
    }
    rs_ps *ps = NULL;
    int rc = rs_ps_create(&ps);
    if (!rc)
        rc = rs_ps_set_pool(ps, p->pool);
    if (!rc)
        rc = rs_ps_add_script(ps, src, len);
    if (!rc) {
        rs_ps_opts o = {.flags = p->keep_records ? 0 : RS_PS_STREAM_RECORDS,
                        .on_record = p->quiet ? NULL : lrs_echo_ps};
        rc = rs_ps_set_opts(ps, &o);
    }
    if (rc) {
        snprintf(err, errsize, "%s", ps ? rs_ps_errmsg(ps) : rs_strerror(rc));
        if (!err[0])
            snprintf(err, errsize, "%s", rs_strerror(rc));
        rs_ps_destroy(ps);
        *code = rc;
        return NULL;
    }
    return ps;
}

/* Puts an idle invocation back in the cache (src taken), or frees both. */
static void give_back(lrs_pool *p, rs_ps *ps, char *src, size_t len)
{
    if (!p->closed && p->ncache < LRS_CACHE && rs_ps_clear_arguments(ps) == 0) {
        p->cache[p->ncache].ps = ps;
        p->cache[p->ncache].src = src;
        p->cache[p->ncache].len = len;
        p->ncache++;
        return;
    }
    rs_ps_destroy(ps);
    free(src);
}

static void unlink_live(lrs_handle *h)
{
    if (h->prev)
        h->prev->next = h->next;
    else if (h->pool->live == h)
        h->pool->live = h->next;
    if (h->next)
        h->next->prev = h->prev;
    h->prev = h->next = NULL;
}

/* Moves the results of the ended invocation into the handle and gives the invocation back. */
static void harvest(lrs_handle *h)
{
    rs_value *out = NULL;
    h->code = rs_ps_end_invoke(h->ps, h->async, &out);
    h->state = rs_ps_get_state(h->ps);
    if (h->code) {
        const char *m = rs_ps_errmsg(h->ps);
        h->msg = strdup(m && *m ? m : rs_strerror(h->code));
    }
    h->output = out;
    if (h->pool->keep_records)
        h->records = lrs_take_records(h->ps, &h->records_lost);
    h->harvested = true;
    unlink_live(h);
    give_back(h->pool, h->ps, h->src, h->len);
    h->ps = NULL;
    h->src = NULL;
    h->async = NULL;
}

/* Lets go of the handle's invocation: harvested if ended, else stopped and left to the pool. */
static void let_go(lrs_handle *h)
{
    if (!h->ps)
        return;
    if (!h->begun) {
        give_back(h->pool, h->ps, h->src, h->len);
    } else if (rs_async_is_completed(h->async)) {
        harvest(h);
        return;
    } else {
        rs_ps_begin_stop(h->ps);
        unlink_live(h);
        lrs_pool *p = h->pool;
        if (p->norphans == p->orphan_cap) {
            size_t cap = p->orphan_cap ? 2 * p->orphan_cap : 8;
            lrs_orphan *o = realloc(p->orphans, cap * sizeof *o);
            if (o) {
                p->orphans = o;
                p->orphan_cap = cap;
            }
        }
        if (p->norphans < p->orphan_cap) {
            p->orphans[p->norphans++] = (lrs_orphan){h->ps, h->async};
        } else { /* no memory to remember it: wait for the stop here */
            rs_async_wait(h->async, -1);
            destroy_ended(h->ps, h->async);
        }
        free(h->src);
    }
    h->ps = NULL;
    h->src = NULL;
    h->async = NULL;
}

/* ---- pool objects ------------------------------------------------------------------------- */

static lrs_pool *test_pool(lua_State *L, int idx)
{
    lrs_pool **slot = luaL_testudata(L, idx, LRS_POOL);
    if (!slot)
        luaL_error(L, "expected a pool (rs.pool{...}), got %s", luaL_typename(L, idx));
    if (!*slot)
        luaL_error(L, "the pool is closed");
    return *slot;
}

lrs_pool *lrs_check_pool(lua_State *L, int idx)
{
    lrs_pool *p = test_pool(L, idx);
    if (p->closed)
        luaL_error(L, "the pool is closed");
    return p;
}

/* rs.pool{max = N, min = N, idle_timeout = S, shared = store, profile = ..., ...} */
static int l_pool(lua_State *L)
{
    if (lua_isnoneornil(L, 1))
        lua_newtable(L);
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lrs_pool **slot = lua_newuserdatauv(L, sizeof *slot, 0);
    *slot = NULL;
    luaL_setmetatable(L, LRS_POOL);
    lrs_pool *p = calloc(1, sizeof *p);
    if (!p)
        return luaL_error(L, "out of memory");
    p->refs = 1;
    *slot = p;
    rs_pool_opts o = {0};
    p->quiet = lrs_opt_bool(L, 1, "quiet", 0);
    p->keep_records = lrs_opt_bool(L, 1, "records", 0);
    o.max_runspaces = (unsigned)lrs_opt_int(L, 1, "max", 0, LRS_MAX_RUNSPACES);
    o.min_runspaces = (unsigned)lrs_opt_int(L, 1, "min", 0, LRS_MAX_RUNSPACES);
    lua_getfield(L, 1, "idle_timeout");
    bool idle_given = !lua_isnil(L, -1);
    lua_pop(L, 1);
    if (idle_given) /* negative or math.huge: idle runspaces are never closed */
        o.idle_timeout = lrs_opt_seconds(L, 1, "idle_timeout");
    lua_getfield(L, 1, "shared");
    if (!lua_isnil(L, -1) && !(o.shared = lrs_shared_test(L, -1)))
        return luaL_error(L, "option 'shared' must be a store of rs.shared()");
    lua_pop(L, 1);
    rs_iss *iss;
    lrs_iss_from_opts(L, 1, &iss); /* pushes its box when there is one */
    o.iss = iss;
    int rc = rs_pool_create(&o, &p->pool);
    if (rc)
        return lrs_fail(L, rc,
                        rc == RS_EINVAL ? "option 'min' is greater than option 'max'" : NULL);
    rc = rs_pool_open(p->pool);
    if (rc)
        return lrs_fail(L, rc, rs_pool_errmsg(p->pool));
    lua_settop(L, 2);
    return 1;
}

static int pool_gc(lua_State *L)
{
    lrs_pool **slot = luaL_checkudata(L, 1, LRS_POOL);
    if (*slot) {
        lrs_pool *p = *slot;
        *slot = NULL;
        /* Handles keep the pool object alive: none is live here unless Lua is closing, and
         * then each is stopped by its own finalizer. */
        lrs_pool_release(p);
    }
    return 0;
}

/* pool:close([timeout]): stops what the pool's handles run, waits for it, closes the pool.
 * true, or nil, "timeout" (the pool stays open, its invocations told to stop). */
static int pool_close(lua_State *L)
{
    lrs_pool *p = test_pool(L, 1);
    double timeout = lrs_opt_timeout(L, 2);
    if (p->closed) {
        lua_pushboolean(L, 1);
        return 1;
    }
    if (p->users)
        return luaL_error(L,
                          "the pool is in use by %d jobs manager(s) or for-each run(s): "
                          "close them first",
                          p->users);
    double deadline = timeout < 0 ? -1 : lrs_now() + timeout;
    for (lrs_handle *h = p->live; h; h = h->next)
        rs_ps_begin_stop(h->ps);
    while (p->live) {
        lrs_handle *h = p->live;
        double left = deadline < 0 ? -1 : deadline - lrs_now();
        if (deadline >= 0 && left < 0)
            left = 0;
        if (rs_async_wait(h->async, left)) {
            lua_pushnil(L);
            lua_pushliteral(L, "timeout");
            return 2;
        }
        harvest(h);
    }
    if (!wait_orphans(p, deadline)) {
        lua_pushnil(L);
        lua_pushliteral(L, "timeout");
        return 2;
    }
    p->closed = true;
    drop_cache(p);
    int rc = rs_pool_close(p->pool);
    if (rc)
        return lrs_fail(L, rc, rs_pool_errmsg(p->pool));
    lua_pushboolean(L, 1);
    return 1;
}

/* __close (`local pool <close> = rs.pool{}`): pool:close() without a timeout. */
static int pool_toclose(lua_State *L)
{
    lua_settop(L, 1);
    return pool_close(L);
}

/* pool:begin(script, ...): runs script on the pool with the arguments (copied) as `...`. */
static int pool_begin(lua_State *L)
{
    lrs_pool *p = lrs_check_pool(L, 1);
    size_t len;
    const char *src = luaL_checklstring(L, 2, &len);
    int nargs = lua_gettop(L) - 2;
    reap(p);
    lrs_handle *h = lua_newuserdatauv(L, sizeof *h, 1);
    memset(h, 0, sizeof *h);
    luaL_setmetatable(L, LRS_HANDLE);
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1); /* the pool object lives while its handles do */
    h->pool = p;
    lrs_pool_retain(p);
    h->src = malloc(len ? len : 1);
    if (!h->src)
        return luaL_error(L, "out of memory");
    memcpy(h->src, src, len);
    h->len = len;
    char err[512];
    int code = 0;
    h->ps = take_ps(p, src, len, &code, err, sizeof err);
    if (!h->ps)
        return lrs_fail(L, code, err);
    for (int i = 0; i < nargs; i++) {
        char why[400];
        rs_value *v = lrs_to_value(L, 3 + i, "", why, sizeof why); /* named on failure only */
        int rc = v ? rs_ps_add_argument(h->ps, v) : RS_EVALUE;
        if (rc) {
            if (v)
                snprintf(err, sizeof err, "%s", rs_ps_errmsg(h->ps));
            else
                snprintf(err, sizeof err, "argument %d%s", i + 1, why);
            rs_ps_clear_arguments(h->ps);
            return lrs_fail(L, rc, err);
        }
    }
    int rc = rs_ps_begin_invoke(h->ps, &h->async);
    if (rc)
        return lrs_fail(L, rc, rs_ps_errmsg(h->ps));
    h->begun = true;
    h->next = p->live;
    if (p->live)
        p->live->prev = h;
    p->live = h;
    return 1;
}

static int pool_shared(lua_State *L)
{
    lrs_pool *p = lrs_check_pool(L, 1);
    lrs_shared_push(L, rs_pool_shared(p->pool));
    lua_pushvalue(L, 1);
    lua_setiuservalue(L, -2, 1); /* the store is the pool's: keep the pool */
    return 1;
}

/* pool:max([n]), pool:min([n]): the limit, set first when n is given. */
static int pool_limit(lua_State *L, bool max)
{
    lrs_pool *p = lrs_check_pool(L, 1);
    if (!lua_isnoneornil(L, 2)) {
        lua_Integer n = luaL_checkinteger(L, 2);
        luaL_argcheck(L, n >= 0 && n <= LRS_MAX_RUNSPACES, 2, "out of range");
        int rc =
            max ? rs_pool_set_max(p->pool, (unsigned)n) : rs_pool_set_min(p->pool, (unsigned)n);
        if (rc)
            return lrs_fail(L, rc, rs_pool_errmsg(p->pool));
    }
    lua_pushinteger(L, max ? rs_pool_get_max(p->pool) : rs_pool_get_min(p->pool));
    return 1;
}

static int pool_max(lua_State *L)
{
    return pool_limit(L, true);
}

static int pool_min(lua_State *L)
{
    return pool_limit(L, false);
}

static int pool_available(lua_State *L)
{
    lrs_pool *p = lrs_check_pool(L, 1);
    lua_pushinteger(L, rs_pool_available(p->pool));
    return 1;
}

/* pool:runspaces(): a list of {id, name, state, availability, memory}. */
static int pool_runspaces(lua_State *L)
{
    lrs_pool *p = lrs_check_pool(L, 1);
    size_t cap = rs_pool_runspaces(p->pool, NULL, 0);
    rs_runspace_info *rows = lua_newuserdatauv(L, (cap ? cap : 1) * sizeof *rows, 0);
    size_t n = rs_pool_runspaces(p->pool, rows, cap);
    if (n > cap)
        n = cap; /* runspaces opened in between: the first cap rows */
    lua_createtable(L, (int)n, 0);
    for (size_t i = 0; i < n; i++) {
        lua_createtable(L, 0, 5);
        lua_pushinteger(L, (lua_Integer)rows[i].id);
        lua_setfield(L, -2, "id");
        lua_pushstring(L, rows[i].name);
        lua_setfield(L, -2, "name");
        lua_pushstring(L, rs_runspace_state_name(rows[i].state));
        lua_setfield(L, -2, "state");
        lua_pushstring(L, rs_availability_name(rows[i].availability));
        lua_setfield(L, -2, "availability");
        lua_pushinteger(L, (lua_Integer)rows[i].memory_bytes);
        lua_setfield(L, -2, "memory");
        lua_rawseti(L, -2, (lua_Integer)i + 1);
    }
    return 1;
}

static int pool_tostring(lua_State *L)
{
    lrs_pool **slot = luaL_checkudata(L, 1, LRS_POOL);
    if (!*slot || (*slot)->closed)
        lua_pushliteral(L, "runspace.pool (closed)");
    else
        lua_pushfstring(L, "runspace.pool (%d of %d runspaces available)",
                        (int)rs_pool_available((*slot)->pool), (int)rs_pool_get_max((*slot)->pool));
    return 1;
}

/* ---- handles ------------------------------------------------------------------------------ */

static lrs_handle *handle_of(lua_State *L)
{
    return luaL_checkudata(L, 1, LRS_HANDLE);
}

/* The handle at 1 for its methods: one already finalized (reached again from another
 * finalizer as the Lua state closes) has nothing left to give. */
static lrs_handle *check_handle(lua_State *L)
{
    lrs_handle *h = handle_of(L);
    if (!h->pool)
        luaL_error(L, "the handle was collected");
    return h;
}

static const char *state_name(rs_ps_state s)
{
    switch (s) {
    case RS_PS_NOT_STARTED:
        return "notstarted";
    case RS_PS_RUNNING:
        return "running";
    case RS_PS_STOPPING:
        return "stopping";
    case RS_PS_STOPPED:
        return "stopped";
    case RS_PS_COMPLETED:
        return "completed";
    case RS_PS_FAILED:
        return "failed";
    }
    return "unknown";
}

/* h:wait([timeout]): the script's results as values; raises its error; nil, "timeout". */
static int handle_wait(lua_State *L)
{
    lrs_handle *h = check_handle(L);
    double timeout = lrs_opt_timeout(L, 2);
    if (!h->harvested) {
        if (!h->ps)
            return luaL_error(L, "the handle is closed");
        if (rs_async_wait(h->async, timeout) == RS_ETIMEDOUT) {
            lua_pushnil(L);
            lua_pushliteral(L, "timeout");
            return 2;
        }
        harvest(h);
    }
    if (h->code)
        return lrs_fail(L, h->code, h->msg);
    size_t n = rs_array_len(h->output);
    if (n > (size_t)INT32_MAX || !lua_checkstack(L, (int)n + LUA_MINSTACK))
        return luaL_error(L, "too many results (%zu)", n);
    for (size_t i = 0; i < n; i++)
        lrs_push_value(L, rs_array_get(h->output, i));
    return (int)n;
}

/* h:stop([timeout]): true once stopped (or ended anyway), or nil, "timeout". */
static int handle_stop(lua_State *L)
{
    lrs_handle *h = check_handle(L);
    double timeout = lrs_opt_timeout(L, 2);
    if (!h->harvested && h->ps) {
        rs_ps_begin_stop(h->ps);
        if (rs_async_wait(h->async, timeout) == RS_ETIMEDOUT) {
            lua_pushnil(L);
            lua_pushliteral(L, "timeout");
            return 2;
        }
        harvest(h);
    }
    lua_pushboolean(L, 1);
    return 1;
}

static int handle_state(lua_State *L)
{
    lrs_handle *h = check_handle(L);
    rs_ps_state s = h->harvested ? h->state : h->ps ? rs_ps_get_state(h->ps) : RS_PS_STOPPED;
    lua_pushstring(L, state_name(s));
    return 1;
}

static int handle_done(lua_State *L)
{
    lrs_handle *h = check_handle(L);
    lua_pushboolean(L, h->harvested || !h->ps || rs_async_is_completed(h->async));
    return 1;
}

/* h:error(): the message of a failed or stopped invocation once ended, else nil. */
static int handle_error(lua_State *L)
{
    lrs_handle *h = check_handle(L);
    if (!h->harvested && h->ps && rs_async_is_completed(h->async))
        harvest(h);
    if (h->harvested && h->code)
        lua_pushstring(L, h->msg ? h->msg : rs_strerror(h->code));
    else
        lua_pushnil(L);
    return 1;
}

/* h:records([stream]): once ended, what the script wrote besides its values, in order: tables
 * {stream, message, source, line, time, ...}, all streams or one ("warning"...); while it
 * runs, nil, "running". Only on a pool made with records = true: other pools keep nothing,
 * so that memory stays flat however much a task prints. */
static int handle_records(lua_State *L)
{
    static const char *const streams[] = {"all",   "error",       "warning",  "verbose",
                                          "debug", "information", "progress", NULL};
    lrs_handle *h = check_handle(L);
    int which = luaL_checkoption(L, 2, "all", streams);
    if (!h->pool->keep_records)
        return luaL_error(L, "h:records(): this pool does not keep records; create it with "
                             "rs.pool{records = true}");
    if (!h->harvested && h->ps && rs_async_is_completed(h->async))
        harvest(h);
    if (!h->harvested) {
        if (!h->ps)
            return luaL_error(L, "the handle is closed");
        lua_pushnil(L);
        lua_pushliteral(L, "running");
        return 2;
    }
    if (h->records_lost)
        return luaL_error(L, "out of memory: the records of this invocation were not kept");
    lua_createtable(L, h->records ? (int)rs_array_len(h->records) : 0, 0);
    size_t n = h->records ? rs_array_len(h->records) : 0;
    lua_Integer k = 0;
    for (size_t i = 0; i < n; i++) {
        const rs_value *r = rs_array_get(h->records, i);
        if (which &&
            strcmp(rs_value_get_string(rs_map_get(r, "stream"), NULL), streams[which]) != 0)
            continue;
        lrs_push_value(L, r);
        lua_rawseti(L, -2, ++k);
    }
    return 1;
}

/* h:fd(): a descriptor that polls readable once the invocation ended (for poll loops). */
static int handle_fd(lua_State *L)
{
    lrs_handle *h = check_handle(L);
    if (h->harvested || !h->ps)
        return luaL_error(L, "the invocation has been waited for");
    int fd = rs_async_fd(h->async);
    if (fd < 0)
        return luaL_error(L, "no descriptor for the handle");
    lua_pushinteger(L, fd);
    return 1;
}

/* __close (`local h <close> = pool:begin(...)`): a running invocation is stopped and left
 * to the pool; results already waited for stay readable. */
static int handle_close(lua_State *L)
{
    lrs_handle *h = handle_of(L);
    if (h->pool)
        let_go(h);
    return 0;
}

/* __gc: as __close, then the results and the pool go. */
static int handle_collect(lua_State *L)
{
    lrs_handle *h = handle_of(L);
    if (!h->pool)
        return 0;
    let_go(h);
    free(h->src); /* a handle whose begin failed before it got an invocation */
    h->src = NULL;
    free(h->msg);
    h->msg = NULL;
    rs_value_destroy(h->output);
    h->output = NULL;
    rs_value_destroy(h->records);
    h->records = NULL;
    lrs_pool *p = h->pool;
    h->pool = NULL;
    lrs_pool_release(p);
    return 0;
}

static int handle_tostring(lua_State *L)
{
    if (!handle_of(L)->pool) {
        lua_pushliteral(L, "runspace.handle (collected)");
        return 1;
    }
    handle_state(L);
    lua_pushfstring(L, "runspace.handle (%s)", lua_tostring(L, -1));
    return 1;
}

void lrs_pool_open(lua_State *L)
{
    static const luaL_Reg pool_methods[] = {{"begin", pool_begin},
                                            {"close", pool_close},
                                            {"shared", pool_shared},
                                            {"max", pool_max},
                                            {"min", pool_min},
                                            {"available", pool_available},
                                            {"runspaces", pool_runspaces},
                                            {NULL, NULL}};
    static const luaL_Reg handle_methods[] = {{"wait", handle_wait},       {"stop", handle_stop},
                                              {"state", handle_state},     {"done", handle_done},
                                              {"error", handle_error},     {"fd", handle_fd},
                                              {"records", handle_records}, {NULL, NULL}};
    static const luaL_Reg pool_meta[] = {
        {"__gc", pool_gc}, {"__close", pool_toclose}, {"__tostring", pool_tostring}, {NULL, NULL}};
    static const luaL_Reg handle_meta[] = {{"__gc", handle_collect},
                                           {"__close", handle_close},
                                           {"__tostring", handle_tostring},
                                           {NULL, NULL}};
    lrs_new_class(L, LRS_POOL, pool_methods, pool_meta);
    lrs_new_class(L, LRS_HANDLE, handle_methods, handle_meta);
    lua_pushcfunction(L, l_pool);
    lua_setfield(L, -2, "pool");
}
