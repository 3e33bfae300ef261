/*
 * error.c -- error codes, their names and messages, the replaceable allocator, and the
 * per-handle message buffer.
 */
#include "common.h"

#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *rs_version(void)
{
    return RS_VERSION_STRING;
}

const char *rs_strerror(int code)
{
    switch (code) {
    case 0:
        return "success";
#define RS__ERRNO_TEXT(name, value, text)                                                          \
    case RS_##name:                                                                                \
        return text;
        RS_ERRNO_MAP(RS__ERRNO_TEXT)
#undef RS__ERRNO_TEXT
    default:
        return "unknown error";
    }
}

const char *rs_err_name(int code)
{
    switch (code) {
    case 0:
        return "RS_OK";
#define RS__ERRNO_NAME(name, value, text)                                                          \
    case RS_##name:                                                                                \
        return "RS_" #name;
        RS_ERRNO_MAP(RS__ERRNO_NAME)
#undef RS__ERRNO_NAME
    default:
        return "RS_E?";
    }
}

/* ---- allocator ---------------------------------------------------------------------------
 * The functions are read on every allocation, so they live in plain statics; rs_set_allocator
 * may only change them before the first allocation, which `used` records. */

static void *(*malloc_fn)(size_t) = malloc;
static void *(*realloc_fn)(void *, size_t) = realloc;
static void (*free_fn)(void *) = free;
static atomic_bool used;

int rs_set_allocator(void *(*m)(size_t), void *(*r)(void *, size_t), void (*f)(void *))
{
    if (!m || !r || !f)
        return RS_EINVAL;
    if (atomic_load(&used))
        return RS_EBUSY;
    malloc_fn = m;
    realloc_fn = r;
    free_fn = f;
    return 0;
}

static atomic_long fail_countdown = -1;

void rs__test_fail_allocations_after(long n)
{
    atomic_store(&fail_countdown, n);
}

/* Records that the allocator is in use, and answers the fault-injection countdown: true when
 * this allocation must fail. */
static inline bool begin_alloc(void)
{
    if (!atomic_load_explicit(&used, memory_order_relaxed))
        atomic_store(&used, true);
    long n = atomic_load_explicit(&fail_countdown, memory_order_relaxed);
    if (n < 0)
        return false;
    while (n > 0 && !atomic_compare_exchange_weak(&fail_countdown, &n, n - 1)) {
        if (n < 0)
            return false;
    }
    return n == 0;
}

bool rs__alloc_should_fail(void)
{
    return begin_alloc();
}

void *rs__malloc(size_t size)
{
    if (begin_alloc())
        return NULL;
    return malloc_fn(size ? size : 1);
}

void *rs__calloc(size_t count, size_t size)
{
    if (size && count > (size_t)-1 / size)
        return NULL;
    size_t bytes = count * size;
    void *p = rs__malloc(bytes);
    if (p && bytes)
        memset(p, 0, bytes);
    return p;
}

void *rs__realloc(void *ptr, size_t size)
{
    if (begin_alloc())
        return NULL;
    return realloc_fn(ptr, size ? size : 1);
}

void rs__free(void *ptr)
{
    if (ptr)
        free_fn(ptr);
}

void rs_free(void *ptr)
{
    rs__free(ptr);
}

char *rs__strndup(const char *s, size_t len)
{
    char *d = rs__malloc(len + 1);
    if (!d)
        return NULL;
    if (len)
        memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *rs__strdup(const char *s)
{
    return rs__strndup(s, strlen(s));
}

char *rs__vformat(const char *fmt, va_list ap)
{
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return NULL;
    char *buf = rs__malloc((size_t)n + 1);
    if (buf)
        vsnprintf(buf, (size_t)n + 1, fmt, ap);
    return buf;
}

char *rs__format(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    char *s = rs__vformat(fmt, ap);
    va_end(ap);
    return s;
}

int rs__errinfo_set(rs_errinfo *err, int code, const char *fmt, ...)
{
    if (err) {
        memset(err, 0, sizeof *err);
        err->code = code;
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(err->message, sizeof err->message, fmt, ap);
        va_end(ap);
    }
    return code;
}

/* ---- per-handle messages ----------------------------------------------------------------- */

int rs__msg_vset(rs__msg *m, int code, const char *fmt, va_list ap)
{
    char *text = rs__vformat(fmt, ap);
    if (text) {
        rs__free(m->text);
        m->text = text;
    } else if (!m->text || code != RS_ENOMEM) {
        /* No memory for the message: fall back to the static description of the code. */
        rs__free(m->text);
        m->text = NULL;
    }
    return code;
}

int rs__msg_set(rs__msg *m, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    rs__msg_vset(m, code, fmt, ap);
    va_end(ap);
    return code;
}

void rs__msg_clear(rs__msg *m)
{
    rs__free(m->text);
    m->text = NULL;
}

void rs__msg_free(rs__msg *m)
{
    rs__msg_clear(m);
}

const char *rs__msg_get(const rs__msg *m)
{
    return m && m->text ? m->text : "";
}
