/*
 * common.h -- internal helpers every module of the library uses: allocation through the
 * replaceable allocator, error-message formatting, small macros.
 */
#ifndef RS_COMMON_H
#define RS_COMMON_H

#include "runspace.h"

#include <stdarg.h>
#include <stddef.h>

#define RS__UNUSED(x) ((void)(x))
#define RS__ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

/* All library allocations go through these (rs_set_allocator). rs__malloc(0) returns a
 * unique pointer; failures return NULL and never abort. */
void *rs__malloc(size_t size);
void *rs__calloc(size_t count, size_t size);
void *rs__realloc(void *ptr, size_t size);
void rs__free(void *ptr);
char *rs__strdup(const char *s);
char *rs__strndup(const char *s, size_t len);
/* A new string formatted like vsnprintf, or NULL when out of memory. */
char *rs__vformat(const char *fmt, va_list ap);
char *rs__format(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* Fills err (which may be NULL) and returns code. */
int rs__errinfo_set(rs_errinfo *err, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* A handle's error message: a heap string replaced on each failure. set() formats into it
 * (keeping the old message when out of memory is the failure itself) and returns code. */
typedef struct rs__msg {
    char *text;
} rs__msg;
int rs__msg_set(rs__msg *m, int code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
int rs__msg_vset(rs__msg *m, int code, const char *fmt, va_list ap);
void rs__msg_clear(rs__msg *m);
void rs__msg_free(rs__msg *m);
const char *rs__msg_get(const rs__msg *m);

/* ---- growable byte buffer ---------------------------------------------------------------- */
typedef struct rs__buf {
    char *data; /* NUL-terminated after len bytes once anything was appended */
    size_t len;
    size_t cap;
} rs__buf;

int rs__buf_reserve(rs__buf *b, size_t extra); /* 0 or RS_ENOMEM */
int rs__buf_append(rs__buf *b, const void *bytes, size_t n);
int rs__buf_puts(rs__buf *b, const char *s);
int rs__buf_putc(rs__buf *b, char c);
int rs__buf_printf(rs__buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Hands the data (NUL-terminated, never NULL on success) to the caller and empties b. */
char *rs__buf_detach(rs__buf *b, size_t *len);
void rs__buf_free(rs__buf *b);

/* ---- fault injection for tests ------------------------------------------------------------
 * After n more successful allocations, every allocation fails until the countdown is reset
 * with a negative n (the default). Used by the tests of out-of-memory paths. Thread-safe. */
void rs__test_fail_allocations_after(long n);
/* For allocators built on top of the library's (the runspace arena): true when the countdown
 * says this allocation must fail. */
bool rs__alloc_should_fail(void);

#endif
