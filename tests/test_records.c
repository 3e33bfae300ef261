/*
 * test_records.c -- one record per input, under everything at once: randomized for-each runs
 * through the C API (errors, timeouts, retries, fail-fast, both orders, stops from another
 * thread at random moments, unreadable inputs, blocking inputs, batch sizes and throttles),
 * and the CLI interrupted at random moments and fed malformed JSON.
 *
 * Every run is seeded: the seed is printed at the start and in every failure, and
 * RS_TEST_SEED=N replays it. Runs are bounded (a hang fails with a message) and each case
 * stops starting new rounds after a time budget, so that the sanitizer builds stay quick.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

#define BUDGET_SECONDS 6.0 /* per case: no new round starts after this */

static unsigned seed_base(void)
{
    const char *env = getenv("RS_TEST_SEED");
    unsigned seed =
        env ? (unsigned)strtoul(env, NULL, 10) : (unsigned)time(NULL) ^ (unsigned)getpid();
    print_message("seed %u (replay with RS_TEST_SEED=%u)\n", seed, seed);
    return seed;
}

/* xorshift32: a small PRNG whose state is one word, for the reader thread and the test. */
static unsigned rnd(unsigned *s)
{
    unsigned x = *s ? *s : 2463534242u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static unsigned below(unsigned *s, unsigned n)
{
    return n ? rnd(s) % n : 0;
}

/* ---- randomized runs through the C API ---------------------------------------------------- */

/* What an input does; the script reads it from the input's low three bits. */
enum {
    K_OK = 0,
    K_ERROR = 1,   /* error('boom') */
    K_SLOW = 2,    /* sleep(0.005), then ok */
    K_LOOP = 3,    /* loops until its timeout (only with a timeout) */
    K_FLAKY = 4,   /* fails on its first attempt only */
    K_COMPUTE = 5, /* a short loop, then ok */
    K_BAD = 7      /* unreadable: the iterator reports an error */
};

static const char script[] =
    "local kind = _ % 8\n"
    "if kind == 1 then error('boom') end\n"
    "if kind == 2 then sleep(0.005) end\n"
    "if kind == 3 then while true do end end\n"
    "if kind == 4 and shared.incr('try' .. _) == 1 then error('flaky') end\n"
    "if kind == 5 then local x = 0 for i = 1, 5000 do x = x + i end end\n"
    "return _\n";

typedef struct round_cfg {
    unsigned seed;
    int round;
    long n;
    unsigned bad_permille;
    int loops;        /* K_LOOP inputs allowed */
    long block_after; /* the iterator blocks (until a stop) after this many inputs; -1: never */
    bool stop;
    bool stop_first; /* the stop comes before the run begins */
    double stop_after;
    bool own_pool;
    unsigned pool_max;
    rs_foreach_opts o;
} round_cfg;

typedef struct source {
    rs_foreach *fe;
    unsigned rng; /* reader thread only */
    long n;
    long next;
    unsigned bad_permille;
    int loops_left;
    long block_after;
    bool null_bad; /* unreadable inputs come without an item (null input) */
    unsigned char *kind;
    bool block_timed_out;
} source;

static int next_input(void *ud, rs_value **item, char **error)
{
    source *in = ud;
    if (in->block_after >= 0 && in->next == in->block_after) {
        /* Input that never comes: only a stop ends the wait (as rs_input_fn asks). */
        struct pollfd p = {.fd = rs_foreach_stop_fd(in->fe), .events = POLLIN};
        int r;
        while ((r = poll(&p, 1, 20000)) < 0 && errno == EINTR)
            continue;
        if (r == 0)
            in->block_timed_out = true;
        return 0;
    }
    if (in->next >= in->n)
        return 0;
    long i = in->next++;
    unsigned r = below(&in->rng, 1000);
    int k;
    if (r < in->bad_permille) {
        k = K_BAD;
    } else {
        r = below(&in->rng, 100);
        k = r < 6 ? K_ERROR : r < 8 ? K_SLOW : r < 18 ? K_FLAKY : r < 23 ? K_COMPUTE : K_OK;
        if (r >= 98 && in->loops_left > 0) {
            in->loops_left--;
            k = K_LOOP;
        }
    }
    in->kind[i] = (unsigned char)k;
    if (k == K_BAD) {
        *item = in->null_bad ? NULL : rs_value_string("garbage");
        *error = strdup("unreadable input");
        return RS_EJSON;
    }
    *item = rs_value_int(i * 8 + k);
    return 1;
}

/* What the records said; filled on the run thread, checked on the main thread afterwards. */
typedef struct record_log {
    long n;
    unsigned char *count;
    signed char *status;
    int *attempts;
    long records;
    long by_status[4];
    long last_index;
    bool out_of_order;
    long out_of_range;
    char problem[512]; /* the first malformed record */
} record_log;

static void note(record_log *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void note(record_log *l, const char *fmt, ...)
{
    if (l->problem[0])
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->problem, sizeof l->problem, fmt, ap);
    va_end(ap);
}

static void on_record(const rs_foreach_record *r, void *ud)
{
    record_log *l = ud;
    l->records++;
    if ((long)r->index >= l->n) {
        l->out_of_range++;
        return;
    }
    long i = (long)r->index;
    if (l->count[i] < 255)
        l->count[i]++;
    l->status[i] = (signed char)r->status;
    l->attempts[i] = r->attempts;
    if ((unsigned)r->status < 4)
        l->by_status[r->status]++;
    if (i < l->last_index)
        l->out_of_order = true;
    l->last_index = i;
    if (!r->input || !r->output) {
        note(l, "index %ld: record without input or output", i);
        return;
    }
    if ((r->status == RS_ITEM_OK) != (r->error == NULL))
        note(l, "index %ld: status %s with error %s", i, rs_item_status_name(r->status),
             r->error ? r->error : "NULL");
    if (r->status == RS_ITEM_OK) {
        if (rs_value_type(r->input) != RS_TINT || rs_value_get_int(r->input) / 8 != i ||
            rs_array_len(r->output) != 1 ||
            rs_value_get_int(rs_array_get(r->output, 0)) != rs_value_get_int(r->input))
            note(l, "index %ld: ok record with the wrong input or output", i);
    } else if (rs_array_len(r->output) != 0) {
        note(l, "index %ld: %s record with output", i, rs_item_status_name(r->status));
    }
}

typedef struct stopper {
    rs_foreach *fe;
    double after;
} stopper;

static void *stop_later(void *arg)
{
    stopper *s = arg;
    sleep_for(s->after);
    rs_foreach_stop(s->fe);
    return NULL;
}

typedef struct bounded_run {
    rs_foreach *fe;
    rs_foreach_summary sum;
    int rc;
} bounded_run;

static void *bounded_main(void *arg)
{
    bounded_run *b = arg;
    b->rc = rs_foreach_run(b->fe, &b->sum);
    return NULL;
}

#define CHECK(cfg, cond, ...)                                                                      \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            print_message("seed %u round %d: n=%ld throttle=%u batch=%u timeout=%g retries=%u "    \
                          "ordered=%d fail_fast=%d stop=%d(%.3f s, first %d) bad=%u/1000 "         \
                          "block_after=%ld own_pool=%d\n",                                         \
                          (cfg)->seed, (cfg)->round, (cfg)->n, (cfg)->o.throttle, (cfg)->o.batch,  \
                          (cfg)->o.timeout, (cfg)->o.retries, (cfg)->o.ordered,                    \
                          (cfg)->o.fail_fast, (cfg)->stop, (cfg)->stop_after, (cfg)->stop_first,   \
                          (cfg)->bad_permille, (cfg)->block_after, (cfg)->own_pool);               \
            fail_msg(__VA_ARGS__);                                                                 \
        }                                                                                          \
    } while (0)

