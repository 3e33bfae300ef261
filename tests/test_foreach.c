/*
 * test_foreach.c -- the parallel for-each engine: one record per input in every mode, order,
 * errors, timeouts, retries, fail-fast, stop, unreadable inputs, bounded read-ahead, progress.
 */
#include "util.h"

#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>
#include <stdatomic.h>

/* An input of n integers 0..n-1; `bad` marks indexes that cannot be read (-1: none). */
typedef struct source {
    long n;
    long next;
    long bad_every; /* every k-th input is unreadable; 0: none */
    atomic_long read;
    atomic_long delivered;
    long max_ahead; /* largest read - delivered seen by the iterator */
} source;

static int next_int(void *ud, rs_value **item, char **error)
{
    source *s = ud;
    if (s->next >= s->n)
        return 0;
    long i = s->next++;
    long ahead = atomic_load(&s->read) - atomic_load(&s->delivered);
    if (ahead > s->max_ahead)
        s->max_ahead = ahead;
    atomic_fetch_add(&s->read, 1);
    if (s->bad_every && i % s->bad_every == s->bad_every - 1) {
        *item = rs_value_string("garbage");
        *error = strdup("line is not valid input");
        return RS_EJSON;
    }
    *item = rs_value_int(i);
    return 1;
}

/* Collects records: one per index, checked. */
typedef struct sink {
    source *src;
    long n;
    unsigned char *seen;
    long count;
    long status[4];
    long last_index;
    bool in_order;
    long bad_output;
    long attempts2;
    char first_error[256];
    long progress_calls;
    uint64_t progress_done;
    void *user; /* a test's own */
} sink;

static void on_record(const rs_foreach_record *r, void *ud)
{
    sink *k = ud;
    atomic_fetch_add(&k->src->delivered, 1);
    if ((long)r->index >= k->n || k->seen[r->index]++)
        fail_msg("record for index %llu delivered twice or out of range",
                 (unsigned long long)r->index);
    if ((long)r->index < k->last_index)
        k->in_order = false;
    k->last_index = (long)r->index;
    k->count++;
    k->status[r->status]++;
    if (r->attempts == 2)
        k->attempts2++;
    if (r->status == RS_ITEM_OK) {
        int64_t x = rs_value_get_int(r->input);
        if (rs_array_len(r->output) != 1 || rs_value_get_int(rs_array_get(r->output, 0)) != x * x)
            k->bad_output++;
        if (r->error)
            k->bad_output++;
    } else {
        assert_non_null(r->error);
        assert_int_equal(rs_array_len(r->output), 0);
        if (!k->first_error[0])
            snprintf(k->first_error, sizeof k->first_error, "%s", r->error);
    }
}

static void on_progress(const rs_foreach_progress *p, void *ud)
{
    sink *k = ud;
    k->progress_calls++;
    k->progress_done = p->done;
}

static void sink_init(sink *k, source *src)
{
    memset(k, 0, sizeof *k);
    k->src = src;
    k->n = src->n;
    k->seen = calloc((size_t)src->n + 1, 1);
    k->in_order = true;
    k->last_index = -1;
}

static void assert_all_once(sink *k)
{
    assert_int_equal(k->count, k->n);
    for (long i = 0; i < k->n; i++) {
        if (k->seen[i] != 1)
            fail_msg("index %ld has %d records", i, k->seen[i]);
    }
}

/* A run of script over src's integers, its records checked into k. */
static rs_foreach *make_run(const char *script, source *src, sink *k, rs_foreach_opts o)
{
    o.next = next_int;
    o.input_userdata = src;
    o.on_record = on_record;
    o.on_progress = on_progress;
    o.userdata = k;
    rs_foreach *fe;
    assert_ok(rs_foreach_create(&o, &fe));
    assert_ok(rs_foreach_set_script(fe, script, (size_t)-1));
    return fe;
}

/* Runs script over n integers with the given options; returns the run's code. */
static int run(const char *script, source *src, sink *k, rs_foreach_opts o, rs_foreach_summary *sum)
{
    rs_foreach *fe = make_run(script, src, k, o);
    int rc = rs_foreach_run(fe, sum);
    assert_ok(rs_foreach_destroy(fe));
    return rc;
}

