/*
 * test_cli.c -- the `runspace` program, run for real: foreach, run, demo, help; every bad
 * input of the CLI contract (exit codes and messages), timeouts, SIGINT, a closed pipe, and one
 * record per input with 100,000 inputs and every option that could lose one.
 */
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

typedef struct proc_result {
    int status; /* exit status, or 128 + signal */
    char *out;
    size_t out_len;
    char *err;
    double seconds;
    long max_rss_kb; /* the program's peak resident memory (getrusage of the child) */
} proc_result;

static void append(char **buf, size_t *len, const char *data, size_t n)
{
    *buf = realloc(*buf, *len + n + 1);
    memcpy(*buf + *len, data, n);
    *len += n;
    (*buf)[*len] = '\0';
}

/* How to start the program: stdin is a pipe fed with input (or, without input, closed at
 * once: an empty input), unless stdin_path opens a file there or close_stdin leaves fd 0
 * closed; stdout is a pipe read into the result unless stdout_path opens a file there or
 * close_stdout leaves fd 1 closed. */
typedef struct how {
    const char *input;
    size_t input_len;
    double limit;           /* seconds; then the program is killed and the test fails */
    size_t interrupt_after; /* > 0: SIGINT once that much stdout has arrived */
    double interrupt_at;    /* > 0: SIGINT after that many seconds */
    bool close_stdin, close_stdout;
    bool nonblocking_stdout; /* the stdout pipe is O_NONBLOCK (as another process may leave it) */
    bool slow_reader;        /* a pause after each read of stdout, so that its pipe fills up */
    bool stuck_reader;       /* stdout is a pipe that is never read (`| sleep 60`) */
    bool stuck_stderr;       /* stderr is a pipe that is never read */
    bool count_only;         /* stdout is read but only counted (out_len), not kept */
    const char *stdin_path, *stdout_path, *stderr_path;
} how;

/* Runs argv as `h` says; waits at most h->limit seconds (then kills it and fails). */
static proc_result run_how(char *const argv[], const how *h)
{
    /* A program that exits before reading its input (a usage error) must not kill the test. */
    signal(SIGPIPE, SIG_IGN);
    int in[2], out[2], err[2];
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    assert_int_equal(pipe(err), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    for (int i = 0; i < 2; i++) {
        posix_spawn_file_actions_addclose(&fa, in[i]);
        posix_spawn_file_actions_addclose(&fa, out[i]);
        posix_spawn_file_actions_addclose(&fa, err[i]);
    }
    if (h->close_stdin)
        posix_spawn_file_actions_addclose(&fa, 0);
    else if (h->stdin_path)
        posix_spawn_file_actions_addopen(&fa, 0, h->stdin_path, O_RDONLY, 0);
    if (h->close_stdout)
        posix_spawn_file_actions_addclose(&fa, 1);
    else if (h->stdout_path)
        posix_spawn_file_actions_addopen(&fa, 1, h->stdout_path, O_WRONLY, 0);
    if (h->stderr_path)
        posix_spawn_file_actions_addopen(&fa, 2, h->stderr_path, O_WRONLY | O_NOCTTY, 0);
    if (h->nonblocking_stdout)
        fcntl(out[1], F_SETFL, O_NONBLOCK);
    pid_t pid;
    double t0 = rs_test_now();
    assert_int_equal(posix_spawn(&pid, argv[0], &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    close(err[1]);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    proc_result r = {0};
    size_t err_len = 0, written = 0;
    int fds[3] = {in[1], out[0], err[0]};
    if (!h->input || h->input_len == 0) {
        close(fds[0]);
        fds[0] = -1;
    }
    bool signalled = false;
    int stuck = -1;
    if (h->stuck_reader) {
        stuck = fds[1];
        fds[1] = -1;
    }
    int stuck_err = -1;
    if (h->stuck_stderr) {
        stuck_err = fds[2];
        fds[2] = -1;
    }
    while (fds[1] >= 0 || fds[2] >= 0) {
        double left = h->limit - (rs_test_now() - t0);
        if (left <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            fail_msg("%s %s did not finish within %.1f s", argv[1], argv[2] ? argv[2] : "",
                     h->limit);
        }
        struct pollfd p[3];
        for (int i = 0; i < 3; i++)
            p[i] = (struct pollfd){.fd = fds[i], .events = i == 0 ? POLLOUT : POLLIN};
        int wait_ms = (int)(left * 1000) + 1;
        if (h->interrupt_at > 0 && !signalled)
            wait_ms = 10;
        if (poll(p, 3, wait_ms) < 0 && errno != EINTR)
            fail_msg("poll: %s", strerror(errno));
        if (fds[0] >= 0 && p[0].revents) {
            ssize_t w = write(fds[0], h->input + written, h->input_len - written);
            if (w > 0)
                written += (size_t)w;
            if (w < 0 || written == h->input_len) {
                close(fds[0]);
                fds[0] = -1;
            }
        }
        char buf[65536];
        for (int i = 1; i < 3; i++) {
            if (fds[i] >= 0 && p[i].revents) {
                ssize_t n = read(fds[i], buf, sizeof buf);
                if (n <= 0) {
                    close(fds[i]);
                    fds[i] = -1;
                } else if (i == 1 && h->count_only) {
                    r.out_len += (size_t)n;
                } else if (i == 1) {
                    append(&r.out, &r.out_len, buf, (size_t)n);
                    if (h->slow_reader)
                        sleep_for(0.002);
                } else {
                    append(&r.err, &err_len, buf, (size_t)n);
                }
            }
        }
        if (!signalled && ((h->interrupt_after && r.out_len >= h->interrupt_after) ||
                           (h->interrupt_at > 0 && rs_test_now() - t0 >= h->interrupt_at))) {
            kill(pid, SIGINT);
            signalled = true;
        }
    }
    if (fds[0] >= 0)
        close(fds[0]);
    int st;
    struct rusage ru;
    for (;;) {
        /* stderr closed but the program still runs (a stuck stdout): wait, within the limit. */
        pid_t got = wait4(pid, &st, WNOHANG, &ru);
        if (got == pid)
            break;
        if (rs_test_now() - t0 > h->limit) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            fail_msg("%s %s did not finish within %.1f s", argv[1], argv[2] ? argv[2] : "",
                     h->limit);
        }
        sleep_for(0.01);
    }
    if (stuck >= 0)
        close(stuck);
    if (stuck_err >= 0)
        close(stuck_err);
    r.max_rss_kb = ru.ru_maxrss;
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    r.seconds = rs_test_now() - t0;
    if (!r.out)
        r.out = strdup("");
    if (!r.err)
        r.err = strdup("");
    return r;
}

/* Runs argv with input on stdin; waits at most `limit` seconds (then kills it and fails). With
 * interrupt_after > 0, sends SIGINT once that much stdout has arrived. */
static proc_result run_program(char *const argv[], const char *input, size_t input_len,
                               double limit, size_t interrupt_after)
{
    how h = {
        .input = input, .input_len = input_len, .limit = limit, .interrupt_after = interrupt_after};
    return run_how(argv, &h);
}

#define ARGV(...) ((char *const[]){RS_CLI, __VA_ARGS__, NULL})

static proc_result cli(char *const argv[], const char *input)
{
    return run_program(argv, input, input ? strlen(input) : 0, 60, 0);
}

static void done(proc_result *r)
{
    free(r->out);
    free(r->err);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

static void test_help_and_version(void **state)
{
    (void)state;
    proc_result r = cli(ARGV("--help"), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "foreach");
    done(&r);
    r = cli(ARGV("--version"), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "runspace 0.");
    done(&r);
    r = cli(ARGV("foreach", "--help"), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "--fail-fast");
    done(&r);
    r = cli(ARGV("nonsense"), NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "runspace: unknown command 'nonsense'\n"
                               "Try 'runspace --help' for more information.\n");
    done(&r);
}

static void test_foreach_raw_lines(void **state)
{
    (void)state;
    proc_result r = cli(ARGV("foreach", "--ordered", "return _ * _"), "1\n2\n3\n");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "1\n4\n9\n");
    assert_string_equal(r.err, "");
    done(&r);
    /* Strings as they are, other values as JSON; several outputs per item. */
    r = cli(ARGV("foreach", "--ordered", "return _, #_, {_}"), "a b\nc\n");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "a b\n3\n[\"a b\"]\nc\n1\n[\"c\"]\n");
    done(&r);
}

static void test_foreach_range_and_jsonl(void **state)
{
    (void)state;
    proc_result r = cli(ARGV("foreach", "--range", "1..5", "--ordered", "--format", "jsonl",
                             "if _ == 3 then error('three') end return _ * 10"),
                        NULL);
    assert_int_equal(r.status, 1);
    assert_int_equal(count_lines(r.out), 5);
    assert_contains(r.out, "{\"index\":0,\"input\":1,\"status\":\"ok\",\"output\":[10],"
                           "\"error\":null,\"duration_ms\":");
    assert_contains(r.out, "{\"index\":2,\"input\":3,\"status\":\"error\",\"output\":[],"
                           "\"error\":\"script:1: three\",");
    done(&r);
}

static void test_foreach_json_input(void **state)
{
    (void)state;
    proc_result r =
        cli(ARGV("foreach", "--json", "--ordered", "--format", "jsonl", "return _.n * 2"),
            "{\"n\": 1}\n{\"n\": 2,,}\n{\"n\": 3}\n");
    assert_int_equal(r.status, 1);
    assert_int_equal(count_lines(r.out), 3);
    assert_contains(r.out, "\"output\":[2]");
    assert_contains(r.out, "\"output\":[6]");
    assert_contains(r.out, "{\"index\":1,\"input\":\"{\\\"n\\\": 2,,}\",\"status\":\"error\"");
    assert_contains(r.out, "invalid JSON on line 2, column 9");
    done(&r);
}

static void test_foreach_csv_and_table(void **state)
{
    (void)state;
    proc_result r =
        cli(ARGV("foreach", "--range", "1..2", "--ordered", "--format", "csv", "return 'a,b', _"),
            NULL);
    assert_int_equal(r.status, 0);
    /* RFC 4180: CRLF line ends, the attempts of each record. */
    assert_contains(r.out, "index,input,status,output,error,duration_ms,attempts,runspace\r\n");
    assert_contains(r.out, "0,1,ok,\"[\"\"a,b\"\",1]\",,");
    assert_contains(r.out, "\r\n1,2,ok,\"[\"\"a,b\"\",2]\",,");
    done(&r);
    r = cli(ARGV("foreach", "--range", "1..2", "--ordered", "--format", "table", "return _"), NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "INDEX  STATUS       TIME(ms)  RUNSPACE  INPUT ");
    assert_int_equal(count_lines(r.out), 3);
    /* The input has its column, between the runspace and the output. */
    assert_contains(r.out, "  2                     [2]\n");
    done(&r);
}

static void test_foreach_params_vars_modules_file(void **state)
{
    (void)state;
    char path[] = "/tmp/rs_cli_script_XXXXXX";
    int fd = mkstemp(path);
    const char *src = "return Greeting .. ', ' .. _ .. Suffix .. greet.hello('x')";
    assert_int_equal(write(fd, src, strlen(src)), (ssize_t)strlen(src));
    close(fd);
    proc_result r = cli(ARGV("foreach", "-f", path, "--var", "Greeting=\"hi\"", "--param",
                             "Suffix=!", "--module", RS_TEST_FIXTURES "/greet.lua"),
                        "bob\n");
    unlink(path);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "hi, bob!hello, x\n");
    done(&r);
}

