/*
 * test_scan_output.c -- what `runspace scan` writes, run for real against loopback only:
 * nmap's normal, XML (checked against nmap's DTD with xmllint when both are installed) and
 * grepable files; exclusions; --top-ports from nmap-services; service names in every format;
 * results streaming into a pipe as they are decided; a table that fits its content; and the
 * usage errors of every new option.
 */
#include "util.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

extern char **environ;

#define ARGV(...) ((char *const[]){RS_CLI, __VA_ARGS__, NULL})
#define FIXTURES RS_TEST_FIXTURES "/scan"
#define DTD "/usr/share/nmap/nmap.dtd"

/* A listening socket on 127.0.0.1 (backlog as given); returns its port. */
static int listener(int *fd, int backlog)
{
    *fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(*fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    assert_int_equal(bind(*fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(*fd, backlog), 0);
    assert_int_equal(getsockname(*fd, (struct sockaddr *)&a, &len), 0);
    return ntohs(a.sin_port);
}

/* A port of 127.0.0.1 where nothing listens (it did a moment ago). */
static int closed_port(void)
{
    int fd;
    int port = listener(&fd, 1);
    close(fd);
    return port;
}

/* A port of 127.0.0.1 that does not answer: a listener whose accept queue is full drops new
 * connection requests, so a connect there waits until its timeout (filtered, no-response).
 * The connections filling the queue go into fill[0..n). */
static int silent_port(int *lfd, int fill[], int n)
{
    int port = listener(lfd, 0);
    struct sockaddr_in a = {.sin_family = AF_INET,
                            .sin_addr.s_addr = htonl(INADDR_LOOPBACK),
                            .sin_port = htons((uint16_t)port)};
    for (int i = 0; i < n; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    sleep_for(0.05); /* let the handshakes that can complete complete */
    return port;
}

static char *slurp(const char *path)
{
    size_t len = 0;
    FILE *f = fopen(path, "rb");
    if (!f)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    char *buf = NULL;
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, f)) > 0) {
        buf = realloc(buf, len + n + 1);
        memcpy(buf + len, chunk, n);
        len += n;
    }
    fclose(f);
    if (!buf)
        buf = calloc(1, 1);
    buf[len] = '\0';
    return buf;
}

/* A new temporary directory (removed with rm_dir). */
static void temp_dir(char *path, size_t size)
{
    snprintf(path, size, "/tmp/rs-scanout-XXXXXX");
    assert_non_null(mkdtemp(path));
}

static void rm_dir(const char *path)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", path);
    assert_int_equal(system(cmd), 0);
}

static bool have_xmllint(void)
{
    return access(DTD, R_OK) == 0 && system("command -v xmllint >/dev/null 2>&1") == 0;
}

/* The service name /etc/services gives port, or NULL. */
static const char *etc_service(int port)
{
    struct servent *s = getservbyport(htons((uint16_t)port), "tcp");
    return s ? s->s_name : NULL;
}

/* ---- the file formats ------------------------------------------------------------------ */

