/*
 * test_joblog.c -- the journal through the `runspace` program: kill -9 at random moments of
 * a long run, each followed by --resume, until every input has exactly one record with the
 * right output; SIGINT then --resume; --resume-failed; a torn last line; journals of other
 * runs, files that are not journals, a directory, a read-only journal, /dev/full, a disk
 * that fills up during the run; `runspace joblog`; usage errors.
 *
 * The kill test runs 200,000 items in every build (about 6 s plain, 25 s under ASan or
 * TSan); RS_TEST_KILL_ITEMS=N sets another number, RS_TEST_SEED=N replays a run's random
 * moments.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* ---- running the program -------------------------------------------------------------------- */

typedef struct how {
    const char *stdin_path;  /* NULL: /dev/null */
    const char *stdout_path; /* NULL: captured */
    bool unprivileged;       /* as root, run as nobody (so that file modes apply) */
    long max_file_bytes;     /* > 0: RLIMIT_FSIZE, SIGXFSZ ignored (writes past it: EFBIG) */
} how;

typedef struct proc {
    pid_t pid;
    char out_path[64], err_path[64];
    bool own_out;
} proc;

typedef struct result {
    int status; /* exit status, or 128 + signal */
    char *out, *err;
} result;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

static proc start(char *const argv[], const how *h)
{
    proc p = {0};
    strcpy(p.err_path, "/tmp/rs_joblog_err_XXXXXX");
    close(mkstemp(p.err_path));
    if (!h->stdout_path) {
        strcpy(p.out_path, "/tmp/rs_joblog_out_XXXXXX");
        close(mkstemp(p.out_path));
        p.own_out = true;
    } else {
        snprintf(p.out_path, sizeof p.out_path, "%s", h->stdout_path);
    }
    p.pid = fork();
    assert_true(p.pid >= 0);
    if (p.pid == 0) {
        int in = open(h->stdin_path ? h->stdin_path : "/dev/null", O_RDONLY);
        int out = open(p.out_path, O_WRONLY | O_TRUNC);
        int err = open(p.err_path, O_WRONLY | O_TRUNC);
        if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(126);
        if (h->max_file_bytes > 0) {
            signal(SIGXFSZ, SIG_IGN); /* ignored dispositions survive exec */
            struct rlimit lim = {(rlim_t)h->max_file_bytes, (rlim_t)h->max_file_bytes};
            setrlimit(RLIMIT_FSIZE, &lim);
        }
        if (h->unprivileged && geteuid() == 0 && (setgid(65534) != 0 || setuid(65534) != 0))
            _exit(126);
        execv(argv[0], argv);
        _exit(127);
    }
    return p;
}

/* Waits for p at most limit seconds (then kills it and fails); collects its output. */
static result finish(proc *p, double limit)
{
    double t0 = rs_test_now();
    int st;
    pid_t got;
    while ((got = waitpid(p->pid, &st, WNOHANG)) == 0) {
        if (rs_test_now() - t0 > limit) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            fail_msg("runspace did not finish within %.0f s", limit);
        }
        sleep_for(0.001);
    }
    assert_int_equal(got, p->pid);
    result r = {.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)};
    r.out = slurp(p->out_path);
    r.err = slurp(p->err_path);
    unlink(p->err_path);
    if (p->own_out)
        unlink(p->out_path);
    return r;
}

static result run(char *const argv[], const how *h)
{
    proc p = start(argv, h ? h : &(how){0});
    return finish(&p, 120);
}

static void done(result *r)
{
    free(r->out);
    free(r->err);
}