static void test_squares_completion_order(void **state)
{
    (void)state;
    source src = {.n = 20000};
    sink k;
    sink_init(&k, &src);
    rs_foreach_summary sum;
    assert_ok(run("return _ * _", &src, &k, (rs_foreach_opts){.throttle = 2}, &sum));
    assert_all_once(&k);
    assert_int_equal(k.bad_output, 0);
    assert_int_equal(sum.total, 20000);
    assert_int_equal(sum.succeeded, 20000);
    assert_true(sum.success_rate == 100.0);
    assert_int_equal(k.progress_done, 20000);
    assert_true(k.progress_calls > 0);
    free(k.seen);
}

static void test_ordered(void **state)
{
    (void)state;
    source src = {.n = 5000};
    sink k;
    sink_init(&k, &src);
    /* Items take uneven time so completion order would differ. */
    assert_ok(run("if _ % 97 == 0 then sleep(0.002) end return _ * _", &src, &k,
                  (rs_foreach_opts){.throttle = 3, .ordered = true}, NULL));
    assert_all_once(&k);
    assert_true(k.in_order);
    assert_int_equal(k.bad_output, 0);
    free(k.seen);
}

static void test_errors_are_records(void **state)
{
    (void)state;
    source src = {.n = 1000};
    sink k;
    sink_init(&k, &src);
    rs_foreach_summary sum;
    assert_ok(run("if _ % 10 == 3 then error('bad item ' .. _) end return _ * _", &src, &k,
                  (rs_foreach_opts){.throttle = 2}, &sum));
    assert_all_once(&k);
    assert_int_equal(k.status[RS_ITEM_ERROR], 100);
    assert_int_equal(k.status[RS_ITEM_OK], 900);
    assert_int_equal(sum.failed, 100);
    assert_true(sum.success_rate == 90.0);
    assert_contains(k.first_error, "script:1: bad item ");
    free(k.seen);
}

/* A script named as a file: its errors and debug information say the file's name, where an
 * unnamed one says "script"; a syntax error is refused with the name at once. */
static void test_named_script(void **state)
{
    (void)state;
    source src = {.n = 10};
    sink k;
    sink_init(&k, &src);
    rs_foreach_opts o = {.throttle = 2,
                         .next = next_int,
                         .input_userdata = &src,
                         .on_record = on_record,
                         .on_progress = on_progress,
                         .userdata = &k};
    rs_foreach *fe;
    assert_ok(rs_foreach_create(&o, &fe));
    assert_rs(RS_ESYNTAX, rs_foreach_set_script_named(fe, "\nreturn +", (size_t)-1, "jobs/a.lua"));
    assert_contains(rs_foreach_errmsg(fe), "jobs/a.lua:2: unexpected symbol");
    assert_rs(RS_EINVAL, rs_foreach_set_script_named(fe, "return 1", (size_t)-1, ""));
    assert_ok(rs_foreach_set_script_named(
        fe, "if _ == 3 then\n error(debug.getinfo(1, 'S').source .. ' three')\nend\nreturn _ * _",
        (size_t)-1, "jobs/a.lua"));
    rs_foreach_summary sum;
    assert_ok(rs_foreach_run(fe, &sum));
    assert_ok(rs_foreach_destroy(fe));
    assert_all_once(&k);
    assert_int_equal(k.status[RS_ITEM_ERROR], 1);
    assert_int_equal(k.bad_output, 0);
    assert_string_equal(k.first_error, "jobs/a.lua:2: @jobs/a.lua three");
    free(k.seen);
}

/* Stream records of the items, collected from worker threads. */
typedef struct streams {
    pthread_mutex_t mu;
    int info[200];
    int warnings;
    int errors;
    int unmatched;
} streams;

static void on_stream(uint64_t index, const rs_record *r, void *ud)
{
    sink *k = ud;
    streams *st = k->user;
    pthread_mutex_lock(&st->mu);
    char want[64];
    if (index >= 200) {
        st->unmatched++;
    } else if (r->stream == RS_STREAM_INFORMATION) {
        snprintf(want, sizeof want, "item\t%d", (int)index);
        if (strcmp(r->message, want) == 0)
            st->info[index]++;
        else
            st->unmatched++;
    } else if (r->stream == RS_STREAM_WARNING) {
        st->warnings += index % 50 == 7 && strcmp(r->message, "careful") == 0;
    } else if (r->stream == RS_STREAM_ERROR) {
        st->errors += index % 50 == 9 && strcmp(r->message, "soft") == 0;
    } else {
        st->unmatched++;
    }
    pthread_mutex_unlock(&st->mu);
}

