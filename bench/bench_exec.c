/*
 * bench_exec.c -- external commands per item: `runspace foreach -j 2 --exec true` over
 * 100,000 items against `xargs -P2 -n1 true` and GNU `parallel -j2 true` on the same items in
 * the same run, in items per second. Starting processes is the limit: each tool runs
 * /bin/true once per item, two at a time.
 *
 * Usage: bench_exec [--quick]   (--quick: 10,000 items)
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Runs a shell command; its wall time, or -1 when it failed. */
static double shell(const char *cmd)
{
    double t0 = now();
    pid_t pid = fork();
    if (pid == 0) {
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) < 0)
        return -1;
    double t = now() - t0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? t : -1;
}

static bool have(const char *tool)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

static void row(const char *tool, double t, long n, double ours)
{
    if (t < 0) {
        printf("%-46s %s\n", tool, "failed or not installed");
        return;
    }
    double rate = (double)n / t;
    printf("%-46s %10.0f items/s  %8.2f s", tool, rate, t);
    if (ours > 0 && rate > 0)
        printf("   runspace is %.2fx", ours / rate);
    printf("\n");
    fflush(stdout);
}

int main(int argc, char **argv)
{
    bool quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    long n = quick ? 10000 : 100000;
    char path[] = "/tmp/rs_bench_exec_XXXXXX";
    int fd = mkstemp(path);
    FILE *f = fdopen(fd, "w");
    for (long i = 1; i <= n; i++)
        fprintf(f, "%ld\n", i);
    fclose(f);
    printf("external command per item: %ld items of `true`, two at a time (%ld CPUs online)\n", n,
           sysconf(_SC_NPROCESSORS_ONLN));
    char cmd[1024];
    snprintf(cmd, sizeof cmd, "%s foreach -j 2 --exec true < %s > /dev/null", RS_CLI, path);
    double ours_t = shell(cmd);
    double ours = ours_t > 0 ? (double)n / ours_t : 0;
    row("runspace foreach -j 2 --exec true", ours_t, n, 0);
    snprintf(cmd, sizeof cmd, "xargs -P2 -n1 true < %s", path);
    row("xargs -P2 -n1 true", have("xargs") ? shell(cmd) : -1, n, ours);
    snprintf(cmd, sizeof cmd, "parallel --will-cite -j2 true < %s", path);
    row("parallel -j2 true", have("parallel") ? shell(cmd) : -1, n, ours);
    unlink(path);
    return ours_t > 0 ? 0 : 1;
}
