/*
 * shared.h -- the synchronized store behind `shared`, with length-counted keys.
 */
#ifndef RS_SHARED_H
#define RS_SHARED_H

#include "common.h"

/* A store kept elsewhere (a run's store on Redis: redisq_shared.c): every operation goes to
 * ops, which must be thread-safe; the byte limits do not apply there. ops->free(ctx) runs
 * when the last reference goes. Errors of the store itself are RS_EIO. */
typedef struct rs__shared_ops {
    int (*get)(void *ctx, const char *key, size_t klen, rs_value **out);
    int (*put)(void *ctx, const char *key, size_t klen, const rs_value *v); /* NULL: remove */
    int (*incr)(void *ctx, const char *key, size_t klen, int64_t delta, int64_t *out);
    int (*cas)(void *ctx, const char *key, size_t klen, const rs_value *expected, const rs_value *v,
               bool *swapped);
    rs_value *(*keys)(void *ctx);
    void (*free)(void *ctx);
} rs__shared_ops;
int rs__shared_create_remote(const rs__shared_ops *ops, void *ctx, rs_shared **out);

rs_shared *rs__shared_retain(rs_shared *s);
void rs__shared_release(rs_shared *s);
/* *out gets a copy; RS_ENOENT when absent. */
int rs__shared_get(rs_shared *s, const char *key, size_t klen, rs_value **out);
/* The writers below keep the bytes the store holds within `limit` (0: none): a write that
 * would take it further fails with RS_ELIMIT and changes nothing. */
/* Stores v (taken); NULL removes the key. */
int rs__shared_put(rs_shared *s, const char *key, size_t klen, rs_value *v, size_t limit);
/* Adds delta to an integer (absent: 0): RS_EINVAL for another type, RS_ERUNTIME on overflow. */
int rs__shared_incr(rs_shared *s, const char *key, size_t klen, int64_t delta, int64_t *out,
                    size_t limit);
/* If the current value equals expected (NULL: the key is absent), stores v (taken; NULL
 * removes) and sets *swapped; otherwise frees v and clears *swapped. */
int rs__shared_cas(rs_shared *s, const char *key, size_t klen, const rs_value *expected,
                   rs_value *v, bool *swapped, size_t limit);

#endif
