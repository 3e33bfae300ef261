/*
 * test_scan.c -- the network scanner with real sockets on the real kernel: parsing of ports,
 * targets and target files; every port of loopback; names that do not resolve; back-pressure
 * from a tiny descriptor limit; every state and reason from a pair of network namespaces with
 * nftables rules; stopping from another thread and by an invocation's stop and timeout; and
 * the `net` built-ins.
 *
 * Probes go only to loopback (127.0.0.0/8, ::1), or to 198.18.0.0/15 and 2001:2::/48 inside
 * the namespaces the fixture creates and removes (tests/fixtures/scan/netns.sh), where no
 * route leads anywhere else. The namespace cases need root, iproute2 and nftables; without
 * them they are skipped and say why.
 */
#include "util.h"

#include "common.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#define FIXTURES RS_TEST_FIXTURES "/scan"
#define COUNT_OF(a) (sizeof(a) / sizeof((a)[0]))

/* ---- helpers -------------------------------------------------------------------------------- */

static rs_scan *new_scan(const rs_scan_opts *o)
{
    rs_scan *scan = NULL;
    assert_ok(rs_scan_create(o, &scan));
    return scan;
}

/* A TCP socket bound to addr:port (port 0: any), listening when `listening`; *port gets the
 * port. -1 when the bind fails. */
static int tcp_socket(int family, const char *addr, int *port, bool listening)
{
    int fd = socket(family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    int on = 1;
    union {
        struct sockaddr sa;
        struct sockaddr_in in;
        struct sockaddr_in6 in6;
    } a;
    memset(&a, 0, sizeof a);
    socklen_t len;
    if (family == AF_INET) {
        a.in.sin_family = AF_INET;
        a.in.sin_port = htons((uint16_t)*port);
        assert_int_equal(inet_pton(AF_INET, addr, &a.in.sin_addr), 1);
        len = sizeof a.in;
    } else {
        setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on);
        a.in6.sin6_family = AF_INET6;
        a.in6.sin6_port = htons((uint16_t)*port);
        assert_int_equal(inet_pton(AF_INET6, addr, &a.in6.sin6_addr), 1);
        len = sizeof a.in6;
    }
    if (bind(fd, &a.sa, len) != 0 || (listening && listen(fd, 128) != 0)) {
        close(fd);
        return -1;
    }
    assert_int_equal(getsockname(fd, &a.sa, &len), 0);
    *port = ntohs(family == AF_INET ? a.in.sin_port : a.in6.sin6_port);
    return fd;
}

static int listener(int family, const char *addr, int *port)
{
    int fd = tcp_socket(family, addr, port, true);
    if (fd < 0)
        fail_msg("cannot listen on %s port %d: %s", addr, *port, strerror(errno));
    return fd;
}

/* A port of 127.0.0.1 and ::1 that is certainly closed: bound on both but not listening, for
 * as long as fds[0..1] stay open. */
static int closed_port(int fds[2])
{
    for (int i = 0; i < 50; i++) {
        int port = 0;
        fds[0] = tcp_socket(AF_INET, "127.0.0.1", &port, false);
        assert_true(fds[0] >= 0);
        fds[1] = tcp_socket(AF_INET6, "::1", &port, false);
        if (fds[1] >= 0)
            return port;
        close(fds[0]);
    }
    fail_msg("no port is free on both 127.0.0.1 and ::1");
    return 0;
}

/* One result, copied. */
typedef struct rec {
    char host[64];
    char address[48];
    int port;
    rs_port_state state;
    char reason[64];
    double rtt;
    int attempts;
} rec;

/* Collects up to 512 results and checks that each arrives on the thread running the scan. */
typedef struct collector {
    rec v[512];
    size_t n;
    size_t overflow;
    pthread_t runner;
    bool foreign_thread;
} collector;

static void collect(const rs_scan_result *r, void *userdata)
{
    collector *c = userdata;
    if (!pthread_equal(pthread_self(), c->runner))
        c->foreign_thread = true;
    if (c->n == COUNT_OF(c->v)) {
        c->overflow++;
        return;
    }
    rec *x = &c->v[c->n++];
    snprintf(x->host, sizeof x->host, "%s", r->host);
    snprintf(x->address, sizeof x->address, "%s", r->address);
    snprintf(x->reason, sizeof x->reason, "%s", r->reason);
    x->port = r->port;
    x->state = r->state;
    x->rtt = r->rtt;
    x->attempts = r->attempts;
}

static collector *new_collector(void)
{
    collector *c = calloc(1, sizeof *c);
    assert_non_null(c);
    c->runner = pthread_self();
    return c;
}

static const rec *find(const collector *c, const char *address, int port)
{
    const rec *hit = NULL;
    for (size_t i = 0; i < c->n; i++) {
        if (strcmp(c->v[i].address, address) == 0 && c->v[i].port == port) {
            if (hit)
                fail_msg("%s port %d was reported twice", address, port);
            hit = &c->v[i];
        }
    }
    if (!hit)
        fail_msg("%s port %d was not reported", address, port);
    return hit;
}

/* Asserts the state and reason of address:port. */
static void expect(const collector *c, const char *address, int port, rs_port_state state,
                   const char *reason)
{
    const rec *r = find(c, address, port);
    if (r->state != state || strcmp(r->reason, reason) != 0)
        fail_msg("%s port %d: %s \"%s\", expected %s \"%s\"", address, port,
                 rs_port_state_name(r->state), r->reason, rs_port_state_name(state), reason);
}

/* ---- network namespaces -------------------------------------------------------------------- */

/* Brings loopback up in the calling thread's network namespace. */
static void loopback_up(void)
{
    int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    memset(&ifr, 0, sizeof ifr);
    snprintf(ifr.ifr_name, sizeof ifr.ifr_name, "lo");
    assert_int_equal(ioctl(fd, SIOCGIFFLAGS, &ifr), 0);
    ifr.ifr_flags |= IFF_UP;
    assert_int_equal(ioctl(fd, SIOCSIFFLAGS, &ifr), 0);
    close(fd);
}

/* Moves the calling thread into a fresh network namespace with only loopback, so that no
 * other listener of the machine (or of a test running alongside) shows up. Threads the thread
 * starts (the scan's) inherit it. Returns the descriptor to come back with, or -1 when that is
 * not allowed (not root); the thread then stays where it is. */
