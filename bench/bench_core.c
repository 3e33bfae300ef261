/*
 * bench_core.c -- the core library's performance figures, each next to its target and, where
 * there is one, a peer measured in the same run:
 *
 *   1. runspace create+open with the default ISS (median) and resident memory per open idle
 *      runspace over 1000, against a bare lua_State with luaL_openlibs;
 *   2. begin-invoke -> wait for `return 1` on a warm pool (median, p99);
 *   3. stop of `while true do end`: from the stop call to state stopped (median, p99);
 *   4. CPU burnt by an idle open pool of 8 over 5 s;
 *   5. throughput of 1,000,000 tiny invocations (`return _*_`) through the C API on 2 threads,
 *      one invocation per item and batched with per-item results, against a bare warm-state
 *      C loop (lua_pcall of the compiled chunk) on 1 and on 2 threads.
 *
 * Usage: bench_core [--quick]   (--quick: fewer repetitions, for a smoke run)
 */
#include <runspace.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static bool quick;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double percentile(double *v, size_t n, double p)
{
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(p * (double)(n - 1));
    return v[i];
}

/* Resident set size in bytes. */
static size_t rss(void)
{
    FILE *f = fopen("/proc/self/statm", "r");
    unsigned long size = 0, resident = 0;
    if (f) {
        if (fscanf(f, "%lu %lu", &size, &resident) != 2)
            resident = 0;
        fclose(f);
    }
    return resident * (size_t)sysconf(_SC_PAGESIZE);
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_core: %s: %s\n", what, msg);
    exit(1);
}

static void row(const char *metric, const char *value, const char *target, const char *peer,
                const char *ratio)
{
    printf("%-46s %-16s %-12s %-34s %s\n", metric, value, target, peer, ratio);
}

/* ---- 1. runspace creation ---------------------------------------------------------------- */

enum { CREATE_N = 1000 };

typedef struct create_result {
    double median; /* seconds */
    double bytes;  /* resident bytes per open state */
    double lua;    /* Lua heap bytes per runspace (ours only) */
} create_result;

/* Creates CREATE_N open states (ours, or the bare peer) and measures them. Runs in a child
 * process of its own, so that neither side inherits the other's freed heap. */
static create_result measure_create(bool ours)
{
    static double t[CREATE_N];
    static rs_runspace *rs[CREATE_N];
    static lua_State *L[CREATE_N];
    create_result r = {0};
    rs_iss *iss = NULL;
    if (ours && rs_iss_create(RS_PROFILE_DEFAULT, &iss))
        die("iss", "out of memory");
    rs_runspace_opts o = {.iss = iss};
    size_t before = rss();
    for (int i = 0; i < CREATE_N; i++) {
        double t0 = now();
        if (ours) {
            if (rs_runspace_create(&o, &rs[i]) || rs_runspace_open(rs[i]))
                die("runspace", rs_runspace_errmsg(rs[i]));
        } else {
            L[i] = luaL_newstate();
            luaL_openlibs(L[i]);
        }
        t[i] = now() - t0;
    }
    r.bytes = (double)(rss() - before) / CREATE_N;
    for (int i = 0; ours && i < CREATE_N; i++)
        r.lua += (double)rs_runspace_memory(rs[i]) / CREATE_N;
    r.median = percentile(t, CREATE_N, 0.5);
    for (int i = 0; i < CREATE_N; i++) {
        if (ours)
            rs_runspace_destroy(rs[i]);
        else
            lua_close(L[i]);
    }
    rs_iss_destroy(iss);
    return r;
}

static create_result in_child(bool ours)
{
    int fds[2];
    create_result r = {0};
    if (pipe(fds))
        die("pipe", "failed");
    fflush(stdout);
    pid_t pid = fork();
    if (pid == 0) {
        close(fds[0]);
        r = measure_create(ours);
        ssize_t w = write(fds[1], &r, sizeof r);
        _exit(w == (ssize_t)sizeof r ? 0 : 1);
    }
    close(fds[1]);
    if (read(fds[0], &r, sizeof r) != (ssize_t)sizeof r)
        die("child", "no result");
    close(fds[0]);
    waitpid(pid, NULL, 0);
    return r;
}

static void bench_create(void)
{
    create_result peer = in_child(false);
    create_result ours = in_child(true);
    char v[64], p[64], r[32];
    snprintf(v, sizeof v, "%.1f us", ours.median * 1e6);
    snprintf(p, sizeof p, "lua_State+openlibs %.1f us", peer.median * 1e6);
    snprintf(r, sizeof r, "%.2fx", ours.median / peer.median);
    row("runspace create+open, default ISS (median)", v, "<= 50 us", p, r);
    snprintf(v, sizeof v, "%.1f KiB", ours.bytes / 1024);
    snprintf(p, sizeof p, "lua_State+openlibs %.1f KiB", peer.bytes / 1024);
    snprintf(r, sizeof r, "%.2fx", ours.bytes / peer.bytes);
    row("resident memory per open idle runspace (1000)", v, "<= 64 KiB", p, r);
    snprintf(v, sizeof v, "%.1f KiB", ours.lua / 1024);
    row("  of which Lua heap (rs_runspace_memory)", v, "", "", "");
}

