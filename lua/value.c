/*
 * value.c -- Lua values <-> rs_value trees for the module: every value crosses by copy.
 *
 * Lua -> rs_value never raises: it uses only API calls that do not allocate Lua memory
 * (lua_next, lua_rawgeti, lua_tolstring on strings, lua_checkstack), so the C tree it holds is
 * always freed on failure. rs_value -> Lua allocates Lua objects and may raise; its caller
 * boxes the tree when it owns it.
 */
#include "lrs.h"

#include "../src/ptrset.h" /* the one internal helper the module shares (see lrs.h) */

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A table referenced from several places is copied for each reference, so a few tables can
 * stand for an enormous copy ({t, t} nested 40 deep: 2^40 values). As in the runspaces
 * (src/marshal.h), past COPY_SLACK bytes a copy may be at most COPY_FACTOR times the size of
 * the distinct values it copies; beyond, it is refused before it takes the program's memory.
 * A value counts VALUE_SIZE bytes, a string its bytes besides. */
#define COPY_SLACK ((size_t)64 << 20)
#define COPY_FACTOR 16
#define VALUE_SIZE 32
#define LONG_STRING 4096 /* strings this long count as tables: met again, copied again */

typedef struct to_ctx {
    lua_State *L;
    const void *tables[RS_MAX_DEPTH + 1]; /* the tables being converted, for cycles */
    int depth;
    rs__ptrset seen; /* every table met */
    int repeats;     /* how many of the tables being converted were met before */
    size_t made;     /* bytes of the copy so far */
    size_t distinct; /* of which made outside tables met before */
    char *err;
    size_t errsize;
    char path[128]; /* where the failure is, below the root */
} to_ctx;

static rs_value *fail(to_ctx *c, const char *why)
{
    if (!c->err[0])
        snprintf(c->err, c->errsize, "%s", why);
    return NULL;
}

static rs_value *convert(to_ctx *c, int idx);

/* Appends "[k]" or ".k" of the entry whose key is at -2 to the failure's path (innermost
 * first, so it is prepended). */
static void prepend_key(to_ctx *c, lua_State *L)
{
    char part[64];
    if (lua_type(L, -2) == LUA_TSTRING)
        snprintf(part, sizeof part, ".%.40s", lua_tostring(L, -2));
    else if (lua_isinteger(L, -2))
        snprintf(part, sizeof part, "[%lld]", (long long)lua_tointeger(L, -2));
    else
        snprintf(part, sizeof part, "[?]");
    size_t plen = strlen(part), rlen = strlen(c->path);
    if (plen + rlen >= sizeof c->path)
        return; /* a path this long is shown without its outer levels */
    memmove(c->path + plen, c->path, rlen + 1);
    memcpy(c->path, part, plen);
}

/* Formats a float key as the shortest text (%g, 1 to 17 digits) that reads back as the same number,
 * so that two different keys never share a text (0.1 + 0.2 and 0.3 both show as 0.3 with %.14g). */
static size_t float_key(lua_Number f, char *buf, size_t size)
{
    int n = 0;
    for (int prec = 1; prec <= 17; prec++) {
        n = snprintf(buf, size, "%.*g", prec, (double)f);
        if (strtod(buf, NULL) == (double)f)
            break;
    }
    return n < 0 ? 0 : (size_t)n;
}

static rs_value *convert_table_body(to_ctx *c, int t);

static rs_value *convert_table(to_ctx *c, int t)
{
    int fresh = rs__ptrset_add(&c->seen, lua_topointer(c->L, t));
    if (fresh < 0)
        return fail(c, "out of memory");
    c->repeats += !fresh;
    rs_value *v = convert_table_body(c, t);
    c->repeats -= !fresh;
    return v;
}

