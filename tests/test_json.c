/*
 * test_json.c -- JSON encoding and decoding: exact texts, round trips of numbers and strings,
 * every decode error with its location, depth limits, error paths, and out-of-memory paths.
 */
#include "harness.h"
#include "json.h"

#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- helpers ----------------------------------------------------------------------------- */

/* Encodes v with flags and checks the text. */
static void assert_encodes(const rs_value *v, unsigned flags, const char *want)
{
    char *text = NULL;
    size_t len = 0;
    rs_errinfo err;
    int rc = rs_json_encode(v, flags, &text, &len, &err);
    if (rc)
        fail_msg("encoding failed: %s (%s)", rs_err_name(rc), err.message);
    assert_string_equal(text, want);
    assert_int_equal(len, strlen(want));
    rs_free(text);
}

/* Decodes text (without its NUL), asserting success. */
static rs_value *decode(const char *text)
{
    rs_value *v = NULL;
    rs_errinfo err;
    int rc = rs_json_decode(text, strlen(text), &v, &err);
    if (rc)
        fail_msg("decoding '%s' failed: %s (%s)", text, rs_err_name(rc), err.message);
    return v;
}

/* Encodes v expecting RS_EVALUE with exactly this message. */
static void assert_encode_fails(const rs_value *v, const char *message)
{
    char *text = (char *)"untouched";
    rs_errinfo err;
    assert_rs(RS_EVALUE, rs_json_encode(v, 0, &text, NULL, &err));
    assert_null(text);
    assert_int_equal(err.code, RS_EVALUE);
    assert_string_equal(err.message, message);
}

/* n nested arrays around 0, as text. */
static char *nested_arrays(int n)
{
    char *s = malloc(2 * (size_t)n + 2);
    memset(s, '[', (size_t)n);
    s[n] = '0';
    memset(s + n + 1, ']', (size_t)n);
    s[2 * n + 1] = '\0';
    return s;
}

/* n nested single-member objects {"a":...} around 0, as text. */
static char *nested_objects(int n)
{
    char *s = malloc(6 * (size_t)n + 2), *p = s;
    for (int i = 0; i < n; i++)
        p += sprintf(p, "{\"a\":");
    *p++ = '0';
    memset(p, '}', (size_t)n);
    p[n] = '\0';
    return s;
}

/* The tree {"s":"x\u00e9","n":[1,-2.5,true,null],"m":{"k":[{}]}} built through the API. */
static rs_value *sample(void)
{
    rs_value *v = rs_value_map(), *n = rs_value_array(), *m = rs_value_map();
    rs_value *k = rs_value_array();
    assert_ok(rs_map_set(v, "s", rs_value_string("x\xc3\xa9")));
    assert_ok(rs_array_push(n, rs_value_int(1)));
    assert_ok(rs_array_push(n, rs_value_double(-2.5)));
    assert_ok(rs_array_push(n, rs_value_bool(true)));
    assert_ok(rs_array_push(n, rs_value_null()));
    assert_ok(rs_map_set(v, "n", n));
    assert_ok(rs_array_push(k, rs_value_map()));
    assert_ok(rs_map_set(m, "k", k));
    assert_ok(rs_map_set(v, "m", m));
    return v;
}

#define SAMPLE_TEXT "{\"s\":\"x\xc3\xa9\",\"n\":[1,-2.5,true,null],\"m\":{\"k\":[{}]}}"

/* ---- encoding ---------------------------------------------------------------------------- */

static void test_encode_compact(void **state)
{
    rs_value *v = rs_value_map(), *b = rs_value_array();
    assert_ok(rs_map_set(v, "a", rs_value_int(1)));
    assert_ok(rs_array_push(b, rs_value_bool(true)));
    assert_ok(rs_array_push(b, rs_value_null()));
    assert_ok(rs_array_push(b, rs_value_string("x")));
    assert_ok(rs_map_set(v, "b", b));
    assert_encodes(v, 0, "{\"a\":1,\"b\":[true,null,\"x\"]}");
    rs_value_destroy(v);

    v = sample();
    assert_encodes(v, 0, SAMPLE_TEXT);
    rs_value_destroy(v);

    assert_encodes(rs_value_null(), 0, "null");
    assert_encodes(rs_value_bool(true), 0, "true");
    assert_encodes(rs_value_bool(false), 0, "false");
    v = rs_value_array();
    assert_encodes(v, 0, "[]");
    assert_encodes(v, RS_JSON_PRETTY, "[]");
    rs_value_destroy(v);
    v = rs_value_map();
    assert_encodes(v, 0, "{}");
    rs_value_destroy(v);
    v = rs_value_int(-7);
    assert_encodes(v, RS_JSON_PRETTY, "-7");
    rs_value_destroy(v);
}

