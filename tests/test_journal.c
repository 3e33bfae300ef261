/*
 * test_journal.c -- the journal of a for-each run through the C API: its lines, resume and
 * resume-failed (the latest line for an index is its record), a torn last line, headers of
 * other runs, files that are not journals, a new run over a journal with records, a journal
 * in use, write and sync failures (every record still delivered and counted), syncs within
 * 100 ms also after a burst, ordered delivery across skipped stretches, rs_journal_read,
 * records of an ordered run journaled as they complete, the reorder window bounded by bytes,
 * one rule for record lines (resume and rs_journal_read), indexes out of range, headers that
 * name non-UTF-8 sources and numbers of another type, a dangling link as the journal.
 */
#include "util.h"

#include "foreach_int.h"
#include "iss.h"
#include "journal.h"
#include "sha256.h"

#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <signal.h>
#include <stdatomic.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define SCRIPT "if should_fail(_) then error('boom ' .. _) end return _ * 2"

/* Which inputs fail: those divisible by fail_every (0: none). Read by the native command on
 * worker threads while a run lasts, set by the test between runs. */
static atomic_long fail_every;

/* The memory limit of the runs' session state (0: none). */
static size_t run_memory_limit;

static int cmd_should_fail(rs_call *call, void *ud)
{
    (void)ud;
    long k = atomic_load(&fail_every);
    int64_t n = rs_value_get_int(rs_call_arg(call, 0));
    return rs_call_emit(call, rs_value_bool(k && n % k == 0));
}

/* One run: inputs 0..n-1 (the input is its index), its records and notices. */
typedef struct jrun {
    long n, next, reads;
    long sleep_index; /* this input sleeps 1 s first (-1: none) */
    unsigned char *seen;
    long count, status[4];
    long bad;             /* records whose output or error is not what the input implies */
    long stop_after;      /* rs_foreach_stop after this many records (0: never) */
    long fail_sync_at;    /* after this many records, the next sync fails (0: never) */
    long in_order_breaks; /* records whose index is below the previous one's */
    long last_index;
    double first_record_at; /* rs_test_now() of the first record */
    char notices[4096];
    rs_foreach *fe;
} jrun;

static int next_input(void *ud, rs_value **item, char **error)
{
    (void)error;
    jrun *r = ud;
    if (r->next >= r->n)
        return 0;
    r->reads++;
    *item = rs_value_int(r->next++);
    return 1;
}

static void on_record(const rs_foreach_record *rec, void *ud)
{
    jrun *r = ud;
    if ((long)rec->index >= r->n)
        fail_msg("record for index %llu of %ld", (unsigned long long)rec->index, r->n);
    if (!r->count)
        r->first_record_at = rs_test_now();
    r->seen[rec->index]++;
    r->count++;
    r->status[rec->status]++;
    if ((long)rec->index < r->last_index)
        r->in_order_breaks++;
    r->last_index = (long)rec->index;
    if (rec->status == RS_ITEM_OK &&
        rs_value_get_int(rs_array_get(rec->output, 0)) != 2 * (int64_t)rec->index)
        r->bad++;
    if (r->stop_after && r->count == r->stop_after)
        rs_foreach_stop(r->fe);
    if (r->fail_sync_at && r->count == r->fail_sync_at)
        rs__journal_test_fail_sync(EIO);
}

static void on_notice(const char *message, void *ud)
{
    jrun *r = ud;
    size_t used = strlen(r->notices);
    snprintf(r->notices + used, sizeof r->notices - used, "%s\n", message);
}

static void jrun_init(jrun *r, long n)
{
    memset(r, 0, sizeof *r);
    r->n = n;
    r->seen = calloc((size_t)n + 1, 1);
    r->last_index = -1;
    r->sleep_index = -1;
}

static void jrun_free(jrun *r)
{
    free(r->seen);
    r->seen = NULL;
}

/* Runs SCRIPT (or script) over r's inputs with journal `path` in `mode`; o carries other
 * options. Returns the run's code; msg (may be NULL, 512 bytes) gets its message. */
static int jrun_go(jrun *r, const char *path, rs_journal_mode mode, const char *script,
                   rs_foreach_opts o, rs_foreach_summary *sum, char *msg)
{
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    assert_ok(rs_iss_add_command(iss, "should_fail", cmd_should_fail, NULL));
    assert_ok(rs_iss_set_limits(iss, &(rs_limits){.memory_bytes = run_memory_limit}));
    o.iss = iss;
    o.next = next_input;
    o.input_userdata = r;
    o.on_record = on_record;
    o.on_notice = on_notice;
    o.userdata = r;
    o.journal = path;
    o.journal_mode = mode;
    if (!o.throttle)
        o.throttle = 2;
    assert_ok(rs_foreach_create(&o, &r->fe));
    assert_ok(rs_iss_destroy(iss));
    assert_ok(rs_foreach_set_script(r->fe, script ? script : SCRIPT, (size_t)-1));
    int rc = rs_foreach_run(r->fe, sum);
    if (msg)
        snprintf(msg, 512, "%s", rs_foreach_errmsg(r->fe));
    assert_ok(rs_foreach_destroy(r->fe));
    r->fe = NULL;
    return rc;
}

