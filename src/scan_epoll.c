/*
 * scan_epoll.c -- the scanner's engine (Linux): TCP connect probes, non-blocking and
 * multiplexed with epoll, in a sliding window, with a timeout per attempt, retries for probes
 * that get no answer, and the naming of every answer the kernel can give.
 *
 * DESIGN
 * Event loops. The engine runs `loops` event loops: one on the thread that called
 * rs__engine_run (the main loop) and the others on threads of their own. On loopback a connect
 * and its answer cost 10-20 us of system time, nearly all of it on the CPU that called
 * connect(), so one loop cannot reach the kernel's rate; scan.c asks for one loop per CPU when
 * a scan is big enough. Each loop has its own epoll instance, its own slots (its share of the
 * window) and its own timeouts; the loops share only the feed.
 *
 * Slots. Each probe a loop holds sits in a slot on exactly one list: `free`, `pending` (to be
 * launched: new, a retry, or pushed back by back-pressure) or `flight` (connecting, oldest
 * first). Every attempt has the same timeout, so appending to `flight` keeps it ordered by
 * deadline: expiry is O(1) per probe and the epoll wait is bounded by the head's deadline.
 * A loop takes FEED_BATCH probes at a time from the feed, under feed_mu, and launches at most
 * LAUNCH_BATCH before it looks at the answers again, so answers never wait behind a long burst
 * of connects.
 *
 * Outcomes. Only the main thread delivers (results reach rs_scan_fn, and through it Lua, on
 * the thread running the scan). The main loop delivers its own outcomes at once. Every other
 * loop pushes them into a single-producer, single-consumer ring and, once per iteration that
 * pushed, writes the `notify` eventfd, which is in the main loop's epoll set; the main loop
 * drains the rings on every iteration. A loop takes probes from the feed only while its used
 * slots plus its ring's fill stay below the ring's size, so a push always finds room. When the
 * ring is what holds a loop back it sets `starved`, and the main loop, after draining that
 * ring, writes the loop's `kick` eventfd.
 *
 * Back-pressure. EMFILE, ENFILE, ENOBUFS, ENOMEM, EAGAIN, ENOSPC and EADDRNOTAVAIL from
 * socket(), connect() or epoll_ctl() mean that descriptors, buffers or local ports ran out: the
 * probe stays at the head of `pending`, uncounted, and the window shrinks to what is in flight;
 * every decided probe widens it again by one. With nothing in flight the loop backs off (1 ms,
 * doubling up to 64 ms); after PRESSURE_LIMIT_NS without a single launch the probe is reported
 * as an error instead of being retried forever.
 *
 * Stop and shutdown. The stop eventfd is in every loop's epoll set and stays readable, and every
 * iteration reads the stop flag, so every loop ends within one iteration of a stop: it closes
 * its sockets and leaves. A thread leaving decrements `live` and writes `notify`. The main loop
 * ends when the feed is exhausted, its slots are free and `live` is zero (or at a stop); it then
 * joins the threads and drains the rings one last time.
 *
 * Interruption. A script's stop or timeout reaches the main thread as a signal (interrupt.c).
 * While the engine runs, that signal is blocked on the main thread except inside epoll_pwait,
 * which it therefore cuts short (EINTR). due() is asked just before each wait, so a signal sent
 * after that look is pending when the wait begins and ends it at once. The other loops' threads
 * block every signal; the stop reaches them through the stop eventfd.
 */
#include "scan_int.h"

#include "queue.h"
#include "thread.h"

#include <errno.h>
#include <limits.h>
#include <linux/errqueue.h>
#include <netinet/icmp6.h>
#include <netinet/ip_icmp.h>
#include <signal.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

enum {
    FEED_BATCH = 64,    /* probes a loop takes from the feed at once */
    LAUNCH_BATCH = 128, /* connects between two looks at the answers */
    EVENTS = 256,       /* epoll events per wait */
};

