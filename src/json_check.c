/*
 * json_check.c -- whether a text is one JSON value that rs_json_decode takes, checked
 * without building it: no allocation, one pass, a few bytes of state per nesting level.
 *
 * The journal needs it: a resume reads every record line of a journal that may hold ten
 * million of them, and must refuse the same lines that a full decode (runspace joblog)
 * refuses, without paying for a decode of each. The rules are those of rs_json_decode
 * (RFC 8259 through jansson, with \u0000 allowed): valid UTF-8 (no overlong forms, no
 * surrogates, nothing above U+10FFFF), no raw control characters in strings, \u escapes with
 * their surrogates paired, integers that fit in int64, reals that do not overflow a double,
 * at most RS_MAX_DEPTH nested containers, and nothing but blanks after the value. It is
 * stricter in one way: a raw NUL byte is refused wherever it stands (the decoder skips one
 * after a number, for instance), so what it takes the decoder takes, never the reverse.
 */
#include "json_check.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* Whether a byte may stand in a string as it is, without a closer look: printable ASCII
 * other than the quote and the backslash. */
static inline bool plain(unsigned ch)
{
    return ch >= 0x20 && ch < 0x80 && ch != '"' && ch != '\\';
}

typedef struct checker {
    const unsigned char *p, *end, *start;
    const char *what;
} checker;

static bool fail(checker *c, const char *what)
{
    c->what = what;
    return false;
}

static void skip_blanks(checker *c)
{
    while (c->p < c->end && (*c->p == ' ' || *c->p == '\t' || *c->p == '\n' || *c->p == '\r'))
        c->p++;
}

/* One UTF-8 sequence of two or more bytes at c->p (whose first byte is >= 0x80). */
static bool utf8_sequence(checker *c)
{
    const unsigned char *p = c->p;
    size_t left = (size_t)(c->end - p);
    unsigned b = p[0];
    size_t n;
    unsigned lo = 0x80, hi = 0xbf; /* the range of the second byte */
    if (b >= 0xc2 && b <= 0xdf) {
        n = 2;
    } else if (b >= 0xe0 && b <= 0xef) {
        n = 3;
        if (b == 0xe0)
            lo = 0xa0; /* overlong */
        else if (b == 0xed)
            hi = 0x9f; /* surrogates */
    } else if (b >= 0xf0 && b <= 0xf4) {
        n = 4;
        if (b == 0xf0)
            lo = 0x90; /* overlong */
        else if (b == 0xf4)
            hi = 0x8f; /* above U+10FFFF */
    } else {
        return fail(c, "a byte that is not valid UTF-8");
    }
    if (left < n || p[1] < lo || p[1] > hi)
        return fail(c, "a byte that is not valid UTF-8");
    for (size_t i = 2; i < n; i++) {
        if ((p[i] & 0xc0) != 0x80)
            return fail(c, "a byte that is not valid UTF-8");
    }
    c->p += n;
    return true;
}

/* Four hex digits at c->p, into *u. */
static bool hex4(checker *c, unsigned *u)
{
    if (c->end - c->p < 4)
        return fail(c, "a \\u escape cut short");
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        unsigned ch = c->p[i], d;
        if (ch >= '0' && ch <= '9')
            d = ch - '0';
        else if ((ch | 0x20) >= 'a' && (ch | 0x20) <= 'f')
            d = (ch | 0x20) - 'a' + 10;
        else
            return fail(c, "a \\u escape that is not four hex digits");
        v = v << 4 | d;
    }
    c->p += 4;
    *u = v;
    return true;
}

