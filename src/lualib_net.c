/*
 * lualib_net.c -- the `net` built-ins of the default profile (docs/design.md section 4) over the
 * scanner (scan.c):
 *
 *   net.probe(host, port [, timeout_ms])  -> state, reason, rtt_ms (nil without an answer)
 *   net.scan{hosts=, ports=, timeout=, retries=, max_inflight=, force=}
 *                                         -> array of {host, address, port, state, reason, rtt_ms}
 *   net.resolve(name)                     -> array of addresses, or nil and the reason
 *
 * A scan is C memory that a Lua error must not leak, so it lives in a userdata whose __gc
 * destroys it. Nothing raises while a scan runs: each record is added to the result table in
 * a protected call, and a failure there stops the scan and is raised once it has ended. A stop
 * or timeout of the invocation interrupts the engine's wait (the interrupt signal, see
 * rs__scan_set_interrupt) and is raised with rs__exec_raise once the scan has returned, its
 * sockets closed and its threads joined.
 */
#include "syslib.h"

#include "marshal.h"
#include "scan_int.h"

#include <lauxlib.h>

#include <stdio.h>
#include <string.h>

#define SCAN_META "runspace.net.scan"

typedef struct box {
    rs_scan *scan;
} box;

/* Where the results of a running scan go. */
typedef struct sink {
    lua_State *L;
    rs_scan *scan;
    int add;             /* net.scan: stack index of the function that adds a record */
    int error;           /* net.scan: stack index that receives a failed addition's error */
    lua_Integer records; /* net.scan: records added */
    bool failed;
    /* net.probe: the one result */
    rs_port_state state;
    char reason[128];
    double rtt;
} sink;

/* __gc of a scan's box: a scan a Lua error left behind is destroyed here. */
static int box_gc(lua_State *L)
{
    box *b = luaL_checkudata(L, 1, SCAN_META);
    rs_scan_destroy(b->scan);
    b->scan = NULL;
    return 0;
}

/* Pushes a userdata owning a new scan; raises when it cannot be created. */
static rs_scan *new_scan(lua_State *L, const rs_scan_opts *opts, const char *fname)
{
    box *b = lua_newuserdatauv(L, sizeof *b, 0);
    b->scan = NULL;
    rs__gc_metatable(L, SCAN_META, box_gc);
    int rc = rs_scan_create(opts, &b->scan);
    if (rc)
        luaL_error(L, "net.%s: %s", fname, rs_strerror(rc));
    return b->scan;
}

/* Destroys the scan of the box at idx now rather than at the next collection. */
static void drop_scan(lua_State *L, int idx)
{
    box *b = lua_touserdata(L, idx);
    rs_scan_destroy(b->scan);
    b->scan = NULL;
}

/* Protected: appends record arg 1 (a light rs_scan_result) at index arg 2 of upvalue 1. */
static int add_record(lua_State *L)
{
    const rs_scan_result *r = lua_touserdata(L, 1);
    lua_Integer i = lua_tointeger(L, 2);
    lua_createtable(L, 0, 6);
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
        lua_pushnumber(L, r->rtt * 1e3);
        lua_setfield(L, -2, "rtt_ms");
    }
    lua_rawseti(L, lua_upvalueindex(1), i);
    return 0;
}

/* rs_scan_fn: on the thread running the script, inside rs_scan_run. */
static void on_result(const rs_scan_result *r, void *userdata)
{
    sink *k = userdata;
    if (!k->add) {
        k->state = r->state;
        snprintf(k->reason, sizeof k->reason, "%s", r->reason);
        k->rtt = r->rtt;
        return;
    }
    if (k->failed)
        return;
    lua_State *L = k->L;
    lua_pushvalue(L, k->add);
    lua_pushlightuserdata(L, (void *)r);
    lua_pushinteger(L, ++k->records);
    if (lua_pcall(L, 2, 0, 0) != LUA_OK) {
        lua_replace(L, k->error);
        k->failed = true;
        rs_scan_stop(k->scan);
    }
}

/* The scan's interruption check: the invocation's stop or timeout. */
static int exec_due(void *ctx)
{
    return rs__exec_due(ctx);
}

/* Runs the scan with the invocation's stop and timeout wired in. Raises the interruption, the
 * error of a record that could not be added, or the scan's own error. */
