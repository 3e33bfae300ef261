/*
 * test_runspace.c -- a runspace on its own: lifecycle, the built-ins of docs/design.md section 4,
 * the two profiles, the compile cache, and how values cross between Lua and C.
 */
#include "util.h"

#include <math.h>
#include <stdlib.h>

static void test_lifecycle(void **state)
{
    (void)state;
    rs_runspace *a = NULL, *b = NULL;
    assert_ok(rs_runspace_create(NULL, &a));
    rs_runspace_opts o = {.name = "worker-b"};
    assert_ok(rs_runspace_create(&o, &b));
    assert_int_not_equal(rs_runspace_id(a), rs_runspace_id(b));
    char expected[64];
    snprintf(expected, sizeof expected, "Runspace%llu", (unsigned long long)rs_runspace_id(a));
    assert_string_equal(rs_runspace_name(a), expected);
    assert_string_equal(rs_runspace_name(b), "worker-b");
    assert_int_equal(rs_runspace_get_state(a), RS_RUNSPACE_BEFORE_OPEN);
    assert_int_equal(rs_runspace_availability(a), RS_AVAILABILITY_NONE);

    assert_ok(rs_runspace_open(a));
    assert_int_equal(rs_runspace_get_state(a), RS_RUNSPACE_OPENED);
    assert_int_equal(rs_runspace_availability(a), RS_AVAILABILITY_AVAILABLE);
    assert_true(rs_runspace_memory(a) > 1000);
    assert_rs(RS_EMISUSE, rs_runspace_open(a));

    assert_ok(rs_runspace_close(a));
    assert_int_equal(rs_runspace_get_state(a), RS_RUNSPACE_CLOSED);
    assert_int_equal(rs_runspace_memory(a), 0);
    assert_rs(RS_ECLOSED, rs_runspace_open(a));

    /* Invoking on a runspace that is not open is refused, nothing runs. */
    char *msg = NULL;
    assert_int_equal(eval(b, NULL, "return 1", NULL, &msg), RS_ECLOSED);
    assert_contains(msg, "not open");
    free(msg);

    assert_ok(rs_runspace_destroy(a));
    assert_ok(rs_runspace_destroy(b));
    assert_ok(rs_runspace_destroy(NULL));
    assert_rs(RS_EMISUSE, rs_runspace_open(NULL));
    assert_rs(RS_EMISUSE, rs_runspace_create(NULL, NULL));
}

static void test_destroy_with_bound_invocation(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    assert_rs(RS_EBUSY, rs_runspace_destroy(rs));
    assert_contains(rs_runspace_errmsg(rs), "bound");
    /* Nothing changed: it still runs scripts. */
    assert_ok(rs_ps_add_script(ps, "return 5", (size_t)-1));
    rs_value *out;
    assert_ok(rs_ps_invoke(ps, &out));
    assert_int_equal(rs_value_get_int(rs_array_get(out, 0)), 5);
    rs_value_destroy(out);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_runspace_destroy(rs));
}

