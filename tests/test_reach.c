/*
 * test_reach.c -- every path by which Lua code runs is reached by a stop, a timeout and the
 * instruction budget: finalizers (assigned late, callable tables, many of them, at close),
 * __close handlers run by coroutine.close and coroutine.wrap, debug hooks, message handlers,
 * module loading, the runner's own use of the globals, and output conversion.
 *
 * Each case that once hung has a bound far below the CTest timeout, so that a regression
 * fails by an assertion on the time taken, or by the timeout, never by hanging the suite.
 */
#include "util.h"

#include "runspace_int.h"

#include <pthread.h>
#include <unistd.h>

/* Runs src on rs with an invocation timeout (seconds, 0 = none) and returns the result code;
 * *msg (may be NULL) gets a copy of the message and *took (may be NULL) the seconds taken. */
static int run_timed(rs_runspace *rs, const char *src, double timeout, char **msg, double *took)
{
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    assert_ok(rs_ps_add_script(ps, src, (size_t)-1));
    rs_ps_opts o = {.timeout = timeout};
    assert_ok(rs_ps_set_opts(ps, &o));
    double t0 = rs_test_now();
    int rc = rs_ps_invoke(ps, NULL);
    if (took)
        *took = rs_test_now() - t0;
    if (msg)
        *msg = strdup(rs_ps_errmsg(ps));
    assert_ok(rs_ps_destroy(ps));
    return rc;
}

/* Asserts that src, run with a 0.2 s timeout, times out within `bound` seconds. */
static void assert_times_out(rs_runspace *rs, const char *src, double bound)
{
    char *msg;
    double took;
    int rc = run_timed(rs, src, 0.2, &msg, &took);
    if (rc != RS_ETIMEDOUT)
        fail_msg("%s returned %s (%s), expected RS_ETIMEDOUT", src, rs_err_name(rc), msg);
    if (took > bound)
        fail_msg("%s took %.2f s to time out (bound %.2f s)", src, took, bound);
    free(msg);
}

