/*
 * json.c -- JSON text to and from rs_value.
 *
 * Decoding parses with jansson and converts its tree. Encoding writes the text straight from
 * the rs_value tree: jansson would need a json_t tree built for every value, and it prints
 * doubles with 17 significant digits (0.1 as 0.10000000000000001), where we want the
 * shortest text that reads back to the same double.
 *
 * Error positions follow jansson: `line` is 1-based, `position` counts the bytes read up to
 * and including the offending one (the text's length for errors at its end), and `column`
 * counts the bytes of its line up to that point (jansson counts characters; we count bytes,
 * as rs_errinfo promises).
 */
#include "json.h"
#include "value.h"

#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define STR_(x) #x
#define STR(x) STR_(x)
#define TOO_DEEP "nesting deeper than " STR(RS_MAX_DEPTH) " levels"

/* The length of the valid UTF-8 sequence at s (n > 0 bytes available) with its code point in
 * *cp, or 0 when the bytes there are not valid UTF-8: a stray continuation byte, a truncated
 * sequence, an overlong form, a surrogate or a code point beyond U+10FFFF. */
static size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp)
{
    uint32_t c = s[0], min;
    size_t len;
    if (c < 0x80) {
        *cp = c;
        return 1;
    } else if (c >= 0xc2 && c <= 0xdf) {
        len = 2, c &= 0x1f, min = 0x80;
    } else if (c >= 0xe0 && c <= 0xef) {
        len = 3, c &= 0x0f, min = 0x800;
    } else if (c >= 0xf0 && c <= 0xf4) {
        len = 4, c &= 0x07, min = 0x10000;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = c << 6 | (s[i] & 0x3f);
    }
    if (c < min || c > 0x10ffff || (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* ---- sizes ------------------------------------------------------------------------------- */

size_t rs__json_decode_cost(const char *text, size_t len)
{
    /* Every value but the first follows a ',', ':', '[' or '{' outside strings; each costs a
     * parser node and a value node (about 160 bytes with their slots), strings their bytes
     * twice. */
    size_t values = 1, string_bytes = 0;
    bool in_string = false;
    for (size_t i = 0; i < len; i++) {
        char c = text[i];
        if (in_string) {
            string_bytes++;
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == ',' || c == ':' || c == '[' || c == '{') {
            values++;
        }
    }
    return values * 160 + string_bytes * 2;
}

/* ---- encoding ---------------------------------------------------------------------------- */

/* Where the encoder is: the child at `index` of `container`, below `up`. The root value has
 * no path (NULL). Paths live in the encoder's stack frames and are only read on errors. */
typedef struct path {
    const struct path *up;
    const rs_value *container;
    size_t index;
} path;

/* One encoding: where the text goes, how it is laid out, and how error paths are named. */
typedef struct encoder {
    rs__buf *out;
    unsigned flags;
    const char *root;
    int index_base;
    rs_errinfo *err;
    /* Streaming (rs_json_encode_stream): out is a small buffer handed to sink whenever it
     * holds SINK_CHUNK bytes, and long runs of a string go to sink without a copy, so that
     * the text of a value never has to be in memory whole. NULL: all of it goes to out. */
    rs_json_sink_fn sink;
    void *sink_ud;
    bool repair; /* RS_JSON_REPAIR */
    /* Optional: called with the work done since its last call (a value, or a KiB of a
     * string, counting one) about every CHECK_WORK of it; a non-zero return ends the
     * encoding with that code. */
    rs__json_check_fn check;
    void *check_ud;
    uint64_t work;
} encoder;

/* Work between two calls of a check function. */
#define CHECK_WORK 1024

/* Counts work; calls the check function once enough was done. */
static inline int count_work(encoder *e, uint64_t work)
{
    if (!e->check || (e->work += work) < CHECK_WORK)
        return 0;
    uint64_t done = e->work;
    e->work = 0;
    return e->check(e->check_ud, done);
}

/* What a streaming encoder gathers before it hands text on. */
#define SINK_CHUNK ((size_t)64 << 10)

/* Hands what out holds to the sink; RS_ESTOPPED when the sink says stop. */
static int flush_sink(encoder *e)
{
    size_t n = e->out->len;
    e->out->len = 0;
    if (n && e->sink(e->out->data, n, e->sink_ud))
        return RS_ESTOPPED;
    return 0;
}

/* After text was appended: a streaming encoder hands on a full chunk. */
static inline int maybe_flush(encoder *e)
{
    return e->sink && e->out->len >= SINK_CHUNK ? flush_sink(e) : 0;
}

/* Appends s[0..n): a long piece goes straight to a streaming encoder's sink. */
static int emit(encoder *e, const char *s, size_t n)
{
    if (!e->sink || e->out->len + n < SINK_CHUNK)
        return rs__buf_append(e->out, s, n);
    int rc = flush_sink(e);
    if (!rc)
        rc = n >= SINK_CHUNK ? (e->sink(s, n, e->sink_ud) ? RS_ESTOPPED : 0)
                             : rs__buf_append(e->out, s, n);
    return rc;
}

/* Appends one byte: rs__buf_putc without the call, for the encoder's punctuation. */
static inline int put1(rs__buf *b, char c)
{
    if (b->len + 2 > b->cap && rs__buf_reserve(b, 1))
        return RS_ENOMEM;
    b->data[b->len++] = c;
    b->data[b->len] = '\0';
    return 0;
}

size_t rs__format_u64(char *out, uint64_t x)
{
    static const char pairs[] = "00010203040506070809101112131415161718192021222324252627282930"
                                "31323334353637383940414243444546474849505152535455565758596061"
                                "62636465666768697071727374757677787980818283848586878889909192"
                                "93949596979899";
    size_t n = 1;
    for (uint64_t t = x; t >= 10;) {
        if (t >= 10000) {
            t /= 10000;
            n += 4;
        } else {
            n += t >= 1000 ? 3 : t >= 100 ? 2 : 1;
            break;
        }
    }
    char *p = out + n;
    while (x >= 100) {
        unsigned k = (unsigned)(x % 100) * 2;
        x /= 100;
        *--p = pairs[k + 1];
        *--p = pairs[k];
    }
    if (x >= 10) {
        *--p = pairs[x * 2 + 1];
        *--p = pairs[x * 2];
    } else {
        *--p = (char)('0' + x);
    }
    return n;
}

/* Whether s looks like a Lua identifier ([A-Za-z_][A-Za-z0-9_]*), so that a path can
 * write it as .key. */
static bool is_identifier(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        bool alpha = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
        if (!alpha && (i == 0 || c < '0' || c > '9'))
            return false;
    }
    return len > 0;
}

/* Writes the path step from at->container to its child at->index into out (size >= 32
 * bytes, not NUL-terminated) and returns its length: [i], .key for a key that looks like a
 * Lua identifier, or ["key"] with \" \\ and \xHH escapes, cut short with "..." if long. */
static size_t format_step(const encoder *e, const path *at, char *out, size_t size)
{
    if (rs_value_type(at->container) == RS_TARRAY)
        return (size_t)snprintf(out, size, "[%lld]", (long long)at->index + e->index_base);
    size_t len;
    const char *key = rs_map_key(at->container, at->index, &len);
    if (is_identifier(key, len) && len < size) {
        out[0] = '.';
        memcpy(out + 1, key, len);
        return len + 1;
    }
    size_t n = 0;
    out[n++] = '[';
    out[n++] = '"';
    for (size_t i = 0; i < len;) {
        const unsigned char *p = (const unsigned char *)key + i;
        uint32_t cp = 0;
        size_t in = utf8_decode(p, len - i, &cp), m;
        char esc[8];
        if (in > 1 || (in == 1 && cp >= 0x20 && cp != 0x7f && cp != '"' && cp != '\\')) {
            memcpy(esc, p, in);
            m = in;
        } else if (in == 1 && (cp == '"' || cp == '\\')) {
            esc[0] = '\\';
            esc[1] = (char)cp;
            m = 2;
        } else {
            m = (size_t)snprintf(esc, sizeof esc, "\\x%02x", *p);
            in = 1;
        }
        /* Keep room for the closing `..."]`. */
        if (n + m + 5 > size) {
            memcpy(out + n, "...", 3);
            n += 3;
            break;
        }
        memcpy(out + n, esc, m);
        n += m;
        i += in;
    }
    out[n++] = '"';
    out[n++] = ']';
    return n;
}

/* Writes the path of `at` into out: the root name, then its steps. When they do not all fit,
 * the outer ones give way to "...": the inner ones say best where the problem is. */
static void format_path(const encoder *e, const path *at, char *out, size_t size)
{
    char tail[160];
    size_t start = sizeof tail;
    bool cut = false;
    for (; at; at = at->up) {
        char step[96];
        size_t n = format_step(e, at, step, sizeof step);
        if (n > start) {
            cut = true;
            break;
        }
        start -= n;
        memcpy(tail + start, step, n);
    }
    snprintf(out, size, "%s%s%.*s", e->root, cut ? "..." : "", (int)(sizeof tail - start),
             tail + start);
}

/* Reports that the value at `at` cannot be encoded, and returns RS_EVALUE. */
static int fail(const encoder *e, const path *at, const char *what)
{
    if (e->err) {
        char where[200];
        format_path(e, at, where, sizeof where);
        rs__errinfo_set(e->err, RS_EVALUE, "%s: %s", where, what);
    }
    return RS_EVALUE;
}

/* Appends the escape sequence for code point cp. */
static int put_escape(rs__buf *out, uint32_t cp)
{
    switch (cp) {
    case '"':
        return rs__buf_append(out, "\\\"", 2);
    case '\\':
        return rs__buf_append(out, "\\\\", 2);
    case '\b':
        return rs__buf_append(out, "\\b", 2);
    case '\f':
        return rs__buf_append(out, "\\f", 2);
    case '\n':
        return rs__buf_append(out, "\\n", 2);
    case '\r':
        return rs__buf_append(out, "\\r", 2);
    case '\t':
        return rs__buf_append(out, "\\t", 2);
    }
    /* By hand rather than printf: a string of control bytes is all escapes. */
    static const char hex[] = "0123456789abcdef";
    char u[12];
    size_t n = 0;
    uint32_t units[2] = {cp, 0};
    int count = 1;
    if (cp >= 0x10000) {
        cp -= 0x10000;
        units[0] = 0xd800 + (cp >> 10);
        units[1] = 0xdc00 + (cp & 0x3ff);
        count = 2;
    }
    for (int k = 0; k < count; k++) {
        u[n++] = '\\';
        u[n++] = 'u';
        for (int shift = 12; shift >= 0; shift -= 4)
            u[n++] = hex[(units[k] >> shift) & 0xf];
    }
    return rs__buf_append(out, u, n);
}

/* Appends s as a JSON string. Bytes that need no escape are copied in runs. Under
 * RS_JSON_REPAIR each byte that is not part of valid UTF-8 is written as U+FFFD. */
static int encode_string(encoder *e, const char *s, size_t len, const path *at, bool is_key)
{
    const unsigned char *p = (const unsigned char *)s;
    bool ascii = e->flags & RS_JSON_ASCII;
    int rc = e->sink ? 0 : rs__buf_reserve(e->out, len + 2);
    if (!rc)
        rc = put1(e->out, '"');
    size_t run = 0, next_check = 65536;
    for (size_t i = 0; !rc && i < len;) {
        if (i >= next_check) {
            /* A long string is work too: 64 per 64 KiB, so that a stop or timeout ends it. */
            next_check = i + 65536;
            if ((rc = count_work(e, 64)))
                break;
        }
        if (p[i] >= 0x20 && p[i] < 0x80 && p[i] != '"' && p[i] != '\\') {
            i++;
            continue;
        }
        uint32_t cp;
        size_t n = utf8_decode(p + i, len - i, &cp);
        if (!n && !e->repair)
            return fail(e, at, is_key ? "key is not valid UTF-8" : "string is not valid UTF-8");
        if (n && p[i] >= 0x80 && !ascii) {
            i += n;
            continue;
        }
        rc = emit(e, s + run, i - run);
        if (!rc)
            rc = n || ascii ? put_escape(e->out, n ? cp : 0xfffd)
                            : rs__buf_append(e->out, "\xef\xbf\xbd", 3);
        if (!rc)
            rc = maybe_flush(e);
        i += n ? n : 1;
        run = i;
    }
    if (!rc)
        rc = emit(e, s + run, len - run);
    return rc ? rc : put1(e->out, '"');
}

/* Whether d printed with `digits` significant digits (%g) into text (32 bytes) reads back to
 * the same bits. */
static bool round_trips(double d, int digits, char *text)
{
    snprintf(text, 32, "%.*g", digits, d);
    double back = strtod(text, NULL);
    return !memcmp(&back, &d, sizeof d);
}

/* Formats d, which is finite, into text (32 bytes): the fewest significant digits (%g, so no
 * trailing zeros) that read back to the same bits, always with a '.' or an exponent so that
 * it decodes as a double again.
 *
 * Reading back is monotonic in the number of digits (the nearest (p+1)-digit decimal is at
 * least as near as the nearest p-digit one, which is also a (p+1)-digit decimal), so the
 * fewest is found by bisection over 1..17; 17 always reads back. A normal double needs at
 * least 15 unless 15 print no more than the fewest (two 15-digit decimals are further apart
 * than its precision, so the 15-digit one is the fewest-digit one with zeros that %g drops):
 * 15 first is then both the answer and the common case. Subnormals carry fewer bits
 * (5e-324 is one), so they search from 1. */
static void format_double(double d, char *text)
{
    int lo = 1, hi = 17; /* the fewest is in lo..hi */
    if (fpclassify(d) != FP_SUBNORMAL) {
        if (round_trips(d, 15, text))
            hi = 0; /* done: text holds it */
        else
            lo = 16;
    }
    while (lo < hi) {
        int mid = lo + (hi - lo) / 2;
        if (round_trips(d, mid, text))
            hi = mid;
        else
            lo = mid + 1;
    }
    if (hi)
        snprintf(text, 32, "%.*g", hi, d);
    /* %g and strtod both use the locale's decimal point (possibly not one byte); JSON's is
     * '.'. It is whatever follows the sign and the integer digits, unless that is the
     * exponent. */
    char *point = text + strspn(text, "-0123456789");
    if (*point && *point != 'e') {
        size_t n = strcspn(point, "0123456789");
        *point = '.';
        memmove(point + 1, point + n, strlen(point + n) + 1);
    }
    if (!strpbrk(text, ".e"))
        strcat(text, ".0");
}

/* Appends a line break and the indentation of `depth` levels (pretty output). */
static int newline(encoder *e, int depth)
{
    size_t n = 1 + 2 * (size_t)depth;
    if (rs__buf_reserve(e->out, n))
        return RS_ENOMEM;
    char *p = e->out->data + e->out->len;
    p[0] = '\n';
    memset(p + 1, ' ', n - 1);
    e->out->len += n;
    e->out->data[e->out->len] = '\0';
    return 0;
}

static int encode_value(encoder *e, const rs_value *v, const path *at, int depth);
static rs_value *repaired_keys(const rs_value *map);
static bool keys_valid(const rs_value *map);

/* Appends the array or map v, whose opening bracket is at nesting level `level`. Recursion is
 * bounded: a container deeper than RS_MAX_DEPTH is refused before anything inside it. */
static int encode_container(encoder *e, const rs_value *v, const path *at, int level)
{
    if (level > RS_MAX_DEPTH)
        return fail(e, at, TOO_DEEP);
    bool is_map = rs_value_type(v) == RS_TMAP;
    bool pretty = e->flags & RS_JSON_PRETTY;
    size_t n = is_map ? rs_map_len(v) : rs_array_len(v);
    /* Under RS_JSON_REPAIR, a map with a key that is not UTF-8 is written with its keys
     * repaired and made unique (the rare path: only the keys are copied). */
    rs_value *keys = is_map && e->repair && !keys_valid(v) ? repaired_keys(v) : NULL;
    if (is_map && e->repair && !keys && !keys_valid(v))
        return RS_ENOMEM;
    int rc = put1(e->out, is_map ? '{' : '[');
    for (size_t i = 0; !rc && i < n; i++) {
        path step = {at, v, i};
        if (i)
            rc = put1(e->out, ',');
        if (!rc && pretty)
            rc = newline(e, level);
        if (!rc && is_map) {
            size_t keylen;
            const char *key = rs_map_key(keys ? keys : v, i, &keylen);
            rc = encode_string(e, key, keylen, &step, true);
            if (!rc)
                rc = pretty ? rs__buf_append(e->out, ": ", 2) : put1(e->out, ':');
        }
        if (!rc)
            rc = encode_value(e, is_map ? rs_map_value(v, i) : rs_array_get(v, i), &step, level);
        if (!rc)
            rc = maybe_flush(e);
    }
    rs_value_destroy(keys);
    if (!rc && n && pretty)
        rc = newline(e, level - 1);
    return rc ? rc : put1(e->out, is_map ? '}' : ']');
}

/* Appends v, which sits inside `depth` containers. */
static int encode_value(encoder *e, const rs_value *v, const path *at, int depth)
{
    int rc = count_work(e, 1);
    if (rc)
        return rc;
    switch (rs_value_type(v)) {
    case RS_TNULL:
        return rs__buf_append(e->out, "null", 4);
    case RS_TBOOL:
        return rs__buf_puts(e->out, rs_value_get_bool(v) ? "true" : "false");
    case RS_TINT: {
        /* By hand rather than printf: integers are the common case of bulk output. */
        int64_t x = rs_value_get_int(v);
        if (rs__buf_reserve(e->out, 21))
            return RS_ENOMEM;
        char *p = e->out->data + e->out->len;
        if (x < 0)
            *p++ = '-';
        p += rs__format_u64(p, x < 0 ? 0 - (uint64_t)x : (uint64_t)x);
        *p = '\0';
        e->out->len = (size_t)(p - e->out->data);
        return 0;
    }
    case RS_TDOUBLE: {
        double d = rs_value_get_double(v);
        if (!isfinite(d) && e->repair)
            return rs__buf_append(e->out, "null", 4);
        if (isnan(d))
            return fail(e, at, "NaN cannot be represented in JSON");
        if (isinf(d))
            return fail(e, at, "infinity cannot be represented in JSON");
        char text[32];
        format_double(d, text);
        return rs__buf_puts(e->out, text);
    }
    case RS_TSTRING: {
        size_t len;
        const char *s = rs_value_get_string(v, &len);
        return encode_string(e, s, len, at, false);
    }
    default:
        return encode_container(e, v, at, depth + 1);
    }
}

/* ---- repair (RS_JSON_REPAIR) -------------------------------------------------------------- */

/* s[0..len) with each byte that is not part of valid UTF-8 replaced by U+FFFD, in a new
 * NUL-terminated string with room for `extra` more bytes; *out_len gets its length. NULL
 * when out of memory. */
static char *utf8_repair(const char *s, size_t len, size_t extra, size_t *out_len)
{
    if (len > (SIZE_MAX - 1 - extra) / 3)
        return NULL;
    char *r = rs__malloc(3 * len + extra + 1);
    if (!r)
        return NULL;
    const unsigned char *p = (const unsigned char *)s;
    size_t n = 0;
    for (size_t i = 0; i < len;) {
        uint32_t cp;
        size_t k = utf8_decode(p + i, len - i, &cp);
        if (k) {
            memcpy(r + n, s + i, k);
            n += k;
            i += k;
        } else {
            memcpy(r + n, "\xef\xbf\xbd", 3);
            n += 3;
            i++;
        }
    }
    r[n] = '\0';
    *out_len = n;
    return r;
}

static bool utf8_valid(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    uint32_t cp;
    for (size_t i = 0, n; i < len; i += n) {
        if (p[i] < 0x80) {
            n = 1;
            continue;
        }
        if (!(n = utf8_decode(p + i, len - i, &cp)))
            return false;
    }
    return true;
}

/* Whether every key of map is valid UTF-8. */
static bool keys_valid(const rs_value *map)
{
    for (size_t i = 0; i < rs_map_len(map); i++) {
        size_t klen;
        const char *key = rs_map_key(map, i, &klen);
        if (!utf8_valid(key, klen))
            return false;
    }
    return true;
}

/* The keys of map as RS_JSON_REPAIR writes them, in a new map of the same length whose keys
 * are those (values null), or NULL when out of memory: each byte of a key that is not part of
 * valid UTF-8 becomes U+FFFD, and a repaired key that reads as another key of map, or as one
 * repaired before it, gets more U+FFFD until it is unique. */
static rs_value *repaired_keys(const rs_value *map)
{
    rs_value *m = rs_value_map();
    for (size_t i = 0; m && i < rs_map_len(map); i++) {
        size_t klen;
        const char *key = rs_map_key(map, i, &klen);
        char *fixed = NULL;
        if (!utf8_valid(key, klen)) {
            /* Room for the U+FFFDs that make it unique: each one added gets past a key of
             * map or of m, and they have at most 2 x len(map) keys. */
            fixed = utf8_repair(key, klen, 6 * rs_map_len(map), &klen);
            if (!fixed) {
                rs_value_destroy(m);
                return NULL;
            }
            while (rs_map_getn(map, fixed, klen) || rs_map_getn(m, fixed, klen)) {
                memcpy(fixed + klen, "\xef\xbf\xbd", 3);
                klen += 3;
            }
            key = fixed;
        }
        if (rs_map_setn(m, key, klen, rs_value_null())) {
            rs_value_destroy(m);
            m = NULL;
        }
        rs__free(fixed);
    }
    return m;
}

/* Whether v holds a container deeper than RS_MAX_DEPTH, counting `level` above it: checked
 * before a streaming encoder writes anything, since it cannot take text back. */
static bool too_deep(const rs_value *v, int level)
{
    rs_type t = rs_value_type(v);
    if (t != RS_TARRAY && t != RS_TMAP)
        return false;
    if (level + 1 > RS_MAX_DEPTH)
        return true;
    size_t n = t == RS_TMAP ? rs_map_len(v) : rs_array_len(v);
    for (size_t i = 0; i < n; i++) {
        if (too_deep(t == RS_TMAP ? rs_map_value(v, i) : rs_array_get(v, i), level + 1))
            return true;
    }
    return false;
}

int rs__json_encode_ex(const rs_value *v, unsigned flags, const char *root, int index_base,
                       rs__buf *out, rs_errinfo *err)
{
    return rs__json_encode_checked(v, flags, root, index_base, out, err, NULL, NULL);
}

int rs__json_encode_checked(const rs_value *v, unsigned flags, const char *root, int index_base,
                            rs__buf *out, rs_errinfo *err, rs__json_check_fn check, void *ud)
{
    if (!v || !out)
        return rs__errinfo_set(err, RS_EINVAL, "no value or no buffer to encode into");
    if (flags & ~(unsigned)(RS_JSON_PRETTY | RS_JSON_ASCII | RS_JSON_REPAIR))
        return rs__errinfo_set(err, RS_EINVAL, "unknown JSON flags 0x%x", flags);
    encoder e = {.out = out,
                 .flags = flags & ~(unsigned)RS_JSON_REPAIR,
                 .root = root ? root : "value",
                 .index_base = index_base,
                 .err = err,
                 .repair = (flags & RS_JSON_REPAIR) != 0,
                 .check = check,
                 .check_ud = ud};
    size_t start = out->len;
    int rc = encode_value(&e, v, NULL, 0);
    if (rc) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
        if (rc == RS_ENOMEM)
            rs__errinfo_set(err, RS_ENOMEM, "out of memory");
    }
    return rc;
}

int rs_json_encode_stream(const rs_value *v, unsigned flags, rs_json_sink_fn sink, void *userdata,
                          rs_errinfo *err)
{
    if (!v || !sink)
        return rs__errinfo_set(err, RS_EINVAL, "no value or no sink to encode into");
    if (flags & ~(unsigned)(RS_JSON_PRETTY | RS_JSON_ASCII | RS_JSON_REPAIR))
        return rs__errinfo_set(err, RS_EINVAL, "unknown JSON flags 0x%x", flags);
    if (too_deep(v, 0)) {
        encoder probe = {.root = "value", .err = err};
        return fail(&probe, NULL, TOO_DEEP);
    }
    rs__buf buf = {0};
    encoder e = {.out = &buf,
                 .flags = flags & ~(unsigned)RS_JSON_REPAIR,
                 .root = "value",
                 .err = err,
                 .sink = sink,
                 .sink_ud = userdata,
                 .repair = (flags & RS_JSON_REPAIR) != 0};
    int rc = rs__buf_reserve(&buf, SINK_CHUNK + 64);
    if (!rc)
        rc = encode_value(&e, v, NULL, 0);
    if (!rc)
        rc = flush_sink(&e);
    rs__buf_free(&buf);
    if (rc == RS_ENOMEM)
        rs__errinfo_set(err, RS_ENOMEM, "out of memory");
    else if (rc == RS_ESTOPPED)
        rs__errinfo_set(err, RS_ESTOPPED, "the sink stopped the encoding");
    return rc;
}

int rs__json_encode_text(rs__buf *out, const char *s, size_t len)
{
    encoder e = {.out = out, .root = "text"};
    size_t start = out->len;
    int rc;
    if (utf8_valid(s, len)) {
        rc = encode_string(&e, s, len, NULL, false);
    } else {
        size_t fixed_len;
        char *fixed = utf8_repair(s, len, 0, &fixed_len);
        rc = fixed ? encode_string(&e, fixed, fixed_len, NULL, false) : RS_ENOMEM;
        rs__free(fixed);
    }
    if (rc) {
        out->len = start;
        if (out->data)
            out->data[start] = '\0';
    }
    return rc;
}

/* rs__json_encode_ex into a buffer of the caller's own, with the C naming of paths. */
int rs_json_encode(const rs_value *v, unsigned flags, char **out, size_t *len, rs_errinfo *err)
{
    if (!out)
        return rs__errinfo_set(err, RS_EINVAL, "no place for the output");
    *out = NULL;
    if (len)
        *len = 0;
    rs__buf buf = {0};
    int rc = rs__json_encode_ex(v, flags, "value", 0, &buf, err);
    if (!rc)
        *out = rs__buf_detach(&buf, len);
    rs__buf_free(&buf);
    return rc;
}

/* ---- decoding ---------------------------------------------------------------------------- */

/* A decoding's check function and what it said (see rs__json_decode_checked). */
typedef struct checker {
    rs__json_check_fn check;
    void *ud;
    uint64_t work;
    int why;
} checker;

static int check_work(checker *c, uint64_t work)
{
    if (!c || !c->check || (c->work += work) < CHECK_WORK)
        return 0;
    uint64_t done = c->work;
    c->work = 0;
    return c->why = c->check(c->ud, done);
}

/* Converts jansson's j, which sits inside `depth` containers, into *out. Returns 0,
 * RS_ENOMEM, RS_EJSON when containers nest deeper than RS_MAX_DEPTH, or what c's check
 * function returned. */
static int from_jansson(json_t *j, int depth, rs_value **out, checker *c)
{
    rs_value *v = NULL;
    int rc = check_work(c, 1);
    if (rc)
        return rc;
    switch (json_typeof(j)) {
    case JSON_NULL:
        v = rs_value_null();
        break;
    case JSON_TRUE:
    case JSON_FALSE:
        v = rs_value_bool(json_is_true(j));
        break;
    case JSON_INTEGER:
        v = rs_value_int(json_integer_value(j));
        break;
    case JSON_REAL:
        v = rs_value_double(json_real_value(j));
        break;
    case JSON_STRING:
        v = rs_value_stringn(json_string_value(j), json_string_length(j));
        break;
    case JSON_ARRAY:
        if (depth >= RS_MAX_DEPTH)
            return RS_EJSON;
        if ((v = rs_value_array()) && !(rc = rs__array_reserve(v, json_array_size(j)))) {
            for (size_t i = 0; !rc && i < json_array_size(j); i++) {
                rs_value *item;
                if (!(rc = from_jansson(json_array_get(j, i), depth + 1, &item, c)))
                    rc = rs_array_push(v, item);
            }
        }
        break;
    case JSON_OBJECT:
        if (depth >= RS_MAX_DEPTH)
            return RS_EJSON;
        if ((v = rs_value_map()) && !(rc = rs__map_reserve(v, json_object_size(j)))) {
            for (void *it = json_object_iter(j); !rc && it; it = json_object_iter_next(j, it)) {
                rs_value *item;
                if (!(rc = from_jansson(json_object_iter_value(it), depth + 1, &item, c)))
                    rc = rs_map_setn(v, json_object_iter_key(it), json_object_iter_key_len(it),
                                     item);
            }
        }
        break;
    }
    if (!rc && !v)
        rc = RS_ENOMEM;
    if (rc) {
        rs_value_destroy(v);
        return rc;
    }
    *out = v;
    return 0;
}

/* Sets the line, column and position of err for the byte before text + pos (see the top of
 * the file), taking the line from the caller. */
static void set_location(rs_errinfo *err, const char *text, size_t pos, int line)
{
    if (!err)
        return;
    size_t line_start = pos;
    while (line_start > 0 && text[line_start - 1] != '\n')
        line_start--;
    err->line = line;
    err->column = (int)(pos - line_start);
    err->position = pos;
}

/* Looks in text[0..end) for a bracket that opens nesting level RS_MAX_DEPTH + 1, skipping
 * strings, and reports it in err. Only error paths pay for this scan. */
static bool find_too_deep(const char *text, size_t end, rs_errinfo *err)
{
    int depth = 0, line = 1;
    bool in_string = false;
    for (size_t i = 0; i < end; i++) {
        char c = text[i];
        if (c == '\n')
            line++;
        if (in_string) {
            if (c == '\\')
                i++;
            else if (c == '"')
                in_string = false;
        } else if (c == '"') {
            in_string = true;
        } else if (c == '[' || c == '{') {
            if (++depth > RS_MAX_DEPTH) {
                rs__errinfo_set(err, RS_EJSON, TOO_DEEP);
                set_location(err, text, i + 1, line);
                return true;
            }
        } else if (c == ']' || c == '}') {
            depth--;
        }
    }
    return false;
}

/* Turns jansson's error into ours. Nesting too deep takes precedence when it occurs before
 * the error jansson found (jansson's own limit is deeper than ours). */
static int decode_error(const char *text, size_t len, const json_error_t *je, rs_errinfo *err)
{
    enum json_error_code code = json_error_code(je);
    if (code == json_error_out_of_memory)
        return rs__errinfo_set(err, RS_ENOMEM, "out of memory");
    size_t pos = je->position > 0 ? (size_t)je->position : 0;
    pos = pos < len ? pos : len;
    if (find_too_deep(text, pos, err))
        return RS_EJSON;
    /* jansson has not counted the byte it could not decode. */
    if (code == json_error_invalid_utf8 && pos < len)
        pos++;
    rs__errinfo_set(err, RS_EJSON, "%s", je->text);
    set_location(err, text, pos, je->line);
    return RS_EJSON;
}

/* Feeds the text to jansson in the pieces it asks for (1 KiB), counting a unit of work for
 * each, so that a check function can end the parse of a long text. */
typedef struct feed {
    const char *text;
    size_t len, pos;
    checker *c;
} feed;

static size_t feed_piece(void *buffer, size_t size, void *data)
{
    feed *f = data;
    if (check_work(f->c, 1))
        return (size_t)-1;
    size_t n = f->len - f->pos < size ? f->len - f->pos : size;
    memcpy(buffer, f->text + f->pos, n);
    f->pos += n;
    return n;
}

int rs__json_decode_checked(const char *text, size_t len, rs_value **out, rs_errinfo *err,
                            rs__json_check_fn check, void *ud)
{
    if (!out || (!text && len))
        return rs__errinfo_set(err, RS_EINVAL, "no text to decode or no place for the value");
    *out = NULL;
    if (!text)
        text = "";
    checker c = {check, ud, 0, 0};
    json_error_t je;
    json_t *j;
    if (check) {
        feed f = {text, len, 0, &c};
        j = json_load_callback(feed_piece, &f, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
        if (!j && c.why)
            return c.why;
    } else {
        j = json_loadb(text, len, JSON_DECODE_ANY | JSON_ALLOW_NUL, &je);
    }
    if (!j)
        return decode_error(text, len, &je, err);
    int rc = from_jansson(j, 0, out, check ? &c : NULL);
    json_decref(j);
    if (rc == RS_EJSON)
        find_too_deep(text, len, err); /* the tree is too deep, so the scan finds where */
    else if (rc == RS_ENOMEM)
        rs__errinfo_set(err, RS_ENOMEM, "out of memory");
    return rc;
}

int rs_json_decode(const char *text, size_t len, rs_value **out, rs_errinfo *err)
{
    return rs__json_decode_checked(text, len, out, err, NULL, NULL);
}
