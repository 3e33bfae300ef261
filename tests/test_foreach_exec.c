/*
 * test_foreach_exec.c -- external commands per item through the C API (rs_foreach_set_exec):
 * templates refused before anything runs, the sequence number across batches and retries,
 * outputs and errors of each item, a missing command, a timeout and a stop that kill the
 * command's process group, and the shell's quoting.
 */
#include "util.h"

#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <unistd.h>

/* The inputs: n strings "0".."n-1", or the strings of a list. */
typedef struct source {
    long n, next;
    const char *const *list;
} source;

static int next_item(void *ud, rs_value **item, char **error)
{
    (void)error;
    source *s = ud;
    if (s->next >= s->n)
        return 0;
    long i = s->next++;
    char text[32];
    snprintf(text, sizeof text, "%ld", i);
    *item = rs_value_string(s->list ? s->list[i] : text);
    return 1;
}

/* Each record as one line "index status output-json error", by index. */
typedef struct sink {
    long n;
    char **lines;
    long count;
    long status[4];
} sink;

static void on_record(const rs_foreach_record *r, void *ud)
{
    sink *k = ud;
    assert_true((long)r->index < k->n);
    assert_null(k->lines[r->index]);
    char *out = json_of(r->output);
    size_t len = strlen(out) + (r->error ? strlen(r->error) : 0) + 64;
    k->lines[r->index] = malloc(len);
    snprintf(k->lines[r->index], len, "%s %s %s", rs_item_status_name(r->status), out,
             r->error ? r->error : "-");
    rs_free(out);
    k->count++;
    k->status[r->status]++;
}

typedef struct run_result {
    int rc;
    sink k;
    double seconds;
} run_result;

/* Runs tmpl over the source with opts (next, on_record and userdata are set here). */
static run_result run_exec(const char *tmpl, unsigned flags, rs_foreach_opts o, source *src)
{
    run_result res = {0};
    res.k.n = src->n;
    res.k.lines = calloc((size_t)src->n + 1, sizeof *res.k.lines);
    o.next = next_item;
    o.input_userdata = src;
    o.on_record = on_record;
    o.userdata = &res.k;
    rs_foreach *fe = NULL;
    assert_ok(rs_foreach_create(&o, &fe));
    int rc = rs_foreach_set_exec(fe, tmpl, flags);
    if (rc)
        fail_msg("set_exec(%s): %s", tmpl, rs_foreach_errmsg(fe));
    double t0 = rs_test_now();
    res.rc = rs_foreach_run(fe, NULL);
    res.seconds = rs_test_now() - t0;
    assert_int_equal(rs_foreach_destroy(fe), 0);
    assert_int_equal(res.k.count, src->n);
    return res;
}

static void free_result(run_result *r)
{
    for (long i = 0; i < r->k.n; i++)
        free(r->k.lines[i]);
    free(r->k.lines);
}

static void test_templates_refused(void **state)
{
    (void)state;
    source src = {.n = 1};
    rs_foreach_opts o = {.next = next_item, .input_userdata = &src, .throttle = 1};
    rs_foreach *fe = NULL;
    assert_ok(rs_foreach_create(&o, &fe));
    struct {
        const char *tmpl;
        unsigned flags;
        const char *message;
    } bad[] = {
        {"", 0, "the command template is empty"},
        {" \t", RS_EXEC_SHELL, "the command template is empty"},
        {"echo {1}", 0, "unknown replacement string '{1}'"},
        {"echo {+/}", RS_EXEC_SHELL, "unknown replacement string '{+/}'"},
        {"echo 'a", 0, "unterminated ' quote"},
        {"echo \"a", 0, "unterminated \" quote"},
        {"echo \\", 0, "ends with a backslash"},
        {"echo", 4, "invalid argument"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(rs_foreach_set_exec(fe, bad[i].tmpl, bad[i].flags), RS_EINVAL);
        assert_contains(rs_foreach_errmsg(fe), bad[i].message);
    }
    assert_int_equal(rs_foreach_set_exec(fe, NULL, 0), RS_EINVAL);
    assert_int_equal(rs_foreach_set_exec(NULL, "echo", 0), RS_EMISUSE);
    /* Braces that are not replacement strings are literal. */
    assert_ok(rs_foreach_set_exec(fe, "awk '{print $1}' {x} {}", 0));
    assert_int_equal(rs_foreach_destroy(fe), 0);
}

static void test_outputs_and_sequence(void **state)
{
    (void)state;
    /* Small batches, two runspaces, in completion order: {#} is index + 1 whatever batch an
     * item is in; each stdout line is an output. */
    source src = {.n = 200};
    run_result r = run_exec("sh -c 'echo $0; echo $1' {} {#}", 0,
                            (rs_foreach_opts){.throttle = 2, .batch = 3}, &src);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.k.status[RS_ITEM_OK], 200);
    for (long i = 0; i < 200; i++) {
        char want[64];
        snprintf(want, sizeof want, "ok [\"%ld\",\"%ld\"] -", i, i + 1);
        assert_string_equal(r.k.lines[i], want);
    }
    free_result(&r);
}

