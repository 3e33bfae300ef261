/*
 * test_pattern.c -- the interruptible string.find, match, gmatch and gsub: the same results
 * and error messages as Lua 5.4's own on a large random corpus of patterns, subjects and
 * replacements; stops and timeouts that end a match in its middle, even under pcall; a plain
 * find that stays linear.
 */
#include "harness.h"
#include "lualib_int.h"

#include <lauxlib.h>
#include <lualib.h>

#include <stdio.h>
#include <string.h>

/* Runs the Lua comparison below on a bare state holding both implementations: ORIG has the
 * standard library's functions, `string` has ours. */
static const char compare_lua[] =
    "local cases = ...\n"
    "math.randomseed(20261121)\n"
    "local R = math.random\n"
    "local atoms = {'a', 'b', 'c', '.', '%a', '%d', '%s', '%w', '%A', '%D', '%p', '%x', '%u',\n"
    "  '%l', '%c', '%g', '%S', '%W', '[ab]', '[^a]', '[a-c]', '[%d%s]', '[]]', '[^]a]', '[%]]',\n"
    "  '[a-]', '[%a-]', '[-a]', '(', ')', '()', '%1', '%2', '%0', '%b()', '%bab', '%f[%w]',\n"
    "  '%f[%W]', '%f[a]', '%f[^%z]', '^', '$', '%', '[', ']', '*', '+', '-', '?', '%%', '%.',\n"
    "  'x', '1', ' ', '\\0', '%f', '%b', '%bx', '[^', '%z', '%(', '[%', '[a', '((', '))'}\n"
    "local quants = {'', '', '', '*', '+', '-', '?'}\n"
    "local chars = {'a', 'b', 'c', '(', ')', ' ', '1', '2', 'x', '%', '[', ']', '^', '$', '.',\n"
    "  '\\0', 'A', '-', '\\n', '\\255'}\n"
    "local function pattern()\n"
    "  local t = {}\n"
    "  for i = 1, R(0, 6) do t[i] = atoms[R(#atoms)] .. quants[R(#quants)] end\n"
    "  return table.concat(t)\n"
    "end\n"
    "local function subject()\n"
    "  if R(40) == 1 then return R(0, 99999) end\n"
    "  local t = {}\n"
    "  for i = 1, R(0, 12) do t[i] = chars[R(#chars)] end\n"
    "  return table.concat(t)\n"
    "end\n"
    "local inits = {1, 2, 0, -1, -3, 5, 13, 100, -100, 2.0, 1.5, 'x'}\n"
    "local function init() if R(3) == 1 then return nil end return inits[R(#inits)] end\n"
    "local repls = {'', 'z', '%0', '%1', '%2', '<%1|%2>', '%%', '%', 'a%', '%x', '[%0]', 7,\n"
    "  {a = 'A', b = false, ['1'] = 'one', x = 5, ['('] = {}},\n"
    "  function(...) return select('#', ...) .. table.concat({...}, ',') end,\n"
    "  function(a) if a == 'a' then return nil end return a end,\n"
    "  function() return false end, function() return {} end, function(a) return a end,\n"
    "  nil, true}\n"
    "local function show(ok, ...)\n"
    "  local t = {tostring(ok), select('#', ...)}\n"
    "  for i = 1, select('#', ...) do\n"
    "    local v = select(i, ...)\n"
    "    t[#t + 1] = math.type(v) or type(v)\n"
    "    v = type(v) == 'function' and 'fn' or tostring(v)\n"
    "    if not ok then -- ORIG is not in package.loaded, so a message names it '?'\n"
    "      v = ORIG.gsub(v, \"^bad argument (#%d+) to '[^']*'\", 'bad argument %1 to F')\n"
    "    end\n"
    "    t[#t + 1] = v\n"
    "  end\n"
    "  return table.concat(t, '|')\n"
    "end\n"
    "local function iterate(gmatch, s, p, i)\n"
    "  local out = {}\n"
    "  local it = gmatch(s, p, i)\n"
    "  for _ = 1, 40 do\n"
    "    local r = show(true, it())\n"
    "    out[#out + 1] = r\n"
    "    if r == 'true|0' then break end\n"
    "  end\n"
    "  return table.concat(out, ' / ')\n"
    "end\n"
    "local function same(what, a, b, ...)\n"
    "  if a ~= b then\n"
    "    local args = {}\n"
    "    for i = 1, select('#', ...) do args[i] = string.format('%q', tostring((select(i, ...)))) "
    "end\n"
    "    error(string.format('%s(%s):\\n  Lua:  %s\\n  ours: %s', what,\n"
    "      table.concat(args, ', '), a, b), 0)\n"
    "  end\n"
    "end\n"
    "local fixed = {\n"
    "  {('a'):rep(300), ('a?'):rep(300)}, {('a'):rep(300), ('(a)'):rep(40)},\n"
    "  {'hello world', '(o)(r)'}, {'THE (quick) fox', '%f[%a]%a+'}, {'x = [[a]] y', '%b[]'},\n"
    "  {'key = value', '(%w+)%s*=%s*(%w+)'}, {'abcabc', '(a)(b)(c)%1%2%3'}, {'', ''},\n"
    "  {'aaa', 'a-'}, {'aaa', '^a-$'}, {'a.b', '.', nil, true}, {'a+b', '+', 1, true},\n"
    "  {('x'):rep(10), ('x*'):rep(3) .. 'y'}, {'abc', '()b()'}, {'abc', '%f[%z]'},\n"
    "}\n"
    "local n = 0\n"
    "local function one(s, p, i, plain, repl, max)\n"
    "  n = n + 1\n"
    "  same('find', show(pcall(ORIG.find, s, p, i, plain)),\n"
    "    show(pcall(string.find, s, p, i, plain)), s, p, i, plain)\n"
    "  same('match', show(pcall(ORIG.match, s, p, i)), show(pcall(string.match, s, p, i)),\n"
    "    s, p, i)\n"
    "  same('gmatch', show(pcall(iterate, ORIG.gmatch, s, p, i)),\n"
    "    show(pcall(iterate, string.gmatch, s, p, i)), s, p, i)\n"
    "  same('gsub', show(pcall(ORIG.gsub, s, p, repl, max)),\n"
    "    show(pcall(string.gsub, s, p, repl, max)), s, p, repl, max)\n"
    "end\n"
    "for k = 196, 202 do -- around the recursion limit, and the capture limit\n"
    "  fixed[#fixed + 1] = {('a'):rep(300), ('a?'):rep(k)}\n"
    "  fixed[#fixed + 1] = {('a'):rep(300), ('a'):rep(k - 190) .. ('()'):rep(k - 168)}\n"
    "end\n"
    "for _, c in ipairs(fixed) do one(c[1], c[2], c[3], c[4], '<%0>') end\n"
    "local maxes = {nil, 0, 1, 2, -1, 3.0, 2.5}\n"
    "for _ = 1, cases do\n"
    "  local plain = R(4) == 1 or nil\n"
    "  one(subject(), pattern(), init(), plain, repls[R(#repls)], maxes[R(#maxes)])\n"
    "end\n"
    "return n\n";

