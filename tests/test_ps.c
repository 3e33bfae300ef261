/*
 * test_ps.c -- invocations: synchronous and begin/end, wait handles, states, streams and
 * records, arguments and parameters, pipelines, per-item results, and every misuse.
 */
#include "util.h"

#include <poll.h>
#include <stdatomic.h>
#include <time.h>

static rs_pool *open_pool(unsigned min, unsigned max)
{
    rs_pool *pool;
    rs_pool_opts o = {.min_runspaces = min, .max_runspaces = max};
    assert_ok(rs_pool_create(&o, &pool));
    assert_ok(rs_pool_open(pool));
    return pool;
}

static rs_ps *new_ps(rs_pool *pool, const char *src)
{
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    if (pool)
        assert_ok(rs_ps_set_pool(ps, pool));
    if (src)
        assert_ok(rs_ps_add_script(ps, src, (size_t)-1));
    return ps;
}

static char *invoke_json(rs_ps *ps, int expected_rc)
{
    rs_value *out = NULL;
    assert_rs(expected_rc, rs_ps_invoke(ps, &out));
    assert_non_null(out);
    char *j = json_of(out);
    rs_value_destroy(out);
    return j;
}

#define assert_invoke(ps, rc, expected)                                                            \
    do {                                                                                           \
        char *j_ = invoke_json((ps), (rc));                                                        \
        assert_string_equal(j_, (expected));                                                       \
        rs_free(j_);                                                                               \
    } while (0)

static void test_private_runspace(void **state)
{
    (void)state;
    /* Neither a pool nor a runspace: the invocation opens one of its own. */
    rs_ps *ps = new_ps(NULL, "return 6 * 7");
    assert_int_equal(rs_ps_get_state(ps), RS_PS_NOT_STARTED);
    assert_invoke(ps, 0, "[42]");
    assert_int_equal(rs_ps_get_state(ps), RS_PS_COMPLETED);
    assert_invoke(ps, 0, "[42]"); /* reusable */
    assert_ok(rs_ps_destroy(ps));
}

static void test_begin_end_on_pool(void **state)
{
    (void)state;
    rs_pool *pool = open_pool(1, 2);
    rs_ps *ps = new_ps(pool, "local x = ... return x + 1");
    for (int i = 0; i < 3; i++) {
        assert_ok(rs_ps_clear_input(ps));
        assert_ok(rs_ps_add_input(ps, rs_value_int(i)));
        rs_async *a = NULL;
        assert_ok(rs_ps_begin_invoke(ps, &a));
        assert_non_null(a);
        assert_ok(rs_async_wait(a, -1));
        assert_true(rs_async_is_completed(a));
        rs_value *out = NULL;
        assert_ok(rs_ps_end_invoke(ps, a, &out));
        assert_int_equal(rs_value_get_int(rs_array_get(out, 0)), i + 1);
        rs_value_destroy(out);
        /* The output was handed over. */
        assert_int_equal(rs_array_len(rs_ps_output(ps)), 0);
        assert_rs(RS_EMISUSE, rs_ps_end_invoke(ps, a, &out));
        assert_null(out);
        assert_contains(rs_ps_errmsg(ps), "already");
    }
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

static void test_end_misuse(void **state)
{
    (void)state;
    rs_ps *ps = new_ps(NULL, "return 1");
    rs_ps *other = new_ps(NULL, "return 2");
    rs_value *out = (rs_value *)1;
    assert_rs(RS_EMISUSE, rs_ps_end_invoke(ps, NULL, &out));
    assert_null(out);
    rs_async *a;
    assert_ok(rs_ps_begin_invoke(other, &a));
    assert_rs(RS_EMISUSE, rs_ps_end_invoke(ps, a, &out)); /* another invocation's handle */
    assert_contains(rs_ps_errmsg(ps), "not this invocation");
    assert_ok(rs_ps_end_invoke(other, a, NULL));
    /* A synchronous invoke has nothing to end. */
    assert_ok(rs_ps_invoke(ps, NULL));
    rs_async *mine;
    assert_ok(rs_ps_begin_invoke(ps, &mine));
    assert_ok(rs_ps_end_invoke(ps, mine, NULL));
    assert_ok(rs_ps_invoke(ps, NULL));
    assert_rs(RS_EMISUSE, rs_ps_end_invoke(ps, mine, NULL));
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_ps_destroy(other));
}

