/*
 * test_iss.c -- initial session state: variables, functions, native commands, modules,
 * naming rules, and immutability once in use.
 */
#include "util.h"

#include <stdatomic.h>
#include <time.h>

static void test_variables_are_copied(void **state)
{
    (void)state;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    rs_value *cfg = rs_value_map();
    assert_ok(rs_map_set(cfg, "retries", rs_value_int(3)));
    assert_ok(rs_map_set(cfg, "hosts", rs_value_array()));
    assert_ok(rs_iss_set_variable(iss, "Config", cfg));
    assert_ok(rs_map_set(cfg, "retries", rs_value_int(99))); /* the ISS kept a copy */
    rs_value_destroy(cfg);
    rs_value *s = rs_value_string("MyValue");
    assert_ok(rs_iss_set_variable(iss, "MyVar", s));
    rs_value_destroy(s);
    rs_runspace *rs = open_runspace(iss);
    assert_eval(rs, "return Config.retries, #Config.hosts, MyVar", "[3,0,\"MyValue\"]");
    assert_ok(rs_runspace_destroy(rs));
    assert_ok(rs_iss_destroy(iss));
}

static void test_names(void **state)
{
    (void)state;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    rs_value *v = rs_value_int(1);
    assert_rs(RS_EINVAL, rs_iss_set_variable(iss, "1x", v));
    assert_contains(rs_iss_errmsg(iss), "not a Lua identifier");
    assert_rs(RS_EINVAL, rs_iss_set_variable(iss, "end", v));
    assert_rs(RS_EINVAL, rs_iss_set_variable(iss, "", v));
    assert_rs(RS_EINVAL, rs_iss_set_variable(iss, NULL, v));
    assert_rs(RS_EEXIST, rs_iss_set_variable(iss, "emit", v));
    assert_contains(rs_iss_errmsg(iss), "built-in");
    assert_rs(RS_EEXIST, rs_iss_add_function(iss, "params", "return 1"));
    assert_ok(rs_iss_set_variable(iss, "x", v));
    assert_rs(RS_EEXIST, rs_iss_add_function(iss, "x", "return 1"));
    assert_contains(rs_iss_errmsg(iss), "already defined");
    assert_rs(RS_EINVAL, rs_iss_set_variable(iss, "y", NULL));
    rs_iss *other = NULL;
    assert_rs(RS_EINVAL, rs_iss_create((rs_profile)7, &other));
    assert_null(other);
    rs_value_destroy(v);
    assert_ok(rs_iss_destroy(iss));
}

static void test_frozen_once_used(void **state)
{
    (void)state;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    rs_pool *pool;
    rs_pool_opts o = {.iss = iss};
    assert_ok(rs_pool_create(&o, &pool));
    rs_value *v = rs_value_int(1);
    assert_rs(RS_EBUSY, rs_iss_set_variable(iss, "late", v));
    assert_contains(rs_iss_errmsg(iss), "can no longer change");
    rs_limits l = {.memory_bytes = 1 << 20};
    assert_rs(RS_EBUSY, rs_iss_set_limits(iss, &l));
    assert_rs(RS_EBUSY, rs_iss_add_function(iss, "f", "return 1"));
    rs_value_destroy(v);
    /* The pool keeps its own reference. */
    assert_ok(rs_iss_destroy(iss));
    assert_ok(rs_pool_open(pool));
    char *j = NULL;
    assert_ok(eval(NULL, pool, "return late == nil", &j, NULL));
    assert_string_equal(j, "[true]");
    rs_free(j);
    assert_ok(rs_pool_destroy(pool));
}

static void test_functions(void **state)
{
    (void)state;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    assert_ok(rs_iss_add_function(iss, "twice", "local x = ... return 2 * x"));
    assert_ok(rs_iss_add_function(iss, "fail", "error('from fail')"));
    assert_rs(RS_ESYNTAX, rs_iss_add_function(iss, "broken", "return +"));
    assert_contains(rs_iss_errmsg(iss), "broken:1:");
    rs_runspace *rs = open_runspace(iss);
    assert_ok(rs_iss_destroy(iss));
    assert_eval(rs, "return twice(21), broken == nil", "[42,true]");
    assert_eval_fails(rs, "fail()", RS_ERUNTIME, "fail:1: from fail");
    assert_ok(rs_runspace_destroy(rs));
}

/* ---- native commands ----------------------------------------------------------------------- */

