/*
 * test_install.c -- the library as a package: this build is installed (cmake --install, with
 * DESTDIR) into a temporary tree, and programs outside the project are built against that tree
 * alone: one with pkg-config only, one with CMake's find_package only. Also: every file a
 * Debian library package holds is there, the shell completions complete, and `make install`
 * neither installs packages nor builds benchmarks.
 */
#include "util.h"

#include <sys/stat.h>
#include <unistd.h>

#define FIXTURE RS_SOURCE_DIR "/tests/outside"

/* The installed tree: root is the DESTDIR, prefix the tree's prefix inside it. */
typedef struct tree {
    char root[64];
    char prefix[256];
    char libdir[320];
} tree;

/* Runs a shell script; returns its result (the test frees it). */
static cmd_result sh(const char *script, double limit)
{
    char *argv[] = {"/bin/sh", "-c", (char *)script, NULL};
    return run_cmd(argv, limit);
}

static void sh_ok(const char *script, double limit)
{
    cmd_result r = sh(script, limit);
    if (r.status != 0)
        fail_msg("exit %d from:\n%s\nstdout:\n%s\nstderr:\n%s", r.status, script, r.out, r.err);
    cmd_result_free(&r);
}

static int install_setup(void **state)
{
    tree *t = calloc(1, sizeof *t);
    assert_non_null(t);
    snprintf(t->root, sizeof t->root, "/tmp/rs-install-XXXXXX");
    assert_non_null(mkdtemp(t->root));
    snprintf(t->prefix, sizeof t->prefix, "%s%s", t->root, RS_INSTALL_PREFIX);
    snprintf(t->libdir, sizeof t->libdir, "%s/%s", t->prefix, RS_INSTALL_LIBDIR);
    char script[512];
    snprintf(script, sizeof script, "DESTDIR='%s' cmake --install '%s' >/dev/null", t->root,
             RS_BUILD_DIR);
    sh_ok(script, 120);
    *state = t;
    return 0;
}

static int install_teardown(void **state)
{
    tree *t = *state;
    char script[256];
    snprintf(script, sizeof script, "rm -rf '%s'", t->root);
    sh_ok(script, 60);
    free(t);
    return 0;
}

static void assert_file(const char *dir, const char *name)
{
    char path[512];
    struct stat st;
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
        fail_msg("%s was not installed", path);
}

static void test_install_tree(void **state)
{
    tree *t = *state;
    assert_file(t->libdir, "librunspace.so." RS_VERSION_STRING);
    assert_file(t->libdir, "librunspace.so.0"); /* the soname, a link to it */
    assert_file(t->libdir, "librunspace.so");
    assert_file(t->libdir, "librunspace.a");
    assert_file(t->libdir, "pkgconfig/runspace.pc");
    assert_file(t->libdir, "cmake/runspace/runspaceConfig.cmake");
    assert_file(t->libdir, "cmake/runspace/runspaceConfigVersion.cmake");
    assert_file(t->prefix, "include/runspace.h");
    assert_file(t->prefix, "bin/runspace");
    assert_file(t->prefix, "share/man/man1/runspace.1");
    assert_file(t->prefix, "share/bash-completion/completions/runspace");
    assert_file(t->prefix, "share/zsh/vendor-completions/_runspace");
    /* What pkg-config tells a user of the tree. */
    char script[2048];
    snprintf(script, sizeof script,
             "export PKG_CONFIG_PATH='%s/pkgconfig'; "
             "pkg-config --print-requires-private runspace && pkg-config --modversion runspace",
             t->libdir);
    cmd_result r = sh(script, 30);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "lua5.4\njansson\nhiredis\n" RS_VERSION_STRING "\n");
    cmd_result_free(&r);
    /* The directories are the tree's, wherever the tree is. */
    snprintf(script, sizeof script,
             "export PKG_CONFIG_PATH='%s/pkgconfig'; "
             "cd \"$(pkg-config --variable=includedir runspace)\" && pwd && "
             "cd \"$(pkg-config --variable=libdir runspace)\" && pwd",
             t->libdir);
    r = sh(script, 30);
    char want[1024];
    assert_int_equal(r.status, 0);
    snprintf(want, sizeof want, "%s/include\n%s\n", t->prefix, t->libdir);
    assert_string_equal(r.out, want);
    cmd_result_free(&r);
}