/* Items' prints, warnings and non-terminating errors reach on_stream with their own input
 * index, from batches on worker threads; a terminating error is only the item's record. */
static void test_stream_records_of_items(void **state)
{
    (void)state;
    source src = {.n = 200};
    sink k;
    sink_init(&k, &src);
    streams st = {.mu = PTHREAD_MUTEX_INITIALIZER};
    k.user = &st;
    rs_foreach_summary sum;
    assert_ok(run("local i = _ print('item', i) "
                  "if i % 50 == 7 then write_warning('careful') end "
                  "if i % 50 == 9 then write_error('soft') end "
                  "if i == 123 then error('hard') end return _ * _",
                  &src, &k, (rs_foreach_opts){.throttle = 2, .on_stream = on_stream}, &sum));
    assert_all_once(&k);
    assert_int_equal(k.status[RS_ITEM_ERROR], 1);
    for (int i = 0; i < 200; i++) {
        if (st.info[i] != 1)
            fail_msg("item %d printed %d times", i, st.info[i]);
    }
    assert_int_equal(st.warnings, 4);
    assert_int_equal(st.errors, 4);
    assert_int_equal(st.unmatched, 0);
    free(k.seen);
}

static void test_timeouts(void **state)
{
    (void)state;
    source src = {.n = 40};
    sink k;
    sink_init(&k, &src);
    rs_foreach_summary sum;
    double t0 = rs_test_now();
    assert_ok(run("if _ % 10 == 5 then while true do end end return _ * _", &src, &k,
                  (rs_foreach_opts){.throttle = 2, .timeout = 0.2}, &sum));
    double took = rs_test_now() - t0;
    assert_all_once(&k);
    assert_int_equal(sum.timed_out, 4);
    assert_int_equal(sum.succeeded, 36);
    assert_string_equal(k.first_error, "timed out after 0.2 s");
    if (took > 5)
        fail_msg("4 timeouts of 0.2 s on 2 runspaces took %.2f s", took);
    free(k.seen);
}

static void test_retries(void **state)
{
    (void)state;
    source src = {.n = 300};
    sink k;
    sink_init(&k, &src);
    rs_foreach_summary sum;
    /* Every item fails on its first attempt only. */
    assert_ok(run("if shared.incr('tries' .. _) == 1 then error('flaky') end return _ * _", &src,
                  &k, (rs_foreach_opts){.throttle = 2, .retries = 2}, &sum));
    assert_all_once(&k);
    assert_int_equal(sum.succeeded, 300);
    assert_int_equal(k.attempts2, 300);
    assert_int_equal(k.bad_output, 0);
    free(k.seen);
}

static void test_fail_fast(void **state)
{
    (void)state;
    source src = {.n = 5000};
    sink k;
    sink_init(&k, &src);
    rs_foreach_summary sum;
    assert_ok(run("if _ == 100 then error('first failure') end sleep(0.0005) return _ * _", &src,
                  &k, (rs_foreach_opts){.throttle = 2, .fail_fast = true}, &sum));
    assert_all_once(&k); /* the rest of the input is read and reported cancelled */
    assert_int_equal(k.status[RS_ITEM_ERROR], 1);
    assert_true(k.status[RS_ITEM_CANCELLED] > 4000);
    assert_int_equal(sum.total, 5000);
    assert_int_equal(sum.cancelled, k.status[RS_ITEM_CANCELLED]);
    free(k.seen);
}

static void test_all_at_once(void **state)
{
    (void)state;
    /* Every input yields exactly one record with timeouts, retries and fail-fast combined. */
    source src = {.n = 100000, .bad_every = 997};
    sink k;
    sink_init(&k, &src);
    rs_foreach_summary sum;
    assert_ok(
        run("if _ == 77777 then while true do end end return _ * _", &src, &k,
            (rs_foreach_opts){
                .throttle = 2, .timeout = 0.1, .retries = 1, .fail_fast = true, .ordered = true},
            &sum));
    assert_all_once(&k);
    assert_true(k.in_order);
    assert_int_equal(sum.total, 100000);
    assert_int_equal(k.bad_output, 0);
    assert_true(k.status[RS_ITEM_ERROR] >= 1); /* the unreadable input before 77777 at least */
    free(k.seen);
}