#define PRESSURE_LIMIT_NS (5 * 1000000000LL)
#define BACKOFF_MIN_NS 1000000LL
#define BACKOFF_MAX_NS 64000000LL

typedef struct slot {
    rs__qnode node; /* on free, pending or flight */
    rs__probe probe;
    int fd;           /* the connecting socket, while in flight */
    int attempts;     /* connects made */
    int64_t start;    /* ns: the current attempt's start */
    int64_t deadline; /* ns: when the current attempt times out */
} slot;

struct engine;

typedef struct loop {
    struct engine *eng;
    bool main;
    int ep;
    int kick; /* the main loop: the engine's notify; others: their own (room in the ring) */
    slot *slots;
    unsigned size;  /* slots, and ring entries */
    unsigned limit; /* the window: launches stop at `limit` in flight */
    unsigned used;  /* slots not free */
    unsigned inflight;
    rs__qnode free, pending, flight;
    bool drained;    /* the feed has nothing more for this loop */
    int64_t backoff; /* ns, 0 = none */
    int64_t resume;  /* ns: no launch before then */
    int64_t pressed; /* ns: when back-pressure with nothing in flight began, 0 = not */
    /* Outcomes for the main thread (loops other than the main one). */
    rs__outcome *ring;
    atomic_size_t head; /* written by the main thread */
    atomic_size_t tail; /* written by the loop */
    atomic_int starved;
    bool pushed;
    rs__thread thread;
    bool started;
    int fail; /* errno of a failed wait, which ended the scan */
} loop;

typedef struct engine {
    const rs__engine *cfg;
    rs__mutex feed_mu;
    bool fed; /* the feed is exhausted (under feed_mu) */
    int notify;
    atomic_uint live;  /* threads still running their loop */
    sigset_t waitmask; /* the caller's signal mask, in force during the main loop's waits */
    loop *loops;
    unsigned n;
} engine;

/* How a probe was answered. */
typedef struct verdict {
    rs_port_state state;
    const char *reason;
    int err;
} verdict;

/* Markers in epoll_event.data for the two eventfds of a loop's set. */
static char stop_tag, kick_tag;

/* Whether a stop was asked for: rs_scan_stop, an interruption, or a loop that failed. */
static bool stopping(const engine *e)
{
    return atomic_load_explicit(e->cfg->stop, memory_order_acquire) != 0;
}

/* Ends every loop: an interruption, or a loop that cannot go on. */
static void request_stop(engine *e)
{
    atomic_store_explicit(e->cfg->stop, 1, memory_order_release);
    eventfd_write(e->cfg->stop_fd, 1);
}

/* The slot at the head of a (non-empty) list. */
static slot *first(rs__qnode *list)
{
    return RS__QUEUE_DATA(rs__queue_head(list), slot, node);
}

/* Seconds from the start of s's current attempt to now. */
static double since(const slot *s, int64_t now)
{
    return (double)(now - s->start) * 1e-9;
}

/* ---- outcomes ----------------------------------------------------------------------------- */

/* Hands an outcome to the main thread: at once on the main loop, through the ring otherwise. */
static void emit(loop *lp, const rs__outcome *o)
{
    if (lp->main) {
        lp->eng->cfg->deliver(lp->eng->cfg->ctx, o);
        return;
    }
    size_t t = atomic_load_explicit(&lp->tail, memory_order_relaxed);
    lp->ring[t % lp->size] = *o;
    atomic_store_explicit(&lp->tail, t + 1, memory_order_release);
    lp->pushed = true;
}

/* Ends slot s's probe (its socket already closed), frees the slot and reports the outcome. */
static void decide(loop *lp, slot *s, verdict v, double rtt)
{
    rs__outcome o = {.probe = s->probe,
                     .state = v.state,
                     .reason = v.reason,
                     .err = v.err,
                     .attempts = s->attempts,
                     .rtt = rtt};
    rs__queue_remove(&s->node);
    rs__queue_insert_head(&lp->free, &s->node);
    lp->used--;
    if (lp->limit < lp->size)
        lp->limit++;
    emit(lp, &o);
}