static int private_loopback(void)
{
    int home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    assert_true(home >= 0);
    if (unshare(CLONE_NEWNET) != 0) {
        close(home);
        return -1;
    }
    loopback_up();
    return home;
}

static void go_home(int home)
{
    if (home >= 0) {
        assert_int_equal(setns(home, CLONE_NEWNET), 0);
        close(home);
    }
}

/* The namespace pair of netns.sh, with a listener on port 87 of the target. */
typedef struct netns {
    char prefix[32];
    const char *skip; /* why the fixture is not available, or NULL */
    int home, client, server;
    int listen4, listen6;
} netns;

static int run_script(const char *args)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "sh %s/netns.sh %s", FIXTURES, args);
    int status = system(cmd);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Removes the namespaces of earlier runs that died before their teardown (a crash, a timeout):
 * names are rsscan<pid>c and rsscan<pid>s. */
static void reap_stale(void)
{
    DIR *d = opendir("/run/netns");
    if (!d)
        return;
    struct dirent *e;
    for (int n = 0; n < 1000 && (e = readdir(d)); n++) {
        long pid;
        char side;
        if (sscanf(e->d_name, "rsscan%ld%c", &pid, &side) != 2 || side != 'c')
            continue;
        if (pid > 0 && kill((pid_t)pid, 0) != 0 && errno == ESRCH) {
            char args[64];
            snprintf(args, sizeof args, "down rsscan%ld", pid);
            run_script(args);
        }
    }
    closedir(d);
}

static int open_ns(const char *prefix, char side)
{
    char path[96];
    snprintf(path, sizeof path, "/run/netns/%s%c", prefix, side);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        fail_msg("cannot open %s: %s", path, strerror(errno));
    return fd;
}

static void enter(int ns)
{
    if (setns(ns, CLONE_NEWNET) != 0)
        fail_msg("setns: %s", strerror(errno));
}

static int netns_setup(void **state)
{
    netns *f = calloc(1, sizeof *f);
    assert_non_null(f);
    *state = f;
    f->home = f->client = f->server = f->listen4 = f->listen6 = -1;
    if (geteuid() != 0) {
        f->skip = "the network namespace fixture needs root";
        return 0;
    }
    if (system("command -v ip >/dev/null && command -v nft >/dev/null") != 0) {
        f->skip = "the network namespace fixture needs iproute2 (ip) and nftables (nft)";
        return 0;
    }
    reap_stale();
    snprintf(f->prefix, sizeof f->prefix, "rsscan%ld", (long)getpid());
    char args[256];
    snprintf(args, sizeof args, "up %s %s/rules.nft", f->prefix, FIXTURES);
    if (run_script(args) != 0) {
        snprintf(args, sizeof args, "down %s", f->prefix);
        run_script(args);
        fail_msg("the network namespace fixture could not be built (netns.sh %s)", args);
    }
    f->home = open("/proc/thread-self/ns/net", O_RDONLY | O_CLOEXEC);
    f->client = open_ns(f->prefix, 'c');
    f->server = open_ns(f->prefix, 's');
    /* The listeners belong to the namespace their socket was created in. */
    enter(f->server);
    int port = 87;
    f->listen4 = listener(AF_INET, "198.18.0.2", &port);
    f->listen6 = listener(AF_INET6, "2001:2::2", &port);
    enter(f->client);
    return 0;
}

static int netns_teardown(void **state)
{
    netns *f = *state;
    if (f->home >= 0)
        setns(f->home, CLONE_NEWNET);
    int fds[] = {f->listen4, f->listen6, f->client, f->server, f->home};
    for (size_t i = 0; i < COUNT_OF(fds); i++) {
        if (fds[i] >= 0)
            close(fds[i]);
    }
    if (f->prefix[0]) {
        char args[64];
        snprintf(args, sizeof args, "down %s", f->prefix);
        run_script(args);
    }
    free(f);
    return 0;
}

static netns *fixture(void **state)
{
    netns *f = *state;
    if (f->skip) {
        fprintf(stderr, "skipped: %s\n", f->skip);
        skip();
    }
    return f;
}

/* ---- parsing ----------------------------------------------------------------------------------
 */

static void test_scan_misuse(void **state)
{
    (void)state;
    rs_scan *scan;
    assert_rs(RS_EMISUSE, rs_scan_create(NULL, NULL));
    assert_rs(RS_EINVAL, rs_scan_create(&(rs_scan_opts){.timeout = -1}, &scan));
    assert_rs(RS_EINVAL, rs_scan_create(&(rs_scan_opts){.timeout = 0.0 / 0.0}, &scan));
    assert_rs(RS_EINVAL, rs_scan_create(&(rs_scan_opts){.tries = -1}, &scan));
    assert_ok(rs_scan_destroy(NULL));
    assert_rs(RS_EMISUSE, rs_scan_add_target(NULL, "127.0.0.1"));
    assert_rs(RS_EMISUSE, rs_scan_add_ports(NULL, "80"));
    assert_rs(RS_EMISUSE, rs_scan_add_targets_file(NULL, "x"));
    assert_rs(RS_EMISUSE, rs_scan_run(NULL, NULL));
    assert_rs(RS_EMISUSE, rs_scan_stop(NULL));
    assert_string_equal(rs_scan_errmsg(NULL), "");
    assert_int_equal(rs_scan_probe_count(NULL), 0);
    assert_string_equal(rs_port_state_name(RS_PORT_OPEN), "open");
    assert_string_equal(rs_port_state_name(RS_PORT_CLOSED), "closed");
    assert_string_equal(rs_port_state_name(RS_PORT_FILTERED), "filtered");
    assert_string_equal(rs_port_state_name(RS_PORT_ERROR), "error");

    scan = new_scan(NULL);
    assert_rs(RS_EINVAL, rs_scan_add_target(scan, NULL)); /* a bad argument, not a bad handle */
    rs_scan_summary sum;
    assert_rs(RS_EINVAL, rs_scan_run(scan, &sum));
    assert_contains(rs_scan_errmsg(scan), "no targets");
    assert_int_equal(sum.probes, 0);
    assert_ok(rs_scan_destroy(scan));
}

