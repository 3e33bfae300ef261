/*
 * bench_redis.c -- the figures of runs on Redis (issue 10), each beside its peer in the same
 * run, with a redis-server of its own on a free loopback port:
 *
 *   1. 1,000,000 trivial items (`return _`) through Redis with 2 local workers (-j 1 each),
 *      against the same items run locally (`foreach -j 2`): items per second (best of 3);
 *   2. 400 CPU-bound items of about 10 ms each on 2 workers against 1 (each -j 1, started
 *      before the clock): the speed-up (best of 3 each);
 *   3. Redis memory per in-flight item (a run submitted with no worker and --batch 1024: its
 *      window of items waits in the work stream) and per finished run (what a run's keys hold once
 * it is done, until they expire).
 *
 * Usage: bench_redis [--quick]   (--quick: 200,000 trivial items, 100 CPU-bound ones)
 */
#include <runspace.h>

#include <arpa/inet.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static bool quick;
static char url[64];
static int port;

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void row(const char *metric, const char *value, const char *target, const char *peer,
                const char *ratio)
{
    printf("%-52s %-14s %-12s %-34s %s\n", metric, value, target, peer, ratio);
    fflush(stdout);
}

/* Runs a shell command, its stdout to /dev/null; the wall time, or -1 when it failed. */
static double shell(const char *cmd)
{
    char full[2048];
    snprintf(full, sizeof full, "%s >/dev/null", cmd);
    double t0 = now();
    int st = system(full);
    double t = now() - t0;
    return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? t : -1;
}

static pid_t spawn_quiet(const char *cmd)
{
    pid_t pid = fork();
    if (pid == 0) {
        setpgid(0, 0);
        execl("/bin/sh", "sh", "-c", cmd, (char *)NULL);
        _exit(127);
    }
    return pid;
}

static void stop(pid_t pid)
{
    kill(-pid, SIGTERM);
    waitpid(pid, NULL, 0);
}

/* Starts n workers, each -j 1. */
static void workers(pid_t *pids, int n)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "exec %s worker --redis %s -j 1 -q", RS_CLI, url);
    for (int i = 0; i < n; i++)
        pids[i] = spawn_quiet(cmd);
}

static long long used_memory(void)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r = c && !c->err ? redisCommand(c, "INFO memory") : NULL;
    long long v = -1;
    const char *p = r && r->type == REDIS_REPLY_STRING ? strstr(r->str, "used_memory:") : NULL;
    if (p)
        v = atoll(p + 12);
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    return v;
}

static long long hash_u64(const char *key, const char *field)
{
    redisContext *c = redisConnect("127.0.0.1", port);
    redisReply *r = c && !c->err ? redisCommand(c, "HGET %s %s", key, field) : NULL;
    long long v = r && r->type == REDIS_REPLY_STRING ? atoll(r->str) : -1;
    if (r)
        freeReplyObject(r);
    if (c)
        redisFree(c);
    return v;
}

static void bench_trivial(void)
{
    long n = quick ? 200000 : 1000000;
    char cmd[512];
    double best_redis = 1e9, best_local = 1e9;
    pid_t w[2];
    workers(w, 2);
    for (int round = 0; round < 3; round++) {
        snprintf(cmd, sizeof cmd, "%s foreach --redis %s --run trivial%d --range 1..%ld 'return _'",
                 RS_CLI, url, round, n);
        double t = shell(cmd);
        if (t > 0 && t < best_redis)
            best_redis = t;
        snprintf(cmd, sizeof cmd, "%s foreach -j 2 --range 1..%ld 'return _'", RS_CLI, n);
        t = shell(cmd);
        if (t > 0 && t < best_local)
            best_local = t;
    }
    stop(w[0]);
    stop(w[1]);
    char m[96], v[48], p[96], r[48];
    snprintf(m, sizeof m, "%ld trivial items, Redis, 2 workers (best of 3)", n);
    snprintf(v, sizeof v, "%.0f k/s", (double)n / best_redis / 1e3);
    snprintf(p, sizeof p, "local -j 2: %.0f k/s", (double)n / best_local / 1e3);
    snprintf(r, sizeof r, "%.2fx of local", best_local / best_redis);
    row(m, v, ">= 200 k/s", p, r);
}

