/*
 * test_memory.c -- the memory limit covers what a script makes the library hold in C, not
 * only the Lua heap: outputs (a table referenced many times is copied for each reference),
 * stream records, values on their way to the shared store, JSON trees; the shared store has
 * a limit too. And per-item limits are per item: the budget and the held outputs start afresh
 * for every input of an invocation with per-item results.
 */
#include "util.h"

static rs_runspace *limited(size_t memory, uint64_t instructions)
{
    rs_iss *iss;
    assert_ok(rs_iss_create(RS_PROFILE_DEFAULT, &iss));
    rs_limits l = {.memory_bytes = memory, .instructions = instructions};
    assert_ok(rs_iss_set_limits(iss, &l));
    rs_runspace *rs = open_runspace(iss);
    assert_ok(rs_iss_destroy(iss));
    return rs;
}

/* Asserts that src fails with RS_ENOMEM, quickly, with a message containing needle. */
static void assert_capped(rs_runspace *rs, const char *src, const char *needle)
{
    double t0 = rs_test_now();
    char *msg = NULL;
    int rc = eval(rs, NULL, src, NULL, &msg);
    double took = rs_test_now() - t0;
    if (rc != RS_ENOMEM)
        fail_msg("%s returned %s (%s), expected RS_ENOMEM", src, rs_err_name(rc), msg);
    assert_contains(msg, needle);
    if (took > 20.0) /* generous for sanitizer builds; without the cap it runs for minutes */
        fail_msg("%s took %.2f s to fail", src, took);
    free(msg);
    /* The runspace was replaced and works. */
    assert_eval(rs, "return 'fine'", "[\"fine\"]");
}