static void test_scan_ports(void **state)
{
    (void)state;
    static const struct {
        const char *spec;
        uint64_t count;
    } good[] = {{"22", 1},          {"22,80,1000-2000", 1003},
                {"22,22,20-25", 6}, {" 22 , 80 ", 2},
                {"1-65535", 65535}, {"65535", 1},
                {"1", 1},           {"7-7", 1}};
    for (size_t i = 0; i < COUNT_OF(good); i++) {
        rs_scan *scan = new_scan(NULL);
        assert_ok(rs_scan_add_target(scan, "127.0.0.1"));
        if (rs_scan_add_ports(scan, good[i].spec))
            fail_msg("'%s': %s", good[i].spec, rs_scan_errmsg(scan));
        assert_int_equal(rs_scan_probe_count(scan), good[i].count);
        assert_ok(rs_scan_destroy(scan));
    }
    static const struct {
        const char *spec;
        const char *says;
    } bad[] = {{"0", "port 0 is out of range"},
               {"65536", "port 65536 is out of range"},
               {"a-b", "'a-b' is not a port"},
               {"5-", "'5-' is not a port"},
               {"-5", "'-5' is not a port"},
               {"", "empty"},
               {"10-5", "reversed"},
               {"22,,80", "empty"},
               {"22,", "empty"},
               {"1-65536", "out of range"},
               {"0-10", "out of range"},
               {"8o", "not a port"},
               {"99999999999", "out of range"}};
    rs_scan *scan = new_scan(NULL);
    assert_ok(rs_scan_add_target(scan, "127.0.0.1"));
    assert_int_equal(rs_scan_probe_count(scan), 9); /* the default list */
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        int rc = rs_scan_add_ports(scan, bad[i].spec);
        if (rc != RS_EINVAL)
            fail_msg("'%s' gave %s, expected RS_EINVAL", bad[i].spec, rs_err_name(rc));
        assert_contains(rs_scan_errmsg(scan), bad[i].says);
        assert_int_equal(rs_scan_probe_count(scan), 9); /* nothing added */
    }
    /* The first list replaces the default one; later lists add to it. */
    assert_ok(rs_scan_add_ports(scan, "80"));
    assert_int_equal(rs_scan_probe_count(scan), 1);
    assert_ok(rs_scan_add_ports(scan, "443,80"));
    assert_int_equal(rs_scan_probe_count(scan), 2);
    assert_ok(rs_scan_destroy(scan));
}

static void test_scan_targets(void **state)
{
    (void)state;
    static const struct {
        const char *spec;
        uint64_t count;
    } good[] = {{"127.0.0.1", 1},
                {"::1", 1},
                {"localhost", 1},
                {"my-host.example.", 1},
                {"10.0.0.0/24", 256},
                {"10.0.0.7/30", 4},
                {"10.1.2.3/32", 1},
                {"0.0.0.0/0", UINT64_C(1) << 32},
                {"fd00::/120", 256},
                {"fd00::1/128", 1},
                {"127.0.0.1-20", 20},
                {"10.0.0.5-5", 1},
                {"10.0.0.1-10.0.1.255", 511},
                {"fd00::/64", UINT64_MAX}};
    for (size_t i = 0; i < COUNT_OF(good); i++) {
        rs_scan *scan = new_scan(NULL);
        assert_ok(rs_scan_add_ports(scan, "80"));
        if (rs_scan_add_target(scan, good[i].spec))
            fail_msg("'%s': %s", good[i].spec, rs_scan_errmsg(scan));
        if (rs_scan_probe_count(scan) != good[i].count)
            fail_msg("'%s' counts %llu probes, expected %llu", good[i].spec,
                     (unsigned long long)rs_scan_probe_count(scan),
                     (unsigned long long)good[i].count);
        assert_ok(rs_scan_destroy(scan));
    }
    static const char *const bad[] = {"",        "256.1.1.1",       "1.2.3",       "10.0.0.0/33",
                                      "::1/129", "1.2.3.4/",        "/24",         "10.0.0.0/8/8",
                                      "::g",     "1.2.3.4-1.2.3.1", "1.2.3.4-300", "1.2.3.4-",
                                      "-",       "bad host!",       "a..b",        " 127.0.0.1",
                                      "12345",   "1.2.3.4-5-6",     "fd00::/1x",   "x/24"};
    rs_scan *scan = new_scan(NULL);
    for (size_t i = 0; i < COUNT_OF(bad); i++) {
        int rc = rs_scan_add_target(scan, bad[i]);
        if (rc != RS_EINVAL)
            fail_msg("'%s' gave %s, expected RS_EINVAL", bad[i], rs_err_name(rc));
        char says[80];
        snprintf(says, sizeof says, "invalid target '%s': ", bad[i]);
        assert_contains(rs_scan_errmsg(scan), says);
    }
    assert_int_equal(rs_scan_probe_count(scan), 0);
    assert_ok(rs_scan_destroy(scan));
}

static void test_scan_probe_limit(void **state)
{
    (void)state;
    rs_scan *scan = new_scan(NULL);
    assert_ok(rs_scan_add_target(scan, "10.0.0.0/8"));
    assert_ok(rs_scan_add_ports(scan, "1-65535"));
    /* Counted from the specs: nothing is expanded. */
    assert_int_equal(rs_scan_probe_count(scan), (UINT64_C(1) << 24) * 65535);
    rs_scan_summary sum;
    double t0 = rs_test_now();
    assert_rs(RS_ELIMIT, rs_scan_run(scan, &sum));
    assert_true(rs_test_now() - t0 < 1.0);
    assert_contains(rs_scan_errmsg(scan), "1099494850560 probes");
    assert_contains(rs_scan_errmsg(scan), "--force");
    assert_int_equal(sum.probes, 0);
    assert_ok(rs_scan_destroy(scan));

    /* Exactly the limit is allowed (not run here: 10/8 is not ours to probe); one more is not. */
    scan = new_scan(NULL);
    assert_ok(rs_scan_add_ports(scan, "80"));
    assert_ok(rs_scan_add_target(scan, "10.0.0.0/8"));
    assert_int_equal(rs_scan_probe_count(scan), UINT64_C(1) << 24);
    assert_ok(rs_scan_add_target(scan, "127.0.0.1"));
    assert_rs(RS_ELIMIT, rs_scan_run(scan, NULL));
    assert_ok(rs_scan_destroy(scan));

    /* Counts saturate instead of wrapping. */
    scan = new_scan(NULL);
    assert_ok(rs_scan_add_target(scan, "fd00::/64"));
    assert_ok(rs_scan_add_target(scan, "fd01::/64"));
    assert_int_equal(rs_scan_probe_count(scan), UINT64_MAX);
    assert_rs(RS_ELIMIT, rs_scan_run(scan, NULL));
    assert_contains(rs_scan_errmsg(scan), "at least");
    assert_ok(rs_scan_destroy(scan));
}