static rs_value *convert_table_body(to_ctx *c, int t)
{
    lua_State *L = c->L;
    const void *self = lua_topointer(L, t);
    for (int i = 0; i < c->depth; i++) {
        if (c->tables[i] == self)
            return fail(c, "cannot pass a table that contains itself (a cycle)");
    }
    if (c->depth >= RS_MAX_DEPTH)
        return fail(c, "nested deeper than 512 levels");
    if (!lua_checkstack(L, 4))
        return fail(c, "out of memory");
    size_t count = 0;
    lua_Integer max = 0;
    int ints = 1;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        lua_pop(L, 1);
        count++;
        if (ints && lua_isinteger(L, -1) && lua_tointeger(L, -1) >= 1) {
            if (lua_tointeger(L, -1) > max)
                max = lua_tointeger(L, -1);
        } else {
            ints = 0;
        }
    }
    c->tables[c->depth++] = self;
    rs_value *out;
    if (ints && (size_t)max == count) {
        out = rs_value_array();
        for (size_t i = 1; out && i <= count; i++) {
            lua_rawgeti(L, t, (lua_Integer)i);
            rs_value *v = convert(c, lua_gettop(L));
            if (!v) {
                lua_pushinteger(L, (lua_Integer)i);
                lua_insert(L, -2);
                prepend_key(c, L);
                lua_pop(L, 2);
                rs_value_destroy(out);
                c->depth--;
                return NULL;
            }
            lua_pop(L, 1);
            if (rs_array_push(out, v)) {
                rs_value_destroy(out);
                out = NULL;
            }
        }
    } else {
        out = rs_value_map();
        lua_pushnil(L);
        while (out && lua_next(L, t)) {
            char num[64];
            const char *k;
            size_t klen;
            int kt = lua_type(L, -2);
            if (kt == LUA_TSTRING) {
                k = lua_tolstring(L, -2, &klen);
            } else if (kt == LUA_TNUMBER) {
                if (lua_isinteger(L, -2))
                    klen = (size_t)snprintf(num, sizeof num, LUA_INTEGER_FMT,
                                            (LUAI_UACINT)lua_tointeger(L, -2));
                else
                    klen = float_key(lua_tonumber(L, -2), num, sizeof num);
                k = num;
            } else {
                char why[64];
                snprintf(why, sizeof why, "cannot use a %s as a map key", lua_typename(L, kt));
                lua_pop(L, 2);
                rs_value_destroy(out);
                c->depth--;
                return fail(c, why);
            }
            if (rs_map_getn(out, k, klen)) {
                char why[160];
                snprintf(why, sizeof why,
                         "two keys of this table become the same key \"%.*s\" (a number and "
                         "its text)",
                         (int)(klen < 64 ? klen : 64), k);
                lua_pop(L, 2);
                rs_value_destroy(out);
                c->depth--;
                return fail(c, why);
            }
            rs_value *v = convert(c, lua_gettop(L));
            if (!v) {
                prepend_key(c, L);
                lua_pop(L, 2);
                rs_value_destroy(out);
                c->depth--;
                return NULL;
            }
            lua_pop(L, 1);
            if (rs_map_setn(out, k, klen, v)) {
                lua_pop(L, 1);
                rs_value_destroy(out);
                out = NULL;
            }
        }
    }
    c->depth--;
    return out ? out : fail(c, "out of memory");
}

static rs_value *convert(to_ctx *c, int idx)
{
    lua_State *L = c->L;
    rs_value *v = NULL;
    size_t bytes = VALUE_SIZE + (lua_type(L, idx) == LUA_TSTRING ? lua_rawlen(L, idx) : 0);
    /* A long string met before is a copy again, as a table met before is. */
    int fresh =
        bytes < VALUE_SIZE + LONG_STRING ? 1 : rs__ptrset_add(&c->seen, lua_topointer(L, idx));
    if (fresh < 0)
        return fail(c, "out of memory");
    c->made += bytes;
    c->distinct += c->repeats == 0 && fresh ? bytes : 0;
    if (c->made > COPY_SLACK && c->made / COPY_FACTOR > c->distinct) {
        char why[200];
        snprintf(why, sizeof why,
                 "the copy would be more than %d times the value's own %zu bytes (a table or long "
                 "string referenced from several places is copied for each reference)",
                 COPY_FACTOR, c->distinct);
        return fail(c, why);
    }
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        v = rs_value_null();
        break;
    case LUA_TBOOLEAN:
        v = rs_value_bool(lua_toboolean(L, idx));
        break;
    case LUA_TNUMBER:
        v = lua_isinteger(L, idx) ? rs_value_int(lua_tointeger(L, idx))
                                  : rs_value_double(lua_tonumber(L, idx));
        break;
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        v = rs_value_stringn(s, len);
        break;
    }
    case LUA_TTABLE:
        return convert_table(c, lua_absindex(L, idx));
    case LUA_TLIGHTUSERDATA:
        if (lua_touserdata(L, idx) == NULL) {
            v = rs_value_null(); /* rs.null */
            break;
        }
        return fail(c, "cannot pass a userdata by copy");
    default: {
        char why[64];
        snprintf(why, sizeof why, "cannot pass a %s by copy", luaL_typename(L, idx));
        return fail(c, why);
    }
    }
    return v ? v : fail(c, "out of memory");
}

