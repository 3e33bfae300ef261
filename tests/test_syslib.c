/*
 * test_syslib.c -- the default profile's system built-ins: fs, proc and exec, with their
 * errors, and exec's promise that a stopped or timed-out command leaves nothing running.
 */
#include "util.h"

#include <dirent.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

/* Scripts find the fixtures directory in the environment. */
#define FIX "local FIX = os.getenv('FIX') "

static void test_fs_list_and_stat(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    assert_eval(rs,
                FIX
                "local names = {} for _, e in ipairs(fs.list(FIX)) do names[#names + 1] = e.name "
                "end table.sort(names) return names",
                "[[\"bad_syntax.lua\",\"greet.lua\",\"lib\",\"redis\",\"scan\"]]");
    assert_eval(rs,
                FIX
                "local n, dirs = 0, 0 for _, e in ipairs(fs.list(FIX, {recursive = true})) do "
                "if e.type == 'dir' then dirs = dirs + 1 else n = n + 1 end end return dirs >= 3, "
                "n >= 5",
                "[true,true]");
    assert_eval(rs,
                FIX "local e = fs.stat(FIX .. '/greet.lua') return e.name, e.type, e.size > 0, "
                    "e.mtime > 1.7e9, e.path == FIX .. '/greet.lua'",
                "[\"greet.lua\",\"file\",true,true,true]");
    assert_eval_fails(rs, "fs.list('/nonexistent/dir')", RS_ERUNTIME,
                      "fs.list: /nonexistent/dir: No such file or directory");
    assert_eval_fails(rs, "fs.stat('/nonexistent')", RS_ERUNTIME,
                      "fs.stat: /nonexistent: No such file or directory");
    assert_eval_fails(rs, FIX "fs.list(FIX .. '/greet.lua')", RS_ERUNTIME, "Not a directory");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_fs_links_are_not_followed(void **state)
{
    (void)state;
    char dir[] = "/tmp/rs_fs_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char link[128], sub[128];
    snprintf(sub, sizeof sub, "%s/sub", dir);
    snprintf(link, sizeof link, "%s/sub/loop", dir);
    assert_int_equal(mkdir(sub, 0700), 0);
    assert_int_equal(symlink(dir, link), 0); /* a cycle, if links were followed */
    rs_runspace *rs = open_runspace(NULL);
    char src[256];
    snprintf(src, sizeof src,
             "local t = {} for _, e in ipairs(fs.list('%s', {recursive = true})) do "
             "t[#t + 1] = e.name .. ':' .. e.type end table.sort(t) return t",
             dir);
    assert_eval(rs, src, "[[\"loop:link\",\"sub:dir\"]]");
    assert_ok(rs_runspace_destroy(rs));
    unlink(link);
    rmdir(sub);
    rmdir(dir);
}

static void test_proc_list(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    char src[256];
    snprintf(src, sizeof src,
             "for _, p in ipairs(proc.list()) do if p.pid == %d then "
             "return p.name, p.ppid == %d, p.cpu >= 0, p.rss > 0, #p.state end end",
             (int)getpid(), (int)getppid());
    assert_eval(rs, src, "[\"test_syslib\",true,true,true,1]");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_exec(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    assert_eval(rs,
                "local r = exec{'sh', '-c', 'cat; echo err >&2; exit 7', input = 'in\\n'} "
                "return r.code, r.stdout, r.stderr, r.signal",
                "[7,\"in\\n\",\"err\\n\",null]");
    assert_eval(rs, "local r = exec('echo', 'a b', 'c') return r.code, r.stdout",
                "[0,\"a b c\\n\"]");
    assert_eval(rs, "return exec{'pwd', cwd = '/tmp'}.stdout", "[\"/tmp\\n\"]");
    assert_eval(rs, "local r = exec{'sh', '-c', 'kill -TERM $$'} return r.code, r.signal",
                "[143,15]");
    /* Large output in both streams without deadlock. */
    assert_eval(rs,
                "local r = exec{'sh', '-c', 'head -c 300000 /dev/zero; head -c 300000 /dev/zero "
                ">&2'} return #r.stdout, #r.stderr",
                "[300000,300000]");
    assert_eval_fails(rs, "exec{'no-such-command-here'}", RS_ERUNTIME,
                      "exec: no-such-command-here: No such file or directory");
    char plain[] = "/tmp/rs_not_executable_XXXXXX";
    int fd = mkstemp(plain); /* mode 0600: not executable, even by root */
    close(fd);
    char src[128], want[128];
    snprintf(src, sizeof src, "exec{'%s'}", plain);
    snprintf(want, sizeof want, "exec: %s: Permission denied", plain);
    assert_eval_fails(rs, src, RS_ERUNTIME, want);
    unlink(plain);
    assert_eval_fails(rs, "exec{}", RS_ERUNTIME, "exec: no command given");
    assert_eval_fails(rs, "exec{'sleep', '10', timeout = 0.1}", RS_ERUNTIME,
                      "exec: sleep: timed out after 0.1 s");
    assert_ok(rs_runspace_destroy(rs));
}

/* The number of live processes whose command line contains marker (read from /proc; not
 * pgrep, whose own shell would match); kills them with kill_them. */
static int marked(const char *marker, bool kill_them)
{
    DIR *d = opendir("/proc");
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        if (e->d_name[0] < '0' || e->d_name[0] > '9')
            continue;
        char path[300], buf[4096];
        snprintf(path, sizeof path, "/proc/%s/cmdline", e->d_name);
        FILE *f = fopen(path, "r");
        if (!f)
            continue;
        size_t len = fread(buf, 1, sizeof buf - 1, f);
        fclose(f);
        for (size_t i = 0; i < len; i++)
            buf[i] = buf[i] ? buf[i] : ' ';
        buf[len] = '\0';
        if (strstr(buf, marker)) {
            n++;
            if (kill_them)
                kill((pid_t)atoi(e->d_name), SIGKILL);
        }
    }
    if (d)
        closedir(d);
    return n;
}

static int count_marked(const char *marker)
{
    return marked(marker, false);
}

/* After the orphan test, whatever happened: no marked process may outlive it. */
static int kill_leftovers(void **state)
{
    (void)state;
    char marker[64];
    snprintf(marker, sizeof marker, "rs_orphan_marker_%d_", (int)getpid());
    marked(marker, true);
    return 0;
}

static void test_exec_leaves_no_orphans(void **state)
{
    (void)state;
    rs_pool *pool;
    rs_pool_opts po = {.max_runspaces = 1};
    assert_ok(rs_pool_create(&po, &pool));
    assert_ok(rs_pool_open(pool));
    char marker[64];
    snprintf(marker, sizeof marker, "rs_orphan_marker_%d_", (int)getpid());
    char src[512];
    /* A command with a child in the background and one in the foreground, each a shell whose
     * command line carries the marker, all in the command's process group. */
    snprintf(src, sizeof src,
             "exec{'sh', '-c', 'sh -c \"sleep 300; : %s\" & sh -c \"sleep 300; : %s\"; : %s', "
             "timeout = 60}",
             marker, marker, marker);
    /* Stopped. */
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_pool(ps, pool));
    assert_ok(rs_ps_add_script(ps, src, (size_t)-1));
    rs_async *a;
    assert_ok(rs_ps_begin_invoke(ps, &a));
    /* Three shells; a fork that has not yet become `sleep` briefly counts as a fourth. */
    for (int i = 0; i < 500 && count_marked(marker) < 3; i++)
        sleep_for(0.02);
    assert_true(count_marked(marker) >= 3);
    assert_ok(rs_ps_stop(ps));
    assert_rs(RS_ESTOPPED, rs_ps_end_invoke(ps, a, NULL));
    assert_int_equal(count_marked(marker), 0);
    /* Timed out (the invocation's timeout). */
    rs_ps_opts o = {.timeout = 0.3};
    assert_ok(rs_ps_set_opts(ps, &o));
    assert_rs(RS_ETIMEDOUT, rs_ps_invoke(ps, NULL));
    assert_int_equal(count_marked(marker), 0);
    /* The command itself has exited; its background child, still in its group, holds the
     * outputs, so exec still waits, and the timeout kills that child too. */
    snprintf(src, sizeof src, "exec{'sh', '-c', 'sh -c \"sleep 300; : %s\" & exit 0'}", marker);
    assert_ok(rs_ps_clear(ps));
    assert_ok(rs_ps_add_script(ps, src, (size_t)-1));
    assert_rs(RS_ETIMEDOUT, rs_ps_invoke(ps, NULL));
    assert_int_equal(count_marked(marker), 0);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

/* os.execute: Lua's results, and a stop or timeout ends the shell (system() would wait). */
static void test_os_execute(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    assert_eval(rs, "return os.execute('exit 3')", "[null,\"exit\",3]");
    assert_eval(rs, "return os.execute('kill -9 $$')", "[null,\"signal\",9]");
    assert_eval(rs, "return os.execute('true')", "[true,\"exit\",0]");
    assert_eval(rs, "return os.execute()", "[true]");
    assert_ok(rs_runspace_destroy(rs));

    rs_pool *pool;
    rs_pool_opts po = {.max_runspaces = 1};
    assert_ok(rs_pool_create(&po, &pool));
    assert_ok(rs_pool_open(pool));
    char marker[64], src[256];
    snprintf(marker, sizeof marker, "rs_orphan_marker_%d_", (int)getpid());
    snprintf(src, sizeof src, "return os.execute('sleep 300; : %s')", marker);
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_pool(ps, pool));
    assert_ok(rs_ps_add_script(ps, src, (size_t)-1));
    rs_ps_opts o = {.timeout = 0.3};
    assert_ok(rs_ps_set_opts(ps, &o));
    double t0 = rs_test_now();
    assert_rs(RS_ETIMEDOUT, rs_ps_invoke(ps, NULL));
    if (rs_test_now() - t0 > 5)
        fail_msg("a 0.3 s timeout of os.execute took %.2f s", rs_test_now() - t0);
    assert_int_equal(count_marked(marker), 0);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

static void test_absent_from_restricted(void **state)
{
    (void)state;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_RESTRICTED, &iss));
    rs_runspace *rs = open_runspace(iss);
    assert_ok(rs_iss_destroy(iss));
    assert_eval(rs, "return fs == nil, proc == nil, exec == nil, net == nil",
                "[true,true,true,true]");
    assert_ok(rs_runspace_destroy(rs));
}

static int setup(void **state)
{
    (void)state;
    setenv("FIX", RS_TEST_FIXTURES, 1);
    return 0;
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup(test_fs_list_and_stat, setup),
    cmocka_unit_test(test_fs_links_are_not_followed),
    cmocka_unit_test(test_proc_list),
    cmocka_unit_test(test_exec),
    cmocka_unit_test_teardown(test_exec_leaves_no_orphans, kill_leftovers),
    cmocka_unit_test_teardown(test_os_execute, kill_leftovers),
    cmocka_unit_test(test_absent_from_restricted),
};

RS_TEST_MAIN(tests)
