/*
 * bench_cli.c -- the `runspace foreach` figures, each against its target and peers
 * measured in the same run:
 *
 *   1. `seq 1 1000000 | runspace foreach -j 2 'return _*_' > /dev/null`: items per second,
 *      against `xargs -P2 -n1` and GNU `parallel -j2` on 2,000 items of the same work (a
 *      square printed per item), and a bare C loop over the same lines;
 *   2. CPU-bound items of about 10 ms of Lua arithmetic: -j 2 over -j 1 speed-up;
 *   3. 10,000,000 inputs with --format jsonl: peak resident memory.
 *
 * Usage: bench_cli [--quick]
 */
#include <runspace.h>

#include <errno.h>
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

static void row(const char *metric, const char *value, const char *target, const char *peer,
                const char *ratio)
{
    printf("%-46s %-16s %-12s %-34s %s\n", metric, value, target, peer, ratio);
    fflush(stdout);
}

/* Runs a shell command; returns its wall time (or -1 when it failed) and peak RSS in KiB. */
static double shell(const char *cmd, long *max_rss_kib)
{
    double t0 = now();
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) < 0)
        return -1;
    double t = now() - t0;
    if (max_rss_kib)
        *max_rss_kib = ru.ru_maxrss;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? t : -1;
}

static bool have(const char *tool)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* The bare C loop over the same lines: parse, square, print. */
static double bare_loop(const char *path, long n)
{
    FILE *in = fopen(path, "r");
    FILE *out = fopen("/dev/null", "w");
    if (!in || !out)
        return -1;
    char line[64];
    double t0 = now();
    long count = 0;
    while (fgets(line, sizeof line, in)) {
        long long x = strtoll(line, NULL, 10);
        fprintf(out, "%lld\n", x * x);
        count++;
    }
    double t = now() - t0;
    fclose(in);
    fclose(out);
    return count == n ? t : -1;
}

static void bench_throughput(void)
{
    long n = quick ? 200000 : 1000000;
    char path[] = "/tmp/rs_bench_lines_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    for (long i = 1; i <= n; i++)
        fprintf(f, "%ld\n", i);
    fclose(f);
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s foreach -j 2 'return _*_' < %s > /dev/null", RS_CLI, path);
    double best = 1e9;
    for (int i = 0; i < 3; i++) {
        double t = shell(cmd, NULL);
        if (t > 0 && t < best)
            best = t;
    }
    double ours = (double)n / best;
    double bare_t = bare_loop(path, n);
    double bare = bare_t > 0 ? (double)n / bare_t : 0;
    char v[64], p[96], r[48], m[96];
    snprintf(m, sizeof m, "foreach -j 2 'return _*_', %ld lines (best of 3)", n);
    snprintf(v, sizeof v, "%.2f M/s", ours / 1e6);
    snprintf(p, sizeof p, "bare C loop %.1f M/s", bare / 1e6);
    snprintf(r, sizeof r, "%.3fx of bare", bare > 0 ? ours / bare : 0);
    row(m, v, ">= 1 M/s", p, r);

    /* Peers, on 2,000 items of the same work. */
    const long k = 2000;
    if (have("xargs")) {
        snprintf(cmd, sizeof cmd, "seq 1 %ld | xargs -P2 -n1 sh -c 'echo $(($0 * $0))' > /dev/null",
                 k);
        double t = shell(cmd, NULL);
        double rate = t > 0 ? (double)k / t : 0;
        snprintf(p, sizeof p, "xargs -P2 -n1 %.0f /s", rate);
        snprintf(r, sizeof r, "%.0fx xargs", rate > 0 ? ours / rate : 0);
        row("", "", "", p, r);
    } else {
        row("", "", "", "xargs not installed", "");
    }
    if (have("parallel")) {
        snprintf(cmd, sizeof cmd,
                 "seq 1 %ld | parallel --will-cite -j2 'echo $(({} * {}))' > /dev/null", k);
        double t = shell(cmd, NULL);
        double rate = t > 0 ? (double)k / t : 0;
        snprintf(p, sizeof p, "GNU parallel -j2 %.0f /s", rate);
        snprintf(r, sizeof r, "%.0fx parallel", rate > 0 ? ours / rate : 0);
        row("", "", "", p, r);
    } else {
        row("", "", "", "GNU parallel not installed", "");
    }
    unlink(path);
}

static void bench_speedup(void)
{
    /* Calibrate a loop to about 10 ms of Lua arithmetic per item. */
    rs_ps *ps;
    rs_ps_create(&ps);
    rs_ps_add_script(ps,
                     "local t0 = time.monotonic() local s = 0 "
                     "for i = 1, 1000000 do s = s + i % 7 end return time.monotonic() - t0",
                     (size_t)-1);
    rs_value *out = NULL;
    rs_ps_invoke(ps, &out);
    double per_million = rs_value_get_double(rs_array_get(out, 0));
    rs_value_destroy(out);
    rs_ps_destroy(ps);
    long iters = per_million > 0 ? (long)(0.010 / per_million * 1e6) : 300000;
    int items = quick ? 60 : 200;
    char cmd[512], v[64], p[64], m[96], r[32];
    snprintf(cmd, sizeof cmd,
             "%s foreach --range 1..%d -j %%d 'local s = 0 for i = 1, %ld do s = s + i %% 7 end "
             "return s' > /dev/null",
             RS_CLI, items, iters);
    char run[600];
    snprintf(run, sizeof run, cmd, 1);
    double t1 = shell(run, NULL);
    snprintf(run, sizeof run, cmd, 2);
    double t2 = shell(run, NULL);
    snprintf(m, sizeof m, "CPU-bound %d items x ~10 ms: -j 2 over -j 1", items);
    snprintf(v, sizeof v, "%.2fx", t2 > 0 ? t1 / t2 : 0);
    snprintf(p, sizeof p, "-j 1 %.2f s, -j 2 %.2f s", t1, t2);
    snprintf(r, sizeof r, "%.1f ms per item", t1 / items * 1e3);
    row(m, v, ">= 1.8x", p, r);
}

static void bench_memory(void)
{
    long n = quick ? 1000000 : 10000000;
    char cmd[512];
    snprintf(cmd, sizeof cmd, "seq 1 %ld | %s foreach -j 2 --format jsonl 'return _*_' > /dev/null",
             n, RS_CLI);
    /* wait4 reports the larger of the shell's children; run the pipeline's runspace in a
     * shell of its own so its peak is what is measured. */
    long kib = 0;
    double t = shell(cmd, &kib);
    char m[96], v[64], p[64];
    snprintf(m, sizeof m, "%ld inputs, --format jsonl: peak RSS", n);
    snprintf(v, sizeof v, "%.1f MiB", (double)kib / 1024);
    snprintf(p, sizeof p, "%.1f s, %.2f M records/s", t, t > 0 ? (double)n / t / 1e6 : 0);
    row(m, v, "<= 64 MiB", p, "");
}

int main(int argc, char **argv)
{
    quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    printf("runspace %s CLI benchmarks (%ld CPUs online)%s\n", rs_version(),
           sysconf(_SC_NPROCESSORS_ONLN), quick ? " -- quick run" : "");
    row("metric", "value", "target", "peer (same run)", "ratio");
    bench_throughput();
    bench_speedup();
    bench_memory();
    return 0;
}
