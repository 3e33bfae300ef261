/*
 * test_stop.c -- stopping running scripts wherever they are, timeouts, memory caps and
 * instruction budgets; and that the runspace and pool are healthy afterwards.
 */
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>

static rs_pool *open_pool_iss(unsigned max, const rs_iss *iss)
{
    rs_pool *pool;
    rs_pool_opts o = {.min_runspaces = 1, .max_runspaces = max, .iss = iss};
    assert_ok(rs_pool_create(&o, &pool));
    assert_ok(rs_pool_open(pool));
    return pool;
}

/* Begins src on pool, lets it run for a moment, stops it and checks the outcome: stopped
 * within a generous bound (the bench measures the real latency), and the same invocation
 * then runs a normal script on the same pool. */
static void stop_case(rs_pool *pool, const char *src)
{
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_pool(ps, pool));
    assert_ok(rs_ps_add_script(ps, src, (size_t)-1));
    rs_async *a;
    assert_ok(rs_ps_begin_invoke(ps, &a));
    sleep_for(0.05);
    assert_int_equal(rs_ps_get_state(ps), RS_PS_RUNNING);
    double t0 = rs_test_now();
    assert_ok(rs_ps_stop(ps));
    double took = rs_test_now() - t0;
    if (took > 2.0)
        fail_msg("stopping '%s' took %.3f s", src, took);
    assert_int_equal(rs_ps_get_state(ps), RS_PS_STOPPED);
    assert_true(rs_async_is_completed(a));
    assert_rs(RS_ESTOPPED, rs_ps_end_invoke(ps, a, NULL));
    assert_string_equal(rs_ps_errmsg(ps), "the invocation was stopped");
    assert_int_equal(rs_pool_available(pool), rs_pool_get_max(pool));
    /* Reusable, and the runspace is fine. */
    assert_ok(rs_ps_clear(ps));
    assert_ok(rs_ps_add_script(ps, "return 'after'", (size_t)-1));
    rs_value *out;
    assert_ok(rs_ps_invoke(ps, &out));
    assert_string_equal(rs_value_get_string(rs_array_get(out, 0), NULL), "after");
    rs_value_destroy(out);
    assert_ok(rs_ps_destroy(ps));
}

static void test_stop_tight_loop(void **state)
{
    (void)state;
    rs_pool *pool = open_pool_iss(1, NULL);
    stop_case(pool, "while true do end");
    stop_case(pool, "local x = 0 while true do x = x + 1 end");
    stop_case(pool, "repeat until false");
    stop_case(pool, "for i = 1, math.maxinteger do end");
    assert_ok(rs_pool_destroy(pool));
}

static void test_stop_deep_recursion(void **state)
{
    (void)state;
    rs_pool *pool = open_pool_iss(1, NULL);
    stop_case(pool, "local function f(n) if n == 0 then while true do end end return 1 + f(n - 1) "
                    "end return f(20000)");
    assert_ok(rs_pool_destroy(pool));
}

static void test_stop_sleep(void **state)
{
    (void)state;
    rs_pool *pool = open_pool_iss(1, NULL);
    stop_case(pool, "sleep(60)");
    stop_case(pool, "while true do sleep(0.001) end");
    assert_ok(rs_pool_destroy(pool));
}

static void test_stop_cannot_be_swallowed(void **state)
{
    (void)state;
    rs_pool *pool = open_pool_iss(1, NULL);
    stop_case(pool, "while true do pcall(function() while true do end end) end");
    stop_case(pool, "while true do pcall(sleep, 10) end");
    stop_case(pool, "while true do xpcall(function() while true do end end, function() "
                    "while true do end end) end");
    stop_case(pool, "local t = setmetatable({}, {__close = function() while true do end end}) "
                    "do local c <close> = t while true do end end");
    /* Finalizers: Lua runs them with hooks off, so they run in a coroutine of their own. */
    stop_case(pool, "setmetatable({}, {__gc = function() while true do end end}) "
                    "collectgarbage() while true do end");
    stop_case(pool, "while true do setmetatable({}, {__gc = function() while true do end end}) "
                    "collectgarbage() end");
    assert_ok(rs_pool_destroy(pool));
}

