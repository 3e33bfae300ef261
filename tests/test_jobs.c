/*
 * test_jobs.c -- the job manager: the seed's three jobs, names, states, waits with timeouts,
 * listing, removal of running jobs, and use from several threads.
 */
#include "util.h"

#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

static rs_jobs *new_jobs(unsigned max)
{
    rs_jobs *jobs;
    rs_jobs_opts o = {.max_jobs = max};
    assert_ok(rs_jobs_create(&o, &jobs));
    return jobs;
}

static rs_value *params1(const char *name, rs_value *v)
{
    rs_value *m = rs_value_map();
    assert_ok(rs_map_set(m, name, v));
    return m;
}

static void test_seed_jobs(void **state)
{
    (void)state;
    rs_jobs *jobs = new_jobs(5);
    rs_value *p = params1("Seconds", rs_value_double(0.3));
    assert_ok(rs_jobs_start(jobs, "LongRunningJob",
                            "sleep(Seconds) return 'Job completed after ' .. Seconds .. ' seconds'",
                            p, NULL));
    rs_value_destroy(p);
    assert_ok(rs_jobs_start(jobs, "ProcessJob",
                            "local out = {} for _, p in ipairs(proc.list()) do "
                            "if p.cpu >= 0 then out[#out + 1] = {name = p.name, cpu = p.cpu} end "
                            "end return #out",
                            NULL, NULL));
    p = params1("Path", rs_value_string(RS_TEST_FIXTURES));
    assert_ok(rs_jobs_start(jobs, "FileSystemJob",
                            "local n, total = 0, 0 for _, e in ipairs(fs.list(Path, {recursive = "
                            "true})) do if e.type == 'file' then n = n + 1 total = total + e.size "
                            "end end return {count = n, sum = total}",
                            p, NULL));
    rs_value_destroy(p);
    assert_int_equal(rs_jobs_list(jobs, RS_JOBS_ALL, NULL, 0), 3);
    assert_true(rs_jobs_list(jobs, RS_JOBS_RUNNING, NULL, 0) >= 1); /* the sleeper */

    assert_ok(rs_jobs_wait(jobs, "ProcessJob", 30));
    rs_job_info info;
    assert_ok(rs_jobs_get(jobs, "ProcessJob", &info));
    assert_int_equal(info.state, RS_JOB_COMPLETED);
    assert_true(rs_value_get_int(rs_array_get(info.result, 0)) > 0);

    assert_ok(rs_jobs_wait_all(jobs, 60));
    assert_int_equal(rs_jobs_list(jobs, RS_JOBS_COMPLETED, NULL, 0), 3);
    assert_int_equal(rs_jobs_list(jobs, RS_JOBS_RUNNING, NULL, 0), 0);
    assert_ok(rs_jobs_get(jobs, "LongRunningJob", &info));
    assert_string_equal(info.name, "LongRunningJob");
    assert_int_equal(info.state, RS_JOB_COMPLETED);
    assert_string_equal(rs_value_get_string(rs_array_get(info.result, 0), NULL),
                        "Job completed after 0.3 seconds");
    assert_true(info.duration >= 0.29 && info.duration < 10);
    assert_true(info.end >= info.start + 0.29);
    assert_ok(rs_jobs_get(jobs, "FileSystemJob", &info));
    const rs_value *r = rs_array_get(info.result, 0);
    assert_true(rs_value_get_int(rs_map_get(r, "count")) >= 5);
    assert_true(rs_value_get_int(rs_map_get(r, "sum")) > 0);
    const char *names[4];
    assert_int_equal(rs_jobs_list(jobs, RS_JOBS_ALL, names, 4), 3);
    assert_string_equal(names[0], "LongRunningJob");
    assert_string_equal(names[2], "FileSystemJob");
    assert_ok(rs_jobs_destroy(jobs));
}

