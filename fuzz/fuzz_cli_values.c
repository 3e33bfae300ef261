/*
 * fuzz_cli_values.c -- the parsers behind the `runspace` program's option values (cli/cli.h):
 * -j/--throttle, --retries, --batch, --max-inflight (parse_count), --timeout (parse_duration),
 * --memory-limit (parse_bytes), --range (parse_range), --var/--param NAME=VALUE
 * (parse_assignment, parse_value_text) and --format (parse_choice). They are called in
 * process, on the input as one NUL-terminated string, with the ranges the commands use.
 *
 * Contracts checked: an accepted count is within its bounds, and a plain decimal number
 * within them is accepted with its value; accepted seconds are positive and finite; an
 * accepted size is at least one byte; an accepted range has A <= B; an assignment splits at
 * the first '=' with a non-empty name, and its value is the JSON the text holds, or else the
 * text as a string.
 */
#include "fuzz.h"

#include "cli.h"

#include <math.h>
#include <string.h>

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void)argc, (void)argv;
    return 0;
}

static void check_count(const char *s, unsigned long min, unsigned long max)
{
    unsigned long v = 12345;
    bool ok = parse_count(s, min, max, &v);
    if (ok)
        FUZZ_CHECK(v >= min && v <= max, "'%s' gave %lu outside %lu..%lu", s, v, min, max);
    /* A plain decimal number: accepted exactly when it is within the bounds. */
    size_t digits = strspn(s, "0123456789");
    if (digits && !s[digits] && digits < 19) {
        unsigned long want = strtoul(s, NULL, 10);
        bool in = want >= min && want <= max;
        FUZZ_CHECK(ok == in, "'%s' %s for %lu..%lu", s, ok ? "accepted" : "rejected", min, max);
        FUZZ_CHECK(!ok || v == want, "'%s' gave %lu", s, v);
    }
}

static void check_value_text(const char *text, const rs_value *v)
{
    rs_value *json = NULL;
    if (rs_json_decode(text, strlen(text), &json, NULL) == 0) {
        FUZZ_CHECK(rs_value_equal(v, json), "'%s' is JSON but gave another value", text);
    } else {
        size_t len = 0;
        const char *s = rs_value_get_string(v, &len);
        FUZZ_CHECK(rs_value_type(v) == RS_TSTRING && len == strlen(text) && !memcmp(s, text, len),
                   "'%s' is not JSON but did not give the text", text);
    }
    rs_value_destroy(json);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = fuzz_cstring(data, size);

    check_count(s, 1, 1024);    /* foreach -j/--throttle */
    check_count(s, 0, 1000);    /* foreach --retries */
    check_count(s, 1, 4096);    /* foreach --batch */
    check_count(s, 0, 100);     /* scan --retries */
    check_count(s, 1, 1000000); /* scan --max-inflight */

    double seconds = -1;
    if (parse_duration(s, DURATION_MAX, &seconds))
        FUZZ_CHECK(isfinite(seconds) && seconds > 0 && seconds <= DURATION_MAX,
                   "'%s' gave %g seconds", s, seconds);

    size_t bytes = 0;
    if (parse_bytes(s, &bytes))
        FUZZ_CHECK(bytes > 0, "'%s' gave 0 bytes", s);

    long long a = 0, b = 0;
    if (parse_range(s, &a, &b))
        FUZZ_CHECK(a <= b, "'%s' gave %lld..%lld", s, a, b);

    static const char *const formats[] = {"raw", "jsonl", "csv", "table", NULL};
    int f = parse_choice(s, formats);
    FUZZ_CHECK(f == -1 || strcmp(formats[f], s) == 0, "'%s' chose %d", s, f);

    rs_value *v = parse_value_text(s);
    FUZZ_CHECK(v, "parse_value_text gave NULL");
    check_value_text(s, v);
    rs_value_destroy(v);

    char *name = NULL;
    rs_value *value = NULL;
    const char *eq = strchr(s, '=');
    if (parse_assignment(s, &name, &value)) {
        FUZZ_CHECK(eq && eq > s, "'%s' accepted without NAME=", s);
        FUZZ_CHECK(strlen(name) == (size_t)(eq - s) && !memcmp(name, s, strlen(name)),
                   "'%s' gave the name '%s'", s, name);
        check_value_text(eq + 1, value);
    } else {
        FUZZ_CHECK(!eq || eq == s, "'%s' rejected", s);
    }
    free(name);
    rs_value_destroy(value);
    free(s);
    return 0;
}