static void run(lua_State *L, rs_scan *scan, sink *k, const char *fname)
{
    rs__exec *ex = rs__exec_current();
    bool script = ex && ex->L;
    if (script)
        rs__scan_set_interrupt(scan, rs__interrupt_signal(), exec_due, ex);
    int rc = rs_scan_run(scan, NULL);
    int why = script ? rs__exec_due(ex) : 0;
    if (why)
        rs__exec_raise(L, ex, why);
    if (k->failed) {
        lua_pushvalue(L, k->error);
        lua_error(L);
    }
    if (rc)
        luaL_error(L, "net.%s: %s", fname, rs_scan_errmsg(scan));
}

/* net.probe(host, port [, timeout_ms]) */
static int l_probe(lua_State *L)
{
    const char *host = luaL_checkstring(L, 1);
    lua_Integer port = luaL_checkinteger(L, 2);
    lua_Number ms = luaL_optnumber(L, 3, 0);
    luaL_argcheck(L, port >= 1 && port <= 65535, 2, "port must be 1-65535");
    luaL_argcheck(L, ms >= 0, 3, "timeout must be a non-negative number of milliseconds");
    lua_settop(L, 3);
    sink k = {.L = L};
    rs_scan_opts o = {
        .timeout = ms / 1e3, .max_inflight = 1, .on_result = on_result, .userdata = &k};
    rs_scan *scan = new_scan(L, &o, "probe");
    k.scan = scan;
    char ports[8];
    snprintf(ports, sizeof ports, "%d", (int)port);
    if (rs_scan_add_target(scan, host) || rs_scan_add_ports(scan, ports))
        return luaL_error(L, "net.probe: %s", rs_scan_errmsg(scan));
    if (rs_scan_probe_count(scan) != 1)
        return luaL_error(L, "net.probe: '%s' is more than one host (net.scan takes blocks)", host);
    run(L, scan, &k, "probe");
    drop_scan(L, 4);
    lua_pushstring(L, rs_port_state_name(k.state));
    lua_pushstring(L, k.reason);
    if (k.rtt >= 0)
        lua_pushnumber(L, k.rtt * 1e3);
    else
        lua_pushnil(L);
    return 3;
}

/* An optional non-negative number field of the options table at index 1. */
static lua_Number opt_field(lua_State *L, const char *name, const char *what)
{
    int type = lua_getfield(L, 1, name);
    lua_Number v = 0;
    if (type != LUA_TNIL) {
        int isnum;
        v = lua_tonumberx(L, -1, &isnum);
        if (!isnum || !(v >= 0))
            luaL_error(L, "net.scan: %s must be %s", name, what);
    }
    lua_pop(L, 1);
    return v;
}

/* Adds the targets of a string: specs separated by commas or white space. */
static void add_hosts_text(lua_State *L, rs_scan *scan, const char *text)
{
    static const char sep[] = ", \t\r\n";
    for (const char *s = text + strspn(text, sep); *s; s += strspn(s, sep)) {
        size_t len = strcspn(s, sep);
        char spec[512];
        if (len >= sizeof spec)
            luaL_error(L, "net.scan: target '%.40s...' is too long", s);
        memcpy(spec, s, len);
        spec[len] = '\0';
        if (rs_scan_add_target(scan, spec))
            luaL_error(L, "net.scan: %s", rs_scan_errmsg(scan));
        s += len;
    }
}

/* hosts = string | array of strings (the value on the stack top). */
static void add_hosts(lua_State *L, rs_scan *scan)
{
    if (lua_type(L, -1) == LUA_TSTRING) {
        add_hosts_text(L, scan, lua_tostring(L, -1));
    } else if (lua_istable(L, -1)) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        for (lua_Integer i = 1; i <= n; i++) {
            if (lua_rawgeti(L, -1, i) != LUA_TSTRING)
                luaL_error(L, "net.scan: hosts[%d] is not a string", (int)i);
            add_hosts_text(L, scan, lua_tostring(L, -1));
            lua_pop(L, 1);
        }
    } else {
        luaL_error(L, "net.scan: hosts must be a string or an array of strings");
    }
    if (!rs_scan_probe_count(scan))
        luaL_error(L, "net.scan: no hosts given");
}

/* ports = string | array of port numbers or port strings (the value on the stack top);
 * nil keeps the default list. */