static void test_scan_targets_file(void **state)
{
    (void)state;
    int fds[2];
    int port = closed_port(fds);
    char ports[8];
    snprintf(ports, sizeof ports, "%d", port);
    collector *c = new_collector();
    rs_scan *scan = new_scan(&(rs_scan_opts){.on_result = collect, .userdata = c});
    assert_ok(rs_scan_add_ports(scan, ports));
    assert_ok(rs_scan_add_targets_file(scan, FIXTURES "/targets.txt"));
    assert_int_equal(rs_scan_probe_count(scan), 9);

    /* A bad line names its line and adds nothing of the file. */
    assert_rs(RS_EINVAL, rs_scan_add_targets_file(scan, FIXTURES "/bad_targets.txt"));
    assert_contains(rs_scan_errmsg(scan), "bad_targets.txt:5: invalid target '10.0.0.0/33'");
    assert_int_equal(rs_scan_probe_count(scan), 9);
    assert_rs(RS_ENOENT, rs_scan_add_targets_file(scan, FIXTURES "/no_such_file.txt"));
    assert_contains(rs_scan_errmsg(scan), "No such file or directory");
    assert_int_equal(rs_scan_probe_count(scan), 9);

    rs_scan_summary sum;
    assert_ok(rs_scan_run(scan, &sum));
    assert_int_equal(sum.probes, 9);
    assert_int_equal(sum.hosts, 9);
    assert_int_equal(sum.closed, 9);
    assert_false(c->foreign_thread);
    /* Every address once, plus localhost as the resolver's first address for it. */
    static const char *const addrs[] = {"127.0.0.1", "127.0.0.2", "127.0.0.3", "::1",
                                        "127.0.1.0", "127.0.1.1", "127.0.1.2", "127.0.1.3"};
    size_t seen[COUNT_OF(addrs)] = {0}, localhost = 0;
    for (size_t i = 0; i < c->n; i++) {
        const rec *r = &c->v[i];
        assert_int_equal(r->state, RS_PORT_CLOSED);
        assert_string_equal(r->reason, "conn-refused");
        if (strcmp(r->host, "localhost") == 0) {
            localhost++;
            assert_true(strcmp(r->address, "127.0.0.1") == 0 || strcmp(r->address, "::1") == 0);
            continue;
        }
        assert_string_equal(r->host, r->address);
        for (size_t k = 0; k < COUNT_OF(addrs); k++)
            seen[k] += strcmp(addrs[k], r->address) == 0;
    }
    for (size_t k = 0; k < COUNT_OF(addrs); k++) {
        if (seen[k] != 1)
            fail_msg("%s was reported %zu times", addrs[k], seen[k]);
    }
    assert_int_equal(localhost, 1);
    assert_ok(rs_scan_destroy(scan));
    free(c);
    close(fds[0]);
    close(fds[1]);
}

/* ---- loopback ----------------------------------------------------------------------------- */

/* What a scan of every port of 127.0.0.1 and ::1 saw. */
typedef struct tally {
    uint8_t seen[2][65536];
    uint8_t open[2][65536];
    size_t results, others;
    size_t bad; /* wrong state, reason or fields */
    char first_bad[160];
    pthread_t runner;
    bool foreign_thread;
} tally;

static void count(const rs_scan_result *r, void *userdata)
{
    tally *t = userdata;
    t->results++;
    if (!pthread_equal(pthread_self(), t->runner))
        t->foreign_thread = true;
    int fam = strcmp(r->address, "127.0.0.1") == 0 ? 0 : strcmp(r->address, "::1") == 0 ? 1 : -1;
    bool ok = fam >= 0 && r->port >= 1 && r->port <= 65535 && r->attempts == 1 &&
              strcmp(r->host, r->address) == 0 && r->rtt >= 0;
    if (ok && r->state == RS_PORT_OPEN)
        ok = strcmp(r->reason, "syn-ack") == 0;
    else if (ok)
        ok = r->state == RS_PORT_CLOSED &&
             (strcmp(r->reason, "conn-refused") == 0 || strcmp(r->reason, "self-connect") == 0);
    if (!ok) {
        if (!t->bad++)
            snprintf(t->first_bad, sizeof t->first_bad, "%s %s %d %s %s attempts %d", r->host,
                     r->address, r->port, rs_port_state_name(r->state), r->reason, r->attempts);
        return;
    }
    t->seen[fam][r->port]++;
    if (r->state == RS_PORT_OPEN)
        t->open[fam][r->port] = 1;
}

/* Whether /proc lists a TCP listener on port of the given family (the host's own services,
 * when the test cannot have a namespace of its own). */
static bool listed_listener(int fam, int port)
{
    FILE *f = fopen(fam == 0 ? "/proc/net/tcp" : "/proc/net/tcp6", "r");
    if (!f)
        return false;
    char line[512];
    bool found = false;
    while (!found && fgets(line, sizeof line, f)) {
        char local[64];
        unsigned st;
        if (sscanf(line, " %*d: %63s %*s %x", local, &st) != 2 || st != 0x0A)
            continue;
        const char *colon = strrchr(local, ':');
        found = colon && strtol(colon + 1, NULL, 16) == port;
    }
    fclose(f);
    return found;
}