#define ARGV(...) ((char *const[]){RS_CLI, __VA_ARGS__, NULL})

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void temp_path(char *path)
{
    strcpy(path, "/tmp/rs_joblog_XXXXXX");
    close(mkstemp(path));
    unlink(path);
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* ---- checking a journal ---------------------------------------------------------------------- */

/* The script of the long runs: mixed durations (a 5 ms sleep every 500 inputs, 0.5 ms every
 * 20, a loop of up to 49 steps), some failures (every 97th input), and an output that
 * depends on the input. */
#define KILL_SCRIPT                                                                                \
    "local n = _ "                                                                                 \
    "if n % 500 == 0 then sleep(0.005) elseif n % 20 == 0 then sleep(0.0005) end "                 \
    "if n % 97 == 0 then error('fail ' .. n, 0) end "                                              \
    "local s = 0 for i = 1, n % 50 do s = s + i end "                                              \
    "return n * 3 + s"

static int64_t expected_output(int64_t n)
{
    int64_t k = n % 50;
    return n * 3 + k * (k + 1) / 2;
}

/* Checks that the journal at path has a header and then exactly one record line for each
 * index 0..n-1, with the status and output KILL_SCRIPT gives it (cancelled records allowed
 * before a later line of the same index when allow_cancelled). */
static void check_journal(const char *path, long n, bool allow_cancelled, unsigned seed)
{
    char *text = slurp(path);
    unsigned char *lines = calloc((size_t)n, 1);
    /* memchr with the length, not strchr: under ASan's strict string checks each strchr reads
     * the rest of the text, and the whole check turns quadratic. */
    char *end = text + strlen(text);
    char *p = memchr(text, '\n', (size_t)(end - text));
    assert_non_null(p);
    assert_memory_equal(text, "{\"runspace_journal\":1,", 21);
    long cancelled_lines = 0;
    for (p++; *p;) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        if (!eol)
            fail_msg("seed %u: the journal ends in a torn line after a clean run", seed);
        rs_value *rec = NULL;
        rs_errinfo err;
        if (rs_json_decode(p, (size_t)(eol - p), &rec, &err))
            fail_msg("seed %u: a line is not JSON: %s", seed, err.message);
        int64_t i = rs_value_get_int(rs_map_get(rec, "index"));
        if (i < 0 || i >= n)
            fail_msg("seed %u: a record for index %lld", seed, (long long)i);
        assert_int_equal(rs_value_get_int(rs_map_get(rec, "input")), i);
        const char *st = rs_value_get_string(rs_map_get(rec, "status"), NULL);
        if (allow_cancelled && strcmp(st, "cancelled") == 0) {
            cancelled_lines++;
        } else {
            if (lines[i]++)
                fail_msg("seed %u: index %lld has more than one record", seed, (long long)i);
            if (i % 97 == 0) {
                char want[32];
                snprintf(want, sizeof want, "fail %lld", (long long)i);
                if (strcmp(st, "error") != 0 ||
                    strcmp(rs_value_get_string(rs_map_get(rec, "error"), NULL), want) != 0)
                    fail_msg("seed %u: index %lld: %s, not error '%s'", seed, (long long)i, st,
                             want);
            } else {
                const rs_value *out = rs_map_get(rec, "output");
                if (strcmp(st, "ok") != 0 || rs_array_len(out) != 1 ||
                    rs_value_get_int(rs_array_get(out, 0)) != expected_output(i))
                    fail_msg("seed %u: index %lld: %s with the wrong output", seed, (long long)i,
                             st);
            }
        }
        rs_value_destroy(rec);
        p = eol + 1;
    }
    for (long i = 0; i < n; i++) {
        if (lines[i] != 1)
            fail_msg("seed %u: index %ld has no record", seed, i);
    }
    free(lines);
    free(text);
    (void)cancelled_lines;
}

static unsigned seed_base(void)
{
    const char *env = getenv("RS_TEST_SEED");
    unsigned seed =
        env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();
    print_message("seed %u (replay with RS_TEST_SEED=%u)\n", seed, seed);
    return seed;
}