static void test_unreadable_inputs(void **state)
{
    (void)state;
    source src = {.n = 1000, .bad_every = 100};
    sink k;
    sink_init(&k, &src);
    rs_foreach_summary sum;
    assert_ok(run("return _ * _", &src, &k, (rs_foreach_opts){.throttle = 2}, &sum));
    assert_all_once(&k);
    assert_int_equal(k.status[RS_ITEM_ERROR], 10);
    assert_string_equal(k.first_error, "line is not valid input");
    assert_int_equal(k.bad_output, 0);
    free(k.seen);
}

static void test_read_ahead_is_bounded(void **state)
{
    (void)state;
    /* A million inputs with a slow consumer of records: the engine must not read far ahead. */
    source src = {.n = 200000};
    sink k;
    sink_init(&k, &src);
    assert_ok(
        run("return _ * _", &src, &k, (rs_foreach_opts){.throttle = 2, .ordered = true}, NULL));
    assert_all_once(&k);
    /* 4 slots x 4096 items in flight, the ring, and the reorder window: far below the input. */
    if (src.max_ahead > 100000)
        fail_msg("read %ld inputs ahead of delivery", src.max_ahead);
    free(k.seen);
}

static void test_syntax_error_reads_nothing(void **state)
{
    (void)state;
    source src = {.n = 10};
    rs_foreach *fe;
    rs_foreach_opts o = {.next = next_int, .input_userdata = &src};
    assert_ok(rs_foreach_create(&o, &fe));
    assert_rs(RS_ESYNTAX, rs_foreach_set_script(fe, "return _ *", (size_t)-1));
    assert_string_equal(rs_foreach_errmsg(fe), "script:1: unexpected symbol near <eof>");
    assert_rs(RS_EINVAL, rs_foreach_run(fe, NULL)); /* nothing to run */
    assert_int_equal(src.next, 0);
    assert_ok(rs_foreach_destroy(fe));
    assert_rs(RS_EINVAL, rs_foreach_create(&(rs_foreach_opts){0}, &fe));
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

static void test_stop(void **state)
{
    (void)state;
    source src = {.n = 1000000};
    sink k;
    sink_init(&k, &src);
    rs_foreach *fe = make_run("if _ % 100 == 0 then sleep(0.01) end return _ * _", &src, &k,
                              (rs_foreach_opts){.throttle = 2});
    stopper st = {fe, 0.2};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_later, &st), 0);
    double t0 = rs_test_now();
    rs_foreach_summary sum;
    assert_rs(RS_ESTOPPED, rs_foreach_run(fe, &sum));
    assert_true(rs_test_now() - t0 < 5);
    pthread_join(t, NULL);
    /* Everything read got a record, and reading stopped. */
    assert_int_equal(k.count, src.next);
    assert_true(src.next < 1000000);
    for (long i = 0; i < src.next; i++)
        assert_int_equal(k.seen[i], 1);
    assert_int_equal(sum.total, (uint64_t)src.next);
    assert_ok(rs_foreach_destroy(fe));
    free(k.seen);
}

static void test_stop_before_and_at_start(void **state)
{
    (void)state;
    /* A stop requested before the run ends that run at once; the next run is not affected. */
    source src = {.n = 1000};
    sink k;
    sink_init(&k, &src);
    rs_foreach *fe = make_run("return _ * _", &src, &k, (rs_foreach_opts){.throttle = 2});
    /* Ended at once: not one input is read (many times, since the reader races the run). */
    for (int round = 0; round < 2000; round++) {
        assert_ok(rs_foreach_stop(fe));
        rs_foreach_summary sum;
        assert_rs(RS_ESTOPPED, rs_foreach_run(fe, &sum));
        if (src.next != 0)
            fail_msg("round %d: a run stopped before it began read %ld inputs", round, src.next);
        assert_int_equal(k.count, 0);
        assert_int_equal(sum.total, 0);
    }
    /* The next run is not affected. */
    assert_ok(rs_foreach_run(fe, NULL));
    assert_int_equal(src.next, 1000);
    assert_all_once(&k);
    assert_ok(rs_foreach_destroy(fe));
    free(k.seen);
    /* Stops racing the start of runs, many times. */
    for (int round = 0; round < 50; round++) {
        source s2 = {.n = 100000};
        sink k2;
        sink_init(&k2, &s2);
        fe = make_run("return _ * _", &s2, &k2, (rs_foreach_opts){.throttle = 2});
        stopper st = {fe, 0.0005 * (round % 5)};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, stop_later, &st), 0);
        int rc = rs_foreach_run(fe, NULL);
        pthread_join(t, NULL);
        assert_true(rc == 0 || rc == RS_ESTOPPED);
        assert_int_equal(k2.count, s2.next);
        assert_ok(rs_foreach_destroy(fe));
        free(k2.seen);
    }
}