static void test_foreach_usage_errors(void **state)
{
    (void)state;
    struct {
        char *const *argv;
        const char *reason;
    } cases[] = {
        {ARGV("foreach", "--frob", "return 1"), "runspace: unknown option '--frob'\n"},
        {ARGV("foreach", "-j", "0", "return 1"),
         "runspace: -j/--throttle must be a whole number from 1 to 1024, not '0'\n"},
        {ARGV("foreach", "--timeout", "-1", "return 1"),
         "runspace: --timeout must be a number of seconds above 0 and at most 1000000000, not "
         "'-1'\n"},
        {ARGV("foreach", "--range", "5..", "return 1"),
         "runspace: invalid range '5..': expected A..B with integers A <= B\n"},
        {ARGV("foreach", "--format", "xml", "return 1"),
         "runspace: --format must be raw, jsonl, csv or table, not 'xml'\n"},
        {ARGV("foreach"), "runspace: no script given (a Lua script, -f FILE or --exec COMMAND)\n"},
        {ARGV("foreach", "--timeout"), "runspace: option '--timeout' needs a value\n"},
        /* Unknown options by their own name, also short ones in a cluster. */
        {ARGV("foreach", "-Z", "return 1"), "runspace: unknown option '-Z'\n"},
        {ARGV("foreach", "-0Z", "return 1"), "runspace: unknown option '-Z'\n"},
        {ARGV("foreach", "--frob=3", "return 1"), "runspace: unknown option '--frob'\n"},
        {ARGV("foreach", "-j"), "runspace: option '-j' needs a value\n"},
        {ARGV("foreach", "--range", "1..99999999999999999999", "return 1"),
         "runspace: --range '1..99999999999999999999' overflows: its bounds must be from "
         "-9223372036854775808 to 9223372036854775807\n"},
        {ARGV("foreach", "--range", "-99999999999999999999..1", "return 1"),
         "runspace: --range '-99999999999999999999..1' overflows"},
        {ARGV("foreach", "--max-instructions", "0", "return 1"),
         "runspace: --max-instructions must be a whole number from 1 to 10^18, not '0'\n"},
        {ARGV("foreach", "--max-instructions", "1e6", "return 1"),
         "runspace: --max-instructions must be a whole number from 1 to 10^18, not '1e6'\n"},
        {ARGV("foreach", "--exec", "echo {..}"),
         "runspace: --exec: unknown replacement string '{..}'"},
        {ARGV("foreach", "--exec", "echo {1}"),
         "runspace: --exec: unknown replacement string '{1}' in the command template (known: "
         "{} {.} {/} {//} {/.} {#})\n"},
        {ARGV("foreach", "--exec", "echo 'a"),
         "runspace: --exec: the command template has an unterminated ' quote\n"},
        {ARGV("foreach", "--exec", "echo \"a"),
         "runspace: --exec: the command template has an unterminated \" quote\n"},
        {ARGV("foreach", "--exec", "echo a\\"),
         "runspace: --exec: the command template ends with a backslash\n"},
        {ARGV("foreach", "--exec", "  "), "runspace: --exec: the command template is empty\n"},
        {ARGV("foreach", "--exec", ""), "runspace: --exec needs a command template\n"},
        {ARGV("foreach", "--shell", "--exec", "{%}"),
         "runspace: --exec: unknown replacement string '{%}'"},
        {ARGV("foreach", "--shell", "return 1"), "runspace: --shell needs --exec TEMPLATE\n"},
        {ARGV("foreach", "--exec", "echo", "return 1"),
         "runspace: give either a script or --exec, not both\n"},
        {ARGV("foreach", "--input", "", "return 1"),
         "runspace: --input needs a file name ('-' for standard input)\n"},
        {ARGV("foreach", "--input", "-", "--input", "-", "return 1"),
         "runspace: --input - (standard input) can be given only once\n"},
        {ARGV("foreach", "-f", "-"),
         "runspace: -f - reads the script from standard input, so the items must come from "
         "--input FILE or --range\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proc_result r = cli(cases[i].argv, "1\n");
        assert_int_equal(r.status, 2);
        assert_string_equal(r.out, "");
        /* One line of reason, one line of hint. */
        assert_int_equal(count_lines(r.err), 2);
        assert_memory_equal(r.err, cases[i].reason, strlen(cases[i].reason));
        assert_contains(r.err, "Try 'runspace foreach --help' for more information.");
        done(&r);
    }
}

static void test_foreach_compile_error(void **state)
{
    (void)state;
    proc_result r = cli(ARGV("foreach", "local x = 1\nreturn x +"), "1\n2\n");
    assert_int_equal(r.status, 2);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "runspace: script:2: unexpected symbol near <eof>\n");
    done(&r);
}

/* A script file reads as Lua reads a file: messages name it, a shebang line and a byte-order
 * mark are skipped and line numbers stay the file's, in run and foreach alike. */
static void test_script_file_as_lua_reads_it(void **state)
{
    (void)state;
    char path[] = "/tmp/rs_cli_job_XXXXXX.lua";
    write_temp_lua(path, "#!/usr/bin/env runspace\nlocal x = 1\nif x then error('boom') end\n");
    proc_result r = cli(ARGV("run", "-f", path), NULL);
    assert_int_equal(r.status, 1);
    char *want = NULL;
    assert_true(asprintf(&want, "runspace: %s:3: boom\n", path) > 0);
    assert_string_equal(r.err, want);
    done(&r);
    r = cli(ARGV("foreach", "-f", path), "a\n");
    assert_int_equal(r.status, 1);
    free(want);
    assert_true(asprintf(&want, "runspace: input 'a': error: %s:3: boom\n", path) > 0);
    assert_contains(r.err, want);
    done(&r);
    unlink(path);
    free(want);

    /* A byte-order mark, then a comment line that is not Lua: both skipped. */
    char bom[] = "/tmp/rs_cli_bom_XXXXXX.lua";
    write_temp_lua(bom, "\xEF\xBB\xBF# not Lua\nreturn debug.getinfo(1, 'l').currentline");
    r = cli(ARGV("run", "-f", bom), NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "2\n");
    done(&r);
    /* A syntax error names the file, before anything runs. */
    FILE *f = fopen(bom, "w");
    assert_non_null(f);
    fputs("local x =\n", f);
    fclose(f);
    r = cli(ARGV("foreach", "-f", bom), "1\n");
    assert_int_equal(r.status, 2);
    assert_string_equal(r.out, "");
    assert_true(asprintf(&want, "runspace: %s:2: unexpected symbol near <eof>\n", bom) > 0);
    assert_string_equal(r.err, want);
    free(want);
    done(&r);
    /* Only a file's first line may be a shebang; a script given inline is Lua as it stands. */
    r = cli(ARGV("run", "#!x\nreturn 1"), NULL);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "script:1:");
    done(&r);
    unlink(bom);
}

/* A finalizer that runs as the runspace closes prints after the outputs, as Lua prints at
 * lua_close; its warnings go to stderr. */
static void test_run_finalizer_prints_at_close(void **state)
{
    (void)state;
    proc_result r = cli(ARGV("run", "G = setmetatable({}, {__gc = function() print('bye') "
                                    "warn('late') end}) return 'returned'"),
                        NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "returned\nbye\n");
    assert_string_equal(r.err, "WARNING: late\n");
    done(&r);
}

/* Redis workers run scripts, not a submitter's external commands: refused before anything is
 * sent (the address is never dialled). */
static void test_exec_not_on_redis(void **state)
{
    (void)state;
    proc_result r = cli(
        ARGV("foreach", "--redis", "redis://127.0.0.1:1", "--range", "1..3", "--exec", "echo {}"),
        NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.out, "");
    assert_contains(r.err, "an external command per item does not run on Redis workers");
    done(&r);
}

/* run takes an instruction budget too: a runaway script ends with the budget's message. */
static void test_run_max_instructions(void **state)
{
    (void)state;
    proc_result r = cli(ARGV("run", "--max-instructions", "1000", "while true do end"), NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "runspace: instruction budget of 1000 exceeded\n");
    done(&r);
    r = cli(ARGV("run", "--max-instructions", "100000",
                 "local x = 0 for i = 1, 10 do x = x + i end "
                 "return x"),
            NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "55\n");
    done(&r);
    r = cli(ARGV("run", "--max-instructions", "0", "return 1"), NULL);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "--max-instructions must be a whole number from 1 to 10^18, not '0'");
    done(&r);
}

