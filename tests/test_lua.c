/*
 * test_lua.c -- a runspace behaves as Lua does where the library wraps Lua's own functions:
 * gsub, load and loadfile's modes, dofile in a coroutine, setmetatable's errors and a
 * finalizer's identity, coroutine.wrap's and coroutine.close's errors, the argument errors of
 * the functions it replaces, and the message of an error object that is not a string.
 */
#include "util.h"

#include <unistd.h>

/* What the host of a session state was given: the records of finalizers run at close. */
typedef struct host_log {
    int count;
    char text[512];
    int stream[8];
    int64_t item[8];
} host_log;

static void on_host(const rs_record *r, void *ud)
{
    host_log *h = ud;
    if (h->count < 8) {
        h->stream[h->count] = (int)r->stream;
        h->item[h->count] = r->item;
    }
    h->count++;
    size_t used = strlen(h->text);
    snprintf(h->text + used, sizeof h->text - used, "%s|", r->message);
}

/* As lua_close runs finalizers that print, a runspace's close gives their records to the
 * host; records written during an invocation still go to the invocation, and a frozen ISS
 * refuses a host. */
static void test_finalizer_prints_at_close(void **state)
{
    (void)state;
    rs_iss *iss;
    host_log h = {0};
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    assert_ok(rs_iss_set_host(iss, on_host, &h));
    rs_runspace *rs = open_runspace(iss);
    assert_rs(RS_EBUSY, rs_iss_set_host(iss, NULL, NULL));
    assert_eval(rs,
                "print('during') "
                "G = setmetatable({}, {__gc = function() print('bye', 1) warn('late') end}) "
                "return 1",
                "[1]");
    assert_int_equal(h.count, 0);
    assert_ok(rs_runspace_destroy(rs));
    assert_int_equal(h.count, 2);
    assert_string_equal(h.text, "bye\t1|late|");
    assert_int_equal(h.stream[0], RS_STREAM_INFORMATION);
    assert_int_equal(h.stream[1], RS_STREAM_WARNING);
    assert_int_equal(h.item[0], -1);
    assert_ok(rs_iss_destroy(iss));

    /* Without a host, they go nowhere, and nothing breaks. */
    rs = open_runspace(NULL);
    assert_eval(rs, "G = setmetatable({}, {__gc = function() print('unheard') end}) return 2",
                "[2]");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_gsub_returns_the_subject(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    /* Nothing replaced (no match, or only nil/false replacements): the very same string. */
    assert_eval(
        rs,
        "local s = ('a'):rep(100) .. 'b' "
        "local function same(t) return string.format('%p', s) == string.format('%p', t) end "
        "return same((s:gsub('x', 'y'))), same((s:gsub('a', {}))), "
        "same((s:gsub('a', function() return false end))), same((s:gsub('a', 'a')))",
        "[true,true,true,false]");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_load_modes(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    char path[] = "/tmp/rs_test_chunk_XXXXXX.lua";
    write_temp_lua(path, "return 5");
    char src[256];
    snprintf(src, sizeof src, "return loadfile('%s', 'b')", path);
    assert_eval(rs, src, "[null,\"attempt to load a text chunk (mode is 'b')\"]");
    snprintf(src, sizeof src, "return loadfile('%s', 'bt')(), loadfile('%s')()", path, path);
    assert_eval(rs, src, "[5,5]");
    unlink(path);
    assert_ok(rs_runspace_destroy(rs));
}

static void test_dofile_yields(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    char path[] = "/tmp/rs_test_yield_XXXXXX.lua";
    write_temp_lua(path, "coroutine.yield(1) return 2");
    char src[256];
    snprintf(src, sizeof src,
             "local co = coroutine.wrap(function() return dofile('%s') end) return co(), co()",
             path);
    assert_eval(rs, src, "[1,2]");
    unlink(path);
    assert_ok(rs_runspace_destroy(rs));
}

static void test_wrap_error_after_close(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    /* The error is the one left after the __close handlers ran, with the caller's position
     * added to a string, as Lua's auxwrap does. */
    assert_eval(rs,
                "local f = coroutine.wrap(function() local x <close> = setmetatable({}, "
                "{__close = function() error('in close', 0) end}) error('first', 0) end) "
                "local ok, e = pcall(f) return e",
                "[\"in close\"]");
    assert_eval(rs,
                "local f = coroutine.wrap(function() error('plain', 0) end) "
                "local ok, e = pcall(f) return e",
                "[\"plain\"]");
    assert_eval(rs,
                "local f = coroutine.wrap(function() error('at', 0) end) "
                "local ok, e = pcall(function() return f() end) return e",
                "[\"script:1: at\"]");
    assert_ok(rs_runspace_destroy(rs));
}

/* The library's built-ins and wrappers carry no upvalues, as Lua's own functions. */
static void test_no_upvalues(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    assert_eval(rs,
                "local n = 0 for _, f in ipairs({print, load, setmetatable, xpcall, dofile, "
                "loadfile, emit, sleep, write_warning, shared.get, json.encode, time.now, exec, "
                "fs.list, net.probe, proc.list, coroutine.close, coroutine.wrap}) do "
                "n = n + debug.getinfo(f, 'u').nups end return n",
                "[0]");
    assert_ok(rs_runspace_destroy(rs));
}

/* A hook the script sets on a coroutine stays when it is resumed; a stop still reaches it. */
static void test_coroutine_hooks(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    assert_eval(rs,
                "local co = coroutine.create(function() local x = 1 x = x + 1 end) "
                "local trace = {} debug.sethook(co, function(e) trace[#trace + 1] = e end, 'l') "
                "coroutine.resume(co) return #trace > 0",
                "[true]");
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    assert_ok(rs_ps_add_script(ps,
                               "local co = coroutine.create(function() while true do end end) "
                               "debug.sethook(co, function() end, 'l') coroutine.resume(co)",
                               (size_t)-1));
    rs_ps_opts o = {.timeout = 0.2};
    assert_ok(rs_ps_set_opts(ps, &o));
    double t0 = rs_test_now();
    assert_rs(RS_ETIMEDOUT, rs_ps_invoke(ps, NULL));
    assert_true(rs_test_now() - t0 < 3.0);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_runspace_destroy(rs));
}

/* A named script reads like a file in Lua's messages and debug information. */
static void test_named_scripts(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    const char *names[] = {"job.lua", "other.lua", NULL};
    for (int i = 0; i < 3; i++) {
        rs_ps *ps;
        assert_ok(rs_ps_create(&ps));
        assert_ok(rs_ps_set_runspace(ps, rs));
        /* The same source under each name: the compile cache keeps them apart. */
        assert_ok(rs_ps_add_script_named(ps,
                                         "local src = debug.getinfo(1, 'S').source\n"
                                         "error('from ' .. src)",
                                         (size_t)-1, names[i]));
        assert_rs(RS_ERUNTIME, rs_ps_invoke(ps, NULL));
        char want[64];
        if (names[i])
            snprintf(want, sizeof want, "%s:2: from @%s", names[i], names[i]);
        else
            snprintf(want, sizeof want, "script:2: from =script");
        assert_string_equal(rs_ps_errmsg(ps), want);
        assert_ok(rs_ps_destroy(ps));
    }
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_rs(RS_ESYNTAX, rs_ps_add_script_named(ps, "return +", (size_t)-1, "bad.lua"));
    assert_string_equal(rs_ps_errmsg(ps), "bad.lua:1: unexpected symbol near '+'");
    assert_rs(RS_EINVAL, rs_ps_add_script_named(ps, "return 1", (size_t)-1, ""));
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_runspace_destroy(rs));
}