/* A fresh path for a journal in /tmp (no file there yet); the caller unlinks it. */
static void temp_path(char *path)
{
    strcpy(path, "/tmp/rs_journal_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    unlink(path);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    assert_non_null(f);
    size_t cap = 1 << 16, n = 0, got;
    char *buf = malloc(cap);
    while ((got = fread(buf + n, 1, cap - n - 1, f)) > 0) {
        n += got;
        if (cap - n - 1 == 0)
            buf = realloc(buf, cap *= 2);
    }
    fclose(f);
    buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static void append_text(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_APPEND);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

static size_t count_lines(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}

/* The final records of a journal (rs_journal_read), by index. */
typedef struct finals {
    long n;
    int *status; /* -1: none */
    long bad;    /* ok records whose output is not 2 x index, or inputs not the index */
    rs_journal_summary sum;
} finals;

static void final_record(const rs_foreach_record *rec, void *ud)
{
    finals *f = ud;
    if ((long)rec->index >= f->n)
        fail_msg("final record for index %llu of %ld", (unsigned long long)rec->index, f->n);
    if (f->status[rec->index] != -1)
        fail_msg("two final records for index %llu", (unsigned long long)rec->index);
    f->status[rec->index] = rec->status;
    if (rs_value_get_int(rec->input) != (int64_t)rec->index)
        f->bad++;
    if (rec->status == RS_ITEM_OK &&
        (rs_array_len(rec->output) != 1 ||
         rs_value_get_int(rs_array_get(rec->output, 0)) != 2 * (int64_t)rec->index))
        f->bad++;
}

static void read_finals(const char *path, long n, finals *f)
{
    f->n = n;
    f->bad = 0;
    f->status = malloc((size_t)n * sizeof *f->status);
    for (long i = 0; i < n; i++)
        f->status[i] = -1;
    rs_errinfo err;
    int rc = rs_journal_read(path, final_record, f, &f->sum, &err);
    if (rc)
        fail_msg("rs_journal_read: %s: %s", rs_err_name(rc), err.message);
}

/* ---- lines ---------------------------------------------------------------------------------- */

static void test_lines_of_a_new_journal(void **state)
{
    (void)state;
    char path[64];
    temp_path(path);
    atomic_store(&fail_every, 7);
    jrun r;
    jrun_init(&r, 100);
    rs_foreach_summary sum;
    double t0 = (double)time(NULL);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, NULL,
                      (rs_foreach_opts){.journal_source = "range:0..99", .retries = 1}, &sum,
                      NULL));
    double t1 = (double)time(NULL) + 1;
    assert_int_equal(sum.total, 100);
    assert_int_equal(sum.unjournaled, 0);
    assert_int_equal(sum.skipped, 0);
    size_t len;
    char *text = slurp(path, &len);
    assert_int_equal(count_lines(text), 101);
    /* The header names the run. */
    char *nl = strchr(text, '\n');
    rs_value *h = NULL;
    assert_ok(rs_json_decode(text, (size_t)(nl - text), &h, NULL));
    assert_int_equal(rs_value_get_int(rs_map_get(h, "runspace_journal")), 1);
    assert_string_equal(rs_value_get_string(rs_map_get(h, "source"), NULL), "range:0..99");
    char want[72];
    rs__sha256_hex(SCRIPT, strlen(SCRIPT), want);
    assert_string_equal(rs_value_get_string(rs_map_get(h, "script"), NULL), want);
    assert_int_equal(rs_value_type(rs_map_get(h, "command")), RS_TNULL);
    assert_int_equal(rs_value_get_int(rs_map_get(h, "retries")), 1);
    assert_memory_equal(rs_value_get_string(rs_map_get(h, "session"), NULL), "sha256:", 7);
    rs_value_destroy(h);
    /* Each record line: the record, with its start time. */
    long seen[100] = {0};
    for (char *p = nl + 1; *p; p = strchr(p, '\n') + 1) {
        rs_value *rec = NULL;
        assert_ok(rs_json_decode(p, (size_t)(strchr(p, '\n') - p), &rec, NULL));
        int64_t i = rs_value_get_int(rs_map_get(rec, "index"));
        assert_true(i >= 0 && i < 100);
        seen[i]++;
        assert_int_equal(rs_value_get_int(rs_map_get(rec, "input")), i);
        const char *st = rs_value_get_string(rs_map_get(rec, "status"), NULL);
        double start = rs_value_get_double(rs_map_get(rec, "start"));
        if (start < t0 - 1 || start > t1)
            fail_msg("start %f outside [%f, %f]", start, t0, t1);
        assert_true(rs_value_get_int(rs_map_get(rec, "runspace")) > 0);
        assert_true(rs_value_get_double(rs_map_get(rec, "duration_ms")) >= 0);
        if (i % 7 == 0) {
            assert_string_equal(st, "error");
            assert_int_equal(rs_value_get_int(rs_map_get(rec, "attempts")), 2);
            assert_contains(rs_value_get_string(rs_map_get(rec, "error"), NULL), "boom");
            assert_int_equal(rs_array_len(rs_map_get(rec, "output")), 0);
        } else {
            assert_string_equal(st, "ok");
            assert_int_equal(rs_value_get_int(rs_map_get(rec, "attempts")), 1);
            assert_int_equal(rs_value_type(rs_map_get(rec, "error")), RS_TNULL);
            assert_int_equal(rs_value_get_int(rs_array_get(rs_map_get(rec, "output"), 0)), 2 * i);
        }
        rs_value_destroy(rec);
    }
    for (int i = 0; i < 100; i++)
        assert_int_equal(seen[i], 1);
    free(text);
    jrun_free(&r);
    unlink(path);
}

static void test_values_json_cannot_carry(void **state)
{
    (void)state;
    /* Repaired as everywhere else (RS_JSON_REPAIR): the line stays JSON, the record keeps
     * its shape. */
    char path[64];
    temp_path(path);
    jrun r;
    jrun_init(&r, 2);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW,
                      "if _ == 0 then error('bad \\255', 0) end return 0/0, 'a\\255'",
                      (rs_foreach_opts){0}, NULL, NULL));
    char *text = slurp(path, NULL);
    assert_contains(text, "\"error\":\"bad \xef\xbf\xbd\"");
    assert_contains(text, "\"output\":[null,\"a\xef\xbf\xbd\"]");
    free(text);
    finals f;
    read_finals(path, 2, &f);
    assert_int_equal(f.sum.records, 2);
    free(f.status);
    jrun_free(&r);
    unlink(path);
}

/* The JSON text of each index's output, from on_record and from the journal. */
typedef struct texts {
    long n;
    char **direct, **journaled;
} texts;

static void keep_direct(const rs_foreach_record *rec, void *ud)
{
    texts *t = ud;
    t->direct[rec->index] = json_of(rec->output);
}

static void keep_journaled(const rs_foreach_record *rec, void *ud)
{
    texts *t = ud;
    t->journaled[rec->index] = json_of(rec->output);
}

static int next_of(void *ud, rs_value **item, char **error)
{
    (void)error;
    long *next = ud;
    if (*next >= 120)
        return 0;
    *item = rs_value_int((*next)++);
    return 1;
}

static void test_lines_carry_every_value(void **state)
{
    (void)state;
    /* Values the journal writes itself (integers, short plain strings, small arrays of them)
     * and those it leaves to the JSON encoder read back the same. */
    const char *script = "local k = _ % 12 "
                         "if k == 0 then return -9223372036854775807 - 1, 9223372036854775807 end "
                         "if k == 1 then return 'plain text', '' end "
                         "if k == 2 then return 'quote \" and \\\\ backslash' end "
                         "if k == 3 then return 'caf\\u{e9} \\u{1F600}' end "
                         "if k == 4 then return string.rep('x', 40), string.rep('x', 41) end "
                         "if k == 5 then return {1, 2, 3, 4, 5, 6, 7, 8, 9} end "
                         "if k == 6 then return {1, 'a', {b = 2}}, {-1, -2} end "
                         "if k == 7 then return 1.5, -0.25, 1e300 end "
                         "if k == 8 then return true, false, json.null end "
                         "if k == 9 then return 'tab\\there', '\\1', '\\127' end "
                         "if k == 10 then return json.map(), {} end "
                         "return _, -_, string.rep('y', 40)";
    char path[64];
    temp_path(path);
    texts t = {.n = 120};
    t.direct = calloc(120, sizeof *t.direct);
    t.journaled = calloc(120, sizeof *t.journaled);
    long next = 0;
    rs_foreach_opts o = {.next = next_of,
                         .input_userdata = &next,
                         .on_record = keep_direct,
                         .userdata = &t,
                         .journal = path};
    rs_foreach *fe;
    assert_ok(rs_foreach_create(&o, &fe));
    assert_ok(rs_foreach_set_script(fe, script, (size_t)-1));
    rs_foreach_summary sum;
    assert_ok(rs_foreach_run(fe, &sum));
    assert_int_equal(sum.succeeded, 120);
    assert_ok(rs_foreach_destroy(fe));
    rs_journal_summary js;
    assert_ok(rs_journal_read(path, keep_journaled, &t, &js, NULL));
    assert_int_equal(js.records, 120);
    for (long i = 0; i < 120; i++) {
        assert_non_null(t.direct[i]);
        assert_non_null(t.journaled[i]);
        if (strcmp(t.direct[i], t.journaled[i]) != 0)
            fail_msg("index %ld: %s delivered, %s journaled", i, t.direct[i], t.journaled[i]);
        rs_free(t.direct[i]);
        rs_free(t.journaled[i]);
    }
    free(t.direct);
    free(t.journaled);
    unlink(path);
}

/* ---- resume -----------------------------------------------------------------------------------
 */