static void test_outputs_and_emit(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    assert_eval(rs, "return 1, 'two', 3.5, true", "[1,\"two\",3.5,true]");
    assert_eval(rs, "emit(1) emit('a', 'b') return 2", "[1,\"a\",\"b\",2]");
    assert_eval(rs, "local x = 1", "[]");
    assert_eval(rs, "return nil", "[null]");
    assert_eval(rs, "return 2^53, 7 // 2, 7 / 2", "[9007199254740992.0,3,3.5]");
    assert_eval(rs, "return math.maxinteger, math.mininteger",
                "[9223372036854775807,-9223372036854775808]");
    assert_eval(rs, "return 'a\\0b'", "[\"a\\u0000b\"]");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_tables_to_values(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    /* keys 1..n: array; anything else: map with sorted keys (numbers, then strings). */
    assert_eval(rs, "return {1, 2, 3}", "[[1,2,3]]");
    assert_eval(rs, "return {}", "[[]]");
    assert_eval(rs, "return json.map()", "[{}]");
    assert_eval(rs, "return {b = 1, a = 2, [10] = 'x', [2] = 'y'}",
                "[{\"2\":\"y\",\"10\":\"x\",\"a\":2,\"b\":1}]");
    assert_eval(rs, "return {1, nil, 3}", "[{\"1\":1,\"3\":3}]");
    assert_eval(rs, "return {[1.5] = true}", "[{\"1.5\":true}]");
    assert_eval(rs, "return {x = {y = {z = {1, {w = json.null}}}}}",
                "[{\"x\":{\"y\":{\"z\":[1,{\"w\":null}]}}}]");
    /* A table shared twice (not a cycle) is copied twice. */
    assert_eval(rs, "local t = {1} return {t, t}", "[[[1],[1]]]");
    assert_ok(rs_runspace_destroy(rs));
}

/* Error messages are whole text: a NUL byte does not cut one short, an empty one says so. */
static void test_error_message_text(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    assert_eval_fails(rs, "error('\\0abc', 0)", RS_ERUNTIME, "\\0abc");
    assert_eval_fails(rs, "error('a\\0b')", RS_ERUNTIME, "script:1: a\\0b");
    assert_eval_fails(rs, "error('', 0)", RS_ERUNTIME, "(an error with an empty message)");
    assert_ok(rs_runspace_destroy(rs));
}

/* Runs src on rs and returns its output; *warnings gets its warning records' messages, one
 * per line (free with free). */
static rs_value *run_with_warnings(rs_runspace *rs, const char *src, char **warnings)
{
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    assert_ok(rs_ps_add_script(ps, src, (size_t)-1));
    rs_value *out = NULL;
    int rc = rs_ps_invoke(ps, &out);
    if (rc != 0)
        fail_msg("%s failed: %s %s", src, rs_err_name(rc), rs_ps_errmsg(ps));
    size_t n = rs_ps_record_count(ps, RS_STREAM_WARNING), len = 0;
    char *all = calloc(1, 1);
    for (size_t i = 0; i < n; i++) {
        rs_record r;
        assert_ok(rs_ps_record(ps, RS_STREAM_WARNING, i, &r));
        all = realloc(all, len + r.message_len + 2);
        memcpy(all + len, r.message, r.message_len);
        len += r.message_len;
        all[len++] = '\n';
        all[len] = '\0';
    }
    *warnings = all;
    assert_ok(rs_ps_destroy(ps));
    return out;
}

/* The text an output that cannot be copied crosses as: "<name>: 0x..." */
static void assert_text_of(const rs_value *v, const char *name)
{
    assert_non_null(v);
    assert_int_equal(rs_value_type(v), RS_TSTRING);
    const char *s = rs_value_get_string(v, NULL);
    size_t n = strlen(name);
    if (strncmp(s, name, n) != 0 || strncmp(s + n, ": 0x", 4) != 0)
        fail_msg("%s is not the text of a %s", s, name);
}

/* A value no copy can carry (function, coroutine, userdata) crosses as its text, as Lua's
 * tostring shows it, and a warning says so, naming the path; the run succeeds. So a script
 * file ending in `return M` (a module table of functions) runs as under lua5.4. */
static void test_values_that_cannot_cross_pass_as_text(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    char *w;
    rs_value *out = run_with_warnings(rs, "return 1, 2, {conn = function() end}", &w);
    assert_int_equal(rs_array_len(out), 3);
    assert_text_of(rs_map_get(rs_array_get(out, 2), "conn"), "function");
    assert_contains(w, "output[3].conn: a function cannot cross between runspaces; it is "
                       "passed as the text \"function: 0x");
    assert_int_equal(line_count(w), 1);
    rs_value_destroy(out);
    free(w);

    out = run_with_warnings(rs,
                            "local f = function() end return {list = {1, io.stdout}}, 5, f, "
                            "{['odd key'] = coroutine.create(print), f, f}",
                            &w);
    assert_int_equal(rs_array_len(out), 4);
    /* A userdata is named by its metatable's __name, as luaL_tolstring does. */
    assert_text_of(rs_array_get(rs_map_get(rs_array_get(out, 0), "list"), 1), "FILE*");
    assert_int_equal(rs_value_get_int(rs_array_get(out, 1)), 5);
    assert_text_of(rs_array_get(out, 2), "function");
    const rs_value *t = rs_array_get(out, 3);
    assert_text_of(rs_map_get(t, "odd key"), "thread");
    /* The same function gives the same text each time it is met. */
    assert_string_equal(rs_value_get_string(rs_map_get(t, "1"), NULL),
                        rs_value_get_string(rs_array_get(out, 2), NULL));
    assert_contains(w, "output[1].list[2]: a userdata cannot cross");
    assert_contains(w, "output[3]: a function cannot cross");
    /* One warning per output, counting the others in it. */
    assert_contains(w, "(and 2 more such values in it)");
    assert_int_equal(line_count(w), 3);
    rs_value_destroy(out);
    free(w);

    out = run_with_warnings(rs, "emit(1) emit(print) return 2", &w);
    assert_int_equal(rs_array_len(out), 3);
    assert_text_of(rs_array_get(out, 1), "function");
    assert_contains(w, "output[2]: a function cannot cross");
    rs_value_destroy(out);
    free(w);

    /* What no text stands for still fails, naming the path. */
    assert_eval_fails(rs, "local t = {} t.self = t return t", RS_EVALUE,
                      "output[1].self: cannot pass a table that contains itself");
    assert_eval_fails(rs, "return {[true] = 1}", RS_EVALUE, "cannot use a boolean as a map key");
    assert_eval_fails(rs, "emit(1) local t = {} t[1] = t emit(t)", RS_EVALUE,
                      "output[2][1]: cannot pass a table that contains itself");
    /* A long path keeps its head and tail. */
    assert_eval_fails(rs,
                      "local t = {} local c = t for i = 1, 100 do c.x = {} c = c.x end "
                      "c.f = t return t",
                      RS_EVALUE, "output[1].x.x.x");
    assert_eval_fails(rs,
                      "local t = {} local c = t for i = 1, 100 do c.x = {} c = c.x end "
                      "c.f = t return t",
                      RS_EVALUE, "x.x....x.x");
    assert_eval_fails(rs,
                      "local t = {} local c = t for i = 1, 100 do c.x = {} c = c.x end "
                      "c.f = t return t",
                      RS_EVALUE, "x.x.f: cannot pass a table that contains itself");
    out = run_with_warnings(rs,
                            "local t = {} local c = t for i = 1, 100 do c.x = {} c = c.x end "
                            "c.f = print return t",
                            &w);
    assert_contains(w, "output[1].x.x.x");
    assert_contains(w, "x.x....x.x");
    assert_contains(w, "x.x.f: a function cannot cross");
    rs_value_destroy(out);
    free(w);
    /* A copy that shared references would make far larger than the value is refused at once,
     * without a memory limit too: tables ({x, x} 40 deep, 2^40 values) and long strings. */
    assert_eval_fails(rs, "local x = {1} for i = 1, 40 do x = {x, x} end return x", RS_EVALUE,
                      "the copy would be more than 16 times the value's own");
    assert_eval_fails(rs, "local x = {1} for i = 1, 40 do x = {x, x} end shared.set('k', x)",
                      RS_ERUNTIME, "shared.set: value");
    assert_eval_fails(rs,
                      "local s = ('x'):rep(1 << 20) local t = {} for i = 1, 2000 do t[i] = s end "
                      "return t",
                      RS_EVALUE, "output[1][64]: the copy would be more than 16 times");
    /* References to the same table or string a few times over are copied as they are. */
    assert_eval(rs,
                "local s = ('x'):rep(1 << 20) local t = {} for i = 1, 10 do t[i] = s end "
                "local u = {t, t, t} return #json.encode(u)",
                "[31457377]");
    /* Nesting: 512 levels pass, 513 do not. */
    assert_eval(rs,
                "local t = {} local c = t for i = 1, 511 do c[1] = {} c = c[1] end "
                "return #json.encode(t)",
                "[1024]");
    assert_eval_fails(rs,
                      "local t = {} local c = t for i = 1, 512 do c[1] = {} c = c[1] end "
                      "return t",
                      RS_EVALUE, "nested deeper than 512 levels");
    /* The runspace is fine afterwards. */
    assert_eval(rs, "return 'ok'", "[\"ok\"]");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_values_into_lua(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    assert_ok(rs_ps_add_script(ps,
                               "local v = ... "
                               "return math.type(v.i), math.type(v.d), type(v.s), #v.s, "
                               "type(v.a), #v.a, v.a[2] == json.null, type(v.m), "
                               "getmetatable(v.m) ~= nil, v.b, v.n == json.null",
                               (size_t)-1));
    rs_value *m = rs_value_map();
    assert_ok(rs_map_set(m, "i", rs_value_int(3)));
    assert_ok(rs_map_set(m, "d", rs_value_double(3.0)));
    assert_ok(rs_map_set(m, "s", rs_value_stringn("a\0b", 3)));
    rs_value *a = rs_value_array();
    assert_ok(rs_array_push(a, rs_value_int(1)));
    assert_ok(rs_array_push(a, rs_value_null()));
    assert_ok(rs_map_set(m, "a", a));
    assert_ok(rs_map_set(m, "m", rs_value_map()));
    assert_ok(rs_map_set(m, "b", rs_value_bool(false)));
    assert_ok(rs_map_set(m, "n", rs_value_null()));
    assert_ok(rs_ps_add_input(ps, m));
    rs_value *out;
    assert_ok(rs_ps_invoke(ps, &out));
    char *j = json_of(out);
    assert_string_equal(
        j, "[\"integer\",\"float\",\"string\",3,\"table\",2,true,\"table\",true,false,true]");
    rs_free(j);
    rs_value_destroy(out);
    /* A null input item is nil in the script, and still the first vararg. */
    assert_ok(rs_ps_clear(ps));
    assert_ok(rs_ps_add_script(ps, "return select('#', ...), _ == nil", (size_t)-1));
    assert_ok(rs_ps_add_input(ps, rs_value_null()));
    assert_ok(rs_ps_invoke(ps, &out));
    j = json_of(out);
    assert_string_equal(j, "[1,true]");
    rs_free(j);
    rs_value_destroy(out);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_runspace_destroy(rs));
}

static void test_json_builtin(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    assert_eval(rs, "return json.encode({a = {1, 2}, b = 'x'})",
                "[\"{\\\"a\\\":[1,2],\\\"b\\\":\\\"x\\\"}\"]");
    assert_eval(rs,
                "local t = json.decode('{\"k\": [1, 2.5, null, {}]}') "
                "return math.type(t.k[1]), math.type(t.k[2]), t.k[3] == json.null, "
                "json.encode(t.k[4]), json.encode(json.decode('[]'))",
                "[\"integer\",\"float\",true,\"{}\",\"[]\"]");
    assert_eval(rs, "return json.encode({1, 2}, {pretty = true})", "[\"[\\n  1,\\n  2\\n]\"]");
    assert_eval_fails(rs, "return json.decode('{\"a\": 1,}')", RS_ERUNTIME, "json.decode: line 1");
    assert_eval_fails(rs, "return json.decode('[1] x')", RS_ERUNTIME, "json.decode");
    assert_eval_fails(rs, "return json.encode({0/0})", RS_ERUNTIME, "json.encode: value[1]");
    assert_eval_fails(rs, "return json.encode({f = print})", RS_ERUNTIME,
                      "json.encode: value.f: cannot pass a function");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_builtins_present(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    assert_eval(rs,
                "return type(emit), type(write_error), type(write_warning), type(write_verbose), "
                "type(write_debug), type(write_information), type(write_progress), type(sleep), "
                "type(random), type(random_seed), type(shared.get), type(json.encode), "
                "type(time.now), type(params)",
                "[\"function\",\"function\",\"function\",\"function\",\"function\",\"function\","
                "\"function\",\"function\",\"function\",\"function\",\"function\",\"function\","
                "\"function\",\"table\"]");
    char expect[128];
    snprintf(expect, sizeof expect, "[%llu,\"%s\"]", (unsigned long long)rs_runspace_id(rs),
             rs_runspace_name(rs));
    assert_eval(rs, "return runspace.id, runspace.name", expect);
    assert_eval(rs,
                "local a = time.monotonic() local b = time.monotonic() "
                "return b >= a, time.now() > 1.7e9",
                "[true,true]");
    assert_eval(rs,
                "random_seed(42) local a = random(1000) random_seed(42) "
                "return a == random(1000), random() < 1",
                "[true,true]");
    assert_eval(rs, "local t0 = time.monotonic() sleep(0.05) return time.monotonic() - t0 >= 0.045",
                "[true]");
    assert_eval_fails(rs, "sleep(-1)", RS_ERUNTIME, "non-negative");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_shared_store(void **state)
{
    (void)state;
    rs_shared *store;
    assert_ok(rs_shared_create(&store));
    rs_runspace_opts o = {.shared = store};
    rs_runspace *a = NULL, *b = NULL;
    assert_ok(rs_runspace_create(&o, &a));
    assert_ok(rs_runspace_create(&o, &b));
    assert_ok(rs_runspace_open(a));
    assert_ok(rs_runspace_open(b));
    assert_eval(a,
                "shared.set('cfg', {n = 1, list = {1, 2}}) return shared.incr('hits'), "
                "shared.incr('hits', 10), shared.add('once', 1), shared.add('once', 2)",
                "[1,11,true,false]");
    assert_eval(b,
                "local c = shared.get('cfg') return c.n, #c.list, shared.get('hits'), "
                "shared.get('missing'), shared.cas('once', 1, 'one'), shared.cas('once', 1, 'x'), "
                "shared.get('once')",
                "[1,2,11,null,true,false,\"one\"]");
    assert_eval(b, "shared.set('once', nil) return shared.keys()", "[[\"cfg\",\"hits\"]]");
    assert_eval_fails(a, "shared.incr('cfg')", RS_ERUNTIME, "not an integer");
    assert_eval_fails(a, "shared.set('f', print)", RS_ERUNTIME,
                      "shared.set: value: cannot pass a function");
    /* The C side sees the same store. */
    rs_value *v = NULL;
    assert_ok(rs_shared_get(store, "hits", &v));
    assert_int_equal(rs_value_get_int(v), 11);
    rs_value_destroy(v);
    int64_t n;
    assert_ok(rs_shared_incr(store, "hits", -1, &n));
    assert_int_equal(n, 10);
    assert_rs(RS_ENOENT, rs_shared_get(store, "nope", &v));
    assert_ok(rs_runspace_destroy(a));
    assert_ok(rs_runspace_destroy(b));
    assert_ok(rs_shared_destroy(store));
}

static void test_default_profile(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    assert_eval(rs,
                "return type(io), type(os.execute), type(debug), type(loadfile), "
                "type(require), type(package.loadlib)",
                "[\"table\",\"function\",\"table\",\"function\",\"function\",\"function\"]");
    assert_eval_fails(rs, "os.exit(3)", RS_ERUNTIME, "os.exit is not available in a runspace");
    assert_eval_fails(rs, "os.setlocale('C')", RS_ERUNTIME, "os.setlocale is not available");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_restricted_profile(void **state)
{
    (void)state;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_RESTRICTED, &iss));
    rs_runspace *rs = open_runspace(iss);
    assert_ok(rs_iss_destroy(iss));
    assert_eval(rs,
                "return io == nil, os.execute == nil, os.remove == nil, os.rename == nil, "
                "os.getenv == nil, debug == nil, loadfile == nil, dofile == nil, "
                "package.loadlib == nil, package.cpath, #package.searchers",
                "[true,true,true,true,true,true,true,true,true,\"\",2]");
    /* What stays: the pure libraries and the built-ins. */
    assert_eval(rs,
                "return string.rep('a', 3), math.floor(2.5), table.concat({1, 2}, ','), "
                "os.time() > 0, json.encode({1}), type(require)",
                "[\"aaa\",2,\"1,2\",true,\"[1]\",\"function\"]");
    assert_eval_fails(rs, "return require('socket.core')", RS_ERUNTIME, "socket.core");
    assert_eval_fails(rs, "os.exit()", RS_ERUNTIME, "os.exit is not available");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_binary_chunks_refused(void **state)
{
    (void)state;
    for (int p = 0; p < 2; p++) {
        rs_iss *iss;
        assert_ok(rs_iss_create(p ? RS_PROFILE_RESTRICTED : RS_PROFILE_DEFAULT, &iss));
        rs_runspace *rs = open_runspace(iss);
        assert_ok(rs_iss_destroy(iss));
        assert_eval(rs,
                    "local bin = string.dump(function() return 1 end) "
                    "local f, err = load(bin) return f == nil, err",
                    "[true,\"binary chunks cannot be loaded in a runspace\"]");
        /* A mode without 'b' refuses it with Lua's message. */
        assert_eval(rs, "return load(string.dump(function() end), 'x', 't')",
                    "[null,\"attempt to load a binary chunk (mode is 't')\"]");
        /* Mode "b" answers as Lua does, nil and a message, and still loads nothing. */
        assert_eval(rs, "return load(string.dump(function() end), 'x', 'b')",
                    "[null,\"binary chunks cannot be loaded in a runspace\"]");
        assert_eval(rs, "return load('return 1', 'x', 'b')",
                    "[null,\"attempt to load a text chunk (mode is 'b')\"]");
        assert_eval(rs, "return load('return 40 + 2')()", "[42]");
        assert_ok(rs_runspace_destroy(rs));
    }
}

static void test_compile_cache(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    /* The same source runs as the same compiled function; another source does not. */
    const char *src = "return tostring(debug.getinfo(1, 'f').func)";
    char *a = NULL, *b = NULL, *c = NULL;
    assert_ok(eval(rs, NULL, src, &a, NULL));
    assert_ok(eval(rs, NULL, src, &b, NULL));
    assert_ok(eval(rs, NULL, "return tostring(debug.getinfo(1, 'f').func) -- other", &c, NULL));
    assert_string_equal(a, b);
    assert_string_not_equal(a, c);
    rs_free(a);
    rs_free(b);
    rs_free(c);
    assert_ok(rs_runspace_destroy(rs));
}

static void test_globals_persist_params_do_not(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    /* Like a PowerShell runspace: globals a script sets persist between invocations. */
    assert_eval(rs, "counter = (counter or 0) + 1 return counter", "[1]");
    assert_eval(rs, "counter = (counter or 0) + 1 return counter", "[2]");
    /* Named parameters are globals only while their invocation runs. */
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    assert_ok(rs_ps_add_script(ps, "return Name, params.Name, counter", (size_t)-1));
    assert_ok(rs_ps_add_parameter(ps, "Name", rs_value_string("x")));
    assert_ok(rs_ps_add_parameter(ps, "counter", rs_value_int(100)));
    rs_value *out;
    assert_ok(rs_ps_invoke(ps, &out));
    char *j = json_of(out);
    assert_string_equal(j, "[\"x\",\"x\",100]");
    rs_free(j);
    rs_value_destroy(out);
    assert_ok(rs_ps_destroy(ps));
    assert_eval(rs, "return Name == nil, counter, next(params) == nil", "[true,2,true]");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_coroutines(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    assert_eval(rs,
                "local co = coroutine.create(function(a) local b = coroutine.yield(a + 1) "
                "return b * 2 end) "
                "local _, x = coroutine.resume(co, 1) local _, y = coroutine.resume(co, 10) "
                "local ok, e = coroutine.resume(co) return x, y, ok, e",
                "[2,20,false,\"cannot resume dead coroutine\"]");
    assert_eval(rs,
                "local gen = coroutine.wrap(function() for i = 1, 3 do coroutine.yield(i) end end) "
                "return gen(), gen(), gen()",
                "[1,2,3]");
    assert_eval_fails(rs, "coroutine.wrap(function() error('inner') end)()", RS_ERUNTIME, "inner");
    assert_eval(rs,
                "local co co = coroutine.create(function() return coroutine.resume(co) end) "
                "return coroutine.resume(co)",
                "[true,false,\"cannot resume non-suspended coroutine\"]");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_guarded_builtins_keep_their_meaning(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    /* xpcall: the handler runs for ordinary errors, arguments pass, yields cross it. */
    assert_eval(rs,
                "return xpcall(function() error('x') end, function(m) return 'handled: ' .. m end)",
                "[false,\"handled: script:1: x\"]");
    assert_eval(rs, "return xpcall(function(a, b) return a + b end, print, 1, 2)", "[true,3]");
    assert_eval(rs,
                "local co = coroutine.wrap(function() return xpcall(function() "
                "coroutine.yield(1) return 2 end, print) end) return co(), co()",
                "[1,true,2]");
    assert_eval_fails(rs, "xpcall(print)", RS_ERUNTIME, "bad argument #2 to 'xpcall'");
    /* setmetatable: finalizers still run, with the object, and their errors stay theirs. */
    assert_eval(rs,
                "local seen setmetatable({tag = 't'}, {__gc = function(o) seen = o.tag end}) "
                "collectgarbage() collectgarbage() return seen",
                "[\"t\"]");
    assert_eval(rs,
                "setmetatable({}, {__gc = function() error('in gc') end}) collectgarbage() "
                "return 'still running'",
                "[\"still running\"]");
    assert_eval(rs,
                "local mt = {__index = function(t, k) return k .. '!' end} "
                "local t = setmetatable({}, mt) return t.x, getmetatable(t) == mt",
                "[\"x!\",true]");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_memory_per_runspace(void **state)
{
    (void)state;
    /* An open idle runspace with the default ISS stays well under 64 KiB of Lua memory. */
    rs_runspace *rs = open_runspace(NULL);
    size_t bytes = rs_runspace_memory(rs);
    if (bytes > 64 * 1024)
        fail_msg("an idle runspace uses %zu bytes", bytes);
    assert_ok(rs_runspace_destroy(rs));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_lifecycle),
    cmocka_unit_test(test_destroy_with_bound_invocation),
    cmocka_unit_test(test_outputs_and_emit),
    cmocka_unit_test(test_tables_to_values),
    cmocka_unit_test(test_values_that_cannot_cross_pass_as_text),
    cmocka_unit_test(test_error_message_text),
    cmocka_unit_test(test_values_into_lua),
    cmocka_unit_test(test_json_builtin),
    cmocka_unit_test(test_builtins_present),
    cmocka_unit_test(test_shared_store),
    cmocka_unit_test(test_default_profile),
    cmocka_unit_test(test_restricted_profile),
    cmocka_unit_test(test_binary_chunks_refused),
    cmocka_unit_test(test_compile_cache),
    cmocka_unit_test(test_globals_persist_params_do_not),
    cmocka_unit_test(test_coroutines),
    cmocka_unit_test(test_guarded_builtins_keep_their_meaning),
    cmocka_unit_test(test_memory_per_runspace),
};

RS_TEST_MAIN(tests)
