/*
 * bench_vs_lua.c -- a runspace runs Lua as fast as Lua: the same chunks timed in a runspace and
 * in a stock Lua 5.4 state (luaL_openlibs, the peer) in the same process and run. The
 * runspace wraps parts of the standard library (its own interruptible pattern matcher behind
 * string.find/match/gmatch/gsub, print, load, coroutine.*), so the workloads lean on those:
 *
 *   gsub with capture strings, gsub with %b, gmatch, find with captures, a coroutine
 *   ping-pong, load of small chunks, and plain table/arithmetic work as a control.
 *
 * Each row: best of 5 runs for each side, alternated; the ratio is runspace time over Lua's
 * (target: at most 1.0x where the runspace brings its own code, about 1.0x elsewhere).
 * Usage: bench_vs_lua [--quick]   (--quick: a tenth of the work)
 */
#include <runspace.h>

#include <lauxlib.h>
#include <lua.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static bool quick;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Every workload is a chunk that takes N (the repetitions) as its first vararg and returns a
 * checksum, so that both sides can be checked to compute the same thing. */
typedef struct workload {
    const char *name;
    long n;
    const char *chunk;
} workload;

static const workload workloads[] = {
    {"gsub, capture strings ('%2=%1')", 200000,
     "local n = ... local s = 'alpha=1 beta=22 gamma=333 delta=4444' local c = 0 "
     "for i = 1, n do local r = s:gsub('(%w+)=(%w+)', '%2=%1') c = c + #r end return c"},
    {"gsub, balanced %b()", 200000,
     "local n = ... local s = 'f(a, g(b, c)) + h(d) - (e * (f + g))' local c = 0 "
     "for i = 1, n do local r, k = s:gsub('%b()', '[]') c = c + k + #r end return c"},
    {"gmatch over words", 100000,
     "local n = ... local s = ('lorem ipsum dolor sit amet '):rep(4) local c = 0 "
     "for i = 1, n do for w in s:gmatch('%a+') do c = c + #w end end return c"},
    {"find/match with captures", 300000,
     "local n = ... local s = 'GET /index.html HTTP/1.1' local c = 0 "
     "for i = 1, n do local m, p, v = s:match('^(%u+)%s+(%S+)%s+HTTP/([%d.]+)$') "
     "c = c + #m + #p + #v + (s:find('HTTP', 1, true)) end return c"},
    {"coroutine ping-pong", 300000,
     "local n = ... local co = coroutine.wrap(function() local x = 0 "
     "while true do x = x + coroutine.yield(x) end end) co(0) local c = 0 "
     "for i = 1, n do c = co(1) end return c"},
    {"load of small chunks", 50000,
     "local n = ... local c = 0 for i = 1, n do c = c + load('return ' .. (i % 100))() end "
     "return c"},
    {"tables and arithmetic (control)", 300000,
     "local n = ... local t = {} for i = 1, n do t[i] = i * 2 % 97 end local c = 0 "
     "for i = 1, n do c = c + t[i] end table.sort(t) return c + t[1]"},
};

/* Seconds for one run of w in a stock Lua state (created and closed outside the timing). */
static double run_lua(const workload *w, long n, long long *sum)
{
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    if (luaL_loadstring(L, w->chunk) != LUA_OK) {
        fprintf(stderr, "bench_vs_lua: %s\n", lua_tostring(L, -1));
        exit(1);
    }
    lua_pushinteger(L, n);
    double t0 = now();
    if (lua_pcall(L, 1, 1, 0) != LUA_OK) {
        fprintf(stderr, "bench_vs_lua: %s: %s\n", w->name, lua_tostring(L, -1));
        exit(1);
    }
    double t = now() - t0;
    *sum = (long long)lua_tointeger(L, -1);
    lua_close(L);
    return t;
}

/* Seconds for one run of w invoked in an open runspace (the invocation's own overhead, a few
 * microseconds, is in the figure). */
static double run_runspace(rs_runspace *rs, const workload *w, long n, long long *sum)
{
    rs_ps *ps;
    rs_value *out = NULL;
    if (rs_ps_create(&ps) || rs_ps_set_runspace(ps, rs) ||
        rs_ps_add_script(ps, w->chunk, (size_t)-1) || rs_ps_add_argument(ps, rs_value_int(n))) {
        fprintf(stderr, "bench_vs_lua: cannot set up %s\n", w->name);
        exit(1);
    }
    double t0 = now();
    int rc = rs_ps_invoke(ps, &out);
    double t = now() - t0;
    if (rc || rs_array_len(out) != 1) {
        fprintf(stderr, "bench_vs_lua: %s: %s\n", w->name, rs_ps_errmsg(ps));
        exit(1);
    }
    *sum = (long long)rs_value_get_int(rs_array_get(out, 0));
    rs_value_destroy(out);
    rs_ps_destroy(ps);
    return t;
}

int main(int argc, char **argv)
{
    quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    rs_runspace *rs;
    rs_runspace_opts o = {0};
    if (rs_runspace_create(&o, &rs) || rs_runspace_open(rs)) {
        fprintf(stderr, "bench_vs_lua: cannot open a runspace\n");
        return 1;
    }
    printf("%-36s %12s %12s %8s\n", "workload (best of 5)", "Lua 5.4", "runspace", "ratio");
    double worst = 0;
    for (size_t i = 0; i < sizeof workloads / sizeof workloads[0]; i++) {
        const workload *w = &workloads[i];
        long n = quick ? w->n / 10 : w->n;
        double best_lua = 1e9, best_rs = 1e9;
        long long sum_lua = 0, sum_rs = 0;
        for (int k = 0; k < 5; k++) {
            double a = run_lua(w, n, &sum_lua);
            double b = run_runspace(rs, w, n, &sum_rs);
            best_lua = a < best_lua ? a : best_lua;
            best_rs = b < best_rs ? b : best_rs;
        }
        if (sum_lua != sum_rs) {
            fprintf(stderr, "bench_vs_lua: %s: Lua computed %lld, the runspace %lld\n", w->name,
                    sum_lua, sum_rs);
            return 1;
        }
        double ratio = best_rs / best_lua;
        worst = ratio > worst ? ratio : worst;
        printf("%-36s %10.1f ms %10.1f ms %7.2fx\n", w->name, best_lua * 1e3, best_rs * 1e3, ratio);
    }
    printf("slowest ratio (runspace time / Lua time): %.2fx\n", worst);
    return rs_runspace_destroy(rs) ? 1 : 0;
}