/* A verdict with a static reason. */
static verdict answer(rs_port_state state, const char *reason)
{
    return (verdict){.state = state, .reason = reason};
}

/* An error verdict: the probe could not be made, for the reason err. */
static verdict failure(int err)
{
    return (verdict){.state = RS_PORT_ERROR, .err = err};
}

/* The main thread: delivers what the other loops decided, and wakes a loop that waits for
 * room in its ring. */
static void collect(engine *e)
{
    for (unsigned i = 1; i < e->n; i++) {
        loop *lp = &e->loops[i];
        size_t h = atomic_load_explicit(&lp->head, memory_order_relaxed);
        size_t t = atomic_load_explicit(&lp->tail, memory_order_acquire);
        if (h == t)
            continue;
        for (; h != t; h++)
            e->cfg->deliver(e->cfg->ctx, &lp->ring[h % lp->size]);
        /* seq_cst pairs with the loop's store of `starved` and load of `head` in feed(): one
         * of the two sides sees the other's store, so a starved loop is always kicked. */
        atomic_store(&lp->head, h);
        if (atomic_load(&lp->starved) && atomic_exchange(&lp->starved, 0))
            eventfd_write(lp->kick, 1);
    }
}

/* ---- classification ----------------------------------------------------------------------- */

/* ICMP (RFC 792, RFC 1812) to a verdict; false for messages that settle nothing. */
static bool icmp4(int type, int code, verdict *v)
{
    if (type == ICMP_TIME_EXCEEDED) {
        *v = answer(RS_PORT_FILTERED, "time-exceeded");
        return true;
    }
    if (type != ICMP_DEST_UNREACH)
        return false;
    switch (code) {
    case ICMP_NET_UNREACH:
    case ICMP_NET_UNKNOWN:
    case ICMP_NET_UNR_TOS:
        *v = answer(RS_PORT_FILTERED, "net-unreach");
        return true;
    case ICMP_HOST_UNREACH:
    case ICMP_HOST_UNKNOWN:
    case ICMP_HOST_ISOLATED:
    case ICMP_HOST_UNR_TOS:
    case ICMP_SR_FAILED:
        *v = answer(RS_PORT_FILTERED, "host-unreach");
        return true;
    case ICMP_PROT_UNREACH:
        *v = answer(RS_PORT_FILTERED, "proto-unreach");
        return true;
    case ICMP_PORT_UNREACH:
        *v = answer(RS_PORT_CLOSED, "port-unreach");
        return true;
    case ICMP_NET_ANO:
    case ICMP_HOST_ANO:
    case ICMP_PKT_FILTERED:
    case ICMP_PREC_VIOLATION:
    case ICMP_PREC_CUTOFF:
        *v = answer(RS_PORT_FILTERED, "admin-prohibited");
        return true;
    default:
        return false;
    }
}

/* ICMPv6 (RFC 4443) to a verdict. */
static bool icmp6(int type, int code, verdict *v)
{
    if (type == ICMP6_TIME_EXCEEDED) {
        *v = answer(RS_PORT_FILTERED, "time-exceeded");
        return true;
    }
    if (type != ICMP6_DST_UNREACH)
        return false;
    switch (code) {
    case ICMP6_DST_UNREACH_NOROUTE:
        *v = answer(RS_PORT_FILTERED, "net-unreach");
        return true;
    case ICMP6_DST_UNREACH_ADMIN:
    case 5: /* source address failed ingress/egress policy */
    case 6: /* reject route to destination */
        *v = answer(RS_PORT_FILTERED, "admin-prohibited");
        return true;
    case ICMP6_DST_UNREACH_BEYONDSCOPE:
    case ICMP6_DST_UNREACH_ADDR:
        *v = answer(RS_PORT_FILTERED, "host-unreach");
        return true;
    case ICMP6_DST_UNREACH_NOPORT:
        *v = answer(RS_PORT_CLOSED, "port-unreach");
        return true;
    default:
        return false;
    }
}