/* sum(...): adds its integer arguments (and the pipeline item, and a `Bonus` parameter). */
static int cmd_sum(rs_call *call, void *ud)
{
    atomic_int *calls = ud;
    atomic_fetch_add(calls, 1);
    int64_t total = 0;
    for (size_t i = 0; i < rs_call_argc(call); i++) {
        const rs_value *v = rs_call_arg(call, i);
        if (rs_value_type(v) != RS_TINT)
            return rs_call_fail(call, "argument %zu is a %s, not an integer", i + 1,
                                rs_type_name(rs_value_type(v)));
        total += rs_value_get_int(v);
    }
    assert_null(rs_call_arg(call, rs_call_argc(call)));
    if (rs_call_input(call))
        total += rs_value_get_int(rs_call_input(call));
    if (rs_call_param(call, "Bonus"))
        total += rs_value_get_int(rs_call_param(call, "Bonus"));
    assert_null(rs_call_param(call, "Missing"));
    assert_int_not_equal(rs_call_runspace_id(call), 0);
    assert_ok(rs_call_write(call, RS_STREAM_VERBOSE, "summing"));
    return rs_call_emit(call, rs_value_int(total));
}

/* pair(): two results. */
static int cmd_pair(rs_call *call, void *ud)
{
    (void)ud;
    int rc = rs_call_emit(call, rs_value_string("a"));
    return rc ? rc : rs_call_emit(call, rs_value_string("b"));
}