static void add_ports(lua_State *L, rs_scan *scan)
{
    int rc = 0;
    if (lua_isnil(L, -1))
        return;
    if (lua_type(L, -1) == LUA_TSTRING) {
        rc = rs_scan_add_ports(scan, lua_tostring(L, -1));
    } else if (lua_istable(L, -1)) {
        lua_Integer n = (lua_Integer)lua_rawlen(L, -1);
        if (!n)
            luaL_error(L, "net.scan: ports is empty");
        for (lua_Integer i = 1; i <= n && !rc; i++) {
            int type = lua_rawgeti(L, -1, i);
            if (type == LUA_TNUMBER && lua_isinteger(L, -1)) {
                lua_Integer p = lua_tointeger(L, -1);
                if (p < 1 || p > 65535)
                    luaL_error(L, "net.scan: ports[%d] = %I is out of range (1-65535)", (int)i, p);
                char text[8];
                snprintf(text, sizeof text, "%d", (int)p);
                rc = rs_scan_add_ports(scan, text);
            } else if (type == LUA_TSTRING) {
                rc = rs_scan_add_ports(scan, lua_tostring(L, -1));
            } else {
                luaL_error(L, "net.scan: ports[%d] is not a port number", (int)i);
            }
            lua_pop(L, 1);
        }
    } else {
        luaL_error(L, "net.scan: ports must be a string or an array of port numbers");
    }
    if (rc)
        luaL_error(L, "net.scan: %s", rs_scan_errmsg(scan));
}

/* net.scan{hosts=, ports=, timeout=ms, retries=n, max_inflight=n, force=bool} */
static int l_scan(lua_State *L)
{
    luaL_checktype(L, 1, LUA_TTABLE);
    lua_settop(L, 1);
    sink k = {.L = L};
    lua_Number timeout = opt_field(L, "timeout", "a non-negative number of milliseconds");
    lua_Number retries = opt_field(L, "retries", "a non-negative integer");
    lua_Number inflight = opt_field(L, "max_inflight", "a non-negative integer");
    if (retries > 100 || inflight > 1e6)
        return luaL_error(L, "net.scan: retries (at most 100) or max_inflight is too large");
    lua_getfield(L, 1, "force");
    rs_scan_opts o = {.timeout = timeout / 1e3,
                      .tries = (int)retries + 1,
                      .max_inflight = (unsigned)inflight,
                      .force = lua_toboolean(L, -1),
                      .on_result = on_result,
                      .userdata = &k};
    lua_pop(L, 1);
    rs_scan *scan = new_scan(L, &o, "scan"); /* 2 */
    k.scan = scan;
    lua_getfield(L, 1, "hosts");
    add_hosts(L, scan);
    lua_pop(L, 1);
    lua_getfield(L, 1, "ports");
    add_ports(L, scan);
    lua_pop(L, 1);
    lua_newtable(L); /* 3: the results */
    lua_pushvalue(L, 3);
    lua_pushcclosure(L, add_record, 1); /* 4 */
    lua_pushnil(L);                     /* 5: the error of a record that failed */
    k.add = 4;
    k.error = 5;
    run(L, scan, &k, "scan");
    drop_scan(L, 2);
    lua_settop(L, 3);
    return 1;
}

/* net.resolve(name) */
static int l_resolve(lua_State *L)
{
    const char *name = luaL_checkstring(L, 1);
    rs_runspace *rs = rs__lua_runspace(L);
    rs_value *list;
    const char *why;
    int rc = rs__scan_resolve(name, &list, &why);
    if (rc == RS_ENOMEM)
        return luaL_error(L, "net.resolve: out of memory");
    if (rc) {
        lua_pushnil(L);
        lua_pushstring(L, why);
        return 2;
    }
    /* Pushing may raise (memory): the list waits in the scratch slot meanwhile. */
    rs_value_destroy(rs->scratch_value);
    rs->scratch_value = list;
    rs__lua_push_value(L, list);
    rs->scratch_value = NULL;
    rs_value_destroy(list);
    return 1;
}

void rs__open_net(lua_State *L)
{
    static const luaL_Reg fns[] = {
        {"probe", l_probe}, {"scan", l_scan}, {"resolve", l_resolve}, {NULL, NULL}};
    lua_createtable(L, 0, 3);
    luaL_setfuncs(L, fns, 0);
    lua_setglobal(L, "net");
}
