/*
 * test_json_check.c -- rs__json_check, the allocation-free JSON check a resume makes of
 * every journal line, says yes exactly where rs_json_decode does (but for raw NUL bytes,
 * which it always refuses): on a corpus of edge cases
 * (numbers at the limits, escapes, UTF-8, nesting) and on record lines damaged at random.
 */
#include "util.h"

#include "journal_int.h"
#include "json_check.h"

static unsigned rnd(unsigned *s)
{
    unsigned x = *s ? *s : 2463534242u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

/* Fails unless the check and the decoder agree on text[0..len). */
static void agree(const char *text, size_t len)
{
    rs_value *v = NULL;
    bool decoded = rs_json_decode(text, len, &v, NULL) == 0;
    rs_value_destroy(v);
    size_t at = 0;
    const char *what = "";
    bool checked = rs__json_check(text, len, &at, &what);
    /* The check may refuse a raw NUL byte that the decoder skips (after a number, say): a
     * journal never has one, and what the check refuses, resume and rs_journal_read both
     * refuse. What it takes, the decoder must take. */
    if (!checked && decoded && memchr(text, '\0', len))
        return;
    if (checked != decoded) {
        char shown[1024];
        size_t n = 0;
        for (size_t i = 0; i < len && n + 5 < sizeof shown; i++) {
            unsigned char c = (unsigned char)text[i];
            n += (size_t)snprintf(shown + n, sizeof shown - n,
                                  c >= 0x20 && c < 0x7f ? "%c" : "\\x%02x", c);
        }
        fail_msg("'%s': the check says %s (%s at %zu), the decoder %s", shown,
                 checked ? "yes" : "no", checked ? "" : what, at, decoded ? "yes" : "no");
    }
}

static void test_edge_cases(void **state)
{
    (void)state;
    static const char *const texts[] = {
        "{}",
        "[]",
        " {} ",
        "{\"a\":1}",
        "{\"a\":1,}",
        "[1,]",
        "[1 2]",
        "{\"a\" 1}",
        "{1:2}",
        "\"x\"",
        "1",
        "-0",
        "01",
        "-",
        "1.",
        ".5",
        "1e5",
        "1E+5",
        "1e",
        "1.5e-3",
        "-1.25",
        "9223372036854775807",
        "9223372036854775808",
        "-9223372036854775808",
        "-9223372036854775809",
        "12345678901234567890",
        "1e308",
        "1e309",
        "-1e400",
        "1e-400",
        "0.0000000000000000000000001",
        "true",
        "false",
        "null",
        "tru",
        "nul",
        "True",
        "\"\\u0000\"",
        "\"\\ud83d\\ude00\"",
        "\"\\ud83d\"",
        "\"\\ude00\"",
        "\"\\ud83dx\"",
        "\"\\u12\"",
        "\"\\uzzzz\"",
        "\"\\x\"",
        "\"\\/\"",
        "\"a\tb\"",
        "\"\x7f\"",
        "\"\xc3\xa9\"",
        "\"\xc3\"",
        "\"\xc0\x80\"",
        "\"\xed\xa0\x80\"",
        "\"\xf4\x90\x80\x80\"",
        "\"\xf0\x9f\x98\x80\"",
        "\"\xe0\x80\xaf\"",
        "\"\xff\"",
        "{\"a\":[1,{\"b\":null}]}",
        "[[[]]]",
        "[",
        "]",
        "{",
        "",
        " ",
        "{} {}",
        "{}\n",
        "{\"a\":1}x",
        "[1,[2,[3]]",
        "\"unterminated",
    };
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++)
        agree(texts[i], strlen(texts[i]));
    agree("\"a\0b\"", 5); /* a raw NUL */
    /* Nesting at the decoder's limit, and one deeper. */
    for (int depth = RS_MAX_DEPTH - 1; depth <= RS_MAX_DEPTH + 1; depth++) {
        char *deep = malloc(2 * (size_t)depth + 1);
        for (int k = 0; k < depth; k++) {
            deep[k] = '[';
            deep[2 * depth - 1 - k] = ']';
        }
        agree(deep, 2 * (size_t)depth);
        free(deep);
    }
}

static void test_damaged_records(void **state)
{
    (void)state;
    static const char line[] =
        "{\"index\":12,\"status\":\"error\",\"start\":1796053855.452644,\"input\":\"caf\xc3\xa9 "
        "\\\"q\\\"\",\"output\":[1,2.5,-3e2,true,null,{\"k\":[\"\\u00e9\"]}],\"error\":\"boom\\n"
        "at line 1\",\"duration_ms\":0.125,\"attempts\":1,\"runspace\":3}";
    static const unsigned char bytes[] = {0,   0xff, 0xc3, 0x80, '"', '\\', '}', ']', '{',  '[',
                                          ',', ':',  '0',  'e',  '-', '.',  ' ', 'u', '\t', 'n'};
    agree(line, sizeof line - 1);
    unsigned rng = 7;
    char buf[sizeof line];
    for (int k = 0; k < 50000; k++) {
        memcpy(buf, line, sizeof line);
        size_t len = sizeof line - 1;
        int edits = 1 + (int)(rnd(&rng) % 3);
        for (int e = 0; e < edits; e++) {
            size_t at = rnd(&rng) % len;
            if (rnd(&rng) % 4 == 0)
                len = at + 1; /* cut */
            buf[at] = (char)(rnd(&rng) % 2 ? bytes[rnd(&rng) % sizeof bytes] : rnd(&rng) % 256);
        }
        agree(buf, len);
        /* The record rule (journal_format.c checks lines of the journal's shape piece by
         * piece) takes a line only if the decoder does. */
        uint64_t index;
        int status;
        char why[256];
        buf[len] = '\0';
        if (rs__journal_record_head(buf, len, &index, &status, why) == 0) {
            rs_value *v = NULL;
            if (rs_json_decode(buf, len, &v, NULL) != 0)
                fail_msg("the record rule takes '%s', the decoder does not", buf);
            rs_value_destroy(v);
        }
    }
}

static void test_utf8(void **state)
{
    (void)state;
    size_t at = 99;
    assert_true(rs__json_check_utf8("caf\xc3\xa9", 5, &at));
    assert_true(rs__json_check_utf8("a\0b", 3, &at));
    assert_false(rs__json_check_utf8("ab\xff", 3, &at));
    assert_int_equal(at, 2);
    assert_false(rs__json_check_utf8("x\xc3", 2, &at));
    assert_int_equal(at, 1);
    assert_false(rs__json_check_utf8("\xed\xa0\x80", 3, &at));
    assert_int_equal(at, 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_edge_cases),
    cmocka_unit_test(test_damaged_records),
    cmocka_unit_test(test_utf8),
};

RS_TEST_MAIN(tests)
