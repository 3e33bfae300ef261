/*
 * test_arena.c -- the small-object allocator of runspaces: every class, reuse after free,
 * no two live blocks overlapping (each is filled with its own pattern and checked), release.
 */
#include "util.h"

#include "arena.h"

#include <stdint.h>

typedef struct live {
    unsigned char *p;
    size_t size;
    unsigned char tag;
} live;

static void check(const live *b)
{
    for (size_t i = 0; i < b->size; i++) {
        if (b->p[i] != b->tag)
            fail_msg("block %p of %zu bytes was overwritten at %zu", (void *)b->p, b->size, i);
    }
}

static void test_patterns_survive(void **state)
{
    (void)state;
    enum { N = 4000 };
    static live blocks[N];
    rs__arena a = {0};
    uint32_t seed = 12345;
    for (int round = 0; round < 20; round++) {
        for (int i = 0; i < N; i++) {
            seed = seed * 1103515245 + 12345;
            if (blocks[i].p && (seed >> 16) % 3 == 0) {
                check(&blocks[i]);
                rs__arena_free(&a, blocks[i].p, blocks[i].size);
                blocks[i].p = NULL;
            } else if (!blocks[i].p) {
                size_t size = 1 + (seed >> 8) % RS__ARENA_MAX;
                blocks[i] = (live){rs__arena_alloc(&a, size), size, (unsigned char)(i * 7 + round)};
                assert_non_null(blocks[i].p);
                assert_int_equal((uintptr_t)blocks[i].p % 16, 0);
                memset(blocks[i].p, blocks[i].tag, size);
            }
        }
    }
    for (int i = 0; i < N; i++) {
        if (blocks[i].p)
            check(&blocks[i]);
    }
    rs__arena_release(&a);
    assert_null(a.chunks);
}

static void test_freed_blocks_are_reused(void **state)
{
    (void)state;
    rs__arena a = {0};
    void *p = rs__arena_alloc(&a, 40);
    rs__arena_free(&a, p, 40);
    assert_ptr_equal(rs__arena_alloc(&a, 33), p); /* same 48-byte class */
    void *q = rs__arena_alloc(&a, 40);
    assert_ptr_not_equal(q, p);
    /* Many allocations span several chunks; all are released at once. */
    for (int i = 0; i < 10000; i++)
        assert_non_null(rs__arena_alloc(&a, 1 + i % RS__ARENA_MAX));
    rs__arena_release(&a);
    assert_non_null(rs__arena_alloc(&a, 8)); /* usable again */
    rs__arena_release(&a);
}

static void test_out_of_memory(void **state)
{
    (void)state;
    rs__arena a = {0};
    rs__test_fail_allocations_after(0);
    assert_null(rs__arena_alloc(&a, 16)); /* needs a chunk, which cannot be had */
    rs__test_fail_allocations_after(-1);
    assert_non_null(rs__arena_alloc(&a, 16));
    rs__arena_release(&a);
}

static const struct CMUnitTest tests[] = {
    cmocka_unit_test(test_patterns_survive),
    cmocka_unit_test(test_freed_blocks_are_reused),
    cmocka_unit_test(test_out_of_memory),
};

RS_TEST_MAIN(tests)