/* Random cases. This test has one thread, so ThreadSanitizer adds nothing to it but the stack
 * it records at every allocation, which makes it fifty times slower: fewer cases there. */
#if defined(__SANITIZE_THREAD__)
#define CASES 4000
#else
#define CASES 40000
#endif

static void test_same_as_lua(void **state)
{
    (void)state;
    lua_State *L = luaL_newstate();
    assert_non_null(L);
    luaL_openlibs(L);
    assert_int_equal(luaL_dostring(L, "ORIG = {find = string.find, match = string.match, "
                                      "gmatch = string.gmatch, gsub = string.gsub}"),
                     LUA_OK);
    rs__open_pattern(L);
    assert_int_equal(luaL_dostring(L, "return string.find ~= ORIG.find"), LUA_OK);
    assert_true(lua_toboolean(L, -1));
    lua_pop(L, 1);
    assert_int_equal(luaL_loadbuffer(L, compare_lua, sizeof compare_lua - 1, "=compare"), LUA_OK);
    lua_pushinteger(L, CASES);
    if (lua_pcall(L, 1, 1, 0) != LUA_OK)
        fail_msg("%s", lua_tostring(L, -1));
    assert_true(lua_tointeger(L, -1) > CASES);
    lua_close(L);
}

/* A few results written out, so the comparison cannot pass by both being wrong alike. */
static void test_known_results(void **state)
{
    (void)state;
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    rs__open_pattern(L);
    static const char *checks =
        "assert(select(2, ('hello world'):gsub('o', '0')) == 2)\n"
        "assert(('hello world'):gsub('(%w+)', '<%1>') == '<hello> <world>')\n"
        "assert(('abc'):gsub('', '-') == '-a-b-c-')\n"
        "local a, b, c = ('key = val'):find('(%w+)%s*=%s*(%w+)')\n"
        "assert(a == 1 and b == 9 and c == 'key')\n"
        "assert(('f(a(b)c)d'):match('%b()') == '(a(b)c)')\n"
        "assert(('THE (quick) fox'):gsub('%f[%a]%a+', 'w') == 'w (w) w')\n"
        "local t = {} for k, v in ('a=1, b=2'):gmatch('(%w+)=(%w+)') do t[#t + 1] = k .. v end\n"
        "assert(table.concat(t, ' ') == 'a1 b2')\n"
        "assert(('abc'):match('()b()') == 2)\n"
        "assert(('a.b'):find('.', 1, true) == 2)\n"
        "assert(('x'):find('y') == nil)\n"
        "assert(not pcall(string.find, 'a', '[a'))\n"
        "local ok, e = pcall(string.find, ('a'):rep(300), ('a?'):rep(300))\n"
        "assert(not ok and e == 'pattern too complex', e)\n"
        "ok, e = pcall(string.gsub, 'abc', '(a)', '%2')\n"
        "assert(not ok and e == 'invalid capture index %2', e)\n";
    if (luaL_dostring(L, checks) != LUA_OK)
        fail_msg("%s", lua_tostring(L, -1));
    lua_close(L);
}

