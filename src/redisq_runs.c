/*
 * redisq_runs.c -- the runs on a Redis: listing them with their progress, deleting one.
 */
#include "redisq.h"

#include <stdlib.h>
#include <string.h>

/* Connects for a one-off command (no retry: a listing either works now or says why). */
static int open_for(const char *url, const char *prefix, rs__redis **r, rs_errinfo *err)
{
    rs__msg msg = {0};
    rs__redis_addr a;
    int rc = rs__redis_parse_url(url, &a, &msg);
    if (!rc && !rs__rq_prefix_ok(prefix))
        rc = rs__msg_set(&msg, RS_EINVAL,
                         "a key prefix is at most 64 printable characters without blanks");
    if (!rc)
        rc = rs__redis_open(&a, 0, -1, r, &msg);
    rs__redis_addr_free(&a);
    if (rc)
        rs__errinfo_set(err, rc, "%s", rs__msg_get(&msg));
    rs__msg_free(&msg);
    return rc;
}

int rs_redis_runs(const char *url, const char *prefix,
                  void (*fn)(const rs_redis_run_info *run, void *userdata), void *userdata,
                  rs_errinfo *err)
{
    if (!prefix)
        prefix = RS__RQ_DEFAULT_PREFIX;
    rs__redis *r = NULL;
    int rc = open_for(url, prefix, &r, err);
    if (rc)
        return rc;
    rs__msg msg = {0};
    char *set = rs__format("%sruns", prefix);
    const char *sm[] = {"SMEMBERS", set};
    redisReply *names = set ? rs__redis_cmd(r, &rc, &msg, 2, sm, NULL) : NULL;
    if (!set)
        rc = RS_ENOMEM;
    for (size_t i = 0; names && names->type == REDIS_REPLY_ARRAY && i < names->elements; i++) {
        const redisReply *n = names->element[i];
        if (n->type != REDIS_REPLY_STRING || !rs__rq_name_ok(n->str) || strlen(n->str) != n->len)
            continue;
        char *key = rs__rq_key(prefix, n->str, "");
        if (!key)
            continue;
        const char *ga[] = {"HGETALL", key};
        const char *tt[] = {"TTL", key};
        redisReply *reps[2] = {0};
        if (!rs__redis_append(r, 2, ga, NULL) && !rs__redis_append(r, 2, tt, NULL) &&
            rs__redis_exec(r, reps, 2, &msg) == 0) {
            const redisReply *h = reps[0];
            const redisReply *state = rs__rq_field(h, "state");
            const redisReply *created = rs__rq_field(h, "created");
            if (h->type == REDIS_REPLY_ARRAY && h->elements == 0) {
                /* Its keys expired: the name goes too. */
                const char *sr[] = {"SREM", set, n->str};
                int c2;
                redisReply *x = rs__redis_cmd(r, &c2, &msg, 3, sr, NULL);
                if (x)
                    freeReplyObject(x);
            } else if (state && (!strcmp(state->str, "running") || !strcmp(state->str, "stopped") ||
                                 !strcmp(state->str, "done"))) {
                rs_redis_run_info info = {.name = n->str,
                                          .state = state->str,
                                          .ttl = reps[1]->type == REDIS_REPLY_INTEGER &&
                                                         reps[1]->integer >= 0
                                                     ? reps[1]->integer
                                                     : -1,
                                          .created = created ? strtod(created->str, NULL) : 0};
                rs__rq_field_u64(h, "submitted", &info.submitted);
                rs__rq_field_u64(h, "done", &info.done);
                rs__rq_field_u64(h, "total", &info.total);
                if (fn)
                    fn(&info, userdata);
            }
        }
        for (int k = 0; k < 2; k++)
            if (reps[k])
                freeReplyObject(reps[k]);
        rs__free(key);
    }
    if (rc)
        rs__errinfo_set(err, rc, "%s", rs__msg_get(&msg));
    if (names)
        freeReplyObject(names);
    rs__free(set);
    rs__msg_free(&msg);
    rs__redis_close(r);
    return rc;
}

int rs_redis_delete_run(const char *url, const char *prefix, const char *run, rs_errinfo *err)
{
    if (!prefix)
        prefix = RS__RQ_DEFAULT_PREFIX;
    if (!rs__rq_name_ok(run))
        return rs__errinfo_set(err, RS_EINVAL,
                               "a run's name is 1 to 64 letters, digits, '.', '_' or '-'");
    rs__redis *r = NULL;
    int rc = open_for(url, prefix, &r, err);
    if (rc)
        return rc;
    rs__msg msg = {0};
    char *k[4] = {rs__rq_key(prefix, run, ""), rs__rq_key(prefix, run, ":work"),
                  rs__rq_key(prefix, run, ":results"), rs__rq_key(prefix, run, ":shared")};
    char *set = rs__format("%sruns", prefix);
    if (!k[0] || !k[1] || !k[2] || !k[3] || !set) {
        rc = rs__errinfo_set(err, RS_ENOMEM, "out of memory");
    } else {
        const char *del[] = {"DEL", k[0], k[1], k[2], k[3]};
        const char *sr[] = {"SREM", set, run};
        redisReply *reps[2] = {0};
        if ((rc = rs__redis_append(r, 5, del, NULL)) || (rc = rs__redis_append(r, 3, sr, NULL)) ||
            (rc = rs__redis_exec(r, reps, 2, &msg)))
            rs__errinfo_set(err, rc, "%s", rs__msg_get(&msg));
        else if (reps[0]->type != REDIS_REPLY_INTEGER || reps[0]->integer == 0)
            rc = rs__errinfo_set(err, RS_ENOENT, "there is no run named '%s' on Redis", run);
        for (int i = 0; i < 2; i++)
            if (reps[i])
                freeReplyObject(reps[i]);
    }
    for (int i = 0; i < 4; i++)
        rs__free(k[i]);
    rs__free(set);
    rs__msg_free(&msg);
    rs__redis_close(r);
    return rc;
}
