/*
 * scan.c -- the network scanner's public API (docs/design.md section 1, rs_scan): targets and
 * ports, the order of the probes, name resolution, the window, results and the summary. The
 * sockets are the engine's (scan_epoll.c).
 *
 * Nothing is ever expanded. A target is kept as its spec (a name, or a first address and a
 * count) and the ports as a bitmap, so 10.0.0.0/8 x 1-65535 costs a few bytes; while the scan
 * runs, a cursor over targets x addresses x ports hands the engine a batch of probes at a
 * time. Memory is constant in the number of probes. Names are resolved when the scan runs,
 * before the first probe, so a slow resolver delays the start rather than stalling probes in
 * flight.
 */
#include "scan_int.h"

#include "thread.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <unistd.h>

#define MAX_PROBES (UINT64_C(1) << 24) /* without force */
#define WINDOW_MAX 16384u /* default window: enough to keep the kernel busy, a few MB of slots */
#define FD_RESERVE 256u   /* descriptors the default window leaves to the application */
#define SPLIT_MIN 4096u   /* probes from which a scan runs one event loop per CPU */
#define LOOPS_MAX 8u
#define LINE_MAX_BYTES 1024 /* a line of a targets file, without its newline */
#define TARGETS_MAX                                                                                \
    (UINT32_C(1) << 24) /* targets in a scan: a probe names its target in 32 bits,                 \
                         * and more targets than this make too many probes */

/* The seed's list, used until rs_scan_add_ports is called. */
static const uint16_t default_ports[] = {22, 80, 135, 139, 443, 445, 3389, 5985, 5986};

typedef struct target {
    char *name;        /* a name as given, or NULL for an address target */
    int family;        /* AF_INET or AF_INET6; for a name, what it resolved to, else AF_UNSPEC */
    uint64_t count;    /* addresses, saturated at UINT64_MAX; 1 for a name */
    uint32_t v4;       /* the first address, host byte order */
    uint8_t v6[16];    /* the first address */
    rs__sockaddr addr; /* a resolved name's address (it may carry an IPv6 scope) */
    const char *error; /* why a name did not resolve */
    int bits;          /* an IPv6 block's prefix length (its count saturates below 64) */
} target;

/* Where the feed is: targets[target], its address number `offset`, and the last port given
 * for that address (0 before the first). */
typedef struct cursor {
    size_t target;
    uint64_t offset;
    unsigned port;
} cursor;

struct rs_scan {
    rs_scan_opts opts;
    target *targets;
    size_t ntargets;
    size_t cap;
    uint64_t ports[65536 / 64]; /* bit p: port p is probed */
    unsigned nports;
    bool default_ports; /* ports holds the default list, which the first add_ports replaces */
    atomic_int running;
    atomic_int stop;
    int stop_fd;
    /* The interruption of a script running the scan (rs__scan_set_interrupt). */
    int signo;
    int (*due)(void *ctx);
    void *due_ctx;
    /* While running: the cursor and the addresses started, under the engine's feed lock;
     * the summary, on the thread running the scan. */
    cursor cur;
    uint64_t hosts;
    rs_scan_summary sum;
    rs__msg msg;
    rs__excludes excl; /* what --exclude leaves out (scan_exclude.c) */
};

