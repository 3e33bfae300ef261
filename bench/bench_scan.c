/*
 * bench_scan.c -- the scanner's figures, each next to its target and to nmap
 * measured in the same run:
 *
 *   1. every port (1-65535) of 127.0.0.1: wall time and ports/s, against
 *      `nmap -sT -p- -T5 -n -Pn 127.0.0.1` (median of 3 runs each, taken in turns);
 *   2. 1,000 filtered ports at a 500 ms timeout and 1 try, against a target in a network
 *      namespace whose nftables rules drop them (tests/fixtures/scan/netns.sh, built and removed
 *      here; needs root); with --with-nmap-filtered also nmap -sT -T5 on the same ports, which
 *      takes about 50 s.
 *
 * Usage: bench_scan [--quick] [--with-nmap-filtered]   (--quick: one run of each)
 */
#include <runspace.h>

#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

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
}

static void die(const char *what, const char *msg)
{
    fprintf(stderr, "bench_scan: %s: %s\n", what, msg);
    exit(1);
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

/* Scans target x ports with our engine; returns the wall time and checks the probe count. */
static double ours(const char *target, const char *ports, double timeout, int tries,
                   uint64_t expect, rs_scan_summary *sum)
{
    rs_scan *scan;
    rs_scan_opts o = {.timeout = timeout, .tries = tries};
    if (rs_scan_create(&o, &scan) || rs_scan_add_target(scan, target) ||
        rs_scan_add_ports(scan, ports))
        die("scan", rs_scan_errmsg(scan));
    double t0 = now();
    int rc = rs_scan_run(scan, sum);
    double took = now() - t0;
    if (rc)
        die("scan", rs_scan_errmsg(scan));
    if (sum->probes != expect)
        die("scan", "wrong number of results");
    rs_scan_destroy(scan);
    return took;
}

/* Runs nmap with args (stdout and stderr to /dev/null) and returns its wall time; -1 when
 * nmap is not installed. */
static double nmap(char *const args[])
{
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    double t0 = now();
    int err = posix_spawnp(&pid, "nmap", &fa, NULL, args, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (err == ENOENT)
        return -1;
    if (err)
        die("nmap", strerror(err));
    int status;
    waitpid(pid, &status, 0);
    double took = now() - t0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die("nmap", "failed");
    return took;
}

/* ---- 1. every port of loopback ---------------------------------------------------------- */

static void bench_loopback(void)
{
    int runs = quick ? 1 : 3;
    double t[3], p[3];
    bool have_nmap = true;
    rs_scan_summary sum;
    char *args[] = {"nmap", "-sT", "-p-", "-T5", "-n", "-Pn", "127.0.0.1", NULL};
    for (int i = 0; i < runs; i++) {
        t[i] = ours("127.0.0.1", "1-65535", 0, 0, 65535, &sum);
        if (have_nmap)
            have_nmap = (p[i] = nmap(args)) >= 0;
    }
    double mine = median(t, runs);
    char v[64], peer[64], r[32], m[80];
    snprintf(m, sizeof m, "all 65,535 ports of 127.0.0.1 (median of %d)", runs);
    snprintf(v, sizeof v, "%.3f s", mine);
    if (have_nmap) {
        double theirs = median(p, runs);
        snprintf(peer, sizeof peer, "nmap -sT -T5 %.3f s", theirs);
        snprintf(r, sizeof r, "%.2fx", mine / theirs);
        row(m, v, "<= nmap", peer, r);
        snprintf(v, sizeof v, "%.1f k/s", 65535 / mine / 1e3);
        snprintf(peer, sizeof peer, "nmap -sT -T5 %.1f k/s", 65535 / theirs / 1e3);
        snprintf(r, sizeof r, "%.2fx", theirs / mine);
        row("  ports per second", v, "report", peer, r);
    } else {
        row(m, v, "<= nmap", "nmap not installed: skipped", "");
        snprintf(v, sizeof v, "%.1f k/s", 65535 / mine / 1e3);
        row("  ports per second", v, "report", "", "");
    }
    snprintf(v, sizeof v, "%llu open", (unsigned long long)sum.open);
    row("  (open ports found, last run)", v, "", "", "");
}

/* ---- 2. filtered ports ------------------------------------------------------------------- */

static int fixture(const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh %s/netns.sh %s", RS_SCAN_FIXTURES, args);
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void bench_filtered(bool with_nmap)
{
    const char *metric = "1,000 filtered ports, 500 ms, 1 try";
    if (geteuid() != 0) {
        row(metric, "skipped", "<= 1.2 s", "needs root (a network namespace)", "");
        return;
    }
    char prefix[32], args[256], path[64];
    snprintf(prefix, sizeof prefix, "rsbench%ld", (long)getpid());
    snprintf(args, sizeof args, "up %s %s/rules.nft", prefix, RS_SCAN_FIXTURES);
    if (fixture(args) != 0) {
        snprintf(args, sizeof args, "down %s", prefix);
        fixture(args);
        row(metric, "skipped", "<= 1.2 s", "the namespace fixture failed", "");
        return;
    }
    /* The scan runs from the client namespace; its threads and nmap inherit it. */
    snprintf(path, sizeof path, "/run/netns/%sc", prefix);
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    int client = open(path, O_RDONLY | O_CLOEXEC);
    if (home < 0 || client < 0 || setns(client, CLONE_NEWNET) != 0)
        die("setns", strerror(errno));
    int runs = quick ? 1 : 3;
    double t[3];
    rs_scan_summary sum;
    for (int i = 0; i < runs; i++) {
        t[i] = ours("198.18.0.2", "1000-1999", 0.5, 1, 1000, &sum);
        if (sum.filtered != 1000)
            die("filtered scan", "not every port was filtered");
    }
    double mine = median(t, runs);
    double theirs = -2;
    if (with_nmap) {
        char *nargs[] = {"nmap", "-sT", "-p1000-1999", "-T5", "-n", "-Pn", "198.18.0.2", NULL};
        theirs = nmap(nargs);
    }
    setns(home, CLONE_NEWNET);
    close(home);
    close(client);
    snprintf(args, sizeof args, "down %s", prefix);
    fixture(args);

    char m[80], v[64], peer[64], r[32];
    snprintf(m, sizeof m, "%s (median %d)", metric, runs);
    snprintf(v, sizeof v, "%.3f s", mine);
    if (theirs > 0) {
        snprintf(peer, sizeof peer, "nmap -sT -T5 %.1f s", theirs);
        snprintf(r, sizeof r, "%.3fx", mine / theirs);
        row(m, v, "<= 1.2 s", peer, r);
    } else {
        row(m, v, "<= 1.2 s",
            theirs == -1 ? "nmap not installed: skipped" : "nmap: --with-nmap-filtered", "");
    }
    snprintf(v, sizeof v, "%.0f /s", 1000 / mine);
    row("  ports per second", v, "report", "", "");
}

int main(int argc, char **argv)
{
    bool with_nmap = false;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0)
            quick = true;
        else if (strcmp(argv[i], "--with-nmap-filtered") == 0)
            with_nmap = true;
        else
            die("usage", "bench_scan [--quick] [--with-nmap-filtered]");
    }
    printf("runspace %s scanner benchmarks (%ld CPUs online)%s\n", rs_version(),
           sysconf(_SC_NPROCESSORS_ONLN), quick ? " -- quick run" : "");
    row("metric", "value", "target", "peer (same run)", "ratio");
    bench_loopback();
    bench_filtered(with_nmap);
    return 0;
}
