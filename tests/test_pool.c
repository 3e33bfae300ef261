/*
 * test_pool.c -- runspace pools: lazy growth to max, trimming to min, changing limits while
 * open, Get-Runspace, close and destroy, many queued invocations, many client threads.
 */
#include "util.h"

#include <pthread.h>
#include <unistd.h>

static rs_pool *open_pool(unsigned min, unsigned max, double idle_timeout)
{
    rs_pool *pool;
    rs_pool_opts o = {.min_runspaces = min, .max_runspaces = max, .idle_timeout = idle_timeout};
    assert_ok(rs_pool_create(&o, &pool));
    assert_int_equal(rs_pool_get_state(pool), RS_POOL_BEFORE_OPEN);
    assert_ok(rs_pool_open(pool));
    assert_int_equal(rs_pool_get_state(pool), RS_POOL_OPENED);
    return pool;
}

/* Begins n invocations of src on pool. */
static void begin_many(rs_pool *pool, const char *src, rs_ps **ps, rs_async **a, int n)
{
    for (int i = 0; i < n; i++) {
        assert_ok(rs_ps_create(&ps[i]));
        assert_ok(rs_ps_set_pool(ps[i], pool));
        assert_ok(rs_ps_add_script(ps[i], src, (size_t)-1));
        assert_ok(rs_ps_add_input(ps[i], rs_value_int(i)));
        assert_ok(rs_ps_begin_invoke(ps[i], &a[i]));
    }
}

static void end_many(rs_ps **ps, rs_async **a, int n, int expected)
{
    for (int i = 0; i < n; i++) {
        assert_rs(expected, rs_ps_end_invoke(ps[i], a[i], NULL));
        assert_ok(rs_ps_destroy(ps[i]));
    }
}

static int64_t shared_int(rs_pool *pool, const char *key)
{
    rs_value *v = NULL;
    if (rs_shared_get(rs_pool_shared(pool), key, &v))
        return 0;
    int64_t n = rs_value_get_int(v);
    rs_value_destroy(v);
    return n;
}

static void test_defaults_and_bad_limits(void **state)
{
    (void)state;
    rs_pool *pool;
    assert_ok(rs_pool_create(NULL, &pool));
    assert_int_equal(rs_pool_get_min(pool), 1);
    assert_int_equal(rs_pool_get_max(pool), (unsigned)sysconf(_SC_NPROCESSORS_ONLN));
    assert_int_equal(rs_pool_available(pool), 0); /* not open */
    assert_ok(rs_pool_destroy(pool));
    rs_pool_opts bad = {.min_runspaces = 3, .max_runspaces = 2};
    assert_rs(RS_EINVAL, rs_pool_create(&bad, &pool));
}

static void test_lazy_growth_to_max(void **state)
{
    (void)state;
    rs_pool *pool = open_pool(1, 3, 0);
    rs_runspace_info rows[8];
    assert_int_equal(rs_pool_runspaces(pool, rows, 8), 1);
    assert_int_equal(rows[0].state, RS_RUNSPACE_OPENED);
    assert_int_equal(rows[0].availability, RS_AVAILABILITY_AVAILABLE);
    assert_int_equal(rs_pool_available(pool), 3);

    rs_ps *ps[6];
    rs_async *a[6];
    begin_many(pool, "shared.incr('started') sleep(0.6) return runspace.id", ps, a, 6);
    sleep_for(0.3);
    /* Three run, three wait: the pool grew to max and no further. */
    assert_int_equal(rs_pool_runspaces(pool, rows, 8), 3);
    assert_int_equal(shared_int(pool, "started"), 3);
    assert_int_equal(rs_pool_available(pool), 0);
    for (int i = 0; i < 3; i++)
        assert_int_equal(rows[i].availability, RS_AVAILABILITY_BUSY);
    assert_true(rows[0].id != rows[1].id && rows[1].id != rows[2].id && rows[0].id != rows[2].id);
    end_many(ps, a, 6, 0);
    assert_int_equal(shared_int(pool, "started"), 6);
    assert_int_equal(rs_pool_available(pool), 3);
    assert_ok(rs_pool_destroy(pool));
}