static void test_foreach_missing_input_file(void **state)
{
    (void)state;
    proc_result r = cli(ARGV("foreach", "--input", "/nonexistent/inputs.txt", "return _"), NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(
        r.err, "runspace: cannot open '/nonexistent/inputs.txt': No such file or directory\n");
    done(&r);
}

static void test_foreach_timeout(void **state)
{
    (void)state;
    /* A tight loop, and a pattern match that would run for hours inside string.find. */
    char *scripts[] = {"if _ == '2' then while true do end end return _",
                       "if _ == '2' then return ('a'):rep(3000):find('.-.-.-.-b') end "
                       "return _"};
    for (int i = 0; i < 2; i++) {
        proc_result r =
            cli(ARGV("foreach", "--timeout", "0.2", "--format", "jsonl", "-j", "2", scripts[i]),
                "1\n2\n3\n");
        assert_int_equal(r.status, 1);
        assert_int_equal(count_lines(r.out), 3);
        assert_contains(r.out, "\"status\":\"timeout\"");
        assert_contains(r.out, "\"error\":\"timed out after 0.2 s\"");
        if (r.seconds > 3)
            fail_msg("the run of '%s' took %.2f s", scripts[i], r.seconds);
        done(&r);
    }
}

static void test_foreach_sigint(void **state)
{
    (void)state;
    /* Items 1..1000000, slow enough to be interrupted: finished records are still printed. */
    proc_result r =
        run_program(ARGV("foreach", "--range", "1..1000000", "-j", "2", "sleep(0.001) return _"),
                    NULL, 0, 60, 200);
    assert_int_equal(r.status, 130);
    assert_true(count_lines(r.out) >= 50);
    assert_true(count_lines(r.out) < 1000000);
    /* Complete lines only. */
    assert_int_equal(r.out[r.out_len - 1], '\n');
    /* What was read ahead is cancelled: ten of them told, the rest counted in one line. */
    assert_true(count_lines(r.err) <= 12);
    assert_contains(r.err, "cancelled: the run was stopped before this item finished\n");
    assert_contains(r.err, "more inputs were cancelled, for the same reason as those above\n");
    done(&r);
}

static void test_foreach_range_at_int64_max(void **state)
{
    (void)state;
    proc_result r = cli(ARGV("foreach", "--ordered", "--range",
                             "9223372036854775806..9223372036854775807", "return _"),
                        NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "9223372036854775806\n9223372036854775807\n");
    done(&r);
}

static void test_foreach_sigint_while_input_is_silent(void **state)
{
    (void)state;
    /* stdin is a pipe that stays open and sends nothing: Ctrl-C must still end the run. */
    int in[2];
    assert_int_equal(pipe(in), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_addclose(&fa, in[1]);
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, RS_CLI, &fa, NULL, ARGV("foreach", "return _"), environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    assert_int_equal(write(in[1], "1\n", 2), 2);
    sleep_for(0.3);
    kill(pid, SIGINT);
    int st = 0;
    double t0 = rs_test_now();
    pid_t got = 0;
    while ((got = waitpid(pid, &st, WNOHANG)) == 0 && rs_test_now() - t0 < 10)
        sleep_for(0.01);
    if (got == 0) {
        kill(pid, SIGKILL);
        waitpid(pid, &st, 0);
        fail_msg("runspace did not end within 10 s of SIGINT");
    }
    close(in[1]);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 130);
}

static void test_foreach_closed_pipe(void **state)
{
    (void)state;
    /* The reader went away: runspace ends at once, quietly, by SIGPIPE (as seq or yes do), so
     * that the shell sees 141 and never 0. Its status goes to stderr here. */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "{ %s foreach --ordered --range 1..10000000 'return _'; echo \"status $?\" >&2; } "
             "| head -1",
             RS_CLI);
    proc_result r = run_program((char *const[]){"/bin/sh", "-c", cmd, NULL}, NULL, 0, 60, 0);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "1\n");
    assert_string_equal(r.err, "status 141\n");
    done(&r);
    /* The same for every format and for run. */
    snprintf(cmd, sizeof cmd,
             "{ %s foreach --format jsonl --range 1..10000000 'return _'; echo \"status $?\" >&2; "
             "} | head -1 >/dev/null;"
             "{ %s run 'for i = 1, 10000000 do print(i) end'; echo \"status $?\" >&2; } "
             "| head -1 >/dev/null",
             RS_CLI, RS_CLI);
    r = run_program((char *const[]){"/bin/sh", "-c", cmd, NULL}, NULL, 0, 60, 0);
    assert_string_equal(r.err, "status 141\nstatus 141\n");
    done(&r);
}

static void test_one_record_per_input(void **state)
{
    (void)state;
    /* 100,000 inputs with fail-fast, retries and a timeout, in completion order. */
    proc_result r = cli(ARGV("foreach", "--range", "1..100000", "--fail-fast", "--retries", "1",
                             "--timeout", "0.05", "--format", "jsonl", "-j", "2",
                             "if _ == 60000 then error('boom') end return _"),
                        NULL);
    assert_int_equal(r.status, 1);
    assert_int_equal(count_lines(r.out), 100000);
    unsigned char *seen = calloc(100000, 1);
    /* Line by line: string functions over the whole output per record would be quadratic
     * under ASan's strict string checks. */
    for (const char *p = r.out; *p;) {
        const char *eol = memchr(p, '\n', r.out_len - (size_t)(p - r.out));
        assert_non_null(eol);
        assert_memory_equal(p, "{\"index\":", 9);
        long i = 0; /* not strtol: it too would scan the rest of the output under ASan */
        for (const char *d = p + 9; *d >= '0' && *d <= '9'; d++)
            i = i * 10 + (*d - '0');
        assert_true(i >= 0 && i < 100000);
        seen[i]++;
        p = eol + 1;
    }
    for (long i = 0; i < 100000; i++) {
        if (seen[i] != 1)
            fail_msg("input %ld has %d records", i, seen[i]);
    }
    free(seen);
    assert_contains(r.out, "\"status\":\"cancelled\"");
    done(&r);
}

static void test_summary(void **state)
{
    (void)state;
    proc_result r = cli(
        ARGV("foreach", "--range", "1..10", "--summary", "if _ > 8 then error('x') end return _"),
        NULL);
    assert_int_equal(r.status, 1);
    assert_contains(r.err, "Total items:  10");
    assert_contains(r.err, "Successful:   8");
    assert_contains(r.err, "Errors:       2");
    assert_contains(r.err, "Success rate: 80.00%");
    done(&r);
}

static void test_run(void **state)
{
    (void)state;
    proc_result r = cli(ARGV("run",
                             "print('hello') write_warning('careful') "
                             "write_verbose('hidden') return 1, {a = ...}",
                             "arg1"),
                        NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "hello\n1\n{\"a\":\"arg1\"}\n");
    assert_string_equal(r.err, "WARNING: careful\n");
    done(&r);
    r = cli(ARGV("run", "--verbose", "write_verbose('shown') error('bad')"), NULL);
    assert_int_equal(r.status, 1);
    assert_contains(r.err, "VERBOSE: shown\n");
    assert_contains(r.err, "runspace: script:1: bad\n");
    assert_contains(r.err, "stack traceback:");
    done(&r);
    r = cli(ARGV("run", "return +"), NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "runspace: script:1: unexpected symbol near '+'\n");
    done(&r);
    r = cli(ARGV("run", "--timeout", "0.2", "while true do end"), NULL);
    assert_int_equal(r.status, 1);
    assert_contains(r.err, "timed out");
    done(&r);
    r = cli(ARGV("run", "--restricted", "return io == nil, exec == nil, fs == nil"), NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "true\ntrue\ntrue\n");
    done(&r);
}

static void test_demo(void **state)
{
    (void)state;
    proc_result r = run_program(ARGV("demo"), NULL, 0, 120, 0);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "100 results from");
    assert_contains(r.out, "9801 10000\n");
    assert_contains(r.out, "Job 'LongRunningJob' - Status: Completed");
    assert_contains(r.out, "Job 'ProcessJob' - Status: Completed");
    assert_contains(r.out, "Job 'FileSystemJob' - Status: Completed");
    assert_contains(r.out, "Total Items:  10000");
    assert_contains(r.out, "Successful:   9990");
    assert_contains(r.out, "Open Ports:     3");
    done(&r);
}

static void test_progress_bar(void **state)
{
    (void)state;
    proc_result r = cli(ARGV("foreach", "--progress", "--range", "1..3000", "--batch", "10",
                             "sleep(0.0005) return _"),
                        NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 3000);
    assert_contains(r.err, "foreach [");
    assert_contains(r.err, "3000/3000 100%");
    assert_contains(r.err, "ETA");
    done(&r);
}

/* A listener on 127.0.0.1; returns its port (the socket in *fd). */
static int listener(int *fd)
{
    *fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(*fd, 8), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

static void test_scan(void **state)
{
    (void)state;
    int fd, closed_fd;
    int open_port = listener(&fd);
    int closed_port = listener(&closed_fd);
    close(closed_fd); /* nothing listens there any more */
    char ports[64];
    snprintf(ports, sizeof ports, "%d,%d", open_port, closed_port);
    proc_result r =
        cli(ARGV("scan", "-p", ports, "--format", "jsonl", "127.0.0.1", "nohost.invalid"), NULL);
    assert_int_equal(r.status, 0);
    char want[160];
    snprintf(want, sizeof want,
             "{\"host\":\"127.0.0.1\",\"address\":\"127.0.0.1\",\"port\":%d,\"state\":\"open\","
             "\"reason\":\"syn-ack\"",
             open_port);
    assert_contains(r.out, want);
    snprintf(want, sizeof want, "\"port\":%d,\"state\":\"closed\",\"reason\":\"conn-refused\"",
             closed_port);
    assert_contains(r.out, want);
    assert_contains(r.out, "{\"host\":\"nohost.invalid\",\"address\":\"\",\"port\":0,"
                           "\"state\":\"error\"");
    assert_int_equal(count_lines(r.out), 3);
    assert_contains(r.err, "Scan Summary:");
    assert_contains(r.err, "Open ports:     1");
    assert_contains(r.err, "Closed ports:   1");
    assert_contains(r.err, "Scan errors:    1");
    done(&r);
    /* --open keeps only open ports; table format is the default. */
    r = cli(ARGV("scan", "-p", ports, "--open", "127.0.0.1"), NULL);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 2); /* the header and the open port */
    assert_contains(r.out, " open     ");
    assert_contains(r.out, " syn-ack\n");
    done(&r);
    close(fd);
}

static void test_scan_usage_errors(void **state)
{
    (void)state;
    struct {
        char *const *argv;
        const char *reason;
    } cases[] = {
        {ARGV("scan", "-p", "0", "127.0.0.1"), "runspace: "},
        {ARGV("scan", "-p", "65536", "127.0.0.1"), "runspace: "},
        {ARGV("scan", "-p", "a-b", "127.0.0.1"), "runspace: "},
        {ARGV("scan", "127.0.0.1/33"), "runspace: "},
        {ARGV("scan", "-p", "1-65535", "10.0.0.0/8"), "runspace: "},
        {ARGV("scan"), "runspace: no targets given\n"},
        {ARGV("scan", "--timeout", "-5", "127.0.0.1"),
         "runspace: --timeout must be a number of milliseconds above 0 and at most "
         "1000000000000, not '-5'\n"},
        {ARGV("scan", "--format", "xml", "127.0.0.1"),
         "runspace: --format must be table, jsonl or csv, not 'xml'\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proc_result r = cli(cases[i].argv, NULL);
        if (r.status != 2)
            fail_msg("case %zu: exit %d, stderr: %s", i, r.status, r.err);
        assert_int_equal(count_lines(r.err), 2);
        assert_memory_equal(r.err, cases[i].reason, strlen(cases[i].reason));
        assert_contains(r.err, "Try 'runspace scan --help' for more information.");
        done(&r);
    }
    proc_result r = cli(ARGV("scan", "-p", "1-65535", "10.0.0.0/8"), NULL);
    assert_contains(r.err, "--force");
    done(&r);
}

/* ---- closed and failing standard descriptors ------------------------------------------------ */

static void test_closed_stdin(void **state)
{
    (void)state;
    /* fd 0 closed: it must not become the run's stop eventfd (which never turns readable, so
     * the run waited forever); reading fails, clearly. */
    how h = {.limit = 20, .close_stdin = true};
    proc_result r = run_how(ARGV("foreach", "return _"), &h);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "");
    assert_string_equal(r.err, "runspace: cannot read input: standard input is closed\n");
    done(&r);
    /* Other inputs do not need stdin. */
    r = run_how(ARGV("foreach", "--ordered", "--range", "1..3", "return _"), &h);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "1\n2\n3\n");
    done(&r);
}