/* Probe counts saturate at UINT64_MAX rather than wrap. */
static uint64_t sat_add(uint64_t a, uint64_t b)
{
    return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

static uint64_t sat_mul(uint64_t a, uint64_t b)
{
    return b && a > UINT64_MAX / b ? UINT64_MAX : a * b;
}

/* The decimal number s[0..len) (digits only; values past 999999 stay there), or -1. */
static long number(const char *s, size_t len)
{
    if (!len)
        return -1;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        if (v < 1000000)
            v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* ---- ports -------------------------------------------------------------------------------- */

/* Marks port p in a port bitmap. */
static void set_port(uint64_t *map, unsigned p)
{
    map[p / 64] |= UINT64_C(1) << (p % 64);
}

/* The number of ports in a bitmap. */
static unsigned count_ports(const uint64_t *map)
{
    unsigned n = 0;
    for (size_t i = 0; i < 65536 / 64; i++)
        n += (unsigned)__builtin_popcountll(map[i]);
    return n;
}

/* The smallest port in map above `after`, or 0. */
static unsigned next_port(const uint64_t *map, unsigned after)
{
    for (unsigned p = after + 1; p < 65536; p = (p / 64 + 1) * 64) {
        uint64_t w = map[p / 64] >> (p % 64);
        if (w)
            return p + (unsigned)__builtin_ctzll(w);
    }
    return 0;
}

/* One item of a port list, "80" or "1000-2000", into map. */
static int port_item(rs_scan *scan, const char *spec, const char *s, size_t len, uint64_t *map)
{
    while (len && (*s == ' ' || *s == '\t'))
        s++, len--;
    while (len && (s[len - 1] == ' ' || s[len - 1] == '\t'))
        len--;
    if (!len)
        return rs__msg_set(&scan->msg, RS_EINVAL, "invalid ports '%s': an item is empty", spec);
    const char *dash = memchr(s, '-', len);
    long lo = number(s, dash ? (size_t)(dash - s) : len);
    long hi = dash ? number(dash + 1, len - (size_t)(dash - s) - 1) : lo;
    if (lo < 0 || hi < 0)
        return rs__msg_set(&scan->msg, RS_EINVAL,
                           "invalid ports '%s': '%.*s' is not a port or a range of ports", spec,
                           (int)len, s);
    if (lo < 1 || lo > 65535 || hi < 1 || hi > 65535)
        return rs__msg_set(&scan->msg, RS_EINVAL,
                           "invalid ports '%s': port %ld is out of range (1-65535)", spec,
                           lo < 1 || lo > 65535 ? lo : hi);
    if (hi < lo)
        return rs__msg_set(&scan->msg, RS_EINVAL,
                           "invalid ports '%s': the range %ld-%ld is reversed", spec, lo, hi);
    for (long p = lo; p <= hi; p++)
        set_port(map, (unsigned)p);
    return 0;
}

/* ---- targets ------------------------------------------------------------------------------ */

/* The IPv4 address text s[0..len), in host byte order. */
static bool parse_v4(const char *s, size_t len, uint32_t *out)
{
    char buf[INET_ADDRSTRLEN];
    struct in_addr a;
    if (len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    if (inet_pton(AF_INET, buf, &a) != 1)
        return false;
    *out = ntohl(a.s_addr);
    return true;
}

/* The IPv6 address text s[0..len). */
static bool parse_v6(const char *s, size_t len, uint8_t out[16])
{
    char buf[INET6_ADDRSTRLEN];
    if (len >= sizeof buf)
        return false;
    memcpy(buf, s, len);
    buf[len] = '\0';
    return inet_pton(AF_INET6, buf, out) == 1;
}

/* A DNS name: labels of letters, digits, '-' and '_' of 1-63 bytes, 253 bytes in all, with
 * an optional final dot. */
static bool valid_name(const char *s)
{
    size_t len = strlen(s), label = 0;
    if (len == 0 || len > 254 || (len == 254 && s[253] != '.'))
        return false;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '.') {
            if (label == 0)
                return false;
            label = 0;
        } else if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                   c == '-' || c == '_') {
            if (++label > 63)
                return false;
        } else {
            return false;
        }
    }
    return true;
}

/* "addr/bits": the whole block, network and broadcast addresses included (as nmap does). */
static const char *parse_cidr(const char *spec, const char *slash, target *t)
{
    size_t alen = (size_t)(slash - spec);
    const char *p = slash + 1;
    long bits = number(p, strlen(p));
    if (memchr(spec, ':', alen)) {
        if (!parse_v6(spec, alen, t->v6))
            return "not an IPv6 address before '/'";
        if (bits < 0 || bits > 128)
            return "the prefix length must be 0-128";
        for (int i = 0; i < 16; i++) {
            long keep = bits - 8 * i; /* bits of this byte inside the prefix */
            if (keep <= 0)
                t->v6[i] = 0;
            else if (keep < 8)
                t->v6[i] &= (uint8_t)(0xff << (8 - keep));
        }
        t->family = AF_INET6;
        t->bits = (int)bits;
        t->count = 128 - bits >= 64 ? UINT64_MAX : UINT64_C(1) << (128 - bits);
        return NULL;
    }
    if (!parse_v4(spec, alen, &t->v4))
        return "not an IPv4 address before '/'";
    if (bits < 0 || bits > 32)
        return "the prefix length must be 0-32";
    t->v4 &= bits ? UINT32_MAX << (32 - bits) : 0;
    t->family = AF_INET;
    t->count = UINT64_C(1) << (32 - bits);
    return NULL;
}

/* "10.0.0.1-20" (the last byte) or "10.0.0.1-10.0.1.255". */
static const char *parse_range(const char *spec, const char *dash, target *t)
{
    uint32_t lo, hi;
    if (!parse_v4(spec, (size_t)(dash - spec), &lo))
        return "not an IPv4 address before '-'";
    const char *r = dash + 1;
    if (strchr(r, '.')) {
        if (!parse_v4(r, strlen(r), &hi))
            return "not an IPv4 address after '-'";
    } else {
        long last = number(r, strlen(r));
        if (last < 0 || last > 255)
            return "a range ends in a number 0-255 or an IPv4 address";
        hi = (lo & 0xffffff00u) | (uint32_t)last;
    }
    if (hi < lo)
        return "the range is reversed";
    t->family = AF_INET;
    t->v4 = lo;
    t->count = (uint64_t)(hi - lo) + 1;
    return NULL;
}