static void test_idle_runspaces_trimmed_to_min(void **state)
{
    (void)state;
    rs_pool *pool = open_pool(1, 3, 0.1);
    rs_ps *ps[3];
    rs_async *a[3];
    begin_many(pool, "sleep(0.2)", ps, a, 3);
    end_many(ps, a, 3, 0);
    assert_int_equal(rs_pool_runspaces(pool, NULL, 0), 3);
    sleep_for(0.6);
    assert_int_equal(rs_pool_runspaces(pool, NULL, 0), 1);
    /* And it grows again on demand. */
    begin_many(pool, "sleep(0.1)", ps, a, 2);
    end_many(ps, a, 2, 0);
    assert_int_equal(rs_pool_runspaces(pool, NULL, 0), 2);
    assert_ok(rs_pool_destroy(pool));
}

static void test_min_is_kept(void **state)
{
    (void)state;
    rs_pool *pool = open_pool(2, 2, 0.05);
    sleep_for(0.3);
    assert_int_equal(rs_pool_runspaces(pool, NULL, 0), 2);
    assert_ok(rs_pool_destroy(pool));
}

static void test_change_limits_while_open(void **state)
{
    (void)state;
    rs_pool *pool = open_pool(1, 4, 0);
    assert_rs(RS_EINVAL, rs_pool_set_max(pool, 0));
    assert_rs(RS_EINVAL, rs_pool_set_min(pool, 5));
    assert_rs(RS_EINVAL, rs_pool_set_min(pool, 0));
    assert_ok(rs_pool_set_max(pool, 2));
    assert_int_equal(rs_pool_get_max(pool), 2);
    rs_ps *ps[4];
    rs_async *a[4];
    begin_many(pool, "shared.incr('n') sleep(0.4) shared.incr('n', -1)", ps, a, 4);
    sleep_for(0.2);
    assert_int_equal(shared_int(pool, "n"), 2);
    assert_true(rs_pool_runspaces(pool, NULL, 0) <= 2);
    /* Raising max while work waits starts more runspaces at once. */
    assert_ok(rs_pool_set_max(pool, 4));
    sleep_for(0.1);
    assert_int_equal(shared_int(pool, "n"), 4);
    end_many(ps, a, 4, 0);
    /* Raising min opens runspaces in the background. */
    assert_ok(rs_pool_set_min(pool, 3));
    assert_int_equal(rs_pool_get_min(pool), 3);
    size_t nrs = rs_pool_runspaces(pool, NULL, 0);
    if (nrs < 3)
        fail_msg("%zu runspaces after raising min to 3", nrs);
    assert_rs(RS_EINVAL, rs_pool_set_max(pool, 2));
    /* Lowering both retires idle runspaces at once. */
    assert_ok(rs_pool_set_min(pool, 1));
    assert_ok(rs_pool_set_max(pool, 1));
    sleep_for(0.2);
    assert_int_equal(rs_pool_runspaces(pool, NULL, 0), 1);
    assert_int_equal(rs_pool_available(pool), 1);
    assert_ok(rs_pool_destroy(pool));
}