static void test_wait_timeout_and_fd(void **state)
{
    (void)state;
    rs_pool *pool = open_pool(3, 3);
    rs_ps *ps[3];
    rs_async *a[3];
    struct pollfd fds[3];
    for (int i = 0; i < 3; i++) {
        char src[64];
        snprintf(src, sizeof src, "sleep(%g) return %d", 0.05 * (i + 1), i);
        ps[i] = new_ps(pool, src);
        assert_ok(rs_ps_begin_invoke(ps[i], &a[i]));
        fds[i].fd = rs_async_fd(a[i]);
        assert_true(fds[i].fd >= 0);
        assert_int_equal(rs_async_fd(a[i]), fds[i].fd); /* one per handle */
        fds[i].events = POLLIN;
    }
    assert_rs(RS_ETIMEDOUT, rs_async_wait(a[2], 0.001));
    assert_false(rs_async_is_completed(a[2]));
    /* Wait on all three descriptors at once, as an event loop would. */
    int done = 0;
    double t0 = rs_test_now();
    while (done < 3 && rs_test_now() - t0 < 10) {
        int n = poll(fds, 3, 10000);
        assert_true(n > 0);
        for (int i = 0; i < 3; i++) {
            if (fds[i].fd >= 0 && (fds[i].revents & POLLIN)) {
                assert_true(rs_async_is_completed(a[i]));
                fds[i].fd = -1;
                done++;
            }
        }
    }
    assert_int_equal(done, 3);
    for (int i = 0; i < 3; i++) {
        rs_value *out;
        assert_ok(rs_ps_end_invoke(ps[i], a[i], &out));
        assert_int_equal(rs_value_get_int(rs_array_get(out, 0)), i);
        rs_value_destroy(out);
        /* Begun again, the descriptor is reset until the new run completes. */
        assert_ok(rs_ps_begin_invoke(ps[i], &a[i]));
        assert_ok(rs_async_wait(a[i], -1));
        struct pollfd p = {.fd = rs_async_fd(a[i]), .events = POLLIN};
        assert_int_equal(poll(&p, 1, 0), 1);
        assert_ok(rs_ps_end_invoke(ps[i], a[i], NULL));
        assert_ok(rs_ps_destroy(ps[i]));
    }
    assert_ok(rs_pool_destroy(pool));
}

