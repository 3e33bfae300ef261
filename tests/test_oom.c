/*
 * test_oom.c -- out of memory everywhere: each allocation of a whole session (pool, runspaces,
 * invocation, script, values, streams, JSON) fails in turn. Every call must return an error or
 * succeed, never crash, hang or leak (the ASan build checks leaks).
 */
#include "util.h"

#include "common.h"

/* Cuts the hex digits after each "0x" in text, in place: addresses differ between runs. */
static void drop_addresses(char *text)
{
    char *w = text;
    for (const char *r = text; *r;) {
        if (r[0] == '0' && r[1] == 'x') {
            *w++ = *r++;
            *w++ = *r++;
            while ((*r >= '0' && *r <= '9') || (*r >= 'a' && *r <= 'f'))
                r++;
        } else {
            *w++ = *r++;
        }
    }
    *w = '\0';
}

/* One whole session; returns true when everything succeeded. */
static bool session(bool use_pool)
{
    bool ok = false;
    rs_pool *pool = NULL;
    rs_runspace *rs = NULL;
    rs_ps *ps = NULL;
    rs_value *out = NULL;
    char *text = NULL;
    rs_iss *iss = NULL;
    if (rs_iss_create(RS_PROFILE_DEFAULT, &iss))
        goto done;
    rs_value *v = rs_value_string("configured");
    int rc = v ? rs_iss_set_variable(iss, "Setting", v) : RS_ENOMEM;
    rs_value_destroy(v);
    if (rc || rs_iss_add_function(iss, "twice", "local x = ... return 2 * x"))
        goto done;
    if (use_pool) {
        rs_pool_opts o = {.iss = iss, .min_runspaces = 1, .max_runspaces = 1};
        if (rs_pool_create(&o, &pool) || rs_pool_open(pool))
            goto done;
    } else {
        rs_runspace_opts o = {.iss = iss};
        if (rs_runspace_create(&o, &rs) || rs_runspace_open(rs))
            goto done;
    }
    if (rs_ps_create(&ps) || (pool ? rs_ps_set_pool(ps, pool) : rs_ps_set_runspace(ps, rs)))
        goto done;
    rs_ps_opts po = {.flags = RS_PS_ITEM_RESULTS};
    if (rs_ps_set_opts(ps, &po))
        goto done;
    if (rs_ps_add_script(ps,
                         "write_warning('w') emit({n = twice(_), s = Setting}) "
                         "return json.encode({_, 'x'}), {print}",
                         (size_t)-1))
        goto done;
    for (int i = 0; i < 3; i++) {
        rs_value *in = rs_value_int(i);
        if (!in || rs_ps_add_input(ps, in))
            goto done;
    }
    rs_async *a;
    if (rs_ps_begin_invoke(ps, &a))
        goto done;
    rc = rs_ps_end_invoke(ps, a, &out);
    if (rc || !out)
        goto done;
    size_t n = rs_ps_item_count(ps);
    bool items_ok = n == 3;
    for (size_t i = 0; i < n; i++) {
        rs_item_result it;
        if (rs_ps_item(ps, i, &it) || it.status != RS_ITEM_OK)
            items_ok = false;
    }
    /* Each item's function crossed as its text, with a warning beside the script's own. */
    if (!items_ok || rs_ps_record_count(ps, RS_STREAM_WARNING) != 6 ||
        rs_json_encode(out, 0, &text, NULL, NULL))
        goto done;
    drop_addresses(text);
    ok = strcmp(text, "[{\"n\":0,\"s\":\"configured\"},\"[0,\\\"x\\\"]\",[\"function: 0x\"],"
                      "{\"n\":2,\"s\":\"configured\"},\"[1,\\\"x\\\"]\",[\"function: 0x\"],"
                      "{\"n\":4,\"s\":\"configured\"},\"[2,\\\"x\\\"]\",[\"function: 0x\"]]") == 0;
    if (!ok)
        fail_msg("wrong output under no fault: %s", text);
done:
    rs_free(text);
    rs_value_destroy(out);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_pool_destroy(pool));
    assert_ok(rs_runspace_destroy(rs));
    assert_ok(rs_iss_destroy(iss));
    return ok;
}

static void fail_each_allocation(bool use_pool)
{
    /* Fail the n-th allocation for n = 0, 1, 2, ... (every 5th past 1000, to keep the
     * sanitizer builds quick) until sessions succeed 30 times in a row: past the last
     * allocation a session makes. Some failures are absorbed (a script not cached), so one
     * success is not yet the end. */
    long n = 0;
    int in_a_row = 0;
    long failed = 0;
    for (; in_a_row < 30; n += n < 1000 ? 1 : 5) {
        rs__test_fail_allocations_after(n);
        bool ok = session(use_pool);
        rs__test_fail_allocations_after(-1);
        in_a_row = ok ? in_a_row + 1 : 0;
        failed += !ok;
        if (n > 50000)
            fail_msg("sessions still fail after %ld allocations", n);
    }
    print_message("failed %ld of the first %ld allocations in turn\n", failed, n);
    assert_true(failed > 100); /* the countdown really did fail things */
    assert_true(session(use_pool));
}

static void test_oom_runspace_session(void **state)
{
    (void)state;
    fail_each_allocation(false);
}

static void test_oom_pool_session(void **state)
{
    (void)state;
    fail_each_allocation(true);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_oom_runspace_session),
    cmocka_unit_test(test_oom_pool_session),
};

RS_TEST_MAIN(tests)
