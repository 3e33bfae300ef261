/*
 * shared.c -- the synchronized hashtable shared by the runspaces of a pool: an insertion-
 * ordered map under one mutex. Values are copied in and out, so no Lua object is ever shared.
 * The store counts the bytes it holds, so that scripts under a memory limit can be held to a
 * limit here too (the `limit` arguments; 0 for none). A remote store (rs__shared_create_remote)
 * has no map: each operation is handed to its ops.
 */
#include "shared.h"

#include "thread.h"
#include "value.h"

#include <stdatomic.h>
#include <string.h>

struct rs_shared {
    atomic_int refs;
    rs__mutex mu;
    rs_value *map;
    size_t bytes;              /* about what the entries take (rs__value_size and the keys) */
    const rs__shared_ops *ops; /* a remote store, or NULL */
    void *ctx;
};

/* What an entry of the store costs: its value, its key, its slot. */
static size_t entry_size(size_t klen, const rs_value *v)
{
    return v ? rs__value_size(v) + rs__value_cost(RS_TSTRING, klen) : 0;
}

/* Sets key to v (taken; NULL removes it) under s->mu, unless that would take the store past
 * limit (0: none): then v is freed and RS_ELIMIT returned. */
static int put_locked(rs_shared *s, const char *key, size_t klen, rs_value *v, size_t limit)
{
    const rs_value *cur = rs_map_getn(s->map, key, klen);
    size_t before = entry_size(klen, cur);
    size_t after = entry_size(klen, v);
    if (v && limit && after > before &&
        (after - before > limit || s->bytes + after - before > limit)) {
        rs_value_destroy(v);
        return RS_ELIMIT;
    }
    int rc = v ? rs_map_setn(s->map, key, klen, v) : rs_map_remove(s->map, key, klen);
    if (rc == 0)
        s->bytes = s->bytes - before + after;
    return rc;
}

int rs_shared_create(rs_shared **out)
{
    if (!out)
        return RS_EMISUSE;
    *out = NULL;
    rs_shared *s = rs__calloc(1, sizeof *s);
    if (!s)
        return RS_ENOMEM;
    s->map = rs_value_map();
    if (!s->map || rs__mutex_init(&s->mu)) {
        rs_value_destroy(s->map);
        rs__free(s);
        return RS_ENOMEM;
    }
    atomic_init(&s->refs, 1);
    *out = s;
    return 0;
}

int rs__shared_create_remote(const rs__shared_ops *ops, void *ctx, rs_shared **out)
{
    int rc = rs_shared_create(out);
    if (rc)
        return rc;
    (*out)->ops = ops;
    (*out)->ctx = ctx;
    return 0;
}

rs_shared *rs__shared_retain(rs_shared *s)
{
    atomic_fetch_add(&s->refs, 1);
    return s;
}

void rs__shared_release(rs_shared *s)
{
    if (!s || atomic_fetch_sub(&s->refs, 1) != 1)
        return;
    if (s->ops)
        s->ops->free(s->ctx);
    rs__mutex_destroy(&s->mu);
    rs_value_destroy(s->map);
    rs__free(s);
}

int rs_shared_destroy(rs_shared *s)
{
    rs__shared_release(s);
    return 0;
}

int rs__shared_get(rs_shared *s, const char *key, size_t klen, rs_value **out)
{
    if (s->ops)
        return s->ops->get(s->ctx, key, klen, out);
    rs__mutex_lock(&s->mu);
    const rs_value *v = rs_map_getn(s->map, key, klen);
    *out = v ? rs_value_copy(v) : NULL;
    rs__mutex_unlock(&s->mu);
    if (!v)
        return RS_ENOENT;
    return *out ? 0 : RS_ENOMEM;
}

int rs__shared_put(rs_shared *s, const char *key, size_t klen, rs_value *v, size_t limit)
{
    if (s->ops) {
        int rc = s->ops->put(s->ctx, key, klen, v);
        rs_value_destroy(v);
        return rc;
    }
    rs__mutex_lock(&s->mu);
    int rc = put_locked(s, key, klen, v, limit);
    rs__mutex_unlock(&s->mu);
    return rc == RS_ENOENT ? 0 : rc;
}

