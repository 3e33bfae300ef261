/*
 * util.c -- helpers shared by the library's tests.
 */
#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

extern char **environ;

char *json_of(const rs_value *v)
{
    char *text = NULL;
    rs_errinfo err;
    int rc = rs_json_encode(v, 0, &text, NULL, &err);
    if (rc)
        fail_msg("cannot encode output: %s", err.message);
    return text;
}

rs_runspace *open_runspace(const rs_iss *iss)
{
    rs_runspace *rs = NULL;
    rs_runspace_opts o = {.iss = iss};
    assert_ok(rs_runspace_create(&o, &rs));
    int rc = rs_runspace_open(rs);
    if (rc)
        fail_msg("runspace did not open: %s", rs_runspace_errmsg(rs));
    return rs;
}

int eval(rs_runspace *rs, rs_pool *pool, const char *src, char **json, char **msg)
{
    rs_ps *ps = NULL;
    assert_ok(rs_ps_create(&ps));
    if (rs)
        assert_ok(rs_ps_set_runspace(ps, rs));
    else
        assert_ok(rs_ps_set_pool(ps, pool));
    rs_value *out = NULL;
    int rc = rs_ps_add_script(ps, src, (size_t)-1);
    if (rc == 0 || rc == RS_ESYNTAX)
        rc = rs_ps_invoke(ps, &out);
    if (json)
        *json = out ? json_of(out) : NULL;
    if (msg)
        *msg = strdup(rs_ps_errmsg(ps));
    rs_value_destroy(out);
    assert_ok(rs_ps_destroy(ps));
    return rc;
}

void sleep_for(double seconds)
{
    struct timespec ts = {.tv_sec = (time_t)seconds,
                          .tv_nsec = (long)((seconds - (double)(time_t)seconds) * 1e9)};
    while (nanosleep(&ts, &ts) != 0)
        continue;
}

void write_temp_lua(char *path, const char *src)
{
    int fd = mkstemps(path, 4);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, src, strlen(src)), (ssize_t)strlen(src));
    close(fd);
}

/* Appends n bytes to a NUL-terminated buffer of *len bytes. */
static void grow_append(char **buf, size_t *len, const char *data, size_t n)
{
    char *b = realloc(*buf, *len + n + 1);
    if (!b)
        fail_msg("out of memory");
    memcpy(b + *len, data, n);
    *len += n;
    b[*len] = '\0';
    *buf = b;
}

cmd_result run_cmd(char *const argv[], double limit)
{
    int out[2], err[2];
    assert_int_equal(pipe2(out, O_CLOEXEC), 0);
    assert_int_equal(pipe2(err, O_CLOEXEC), 0);
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
    posix_spawn_file_actions_adddup2(&fa, out[1], 1);
    posix_spawn_file_actions_adddup2(&fa, err[1], 2);
    pid_t pid;
    double t0 = rs_test_now();
    int rc = posix_spawn(&pid, argv[0], &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    close(out[1]);
    close(err[1]);
    if (rc)
        fail_msg("cannot start %s: %s", argv[0], strerror(rc));
    cmd_result r = {0};
    size_t err_len = 0;
    int fds[2] = {out[0], err[0]};
    while (fds[0] >= 0 || fds[1] >= 0) {
        double left = limit - (rs_test_now() - t0);
        if (left <= 0) {
            kill(pid, SIGKILL);
            waitpid(pid, NULL, 0);
            fail_msg("%s did not finish within %.1f s", argv[0], limit);
        }
        struct pollfd p[2] = {{.fd = fds[0], .events = POLLIN}, {.fd = fds[1], .events = POLLIN}};
        if (poll(p, 2, (int)(left * 1000) + 1) < 0 && errno != EINTR)
            fail_msg("poll: %s", strerror(errno));
        for (int i = 0; i < 2; i++) {
            if (fds[i] < 0 || !p[i].revents)
                continue;
            char buf[65536];
            ssize_t n = read(fds[i], buf, sizeof buf);
            if (n <= 0) {
                close(fds[i]);
                fds[i] = -1;
            } else if (i == 0) {
                grow_append(&r.out, &r.out_len, buf, (size_t)n);
            } else {
                grow_append(&r.err, &err_len, buf, (size_t)n);
            }
        }
    }
    int st;
    waitpid(pid, &st, 0);
    r.status = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (!r.out)
        r.out = strdup("");
    if (!r.err)
        r.err = strdup("");
    return r;
}

void cmd_result_free(cmd_result *r)
{
    free(r->out);
    free(r->err);
    r->out = r->err = NULL;
}

size_t line_count(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += *s == '\n';
    return n;
}