/* Patterns that take hours: each must end at the invocation's timeout, pcall or not. */
static void test_timeout_ends_a_match(void **state)
{
    (void)state;
    rs_pool *pool;
    rs_pool_opts po = {.max_runspaces = 1};
    assert_ok(rs_pool_create(&po, &pool));
    assert_ok(rs_pool_open(pool));
    const char *scripts[] = {
        "return ('a'):rep(3000):find('.-.-.-.-b')",
        "return ('a'):rep(3000):match('(.-)(.-)(.-)(.-)b')",
        "for x in ('a'):rep(3000):gmatch('.-.-.-.-b') do end",
        "return ('a'):rep(3000):gsub('.*.*.*.*b', 'x')",
        "return ('(a)'):rep(3000):find('%b().-.-.-b')",
        "local ok = pcall(string.find, ('a'):rep(3000), '.-.-.-.-b') return 'swallowed'",
    };
    for (size_t i = 0; i < sizeof scripts / sizeof *scripts; i++) {
        rs_ps *ps;
        assert_ok(rs_ps_create(&ps));
        assert_ok(rs_ps_set_pool(ps, pool));
        assert_ok(rs_ps_add_script(ps, scripts[i], (size_t)-1));
        rs_ps_opts o = {.timeout = 0.2};
        assert_ok(rs_ps_set_opts(ps, &o));
        double t0 = rs_test_now();
        assert_rs(RS_ETIMEDOUT, rs_ps_invoke(ps, NULL));
        double took = rs_test_now() - t0;
        if (took > 2.0)
            fail_msg("a 0.2 s timeout of '%s' ended after %.3f s", scripts[i], took);
        assert_ok(rs_ps_destroy(ps));
    }
    /* The runspace is intact afterwards. */
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_pool(ps, pool));
    assert_ok(rs_ps_add_script(ps, "return (('a'):rep(5)):gsub('a', 'b')", (size_t)-1));
    rs_value *out = NULL;
    assert_ok(rs_ps_invoke(ps, &out));
    assert_int_equal(rs_array_len(out), 2);
    assert_string_equal(rs_value_get_string(rs_array_get(out, 0), NULL), "bbbbb");
    rs_value_destroy(out);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