static void test_resume_runs_only_what_is_missing(void **state)
{
    (void)state;
    for (int ordered = 0; ordered < 2; ordered++) {
        char path[64];
        temp_path(path);
        atomic_store(&fail_every, 7);
        jrun r;
        jrun_init(&r, 50);
        rs_foreach_opts o = {.ordered = ordered};
        assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, NULL, o, NULL, NULL));
        jrun_free(&r);
        /* The input grew to 100: the first 50, failed ones included, are done. */
        jrun_init(&r, 100);
        rs_foreach_summary sum;
        assert_ok(jrun_go(&r, path, RS_JOURNAL_RESUME, NULL, o, &sum, NULL));
        assert_int_equal(sum.skipped, 50);
        assert_int_equal(sum.total, 50);
        assert_int_equal(r.reads, 100); /* everything is read, to keep the indexes */
        for (long i = 0; i < 100; i++)
            assert_int_equal(r.seen[i], i >= 50);
        if (ordered)
            assert_int_equal(r.in_order_breaks, 0);
        assert_int_equal(r.bad, 0);
        finals f;
        read_finals(path, 100, &f);
        assert_int_equal(f.sum.records, 100);
        assert_int_equal(f.sum.lines, 100);
        assert_int_equal(f.sum.missing, 0);
        assert_int_equal(f.sum.failed, 15); /* 0, 7, ..., 98 */
        assert_int_equal(f.bad, 0);
        free(f.status);
        /* Nothing left: a resume runs nothing. */
        jrun_free(&r);
        jrun_init(&r, 100);
        assert_ok(jrun_go(&r, path, RS_JOURNAL_RESUME, NULL, o, &sum, NULL));
        assert_int_equal(sum.total, 0);
        assert_int_equal(sum.skipped, 100);
        jrun_free(&r);
        unlink(path);
    }
}

static void test_resume_failed(void **state)
{
    (void)state;
    char path[64];
    temp_path(path);
    atomic_store(&fail_every, 10);
    jrun r;
    jrun_init(&r, 100);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, NULL, (rs_foreach_opts){0}, NULL, NULL));
    assert_int_equal(r.status[RS_ITEM_ERROR], 10);
    jrun_free(&r);
    /* Whatever made them fail is gone: resume-failed runs exactly those again. */
    atomic_store(&fail_every, 0);
    jrun_init(&r, 100);
    rs_foreach_summary sum;
    assert_ok(jrun_go(&r, path, RS_JOURNAL_RESUME_FAILED, NULL, (rs_foreach_opts){0}, &sum, NULL));
    assert_int_equal(sum.skipped, 90);
    assert_int_equal(sum.total, 10);
    for (long i = 0; i < 100; i++)
        assert_int_equal(r.seen[i], i % 10 == 0);
    jrun_free(&r);
    /* The latest line for an index is its record: every one is ok now. */
    finals f;
    read_finals(path, 100, &f);
    assert_int_equal(f.sum.records, 100);
    assert_int_equal(f.sum.succeeded, 100);
    assert_int_equal(f.sum.lines, 110);
    assert_int_equal(f.bad, 0);
    free(f.status);
    unlink(path);
}

static void test_stopped_run_resumes_its_cancelled_items(void **state)
{
    (void)state;
    char path[64];
    temp_path(path);
    atomic_store(&fail_every, 0);
    jrun r;
    jrun_init(&r, 2000);
    r.stop_after = 300;
    rs_foreach_summary sum;
    assert_rs(RS_ESTOPPED, jrun_go(&r, path, RS_JOURNAL_NEW, "sleep(0.0005) return _ * 2",
                                   (rs_foreach_opts){.batch = 4}, &sum, NULL));
    assert_true(sum.cancelled > 0);
    long done_before = (long)sum.succeeded;
    jrun_free(&r);
    /* Cancelled records are in the journal, and run again on resume, as do unread inputs. */
    jrun_init(&r, 2000);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_RESUME, "sleep(0.0005) return _ * 2",
                      (rs_foreach_opts){0}, &sum, NULL));
    assert_int_equal(sum.skipped, done_before);
    assert_int_equal(sum.succeeded, 2000 - done_before);
    jrun_free(&r);
    finals f;
    read_finals(path, 2000, &f);
    assert_int_equal(f.sum.records, 2000);
    assert_int_equal(f.sum.succeeded, 2000);
    assert_int_equal(f.sum.missing, 0);
    assert_int_equal(f.bad, 0);
    free(f.status);
    unlink(path);
}

static void test_latest_line_is_the_record(void **state)
{
    (void)state;
    char path[64];
    temp_path(path);
    atomic_store(&fail_every, 0);
    jrun r;
    jrun_init(&r, 0);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, NULL, (rs_foreach_opts){0}, NULL, NULL));
    jrun_free(&r);
    /* Lines as a resume leaves them: 0 failed then ok, 1 ok then failed, 2 cancelled, 3
     * failed then cancelled; one line written by other hands, with its keys in another
     * order. */
    append_text(path, "{\"index\":0,\"status\":\"error\",\"start\":null,\"input\":0,\"output\":[],"
                      "\"error\":\"x\",\"duration_ms\":0.001,\"attempts\":1,\"runspace\":1}\n"
                      "{\"index\":1,\"status\":\"ok\",\"start\":null,\"input\":1,\"output\":[2],"
                      "\"error\":null,\"duration_ms\":0.001,\"attempts\":1,\"runspace\":1}\n"
                      "{\"index\":3,\"status\":\"error\",\"start\":null,\"input\":3,\"output\":[],"
                      "\"error\":\"x\",\"duration_ms\":0.001,\"attempts\":1,\"runspace\":1}\n"
                      "{\"index\":2,\"status\":\"cancelled\",\"start\":null,\"input\":2,"
                      "\"output\":[],\"error\":\"cancelled\",\"duration_ms\":0,\"attempts\":0,"
                      "\"runspace\":0}\n"
                      "{\"status\":\"ok\",\"index\":0,\"input\":0,\"output\":[0]}\n"
                      "{\"index\":1,\"status\":\"error\",\"start\":null,\"input\":1,\"output\":[],"
                      "\"error\":\"y\",\"duration_ms\":0.001,\"attempts\":1,\"runspace\":1}\n"
                      "{\"index\":3,\"status\":\"cancelled\",\"start\":null,\"input\":3,"
                      "\"output\":[],\"error\":\"cancelled\",\"duration_ms\":0,\"attempts\":0,"
                      "\"runspace\":0}\n");
    finals f;
    read_finals(path, 4, &f);
    assert_int_equal(f.sum.lines, 7);
    assert_int_equal(f.sum.records, 4);
    assert_int_equal(f.status[0], RS_ITEM_OK);
    assert_int_equal(f.status[1], RS_ITEM_ERROR);
    assert_int_equal(f.status[2], RS_ITEM_CANCELLED);
    assert_int_equal(f.status[3], RS_ITEM_CANCELLED);
    free(f.status);
    /* Resume: every index whose latest record is not cancelled is done. */
    jrun_init(&r, 5);
    char *before = slurp(path, NULL);
    rs_foreach_summary sum;
    assert_ok(
        jrun_go(&r, path, RS_JOURNAL_RESUME, NULL, (rs_foreach_opts){.ordered = true}, &sum, NULL));
    unsigned char want[5] = {0, 0, 1, 1, 1};
    assert_memory_equal(r.seen, want, 5);
    jrun_free(&r);
    /* Resume-failed: only those whose latest record is ok (0, and the 2, 3, 4 just run). */
    jrun_init(&r, 5);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_RESUME_FAILED, NULL, (rs_foreach_opts){0}, &sum, NULL));
    unsigned char want2[5] = {0, 1, 0, 0, 0};
    assert_memory_equal(r.seen, want2, 5);
    jrun_free(&r);
    free(before);
    unlink(path);
}

