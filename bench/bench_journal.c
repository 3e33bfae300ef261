/*
 * bench_journal.c -- the journal's figures, each in the same run as its peer:
 *
 *   1. 1,000,000 trivial items (`foreach -j 2 'return _*_'` over 1,000,000 lines, raw output
 *      to /dev/null) with --joblog, against the same without it: the ratio of throughputs
 *      (best of 3 each, alternated);
 *   2. resuming a journal of 10,000,000 records whose input has 100 more: the time from the
 *      start of the program to the first record of a new item, the whole run's time, and
 *      its peak resident memory, against a run of 100 items with no journal.
 *
 * The journals go to a directory on the same disk as /tmp (BENCH_DIR to choose another).
 * Usage: bench_journal [--quick]   (--quick: 200,000 items and a journal of 1,000,000)
 */
#include <runspace.h>

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
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
    printf("%-50s %-14s %-12s %-36s %s\n", metric, value, target, peer, ratio);
    fflush(stdout);
}

/* Runs a shell command with stdout on a pipe that is read and dropped. Returns the wall time
 * (or -1 when it failed); *first (may be NULL) gets the seconds to the first byte of stdout
 * (-1 if none), *max_rss_kib the peak resident memory of the largest process of the
 * command. */
static double shell(const char *cmd, double *first, long *max_rss_kib)
{
    int fds[2];
    if (pipe(fds) != 0)
        return -1;
    double t0 = now();
    pid_t pid = fork();
    if (pid == 0) {
        dup2(fds[1], 1);
        close(fds[0]);
        close(fds[1]);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    close(fds[1]);
    if (first)
        *first = -1;
    char buf[65536];
    ssize_t n;
    while ((n = read(fds[0], buf, sizeof buf)) != 0) {
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0)
            break;
        if (first && *first < 0)
            *first = now() - t0;
    }
    close(fds[0]);
    int st;
    struct rusage ru;
    if (wait4(pid, &st, 0, &ru) < 0)
        return -1;
    double t = now() - t0;
    if (max_rss_kib)
        *max_rss_kib = ru.ru_maxrss;
    return WIFEXITED(st) && WEXITSTATUS(st) <= 1 ? t : -1;
}

static const char *bench_dir(void)
{
    const char *d = getenv("BENCH_DIR");
    return d && *d ? d : "/tmp";
}

static void bench_throughput(void)
{
    long n = quick ? 200000 : 1000000;
    char lines[256], journal[256], cmd[1024];
    snprintf(lines, sizeof lines, "%s/rs_bench_journal_lines_%d", bench_dir(), (int)getpid());
    snprintf(journal, sizeof journal, "%s/rs_bench_journal_%d", bench_dir(), (int)getpid());
    FILE *f = fopen(lines, "w");
    for (long i = 1; i <= n; i++)
        fprintf(f, "%ld\n", i);
    fclose(f);
    double best[2] = {1e9, 1e9};
    for (int round = 0; round < 3; round++) {
        for (int with = 0; with < 2; with++) {
            unlink(journal);
            if (with)
                snprintf(cmd, sizeof cmd, "%s foreach -j 2 --joblog %s 'return _*_' < %s", RS_CLI,
                         journal, lines);
            else
                snprintf(cmd, sizeof cmd, "%s foreach -j 2 'return _*_' < %s", RS_CLI, lines);
            double t = shell(cmd, NULL, NULL);
            if (t > 0 && t < best[with])
                best[with] = t;
        }
    }
    struct stat st;
    long long bytes = stat(journal, &st) == 0 ? (long long)st.st_size : 0;
    unlink(journal);
    unlink(lines);
    double without = (double)n / best[0], with = (double)n / best[1];
    char m[96], v[48], p[96], r[48];
    snprintf(m, sizeof m, "%ld trivial items with --joblog (best of 3)", n);
    snprintf(v, sizeof v, "%.2f M/s", with / 1e6);
    snprintf(p, sizeof p, "without --joblog %.2f M/s", without / 1e6);
    snprintf(r, sizeof r, "%.0f%% of it", 100 * with / without);
    row(m, v, ">= 70%", p, r);
    snprintf(v, sizeof v, "%.0f B", bytes ? (double)bytes / (double)n : 0);
    snprintf(p, sizeof p, "%.1f MiB in all", (double)bytes / (1 << 20));
    row("  journal bytes per record", v, "", p, "");
}

