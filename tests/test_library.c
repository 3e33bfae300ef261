/*
 * test_library.c -- rs_iss_add_library: an application's own luaL_Reg libraries in every
 * runspace, in both profiles, found by require and bound to a global; their open errors,
 * naming rules and the state they keep per runspace.
 */
#include "util.h"

#include <lauxlib.h>
#include <lua.h>

#include <stdatomic.h>

static atomic_int opens;

static int counter_next(lua_State *L)
{
    lua_Integer n = lua_tointeger(L, lua_upvalueindex(1)) + luaL_optinteger(L, 1, 1);
    lua_pushinteger(L, n);
    lua_copy(L, -1, lua_upvalueindex(1));
    return 1;
}

static int counter_hello(lua_State *L)
{
    lua_pushfstring(L, "hello, %s", luaL_checkstring(L, 1));
    return 1;
}

/* A library as an application would have it: a table of functions, one with state. */
static int open_counter(lua_State *L)
{
    atomic_fetch_add(&opens, 1);
    static const luaL_Reg fns[] = {{"hello", counter_hello}, {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushinteger(L, 0);
    lua_pushcclosure(L, counter_next, 1);
    lua_setfield(L, -2, "next");
    return 1;
}

static int open_failing(lua_State *L)
{
    return luaL_error(L, "the device is not there");
}

static void test_library_in_both_profiles(void **state)
{
    (void)state;
    rs_profile profiles[] = {RS_PROFILE_DEFAULT, RS_PROFILE_RESTRICTED};
    for (size_t i = 0; i < 2; i++) {
        rs_iss *iss;
        assert_ok(rs_iss_create(profiles[i], &iss));
        assert_ok(rs_iss_add_library(iss, "counter", open_counter));
        assert_ok(rs_iss_add_library(iss, "app.util", open_counter));
        rs_runspace *rs = open_runspace(iss);
        assert_ok(rs_iss_destroy(iss));
        /* The global, require (served from package.loaded, also where require loads no
         * file) and the same table each time. */
        assert_eval(rs, "return counter.hello('lua'), require('counter') == counter",
                    "[\"hello, lua\",true]");
        assert_eval(rs, "return require('app.util') == app_util, app_util ~= counter",
                    "[true,true]");
        /* The library's state lives in the runspace: it carries over between invocations. */
        assert_eval(rs, "return counter.next()", "[1]");
        assert_eval(rs, "return counter.next(5)", "[6]");
        assert_eval_fails(rs, "return counter.hello()", RS_ERUNTIME, "bad argument #1 to 'hello'");
        assert_ok(rs_runspace_destroy(rs));
    }
}

static void test_library_opens_in_every_runspace(void **state)
{
    (void)state;
    atomic_store(&opens, 0);
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_RESTRICTED, &iss));
    assert_ok(rs_iss_add_library(iss, "counter", open_counter));
    rs_pool *pool;
    rs_pool_opts o = {.iss = iss, .min_runspaces = 3, .max_runspaces = 3};
    assert_ok(rs_pool_create(&o, &pool));
    assert_ok(rs_iss_destroy(iss));
    assert_ok(rs_pool_open(pool));
    assert_int_equal(atomic_load(&opens), 3);
    char *j = NULL;
    assert_ok(eval(NULL, pool, "return type(counter.next)", &j, NULL));
    assert_string_equal(j, "[\"function\"]");
    rs_free(j);
    assert_ok(rs_pool_destroy(pool));
}

static void test_library_open_error(void **state)
{
    (void)state;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    assert_ok(rs_iss_add_library(iss, "device", open_failing));
    rs_runspace *rs;
    rs_runspace_opts o = {.iss = iss};
    assert_ok(rs_runspace_create(&o, &rs));
    assert_ok(rs_iss_destroy(iss));
    assert_rs(RS_ERUNTIME, rs_runspace_open(rs));
    assert_contains(rs_runspace_errmsg(rs), "the device is not there");
    assert_int_equal(rs_runspace_get_state(rs), RS_RUNSPACE_BROKEN);
    assert_ok(rs_runspace_destroy(rs));
}

static void test_library_names(void **state)
{
    (void)state;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    assert_rs(RS_EMISUSE, rs_iss_add_library(NULL, "x", open_counter));
    assert_rs(RS_EINVAL, rs_iss_add_library(iss, "x", NULL));
    assert_contains(rs_iss_errmsg(iss), "needs an open function");
    assert_rs(RS_EINVAL, rs_iss_add_library(iss, NULL, open_counter));
    assert_rs(RS_EINVAL, rs_iss_add_library(iss, "", open_counter));
    assert_rs(RS_EINVAL, rs_iss_add_library(iss, "9lives", open_counter));
    assert_contains(rs_iss_errmsg(iss), "not a Lua identifier");
    assert_rs(RS_EEXIST, rs_iss_add_library(iss, "json", open_counter));
    assert_contains(rs_iss_errmsg(iss), "built-in");
    assert_ok(rs_iss_add_library(iss, "counter", open_counter));
    assert_rs(RS_EEXIST, rs_iss_add_library(iss, "counter", open_counter));
    assert_rs(RS_EEXIST, rs_iss_add_function(iss, "counter", "return 1"));
    rs_runspace *rs = open_runspace(iss);
    assert_rs(RS_EBUSY, rs_iss_add_library(iss, "late", open_counter));
    assert_contains(rs_iss_errmsg(iss), "can no longer change");
    assert_ok(rs_runspace_destroy(rs));
    assert_ok(rs_iss_destroy(iss));
}

/* A library's allocations count against the runspace's memory limit like any other. */
static int open_big(lua_State *L)
{
    lua_createtable(L, 1 << 16, 0);
    for (int i = 1; i <= 1 << 16; i++) {
        lua_pushinteger(L, i);
        lua_rawseti(L, -2, i);
    }
    return 1;
}

static void test_library_counts_against_the_limit(void **state)
{
    (void)state;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    assert_ok(rs_iss_add_library(iss, "big", open_big));
    rs_limits l = {.memory_bytes = 512 * 1024};
    assert_ok(rs_iss_set_limits(iss, &l));
    rs_runspace *rs;
    rs_runspace_opts o = {.iss = iss};
    assert_ok(rs_runspace_create(&o, &rs));
    assert_ok(rs_iss_destroy(iss));
    assert_rs(RS_ENOMEM, rs_runspace_open(rs));
    assert_contains(rs_runspace_errmsg(rs), "memory limit");
    assert_ok(rs_runspace_destroy(rs));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_library_in_both_profiles),
    cmocka_unit_test(test_library_opens_in_every_runspace),
    cmocka_unit_test(test_library_open_error),
    cmocka_unit_test(test_library_names),
    cmocka_unit_test(test_library_counts_against_the_limit),
};

RS_TEST_MAIN(tests)