static void test_ordered_across_skipped_stretches(void **state)
{
    (void)state;
    /* Failures far apart, then resume-failed in input order with the smallest window: the
     * delivery must move across tens of thousands of skipped indexes each time. */
    char path[64];
    temp_path(path);
    atomic_store(&fail_every, 20000);
    jrun r;
    jrun_init(&r, 100000);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, "if should_fail(_) then error('x') end return _*2",
                      (rs_foreach_opts){0}, NULL, NULL));
    jrun_free(&r);
    atomic_store(&fail_every, 0);
    jrun_init(&r, 100000);
    rs_foreach_summary sum;
    assert_ok(jrun_go(&r, path, RS_JOURNAL_RESUME_FAILED,
                      "if should_fail(_) then error('x') end return _*2",
                      (rs_foreach_opts){.ordered = true, .batch = 1, .throttle = 1}, &sum, NULL));
    assert_int_equal(sum.total, 5);
    assert_int_equal(sum.skipped, 99995);
    assert_int_equal(r.in_order_breaks, 0);
    for (long i = 0; i < 100000; i += 20000)
        assert_int_equal(r.seen[i], 1);
    jrun_free(&r);
    unlink(path);
}

/* ---- ordered runs ------------------------------------------------------------------------- */

/* The run of test_ordered_records_journaled_as_they_complete, watched from another thread. */
typedef struct watched {
    const char *path;
    rs_foreach *fe;
    long want_lines;        /* the header and every record but the slow first one's */
    atomic_long lines_seen; /* the most lines the watcher saw in the file */
    atomic_long delivered;  /* records handed to the caller so far */
    atomic_long seen_early; /* lines seen while no record had been handed over */
} watched;

static void watched_record(const rs_foreach_record *rec, void *ud)
{
    (void)rec;
    atomic_fetch_add(&((watched *)ud)->delivered, 1);
}

static void *watch_journal(void *arg)
{
    watched *w = arg;
    double t0 = rs_test_now();
    while (rs_test_now() - t0 < 10) {
        long delivered = atomic_load(&w->delivered);
        char *text = slurp(w->path, NULL);
        long lines = (long)count_lines(text);
        free(text);
        atomic_store(&w->lines_seen, lines);
        if (!delivered)
            atomic_store(&w->seen_early, lines);
        if (lines >= w->want_lines)
            break;
        sleep_for(0.02);
    }
    rs_foreach_stop(w->fe); /* the slow item would sleep 30 s */
    return NULL;
}

static void test_ordered_records_journaled_as_they_complete(void **state)
{
    (void)state;
    /* In input order, items 1..199 finish while item 0 sleeps: their records must reach the
     * journal (synced within about 100 ms) although none may be handed over before item 0's,
     * so that a crash at that moment loses none of them. */
    char path[64];
    temp_path(path);
    jrun r;
    jrun_init(&r, 200);
    watched w = {.path = path, .want_lines = 200};
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    rs_foreach_opts o = {.iss = iss,
                         .throttle = 2,
                         .ordered = true,
                         .next = next_input,
                         .input_userdata = &r,
                         .on_record = watched_record,
                         .userdata = &w,
                         .journal = path};
    assert_ok(rs_foreach_create(&o, &w.fe));
    assert_ok(rs_iss_destroy(iss));
    assert_ok(rs_foreach_set_script(w.fe, "if _ == 0 then sleep(30) end return _ * 2", (size_t)-1));
    FILE *f = fopen(path, "wb"); /* the watcher reads it from the start */
    fclose(f);
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, watch_journal, &w), 0);
    rs_foreach_summary sum;
    int rc = rs_foreach_run(w.fe, &sum);
    pthread_join(t, NULL);
    assert_rs(RS_ESTOPPED, rc);
    assert_ok(rs_foreach_destroy(w.fe));
    print_message("lines in the journal before any record was handed over: %ld\n",
                  atomic_load(&w.seen_early));
    assert_int_equal(atomic_load(&w.seen_early), 200);
    assert_int_equal(sum.total, 200);
    assert_int_equal(sum.cancelled, 1);
    finals fin;
    read_finals(path, 200, &fin);
    assert_int_equal(fin.sum.records, 200);
    assert_int_equal(fin.status[0], RS_ITEM_CANCELLED);
    for (long i = 1; i < 200; i++)
        assert_int_equal(fin.status[i], RS_ITEM_OK);
    assert_int_equal(fin.bad, 0);
    free(fin.status);
    jrun_free(&r);
    unlink(path);
}

static void count_record(const rs_foreach_record *rec, void *ud)
{
    (void)rec;
    (*(long *)ud)++;
}

static void test_reorder_window_bounded_by_bytes(void **state)
{
    (void)state;
    /* Input order, a slow first item, and 1 MiB outputs behind it: 150 MiB if nothing held
     * dispatch back. The records held for delivery may take 64 MiB (HELD_MAX in foreach.c),
     * and what runs when dispatch pauses (a few batches of about 2 ms of work) a little more. */
    jrun r;
    jrun_init(&r, 150);
    long records = 0;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    rs_foreach_opts o = {.iss = iss,
                         .throttle = 2,
                         .ordered = true,
                         .next = next_input,
                         .input_userdata = &r,
                         .on_record = count_record,
                         .userdata = &records};
    rs_foreach *fe;
    assert_ok(rs_foreach_create(&o, &fe));
    assert_ok(rs_iss_destroy(iss));
    assert_ok(rs_foreach_set_script(
        fe,
        /* Item 0 waits until 140 others are done (more than the cap holds), or 3 s: so on any
         * build the others run while it waits, as far as the cap lets them. */
        "if _ == 0 then local t = time.monotonic() "
        "while (shared.get('done') or 0) < 140 and time.monotonic() - t < 3 do sleep(0.01) end "
        "else shared.incr('done') end return string.rep('x', 1 << 20)",
        (size_t)-1));
    rs__foreach_test_held_peak(true);
    rs_foreach_summary sum;
    assert_ok(rs_foreach_run(fe, &sum));
    assert_ok(rs_foreach_destroy(fe));
    size_t peak = rs__foreach_test_held_peak(false);
    print_message("peak bytes held in the reorder window: %.1f MiB\n", (double)peak / (1 << 20));
    assert_int_equal(records, 150);
    assert_int_equal(sum.succeeded, 150);
    assert_true(peak >= (size_t)32 << 20);  /* the measure sees what is held */
    assert_true(peak <= (size_t)100 << 20); /* 64 MiB and what was running */
    jrun_free(&r);
}

/* ---- the rule of record lines ------------------------------------------------------------- */