static void test_names(void **state)
{
    (void)state;
    rs_jobs *jobs = new_jobs(2);
    const char *a = NULL, *b = NULL;
    assert_ok(rs_jobs_start(jobs, NULL, "return 1", NULL, &a));
    assert_ok(rs_jobs_start(jobs, "", "return 2", NULL, &b));
    assert_int_equal(strlen(a), 12);
    assert_memory_equal(a, "Job_", 4);
    assert_string_not_equal(a, b);
    assert_ok(rs_jobs_start(jobs, "mine", "return 3", NULL, NULL));
    assert_rs(RS_EEXIST, rs_jobs_start(jobs, "mine", "return 4", NULL, NULL));
    assert_string_equal(rs_jobs_errmsg(jobs), "a job named 'mine' already exists");
    assert_rs(RS_ESYNTAX, rs_jobs_start(jobs, "broken", "return +", NULL, NULL));
    assert_contains(rs_jobs_errmsg(jobs), "script:1:");
    assert_rs(RS_ENOENT, rs_jobs_get(jobs, "broken", &(rs_job_info){0}));
    rs_value *notmap = rs_value_int(1);
    assert_rs(RS_EINVAL, rs_jobs_start(jobs, "x", "return 1", notmap, NULL));
    rs_value_destroy(notmap);
    assert_rs(RS_ENOENT, rs_jobs_wait(jobs, "nope", 1));
    assert_ok(rs_jobs_wait_all(jobs, 30));
    assert_ok(rs_jobs_destroy(jobs));
}

static void test_states(void **state)
{
    (void)state;
    rs_jobs *jobs = new_jobs(4);
    assert_ok(rs_jobs_start(jobs, "ok", "return 'fine'", NULL, NULL));
    assert_ok(rs_jobs_start(jobs, "soft", "write_error('minor') return 'partly'", NULL, NULL));
    assert_ok(rs_jobs_start(jobs, "hard", "error('broken')", NULL, NULL));
    assert_ok(rs_jobs_start(jobs, "long", "sleep(30)", NULL, NULL));
    assert_ok(rs_jobs_wait(jobs, "ok", 30));
    assert_ok(rs_jobs_wait(jobs, "soft", 30));
    assert_ok(rs_jobs_wait(jobs, "hard", 30));
    rs_job_info info;
    assert_ok(rs_jobs_get(jobs, "ok", &info));
    assert_int_equal(info.state, RS_JOB_COMPLETED);
    assert_null(info.error);
    assert_ok(rs_jobs_get(jobs, "soft", &info));
    assert_int_equal(info.state, RS_JOB_COMPLETED_WITH_ERRORS);
    assert_int_equal(info.error_count, 1);
    assert_string_equal(info.error, "minor");
    assert_ok(rs_jobs_get(jobs, "hard", &info));
    assert_int_equal(info.state, RS_JOB_FAILED);
    assert_string_equal(info.error, "script:1: broken");
    assert_ok(rs_jobs_get(jobs, "long", &info));
    assert_int_equal(info.state, RS_JOB_RUNNING);
    assert_null(info.result);
    assert_int_equal(info.end, 0);
    /* Waiting with a timeout names what still runs. */
    assert_rs(RS_ETIMEDOUT, rs_jobs_wait(jobs, "long", 0.1));
    assert_string_equal(rs_jobs_errmsg(jobs), "job 'long' is still running after 0.1 s");
    assert_rs(RS_ETIMEDOUT, rs_jobs_wait_all(jobs, 0.1));
    assert_string_equal(rs_jobs_errmsg(jobs), "timed out waiting for 1 job(s) to complete");
    /* Removing a running job stops it. */
    double t0 = rs_test_now();
    assert_ok(rs_jobs_remove(jobs, "long"));
    assert_true(rs_test_now() - t0 < 5);
    assert_rs(RS_ENOENT, rs_jobs_get(jobs, "long", &info));
    assert_rs(RS_ENOENT, rs_jobs_remove(jobs, "long"));
    assert_ok(rs_jobs_wait_all(jobs, 1));
    assert_int_equal(rs_jobs_list(jobs, RS_JOBS_ALL, NULL, 0), 3);
    assert_ok(rs_jobs_destroy(jobs));
}

static void test_destroy_stops_running_jobs(void **state)
{
    (void)state;
    rs_jobs *jobs = new_jobs(2);
    for (int i = 0; i < 5; i++)
        assert_ok(rs_jobs_start(jobs, NULL, "while true do end", NULL, NULL));
    double t0 = rs_test_now();
    assert_ok(rs_jobs_destroy(jobs));
    assert_true(rs_test_now() - t0 < 5);
}