/* Parses one target spec into t. Returns 0; RS_EINVAL with *why; or RS_ENOMEM. */
static int parse_target(const char *spec, target *t, const char **why)
{
    memset(t, 0, sizeof *t);
    const char *slash = strchr(spec, '/');
    *why = NULL;
    if (!*spec)
        *why = "empty";
    else if (slash)
        *why = parse_cidr(spec, slash, t);
    else if (strchr(spec, ':')) {
        if (parse_v6(spec, strlen(spec), t->v6)) {
            t->family = AF_INET6;
            t->count = 1;
        } else {
            *why = "not an IPv6 address";
        }
    } else if (spec[strspn(spec, "0123456789.-")] == '\0') {
        /* Digits, dots and dashes only: meant as an address or a range, never as a name. */
        const char *dash = strchr(spec, '-');
        if (dash) {
            *why = parse_range(spec, dash, t);
        } else if (parse_v4(spec, strlen(spec), &t->v4)) {
            t->family = AF_INET;
            t->count = 1;
        } else {
            *why = "not an IPv4 address";
        }
    } else if (!valid_name(spec)) {
        *why = "not a host name, address, CIDR block or range";
    } else {
        t->name = rs__strdup(spec);
        if (!t->name)
            return RS_ENOMEM;
        t->family = AF_UNSPEC;
        t->count = 1;
    }
    return *why ? RS_EINVAL : 0;
}

/* Appends n parsed targets (taking their names) to the scan. RS_ELIMIT past TARGETS_MAX,
 * RS_ENOMEM; either way nothing is added, and the message is set. */
static int push_targets(rs_scan *scan, target *ts, size_t n)
{
    if (n > TARGETS_MAX - scan->ntargets)
        return rs__msg_set(&scan->msg, RS_ELIMIT, "a scan takes at most %" PRIu32 " targets",
                           TARGETS_MAX);
    if (!n)
        return 0;
    if (scan->ntargets + n > scan->cap) {
        size_t cap = scan->cap ? scan->cap : 8;
        while (cap < scan->ntargets + n)
            cap *= 2;
        target *grown = rs__realloc(scan->targets, cap * sizeof *grown);
        if (!grown)
            return rs__msg_set(&scan->msg, RS_ENOMEM, "out of memory");
        scan->targets = grown;
        scan->cap = cap;
    }
    memcpy(scan->targets + scan->ntargets, ts, n * sizeof *ts);
    scan->ntargets += n;
    return 0;
}

/* The reason a name did not resolve, as results report it. */
static const char *resolve_error(int rc)
{
    return rc == EAI_NONAME || rc == EAI_NODATA ? "unknown host" : gai_strerror(rc);
}

/* Resolves every name target; the first address the resolver returns is the one probed. */
static void resolve_targets(rs_scan *scan)
{
    const struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    for (size_t i = 0; i < scan->ntargets && !atomic_load(&scan->stop); i++) {
        target *t = &scan->targets[i];
        if (!t->name)
            continue;
        struct addrinfo *res, *ai;
        int rc = getaddrinfo(t->name, NULL, &hints, &res);
        t->family = AF_UNSPEC;
        t->error = rc ? resolve_error(rc) : "unknown host";
        if (rc)
            continue;
        for (ai = res; ai; ai = ai->ai_next) {
            if ((ai->ai_family == AF_INET || ai->ai_family == AF_INET6) &&
                ai->ai_addrlen <= sizeof t->addr) {
                memset(&t->addr, 0, sizeof t->addr);
                memcpy(&t->addr, ai->ai_addr, ai->ai_addrlen);
                t->family = ai->ai_family;
                t->error = NULL;
                break;
            }
        }
        freeaddrinfo(res);
    }
}

/* The address number `offset` of t, with port. */
static void address_at(const target *t, uint64_t offset, unsigned port, rs__sockaddr *a)
{
    if (t->name) {
        *a = t->addr;
    } else {
        memset(a, 0, sizeof *a);
        a->sa.sa_family = (sa_family_t)t->family;
    }
    if (t->family == AF_INET) {
        if (!t->name)
            a->in.sin_addr.s_addr = htonl(t->v4 + (uint32_t)offset);
        a->in.sin_port = htons((uint16_t)port);
        return;
    }
    if (!t->name) {
        uint8_t *b = a->in6.sin6_addr.s6_addr;
        memcpy(b, t->v6, 16);
        for (int i = 15; i >= 0 && offset; i--) {
            unsigned sum = b[i] + (unsigned)(offset & 0xff);
            b[i] = (uint8_t)sum;
            offset = (offset >> 8) + (sum >> 8);
        }
    }
    a->in6.sin6_port = htons((uint16_t)port);
}

/* The first address of an address target, as a number. */
static rs__u128 target_first(const target *t)
{
    if (t->family == AF_INET)
        return t->v4;
    rs__u128 a = 0;
    for (int i = 0; i < 16; i++)
        a = a << 8 | t->v6[i];
    return a;
}

/* The address of a socket address, as a number. */
static rs__u128 sockaddr_number(const rs__sockaddr *a)
{
    if (a->sa.sa_family == AF_INET)
        return ntohl(a->in.sin_addr.s_addr);
    rs__u128 n = 0;
    for (int i = 0; i < 16; i++)
        n = n << 8 | a->in6.sin6_addr.s6_addr[i];
    return n;
}

/* Whether a name target is left out as a whole: its name is excluded, or the address it
 * resolved to. */
static bool name_excluded(const rs_scan *scan, const target *t)
{
    if (rs__excl_has_name(&scan->excl, t->name))
        return true;
    return t->family != AF_UNSPEC &&
           rs__excl_find(&scan->excl, t->family, sockaddr_number(&t->addr)) != NULL;
}