static round_cfg random_round(unsigned *rng, unsigned seed, int round)
{
    round_cfg c = {.seed = seed, .round = round, .block_after = -1};
    static const unsigned batches[] = {0, 0, 1, 2, 7, 64, 1000};
    static const double timeouts[] = {0, 0, 0.05, 0.1};
    c.n = (long)below(rng, 4) == 0 ? (long)below(rng, 20) : (long)below(rng, 1500) + 1;
    /* None, some, or nearly all inputs unreadable. */
    unsigned bad = below(rng, 4);
    c.bad_permille = bad == 0 ? 0 : bad == 3 ? 900 + below(rng, 101) : below(rng, 100);
    c.o.throttle = 1 + below(rng, 4);
    c.o.batch = batches[below(rng, sizeof batches / sizeof batches[0])];
    c.o.timeout = timeouts[below(rng, sizeof timeouts / sizeof timeouts[0])];
    c.loops = c.o.timeout > 0 ? (int)below(rng, 3) : 0;
    c.o.retries = below(rng, 3);
    c.o.ordered = below(rng, 2);
    c.o.fail_fast = below(rng, 4) == 0;
    c.stop = below(rng, 3) == 0;
    c.stop_after = (double)below(rng, 40) * 1e-3;
    c.stop_first = c.stop && below(rng, 8) == 0;
    if (c.stop && below(rng, 3) == 0)
        c.block_after = (long)below(rng, (unsigned)c.n + 1);
    c.own_pool = below(rng, 3) != 0;
    c.pool_max = 1 + below(rng, 3);
    return c;
}