/* "1\n2\n...\nn\n" in a new string. */
static char *numbers(int n, size_t *len)
{
    char *text = malloc((size_t)n * 8 + 1);
    size_t k = 0;
    for (int i = 1; i <= n; i++)
        k += (size_t)sprintf(text + k, "%d\n", i);
    *len = k;
    return text;
}

static void test_closed_stdout(void **state)
{
    (void)state;
    /* fd 1 closed: records once went into whatever took fd 1 (the stop eventfd: reading then
     * stopped early and the run said 100% success). Writing must fail, and say so. */
    size_t len;
    char *input = numbers(200000, &len);
    how h = {.input = input, .input_len = len, .limit = 60, .close_stdout = true};
    proc_result r = run_how(ARGV("foreach", "return _"), &h);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "runspace: cannot write output: standard output is closed\n");
    done(&r);
    r = run_how(ARGV("foreach", "--format", "jsonl", "--summary", "return _"), &h);
    assert_int_equal(r.status, 1);
    assert_contains(r.err, "runspace: cannot write output: standard output is closed\n");
    done(&r);
    free(input);
    h = (how){.limit = 30, .close_stdout = true};
    r = run_how(ARGV("run", "return 1"), &h);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "runspace: cannot write output: standard output is closed\n");
    done(&r);
    r = run_how(ARGV("--version"), &h);
    assert_int_equal(r.status, 1);
    done(&r);
}

static void test_full_stdout(void **state)
{
    (void)state;
    /* Every write error of records ends in a message and status 1, never 0 with records lost;
     * a run that could go on for ever (print in a loop) is stopped. */
    struct {
        char *const *argv;
    } cases[] = {
        {ARGV("foreach", "--range", "1..200000", "return _")},
        {ARGV("foreach", "--range", "1..200000", "--format", "csv", "return _")},
        {ARGV("foreach", "--range", "1..3", "return _")}, /* fails only at the last flush */
        {ARGV("run", "while true do print(1) end")},
        {ARGV("run", "--format", "json", "return 1")},
        {ARGV("scan", "-p", "1-3", "127.0.0.1")},
        {ARGV("--help")},
        {ARGV("foreach", "--help")},
        {ARGV("--version")},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        how h = {.limit = 30, .stdout_path = "/dev/full"};
        proc_result r = run_how(cases[i].argv, &h);
        if (r.status != 1)
            fail_msg("case %zu: exit %d, stderr: %s", i, r.status, r.err);
        assert_contains(r.err, "runspace: cannot write output: No space left on device\n");
        assert_true(count_lines(r.err) <= 10); /* no flood of per-item messages */
        done(&r);
    }
}

/* ---- input errors --------------------------------------------------------------------------- */

static void test_input_read_errors(void **state)
{
    (void)state;
    proc_result r = cli(ARGV("foreach", "--input", "/", "return _"), NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "runspace: cannot read '/': Is a directory\n");
    done(&r);
    how h = {.limit = 20, .stdin_path = "/"};
    r = run_how(ARGV("foreach", "return _"), &h);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "runspace: cannot read input: Is a directory\n");
    done(&r);
}

static void test_input_line_too_long(void **state)
{
    (void)state;
    /* An endless line: the run ends (it once read forever), with status 1 and a message; the
     * line gets its error record. */
    proc_result r = run_program(
        ARGV("foreach", "--input", "/dev/zero", "--format", "jsonl", "return _"), NULL, 0, 60, 0);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "{\"index\":0,\"input\":null,\"status\":\"error\",\"output\":[],"
                               "\"error\":\"line 1 of '/dev/zero' is longer than 67108864 "
                               "bytes\","
                               "\"duration_ms\":0.000,\"attempts\":0,\"runspace\":0}\n");
    assert_string_equal(r.err, "runspace: line 1 of the input is longer than 67108864 bytes; "
                               "the input after it was not read\n");
    done(&r);
    /* Records of what was read before it are all there; nothing after it is read. A line of
     * exactly the limit is fine, also when it ends with CR LF (the limit is on the line
     * without its line end). */
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "{ printf '1\\n'; head -c 67108864 /dev/zero | tr '\\0' x; printf '\\r\\n2\\n';"
             "  head -c 67108865 /dev/zero; printf '\\n3\\n'; } | "
             "%s foreach --ordered 'return #_'",
             RS_CLI);
    r = run_program((char *const[]){"/bin/sh", "-c", cmd, NULL}, NULL, 0, 120, 0);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.out, "1\n67108864\n1\n");
    assert_string_equal(r.err, "runspace: input null: error: line 4 is longer than 67108864 bytes\n"
                               "runspace: line 4 of the input is longer than 67108864 bytes; "
                               "the input after it was not read\n");
    done(&r);
}

/* ---- durations ------------------------------------------------------------------------------ */

static void test_tiny_timeouts(void **state)
{
    (void)state;
    /* A positive timeout too short to count in nanoseconds is still a timeout, not "none". */
    proc_result r =
        run_program(ARGV("foreach", "--timeout", "1e-10", "--format", "jsonl", "while true do end"),
                    "1\n", 2, 30, 0);
    assert_int_equal(r.status, 1);
    assert_contains(r.out, "\"status\":\"timeout\"");
    done(&r);
    r = run_program(ARGV("foreach", "--timeout", "1e-400", "while true do end"), "1\n", 2, 30, 0);
    assert_int_equal(r.status, 1);
    assert_contains(r.err, "timeout");
    done(&r);
    r = run_program(ARGV("run", "--timeout", "1e-10", "while true do end"), NULL, 0, 30, 0);
    assert_int_equal(r.status, 1);
    assert_contains(r.err, "timed out");
    done(&r);
    r = run_program(ARGV("scan", "--timeout", "1e-10", "-p", "1", "127.0.0.1"), NULL, 0, 30, 0);
    assert_int_equal(r.status, 0);
    done(&r);
}

/* Option values are plain decimals: no blanks, no '+', no hexadecimal, no stray suffix. */
static void test_strict_values(void **state)
{
    (void)state;
    char *const *bad[] = {
        ARGV("foreach", "--timeout", "0x10", "return 1"),
        ARGV("foreach", "--timeout", "+5", "return 1"),
        ARGV("foreach", "--range", " 1..5", "return 1"),
        ARGV("foreach", "--range", "1.. 5", "return 1"),
        ARGV("foreach", "--range", "1..+5", "return 1"),
        ARGV("foreach", "--range", "+1..5", "return 1"),
        ARGV("foreach", "--memory-limit", "1i", "--range", "1..1", "return 1"),
        ARGV("foreach", "--memory-limit", "1Ki", "--range", "1..1", "return 1"),
        ARGV("foreach", "--memory-limit", " 64M", "--range", "1..1", "return 1"),
        ARGV("run", "--memory-limit", "+64M", "return 1"),
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        proc_result r = cli(bad[i], NULL);
        if (r.status != 2)
            fail_msg("%s %s '%s': exit %d", bad[i][1], bad[i][2], bad[i][3], r.status);
        done(&r);
    }
    char *const *good[] = {
        ARGV("foreach", "--range", "-2..-1", "--memory-limit", "64MiB", "return _"),
        ARGV("foreach", "--range", "1..1", "--memory-limit", "67108864B", "--timeout", ".5",
             "return _"),
        ARGV("run", "--memory-limit", "1GB", "--timeout", "2e0", "return 1"),
    };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        proc_result r = cli(good[i], NULL);
        if (r.status != 0)
            fail_msg("%s %s %s: exit %d: %s", good[i][1], good[i][2], good[i][3], r.status, r.err);
        done(&r);
    }
}

static void test_duration_usage_errors(void **state)
{
    (void)state;
    const char *bad[] = {"0",    "-1",     "-0", "nan", "NaN", "inf", "-inf",   "1e300",
                         "1e13", "1e5000", "",   " 5",  "5s",  "0x",  "-1e-400"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char *const *argvs[] = {
            ARGV("foreach", "--timeout", (char *)bad[i], "return 1"),
            ARGV("run", "--timeout", (char *)bad[i], "return 1"),
            ARGV("scan", "--timeout", (char *)bad[i], "127.0.0.1"),
        };
        for (size_t k = 0; k < 3; k++) {
            proc_result r = cli(argvs[k], NULL);
            if (r.status != 2)
                fail_msg("%s --timeout '%s': exit %d, stderr: %s", argvs[k][1], bad[i], r.status,
                         r.err);
            assert_contains(r.err, "runspace: --timeout must be a number of ");
            assert_contains(r.err, "above 0 and at most");
            assert_int_equal(count_lines(r.err), 2);
            assert_string_equal(r.out, "");
            done(&r);
        }
    }
    /* The largest accepted values. */
    proc_result r = cli(ARGV("foreach", "--timeout", "1e9", "--range", "1..1", "return _"), NULL);
    assert_int_equal(r.status, 0);
    done(&r);
    r = cli(ARGV("run", "--timeout", "1000000000", "return 1"), NULL);
    assert_int_equal(r.status, 0);
    done(&r);
    /* Counts: digits only. */
    const char *counts[] = {" 5", "+5", "-5", "5 ", "0x5", "1e3", ""};
    for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++) {
        r = cli(ARGV("foreach", "-j", (char *)counts[i], "return 1"), NULL);
        assert_int_equal(r.status, 2);
        done(&r);
    }
}

/* ---- scan targets files ---------------------------------------------------------------------- */

static void test_scan_targets_file_errors(void **state)
{
    (void)state;
    char path[] = "/tmp/rs_cli_targets_XXXXXX";
    int fd = mkstemp(path);
    assert_int_equal(write(fd, "127.0.0.1\0junk\n", 15), 15);
    close(fd);
    proc_result r = cli(ARGV("scan", "-p", "1", "-iL", path), NULL);
    assert_int_equal(r.status, 2);
    char want[128];
    snprintf(want, sizeof want, "runspace: %s:1: the line holds a NUL byte\n", path);
    assert_memory_equal(r.err, want, strlen(want));
    done(&r);
    /* Empty: no targets, said plainly. */
    fd = open(path, O_WRONLY | O_TRUNC);
    close(fd);
    r = cli(ARGV("scan", "-p", "1", "-iL", path), NULL);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "runspace: no targets to scan\n");
    done(&r);
    unlink(path);
    /* An endless file ends at once. */
    r = run_program(ARGV("scan", "-p", "1", "-iL", "/dev/zero"), NULL, 0, 20, 0);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "runspace: /dev/zero:1: the line holds a NUL byte\n");
    done(&r);
}