/* xpcall is Lua's own: the handler sees the frames Lua shows, and no frame of ours. */
static void test_xpcall_frames(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    assert_eval(rs,
                "local _, tb = xpcall(function() error('x') end, debug.traceback) "
                "local lines = 0 for _ in tb:gmatch('\\n') do lines = lines + 1 end "
                "return lines, xpcall == select(2, pcall(function() return xpcall end))",
                "[6,true]");
    assert_ok(rs_runspace_destroy(rs));
}

/* load's argument errors name load, and carry the caller's position when a Lua function
 * called it, as lua5.4's do: load raises them itself. */
static void test_load_argument_errors(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    assert_eval(rs,
                "local function msg(...) return select(2, pcall(...)) end "
                "return msg(load, nil), msg(function() load(nil) end), msg(load), "
                "msg(load, 'x', {}), msg(load, {}, 1, 2)",
                "[\"bad argument #1 to 'load' (function expected, got nil)\","
                "\"script:1: bad argument #1 to 'load' (function expected, got nil)\","
                "\"bad argument #1 to 'load' (function expected, got no value)\","
                "\"bad argument #2 to 'load' (string expected, got table)\","
                "\"bad argument #1 to 'load' (function expected, got table)\"]");
    /* A reader function still works, and one returning a non-string is refused as in Lua
     * (whose message, as lua5.4's, went through the running message handler). */
    assert_eval(rs,
                "local parts = {'return ', '4', '2'} local i = 0 "
                "local f = load(function() i = i + 1 return parts[i] end) "
                "return f(), (select(2, load(function() return {} end))):match('^[^\\n]*')",
                "[42,\"script:1: reader function must return a string\"]");
    assert_ok(rs_runspace_destroy(rs));
}

/* coroutine.resume and coroutine.close, which the runspace replaces, say "thread expected"
 * as lua5.4's do (and as its coroutine.status still does). */