/* For an address target at offset (the start of an address, before its first port): the
 * offset of the first address from there on that is not excluded (t->count when none is). */
static uint64_t skip_excluded(const rs_scan *scan, const target *t, uint64_t offset)
{
    rs__u128 first = target_first(t);
    const rs__span *s;
    while (offset < t->count &&
           (s = rs__excl_find(&scan->excl, t->family, first + offset)) != NULL) {
        rs__u128 next = s->hi - first + 1; /* 0 when the span reaches the end of the space */
        if (next == 0 || next >= t->count)
            return t->count;
        offset = (uint64_t)next;
    }
    return offset;
}

/* ---- the engine's callbacks --------------------------------------------------------------- */

/* The feed: the next n probes in target, address, port order. */
static size_t next_probes(void *ctx, rs__probe *out, size_t n)
{
    rs_scan *scan = ctx;
    cursor *c = &scan->cur;
    size_t k = 0;
    while (k < n && c->target < scan->ntargets) {
        const target *t = &scan->targets[c->target];
        if (t->name && c->offset == 0 && c->port == 0 && name_excluded(scan, t)) {
            *c = (cursor){.target = c->target + 1};
            continue;
        }
        if (!t->name && c->port == 0 && scan->excl.nspans)
            c->offset = skip_excluded(scan, t, c->offset);
        if (t->name && t->family == AF_UNSPEC) {
            /* A name that did not resolve: one error result for the whole target. */
            out[k++] = (rs__probe){
                .addr.sa.sa_family = AF_UNSPEC, .target = (uint32_t)c->target, .error = t->error};
            *c = (cursor){.target = c->target + 1};
            continue;
        }
        if (c->offset >= t->count) {
            *c = (cursor){.target = c->target + 1};
            continue;
        }
        unsigned p = next_port(scan->ports, c->port);
        if (!p) {
            c->offset++;
            c->port = 0;
            continue;
        }
        if (!c->port)
            scan->hosts++;
        c->port = p;
        out[k] = (rs__probe){.target = (uint32_t)c->target};
        address_at(t, c->offset, p, &out[k].addr);
        k++;
    }
    return k;
}

/* Turns an outcome into the public result, counts it and hands it to on_result. */
static void deliver(void *ctx, const rs__outcome *o)
{
    rs_scan *scan = ctx;
    const target *t = &scan->targets[o->probe.target];
    char addr[INET6_ADDRSTRLEN] = "";
    char why[128];
    int port = 0;
    const rs__sockaddr *a = &o->probe.addr;
    if (a->sa.sa_family == AF_INET) {
        inet_ntop(AF_INET, &a->in.sin_addr, addr, sizeof addr);
        port = ntohs(a->in.sin_port);
    } else if (a->sa.sa_family == AF_INET6) {
        inet_ntop(AF_INET6, &a->in6.sin6_addr, addr, sizeof addr);
        port = ntohs(a->in6.sin6_port);
    }
    rs_scan_result r = {.host = t->name ? t->name : addr,
                        .address = addr,
                        .port = port,
                        .state = o->state,
                        .reason = o->reason ? o->reason : strerror_r(o->err, why, sizeof why),
                        .rtt = o->rtt,
                        .attempts = o->attempts};
    scan->sum.probes++;
    switch (o->state) {
    case RS_PORT_OPEN:
        scan->sum.open++;
        break;
    case RS_PORT_CLOSED:
        scan->sum.closed++;
        break;
    case RS_PORT_FILTERED:
        scan->sum.filtered++;
        break;
    default:
        scan->sum.errors++;
        break;
    }
    if (scan->opts.on_result)
        scan->opts.on_result(&r, scan->opts.userdata);
}

/* The engine's due(): asks the interruption set with rs__scan_set_interrupt. */
static int scan_due(void *ctx)
{
    rs_scan *scan = ctx;
    return scan->due(scan->due_ctx);
}

/* ---- sizing ------------------------------------------------------------------------------- */

/* The window: max_inflight, or what RLIMIT_NOFILE allows once its soft limit is raised to the
 * hard limit (less a reserve for the application), up to WINDOW_MAX; never more than there
 * are probes. An explicit max_inflight is kept even above the limit: the engine's
 * back-pressure copes with running out of descriptors. */
static unsigned window_for(const rs_scan *scan, uint64_t probes)
{
    uint64_t want = scan->opts.max_inflight ? scan->opts.max_inflight : WINDOW_MAX;
    if (want > probes)
        want = probes ? probes : 1;
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0) {
        if (rl.rlim_cur < rl.rlim_max && rl.rlim_cur < want + FD_RESERVE) {
            struct rlimit raised = {.rlim_cur = rl.rlim_max, .rlim_max = rl.rlim_max};
            if (setrlimit(RLIMIT_NOFILE, &raised) == 0)
                rl.rlim_cur = rl.rlim_max;
        }
        rlim_t usable = rl.rlim_cur > 2 * FD_RESERVE ? rl.rlim_cur - FD_RESERVE : rl.rlim_cur / 2;
        if (!scan->opts.max_inflight && want > usable)
            want = usable ? usable : 1;
    }
    return (unsigned)want;
}

