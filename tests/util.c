/*
 * util.c -- helpers shared by the library's tests.
 */
#include "util.h"

#include <stdlib.h>
#include <time.h>
#include <unistd.h>

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
