/*
 * buf.c -- a growable byte buffer for building text (JSON, messages, tracebacks).
 */
#include "common.h"

#include <stdio.h>
#include <string.h>

int rs__buf_reserve(rs__buf *b, size_t extra)
{
    if (extra > (size_t)-1 - b->len - 1)
        return RS_ENOMEM;
    size_t need = b->len + extra + 1;
    if (need <= b->cap)
        return 0;
    size_t cap = b->cap ? b->cap : 64;
    while (cap < need)
        cap = cap > (size_t)-1 / 2 ? need : cap * 2;
    char *d = rs__realloc(b->data, cap);
    if (!d)
        return RS_ENOMEM;
    b->data = d;
    b->cap = cap;
    return 0;
}

int rs__buf_append(rs__buf *b, const void *bytes, size_t n)
{
    if (rs__buf_reserve(b, n))
        return RS_ENOMEM;
    if (n)
        memcpy(b->data + b->len, bytes, n);
    b->len += n;
    b->data[b->len] = '\0';
    return 0;
}

int rs__buf_puts(rs__buf *b, const char *s)
{
    return rs__buf_append(b, s, strlen(s));
}

int rs__buf_putc(rs__buf *b, char c)
{
    return rs__buf_append(b, &c, 1);
}

int rs__buf_printf(rs__buf *b, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    va_list ap2;
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap2);
    va_end(ap2);
    int rc = 0;
    if (n < 0 || rs__buf_reserve(b, (size_t)n)) {
        rc = RS_ENOMEM;
    } else {
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
        b->len += (size_t)n;
    }
    va_end(ap);
    return rc;
}

char *rs__buf_detach(rs__buf *b, size_t *len)
{
    if (!b->data && rs__buf_reserve(b, 0))
        return NULL;
    b->data[b->len] = '\0';
    char *d = b->data;
    if (len)
        *len = b->len;
    b->data = NULL;
    b->len = b->cap = 0;
    return d;
}

void rs__buf_free(rs__buf *b)
{
    rs__free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}
