/*
 * util.h -- helpers shared by the library's tests.
 */
#ifndef RS_TEST_UTIL_H
#define RS_TEST_UTIL_H

#include "harness.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A new JSON text of v (compact); the caller frees it with rs_free. */
char *json_of(const rs_value *v);

/* Opens a runspace from iss (NULL: default), failing the test if it cannot. */
rs_runspace *open_runspace(const rs_iss *iss);

/* Runs src synchronously on rs (or on pool when rs is NULL) and returns the result code;
 * *json (may be NULL) gets the output as JSON (free with rs_free), and *msg (may be NULL) a
 * copy of the error message (free with free). */
int eval(rs_runspace *rs, rs_pool *pool, const char *src, char **json, char **msg);

/* Asserts that running src on rs succeeds with output JSON equal to expected. */
#define assert_eval(rs, src, expected)                                                             \
    do {                                                                                           \
        char *j_ = NULL, *m_ = NULL;                                                               \
        int rc_ = eval((rs), NULL, (src), &j_, &m_);                                               \
        if (rc_ != 0)                                                                              \
            fail_msg("%s failed: %s %s", (src), rs_err_name(rc_), m_);                             \
        if (strcmp(j_, (expected)) != 0)                                                           \
            fail_msg("%s returned %s, expected %s", (src), j_, (expected));                        \
        rs_free(j_);                                                                               \
        free(m_);                                                                                  \
    } while (0)

/* Asserts that running src on rs fails with code and a message containing needle. */
#define assert_eval_fails(rs, src, code, needle)                                                   \
    do {                                                                                           \
        char *m_ = NULL;                                                                           \
        int rc_ = eval((rs), NULL, (src), NULL, &m_);                                              \
        if (rc_ != (code))                                                                         \
            fail_msg("%s returned %s (%s), expected %s", (src), rs_err_name(rc_), m_,              \
                     rs_err_name(code));                                                           \
        assert_contains(m_, (needle));                                                             \
        free(m_);                                                                                  \
    } while (0)

/* Writes src into a new file made from path, a mkstemps template ending in "XXXXXX.lua"
 * (rewritten in place with the file's name); the caller unlinks it. */
void write_temp_lua(char *path, const char *src);

/* Sleeps for seconds (tests only: to let time pass, never to wait for an event). */
void sleep_for(double seconds);

/* What a program run with run_cmd did. */
typedef struct cmd_result {
    int status; /* exit status, or 128 + signal */
    char *out;  /* stdout and stderr, NUL-terminated (free with cmd_result_free) */
    size_t out_len;
    char *err;
} cmd_result;

/* Runs argv[0] (a path) with stdin on /dev/null, collecting stdout and stderr; kills it and
 * fails the test when it runs longer than limit seconds. */
cmd_result run_cmd(char *const argv[], double limit);
void cmd_result_free(cmd_result *r);
/* The number of '\n' in s. */
size_t line_count(const char *s);

#endif
