/*
 * scan.c -- rs.scan{...}: the TCP connect scanner as a Lua iterator.
 *
 *   for r in rs.scan{targets = {"127.0.0.1"}, ports = "1-1024"} do print(r.port, r.state) end
 *
 * DESIGN. rs_scan_run blocks and calls on_result on its own thread, so it runs on a thread of
 * this module (the runner), which copies each result into a bounded ring under a mutex and
 * waits on `space_cv` when it is full. The Lua thread takes one result per step, waiting on
 * `lua_cv` for a result or the end, at most until the scan's time_limit, after which the
 * scan is stopped (rs_scan_stop) and the loop ends with what was decided. Closing (break,
 * error, __gc) stops the scan, drops further results and joins the runner.
 */
#include "lrs.h"

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define RESULT_CAP 512

typedef struct scan_res {
    char *host, *address, *reason;
    int port;
    rs_port_state state;
    double rtt;
    int attempts;
} scan_res;

typedef struct lrs_scan {
    rs_scan *scan;
    pthread_t runner;
    bool started, joined, finished;
    pthread_mutex_t mu;
    pthread_cond_t lua_cv, space_cv;
    scan_res ring[RESULT_CAP];
    size_t head, count;
    bool closing, done;
    int run_rc;
    char run_msg[512];
    rs_scan_summary summary;
    double deadline;
    bool stopped_by_limit;
    scan_res current;
} lrs_scan;

static void res_free(scan_res *r)
{
    free(r->host);
    free(r->address);
    free(r->reason);
    memset(r, 0, sizeof *r);
}

static void on_result(const rs_scan_result *r, void *ud)
{
    lrs_scan *s = ud;
    scan_res c = {.host = strdup(r->host ? r->host : ""),
                  .address = strdup(r->address ? r->address : ""),
                  .reason = strdup(r->reason ? r->reason : ""),
                  .port = r->port,
                  .state = r->state,
                  .rtt = r->rtt,
                  .attempts = r->attempts};
    pthread_mutex_lock(&s->mu);
    while (s->count == RESULT_CAP && !s->closing)
        pthread_cond_wait(&s->space_cv, &s->mu);
    if (s->closing) {
        pthread_mutex_unlock(&s->mu);
        res_free(&c);
        return;
    }
    s->ring[(s->head + s->count) % RESULT_CAP] = c;
    s->count++;
    pthread_cond_signal(&s->lua_cv);
    pthread_mutex_unlock(&s->mu);
}

static void *runner_main(void *arg)
{
    lrs_scan *s = arg;
    rs_scan_summary sum = {0};
    int rc = rs_scan_run(s->scan, &sum);
    pthread_mutex_lock(&s->mu);
    s->run_rc = rc;
    if (rc && rc != RS_ESTOPPED)
        snprintf(s->run_msg, sizeof s->run_msg, "%s", rs_scan_errmsg(s->scan));
    s->summary = sum;
    s->done = true;
    pthread_cond_signal(&s->lua_cv);
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

static void scan_free(lrs_scan *s)
{
    if (s->started && !s->joined) {
        pthread_mutex_lock(&s->mu);
        s->closing = true;
        pthread_cond_broadcast(&s->space_cv);
        pthread_mutex_unlock(&s->mu);
        rs_scan_stop(s->scan);
        pthread_join(s->runner, NULL);
    }
    for (size_t i = 0; i < s->count; i++)
        res_free(&s->ring[(s->head + i) % RESULT_CAP]);
    res_free(&s->current);
    rs_scan_destroy(s->scan);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->lua_cv);
    pthread_cond_destroy(&s->space_cv);
    free(s);
}

static int scan_gc(lua_State *L)
{
    lrs_scan **slot = luaL_checkudata(L, 1, LRS_SCAN);
    lrs_scan *s = *slot;
    *slot = NULL;
    if (s)
        scan_free(s);
    return 0;
}

static lrs_scan *check_scan(lua_State *L)
{
    lrs_scan **slot = luaL_checkudata(L, 1, LRS_SCAN);
    if (!*slot)
        luaL_error(L, "the scan is closed");
    return *slot;
}

