/* examples/quickstart.c -- square 1..10 on a pool of up to 4 runspaces, with begin/end;
 * each item takes 0.1 s, so the pool grows to 4 and the whole run takes about 0.3 s. */
#include <runspace.h>

#include <stdio.h>

int main(void)
{
    rs_pool *pool = NULL;
    rs_pool_opts opts = {.min_runspaces = 1, .max_runspaces = 4};
    if (rs_pool_create(&opts, &pool) || rs_pool_open(pool)) {
        fprintf(stderr, "quickstart: %s\n", rs_pool_errmsg(pool));
        return 1;
    }
    enum { N = 10 };
    rs_ps *ps[N];
    rs_async *done[N];
    for (int i = 0; i < N; i++) {
        /* One invocation per item: a script, its input, started without waiting. */
        if (rs_ps_create(&ps[i]) || rs_ps_set_pool(ps[i], pool) ||
            rs_ps_add_script(ps[i], "local n = ... sleep(0.1) return n * n, runspace.name",
                             (size_t)-1) ||
            rs_ps_add_input(ps[i], rs_value_int(i + 1)) || rs_ps_begin_invoke(ps[i], &done[i])) {
            fprintf(stderr, "quickstart: %s\n", rs_ps_errmsg(ps[i]));
            return 1;
        }
    }
    for (int i = 0; i < N; i++) {
        rs_value *out = NULL;
        int rc = rs_ps_end_invoke(ps[i], done[i], &out); /* blocks until it has completed */
        if (rc == 0)
            printf("%2d squared is %3lld (on %s)\n", i + 1,
                   (long long)rs_value_get_int(rs_array_get(out, 0)),
                   rs_value_get_string(rs_array_get(out, 1), NULL));
        else
            printf("%2d failed: %s\n", i + 1, rs_ps_errmsg(ps[i]));
        rs_value_destroy(out);
        rs_ps_destroy(ps[i]);
    }
    return rs_pool_destroy(pool) == 0 ? 0 : 1;
}