static void test_coroutine_argument_errors(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    assert_eval(rs,
                "local function msg(...) return select(2, pcall(...)) end "
                "return msg(coroutine.resume, 1), msg(coroutine.close), "
                "msg(function() coroutine.close({}) end), msg(coroutine.status, 1)",
                "[\"bad argument #1 to 'coroutine.resume' (thread expected, got number)\","
                "\"bad argument #1 to 'coroutine.close' (thread expected, got no value)\","
                "\"script:1: bad argument #1 to 'close' (thread expected, got table)\","
                "\"bad argument #1 to 'coroutine.status' (thread expected, got number)\"]");
    assert_ok(rs_runspace_destroy(rs));
}

/* Each chunk mode on text and on binary input (string.dump's) answers as lua5.4 does, but
 * for the refusal of a binary chunk a mode allows, which comes as Lua gives a refused mode:
 * nil and the message from load and loadfile, an error from dofile. */
static void test_load_modes_binary(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    char text[] = "/tmp/rs_test_text_XXXXXX.lua";
    write_temp_lua(text, "return 5");
    char bin[] = "/tmp/rs_test_bin_XXXXXX.lua";
    write_temp_lua(bin, "");
    char src[1024];
    snprintf(src, sizeof src,
             "local f = io.open('%s', 'wb') f:write(string.dump(function() return 7 end)) "
             "f:close() return true",
             bin);
    assert_eval(rs, src, "[true]");
    static const char refused[] = "binary chunks cannot be loaded in a runspace";
    struct {
        const char *mode, *text, *binary;
    } cases[] = {
        {"b", "attempt to load a text chunk (mode is 'b')", refused},
        {"t", "5", "attempt to load a binary chunk (mode is 't')"},
        {"bt", "5", refused},
        {"tb", "5", refused},
        {"x", "attempt to load a text chunk (mode is 'x')",
         "attempt to load a binary chunk (mode is 'x')"},
        {"", "attempt to load a text chunk (mode is '')",
         "attempt to load a binary chunk (mode is '')"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        /* What each loader gives: the chunk's result, or the message of nil, msg. */
        snprintf(src, sizeof src,
                 "local function try(f, msg) if f then return tostring(f()) end return msg end "
                 "local function read(p) local h = io.open(p, 'rb') local s = h:read('a') "
                 "h:close() return s end "
                 "local out = {} for _, p in ipairs{'%s', '%s'} do "
                 "out[#out + 1] = try(loadfile(p, '%s')) "
                 "out[#out + 1] = try(load(read(p), 'n', '%s')) "
                 "local s, k = read(p), 0 "
                 "out[#out + 1] = try(load(function() k = k + 1 if k == 1 then return s end end, "
                 "'n', '%s')) end "
                 "return table.concat(out, '|')",
                 text, bin, cases[i].mode, cases[i].mode, cases[i].mode);
        char want[1024];
        snprintf(want, sizeof want, "[\"%s|%s|%s|%s|%s|%s\"]", cases[i].text, cases[i].text,
                 cases[i].text, cases[i].binary, cases[i].binary, cases[i].binary);
        assert_eval(rs, src, want);
    }
    snprintf(src, sizeof src, "return dofile('%s'), select(2, pcall(dofile, '%s'))", text, bin);
    assert_eval(rs, src, "[5,\"binary chunks cannot be loaded in a runspace\"]");
    unlink(text);
    unlink(bin);
    assert_ok(rs_runspace_destroy(rs));
}

/* An error object that is a number shows as its text, as lua.c's message handler shows it;
 * one with __tostring uses it; others name their type. */
static void test_error_object_messages(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    struct {
        const char *src, *msg;
    } cases[] = {
        {"error(42)", "42"},
        {"error(1.5)", "1.5"},
        {"error(setmetatable({}, {__tostring = function() return 'mine' end}))", "mine"},
        {"error(true)", "(error object is a boolean value)"},
        /* a __tostring that gives no string: lua.c's words, not the table's JSON */
        {"error(setmetatable({a = 1}, {__tostring = function() return {} end}))",
         "(error object is a table value)"},
        {"error({a = 1})", "{\"a\":1}"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *m = NULL;
        assert_int_equal(eval(rs, NULL, cases[i].src, NULL, &m), RS_ERUNTIME);
        assert_string_equal(m, cases[i].msg);
        free(m);
    }
    assert_ok(rs_runspace_destroy(rs));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_load_argument_errors),
    cmocka_unit_test(test_coroutine_argument_errors),
    cmocka_unit_test(test_load_modes_binary),
    cmocka_unit_test(test_error_object_messages),
    cmocka_unit_test(test_xpcall_frames),
    cmocka_unit_test(test_named_scripts),
    cmocka_unit_test(test_coroutine_hooks),
    cmocka_unit_test(test_no_upvalues),
    cmocka_unit_test(test_finalizer_prints_at_close),
    cmocka_unit_test(test_gsub_returns_the_subject),
    cmocka_unit_test(test_load_modes),
    cmocka_unit_test(test_dofile_yields),
    cmocka_unit_test(test_wrap_error_after_close),
};

RS_TEST_MAIN(tests)