static void test_late_finalizer(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    /* The start-up probe recognised this Lua's thread layout (or nothing below could pass). */
    assert_true(rs__interrupt_can_break_in());
    /* __gc set after setmetatable: Lua still calls it, with hooks off. */
    assert_times_out(rs,
                     "local mt = {__gc = true} setmetatable({}, mt) "
                     "mt.__gc = function() while true do end end collectgarbage() return 1",
                     2.0);
    /* A callable table as the finalizer. */
    assert_times_out(rs,
                     "setmetatable({}, {__gc = setmetatable({}, {__call = function() "
                     "while true do end end})}) collectgarbage() return 1",
                     2.0);
    /* A finalizer that the collector, not the script, runs. */
    assert_times_out(rs,
                     "setmetatable({}, {__gc = function() while true do end end}) "
                     "local t = {} for i = 1, 1e7 do t[i % 100] = {i} end return 1",
                     2.0);
    /* The runspace still works, and a finalizer that returns still runs. */
    assert_eval(rs,
                "done = false setmetatable({}, {__gc = function() done = true end}) "
                "collectgarbage() return done",
                "[true]");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_many_finalizers(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    /* Once one finalizer is cut short, the others are disarmed: not one period each. */
    assert_times_out(rs,
                     "for i = 1, 2000 do local mt = {__gc = true} setmetatable({}, mt) "
                     "mt.__gc = function() while true do end end end collectgarbage() return 1",
                     2.0);
    assert_eval(rs, "return 7", "[7]");
    assert_ok(rs_runspace_destroy(rs));
}

/* The identity of a script's finalizer is kept: Lua sees what the script stored. */
static void test_finalizer_identity(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    assert_eval(rs,
                "local f = function() end local mt = {__gc = f} setmetatable({}, mt) "
                "return rawget(mt, '__gc') == f",
                "[true]");
    assert_eval_fails(rs, "setmetatable(1, {})", RS_ERUNTIME,
                      "bad argument #1 to 'setmetatable' (table expected, got number)");
    assert_eval_fails(rs, "setmetatable(setmetatable({}, {__metatable = 1}), {})", RS_ERUNTIME,
                      "cannot change a protected metatable");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_close_handlers(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    /* coroutine.close runs the suspended coroutine's __close handlers. */
    assert_times_out(rs,
                     "local co = coroutine.create(function() local x <close> = setmetatable({}, "
                     "{__close = function() while true do end end}) coroutine.yield() end) "
                     "coroutine.resume(co) coroutine.close(co) return 1",
                     2.0);
    /* A wrapped coroutine that dies in the interrupt hook leaves hooks off on itself; its
     * __close handlers then run when wrap closes it. */
    assert_times_out(rs,
                     "local f = coroutine.wrap(function() local x <close> = setmetatable({}, "
                     "{__close = function() while true do end end}) while true do end end) f()",
                     2.0);
    /* coroutine.close keeps Lua's answers. */
    assert_eval(rs,
                "local co = coroutine.create(function() local x <close> = setmetatable({}, "
                "{__close = function() error('in close', 0) end}) coroutine.yield() end) "
                "coroutine.resume(co) return coroutine.close(co)",
                "[false,\"in close\"]");
    assert_eval_fails(rs, "coroutine.close(coroutine.running())", RS_ERUNTIME,
                      "cannot close a running coroutine");
    assert_eval(rs,
                "local f = coroutine.wrap(function() local x <close> = setmetatable({}, "
                "{__close = function() error('replaced', 0) end}) error('first', 0) end) "
                "return pcall(f)",
                "[false,\"replaced\"]");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_hooks_and_handlers(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    /* A debug hook of the script's own runs with hooks off. */
    assert_times_out(rs,
                     "debug.sethook(function() while true do end end, '', 1) "
                     "local x = 0 x = x + 1 return x",
                     2.0);
    /* xpcall's message handler. Each interruption meets the handler again (Lua calls it for
     * every error, nested up to 200 deep), so each must reach it at once, not a watchdog
     * period later: 200 periods would be over a second. */
    assert_times_out(
        rs, "return xpcall(function() error('x') end, function() while true do end end)", 1.0);
    /* An error object whose __tostring loops, met by the runner's message handler. */
    assert_times_out(rs, "error(setmetatable({}, {__tostring = function() while true do end end}))",
                     2.0);
    assert_ok(rs_runspace_destroy(rs));
}

typedef struct stopper {
    rs_ps *ps;
    double after;
} stopper;

static void *stop_later(void *arg)
{
    stopper *s = arg;
    sleep_for(s->after);
    rs_ps_stop(s->ps);
    return NULL;
}

/* A stop reaches a finalizer just like a timeout. */
static void test_stop_in_finalizer(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    assert_ok(rs_ps_add_script(ps,
                               "local mt = {__gc = true} setmetatable({}, mt) "
                               "mt.__gc = function() while true do end end "
                               "collectgarbage() return 1",
                               (size_t)-1));
    stopper s = {ps, 0.2};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_later, &s), 0);
    double t0 = rs_test_now();
    assert_rs(RS_ESTOPPED, rs_ps_invoke(ps, NULL));
    assert_true(rs_test_now() - t0 < 2.0);
    pthread_join(t, NULL);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_runspace_destroy(rs));
}

/* Without any timeout, the budget counts what finalizers run too. */
static void test_budget_in_finalizer(void **state)
{
    (void)state;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_RESTRICTED, &iss));
    rs_limits l = {.instructions = 1000000};
    assert_ok(rs_iss_set_limits(iss, &l));
    rs_runspace *rs = open_runspace(iss);
    assert_ok(rs_iss_destroy(iss));
    char *msg;
    double took;
    int rc = run_timed(rs,
                       "local mt = {__gc = true} setmetatable({}, mt) "
                       "mt.__gc = function() while true do end end collectgarbage() return 1",
                       0, &msg, &took);
    if (rc != RS_ELIMIT)
        fail_msg("returned %s (%s), expected RS_ELIMIT", rs_err_name(rc), msg);
    assert_true(took < 5.0);
    free(msg);
    assert_eval(rs, "return 2", "[2]");
    assert_ok(rs_runspace_destroy(rs));
}