static void test_encode_pretty(void **state)
{
    rs_value *v = sample();
    assert_encodes(v, RS_JSON_PRETTY,
                   "{\n"
                   "  \"s\": \"x\xc3\xa9\",\n"
                   "  \"n\": [\n"
                   "    1,\n"
                   "    -2.5,\n"
                   "    true,\n"
                   "    null\n"
                   "  ],\n"
                   "  \"m\": {\n"
                   "    \"k\": [\n"
                   "      {}\n"
                   "    ]\n"
                   "  }\n"
                   "}");
    assert_encodes(v, RS_JSON_PRETTY | RS_JSON_ASCII,
                   "{\n"
                   "  \"s\": \"x\\u00e9\",\n"
                   "  \"n\": [\n"
                   "    1,\n"
                   "    -2.5,\n"
                   "    true,\n"
                   "    null\n"
                   "  ],\n"
                   "  \"m\": {\n"
                   "    \"k\": [\n"
                   "      {}\n"
                   "    ]\n"
                   "  }\n"
                   "}");
    rs_value_destroy(v);
}

static void test_encode_strings(void **state)
{
    /* RFC 8259 escapes; '/' and DEL are left alone. */
    rs_value *v = rs_value_stringn("a\"b\\c/d\b\f\n\r\t\x01\x1f\x7f\0e", 17);
    assert_encodes(v, 0, "\"a\\\"b\\\\c/d\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\\u0000e\"");
    rs_value_destroy(v);

    /* Valid UTF-8 passes through, or becomes \u escapes (with surrogate pairs) under ASCII. */
    const char *u = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80\xf4\x8f\xbf\xbf";
    v = rs_value_map();
    assert_ok(rs_map_set(v, u, rs_value_string(u)));
    char want[64];
    snprintf(want, sizeof want, "{\"%s\":\"%s\"}", u, u);
    assert_encodes(v, 0, want);
    assert_encodes(v, RS_JSON_ASCII,
                   "{\"\\u00e9\\u20ac\\ud83d\\ude00\\udbff\\udfff\":"
                   "\"\\u00e9\\u20ac\\ud83d\\ude00\\udbff\\udfff\"}");

    /* Both forms decode back to the same value. */
    rs_value *back = decode(want);
    assert_true(rs_value_equal(v, back));
    rs_value_destroy(back);
    back = decode("{\"\\u00e9\\u20ac\\ud83d\\ude00\\udbff\\udfff\":"
                  "\"\\u00E9\\u20AC\\uD83D\\uDE00\\uDBFF\\uDFFF\"}");
    assert_true(rs_value_equal(v, back));
    rs_value_destroy(back);
    rs_value_destroy(v);
}

