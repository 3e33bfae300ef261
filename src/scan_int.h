/*
 * scan_int.h -- the network scanner's internal interface: what scan.c (targets, ports, the
 * public rs_scan API) hands the epoll engine in scan_epoll.c, and what the `net` built-ins of
 * lualib_net.c need beyond the public API.
 *
 * scan.c owns the targets and the order of the probes; it feeds the engine a few probes at a
 * time (so memory never depends on how many probes there are) and turns the engine's outcomes
 * into rs_scan_result records on the thread that called rs_scan_run. The engine owns sockets,
 * timeouts, retries and threads.
 */
#ifndef RS_SCAN_INT_H
#define RS_SCAN_INT_H

#include "common.h"

#include <netinet/in.h>
#include <stdatomic.h>
#include <sys/socket.h>

/* An IPv4 or IPv6 socket address, port included. */
typedef union rs__sockaddr {
    struct sockaddr sa;
    struct sockaddr_in in;
    struct sockaddr_in6 in6;
} rs__sockaddr;

/* One probe. A target that failed as a whole (a name that did not resolve) comes through the
 * feed as a probe of family AF_UNSPEC with `error` set; the engine reports it at once. */
typedef struct rs__probe {
    rs__sockaddr addr;
    uint32_t target;   /* index of the target in the scan, for the result's host name */
    const char *error; /* static text, or NULL */
} rs__probe;

/* A decided probe. */
typedef struct rs__outcome {
    rs__probe probe;
    rs_port_state state;
    const char *reason; /* static text, or NULL for an error given by err */
    int err;            /* the errno of an error without a static reason */
    int attempts;
    double rtt; /* seconds from the deciding attempt's start to its answer, or -1 */
} rs__outcome;

/* What the engine runs. The callbacks get ctx. */
typedef struct rs__engine {
    int64_t timeout_ns; /* per attempt */
    int tries;          /* attempts for a probe that gets no answer */
    unsigned window;    /* probes in flight at once, over every event loop */
    unsigned loops;     /* event loops: the calling thread's and loops - 1 threads */
    int stop_fd;        /* an eventfd that polls readable once a stop was requested */
    atomic_int *stop;   /* nonzero once a stop was requested; the engine sets it too */
    /* Fills out[0..n) with the next probes and returns how many, 0 when there are no more.
     * Calls are serialized but may come from any of the engine's threads. */
    size_t (*next)(void *ctx, rs__probe *out, size_t n);
    /* Takes a decided probe (the outcome is borrowed). Called on the thread running
     * rs__engine_run only, never concurrently. */
    void (*deliver)(void *ctx, const rs__outcome *o);
    /* Optional interruption of the calling thread: while the engine runs, signal `signo` is
     * blocked on that thread except inside its waits, so the signal cuts a wait short (EINTR)
     * and cannot slip in between the check and the wait. due() is asked before every wait;
     * nonzero stops the scan. */
    int signo;
    int (*due)(void *ctx);
    void *ctx;
} rs__engine;

/* Runs the engine on the calling thread (and loops - 1 more) until the feed is exhausted and
 * every probe it gave has been delivered, or until a stop. Returns 0, RS_ESTOPPED (undecided
 * probes are dropped silently; decided ones are all delivered), or RS_ENOMEM / RS_ESYSTEM with
 * the reason in msg, in which case nothing was probed. Blocks. */
int rs__engine_run(const rs__engine *cfg, rs__msg *msg);

/* Lets a stop or timeout of the script running on the calling thread end rs_scan_run: see
 * rs__engine's signo and due (due(ctx) returning nonzero ends the run with RS_ESTOPPED). Set
 * before rs_scan_run, on the thread that will run it; signo 0 removes it. */
void rs__scan_set_interrupt(rs_scan *scan, int signo, int (*due)(void *ctx), void *ctx);

/* ---- exclusions (scan_exclude.c) ---------------------------------------------------------- */

/* An address as a number: IPv4 addresses are their 32-bit value, IPv6 ones their 128 bits. */
typedef unsigned __int128 rs__u128;

/* A block of excluded addresses, both ends included. */
typedef struct rs__span {
    int family; /* AF_INET or AF_INET6 */
    rs__u128 lo, hi;
} rs__span;

/* What a scan leaves out: disjoint spans sorted by family and address, and names (compared
 * without regard to case with the names of targets). Zero-initialised is empty. */
typedef struct rs__excludes {
    rs__span *spans;
    size_t nspans, cap;
    char **names;
    size_t nnames;
} rs__excludes;

void rs__excl_free(rs__excludes *x);
/* Adds spans (copied), keeping the list sorted and merged. RS_ENOMEM leaves it as it was. */
int rs__excl_add_spans(rs__excludes *x, const rs__span *spans, size_t n);
/* Adds a name (copied). RS_ENOMEM. */
int rs__excl_add_name(rs__excludes *x, const char *name);
bool rs__excl_has_name(const rs__excludes *x, const char *name);
/* The span holding address a of family, or NULL. */
const rs__span *rs__excl_find(const rs__excludes *x, int family, rs__u128 a);
/* How many of the count addresses from first on are excluded. */
uint64_t rs__excl_overlap(const rs__excludes *x, int family, rs__u128 first, uint64_t count);

/* Resolves name (a host name or an address) with getaddrinfo. On success *out is a new array
 * of the distinct addresses as text, in the resolver's order. RS_ENOENT with *why (static
 * text: "unknown host", or the resolver's reason) when it does not resolve; RS_ENOMEM. Blocks
 * for as long as the resolver takes. Thread-safe. */
int rs__scan_resolve(const char *name, rs_value **out, const char **why);

#endif