/* One event loop per CPU for a scan big enough to keep them busy (see scan_epoll.c). */
static unsigned loops_for(uint64_t probes, unsigned window)
{
    if (probes < SPLIT_MIN)
        return 1;
    long cpus = sysconf(_SC_NPROCESSORS_ONLN);
    unsigned n = cpus < 1 ? 1 : cpus > (long)LOOPS_MAX ? LOOPS_MAX : (unsigned)cpus;
    return n > window ? window : n;
}

/* ---- the public API ----------------------------------------------------------------------- */

int rs_scan_create(const rs_scan_opts *opts, rs_scan **out)
{
    if (!out)
        return RS_EMISUSE;
    *out = NULL;
    rs_scan_opts o = opts ? *opts : (rs_scan_opts){0};
    if (!(o.timeout >= 0) || o.tries < 0)
        return RS_EINVAL;
    rs_scan *scan = rs__calloc(1, sizeof *scan);
    if (!scan)
        return RS_ENOMEM;
    scan->stop_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (scan->stop_fd < 0) {
        rs__free(scan);
        return RS_ESYSTEM;
    }
    scan->opts = o;
    atomic_init(&scan->running, 0);
    atomic_init(&scan->stop, 0);
    for (size_t i = 0; i < RS__ARRAY_SIZE(default_ports); i++)
        set_port(scan->ports, default_ports[i]);
    scan->nports = RS__ARRAY_SIZE(default_ports);
    scan->default_ports = true;
    *out = scan;
    return 0;
}

int rs_scan_destroy(rs_scan *scan)
{
    if (!scan)
        return 0;
    if (atomic_load(&scan->running))
        return RS_EBUSY;
    for (size_t i = 0; i < scan->ntargets; i++)
        rs__free(scan->targets[i].name);
    rs__free(scan->targets);
    rs__excl_free(&scan->excl);
    close(scan->stop_fd);
    rs__msg_free(&scan->msg);
    rs__free(scan);
    return 0;
}

/* What rs_scan_add_target and rs_scan_add_exclude share: the checks, and spec parsed into *t.
 * `what` names the spec in messages ("target", "exclusion"). */
static int parse_spec(rs_scan *scan, const char *spec, const char *what, target *t)
{
    if (!scan)
        return RS_EMISUSE;
    if (!spec)
        return rs__msg_set(&scan->msg, RS_EINVAL, "no %s given", what);
    if (atomic_load(&scan->running))
        return RS_EBUSY;
    const char *why;
    int rc = parse_target(spec, t, &why);
    if (rc == RS_EINVAL)
        return rs__msg_set(&scan->msg, rc, "invalid %s '%s': %s", what, spec, why);
    if (rc)
        return rs__msg_set(&scan->msg, rc, "out of memory");
    return 0;
}

int rs_scan_add_target(rs_scan *scan, const char *spec)
{
    target t;
    int rc = parse_spec(scan, spec, "target", &t);
    if (!rc && (rc = push_targets(scan, &t, 1)))
        rs__free(t.name);
    return rc;
}

/* Reading a targets file: the file, its line in progress, and the targets parsed so far
 * (added to the scan only once the whole file is good). */
typedef struct targets_reader {
    rs_scan *scan;
    const char *path;
    char line[LINE_MAX_BYTES + 1];
    size_t len;
    bool too_long;
    unsigned long long lineno;
    target *got;
    size_t n, cap;
} targets_reader;

/* Parses the line in r (without its newline): blank lines and '#' comments are skipped. */
static int targets_line(targets_reader *r)
{
    rs_scan *scan = r->scan;
    r->lineno++;
    if (r->too_long)
        return rs__msg_set(&scan->msg, RS_EINVAL, "%s:%llu: the line is longer than %d bytes",
                           r->path, r->lineno, LINE_MAX_BYTES);
    r->line[r->len] = '\0';
    char *hash = strchr(r->line, '#');
    if (hash)
        *hash = '\0';
    char *s = r->line + strspn(r->line, " \t\r");
    size_t len = strlen(s);
    while (len && strchr(" \t\r", s[len - 1]))
        s[--len] = '\0';
    if (!len)
        return 0;
    if (r->n == r->cap) {
        if (scan->ntargets + r->n >= TARGETS_MAX)
            return rs__msg_set(&scan->msg, RS_ELIMIT,
                               "%s:%llu: a scan takes at most %" PRIu32 " targets", r->path,
                               r->lineno, TARGETS_MAX);
        size_t cap = r->cap ? 2 * r->cap : 16;
        target *grown = rs__realloc(r->got, cap * sizeof *grown);
        if (!grown)
            return rs__msg_set(&scan->msg, RS_ENOMEM, "out of memory");
        r->got = grown;
        r->cap = cap;
    }
    const char *why;
    int rc = parse_target(s, &r->got[r->n], &why);
    if (rc == RS_EINVAL)
        return rs__msg_set(&scan->msg, rc, "%s:%llu: invalid target '%s': %s", r->path, r->lineno,
                           s, why);
    if (rc)
        return rs__msg_set(&scan->msg, rc, "out of memory");
    r->n++;
    return 0;
}

