/*
 * test_idxset.c -- the index set of resumed runs: the same answers as a plain bitmap under
 * random additions and removals (across chunks that fill up and empty), the first absent
 * index, the highest index it takes, memory that follows the gaps for sparse sets too.
 */
#include "util.h"

#include "idxset.h"

static unsigned rnd(unsigned *s)
{
    unsigned x = *s ? *s : 2463534242u;
    x ^= x << 13;
    x ^= x >> 17;
    x ^= x << 5;
    return *s = x;
}

static void test_same_as_a_bitmap(void **state)
{
    (void)state;
    enum { N = 200000 };
    static unsigned char ref[N];
    rs__idxset s = {0};
    unsigned rng = 42;
    /* Fill whole stretches (chunks turn into markers), then punch holes and fill them. */
    for (uint64_t i = 0; i < 100000; i++) {
        assert_ok(rs__idxset_put(&s, i, true));
        ref[i] = 1;
    }
    for (int k = 0; k < 300000; k++) {
        uint64_t i = rnd(&rng) % N;
        bool on = rnd(&rng) % 3 != 0;
        assert_ok(rs__idxset_put(&s, i, on));
        ref[i] = on;
    }
    uint64_t count = 0;
    for (uint64_t i = 0; i < N; i++) {
        count += ref[i];
        if (rs__idxset_has(&s, i) != (bool)ref[i])
            fail_msg("index %llu: %d in the set, %d in the bitmap", (unsigned long long)i,
                     rs__idxset_has(&s, i), ref[i]);
    }
    assert_int_equal(s.count, count);
    /* The first absent index, from everywhere. */
    for (int k = 0; k < 1000; k++) {
        uint64_t from = rnd(&rng) % N, want = from;
        while (want < N && ref[want])
            want++;
        assert_int_equal(rs__idxset_next_absent(&s, from), want);
    }
    /* Emptied again, every chunk is gone. */
    for (uint64_t i = 0; i < N; i++)
        assert_ok(rs__idxset_put(&s, i, false));
    assert_int_equal(s.count, 0);
    for (size_t c = 0; c < s.n; c++)
        assert_null(s.chunks[c]);
    rs__idxset_free(&s);
}

static void test_full_stretches_and_limits(void **state)
{
    (void)state;
    rs__idxset s = {0};
    for (uint64_t i = 0; i < 10000000; i++)
        assert_ok(rs__idxset_put(&s, i, true));
    assert_int_equal(rs__idxset_next_absent(&s, 0), 10000000);
    /* Every full chunk is a marker: the table has a pointer per 32,768 indexes, and the only
     * bitmap is the last, partly filled chunk. */
    assert_true(s.n * 32768 >= 10000000 && s.n <= 512);
    assert_rs(RS_EINVAL, rs__idxset_put(&s, RS__IDXSET_MAX + 1, true));
    assert_ok(rs__idxset_put(&s, RS__IDXSET_MAX, true));
    assert_true(rs__idxset_has(&s, RS__IDXSET_MAX));
    assert_false(rs__idxset_has(&s, RS__IDXSET_MAX - 1));
    assert_false(rs__idxset_has(&s, UINT64_MAX));
    rs__idxset_free(&s);
    assert_int_equal(s.count, 0);
}

static void test_sparse_memory_follows_the_gaps(void **state)
{
    (void)state;
    /* One index per chunk (32,768 apart), as a sparse journal has: a few bytes each (the
     * chunk's array and its pointer in the table), never a 4 KiB bitmap each. The set's own
     * accounting says what it holds. */
    enum { K = 1 << 14 };
    rs__idxset s = {0};
    for (uint64_t k = 0; k < K; k++)
        assert_ok(rs__idxset_put(&s, k * 32768 + 5, true));
    assert_int_equal(s.count, K);
    size_t table = s.n * sizeof *s.chunks;
    print_message("%d sparse indexes: %zu bytes (%zu of them the table)\n", K, s.bytes, table);
    assert_true(s.bytes >= table);
    assert_true(s.bytes - table <= (size_t)K * 32);
    for (uint64_t k = 0; k < K; k++) {
        assert_true(rs__idxset_has(&s, k * 32768 + 5));
        assert_false(rs__idxset_has(&s, k * 32768 + 4));
        assert_int_equal(rs__idxset_next_absent(&s, k * 32768 + 5), k * 32768 + 6);
    }
    /* A chunk that fills densely turns into a bitmap, then a marker; thinned out again, it is
     * an array again: the bytes follow. */
    for (uint64_t i = 0; i < 32768; i++)
        assert_ok(rs__idxset_put(&s, i, true));
    assert_true(rs__idxset_has(&s, 32767));
    size_t full = s.bytes;
    for (uint64_t i = 0; i < 32768 - 100; i++)
        assert_ok(rs__idxset_put(&s, i, false));
    assert_true(s.bytes - full < 4096); /* an array, smaller than the bitmap it was */
    assert_false(rs__idxset_has(&s, 5));
    assert_true(rs__idxset_has(&s, 32767));
    assert_int_equal(s.count, K - 1 + 100);
    rs__idxset_free(&s);
    assert_int_equal(s.bytes, 0);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_same_as_a_bitmap),
    cmocka_unit_test(test_full_stretches_and_limits),
    cmocka_unit_test(test_sparse_memory_follows_the_gaps),
};

RS_TEST_MAIN(tests)