static void push_result(lua_State *L, const scan_res *r)
{
    lua_createtable(L, 0, 7);
    lua_pushstring(L, r->host);
    lua_setfield(L, -2, "host");
    lua_pushstring(L, r->address);
    lua_setfield(L, -2, "address");
    lua_pushinteger(L, r->port);
    lua_setfield(L, -2, "port");
    lua_pushstring(L, rs_port_state_name(r->state));
    lua_setfield(L, -2, "state");
    lua_pushstring(L, r->reason);
    lua_setfield(L, -2, "reason");
    if (r->rtt >= 0) {
        lua_pushnumber(L, r->rtt);
        lua_setfield(L, -2, "rtt");
    }
    lua_pushinteger(L, r->attempts);
    lua_setfield(L, -2, "attempts");
}

/* One step: the next result, or nil at the end. */
static int scan_step(lua_State *L)
{
    lrs_scan *s = check_scan(L);
    if (s->finished)
        return 0;
    res_free(&s->current);
    pthread_mutex_lock(&s->mu);
    for (;;) {
        if (s->count) {
            s->current = s->ring[s->head];
            memset(&s->ring[s->head], 0, sizeof s->ring[0]);
            s->head = (s->head + 1) % RESULT_CAP;
            s->count--;
            pthread_cond_signal(&s->space_cv);
            break;
        }
        if (s->done) {
            pthread_mutex_unlock(&s->mu);
            pthread_join(s->runner, NULL);
            s->joined = true;
            s->finished = true;
            if (s->run_rc && s->run_rc != RS_ESTOPPED)
                return lrs_fail(L, s->run_rc, s->run_msg);
            return 0;
        }
        if (s->deadline >= 0 && !s->stopped_by_limit) {
            double left = s->deadline - lrs_now();
            if (left <= 0) {
                s->stopped_by_limit = true;
                rs_scan_stop(s->scan); /* thread-safe, does not block */
                continue;
            }
            lrs_cond_wait_until(&s->lua_cv, &s->mu, s->deadline);
        } else {
            pthread_cond_wait(&s->lua_cv, &s->mu);
        }
    }
    pthread_mutex_unlock(&s->mu);
    push_result(L, &s->current);
    res_free(&s->current);
    return 1;
}

/* scan:summary(): once the loop has ended, {hosts, probes, open, closed, filtered, errors,
 * elapsed}; nil before. */
static int scan_summary(lua_State *L)
{
    lrs_scan *s = check_scan(L);
    if (!s->finished)
        return 0;
    const rs_scan_summary *m = &s->summary;
    lua_createtable(L, 0, 7);
    lua_pushinteger(L, (lua_Integer)m->hosts);
    lua_setfield(L, -2, "hosts");
    lua_pushinteger(L, (lua_Integer)m->probes);
    lua_setfield(L, -2, "probes");
    lua_pushinteger(L, (lua_Integer)m->open);
    lua_setfield(L, -2, "open");
    lua_pushinteger(L, (lua_Integer)m->closed);
    lua_setfield(L, -2, "closed");
    lua_pushinteger(L, (lua_Integer)m->filtered);
    lua_setfield(L, -2, "filtered");
    lua_pushinteger(L, (lua_Integer)m->errors);
    lua_setfield(L, -2, "errors");
    lua_pushnumber(L, m->elapsed);
    lua_setfield(L, -2, "elapsed");
    return 1;
}

static int scan_stop(lua_State *L)
{
    rs_scan_stop(check_scan(L)->scan);
    return 0;
}