/* An iterator that blocks on a pipe nobody writes to, until a stop: it waits on the stop
 * descriptor as rs_input_fn's contract asks. */
typedef struct blocking_input {
    rs_foreach *fe;
    int fd;
    int given;
} blocking_input;

static int next_blocking(void *ud, rs_value **item, char **error)
{
    (void)error;
    blocking_input *b = ud;
    if (b->given < 3) { /* three items first, then silence */
        *item = rs_value_int(b->given++);
        return 1;
    }
    struct pollfd p[2] = {{.fd = b->fd, .events = POLLIN},
                          {.fd = rs_foreach_stop_fd(b->fe), .events = POLLIN}};
    while (poll(p, 2, 30000) < 0)
        continue;
    return 0;
}

static void test_stop_reaches_blocked_iterator(void **state)
{
    (void)state;
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    blocking_input b = {.fd = fds[0]};
    rs_foreach_opts o = {.throttle = 2, .next = next_blocking, .input_userdata = &b};
    rs_foreach *fe;
    assert_ok(rs_foreach_create(&o, &fe));
    b.fe = fe;
    assert_ok(rs_foreach_set_script(fe, "return _", (size_t)-1));
    stopper st = {fe, 0.2};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_later, &st), 0);
    double t0 = rs_test_now();
    rs_foreach_summary sum;
    assert_rs(RS_ESTOPPED, rs_foreach_run(fe, &sum));
    double took = rs_test_now() - t0;
    pthread_join(t, NULL);
    if (took > 5)
        fail_msg("the stop took %.2f s to reach a blocked iterator", took);
    assert_int_equal(sum.total, 3);
    assert_ok(rs_foreach_destroy(fe));
    close(fds[0]);
    close(fds[1]);
}

/* sq(x): a native command, squaring. */
static int cmd_sq(rs_call *call, void *ud)
{
    (void)ud;
    int64_t x = rs_value_get_int(rs_call_input(call));
    int64_t bonus =
        rs_call_param(call, "Bonus") ? rs_value_get_int(rs_call_param(call, "Bonus")) : 0;
    return rs_call_emit(call, rs_value_int(x * x + bonus));
}

static void test_command_and_parameters(void **state)
{
    (void)state;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_RESTRICTED, &iss));
    assert_ok(rs_iss_add_command(iss, "sq", cmd_sq, NULL));
    source src = {.n = 500};
    sink k;
    sink_init(&k, &src);
    rs_foreach_opts o = {.throttle = 2,
                         .iss = iss,
                         .next = next_int,
                         .input_userdata = &src,
                         .on_record = on_record,
                         .userdata = &k};
    rs_foreach *fe;
    assert_ok(rs_foreach_create(&o, &fe));
    assert_ok(rs_iss_destroy(iss));
    assert_ok(rs_foreach_set_command(fe, "sq"));
    assert_ok(rs_foreach_add_parameter(fe, "Bonus", rs_value_int(0)));
    assert_ok(rs_foreach_run(fe, NULL));
    assert_all_once(&k);
    assert_int_equal(k.bad_output, 0);
    assert_ok(rs_foreach_destroy(fe));
    free(k.seen);
}