static unsigned rnd(unsigned *s)
{
    unsigned x = *s ? *s : 2463534242u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* ---- crashes --------------------------------------------------------------------------------- */

static long kill_items(void)
{
    const char *env = getenv("RS_TEST_KILL_ITEMS");
    return env ? strtol(env, NULL, 10) : 200000;
}

static void test_kill9_at_random_moments(void **state)
{
    (void)state;
    unsigned seed = seed_base(), rng = seed;
    long n = kill_items();
    char path[64], range[32];
    temp_path(path);
    snprintf(range, sizeof range, "0..%ld", n - 1);
    char *const argv[] = {RS_CLI, "foreach", "--range",  range,   "--joblog",  path, "--resume",
                          "-j",   "2",       "--format", "jsonl", KILL_SCRIPT, NULL};
    /* A journal line is about 130 bytes: a kill waits for a random part of a twentieth of
     * the run to reach the file, or (one time in five) comes at a random moment of the
     * first 30 ms, while the journal is read, truncated or created. */
    off_t run_bytes = (off_t)n * 130;
    int killed = 0, torn = 0, early = 0;
    double t0 = rs_test_now();
    for (int round = 0; round < 20; round++) {
        off_t from = file_size(path);
        bool at_start = rnd(&rng) % 5 == 0;
        off_t target = from + (off_t)(rnd(&rng) % (unsigned)(2 * run_bytes / 20 + 1));
        double delay = (double)(rnd(&rng) % 30) * 1e-3;
        proc p = start(argv, &(how){0});
        double started = rs_test_now();
        bool ended = false;
        for (;;) {
            /* Looks without reaping it: finish() does that. */
            siginfo_t info = {0};
            if (waitid(P_PID, (id_t)p.pid, &info, WEXITED | WNOHANG | WNOWAIT) == 0 &&
                info.si_pid == p.pid) {
                ended = true; /* it finished before its moment came */
                break;
            }
            if (at_start ? rs_test_now() - started >= delay : file_size(path) >= target)
                break;
            if (rs_test_now() - started > 120)
                fail_msg("seed %u round %d: the run neither wrote nor ended", seed, round);
            sleep_for(0.0005);
        }
        if (!ended) {
            kill(p.pid, SIGKILL);
            killed++;
            early += at_start;
        }
        result r = finish(&p, 60);
        if (strstr(r.err, "cut short"))
            torn++;
        if (ended && r.status > 1)
            fail_msg("seed %u round %d: exit status %d: %s", seed, round, r.status, r.err);
        done(&r);
    }
    /* Then one run to the end: every index has exactly one record, with its output. */
    result r = run(argv, NULL);
    if (r.status != 0 && r.status != 1)
        fail_msg("seed %u: the last resume exited %d: %s", seed, r.status, r.err);
    done(&r);
    check_journal(path, n, false, seed);
    r = run(ARGV("joblog", "--summary", "--format", "raw", path), NULL);
    assert_int_equal(r.status, 1); /* the failing inputs */
    assert_contains(r.err, "Missing:      0 ");
    done(&r);
    print_message("%ld items, %d kills (%d early), %d torn lines recovered, %.1f s\n", n, killed,
                  early, torn, rs_test_now() - t0);
    assert_true(killed >= 10); /* the moments fell inside the runs */
    unlink(path);
}

static void test_sigint_then_resume(void **state)
{
    (void)state;
    char path[64];
    temp_path(path);
    char *const argv[] = {RS_CLI, "foreach", "--range",  "0..39999", "--joblog",  path,
                          "-j",   "2",       "--format", "jsonl",    KILL_SCRIPT, NULL};
    proc p = start(argv, &(how){0});
    double t0 = rs_test_now();
    while (file_size(path) < 40000 * 130 / 8 && rs_test_now() - t0 < 60)
        sleep_for(0.001);
    kill(p.pid, SIGINT);
    result r = finish(&p, 60);
    assert_int_equal(r.status, 130);
    size_t printed = count_lines(r.out);
    done(&r);
    /* The journal has the cancelled records too; a resume runs them (and the unread inputs)
     * again, and its stdout carries only what it ran. */
    char *text = slurp(path);
    bool had_cancelled = strstr(text, "\"status\":\"cancelled\"") != NULL;
    free(text);
    char *const again[] = {RS_CLI,     "foreach",  "--range",   "0..39999", "--joblog",
                           path,       "--resume", "--summary", "-j",       "2",
                           "--format", "jsonl",    KILL_SCRIPT, NULL};
    r = run(again, NULL);
    assert_int_equal(r.status, 1); /* some that it ran failed */
    size_t rerun = count_lines(r.out);
    assert_true(rerun > 0 && rerun < 40000);
    assert_contains(r.err, "Skipped:");
    assert_null(strstr(r.out, "cancelled"));
    done(&r);
    print_message("%zu records before SIGINT (cancelled ones in the journal: %s), %zu run on "
                  "resume\n",
                  printed, had_cancelled ? "yes" : "no", rerun);
    check_journal(path, 40000, true, 0);
    r = run(ARGV("joblog", "--summary", path), NULL);
    assert_int_equal(r.status, 1);
    assert_contains(r.err, "Cancelled:    0\n");
    assert_contains(r.err, "Missing:      0 ");
    assert_int_equal(count_lines(r.out), 40000);
    done(&r);
    unlink(path);
}

/* ---- resume-failed and the journal command ----------------------------------------------------
 */

static void test_resume_failed_and_joblog(void **state)
{
    (void)state;
    char path[64], flag[80];
    temp_path(path);
    snprintf(flag, sizeof flag, "%s.flag", path);
    /* Inputs fail while the flag file is missing (a flaky service, say). */
    char script[256];
    snprintf(script, sizeof script,
             "if _ %% 3 == 0 and not fs.stat('%s') then error('down', 0) end return _ * 2", flag);
    result r = run(ARGV("foreach", "--range", "1..30", "--joblog", path, script), NULL);
    assert_int_equal(r.status, 1);
    done(&r);
    FILE *f = fopen(flag, "w");
    fclose(f);
    r = run(ARGV("foreach", "--range", "1..30", "--joblog", path, "--resume", "--summary", script),
            NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, ""); /* --resume: failed ones are done too */
    assert_contains(r.err, "Total items:  0");
    assert_contains(r.err, "Skipped:      30");
    done(&r);
    r = run(ARGV("foreach", "--range", "1..30", "--joblog", path, "--resume-failed", "--ordered",
                 "--summary", script),
            NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "6\n12\n18\n24\n30\n36\n42\n48\n54\n60\n");
    assert_contains(r.err, "Skipped:      20");
    done(&r);
    /* The latest line for an index is its record: all ok now, one per index. */
    r = run(ARGV("joblog", "--summary", "--format", "csv", path), NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 31);
    assert_memory_equal(r.out, "index,input,status,output,error,duration_ms,attempts,runspace\r\n",
                        63);
    size_t oks = 0;
    for (const char *q = r.out; (q = strstr(q, ",ok,")); q++)
        oks++;
    assert_int_equal(oks, 30);
    assert_contains(r.err, "Records:      30 (one per index, from 40 lines)");
    assert_contains(r.err, "Successful:   30");
    done(&r);
    r = run(ARGV("joblog", "--format", "raw", path), NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 30);
    done(&r);
    r = run(ARGV("joblog", "--format", "table", path), NULL);
    assert_contains(r.out, "   INDEX  STATUS");
    done(&r);
    r = run(ARGV("joblog", path), NULL); /* jsonl, as foreach writes it */
    assert_memory_equal(r.out, "{\"index\":", 9);
    assert_contains(r.out, ",\"status\":\"ok\",\"output\":[");
    done(&r);
    unlink(flag);
    unlink(path);
}

static void test_stdin_is_read_again(void **state)
{
    (void)state;
    char path[64], input[64];
    temp_path(path);
    strcpy(input, "/tmp/rs_joblog_in_XXXXXX");
    int fd = mkstemp(input);
    for (int i = 0; i < 100; i++)
        dprintf(fd, "line %d\n", i);
    close(fd);
    char *const argv[] = {RS_CLI, "foreach",  "--joblog",
                          path,   "--resume", "if _ == 'line 50' then error('x') end return _",
                          NULL};
    result r = run(argv, &(how){.stdin_path = input});
    assert_int_equal(r.status, 1);
    assert_int_equal(count_lines(r.out), 99);
    done(&r);
    r = run(argv, &(how){.stdin_path = input});
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "");
    done(&r);
    /* The same lines from a file are another input source. */
    char *const other[] = {
        RS_CLI,    "foreach", "--joblog", path,
        "--input", input,     "--resume", "if _ == 'line 50' then error('x') end return _",
        NULL};
    r = run(other, NULL);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "the input source differs (\"stdin\" in the journal, \"file:");
    done(&r);
    unlink(input);
    unlink(path);
}