static void test_scan_files_all_formats(void **state)
{
    (void)state;
    int ofd, lfd, fill[4];
    int open_p = listener(&ofd, 8);
    int silent_p = silent_port(&lfd, fill, 4);
    char dir[64], base[128], ports[64], xml[160];
    temp_dir(dir, sizeof dir);
    snprintf(base, sizeof base, "%s/out", dir);
    /* 22 for its service name (whatever its state); 1-40 closed (mostly): left out of the
     * port lists as nmap leaves out more than 25 ports of one state. */
    snprintf(ports, sizeof ports, "1-40,%d,%d", open_p, silent_p);
    cmd_result r =
        run_cmd(ARGV("scan", "-p", ports, "--timeout", "300", "--retries", "0", "-oA", base,
                     "--format", "jsonl", "localhost", "127.0.0.1", "nohost.invalid"),
                60);
    if (r.status != 0)
        fail_msg("exit %d: %s", r.status, r.err);
    assert_int_equal(line_count(r.out), 2 * 42 + 1); /* two hosts x 42 ports, one failed name */

    snprintf(xml, sizeof xml, "%s.xml", base);
    char *x = slurp(xml);
    assert_contains(x, "<nmaprun scanner=\"nmap\" args=\"runspace scan -p ");
    assert_contains(x, "<scaninfo type=\"connect\" protocol=\"tcp\" numservices=\"42\"");
    assert_contains(x, "<target specification=\"nohost.invalid\" status=\"skipped\"");
    assert_contains(x, "<hostname name=\"localhost\" type=\"user\"/>");
    char want[256];
    snprintf(want, sizeof want,
             "<port protocol=\"tcp\" portid=\"%d\"><state state=\"open\" reason=\"syn-ack\" "
             "reason_ttl=\"0\"/>",
             open_p);
    assert_contains(x, want);
    snprintf(want, sizeof want,
             "<port protocol=\"tcp\" portid=\"%d\"><state state=\"filtered\" "
             "reason=\"no-response\"",
             silent_p);
    assert_contains(x, want);
    assert_contains(x, "<extraports state=\"closed\" count=\"");
    assert_contains(x, "<runstats><finished time=\"");
    assert_contains(x, "<hosts up=\"2\" down=\"0\" total=\"2\"/>");
    free(x);
    if (have_xmllint()) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "xmllint --noout --dtdvalid %s '%s'", DTD, xml);
        assert_int_equal(system(cmd), 0);
    } else {
        fprintf(stderr,
                "note: xmllint or %s missing: the XML was not checked against the "
                "DTD (Debian packages libxml2-utils and nmap-common)\n",
                DTD);
    }

    snprintf(xml, sizeof xml, "%s.nmap", base);
    char *n = slurp(xml);
    assert_contains(n, "# runspace " RS_VERSION_STRING " scan initiated ");
    assert_contains(n, "Nmap scan report for localhost (127.0.0.1)\n");
    assert_contains(n, "Nmap scan report for 127.0.0.1\n");
    assert_contains(n, "Failed to resolve \"nohost.invalid\"");
    assert_contains(n, " closed tcp ports (conn-refused)\n");
    snprintf(want, sizeof want, "\n%d/tcp", open_p);
    assert_contains(n, want);
    assert_contains(n, "# runspace done at ");
    assert_contains(n, "2 IP addresses (2 hosts up) scanned in ");
    free(n);

    snprintf(xml, sizeof xml, "%s.gnmap", base);
    char *g = slurp(xml);
    assert_contains(g, "Host: 127.0.0.1 (localhost)\tStatus: Up\n");
    assert_contains(g, "Host: 127.0.0.1 ()\tPorts: ");
    snprintf(want, sizeof want, "%d/open/tcp//%s///", open_p,
             etc_service(open_p) ? etc_service(open_p) : "unknown");
    assert_contains(g, want);
    snprintf(want, sizeof want, "%d/filtered/tcp//", silent_p);
    assert_contains(g, want);
    assert_contains(g, "\tIgnored State: closed (");
    free(g);
    cmd_result_free(&r);
    rm_dir(dir);
    close(ofd);
    close(lfd);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
}