rs_value *lrs_to_value(lua_State *L, int idx, const char *what, char *err, size_t errsize)
{
    to_ctx *c = malloc(sizeof *c);
    if (!c) {
        snprintf(err, errsize, "%s: out of memory", what);
        return NULL;
    }
    c->L = L;
    c->depth = 0;
    c->seen = (rs__ptrset){0};
    c->repeats = 0;
    c->made = c->distinct = 0;
    char why[240] = "";
    c->err = why;
    c->errsize = sizeof why;
    c->path[0] = '\0';
    rs_value *v = convert(c, lua_absindex(L, idx));
    if (!v)
        snprintf(err, errsize, "%s%s: %s", what, c->path, why);
    rs__ptrset_free(&c->seen);
    free(c);
    return v;
}

/* ---- rs_value -> Lua ---------------------------------------------------------------------- */

static void push(lua_State *L, const rs_value *v, int depth)
{
    luaL_checkstack(L, 3, "value nested too deeply");
    switch (rs_value_type(v)) {
    case RS_TNULL:
        if (depth == 0)
            lua_pushnil(L);
        else
            lua_pushlightuserdata(L, NULL);
        break;
    case RS_TBOOL:
        lua_pushboolean(L, rs_value_get_bool(v));
        break;
    case RS_TINT:
        lua_pushinteger(L, (lua_Integer)rs_value_get_int(v));
        break;
    case RS_TDOUBLE:
        lua_pushnumber(L, (lua_Number)rs_value_get_double(v));
        break;
    case RS_TSTRING: {
        size_t len;
        const char *s = rs_value_get_string(v, &len);
        lua_pushlstring(L, s, len);
        break;
    }
    case RS_TARRAY: {
        size_t n = rs_array_len(v);
        lua_createtable(L, n > INT32_MAX ? INT32_MAX : (int)n, 0);
        for (size_t i = 0; i < n; i++) {
            push(L, rs_array_get(v, i), depth + 1);
            lua_rawseti(L, -2, (lua_Integer)i + 1);
        }
        break;
    }
    case RS_TMAP: {
        size_t n = rs_map_len(v);
        lua_createtable(L, 0, n > INT32_MAX ? INT32_MAX : (int)n);
        for (size_t i = 0; i < n; i++) {
            size_t klen;
            const char *k = rs_map_key(v, i, &klen);
            lua_pushlstring(L, k, klen);
            push(L, rs_map_value(v, i), depth + 1);
            lua_rawset(L, -3);
        }
        break;
    }
    }
}

void lrs_push_value(lua_State *L, const rs_value *v)
{
    push(L, v, 0);
}

/* ---- boxes -------------------------------------------------------------------------------- */

static int box_gc(lua_State *L)
{
    rs_value **slot = luaL_checkudata(L, 1, LRS_BOX);
    rs_value_destroy(*slot);
    *slot = NULL;
    return 0;
}

rs_value **lrs_newbox(lua_State *L)
{
    rs_value **slot = lua_newuserdatauv(L, sizeof *slot, 0);
    *slot = NULL;
    luaL_setmetatable(L, LRS_BOX);
    return slot;
}

void lrs_box_free(lua_State *L, int idx)
{
    rs_value **slot = luaL_checkudata(L, idx, LRS_BOX);
    rs_value_destroy(*slot);
    *slot = NULL;
}

void lrs_value_open(lua_State *L)
{
    luaL_newmetatable(L, LRS_BOX);
    lua_pushcfunction(L, box_gc);
    lua_setfield(L, -2, "__gc");
    lua_pop(L, 1);
}