/* ---- journals that cannot be used ---------------------------------------------------------------
 */

static void test_torn_last_line(void **state)
{
    (void)state;
    char path[64];
    temp_path(path);
    result r = run(ARGV("foreach", "--range", "1..5", "--joblog", path, "return _"), NULL);
    assert_int_equal(r.status, 0);
    done(&r);
    FILE *f = fopen(path, "a");
    fputs("{\"index\":5,\"status\":\"ok\",\"sta", f);
    fclose(f);
    r = run(ARGV("joblog", path), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.err, "was cut short");
    done(&r);
    r = run(ARGV("foreach", "--range", "1..5", "--joblog", path, "--resume", "return _"), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.err, "ended in a line cut short (29 bytes, line 7), left by a crash: it "
                           "was dropped, and its item runs again");
    done(&r);
    char *text = slurp(path);
    assert_int_equal(count_lines(text), 6);
    assert_int_equal(text[strlen(text) - 1], '\n');
    free(text);
    unlink(path);
}

static void test_journal_of_another_script(void **state)
{
    (void)state;
    char path[64];
    temp_path(path);
    result r = run(ARGV("foreach", "--range", "1..5", "--joblog", path, "return _"), NULL);
    assert_int_equal(r.status, 0);
    done(&r);
    char *before = slurp(path);
    const char *modes[] = {"--resume", "--resume-failed"};
    for (int i = 0; i < 2; i++) {
        r = run(
            ARGV("foreach", "--range", "1..5", "--joblog", path, (char *)modes[i], "return _ + 1"),
            NULL);
        assert_int_equal(r.status, 2);
        char want[256];
        snprintf(want, sizeof want,
                 "runspace: the journal '%s' belongs to another run: the script differs "
                 "(--force resumes it anyway)\n",
                 path);
        assert_string_equal(r.err, want);
        assert_string_equal(r.out, "");
        done(&r);
    }
    /* Other options that change results, and other variables, are another run too. */
    r = run(ARGV("foreach", "--range", "1..5", "--joblog", path, "--resume", "--timeout", "5",
                 "return _"),
            NULL);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "the timeout differs (0.0 in the journal, 5.0 now)");
    done(&r);
    r = run(ARGV("foreach", "--range", "1..5", "--joblog", path, "--resume", "--var", "x=1",
                 "return _"),
            NULL);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "the session state");
    done(&r);
    /* A new journal over one with records. */
    r = run(ARGV("foreach", "--range", "1..5", "--joblog", path, "return _"), NULL);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "already holds records (--resume continues it, --force starts it "
                           "anew)");
    done(&r);
    char *after = slurp(path);
    assert_string_equal(after, before);
    free(after);
    /* --force: resumed anyway (nothing left to run), or started anew. */
    r = run(
        ARGV("foreach", "--range", "1..5", "--joblog", path, "--resume", "--force", "return _ + 1"),
        NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "");
    assert_contains(r.err, "belongs to another run (the script differs); its records count as "
                           "this run's, as forced");
    done(&r);
    r = run(ARGV("foreach", "--range", "1..5", "--joblog", path, "--force", "--ordered",
                 "return _ + 1"),
            NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "2\n3\n4\n5\n6\n");
    done(&r);
    free(before);
    unlink(path);
}