static void test_one_rule_for_record_lines(void **state)
{
    (void)state;
    atomic_store(&fail_every, 0);
    char path[64];
    temp_path(path);
    /* Lines that a resume and rs_journal_read must both refuse, naming the line: ones that
     * start and end like a record, or carry bytes a power loss leaves (zeros, bytes that are
     * not UTF-8, control characters in a string). */
    static const struct {
        const char *text;
        size_t len;
        const char *why;
    } bad[] = {
        {"{\"index\":1,\"status\":\"ok\" not json }\n", 0, "is not valid JSON"},
        {"{\"index\":1,\"status\":\"ok\",\"input\":\"\xff\"}\n", 0, "not valid UTF-8"},
        {"{\"index\":1,\"status\":\"ok\",\"input\":\"a\tb\"}\n", 0, "control character"},
        {"{\"index\":1,\"status\":\"ok\",\"x\":\0\0\0\0}\n", 33, "is not valid JSON"},
        {"{\"index\":1,\"status\":\"ok\"}}\n", 0, "more text after the value"},
        {"{\"index\":1,\"status\":\"ok\",\"n\":123456789012345678901}\n", 0, "64 bits"},
        {"{\"index\":68719476737,\"status\":\"ok\"}\n", 0, "its index is not from 0 to 2^36"},
        {"{\"index\":99999999999999999999999,\"status\":\"ok\"}\n", 0,
         "its index is not from 0 to 2^36"},
        {"{\"status\":\"ok\",\"index\":1e20}\n", 0, "its index is not from 0 to 2^36"},
        {"{\"index\":-1,\"status\":\"ok\"}\n", 0, "its index is not from 0 to 2^36"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        unlink(path);
        jrun r;
        jrun_init(&r, 3);
        assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, NULL, (rs_foreach_opts){0}, NULL, NULL));
        jrun_free(&r);
        size_t len = bad[i].len ? bad[i].len : strlen(bad[i].text);
        int fd = open(path, O_WRONLY | O_APPEND);
        assert_true(fd >= 0);
        assert_int_equal(write(fd, bad[i].text, len), (ssize_t)len);
        assert_int_equal(write(fd, "{\"index\":0,\"status\":\"ok\"}\n", 26), 26);
        close(fd);
        char *before = slurp(path, NULL);
        jrun_init(&r, 4);
        char msg[512];
        int rc = jrun_go(&r, path, RS_JOURNAL_RESUME, NULL, (rs_foreach_opts){0}, NULL, msg);
        print_message("line %zu: %s\n", i, msg);
        assert_rs(RS_EINVAL, rc);
        assert_contains(msg, "line 5 of the journal");
        assert_contains(msg, bad[i].why);
        assert_int_equal(r.reads, 0);
        jrun_free(&r);
        char *after = slurp(path, NULL);
        assert_string_equal(after, before);
        free(after);
        free(before);
        rs_errinfo err;
        assert_rs(RS_EINVAL, rs_journal_read(path, NULL, NULL, NULL, &err));
        assert_contains(err.message, "line 5 of the journal");
        assert_contains(err.message, bad[i].why);
    }
    /* Blank lines are no records, for both alike: skipped. */
    unlink(path);
    jrun r;
    jrun_init(&r, 3);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, NULL, (rs_foreach_opts){0}, NULL, NULL));
    jrun_free(&r);
    append_text(path, "\n  \n");
    finals fin;
    read_finals(path, 4, &fin);
    assert_int_equal(fin.sum.records, 3);
    free(fin.status);
    jrun_init(&r, 4);
    rs_foreach_summary sum;
    assert_ok(jrun_go(&r, path, RS_JOURNAL_RESUME, NULL, (rs_foreach_opts){0}, &sum, NULL));
    assert_int_equal(sum.skipped, 3);
    assert_int_equal(r.seen[3], 1);
    jrun_free(&r);
    read_finals(path, 4, &fin);
    assert_int_equal(fin.sum.records, 4);
    assert_int_equal(fin.bad, 0);
    free(fin.status);
    unlink(path);
}

/* ---- headers ------------------------------------------------------------------------------ */

static void test_header_names_any_source_losslessly(void **state)
{
    (void)state;
    atomic_store(&fail_every, 0);
    char path[64];
    temp_path(path);
    /* Sources that are not UTF-8: resumed with the same one, refused with another that a
     * repair would have made look the same; a backslash does not make two sources meet. */
    jrun r;
    jrun_init(&r, 3);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, NULL,
                      (rs_foreach_opts){.journal_source = "file:/in\xff\\x.txt"}, NULL, NULL));
    jrun_free(&r);
    char *text = slurp(path, NULL);
    assert_contains(text, "\"source\":\"file:/in\\\\xff\\\\\\\\x.txt\"");
    free(text);
    jrun_init(&r, 4);
    rs_foreach_summary sum;
    assert_ok(jrun_go(&r, path, RS_JOURNAL_RESUME, NULL,
                      (rs_foreach_opts){.journal_source = "file:/in\xff\\x.txt"}, &sum, NULL));
    assert_int_equal(sum.skipped, 3);
    assert_int_equal(sum.total, 1);
    jrun_free(&r);
    const char *others[] = {"file:/in\xfe\\x.txt", "file:/in\\xff\\x.txt",
                            "file:/in\xef\xbf\xbd\\x.txt"};
    for (int i = 0; i < 3; i++) {
        jrun_init(&r, 4);
        char msg[512];
        assert_rs(RS_EINVAL, jrun_go(&r, path, RS_JOURNAL_RESUME, NULL,
                                     (rs_foreach_opts){.journal_source = others[i]}, NULL, msg));
        assert_contains(msg, "the input source differs");
        jrun_free(&r);
    }
    /* A header edited by hand with 0 for 0.0 names the same run. */
    unlink(path);
    jrun_init(&r, 2);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, NULL, (rs_foreach_opts){0}, NULL, NULL));
    jrun_free(&r);
    size_t len;
    text = slurp(path, &len);
    char *t = strstr(text, "\"timeout\":0.0");
    assert_non_null(t);
    memmove(t + 11, t + 13, strlen(t + 13) + 1);
    FILE *f = fopen(path, "wb");
    fputs(text, f);
    fclose(f);
    free(text);
    jrun_init(&r, 3);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_RESUME, NULL, (rs_foreach_opts){0}, &sum, NULL));
    assert_int_equal(sum.skipped, 2);
    jrun_free(&r);
    jrun_init(&r, 3);
    char msg[512];
    assert_rs(RS_EINVAL, jrun_go(&r, path, RS_JOURNAL_RESUME, NULL, (rs_foreach_opts){.timeout = 2},
                                 NULL, msg));
    assert_contains(msg, "the timeout differs (0.0 in the journal, 2.0 now)");
    jrun_free(&r);
    unlink(path);
}

static void test_short_first_lines_are_not_torn_headers(void **state)
{
    (void)state;
    atomic_store(&fail_every, 0);
    char path[64];
    temp_path(path);
    /* A prefix of any JSON object is not a journal's: only one that holds at least the
     * journal's magic is a header cut short. */
    const char *firsts[] = {"{", "{\"", "{\"runspace_jou", "{\"runspace_journal\":2,"};
    for (int i = 0; i < 4; i++) {
        FILE *f = fopen(path, "wb");
        fputs(firsts[i], f);
        fclose(f);
        jrun r;
        jrun_init(&r, 3);
        char msg[512];
        assert_rs(RS_EINVAL,
                  jrun_go(&r, path, RS_JOURNAL_RESUME, NULL, (rs_foreach_opts){0}, NULL, msg));
        assert_contains(msg, "is not a runspace journal");
        jrun_free(&r);
        char *text = slurp(path, NULL);
        assert_string_equal(text, firsts[i]); /* left as it was */
        free(text);
    }
    unlink(path);
}

static void test_dangling_link_is_a_new_journal(void **state)
{
    (void)state;
    atomic_store(&fail_every, 0);
    char path[64], target[80];
    temp_path(path);
    snprintf(target, sizeof target, "%s.target", path);
    assert_int_equal(symlink(target, path), 0);
    for (int mode = RS_JOURNAL_NEW; mode <= RS_JOURNAL_RESUME; mode++) {
        unlink(target);
        jrun r;
        jrun_init(&r, 3);
        char msg[512];
        assert_ok(jrun_go(&r, path, (rs_journal_mode)mode, NULL, (rs_foreach_opts){0}, NULL, msg));
        assert_int_equal(r.count, 3);
        jrun_free(&r);
        char *text = slurp(target, NULL);
        assert_int_equal(count_lines(text), 4);
        free(text);
    }
    unlink(target);
    unlink(path);
}