/* A string; c->p is at its opening quote. */
static bool string(checker *c)
{
    c->p++;
    for (;;) {
        const unsigned char *p = c->p, *end = c->end;
        while (p < end && plain(*p))
            p++;
        c->p = p;
        if (c->p == c->end)
            return fail(c, "a string that does not end");
        unsigned ch = *c->p;
        if (ch == '"') {
            c->p++;
            return true;
        }
        if (ch >= 0x80) {
            if (!utf8_sequence(c))
                return false;
            continue;
        }
        if (ch != '\\')
            return fail(c, "a control character in a string");
        c->p++;
        if (c->p == c->end)
            return fail(c, "a string that does not end");
        ch = *c->p++;
        if (strchr("\"\\/bfnrt", (int)ch) && ch)
            continue;
        if (ch != 'u')
            return fail(c, "an unknown escape in a string");
        unsigned u;
        if (!hex4(c, &u))
            return false;
        if (u >= 0xdc00 && u <= 0xdfff)
            return fail(c, "a \\u escape of a lone surrogate");
        if (u >= 0xd800 && u <= 0xdbff) {
            if (c->end - c->p < 2 || c->p[0] != '\\' || c->p[1] != 'u')
                return fail(c, "a \\u escape of a lone surrogate");
            c->p += 2;
            if (!hex4(c, &u))
                return false;
            if (u < 0xdc00 || u > 0xdfff)
                return fail(c, "a \\u escape of a lone surrogate");
        }
    }
}

/* (Loops keep the position in a local: c->p is written once, not per byte.) */
static bool digits(checker *c)
{
    const unsigned char *p = c->p, *end = c->end, *s = p;
    while (p < end && (unsigned)(*p - '0') < 10)
        p++;
    c->p = p;
    return p > s;
}

/* A number; c->p is at '-' or a digit. Integers must fit in int64 and reals in a double,
 * as rs_json_decode requires. */
static bool number(checker *c)
{
    const unsigned char *s = c->p;
    bool negative = *c->p == '-';
    if (negative)
        c->p++;
    const unsigned char *first = c->p;
    if (!digits(c))
        return fail(c, "a number without digits");
    if (*first == '0' && c->p - first > 1)
        return fail(c, "a number with a leading zero");
    size_t int_digits = (size_t)(c->p - first);
    bool real = false, exponent = false;
    if (c->p < c->end && *c->p == '.') {
        c->p++;
        real = true;
        if (!digits(c))
            return fail(c, "a number without digits after its point");
    }
    if (c->p < c->end && (*c->p == 'e' || *c->p == 'E')) {
        c->p++;
        real = exponent = true;
        if (c->p < c->end && (*c->p == '+' || *c->p == '-'))
            c->p++;
        if (!digits(c))
            return fail(c, "a number without digits in its exponent");
    }
    if (!real) {
        if (int_digits < 19)
            return true;
        if (int_digits > 19)
            return fail(c, "an integer that does not fit in 64 bits");
        /* 19 digits: compare with 9223372036854775807 (or ...808 when negative). */
        int cmp = memcmp(first, "9223372036854775807", 19);
        if (cmp > 0 && !(negative && memcmp(first, "9223372036854775808", 19) == 0))
            return fail(c, "an integer that does not fit in 64 bits");
        return true;
    }
    if (!exponent && int_digits <= 308)
        return true; /* below 10^309 without an exponent: cannot overflow */
    /* Rare: let strtod say (the text is copied, since it need not be NUL-terminated). */
    char buf[512];
    size_t n = (size_t)(c->p - s);
    if (n >= sizeof buf) { /* a long text: its magnitude is its digits before the point */
        return int_digits <= 308 ? true : fail(c, "a number too large for a double");
    }
    memcpy(buf, s, n);
    buf[n] = '\0';
    errno = 0;
    double d = strtod(buf, NULL);
    if (errno == ERANGE && (d > 1 || d < -1))
        return fail(c, "a number too large for a double");
    return true;
}

static bool literal(checker *c, const char *word, size_t n)
{
    if ((size_t)(c->end - c->p) < n || memcmp(c->p, word, n) != 0)
        return fail(c, "an unexpected word");
    c->p += n;
    return true;
}

/* An object's key and its colon, after blanks. */
static bool object_key(checker *c)
{
    skip_blanks(c);
    if (c->p == c->end || *c->p != '"')
        return fail(c, "an object key that is not a string");
    if (!string(c))
        return false;
    skip_blanks(c);
    if (c->p == c->end || *c->p != ':')
        return fail(c, "a ':' missing after an object key");
    c->p++;
    return true;
}