typedef struct waiter {
    rs_jobs *jobs;
    int rc;
} waiter;

static void *wait_thread(void *arg)
{
    waiter *w = arg;
    w->rc = rs_jobs_wait(w->jobs, "shared", 30);
    return NULL;
}

static void test_many_waiters(void **state)
{
    (void)state;
    rs_jobs *jobs = new_jobs(2);
    assert_ok(rs_jobs_start(jobs, "shared", "sleep(0.2) return 1", NULL, NULL));
    pthread_t t[4];
    waiter w[4];
    for (int i = 0; i < 4; i++) {
        w[i] = (waiter){jobs, -1};
        assert_int_equal(pthread_create(&t[i], NULL, wait_thread, &w[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_ok(w[i].rc);
    }
    /* A waiter on a job that is removed meanwhile learns it is gone. */
    assert_ok(rs_jobs_start(jobs, "doomed", "sleep(30)", NULL, NULL));
    assert_ok(rs_jobs_remove(jobs, "doomed"));
    assert_ok(rs_jobs_destroy(jobs));
}

typedef struct starter {
    rs_jobs *jobs;
    int rc;
} starter;

static void *start_x(void *arg)
{
    starter *s = arg;
    s->rc = rs_jobs_start(s->jobs, "X", "return 1", NULL, NULL);
    return NULL;
}

static void test_duplicate_names_across_threads(void **state)
{
    (void)state;
    rs_jobs *jobs = new_jobs(2);
    for (int round = 0; round < 200; round++) {
        starter a = {jobs, -1}, b = {jobs, -1};
        pthread_t ta, tb;
        assert_int_equal(pthread_create(&ta, NULL, start_x, &a), 0);
        assert_int_equal(pthread_create(&tb, NULL, start_x, &b), 0);
        pthread_join(ta, NULL);
        pthread_join(tb, NULL);
        /* Exactly one of them gets the name. */
        assert_true((a.rc == 0 && b.rc == RS_EEXIST) || (a.rc == RS_EEXIST && b.rc == 0));
        assert_ok(rs_jobs_remove(jobs, "X"));
    }
    assert_ok(rs_jobs_destroy(jobs));
}

typedef struct all_waiter {
    rs_jobs *jobs;
    atomic_bool quit;
    long waits;
    int rc; /* the first failing wait's code (asserted on the main thread) */
} all_waiter;

static void *wait_all_loop(void *arg)
{
    all_waiter *w = arg;
    while (!atomic_load(&w->quit) && !w->rc) {
        w->rc = rs_jobs_wait_all(w->jobs, -1);
        w->waits++;
    }
    return NULL;
}

static void test_wait_all_sees_failed_starts(void **state)
{
    (void)state;
    /* A job counts as running from the moment its start takes its name; a start that then
     * fails (the pool is closed) must wake rs_jobs_wait_all, which may be waiting on it alone. */
    rs_pool *pool;
    assert_ok(rs_pool_create(&(rs_pool_opts){.max_runspaces = 1}, &pool));
    assert_ok(rs_pool_open(pool));
    rs_jobs *jobs;
    assert_ok(rs_jobs_create(&(rs_jobs_opts){.pool = pool}, &jobs));
    assert_ok(rs_pool_close(pool));
    all_waiter w = {.jobs = jobs};
    atomic_init(&w.quit, false);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, wait_all_loop, &w), 0);
    for (int i = 0; i < 3000; i++)
        assert_rs(RS_ECLOSED, rs_jobs_start(jobs, NULL, "return 1", NULL, NULL));
    atomic_store(&w.quit, true);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 10;
    if (pthread_timedjoin_np(t, NULL, &ts) != 0)
        fail_msg("rs_jobs_wait_all still waits 10 s after the last failed start (%ld waits "
                 "returned)",
                 w.waits);
    assert_ok(w.rc);
    assert_ok(rs_jobs_destroy(jobs));
    assert_ok(rs_pool_destroy(pool));
}

/* What on_record saw: "job|stream|message" lines, appended under a lock (worker threads). */
typedef struct seen {
    pthread_mutex_t mu;
    char text[1024];
} seen;

static void remember(const char *job, const rs_record *r, void *userdata)
{
    seen *s = userdata;
    pthread_mutex_lock(&s->mu);
    size_t len = strlen(s->text);
    snprintf(s->text + len, sizeof s->text - len, "%s|%s|%s\n", job, rs_stream_name(r->stream),
             r->message);
    pthread_mutex_unlock(&s->mu);
}

/* Every record a job writes reaches on_record as it is written, named by its job; a job's
 * terminating error too. */
static void test_records_reach_on_record(void **state)
{
    (void)state;
    seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    rs_jobs *jobs;
    rs_jobs_opts o = {.max_jobs = 1, .on_record = remember, .userdata = &s};
    assert_ok(rs_jobs_create(&o, &jobs));
    assert_ok(
        rs_jobs_start(jobs, "a", "print('hi', 1) write_warning('careful') return 1", NULL, NULL));
    assert_ok(rs_jobs_wait(jobs, "a", 10));
    assert_ok(rs_jobs_start(jobs, "b", "write_verbose('v') error('boom', 0)", NULL, NULL));
    assert_ok(rs_jobs_wait(jobs, "b", 10));
    pthread_mutex_lock(&s.mu);
    assert_string_equal(s.text, "a|information|hi\t1\n"
                                "a|warning|careful\n"
                                "b|verbose|v\n"
                                "b|error|boom\n");
    pthread_mutex_unlock(&s.mu);
    assert_ok(rs_jobs_destroy(jobs));
}

/* A job that prints 200,000 lines in an 8 MiB runspace completes: what it writes is handed
 * to on_record (or dropped) and not kept, only its error records are (for rs_job_info). */
static void test_printing_job_keeps_nothing(void **state)
{
    (void)state;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    rs_limits lim = {.memory_bytes = 8u << 20};
    assert_ok(rs_iss_set_limits(iss, &lim));
    rs_jobs *jobs;
    rs_jobs_opts o = {.iss = iss, .max_jobs = 1};
    assert_ok(rs_jobs_create(&o, &jobs));
    assert_ok(rs_jobs_start(jobs, "p",
                            "for i = 1, 200000 do print('0123456789') end "
                            "write_error('e') return 1",
                            NULL, NULL));
    assert_ok(rs_jobs_wait(jobs, "p", 60));
    rs_job_info info;
    assert_ok(rs_jobs_get(jobs, "p", &info));
    assert_int_equal(info.state, RS_JOB_COMPLETED_WITH_ERRORS);
    assert_int_equal(info.error_count, 1);
    assert_string_equal(info.error, "e");
    assert_ok(rs_jobs_destroy(jobs));
    assert_ok(rs_iss_destroy(iss));
}

/* Parameters that are not a map are refused, saying what they are. */
static void test_params_must_be_a_map(void **state)
{
    (void)state;
    rs_jobs *jobs = new_jobs(1);
    rs_value *arr = rs_value_array();
    assert_rs(RS_EINVAL, rs_jobs_start(jobs, "a", "return 1", arr, NULL));
    assert_string_equal(rs_jobs_errmsg(jobs), "job parameters must be a map, not an array");
    rs_value_destroy(arr);
    rs_value *str = rs_value_string("x");
    assert_rs(RS_EINVAL, rs_jobs_start(jobs, "a", "return 1", str, NULL));
    assert_string_equal(rs_jobs_errmsg(jobs), "job parameters must be a map, not a string");
    rs_value_destroy(str);
    assert_ok(rs_jobs_destroy(jobs));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_seed_jobs),
    cmocka_unit_test(test_names),
    cmocka_unit_test(test_states),
    cmocka_unit_test(test_destroy_stops_running_jobs),
    cmocka_unit_test(test_many_waiters),
    cmocka_unit_test(test_duplicate_names_across_threads),
    cmocka_unit_test(test_wait_all_sees_failed_starts),
    cmocka_unit_test(test_records_reach_on_record),
    cmocka_unit_test(test_printing_job_keeps_nothing),
    cmocka_unit_test(test_params_must_be_a_map),
};

RS_TEST_MAIN(tests)