static bool can_be_ok(int k)
{
    return k == K_OK || k == K_SLOW || k == K_FLAKY || k == K_COMPUTE;
}

static void one_round(round_cfg *c)
{
    source in = {.rng = c->seed ^ (unsigned)c->round * 2654435761u,
                 .n = c->n,
                 .bad_permille = c->bad_permille,
                 .loops_left = c->loops,
                 .block_after = c->block_after,
                 .null_bad = c->round % 2,
                 .kind = calloc((size_t)c->n + 1, 1)};
    record_log log = {.n = c->n,
                      .count = calloc((size_t)c->n + 1, 1),
                      .status = calloc((size_t)c->n + 1, 1),
                      .attempts = calloc((size_t)c->n + 1, sizeof(int)),
                      .last_index = -1};
    rs_pool *pool = NULL;
    rs_foreach_opts o = c->o;
    if (!c->own_pool) {
        assert_ok(rs_pool_create(&(rs_pool_opts){.max_runspaces = c->pool_max}, &pool));
        assert_ok(rs_pool_open(pool));
        o.pool = pool;
    }
    o.next = next_input;
    o.input_userdata = &in;
    o.on_record = on_record;
    o.userdata = &log;
    rs_foreach *fe;
    assert_ok(rs_foreach_create(&o, &fe));
    assert_ok(rs_foreach_set_script(fe, script, (size_t)-1));
    in.fe = fe;

    pthread_t stop_thread;
    stopper st = {fe, c->stop_after};
    if (c->stop_first)
        assert_ok(rs_foreach_stop(fe));
    else if (c->stop)
        assert_int_equal(pthread_create(&stop_thread, NULL, stop_later, &st), 0);
    bounded_run b = {.fe = fe};
    pthread_t run_thread;
    assert_int_equal(pthread_create(&run_thread, NULL, bounded_main, &b), 0);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += 30;
    CHECK(c, pthread_timedjoin_np(run_thread, NULL, &ts) == 0,
          "rs_foreach_run still running after 30 s (read %ld of %ld inputs, %ld records)", in.next,
          c->n, log.records);
    if (c->stop && !c->stop_first)
        pthread_join(stop_thread, NULL);
    assert_ok(rs_foreach_destroy(fe));
    assert_ok(rs_pool_destroy(pool));

    /* The run itself. */
    long read = in.next;
    CHECK(c, !in.block_timed_out, "the blocked iterator never saw the stop");
    if (c->stop)
        CHECK(c, b.rc == 0 || b.rc == RS_ESTOPPED, "run returned %s", rs_err_name(b.rc));
    else
        CHECK(c, b.rc == 0, "run returned %s", rs_err_name(b.rc));
    if (c->stop_first)
        CHECK(c, b.rc == RS_ESTOPPED && in.next == 0,
              "a run stopped before it began returned %s and read %ld inputs", rs_err_name(b.rc),
              in.next);
    if (c->block_after >= 0)
        CHECK(c, b.rc == RS_ESTOPPED, "a run that only a stop could end returned %s",
              rs_err_name(b.rc));
    if (b.rc == 0 && c->block_after < 0)
        CHECK(c, read == c->n, "a run that was not stopped read %ld of %ld inputs", read, c->n);

    /* Exactly one record per input read, and none for anything else. */
    CHECK(c, log.problem[0] == 0, "%s", log.problem);
    CHECK(c, log.out_of_range == 0, "%ld records for inputs never read", log.out_of_range);
    for (long i = 0; i < read; i++)
        CHECK(c, log.count[i] == 1, "input %ld (kind %d) has %d records", i, in.kind[i],
              log.count[i]);
    CHECK(c, log.records == read, "%ld records for %ld inputs read", log.records, read);
    if (c->o.ordered)
        CHECK(c, !log.out_of_order, "records out of input order");

    /* The summary agrees with the records. */
    CHECK(c, b.sum.total == (uint64_t)read, "summary total %llu, %ld records",
          (unsigned long long)b.sum.total, read);
    CHECK(c,
          b.sum.succeeded == (uint64_t)log.by_status[RS_ITEM_OK] &&
              b.sum.failed == (uint64_t)log.by_status[RS_ITEM_ERROR] &&
              b.sum.timed_out == (uint64_t)log.by_status[RS_ITEM_TIMEOUT] &&
              b.sum.cancelled == (uint64_t)log.by_status[RS_ITEM_CANCELLED],
          "summary %llu/%llu/%llu/%llu, records %ld/%ld/%ld/%ld (ok/error/timeout/cancelled)",
          (unsigned long long)b.sum.succeeded, (unsigned long long)b.sum.failed,
          (unsigned long long)b.sum.timed_out, (unsigned long long)b.sum.cancelled,
          log.by_status[0], log.by_status[1], log.by_status[2], log.by_status[3]);

    /* Statuses, where the inputs determine them. */
    bool cancels = c->stop || c->o.fail_fast;
    int last_attempt = (int)c->o.retries + 1;
    bool final_failure = false;
    for (long i = 0; i < read; i++) {
        int k = in.kind[i], s = log.status[i], a = log.attempts[i];
        CHECK(c, a >= 0 && a <= last_attempt, "input %ld: %d attempts", i, a);
        if (k == K_BAD) {
            CHECK(c, s == RS_ITEM_ERROR && a == 0, "unreadable input %ld: %s after %d attempts", i,
                  rs_item_status_name(s), a);
            continue;
        }
        if (s == RS_ITEM_OK)
            CHECK(c, can_be_ok(k), "input %ld of kind %d succeeded", i, k);
        if (s == RS_ITEM_ERROR)
            CHECK(c, k == K_ERROR || k == K_FLAKY, "input %ld of kind %d failed", i, k);
        if (s == RS_ITEM_TIMEOUT)
            CHECK(c, c->o.timeout > 0, "input %ld timed out without a timeout", i);
        if (s == RS_ITEM_CANCELLED)
            CHECK(c, cancels, "input %ld cancelled without a stop or fail-fast", i);
        if ((s == RS_ITEM_ERROR || s == RS_ITEM_TIMEOUT) && a == last_attempt)
            final_failure = true;
        if (cancels)
            continue;
        /* Nothing cancels: every input runs to its own end. */
        switch (k) {
        case K_ERROR:
            CHECK(c, s == RS_ITEM_ERROR && a == last_attempt,
                  "input %ld (error): %s after %d attempts", i, rs_item_status_name(s), a);
            break;
        case K_LOOP:
            CHECK(c, s == RS_ITEM_TIMEOUT && a == last_attempt,
                  "input %ld (loop): %s after %d attempts", i, rs_item_status_name(s), a);
            break;
        case K_FLAKY:
            if (c->o.retries == 0)
                CHECK(c, s == RS_ITEM_ERROR, "input %ld (flaky, no retries): %s", i,
                      rs_item_status_name(s));
            else
                CHECK(c, s == RS_ITEM_OK || s == RS_ITEM_TIMEOUT, "input %ld (flaky, retries): %s",
                      i, rs_item_status_name(s));
            break;
        default: /* ok kinds: ok, or a timeout on a machine too slow for it */
            CHECK(c, s == RS_ITEM_OK || (s == RS_ITEM_TIMEOUT && c->o.timeout > 0),
                  "input %ld (kind %d): %s", i, k, rs_item_status_name(s));
            break;
        }
    }
    /* Fail-fast cancels only after a failure for good. */
    if (c->o.fail_fast && !c->stop && log.by_status[RS_ITEM_CANCELLED])
        CHECK(c, final_failure, "inputs cancelled without a final failure");

    free(in.kind);
    free(log.count);
    free(log.status);
    free(log.attempts);
}