static void test_stop_in_coroutines(void **state)
{
    (void)state;
    rs_pool *pool = open_pool_iss(1, NULL);
    stop_case(pool, "coroutine.wrap(function() while true do end end)()");
    stop_case(pool, "local co = coroutine.create(function() while true do end end) "
                    "while true do coroutine.resume(co) end");
    stop_case(pool, "coroutine.wrap(function() coroutine.wrap(function() "
                    "coroutine.wrap(function() while true do end end)() end)() end)()");
    /* A coroutine made in an earlier invocation and resumed later is reached too. */
    assert_ok(eval(NULL, pool,
                   "gen = coroutine.wrap(function() while true do coroutine.yield() end end)", NULL,
                   NULL));
    stop_case(pool, "while true do gen() end");
    stop_case(pool, "local co = coroutine.create(function() while true do coroutine.yield(1) "
                    "end end) local n = 0 while true do local ok, v = coroutine.resume(co) n = "
                    "n + v end");
    assert_ok(rs_pool_destroy(pool));
}

static void test_stop_queued(void **state)
{
    (void)state;
    rs_pool *pool = open_pool_iss(1, NULL);
    rs_ps *busy, *queued;
    assert_ok(rs_ps_create(&busy));
    assert_ok(rs_ps_create(&queued));
    assert_ok(rs_ps_set_pool(busy, pool));
    assert_ok(rs_ps_set_pool(queued, pool));
    assert_ok(rs_ps_add_script(busy, "sleep(30)", (size_t)-1));
    assert_ok(rs_ps_add_script(queued, "shared.set('ran', true)", (size_t)-1));
    rs_async *a, *b;
    assert_ok(rs_ps_begin_invoke(busy, &a));
    assert_ok(rs_ps_begin_invoke(queued, &b));
    assert_ok(rs_ps_stop(queued));
    assert_int_equal(rs_ps_get_state(queued), RS_PS_STOPPED);
    assert_rs(RS_ESTOPPED, rs_ps_end_invoke(queued, b, NULL));
    assert_contains(rs_ps_errmsg(queued), "before it ran");
    assert_ok(rs_ps_stop(busy));
    assert_rs(RS_ESTOPPED, rs_ps_end_invoke(busy, a, NULL));
    rs_value *v = NULL;
    assert_rs(RS_ENOENT, rs_shared_get(rs_pool_shared(pool), "ran", &v));
    assert_ok(rs_ps_destroy(busy));
    assert_ok(rs_ps_destroy(queued));
    assert_ok(rs_pool_destroy(pool));
}

static void test_stop_when_nothing_runs(void **state)
{
    (void)state;
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_stop(ps)); /* never started */
    assert_int_equal(rs_ps_get_state(ps), RS_PS_NOT_STARTED);
    assert_ok(rs_ps_add_script(ps, "return 1", (size_t)-1));
    assert_ok(rs_ps_invoke(ps, NULL));
    assert_ok(rs_ps_stop(ps)); /* already completed */
    assert_int_equal(rs_ps_get_state(ps), RS_PS_COMPLETED);
    assert_ok(rs_ps_destroy(ps));
}

static void test_stop_races_completion(void **state)
{
    (void)state;
    rs_pool *pool = open_pool_iss(2, NULL);
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_pool(ps, pool));
    assert_ok(rs_ps_add_script(ps, "local s = 0 for i = 1, (_ % 7) * 100 do s = s + i end return s",
                               (size_t)-1));
    int stopped = 0, completed = 0;
    for (int i = 0; i < 300; i++) {
        assert_ok(rs_ps_clear_input(ps));
        assert_ok(rs_ps_add_input(ps, rs_value_int(i)));
        rs_async *a;
        assert_ok(rs_ps_begin_invoke(ps, &a));
        if (i % 3)
            assert_ok(rs_ps_stop(ps));
        else
            assert_ok(rs_ps_begin_stop(ps));
        int rc = rs_ps_end_invoke(ps, a, NULL);
        if (rc == RS_ESTOPPED) {
            assert_int_equal(rs_ps_get_state(ps), RS_PS_STOPPED);
            stopped++;
        } else {
            assert_ok(rc);
            assert_int_equal(rs_ps_get_state(ps), RS_PS_COMPLETED);
            completed++;
        }
    }
    assert_int_equal(stopped + completed, 300);
    assert_int_equal(rs_pool_available(pool), 2);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