static void test_close_cancels_queued_and_waits_running(void **state)
{
    (void)state;
    rs_pool *pool = open_pool(1, 1, 0);
    rs_ps *ps[3];
    rs_async *a[3];
    begin_many(pool, "sleep(0.3) shared.set('ran' .. _, true) return _", ps, a, 3);
    sleep_for(0.1);
    double t0 = rs_test_now();
    assert_ok(rs_pool_close(pool));
    assert_true(rs_test_now() - t0 >= 0.1); /* it waited for the running one */
    assert_int_equal(rs_pool_get_state(pool), RS_POOL_CLOSED);
    assert_int_equal(rs_ps_get_state(ps[0]), RS_PS_COMPLETED);
    assert_ok(rs_ps_end_invoke(ps[0], a[0], NULL));
    for (int i = 1; i < 3; i++) {
        assert_int_equal(rs_ps_get_state(ps[i]), RS_PS_STOPPED);
        assert_rs(RS_ECANCELED, rs_ps_end_invoke(ps[i], a[i], NULL));
        assert_contains(rs_ps_errmsg(ps[i]), "pool was closed");
    }
    assert_int_equal(shared_int(pool, "ran1"), 0);
    /* Closed means closed. */
    assert_rs(RS_ECLOSED, rs_ps_begin_invoke(ps[0], NULL));
    assert_ok(rs_pool_close(pool));
    assert_int_equal(rs_pool_runspaces(pool, NULL, 0), 0);
    for (int i = 0; i < 3; i++)
        assert_ok(rs_ps_destroy(ps[i]));
    assert_ok(rs_pool_destroy(pool));
}

static void test_destroy_with_bound_invocations(void **state)
{
    (void)state;
    rs_pool *pool = open_pool(1, 2, 0);
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_pool(ps, pool));
    assert_rs(RS_EBUSY, rs_pool_destroy(pool));
    assert_contains(rs_pool_errmsg(pool), "still bound");
    /* Nothing changed. */
    assert_int_equal(rs_pool_get_state(pool), RS_POOL_OPENED);
    assert_ok(rs_ps_add_script(ps, "return 'alive'", (size_t)-1));
    assert_ok(rs_ps_invoke(ps, NULL));
    /* Rebinding releases the pool. */
    assert_ok(rs_ps_set_pool(ps, NULL));
    assert_ok(rs_pool_destroy(pool));
    assert_ok(rs_ps_destroy(ps));
}

static void test_thousands_queued_then_close(void **state)
{
    (void)state;
    enum { N = 3000 };
    rs_pool *pool = open_pool(1, 2, 0);
    rs_ps **ps = calloc(N, sizeof *ps);
    rs_async **a = calloc(N, sizeof *a);
    begin_many(pool, "local s = 0 for i = 1, 200 do s = s + i end return _", ps, a, N);
    assert_ok(rs_pool_close(pool));
    int completed = 0, cancelled = 0;
    for (int i = 0; i < N; i++) {
        rs_value *out = NULL;
        int rc = rs_ps_end_invoke(ps[i], a[i], &out);
        if (rc == 0) {
            assert_int_equal(rs_value_get_int(rs_array_get(out, 0)), i);
            completed++;
        } else {
            assert_rs(RS_ECANCELED, rc);
            assert_int_equal(rs_array_len(out), 0);
            cancelled++;
        }
        rs_value_destroy(out);
        assert_ok(rs_ps_destroy(ps[i]));
    }
    assert_int_equal(completed + cancelled, N);
    assert_ok(rs_pool_destroy(pool));
    free(ps);
    free(a);
}

typedef struct client {
    rs_pool *pool;
    int id;
    int ok;
} client;

static void *client_main(void *arg)
{
    client *c = arg;
    rs_ps *ps;
    if (rs_ps_create(&ps) || rs_ps_set_pool(ps, c->pool))
        return NULL;
    for (int i = 0; i < 200; i++) {
        rs_value *out = NULL;
        if (rs_ps_clear(ps) ||
            rs_ps_add_script(ps, "local a, b = ... shared.incr('calls') return a * 1000 + b",
                             (size_t)-1) ||
            rs_ps_add_input(ps, rs_value_int(c->id)) || rs_ps_add_argument(ps, rs_value_int(i)))
            break;
        if (rs_ps_invoke(ps, &out) == 0 &&
            rs_value_get_int(rs_array_get(out, 0)) == c->id * 1000 + i)
            c->ok++;
        rs_value_destroy(out);
    }
    rs_ps_destroy(ps);
    return NULL;
}