static void test_random_runs(void **state)
{
    (void)state;
    unsigned seed = seed_base();
    unsigned rng = seed;
    double t0 = rs_test_now();
    int round = 0;
    for (; round < 400 && rs_test_now() - t0 < BUDGET_SECONDS; round++) {
        round_cfg c = random_round(&rng, seed, round);
        one_round(&c);
    }
    print_message("%d random runs in %.1f s\n", round, rs_test_now() - t0);
    assert_true(round >= 5);
}

/* ---- the CLI ------------------------------------------------------------------------------ */

typedef struct cli_result {
    int status; /* exit status, or 128 + signal */
    char *out;
    size_t out_len;
    bool signalled;
} cli_result;

static void append(cli_result *r, const char *data, size_t n)
{
    r->out = realloc(r->out, r->out_len + n + 1);
    memcpy(r->out + r->out_len, data, n);
    r->out_len += n;
    r->out[r->out_len] = '\0';
}

/* Runs the CLI with argv (after "runspace") and input on stdin. With sigint_after >= 0, sends
 * SIGINT that many seconds after its first output. Fails the test after `limit` seconds. */
static cli_result run_cli(const char *const *args, const char *input, size_t input_len,
                          double sigint_after, double limit, unsigned seed)
{
    signal(SIGPIPE, SIG_IGN);
    char *argv[32] = {RS_CLI};
    int argc = 1;
    for (; args[argc - 1]; argc++)
        argv[argc] = (char *)args[argc - 1];
    argv[argc] = NULL;
    int in[2], out[2], devnull = open("/dev/null", O_WRONLY);
    assert_int_equal(pipe(in), 0);
    assert_int_equal(pipe(out), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, in[0], 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, devnull, 2);
    for (int i = 0; i < 2; i++) {
        posix_spawn_file_actions_addclose(&fa, in[i]);
        posix_spawn_file_actions_addclose(&fa, out[i]);
    }
    posix_spawn_file_actions_addclose(&fa, devnull);
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, RS_CLI, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(in[0]);
    close(out[1]);
    close(devnull);
    fcntl(in[1], F_SETFL, O_NONBLOCK);
    int wfd = input_len ? in[1] : -1, rfd = out[0];
    if (wfd < 0)
        close(in[1]);
    cli_result r = {0};
    size_t written = 0;
    double t0 = rs_test_now(), first_out = -1;
    while (rfd >= 0) {
        double now = rs_test_now();
        if (now - t0 > limit) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            fail_msg("seed %u: runspace %s did not finish within %.0f s", seed, args[0], limit);
        }
        if (sigint_after >= 0 && !r.signalled && first_out >= 0 &&
            now - first_out >= sigint_after) {
            kill(pid, SIGINT);
            r.signalled = true;
        }
        struct pollfd p[2] = {{.fd = wfd, .events = POLLOUT}, {.fd = rfd, .events = POLLIN}};
        if (poll(p, 2, 5) < 0 && errno != EINTR)
            fail_msg("poll: %s", strerror(errno));
        if (wfd >= 0 && p[0].revents) {
            ssize_t w = write(wfd, input + written, input_len - written);
            if (w > 0)
                written += (size_t)w;
            if (w < 0 || written == input_len) {
                close(wfd);
                wfd = -1;
            }
        }
        if (p[1].revents) {
            char buf[65536];
            ssize_t n = read(rfd, buf, sizeof buf);
            if (n <= 0) {
                close(rfd);
                rfd = -1;
            } else {
                append(&r, buf, (size_t)n);
                if (first_out < 0)
                    first_out = rs_test_now();
            }
        }
    }
    if (wfd >= 0)
        close(wfd);
    int st;
    waitpid(pid, &st, 0);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (!r.out)
        r.out = strdup("");
    return r;
}