/* Reads the ICMP message that answered the probe on fd from the socket's error queue
 * (IP_RECVERR). Errno alone cannot name it: Linux maps host-unreachable and
 * admin-prohibited both to EHOSTUNREACH, and a reset and port-unreachable both to
 * ECONNREFUSED. The queue also holds ICMP errors that arrived while connect() still owned the
 * socket, which the kernel then keeps only as a soft error that SO_ERROR does not show. */
static bool icmp_verdict(int fd, verdict *v)
{
    union {
        char buf[256];
        struct cmsghdr align;
    } control;
    struct msghdr m = {.msg_control = control.buf, .msg_controllen = sizeof control.buf};
    if (recvmsg(fd, &m, MSG_ERRQUEUE | MSG_DONTWAIT) < 0)
        return false;
    for (struct cmsghdr *c = CMSG_FIRSTHDR(&m); c; c = CMSG_NXTHDR(&m, c)) {
        bool v4 = c->cmsg_level == SOL_IP && c->cmsg_type == IP_RECVERR;
        bool v6 = c->cmsg_level == SOL_IPV6 && c->cmsg_type == IPV6_RECVERR;
        if (!v4 && !v6)
            continue;
        struct sock_extended_err ee;
        memcpy(&ee, CMSG_DATA(c), sizeof ee);
        if (ee.ee_origin == SO_EE_ORIGIN_ICMP)
            return icmp4(ee.ee_type, ee.ee_code, v);
        if (ee.ee_origin == SO_EE_ORIGIN_ICMP6)
            return icmp6(ee.ee_type, ee.ee_code, v);
    }
    return false;
}

/* An asynchronous connect error with no ICMP message to name it. EACCES is how an ICMPv6
 * administratively-prohibited reaches SO_ERROR. */
static verdict errno_verdict(int err)
{
    switch (err) {
    case ECONNREFUSED:
        return answer(RS_PORT_CLOSED, "conn-refused");
    case ENETUNREACH:
        return answer(RS_PORT_FILTERED, "net-unreach");
    case EHOSTUNREACH:
    case EHOSTDOWN:
    case ENONET:
        return answer(RS_PORT_FILTERED, "host-unreach");
    case EACCES:
        return answer(RS_PORT_FILTERED, "admin-prohibited");
    default:
        return failure(err);
    }
}

/* Errors that say a resource ran out, not that the probe is impossible. */
static bool back_pressure(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM || err == EAGAIN ||
           err == ENOSPC || err == EADDRNOTAVAIL;
}

/* Whether two socket addresses name the same address and port. */
static bool same_endpoint(const rs__sockaddr *a, const rs__sockaddr *b)
{
    if (a->sa.sa_family != b->sa.sa_family)
        return false;
    if (a->sa.sa_family == AF_INET)
        return a->in.sin_port == b->in.sin_port && a->in.sin_addr.s_addr == b->in.sin_addr.s_addr;
    return a->in6.sin6_port == b->in6.sin6_port &&
           memcmp(&a->in6.sin6_addr, &b->in6.sin6_addr, sizeof a->in6.sin6_addr) == 0;
}

/* Decides a probe whose socket connected. A socket that connected to itself (on loopback the
 * kernel may pick the target port as the local port, and the SYN then meets itself) proves
 * only that nothing listens there: closed, never open. An established connection is closed
 * with a reset (SO_LINGER 0), so no TIME_WAIT is left behind on either side. */
static void connected(loop *lp, slot *s, int fd, int64_t now)
{
    rs__sockaddr local;
    socklen_t len = sizeof local;
    bool self = getsockname(fd, &local.sa, &len) == 0 && same_endpoint(&local, &s->probe.addr);
    static const struct linger reset = {.l_onoff = 1, .l_linger = 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset, sizeof reset);
    close(fd);
    decide(lp, s, self ? answer(RS_PORT_CLOSED, "self-connect") : answer(RS_PORT_OPEN, "syn-ack"),
           since(s, now));
}

