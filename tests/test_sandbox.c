/*
 * test_sandbox.c -- the restricted profile's denials, one by one, as README's "The restricted
 * profile" section promises them: no file, process, socket, environment, native code or
 * bytecode; require serves only what the host preloaded.
 */
#include "util.h"

#include <unistd.h>

static rs_runspace *restricted(void)
{
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_RESTRICTED, &iss));
    rs_runspace *rs = open_runspace(iss);
    assert_ok(rs_iss_destroy(iss));
    return rs;
}

/* A file in a fresh directory, with the given text; the directory is returned in dir. */
static void write_file(char *dir, const char *name, const char *text, char *path, size_t size)
{
    assert_non_null(mkdtemp(dir));
    snprintf(path, size, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static void test_no_system_access(void **state)
{
    (void)state;
    rs_runspace *rs = restricted();
    assert_eval(rs,
                "return io == nil, debug == nil, loadfile == nil, dofile == nil, fs == nil, "
                "net == nil, exec == nil, proc == nil",
                "[true,true,true,true,true,true,true,true]");
    assert_eval(rs,
                "return os.execute == nil, os.remove == nil, os.rename == nil, "
                "os.getenv == nil, os.tmpname == nil, package.loadlib == nil, "
                "package.searchpath == nil, package.path, package.cpath",
                "[true,true,true,true,true,true,true,\"\",\"\"]");
    assert_eval_fails(rs, "os.exit(0)", RS_ERUNTIME, "os.exit is not available");
    assert_eval_fails(rs, "os.setlocale('C')", RS_ERUNTIME, "os.setlocale is not available");
    /* Bytecode: string.dump works, loading its result does not. */
    assert_eval(rs, "return load(string.dump(function() return 1 end)) == nil", "[true]");
    assert_eval(rs, "return select(2, load(string.dump(function() return 1 end)))",
                "[\"binary chunks cannot be loaded in a runspace\"]");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_require_reads_no_file(void **state)
{
    (void)state;
    char dir[] = "/tmp/rs_sandbox_XXXXXX", path[256];
    write_file(dir, "secret.lua", "leaked = 'the secret' return 'the secret'", path, sizeof path);
    char bad[300];
    snprintf(bad, sizeof bad, "%s/broken.lua", dir);
    FILE *f = fopen(bad, "w");
    assert_non_null(f);
    fputs("this is not Lua: the-secret-text", f);
    fclose(f);

    rs_runspace *rs = restricted();
    char src[512];
    /* Pointing package.path at the files loads nothing, runs nothing, shows nothing. */
    snprintf(src, sizeof src,
             "package.path = '%s/?.lua' local ok, err = pcall(require, 'secret') "
             "return ok, leaked == nil, err:find('the secret') == nil, "
             "err:find('loads no modules from files') ~= nil",
             dir);
    assert_eval(rs, src, "[false,true,true,true]");
    snprintf(src, sizeof src,
             "package.path = '%s/?.lua' local ok, err = pcall(require, 'broken') "
             "return ok, err:find('the%%-secret%%-text') == nil",
             dir);
    assert_eval(rs, src, "[false,true]");
    /* Nor can a script's own searcher read them: it has nothing to read with. */
    snprintf(src, sizeof src,
             "table.insert(package.searchers, function(n) return loadfile('%s/' .. n .. '.lua') "
             "end) return (pcall(require, 'secret')), leaked == nil",
             dir);
    assert_eval(rs, src, "[false,true]");
    /* Existence of files cannot be told apart: the same message for a file that exists. */
    assert_eval(rs,
                "package.path = '/etc/?' local _, a = pcall(require, 'passwd') "
                "local _, b = pcall(require, 'no-such-file-here') "
                "return a:gsub('passwd', 'X') == b:gsub('no%-such%-file%-here', 'X')",
                "[true]");
    /* What the host preloads is there. */
    assert_eval(rs, "package.preload.answer = function() return 42 end return (require('answer'))",
                "[42]");
    assert_ok(rs_runspace_destroy(rs));
    unlink(path);
    unlink(bad);
    rmdir(dir);
}

/* The host's modules load by name in the restricted profile, from the host's path. */
static void test_host_modules_by_name(void **state)
{
    (void)state;
    char dir[] = "/tmp/rs_sandbox_XXXXXX", path[256];
    write_file(dir, "hostmod.lua", "return {value = 7}", path, sizeof path);
    char lua_path[300];
    snprintf(lua_path, sizeof lua_path, "%s/?.lua", dir);
    setenv("LUA_PATH_5_4", lua_path, 1);
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_RESTRICTED, &iss));
    assert_ok(rs_iss_add_module(iss, "hostmod"));
    rs_runspace *rs = open_runspace(iss);
    assert_ok(rs_iss_destroy(iss));
    assert_eval(rs, "return hostmod.value, require('hostmod').value, package.path", "[7,7,\"\"]");
    assert_ok(rs_runspace_destroy(rs));
    unsetenv("LUA_PATH_5_4");
    unlink(path);
    rmdir(dir);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_no_system_access),
    cmocka_unit_test(test_require_reads_no_file),
    cmocka_unit_test(test_host_modules_by_name),
};

RS_TEST_MAIN(tests)