/* ---- 2. round trip ------------------------------------------------------------------------ */

static rs_pool *open_pool(unsigned min, unsigned max)
{
    rs_pool *pool;
    rs_pool_opts o = {.min_runspaces = min, .max_runspaces = max, .idle_timeout = -1};
    if (rs_pool_create(&o, &pool) || rs_pool_open(pool))
        die("pool", rs_pool_errmsg(pool));
    return pool;
}

static rs_ps *new_ps(rs_pool *pool, const char *src)
{
    rs_ps *ps;
    if (rs_ps_create(&ps) || rs_ps_set_pool(ps, pool) || rs_ps_add_script(ps, src, (size_t)-1))
        die("ps", rs_ps_errmsg(ps));
    return ps;
}

static void bench_round_trip(void)
{
    int n = quick ? 2000 : 20000;
    double *t = malloc((size_t)n * sizeof *t);
    rs_pool *pool = open_pool(2, 2);
    rs_ps *ps = new_ps(pool, "return 1");
    for (int i = -1000; i < n; i++) {
        rs_async *a;
        double t0 = now();
        if (rs_ps_begin_invoke(ps, &a) || rs_async_wait(a, -1))
            die("round trip", rs_ps_errmsg(ps));
        double t1 = now();
        if (rs_ps_end_invoke(ps, a, NULL))
            die("round trip", rs_ps_errmsg(ps));
        if (i >= 0)
            t[i] = t1 - t0;
    }
    char v[64], p[64];
    snprintf(v, sizeof v, "%.1f us", percentile(t, (size_t)n, 0.5) * 1e6);
    snprintf(p, sizeof p, "p99 %.1f us", percentile(t, (size_t)n, 0.99) * 1e6);
    row("begin-invoke -> wait, `return 1`, warm (median)", v, "<= 20 us", p, "");
    rs_ps_destroy(ps);
    rs_pool_destroy(pool);
    free(t);
}

/* ---- 3. stop latency ---------------------------------------------------------------------- */

static void bench_stop(void)
{
    int n = quick ? 50 : 300;
    double *t = malloc((size_t)n * sizeof *t);
    rs_pool *pool = open_pool(1, 1);
    rs_ps *ps = new_ps(pool, "while true do end");
    for (int i = 0; i < n; i++) {
        rs_async *a;
        if (rs_ps_begin_invoke(ps, &a))
            die("stop", rs_ps_errmsg(ps));
        struct timespec ts = {0, 2000000}; /* let it get into the loop */
        nanosleep(&ts, NULL);
        double t0 = now();
        rs_ps_stop(ps);
        t[i] = now() - t0;
        if (rs_ps_get_state(ps) != RS_PS_STOPPED)
            die("stop", "not stopped");
        rs_ps_end_invoke(ps, a, NULL);
    }
    char v[64], p[64];
    snprintf(v, sizeof v, "%.1f us", percentile(t, (size_t)n, 0.5) * 1e6);
    snprintf(p, sizeof p, "p99 %.1f us", percentile(t, (size_t)n, 0.99) * 1e6);
    row("stop `while true do end` -> stopped (median)", v, "<= 1 ms", p, "");
    rs_ps_destroy(ps);
    rs_pool_destroy(pool);
    free(t);
}

/* ---- 4. idle CPU -------------------------------------------------------------------------- */

static double cpu_seconds(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec * 1e-6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec * 1e-6;
}

static void bench_idle(void)
{
    double secs = quick ? 1.0 : 5.0;
    rs_pool *pool = open_pool(8, 8);
    double c0 = cpu_seconds();
    struct timespec ts = {(time_t)secs, 0};
    nanosleep(&ts, NULL);
    double used = cpu_seconds() - c0;
    char v[64], m[64];
    snprintf(v, sizeof v, "%.2f ms", used * 1e3);
    snprintf(m, sizeof m, "CPU of an idle open pool of 8 over %.0f s", secs);
    row(m, v, "<= 5 ms", "", "");
    rs_pool_destroy(pool);
}

/* ---- 5. throughput ------------------------------------------------------------------------ */

typedef struct bare_arg {
    long from, to;
    long long sum;
} bare_arg;

/* The peer: a warm lua_State running the same compiled chunk in a plain C loop. */
static void *bare_loop(void *p)
{
    bare_arg *a = p;
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    luaL_loadstring(L, "return _*_");
    int fn = luaL_ref(L, LUA_REGISTRYINDEX);
    for (long i = a->from; i < a->to; i++) {
        lua_pushinteger(L, i);
        lua_setglobal(L, "_");
        lua_rawgeti(L, LUA_REGISTRYINDEX, fn);
        lua_pushinteger(L, i);
        lua_pcall(L, 1, 1, 0);
        a->sum += lua_tointeger(L, -1);
        lua_pop(L, 1);
    }
    lua_close(L);
    return NULL;
}