static void test_files_that_are_not_journals(void **state)
{
    (void)state;
    char path[64];
    temp_path(path);
    /* Random bytes: refused, forced or not, and left as they were. */
    unsigned rng = 12345;
    char junk[4096];
    for (size_t i = 0; i < sizeof junk; i++)
        junk[i] = (char)rnd(&rng);
    FILE *f = fopen(path, "wb");
    fwrite(junk, 1, sizeof junk, f);
    fclose(f);
    const char *modes[] = {"--resume", "--resume-failed", "--force", "--ordered"};
    for (int i = 0; i < 4; i++) {
        result r =
            run(ARGV("foreach", "--range", "1..3", "--joblog", path, (char *)modes[i], "return _"),
                NULL);
        assert_int_equal(r.status, 2);
        assert_contains(r.err, "is not a runspace journal");
        assert_contains(r.err, "remove it or choose another file");
        assert_string_equal(r.out, "");
        done(&r);
        char *now = slurp(path);
        assert_memory_equal(now, junk, sizeof junk);
        free(now);
    }
    result r = run(ARGV("joblog", path), NULL);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "is not a runspace journal");
    done(&r);
    /* An empty file: a journal with no record yet, in every mode. */
    f = fopen(path, "wb");
    fclose(f);
    r = run(ARGV("foreach", "--range", "1..3", "--joblog", path, "--resume", "return _"), NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 3);
    assert_contains(r.err, "is empty: every input runs");
    done(&r);
    /* A directory, a device. */
    r = run(ARGV("foreach", "--range", "1..3", "--joblog", "/tmp", "return _"), NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "runspace: the journal '/tmp' is not a regular file (a journal "
                               "must be one, to be read back and synced)\n");
    done(&r);
    r = run(ARGV("foreach", "--range", "1..3", "--joblog", "/dev/full", "return _"), NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "runspace: the journal '/dev/full' is not a regular file (a "
                               "journal must be one, to be read back and synced)\n");
    assert_string_equal(r.out, "");
    done(&r);
    r = run(ARGV("joblog", "/tmp"), NULL);
    assert_int_equal(r.status, 2);
    done(&r);
    r = run(ARGV("joblog", path), NULL);
    assert_int_equal(r.status, 0);
    done(&r);
    unlink(path);
}