/* Adds a target spec, or a list of them, from the field `targets`. */
static void add_targets(lua_State *L, lrs_scan *s)
{
    const char *file = lrs_opt_string(L, 1, "targets_file", NULL);
    int t = lua_getfield(L, 1, "targets");
    int n = t == LUA_TTABLE ? (int)lua_rawlen(L, -1) : t == LUA_TNIL ? 0 : 1;
    if (t == LUA_TNIL && !file)
        luaL_error(L, "give the option 'targets' or 'targets_file' (or both)");
    if (t != LUA_TTABLE && t != LUA_TSTRING && t != LUA_TNIL)
        luaL_error(L, "option 'targets' must be a string or a list of strings");
    for (int i = 1; i <= n; i++) {
        if (t == LUA_TTABLE && lua_rawgeti(L, -1, i) != LUA_TSTRING)
            luaL_error(L, "option 'targets' must list strings");
        if (lua_rawlen(L, -1) != strlen(lua_tostring(L, -1)))
            luaL_error(L, "option 'targets': a target holds a zero byte");
        int rc = rs_scan_add_target(s->scan, lua_tostring(L, -1));
        if (rc)
            lrs_fail(L, rc, rs_scan_errmsg(s->scan));
        if (t == LUA_TTABLE)
            lua_pop(L, 1);
    }
    lua_pop(L, 1);
    if (file) {
        int rc = rs_scan_add_targets_file(s->scan, file);
        if (rc)
            lrs_fail(L, rc, rs_scan_errmsg(s->scan));
    }
}

/* rs.scan{targets = ..., ports = "22,80" | {22, 80}, timeout = s, tries = n, ...} */
static int l_scan(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    lrs_scan **slot = lua_newuserdatauv(L, sizeof *slot, 0);
    *slot = NULL;
    luaL_setmetatable(L, LRS_SCAN);
    int self = lua_gettop(L);
    lrs_scan *s = calloc(1, sizeof *s);
    if (!s)
        return luaL_error(L, "out of memory");
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    int bad = pthread_mutex_init(&s->mu, NULL) || pthread_cond_init(&s->lua_cv, &ca) ||
              pthread_cond_init(&s->space_cv, NULL);
    pthread_condattr_destroy(&ca);
    if (bad) {
        free(s);
        return luaL_error(L, "cannot create the scan's locks");
    }
    *slot = s;
    rs_scan_opts o = {.timeout = lrs_opt_number(L, 1, "timeout", 0),
                      .tries = (int)lrs_opt_int(L, 1, "tries", 0, INT32_MAX),
                      .max_inflight = (unsigned)lrs_opt_int(L, 1, "max_inflight", 0, UINT32_MAX),
                      .on_result = on_result,
                      .userdata = s};
    double limit = lrs_opt_seconds(L, 1, "time_limit");
    s->deadline = limit < 0 ? -1 : lrs_now() + limit;
    int rc = rs_scan_create(&o, &s->scan);
    if (rc)
        return lrs_fail(L, rc, "invalid scan options");
    add_targets(L, s);
    int t = lua_getfield(L, 1, "ports");
    if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        rc = rs_scan_add_ports(s->scan, lua_tostring(L, -1));
    } else if (t == LUA_TTABLE) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; !rc && i <= n; i++) {
            lua_rawgeti(L, -1, i);
            const char *spec =
                lua_isinteger(L, -1) || lua_type(L, -1) == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
            if (!spec)
                return luaL_error(L, "option 'ports' must list port numbers or ranges");
            rc = rs_scan_add_ports(s->scan, spec);
            lua_pop(L, 1);
        }
    } else if (t != LUA_TNIL) {
        return luaL_error(L, "option 'ports' must be a string or a list");
    }
    if (rc)
        return lrs_fail(L, rc, rs_scan_errmsg(s->scan));
    lua_pop(L, 1);
    if (pthread_create(&s->runner, NULL, runner_main, s))
        return luaL_error(L, "cannot start the scan: %s", strerror(errno));
    s->started = true;
    lua_pushvalue(L, self);
    lua_pushnil(L);
    lua_pushnil(L);
    lua_pushvalue(L, self);
    return 4;
}

void lrs_scan_open(lua_State *L)
{
    static const luaL_Reg methods[] = {
        {"stop", scan_stop}, {"summary", scan_summary}, {"close", scan_gc}, {NULL, NULL}};
    static const luaL_Reg meta[] = {
        {"__call", scan_step}, {"__gc", scan_gc}, {"__close", scan_gc}, {NULL, NULL}};
    lrs_new_class(L, LRS_SCAN, methods, meta);
    lua_pushcfunction(L, l_scan);
    lua_setfield(L, -2, "scan");
}