typedef struct stopper {
    rs_ps *ps;
    double delay;
} stopper;

static void *stop_later(void *arg)
{
    stopper *s = arg;
    sleep_for(s->delay);
    rs_ps_stop(s->ps);
    return NULL;
}

typedef struct stop_loop {
    rs_ps *ps;
    atomic_int quit;
    int stops;
} stop_loop;

static void *stop_until_quit(void *arg)
{
    stop_loop *l = arg;
    while (!atomic_load(&l->quit)) {
        rs_ps_stop(l->ps);
        l->stops++;
    }
    return NULL;
}

/* A stop that meets a begin failing after it queued (the pool is not open) does not wait for
 * a completion that never comes. */
static void test_stop_races_a_failing_begin(void **state)
{
    (void)state;
    rs_pool *pool;
    rs_pool_opts o = {.max_runspaces = 1};
    assert_ok(rs_pool_create(&o, &pool)); /* never opened */
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_pool(ps, pool));
    assert_ok(rs_ps_add_script(ps, "return 1", (size_t)-1));
    stop_loop l = {.ps = ps};
    atomic_init(&l.quit, 0);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_until_quit, &l), 0);
    double end = rs_test_now() + 1.0;
    int begins = 0;
    while (rs_test_now() < end) {
        rs_async *a;
        assert_rs(RS_ECLOSED, rs_ps_begin_invoke(ps, &a));
        begins++;
    }
    atomic_store(&l.quit, 1);
    pthread_join(t, NULL); /* hung here when a stop waited for a completion */
    assert_true(begins > 0 && l.stops > 0);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

static void test_stop_runspace_bound(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    assert_ok(rs_ps_add_script(ps, "while true do end", (size_t)-1));
    /* Synchronous: the loop runs on this thread; another thread stops it. */
    stopper s = {ps, 0.05};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_later, &s), 0);
    assert_rs(RS_ESTOPPED, rs_ps_invoke(ps, NULL));
    pthread_join(t, NULL);
    /* Begin/end: the loop runs on a thread of its own. */
    rs_async *a;
    assert_ok(rs_ps_begin_invoke(ps, &a));
    assert_int_equal(rs_runspace_availability(rs), RS_AVAILABILITY_BUSY);
    sleep_for(0.05);
    assert_ok(rs_ps_stop(ps));
    assert_rs(RS_ESTOPPED, rs_ps_end_invoke(ps, a, NULL));
    assert_int_equal(rs_runspace_availability(rs), RS_AVAILABILITY_AVAILABLE);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_runspace_destroy(rs));
}

static void test_invocation_timeout(void **state)
{
    (void)state;
    rs_pool *pool = open_pool_iss(1, NULL);
    /* The last ones swallow the interruption and return at once, in a tail call. */
    const char *scripts[] = {"while true do end", "sleep(30)",
                             "while true do pcall(function() while true do end end) end",
                             "return pcall(sleep, 30)",
                             "return pcall(function() while true do end end)"};
    for (size_t i = 0; i < 5; i++) {
        rs_ps *ps;
        assert_ok(rs_ps_create(&ps));
        assert_ok(rs_ps_set_pool(ps, pool));
        assert_ok(rs_ps_add_script(ps, scripts[i], (size_t)-1));
        rs_ps_opts o = {.timeout = 0.2};
        assert_ok(rs_ps_set_opts(ps, &o));
        double t0 = rs_test_now();
        assert_rs(RS_ETIMEDOUT, rs_ps_invoke(ps, NULL));
        double took = rs_test_now() - t0;
        if (took < 0.19 || took > 2.0)
            fail_msg("a 0.2 s timeout of '%s' ended after %.3f s", scripts[i], took);
        assert_int_equal(rs_ps_get_state(ps), RS_PS_FAILED);
        assert_string_equal(rs_ps_errmsg(ps), "the invocation timed out after 0.2 s");
        assert_ok(rs_ps_destroy(ps));
    }
    assert_ok(rs_pool_destroy(pool));
}

