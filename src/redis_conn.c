/*
 * redis_conn.c -- one connection to Redis: parsing its URL, connecting with the password,
 * pipelines of commands in Redis' protocol, and reconnecting with backoff after a loss.
 *
 * The password is kept only in the address and sent only in AUTH; no message carries it.
 */
#include "redis_conn.h"
#include "thread.h"

#include <errno.h>
#include <limits.h>
#include <poll.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

struct rs__redis {
    rs__redis_addr addr;
    redisContext *c;
    double retry_for;
    int wake_fd;
    double timeout;
    rs__buf pipe; /* commands appended, not yet sent */
    size_t ncommands;
    uint64_t reconnects;
};

void rs__redis_addr_free(rs__redis_addr *a)
{
    if (!a)
        return;
    rs__free(a->host);
    if (a->password) /* not left behind in freed memory */
        memset(a->password, 0, strlen(a->password));
    rs__free(a->password);
    memset(a, 0, sizeof *a);
}

static bool parse_int(const char *s, size_t len, long min, long max, int *out)
{
    if (len == 0 || len > 9)
        return false;
    long v = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            return false;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return false;
    *out = (int)v;
    return true;
}

int rs__redis_parse_url(const char *url, rs__redis_addr *a, rs__msg *msg)
{
    memset(a, 0, sizeof *a);
    a->port = 6379;
    static const char scheme[] = "redis://";
    if (!url || strncmp(url, scheme, sizeof scheme - 1) != 0)
        return rs__msg_set(msg, RS_EINVAL,
                           "the Redis URL must start with redis:// (redis://[:PASSWORD@]HOST"
                           "[:PORT][/DB]; for TLS, put stunnel or an SSH tunnel in front)");
    const char *p = url + sizeof scheme - 1;
    const char *at = strrchr(p, '@');
    const char *slash = strchr(at ? at : p, '/');
    const char *end = p + strlen(p);
    if (at) {
        const char *colon = memchr(p, ':', (size_t)(at - p));
        if (!colon)
            return rs__msg_set(msg, RS_EINVAL,
                               "the Redis URL has a user but no password (redis://:PASSWORD@...)");
        a->password = rs__strndup(colon + 1, (size_t)(at - colon - 1));
        if (!a->password)
            return rs__msg_set(msg, RS_ENOMEM, "out of memory");
        p = at + 1;
    }
    const char *host_end = slash ? slash : end;
    const char *host = p;
    const char *port = NULL;
    if (*host == '[') { /* [::1]:6379 */
        const char *close = memchr(host, ']', (size_t)(host_end - host));
        if (!close)
            goto bad;
        a->host = rs__strndup(host + 1, (size_t)(close - host - 1));
        if (close + 1 < host_end) {
            if (close[1] != ':')
                goto bad;
            port = close + 2;
        }
    } else {
        const char *colon = memchr(host, ':', (size_t)(host_end - host));
        a->host = rs__strndup(host, (size_t)((colon ? colon : host_end) - host));
        if (colon)
            port = colon + 1;
    }
    if (!a->host) {
        rs__redis_addr_free(a);
        return rs__msg_set(msg, RS_ENOMEM, "out of memory");
    }
    if (!*a->host)
        goto bad;
    for (const char *h = a->host; *h; h++) {
        if (*h <= ' ' || *h == '/' || *h == '@' || (unsigned char)*h >= 0x7f)
            goto bad;
    }
    if (port && !parse_int(port, (size_t)(host_end - port), 1, 65535, &a->port))
        goto bad;
    if (slash && slash[1] && !parse_int(slash + 1, strlen(slash + 1), 0, 1000000, &a->db))
        goto bad;
    if (!a->password) {
        const char *env = getenv("REDISCLI_AUTH");
        if (env && *env && !(a->password = rs__strdup(env))) {
            rs__redis_addr_free(a);
            return rs__msg_set(msg, RS_ENOMEM, "out of memory");
        }
    }
    return 0;
bad:
    rs__redis_addr_free(a);
    /* The URL may hold a password: the message names the form, not the text. */
    return rs__msg_set(msg, RS_EINVAL,
                       "the Redis URL does not parse: expected redis://[:PASSWORD@]HOST[:PORT]"
                       "[/DB] with a port from 1 to 65535");
}