static void test_many_client_threads(void **state)
{
    (void)state;
    rs_pool *pool = open_pool(1, 2, 0);
    pthread_t t[4];
    client c[4];
    for (int i = 0; i < 4; i++) {
        c[i] = (client){.pool = pool, .id = i + 1};
        assert_int_equal(pthread_create(&t[i], NULL, client_main, &c[i]), 0);
    }
    for (int i = 0; i < 4; i++) {
        pthread_join(t[i], NULL);
        assert_int_equal(c[i].ok, 200);
    }
    assert_int_equal(shared_int(pool, "calls"), 800);
    assert_ok(rs_pool_destroy(pool));
}

static void test_open_failure_is_reported(void **state)
{
    (void)state;
    /* No runspace can open within 4 KiB: the pool says why and is broken. */
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    rs_limits lim = {.memory_bytes = 4096};
    assert_ok(rs_iss_set_limits(iss, &lim));
    rs_pool *pool;
    rs_pool_opts o = {.iss = iss, .min_runspaces = 2, .max_runspaces = 2};
    assert_ok(rs_pool_create(&o, &pool));
    assert_ok(rs_iss_destroy(iss));
    assert_rs(RS_ENOMEM, rs_pool_open(pool));
    assert_contains(rs_pool_errmsg(pool), "cannot open a runspace within a memory limit");
    assert_int_equal(rs_pool_get_state(pool), RS_POOL_BROKEN);
    assert_rs(RS_EMISUSE, rs_pool_open(pool));
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_pool(ps, pool));
    assert_ok(rs_ps_add_script(ps, "return 1", (size_t)-1));
    assert_rs(RS_ECLOSED, rs_ps_invoke(ps, NULL));
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

/* A module whose code fails loads in each runspace's first invocation: every invocation fails
 * with its message until one loads it; the pool stays open. */
static void test_module_failure_fails_invocations(void **state)
{
    (void)state;
    char path[] = "/tmp/rs_test_module_XXXXXX.lua";
    write_temp_lua(path, "error('module refuses to load')");
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    int rc = rs_iss_add_module(iss, path);
    unlink(path);
    if (rc)
        fail_msg("add_module: %s", rs_iss_errmsg(iss));
    rs_pool *pool;
    rs_pool_opts o = {.iss = iss, .min_runspaces = 2, .max_runspaces = 2};
    assert_ok(rs_pool_create(&o, &pool));
    assert_ok(rs_iss_destroy(iss));
    assert_ok(rs_pool_open(pool));
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_pool(ps, pool));
    assert_ok(rs_ps_add_script(ps, "return 1", (size_t)-1));
    for (int i = 0; i < 3; i++) {
        assert_rs(RS_ERUNTIME, rs_ps_invoke(ps, NULL));
        assert_contains(rs_ps_errmsg(ps), "loading the modules:");
        assert_contains(rs_ps_errmsg(ps), "module refuses to load");
    }
    assert_int_equal(rs_pool_get_state(pool), RS_POOL_OPENED);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

typedef struct stop_all {
    rs_ps **ps;
    int n;
} stop_all;

static void *stop_everything(void *arg)
{
    stop_all *s = arg;
    for (int i = s->n; i-- > 0;)
        rs_ps_stop(s->ps[i]);
    return NULL;
}

static void test_close_races_stops(void **state)
{
    (void)state;
    /* A close cancelling queued invocations while another thread stops them: each ends once. */
    for (int round = 0; round < 20; round++) {
        enum { N = 64 };
        rs_pool *pool = open_pool(1, 1, 0);
        rs_ps *ps[N];
        rs_async *a[N];
        begin_many(pool, "sleep(0.001) return _", ps, a, N);
        stop_all s = {ps, N};
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, stop_everything, &s), 0);
        assert_ok(rs_pool_close(pool));
        pthread_join(t, NULL);
        for (int i = 0; i < N; i++) {
            int rc = rs_ps_end_invoke(ps[i], a[i], NULL);
            assert_true(rc == 0 || rc == RS_ESTOPPED || rc == RS_ECANCELED);
            assert_ok(rs_ps_destroy(ps[i]));
        }
        assert_ok(rs_pool_destroy(pool));
    }
}