/* An outside program built with the compiler and pkg-config alone. */
static void test_install_pkg_config(void **state)
{
    tree *t = *state;
    char script[2048];
    snprintf(script, sizeof script,
             "set -e; export PKG_CONFIG_PATH='%s/pkgconfig'; "
             "%s %s -o '%s/prog' '%s/prog.c' $(pkg-config --cflags --libs runspace); "
             "LD_LIBRARY_PATH='%s' '%s/prog'",
             t->libdir, RS_CC, RS_SANITIZE_FLAGS, t->root, FIXTURE, t->libdir, t->root);
    cmd_result r = sh(script, 120);
    if (r.status != 0)
        fail_msg("exit %d: %s", r.status, r.err);
    assert_string_equal(r.out, "runspace " RS_VERSION_STRING ": 42\n");
    cmd_result_free(&r);
    /* The program uses the installed library, not the build's. */
    snprintf(script, sizeof script, "LD_LIBRARY_PATH='%s' ldd '%s/prog' | grep librunspace",
             t->libdir, t->root);
    r = sh(script, 30);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, t->libdir);
    cmd_result_free(&r);
}

/* An outside CMake project built with find_package(runspace) alone: shared and static. */
static void test_install_find_package(void **state)
{
    tree *t = *state;
    char script[2048];
    snprintf(script, sizeof script,
             "set -e; cmake -S '%s' -B '%s/outside' -DCMAKE_PREFIX_PATH='%s' "
             "-DCMAKE_C_COMPILER='%s' -DCMAKE_C_FLAGS='%s' >/dev/null; "
             "cmake --build '%s/outside' >/dev/null; "
             "'%s/outside/prog_shared'; '%s/outside/prog_static'",
             FIXTURE, t->root, t->prefix, RS_CC, RS_SANITIZE_FLAGS, t->root, t->root, t->root);
    cmd_result r = sh(script, 170);
    if (r.status != 0)
        fail_msg("exit %d:\n%s\n%s", r.status, r.out, r.err);
    assert_string_equal(r.out, "runspace " RS_VERSION_STRING ": 42\n"
                               "runspace " RS_VERSION_STRING ": 42\n");
    cmd_result_free(&r);
}

/* The bash completion completes subcommands and the options the installed program has. */
static void test_install_completions(void **state)
{
    tree *t = *state;
    char script[2048];
    snprintf(script, sizeof script,
             "bash -c 'source \"%s/share/bash-completion/completions/runspace\"; "
             "COMP_WORDS=(\"%s/bin/runspace\" fo); COMP_CWORD=1; _runspace; "
             "echo \"${COMPREPLY[*]}\"; "
             "COMP_WORDS=(\"%s/bin/runspace\" scan --top); COMP_CWORD=2; _runspace; "
             "echo \"${COMPREPLY[*]}\"; "
             "COMP_WORDS=(\"%s/bin/runspace\" scan -o); COMP_CWORD=2; _runspace; "
             "echo \"${COMPREPLY[*]}\"; "
             "COMP_WORDS=(\"%s/bin/runspace\" scan --format j); COMP_CWORD=3; _runspace; "
             "echo \"${COMPREPLY[*]}\"'",
             t->prefix, t->prefix, t->prefix, t->prefix, t->prefix);
    cmd_result r = sh(script, 30);
    if (r.status != 0)
        fail_msg("exit %d: %s", r.status, r.err);
    assert_string_equal(r.out, "foreach\n--top-ports\n-oA -oG -oN -oX\njsonl\n");
    cmd_result_free(&r);
    /* zsh, when it is there, at least parses its completion. */
    snprintf(script, sizeof script,
             "if command -v zsh >/dev/null; then zsh -n "
             "'%s/share/zsh/vendor-completions/_runspace'; fi",
             t->prefix);
    sh_ok(script, 30);
}

/* `make install` builds the library and program and installs them, and nothing else: no
 * packages, no benchmarks, no tests (its recipe, shown by make -n). */
static void test_make_install_recipe(void **state)
{
    (void)state;
    cmd_result r = sh("make -n -C '" RS_SOURCE_DIR "' install PREFIX=/usr DESTDIR=/tmp/staged", 60);
    assert_int_equal(r.status, 0);
    if (strstr(r.out, "apt-get") || strstr(r.out, "dpkg"))
        fail_msg("make install installs packages:\n%s", r.out);
    assert_contains(r.out, "-DCMAKE_INSTALL_PREFIX=/usr");
    assert_contains(r.out, "-DRS_BUILD_TESTS=OFF");
    assert_contains(r.out, "-DRS_BUILD_BENCH=OFF");
    assert_contains(r.out, "DESTDIR=/tmp/staged cmake --install");
    cmd_result_free(&r);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test_setup_teardown(test_install_tree, install_setup, install_teardown),
    cmocka_unit_test_setup_teardown(test_install_pkg_config, install_setup, install_teardown),
    cmocka_unit_test_setup_teardown(test_install_find_package, install_setup, install_teardown),
    cmocka_unit_test_setup_teardown(test_install_completions, install_setup, install_teardown),
    cmocka_unit_test(test_make_install_recipe),
};

RS_TEST_MAIN(tests)