static void test_read_only_journal(void **state)
{
    (void)state;
    char path[64];
    temp_path(path);
    result r = run(ARGV("foreach", "--range", "1..3", "--joblog", path, "return _"), NULL);
    assert_int_equal(r.status, 0);
    done(&r);
    assert_int_equal(chmod(path, 0444), 0);
    char *before = slurp(path);
    const char *modes[] = {"--resume", "--resume-failed", "--force"};
    for (int i = 0; i < 3; i++) {
        r = run(ARGV("foreach", "--range", "1..5", "--joblog", path, (char *)modes[i], "return _"),
                &(how){.unprivileged = true});
        assert_int_equal(r.status, 2);
        char want[160];
        snprintf(want, sizeof want, "runspace: cannot open the journal '%s': Permission denied\n",
                 path);
        assert_string_equal(r.err, want);
        assert_string_equal(r.out, "");
        done(&r);
    }
    char *after = slurp(path);
    assert_string_equal(after, before);
    free(before);
    free(after);
    /* Reading it is fine. */
    r = run(ARGV("joblog", path), &(how){.unprivileged = true});
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 3);
    done(&r);
    unlink(path);
}

static void test_disk_fills_up_during_the_run(void **state)
{
    (void)state;
    /* The journal may not grow past 256 KiB (a full disk): the run stops, says how many
     * records the journal lacks, and every record is still delivered (counted by --summary;
     * stdout is /dev/null, which the file size limit does not reach); a resume with room
     * completes the journal. */
    char path[64];
    temp_path(path);
    char *const argv[] = {RS_CLI,     "foreach",   "--range",   "0..19999", "--joblog",
                          path,       "-j",        "2",         "--format", "jsonl",
                          "--resume", "--summary", KILL_SCRIPT, NULL};
    result r = run(argv, &(how){.max_file_bytes = 256 << 10, .stdout_path = "/dev/null"});
    assert_int_equal(r.status, 1);
    assert_contains(r.err, "runspace: cannot write the journal '");
    assert_contains(r.err, "': File too large; ");
    assert_contains(r.err, "of this run are not in it (their items run again on --resume), but "
                           "every record was written here");
    unsigned long long lacking = 0;
    const char *semi = strstr(r.err, "File too large; ");
    assert_non_null(semi);
    lacking = strtoull(semi + 16, NULL, 10);
    char *text = slurp(path);
    size_t journaled = count_lines(text) - 1;
    free(text);
    /* Every record was delivered; the journal has all but those it says it lacks. */
    const char *total = strstr(r.err, "Total items:  ");
    assert_non_null(total);
    size_t printed = strtoul(total + 14, NULL, 10);
    assert_int_equal(printed, journaled + lacking);
    done(&r);
    r = run(argv, NULL);
    assert_true(r.status == 0 || r.status == 1);
    done(&r);
    check_journal(path, 20000, true, 0);
    unlink(path);
}