static void test_item_timeout(void **state)
{
    (void)state;
    rs_pool *pool = open_pool_iss(1, NULL);
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_pool(ps, pool));
    /* Two tight loops: after the first timeout fires the timer has no deadline left, and the
     * second item's must still reach it. */
    assert_ok(rs_ps_add_script(ps,
                               "if _ == 2 or _ == 4 then while true do end end "
                               "if _ == 5 then sleep(30) end return _",
                               (size_t)-1));
    rs_ps_opts o = {.flags = RS_PS_ITEM_RESULTS, .item_timeout = 0.15};
    assert_ok(rs_ps_set_opts(ps, &o));
    for (int i = 1; i <= 6; i++)
        assert_ok(rs_ps_add_input(ps, rs_value_int(i)));
    double t0 = rs_test_now();
    rs_value *out;
    assert_ok(rs_ps_invoke(ps, &out));
    double took = rs_test_now() - t0;
    assert_true(took >= 0.44 && took < 4.0);
    char *j = json_of(out);
    assert_string_equal(j, "[1,3,6]");
    rs_free(j);
    rs_value_destroy(out);
    rs_item_status want[] = {RS_ITEM_OK,      RS_ITEM_TIMEOUT, RS_ITEM_OK,
                             RS_ITEM_TIMEOUT, RS_ITEM_TIMEOUT, RS_ITEM_OK};
    for (size_t i = 0; i < 6; i++) {
        rs_item_result it;
        assert_ok(rs_ps_item(ps, i, &it));
        assert_int_equal(it.status, want[i]);
        if (want[i] == RS_ITEM_TIMEOUT) {
            assert_int_equal(it.code, RS_ETIMEDOUT);
            assert_string_equal(it.error, "timed out after 0.15 s");
            assert_true(it.duration >= 0.14 && it.duration < 1.5);
        }
    }
    assert_int_equal(rs_ps_get_state(ps), RS_PS_COMPLETED);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

static void test_stop_item_mode_cancels_rest(void **state)
{
    (void)state;
    rs_pool *pool = open_pool_iss(1, NULL);
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_pool(ps, pool));
    assert_ok(rs_ps_add_script(ps, "if _ == 2 then sleep(30) end return _", (size_t)-1));
    rs_ps_opts o = {.flags = RS_PS_ITEM_RESULTS};
    assert_ok(rs_ps_set_opts(ps, &o));
    for (int i = 1; i <= 4; i++)
        assert_ok(rs_ps_add_input(ps, rs_value_int(i)));
    rs_async *a;
    assert_ok(rs_ps_begin_invoke(ps, &a));
    sleep_for(0.1);
    assert_ok(rs_ps_stop(ps));
    assert_rs(RS_ESTOPPED, rs_ps_end_invoke(ps, a, NULL));
    assert_int_equal(rs_ps_item_count(ps), 4);
    rs_item_status want[] = {RS_ITEM_OK, RS_ITEM_CANCELLED, RS_ITEM_CANCELLED, RS_ITEM_CANCELLED};
    for (size_t i = 0; i < 4; i++) {
        rs_item_result it;
        assert_ok(rs_ps_item(ps, i, &it));
        assert_int_equal(it.status, want[i]);
        if (i)
            assert_contains(it.error, "cancelled");
    }
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