static void test_on_existing_pool_with_total(void **state)
{
    (void)state;
    rs_pool *pool;
    rs_pool_opts po = {.max_runspaces = 2};
    assert_ok(rs_pool_create(&po, &pool));
    assert_ok(rs_pool_open(pool));
    source src = {.n = 3000};
    sink k;
    sink_init(&k, &src);
    rs_foreach_summary sum;
    assert_ok(run("return _ * _", &src, &k, (rs_foreach_opts){.pool = pool, .total = 3000}, &sum));
    assert_all_once(&k);
    assert_int_equal(sum.succeeded, 3000);
    assert_ok(rs_pool_destroy(pool));
    free(k.seen);
}

/* Runs fe on a thread of its own and waits for it at most `limit` seconds, so that a run that
 * hangs fails the test with a message instead of blocking until CTest's timeout. */
typedef struct bounded_run {
    rs_foreach *fe;
    rs_foreach_summary *sum;
    int rc;
} bounded_run;

static void *bounded_main(void *arg)
{
    bounded_run *b = arg;
    b->rc = rs_foreach_run(b->fe, b->sum);
    return NULL;
}

static int run_bounded(rs_foreach *fe, rs_foreach_summary *sum, double limit, const char *what)
{
    bounded_run b = {.fe = fe, .sum = sum};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, bounded_main, &b), 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += (time_t)limit;
    if (pthread_timedjoin_np(t, NULL, &ts) != 0)
        fail_msg("%s: rs_foreach_run still running after %.0f s", what, limit);
    return b.rc;
}

/* One readable input, then `bad` unreadable ones. */
typedef struct good_then_bad {
    int bad;
    int next;
} good_then_bad;

static int next_good_then_bad(void *ud, rs_value **item, char **error)
{
    good_then_bad *g = ud;
    if (g->next > g->bad)
        return 0;
    if (g->next++ == 0) {
        *item = rs_value_int(7);
        return 1;
    }
    *error = strdup("not an input");
    return RS_EJSON;
}

/* Holds the run thread in the record of the first unreadable input (delivered while the
 * engine's lock is released) long enough for the readable input's batch to finish and for the
 * reader to reach the end: the batch's completion then comes while the run thread does not
 * wait, and it must still be seen. */
static void on_record_slow_first_error(const rs_foreach_record *r, void *ud)
{
    long *count = ud;
    if (r->index == 1)
        sleep_for(0.3);
    (*count)++;
}

static void test_completion_during_unreadable_delivery(void **state)
{
    (void)state;
    for (unsigned throttle = 1; throttle <= 3; throttle++) {
        good_then_bad g = {.bad = 2};
        long count = 0;
        rs_foreach_opts o = {.throttle = throttle,
                             .batch = 1,
                             .next = next_good_then_bad,
                             .input_userdata = &g,
                             .on_record = on_record_slow_first_error,
                             .userdata = &count};
        rs_foreach *fe;
        assert_ok(rs_foreach_create(&o, &fe));
        assert_ok(rs_foreach_set_script(fe, "return _", (size_t)-1));
        rs_foreach_summary sum;
        assert_ok(run_bounded(fe, &sum, 10,
                              "a batch finished while unreadable inputs were "
                              "delivered"));
        assert_int_equal(count, 3);
        assert_int_equal(sum.succeeded, 1);
        assert_int_equal(sum.failed, 2);
        assert_ok(rs_foreach_destroy(fe));
    }
}

/* An unreadable input, then the integers 1..n. */
typedef struct bad_then_ints {
    int n;
    int next;
} bad_then_ints;

static int next_bad_then_ints(void *ud, rs_value **item, char **error)
{
    bad_then_ints *b = ud;
    if (b->next > b->n)
        return 0;
    if (b->next++ == 0) {
        *error = strdup("not an input");
        return RS_EJSON;
    }
    *item = rs_value_int(b->next - 1);
    return 1;
}

typedef struct status_log {
    rs_item_status status[16];
    int attempts[16];
    uint64_t runspace[16];
    int records;
} status_log;

/* Records each index's status; the first record (the unreadable input, delivered before any
 * batch is formed) holds the run thread until the reader has read everything, so that the
 * next dispatch puts all the readable inputs into one batch. */
static void on_record_log(const rs_foreach_record *r, void *ud)
{
    status_log *l = ud;
    if (r->index == 0)
        sleep_for(0.3);
    if (r->index < 16) {
        l->status[r->index] = r->status;
        l->attempts[r->index] = r->attempts;
        l->runspace[r->index] = r->runspace_id;
    }
    l->records++;
}

