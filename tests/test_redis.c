/*
 * test_redis.c -- runs that span machines, through the `runspace` program and a real
 * redis-server that each test starts (on a free loopback port, or on an address of network
 * namespaces it creates) and always stops: a normal run on two workers, in both orders; a
 * worker killed with -9 mid-run whose items are reclaimed after the lease; three workers on
 * three "hosts" (network namespaces on a bridge), one killed; a worker cut off (its veth
 * down) for longer than the lease; Redis killed and restarted (appendonly) mid-run; the
 * submitter killed and the run resumed with a journal; Redis unreachable, a wrong password,
 * URLs that do not parse, a run of another version, garbage in the run's keys; `runs`.
 *
 * Every check is the same: each index has exactly one record, ok, with the output its input
 * gives. No traffic leaves the machine.
 */
#include "util.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

/* ---- processes ------------------------------------------------------------------------------ */

typedef struct proc {
    pid_t pid;
    char out[64], err[64];
} proc;

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return strdup("");
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = '\0';
    return buf;
}

/* Starts argv with stdout and stderr in files of its own (env: extra NAME=VALUE or NULL). */
static proc spawn(char *const argv[], const char *env)
{
    proc p = {0};
    strcpy(p.out, "/tmp/rs_redis_out_XXXXXX");
    close(mkstemp(p.out));
    strcpy(p.err, "/tmp/rs_redis_err_XXXXXX");
    close(mkstemp(p.err));
    p.pid = fork();
    assert_true(p.pid >= 0);
    if (p.pid == 0) {
        /* Whatever ends the test (a failed assertion, a timeout's SIGKILL), its Redis and its
         * workers end with it. */
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        int in = open("/dev/null", O_RDONLY);
        int out = open(p.out, O_WRONLY | O_TRUNC);
        int err = open(p.err, O_WRONLY | O_TRUNC);
        if (in < 0 || out < 0 || err < 0 || dup2(in, 0) < 0 || dup2(out, 1) < 0 || dup2(err, 2) < 0)
            _exit(126);
        setpgid(0, 0);
        if (env)
            putenv((char *)env);
        else
            unsetenv("REDISCLI_AUTH");
        execvp(argv[0], argv);
        _exit(127);
    }
    return p;
}

typedef struct result {
    int status; /* exit status, or 128 + signal */
    char *out, *err;
} result;

/* Waits for p at most limit seconds (then kills it and fails); collects its output. */
static result finish(proc *p, double limit)
{
    double t0 = rs_test_now();
    int st;
    pid_t got;
    while ((got = waitpid(p->pid, &st, WNOHANG)) == 0) {
        if (rs_test_now() - t0 > limit) {
            kill(p->pid, SIGKILL);
            waitpid(p->pid, &st, 0);
            char *err = slurp(p->err);
            fail_msg("%d did not finish within %.0f s; stderr: %.2000s", (int)p->pid, limit, err);
        }
        sleep_for(0.002);
    }
    result r = {.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st)};
    r.out = slurp(p->out);
    r.err = slurp(p->err);
    unlink(p->out);
    unlink(p->err);
    p->pid = 0;
    return r;
}

static void done(result *r)
{
    free(r->out);
    free(r->err);
}

static result run(char *const argv[], const char *env)
{
    proc p = spawn(argv, env);
    return finish(&p, 120);
}

/* Kills p with sig and reaps it (for a process that must not linger). */
static void kill_proc(proc *p, int sig)
{
    if (p->pid <= 0)
        return;
    kill(p->pid, sig);
    int st;
    waitpid(p->pid, &st, 0);
    unlink(p->out);
    unlink(p->err);
    p->pid = 0;
}

#define ARGV(...) ((char *const[]){__VA_ARGS__, NULL})

/* ---- a Redis of the test's own ----------------------------------------------------------------
 */

typedef struct redis {
    proc p;
    char dir[64];
    char host[32];
    int port;
    char url[160];
    const char *netns; /* NULL: the test's own namespace */
    const char *password;
    bool aof;
} redis;

static int free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    close(fd);
    return ntohs(a.sin_port);
}

/* Starts redis-server (in r->netns when set) and waits until it accepts connections. */
static void redis_start(redis *r)
{
    char port[16], log[96];
    snprintf(port, sizeof port, "%d", r->port);
    snprintf(log, sizeof log, "%s/log", r->dir);
    unlink(log);
    const char *args[40];
    int n = 0;
    if (r->netns) {
        args[n++] = "ip";
        args[n++] = "netns";
        args[n++] = "exec";
        args[n++] = r->netns;
    }
    const char *fixed[] = {"redis-server",
                           "--port",
                           port,
                           "--bind",
                           r->host,
                           "--dir",
                           r->dir,
                           "--save",
                           "",
                           "--logfile",
                           log,
                           "--appendonly",
                           r->aof ? "yes" : "no",
                           "--appendfsync",
                           "always",
                           "--protected-mode",
                           "no"};
    for (size_t i = 0; i < sizeof fixed / sizeof fixed[0]; i++)
        args[n++] = fixed[i];
    if (r->password) {
        args[n++] = "--requirepass";
        args[n++] = r->password;
    }
    args[n] = NULL;
    r->p = spawn((char *const *)args, NULL);
    double t0 = rs_test_now();
    for (;;) {
        char *text = slurp(log);
        bool ready = strstr(text, "Ready to accept connections") != NULL;
        free(text);
        if (ready)
            break;
        int st;
        if (waitpid(r->p.pid, &st, WNOHANG) == r->p.pid) {
            char *err = slurp(log);
            fail_msg("redis-server ended at its start: %.1000s", err);
        }
        if (rs_test_now() - t0 > 10)
            fail_msg("redis-server was not ready within 10 s");
        sleep_for(0.01);
    }
}

