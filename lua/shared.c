/*
 * shared.c -- the shared store from Lua: rs.shared() makes one to give to pools
 * (rs.pool{shared = store}), pool:shared() is a pool's own. Values are copied in and out; the
 * store's functions are thread-safe, so the runspaces' `shared.*` and the program's calls
 * see one store.
 */
#include "lrs.h"

#include <stdbool.h>

typedef struct lrs_shared {
    rs_shared *s;
    bool owned; /* made by rs.shared(): released when collected */
} lrs_shared;

void lrs_shared_push(lua_State *L, rs_shared *s)
{
    lrs_shared *o = lua_newuserdatauv(L, sizeof *o, 1);
    o->s = s;
    o->owned = false;
    luaL_setmetatable(L, LRS_SHARED);
}

rs_shared *lrs_shared_test(lua_State *L, int idx)
{
    lrs_shared *o = luaL_testudata(L, idx, LRS_SHARED);
    return o ? o->s : NULL;
}

static int l_shared(lua_State *L)
{
    lrs_shared *o = lua_newuserdatauv(L, sizeof *o, 1);
    o->s = NULL;
    o->owned = true;
    luaL_setmetatable(L, LRS_SHARED);
    int rc = rs_shared_create(&o->s);
    if (rc)
        return lrs_fail(L, rc, NULL);
    return 1;
}

static rs_shared *check(lua_State *L)
{
    lrs_shared *o = luaL_checkudata(L, 1, LRS_SHARED);
    if (!o->s)
        luaL_error(L, "the store could not be created");
    return o->s;
}

/* store:get(key): a copy of the value, or nil. */
static int shared_get(lua_State *L)
{
    rs_shared *s = check(L);
    size_t klen;
    const char *key = luaL_checklstring(L, 2, &klen);
    rs_value **box = lrs_newbox(L);
    int rc = rs_shared_getn(s, key, klen, box);
    if (rc == RS_ENOENT) {
        lua_pushnil(L);
        return 1;
    }
    if (rc)
        return lrs_fail(L, rc, NULL);
    lrs_push_value(L, *box);
    lrs_box_free(L, -2);
    return 1;
}

/* store:set(key, value): stores a copy; nil removes the key. */
static int shared_set(lua_State *L)
{
    rs_shared *s = check(L);
    size_t klen;
    const char *key = luaL_checklstring(L, 2, &klen);
    luaL_checkany(L, 3);
    if (lua_isnil(L, 3)) {
        int rc = rs_shared_setn(s, key, klen, NULL);
        if (rc && rc != RS_ENOENT)
            return lrs_fail(L, rc, NULL);
        return 0;
    }
    rs_value **box = lrs_newbox(L);
    char err[256];
    *box = lrs_to_value(L, 3, "value", err, sizeof err);
    if (!*box)
        return luaL_argerror(L, 3, err);
    int rc = rs_shared_setn(s, key, klen, *box);
    lrs_box_free(L, -1);
    if (rc)
        return lrs_fail(L, rc, NULL);
    return 0;
}

/* store:incr(key[, delta]): adds delta (1) to an integer (absent: 0); the new value. */
static int shared_incr(lua_State *L)
{
    rs_shared *s = check(L);
    size_t klen;
    const char *key = luaL_checklstring(L, 2, &klen);
    lua_Integer delta = luaL_optinteger(L, 3, 1);
    int64_t out;
    int rc = rs_shared_incrn(s, key, klen, (int64_t)delta, &out);
    if (rc == RS_EINVAL)
        return luaL_error(L, "shared value '%s' is not an integer", key);
    if (rc)
        return lrs_fail(L, rc, rc == RS_ELIMIT ? "integer overflow" : NULL);
    lua_pushinteger(L, (lua_Integer)out);
    return 1;
}

/* store:keys(): the keys in insertion order. */
static int shared_keys(lua_State *L)
{
    rs_shared *s = check(L);
    rs_value **box = lrs_newbox(L);
    *box = rs_shared_keys(s);
    if (!*box)
        return luaL_error(L, "out of memory");
    lrs_push_value(L, *box);
    lrs_box_free(L, -2);
    return 1;
}

static int shared_gc(lua_State *L)
{
    lrs_shared *o = luaL_checkudata(L, 1, LRS_SHARED);
    if (o->owned)
        rs_shared_destroy(o->s);
    o->s = NULL;
    return 0;
}

void lrs_shared_open(lua_State *L)
{
    static const luaL_Reg methods[] = {{"get", shared_get},
                                       {"set", shared_set},
                                       {"incr", shared_incr},
                                       {"keys", shared_keys},
                                       {NULL, NULL}};
    static const luaL_Reg meta[] = {{"__gc", shared_gc}, {NULL, NULL}};
    lrs_new_class(L, LRS_SHARED, methods, meta);
    lua_pushcfunction(L, l_shared);
    lua_setfield(L, -2, "shared");
}