/* wait_for_stop(): runs until the invocation is stopped (at most 10 s). */
static int cmd_wait_for_stop(rs_call *call, void *ud)
{
    (void)ud;
    for (int i = 0; i < 10000 && !rs_call_stopping(call); i++) {
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    return rs_call_stopping(call) ? 0 : rs_call_fail(call, "never stopped");
}

/* fail_plain(): fails without a message of its own (a NULL format). */
static int cmd_fail_plain(rs_call *call, void *ud)
{
    const char *const *no_format = ud;
    return rs_call_fail(call, *no_format);
}

static const char *const null_format = NULL;

static rs_iss *command_iss(atomic_int *calls)
{
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    assert_ok(rs_iss_add_command(iss, "sum", cmd_sum, calls));
    assert_ok(rs_iss_add_command(iss, "pair", cmd_pair, NULL));
    assert_ok(rs_iss_add_command(iss, "wait_for_stop", cmd_wait_for_stop, NULL));
    assert_ok(rs_iss_add_command(iss, "fail_plain", cmd_fail_plain, (void *)&null_format));
    assert_rs(RS_EINVAL, rs_iss_add_command(iss, "nofn", NULL, NULL));
    return iss;
}

static void test_native_command_as_function(void **state)
{
    (void)state;
    atomic_int calls = 0;
    rs_iss *iss = command_iss(&calls);
    rs_runspace *rs = open_runspace(iss);
    assert_ok(rs_iss_destroy(iss));
    assert_eval(rs, "return sum(1, 2, 3), sum(), pair()", "[6,0,\"a\",\"b\"]");
    assert_int_equal(atomic_load(&calls), 2);
    assert_eval_fails(rs, "return sum(1, 'x')", RS_ERUNTIME,
                      "sum: argument 2 is a string, not an integer");
    assert_eval(rs, "local ok, e = pcall(sum, 'x') return ok, e",
                "[false,\"sum: argument 1 is a string, not an integer\"]");
    assert_eval_fails(rs, "return sum(print)", RS_ERUNTIME,
                      "sum: argument[1]: cannot pass a function between runspaces");
    assert_eval_fails(rs, "return fail_plain()", RS_ERUNTIME, "fail_plain: failed");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_native_command_in_pipeline(void **state)
{
    (void)state;
    atomic_int calls = 0;
    rs_iss *iss = command_iss(&calls);
    rs_runspace *rs = open_runspace(iss);
    assert_ok(rs_iss_destroy(iss));
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    /* A script feeds the command one item at a time. */
    assert_ok(rs_ps_add_script(ps, "return 1, 2, 3", (size_t)-1));
    assert_ok(rs_ps_add_command(ps, "sum"));
    assert_ok(rs_ps_add_argument(ps, rs_value_int(10)));
    assert_ok(rs_ps_add_parameter(ps, "Bonus", rs_value_int(100)));
    rs_value *out;
    assert_ok(rs_ps_invoke(ps, &out));
    char *j = json_of(out);
    assert_string_equal(j, "[111,112,113]");
    rs_free(j);
    rs_value_destroy(out);
    assert_int_equal(rs_ps_record_count(ps, RS_STREAM_VERBOSE), 3);
    /* A failing command fails the invocation with its message. */
    assert_ok(rs_ps_clear(ps));
    assert_ok(rs_ps_add_command(ps, "sum"));
    assert_ok(rs_ps_add_argument(ps, rs_value_string("nope")));
    assert_rs(RS_ERUNTIME, rs_ps_invoke(ps, NULL));
    assert_string_equal(rs_ps_errmsg(ps), "sum: argument 1 is a string, not an integer");
    /* A long-running command sees the stop. */
    assert_ok(rs_ps_clear(ps));
    assert_ok(rs_ps_add_command(ps, "wait_for_stop"));
    rs_async *a;
    assert_ok(rs_ps_begin_invoke(ps, &a));
    sleep_for(0.05);
    assert_ok(rs_ps_stop(ps));
    assert_rs(RS_ESTOPPED, rs_ps_end_invoke(ps, a, NULL));
    /* Called from a script as its last act (a tail call: no instruction of the script runs
     * after it), a command that returns after the stop still ends the invocation stopped. */
    assert_ok(rs_ps_clear(ps));
    assert_ok(rs_ps_add_script(ps, "return wait_for_stop()", (size_t)-1));
    assert_ok(rs_ps_begin_invoke(ps, &a));
    sleep_for(0.05);
    assert_ok(rs_ps_stop(ps));
    assert_rs(RS_ESTOPPED, rs_ps_end_invoke(ps, a, NULL));
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_runspace_destroy(rs));
}

/* ---- modules ------------------------------------------------------------------------------- */

static void test_module_from_file(void **state)
{
    (void)state;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    assert_ok(rs_iss_add_module(iss, RS_TEST_FIXTURES "/greet.lua"));
    assert_rs(RS_ENOENT, rs_iss_add_module(iss, RS_TEST_FIXTURES "/missing.lua"));
    assert_contains(rs_iss_errmsg(iss), "missing.lua");
    assert_contains(rs_iss_errmsg(iss), "No such file");
    assert_rs(RS_ESYNTAX, rs_iss_add_module(iss, RS_TEST_FIXTURES "/bad_syntax.lua"));
    assert_contains(rs_iss_errmsg(iss), "bad_syntax.lua:1:");
    assert_rs(RS_EEXIST, rs_iss_add_module(iss, RS_TEST_FIXTURES "/greet.lua"));
    /* A device that never ends is refused rather than read until memory runs out. */
    assert_rs(RS_EIO, rs_iss_add_module(iss, "/dev/zero"));
    assert_contains(rs_iss_errmsg(iss), "larger than");
    rs_runspace *rs = open_runspace(iss);
    assert_ok(rs_iss_destroy(iss));
    assert_eval(rs, "return greet.hello('world'), greet.loaded_as, package.loaded.greet == greet",
                "[\"hello, world\",\"greet\",true]");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_module_by_name(void **state)
{
    (void)state;
    setenv("LUA_PATH_5_4", RS_TEST_FIXTURES "/lib/?.lua;;", 1);
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_RESTRICTED, &iss));
    assert_ok(rs_iss_add_module(iss, "mathx"));
    assert_ok(rs_iss_add_module(iss, "pkg.util"));
    rs_runspace *rs = open_runspace(iss);
    assert_ok(rs_iss_destroy(iss));
    assert_eval(rs, "return mathx.double(4), pkg_util.answer", "[8,42]");
    assert_ok(rs_runspace_destroy(rs));

    /* A module that cannot be found fails every invocation (modules load in the first one),
     * saying so; the runspace stays usable for the next try. */
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    assert_ok(rs_iss_add_module(iss, "no_such_module"));
    rs = open_runspace(iss);
    assert_ok(rs_iss_destroy(iss));
    assert_eval_fails(rs, "return 1", RS_ERUNTIME,
                      "loading the modules: module 'no_such_module' not found");
    assert_eval_fails(rs, "return 1", RS_ERUNTIME,
                      "loading the modules: module 'no_such_module' not found");
    assert_int_equal(rs_runspace_get_state(rs), RS_RUNSPACE_OPENED);
    assert_ok(rs_runspace_destroy(rs));
    unsetenv("LUA_PATH_5_4");
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_variables_are_copied),
    cmocka_unit_test(test_names),
    cmocka_unit_test(test_frozen_once_used),
    cmocka_unit_test(test_functions),
    cmocka_unit_test(test_native_command_as_function),
    cmocka_unit_test(test_native_command_in_pipeline),
    cmocka_unit_test(test_module_from_file),
    cmocka_unit_test(test_module_by_name),
};

RS_TEST_MAIN(tests)