static struct timeval tv_of(double s)
{
    struct timeval tv = {.tv_sec = (time_t)s,
                         .tv_usec = (suseconds_t)((s - (double)(time_t)s) * 1e6)};
    return tv;
}

/* Connects, authenticates and selects the database. RS_EIO with the reason. */
static int connect_once(rs__redis *r, rs__msg *msg)
{
    if (r->c) {
        redisFree(r->c);
        r->c = NULL;
    }
    redisContext *c = redisConnectWithTimeout(r->addr.host, r->addr.port, tv_of(5));
    if (!c)
        return rs__msg_set(msg, RS_ENOMEM, "out of memory");
    if (c->err) {
        int rc = rs__msg_set(msg, RS_EIO, "cannot reach Redis at %s:%d: %s", r->addr.host,
                             r->addr.port, c->errstr);
        redisFree(c);
        return rc;
    }
    redisSetTimeout(c, tv_of(r->timeout));
    r->c = c;
    char db[16];
    snprintf(db, sizeof db, "%d", r->addr.db);
    const char *auth[] = {"AUTH", r->addr.password};
    const char *sel[] = {"SELECT", db};
    const char *const *cmds[] = {auth, sel};
    for (int i = r->addr.password ? 0 : 1; i < 2; i++) {
        redisReply *rep = redisCommandArgv(c, 2, (const char **)cmds[i], NULL);
        if (!rep) {
            int rc = rs__msg_set(msg, RS_EIO, "cannot reach Redis at %s:%d: %s", r->addr.host,
                                 r->addr.port, c->errstr[0] ? c->errstr : "connection lost");
            redisFree(c);
            r->c = NULL;
            return rc;
        }
        if (rep->type == REDIS_REPLY_ERROR) {
            int rc;
            if (i == 0 || strstr(rep->str, "NOAUTH") || strstr(rep->str, "WRONGPASS"))
                rc = rs__msg_set(msg, RS_EIO,
                                 i == 0 ? "Redis at %s:%d refused the password"
                                        : "Redis at %s:%d wants a password (in the URL, "
                                          "redis://:PASSWORD@HOST, or in REDISCLI_AUTH)",
                                 r->addr.host, r->addr.port);
            else
                rc = rs__msg_set(msg, RS_EIO, "Redis at %s:%d refused database %d: %.200s",
                                 r->addr.host, r->addr.port, r->addr.db, rep->str);
            freeReplyObject(rep);
            redisFree(c);
            r->c = NULL;
            return rc;
        }
        freeReplyObject(rep);
    }
    return 0;
}

int rs__redis_open(const rs__redis_addr *a, double retry_for, int wake_fd, rs__redis **out,
                   rs__msg *msg)
{
    *out = NULL;
    rs__redis *r = rs__calloc(1, sizeof *r);
    if (!r)
        return rs__msg_set(msg, RS_ENOMEM, "out of memory");
    r->addr.host = rs__strdup(a->host);
    r->addr.port = a->port;
    r->addr.db = a->db;
    r->addr.password = a->password ? rs__strdup(a->password) : NULL;
    r->retry_for = retry_for;
    r->wake_fd = wake_fd;
    r->timeout = 10;
    if (!r->addr.host || (a->password && !r->addr.password)) {
        rs__redis_close(r);
        return rs__msg_set(msg, RS_ENOMEM, "out of memory");
    }
    int rc = connect_once(r, msg);
    if (rc) {
        rs__redis_close(r);
        return rc;
    }
    *out = r;
    return 0;
}

void rs__redis_close(rs__redis *r)
{
    if (!r)
        return;
    if (r->c)
        redisFree(r->c);
    rs__redis_addr_free(&r->addr);
    rs__buf_free(&r->pipe);
    rs__free(r);
}

void rs__redis_set_timeout(rs__redis *r, double seconds)
{
    r->timeout = seconds;
    if (r->c)
        redisSetTimeout(r->c, tv_of(seconds));
}