/* -oN, -oX and -oG on their own; an interrupted scan still writes a valid XML file. */
static void test_scan_files_single_and_interrupted(void **state)
{
    (void)state;
    char dir[64], xml[128], normal[128], grep[128];
    temp_dir(dir, sizeof dir);
    snprintf(xml, sizeof xml, "%s/a.xml", dir);
    snprintf(normal, sizeof normal, "%s/a.txt", dir);
    snprintf(grep, sizeof grep, "%s/a.g", dir);
    int cp = closed_port();
    char ports[16];
    snprintf(ports, sizeof ports, "%d", cp);
    cmd_result r =
        run_cmd(ARGV("scan", "-p", ports, "-oX", xml, "-oN", normal, "-oG", grep, "127.0.0.1"), 60);
    assert_int_equal(r.status, 0);
    char *n = slurp(normal);
    char want[128];
    snprintf(want, sizeof want, "PORT      STATE  SERVICE\n%d/tcp closed ", cp);
    assert_contains(n, want);
    free(n);
    char *g = slurp(grep);
    snprintf(want, sizeof want, "Ports: %d/closed/tcp//", cp);
    assert_contains(g, want);
    free(g);
    cmd_result_free(&r);

    /* SIGINT halfway: the hosts decided so far, then a well-formed end. */
    char *argv[] = {RS_CLI,      "scan", "-p",  "1-2000", "--max-inflight", "1",
                    "--timeout", "200",  "-oX", xml,      "127.0.0.0/24",   NULL};
    int out[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    assert_int_equal(posix_spawn(&pid, RS_CLI, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    /* The interrupt once results flow (the scan is past its setup), then stdout to its end. */
    size_t lines = 0;
    bool signalled = false;
    double t0 = rs_test_now();
    for (;;) {
        if (rs_test_now() - t0 > 30) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            fail_msg("the scan did not end within 30 s (interrupted: %d)", signalled);
        }
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        if (poll(&p, 1, 100) <= 0)
            continue;
        char buf[4096];
        ssize_t got = read(out[0], buf, sizeof buf);
        if (got <= 0)
            break;
        for (ssize_t i = 0; i < got; i++)
            lines += buf[i] == '\n';
        if (!signalled && lines >= 2) {
            kill(pid, SIGINT);
            signalled = true;
        }
    }
    close(out[0]);
    int st = 0;
    waitpid(pid, &st, 0);
    assert_true(signalled);
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 130);
    char *x = slurp(xml);
    assert_contains(x, "exit=\"error\" errormsg=\"interrupted\"");
    assert_contains(x, "</nmaprun>\n");
    free(x);
    if (have_xmllint()) {
        char cmd[512];
        snprintf(cmd, sizeof cmd, "xmllint --noout --dtdvalid %s '%s'", DTD, xml);
        assert_int_equal(system(cmd), 0);
    }
    rm_dir(dir);
}

/* ---- exclusions ------------------------------------------------------------------------ */

static void test_scan_exclude(void **state)
{
    (void)state;
    char dir[64], path[128];
    temp_dir(dir, sizeof dir);
    snprintf(path, sizeof path, "%s/exclude.txt", dir);
    FILE *f = fopen(path, "w");
    fputs("# left out\n127.0.0.9\n\n127.0.0.12/30 # 12-15\n", f);
    fclose(f);
    char ports[16];
    snprintf(ports, sizeof ports, "%d", closed_port());
    cmd_result r = run_cmd(ARGV("scan", "-p", ports, "--format", "csv", "--exclude",
                                "127.0.0.2,127.0.0.5-7", "--excludefile", path, "127.0.0.1-16"),
                           60);
    assert_int_equal(r.status, 0);
    static const int kept[] = {1, 3, 4, 8, 10, 11, 16};
    assert_int_equal(line_count(r.out), 1 + sizeof kept / sizeof kept[0]);
    for (int a = 1; a <= 16; a++) {
        char want[32];
        snprintf(want, sizeof want, "\n127.0.0.%d,", a);
        bool is_kept = false;
        for (size_t i = 0; i < sizeof kept / sizeof kept[0]; i++)
            is_kept |= kept[i] == a;
        if (is_kept)
            assert_contains(r.out, want);
        else if (strstr(r.out, want))
            fail_msg("127.0.0.%d was excluded but scanned:\n%s", a, r.out);
    }
    assert_contains(r.err, "Hosts scanned:  7\n");
    cmd_result_free(&r);
    /* A name excludes a target of that name. */
    r = run_cmd(ARGV("scan", "-p", ports, "--format", "csv", "--exclude", "LOCALHOST", "localhost",
                     "127.0.0.3"),
                60);
    assert_int_equal(r.status, 0);
    assert_int_equal(line_count(r.out), 2);
    assert_contains(r.out, "\n127.0.0.3,");
    cmd_result_free(&r);
    rm_dir(dir);
}

/* The C API under --exclude: what is left out, the probe count, the ports. */
static void test_scan_exclude_api(void **state)
{
    (void)state;
    rs_scan *scan = NULL;
    assert_ok(rs_scan_create(NULL, &scan));
    assert_ok(rs_scan_add_ports(scan, "80,443,1000-1002"));
    assert_ok(rs_scan_add_target(scan, "192.0.2.0/24"));
    assert_ok(rs_scan_add_target(scan, "2001:db8::/120"));
    assert_int_equal(rs_scan_probe_count(scan), 512 * 5);
    assert_ok(rs_scan_add_exclude(scan, "192.0.2.128/25"));
    assert_ok(rs_scan_add_exclude(scan, "192.0.2.100-192.0.2.200")); /* overlaps the block */
    assert_ok(rs_scan_add_exclude(scan, "2001:db8::ff"));
    assert_ok(rs_scan_add_exclude(scan, "198.51.100.0/24")); /* no target there */
    assert_int_equal(rs_scan_probe_count(scan), (100 + 255) * 5);
    assert_rs(RS_EINVAL, rs_scan_add_exclude(scan, "192.0.2.0/33"));
    assert_contains(rs_scan_errmsg(scan), "invalid exclusion '192.0.2.0/33'");
    assert_rs(RS_EINVAL, rs_scan_add_exclude(scan, NULL));
    assert_rs(RS_ENOENT, rs_scan_add_excludes_file(scan, "/nonexistent/excludes"));
    assert_contains(rs_scan_errmsg(scan), "cannot open exclusions file");
    unsigned want[] = {80, 443, 1000, 1001, 1002}, i = 0;
    for (unsigned p = 0; (p = rs_scan_next_port(scan, p)); i++) {
        assert_true(i < 5);
        assert_int_equal(p, want[i]);
    }
    assert_int_equal(i, 5);
    size_t host, addr;
    rs_scan_text_widths(scan, &host, &addr);
    assert_int_equal(addr, strlen("2001:db8::ff")); /* the longest address of the block */
    assert_int_equal(host, addr);
    assert_ok(rs_scan_destroy(scan));
}

/* ---- ports and services ---------------------------------------------------------------- */

static void test_scan_top_ports(void **state)
{
    (void)state;
    cmd_result r = run_cmd(ARGV("scan", "--datadir", FIXTURES "/datadir", "--top-ports", "3",
                                "--format", "csv", "--timeout", "200", "127.0.0.1"),
                           60);
    assert_int_equal(r.status, 0);
    assert_int_equal(line_count(r.out), 4);
    assert_contains(r.out, "127.0.0.1,127.0.0.1,7001,");
    assert_contains(r.out, "127.0.0.1,127.0.0.1,7003,");
    assert_contains(r.out, "127.0.0.1,127.0.0.1,7004,");
    cmd_result_free(&r);
    /* More than the file holds: all of them. */
    r = run_cmd(ARGV("scan", "--datadir", FIXTURES "/datadir", "--top-ports", "100", "--format",
                     "csv", "127.0.0.1"),
                60);
    assert_int_equal(r.status, 0);
    assert_int_equal(line_count(r.out), 6);
    cmd_result_free(&r);
    /* The installed file, when there is one: nmap's most often open TCP port is 80. */
    if (access("/usr/share/nmap/nmap-services", R_OK) == 0) {
        r = run_cmd(ARGV("scan", "--top-ports", "20", "--format", "csv", "127.0.0.1"), 60);
        assert_int_equal(r.status, 0);
        assert_int_equal(line_count(r.out), 21);
        assert_contains(r.out, "127.0.0.1,127.0.0.1,80,");
        cmd_result_free(&r);
    }
    /* No data file: a clear error before anything runs. */
    r = run_cmd(ARGV("scan", "--datadir", "/nonexistent", "--top-ports", "10", "127.0.0.1"), 60);
    assert_int_equal(r.status, 2);
    assert_string_equal(r.out, "");
    assert_contains(r.err, "runspace: --top-ports needs nmap's port frequencies, from "
                           "'/nonexistent/nmap-services': No such file or directory");
    assert_contains(r.err, "nmap-common");
    cmd_result_free(&r);
    r = run_cmd(ARGV("scan", "--datadir", FIXTURES "/nodata", "--top-ports", "10", "127.0.0.1"),
                60);
    assert_int_equal(r.status, 2);
    assert_contains(r.err, "it holds none");
    cmd_result_free(&r);
}

static void test_scan_service_names(void **state)
{
    (void)state;
    const char *ssh = etc_service(22);
    if (!ssh) {
        fprintf(stderr, "note: /etc/services names no port 22: service names not checked\n");
        return;
    }
    char want[128];
    cmd_result r =
        run_cmd(ARGV("scan", "-p", "22", "--timeout", "200", "--format", "jsonl", "127.0.0.1"), 60);
    assert_int_equal(r.status, 0);
    snprintf(want, sizeof want, "\"service\":\"%s\"", ssh);
    assert_contains(r.out, want);
    cmd_result_free(&r);
    r = run_cmd(ARGV("scan", "-p", "22", "--timeout", "200", "--format", "csv", "127.0.0.1"), 60);
    assert_int_equal(r.status, 0);
    assert_contains(r.out, "host,address,port,state,service,reason,rtt_ms\n");
    snprintf(want, sizeof want, "127.0.0.1,127.0.0.1,22,");
    assert_contains(r.out, want);
    snprintf(want, sizeof want, ",%s,", ssh);
    assert_contains(r.out, want);
    cmd_result_free(&r);
    r = run_cmd(ARGV("scan", "-p", "22", "--timeout", "200", "127.0.0.1"), 60);
    assert_int_equal(r.status, 0);
    snprintf(want, sizeof want, " %s ", ssh);
    assert_contains(r.out, want);
    cmd_result_free(&r);
    /* The file formats. */
    char dir[64], base[128], path[160];
    temp_dir(dir, sizeof dir);
    snprintf(base, sizeof base, "%s/s", dir);
    r = run_cmd(ARGV("scan", "-p", "22", "--timeout", "200", "-oA", base, "127.0.0.1"), 60);
    assert_int_equal(r.status, 0);
    cmd_result_free(&r);
    snprintf(path, sizeof path, "%s.xml", base);
    char *text = slurp(path);
    snprintf(want, sizeof want, "<service name=\"%s\" method=\"table\" conf=\"3\"/>", ssh);
    assert_contains(text, want);
    free(text);
    snprintf(path, sizeof path, "%s.gnmap", base);
    text = slurp(path);
    snprintf(want, sizeof want, "/tcp//%s///", ssh);
    assert_contains(text, want);
    free(text);
    snprintf(path, sizeof path, "%s.nmap", base);
    text = slurp(path);
    snprintf(want, sizeof want, " %s\n", ssh);
    assert_contains(text, want);
    free(text);
    rm_dir(dir);
    /* A port without a name: null in jsonl. */
    int cp = closed_port();
    if (!etc_service(cp)) {
        char ports[16];
        snprintf(ports, sizeof ports, "%d", cp);
        r = run_cmd(ARGV("scan", "-p", ports, "--format", "jsonl", "127.0.0.1"), 60);
        assert_contains(r.out, "\"service\":null");
        cmd_result_free(&r);
    }
}

/* ---- streaming and the table ----------------------------------------------------------- */

/* The line of a closed port reaches a pipe at once, while a silent port keeps the scan
 * running: results are written as they are decided, not when a buffer fills. */
static void test_scan_streams_into_pipe(void **state)
{
    (void)state;
    int lfd, fill[4];
    int silent_p = silent_port(&lfd, fill, 4);
    char ports[32];
    snprintf(ports, sizeof ports, "%d,%d", closed_port(), silent_p);
    char *argv[] = {RS_CLI,      "scan", "-p",       ports,   "--timeout", "4000",
                    "--retries", "0",    "--format", "jsonl", "127.0.0.1", NULL};
    int out[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
    pid_t pid;
    double t0 = rs_test_now();
    assert_int_equal(posix_spawn(&pid, RS_CLI, &fa, NULL, argv, environ), 0);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    char buf[4096];
    size_t got = 0;
    while (!memchr(buf, '\n', got) && got < sizeof buf - 1) {
        struct pollfd p = {.fd = out[0], .events = POLLIN};
        assert_int_equal(poll(&p, 1, 10000), 1);
        ssize_t n = read(out[0], buf + got, sizeof buf - 1 - got);
        assert_true(n > 0);
        got += (size_t)n;
    }
    buf[got] = '\0';
    double first_line = rs_test_now() - t0;
    /* The scan still waits on the silent port. */
    int st;
    assert_int_equal(waitpid(pid, &st, WNOHANG), 0);
    assert_contains(buf, "\"state\":\"closed\"");
    if (first_line >= 3.5)
        fail_msg("the first result took %.2f s to arrive", first_line);
    waitpid(pid, &st, 0);
    assert_int_equal(WEXITSTATUS(st), 0);
    close(out[0]);
    close(lfd);
    for (int i = 0; i < 4; i++)
        close(fill[i]);
}

/* The table's columns are as wide as their longest content, and every line is as long as
 * the header's columns make it. */
static void test_scan_table_fits(void **state)
{
    (void)state;
    char ports[16];
    snprintf(ports, sizeof ports, "%d", closed_port());
    cmd_result r = run_cmd(ARGV("scan", "-p", ports, "--timeout", "50", "127.0.0.1"), 60);
    assert_int_equal(r.status, 0);
    /* HOST and ADDRESS as wide as "127.0.0.1", RTT(ms) as "50.000" at most: 7. */
    assert_memory_equal(r.out, "HOST      ADDRESS    PORT STATE    SERVICE RTT(ms) REASON\n",
                        strlen("HOST      ADDRESS    PORT STATE    SERVICE RTT(ms) REASON\n"));
    char want[128];
    snprintf(want, sizeof want, "\n127.0.0.1 127.0.0.1 %5s closed   ", ports);
    assert_contains(r.out, want);
    cmd_result_free(&r);
    /* A longer name widens HOST; a range its ADDRESS, to its longest address. */
    r = run_cmd(ARGV("scan", "-p", ports, "--timeout", "50", "localhost", "127.0.0.98-100"), 60);
    assert_int_equal(r.status, 0);
    assert_memory_equal(r.out, "HOST        ADDRESS      PORT",
                        strlen("HOST        ADDRESS      PORT"));
    assert_contains(r.out, "\nlocalhost   127.0.0.1   ");
    assert_contains(r.out, "\n127.0.0.100 127.0.0.100 ");
    cmd_result_free(&r);
}

/* ---- bad values ------------------------------------------------------------------------ */

static void test_scan_output_usage_errors(void **state)
{
    (void)state;
    struct {
        char *const *argv;
        const char *message;
    } cases[] = {
        {ARGV("scan", "-oX", "", "127.0.0.1"), "runspace: -oX needs a file name, not ''\n"},
        {ARGV("scan", "-oN", "", "127.0.0.1"), "runspace: -oN needs a file name, not ''\n"},
        {ARGV("scan", "-oG", "", "127.0.0.1"), "runspace: -oG needs a file name, not ''\n"},
        {ARGV("scan", "-oA", "", "127.0.0.1"), "runspace: -oA needs a file name, not ''\n"},
        {ARGV("scan", "127.0.0.1", "-oX"), "runspace: option '--output-xml' needs a value\n"},
        {ARGV("scan", "--exclude", "", "127.0.0.1"),
         "runspace: --exclude needs a list of targets, not ''\n"},
        {ARGV("scan", "--exclude", ",", "127.0.0.1"),
         "runspace: --exclude needs a list of targets, not ','\n"},
        {ARGV("scan", "--exclude", "127.0.0.300", "127.0.0.1"),
         "runspace: --exclude: invalid exclusion '127.0.0.300': not an IPv4 address\n"},
        {ARGV("scan", "--excludefile", "", "127.0.0.1"),
         "runspace: --excludefile needs a file name, not ''\n"},
        {ARGV("scan", "--excludefile", "/nonexistent/x", "127.0.0.1"),
         "runspace: --excludefile: cannot open exclusions file '/nonexistent/x': No such "
         "file or directory\n"},
        {ARGV("scan", "--excludefile", FIXTURES "/bad_targets.txt", "127.0.0.1"),
         "runspace: --excludefile: " FIXTURES "/bad_targets.txt:"},
        {ARGV("scan", "--top-ports", "0", "127.0.0.1"),
         "runspace: --top-ports must be a whole number from 1 to 65535, not '0'\n"},
        {ARGV("scan", "--top-ports", "x", "127.0.0.1"),
         "runspace: --top-ports must be a whole number from 1 to 65535, not 'x'\n"},
        {ARGV("scan", "--top-ports", "65536", "127.0.0.1"),
         "runspace: --top-ports must be a whole number from 1 to 65535, not '65536'\n"},
        {ARGV("scan", "--top-ports", "5", "-p", "80", "127.0.0.1"),
         "runspace: --top-ports and -p cannot be used together\n"},
        {ARGV("scan", "--datadir", "", "127.0.0.1"),
         "runspace: --datadir needs a file name, not ''\n"},
        {ARGV("scan", "-oX", "/nonexistent/dir/out.xml", "127.0.0.1"),
         "runspace: cannot open '/nonexistent/dir/out.xml' for -oX: No such file or "
         "directory\n"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        cmd_result r = run_cmd(cases[i].argv, 30);
        if (r.status != 2)
            fail_msg("case %zu: exit %d, stderr: %s", i, r.status, r.err);
        if (strncmp(r.err, cases[i].message, strlen(cases[i].message)) != 0)
            fail_msg("case %zu: stderr is\n%s\nexpected it to start with\n%s", i, r.err,
                     cases[i].message);
        assert_string_equal(r.out, "");
        cmd_result_free(&r);
    }
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_scan_files_all_formats),
    cmocka_unit_test(test_scan_files_single_and_interrupted),
    cmocka_unit_test(test_scan_exclude),
    cmocka_unit_test(test_scan_exclude_api),
    cmocka_unit_test(test_scan_top_ports),
    cmocka_unit_test(test_scan_service_names),
    cmocka_unit_test(test_scan_streams_into_pipe),
    cmocka_unit_test(test_scan_table_fits),
    cmocka_unit_test(test_scan_output_usage_errors),
};

RS_TEST_MAIN(tests)