/* ---- launching ---------------------------------------------------------------------------- */

/* Back-pressure (err) on the launch of s, the head of `pending`: see the DESIGN note. Returns
 * true when s was given up on and reported, false when launching must pause. */
static bool press(loop *lp, slot *s, int err, int64_t now)
{
    if (lp->inflight) {
        lp->limit = lp->inflight;
        lp->pressed = 0;
        return false;
    }
    if (!lp->pressed) {
        lp->pressed = now;
    } else if (now - lp->pressed >= PRESSURE_LIMIT_NS) {
        lp->pressed = 0;
        lp->backoff = 0;
        decide(lp, s, failure(err), -1);
        return true;
    }
    lp->backoff = lp->backoff ? lp->backoff * 2 : BACKOFF_MIN_NS;
    if (lp->backoff > BACKOFF_MAX_NS)
        lp->backoff = BACKOFF_MAX_NS;
    lp->resume = now + lp->backoff;
    return false;
}

/* A launch of s failed before any packet went out. Returns false when launching must pause. */
static bool launch_failed(loop *lp, slot *s, int err, int64_t now)
{
    if (back_pressure(err))
        return press(lp, s, err, now);
    decide(lp, s, failure(err), -1);
    return true;
}

/* Starts an attempt of s, the head of `pending`. Returns false when launching must pause. */
static bool launch_one(loop *lp, slot *s)
{
    int family = s->probe.addr.sa.sa_family;
    int64_t now = rs__now_ns();
    if (family == AF_UNSPEC) {
        decide(lp, s, answer(RS_PORT_ERROR, s->probe.error), -1);
        return true;
    }
    int fd = socket(family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, IPPROTO_TCP);
    if (fd < 0)
        return launch_failed(lp, s, errno, now);
    static const int on = 1;
    if (family == AF_INET)
        setsockopt(fd, SOL_IP, IP_RECVERR, &on, sizeof on);
    else
        setsockopt(fd, SOL_IPV6, IPV6_RECVERR, &on, sizeof on);
    socklen_t len = family == AF_INET ? sizeof s->probe.addr.in : sizeof s->probe.addr.in6;
    s->start = now;
    if (connect(fd, &s->probe.addr.sa, len) == 0) {
        s->attempts++;
        connected(lp, s, fd, rs__now_ns());
        return true;
    }
    int err = errno;
    if (err == EINPROGRESS || err == EINTR) {
        struct epoll_event ev = {.events = EPOLLOUT, .data.ptr = s};
        if (epoll_ctl(lp->ep, EPOLL_CTL_ADD, fd, &ev) == 0) {
            s->attempts++;
            s->fd = fd;
            s->deadline = now + lp->eng->cfg->timeout_ns;
            rs__queue_remove(&s->node);
            rs__queue_insert_tail(&lp->flight, &s->node);
            lp->inflight++;
            lp->pressed = 0;
            lp->backoff = 0;
            return true;
        }
        err = errno;
        close(fd);
        return launch_failed(lp, s, err, now);
    }
    close(fd);
    if (back_pressure(err))
        return press(lp, s, err, now);
    /* Refused at once, or no way there at all (no route, a local rule): the probe could not
     * be made, unlike the same errors arriving later from the network. */
    s->attempts++;
    if (err == ECONNREFUSED)
        decide(lp, s, answer(RS_PORT_CLOSED, "conn-refused"), since(s, rs__now_ns()));
    else
        decide(lp, s, failure(err), -1);
    return true;
}

/* Launches probes from `pending` while the window has room, at most LAUNCH_BATCH of them,
 * unless a back-off is running. */
static void launch(loop *lp)
{
    if (lp->resume) {
        if (rs__now_ns() < lp->resume)
            return;
        lp->resume = 0;
    }
    for (int n = 0; n < LAUNCH_BATCH; n++) {
        if (rs__queue_empty(&lp->pending) || lp->inflight >= lp->limit)
            return;
        if (!launch_one(lp, first(&lp->pending)))
            return;
    }
}