/* ---- bad journals ------------------------------------------------------------------------------
 */

static void test_torn_last_line(void **state)
{
    (void)state;
    char path[64];
    temp_path(path);
    atomic_store(&fail_every, 0);
    jrun r;
    jrun_init(&r, 10);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, NULL, (rs_foreach_opts){0}, NULL, NULL));
    jrun_free(&r);
    /* A crash cut the line of index 10 short. */
    append_text(path, "{\"index\":10,\"status\":\"ok\",\"start\":17000");
    finals f;
    read_finals(path, 12, &f);
    assert_true(f.sum.torn);
    assert_int_equal(f.sum.records, 10);
    free(f.status);
    jrun_init(&r, 12);
    rs_foreach_summary sum;
    assert_ok(jrun_go(&r, path, RS_JOURNAL_RESUME, NULL, (rs_foreach_opts){0}, &sum, NULL));
    assert_contains(r.notices, "ended in a line cut short");
    assert_contains(r.notices, "runs again");
    assert_int_equal(sum.skipped, 10);
    assert_int_equal(r.seen[10], 1);
    assert_int_equal(r.seen[11], 1);
    jrun_free(&r);
    /* The torn bytes are gone: every line is whole. */
    char *text = slurp(path, NULL);
    assert_int_equal(count_lines(text), 13);
    assert_null(strstr(text, "17000{"));
    read_finals(path, 12, &f);
    assert_false(f.sum.torn);
    assert_int_equal(f.sum.records, 12);
    assert_int_equal(f.bad, 0);
    free(f.status);
    free(text);
    unlink(path);
}

static void test_journal_of_another_run(void **state)
{
    (void)state;
    char path[64];
    temp_path(path);
    atomic_store(&fail_every, 0);
    jrun r;
    jrun_init(&r, 5);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, NULL,
                      (rs_foreach_opts){.journal_source = "range:0..4", .timeout = 2}, NULL, NULL));
    jrun_free(&r);
    char *before = slurp(path, NULL);
    struct {
        const char *script;
        rs_foreach_opts o;
        const char *why;
    } cases[] = {
        {"return _ * 2", {.journal_source = "range:0..4", .timeout = 2}, "the script differs"},
        {NULL,
         {.journal_source = "range:0..9", .timeout = 2},
         "the input source differs (\"range:0..4\" in the journal, \"range:0..9\" now)"},
        {NULL, {.timeout = 2}, "the input source differs (\"range:0..4\" in the journal, null"},
        {NULL,
         {.journal_source = "range:0..4", .timeout = 3},
         "the timeout differs (2.0 in the journal, 3.0 now)"},
        {NULL,
         {.journal_source = "range:0..4", .timeout = 2, .retries = 1},
         "the number of retries differs (0 in the journal, 1 now)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        for (int mode = RS_JOURNAL_RESUME; mode <= RS_JOURNAL_RESUME_FAILED; mode++) {
            char msg[512];
            jrun_init(&r, 5);
            assert_rs(RS_EINVAL, jrun_go(&r, path, (rs_journal_mode)mode, cases[i].script,
                                         cases[i].o, NULL, msg));
            assert_contains(msg, "belongs to another run");
            assert_contains(msg, cases[i].why);
            assert_int_equal(r.reads, 0); /* refused before anything was read */
            jrun_free(&r);
            char *after = slurp(path, NULL);
            assert_string_equal(after, before);
            free(after);
        }
    }
    /* With force, its records count as this run's, and the notice says so. */
    jrun_init(&r, 6);
    rs_foreach_summary sum;
    rs_foreach_opts forced = {.journal_source = "range:0..5", .timeout = 2, .journal_force = true};
    assert_ok(jrun_go(&r, path, RS_JOURNAL_RESUME, NULL, forced, &sum, NULL));
    assert_int_equal(sum.skipped, 5);
    assert_int_equal(sum.total, 1);
    assert_contains(r.notices, "belongs to another run (the input source differs");
    jrun_free(&r);
    /* Parameters and session state are part of the run too. */
    rs_foreach *fe;
    jrun_init(&r, 5);
    rs_foreach_opts o = {.next = next_input,
                         .input_userdata = &r,
                         .journal = path,
                         .journal_mode = RS_JOURNAL_RESUME,
                         .journal_source = "range:0..4",
                         .timeout = 2};
    assert_ok(rs_foreach_create(&o, &fe));
    assert_ok(rs_foreach_set_script(fe, SCRIPT, (size_t)-1));
    assert_ok(rs_foreach_add_parameter(fe, "p", rs_value_int(1)));
    assert_rs(RS_EINVAL, rs_foreach_run(fe, NULL));
    assert_contains(rs_foreach_errmsg(fe), "the parameters differ");
    assert_ok(rs_foreach_destroy(fe));
    jrun_free(&r);
    free(before);
    unlink(path);
}

static void test_session_state_names_the_run(void **state)
{
    (void)state;
    /* Every difference that changes what scripts compute changes the digest. */
    enum { N = 8 };
    rs_iss *iss[N];
    for (int i = 0; i < N; i++)
        assert_ok(rs_iss_create(i == 1 ? RS_PROFILE_RESTRICTED : RS_PROFILE_DEFAULT, &iss[i]));
    assert_ok(rs_iss_set_limits(iss[2], &(rs_limits){.memory_bytes = 1 << 20}));
    assert_ok(rs_iss_set_limits(iss[3], &(rs_limits){.instructions = 1000}));
    rs_value *one = rs_value_int(1), *two = rs_value_int(2);
    assert_ok(rs_iss_set_variable(iss[4], "x", one));
    assert_ok(rs_iss_set_variable(iss[5], "x", two));
    assert_ok(rs_iss_add_function(iss[6], "x", "return 1"));
    assert_ok(rs_iss_add_function(iss[7], "x", "return 2"));
    char d[N][72];
    for (int i = 0; i < N; i++)
        assert_ok(rs__iss_digest(iss[i], d[i]));
    for (int i = 0; i < N; i++) {
        for (int k = i + 1; k < N; k++) {
            if (strcmp(d[i], d[k]) == 0)
                fail_msg("session states %d and %d have the same digest %s", i, k, d[i]);
        }
    }
    /* The same recipe, the same digest. */
    rs_iss *again;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &again));
    assert_ok(rs_iss_set_variable(again, "x", two)); /* copied */
    rs_value_destroy(one);
    rs_value_destroy(two);
    char d2[72];
    assert_ok(rs__iss_digest(again, d2));
    assert_string_equal(d2, d[5]);
    assert_ok(rs_iss_destroy(again));
    for (int i = 0; i < N; i++)
        assert_ok(rs_iss_destroy(iss[i]));
    /* And a resume under another memory limit is refused. */
    char path[64];
    temp_path(path);
    atomic_store(&fail_every, 0);
    jrun r;
    jrun_init(&r, 3);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, NULL, (rs_foreach_opts){0}, NULL, NULL));
    jrun_free(&r);
    run_memory_limit = 64 << 20;
    jrun_init(&r, 3);
    char msg[512];
    assert_rs(RS_EINVAL,
              jrun_go(&r, path, RS_JOURNAL_RESUME, NULL, (rs_foreach_opts){0}, NULL, msg));
    run_memory_limit = 0;
    assert_contains(msg, "the session state (profile, limits, variables, functions, modules or "
                         "commands) differs");
    jrun_free(&r);
    unlink(path);
}