/* Takes the bytes of one read: whole lines are parsed, the last partial one is kept. A NUL
 * byte is refused (text after it would silently not count), and so is a line too long to be
 * a target (reading on, in search of its end, could last forever: /dev/zero). */
static int targets_bytes(targets_reader *r, const char *p, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (p[i] == '\n') {
            int rc = targets_line(r);
            if (rc)
                return rc;
            r->len = 0;
        } else if (p[i] == '\0') {
            return rs__msg_set(&r->scan->msg, RS_EINVAL, "%s:%llu: the line holds a NUL byte",
                               r->path, r->lineno + 1);
        } else if (r->len == LINE_MAX_BYTES) {
            r->too_long = true;
            return targets_line(r);
        } else {
            r->line[r->len++] = p[i];
        }
    }
    return 0;
}

/* Reads the targets of the file at path (what the file is for, "targets" or "excludes", names
 * it in messages). On success *got gets the parsed targets (free their names and the array),
 * *n how many; on failure nothing is left to free and the message is set. */
static int read_targets(rs_scan *scan, const char *path, const char *what, target **out, size_t *n)
{
    *out = NULL;
    *n = 0;
    if (!scan)
        return RS_EMISUSE;
    if (!path)
        return rs__msg_set(&scan->msg, RS_EINVAL, "no %s file given", what);
    if (atomic_load(&scan->running))
        return RS_EBUSY;
    /* Non-blocking, and every wait a poll that also watches the stop descriptor: a FIFO
     * without a writer yet, or one that never ends, must not keep a stop from ending the
     * reading. */
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return rs__msg_set(&scan->msg, errno == ENOENT ? RS_ENOENT : RS_EIO,
                           "cannot open %s file '%s': %s", what, path, strerror(errno));
    targets_reader *r = rs__calloc(1, sizeof *r);
    if (!r) {
        close(fd);
        return rs__msg_set(&scan->msg, RS_ENOMEM, "out of memory");
    }
    r->scan = scan;
    r->path = path;
    int rc = 0;
    for (;;) {
        /* Poll before every read: a FIFO opened without a writer reads as its end until one
         * comes, but does not poll readable before. */
        struct pollfd p[2] = {{.fd = fd, .events = POLLIN},
                              {.fd = scan->stop_fd, .events = POLLIN}};
        if (poll(p, 2, -1) < 0) {
            if (errno == EINTR)
                continue;
            rc = rs__msg_set(&scan->msg, RS_ESYSTEM, "poll: %s", strerror(errno));
            break;
        }
        if (p[1].revents) {
            rc = rs__msg_set(&scan->msg, RS_ESTOPPED, "stopped while reading %s file '%s'", what,
                             path);
            break;
        }
        char buf[4096];
        ssize_t got = read(fd, buf, sizeof buf);
        if (got > 0) {
            if ((rc = targets_bytes(r, buf, (size_t)got)))
                break;
        } else if (got == 0) {
            if (r->len)
                rc = targets_line(r); /* the last line, without a newline */
            break;
        } else if (errno != EINTR && errno != EAGAIN) {
            rc = rs__msg_set(&scan->msg, RS_EIO, "cannot read %s file '%s': %s", what, path,
                             strerror(errno));
            break;
        }
    }
    close(fd);
    if (rc) {
        for (size_t i = 0; i < r->n; i++)
            rs__free(r->got[i].name);
        rs__free(r->got);
    } else {
        *out = r->got;
        *n = r->n;
    }
    rs__free(r);
    return rc;
}

int rs_scan_add_targets_file(rs_scan *scan, const char *path)
{
    target *got;
    size_t n;
    int rc = read_targets(scan, path, "targets", &got, &n);
    if (!rc && (rc = push_targets(scan, got, n))) {
        for (size_t i = 0; i < n; i++)
            rs__free(got[i].name);
    }
    rs__free(got);
    return rc;
}

/* Adds the parsed targets ts[0..n) to the exclusions: address targets as spans, names as
 * names and as every address they resolve to now. Frees their names. */
static int exclude_targets(rs_scan *scan, target *ts, size_t n)
{
    int rc = 0;
    for (size_t i = 0; i < n; i++) {
        target *t = &ts[i];
        if (!rc && t->name) {
            rc = rs__excl_add_name(&scan->excl, t->name);
            const struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
            struct addrinfo *res;
            if (!rc && getaddrinfo(t->name, NULL, &hints, &res) == 0) {
                for (struct addrinfo *ai = res; ai && !rc; ai = ai->ai_next) {
                    if (ai->ai_family != AF_INET && ai->ai_family != AF_INET6)
                        continue;
                    rs__sockaddr a = {0};
                    memcpy(&a, ai->ai_addr, ai->ai_addrlen < sizeof a ? ai->ai_addrlen : sizeof a);
                    rs__u128 x = sockaddr_number(&a);
                    rs__span span = {.family = ai->ai_family, .lo = x, .hi = x};
                    rc = rs__excl_add_spans(&scan->excl, &span, 1);
                }
                freeaddrinfo(res);
            }
        } else if (!rc) {
            rs__u128 first = target_first(t);
            rs__span span = {.family = t->family, .lo = first, .hi = first + (t->count - 1)};
            if (t->family == AF_INET6 && t->count == UINT64_MAX) {
                /* A block of 2^64 addresses or more, whose count saturated. */
                span.hi =
                    t->bits == 0 ? ~(rs__u128)0 : first | (((rs__u128)1 << (128 - t->bits)) - 1);
            }
            rc = rs__excl_add_spans(&scan->excl, &span, 1);
        }
        rs__free(t->name);
        t->name = NULL;
    }
    return rc ? rs__msg_set(&scan->msg, rc, "out of memory") : 0;
}