static void test_shared_store_is_pool_wide(void **state)
{
    (void)state;
    rs_pool *pool = open_pool(4, 4, 0);
    enum { N = 100 };
    rs_ps *ps[N];
    rs_async *a[N];
    begin_many(pool, "shared.incr('counter') shared.set('seen' .. runspace.id, true)", ps, a, N);
    end_many(ps, a, N, 0);
    assert_int_equal(shared_int(pool, "counter"), N);
    rs_value *keys = rs_shared_keys(rs_pool_shared(pool));
    assert_true(rs_array_len(keys) >= 2); /* counter and at least one runspace */
    rs_value_destroy(keys);
    assert_ok(rs_pool_destroy(pool));
}

typedef struct early_client {
    rs_pool *pool;
    rs_ps *ps;
    rs_async *async;
    int rc;
} early_client;

/* Begins a long invocation as soon as the pool is open, while rs_pool_open still waits for
 * its first runspace. */
static void *begin_when_open(void *arg)
{
    early_client *c = arg;
    while (rs_pool_get_state(c->pool) == RS_POOL_BEFORE_OPEN)
        continue;
    c->rc = rs_ps_begin_invoke(c->ps, &c->async);
    return NULL;
}

static void test_open_returns_while_first_work_runs(void **state)
{
    (void)state;
    /* The first runspace opens and goes straight to work queued meanwhile: rs_pool_open must
     * see it opened then, not when that work ends. */
    int slow = 0;
    for (int round = 0; round < 10; round++) {
        rs_pool *pool;
        assert_ok(rs_pool_create(&(rs_pool_opts){.min_runspaces = 1, .max_runspaces = 1}, &pool));
        early_client c = {.pool = pool};
        assert_ok(rs_ps_create(&c.ps));
        assert_ok(rs_ps_set_pool(c.ps, pool));
        assert_ok(rs_ps_add_script(c.ps, "sleep(3)", (size_t)-1));
        pthread_t t;
        assert_int_equal(pthread_create(&t, NULL, begin_when_open, &c), 0);
        double t0 = rs_test_now();
        assert_ok(rs_pool_open(pool));
        if (rs_test_now() - t0 > 2)
            slow++;
        pthread_join(t, NULL);
        assert_ok(c.rc);
        assert_ok(rs_ps_stop(c.ps));
        int end = rs_ps_end_invoke(c.ps, c.async, NULL);
        assert_true(end == RS_ESTOPPED || end == 0);
        assert_ok(rs_ps_destroy(c.ps));
        assert_ok(rs_pool_destroy(pool));
    }
    if (slow)
        fail_msg("rs_pool_open waited for the first invocation to end in %d of 10 rounds", slow);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_defaults_and_bad_limits),
    cmocka_unit_test(test_lazy_growth_to_max),
    cmocka_unit_test(test_idle_runspaces_trimmed_to_min),
    cmocka_unit_test(test_min_is_kept),
    cmocka_unit_test(test_change_limits_while_open),
    cmocka_unit_test(test_close_cancels_queued_and_waits_running),
    cmocka_unit_test(test_destroy_with_bound_invocations),
    cmocka_unit_test(test_thousands_queued_then_close),
    cmocka_unit_test(test_many_client_threads),
    cmocka_unit_test(test_open_failure_is_reported),
    cmocka_unit_test(test_module_failure_fails_invocations),
    cmocka_unit_test(test_shared_store_is_pool_wide),
    cmocka_unit_test(test_close_races_stops),
    cmocka_unit_test(test_open_returns_while_first_work_runs),
};

RS_TEST_MAIN(tests)
