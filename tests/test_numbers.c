/*
 * test_numbers.c -- numbers at the edges: doubles in JSON text (the shortest form that reads
 * back, subnormals included) and durations turned into nanoseconds (a positive one never
 * becomes 0, which means "none").
 */
#include "util.h"

#include "thread.h"

#include <float.h>
#include <math.h>

/* The JSON text of d (rs_free). */
static char *double_text(double d)
{
    rs_value *v = rs_value_double(d);
    char *text = json_of(v);
    rs_value_destroy(v);
    return text;
}

/* The significant digits of a decimal number's text: no sign, no leading or trailing zeros,
 * no point, no exponent. */
static int significant_digits(const char *text)
{
    char digits[64];
    int n = 0;
    for (const char *p = text; *p && *p != 'e' && *p != 'E'; p++) {
        if (*p >= '0' && *p <= '9')
            digits[n++] = *p;
    }
    int lo = 0;
    while (lo < n && digits[lo] == '0')
        lo++;
    while (n > lo && digits[n - 1] == '0')
        n--;
    return n > lo ? n - lo : 1;
}

/* The fewest significant digits with which %g reads back to d, trying 1..17. */
static int fewest_digits(double d)
{
    for (int p = 1; p <= 17; p++) {
        char text[40];
        snprintf(text, sizeof text, "%.*g", p, d);
        double back = strtod(text, NULL);
        if (!memcmp(&back, &d, sizeof d))
            return p;
    }
    return 99;
}

/* d's text reads back to d, bit for bit, as a double, and uses the fewest digits possible. */
static void check_double(double d)
{
    char *text = double_text(d);
    rs_value *back = NULL;
    rs_errinfo err;
    if (rs_json_decode(text, strlen(text), &back, &err) != 0)
        fail_msg("%s (%a) does not decode: %s", text, d, err.message);
    if (rs_value_type(back) != RS_TDOUBLE)
        fail_msg("%s (%a) decodes as a %s", text, d, rs_type_name(rs_value_type(back)));
    double got = rs_value_get_double(back);
    if (memcmp(&got, &d, sizeof d))
        fail_msg("%s reads back as %a, not %a", text, got, d);
    int have = significant_digits(text), fewest = fewest_digits(d);
    if (have != fewest)
        fail_msg("%a prints as %s (%d digits), but %d digits read back", d, text, have, fewest);
    rs_value_destroy(back);
    rs_free(text);
}

static void test_shortest_doubles(void **state)
{
    (void)state;
    struct {
        double d;
        const char *text;
    } known[] = {
        {5e-324, "5e-324"},
        {-5e-324, "-5e-324"},
        {1e-323, "1e-323"},
        {1.5e-323, "1.5e-323"},
        {DBL_TRUE_MIN * 12345, "6.099e-320"},
        {DBL_MIN, "2.2250738585072014e-308"},
        {DBL_MIN - DBL_TRUE_MIN, "2.225073858507201e-308"}, /* the largest subnormal */
        {DBL_MAX, "1.7976931348623157e+308"},
        {-DBL_MAX, "-1.7976931348623157e+308"},
        {0.0, "0.0"},
        {-0.0, "-0.0"},
        {0.1, "0.1"},
        {1.0 / 3, "0.3333333333333333"},
        {100.0, "100.0"},
        {123456789012345680.0, "1.2345678901234568e+17"},
    };
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++) {
        char *text = double_text(known[i].d);
        if (strcmp(text, known[i].text) != 0)
            fail_msg("%a prints as %s, expected %s", known[i].d, text, known[i].text);
        rs_free(text);
        check_double(known[i].d);
    }
}

/* xorshift64*: a fixed sequence, so that a failure repeats. */
static uint64_t next_random(uint64_t *s)
{
    *s ^= *s >> 12;
    *s ^= *s << 25;
    *s ^= *s >> 27;
    return *s * UINT64_C(2685821657736338717);
}

static void test_random_doubles(void **state)
{
    (void)state;
    uint64_t seed = UINT64_C(0x9e3779b97f4a7c15);
    for (int i = 0; i < 200000; i++) {
        uint64_t bits = next_random(&seed);
        /* A quarter subnormal (exponent bits 0), a quarter with few mantissa bits (short
         * decimals), the rest any finite double. */
        if (i % 4 == 0)
            bits &= ~(UINT64_C(0x7ff) << 52);
        else if (i % 4 == 1)
            bits &= ~((UINT64_C(1) << (20 + bits % 30)) - 1);
        double d;
        memcpy(&d, &bits, sizeof d);
        if (!isfinite(d))
            continue;
        check_double(d);
    }
    /* Every power of two, and small integers and decimals. */
    for (int e = -1074; e <= 1023; e++)
        check_double(ldexp(1.0, e));
    for (int k = -1000; k <= 1000; k++) {
        check_double(k);
        check_double(k / 1000.0);
    }
}

static void test_seconds_to_ns(void **state)
{
    (void)state;
    /* 0 means "none" to every timeout: a positive duration must never become it. */
    assert_int_equal(rs__seconds_to_ns(1e-10), 1);
    assert_int_equal(rs__seconds_to_ns(DBL_TRUE_MIN), 1);
    assert_int_equal(rs__seconds_to_ns(4e-10), 1);
    assert_int_equal(rs__seconds_to_ns(1.6e-9), 2);
    assert_int_equal(rs__seconds_to_ns(0.25), 250000000);
    assert_int_equal(rs__seconds_to_ns(0), 0);
    assert_int_equal(rs__seconds_to_ns(-0.0), 0);
    assert_int_equal(rs__seconds_to_ns(-1), 0);
    assert_int_equal(rs__seconds_to_ns(NAN), 0);
    assert_int_equal(rs__seconds_to_ns(1e300), INT64_MAX / 2);
    assert_int_equal(rs__seconds_to_ns(INFINITY), INT64_MAX / 2);
}

static void test_tiny_item_timeout(void **state)
{
    (void)state;
    /* Through the public API: a 1e-10 s timeout stops a loop that never ends. */
    rs_ps *ps = NULL;
    assert_ok(rs_ps_create(&ps));
    rs_ps_opts o = {.timeout = 1e-10};
    assert_ok(rs_ps_set_opts(ps, &o));
    assert_ok(rs_ps_add_script(ps, "while true do end", (size_t)-1));
    assert_rs(RS_ETIMEDOUT, rs_ps_invoke(ps, NULL));
    assert_ok(rs_ps_clear(ps));
    o = (rs_ps_opts){.flags = RS_PS_ITEM_RESULTS, .item_timeout = 1e-10};
    assert_ok(rs_ps_set_opts(ps, &o));
    assert_ok(rs_ps_add_script(ps, "while true do end", (size_t)-1));
    assert_ok(rs_ps_add_input(ps, rs_value_int(1)));
    assert_ok(rs_ps_invoke(ps, NULL));
    rs_item_result item;
    assert_ok(rs_ps_item(ps, 0, &item));
    assert_int_equal(item.status, RS_ITEM_TIMEOUT);
    assert_ok(rs_ps_destroy(ps));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_shortest_doubles),
    cmocka_unit_test(test_random_doubles),
    cmocka_unit_test(test_seconds_to_ns),
    cmocka_unit_test(test_tiny_item_timeout),
};

RS_TEST_MAIN(tests)