/* ---- usage
 * ---------------------------------------------------------------------------------------- */

static void test_usage_errors(void **state)
{
    (void)state;
    struct {
        char *const *argv;
        const char *message;
    } cases[] = {
        {ARGV("foreach", "--resume", "return _"), "--resume needs --joblog FILE"},
        {ARGV("foreach", "--resume-failed", "return _"), "--resume-failed needs --joblog FILE"},
        {ARGV("foreach", "--force", "return _"), "--force needs --joblog FILE"},
        {ARGV("foreach", "--joblog", "/tmp/x", "--resume", "--resume-failed", "return _"),
         "--resume and --resume-failed cannot be used together"},
        {ARGV("foreach", "--joblog", "", "return _"), "--joblog needs a file name"},
        {ARGV("joblog"), "no journal given"},
        {ARGV("joblog", "a", "b"), "unexpected argument 'b'"},
        {ARGV("joblog", "--format", "xml", "a"), "--format must be raw, jsonl, csv or table"},
        {ARGV("joblog", "--frob", "a"), "unknown option '--frob'"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        result r = run(cases[i].argv, NULL);
        assert_int_equal(r.status, 2);
        assert_contains(r.err, cases[i].message);
        done(&r);
    }
    result r = run(ARGV("joblog", "--help"), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "Usage: runspace joblog");
    done(&r);
    r = run(ARGV("foreach", "--help"), NULL);
    assert_contains(r.out, "--resume-failed");
    done(&r);
}

static void test_journal_that_is_another_file_of_the_run(void **state)
{
    (void)state;
    /* The journal as standard output: records and journal would overwrite each other. */
    char path[64], input[80];
    temp_path(path);
    FILE *f = fopen(path, "wb");
    fclose(f);
    result r = run(ARGV("foreach", "--range", "1..3", "--joblog", path, "return _"),
                   &(how){.stdout_path = path});
    assert_int_equal(r.status, 2);
    char want[256];
    snprintf(want, sizeof want,
             "runspace: the journal '%s' is also the standard output; choose another file for "
             "the journal\n",
             path);
    assert_string_equal(r.err, want);
    done(&r);
    assert_int_equal(file_size(path), 0);
    /* The journal as the input file, or as standard input when that is read. */
    r = run(ARGV("foreach", "--range", "1..3", "--joblog", path, "return _"), NULL);
    assert_int_equal(r.status, 0);
    done(&r);
    char *before = slurp(path);
    r = run(ARGV("foreach", "--input", path, "--joblog", path, "--resume", "--force", "return _"),
            NULL);
    assert_int_equal(r.status, 2);
    snprintf(want, sizeof want,
             "runspace: the journal '%s' is also the input file '%s'; choose another file for "
             "the journal\n",
             path, path);
    assert_string_equal(r.err, want);
    done(&r);
    r = run(ARGV("foreach", "--joblog", path, "--resume", "--force", "return _"),
            &(how){.stdin_path = path});
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "is also the standard input");
    done(&r);
    char *after = slurp(path);
    assert_string_equal(after, before);
    free(after);
    free(before);
    /* Another file as input is fine. */
    snprintf(input, sizeof input, "%s.in", path);
    f = fopen(input, "wb");
    fputs("1\n2\n", f);
    fclose(f);
    unlink(path);
    r = run(ARGV("foreach", "--input", input, "--joblog", path, "return _"), NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 2);
    done(&r);
    unlink(input);
    unlink(path);
}