/* Parses jsonl records into per-index slots: counts, and each record's decoded value. Returns
 * the number of records; fails on a line that is not a record. */
static long parse_records(const cli_result *r, long n, unsigned char *count, rs_value **rec,
                          unsigned seed)
{
    long records = 0;
    for (const char *p = r->out; *p;) {
        const char *eol = memchr(p, '\n', r->out_len - (size_t)(p - r->out));
        if (!eol)
            fail_msg("seed %u: a record without its newline: %.80s", seed, p);
        rs_value *v = NULL;
        rs_errinfo err;
        if (rs_json_decode(p, (size_t)(eol - p), &v, &err) != 0 || rs_value_type(v) != RS_TMAP)
            fail_msg("seed %u: not a record: %.*s", seed, (int)(eol - p), p);
        const rs_value *ix = rs_map_get(v, "index");
        int64_t i = ix ? rs_value_get_int(ix) : -1;
        if (i < 0 || i >= n)
            fail_msg("seed %u: a record for index %lld of %ld", seed, (long long)i, n);
        if (count[i]++)
            fail_msg("seed %u: index %lld has two records", seed, (long long)i);
        rec[i] = v;
        records++;
        p = eol + 1;
    }
    return records;
}

static const char *status_of(const rs_value *rec)
{
    const rs_value *s = rs_map_get(rec, "status");
    return s ? rs_value_get_string(s, NULL) : "";
}