static double bare_rate(long n, int threads)
{
    pthread_t t[2];
    bare_arg a[2];
    double t0 = now();
    for (int i = 0; i < threads; i++) {
        a[i] = (bare_arg){.from = n * i / threads, .to = n * (i + 1) / threads};
        pthread_create(&t[i], NULL, bare_loop, &a[i]);
    }
    for (int i = 0; i < threads; i++)
        pthread_join(t[i], NULL);
    return (double)n / (now() - t0);
}

static long long expected_sum(long n)
{
    long long s = 0;
    for (long i = 0; i < n; i++)
        s += (long long)i * i;
    return s;
}

/* One invocation per item, a window of invocations in flight, on a pool of 2. */
static double separate_rate(long n)
{
    enum { K = 64 };
    rs_pool *pool = open_pool(2, 2);
    rs_ps *ring[K];
    rs_async *a[K] = {0};
    for (int k = 0; k < K; k++)
        ring[k] = new_ps(pool, "return _*_");
    long long sum = 0;
    double t0 = now();
    for (long i = 0; i < n + K; i++) {
        int k = (int)(i % K);
        if (a[k]) {
            rs_value *out;
            if (rs_ps_end_invoke(ring[k], a[k], &out))
                die("throughput", rs_ps_errmsg(ring[k]));
            sum += rs_value_get_int(rs_array_get(out, 0));
            rs_value_destroy(out);
            a[k] = NULL;
        }
        if (i < n) {
            rs_ps_clear_input(ring[k]);
            rs_ps_add_input(ring[k], rs_value_int(i));
            if (rs_ps_begin_invoke(ring[k], &a[k]))
                die("throughput", rs_ps_errmsg(ring[k]));
        }
    }
    double rate = (double)n / (now() - t0);
    if (sum != expected_sum(n))
        die("throughput", "wrong sum");
    for (int k = 0; k < K; k++)
        rs_ps_destroy(ring[k]);
    rs_pool_destroy(pool);
    return rate;
}

/* Batches of items per invocation, with per-item results, on a pool of 2. */
static double batched_rate(long n, long batch)
{
    enum { K = 4 };
    rs_pool *pool = open_pool(2, 2);
    rs_ps *ring[K];
    rs_async *a[K] = {0};
    rs_ps_opts o = {.flags = RS_PS_ITEM_RESULTS};
    for (int k = 0; k < K; k++) {
        ring[k] = new_ps(pool, "return _*_");
        rs_ps_set_opts(ring[k], &o);
    }
    long long sum = 0;
    long next = 0;
    double t0 = now();
    for (long b = 0; next < n || b % K != 0 || a[b % K]; b++) {
        int k = (int)(b % K);
        if (a[k]) {
            rs_value *out;
            if (rs_ps_end_invoke(ring[k], a[k], &out))
                die("throughput", rs_ps_errmsg(ring[k]));
            size_t m = rs_array_len(out);
            for (size_t j = 0; j < m; j++)
                sum += rs_value_get_int(rs_array_get(out, j));
            rs_value_destroy(out);
            a[k] = NULL;
        }
        if (next < n) {
            rs_ps_clear_input(ring[k]);
            for (long j = 0; j < batch && next < n; j++)
                rs_ps_add_input(ring[k], rs_value_int(next++));
            if (rs_ps_begin_invoke(ring[k], &a[k]))
                die("throughput", rs_ps_errmsg(ring[k]));
        }
    }
    double rate = (double)n / (now() - t0);
    if (sum != expected_sum(n))
        die("throughput", "wrong sum");
    for (int k = 0; k < K; k++)
        rs_ps_destroy(ring[k]);
    rs_pool_destroy(pool);
    return rate;
}

static void bench_throughput(void)
{
    long n = quick ? 100000 : 1000000;
    double bare1 = bare_rate(n, 1);
    double bare2 = bare_rate(n, 2);
    double sep = separate_rate(n);
    double bat = batched_rate(n, 1000);
    char v[64], p[64], r[32], m[80];
    snprintf(p, sizeof p, "bare loop, 1 thread %.2f M/s", bare1 / 1e6);
    row("bare warm-state C loop (peer)", "", "", p, "");
    snprintf(p, sizeof p, "bare loop, 2 threads %.2f M/s", bare2 / 1e6);
    row("", "", "", p, "");
    snprintf(m, sizeof m, "%ld invocations, one item each, 2 threads", n);
    snprintf(v, sizeof v, "%.0f k/s", sep / 1e3);
    snprintf(r, sizeof r, "%.3fx of 2-thread loop", sep / bare2);
    row(m, v, "report", "", r);
    snprintf(m, sizeof m, "%ld items, 1000 per invocation, 2 threads", n);
    snprintf(v, sizeof v, "%.2f M/s", bat / 1e6);
    snprintf(r, sizeof r, "%.3fx of 2-thread loop", bat / bare2);
    row(m, v, "report", "", r);
}

int main(int argc, char **argv)
{
    quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    printf("runspace %s core benchmarks (%ld CPUs online)%s\n", rs_version(),
           sysconf(_SC_NPROCESSORS_ONLN), quick ? " -- quick run" : "");
    row("metric", "value", "target", "peer (same run)", "ratio");
    bench_create();
    bench_round_trip();
    bench_stop();
    bench_idle();
    bench_throughput();
    return 0;
}
