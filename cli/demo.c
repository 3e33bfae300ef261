/*
 * demo.c -- `runspace demo`: the seed's examples end to end, on built-in data:
 *   1. basic parallel processing: the squares of 1..100 with a throttle of 10;
 *   2. background job management: three named jobs, waited on and summarised;
 *   3. optimized batch processing: 10,000 items with a progress bar and a summary;
 *   4. network scanning: loopback listeners the demo opens itself, scanned.
 */
#include "cli.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

static void heading(const char *title)
{
    out_puts("\n== ");
    out_puts(title);
    out_puts(" ==\n");
    out_flush();
}

/* ---- 1. squares ------------------------------------------------------------------------- */

typedef struct counter {
    long next, last;
    long results[101];
    uint64_t runspaces[64];
    int nrunspaces;
} counter;

static int next_number(void *ud, rs_value **item, char **error)
{
    (void)error;
    counter *c = ud;
    if (c->next > c->last)
        return 0;
    *item = rs_value_int(c->next++);
    return 1;
}

static void square_record(const rs_foreach_record *r, void *ud)
{
    counter *c = ud;
    if (r->status == RS_ITEM_OK)
        c->results[r->index] = (long)rs_value_get_int(rs_array_get(r->output, 0));
    for (int i = 0; i < c->nrunspaces; i++) {
        if (c->runspaces[i] == r->runspace_id)
            return;
    }
    if (c->nrunspaces < 64)
        c->runspaces[c->nrunspaces++] = r->runspace_id;
}

static int demo_squares(void)
{
    heading("1. Parallel processing: 1..100 squared, throttle 10");
    counter c = {.next = 1, .last = 100};
    rs_foreach_opts o = {.throttle = 10,
                         .ordered = true,
                         .total = 100,
                         .next = next_number,
                         .input_userdata = &c,
                         .on_record = square_record,
                         .userdata = &c};
    rs_foreach *fe;
    int rc = rs_foreach_create(&o, &fe);
    if (!rc)
        rc = rs_foreach_set_script(fe, "local n = ... sleep(0.002) return n * n", (size_t)-1);
    rs_foreach_summary sum;
    if (!rc)
        rc = rs_foreach_run(fe, &sum);
    if (rc) {
        cli_error("squares: %s", fe ? rs_foreach_errmsg(fe) : rs_strerror(rc));
        rs_foreach_destroy(fe);
        return rc;
    }
    char buf[64];
    for (int i = 0; i < 100; i++) {
        snprintf(buf, sizeof buf, "%ld%s", c.results[i], i % 20 == 19 ? "\n" : " ");
        out_puts(buf);
    }
    snprintf(buf, sizeof buf, "%llu results from %d runspaces in %.0f ms\n",
             (unsigned long long)sum.succeeded, c.nrunspaces, sum.elapsed * 1e3);
    out_puts(buf);
    rs_foreach_destroy(fe);
    return 0;
}

/* ---- 2. jobs ------------------------------------------------------------------------------ */