static void test_misuse_while_running(void **state)
{
    (void)state;
    rs_pool *pool = open_pool(1, 1);
    rs_ps *ps = new_ps(pool, "sleep(30)");
    rs_async *a;
    assert_ok(rs_ps_begin_invoke(ps, &a));
    assert_int_equal(rs_ps_get_state(ps), RS_PS_RUNNING);
    assert_rs(RS_EMISUSE, rs_ps_invoke(ps, NULL));
    assert_rs(RS_EMISUSE, rs_ps_begin_invoke(ps, NULL));
    assert_rs(RS_EBUSY, rs_ps_add_script(ps, "return 1", (size_t)-1));
    assert_rs(RS_EBUSY, rs_ps_add_input(ps, rs_value_int(1)));
    assert_rs(RS_EBUSY, rs_ps_clear(ps));
    rs_ps_opts o = {0};
    assert_rs(RS_EBUSY, rs_ps_set_opts(ps, &o));
    assert_rs(RS_EBUSY, rs_ps_set_pool(ps, NULL));
    assert_rs(RS_EBUSY, rs_ps_destroy(ps));
    assert_rs(RS_EBUSY, rs_pool_destroy(pool));
    assert_int_equal(rs_ps_record_count(ps, RS_STREAM_ERROR), 0);
    rs_record rec;
    assert_rs(RS_EBUSY, rs_ps_record(ps, RS_STREAM_ERROR, 0, &rec));
    assert_ok(rs_ps_stop(ps));
    assert_rs(RS_ESTOPPED, rs_ps_end_invoke(ps, a, NULL));
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

static void test_null_handles(void **state)
{
    (void)state;
    rs_value *out = (rs_value *)1;
    assert_rs(RS_EMISUSE, rs_ps_create(NULL));
    assert_ok(rs_ps_destroy(NULL));
    assert_rs(RS_EMISUSE, rs_ps_invoke(NULL, &out));
    assert_null(out);
    assert_rs(RS_EMISUSE, rs_ps_begin_invoke(NULL, NULL));
    assert_rs(RS_EMISUSE, rs_ps_end_invoke(NULL, NULL, NULL));
    assert_rs(RS_EMISUSE, rs_ps_stop(NULL));
    assert_rs(RS_EMISUSE, rs_ps_begin_stop(NULL));
    assert_rs(RS_EMISUSE, rs_ps_add_script(NULL, "x", 1));
    assert_rs(RS_EMISUSE, rs_ps_add_command(NULL, "x"));
    assert_rs(RS_EMISUSE, rs_ps_add_argument(NULL, rs_value_int(1)));
    assert_rs(RS_EMISUSE, rs_ps_add_parameter(NULL, "x", rs_value_int(1)));
    assert_rs(RS_EMISUSE, rs_ps_add_input(NULL, rs_value_int(1)));
    assert_rs(RS_EMISUSE, rs_ps_set_pool(NULL, NULL));
    assert_rs(RS_EMISUSE, rs_ps_set_runspace(NULL, NULL));
    assert_rs(RS_EMISUSE, rs_ps_set_opts(NULL, NULL));
    assert_rs(RS_EMISUSE, rs_ps_clear(NULL));
    assert_rs(RS_EMISUSE, rs_ps_record(NULL, RS_STREAM_ERROR, 0, NULL));
    assert_rs(RS_EMISUSE, rs_ps_item(NULL, 0, NULL));
    assert_rs(RS_EMISUSE, rs_async_wait(NULL, 1));
    assert_false(rs_async_is_completed(NULL));
    assert_int_equal(rs_async_fd(NULL), -1);
    assert_int_equal(rs_ps_get_state(NULL), RS_PS_NOT_STARTED);
    assert_rs(RS_EMISUSE, rs_pool_create(NULL, NULL));
    assert_rs(RS_EMISUSE, rs_pool_open(NULL));
    assert_rs(RS_EMISUSE, rs_pool_close(NULL));
    assert_ok(rs_pool_destroy(NULL));
    assert_rs(RS_EMISUSE, rs_pool_set_max(NULL, 1));
    assert_rs(RS_EMISUSE, rs_iss_create(RS_PROFILE_DEFAULT, NULL));
    assert_rs(RS_EMISUSE, rs_iss_set_variable(NULL, "x", NULL));
    assert_rs(RS_EMISUSE, rs_shared_get(NULL, "x", &out));
    /* Arguments handed over with a NULL handle are still freed (ASan checks). */
    rs_ps *ps = new_ps(NULL, NULL);
    assert_rs(RS_EMISUSE, rs_ps_add_argument(ps, rs_value_int(1))); /* no stage yet */
    assert_rs(RS_EINVAL, rs_ps_add_input(ps, NULL));
    assert_rs(RS_EINVAL, rs_ps_invoke(ps, NULL)); /* empty pipeline */
    assert_contains(rs_ps_errmsg(ps), "empty");
    rs_ps_opts bad = {.timeout = -1};
    assert_rs(RS_EINVAL, rs_ps_set_opts(ps, &bad));
    assert_ok(rs_ps_destroy(ps));
}

static void test_streams_and_records(void **state)
{
    (void)state;
    rs_ps *ps = new_ps(NULL, "write_warning('careful', 1)\n"
                             "write_verbose('v')\n"
                             "write_debug('d')\n"
                             "print('p', 2, nil)\n"
                             "write_progress{activity = 'copy', status = 'half', percent = 50}\n"
                             "write_error('not fatal')\n"
                             "return 'done'");
    double before = (double)time(NULL);
    assert_invoke(ps, 0, "[\"done\"]");
    assert_int_equal(rs_ps_get_state(ps), RS_PS_COMPLETED);
    assert_true(rs_ps_had_errors(ps));
    struct {
        rs_stream s;
        const char *msg;
        int line;
    } want[] = {{RS_STREAM_WARNING, "careful\t1", 1},
                {RS_STREAM_VERBOSE, "v", 2},
                {RS_STREAM_DEBUG, "d", 3},
                {RS_STREAM_INFORMATION, "p\t2\tnil", 4},
                {RS_STREAM_PROGRESS, "half", 5},
                {RS_STREAM_ERROR, "not fatal", 6}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        assert_int_equal(rs_ps_record_count(ps, want[i].s), 1);
        rs_record r;
        assert_ok(rs_ps_record(ps, want[i].s, 0, &r));
        assert_int_equal(r.stream, want[i].s);
        assert_string_equal(r.message, want[i].msg);
        assert_int_equal(r.message_len, strlen(want[i].msg));
        assert_string_equal(r.source, "script");
        assert_int_equal(r.line, want[i].line);
        assert_int_equal(r.item, -1);
        assert_null(r.traceback);
        assert_true(r.time >= before - 1);
    }
    rs_record r;
    assert_ok(rs_ps_record(ps, RS_STREAM_PROGRESS, 0, &r));
    assert_string_equal(r.activity, "copy");
    assert_int_equal(r.percent, 50);
    assert_rs(RS_EINVAL, rs_ps_record(ps, RS_STREAM_PROGRESS, 1, &r));
    assert_rs(RS_EINVAL, rs_ps_record(ps, RS_STREAM_OUTPUT, 0, &r));
    assert_ok(rs_ps_destroy(ps));
}

static void test_runtime_error_record(void **state)
{
    (void)state;
    rs_ps *ps = new_ps(NULL, "local function inner() error('boom') end\n"
                             "emit('before')\n"
                             "inner()\n"
                             "return 'never'");
    assert_invoke(ps, RS_ERUNTIME, "[\"before\"]");
    assert_int_equal(rs_ps_get_state(ps), RS_PS_FAILED);
    assert_int_equal(rs_ps_result(ps), RS_ERUNTIME);
    assert_string_equal(rs_ps_errmsg(ps), "script:1: boom");
    assert_true(rs_ps_had_errors(ps));
    rs_record r;
    assert_ok(rs_ps_record(ps, RS_STREAM_ERROR, 0, &r));
    assert_string_equal(r.message, "script:1: boom");
    assert_int_equal(r.code, RS_ERUNTIME);
    assert_int_equal(r.line, 1);
    assert_contains(r.traceback, "stack traceback:");
    assert_contains(r.traceback, "in local 'inner'");
    assert_contains(r.traceback, "script:3:");
    /* Error objects that are not strings. */
    assert_ok(rs_ps_clear(ps));
    assert_ok(rs_ps_add_script(ps, "error({code = 7})", (size_t)-1));
    assert_invoke(ps, RS_ERUNTIME, "[]");
    assert_string_equal(rs_ps_errmsg(ps), "{\"code\":7}"); /* a table reads as JSON */
    assert_ok(rs_ps_clear(ps));
    assert_ok(rs_ps_add_script(ps, "error({f = print})", (size_t)-1));
    assert_invoke(ps, RS_ERUNTIME, "[]");
    assert_string_equal(rs_ps_errmsg(ps), "(error object is a table value)");
    assert_ok(rs_ps_clear(ps));
    assert_ok(rs_ps_add_script(
        ps, "error(setmetatable({}, {__tostring = function() return 'custom' end}))", (size_t)-1));
    assert_invoke(ps, RS_ERUNTIME, "[]");
    assert_string_equal(rs_ps_errmsg(ps), "custom");
    assert_ok(rs_ps_destroy(ps));
}

static atomic_int records_seen;
static atomic_int completions;
static atomic_int completed_state;

static void on_record(rs_ps *ps, const rs_record *r, void *ud)
{
    (void)ps;
    (void)ud;
    if (r->stream == RS_STREAM_PROGRESS && r->percent >= 0)
        atomic_fetch_add(&records_seen, 1);
}

static void on_complete(rs_ps *ps, rs_ps_state st, void *ud)
{
    /* Results are final and may be read here. */
    assert_int_equal(*(int *)ud, 99);
    if (rs_array_len(rs_ps_output(ps)) == 1)
        atomic_store(&completed_state, (int)st);
    atomic_fetch_add(&completions, 1);
}

static void test_callbacks(void **state)
{
    (void)state;
    rs_pool *pool = open_pool(1, 1);
    rs_ps *ps = new_ps(pool, "for i = 1, 10 do write_progress{percent = i * 10} end return 1");
    int ud = 99;
    rs_ps_opts o = {.on_record = on_record, .on_complete = on_complete, .userdata = &ud};
    assert_ok(rs_ps_set_opts(ps, &o));
    rs_async *a;
    assert_ok(rs_ps_begin_invoke(ps, &a));
    assert_ok(rs_ps_end_invoke(ps, a, NULL));
    assert_int_equal(atomic_load(&records_seen), 10);
    assert_int_equal(atomic_load(&completions), 1);
    assert_int_equal(atomic_load(&completed_state), RS_PS_COMPLETED);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

typedef struct seen_end {
    int result;
    char msg[128];
} seen_end;

static void note_end(rs_ps *ps, rs_ps_state st, void *ud)
{
    (void)st;
    seen_end *e = ud;
    e->result = rs_ps_result(ps);
    snprintf(e->msg, sizeof e->msg, "%s", rs_ps_errmsg(ps));
}

/* An on_complete callback already sees the invocation's result code and message: whoever it
 * wakes (the job manager's waiters) reads them at once. */
static void test_callback_sees_result(void **state)
{
    (void)state;
    rs_pool *pool = open_pool(1, 1);
    /* Run, and failed. */
    seen_end e = {0};
    rs_ps *ps = new_ps(pool, "error('broken')");
    rs_ps_opts o = {.on_complete = note_end, .userdata = &e};
    assert_ok(rs_ps_set_opts(ps, &o));
    rs_async *a;
    assert_ok(rs_ps_begin_invoke(ps, &a));
    assert_rs(RS_ERUNTIME, rs_ps_end_invoke(ps, a, NULL));
    assert_rs(RS_ERUNTIME, e.result);
    assert_string_equal(e.msg, "script:1: broken");
    /* Stopped while queued behind a busy runspace: never run. */
    rs_ps *busy = new_ps(pool, "sleep(30)");
    rs_async *ab;
    assert_ok(rs_ps_begin_invoke(busy, &ab));
    seen_end q = {0};
    rs_ps *queued = new_ps(pool, "return 1");
    rs_ps_opts oq = {.on_complete = note_end, .userdata = &q};
    assert_ok(rs_ps_set_opts(queued, &oq));
    rs_async *aq;
    assert_ok(rs_ps_begin_invoke(queued, &aq));
    assert_ok(rs_ps_stop(queued));
    assert_rs(RS_ESTOPPED, rs_ps_end_invoke(queued, aq, NULL));
    assert_rs(RS_ESTOPPED, q.result);
    assert_string_equal(q.msg, rs_ps_errmsg(queued));
    assert_true(strlen(q.msg) > 0);
    assert_ok(rs_ps_stop(busy));
    assert_rs(RS_ESTOPPED, rs_ps_end_invoke(busy, ab, NULL));
    assert_ok(rs_ps_destroy(queued));
    assert_ok(rs_ps_destroy(busy));
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

static void test_arguments_and_parameters(void **state)
{
    (void)state;
    rs_ps *ps = new_ps(NULL, "local a, b = ... return a, b, select('#', ...), Greeting, "
                             "params.Greeting, _ == nil");
    assert_ok(rs_ps_add_argument(ps, rs_value_string("first")));
    assert_ok(rs_ps_add_argument(ps, rs_value_int(2)));
    assert_ok(rs_ps_add_parameter(ps, "Greeting", rs_value_string("hi")));
    assert_invoke(ps, 0, "[\"first\",2,2,\"hi\",\"hi\",true]");
    /* With an input item, it comes first, then the arguments. */
    assert_ok(rs_ps_add_input(ps, rs_value_string("item")));
    assert_invoke(ps, 0, "[\"item\",\"first\",3,\"hi\",\"hi\",false]");
    /* A parameter set twice keeps the last value. */
    assert_ok(rs_ps_add_parameter(ps, "Greeting", rs_value_string("hello")));
    assert_invoke(ps, 0, "[\"item\",\"first\",3,\"hello\",\"hello\",false]");
    assert_ok(rs_ps_destroy(ps));
}

static void test_inputs(void **state)
{
    (void)state;
    rs_ps *ps = new_ps(NULL, "return _ * 10");
    for (int i = 1; i <= 4; i++)
        assert_ok(rs_ps_add_input(ps, rs_value_int(i)));
    assert_invoke(ps, 0, "[10,20,30,40]");
    assert_ok(rs_ps_clear_input(ps));
    assert_ok(rs_ps_clear(ps));
    assert_ok(rs_ps_add_script(ps, "return _ == nil", (size_t)-1));
    assert_invoke(ps, 0, "[true]");
    assert_ok(rs_ps_destroy(ps));
}

static void test_pipeline_stages(void **state)
{
    (void)state;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    assert_ok(rs_iss_add_function(iss, "tag", "local item, label = ... return label .. item"));
    rs_runspace *rs = open_runspace(iss);
    assert_ok(rs_iss_destroy(iss));
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    /* Stage 1 runs once (no input) and emits three values; stage 2 runs once per value;
     * stage 3 is a Lua function called by name with an argument. */
    assert_ok(rs_ps_add_script(ps, "return 1, 2, 3", (size_t)-1));
    assert_ok(rs_ps_add_script(ps, "if _ ~= 2 then return _ * 100, Suffix end", (size_t)-1));
    assert_ok(rs_ps_add_parameter(ps, "Suffix", rs_value_string("!")));
    assert_ok(rs_ps_add_command(ps, "tag"));
    assert_ok(rs_ps_add_argument(ps, rs_value_string("#")));
    assert_invoke(ps, 0, "[\"#100\",\"#!\",\"#300\",\"#!\"]");
    /* An unknown command fails before anything runs. */
    assert_ok(rs_ps_add_command(ps, "no_such_thing"));
    assert_invoke(ps, RS_ENOENT, "[]");
    assert_contains(rs_ps_errmsg(ps), "no command or function named 'no_such_thing'");
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_runspace_destroy(rs));
}

static void test_syntax_error_nothing_runs(void **state)
{
    (void)state;
    rs_pool *pool = open_pool(1, 1);
    rs_ps *ps = new_ps(pool, "shared.set('ran', true) return 1");
    assert_rs(RS_ESYNTAX, rs_ps_add_script(ps, "local x = 1\nreturn x +", (size_t)-1));
    assert_string_equal(rs_ps_errmsg(ps), "script:2: unexpected symbol near <eof>");
    assert_rs(RS_ESYNTAX, rs_ps_invoke(ps, NULL));
    assert_string_equal(rs_ps_errmsg(ps), "script:2: unexpected symbol near <eof>");
    /* Nesting too deep for the parser's C stack does not compile either (not "out of
     * memory"). */
    char deep[700];
    memset(deep, '(', 300);
    strcpy(deep + 300, "1");
    memset(deep + 301, ')', 300);
    deep[601] = '\0';
    char src[720];
    snprintf(src, sizeof src, "return %s", deep);
    rs_ps *deep_ps;
    assert_ok(rs_ps_create(&deep_ps));
    assert_rs(RS_ESYNTAX, rs_ps_add_script(deep_ps, src, (size_t)-1));
    assert_string_equal(rs_ps_errmsg(deep_ps),
                        "script: nested too deeply to compile (C stack overflow)");
    assert_ok(rs_ps_destroy(deep_ps));
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    assert_rs(RS_ESYNTAX, rs_iss_add_function(iss, "deep", src));
    assert_contains(rs_iss_errmsg(iss), "nested too deeply to compile");
    assert_ok(rs_iss_destroy(iss));
    rs_async *a = (rs_async *)1;
    assert_rs(RS_ESYNTAX, rs_ps_begin_invoke(ps, &a));
    assert_null(a);
    assert_int_equal(rs_ps_get_state(ps), RS_PS_NOT_STARTED);
    rs_value *v = NULL;
    assert_rs(RS_ENOENT, rs_shared_get(rs_pool_shared(pool), "ran", &v));
    /* Cleared, the invocation works again. */
    assert_ok(rs_ps_clear(ps));
    assert_ok(rs_ps_add_script(ps, "return 'fine'", (size_t)-1));
    assert_invoke(ps, 0, "[\"fine\"]");
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

static void test_failure_is_isolated(void **state)
{
    (void)state;
    rs_pool *pool = open_pool(2, 2);
    rs_ps *slow = new_ps(pool, "sleep(0.2) return 'slow ok'");
    rs_ps *bad = new_ps(pool, "error('bad')");
    rs_async *a, *b;
    assert_ok(rs_ps_begin_invoke(slow, &a));
    assert_ok(rs_ps_begin_invoke(bad, &b));
    assert_rs(RS_ERUNTIME, rs_ps_end_invoke(bad, b, NULL));
    rs_value *out;
    assert_ok(rs_ps_end_invoke(slow, a, &out));
    assert_string_equal(rs_value_get_string(rs_array_get(out, 0), NULL), "slow ok");
    rs_value_destroy(out);
    assert_ok(rs_ps_destroy(slow));
    assert_ok(rs_ps_destroy(bad));
    assert_ok(rs_pool_destroy(pool));
}

static void test_item_results(void **state)
{
    (void)state;
    rs_pool *pool = open_pool(1, 1);
    rs_ps *ps = new_ps(pool, "if _ == 3 then error('three') end\n"
                             "if _ == 4 then return _, -_ end\n"
                             "if _ == 5 then write_error('soft') end\n"
                             "return _ * _");
    rs_ps_opts o = {.flags = RS_PS_ITEM_RESULTS};
    assert_ok(rs_ps_set_opts(ps, &o));
    for (int i = 1; i <= 5; i++)
        assert_ok(rs_ps_add_input(ps, rs_value_int(i)));
    rs_async *a;
    assert_ok(rs_ps_begin_invoke(ps, &a));
    assert_ok(rs_async_wait(a, -1));
    assert_int_equal(rs_ps_result(ps), 0);
    assert_int_equal(rs_ps_get_state(ps), RS_PS_COMPLETED);
    assert_true(rs_ps_had_errors(ps));
    assert_int_equal(rs_ps_item_count(ps), 5);
    char *j = json_of(rs_ps_output(ps));
    assert_string_equal(j, "[1,4,4,-4,25]");
    rs_free(j);
    struct {
        rs_item_status st;
        size_t first, count;
    } want[] = {{RS_ITEM_OK, 0, 1},
                {RS_ITEM_OK, 1, 1},
                {RS_ITEM_ERROR, 2, 0},
                {RS_ITEM_OK, 2, 2},
                {RS_ITEM_OK, 4, 1}};
    for (size_t i = 0; i < 5; i++) {
        rs_item_result it;
        assert_ok(rs_ps_item(ps, i, &it));
        assert_int_equal(it.status, want[i].st);
        assert_int_equal(it.output_first, want[i].first);
        assert_int_equal(it.output_count, want[i].count);
        assert_true(it.duration >= 0 && it.duration < 5);
        assert_int_not_equal(it.runspace_id, 0);
        if (it.status == RS_ITEM_ERROR) {
            assert_int_equal(it.code, RS_ERUNTIME);
            assert_string_equal(it.error, "script:1: three");
        } else {
            assert_null(it.error);
        }
    }
    /* Error records name their item. */
    assert_int_equal(rs_ps_record_count(ps, RS_STREAM_ERROR), 2);
    rs_record r;
    assert_ok(rs_ps_record(ps, RS_STREAM_ERROR, 0, &r));
    assert_int_equal(r.item, 2);
    assert_ok(rs_ps_record(ps, RS_STREAM_ERROR, 1, &r));
    assert_int_equal(r.item, 4);
    assert_string_equal(r.message, "soft");
    rs_item_result it;
    assert_rs(RS_EINVAL, rs_ps_item(ps, 5, &it));
    assert_ok(rs_ps_end_invoke(ps, a, NULL));
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

static void test_without_item_results_first_error_ends(void **state)
{
    (void)state;
    rs_ps *ps = new_ps(NULL, "if _ == 2 then error('two') end return _");
    for (int i = 1; i <= 3; i++)
        assert_ok(rs_ps_add_input(ps, rs_value_int(i)));
    assert_invoke(ps, RS_ERUNTIME, "[1]");
    assert_int_equal(rs_ps_item_count(ps), 0);
    assert_ok(rs_ps_destroy(ps));
}

/* rs_ps_clear_arguments keeps the stages and drops their arguments and parameters, so that an
 * invocation runs again with new ones; refused while running. */
static void test_clear_arguments(void **state)
{
    (void)state;
    rs_pool *pool = open_pool(1, 1);
    rs_ps *ps = new_ps(pool, "return select('#', ...), params.k or 'none', ...");
    assert_ok(rs_ps_add_argument(ps, rs_value_int(1)));
    assert_ok(rs_ps_add_argument(ps, rs_value_int(2)));
    assert_ok(rs_ps_add_parameter(ps, "k", rs_value_string("v")));
    rs_value *out = NULL;
    assert_ok(rs_ps_invoke(ps, &out));
    char *j = json_of(out);
    assert_string_equal(j, "[2,\"v\",1,2]");
    rs_free(j);
    rs_value_destroy(out);
    assert_ok(rs_ps_clear_arguments(ps));
    assert_ok(rs_ps_add_argument(ps, rs_value_int(7)));
    assert_ok(rs_ps_invoke(ps, &out));
    j = json_of(out);
    assert_string_equal(j, "[1,\"none\",7]");
    rs_free(j);
    rs_value_destroy(out);
    assert_ok(rs_ps_clear(ps));
    assert_ok(rs_ps_add_script(ps, "sleep(10)", (size_t)-1));
    rs_async *a;
    assert_ok(rs_ps_begin_invoke(ps, &a));
    assert_rs(RS_EBUSY, rs_ps_clear_arguments(ps));
    assert_ok(rs_ps_stop(ps));
    assert_rs(RS_EMISUSE, rs_ps_clear_arguments(NULL));
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

typedef struct streamed {
    size_t lines, warnings, errors, other;
    int64_t last_item;
} streamed;

static void count_streamed(rs_ps *ps, const rs_record *r, void *ud)
{
    (void)ps;
    streamed *s = ud;
    if (r->stream == RS_STREAM_INFORMATION && strcmp(r->message, "0123456789") == 0 &&
        r->message_len == 10 && r->line == 1 && strcmp(r->source, "script") == 0)
        s->lines++;
    else if (r->stream == RS_STREAM_WARNING)
        s->warnings++;
    else if (r->stream == RS_STREAM_ERROR)
        s->errors++;
    else
        s->other++;
    s->last_item = r->item;
}

/* RS_PS_STREAM_RECORDS: records are handed to on_record as they are written and neither kept
 * nor charged, so that 200,000 lines print in an 8 MiB runspace (kept, they take about 50 MB
 * of the limit and the invocation fails); error records are still kept. */
static void test_stream_records_not_kept(void **state)
{
    (void)state;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    rs_limits lim = {.memory_bytes = 8u << 20};
    assert_ok(rs_iss_set_limits(iss, &lim));
    rs_runspace *rs = open_runspace(iss);
    const char *src = "for i = 1, 200000 do print('0123456789') end "
                      "write_warning('w') write_error('e') return 'done'";
    rs_ps *ps = new_ps(NULL, src);
    assert_ok(rs_ps_set_runspace(ps, rs));
    streamed seen = {0};
    rs_ps_opts o = {.flags = RS_PS_STREAM_RECORDS, .on_record = count_streamed, .userdata = &seen};
    assert_ok(rs_ps_set_opts(ps, &o));
    assert_invoke(ps, 0, "[\"done\"]");
    assert_int_equal(seen.lines, 200000);
    assert_int_equal(seen.warnings, 1);
    assert_int_equal(seen.errors, 1);
    assert_int_equal(seen.other, 0);
    assert_int_equal(rs_ps_record_count(ps, RS_STREAM_INFORMATION), 0);
    assert_int_equal(rs_ps_record_count(ps, RS_STREAM_WARNING), 0);
    assert_int_equal(rs_ps_record_count(ps, RS_STREAM_ERROR), 1);
    assert_true(rs_ps_had_errors(ps));
    rs_record r;
    assert_rs(RS_EINVAL, rs_ps_record(ps, RS_STREAM_INFORMATION, 0, &r));
    assert_ok(rs_ps_record(ps, RS_STREAM_ERROR, 0, &r));
    assert_string_equal(r.message, "e");
    /* A terminating error is kept with its traceback; records carry their item. */
    assert_ok(rs_ps_clear(ps));
    assert_ok(rs_ps_add_script(ps, "print('0123456789') error('boom')", (size_t)-1));
    assert_ok(rs_ps_add_input(ps, rs_value_int(1)));
    assert_ok(rs_ps_add_input(ps, rs_value_int(2)));
    seen = (streamed){0};
    assert_invoke(ps, RS_ERUNTIME, "[]");
    assert_int_equal(seen.lines, 1);
    assert_int_equal(seen.errors, 1);
    assert_int_equal(seen.last_item, 0);
    assert_string_equal(rs_ps_errmsg(ps), "script:1: boom");
    assert_int_equal(rs_ps_record_count(ps, RS_STREAM_INFORMATION), 0);
    assert_int_equal(rs_ps_record_count(ps, RS_STREAM_ERROR), 1);
    assert_ok(rs_ps_record(ps, RS_STREAM_ERROR, 0, &r));
    assert_contains(r.traceback, "stack traceback:");
    /* Without on_record they are dropped; without the flag they are kept and charged. */
    assert_ok(rs_ps_clear(ps));
    assert_ok(rs_ps_add_script(ps, src, (size_t)-1));
    o.on_record = NULL;
    assert_ok(rs_ps_set_opts(ps, &o));
    assert_invoke(ps, 0, "[\"done\"]");
    assert_int_equal(rs_ps_record_count(ps, RS_STREAM_ERROR), 1);
    o.flags = 0;
    assert_ok(rs_ps_set_opts(ps, &o));
    assert_invoke(ps, RS_ENOMEM, "[]");
    assert_contains(rs_ps_errmsg(ps), "the information records of this run do not fit");
    o.flags = 1u << 2;
    assert_rs(RS_EINVAL, rs_ps_set_opts(ps, &o));
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_runspace_destroy(rs));
    assert_ok(rs_iss_destroy(iss));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_clear_arguments),
    cmocka_unit_test(test_private_runspace),
    cmocka_unit_test(test_begin_end_on_pool),
    cmocka_unit_test(test_end_misuse),
    cmocka_unit_test(test_wait_timeout_and_fd),
    cmocka_unit_test(test_misuse_while_running),
    cmocka_unit_test(test_null_handles),
    cmocka_unit_test(test_streams_and_records),
    cmocka_unit_test(test_runtime_error_record),
    cmocka_unit_test(test_callbacks),
    cmocka_unit_test(test_callback_sees_result),
    cmocka_unit_test(test_arguments_and_parameters),
    cmocka_unit_test(test_inputs),
    cmocka_unit_test(test_pipeline_stages),
    cmocka_unit_test(test_syntax_error_nothing_runs),
    cmocka_unit_test(test_failure_is_isolated),
    cmocka_unit_test(test_item_results),
    cmocka_unit_test(test_without_item_results_first_error_ends),
    cmocka_unit_test(test_stream_records_not_kept),
};

RS_TEST_MAIN(tests)