uint64_t rs__redis_reconnects(const rs__redis *r)
{
    return r->reconnects;
}

int rs__redis_append(rs__redis *r, int argc, const char *const *argv, const size_t *lens)
{
    size_t mark = r->pipe.len;
    int rc = rs__buf_printf(&r->pipe, "*%d\r\n", argc);
    for (int i = 0; !rc && i < argc; i++) {
        size_t len = lens ? lens[i] : strlen(argv[i]);
        rc = rs__buf_printf(&r->pipe, "$%zu\r\n", len);
        if (!rc)
            rc = rs__buf_append(&r->pipe, argv[i], len);
        if (!rc)
            rc = rs__buf_append(&r->pipe, "\r\n", 2);
    }
    if (rc) {
        r->pipe.len = mark;
        return rc;
    }
    r->ncommands++;
    return 0;
}

/* Waits up to ms for the wake descriptor; true when it turned readable (a stop). */
static bool wait_woken(const rs__redis *r, int ms)
{
    struct pollfd p = {.fd = r->wake_fd, .events = POLLIN};
    if (r->wake_fd < 0)
        return poll(NULL, 0, ms), false;
    return poll(&p, 1, ms) > 0;
}

/* Sends the pipeline once and reads the replies: true when every reply came. */
static bool send_once(rs__redis *r, redisReply **replies, size_t n)
{
    if (!r->c)
        return false;
    if (r->pipe.len && redisAppendFormattedCommand(r->c, r->pipe.data, r->pipe.len) != REDIS_OK)
        return false;
    for (size_t i = 0; i < n; i++) {
        void *rep = NULL;
        if (redisGetReply(r->c, &rep) != REDIS_OK || !rep) {
            for (size_t k = 0; k < i; k++) {
                freeReplyObject(replies[k]);
                replies[k] = NULL;
            }
            return false;
        }
        replies[i] = rep;
    }
    return true;
}

int rs__redis_exec(rs__redis *r, redisReply **replies, size_t n, rs__msg *msg)
{
    if (n != r->ncommands) {
        r->pipe.len = 0;
        r->ncommands = 0;
        return rs__msg_set(msg, RS_EMISUSE, "pipeline of %zu commands read as %zu", r->ncommands,
                           n);
    }
    int64_t deadline = rs__now_ns() + rs__seconds_to_ns(r->retry_for);
    int backoff = 50;
    int rc = 0;
    while (!send_once(r, replies, n)) {
        /* Lost: again on a new connection, after a pause, until the time runs out. */
        for (;;) {
            if (rs__now_ns() >= deadline) {
                rc = rs__msg_set(msg, RS_EIO, "lost Redis at %s:%d for more than %.0f s",
                                 r->addr.host, r->addr.port, r->retry_for);
                goto out;
            }
            if (wait_woken(r, backoff)) {
                rc = rs__msg_set(msg, RS_ESTOPPED, "stopped while reconnecting to Redis");
                goto out;
            }
            backoff = backoff * 2 > 1000 ? 1000 : backoff * 2;
            rs__msg tmp = {0};
            int c = connect_once(r, &tmp);
            rs__msg_free(&tmp);
            if (c == 0) {
                r->reconnects++;
                break;
            }
        }
    }
out:
    r->pipe.len = 0;
    r->ncommands = 0;
    return rc;
}

redisReply *rs__redis_cmd(rs__redis *r, int *code, rs__msg *msg, int argc, const char *const *argv,
                          const size_t *lens)
{
    redisReply *rep = NULL;
    int rc = rs__redis_append(r, argc, argv, lens);
    if (rc) {
        *code = rs__msg_set(msg, rc, "out of memory");
        return NULL;
    }
    rc = rs__redis_exec(r, &rep, 1, msg);
    if (rc) {
        *code = rc;
        return NULL;
    }
    if (rep->type == REDIS_REPLY_ERROR) {
        *code = rs__msg_set(msg, RS_EIO, "Redis answered %s: %.200s", argv[0], rep->str);
        freeReplyObject(rep);
        return NULL;
    }
    *code = 0;
    return rep;
}