static void test_failures_and_retries(void **state)
{
    (void)state;
    static const char *const list[] = {"0", "7", "kill"};
    source src = {.n = 3, .list = list};
    run_result r = run_exec("sh -c 'test $0 = kill && kill -KILL $$; echo oops >&2; exit $0' {}", 0,
                            (rs_foreach_opts){.throttle = 2, .retries = 1, .ordered = true}, &src);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.k.lines[0], "ok [] -");
    assert_string_equal(r.k.lines[1], "error [] sh: exit code 7: oops");
    assert_string_equal(r.k.lines[2], "error [] sh: killed by signal 9 (SIGKILL)");
    free_result(&r);
    /* A command that is not there: every item is an error record. */
    src = (source){.n = 5};
    r = run_exec("rs-no-such-command-here {}", 0, (rs_foreach_opts){.throttle = 2}, &src);
    assert_int_equal(r.k.status[RS_ITEM_ERROR], 5);
    assert_string_equal(r.k.lines[4], "error [] rs-no-such-command-here: command not found");
    free_result(&r);
}

static void test_shell_quoting(void **state)
{
    (void)state;
    static const char *const list[] = {"it's", "$(echo pwned)", "a b;c", "`x`"};
    source src = {.n = 4, .list = list};
    run_result r = run_exec("printf '%s|' {} {/}; echo", RS_EXEC_SHELL,
                            (rs_foreach_opts){.ordered = true}, &src);
    assert_int_equal(r.rc, 0);
    assert_string_equal(r.k.lines[0], "ok [\"it's|it's|\"] -");
    assert_string_equal(r.k.lines[1], "ok [\"$(echo pwned)|$(echo pwned)|\"] -");
    assert_string_equal(r.k.lines[2], "ok [\"a b;c|a b;c|\"] -");
    assert_string_equal(r.k.lines[3], "ok [\"`x`|`x`|\"] -");
    free_result(&r);
}

static void test_timeout_kills_the_group(void **state)
{
    (void)state;
    /* The command's background child holds the outputs open: a timeout that killed only the
     * command would leave the wait to the child's 10 s. */
    source src = {.n = 4};
    run_result r = run_exec("sh -c 'sleep 10 & sleep 10' {}", 0,
                            (rs_foreach_opts){.throttle = 2, .timeout = 0.2}, &src);
    assert_int_equal(r.rc, 0);
    assert_int_equal(r.k.status[RS_ITEM_TIMEOUT], 4);
    assert_true(r.seconds < 5);
    free_result(&r);
}

typedef struct stopper {
    rs_foreach *fe;
    double after;
} stopper;

static void *stop_later(void *arg)
{
    stopper *s = arg;
    sleep_for(s->after);
    rs_foreach_stop(s->fe);
    return NULL;
}

static void test_stop_kills_the_group(void **state)
{
    (void)state;
    source src = {.n = 6};
    sink k = {.n = 6, .lines = calloc(7, sizeof(char *))};
    rs_foreach_opts o = {.throttle = 2,
                         .next = next_item,
                         .input_userdata = &src,
                         .on_record = on_record,
                         .userdata = &k};
    rs_foreach *fe = NULL;
    assert_ok(rs_foreach_create(&o, &fe));
    assert_ok(rs_foreach_set_exec(fe, "sh -c 'sleep 10 & sleep 10' {}", 0));
    stopper s = {.fe = fe, .after = 0.3};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_later, &s), 0);
    double t0 = rs_test_now();
    assert_int_equal(rs_foreach_run(fe, NULL), RS_ESTOPPED);
    assert_true(rs_test_now() - t0 < 5);
    pthread_join(t, NULL);
    assert_int_equal(k.count, 6);
    assert_int_equal(k.status[RS_ITEM_CANCELLED], 6);
    assert_contains(k.lines[0], "the run was stopped before this item finished");
    assert_int_equal(rs_foreach_destroy(fe), 0);
    for (int i = 0; i < 6; i++)
        free(k.lines[i]);
    free(k.lines);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_templates_refused),       cmocka_unit_test(test_outputs_and_sequence),
    cmocka_unit_test(test_failures_and_retries),    cmocka_unit_test(test_shell_quoting),
    cmocka_unit_test(test_timeout_kills_the_group), cmocka_unit_test(test_stop_kills_the_group),
};

RS_TEST_MAIN(tests)