static void test_files_that_are_not_journals(void **state)
{
    (void)state;
    atomic_store(&fail_every, 0);
    char path[64];
    temp_path(path);
    /* Random bytes, with and without newlines; a JSON line that is not a header. */
    const char *contents[] = {"\x8f\x01\xfe garbage\n\x00\x17 more\n", "no newline at all",
                              "{\"a\":1}\n{\"index\":0,\"status\":\"ok\"}\n", "[1,2,3]\n"};
    for (size_t i = 0; i < sizeof contents / sizeof contents[0]; i++) {
        for (int mode = RS_JOURNAL_NEW; mode <= RS_JOURNAL_RESUME_FAILED; mode++) {
            for (int force = 0; force < 2; force++) {
                FILE *f = fopen(path, "wb");
                fputs(contents[i], f);
                fclose(f);
                char *before = slurp(path, NULL);
                jrun r;
                jrun_init(&r, 3);
                char msg[512];
                assert_rs(RS_EINVAL, jrun_go(&r, path, (rs_journal_mode)mode, NULL,
                                             (rs_foreach_opts){.journal_force = force}, NULL, msg));
                assert_contains(msg, "is not a runspace journal");
                assert_int_equal(r.reads, 0);
                jrun_free(&r);
                char *after = slurp(path, NULL);
                assert_string_equal(after, before); /* never overwritten, forced or not */
                free(before);
                free(after);
            }
        }
    }
    /* A directory, a device, a FIFO. */
    const char *others[] = {"/tmp", "/dev/full", "/dev/null", NULL};
    char fifo[80];
    snprintf(fifo, sizeof fifo, "%s.fifo", path);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    for (int i = 0; i < 4; i++) {
        const char *p = i < 3 ? others[i] : fifo;
        for (int mode = RS_JOURNAL_NEW; mode <= RS_JOURNAL_RESUME; mode++) {
            jrun r;
            jrun_init(&r, 3);
            char msg[512];
            int rc = jrun_go(&r, p, (rs_journal_mode)mode, NULL, (rs_foreach_opts){0}, NULL, msg);
            /* Refused before it is opened read-write (a device may act on that). */
            assert_rs(RS_EINVAL, rc);
            assert_contains(msg, "is not a regular file");
            assert_int_equal(r.reads, 0);
            jrun_free(&r);
        }
    }
    unlink(fifo);
    /* A complete line in the middle that is not a record. */
    jrun r;
    jrun_init(&r, 3);
    unlink(path);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, NULL, (rs_foreach_opts){0}, NULL, NULL));
    jrun_free(&r);
    append_text(path, "{\"index\":\"three\"}\n");
    jrun_init(&r, 3);
    char msg[512];
    assert_rs(RS_EINVAL,
              jrun_go(&r, path, RS_JOURNAL_RESUME, NULL, (rs_foreach_opts){0}, NULL, msg));
    assert_contains(msg, "line 5 of the journal");
    assert_contains(msg, "is not a record: it has no index");
    jrun_free(&r);
    rs_errinfo err;
    assert_rs(RS_EINVAL, rs_journal_read(path, NULL, NULL, NULL, &err));
    assert_contains(err.message, "line 5");
    unlink(path);
    /* rs_journal_read of what is not there, or not a journal. */
    assert_rs(RS_ESYSTEM, rs_journal_read(path, NULL, NULL, NULL, &err));
    assert_contains(err.message, "No such file or directory");
    assert_rs(RS_EINVAL, rs_journal_read("/dev/null", NULL, NULL, NULL, &err));
    FILE *f = fopen(path, "wb");
    fclose(f);
    assert_rs(RS_EINVAL, rs_journal_read(path, NULL, NULL, NULL, &err));
    assert_contains(err.message, "it is empty");
    unlink(path);
}

static void test_empty_and_torn_header(void **state)
{
    (void)state;
    atomic_store(&fail_every, 0);
    char path[64];
    temp_path(path);
    /* An empty file (mktemp, or a crash before the header) is a new journal in every mode. */
    for (int mode = RS_JOURNAL_NEW; mode <= RS_JOURNAL_RESUME_FAILED; mode++) {
        FILE *f = fopen(path, "wb");
        fclose(f);
        jrun r;
        jrun_init(&r, 3);
        assert_ok(jrun_go(&r, path, (rs_journal_mode)mode, NULL, (rs_foreach_opts){0}, NULL, NULL));
        assert_int_equal(r.count, 3);
        if (mode != RS_JOURNAL_NEW)
            assert_contains(r.notices, "is empty: every input runs");
        jrun_free(&r);
        char *text = slurp(path, NULL);
        assert_int_equal(count_lines(text), 4);
        free(text);
    }
    /* A header cut short by a crash while the journal was created. */
    FILE *f = fopen(path, "wb");
    fputs("{\"runspace_journal\":1,\"cre", f);
    fclose(f);
    jrun r;
    jrun_init(&r, 3);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_RESUME, NULL, (rs_foreach_opts){0}, NULL, NULL));
    assert_contains(r.notices, "holds only part of its header");
    assert_int_equal(r.count, 3);
    jrun_free(&r);
    /* A missing file is a new journal for a resume too. */
    unlink(path);
    jrun_init(&r, 3);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_RESUME_FAILED, NULL, (rs_foreach_opts){0}, NULL, NULL));
    assert_int_equal(r.count, 3);
    jrun_free(&r);
    unlink(path);
}

static void test_new_over_a_journal_with_records(void **state)
{
    (void)state;
    atomic_store(&fail_every, 0);
    char path[64];
    temp_path(path);
    jrun r;
    jrun_init(&r, 5);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, NULL, (rs_foreach_opts){0}, NULL, NULL));
    jrun_free(&r);
    char *before = slurp(path, NULL);
    jrun_init(&r, 3);
    char msg[512];
    assert_rs(RS_EEXIST, jrun_go(&r, path, RS_JOURNAL_NEW, NULL, (rs_foreach_opts){0}, NULL, msg));
    assert_contains(msg, "already holds records");
    assert_int_equal(r.reads, 0);
    jrun_free(&r);
    char *after = slurp(path, NULL);
    assert_string_equal(after, before);
    free(after);
    /* Forced: started anew, the old records gone. */
    jrun_init(&r, 3);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, "return _ * 2",
                      (rs_foreach_opts){.journal_force = true}, NULL, NULL));
    jrun_free(&r);
    after = slurp(path, NULL);
    assert_int_equal(count_lines(after), 4);
    free(after);
    /* A journal with a header only (a run that had no input) is replaced without force. */
    jrun_init(&r, 0);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, NULL, (rs_foreach_opts){.journal_force = true},
                      NULL, NULL));
    jrun_free(&r);
    jrun_init(&r, 2);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, NULL, (rs_foreach_opts){0}, NULL, NULL));
    jrun_free(&r);
    free(before);
    unlink(path);
}

static void test_journal_in_use(void **state)
{
    (void)state;
    atomic_store(&fail_every, 0);
    char path[64];
    temp_path(path);
    int fd = open(path, O_RDWR | O_CREAT, 0600);
    assert_int_equal(flock(fd, LOCK_EX), 0);
    jrun r;
    jrun_init(&r, 3);
    char msg[512];
    assert_rs(RS_EBUSY, jrun_go(&r, path, RS_JOURNAL_NEW, NULL, (rs_foreach_opts){0}, NULL, msg));
    assert_contains(msg, "is in use by another run");
    jrun_free(&r);
    close(fd);
    jrun_init(&r, 3);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, NULL, (rs_foreach_opts){0}, NULL, NULL));
    jrun_free(&r);
    unlink(path);
}

