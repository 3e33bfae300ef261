/*
 * test_scan_targets.c -- the scanner's targets files and the argument conventions of the
 * scanner's add functions: NUL bytes, endless and over-long lines, empty files, a stop while
 * a file is read, and NULL strings (RS_EINVAL: a bad argument, not a bad handle).
 */
#include "util.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/stat.h>
#include <unistd.h>

/* A temporary file holding len bytes of text; its path in path (size >= 32). */
static void temp_file(char *path, const char *text, size_t len)
{
    strcpy(path, "/tmp/rs_targets_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
}

static rs_scan *new_scan(void)
{
    rs_scan *scan = NULL;
    assert_ok(rs_scan_create(NULL, &scan));
    assert_ok(rs_scan_add_ports(scan, "80"));
    return scan;
}

static void test_nul_byte(void **state)
{
    (void)state;
    char path[32];
    /* Text after a NUL byte once went unseen: "127.0.0.1\0junk" read as 127.0.0.1. */
    temp_file(path, "10.0.0.1\n127.0.0.1\0junk\n", 24);
    rs_scan *scan = new_scan();
    assert_rs(RS_EINVAL, rs_scan_add_targets_file(scan, path));
    char want[96];
    snprintf(want, sizeof want, "%s:2: the line holds a NUL byte", path);
    assert_string_equal(rs_scan_errmsg(scan), want);
    assert_int_equal(rs_scan_probe_count(scan), 0); /* nothing of the file */
    unlink(path);
    assert_ok(rs_scan_destroy(scan));
}

static void test_endless_file(void **state)
{
    (void)state;
    rs_scan *scan = new_scan();
    double t0 = rs_test_now();
    assert_rs(RS_EINVAL, rs_scan_add_targets_file(scan, "/dev/zero"));
    assert_string_equal(rs_scan_errmsg(scan), "/dev/zero:1: the line holds a NUL byte");
    assert_true(rs_test_now() - t0 < 5);
    assert_int_equal(rs_scan_probe_count(scan), 0);
    assert_ok(rs_scan_destroy(scan));
}

static void test_long_lines(void **state)
{
    (void)state;
    char text[2100], path[32];
    /* 1024 bytes fit (spaces around a target), 1025 do not. */
    memset(text, ' ', sizeof text);
    memcpy(text + 1000, "127.0.0.1", 9);
    text[1024] = '\n';
    memcpy(text + 1025 + 1015, "127.0.0.2", 9);
    text[1025 + 1025] = '\n';
    temp_file(path, text, 1025);
    rs_scan *scan = new_scan();
    assert_ok(rs_scan_add_targets_file(scan, path));
    assert_int_equal(rs_scan_probe_count(scan), 1);
    unlink(path);
    temp_file(path, text, 1025 + 1026);
    assert_rs(RS_EINVAL, rs_scan_add_targets_file(scan, path));
    char want[96];
    snprintf(want, sizeof want, "%s:2: the line is longer than 1024 bytes", path);
    assert_string_equal(rs_scan_errmsg(scan), want);
    assert_int_equal(rs_scan_probe_count(scan), 1);
    unlink(path);
    /* The last line needs no newline. */
    temp_file(path, "# two\n127.0.0.3 # three\n\n  127.0.0.4", 36);
    assert_ok(rs_scan_add_targets_file(scan, path));
    assert_int_equal(rs_scan_probe_count(scan), 3);
    unlink(path);
    assert_ok(rs_scan_destroy(scan));
}

static void test_empty_file(void **state)
{
    (void)state;
    /* Nothing to add: fine, and no copy from a NULL array (UBSan aborted here). */
    char path[32];
    temp_file(path, "", 0);
    rs_scan *scan = new_scan();
    assert_ok(rs_scan_add_targets_file(scan, path));
    assert_int_equal(rs_scan_probe_count(scan), 0);
    unlink(path);
    temp_file(path, "# only a comment\n\n   \n", 22);
    assert_ok(rs_scan_add_targets_file(scan, path));
    assert_int_equal(rs_scan_probe_count(scan), 0);
    assert_ok(rs_scan_add_target(scan, "127.0.0.1"));
    assert_ok(rs_scan_add_targets_file(scan, path));
    assert_int_equal(rs_scan_probe_count(scan), 1);
    unlink(path);
    assert_ok(rs_scan_destroy(scan));
}

typedef struct reading {
    rs_scan *scan;
    const char *path;
    int rc;
} reading;

static void *read_targets(void *arg)
{
    reading *r = arg;
    r->rc = rs_scan_add_targets_file(r->scan, r->path);
    return NULL;
}

static void test_stop_while_reading(void **state)
{
    (void)state;
    /* A FIFO that sends a line and then nothing: the reading waits, and a stop ends it. */
    char dir[] = "/tmp/rs_targets_fifo_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char fifo[64];
    snprintf(fifo, sizeof fifo, "%s/targets", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    int writer = open(fifo, O_RDWR);
    assert_true(writer >= 0);
    assert_int_equal(write(writer, "127.0.0.1\n", 10), 10);
    rs_scan *scan = new_scan();
    reading r = {scan, fifo, 1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_targets, &r), 0);
    sleep_for(0.2);
    double t0 = rs_test_now();
    assert_ok(rs_scan_stop(scan));
    pthread_join(t, NULL);
    assert_true(rs_test_now() - t0 < 2);
    assert_rs(RS_ESTOPPED, r.rc);
    assert_contains(rs_scan_errmsg(scan), "stopped while reading targets file");
    assert_int_equal(rs_scan_probe_count(scan), 0);
    /* The stop stays for the next run, which it ends at once. */
    assert_ok(rs_scan_add_target(scan, "127.0.0.1"));
    assert_rs(RS_ESTOPPED, rs_scan_run(scan, NULL));
    close(writer);
    unlink(fifo);
    rmdir(dir);
    assert_ok(rs_scan_destroy(scan));
}

static void test_fifo_writer_comes_later(void **state)
{
    (void)state;
    /* Opened before any writer: the reading waits for one, then reads to its end. */
    char dir[] = "/tmp/rs_targets_fifo_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char fifo[64];
    snprintf(fifo, sizeof fifo, "%s/targets", dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    rs_scan *scan = new_scan();
    reading r = {scan, fifo, 1};
    pthread_t t;
    assert_int_equal(pthread_create(&t, NULL, read_targets, &r), 0);
    sleep_for(0.2);
    int writer = open(fifo, O_WRONLY);
    assert_true(writer >= 0);
    assert_int_equal(write(writer, "127.0.0.1\n127.0.0.2\n", 20), 20);
    close(writer);
    pthread_join(t, NULL);
    assert_ok(r.rc);
    assert_int_equal(rs_scan_probe_count(scan), 2);
    unlink(fifo);
    rmdir(dir);
    assert_ok(rs_scan_destroy(scan));
}

static void test_null_arguments(void **state)
{
    (void)state;
    /* A NULL handle is misuse; a NULL string is a bad argument, with a message. */
    assert_rs(RS_EMISUSE, rs_scan_add_target(NULL, "127.0.0.1"));
    assert_rs(RS_EMISUSE, rs_scan_add_ports(NULL, "80"));
    assert_rs(RS_EMISUSE, rs_scan_add_targets_file(NULL, "x"));
    rs_scan *scan = new_scan();
    assert_rs(RS_EINVAL, rs_scan_add_target(scan, NULL));
    assert_string_equal(rs_scan_errmsg(scan), "no target given");
    assert_rs(RS_EINVAL, rs_scan_add_ports(scan, NULL));
    assert_string_equal(rs_scan_errmsg(scan), "no ports given");
    assert_rs(RS_EINVAL, rs_scan_add_targets_file(scan, NULL));
    assert_string_equal(rs_scan_errmsg(scan), "no targets file given");
    assert_int_equal(rs_scan_probe_count(scan), 0);
    assert_ok(rs_scan_destroy(scan));
}

static void test_unreadable_file(void **state)
{
    (void)state;
    rs_scan *scan = new_scan();
    assert_rs(RS_EIO, rs_scan_add_targets_file(scan, "/"));
    assert_string_equal(rs_scan_errmsg(scan), "cannot read targets file '/': Is a directory");
    assert_ok(rs_scan_destroy(scan));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_nul_byte),           cmocka_unit_test(test_endless_file),
    cmocka_unit_test(test_long_lines),         cmocka_unit_test(test_empty_file),
    cmocka_unit_test(test_stop_while_reading), cmocka_unit_test(test_fifo_writer_comes_later),
    cmocka_unit_test(test_null_arguments),     cmocka_unit_test(test_unreadable_file),
};

RS_TEST_MAIN(tests)