static void test_fail_fast_stops_own_batch(void **state)
{
    (void)state;
    /* Item 1 fails for good (an error; a timeout) in a batch of 1..10: the items after it in
     * that batch never run, they are cancelled at once. */
    const char *scripts[] = {"if _ == 1 then error('first failure') end return _",
                             "if _ == 1 then while true do end end return _"};
    for (int v = 0; v < 2; v++) {
        bad_then_ints in = {.n = 10};
        status_log log = {0};
        rs_foreach_opts o = {.throttle = 1,
                             .batch = 10,
                             .fail_fast = true,
                             .timeout = v == 1 ? 0.1 : 0,
                             .next = next_bad_then_ints,
                             .input_userdata = &in,
                             .on_record = on_record_log,
                             .userdata = &log};
        rs_foreach *fe;
        assert_ok(rs_foreach_create(&o, &fe));
        assert_ok(rs_foreach_set_script(fe, scripts[v], (size_t)-1));
        rs_foreach_summary sum;
        assert_ok(run_bounded(fe, &sum, 20, "fail-fast"));
        assert_ok(rs_foreach_destroy(fe));
        assert_int_equal(log.records, 11);
        assert_int_equal(log.status[0], RS_ITEM_ERROR);
        assert_int_equal(log.status[1], v == 1 ? RS_ITEM_TIMEOUT : RS_ITEM_ERROR);
        assert_int_equal(log.attempts[1], 1);
        assert_true(log.runspace[1] != 0);
        for (int i = 2; i <= 10; i++) {
            if (log.status[i] != RS_ITEM_CANCELLED)
                fail_msg("script %d: item %d of the failing batch is %s, not cancelled", v, i,
                         rs_item_status_name(log.status[i]));
            /* They never started: no attempt, no runspace (as rs_foreach_record says). */
            assert_int_equal(log.attempts[i], 0);
            assert_int_equal(log.runspace[i], 0);
        }
        assert_int_equal(sum.cancelled, 9);
    }
}

/* A stopper that fires a little after the last record of a run: racing the run's end. */
typedef struct end_racer {
    rs_foreach *fe;
    atomic_int go; /* 1: the last record is out; -1: quit */
    long delay_ns;
} end_racer;

static void *race_the_end(void *arg)
{
    end_racer *e = arg;
    int go;
    while ((go = atomic_load(&e->go)) == 0)
        sched_yield();
    if (go < 0)
        return NULL;
    double until = rs_test_now() + (double)e->delay_ns * 1e-9;
    while (rs_test_now() < until)
        continue; /* a spin: a sleep this short would take far longer */
    rs_foreach_stop(e->fe);
    return NULL;
}

typedef struct last_record {
    source *src;
    end_racer *racer;
    long count;
    long trigger; /* the record count that starts the racer */
} last_record;

static void on_record_starts_racer(const rs_foreach_record *r, void *ud)
{
    (void)r;
    last_record *l = ud;
    atomic_fetch_add(&l->src->delivered, 1);
    if (++l->count == l->trigger)
        atomic_store(&l->racer->go, 1);
}

static void test_stop_racing_the_end_of_a_run(void **state)
{
    (void)state;
    /* A stop that comes as a run ends belongs either to that run or to the next: after the run,
     * the stop descriptor is readable exactly when the next run will be stopped at once (an
     * iterator that trusts the descriptor would otherwise end a run early, or block in a run
     * that waits for it). */
    unsigned seed = (unsigned)time(NULL);
    for (int round = 0; round < 400; round++) {
        source src = {.n = 20};
        end_racer racer = {.delay_ns = (long)(rand_r(&seed) % 30000)};
        atomic_init(&racer.go, 0);
        last_record l = {.src = &src, .racer = &racer, .trigger = src.n - rand_r(&seed) % 3};
        rs_foreach_opts o = {.throttle = 1,
                             .next = next_int,
                             .input_userdata = &src,
                             .on_record = on_record_starts_racer,
                             .userdata = &l};
        rs_foreach *fe;
        assert_ok(rs_foreach_create(&o, &fe));
        assert_ok(rs_foreach_set_script(fe, "return _", (size_t)-1));
        racer.fe = fe;
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, race_the_end, &racer), 0);
        int rc = run_bounded(fe, NULL, 20, "a run whose end a stop races");
        atomic_store(&racer.go, atomic_load(&racer.go) ? 1 : -1);
        pthread_join(t, NULL);
        assert_true(rc == 0 || rc == RS_ESTOPPED);
        struct pollfd p = {.fd = rs_foreach_stop_fd(fe), .events = POLLIN};
        bool readable = poll(&p, 1, 0) == 1;
        src = (source){.n = 5};
        l.count = 0;
        atomic_store(&racer.go, -1);
        int rc2 = run_bounded(fe, NULL, 20, "the run after a raced stop");
        if (readable != (rc2 == RS_ESTOPPED))
            fail_msg("round %d: stop descriptor %s after the run, but the next run returned %s",
                     round, readable ? "readable" : "not readable", rs_err_name(rc2));
        assert_int_equal(src.next, rc2 == RS_ESTOPPED ? 0 : 5);
        assert_ok(rs_foreach_destroy(fe));
    }
}