/* How many probes the loop may take from the feed; *ring_bound tells whether its ring, rather
 * than the window, is the limit. */
static unsigned room(loop *lp, bool *ring_bound)
{
    *ring_bound = false;
    if (lp->used >= lp->limit)
        return 0;
    unsigned n = lp->limit - lp->used;
    if (!lp->main) {
        size_t fill =
            atomic_load_explicit(&lp->tail, memory_order_relaxed) - atomic_load(&lp->head);
        size_t left = lp->size - lp->used - fill;
        if (left < n) {
            n = (unsigned)left;
            *ring_bound = true;
        }
    }
    return n;
}

/* Takes new probes from the feed into free slots, when the loop has room and no backlog. */
static void feed(loop *lp)
{
    if (lp->drained || !rs__queue_empty(&lp->pending))
        return;
    bool ring_bound;
    unsigned n = room(lp, &ring_bound);
    if (!n && ring_bound) {
        atomic_store(&lp->starved, 1);
        n = room(lp, &ring_bound);
    }
    if (!n)
        return;
    if (n > FEED_BATCH)
        n = FEED_BATCH;
    engine *e = lp->eng;
    rs__probe batch[FEED_BATCH];
    size_t got = 0;
    rs__mutex_lock(&e->feed_mu);
    if (!e->fed) {
        got = e->cfg->next(e->cfg->ctx, batch, n);
        e->fed = got == 0;
    }
    rs__mutex_unlock(&e->feed_mu);
    if (!got) {
        lp->drained = true;
        return;
    }
    for (size_t i = 0; i < got; i++) {
        slot *s = first(&lp->free);
        rs__queue_remove(&s->node);
        s->probe = batch[i];
        s->attempts = 0;
        s->fd = -1;
        rs__queue_insert_tail(&lp->pending, &s->node);
        lp->used++;
    }
}

/* ---- answers and timeouts ------------------------------------------------------------------ */

/* Takes s off `flight`; its socket is the caller's to close. */
static int land(loop *lp, slot *s)
{
    int fd = s->fd;
    s->fd = -1;
    rs__queue_remove(&s->node);
    lp->inflight--;
    return fd;
}

/* An attempt of s went unanswered: retry it, or decide it filtered. */
static void unanswered(loop *lp, slot *s)
{
    close(land(lp, s));
    if (s->attempts < lp->eng->cfg->tries)
        rs__queue_insert_tail(&lp->pending, &s->node);
    else
        decide(lp, s, answer(RS_PORT_FILTERED, "no-response"), -1);
}

/* Ends every attempt whose deadline has passed. */
static void expire(loop *lp, int64_t now)
{
    while (!rs__queue_empty(&lp->flight) && first(&lp->flight)->deadline <= now)
        unanswered(lp, first(&lp->flight));
}

/* Epoll reported events for s, which is in flight. */
static void on_event(loop *lp, slot *s, uint32_t events)
{
    int64_t now = rs__now_ns();
    verdict v;
    if ((events & EPOLLERR) && icmp_verdict(s->fd, &v)) {
        close(land(lp, s));
        decide(lp, s, v, since(s, now));
        return;
    }
    int err = 0;
    socklen_t len = sizeof err;
    if ((events & (EPOLLERR | EPOLLHUP)) && getsockopt(s->fd, SOL_SOCKET, SO_ERROR, &err, &len))
        err = errno;
    if (!err) {
        if (events & EPOLLOUT) {
            int fd = land(lp, s);
            connected(lp, s, fd, now);
            return;
        }
        if (!(events & EPOLLHUP))
            return; /* an ICMP message that settles nothing (it was read): wait on */
        err = ECONNRESET;
    }
    if (err == ETIMEDOUT) {
        unanswered(lp, s); /* the kernel gave up on its SYNs before we did */
        return;
    }
    close(land(lp, s));
    decide(lp, s, errno_verdict(err), since(s, now));
}