/* One value and what follows it up to the end of its innermost container, iteratively:
 * the kind of each open container (object or array) is a bit in `object`. */
static bool value(checker *c)
{
    uint64_t object[(RS_MAX_DEPTH + 63) / 64];
    int depth = 0;
    for (;;) {
        /* A value. */
        skip_blanks(c);
        if (c->p == c->end)
            return fail(c, "a value missing");
        switch (*c->p) {
        case '{':
        case '[': {
            bool obj = *c->p == '{';
            if (depth == RS_MAX_DEPTH)
                return fail(c, "nesting deeper than the decoder allows");
            uint64_t bit = (uint64_t)1 << (depth & 63);
            object[depth >> 6] = obj ? object[depth >> 6] | bit : object[depth >> 6] & ~bit;
            depth++;
            c->p++;
            skip_blanks(c);
            if (c->p < c->end && *c->p == (obj ? '}' : ']')) {
                c->p++;
                depth--;
                break; /* an empty container: a complete value */
            }
            if (obj && !object_key(c))
                return false;
            continue; /* its first value */
        }
        case '"':
            if (!string(c))
                return false;
            break;
        case 't':
            if (!literal(c, "true", 4))
                return false;
            break;
        case 'f':
            if (!literal(c, "false", 5))
                return false;
            break;
        case 'n':
            if (!literal(c, "null", 4))
                return false;
            break;
        default:
            if (*c->p != '-' && !(*c->p >= '0' && *c->p <= '9'))
                return fail(c, "an unexpected character");
            if (!number(c))
                return false;
            break;
        }
        /* After a complete value: close containers, or go on to the next item. */
        for (;;) {
            if (depth == 0)
                return true;
            bool obj = object[(depth - 1) >> 6] >> ((depth - 1) & 63) & 1;
            skip_blanks(c);
            if (c->p == c->end)
                return fail(c, obj ? "an object that does not end" : "an array that does not end");
            if (*c->p == (obj ? '}' : ']')) {
                c->p++;
                depth--;
                continue;
            }
            if (*c->p != ',')
                return fail(c, obj ? "a ',' or '}' missing in an object"
                                   : "a ',' or ']' missing in an array");
            c->p++;
            if (obj && !object_key(c))
                return false;
            break; /* the next value */
        }
    }
}

bool rs__json_check(const char *text, size_t len, size_t *at, const char **what)
{
    checker c = {.p = (const unsigned char *)text,
                 .end = (const unsigned char *)text + len,
                 .start = (const unsigned char *)text};
    bool ok = value(&c);
    if (ok) {
        skip_blanks(&c);
        if (c.p != c.end)
            ok = fail(&c, "more text after the value");
    }
    if (!ok) {
        if (at)
            *at = (size_t)(c.p - c.start);
        if (what)
            *what = c.what;
    }
    return ok;
}

bool rs__json_check_utf8(const char *text, size_t len, size_t *at)
{
    checker c = {.p = (const unsigned char *)text,
                 .end = (const unsigned char *)text + len,
                 .start = (const unsigned char *)text};
    while (c.p < c.end) {
        if (*c.p < 0x80)
            c.p++;
        else if (!utf8_sequence(&c))
            break;
    }
    if (c.p == c.end)
        return true;
    *at = (size_t)(c.p - c.start);
    return false;
}

bool rs__json_check_prefix(const char *text, size_t len, size_t *used)
{
    checker c = {.p = (const unsigned char *)text,
                 .end = (const unsigned char *)text + len,
                 .start = (const unsigned char *)text};
    /* Numbers and strings, most values of a journal's records, without value()'s setup. */
    unsigned first = len ? *c.p : 0;
    bool ok = first == '"'                                     ? string(&c)
              : first == '-' || (first >= '0' && first <= '9') ? number(&c)
                                                               : value(&c);
    if (!ok)
        return false;
    *used = (size_t)(c.p - c.start);
    return true;
}