int rs_scan_add_exclude(rs_scan *scan, const char *spec)
{
    target t;
    int rc = parse_spec(scan, spec, "exclusion", &t);
    return rc ? rc : exclude_targets(scan, &t, 1);
}

int rs_scan_add_excludes_file(rs_scan *scan, const char *path)
{
    target *got;
    size_t n;
    int rc = read_targets(scan, path, "exclusions", &got, &n);
    if (!rc)
        rc = exclude_targets(scan, got, n);
    rs__free(got);
    return rc;
}

int rs_scan_add_ports(rs_scan *scan, const char *spec)
{
    if (!scan)
        return RS_EMISUSE;
    if (!spec)
        return rs__msg_set(&scan->msg, RS_EINVAL, "no ports given");
    if (atomic_load(&scan->running))
        return RS_EBUSY;
    if (!*spec)
        return rs__msg_set(&scan->msg, RS_EINVAL, "invalid ports '': the list is empty");
    uint64_t map[65536 / 64] = {0};
    for (const char *s = spec;;) {
        const char *comma = strchr(s, ',');
        size_t len = comma ? (size_t)(comma - s) : strlen(s);
        int rc = port_item(scan, spec, s, len, map);
        if (rc)
            return rc;
        if (!comma)
            break;
        s = comma + 1;
    }
    if (scan->default_ports) {
        memset(scan->ports, 0, sizeof scan->ports);
        scan->default_ports = false;
    }
    for (size_t i = 0; i < 65536 / 64; i++)
        scan->ports[i] |= map[i];
    scan->nports = count_ports(scan->ports);
    return 0;
}

uint64_t rs_scan_probe_count(const rs_scan *scan)
{
    uint64_t total = 0;
    for (size_t i = 0; scan && i < scan->ntargets; i++) {
        const target *t = &scan->targets[i];
        uint64_t count = t->count;
        if (t->name && rs__excl_has_name(&scan->excl, t->name))
            count = 0;
        else if (!t->name)
            count -= rs__excl_overlap(&scan->excl, t->family, target_first(t), t->count);
        total = sat_add(total, sat_mul(count, scan->nports));
    }
    return total;
}

/* The length of the longest address text of t's addresses. Ranges of more than WIDTH_WALK
 * addresses are not walked, nor any once *budget addresses were: they count as the longest
 * text of their family. */
#define WIDTH_WALK 65536u
#define WIDTH_BUDGET (UINT64_C(1) << 20)
static size_t target_address_width(const target *t, uint64_t *budget)
{
    char text[INET6_ADDRSTRLEN];
    size_t widest = 0;
    if (t->count > WIDTH_WALK || t->count > *budget)
        return t->family == AF_INET ? INET_ADDRSTRLEN - 1 : INET6_ADDRSTRLEN - 1;
    *budget -= t->count;
    for (uint64_t i = 0; i < t->count; i++) {
        rs__sockaddr a;
        address_at(t, i, 0, &a);
        const void *bytes =
            t->family == AF_INET ? (const void *)&a.in.sin_addr : (const void *)&a.in6.sin6_addr;
        if (inet_ntop(t->family, bytes, text, sizeof text) && strlen(text) > widest)
            widest = strlen(text);
    }
    return widest;
}

/* The length of the address text of a resolved name. */
static size_t name_address_width(const target *t)
{
    char text[INET6_ADDRSTRLEN];
    const void *bytes = t->family == AF_INET ? (const void *)&t->addr.in.sin_addr
                                             : (const void *)&t->addr.in6.sin6_addr;
    return inet_ntop(t->family, bytes, text, sizeof text) ? strlen(text) : 0;
}

void rs_scan_text_widths(const rs_scan *scan, size_t *host, size_t *address)
{
    size_t h = 0, a = 0;
    uint64_t budget = WIDTH_BUDGET; /* addresses walked in all: a bound on the time taken */
    for (size_t i = 0; scan && i < scan->ntargets; i++) {
        const target *t = &scan->targets[i];
        size_t w;
        if (!t->name)
            w = target_address_width(t, &budget);
        else if (t->family != AF_UNSPEC)
            w = name_address_width(t);
        else
            w = t->error ? 0 : INET6_ADDRSTRLEN - 1; /* did not resolve, or not resolved yet */
        if (w > a)
            a = w;
        size_t hw = t->name ? strlen(t->name) : w;
        if (hw > h)
            h = hw;
    }
    if (host)
        *host = h;
    if (address)
        *address = a;
}

unsigned rs_scan_next_port(const rs_scan *scan, unsigned after)
{
    return scan && after < 65535 ? next_port(scan->ports, after) : 0;
}