/* What a failed test leaves is removed when its process exits: Redis' directory, the
 * namespaces (the processes end by PR_SET_PDEATHSIG). */
static char cleanup_dir[64];
static char cleanup_netns[300];

static void rm_tree(const char *dir);

static void cleanup_at_exit(void)
{
    if (cleanup_dir[0])
        rm_tree(cleanup_dir);
    if (cleanup_netns[0] && system(cleanup_netns) != 0)
        fprintf(stderr, "cannot remove the namespaces: %s\n", cleanup_netns);
}

static void cleanup_register(void)
{
    static bool registered;
    if (!registered)
        atexit(cleanup_at_exit);
    registered = true;
}

/* A new Redis on a free loopback port, in a new temporary directory. */
static void redis_new(redis *r, bool aof, const char *password)
{
    memset(r, 0, sizeof *r);
    strcpy(r->dir, "/tmp/rs_redis_XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    cleanup_register();
    strcpy(cleanup_dir, r->dir);
    strcpy(r->host, "127.0.0.1");
    r->port = free_port();
    r->aof = aof;
    r->password = password;
    snprintf(r->url, sizeof r->url, "redis://%s:%d", r->host, r->port);
    redis_start(r);
}

static void rm_tree(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    while (d && (e = readdir(d))) {
        if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
            continue;
        char path[512];
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        struct stat st;
        if (lstat(path, &st) == 0 && S_ISDIR(st.st_mode))
            rm_tree(path);
        else
            unlink(path);
    }
    if (d)
        closedir(d);
    rmdir(dir);
}

static void redis_stop(redis *r)
{
    kill_proc(&r->p, SIGKILL);
    rm_tree(r->dir);
    cleanup_dir[0] = '\0';
}

/* A connection of the test's own, to look at or write into the keys. */
static redisContext *redis_connect(const redis *r)
{
    redisContext *c = redisConnect(r->host, r->port);
    assert_non_null(c);
    assert_int_equal(c->err, 0);
    if (r->password) {
        redisReply *rep = redisCommand(c, "AUTH %s", r->password);
        assert_non_null(rep);
        freeReplyObject(rep);
    }
    return c;
}

/* ---- workers and checks -----------------------------------------------------------------------
 */

/* Starts a worker (in netns when set) on url. */
static proc worker(const char *netns, const char *url, const char *lease, const char *throttle)
{
    if (netns)
        return spawn(ARGV("ip", "netns", "exec", (char *)netns, RS_CLI, "worker", "--redis",
                          (char *)url, "--lease", (char *)lease, "-j", (char *)throttle,
                          "--retry-for", "60"),
                     NULL);
    return spawn(ARGV(RS_CLI, "worker", "--redis", (char *)url, "--lease", (char *)lease, "-j",
                      (char *)throttle),
                 NULL);
}

/* Stops a worker with SIGTERM: it must exit 0 within 20 s. */
static void worker_stop(proc *w)
{
    kill(w->pid, SIGTERM);
    result r = finish(w, 20);
    if (r.status != 0)
        fail_msg("the worker exited %d after SIGTERM: %s", r.status, r.err);
    done(&r);
}

/* Checks jsonl records: exactly one per index 0..n-1, each ok with output [input * 2] (the
 * inputs being first + index); returns the largest index seen out of order (0 if in order). */
static bool check_records(const char *out, long n, long first)
{
    unsigned char *seen = calloc((size_t)n, 1);
    long count = 0, prev = -1;
    bool in_order = true;
    const char *end = out + strlen(out);
    for (const char *p = out; p < end;) {
        const char *eol = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(eol);
        rs_value *rec = NULL;
        rs_errinfo err;
        if (rs_json_decode(p, (size_t)(eol - p), &rec, &err))
            fail_msg("a record is not JSON (%s): %.*s", err.message, (int)(eol - p), p);
        int64_t i = rs_value_get_int(rs_map_get(rec, "index"));
        if (i < 0 || i >= n)
            fail_msg("a record for index %lld", (long long)i);
        if (seen[i]++)
            fail_msg("index %lld has two records", (long long)i);
        const char *st = rs_value_get_string(rs_map_get(rec, "status"), NULL);
        if (strcmp(st, "ok") != 0)
            fail_msg("index %lld: %s: %s", (long long)i, st,
                     rs_value_get_string(rs_map_get(rec, "error"), NULL));
        assert_int_equal(rs_value_get_int(rs_map_get(rec, "input")), first + i);
        assert_int_equal(rs_value_get_int(rs_array_get(rs_map_get(rec, "output"), 0)),
                         (first + i) * 2);
        if (i < prev)
            in_order = false;
        prev = i;
        rs_value_destroy(rec);
        count++;
        p = eol + 1;
    }
    if (count != n)
        fail_msg("%ld records for %ld inputs", count, n);
    free(seen);
    return in_order;
}

/* ---- the cases ------------------------------------------------------------------------------- */

static void test_two_workers_both_orders(void **state)
{
    (void)state;
    redis r;
    redis_new(&r, false, NULL);
    proc w1 = worker(NULL, r.url, "5", "2"), w2 = worker(NULL, r.url, "5", "2");
    result res = run(ARGV(RS_CLI, "foreach", "--redis", r.url, "--run", "plain", "--range",
                          "1..20000", "--format", "jsonl", "return _ * 2"),
                     NULL);
    if (res.status != 0)
        fail_msg("exit %d: %s", res.status, res.err);
    check_records(res.out, 20000, 1);
    done(&res);
    res = run(ARGV(RS_CLI, "foreach", "--redis", r.url, "--run", "ordered", "--ordered", "--range",
                   "0..4999", "--format", "jsonl",
                   "if _ % 7 == 0 then sleep(0.001) end return _ * 2"),
              NULL);
    assert_int_equal(res.status, 0);
    assert_true(check_records(res.out, 5000, 0));
    done(&res);
    /* Failures keep the local run's records and exit status. */
    res = run(ARGV(RS_CLI, "foreach", "--redis", r.url, "--range", "1..10", "--format", "jsonl",
                   "if _ == 4 then error('four', 0) end return _"),
              NULL);
    assert_int_equal(res.status, 1);
    assert_contains(res.out, "\"index\":3,\"input\":4,\"status\":\"error\"");
    assert_contains(res.out, "\"error\":\"four\"");
    assert_contains(res.err, "run 'run-"); /* a made-up name is shown */
    done(&res);
    /* --fail-fast: the first failure stops the run; every input still has one record. */
    res = run(ARGV(RS_CLI, "foreach", "--redis", r.url, "--fail-fast", "--range", "0..2999",
                   "--format", "jsonl",
                   "if _ == 40 then error('stop here', 0) end sleep(0.001) return _"),
              NULL);
    assert_int_equal(res.status, 1);
    assert_contains(res.out, "\"error\":\"stop here\"");
    assert_contains(res.out, "\"status\":\"cancelled\"");
    {
        unsigned char *seen = calloc(3000, 1);
        long lines = 0;
        for (const char *p = res.out; (p = strstr(p, "{\"index\":")); p++) {
            long i = strtol(p + 9, NULL, 10);
            assert_true(i >= 0 && i < 3000);
            if (seen[i]++)
                fail_msg("index %ld has two records", i);
            lines++;
        }
        assert_int_equal(lines, 3000);
        free(seen);
    }
    done(&res);
    /* A run deleted while it runs ends its submitter (status 3), every input it read with a
     * record. */
    proc sub = spawn(ARGV(RS_CLI, "foreach", "--redis", r.url, "--run", "doomed", "--range",
                          "0..99999", "--format", "jsonl", "sleep(0.01) return _"),
                     NULL);
    sleep_for(0.5);
    res = run(ARGV(RS_CLI, "runs", "--redis", r.url, "--delete", "doomed"), NULL);
    assert_int_equal(res.status, 0);
    done(&res);
    res = finish(&sub, 30);
    assert_int_equal(res.status, 3);
    assert_contains(res.err, "the run 'doomed' was deleted from Redis while it ran");
    assert_contains(res.out, "\"status\":\"cancelled\"");
    done(&res);
    sleep_for(1.0); /* the workers see it gone, and write nothing that would bring it back */
    {
        redisContext *k = redis_connect(&r);
        redisReply *left = redisCommand(k, "KEYS runspace:run:doomed*");
        if (left->elements)
            fail_msg("%zu keys of the deleted run came back, such as %s", left->elements,
                     left->element[0]->str);
        freeReplyObject(left);
        redisFree(k);
    }
    /* The same name again is refused; runs lists both, and deletes one. */
    res = run(
        ARGV(RS_CLI, "foreach", "--redis", r.url, "--run", "plain", "--range", "1..3", "return _"),
        NULL);
    assert_int_equal(res.status, 2);
    assert_contains(res.err, "a run named 'plain' exists on Redis");
    done(&res);
    res = run(ARGV(RS_CLI, "runs", "--redis", r.url), NULL);
    assert_int_equal(res.status, 0);
    assert_contains(res.out, "plain");
    assert_contains(res.out, "done        20000      20000      20000  86");
    done(&res);
    /* A finished run cannot be resumed. */
    res = run(ARGV(RS_CLI, "foreach", "--redis", r.url, "--run", "plain", "--resume", "--range",
                   "1..20000", "return _ * 2"),
              NULL);
    assert_int_equal(res.status, 2);
    assert_contains(res.err, "is finished");
    done(&res);
    res = run(ARGV(RS_CLI, "runs", "--redis", r.url, "--delete", "plain"), NULL);
    assert_int_equal(res.status, 0);
    done(&res);
    res = run(ARGV(RS_CLI, "runs", "--redis", r.url, "--delete", "plain"), NULL);
    assert_int_equal(res.status, 1);
    assert_contains(res.err, "no run named 'plain'");
    done(&res);
    /* A finished run's keys expire; its records, all delivered, are gone at once. */
    redisContext *c = redis_connect(&r);
    redisReply *ttl = redisCommand(c, "TTL runspace:run:ordered");
    assert_true(ttl->integer > 86000 && ttl->integer <= 86400);
    freeReplyObject(ttl);
    ttl = redisCommand(c, "TTL runspace:run:ordered:work");
    assert_true(ttl->integer > 86000 && ttl->integer <= 86400);
    freeReplyObject(ttl);
    ttl = redisCommand(c, "EXISTS runspace:run:ordered:results");
    assert_int_equal(ttl->integer, 0);
    freeReplyObject(ttl);
    redisFree(c);
    worker_stop(&w1);
    worker_stop(&w2);
    redis_stop(&r);
}

/* shared.* spans the workers: incr hands out each number once, add keeps the first, cas
 * keeps the maximum, keys and get see the others' writes. */
static void test_shared_spans_workers(void **state)
{
    (void)state;
    redis r;
    redis_new(&r, false, NULL);
    proc w1 = worker(NULL, r.url, "5", "2"), w2 = worker(NULL, r.url, "5", "2");
    result res = run(ARGV(RS_CLI, "foreach", "--redis", r.url, "--run", "sh", "--range", "0..1999",
                          "--format", "jsonl",
                          "local n = shared.incr('n') "
                          "shared.add('first', 'taken') "
                          "assert(shared.add('first', _) == false) "
                          "for _try = 1, 1000 do local cur = shared.get('max') "
                          "  if cur ~= nil and cur >= _ then break end "
                          "  if shared.cas('max', cur, _) then break end end "
                          "shared.set('k' .. (_ % 5), {_, 'x'}) "
                          "assert(#shared.keys() >= 3) "
                          "local ok, err = pcall(shared.incr, 'first') "
                          "assert(not ok and err:find('not an integer')) "
                          "return n"),
                     NULL);
    if (res.status != 0)
        fail_msg("exit %d: %s", res.status, res.err);
    /* Every n from 1 to 2000 exactly once. */
    unsigned char *seen = calloc(2001, 1);
    long count = 0;
    for (const char *p = strstr(res.out, "\"output\":["); p; p = strstr(p + 1, "\"output\":[")) {
        long n = strtol(p + 10, NULL, 10);
        assert_true(n >= 1 && n <= 2000);
        if (seen[n]++)
            fail_msg("shared.incr gave %ld twice", n);
        count++;
    }
    assert_int_equal(count, 2000);
    free(seen);
    done(&res);
    redisContext *c = redis_connect(&r);
    redisReply *rep = redisCommand(c, "HMGET runspace:run:sh:shared n first max k3");
    assert_string_equal(rep->element[0]->str, "2000");
    assert_string_equal(rep->element[1]->str, "\"taken\"");
    assert_string_equal(rep->element[2]->str, "1999");
    assert_non_null(strstr(rep->element[3]->str, ",\"x\"]"));
    freeReplyObject(rep);
    rep = redisCommand(c, "TTL runspace:run:sh:shared");
    assert_true(rep->integer > 86000);
    freeReplyObject(rep);
    redisFree(c);
    worker_stop(&w1);
    worker_stop(&w2);
    redis_stop(&r);
}

/* Every key of a run is under its prefix; workers and listings see only their prefix. */
static void test_key_prefix(void **state)
{
    (void)state;
    redis r;
    redis_new(&r, false, NULL);
    proc w =
        spawn(ARGV(RS_CLI, "worker", "--redis", r.url, "--key-prefix", "team-a:", "-j", "1"), NULL);
    result res =
        run(ARGV(RS_CLI, "foreach", "--redis", r.url, "--key-prefix", "team-a:", "--run", "p",
                 "--range", "0..99", "--format", "jsonl", "shared.incr('n') return _ * 2"),
            NULL);
    if (res.status != 0)
        fail_msg("exit %d: %s", res.status, res.err);
    check_records(res.out, 100, 0);
    done(&res);
    redisContext *c = redis_connect(&r);
    redisReply *keys = redisCommand(c, "KEYS *");
    assert_true(keys->elements >= 3);
    for (size_t i = 0; i < keys->elements; i++)
        if (strncmp(keys->element[i]->str, "team-a:", 7) != 0)
            fail_msg("key '%s' is not under the prefix", keys->element[i]->str);
    freeReplyObject(keys);
    redisFree(c);
    res = run(ARGV(RS_CLI, "runs", "--redis", r.url), NULL);
    assert_int_equal(res.status, 0);
    assert_contains(res.err, "no runs");
    done(&res);
    res = run(ARGV(RS_CLI, "runs", "--redis", r.url, "--key-prefix", "team-a:"), NULL);
    assert_contains(res.out, "p                                done");
    done(&res);
    res = run(ARGV(RS_CLI, "runs", "--redis", r.url, "--key-prefix", "a b"), NULL);
    assert_int_equal(res.status, 2);
    assert_contains(res.err, "a key prefix is at most 64 printable characters");
    done(&res);
    kill(w.pid, SIGTERM);
    res = finish(&w, 20);
    assert_int_equal(res.status, 0);
    done(&res);
    redis_stop(&r);
}

static void test_worker_killed_items_reclaimed(void **state)
{
    (void)state;
    redis r;
    redis_new(&r, false, NULL);
    proc w[3];
    for (int i = 0; i < 3; i++)
        w[i] = worker(NULL, r.url, "1", "2");
    proc sub = spawn(ARGV(RS_CLI, "foreach", "--redis", r.url, "--run", "k", "--range", "0..5999",
                          "--format", "jsonl", "sleep(0.002) return _ * 2"),
                     NULL);
    sleep_for(0.8);
    /* The worker to be killed holds items now (its pending entries), so that they are the
     * ones reclaimed. */
    redisContext *c = redis_connect(&r);
    char host[64] = "", me[96];
    gethostname(host, sizeof host - 1);
    snprintf(me, sizeof me, "%s-%d", host, (int)w[0].pid);
    redisReply *pend = redisCommand(c, "XPENDING runspace:run:k:work workers - + 1000 %s", me);
    assert_int_equal(pend->type, REDIS_REPLY_ARRAY);
    if (pend->elements == 0)
        fail_msg("the worker %s held nothing when it was killed", me);
    freeReplyObject(pend);
    redisFree(c);
    kill_proc(&w[0], SIGKILL);
    result res = finish(&sub, 120);
    if (res.status != 0)
        fail_msg("exit %d: %s", res.status, res.err);
    check_records(res.out, 6000, 0);
    done(&res);
    worker_stop(&w[1]);
    worker_stop(&w[2]);
    redis_stop(&r);
}

/* The run's journal: exactly one record line per index 0..n-1 (after the header). */
static void check_journal_once(const char *path, long n)
{
    char *text = slurp(path);
    unsigned char *seen = calloc((size_t)n, 1);
    char *end = text + strlen(text);
    char *p = memchr(text, '\n', (size_t)(end - text));
    assert_non_null(p);
    long count = 0;
    for (p++; p < end;) {
        char *eol = memchr(p, '\n', (size_t)(end - p));
        assert_non_null(eol);
        rs_value *rec = NULL;
        assert_ok(rs_json_decode(p, (size_t)(eol - p), &rec, NULL));
        int64_t i = rs_value_get_int(rs_map_get(rec, "index"));
        assert_true(i >= 0 && i < n);
        if (seen[i]++)
            fail_msg("index %lld is twice in the journal", (long long)i);
        assert_string_equal(rs_value_get_string(rs_map_get(rec, "status"), NULL), "ok");
        assert_int_equal(rs_value_get_int(rs_array_get(rs_map_get(rec, "output"), 0)), i * 2);
        rs_value_destroy(rec);
        count++;
        p = eol + 1;
    }
    if (count != n)
        fail_msg("%ld journal records for %ld inputs", count, n);
    free(seen);
    free(text);
}

static void test_submitter_killed_then_resumed(void **state)
{
    (void)state;
    redis r;
    redis_new(&r, false, NULL);
    proc w1 = worker(NULL, r.url, "2", "2"), w2 = worker(NULL, r.url, "2", "2");
    char journal[64];
    strcpy(journal, "/tmp/rs_redis_joblog_XXXXXX");
    close(mkstemp(journal));
    unlink(journal);
    proc sub = spawn(ARGV(RS_CLI, "foreach", "--redis", r.url, "--run", "resumed", "--joblog",
                          journal, "--range", "0..19999", "sleep(0.0003) return _ * 2"),
                     NULL);
    sleep_for(1.0);
    assert_int_equal(waitpid(sub.pid, NULL, WNOHANG), 0); /* killed mid-run, not after */
    kill_proc(&sub, SIGKILL);
    char *first = slurp(journal);
    size_t lines = 0;
    for (const char *q = first; *q; q++)
        lines += *q == '\n';
    free(first);
    if (lines < 2 || lines > 20000)
        fail_msg("the killed submitter journaled %zu lines: not mid-run", lines);
    result res = run(ARGV(RS_CLI, "foreach", "--redis", r.url, "--run", "resumed", "--resume",
                          "--joblog", journal, "--range", "0..19999", "sleep(0.0003) return _ * 2"),
                     NULL);
    if (res.status != 0)
        fail_msg("exit %d: %s", res.status, res.err);
    done(&res);
    check_journal_once(journal, 20000);
    /* Another script cannot re-attach to it. */
    res = run(ARGV(RS_CLI, "foreach", "--redis", r.url, "--run", "resumed", "--resume", "--range",
                   "0..19999", "return _"),
              NULL);
    assert_int_equal(res.status, 2);
    assert_contains(res.err, "belongs to another run");
    done(&res);
    res = run(ARGV(RS_CLI, "foreach", "--redis", r.url, "--run", "nosuch", "--resume", "--range",
                   "0..9", "return _"),
              NULL);
    assert_int_equal(res.status, 2);
    assert_contains(res.err, "there is no run named 'nosuch'");
    done(&res);
    unlink(journal);
    worker_stop(&w1);
    worker_stop(&w2);
    redis_stop(&r);
}

/* SIGINT stops the submitter (status 130, the run stopped on Redis); a resume with the journal
 * sends again what had no record, and the journal's final records are then all ok. */
static void test_interrupted_then_resumed(void **state)
{
    (void)state;
    redis r;
    redis_new(&r, false, NULL);
    proc w1 = worker(NULL, r.url, "2", "2");
    char journal[64];
    strcpy(journal, "/tmp/rs_redis_joblog_XXXXXX");
    close(mkstemp(journal));
    unlink(journal);
    proc sub = spawn(ARGV(RS_CLI, "foreach", "--redis", r.url, "--run", "int", "--joblog", journal,
                          "--range", "0..4999", "sleep(0.001) return _ * 2"),
                     NULL);
    sleep_for(0.8);
    assert_int_equal(waitpid(sub.pid, NULL, WNOHANG), 0);
    kill(sub.pid, SIGINT);
    result res = finish(&sub, 30);
    assert_int_equal(res.status, 130);
    done(&res);
    redisContext *c = redis_connect(&r);
    redisReply *st = redisCommand(c, "HGET runspace:run:int state");
    assert_string_equal(st->str, "stopped");
    freeReplyObject(st);
    redisFree(c);
    res = run(ARGV(RS_CLI, "foreach", "--redis", r.url, "--run", "int", "--resume", "--joblog",
                   journal, "--range", "0..4999", "sleep(0.001) return _ * 2"),
              NULL);
    if (res.status != 0)
        fail_msg("exit %d: %s", res.status, res.err);
    done(&res);
    res = run(ARGV(RS_CLI, "joblog", journal), NULL);
    assert_int_equal(res.status, 0);
    check_records(res.out, 5000, 0);
    done(&res);
    unlink(journal);
    worker_stop(&w1);
    redis_stop(&r);
}

static void test_redis_restarted_mid_run(void **state)
{
    (void)state;
    redis r;
    redis_new(&r, true, NULL);
    proc w1 = worker(NULL, r.url, "2", "2"), w2 = worker(NULL, r.url, "2", "2");
    proc sub = spawn(ARGV(RS_CLI, "foreach", "--redis", r.url, "--run", "restart", "--range",
                          "0..9999", "--format", "jsonl", "sleep(0.0005) return _ * 2"),
                     NULL);
    sleep_for(0.8);
    assert_int_equal(waitpid(sub.pid, NULL, WNOHANG), 0); /* Redis goes mid-run */
    kill_proc(&r.p, SIGKILL);
    sleep_for(1.0);
    redis_start(&r); /* the same port and directory: the append-only file */
    result res = finish(&sub, 120);
    if (res.status != 0)
        fail_msg("exit %d: %s", res.status, res.err);
    check_records(res.out, 10000, 0);
    done(&res);
    worker_stop(&w1);
    worker_stop(&w2);
    redis_stop(&r);
}

static void test_unreachable_password_and_urls(void **state)
{
    (void)state;
    char url[96];
    snprintf(url, sizeof url, "redis://127.0.0.1:%d", free_port()); /* nothing listens */
    result res = run(ARGV(RS_CLI, "foreach", "--redis", url, "--range", "1..3", "return _"), NULL);
    assert_int_equal(res.status, 3);
    assert_contains(res.err, "runspace: cannot reach Redis at 127.0.0.1:");
    done(&res);
    res = run(ARGV(RS_CLI, "worker", "--redis", url), NULL);
    assert_int_equal(res.status, 3);
    assert_contains(res.err, "cannot reach Redis");
    done(&res);
    res = run(ARGV(RS_CLI, "runs", "--redis", url), NULL);
    assert_int_equal(res.status, 3);
    done(&res);
    static const char *const bad[] = {"http://x",        "redis://",      "redis://h:0",
                                      "redis://h:99999", "redis://h:12x", "redis://h/db",
                                      "redis://user@h",  "redis://[::1",  "redis://h o"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        res = run(ARGV(RS_CLI, "foreach", "--redis", (char *)bad[i], "--range", "1..3", "return _"),
                  NULL);
        if (res.status != 2)
            fail_msg("%s: exit %d: %s", bad[i], res.status, res.err);
        assert_contains(res.err, "runspace: ");
        done(&res);
        res = run(ARGV(RS_CLI, "worker", "--redis", (char *)bad[i]), NULL);
        assert_int_equal(res.status, 2);
        done(&res);
    }

    redis r;
    redis_new(&r, false, "s3cret-word");
    char wrong[160], right[160];
    snprintf(wrong, sizeof wrong, "redis://:not-the-word@127.0.0.1:%d", r.port);
    snprintf(right, sizeof right, "redis://:s3cret-word@127.0.0.1:%d", r.port);
    res = run(ARGV(RS_CLI, "foreach", "--redis", wrong, "--range", "1..3", "return _"), NULL);
    assert_int_equal(res.status, 3);
    assert_contains(res.err, "refused the password");
    assert_null(strstr(res.err, "not-the-word"));
    done(&res);
    res = run(ARGV(RS_CLI, "foreach", "--redis", r.url, "--range", "1..3", "return _"), NULL);
    assert_int_equal(res.status, 3);
    assert_contains(res.err, "wants a password");
    done(&res);
    /* The password from REDISCLI_AUTH, and from the URL. */
    proc w = spawn(ARGV(RS_CLI, "worker", "--redis", right, "-j", "1"), NULL);
    res = run(ARGV(RS_CLI, "foreach", "--redis", r.url, "--range", "0..99", "--format", "jsonl",
                   "return _ * 2"),
              "REDISCLI_AUTH=s3cret-word");
    if (res.status != 0)
        fail_msg("exit %d: %s", res.status, res.err);
    check_records(res.out, 100, 0);
    assert_null(strstr(res.err, "s3cret"));
    done(&res);
    kill(w.pid, SIGTERM);
    res = finish(&w, 20);
    assert_int_equal(res.status, 0);
    assert_null(strstr(res.err, "s3cret"));
    done(&res);
    redis_stop(&r);

    /* Options that do not go together. */
    res = run(ARGV(RS_CLI, "foreach", "--redis", "redis://h", "--restricted", "return _"), NULL);
    assert_int_equal(res.status, 2);
    assert_contains(res.err, "--restricted is the worker's to set");
    done(&res);
    res = run(ARGV(RS_CLI, "foreach", "--redis", "redis://h", "--resume", "return _"), NULL);
    assert_int_equal(res.status, 2);
    assert_contains(res.err, "needs --run NAME");
    done(&res);
    res = run(ARGV(RS_CLI, "foreach", "--redis", "redis://h", "--run", "o", "--resume", "--ordered",
                   "return _"),
              NULL);
    assert_int_equal(res.status, 2);
    assert_contains(res.err, "an ordered run on Redis cannot be resumed");
    done(&res);
    res = run(ARGV(RS_CLI, "foreach", "--redis", "redis://h", "--run", "a/b", "return _"), NULL);
    assert_int_equal(res.status, 2);
    assert_contains(res.err, "a run's name is 1 to 64 letters");
    done(&res);
    res = run(ARGV(RS_CLI, "worker"), NULL);
    assert_int_equal(res.status, 2);
    assert_contains(res.err, "--redis URL is required");
    done(&res);
}

static void test_garbage_in_the_keys(void **state)
{
    (void)state;
    redis r;
    redis_new(&r, false, NULL);
    redisContext *c = redis_connect(&r);
    /* A run of another version, and names in the set that are no runs. */
    freeReplyObject(redisCommand(c, "HSET runspace:run:future version 2 state running"));
    freeReplyObject(redisCommand(c, "SADD runspace:runs future ../../etc %b", "a\0b", (size_t)3));
    freeReplyObject(redisCommand(c, "SET runspace:run:weird:work 1"));
    freeReplyObject(redisCommand(c, "SADD runspace:runs weird"));
    freeReplyObject(redisCommand(c, "HSET runspace:run:weird version 1 state running timeout x"));
    /* The run is submitted before any worker runs; garbage then goes into both streams. */
    proc sub = spawn(ARGV(RS_CLI, "foreach", "--redis", r.url, "--run", "g", "--range", "0..1999",
                          "--format", "jsonl", "return _ * 2"),
                     NULL);
    double t0 = rs_test_now();
    for (;;) {
        redisReply *len = redisCommand(c, "XLEN runspace:run:g:work");
        bool there = len->type == REDIS_REPLY_INTEGER && len->integer > 0;
        freeReplyObject(len);
        if (there)
            break;
        if (rs_test_now() - t0 > 20)
            fail_msg("the run never reached Redis");
        sleep_for(0.01);
    }
    static const char *const work[] = {"not json", "{}",          "[]",      "[[\"a\",1]]",
                                       "[[-1,1]]", "[[1e300,1]]", "[1,2,3]", "[[68719476737,1]]"};
    for (size_t i = 0; i < sizeof work / sizeof work[0]; i++)
        freeReplyObject(redisCommand(c, "XADD runspace:run:g:work * v %s", work[i]));
    freeReplyObject(redisCommand(c, "XADD runspace:run:g:work * other field"));
    static const char *const results[] = {"not json",
                                          "[[1]]",
                                          "[[5,\"fine\",5,[10],null,0,0,1,1]]",
                                          "[[5,\"ok\",5,7,null,0,0,1,1]]",
                                          "[[5,\"error\",5,[],null,0,0,1,1]]",
                                          "[[999999,\"ok\",1,[2],null,0,0,1,1]]",
                                          "[[5,\"ok\",5,[10],null,-1,0,1,1]]",
                                          "{}"};
    for (size_t i = 0; i < sizeof results / sizeof results[0]; i++)
        freeReplyObject(redisCommand(c, "XADD runspace:run:g:results * r %s", results[i]));
    freeReplyObject(redisCommand(c, "XADD runspace:run:g:results * x y"));
    proc w = worker(NULL, r.url, "5", "2");
    result res = finish(&sub, 120);
    if (res.status != 0)
        fail_msg("exit %d: %s", res.status, res.err);
    check_records(res.out, 2000, 0);
    assert_contains(res.err, "were not records and were dropped");
    done(&res);
    kill(w.pid, SIGTERM);
    res = finish(&w, 20);
    assert_int_equal(res.status, 0);
    assert_contains(res.err, "run 'future' skipped: it was written by another version");
    assert_contains(res.err, "run 'weird' skipped: its timeout or retries are not valid");
    assert_contains(res.err, "is not a list of items: dropped");
    done(&res);
    redisFree(c);
    redis_stop(&r);
}

/* The records a worker's notes say it stored for run (every "run 'RUN': N records stored"). */
static long stored_by(const char *err, const char *run)
{
    char needle[96];
    snprintf(needle, sizeof needle, "run '%s': ", run);
    long total = 0;
    for (const char *p = strstr(err, needle); p; p = strstr(p + 1, needle))
        total += strtol(p + strlen(needle), NULL, 10);
    return total;
}

/* ---- hosts in network namespaces ------------------------------------------------------------ */

#define NETNS_FIXTURE RS_TEST_FIXTURES "/redis/netns.sh"

/* Builds the namespaces of netns.sh (prefix, n hosts); false (the test skips) without root
 * or ip. */
static bool netns_up(char *prefix, size_t cap, int n)
{
    if (geteuid() != 0 || system("ip netns list >/dev/null 2>&1") != 0) {
        print_message("skipped: network namespaces need root and iproute2\n");
        return false;
    }
    snprintf(prefix, cap, "rsq%d-", (int)getpid() % 100000);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "sh %s down %s %d; sh %s up %s %d", NETNS_FIXTURE, prefix, n,
             NETNS_FIXTURE, prefix, n);
    cleanup_register();
    snprintf(cleanup_netns, sizeof cleanup_netns, "sh %s down %s %d", NETNS_FIXTURE, prefix, n);
    if (system(cmd) != 0)
        fail_msg("the namespaces could not be built (%s)", cmd);
    return true;
}