typedef struct attempts_log {
    int attempts[16];
    uint64_t runspace[16];
    rs_item_status status[16];
    int records;
} attempts_log;

/* Holds the run thread in the first record (the unreadable input) while the reader reads the
 * rest and a stop comes. */
static void on_record_attempts(const rs_foreach_record *r, void *ud)
{
    attempts_log *l = ud;
    if (r->index == 0)
        sleep_for(0.4);
    if (r->index < 16) {
        l->attempts[r->index] = r->attempts;
        l->runspace[r->index] = r->runspace_id;
        l->status[r->index] = r->status;
    }
    l->records++;
}

static void test_nothing_dispatched_after_a_stop(void **state)
{
    (void)state;
    /* A stop that comes while the run thread delivers records (its lock released) must keep
     * what was read from being dispatched: those inputs are cancelled without running. */
    bad_then_ints in = {.n = 10};
    attempts_log log = {0};
    rs_foreach_opts o = {.throttle = 1,
                         .batch = 10,
                         .next = next_bad_then_ints,
                         .input_userdata = &in,
                         .on_record = on_record_attempts,
                         .userdata = &log};
    rs_foreach *fe;
    assert_ok(rs_foreach_create(&o, &fe));
    assert_ok(rs_foreach_set_script(fe, "return _", (size_t)-1));
    stopper st = {fe, 0.15};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, stop_later, &st), 0);
    rs_foreach_summary sum;
    assert_rs(RS_ESTOPPED, run_bounded(fe, &sum, 20, "a stop during delivery"));
    pthread_join(t, NULL);
    assert_ok(rs_foreach_destroy(fe));
    assert_int_equal(log.records, 11);
    for (int i = 1; i <= 10; i++) {
        if (log.status[i] != RS_ITEM_CANCELLED || log.attempts[i] != 0 || log.runspace[i] != 0)
            fail_msg("input %d read before the stop: %s after %d attempts on runspace %llu", i,
                     rs_item_status_name(log.status[i]), log.attempts[i],
                     (unsigned long long)log.runspace[i]);
    }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_squares_completion_order),
    cmocka_unit_test(test_ordered),
    cmocka_unit_test(test_errors_are_records),
    cmocka_unit_test(test_named_script),
    cmocka_unit_test(test_stream_records_of_items),
    cmocka_unit_test(test_timeouts),
    cmocka_unit_test(test_retries),
    cmocka_unit_test(test_fail_fast),
    cmocka_unit_test(test_all_at_once),
    cmocka_unit_test(test_unreadable_inputs),
    cmocka_unit_test(test_read_ahead_is_bounded),
    cmocka_unit_test(test_syntax_error_reads_nothing),
    cmocka_unit_test(test_stop),
    cmocka_unit_test(test_stop_before_and_at_start),
    cmocka_unit_test(test_stop_reaches_blocked_iterator),
    cmocka_unit_test(test_command_and_parameters),
    cmocka_unit_test(test_on_existing_pool_with_total),
    cmocka_unit_test(test_completion_during_unreadable_delivery),
    cmocka_unit_test(test_fail_fast_stops_own_batch),
    cmocka_unit_test(test_stop_racing_the_end_of_a_run),
    cmocka_unit_test(test_nothing_dispatched_after_a_stop),
};

RS_TEST_MAIN(tests)