static void bench_cpu(void)
{
    int n = quick ? 100 : 400;
    /* About 10 ms of Lua per item on this machine: measured first, with one runspace. */
    long loops = 200000;
    char cmd[512];
    snprintf(cmd, sizeof cmd,
             "%s foreach -j 1 --range 1..20 'local s = 0 for i = 1, %ld do s = s + i end return s'",
             RS_CLI, loops);
    double t = shell(cmd);
    if (t > 0)
        loops = (long)((double)loops * 0.010 / (t / 20));
    double took[2] = {1e9, 1e9};
    for (int k = 1; k <= 2; k++) {
        pid_t w[2];
        workers(w, k);
        usleep(500000); /* the workers are up and waiting before the clock starts */
        for (int round = 0; round < 3; round++) {
            snprintf(cmd, sizeof cmd,
                     "%s foreach --redis %s --run cpu%d-%d --range 1..%d 'local s = 0 for i = 1, "
                     "%ld do s = s + i end return s'",
                     RS_CLI, url, k, round, n, loops);
            double took_now = shell(cmd);
            if (took_now > 0 && took_now < took[k - 1])
                took[k - 1] = took_now;
        }
        for (int i = 0; i < k; i++)
            stop(w[i]);
    }
    char m[96], v[48], p[96], r[48];
    snprintf(m, sizeof m, "%d CPU-bound items (~10 ms), 2 workers vs 1 (best of 3)", n);
    snprintf(v, sizeof v, "%.2f s", took[1]);
    snprintf(p, sizeof p, "1 worker: %.2f s", took[0]);
    snprintf(r, sizeof r, "%.2fx", took[0] / took[1]);
    row(m, v, ">= 1.8x", p, r);
}

static void bench_memory(void)
{
    char cmd[512];
    long long base = used_memory();
    /* A run with no worker: the submitter fills its window, then waits (--batch: the entry
     * size the trivial items get once their duration is known; without it, and without
     * workers, the submitter sends only its first 64 items). */
    snprintf(cmd, sizeof cmd,
             "exec %s foreach --redis %s --run mem --batch 1024 --range 1..200000 'return _' "
             ">/dev/null",
             RS_CLI, url);
    pid_t sub = spawn_quiet(cmd);
    long long inflight = 0;
    for (int i = 0; i < 100 && inflight < 65536; i++) {
        usleep(50000);
        inflight = hash_u64("runspace:run:mem", "submitted");
    }
    long long held = used_memory();
    pid_t w[2];
    workers(w, 2);
    waitpid(sub, NULL, 0);
    stop(w[0]);
    stop(w[1]);
    long long after = used_memory();
    char v[48], p[96];
    snprintf(v, sizeof v, "%.0f B", inflight > 0 ? (double)(held - base) / (double)inflight : 0);
    snprintf(p, sizeof p, "%lld items waiting: %.1f MiB", inflight,
             (double)(held - base) / (1 << 20));
    row("Redis memory per in-flight item", v, "", p, "");
    snprintf(v, sizeof v, "%.1f KiB", (double)(after - base) / 1024);
    snprintf(p, sizeof p, "200,000 items, until the TTL");
    row("Redis memory per finished run", v, "", p, "");
}

int main(int argc, char **argv)
{
    quick = argc > 1 && strcmp(argv[1], "--quick") == 0;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (bind(fd, (struct sockaddr *)&a, sizeof a) || getsockname(fd, (struct sockaddr *)&a, &len))
        return 1;
    close(fd);
    port = ntohs(a.sin_port);
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", port);
    char dir[] = "/tmp/rs_bench_redis_XXXXXX", cmd[512];
    if (!mkdtemp(dir))
        return 1;
    snprintf(cmd, sizeof cmd,
             "exec redis-server --port %d --bind 127.0.0.1 --dir %s --save '' --appendonly no "
             "--logfile %s/log",
             port, dir, dir);
    pid_t redis = spawn_quiet(cmd);
    for (int i = 0; i < 200 && used_memory() < 0; i++)
        usleep(25000);
    printf("runspace %s Redis benchmarks (%ld CPUs online)%s\n", rs_version(),
           sysconf(_SC_NPROCESSORS_ONLN), quick ? " -- quick run" : "");
    row("metric", "value", "target", "peer (same run)", "ratio");
    bench_trivial();
    bench_cpu();
    bench_memory();
    kill(-redis, SIGKILL);
    waitpid(redis, NULL, 0);
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : 1;
}