static void bench_resume(void)
{
    long n = quick ? 1000000 : 10000000;
    const long more = 100;
    char journal[256], cmd[1024], m[96], v[48], p[96], r[64];
    snprintf(journal, sizeof journal, "%s/rs_bench_journal_big_%d", bench_dir(), (int)getpid());
    unlink(journal);
    /* The journal: a real run of n items (its time is a figure too). */
    snprintf(cmd, sizeof cmd, "seq 1 %ld | %s foreach -j 2 --joblog %s 'return _*_' >/dev/null", n,
             RS_CLI, journal);
    double made = shell(cmd, NULL, NULL);
    struct stat st;
    if (made < 0 || stat(journal, &st) != 0) {
        row("resume: could not write the journal", "", "", "", "");
        return;
    }
    snprintf(m, sizeof m, "a journal of %ld records, written", n);
    snprintf(v, sizeof v, "%.1f s", made);
    snprintf(p, sizeof p, "%.2f M records/s, %.0f MiB", (double)n / made / 1e6,
             (double)st.st_size / (1 << 20));
    row(m, v, "", p, "");
    /* The resume: the same lines and 100 more; only those run. First with the journal out
     * of the page cache (as after a reboot: read from the disk), then with it in. */
    snprintf(cmd, sizeof cmd, "seq 1 %ld | %s foreach -j 2 --joblog %s --resume 'return _*_'",
             n + more, RS_CLI, journal);
    double first[2] = {-1, -1}, total[2] = {-1, -1};
    long rss[2] = {0, 0};
    for (int warm = 0; warm < 2; warm++) {
        /* Each resume appends the records of the new items: start from the same journal. */
        if (truncate(journal, st.st_size) != 0)
            break;
        if (!warm) {
            int fd = open(journal, O_RDONLY);
            if (fd >= 0) {
                fdatasync(fd);
                posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED); /* this file only */
                close(fd);
            }
        }
        total[warm] = shell(cmd, &first[warm], &rss[warm]);
    }
    /* The peer: a run of the 100 items alone, without a journal. */
    long peer_rss = 0;
    double peer_first = -1;
    snprintf(cmd, sizeof cmd, "seq 1 %ld | %s foreach -j 2 'return _*_'", more, RS_CLI);
    shell(cmd, &peer_first, &peer_rss);
    const char *how[2] = {"journal on disk", "in page cache"};
    for (int warm = 0; warm < 2; warm++) {
        snprintf(m, sizeof m, "resume %ldM records + %ld new, %s", n / 1000000, more, how[warm]);
        snprintf(v, sizeof v, "%.2f s", first[warm]);
        snprintf(p, sizeof p, "to the first new record; all %.2f s", total[warm]);
        snprintf(r, sizeof r, "100 items alone: %.3f s", peer_first);
        row(m, v, "<= 3 s", p, r);
        snprintf(v, sizeof v, "%.1f MiB", (double)rss[warm] / 1024);
        snprintf(p, sizeof p, "100 items alone %.1f MiB", (double)peer_rss / 1024);
        snprintf(r, sizeof r, "+%.1f MiB for %ld records", (double)(rss[warm] - peer_rss) / 1024,
                 n);
        row("  peak RSS of that resume", v, "follows gaps", p, r);
    }
    unlink(journal);
}

int main(int argc, char **argv)
{
    quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    printf("runspace %s journal benchmarks (%ld CPUs online)%s\n", rs_version(),
           sysconf(_SC_NPROCESSORS_ONLN), quick ? " -- quick run" : "");
    row("metric", "value", "target", "peer (same run)", "ratio");
    bench_throughput();
    bench_resume();
    return 0;
}