static void test_stop_ends_a_match(void **state)
{
    (void)state;
    rs_runspace *rs;
    assert_ok(rs_runspace_create(NULL, &rs));
    assert_ok(rs_runspace_open(rs));
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    assert_ok(rs_ps_add_script(ps, "return ('a'):rep(3000):find('.-.-.-.-b')", (size_t)-1));
    rs_async *a;
    assert_ok(rs_ps_begin_invoke(ps, &a));
    struct timespec ts = {0, 50000000};
    nanosleep(&ts, NULL);
    double t0 = rs_test_now();
    assert_ok(rs_ps_stop(ps));
    assert_rs(RS_ESTOPPED, rs_ps_end_invoke(ps, a, NULL));
    if (rs_test_now() - t0 > 2.0)
        fail_msg("stopping a match took %.3f s", rs_test_now() - t0);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_runspace_destroy(rs));
}

/* Matching steps count against the instruction budget: with no timeout, a budget alone ends
 * a pattern that would run for hours, while a normal match under the same budget completes. */
static void test_budget_ends_a_match(void **state)
{
    (void)state;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_RESTRICTED, &iss));
    rs_limits l = {.instructions = 1000000};
    assert_ok(rs_iss_set_limits(iss, &l));
    rs_runspace *rs;
    rs_runspace_opts ro = {.iss = iss};
    assert_ok(rs_runspace_create(&ro, &rs));
    assert_ok(rs_iss_destroy(iss));
    assert_ok(rs_runspace_open(rs));
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    assert_ok(rs_ps_add_script(ps, "return (('key=value '):rep(100)):gsub('(%w+)=(%w+)', '%2=%1')",
                               (size_t)-1));
    assert_ok(rs_ps_invoke(ps, NULL));
    assert_ok(rs_ps_clear(ps));
    assert_ok(rs_ps_add_script(ps, "return ('a'):rep(3000):find('.-.-.-.-b')", (size_t)-1));
    assert_rs(RS_ELIMIT, rs_ps_invoke(ps, NULL));
    assert_string_equal(rs_ps_errmsg(ps), "instruction budget of 1000000 exceeded");
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_runspace_destroy(rs));
}

/* A plain find whose naive search is quadratic (10^11 comparisons here) answers at once. */
static void test_plain_find_is_linear(void **state)
{
    (void)state;
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    rs__open_pattern(L);
    const char *check = "local s = ('a'):rep(1000000)\n"
                        "local needle = ('a'):rep(200000) .. 'b'\n"
                        "assert(s:find(needle, 1, true) == nil)\n"
                        "assert(s:find(needle:sub(1, -2), 1, true) == 1)\n"
                        "assert((s .. needle):find(needle, 1, true) == 1000001)\n";
    if (luaL_dostring(L, check) != LUA_OK)
        fail_msg("%s", lua_tostring(L, -1));
    lua_close(L);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_same_as_lua),          cmocka_unit_test(test_known_results),
    cmocka_unit_test(test_timeout_ends_a_match), cmocka_unit_test(test_stop_ends_a_match),
    cmocka_unit_test(test_budget_ends_a_match),  cmocka_unit_test(test_plain_find_is_linear),
};

RS_TEST_MAIN(tests)