/* Finalizers that lua_close runs are bounded: destroy returns within the close grace. */
static void test_finalizer_at_close(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    assert_eval(rs,
                "G = setmetatable({}, {__gc = function() while true do end end}) "
                "H = {} for i = 1, 100 do H[i] = setmetatable({}, {__gc = function() "
                "while true do end end}) end return 'returned'",
                "[\"returned\"]");
    double t0 = rs_test_now();
    assert_ok(rs_runspace_destroy(rs));
    double took = rs_test_now() - t0;
    if (took > 3.0)
        fail_msg("closing took %.2f s", took);

    /* In a pool too, where an item's reset after running out of memory closes the state. */
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    rs_limits lim = {.memory_bytes = 4u << 20};
    assert_ok(rs_iss_set_limits(iss, &lim));
    rs_pool *pool;
    rs_pool_opts po = {.iss = iss, .min_runspaces = 1, .max_runspaces = 1};
    assert_ok(rs_pool_create(&po, &pool));
    assert_ok(rs_iss_destroy(iss));
    assert_ok(rs_pool_open(pool));
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_pool(ps, pool));
    assert_ok(rs_ps_add_script(ps,
                               "G = setmetatable({}, {__gc = function() while true do end end}) "
                               "if _ == 1 then local t = {} while true do t[#t + 1] = "
                               "('x'):rep(1000) .. #t end end return _",
                               (size_t)-1));
    rs_ps_opts o = {.flags = RS_PS_ITEM_RESULTS};
    assert_ok(rs_ps_set_opts(ps, &o));
    for (int i = 1; i <= 2; i++)
        assert_ok(rs_ps_add_input(ps, rs_value_int(i)));
    t0 = rs_test_now();
    assert_ok(rs_ps_invoke(ps, NULL));
    assert_int_equal(rs_ps_item_count(ps), 2);
    rs_item_result it;
    assert_ok(rs_ps_item(ps, 0, &it));
    assert_int_equal(it.status, RS_ITEM_ERROR);
    assert_int_equal(it.code, RS_ENOMEM);
    assert_ok(rs_ps_item(ps, 1, &it));
    assert_int_equal(it.status, RS_ITEM_OK);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
    took = rs_test_now() - t0;
    if (took > 5.0)
        fail_msg("the run and the pool's close took %.2f s", took);
}

/* Module code runs inside the first invocation, under its timeout and stop. */
static void test_module_under_timeout(void **state)
{
    (void)state;
    char path[] = "/tmp/rs_test_loop_XXXXXX.lua";
    write_temp_lua(path, "while true do end");
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    int rc = rs_iss_add_module(iss, path);
    unlink(path);
    assert_ok(rc);
    rs_runspace *rs = open_runspace(iss);
    assert_ok(rs_iss_destroy(iss));
    char *msg;
    double took;
    assert_rs(RS_ETIMEDOUT, run_timed(rs, "return 1", 0.2, &msg, &took));
    assert_contains(msg, "timed out");
    assert_true(took < 2.0);
    free(msg);
    /* And a stop. */
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    assert_ok(rs_ps_add_script(ps, "return 1", (size_t)-1));
    stopper s = {ps, 0.2};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_later, &s), 0);
    assert_rs(RS_ESTOPPED, rs_ps_invoke(ps, NULL));
    pthread_join(t, NULL);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_runspace_destroy(rs));
}

/* The runner touches the globals raw: a script's metatable on _G runs no code of its own
 * there, and every item still gets its result. */
static void test_runner_uses_raw_globals(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    assert_ok(rs_ps_add_script(ps,
                               "local p = rawget(_G, 'params') rawset(_G, '_', nil) "
                               "rawset(_G, 'params', nil) setmetatable(_G, {__newindex = "
                               "function() while true do end end, __index = function() "
                               "while true do end end}) return 'ok'",
                               (size_t)-1));
    assert_ok(rs_ps_add_parameter(ps, "p", rs_value_int(5)));
    rs_ps_opts o = {.flags = RS_PS_ITEM_RESULTS, .timeout = 5};
    assert_ok(rs_ps_set_opts(ps, &o));
    assert_ok(rs_ps_add_input(ps, rs_value_int(1)));
    assert_ok(rs_ps_add_input(ps, rs_value_int(2)));
    double t0 = rs_test_now();
    rs_value *out = NULL;
    assert_ok(rs_ps_invoke(ps, &out));
    assert_true(rs_test_now() - t0 < 2.0);
    char *json = json_of(out);
    assert_string_equal(json, "[\"ok\",\"ok\"]");
    rs_free(json);
    rs_value_destroy(out);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_runspace_destroy(rs));
}