/* ---- the loop ----------------------------------------------------------------------------- */

/* Milliseconds the loop may wait for events: 0 when it can launch now, -1 when only an event
 * can give it work. */
static int wait_ms(loop *lp, int64_t now)
{
    int64_t until = -1;
    if (!rs__queue_empty(&lp->pending) && lp->inflight < lp->limit) {
        if (lp->resume <= now)
            return 0;
        until = lp->resume;
    } else if (rs__queue_empty(&lp->pending) && !lp->drained) {
        bool ring_bound;
        if (room(lp, &ring_bound))
            return 0;
    }
    if (!rs__queue_empty(&lp->flight)) {
        int64_t d = first(&lp->flight)->deadline;
        if (until < 0 || d < until)
            until = d;
    }
    if (until < 0)
        return -1;
    int64_t ms = (until - now + 999999) / 1000000;
    return ms <= 0 ? 0 : ms > INT_MAX ? INT_MAX : (int)ms;
}

/* One event loop, until the feed is exhausted and its slots are free (for the main loop: and
 * the other loops have ended), or until a stop. */
static void run_loop(loop *lp)
{
    engine *e = lp->eng;
    const rs__engine *cfg = e->cfg;
    struct epoll_event ev[EVENTS];
    while (!stopping(e)) {
        expire(lp, rs__now_ns());
        feed(lp);
        launch(lp);
        if (lp->main) {
            collect(e);
        } else if (lp->pushed) {
            lp->pushed = false;
            eventfd_write(e->notify, 1);
        }
        if (lp->drained && !lp->used &&
            (!lp->main || !atomic_load_explicit(&e->live, memory_order_acquire)))
            break;
        int ms = wait_ms(lp, rs__now_ns());
        /* Asked with the interrupt signal blocked: one that comes after this look stays
         * pending and cuts the wait short. */
        if (lp->main && cfg->due && cfg->due(cfg->ctx)) {
            request_stop(e);
            break;
        }
        int n = epoll_pwait(lp->ep, ev, EVENTS, ms, lp->main && cfg->signo ? &e->waitmask : NULL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            lp->fail = errno;
            request_stop(e);
            break;
        }
        for (int i = 0; i < n; i++) {
            if (ev[i].data.ptr == &stop_tag)
                continue; /* the flag, set before the eventfd, ends the loop */
            if (ev[i].data.ptr == &kick_tag) {
                eventfd_t value;
                eventfd_read(lp->kick, &value);
                continue;
            }
            on_event(lp, ev[i].data.ptr, ev[i].events);
        }
    }
    /* Stopped or done: what is still in flight is dropped. */
    while (!rs__queue_empty(&lp->flight))
        close(land(lp, first(&lp->flight)));
}

/* A loop on a thread of its own; the main loop learns of its end through `live` and notify. */
static void *thread_main(void *arg)
{
    loop *lp = arg;
    run_loop(lp);
    atomic_fetch_sub_explicit(&lp->eng->live, 1, memory_order_release);
    eventfd_write(lp->eng->notify, 1);
    return NULL;
}

/* ---- setup -------------------------------------------------------------------------------- */

/* Adds an eventfd to an epoll set, tagged for run_loop. */
static int watch(int ep, int fd, void *tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.ptr = tag};
    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/* Sets up a loop with `size` slots (and, off the main thread, a ring of the same size). 0, or
 * RS_ENOMEM / RS_ESYSTEM with the message set; loop_free undoes a partial setup. */