static int demo_jobs(void)
{
    heading("2. Background job manager: three named jobs");
    rs_jobs *jobs;
    rs_jobs_opts o = {.max_jobs = 5};
    int rc = rs_jobs_create(&o, &jobs);
    if (rc) {
        cli_error("jobs: %s", rs_jobs_errmsg(NULL));
        return rc;
    }
    rs_value *p = rs_value_map();
    rs_map_set(p, "Seconds", rs_value_int(1));
    rc = rs_jobs_start(jobs, "LongRunningJob",
                       "sleep(Seconds) return 'Job completed after ' .. Seconds .. ' seconds'", p,
                       NULL);
    rs_value_destroy(p);
    p = rs_value_map();
    rs_map_set(p, "MinCpu", rs_value_int(100));
    if (!rc)
        rc = rs_jobs_start(jobs, "ProcessJob",
                           "local busy, all = {}, proc.list() "
                           "for _, q in ipairs(all) do if q.cpu > MinCpu then "
                           "busy[#busy + 1] = {name = q.name, cpu = q.cpu} end end "
                           "table.sort(busy, function(a, b) return a.cpu > b.cpu end) "
                           "return {high_cpu = busy, processes = #all}",
                           p, NULL);
    rs_value_destroy(p);
    p = rs_value_map();
    rs_map_set(p, "Path", rs_value_string("/usr/include"));
    if (!rc)
        rc = rs_jobs_start(jobs, "FileSystemJob",
                           "local files, bytes = 0, 0 "
                           "for _, e in ipairs(fs.list(Path, {recursive = true})) do "
                           "if e.type == 'file' then files = files + 1 bytes = bytes + e.size end "
                           "end return {path = Path, files = files, bytes = bytes}",
                           p, NULL);
    rs_value_destroy(p);
    if (rc) {
        cli_error("jobs: %s", rs_jobs_errmsg(jobs));
        rs_jobs_destroy(jobs);
        return rc;
    }
    char buf[256];
    snprintf(buf, sizeof buf, "Started %zu jobs\n", rs_jobs_list(jobs, RS_JOBS_RUNNING, NULL, 0));
    out_puts(buf);
    out_flush();

    rs_job_info info;
    if (rs_jobs_wait(jobs, "ProcessJob", 30) == 0 && rs_jobs_get(jobs, "ProcessJob", &info) == 0 &&
        info.result) {
        const rs_value *r = rs_array_get(info.result, 0);
        snprintf(buf, sizeof buf,
                 "Process job completed: %zu of %lld processes used more than 100 s of CPU\n",
                 rs_array_len(rs_map_get(r, "high_cpu")),
                 (long long)rs_value_get_int(rs_map_get(r, "processes")));
        out_puts(buf);
    }
    out_puts("Waiting for all jobs to complete...\n");
    out_flush();
    if (rs_jobs_wait_all(jobs, 60))
        cli_error("%s", rs_jobs_errmsg(jobs));
    const char *names[8];
    size_t n = rs_jobs_list(jobs, RS_JOBS_COMPLETED, names, 8);
    for (size_t i = 0; i < n && i < 8; i++) {
        if (rs_jobs_get(jobs, names[i], &info))
            continue;
        snprintf(buf, sizeof buf, "Job '%s' - Status: %s - Duration: %.2fs", info.name,
                 rs_job_state_name(info.state), info.duration);
        out_puts(buf);
        if (info.result && rs_array_len(info.result)) {
            char *text = json_text(rs_array_get(info.result, 0));
            size_t len = text ? strlen(text) : 0;
            out_puts(" - ");
            if (len > 90)
                strcpy(text + 87, "...");
            out_puts(text ? text : "");
            free(text);
        }
        if (info.error) {
            out_puts(" - ");
            out_puts(info.error);
        }
        out_putc('\n');
    }
    rs_jobs_destroy(jobs);
    return 0;
}

/* ---- 3. batch processing ------------------------------------------------------------------ */

typedef struct batch_state {
    long next;
    progress_bar bar;
} batch_state;

static int next_batch_item(void *ud, rs_value **item, char **error)
{
    (void)error;
    batch_state *b = ud;
    if (b->next >= 10000)
        return 0;
    *item = rs_value_int(++b->next);
    return 1;
}

static void batch_progress(const rs_foreach_progress *p, void *ud)
{
    batch_state *b = ud;
    bar_draw(&b->bar, p->done, p->total, p->elapsed, false);
}

static int demo_batch(void)
{
    heading("3. Batch processing: 10,000 items");
    out_flush();
    batch_state b = {0};
    bar_init(&b.bar, -1, "batch");
    rs_foreach_opts o = {.throttle = 4,
                         .total = 10000,
                         .next = next_batch_item,
                         .input_userdata = &b,
                         .on_progress = batch_progress,
                         .userdata = &b};
    rs_foreach *fe;
    int rc = rs_foreach_create(&o, &fe);
    /* Each item does a little work; one in a thousand fails, to show the error count. */
    if (!rc)
        rc = rs_foreach_set_script(fe,
                                   "local x = ... sleep(0.0003) "
                                   "if x % 1000 == 0 then error('simulated failure on ' .. x) end "
                                   "return x * 2",
                                   (size_t)-1);
    rs_foreach_summary sum;
    if (!rc)
        rc = rs_foreach_run(fe, &sum);
    bar_draw(&b.bar, sum.total, 10000, sum.elapsed, true);
    bar_clear(&b.bar);
    if (rc) {
        cli_error("batch: %s", rs_foreach_errmsg(fe));
        rs_foreach_destroy(fe);
        return rc;
    }
    char buf[512];
    snprintf(buf, sizeof buf,
             "Processing Summary:\n"
             "  Total Items:  %llu\n"
             "  Successful:   %llu\n"
             "  Errors:       %llu\n"
             "  Success Rate: %.2f%%\n"
             "  Elapsed:      %.2f s\n",
             (unsigned long long)sum.total, (unsigned long long)sum.succeeded,
             (unsigned long long)(sum.failed + sum.timed_out + sum.cancelled), sum.success_rate,
             sum.elapsed);
    out_puts(buf);
    rs_foreach_destroy(fe);
    return 0;
}

