/*
 * harness.h -- the one test runner every test binary shares (cmocka underneath).
 *
 * A test file lists its cases in RS_TESTS and ends with RS_TEST_MAIN(). The binary then
 * accepts:  --list        print the case names, one per line (CTest registers each)
 *           --run NAME    run that case only (how CTest runs them: one process per case)
 *           (nothing)     run every case in this process
 */
#ifndef RS_TEST_HARNESS_H
#define RS_TEST_HARNESS_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "runspace.h"

int rs_test_main(int argc, char **argv, const struct CMUnitTest *tests, size_t count);

#define RS_TEST_MAIN(tests)                                                                        \
    int main(int argc, char **argv)                                                                \
    {                                                                                              \
        return rs_test_main(argc, argv, tests, sizeof(tests) / sizeof((tests)[0]));                \
    }

/* Asserts that an RS_E* call returned `expected`, printing both names on failure. */
#define assert_rs(expected, call)                                                                  \
    do {                                                                                           \
        int rs_got_ = (call);                                                                      \
        int rs_want_ = (expected);                                                                 \
        if (rs_got_ != rs_want_)                                                                   \
            fail_msg("%s returned %s (%d), expected %s (%d)", #call, rs_err_name(rs_got_),         \
                     rs_got_, rs_err_name(rs_want_), rs_want_);                                    \
    } while (0)
#define assert_ok(call) assert_rs(0, call)

/* Asserts that haystack contains needle, printing both on failure. */
#define assert_contains(haystack, needle)                                                          \
    do {                                                                                           \
        const char *h_ = (haystack);                                                               \
        const char *n_ = (needle);                                                                 \
        if (!h_ || !strstr(h_, n_))                                                                \
            fail_msg("expected \"%s\" to contain \"%s\"", h_ ? h_ : "(null)", n_);                 \
    } while (0)

/* Monotonic seconds, for measuring how long something took inside a test (never for pass or
 * fail on speed, only for bounds like "stopped within a second"). */
double rs_test_now(void);

#endif