static void test_scan_targets_file_sigint(void **state)
{
    (void)state;
    /* A targets file that never ends (a FIFO whose writer sends nothing): the first SIGINT
     * ends the program. */
    char dir[] = "/tmp/rs_cli_fifo_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char fifo[64];
    snprintf(fifo, sizeof fifo, "%s/targets", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    int writer = open(fifo, O_RDWR); /* a writer that stays, without blocking on open */
    assert_true(writer >= 0);
    assert_int_equal(write(writer, "127.0.0.1\n", 10), 10);
    how h = {.limit = 20, .interrupt_at = 0.5};
    proc_result r = run_how(ARGV("scan", "-p", "1", "-iL", fifo), &h);
    close(writer);
    unlink(fifo);
    rmdir(dir);
    assert_int_equal(r.status, 130);
    assert_string_equal(r.out, "");
    done(&r);
}

/* ---- records keep their shape --------------------------------------------------------------- */

static void test_unrepresentable_values(void **state)
{
    (void)state;
    /* NaN and infinities become null, bytes that are not UTF-8 become U+FFFD, value by value:
     * the rest of the record stays. */
    const char *script = "return {1, 0/0, 'a\\255b', -1/0, {k = 1/0}}, 'raw\\255', 0/0";
    proc_result r = cli(ARGV("foreach", "--format", "jsonl", (char *)script), "x\n");
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "\"output\":[[1,null,\"a\xef\xbf\xbd"
                           "b\",null,{\"k\":null}],\"raw\xef\xbf\xbd\",null],");
    done(&r);
    r = cli(ARGV("foreach", (char *)script), "x\n");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "[1,null,\"a\xef\xbf\xbd"
                               "b\",null,{\"k\":null}]\nraw\xff\nnull\n");
    done(&r);
    r = cli(ARGV("foreach", "--format", "csv", (char *)script), "x\n");
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "0,\"\"\"x\"\"\",ok,\"[[1,null,\"\"a\xef\xbf\xbd"
                           "b\"\",null,{\"\"k\"\":null}],\"\"raw\xef\xbf\xbd\"\",null]\",,");
    done(&r);
    r = cli(ARGV("foreach", "--format", "table", (char *)script), "x\n");
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "  [[1,null,\"a\xef\xbf\xbd"
                           "b\",null,{\"k\":null}],\"raw\xef\xbf\xbd\",null]\n");
    done(&r);
    r = cli(ARGV("run", "--format", "json", (char *)script), NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "[[1,null,\"a\xef\xbf\xbd"
                               "b\",null,{\"k\":null}],\"raw\xef\xbf\xbd\",null]\n");
    done(&r);
    /* Inputs and errors too; keys that meet after repair stay apart. */
    r = cli(ARGV("foreach", "--format", "jsonl",
                 "if _ == 'e\\255' then error('bad \\254', 0) end "
                 "return {['\\255'] = 1, ['\\254'] = 2}"),
            "x\xfe\ne\xff\n");
    assert_int_equal(r.status, 1);
    assert_contains(r.out, "\"input\":\"x\xef\xbf\xbd\",\"status\":\"ok\",\"output\":[{");
    assert_contains(r.out, "\"\xef\xbf\xbd\":");
    assert_contains(r.out, "\"\xef\xbf\xbd\xef\xbf\xbd\":");
    assert_contains(r.out, "\"input\":\"e\xef\xbf\xbd\",\"status\":\"error\",\"output\":[],"
                           "\"error\":\"bad \xef\xbf\xbd\"");
    done(&r);
}

/* ---- usage errors free what they parsed (LeakSanitizer checks in the ASan build) ------------ */

static void test_usage_errors_after_values(void **state)
{
    (void)state;
    char *const *cases[] = {
        ARGV("foreach", "--var", "a=[1,2]", "--param", "b={\"c\":3}", "--frob", "return 1"),
        ARGV("foreach", "--param", "b=x", "--timeout", "never", "return 1"),
        ARGV("foreach", "--var", "a=1", "--param", "b=2", "--var", "nope", "return 1"),
        ARGV("foreach", "--var", "a=1", "--param", "b=2"),
        ARGV("foreach", "--var", "a=1", "--param", "b=2", "-f", "/nonexistent/script.lua"),
        ARGV("foreach", "--var", "a=1", "--param", "b=2", "--input", "/nonexistent/in", "return 1"),
        ARGV("foreach", "--var", "a=1", "--param", "b=2", "--module", "/nonexistent/m.lua",
             "return 1"),
        ARGV("foreach", "--var", "a=1", "--param", "b=2", "return +"),
        ARGV("run", "--var", "a=1", "--param", "b=2", "--frob", "return 1"),
        ARGV("run", "--var", "a=1", "--param", "b=2"),
        ARGV("run", "--var", "a=1", "--param", "b=2", "-f", "/nonexistent/script.lua"),
        ARGV("run", "--var", "a=1", "--param", "b=2", "--module", "/nonexistent/m.lua", "return 1"),
        ARGV("run", "--var", "a=1", "--param", "b=2", "return +"),
        ARGV("scan", "-p", "80", "--frob", "127.0.0.1"),
        ARGV("scan", "-p", "80", "-iL", "/nonexistent/targets"),
        ARGV("scan", "-p", "0", "127.0.0.1"),
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proc_result r = cli(cases[i], NULL);
        if (r.status != 2 || !strstr(r.err, "runspace: ") || strstr(r.err, "Sanitizer"))
            fail_msg("case %zu (%s %s): exit %d, stderr: %s", i, cases[i][1], cases[i][2], r.status,
                     r.err);
        done(&r);
    }
}

/* ---- scripts from odd files, and interrupts during the setup --------------------------------- */

static void test_script_file_endless(void **state)
{
    (void)state;
    /* A script read from /dev/zero once took all the memory there was. */
    char *const *cases[] = {ARGV("run", "-f", "/dev/zero"), ARGV("foreach", "-f", "/dev/zero")};
    for (size_t i = 0; i < 2; i++) {
        proc_result r = run_program(cases[i], NULL, 0, 30, 0);
        assert_int_equal(r.status, 2);
        assert_string_equal(r.err, "runspace: cannot read '/dev/zero': it is longer than "
                                   "67108864 bytes, the most a script may be\n");
        done(&r);
    }
}

static void test_sigint_during_setup(void **state)
{
    (void)state;
    /* Reading the script from a FIFO that nothing writes to: no stop function is set yet, and
     * the first SIGINT was ignored. It ends the program. */
    char dir[] = "/tmp/rs_cli_fifo_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char fifo[64];
    snprintf(fifo, sizeof fifo, "%s/script", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    char *const *cases[] = {ARGV("run", "-f", fifo), ARGV("foreach", "-f", fifo)};
    for (size_t i = 0; i < 2; i++) {
        how h = {.limit = 20, .interrupt_at = 0.3};
        proc_result r = run_how(cases[i], &h);
        assert_int_equal(r.status, 130);
        assert_string_equal(r.out, "");
        done(&r);
    }
    unlink(fifo);
    rmdir(dir);
}

static void test_nonblocking_stdout(void **state)
{
    (void)state;
    /* A pipe left non-blocking by another process: a write that would block waits, rather
     * than failing the run with "Resource temporarily unavailable". */
    how h = {.limit = 60, .nonblocking_stdout = true, .slow_reader = true};
    proc_result r = run_how(ARGV("foreach", "--ordered", "--range", "1..300000", "return _"), &h);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    assert_int_equal(count_lines(r.out), 300000);
    assert_memory_equal(r.out + r.out_len - 14, "299999\n300000\n", 14);
    done(&r);
}

static void test_error_text_repaired(void **state)
{
    (void)state;
    /* An error message that is not UTF-8 is repaired in the text formats too. */
    const char *script = "error('bad \\255 input', 0)";
    proc_result r = cli(ARGV("foreach", "--format", "csv", (char *)script), "x\n");
    assert_int_equal(r.status, 1);
    assert_contains(r.out, ",error,[],bad \xef\xbf\xbd input,");
    done(&r);
    r = cli(ARGV("foreach", "--format", "table", (char *)script), "x\n");
    assert_int_equal(r.status, 1);
    assert_contains(r.out, "  bad \xef\xbf\xbd input\n");
    done(&r);
    r = cli(ARGV("foreach", (char *)script), "x\n");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "runspace: input 'x': error: bad \xef\xbf\xbd input\n");
    done(&r);
}

/* ---- external commands per item (--exec) ------------------------------------------------ */

static void test_exec_replacement_strings(void **state)
{
    (void)state;
    /* GNU parallel's replacement strings, no shell: the same text as `parallel -k printf`. */
    proc_result r = cli(ARGV("foreach", "--ordered", "--exec",
                             "printf '[%s] [%s] [%s] [%s] [%s] %s\\n' {} {.} {/} {//} {/.} {#}"),
                        "a/b.c.d\nfile.\n.bashrc\na/b/\nfile\n/a\n/\nx.y/z\n");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "[a/b.c.d] [a/b.c] [b.c.d] [a] [b.c] 1\n"
                               "[file.] [file.] [file.] [.] [file.] 2\n"
                               "[.bashrc] [] [.bashrc] [.] [] 3\n"
                               "[a/b/] [a/b/] [] [a] [] 4\n"
                               "[file] [file] [file] [.] [file] 5\n"
                               "[/a] [/a] [a] [/] [a] 6\n"
                               "[/] [/] [] [/] [] 7\n"
                               "[x.y/z] [x.y/z] [z] [x.y] [z] 8\n");
    assert_string_equal(r.err, "");
    done(&r);
    /* No replacement string: the item is the last argument; quotes keep blanks and $ as they
     * are (no expansion); an item with blanks stays one argument. */
    r = cli(ARGV("foreach", "--ordered", "--exec", "printf \"<%s>\\n\" '$HOME x'"), "a b\n*\n");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "<$HOME x>\n<a b>\n<$HOME x>\n<*>\n");
    done(&r);
    /* --shell: the item is quoted, never read as shell syntax; several stdout lines are
     * several outputs; numbers from --range are their decimal text. */
    r = cli(ARGV("foreach", "--ordered", "--shell", "--format", "jsonl", "--exec",
                 "echo {} | tr a-z A-Z; echo second"),
            "it's; touch /tmp/rs_injected $(id)\n");
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "\"output\":[\"IT'S; TOUCH /TMP/RS_INJECTED $(ID)\",\"second\"]");
    assert_int_equal(access("/tmp/rs_injected", F_OK), -1);
    done(&r);
    r = cli(ARGV("foreach", "--range", "7..8", "--ordered", "--exec", "expr {} + {#}"), NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "8\n10\n");
    done(&r);
}