/* The run proper, once the scan is known to be runnable: resolve, size, hand to the engine. */
static int run(rs_scan *scan, uint64_t probes)
{
    resolve_targets(scan);
    scan->cur = (cursor){0};
    unsigned window = window_for(scan, probes);
    rs__engine cfg = {.timeout_ns =
                          rs__seconds_to_ns(scan->opts.timeout ? scan->opts.timeout : 1.0),
                      .tries = scan->opts.tries ? scan->opts.tries : 2,
                      .window = window,
                      .loops = loops_for(probes, window),
                      .stop_fd = scan->stop_fd,
                      .stop = &scan->stop,
                      .next = next_probes,
                      .deliver = deliver,
                      .signo = scan->due ? scan->signo : 0,
                      .due = scan->due ? scan_due : NULL,
                      .ctx = scan};
    int rc = rs__engine_run(&cfg, &scan->msg);
    if (rc == RS_ESTOPPED)
        rs__msg_set(&scan->msg, rc, "the scan was stopped");
    return rc;
}

int rs_scan_run(rs_scan *scan, rs_scan_summary *summary)
{
    if (!scan)
        return RS_EMISUSE;
    int idle = 0;
    if (!atomic_compare_exchange_strong(&scan->running, &idle, 1))
        return RS_EMISUSE;
    int64_t t0 = rs__now_ns();
    rs__msg_clear(&scan->msg);
    memset(&scan->sum, 0, sizeof scan->sum);
    scan->hosts = 0;
    uint64_t probes = rs_scan_probe_count(scan);
    int rc;
    if (!scan->ntargets)
        rc = rs__msg_set(&scan->msg, RS_EINVAL, "no targets to scan");
    else if (probes > MAX_PROBES && !scan->opts.force)
        rc = rs__msg_set(&scan->msg, RS_ELIMIT,
                         "the scan would make %s%" PRIu64 " probes, more than the limit of %" PRIu64
                         "; narrow the targets or ports, or force it (--force)",
                         probes == UINT64_MAX ? "at least " : "", probes, MAX_PROBES);
    else
        rc = run(scan, probes);
    scan->sum.hosts = scan->hosts;
    scan->sum.elapsed = (double)(rs__now_ns() - t0) * 1e-9;
    if (summary)
        *summary = scan->sum;
    /* A stop is spent by the run it ended (or found waiting when it began). */
    eventfd_t value;
    eventfd_read(scan->stop_fd, &value);
    atomic_store(&scan->stop, 0);
    atomic_store(&scan->running, 0);
    return rc;
}

int rs_scan_stop(rs_scan *scan)
{
    if (!scan)
        return RS_EMISUSE;
    atomic_store(&scan->stop, 1);
    eventfd_write(scan->stop_fd, 1);
    return 0;
}

const char *rs_scan_errmsg(const rs_scan *scan)
{
    return scan ? rs__msg_get(&scan->msg) : "";
}

const char *rs_port_state_name(rs_port_state s)
{
    switch (s) {
    case RS_PORT_OPEN:
        return "open";
    case RS_PORT_CLOSED:
        return "closed";
    case RS_PORT_FILTERED:
        return "filtered";
    case RS_PORT_ERROR:
        return "error";
    }
    return "unknown";
}

/* ---- for the Lua bindings ------------------------------------------------------------------ */

void rs__scan_set_interrupt(rs_scan *scan, int signo, int (*due)(void *ctx), void *ctx)
{
    scan->signo = signo;
    scan->due = signo ? due : NULL;
    scan->due_ctx = ctx;
}

int rs__scan_resolve(const char *name, rs_value **out, const char **why)
{
    const struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_protocol = IPPROTO_TCP};
    struct addrinfo *res;
    *out = NULL;
    int rc = getaddrinfo(name, NULL, &hints, &res);
    if (rc) {
        *why = resolve_error(rc);
        return RS_ENOENT;
    }
    rs_value *list = rs_value_array();
    for (struct addrinfo *ai = res; ai && list; ai = ai->ai_next) {
        char text[INET6_ADDRSTRLEN];
        const void *bytes = ai->ai_family == AF_INET
                                ? (const void *)&((struct sockaddr_in *)ai->ai_addr)->sin_addr
                                : (const void *)&((struct sockaddr_in6 *)ai->ai_addr)->sin6_addr;
        if ((ai->ai_family != AF_INET && ai->ai_family != AF_INET6) ||
            !inet_ntop(ai->ai_family, bytes, text, sizeof text))
            continue;
        bool seen = false;
        for (size_t i = 0; i < rs_array_len(list) && !seen; i++)
            seen = strcmp(rs_value_get_string(rs_array_get(list, i), NULL), text) == 0;
        if (!seen && rs_array_push(list, rs_value_string(text))) {
            rs_value_destroy(list);
            list = NULL;
        }
    }
    freeaddrinfo(res);
    if (!list)
        return RS_ENOMEM;
    if (!rs_array_len(list)) {
        rs_value_destroy(list);
        *why = "unknown host";
        return RS_ENOENT;
    }
    *out = list;
    return 0;
}