static void test_scan_loopback_all_ports(void **state)
{
    (void)state;
    int home = private_loopback();
    if (home < 0)
        fprintf(stderr, "note: no namespace of its own (not root): the host's listeners count\n");
    int fds[5], ports[5] = {0};
    for (int i = 0; i < 3; i++)
        fds[i] = listener(AF_INET, "127.0.0.1", &ports[i]);
    for (int i = 3; i < 5; i++)
        fds[i] = listener(AF_INET6, "::1", &ports[i]);
    tally *t = calloc(1, sizeof *t);
    assert_non_null(t);
    t->runner = pthread_self();
    rs_scan *scan = new_scan(&(rs_scan_opts){.on_result = count, .userdata = t});
    assert_ok(rs_scan_add_target(scan, "127.0.0.1"));
    assert_ok(rs_scan_add_target(scan, "::1"));
    assert_ok(rs_scan_add_ports(scan, "1-65535"));
    rs_scan_summary sum;
    assert_ok(rs_scan_run(scan, &sum));
    if (t->bad)
        fail_msg("%zu unexpected results, the first: %s", t->bad, t->first_bad);
    assert_false(t->foreign_thread);
    assert_int_equal(t->results, 2 * 65535);
    assert_int_equal(sum.probes, 2 * 65535);
    assert_int_equal(sum.hosts, 2);
    assert_int_equal(sum.errors + sum.filtered, 0);
    assert_int_equal(sum.open + sum.closed, 2 * 65535);
    for (int fam = 0; fam < 2; fam++) {
        for (int p = 1; p <= 65535; p++) {
            if (t->seen[fam][p] != 1)
                fail_msg("%s port %d reported %d times", fam ? "::1" : "127.0.0.1", p,
                         t->seen[fam][p]);
            bool ours = false;
            for (int i = fam ? 3 : 0; i < (fam ? 5 : 3); i++)
                ours = ours || ports[i] == p;
            bool open = t->open[fam][p];
            if (ours && !open)
                fail_msg("listener %s port %d reported closed", fam ? "::1" : "127.0.0.1", p);
            if (!ours && open && (home >= 0 || !listed_listener(fam, p)))
                fail_msg("%s port %d reported open without a listener", fam ? "::1" : "127.0.0.1",
                         p);
        }
    }
    if (home >= 0)
        assert_int_equal(sum.open, 5);
    assert_ok(rs_scan_destroy(scan));
    for (int i = 0; i < 5; i++)
        close(fds[i]);
    free(t);
    go_home(home);
}

static void test_scan_default_ports(void **state)
{
    (void)state;
    int home = private_loopback();
    collector *c = new_collector();
    rs_scan *scan = new_scan(&(rs_scan_opts){.on_result = collect, .userdata = c});
    assert_ok(rs_scan_add_target(scan, "127.0.0.1"));
    rs_scan_summary sum;
    assert_ok(rs_scan_run(scan, &sum));
    static const int seed[] = {22, 80, 135, 139, 443, 445, 3389, 5985, 5986};
    assert_int_equal(c->n, COUNT_OF(seed));
    for (size_t i = 0; i < COUNT_OF(seed); i++) {
        const rec *r = find(c, "127.0.0.1", seed[i]);
        if (home >= 0)
            assert_int_equal(r->state, RS_PORT_CLOSED);
    }
    assert_ok(rs_scan_destroy(scan));
    free(c);
    go_home(home);
}

static void test_scan_ranges(void **state)
{
    (void)state;
    int fds[2];
    int port = closed_port(fds);
    char ports[8];
    snprintf(ports, sizeof ports, "%d", port);
    collector *c = new_collector();
    rs_scan *scan = new_scan(&(rs_scan_opts){.on_result = collect, .userdata = c});
    assert_ok(rs_scan_add_target(scan, "127.0.0.1-4"));
    assert_ok(rs_scan_add_target(scan, "127.0.2.9/30"));
    assert_ok(rs_scan_add_ports(scan, ports));
    rs_scan_summary sum;
    assert_ok(rs_scan_run(scan, &sum));
    assert_int_equal(sum.hosts, 8);
    assert_int_equal(sum.probes, 8);
    static const char *const addrs[] = {"127.0.0.1", "127.0.0.2", "127.0.0.3",  "127.0.0.4",
                                        "127.0.2.8", "127.0.2.9", "127.0.2.10", "127.0.2.11"};
    for (size_t i = 0; i < COUNT_OF(addrs); i++) {
        expect(c, addrs[i], port, RS_PORT_CLOSED, "conn-refused");
        const rec *r = find(c, addrs[i], port);
        assert_string_equal(r->host, r->address);
        assert_int_equal(r->attempts, 1);
    }
    /* A scan runs again, from the start. */
    c->n = 0;
    assert_ok(rs_scan_run(scan, &sum));
    assert_int_equal(c->n, 8);
    assert_ok(rs_scan_destroy(scan));
    free(c);
    close(fds[0]);
    close(fds[1]);
}

static void test_scan_unknown_host(void **state)
{
    (void)state;
    int fds[2];
    int port = closed_port(fds);
    char ports[8];
    snprintf(ports, sizeof ports, "%d", port);
    collector *c = new_collector();
    rs_scan *scan = new_scan(&(rs_scan_opts){.on_result = collect, .userdata = c});
    /* .invalid never resolves (RFC 2606). */
    assert_ok(rs_scan_add_target(scan, "nohost.invalid"));
    assert_ok(rs_scan_add_target(scan, "127.0.0.1"));
    assert_ok(rs_scan_add_target(scan, "nohost2.invalid"));
    assert_ok(rs_scan_add_target(scan, "::1"));
    assert_ok(rs_scan_add_ports(scan, ports));
    assert_ok(rs_scan_add_ports(scan, "1"));
    assert_int_equal(rs_scan_probe_count(scan), 8); /* a name counts as one address */
    rs_scan_summary sum;
    assert_ok(rs_scan_run(scan, &sum));
    assert_int_equal(sum.probes, 6);
    assert_int_equal(sum.errors, 2);
    assert_int_equal(sum.hosts, 2);
    size_t errors = 0;
    for (size_t i = 0; i < c->n; i++) {
        const rec *r = &c->v[i];
        if (r->state != RS_PORT_ERROR)
            continue;
        errors++;
        assert_true(strcmp(r->host, "nohost.invalid") == 0 ||
                    strcmp(r->host, "nohost2.invalid") == 0);
        assert_string_equal(r->address, "");
        assert_int_equal(r->port, 0);
        assert_true(r->reason[0] != '\0');
        assert_int_equal(r->attempts, 0);
        assert_true(r->rtt < 0);
    }
    assert_int_equal(errors, 2);
    expect(c, "127.0.0.1", port, RS_PORT_CLOSED, "conn-refused");
    expect(c, "::1", port, RS_PORT_CLOSED, "conn-refused");
    find(c, "127.0.0.1", 1);
    find(c, "::1", 1);
    assert_ok(rs_scan_destroy(scan));
    free(c);
    close(fds[0]);
    close(fds[1]);
}