/* ---- 4. scan ------------------------------------------------------------------------------ */

static void scan_result(const rs_scan_result *r, void *ud)
{
    (void)ud;
    char buf[256];
    snprintf(buf, sizeof buf, "  %s:%-5d %-9s %s\n", r->address, r->port,
             rs_port_state_name(r->state), r->reason);
    out_puts(buf);
}

static int demo_scan(void)
{
    heading("4. Network scan: loopback listeners opened by this demo");
    int fds[3];
    char ports[128] = "22,80,135,139,443,445,3389,5985,5986";
    for (int i = 0; i < 3; i++) {
        fds[i] = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
        socklen_t len = sizeof a;
        if (fds[i] < 0 || bind(fds[i], (struct sockaddr *)&a, sizeof a) || listen(fds[i], 16) ||
            getsockname(fds[i], (struct sockaddr *)&a, &len)) {
            cli_error("scan demo: cannot open a listener on 127.0.0.1");
            for (int k = 0; k <= i; k++)
                if (fds[k] >= 0)
                    close(fds[k]);
            return 1;
        }
        size_t l = strlen(ports);
        snprintf(ports + l, sizeof ports - l, ",%d", ntohs(a.sin_port));
    }
    char buf[256];
    snprintf(buf, sizeof buf, "Scanning 127.0.0.1 ports %s\n", ports);
    out_puts(buf);
    rs_scan_opts o = {.timeout = 0.5, .on_result = scan_result};
    rs_scan *scan;
    int rc = rs_scan_create(&o, &scan);
    if (!rc)
        rc = rs_scan_add_target(scan, "127.0.0.1");
    if (!rc)
        rc = rs_scan_add_ports(scan, ports);
    rs_scan_summary sum;
    if (!rc)
        rc = rs_scan_run(scan, &sum);
    if (rc) {
        cli_error("scan: %s", scan ? rs_scan_errmsg(scan) : rs_strerror(rc));
    } else {
        snprintf(buf, sizeof buf,
                 "Scan Summary:\n"
                 "  Hosts Scanned:  %llu\n"
                 "  Open Ports:     %llu\n"
                 "  Closed Ports:   %llu\n"
                 "  Filtered Ports: %llu\n"
                 "  Scan Errors:    %llu\n",
                 (unsigned long long)sum.hosts, (unsigned long long)sum.open,
                 (unsigned long long)sum.closed, (unsigned long long)sum.filtered,
                 (unsigned long long)sum.errors);
        out_puts(buf);
    }
    rs_scan_destroy(scan);
    for (int i = 0; i < 3; i++)
        close(fds[i]);
    return rc;
}

int cmd_demo(int argc, char **argv)
{
    if (argc > 1 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
        out_puts(
            "Usage: runspace demo\n"
            "Runs the examples end to end on built-in data: parallel squares, background "
            "jobs,\nbatch processing with a progress bar, and a scan of loopback listeners.\n");
        return 0;
    }
    if (argc > 1 && argv[1][0] == '-' && argv[1][1])
        return cli_usage("demo", "unknown option '%.*s'", (int)strcspn(argv[1], "="), argv[1]);
    if (argc > 1)
        return cli_usage("demo", "unexpected argument '%s'", argv[1]);
    out_puts("runspace demo: the PowerShell runspace examples, in Lua runspaces\n");
    int failures = 0;
    failures += demo_squares() != 0;
    failures += demo_jobs() != 0;
    failures += demo_batch() != 0;
    failures += demo_scan() != 0;
    out_flush();
    return failures ? 1 : 0;
}