static void test_encode_repair(void **state)
{
    (void)state;
    /* Without the flag, NaN and bytes that are not UTF-8 are errors; with it, they are
     * repaired one by one and the rest stays: NaN and infinities as null, bad bytes as
     * U+FFFD, and repaired keys that meet other keys made unique with more U+FFFD. */
    rs_value *v = rs_value_array();
    assert_ok(rs_array_push(v, rs_value_int(1)));
    assert_ok(rs_array_push(v, rs_value_double(0.0 / 0.0)));
    assert_ok(rs_array_push(v, rs_value_stringn("a\xff"
                                                "b",
                                                3)));
    assert_ok(rs_array_push(v, rs_value_double(-1.0 / 0.0)));
    rs_value *m = rs_value_map();
    assert_ok(rs_map_setn(m, "\xff", 1, rs_value_int(1)));
    assert_ok(rs_map_setn(m, "\xfe", 1, rs_value_int(2)));
    assert_ok(rs_map_set(m, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", rs_value_double(2.5)));
    assert_ok(rs_array_push(v, m));
    char *text = NULL;
    rs_errinfo err;
    assert_rs(RS_EVALUE, rs_json_encode(v, 0, &text, NULL, &err));
    assert_null(text);
    assert_encodes(v, RS_JSON_REPAIR,
                   "[1,null,\"a\xef\xbf\xbd"
                   "b\",null,{\"\xef\xbf\xbd\":1,"
                   "\"\xef\xbf\xbd\xef\xbf\xbd\":2,"
                   "\"\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\":2.5}]");
    /* The value itself is left as it was. */
    assert_true(isnan(rs_value_get_double(rs_array_get(v, 1))));
    /* A value JSON can carry encodes the same with or without the flag. */
    rs_value *fine = rs_value_string("ok");
    assert_encodes(fine, RS_JSON_REPAIR, "\"ok\"");
    rs_value_destroy(fine);
    rs_value_destroy(v);
}

/* What a sink of rs_json_encode_stream received: the text, the number of pieces, the
 * largest piece; it asks to stop after stop_after pieces (0: never). */
typedef struct collected {
    char *text;
    size_t len, pieces, largest, stop_after;
} collected;

static int collect(const char *data, size_t len, void *ud)
{
    collected *c = ud;
    assert_true(len > 0);
    c->text = realloc(c->text, c->len + len + 1);
    memcpy(c->text + c->len, data, len);
    c->len += len;
    c->text[c->len] = '\0';
    c->pieces++;
    if (len > c->largest)
        c->largest = len;
    return c->stop_after && c->pieces >= c->stop_after;
}

/* The streamed text is rs_json_encode's, for every flag. */
static void assert_streams_same(const rs_value *v, unsigned flags)
{
    char *whole = NULL;
    size_t len;
    assert_ok(rs_json_encode(v, flags, &whole, &len, NULL));
    collected c = {0};
    assert_ok(rs_json_encode_stream(v, flags, collect, &c, NULL));
    assert_int_equal(c.len, len);
    assert_memory_equal(c.text, whole, len);
    free(c.text);
    rs_free(whole);
}

static void test_encode_stream(void **state)
{
    (void)state;
    rs_value *v = sample();
    for (unsigned f = 0; f < 8; f++)
        assert_streams_same(v, f);
    rs_value_destroy(v);
    /* Repairs are made as the text goes (the keys of a map made unique as before). */
    v = rs_value_array();
    assert_ok(rs_array_push(v, rs_value_double(0.0 / 0.0)));
    assert_ok(rs_array_push(v, rs_value_stringn("a\xff\xc3", 3)));
    rs_value *m = rs_value_map();
    assert_ok(rs_map_setn(m, "\xff", 1, rs_value_int(1)));
    assert_ok(rs_map_setn(m, "\xfe", 1, rs_value_double(1.0 / 0.0)));
    assert_ok(rs_map_set(m, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd", rs_value_int(3)));
    assert_ok(rs_array_push(v, m));
    assert_streams_same(v, RS_JSON_REPAIR);
    assert_streams_same(v, RS_JSON_REPAIR | RS_JSON_ASCII | RS_JSON_PRETTY);
    collected c = {0};
    assert_rs(RS_EVALUE, rs_json_encode_stream(v, 0, collect, &c, NULL)); /* NaN, at once */
    assert_int_equal(c.len, 0);
    rs_value_destroy(v);
    /* A large value goes in pieces of about 64 KiB (a long run of plain bytes in one), never
     * as one text: 2 MB of control bytes (12 MB of escapes) and many small values. */
    char *ctl = malloc(2 << 20);
    memset(ctl, 1, 2 << 20);
    v = rs_value_array();
    assert_ok(rs_array_push(v, rs_value_stringn(ctl, 2 << 20)));
    memset(ctl, 'a', 2 << 20);
    assert_ok(rs_array_push(v, rs_value_stringn(ctl, 2 << 20)));
    for (int i = 0; i < 100000; i++)
        assert_ok(rs_array_push(v, rs_value_int(i)));
    free(ctl);
    assert_ok(rs_json_encode_stream(v, RS_JSON_REPAIR, collect, &c, NULL));
    assert_true(c.pieces > 12 * 16);
    assert_int_equal(c.largest, 2 << 20); /* the run of 'a', passed without a copy */
    size_t escapes_end = 2 + 6 * ((size_t)2 << 20) + 1;
    assert_memory_equal(c.text + escapes_end - 7, "\\u0001\"", 7);
    free(c.text);
    assert_streams_same(v, 0);
    /* A sink that says stop ends the encoding there. */
    c = (collected){.stop_after = 3};
    rs_errinfo err;
    assert_rs(RS_ESTOPPED, rs_json_encode_stream(v, 0, collect, &c, &err));
    assert_int_equal(c.pieces, 3);
    free(c.text);
    rs_value_destroy(v);
    /* Nesting too deep is refused before any text. */
    v = rs_value_int(0);
    for (int i = 0; i < RS_MAX_DEPTH + 1; i++) {
        rs_value *a = rs_value_array();
        assert_ok(rs_array_push(a, v));
        v = a;
    }
    c = (collected){0};
    assert_rs(RS_EVALUE, rs_json_encode_stream(v, RS_JSON_REPAIR, collect, &c, &err));
    assert_int_equal(c.pieces, 0);
    assert_contains(err.message, "nesting deeper than 512 levels");
    rs_value_destroy(v);
    assert_rs(RS_EINVAL, rs_json_encode_stream(NULL, 0, collect, &c, NULL));
}

/* ---- numbers ----------------------------------------------------------------------------- */

static void test_integers_exact(void **state)
{
    static const struct {
        const char *text;
        int64_t value;
    } cases[] = {
        {"9007199254740993", INT64_C(9007199254740993)},
        {"-9223372036854775808", INT64_MIN},
        {"9223372036854775807", INT64_MAX},
        {"0", 0},
        {"-1", -1},
    };
    for (size_t i = 0; i < RS__ARRAY_SIZE(cases); i++) {
        rs_value *v = decode(cases[i].text);
        assert_int_equal(rs_value_type(v), RS_TINT);
        assert_true(rs_value_get_int(v) == cases[i].value);
        assert_encodes(v, 0, cases[i].text);
        rs_value_destroy(v);
    }
    /* -0 is an integer zero; 1.0 and 1e2 are doubles. */
    rs_value *v = decode("-0");
    assert_int_equal(rs_value_type(v), RS_TINT);
    assert_int_equal(rs_value_get_int(v), 0);
    rs_value_destroy(v);
    v = decode("1e2");
    assert_int_equal(rs_value_type(v), RS_TDOUBLE);
    assert_encodes(v, 0, "100.0");
    rs_value_destroy(v);
}

static void test_doubles_round_trip(void **state)
{
    static const struct {
        double value;
        const char *text;
    } cases[] = {
        {0.1, "0.1"},
        {1.0, "1.0"},
        {-0.0, "-0.0"},
        {0.0, "0.0"},
        {-2.5, "-2.5"},
        {1e300, "1e+300"},
        {5e-324, "5e-324"}, /* subnormal: fewer bits, fewer digits */
        {1.7976931348623157e308, "1.7976931348623157e+308"},
        {1.0 / 3.0, "0.3333333333333333"},
        {0.1 + 0.2, "0.30000000000000004"},
        {1e16, "1e+16"},
        {123456789012345.0, "123456789012345.0"},
        {9007199254740993.0, "9007199254740992.0"},
    };
    for (size_t i = 0; i < RS__ARRAY_SIZE(cases); i++) {
        rs_value *v = rs_value_double(cases[i].value);
        assert_encodes(v, 0, cases[i].text);
        rs_value *back = decode(cases[i].text);
        assert_int_equal(rs_value_type(back), RS_TDOUBLE);
        double d = rs_value_get_double(back);
        assert_memory_equal(&d, &cases[i].value, sizeof d); /* the same bits, -0.0 included */
        rs_value_destroy(back);
        rs_value_destroy(v);
    }
}

/* ---- decoding ---------------------------------------------------------------------------- */

static void test_decode_structure(void **state)
{
    /* Member order is kept; a repeated key keeps its first place and its last value. */
    rs_value *v = decode(" {\"b\":1, \"a\":2,\n\"c\":[3]} ");
    assert_int_equal(rs_map_len(v), 3);
    assert_string_equal(rs_map_key(v, 0, NULL), "b");
    assert_string_equal(rs_map_key(v, 1, NULL), "a");
    assert_string_equal(rs_map_key(v, 2, NULL), "c");
    assert_int_equal(rs_value_get_int(rs_array_get(rs_map_get(v, "c"), 0)), 3);
    rs_value_destroy(v);
    v = decode("{\"a\":1,\"b\":2,\"a\":3}");
    assert_int_equal(rs_map_len(v), 2);
    assert_string_equal(rs_map_key(v, 0, NULL), "a");
    assert_int_equal(rs_value_get_int(rs_map_value(v, 0)), 3);
    rs_value_destroy(v);

    /* A big object comes back indexed and in order. */
    rs_value *big = rs_value_map();
    for (int i = 0; i < 1000; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", 999 - i);
        assert_ok(rs_map_set(big, key, rs_value_int(i)));
    }
    char *text;
    assert_ok(rs_json_encode(big, RS_JSON_PRETTY, &text, NULL, NULL));
    v = decode(text);
    assert_true(rs_value_equal(big, v));
    assert_int_equal(rs_value_get_int(rs_map_get(v, "k0")), 999);
    rs_free(text);
    rs_value_destroy(v);
    rs_value_destroy(big);

    /* The sample round-trips in both layouts. */
    rs_value *s = sample();
    v = decode(SAMPLE_TEXT);
    assert_true(rs_value_equal(s, v));
    rs_value_destroy(v);
    assert_ok(rs_json_encode(s, RS_JSON_PRETTY | RS_JSON_ASCII, &text, NULL, NULL));
    v = decode(text);
    assert_true(rs_value_equal(s, v));
    rs_free(text);
    rs_value_destroy(v);
    rs_value_destroy(s);
}

static void test_decode_unterminated_input(void **state)
{
    /* len bounds the text: what follows is never read. */
    const char buf[] = {'[', '1', ',', '2', ']', 'x', 'y'};
    rs_value *v = NULL;
    assert_ok(rs_json_decode(buf, 5, &v, NULL));
    assert_int_equal(rs_array_len(v), 2);
    rs_value_destroy(v);
    assert_ok(rs_json_decode("123", 2, &v, NULL));
    assert_int_equal(rs_value_get_int(v), 12);
    rs_value_destroy(v);

    char *heap = malloc(3);
    memcpy(heap, "\"a\"", 3);
    assert_ok(rs_json_decode(heap, 3, &v, NULL));
    assert_string_equal(rs_value_get_string(v, NULL), "a");
    rs_value_destroy(v);
    free(heap);
}

static void test_decode_nul(void **state)
{
    /* \u0000 in a value is kept, the length counting it. */
    rs_value *v = decode("[\"a\\u0000b\"]");
    size_t len;
    const char *s = rs_value_get_string(rs_array_get(v, 0), &len);
    assert_int_equal(len, 3);
    assert_memory_equal(s, "a\0b", 4);
    assert_encodes(v, 0, "[\"a\\u0000b\"]");
    rs_value_destroy(v);

    /* A raw NUL byte in the text is not JSON. */
    rs_errinfo err;
    assert_rs(RS_EJSON, rs_json_decode("[\"a\0b\"]", 7, &v, &err));
    assert_null(v);
}

static void test_decode_errors(void **state)
{
    static const struct {
        const char *text;
        size_t len;
        int line, column;
        size_t position;
        const char *message;
    } cases[] = {
#define C(text, line, column, position, message)                                                   \
    {text, sizeof(text) - 1, line, column, position, message}
        C("{\"a\":1}\n  x", 2, 3, 11, "end of file expected near 'x'"),
        C("", 1, 0, 0, "unexpected token near end of file"),
        C("  \n ", 2, 1, 4, "unexpected token near end of file"),
        C("[1,", 1, 3, 3, "']' expected near end of file"),
        C("[1 2]", 1, 4, 4, "']' expected near '2'"),
        C("nul", 1, 3, 3, "invalid token near 'nul'"),
        C("{\"a\" 1}", 1, 6, 6, "':' expected near '1'"),
        C("1e400", 1, 5, 5, "real number overflow near '1e400'"),
        C("[-1e400]", 1, 7, 7, "real number overflow near '-1e400'"),
        C("[99999999999999999999]", 1, 21, 21, "too big integer near '99999999999999999999'"),
        C("-9223372036854775809", 1, 20, 20,
          "too big negative integer near '-9223372036854775809'"),
        C("{\"a\\u0000\":1}", 1, 10, 10,
          "NUL byte in object key not supported near '\"a\\u0000\"'"),
        C("\"\xff\"", 1, 2, 2, "unable to decode byte 0xff near '\"'"),
        C("\n[\"\xc3\xa9\xc3\"]", 2, 5, 6, "unable to decode byte 0xc3"),
        C("\"\xc0\x80\"", 1, 2, 2, "unable to decode byte 0xc0"),
        C("\"\xed\xa0\x80\"", 1, 2, 2, "unable to decode byte 0xed"),
        C("\"\\ud800\"", 1, 8, 8, "invalid Unicode '\\uD800'"),
        C("\"\xc3\xa9\" x", 1, 6, 6, "end of file expected near 'x'"), /* columns in bytes */
        C("[\"tab\there\"]", 1, 5, 5, "control character 0x9 near '\"tab'"),
#undef C
    };
    for (size_t i = 0; i < RS__ARRAY_SIZE(cases); i++) {
        rs_value *v = (rs_value *)cases; /* anything but NULL */
        rs_errinfo err;
        int rc = rs_json_decode(cases[i].text, cases[i].len, &v, &err);
        if (rc != RS_EJSON)
            fail_msg("case %zu: %s instead of RS_EJSON", i, rs_err_name(rc));
        assert_null(v);
        assert_int_equal(err.code, RS_EJSON);
        if (strstr(err.message, cases[i].message) == NULL || err.line != cases[i].line ||
            err.column != cases[i].column || err.position != cases[i].position)
            fail_msg("case %zu: got %d:%d@%zu \"%s\", want %d:%d@%zu \"%s\"", i, err.line,
                     err.column, err.position, err.message, cases[i].line, cases[i].column,
                     cases[i].position, cases[i].message);
    }

    /* Bad arguments. */
    rs_value *v;
    rs_errinfo err;
    assert_rs(RS_EINVAL, rs_json_decode(NULL, 3, &v, &err));
    assert_int_equal(err.code, RS_EINVAL);
    assert_rs(RS_EINVAL, rs_json_decode("1", 1, NULL, NULL));
    assert_rs(RS_EJSON, rs_json_decode(NULL, 0, &v, NULL)); /* empty input */
}

static void test_decode_depth(void **state)
{
    rs_errinfo err;
    rs_value *v;
    for (int objects = 0; objects <= 1; objects++) {
        char *(*make)(int) = objects ? nested_objects : nested_arrays;
        char *text = make(RS_MAX_DEPTH);
        assert_ok(rs_json_decode(text, strlen(text), &v, &err));
        /* ...and the encoder accepts it back, to the same text. */
        char *again;
        assert_ok(rs_json_encode(v, 0, &again, NULL, &err));
        assert_string_equal(again, text);
        rs_free(again);
        rs_value_destroy(v);
        free(text);

        text = make(RS_MAX_DEPTH + 1);
        assert_rs(RS_EJSON, rs_json_decode(text, strlen(text), &v, &err));
        assert_null(v);
        assert_string_equal(err.message, "nesting deeper than 512 levels");
        int column = objects ? 5 * RS_MAX_DEPTH + 1 : RS_MAX_DEPTH + 1;
        assert_int_equal(err.line, 1);
        assert_int_equal(err.column, column);
        assert_int_equal(err.position, (size_t)column);
        free(text);
    }

    /* Across lines, past jansson's own limit (2048), and unterminated: same report. */
    char text[4000];
    memset(text, '[', sizeof text);
    text[300] = '\n';
    assert_rs(RS_EJSON, rs_json_decode(text, sizeof text, &v, &err));
    assert_string_equal(err.message, "nesting deeper than 512 levels");
    assert_int_equal(err.line, 2);
    assert_int_equal(err.column, RS_MAX_DEPTH + 1 - 300);
    assert_int_equal(err.position, RS_MAX_DEPTH + 2);

    /* Brackets inside strings do not nest. */
    char *deep = nested_arrays(RS_MAX_DEPTH);
    size_t n = strlen(deep);
    char *quoted = malloc(n + 16);
    snprintf(quoted, n + 16, "%.*s\"[\\\"{\"%s", RS_MAX_DEPTH, deep, deep + RS_MAX_DEPTH + 1);
    assert_ok(rs_json_decode(quoted, strlen(quoted), &v, &err));
    rs_value_destroy(v);
    free(quoted);
    free(deep);

    /* A syntax error beyond level 512 still reports the depth, found first. */
    deep = nested_arrays(600);
    deep[700] = 'x';
    assert_rs(RS_EJSON, rs_json_decode(deep, strlen(deep), &v, &err));
    assert_string_equal(err.message, "nesting deeper than 512 levels");
    free(deep);
}

/* ---- encoding errors --------------------------------------------------------------------- */

static void test_encode_errors(void **state)
{
    /* [1, 2, {"x": NaN}] */
    rs_value *v = rs_value_array(), *m = rs_value_map();
    assert_ok(rs_array_push(v, rs_value_int(1)));
    assert_ok(rs_array_push(v, rs_value_int(2)));
    assert_ok(rs_map_set(m, "x", rs_value_double(NAN)));
    assert_ok(rs_array_push(v, m));
    assert_encode_fails(v, "value[2].x: NaN cannot be represented in JSON");
    assert_ok(rs_map_set(m, "x", rs_value_double(-INFINITY)));
    assert_encode_fails(v, "value[2].x: infinity cannot be represented in JSON");
    assert_ok(rs_map_set(m, "x", rs_value_double(1.5)));
    assert_encodes(v, 0, "[1,2,{\"x\":1.5}]");

    /* Invalid UTF-8 in strings: stray, overlong, surrogate, beyond U+10FFFF, truncated. */
    static const char *const bad[] = {
        "\x80",     "a\xc0\x80",        "\xed\xa0\x80", "\xf4\x90\x80\x80",
        "\xe2\x82", "\xf5\x80\x80\x80", "ok\xff"};
    for (size_t i = 0; i < RS__ARRAY_SIZE(bad); i++) {
        assert_ok(rs_map_set(m, "name", rs_value_string(bad[i])));
        assert_encode_fails(v, "value[2].name: string is not valid UTF-8");
    }
    assert_ok(rs_map_remove(m, "name", 4));

    /* Keys: invalid UTF-8, and keys that are not identifiers, are quoted in the path. */
    assert_ok(rs_map_set(m, "bad\xff\n", rs_value_int(0)));
    assert_encode_fails(v, "value[2][\"bad\\xff\\x0a\"]: key is not valid UTF-8");
    assert_ok(rs_map_remove(m, "bad\xff\n", 5));
    rs_value *q = rs_value_array();
    assert_ok(rs_array_push(q, rs_value_double(NAN)));
    assert_ok(rs_map_set(m, "key with \"quotes\" \\ \xc3\xa9", q));
    assert_encode_fails(v, "value[2][\"key with \\\"quotes\\\" \\\\ \xc3\xa9\"][0]: "
                           "NaN cannot be represented in JSON");
    assert_ok(rs_map_remove(m, "key with \"quotes\" \\ \xc3\xa9", 22));
    q = rs_value_map();
    assert_ok(rs_map_set(q, "1abc", rs_value_double(NAN)));
    assert_ok(rs_map_set(m, "_ok9", q));
    assert_encode_fails(v, "value[2]._ok9[\"1abc\"]: NaN cannot be represented in JSON");
    rs_value_destroy(v);

    /* A root scalar has the bare root as its path. */
    v = rs_value_stringn("\xff", 1);
    assert_encode_fails(v, "value: string is not valid UTF-8");
    rs_value_destroy(v);

    /* A long key is cut short in the path. */
    char key[300];
    memset(key, 'k', sizeof key - 1);
    key[0] = '-';
    key[sizeof key - 1] = '\0';
    v = rs_value_map();
    assert_ok(rs_map_set(v, key, rs_value_double(NAN)));
    rs_errinfo err;
    char *text;
    assert_rs(RS_EVALUE, rs_json_encode(v, 0, &text, NULL, &err));
    assert_contains(err.message, "value[\"-kkkk");
    assert_contains(err.message, "kkk...\"]: NaN cannot be represented in JSON");
    rs_value_destroy(v);

    /* Bad arguments. */
    assert_rs(RS_EINVAL, rs_json_encode(NULL, 0, &text, NULL, &err));
    assert_rs(RS_EINVAL, rs_json_encode(rs_value_null(), 1 << 3, &text, NULL, &err));
    assert_contains(err.message, "flags");
    assert_rs(RS_EINVAL, rs_json_encode(rs_value_null(), 0, NULL, NULL, NULL));
}

static void test_encode_depth(void **state)
{
    rs_errinfo err;
    char *text;
    /* 513 levels are refused, the path naming the 513th container. */
    rs_value *v = rs_value_int(0);
    for (int i = 0; i < RS_MAX_DEPTH + 1; i++) {
        rs_value *a = rs_value_array();
        assert_ok(rs_array_push(a, v));
        v = a;
    }
    assert_rs(RS_EVALUE, rs_json_encode(v, RS_JSON_PRETTY, &text, NULL, &err));
    assert_contains(err.message, "[0][0]: nesting deeper than 512 levels");
    assert_true(strncmp(err.message, "value...[0]", 11) == 0); /* the middle is elided */
    /* One level less is fine. */
    rs_value *inner = rs_array_take(v, 0);
    assert_ok(rs_json_encode(inner, 0, &text, NULL, &err));
    rs_free(text);
    rs_value_destroy(inner);
    rs_value_destroy(v);

    /* A million levels are refused without going down them. */
    v = rs_value_null();
    for (int i = 0; i < 1000000; i++) {
        rs_value *c = i % 2 ? rs_value_map() : rs_value_array();
        if (i % 2)
            assert_ok(rs_map_set(c, "k", v));
        else
            assert_ok(rs_array_push(c, v));
        v = c;
    }
    assert_rs(RS_EVALUE, rs_json_encode(v, 0, &text, NULL, &err));
    assert_contains(err.message, ".k[0].k[0]: nesting deeper than 512 levels");
    rs_value_destroy(v);
}

static void test_encode_ex_appends(void **state)
{
    rs__buf buf = {0};
    assert_ok(rs__buf_puts(&buf, "prefix:"));
    rs_value *v = rs_value_array(), *inner = rs_value_array();
    assert_ok(rs_array_push(inner, rs_value_double(NAN)));
    assert_ok(rs_array_push(v, inner));
    rs_errinfo err;
    assert_rs(RS_EVALUE, rs__json_encode_ex(v, 0, "output", 1, &buf, &err));
    assert_string_equal(err.message, "output[1][1]: NaN cannot be represented in JSON");
    assert_int_equal(buf.len, 7);
    assert_string_equal(buf.data, "prefix:");

    assert_ok(rs_array_set(inner, 0, rs_value_string("ok")));
    assert_ok(rs__json_encode_ex(v, 0, "output", 1, &buf, &err));
    assert_string_equal(buf.data, "prefix:[[\"ok\"]]");
    assert_ok(rs__json_encode_ex(rs_value_bool(true), 0, NULL, 0, &buf, NULL));
    assert_string_equal(buf.data, "prefix:[[\"ok\"]]true");
    rs__buf_free(&buf);
    rs_value_destroy(v);
}

/* ---- out of memory ----------------------------------------------------------------------- */

static void test_oom_encode(void **state)
{
    rs_value *v = sample();
    assert_ok(rs_map_set(v, "long",
                         rs_value_string("0123456789012345678901234567890123456789"
                                         "0123456789012345678901234567890123456789")));
    char *want;
    assert_ok(rs_json_encode(v, RS_JSON_PRETTY | RS_JSON_ASCII, &want, NULL, NULL));
    long n;
    for (n = 0;; n++) {
        char *text = NULL;
        rs_errinfo err;
        rs__test_fail_allocations_after(n);
        int rc = rs_json_encode(v, RS_JSON_PRETTY | RS_JSON_ASCII, &text, NULL, &err);
        rs__test_fail_allocations_after(-1);
        if (rc == 0) {
            assert_string_equal(text, want);
            rs_free(text);
            break;
        }
        assert_rs(RS_ENOMEM, rc);
        assert_int_equal(err.code, RS_ENOMEM);
        assert_null(text);
    }
    assert_true(n >= 2);
    rs_free(want);
    rs_value_destroy(v);
}

static void test_oom_decode(void **state)
{
    rs_value *want = sample();
    rs_value *big = rs_value_map();
    for (int i = 0; i < 12; i++) {
        char key[16];
        snprintf(key, sizeof key, "k%d", i);
        assert_ok(rs_map_set(big, key, rs_value_stringn("a\0b", 3)));
    }
    assert_ok(rs_map_set(want, "big", big));
    char *text;
    assert_ok(rs_json_encode(want, 0, &text, NULL, NULL));
    long n;
    for (n = 0;; n++) {
        rs_value *v = NULL;
        rs_errinfo err;
        rs__test_fail_allocations_after(n);
        int rc = rs_json_decode(text, strlen(text), &v, &err);
        rs__test_fail_allocations_after(-1);
        if (rc == 0) {
            assert_true(rs_value_equal(want, v));
            rs_value_destroy(v);
            break;
        }
        assert_rs(RS_ENOMEM, rc);
        assert_int_equal(err.code, RS_ENOMEM);
        assert_null(v);
    }
    assert_true(n > 20);
    rs_free(text);
    rs_value_destroy(want);
}

/* ---- threads ----------------------------------------------------------------------------- */

static void *encoder_thread(void *arg)
{
    const rs_value *v = arg;
    for (int i = 0; i < 100; i++) {
        char *text;
        if (rs_json_encode(v, i % 2 ? RS_JSON_PRETTY : 0, &text, NULL, NULL))
            return (void *)"encode failed";
        rs_value *back = NULL;
        bool same = !rs_json_decode(text, strlen(text), &back, NULL) && rs_value_equal(v, back);
        rs_value_destroy(back);
        rs_free(text);
        if (!same)
            return (void *)"round trip differs";
    }
    return NULL;
}

/* Encoding only reads the value: threads may share one. */
static void test_concurrent_encode(void **state)
{
    rs_value *v = sample();
    assert_ok(rs_map_set(v, "d", rs_value_double(0.1)));
    pthread_t threads[4];
    for (int i = 0; i < 4; i++)
        assert_int_equal(pthread_create(&threads[i], NULL, encoder_thread, v), 0);
    for (int i = 0; i < 4; i++) {
        void *failure;
        assert_int_equal(pthread_join(threads[i], &failure), 0);
        if (failure)
            fail_msg("thread %d: %s", i, (const char *)failure);
    }
    rs_value_destroy(v);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_encode_compact),
    cmocka_unit_test(test_encode_pretty),
    cmocka_unit_test(test_encode_strings),
    cmocka_unit_test(test_encode_repair),
    cmocka_unit_test(test_encode_stream),
    cmocka_unit_test(test_integers_exact),
    cmocka_unit_test(test_doubles_round_trip),
    cmocka_unit_test(test_decode_structure),
    cmocka_unit_test(test_decode_unterminated_input),
    cmocka_unit_test(test_decode_nul),
    cmocka_unit_test(test_decode_errors),
    cmocka_unit_test(test_decode_depth),
    cmocka_unit_test(test_encode_errors),
    cmocka_unit_test(test_encode_depth),
    cmocka_unit_test(test_encode_ex_appends),
    cmocka_unit_test(test_oom_encode),
    cmocka_unit_test(test_oom_decode),
    cmocka_unit_test(test_concurrent_encode),
};

RS_TEST_MAIN(tests)