static void netns_down(const char *prefix, int n)
{
    char cmd[256];
    snprintf(cmd, sizeof cmd, "sh %s down %s %d", NETNS_FIXTURE, prefix, n);
    assert_int_equal(system(cmd), 0);
    cleanup_netns[0] = '\0';
}

/* A Redis on the bridge of the namespaces. */
static void redis_in_netns(redis *r, const char *ns)
{
    memset(r, 0, sizeof *r);
    strcpy(r->dir, "/tmp/rs_redis_XXXXXX");
    assert_non_null(mkdtemp(r->dir));
    cleanup_register();
    strcpy(cleanup_dir, r->dir);
    strcpy(r->host, "198.18.7.1");
    r->port = 6379;
    r->netns = ns;
    snprintf(r->url, sizeof r->url, "redis://%s:%d", r->host, r->port);
    redis_start(r);
}

static void test_three_hosts_one_killed(void **state)
{
    (void)state;
    char prefix[32], rns[40], hns[3][40];
    if (!netns_up(prefix, sizeof prefix, 3))
        skip();
    snprintf(rns, sizeof rns, "%sr", prefix);
    redis r;
    redis_in_netns(&r, rns);
    proc w[3];
    for (int i = 0; i < 3; i++) {
        snprintf(hns[i], sizeof hns[i], "%s%d", prefix, i + 1);
        w[i] = worker(hns[i], r.url, "1", "1");
    }
    proc sub = spawn(ARGV("ip", "netns", "exec", rns, RS_CLI, "foreach", "--redis", r.url, "--run",
                          "hosts", "--range", "0..99999", "--format", "jsonl",
                          "local s = 0 for i = 1, 3000 do s = s + i end return _ * 2"),
                     NULL);
    sleep_for(0.7);
    assert_int_equal(waitpid(sub.pid, NULL, WNOHANG), 0);
    /* The worker to be killed holds entries (ip netns exec becomes the worker: its pid). */
    char cmd[256], host[64] = "";
    gethostname(host, sizeof host - 1);
    snprintf(cmd, sizeof cmd,
             "ip netns exec %s redis-cli -h 198.18.7.1 XPENDING runspace:run:hosts:work workers "
             "- + 1000 %s-%d | wc -l",
             rns, host, (int)w[0].pid);
    FILE *f = popen(cmd, "r");
    long held = 0;
    assert_int_equal(fscanf(f, "%ld", &held), 1);
    pclose(f);
    if (held == 0)
        fail_msg("the worker held nothing when it was killed");
    kill_proc(&w[0], SIGKILL);
    result res = finish(&sub, 250);
    if (res.status != 0)
        fail_msg("exit %d: %s", res.status, res.err);
    check_records(res.out, 100000, 0);
    done(&res);
    worker_stop(&w[1]);
    worker_stop(&w[2]);
    redis_stop(&r);
    netns_down(prefix, 3);
}