/* Runs in a child with a descriptor limit of 64 and a window of 2000: socket() fails with
 * EMFILE all the time, and every probe must still be decided exactly once. */
static int back_pressure_child(void)
{
    bool own = unshare(CLONE_NEWNET) == 0;
    if (own)
        loopback_up();
    int port = 0;
    int fd = tcp_socket(AF_INET, "127.0.0.1", &port, true);
    struct rlimit rl = {.rlim_cur = 64, .rlim_max = 64};
    if (fd < 0 || setrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 10;
    tally *t = calloc(1, sizeof *t);
    t->runner = pthread_self();
    rs_scan *scan;
    rs_scan_opts o = {
        .max_inflight = 2000, .tries = 1, .timeout = 5, .on_result = count, .userdata = t};
    char ports[32];
    snprintf(ports, sizeof ports, "1-3000,%d", port);
    if (rs_scan_create(&o, &scan) || rs_scan_add_target(scan, "127.0.0.1") ||
        rs_scan_add_ports(scan, ports))
        return 11;
    rs_scan_summary sum;
    if (rs_scan_run(scan, &sum))
        return 12;
    if (t->bad || t->results != 3001 || sum.errors || sum.filtered || !t->open[0][port])
        return 13;
    for (int p = 1; p <= 3000; p++) {
        if (t->seen[0][p] != 1 || (own && t->open[0][p]))
            return 14;
    }
    rs_scan_destroy(scan);
    free(t);
    close(fd);
    return 0;
}

static void test_scan_back_pressure(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0)
        _exit(back_pressure_child());
    int status;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("the scan under a descriptor limit of 64 failed (child status %d)", status);
}

/* ---- stopping ------------------------------------------------------------------------------- */

typedef struct stopper {
    rs_scan *scan;
    rs_ps *ps;
    double after;
    pthread_t thread;
} stopper;

static void *stop_later(void *arg)
{
    stopper *s = arg;
    sleep_for(s->after);
    if (s->scan)
        rs_scan_stop(s->scan);
    else
        rs_ps_stop(s->ps);
    return NULL;
}

static void start_stopper(stopper *s)
{
    assert_int_equal(pthread_create(&s->thread, NULL, stop_later, s), 0);
}

/* Runs scan, stopped from another thread after 0.2 s; it must end promptly. */
static void stopped_scan(rs_scan *scan)
{
    stopper s = {.scan = scan, .after = 0.2};
    start_stopper(&s);
    rs_scan_summary sum;
    double t0 = rs_test_now();
    assert_rs(RS_ESTOPPED, rs_scan_run(scan, &sum));
    double took = rs_test_now() - t0;
    pthread_join(s.thread, NULL);
    if (took > 2.0)
        fail_msg("the stopped scan took %.3f s", took);
    assert_contains(rs_scan_errmsg(scan), "stopped");
    assert_true(sum.probes < rs_scan_probe_count(scan));
    assert_int_equal(sum.probes, sum.open + sum.closed + sum.filtered + sum.errors);
}

static void test_scan_stop_filtered(void **state)
{
    fixture(state);
    rs_scan *scan = new_scan(&(rs_scan_opts){.timeout = 5, .tries = 3, .max_inflight = 256});
    assert_ok(rs_scan_add_target(scan, "198.18.0.2"));
    assert_ok(rs_scan_add_ports(scan, "1000-60000")); /* dropped: about 20 minutes of probes */
    stopped_scan(scan);
    assert_ok(rs_scan_destroy(scan));
}

static void test_scan_stop_loopback(void **state)
{
    (void)state;
    int home = private_loopback();
    rs_scan *scan = new_scan(NULL);
    assert_ok(rs_scan_add_target(scan, "127.0.0.0/24"));
    assert_ok(rs_scan_add_ports(scan, "1-65535"));
    stopped_scan(scan);
    /* A stop asked for while no scan runs is spent by the next run. */
    assert_ok(rs_scan_stop(scan));
    assert_rs(RS_ESTOPPED, rs_scan_run(scan, NULL));
    assert_ok(rs_scan_destroy(scan));
    go_home(home);
}

/* ---- states and reasons from the namespaces ---------------------------------------------------
 */

static void test_scan_netns_states(void **state)
{
    fixture(state);
    collector *c = new_collector();
    rs_scan *scan =
        new_scan(&(rs_scan_opts){.timeout = 0.5, .tries = 2, .on_result = collect, .userdata = c});
    assert_ok(rs_scan_add_target(scan, "198.18.0.2"));
    assert_ok(rs_scan_add_target(scan, "2001:2::2"));
    assert_ok(rs_scan_add_ports(scan, "81-88"));
    /* No route to these from the client namespace: errors, and nothing leaves. */
    assert_ok(rs_scan_add_target(scan, "198.19.0.1"));
    assert_ok(rs_scan_add_target(scan, "2001:3::1"));
    rs_scan_summary sum;
    assert_ok(rs_scan_run(scan, &sum));
    assert_false(c->foreign_thread);
    assert_int_equal(c->n, 32);
    assert_int_equal(sum.hosts, 4);
    static const char *const targets[] = {"198.18.0.2", "2001:2::2"};
    for (int i = 0; i < 2; i++) {
        const char *a = targets[i];
        expect(c, a, 81, RS_PORT_FILTERED, "no-response");
        expect(c, a, 82, RS_PORT_CLOSED, "conn-refused");
        expect(c, a, 83, RS_PORT_FILTERED, "admin-prohibited");
        expect(c, a, 84, RS_PORT_FILTERED, "host-unreach");
        expect(c, a, 85, RS_PORT_CLOSED, "port-unreach");
        expect(c, a, 86, RS_PORT_FILTERED, "net-unreach");
        expect(c, a, 87, RS_PORT_OPEN, "syn-ack");
        expect(c, a, 88, RS_PORT_CLOSED, "conn-refused");
        const rec *dropped = find(c, a, 81);
        assert_int_equal(dropped->attempts, 2);
        assert_true(dropped->rtt < 0);
        for (int p = 82; p <= 88; p++) {
            const rec *r = find(c, a, p);
            assert_int_equal(r->attempts, 1);
            assert_true(r->rtt >= 0 && r->rtt < 0.5);
        }
    }
    for (int p = 81; p <= 88; p++) {
        expect(c, "198.19.0.1", p, RS_PORT_ERROR, "Network is unreachable");
        expect(c, "2001:3::1", p, RS_PORT_ERROR, "Network is unreachable");
    }
    assert_int_equal(sum.open, 2);
    assert_int_equal(sum.closed, 6);
    assert_int_equal(sum.filtered, 8);
    assert_int_equal(sum.errors, 16);
    assert_ok(rs_scan_destroy(scan));
    free(c);
}