static void test_options_without_a_journal(void **state)
{
    (void)state;
    jrun r;
    jrun_init(&r, 1);
    rs_foreach *fe = NULL;
    rs_foreach_opts o = {.next = next_input, .journal_mode = RS_JOURNAL_RESUME};
    assert_rs(RS_EINVAL, rs_foreach_create(&o, &fe));
    o = (rs_foreach_opts){.next = next_input, .journal_source = "stdin"};
    assert_rs(RS_EINVAL, rs_foreach_create(&o, &fe));
    o = (rs_foreach_opts){.next = next_input, .journal = "/tmp/x", .journal_mode = 7};
    assert_rs(RS_EINVAL, rs_foreach_create(&o, &fe));
    assert_null(fe);
    jrun_free(&r);
}

/* ---- failures while writing ---------------------------------------------------------------- */

static void test_write_failure_loses_no_record(void **state)
{
    (void)state;
    /* The file may not grow past 64 KiB: writes beyond fail with EFBIG, as a full disk would
     * with ENOSPC. The run stops; every record is still delivered, and counted. */
    atomic_store(&fail_every, 0);
    char path[64];
    temp_path(path);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit old, lim;
    getrlimit(RLIMIT_FSIZE, &old);
    lim = old;
    lim.rlim_cur = 64 << 10;
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
    jrun r;
    jrun_init(&r, 200000);
    rs_foreach_summary sum;
    char msg[512];
    int rc = jrun_go(&r, path, RS_JOURNAL_NEW, NULL, (rs_foreach_opts){0}, &sum, msg);
    assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
    assert_rs(RS_EIO, rc);
    assert_contains(msg, "cannot write the journal");
    assert_contains(msg, "File too large");
    /* Every input read got its record; those the journal lacks are counted. */
    assert_int_equal(r.count, r.reads);
    /* The run stopped: the journal holds back the run thread once 8 MiB wait to be written,
     * so the failure is known long before 200,000 records. */
    assert_true(r.reads < 200000);
    assert_true(sum.unjournaled > 0);
    char *text = slurp(path, NULL);
    size_t whole = count_lines(text) - 1;
    assert_int_equal(whole, (size_t)(r.count - (long)sum.unjournaled));
    free(text);
    jrun_free(&r);
    /* With room again, a resume completes the journal: nothing is missing. */
    jrun_init(&r, 200000);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_RESUME, NULL, (rs_foreach_opts){0}, &sum, NULL));
    jrun_free(&r);
    finals f;
    read_finals(path, 200000, &f);
    assert_int_equal(f.sum.records, 200000);
    assert_int_equal(f.sum.succeeded, 200000);
    assert_int_equal(f.sum.missing, 0);
    assert_int_equal(f.bad, 0);
    free(f.status);
    unlink(path);
}

static void test_sync_failure(void **state)
{
    (void)state;
    atomic_store(&fail_every, 0);
    char path[64];
    temp_path(path);
    jrun r;
    jrun_init(&r, 20000);
    r.fail_sync_at = 10;
    rs_foreach_summary sum;
    char msg[512];
    int rc = jrun_go(&r, path, RS_JOURNAL_NEW, NULL, (rs_foreach_opts){0}, &sum, msg);
    rs__journal_test_fail_sync(0);
    assert_rs(RS_EIO, rc);
    assert_contains(msg, "cannot sync the journal");
    assert_contains(msg, "Input/output error");
    assert_int_equal(r.count, r.reads);
    assert_true(sum.unjournaled > 0);
    jrun_free(&r);
    unlink(path);
}

/* ---- durability timing ---------------------------------------------------------------------- */

static void test_synced_within_100ms(void **state)
{
    (void)state;
    /* Item 0 ends at once, item 1 takes a second: the record of item 0 must be synced well
     * before the end of the run, within 100 ms, by the timer path of the writer. */
    atomic_store(&fail_every, 0);
    char path[64];
    temp_path(path);
    jrun r;
    jrun_init(&r, 2);
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, "if _ == 1 then sleep(1) end return _ * 2",
                      (rs_foreach_opts){.batch = 1, .throttle = 2}, NULL, NULL));
    int64_t times[256];
    size_t n = rs__journal_test_syncs(times, 256);
    /* The syncs of this process: the header's (before the first record), one soon after
     * the first record, and the last, at the end. */
    double first = r.first_record_at;
    bool soon = false;
    for (size_t i = 0; i < n; i++) {
        double t = (double)times[i] * 1e-9;
        if (t >= first && t <= first + 0.1)
            soon = true;
    }
    if (!soon)
        fail_msg("no sync within 100 ms of the first record (%zu syncs)", n);
    jrun_free(&r);
    /* While records stream for about a second, syncs come at most every ~50 ms, and at
     * least every 100 ms. */
    jrun_init(&r, 400);
    double start = rs_test_now();
    assert_ok(jrun_go(&r, path, RS_JOURNAL_NEW, "sleep(0.005) return _ * 2",
                      (rs_foreach_opts){.batch = 1, .throttle = 2, .journal_force = true}, NULL,
                      NULL));
    double end = rs_test_now();
    n = rs__journal_test_syncs(times, 256);
    size_t during = 0;
    double last = start, gap = 0;
    for (size_t i = 0; i < n; i++) {
        double t = (double)times[i] * 1e-9;
        if (t < start || t > end)
            continue;
        during++;
        if (t - last > gap)
            gap = t - last;
        last = t;
    }
    double span = end - start;
    print_message("%zu syncs in %.2f s, longest gap %.0f ms\n", during, span, gap * 1e3);
    if (during > span / 0.045 + 3)
        fail_msg("%zu syncs in %.2f s: more than one per ~50 ms", during, span);
    if (gap > 0.2) /* 100 ms and a margin for a loaded machine */
        fail_msg("a gap of %.0f ms between syncs while records came", gap * 1e3);
    jrun_free(&r);
    unlink(path);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_lines_of_a_new_journal),
    cmocka_unit_test(test_values_json_cannot_carry),
    cmocka_unit_test(test_lines_carry_every_value),
    cmocka_unit_test(test_resume_runs_only_what_is_missing),
    cmocka_unit_test(test_resume_failed),
    cmocka_unit_test(test_stopped_run_resumes_its_cancelled_items),
    cmocka_unit_test(test_latest_line_is_the_record),
    cmocka_unit_test(test_ordered_across_skipped_stretches),
    cmocka_unit_test(test_torn_last_line),
    cmocka_unit_test(test_journal_of_another_run),
    cmocka_unit_test(test_session_state_names_the_run),
    cmocka_unit_test(test_files_that_are_not_journals),
    cmocka_unit_test(test_empty_and_torn_header),
    cmocka_unit_test(test_new_over_a_journal_with_records),
    cmocka_unit_test(test_journal_in_use),
    cmocka_unit_test(test_options_without_a_journal),
    cmocka_unit_test(test_write_failure_loses_no_record),
    cmocka_unit_test(test_sync_failure),
    cmocka_unit_test(test_synced_within_100ms),
    cmocka_unit_test(test_ordered_records_journaled_as_they_complete),
    cmocka_unit_test(test_reorder_window_bounded_by_bytes),
    cmocka_unit_test(test_one_rule_for_record_lines),
    cmocka_unit_test(test_header_names_any_source_losslessly),
    cmocka_unit_test(test_short_first_lines_are_not_torn_headers),
    cmocka_unit_test(test_dangling_link_is_a_new_journal),
};

RS_TEST_MAIN(tests)