static void test_shared_subtables(void **state)
{
    (void)state;
    rs_runspace *rs = limited(1u << 20, 0);
    assert_capped(rs, "local t = {} for i = 1, 22 do t = {t, t} end return t",
                  "referenced more than once is copied for each reference");
    assert_capped(rs, "local t = {} for i = 1, 40 do t = {t, t} end return t",
                  "does not fit in the runspace memory limit of 1048576 bytes");
    assert_capped(rs, "local t = {} for i = 1, 40 do t = {t, t} end emit(t)", "emit: output[1]");
    assert_capped(rs, "local t = {} for i = 1, 40 do t = {t, t} end return json.encode(t)",
                  "json.encode: value");
    /* A script cannot catch it and go on. */
    assert_capped(rs,
                  "local t = {} for i = 1, 40 do t = {t, t} end "
                  "for i = 1, 10 do pcall(emit, t) end return 'swallowed'",
                  "emit: output[1]");
    /* Small repeated references are fine. */
    assert_eval(rs, "local p = {x = 1} return {a = p, b = p}",
                "[{\"a\":{\"x\":1},\"b\":{\"x\":1}}]");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_outputs_and_records(void **state)
{
    (void)state;
    rs_runspace *rs = limited(16u << 20, 0);
    assert_capped(rs, "for i = 1, 3e7 do emit(i) end", "emit: output[");
    assert_capped(rs, "for i = 1, 1e7 do write_verbose('x') end",
                  "the verbose records of this run do not fit");
    assert_capped(rs, "for i = 1, 1e7 do print('x') end", "information records");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_shared_store(void **state)
{
    (void)state;
    rs_runspace *rs = limited(4u << 20, 0);
    assert_capped(rs, "local t = {} for i = 1, 40 do t = {t, t} end shared.set('k', t)",
                  "shared.set: value");
    /* The store itself holds at most the limit: a catchable error, the store intact. */
    assert_eval(rs,
                "local ok, err for i = 1, 1e6 do ok, err = pcall(shared.set, 'k' .. i, "
                "('v'):rep(1000)) if not ok then break end end "
                "return ok, err:match('the shared store is full') ~= nil, shared.get('k1') ~= nil",
                "[false,true,true]");
    /* Freeing entries makes room again. */
    assert_eval(rs,
                "for _, k in ipairs(shared.keys()) do shared.set(k, nil) end "
                "shared.set('again', ('v'):rep(1000)) return #shared.keys()",
                "[1]");
    assert_ok(rs_runspace_destroy(rs));
}

static void test_json_decode(void **state)
{
    (void)state;
    rs_runspace *rs = limited(16u << 20, 0);
    /* 1 MB of text, but about 500,000 values: far more than 16 MiB as trees. */
    assert_capped(rs, "local s = '[' .. ('1,'):rep(5e5) .. '1]' return #json.decode(s)",
                  "json.decode: decoding");
    assert_eval(rs, "return #json.decode('[' .. ('1,'):rep(1000) .. '1]')", "[1001]");
    assert_ok(rs_runspace_destroy(rs));
}

/* With per-item results, every item has the whole budget and memory limit: what earlier
 * items of the same batch used or returned does not count. */
static void test_limits_are_per_item(void **state)
{
    (void)state;
    rs_runspace *rs = limited(8u << 20, 300000);
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    assert_ok(rs_ps_add_script(ps,
                               "local x = 0 for i = 1, 40000 do x = x + i end "
                               "return ('r'):rep(1e6)",
                               (size_t)-1));
    rs_ps_opts o = {.flags = RS_PS_ITEM_RESULTS};
    assert_ok(rs_ps_set_opts(ps, &o));
    for (int i = 0; i < 20; i++)
        assert_ok(rs_ps_add_input(ps, rs_value_int(i)));
    assert_ok(rs_ps_invoke(ps, NULL));
    assert_int_equal(rs_ps_item_count(ps), 20);
    for (size_t i = 0; i < 20; i++) {
        rs_item_result it;
        assert_ok(rs_ps_item(ps, i, &it));
        if (it.status != RS_ITEM_OK)
            fail_msg("item %zu: %s: %s", i, rs_item_status_name(it.status), it.error);
    }
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_runspace_destroy(rs));
}

/* Stream records name the input item they were written for, with or without per-item
 * results. */
static void test_records_name_their_item(void **state)
{
    (void)state;
    rs_runspace *rs = open_runspace(NULL);
    for (int mode = 0; mode < 2; mode++) {
        rs_ps *ps;
        assert_ok(rs_ps_create(&ps));
        assert_ok(rs_ps_set_runspace(ps, rs));
        assert_ok(rs_ps_add_script(ps, "write_verbose('item', _) if _ == 2 then error('two') end",
                                   (size_t)-1));
        rs_ps_opts o = {.flags = mode ? RS_PS_ITEM_RESULTS : 0};
        assert_ok(rs_ps_set_opts(ps, &o));
        for (int i = 0; i < 3; i++)
            assert_ok(rs_ps_add_input(ps, rs_value_int(i)));
        int rc = rs_ps_invoke(ps, NULL);
        assert_int_equal(rc, mode ? 0 : RS_ERUNTIME);
        size_t n = rs_ps_record_count(ps, RS_STREAM_VERBOSE);
        assert_int_equal(n, 3);
        for (size_t i = 0; i < n; i++) {
            rs_record r;
            assert_ok(rs_ps_record(ps, RS_STREAM_VERBOSE, i, &r));
            assert_int_equal(r.item, (int64_t)i);
        }
        rs_record e;
        assert_ok(rs_ps_record(ps, RS_STREAM_ERROR, 0, &e));
        assert_int_equal(e.item, 2);
        assert_ok(rs_ps_destroy(ps));
    }
    /* No input: no item. */
    rs_ps *ps;
    assert_ok(rs_ps_create(&ps));
    assert_ok(rs_ps_set_runspace(ps, rs));
    assert_ok(rs_ps_add_script(ps, "write_verbose('alone')", (size_t)-1));
    assert_ok(rs_ps_invoke(ps, NULL));
    rs_record r;
    assert_ok(rs_ps_record(ps, RS_STREAM_VERBOSE, 0, &r));
    assert_int_equal(r.item, -1);
    assert_ok(rs_ps_destroy(ps));
    assert_ok(rs_runspace_destroy(rs));
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_shared_subtables),    cmocka_unit_test(test_outputs_and_records),
    cmocka_unit_test(test_shared_store),        cmocka_unit_test(test_json_decode),
    cmocka_unit_test(test_limits_are_per_item), cmocka_unit_test(test_records_name_their_item),
};

RS_TEST_MAIN(tests)