static void test_host_cut_off_beyond_the_lease(void **state)
{
    (void)state;
    char prefix[32], rns[40], hns[2][40], cmd[256];
    if (!netns_up(prefix, sizeof prefix, 2))
        skip();
    snprintf(rns, sizeof rns, "%sr", prefix);
    redis r;
    redis_in_netns(&r, rns);
    proc w[2];
    for (int i = 0; i < 2; i++) {
        snprintf(hns[i], sizeof hns[i], "%s%d", prefix, i + 1);
        w[i] = worker(hns[i], r.url, "1", "2");
    }
    proc sub =
        spawn(ARGV("ip", "netns", "exec", rns, RS_CLI, "foreach", "--redis", r.url, "--run", "cut",
                   "--range", "0..2999", "--format", "jsonl", "sleep(0.004) return _ * 2"),
              NULL);
    sleep_for(0.6);
    assert_int_equal(waitpid(sub.pid, NULL, WNOHANG), 0);
    snprintf(cmd, sizeof cmd, "ip -n %s link set p1 down", rns);
    assert_int_equal(system(cmd), 0);
    sleep_for(2.5); /* more than the lease of 1 s */
    snprintf(cmd, sizeof cmd, "ip -n %s link set p1 up", rns);
    assert_int_equal(system(cmd), 0);
    result res = finish(&sub, 120);
    if (res.status != 0)
        fail_msg("exit %d: %s", res.status, res.err);
    check_records(res.out, 3000, 0);
    done(&res);
    /* Both workers stored the cut-off one's items: it ran them, stored them late, and the
     * other ran them again after the lease; the run kept one record each. */
    long stored = 0;
    for (int i = 0; i < 2; i++) {
        kill(w[i].pid, SIGTERM);
        res = finish(&w[i], 20);
        assert_int_equal(res.status, 0);
        stored += stored_by(res.err, "cut");
        done(&res);
    }
    if (stored <= 3000)
        fail_msg("%ld records stored for 3000 items: nothing ran twice", stored);
    redis_stop(&r);
    netns_down(prefix, 2);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_two_workers_both_orders),
    cmocka_unit_test(test_shared_spans_workers),
    cmocka_unit_test(test_key_prefix),
    cmocka_unit_test(test_worker_killed_items_reclaimed),
    cmocka_unit_test(test_submitter_killed_then_resumed),
    cmocka_unit_test(test_interrupted_then_resumed),
    cmocka_unit_test(test_redis_restarted_mid_run),
    cmocka_unit_test(test_unreachable_password_and_urls),
    cmocka_unit_test(test_garbage_in_the_keys),
    cmocka_unit_test(test_three_hosts_one_killed),
    cmocka_unit_test(test_host_cut_off_beyond_the_lease),
};

RS_TEST_MAIN(tests)