int rs__shared_incr(rs_shared *s, const char *key, size_t klen, int64_t delta, int64_t *out,
                    size_t limit)
{
    if (s->ops)
        return s->ops->incr(s->ctx, key, klen, delta, out);
    int rc = 0;
    int64_t result = 0;
    rs__mutex_lock(&s->mu);
    rs_value *v = rs_map_getn(s->map, key, klen);
    if (v && rs_value_type(v) != RS_TINT) {
        rc = RS_EINVAL;
    } else if (__builtin_add_overflow(v ? rs_value_get_int(v) : 0, delta, &result)) {
        rc = RS_ERUNTIME;
    } else {
        rs_value *n = rs_value_int(result);
        rc = n ? put_locked(s, key, klen, n, limit) : RS_ENOMEM;
    }
    rs__mutex_unlock(&s->mu);
    if (!rc && out)
        *out = result;
    return rc;
}

int rs__shared_cas(rs_shared *s, const char *key, size_t klen, const rs_value *expected,
                   rs_value *v, bool *swapped, size_t limit)
{
    *swapped = false;
    if (s->ops) {
        int rc = s->ops->cas(s->ctx, key, klen, expected, v, swapped);
        rs_value_destroy(v);
        return rc;
    }
    int rc = 0;
    rs__mutex_lock(&s->mu);
    const rs_value *cur = rs_map_getn(s->map, key, klen);
    bool match = expected ? cur && rs_value_equal(cur, expected) : cur == NULL;
    if (match) {
        rc = put_locked(s, key, klen, v, limit);
        v = NULL;
        if (rc == RS_ENOENT)
            rc = 0;
        *swapped = rc == 0;
    }
    rs__mutex_unlock(&s->mu);
    rs_value_destroy(v);
    return rc;
}

int rs_shared_getn(rs_shared *s, const char *key, size_t keylen, rs_value **out)
{
    if (!s)
        return RS_EMISUSE;
    if (!key || !out)
        return RS_EINVAL;
    return rs__shared_get(s, key, keylen, out);
}

int rs_shared_get(rs_shared *s, const char *key, rs_value **out)
{
    return rs_shared_getn(s, key, key ? strlen(key) : 0, out);
}

int rs_shared_setn(rs_shared *s, const char *key, size_t keylen, const rs_value *value)
{
    if (!s)
        return RS_EMISUSE;
    if (!key)
        return RS_EINVAL;
    rs_value *v = NULL;
    if (value && !(v = rs_value_copy(value)))
        return RS_ENOMEM;
    return rs__shared_put(s, key, keylen, v, 0);
}

int rs_shared_set(rs_shared *s, const char *key, const rs_value *value)
{
    return rs_shared_setn(s, key, key ? strlen(key) : 0, value);
}

int rs_shared_incrn(rs_shared *s, const char *key, size_t keylen, int64_t delta, int64_t *out)
{
    if (!s)
        return RS_EMISUSE;
    if (!key)
        return RS_EINVAL;
    int rc = rs__shared_incr(s, key, keylen, delta, out, 0);
    return rc == RS_ERUNTIME ? RS_ELIMIT : rc; /* overflow */
}

int rs_shared_incr(rs_shared *s, const char *key, int64_t delta, int64_t *out)
{
    return rs_shared_incrn(s, key, key ? strlen(key) : 0, delta, out);
}

rs_value *rs_shared_keys(rs_shared *s)
{
    if (!s)
        return NULL;
    if (s->ops)
        return s->ops->keys(s->ctx);
    rs_value *keys = rs_value_array();
    rs__mutex_lock(&s->mu);
    size_t n = rs_map_len(s->map);
    for (size_t i = 0; keys && i < n; i++) {
        size_t klen;
        const char *k = rs_map_key(s->map, i, &klen);
        rs_value *kv = rs_value_stringn(k, klen);
        if (!kv || rs_array_push(keys, kv)) {
            rs_value_destroy(keys);
            keys = NULL;
        }
    }
    rs__mutex_unlock(&s->mu);
    return keys;
}