static void test_joblog_of_odd_records(void **state)
{
    (void)state;
    /* Numbers at the edges of what a record may carry, and a trailing blank line: every
     * record on its own line in every format, the numbers shown as numbers. */
    char path[64];
    temp_path(path);
    result r = run(ARGV("foreach", "--range", "1..2", "--joblog", path, "return _"), NULL);
    assert_int_equal(r.status, 0);
    done(&r);
    FILE *f = fopen(path, "a");
    fputs("{\"index\":2,\"status\":\"ok\",\"duration_ms\":1e308,\"attempts\":1e308,"
          "\"runspace\":1e308}\n"
          "{\"index\":3,\"status\":\"error\",\"error\":\"e\",\"duration_ms\":-1,\"attempts\":-5,"
          "\"runspace\":18446744073709551615e3}\n"
          "\n",
          f);
    fclose(f);
    const char *formats[] = {"jsonl", "raw", "csv", "table"};
    for (int i = 0; i < 4; i++) {
        r = run(ARGV("joblog", "--format", (char *)formats[i], path), NULL);
        assert_int_equal(r.status, 1);
        size_t want = i == 1 ? 2 : i == 0 ? 4 : 5; /* raw: ok outputs; csv, table: a heading */
        if (count_lines(r.out) != want)
            fail_msg("--format %s: %zu lines, not %zu:\n%s", formats[i], count_lines(r.out), want,
                     r.out);
        if (i == 0) {
            assert_contains(r.out, "\"attempts\":0,\"runspace\":0}\n");
            assert_null(strstr(r.out, "}{"));
        }
        assert_null(strstr(r.err, "not a record"));
        done(&r);
    }
    unlink(path);
}

static void test_dangling_link_as_joblog(void **state)
{
    (void)state;
    char path[64], target[80];
    temp_path(path);
    snprintf(target, sizeof target, "%s.target", path);
    assert_int_equal(symlink(target, path), 0);
    result r =
        run(ARGV("foreach", "--range", "1..3", "--joblog", path, "--resume", "return _"), NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 3);
    done(&r);
    char *text = slurp(target);
    assert_int_equal(count_lines(text), 4);
    free(text);
    unlink(target);
    unlink(path);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_kill9_at_random_moments),
    cmocka_unit_test(test_sigint_then_resume),
    cmocka_unit_test(test_resume_failed_and_joblog),
    cmocka_unit_test(test_stdin_is_read_again),
    cmocka_unit_test(test_torn_last_line),
    cmocka_unit_test(test_journal_of_another_script),
    cmocka_unit_test(test_files_that_are_not_journals),
    cmocka_unit_test(test_read_only_journal),
    cmocka_unit_test(test_disk_fills_up_during_the_run),
    cmocka_unit_test(test_usage_errors),
    cmocka_unit_test(test_journal_that_is_another_file_of_the_run),
    cmocka_unit_test(test_joblog_of_odd_records),
    cmocka_unit_test(test_dangling_link_as_joblog),
};

RS_TEST_MAIN(tests)