/* ---- the net built-ins ---------------------------------------------------------------------- */

static void test_scan_lua_builtins(void **state)
{
    (void)state;
    int open_port = 0, fds[2];
    int lfd = listener(AF_INET, "127.0.0.1", &open_port);
    int closed = closed_port(fds);
    rs_runspace *rs = open_runspace(NULL);
    char src[1024], want[512];

    snprintf(src, sizeof src, "local s, r, t = net.probe('127.0.0.1', %d) return {s, r, type(t)}",
             open_port);
    assert_eval(rs, src, "[[\"open\",\"syn-ack\",\"number\"]]");
    snprintf(src, sizeof src, "local s, r, t = net.probe('::1', %d, 500) return {s, r, type(t)}",
             closed);
    assert_eval(rs, src, "[[\"closed\",\"conn-refused\",\"number\"]]");
    assert_eval(rs, "local s, r, t = net.probe('nohost.invalid', 80) return {s, t == nil}",
                "[[\"error\",true]]");

    /* Records, sorted by port, with every field. */
    snprintf(src, sizeof src,
             "local r = net.scan{hosts = '127.0.0.1', ports = {%d, %d}, timeout = 1000, "
             "retries = 0}\n"
             "table.sort(r, function(a, b) return a.port < b.port end)\n"
             "local out = {}\n"
             "for _, x in ipairs(r) do out[#out + 1] = table.concat({x.host, x.address, x.port, "
             "x.state, x.reason, type(x.rtt_ms)}, ' ') end\n"
             "return out",
             closed < open_port ? closed : open_port, closed < open_port ? open_port : closed);
    if (closed < open_port)
        snprintf(want, sizeof want,
                 "[[\"127.0.0.1 127.0.0.1 %d closed conn-refused number\",\"127.0.0.1 127.0.0.1 "
                 "%d open syn-ack number\"]]",
                 closed, open_port);
    else
        snprintf(want, sizeof want,
                 "[[\"127.0.0.1 127.0.0.1 %d open syn-ack number\",\"127.0.0.1 127.0.0.1 %d "
                 "closed conn-refused number\"]]",
                 open_port, closed);
    assert_eval(rs, src, want);

    /* Hosts as an array and as a list in a string; a name that does not resolve. */
    snprintf(src, sizeof src,
             "local n, errs = 0, 0\n"
             "for _, x in ipairs(net.scan{hosts = {'nohost.invalid', '127.0.0.1-2'}, ports = "
             "'%d'}) do\n"
             "  n = n + 1 if x.state == 'error' then errs = errs + 1 assert(x.port == 0 and "
             "x.address == '' and x.rtt_ms == nil) end\n"
             "end\n"
             "local m = #net.scan{hosts = '127.0.0.1, ::1 127.0.0.3', ports = '%d'}\n"
             "return {n, errs, m}",
             closed, closed);
    assert_eval(rs, src, "[[3,1,3]]");

    assert_eval(rs,
                "local a = net.resolve('localhost') local ok = false\n"
                "for _, x in ipairs(a) do ok = ok or x == '127.0.0.1' or x == '::1' end\n"
                "return ok",
                "[true]");
    assert_eval(rs, "local a, why = net.resolve('nohost.invalid') return {a == nil, type(why)}",
                "[[true,\"string\"]]");
    assert_eval(rs, "return net.resolve('::1')", "[[\"::1\"]]");

    /* Errors are Lua errors with the scanner's message; a scan that raised leaks nothing. */
    assert_eval_fails(rs, "net.scan{hosts = 'bad!host'}", RS_ERUNTIME,
                      "net.scan: invalid target 'bad!host'");
    assert_eval_fails(rs, "net.scan{hosts = '127.0.0.1', ports = '0'}", RS_ERUNTIME,
                      "out of range");
    assert_eval_fails(rs, "net.scan{hosts = '127.0.0.1', ports = {70000}}", RS_ERUNTIME,
                      "out of range");
    assert_eval_fails(rs, "net.scan{hosts = '127.0.0.1', timeout = -1}", RS_ERUNTIME,
                      "timeout must be");
    assert_eval_fails(rs, "net.scan{ports = '80'}", RS_ERUNTIME, "hosts must be");
    assert_eval_fails(rs, "net.scan{hosts = '10.0.0.0/8', ports = '1-65535'}", RS_ERUNTIME,
                      "--force");
    assert_eval_fails(rs, "net.probe('127.0.0.1', 70000)", RS_ERUNTIME, "port must be 1-65535");
    assert_eval_fails(rs, "net.probe('127.0.0.0/30', 80)", RS_ERUNTIME, "more than one host");
    assert_eval(rs, "return pcall(net.scan, {hosts = 'x y!'})",
                "[false,\"net.scan: invalid "
                "target 'y!': not a host name, "
                "address, CIDR block or range\"]");
    assert_ok(rs_runspace_destroy(rs));
    close(lfd);
    close(fds[0]);
    close(fds[1]);
}