static rs_iss *limited_iss(size_t memory, uint64_t instructions)
{
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    rs_limits l = {.memory_bytes = memory, .instructions = instructions};
    assert_ok(rs_iss_set_limits(iss, &l));
    return iss;
}

static void test_memory_cap(void **state)
{
    (void)state;
    rs_iss *iss = limited_iss(8u << 20, 0);
    rs_pool *pool = open_pool_iss(1, iss);
    assert_ok(rs_iss_destroy(iss));
    char *msg = NULL;
    assert_ok(eval(NULL, pool, "marker = 'set before' return 1", NULL, NULL));
    int rc = eval(NULL, pool, "local t = {} while true do t[#t + 1] = ('x'):rep(1e6) .. #t end",
                  NULL, &msg);
    assert_int_equal(rc, RS_ENOMEM);
    assert_string_equal(msg,
                        "out of memory: the runspace memory limit of 8388608 bytes was exceeded");
    free(msg);
    /* The pool is healthy and the runspace was replaced: the old globals are gone. */
    char *json = NULL;
    assert_ok(eval(NULL, pool, "return marker == nil, runspace.id ~= nil", &json, NULL));
    assert_string_equal(json, "[true,true]");
    rs_free(json);
    rs_runspace_info row;
    assert_int_equal(rs_pool_runspaces(pool, &row, 1), 1);
    assert_true(row.memory_bytes < (1u << 20));
    /* The cap is a cap: a script cannot pcall its way past it, and later work is fine. */
    rc = eval(NULL, pool,
              "local ok = pcall(function() local t = {} while true do "
              "t[#t + 1] = ('y'):rep(1e6) .. #t end end) return ok",
              NULL, &msg);
    assert_int_equal(rc, RS_ENOMEM);
    free(msg);
    rc = eval(NULL, pool, "for i = 1, 100 do pcall(string.rep, 'z', 1e8) end return 'swallowed'",
              NULL, &msg);
    assert_int_equal(rc, RS_ENOMEM);
    free(msg);
    assert_ok(eval(NULL, pool, "return 1", &json, NULL));
    assert_string_equal(json, "[1]");
    rs_free(json);
    assert_ok(rs_pool_destroy(pool));
}

static void test_memory_cap_item_mode(void **state)
{
    (void)state;
    rs_iss *iss = limited_iss(8u << 20, 0);
    rs_pool *pool = open_pool_iss(1, iss);
    assert_ok(rs_iss_destroy(iss));
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_pool(ps, pool));
    assert_ok(rs_ps_add_script(ps,
                               "if _ == 2 then hog = {} while true do hog[#hog + 1] = "
                               "('x'):rep(1e6) .. #hog end end return _ * 2",
                               (size_t)-1));
    rs_ps_opts o = {.flags = RS_PS_ITEM_RESULTS};
    assert_ok(rs_ps_set_opts(ps, &o));
    for (int i = 1; i <= 3; i++)
        assert_ok(rs_ps_add_input(ps, rs_value_int(i)));
    rs_value *out;
    assert_ok(rs_ps_invoke(ps, &out));
    char *j = json_of(out);
    assert_string_equal(j, "[2,6]");
    rs_free(j);
    rs_value_destroy(out);
    rs_item_result it;
    assert_ok(rs_ps_item(ps, 1, &it));
    assert_int_equal(it.status, RS_ITEM_ERROR);
    assert_int_equal(it.code, RS_ENOMEM);
    assert_contains(it.error, "memory limit");
    assert_ok(rs_ps_item(ps, 2, &it));
    assert_int_equal(it.status, RS_ITEM_OK);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

static void test_memory_cap_too_small_to_open(void **state)
{
    (void)state;
    rs_iss *iss = limited_iss(4096, 0);
    rs_pool *pool;
    rs_pool_opts o = {.iss = iss, .max_runspaces = 1};
    assert_ok(rs_pool_create(&o, &pool));
    assert_ok(rs_iss_destroy(iss));
    assert_rs(RS_ENOMEM, rs_pool_open(pool));
    assert_contains(rs_pool_errmsg(pool), "memory limit of 4096 bytes");
    assert_int_equal(rs_pool_get_state(pool), RS_POOL_BROKEN);
    assert_ok(rs_pool_destroy(pool));
}

