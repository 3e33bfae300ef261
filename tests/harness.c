/*
 * harness.c -- the shared test runner: case listing and single-case runs for CTest.
 */
#include "harness.h"

#include <stdio.h>
#include <string.h>
#include <time.h>

double rs_test_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int rs_test_main(int argc, char **argv, const struct CMUnitTest *tests, size_t count)
{
    if (argc == 2 && strcmp(argv[1], "--list") == 0) {
        for (size_t i = 0; i < count; i++)
            printf("%s\n", tests[i].name);
        return 0;
    }
    if (argc == 3 && strcmp(argv[1], "--run") == 0) {
        for (size_t i = 0; i < count; i++) {
            if (strcmp(tests[i].name, argv[2]) == 0)
                return _cmocka_run_group_tests(argv[0], &tests[i], 1, NULL, NULL);
        }
        fprintf(stderr, "%s: no test case named '%s'\n", argv[0], argv[2]);
        return 2;
    }
    if (argc != 1) {
        fprintf(stderr, "usage: %s [--list | --run CASE]\n", argv[0]);
        return 2;
    }
    return _cmocka_run_group_tests(argv[0], tests, count, NULL, NULL);
}