static void test_exec_failures(void **state)
{
    (void)state;
    /* A non-zero exit: status error, the exit code and the end of stderr; a signal. */
    proc_result r = cli(ARGV("foreach", "--ordered", "--format", "jsonl", "--exec",
                             "sh -c 'echo out; echo first >&2; echo \"last {}\" >&2; exit {}' sh"),
                        "0\n3\n");
    assert_int_equal(r.status, 1);
    assert_contains(r.out, "{\"index\":0,\"input\":\"0\",\"status\":\"ok\",\"output\":[\"out\"]");
    assert_contains(r.out, "{\"index\":1,\"input\":\"3\",\"status\":\"error\",\"output\":[],"
                           "\"error\":\"sh: exit code 3: first\\nlast 3\",");
    done(&r);
    r = cli(ARGV("foreach", "--exec", "sh -c 'kill -TERM $$' sh"), "x\n");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "runspace: input 'x': error: sh: killed by signal 15 (SIGTERM)\n");
    done(&r);
    /* A command that does not exist: one error record per item, not a crash. */
    r = cli(ARGV("foreach", "--format", "csv", "--exec", "rs-no-such-command {}"), "a\nb\nc\n");
    assert_int_equal(r.status, 1);
    assert_int_equal(count_lines(r.out), 4);
    const char *p = r.out;
    for (int i = 0; i < 3; i++, p++)
        assert_non_null(p = strstr(p, ",error,[],rs-no-such-command: command not found,"));
    done(&r);
    r = cli(ARGV("foreach", "--exec", "{}"), "/nonexistent/prog\n");
    assert_int_equal(r.status, 1);
    assert_contains(r.err, "/nonexistent/prog: cannot run it: No such file or directory\n");
    done(&r);
    /* -0 items; an item with a NUL byte (from JSON) cannot be an argument. */
    r = run_program(ARGV("foreach", "-0", "--ordered", "--exec", "echo"), "a\0b\0", 4, 60, 0);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "a\nb\n");
    done(&r);
    r = cli(ARGV("foreach", "--json", "--exec", "echo"), "\"a\\u0000b\"\n");
    assert_int_equal(r.status, 1);
    /* The message shows the whole item, its NUL byte escaped. */
    assert_string_equal(r.err, "runspace: input 'a\\x00b': error: the item holds a NUL byte, "
                               "which no argument can carry\n");
    done(&r);
}

static void test_exec_timeout_kills_the_group(void **state)
{
    (void)state;
    char mark[] = "/tmp/rs_exec_mark_XXXXXX";
    int fd = mkstemp(mark);
    close(fd);
    unlink(mark);
    char tmpl[256];
    /* The command's own child would create the mark after 1 s, unless the group is killed. */
    snprintf(tmpl, sizeof tmpl, "sh -c '(sleep 1; touch %s) & sleep 10' sh {}", mark);
    proc_result r =
        cli(ARGV("foreach", "--timeout", "0.2", "--format", "jsonl", "--exec", tmpl), "1\n2\n");
    assert_int_equal(r.status, 1);
    assert_int_equal(count_lines(r.out), 2);
    assert_contains(r.out, "\"status\":\"timeout\"");
    assert_null(strstr(r.out, "\"status\":\"ok\""));
    assert_true(r.seconds < 5);
    done(&r);
    sleep_for(1.5);
    assert_int_equal(access(mark, F_OK), -1);
}

static void test_exec_joblog_resume(void **state)
{
    (void)state;
    char path[] = "/tmp/rs_exec_joblog_XXXXXX";
    int fd = mkstemp(path);
    close(fd);
    proc_result r = cli(ARGV("foreach", "--range", "1..20", "--joblog", path, "--exec",
                             "sh -c 'test $0 -le 10' {}"),
                        NULL);
    assert_int_equal(r.status, 1);
    done(&r);
    /* --resume: nothing is missing; --resume-failed runs the ten that failed. */
    r = cli(ARGV("foreach", "--range", "1..20", "--joblog", path, "--resume", "--summary", "--exec",
                 "sh -c 'test $0 -le 10' {}"),
            NULL);
    assert_int_equal(r.status, 0);
    assert_contains(r.err, "Skipped:      20");
    done(&r);
    /* Another template is another run: refused. */
    r = cli(ARGV("foreach", "--range", "1..20", "--joblog", path, "--resume", "--exec",
                 "sh -c 'test $0 -le 20' {}"),
            NULL);
    assert_int_equal(r.status, 2);
    done(&r);
    r = cli(ARGV("foreach", "--range", "1..20", "--joblog", path, "--resume-failed", "--summary",
                 "--exec", "sh -c 'test $0 -le 10' {}"),
            NULL);
    assert_int_equal(r.status, 1);
    assert_contains(r.err, "Total items:  10");
    assert_contains(r.err, "Skipped:      10");
    done(&r);
    unlink(path);
}

static void test_exec_in_scripts(void **state)
{
    (void)state;
    /* Without check a non-zero exit is data; with check = true it raises. */
    proc_result r = cli(ARGV("run", "local r = exec{'sh', '-c', 'exit 3'} return r.code"), NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "3\n");
    done(&r);
    r = cli(ARGV("run", "return exec{'sh', '-c', 'echo why >&2; exit 3', check = true}"), NULL);
    assert_int_equal(r.status, 1);
    assert_contains(r.err, "exec: sh: exit code 3: why\n");
    done(&r);
    r = cli(ARGV("run", "return exec{'sh', '-c', 'echo fine', check = true}.stdout"), NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "fine\n\n");
    done(&r);
}

/* ---- inputs ------------------------------------------------------------------------------ */

static void test_inputs_and_separators(void **state)
{
    (void)state;
    char a[] = "/tmp/rs_in_a_XXXXXX", b[] = "/tmp/rs_in_b_XXXXXX";
    int fa = mkstemp(a), fb = mkstemp(b);
    assert_int_equal(write(fa, "1\n2\n", 4), 4);
    assert_int_equal(write(fb, "3\n4", 3), 3);
    close(fa);
    close(fb);
    /* Repeated --input: each file in turn (a last line without newline too); '-' is stdin. */
    proc_result r =
        cli(ARGV("foreach", "--ordered", "--input", a, "--input", "-", "--input", b, "return _"),
            "x\n");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "1\n2\nx\n3\n4\n");
    done(&r);
    /* -0: NUL-separated items, newlines inside them kept. */
    r = run_program(ARGV("foreach", "-0", "--ordered", "return #_"), "a\nb\0cd\0", 7, 60, 0);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "3\n2\n");
    done(&r);
    /* -f -: the script from stdin, the items from a file. */
    r = cli(ARGV("foreach", "--ordered", "-f", "-", "--input", a), "return _ * 10");
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "10\n20\n");
    done(&r);
    /* Blank lines under --json are skipped: no record, no error. */
    r = cli(ARGV("foreach", "--json", "--ordered", "--format", "jsonl", "return _"),
            "1\n\n  \n2\n\r\n");
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 2);
    done(&r);
    /* A JSON error names the file and its line. */
    r = cli(ARGV("foreach", "--json", "--input", a, "--input", b, "--input", "-", "return _"),
            "{\n");
    assert_int_equal(r.status, 1);
    assert_contains(r.err, "invalid JSON on line 1, column");
    done(&r);
    unlink(a);
    unlink(b);
}

static void test_terminal_input_notice(void **state)
{
    (void)state;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    assert_true(master >= 0);
    assert_int_equal(grantpt(master), 0);
    assert_int_equal(unlockpt(master), 0);
    /* Two lines typed, then Ctrl-D. */
    assert_int_equal(write(master, "a\nb\n\x04", 5), 5);
    how h = {.limit = 60, .stdin_path = ptsname(master)};
    proc_result r = run_how(ARGV("foreach", "--ordered", "return _"), &h);
    close(master);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "a\nb\n");
    assert_string_equal(
        r.err, "runspace: reading items from the terminal, one per line; end with Ctrl-D\n");
    done(&r);
}

/* ---- messages and limits ----------------------------------------------------------------- */

static void test_messages(void **state)
{
    (void)state;
    /* error() with a table shows it as JSON. */
    proc_result r = cli(ARGV("foreach", "error({code = 5})"), "x\n");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "runspace: input 'x': error: {\"code\":5}\n");
    done(&r);
    /* Cancelled records say why. */
    r = cli(ARGV("foreach", "--range", "1..50", "-j", "1", "--batch", "1", "--fail-fast",
                 "--format", "jsonl", "if _ == 1 then error('first') end sleep(0.01) return _"),
            NULL);
    assert_int_equal(r.status, 1);
    assert_contains(r.out, "\"status\":\"cancelled\",\"output\":[],\"error\":\"another item "
                           "failed, and fail-fast stopped the run before this one finished\"");
    done(&r);
    /* A missing module: exit 2, one message, in every command. */
    r = cli(ARGV("foreach", "--module", "rs_no_such_module", "return 1"), NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(
        r.err, "runspace: cannot open module 'rs_no_such_module': not found on package.path\n");
    done(&r);
    r = cli(ARGV("run", "--module", "rs_no_such_module", "return 1"), NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(
        r.err, "runspace: cannot open module 'rs_no_such_module': not found on package.path\n");
    done(&r);
    r = cli(ARGV("run", "--module", "/nonexistent/m.lua", "return 1"), NULL);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, "runspace: cannot open module '/nonexistent/m.lua': No such file or "
                               "directory\n");
    done(&r);
    /* A forgotten -f. */
    r = cli(ARGV("foreach", RS_TEST_FIXTURES "/greet.lua"), "x\n");
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "runspace: '" RS_TEST_FIXTURES "/greet.lua' is a file: to run it, use "
                           "-f " RS_TEST_FIXTURES "/greet.lua\n");
    done(&r);
    /* Unknown options of other commands by their name. */
    r = cli(ARGV("run", "-vQ", "return 1"), NULL);
    assert_int_equal(r.status, 2);
    assert_memory_equal(r.err, "runspace: unknown option '-Q'\n", 30);
    done(&r);
    r = cli(ARGV("joblog", "--frob=1", "x"), NULL);
    assert_int_equal(r.status, 2);
    assert_memory_equal(r.err, "runspace: unknown option '--frob'\n", 33);
    done(&r);
    r = cli(ARGV("demo", "--frob"), NULL);
    assert_int_equal(r.status, 2);
    assert_memory_equal(r.err, "runspace: unknown option '--frob'\n", 33);
    done(&r);
}