/* Converting the output (a table that is 2^24 nodes once copied) is stopped by the timeout. */
static void test_output_conversion_times_out(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    /* 900,000 values made at C speed, referenced 15 times: a copy of 13.5 million values,
     * under the 16-fold growth that would be refused at once. */
#define BIG_SHARED                                                                                 \
    "local t = table.pack(('x'):rep(900000):byte(1, -1)) local u = {} "                            \
    "for i = 1, 15 do u[i] = t end "
    assert_times_out(rs, BIG_SHARED "return u", 3.0);
    assert_times_out(rs, BIG_SHARED "emit(u)", 3.0);
    assert_times_out(rs, BIG_SHARED "json.encode(u)", 3.0);
#undef BIG_SHARED
    assert_ok(rs_runspace_destroy(rs));
}

/* A runspace replaced in the middle of an invocation (its item ran out of memory) keeps the
 * invocation's timeout and budget for the items after it. */
static void test_limits_survive_a_reset(void **state)
{
    (void)state;
    for (int budget = 0; budget < 2; budget++) {
        rs_iss *iss;
        assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
        rs_limits lim = {.memory_bytes = 4u << 20, .instructions = budget ? 5000000 : 0};
        assert_ok(rs_iss_set_limits(iss, &lim));
        rs_runspace *rs = open_runspace(iss);
        assert_ok(rs_iss_destroy(iss));
        rs_ps *ps;
        assert_ok(rs_ps_create(&ps));
        assert_ok(rs_ps_set_runspace(ps, rs));
        assert_ok(rs_ps_add_script(ps,
                                   "if _ == 1 then local t = {} while true do t[#t + 1] = "
                                   "('x'):rep(1000) .. #t end end while true do end",
                                   (size_t)-1));
        rs_ps_opts o = {.flags = RS_PS_ITEM_RESULTS, .timeout = budget ? 0 : 0.5};
        assert_ok(rs_ps_set_opts(ps, &o));
        assert_ok(rs_ps_add_input(ps, rs_value_int(1)));
        assert_ok(rs_ps_add_input(ps, rs_value_int(2)));
        double t0 = rs_test_now();
        int rc = rs_ps_invoke(ps, NULL);
        assert_true(rs_test_now() - t0 < 10.0);
        rs_item_result it;
        assert_ok(rs_ps_item(ps, 0, &it));
        assert_int_equal(it.code, RS_ENOMEM);
        assert_ok(rs_ps_item(ps, 1, &it));
        if (budget) {
            assert_ok(rc);
            assert_int_equal(it.code, RS_ELIMIT);
        } else {
            assert_rs(RS_ETIMEDOUT, rc);
            assert_int_equal(it.code, RS_ETIMEDOUT);
        }
        assert_ok(rs_ps_destroy(ps));
        assert_ok(rs_runspace_destroy(rs));
    }
}

/* Lua's warnings, and the errors of finalizers that Lua reports as warnings, reach the
 * warning stream instead of vanishing; "@off" silences them. */
static void test_warnings_are_records(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    assert_ok(rs_ps_add_script(ps,
                               "warn('hello ', 'world') setmetatable({}, {__gc = function() "
                               "error('boom') end}) collectgarbage() warn('@off') warn('hidden') "
                               "warn('@on') return 1",
                               (size_t)-1));
    assert_ok(rs_ps_invoke(ps, NULL));
    assert_int_equal(rs_ps_record_count(ps, RS_STREAM_WARNING), 2);
    rs_record r;
    assert_ok(rs_ps_record(ps, RS_STREAM_WARNING, 0, &r));
    assert_string_equal(r.message, "hello world");
    assert_ok(rs_ps_record(ps, RS_STREAM_WARNING, 1, &r));
    assert_contains(r.message, "error in __gc");
    assert_contains(r.message, "boom");
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_runspace_destroy(rs));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_warnings_are_records),
    cmocka_unit_test(test_limits_survive_a_reset),
    cmocka_unit_test(test_late_finalizer),
    cmocka_unit_test(test_many_finalizers),
    cmocka_unit_test(test_finalizer_identity),
    cmocka_unit_test(test_close_handlers),
    cmocka_unit_test(test_hooks_and_handlers),
    cmocka_unit_test(test_stop_in_finalizer),
    cmocka_unit_test(test_budget_in_finalizer),
    cmocka_unit_test(test_finalizer_at_close),
    cmocka_unit_test(test_module_under_timeout),
    cmocka_unit_test(test_runner_uses_raw_globals),
    cmocka_unit_test(test_output_conversion_times_out),
};

RS_TEST_MAIN(tests)