static void test_cli_sigint_keeps_records(void **state)
{
    (void)state;
    unsigned seed = seed_base();
    unsigned rng = seed;
    double t0 = rs_test_now();
    int round = 0, interrupted = 0;
    for (; round < 12 && (round < 3 || rs_test_now() - t0 < BUDGET_SECONDS); round++) {
        long n = 2000 + (long)below(&rng, 18000);
        bool range = below(&rng, 2);
        char jobs[16], range_arg[64], batch[16];
        snprintf(jobs, sizeof jobs, "%u", 1 + below(&rng, 3));
        snprintf(range_arg, sizeof range_arg, "0..%ld", n - 1);
        snprintf(batch, sizeof batch, "%u", below(&rng, 2) ? 0 : 1 + below(&rng, 50));
        const char *args[16] = {"foreach", "--format", "jsonl", "-j", jobs};
        int a = 5;
        if (below(&rng, 2))
            args[a++] = "--ordered";
        if (strcmp(batch, "0") != 0) {
            args[a++] = "--batch";
            args[a++] = batch;
        }
        if (range) {
            args[a++] = "--range";
            args[a++] = range_arg;
        }
        args[a++] = "local x = tonumber(_) if x % 101 == 0 then sleep(0.004) end return x";
        args[a] = NULL;
        char *input = NULL;
        size_t input_len = 0;
        if (!range) {
            input = malloc((size_t)n * 8);
            for (long i = 0; i < n; i++)
                input_len += (size_t)sprintf(input + input_len, "%ld\n", i);
        }
        double after = (double)below(&rng, 400) * 1e-3;
        cli_result r = run_cli(args, input, input_len, after, 60, seed);
        unsigned char *count = calloc((size_t)n, 1);
        rs_value **rec = calloc((size_t)n, sizeof *rec);
        long records = parse_records(&r, n, count, rec, seed);
        /* Interrupted: 130, and the records of a prefix of the input (everything read: finished
         * or cancelled). Finished before the signal: everything. */
        if (r.status != 0 && r.status != 130)
            fail_msg("seed %u round %d: exit status %d", seed, round, r.status);
        if (r.status == 0 && records != n)
            fail_msg("seed %u round %d: a finished run has %ld records of %ld", seed, round,
                     records, n);
        interrupted += r.status == 130;
        for (long i = 0; i < records; i++) {
            if (!count[i])
                fail_msg("seed %u round %d: %ld records, but none for input %ld", seed, round,
                         records, i);
            const rs_value *in = rs_map_get(rec[i], "input");
            int64_t v = !in ? -1
                        : rs_value_type(in) == RS_TSTRING
                            ? strtoll(rs_value_get_string(in, NULL), NULL, 10)
                            : rs_value_get_int(in);
            if (v != i)
                fail_msg("seed %u round %d: record %ld has input %lld", seed, round, i,
                         (long long)v);
            const char *s = status_of(rec[i]);
            if (strcmp(s, "ok") != 0 && strcmp(s, "cancelled") != 0)
                fail_msg("seed %u round %d: record %ld is %s", seed, round, i, s);
            if (r.status == 0 && strcmp(s, "ok") != 0)
                fail_msg("seed %u round %d: record %ld of a finished run is %s", seed, round, i, s);
        }
        for (long i = 0; i < n; i++)
            rs_value_destroy(rec[i]);
        free(rec);
        free(count);
        free(input);
        free(r.out);
    }
    print_message("%d interrupted runs of %d in %.1f s\n", interrupted, round, rs_test_now() - t0);
}