static void test_max_instructions(void **state)
{
    (void)state;
    proc_result r = cli(ARGV("foreach", "--max-instructions", "100000", "--format", "jsonl",
                             "--ordered", "if _ == 'loop' then while true do end end return _"),
                        "ok\nloop\n");
    assert_int_equal(r.status, 1);
    assert_contains(r.out, "{\"index\":0,\"input\":\"ok\",\"status\":\"ok\"");
    assert_contains(r.out, "\"error\":\"instruction budget of 100000 exceeded\"");
    done(&r);
}

static void test_records_keep_their_shape(void **state)
{
    (void)state;
    /* attempts in jsonl and csv; durations with the same digits in every format. */
    proc_result r = cli(ARGV("foreach", "--retries", "2", "--format", "jsonl",
                             "if shared.incr('n') < 3 then error('again') end return 1"),
                        "x\n");
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "\"attempts\":3,\"runspace\":");
    done(&r);
    r = cli(ARGV("foreach", "--format", "csv", "return 0/0, 'a\\255'"), "x\n");
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "0,\"\"\"x\"\"\",ok,\"[null,\"\"a\xef\xbf\xbd\"\"]\",,");
    done(&r);
}

/* ---- limits that hold -------------------------------------------------------------------- */

/* A record whose output grows six times when encoded (each \1 is \u0001): the program
 * streams the text out instead of building it, so its peak memory stays a small multiple of
 * the runspace limit (32M), in every format (a 25 MB output with a 64M limit used to take
 * about 340 MB, 670 MB under AddressSanitizer). */
static void test_huge_record_memory(void **state)
{
    (void)state;
    /* Four times the limit; ThreadSanitizer's shadow memory takes several times what the
     * program touches, so eight there. */
#if defined(__SANITIZE_THREAD__)
    long most_kb = 8 * 32 * 1024;
#else
    long most_kb = 4 * 32 * 1024;
#endif
    char *script = "return {string.rep('\\1', 12e6)}";
    char *formats[] = {"jsonl", "csv", "table", "raw"};
    for (int i = 0; i < 4; i++) {
        how h = {.limit = 120, .count_only = true};
        proc_result r = run_how(ARGV("foreach", "--range", "1..1", "--memory-limit", "32M",
                                     "--format", formats[i], script),
                                &h);
        assert_int_equal(r.status, 0);
        assert_true(r.out_len > 72000000); /* all of the text arrived */
        if (r.max_rss_kb > most_kb)
            fail_msg("--format %s: peak RSS %ld KiB, more than %ld", formats[i], r.max_rss_kb,
                     most_kb);
        done(&r);
    }
    how h = {.limit = 120, .count_only = true};
    proc_result r = run_how(
        ARGV("run", "--memory-limit", "32M", "--format", "json", "return string.rep('\\1', 12e6)"),
        &h);
    assert_int_equal(r.status, 0);
    assert_int_equal(r.out_len, 72000005); /* ["..."] and a newline */
    if (r.max_rss_kb > most_kb)
        fail_msg("run --format json: peak RSS %ld KiB, more than %ld", r.max_rss_kb, most_kb);
    done(&r);
}

/* SIGINT while stdout is a full pipe that nobody reads: the run ends (130) instead of
 * waiting in write() for a reader that never comes. */
static void test_interrupt_with_stuck_reader(void **state)
{
    (void)state;
    char *formats[] = {"raw", "jsonl"};
    for (int i = 0; i < 2; i++) {
        how h = {.limit = 30, .stuck_reader = true, .interrupt_at = 1.0};
        proc_result r = run_how(ARGV("foreach", "--range", "1..100000000", "--format", formats[i],
                                     "return string.rep('x', 100)"),
                                &h);
        assert_int_equal(r.status, 130);
        assert_contains(r.err, "output not written in full: interrupted while its reader took "
                               "nothing");
        done(&r);
    }
    how h = {.limit = 30, .stuck_reader = true, .interrupt_at = 1.0};
    proc_result r = run_how(ARGV("run", "return string.rep('x', 10e6)"), &h);
    assert_int_equal(r.status, 130);
    done(&r);
    /* Items that print to a stderr nobody reads: the workers writing their lines do not keep
     * an interrupted run from ending. */
    h = (how){.limit = 30, .stuck_stderr = true, .interrupt_at = 1.0};
    r = run_how(ARGV("foreach", "--range", "1..100000000", "-j", "2",
                     "print(string.rep('x', 1000)) return _"),
                &h);
    assert_int_equal(r.status, 130);
    done(&r);
}

/* ---- stream records of foreach items -------------------------------------------------------- */

/* print, write_warning and write_error of items show on stderr, each line whole although
 * four workers write at once; verbose and debug do not; stray writes to fd 1 (io.stdout,
 * a child's output) land on stderr and leave the records on stdout intact. */
static void test_foreach_stream_records(void **state)
{
    (void)state;
    proc_result r = cli(ARGV("foreach", "--range", "1..40", "-j", "4", "--format", "jsonl",
                             "for k = 1, 25 do print('info ' .. _ .. ' ' .. k) "
                             "write_warning('warn ' .. _ .. ' ' .. k) end "
                             "write_error('err ' .. _) write_verbose('verbose') "
                             "write_debug('debug') io.stdout:write('stray ', _, '\\n') "
                             "io.stdout:flush() os.execute('echo child') return _"),
                        NULL);
    assert_int_equal(r.status, 0);
    /* stdout: 40 records and nothing else. */
    assert_int_equal(count_lines(r.out), 40);
    for (const char *p = r.out; *p; p = strchr(p, '\n') + 1)
        assert_memory_equal(p, "{\"index\":", 9);
    /* stderr: every line is one whole record of one item. */
    size_t info = 0, warn = 0, err = 0, stray = 0, child = 0;
    for (char *line = r.err; *line;) {
        char *nl = strchr(line, '\n');
        assert_non_null(nl);
        *nl = '\0';
        int item, k, used = 0;
        if (sscanf(line, "info %d %d%n", &item, &k, &used) == 2 && !line[used])
            info++;
        else if (sscanf(line, "WARNING: warn %d %d%n", &item, &k, &used) == 2 && !line[used])
            warn++;
        else if (sscanf(line, "ERROR: err %d%n", &item, &used) == 1 && !line[used])
            err++;
        else if (sscanf(line, "stray %d%n", &item, &used) == 1 && !line[used])
            stray++;
        else if (strcmp(line, "child") == 0)
            child++;
        else
            fail_msg("unexpected line on stderr: '%s'", line);
        line = nl + 1;
    }
    assert_int_equal(info, 40 * 25);
    assert_int_equal(warn, 40 * 25);
    assert_int_equal(err, 40);
    assert_int_equal(stray, 40);
    assert_int_equal(child, 40);
    done(&r);
}

/* With the progress bar on a terminal, a stream line erases the bar first (no line starts
 * after its text), and the bar comes back below it. */
static void test_foreach_stream_with_bar(void **state)
{
    (void)state;
    int master = posix_openpt(O_RDWR | O_NOCTTY);
    assert_true(master >= 0);
    assert_int_equal(grantpt(master), 0);
    assert_int_equal(unlockpt(master), 0);
    how h = {.limit = 60, .stderr_path = ptsname(master)};
    proc_result r = run_how(ARGV("foreach", "--range", "1..30", "-j", "2", "--progress",
                                 "sleep(0.01) write_warning('w' .. _) return _"),
                            &h);
    assert_int_equal(r.status, 0);
    assert_int_equal(count_lines(r.out), 30);
    char tty[65536];
    size_t n = 0;
    fcntl(master, F_SETFL, O_NONBLOCK);
    for (ssize_t got; n < sizeof tty - 1 && (got = read(master, tty + n, sizeof tty - 1 - n)) > 0;)
        n += (size_t)got;
    close(master);
    tty[n] = '\0';
    size_t warnings = 0;
    bool bar_seen = false;
    for (char *line = tty; *line;) {
        char *nl = strchr(line, '\n');
        if (!nl)
            break; /* the last bar, erased: no newline */
        *nl = '\0';
        char *w = strstr(line, "WARNING: w");
        if (w) {
            warnings++;
            /* What precedes it on its line was erased: nothing, or a bar and "\r\033[K". */
            if (w != line && !(w - line >= 4 && memcmp(w - 4, "\r\033[K", 4) == 0))
                fail_msg("a warning after other text on its line: '%s'", line);
            int item, used = 0;
            assert_int_equal(sscanf(w, "WARNING: w%d%n", &item, &used), 1);
            assert_true(w[used] == '\r' || w[used] == '\0'); /* the terminal's CR LF */
        }
        bar_seen = bar_seen || strstr(line, "foreach [") != NULL;
        line = nl + 1;
    }
    assert_int_equal(warnings, 30);
    assert_true(bar_seen);
    done(&r);
}

/* ---- text for terminals, and options that agree ---------------------------------------------- */

/* A newline or escape bytes in an error, an input or an output cannot break a table row or
 * reach a terminal as control sequences; nor can they in raw format's messages on stderr. */
static void test_terminal_safe_text(void **state)
{
    (void)state;
    proc_result r = cli(ARGV("foreach", "--format", "table",
                             "if _ == 'ok' then return '\\127\\194\\155' end "
                             "error('two\\nlines \\27[31mred\\t', 0)"),
                        "\x1b[2Jx\nok\n");
    assert_int_equal(r.status, 1);
    assert_int_equal(count_lines(r.out), 3); /* the heading and one line per record */
    assert_null(strchr(r.out, '\x1b'));
    assert_null(strchr(r.out, '\x7f'));
    assert_null(strstr(r.out, "\xc2\x9b"));
    assert_contains(r.out, "two\\nlines \\x1B[31mred\\t\n");
    assert_contains(r.out, "\\x1B[2Jx");
    assert_contains(r.out, "[\"\\u007f\\u009b\"]\n");
    done(&r);
    r = cli(ARGV("foreach", "error('title \\27]0;pwned\\7 \\194\\155 end', 0)"), "a\rb\n");
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err,
                        "runspace: input 'a\\rb': error: title \\x1B]0;pwned\\x07 \\u{9B} end\n");
    done(&r);
}

/* run keeps the order a script wrote in on stdout, io.write and print alike, as lua5.4 does,
 * into a pipe; outputs come after what was written before them. */
static void test_run_write_order(void **state)
{
    (void)state;
    proc_result r =
        cli(ARGV("run", "io.write('a ') print('b') io.write('c\\n') print('d') io.write('e ') "
                        "return 1"),
            NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "a b\nc\nd\ne 1\n");
    done(&r);
    /* foreach still keeps a script's io.write off the records on stdout. */
    r = cli(ARGV("foreach", "--format", "jsonl", "io.write('junk') print('p') return 1"), "x\n");
    assert_int_equal(r.status, 0);
    assert_true(strncmp(r.out, "{\"index\":0,", 11) == 0);
    assert_null(strstr(r.out, "junk"));
    assert_non_null(strstr(r.err, "junk"));
    done(&r);
}

