/*
 * redisq_shared.c -- `shared` in a run on Redis: the run's store is the hash PREFIX
 * run:NAME:shared, one field per key holding the value's JSON text, so that every worker of
 * the run, on any machine, sees the same store with the same atomic operations:
 *   get / set   HGET / HSET (HDEL for nil)
 *   incr        HINCRBY (a JSON integer is its decimal text; anything else is refused)
 *   add         HSETNX
 *   cas         a Lua script on Redis (compare the JSON text, then set or delete)
 *   keys        HKEYS (in Redis' order, not the order of insertion)
 * One connection per store, under a mutex: the runspaces of a worker take turns, each call one
 * round trip (a call blocks its script until Redis answers, or until the connection's retry
 * time runs out). A value read back that is not JSON is an error (RS_EIO), never trusted.
 */
#include "json.h"
#include "redisq.h"
#include "shared.h"
#include "thread.h"

#include <string.h>

typedef struct remote {
    rs__mutex mu;
    rs__redis *r;
    char *key;
} remote;

static const char cas_script[] = "local cur = redis.call('HGET', KEYS[1], ARGV[1]) "
                                 "if ARGV[2] == '1' then if cur then return 0 end "
                                 "elseif cur ~= ARGV[3] then return 0 end "
                                 "if ARGV[5] == '1' then redis.call('HDEL', KEYS[1], ARGV[1]) "
                                 "else redis.call('HSET', KEYS[1], ARGV[1], ARGV[4]) end "
                                 "return 1";

/* One command under the lock: its reply, or NULL with *rc set. */
static redisReply *call(remote *m, int *rc, int argc, const char *const *argv, const size_t *lens)
{
    rs__msg msg = {0};
    rs__mutex_lock(&m->mu);
    redisReply *rep = rs__redis_cmd(m->r, rc, &msg, argc, argv, lens);
    rs__mutex_unlock(&m->mu);
    if (!rep && *rc == RS_EIO && strstr(rs__msg_get(&msg), "not an integer"))
        *rc = RS_EINVAL;
    else if (!rep && *rc == RS_EIO && strstr(rs__msg_get(&msg), "overflow"))
        *rc = RS_ERUNTIME;
    rs__msg_free(&msg);
    return rep;
}

static int encode(const rs_value *v, rs__buf *b)
{
    int rc = rs__json_encode_ex(v, 0, "value", 1, b, NULL);
    return rc == RS_ENOMEM ? rc : rc ? RS_EVALUE : 0;
}

static int r_get(void *ctx, const char *key, size_t klen, rs_value **out)
{
    remote *m = ctx;
    *out = NULL;
    const char *argv[] = {"HGET", m->key, key};
    size_t lens[] = {4, strlen(m->key), klen};
    int rc;
    redisReply *rep = call(m, &rc, 3, argv, lens);
    if (!rep)
        return rc;
    if (rep->type == REDIS_REPLY_NIL)
        rc = RS_ENOENT;
    else if (rep->type != REDIS_REPLY_STRING || rs_json_decode(rep->str, rep->len, out, NULL))
        rc = RS_EIO; /* not what this store writes */
    freeReplyObject(rep);
    return rc;
}

static int r_put(void *ctx, const char *key, size_t klen, const rs_value *v)
{
    remote *m = ctx;
    rs__buf b = {0};
    int rc = v ? encode(v, &b) : 0;
    if (rc)
        return rc;
    const char *argv[] = {v ? "HSET" : "HDEL", m->key, key, b.data};
    size_t lens[] = {4, strlen(m->key), klen, b.len};
    redisReply *rep = call(m, &rc, v ? 4 : 3, argv, lens);
    if (rep)
        freeReplyObject(rep);
    rs__buf_free(&b);
    return rc;
}

static int r_incr(void *ctx, const char *key, size_t klen, int64_t delta, int64_t *out)
{
    remote *m = ctx;
    char d[24];
    snprintf(d, sizeof d, "%lld", (long long)delta);
    const char *argv[] = {"HINCRBY", m->key, key, d};
    size_t lens[] = {7, strlen(m->key), klen, strlen(d)};
    int rc;
    redisReply *rep = call(m, &rc, 4, argv, lens);
    if (!rep)
        return rc;
    if (rep->type != REDIS_REPLY_INTEGER)
        rc = RS_EIO;
    else if (out)
        *out = rep->integer;
    freeReplyObject(rep);
    return rc;
}

static int r_cas(void *ctx, const char *key, size_t klen, const rs_value *expected,
                 const rs_value *v, bool *swapped)
{
    remote *m = ctx;
    *swapped = false;
    rs__buf e = {0}, n = {0};
    int rc = expected ? encode(expected, &e) : 0;
    if (!rc && v)
        rc = encode(v, &n);
    if (!rc) {
        const char *argv[] = {"EVAL",
                              cas_script,
                              "1",
                              m->key,
                              key,
                              expected ? "0" : "1",
                              e.data ? e.data : "",
                              n.data ? n.data : "",
                              v ? "0" : "1"};
        size_t lens[9];
        for (int i = 0; i < 9; i++)
            lens[i] = strlen(argv[i]);
        lens[4] = klen;
        lens[6] = e.len;
        lens[7] = n.len;
        redisReply *rep = call(m, &rc, 9, argv, lens);
        if (rep) {
            if (rep->type == REDIS_REPLY_INTEGER)
                *swapped = rep->integer == 1;
            else
                rc = RS_EIO;
            freeReplyObject(rep);
        }
    }
    rs__buf_free(&e);
    rs__buf_free(&n);
    return rc;
}

static rs_value *r_keys(void *ctx)
{
    remote *m = ctx;
    const char *argv[] = {"HKEYS", m->key};
    int rc;
    redisReply *rep = call(m, &rc, 2, argv, NULL);
    if (!rep)
        return NULL;
    rs_value *keys = rep->type == REDIS_REPLY_ARRAY ? rs_value_array() : NULL;
    for (size_t i = 0; keys && i < rep->elements; i++) {
        const redisReply *k = rep->element[i];
        rs_value *kv = k->type == REDIS_REPLY_STRING ? rs_value_stringn(k->str, k->len) : NULL;
        if (!kv || rs_array_push(keys, kv)) {
            rs_value_destroy(kv);
            rs_value_destroy(keys);
            keys = NULL;
        }
    }
    freeReplyObject(rep);
    return keys;
}

static void r_free(void *ctx)
{
    remote *m = ctx;
    rs__redis_close(m->r);
    rs__mutex_destroy(&m->mu);
    rs__free(m->key);
    rs__free(m);
}

static const rs__shared_ops ops = {r_get, r_put, r_incr, r_cas, r_keys, r_free};

int rs__redisq_shared_create(const rs__redis_addr *addr, const char *prefix, const char *run,
                             double retry_for, rs_shared **out, rs__msg *msg)
{
    *out = NULL;
    remote *m = rs__calloc(1, sizeof *m);
    if (!m)
        return rs__msg_set(msg, RS_ENOMEM, "out of memory");
    m->key = rs__rq_key(prefix, run, ":shared");
    if (!m->key || rs__mutex_init(&m->mu)) {
        rs__free(m->key);
        rs__free(m);
        return rs__msg_set(msg, RS_ENOMEM, "out of memory");
    }
    int rc = rs__redis_open(addr, retry_for, -1, &m->r, msg);
    if (!rc)
        rc = rs__shared_create_remote(&ops, m, out);
    if (rc) {
        r_free(m);
        return rc;
    }
    return 0;
}