static void test_instruction_budget(void **state)
{
    (void)state;
    rs_iss *iss = limited_iss(0, 100000);
    rs_runspace *rs = open_runspace(iss);
    assert_ok(rs_iss_destroy(iss));
    assert_eval(rs, "local s = 0 for i = 1, 1000 do s = s + i end return s", "[500500]");
    assert_eval_fails(rs, "while true do end", RS_ELIMIT, "instruction budget of 100000 exceeded");
    assert_eval_fails(rs, "while true do pcall(function() while true do end end) end", RS_ELIMIT,
                      "instruction budget");
    assert_eval_fails(rs, "coroutine.wrap(function() while true do end end)()", RS_ELIMIT,
                      "instruction budget");
    /* The budget is per invocation: a fresh one starts full. */
    assert_eval(rs, "local s = 0 for i = 1, 1000 do s = s + i end return s", "[500500]");
    assert_ok(rs_runspace_destroy(rs));
}

/* json.encode and json.decode count their work against the budget (a value, or a KiB of
 * text, as one instruction) and look at the stop and the timeout as they go, as output
 * conversion does: a long text is no longer one free step that runs past a deadline. A script
 * of a handful of instructions exceeds a budget of 5000 by encoding or decoding 20 MB. */
static void test_json_counts_its_work(void **state)
{
    (void)state;
    rs_iss *iss = limited_iss(0, 5000);
    rs_runspace *rs = open_runspace(iss);
    assert_ok(rs_iss_destroy(iss));
    /* Small ones fit. */
    assert_eval(rs, "return json.encode({1, 2, 'x'}), json.decode('[1,2]')[2]",
                "[\"[1,2,\\\"x\\\"]\",2]");
    assert_eval_fails(rs, "return #json.encode(string.rep('a', 20e6))", RS_ELIMIT,
                      "instruction budget of 5000 exceeded");
    assert_eval_fails(rs, "return #json.encode(string.rep('\\1', 20e6))", RS_ELIMIT,
                      "instruction budget of 5000 exceeded");
    assert_eval_fails(rs, "return #json.decode('\"' .. string.rep('a', 20e6) .. '\"')", RS_ELIMIT,
                      "instruction budget of 5000 exceeded");
    /* Many values: the parse and the conversion count them. */
    assert_eval_fails(rs, "return #json.decode('[' .. string.rep('1,', 1e6) .. '1]')", RS_ELIMIT,
                      "instruction budget of 5000 exceeded");
    /* The runspace is fine afterwards. */
    assert_eval(rs, "return json.decode('{\"a\":1}').a", "[1]");
    assert_ok(rs_runspace_destroy(rs));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_stop_tight_loop),
    cmocka_unit_test(test_stop_deep_recursion),
    cmocka_unit_test(test_stop_sleep),
    cmocka_unit_test(test_stop_cannot_be_swallowed),
    cmocka_unit_test(test_stop_in_coroutines),
    cmocka_unit_test(test_stop_queued),
    cmocka_unit_test(test_stop_when_nothing_runs),
    cmocka_unit_test(test_stop_races_completion),
    cmocka_unit_test(test_stop_runspace_bound),
    cmocka_unit_test(test_stop_races_a_failing_begin),
    cmocka_unit_test(test_invocation_timeout),
    cmocka_unit_test(test_item_timeout),
    cmocka_unit_test(test_stop_item_mode_cancels_rest),
    cmocka_unit_test(test_memory_cap),
    cmocka_unit_test(test_memory_cap_item_mode),
    cmocka_unit_test(test_memory_cap_too_small_to_open),
    cmocka_unit_test(test_instruction_budget),
    cmocka_unit_test(test_json_counts_its_work),
};

RS_TEST_MAIN(tests)