static void test_cli_malformed_json(void **state)
{
    (void)state;
    unsigned seed = seed_base();
    unsigned rng = seed;
    static const char *const bad_lines[] = {"x", "{", "\"unterminated", "[1,", "{\"a\":}", "nul"};
    double t0 = rs_test_now();
    int round = 0;
    for (; round < 30 && (round < 4 || rs_test_now() - t0 < BUDGET_SECONDS); round++) {
        /* Round 0 and 1: one good line then 3,000 bad ones (which once lost a wake-up). */
        long n = round < 2 ? 3001 : 1 + (long)below(&rng, 4000);
        unsigned bad_percent = round < 2 ? 100 : below(&rng, 101);
        char *input = malloc((size_t)n * 24 + 1);
        size_t len = 0;
        bool *bad = calloc((size_t)n, sizeof *bad);
        long nbad = 0;
        for (long i = 0; i < n; i++) {
            bad[i] = i > 0 && below(&rng, 100) < bad_percent;
            if (bad[i]) {
                len += (size_t)sprintf(input + len, "%s\n", bad_lines[below(&rng, 6)]);
                nbad++;
            } else if (i % 2) {
                len += (size_t)sprintf(input + len, "%ld\n", i);
            } else {
                len += (size_t)sprintf(input + len, "{\"a\":%ld}\n", i);
            }
        }
        char jobs[16];
        snprintf(jobs, sizeof jobs, "%u", 1 + below(&rng, 3));
        const char *args[12] = {"foreach", "--json", "--format", "jsonl", "-j", jobs};
        int a = 6;
        if (below(&rng, 2))
            args[a++] = "--ordered";
        args[a++] = "return _";
        args[a] = NULL;
        cli_result r = run_cli(args, input, len, -1, 60, seed);
        unsigned char *count = calloc((size_t)n, 1);
        rs_value **rec = calloc((size_t)n, sizeof *rec);
        long records = parse_records(&r, n, count, rec, seed);
        if (records != n)
            fail_msg("seed %u round %d: %ld records for %ld lines", seed, round, records, n);
        if (r.status != (nbad ? 1 : 0))
            fail_msg("seed %u round %d: exit status %d with %ld malformed lines", seed, round,
                     r.status, nbad);
        for (long i = 0; i < n; i++) {
            const char *s = status_of(rec[i]);
            if (strcmp(s, bad[i] ? "error" : "ok") != 0)
                fail_msg("seed %u round %d: line %ld (%s) has status %s", seed, round, i,
                         bad[i] ? "malformed" : "good", s);
            rs_value_destroy(rec[i]);
        }
        free(rec);
        free(count);
        free(bad);
        free(input);
        free(r.out);
    }
    print_message("%d runs in %.1f s\n", round, rs_test_now() - t0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_random_runs),
    cmocka_unit_test(test_cli_sigint_keeps_records),
    cmocka_unit_test(test_cli_malformed_json),
};

RS_TEST_MAIN(tests)
