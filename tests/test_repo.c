/*
 * test_repo.c -- the repository stands alone: its code and docs cite no file outside it, and
 * the examples its users copy (README, man page, --help texts) name only loopback, the
 * documentation ranges (192.0.2.0/24, 198.51.100.0/24, 203.0.113.0/24, 2001:db8::/32) or the
 * benchmarking range the tests' namespaces use (198.18.0.0/15), never a private LAN.
 */
#include "util.h"

#include <ftw.h>
#include <regex.h>
#include <unistd.h>

#define REPO RS_TEST_FIXTURES "/../.."

typedef struct finding {
    char where[512];
    int count;
} finding;

static finding found;
static regex_t private_lan;
static bool check_lan;

/* The contents of path (NUL-terminated), or NULL when it cannot be read. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    size_t cap = 1 << 16, n = 0;
    char *buf = malloc(cap);
    size_t got;
    while (buf && (got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0) {
            char *b = realloc(buf, cap * 2);
            if (!b) {
                free(buf);
                buf = NULL;
                break;
            }
            buf = b;
            cap *= 2;
        }
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    return buf;
}

static void note(const char *path, const char *what)
{
    if (!found.count++)
        snprintf(found.where, sizeof found.where, "%s: %s", path, what);
}

static void check_file(const char *path)
{
    char *text = slurp(path);
    if (!text)
        return;
    /* The words are split so that this file does not find itself. */
    static const char *const outside[] = {"../"
                                          "shared",
                                          "DESIGN"
                                          ".md",
                                          "STYLE"
                                          ".md"};
    for (size_t i = 0; i < sizeof outside / sizeof outside[0]; i++) {
        if (strstr(text, outside[i]))
            note(path, outside[i]);
    }
    regmatch_t m;
    if (check_lan && regexec(&private_lan, text, 1, &m, 0) == 0) {
        char addr[64];
        int len = (int)(m.rm_eo - m.rm_so);
        snprintf(addr, sizeof addr, "%.*s", len < 60 ? len : 60, text + m.rm_so);
        note(path, addr);
    }
    free(text);
}

static bool has_suffix(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static int visit(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st;
    (void)ftw;
    if (type != FTW_F)
        return 0;
    static const char *const kinds[] = {".c",     ".h",   ".lua", ".md", ".1",
                                        ".cmake", ".txt", ".in",  ".sh", "Makefile"};
    for (size_t i = 0; i < sizeof kinds / sizeof kinds[0]; i++) {
        if (has_suffix(path, kinds[i])) {
            check_file(path);
            break;
        }
    }
    return 0;
}

/* Code, build files and docs cite nothing outside the repository. */
static void test_cites_only_itself(void **state)
{
    (void)state;
    static const char *const dirs[] = {"include", "src",      "cli",        "lua",
                                       "tests",   "bench",    "docs",       "cmake",
                                       "fuzz",    "examples", "completions"};
    found.count = 0;
    check_lan = false;
    for (size_t i = 0; i < sizeof dirs / sizeof dirs[0]; i++) {
        char path[1024];
        snprintf(path, sizeof path, "%s/%s", REPO, dirs[i]);
        if (access(path, F_OK) == 0)
            assert_int_equal(nftw(path, visit, 16, FTW_PHYS), 0);
    }
    check_file(REPO "/README.md");
    check_file(REPO "/Makefile");
    check_file(REPO "/CMakeLists.txt");
    if (found.count)
        fail_msg("%d citation(s) of files outside the repository, first: %s", found.count,
                 found.where);
}

/* What users copy names no private network. */
static void test_examples_name_no_private_network(void **state)
{
    (void)state;
    assert_int_equal(regcomp(&private_lan,
                             "(^|[^0-9.])(10\\.[0-9]{1,3}\\.[0-9]{1,3}\\.[0-9]{1,3}|"
                             "192\\.168\\.[0-9]{1,3}\\.[0-9]{1,3}|"
                             "172\\.(1[6-9]|2[0-9]|3[01])\\.[0-9]{1,3}\\.[0-9]{1,3})([^0-9]|$)",
                             REG_EXTENDED | REG_NEWLINE),
                     0);
    found.count = 0;
    check_lan = true;
    check_file(REPO "/README.md");
    check_file(REPO "/docs/runspace.1");
    assert_int_equal(nftw(REPO "/cli", visit, 16, FTW_PHYS), 0);
    assert_int_equal(nftw(REPO "/examples", visit, 16, FTW_PHYS), 0);
    check_lan = false;
    regfree(&private_lan);
    if (found.count)
        fail_msg("%d private address(es) in examples, first: %s", found.count, found.where);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_cites_only_itself),
    cmocka_unit_test(test_examples_name_no_private_network),
};

RS_TEST_MAIN(tests)