/* run and foreach echo what a script prints as it comes and keep none of it: a million
 * lines run in a 16 MiB runspace as in lua5.4's constant memory (keeping them took about
 * 250 bytes of the limit per line, and the run failed with "the information records of this
 * run do not fit"). */
static void test_printing_runs_in_constant_memory(void **state)
{
    (void)state;
    char script[] = "for i = 1, 1000000 do print('x') end warn('@on') warn('w') "
                    "write_error('e') return 'end'";
    how h = {.limit = 240, .count_only = true};
    proc_result r = run_how(ARGV("run", "--memory-limit", "16M", script), &h);
    assert_string_equal(r.err, "WARNING: w\nERROR: e\n");
    assert_int_equal(r.status, 0);
    assert_int_equal(r.out_len, 2000000 + strlen("end\n"));
    done(&r);
    /* A failing script still says why and fails, after what it printed. */
    r = run_how(ARGV("run", "--memory-limit", "16M",
                     "for i = 1, 200000 do print('x') end "
                     "error('late')"),
                &h);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "runspace: script:1: late\n");
    assert_int_equal(r.out_len, 400000);
    done(&r);
    /* An item of foreach printing without end. */
    how hf = {.input = "1\n", .input_len = 2, .limit = 240, .count_only = true};
    r = run_how(ARGV("foreach", "--memory-limit", "16M", "--format", "jsonl",
                     "for i = 1, 1000000 do print('x') end return _"),
                &hf);
    assert_null(strstr(r.err, "do not fit"));
    assert_int_equal(r.status, 0);
    assert_int_equal(line_count(r.err), 1000000); /* foreach shows print on stderr */
    assert_true(r.out_len > 0);
    done(&r);
}

/* run sets the global arg as lua5.4 does: -f FILE gives arg[0] = FILE, arg[-1] = the
 * program and arg[1..n] = the arguments, which are `...` too; an inline script has the
 * program at arg[0], as `lua5.4 -e` has the interpreter. */
static void test_run_arg_table(void **state)
{
    (void)state;
    char path[] = "/tmp/rs_arg_XXXXXX.lua";
    write_temp_lua(path, "print(#arg, arg[0], arg[-1], arg[1], arg[2], arg[3], ...)");
    proc_result r = cli(ARGV("run", "-f", path, "a", "b c"), NULL);
    assert_int_equal(r.status, 0);
    char *want = NULL;
    assert_true(asprintf(&want, "2\t%s\t%s\ta\tb c\tnil\ta\tb c\n", path, RS_CLI) > 0);
    assert_string_equal(r.out, want);
    free(want);
    done(&r);
    r = cli(ARGV("run", "-f", path), NULL);
    assert_int_equal(r.status, 0);
    assert_true(asprintf(&want, "0\t%s\t%s\tnil\tnil\tnil\n", path, RS_CLI) > 0);
    assert_string_equal(r.out, want);
    free(want);
    done(&r);
    unlink(path);
    r = cli(ARGV("run", "print(#arg, arg[0], arg[-1], arg[1], arg[2], ...)", "x", "y"), NULL);
    assert_int_equal(r.status, 0);
    assert_true(asprintf(&want, "2\t%s\tnil\tx\ty\tx\ty\n", RS_CLI) > 0);
    assert_string_equal(r.out, want);
    free(want);
    done(&r);
    /* A --var arg replaces it; the restricted profile has it too. */
    r = cli(ARGV("run", "--var", "arg=[7]", "return arg[1]"), NULL);
    assert_string_equal(r.out, "7\n");
    done(&r);
    r = cli(ARGV("run", "--restricted", "return arg[1]", "z"), NULL);
    assert_string_equal(r.out, "z\n");
    done(&r);
}

/* An error object that is a number shows as its text (lua.c's rule), in run and in
 * for-each's records. */
static void test_number_error_object(void **state)
{
    (void)state;
    proc_result r = cli(ARGV("run", "error(42)"), NULL);
    assert_int_equal(r.status, 1);
    assert_string_equal(r.err, "runspace: 42\n");
    done(&r);
    r = cli(ARGV("foreach", "--format", "jsonl", "error(42)"), "x\n");
    assert_non_null(strstr(r.out, "\"error\":\"42\""));
    done(&r);
}

/* run -f FILE of a binary chunk names the file. */
static void test_binary_chunk_named(void **state)
{
    (void)state;
    char path[] = "/tmp/rs_binary_XXXXXX.lua";
    write_temp_lua(path, "\x1bLua\x54\x00 not really");
    proc_result r = cli(ARGV("run", "-f", path), NULL);
    assert_int_equal(r.status, 2);
    char want[256];
    snprintf(want, sizeof want, "runspace: %s: attempt to load a binary chunk (mode is 't')\n",
             path);
    assert_string_equal(r.err, want);
    done(&r);
    r = cli(ARGV("foreach", "-f", path), "1\n");
    assert_int_equal(r.status, 2);
    assert_string_equal(r.err, want);
    done(&r);
    unlink(path);
}

/* --param refuses what --var refuses (built-in names) and, like --var, a name given twice;
 * --memory-limit too small to open a runspace is a usage error (2) in every command. */
static void test_options_agree(void **state)
{
    (void)state;
    struct {
        char *const *argv;
        const char *err;
    } cases[] = {
        {ARGV("foreach", "--param", "sleep=1", "return 1"), "runspace: 'sleep' is a runspace "
                                                            "built-in\n"},
        {ARGV("run", "--param", "emit=1", "return 1"), "runspace: 'emit' is a runspace built-in\n"},
        {ARGV("foreach", "--var", "shared=1", "return 1"), "runspace: 'shared' is a runspace "
                                                           "built-in\n"},
        {ARGV("foreach", "--param", "a=1", "--param", "a=2", "return 1"),
         "runspace: 'a' is already given as a parameter\n"},
        {ARGV("run", "--param", "a=1", "--param", "a=2", "return 1"),
         "runspace: 'a' is already given as a parameter\n"},
        {ARGV("foreach", "--var", "a=1", "--var", "a=2", "return 1"),
         "runspace: 'a' is already defined in the session state\n"},
        {ARGV("foreach", "--memory-limit", "1K", "--range", "1..1", "return 1"),
         "runspace: cannot open a runspace within a memory limit of 1024 bytes\n"},
        {ARGV("run", "--memory-limit", "1K", "return 1"),
         "runspace: cannot open a runspace within a memory limit of 1024 bytes\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proc_result r = cli(cases[i].argv, "x\n");
        if (r.status != 2)
            fail_msg("%s %s %s: exit %d", cases[i].argv[1], cases[i].argv[2], cases[i].argv[3],
                     r.status);
        assert_string_equal(r.err, cases[i].err);
        done(&r);
    }
    /* A parameter that is not an identifier is still one (params["a-b"]). */
    proc_result r = cli(ARGV("run", "--param", "a-b=3", "return params['a-b']"), NULL);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.out, "3\n");
    done(&r);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_help_and_version),
    cmocka_unit_test(test_foreach_raw_lines),
    cmocka_unit_test(test_foreach_range_and_jsonl),
    cmocka_unit_test(test_foreach_json_input),
    cmocka_unit_test(test_foreach_csv_and_table),
    cmocka_unit_test(test_foreach_params_vars_modules_file),
    cmocka_unit_test(test_foreach_usage_errors),
    cmocka_unit_test(test_foreach_compile_error),
    cmocka_unit_test(test_script_file_as_lua_reads_it),
    cmocka_unit_test(test_run_finalizer_prints_at_close),
    cmocka_unit_test(test_exec_not_on_redis),
    cmocka_unit_test(test_run_max_instructions),
    cmocka_unit_test(test_foreach_missing_input_file),
    cmocka_unit_test(test_foreach_timeout),
    cmocka_unit_test(test_foreach_sigint),
    cmocka_unit_test(test_foreach_closed_pipe),
    cmocka_unit_test(test_foreach_range_at_int64_max),
    cmocka_unit_test(test_foreach_sigint_while_input_is_silent),
    cmocka_unit_test(test_one_record_per_input),
    cmocka_unit_test(test_summary),
    cmocka_unit_test(test_run),
    cmocka_unit_test(test_demo),
    cmocka_unit_test(test_progress_bar),
    cmocka_unit_test(test_scan),
    cmocka_unit_test(test_scan_usage_errors),
    cmocka_unit_test(test_closed_stdin),
    cmocka_unit_test(test_closed_stdout),
    cmocka_unit_test(test_full_stdout),
    cmocka_unit_test(test_input_read_errors),
    cmocka_unit_test(test_input_line_too_long),
    cmocka_unit_test(test_tiny_timeouts),
    cmocka_unit_test(test_duration_usage_errors),
    cmocka_unit_test(test_strict_values),
    cmocka_unit_test(test_scan_targets_file_errors),
    cmocka_unit_test(test_scan_targets_file_sigint),
    cmocka_unit_test(test_unrepresentable_values),
    cmocka_unit_test(test_usage_errors_after_values),
    cmocka_unit_test(test_script_file_endless),
    cmocka_unit_test(test_sigint_during_setup),
    cmocka_unit_test(test_nonblocking_stdout),
    cmocka_unit_test(test_error_text_repaired),
    cmocka_unit_test(test_exec_replacement_strings),
    cmocka_unit_test(test_exec_failures),
    cmocka_unit_test(test_exec_timeout_kills_the_group),
    cmocka_unit_test(test_exec_joblog_resume),
    cmocka_unit_test(test_exec_in_scripts),
    cmocka_unit_test(test_inputs_and_separators),
    cmocka_unit_test(test_terminal_input_notice),
    cmocka_unit_test(test_messages),
    cmocka_unit_test(test_max_instructions),
    cmocka_unit_test(test_records_keep_their_shape),
    cmocka_unit_test(test_huge_record_memory),
    cmocka_unit_test(test_interrupt_with_stuck_reader),
    cmocka_unit_test(test_foreach_stream_records),
    cmocka_unit_test(test_foreach_stream_with_bar),
    cmocka_unit_test(test_terminal_safe_text),
    cmocka_unit_test(test_binary_chunk_named),
    cmocka_unit_test(test_run_write_order),
    cmocka_unit_test(test_printing_runs_in_constant_memory),
    cmocka_unit_test(test_run_arg_table),
    cmocka_unit_test(test_number_error_object),
    cmocka_unit_test(test_options_agree),
};

RS_TEST_MAIN(tests)