static void test_scan_lua_restricted(void **state)
{
    (void)state;
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_RESTRICTED, &iss));
    rs_runspace *rs = open_runspace(iss);
    assert_eval(rs, "return net == nil", "[true]");
    assert_ok(rs_runspace_destroy(rs));
    assert_ok(rs_iss_destroy(iss));
    rs = open_runspace(NULL);
    assert_eval(rs, "return {type(net.probe), type(net.scan), type(net.resolve)}",
                "[[\"function\",\"function\",\"function\"]]");
    assert_ok(rs_runspace_destroy(rs));
}

/* Runs src on a runspace of this thread with an invocation timeout of 0.3 s: it must time out
 * promptly, and the runspace must still work. */
static void timed_out(const char *src)
{
    rs_runspace *rs = open_runspace(NULL);
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    assert_ok(rs_ps_set_opts(ps, &(rs_ps_opts){.timeout = 0.3}));
    assert_ok(rs_ps_add_script(ps, src, (size_t)-1));
    double t0 = rs_test_now();
    assert_rs(RS_ETIMEDOUT, rs_ps_invoke(ps, NULL));
    double took = rs_test_now() - t0;
    if (took > 2.0)
        fail_msg("the timeout of 0.3 s took %.3f s", took);
    assert_ok(rs_ps_destroy(ps));
    assert_eval(rs, "return 1", "[1]");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_scan_lua_timeout_filtered(void **state)
{
    fixture(state);
    timed_out("return net.scan{hosts = '198.18.0.2', ports = '1000-1999', timeout = 5000, "
              "retries = 3}");
    timed_out("return net.probe('198.18.0.2', 1000, 5000)");
    /* A pcall does not swallow the timeout. */
    timed_out("local ok = pcall(net.scan, {hosts = '198.18.0.2', ports = '1000-1999', timeout = "
              "5000}) return ok");
}

static void test_scan_lua_stop(void **state)
{
    (void)state;
    rs_pool *pool;
    assert_ok(rs_pool_create(&(rs_pool_opts){.max_runspaces = 1}, &pool));
    assert_ok(rs_pool_open(pool));
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_pool(ps, pool));
    /* Loopback only; about three minutes unless stopped. */
    assert_ok(rs_ps_add_script(ps, "return #net.scan{hosts = '127.0.0.0/24', ports = '1-65535'}",
                               (size_t)-1));
    rs_async *a;
    assert_ok(rs_ps_begin_invoke(ps, &a));
    sleep_for(0.2);
    double t0 = rs_test_now();
    assert_ok(rs_ps_stop(ps));
    double took = rs_test_now() - t0;
    if (took > 2.0)
        fail_msg("stopping net.scan took %.3f s", took);
    assert_rs(RS_ESTOPPED, rs_ps_end_invoke(ps, a, NULL));
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
}

/* A net.scan whose records exceed the runspace's memory cap fails with RS_ENOMEM, leaks
 * nothing, and the runspace is replaced. */
static void test_scan_lua_memory_limit(void **state)
{
    (void)state;
    int home = private_loopback();
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    assert_ok(rs_iss_set_limits(iss, &(rs_limits){.memory_bytes = 2u << 20}));
    rs_runspace *rs = open_runspace(iss);
    assert_eval_fails(rs, "return net.scan{hosts = '127.0.0.1', ports = '1-65535'}", RS_ENOMEM,
                      "memory");
    assert_eval(rs, "return 1", "[1]");
    assert_ok(rs_runspace_destroy(rs));
    assert_ok(rs_iss_destroy(iss));
    go_home(home);
}

/* Out of memory at each allocation of a scan in turn: every call fails cleanly or succeeds. */
static void test_scan_out_of_memory(void **state)
{
    (void)state;
    int home = private_loopback();
    bool done = false;
    for (long n = 0; n < 500 && !done; n++) {
        rs__test_fail_allocations_after(n);
        tally *t = calloc(1, sizeof *t);
        assert_non_null(t);
        t->runner = pthread_self();
        rs_scan *scan = NULL;
        rs_scan_summary sum;
        int rc = rs_scan_create(&(rs_scan_opts){.on_result = count, .userdata = t}, &scan);
        if (!rc)
            rc = rs_scan_add_target(scan, "127.0.0.1");
        if (!rc)
            rc = rs_scan_add_target(scan, "::1");
        if (!rc)
            rc = rs_scan_add_ports(scan, "1-2100"); /* 4200 probes: one loop per CPU */
        if (!rc)
            rc = rs_scan_run(scan, &sum);
        rs__test_fail_allocations_after(-1);
        if (rc != 0 && rc != RS_ENOMEM)
            fail_msg("after %ld allocations: %s (%s)", n, rs_err_name(rc), rs_scan_errmsg(scan));
        if (rc == RS_ENOMEM)
            assert_int_equal(t->results, 0); /* nothing was probed */
        done = rc == 0;
        if (done) {
            assert_int_equal(t->results, 4200);
            assert_int_equal(t->bad, 0);
        }
        assert_ok(rs_scan_destroy(scan));
        free(t);
    }
    assert_true(done);
    go_home(home);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_scan_misuse),
    cmocka_unit_test(test_scan_ports),
    cmocka_unit_test(test_scan_targets),
    cmocka_unit_test(test_scan_probe_limit),
    cmocka_unit_test(test_scan_targets_file),
    cmocka_unit_test(test_scan_loopback_all_ports),
    cmocka_unit_test(test_scan_default_ports),
    cmocka_unit_test(test_scan_ranges),
    cmocka_unit_test(test_scan_unknown_host),
    cmocka_unit_test(test_scan_back_pressure),
    cmocka_unit_test_setup_teardown(test_scan_stop_filtered, netns_setup, netns_teardown),
    cmocka_unit_test(test_scan_stop_loopback),
    cmocka_unit_test_setup_teardown(test_scan_netns_states, netns_setup, netns_teardown),
    cmocka_unit_test(test_scan_lua_builtins),
    cmocka_unit_test(test_scan_lua_restricted),
    cmocka_unit_test_setup_teardown(test_scan_lua_timeout_filtered, netns_setup, netns_teardown),
    cmocka_unit_test(test_scan_lua_stop),
    cmocka_unit_test(test_scan_lua_memory_limit),
    cmocka_unit_test(test_scan_out_of_memory),
};

RS_TEST_MAIN(tests)