static int loop_init(engine *e, loop *lp, unsigned size, bool main, rs__msg *msg)
{
    lp->eng = e;
    lp->main = main;
    lp->size = lp->limit = size;
    rs__queue_init(&lp->free);
    rs__queue_init(&lp->pending);
    rs__queue_init(&lp->flight);
    atomic_init(&lp->head, 0);
    atomic_init(&lp->tail, 0);
    atomic_init(&lp->starved, 0);
    lp->slots = rs__calloc(size, sizeof *lp->slots);
    if (!main)
        lp->ring = rs__calloc(size, sizeof *lp->ring);
    if (!lp->slots || (!main && !lp->ring))
        return rs__msg_set(msg, RS_ENOMEM, "out of memory for %u probes in flight", size);
    for (unsigned i = 0; i < size; i++)
        rs__queue_insert_tail(&lp->free, &lp->slots[i].node);
    lp->ep = epoll_create1(EPOLL_CLOEXEC);
    lp->kick = main ? e->notify : eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (lp->ep < 0 || lp->kick < 0 || watch(lp->ep, e->cfg->stop_fd, &stop_tag) ||
        watch(lp->ep, lp->kick, &kick_tag))
        return rs__msg_set(msg, RS_ESYSTEM, "cannot set up the scan's event loop: %s",
                           strerror(errno));
    return 0;
}

/* Frees what loop_init set up; the loop's sockets are already closed. */
static void loop_free(loop *lp)
{
    if (lp->ep >= 0)
        close(lp->ep);
    if (!lp->main && lp->kick >= 0)
        close(lp->kick);
    rs__free(lp->slots);
    rs__free(lp->ring);
}

int rs__engine_run(const rs__engine *cfg, rs__msg *msg)
{
    engine e = {.cfg = cfg, .notify = -1};
    unsigned window = cfg->window ? cfg->window : 1;
    e.n = cfg->loops < 1 ? 1 : cfg->loops > window ? window : cfg->loops;
    atomic_init(&e.live, 0);
    if (rs__mutex_init(&e.feed_mu))
        return rs__msg_set(msg, RS_ESYSTEM, "cannot create a mutex");
    int rc = 0;
    e.notify = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    e.loops = rs__calloc(e.n, sizeof *e.loops);
    if (e.notify < 0)
        rc = rs__msg_set(msg, RS_ESYSTEM, "eventfd: %s", strerror(errno));
    else if (!e.loops)
        rc = rs__msg_set(msg, RS_ENOMEM, "out of memory");
    for (unsigned i = 0; e.loops && i < e.n; i++)
        e.loops[i].ep = e.loops[i].kick = -1;
    for (unsigned i = 0; !rc && i < e.n; i++) {
        unsigned size = window / e.n + (i < window % e.n);
        rc = loop_init(&e, &e.loops[i], size, i == 0, msg);
    }
    if (!rc) {
        if (cfg->signo) {
            sigset_t block;
            sigemptyset(&block);
            sigaddset(&block, cfg->signo);
            pthread_sigmask(SIG_BLOCK, &block, &e.waitmask);
        }
        /* A loop whose thread cannot start takes no probes; the others cover the feed. */
        for (unsigned i = 1; i < e.n; i++) {
            loop *lp = &e.loops[i];
            atomic_fetch_add(&e.live, 1);
            lp->started = rs__thread_create(&lp->thread, thread_main, lp, 0) == 0;
            if (!lp->started)
                atomic_fetch_sub(&e.live, 1);
        }
        run_loop(&e.loops[0]);
        for (unsigned i = 1; i < e.n; i++) {
            if (e.loops[i].started)
                rs__thread_join(e.loops[i].thread);
        }
        collect(&e);
        if (cfg->signo)
            pthread_sigmask(SIG_SETMASK, &e.waitmask, NULL);
        for (unsigned i = 0; i < e.n && !rc; i++) {
            if (e.loops[i].fail)
                rc = rs__msg_set(msg, RS_ESYSTEM, "epoll_wait: %s", strerror(e.loops[i].fail));
        }
        if (!rc && stopping(&e))
            rc = RS_ESTOPPED;
    }
    for (unsigned i = 0; e.loops && i < e.n; i++)
        loop_free(&e.loops[i]);
    rs__free(e.loops);
    if (e.notify >= 0)
        close(e.notify);
    rs__mutex_destroy(&e.feed_mu);
    return rc;
}
